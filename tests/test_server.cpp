// The server with real sockets and real processes: our client against our
// server (most often each in its own process), the seed's scenario, graceful
// shutdown, stop handles, signals, the listen() rules, credentials, limits
// and leaks.
#include "support/basics.hpp"
#include "support/bytes.hpp"
#include "support/child.hpp"
#include "support/frames.hpp"
#include "support/probes.hpp"
#include "support/raw_peer.hpp"
#include "support/server.hpp"
#include "support/temp.hpp"

#include <set>

#include <chrono>
#include <future>

using namespace ipc_test;

namespace {

bool starts_with(const std::string& s, std::string_view prefix) { return s.compare(0, prefix.size(), prefix) == 0; }

// The seed's reducer: `pong` until the counter reaches 42, then stop.
ipc::Continuation<int> seed_reducer(const ipc::Message&, ipc::Continuation<int> c, int n) {
    if (n == 42) return c.stop(n);
    return c.respond(n + 1, ipc::Message::text("pong"));
}

// One client process of the seed: wait for the server, ping, print the answer.
std::string seed_client(const ipc::Config& config, const ipc::Name& name) {
    ipc::Ipc ipc(config);
    auto p = ipc.wait(name, ipc::Milliseconds(5000));
    if (!p) return std::string("wait ") + errc_name(p.error().code);
    auto s = p->send(ipc::Message::text("ping"), ipc::Milliseconds(5000));
    if (!s) return std::string("send ") + errc_name(s.error().code);
    auto m = p->wait(ipc::Milliseconds(5000));
    if (!m) return std::string("reply ") + errc_name(m.error().code);
    return m->content();
}

ipc::StopHandle g_stop;  // for the signal handler of a forked server
extern "C" void request_stop(int) { g_stop.request(); }

// Reads n bytes from fd within timeout_ms.
bool read_n(int fd, std::size_t n, std::int64_t timeout_ms) {
    const std::int64_t end = now_ms() + timeout_ms;
    std::size_t got = 0;
    while (got < n) {
        std::int64_t left = end - now_ms();
        if (left <= 0) return false;
        struct pollfd p {};
        p.fd = fd;
        p.events = POLLIN;
        if (::poll(&p, 1, static_cast<int>(left)) <= 0) continue;
        char buf[64];
        ssize_t r = ::read(fd, buf, n - got < sizeof buf ? n - got : sizeof buf);
        if (r <= 0) return false;
        got += static_cast<std::size_t>(r);
    }
    return true;
}

const int stop_signals[6] = {SIGHUP, SIGINT, SIGABRT, SIGTERM, SIGTSTP, SIGALRM};

}  // namespace

TEST_CASE("server: the seed scenario — 42 clients get pong, the 43rd message stops the server, serve returns 42") {
    Watchdog wd;
    TempDir dir;
    const ipc::Config config = test_config(dir.path());
    const ipc::Name name = name_of("server-name");
    Child server = spawn_server(config, name, 0, &seed_reducer);

    std::vector<Child> clients;
    clients.reserve(43);
    for (int i = 0; i < 43; ++i) clients.push_back(spawn([config, name] { return seed_client(config, name); }));
    int pongs = 0, closed = 0;
    for (Child& c : clients) {
        std::string r = c.result(15000);
        CAPTURE(r);
        if (r == "pong") ++pongs;
        else if (r == "reply closed") ++closed;
        else FAIL_CHECK("unexpected client outcome");
    }
    CHECK(pongs == 42);
    CHECK(closed == 1);
    std::string r = server.result(5000);
    CAPTURE(r);
    CHECK(starts_with(r, "ok 42 "));
    CHECK(server.exited_with(0));
    CHECK_FALSE(file_exists(ipc::Ipc(config).path_of(name)));
}

TEST_CASE("server: our client and our server in two processes — respond, continue, close, stop") {
    Watchdog wd;
    TempDir dir;
    const ipc::Config config = test_config(dir.path());
    const ipc::Name name = name_of("srv");
    Child server = spawn_server(config, name, 0, CommandReducer{});
    ipc::Ipc ipc(config);
    REQUIRE(wait_live(ipc, name));

    auto p = ipc.get(name);
    REQUIRE(p.has_value());
    CHECK(ping(*p) == "pong");                                    // respond
    REQUIRE(p->send(ipc::Message::text("continue"), ipc::Milliseconds(2000)).has_value());
    CHECK(outcome(p->wait(ipc::Milliseconds(150))) == "timed_out");  // continue: nothing sent
    REQUIRE(p->send(ipc::Message::text("close"), ipc::Milliseconds(2000)).has_value());
    CHECK(outcome(p->wait(ipc::Milliseconds(2000))) == "closed");     // close: an empty result
    CHECK(p->closed());
    CHECK(outcome(p->send(ipc::Message::text("ping"))) == "closed");

    auto q = ipc.get(name);
    REQUIRE(q.has_value());
    CHECK(ping(*q, "count") == "4");  // ping, continue, close, count
    REQUIRE(q->send(ipc::Message::text("stop"), ipc::Milliseconds(2000)).has_value());
    CHECK(outcome(q->wait(ipc::Milliseconds(2000))) == "closed");

    std::string r = server.result(5000);
    CAPTURE(r);
    CHECK(r == "ok 5 drops=closed,closed");
    CHECK_FALSE(file_exists(ipc.path_of(name)));
    CHECK_FALSE(ipc.exist(name));
}

