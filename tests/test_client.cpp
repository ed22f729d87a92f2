// The client side with real sockets and real processes: Ipc::processes,
// exist, get and wait; Process::send, wait and close against our server.
#include "support/basics.hpp"
#include "support/child.hpp"
#include "support/raw_peer.hpp"
#include "support/server.hpp"
#include "support/temp.hpp"

#include <chrono>
#include <future>

#include <pthread.h>
#include <sys/resource.h>

using namespace ipc_test;

namespace {

std::string ask(ipc::Process& p, std::string_view what, std::int64_t timeout_ms = 3000) {
    auto s = p.send(ipc::Message::text(what), ipc::Milliseconds(timeout_ms));
    if (!s) return std::string("send ") + errc_name(s.error().code);
    auto m = p.wait(ipc::Milliseconds(timeout_ms));
    if (!m) return std::string("reply ") + errc_name(m.error().code);
    return m->content();
}

std::vector<std::string> names(const ipc::Result<std::vector<ipc::Name>>& r) {
    std::vector<std::string> out;
    if (r) {
        for (const auto& n : r.value()) out.push_back(n.str());
    }
    return out;
}

// "r:X" is answered X, anything else is only acknowledged.
ipc::Continuation<int> answer_r(const ipc::Message& m, ipc::Continuation<int> c, int n) {
    if (m.content().compare(0, 2, "r:") == 0) return c.respond(n + 1, ipc::Message::text(m.content().substr(2)));
    return c.continue_(n + 1);
}

}  // namespace

TEST_CASE("client: processes lists live servers sorted, never stale files, invalid names or other files") {
    Watchdog wd;
    TempDir dir;

    // A directory that does not exist lists nothing (and is not an error).
    ipc::Ipc missing(test_config(dir.file("missing")));
    auto none = missing.processes();
    REQUIRE(none.has_value());
    CHECK(none->empty());

    ipc::Ipc ipc(test_config(dir.path()));
    auto empty = ipc.processes();
    REQUIRE(empty.has_value());
    CHECK(empty->empty());

    ThreadServer<int> beta(ipc, name_of("beta"), 0, CommandReducer{});
    ThreadServer<int> alpha(ipc, name_of("alpha"), 0, CommandReducer{});
    ThreadServer<int> dash(ipc, name_of("Z_9-x"), 0, CommandReducer{});
    REQUIRE(wait_live(ipc, name_of("alpha")));
    REQUIRE(wait_live(ipc, name_of("beta")));
    REQUIRE(wait_live(ipc, name_of("Z_9-x")));
    REQUIRE(make_stale_socket(dir.file("gamma.sock")));
    RawListener invalid(dir.file("not.valid.sock"));  // live, but not a valid name
    REQUIRE(invalid.valid());
    RawListener no_suffix(dir.file("delta"));  // live, but no .sock
    REQUIRE(no_suffix.valid());
    {
        FILE* f = std::fopen(dir.file("epsilon.sock").c_str(), "w");  // not a socket
        REQUIRE(f != nullptr);
        std::fclose(f);
    }
    REQUIRE(::mkdir(dir.file("zeta.sock").c_str(), 0700) == 0);  // a directory

    auto listed = ipc.processes();
    REQUIRE(listed.has_value());
    CHECK(names(listed) == std::vector<std::string>{"Z_9-x", "alpha", "beta"});

    CHECK(ipc.exist(name_of("alpha")));
    CHECK(ipc.exist(name_of("beta")));
    CHECK_FALSE(ipc.exist(name_of("gamma")));
    CHECK_FALSE(ipc.exist(name_of("epsilon")));
    CHECK_FALSE(ipc.exist(name_of("zeta")));
    CHECK_FALSE(ipc.exist(name_of("nobody")));

    CHECK(beta.finish().has_value());
    CHECK(names(ipc.processes()) == std::vector<std::string>{"Z_9-x", "alpha"});
    CHECK_FALSE(ipc.exist(name_of("beta")));
}

