// Section 6: media types. tests/test_vectors.cpp checks every media type the
// reference was asked about; this file adds generated ones.
#include "ipc.hpp"

#include "support/bytes.hpp"

#include <doctest/doctest.h>

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
    const std::uint64_t seed = test_seed();
    MESSAGE("seed ", seed, " (replay: IPC_HPP_TEST_SEED=", seed, ")");
    std::mt19937_64 rng(seed);
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
