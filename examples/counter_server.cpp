// The seed's server: responds `pong` to every message and stops when its
// counter reaches 42, printing the final count.
//
//   PHP (innmind/ipc)                          C++ (ipc.hpp)
//   $ipc->listen(Name::of('server-name'))      ipc.listen("server-name")
//     ->serve(0, fn($message, $continuation,   server->serve(0, [](const Message&,
//                   $counter) => ...)                    auto k, int n) {...})
#include <cstdio>

#include "ipc.hpp"

int main() {
    using namespace ipc_hpp;
    Ipc ipc;
    auto server = ipc.listen("server-name");
    if (!server) {
        std::fprintf(stderr, "counter_server: %s\n", server.error().message().c_str());
        return 1;
    }
    server->handle_signals();  // SIGINT/SIGTERM stop it gracefully, as the reference does
    auto counter = server->serve(0, [](const Message&, auto k, int n) {
        if (n == 42) return k.stop(n);
        return k.respond(n + 1, Message::text("pong"));
    });
    if (!counter) {
        std::fprintf(stderr, "counter_server: %s\n", counter.error().message().c_str());
        return 1;
    }
    std::printf("counter: %d\n", counter.value());
    return 0;
}