TEST_CASE("client: get — not_found, connection_refused on a stale file, a Process on a live server") {
    Watchdog wd;
    TempDir dir;
    const ipc::Config config = test_config(dir.path());
    ipc::Ipc ipc(config);
    const ipc::Name name = name_of("srv");

    CHECK(outcome(ipc.get(name)) == "not_found");
    REQUIRE(make_stale_socket(ipc.path_of(name)));
    CHECK(outcome(ipc.get(name)) == "connection_refused");
    CHECK(file_exists(ipc.path_of(name)));  // get never removes anything

    Child server = spawn_server(config, name, 0, CommandReducer{});
    REQUIRE(wait_live(ipc, name));
    auto p = ipc.get(name);
    REQUIRE(p.has_value());
    CHECK(p->name() == name);
    CHECK(p->fd() >= 0);
    CHECK_FALSE(p->closed());
    CHECK(ask(*p, "ping") == "pong");
    REQUIRE(p->send(ipc::Message::text("stop"), ipc::Milliseconds(2000)).has_value());
    CHECK(outcome(p->wait(ipc::Milliseconds(2000))) == "closed");
    CHECK(server.result(5000) == "ok 2 drops=closed");
    CHECK(outcome(ipc.get(name)) == "not_found");
}

TEST_CASE("client: Ipc::wait without a timeout returns once the server appears") {
    Watchdog wd;
    TempDir dir;
    const ipc::Config config = test_config(dir.path());
    ipc::Ipc ipc(config);
    const ipc::Name name = name_of("later");

    SUBCASE("in a directory that does not exist yet") {
        const ipc::Config nested = test_config(dir.file("not/yet"));
        ipc::Ipc waiter(nested);
        Child server = spawn([nested, name] {
            sleep_ms(150);  // the scenario: a server that starts after its client
            ipc::Ipc mine(nested);
            auto s = mine.listen(name);
            if (!s) return std::string("listen failed");
            auto r = s->serve(0, CommandReducer{});
            return r ? "ok " + std::to_string(r.value()) : std::string("serve failed");
        });
        Stopwatch sw;
        auto p = waiter.wait(name);
        REQUIRE(p.has_value());
        CHECK(sw.elapsed() >= 100);
        CHECK(ask(*p, "ping") == "pong");
        REQUIRE(p->send(ipc::Message::text("stop"), ipc::Milliseconds(2000)).has_value());
        CHECK(outcome(p->wait(ipc::Milliseconds(2000))) == "closed");
        CHECK(server.result(5000) == "ok 2");
    }
    SUBCASE("with a stale socket file in the way") {
        REQUIRE(make_stale_socket(ipc.path_of(name)));
        Child server = spawn([config, name] {
            sleep_ms(150);
            ipc::Ipc mine(config);
            auto s = mine.listen(name);
            if (!s) return std::string("listen failed");
            auto r = s->serve(0, CommandReducer{});
            return r ? "ok " + std::to_string(r.value()) : std::string("serve failed");
        });
        auto p = ipc.wait(name);
        REQUIRE(p.has_value());
        CHECK(ask(*p, "ping") == "pong");
        REQUIRE(p->send(ipc::Message::text("stop"), ipc::Milliseconds(2000)).has_value());
        CHECK(outcome(p->wait(ipc::Milliseconds(2000))) == "closed");
        CHECK(server.result(5000) == "ok 2");
    }
}