TEST_CASE("server: with flush_ack_before_reducer, our client's send returns while the reducer works") {
    Watchdog wd;
    TempDir dir;
    ipc::Config config = test_config(dir.path());
    config.flush_ack_before_reducer = true;
    const ipc::Name name = name_of("srv");
    Pipe gate;
    const int gate_fd = gate.read_end();
    auto reducer = [gate_fd](const ipc::Message&, ipc::Continuation<int> c, int n) {
        struct pollfd pfd {};
        pfd.fd = gate_fd;
        pfd.events = POLLIN;
        char b = 0;
        bool released = ::poll(&pfd, 1, 5000) == 1 && ::read(gate_fd, &b, 1) == 1;
        return c.respond(n + 1, ipc::Message::text(released ? "released" : "not released"));
    };
    Child server = spawn_server(config, name, 0, reducer);
    ipc::Ipc ipc(config);
    REQUIRE(wait_live(ipc, name));
    auto p = ipc.get(name);
    REQUIRE(p.has_value());

    CHECK(outcome(p->send(ipc::Message::text("work"), ipc::Milliseconds(2000))) == "value");
    CHECK(outcome(p->wait(ipc::Milliseconds(100))) == "timed_out");  // the reducer is still working
    REQUIRE(write_all_fd(gate.write_end(), "x"));
    auto m = p->wait(ipc::Milliseconds(3000));
    REQUIRE(m.has_value());
    CHECK(m->content() == "released");
    REQUIRE(p->close().has_value());
    server.signal(SIGKILL);
}

TEST_CASE("server: graceful shutdown with several connected clients, stopped from another thread") {
    Watchdog wd;
    TempDir dir;
    ipc::Ipc ipc(test_config(dir.path()));
    const ipc::Name name = name_of("srv");
    ThreadServer<int> server(ipc, name, 0, CommandReducer{});
    REQUIRE(wait_live(ipc, name));

    std::vector<ipc::Process> clients;
    for (int i = 0; i < 4; ++i) {
        auto p = ipc.get(name);
        REQUIRE(p.has_value());
        CHECK(ping(*p) == "pong");
        clients.push_back(std::move(p).value());
    }
    // One more inside wait() on its own thread when the stop comes.
    std::atomic<bool> connected{false};
    auto waiting = std::async(std::launch::async, [&] {
        auto p = ipc.get(name);
        if (!p) return std::string("get ") + errc_name(p.error().code);
        std::string count = ping(*p, "count");
        connected.store(true);
        if (count != "5") return "count " + count;
        return outcome(p->wait(ipc::Milliseconds(5000)));
    });
    REQUIRE(eventually([&] { return connected.load(); }, 3000));

    std::thread stopper([h = server.stop_handle()] { h.request(); });
    stopper.join();
    CHECK(server.stop_handle().requested());
    for (auto& p : clients) CHECK(outcome(p.wait(ipc::Milliseconds(3000))) == "closed");
    CHECK(waiting.get() == "closed");
    REQUIRE(server.wait_done(3000));
    auto r = server.finish(false);
    REQUIRE(r.has_value());
    CHECK(r.value() == 5);
    CHECK(server.drops.count(ipc::DropReason::closed) == 5);
    CHECK(server.drops.count(ipc::DropReason::shutdown) == 0);
    CHECK_FALSE(file_exists(ipc.path_of(name)));
}

TEST_CASE("server: stop handle from a signal handler, with clients in other processes") {
    Watchdog wd;
    TempDir dir;
    const ipc::Config config = test_config(dir.path());
    const ipc::Name name = name_of("srv");
    Child server = spawn_server(config, name, 0, CommandReducer{}, ipc::Milliseconds::forever(), [](ipc::Server& s) {
        g_stop = s.stop_handle();
        struct sigaction sa {};
        sa.sa_handler = &request_stop;
        sigemptyset(&sa.sa_mask);
        ::sigaction(SIGUSR1, &sa, nullptr);
    });
    ipc::Ipc ipc(config);
    REQUIRE(wait_live(ipc, name));

    // Three client processes: each pings, says it is ready, then waits.
    Pipe ready;
    const int ready_fd = ready.write_end();
    std::vector<Child> clients;
    for (int i = 0; i < 3; ++i) {
        clients.push_back(spawn([config, name, ready_fd] {
            ipc::Ipc mine(config);
            auto p = mine.get(name);
            if (!p) return std::string("get ") + errc_name(p.error().code);
            std::string pong = ping(*p);
            (void)write_all_fd(ready_fd, "r");
            if (pong != "pong") return pong;
            return outcome(p->wait(ipc::Milliseconds(5000)));
        }));
    }
    REQUIRE(read_n(ready.read_end(), 3, 5000));
    auto mine = ipc.get(name);
    REQUIRE(mine.has_value());
    CHECK(ping(*mine, "count") == "4");

    server.signal(SIGUSR1);
    CHECK(outcome(mine->wait(ipc::Milliseconds(3000))) == "closed");
    for (Child& c : clients) CHECK(c.result(5000) == "closed");
    std::string r = server.result(5000);
    CAPTURE(r);
    CHECK(r == "ok 4 drops=closed,closed,closed,closed");
    CHECK_FALSE(file_exists(ipc.path_of(name)));
}

