// ipc_bench — ipc.hpp against a raw AF_UNIX floor, measured in the same run.
//
// SPDX-License-Identifier: MIT
//
// Every measure forks real processes: a server (ipc.hpp's Server::serve, and
// a raw-socket server that speaks no protocol at all) and a client. Where a
// measure compares ipc.hpp with the raw floor, the client alternates blocks
// of ipc.hpp iterations and raw iterations so that machine noise lands on
// both. Each result is one line of `key=value` fields, prefixed by the
// measure's name; lines starting with '#' are comments. See --help.
//
// Peers: where the build found them (meson -Dbench_peers, auto by default;
// it defines IPC_BENCH_HAVE_ZMQ and IPC_BENCH_HAVE_NNG), the rt_* measures
// also time ZeroMQ (REQ/REP) and nng (req0/rep0), both over ipc:// sockets in
// the measure's directory, each with an echo server in its own process
// pinned like the other two. One client process holds all four connections
// and runs one block of each in turn, the order rotating from block to
// block. A peer's line gives its median and p99 against the same raw floor
// as the ipc.hpp line (ratio=) and ipc_over_peer = ipc.hpp's median / the
// peer's (below 1: ipc.hpp is faster). The other measures use ipc.hpp and the
// raw floor only.
//
// This binary replaces the global allocator entry points (operator new and
// delete, and malloc/calloc/realloc/free on glibc) with counting versions
// that forward to glibc's own allocator, so that heap allocations per round
// trip can be counted in each process. The counters cost one relaxed atomic
// increment per call.
//
// The benchmark never hangs: every child gets SIGKILL when its parent dies
// (PR_SET_PDEATHSIG) and when the measure's deadline passes; each measure
// uses its own mkdtemp() directory, removed at the end.

#include "ipc.hpp"

#if defined(IPC_BENCH_HAVE_ZMQ) && IPC_BENCH_HAVE_ZMQ
#include <zmq.h>
#define IPC_BENCH_ZMQ 1
#else
#define IPC_BENCH_ZMQ 0
#endif
#if defined(IPC_BENCH_HAVE_NNG) && IPC_BENCH_HAVE_NNG
#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>
#define IPC_BENCH_NNG 1
#else
#define IPC_BENCH_NNG 0
#endif

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cinttypes>
#include <cstdarg>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <new>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <dirent.h>
#include <fcntl.h>
#include <malloc.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <linux/futex.h>
#include <time.h>
#include <unistd.h>

// ===========================================================================
// Counting allocator
// ===========================================================================

#if defined(__GLIBC__) && !defined(IPC_BENCH_NO_MALLOC_HOOKS)
#define IPC_BENCH_COUNT_MALLOC 1
extern "C" {
void* __libc_malloc(std::size_t);
void* __libc_calloc(std::size_t, std::size_t);
void* __libc_realloc(void*, std::size_t);
void __libc_free(void*);
void* __libc_memalign(std::size_t, std::size_t);
}
#define IPC_BENCH_RAW_MALLOC(n) __libc_malloc(n)
#define IPC_BENCH_RAW_FREE(p) __libc_free(p)
#define IPC_BENCH_RAW_MEMALIGN(a, n) __libc_memalign(a, n)
#else
#define IPC_BENCH_COUNT_MALLOC 0
#define IPC_BENCH_RAW_MALLOC(n) std::malloc(n)
#define IPC_BENCH_RAW_FREE(p) std::free(p)
#define IPC_BENCH_RAW_MEMALIGN(a, n) std::aligned_alloc(a, ((n) + (a) - 1) / (a) * (a))
#endif

namespace counters {
// Calls of operator new (all forms), of malloc/calloc/memalign-like, and of
// realloc; bytes currently allocated (by malloc_usable_size, glibc only).
std::atomic<std::uint64_t> news{0};
std::atomic<std::uint64_t> mallocs{0};
std::atomic<std::uint64_t> reallocs{0};
std::atomic<long long> live_bytes{0};
// Live bytes are tracked only where they are reported (the idle_memory
// server): malloc_usable_size() costs ~25 instructions a call, which would
// otherwise show up in callgrind's instruction counts.
bool track_live = false;

inline void add_live(void* p) noexcept {
#if IPC_BENCH_COUNT_MALLOC
    if (track_live && p != nullptr) live_bytes.fetch_add(static_cast<long long>(malloc_usable_size(p)), std::memory_order_relaxed);
#else
    (void)p;
#endif
}
inline void sub_live(void* p) noexcept {
#if IPC_BENCH_COUNT_MALLOC
    if (track_live && p != nullptr) live_bytes.fetch_sub(static_cast<long long>(malloc_usable_size(p)), std::memory_order_relaxed);
#else
    (void)p;
#endif
}

struct Snapshot {
    std::uint64_t news = 0, mallocs = 0, reallocs = 0;
    static Snapshot take() noexcept {
        Snapshot s;
        s.news = counters::news.load(std::memory_order_relaxed);
        s.mallocs = counters::mallocs.load(std::memory_order_relaxed);
        s.reallocs = counters::reallocs.load(std::memory_order_relaxed);
        return s;
    }
};
}  // namespace counters

#if IPC_BENCH_COUNT_MALLOC
extern "C" {
void* malloc(std::size_t n) noexcept {
    counters::mallocs.fetch_add(1, std::memory_order_relaxed);
    void* p = __libc_malloc(n);
    counters::add_live(p);
    return p;
}
void* calloc(std::size_t n, std::size_t m) noexcept {
    counters::mallocs.fetch_add(1, std::memory_order_relaxed);
    void* p = __libc_calloc(n, m);
    counters::add_live(p);
    return p;
}
void* realloc(void* old, std::size_t n) noexcept {
    counters::reallocs.fetch_add(1, std::memory_order_relaxed);
    long long before = counters::track_live && old != nullptr ? static_cast<long long>(malloc_usable_size(old)) : 0;
    void* p = __libc_realloc(old, n);
    if (p != nullptr || n == 0) {
        counters::live_bytes.fetch_sub(before, std::memory_order_relaxed);
        counters::add_live(p);
    }
    return p;
}
void free(void* p) noexcept {
    counters::sub_live(p);
    __libc_free(p);
}
void* memalign(std::size_t a, std::size_t n) noexcept {
    counters::mallocs.fetch_add(1, std::memory_order_relaxed);
    void* p = __libc_memalign(a, n);
    counters::add_live(p);
    return p;
}
void* aligned_alloc(std::size_t a, std::size_t n) noexcept { return memalign(a, n); }
int posix_memalign(void** out, std::size_t a, std::size_t n) noexcept {
    void* p = memalign(a, n);
    if (p == nullptr) return ENOMEM;
    *out = p;
    return 0;
}
}
#endif

static void* counted_new(std::size_t n) noexcept {
    counters::news.fetch_add(1, std::memory_order_relaxed);
    void* p = IPC_BENCH_RAW_MALLOC(n == 0 ? 1 : n);
    counters::add_live(p);
    return p;
}
static void* counted_new_aligned(std::size_t n, std::align_val_t a) noexcept {
    counters::news.fetch_add(1, std::memory_order_relaxed);
    void* p = IPC_BENCH_RAW_MEMALIGN(static_cast<std::size_t>(a), n == 0 ? 1 : n);
    counters::add_live(p);
    return p;
}
static void counted_delete(void* p) noexcept {
    counters::sub_live(p);
    IPC_BENCH_RAW_FREE(p);
}

