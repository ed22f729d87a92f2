// The seed's server: responds `pong` to every message and stops when its
// counter reaches 42, printing the final count.
//
//   PHP (innmind/ipc)                          C++ (ipc.hpp)
//   $ipc->listen(Name::of('server-name'))      ipc.listen(name)
//     ->serve(0, fn($message, $continuation,   server.serve(0, [](const Message&,
//                   $counter) => ...)                   Continuation<int> c, int n) {...})
#include <cstdio>

#include "ipc.hpp"

int main() {
    using namespace ipc_hpp;
    Ipc ipc;
    auto name = Name::parse("server-name");
    auto server = ipc.listen(name.value());
    if (!server) {
        std::fprintf(stderr, "counter_server: %s\n", server.error().message().c_str());
        return 1;
    }
    server->handle_signals();  // SIGINT/SIGTERM stop it gracefully, as the reference does
    auto counter = server->serve(0, [](const Message&, Continuation<int> continuation, int n) {
        if (n == 42) return continuation.stop(n);
        return continuation.respond(n + 1, Message::text("pong"));
    });
    if (!counter) {
        std::fprintf(stderr, "counter_server: %s\n", counter.error().message().c_str());
        return 1;
    }
    std::printf("counter: %d\n", counter.value());
    return 0;
}
