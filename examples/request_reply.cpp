// One request, one reply, one deadline: a small helper over Process::send
// and Process::wait, and what each of its errors means.
//
// The program forks a server whose reducer answers "re: CONTENT", except for
// a few commands that make each error happen: "silent" (no reply), "slow"
// (the reply, and so the ack that leaves with it, comes after 1 s), "bye"
// (the server closes this connection) and "crash" (the server process is
// killed). The parent runs one request of each kind on its own connection
// and checks the result. Exit status 0 when every result was the expected
// one. Usage: request_reply [SOCKET_DIR] (default: a new temporary one).
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <string>

#include "ipc.hpp"

using namespace ipc_hpp;
using namespace std::chrono_literals;

// Sends `m` and waits for one reply, both within `timeout`.
// On timed_out the Process is not used again: a send that timed out has
// desynchronized it (later calls fail with desynchronized), and after a wait
// that timed out it is closed here (later calls fail with closed), since the
// late reply would otherwise be taken for the answer to the next request.
Result<Message> request(Process& p, const Message& m, std::chrono::milliseconds timeout) {
    using clock = std::chrono::steady_clock;
    const auto deadline = clock::now() + timeout;
    auto sent = p.send(m, timeout);
    if (!sent) return fail(sent.error());
    auto left = deadline - clock::now();
    if (left < clock::duration::zero()) left = clock::duration::zero();  // negative would mean no limit
    auto reply = p.wait(left);
    if (!reply && reply.error() == Errc::timed_out) (void)p.close();  // bounded by Config::close_timeout
    return reply;
}

namespace {

int failures = 0;

// "ok CONTENT" or the error's enumerator name ("timed_out").
std::string outcome(const Result<Message>& r) { return r ? "ok " + r->content() : to_string(r.error().code); }

void expect(const char* what, const Result<Message>& r, const std::string& wanted) {
    const std::string got = outcome(r);
    std::printf("%-40s %s\n", what, got.c_str());
    if (got != wanted) {
        std::printf("  expected %s\n", wanted.c_str());
        ++failures;
    }
}

// A Process, or the reason there is none (printed).
bool connected(const Result<Process>& p) {
    if (!p) std::fprintf(stderr, "request_reply: %s\n", p.error().message().c_str());
    return p.has_value();
}

// The server, in its own process; it stops by itself after 10 s without
// activity, should the parent fail before it sends "crash".
int serve(const Ipc& ipc, const Name& name) {
    auto server = ipc.listen(name, 10s);
    if (!server) return 1;
    auto served = server->serve(0, [](const Message& m, auto k, int n) {
        const std::string& c = m.content();
        if (c == "silent") return k.continue_(n + 1);
        if (c == "bye") return k.close(n + 1);
        if (c == "slow") {
            const timespec one_second{1, 0};
            nanosleep(&one_second, nullptr);
        }
        if (c == "crash") kill(getpid(), SIGKILL);
        return k.respond(n + 1, Message::text("re: " + c));
    });
    return served ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
    Config config;
    char tmp[] = "/tmp/ipchpp-request-XXXXXX";
    const bool own_dir = argc < 2;
    if (own_dir && mkdtemp(tmp) == nullptr) return 1;
    config.directory = own_dir ? tmp : argv[1];
    Ipc ipc(config);
    const Name name = Name::parse("request-demo").value();

    std::fflush(stdout);
    const pid_t server = fork();
    if (server < 0) return 1;
    if (server == 0) _exit(serve(ipc, name));

    {
        auto p = ipc.wait(name, 5s);
        if (!connected(p)) return 1;
        expect("ping", request(*p, Message::text("ping"), 5s), "ok re: ping");
        expect("ping again, same connection", request(*p, Message::text("ping"), 5s), "ok re: ping");
    }
    {
        // The ack comes at once, the reply never: the wait runs out of time.
        auto p = ipc.get(name);
        if (!connected(p)) return 1;
        expect("silent (no reply)", request(*p, Message::text("silent"), 200ms), "timed_out");
        expect("then the same Process", request(*p, Message::text("ping"), 5s), "closed");
    }
    {
        // The ack leaves with the reply (Config::flush_ack_before_reducer is
        // false), after 1 s: the send runs out of time.
        auto p = ipc.get(name);
        if (!connected(p)) return 1;
        expect("slow (1 s) with a 200 ms deadline", request(*p, Message::text("slow"), 200ms), "timed_out");
        expect("then the same Process", request(*p, Message::text("ping"), 5s), "desynchronized");
    }
    {
        // The reducer's k.close(): acknowledged, then `connection close`.
        auto p = ipc.get(name);
        if (!connected(p)) return 1;
        expect("bye (the server closes)", request(*p, Message::text("bye"), 5s), "closed");
        expect("then the same Process", request(*p, Message::text("ping"), 5s), "closed");
    }
    {
        // The server process dies before it acknowledges.
        auto p = ipc.get(name);
        if (!connected(p)) return 1;
        expect("crash (the server is killed)", request(*p, Message::text("crash"), 5s), "closed_by_peer");
        expect("then the same Process", request(*p, Message::text("ping"), 5s), "closed");
    }

    int status = 0;
    const bool killed = waitpid(server, &status, 0) == server && WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
    if (!killed) {
        std::printf("the server was not killed by SIGKILL\n");
        ++failures;
    }
    if (own_dir) {  // a killed server leaves its socket file (a later listen replaces it) and NAME.lock
        (void)unlink((std::string(tmp) + "/request-demo.sock").c_str());
        (void)unlink((std::string(tmp) + "/request-demo.lock").c_str());
        (void)rmdir(tmp);
    }
    std::printf("%d unexpected result(s)\n", failures);
    return failures == 0 ? 0 : 1;
}
