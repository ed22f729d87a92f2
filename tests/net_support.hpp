// Helpers for the real-socket, real-process tests (test_protocol_raw.cpp,
// test_server.cpp, test_client.cpp):
//   - TempDir: a fresh directory per test (mkdtemp), removed recursively;
//   - an independent frame encoder/parser, so raw tests never trust the
//     codec they check;
//   - RawConn / RawListener: raw AF_UNIX peers with deadlines;
//   - Child / spawn / spawn_server: a forked process (a server, or anything)
//     whose result comes back through a pipe, bounded by alarm();
//   - ThreadServer: a server serving on a thread of the test process;
//   - eventually(), Stopwatch, Watchdog: deadlines instead of fixed sleeps.
// Nothing here uses a fixed path: every socket lives in its test's TempDir.
#ifndef IPC_HPP_TESTS_NET_SUPPORT_HPP
#define IPC_HPP_TESTS_NET_SUPPORT_HPP

#include "ipc.hpp"

#include <doctest/doctest.h>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

namespace ipc_net_test {

namespace ipc = ipc_hpp;

// ---------------------------------------------------------------------------
// Time
// ---------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------
// Hex, names of errors
// ---------------------------------------------------------------------------

inline std::string hex(std::string_view bytes) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string out;
    out.reserve(bytes.size() * 2);
    for (char c : bytes) {
        auto b = static_cast<unsigned char>(c);
        out += digits[b >> 4];
        out += digits[b & 0x0F];
    }
    return out;
}

// The error code's short name (the library's own; every outcome() check
// below spells one out, so they test it too).
inline const char* errc_name(ipc::Errc c) { return ipc::to_string(c); }

// "value" when r holds a value, else the short name of its error code.
template <class T>
std::string outcome(const ipc::Result<T>& r) {
    return r.has_value() ? std::string("value") : std::string(errc_name(r.error().code));
}

inline const char* drop_name(ipc::DropReason d) { return ipc::to_string(d); }

// ---------------------------------------------------------------------------
// Frames, encoded independently of ipc.hpp's codec
// ---------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------
// Raw peers
// ---------------------------------------------------------------------------

inline bool fill_address(const std::string& path, struct sockaddr_un& addr, socklen_t& len) {
    std::memset(&addr, 0, sizeof addr);
    addr.sun_family = AF_UNIX;
    if (path.size() >= sizeof addr.sun_path) return false;
    std::memcpy(addr.sun_path, path.data(), path.size());
    len = static_cast<socklen_t>(offsetof(struct sockaddr_un, sun_path) + path.size() + 1);
    return true;
}

// A raw connection: writes and reads bytes with deadlines, parses frames on
// its own. Non-blocking underneath.
class RawConn {
public:
    RawConn() = default;
    explicit RawConn(int fd) : fd_(fd) {}
    RawConn(RawConn&& o) noexcept : fd_(o.fd_), buf_(std::move(o.buf_)), eof_(o.eof_) { o.fd_ = -1; }
    RawConn& operator=(RawConn&& o) noexcept {
        if (this != &o) {
            close();
            fd_ = o.fd_;
            buf_ = std::move(o.buf_);
            eof_ = o.eof_;
            o.fd_ = -1;
        }
        return *this;
    }
    RawConn(const RawConn&) = delete;
    RawConn& operator=(const RawConn&) = delete;
    ~RawConn() { close(); }

