// Section 13: the server core from the wire — raw bytes against our server (docs/protocol.md §4).
// Every frame is built and parsed by support/frames.hpp's own encoder, never by ipc.hpp's codec,
// and compared byte for byte, so a mistake in the codec cannot cancel itself out.
#include "support/basics.hpp"
#include "support/bytes.hpp"
#include "support/child.hpp"
#include "support/frames.hpp"
#include "support/raw_peer.hpp"
#include "support/server.hpp"
#include "support/temp.hpp"

#include <chrono>
#include <future>

using namespace ipc_test;

namespace {

// A Case with the path of its name (TEST_CASE_FIXTURE(RawCase, "...")).
struct RawCase : Case {
    const std::string path = ipc.path_of(name);
};

// A raw connection to path with the handshake done.
RawConn connect_ready(const std::string& path) {
    RawConn c = RawConn::connect(path);
    REQUIRE(c.valid());
    REQUIRE(c.handshake());
    return c;
}

// A RawCase whose name is served by a CommandReducer from 0 on a thread of
// this process, live before the case starts (TEST_CASE_FIXTURE(RawServed, "...")).
struct RawServed : RawCase {
    ThreadServer<int> server{ipc, name, 0, CommandReducer{}};
    RawServed() { REQUIRE(wait_live(ipc, name)); }
};

}  // namespace

// ===========================================================================
// Raw bytes against our server
// ===========================================================================

