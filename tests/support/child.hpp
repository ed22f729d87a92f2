// A child process (fork, wait, kill) whose result comes back through a pipe (spawn, fork_with_pipe), outcome_of_misuse (a child that should abort), Pipe, one byte for "now", and the second user (hostile_user, become).
#ifndef IPC_HPP_TESTS_SUPPORT_CHILD_HPP
#define IPC_HPP_TESTS_SUPPORT_CHILD_HPP

#include "basics.hpp"

#include <doctest/doctest.h>

#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

#include <fcntl.h>
#include <poll.h>
#include <grp.h>
#include <pwd.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

namespace ipc_test {

namespace ipc = ipc_hpp;

// The unprivileged second user CI creates (.ci/run: useradd ipc-hostile);
// nullptr when not root or when the user does not exist.
inline const struct passwd* hostile_user() {
    if (::geteuid() != 0) return nullptr;
    return ::getpwnam("ipc-hostile");
}

// In a forked child: becomes that user for good (group first). false on failure.
inline bool become(const struct passwd* user) {
    return ::setgroups(0, nullptr) == 0 && ::setresgid(user->pw_gid, user->pw_gid, user->pw_gid) == 0 &&
           ::setresuid(user->pw_uid, user->pw_uid, user->pw_uid) == 0;
}

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
    // Takes o's child; a child this one still had is killed first.
    Child& operator=(Child&& o) noexcept {
        if (this != &o) {
            kill_now();
            pid_ = o.pid_;
            out_ = o.out_;
            status_ = o.status_;
            o.pid_ = -1;
            o.out_ = -1;
        }
        return *this;
    }
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
            const int r = poll_until(out_, POLLIN, end);
            if (r == past_deadline) {
                timed_out = true;
                break;
            }
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

// Makes a close-on-exec pipe in p, flushes stdio and forks (both REQUIREd):
// the child's pid, 0 in the child. What the child does is the caller's.
inline pid_t fork_with_pipe(int p[2]) {
    REQUIRE(::pipe2(p, O_CLOEXEC) == 0);
    std::fflush(nullptr);
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    return pid;
}

// Forks; the child runs child() (returning its exit code) with the
// parent's signal dispositions as they are; the child's wait status.
template <class Body>
int status_of_forked(Body child) {
    int p[2];
    const pid_t pid = fork_with_pipe(p);
    if (pid == 0) ::_exit(child());
    ::close(p[0]);
    ::close(p[1]);
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    return status;
}

// A signal's disposition for a scope, put back at its end.
class Disposition {
public:
    Disposition(int sig, void (*handler)(int)) : sig_(sig) {
        struct sigaction sa {};
        sa.sa_handler = handler;
        REQUIRE(::sigaction(sig, &sa, &before_) == 0);
    }
    ~Disposition() { ::sigaction(sig_, &before_, nullptr); }
    Disposition(const Disposition&) = delete;
    Disposition& operator=(const Disposition&) = delete;

private:
    int sig_;
    struct sigaction before_ {};
};

// Forks; the child runs body() (returning a std::string), writes the result
// to the pipe and _exit(0)s. alarm(alarm_s) bounds the child. Make no
// doctest assertion inside body.
template <class Body>
Child spawn(Body body, unsigned alarm_s = 20) {
    int p[2];
    const pid_t pid = fork_with_pipe(p);
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

// Runs body in a child (for misuse that aborts): "abort: <stderr's first
// line>" when it aborted, "signal N" or "exit N" otherwise.
template <class Body>
std::string outcome_of_misuse(Body body) {
    int err[2];
    const pid_t pid = fork_with_pipe(err);
    if (pid == 0) {
        ::dup2(err[1], STDERR_FILENO);
        ::signal(SIGABRT, SIG_DFL);
        ::alarm(10);
        body();
        ::_exit(0);
    }
    ::close(err[1]);
    std::string text;
    char buf[512];
    ssize_t n;
    while ((n = ::read(err[0], buf, sizeof buf)) > 0) text.append(buf, static_cast<std::size_t>(n));
    ::close(err[0]);
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT) return "abort: " + text.substr(0, text.find('\n'));
    if (WIFSIGNALED(status)) return "signal " + std::to_string(WTERMSIG(status));
    return "exit " + std::to_string(WEXITSTATUS(status));
}


// A pipe between the test and its children or threads: one byte says "now"
// (a child's "I am there", a gate the test opens). Pipe{O_CLOEXEC |
// O_NONBLOCK} counts bytes without blocking, so the parent keeps working
// while it waits for n of them.
class Pipe {
public:
    explicit Pipe(int flags = O_CLOEXEC) { REQUIRE(::pipe2(fds_, flags) == 0); }
    ~Pipe() {
        ::close(fds_[0]);
        ::close(fds_[1]);
    }
    Pipe(const Pipe&) = delete;
    Pipe& operator=(const Pipe&) = delete;
    int read_end() const { return fds_[0]; }
    int write_end() const { return fds_[1]; }

    // One byte, from a child or a thread.
    void mark() const {
        const char b = 1;
        while (::write(fds_[1], &b, 1) < 0 && errno == EINTR) {
        }
    }
    // One byte within timeout_ms.
    bool wait_mark(std::int64_t timeout_ms) const {
        const std::int64_t end = now_ms() + timeout_ms;
        for (;;) {
            const int r = poll_until(fds_[0], POLLIN, end);
            if (r == past_deadline) return false;
            if (r <= 0) continue;
            char b;
            const ssize_t n = ::read(fds_[0], &b, 1);
            if (n == 1) return true;
            if (n < 0 && errno == EINTR) continue;
            return false;
        }
    }
    // Bytes seen so far (O_NONBLOCK pipes only).
    int count() {
        char buf[256];
        for (;;) {
            const ssize_t n = ::read(fds_[0], buf, sizeof buf);
            if (n > 0) {
                total_ += static_cast<int>(n);
                continue;
            }
            if (n < 0 && errno == EINTR) continue;
            break;
        }
        return total_;
    }
    // Until count() reaches n, within timeout_ms (O_NONBLOCK pipes only).
    bool wait_for(int n, std::int64_t timeout_ms) {
        const std::int64_t end = now_ms() + timeout_ms;
        while (count() < n) {
            if (poll_until(fds_[0], POLLIN, end) == past_deadline) return false;
        }
        return true;
    }

private:
    int fds_[2];
    int total_ = 0;
};

// Reads n bytes from fd within timeout_ms.
inline bool read_n(int fd, std::size_t n, std::int64_t timeout_ms) {
    const std::int64_t end = now_ms() + timeout_ms;
    std::size_t got = 0;
    while (got < n) {
        const int r = poll_until(fd, POLLIN, end);
        if (r == past_deadline) return false;
        if (r <= 0) continue;
        char buf[64];
        const ssize_t k = ::read(fd, buf, n - got < sizeof buf ? n - got : sizeof buf);
        if (k <= 0) return false;
        got += static_cast<std::size_t>(k);
    }
    return true;
}

}  // namespace ipc_test

#endif
