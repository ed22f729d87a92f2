// Regression (0.1): wait() after post() never wrote what post() had left
// queued, and sent heartbeats into the middle of that half-written frame.
// With a 1 MiB posted message the server once accepted 185 corrupted bytes,
// and once dropped the client for a bad end byte. Now both calls drive one
// conversation: the queued frame goes out first, whole, and heartbeats are
// only ever queued behind whole frames.
#include "../support/basics.hpp"
#include "../support/server.hpp"
#include "../support/temp.hpp"

using namespace ipc_test;

TEST_SUITE("regression") {

TEST_CASE_FIXTURE(CaseBeating<20>, "regression: post() of 1 MiB then wait() gets the exact echo; no heartbeat lands inside the frame") {
    // Heartbeats every 20 ms: many chances to land mid-frame.
    auto echo = [](const ipc::Message& m, ipc::Continuation<int> k, int n) { return k.respond(n + 1, m); };
    ThreadServer<int> server(ipc, name, 0, echo);
    auto p = get_live(ipc, name);

    std::string big(std::size_t{1} << 20, '\0');
    for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>((i * 131u + (i >> 9)) & 0xFF);
    auto m = ipc::Message::make("application/octet-stream", big);
    REQUIRE(m.has_value());
    REQUIRE(p->post(*m).has_value());
    CHECK(p->unacknowledged() == 1);
    // More than a socket buffer: post() could write only part of it.

    auto reply = p->wait(ipc::Milliseconds(10000));
    REQUIRE(reply.has_value());
    CHECK(reply->media_type().str() == "application/octet-stream");
    CHECK(reply->content().size() == big.size());
    const bool same = reply->content() == big;
    CHECK(same);
    CHECK(p->unacknowledged() == 0);  // wait() handled the ack too

    // Posted behind one in flight, then a blocking wait: still in order.
    REQUIRE(p->post(ipc::Message::text("a")).has_value());
    REQUIRE(p->post(ipc::Message::text("b")).has_value());
    auto a = p->wait(ipc::Milliseconds(5000));
    auto b = p->wait(ipc::Milliseconds(5000));
    REQUIRE(a.has_value());
    REQUIRE(b.has_value());
    CHECK(a->content() == "a");
    CHECK(b->content() == "b");
    CHECK(p->unacknowledged() == 0);

    REQUIRE(p->close().has_value());
    server.finish_expecting(3);              // exactly three messages reached the reducer
    CHECK(server.drops.text() == "closed");  // and nobody was dropped for a bad frame
}

}  // TEST_SUITE