TEST_CASE("client: Ipc::wait with a timeout gives up in time, or succeeds when the server comes in time") {
    Watchdog wd;
    TempDir dir;
    const ipc::Config config = test_config(dir.path());
    ipc::Ipc ipc(config);
    const ipc::Name name = name_of("srv");

    Stopwatch sw;
    CHECK(outcome(ipc.wait(name, ipc::Milliseconds(250))) == "timed_out");
    CHECK(sw.elapsed() >= 250);
    CHECK(sw.elapsed() < 2750);

    REQUIRE(make_stale_socket(ipc.path_of(name)));
    Stopwatch stale;
    CHECK(outcome(ipc.wait(name, ipc::Milliseconds(250))) == "timed_out");
    CHECK(stale.elapsed() >= 250);
    CHECK(stale.elapsed() < 2750);

    Child server = spawn([config, name] {
        sleep_ms(100);
        ipc::Ipc mine(config);
        auto s = mine.listen(name);
        if (!s) return std::string("listen failed");
        auto r = s->serve(0, CommandReducer{});
        return r ? "ok " + std::to_string(r.value()) : std::string("serve failed");
    });
    auto p = ipc.wait(name, ipc::Milliseconds(3000));
    REQUIRE(p.has_value());
    CHECK(ask(*p, "stop") == "reply closed");
    CHECK(server.result(5000) == "ok 1");

    CHECK(outcome(ipc.wait(name, ipc::Milliseconds(0))) == "timed_out");
}

TEST_CASE("client: Process::wait with and without a timeout") {
    Watchdog wd;
    TempDir dir;
    ipc::Config config = test_config(dir.path());
    config.flush_ack_before_reducer = true;  // send() returns while the slow reducer works
    ipc::Ipc ipc(config);
    const ipc::Name name = name_of("srv");

    // The reducer answers "later" only when the test opens the gate.
    int gate[2];
    REQUIRE(::pipe2(gate, O_CLOEXEC) == 0);
    auto reducer = [&gate](const ipc::Message& m, ipc::Continuation<int> c, int n) {
        if (m.content() != "later") return CommandReducer{}(m, c, n, ipc::Peer{});
        struct pollfd pfd {};
        pfd.fd = gate[0];
        pfd.events = POLLIN;
        char b = 0;
        bool open = ::poll(&pfd, 1, 5000) == 1 && ::read(gate[0], &b, 1) == 1;
        return c.respond(n + 1, ipc::Message::text(open ? "now" : "never"));
    };
    {
        ThreadServer<int> server(ipc, name, 0, reducer);
        REQUIRE(wait_live(ipc, name));
        auto p = ipc.get(name);
        REQUIRE(p.has_value());

        // With a timeout: nothing comes, it gives up at its deadline and the
        // Process stays usable.
        Stopwatch sw;
        CHECK(outcome(p->wait(ipc::Milliseconds(300))) == "timed_out");
        CHECK(sw.elapsed() >= 300);
        CHECK(sw.elapsed() < 2800);  // heartbeats arriving do not extend it
        CHECK_FALSE(p->closed());
        CHECK(ask(*p, "ping") == "pong");

        // Without a timeout: returns when the response comes.
        REQUIRE(p->send(ipc::Message::text("later"), ipc::Milliseconds(2000)).has_value());
        std::thread opener([&] {
            sleep_ms(200);  // the scenario: a slow reducer
            (void)write_all_fd(gate[1], "x");
        });
        Stopwatch forever;
        auto m = p->wait();
        opener.join();
        REQUIRE(m.has_value());
        CHECK(m->content() == "now");
        CHECK(forever.elapsed() >= 150);

        // Without a timeout: returns (empty) when the server closes.
        auto closing = std::async(std::launch::async, [&] { return outcome(p->wait()); });
        server.stop_handle().request();
        CHECK(closing.get() == "closed");
        auto r = server.finish();
        REQUIRE(r.has_value());
        CHECK(r.value() == 2);
    }
    ::close(gate[0]);
    ::close(gate[1]);
}

