// Torture tests (issue "Faults, bad input and hostile peers"): every
// scenario forks real processes and checks what docs/protocol.md §5 says the
// reference (innmind/ipc 4.x) gets wrong:
//   1. a peer that never reads is dropped with queue_full; others go on;
//   2. a frame one byte per 10 ms, frames stopped midway, a peer that never
//      answers connection start (handshake_timeout): others stay fast;
//   3. a frame announcing 4 GiB - 1 is dropped after its length prefix
//      without growing the server; random garbage from hundreds of raw
//      connections: each dropped, the carry counts only good messages;
//   4. 16 MiB and 64 MiB (the default maximum) round-trip both ways, a byte
//      more is refused and the server goes on;
//   5. clients SIGKILLed at random points, thousands of times: the carry
//      counts only complete messages, no fd is leaked; a server SIGKILLed
//      under a client inside send() or wait(): closed_by_peer, no hang, no
//      SIGPIPE;
//   6. 1000 clients at once, then 10,000 connect/close cycles.
// Its own binary (ipc_torture), run alone (meson: suite 'torture',
// is_parallel false). Bounded: a Watchdog per test, alarm() in every child,
// deadlines everywhere; a fixed pause only where the pause is the scenario
// (a byte every 10 ms, a reducer that is busy, a kill at a random moment).
//
// Environment:
//   IPC_HPP_TORTURE_SCALE  multiplies the counts (2000 vanishing clients,
//                          1000 + 10,000 connections, 200 garbage peers...);
//                          default 1, 0.5 under TSan;
//   IPC_HPP_TORTURE_SEED   the PRNG seed (printed by each test that uses it).
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include "support/basics.hpp"
#include "support/bytes.hpp"
#include "support/child.hpp"
#include "support/frames.hpp"
#include "support/probes.hpp"
#include "support/raw_peer.hpp"
#include "support/server.hpp"
#include "support/temp.hpp"

#include <linux/sockios.h>  // SIOCOUTQ
#include <sys/ioctl.h>
#include <sys/resource.h>

using namespace ipc_test;

namespace {

// ---------------------------------------------------------------------------
// Scale, seed, a PRNG, content and its hash
// ---------------------------------------------------------------------------

// TSan makes the fork-heavy scenarios (5, 6) and the 64 MiB copies slow:
// its default scale is 0.5 (about 70 s instead of 2 min). ASan+UBSan runs
// the full counts (about 40 s).
#if defined(__SANITIZE_THREAD__)
#define TORTURE_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define TORTURE_TSAN 1
#endif
#endif
#ifndef TORTURE_TSAN
#define TORTURE_TSAN 0
#endif
// Under ASan or TSan the allocator is the sanitizer's: freed memory waits
// in a quarantine and malloc_trim does nothing, so a process's RSS says
// little about what the library holds. Memory bounds are then reported,
// not checked (the ordinary build checks them).
#if TORTURE_TSAN || defined(__SANITIZE_ADDRESS__)
#define TORTURE_OWN_ALLOCATOR 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TORTURE_OWN_ALLOCATOR 1
#endif
#endif
#ifndef TORTURE_OWN_ALLOCATOR
#define TORTURE_OWN_ALLOCATOR 0
#endif

double torture_scale() {
    const char* e = std::getenv("IPC_HPP_TORTURE_SCALE");
    if (e != nullptr && *e != '\0') {
        const double v = std::strtod(e, nullptr);
        if (v > 0) return v;
    }
    return TORTURE_TSAN ? 0.5 : 1.0;
}

// n scaled, at least `least`.
int scaled(int n, int least) {
    const int v = static_cast<int>(static_cast<double>(n) * torture_scale());
    return v < least ? least : v;
}

std::uint64_t torture_seed() {
    static const std::uint64_t seed = [] {
        const char* e = std::getenv("IPC_HPP_TORTURE_SEED");
        if (e != nullptr && *e != '\0') return static_cast<std::uint64_t>(std::strtoull(e, nullptr, 0));
        struct timespec ts {};
        ::clock_gettime(CLOCK_REALTIME, &ts);
        return static_cast<std::uint64_t>(ts.tv_nsec) ^ (static_cast<std::uint64_t>(ts.tv_sec) << 20) ^
               static_cast<std::uint64_t>(::getpid());
    }();
    return seed;
}

// splitmix64
struct Rng {
    std::uint64_t s;
    std::uint64_t next() {
        s += 0x9E3779B97F4A7C15ull;
        std::uint64_t z = s;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        return z ^ (z >> 31);
    }
    // In [0, n), n > 0.
    std::size_t below(std::size_t n) { return static_cast<std::size_t>(next() % n); }
};

// n pseudo-random bytes from a seed; both sides of a test generate the same.
// Plain loops over raw pointers: this runs over 64 MiB at -O0 and under
// sanitizers, where every call costs.
std::string generate(std::size_t n, std::uint64_t seed) {
    std::string out(n, '\0');
    char* p = n > 0 ? &out[0] : nullptr;
    std::uint64_t s = seed;
    for (std::size_t i = 0; i < n; i += 8) {
        s += 0x9E3779B97F4A7C15ull;
        std::uint64_t z = s;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        z ^= z >> 31;
        if (n - i >= 8) {
            std::memcpy(p + i, &z, 8);
        } else {
            std::memcpy(p + i, &z, n - i);
        }
    }
    return out;
}

// A 64-bit hash of bytes (FNV-1a over 8-byte words, then the tail).
std::uint64_t hash64(std::string_view bytes) {
    const char* p = bytes.data();
    const std::size_t n = bytes.size();
    std::uint64_t h = 0xcbf29ce484222325ull;
    std::size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        std::uint64_t v;
        std::memcpy(&v, p + i, 8);
        h = (h ^ v) * 0x100000001b3ull;
        h ^= h >> 29;
    }
    for (; i < n; ++i) h = (h ^ static_cast<unsigned char>(p[i])) * 0x100000001b3ull;
    return h ^ static_cast<std::uint64_t>(n);
}

bool starts_with(const std::string& s, std::string_view prefix) { return s.compare(0, prefix.size(), prefix) == 0; }

// ---------------------------------------------------------------------------
// Limits of this process (fd and RSS probes: support/probes.hpp)
// ---------------------------------------------------------------------------

// Soft RLIMIT_NOFILE raised to the hard limit; returns the soft limit now.
rlim_t raise_nofile() {
    struct rlimit rl {};
    if (::getrlimit(RLIMIT_NOFILE, &rl) != 0) return 0;
    if (rl.rlim_cur != rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        (void)::setrlimit(RLIMIT_NOFILE, &rl);
        (void)::getrlimit(RLIMIT_NOFILE, &rl);
    }
    return rl.rlim_cur;
}

// ---------------------------------------------------------------------------
// The server under torture: a counting reducer in a forked process.
// ---------------------------------------------------------------------------

constexpr int drop_reasons = 9;  // DropReason::closed .. handshake_timeout

struct DropCounts {
    std::uint64_t n[drop_reasons] = {};
    static void record(void* self, const ipc::Peer&, ipc::DropReason why, const ipc::Error&) {
        const auto i = static_cast<unsigned>(why);
        if (i < static_cast<unsigned>(drop_reasons)) ++static_cast<DropCounts*>(self)->n[i];
    }
    // " closed=0 end_of_file=3 ..."
    std::string text() const {
        std::string s;
        for (int i = 0; i < drop_reasons; ++i) {
            s += ' ';
            s += drop_name(static_cast<ipc::DropReason>(i));
            s += '=';
            s += std::to_string(n[i]);
        }
        return s;
    }
};

// A count out of DropCounts::text(), -1 when absent.
long drop_count(const std::string& text, ipc::DropReason why) {
    const std::string key = std::string(" ") + drop_name(why) + "=";
    const std::size_t at = text.find(key);
    if (at == std::string::npos) return -1;
    return std::strtol(text.c_str() + at + key.size(), nullptr, 10);
}
long drop_total(const std::string& text) {
    long sum = 0;
    for (int i = 0; i < drop_reasons; ++i) {
        const long v = drop_count(text, static_cast<ipc::DropReason>(i));
        if (v < 0) return -1;
        sum += v;
    }
    return sum;
}

// Asks ctl for the drop counts until pred(drops) holds or within_ms pass;
// the last answer stays in drops (for CAPTURE).
template <class Pred>
bool drops_until(ipc::Process& ctl, std::string& drops, Pred pred, std::int64_t within_ms) {
    return eventually(
        [&] {
            drops = ask(ctl, "?drops", 5000);
            return pred(drops);
        },
        within_ms);
}
// The same until the drops of every reason add up to total.
bool drops_total_reach(ipc::Process& ctl, std::string& drops, long total, std::int64_t within_ms) {
    return drops_until(ctl, drops, [total](const std::string& d) { return drop_total(d) == total; }, within_ms);
}

