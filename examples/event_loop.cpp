// A server driven from your own poll() loop, next to an fd of your own.
//
// The program forks a client that sends one message and reports back over a
// pipe. The parent watches that pipe in the same poll() as the server's
// sockets: Server::start() gives a Loop whose interest() says which fds to
// watch and for how long, and step() does the ready work without blocking.
// When the pipe closes (the client is done), the parent stops the server
// gracefully. Usage: event_loop [SOCKET_DIR] (default: a new temporary one).
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "ipc.hpp"

using namespace ipc_hpp;
using namespace std::chrono_literals;

static int client(const Ipc& ipc, int report) {
    auto reply = ipc.wait("loop-demo", 5s).and_then([](Process p) {
        return p.send(Message::text("hello from the client"), 5s).and_then([&] { return p.wait(5s); });
    });
    std::string line = reply ? "client got back: " + reply->content() + "\n" : "client failed: " + reply.error().message() + "\n";
    return write(report, line.data(), line.size()) == static_cast<ssize_t>(line.size()) && reply ? 0 : 1;
}

int main(int argc, char** argv) {
    Config config;
    char tmp[] = "/tmp/ipchpp-loop-XXXXXX";
    bool own_dir = argc < 2;
    if (own_dir && mkdtemp(tmp) == nullptr) return 1;
    config.directory = own_dir ? tmp : argv[1];
    config.heartbeat = 200ms;
    Ipc ipc(config);

    auto server = ipc.listen("loop-demo");
    if (!server) {
        std::fprintf(stderr, "event_loop: %s\n", server.error().message().c_str());
        return 1;
    }
    int pipe_fds[2];
    if (pipe(pipe_fds) != 0) return 1;
    std::fflush(stdout);
    pid_t child = fork();
    if (child == 0) {
        close(pipe_fds[0]);
        _exit(client(ipc, pipe_fds[1]));
    }
    close(pipe_fds[1]);

    // The reducer counts and echoes.
    auto loop = server->start(0, [](const Message& m, auto k, int n) {
        std::printf("server got: %s\n", m.content().c_str());
        return k.respond(n + 1, m);
    });
    if (!loop) {
        std::fprintf(stderr, "event_loop: %s\n", loop.error().message().c_str());
        return 1;
    }

    std::vector<struct pollfd> fds;
    int mine = pipe_fds[0];  // the application's own fd
    while (!loop->finished()) {
        int timeout = 0;
        const auto& interest = loop->interest(timeout);
        fds.assign(interest.begin(), interest.end());
        fds.push_back(pollfd{mine, POLLIN, 0});  // after the server's: step() ignores extras
        if (poll(fds.data(), static_cast<nfds_t>(fds.size()), timeout) < 0) continue;
        if (fds.back().revents != 0) {
            char buf[256];
            ssize_t n = read(mine, buf, sizeof buf);
            if (n > 0) {
                std::fwrite(buf, 1, static_cast<std::size_t>(n), stdout);
            } else {
                mine = -1;     // the client is done: stop serving, gracefully
                loop->stop();
            }
        }
        loop->step(fds.data(), fds.size());
    }
    auto served = loop->finish();
    int status = 0;
    waitpid(child, &status, 0);
    close(pipe_fds[0]);
    if (own_dir) {  // the server's NAME.lock stays by design (docs/filesystem.md)
        unlink((std::string(tmp) + "/loop-demo.lock").c_str());
        rmdir(tmp);
    }
    std::printf("served %d message(s)\n", served.value());
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 && served.value() == 1 ? 0 : 1;
}
