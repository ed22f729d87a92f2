// Section 14: the Server with real sockets and real processes: our client
// against our server (most often each in its own process), the seed's
// scenario, graceful shutdown, the listen() rules, credentials, limits and
// leaks; a supervisor's socket (systemd activation, Server::from_fd).
#include "support/basics.hpp"
#include "support/bytes.hpp"
#include "support/child.hpp"
#include "support/frames.hpp"
#include "support/probes.hpp"
#include "support/raw_peer.hpp"
#include "support/server.hpp"
#include "support/temp.hpp"

#include <chrono>
#include <future>
#include <set>

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

// The seed's own name.
struct SeedCase : Case {
    SeedCase() : Case(test_heartbeat_ms, "server-name") {}
};

}  // namespace

TEST_SUITE("server") {

TEST_CASE_FIXTURE(SeedCase, "server: the seed scenario — 42 clients get pong, the 43rd message stops the server, serve returns 42") {
    Child server = spawn_server(config, name, 0, &seed_reducer);

    std::vector<Child> clients;
    clients.reserve(43);
    for (int i = 0; i < 43; ++i) clients.push_back(spawn([config = config, name = name] { return seed_client(config, name); }));
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

TEST_CASE_FIXTURE(ServedCase, "server: our client and our server in two processes — respond, continue, close, stop") {
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

TEST_CASE_FIXTURE(Case, "server: with flush_ack_before_reducer, our client's send returns while the reducer works") {
    config.flush_ack_before_reducer = true;
    reconfigure();
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
    auto p = get_live(ipc, name);

    CHECK(outcome(p->send(ipc::Message::text("work"), ipc::Milliseconds(2000))) == "value");
    CHECK(outcome(p->wait(ipc::Milliseconds(100))) == "timed_out");  // the reducer is still working
    REQUIRE(write_all_fd(gate.write_end(), "x"));
    auto m = p->wait(ipc::Milliseconds(3000));
    REQUIRE(m.has_value());
    CHECK(m->content() == "released");
    REQUIRE(p->close().has_value());
    server.signal(SIGKILL);
}

TEST_CASE_FIXTURE(Case, "server: graceful shutdown with several connected clients, stopped from another thread") {
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
    server.finish_expecting(5, false);
    CHECK(server.drops.count(ipc::DropReason::closed) == 5);
    CHECK(server.drops.count(ipc::DropReason::shutdown) == 0);
    CHECK_FALSE(file_exists(ipc.path_of(name)));
}

TEST_CASE_FIXTURE(Case, "server: the listen timeout — no activity stops it; heartbeats are no activity; messages postpone it") {
    SUBCASE("nobody connects") {
        Stopwatch sw;
        ThreadServer<int> server(ipc, name, 7, CommandReducer{}, ipc::Milliseconds(300));
        REQUIRE(server.wait_done(3000));
        CHECK(sw.elapsed() >= 300);
        CHECK(sw.elapsed() < 3000);
        server.finish_expecting(7, false);
        CHECK_FALSE(file_exists(ipc.path_of(name)));
    }
    SUBCASE("an idle connected client is closed") {
        ThreadServer<int> server(ipc, name, 0, CommandReducer{}, ipc::Milliseconds(300));
        auto p = get_live(ipc, name);
        Stopwatch sw;
        CHECK(outcome(p->wait(ipc::Milliseconds(3000))) == "closed");
        CHECK(sw.elapsed() >= 250);
        REQUIRE(server.wait_done(2000));
        CHECK(server.finish(false).has_value());
    }
    SUBCASE("a message every 100 ms keeps it alive past its timeout") {
        ThreadServer<int> server(ipc, name, 0, CommandReducer{}, ipc::Milliseconds(300));
        auto p = get_live(ipc, name);
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
        server.finish_expecting(8, false);
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

TEST_CASE_FIXTURE(ServedCase, "server: a second listen on a live name fails with name_in_use and the first keeps serving") {
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
    CHECK(server.result(5000) == "ok 2 drops=closed");
#else
    // Liveness is probed by connecting: the first server saw listen()'s probes.
    CHECK(starts_with(server.result(5000), "ok 2 drops="));
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

TEST_CASE_FIXTURE(Case, "server: a name too long for sun_path is path_too_long; the longest that fits works") {
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
    auto p = get_live(ipc, fits);
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

TEST_CASE_FIXTURE(Case, "server: a 4-argument reducer gets the client's pid, uid and gid (SO_PEERCRED)") {
    Child server = spawn_server(config, name, 0, CommandReducer{});
    auto p = get_live(ipc, name);
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
    Child other = spawn([config = config, name = name] {
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

TEST_CASE_FIXTURE(Case, "server: allow_uids refusing our uid closes the connection before the handshake") {
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
        server.finish_expecting(0);
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

TEST_CASE_FIXTURE(ServedCase, "server: no fd leaks after hundreds of connect/close cycles, on either side") {
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

TEST_CASE_FIXTURE(ServedCase, "server: a 16 MiB message round-trips between our client and our server in another process") {
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
// bytes: what arrives must still be whole and in order. Only the response
// the reducer returns is sent: drafts it drops (large ones included) are not.
TEST_CASE_FIXTURE(Case, "server: large responses without a copy — dropped drafts, the message itself, a moved one, a draft before close: whole and in order") {
    Child server = spawn([&config = config, &name = name]() -> std::string {
        ipc::Ipc mine(config);
        auto s = mine.listen(name);
        if (!s) return "listen";
        auto r = s->serve(0, [](const ipc::Message& m, auto k, int n) {
            if (m.content() == "stop") return k.stop(n);
            if (n == 0) {
                (void)k.respond(n, m);  // drafts, not returned: nothing is sent for them
                (void)k.respond(n, ipc::Message(m));
                return k.respond(n + 1, ipc::Message::text(std::to_string(m.content().size())));
            }
            if (n == 1) return k.respond(n + 1, m);
            if (n == 2) {
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
    auto p = get_live(ipc, name);
    std::string content(std::size_t{3} << 20, '\0');
    for (std::size_t i = 0; i < content.size(); ++i) content[i] = static_cast<char>((i * 7) ^ (i >> 11));
    const ipc::Message big = ipc::Message::make("application/octet-stream", content).value();
    const std::string reversed(content.rbegin(), content.rend());
    auto reply = [&p]() -> std::string {
        auto m = p->wait(ipc::Milliseconds(10000));
        return m ? m->content() : "error " + std::string(errc_name(m.error().code));
    };
    REQUIRE(p->send(big, ipc::Milliseconds(10000)).has_value());
    CHECK(reply() == std::to_string(content.size()));
    REQUIRE(p->send(big, ipc::Milliseconds(10000)).has_value());
    CHECK((reply() == content));
    REQUIRE(p->send(big, ipc::Milliseconds(10000)).has_value());
    CHECK((reply() == reversed));
    REQUIRE(p->send(big, ipc::Milliseconds(10000)).has_value());
    CHECK(outcome(p->wait(ipc::Milliseconds(5000))) == "closed");
    auto q = ipc.get(name);
    REQUIRE(q.has_value());
    REQUIRE(q->send(ipc::Message::text("stop"), ipc::Milliseconds(5000)).has_value());
    CHECK(server.result(10000) == "ok 4");
}

TEST_CASE_FIXTURE(Case, "server: a client process killed with SIGKILL is dropped, the carry goes on") {
    ThreadServer<int> server(ipc, name, 0, CommandReducer{});
    REQUIRE(wait_live(ipc, name));

    Pipe ready;
    const int ready_fd = ready.write_end();
    Child victim = spawn([config = config, name = name, ready_fd] {
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
    server.finish_expecting(2);
}

TEST_CASE_FIXTURE(Case, "server: on_drop takes a capturing lambda, kept in the Server (no heap), and a later one replaces it") {
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

// ===========================================================================
// A listening socket made by a supervisor: systemd's socket activation
// (LISTEN_PID, LISTEN_FDS, LISTEN_FDNAMES, read by Ipc::listen) and
// Server::from_fd. The server must serve that socket, never bind its own
// over it, never unlink it, and leave the supervisor's fd open.
// tests/examples_test.sh runs the same through Debian's real
// systemd-socket-activate.
// ===========================================================================

namespace {

// A listening AF_UNIX stream socket bound at `path` (blocking, as a
// supervisor hands it over), or -1.
int supervisor_socket(const std::string& path, int type = SOCK_STREAM, bool listen = true) {
    struct sockaddr_un addr {};
    socklen_t len = 0;
    if (!fill_address(path, addr, len)) return -1;
    const int fd = ::socket(AF_UNIX, type | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    if (::bind(fd, reinterpret_cast<const struct sockaddr*>(&addr), len) != 0 || (listen && ::listen(fd, 16) != 0)) {
        ::close(fd);
        return -1;
    }
    return fd;
}

// supervisor_socket(path), REQUIREd to have worked.
int listening_socket(const std::string& path) {
    const int fd = supervisor_socket(path);
    REQUIRE(fd >= 0);
    return fd;
}

ino_t inode_of(const std::string& path) {
    struct stat st {};
    return ::lstat(path.c_str(), &st) == 0 ? st.st_ino : 0;
}

// Forks a child started the way systemd starts a service: `fds` on 3, 4, …
// (not close-on-exec), LISTEN_FDS set to their number, LISTEN_PID to the
// child's pid (or to `pid_offset` more), LISTEN_FDNAMES to `names` unless
// null. The child runs body() and reports its string (as spawn() does).
template <class Body>
Child spawn_activated(std::vector<int> fds, const char* names, Body body, long pid_offset = 0) {
    int p[2];
    const pid_t pid = fork_with_pipe(p);
    if (pid == 0) {
        ::alarm(20);
        for (int sig : {SIGHUP, SIGINT, SIGABRT, SIGTERM, SIGTSTP, SIGALRM}) ::signal(sig, SIG_DFL);
        // Out of the way of 3, 4, …: the result pipe, then the sockets.
        const int out = ::fcntl(p[1], F_DUPFD_CLOEXEC, 200);
        std::vector<int> high;
        for (int fd : fds) high.push_back(::fcntl(fd, F_DUPFD_CLOEXEC, 300));
        for (std::size_t i = 0; i < high.size(); ++i) {
            const int target = 3 + static_cast<int>(i);
            if (high[i] < 0 || ::dup2(high[i], target) != target) ::_exit(3);
        }
        ::setenv("LISTEN_PID", std::to_string(static_cast<long>(::getpid()) + pid_offset).c_str(), 1);
        ::setenv("LISTEN_FDS", std::to_string(fds.size()).c_str(), 1);
        if (names != nullptr) ::setenv("LISTEN_FDNAMES", names, 1);
        else ::unsetenv("LISTEN_FDNAMES");
        std::string r;
        try {
            r = body();
        } catch (...) {
            r = "<exception>";
        }
        (void)write_all_fd(out, r);
        ::_exit(0);
    }
    ::close(p[1]);
    return Child(pid, p[0]);
}

// Whether fd is open and still a listening socket.
bool still_listening(int fd) {
    int value = 0;
    socklen_t len = sizeof value;
    return ::fcntl(fd, F_GETFD) >= 0 && ::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &value, &len) == 0 && value == 1;
}

std::string serve_commands(ipc::Server& server) {
    auto r = server.serve(0, CommandReducer{});
    return r ? "ok " + std::to_string(r.value()) : std::string("serve ") + errc_name(r.error().code);
}

}  // namespace

TEST_CASE_FIXTURE(Case, "activation: listen() takes the fd LISTEN_FDNAMES names, serves it, and leaves it and its file to systemd") {
    const std::string path = ipc.path_of(name);
    const int other = listening_socket(dir.file("other.sock"));
    const int mine = listening_socket(path);
    const ino_t inode = inode_of(path);

    Child server = spawn_activated({other, mine}, "other:srv", [&]() -> std::string {
        ipc::Ipc child_ipc(config);
        auto s = child_ipc.listen("srv");
        if (!s) return std::string("listen ") + errc_name(s.error().code);
        std::string out = serve_commands(*s);
        const bool fd4 = still_listening(4), fd3 = still_listening(3);
        // Both passed fds, not only the one served: none leaks into the
        // programs this process runs (as sd_listen_fds() does).
        const bool cloexec = (::fcntl(3, F_GETFD) & FD_CLOEXEC) != 0 && (::fcntl(4, F_GETFD) & FD_CLOEXEC) != 0;
        return out + (fd4 && fd3 ? " fds open" : " fds closed") + (cloexec ? " cloexec" : "");
    });
    auto p = ipc.get("srv");  // the kernel queues us until the child accepts
    REQUIRE(p.has_value());
    CHECK(ipc.exist("srv"));
    CHECK(ping(*p) == "pong");
    REQUIRE(p->send(ipc::Message::text("stop"), ipc::Milliseconds(2000)).has_value());
    CHECK(outcome(p->wait(ipc::Milliseconds(2000))) == "closed");
    const std::string r = server.result(5000);
    CHECK(r == "ok 2 fds open cloexec");
    // Nothing was bound, locked or unlinked by the server: systemd's file
    // is the same file, still listened on by our copy of the fd.
    CHECK(inode_of(path) == inode);
    CHECK_FALSE(file_exists(dir.file("srv.lock")));
    ::close(other);
    ::close(mine);
}

TEST_CASE_FIXTURE(Case, "activation: without LISTEN_FDNAMES the fd bound at the server's path is taken") {
    const std::string path = ipc.path_of(name);
    const int unrelated = listening_socket(dir.file("unrelated.sock"));
    const int mine = listening_socket(path);
    Child server = spawn_activated({unrelated, mine}, nullptr, [&]() -> std::string {
        auto s = ipc::Ipc(config).listen("srv");
        if (!s) return std::string("listen ") + errc_name(s.error().code);
        return serve_commands(*s);
    });
    auto p = ipc.get("srv");
    REQUIRE(p.has_value());
    CHECK(ping(*p, "count") == "1");
    REQUIRE(p->send(ipc::Message::text("stop"), ipc::Milliseconds(2000)).has_value());
    CHECK(server.result(5000) == "ok 2");
    CHECK(file_exists(path));
    ::close(unrelated);
    ::close(mine);
}

TEST_CASE("activation: the path is matched through a symlinked directory; a named socket bound elsewhere gives path()") {
    Watchdog wd;
    TempDir dir;
    // /var/run -> /run on Debian: systemd binds through the link, Ipc spells
    // the canonical directory.
    REQUIRE(::mkdir(dir.file("real").c_str(), 0700) == 0);
    REQUIRE(::symlink("real", dir.file("link").c_str()) == 0);
    const ipc::Config config = test_config(dir.file("link"));
    ipc::Ipc ipc(config);
    const int via_link = listening_socket(dir.file("link/srv.sock"));
    Child server = spawn_activated({via_link}, "unrelated", [&]() -> std::string {
        auto s = ipc::Ipc(config).listen("srv");
        if (!s) return std::string("listen ") + errc_name(s.error().code);
        return s->path() + " " + serve_commands(*s);
    });
    auto p = ipc.get("srv");
    REQUIRE(p.has_value());
    CHECK(ping(*p) == "pong");
    REQUIRE(p->send(ipc::Message::text("stop"), ipc::Milliseconds(2000)).has_value());
    CHECK(server.result(5000) == ipc.path_of(name_of("srv")) + " ok 2");
    CHECK(ipc.path_of(name_of("srv")) == dir.file("real/srv.sock"));

    // Named for the server, bound outside its directory: served, and
    // path() says where (clients of the directory would not find it).
    const int elsewhere = listening_socket(dir.file("elsewhere.sock"));
    Child named = spawn_activated({elsewhere}, "srv", [&]() -> std::string {
        auto s = ipc::Ipc(config).listen("srv");
        if (!s) return std::string("listen ") + errc_name(s.error().code);
        return s->path();
    });
    CHECK(named.result(5000) == dir.file("elsewhere.sock"));
    ::close(via_link);
    ::close(elsewhere);
}

TEST_CASE_FIXTURE(Case, "activation: fds meant for another process, or a named fd that is not a listener, are refused, never bound over") {
    const std::string path = ipc.path_of(name);
    const int mine = listening_socket(path);
    const ino_t inode = inode_of(path);
    auto listen_result = [&]() -> std::string {
        auto s = ipc::Ipc(config).listen("srv");
        return s ? std::string("listening") : std::string(errc_name(s.error().code));
    };
    // LISTEN_PID is someone else's (inherited from a parent): the fds are
    // not ours, and systemd's live socket keeps the name.
    CHECK(spawn_activated({mine}, "srv", listen_result, 1).result(5000) == "name_in_use");
    // Named for us, but a bound socket that does not listen, or a datagram
    // socket: a clear error, not a bind next to it.
    const int quiet = supervisor_socket(dir.file("quiet.sock"), SOCK_STREAM, false);
    const int dgram = supervisor_socket(dir.file("dgram.sock"), SOCK_DGRAM, false);
    REQUIRE(quiet >= 0);
    REQUIRE(dgram >= 0);
    CHECK(spawn_activated({quiet}, "srv", listen_result).result(5000) == "socket");
    CHECK(spawn_activated({dgram}, "srv", listen_result).result(5000) == "socket");
    // Malformed variables are ignored (sd_listen_fds would fail): the live
    // socket keeps the name.
    CHECK(spawn_activated({mine}, "srv", [&]() -> std::string {
              ::setenv("LISTEN_FDS", "1x", 1);
              return listen_result();
          }).result(5000) == "name_in_use");
    CHECK(inode_of(path) == inode);
    ::close(mine);
    ::close(quiet);
    ::close(dgram);
}

TEST_CASE_FIXTURE(Case, "activation: Server::from_fd serves another supervisor's socket; the fd stays the caller's") {
    const std::string path = ipc.path_of(name_of("handed"));
    const int fd = listening_socket(path);
    Child server = spawn([&]() -> std::string {
        auto s = ipc::Server::from_fd(fd, {}, ipc::Milliseconds::forever(), config);
        if (!s) return std::string("from_fd ") + errc_name(s.error().code);
        std::string out = s->name().str() + " " + (s->path() == path ? "path" : s->path()) + " " + serve_commands(*s);
        return out + (still_listening(fd) ? " open" : " closed");
    });
    auto p = ipc.get("handed");
    REQUIRE(p.has_value());
    CHECK(ping(*p) == "pong");
    REQUIRE(p->send(ipc::Message::text("stop"), ipc::Milliseconds(2000)).has_value());
    CHECK(server.result(5000) == "handed path ok 2 open");
    CHECK(file_exists(path));
    CHECK(still_listening(fd));
    ::close(fd);
}

TEST_CASE_FIXTURE(Case, "activation: after from_fd the caller may close its fd, even when its number is reused at once") {
    Child server = spawn([&]() -> std::string {
        const int alpha = supervisor_socket(ipc.path_of(name_of("alpha")));
        auto s = ipc::Server::from_fd(alpha, {}, ipc::Milliseconds::forever(), config);
        if (!s) return std::string("from_fd ") + errc_name(s.error().code);
        ::close(alpha);
        const int beta = supervisor_socket(ipc.path_of(name_of("beta")));  // takes alpha's number
        const std::string reused = beta == alpha ? "reused " : "not reused ";
        return reused + serve_commands(*s);
    });
    auto p = ipc.wait("alpha", ipc::Milliseconds(5000));
    REQUIRE(p.has_value());
    CHECK(ping(*p) == "pong");
    // beta's socket is nobody's server: no handshake comes from it.
    REQUIRE(eventually([&] { return file_exists(ipc.path_of(name_of("beta"))); }));
    CHECK(outcome(ipc.get("beta", ipc::Milliseconds(300))) == "timed_out");
    REQUIRE(p->send(ipc::Message::text("stop"), ipc::Milliseconds(2000)).has_value());
    CHECK(server.result(5000) == "reused ok 2");
}

TEST_CASE("activation: Server::from_fd refuses what it cannot serve, with the reason") {
    TempDir dir;
    auto from = [](int fd, std::string_view name = {}) {
        auto s = ipc::Server::from_fd(fd, name);
        return s ? std::string("ok ") + s->name().str() : std::string(errc_name(s.error().code));
    };
    int p[2];
    REQUIRE(::pipe2(p, O_CLOEXEC) == 0);
    CHECK(from(p[0]) == "socket");
    CHECK(from(-1) == "socket");
    const int quiet = supervisor_socket(dir.file("quiet.sock"), SOCK_STREAM, false);
    const int dgram = supervisor_socket(dir.file("dgram.sock"), SOCK_DGRAM, false);
    CHECK(from(quiet) == "socket");
    CHECK(from(dgram) == "socket");
    // No name given and none in the path, or an invalid one given.
    const int odd = listening_socket(dir.file("not.a.name"));
    CHECK(from(odd) == "invalid_name");
    CHECK(from(odd, "bad name") == "invalid_name");
    CHECK(from(odd, "good") == "ok good");
    const int plain = supervisor_socket(dir.file("control"));
    CHECK(from(plain) == "ok control");
    for (int fd : {p[0], p[1], quiet, dgram, odd, plain}) ::close(fd);
}

}  // TEST_SUITE