// Waits up to within_ms for the server's open fds to be back to base; the
// last count stays in seen.
bool fds_back_to(const Child& server, int base, int& seen, std::int64_t within_ms) {
    return eventually(
        [&] {
            seen = fd_count(server.pid());
            return seen == base;
        },
        within_ms);
}

// The carry counts the application messages handled, except the control
// ones (text/plain starting with '?'):
//   "?stat"   -> the carry;          "?drops" -> DropCounts::text();
//   "?stop"   -> stop;               "?slow"  -> tells notify_fd, sleeps;
//   media type application/x-slow    -> counted, tells notify_fd, sleeps;
//   text/plain "gen:<size>:<seed>"   -> counted, answers generate(size, seed);
//   text/plain "quiet"               -> counted, no answer;
//   anything else                    -> counted, echoed.
struct TortureReducer {
    const DropCounts* drops = nullptr;
    int notify_fd = -1;

    void busy() const {
        if (notify_fd >= 0) (void)write_all_fd(notify_fd, "b");
        sleep_ms(30000);  // the reducer is busy: the scenario SIGKILLs this process meanwhile
    }

    ipc::Continuation<std::uint64_t> operator()(const ipc::Message& m, ipc::Continuation<std::uint64_t> k,
                                                std::uint64_t n) const {
        const std::string& s = m.content();
        const bool text = m.media_type().str() == "text/plain";
        if (text && !s.empty() && s[0] == '?') {
            if (s == "?stat") return k.respond(n, ipc::Message::text(std::to_string(n)));
            if (s == "?drops") return k.respond(n, ipc::Message::text(drops->text()));
            if (s == "?stop") return k.stop(n);
            if (s == "?slow") {
                busy();
                return k.respond(n, ipc::Message::text("slow"));
            }
            return k.respond(n, ipc::Message::text("?unknown"));
        }
        n += 1;
        if (m.media_type().str() == "application/x-slow") {
            busy();
            return k.continue_(n);
        }
        if (text && starts_with(s, "gen:")) {
            char* rest = nullptr;
            const unsigned long long size = std::strtoull(s.c_str() + 4, &rest, 10);
            const unsigned long long seed = (rest != nullptr && *rest == ':') ? std::strtoull(rest + 1, nullptr, 10) : 0;
            return k.respond(n, ipc::Message::make("application/octet-stream",
                                                   generate(static_cast<std::size_t>(size), seed)).value());
        }
        if (text && s == "quiet") return k.continue_(n);
        return k.respond(n, ipc::Message(m.media_type(), m.content()));
    }
};

// Forks the torture server. Its result: "ok <carry> drops <DropCounts::text()>".
Child spawn_torture(const ipc::Config& config, const ipc::Name& name, unsigned alarm_s, int notify_fd = -1) {
    return spawn(
        [config, name, notify_fd]() -> std::string {
            (void)raise_nofile();
            ipc::Ipc ipc(config);
            auto server = ipc.listen(name);
            if (!server) return std::string("listen ") + errc_name(server.error().code);
            DropCounts drops;
            server->on_drop(&DropCounts::record, &drops);
            auto r = server->serve(std::uint64_t{0}, TortureReducer{&drops, notify_fd});
            if (!r) return std::string("serve ") + errc_name(r.error().code);
            return "ok " + std::to_string(r.value()) + " drops" + drops.text();
        },
        alarm_s);
}

ipc::Config torture_config(const std::string& dir) {
    ipc::Config c;
    c.directory = dir;
    c.heartbeat = ipc::Milliseconds(1000);
    c.handshake_timeout = ipc::Milliseconds(5000);
    c.close_timeout = ipc::Milliseconds(1000);
    c.shutdown_timeout = ipc::Milliseconds(2000);
    return c;
}

// What a torture case starts with (TEST_CASE_FIXTURE(TortureCase, "...")):
// a fresh directory and the torture config on it, to change before
// start(); start() forks a TortureReducer server on `name` and waits until
// it is live, `ipc` then being an Ipc on the config as it is.
struct TortureCase {
    TempDir dir;
    ipc::Config config = torture_config(dir.path());
    const ipc::Name name = name_of("torture");
    Child server;
    ipc::Ipc ipc{config};
    void start(unsigned alarm_s, int notify_fd = -1) {
        server = spawn_torture(config, name, alarm_s, notify_fd);
        ipc = ipc::Ipc(config);
        REQUIRE(wait_live(ipc, name));
    }
};

// One echo round trip (counted by the server): "" when the same bytes came
// back, else what went wrong. The time it took goes to *elapsed.
std::string echo(ipc::Process& p, const std::string& content, std::int64_t* elapsed = nullptr,
                 std::int64_t timeout_ms = 5000) {
    Stopwatch sw;
    auto m = ipc::Message::make("application/octet-stream", content);
    if (!m) return "make";
    auto s = p.send(m.value(), ipc::Milliseconds(timeout_ms));
    if (!s) return std::string("send ") + errc_name(s.error().code);
    auto back = p.wait(ipc::Milliseconds(timeout_ms));
    if (elapsed != nullptr) *elapsed = sw.elapsed();
    if (!back) return std::string("reply ") + errc_name(back.error().code);
    if (back->content() != content) return "wrong content";
    return "";
}

// Stops the server through ctl and checks the carry it returns.
void stop_server(ipc::Process& ctl, Child& server, std::uint64_t carry) {
    REQUIRE(ctl.send(ipc::Message::text("?stop"), ipc::Milliseconds(5000)).has_value());
    CHECK(outcome(ctl.wait(ipc::Milliseconds(5000))) == "closed");
    const std::string r = server.result(15000);
    CAPTURE(r);
    CHECK(starts_with(r, "ok " + std::to_string(carry) + " "));
    CHECK(server.exited_with(0));
}

// Sends every byte before the deadline; false with *err = errno otherwise
// (0 on timeout).
bool send_all(int fd, std::string_view bytes, int* err, std::int64_t timeout_ms = 5000) {
    const std::int64_t end = now_ms() + timeout_ms;
    std::size_t off = 0;
    while (off < bytes.size()) {
        const ssize_t n = ::send(fd, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            off += static_cast<std::size_t>(n);
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
            *err = errno;
            return false;
        }
        if (poll_until(fd, POLLOUT, end) == past_deadline) {
            *err = 0;
            return false;
        }
    }
    return true;
}

// A raw client that will read nothing (a 4 KiB receive buffer), connected
// to path, non-blocking, past the handshake, in `out`: "" or what failed.
std::string connect_hoarder(const std::string& path, RawConn& out) {
    struct sockaddr_un addr {};
    socklen_t len = 0;
    if (!fill_address(path, addr, len)) return "address";
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const int small = 4096;
    (void)::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    if (fd < 0 || ::connect(fd, reinterpret_cast<const struct sockaddr*>(&addr), len) != 0) return "connect";
    ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
    out = RawConn(fd);
    return out.handshake() ? "" : "handshake";
}

// Length prefix of a frame: u16 type length, type, u32 content length.
std::string frame_prefix(std::string_view type, std::uint32_t content_len) {
    std::string f = frame(type, "");
    f.resize(f.size() - 5);
    f += static_cast<char>((content_len >> 24) & 0xFF);
    f += static_cast<char>((content_len >> 16) & 0xFF);
    f += static_cast<char>((content_len >> 8) & 0xFF);
    f += static_cast<char>(content_len & 0xFF);
    return f;
}

struct Stats {
    std::int64_t worst = 0;
    std::int64_t total = 0;
    int trips = 0;
    void add(std::int64_t ms) {
        if (ms > worst) worst = ms;
        total += ms;
        ++trips;
    }
    std::string text() const {
        return std::to_string(trips) + " round trips, worst " + std::to_string(worst) + " ms, mean " +
               std::to_string(trips > 0 ? static_cast<double>(total) / trips : 0.0) + " ms";
    }
};

// ---------------------------------------------------------------------------
// Peers for scenario 1 and 2 (bodies of forked children)
// ---------------------------------------------------------------------------

// Never reads after the handshake: sends requests for 64 KiB answers, each
// once the server has read the previous one (SIOCOUTQ back to 0, the way a
// client would wait for its ack, only without reading it), until a send
// fails. Returns "" when the server dropped it (EPIPE or ECONNRESET), with
// the requests it sent and the bytes the kernel took for it.
std::string flood_peer(const std::string& path, int id, int* sent, int* unread) {
    struct sockaddr_un addr {};
    socklen_t len = 0;
    if (!fill_address(path, addr, len)) return "address";
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return "socket";
    const int small = 4096;
    (void)::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    if (::connect(fd, reinterpret_cast<const struct sockaddr*>(&addr), len) != 0) {
        ::close(fd);
        return "connect";
    }
    ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
    RawConn c(fd);
    if (!c.handshake()) return "handshake";
    int err = 0;
    const int most = 64;  // 4 MiB of answers: 16 times the queue limit of the test
    for (*sent = 0; *sent < most; ++*sent) {
        const std::string request = text_frame("gen:65536:" + std::to_string(id * 10000 + *sent));
        if (!send_all(c.fd(), request, &err)) break;
        bool failed = false;
        if (!eventually(
                [&] {
                    int queued = 0;
                    failed = ::ioctl(c.fd(), SIOCOUTQ, &queued) != 0;
                    return failed || queued == 0;
                },
                2000) ||
            failed) {
            return "SIOCOUTQ failed or the server did not read";
        }
    }
    *unread = -1;
    (void)::ioctl(c.fd(), FIONREAD, unread);
    if (*sent == most) return "not dropped after " + std::to_string(most) + " requests for 64 KiB";
    if (err != EPIPE && err != ECONNRESET) return "send " + std::to_string(*sent) + " failed with errno " + std::to_string(err);
    return "";
}