    // Connects to path; valid() is false when that failed (errno kept in error()).
    static RawConn connect(const std::string& path) {
        struct sockaddr_un addr {};
        socklen_t len = 0;
        RawConn c;
        if (!fill_address(path, addr, len)) {
            c.error_ = ENAMETOOLONG;
            return c;
        }
        int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            c.error_ = errno;
            return c;
        }
        int r;
        do {
            r = ::connect(fd, reinterpret_cast<const struct sockaddr*>(&addr), len);
        } while (r != 0 && errno == EINTR);
        if (r != 0) {
            c.error_ = errno;
            ::close(fd);
            return c;
        }
        ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
        c.fd_ = fd;
        return c;
    }

    bool valid() const { return fd_ >= 0; }
    int fd() const { return fd_; }
    int error() const { return error_; }
    void close() {
        if (fd_ >= 0) ::close(fd_);
        fd_ = -1;
    }
    // Half-close: the peer sees end of file, we can still read.
    void shutdown_write() {
        if (fd_ >= 0) ::shutdown(fd_, SHUT_WR);
    }

    // Writes every byte before the deadline; false on error or timeout.
    bool send(std::string_view bytes, std::int64_t timeout_ms = 5000) {
        const std::int64_t end = now_ms() + timeout_ms;
        std::size_t off = 0;
        while (off < bytes.size()) {
            ssize_t n = ::send(fd_, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (n > 0) {
                off += static_cast<std::size_t>(n);
                continue;
            }
            if (n < 0 && errno == EINTR) continue;
            if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) return false;
            if (!wait_for(POLLOUT, end)) return false;
        }
        return true;
    }
    // Sends one byte per send(), pausing pause_ms between bytes so that the
    // reader sees the frame arrive in pieces.
    bool send_bytewise(std::string_view bytes, long pause_ms = 1) {
        for (char c : bytes) {
            if (!send(std::string_view(&c, 1))) return false;
            if (pause_ms > 0) sleep_ms(pause_ms);
        }
        return true;
    }
    bool send_frame(std::string_view type, std::string_view content) { return send(frame(type, content)); }
    bool send_text(std::string_view content) { return send(text_frame(content)); }

    // Reads until n bytes are buffered, end of file or the deadline; returns
    // (and consumes) what is buffered, at most n bytes.
    std::string read_exact(std::size_t n, std::int64_t timeout_ms = 5000) {
        const std::int64_t end = now_ms() + timeout_ms;
        while (buf_.size() < n && fill(end)) {
        }
        std::size_t k = buf_.size() < n ? buf_.size() : n;
        std::string out = buf_.substr(0, k);
        buf_.erase(0, k);
        return out;
    }

    // The next whole frame, or false at end of file / timeout / a frame whose
    // end byte is not 0xCE (then `out.raw` holds what was read).
    bool read_frame(Frame& out, std::int64_t timeout_ms = 5000) {
        const std::int64_t end = now_ms() + timeout_ms;
        out = Frame{};
        while (buf_.size() < 2) {
            if (!fill(end)) return false;
        }
        const std::size_t type_len = (static_cast<std::size_t>(static_cast<unsigned char>(buf_[0])) << 8) |
                                     static_cast<std::size_t>(static_cast<unsigned char>(buf_[1]));
        while (buf_.size() < 2 + type_len + 4) {
            if (!fill(end)) return false;
        }
        std::size_t content_len = 0;
        for (std::size_t i = 0; i < 4; ++i) {
            content_len = (content_len << 8) | static_cast<std::size_t>(static_cast<unsigned char>(buf_[2 + type_len + i]));
        }
        const std::size_t total = 2 + type_len + 4 + content_len + 1;
        while (buf_.size() < total) {
            if (!fill(end)) return false;
        }
        out.raw = buf_.substr(0, total);
        out.type = buf_.substr(2, type_len);
        out.content = buf_.substr(2 + type_len + 4, content_len);
        buf_.erase(0, total);
        return static_cast<unsigned char>(out.raw.back()) == 0xCE;
    }

    // The next frame that is not a heartbeat (heartbeats are counted).
    bool read_frame_skipping_heartbeats(Frame& out, std::int64_t timeout_ms = 5000, int* heartbeats = nullptr) {
        const std::int64_t end = now_ms() + timeout_ms;
        for (;;) {
            std::int64_t left = end - now_ms();
            if (!read_frame(out, left < 0 ? 0 : left)) return false;
            if (!out.is(heartbeat_frame())) return true;
            if (heartbeats != nullptr) ++*heartbeats;
        }
    }

    // Every byte that arrives within window_ms (stops early at end of file).
    std::string collect(std::int64_t window_ms) {
        const std::int64_t end = now_ms() + window_ms;
        while (fill(end)) {
        }
        std::string out;
        out.swap(buf_);
        return out;
    }

    // Frames that arrive within window_ms (all of them, heartbeats included).
    std::vector<Frame> frames_within(std::int64_t window_ms) {
        const std::int64_t end = now_ms() + window_ms;
        std::vector<Frame> frames;
        Frame f;
        for (;;) {
            std::int64_t left = end - now_ms();
            if (left <= 0 || !read_frame(f, left)) break;
            frames.push_back(f);
        }
        return frames;
    }

    // Waits for end of file (or a reset); bytes that arrive first are
    // returned in `before`. True when the peer closed before the deadline.
    bool wait_eof(std::int64_t timeout_ms = 5000, std::string* before = nullptr) {
        const std::int64_t end = now_ms() + timeout_ms;
        while (fill(end)) {
        }
        if (before != nullptr) *before = buf_;
        buf_.clear();
        return eof_;
    }
    bool at_eof() const { return eof_; }
    std::size_t buffered() const { return buf_.size(); }

    // The client side of the handshake: reads `connection start` (checked
    // byte for byte) and answers `start ok`.
    bool handshake(std::int64_t timeout_ms = 5000) {
        Frame f;
        if (!read_frame(f, timeout_ms) || !f.is(start_frame())) return false;
        return send(start_ok_frame());
    }

