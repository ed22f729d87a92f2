// The seed's client: waits for `server-name`, sends `ping` and prints what
// the server answered.
#include <chrono>
#include <cstdio>

#include "ipc.hpp"

int main() {
    using namespace ipc_hpp;
    using namespace std::chrono_literals;  // every timeout takes a std::chrono duration
    Ipc ipc;
    auto reply = ipc.wait("server-name", 10s)
                     .and_then([](Process process) {
                         return process.send(Message::text("ping"), 5s)
                             .and_then([&] { return process.wait(5s); })
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
