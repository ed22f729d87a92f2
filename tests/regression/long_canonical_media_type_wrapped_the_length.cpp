// Regression (0.1): canonicalisation turns ";a=b" into "; a=b", so a media
// type of 64 KiB could come out longer than 65535 bytes. Message::make
// accepted it, the frame writer cast its length to uint16_t, and an echo
// server sent back a frame whose lengths disagreed with its bytes. Now a
// type whose canonical form does not fit is refused where it is built and
// where it is decoded, and the frame writer checks every length.
#include "../support/basics.hpp"
#include "../support/frames.hpp"
#include "../support/raw_peer.hpp"
#include "../support/server.hpp"
#include "../support/temp.hpp"

using namespace ipc_test;

namespace {

// text/plain followed by n parameters ";a=b": 10 + 4n bytes in, 10 + 5n canonical.
std::string type_with(std::size_t n) {
    std::string t = "text/plain";
    for (std::size_t i = 0; i < n; ++i) t += ";a=b";
    return t;
}

}  // namespace

TEST_SUITE("regression") {

TEST_CASE("regression: a media type whose canonical form exceeds 65535 bytes is refused when built") {
    const std::string fits = type_with((65535 - 10) / 5);  // canonical form exactly 65535 bytes
    const std::string grows = type_with((65535 - 10) / 5 + 1);
    REQUIRE(grows.size() <= 65535);  // short enough for the wire as written
    auto ok = ipc::MediaType::parse(fits);
    REQUIRE(ok.has_value());
    CHECK(ok->str().size() == 65535);
    CHECK(outcome(ipc::MediaType::parse(grows)) == "invalid_media_type");
    CHECK(outcome(ipc::Message::make(grows, "x")) == "invalid_media_type");
    CHECK(outcome(ipc::Message::make(type_with(16000), "x")) == "invalid_media_type");
    CHECK_THROWS_AS(ipc::Message::of(grows, "x"), std::invalid_argument);
    // The largest one still encodes, its length field exact.
    auto m = ipc::Message::make(fits, "x");
    REQUIRE(m.has_value());
    auto bytes = ipc::encode(*m);
    REQUIRE(bytes.has_value());
    CHECK(bytes->size() == ipc::frame_size(65535, 1));
    CHECK(static_cast<unsigned char>((*bytes)[0]) == 0xFF);
    CHECK(static_cast<unsigned char>((*bytes)[1]) == 0xFF);
}

TEST_CASE("regression: a decoder refuses a frame whose media type canonicalises past 65535 bytes") {
    ipc::Decoder d;
    d.feed(frame(type_with(16000), "x"));
    ipc::Message out;
    CHECK(d.next(out) == ipc::Decoder::Status::error);
    CHECK(d.last_error() == ipc::Errc::invalid_media_type);
}

TEST_CASE_FIXTURE(Case, "regression: a peer sending such a media type is dropped; the server serves the others") {
    auto echo = [](const ipc::Message& m, ipc::Continuation<int> k, int n) { return k.respond(n + 1, m); };
    ThreadServer<int> server(ipc, name, 0, echo);
    REQUIRE(wait_live(ipc, name));

    RawConn hostile = RawConn::connect(ipc.path_of(name));
    REQUIRE(hostile.handshake());
    REQUIRE(hostile.send(frame(type_with(16000), "x")));
    std::string before;
    CHECK(hostile.wait_eof(3000, &before));
    CHECK(before.find(ack_frame()) == std::string::npos);  // never acknowledged, never echoed

    auto p = ipc.get(name);
    REQUIRE(p.has_value());
    REQUIRE(p->send(ipc::Message::text("still here"), ipc::Milliseconds(2000)).has_value());
    auto reply = p->wait(ipc::Milliseconds(2000));
    REQUIRE(reply.has_value());
    CHECK(reply->content() == "still here");
    REQUIRE(p->close().has_value());
    server.finish_expecting(1);
    CHECK(server.drops.text() == "malformed_frame,closed");
    CHECK(server.drops.code(0) == "invalid_media_type");
}

}  // TEST_SUITE
