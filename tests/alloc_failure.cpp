// Allocation failures inside the library, made on purpose: its own doctest
// binary, because it replaces the global operator new (which then throws
// std::bad_alloc for sizes in a window while `failing` is set). Builds
// without exceptions abort on a failed allocation instead: nothing to test.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include "support/basics.hpp"
#include "support/frames.hpp"
#include "support/raw_peer.hpp"
#include "support/temp.hpp"

#include <atomic>
#include <cstdlib>
#include <new>
#include <thread>

using namespace ipc_test;

namespace {
std::atomic<bool> failing{false};
std::size_t fail_from = 0, fail_to = 0;
// Out of line, so that the compiler does not pair malloc in one with free
// in the other (-Wmismatched-new-delete).
[[gnu::noinline]] void* take(std::size_t n) noexcept { return std::malloc(n == 0 ? 1 : n); }
[[gnu::noinline]] void give(void* p) noexcept { std::free(p); }
}  // namespace

void* operator new(std::size_t n) {
    if (failing.load(std::memory_order_relaxed) && n >= fail_from && n <= fail_to) throw std::bad_alloc();
    if (void* p = take(n)) return p;
    throw std::bad_alloc();
}
void operator delete(void* p) noexcept { give(p); }
void operator delete(void* p, std::size_t) noexcept { give(p); }

#if IPC_HPP_HAVE_EXCEPTIONS
TEST_SUITE("alloc_failure") {

TEST_CASE("alloc failure: a send() that throws while its large message is lent leaves nothing pointing into the message") {
    Watchdog wd;
    TempDir dir;
    ipc::Config config = test_config(dir.path(), 10000);
    ipc::Ipc ipc(config);
    const std::size_t size = 4u << 20;  // far more than the socket takes while the server waits
    const std::string type = "application/octet-stream";
    RawListener listener(dir.file("srv.sock"));
    REQUIRE(listener.valid());
    std::atomic<std::size_t> wrong{~std::size_t{0}};
    std::thread server([&] {
        RawConn c = listener.accept();
        if (!c.valid() || !c.send(start_frame()) || c.read_exact(start_ok_frame().size()) != start_ok_frame()) return;
        // Unsolicited, before the ack: storing it is what fails in the client.
        if (!c.send_frame("application/x-a", std::string(10000, 'u'))) return;
        sleep_ms(300);  // not reading: the client's send stays half done
        const std::string head = c.read_exact(2 + type.size() + 4, 10000);
        const std::string body = c.read_exact(size + 1, 10000);
        std::size_t bad = head.size() == 2 + type.size() + 4 && body.size() == size + 1 ? 0 : size;
        for (std::size_t i = 0; i < size && i < body.size(); ++i) bad += body[i] != 'A';
        wrong = bad;
        if (!c.send(ack_frame()) || c.read_exact(close_frame().size(), 5000) != close_frame()) return;
        (void)c.send(close_ok_frame());
        sleep_ms(100);
    });
    auto p = ipc.get(name_of("srv"));
    REQUIRE(p.has_value());
    {
        ipc::Message m = ipc::Message::make(type, std::string(size, 'A')).value();
        fail_from = 9000;
        fail_to = 20000;
        failing = true;
        bool threw = false;
        try {
            (void)p->send(m, ipc::Milliseconds(2000));
        } catch (const std::bad_alloc&) {
            threw = true;
        }
        failing = false;
        CHECK(threw);
        m.content().assign(size, 'Z');  // the caller reuses its message, then drops it
    }
    CHECK(p->close(ipc::Milliseconds(5000)).has_value());
    server.join();
    CHECK(wrong.load() == 0);  // the frame came out whole, with the bytes sent when it was lent
}

}  // TEST_SUITE
#endif