TEST_CASE("server: a stop requested before serve returns the carry at once, without binding") {
    Watchdog wd;
    TempDir dir;
    ipc::Ipc ipc(test_config(dir.path()));
    auto server = ipc.listen(name_of("early"));
    REQUIRE(server.has_value());
    ipc::StopHandle handle = server->stop_handle();
    CHECK_FALSE(handle.requested());
    handle();
    CHECK(handle.requested());
    Stopwatch sw;
    auto r = server->serve(std::string("carry"), [](const ipc::Message&, ipc::Continuation<std::string> c, std::string s) {
        return c.stop(s + "!");
    });
    REQUIRE(r.has_value());
    CHECK(r.value() == "carry");
    CHECK(sw.elapsed() < 500);
    CHECK_FALSE(file_exists(ipc.path_of(name_of("early"))));
    CHECK(ipc::StopHandle{}.requested() == false);  // a default handle does nothing
    ipc::StopHandle{}.request();
}

TEST_CASE("server: handle_signals — each of the reference's six signals stops it gracefully, then handlers are restored") {
    Watchdog wd;
    TempDir dir;
    const ipc::Config config = test_config(dir.path());
    ipc::Ipc ipc(config);
    for (int sig : stop_signals) {
        CAPTURE(sig);
        const ipc::Name name = name_of("sig" + std::to_string(sig));
        Child server = spawn([config, name] {
            ipc::Ipc mine(config);
            auto s = mine.listen(name);
            if (!s) return std::string("listen ") + errc_name(s.error().code);
            s->handle_signals();
            auto installed = [] {
                std::string bits;
                for (int x : stop_signals) {
                    struct sigaction sa {};
                    ::sigaction(x, nullptr, &sa);
                    bits += sa.sa_handler == SIG_DFL ? '0' : '1';
                }
                return bits;
            };
            std::string before = installed();
            auto r = s->serve(0, [&](const ipc::Message&, ipc::Continuation<int> c, int n) {
                return c.respond(n + 1, ipc::Message::text(installed()));
            });
            if (!r) return std::string("serve ") + errc_name(r.error().code);
            return "ok " + std::to_string(r.value()) + " before=" + before + " after=" + installed();
        });
        REQUIRE(wait_live(ipc, name));
        auto p = ipc.get(name);
        REQUIRE(p.has_value());
        CHECK(ping(*p, "probe") == "111111");  // all six handled while serving
        server.signal(sig);
        CHECK(outcome(p->wait(ipc::Milliseconds(3000))) == "closed");
        CHECK(server.result(5000) == "ok 1 before=000000 after=000000");
        CHECK(server.exited_with(0));
        CHECK_FALSE(file_exists(ipc.path_of(name)));
    }
}

TEST_CASE("server: without handle_signals no disposition changes, and SIGTERM kills it leaving a stale file") {
    Watchdog wd;
    TempDir dir;
    const ipc::Config config = test_config(dir.path());
    ipc::Ipc ipc(config);
    const ipc::Name name = name_of("srv");

    SUBCASE("in this process: dispositions before, while serving and after are the same") {
        struct sigaction before[6], during[6], after[6];
        for (int i = 0; i < 6; ++i) ::sigaction(stop_signals[i], nullptr, &before[i]);
        {
            ThreadServer<int> server(ipc, name, 0, CommandReducer{});
            REQUIRE(wait_live(ipc, name));
            auto p = ipc.get(name);
            REQUIRE(p.has_value());
            CHECK(ping(*p) == "pong");
            for (int i = 0; i < 6; ++i) ::sigaction(stop_signals[i], nullptr, &during[i]);
            REQUIRE(p->close().has_value());
            CHECK(server.finish().has_value());
        }
        for (int i = 0; i < 6; ++i) ::sigaction(stop_signals[i], nullptr, &after[i]);
        for (int i = 0; i < 6; ++i) {
            CAPTURE(stop_signals[i]);
            CHECK((during[i].sa_handler == before[i].sa_handler));
            CHECK(during[i].sa_flags == before[i].sa_flags);
            CHECK((after[i].sa_handler == before[i].sa_handler));
        }
    }
    SUBCASE("in a forked server: SIGTERM kills it; the file it leaves is no process and is replaced") {
        Child server = spawn_server(config, name, 0, CommandReducer{});
        REQUIRE(wait_live(ipc, name));
        auto p = ipc.get(name);
        REQUIRE(p.has_value());
        CHECK(ping(*p) == "pong");
        server.signal(SIGTERM);
        CHECK(outcome(p->wait(ipc::Milliseconds(3000))) == "closed_by_peer");
        CHECK(server.result(5000) == "");
        CHECK(WIFSIGNALED(server.status()));
        CHECK(WTERMSIG(server.status()) == SIGTERM);

        CHECK(file_exists(ipc.path_of(name)));  // left behind
        CHECK_FALSE(ipc.exist(name));
        auto listed = ipc.processes();
        REQUIRE(listed.has_value());
        CHECK(listed->empty());
        CHECK(outcome(ipc.get(name)) == "connection_refused");

        ThreadServer<int> successor(ipc, name, 0, CommandReducer{});
        REQUIRE(wait_live(ipc, name));
        auto q = ipc.get(name);
        REQUIRE(q.has_value());
        CHECK(ping(*q, "count") == "1");
        REQUIRE(q->close().has_value());
        auto r = successor.finish();
        REQUIRE(r.has_value());
        CHECK(r.value() == 1);
        CHECK_FALSE(file_exists(ipc.path_of(name)));
    }
}

