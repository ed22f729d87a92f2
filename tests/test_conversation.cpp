// The conversation core (header section 10), without a socket: bytes are
// fed in by hand, what it queues is read back and parsed independently.
// Every rule of docs/protocol.md §4 that both sides share lives there.
#include "support/basics.hpp"
#include "support/bytes.hpp"
#include "support/frames.hpp"

#include <doctest/doctest.h>

using namespace ipc_test;

namespace {

using Conversation = ipc::detail::Conversation;
using Event = Conversation::Event;
using State = Conversation::State;

ipc::Config config_with(std::int64_t heartbeat_ms = 1000) {
    ipc::Config c;
    c.heartbeat = ipc::Milliseconds(heartbeat_ms);
    c.handshake_timeout = ipc::Milliseconds(500);
    return c;
}

// Feeds bytes as if they had arrived at `now`.
void feed(Conversation& c, std::string_view bytes, std::int64_t now) {
    std::size_t room = 0;
    char* p = c.room(room);
    REQUIRE(room >= Conversation::min_room);
    REQUIRE(bytes.size() <= room);
    std::memcpy(p, bytes.data(), bytes.size());
    c.received(bytes.size());
    c.heard(now);
}

// Everything queued, in the order it goes out.
std::string queued_bytes(const Conversation& c) {
    Conversation::Piece v[3];
    std::string out;
    for (std::size_t i = 0, k = c.pieces(v); i < k; ++i) out.append(v[i].data, v[i].size);
    return out;
}

// Takes everything queued, as if the socket had taken it all at `now`.
std::string drain(Conversation& c, std::int64_t now = 0) {
    std::string out = queued_bytes(c);
    c.sent(c.queued(), now);
    return out;
}

Event next_event(Conversation& c) { return c.next(); }

}  // namespace

