// Section 6: messages and the six protocol messages (docs/protocol.md §3).
#include "ipc.hpp"

#include <doctest/doctest.h>

#include <string>
#include <string_view>

namespace ipc = ipc_hpp;
using ipc::Protocol;

namespace {
constexpr Protocol all_protocol_messages[] = {Protocol::connection_start, Protocol::connection_start_ok,
                                              Protocol::connection_close, Protocol::connection_close_ok,
                                              Protocol::heartbeat,        Protocol::message_received};
}

TEST_CASE("message: make validates the media type and keeps its canonical form") {
    auto m = ipc::Message::make("text/plain;charset=utf-8", "hello");
    REQUIRE(m.has_value());
    CHECK(m.value().media_type().str() == "text/plain; charset=utf-8");
    CHECK(m.value().content() == "hello");

    auto refused = ipc::Message::make("x/y", "hello");
    REQUIRE_FALSE(refused.has_value());
    CHECK(refused.error() == ipc::Errc::invalid_media_type);
}

TEST_CASE("message: content is binary-safe") {
    using namespace std::string_view_literals;
    const std::string_view bytes = "\0a\0\xff\xce\0"sv;
    auto m = ipc::Message::make("application/octet-stream", bytes);
    REQUIRE(m.has_value());
    CHECK(m.value().content().size() == 6);
    CHECK(m.value().content() == bytes);
}

TEST_CASE("message: the shorthands") {
    CHECK(ipc::Message::text("hi") == ipc::Message::make("text/plain", "hi").value());
    const ipc::Message empty;
    CHECK(empty.media_type() == ipc::MediaType::text_plain());
    CHECK(empty.content().empty());
    CHECK_FALSE(empty.is_protocol());

    ipc::Message m = ipc::Message::text("a");
    m.content() += "b";
    CHECK(m.content() == "ab");
    CHECK(m != ipc::Message::text("a"));
    CHECK(m == ipc::Message(ipc::MediaType::text_plain(), "ab"));
}

TEST_CASE("message: the six protocol messages are text/plain with their fixed content") {
    CHECK(ipc::Message::protocol_message(Protocol::connection_start).content() == "innmind/ipc:connection.start");
    CHECK(ipc::Message::protocol_message(Protocol::connection_start_ok).content() == "innmind/ipc:connection.start-ok");
    CHECK(ipc::Message::protocol_message(Protocol::connection_close).content() == "innmind/ipc:connection.close");
    CHECK(ipc::Message::protocol_message(Protocol::connection_close_ok).content() == "innmind/ipc:connection.close-ok");
    CHECK(ipc::Message::protocol_message(Protocol::heartbeat).content() == "innmind/ipc:heartbeat");
    CHECK(ipc::Message::protocol_message(Protocol::message_received).content() == "innmind/ipc:message.received");
    for (Protocol p : all_protocol_messages) {
        const ipc::Message m = ipc::Message::protocol_message(p);
        CHECK(m.media_type().str() == "text/plain");
        CHECK(m.protocol() == p);
        CHECK(m.is_protocol());
        CHECK(ipc::protocol::classify("text/plain", ipc::protocol::content(p)) == p);
    }
    CHECK(ipc::protocol::content(Protocol::none).empty());
}

TEST_CASE("message: nothing else is a protocol message") {
    for (Protocol p : all_protocol_messages) {
        const std::string content(ipc::protocol::content(p));
        INFO("content: ", content);
        // Same content under another media type: an application message.
        for (std::string_view type : {"application/octet-stream", "text/plain; charset=utf-8", "text/PLAIN", "text/html"}) {
            CHECK(ipc::protocol::classify(type, content) == Protocol::none);
            CHECK_FALSE(ipc::Message::make(type, content).value().is_protocol());
        }
        // Almost the same content.
        for (const std::string& near : {content + " ", " " + content, content + '\0', content.substr(1),
                                        content.substr(0, content.size() - 1), "INNMIND/IPC:" + content.substr(12)}) {
            CHECK(ipc::protocol::classify("text/plain", near) == Protocol::none);
        }
    }
    for (std::string_view content : {"", "innmind/ipc:", "innmind/ipc:connection", "innmind/ipc:message.sent", "ping"}) {
        CHECK(ipc::protocol::classify("text/plain", content) == Protocol::none);
        CHECK_FALSE(ipc::Message::text(content).is_protocol());
    }
}

#if IPC_HPP_HAVE_EXCEPTIONS
TEST_CASE("message: Message::of throws std::invalid_argument on a bad media type, like the reference") {
    CHECK(ipc::Message::of("text/plain", "x") == ipc::Message::text("x"));
    CHECK_THROWS_AS(ipc::Message::of("x/y", "x"), std::invalid_argument);
}
#endif
