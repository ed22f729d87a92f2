// Section 11: the client, Process, with real sockets and real processes:
// send, wait and close against our server; inside the user's own poll()
// loop (post, step, take); and against a raw fake server, byte for byte.
#include "support/basics.hpp"
#include "support/bytes.hpp"
#include "support/child.hpp"
#include "support/frames.hpp"
#include "support/raw_peer.hpp"
#include "support/server.hpp"
#include "support/temp.hpp"

#include <chrono>
#include <future>

#include <poll.h>
#include <pthread.h>
#include <sys/resource.h>

using namespace ipc_test;

namespace {

// "r:X" is answered X, anything else is only acknowledged.
ipc::Continuation<int> answer_r(const ipc::Message& m, ipc::Continuation<int> c, int n) {
    if (m.content().compare(0, 2, "r:") == 0) return c.respond(n + 1, ipc::Message::text(m.content().substr(2)));
    return c.continue_(n + 1);
}

}  // namespace

TEST_SUITE("client") {

TEST_CASE_FIXTURE(Case, "client: Process::wait with and without a timeout") {
    config.flush_ack_before_reducer = true;  // send() returns while the slow reducer works
    reconfigure();

    // The reducer answers "later" only when the test opens the gate.
    int gate[2];
    REQUIRE(::pipe2(gate, O_CLOEXEC) == 0);
    auto reducer = [&gate](const ipc::Message& m, ipc::Continuation<int> c, int n) {
        if (m.content() != "later") return CommandReducer{}(m, std::move(c), n, ipc::Peer{});
        struct pollfd pfd {};
        pfd.fd = gate[0];
        pfd.events = POLLIN;
        char b = 0;
        bool open = ::poll(&pfd, 1, 5000) == 1 && ::read(gate[0], &b, 1) == 1;
        return c.respond(n + 1, ipc::Message::text(open ? "now" : "never"));
    };
    {
        ThreadServer<int> server(ipc, name, 0, reducer);
        auto p = get_live(ipc, name);

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
        server.finish_expecting(2);
    }
    ::close(gate[0]);
    ::close(gate[1]);
}

TEST_CASE_FIXTURE(Case, "client: responses to non-last messages of one send are kept in order, also across a move") {
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
    server.finish_expecting(6);
}

TEST_CASE_FIXTURE(Case, "client: close and the destructor finish the close handshake; a vanished client is end of file") {
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
    server.finish_expecting(2);
}

TEST_CASE_FIXTURE(Case, "client: a server killed with SIGKILL — wait and send report closed_by_peer, then closed") {
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

TEST_CASE_FIXTURE(ServedCaseBeating<20>, "client: heartbeats never surface between our client and our server") {
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

TEST_CASE_FIXTURE(ServedCaseBeating<40>, "client: a blocking wait waits in recv() and keeps its deadline, through a signal storm") {
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

TEST_CASE_FIXTURE(Case, "client: a large message is sent from the caller's bytes; a send that times out keeps the rest, so the frame still comes out whole") {
    config.flush_ack_before_reducer = true;  // send() returns while the reducer waits at the gate
    reconfigure();
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
        auto p = get_live(ipc, name);

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
        server.finish_expecting(2);  // both large contents intact
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
        auto p = get_live(ipc, name);
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


// ===========================================================================
// The client in the user's poll loop
// ===========================================================================


namespace {

// Polls the process once (at most timeout_ms) and steps it.
ipc::Result<ipc::Unit> pump(ipc::Process& p, int timeout_ms) {
    struct pollfd pfd {};
    pfd.fd = p.fd();
    pfd.events = p.events();
    int r = ::poll(&pfd, 1, timeout_ms);
    return p.step(r > 0 ? pfd.revents : 0);
}

}  // namespace

TEST_CASE_FIXTURE(Case, "client loop: posted messages go one at a time, answers are taken in order, nothing blocks") {
    ThreadServer<int> server(ipc, name, 0, CommandReducer{});
    auto p = get_live(ipc, name);

    CHECK(p->events() == POLLIN);
    REQUIRE(p->post(ipc::Message::text("a")).has_value());
    REQUIRE(p->post(ipc::Message::text("b")).has_value());
    REQUIRE(p->post(ipc::Message::text("count")).has_value());
    CHECK(p->unacknowledged() == 3);  // one in flight, two waiting for its ack

    // A blocking send() would mistake a posted message's ack for its own.
    CHECK(outcome(p->send(ipc::Message::text("x"), ipc::Milliseconds(100))) == "invalid_argument");

    std::vector<std::string> got;
    ipc::Message m;
    Stopwatch sw;
    while (got.size() < 3 && sw.elapsed() < 5000) {
        REQUIRE(pump(*p, 100).has_value());
        while (p->take(m)) got.push_back(m.content());
    }
    CHECK(got == std::vector<std::string>{"a", "b", "3"});  // the server saw exactly three messages, in order
    CHECK(p->unacknowledged() == 0);
    CHECK_FALSE(p->take(m));

    // Blocking calls work again once nothing posted is pending.
    CHECK(outcome(p->send(ipc::Message::text("ping"), ipc::Milliseconds(2000))) == "value");
    auto pong = p->wait(ipc::Milliseconds(2000));
    REQUIRE(pong.has_value());
    CHECK(pong->content() == "pong");

    // The server's close reaches step() as Errc::closed, after close ok.
    REQUIRE(p->post(ipc::Message::text("close")).has_value());
    ipc::Result<ipc::Unit> r = ipc::Unit{};
    while (r.has_value() && sw.elapsed() < 8000) r = pump(*p, 100);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error() == ipc::Errc::closed);
    CHECK(p->closed());
    CHECK(outcome(p->post(ipc::Message::text("late"))) == "closed");
    auto result = server.finish();
    REQUIRE(result.has_value());
    CHECK(result.value() == 5);  // a, b, count, ping, close
}

// ===========================================================================
// A raw fake server against our client (Process)
// ===========================================================================

namespace {

template <class T>
bool not_ready(const std::future<T>& f) {
    return f.wait_for(std::chrono::milliseconds(0)) == std::future_status::timeout;
}

// A fake server: a raw listener at the path our client connects to.
struct FakeServer {
    TempDir dir;
    ipc::Ipc ipc;
    ipc::Name name = name_of("fake");
    RawListener listener;
    explicit FakeServer(std::int64_t heartbeat_ms = test_heartbeat_ms)
        : ipc(test_config(dir.path(), heartbeat_ms)), listener(ipc.path_of(name)) {
        REQUIRE(listener.valid());
    }
};

// Starts ipc.get() on another thread and accepts it; `conn` is the fake
// server's side. The handshake is left to the caller.
std::future<ipc::Result<ipc::Process>> start_get(FakeServer& fake, RawConn& conn,
                                                 ipc::Milliseconds timeout = ipc::Milliseconds(3000)) {
    auto fut = std::async(std::launch::async, [&fake, timeout] { return fake.ipc.get(fake.name, timeout); });
    conn = fake.listener.accept(3000);
    REQUIRE(conn.valid());
    return fut;
}

// A Process whose handshake with the fake server is done.
ipc::Process connected(FakeServer& fake, RawConn& conn) {
    auto fut = start_get(fake, conn);
    REQUIRE(conn.send(start_frame()));
    Frame fr;
    REQUIRE(conn.read_frame(fr, 2000));
    REQUIRE(fr.is(start_ok_frame()));
    auto p = fut.get();
    REQUIRE(p.has_value());
    return std::move(p).value();
}

// The fake server starts a close: connection close out, then our client's
// close ok and the end of the stream, with nothing else between.
void close_from_server(RawConn& conn) {
    REQUIRE(conn.send(close_frame()));
    std::string before;
    CHECK(conn.wait_eof(2000, &before));
    CHECK(to_hex(before) == to_hex(close_ok_frame()));
}

// A case against the fake server with the handshake done: `p` is our
// Process, `conn` the fake server's side (TEST_CASE_FIXTURE(Connected, ...)).
struct Connected {
    Watchdog wd;
    FakeServer fake;
    RawConn conn;
    ipc::Process p = connected(fake, conn);
};

}  // namespace

TEST_CASE("raw server vs client: handshake — start ok byte for byte, only after connection start") {
    Watchdog wd;
    FakeServer fake;
    RawConn conn;
    auto fut = start_get(fake, conn);
    CHECK(to_hex(conn.collect(150)) == "");  // the client speaks only after connection start
    CHECK(not_ready(fut));

    REQUIRE(conn.send(start_frame()));
    CHECK(to_hex(conn.read_exact(start_ok_frame().size(), 2000)) ==
          "000a746578742f706c61696e0000001f696e6e6d696e642f6970633a636f6e6e656374696f6e2e73746172742d6f6bce");
    auto p = fut.get();
    REQUIRE(p.has_value());
    CHECK(p->name().str() == "fake");
    CHECK_FALSE(p->closed());

    // close(): connection close, then it waits for close ok, then closes.
    auto closing = std::async(std::launch::async, [&] { return p->close(ipc::Milliseconds(2000)); });
    Frame fr;
    REQUIRE(conn.read_frame(fr, 2000));
    CHECK(to_hex(fr.raw) == to_hex(close_frame()));
    CHECK(not_ready(closing));
    REQUIRE(conn.send(close_ok_frame()));
    CHECK(outcome(closing.get()) == "value");
    CHECK(p->closed());
    std::string before;
    CHECK(conn.wait_eof(2000, &before));
    CHECK(to_hex(before) == "");
}

TEST_CASE("raw server vs client: handshake variations and failures") {
    Watchdog wd;
    FakeServer fake;
    RawConn conn;

    SUBCASE("heartbeats before connection start are tolerated; start arriving byte by byte") {
        auto fut = start_get(fake, conn);
        REQUIRE(conn.send(heartbeat_frame() + heartbeat_frame()));
        REQUIRE(conn.send_bytewise(start_frame()));
        Frame fr;
        REQUIRE(conn.read_frame(fr, 2000));
        CHECK(fr.is(start_ok_frame()));
        auto p = fut.get();
        CHECK(outcome(p) == "value");
        conn.close();  // p's destructor does not wait for a close ok
    }
    SUBCASE("an application message before connection start is a protocol error") {
        auto fut = start_get(fake, conn);
        REQUIRE(conn.send(text_frame("hello")));
        CHECK(outcome(fut.get()) == "protocol");
        CHECK(conn.wait_eof(2000));
    }
    SUBCASE("connection close before connection start is answered, get fails as closed") {
        auto fut = start_get(fake, conn);
        close_from_server(conn);
        CHECK(outcome(fut.get()) == "closed");
    }
    SUBCASE("a silent server makes get time out") {
        Stopwatch sw;
        auto fut = start_get(fake, conn, ipc::Milliseconds(200));
        CHECK(outcome(fut.get()) == "timed_out");
        CHECK(sw.elapsed() >= 200);
        CHECK(sw.elapsed() < 2700);
    }
    SUBCASE("a server that hangs up before connection start refused us: permission_denied") {
        auto fut = start_get(fake, conn);
        conn.close();
        CHECK(outcome(fut.get()) == "permission_denied");  // 0.1: closed_by_peer (issue 10)
    }
    SUBCASE("a malformed connection start is a malformed frame") {
        auto fut = start_get(fake, conn);
        std::string bad = start_frame();
        bad.back() = 'x';
        REQUIRE(conn.send(bad));
        CHECK(outcome(fut.get()) == "malformed_frame");
    }
}

TEST_CASE_FIXTURE(Connected, "raw server vs client: send waits for each ack; a response to a non-last message is kept for wait") {
    std::vector<ipc::Message> batch{ipc::Message::text("a"), ipc::Message::of("application/json", "[]")};
    auto sending = std::async(std::launch::async, [&] { return p.send(batch, ipc::Milliseconds(3000)); });
    Frame fr;
    REQUIRE(conn.read_frame_skipping_heartbeats(fr, 2000));
    CHECK(to_hex(fr.raw) == to_hex(text_frame("a")));
    // No ack yet: the second message is not sent, send() has not returned.
    for (const Frame& x : conn.frames_within(150)) CHECK(to_hex(x.raw) == to_hex(heartbeat_frame()));
    CHECK(not_ready(sending));
    // The ack and a response to "a" in one write.
    REQUIRE(conn.send(ack_frame() + text_frame("answer to a")));
    REQUIRE(conn.read_frame_skipping_heartbeats(fr, 2000));
    CHECK(to_hex(fr.raw) == to_hex(frame("application/json", "[]")));
    CHECK(not_ready(sending));
    REQUIRE(conn.send(ack_frame()));
    CHECK(outcome(sending.get()) == "value");

    auto kept = p.wait(ipc::Milliseconds(0));
    REQUIRE(kept.has_value());
    CHECK(kept->content() == "answer to a");

    // Without an ack, send times out.
    Stopwatch sw;
    auto lonely = p.send(ipc::Message::text("b"), ipc::Milliseconds(200));
    CHECK(outcome(lonely) == "timed_out");
    CHECK(sw.elapsed() >= 200);
    REQUIRE(conn.read_frame_skipping_heartbeats(fr, 2000));
    CHECK(fr.is(text_frame("b")));
    conn.close();
}

TEST_CASE("raw server vs client: wait hides heartbeats, sends one each silent period and answers none") {
    Watchdog wd;

    SUBCASE("a silent server gets a heartbeat each period, wait gives up at its deadline") {
        FakeServer fake;
        RawConn conn;
        ipc::Process p = connected(fake, conn);
        Stopwatch sw;
        auto waiting = std::async(std::launch::async, [&] { return p.wait(ipc::Milliseconds(400)); });
        auto frames = conn.frames_within(600);
        CHECK(outcome(waiting.get()) == "timed_out");
        CHECK(sw.elapsed() >= 400);
        CHECK(frames.size() >= 2);   // 400 ms / 50 ms, with room for a loaded machine
        CHECK(frames.size() <= 9);
        for (const Frame& x : frames) CHECK(to_hex(x.raw) == to_hex(heartbeat_frame()));
        CHECK_FALSE(p.closed());
        conn.close();
    }
    SUBCASE("server heartbeats are not handed on and not answered") {
        FakeServer fake(2000);  // the client's period is long: it has no reason to send anything
        RawConn conn;
        ipc::Process p = connected(fake, conn);
        auto waiting = std::async(std::launch::async, [&] { return p.wait(ipc::Milliseconds(3000)); });
        REQUIRE(conn.send(heartbeat_frame() + heartbeat_frame()));
        REQUIRE(conn.send(heartbeat_frame()));
        REQUIRE(conn.send(text_frame("after the heartbeats")));
        auto m = waiting.get();
        REQUIRE(m.has_value());
        CHECK(m->content() == "after the heartbeats");
        CHECK(to_hex(conn.collect(100)) == "");
        conn.close();
    }
}

TEST_CASE_FIXTURE(Connected, "raw server vs client: connection close from the server") {
    SUBCASE("inside wait: close ok, an empty result, later calls closed") {
        auto waiting = std::async(std::launch::async, [&] { return p.wait(); });
        close_from_server(conn);
        CHECK(outcome(waiting.get()) == "closed");
    }
    SUBCASE("instead of an ack: send fails as closed") {
        auto sending = std::async(std::launch::async, [&] { return p.send(ipc::Message::text("x"), ipc::Milliseconds(2000)); });
        Frame fr;
        REQUIRE(conn.read_frame_skipping_heartbeats(fr, 2000));
        CHECK(fr.is(text_frame("x")));
        close_from_server(conn);
        CHECK(outcome(sending.get()) == "closed");
    }
    SUBCASE("crossing the client's own close") {
        auto closing = std::async(std::launch::async, [&] { return p.close(ipc::Milliseconds(2000)); });
        Frame fr;
        REQUIRE(conn.read_frame(fr, 2000));
        CHECK(fr.is(close_frame()));
        close_from_server(conn);
        CHECK(outcome(closing.get()) == "value");
    }
    CHECK(p.closed());
    CHECK(outcome(p.wait(ipc::Milliseconds(100))) == "closed");
    CHECK(outcome(p.send(ipc::Message::text("late"), ipc::Milliseconds(100))) == "closed");
    CHECK(outcome(p.close()) == "value");
}

TEST_CASE_FIXTURE(Connected, "raw server vs client: close without an answer, a vanished server, a malformed frame") {
    SUBCASE("close ok never comes: close times out and the connection is gone") {
        Stopwatch sw;
        CHECK(outcome(p.close(ipc::Milliseconds(200))) == "timed_out");
        CHECK(sw.elapsed() >= 200);
        CHECK(p.closed());
        std::string before;
        CHECK(conn.wait_eof(2000, &before));
        CHECK(to_hex(before) == to_hex(close_frame()));
    }
    SUBCASE("the server vanishes: closed by peer, then closed") {
        conn.close();
        CHECK(outcome(p.wait(ipc::Milliseconds(2000))) == "closed_by_peer");
        CHECK(p.closed());
        CHECK(outcome(p.wait(ipc::Milliseconds(10))) == "closed");
    }
    SUBCASE("a malformed frame: malformed_frame, then closed") {
        std::string bad = text_frame("response");
        bad.back() = '\x00';
        REQUIRE(conn.send(bad));
        CHECK(outcome(p.wait(ipc::Milliseconds(2000))) == "malformed_frame");
        CHECK(p.closed());
        CHECK(conn.wait_eof(2000));
    }
    SUBCASE("a response arriving one byte at a time") {
        REQUIRE(conn.send_bytewise(frame("text/plain; charset=utf-8", "slowly")));
        auto m = p.wait(ipc::Milliseconds(3000));
        REQUIRE(m.has_value());
        CHECK(m->content() == "slowly");
        CHECK(m->media_type().str() == "text/plain; charset=utf-8");
        conn.close();
    }
}

TEST_CASE("raw server vs client: the destructor closes properly") {
    Watchdog wd;
    FakeServer fake;
    RawConn conn;
    auto p = std::make_unique<ipc::Process>(connected(fake, conn));
    auto destroying = std::async(std::launch::async, [&] { p.reset(); });
    Frame fr;
    REQUIRE(conn.read_frame(fr, 2000));
    CHECK(to_hex(fr.raw) == to_hex(close_frame()));
    REQUIRE(conn.send(close_ok_frame()));
    destroying.get();
    CHECK(conn.wait_eof(2000));
}


}  // TEST_SUITE