TEST_CASE("server: the listen timeout — no activity stops it; heartbeats are no activity; messages postpone it") {
    Watchdog wd;
    TempDir dir;
    ipc::Ipc ipc(test_config(dir.path()));
    const ipc::Name name = name_of("srv");

    SUBCASE("nobody connects") {
        Stopwatch sw;
        ThreadServer<int> server(ipc, name, 7, CommandReducer{}, ipc::Milliseconds(300));
        REQUIRE(server.wait_done(3000));
        CHECK(sw.elapsed() >= 300);
        CHECK(sw.elapsed() < 3000);
        auto r = server.finish(false);
        REQUIRE(r.has_value());
        CHECK(r.value() == 7);
        CHECK_FALSE(file_exists(ipc.path_of(name)));
    }
    SUBCASE("an idle connected client is closed") {
        ThreadServer<int> server(ipc, name, 0, CommandReducer{}, ipc::Milliseconds(300));
        REQUIRE(wait_live(ipc, name));
        auto p = ipc.get(name);
        REQUIRE(p.has_value());
        Stopwatch sw;
        CHECK(outcome(p->wait(ipc::Milliseconds(3000))) == "closed");
        CHECK(sw.elapsed() >= 250);
        REQUIRE(server.wait_done(2000));
        CHECK(server.finish(false).has_value());
    }
    SUBCASE("a message every 100 ms keeps it alive past its timeout") {
        ThreadServer<int> server(ipc, name, 0, CommandReducer{}, ipc::Milliseconds(300));
        REQUIRE(wait_live(ipc, name));
        auto p = ipc.get(name);
        REQUIRE(p.has_value());
        Stopwatch sw;
        for (int i = 0; i < 8; ++i) {
            CHECK(ping(*p) == "pong");
            sleep_ms(100);
        }
        CHECK(sw.elapsed() >= 800);
        CHECK_FALSE(server.done());
        Stopwatch idle;
        CHECK(outcome(p->wait(ipc::Milliseconds(3000))) == "closed");
        CHECK(idle.elapsed() < 2500);
        REQUIRE(server.wait_done(2000));
        auto r = server.finish(false);
        REQUIRE(r.has_value());
        CHECK(r.value() == 8);
    }
}

TEST_CASE("server: a stale socket file is replaced by listen and not reported by exist or processes") {
    Watchdog wd;
    TempDir dir;
    ipc::Ipc ipc(test_config(dir.path()));
    const ipc::Name name = name_of("stale");
    const std::string path = ipc.path_of(name);
    REQUIRE(make_stale_socket(path));
    REQUIRE(file_exists(path));
    CHECK_FALSE(ipc.exist(name));
    auto before = ipc.processes();
    REQUIRE(before.has_value());
    CHECK(before->empty());

    ThreadServer<int> server(ipc, name, 0, CommandReducer{});
    REQUIRE(wait_live(ipc, name));
    CHECK(ipc.exist(name));
    auto listed = ipc.processes();
    REQUIRE(listed.has_value());
    REQUIRE(listed->size() == 1);
    CHECK(listed->front().str() == "stale");
    auto p = ipc.get(name);
    REQUIRE(p.has_value());
    CHECK(ping(*p) == "pong");
    REQUIRE(p->close().has_value());
    auto r = server.finish();
    REQUIRE(r.has_value());
    CHECK_FALSE(file_exists(path));
}