private:
    bool wait_for(short events, std::int64_t end) {
        for (;;) {
            std::int64_t left = end - now_ms();
            if (left < 0) left = 0;
            struct pollfd p {};
            p.fd = fd_;
            p.events = events;
            int r = ::poll(&p, 1, static_cast<int>(left));
            if (r > 0) return true;
            if (r == 0) return false;
            if (errno != EINTR) return false;
        }
    }
    // Reads what is there (waiting until the deadline); false on end of
    // file, error or timeout.
    bool fill(std::int64_t end) {
        if (fd_ < 0 || eof_) return false;
        for (;;) {
            char chunk[65536];
            ssize_t n = ::recv(fd_, chunk, sizeof chunk, MSG_DONTWAIT);
            if (n > 0) {
                buf_.append(chunk, static_cast<std::size_t>(n));
                return true;
            }
            if (n == 0 || (n < 0 && (errno == ECONNRESET || errno == EPIPE))) {
                eof_ = true;
                return false;
            }
            if (errno == EINTR) continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK) return false;
            if (now_ms() >= end) return false;
            if (!wait_for(POLLIN, end)) return false;
        }
    }

    int fd_ = -1;
    int error_ = 0;
    std::string buf_;
    bool eof_ = false;
};

// A raw listening socket: a fake server for our client.
class RawListener {
public:
    explicit RawListener(const std::string& path) : path_(path) {
        struct sockaddr_un addr {};
        socklen_t len = 0;
        if (!fill_address(path, addr, len)) return;
        int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0) return;
        if (::bind(fd, reinterpret_cast<const struct sockaddr*>(&addr), len) != 0 || ::listen(fd, 64) != 0) {
            ::close(fd);
            return;
        }
        fd_ = fd;
    }
    RawListener(const RawListener&) = delete;
    RawListener& operator=(const RawListener&) = delete;
    ~RawListener() { close(); }
    bool valid() const { return fd_ >= 0; }
    // Closes and removes the socket file.
    void close() {
        if (fd_ >= 0) {
            ::close(fd_);
            ::unlink(path_.c_str());
        }
        fd_ = -1;
    }
    // The next connection, or an invalid RawConn after timeout_ms.
    RawConn accept(std::int64_t timeout_ms = 5000) {
        const std::int64_t end = now_ms() + timeout_ms;
        for (;;) {
            int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
            if (c >= 0) return RawConn(c);
            if (errno == EINTR) continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK) return RawConn();
            std::int64_t left = end - now_ms();
            if (left <= 0) return RawConn();
            struct pollfd p {};
            p.fd = fd_;
            p.events = POLLIN;
            (void)::poll(&p, 1, static_cast<int>(left));
        }
    }

