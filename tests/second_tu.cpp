// A second translation unit that includes ipc.hpp. If a non-template
// function in the header lacked `inline`, the test binary would fail to link
// with a multiple-definition error. test_codec.cpp calls the function below
// and compares its frame with one built in its own translation unit.
#include "ipc.hpp"

#include "support/bytes.hpp"

std::string ipc_test::frame_built_in_second_tu(std::string_view media_type, std::string_view content) {
    auto message = ipc_hpp::Message::make(media_type, content);
    if (!message) return "make: " + message.error().message();
    auto frame = ipc_hpp::encode(message.value());
    if (!frame) return "encode: " + frame.error().message();
    return std::move(frame).value();
}