TEST_CASE("server: a second listen on a live name fails with name_in_use and the first keeps serving") {
    Watchdog wd;
    TempDir dir;
    const ipc::Config config = test_config(dir.path());
    ipc::Ipc ipc(config);
    const ipc::Name name = name_of("taken");
    Child first = spawn_server(config, name, 0, CommandReducer{});
    REQUIRE(wait_live(ipc, name));
    CHECK(ipc.exist(name));
    struct stat st_before {};
    REQUIRE(::lstat(ipc.path_of(name).c_str(), &st_before) == 0);

    auto second = ipc.listen(name);
    REQUIRE_FALSE(second.has_value());
    CHECK(errc_name(second.error().code) == std::string("name_in_use"));

    // Two servers made before either serves: the second to serve finds the
    // name taken when it binds.
    const ipc::Name race = name_of("race");
    auto a = ipc.listen(race);
    auto b = ipc.listen(race);
    REQUIRE(a.has_value());
    REQUIRE(b.has_value());
    auto a_serving = std::async(std::launch::async, [&] { return a->serve(0, CommandReducer{}); });
    REQUIRE(wait_live(ipc, race));
    auto b_result = b->serve(0, CommandReducer{});
    CHECK(outcome(b_result) == "name_in_use");
    auto pa = ipc.get(race);
    REQUIRE(pa.has_value());
    CHECK(ping(*pa) == "pong");
    REQUIRE(pa->close().has_value());
    a->stop();
    CHECK(outcome(a_serving.get()) == "value");

    // The first server is untouched and serves.
    struct stat st_after {};
    REQUIRE(::lstat(ipc.path_of(name).c_str(), &st_after) == 0);
    CHECK(st_after.st_ino == st_before.st_ino);
    auto p = ipc.get(name);
    REQUIRE(p.has_value());
    CHECK(ping(*p, "count") == "1");
    REQUIRE(p->send(ipc::Message::text("stop"), ipc::Milliseconds(2000)).has_value());
    CHECK(outcome(p->wait(ipc::Milliseconds(2000))) == "closed");
#if IPC_HPP_HAVE_PROC_NET_UNIX
    CHECK(first.result(5000) == "ok 2 drops=closed");
#else
    // Liveness is probed by connecting: the first server saw listen()'s probes.
    CHECK(starts_with(first.result(5000), "ok 2 drops="));
#endif

    // A path that exists and is not a socket is never taken over.
    const ipc::Name file = name_of("file");
    {
        FILE* f = std::fopen(ipc.path_of(file).c_str(), "w");
        REQUIRE(f != nullptr);
        std::fputs("keep me", f);
        std::fclose(f);
    }
    auto s = ipc.listen(file);
    if (s.has_value()) {
        CHECK(outcome(s->serve(0, CommandReducer{})) == "name_in_use");
    } else {
        CHECK(outcome(s) == "name_in_use");
    }
    struct stat st {};
    REQUIRE(::lstat(ipc.path_of(file).c_str(), &st) == 0);
    CHECK(S_ISREG(st.st_mode));
    CHECK(st.st_size == 7);
}

TEST_CASE("server: a name too long for sun_path is path_too_long; the longest that fits works") {
    Watchdog wd;
    TempDir dir;
    ipc::Ipc ipc(test_config(dir.path()));
    // sun_path holds 107 bytes and a NUL: <dir>/<name>.sock of 107 bytes fits.
    const std::size_t longest = 107 - dir.path().size() - 1 - 5;
    const ipc::Name fits = name_of(std::string(longest, 'a'));
    const ipc::Name too_long = name_of(std::string(longest + 1, 'b'));
    REQUIRE(ipc.path_of(fits).size() == 107);

    auto l = ipc.listen(too_long);
    REQUIRE_FALSE(l.has_value());
    CHECK(errc_name(l.error().code) == std::string("path_too_long"));
    CHECK(outcome(ipc.get(too_long)) == "path_too_long");
    Stopwatch sw;
    CHECK(outcome(ipc.wait(too_long, ipc::Milliseconds(10000))) == "path_too_long");
    CHECK(sw.elapsed() < 5000);  // at once, not at the deadline
    CHECK_FALSE(ipc.exist(too_long));

    ThreadServer<int> server(ipc, fits, 0, CommandReducer{});
    REQUIRE(wait_live(ipc, fits));
    auto p = ipc.get(fits);
    REQUIRE(p.has_value());
    CHECK(ping(*p) == "pong");
    REQUIRE(p->close().has_value());
    CHECK(server.finish().has_value());
}

TEST_CASE("server: the socket file is 0600, Config::socket_mode is honoured, missing directories are made 0700") {
    Watchdog wd;
    TempDir dir;
    const ipc::Name name = name_of("srv");
    {
        ipc::Ipc ipc(test_config(dir.file("a/b")));
        ThreadServer<int> server(ipc, name, 0, CommandReducer{});
        REQUIRE(wait_live(ipc, name));
        struct stat st {};
        REQUIRE(::lstat(ipc.path_of(name).c_str(), &st) == 0);
        CHECK(S_ISSOCK(st.st_mode));
        CHECK((st.st_mode & 07777) == 0600);
        REQUIRE(::stat(dir.file("a").c_str(), &st) == 0);
        CHECK((st.st_mode & 07777) == 0700);
        REQUIRE(::stat(dir.file("a/b").c_str(), &st) == 0);
        CHECK((st.st_mode & 07777) == 0700);
        CHECK(server.finish().has_value());
    }
    {
        ipc::Config config = test_config(dir.path());
        config.socket_mode = 0660;
        ipc::Ipc ipc(config);
        ThreadServer<int> server(ipc, name, 0, CommandReducer{});
        REQUIRE(wait_live(ipc, name));
        struct stat st {};
        REQUIRE(::lstat(ipc.path_of(name).c_str(), &st) == 0);
        CHECK((st.st_mode & 07777) == 0660);
        CHECK(server.finish().has_value());
    }
}

