// Golden vectors: tests/vectors.jsonl holds what the reference (PHP
// innmind/ipc 4.4.0) encoder, media type parser and decoder did with each
// input. Every line is checked; a line this file does not know fails.
#include "ipc.hpp"

#include "support/jsonl.hpp"
#include "support/bytes.hpp"

#include <doctest/doctest.h>

#include <map>

#ifndef IPC_HPP_VECTORS
#error "IPC_HPP_VECTORS must name tests/vectors.jsonl (tests/meson.build defines it)"
#endif

namespace {

using namespace ipc_test;
using Status = ipc::Decoder::Status;

const std::vector<Json>& all_vectors() {
    static const std::vector<Json> vectors = read_jsonl(IPC_HPP_VECTORS);
    return vectors;
}

std::vector<const Json*> vectors_of_kind(std::string_view kind) {
    std::vector<const Json*> out;
    for (const Json& v : all_vectors()) {
        if (v["kind"].str() == kind) out.push_back(&v);
    }
    return out;
}

// Chunk sizes each decoding is repeated with: all at once, then one byte at
// a time, then a few sizes that cut the length fields in different places.
constexpr std::size_t chunkings[] = {0, 1, 2, 3, 5, 7};

// What ipc.hpp does with each decode vector the reference gave no message
// for. The reference cannot wait for more bytes: on a short read it warns,
// and when a length field is cut it throws a TypeError that takes the whole
// server down (docs/protocol.md §5). ipc.hpp waits for the rest of the frame instead
// (need_more), and refuses only what can never become a valid frame.
enum class Verdict { need_more, malformed_frame, invalid_media_type };

const std::map<std::string, Verdict, std::less<>> no_message_verdicts = {
    {"empty input", Verdict::need_more},
    // The reference: "unpack(): Type n: not enough input" + TypeError.
    {"truncated: 1 byte", Verdict::need_more},
    // The reference: warning + TypeError (content length cut).
    {"truncated: inside media type", Verdict::need_more},
    // The reference: warning + TypeError (content length cut).
    {"truncated: inside content length", Verdict::need_more},
    // The reference: warning (end byte missing), connection dropped.
    {"truncated: inside content", Verdict::need_more},
    {"truncated: missing end byte", Verdict::need_more},
    {"wrong end byte 0xCD", Verdict::malformed_frame},
    {"end byte 0x00", Verdict::malformed_frame},
    // 16 bytes announced, 12 arrived: the last 4 may still come.
    {"content shorter than announced (announce 16, give 11 + CE)", Verdict::need_more},
    // The byte after 5 bytes of content is ' ', not 0xCE.
    {"content longer than announced (announce 5, give 11 + CE)", Verdict::malformed_frame},
    {"invalid media type nonsense", Verdict::invalid_media_type},
    {"invalid media type x/y", Verdict::invalid_media_type},
    {"empty media type", Verdict::invalid_media_type},
    {"uppercase media type TEXT/PLAIN", Verdict::invalid_media_type},
    {"media type with trailing garbage text/plain;;", Verdict::invalid_media_type},
    // The reference: warning + TypeError. 65535 bytes of media type announced.
    {"media type length 0xFFFF with short data", Verdict::need_more},
    // The reference: warning + TypeError. "GE" announces a media type of
    // 0x4745 bytes, which has not arrived.
    {"garbage ascii \"GET / HTTP/1.0\\r\\n\\r\\n\"", Verdict::need_more},
};

}  // namespace

TEST_SUITE("vectors") {

TEST_CASE("vectors: the JSON reader handles every escape the file may use") {
    const Json j = JsonParser::parse(R"({"s":"a\"b\\c\/d\r\n\t\u0041\u00e9\u20ac\ud83d\ude4f","n":-12,"b":true,"z":null,)"
                                     R"("a":["x",""],"o":{"k":false}})");
    CHECK(j["s"].str() == "a\"b\\c/d\r\n\tA\xc3\xa9\xe2\x82\xac\xf0\x9f\x99\x8f");
    CHECK(j["n"].to_int() == -12);
    CHECK(j["b"].to_bool());
    CHECK(j["z"].is_null());
    CHECK(j["a"].items.size() == 2);
    CHECK(j["a"].items[1].str().empty());
    CHECK_FALSE(j["o"]["k"].to_bool());
    CHECK_THROWS(JsonParser::parse(R"({"a":1,})"));
    CHECK_THROWS(JsonParser::parse(R"("\ud83d")"));
    CHECK_THROWS(JsonParser::parse(R"({"a":1} x)"));
}

