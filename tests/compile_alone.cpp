// Compiled on its own by the "strict ..." tests with each compiler,
// language standard and -fno-exceptions -fno-rtti, every warning an error,
// then run. It includes nothing but ipc.hpp and touches the main API.
#include "ipc.hpp"

namespace ipc = ipc_hpp;

// Instantiates the server and the client with reducers of several shapes, so
// that -O2 warnings inside the templates (e.g. -Wmaybe-uninitialized, seen
// once on Continuation) fail these strict builds. Never called at run time.
static int serve_and_ask(int shape) {
    ipc::Ipc ipc;
    auto server = ipc.listen(ipc::Name::parse("compile-alone").value());
    if (!server) return 1;
    const ipc::Message small = ipc::Message::text("ok");
    auto counted = server->serve(0UL, [&](const ipc::Message& m, ipc::Continuation<unsigned long> k, unsigned long n) {
        switch (shape) {
            case 1: return k.respond(n + 1, m);
            case 2: return k.respond(n + 1, small);
            case 3: return k.close(n);
            case 4: return k.stop(n);
            default: return k.continue_(n + 1);
        }
    });
    auto text = server->serve(std::string(), [](const ipc::Message& m, ipc::Continuation<std::string> k, std::string s,
                                                const ipc::Peer& peer) {
        s += m.content();
        return peer.uid == 0 ? k.respond(s, ipc::Message::text(s)) : k.stop(s);
    });
    auto process = ipc.get(ipc::Name::parse("compile-alone").value());
    if (process) {
        ipc::Message reply;
        (void)process->send(small, ipc::Milliseconds(10));
        (void)process->wait_into(reply, ipc::Milliseconds(10));
    }
    return counted && text ? 0 : 1;
}

int main(int argc, char**) {
    if (argc > 99) return serve_and_ask(argc);

    auto name = ipc::Name::parse("compile-alone");
    if (!name || ipc::Name::parse("not a name")) return 1;

    auto type = ipc::MediaType::parse("text/plain;charset=utf-8");
    if (!type || type.value().str() != "text/plain; charset=utf-8") return 2;

    auto message = ipc::Message::make("application/json", "{}");
    if (!message || message.value().is_protocol()) return 3;
    if (ipc::Message::protocol_message(ipc::Protocol::heartbeat).protocol() != ipc::Protocol::heartbeat) return 4;

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