TEST_CASE("server: a 4-argument reducer gets the client's pid, uid and gid (SO_PEERCRED)") {
    Watchdog wd;
    TempDir dir;
    const ipc::Config config = test_config(dir.path());
    const ipc::Name name = name_of("srv");
    Child server = spawn_server(config, name, 0, CommandReducer{});
    ipc::Ipc ipc(config);
    REQUIRE(wait_live(ipc, name));
    auto p = ipc.get(name);
    REQUIRE(p.has_value());
    // Without SO_PEERCRED the server knows no credentials: 0, -1, -1.
    auto credentials = [](pid_t pid) {
#if IPC_HPP_HAVE_SO_PEERCRED
        return std::to_string(pid) + " " + std::to_string(::getuid()) + " " + std::to_string(::getgid());
#else
        (void)pid;
        const ipc::Peer unknown;
        return std::to_string(unknown.pid) + " " + std::to_string(unknown.uid) + " " + std::to_string(unknown.gid);
#endif
    };
    CHECK(ping(*p, "peer") == credentials(::getpid()));

    // And from a third process, its own pid.
    Child other = spawn([config, name] {
        ipc::Ipc mine(config);
        auto q = mine.get(name);
        if (!q) return std::string("get failed");
        return ping(*q, "peer") + " / " + std::to_string(::getpid());
    });
    const pid_t other_pid = other.pid();
    CHECK(other.result(5000) == credentials(other_pid) + " / " + std::to_string(other_pid));
    REQUIRE(p->send(ipc::Message::text("stop"), ipc::Milliseconds(2000)).has_value());
    CHECK(outcome(p->wait(ipc::Milliseconds(2000))) == "closed");
    CHECK(starts_with(server.result(5000), "ok 3 "));
}

TEST_CASE("server: allow_uids refusing our uid closes the connection before the handshake") {
    Watchdog wd;
    TempDir dir;
    ipc::Ipc ipc(test_config(dir.path()));
    const ipc::Name name = name_of("srv");
    {
        ThreadServer<int> server(ipc, name, 0, CommandReducer{}, ipc::Milliseconds::forever(),
                                 [](ipc::Server& s) { s.allow_uids({::getuid() + 1}); });
        REQUIRE(wait_live(ipc, name));
        RawConn c = RawConn::connect(ipc.path_of(name));
        REQUIRE(c.valid());
        std::string before;
        CHECK(c.wait_eof(2000, &before));
        CHECK(to_hex(before) == "");  // not even connection start
        CHECK(outcome(ipc.get(name)) == "permission_denied");  // 0.1: closed_by_peer (issue 10)
        CHECK(eventually([&] { return server.drops.count(ipc::DropReason::refused) == 2; }, 2000));
#if IPC_HPP_HAVE_SO_PEERCRED
        {
            std::lock_guard<std::mutex> lock(server.drops.mutex);
            for (const ipc::Peer& peer : server.drops.peers) CHECK(peer.uid == ::getuid());
        }
#endif
        auto r = server.finish();
        REQUIRE(r.has_value());
        CHECK(r.value() == 0);
    }
    {
        ThreadServer<int> server(ipc, name, 0, CommandReducer{}, ipc::Milliseconds::forever(),
                                 [](ipc::Server& s) { s.allow_uids({::getuid() + 1, ::getuid()}); });
        REQUIRE(wait_live(ipc, name));
        auto p = ipc.get(name);
#if IPC_HPP_HAVE_SO_PEERCRED
        REQUIRE(p.has_value());
        CHECK(ping(*p) == "pong");
        REQUIRE(p->close().has_value());
        CHECK(server.finish().has_value());
        CHECK(server.drops.count(ipc::DropReason::refused) == 0);
#else
        // No credentials to check: allow_uids refuses everyone.
        CHECK(outcome(p) == "permission_denied");  // 0.1: closed_by_peer (issue 10)
        CHECK(server.finish().has_value());
        CHECK(server.drops.count(ipc::DropReason::refused) == 1);
#endif
    }
}

