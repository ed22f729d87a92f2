// Regression (0.1): application messages that arrived before the ack were
// kept without a cap, inside a send() that has no timeout by default; a
// hostile server grew a client to 4.4 GiB of RSS in 12 s. Now what a client
// keeps unread is bounded (Config::max_inbox_messages, max_inbox_bytes):
// past it the connection fails with Errc::inbox_full and memory stays flat.
#include "../support/basics.hpp"
#include "../support/child.hpp"
#include "../support/frames.hpp"
#include "../support/raw_peer.hpp"
#include "../support/server.hpp"
#include "../support/temp.hpp"

using namespace ipc_test;

namespace {

long rss_kib() {
    FILE* f = std::fopen("/proc/self/statm", "r");
    if (f == nullptr) return -1;
    long pages = 0, resident = 0;
    const int n = std::fscanf(f, "%ld %ld", &pages, &resident);
    std::fclose(f);
    return n == 2 ? resident * (::sysconf(_SC_PAGESIZE) / 1024) : -1;
}

// A hostile server in a child: handshake, read one frame, then send
// application frames of `size` bytes, never an ack, up to `total` bytes or
// until the client goes away. Its result: how many bytes it wrote.
Child flooding_server(const std::string& path, std::size_t size, std::size_t total) {
    return spawn([=]() -> std::string {
        RawListener listener(path);
        if (!listener.valid()) return "no listener";
        RawConn c = listener.accept(5000);
        if (!c.valid() || !c.send(start_frame())) return "no client";
        Frame fr;
        if (!c.read_frame(fr, 5000) || !c.read_frame(fr, 5000)) return "no message";  // start ok, then the message
        const std::string flood = frame("application/octet-stream", std::string(size, 'x'));
        std::size_t written = 0;
        while (written < total && c.send(flood, 3000)) written += flood.size();
        return std::to_string(written);
    });
}

}  // namespace

TEST_SUITE("regression") {

TEST_CASE_FIXTURE(Case, "regression: a server that floods messages before the ack fails the send with inbox_full, memory bounded") {
    config.max_inbox_bytes = std::size_t{4} << 20;
    reconfigure();
    const std::size_t total = std::size_t{256} << 20;  // 0.1 kept all of it
    Child server = flooding_server(ipc.path_of(name), 64 * 1024, total);
    REQUIRE(eventually([&] { return listening(ipc.path_of(name)); }));
    auto p = ipc.get(name);
    REQUIRE(p.has_value());
    const long before = rss_kib();
    auto r = p->send(ipc::Message::text("hello"));  // no timeout: the bound must end it
    const long after = rss_kib();
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error() == ipc::Errc::inbox_full);
    CHECK(p->closed());
    MESSAGE("client RSS ", before, " -> ", after, " KiB");
    CHECK(after - before < 32 * 1024);  // 4 MiB kept, plus a socket buffer and the decoder's frame
    const std::string written = server.result();
    CHECK(std::strtoull(written.c_str(), nullptr, 10) < total);  // the client stopped reading long before
    server.reap();
}

TEST_CASE_FIXTURE(Case, "regression: the inbox is bounded in messages too") {
    config.max_inbox_messages = 10;
    reconfigure();
    Child server = flooding_server(ipc.path_of(name), 16, 1000 * 30);
    REQUIRE(eventually([&] { return listening(ipc.path_of(name)); }));
    auto p = ipc.get(name);
    REQUIRE(p.has_value());
    auto r = p->send(ipc::Message::text("hello"), ipc::Milliseconds(5000));
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error() == ipc::Errc::inbox_full);
    (void)server.result();
    server.reap();
}

}  // TEST_SUITE