TEST_CASE("vectors: the file has the expected number of lines of each kind") {
    CHECK(vectors_of_kind("encode").size() == 13);
    CHECK(vectors_of_kind("media_type").size() == 36);
    CHECK(vectors_of_kind("decode").size() == 23);
    CHECK(all_vectors().size() == 13 + 36 + 23);
}

TEST_CASE("vectors: encode — Message::make encodes byte for byte like the reference, and decodes back") {
    for (const Json* v : vectors_of_kind("encode")) {
        INFO("vector: ", (*v)["name"].str());
        const std::string content = from_hex((*v)["content_hex"].str());
        const std::string frame = from_hex((*v)["frame_hex"].str());

        auto message = ipc::Message::make((*v)["media_type"].str(), content);
        REQUIRE(message.has_value());
        auto encoded = ipc::encode(message.value());
        REQUIRE(encoded.has_value());
        CHECK(to_hex(encoded.value()) == (*v)["frame_hex"].str());

        for (std::size_t chunk : chunkings) {
            INFO("chunk size: ", chunk);
            const Outcome got = decode_first(frame, chunk);
            REQUIRE(got.status == Status::message);
            CHECK(got.message == message.value());
            CHECK(got.message.media_type().str() == (*v)["media_type"].str());
            CHECK(got.consumed == frame.size());
        }
    }
}

TEST_CASE("vectors: media_type — accepted exactly when the reference accepts, in its canonical form") {
    for (const Json* v : vectors_of_kind("media_type")) {
        const std::string& input = (*v)["input"].str();
        INFO("input: \"", input, "\"");
        auto parsed = ipc::MediaType::parse(input);
        REQUIRE(parsed.has_value() == (*v)["accepted"].to_bool());
        if (parsed) {
            CHECK(parsed.value().str() == (*v)["to_string"].str());
        } else {
            CHECK((*v)["to_string"].is_null());
            CHECK(parsed.error() == ipc::Errc::invalid_media_type);
        }
    }
}

TEST_CASE("vectors: media_type — the decoder applies the same rules to the media type of a frame") {
    for (const Json* v : vectors_of_kind("media_type")) {
        const std::string& input = (*v)["input"].str();
        INFO("input: \"", input, "\"");
        std::string frame;
        REQUIRE(ipc::encode_to(input, "x", frame).has_value());
        const Outcome got = decode_first(frame);
        if ((*v)["accepted"].to_bool()) {
            REQUIRE(got.status == Status::message);
            CHECK(got.message.media_type().str() == (*v)["to_string"].str());
        } else {
            REQUIRE(got.status == Status::error);
            CHECK(got.error == ipc::Errc::invalid_media_type);
        }
    }
}

TEST_CASE("vectors: decode — same message and bytes consumed as the reference, or a deliberate verdict") {
    std::size_t verdicts_used = 0;
    for (const Json* v : vectors_of_kind("decode")) {
        const std::string& name = (*v)["name"].str();
        INFO("vector: ", name);
        const std::string input = from_hex((*v)["input_hex"].str());
        const Json& result = (*v)["result"];

        const auto verdict = no_message_verdicts.find(name);
        if (result.is_null()) {
            if (verdict == no_message_verdicts.end()) {
                FAIL_CHECK("decode vector without a verdict: add it to no_message_verdicts");
                continue;
            }
            ++verdicts_used;
        } else {
            CHECK_MESSAGE(verdict == no_message_verdicts.end(), "the reference decodes this vector: remove its verdict");
        }

        for (std::size_t chunk : chunkings) {
            INFO("chunk size: ", chunk);
            const Outcome got = decode_first(input, chunk);
            if (!result.is_null()) {
                REQUIRE(got.status == Status::message);
                CHECK(got.message.media_type().str() == result["media_type"].str());
                CHECK(to_hex(got.message.content()) == result["content_hex"].str());
                CHECK(got.consumed == static_cast<std::size_t>((*v)["consumed"].to_int()));
                continue;
            }
            switch (verdict->second) {
                case Verdict::need_more:
                    CHECK(got.status == Status::need_more);
                    CHECK(got.consumed == 0);  // everything stays buffered for the rest of the frame
                    break;
                case Verdict::malformed_frame:
                    REQUIRE(got.status == Status::error);
                    CHECK(got.error == ipc::Errc::malformed_frame);
                    break;
                case Verdict::invalid_media_type:
                    REQUIRE(got.status == Status::error);
                    CHECK(got.error == ipc::Errc::invalid_media_type);
                    break;
            }
        }
    }
    CHECK_MESSAGE(verdicts_used == no_message_verdicts.size(), "a verdict names no decode vector: remove it");
}

}  // TEST_SUITE