TEST_CASE("server: no fd leaks after hundreds of connect/close cycles, on either side") {
    Watchdog wd;
    TempDir dir;
    const ipc::Config config = test_config(dir.path());
    const ipc::Name name = name_of("srv");
    Child server = spawn_server(config, name, 0, CommandReducer{});
    ipc::Ipc ipc(config);
    REQUIRE(wait_live(ipc, name));

    auto probe = ipc.get(name);
    REQUIRE(probe.has_value());
    const std::string server_fds = ping(*probe, "fds");
    const int client_fds = count_fds();
    REQUIRE(std::atoi(server_fds.c_str()) > 0);

    for (int i = 0; i < 300; ++i) {
        switch (i % 4) {
            case 0: {  // our client, a message, the close handshake
                auto p = ipc.get(name);
                REQUIRE(p.has_value());
                CHECK(ping(*p) == "pong");
                REQUIRE(p->close().has_value());
                break;
            }
            case 1: {  // our client found by wait (inotify), closed by the destructor
                auto p = ipc.wait(name, ipc::Milliseconds(2000));
                REQUIRE(p.has_value());
                break;
            }
            case 2: {  // a raw client that vanishes mid-handshake
                RawConn c = RawConn::connect(ipc.path_of(name));
                REQUIRE(c.valid());
                break;
            }
            default: {  // a raw client dropped for a malformed frame
                RawConn c = RawConn::connect(ipc.path_of(name));
                REQUIRE(c.handshake());
                REQUIRE(c.send(frame("x/y", "")));
                CHECK(c.wait_eof(2000));
                break;
            }
        }
    }
    CHECK(count_fds() == client_fds);
    // The server may still be reaping the last vanished peers.
    CHECK(eventually([&] { return ping(*probe, "fds") == server_fds; }, 3000));
    CHECK(ping(*probe, "fds") == server_fds);
    REQUIRE(probe->send(ipc::Message::text("stop"), ipc::Milliseconds(2000)).has_value());
    CHECK(outcome(probe->wait(ipc::Milliseconds(2000))) == "closed");
    std::string r = server.result(5000);
    CHECK(starts_with(r, "ok "));
}

TEST_CASE("server: a 16 MiB message round-trips between our client and our server in another process") {
    Watchdog wd;
    TempDir dir;
    const ipc::Config config = test_config(dir.path());
    const ipc::Name name = name_of("srv");
    Child server = spawn_server(config, name, 0, CommandReducer{});
    ipc::Ipc ipc(config);
    REQUIRE(wait_live(ipc, name));
    auto p = ipc.get(name);
    REQUIRE(p.has_value());
    std::string content(16u << 20, '\0');
    for (std::size_t i = 0; i < content.size(); ++i) content[i] = static_cast<char>(i ^ (i >> 9));
    auto m = ipc::Message::make("application/octet-stream", content);
    REQUIRE(m.has_value());
    REQUIRE(p->send(m.value(), ipc::Milliseconds(10000)).has_value());
    auto back = p->wait(ipc::Milliseconds(10000));
    REQUIRE(back.has_value());
    CHECK(back->media_type().str() == "application/octet-stream");
    CHECK(back->content().size() == content.size());
    CHECK((back->content() == content));
    CHECK(ping(*p) == "pong");  // and the connection goes on
    REQUIRE(p->send(ipc::Message::text("stop"), ipc::Milliseconds(2000)).has_value());
    CHECK(outcome(p->wait(ipc::Milliseconds(2000))) == "closed");
    CHECK(starts_with(server.result(5000), "ok 3 "));
}

// Large responses are queued without a copy (the message being handled,
// once the reducer returned; an rvalue at once) and sent from their own
// bytes: what arrives must still be whole and in order.
TEST_CASE("server: large responses without a copy — the message itself twice, then with a moved one, then before close: whole and in order") {
    Watchdog wd;
    TempDir dir;
    const ipc::Config config = test_config(dir.path());
    const ipc::Name name = name_of("big");
    Child server = spawn([&config, &name]() -> std::string {
        ipc::Ipc ipc(config);
        auto s = ipc.listen(name);
        if (!s) return "listen";
        auto r = s->serve(0, [](const ipc::Message& m, auto k, int n) {
            if (m.content() == "stop") return k.stop(n);
            if (n == 0) {
                (void)k.respond(n, m);  // the reducer still reads m after this
                (void)k.respond(n, m);
                return k.respond(n + 1, ipc::Message::text(std::to_string(m.content().size())));
            }
            if (n == 1) {
                ipc::Message reversed(m.media_type(), std::string(m.content().rbegin(), m.content().rend()));
                (void)k.respond(n, m);
                return k.respond(n + 1, std::move(reversed));
            }
            (void)k.respond(n, m);
            return k.close(n + 1);
        });
        if (!r) return "serve";
        return "ok " + std::to_string(r.value());
    });
    ipc::Ipc ipc(config);
    REQUIRE(wait_live(ipc, name));
    auto p = ipc.get(name);
    REQUIRE(p.has_value());
    std::string content(std::size_t{3} << 20, '\0');
    for (std::size_t i = 0; i < content.size(); ++i) content[i] = static_cast<char>((i * 7) ^ (i >> 11));
    const ipc::Message big = ipc::Message::make("application/octet-stream", content).value();
    const std::string reversed(content.rbegin(), content.rend());
    auto reply = [&p]() -> std::string {
        auto m = p->wait(ipc::Milliseconds(10000));
        return m ? m->content() : "error " + std::string(errc_name(m.error().code));
    };
    REQUIRE(p->send(big, ipc::Milliseconds(10000)).has_value());
    CHECK((reply() == content));
    CHECK((reply() == content));
    CHECK(reply() == std::to_string(content.size()));
    REQUIRE(p->send(big, ipc::Milliseconds(10000)).has_value());
    CHECK((reply() == content));
    CHECK((reply() == reversed));
    REQUIRE(p->send(big, ipc::Milliseconds(10000)).has_value());
    CHECK((reply() == content));
    CHECK(outcome(p->wait(ipc::Milliseconds(5000))) == "closed");
    auto q = ipc.get(name);
    REQUIRE(q.has_value());
    REQUIRE(q->send(ipc::Message::text("stop"), ipc::Milliseconds(5000)).has_value());
    CHECK(server.result(10000) == "ok 3");
}

