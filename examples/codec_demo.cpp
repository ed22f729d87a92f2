// codec_demo: the frame a message becomes on the wire, and back.
//
//     $ ./codec_demo
//     frame (21 bytes): 000a746578742f706c61696e0000000470696e67ce
//     decoded text/plain: ping
//
// No sockets here: encode() and Decoder are what every connection uses.
#include "ipc.hpp"

#include <cstdio>

namespace ipc = ipc_hpp;

int main() {
    // Message::make checks the media type against the reference's rules.
    auto message = ipc::Message::make("text/plain", "ping");
    if (!message) {
        std::fprintf(stderr, "make: %s\n", message.error().message().c_str());
        return 1;
    }

    // u16 media type length | media type | u32 content length | content | 0xCE
    auto frame = ipc::encode(message.value());
    if (!frame) {
        std::fprintf(stderr, "encode: %s\n", frame.error().message().c_str());
        return 1;
    }
    std::printf("frame (%zu bytes): ", frame.value().size());
    for (char byte : frame.value()) std::printf("%02x", static_cast<unsigned char>(byte));
    std::printf("\n");

    // A Decoder takes bytes as they arrive, in chunks of any size, and hands
    // out each message once its whole frame is there.
    ipc::Decoder decoder;
    decoder.feed(frame.value());
    ipc::Message decoded;
    if (decoder.next(decoded) != ipc::Decoder::Status::message) {
        std::fprintf(stderr, "decode: %s\n", decoder.last_error().message().c_str());
        return 1;
    }
    std::printf("decoded %s: %s\n", decoded.media_type().str().c_str(), decoded.content().c_str());
    return decoded == message.value() ? 0 : 1;
}
