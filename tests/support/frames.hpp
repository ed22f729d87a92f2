// Frames built and named independently of ipc.hpp's codec, so raw tests never trust the codec they check.
#ifndef IPC_HPP_TESTS_SUPPORT_FRAMES_HPP
#define IPC_HPP_TESTS_SUPPORT_FRAMES_HPP

#include "ipc.hpp"

#include <cstdint>
#include <string>
#include <string_view>

namespace ipc_test {

namespace ipc = ipc_hpp;

inline std::string frame(std::string_view type, std::string_view content) {
    std::string f;
    f += static_cast<char>((type.size() >> 8) & 0xFF);
    f += static_cast<char>(type.size() & 0xFF);
    f.append(type.data(), type.size());
    const auto n = static_cast<std::uint32_t>(content.size());
    f += static_cast<char>((n >> 24) & 0xFF);
    f += static_cast<char>((n >> 16) & 0xFF);
    f += static_cast<char>((n >> 8) & 0xFF);
    f += static_cast<char>(n & 0xFF);
    f.append(content.data(), content.size());
    f += static_cast<char>(0xCE);
    return f;
}
inline std::string text_frame(std::string_view content) { return frame("text/plain", content); }

inline std::string start_frame() { return text_frame("innmind/ipc:connection.start"); }
inline std::string start_ok_frame() { return text_frame("innmind/ipc:connection.start-ok"); }
inline std::string close_frame() { return text_frame("innmind/ipc:connection.close"); }
inline std::string close_ok_frame() { return text_frame("innmind/ipc:connection.close-ok"); }
inline std::string heartbeat_frame() { return text_frame("innmind/ipc:heartbeat"); }
inline std::string ack_frame() { return text_frame("innmind/ipc:message.received"); }

// The connection start frame, as the reference's peers put it on the wire.
constexpr const char* start_frame_hex =
    "000a746578742f706c61696e0000001c696e6e6d696e642f6970633a636f6e6e656374696f6e2e7374617274ce";

// One frame as read off the wire.
struct Frame {
    std::string type;
    std::string content;
    std::string raw;  // every byte of the frame, end marker included
    bool is(const std::string& whole) const { return raw == whole; }
};

}  // namespace ipc_test

#endif