TEST_CASE("client: responses to non-last messages of one send are kept in order, also across a move") {
    Watchdog wd;
    TempDir dir;
    ipc::Ipc ipc(test_config(dir.path()));
    const ipc::Name name = name_of("srv");
    ThreadServer<int> server(ipc, name, 0, &answer_r);
    REQUIRE(wait_live(ipc, name));

    auto p = ipc.get(name);
    REQUIRE(p.has_value());
    // An initializer list: three answered, the last only acknowledged.
    REQUIRE(p->send({ipc::Message::text("r:A"), ipc::Message::text("r:B"), ipc::Message::text("r:C"),
                     ipc::Message::text("quiet")},
                    ipc::Milliseconds(3000))
                .has_value());
    auto a = p->wait(ipc::Milliseconds(0));
    REQUIRE(a.has_value());
    CHECK(a->content() == "A");

    // Move-assigned into another Process, the rest is still there, in order.
    auto q = ipc.get(name);
    REQUIRE(q.has_value());
    ipc::Process moved = std::move(q).value();
    moved = std::move(p).value();
    auto b = moved.wait(ipc::Milliseconds(0));
    REQUIRE(b.has_value());
    CHECK(b->content() == "B");
    ipc::Process constructed(std::move(moved));
    auto c = constructed.wait(ipc::Milliseconds(0));
    REQUIRE(c.has_value());
    CHECK(c->content() == "C");
    CHECK(outcome(constructed.wait(ipc::Milliseconds(150))) == "timed_out");

    // A range (vector) works the same way.
    std::vector<ipc::Message> batch{ipc::Message::text("r:1"), ipc::Message::text("r:2")};
    REQUIRE(constructed.send(batch, ipc::Milliseconds(3000)).has_value());
    CHECK(constructed.wait(ipc::Milliseconds(2000)).value().content() == "1");
    CHECK(constructed.wait(ipc::Milliseconds(2000)).value().content() == "2");

    REQUIRE(constructed.close().has_value());
    auto r = server.finish();
    REQUIRE(r.has_value());
    CHECK(r.value() == 6);
}

TEST_CASE("client: close and the destructor finish the close handshake; a vanished client is end of file") {
    Watchdog wd;
    TempDir dir;
    ipc::Ipc ipc(test_config(dir.path()));
    const ipc::Name name = name_of("srv");
    ThreadServer<int> server(ipc, name, 0, CommandReducer{});
    REQUIRE(wait_live(ipc, name));

    {
        auto p = ipc.get(name);
        REQUIRE(p.has_value());
        CHECK(ask(*p, "ping") == "pong");
        Stopwatch sw;
        CHECK(outcome(p->close()) == "value");
        CHECK(sw.elapsed() < 500);
        CHECK(p->closed());
        CHECK(p->fd() < 0);
        CHECK(outcome(p->close()) == "value");  // once closed, close is a no-op
        CHECK(outcome(p->send(ipc::Message::text("ping"))) == "closed");
        CHECK(outcome(p->wait(ipc::Milliseconds(10))) == "closed");
    }
    CHECK(eventually([&] { return server.drops.count(ipc::DropReason::closed) == 1; }, 2000));
    {
        auto p = ipc.get(name);
        REQUIRE(p.has_value());
        CHECK(ask(*p, "ping") == "pong");
    }  // the destructor closes
    CHECK(eventually([&] { return server.drops.count(ipc::DropReason::closed) == 2; }, 2000));
    {
        auto p = ipc.get(name);
        REQUIRE(p.has_value());
        ::shutdown(p->fd(), SHUT_RDWR);  // gone without a word
        CHECK(outcome(p->wait(ipc::Milliseconds(1000))) == "closed_by_peer");
    }
    CHECK(eventually([&] { return server.drops.count(ipc::DropReason::end_of_file) == 1; }, 2000));
    CHECK(server.drops.count(ipc::DropReason::closed) == 2);
    auto r = server.finish();
    REQUIRE(r.has_value());
    CHECK(r.value() == 2);
}