TEST_CASE("server: a client process killed with SIGKILL is dropped, the carry goes on") {
    Watchdog wd;
    TempDir dir;
    const ipc::Config config = test_config(dir.path());
    ipc::Ipc ipc(config);
    const ipc::Name name = name_of("srv");
    ThreadServer<int> server(ipc, name, 0, CommandReducer{});
    REQUIRE(wait_live(ipc, name));

    Pipe ready;
    const int ready_fd = ready.write_end();
    Child victim = spawn([config, name, ready_fd] {
        ipc::Ipc mine(config);
        auto p = mine.get(name);
        if (!p) return std::string("get failed");
        std::string c = ping(*p, "count");
        (void)write_all_fd(ready_fd, "r");
        return outcome(p->wait());  // killed in here
    });
    REQUIRE(read_n(ready.read_end(), 1, 5000));
    victim.kill_now();
    CHECK(WIFSIGNALED(victim.status()));
    // End of file, or a reset when a heartbeat was still unread: either way
    // the peer is gone.
    REQUIRE(eventually([&] { return server.drops.size() == 1; }, 2000));
    CHECK(server.drops.code(0) == "closed_by_peer");

    auto p = ipc.get(name);
    REQUIRE(p.has_value());
    CHECK(ping(*p, "count") == "2");
    REQUIRE(p->close().has_value());
    auto r = server.finish();
    REQUIRE(r.has_value());
    CHECK(r.value() == 2);
}

TEST_CASE("server: to_string names each drop reason by its enumerator") {
    std::set<std::string> seen;
    const int last = static_cast<int>(ipc::DropReason::close_timeout);
    for (int r = 0; r <= last; ++r) {
        const std::string n = ipc::to_string(static_cast<ipc::DropReason>(r));
        CHECK(n != "unknown");
        seen.insert(n);
    }
    CHECK(seen.size() == static_cast<std::size_t>(last + 1));
    CHECK(std::string(ipc::to_string(ipc::DropReason::queue_full)) == "queue_full");
    CHECK(std::string(ipc::to_string(ipc::DropReason::too_many_connections)) == "too_many_connections");
    CHECK(std::string(ipc::to_string(static_cast<ipc::DropReason>(last + 1))) == "unknown");
}

TEST_CASE("server: on_drop takes a capturing lambda, kept in the Server (no heap), and a later one replaces it") {
    Watchdog wd;
    TempDir dir;
    ipc::Ipc ipc(test_config(dir.path()));
    std::atomic<int> first{0};
    std::mutex m;
    std::vector<std::string> seen;
    auto configure = [&](ipc::Server& s) {
        s.on_drop([&first](const ipc::Peer&, ipc::DropReason, const ipc::Error&) { ++first; });
        std::string tag = "drop:";  // a capture with its own heap state, destroyed with the Server
        s.on_drop([&m, &seen, tag](const ipc::Peer& peer, ipc::DropReason why, const ipc::Error&) {
            std::lock_guard<std::mutex> lock(m);
            // (the peer's pid is 0 where SO_PEERCRED is not there: the fallback build)
            seen.push_back(tag + ipc::to_string(why) + (peer.pid == ::getpid() || !IPC_HPP_HAVE_SO_PEERCRED ? ":me" : ":other"));
        });
    };
    {
        ThreadServer<int> server(ipc, name_of("srv"), 0, CommandReducer{}, ipc::Milliseconds::forever(), configure);
        REQUIRE(wait_live(ipc, name_of("srv")));
        {
            RawConn c = RawConn::connect(dir.file("srv.sock"));
            REQUIRE(c.valid());
            Frame f;
            REQUIRE(c.read_frame(f));  // connection start; then it vanishes
        }
        CHECK(eventually([&] {
            std::lock_guard<std::mutex> lock(m);
            return !seen.empty();
        }));
    }
    std::lock_guard<std::mutex> lock(m);
    REQUIRE(seen.size() == 1);
    CHECK(seen[0] == "drop:end_of_file:me");
    CHECK(first.load() == 0);  // replaced before serving
}
