// libFuzzer target for the frame decoder.
//
//   clang++ -std=c++17 -g -O1 -fsanitize=fuzzer,address,undefined -I. \
//       tests/fuzz/fuzz_decoder.cpp -o fuzz_decoder
//   ./fuzz_decoder -max_total_time=60 CORPUS_DIR
//
// The first input byte picks how the rest is cut into chunks; the rest is
// the byte stream a peer would send. Checked on every input:
//   - decoding the stream whole and decoding it in chunks give the same
//     messages and end the same way (need more, or the same error), the
//     chunked decoder taking contents from 16 to 1039 bytes on into their
//     own string (Decoder::set_direct_threshold);
//   - every decoded message has a media type the parser accepts as already
//     canonical, and re-encoding it then decoding again gives it back;
//   - the decoder never buffers more than what it was fed.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "ipc.hpp"

namespace {

using namespace ipc_hpp;

struct Outcome {
    std::vector<Message> messages;
    Decoder::Status last = Decoder::Status::need_more;
    Errc error = Errc::invalid_argument;
};

void check(bool ok) {
    if (!ok) std::abort();
}

void drain(Decoder& d, Outcome& out) {
    Message m;
    for (;;) {
        Decoder::Status st = d.next(m);
        if (st == Decoder::Status::message) {
            out.messages.push_back(m);
            continue;
        }
        out.last = st;
        if (st == Decoder::Status::error) out.error = d.last_error().code;
        return;
    }
}

Outcome decode(const std::uint8_t* data, std::size_t size, std::uint8_t cut) {
    Decoder d(1u << 20);  // a small maximum, so oversized frames are exercised
    // Cut streams also decode large contents into their own string, from a
    // threshold of 16 to 1039 bytes: the whole stream, decoded the ordinary
    // way, must agree.
    if (cut != 0) d.set_direct_threshold(16 + std::size_t{cut} * 4);
    Outcome out;
    std::uint32_t state = cut | 1u;
    std::size_t fed = 0;
    while (fed < size && out.last != Decoder::Status::error) {
        std::size_t chunk = size - fed;
        if (cut != 0) {
            state = state * 1103515245u + 12345u;
            chunk = 1 + (state >> 16) % (cut < 8 ? 3u : 257u);
            if (chunk > size - fed) chunk = size - fed;
        }
        if (cut % 2 == 1) {
            char* p = d.prepare(chunk);
            std::memcpy(p, data + fed, chunk);
            d.commit(chunk);
        } else {
            d.feed(data + fed, chunk);
        }
        fed += chunk;
        check(d.buffered() <= fed);
        drain(d, out);
    }
    return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return 0;
    const std::uint8_t cut = data[0];
    ++data;
    --size;

    Outcome whole = decode(data, size, 0);
    Outcome chunked = decode(data, size, cut);
    check(whole.messages.size() == chunked.messages.size());
    for (std::size_t i = 0; i < whole.messages.size(); ++i) check(whole.messages[i] == chunked.messages[i]);
    check(whole.last == chunked.last);
    if (whole.last == Decoder::Status::error) check(whole.error == chunked.error);

    for (const Message& m : whole.messages) {
        auto type = MediaType::parse(m.media_type().view());
        check(type.has_value() && type.value() == m.media_type());
        auto frame = encode(m);
        check(frame.has_value());
        Decoder again;
        again.feed(frame.value());
        Message back;
        check(again.next(back) == Decoder::Status::message);
        check(back == m);
        check(again.buffered() == 0);
    }
    return 0;
}