TEST_SUITE("server-core") {

TEST_CASE_FIXTURE(RawCase, "raw client vs server: handshake is byte exact and start ok makes the connection ready") {
    CHECK(to_hex(start_frame()) == start_frame_hex);  // our independent encoder agrees with the reference

    ThreadServer<int> server(ipc, name, 0, CommandReducer{});
    REQUIRE(wait_live(ipc, name));

    RawConn c = RawConn::connect(path);
    REQUIRE(c.valid());
    CHECK(to_hex(c.read_exact(start_frame().size(), 2000)) == start_frame_hex);
    // A connection that has not answered start ok gets nothing, not even heartbeats.
    CHECK(to_hex(c.collect(200)) == "");
    CHECK_FALSE(c.at_eof());

    REQUIRE(c.send(start_ok_frame()));
    REQUIRE(c.send_text("ping"));
    Frame ack, pong;
    REQUIRE(c.read_frame(ack, 2000));
    CHECK(to_hex(ack.raw) == to_hex(ack_frame()));
    REQUIRE(c.read_frame(pong, 2000));
    CHECK(to_hex(pong.raw) == to_hex(text_frame("pong")));

    c.close();
    server.finish_expecting(1);
}

TEST_CASE_FIXTURE(RawServed, "raw client vs server: frames before start ok are ignored") {
    RawConn c = RawConn::connect(path);
    REQUIRE(c.valid());
    Frame start;
    REQUIRE(c.read_frame(start, 2000));
    REQUIRE(start.is(start_frame()));

    // An application message, a heartbeat, a close and an ack before start ok.
    REQUIRE(c.send(text_frame("ping") + heartbeat_frame() + close_frame() + ack_frame() + text_frame("count")));
    CHECK(to_hex(c.collect(250)) == "");  // no ack, no close ok, no heartbeat
    CHECK_FALSE(c.at_eof());

    REQUIRE(c.send(start_ok_frame() + text_frame("count")));
    Frame ack, count;
    REQUIRE(c.read_frame(ack, 2000));
    CHECK(ack.is(ack_frame()));
    REQUIRE(c.read_frame(count, 2000));
    CHECK(to_hex(count.raw) == to_hex(text_frame("1")));  // the reducer saw only this message

    c.close();
    server.finish_expecting(1);
}

TEST_CASE_FIXTURE(RawCase, "raw client vs server: with flush_ack_before_reducer, the ack is on the wire before the reducer runs") {
    config.flush_ack_before_reducer = true;
    reconfigure();
    Pipe gate;
    std::atomic<int> entered{0};
    std::atomic<bool> passed{false};
    auto reducer = [&](const ipc::Message& m, ipc::Continuation<int> c, int n) {
        entered.fetch_add(1);
        passed.store(gate.wait_mark(5000));
        return c.respond(n + 1, ipc::Message::text("re:" + m.content()));
    };
    ThreadServer<int> server(ipc, name, 0, reducer);
    REQUIRE(wait_live(ipc, name));

    RawConn c = connect_ready(path);
    REQUIRE(c.send_text("hello"));

    Frame ack;
    REQUIRE(c.read_frame_skipping_heartbeats(ack, 2000));
    CHECK(to_hex(ack.raw) == to_hex(ack_frame()));
    CHECK(eventually([&] { return entered.load() == 1; }, 2000));  // the reducer was called...
    CHECK_FALSE(passed.load());      // ...and is still running
    CHECK(c.buffered() == 0);        // nothing followed the ack yet

    gate.mark();
    Frame response;
    REQUIRE(c.read_frame_skipping_heartbeats(response, 2000));
    CHECK(to_hex(response.raw) == to_hex(text_frame("re:hello")));
    CHECK(passed.load());

    c.close();
    server.finish_expecting(1);
}

TEST_CASE_FIXTURE(RawServed, "raw client vs server: respond, continue and close continuations") {
    RawConn c = connect_ready(path);
    Frame fr;

    // respond: the ack then the response, the media type kept as is.
    REQUIRE(c.send(frame("application/json", "{\"a\":1}")));
    REQUIRE(c.read_frame_skipping_heartbeats(fr, 2000));
    CHECK(to_hex(fr.raw) == to_hex(ack_frame()));
    REQUIRE(c.read_frame_skipping_heartbeats(fr, 2000));
    CHECK(to_hex(fr.raw) == to_hex(frame("application/json", "{\"a\":1}")));

    // A quick reducer: the ack, then the response (often in the same read).
    REQUIRE(c.send_text("ping"));
    REQUIRE(c.read_frame_skipping_heartbeats(fr, 2000));
    CHECK(fr.is(ack_frame()));
    REQUIRE(c.read_frame_skipping_heartbeats(fr, 2000));
    CHECK(fr.is(text_frame("pong")));

    // continue: the ack and nothing else (heartbeats aside).
    REQUIRE(c.send_text("continue"));
    REQUIRE(c.read_frame_skipping_heartbeats(fr, 2000));
    CHECK(fr.is(ack_frame()));
    for (const Frame& x : c.frames_within(200)) CHECK(to_hex(x.raw) == to_hex(heartbeat_frame()));

    // close: the ack, then connection close.
    REQUIRE(c.send_text("close"));
    REQUIRE(c.read_frame_skipping_heartbeats(fr, 2000));
    CHECK(fr.is(ack_frame()));
    REQUIRE(c.read_frame_skipping_heartbeats(fr, 2000));
    CHECK(to_hex(fr.raw) == to_hex(close_frame()));
    // Once closing, nothing more is acknowledged or handed to the reducer,
    // and no heartbeat is sent.
    REQUIRE(c.send(text_frame("ping") + heartbeat_frame()));
    CHECK(to_hex(c.collect(200)) == "");
    CHECK_FALSE(c.at_eof());
    REQUIRE(c.send(close_ok_frame()));
    std::string before;
    CHECK(c.wait_eof(2000, &before));
    CHECK(to_hex(before) == "");

    // The reducer saw the json, ping, continue and close: 4, then count is 5.
    RawConn d = RawConn::connect(path);
    REQUIRE(d.handshake());
    REQUIRE(d.send_text("count"));
    REQUIRE(d.read_frame_skipping_heartbeats(fr, 2000));
    CHECK(fr.is(ack_frame()));
    REQUIRE(d.read_frame_skipping_heartbeats(fr, 2000));
    CHECK(to_hex(fr.raw) == to_hex(text_frame("5")));

    d.close();
    server.finish_expecting(5);
    CHECK(server.drops.count(ipc::DropReason::closed) >= 1);
}

TEST_CASE_FIXTURE(RawServed, "raw client vs server: stop closes every client, waits for each close ok, then removes the file") {
    RawConn a = RawConn::connect(path), b = RawConn::connect(path), late = RawConn::connect(path);
    REQUIRE(a.handshake());
    REQUIRE(b.handshake());
    Frame fr;
    REQUIRE(late.read_frame(fr, 2000));  // has not answered start ok yet
    REQUIRE(fr.is(start_frame()));

    REQUIRE(a.send_text("stop"));
    REQUIRE(a.read_frame_skipping_heartbeats(fr, 2000));
    CHECK(to_hex(fr.raw) == to_hex(ack_frame()));
    REQUIRE(a.read_frame_skipping_heartbeats(fr, 2000));
    CHECK(to_hex(fr.raw) == to_hex(close_frame()));
    REQUIRE(b.read_frame_skipping_heartbeats(fr, 2000));
    CHECK(to_hex(fr.raw) == to_hex(close_frame()));
    REQUIRE(late.read_frame(fr, 2000));
    CHECK(to_hex(fr.raw) == to_hex(close_frame()));

    // Still shutting down: the file is there and serve() has not returned.
    REQUIRE(a.send(close_ok_frame()));
    CHECK(a.wait_eof(2000));
    REQUIRE(late.send(close_ok_frame()));
    CHECK(late.wait_eof(2000));
    CHECK_FALSE(server.wait_done(150));
    CHECK(file_exists(path));

    // A message from b now is neither acknowledged nor reduced.
    REQUIRE(b.send(text_frame("count")));
    CHECK(to_hex(b.collect(100)) == "");
    REQUIRE(b.send(close_ok_frame()));
    CHECK(b.wait_eof(2000));
    REQUIRE(server.wait_done(2000));
    server.finish_expecting(1, false);
    CHECK_FALSE(file_exists(path));
    CHECK(server.drops.count(ipc::DropReason::closed) == 3);
}

TEST_CASE_FIXTURE(RawServed, "raw client vs server: heartbeats to an idle client, never an answer to the client's") {
    RawConn c = RawConn::connect(path);
    REQUIRE(c.handshake());
    // Period 50 ms: an idle client gets one about every period.
    auto frames = c.frames_within(400);
    CHECK(frames.size() >= 2);  // about 8, with room for a loaded machine
    CHECK(frames.size() <= 10);
    for (const Frame& x : frames) CHECK(to_hex(x.raw) == to_hex(heartbeat_frame()));

    // The client's heartbeats are never answered (no ack) nor reduced.
    for (int i = 0; i < 5; ++i) REQUIRE(c.send(heartbeat_frame()));
    for (const Frame& x : c.frames_within(150)) CHECK(to_hex(x.raw) == to_hex(heartbeat_frame()));
    REQUIRE(c.send_text("count"));
    Frame fr;
    REQUIRE(c.read_frame_skipping_heartbeats(fr, 2000));
    CHECK(fr.is(ack_frame()));
    REQUIRE(c.read_frame_skipping_heartbeats(fr, 2000));
    CHECK(to_hex(fr.raw) == to_hex(text_frame("1")));

    c.close();
    server.finish_expecting(1);
}

TEST_CASE_FIXTURE(RawServed, "raw client vs server: client close gets close ok, then end of file") {
    SUBCASE("close alone") {
        RawConn c = RawConn::connect(path);
        REQUIRE(c.handshake());
        REQUIRE(c.send(close_frame()));
        Frame fr;
        REQUIRE(c.read_frame_skipping_heartbeats(fr, 2000));
        CHECK(to_hex(fr.raw) == to_hex(close_ok_frame()));
        std::string before;
        CHECK(c.wait_eof(2000, &before));
        CHECK(to_hex(before) == "");
        REQUIRE(eventually([&] { return server.drops.count(ipc::DropReason::closed) == 1; }, 2000));
        server.finish_expecting(0);
    }
    SUBCASE("a message and close in one write") {
        RawConn c = RawConn::connect(path);
        REQUIRE(c.handshake());
        REQUIRE(c.send(text_frame("ping") + close_frame()));
        std::string before;
        CHECK(c.wait_eof(2000, &before));
        CHECK(to_hex(before) == to_hex(ack_frame() + text_frame("pong") + close_ok_frame()));
        server.finish_expecting(1);
    }
}

TEST_CASE_FIXTURE(RawCase, "raw client vs server: the server timeout closes an idle client") {
    Stopwatch sw;
    ThreadServer<int> server(ipc, name, 0, CommandReducer{}, ipc::Milliseconds(300));
    REQUIRE(wait_live(ipc, name));
    RawConn c = RawConn::connect(path);
    REQUIRE(c.handshake());
    Frame fr;
    int heartbeats = 0;
    REQUIRE(c.read_frame_skipping_heartbeats(fr, 3000, &heartbeats));
    CHECK(to_hex(fr.raw) == to_hex(close_frame()));
    CHECK(sw.elapsed() >= 300);
    CHECK(heartbeats >= 1);  // heartbeats flowed, and were no activity
    REQUIRE(c.send(close_ok_frame()));
    CHECK(c.wait_eof(2000));
    REQUIRE(server.wait_done(2000));
    server.finish_expecting(0, false);
    CHECK_FALSE(file_exists(path));
}

TEST_CASE_FIXTURE(Case, "raw client vs server: a malformed frame or garbage drops only that client, the carry is unchanged") {
    config.max_message_size = 1024 * 1024;
    reconfigure();
    ThreadServer<int> server(ipc, name, 0, CommandReducer{});
    REQUIRE(wait_live(ipc, name));

    auto good = ipc.get(name);
    REQUIRE(good.has_value());
    int expected = 0;
    auto count_is_next = [&] {
        ++expected;
        REQUIRE(good->send(ipc::Message::text("count"), ipc::Milliseconds(2000)).has_value());
        auto m = good->wait(ipc::Milliseconds(2000));
        REQUIRE(m.has_value());
        CHECK(m->content() == std::to_string(expected));
    };
    count_is_next();

    struct Garbage {
        const char* what;
        std::string bytes;
        bool handshake;
        ipc::DropReason reason;
    };
    std::string bad_end = text_frame("count");
    bad_end.back() = '\0';
    std::string too_large = std::string("\x00\x0atext/plain\x00\x20\x00\x00", 16);  // announces 2 MiB
    const Garbage cases[] = {
        {"bad end marker", bad_end, true, ipc::DropReason::malformed_frame},
        {"media type refused", frame("x/y", "count"), true, ipc::DropReason::malformed_frame},
        {"media type not a type", frame("abc", ""), true, ipc::DropReason::malformed_frame},
        {"content over the maximum", too_large, true, ipc::DropReason::message_too_large},
        {"bad end marker before start ok", bad_end, false, ipc::DropReason::malformed_frame},
        {"http request then end of file", "GET / HTTP/1.0\r\n\r\n", true, ipc::DropReason::end_of_file},
        {"one stray byte then end of file", "\x01", false, ipc::DropReason::end_of_file},
    };
    std::size_t malformed = 0, large = 0, eof = 0;
    for (const Garbage& g : cases) {
        CAPTURE(g.what);
        RawConn c = RawConn::connect(ipc.path_of(name));
        REQUIRE(c.valid());
        if (g.handshake) {
            REQUIRE(c.handshake());
        } else {
            Frame fr;
            REQUIRE(c.read_frame(fr, 2000));
        }
        REQUIRE(c.send(g.bytes));
        if (g.reason == ipc::DropReason::end_of_file) c.shutdown_write();
        std::string before;
        CHECK(c.wait_eof(2000, &before));
        // Nothing but heartbeats came back: no ack, no response.
        std::string rest = before;
        while (rest.size() >= heartbeat_frame().size() && rest.compare(0, heartbeat_frame().size(), heartbeat_frame()) == 0) {
            rest.erase(0, heartbeat_frame().size());
        }
        CHECK(to_hex(rest) == "");
        malformed += g.reason == ipc::DropReason::malformed_frame ? 1 : 0;
        large += g.reason == ipc::DropReason::message_too_large ? 1 : 0;
        eof += g.reason == ipc::DropReason::end_of_file ? 1 : 0;
        CHECK(eventually([&] {
            return server.drops.count(ipc::DropReason::malformed_frame) == malformed &&
                   server.drops.count(ipc::DropReason::message_too_large) == large &&
                   server.drops.count(ipc::DropReason::end_of_file) == eof;
        }, 2000));
        count_is_next();  // the good client is served, the count goes on
    }
    REQUIRE(good->close().has_value());
    server.finish_expecting(expected);
}

TEST_CASE_FIXTURE(RawServed, "raw client vs server: frames one byte at a time, and a stalled half frame delays no one") {
    RawConn slow = RawConn::connect(path);
    Frame fr;
    REQUIRE(slow.read_frame(fr, 2000));
    REQUIRE(fr.is(start_frame()));
    REQUIRE(slow.send_bytewise(start_ok_frame() + text_frame("ping")));
    REQUIRE(slow.read_frame_skipping_heartbeats(fr, 2000));
    CHECK(to_hex(fr.raw) == to_hex(ack_frame()));
    REQUIRE(slow.read_frame_skipping_heartbeats(fr, 2000));
    CHECK(to_hex(fr.raw) == to_hex(text_frame("pong")));

    // Half a frame, then silence: another client is served at once.
    const std::string echo = frame("application/octet-stream", std::string("\x00\xce\x01 binary", 9));
    REQUIRE(slow.send(echo.substr(0, 1)));  // not even the whole length field
    auto other = ipc.get(name);
    REQUIRE(other.has_value());
    Stopwatch sw;
    REQUIRE(other->send(ipc::Message::text("ping"), ipc::Milliseconds(2000)).has_value());
    auto pong = other->wait(ipc::Milliseconds(2000));
    REQUIRE(pong.has_value());
    CHECK(pong->content() == "pong");
    CHECK(sw.elapsed() < 1000);
    REQUIRE(slow.send(echo.substr(1, 12)));
    REQUIRE(other->send(ipc::Message::text("ping"), ipc::Milliseconds(2000)).has_value());
    REQUIRE(other->wait(ipc::Milliseconds(2000)).has_value());
    REQUIRE(slow.send_bytewise(echo.substr(13)));
    REQUIRE(slow.read_frame_skipping_heartbeats(fr, 2000));
    CHECK(fr.is(ack_frame()));
    REQUIRE(slow.read_frame_skipping_heartbeats(fr, 2000));
    CHECK(to_hex(fr.raw) == to_hex(echo));

    REQUIRE(other->close().has_value());
    slow.close();
    server.finish_expecting(4);
}

TEST_CASE_FIXTURE(RawServed, "raw client vs server: messages sent back to back without waiting for acks are answered in order") {
    RawConn c = RawConn::connect(path);
    REQUIRE(c.handshake());
    REQUIRE(c.send(text_frame("ping") + text_frame("count") + text_frame("continue") + text_frame("ping")));
    const std::string expected[] = {ack_frame(), text_frame("pong"), ack_frame(), text_frame("2"),
                                    ack_frame(), ack_frame(),        text_frame("pong")};
    for (const std::string& e : expected) {
        Frame fr;
        REQUIRE(c.read_frame_skipping_heartbeats(fr, 2000));
        CHECK(to_hex(fr.raw) == to_hex(e));
    }
    c.close();
    server.finish_expecting(4);
}

TEST_CASE_FIXTURE(RawServed, "raw client vs server: a 16 MiB message round-trips") {
    std::string content(16u << 20, '\0');
    for (std::size_t i = 0; i < content.size(); ++i) content[i] = static_cast<char>((i * 131) >> 7);
    const std::string big = frame("application/octet-stream", content);

    RawConn c = RawConn::connect(path);
    REQUIRE(c.handshake());
    std::future<bool> sent = std::async(std::launch::async, [&] { return c.send(big, 10000); });
    Frame fr;
    REQUIRE(c.read_frame_skipping_heartbeats(fr, 10000));
    CHECK(fr.is(ack_frame()));
    REQUIRE(c.read_frame_skipping_heartbeats(fr, 10000));
    CHECK(sent.get());
    CHECK(fr.type == "application/octet-stream");
    CHECK(fr.content.size() == content.size());
    CHECK(fr.raw == big);
    c.close();
    server.finish_expecting(1);
}

TEST_CASE_FIXTURE(RawCase, "raw client vs server: by default the ack leaves in the same send() as the response") {
    // One send() puts both frames in the socket at once: a reader that waits
    // for the first byte and then reads once gets the ack and the response
    // together, however slow the reducer was.
    auto reducer = [](const ipc::Message& m, ipc::Continuation<int> c, int n) {
        sleep_ms(150);  // a slow reducer: with an early ack, the ack would be alone for 150 ms
        return c.respond(n + 1, ipc::Message::text("re:" + m.content()));
    };
    ThreadServer<int> server(ipc, name, 0, reducer);
    REQUIRE(wait_live(ipc, name));
    RawConn c = connect_ready(path);
    REQUIRE(c.send_text("hello"));
    struct pollfd pfd {};
    pfd.fd = c.fd();
    pfd.events = POLLIN;
    REQUIRE(::poll(&pfd, 1, 3000) == 1);
    std::string expected = ack_frame() + text_frame("re:hello");
    std::string got(expected.size() + 64, '\0');
    ssize_t n = ::recv(c.fd(), &got[0], got.size(), MSG_DONTWAIT);
    REQUIRE(n > 0);
    got.resize(static_cast<std::size_t>(n));
    CHECK(to_hex(got) == to_hex(expected));
    c.close();
    REQUIRE(server.finish().has_value());
}

}  // TEST_SUITE
