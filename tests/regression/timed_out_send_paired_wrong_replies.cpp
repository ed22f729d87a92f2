// Regression (0.1): after a send() timed out waiting for its ack, the next
// send() succeeded and wait() handed back the reply to the earlier message
// as if it answered the later one, and so on from then on. Now a timed-out
// send() desynchronizes the Process: every later call but close() says so.
#include "../support/basics.hpp"
#include "../support/server.hpp"
#include "../support/temp.hpp"

using namespace ipc_test;

namespace {

// Answers "re:<content>"; messages starting with "slow" take 400 ms.
struct SlowEcho {
    ipc::Continuation<int> operator()(const ipc::Message& m, ipc::Continuation<int> k, int n) const {
        if (m.content().compare(0, 4, "slow") == 0) sleep_ms(400);
        return k.respond(n + 1, ipc::Message::text("re:" + m.content()));
    }
};

}  // namespace

TEST_SUITE("regression") {

TEST_CASE_FIXTURE(Case, "regression: after a timed-out send(), replies are never paired with the wrong request") {
    // The ack leaves with the response, after the reducer.
    ThreadServer<int> server(ipc, name, 0, SlowEcho{});
    auto p = get_live(ipc, name);

    auto first = p->send(ipc::Message::text("slow m1"), ipc::Milliseconds(100));
    REQUIRE_FALSE(first.has_value());
    CHECK(first.error() == ipc::Errc::timed_out);
    sleep_ms(600);  // the late ack and "re:slow m1" are in the socket by now

    // 0.1: value, then wait() gave "re:slow m1" for m2.
    CHECK(outcome(p->send(ipc::Message::text("m2"), ipc::Milliseconds(2000))) == "desynchronized");
    CHECK(outcome(p->wait(ipc::Milliseconds(200))) == "desynchronized");
    CHECK(outcome(p->post(ipc::Message::text("m3"))) == "desynchronized");
    CHECK(outcome(p->step(POLLIN)) == "desynchronized");
    ipc::Message kept;
    CHECK_FALSE(p->take(kept));
    CHECK(ipc::Error(ipc::Errc::desynchronized).what() != std::string());
    CHECK(p->close().has_value());  // closing still works
    CHECK(p->closed());

    // A wait() that times out is harmless: the connection stays usable.
    auto q = ipc.get(name);
    REQUIRE(q.has_value());
    CHECK(outcome(q->wait(ipc::Milliseconds(50))) == "timed_out");
    REQUIRE(q->send(ipc::Message::text("m4"), ipc::Milliseconds(2000)).has_value());
    auto r4 = q->wait(ipc::Milliseconds(2000));
    REQUIRE(r4.has_value());
    CHECK(r4->content() == "re:m4");
    REQUIRE(q->close().has_value());

    server.finish_expecting(2);  // slow m1 and m4: m2 and m3 never left the client
}

}  // TEST_SUITE