TEST_SUITE("conversation") {

TEST_CASE("conversation, server: start first; nothing before start ok; the ack is queued before the message is handed on") {
    Conversation s(ipc::detail::Role::server, config_with(), 0);
    CHECK(to_hex(drain(s)) == to_hex(start_frame()));
    feed(s, text_frame("early") + heartbeat_frame() + start_ok_frame() + text_frame("ping"), 1);
    CHECK(next_event(s) == Event::started);  // "early" and the heartbeat were ignored
    CHECK(s.state() == State::ready);
    CHECK(next_event(s) == Event::message);
    CHECK(s.frame().content() == "ping");
    CHECK(to_hex(queued_bytes(s)) == to_hex(ack_frame()));  // before anyone reduced it
    REQUIRE(s.respond(ipc::Message::text("pong")).has_value());
    CHECK(to_hex(drain(s)) == to_hex(ack_frame() + text_frame("pong")));
    CHECK(next_event(s) == Event::none);
}

TEST_CASE("conversation, server: the client's close is answered and ends it; after our close only close ok counts") {
    Conversation s(ipc::detail::Role::server, config_with(), 0);
    (void)drain(s);
    feed(s, start_ok_frame() + close_frame() + text_frame("after"), 1);
    CHECK(next_event(s) == Event::started);
    CHECK(next_event(s) == Event::closed);
    CHECK(s.state() == State::closed);
    CHECK(to_hex(drain(s)) == to_hex(close_ok_frame()));
    CHECK(next_event(s) == Event::none);  // nothing more is read

    Conversation t(ipc::detail::Role::server, config_with(), 0);
    (void)drain(t);
    feed(t, start_ok_frame(), 1);
    CHECK(next_event(t) == Event::started);
    t.close(2, true);
    CHECK(to_hex(drain(t)) == to_hex(close_frame()));
    feed(t, text_frame("late") + close_ok_frame(), 3);
    CHECK(next_event(t) == Event::closed);  // "late" is neither acknowledged nor handed on
    CHECK(t.queued() == 0);
    REQUIRE(t.respond(ipc::Message::text("x")).has_value());  // closed: nothing more is sent
    CHECK(t.queued() == 0);

    // Both sides closing at once: the client's close is answered, and ends it.
    Conversation u(ipc::detail::Role::server, config_with(), 0);
    (void)drain(u);
    feed(u, start_ok_frame(), 1);
    CHECK(next_event(u) == Event::started);
    u.close(2, true);
    (void)drain(u);
    feed(u, close_frame(), 3);
    CHECK(next_event(u) == Event::closed);
    CHECK(to_hex(drain(u)) == to_hex(close_ok_frame()));
}

TEST_CASE("conversation, server: after its close, a client that never answers is given up after close_timeout") {
    ipc::Config config = config_with();
    config.close_timeout = ipc::Milliseconds(300);
    Conversation s(ipc::detail::Role::server, config, 0);
    (void)drain(s);
    feed(s, start_ok_frame(), 1);
    CHECK(next_event(s) == Event::started);
    s.close(100, true);
    (void)drain(s, 100);
    CHECK(s.due() <= 400);
    std::size_t released = 0;
    CHECK(s.fire(399, released));
    CHECK_FALSE(s.fire(400, released));
    // Untimed (a shutdown, which has its own deadline): never given up here.
    Conversation t(ipc::detail::Role::server, config, 0);
    (void)drain(t);
    feed(t, start_ok_frame(), 1);
    CHECK(next_event(t) == Event::started);
    t.close(100, false);
    CHECK(t.fire(1000000, released));
}

TEST_CASE("conversation: receive room grows with what arrived, not with what a peer announces") {
    Conversation c(ipc::detail::Role::server, config_with(), 0);
    (void)drain(c);
    std::string header = start_ok_frame();
    header += std::string("\x00\x0atext/plain\x03\xc0\x00\x00", 16);  // announces 60 MiB of content
    header += 'x';
    feed(c, header, 1);
    CHECK(next_event(c) == Event::started);
    CHECK(next_event(c) == Event::none);
    std::size_t room = 0;
    REQUIRE(c.room(room) != nullptr);
    CHECK(room == Conversation::min_room);  // 0.1-era policy: 8 MiB at once
    // As bytes come, the room doubles.
    std::size_t fed = 17;
    for (int i = 0; i < 12; ++i) {
        std::size_t n = 0;
        char* p = c.room(n);
        REQUIRE(p != nullptr);
        CHECK(n >= (fed < Conversation::max_room ? fed : Conversation::max_room));
        CHECK(n <= Conversation::max_room);
        std::memset(p, 'x', n);
        c.received(n);
        fed += n;
    }
    CHECK(fed > std::size_t{16} << 20);
}

TEST_CASE("conversation, client: handshake, one message in flight, replies kept in order") {
    Conversation c(ipc::detail::Role::client, config_with(), 0);
    CHECK(c.queued() == 0);  // the client waits for the server
    feed(c, start_frame(), 1);
    CHECK(next_event(c) == Event::started);
    CHECK(to_hex(drain(c)) == to_hex(start_ok_frame()));

    REQUIRE(c.post(ipc::Message::text("a")).has_value());
    REQUIRE(c.post(ipc::Message::text("b")).has_value());
    CHECK(c.unacknowledged() == 2);
    CHECK(to_hex(drain(c)) == to_hex(text_frame("a")));  // b waits for a's ack
    feed(c, text_frame("early reply") + ack_frame(), 2);
    CHECK(next_event(c) == Event::message);
    CHECK(next_event(c) == Event::acknowledged);
    CHECK(to_hex(drain(c)) == to_hex(text_frame("b")));
    feed(c, ack_frame() + ack_frame() + text_frame("re:b"), 3);  // the second ack is stray
    CHECK(next_event(c) == Event::acknowledged);
    CHECK(next_event(c) == Event::message);
    CHECK(next_event(c) == Event::none);
    CHECK(c.unacknowledged() == 0);
    ipc::Message m;
    REQUIRE(c.take(m));
    CHECK(m.content() == "early reply");
    REQUIRE(c.take(m));
    CHECK(m.content() == "re:b");
    CHECK_FALSE(c.take(m));
}

TEST_CASE("conversation, client: anything but start (or close, or a heartbeat) before start is a protocol error") {
    Conversation c(ipc::detail::Role::client, config_with(), 0);
    feed(c, heartbeat_frame() + text_frame("hello"), 1);
    CHECK(next_event(c) == Event::failed);
    CHECK(c.error() == ipc::Errc::protocol);
    CHECK(next_event(c) == Event::failed);  // sticky
}

TEST_CASE("conversation, client: the server's close is answered; a frame the writer cannot encode is refused") {
    Conversation c(ipc::detail::Role::client, config_with(), 0);
    feed(c, start_frame() + close_frame(), 1);
    CHECK(next_event(c) == Event::started);
    CHECK(next_event(c) == Event::closed);
    CHECK(to_hex(drain(c)) == to_hex(start_ok_frame() + close_ok_frame()));
    CHECK(outcome(c.post(ipc::Message::text("x"))) == "closed");

    Conversation d(ipc::detail::Role::client, config_with(), 0);
    feed(d, start_frame(), 1);
    CHECK(next_event(d) == Event::started);
    (void)drain(d);
#if SIZE_MAX > 0xFFFFFFFFu
    ipc::Message huge(ipc::MediaType::octet_stream(), std::string());
    huge.content().resize(std::size_t{0xFFFFFFFFu} + 1);  // one byte over what the u32 field holds
    CHECK(outcome(d.post(huge)) == "message_too_large");
    CHECK(d.queued() == 0);
    CHECK(d.unacknowledged() == 0);
#endif
}

TEST_CASE("conversation, client: the inbox is bounded in messages and bytes") {
    ipc::Config config = config_with();
    config.max_inbox_messages = 3;
    config.max_inbox_bytes = 10;
    Conversation c(ipc::detail::Role::client, config, 0);
    feed(c, start_frame() + text_frame("1") + text_frame("2") + text_frame("3") + text_frame("4"), 1);
    CHECK(next_event(c) == Event::started);
    CHECK(next_event(c) == Event::message);
    CHECK(next_event(c) == Event::message);
    CHECK(next_event(c) == Event::message);
    CHECK(next_event(c) == Event::failed);
    CHECK(c.error() == ipc::Errc::inbox_full);

    Conversation b(ipc::detail::Role::client, config, 0);
    feed(b, start_frame() + text_frame("123456") + text_frame("12345"), 1);
    CHECK(next_event(b) == Event::started);
    CHECK(next_event(b) == Event::message);
    CHECK(next_event(b) == Event::failed);  // 6 + 5 bytes > 10
    CHECK(b.error() == ipc::Errc::inbox_full);

    // Taking makes room again, and the slots keep being reused in order.
    Conversation r(ipc::detail::Role::client, config, 0);
    feed(r, start_frame(), 1);
    CHECK(next_event(r) == Event::started);
    ipc::Message m;
    for (int i = 0; i < 20; ++i) {
        feed(r, text_frame(std::to_string(i)) + text_frame(std::to_string(i) + "b"), 2);
        CHECK(next_event(r) == Event::message);
        CHECK(next_event(r) == Event::message);
        REQUIRE(r.take(m));
        CHECK(m.content() == std::to_string(i));
        REQUIRE(r.take(m));
        CHECK(m.content() == std::to_string(i) + "b");
    }
}

TEST_CASE("conversation: heartbeats are due after a quiet period (client) or 1.5 periods (server); arrivals and writes postpone them") {
    Conversation c(ipc::detail::Role::client, config_with(1000), 0);
    CHECK(c.due() == ipc::detail::never);  // no heartbeat before the handshake
    feed(c, start_frame(), 100);
    CHECK(next_event(c) == Event::started);
    (void)drain(c, 100);
    CHECK(c.due() == 1100);
    std::size_t released = 0;
    REQUIRE(c.fire(1099, released));
    CHECK(c.queued() == 0);
    REQUIRE(c.fire(1100, released));
    CHECK(to_hex(drain(c, 1100)) == to_hex(heartbeat_frame()));
    CHECK(c.due() == 2100);
    feed(c, heartbeat_frame(), 1500);  // the server's heartbeat is never answered...
    CHECK(next_event(c) == Event::none);
    CHECK(c.queued() == 0);
    CHECK(c.due() == 2500);  // ...but it is an arrival

    Conversation s(ipc::detail::Role::server, config_with(1000), 0);
    (void)drain(s, 0);
    feed(s, start_ok_frame(), 200);
    CHECK(next_event(s) == Event::started);
    CHECK(s.due() == 1200);  // idle buffers go back after a period...
    REQUIRE(s.fire(1200, released));
    CHECK(released > 0);
    CHECK(s.due() == 1700);  // ...the heartbeat only after 1.5 periods of silence
    REQUIRE(s.fire(1699, released));
    CHECK(s.queued() == 0);
    REQUIRE(s.fire(1700, released));
    CHECK(to_hex(drain(s, 1700)) == to_hex(heartbeat_frame()));
    CHECK(s.due() == 3200);
    // A client that heartbeats every period (the reference's waiting client)
    // is never heartbeaten back.
    for (std::int64_t t = 2700; t < 10000; t += 1000) {
        feed(s, heartbeat_frame(), t);
        CHECK(next_event(s) == Event::none);
        CHECK(s.due() >= t + 1000);
        REQUIRE(s.fire(t + 999, released));
        CHECK(s.queued() == 0);
    }
}

TEST_CASE("conversation, server: a peer that never answers start runs out of time") {
    Conversation s(ipc::detail::Role::server, config_with(), 1000);
    (void)drain(s, 1000);
    CHECK(s.due() == 1500);
    std::size_t released = 0;
    CHECK(s.fire(1499, released));
    CHECK_FALSE(s.fire(1500, released));
}

TEST_CASE("conversation: huge periods and timeouts saturate instead of overflowing") {
    ipc::Config config;
    config.heartbeat = ipc::Milliseconds(INT64_MAX);
    config.handshake_timeout = ipc::Milliseconds(INT64_MAX);
    Conversation s(ipc::detail::Role::server, config, 1000);
    (void)drain(s, 1000);
    CHECK(s.due() == ipc::detail::never);
    std::size_t released = 0;
    CHECK(s.fire(INT64_MAX - 1, released));
    CHECK(ipc::detail::later(INT64_MAX - 5, 10) == ipc::detail::never);
}

TEST_CASE("conversation, server: a large response moved in is sent from its own bytes, in three pieces, and the queue counts it") {
    Conversation s(ipc::detail::Role::server, config_with(), 0);
    (void)drain(s);
    feed(s, start_ok_frame() + text_frame("ping"), 1);
    CHECK(next_event(s) == Event::started);
    CHECK(next_event(s) == Event::message);
    std::string content(ipc::detail::large_content + 3, '\0');
    for (std::size_t i = 0; i < content.size(); ++i) content[i] = static_cast<char>(i * 13 + (i >> 8));
    const std::string one = ipc::encode(ipc::Message::make("application/octet-stream", content).value()).value();
    ipc::Message m = ipc::Message::make("application/octet-stream", content).value();
    const std::string expected = ack_frame() + one + text_frame("after");
    const char* bytes = m.content().data();
    REQUIRE(s.respond(std::move(m)).has_value());
    CHECK(m.content().empty());  // moved, not copied
    REQUIRE(s.respond(ipc::Message::text("after")).has_value());
    CHECK(s.queued() == expected.size());
    Conversation::Piece v[3];
    REQUIRE(s.pieces(v) == 3);
    CHECK(v[1].data == bytes);
    CHECK(v[1].size == content.size());
    CHECK(queued_bytes(s) == expected);
    // Taken in odd steps across every boundary: what is left is always the rest.
    std::size_t at = 0;
    for (std::size_t step : {std::size_t{7}, std::size_t{1}, std::size_t{200000}, content.size(), std::size_t{1}, std::size_t{3}}) {
        const std::size_t n = std::min(step, expected.size() - at);
        s.sent(n, 1);
        at += n;
        CHECK(s.queued() == expected.size() - at);
        CHECK(queued_bytes(s) == expected.substr(at));
    }
    s.sent(s.queued(), 1);
    CHECK_FALSE(s.wants_write());
    CHECK(s.pieces(v) == 0);
    // A second large response while one is queued is copied behind it.
    ipc::Message first = ipc::Message::make("application/octet-stream", content).value();
    ipc::Message second = first;
    REQUIRE(s.respond(std::move(first)).has_value());
    REQUIRE(s.respond(std::move(second)).has_value());
    CHECK(first.content().empty());
    CHECK(second.content() == content);
    CHECK(s.pieces(v) == 3);
    CHECK(s.queued() == 2 * one.size());
    CHECK(drain(s, 1) == one + one);
}


TEST_CASE("conversation, client: a large message is lent (blocking send) or moved (post) into the queue, not copied") {
    Conversation c(ipc::detail::Role::client, config_with(), 0);
    feed(c, start_frame(), 1);
    CHECK(next_event(c) == Event::started);
    (void)drain(c);
    std::string content(ipc::detail::large_content + 5, '\0');
    for (std::size_t i = 0; i < content.size(); ++i) content[i] = static_cast<char>(i * 7 + (i >> 9));
    const std::string one = ipc::encode(ipc::Message::make("application/octet-stream", content).value()).value();

    // Lent: sent from the caller's bytes; what is not sent when the lender
    // goes (unlend) is copied, and the frame still comes out whole.
    ipc::Message lent = ipc::Message::make("application/octet-stream", content).value();
    REQUIRE(c.post_lent(lent).has_value());
    CHECK(c.unacknowledged() == 1);
    CHECK(c.queued() == one.size());
    const std::size_t head = 2 + std::string_view("application/octet-stream").size() + 4;
    Conversation::Piece v[3];
    REQUIRE(c.pieces(v) == 3);  // header, content, end marker
    CHECK(v[0].size == head);
    CHECK(v[1].data == lent.content().data());
    CHECK(v[1].size == content.size());
    c.sent(head + 1000, 1);  // the header and 1000 bytes of content
    REQUIRE(c.pieces(v) == 2);
    CHECK(v[0].data == lent.content().data() + 1000);
    c.unlend(true);
    lent.content().assign(content.size(), 'x');  // the lender changes (or drops) its message
    REQUIRE(c.pieces(v) == 2);
    CHECK(v[0].data != lent.content().data() + 1000);
    CHECK(queued_bytes(c) == one.substr(head + 1000));
    CHECK(drain(c, 2) == one.substr(head + 1000));
    feed(c, ack_frame(), 3);
    CHECK(next_event(c) == Event::acknowledged);

    // Lent and all sent before unlend: nothing is copied, nothing is left.
    ipc::Message again = ipc::Message::make("application/octet-stream", content).value();
    REQUIRE(c.post_lent(again).has_value());
    CHECK(drain(c, 4) == one);
    c.unlend(true);
    CHECK(c.queued() == 0);
    feed(c, ack_frame(), 5);
    CHECK(next_event(c) == Event::acknowledged);

    // Moved (post(Message&&)), also when it waits behind one in flight: its
    // buffer is the one sent.
    ipc::Message a = ipc::Message::make("application/octet-stream", content).value();
    ipc::Message b = ipc::Message::make("application/octet-stream", content).value();
    const char* b_bytes = b.content().data();
    REQUIRE(c.post(std::move(a)).has_value());
    REQUIRE(c.post(std::move(b)).has_value());
    CHECK(a.content().empty());
    CHECK(b.content().empty());
    CHECK(drain(c, 6) == one);
    feed(c, ack_frame(), 7);
    CHECK(next_event(c) == Event::acknowledged);
    REQUIRE(c.pieces(v) == 3);
    CHECK(v[1].data == b_bytes);
    CHECK(drain(c, 8) == one);

    // Small ones are copied as before; a lent small one needs no unlend.
    ipc::Message small = ipc::Message::text("tiny");
    feed(c, ack_frame(), 9);
    CHECK(next_event(c) == Event::acknowledged);
    REQUIRE(c.post_lent(small).has_value());
    small.content() = "gone";
    CHECK(drain(c, 10) == text_frame("tiny"));
}

}  // TEST_SUITE