TEST_CASE("client: a server killed with SIGKILL — wait and send report closed_by_peer, then closed") {
    Watchdog wd;
    TempDir dir;
    const ipc::Config config = test_config(dir.path());
    ipc::Ipc ipc(config);
    const ipc::Name name = name_of("srv");
    Child server = spawn_server(config, name, 0, CommandReducer{});
    REQUIRE(wait_live(ipc, name));
    auto p = ipc.get(name);
    auto q = ipc.get(name);
    REQUIRE(p.has_value());
    REQUIRE(q.has_value());
    CHECK(ask(*p, "ping") == "pong");

    auto waiting = std::async(std::launch::async, [&] { return outcome(p->wait(ipc::Milliseconds(5000))); });
    server.kill_now();
    CHECK(waiting.get() == "closed_by_peer");
    CHECK(p->closed());
    CHECK(outcome(p->wait(ipc::Milliseconds(10))) == "closed");
    auto sent = q->send(ipc::Message::text("ping"), ipc::Milliseconds(1000));
    CHECK(outcome(sent) == "closed_by_peer");
    CHECK(q->closed());
    CHECK_FALSE(ipc.exist(name));
    CHECK(outcome(ipc.get(name)) == "connection_refused");
}

TEST_CASE("client: heartbeats never surface between our client and our server") {
    Watchdog wd;
    TempDir dir;
    const ipc::Config config = test_config(dir.path(), 20);  // both sides beat every 20 ms
    ipc::Ipc ipc(config);
    const ipc::Name name = name_of("srv");
    Child server = spawn_server(config, name, 0, CommandReducer{});
    REQUIRE(wait_live(ipc, name));
    auto p = ipc.get(name);
    REQUIRE(p.has_value());
    // Idle for many periods: no message, no error, nothing reduced.
    CHECK(outcome(p->wait(ipc::Milliseconds(400))) == "timed_out");
    sleep_ms(100);  // idle outside wait(): the server's heartbeats pile up unread
    CHECK(outcome(p->wait(ipc::Milliseconds(100))) == "timed_out");
    CHECK(ask(*p, "count") == "1");
    REQUIRE(p->send(ipc::Message::text("stop"), ipc::Milliseconds(2000)).has_value());
    CHECK(outcome(p->wait(ipc::Milliseconds(2000))) == "closed");
    CHECK(server.result(5000) == "ok 2 drops=closed");
}

namespace {
std::atomic<long> storm_hits{0};
extern "C" void count_storm(int) { storm_hits.fetch_add(1, std::memory_order_relaxed); }
}  // namespace

