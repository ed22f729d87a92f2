// Deadlines instead of fixed sleeps (now_ms, eventually, poll_until, Stopwatch, Watchdog) and the short names of outcomes.
#ifndef IPC_HPP_TESTS_SUPPORT_BASICS_HPP
#define IPC_HPP_TESTS_SUPPORT_BASICS_HPP

#include "ipc.hpp"

#include <cerrno>
#include <csignal>
#include <cstdint>
#include <string>

#include <poll.h>
#include <time.h>
#include <unistd.h>

namespace ipc_test {

namespace ipc = ipc_hpp;

inline std::int64_t now_ms() {
    struct timespec ts {};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<std::int64_t>(ts.tv_sec) * 1000 + static_cast<std::int64_t>(ts.tv_nsec / 1000000);
}

inline void sleep_ms(long ms) {
    struct timespec ts {};
    ts.tv_sec = ms / 1000;
    ts.tv_nsec = (ms % 1000) * 1000000L;
    while (::nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

// One poll() of fd for events, for what is left until end_ms (the now_ms()
// clock): poll()'s result (-1 with errno, EINTR included), or past_deadline
// once end_ms has passed. The caller decides what to look at and loops.
constexpr int past_deadline = -2;
inline int poll_until(int fd, short events, std::int64_t end_ms) {
    const std::int64_t left = end_ms - now_ms();
    if (left <= 0) return past_deadline;
    struct pollfd p {};
    p.fd = fd;
    p.events = events;
    return ::poll(&p, 1, static_cast<int>(left));
}

class Stopwatch {
public:
    Stopwatch() : start_(now_ms()) {}
    std::int64_t elapsed() const { return now_ms() - start_; }

private:
    std::int64_t start_;
};

// Polls pred every millisecond until it holds or timeout_ms passed.
template <class P>
bool eventually(P pred, std::int64_t timeout_ms = 5000) {
    const std::int64_t end = now_ms() + timeout_ms;
    for (;;) {
        if (pred()) return true;
        if (now_ms() >= end) return false;
        sleep_ms(1);
    }
}

// Bounds one test: if it hangs, SIGALRM (default disposition) kills the
// test binary instead of blocking the whole run forever.
// Without MSG_NOSIGNAL (IPC_HPP_HAVE_MSG_NOSIGNAL=0, the fallbacks build),
// a send to a vanished peer raises SIGPIPE: that build's tests ignore it, as
// a program using that fallback must.
class Watchdog {
public:
    explicit Watchdog(unsigned seconds = 30) {
#if !IPC_HPP_HAVE_MSG_NOSIGNAL
        ::signal(SIGPIPE, SIG_IGN);
#endif
        ::alarm(seconds);
    }
    ~Watchdog() { ::alarm(0); }
    Watchdog(const Watchdog&) = delete;
    Watchdog& operator=(const Watchdog&) = delete;
};

// The error code's short name (the library's own; every outcome() check
// below spells one out, so they test it too).
inline const char* errc_name(ipc::Errc c) { return ipc::to_string(c); }

// "value" when r holds a value, else the short name of its error code.
template <class T>
std::string outcome(const ipc::Result<T>& r) {
    return r.has_value() ? std::string("value") : std::string(errc_name(r.error().code));
}

inline const char* drop_name(ipc::DropReason d) { return ipc::to_string(d); }

}  // namespace ipc_test

#endif
