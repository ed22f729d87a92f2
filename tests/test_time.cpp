// Section 8: time — every timeout takes a std::chrono duration (Milliseconds).
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

TEST_SUITE("time") {

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


}  // TEST_SUITE
