// Compiled on its own by the "strict ..." tests with each compiler,
// language standard and -fno-exceptions -fno-rtti, every warning an error,
// then run. It includes nothing but ipc.hpp and touches the main API.
#include "ipc.hpp"

namespace ipc = ipc_hpp;

int main() {
    auto name = ipc::Name::parse("compile-alone");
    if (!name || ipc::Name::parse("not a name")) return 1;

    auto type = ipc::MediaType::parse("text/plain;charset=utf-8");
    if (!type || type.value().str() != "text/plain; charset=utf-8") return 2;

    auto message = ipc::Message::make("application/json", "{}");
    if (!message || message.value().is_protocol()) return 3;
    if (ipc::Message::of(ipc::Protocol::heartbeat).protocol() != ipc::Protocol::heartbeat) return 4;

    auto frame = ipc::encode(message.value());
    if (!frame || frame.value().size() != ipc::frame_size(16, 2)) return 5;

    ipc::Decoder decoder;
    decoder.feed(frame.value());
    ipc::Message decoded;
    if (decoder.next(decoded) != ipc::Decoder::Status::message || decoded != message.value()) return 6;
    if (decoder.next(decoded) != ipc::Decoder::Status::need_more || decoder.buffered() != 0) return 7;

    ipc::Result<int> answer = 41;
    auto next = answer.transform([](int n) { return n + 1; }).and_then([](int n) -> ipc::Result<long> { return long{n}; });
    if (next.value_or(0) != 42 || next != ipc::Result<long>(42L)) return 8;

    ipc::Result<int> failed = ipc::fail(ipc::Errc::timed_out, ETIMEDOUT, "compile_alone");
    char buf[128];
    if (failed.error() != ipc::Errc::timed_out || *failed.error().format(buf, sizeof buf) == '\0') return 9;
    return failed.match([](int) { return 10; }, [](const ipc::Error&) { return 0; });
}
