// The seed's client: waits for `server-name`, sends `ping` and prints what
// the server answered.
#include <cstdio>

#include "ipc.hpp"

int main() {
    using namespace ipc_hpp;
    Ipc ipc;
    auto reply = ipc.wait("server-name", Milliseconds(10000))
                     .and_then([](Process process) {
                         return process.send(Message::text("ping"), Milliseconds(5000))
                             .and_then([&] { return process.wait(Milliseconds(5000)); })
                             .map([&](Message m) {
                                 (void)process.close();
                                 return m;
                             });
                     });
    return reply.match(
        [](const Message& m) {
            std::printf("server responded %s\n", m.content().c_str());
            return 0;
        },
        [](const Error& e) {
            std::printf("no response from the server (%s)\n", e.message().c_str());
            return 1;
        });
}