// One flood process: `conns` non-reading connections, one after another.
// Result: "ok sent=<min>..<max> unread=<min>..<max>" or the first failure.
std::string flood_process(const std::string& path, int id, int conns, const Pipe& done) {
    struct Done {
        const Pipe& b;
        ~Done() { b.mark(); }
    } signal_done{done};
    int sent_min = 1 << 30, sent_max = 0, unread_min = 1 << 30, unread_max = 0;
    for (int i = 0; i < conns; ++i) {
        int sent = 0, unread = 0;
        const std::string e = flood_peer(path, id * 100 + i, &sent, &unread);
        if (!e.empty()) return e + " (connection " + std::to_string(i) + ")";
        sent_min = sent < sent_min ? sent : sent_min;
        sent_max = sent > sent_max ? sent : sent_max;
        unread_min = unread < unread_min ? unread : unread_min;
        unread_max = unread > unread_max ? unread : unread_max;
    }
    return "ok sent=" + std::to_string(sent_min) + ".." + std::to_string(sent_max) + " unread=" +
           std::to_string(unread_min) + ".." + std::to_string(unread_max);
}

// ---------------------------------------------------------------------------
// Scenario 5: one vanishing client (a forked child that ends by SIGKILL)
// ---------------------------------------------------------------------------

enum VanishPoint : int {
    v_connected,            // connected, nothing read or written
    v_start_read,           // read connection start, no answer
    v_mid_start_ok,         // part of start ok
    v_handshaken,           // handshake done, nothing more
    v_mid_frame,            // handshake, then part of an application frame
    v_frame_unshaken,       // a whole application frame, but before start ok (ignored)
    v_response_written,     // a request for 1 MiB, killed while the answer is being written
    v_after_ack,            // a request and its ack
    v_pipelined,            // 1-4 whole frames back to back, then part of one
    v_round_trip,           // a whole round trip
    v_our_client_sent,      // our client: get, send (acked), killed
    v_our_client_in_wait,   // our client: get, then killed at a random moment inside wait()
    v_points
};

// r mod n, as a size (n > 0).
std::size_t pick(std::uint64_t r, std::size_t n) { return static_cast<std::size_t>(r % n); }

// The child of one cycle. Writes to report_fd 'c' after each complete
// application frame it sent, 'w' when the parent may kill it at a random
// moment; otherwise kills itself. Exits with a code >= 3 when a step that
// must work failed.
[[noreturn]] void vanish(const ipc::Config& config, const ipc::Name& name, int point, std::uint64_t rnd,
                         int report_fd) {
    auto report = [report_fd](char ch) { (void)write_all_fd(report_fd, std::string_view(&ch, 1)); };
    const std::string path = ipc::Ipc(config).path_of(name);
    const std::string app = text_frame("vanish " + std::to_string(rnd));
    if (point == v_our_client_sent || point == v_our_client_in_wait) {
        ipc::Ipc ipc(config);
        auto p = ipc.get(name, ipc::Milliseconds(5000));
        if (!p) ::_exit(3);
        if (point == v_our_client_sent) {
            if (!p->send(ipc::Message::text("vanish " + std::to_string(rnd)), ipc::Milliseconds(5000))) ::_exit(4);
            report('c');
        } else {
            if (!p->send(ipc::Message::text("quiet"), ipc::Milliseconds(5000))) ::_exit(4);
            report('c');
            report('w');
            (void)p->wait();  // killed in here
            ::_exit(5);
        }
        ::raise(SIGKILL);
        for (;;) ::pause();
    }
    RawConn c = RawConn::connect(path);
    if (!c.valid()) ::_exit(3);
    Frame f;
    switch (point) {
        case v_connected: break;
        case v_start_read:
            if (!c.read_frame(f, 5000)) ::_exit(4);
            break;
        case v_mid_start_ok: {
            if (!c.read_frame(f, 5000)) ::_exit(4);
            const std::string ok = start_ok_frame();
            if (!c.send(std::string_view(ok).substr(0, 1 + pick(rnd, ok.size() - 1)))) ::_exit(4);
            break;
        }
        case v_handshaken:
            if (!c.handshake()) ::_exit(4);
            break;
        case v_mid_frame:
            if (!c.handshake()) ::_exit(4);
            if (!c.send(std::string_view(app).substr(0, pick(rnd, app.size())))) ::_exit(4);
            break;
        case v_frame_unshaken:
            if (!c.send(app)) ::_exit(4);
            break;
        case v_response_written:
            if (!c.handshake()) ::_exit(4);
            if (!c.send(text_frame("gen:1048576:" + std::to_string(rnd)))) ::_exit(4);
            report('c');
            (void)c.read_exact(1 + pick(rnd, 65536), 2000);
            if ((rnd & 1) != 0) {
                report('w');
                for (;;) ::pause();  // the parent kills at a random moment
            }
            break;
        case v_pipelined: {
            if (!c.handshake()) ::_exit(4);
            const std::size_t whole = 1 + pick(rnd, 4);
            for (std::size_t i = 0; i < whole; ++i) {
                if (!c.send(app)) ::_exit(4);
                report('c');
            }
            if (!c.send(std::string_view(app).substr(0, pick(rnd >> 8, app.size())))) ::_exit(4);
            break;
        }
        case v_after_ack:
        case v_round_trip:
            if (!c.handshake()) ::_exit(4);
            if (!c.send(app)) ::_exit(4);
            report('c');
            if (!c.read_frame_skipping_heartbeats(f, 5000) || !f.is(ack_frame())) ::_exit(5);
            if (point == v_round_trip && (!c.read_frame_skipping_heartbeats(f, 5000) || !f.is(app))) ::_exit(6);
            break;
        default: ::_exit(7);
    }
    ::raise(SIGKILL);
    for (;;) ::pause();
}

