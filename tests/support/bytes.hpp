// Bytes without a socket: hex, a decoding driver, a seeded random source, random media types.
#ifndef IPC_HPP_TESTS_SUPPORT_BYTES_HPP
#define IPC_HPP_TESTS_SUPPORT_BYTES_HPP

#include "ipc.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <iterator>
#include <random>
#include <stdexcept>
#include <string>
#include <string_view>

namespace ipc_test {

namespace ipc = ipc_hpp;

// "00ff" -> "\x00\xff". Throws on odd length or a non-hex digit.
inline std::string from_hex(std::string_view hex) {
    auto digit = [](char c) -> int {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        if (c >= 'A' && c <= 'F') return c - 'A' + 10;
        throw std::invalid_argument("from_hex: not a hex digit");
    };
    if (hex.size() % 2 != 0) throw std::invalid_argument("from_hex: odd length");
    std::string bytes;
    bytes.reserve(hex.size() / 2);
    for (std::size_t i = 0; i < hex.size(); i += 2) {
        bytes += static_cast<char>(digit(hex[i]) * 16 + digit(hex[i + 1]));
    }
    return bytes;
}

// "\x00\xff" -> "00ff"
inline std::string to_hex(std::string_view bytes) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string hex;
    hex.reserve(bytes.size() * 2);
    for (char c : bytes) {
        auto b = static_cast<unsigned char>(c);
        hex += digits[b >> 4];
        hex += digits[b & 0x0F];
    }
    return hex;
}

// What a fresh Decoder makes of `input`.
struct Outcome {
    ipc::Decoder::Status status = ipc::Decoder::Status::need_more;
    ipc::Message message;  // when status == message
    ipc::Error error;      // when status == error
    std::size_t consumed = 0;  // bytes fed minus bytes still buffered
};

// Feeds `input` to a fresh decoder `chunk` bytes at a time (0: all at once),
// calls next() after each feed, and stops at the first answer that is not
// need_more (or at the end of the input).
inline Outcome decode_first(std::string_view input, std::size_t chunk = 0) {
    ipc::Decoder decoder;
    Outcome outcome;
    const std::size_t step = chunk == 0 ? (input.empty() ? 1 : input.size()) : chunk;
    std::size_t fed = 0;
    do {
        const std::size_t n = std::min(step, input.size() - fed);
        decoder.feed(input.substr(fed, n));
        fed += n;
        outcome.status = decoder.next(outcome.message);
    } while (outcome.status == ipc::Decoder::Status::need_more && fed < input.size());
    if (outcome.status == ipc::Decoder::Status::error) outcome.error = decoder.last_error();
    outcome.consumed = fed - decoder.buffered();
    return outcome;
}

// The seed of every randomised test: IPC_HPP_TEST_SEED from the environment
// when set (to replay a failure), else a fixed one. Tests print it.
inline std::uint64_t test_seed() {
    if (const char* s = std::getenv("IPC_HPP_TEST_SEED"); s != nullptr && *s != '\0') {
        return std::strtoull(s, nullptr, 0);
    }
    return 0x1bc0ffee2026ull;
}

// A generator seeded with test_seed(); the seed is printed for a replay.
inline std::mt19937_64 seeded_rng() {
    const std::uint64_t seed = test_seed();
    MESSAGE("seed ", seed, " (replay: IPC_HPP_TEST_SEED=", seed, ")");
    return std::mt19937_64(seed);
}

// A uniformly drawn integer in [lo, hi].
template <class Int>
Int uniform(std::mt19937_64& rng, Int lo, Int hi) {
    return std::uniform_int_distribution<Int>(lo, hi)(rng);
}

// A size in [0, max] whose order of magnitude is uniform, so that small,
// medium and large values all show up in a few hundred draws.
inline std::size_t log_uniform_size(std::mt19937_64& rng, std::size_t max) {
    unsigned bits = 0;
    while ((std::size_t{1} << bits) < max) ++bits;
    const std::size_t top = std::size_t{1} << uniform<unsigned>(rng, 0, bits);
    return std::min(max, uniform<std::size_t>(rng, top / 2, top));
}

// Any bytes, NUL included, eight per draw.
inline std::string random_bytes(std::mt19937_64& rng, std::size_t size) {
    std::string bytes(size, '\0');
    for (std::size_t i = 0; i < size; i += 8) {
        std::uint64_t r = rng();
        for (std::size_t j = i; j < std::min(size, i + 8); ++j, r >>= 8) bytes[j] = static_cast<char>(r & 0xFF);
    }
    return bytes;
}

// A media type as a peer might write it, and the canonical form the
// reference would put on the wire for it.
struct WrittenMediaType {
    std::string written;
    std::string canonical;
};

// A random media type the reference accepts (docs/protocol.md §2, "Media types"):
// any top level, a subtype of 1 to 127 characters, sometimes a +suffix,
// zero to three parameters separated by ';' or ',' and at most one space,
// values sometimes quoted.
inline WrittenMediaType random_media_type(std::mt19937_64& rng) {
    static constexpr std::string_view tops[] = {"application", "audio", "font",  "example", "image",
                                                "message",     "model", "multipart", "text", "video"};
    static constexpr std::string_view alnum = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    static constexpr std::string_view token_tail = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$&^_.-";
    static constexpr std::string_view value_chars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-";

    auto pick = [&](std::string_view from) { return from[uniform<std::size_t>(rng, 0, from.size() - 1)]; };
    auto token = [&](std::size_t max) {
        const std::size_t length = uniform<int>(rng, 0, 9) == 0 ? max : uniform<std::size_t>(rng, 1, 12);
        std::string t(1, pick(alnum));
        while (t.size() < length) t += pick(token_tail);
        return t;
    };

    std::string type = std::string(tops[uniform<std::size_t>(rng, 0, std::size(tops) - 1)]) + "/" + token(127);
    if (uniform<int>(rng, 0, 3) == 0) type += "+" + token(127);
    WrittenMediaType m{type, type};

    const int parameters = uniform<int>(rng, 0, 3);
    for (int i = 0; i < parameters; ++i) {
        const std::string key = token(20);
        std::string value;
        const std::size_t length = uniform<std::size_t>(rng, 1, 16);
        while (value.size() < length) value += pick(value_chars);
        const bool quoted = uniform<int>(rng, 0, 2) == 0;

        m.written += pick(";,");
        if (uniform<int>(rng, 0, 1) == 0) m.written += ' ';
        m.written += key + "=" + (quoted ? "\"" + value + "\"" : value);

        m.canonical += (i == 0 ? "; " : ", ") + key + "=" + value;
    }
    return m;
}

// Defined in second_tu.cpp, a second translation unit that includes ipc.hpp:
// the test binary links only if every non-template function is inline.
std::string frame_built_in_second_tu(std::string_view media_type, std::string_view content);

}  // namespace ipc_test

#endif
