// The client inside the user's own poll() loop: Process::post, step, take
// and events never block; the protocol's one-message-in-flight rule holds.
#include "support/basics.hpp"
#include "support/server.hpp"
#include "support/temp.hpp"

#include <poll.h>

using namespace ipc_test;

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

TEST_CASE("client loop: posted messages go one at a time, answers are taken in order, nothing blocks") {
    Watchdog wd;
    TempDir dir;
    ipc::Ipc ipc(test_config(dir.path()));
    const ipc::Name name = name_of("srv");
    ThreadServer<int> server(ipc, name, 0, CommandReducer{});
    REQUIRE(wait_live(ipc, name));
    auto p = ipc.get(name);
    REQUIRE(p.has_value());

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
