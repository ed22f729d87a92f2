// Regression (0.1): on EINTR the server retried poll() with the same
// timeout, so at 200 signals a second a 1 s idle timeout took 7.2 s, a
// 500 ms handshake timeout 4.4 s, and no heartbeat went out. Now every wait
// recomputes what is due after an interrupted poll().
#include "../support/basics.hpp"
#include "../support/child.hpp"
#include "../support/frames.hpp"
#include "../support/raw_peer.hpp"
#include "../support/server.hpp"
#include "../support/temp.hpp"

#include <sys/resource.h>

using namespace ipc_test;

namespace {

extern "C" void ignore_signal(int) {}

// Sends SIGUSR1 to pid 200 times a second until killed.
Child signal_storm(pid_t pid) {
    return spawn([pid]() -> std::string {
        for (;;) {
            if (::kill(pid, SIGUSR1) != 0) return "gone";
            sleep_ms(5);
        }
    }, 20);
}

}  // namespace

TEST_SUITE("regression") {

TEST_CASE_FIXTURE(CaseBeating<100>, "regression: under 200 signals a second, a 1 s idle timeout ends within 2.5 s and heartbeats go out") {
    config.handshake_timeout = ipc::Milliseconds(500);
    reconfigure();
    // The server in a child with a handler that does not restart poll().
    Child server = spawn([&]() -> std::string {
        struct sigaction sa {};
        sa.sa_handler = &ignore_signal;
        sigemptyset(&sa.sa_mask);
        sa.sa_flags = 0;
        ::sigaction(SIGUSR1, &sa, nullptr);
        auto s = ipc.listen(name, ipc::Milliseconds(1000));
        if (!s) return "listen";
        DropLog drops;
        s->on_drop(&DropLog::record, &drops);
        const std::int64_t start = now_ms();
        auto r = s->serve(0, CommandReducer{});
        return (r ? std::string("ok ") : std::string("error ")) + std::to_string(now_ms() - start) + " drops=" + drops.text();
    });
    REQUIRE(wait_live(ipc, name));
    Child storm = signal_storm(server.pid());
    Stopwatch sw;
    RawConn mute = RawConn::connect(ipc.path_of(name));  // never answers start: 500 ms handshake timeout
    RawConn c = RawConn::connect(ipc.path_of(name));
    REQUIRE(c.handshake());
    int heartbeats = 0;
    Frame fr;
    while (sw.elapsed() < 4000 && c.read_frame(fr, 4000)) {
        if (fr.is(heartbeat_frame())) ++heartbeats;
        if (fr.is(close_frame())) {  // the idle timeout's shutdown
            REQUIRE(c.send(close_ok_frame()));
            break;
        }
    }
    const std::int64_t closed_at = sw.elapsed();
    std::string mute_got;
    CHECK(mute.wait_eof(3000, &mute_got));
    const std::string result = server.result(5000);
    storm.kill_now();
    MESSAGE("shutdown began after ", closed_at, " ms; ", heartbeats, " heartbeats; server: ", result);
    CHECK(closed_at < 2500);
    CHECK(heartbeats >= 3);  // 150 ms apart over about a second
    CHECK(result.compare(0, 3, "ok ") == 0);
    CHECK(result.find("handshake_timeout") != std::string::npos);
    server.reap();
}

TEST_CASE_FIXTURE(Case, "regression: a heartbeat period of 2^32 ms or more does not make the server spin") {
    config.heartbeat = ipc::Milliseconds(std::int64_t{1} << 32);
    reconfigure();
    // No idle timeout (it would bound the poll): stopped by SIGTERM after 600 ms.
    Child server = spawn([&]() -> std::string {
        auto s = ipc.listen(name);
        if (!s) return "listen";
        s->handle_signals();
        auto r = s->serve(0, CommandReducer{});
        struct rusage ru {};
        ::getrusage(RUSAGE_SELF, &ru);
        const long cpu_ms = ru.ru_utime.tv_sec * 1000 + ru.ru_utime.tv_usec / 1000 + ru.ru_stime.tv_sec * 1000 +
                            ru.ru_stime.tv_usec / 1000;
        return (r ? "ok " : "error ") + std::to_string(cpu_ms);
    });
    auto p = get_live(ipc, name);
    sleep_ms(600);
    server.signal(SIGTERM);
    const std::string result = server.result(5000);
    MESSAGE("server: ", result, " ms of CPU over 600 ms");
    REQUIRE(result.compare(0, 3, "ok ") == 0);
    CHECK(std::atol(result.c_str() + 3) < 300);  // 0.1 spun at 71% of a CPU
    server.reap();
}

TEST_CASE("regression: huge and negative durations everywhere: no overflow, huge means practically forever") {
    // Run by the UBSan build too: 0.1 overflowed in Deadline::after and the
    // idle, handshake and shutdown deadlines.
    Watchdog wd;
    TempDir dir;
    const ipc::Milliseconds huge(INT64_MAX);
    ipc::Config config = test_config(dir.path());
    config.heartbeat = huge;
    config.handshake_timeout = huge;
    config.close_timeout = huge;
    config.shutdown_timeout = huge;
    ipc::Ipc ipc(config);
    const ipc::Name name = name_of("srv");
    ThreadServer<int> server(ipc, name, 0, CommandReducer{}, huge);
    REQUIRE(wait_live(ipc, name));
    auto p = ipc.wait(name, huge);
    REQUIRE(p.has_value());
    REQUIRE(p->send(ipc::Message::text("ping"), huge).has_value());
    auto reply = p->wait(huge);
    REQUIRE(reply.has_value());
    CHECK(reply->content() == "pong");
    // Negative: no limit, like Milliseconds::forever().
    REQUIRE(p->send(ipc::Message::text("ping"), ipc::Milliseconds(-5)).has_value());
    auto again = p->wait(ipc::Milliseconds(INT64_MIN));
    REQUIRE(again.has_value());
    CHECK(again->content() == "pong");
    CHECK(outcome(p->wait(ipc::Milliseconds(0))) == "timed_out");
    REQUIRE(p->close(huge).has_value());
    server.finish_expecting(2);
    CHECK(ipc::detail::Deadline::after(huge).poll_timeout() == 0x7FFFFFFF);
    CHECK(ipc::detail::Deadline::after(ipc::Milliseconds(-1)).poll_timeout() == -1);
}

}  // TEST_SUITE
