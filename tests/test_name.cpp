// Section 6: process names (docs/protocol.md §1: ^[a-zA-Z0-9_-]+$).
#include "ipc.hpp"

#include <doctest/doctest.h>

#include <string>
#include <string_view>

namespace ipc = ipc_hpp;

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
