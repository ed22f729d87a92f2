// Regression (0.1): a client refused by allow_uids kept reconnecting inside
// Ipc::wait (64 times a second) and finally said "timed out"; wait() called
// connect about 60 times a second while a stale socket file was there;
// nothing capped the number of connections a server keeps.
#include "../support/basics.hpp"
#include "../support/bytes.hpp"
#include "../support/child.hpp"
#include "../support/frames.hpp"
#include "../support/raw_peer.hpp"
#include "../support/server.hpp"
#include "../support/temp.hpp"

#include <sys/resource.h>

using namespace ipc_test;

TEST_SUITE("regression") {

TEST_CASE_FIXTURE(Case, "regression: a refused uid is permission_denied at once, also from wait()") {
    ThreadServer<int> server(ipc, name, 0, CommandReducer{}, ipc::Milliseconds::forever(),
                             [](ipc::Server& s) { s.allow_uids({::getuid() + 1}); });
    REQUIRE(wait_live(ipc, name));
    Stopwatch sw;
    auto p = ipc.wait(name, ipc::Milliseconds(5000));
    REQUIRE_FALSE(p.has_value());
    CHECK(p.error() == ipc::Errc::permission_denied);
    CHECK(sw.elapsed() < 1000);
    CHECK(eventually([&] { return server.drops.count(ipc::DropReason::refused) == 1; }, 2000));
    REQUIRE(server.finish().has_value());
}

TEST_CASE_FIXTURE(Case, "regression: wait() on a stale socket file sleeps instead of connecting in a loop") {
    REQUIRE(make_stale_socket(ipc.path_of(name)));
    // In a child, so that its context switches are its own.
    Child waiter = spawn([&]() -> std::string {
        struct rusage before {}, after {};
        ::getrusage(RUSAGE_SELF, &before);
        auto p = ipc.wait(name, ipc::Milliseconds(1000));
        ::getrusage(RUSAGE_SELF, &after);
        return std::string(p ? "value" : errc_name(p.error().code)) + " " + std::to_string(after.ru_nvcsw - before.ru_nvcsw);
    });
    const std::string r = waiter.result(5000);
    MESSAGE("wait on a stale file for 1 s: ", r, " voluntary context switches");
    REQUIRE(r.compare(0, 10, "timed_out ") == 0);
    CHECK(std::atol(r.c_str() + 10) <= 30);  // about 4 at 250 ms (more under TSan); 0.1: about 60
    waiter.reap();
    // And a server that appears on that name is found at once (inotify).
    Child late = spawn_server(test_config(dir.path()), name, 0, CommandReducer{}, ipc::Milliseconds(3000));
    Stopwatch sw;
    auto p = ipc.wait(name, ipc::Milliseconds(5000));
    REQUIRE(p.has_value());
    CHECK(sw.elapsed() < 2000);
    REQUIRE(p->close().has_value());
    (void)late.result(6000);
    late.reap();
}

TEST_CASE_FIXTURE(Case, "regression: past Config::max_connections a connection is told and closed; the others are served") {
    config.max_connections = 2;
    reconfigure();
    ThreadServer<int> server(ipc, name, 0, CommandReducer{});
    REQUIRE(wait_live(ipc, name));
    auto a = ipc.get(name);
    auto b = ipc.get(name);
    REQUIRE(a.has_value());
    REQUIRE(b.has_value());
    RawConn third = RawConn::connect(ipc.path_of(name));
    REQUIRE(third.valid());
    std::string got;
    CHECK(third.wait_eof(2000, &got));
    CHECK(to_hex(got) == to_hex(close_frame()));
    CHECK(outcome(ipc.get(name)) == "closed");
    CHECK(eventually([&] { return server.drops.count(ipc::DropReason::too_many_connections) == 2; }, 2000));
    REQUIRE(a->send(ipc::Message::text("ping"), ipc::Milliseconds(2000)).has_value());
    CHECK(a->wait(ipc::Milliseconds(2000))->content() == "pong");
    REQUIRE(a->close().has_value());
    // One left: a new one fits again.
    CHECK(eventually([&] { return ipc.get(name).has_value(); }, 2000));
    REQUIRE(b->close().has_value());
    REQUIRE(server.finish().has_value());
}

}  // TEST_SUITE