TEST_CASE("client: a blocking wait waits in recv() and keeps its deadline, through a signal storm") {
    Watchdog wd;
    TempDir dir;
    const ipc::Config config = test_config(dir.path(), 40);  // heartbeats every 40 ms, both ways
    ipc::Ipc ipc(config);
    const ipc::Name name = name_of("srv");
    Child server = spawn_server(config, name, 0, CommandReducer{});
    REQUIRE(wait_live(ipc, name));
    auto p = ipc.get(name);
    REQUIRE(p.has_value());
    CHECK(ask(*p, "ping") == "pong");
    // The socket was made blocking for the wait (SO_RCVTIMEO ends it);
    // every other call on it says MSG_DONTWAIT.
    CHECK((::fcntl(p->fd(), F_GETFL) & O_NONBLOCK) == 0);

    // Deadlines shorter than, near and longer than the socket's slack: never
    // early. (Late only by scheduling: the bound is loose on purpose.)
    for (long t : {5L, 12L, 33L, 90L, 170L}) {
        Stopwatch sw;
        CHECK(outcome(p->wait(ipc::Milliseconds(t))) == "timed_out");
        CHECK(sw.elapsed() >= t);
        CHECK(sw.elapsed() < t + 400);
    }
    CHECK(ask(*p, "ping") == "pong");  // still usable, still paired

    // A storm of signals whose handler does not restart calls: every recv()
    // is interrupted, the wait goes on to its deadline, and a message that
    // comes during the storm is received whole.
    struct sigaction sa {};
    struct sigaction old {};
    sa.sa_handler = &count_storm;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;  // no SA_RESTART
    REQUIRE(::sigaction(SIGUSR1, &sa, &old) == 0);
    const pthread_t waiter = ::pthread_self();
    std::atomic<bool> storming{true};
    storm_hits = 0;
    std::thread storm([&] {
        while (storming.load()) {
            ::pthread_kill(waiter, SIGUSR1);
            std::this_thread::sleep_for(std::chrono::microseconds(200));
        }
    });
    Stopwatch sw;
    CHECK(outcome(p->wait(ipc::Milliseconds(250))) == "timed_out");
    CHECK(sw.elapsed() >= 250);
    CHECK(sw.elapsed() < 250 + 600);
    CHECK(ask(*p, "ping") == "pong");
    storming = false;
    storm.join();
    CHECK(storm_hits.load() > 10);
    ::sigaction(SIGUSR1, &old, nullptr);

    // Idle in recv() for several heartbeat periods: the heartbeats both ways
    // are handled, nothing surfaces, nothing was counted as a message.
    CHECK(outcome(p->wait(ipc::Milliseconds(300))) == "timed_out");
    CHECK(ask(*p, "count") == "4");

    // Someone makes fd() non-blocking again (an event loop it was given):
    // the wait does not spin on EAGAIN, it goes back to poll(), and leaves
    // the flag as it was set.
    REQUIRE(::fcntl(p->fd(), F_SETFL, ::fcntl(p->fd(), F_GETFL) | O_NONBLOCK) == 0);
    auto cpu_ms = [] {
        struct rusage u {};
        ::getrusage(RUSAGE_THREAD, &u);
        return (u.ru_utime.tv_sec + u.ru_stime.tv_sec) * 1000L + (u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1000L;
    };
    const long cpu0 = cpu_ms();
    Stopwatch idle;
    CHECK(outcome(p->wait(ipc::Milliseconds(300))) == "timed_out");
    CHECK(idle.elapsed() >= 300);
    CHECK(cpu_ms() - cpu0 < 150);  // spinning takes about all of the 300 ms
    CHECK((::fcntl(p->fd(), F_GETFL) & O_NONBLOCK) != 0);
    CHECK(ask(*p, "ping") == "pong");

    REQUIRE(p->send(ipc::Message::text("stop"), ipc::Milliseconds(2000)).has_value());
    CHECK(outcome(p->wait(ipc::Milliseconds(2000))) == "closed");
    CHECK(server.result(5000) == "ok 6 drops=closed");
}

TEST_CASE("client: a large message is sent from the caller's bytes; a send that times out keeps the rest, so the frame still comes out whole") {
    Watchdog wd;
    TempDir dir;
    ipc::Config config = test_config(dir.path());
    config.flush_ack_before_reducer = true;  // send() returns while the reducer waits at the gate
    ipc::Ipc ipc(config);
    const ipc::Name name = name_of("srv");
    const std::size_t size = 4u << 20;  // far more than the socket buffers hold
    auto pattern = [](std::size_t i) { return static_cast<char>((i * 31) ^ (i >> 11)); };
    int gate[2];
    REQUIRE(::pipe2(gate, O_CLOEXEC) == 0);
    // The carry counts large contents that arrived intact, and bad ones by 1000.
    auto reducer = [&](const ipc::Message& m, ipc::Continuation<int> c, int n) {
        if (m.content() == "hold") {
            struct pollfd pfd {};
            pfd.fd = gate[0];
            pfd.events = POLLIN;
            char b = 0;
            (void)(::poll(&pfd, 1, 10000) == 1 && ::read(gate[0], &b, 1) == 1);
            return c.continue_(n);
        }
        bool intact = m.content().size() == size;
        for (std::size_t i = 0; intact && i < size; ++i) intact = m.content()[i] == pattern(i);
        return c.respond(n + (intact ? 1 : 1000), ipc::Message::text(intact ? "intact" : "corrupt"));
    };
    {
        ThreadServer<int> server(ipc, name, 0, reducer);
        REQUIRE(wait_live(ipc, name));
        auto p = ipc.get(name);
        REQUIRE(p.has_value());

        // In time: the content goes out of the message itself and arrives whole.
        std::string content(size, '\0');
        for (std::size_t i = 0; i < size; ++i) content[i] = pattern(i);
        {
            ipc::Message m = ipc::Message::make("application/octet-stream", content).value();
            REQUIRE(p->send(m, ipc::Milliseconds(10000)).has_value());
            auto r = p->wait(ipc::Milliseconds(10000));
            REQUIRE(r.has_value());
            CHECK(r->content() == "intact");
        }

        // Out of time: the server is held, the socket fills, send() gives up
        // (desynchronized); the message is then overwritten and dropped. The
        // rest was copied when send() returned, so close() finishes the frame
        // with the original bytes.
        REQUIRE(p->send(ipc::Message::text("hold"), ipc::Milliseconds(2000)).has_value());
        {
            ipc::Message m = ipc::Message::make("application/octet-stream", content).value();
            auto s = p->send(m, ipc::Milliseconds(200));
            REQUIRE_FALSE(s.has_value());
            CHECK(s.error().code == ipc::Errc::timed_out);
            m.content().assign(size, 'x');
        }
        REQUIRE(write_all_fd(gate[1], "x"));
        CHECK(p->close(ipc::Milliseconds(10000)).has_value());
        server.stop_handle().request();
        auto r = server.finish();
        REQUIRE(r.has_value());
        CHECK(r.value() == 2);  // both large contents intact
    }
    ::close(gate[0]);
    ::close(gate[1]);
}

namespace {
int send_buffer_of(int fd) {
    int v = 0;
    socklen_t len = sizeof v;
    return ::getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &v, &len) == 0 ? v : -1;
}
}  // namespace