private:
    std::string path_;
    int fd_ = -1;
};

// A socket file nobody accepts on: bound, then closed without unlink (what
// a crashed server leaves behind).
inline bool make_stale_socket(const std::string& path) {
    struct sockaddr_un addr {};
    socklen_t len = 0;
    if (!fill_address(path, addr, len)) return false;
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return false;
    bool ok = ::bind(fd, reinterpret_cast<const struct sockaddr*>(&addr), len) == 0 && ::listen(fd, 4) == 0;
    ::close(fd);
    struct stat st {};
    return ok && ::lstat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode);
}

// ---------------------------------------------------------------------------
// Directories
// ---------------------------------------------------------------------------

// A fresh directory (mkdtemp), removed with everything in it at the end.
// Short on purpose: sun_path holds 107 bytes.
class TempDir {
public:
    TempDir() {
        char tmpl[] = "/tmp/ipchpp-XXXXXX";
        const char* made = ::mkdtemp(tmpl);
        REQUIRE(made != nullptr);
        path_ = made;
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    ~TempDir() { remove_tree(path_); }
    const std::string& path() const { return path_; }
    std::string file(std::string_view name) const { return path_ + "/" + std::string(name); }

    static void remove_tree(const std::string& path) {
        ::nftw(
            path.c_str(),
            [](const char* p, const struct stat*, int, struct FTW*) -> int {
                ::remove(p);
                return 0;
            },
            16, FTW_DEPTH | FTW_PHYS);
    }

private:
    std::string path_;
};

inline bool file_exists(const std::string& path) {
    struct stat st {};
    return ::lstat(path.c_str(), &st) == 0;
}

// Open file descriptors of this process.
inline int count_fds() {
    DIR* d = ::opendir("/proc/self/fd");
    if (d == nullptr) return -1;
    int n = 0;
    while (struct dirent* e = ::readdir(d)) {
        if (e->d_name[0] != '.') ++n;
    }
    ::closedir(d);
    return n - 1;  // the directory stream itself
}

// The configuration the tests use: a short heartbeat and short timeouts.
inline ipc::Config test_config(const std::string& dir, std::int64_t heartbeat_ms = 50) {
    ipc::Config c;
    c.directory = dir;
    c.heartbeat = ipc::Milliseconds(heartbeat_ms);
    c.handshake_timeout = ipc::Milliseconds(3000);
    c.close_timeout = ipc::Milliseconds(1000);
    c.shutdown_timeout = ipc::Milliseconds(1500);
    return c;
}

inline ipc::Name name_of(std::string_view s) { return ipc::Name::parse(s).value(); }

// ---------------------------------------------------------------------------
// Reducers
// ---------------------------------------------------------------------------

// The carry counts the application messages reduced. By content:
// "ping" -> respond "pong"; "count" -> respond the count; "fds" -> respond
// the number of open fds; "peer" -> respond "pid uid gid" of the peer;
// "continue" / "close" / "stop" -> that continuation; anything else is
// echoed (same media type, same content).
struct CommandReducer {
    ipc::Continuation<int> operator()(const ipc::Message& m, ipc::Continuation<int> c, int n,
                                      const ipc::Peer& peer) const {
        n += 1;
        const std::string& s = m.content();
        if (s == "ping") return c.respond(n, ipc::Message::text("pong"));
        if (s == "count") return c.respond(n, ipc::Message::text(std::to_string(n)));
        if (s == "fds") return c.respond(n, ipc::Message::text(std::to_string(count_fds())));
        if (s == "peer") {
            return c.respond(n, ipc::Message::text(std::to_string(peer.pid) + " " + std::to_string(peer.uid) + " " +
                                                   std::to_string(peer.gid)));
        }
        if (s == "continue") return c.continue_(n);
        if (s == "close") return c.close(n);
        if (s == "stop") return c.stop(n);
        return c.respond(n, ipc::Message(m.media_type(), m.content()));
    }
};

// One round trip with a CommandReducer server: the reply's content, or
// "send <errc>" / "reply <errc>".
inline std::string ping(ipc::Process& p, std::string_view what = "ping") {
    auto s = p.send(ipc::Message::text(what), ipc::Milliseconds(3000));
    if (!s) return std::string("send ") + errc_name(s.error().code);
    auto m = p.wait(ipc::Milliseconds(3000));
    if (!m) return std::string("reply ") + errc_name(m.error().code);
    return m->content();
}

// ---------------------------------------------------------------------------
// Forked processes
// ---------------------------------------------------------------------------

inline bool write_all_fd(int fd, std::string_view bytes) {
    std::size_t off = 0;
    while (off < bytes.size()) {
        ssize_t n = ::write(fd, bytes.data() + off, bytes.size() - off);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return false;
        off += static_cast<std::size_t>(n);
    }
    return true;
}

// A forked child whose body's result (a string) comes back through a pipe.
class Child {
public:
    Child() = default;
    Child(pid_t pid, int out) : pid_(pid), out_(out) {}
    Child(Child&& o) noexcept : pid_(o.pid_), out_(o.out_), status_(o.status_) { o.pid_ = -1; o.out_ = -1; }
    Child& operator=(Child&&) = delete;
    Child(const Child&) = delete;
    Child& operator=(const Child&) = delete;
    ~Child() { kill_now(); }