void* operator new(std::size_t n) {
    void* p = counted_new(n);
    if (p == nullptr) throw std::bad_alloc();
    return p;
}
void* operator new[](std::size_t n) {
    void* p = counted_new(n);
    if (p == nullptr) throw std::bad_alloc();
    return p;
}
void* operator new(std::size_t n, const std::nothrow_t&) noexcept { return counted_new(n); }
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept { return counted_new(n); }
void* operator new(std::size_t n, std::align_val_t a) {
    void* p = counted_new_aligned(n, a);
    if (p == nullptr) throw std::bad_alloc();
    return p;
}
void* operator new[](std::size_t n, std::align_val_t a) {
    void* p = counted_new_aligned(n, a);
    if (p == nullptr) throw std::bad_alloc();
    return p;
}
void* operator new(std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept { return counted_new_aligned(n, a); }
void* operator new[](std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept { return counted_new_aligned(n, a); }
void operator delete(void* p) noexcept { counted_delete(p); }
void operator delete[](void* p) noexcept { counted_delete(p); }
void operator delete(void* p, std::size_t) noexcept { counted_delete(p); }
void operator delete[](void* p, std::size_t) noexcept { counted_delete(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { counted_delete(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { counted_delete(p); }
void operator delete(void* p, std::align_val_t) noexcept { counted_delete(p); }
void operator delete[](void* p, std::align_val_t) noexcept { counted_delete(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { counted_delete(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { counted_delete(p); }
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept { counted_delete(p); }
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept { counted_delete(p); }

namespace {

using namespace ipc_hpp;

// ===========================================================================
// Small helpers
// ===========================================================================

constexpr const char* kServerName = "bench";
constexpr const char* kRawSocket = "raw-floor.sock";
constexpr const char* kZmqSocket = "zeromq.sock";  // the peers' ipc:// endpoints
constexpr const char* kNngSocket = "nng.sock";
constexpr std::size_t KiB = 1024;
constexpr std::size_t MiB = 1024 * 1024;

std::uint64_t now_ns() noexcept {
    struct timespec ts {};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<std::uint64_t>(ts.tv_sec) * 1000000000u + static_cast<std::uint64_t>(ts.tv_nsec);
}

void sleep_ms(long ms) noexcept {
    struct timespec ts {};
    ts.tv_sec = ms / 1000;
    ts.tv_nsec = (ms % 1000) * 1000000L;
    while (::nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

std::string size_label(std::size_t n) {
    char buf[32];
    if (n >= MiB && n % MiB == 0) std::snprintf(buf, sizeof buf, "%zuMiB", n / MiB);
    else if (n >= KiB && n % KiB == 0) std::snprintf(buf, sizeof buf, "%zuKiB", n / KiB);
    else std::snprintf(buf, sizeof buf, "%zuB", n);
    return buf;
}

std::string fmt(const char* f, ...) __attribute__((format(printf, 1, 2)));
std::string fmt(const char* f, ...) {
    char buf[1024];
    va_list ap;
    va_start(ap, f);
    std::vsnprintf(buf, sizeof buf, f, ap);
    va_end(ap);
    return buf;
}

bool write_all(int fd, const void* data, std::size_t n) noexcept {
    const char* p = static_cast<const char*>(data);
    while (n > 0) {
        ssize_t r = ::write(fd, p, n);
        if (r < 0) {
            if (errno == EINTR) continue;
            return false;
        }
        p += r;
        n -= static_cast<std::size_t>(r);
    }
    return true;
}
bool write_str(int fd, const std::string& s) noexcept { return write_all(fd, s.data(), s.size()); }

bool read_exact(int fd, void* data, std::size_t n) noexcept {
    char* p = static_cast<char*>(data);
    while (n > 0) {
        ssize_t r = ::read(fd, p, n);
        if (r < 0) {
            if (errno == EINTR) continue;
            return false;
        }
        if (r == 0) return false;
        p += r;
        n -= static_cast<std::size_t>(r);
    }
    return true;
}

std::vector<int> allowed_cpus() {
    std::vector<int> out;
    cpu_set_t set;
    CPU_ZERO(&set);
    if (::sched_getaffinity(0, sizeof set, &set) != 0) return out;
    for (std::size_t i = 0; i < static_cast<std::size_t>(CPU_SETSIZE); ++i) {
        if (CPU_ISSET(i, &set)) out.push_back(static_cast<int>(i));
    }
    return out;
}

bool pin_to(const std::vector<int>& cpus) {
    if (cpus.empty()) return true;
    cpu_set_t set;
    CPU_ZERO(&set);
    for (int c : cpus) CPU_SET(static_cast<std::size_t>(c), &set);
    return ::sched_setaffinity(0, sizeof set, &set) == 0;
}

std::string cpus_label(const std::vector<int>& cpus) {
    if (cpus.empty()) return "any";
    std::string s;
    for (std::size_t i = 0; i < cpus.size(); ++i) {
        if (i) s += '+';
        s += std::to_string(cpus[i]);
    }
    return s;
}

std::string payload_of(std::size_t n) {
    std::string s(n, '\0');
    for (std::size_t i = 0; i < n; ++i) s[i] = static_cast<char>('a' + static_cast<int>(i % 26));
    return s;
}

// A raw AF_UNIX client connection (blocking), retried until the deadline.
int raw_connect(const std::string& path, std::uint64_t deadline_ns) {
    struct sockaddr_un addr {};
    addr.sun_family = AF_UNIX;
    if (path.size() >= sizeof addr.sun_path) return -1;
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    for (;;) {
        int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) return -1;
        if (::connect(fd, reinterpret_cast<const struct sockaddr*>(&addr), sizeof addr) == 0) return fd;
        int err = errno;
        ::close(fd);
        if (err != ENOENT && err != ECONNREFUSED && err != EAGAIN && err != EINTR) return -1;
        if (now_ns() >= deadline_ns) return -1;
        sleep_ms(1);
    }
}

int raw_listen(const std::string& path) {
    struct sockaddr_un addr {};
    addr.sun_family = AF_UNIX;
    if (path.size() >= sizeof addr.sun_path) return -1;
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    ::unlink(path.c_str());
    if (::bind(fd, reinterpret_cast<const struct sockaddr*>(&addr), sizeof addr) != 0 || ::listen(fd, SOMAXCONN) != 0) {
        ::close(fd);
        return -1;
    }
    return fd;
}

// VmRSS and RssAnon of a process, in KiB (-1 when unreadable).
struct Rss {
    long vm_rss_kib = -1;
    long rss_anon_kib = -1;
};
Rss read_rss(pid_t pid) {
    Rss r;
    char path[64];
    std::snprintf(path, sizeof path, "/proc/%d/status", static_cast<int>(pid));
    FILE* f = std::fopen(path, "r");
    if (f == nullptr) return r;
    char line[256];
    while (std::fgets(line, sizeof line, f) != nullptr) {
        if (std::strncmp(line, "VmRSS:", 6) == 0) r.vm_rss_kib = std::strtol(line + 6, nullptr, 10);
        if (std::strncmp(line, "RssAnon:", 8) == 0) r.rss_anon_kib = std::strtol(line + 8, nullptr, 10);
    }
    std::fclose(f);
    return r;
}

// Raises RLIMIT_NOFILE's soft limit to the hard limit; returns the new soft limit.
long raise_nofile() {
    struct rlimit rl {};
    if (::getrlimit(RLIMIT_NOFILE, &rl) != 0) return -1;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        ::setrlimit(RLIMIT_NOFILE, &rl);
        ::getrlimit(RLIMIT_NOFILE, &rl);
    }
    return rl.rlim_cur == RLIM_INFINITY ? 1L << 30 : static_cast<long>(rl.rlim_cur);
}

bool find_in_path(const char* prog) {
    const char* path = std::getenv("PATH");
    std::string p = path != nullptr ? path : "/usr/bin:/bin";
    std::size_t b = 0;
    while (b <= p.size()) {
        std::size_t e = p.find(':', b);
        if (e == std::string::npos) e = p.size();
        std::string file = p.substr(b, e - b) + "/" + prog;
        if (::access(file.c_str(), X_OK) == 0) return true;
        b = e + 1;
    }
    return false;
}

struct Stats {
    double median_us = 0, p99_us = 0, mean_us = 0;
};
Stats stats_of(std::vector<std::uint64_t>& ns) {
    Stats s;
    if (ns.empty()) return s;
    std::sort(ns.begin(), ns.end());
    std::size_t n = ns.size();
    double med = (n % 2 == 1) ? static_cast<double>(ns[n / 2])
                              : (static_cast<double>(ns[n / 2 - 1]) + static_cast<double>(ns[n / 2])) / 2.0;
    std::size_t rank = (n * 99 + 99) / 100;  // nearest rank, ceil(0.99 n)
    if (rank == 0) rank = 1;
    double sum = 0;
    for (auto v : ns) sum += static_cast<double>(v);
    s.median_us = med / 1000.0;
    s.p99_us = static_cast<double>(ns[rank - 1]) / 1000.0;
    s.mean_us = sum / static_cast<double>(n) / 1000.0;
    return s;
}

// ===========================================================================
// Options
// ===========================================================================

struct Options {
    bool quick = false;
    long iterations = 0;     // 0: each measure's default
    std::string only;        // run this measure alone
    double deadline_s = 0;   // 0: each measure's default
    bool verbose = false;
    std::string self = "/proc/self/exe";
};
Options g_opt;

// ===========================================================================
// Children: fork, pin, supervise, kill on a deadline, clean up
// ===========================================================================

// For the emergency handler (SIGINT/SIGTERM to the parent): async-signal-safe
// state only.
constexpr int kMaxKids = 8;
std::atomic<int> g_kid_pids[kMaxKids];
char g_tmpdir[256];
volatile sig_atomic_t g_have_tmpdir = 0;

void remove_tmpdir_signal_safe(const char* dir) noexcept {
    const char* files[] = {"bench.sock", "bench.lock", kRawSocket, kZmqSocket, kNngSocket};  // bench.lock: the ipc.hpp server's NAME.lock
    for (const char* f : files) {
        char path[400];
        std::size_t a = std::strlen(dir), b = std::strlen(f);
        if (a + b + 2 > sizeof path) continue;
        std::memcpy(path, dir, a);
        path[a] = '/';
        std::memcpy(path + a + 1, f, b + 1);
        ::unlink(path);
    }
    ::rmdir(dir);
}

extern "C" void on_parent_signal(int sig) {
    for (auto& k : g_kid_pids) {
        int pid = k.load();
        if (pid > 0) ::kill(pid, SIGKILL);
    }
    for (auto& k : g_kid_pids) {
        int pid = k.load();
        if (pid > 0) ::waitpid(pid, nullptr, 0);
    }
    if (g_have_tmpdir) remove_tmpdir_signal_safe(g_tmpdir);
    ::signal(sig, SIG_DFL);
    ::raise(sig);
}

struct Child {
    std::string role;
    pid_t pid = -1;
    int fd = -1;          // read end of the child's output pipe
    int ctl = -1;         // write end of a control pipe to the child (or -1)
    bool eof = false;
    bool reaped = false;
    int status = 0;
    std::string out;      // everything the child wrote to its pipe
};

class Run {
public:
    explicit Run(std::string name, double default_deadline_s) : name_(std::move(name)) {
        double d = g_opt.deadline_s > 0 ? g_opt.deadline_s : default_deadline_s;
        deadline_ = now_ns() + static_cast<std::uint64_t>(d * 1e9);
        const char* tmp = std::getenv("TMPDIR");
        std::string base = (tmp != nullptr && *tmp != '\0') ? tmp : "/tmp";
        std::string templ = base + "/ipc-bench-XXXXXX";
        if (templ.size() >= 80) templ = "/tmp/ipc-bench-XXXXXX";  // keep sun_path room
        std::vector<char> buf(templ.begin(), templ.end());
        buf.push_back('\0');
        if (::mkdtemp(buf.data()) == nullptr) {
            std::fprintf(stderr, "ipc_bench: mkdtemp(%s): %s\n", templ.c_str(), std::strerror(errno));
            std::exit(1);
        }
        dir_ = buf.data();
        std::snprintf(g_tmpdir, sizeof g_tmpdir, "%s", dir_.c_str());
        g_have_tmpdir = 1;
    }
    Run(const Run&) = delete;
    Run& operator=(const Run&) = delete;
    ~Run() { finish(); }

    const std::string& dir() const noexcept { return dir_; }
    std::string raw_path() const { return dir_ + "/" + kRawSocket; }
    std::string zmq_url() const { return "ipc://" + dir_ + "/" + kZmqSocket; }
    std::string nng_url() const { return "ipc://" + dir_ + "/" + kNngSocket; }
    bool timed_out() const noexcept { return timed_out_; }
    std::uint64_t deadline() const noexcept { return deadline_; }

    // Forks a child that runs body(out_fd[, ctl_fd]) pinned to `cpus`
    // (empty: not pinned) and _exit()s with its result.
    template <class F>
    std::size_t spawn(const std::string& role, const std::vector<int>& cpus, F&& body, bool with_ctl = false) {
        int p[2];
        int c[2] = {-1, -1};
        if (::pipe2(p, O_CLOEXEC) != 0 || (with_ctl && ::pipe2(c, O_CLOEXEC) != 0)) {
            std::fprintf(stderr, "ipc_bench: pipe2: %s\n", std::strerror(errno));
            std::exit(1);
        }
        std::fflush(nullptr);
        pid_t parent = ::getpid();
        pid_t pid = ::fork();
        if (pid < 0) {
            std::fprintf(stderr, "ipc_bench: fork: %s\n", std::strerror(errno));
            std::exit(1);
        }
        if (pid == 0) {
            ::close(p[0]);
            if (with_ctl) ::close(c[1]);
            ::prctl(PR_SET_PDEATHSIG, SIGKILL);
            if (::getppid() != parent) ::_exit(99);
            ::signal(SIGINT, SIG_DFL);
            ::signal(SIGTERM, SIG_DFL);
            ::signal(SIGHUP, SIG_DFL);
            if (!pin_to(cpus)) {
                std::fprintf(stderr, "ipc_bench: %s: sched_setaffinity(%s): %s\n", role.c_str(), cpus_label(cpus).c_str(),
                             std::strerror(errno));
                ::_exit(98);
            }
            int rc = body(p[1], c[0]);
            std::fflush(nullptr);
            ::_exit(rc);
        }
        ::close(p[1]);
        if (with_ctl) ::close(c[0]);
        Child k;
        k.role = role;
        k.pid = pid;
        k.fd = p[0];
        k.ctl = with_ctl ? c[1] : -1;
        kids_.push_back(std::move(k));
        for (auto& slot : g_kid_pids) {
            int zero = 0;
            if (slot.compare_exchange_strong(zero, static_cast<int>(pid))) break;
        }
        if (g_opt.verbose) std::fprintf(stderr, "# %s: %s pid=%d cpus=%s\n", name_.c_str(), role.c_str(), static_cast<int>(pid), cpus_label(cpus).c_str());
        return kids_.size() - 1;
    }

    Child& kid(std::size_t i) { return kids_[i]; }

    // Reads the children's pipes until done() holds or the deadline passes.
    template <class Pred>
    bool pump(Pred done) {
        std::vector<struct pollfd> pf;
        std::vector<std::size_t> who;
        for (;;) {
            if (done()) return true;
            pf.clear();
            who.clear();
            for (std::size_t i = 0; i < kids_.size(); ++i) {
                if (!kids_[i].eof) {
                    pf.push_back(pollfd{kids_[i].fd, POLLIN, 0});
                    who.push_back(i);
                }
            }
            std::uint64_t now = now_ns();
            if (now >= deadline_ || pf.empty()) {
                if (now >= deadline_) timed_out_ = true;
                return done();
            }
            std::uint64_t left_ms = (deadline_ - now) / 1000000u + 1;
            int r = ::poll(pf.data(), static_cast<nfds_t>(pf.size()), static_cast<int>(std::min<std::uint64_t>(left_ms, 1u << 30)));
            if (r < 0 && errno != EINTR) return false;
            if (r <= 0) continue;
            for (std::size_t j = 0; j < pf.size(); ++j) {
                if (pf[j].revents == 0) continue;
                Child& k = kids_[who[j]];
                char buf[4096];
                ssize_t n = ::read(k.fd, buf, sizeof buf);
                if (n > 0) {
                    k.out.append(buf, static_cast<std::size_t>(n));
                } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
                    k.eof = true;
                    ::close(k.fd);
                    k.fd = -1;
                }
            }
        }
    }
    bool wait_eof(std::size_t i) {
        return pump([&] { return kids_[i].eof; });
    }
    bool wait_text(std::size_t i, const char* text) {
        return pump([&] { return kids_[i].out.find(text) != std::string::npos; });
    }
    bool wait_bytes(std::size_t i, std::size_t n) {
        return pump([&] { return kids_[i].out.size() >= n; });
    }
    bool tell(std::size_t i, char c) { return kids_[i].ctl >= 0 && write_all(kids_[i].ctl, &c, 1); }

    // Stops every child (SIGTERM, then SIGKILL after a grace period), reaps
    // them and removes the directory. Returns whether every child that had
    // to succeed exited with 0 (roles starting with "server" may be killed).
    bool finish() {
        if (finished_) return ok_;
        finished_ = true;
        bool ok = !timed_out_;
        for (auto& k : kids_) {
            if (k.ctl >= 0) {
                ::close(k.ctl);
                k.ctl = -1;
            }
        }
        if (timed_out_) {
            for (auto& k : kids_) ::kill(k.pid, SIGKILL);
        } else {
            for (auto& k : kids_) ::kill(k.pid, SIGTERM);
        }
        const std::uint64_t grace_ns = timed_out_ ? 1000000000u : 5000000000u;
        std::uint64_t saved = deadline_;
        bool saved_to = timed_out_;
        deadline_ = now_ns() + grace_ns;
        pump([&] {
            for (auto& k : kids_) {
                if (!k.eof) return false;
            }
            return true;
        });
        for (auto& k : kids_) {
            while (!k.reaped) {
                pid_t r = ::waitpid(k.pid, &k.status, WNOHANG);
                if (r == k.pid) {
                    k.reaped = true;
                    break;
                }
                if (r < 0 && errno != EINTR) {
                    k.reaped = true;
                    break;
                }
                if (now_ns() >= deadline_) {
                    ::kill(k.pid, SIGKILL);
                    while (::waitpid(k.pid, &k.status, 0) < 0 && errno == EINTR) {
                    }
                    k.reaped = true;
                    ok = false;
                    std::fprintf(stderr, "ipc_bench: %s: %s did not stop, killed\n", name_.c_str(), k.role.c_str());
                    break;
                }
                sleep_ms(2);
            }
            if (k.fd >= 0) {
                ::close(k.fd);
                k.fd = -1;
            }
            for (auto& slot : g_kid_pids) {
                int expected = static_cast<int>(k.pid);
                slot.compare_exchange_strong(expected, 0);
            }
            bool must_succeed = k.role.compare(0, 6, "server") != 0;
            bool exited0 = WIFEXITED(k.status) && WEXITSTATUS(k.status) == 0;
            bool killed_by_us = WIFSIGNALED(k.status) && (WTERMSIG(k.status) == SIGTERM);
            if (!exited0 && (must_succeed || !killed_by_us)) {
                ok = false;
                if (!saved_to) {
                    if (WIFEXITED(k.status))
                        std::fprintf(stderr, "ipc_bench: %s: %s exited with %d\n", name_.c_str(), k.role.c_str(), WEXITSTATUS(k.status));
                    else if (WIFSIGNALED(k.status))
                        std::fprintf(stderr, "ipc_bench: %s: %s killed by signal %d\n", name_.c_str(), k.role.c_str(), WTERMSIG(k.status));
                }
            }
        }
        deadline_ = saved;
        if (saved_to) std::fprintf(stderr, "ipc_bench: %s: deadline passed, children killed\n", name_.c_str());
        remove_dir();
        ok_ = ok;
        return ok;
    }

private:
    void remove_dir() {
        if (dir_.empty()) return;
        std::vector<std::string> names;
        if (DIR* d = ::opendir(dir_.c_str())) {
            while (struct dirent* e = ::readdir(d)) {
                if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0) names.push_back(e->d_name);
            }
            ::closedir(d);
        }
        for (auto& n : names) ::unlink((dir_ + "/" + n).c_str());
        ::rmdir(dir_.c_str());
        g_have_tmpdir = 0;
        dir_.clear();
    }

    std::string name_;
    std::string dir_;
    std::vector<Child> kids_;
    std::uint64_t deadline_ = 0;
    bool timed_out_ = false;
    bool finished_ = false;
    bool ok_ = false;
};

// Prints a child's output as is (its result lines and '#' comments).
void print_lines(const std::string& text) {
    if (text.empty()) return;
    std::fputs(text.c_str(), stdout);
    if (text.back() != '\n') std::fputc('\n', stdout);
    std::fflush(stdout);
}

Name server_name() { return Name::parse(kServerName).value(); }

Config config_for(const std::string& dir) {
    Config c;
    c.directory = dir;
    return c;
}

void child_error(const char* role, const char* what, const Error& e) {
    char buf[256];
    std::fprintf(stderr, "ipc_bench: %s: %s: %s\n", role, what, e.format(buf, sizeof buf));
}

// ===========================================================================
// Servers
// ===========================================================================

enum class Reply { echo, small, none };

struct IpcServerSpec {
    Reply reply = Reply::echo;
    // Allocation window: counters are read when the reducer is entered for
    // message `count_from` and for message `count_to` (1-based); the
    // difference is reported on the output pipe. 0: off.
    std::uint64_t count_from = 0;
    std::uint64_t count_to = 0;
    // On SIGUSR1, write the live heap byte count (8 bytes) to the pipe.
    bool live_on_usr1 = false;
};

int g_usr1_fd = -1;
extern "C" void on_usr1(int) {
    int saved = errno;
    long long v = counters::live_bytes.load(std::memory_order_relaxed);
    (void)!::write(g_usr1_fd, &v, sizeof v);
    errno = saved;
}

// The server's allocation window (see IpcServerSpec), kept out of the
// reducer so that the measured path stays what a user would write.
struct AllocWindow {
    std::uint64_t from, to;
    int out;
    counters::Snapshot a0;

    __attribute__((noinline)) void at(std::uint64_t count) {
        if (count == from) {
            a0 = counters::Snapshot::take();
        } else if (count == to) {
            counters::Snapshot a1 = counters::Snapshot::take();
            char line[160];
            int len = std::snprintf(line, sizeof line, "server_counts news=%" PRIu64 " mallocs=%" PRIu64 " reallocs=%" PRIu64 "\n",
                                    a1.news - a0.news, a1.mallocs - a0.mallocs, a1.reallocs - a0.reallocs);
            if (len > 0) (void)write_all(out, line, static_cast<std::size_t>(len));
        }
    }
};

int ipc_server(int out, const std::string& dir, IpcServerSpec spec) {
    if (spec.live_on_usr1) {
        // Starts from 0 here: what this child inherited from the parent is
        // not counted, which does not matter for differences.
        counters::track_live = true;
        g_usr1_fd = out;
        struct sigaction sa {};
        sa.sa_handler = &on_usr1;
        sigemptyset(&sa.sa_mask);
        sa.sa_flags = SA_RESTART;
        ::sigaction(SIGUSR1, &sa, nullptr);
    }
    Ipc ipc(config_for(dir));
    auto server = ipc.listen(server_name());
    if (!server) {
        child_error("ipc server", "listen", server.error());
        return 1;
    }
    server->handle_signals();
    const Message small = Message::text("ok");
    AllocWindow window{spec.count_from, spec.count_to, out, {}};
    auto result = server->serve(std::uint64_t{0}, [&](const Message& m, Continuation<std::uint64_t> k, std::uint64_t count) {
        ++count;
        if (window.to != 0) window.at(count);
        if (spec.reply == Reply::echo) return k.respond(count, m);
        if (spec.reply == Reply::small) return k.respond(count, small);
        return k.continue_(count);
    });
    if (!result) {
        child_error("ipc server", "serve", result.error());
        return 1;
    }
    return 0;
}

// The raw floor: one connection at a time, blocking; reads exactly
// `in_size` bytes, writes `out_size` bytes back. No framing.
int raw_server(int out, const std::string& path, std::size_t in_size, std::size_t out_size) {
    int lfd = raw_listen(path);
    if (lfd < 0) {
        std::fprintf(stderr, "ipc_bench: raw server: listen %s: %s\n", path.c_str(), std::strerror(errno));
        return 1;
    }
    std::vector<char> buf(std::max(in_size, out_size), 'r');
    (void)write_str(out, "ready\n");
    for (;;) {
        int c = ::accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC);
        if (c < 0) {
            if (errno == EINTR || errno == ECONNABORTED) continue;
            return 1;
        }
        for (;;) {
            if (!read_exact(c, buf.data(), in_size)) break;
            if (!write_all(c, buf.data(), out_size)) break;
        }
        ::close(c);
    }
}

// The raw floor for many clients: one poll() loop over every connection;
// each readable connection gets one read(); a complete `size`-byte request
// is answered with `size` bytes.
int raw_poll_server(int out, const std::string& path, std::size_t size) {
    int lfd = raw_listen(path);
    if (lfd < 0) {
        std::fprintf(stderr, "ipc_bench: raw poll server: listen %s: %s\n", path.c_str(), std::strerror(errno));
        return 1;
    }
    ::fcntl(lfd, F_SETFL, ::fcntl(lfd, F_GETFL) | O_NONBLOCK);
    struct Conn {
        std::size_t got = 0;
        std::vector<char> buf;
    };
    std::vector<struct pollfd> pfds;
    std::vector<Conn> conns;
    pfds.push_back(pollfd{lfd, POLLIN, 0});
    conns.emplace_back();
    (void)write_str(out, "ready\n");
    for (;;) {
        int r = ::poll(pfds.data(), static_cast<nfds_t>(pfds.size()), -1);
        if (r < 0) {
            if (errno == EINTR) continue;
            return 1;
        }
        bool removed = false;
        for (std::size_t i = 1; i < pfds.size(); ++i) {
            if (pfds[i].revents == 0) continue;
            Conn& c = conns[i];
            ssize_t n = ::read(pfds[i].fd, c.buf.data() + c.got, size - c.got);
            if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
            if (n <= 0) {
                ::close(pfds[i].fd);
                pfds[i].fd = -1;
                removed = true;
                continue;
            }
            c.got += static_cast<std::size_t>(n);
            if (c.got == size) {
                c.got = 0;
                std::size_t off = 0;
                while (off < size) {  // a small answer always fits; wait for room otherwise
                    ssize_t w = ::send(pfds[i].fd, c.buf.data() + off, size - off, MSG_NOSIGNAL);
                    if (w > 0) {
                        off += static_cast<std::size_t>(w);
                        continue;
                    }
                    if (w < 0 && errno == EINTR) continue;
                    if (w < 0 && errno == EAGAIN) {
                        struct pollfd one {pfds[i].fd, POLLOUT, 0};
                        ::poll(&one, 1, 1000);
                        continue;
                    }
                    ::close(pfds[i].fd);
                    pfds[i].fd = -1;
                    removed = true;
                    break;
                }
            }
        }
        if (pfds[0].revents & POLLIN) {
            for (;;) {
                int fd = ::accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
                if (fd < 0) break;
                pfds.push_back(pollfd{fd, POLLIN, 0});
                conns.emplace_back();
                conns.back().buf.resize(size);
            }
        }
        if (removed) {
            std::size_t j = 1;
            for (std::size_t i = 1; i < pfds.size(); ++i) {
                if (pfds[i].fd < 0) continue;
                if (i != j) {
                    pfds[j] = pfds[i];
                    conns[j] = std::move(conns[i]);
                }
                ++j;
            }
            pfds.resize(j);
            conns.resize(j);
        }
    }
}

// The peers' echo servers: each receives a message and sends it back as it
// is, the idiomatic zero-copy echo of its library (the received message
// object is the one sent). Like the raw server they say "ready" once bound.

// The peers' versions, from the libraries loaded at run time ("" when not built).
std::string zmq_version_label() {
#if IPC_BENCH_ZMQ
    int major = 0, minor = 0, patch = 0;
    zmq_version(&major, &minor, &patch);
    return fmt("%d.%d.%d", major, minor, patch);
#else
    return "";
#endif
}
std::string nng_version_label() {
#if IPC_BENCH_NNG
    return nng_version();
#else
    return "";
#endif
}

#if IPC_BENCH_ZMQ
// Reports the failed call's zmq_errno() (read first: nothing in between may touch errno).
void zmq_fail(const char* role, const char* what, const char* arg = nullptr) {
    const int e = zmq_errno();
    std::fprintf(stderr, "ipc_bench: %s: %s%s%s: %s\n", role, what, arg != nullptr ? " " : "", arg != nullptr ? arg : "", zmq_strerror(e));
}

// A ZeroMQ context (one I/O thread, the default) and one socket, linger 0.
struct ZmqSocket {
    void* ctx = nullptr;
    void* sock = nullptr;

    ZmqSocket() = default;
    ZmqSocket(const ZmqSocket&) = delete;
    ZmqSocket& operator=(const ZmqSocket&) = delete;
    ~ZmqSocket() {
        if (sock != nullptr) zmq_close(sock);
        if (ctx != nullptr) zmq_ctx_term(ctx);
    }
    bool open(const char* role, int type) {
        ctx = zmq_ctx_new();
        if (ctx == nullptr) {
            zmq_fail(role, "zmq_ctx_new");
            return false;
        }
        sock = zmq_socket(ctx, type);
        if (sock == nullptr) {
            zmq_fail(role, "zmq_socket");
            return false;
        }
        int linger = 0;
        if (zmq_setsockopt(sock, ZMQ_LINGER, &linger, sizeof linger) != 0) {
            zmq_fail(role, "zmq_setsockopt(ZMQ_LINGER)");
            return false;
        }
        return true;
    }
};

// REP: zmq_msg_recv, then zmq_msg_send of the same zmq_msg_t.
int zmq_echo_server(int out, const std::string& url) {
    const char* role = "zeromq server";
    ZmqSocket z;
    if (!z.open(role, ZMQ_REP)) return 1;
    if (zmq_bind(z.sock, url.c_str()) != 0) {
        zmq_fail(role, "zmq_bind", url.c_str());
        return 1;
    }
    zmq_msg_t msg;
    zmq_msg_init(&msg);
    (void)write_str(out, "ready\n");
    for (;;) {
        if (zmq_msg_recv(&msg, z.sock, 0) < 0) {
            if (zmq_errno() == EINTR) continue;
            zmq_fail(role, "zmq_msg_recv");
            return 1;
        }
        while (zmq_msg_send(&msg, z.sock, 0) < 0) {
            if (zmq_errno() == EINTR) continue;
            zmq_fail(role, "zmq_msg_send");
            return 1;
        }
    }
}
#endif

#if IPC_BENCH_NNG
void nng_fail(const char* role, const char* what, int rv) {
    std::fprintf(stderr, "ipc_bench: %s: %s: %s\n", role, what, nng_strerror(rv));
}

// nng's NNG_OPT_RECVMAXSZ defaults to 1 MiB and counts the 4-byte request id
// that req0/rep0 put before the body: a 1 MiB content would be refused (the
// connection dropped). 0: no limit, as ZeroMQ's default and ipc.hpp's 1 MiB
// round trips need.
bool nng_no_recv_limit(const char* role, nng_socket s) {
    int rv = nng_socket_set_size(s, NNG_OPT_RECVMAXSZ, 0);
    if (rv != 0) nng_fail(role, "nng_socket_set_size(NNG_OPT_RECVMAXSZ)", rv);
    return rv == 0;
}

// rep0: nng_recvmsg, then nng_sendmsg of the same nng_msg (its header holds
// the request's backtrace, which rep0 answers to).
int nng_echo_server(int out, const std::string& url) {
    const char* role = "nng server";
    nng_socket s = NNG_SOCKET_INITIALIZER;
    int rv = nng_rep0_open(&s);
    if (rv != 0) {
        nng_fail(role, "nng_rep0_open", rv);
        return 1;
    }
    if (!nng_no_recv_limit(role, s)) return 1;
    if ((rv = nng_listen(s, url.c_str(), nullptr, 0)) != 0) {
        nng_fail(role, ("nng_listen " + url).c_str(), rv);
        return 1;
    }
    (void)write_str(out, "ready\n");
    for (;;) {
        nng_msg* msg = nullptr;
        if ((rv = nng_recvmsg(s, &msg, 0)) != 0) {
            nng_fail(role, "nng_recvmsg", rv);
            return 1;
        }
        if ((rv = nng_sendmsg(s, msg, 0)) != 0) {
            nng_msg_free(msg);
            nng_fail(role, "nng_sendmsg", rv);
            return 1;
        }
    }
}
#endif

// ===========================================================================
// Client building blocks
// ===========================================================================

// The client's wait: Process::wait_into(Message&), which reuses the
// caller's message, where this ipc.hpp has it; else Process::wait().
template <class P, class = void>
struct has_wait_into : std::false_type {};
template <class P>
struct has_wait_into<P, std::void_t<decltype(std::declval<P&>().wait_into(std::declval<Message&>()))>> : std::true_type {};
constexpr bool kWaitInto = has_wait_into<Process>::value;
constexpr const char* kClientWait = kWaitInto ? "wait_into" : "wait";

template <class P>
auto wait_reply(P& p, Message& into, int) -> decltype(p.wait_into(into)) {
    return p.wait_into(into);
}
template <class P>
Result<Unit> wait_reply(P& p, Message& into, long) {
    auto r = p.wait();
    if (!r) return fail(r.error());
    into = std::move(r).value();
    return Unit{};
}

struct IpcClient {
    IpcClient(Process p, Message m, std::size_t e) : proc(std::move(p)), msg(std::move(m)), expect(e) {}

    Process proc;
    Message msg;
    std::size_t expect;  // size of the expected response content (0: none expected)
    Message reply;

    // One round trip: send (waits for the ack) + wait (the response).
    bool round_trip() {
        auto s = proc.send(msg);
        if (!s) {
            child_error("client", "send", s.error());
            return false;
        }
        if (expect == 0) return true;
        auto r = wait_reply(proc, reply, 0);
        if (!r) {
            child_error("client", "wait", r.error());
            return false;
        }
        if (reply.content().size() != expect) {
            std::fprintf(stderr, "ipc_bench: client: response of %zu bytes, expected %zu\n", reply.content().size(), expect);
            return false;
        }
        return true;
    }
};

struct RawClient {
    int fd = -1;
    const char* out = nullptr;
    std::size_t out_size = 0;
    std::vector<char> in;

    bool round_trip() {
        if (!write_all(fd, out, out_size) || !read_exact(fd, in.data(), in.size())) {
            std::fprintf(stderr, "ipc_bench: raw client: %s\n", errno ? std::strerror(errno) : "end of file");
            return false;
        }
        return true;
    }
};

#if IPC_BENCH_ZMQ
// REQ at its fastest: zero-copy both ways. The request is a zmq_msg_t over
// the payload's own bytes (zmq_msg_init_data, nothing to free), the reply is
// received into a kept zmq_msg_t (zmq_msg_recv) and read in place. The
// copying calls (zmq_send from the payload, zmq_recv into a buffer, the shape
// of ipc.hpp's send + wait_into) measured the same at 16 B and about half as
// much again at 1 MiB (~730 against ~490 us same_cpu, a quick check on a
// 2 vCPU VM), so the peer is measured the way its users would tune it.
struct ZmqClient {
    ZmqSocket z;
    const char* out = nullptr;
    std::size_t out_size = 0;
    zmq_msg_t rx;
    bool rx_live = false;

    ~ZmqClient() {
        if (rx_live) zmq_msg_close(&rx);
    }
    bool open(const std::string& url, const std::string& payload) {
        if (!z.open("zeromq client", ZMQ_REQ)) return false;
        if (zmq_connect(z.sock, url.c_str()) != 0) {  // asynchronous: the first send waits for the connection
            zmq_fail("zeromq client", "zmq_connect", url.c_str());
            return false;
        }
        out = payload.data();
        out_size = payload.size();
        zmq_msg_init(&rx);
        rx_live = true;
        return true;
    }
    bool round_trip() {
        zmq_msg_t tx;
        if (zmq_msg_init_data(&tx, const_cast<char*>(out), out_size, nullptr, nullptr) != 0) {
            zmq_fail("zeromq client", "zmq_msg_init_data");
            return false;
        }
        int s = zmq_msg_send(&tx, z.sock, 0);
        if (s < 0 || static_cast<std::size_t>(s) != out_size) {
            zmq_fail("zeromq client", "zmq_msg_send");
            zmq_msg_close(&tx);
            return false;
        }
        int r = zmq_msg_recv(&rx, z.sock, 0);
        if (r < 0) {
            zmq_fail("zeromq client", "zmq_msg_recv");
            return false;
        }
        if (static_cast<std::size_t>(r) != out_size) {
            std::fprintf(stderr, "ipc_bench: zeromq client: response of %d bytes, expected %zu\n", r, out_size);
            return false;
        }
        return true;
    }
    bool echoed(const std::string& payload) {
        return zmq_msg_size(&rx) == payload.size() && std::memcmp(zmq_msg_data(&rx), payload.data(), payload.size()) == 0;
    }
};
#endif

#if IPC_BENCH_NNG
// req0 with one nng_msg reused: nng_sendmsg hands it over, nng_recvmsg
// gives the reply, which (its header cleared: it holds the request id)
// is the next request. nng_send/nng_recv with fixed buffers would copy the
// content both ways and allocate a message per send: nng_send copies into a
// new nng_msg, nng_recv copies out of the received one and frees it.
struct NngClient {
    nng_socket sock = NNG_SOCKET_INITIALIZER;
    bool opened = false;
    nng_msg* msg = nullptr;
    std::size_t size = 0;

    NngClient() = default;
    NngClient(const NngClient&) = delete;
    NngClient& operator=(const NngClient&) = delete;
    ~NngClient() {
        if (msg != nullptr) nng_msg_free(msg);
        if (opened) nng_close(sock);
    }
    bool open(const std::string& url, const std::string& payload, std::uint64_t deadline_ns) {
        const char* role = "nng client";
        int rv = nng_req0_open(&sock);
        if (rv != 0) {
            nng_fail(role, "nng_req0_open", rv);
            return false;
        }
        opened = true;
        if (!nng_no_recv_limit(role, sock)) return false;
        for (;;) {  // synchronous dial; the server is already listening, retried all the same
            rv = nng_dial(sock, url.c_str(), nullptr, 0);
            if (rv == 0) break;
            if ((rv != NNG_ECONNREFUSED && rv != NNG_ENOENT) || now_ns() >= deadline_ns) {
                nng_fail(role, ("nng_dial " + url).c_str(), rv);
                return false;
            }
            sleep_ms(1);
        }
        size = payload.size();
        if ((rv = nng_msg_alloc(&msg, size)) != 0) {
            nng_fail(role, "nng_msg_alloc", rv);
            return false;
        }
        std::memcpy(nng_msg_body(msg), payload.data(), size);
        return true;
    }
    bool round_trip() {
        nng_msg_header_clear(msg);
        int rv = nng_sendmsg(sock, msg, 0);
        if (rv != 0) {  // the message is still ours
            nng_fail("nng client", "nng_sendmsg", rv);
            return false;
        }
        msg = nullptr;
        if ((rv = nng_recvmsg(sock, &msg, 0)) != 0) {
            nng_fail("nng client", "nng_recvmsg", rv);
            return false;
        }
        if (nng_msg_len(msg) != size) {
            std::fprintf(stderr, "ipc_bench: nng client: response of %zu bytes, expected %zu\n", nng_msg_len(msg), size);
            return false;
        }
        return true;
    }
    bool echoed(const std::string& payload) const { return std::memcmp(nng_msg_body(msg), payload.data(), payload.size()) == 0; }
};
#endif

Result<Process> connect_ipc(const std::string& dir, std::uint64_t deadline_ns) {
    Ipc ipc(config_for(dir));
    std::uint64_t now = now_ns();
    std::int64_t ms = now < deadline_ns ? static_cast<std::int64_t>((deadline_ns - now) / 1000000u) : 0;
    return ipc.wait(server_name(), Milliseconds(ms));
}

Message octet_message(const std::string& payload) {
    return Message::make("application/octet-stream", payload).value();
}

// ===========================================================================
// Measures
// ===========================================================================

struct Context {
    std::vector<int> cpus;  // allowed CPUs
    bool ok = true;         // false once anything broke
    long nofile = 0;
};
Context g_ctx;

double default_deadline() { return g_opt.quick ? 30.0 : 180.0; }

// --- round-trip latency ----------------------------------------------------

struct RtSpec {
    std::string name;
    std::size_t size;
    long iterations;
    long block;
    std::vector<int> server_cpus, client_cpus;
};

// The connections of an rt_* client, by index: ipc.hpp and the raw floor,
// then the peers that were built.
enum RtPeer : int { kRtIpc = 0, kRtRaw = 1, kRtZmq = 2, kRtNng = 3 };

// What an rt_* measure prints for a peer that was not built.
[[maybe_unused]] std::string peer_not_built(const std::string& name, const char* peer, const char* package) {
#if defined(IPC_BENCH_PEERS_DISABLED) && IPC_BENCH_PEERS_DISABLED
    (void)package;
    return fmt("%s_%s skipped=not_built (-Dbench_peers=disabled)\n", name.c_str(), peer);
#else
    return fmt("%s_%s skipped=not_built (%s absent at build time)\n", name.c_str(), peer, package);
#endif
}

bool measure_rt(const RtSpec& spec) {
    Run run(spec.name, default_deadline());
    const std::string dir = run.dir();
    // Every server on the same CPUs (spec.server_cpus).
    run.spawn("server-ipc", spec.server_cpus, [&](int out, int) { return ipc_server(out, dir, IpcServerSpec{}); });
    std::vector<std::pair<std::size_t, const char*>> ready;  // servers that say "ready"
    ready.emplace_back(run.spawn("server-raw", spec.server_cpus,
                                 [&](int out, int) { return raw_server(out, run.raw_path(), spec.size, spec.size); }),
                       "raw");
#if IPC_BENCH_ZMQ
    ready.emplace_back(run.spawn("server-zeromq", spec.server_cpus, [&](int out, int) { return zmq_echo_server(out, run.zmq_url()); }),
                       "zeromq");
#endif
#if IPC_BENCH_NNG
    ready.emplace_back(run.spawn("server-nng", spec.server_cpus, [&](int out, int) { return nng_echo_server(out, run.nng_url()); }),
                       "nng");
#endif
    for (const auto& r : ready) {
        if (!run.wait_text(r.first, "ready")) {
            run.finish();
            std::printf("%s error=%s_server_not_ready\n", spec.name.c_str(), r.second);
            return false;
        }
    }
    const std::uint64_t deadline = run.deadline();
    std::size_t client = run.spawn("client", spec.client_cpus, [&](int out, int) {
        std::string payload = payload_of(spec.size);
        auto proc = connect_ipc(dir, deadline);
        if (!proc) {
            child_error("client", "connect", proc.error());
            return 1;
        }
        IpcClient ic(std::move(proc).value(), octet_message(payload), spec.size);
        RawClient rc;
        rc.fd = raw_connect(run.raw_path(), deadline);
        if (rc.fd < 0) {
            std::fprintf(stderr, "ipc_bench: client: raw connect: %s\n", std::strerror(errno));
            return 1;
        }
        rc.out = payload.data();
        rc.out_size = spec.size;
        rc.in.resize(spec.size);
        std::vector<int> peers = {kRtIpc, kRtRaw};
#if IPC_BENCH_ZMQ
        ZmqClient zc;
        if (!zc.open(run.zmq_url(), payload)) return 1;
        peers.push_back(kRtZmq);
#endif
#if IPC_BENCH_NNG
        NngClient nc;
        if (!nc.open(run.nng_url(), payload, deadline)) return 1;
        peers.push_back(kRtNng);
#endif
        auto round_trip = [&](int peer) -> bool {
            switch (peer) {
                case kRtIpc: return ic.round_trip();
                case kRtRaw: return rc.round_trip();
#if IPC_BENCH_ZMQ
                case kRtZmq: return zc.round_trip();
#endif
#if IPC_BENCH_NNG
                case kRtNng: return nc.round_trip();
#endif
                default: return false;
            }
        };
        const long n = spec.iterations;
        const long block = std::max(1L, std::min(spec.block, n));
        for (long i = 0; i < block; ++i) {  // warm-up, every connection
            for (int peer : peers) {
                if (!round_trip(peer)) return 1;
            }
        }
#if IPC_BENCH_ZMQ
        if (!zc.echoed(payload)) {
            std::fprintf(stderr, "ipc_bench: zeromq client: the response is not the request\n");
            return 1;
        }
#endif
#if IPC_BENCH_NNG
        if (!nc.echoed(payload)) {
            std::fprintf(stderr, "ipc_bench: nng client: the response is not the request\n");
            return 1;
        }
#endif
        // One block of each connection in turn; block k starts with the
        // k-th connection (mod their number), so that noise lands on all.
        const std::size_t np = peers.size();
        std::vector<std::vector<std::uint64_t>> times(np);
        for (auto& t : times) t.reserve(static_cast<std::size_t>(n));
        std::size_t first = 0;
        for (long done = 0; done < n; done += block) {
            long b = std::min(block, n - done);
            for (std::size_t q = 0; q < np; ++q) {
                const std::size_t j = (first + q) % np;
                const int peer = peers[j];
                std::vector<std::uint64_t>& t = times[j];
                for (long i = 0; i < b; ++i) {
                    std::uint64_t t0 = now_ns();
                    if (!round_trip(peer)) return 1;
                    std::uint64_t t1 = now_ns();
                    t.push_back(t1 - t0);
                }
            }
            first = (first + 1) % np;
        }
        Stats si = stats_of(times[kRtIpc]), sr = stats_of(times[kRtRaw]);
        const std::string server_cpu = cpus_label(spec.server_cpus), client_cpu = cpus_label(spec.client_cpus);
        std::string line = fmt("%s ipc_us=%.2f raw_us=%.2f ratio=%.2f ipc_p99_us=%.2f raw_p99_us=%.2f p99_ratio=%.2f "
                               "ipc_mean_us=%.2f raw_mean_us=%.2f iterations=%ld server_cpu=%s client_cpu=%s client_api=send+%s\n",
                               spec.name.c_str(), si.median_us, sr.median_us, si.median_us / sr.median_us, si.p99_us, sr.p99_us,
                               si.p99_us / sr.p99_us, si.mean_us, sr.mean_us, n, server_cpu.c_str(), client_cpu.c_str(), kClientWait);
        // A peer's line: against the same raw floor, and ipc.hpp over the peer.
        [[maybe_unused]] auto peer_line = [&](std::size_t j, const char* peer, const std::string& version_field, const char* api) {
            Stats sp = stats_of(times[j]);
            return fmt("%s_%s peer=%s peer_us=%.2f raw_us=%.2f ratio=%.2f peer_p99_us=%.2f raw_p99_us=%.2f p99_ratio=%.2f "
                       "ipc_over_peer=%.2f ipc_over_peer_p99=%.2f %s peer_mean_us=%.2f iterations=%ld server_cpu=%s client_cpu=%s "
                       "transport=ipc %s\n",
                       spec.name.c_str(), peer, peer, sp.median_us, sr.median_us, sp.median_us / sr.median_us, sp.p99_us, sr.p99_us,
                       sp.p99_us / sr.p99_us, si.median_us / sp.median_us, si.p99_us / sp.p99_us, version_field.c_str(), sp.mean_us, n,
                       server_cpu.c_str(), client_cpu.c_str(), api);
        };
        std::size_t j = kRtRaw + 1;
#if IPC_BENCH_ZMQ
        line += peer_line(j++, "zeromq", "zmq_version=" + zmq_version_label(),
                          "client_api=zmq_msg_send(zero_copy)+zmq_msg_recv server_api=zmq_msg_recv+zmq_msg_send io_threads=1 linger=0");
#else
        line += peer_not_built(spec.name, "zeromq", "libzmq3-dev");
#endif
#if IPC_BENCH_NNG
        line += peer_line(j++, "nng", "nng_version=" + nng_version_label(),
                          "client_api=nng_sendmsg+nng_recvmsg(one_msg_reused) server_api=nng_recvmsg+nng_sendmsg");
#else
        line += peer_not_built(spec.name, "nng", "libnng-dev");
#endif
        (void)j;
        return write_str(out, line) ? 0 : 1;
    });
    run.wait_eof(client);
    bool ok = run.finish();
    if (ok) print_lines(run.kid(client).out);
    else std::printf("%s error=%s\n", spec.name.c_str(), run.timed_out() ? "deadline" : "child_failed");
    return ok;
}

// --- isolated round trips, for callgrind and strace -------------------------

bool measure_isolated(const std::string& name, bool ipc, std::size_t size, long iterations) {
    Run run(name, g_opt.deadline_s > 0 ? g_opt.deadline_s : 600.0);
    const std::string dir = run.dir();
    std::vector<int> cpu0;
    if (!g_ctx.cpus.empty()) cpu0.push_back(g_ctx.cpus[0]);
    if (ipc) {
        run.spawn("server-ipc", cpu0, [&](int out, int) { return ipc_server(out, dir, IpcServerSpec{}); });
    } else {
        std::size_t raw = run.spawn("server-raw", cpu0, [&](int out, int) { return raw_server(out, run.raw_path(), size, size); });
        if (!run.wait_text(raw, "ready")) {
            run.finish();
            std::printf("%s error=raw_server_not_ready\n", name.c_str());
            return false;
        }
    }
    const std::uint64_t deadline = run.deadline();
    std::size_t client = run.spawn("client", cpu0, [&](int out, int) {
        std::string payload = payload_of(size);
        const long warm = 100;
        if (ipc) {
            auto proc = connect_ipc(dir, deadline);
            if (!proc) {
                child_error("client", "connect", proc.error());
                return 1;
            }
            IpcClient ic(std::move(proc).value(), octet_message(payload), size);
            for (long i = 0; i < warm + iterations; ++i) {
                if (!ic.round_trip()) return 1;
            }
        } else {
            RawClient rc;
            rc.fd = raw_connect(run.raw_path(), deadline);
            if (rc.fd < 0) return 1;
            rc.out = payload.data();
            rc.out_size = size;
            rc.in.resize(size);
            for (long i = 0; i < warm + iterations; ++i) {
                if (!rc.round_trip()) return 1;
            }
        }
        return write_str(out, fmt("%s rts=%ld warmup=%ld\n", name.c_str(), iterations, warm)) ? 0 : 1;
    });
    run.wait_eof(client);
    bool ok = run.finish();
    if (ok) print_lines(run.kid(client).out);
    else std::printf("%s error=%s\n", name.c_str(), run.timed_out() ? "deadline" : "child_failed");
    return ok;
}

// --- throughput ---------------------------------------------------------------

bool measure_throughput(bool same_cpu) {
    const std::string name = same_cpu ? "throughput_1MiB_same_cpu" : "throughput_1MiB";
    const std::size_t msg = MiB;
    const std::size_t total = g_opt.quick ? 32 * MiB : 1024 * MiB;
    const long count = static_cast<long>(total / msg);
    const long block = g_opt.quick ? 8 : 32;
    std::vector<int> server_cpus, client_cpus;
    if (same_cpu && !g_ctx.cpus.empty()) {
        server_cpus = client_cpus = {g_ctx.cpus[0]};
    } else if (g_ctx.cpus.size() >= 2) {
        server_cpus = {g_ctx.cpus[0]};
        client_cpus = {g_ctx.cpus[1]};
    }
    Run run(name, default_deadline());
    const std::string dir = run.dir();
    IpcServerSpec sspec;
    sspec.reply = Reply::small;
    run.spawn("server-ipc", server_cpus, [&](int out, int) { return ipc_server(out, dir, sspec); });
    std::size_t raw = run.spawn("server-raw", server_cpus, [&](int out, int) { return raw_server(out, run.raw_path(), msg, 16); });
    if (!run.wait_text(raw, "ready")) {
        run.finish();
        std::printf("%s error=raw_server_not_ready\n", name.c_str());
        return false;
    }
    const std::uint64_t deadline = run.deadline();
    std::size_t client = run.spawn("client", client_cpus, [&](int out, int) {
        std::string payload = payload_of(msg);
        auto proc = connect_ipc(dir, deadline);
        if (!proc) {
            child_error("client", "connect", proc.error());
            return 1;
        }
        IpcClient ic(std::move(proc).value(), octet_message(payload), 2);  // the reply is "ok"
        RawClient rc;
        rc.fd = raw_connect(run.raw_path(), deadline);
        if (rc.fd < 0) return 1;
        rc.out = payload.data();
        rc.out_size = msg;
        rc.in.resize(16);
        for (int i = 0; i < 4; ++i) {
            if (!ic.round_trip() || !rc.round_trip()) return 1;
        }
        std::uint64_t ns_ipc = 0, ns_raw = 0;
        bool ipc_first = true;
        for (long done = 0; done < count; done += block) {
            long b = std::min(block, count - done);
            for (int half = 0; half < 2; ++half) {
                bool ipc = (half == 0) == ipc_first;
                std::uint64_t t0 = now_ns();
                for (long i = 0; i < b; ++i) {
                    if (!(ipc ? ic.round_trip() : rc.round_trip())) return 1;
                }
                (ipc ? ns_ipc : ns_raw) += now_ns() - t0;
            }
            ipc_first = !ipc_first;
        }
        double bytes = static_cast<double>(count) * static_cast<double>(msg);
        double gi = bytes / static_cast<double>(ns_ipc), gr = bytes / static_cast<double>(ns_raw);  // bytes/ns = GB/s
        return write_str(out, fmt("%s ipc_GBps=%.3f raw_GBps=%.3f ratio=%.2f bytes_each=%.0f messages_each=%ld "
                                  "server_cpu=%s client_cpu=%s\n",
                                  name.c_str(), gi, gr, gi / gr, bytes, count, cpus_label(server_cpus).c_str(),
                                  cpus_label(client_cpus).c_str()))
                   ? 0
                   : 1;
    });
    run.wait_eof(client);
    bool ok = run.finish();
    if (ok) print_lines(run.kid(client).out);
    else std::printf("%s error=%s\n", name.c_str(), run.timed_out() ? "deadline" : "child_failed");
    return ok;
}

// --- many clients -------------------------------------------------------------

enum Phase : int { kIdle = 0, kIpc = 1, kRaw = 2, kQuit = 3 };

// Phases are switched through futexes, not a mutex and a condition
// variable: waking 1000 threads that must each re-acquire one mutex makes a
// lock convoy that eats a random share of a phase.
static_assert(sizeof(std::atomic<int>) == sizeof(int), "futex on std::atomic<int>");
void futex_wait(std::atomic<int>& word, int expected) noexcept {
    ::syscall(SYS_futex, reinterpret_cast<int*>(&word), FUTEX_WAIT_PRIVATE, expected, nullptr, nullptr, 0);
}
void futex_wake_all(std::atomic<int>& word) noexcept {
    ::syscall(SYS_futex, reinterpret_cast<int*>(&word), FUTEX_WAKE_PRIVATE, 0x7FFFFFFF, nullptr, nullptr, 0);
}

struct ClientsShared {
    std::atomic<int> gen{0};     // bumped to start a phase
    std::atomic<int> phase{kIdle};
    std::atomic<int> live{kIdle};  // the running phase; kIdle = stop
    std::atomic<int> parked{0};
    int total = 0;
};

struct alignas(64) ClientThread {
    ClientsShared* sh = nullptr;
    IpcClient* ipc = nullptr;
    RawClient* raw = nullptr;
    std::atomic<std::uint64_t> ipc_count{0};
    std::atomic<std::uint64_t> raw_count{0};
    std::atomic<bool> failed{false};
    pthread_t tid{};
};

void* client_thread(void* arg) {
    auto* t = static_cast<ClientThread*>(arg);
    ClientsShared& sh = *t->sh;
    int seen = 0;
    for (;;) {
        sh.parked.fetch_add(1);
        for (;;) {
            int g = sh.gen.load(std::memory_order_acquire);
            if (g != seen) {
                seen = g;
                break;
            }
            futex_wait(sh.gen, g);
        }
        const int ph = sh.phase.load(std::memory_order_acquire);
        if (ph == kQuit) return nullptr;
        while (!t->failed.load(std::memory_order_relaxed) && sh.live.load(std::memory_order_relaxed) == ph) {
            bool done = ph == kIpc ? t->ipc->round_trip() : t->raw->round_trip();
            if (!done) {
                t->failed.store(true);
                break;
            }
            if (sh.live.load(std::memory_order_relaxed) == ph) (ph == kIpc ? t->ipc_count : t->raw_count).fetch_add(1, std::memory_order_relaxed);
        }
    }
}

bool measure_clients(int nclients) {
    const std::string name = fmt("clients_%d", nclients);
    const std::size_t size = 16;
    const long need_fds = 2L * nclients + 64;
    if (g_ctx.nofile < need_fds) {
        std::printf("%s skipped=RLIMIT_NOFILE_too_low nofile=%ld need=%ld\n", name.c_str(), g_ctx.nofile, need_fds);
        return true;
    }
    std::vector<int> server_cpus, client_cpus;
    if (g_ctx.cpus.size() >= 2) {
        server_cpus = {g_ctx.cpus[0]};
        client_cpus.assign(g_ctx.cpus.begin() + 1, g_ctx.cpus.end());
    }
    const long phase_ms = g_opt.quick ? 50 : 100;
    const int rounds = g_opt.quick ? 4 : 15;
    Run run(name, default_deadline());
    const std::string dir = run.dir();
    run.spawn("server-ipc", server_cpus, [&](int out, int) { return ipc_server(out, dir, IpcServerSpec{}); });
    std::size_t raw = run.spawn("server-raw", server_cpus, [&](int out, int) { return raw_poll_server(out, run.raw_path(), size); });
    if (!run.wait_text(raw, "ready")) {
        run.finish();
        std::printf("%s error=raw_server_not_ready\n", name.c_str());
        return false;
    }
    const std::uint64_t deadline = run.deadline();
    std::size_t client = run.spawn("client", client_cpus, [&](int out, int) {
        std::string payload = payload_of(size);
        std::vector<std::unique_ptr<IpcClient>> ics;
        std::vector<std::unique_ptr<RawClient>> rcs;
        for (int i = 0; i < nclients; ++i) {
            auto proc = connect_ipc(dir, deadline);
            if (!proc) {
                child_error("client", fmt("connect #%d", i).c_str(), proc.error());
                return 1;
            }
            ics.emplace_back(new IpcClient(std::move(proc).value(), octet_message(payload), size));
            auto rc = std::unique_ptr<RawClient>(new RawClient);
            rc->fd = raw_connect(run.raw_path(), deadline);
            if (rc->fd < 0) {
                std::fprintf(stderr, "ipc_bench: client: raw connect #%d: %s\n", i, std::strerror(errno));
                return 1;
            }
            rc->out = payload.data();
            rc->out_size = size;
            rc->in.resize(size);
            rcs.push_back(std::move(rc));
            if (!ics.back()->round_trip() || !rcs.back()->round_trip()) return 1;  // warm-up
        }
        ClientsShared sh;
        sh.total = nclients;
        std::unique_ptr<ClientThread[]> ts(new ClientThread[static_cast<std::size_t>(nclients)]);
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setstacksize(&attr, 256 * KiB);
        for (int i = 0; i < nclients; ++i) {
            ClientThread& t = ts[static_cast<std::size_t>(i)];
            t.sh = &sh;
            t.ipc = ics[static_cast<std::size_t>(i)].get();
            t.raw = rcs[static_cast<std::size_t>(i)].get();
            int e = pthread_create(&t.tid, &attr, &client_thread, &t);
            if (e != 0) {
                std::fprintf(stderr, "ipc_bench: client: pthread_create #%d: %s\n", i, std::strerror(e));
                std::fflush(stderr);
                ::_exit(1);
            }
        }
        pthread_attr_destroy(&attr);
        auto wait_parked = [&] {
            while (sh.parked.load() != sh.total) sleep_ms(1);
        };
        auto start = [&](int ph) {
            sh.parked.store(0);
            sh.phase.store(ph);
            sh.live.store(ph);
            sh.gen.fetch_add(1, std::memory_order_release);
            futex_wake_all(sh.gen);
        };
        auto sum = [&](bool ipc) {
            std::uint64_t s = 0;
            for (int i = 0; i < nclients; ++i) s += (ipc ? ts[static_cast<std::size_t>(i)].ipc_count : ts[static_cast<std::size_t>(i)].raw_count).load();
            return s;
        };
        wait_parked();
        std::uint64_t ns_ipc = 0, ns_raw = 0;
        std::vector<double> round_ratios;
        bool ipc_first = true;
        for (int r = 0; r < rounds; ++r) {
            double rate[2] = {0, 0};
            for (int half = 0; half < 2; ++half) {
                int ph = ((half == 0) == ipc_first) ? kIpc : kRaw;
                std::uint64_t before = sum(ph == kIpc);
                std::uint64_t t0 = now_ns();
                start(ph);
                sleep_ms(phase_ms);
                std::uint64_t t1 = now_ns();
                sh.live.store(kIdle);
                wait_parked();
                (ph == kIpc ? ns_ipc : ns_raw) += t1 - t0;
                rate[ph == kIpc ? 0 : 1] = static_cast<double>(sum(ph == kIpc) - before) / static_cast<double>(t1 - t0);
            }
            if (rate[1] > 0) round_ratios.push_back(rate[0] / rate[1]);
            ipc_first = !ipc_first;
        }
        std::sort(round_ratios.begin(), round_ratios.end());
        double median_ratio = round_ratios.empty() ? 0.0 : round_ratios[round_ratios.size() / 2];
        start(kQuit);
        bool failed = false;
        for (int i = 0; i < nclients; ++i) {
            pthread_join(ts[static_cast<std::size_t>(i)].tid, nullptr);
            failed = failed || ts[static_cast<std::size_t>(i)].failed.load();
        }
        if (failed) return 1;
        double ri = static_cast<double>(sum(true)) / (static_cast<double>(ns_ipc) / 1e9);
        double rr = static_cast<double>(sum(false)) / (static_cast<double>(ns_raw) / 1e9);
        for (auto& rc : rcs) ::close(rc->fd);
        return write_str(out, fmt("%s ipc_rt_per_s=%.0f raw_rt_per_s=%.0f ratio=%.2f ratio_of_totals=%.2f clients=%d payload=%zuB "
                                  "rounds=%d phase_ms=%ld server_cpu=%s client_cpus=%s\n",
                                  name.c_str(), ri, rr, median_ratio, ri / rr, nclients, size, rounds, phase_ms,
                                  cpus_label(server_cpus).c_str(), cpus_label(client_cpus).c_str()))
                   ? 0
                   : 1;
    });
    run.wait_eof(client);
    bool ok = run.finish();
    if (ok) print_lines(run.kid(client).out);
    else std::printf("%s error=%s\n", name.c_str(), run.timed_out() ? "deadline" : "child_failed");
    return ok;
}

// --- heap allocations per round trip -------------------------------------------

bool measure_allocs(std::size_t size) {
    const std::string name = "allocs_per_rt_" + size_label(size);
    const long warm = 200;
    const long k = g_opt.iterations > 0 ? g_opt.iterations
                                        : (g_opt.quick ? 1000 : 10000) / (size >= 64 * KiB ? (g_opt.quick ? 10 : 5) : 1);
    std::vector<int> cpu0;
    if (!g_ctx.cpus.empty()) cpu0.push_back(g_ctx.cpus[0]);
    Run run(name, default_deadline());
    const std::string dir = run.dir();
    IpcServerSpec sspec;
    sspec.count_from = static_cast<std::uint64_t>(warm) + 1;
    sspec.count_to = static_cast<std::uint64_t>(warm + k) + 1;
    std::size_t server = run.spawn("server-ipc", cpu0, [&](int out, int) { return ipc_server(out, dir, sspec); });
    const std::uint64_t deadline = run.deadline();
    std::size_t client = run.spawn("client", cpu0, [&](int out, int) {
        std::string payload = payload_of(size);
        auto proc = connect_ipc(dir, deadline);
        if (!proc) {
            child_error("client", "connect", proc.error());
            return 1;
        }
        IpcClient ic(std::move(proc).value(), octet_message(payload), size);
        for (long i = 0; i < warm; ++i) {
            if (!ic.round_trip()) return 1;
        }
        counters::Snapshot a0 = counters::Snapshot::take();
        for (long i = 0; i < k; ++i) {
            if (!ic.round_trip()) return 1;
        }
        counters::Snapshot a1 = counters::Snapshot::take();
        if (!ic.round_trip()) return 1;  // closes the server's window
        return write_str(out, fmt("client_counts news=%" PRIu64 " mallocs=%" PRIu64 " reallocs=%" PRIu64 "\n", a1.news - a0.news,
                                  a1.mallocs - a0.mallocs, a1.reallocs - a0.reallocs))
                   ? 0
                   : 1;
    });
    run.wait_eof(client);
    if (run.kid(client).out.find("client_counts") != std::string::npos) run.wait_text(server, "\n");
    bool ok = run.finish();
    std::uint64_t sn = 0, sm = 0, sr = 0, cn = 0, cm = 0, cr = 0;
    const std::string& so = run.kid(server).out;
    const std::string& co = run.kid(client).out;
    if (!ok || std::sscanf(so.c_str(), "server_counts news=%" SCNu64 " mallocs=%" SCNu64 " reallocs=%" SCNu64, &sn, &sm, &sr) != 3 ||
        std::sscanf(co.c_str(), "client_counts news=%" SCNu64 " mallocs=%" SCNu64 " reallocs=%" SCNu64, &cn, &cm, &cr) != 3) {
        std::printf("%s error=%s\n", name.c_str(), run.timed_out() ? "deadline" : "child_failed");
        return false;
    }
    const double kd = static_cast<double>(k);
    auto per = [&](std::uint64_t v) { return static_cast<double>(v) / kd; };
    std::printf("%s server=%.2f client=%.2f server_new=%.2f server_malloc=%.2f server_realloc=%.2f client_new=%.2f "
                "client_malloc=%.2f client_realloc=%.2f rts=%ld client_api=send+%s malloc_counted=%d\n",
                name.c_str(), per(sn + sm + sr), per(cn + cm + cr), per(sn), per(sm), per(sr), per(cn), per(cm), per(cr), k,
                kClientWait, IPC_BENCH_COUNT_MALLOC);
    std::fflush(stdout);
    return true;
}

// --- syscalls per round trip ---------------------------------------------------

struct SyscallCounts {
    bool ok = false;
    std::vector<std::pair<std::string, double>> calls;  // per syscall name
    double total = 0;
};

SyscallCounts strace_run(const std::string& mode, long n, const std::string& file) {
    SyscallCounts sc;
    double inner_deadline = g_opt.quick ? 40.0 : 120.0;
    Run run("strace " + mode, inner_deadline + 20.0);
    std::string iters = std::to_string(n), dl = fmt("%.0f", inner_deadline);
    std::size_t k = run.spawn("strace", {}, [&](int out, int) {
        ::dup2(out, 1);
        ::dup2(out, 2);
        const char* argv[] = {"strace", "-f", "-c", "-o", file.c_str(), g_opt.self.c_str(), "--only", mode.c_str(),
                              "--iterations", iters.c_str(), "--deadline", dl.c_str(), nullptr};
        ::execvp("strace", const_cast<char* const*>(argv));
        std::fprintf(stderr, "exec strace: %s\n", std::strerror(errno));
        return 127;
    });
    run.wait_eof(k);
    bool ok = run.finish();
    const std::string& o = run.kid(k).out;
    if (!ok || o.find(" rts=") == std::string::npos) {
        std::fprintf(stderr, "ipc_bench: strace run of %s failed:\n%s\n", mode.c_str(), o.c_str());
        return sc;
    }
    FILE* f = std::fopen(file.c_str(), "r");
    if (f == nullptr) return sc;
    char line[512];
    while (std::fgets(line, sizeof line, f) != nullptr) {
        // % time  seconds  usecs/call  calls  [errors]  syscall
        std::vector<std::string> tok;
        char* save = nullptr;
        for (char* t = strtok_r(line, " \t\n", &save); t != nullptr; t = strtok_r(nullptr, " \t\n", &save)) tok.emplace_back(t);
        if (tok.size() < 5 || tok[0][0] == '%' || tok[0][0] == '-') continue;
        const std::string& nm = tok.back();
        if (nm == "total") continue;
        char* end = nullptr;
        double calls = std::strtod(tok[3].c_str(), &end);
        if (end == tok[3].c_str()) continue;
        sc.calls.emplace_back(nm, calls);
        sc.total += calls;
    }
    std::fclose(f);
    ::unlink(file.c_str());
    sc.ok = true;
    return sc;
}

bool measure_syscalls() {
    if (!find_in_path("strace")) {
        std::printf("syscalls_per_rt=n/a (strace not installed)\n");
        std::fflush(stdout);
        return true;
    }
    const long n1 = g_opt.iterations > 0 ? g_opt.iterations : (g_opt.quick ? 200 : 2000);
    const long n2 = 2 * n1;
    char tmpl[] = "/tmp/ipc-bench-strace-XXXXXX";
    int fd = ::mkstemp(tmpl);
    if (fd < 0) return false;
    ::close(fd);
    std::string file = tmpl;
    struct Side {
        const char* mode;
        double per_rt;
        std::vector<std::pair<std::string, double>> detail;
        bool ok;
    } sides[2] = {{"ipc_rt_16B", 0.0, {}, false}, {"raw_rt_16B", 0.0, {}, false}};
    for (auto& s : sides) {
        SyscallCounts a = strace_run(s.mode, n1, file);
        SyscallCounts b = strace_run(s.mode, n2, file);
        if (!a.ok || !b.ok) continue;
        s.ok = true;
        const double dn = static_cast<double>(n2 - n1);
        s.per_rt = (b.total - a.total) / dn;
        for (auto& c : b.calls) {
            double before = 0;
            for (auto& d : a.calls) {
                if (d.first == c.first) before = d.second;
            }
            double per = (c.second - before) / dn;
            if (per >= 0.005 || per <= -0.005) s.detail.emplace_back(c.first, per);
        }
    }
    ::unlink(file.c_str());
    if (!sides[0].ok || !sides[1].ok) {
        std::printf("syscalls_per_rt error=strace_failed\n");
        return false;
    }
    std::printf("syscalls_per_rt=%.2f raw_syscalls_per_rt=%.2f ratio=%.2f payload=16B server+client method=strace_-f_-c_diff_of_%ld_and_%ld_rts\n",
                sides[0].per_rt, sides[1].per_rt, sides[0].per_rt / sides[1].per_rt, n1, n2);
    for (auto& s : sides) {
        std::string l = fmt("syscalls_detail_%s", s.mode[0] == 'i' ? "ipc" : "raw");
        for (auto& d : s.detail) l += fmt(" %s=%.2f", d.first.c_str(), d.second);
        std::printf("%s\n", l.c_str());
    }
    std::fflush(stdout);
    return true;
}

// --- idle memory per connection ------------------------------------------------

bool measure_idle_memory() {
    const std::string name = "idle_memory";
    const int conns = g_opt.quick ? 100 : 1000;
    const std::size_t size = 64 * KiB;
    if (g_ctx.nofile < conns + 64) {
        std::printf("idle_bytes_per_conn=n/a (RLIMIT_NOFILE %ld < %d)\n", g_ctx.nofile, conns + 64);
        return true;
    }
    Run run(name, default_deadline());
    const std::string dir = run.dir();
    IpcServerSpec sspec;
    sspec.reply = Reply::none;
    sspec.live_on_usr1 = true;
    std::size_t server = run.spawn("server-ipc", {}, [&](int out, int) { return ipc_server(out, dir, sspec); });
    const std::uint64_t deadline = run.deadline();
    std::size_t client = run.spawn(
        "client", {},
        [&](int out, int ctl) {
            Message big = octet_message(payload_of(size));
            {
                auto first = connect_ipc(dir, deadline);
                if (!first) {
                    child_error("client", "connect", first.error());
                    return 1;
                }
                if (!first->send(big)) return 1;
                (void)first->close();
            }
            char c;
            if (!write_str(out, "ready0\n") || !read_exact(ctl, &c, 1)) return 1;
            Ipc ipc(config_for(dir));
            std::vector<Process> ps;
            ps.reserve(static_cast<std::size_t>(conns));
            for (int i = 0; i < conns; ++i) {
                auto p = ipc.get(server_name(), Milliseconds(10000));
                if (!p) {
                    child_error("client", fmt("connect #%d", i).c_str(), p.error());
                    return 1;
                }
                auto s = p->send(big);
                if (!s) {
                    child_error("client", "send", s.error());
                    return 1;
                }
                ps.push_back(std::move(p).value());
            }
            if (!write_str(out, "burst\n") || !read_exact(ctl, &c, 1)) return 1;
            ps.clear();
            if (!write_str(out, "closed\n") || !read_exact(ctl, &c, 1)) return 1;
            return 0;
        },
        true);
    pid_t spid = run.kid(server).pid;
    std::size_t asked = 0;
    auto live = [&]() -> long long {
        ::kill(spid, SIGUSR1);
        asked += sizeof(long long);
        if (!run.wait_bytes(server, asked)) return -1;
        long long v;
        std::memcpy(&v, run.kid(server).out.data() + asked - sizeof v, sizeof v);
        return v;
    };
    bool ok = run.wait_text(client, "ready0");
    Rss r0, r1b, r1, r2;
    long long l0 = 0, l1 = 0, l2 = 0;
    if (ok) {
        sleep_ms(100);
        r0 = read_rss(spid);
        l0 = live();
        ok = run.tell(client, 'g') && run.wait_text(client, "burst");
    }
    if (ok) {
        // Right after the burst, then once the connections have been idle
        // for longer than a heartbeat period (1 s by default), so that a
        // server that reclaims buffers from idle connections is credited.
        sleep_ms(200);
        r1b = read_rss(spid);
        sleep_ms(1300);
        r1 = read_rss(spid);
        l1 = live();
        ok = run.tell(client, 'g') && run.wait_text(client, "closed");
    }
    if (ok) {
        sleep_ms(200);
        r2 = read_rss(spid);
        l2 = live();
        ok = run.tell(client, 'g') && run.wait_eof(client);
    }
    ok = run.finish() && ok;
    if (!ok || r0.vm_rss_kib < 0 || r1.vm_rss_kib < 0) {
        std::printf("idle_bytes_per_conn=n/a error=%s\n", run.timed_out() ? "deadline" : "child_failed");
        return false;
    }
    const double c = static_cast<double>(conns);
    std::printf("idle_bytes_per_conn=%.0f conns=%d message=%zuB rss0_kib=%ld rss_burst_kib=%ld rss_idle_kib=%ld "
                "rss_after_close_kib=%ld rss_anon_per_conn=%.0f heap_live_per_conn=%.0f heap_live0=%lld heap_live_idle=%lld "
                "heap_live_after_close=%lld\n",
                static_cast<double>(r1.vm_rss_kib - r0.vm_rss_kib) * 1024.0 / c, conns, size, r0.vm_rss_kib, r1b.vm_rss_kib,
                r1.vm_rss_kib, r2.vm_rss_kib, static_cast<double>(r1.rss_anon_kib - r0.rss_anon_kib) * 1024.0 / c,
                static_cast<double>(l1 - l0) / c, l0, l1, l2);
    std::printf("# idle_bytes_per_conn = (server VmRSS with %d connections idle for 1.5 s - VmRSS with 0) / %d: user-space\n"
                "# pages of the server process only (per-connection heap buffers, the connection table, malloc's retained\n"
                "# free memory and fragmentation), at 4 KiB page granularity. Kernel memory (socket buffers, struct\n"
                "# sock/file) is not included. rss_burst_kib: 0.2 s after the burst. heap_live_per_conn = live malloc\n"
                "# bytes (malloc_usable_size, chunk headers excluded) per connection, from the counting allocator.\n",
                conns, conns);
    std::fflush(stdout);
    return true;
}

// ===========================================================================
// Catalogue and main
// ===========================================================================

struct Measure {
    std::string name;
    bool in_default;  // part of a plain run (quick or full)
    std::function<bool()> run;
};

std::vector<Measure> catalogue() {
    std::vector<Measure> m;
    const std::size_t sizes[] = {16, KiB, 64 * KiB, MiB};
    const bool two = g_ctx.cpus.size() >= 2;
    for (int placement = 0; placement < 2; ++placement) {
        for (std::size_t size : sizes) {
            long iters, block;
            switch (size) {
                case 16: iters = g_opt.quick ? 1000 : 20000; block = g_opt.quick ? 50 : 250; break;
                case KiB: iters = g_opt.quick ? 1000 : 20000; block = g_opt.quick ? 50 : 250; break;
                case 64 * KiB: iters = g_opt.quick ? 100 : 5000; block = g_opt.quick ? 10 : 50; break;
                default: iters = g_opt.quick ? 20 : 500; block = g_opt.quick ? 5 : 10; break;
            }
            if (g_opt.iterations > 0) iters = g_opt.iterations;
            RtSpec spec;
            spec.name = "rt_" + size_label(size) + (placement == 0 ? "_same_cpu" : "_two_cpus");
            spec.size = size;
            spec.iterations = iters;
            spec.block = block;
            if (placement == 0) {
                if (!g_ctx.cpus.empty()) spec.server_cpus = spec.client_cpus = {g_ctx.cpus[0]};
            } else if (two) {
                spec.server_cpus = {g_ctx.cpus[0]};
                spec.client_cpus = {g_ctx.cpus[1]};
            }
            if (placement == 1 && !two) {
                std::string nm = spec.name;
                m.push_back({nm, true, [nm] {
                                 std::printf("%s skipped=only_one_cpu_available\n", nm.c_str());
                                 return true;
                             }});
            } else {
                m.push_back({spec.name, true, [spec] { return measure_rt(spec); }});
            }
        }
    }
    m.push_back({"throughput_1MiB", true, [] { return measure_throughput(false); }});
    m.push_back({"throughput_1MiB_same_cpu", !g_opt.quick, [] { return measure_throughput(true); }});
    for (int c : {1, 10, 100, 1000}) {
        m.push_back({fmt("clients_%d", c), !(g_opt.quick && c > 100), [c] { return measure_clients(c); }});
    }
    for (std::size_t s : {std::size_t{16}, KiB, 64 * KiB}) {
        m.push_back({"allocs_per_rt_" + size_label(s), true, [s] { return measure_allocs(s); }});
    }
    m.push_back({"syscalls_per_rt", true, [] { return measure_syscalls(); }});
    m.push_back({"idle_memory", true, [] { return measure_idle_memory(); }});
    const long iso = g_opt.iterations > 0 ? g_opt.iterations : 1000;
    m.push_back({"ipc_rt_16B", false, [iso] { return measure_isolated("ipc_rt_16B", true, 16, iso); }});
    m.push_back({"raw_rt_16B", false, [iso] { return measure_isolated("raw_rt_16B", false, 16, iso); }});
    const long iso_large = g_opt.iterations > 0 ? g_opt.iterations : 100;
    m.push_back({"ipc_rt_1MiB", false, [iso_large] { return measure_isolated("ipc_rt_1MiB", true, MiB, iso_large); }});
    m.push_back({"raw_rt_1MiB", false, [iso_large] { return measure_isolated("raw_rt_1MiB", false, MiB, iso_large); }});
    return m;
}

void usage(FILE* f) {
    std::fprintf(f,
                 "usage: ipc_bench [--quick] [--iterations N] [--only NAME] [--deadline SECONDS] [--verbose] [--help]\n"
                 "\n"
                 "Benchmarks ipc.hpp against a raw AF_UNIX floor measured in the same run, in forked server and\n"
                 "client processes, alternating blocks of ipc.hpp and raw iterations. One line per measure:\n"
                 "NAME key=value ...; lines starting with '#' are comments. The rt_* measures also time ZeroMQ\n"
                 "and nng as peers where this binary was built with them (meson -Dbench_peers, auto: when\n"
                 "libzmq3-dev and libnng-dev are found; the '# peers:' comment says which).\n"
                 "\n"
                 "  --quick           a few seconds in all (CI): fewer iterations, 32 MiB of throughput, at most\n"
                 "                    100 clients, 100 idle connections\n"
                 "  --iterations N    round trips per side for the rt_* measures, K for allocs_per_rt_*, the\n"
                 "                    round trips of ipc_rt_16B/raw_rt_16B, N and 2N for syscalls_per_rt\n"
                 "  --only NAME       run one measure (names below)\n"
                 "  --deadline S      kill a measure's children after S seconds (default 30 quick, 180 full)\n"
                 "  --verbose         print each child's role, pid and CPUs on stderr\n"
                 "\n"
                 "Measures:\n"
                 "  rt_{16B,1KiB,64KiB,1MiB}_{same_cpu,two_cpus}\n"
                 "      round trip: client send() (which waits for the protocol's ack) + wait_into() (wait() when\n"
                 "      this ipc.hpp has no wait_into; see client_api=) for the message the reducer echoes with\n"
                 "      k.respond(carry, m) (application/octet-stream); raw: write N bytes, read N bytes back.\n"
                 "      Median and p99 in microseconds, ratio = ipc/raw. same_cpu pins server and client to the\n"
                 "      first CPU; two_cpus pins the server to the first and the client to the second.\n"
                 "      Peers, one line each after the measure's: NAME_zeromq (REQ/REP, one I/O thread, linger 0;\n"
                 "      zero-copy zmq_msg_send + zmq_msg_recv) and NAME_nng (req0/rep0; nng_sendmsg + nng_recvmsg of\n"
                 "      one reused nng_msg), both over ipc:// in the measure's directory, against echo servers\n"
                 "      (the received message sent back) in their own processes, pinned like the others. The one\n"
                 "      client process runs a block of each of the four connections in turn, the order rotating\n"
                 "      each block. peer_us, peer_p99_us: the peer's median and p99; ratio = peer/raw (the raw\n"
                 "      median of the ipc.hpp line); ipc_over_peer = ipc median/peer median (below 1: ipc.hpp\n"
                 "      is faster). A peer not built: NAME_zeromq skipped=not_built (...).\n"
                 "  throughput_1MiB, throughput_1MiB_same_cpu (not with --quick)\n"
                 "      1 GiB (32 MiB with --quick) in 1 MiB messages, the server answering a small message;\n"
                 "      GB/s (1e9 bytes/s) of payload, ratio = ipc/raw (higher is better). Server on the first\n"
                 "      CPU, client on the second (same_cpu: both on the first).\n"
                 "  clients_{1,10,100,1000}\n"
                 "      total 16-byte round trips per second with that many concurrent clients (threads of one\n"
                 "      process, one ipc.hpp and one raw connection each; 1000 needs 2064 fds, RLIMIT_NOFILE's\n"
                 "      soft limit is raised to the hard one), raw floor = a poll() server; ratio = ipc/raw.\n"
                 "      Servers on the first CPU, clients on the others. Rounds of one ipc phase and one raw\n"
                 "      phase; ratio = median over rounds of ipc/raw, ratio_of_totals = total ipc/total raw.\n"
                 "  allocs_per_rt_{16B,1KiB,64KiB}\n"
                 "      heap allocations per steady-state round trip (echo, as in rt_*) in the server and in the\n"
                 "      client process, over K round trips after 200 of warm-up (K = 10000, 1000 with --quick;\n"
                 "      a fifth, a tenth with --quick, for 64KiB): operator new + malloc/calloc + realloc calls;\n"
                 "      the breakdown is in the other fields. Same client and reducer as rt_*.\n"
                 "  syscalls_per_rt\n"
                 "      syscalls per 16-byte round trip, server + client, from strace -f -c over --only ipc_rt_16B\n"
                 "      (and raw_rt_16B) runs of N and 2N round trips: (calls(2N) - calls(N)) / N.\n"
                 "  idle_memory\n"
                 "      server RSS growth per idle connection after 1000 connections (100 with --quick) each\n"
                 "      sent one 64 KiB message: (VmRSS idle 1.5 s - VmRSS with 0 connections) / 1000. Only the\n"
                 "      server process's user-space pages: kernel socket memory is not included.\n"
                 "  ipc_rt_16B, raw_rt_16B, ipc_rt_1MiB, raw_rt_1MiB (only with --only)\n"
                 "      warm-up + N untimed round trips of that size (N = 1000, 100 for 1MiB, unless\n"
                 "      --iterations), both processes on the first CPU: for valgrind --tool=callgrind\n"
                 "      --trace-children=yes (bench/callgrind.sh) and strace.\n"
                 "\n"
                 "Exit status: 0 when every measure ran (no thresholds), 1 when something broke, 2 on bad usage.\n");
}

}  // namespace

int main(int argc, char** argv) {
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        auto need = [&](const char* what) -> const char* {
            if (i + 1 >= argc) {
                std::fprintf(stderr, "ipc_bench: %s needs %s\n", a.c_str(), what);
                std::exit(2);
            }
            return argv[++i];
        };
        if (a == "--help" || a == "-h") {
            usage(stdout);
            return 0;
        } else if (a == "--quick") {
            g_opt.quick = true;
        } else if (a == "--verbose" || a == "-v") {
            g_opt.verbose = true;
        } else if (a == "--iterations") {
            const char* v = need("a number");
            char* end = nullptr;
            g_opt.iterations = std::strtol(v, &end, 10);
            if (end == v || *end != '\0' || g_opt.iterations <= 0) {
                std::fprintf(stderr, "ipc_bench: --iterations needs a positive number\n");
                return 2;
            }
        } else if (a == "--only") {
            g_opt.only = need("a measure name");
        } else if (a == "--deadline") {
            const char* v = need("seconds");
            g_opt.deadline_s = std::strtod(v, nullptr);
            if (g_opt.deadline_s <= 0) {
                std::fprintf(stderr, "ipc_bench: --deadline needs a positive number of seconds\n");
                return 2;
            }
        } else {
            std::fprintf(stderr, "ipc_bench: unknown argument %s\n", a.c_str());
            usage(stderr);
            return 2;
        }
    }
    {
        char buf[4096];
        ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
        if (n > 0) {
            buf[n] = '\0';
            g_opt.self = buf;
        }
    }
    ::signal(SIGPIPE, SIG_IGN);
    struct sigaction sa {};
    sa.sa_handler = &on_parent_signal;
    sigemptyset(&sa.sa_mask);
    ::sigaction(SIGINT, &sa, nullptr);
    ::sigaction(SIGTERM, &sa, nullptr);
    ::sigaction(SIGHUP, &sa, nullptr);

    g_ctx.cpus = allowed_cpus();
    g_ctx.nofile = raise_nofile();

    std::vector<Measure> all = catalogue();
    std::vector<Measure*> chosen;
    for (auto& m : all) {
        if (g_opt.only.empty() ? m.in_default : m.name == g_opt.only) chosen.push_back(&m);
    }
    if (chosen.empty()) {
        std::fprintf(stderr, "ipc_bench: no measure named %s; see --help\n", g_opt.only.c_str());
        return 2;
    }
    const bool isolated = g_opt.only == "ipc_rt_16B" || g_opt.only == "raw_rt_16B" || g_opt.only == "ipc_rt_1MiB" || g_opt.only == "raw_rt_1MiB";
    if (!isolated) {
        std::printf("# ipc_bench mode=%s ipc_hpp=%d.%d.%d cpus=%zu nofile=%ld compiler=%s\n", g_opt.quick ? "quick" : "full",
                    IPC_HPP_VERSION_MAJOR, IPC_HPP_VERSION_MINOR, IPC_HPP_VERSION_PATCH, g_ctx.cpus.size(), g_ctx.nofile,
#if defined(__clang__)
                    "clang-" __clang_version__
#elif defined(__GNUC__)
                    "gcc-" __VERSION__
#else
                    "unknown"
#endif
        );
        // "# peers: zeromq=4.3.4 nng=1.5.2", "# peers: zeromq=not built, nng=1.5.2"
        const std::string zv = zmq_version_label(), nv = nng_version_label();
        const bool both = !zv.empty() && !nv.empty();
        std::printf("# peers: zeromq=%s%s nng=%s\n", zv.empty() ? "not built" : zv.c_str(), both ? "" : ",", nv.empty() ? "not built" : nv.c_str());
        if (g_ctx.cpus.size() < 2) std::printf("# only one CPU available: the *_two_cpus measures are skipped\n");
        if (g_ctx.nofile < 2 * 1000 + 64) std::printf("# RLIMIT_NOFILE is %ld: 1000 clients need %d fds in one process\n", g_ctx.nofile, 2 * 1000 + 64);
        std::fflush(stdout);
    }
    std::uint64_t t0 = now_ns();
    bool ok = true;
    for (Measure* m : chosen) {
        std::uint64_t m0 = now_ns();
        ok = m->run() && ok;
        if (g_opt.verbose) std::fprintf(stderr, "# %s took %.2f s\n", m->name.c_str(), static_cast<double>(now_ns() - m0) / 1e9);
    }
    if (!isolated) std::printf("# done in %.1f s%s\n", static_cast<double>(now_ns() - t0) / 1e9, ok ? "" : " (with errors)");
    std::fflush(stdout);
    return ok ? 0 : 1;
}
