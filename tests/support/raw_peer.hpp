// A raw peer that speaks frames byte by byte: RawConn, RawListener (a fake server), a stale socket file.
#ifndef IPC_HPP_TESTS_SUPPORT_RAW_PEER_HPP
#define IPC_HPP_TESTS_SUPPORT_RAW_PEER_HPP

#include "basics.hpp"
#include "frames.hpp"

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <unistd.h>

namespace ipc_test {

namespace ipc = ipc_hpp;

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
            if (poll_until(fd_, POLLIN, end) == past_deadline) return RawConn();
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

}  // namespace ipc_test

#endif