    pid_t pid() const { return pid_; }
    bool running() const { return pid_ > 0; }

    // Reads the result until the child closes the pipe, then reaps it. On
    // timeout the child is killed and "<timeout>" is returned.
    std::string result(std::int64_t timeout_ms = 10000) {
        const std::int64_t end = now_ms() + timeout_ms;
        std::string out;
        bool timed_out = false;
        while (out_ >= 0) {
            std::int64_t left = end - now_ms();
            if (left <= 0) {
                timed_out = true;
                break;
            }
            struct pollfd p {};
            p.fd = out_;
            p.events = POLLIN;
            int r = ::poll(&p, 1, static_cast<int>(left));
            if (r < 0 && errno == EINTR) continue;
            if (r <= 0) continue;
            char buf[4096];
            ssize_t n = ::read(out_, buf, sizeof buf);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) break;
            out.append(buf, static_cast<std::size_t>(n));
        }
        if (timed_out) {
            kill_now();
            return "<timeout>";
        }
        reap();
        return out;
    }

    // waitpid with a deadline; true when the child ended.
    bool reap(std::int64_t timeout_ms = 10000) {
        if (pid_ <= 0) return true;
        const std::int64_t end = now_ms() + timeout_ms;
        for (;;) {
            int st = 0;
            pid_t r = ::waitpid(pid_, &st, WNOHANG);
            if (r == pid_) {
                status_ = st;
                pid_ = -1;
                close_pipe();
                return true;
            }
            if (r < 0 && errno != EINTR) {
                pid_ = -1;
                close_pipe();
                return true;
            }
            if (now_ms() >= end) return false;
            sleep_ms(1);
        }
    }
    int status() const { return status_; }
    bool exited_with(int code) const { return WIFEXITED(status_) && WEXITSTATUS(status_) == code; }

    void signal(int sig) {
        if (pid_ > 0) ::kill(pid_, sig);
    }
    void kill_now() {
        if (pid_ > 0) {
            ::kill(pid_, SIGKILL);
            int st = 0;
            while (::waitpid(pid_, &st, 0) < 0 && errno == EINTR) {
            }
            status_ = st;
            pid_ = -1;
        }
        close_pipe();
    }

private:
    void close_pipe() {
        if (out_ >= 0) ::close(out_);
        out_ = -1;
    }
    pid_t pid_ = -1;
    int out_ = -1;
    int status_ = -1;
};