// One cycle: fork, let the child vanish, count its complete frames. Returns
// "" when the child died of SIGKILL as planned, else what happened.
std::string vanish_cycle(const ipc::Config& config, const ipc::Name& name, int point, std::uint64_t rnd,
                         int* complete) {
    int rep[2];
    if (::pipe2(rep, O_CLOEXEC) != 0) return "pipe";
    std::fflush(nullptr);
    const pid_t pid = ::fork();
    if (pid < 0) {
        ::close(rep[0]);
        ::close(rep[1]);
        return "fork";
    }
    if (pid == 0) {
        ::close(rep[0]);
        for (int sig : {SIGHUP, SIGINT, SIGABRT, SIGTERM, SIGALRM, SIGSEGV, SIGFPE, SIGILL, SIGBUS}) ::signal(sig, SIG_DFL);
        ::alarm(20);
        vanish(config, name, point, rnd, rep[1]);
    }
    ::close(rep[1]);
    const std::int64_t end = now_ms() + 15000;
    std::string problem;
    for (;;) {
        const int r = poll_until(rep[0], POLLIN, end);
        if (r == past_deadline) {
            problem = "child hung";
            ::kill(pid, SIGKILL);
            break;
        }
        if (r <= 0) continue;
        char buf[16];
        const ssize_t n = ::read(rep[0], buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;  // the child is gone
        for (ssize_t i = 0; i < n; ++i) {
            if (buf[i] == 'c') ++*complete;
            if (buf[i] == 'w') {
                // A random moment: within 2 ms of the child's mark.
                struct timespec ts {0, static_cast<long>((rnd >> 16) % 2000000)};
                ::nanosleep(&ts, nullptr);
                ::kill(pid, SIGKILL);
            }
        }
    }
    ::close(rep[0]);
    int st = 0;
    while (::waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    if (!problem.empty()) return problem;
    if (WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL) return "";
    if (WIFSIGNALED(st)) return "signal " + std::to_string(WTERMSIG(st));
    return "exit " + std::to_string(WEXITSTATUS(st));
}

}  // namespace

TEST_SUITE("torture") {

// ===========================================================================
// 1. A peer that never reads
// ===========================================================================

// Regression: an explicit Config::max_queued_bytes below max_message_size
// was once ignored, so a peer that never read was never dropped.
TEST_CASE_FIXTURE(TortureCase, "torture 1: peers that never read are dropped with queue_full; another client's round trips stay under 1 s") {
    Watchdog wd(120);
    config.max_queued_bytes = std::size_t{256} << 10;  // four 64 KiB answers
    // This case is about the bound for one client; past the server-wide one
    // (4 x 256 KiB by default, less than these floods hold), every reader
    // would wait for the floods' stall timers (the crowd case below).
    config.max_total_queued_bytes = std::size_t{64} << 20;
    start(120);
    auto ctl = ipc.get(name);
    REQUIRE(ctl.has_value());
    REQUIRE(echo(*ctl, "warm up").empty());
    const long rss_before = rss_kb(server.pid());

    const int flooders = 4;
    const int conns_each = scaled(8, 2);
    const int floods = flooders * conns_each;
    Pipe done{O_CLOEXEC | O_NONBLOCK};
    const std::string path = ipc.path_of(name);
    std::vector<Child> peers;
    peers.reserve(flooders);
    for (int i = 0; i < flooders; ++i) {
        peers.push_back(spawn([&path, &done, i, conns_each] { return flood_process(path, i, conns_each, done); }, 60));
    }

    // Round trips from this process while the floods go on, until every
    // flood was dropped (and at least 100 round trips).
    Stats stats;
    std::string failure, drops;
    std::uint64_t echoes = 1;  // the warm-up
    Stopwatch sw;
    while (sw.elapsed() < 30000) {
        std::int64_t ms = 0;
        failure = echo(*ctl, generate(64 + static_cast<std::size_t>(stats.trips % 512), static_cast<std::uint64_t>(stats.trips)), &ms);
        if (!failure.empty()) break;
        ++echoes;
        stats.add(ms);
        Stopwatch q;
        drops = ask(*ctl, "?drops", 5000);
        stats.add(q.elapsed());
        if (done.count() == flooders && stats.trips >= 100) break;
    }
    const std::int64_t flood_ms = sw.elapsed();
    CHECK(failure.empty());
    // A flood ends once its last connection was dropped: the drops are known.
    CHECK(drops_until(
        *ctl, drops, [&](const std::string& d) { return drop_count(d, ipc::DropReason::queue_full) == floods; }, 2000));
    CAPTURE(drops);
    CHECK(drop_total(drops) == floods);
    CHECK(stats.worst < 1000);
    std::string sent_counts;
    for (Child& p : peers) {
        const std::string r = p.result(10000);
        CAPTURE(r);
        CHECK(starts_with(r, "ok sent="));
        // Each sent at least the four requests whose answers fill the queue.
        const long sent_min = std::strtol(r.c_str() + 8, nullptr, 10);
        CHECK(sent_min >= 4);
        sent_counts += " [" + (starts_with(r, "ok ") ? r.substr(3) : r) + "]";
    }
    const long rss_after = rss_kb(server.pid());
    MESSAGE("torture 1: ", drop_count(drops, ipc::DropReason::queue_full), " of ", floods,
            " non-reading peers dropped (queue_full) in ", flood_ms, " ms; per process:",
            sent_counts, "; other client: ", stats.text(),
            "; server VmRSS ", rss_before, " -> ", rss_after, " KiB");
    // The carry also counts the floods' requests handled before each drop.
    const std::string carry = ask(*ctl, "?stat", 5000);
    CHECK(std::strtoull(carry.c_str(), nullptr, 10) >= echoes);
    REQUIRE(ctl->send(ipc::Message::text("?stop"), ipc::Milliseconds(5000)).has_value());
    CHECK(outcome(ctl->wait(ipc::Milliseconds(5000))) == "closed");
    CHECK(starts_with(server.result(15000), "ok " + carry + " "));
}

// Regression (0.1): a peer that sent large messages and never read cost
// the server about 3x max_queued_bytes (199 MiB for a 65 MiB bound): the
// receive buffer, the copy handed to the reducer and the queued answer
// coexisted, and a next frame was read in while the queue was stuck.
TEST_CASE_FIXTURE(TortureCase, "torture 1: a peer that sends 16 MiB echoes and never reads costs the server about one max_queued_bytes, all given back at the drop") {
    Watchdog wd(60);
    config.max_message_size = 16u << 20;  // max_queued_bytes: 0, so 16 MiB + a frame header + 1 MiB
    config.stall_timeout = ipc::Milliseconds(1000);
    const std::size_t bound = (std::size_t{16} << 20) + (std::size_t{1} << 20) + 64;
    server = spawn(
        [this]() -> std::string {
            auto s = ipc::Ipc(config).listen(name);
            if (!s) return "listen";
            DropCounts drops;
            s->on_drop(&DropCounts::record, &drops);
            auto r = s->serve(std::uint64_t{0}, [](const ipc::Message& m, auto k, std::uint64_t n) {
                if (m.content() == "?stop") return k.stop(n);
                return k.respond(n + 1, m);  // the echo a user writes: the message it was given
            });
            if (!r) return "serve";
            return "ok drops" + drops.text();
        },
        60);
    ipc = ipc::Ipc(config);
    auto ctl = get_live(ipc, name);
    REQUIRE(echo(*ctl, generate(std::size_t{16} << 20, 1)).empty());  // the allocator's first large blocks
    sleep_ms(200);
    REQUIRE(reset_peak(server.pid()));
    const long base = rss_kb(server.pid());
    const std::string path = ipc.path_of(name);
    Child hoarder = spawn([&path]() -> std::string {
        RawConn c;
        const std::string failed = connect_hoarder(path, c);
        if (!failed.empty()) return failed;
        const std::string request = frame("application/octet-stream", generate(std::size_t{16} << 20, 2));
        int err = 0;
        for (int i = 0; i < 4; ++i) {
            if (!send_all(c.fd(), request, &err, 10000)) {
                if (err == EPIPE || err == ECONNRESET) return "dropped after " + std::to_string(i);
                return "send: errno " + std::to_string(err);
            }
        }
        return "never dropped";
    }, 30);
    const std::string hoarded = hoarder.result(20000);
    CHECK(starts_with(hoarded, "dropped after "));
    sleep_ms(300);  // the drop's frees and malloc_trim
    const long peak = peak_kb(server.pid());
    const long after = rss_kb(server.pid());
    MESSAGE("torture 1: a 16 MiB hoarder: ", hoarded, "; server VmRSS ", base, " KiB, peak +", peak - base,
            " KiB (bound ", bound >> 10, " KiB), after the drop +", after - base, " KiB");
    CHECK(base > 0);
    if (!TORTURE_OWN_ALLOCATOR) {
        // One bound, plus the sixteenth of the content read before it gets
        // its own string (freed, but maybe still resident in the heap), one
        // socket buffer and the 16 KiB read of the next frame, and 1 MiB of
        // the allocator's and the process's own noise: measured on 2 vCPUs,
        // peak +19,224 to +19,464 KiB, which failed the bound without that
        // last MiB once in six runs. One more copy of the content would be
        // +16 MiB, 0.1's three copies +49 MiB.
        CHECK(peak - base <= static_cast<long>(bound >> 10) + (16 << 10) / 16 + 2048);
        // Given back to the system needs malloc_trim (glibc): without it
        // (the fallback build) the allocator keeps the freed 16 MiB.
        if (IPC_HPP_HAVE_MALLOC_TRIM) CHECK(after - base < 2048);
    }
    REQUIRE(echo(*ctl, "still serving").empty());
    REQUIRE(ctl->send(ipc::Message::text("?stop"), ipc::Milliseconds(5000)).has_value());
    const std::string r = server.result(15000);
    CAPTURE(r);
    CHECK(r.find("queue_full=1") != std::string::npos);
}

// A crowd of another user's clients (issue 24): each sends 2 MiB echoes
// and never reads. 0.2 bounded each client's queue, not their sum, so the
// server's memory grew with the crowd (8 such clients took a default server
// to 528 MiB). Config::max_total_queued_bytes bounds the sum: past it, the
// server reads nothing more from a client with answers waiting, nor more of
// a large frame while answers wait, and drops the stalled ones.
TEST_CASE_FIXTURE(TortureCase, "torture 1: a crowd of another user's clients that never read stays within Config::max_total_queued_bytes; a reading client is served throughout") {
    Watchdog wd(120);
    const struct passwd* user = hostile_user();
    if (user == nullptr) MESSAGE("the crowd runs as us: needs root and the user ipc-hostile (.ci/run creates it) to run as another user");
    const std::size_t message = std::size_t{2} << 20;
    const int crowd = 24;
    config.max_message_size = static_cast<std::uint32_t>(message);
    config.max_total_queued_bytes = std::size_t{12} << 20;  // about 4 per-client bounds (2 MiB + a frame + 1 MiB each)
    config.stall_timeout = ipc::Milliseconds(1500);
    config.socket_mode = 0666;                         // the other user may connect
    REQUIRE(::chmod(dir.path().c_str(), 0755) == 0);  // and reach the socket
    server = spawn(
        [this]() -> std::string {
            auto s = ipc::Ipc(config).listen(name);
            if (!s) return "listen";
            DropCounts drops;
            s->on_drop(&DropCounts::record, &drops);
            auto r = s->serve(std::uint64_t{0}, [](const ipc::Message& m, auto k, std::uint64_t n) {
                if (m.content() == "?stop") return k.stop(n);
                return k.respond(n + 1, m);
            });
            if (!r) return "serve";
            return "ok drops" + drops.text();
        },
        110);
    ipc = ipc::Ipc(config);
    auto ctl = get_live(ipc, name);
    REQUIRE(echo(*ctl, generate(message - 64, 1)).empty());  // the allocator's first large blocks
    sleep_ms(200);
    REQUIRE(reset_peak(server.pid()));
    const long base = rss_kb(server.pid());
    const std::string path = ipc.path_of(name);
    std::vector<Child> hoarders;
    for (int i = 0; i < crowd; ++i) {
        hoarders.push_back(spawn([&path, user, message]() -> std::string {
            if (user != nullptr && !become(user)) return "become";
            RawConn c;
            const std::string failed = connect_hoarder(path, c);
            if (!failed.empty()) return failed;
            const std::string request = frame("application/octet-stream", generate(message - 64, 2));
            int err = 0;
            for (int n = 0; n < 8; ++n) {
                if (!send_all(c.fd(), request, &err, 60000)) {
                    if (err == EPIPE || err == ECONNRESET) return "dropped";
                    return "send: errno " + std::to_string(err);
                }
            }
            return "never dropped";
        }, 100));
    }
    // Meanwhile a client that reads is served.
    Stats reader;
    std::string failed;
    int done = 0;
    std::vector<bool> reported(crowd, false);
    std::string outcomes;
    const std::int64_t end = now_ms() + 90000;
    while (done < crowd && now_ms() < end && failed.empty()) {
        std::int64_t ms = 0;
        failed = echo(*ctl, "still there", &ms, 10000);
        reader.add(ms);
        for (int i = 0; i < crowd; ++i) {
            if (reported[static_cast<std::size_t>(i)] || ::waitpid(hoarders[static_cast<std::size_t>(i)].pid(), nullptr, WNOHANG) == 0) continue;
            reported[static_cast<std::size_t>(i)] = true;
            ++done;
        }
        sleep_ms(20);
    }
    for (auto& h : hoarders) outcomes += h.result(1000) + "; ";
    const long peak = peak_kb(server.pid());
    const long budget_kb = static_cast<long>(config.max_total_queued_bytes >> 10);
    MESSAGE("torture 1: ", crowd, " non-reading clients of 2 MiB echoes, budget ", budget_kb, " KiB: server VmRSS ", base,
            " KiB, peak +", peak - base, " KiB; the reader: ", reader.text());
    CHECK(failed.empty());
    CHECK(done == crowd);
    CHECK(outcomes.find("never dropped") == std::string::npos);
    CHECK(outcomes.find("errno") == std::string::npos);
    CAPTURE(outcomes);
    if (!TORTURE_OWN_ALLOCATOR) {
        // The budget, plus one 2 MiB message read and its echo queued when
        // the budget was just under (the pause starts at the next read),
        // one more that the heap keeps after a free until the next
        // malloc_trim (at most 50 ms), and the fixed overhead: 64 KiB per
        // connection (receive and write buffers) and 2 MiB of the
        // allocator's and the process's own. Measured on 2 vCPUs: +12.5 to
        // +19.7 MiB; without the budget (0.2), +49.5 MiB.
        CHECK(peak - base <= budget_kb + 3 * static_cast<long>(message >> 10) + crowd * 64 + 2048);
    }
    REQUIRE(echo(*ctl, "still serving").empty());
    REQUIRE(ctl->send(ipc::Message::text("?stop"), ipc::Milliseconds(5000)).has_value());
    const std::string r = server.result(15000);
    MESSAGE("torture 1: the crowd's drops:", r);
    // Each is dropped for taking nothing (queue_full), or, while the others
    // hold the budget, before its handshake was read (handshake_timeout).
    CHECK(drop_count(r, ipc::DropReason::queue_full) + drop_count(r, ipc::DropReason::handshake_timeout) == crowd);
}

// ===========================================================================
// 2. Slow and stuck peers
// ===========================================================================

TEST_CASE_FIXTURE(TortureCase, "torture 2: a byte every 10 ms, frames stopped midway, peers mute after connecting: round trips stay under 200 ms") {
    Watchdog wd(120);
    config.handshake_timeout = ipc::Milliseconds(300);
    start(120);
    auto ctl = ipc.get(name);
    REQUIRE(ctl.has_value());
    const std::string path = ipc.path_of(name);
    const int base_fds = fd_count(server.pid());

    // Stuck: after the handshake, 1 byte of a frame; half of a media type;
    // a whole prefix and half of the content. Then nothing, until killed.
    const std::string stuck_frame = text_frame(std::string(200, 's'));
    const std::size_t cuts[] = {1, 2 + 5, 2 + 10 + 4 + 100};
    const int stuck = 3;
    Pipe in_place{O_CLOEXEC | O_NONBLOCK};
    std::vector<Child> stalls;
    stalls.reserve(stuck);
    for (int i = 0; i < stuck; ++i) {
        const std::size_t cut = cuts[i];
        stalls.push_back(spawn(
            [&path, &in_place, &stuck_frame, cut]() -> std::string {
                RawConn c = RawConn::connect(path);
                if (!c.valid() || !c.handshake() || !c.send(std::string_view(stuck_frame).substr(0, cut))) {
                    in_place.mark();
                    return "setup failed";
                }
                in_place.mark();
                for (;;) ::pause();
            },
            60));
    }
    REQUIRE(in_place.wait_for(stuck, 5000));

    // Slow: a whole frame, a byte every 10 ms (about 1.2 s), then its ack
    // and its echo. Mute: connect, then nothing; the server must drop them
    // after handshake_timeout (300 ms).
    const int trickles = 2, mutes = 3;
    Pipe done{O_CLOEXEC | O_NONBLOCK};
    std::vector<Child> peers;
    peers.reserve(trickles + mutes);
    for (int i = 0; i < trickles; ++i) {
        peers.push_back(spawn(
            [&path, &done, i]() -> std::string {
                struct Done {
                    const Pipe& b;
                    ~Done() { b.mark(); }
                } signal_done{done};
                RawConn c = RawConn::connect(path);
                if (!c.valid() || !c.handshake()) return "setup failed";
                const std::string f = text_frame("trickle " + std::to_string(i) + " " + std::string(80, 't'));
                Stopwatch sw;
                if (!c.send_bytewise(f, 10)) return "send failed";
                const std::int64_t took = sw.elapsed();
                Frame ack, back;
                if (!c.read_frame_skipping_heartbeats(ack, 3000) || !ack.is(ack_frame())) return "no ack";
                if (!c.read_frame_skipping_heartbeats(back, 3000) || !back.is(f)) return "no echo";
                return "ok " + std::to_string(took);
            },
            60));
    }
    for (int i = 0; i < mutes; ++i) {
        peers.push_back(spawn(
            [&path, &done]() -> std::string {
                struct Done {
                    const Pipe& b;
                    ~Done() { b.mark(); }
                } signal_done{done};
                RawConn c = RawConn::connect(path);
                if (!c.valid()) return "connect failed";
                Stopwatch sw;
                std::string before;
                if (!c.wait_eof(5000, &before)) return "not dropped";
                if (before != start_frame()) return "unexpected bytes " + to_hex(before);
                return "eof " + std::to_string(sw.elapsed());
            },
            60));
    }

    Stats stats;
    std::string failure;
    Stopwatch sw;
    while (sw.elapsed() < 30000) {
        std::int64_t ms = 0;
        failure = echo(*ctl, generate(16 + static_cast<std::size_t>(stats.trips % 256), 7u + static_cast<std::uint64_t>(stats.trips)), &ms);
        if (!failure.empty()) break;
        stats.add(ms);
        if (done.count() == trickles + mutes && stats.trips >= 30) break;
    }
    CHECK(failure.empty());
    CHECK(stats.worst < 200);
    int trickled = 0;
    for (int i = 0; i < trickles + mutes; ++i) {
        const std::string r = peers[static_cast<std::size_t>(i)].result(10000);
        CAPTURE(r);
        if (i < trickles) {
            CHECK(starts_with(r, "ok "));
            trickled += starts_with(r, "ok ") ? 1 : 0;
        } else {
            REQUIRE(starts_with(r, "eof "));
            const long ms = std::strtol(r.c_str() + 4, nullptr, 10);
            CHECK(ms >= 280);   // not before handshake_timeout...
            CHECK(ms < 1000);   // ...nor much after, on a busy server
        }
    }
    // The mutes dropped for handshake_timeout; the trickles gone after
    // their echo (end of file, or a reset when a heartbeat was unread); the
    // stuck ones still connected.
    std::string drops;
    CHECK(drops_total_reach(*ctl, drops, mutes + trickles, 3000));
    CAPTURE(drops);
    CHECK(drop_count(drops, ipc::DropReason::handshake_timeout) == mutes);
    CHECK(drop_count(drops, ipc::DropReason::end_of_file) + drop_count(drops, ipc::DropReason::io_error) == trickles);
    CHECK(fd_count(server.pid()) == base_fds + stuck);
    for (Child& s : stalls) s.kill_now();
    CHECK(eventually([&] { return fd_count(server.pid()) == base_fds; }, 3000));
    drops = ask(*ctl, "?drops", 5000);
    CHECK(drop_total(drops) == mutes + trickles + stuck);
    MESSAGE("torture 2: ", trickles, " byte-a-10-ms frames, ", stuck, " stuck frames, ", mutes,
            " mute peers; other client: ", stats.text());
    stop_server(*ctl, server, static_cast<std::uint64_t>(stats.trips + trickled));
}

// Config::handshake_timeout is a deadline for the peer: the server must wake
// for it, not only at its next heartbeat.
// Regression: the server once woke only for heartbeats, so a mute peer on
// an idle server was dropped at the next heartbeat, not at its deadline.
TEST_CASE_FIXTURE(TortureCase, "torture 2: on an idle server, a mute peer is dropped after handshake_timeout, not at the next heartbeat") {
    Watchdog wd(60);
    // heartbeat 1 s (torture_config)
    config.handshake_timeout = ipc::Milliseconds(300);
    start(60);
    std::int64_t worst = 0;
    for (int i = 0; i < 3; ++i) {
        RawConn c = RawConn::connect(ipc.path_of(name));
        REQUIRE(c.valid());
        Stopwatch sw;
        CHECK(c.wait_eof(3000));
        const std::int64_t ms = sw.elapsed();
        if (ms > worst) worst = ms;
        CHECK(ms >= 280);
        CHECK(ms < 300 + 200);
    }
    MESSAGE("torture 2: mute peer on an idle server dropped after up to ", worst, " ms (handshake_timeout 300 ms)");
    auto ctl = ipc.get(name);
    REQUIRE(ctl.has_value());
    const std::string drops = ask(*ctl, "?drops", 5000);
    CAPTURE(drops);
    CHECK(drop_count(drops, ipc::DropReason::handshake_timeout) == 3);
    stop_server(*ctl, server, 0);
}

// ===========================================================================
// 3. Oversized and malformed input
// ===========================================================================

TEST_CASE_FIXTURE(TortureCase, "torture 3: frames announcing 4 GiB - 1 are dropped right after their length prefix; the server's RSS stays flat") {
    Watchdog wd(60);
    start(60);
    auto ctl = ipc.get(name);
    REQUIRE(ctl.has_value());
    for (int i = 0; i < 10; ++i) REQUIRE(echo(*ctl, generate(4096, static_cast<std::uint64_t>(i))).empty());
    const long rss_before = rss_kb(server.pid());
    const int fds_before = fd_count(server.pid());

    // Before and after the handshake; text/plain (the protocol's own type)
    // and another type; 4 GiB - 1 and the maximum + 1.
    const int conns = scaled(64, 16);
    std::int64_t worst = 0;
    for (int i = 0; i < conns; ++i) {
        RawConn c = RawConn::connect(ipc.path_of(name));
        REQUIRE(c.valid());
        if (i % 2 == 1) REQUIRE(c.handshake());
        const std::uint32_t announced = i % 4 < 3 ? 0xFFFFFFFFu : ipc::default_max_message_size + 1;
        const std::string prefix = frame_prefix(i % 3 == 0 ? "application/octet-stream" : "text/plain", announced);
        Stopwatch sw;
        REQUIRE(c.send(prefix));
        std::string before;
        CHECK(c.wait_eof(2000, &before));  // nothing more is sent: the prefix alone must do
        const std::int64_t ms = sw.elapsed();
        if (ms > worst) worst = ms;
        CHECK(ms < 1000);
    }
    std::string drops;
    CHECK(drops_total_reach(*ctl, drops, conns, 3000));
    CAPTURE(drops);
    CHECK(drop_count(drops, ipc::DropReason::message_too_large) == conns);
    CHECK(eventually([&] { return fd_count(server.pid()) == fds_before; }, 3000));
    const long rss_after = rss_kb(server.pid());
    MESSAGE("torture 3: ", conns, " frames announcing 4 GiB - 1 or max + 1 dropped (worst ", worst,
            " ms after the prefix); server VmRSS ", rss_before, " -> ", rss_after, " KiB");
    CHECK(rss_before > 0);
    CHECK(rss_after - rss_before < 4096);
    REQUIRE(echo(*ctl, "still serving").empty());
    stop_server(*ctl, server, 11);
}

namespace {

// Garbage that no reading can turn into a valid frame, of several kinds.
std::string garbage(Rng& r) {
    switch (r.below(8)) {
        case 0:  // one stray byte
            return generate(1, r.next());
        case 1:  // what a web client says
            return "GET / HTTP/1.0\r\n\r\n";
        case 2: {  // a text/plain prefix, random content, a wrong end marker
            const std::size_t n = r.below(4096);
            std::string f = text_frame(generate(n, r.next()));
            f.back() = static_cast<char>(0xCE ^ (1 + r.below(255)));
            return f;
        }
        case 3: {  // a media type that is not one
            std::string type = generate(1 + r.below(64), r.next());
            type[0] = '/';
            return frame(type, generate(r.below(256), r.next())) + generate(r.below(1024), r.next());
        }
        case 4:  // an empty media type
            return frame("", generate(r.below(64), r.next()));
        case 5:  // a length over the maximum
            return frame_prefix("text/plain", ipc::default_max_message_size + 1 + static_cast<std::uint32_t>(r.below(1000))) +
                   generate(r.below(512), r.next());
        default:  // pure noise, up to 32 KiB
            return generate(1 + r.below(32768), r.next());
    }
}

}  // namespace

TEST_CASE_FIXTURE(TortureCase, "torture 3: random garbage from hundreds of raw connections: each dropped, the carry counts only the good clients' messages") {
    Watchdog wd(120);
    const std::uint64_t seed = torture_seed();
    MESSAGE("torture 3: garbage seed ", seed, " (IPC_HPP_TORTURE_SEED=", seed, " to replay)");
    start(120);
    const std::string path = ipc.path_of(name);

    // Four garbage processes, their connections spread among them; two good
    // clients doing round trips meanwhile, in their own processes.
    const int garbage_procs = 4;
    const int per_proc = scaled(200, 40) / garbage_procs;
    const int good_trips = scaled(200, 50);
    std::vector<Child> bad;
    bad.reserve(garbage_procs);
    for (int g = 0; g < garbage_procs; ++g) {
        bad.push_back(spawn(
            [&path, seed, g, per_proc]() -> std::string {
                Rng r{seed * 31 + static_cast<std::uint64_t>(g)};
                int dropped = 0;
                for (int i = 0; i < per_proc; ++i) {
                    RawConn c = RawConn::connect(path);
                    if (!c.valid()) return "connect failed at " + std::to_string(i);
                    if (r.below(2) == 0 && !c.handshake()) return "handshake failed at " + std::to_string(i);
                    (void)c.send(garbage(r));  // may fail: the server may drop it midway
                    c.shutdown_write();        // then end of file, should the garbage need more
                    if (c.wait_eof(5000)) ++dropped;
                }
                return "dropped " + std::to_string(dropped);
            },
            90));
    }
    std::vector<Child> good;
    good.reserve(2);
    for (int g = 0; g < 2; ++g) {
        good.push_back(spawn(
            [config = config, name = name, g, good_trips]() -> std::string {
                ipc::Ipc mine(config);
                auto p = mine.get(name, ipc::Milliseconds(5000));
                if (!p) return std::string("get ") + errc_name(p.error().code);
                int ok = 0;
                for (int i = 0; i < good_trips; ++i) {
                    const std::string e =
                        echo(*p, generate(1 + static_cast<std::size_t>(i * 37 % 3000), static_cast<std::uint64_t>(g * 100000 + i)));
                    if (!e.empty()) return e + " at " + std::to_string(i);
                    ++ok;
                }
                auto closed = p->close();
                return "ok " + std::to_string(ok) + (closed ? "" : " close failed");
            },
            90));
    }
    for (Child& b : bad) CHECK(b.result(90000) == "dropped " + std::to_string(per_proc));
    for (Child& g : good) CHECK(g.result(90000) == "ok " + std::to_string(good_trips));

    auto ctl = ipc.get(name);
    REQUIRE(ctl.has_value());
    std::string drops;
    const int garbage_conns = garbage_procs * per_proc;
    CHECK(drops_total_reach(*ctl, drops, garbage_conns + 2, 3000));
    CAPTURE(drops);
    CHECK(drop_count(drops, ipc::DropReason::closed) == 2);  // the good clients
    CHECK(drop_count(drops, ipc::DropReason::malformed_frame) + drop_count(drops, ipc::DropReason::message_too_large) +
              drop_count(drops, ipc::DropReason::end_of_file) + drop_count(drops, ipc::DropReason::io_error) ==
          garbage_conns);
    MESSAGE("torture 3: ", garbage_conns, " garbage connections dropped:", drops);
    const std::string carry = ask(*ctl, "?stat", 5000);
    CHECK(carry == std::to_string(2 * good_trips));
    stop_server(*ctl, server, static_cast<std::uint64_t>(2 * good_trips));
}

// ===========================================================================
// 4. Large messages
// ===========================================================================

TEST_CASE_FIXTURE(TortureCase, "torture 4: 16 MiB and 64 MiB (the default maximum) round-trip intact both ways; 64 MiB + 1 is refused, the server goes on") {
    Watchdog wd(180);
    REQUIRE(config.max_message_size == 64u << 20);
    start(180);
    auto p = ipc.get(name);
    REQUIRE(p.has_value());
    std::uint64_t counted = 0;
    std::string timings;

    for (const std::size_t size : {std::size_t{16} << 20, std::size_t{64} << 20}) {
        CAPTURE(size);
        // Client -> server -> client: the server echoes what it got.
        std::uint64_t expected = 0;
        {
            auto m = ipc::Message::make("application/octet-stream", generate(size, size + 1));
            REQUIRE(m.has_value());
            expected = hash64(m->content());
            Stopwatch sw;
            REQUIRE(p->send(m.value(), ipc::Milliseconds(60000)).has_value());
            auto back = p->wait(ipc::Milliseconds(60000));
            REQUIRE(back.has_value());
            timings += " echo " + std::to_string(size >> 20) + " MiB " + std::to_string(sw.elapsed()) + " ms;";
            CHECK(back->media_type().str() == "application/octet-stream");
            CHECK(back->content().size() == size);
            CHECK(hash64(back->content()) == expected);
            ++counted;
        }
        // Server -> client: content the server makes itself.
        {
            Stopwatch sw;
            REQUIRE(p->send(ipc::Message::text("gen:" + std::to_string(size) + ":" + std::to_string(size + 2)),
                            ipc::Milliseconds(60000)).has_value());
            auto back = p->wait(ipc::Milliseconds(60000));
            REQUIRE(back.has_value());
            timings += " generated " + std::to_string(size >> 20) + " MiB " + std::to_string(sw.elapsed()) + " ms;";
            CHECK(back->content().size() == size);
            CHECK(hash64(back->content()) == hash64(generate(size, size + 2)));
            ++counted;
        }
    }
    REQUIRE(echo(*p, "small after large").empty());
    ++counted;

    // One byte over: the server drops that client from its length prefix;
    // our client's send sees the connection go.
    {
        auto q = ipc.get(name);
        REQUIRE(q.has_value());
        auto m = ipc::Message::make("application/octet-stream", generate((std::size_t{64} << 20) + 1, 3));
        REQUIRE(m.has_value());
        Stopwatch sw;
        auto sent = q->send(m.value(), ipc::Milliseconds(60000));
        CHECK(outcome(sent) == "closed_by_peer");
        CHECK(q->closed());
        timings += " max + 1 refused after " + std::to_string(sw.elapsed()) + " ms;";
    }
    // The other way: an answer of 64 MiB + 1 is refused by our client
    // (before allocating for it), which drops the connection.
    {
        auto q = ipc.get(name);
        REQUIRE(q.has_value());
        REQUIRE(q->send(ipc::Message::text("gen:" + std::to_string((64u << 20) + 1) + ":4"), ipc::Milliseconds(60000))
                    .has_value());
        ++counted;
        CHECK(outcome(q->wait(ipc::Milliseconds(60000))) == "message_too_large");
        CHECK(q->closed());
    }
    REQUIRE(echo(*p, "still serving").empty());
    ++counted;
    std::string drops;
    CHECK(drops_total_reach(*p, drops, 2, 3000));
    CAPTURE(drops);
    CHECK(drop_count(drops, ipc::DropReason::message_too_large) == 1);
    CHECK(drop_count(drops, ipc::DropReason::end_of_file) + drop_count(drops, ipc::DropReason::io_error) == 1);
    MESSAGE("torture 4:", timings, " server VmRSS at the end ", rss_kb(server.pid()), " KiB");
    stop_server(*p, server, counted);
}

// ===========================================================================
// 5. Vanished peers
// ===========================================================================

TEST_CASE_FIXTURE(TortureCase, "torture 5: thousands of clients SIGKILLed at random points: the server goes on, counts only complete messages, leaks no fd") {
    Watchdog wd(240);
    const std::uint64_t seed = torture_seed();
    MESSAGE("torture 5: vanish seed ", seed, " (IPC_HPP_TORTURE_SEED=", seed, " to replay)");
    start(240);
    auto ctl = ipc.get(name);
    REQUIRE(ctl.has_value());
    REQUIRE(echo(*ctl, "baseline").empty());
    std::uint64_t counted = 1;
    const int base_fds = fd_count(server.pid());
    const long rss_before = rss_kb(server.pid());
    REQUIRE(base_fds > 0);

    const int cycles = scaled(2000, 200);
    Rng r{seed};
    int complete = 0;
    int per_point[v_points] = {};
    Stats stats;
    Stopwatch sw;
    for (int i = 0; i < cycles; ++i) {
        const int point = static_cast<int>(r.below(v_points));
        ++per_point[point];
        const std::uint64_t rnd = r.next();
        const std::string problem = vanish_cycle(config, name, point, rnd, &complete);
        CAPTURE(i);
        CAPTURE(point);
        REQUIRE(problem == "");
        if (i % 50 == 49) {  // the server keeps serving meanwhile
            std::int64_t ms = 0;
            REQUIRE(echo(*ctl, generate(100, rnd), &ms).empty());
            stats.add(ms);
            ++counted;
        }
    }
    const std::int64_t took = sw.elapsed();
    std::string drops;
    CHECK(drops_total_reach(*ctl, drops, cycles, 5000));
    CAPTURE(drops);
    CHECK(drop_count(drops, ipc::DropReason::end_of_file) + drop_count(drops, ipc::DropReason::io_error) == cycles);
    int fds_after = -1;
    CHECK(fds_back_to(server, base_fds, fds_after, 5000));
    const long rss_after = rss_kb(server.pid());
    std::string points;
    for (int k = 0; k < v_points; ++k) points += " " + std::to_string(per_point[k]);
    MESSAGE("torture 5: ", cycles, " clients (scale ", torture_scale(), ") SIGKILLed in ", took, " ms (per point:", points, "), ", complete,
            " complete messages; server fds ", base_fds, " -> ", fds_after, ", VmRSS ", rss_before, " -> ", rss_after,
            " KiB; drops", drops, "; control: ", stats.text());
    const std::string carry = ask(*ctl, "?stat", 5000);
    CHECK(carry == std::to_string(counted + static_cast<std::uint64_t>(complete)));
    stop_server(*ctl, server, counted + static_cast<std::uint64_t>(complete));
}

namespace {

// A client child for "server killed under it": SIGPIPE has its default
// disposition, unblocked (one would kill the child, and the parent sees
// it), with MSG_NOSIGNAL or without (then ipc.hpp blocks SIGPIPE around each
// send); every call waits forever (a hang would end in SIGALRM). It gets
// name on config and returns body(process), or "get failed".
template <class Body>
Child sigpipe_sensitive_client(const ipc::Config& config, const ipc::Name& name, Body body) {
    return spawn(
        [config, name, body]() -> std::string {
            ::signal(SIGPIPE, SIG_DFL);
            sigset_t pipe_only;
            sigemptyset(&pipe_only);
            sigaddset(&pipe_only, SIGPIPE);
            ::sigprocmask(SIG_UNBLOCK, &pipe_only, nullptr);
            ipc::Ipc mine(config);
            auto p = mine.get(name, ipc::Milliseconds(5000));
            if (!p) return "get failed";
            return body(*p);
        },
        20);
}

std::string exit_text(const Child& c) {
    const int st = c.status();
    if (WIFSIGNALED(st)) return "signal " + std::to_string(WTERMSIG(st));
    if (WIFEXITED(st)) return "exit " + std::to_string(WEXITSTATUS(st));
    return "?";
}

}  // namespace

TEST_CASE_FIXTURE(TortureCase, "torture 5: a server SIGKILLed while a client is inside send() or wait(): closed_by_peer, no hang, no SIGPIPE") {
    Watchdog wd(120);

    SUBCASE("inside send(), waiting for the ack of a message the reducer is busy with") {
        Pipe busy;
        start(60, busy.write_end());
        Child client = sigpipe_sensitive_client(config, name, [](ipc::Process& p) -> std::string {
            auto m = ipc::Message::make("application/x-slow", "please wait");
            auto s = p.send(m.value());  // no timeout: must not hang
            auto again = p.send(ipc::Message::text("again"));
            return "send " + outcome(s) + ", then " + outcome(again);
        });
        REQUIRE(busy.wait_mark(5000));  // the reducer runs: the client waits for the ack
        server.kill_now();
        Stopwatch sw;
        CHECK(client.result(10000) == "send closed_by_peer, then closed");
        CHECK(exit_text(client) == "exit 0");
        CHECK(sw.elapsed() < 2000);
    }

    SUBCASE("inside send(), writing a 64 MiB frame") {
        Pipe busy;
        start(60, busy.write_end());
        Pipe sending;
        const int sending_fd = sending.write_end();
        Child client = sigpipe_sensitive_client(config, name, [sending_fd](ipc::Process& p) -> std::string {
            auto m = ipc::Message::make("application/x-slow", generate(std::size_t{64} << 20, 5));
            (void)write_all_fd(sending_fd, "s");
            auto s = p.send(m.value());  // no timeout: must not hang
            return "send " + outcome(s);
        });
        REQUIRE(sending.wait_mark(10000));
        // A random moment within the first 20 ms of the write (or, should
        // the whole frame be there already, while the reducer is busy).
        sleep_ms(static_cast<long>(torture_seed() % 20));
        server.kill_now();
        CHECK(client.result(10000) == "send closed_by_peer");
        CHECK(exit_text(client) == "exit 0");
    }

    SUBCASE("inside wait(), with nothing to come") {
        start(60);
        Pipe waiting;
        const int waiting_fd = waiting.write_end();
        Child client = sigpipe_sensitive_client(config, name, [waiting_fd](ipc::Process& p) -> std::string {
            if (!p.send(ipc::Message::text("quiet"), ipc::Milliseconds(5000))) return "send failed";
            (void)write_all_fd(waiting_fd, "w");
            auto w = p.wait();  // no timeout: must not hang
            auto again = p.wait(ipc::Milliseconds(10));
            auto sent = p.send(ipc::Message::text("after"));
            return "wait " + outcome(w) + ", then " + outcome(again) + ", " + outcome(sent);
        });
        REQUIRE(waiting.wait_mark(5000));
        CHECK(eventually([&] { return proc_state(client.pid()) == 'S'; }, 2000));  // asleep in poll()
        server.kill_now();
        CHECK(client.result(10000) == "wait closed_by_peer, then closed, closed");
        CHECK(exit_text(client) == "exit 0");
    }
}

// ===========================================================================
// 6. Load
// ===========================================================================

TEST_CASE_FIXTURE(TortureCase, "torture 6: 1000 clients connected at once, 5 round trips each; then 10,000 connect/close cycles; no fd left behind") {
    Watchdog wd(240);
    const int clients = scaled(1000, 100);
    const int cycles = scaled(10000, 1000);
    const int procs = 4;
    const int per_proc = clients / procs;
    const int rounds = 5;
    struct rlimit rl {};
    REQUIRE(::getrlimit(RLIMIT_NOFILE, &rl) == 0);
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < static_cast<rlim_t>(clients + 64)) {
        MESSAGE("torture 6 skipped: RLIMIT_NOFILE hard limit ", rl.rlim_max, " < ", clients + 64);
        return;
    }
    (void)raise_nofile();
    start(240);
    auto ctl = ipc.get(name);
    REQUIRE(ctl.has_value());
    const int base_fds = fd_count(server.pid());
    const long rss_before = rss_kb(server.pid());

    Pipe connected{O_CLOEXEC | O_NONBLOCK};
    Pipe go;
    const int go_fd = go.read_end();
    std::vector<Child> loaders;
    loaders.reserve(procs);
    Stopwatch sw;
    for (int k = 0; k < procs; ++k) {
        loaders.push_back(spawn(
            [config = config, name = name, k, per_proc, go_fd, &connected]() -> std::string {
                if (raise_nofile() < static_cast<rlim_t>(per_proc + 32)) return "RLIMIT_NOFILE too low";
                ipc::Ipc mine(config);
                std::vector<ipc::Process> ps;
                ps.reserve(static_cast<std::size_t>(per_proc));
                for (int i = 0; i < per_proc; ++i) {
                    auto p = mine.get(name, ipc::Milliseconds(10000));
                    if (!p) {
                        connected.mark();
                        return "get " + std::to_string(i) + " " + errc_name(p.error().code);
                    }
                    ps.push_back(std::move(p).value());
                }
                connected.mark();
                char b;
                ssize_t n;
                do {
                    n = ::read(go_fd, &b, 1);
                } while (n < 0 && errno == EINTR);
                if (n != 1) return "no go";
                Stats stats;
                for (int round = 0; round < rounds; ++round) {
                    std::vector<std::string> payloads;
                    payloads.reserve(ps.size());
                    for (std::size_t i = 0; i < ps.size(); ++i) {
                        const std::uint64_t s = (static_cast<std::uint64_t>(k) << 40) ^ (static_cast<std::uint64_t>(i) << 8) ^
                                                static_cast<std::uint64_t>(round);
                        payloads.push_back(generate(1 + static_cast<std::size_t>(s % 2048), s));
                        auto m = ipc::Message::make("application/octet-stream", payloads.back());
                        if (!ps[i].send(m.value(), ipc::Milliseconds(10000))) return "send failed";
                    }
                    for (std::size_t i = 0; i < ps.size(); ++i) {
                        Stopwatch one;
                        auto back = ps[i].wait(ipc::Milliseconds(10000));
                        if (!back) return std::string("wait ") + errc_name(back.error().code);
                        if (back->content() != payloads[i]) return "wrong answer";
                        stats.add(one.elapsed());
                    }
                }
                return "ok " + std::to_string(stats.trips);
            },
            200));
    }
    REQUIRE(connected.wait_for(procs, 60000));
    const std::int64_t connect_ms = sw.elapsed();
    const int all_fds = fd_count(server.pid());
    CHECK(all_fds == base_fds + procs * per_proc);  // every client at once
    const long rss_loaded = rss_kb(server.pid());
    sw = Stopwatch();
    REQUIRE(write_all_fd(go.write_end(), std::string(static_cast<std::size_t>(procs), 'g')));
    for (Child& l : loaders) CHECK(l.result(120000) == "ok " + std::to_string(per_proc * rounds));
    const std::int64_t trips_ms = sw.elapsed();
    const std::uint64_t counted = static_cast<std::uint64_t>(procs * per_proc * rounds);
    CHECK(ask(*ctl, "?stat", 5000) == std::to_string(counted));
    int fds_after = -1;
    CHECK(fds_back_to(server, base_fds, fds_after, 5000));

    // Connect and close, over and over, from several processes at once.
    const int cycles_per_proc = cycles / procs;
    std::vector<Child> cyclers;
    cyclers.reserve(procs);
    sw = Stopwatch();
    for (int k = 0; k < procs; ++k) {
        cyclers.push_back(spawn(
            [config = config, name = name, cycles_per_proc]() -> std::string {
                ipc::Ipc mine(config);
                for (int i = 0; i < cycles_per_proc; ++i) {
                    auto p = mine.get(name, ipc::Milliseconds(10000));
                    if (!p) return "get " + std::to_string(i) + " " + errc_name(p.error().code);
                    auto c = p->close();
                    if (!c) return "close " + std::to_string(i) + " " + errc_name(c.error().code);
                }
                return "ok";
            },
            200));
    }
    for (Child& c : cyclers) CHECK(c.result(180000) == "ok");
    const std::int64_t cycles_ms = sw.elapsed();
    int fds_end = -1;
    CHECK(fds_back_to(server, base_fds, fds_end, 5000));
    const std::string drops = ask(*ctl, "?drops", 5000);
    CAPTURE(drops);
    const long closed_expected = static_cast<long>(procs * per_proc + procs * cycles_per_proc);
    CHECK(drop_count(drops, ipc::DropReason::closed) == closed_expected);
    CHECK(drop_total(drops) == closed_expected);
    MESSAGE("torture 6: ", procs * per_proc, " clients (scale ", torture_scale(), ") connected in ", connect_ms, " ms (server fds ", base_fds, " -> ",
            all_fds, ", VmRSS ", rss_before, " -> ", rss_loaded, " KiB), ", counted, " round trips in ", trips_ms,
            " ms; fds after ", fds_after, "; ", procs * cycles_per_proc, " connect/close cycles in ", cycles_ms,
            " ms, server fds after ", fds_end, ", VmRSS ", rss_kb(server.pid()), " KiB");
    stop_server(*ctl, server, counted);
}

}  // TEST_SUITE
