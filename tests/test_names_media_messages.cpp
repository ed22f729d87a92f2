// Section 6: names, media types, messages. Process names (docs/protocol.md
// §1: ^[a-zA-Z0-9_-]+$); media types (tests/test_vectors.cpp checks every
// media type the reference was asked about; this file adds generated ones);
// messages and the six protocol messages (docs/protocol.md §3).
#include "ipc.hpp"

#include "support/bytes.hpp"

#include <doctest/doctest.h>

#include <string>
#include <string_view>

namespace ipc = ipc_hpp;

TEST_SUITE("message") {

TEST_CASE("name: ASCII letters, digits, '_' and '-' are accepted") {
    for (std::string_view s : {"a", "Z", "0", "_", "-", "server", "server-name", "worker_42", "ABC-def_123",
                               "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-"}) {
        INFO("name: \"", s, "\"");
        auto name = ipc::Name::parse(s);
        REQUIRE(name.has_value());
        CHECK(name.value().str() == s);
        CHECK(name.value().view() == s);
        CHECK(ipc::Name::valid(s));
    }
}

TEST_CASE("name: anything else is refused with Errc::invalid_name") {
    using namespace std::string_view_literals;
    for (std::string_view s : {""sv, " "sv, "a b"sv, " a"sv, "a "sv, "a/b"sv, "/"sv, "../a"sv, "a.b"sv, "a.sock"sv,
                               "."sv, "caf\xc3\xa9"sv, "\xe5\x90\x8d\xe5\x89\x8d"sv, "a\0b"sv, "a\n"sv, "a\tb"sv,
                               "a:b"sv, "a+b"sv, "a*"sv, "a\\b"sv}) {
        INFO("name: \"", std::string(s), "\"");
        auto name = ipc::Name::parse(s);
        REQUIRE_FALSE(name.has_value());
        CHECK(name.error() == ipc::Errc::invalid_name);
        CHECK_FALSE(ipc::Name::valid(s));
    }
}

TEST_CASE("name: comparison") {
    const auto a = ipc::Name::parse("a").value();
    const auto b = ipc::Name::parse("b").value();
    CHECK(a == ipc::Name::parse("a").value());
    CHECK(a != b);
    CHECK(a < b);
    CHECK_FALSE(b < a);
}

#if IPC_HPP_HAVE_EXCEPTIONS
TEST_CASE("name: Name::of throws std::invalid_argument, like the reference's Name::of") {
    CHECK(ipc::Name::of("ok").str() == "ok");
    CHECK_THROWS_AS(ipc::Name::of("not ok"), std::invalid_argument);
}
#endif

using namespace ipc_test;

TEST_CASE("media type: every top-level type the reference knows, in lower case only") {
    for (std::string top : {"application", "audio", "font", "example", "image", "message", "model", "multipart", "text",
                            "video"}) {
        INFO("top-level type: ", top);
        CHECK(ipc::MediaType::parse(top + "/x").has_value());
        top[0] = static_cast<char>(top[0] - 'a' + 'A');
        CHECK_FALSE(ipc::MediaType::parse(top + "/x").has_value());
    }
    CHECK_FALSE(ipc::MediaType::parse("chemical/x-pdb").has_value());
}

TEST_CASE("media type: the canonical form is a fixed point") {
    for (std::string_view written : {"text/plain;charset=utf-8", "text/plain,charset=\"utf-8\"", "text/plain; a=b; c=d",
                                     "application/vnd.api+json;v=1,x=\"y\""}) {
        INFO("written: ", written);
        const auto once = ipc::MediaType::parse(written);
        REQUIRE(once.has_value());
        const auto twice = ipc::MediaType::parse(once.value().str());
        REQUIRE(twice.has_value());
        CHECK(twice.value() == once.value());
    }
}

TEST_CASE("media type: the named constructors") {
    CHECK(ipc::MediaType::text_plain().str() == "text/plain");
    CHECK(ipc::MediaType::octet_stream().str() == "application/octet-stream");
    CHECK(ipc::MediaType::text_plain() == ipc::MediaType::parse("text/plain").value());
    CHECK(ipc::MediaType::text_plain() != ipc::MediaType::octet_stream());
    CHECK(ipc::MediaType::text_plain().view() == "text/plain");
}

TEST_CASE("property: generated media types are accepted and canonicalised like the reference does") {
    std::mt19937_64 rng = seeded_rng();
    for (int i = 0; i < 2000; ++i) {
        const WrittenMediaType m = random_media_type(rng);
        INFO("written: ", m.written);
        const auto parsed = ipc::MediaType::parse(m.written);
        REQUIRE(parsed.has_value());
        CHECK(parsed.value().str() == m.canonical);

        // Two spaces after a separator, or an upper-case top level: refused.
        if (const std::size_t separator = m.written.find_first_of(";,"); separator != std::string::npos) {
            std::string two_spaces = m.written;
            two_spaces.insert(separator + 1, two_spaces[separator + 1] == ' ' ? " " : "  ");
            CHECK_FALSE(ipc::MediaType::parse(two_spaces).has_value());
        }
        std::string upper = m.written;
        upper[0] = static_cast<char>(upper[0] - 'a' + 'A');
        CHECK_FALSE(ipc::MediaType::parse(upper).has_value());
    }
}

#if IPC_HPP_HAVE_EXCEPTIONS
TEST_CASE("media type: MediaType::of throws std::invalid_argument") {
    CHECK(ipc::MediaType::of("text/plain;a=b").str() == "text/plain; a=b");
    CHECK_THROWS_AS(ipc::MediaType::of("x/y"), std::invalid_argument);
}
#endif

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
        // One byte changed, anywhere: the whole content is compared, not a prefix.
        std::size_t matched = 0;
        for (std::size_t i = 0; i < content.size(); ++i) {
            std::string changed = content;
            changed[i] = static_cast<char>(changed[i] ^ 0x01);
            if (ipc::protocol::classify("text/plain", changed) != Protocol::none) ++matched;
        }
        CHECK(matched == 0);
        // A media type of the same length, one byte off: the whole of it too.
        for (std::string_view type : {"text/plaiN", "Text/plain", "text-plain", "text/plaim"})
            CHECK(ipc::protocol::classify(type, content) == Protocol::none);
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


}  // TEST_SUITE
