// Section 15: Ipc, the entry point — processes, exist, get and wait, names as strings, with real
// sockets and real processes.
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

std::vector<std::string> names(const ipc::Result<std::vector<ipc::Name>>& r) {
    std::vector<std::string> out;
    if (r) {
        for (const auto& n : r.value()) out.push_back(n.str());
    }
    return out;
}

}  // namespace

TEST_SUITE("ipc") {

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

TEST_CASE_FIXTURE(Case, "client: get — not_found, connection_refused on a stale file, a Process on a live server") {
    CHECK(outcome(ipc.get(name)) == "not_found");
    REQUIRE(make_stale_socket(ipc.path_of(name)));
    CHECK(outcome(ipc.get(name)) == "connection_refused");
    CHECK(file_exists(ipc.path_of(name)));  // get never removes anything

    Child server = spawn_server(config, name, 0, CommandReducer{});
    auto p = get_live(ipc, name);
    CHECK(p->name() == name);
    CHECK(p->fd() >= 0);
    CHECK_FALSE(p->closed());
    CHECK(ask(*p, "ping") == "pong");
    REQUIRE(p->send(ipc::Message::text("stop"), ipc::Milliseconds(2000)).has_value());
    CHECK(outcome(p->wait(ipc::Milliseconds(2000))) == "closed");
    CHECK(server.result(5000) == "ok 2 drops=closed");
    CHECK(outcome(ipc.get(name)) == "not_found");
}

TEST_CASE_FIXTURE(Case, "client: Ipc::wait without a timeout returns once the server appears") {
    SUBCASE("in a directory that does not exist yet") {
        const ipc::Config nested = test_config(dir.file("not/yet"));
        ipc::Ipc waiter(nested);
        // The scenario: a server that starts after its client.
        Child server = spawn_late_server(nested, name, 150);
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
        Child server = spawn_late_server(config, name, 150);
        auto p = ipc.wait(name);
        REQUIRE(p.has_value());
        CHECK(ask(*p, "ping") == "pong");
        REQUIRE(p->send(ipc::Message::text("stop"), ipc::Milliseconds(2000)).has_value());
        CHECK(outcome(p->wait(ipc::Milliseconds(2000))) == "closed");
        CHECK(server.result(5000) == "ok 2");
    }
}

TEST_CASE_FIXTURE(Case, "client: Ipc::wait with a timeout gives up in time, or succeeds when the server comes in time") {
    Stopwatch sw;
    CHECK(outcome(ipc.wait(name, ipc::Milliseconds(250))) == "timed_out");
    CHECK(sw.elapsed() >= 250);
    CHECK(sw.elapsed() < 2750);

    REQUIRE(make_stale_socket(ipc.path_of(name)));
    Stopwatch stale;
    CHECK(outcome(ipc.wait(name, ipc::Milliseconds(250))) == "timed_out");
    CHECK(stale.elapsed() >= 250);
    CHECK(stale.elapsed() < 2750);

    Child server = spawn_late_server(config, name, 100);
    auto p = ipc.wait(name, ipc::Milliseconds(3000));
    REQUIRE(p.has_value());
    CHECK(ask(*p, "stop") == "reply closed");
    CHECK(server.result(5000) == "ok 1");

    CHECK(outcome(ipc.wait(name, ipc::Milliseconds(0))) == "timed_out");
}

TEST_CASE_FIXTURE(Case, "client: names as strings — get, wait, exist and listen take them, and say invalid_name") {
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


}  // TEST_SUITE