TEST_CASE("client: the send buffer grows (Config::send_buffer) once a large message is queued, and only then") {
    Watchdog wd;
    TempDir dir;
    const int fresh = [] {
        const int s = ::socket(AF_UNIX, SOCK_STREAM, 0);
        const int v = send_buffer_of(s);
        ::close(s);
        return v;
    }();
    REQUIRE(fresh > 0);
    long wmem_max = 0;
    {
        FILE* f = std::fopen("/proc/sys/net/core/wmem_max", "r");
        if (f != nullptr) {
            if (std::fscanf(f, "%ld", &wmem_max) != 1) wmem_max = 0;
            std::fclose(f);
        }
    }
    for (const std::size_t setting : {std::size_t{256} << 10, std::size_t{0}}) {
        CAPTURE(setting);
        ipc::Config config = test_config(dir.path());
        config.send_buffer = setting;
        ipc::Ipc ipc(config);
        const ipc::Name name = name_of(setting == 0 ? "off" : "on");
        ThreadServer<int> server(ipc, name, 0, CommandReducer{});
        REQUIRE(wait_live(ipc, name));
        auto p = ipc.get(name);
        REQUIRE(p.has_value());
        CHECK(ask(*p, "ping") == "pong");
        CHECK(send_buffer_of(p->fd()) == fresh);  // small messages: the kernel's default
        const ipc::Message big = ipc::Message::make("application/octet-stream", std::string(std::size_t{1} << 20, 'b')).value();
        REQUIRE(p->send(big, ipc::Milliseconds(10000)).has_value());
        auto echoed = p->wait(ipc::Milliseconds(10000));
        REQUIRE(echoed.has_value());
        CHECK(echoed.value() == big);
        if (setting == 0) {
            CHECK(send_buffer_of(p->fd()) == fresh);
        } else if (wmem_max >= static_cast<long>(setting)) {
            CHECK(send_buffer_of(p->fd()) == static_cast<int>(2 * setting));  // the kernel doubles what is set
        } else {
            MESSAGE("net.core.wmem_max is " << wmem_max << ": the send buffer is capped there");
            CHECK(send_buffer_of(p->fd()) >= fresh / 2);
        }
        REQUIRE(p->send(ipc::Message::text("stop"), ipc::Milliseconds(2000)).has_value());
        CHECK(outcome(p->wait(ipc::Milliseconds(2000))) == "closed");
        CHECK(server.finish().has_value());
    }
}

