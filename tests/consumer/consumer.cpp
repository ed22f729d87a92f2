// The program every consumer in tests/consumer/ builds: it includes ipc.hpp
// as a user would (<ipc.hpp>, from wherever the build system put it),
// checks in #if that the header is the version the build system reported,
// and round-trips a message through the codec.
#include <ipc.hpp>

#include <cstdio>
#include <string>

#if !defined(IPC_HPP_VERSION_MAJOR) || !defined(IPC_HPP_VERSION_MINOR) || !defined(IPC_HPP_VERSION_PATCH)
#error "ipc.hpp defines no IPC_HPP_VERSION_* macros"
#endif
// The build system passes the version it found (meson's dependency version,
// CMake's ipc_hpp_VERSION_*): it must be the header's.
#if defined(EXPECTED_VERSION_MAJOR) && IPC_HPP_VERSION_MAJOR != EXPECTED_VERSION_MAJOR
#error "IPC_HPP_VERSION_MAJOR is not the version the build system found"
#endif
#if defined(EXPECTED_VERSION_MINOR) && IPC_HPP_VERSION_MINOR != EXPECTED_VERSION_MINOR
#error "IPC_HPP_VERSION_MINOR is not the version the build system found"
#endif
#if defined(EXPECTED_VERSION_PATCH) && IPC_HPP_VERSION_PATCH != EXPECTED_VERSION_PATCH
#error "IPC_HPP_VERSION_PATCH is not the version the build system found"
#endif

int main() {
    auto message = ipc_hpp::Message::make("application/json; charset=utf-8", std::string("{\"n\":1}\0end", 11));
    if (!message) return 1;
    auto frame = ipc_hpp::encode(message.value());
    if (!frame) return 2;
    ipc_hpp::Decoder decoder;
    decoder.feed(frame.value());
    ipc_hpp::Message decoded;
    if (decoder.next(decoded) != ipc_hpp::Decoder::Status::message) return 3;
    if (decoded != message.value() || decoded.content().size() != 11) return 4;
    std::printf("consumer: ipc.hpp %d.%d.%d, %zu-byte frame round-tripped\n", IPC_HPP_VERSION_MAJOR,
                IPC_HPP_VERSION_MINOR, IPC_HPP_VERSION_PATCH, frame.value().size());
    return 0;
}
