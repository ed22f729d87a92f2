// Regression (0.1): the server heartbeat every period, counted from its own
// last heartbeat. The reference client (innmind/ipc 4.4.0,
// Process\Unix::wait) watches its socket for one period, heartbeats when
// nothing arrived, and only then checks its timeout, measured from the last
// arrival. Against 0.1 it never saw a silent period: wait(3 s) never
// returned (0 of 5 within 45 s). Now a server heartbeats a client only once
// it has been silent for 1.5 periods (docs/protocol.md §4).
#include "../support/basics.hpp"
#include "../support/frames.hpp"
#include "../support/raw_peer.hpp"
#include "../support/server.hpp"
#include "../support/temp.hpp"

using namespace ipc_test;

namespace {

// The reference client's wait(timeout), step by step, on a raw connection:
// "timeout" when it gives up, "message" when an application message came.
std::string reference_wait(RawConn& c, std::int64_t period_ms, std::int64_t timeout_ms, std::int64_t& last_arrival) {
    for (int rounds = 0; rounds < 30; ++rounds) {  // bounded: 30 periods
        struct pollfd p {};
        p.fd = c.fd();
        p.events = POLLIN;
        const int r = ::poll(&p, 1, static_cast<int>(period_ms));
        if (r <= 0) {
            if (!c.send(heartbeat_frame())) return "send failed";
            if (now_ms() - last_arrival > timeout_ms) return "timeout";
            continue;
        }
        last_arrival = now_ms();
        Frame fr;
        if (!c.read_frame(fr, 2000)) return "read failed";
        if (fr.is(heartbeat_frame())) continue;  // the reference waits again
        return "message";
    }
    return "never returned";
}

}  // namespace

TEST_SUITE("regression") {

TEST_CASE_FIXTURE(CaseBeating<1000>, "regression: a reference client's wait(3 s) against an idle server times out within 5 s") {
    // The reference's period (1 s) on both sides.
    ThreadServer<int> server(ipc, name, 0, CommandReducer{});
    REQUIRE(wait_live(ipc, name));
    RawConn c = RawConn::connect(ipc.path_of(name));
    REQUIRE(c.handshake());
    std::int64_t last_arrival = now_ms();  // the reference starts counting when the process is built
    Stopwatch sw;
    CHECK(reference_wait(c, 1000, 3000, last_arrival) == "timeout");
    MESSAGE("the reference-like wait(3 s) returned after ", sw.elapsed(), " ms");
    CHECK(sw.elapsed() < 5000);
    c.close();
    REQUIRE(server.finish().has_value());
}

TEST_CASE_FIXTURE(CaseBeating<1000>, "regression: a silent client still gets a heartbeat, after 1.5 periods and within 2 periods + 1 s") {
    ThreadServer<int> server(ipc, name, 0, CommandReducer{});
    REQUIRE(wait_live(ipc, name));
    RawConn c = RawConn::connect(ipc.path_of(name));
    REQUIRE(c.handshake());
    Stopwatch sw;
    Frame fr;
    REQUIRE(c.read_frame(fr, 4000));
    const std::int64_t first = sw.elapsed();
    CHECK(fr.is(heartbeat_frame()));
    MESSAGE("first heartbeat after ", first, " ms of silence");
    CHECK(first >= 1400);  // clearly more than a period
    CHECK(first <= 3000);  // 2 periods + 1 s
    // It goes on: the next one 1.5 periods after the first.
    REQUIRE(c.read_frame(fr, 4000));
    CHECK(fr.is(heartbeat_frame()));
    CHECK(sw.elapsed() - first >= 1400);
    c.close();
    REQUIRE(server.finish().has_value());
}

}  // TEST_SUITE