// Forks; the child runs body() (returning a std::string), writes the result
// to the pipe and _exit(exit_code)s. alarm(alarm_s) bounds the child. Make no
// doctest assertion inside body.
template <class Body>
Child spawn(Body body, unsigned alarm_s = 20) {
    int p[2];
    REQUIRE(::pipe2(p, O_CLOEXEC) == 0);
    std::fflush(nullptr);
    pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        ::close(p[0]);
        // The test runner's crash handlers are no business of the child.
        for (int sig : {SIGHUP, SIGINT, SIGABRT, SIGTERM, SIGTSTP, SIGALRM, SIGSEGV, SIGFPE, SIGILL, SIGBUS}) {
            ::signal(sig, SIG_DFL);
        }
        ::alarm(alarm_s);
        std::string r;
        try {
            r = body();
        } catch (...) {
            r = "<exception>";
        }
        (void)write_all_fd(p[1], r);
        ::_exit(0);
    }
    ::close(p[1]);
    return Child(pid, p[0]);
}

inline std::string show(int v) { return std::to_string(v); }
inline std::string show(const std::string& v) { return v; }

// Drops seen by a server, "reason,reason,..." (for the result of a child).
struct DropLog {
    std::mutex mutex;
    std::vector<ipc::DropReason> reasons;
    std::vector<ipc::Peer> peers;
    std::vector<ipc::Errc> codes;

    static void record(void* self, const ipc::Peer& peer, ipc::DropReason why, const ipc::Error& e) {
        auto* log = static_cast<DropLog*>(self);
        std::lock_guard<std::mutex> lock(log->mutex);
        log->reasons.push_back(why);
        log->peers.push_back(peer);
        log->codes.push_back(e.code);
    }
    std::size_t size() {
        std::lock_guard<std::mutex> lock(mutex);
        return reasons.size();
    }
    // The error code of the i-th drop, by name.
    std::string code(std::size_t i) {
        std::lock_guard<std::mutex> lock(mutex);
        return i < codes.size() ? errc_name(codes[i]) : "none";
    }
    std::size_t count(ipc::DropReason why) {
        std::lock_guard<std::mutex> lock(mutex);
        std::size_t n = 0;
        for (auto r : reasons) n += r == why ? 1 : 0;
        return n;
    }
    std::string text() {
        std::lock_guard<std::mutex> lock(mutex);
        std::string s;
        for (auto r : reasons) {
            if (!s.empty()) s += ',';
            s += drop_name(r);
        }
        return s;
    }
};

inline void no_configure(ipc::Server&) {}

// Forks a server that serves `reducer` from `carry`. Its result is
// "ok <carry>" or "serve <errc>" / "listen <errc>", then " drops=<list>".
// configure(Server&) runs before serve (handle_signals, allow_uids...).
template <class Carry, class Reducer, class Configure = void (*)(ipc::Server&)>
Child spawn_server(const ipc::Config& config, const ipc::Name& name, Carry carry, Reducer reducer,
                   ipc::Milliseconds timeout = ipc::Milliseconds::forever(), Configure configure = &no_configure,
                   unsigned alarm_s = 20) {
    return spawn(
        [=]() mutable -> std::string {
            ipc::Ipc ipc(config);
            auto server = ipc.listen(name, timeout);
            if (!server) return std::string("listen ") + errc_name(server.error().code);
            DropLog drops;
            server->on_drop(&DropLog::record, &drops);
            configure(*server);
            auto r = server->serve(std::move(carry), reducer);
            std::string out = r ? "ok " + show(r.value()) : std::string("serve ") + errc_name(r.error().code);
            return out + " drops=" + drops.text();
        },
        alarm_s);
}