TEST_CASE("client: names as strings — get, wait, exist and listen take them, and say invalid_name") {
    Watchdog wd;
    TempDir dir;
    ipc::Ipc ipc(test_config(dir.path()));
    CHECK(outcome(ipc.get("not.a name")) == "invalid_name");
    CHECK(outcome(ipc.get("", ipc::Milliseconds(100))) == "invalid_name");
    CHECK(outcome(ipc.wait("a/b", ipc::Milliseconds(100))) == "invalid_name");
    CHECK(outcome(ipc.listen("x y")) == "invalid_name");
    CHECK_FALSE(ipc.exist("bad.name"));
    CHECK_FALSE(ipc.exist("srv"));
    CHECK(outcome(ipc.get("srv")) == "not_found");

    auto server = ipc.listen("srv");
    REQUIRE(server.has_value());
    std::thread serving([&] { (void)server->serve(0, CommandReducer{}); });
    auto p = ipc.wait(std::string("srv"), ipc::Milliseconds(5000));
    REQUIRE(p.has_value());
    CHECK(p->name().str() == "srv");
    CHECK(ipc.exist("srv"));
    CHECK(ipc.exist(std::string_view("srv")));
    CHECK(ask(*p, "ping") == "pong");
    auto q = ipc.get("srv");
    REQUIRE(q.has_value());
    CHECK(ask(*q, "count") == "2");
    REQUIRE(p->send(ipc::Message::text("stop"), ipc::Milliseconds(2000)).has_value());
    serving.join();
}

TEST_CASE("client: every timeout takes a std::chrono duration, rounded up to the millisecond") {
    using namespace std::chrono_literals;
    static_assert(ipc::Milliseconds(500ms).count() == 500, "ms");
    static_assert(ipc::Milliseconds(2s).count() == 2000, "s");
    static_assert(ipc::Milliseconds(1500us).count() == 2, "rounded up");
    static_assert(ipc::Milliseconds(1ns).count() == 1, "never shorter than asked");
    static_assert(ipc::Milliseconds(0ns).count() == 0, "zero");
    static_assert(ipc::Milliseconds(std::chrono::hours::max()).count() == 0x7FFFFFFFFFFFFFFF, "saturated");
    static_assert(ipc::Milliseconds(-5ms).is_forever(), "negative: no limit");
    CHECK(ipc::Milliseconds(std::chrono::duration<double>(0.0015)).count() == 2);

    Watchdog wd;
    TempDir dir;
    ipc::Config config = test_config(dir.path());
    config.close_timeout = 1500ms;
    ipc::Ipc ipc(config);
    ThreadServer<int> server(ipc, name_of("srv"), 0, CommandReducer{});
    REQUIRE(wait_live(ipc, name_of("srv")));
    auto p = ipc.wait("srv", 5s);
    REQUIRE(p.has_value());
    Stopwatch sw;
    CHECK(outcome(p->wait(120ms)) == "timed_out");
    CHECK(sw.elapsed() >= 120);
    REQUIRE(p->send(ipc::Message::text("ping"), 2s).has_value());
    auto r = p->wait(std::chrono::duration<double>(2.5));
    REQUIRE(r.has_value());
    CHECK(r->content() == "pong");
    CHECK(p->close(1s).has_value());
}