// Whether the kernel lists a listening AF_UNIX socket bound to path
// (/proc/net/unix; flag __SO_ACCEPTCON): a raw or reference-like server.
// Never connects: a connect-and-drop probe would show up as a dropped
// connection in the server under test.
inline bool listening(const std::string& path) {
    FILE* f = std::fopen("/proc/net/unix", "r");
    if (f == nullptr) return false;
    char line[4096];
    bool found = false;
    bool header = true;
    while (!found && std::fgets(line, sizeof line, f) != nullptr) {
        if (header) {
            header = false;
            continue;
        }
        std::string l(line);
        while (!l.empty() && (l.back() == '\n' || l.back() == '\r')) l.pop_back();
        // Num RefCount Protocol Flags Type St Inode Path
        std::size_t pos = 0;
        std::string fields[8];
        int n = 0;
        while (n < 7 && pos < l.size()) {
            while (pos < l.size() && l[pos] == ' ') ++pos;
            std::size_t end = l.find(' ', pos);
            if (end == std::string::npos) end = l.size();
            fields[n++] = l.substr(pos, end - pos);
            pos = end;
        }
        if (n < 7 || pos >= l.size()) continue;
        const unsigned long flags = std::strtoul(fields[3].c_str(), nullptr, 16);
        const std::string bound = l.substr(pos + 1);
        found = (flags & 0x10000UL) != 0 && bound == path;
    }
    std::fclose(f);
    return found;
}

// Until a server listens at this name's path (checked without connecting).
inline bool wait_live(const ipc::Ipc& ipc, const ipc::Name& name, std::int64_t timeout_ms = 5000) {
    const std::string path = ipc.path_of(name);
    // An ipc.hpp server is bound elsewhere first (docs/filesystem.md): the
    // kernel lists another path for it, so ask the name's lock (exist()),
    // which never connects either.
    return eventually([&] { return listening(path) || ipc.exist(name); }, timeout_ms);
}

// ---------------------------------------------------------------------------
// A server on a thread of the test process
// ---------------------------------------------------------------------------

template <class Carry>
class ThreadServer {
public:
    template <class Reducer, class Configure = void (*)(ipc::Server&)>
    ThreadServer(const ipc::Ipc& ipc, const ipc::Name& name, Carry carry, Reducer reducer,
                 ipc::Milliseconds timeout = ipc::Milliseconds::forever(), Configure configure = &no_configure)
        : server_(ipc.listen(name, timeout)), result_(ipc::fail(ipc::Errc::invalid_argument, 0, "not served")) {
        REQUIRE(server_.has_value());
        server_->on_drop(&DropLog::record, &drops);
        configure(*server_);
        stop_ = server_->stop_handle();
        thread_ = std::thread([this, carry, reducer]() mutable {
            result_ = server_->serve(std::move(carry), std::move(reducer));
            done_.store(true);
        });
    }
    ThreadServer(const ThreadServer&) = delete;
    ThreadServer& operator=(const ThreadServer&) = delete;
    ~ThreadServer() {
        stop_.request();
        if (thread_.joinable()) thread_.join();
    }

    ipc::StopHandle stop_handle() const { return stop_; }
    bool done() const { return done_.load(); }
    // Waits for serve() to return by itself (no stop requested).
    bool wait_done(std::int64_t timeout_ms = 5000) { return eventually([&] { return done(); }, timeout_ms); }
    // Requests a stop (unless stop is false) and joins; returns serve()'s result.
    ipc::Result<Carry> finish(bool stop = true) {
        if (stop) stop_.request();
        if (thread_.joinable()) thread_.join();
        return result_;
    }

    DropLog drops;

private:
    ipc::Result<ipc::Server> server_;
    ipc::StopHandle stop_;
    ipc::Result<Carry> result_;
    std::atomic<bool> done_{false};
    std::thread thread_;
};

}  // namespace ipc_net_test

#endif
