// ipc.hpp — message passing between processes on one Linux host.
//
// SPDX-License-Identifier: MIT
// Copyright (c) 2026 the ipc.hpp authors. See LICENSE.
//
// A single-header, dependency-free C++17 port of the PHP library innmind/ipc
// (4.x). It speaks that library's wire protocol byte for byte over AF_UNIX
// stream sockets, so a C++ process and a PHP process can talk to each other.
//
// Synopsis
//
//     #include "ipc.hpp"
//     namespace ipc = ipc_hpp;
//
//     // server
//     auto ipc = ipc::Ipc{};
//     auto server = ipc.listen(ipc::Name::parse("server-name").value());
//     auto result = server.value().serve(0, [](const ipc::Message& m,
//                                             ipc::Continuation<int> c, int n) {
//         return n == 42 ? c.stop(n) : c.respond(n + 1, ipc::Message::text("pong"));
//     });
//
//     // client
//     auto process = ipc.wait(name, ipc::Milliseconds{5000});
//     process.value().send(ipc::Message::text("ping"));
//     auto reply = process.value().wait(ipc::Milliseconds{1000});
//
// The protocol, the conversation and where ipc.hpp differs from the
// reference are written down in docs/protocol.md; comments cite it as §N.
//
// Layout of this file (each part starts with a banner "// N. ..."):
//    1. version                          2. configuration macros
//    3. platform detection               4. includes
//    5. Error and Either                 6. names, media types, messages
//    7. frame codec (Decoder)            8. time, peers, Config (public)
//    9. detail: clock, fds, syscalls, paths, liveness
//   10. detail: the conversation core (sans-I/O), receive() and transmit()
//   11. client: Process                 12. server pieces: Continuation,
//   13. detail: the server core             StopHandle, DropReason, signals
//   14. Server and its Loop             15. Ipc, the entry point
//
// Where to change what:
//   - the frame format: section 7 (frame_fits, write_frame, Decoder::next);
//     protocol messages: protocol::content/classify (section 6) and the
//     precomputed detail::protocol_frames (section 7).
//   - a protocol rule (what is answered, acknowledged, ignored, in which
//     state): Conversation::server_rule / client_rule (section 10). Both
//     sides and both client APIs go through them; nothing else decides.
//   - heartbeats: Conversation::heartbeat_due and fire (section 10).
//   - a new timer: give Conversation a due time in due() and its work in
//     fire(); the server's heap (ServerCore::schedule) and the client's
//     drive loop pick it up. Server-wide deadlines (idle, shutdown, accept
//     pause) live in ServerCore::prepare.
//   - a new Continuation kind: Continuation::Kind (section 12) and the
//     switch in Server::Loop::run (section 14).
//   - a new error code: Errc and describe() (section 5), the README's
//     failure-mode table, CHANGELOG.md.

#ifndef IPC_HPP_INCLUDED
#define IPC_HPP_INCLUDED

// ===========================================================================
// 1. Version — integers, usable in #if. meson.build reads them from here.
// ===========================================================================

#define IPC_HPP_VERSION_MAJOR 0
#define IPC_HPP_VERSION_MINOR 2
#define IPC_HPP_VERSION_PATCH 0
#define IPC_HPP_VERSION \
    (IPC_HPP_VERSION_MAJOR * 10000 + IPC_HPP_VERSION_MINOR * 100 + IPC_HPP_VERSION_PATCH)

// ===========================================================================
// 2. Configuration — every knob can be defined before including this file.
// ===========================================================================

// Largest message content accepted by a decoder, in bytes, unless a run-time
// setting says otherwise. A frame announcing more is refused from its length
// prefix alone, before anything is allocated for it. 64 MiB keeps one hostile
// peer from making a daemon allocate gigabytes while leaving room for real
// payloads. The frame format allows at most 4 GiB - 1.
// May differ between translation units (it is only a default).
#ifndef IPC_HPP_CONFIG_MAX_MESSAGE_SIZE
#define IPC_HPP_CONFIG_MAX_MESSAGE_SIZE (64u * 1024u * 1024u)
#endif

// Heartbeat period in milliseconds (the reference uses 1 s).
#ifndef IPC_HPP_CONFIG_HEARTBEAT_MS
#define IPC_HPP_CONFIG_HEARTBEAT_MS 1000
#endif

// How long a graceful shutdown waits for the clients' `connection close ok`
// before it drops them anyway, in milliseconds. The reference waits forever;
// a daemon that must stop cannot.
#ifndef IPC_HPP_CONFIG_SHUTDOWN_MS
#define IPC_HPP_CONFIG_SHUTDOWN_MS 5000
#endif

// Called on API misuse (value() on an error, error() on a value). Must not
// return; the library calls std::abort() right after it in any case.
#ifndef IPC_HPP_CONFIG_ASSERT
#define IPC_HPP_CONFIG_ASSERT(cond, msg)                                        \
    do {                                                                        \
        if (!(cond)) {                                                          \
            std::fprintf(stderr, "ipc.hpp: %s (%s:%d)\n", msg, __FILE__, __LINE__); \
            std::abort();                                                       \
        }                                                                       \
    } while (0)
#endif

// ===========================================================================
// 3. Platform detection — IPC_HPP_HAVE_* are always 0 or 1, overridable.
// ===========================================================================

#ifndef IPC_HPP_HAVE_EXCEPTIONS
#if defined(__cpp_exceptions) || defined(__EXCEPTIONS)
#define IPC_HPP_HAVE_EXCEPTIONS 1
#else
#define IPC_HPP_HAVE_EXCEPTIONS 0
#endif
#endif

#ifndef IPC_HPP_HAVE_ACCEPT4
#if defined(__linux__)
#define IPC_HPP_HAVE_ACCEPT4 1
#else
#define IPC_HPP_HAVE_ACCEPT4 0
#endif
#endif

#ifndef IPC_HPP_HAVE_SOCK_CLOEXEC
#if defined(__linux__)
#define IPC_HPP_HAVE_SOCK_CLOEXEC 1
#else
#define IPC_HPP_HAVE_SOCK_CLOEXEC 0
#endif
#endif

#ifndef IPC_HPP_HAVE_MSG_NOSIGNAL
#if defined(__linux__)
#define IPC_HPP_HAVE_MSG_NOSIGNAL 1
#else
#define IPC_HPP_HAVE_MSG_NOSIGNAL 0
#endif
#endif

#ifndef IPC_HPP_HAVE_SO_PEERCRED
#if defined(__linux__)
#define IPC_HPP_HAVE_SO_PEERCRED 1
#else
#define IPC_HPP_HAVE_SO_PEERCRED 0
#endif
#endif

// Watch the socket directory with inotify in Ipc::wait() instead of polling.
#ifndef IPC_HPP_HAVE_INOTIFY
#if defined(__linux__)
#define IPC_HPP_HAVE_INOTIFY 1
#else
#define IPC_HPP_HAVE_INOTIFY 0
#endif
#endif

// Tell a live server from a stale socket file by reading /proc/net/unix
// instead of connecting (a connect-and-drop probe resets a PHP server's carry).
#ifndef IPC_HPP_HAVE_PROC_NET_UNIX
#if defined(__linux__)
#define IPC_HPP_HAVE_PROC_NET_UNIX 1
#else
#define IPC_HPP_HAVE_PROC_NET_UNIX 0
#endif
#endif

// Tell which listening sockets exist, and the files they are bound to, from
// the kernel's sock_diag netlink interface (what `ss -xl` reads): each
// socket's file device and inode, which nobody can forge, unlike a path in
// /proc/net/unix. Where it fails at run time (a sandbox, a seccomp filter),
// /proc/net/unix and a connect probe are used instead (docs/filesystem.md).
#ifndef IPC_HPP_HAVE_SOCK_DIAG
#if defined(__linux__) && defined(__has_include)
#if __has_include(<linux/unix_diag.h>) && __has_include(<linux/sock_diag.h>) && __has_include(<linux/netlink.h>)
#define IPC_HPP_HAVE_SOCK_DIAG 1
#endif
#endif
#ifndef IPC_HPP_HAVE_SOCK_DIAG
#define IPC_HPP_HAVE_SOCK_DIAG 0
#endif
#endif

// Make a forked child's copies of a server's name lock inert with a
// pthread_atfork() child handler, and tell a child's handles from the
// parent's with a load instead of getpid() (see detail::Owner).
#ifndef IPC_HPP_HAVE_PTHREAD_ATFORK
#if defined(__linux__)
#define IPC_HPP_HAVE_PTHREAD_ATFORK 1
#else
#define IPC_HPP_HAVE_PTHREAD_ATFORK 0
#endif
#endif

// ===========================================================================
// 4. Includes — POSIX C headers and small standard headers only.
// ===========================================================================

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <memory>
#include <new>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <dirent.h>
#if IPC_HPP_HAVE_INOTIFY
#include <sys/inotify.h>
#endif
#include <time.h>
#include <unistd.h>
#if IPC_HPP_HAVE_SOCK_DIAG
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <linux/unix_diag.h>
#endif
#if IPC_HPP_HAVE_PTHREAD_ATFORK
#include <pthread.h>
#endif

#if IPC_HPP_HAVE_EXCEPTIONS
#include <stdexcept>
#endif

// Detected here, not in section 3: __GLIBC__ is known only once a libc
// header is in. Idle connections free their buffers, then malloc_trim()
// gives large ones back to the system (glibc keeps them cached otherwise).
#ifndef IPC_HPP_HAVE_MALLOC_TRIM
#if defined(__GLIBC__)
#define IPC_HPP_HAVE_MALLOC_TRIM 1
#else
#define IPC_HPP_HAVE_MALLOC_TRIM 0
#endif
#endif
#if IPC_HPP_HAVE_MALLOC_TRIM
#include <malloc.h>
#endif

namespace ipc_hpp {
inline namespace v0_2 {

// ===========================================================================
// 5. Error and Either
// ===========================================================================

// What failed. `describe()` gives a one-line English description.
enum class Errc : unsigned char {
    invalid_name = 1,      // not ^[a-zA-Z0-9_-]+$
    invalid_media_type,    // refused by the reference's media type rules
    message_too_large,     // content over the configured maximum (or 4 GiB - 1)
    path_too_long,         // <dir>/<name>.sock does not fit in sun_path
    directory,             // the socket directory cannot be created or read
    socket,                // socket(), bind(), listen(), fcntl() ... failed
    name_in_use,           // a live server already listens on this name
    not_found,             // no live server has this name
    connection_refused,    // connect() refused (stale file, full backlog)
    malformed_frame,       // bad end marker or impossible lengths
    protocol,              // the peer broke the conversation (e.g. no ack)
    timed_out,             // the deadline passed
    closed_by_peer,        // end of file or reset: the peer is gone
    closed,                // the connection was closed properly (by either side)
    io,                    // send()/recv()/poll() failed with errno
    permission_denied,     // the peer's credentials are not allowed
    invalid_argument,      // a setting or argument makes no sense
    desynchronized,        // a send() timed out: replies can no longer be paired with requests; reconnect
    inbox_full,            // the server sent more unread messages than Config::max_inbox_* allow
    insecure_directory,    // the socket directory (or an ancestor) can be changed by others
};

inline const char* describe(Errc code) noexcept {
    switch (code) {
        case Errc::invalid_name: return "invalid process name (must match ^[a-zA-Z0-9_-]+$)";
        case Errc::invalid_media_type: return "invalid media type";
        case Errc::message_too_large: return "message larger than the configured maximum";
        case Errc::path_too_long: return "socket path too long for sun_path";
        case Errc::directory: return "socket directory unusable";
        case Errc::socket: return "socket operation failed";
        case Errc::name_in_use: return "a live server already uses this name";
        case Errc::not_found: return "no live server with this name";
        case Errc::connection_refused: return "connection refused";
        case Errc::malformed_frame: return "malformed frame";
        case Errc::protocol: return "protocol violation by the peer";
        case Errc::timed_out: return "timed out";
        case Errc::closed_by_peer: return "connection closed by peer";
        case Errc::closed: return "connection closed";
        case Errc::io: return "i/o error";
        case Errc::permission_denied: return "peer not allowed";
        case Errc::invalid_argument: return "invalid argument";
        case Errc::desynchronized: return "connection desynchronized by an earlier timed-out send (reconnect)";
        case Errc::inbox_full: return "too many unread messages from the server";
        case Errc::insecure_directory: return "socket directory can be changed by other users";
    }
    return "unknown error";
}

// The enumerator's own name ("timed_out"), for logs and tests; "unknown"
// for a value outside the enum.
inline const char* to_string(Errc code) noexcept {
    switch (code) {
        case Errc::invalid_name: return "invalid_name";
        case Errc::invalid_media_type: return "invalid_media_type";
        case Errc::message_too_large: return "message_too_large";
        case Errc::path_too_long: return "path_too_long";
        case Errc::directory: return "directory";
        case Errc::socket: return "socket";
        case Errc::name_in_use: return "name_in_use";
        case Errc::not_found: return "not_found";
        case Errc::connection_refused: return "connection_refused";
        case Errc::malformed_frame: return "malformed_frame";
        case Errc::protocol: return "protocol";
        case Errc::timed_out: return "timed_out";
        case Errc::closed_by_peer: return "closed_by_peer";
        case Errc::closed: return "closed";
        case Errc::io: return "io";
        case Errc::permission_denied: return "permission_denied";
        case Errc::invalid_argument: return "invalid_argument";
        case Errc::desynchronized: return "desynchronized";
        case Errc::inbox_full: return "inbox_full";
        case Errc::insecure_directory: return "insecure_directory";
    }
    return "unknown";
}

// An error: what failed, the errno behind it (0 when none), and a static
// string naming the step that failed (never null).
struct Error {
    Errc code = Errc::invalid_argument;
    int sys_errno = 0;
    const char* where = "";

    constexpr Error() = default;
    constexpr Error(Errc c, int e = 0, const char* w = "") noexcept : code(c), sys_errno(e), where(w) {}

    const char* what() const noexcept { return describe(code); }
    // "what: where: strerror" in a caller-provided buffer; returns buf.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-truncation"  // truncation is the documented behaviour
#endif
    const char* format(char* buf, std::size_t size) const noexcept {
        if (size == 0) return buf;
        if (sys_errno != 0) {
            std::snprintf(buf, size, "%s%s%s: %s", what(), *where ? ": " : "", where, std::strerror(sys_errno));
        } else {
            std::snprintf(buf, size, "%s%s%s", what(), *where ? ": " : "", where);
        }
        return buf;
    }
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
    // Same, as a std::string.
    std::string message() const {
        char buf[256];
        return std::string(format(buf, sizeof buf));
    }
    friend bool operator==(const Error& a, const Error& b) noexcept {
        return a.code == b.code && a.sys_errno == b.sys_errno;
    }
    friend bool operator!=(const Error& a, const Error& b) noexcept { return !(a == b); }
    friend bool operator==(const Error& a, Errc b) noexcept { return a.code == b; }
    friend bool operator!=(const Error& a, Errc b) noexcept { return a.code != b; }
};

// The empty value, for operations that succeed with nothing to say.
struct Unit {
    friend constexpr bool operator==(Unit, Unit) noexcept { return true; }
    friend constexpr bool operator!=(Unit, Unit) noexcept { return false; }
};

// Wraps an error to build the error side of an Either unambiguously.
template <class E>
struct Failure {
    E error;
};
template <class E>
Failure<std::decay_t<E>> fail(E&& e) {
    return Failure<std::decay_t<E>>{std::forward<E>(e)};
}
inline Failure<Error> fail(Errc c, int e = 0, const char* where = "") { return Failure<Error>{Error{c, e, where}}; }

template <class T, class E = Error>
class Either;

namespace detail {
template <class X>
struct is_either : std::false_type {};
template <class T, class E>
struct is_either<Either<T, E>> : std::true_type {};
}  // namespace detail

// Either<T, E>: a T (the value, the seed's "right") or an E (the error, the
// seed's "left"). Member names follow std::expected; `match` is the seed's.
// No heap, move-only T and E allowed. Misuse goes through
// IPC_HPP_CONFIG_ASSERT and then std::abort(); it is never undefined.
// Where the seed returns a Maybe, ipc.hpp returns an Either whose error says
// why there is nothing (e.g. Errc::closed from Process::wait).
template <class T, class E>
class [[nodiscard]] Either {
    static_assert(!std::is_reference<T>::value && !std::is_reference<E>::value, "Either holds values");
    static_assert(!std::is_same<T, E>::value, "Either<T, E> needs distinct types");

public:
    using value_type = T;
    using error_type = E;

    template <class U = T, std::enable_if_t<std::is_constructible<T, U&&>::value &&
                                                !std::is_same<std::decay_t<U>, Either>::value &&
                                                !std::is_same<std::decay_t<U>, Failure<E>>::value &&
                                                !std::is_same<std::decay_t<U>, E>::value,
                                            int> = 0>
    Either(U&& v) : ok_(true) {  // NOLINT: implicit on purpose, like expected
        ::new (static_cast<void*>(&value_)) T(std::forward<U>(v));
    }
    Either(Failure<E> f) : ok_(false) { ::new (static_cast<void*>(&error_)) E(std::move(f.error)); }
    template <class U = E, std::enable_if_t<std::is_same<U, E>::value && !std::is_constructible<T, const U&>::value, int> = 0>
    Either(const U& e) : ok_(false) {  // an error converts implicitly when it cannot be a value
        ::new (static_cast<void*>(&error_)) E(e);
    }

    Either(const Either& o) : ok_(o.ok_) {
        if (ok_) ::new (static_cast<void*>(&value_)) T(o.value_);
        else ::new (static_cast<void*>(&error_)) E(o.error_);
    }
    Either(Either&& o) noexcept(std::is_nothrow_move_constructible<T>::value &&
                                std::is_nothrow_move_constructible<E>::value)
        : ok_(o.ok_) {
        if (ok_) ::new (static_cast<void*>(&value_)) T(std::move(o.value_));
        else ::new (static_cast<void*>(&error_)) E(std::move(o.error_));
    }
    Either& operator=(const Either& o) {
        if (this != &o) {
            Either tmp(o);
            *this = std::move(tmp);
        }
        return *this;
    }
    Either& operator=(Either&& o) noexcept(std::is_nothrow_move_constructible<T>::value &&
                                           std::is_nothrow_move_constructible<E>::value) {
        if (this != &o) {
            destroy();
            ok_ = o.ok_;
            if (ok_) ::new (static_cast<void*>(&value_)) T(std::move(o.value_));
            else ::new (static_cast<void*>(&error_)) E(std::move(o.error_));
        }
        return *this;
    }
    ~Either() { destroy(); }

    bool has_value() const noexcept { return ok_; }
    explicit operator bool() const noexcept { return ok_; }

    T& value() & { check(ok_, "Either::value() called on an error"); return value_; }
    const T& value() const& { check(ok_, "Either::value() called on an error"); return value_; }
    T&& value() && { check(ok_, "Either::value() called on an error"); return std::move(value_); }
    T* operator->() { return &value(); }
    const T* operator->() const { return &value(); }
    T& operator*() & { return value(); }
    const T& operator*() const& { return value(); }

    E& error() & { check(!ok_, "Either::error() called on a value"); return error_; }
    const E& error() const& { check(!ok_, "Either::error() called on a value"); return error_; }
    E&& error() && { check(!ok_, "Either::error() called on a value"); return std::move(error_); }

    template <class U>
    T value_or(U&& fallback) const& {
        return ok_ ? value_ : static_cast<T>(std::forward<U>(fallback));
    }
    template <class U>
    T value_or(U&& fallback) && {
        return ok_ ? std::move(value_) : static_cast<T>(std::forward<U>(fallback));
    }

    // f(T) -> Either<U, E>; on Either<Unit, E>, f() (no argument) too.
    template <class F>
    auto and_then(F&& f) const& {
        using R = std::decay_t<decltype(call(f, value_))>;
        static_assert(detail::is_either<R>::value, "and_then: f must return an Either");
        if (ok_) return call(f, value_);
        return R(Failure<E>{error_});
    }
    template <class F>
    auto and_then(F&& f) && {
        using R = std::decay_t<decltype(call(f, std::move(value_)))>;
        static_assert(detail::is_either<R>::value, "and_then: f must return an Either");
        if (ok_) return call(f, std::move(value_));
        return R(Failure<E>{std::move(error_)});
    }
    template <class F>
    auto flat_map(F&& f) const& { return and_then(std::forward<F>(f)); }
    template <class F>
    auto flat_map(F&& f) && { return std::move(*this).and_then(std::forward<F>(f)); }

    // f(T) -> U, gives Either<U, E>
    template <class F>
    auto transform(F&& f) const& {
        using U = std::decay_t<decltype(f(value_))>;
        if (ok_) return Either<U, E>(f(value_));
        return Either<U, E>(Failure<E>{error_});
    }
    template <class F>
    auto transform(F&& f) && {
        using U = std::decay_t<decltype(f(std::move(value_)))>;
        if (ok_) return Either<U, E>(f(std::move(value_)));
        return Either<U, E>(Failure<E>{std::move(error_)});
    }
    template <class F>
    auto map(F&& f) const& { return transform(std::forward<F>(f)); }
    template <class F>
    auto map(F&& f) && { return std::move(*this).transform(std::forward<F>(f)); }

    // f(E) -> G, gives Either<T, G>
    template <class F>
    auto map_error(F&& f) const& {
        using G = std::decay_t<decltype(f(error_))>;
        if (ok_) return Either<T, G>(value_);
        return Either<T, G>(Failure<G>{f(error_)});
    }
    template <class F>
    auto map_error(F&& f) && {
        using G = std::decay_t<decltype(f(std::move(error_)))>;
        if (ok_) return Either<T, G>(std::move(value_));
        return Either<T, G>(Failure<G>{f(std::move(error_))});
    }

    // f(E) -> Either<T, G>: recover from an error
    template <class F>
    auto or_else(F&& f) const& {
        using R = std::decay_t<decltype(f(error_))>;
        static_assert(detail::is_either<R>::value, "or_else: f must return an Either");
        if (ok_) return R(value_);
        return f(error_);
    }
    template <class F>
    auto or_else(F&& f) && {
        using R = std::decay_t<decltype(f(std::move(error_)))>;
        static_assert(detail::is_either<R>::value, "or_else: f must return an Either");
        if (ok_) return R(std::move(value_));
        return f(std::move(error_));
    }

    // The seed's match: on_value(T) or on_error(E); both return the same type.
    template <class V, class F>
    auto match(V&& on_value, F&& on_error) const& {
        return ok_ ? on_value(value_) : on_error(error_);
    }
    template <class V, class F>
    auto match(V&& on_value, F&& on_error) && {
        return ok_ ? on_value(std::move(value_)) : on_error(std::move(error_));
    }

    friend bool operator==(const Either& a, const Either& b) {
        if (a.ok_ != b.ok_) return false;
        return a.ok_ ? a.value_ == b.value_ : a.error_ == b.error_;
    }
    friend bool operator!=(const Either& a, const Either& b) { return !(a == b); }

private:
    static void check(bool cond, const char* msg) {
        IPC_HPP_CONFIG_ASSERT(cond, msg);
        if (!cond) std::abort();
    }
    // f(v), or f() when this holds a Unit and f takes no argument.
    template <class F, class V>
    static decltype(auto) call(F& f, V&& v) {
        if constexpr (std::is_same<T, Unit>::value && std::is_invocable<F&>::value) {
            (void)v;
            return f();
        } else {
            return f(std::forward<V>(v));
        }
    }
    void destroy() noexcept {
        if (ok_) value_.~T();
        else error_.~E();
    }

    bool ok_;
    union {
        T value_;
        E error_;
    };
};

template <class T>
using Result = Either<T, Error>;

// ===========================================================================
// 6. Names, media types, messages
// ===========================================================================

namespace detail {
inline bool is_alnum(char c) noexcept {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}
}  // namespace detail

// A process name: ^[a-zA-Z0-9_-]+$ (docs/protocol.md §1).
class Name {
public:
    static bool valid(std::string_view s) noexcept {
        if (s.empty()) return false;
        for (char c : s) {
            if (!(detail::is_alnum(c) || c == '_' || c == '-')) return false;
        }
        return true;
    }
    static Result<Name> parse(std::string_view s) {
        if (!valid(s)) return fail(Errc::invalid_name, 0, "Name::parse");
        return Name(s);
    }
#if IPC_HPP_HAVE_EXCEPTIONS
    // The seed's Name::of: throws std::invalid_argument on an invalid name.
    static Name of(std::string_view s) {
        if (!valid(s)) throw std::invalid_argument("ipc.hpp: invalid process name");
        return Name(s);
    }
#endif
    const std::string& str() const noexcept { return value_; }
    std::string_view view() const noexcept { return value_; }
    friend bool operator==(const Name& a, const Name& b) noexcept { return a.value_ == b.value_; }
    friend bool operator!=(const Name& a, const Name& b) noexcept { return a.value_ != b.value_; }
    friend bool operator<(const Name& a, const Name& b) noexcept { return a.value_ < b.value_; }

private:
    explicit Name(std::string_view s) : value_(s) {}
    std::string value_;
};

namespace detail {

// One token of RFC 6838 as the reference checks it:
// [A-Za-z0-9][A-Za-z0-9!#$&^_.-]{0,126}. Returns its length (0 = none) at
// the start of s, greedy, at most 127 characters.
inline std::size_t media_token(std::string_view s) noexcept {
    if (s.empty() || !is_alnum(s[0])) return 0;
    std::size_t n = 1;
    while (n < s.size() && n < 127) {
        char c = s[n];
        if (is_alnum(c) || c == '!' || c == '#' || c == '$' || c == '&' || c == '^' || c == '_' ||
            c == '.' || c == '-') {
            ++n;
        } else {
            break;
        }
    }
    return n;
}

// A parameter value: [A-Za-z0-9_.-]+ (PCRE's \w without /u, '-' and '.').
inline std::size_t media_value(std::string_view s) noexcept {
    std::size_t n = 0;
    while (n < s.size() && (is_alnum(s[n]) || s[n] == '_' || s[n] == '-' || s[n] == '.')) ++n;
    return n;
}

inline bool media_top_level(std::string_view t) noexcept {
    return t == "application" || t == "audio" || t == "font" || t == "example" || t == "image" ||
           t == "message" || t == "model" || t == "multipart" || t == "text" || t == "video";
}

// Parses a media type as innmind/media-type 2.x does and writes its
// canonical form to `out`. Returns false (out unspecified) when the
// reference would reject it, or when the canonical form is longer than the
// frame's u16 length field allows (canonicalising ";a=b" to "; a=b" grows a
// type, so a 64 KiB input can come out longer than 65535 bytes).
inline bool canonical_media_type(std::string_view s, std::string& out) {
    out.clear();
    std::size_t slash = s.find('/');
    if (slash == std::string_view::npos || !media_top_level(s.substr(0, slash))) return false;
    std::size_t i = slash + 1;
    std::size_t n = media_token(s.substr(i));
    if (n == 0) return false;
    i += n;
    if (i < s.size() && s[i] == '+') {
        std::size_t m = media_token(s.substr(i + 1));
        if (m == 0) return false;
        i += 1 + m;
    }
    out.assign(s.data(), i);
    bool first = true;
    while (i < s.size()) {
        // separator: [;,] followed by at most one space
        if (s[i] != ';' && s[i] != ',') return false;
        ++i;
        if (i < s.size() && s[i] == ' ') ++i;
        std::size_t k = media_token(s.substr(i));
        if (k == 0) return false;
        std::string_view key = s.substr(i, k);
        i += k;
        if (i >= s.size() || s[i] != '=') return false;
        ++i;
        bool quoted = i < s.size() && s[i] == '"';
        if (quoted) ++i;
        std::size_t v = media_value(s.substr(i));
        if (v == 0) return false;
        std::string_view value = s.substr(i, v);
        i += v;
        if (quoted) {
            if (i >= s.size() || s[i] != '"') return false;
            ++i;
        }
        out += first ? "; " : ", ";
        first = false;
        out.append(key.data(), key.size());
        out += '=';
        out.append(value.data(), value.size());
        if (out.size() > 0xFFFFu) return false;  // the canonical form must fit the frame's u16 length
    }
    return true;
}

}  // namespace detail

// A media type the reference accepts, kept in the canonical form that goes
// on the wire ("text/plain;charset=utf-8" becomes "text/plain; charset=utf-8").
class MediaType {
public:
    static Result<MediaType> parse(std::string_view s) {
        std::string canonical;
        if (!detail::canonical_media_type(s, canonical)) return fail(Errc::invalid_media_type, 0, "MediaType::parse");
        return MediaType(std::move(canonical));
    }
#if IPC_HPP_HAVE_EXCEPTIONS
    static MediaType of(std::string_view s) {
        std::string canonical;
        if (!detail::canonical_media_type(s, canonical)) throw std::invalid_argument("ipc.hpp: invalid media type");
        return MediaType(std::move(canonical));
    }
#endif
    static MediaType text_plain() { return MediaType(std::string("text/plain")); }
    static MediaType octet_stream() { return MediaType(std::string("application/octet-stream")); }

    const std::string& str() const noexcept { return value_; }
    std::string_view view() const noexcept { return value_; }
    friend bool operator==(const MediaType& a, const MediaType& b) noexcept { return a.value_ == b.value_; }
    friend bool operator!=(const MediaType& a, const MediaType& b) noexcept { return a.value_ != b.value_; }

private:
    friend class Decoder;
    friend class Message;
    explicit MediaType(std::string s) : value_(std::move(s)) {}
    std::string value_;
};

// The six messages of the protocol itself (docs/protocol.md §3). Each is text/plain.
enum class Protocol : unsigned char {
    none = 0,  // an application message
    connection_start,
    connection_start_ok,
    connection_close,
    connection_close_ok,
    heartbeat,
    message_received,
};

namespace protocol {
constexpr std::string_view media_type = "text/plain";
constexpr std::string_view connection_start = "innmind/ipc:connection.start";
constexpr std::string_view connection_start_ok = "innmind/ipc:connection.start-ok";
constexpr std::string_view connection_close = "innmind/ipc:connection.close";
constexpr std::string_view connection_close_ok = "innmind/ipc:connection.close-ok";
constexpr std::string_view heartbeat = "innmind/ipc:heartbeat";
constexpr std::string_view message_received = "innmind/ipc:message.received";

constexpr std::string_view content(Protocol p) noexcept {
    switch (p) {
        case Protocol::connection_start: return connection_start;
        case Protocol::connection_start_ok: return connection_start_ok;
        case Protocol::connection_close: return connection_close;
        case Protocol::connection_close_ok: return connection_close_ok;
        case Protocol::heartbeat: return heartbeat;
        case Protocol::message_received: return message_received;
        case Protocol::none: break;
    }
    return {};
}

// Which protocol message (media type and content) this is, or none.
inline Protocol classify(std::string_view type, std::string_view body) noexcept {
    // One candidate from the length and one distinguishing byte, then one
    // comparison: 21 (heartbeat), 28 (start, close, received), 31 (start-ok,
    // close-ok); "innmind/ipc:" is 12 bytes, "connection." 11 more.
    // The lengths are constants in each comparison, so the compiler inlines
    // them (a few word compares) rather than calling memcmp.
    Protocol p;
    bool same;
    switch (body.size()) {
        case 21:
            p = Protocol::heartbeat;
            same = std::memcmp(body.data(), heartbeat.data(), 21) == 0;
            break;
        case 28:
            p = body[12] == 'm' ? Protocol::message_received
                                : (body[23] == 's' ? Protocol::connection_start : Protocol::connection_close);
            same = std::memcmp(body.data(), content(p).data(), 28) == 0;
            break;
        case 31:
            p = body[23] == 's' ? Protocol::connection_start_ok : Protocol::connection_close_ok;
            same = std::memcmp(body.data(), content(p).data(), 31) == 0;
            break;
        default: return Protocol::none;
    }
    return same && type.size() == media_type.size() && std::memcmp(type.data(), media_type.data(), media_type.size()) == 0 ? p : Protocol::none;
}

// Whether a content of n bytes may be a protocol message's (21, 28 or 31
// bytes): the check the hot paths make before classify().
constexpr bool may_be_protocol(std::size_t n) noexcept { return n == 21 || n == 28 || n == 31; }

// Why an application message with a protocol message's media type and
// content is refused (docs/php.md): on the wire it *is* that protocol
// message, so a peer would act on it. For Error::where: static strings.
inline const char* refusal(Protocol p, bool respond) noexcept {
    switch (p) {
        case Protocol::connection_start:
            return respond ? "respond: text/plain \"innmind/ipc:connection.start\" is a protocol message on the wire"
                           : "send: text/plain \"innmind/ipc:connection.start\" is a protocol message on the wire";
        case Protocol::connection_start_ok:
            return respond ? "respond: text/plain \"innmind/ipc:connection.start-ok\" is a protocol message on the wire"
                           : "send: text/plain \"innmind/ipc:connection.start-ok\" is a protocol message on the wire";
        case Protocol::connection_close:
            return respond ? "respond: text/plain \"innmind/ipc:connection.close\" is a protocol message on the wire"
                           : "send: text/plain \"innmind/ipc:connection.close\" is a protocol message on the wire";
        case Protocol::connection_close_ok:
            return respond ? "respond: text/plain \"innmind/ipc:connection.close-ok\" is a protocol message on the wire"
                           : "send: text/plain \"innmind/ipc:connection.close-ok\" is a protocol message on the wire";
        case Protocol::heartbeat:
            return respond ? "respond: text/plain \"innmind/ipc:heartbeat\" is a protocol message on the wire"
                           : "send: text/plain \"innmind/ipc:heartbeat\" is a protocol message on the wire";
        case Protocol::message_received:
            return respond ? "respond: text/plain \"innmind/ipc:message.received\" is a protocol message on the wire"
                           : "send: text/plain \"innmind/ipc:message.received\" is a protocol message on the wire";
        case Protocol::none: break;
    }
    return respond ? "respond" : "send";
}
}  // namespace protocol

// A message: a media type and binary-safe content (any bytes, NUL
// included, at most 4 GiB - 1).
class Message {
public:
    // An empty text/plain message (no allocation).
    Message() : type_(MediaType::text_plain()) {}
    Message(MediaType type, std::string content) : type_(std::move(type)), content_(std::move(content)) {}

    // Validates the media type; refuses content over 4 GiB - 1.
    static Result<Message> make(std::string_view media_type, std::string_view content) {
        if (content.size() > std::size_t{0xFFFFFFFFu}) return fail(Errc::message_too_large, 0, "Message::make");
        auto type = MediaType::parse(media_type);
        if (!type) return fail(type.error());
        return Message(std::move(type).value(), std::string(content));
    }
#if IPC_HPP_HAVE_EXCEPTIONS
    // The seed's Message\Generic::of: throws std::invalid_argument.
    static Message of(std::string_view media_type, std::string_view content) {
        return Message(MediaType::of(media_type), std::string(content));
    }
#endif
    // A text/plain message.
    static Message text(std::string_view content) { return Message(MediaType::text_plain(), std::string(content)); }
    // One of the six protocol messages (never fails).
    static Message protocol_message(Protocol p) { return text(protocol::content(p)); }
    [[deprecated("use Message::protocol_message(p): Message::of(type, content) is the one that validates")]]
    static Message of(Protocol p) { return protocol_message(p); }

    const MediaType& media_type() const noexcept { return type_; }
    const std::string& content() const noexcept { return content_; }
    std::string& content() noexcept { return content_; }
    Protocol protocol() const noexcept { return protocol::classify(type_.view(), content_); }
    bool is_protocol() const noexcept { return protocol() != Protocol::none; }

    // Exchanges both messages' contents (and buffers).
    void swap(Message& o) noexcept {
        type_.value_.swap(o.type_.value_);
        content_.swap(o.content_);
    }
    friend void swap(Message& a, Message& b) noexcept { a.swap(b); }

    friend bool operator==(const Message& a, const Message& b) noexcept {
        return a.type_ == b.type_ && a.content_ == b.content_;
    }
    friend bool operator!=(const Message& a, const Message& b) noexcept { return !(a == b); }

private:
    friend class Decoder;
    MediaType type_;
    std::string content_;
};

// ===========================================================================
// 7. Frame codec (docs/protocol.md §2)
//    u16 BE media type length | media type | u32 BE content length | content | 0xCE
// ===========================================================================

constexpr unsigned char end_marker = 0xCE;
constexpr std::uint32_t default_max_message_size = IPC_HPP_CONFIG_MAX_MESSAGE_SIZE;

// Size of the frame for a media type and content of these sizes.
constexpr std::size_t frame_size(std::size_t type_len, std::size_t content_len) noexcept {
    return 2 + type_len + 4 + content_len + 1;
}

namespace detail {
inline void put_u16(char* p, std::uint16_t v) noexcept {
    p[0] = static_cast<char>((v >> 8) & 0xFF);
    p[1] = static_cast<char>(v & 0xFF);
}
inline void put_u32(char* p, std::uint32_t v) noexcept {
    p[0] = static_cast<char>((v >> 24) & 0xFF);
    p[1] = static_cast<char>((v >> 16) & 0xFF);
    p[2] = static_cast<char>((v >> 8) & 0xFF);
    p[3] = static_cast<char>(v & 0xFF);
}
inline std::uint16_t get_u16(const char* p) noexcept {
    return static_cast<std::uint16_t>((static_cast<unsigned>(static_cast<unsigned char>(p[0])) << 8) |
                                      static_cast<unsigned>(static_cast<unsigned char>(p[1])));
}
inline std::uint32_t get_u32(const char* p) noexcept {
    return (static_cast<std::uint32_t>(static_cast<unsigned char>(p[0])) << 24) |
           (static_cast<std::uint32_t>(static_cast<unsigned char>(p[1])) << 16) |
           (static_cast<std::uint32_t>(static_cast<unsigned char>(p[2])) << 8) |
           static_cast<std::uint32_t>(static_cast<unsigned char>(p[3]));
}
// Whether a frame can carry a media type and content of these sizes: the
// length fields are a u16 and a u32, and nothing is ever cast unchecked.
constexpr bool frame_fits(std::size_t type_len, std::size_t content_len) noexcept {
    return type_len <= 0xFFFFu && content_len <= std::size_t{0xFFFFFFFFu};
}
// The error for a frame that does not fit (frame_fits() is false).
inline Error frame_error(std::size_t type_len, const char* where) noexcept {
    return type_len > 0xFFFFu ? Error{Errc::invalid_media_type, 0, where} : Error{Errc::message_too_large, 0, where};
}
// Writes one frame at p, which has room for frame_size(type, content) bytes.
// Only called once frame_fits() held: the casts below cannot wrap.
// The header alone (frame_size(type, 0) - 1 bytes): what comes before the content.
inline void write_head(char* p, std::string_view type, std::size_t content_len) noexcept {
    put_u16(p, static_cast<std::uint16_t>(type.size()));
    if (!type.empty()) std::memcpy(p + 2, type.data(), type.size());
    put_u32(p + 2 + type.size(), static_cast<std::uint32_t>(content_len));
}
inline void write_frame(char* p, std::string_view type, std::string_view content) noexcept {
    write_head(p, type, content.size());
    p += 2 + type.size() + 4;
    if (!content.empty()) std::memcpy(p, content.data(), content.size());
    p[content.size()] = static_cast<char>(end_marker);
}
}  // namespace detail

// Appends the frame for (media type, content) to out. The media type must
// already be canonical and valid (MediaType guarantees it); lengths past the
// format's limits are refused.
inline Result<Unit> encode_to(std::string_view media_type, std::string_view content, std::string& out) {
    if (!detail::frame_fits(media_type.size(), content.size())) return fail(detail::frame_error(media_type.size(), "encode"));
    std::size_t at = out.size();
    out.resize(at + frame_size(media_type.size(), content.size()));
    detail::write_frame(&out[at], media_type, content);
    return Unit{};
}
inline Result<Unit> encode_to(const Message& m, std::string& out) {
    return encode_to(m.media_type().view(), m.content(), out);
}
// The frame of a protocol message (cannot fail).
inline void encode_to(Protocol p, std::string& out) {
    (void)encode_to(protocol::media_type, protocol::content(p), out);
}
inline Result<std::string> encode(const Message& m) {
    std::string out;
    auto r = encode_to(m, out);
    if (!r) return fail(r.error());
    return out;
}

namespace detail {
// Runs f, which allocates: false when the memory was not there. Only an
// exception says so; without exceptions, running out aborts, as any
// std::string does.
template <class F>
bool allocated(F&& f) noexcept {
#if IPC_HPP_HAVE_EXCEPTIONS
    try {
        f();
    } catch (const std::bad_alloc&) {
        return false;
    }
#else
    f();
#endif
    return true;
}
// From this size on (64 KiB), a content is received into its own string,
// and a message's content is queued without a copy (a response's moved in,
// a blocking send's lent), sent from its own bytes with sendmsg(). Measured
// (ipc_bench, 2 vCPU VM): a 64 KiB round trip on one CPU 1.6x the raw floor
// with a 1 MiB threshold, 1.2x with this one; the server's peak RSS over a
// burst of 1000 such messages 72 MB then, 20 MB now, and 4.8 KB per idle
// connection afterwards, 1.4 KB then (freed strings fragment the heap).
constexpr std::size_t large_content = std::size_t{64} << 10;
// The heap memory a string holds (none in its small-string buffer).
inline std::size_t heap_bytes(const std::string& s) noexcept {
    return s.capacity() > std::string().capacity() ? s.capacity() + 1 : 0;
}

// A growable byte buffer that, unlike std::string, does not zero-fill the
// room it makes for a read, and keeps its capacity between frames.
class Buffer {
public:
    Buffer() = default;
    Buffer(const Buffer&) = delete;
    Buffer& operator=(const Buffer&) = delete;
    Buffer(Buffer&& o) noexcept : data_(o.data_), size_(o.size_), cap_(o.cap_) { o.data_ = nullptr; o.size_ = o.cap_ = 0; }
    Buffer& operator=(Buffer&& o) noexcept {
        if (this != &o) {
            std::free(data_);
            data_ = o.data_; size_ = o.size_; cap_ = o.cap_;
            o.data_ = nullptr; o.size_ = o.cap_ = 0;
        }
        return *this;
    }
    ~Buffer() { std::free(data_); }

    char* data() noexcept { return data_; }
    const char* data() const noexcept { return data_; }
    std::size_t size() const noexcept { return size_; }
    std::size_t capacity() const noexcept { return cap_; }
    bool empty() const noexcept { return size_ == 0; }

    // Makes room for n more bytes and returns where they go (size unchanged).
    char* reserve_tail(std::size_t n) {
        if (cap_ - size_ < n) grow(n > SIZE_MAX - size_ ? SIZE_MAX : size_ + n);  // (no wrap: SIZE_MAX is never there)
        return data_ + size_;
    }
    // The same, or nullptr (nothing changed) when the memory is not there:
    // for room a peer asks for, so one peer cannot abort a server.
    char* try_reserve_tail(std::size_t n) noexcept {
        if (cap_ - size_ < n && (n > SIZE_MAX - size_ || !try_grow(size_ + n))) return nullptr;
        return data_ + size_;
    }
    void commit(std::size_t n) noexcept { size_ += n; }
    void append(const void* p, std::size_t n) {
        if (n == 0) return;
        std::memcpy(reserve_tail(n), p, n);
        size_ += n;
    }
    // Drops the first n bytes.
    void consume(std::size_t n) noexcept {
        if (n >= size_) {
            size_ = 0;
        } else {
            std::memmove(data_, data_ + n, size_ - n);
            size_ -= n;
        }
    }
    void clear() noexcept { size_ = 0; }
    // Keeps the first n bytes (n <= size()).
    void truncate(std::size_t n) noexcept {
        if (n < size_) size_ = n;
    }
    // Frees the memory when empty.
    void release() noexcept {
        if (size_ != 0) return;
        std::free(data_);
        data_ = nullptr;
        cap_ = 0;
    }
    // Gives memory back when the buffer is much larger than what it holds
    // (keep 0: all of it, when empty).
    void shrink(std::size_t keep = 4096) noexcept {
        if (cap_ <= keep || size_ > keep) return;
        if (keep == 0) {  // realloc(p, 0) may free p and return nullptr
            release();
            return;
        }
        char* p = static_cast<char*>(std::realloc(data_, keep));
        if (p != nullptr) {
            data_ = p;
            cap_ = keep;
        }
    }

private:
    void grow(std::size_t need) {
        if (!try_grow(need)) {
            IPC_HPP_CONFIG_ASSERT(false, "out of memory");
            std::abort();
        }
    }
    bool try_grow(std::size_t need) noexcept {
        std::size_t cap = cap_ < 256 ? 256 : cap_;
        while (cap < need) cap = cap > (SIZE_MAX / 2) ? need : cap * 2;
        char* p = static_cast<char*>(std::realloc(data_, cap));
        if (p == nullptr) return false;
        data_ = p;
        cap_ = cap;
        return true;
    }

    char* data_ = nullptr;
    std::size_t size_ = 0;
    std::size_t cap_ = 0;
};
// Appends one frame to a buffer, without zero-filling it first; false (and
// nothing appended) when the lengths do not fit the format.
inline bool append_frame(Buffer& out, std::string_view type, std::string_view content) {
    if (!frame_fits(type.size(), content.size())) return false;
    const std::size_t need = frame_size(type.size(), content.size());
    write_frame(out.reserve_tail(need), type, content);
    out.commit(need);
    return true;
}
// The frames of the six protocol messages, built at compile time: queuing
// an ack or a heartbeat is one copy of a few dozen bytes.
struct ProtocolFrame {
    char bytes[48];
    std::size_t size;
};
constexpr ProtocolFrame protocol_frame(Protocol p) noexcept {
    ProtocolFrame f{};
    const std::string_view type = protocol::media_type;
    const std::string_view body = protocol::content(p);
    std::size_t i = 0;
    f.bytes[i++] = static_cast<char>((type.size() >> 8) & 0xFF);
    f.bytes[i++] = static_cast<char>(type.size() & 0xFF);
    for (char c : type) f.bytes[i++] = c;
    for (int shift = 24; shift >= 0; shift -= 8) f.bytes[i++] = static_cast<char>((body.size() >> shift) & 0xFF);
    for (char c : body) f.bytes[i++] = c;
    f.bytes[i++] = static_cast<char>(end_marker);
    f.size = i;
    return f;
}
inline constexpr ProtocolFrame protocol_frames[7] = {
    ProtocolFrame{},
    protocol_frame(Protocol::connection_start),
    protocol_frame(Protocol::connection_start_ok),
    protocol_frame(Protocol::connection_close),
    protocol_frame(Protocol::connection_close_ok),
    protocol_frame(Protocol::heartbeat),
    protocol_frame(Protocol::message_received),
};
static_assert(protocol_frames[6].size == frame_size(10, 28), "the ack frame is 45 bytes");
inline void append_frame(Buffer& out, Protocol p) {
    const ProtocolFrame& f = protocol_frames[static_cast<unsigned char>(p)];
    out.append(f.bytes, f.size);
}
}  // namespace detail

// Incremental frame decoder. Feed it bytes in chunks of any size (one at a
// time included) and take complete messages out with next(). A frame whose
// announced content exceeds the maximum is refused from its length prefix,
// before anything is allocated for it. Errors are sticky: once next()
// returned `error`, the stream cannot be resynchronised and the connection
// should be dropped.
class Decoder {
public:
    enum class Status : unsigned char { message, need_more, error };

    explicit Decoder(std::uint32_t max_message_size = default_max_message_size) noexcept { set_max_message_size(max_message_size); }

    std::uint32_t max_message_size() const noexcept { return max_; }
    // Also bounded by what a std::string of this build can hold (about
    // 1 GiB with a 32-bit size_t), so that frame_size() below cannot wrap.
    void set_max_message_size(std::uint32_t m) noexcept {
        max_ = m;
        const std::size_t room = std::string().max_size();
        limit_ = std::size_t{m} < room ? m : static_cast<std::uint32_t>(room);
    }

    // Copies bytes in.
    void feed(const void* data, std::size_t n) {
        if (direct_) {  // the rest of a large content (and its end marker) goes to its own string
            const std::size_t take = n < direct_left() ? n : direct_left();
            if (take != 0) std::memcpy(body_room(take), data, take);
            body_have_ += take;
            data = static_cast<const char*>(data) + take;
            n -= take;
        }
        compact();
        buf_.append(data, n);
    }
    void feed(std::string_view s) { feed(s.data(), s.size()); }

    // Zero-copy feeding: get room for up to n bytes, read into it, then
    // commit how many arrived.
    char* prepare(std::size_t n) {
        if (direct_) return body_room(n);
        compact();
        return buf_.reserve_tail(n);
    }
    // The same, or nullptr when the memory is not there.
    char* try_prepare(std::size_t n) noexcept {
        if (direct_) {
            char* p = nullptr;
            return detail::allocated([&] { p = body_room(n); }) ? p : nullptr;
        }
        compact();
        return buf_.try_reserve_tail(n);
    }
    void commit(std::size_t n) noexcept {
        if (!direct_) {
            buf_.commit(n);
            return;
        }
        body_have_ += n;
        if (body_have_ > body_.size()) body_have_ = body_.size();  // more than prepare() gave: not possible
        const std::size_t whole = std::size_t{body_len_} + 1;  // the content and its end marker
        if (body_have_ > whole) {  // what follows belongs to the next frames
            compact();
            buf_.append(body_.data() + whole, body_have_ - whole);
            body_have_ = whole;
        }
    }

    // A content of at least this many bytes that has not all arrived yet is
    // received straight into its own string, which store() then hands to
    // the message (no copy); a smaller one is decoded from the receive
    // buffer. 64 KiB (detail::large_content) unless set.
    void set_direct_threshold(std::size_t n) noexcept { direct_from_ = n; }

    // A decoded frame, as views into the decoder: valid until the next call
    // to next(), feed(), prepare() or shrink() on the same decoder. Only a
    // Decoder makes one, so its media type is always valid and canonical.
    class Frame {
    public:
        Frame() = default;
        std::string_view media_type() const noexcept { return type_; }
        std::string_view content() const noexcept { return content_; }
        // Which protocol message this is, or Protocol::none.
        Protocol protocol() const noexcept { return protocol::classify(type_, content_); }

    private:
        friend class Decoder;
        std::string_view type_;
        std::string_view content_;
        std::string* owned_ = nullptr;  // the content's own string (a direct frame), for store()
    };

    // Decodes the next complete frame into `out`.
    Status next(Message& out) {
        Frame f;
        const Status st = next(f);
        if (st == Status::message) store(f, out);
        return st;
    }
    // Copies a frame into a message, reusing the message's buffers; a
    // direct frame's content is not copied but exchanged with the message's
    // (once: the frame's content is then the message's). The message's old
    // content is kept for the next large frame (see begin_direct()).
    static void store(const Frame& f, Message& out) {
        if (!same_type(out.type_.value_, f.type_)) out.type_.value_.assign(f.type_.data(), f.type_.size());
        if (f.owned_ != nullptr && f.owned_->data() == f.content_.data()) {
            out.content_.swap(*f.owned_);
        } else {
            overwrite(out.content_, f.content_);
        }
    }

    // Decodes the next complete frame without copying it (see Frame).
    Status next(Frame& out) {
        if (failed_) return Status::error;
        if (direct_) return next_direct(out);
        const std::size_t avail = buf_.size() - pos_;
        const char* p = buf_.data() + pos_;
        if (avail < 2) return Status::need_more;
        const std::size_t type_len = detail::get_u16(p);
        if (avail < 2 + type_len) return Status::need_more;
        std::string_view raw_type(p + 2, type_len);
        if (!checked_) {
            // Validate the media type as soon as it is complete; a peer
            // usually repeats the same one, which is then not parsed again.
            plain_ = protocol::media_type == raw_type;
            if (!plain_ && (!raw_known_ || raw_type != std::string_view(raw_))) {
                if (!detail::canonical_media_type(raw_type, type_)) {
                    raw_known_ = false;
                    return error(Errc::invalid_media_type, "decode: media type refused");
                }
                raw_.assign(raw_type.data(), raw_type.size());
                raw_known_ = true;
            }
            checked_ = true;
        }
        if (avail < 2 + type_len + 4) return Status::need_more;
        const std::uint32_t content_len = detail::get_u32(p + 2 + type_len);
        if (content_len > limit_)
            return error(Errc::message_too_large, "decode: announced content length");
        const std::size_t total = frame_size(type_len, content_len);
        if (avail < total) {
            want_ = total;
            // A large content goes straight to its own string, once a
            // sixteenth of it has arrived: the string is reserved whole,
            // and a peer that lies about a length is never given room for
            // more than 16 times what it sent.
            const std::size_t have = avail - (2 + type_len + 4);
            if (content_len >= direct_from_ && have >= content_len / 16) begin_direct(type_len, content_len, have);
            return Status::need_more;
        }
        if (static_cast<unsigned char>(p[total - 1]) != end_marker) return error(Errc::malformed_frame, "decode: end marker is not 0xCE");
        out.type_ = plain_ ? protocol::media_type : std::string_view(type_);
        out.content_ = std::string_view(p + 2 + type_len + 4, content_len);
        out.owned_ = nullptr;
        pos_ += total;
        checked_ = false;
        want_ = 0;
        return Status::message;
    }

    const Error& last_error() const noexcept { return error_; }
    bool failed() const noexcept { return failed_; }
    // Nothing is buffered after the frames taken out: next() would say need_more.
    bool drained() const noexcept { return !direct_ && pos_ == buf_.size(); }
    // Bytes received and not yet consumed as frames.
    std::size_t buffered() const noexcept { return buf_.size() - pos_ + (direct_ ? head_ + body_have_ : 0); }
    // Bytes the current partial frame needs in all (0 when unknown).
    std::size_t wanted() const noexcept { return want_; }
    // The memory held for large frames, as asked of the allocator (what it
    // keeps resident is less, or as much): a receive buffer grown past the
    // small one every connection keeps (a frame's first sixteenth, or
    // frames pipelined), and the string of the frame being received
    // (reserved whole once its first sixteenth is in) or the one kept for
    // the next (recycle()). 0 when neither is held.
    std::size_t reserved() const noexcept {
        const std::size_t in_buffer = buf_.capacity() > keep_buffer ? buf_.capacity() : 0;
        return in_buffer + detail::heap_bytes(body_);
    }
    // Gives memory back after a burst of large messages.
    void shrink() {
        compact();
        buf_.shrink();
        if (!direct_) std::string().swap(body_);
        if (!checked_ && type_.capacity() > 256) {
            std::string().swap(type_);
            std::string().swap(raw_);
            raw_known_ = false;
        }
    }
    std::size_t capacity() const noexcept { return buf_.capacity() + detail::heap_bytes(body_); }
    // Room a direct frame has in memory it already holds (a recycled string).
    std::size_t spare_room() const noexcept { return direct_ && body_.size() > body_have_ ? body_.size() - body_have_ : 0; }
    // A large string that is done with (a content that was sent): kept for
    // the next large frame when it is larger than the one kept, until
    // shrink() or release().
    void recycle(std::string&& s) noexcept {
        if (!direct_ && s.capacity() > body_.capacity()) body_.swap(s);
    }
    // Frees the read buffers when no frame is in progress (idle connections).
    void release() noexcept {
        compact();
        if (buf_.size() == 0) buf_.release();
        if (!direct_) std::string().swap(body_);
    }
    // The same, but what the next frame of about `size` bytes would use
    // again is kept: a small receive buffer, and a string kept for large
    // contents (recycle()) of at most twice that.
    void trim(std::size_t size) noexcept {
        compact();
        if (buf_.size() == 0 && buf_.capacity() > keep_buffer) buf_.release();
        if (!direct_ && body_.capacity() > 2 * size + keep_buffer) std::string().swap(body_);
    }
    void reset() noexcept {
        buf_.clear();
        direct_ = false;
        body_.clear();
        body_have_ = 0;
        pos_ = 0;
        failed_ = false;
        checked_ = false;
        want_ = 0;
    }

private:
    // Whether a message's media type already is a frame's: text/plain (the
    // usual one, whose view is protocol::media_type itself) is compared with
    // a length known at compile time, which the compiler inlines.
    static bool same_type(const std::string& have, std::string_view want) noexcept {
        if (want.data() == protocol::media_type.data())
            return have.size() == protocol::media_type.size() && std::memcmp(have.data(), protocol::media_type.data(), protocol::media_type.size()) == 0;
        return std::string_view(have) == want;
    }
    // s = v, without std::string's general assignment when s is already at
    // least as long (a steady exchange of one size): a copy, then a cut.
    static void overwrite(std::string& s, std::string_view v) {
        if (s.size() < v.size()) {
            s.assign(v.data(), v.size());
            return;
        }
        if (!v.empty()) std::memcpy(&s[0], v.data(), v.size());
        if (s.size() != v.size()) s.resize(v.size());
    }

    Status error(Errc c, const char* where) {
        failed_ = true;
        error_ = Error{c, 0, where};
        return Status::error;
    }
    void compact() noexcept {
        if (pos_ == 0) return;
        buf_.consume(pos_);
        pos_ = 0;
    }

    // A large content goes to body_ from here on: what of it is buffered
    // moves there (all that is buffered: the frame is not complete), the
    // header is consumed and the receive buffer given back; the type stays
    // in type_ (or plain_). Without the memory, decoding goes on from the
    // receive buffer (which can fail gently, see try_prepare()).
    // A string kept from before (recycle(), or a message's old content
    // from store()) that can hold the frame is written over as it is: its
    // bytes were zeroed once already, and need not be again.
    void begin_direct(std::size_t type_len, std::uint32_t content_len, std::size_t have) {
        head_ = 2 + type_len + 4;
        if (body_.capacity() < std::size_t{content_len} + 1) {
            body_.clear();  // (so that reserve() copies nothing)
            if (!detail::allocated([&] { body_.reserve(std::size_t{content_len} + 1); })) return;
        }
        body_have_ = 0;
        if (have != 0) std::memcpy(body_room(have), buf_.data() + pos_ + head_, have);
        body_have_ = have;
        // A kept string a little short of the frame (its end marker, say)
        // is made whole now, so that reads are not cut at its old size.
        const std::size_t whole = std::size_t{content_len} + 1;
        if (body_.size() > have && body_.size() < whole && whole - body_.size() <= keep_buffer) body_.resize(whole);
        body_len_ = content_len;
        pos_ = buf_.size();
        compact();
        if (buf_.capacity() > keep_buffer) buf_.release();  // (a small one is kept for the frames after)
        direct_ = true;
    }
    std::size_t direct_left() const noexcept { return std::size_t{body_len_} + 1 - body_have_; }
    // Room in body_ for n more bytes after the body_have_ that came: the
    // string grows to it (within what was reserved, unless n runs past the
    // frame) and is not cut back until the frame is complete, so each byte
    // is zeroed by resize() once, not once per read (a 1 MiB content was
    // zeroed about five times over: 1.46 M of 1.60 M instructions per round
    // trip, by callgrind).
    char* body_room(std::size_t n) {
        if (body_.size() < body_have_ + n) body_.resize(body_have_ + n);
        return &body_[body_have_];
    }
    Status next_direct(Frame& out) {
        if (body_have_ <= body_len_) return Status::need_more;
        if (static_cast<unsigned char>(body_[body_len_]) != end_marker) return error(Errc::malformed_frame, "decode: end marker is not 0xCE");
        body_.resize(body_len_);
        direct_ = false;
        out.type_ = plain_ ? protocol::media_type : std::string_view(type_);
        out.content_ = std::string_view(body_.data(), body_.size());
        out.owned_ = &body_;
        body_have_ = 0;
        checked_ = false;
        want_ = 0;
        return Status::message;
    }

    detail::Buffer buf_;
    std::string type_;  // the current frame's media type, canonical
    std::string raw_;   // ... as it came on the wire
    bool raw_known_ = false;
    bool plain_ = false;  // the current frame is text/plain (the protocol's own type)
    std::size_t pos_ = 0;
    std::size_t want_ = 0;
    std::uint32_t max_ = 0;
    std::uint32_t limit_ = 0;  // max_, or less when a std::string cannot hold it
    bool failed_ = false;
    bool checked_ = false;
    // a direct frame (see set_direct_threshold): its content, as it arrives
    bool direct_ = false;
    std::string body_;
    std::size_t body_have_ = 0;  // bytes of body_ that arrived (its size is the room given so far)
    std::size_t head_ = 0;       // the frame's header, consumed from buf_
    std::uint32_t body_len_ = 0;
    std::size_t direct_from_ = detail::large_content;
    static constexpr std::size_t keep_buffer = std::size_t{64} << 10;
    Error error_{};
};

// ===========================================================================
// 8. Time, peers and configuration
// ===========================================================================

// A duration in milliseconds; negative means "no limit".
class Milliseconds {
public:
    constexpr explicit Milliseconds(std::int64_t ms) noexcept : ms_(ms) {}
    // Any std::chrono::duration converts, implicitly (p.wait(500ms)),
    // without this header including <chrono> (measured: +3,300 lines and
    // about 7% of a TU that includes only ipc.hpp): a type with count() and
    // a ratio `period` is taken for one. Rounded up to whole milliseconds
    // (a timeout is never shorter than asked), saturated instead of
    // overflowing; a negative duration means no limit, as a negative count.
    template <class D, class P = typename D::period, class = decltype(std::declval<const D&>().count())>
    constexpr Milliseconds(const D& d) noexcept : ms_(from(d.count(), P::num, P::den)) {}
    static constexpr Milliseconds forever() noexcept { return Milliseconds(-1); }
    constexpr std::int64_t count() const noexcept { return ms_; }
    constexpr bool is_forever() const noexcept { return ms_ < 0; }
    friend constexpr bool operator==(Milliseconds a, Milliseconds b) noexcept { return a.ms_ == b.ms_; }
    friend constexpr bool operator!=(Milliseconds a, Milliseconds b) noexcept { return a.ms_ != b.ms_; }

private:
    static constexpr std::intmax_t gcd(std::intmax_t x, std::intmax_t y) noexcept {
        while (y != 0) {
            const std::intmax_t t = x % y;
            x = y;
            y = t;
        }
        return x;
    }
    // count * num / den seconds in whole milliseconds, rounded up.
    template <class Rep>
    static constexpr std::int64_t from(Rep count, std::intmax_t num, std::intmax_t den) noexcept {
        constexpr std::int64_t top = 0x7FFFFFFFFFFFFFFF;
        if (count < 0) return -1;
        // In milliseconds: count * (num * 1000) / den, computed as
        // count * a / b with a / b the ratio reduced.
        const std::intmax_t g = gcd(num * 1000, den);
        const std::intmax_t a = num * 1000 / g, b = den / g;
        if constexpr (std::is_integral<Rep>::value) {
            if constexpr (std::is_unsigned<Rep>::value) {
                if (static_cast<std::uintmax_t>(count) > static_cast<std::uintmax_t>(top)) return top;
            }
            const std::intmax_t c = static_cast<std::intmax_t>(count);
            if (c > top / a) return top;
            const std::intmax_t q = c * a;
            return static_cast<std::int64_t>(q / b + (q % b != 0 ? 1 : 0));
        } else {  // a floating-point count
            const long double exact = static_cast<long double>(count) * static_cast<long double>(a) / static_cast<long double>(b);
            if (!(exact < static_cast<long double>(top))) return top;
            std::int64_t whole = static_cast<std::int64_t>(exact);
            if (static_cast<long double>(whole) < exact) ++whole;
            return whole;
        }
    }

    std::int64_t ms_;
};

// A process's credentials as the kernel reports them (SO_PEERCRED).
struct Peer {
    pid_t pid = 0;
    uid_t uid = static_cast<uid_t>(-1);
    gid_t gid = static_cast<gid_t>(-1);
};

// Every run-time setting, for clients and servers alike. Ipc copies it.
struct Config {
    // Where servers live; empty means $TMPDIR/innmind/ipc (else /tmp/innmind/ipc).
    std::string directory;
    // The heartbeat period. A waiting client heartbeats after a period of
    // silence; a server heartbeats a client silent for 1.5 periods
    // (docs/protocol.md §4).
    Milliseconds heartbeat{IPC_HPP_CONFIG_HEARTBEAT_MS};
    // How long get() waits for the server's `connection start`, and how
    // long a server keeps a peer that has not answered it.
    Milliseconds handshake_timeout{5000};
    // How long close() (and a Process's destructor) waits for `close ok`.
    Milliseconds close_timeout{1000};
    // How long a graceful shutdown waits for the clients' `close ok`.
    Milliseconds shutdown_timeout{IPC_HPP_CONFIG_SHUTDOWN_MS};
    std::uint32_t max_message_size = default_max_message_size;
    // Most bytes a server may have queued for one client that does not read;
    // past it, that client is dropped. 0 = max frame size + 1 MiB.
    std::size_t max_queued_bytes = 0;
    // What a client keeps of the server's application messages that it has
    // received but not yet handed out (replies that came before an ack, or
    // while nobody called wait()/take()): at most this many messages, and
    // this many content bytes (0 = max_message_size + 1 MiB). Past either,
    // the connection fails with Errc::inbox_full: a server that floods a
    // client cannot grow its memory without limit.
    std::size_t max_inbox_messages = 1024;
    std::size_t max_inbox_bytes = 0;
    // true: the server puts each ack on the wire before calling the reducer,
    // as the reference does, so a client's send() returns while a slow
    // reducer works. false (default): the ack leaves with the response in
    // one send() once the reducer returns — one syscall and one wake-up less
    // per round trip; choose true when reducers may take longer than your
    // clients' send() timeouts.
    bool flush_ack_before_reducer = false;
    mode_t socket_mode = 0600;     // the server's socket file
    mode_t directory_mode = 0700;  // directories ipc.hpp creates
    // A server refuses (Errc::insecure_directory) a socket directory, or an
    // ancestor, that is not owned by its effective uid or root, or that
    // others could write to (unless sticky, like /tmp): whoever can rename
    // entries there can swap sockets. true: you know who shares it.
    bool allow_shared_directory = false;
    // Whose servers a client talks to: a socket file owned by, and a server
    // process (SO_PEERCRED) running as, this uid. (uid_t)-1 (the default):
    // our own effective uid or root.
    uid_t expect_server_uid = static_cast<uid_t>(-1);
    // How long a server keeps a peer that takes none of what is queued for
    // it (its socket stays full), before dropping it (DropReason::queue_full),
    // even while the queue is under max_queued_bytes. Negative: no limit.
    Milliseconds stall_timeout{5000};
    // Most bytes a server holds for all its clients together: what is queued
    // for them, and the buffers their large frames take. Past it, buffers
    // kept for later are given back and one client at a time is read, once
    // no answer waits anywhere (backpressure: the kernel's socket buffers
    // fill and the others' sends block); a client that takes nothing for
    // stall_timeout, or does not finish its frame within stall_timeout of
    // its turn, is dropped (DropReason::queue_full). 0 = 4 times the bound
    // for one client (max_queued_bytes): about 261 MiB by default.
    std::size_t max_total_queued_bytes = 0;
    // Most connections a server keeps; one more is accepted, sent
    // `connection close` and closed at once (DropReason::too_many_connections).
    std::size_t max_connections = 4096;
    // The first time a connection has this many bytes queued (a large
    // message, either side), its socket's send buffer is set to this
    // (SO_SNDBUF: the kernel doubles it, and caps it at net.core.wmem_max).
    // Measured on a 2 vCPU VM, 1 MiB round trips across two CPUs: about a
    // third faster than with the default 208 KiB; larger values slowed the
    // same-CPU case. 0: the kernel's default is left alone.
    std::size_t send_buffer = 256 * 1024;
};

// ===========================================================================
// 9. detail: clock, file descriptors, syscalls, paths, liveness
//    One policy for every syscall: EINTR is retried against a recomputed
//    deadline; sends use MSG_NOSIGNAL; fds are close-on-exec; close() is
//    never retried; every timeout is measured on CLOCK_MONOTONIC.
// ===========================================================================

namespace detail {

inline std::int64_t now_ms() noexcept {
    struct timespec ts {};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<std::int64_t>(ts.tv_sec) * 1000 + static_cast<std::int64_t>(ts.tv_nsec / 1000000);
}

constexpr std::int64_t never = INT64_MAX;

// a + b milliseconds, saturating at `never` (b >= 0): a huge timeout means
// "practically forever", never an overflow.
constexpr std::int64_t later(std::int64_t a, std::int64_t b) noexcept {
    return a > never - b ? never : a + b;
}

// A point on the monotonic clock, or never.
class Deadline {
public:
    static Deadline after(Milliseconds d) noexcept { return d.is_forever() ? Deadline{} : after(d, now_ms()); }
    static Deadline after(Milliseconds d, std::int64_t now) noexcept {
        Deadline x;
        if (!d.is_forever()) x.at_ = later(now, d.count());
        return x;
    }
    static Deadline never() noexcept { return Deadline{}; }
    bool is_never() const noexcept { return at_ < 0; }
    bool passed(std::int64_t now) const noexcept { return at_ >= 0 && now >= at_; }
    bool passed() const noexcept { return passed(now_ms()); }
    // Milliseconds left at `now`, clamped to [0, cap] (cap < 0: no cap) and
    // to what poll() takes; -1 = infinite.
    int poll_timeout(std::int64_t now, std::int64_t cap) const noexcept {
        std::int64_t left = -1;
        if (at_ >= 0) {
            left = at_ - now;
            if (left < 0) left = 0;
        }
        if (cap >= 0 && (left < 0 || cap < left)) left = cap;
        if (left > 0x7FFFFFFF) left = 0x7FFFFFFF;
        return static_cast<int>(left);
    }
    int poll_timeout(std::int64_t cap = -1) const noexcept { return at_ < 0 && cap < 0 ? -1 : poll_timeout(now_ms(), cap); }

private:
    std::int64_t at_ = -1;
};

// An owned file descriptor.
class Fd {
public:
    Fd() = default;
    explicit Fd(int fd) noexcept : fd_(fd) {}
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
    Fd(Fd&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
    Fd& operator=(Fd&& o) noexcept {
        if (this != &o) {
            reset();
            fd_ = o.fd_;
            o.fd_ = -1;
        }
        return *this;
    }
    ~Fd() { reset(); }
    int get() const noexcept { return fd_; }
    bool valid() const noexcept { return fd_ >= 0; }
    void reset() noexcept {
        if (fd_ >= 0) ::close(fd_);  // never retried: the fd is gone either way on Linux
        fd_ = -1;
    }

private:
    int fd_ = -1;
};

// ---- fork() (docs/design.md, "Handles and fork()") ----------------------
// A handle acts only in the process that made it. In a forked child its
// copy is inert: destroying it (or close()) closes its fds and nothing
// else, and any other call is refused (IPC_HPP_CONFIG_ASSERT). A child is
// told apart by a counter that a pthread_atfork() child handler bumps in
// each new child: one load, where getpid() is a system call.
//
// The same handler takes away the child's references to the name locks
// its parent holds. A lock (OFD or flock) belongs to the open file
// description, which fork() shares with the child (O_CLOEXEC only helps an
// exec), so a long-lived child would otherwise keep a restarted server
// out. Each held lock's fd is listed in held_locks; in the child, each one
// is replaced (dup3) by an fd of /dev/null, so the number stays taken and
// the child's copy later closes that instead. While a lock is held, fork()
// returns in the parent only once the child has done so (a pipe: the
// child writes a byte, or dies), so no restart can race the child.
// (Classic fcntl() locks, which a child does not inherit, were not chosen:
// any close() of any fd of the file, a probe's included, drops them.)
// Written down: a child made by a raw clone(), vfork() or posix_spawn()
// runs no handler (it execs or exits at once); a fork() in one thread while
// another takes or drops a lock may leave the child one unlisted
// reference, and a concurrent fork() in another thread may inherit the
// pipe and delay this parent until that child execs or exits; more than
// lock_slots locks at once are not all listed.
inline std::atomic<unsigned> fork_count{0};
constexpr std::size_t lock_slots = 64;
inline std::atomic<int> held_locks[lock_slots];  // fd + 1 of each name lock held; 0: a free slot
inline thread_local int fork_sync[2] = {-1, -1};  // the pipe of a fork() under way in this thread

extern "C" inline void ipc_hpp_v0_2_before_fork() {
    fork_sync[0] = fork_sync[1] = -1;
    bool held = false;
    for (auto& slot : held_locks) held = held || slot.load(std::memory_order_relaxed) > 0;
    if (!held) return;
    const int saved = errno;
    int p[2];
#if IPC_HPP_HAVE_SOCK_CLOEXEC
    const bool made = ::pipe2(p, O_CLOEXEC) == 0;
#else
    const bool made = ::pipe(p) == 0;
#endif
    if (made) {
        fork_sync[0] = p[0];
        fork_sync[1] = p[1];
    }
    errno = saved;
}

extern "C" inline void ipc_hpp_v0_2_after_fork_in_parent() {
    if (fork_sync[0] < 0) return;
    const int saved = errno;  // fork()'s, when it failed
    ::close(fork_sync[1]);
    char b;
    ssize_t n;
    do {
        n = ::read(fork_sync[0], &b, 1);  // the child's byte, or EOF when it is gone (or was never made)
    } while (n < 0 && errno == EINTR);
    ::close(fork_sync[0]);
    fork_sync[0] = fork_sync[1] = -1;
    errno = saved;
}

extern "C" inline void ipc_hpp_v0_2_after_fork_in_child() {
    const int saved = errno;
    fork_count.fetch_add(1, std::memory_order_relaxed);
    int inert = -1;
    for (auto& slot : held_locks) {
        const int v = slot.exchange(0, std::memory_order_relaxed);  // the child holds none of them
        if (v <= 0) continue;
        if (inert < 0) inert = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (inert < 0) {  // no /dev/null (a bare chroot): an empty pipe does as well
            int p[2];
            if (::pipe(p) == 0) {
                ::close(p[1]);
                inert = p[0];
            }
        }
        if (inert < 0) continue;  // then this child keeps the lock until it drops its copy
#if IPC_HPP_HAVE_SOCK_CLOEXEC
        (void)::dup3(inert, v - 1, O_CLOEXEC);
#else
        if (::dup2(inert, v - 1) >= 0) (void)::fcntl(v - 1, F_SETFD, FD_CLOEXEC);
#endif
    }
    if (inert >= 0) ::close(inert);
    if (fork_sync[0] >= 0) {  // the parent waits for this
        ::close(fork_sync[0]);
        const char b = 1;
        while (::write(fork_sync[1], &b, 1) < 0 && errno == EINTR) {
        }
        ::close(fork_sync[1]);
        fork_sync[0] = fork_sync[1] = -1;
    }
    errno = saved;
}

// Registers the handler, once per program; false where it cannot be.
inline bool fork_watched() noexcept {
#if IPC_HPP_HAVE_PTHREAD_ATFORK
    static const bool watched =
        ::pthread_atfork(&ipc_hpp_v0_2_before_fork, &ipc_hpp_v0_2_after_fork_in_parent, &ipc_hpp_v0_2_after_fork_in_child) == 0;
    return watched;
#else
    return false;
#endif
}

// The process that made a handle.
class Owner {
public:
    Owner() noexcept : watched_(fork_watched()), forks_(fork_count.load(std::memory_order_relaxed)), pid_(::getpid()) {}
    // Whether this is still that process (a getpid() where fork() is not watched).
    bool here() const noexcept { return watched_ ? forks_ == fork_count.load(std::memory_order_relaxed) : ::getpid() == pid_; }
    // The same for the hot paths, at the cost of a load: true where it
    // cannot be told without a system call (unwatched, the count stays 0).
    bool here_cheaply() const noexcept { return forks_ == fork_count.load(std::memory_order_relaxed); }

private:
    bool watched_;
    unsigned forks_;
    pid_t pid_;
};

// A name lock's fd, listed in held_locks while it is open (see above).
class HeldLock {
public:
    HeldLock() = default;
    explicit HeldLock(Fd fd) noexcept : fd_(std::move(fd)) {
        for (auto& slot : held_locks) {
            int free_slot = 0;
            if (slot.compare_exchange_strong(free_slot, fd_.get() + 1, std::memory_order_relaxed)) break;
        }
    }
    HeldLock(HeldLock&& o) noexcept : fd_(std::move(o.fd_)) {}
    HeldLock& operator=(HeldLock&& o) noexcept {
        if (this != &o) {
            reset();
            fd_ = std::move(o.fd_);
        }
        return *this;
    }
    HeldLock(const HeldLock&) = delete;
    HeldLock& operator=(const HeldLock&) = delete;
    ~HeldLock() { reset(); }
    int get() const noexcept { return fd_.get(); }
    // Unlisted first, then closed: the number is never listed once it may be reused.
    void reset() noexcept {
        if (!fd_.valid()) return;
        for (auto& slot : held_locks) {
            int mine = fd_.get() + 1;
            if (slot.compare_exchange_strong(mine, 0, std::memory_order_relaxed)) break;
        }
        fd_.reset();
    }

private:
    Fd fd_;
};

inline bool set_nonblock_cloexec(int fd) noexcept {
    int fl = ::fcntl(fd, F_GETFL);
    if (fl < 0 || ::fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) return false;
    int fdfl = ::fcntl(fd, F_GETFD);
    return fdfl >= 0 && ::fcntl(fd, F_SETFD, fdfl | FD_CLOEXEC) >= 0;
}

// A non-blocking, close-on-exec AF_UNIX stream socket.
// Without MSG_NOSIGNAL, a socket option keeps SIGPIPE away where the
// platform has one (SO_NOSIGPIPE, BSDs); elsewhere send_some() blocks it
// around each send (SigpipeGuard).
inline void no_sigpipe(int fd) noexcept {
#if !IPC_HPP_HAVE_MSG_NOSIGNAL && defined(SO_NOSIGPIPE)
    int one = 1;
    (void)::setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &one, sizeof one);
#else
    (void)fd;
#endif
}

inline Result<Fd> stream_socket() {
#if IPC_HPP_HAVE_SOCK_CLOEXEC
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) return fail(Errc::socket, errno, "socket");
    no_sigpipe(fd);
    return Fd(fd);
#else
    int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0) return fail(Errc::socket, errno, "socket");
    Fd owned(fd);
    if (!set_nonblock_cloexec(fd)) return fail(Errc::socket, errno, "fcntl");
    no_sigpipe(fd);
    return owned;
#endif
}

// The credentials of the process at the other end of a connected socket
// (SO_PEERCRED); false when the platform cannot tell (peer left unknown).
inline bool peer_of(int fd, Peer& peer) noexcept {
#if IPC_HPP_HAVE_SO_PEERCRED
    struct ucred cred {};
    socklen_t len = sizeof cred;
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return false;
    peer.pid = cred.pid;
    peer.uid = cred.uid;
    peer.gid = cred.gid;
    return true;
#else
    (void)fd;
    (void)peer;
    return false;
#endif
}

inline int send_flags() noexcept {
#if IPC_HPP_HAVE_MSG_NOSIGNAL
    return MSG_NOSIGNAL | MSG_DONTWAIT;
#else
    return MSG_DONTWAIT;
#endif
}

#if !IPC_HPP_HAVE_MSG_NOSIGNAL
// Without MSG_NOSIGNAL, SIGPIPE is blocked in the calling thread for the
// send, and one that the send raised is taken off the pending set (one that
// was pending before is left alone). On macOS (no sigtimedwait) set
// SO_NOSIGPIPE on each socket instead.
class SigpipeGuard {
public:
    SigpipeGuard() noexcept {
        sigemptyset(&pipe_);
        sigaddset(&pipe_, SIGPIPE);
        sigset_t pending;
        sigemptyset(&pending);
        was_pending_ = ::sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE) == 1;
        ::pthread_sigmask(SIG_BLOCK, &pipe_, &old_);
    }
    ~SigpipeGuard() {
        int saved = errno;
        if (!was_pending_) {
            sigset_t pending;
            sigemptyset(&pending);
            if (::sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE) == 1) {
                struct timespec zero {};
                while (::sigtimedwait(&pipe_, nullptr, &zero) < 0 && errno == EINTR) {
                }
            }
        }
        ::pthread_sigmask(SIG_SETMASK, &old_, nullptr);
        errno = saved;
    }
    SigpipeGuard(const SigpipeGuard&) = delete;
    SigpipeGuard& operator=(const SigpipeGuard&) = delete;

private:
    sigset_t pipe_;
    sigset_t old_;
    bool was_pending_ = false;
};
#endif

// One send(): bytes written (>= 0, 0 when the socket is full) or -1 with errno.
// Bytes to write, one of up to three pieces sent in order in one call.
struct Piece {
    const char* data;
    std::size_t size;
};
// One send() of one piece, or one sendmsg() of several (a frame around a
// large content that is sent from its own bytes).
inline long send_pieces(int fd, const Piece* pieces, std::size_t count) noexcept {
#if !IPC_HPP_HAVE_MSG_NOSIGNAL
    SigpipeGuard no_sigpipe;
#endif
    struct iovec v[3];
    struct msghdr msg {};
    if (count > 1) {
        if (count > 3) count = 3;
        for (std::size_t i = 0; i < count; ++i) {
            v[i].iov_base = const_cast<char*>(pieces[i].data);
            v[i].iov_len = pieces[i].size;
        }
        msg.msg_iov = v;
        msg.msg_iovlen = static_cast<decltype(msg.msg_iovlen)>(count);
    }
    for (;;) {
        ssize_t r = count > 1 ? ::sendmsg(fd, &msg, send_flags()) : ::send(fd, pieces[0].data, pieces[0].size, send_flags());
        if (r >= 0) return static_cast<long>(r);
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
        return -1;
    }
}
inline long send_some(int fd, const char* p, std::size_t n) noexcept {
    const Piece one{p, n};
    return send_pieces(fd, &one, 1);
}

// One recv(): bytes read, 0 at end of file, -2 when nothing is there, -1 on error.
inline long recv_some(int fd, char* p, std::size_t n) noexcept {
    for (;;) {
        ssize_t r = ::recv(fd, p, n, MSG_DONTWAIT);
        if (r >= 0) return static_cast<long>(r);
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return -2;
        return -1;
    }
}

// poll() on one fd until ready or the deadline; cap bounds one wait (ms).
// Returns revents, 0 on timeout, -1 on error.
inline int poll_one(int fd, short events, const Deadline& deadline, std::int64_t cap = -1) noexcept {
    for (;;) {
        struct pollfd p {};
        p.fd = fd;
        p.events = events;
        int r = ::poll(&p, 1, deadline.poll_timeout(cap));
        if (r > 0) return p.revents;
        if (r == 0) return 0;
        if (errno != EINTR) return -1;
    }
}

inline Error io_error(int err, const char* where) noexcept {
    if (err == EPIPE || err == ECONNRESET || err == ENOTCONN) return Error{Errc::closed_by_peer, err, where};
    return Error{Errc::io, err, where};
}

// The reference's default directory: sys_get_temp_dir() . '/innmind/ipc'.
inline std::string default_directory() {
    const char* tmp = std::getenv("TMPDIR");
    std::string dir = (tmp != nullptr && *tmp != '\0') ? std::string(tmp) : std::string("/tmp");
    while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
    if (dir != "/") dir += '/';
    dir += "innmind/ipc";
    return dir;
}

// ---- The socket directory (docs/filesystem.md) ---------------------------

// `dir` as an absolute path without ".", "..", "//" or symlinks: the longest
// prefix that exists goes through realpath(), the rest is normalised as
// written. Every later bind, connect, listing and /proc/net/unix match uses
// this one spelling, however the caller wrote it.
inline std::string canonical_directory(const std::string& dir) {
    std::string abs = dir;
    if (abs.empty() || abs[0] != '/') {
        char cwd[4096];
        if (::getcwd(cwd, sizeof cwd) == nullptr) return dir;
        abs = std::string(cwd) + "/" + abs;
    }
    // Lexical components, "." and empty ones dropped; ".." only once the
    // prefix before it is resolved (it may go through a symlink).
    std::vector<std::string> parts;
    std::size_t i = 0;
    while (i < abs.size()) {
        while (i < abs.size() && abs[i] == '/') ++i;
        std::size_t j = i;
        while (j < abs.size() && abs[j] != '/') ++j;
        if (j > i) parts.emplace_back(abs, i, j - i);
        i = j;
    }
    std::string resolved = "/";
    std::size_t k = 0;
    for (; k < parts.size(); ++k) {
        if (parts[k] == ".") continue;
        std::string next = resolved;
        if (parts[k] == "..") {
            const std::size_t slash = next.rfind('/');
            next = slash == 0 ? std::string("/") : next.substr(0, slash);
        } else {
            if (next.back() != '/') next += '/';
            next += parts[k];
        }
        char real[PATH_MAX];
        if (::realpath(next.c_str(), real) == nullptr) break;  // the rest does not exist (yet)
        resolved = real;
    }
    for (; k < parts.size(); ++k) {
        if (parts[k] == ".") continue;
        if (parts[k] == "..") {
            const std::size_t slash = resolved.rfind('/');
            resolved = slash == 0 ? std::string("/") : resolved.substr(0, slash);
            continue;
        }
        if (resolved.back() != '/') resolved += '/';
        resolved += parts[k];
    }
    return resolved;
}

// Whether a directory can be trusted with our sockets: owned by us or root,
// and nobody else may create entries in it (not writable by others, nor by
// a group other than ours). An ancestor may be sticky and writable by all
// (like /tmp): others can create their own entries there but cannot rename
// or delete ours. The socket directory itself may not: there, another user
// could create NAME.lock or NAME.sock first and keep the name from us.
inline bool trusted_directory(const struct stat& st, bool socket_directory) noexcept {
    if (!S_ISDIR(st.st_mode)) return false;
    if (st.st_uid != ::geteuid() && st.st_uid != 0) return false;
    const bool others_create = (st.st_mode & S_IWOTH) != 0 || ((st.st_mode & S_IWGRP) != 0 && st.st_gid != ::getegid());
    if (!others_create) return true;
    return !socket_directory && (st.st_mode & S_ISVTX) != 0;
}

// Checks a canonical directory and every ancestor: each must be a real
// directory (no symlink) that trusted_directory() accepts. Then nobody else
// can swap any component of the path under us, nor create a file in the
// directory itself.
inline Result<Unit> check_directory(const std::string& dir) {
    std::string part;
    for (std::size_t i = 0; i <= dir.size(); ++i) {
        if (i == dir.size() || (dir[i] == '/' && i > 0)) {
            const std::string& at = part.empty() ? dir : part;
            struct stat st {};
            if (::lstat(at.c_str(), &st) != 0) return fail(Errc::directory, errno, "lstat");
            const bool last = i == dir.size();
            if (!trusted_directory(st, last)) {
                if (last && trusted_directory(st, false))  // (fine as an ancestor: sticky)
                    return fail(Errc::insecure_directory, EPERM, "socket directory is shared (sticky, writable by others): another user could take a name first; Config::allow_shared_directory accepts that");
                return fail(Errc::insecure_directory, EPERM, "directory or ancestor writable by others, or not ours");
            }
        }
        if (i < dir.size()) part += dir[i];
    }
    return Unit{};
}

// mkdir -p with `mode` for the directories it creates (created with their
// mode, never chmod()ed afterwards); each one is checked once it exists.
inline Result<Unit> make_directories(const std::string& dir, mode_t mode) {
    if (dir.empty()) return fail(Errc::directory, ENOENT, "empty directory");
    std::string part;
    part.reserve(dir.size());
    for (std::size_t i = 0; i <= dir.size(); ++i) {
        if (i == dir.size() || (dir[i] == '/' && i > 0)) {
            if (::mkdir(part.c_str(), mode) != 0 && errno != EEXIST) return fail(Errc::directory, errno, "mkdir");
        }
        if (i < dir.size()) part += dir[i];
    }
    struct stat st {};
    if (::stat(dir.c_str(), &st) != 0) return fail(Errc::directory, errno, "stat");
    if (!S_ISDIR(st.st_mode)) return fail(Errc::directory, ENOTDIR, "not a directory");
    return Unit{};
}

// The directory as configured: created when missing, then checked unless
// the user said it is shared on purpose.
inline Result<Unit> prepare_directory(const std::string& dir, mode_t mode, bool allow_shared) {
    auto made = make_directories(dir, mode);
    if (!made) return made;
    if (allow_shared) return Unit{};
    return check_directory(dir);
}

// <dir>/<before><name><after>: the files a name owns in its directory.
inline std::string name_path(const std::string& dir, const char* before, const Name& name, const char* after) {
    std::string p = dir;
    if (p.empty() || p.back() != '/') p += '/';
    p += before;
    p += name.str();
    p += after;
    return p;
}
inline std::string socket_path(const std::string& dir, const Name& name) { return name_path(dir, "", name, ".sock"); }

// Fills a sockaddr_un; a path that does not fit is an error, never truncated.
inline Result<socklen_t> unix_address(const std::string& path, struct sockaddr_un& addr) {
    std::memset(&addr, 0, sizeof addr);
    addr.sun_family = AF_UNIX;
    if (path.empty() || path.size() >= sizeof addr.sun_path) return fail(Errc::path_too_long, ENAMETOOLONG, "sun_path");
    std::memcpy(addr.sun_path, path.data(), path.size());
    return static_cast<socklen_t>(offsetof(struct sockaddr_un, sun_path) + path.size() + 1);
}

// Whether the uid may run the server we talk to: `expected`, or, when that
// is (uid_t)-1 (the default), our own effective uid or root.
inline bool expected_server_uid(uid_t uid, uid_t expected) noexcept {
    if (expected != static_cast<uid_t>(-1)) return uid == expected;
    return uid == ::geteuid() || uid == 0;
}

// ---- Who holds a name (docs/filesystem.md) --------------------------------
//
// A server holds NAME.lock (an open-file-description lock, or flock where
// OFD locks do not exist) for its whole life: two listen() on one name are
// serialised by it. The lock file is never removed (removing one re-opens
// the race it closes). The socket is bound in a private directory
// <dir>/.NAME.XXXXXX, given its mode there, and renamed into place, so
// nothing ever follows a link or changes a file it did not create, and a
// stale file is replaced atomically.

inline std::string lock_path(const std::string& dir, const Name& name) { return name_path(dir, "", name, ".lock"); }

// Takes the name's lock: the fd that holds it, or name_in_use. The file
// is ours alone (0600, and made so if an older version left it readable):
// whoever else could open it could hold a read lock on it, and keep every
// later server of the name out. Others tell a live server by the kernel's
// sock_diag instead (is_live). It is emptied at once, and holds the
// socket's device and inode once the socket is in place (publish_socket).
inline Result<Fd> take_name_lock(const std::string& path) {
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, S_IRUSR | S_IWUSR);
    if (fd < 0) return fail(errno == ELOOP ? Errc::insecure_directory : Errc::socket, errno, "open NAME.lock");
    Fd owned(fd);
    struct stat st {};
    if (::fstat(fd, &st) != 0) return fail(Errc::socket, errno, "fstat NAME.lock");
    if (!S_ISREG(st.st_mode) || st.st_uid != ::geteuid()) return fail(Errc::insecure_directory, EPERM, "NAME.lock is not our regular file");
    if ((st.st_mode & 077) != 0 && ::fchmod(fd, S_IRUSR | S_IWUSR) != 0) return fail(Errc::socket, errno, "fchmod NAME.lock");
#if defined(F_OFD_SETLK)
    struct flock fl {};
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
    bool locked = ::fcntl(fd, F_OFD_SETLK, &fl) == 0;
    if (!locked && (errno == EAGAIN || errno == EACCES)) {
        // A server holds a write lock; a read lock is someone who opened the
        // file while it was readable (an older version's 0644), not a server.
        struct flock who {};
        who.l_type = F_WRLCK;
        who.l_whence = SEEK_SET;
        if (::fcntl(fd, F_OFD_GETLK, &who) == 0 && who.l_type == F_RDLCK)
            return fail(Errc::name_in_use, EAGAIN, "listen: NAME.lock is read-locked by a process that is not a server (it opened the file while it was readable); remove NAME.lock once no server runs");
        return fail(Errc::name_in_use, errno, "listen: another server holds the name");
    }
    if (!locked && errno != EINVAL) return fail(Errc::socket, errno, "lock NAME.lock");
    // EINVAL: a kernel without OFD locks; flock() below.
#else
    bool locked = false;
#endif
    // A probe (name_lock_held) holds a shared flock for an instant: retry a little.
    for (int i = 0; !locked && i < 50; ++i) {
        locked = ::flock(fd, LOCK_EX | LOCK_NB) == 0;
        if (locked) break;
        if (errno != EWOULDBLOCK && errno != EINTR) return fail(Errc::socket, errno, "flock NAME.lock");
        struct timespec ts {0, 1000000};
        ::nanosleep(&ts, nullptr);
    }
    if (!locked) return fail(Errc::name_in_use, EWOULDBLOCK, "listen: another server holds the name");
    if (::ftruncate(fd, 0) != 0) return fail(Errc::socket, errno, "ftruncate NAME.lock");
    return owned;
}

// Records, in the lock file, which socket file is the server's (its device
// and inode): an observer never takes a stale file for a starting server's.
// Written just before the socket is renamed into place, so that a file
// found in place is already named here (else, with no /proc/net/unix, an
// observer would probe it with a connect: a client the server counts).
inline void publish_socket(int lock_fd, const struct stat& st) noexcept {
    char text[64];
    const int n = std::snprintf(text, sizeof text, "%llu %llu\n", static_cast<unsigned long long>(st.st_dev),
                                static_cast<unsigned long long>(st.st_ino));
    if (n > 0) (void)::pwrite(lock_fd, text, static_cast<std::size_t>(n), 0);
}

// 1 when a server holds the name's lock and its socket is the file at
// `socket`, 0 when not, -1 when it cannot be told (no lock file, or not
// ours to read).
inline int name_lock_held(const std::string& path, const std::string& socket) noexcept {
    const int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return -1;
    Fd owned(fd);
    int held = -1;
#if defined(F_OFD_GETLK)
    struct flock fl {};
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
    if (::fcntl(fd, F_OFD_GETLK, &fl) == 0) held = fl.l_type == F_WRLCK ? 1 : 0;  // (a read lock is no server's)
    else if (errno != EINVAL) return -1;
#endif
    if (held < 0) {
        if (::flock(fd, LOCK_SH | LOCK_NB) == 0) return 0;  // released when `owned` closes
        if (errno != EWOULDBLOCK) return -1;
        held = 1;
    }
    if (held == 0) return 0;
    char text[64] = {};
    const ssize_t n = ::pread(fd, text, sizeof text - 1, 0);
    struct stat st {};
    if (n <= 0 || ::lstat(socket.c_str(), &st) != 0) return 0;  // starting: not in place yet
    unsigned long long dev = 0, ino = 0;
    if (std::sscanf(text, "%llu %llu", &dev, &ino) != 2) return 0;
    return dev == static_cast<unsigned long long>(st.st_dev) && ino == static_cast<unsigned long long>(st.st_ino) ? 1 : 0;
}

// The paths of the listening AF_UNIX sockets in a text laid out as
// /proc/net/unix is, appended to `out`: its first line (the header) is
// skipped, then each line is
//   Num RefCount Protocol Flags Type St Inode[ Path]
// in fields separated by spaces, and a listening socket carries
// __SO_ACCEPTCON (0x10000) in Flags. The path is everything after the one
// space that follows Inode, to the end of the line, spaces included; an
// abstract name is written "@name" (each NUL in it an '@'), and is
// returned as written. The kernel does not escape a newline in a path: such
// a path is cut at it, and what follows is read as a line of its own.
// A line with no path (an unbound socket) or fewer than seven fields is
// skipped. Pure: no system call.
inline void parse_listening_paths(std::string_view text, std::vector<std::string>& out) {
    std::size_t line_start = text.find('\n');
    while (line_start != std::string_view::npos && line_start + 1 < text.size()) {
        std::size_t b = line_start + 1;
        std::size_t e = text.find('\n', b);
        if (e == std::string_view::npos) e = text.size();
        std::string_view line = text.substr(b, e - b);
        line_start = e < text.size() ? e : std::string_view::npos;
        std::size_t field = 0, i = 0;
        std::string_view fields[7];
        while (field < 7 && i < line.size()) {
            while (i < line.size() && line[i] == ' ') ++i;
            std::size_t j = i;
            while (j < line.size() && line[j] != ' ') ++j;
            fields[field++] = line.substr(i, j - i);
            i = j;
        }
        if (field < 7 || i >= line.size()) continue;
        ++i;  // the single space before the path
        unsigned long flags = std::strtoul(std::string(fields[3]).c_str(), nullptr, 16);
        if ((flags & 0x10000UL) == 0) continue;
        out.emplace_back(line.substr(i));
    }
}

// The paths of listening AF_UNIX sockets, from /proc/net/unix
// (parse_listening_paths). false when the file cannot be read (then
// callers probe by connecting).
inline bool listening_paths(std::vector<std::string>& out) {
    out.clear();
#if IPC_HPP_HAVE_PROC_NET_UNIX
    int fd = ::open("/proc/net/unix", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    Fd owned(fd);
    std::string text;
    char chunk[16384];
    for (;;) {
        ssize_t r = ::read(fd, chunk, sizeof chunk);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return false;
        if (r == 0) break;
        text.append(chunk, static_cast<std::size_t>(r));
    }
    parse_listening_paths(text, out);
    return true;
#else
    return false;
#endif
}

// Connect-probe: 1 = something accepts there, 0 = refused or absent, -1 = error.
inline int probe_by_connect(const std::string& path) {
    struct sockaddr_un addr {};
    auto len = unix_address(path, addr);
    if (!len) return -1;
    auto sock = stream_socket();
    if (!sock) return -1;
    int r;
    do {
        r = ::connect(sock->get(), reinterpret_cast<const struct sockaddr*>(&addr), len.value());
    } while (r != 0 && errno == EINTR);
    if (r == 0 || errno == EAGAIN || errno == EINPROGRESS) return 1;  // EAGAIN: backlog full, alive
    return 0;
}

// Where a server binds before its socket is renamed into place:
// <dir>/.NAME.XXXXXX/s (mkdtemp fills the X's). 5 bytes longer than
// <dir>/NAME.sock, and it must fit sun_path too.
inline std::string private_bind_dir(const std::string& dir, const Name& name) { return name_path(dir, ".", name, ".XXXXXX"); }

// Whether a path is in a list that listening_paths() made.
inline bool listed(const std::vector<std::string>& listening, const std::string& path) {
    for (const auto& p : listening) {
        if (p == path) return true;
    }
    return false;
}

// The file a listening socket is bound to, as the kernel knows it: the
// device (major, minor) and inode of the file that bind() made. sock_diag
// gives the inode's low 32 bits only, and so does this.
struct SocketFile {
    unsigned dev_major = 0, dev_minor = 0;
    std::uint32_t ino = 0;
};
// A stat() device number's major and minor, as glibc and musl encode it on
// Linux (<sys/sysmacros.h> would define major() and minor() as macros in
// every program that includes this header).
constexpr unsigned dev_major(std::uint64_t dev) noexcept {
    return static_cast<unsigned>(((dev >> 8) & 0xFFFU) | ((dev >> 32) & ~std::uint64_t{0xFFF}));
}
constexpr unsigned dev_minor(std::uint64_t dev) noexcept {
    return static_cast<unsigned>((dev & 0xFFU) | ((dev >> 12) & ~std::uint64_t{0xFF}));
}

// What is known of the listening AF_UNIX stream sockets of this network
// namespace, from the best source that answers (docs/filesystem.md):
// - sock_diag: the file of each one (device and inode), which nobody can
//   forge: a socket is listed at a file only if it was bound there;
// - proc_net_unix: the paths /proc/net/unix prints, which anyone can forge
//   (a newline in an abstract name starts a line of their own), so a path
//   found there is confirmed with a connect before it counts;
// - none: neither could be read; every file is probed with a connect.
struct Listeners {
    enum class Source : unsigned char { none, proc_net_unix, sock_diag };
    Source source = Source::none;
    std::vector<SocketFile> files;   // sock_diag
    std::vector<std::string> paths;  // proc_net_unix

    bool has(const struct stat& st) const noexcept {
#if IPC_HPP_HAVE_SOCK_DIAG
        const auto dev = static_cast<std::uint64_t>(st.st_dev);
        const unsigned ma = dev_major(dev), mi = dev_minor(dev);
        const auto ino = static_cast<std::uint32_t>(st.st_ino);
        for (const auto& f : files) {
            if (f.ino == ino && f.dev_minor == mi && f.dev_major == ma) return true;
        }
#else
        (void)st;
#endif
        return false;
    }
};

#if IPC_HPP_HAVE_SOCK_DIAG
// Appends the files of the listening AF_UNIX stream sockets, from one
// sock_diag dump (NETLINK_SOCK_DIAG, no privilege needed). false when the
// kernel does not answer it (no netlink, unix_diag not loadable, seccomp):
// then `out` is not to be used.
inline bool sock_diag_listeners(std::vector<SocketFile>& out) {
    const int fd = ::socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
    if (fd < 0) return false;
    Fd owned(fd);
    struct {
        struct nlmsghdr nlh;
        struct unix_diag_req req;
    } ask {};
    ask.nlh.nlmsg_len = sizeof ask;
    ask.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
    ask.nlh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
    ask.nlh.nlmsg_seq = 1;
    ask.req.sdiag_family = AF_UNIX;
    ask.req.udiag_states = 1U << 10;  // TCP_LISTEN: what a listening unix socket reports
    ask.req.udiag_show = UDIAG_SHOW_VFS;
    struct sockaddr_nl kernel {};
    kernel.nl_family = AF_NETLINK;
    ssize_t sent;
    do {
        sent = ::sendto(fd, &ask, sizeof ask, 0, reinterpret_cast<const struct sockaddr*>(&kernel), sizeof kernel);
    } while (sent < 0 && errno == EINTR);
    if (sent != static_cast<ssize_t>(sizeof ask)) return false;
    // 32 KiB holds about 700 sockets' records; a dump takes as many reads as it needs.
    std::vector<unsigned char> buf(32768);
    for (;;) {
        ssize_t r;
        do {
            r = ::recv(fd, buf.data(), buf.size(), 0);
        } while (r < 0 && errno == EINTR);
        if (r <= 0) return false;
        std::size_t off = 0;
        const auto total = static_cast<std::size_t>(r);
        while (total - off >= sizeof(struct nlmsghdr)) {
            struct nlmsghdr h;
            std::memcpy(&h, buf.data() + off, sizeof h);
            if (h.nlmsg_len < sizeof h || h.nlmsg_len > total - off) return false;
            if (h.nlmsg_type == NLMSG_DONE) return true;
            if (h.nlmsg_type == NLMSG_ERROR) return false;
            const std::size_t body = NLMSG_LENGTH(0);
            if (h.nlmsg_type == SOCK_DIAG_BY_FAMILY && h.nlmsg_len >= body + sizeof(struct unix_diag_msg)) {
                struct unix_diag_msg m;
                std::memcpy(&m, buf.data() + off + body, sizeof m);
                // The attributes, each a 4-byte header (length, type) and its value, 4-aligned.
                std::size_t at = body + NLMSG_ALIGN(sizeof m);
                while (m.udiag_type == SOCK_STREAM && m.udiag_state == 10 && at + 4 <= h.nlmsg_len) {
                    unsigned short len = 0, type = 0;
                    std::memcpy(&len, buf.data() + off + at, 2);
                    std::memcpy(&type, buf.data() + off + at + 2, 2);
                    if (len < 4 || len > h.nlmsg_len - at) break;
                    if (type == UNIX_DIAG_VFS && len >= 4 + sizeof(struct unix_diag_vfs)) {
                        struct unix_diag_vfs v;
                        std::memcpy(&v, buf.data() + off + at + 4, sizeof v);
                        // The kernel's own dev_t: 12 bits of major above 20 of minor.
                        out.push_back(SocketFile{v.udiag_vfs_dev >> 20, v.udiag_vfs_dev & 0xFFFFFU, v.udiag_vfs_ino});
                    }
                    at += (static_cast<std::size_t>(len) + 3U) & ~std::size_t{3};
                }
            }
            if (NLMSG_ALIGN(h.nlmsg_len) > total - off) break;  // (the last one of the datagram)
            off += NLMSG_ALIGN(h.nlmsg_len);
        }
    }
}
#endif

// The listening sockets, from sock_diag, else /proc/net/unix, else none.
inline Listeners listeners() {
    Listeners l;
#if IPC_HPP_HAVE_SOCK_DIAG
    if (sock_diag_listeners(l.files)) {
        l.source = Listeners::Source::sock_diag;
        return l;
    }
    l.files.clear();
#endif
    if (listening_paths(l.paths)) l.source = Listeners::Source::proc_net_unix;
    return l;
}

// Whether a socket listens on the file at `path` (whose lstat is `st`).
// sock_diag says it; from /proc/net/unix, a path listed there is confirmed
// with a connect (a forged line names a path, it cannot accept on it); with
// neither, the connect alone says.
inline bool listening_at(const Listeners& l, const std::string& path, const struct stat& st) {
    switch (l.source) {
        case Listeners::Source::sock_diag: return l.has(st);
        case Listeners::Source::proc_net_unix: return listed(l.paths, path) && probe_by_connect(path) == 1;
        case Listeners::Source::none: break;
    }
    return probe_by_connect(path) == 1;
}

// Whether a live server has this name in the (canonical) directory. Its
// socket file must be a socket (not a link) owned by an expected uid; then
// an ipc.hpp server holds the name's lock with that very file published in
// it, or a (reference) server listens on that file (listening_at: the
// kernel's sock_diag says so; only without it is the socket probed with a
// connect, which a reference server counts as a client, docs/protocol.md
// §5, and which starts a systemd socket-activated service). A lock nobody
// holds says that no ipc.hpp server is there, not that nothing listens: a
// reference server, or a supervisor's socket, takes no lock.
inline bool is_live(const std::string& dir, const Name& name, uid_t expected, const Listeners* known = nullptr) {
    const std::string path = socket_path(dir, name);
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0 || !S_ISSOCK(st.st_mode) || !expected_server_uid(st.st_uid, expected)) return false;
    const int held = name_lock_held(lock_path(dir, name), path);
    if (held == 1) return true;
    Listeners own;
    if (known == nullptr) {
        own = listeners();
        known = &own;
    }
    // An ipc.hpp server is bound elsewhere first, so /proc/net/unix does
    // not list it here: where its lock cannot be read (another uid's
    // server), only a connect can tell.
    if (held < 0 && known->source == Listeners::Source::proc_net_unix) return probe_by_connect(path) == 1;
    return listening_at(*known, path, st);
}

// Before a server replaces a socket file: whether a server that takes no
// lock (a reference PHP server, or ipc.hpp 0.1) listens on it. sock_diag
// answers for this network namespace; a file it does not list, and every
// file without it, is confirmed with a connect (a server in another
// namespace may listen on a file we see).
inline bool lockless_server_at(const std::string& path) {
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0 || !S_ISSOCK(st.st_mode)) return false;
    const Listeners l = listeners();
    if (l.source == Listeners::Source::sock_diag && l.has(st)) return true;
    return probe_by_connect(path) == 1;
}

// The path a socket is bound at ("" when unnamed or abstract).
inline std::string bound_path(int fd) {
    struct sockaddr_un addr {};
    socklen_t len = sizeof addr;
    if (::getsockname(fd, reinterpret_cast<struct sockaddr*>(&addr), &len) != 0 || addr.sun_family != AF_UNIX) return {};
    const std::size_t room = len > offsetof(struct sockaddr_un, sun_path) ? len - offsetof(struct sockaddr_un, sun_path) : 0;
    if (room == 0 || addr.sun_path[0] == '\0') return {};
    std::size_t n = 0;
    while (n < room && n < sizeof addr.sun_path && addr.sun_path[n] != '\0') ++n;
    return std::string(addr.sun_path, n);
}

// Whether fd is a listening AF_UNIX stream socket: what a server can take
// over from a supervisor (Server::from_fd, socket activation).
inline bool is_unix_listener(int fd) noexcept {
    struct sockaddr_un addr {};
    socklen_t len = sizeof addr;
    if (::getsockname(fd, reinterpret_cast<struct sockaddr*>(&addr), &len) != 0 || addr.sun_family != AF_UNIX) return false;
    int value = 0;
    socklen_t vlen = sizeof value;
    if (::getsockopt(fd, SOL_SOCKET, SO_TYPE, &value, &vlen) != 0 || value != SOCK_STREAM) return false;
#ifdef SO_ACCEPTCONN
    vlen = sizeof value;
    if (::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &value, &vlen) != 0 || value == 0) return false;
#endif
    return true;
}

// A decimal number of the whole environment variable, or -1.
inline long env_number(const char* var) noexcept {
    const char* text = std::getenv(var);
    if (text == nullptr || *text == '\0') return -1;
    long n = 0;
    for (const char* c = text; *c != '\0'; ++c) {
        if (*c < '0' || *c > '9' || n > 100000000L) return -1;
        n = n * 10 + (*c - '0');
    }
    return n;
}

// The bound path with its directory in canonical form (canonical_directory),
// as Ipc spells a server's path.
inline std::string canonical_bound_path(int fd) {
    const std::string bound = bound_path(fd);
    const std::size_t slash = bound.rfind('/');
    if (slash == std::string::npos) return bound;
    std::string dir = canonical_directory(slash == 0 ? std::string("/") : bound.substr(0, slash));
    return (dir == "/" ? std::string() : dir) + bound.substr(slash);
}

// A close-on-exec duplicate of a supervisor's socket, owned by the server
// from the moment it is found: the supervisor's fd may be closed, and its
// number reused, without the server noticing.
inline Result<Fd> own_copy(int fd) {
    const int copy = ::fcntl(fd, F_DUPFD_CLOEXEC, 3);
    if (copy < 0) return fail(Errc::socket, errno, "dup");
    return Fd(copy);
}

// systemd socket activation (sd_listen_fds(3), read without libsystemd):
// when LISTEN_PID is this process, the socket among the LISTEN_FDS passed
// from fd 3 that LISTEN_FDNAMES calls `name`, or else that is bound at
// `path`, as its own close-on-exec duplicate (an invalid Fd when there is
// none), and `found_at` its bound path. A socket named `name` that is not
// a listening AF_UNIX stream socket is an error, not a reason to bind
// instead. Every passed fd is made close-on-exec, as sd_listen_fds() does,
// so none leaks into the programs this process runs; the environment is
// left as it is, so that a second server can find its own name.
inline Result<Fd> activated_socket(const Name& name, const std::string& path, std::string& found_at) {
    constexpr int first = 3;  // SD_LISTEN_FDS_START
    const long pid = env_number("LISTEN_PID");
    const long count = env_number("LISTEN_FDS");
    if (pid <= 0 || pid != static_cast<long>(::getpid()) || count <= 0 || count > 4096) return Fd();
    for (int fd = first; fd < first + static_cast<int>(count); ++fd) (void)::fcntl(fd, F_SETFD, FD_CLOEXEC);
    const char* names = std::getenv("LISTEN_FDNAMES");
    std::string_view rest = names != nullptr ? std::string_view(names) : std::string_view();
    int by_path = -1;
    for (int i = 0; i < static_cast<int>(count); ++i) {
        const std::size_t colon = rest.find(':');
        const std::string_view label = rest.substr(0, colon);
        rest = colon == std::string_view::npos ? std::string_view() : rest.substr(colon + 1);
        const int fd = first + i;
        if (label == name.str()) {
            if (!is_unix_listener(fd))
                return fail(Errc::socket, ENOTSOCK, "LISTEN_FDNAMES names this server, but its fd is not a listening AF_UNIX stream socket");
            found_at = canonical_bound_path(fd);
            return own_copy(fd);
        }
        if (by_path < 0 && is_unix_listener(fd) && canonical_bound_path(fd) == path) by_path = fd;
    }
    if (by_path < 0) return Fd();
    found_at = path;  // as the caller spells it
    return own_copy(by_path);
}

}  // namespace detail

// ===========================================================================
// 10. The conversation — the protocol, written once (docs/protocol.md §4)
//     A sans-I/O state machine shared by the client (Process) and the
//     server (each connection): bytes in, events out; actions in, bytes out.
//     It makes no syscall and reads no clock (the caller passes `now`).
//     receive() and transmit() below it are the only routines that move its
//     bytes over a socket, for both sides.
// ===========================================================================

namespace detail {

enum class Role : unsigned char { client, server };

class Conversation {
public:
    enum class State : unsigned char {
        handshake,  // client: waiting for `connection start`; server: for `start ok`
        ready,
        closing,    // this side sent `connection close` and waits for `close ok`
        closed,     // over, properly: send what is queued (a `close ok`), then close
        failed,     // the peer broke the format or the conversation: close at once
    };
    enum class Event : unsigned char {
        none,          // nothing more in what was received
        started,       // the handshake is done
        message,       // an application message: server: frame(), already
                       // acknowledged; client: in the inbox, for take()
        acknowledged,  // client: the message in flight was acknowledged
        closed,        // the conversation ended properly (state() is closed)
        failed,        // error() says why (state() is failed)
    };

    Conversation(Role role, const Config& config, std::int64_t now)
        : role_(role),
          decoder_(config.max_message_size),
          period_(config.heartbeat.count() > 0 ? config.heartbeat.count() : 1000),
          handshake_(config.handshake_timeout.count()),
          close_timeout_(config.close_timeout.count()),
          stall_(config.stall_timeout.count()),
          inbox_limit_(config.max_inbox_messages),
          inbox_bytes_limit_(config.max_inbox_bytes != 0 ? config.max_inbox_bytes
                                                         : std::size_t{config.max_message_size} + (std::size_t{1} << 20)),
          send_buffer_(config.send_buffer),
          since_(now),
          last_in_(now),
          last_out_(now) {
        // The server speaks first (docs/protocol.md §4).
        if (role_ == Role::server) append_frame(out_, Protocol::connection_start);
    }

    State state() const noexcept { return state_; }
    const Error& error() const noexcept { return error_; }

    // ---- bytes in ---------------------------------------------------------
    // Where the next read goes, and in `n` how much room there is: one size
    // policy for both sides. 16 KiB, or for the rest of a large frame as
    // much as has already arrived of it (so room doubles as bytes come, and
    // a peer that announces 60 MiB and sends 17 bytes gets 16 KiB), up to
    // 8 MiB at a time. nullptr when the memory is not there.
    char* room(std::size_t& n) noexcept {
        const std::size_t have = decoder_.buffered();
        const std::size_t want = receiving() - have;
        std::size_t grant = have > min_room ? have : min_room;
        if (decoder_.spare_room() > grant) grant = decoder_.spare_room();  // memory already there and zeroed
        if (grant > max_room) grant = max_room;
        n = want > grant ? grant : (want > min_room ? want : min_room);
        return decoder_.try_prepare(n);
    }
    void received(std::size_t n) noexcept {
        decoder_.commit(n);
        fresh_ = true;
        heard_anything_ = true;
    }
    // Whether any byte ever arrived (a server that closes before sending
    // anything refused the connection).
    bool heard_anything() const noexcept { return heard_anything_; }
    // When bytes last arrived; the caller stamps it with its clock (the
    // client does so at its next clock reading, so it is never early).
    void heard(std::int64_t now) noexcept { last_in_ = now; }
    // The memory the frame being received needs, as far as is known yet:
    // what is buffered of it, or its announced size once the length is in.
    std::size_t receiving() const noexcept {
        const std::size_t have = decoder_.buffered();
        return decoder_.wanted() > have ? decoder_.wanted() : have;
    }
    // What the decoder holds for large frames (Decoder::reserved()).
    // And the write buffer's room beyond what is queued in it, once it grew
    // past 64 KiB (it keeps its capacity until the connection is idle).
    std::size_t reserved() const noexcept {
        const std::size_t spare = out_.capacity() > (std::size_t{64} << 10) ? out_.capacity() - (out_.size() - out_off_) : 0;
        return decoder_.reserved() + spare;
    }
    // Gives the buffers back now, as an idle connection does (fire()), when
    // nothing waits in them; what they held. (Server, past its budget.)
    std::size_t shed() noexcept {
        if (role_ != Role::server || !releasable()) return 0;
        const std::size_t freed = decoder_.capacity() + out_.capacity();
        decoder_.release();
        out_.release();
        return freed;
    }
    static constexpr std::size_t min_room = std::size_t{16} << 10;
    static constexpr std::size_t slot_keep = std::size_t{64} << 10;
    static constexpr std::size_t max_room = std::size_t{8} << 20;

    // The next event from what was received. Applies every protocol rule:
    // acks queued before a server hands a message on, `start ok` and
    // `close ok` queued, heartbeats swallowed, one message in flight.
    Event next() {
        for (;;) {
            if (state_ == State::failed) return Event::failed;
            if (state_ == State::closed || !fresh_) return Event::none;  // closed: nothing more is read
            const Decoder::Status st = decoder_.next(frame_);
            if (st == Decoder::Status::need_more) {
                fresh_ = false;  // until more bytes arrive
                return Event::none;
            }
            if (st == Decoder::Status::error) return fail_with(decoder_.last_error());
            if (decoder_.drained()) fresh_ = false;  // nothing after this frame: the next call need not ask
            const Event e = role_ == Role::server ? server_rule(frame_.protocol()) : client_rule(frame_.protocol());
            if (e != Event::none) return e;
        }
    }
    // The frame behind the last Event::message (server), until next().
    const Decoder::Frame& frame() const noexcept { return frame_; }

    // ---- bytes out --------------------------------------------------------
    // What is queued, in order, as up to three pieces: out_ up to body_at_,
    // a large content sent from its own bytes (moved in, or lent: see
    // queue_large()), the rest of out_ (that content's end marker first).
    // Without a large content, one.
    using Piece = detail::Piece;
    std::size_t pieces(Piece (&v)[3]) const noexcept {
        std::size_t k = 0;
        std::size_t from = out_off_;
        if (moved_) {  // out_off_ <= body_at_ until the large content is all sent
            if (from < body_at_) v[k++] = Piece{out_.data() + from, body_at_ - from};
            const std::string_view b = large();
            v[k++] = Piece{b.data() + body_off_, b.size() - body_off_};
            from = body_at_;
        }
        if (from < out_.size()) v[k++] = Piece{out_.data() + from, out_.size() - from};
        return k;
    }
    std::size_t queued() const noexcept { return queued_before(out_.size()); }
    // What is queued ahead of `end` (a queue_end() taken earlier).
    std::size_t queued_before(std::size_t end) const noexcept { return end - out_off_ + (moved_ ? large().size() - body_off_ : 0); }
    bool wants_write() const noexcept { return out_off_ < out_.size(); }  // a moved content's marker is in out_
    void sent(std::size_t n, std::int64_t now) noexcept {
        last_out_ = now;
        blocked_since_ = never;  // progress
        if (moved_) {
            if (n < body_at_ - out_off_) {
                out_off_ += n;
                return;
            }
            n -= body_at_ - out_off_;
            out_off_ = body_at_;
            const std::size_t left = large().size() - body_off_;
            if (n < left) {
                body_off_ += n;
                return;
            }
            n -= left;
            // Kept for the next large frame received (which then needs no
            // new memory, nor zeroing), until the connection is idle.
            if (!lending_) decoder_.recycle(std::move(body_));
            std::string().swap(body_);
            lent_ = {};
            lending_ = false;
            body_off_ = 0;
            moved_ = false;
        }
        out_off_ += n;
        if (out_off_ >= out_.size()) {
            out_.clear();
            out_off_ = 0;
        }
    }

    // The size to set the socket's send buffer to, once, when that much is
    // queued (Config::send_buffer); 0 otherwise.
    std::size_t send_buffer_wanted() noexcept {
        if (send_buffer_ == 0 || queued() < send_buffer_) return 0;
        const std::size_t n = send_buffer_;
        send_buffer_ = 0;
        return n;
    }
    // The socket refused the rest at `now`: a server gives up on a peer that
    // takes nothing for Config::stall_timeout (fire() returns false).
    void blocked(std::int64_t now) noexcept {
        if (blocked_since_ == never) blocked_since_ = now;
    }
    bool stalled(std::int64_t now) const noexcept {  // (fire() reports it)
        return wants_write() && blocked_since_ != never && stall_ >= 0 && now >= later(blocked_since_, stall_);
    }

    // ---- actions ----------------------------------------------------------
    // Client: a message to send. One is in flight at a time; the others wait
    // here (copied) and go out, whole, as each ack arrives.
    Result<Unit> post(const Message& m) {
        if (!frame_fits(m.media_type().view().size(), m.content().size()))
            return fail(frame_error(m.media_type().view().size(), "send"));
        if (protocol::may_be_protocol(m.content().size()) && m.is_protocol()) return fail(Errc::invalid_argument, 0, protocol::refusal(m.protocol(), false));
        if (state_ != State::ready) return fail(Errc::closed, 0, "send");
        if (in_flight_) {
            outbox_.push_back(m);
        } else {
            (void)append_frame(out_, m.media_type().view(), m.content());
            in_flight_ = true;
        }
        return Unit{};
    }
    // The same, but a large content is moved into the queue, not copied
    // (m's content is then empty).
    Result<Unit> post(Message&& m) {
        if (!frame_fits(m.media_type().view().size(), m.content().size()))
            return fail(frame_error(m.media_type().view().size(), "send"));
        if (protocol::may_be_protocol(m.content().size()) && m.is_protocol()) return fail(Errc::invalid_argument, 0, protocol::refusal(m.protocol(), false));
        if (state_ != State::ready) return fail(Errc::closed, 0, "send");
        if (in_flight_) {
            outbox_.push_back(std::move(m));
        } else {
            in_flight_ = true;
            put(m);
        }
        return Unit{};
    }
    // The same, for the blocking send: a large content is sent from m's
    // own bytes, which must stay as they are until unlend().
    Result<Unit> post_lent(const Message& m) {
        if (in_flight_ || moved_ || m.content().size() < large_content || state_ != State::ready) return post(m);
        if (!frame_fits(m.media_type().view().size(), m.content().size()))
            return fail(frame_error(m.media_type().view().size(), "send"));
        lending_ = true;
        lent_ = m.content();
        queue_large(m.media_type().view());
        in_flight_ = true;
        return Unit{};
    }
    // What of a lent content is not sent yet is copied (`keep`; without,
    // the connection is over and it is forgotten): the lender may go.
    // Without the memory, the conversation fails (its frame cannot be
    // finished).
    void unlend(bool keep) {
        if (!moved_ || !lending_) return;
        const std::string_view rest = lent_.substr(body_off_);
        const bool kept = keep && detail::allocated([&] { body_.assign(rest.data(), rest.size()); });
        lending_ = false;
        lent_ = {};
        body_off_ = 0;
        moved_ = kept;
        if (keep && !kept) (void)fail_with(Error{Errc::io, ENOMEM, "send: no memory to keep the unsent rest of a message"});
    }
    // Server: a reducer's draft response, encoded at once at the end of
    // the queue (queue_end() before and after says where). Only the draft
    // the reducer returns is kept (keep_draft()); nothing is written while
    // a reducer runs, so no draft leaves early.
    std::size_t queue_end() const noexcept { return out_.size(); }
    void draft(const Message& m) { (void)append_frame(out_, m.media_type().view(), m.content()); }  // (it fits: checked)
    // Keeps the draft at [from, to) (none when from == to) right behind
    // what was queued at `start`, and cuts off every other one.
    void keep_draft(std::size_t start, std::size_t from, std::size_t to) noexcept {
        if (from != start && to > from) std::memmove(out_.data() + start, out_.data() + from, to - from);
        out_.truncate(start + (to - from));
    }
    // Server: a response, encoded at once behind what is queued (the ack).
    Result<Unit> respond(const Message& m) {
        if (state_ != State::ready) return Unit{};  // closing or over: nothing more is sent
        if (!append_frame(out_, m.media_type().view(), m.content()))
            return fail(frame_error(m.media_type().view().size(), "respond"));
        return Unit{};
    }
    // The same, but a large content (one at a time) is moved into the
    // queue, not copied: m's content is then empty. Its frame's header and
    // end marker are in out_ around it.
    Result<Unit> respond(Message&& m) {
        const std::string_view type = m.media_type().view();
        if (moved_ || m.content().size() < large_content || state_ != State::ready) return respond(static_cast<const Message&>(m));
        if (!frame_fits(type.size(), m.content().size())) return fail(frame_error(type.size(), "respond"));
        body_ = std::move(m.content());
        queue_large(type);
        return Unit{};
    }
    // Starts the close handshake (either side): `connection close`, then
    // only `close ok` is awaited.
    // With `timed`, a peer that does not answer within Config::close_timeout
    // of `now` is given up (fire() returns false); without, the driver has
    // its own deadline (a client's close(timeout), a server's shutdown).
    void close(std::int64_t now, bool timed) {
        if (state_ != State::handshake && state_ != State::ready) return;
        append_frame(out_, Protocol::connection_close);
        state_ = State::closing;
        closing_deadline_ = timed && close_timeout_ >= 0 ? later(now, close_timeout_) : never;
    }

    // ---- the client's inbox and outbox ------------------------------------
    // A message to receive the next arrival straight into, when nothing is
    // kept before it (the blocking wait); nullptr: arrivals are kept.
    // delivered() tells when it was filled.
    void deliver_to(Message* m) noexcept {
        target_ = m;
        delivered_ = false;
    }
    bool delivered() const noexcept { return delivered_; }
    // Moves the oldest received message into out; its old buffers are kept
    // for the next arrival, so a steady loop does not allocate.
    bool take(Message& out) {
        if (inbox_count_ == 0) return false;
        Message& m = inbox_[inbox_head_];
        inbox_bytes_ -= m.content().size();
        out.swap(m);
        // The slot now has out's old buffer: a large one is not kept, or
        // slots could hold far more than the inbox bound, unread.
        if (m.content().capacity() > slot_keep) std::string().swap(m.content());
        ++inbox_head_;
        if (--inbox_count_ == 0) inbox_head_ = 0;
        return true;
    }
    // Posted messages not acknowledged yet (the one in flight included).
    std::size_t unacknowledged() const noexcept {
        return (in_flight_ ? 1u : 0u) + (outbox_.size() - outbox_head_);
    }

    // The memory its buffers hold.
    std::size_t capacity() const noexcept { return decoder_.capacity() + out_.capacity() + heap_bytes(body_); }
    // A large string done with, for the decoder to receive into (Decoder::recycle()).
    void recycle(std::string&& s) noexcept { decoder_.recycle(std::move(s)); }
    // After a large frame was taken out (server, once frame() was copied):
    // buffers larger than such a frame needs are given back now, not after
    // a period (see Decoder::trim()).
    void after_large_frame() noexcept {
        if (frame_.content().size() >= large_content && decoder_.buffered() == 0) decoder_.trim(frame_.content().size());
    }

    // ---- timers -----------------------------------------------------------
    // When fire() has work, on the caller's clock (`never` when nothing is due).
    std::int64_t due() const noexcept {
        std::int64_t d = never;
        // No heartbeat while writing is under way: it is no use, and the
        // stall timer is what watches a peer that takes nothing.
        if (state_ == State::ready && !wants_write()) d = heartbeat_due();
        if (state_ == State::closing) d = min(d, closing_deadline_);
        if (role_ == Role::server) {
            if (wants_write() && blocked_since_ != never && stall_ >= 0) d = min(d, later(blocked_since_, stall_));
            if (state_ == State::handshake && handshake_ >= 0) d = min(d, later(since_, handshake_));
            if (releasable()) d = min(d, later(last_in_, period_));
        }
        return d;
    }
    // What ran out of time in fire(): the driver drops the peer for it.
    enum class Expired : unsigned char { nothing, handshake, close, stall };
    struct Fired {
        Expired expired;
        explicit operator bool() const noexcept { return expired == Expired::nothing; }  // the peer is still in time
    };
    // Does what is due at `now`: queues a heartbeat; a server's idle
    // connection gives its buffers back (their capacity is added to
    // `released`). Or says which deadline the peer let pass.
    Fired fire(std::int64_t now, std::size_t& released) {
        if (role_ == Role::server && state_ == State::handshake && handshake_ >= 0 && now >= later(since_, handshake_))
            return {Expired::handshake};
        if (state_ == State::closing && now >= closing_deadline_) return {Expired::close};
        if (role_ == Role::server && stalled(now)) return {Expired::stall};
        if (state_ == State::ready && !wants_write() && now >= heartbeat_due()) {
            append_frame(out_, Protocol::heartbeat);
            last_out_ = now;
        }
        if (role_ == Role::server && releasable() && now >= later(last_in_, period_)) {
            released += decoder_.capacity() + out_.capacity();
            decoder_.release();
            out_.release();
        }
        return {Expired::nothing};
    }

private:
    static std::int64_t min(std::int64_t a, std::int64_t b) noexcept { return a < b ? a : b; }

    // A heartbeat keeps a quiet connection alive: it is due once nothing
    // went either way for a period (client) or for 1.5 periods (server), so
    // that a waiting reference client speaks first and its own timeout,
    // measured from the last arrival, can work (docs/protocol.md §4).
    std::int64_t heartbeat_due() const noexcept {
        const std::int64_t last = last_in_ > last_out_ ? last_in_ : last_out_;
        return later(last, role_ == Role::server ? later(period_, period_ / 2) : period_);
    }
    // An idle server connection holds buffers worth giving back (a small
    // write buffer, which heartbeats reuse, is kept).
    bool releasable() const noexcept {
        return !wants_write() && decoder_.buffered() == 0 && (decoder_.capacity() != 0 || out_.capacity() > 4096);
    }

    Event fail_with(const Error& e) {
        state_ = State::failed;
        error_ = e;
        return Event::failed;
    }
    Event closed_by_peer() {
        append_frame(out_, Protocol::connection_close_ok);
        state_ = State::closed;
        return Event::closed;
    }

    // docs/protocol.md §4, the server's side.
    Event server_rule(Protocol p) {
        switch (state_) {
            case State::handshake:  // anything before `start ok` is ignored
                if (p != Protocol::connection_start_ok) return Event::none;
                state_ = State::ready;
                return Event::started;
            case State::ready:
                if (p == Protocol::none) {
                    append_frame(out_, Protocol::message_received);  // before the reducer sees it
                    return Event::message;
                }
                if (p == Protocol::connection_close) return closed_by_peer();
                return Event::none;  // heartbeats and stray protocol messages
            case State::closing:  // nothing is acknowledged or handed on any more
                if (p == Protocol::connection_close) return closed_by_peer();  // both sides closed at once
                if (p != Protocol::connection_close_ok) return Event::none;
                state_ = State::closed;
                return Event::closed;
            case State::closed:
            case State::failed: break;
        }
        return Event::none;
    }

    // docs/protocol.md §4, the client's side.
    Event client_rule(Protocol p) {
        switch (state_) {
            case State::handshake:
                if (p == Protocol::connection_start) {
                    append_frame(out_, Protocol::connection_start_ok);
                    state_ = State::ready;
                    return Event::started;
                }
                if (p == Protocol::connection_close) return closed_by_peer();
                if (p == Protocol::heartbeat) return Event::none;
                return fail_with(Error{Errc::protocol, 0, "handshake: expected connection start"});
            case State::ready:
                switch (p) {
                    case Protocol::none: return keep(frame_);
                    case Protocol::message_received:
                        if (!in_flight_) return Event::none;  // nothing was in flight: stray
                        in_flight_ = false;
                        launch();
                        return Event::acknowledged;
                    case Protocol::connection_close: return closed_by_peer();
                    default: return Event::none;  // heartbeats are never answered
                }
            case State::closing:
                if (p == Protocol::connection_close_ok) {
                    state_ = State::closed;
                    return Event::closed;
                }
                if (p == Protocol::connection_close) return closed_by_peer();  // both sides closed at once
                return Event::none;
            case State::closed:
            case State::failed: break;
        }
        return Event::none;
    }

    // An application message for the client's inbox, within its bounds.
    Event keep(const Decoder::Frame& f) {
        if (target_ != nullptr && !delivered_ && inbox_count_ == 0) {
            Decoder::store(f, *target_);
            delivered_ = true;
            return Event::message;
        }
        if (inbox_count_ >= inbox_limit_ || f.content().size() > inbox_bytes_limit_ - inbox_bytes_)
            return fail_with(Error{Errc::inbox_full, 0, "receive: unread messages over Config::max_inbox_*"});
        if (inbox_head_ + inbox_count_ == inbox_.size()) {
            if (inbox_head_ != 0) {  // slide the kept ones to the front, buffers and all
                for (std::size_t i = 0; i < inbox_count_; ++i) inbox_[i].swap(inbox_[inbox_head_ + i]);
                inbox_head_ = 0;
            } else {
                inbox_.emplace_back();
            }
        }
        Decoder::store(f, inbox_[inbox_head_ + inbox_count_]);
        ++inbox_count_;
        inbox_bytes_ += f.content().size();
        return Event::message;
    }

    // The next posted message goes out once the one in flight is acknowledged.
    void launch() {
        if (in_flight_ || outbox_head_ >= outbox_.size()) return;
        put(outbox_[outbox_head_]);
        in_flight_ = true;
        if (++outbox_head_ == outbox_.size()) {
            outbox_.clear();
            outbox_head_ = 0;
        }
    }

    // Queues a posted message (checked by post()): a large content is
    // moved, unless one is queued already.
    void put(Message& m) {
        if (moved_ || m.content().size() < large_content) {
            (void)append_frame(out_, m.media_type().view(), m.content());
            return;
        }
        body_ = std::move(m.content());
        queue_large(m.media_type().view());
    }
    // The frame of the large content large() names: its header and end
    // marker go in out_ around it, and it is sent from its own bytes.
    void queue_large(std::string_view type) {
        const std::size_t head = frame_size(type.size(), 0) - 1;
        write_head(out_.reserve_tail(head), type, large().size());
        out_.commit(head);
        body_at_ = out_.size();
        body_off_ = 0;
        moved_ = true;
        const char marker = static_cast<char>(end_marker);
        out_.append(&marker, 1);
    }
    // The large content being sent: lent (post_lent()) or body_.
    std::string_view large() const noexcept { return lending_ ? lent_ : std::string_view(body_); }

    Role role_;
    State state_ = State::handshake;
    Decoder decoder_;
    Decoder::Frame frame_;
    bool fresh_ = false;  // bytes arrived since the decoder last needed more
    bool heard_anything_ = false;
    Buffer out_;
    std::size_t out_off_ = 0;
    // a large response content moved in, sent from its own bytes (pieces())
    bool moved_ = false;
    std::string body_;
    bool lending_ = false;   // it is lent_, not body_
    std::string_view lent_;  // the caller's, until unlend()
    std::size_t body_off_ = 0;  // of it, sent
    std::size_t body_at_ = 0;   // where in out_ it goes
    Error error_{};
    // client: the one message in flight, and those posted behind it
    bool in_flight_ = false;
    std::vector<Message> outbox_;
    std::size_t outbox_head_ = 0;
    // client: received application messages not taken yet (a FIFO whose
    // slots keep their buffers)
    std::vector<Message> inbox_;
    std::size_t inbox_head_ = 0;
    std::size_t inbox_count_ = 0;
    std::size_t inbox_bytes_ = 0;
    Message* target_ = nullptr;  // see deliver_to()
    bool delivered_ = false;
    // timers, in ms on the caller's clock
    std::int64_t period_;
    std::int64_t handshake_;
    std::int64_t close_timeout_;
    std::int64_t stall_;
    std::size_t inbox_limit_;
    std::size_t inbox_bytes_limit_;
    std::size_t send_buffer_;  // Config::send_buffer, 0 once asked for (send_buffer_wanted())
    std::int64_t since_;  // when the conversation began
    std::int64_t closing_deadline_ = never;
    std::int64_t blocked_since_ = never;  // the socket has refused writes since then, no progress
    std::int64_t last_in_;   // when bytes last arrived
    std::int64_t last_out_;  // when bytes were last written (or a heartbeat queued)
};

// One recv() into a conversation: bytes read (0 when nothing was there; in
// `room` how many could have come), or the error that ends the connection:
// Errc::closed_by_peer with errno 0 at end of file. The caller stamps the
// arrival (Conversation::heard).
inline Result<std::size_t> receive(int fd, Conversation& c, std::size_t& room) {
    char* p = c.room(room);
    if (p == nullptr) return fail(Errc::io, ENOMEM, "recv: no memory for the frame");
    const long n = recv_some(fd, p, room);
    if (n > 0) {
        c.received(static_cast<std::size_t>(n));
        return static_cast<std::size_t>(n);
    }
    if (n == -2) return std::size_t{0};
    if (n == 0) return fail(Errc::closed_by_peer, 0, "recv: end of file");
    return fail(io_error(errno, "recv"));
}

// Writes what the socket takes of what the conversation has queued; the
// rest stays queued, whole frames behind it, for when the socket is writable.
// `now` stamps what was written, for the heartbeat timer.
inline Result<Unit> transmit(int fd, Conversation& c, std::int64_t now) {
    if (const std::size_t b = c.send_buffer_wanted()) {
        // Only ever raised (the kernel reports twice what was set): a host
        // whose default is larger keeps it. Best effort: the default works.
        const int v = b > 0x3FFFFFFF ? 0x3FFFFFFF : static_cast<int>(b);
        int have = 0;
        socklen_t len = sizeof have;
        if (::getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &have, &len) == 0 && have / 2 < v)
            (void)::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &v, sizeof v);
    }
    while (c.wants_write()) {
        Conversation::Piece v[3];
        const std::size_t k = c.pieces(v);
        const long n = send_pieces(fd, v, k);
        if (n < 0) return fail(io_error(errno, "send"));
        if (n == 0) {  // the socket is full
            c.blocked(now);
            break;
        }
        c.sent(static_cast<std::size_t>(n), now);
    }
    return Unit{};
}

}  // namespace detail

// ===========================================================================
// 11. Client: Process — a connection to a server, after the handshake.
//     The blocking calls (send, wait, close) and the event-loop calls (post,
//     step, take) drive the same Conversation; they cannot disagree.
// ===========================================================================

class Process {
public:
    Process(Process&& o) noexcept
        : fd_(std::move(o.fd_)), name_(std::move(o.name_)), config_(std::move(o.config_)), conv_(std::move(o.conv_)),
          owner_(o.owner_), recv_timeout_(o.recv_timeout_), unheard_(o.unheard_), desynchronized_(o.desynchronized_),
          closed_(o.closed_), moved_(o.moved_) {
        o.moved_ = true;
    }
    Process& operator=(Process&& o) noexcept {
        if (this != &o) {
            finish();
            moved_ = o.moved_;
            o.moved_ = true;
            fd_ = std::move(o.fd_);
            name_ = std::move(o.name_);
            config_ = std::move(o.config_);
            conv_ = std::move(o.conv_);
            owner_ = o.owner_;
            recv_timeout_ = o.recv_timeout_;
            unheard_ = o.unheard_;
            desynchronized_ = o.desynchronized_;
            closed_ = o.closed_;
        }
        return *this;
    }
    Process(const Process&) = delete;
    Process& operator=(const Process&) = delete;
    // Closes properly (bounded by Config::close_timeout) if still open.
    // In a forked child, only the child's copy of the fd is closed
    // (docs/design.md, "Handles and fork()").
    ~Process() { finish(); }

    const Name& name() const noexcept { return name_; }
    bool closed() const noexcept { return closed_; }
    // The socket, for event loops; the Process still owns it. The blocking
    // calls (get(), send(), wait(), close()) make it blocking and set its
    // SO_RCVTIMEO, to wait in recv(); every call of ours on it says
    // MSG_DONTWAIT, so post() and step() never block. Make it non-blocking
    // again (as event loops do) and the blocking calls wait in poll().
    int fd() const noexcept { return fd_.get(); }

    // Sends one message and waits for the server's acknowledgement. When
    // the timeout passes first, nobody can tell any more which reply
    // answers which request: every later call but close() fails with
    // Errc::desynchronized (reconnect).
    Result<Unit> send(const Message& m, Milliseconds timeout = Milliseconds::forever()) {
        return send_one(m, detail::Deadline::after(timeout));
    }
    // Sends several messages, each after the previous one was acknowledged.
    template <class Range>
    Result<Unit> send(const Range& messages, Milliseconds timeout = Milliseconds::forever()) {
        auto deadline = detail::Deadline::after(timeout);
        for (const Message& m : messages) {
            auto r = send_one(m, deadline);
            if (!r) return r;
        }
        return Unit{};
    }
    Result<Unit> send(std::initializer_list<Message> messages, Milliseconds timeout = Milliseconds::forever()) {
        return send<std::initializer_list<Message>>(messages, timeout);
    }

    // The next application message. Heartbeats are hidden; a heartbeat is
    // sent each period in which nothing arrived. `connection close` from
    // the server is acknowledged and reported as Errc::closed (the seed's
    // empty result); later calls fail with Errc::closed too. Unlike the
    // reference, the timeout is a deadline for the whole call; a wait()
    // that times out changes nothing (the connection stays usable).
    Result<Message> wait(Milliseconds timeout = Milliseconds::forever()) {
        Message m;
        auto r = wait_into(m, timeout);
        if (!r) return fail(r.error());
        return m;
    }

    // Same as wait(), into a message you keep: its buffers are reused, so a
    // steady request/response loop does not allocate.
    Result<Unit> wait_into(Message& m, Milliseconds timeout = Milliseconds::forever()) {
        alive();
        if (desynchronized_) return desynchronized("wait");
        if (conv_.take(m)) return Unit{};
        if (closed_) return fail(Errc::closed, 0, "wait");
        struct Target {  // the next arrival is decoded straight into m, until this goes
            detail::Conversation& conv;
            Target(detail::Conversation& c, Message& into) : conv(c) { conv.deliver_to(&into); }
            ~Target() { conv.deliver_to(nullptr); }
        } target(conv_, m);
        return drive(detail::Deadline::after(timeout), "wait", [this] { return conv_.delivered(); });
    }

    // ---- Inside your own event loop: post(), step() and take() never block.
    // Poll fd() for events(), pass the revents to step(), take() what came.

    // What to poll fd() for: POLLIN, and POLLOUT while bytes wait to be written.
    short events() const noexcept {
        return static_cast<short>(conv_.wants_write() ? (POLLIN | POLLOUT) : POLLIN);
    }
    // Posted messages not acknowledged yet (the one in flight included).
    std::size_t unacknowledged() const noexcept { return conv_.unacknowledged(); }
    // Queues a message. The protocol allows one message in flight: each goes
    // out once the previous one is acknowledged. Writes what the socket takes.
    Result<Unit> post(const Message& m) {
        auto u = usable("post");
        if (!u) return u;
        auto q = conv_.post(m);
        if (!q) return q;
        return transmit(clock());
    }
    // The same, but a large content (64 KiB or more) is moved into the
    // queue, not copied; m's content is then empty.
    Result<Unit> post(Message&& m) {
        auto u = usable("post");
        if (!u) return u;
        auto q = conv_.post(std::move(m));
        if (!q) return q;
        return transmit(clock());
    }
    // Does the ready work for these revents of fd(): reads what arrived,
    // handles acknowledgements, heartbeats and the server's close, writes
    // what is queued, sends a heartbeat when one is due. Application
    // messages wait for take().
    Result<Unit> step(short revents) {
        auto u = usable("step");
        if (!u) return u;
        const std::int64_t now = clock();
        if ((revents & (POLLIN | POLLHUP | POLLERR)) != 0) {
            for (;;) {
                std::size_t room = 0;
                auto n = detail::receive(fd_.get(), conv_, room);
                if (!n) return lost(n.error());
                if (n.value() == 0) break;
                conv_.heard(now);
                auto e = absorb("step");
                if (!e) return e;
                if (n.value() < room) break;  // a short read: nothing more is there
            }
        }
        tick(now);
        return transmit(now);
    }
    // The next application message received by step(), if there is one.
    bool take(Message& out) {
        alive();
        return !desynchronized_ && conv_.take(out);
    }

    // The close handshake: `connection close`, then `close ok` from the
    // server. What is queued before it (a posted message) goes out first.
    // In a forked child it only closes the child's copy of the fd: the
    // connection stays the parent's.
    Result<Unit> close(Milliseconds timeout) {
        unmoved();
        if (!owner_.here()) cut();
        if (closed_) return Unit{};
        alive();
        const auto deadline = detail::Deadline::after(timeout);
        // Posted messages go out (each after the previous one's ack) before
        // the close; a desynchronized Process has nothing left to pair.
        Result<Unit> posted = Unit{};
        if (!desynchronized_ && conv_.unacknowledged() != 0)
            posted = drive(deadline, "close: posted messages", [this] { return conv_.unacknowledged() == 0; });
        Result<Unit> r = posted;
        if (!closed_) {
            conv_.close(0, false);  // close(timeout) is the deadline
            r = drive(deadline, "close", [] { return false; });
            cut();
            if (!posted) return posted;  // closed, but not everything posted was acknowledged
        }
        // closed: the handshake completed (or the server closed at the same
        // time); closed_by_peer: the server is gone, closed all the same.
        if (r || r.error() == Errc::closed || r.error() == Errc::closed_by_peer) return Unit{};
        return r;
    }
    Result<Unit> close() { return close(config_.close_timeout); }

private:
    friend class Ipc;
    Process(detail::Fd fd, Name name, const Config& config)
        : fd_(std::move(fd)), name_(std::move(name)), config_(config),
          conv_(detail::Role::client, config, detail::now_ms()) {}

    // Reads the connection start and answers start ok.
    Result<Unit> handshake(const detail::Deadline& deadline) {
        return drive(deadline, "handshake", [this] { return conv_.state() == detail::Conversation::State::ready; });
    }

    Result<Unit> send_one(const Message& m, const detail::Deadline& deadline) {
        auto u = usable("send");
        if (!u) return u;
        if (conv_.unacknowledged() != 0) return fail(Errc::invalid_argument, 0, "send: posted messages await their ack (use step())");
        auto q = conv_.post_lent(m);  // a large content is sent from m itself, until this returns
        if (!q) return q;
        struct Unlend {  // also when drive() throws (bad_alloc): m may go then
            Process& p;
            ~Unlend() { p.conv_.unlend(!p.closed_); }
        };
        Result<Unit> r = Unit{};
        {
            Unlend unlend{*this};
            r = drive(deadline, "send", [this] { return conv_.unacknowledged() == 0; });
        }
        if (!closed_ && conv_.state() == detail::Conversation::State::failed) return lost(conv_.error());
        if (!r && r.error() == Errc::timed_out) {
            // The ack (and maybe a reply) may still come: from now on no
            // reply can be paired with its request.
            desynchronized_ = true;
            return fail(Errc::timed_out, 0, "send: no acknowledgement in time; the connection is desynchronized");
        }
        return r;
    }

    Result<Unit> usable(const char* where) const {
        alive();
        if (desynchronized_) return desynchronized(where);
        if (closed_) return fail(Errc::closed, 0, where);
        return Unit{};
    }
    static Result<Unit> desynchronized(const char* where) { return fail(Errc::desynchronized, 0, where); }
    void unmoved() const noexcept {
        IPC_HPP_CONFIG_ASSERT(!moved_, "use of a moved-from Process");
        if (moved_) std::abort();
    }
    void alive() const noexcept {
        unmoved();
        IPC_HPP_CONFIG_ASSERT(owner_.here_cheaply(), "Process used in a forked child: connect again there");
        if (!owner_.here_cheaply()) std::abort();
    }

    // For step(): handles the events of what was received. Errc::closed
    // when the conversation ended (its `close ok` written as far as the
    // socket takes it at once), the peer's error when it failed.
    Result<Unit> absorb(const char* where) {
        for (;;) {
            switch (conv_.next()) {
                case detail::Conversation::Event::none: return Unit{};
                case detail::Conversation::Event::failed: return lost(conv_.error());
                case detail::Conversation::Event::closed: return ended(where, false);
                default: break;  // started, message, acknowledged: the caller looks
            }
        }
    }
    // The conversation is over: what is queued (a `close ok`) is written,
    // within Config::close_timeout when `block`, else as far as the socket
    // takes it at once (the event-loop calls never block); then closed.
    Result<Unit> ended(const char* where, bool block = true) {
        const std::int64_t now = detail::now_ms();
        const auto deadline = detail::Deadline::after(config_.close_timeout, now);
        while (conv_.wants_write()) {
            if (!transmit(now)) break;
            if (!block || !conv_.wants_write()) break;
            if (detail::poll_one(fd_.get(), POLLOUT, deadline) <= 0) break;
        }
        cut();
        return fail(Errc::closed, 0, where);
    }
    // The connection is over because of e: closed, and e passed on.
    Result<Unit> lost(const Error& e) {
        cut();
        return fail(e);
    }
    Result<Unit> transmit(std::int64_t now) {
        auto t = detail::transmit(fd_.get(), conv_, now);
        if (!t) return lost(t.error());
        return Unit{};
    }
    // The time, read once per wait: what arrived since the last reading is
    // stamped with it, so an arrival is never dated early and a heartbeat
    // is never sent early.
    std::int64_t clock() {
        const std::int64_t now = detail::now_ms();
        if (unheard_) conv_.heard(now);
        unheard_ = false;
        return now;
    }
    // A heartbeat, when one is due.
    void tick(std::int64_t now) {
        std::size_t released = 0;
        if (now >= conv_.due()) (void)conv_.fire(now, released);
    }

    // The blocking calls: handles what arrived, writes what is queued, and
    // waits for the socket, until done() holds, the conversation ends or
    // the deadline passes (Errc::timed_out, nothing lost). It reads the
    // clock once before each poll() and stamps what arrived with it.
    template <class Done>
    Result<Unit> drive(const detail::Deadline& deadline, const char* where, Done done) {
        if (!fd_.valid()) return fail(Errc::closed, 0, where);
        for (;;) {
            // Frames already received first: a reply often came with its ack.
            for (;;) {
                if (done()) return conv_.wants_write() ? transmit(clock()) : Result<Unit>(Unit{});
                auto e = conv_.next();
                if (e == detail::Conversation::Event::none) break;
                if (e == detail::Conversation::Event::failed) return lost(conv_.error());
                if (e == detail::Conversation::Event::closed) return ended(where);
            }
            const std::int64_t now = clock();
            if (deadline.passed(now)) return fail(Errc::timed_out, 0, where);
            tick(now);
            if (conv_.wants_write()) {
                auto t = transmit(now);
                if (!t) return t;
            }
            const std::int64_t due = conv_.due();  // after the write: what is due depends on what is still queued
            const int wait_ms = deadline.poll_timeout(now, due == detail::never ? -1 : (due > now ? due - now : 0));
            // Nothing to write: wait in recv() itself, so a round trip is
            // one send() and one recv() (see await_bytes()).
            if (!conv_.wants_write() && recv_timeout_ != poll_only && (wait_ms < 0 || wait_ms > recv_slack_ms)) {
                auto a = await_bytes(wait_ms);
                if (!a) return a;
                continue;
            }
            struct pollfd p {};
            p.fd = fd_.get();
            p.events = events();
            const int r = ::poll(&p, 1, wait_ms);
            if (r < 0) {
                if (errno == EINTR) continue;  // what is left is recomputed from the deadline
                return fail(Errc::io, errno, "poll");
            }
            if (r == 0) continue;  // the deadline or a timer: checked above
            const short ev = p.revents;
            if ((ev & POLLNVAL) != 0) return lost(Error{Errc::io, EBADF, "poll"});
            if ((ev & POLLOUT) != 0) {
                auto t = transmit(now);
                if (!t) return t;
            }
            if ((ev & (POLLIN | POLLHUP | POLLERR)) != 0) {
                std::size_t room = 0;
                auto n = detail::receive(fd_.get(), conv_, room);
                if (!n) return lost(n.error());
                unheard_ = unheard_ || n.value() != 0;  // 0 bytes: woken without data (spurious); poll again
            }
        }
    }

    // Waits in a blocking recv() for what arrives, for at most about
    // wait_ms (< 0: no limit): the socket's own timeout (SO_RCVTIMEO) ends
    // it a little early, recv_slack_ms or more, because the kernel rounds
    // it up to its tick; drive() then polls for what is left, so a deadline
    // is kept as precisely as by poll(). The timeout is set only when the
    // one already set does not fit, so a steady loop sets it once. The
    // socket is made blocking the first time (every other call on it says
    // MSG_DONTWAIT). Unit when bytes came or the time ran out (drive()
    // looks at the clock), the error that ends the connection otherwise.
    static constexpr int recv_slack_ms = 10;
    Result<Unit> await_bytes(int wait_ms) {
        std::int64_t want = -1;  // no limit
        if (wait_ms >= 0) {
            const std::int64_t slack = wait_ms / 16 > recv_slack_ms ? wait_ms / 16 : recv_slack_ms;
            want = wait_ms - slack > 0 ? wait_ms - slack : 1;
        }
        if (recv_timeout_ == blocking_unknown) {
            const int fl = ::fcntl(fd_.get(), F_GETFL);
            if (fl < 0 || ::fcntl(fd_.get(), F_SETFL, fl & ~O_NONBLOCK) != 0) return lost(Error{Errc::socket, errno, "fcntl"});
            recv_timeout_ = -2;  // blocking, no timeout known
        }
        // What is set fits when it ends the wait no later than wanted and
        // not much sooner (within an eighth).
        const bool fits = want < 0 ? recv_timeout_ == -1 : (recv_timeout_ >= 0 && recv_timeout_ <= want && recv_timeout_ >= want - want / 8);
        if (!fits) {
            const std::int64_t set = want < 0 ? -1 : (want - want / 16 > 0 ? want - want / 16 : 1);
            struct timeval tv {};
            if (set > 0) {
                tv.tv_sec = static_cast<decltype(tv.tv_sec)>(set / 1000);
                tv.tv_usec = static_cast<decltype(tv.tv_usec)>((set % 1000) * 1000);
            }
            if (::setsockopt(fd_.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) != 0)
                return lost(Error{Errc::socket, errno, "setsockopt SO_RCVTIMEO"});
            recv_timeout_ = set;
        }
        std::size_t room = 0;
        char* p = conv_.room(room);
        if (p == nullptr) return lost(Error{Errc::io, ENOMEM, "recv: no memory for the frame"});
        // (detail::receive() with a blocking flag would say this once, but
        // measured 26 more client instructions per round trip: kept inline)
        const ssize_t n = ::recv(fd_.get(), p, room, 0);
        if (n > 0) {
            conv_.received(static_cast<std::size_t>(n));
            unheard_ = true;
            return Unit{};
        }
        if (n == 0) return lost(Error{Errc::closed_by_peer, 0, "recv: end of file"});
        if (errno == EINTR) return Unit{};  // a signal: drive() looks at the clock
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            // The time ran out, or someone made the socket non-blocking
            // again (an event loop given fd()): then it is left so, and
            // this Process waits in poll() from now on.
            const int fl = ::fcntl(fd_.get(), F_GETFL);
            if (fl < 0 || (fl & O_NONBLOCK) != 0) recv_timeout_ = poll_only;
            return Unit{};
        }
        return lost(detail::io_error(errno, "recv"));
    }

    void cut() noexcept {
        closed_ = true;
        fd_.reset();
    }
    void finish() noexcept {
        if (!moved_ && !closed_ && fd_.valid()) (void)close(config_.close_timeout);  // (in a child: cut())
    }

    detail::Fd fd_;
    Name name_;
    Config config_;
    detail::Conversation conv_;
    detail::Owner owner_;  // the process that connected
    // the socket's SO_RCVTIMEO in ms (await_bytes()): -1 none, -2 not
    // known, blocking_unknown: the socket is still non-blocking, poll_only:
    // someone else made it non-blocking (waits use poll())
    static constexpr std::int64_t blocking_unknown = -3;
    static constexpr std::int64_t poll_only = -4;
    std::int64_t recv_timeout_ = blocking_unknown;
    bool unheard_ = false;  // bytes arrived since the last clock()
    bool desynchronized_ = false;
    bool closed_ = false;
    bool moved_ = false;  // moved from: every call but the destructor asserts
};

// ===========================================================================
// 12. Server pieces: continuation, stop handle, drop reasons, signals
// ===========================================================================

namespace detail {
// A manually managed optional (no <optional> needed, no default ctor needed).
template <class T>
class Slot {
public:
    Slot() noexcept {}
    Slot(const Slot& o) : full_(false) {
        if (o.full_) emplace(o.value_);
    }
    Slot(Slot&& o) noexcept(std::is_nothrow_move_constructible<T>::value) : full_(false) {
        if (o.full_) emplace(std::move(o.value_));
        o.reset();  // moved from: empty, so a second use is caught
    }
    Slot& operator=(Slot o) {
        reset();
        if (o.full_) emplace(std::move(o.value_));
        return *this;
    }
    ~Slot() { reset(); }
    template <class... A>
    void emplace(A&&... a) {
        reset();
        ::new (static_cast<void*>(&value_)) T(std::forward<A>(a)...);
        full_ = true;
    }
    void reset() noexcept {
        if (full_) value_.~T();
        full_ = false;
    }
    bool full() const noexcept { return full_; }
    T& get() noexcept { return value_; }

private:
    bool full_ = false;
    union {
        T value_;
    };
};
}  // namespace detail

// What the reducer decided: a value, as in the seed. Build one from the
// continuation the reducer was given: respond(carry, message),
// continue_(carry), close(carry), stop(carry). Only the one the reducer
// returns is acted on; any other does nothing.
namespace detail {
// A reducer call under way on this thread: what a Continuation made for it
// drafts its response into. A Continuation names its call by serial, so one
// kept past its call (or used on another thread) is told apart and refused.
struct Call {
    Call(Conversation& client, const Message& message, std::size_t limit, bool& in_call) noexcept;
    ~Call();
    Call(const Call&) = delete;
    Call& operator=(const Call&) = delete;

    std::uint64_t serial;
    Conversation& conv;       // the client's
    const Message& handled;   // the message being reduced
    std::size_t start;        // conv.queue_end() when the reducer was called
    std::size_t limit;        // ServerCore::queue_limit()
    bool& in_call;            // ServerCore's: the Loop refuses re-entry
    bool answered = false;    // the returned Continuation was acted on
    Call* outer;              // the call this one runs inside (another server's)
};
struct Calls {
    Call* current = nullptr;
    // The last serial given on this thread: its high half names the thread
    // (taken from call_epochs, so no two threads, alive or gone, share one;
    // a thread that has used up its 2^32 - 1 serials takes a new one), its
    // low half counts. 0 names no call. Starts "used up".
    std::uint64_t serial = 0xffffffffu;
};
inline thread_local Calls calls;
inline std::atomic<std::uint32_t> call_epochs{0};  // 32 bits: lock-free on every target
struct Answering;  // what the Loop reads of a Continuation (section 14)

inline std::uint64_t next_serial() noexcept {
    std::uint64_t s = ++calls.serial;
    if ((s & 0xffffffffu) == 0) {
        const std::uint32_t epoch = call_epochs.fetch_add(1, std::memory_order_relaxed) + 1u;
        s = calls.serial = (std::uint64_t{epoch} << 32) | 1u;
    }
    return s;
}

inline Call::Call(Conversation& client, const Message& message, std::size_t lim, bool& flag) noexcept
    : serial(next_serial()), conv(client), handled(message), start(client.queue_end()), limit(lim), in_call(flag),
      outer(calls.current) {
    calls.current = this;
    in_call = true;
}
inline Call::~Call() {
    calls.current = outer;
    in_call = false;
    if (!answered) conv.keep_draft(start, start, start);  // the reducer threw: none of its drafts is sent
}

// A response drafted by Continuation::respond().
struct Reply {
    enum class Kind : unsigned char {
        none,
        draft,       // encoded in the client's queue at [from, to)
        echo,        // the large message being handled, queued from its own bytes
        owned,       // kept in the Continuation (built by hand, or large and moved in)
        too_large,   // does not fit the frame format
        queue_full,  // the client does not read and its queue is at Config::max_queued_bytes
        protocol,    // it would read as a protocol message on the wire
    };
    Kind kind = Kind::none;
    Protocol as = Protocol::none;  // for `protocol`
    std::size_t from = 0, to = 0;
};

// Whether a response of `size` bytes would take the client's queue past its
// bound. What was queued before the call counts; this call's other drafts
// do not (all but the returned one are cut). A response to a client whose
// queue is otherwise empty is always taken, whatever its size.
inline bool over_limit(const Call& call, std::size_t size) noexcept {
    const std::size_t pending = call.conv.queued_before(call.start);
    return pending != 0 && (pending >= call.limit || size > call.limit - pending);
}

inline Reply draft_reply(Call* call, const Message& m, bool movable) {
    Reply r;
    const std::size_t type = m.media_type().view().size(), n = m.content().size();
    if (protocol::may_be_protocol(n) && m.is_protocol()) {
        r.kind = Reply::Kind::protocol;
        r.as = m.protocol();
    } else if (!frame_fits(type, n)) {
        r.kind = Reply::Kind::too_large;
        r.from = type;  // for the error: which of the two is too long
    } else if (call == nullptr || (n >= large_content && movable)) {
        r.kind = Reply::Kind::owned;
    } else if (n >= large_content && &m == &call->handled) {
        r.kind = Reply::Kind::echo;
    } else if (over_limit(*call, frame_size(type, n))) {
        r.kind = Reply::Kind::queue_full;  // (not encoded: the bound holds while the reducer runs too)
    } else {
        r.from = call->conv.queue_end();
        call->conv.draft(m);
        r.to = call->conv.queue_end();
        r.kind = Reply::Kind::draft;
    }
    return r;
}

// The Continuation used outside the call it was made for.
inline Call* bound_call(std::uint64_t serial) noexcept {
    Call* c = calls.current;
    if (serial == 0) return nullptr;  // built by hand: it keeps its response
    IPC_HPP_CONFIG_ASSERT(c != nullptr && c->serial == serial,
                          "a Continuation used outside its own reducer call (kept past it, or used on another thread)");
    if (c == nullptr || c->serial != serial) std::abort();
    return c;
}
}  // namespace detail

template <class Carry>
class Continuation {
public:
    enum class Kind : unsigned char { undecided, respond, proceed, close, stop };

    // Built by hand (outside a reducer, for a test): it keeps a copy of its
    // response, and a Loop that is given it sends that copy.
    Continuation() = default;
    Continuation(Continuation&&) noexcept(std::is_nothrow_move_constructible<Carry>::value) = default;
    Continuation& operator=(Continuation&&) = default;
    // Move-only: a copy kept past the reducer would answer nobody.
    Continuation(const Continuation&) = delete;
    Continuation& operator=(const Continuation&) = delete;

    // Inside a reducer, the response is encoded into the client's write
    // queue at once (so `message` may be a temporary, or the message being
    // handled) and sent only if this Continuation is the one returned. A
    // large one (64 KiB or more) is not copied at all when it is the
    // message being handled or is passed as an rvalue: it is sent from its
    // own bytes. A message that would read as a protocol message on the
    // wire is refused: the client is dropped (DropReason::invalid_response).
    // Called on a Continuation kept past its reducer call: abort.
    // The carry is taken by reference and moved from last, once the
    // message is drafted: `k.respond(std::move(s), describe(s))` and
    // `k.respond(std::move(s), s.reply)` both see the carry as it was.
    [[nodiscard]] Continuation respond(Carry&& carry, const Message& message) const { return draft(std::move(carry), message); }
    [[nodiscard]] Continuation respond(Carry&& carry, Message&& message) const { return draft(std::move(carry), std::move(message)); }
    [[nodiscard]] Continuation respond(const Carry& carry, const Message& message) const { return draft(Carry(carry), message); }
    [[nodiscard]] Continuation respond(const Carry& carry, Message&& message) const { return draft(Carry(carry), std::move(message)); }
    [[nodiscard]] Continuation continue_(Carry&& carry) const { return decide(Kind::proceed, std::move(carry)); }
    [[nodiscard]] Continuation continue_(const Carry& carry) const { return decide(Kind::proceed, Carry(carry)); }
    [[deprecated("use continue_(carry)")]] [[nodiscard]] Continuation proceed(Carry carry) const {
        return decide(Kind::proceed, std::move(carry));
    }
    [[nodiscard]] Continuation close(Carry&& carry) const { return decide(Kind::close, std::move(carry)); }
    [[nodiscard]] Continuation close(const Carry& carry) const { return decide(Kind::close, Carry(carry)); }
    [[nodiscard]] Continuation stop(Carry&& carry) const { return decide(Kind::stop, std::move(carry)); }
    [[nodiscard]] Continuation stop(const Carry& carry) const { return decide(Kind::stop, Carry(carry)); }

    Kind kind() const noexcept { return kind_; }
    bool decided() const noexcept { return kind_ != Kind::undecided; }
    Carry& carry() noexcept { return carry_.get(); }
    // The response kept by a Continuation built outside a reducer (or a
    // large one moved in).
    bool has_message() const noexcept { return message_ != nullptr; }
    Message& message() noexcept { return *message_; }

private:
    friend struct detail::Answering;
    explicit Continuation(std::uint64_t serial) noexcept : serial_(serial) {}
    Continuation(Kind k, Carry&& carry, std::uint64_t serial) : serial_(serial), kind_(k) { carry_.emplace(std::move(carry)); }
    // M: const Message& (copied if kept) or Message (moved from if kept).
    template <class M>
    Continuation draft(Carry&& carry, M&& message) const {
        Continuation c(serial_);
        c.kind_ = Kind::respond;
        c.reply_ = detail::draft_reply(detail::bound_call(serial_), message, !std::is_lvalue_reference<M>::value);
        if (c.reply_.kind == detail::Reply::Kind::owned) c.message_.reset(new Message(std::forward<M>(message)));
        c.carry_.emplace(std::move(carry));  // last: the message may be (part of) the carry
        return c;
    }
    Continuation decide(Kind k, Carry&& carry) const {
        (void)detail::bound_call(serial_);
        return Continuation(k, std::move(carry), serial_);
    }
    std::uint64_t serial_ = 0;  // the reducer call it was made for; 0: built by hand
    Kind kind_ = Kind::undecided;
    detail::Reply reply_;
    detail::Slot<Carry> carry_;
    std::unique_ptr<Message> message_;  // see has_message(); a pointer keeps this type small
};

namespace detail {
// What a stop request needs; safe to touch from a signal handler.
// Owned jointly by the Server and every StopHandle, with both ends of the
// server's self-pipe: a handle that outlives its server still writes to
// its own pipe, never to whatever file reused the fd number.
struct StopState {
    StopState(Fd r, Fd w) noexcept : wake_read(std::move(r)), wake_write_fd(std::move(w)), wake_write(wake_write_fd.get()) {}
    Fd wake_read;
    Fd wake_write_fd;
    std::atomic<bool> requested{false};
    int wake_write = -1;  // wake_write_fd.get(), read by request()
    pid_t owner = ::getpid();  // a forked child's request stops nothing (the pipe is its parent's too)
    bool here() const noexcept { return ::getpid() == owner; }  // (async-signal-safe)
    void request() noexcept {
        if (!here()) return;
        requested.store(true, std::memory_order_release);
        if (wake_write >= 0) {
            char b = 1;
            ssize_t r;
            do {
                r = ::write(wake_write, &b, 1);
            } while (r < 0 && errno == EINTR);
        }
    }
};
}  // namespace detail

// Stops a server from anywhere: another thread, a signal handler (the call
// is async-signal-safe: an atomic store and a write()), before the loop
// starts included. The stop is sticky. A handle shares what it writes to
// with its Server, so using it after the Server is gone is harmless.
// (Copying or destroying a handle is not async-signal-safe: make the copy
// a signal handler uses beforehand.)
class StopHandle {
public:
    StopHandle() = default;
    void request() const noexcept {
        if (state_ != nullptr) state_->request();
    }
    void operator()() const noexcept { request(); }
    bool requested() const noexcept { return state_ != nullptr && state_->requested.load(std::memory_order_acquire); }

private:
    friend class Server;
    explicit StopHandle(std::shared_ptr<detail::StopState> s) noexcept : state_(std::move(s)) {}
    std::shared_ptr<detail::StopState> state_;
};

// Why the server dropped a connection (for Server::on_drop).
enum class DropReason : unsigned char {
    closed,             // the close handshake completed
    end_of_file,        // the peer vanished without closing
    io_error,           // recv/send failed (see Error::sys_errno)
    malformed_frame,    // bad end marker, invalid media type...
    message_too_large,  // the length prefix announced more than the maximum
    queue_full,         // the peer did not read what the server wrote
    refused,            // the peer's credentials were refused
    shutdown,           // the server stopped and the peer did not answer
    handshake_timeout,  // no `start ok` within Config::handshake_timeout
    too_many_connections,  // Config::max_connections were already open
    close_timeout,      // no `close ok` within Config::close_timeout after the reducer's close
    invalid_response,   // the reducer responded with a protocol message's contents (Errc::invalid_argument)
};

// The enumerator's own name ("queue_full"); "unknown" outside the enum.
inline const char* to_string(DropReason why) noexcept {
    switch (why) {
        case DropReason::closed: return "closed";
        case DropReason::end_of_file: return "end_of_file";
        case DropReason::io_error: return "io_error";
        case DropReason::malformed_frame: return "malformed_frame";
        case DropReason::message_too_large: return "message_too_large";
        case DropReason::queue_full: return "queue_full";
        case DropReason::refused: return "refused";
        case DropReason::shutdown: return "shutdown";
        case DropReason::handshake_timeout: return "handshake_timeout";
        case DropReason::too_many_connections: return "too_many_connections";
        case DropReason::close_timeout: return "close_timeout";
        case DropReason::invalid_response: return "invalid_response";
    }
    return "unknown";
}


namespace detail {

// The signals the reference handles while it serves (docs/protocol.md §4); only
// touched when the user asks for them (Server::handle_signals).
constexpr int stop_signals[6] = {SIGHUP, SIGINT, SIGABRT, SIGTERM, SIGTSTP, SIGALRM};

// Where the signal handler sends its stop request, and what each signal did
// before the handler was installed. The one global of the library: a signal
// handler has no other way to reach a server. (One server handles signals
// at a time: Server::handle_signals.)
inline std::atomic<StopState*> signal_target{nullptr};
inline struct sigaction signal_previous[6] {};

extern "C" inline void ipc_hpp_on_stop_signal(int sig, siginfo_t* info, void* context) {
    int saved = errno;
    StopState* s = signal_target.load(std::memory_order_acquire);
    if (s != nullptr && !s->here()) {
        // A forked child that inherited the handler: the signal does what
        // it did there before the server installed it (ignored under nohup,
        // the user's own handler, or the default action), from now on too.
        for (int i = 0; i < 6; ++i) {
            if (stop_signals[i] != sig) continue;
            const struct sigaction& before = signal_previous[i];
            (void)::sigaction(sig, &before, nullptr);
            if ((before.sa_flags & SA_SIGINFO) != 0) {
                if (before.sa_sigaction != nullptr) before.sa_sigaction(sig, info, context);
            } else if (before.sa_handler == SIG_DFL) {
                (void)::raise(sig);  // pending until this handler returns, then the default action
            } else if (before.sa_handler != SIG_IGN && before.sa_handler != nullptr) {
                before.sa_handler(sig);
            }
        }
    } else if (s != nullptr) {
        s->request();
    }
    errno = saved;
}

// Installs the stop handlers for its lifetime and restores the previous ones.
class SignalGuard {
public:
    SignalGuard() = default;
    SignalGuard(const SignalGuard&) = delete;
    SignalGuard& operator=(const SignalGuard&) = delete;
    ~SignalGuard() { restore(); }
    void install(StopState* s) {
        struct sigaction sa {};
        sa.sa_sigaction = &ipc_hpp_on_stop_signal;
        sigemptyset(&sa.sa_mask);
        for (int sig : stop_signals) sigaddset(&sa.sa_mask, sig);  // (signal_previous is read whole)
        sa.sa_flags = SA_RESTART | SA_SIGINFO;
        for (int i = 0; i < 6; ++i) {  // (a second server's install keeps the first's record)
            struct sigaction before {};
            if (::sigaction(stop_signals[i], nullptr, &before) == 0 && before.sa_sigaction != &ipc_hpp_on_stop_signal)
                signal_previous[i] = before;
        }
        signal_target.store(s, std::memory_order_release);
        for (int i = 0; i < 6; ++i) ::sigaction(stop_signals[i], &sa, &old_[i]);
        active_ = true;
    }
    void restore() noexcept {
        if (!active_) return;
        for (int i = 0; i < 6; ++i) ::sigaction(stop_signals[i], &old_[i], nullptr);
        signal_target.store(nullptr, std::memory_order_release);
        active_ = false;
    }

private:
    struct sigaction old_[6] {};
    bool active_ = false;
};

}  // namespace detail

// ===========================================================================
// 13. detail: the server core — its connections, the poll set, the timer
//     heap, accept, read, flush, shutdown. Non-template: the reducer is
//     added on top by Server::Loop.
// ===========================================================================

namespace detail {

// Server::on_drop's callable, kept in place: a function and its user
// pointer, or a small callable object stored in `bytes`.
class DropHook {
public:
    static constexpr std::size_t room = 64;
    DropHook() = default;
    DropHook(const DropHook&) = delete;
    DropHook& operator=(const DropHook&) = delete;
    ~DropHook() { reset(); }

    void set(void (*f)(void*, const Peer&, DropReason, const Error&), void* user) noexcept {
        reset();
        call_ = f;
        target_ = user;
    }
    template <class F>
    void emplace(F&& f) {
        using T = std::decay_t<F>;
        static_assert(sizeof(T) <= room, "on_drop: the callable is larger than detail::DropHook::room; capture a pointer instead");
        static_assert(alignof(T) <= alignof(std::max_align_t), "on_drop: the callable is over-aligned");
        reset();
        target_ = ::new (static_cast<void*>(bytes_)) T(std::forward<F>(f));
        call_ = [](void* t, const Peer& p, DropReason r, const Error& e) { (*static_cast<T*>(t))(p, r, e); };
        destroy_ = [](void* t) noexcept { static_cast<T*>(t)->~T(); };
    }
    void operator()(const Peer& p, DropReason r, const Error& e) const {
        if (call_ != nullptr) call_(target_, p, r, e);
    }

private:
    void reset() noexcept {
        if (destroy_ != nullptr) destroy_(target_);
        destroy_ = nullptr;
        call_ = nullptr;
        target_ = nullptr;
    }
    alignas(std::max_align_t) unsigned char bytes_[room];
    void (*call_)(void*, const Peer&, DropReason, const Error&) = nullptr;
    void (*destroy_)(void*) noexcept = nullptr;
    void* target_ = nullptr;
};

struct ServerState {
    ServerState(Name n, std::string p, Config c, Milliseconds t, std::shared_ptr<StopState> st)
        : name(std::move(n)), path(std::move(p)), config(std::move(c)), timeout(t), stop_state(std::move(st)), stop(*stop_state) {}
    Name name;
    std::string path;
    Config config;
    Milliseconds timeout;
    std::shared_ptr<StopState> stop_state;
    StopState& stop;  // *stop_state
    bool handle_signals = false;
    std::vector<uid_t> allowed_uids;  // empty: anyone who can open the socket file
    DropHook on_drop;
    // A listening socket handed over by a supervisor (socket activation,
    // Server::from_fd): our own duplicate of it, served through another
    // duplicate; its file is never locked, replaced or unlinked. Invalid:
    // the server binds its own.
    Fd given;
};

// The private directory a server binds in (ServerCore::open): removed, with
// the socket in it if it is still there, when this goes out of scope.
struct PrivateDir {
    PrivateDir(const std::string& dir, const std::string& path)
        : parent(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)),
          fd(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)),
          path_(path),
          leaf_(path.substr(path.rfind('/') + 1)) {
        struct stat st {};
        // mkdtemp made it 0700 and ours; anything else means it was swapped.
        if (fd.valid() && (::fstat(fd.get(), &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != ::geteuid() ||
                           (st.st_mode & 077) != 0)) {
            fd.reset();
            errno = EPERM;
        }
    }
    PrivateDir(const PrivateDir&) = delete;
    PrivateDir& operator=(const PrivateDir&) = delete;
    ~PrivateDir() {
        if (fd.valid() && bound) (void)::unlinkat(fd.get(), "s", 0);
        // Only an empty directory goes: if it is not ours any more, it stays.
        if (parent.valid() && fd.valid()) (void)::unlinkat(parent.get(), leaf_.c_str(), AT_REMOVEDIR);
    }
    bool opened() const noexcept { return parent.valid() && fd.valid(); }
    std::string bind_path() const { return path_ + "/s"; }

    Fd parent;
    Fd fd;
    bool bound = false;  // "s" was created in it and not renamed away

private:
    std::string path_;
    std::string leaf_;
};

// A server's connection: its socket, its conversation, and where it sits in
// the server's pollfd array and timer heap.
struct Connection {
    Connection(Fd f, const Config& config, std::int64_t now) : fd(std::move(f)), conv(Role::server, config, now) {}
    Fd fd;
    Conversation conv;
    Peer peer;
    std::size_t index = 0;     // in ServerCore::conns_, and pfds_[2 + index]
    std::size_t heap_at = 0;   // in ServerCore::timers_
    std::int64_t due = never;  // its key there: conv.due() when last scheduled
    std::size_t queued = 0;    // ServerCore's count of it (account())
    std::size_t reserved = 0;
    bool dead = false;
};

class ServerCore {
public:
    explicit ServerCore(std::shared_ptr<ServerState> s)
        : keep_(std::move(s)), s_(*keep_), queue_limit_(limit_of(s_.config)), budget_(budget_of(s_.config, queue_limit_)),
          stall_ms_(s_.config.stall_timeout.count()) {}
    ServerCore(const ServerCore&) = delete;
    ServerCore& operator=(const ServerCore&) = delete;
    ~ServerCore() { close(); }

    // Takes the name and listens (docs/filesystem.md): checks the
    // directory, takes NAME.lock, refuses a lockless live server on the
    // path, binds in a private directory, sets the mode there, listens, and
    // renames the socket into place (replacing a stale file atomically).
    // Never follows a link, never changes or removes a file it did not create.
    Result<Unit> open() {
        if (s_.given.valid()) return adopt();
        const std::string& dir = s_.config.directory;
        auto d = prepare_directory(dir, s_.config.directory_mode, s_.config.allow_shared_directory);
        if (!d) return d;
        auto lock = take_name_lock(lock_path(dir, s_.name));
        if (!lock) return fail(lock.error());
        struct stat st {};
        if (::lstat(s_.path.c_str(), &st) == 0) {
            if (!S_ISSOCK(st.st_mode)) return fail(Errc::name_in_use, EEXIST, "listen: path exists and is not a socket");
            if (lockless_server_at(s_.path)) return fail(Errc::name_in_use, EADDRINUSE, "listen");
        }
        struct sockaddr_un addr {};
        auto final_len = unix_address(s_.path, addr);
        if (!final_len) return fail(final_len.error());
        std::string priv = private_bind_dir(dir, s_.name);
        if (::mkdtemp(&priv[0]) == nullptr) return fail(Errc::directory, errno, "mkdtemp");
        // From here on, only what this call created is removed on failure.
        PrivateDir scratch(dir, priv);
        if (!scratch.opened()) return fail(Errc::directory, errno, "open private directory");
        // <dir>/.NAME.XXXXXX/s is 5 bytes longer than <dir>/NAME.sock; when
        // only the latter fits sun_path, bind through the directory's fd.
        auto len = unix_address(scratch.bind_path(), addr);
        if (!len) len = unix_address("/proc/self/fd/" + std::to_string(scratch.fd.get()) + "/s", addr);
        if (!len) return fail(len.error());
        auto sock = stream_socket();
        if (!sock) return fail(sock.error());
        if (::bind(sock->get(), reinterpret_cast<const struct sockaddr*>(&addr), len.value()) != 0) {
            return fail(errno == ENOENT ? Errc::path_too_long : Errc::socket, errno, "bind");
        }
        scratch.bound = true;
        // Inside a 0700 directory of ours: "s" is the socket just bound.
        if (::fchmodat(scratch.fd.get(), "s", s_.config.socket_mode, 0) != 0) return fail(Errc::socket, errno, "chmod");
        if (::fstatat(scratch.fd.get(), "s", &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISSOCK(st.st_mode))
            return fail(Errc::socket, errno != 0 ? errno : EINVAL, "fstatat");
        if (::listen(sock->get(), SOMAXCONN) != 0) return fail(Errc::socket, errno, "listen");
        // Published before the rename, which keeps the inode (publish_socket).
        lock_ = HeldLock(std::move(lock).value());
        publish_socket(lock_.get(), st);
        if (::renameat(scratch.fd.get(), "s", scratch.parent.get(), (s_.name.str() + ".sock").c_str()) != 0)
            return fail(Errc::socket, errno, "rename into place");
        scratch.bound = false;  // moved out: nothing of it is left to remove but the directory
        listener_ = std::move(sock).value();
        dev_ = st.st_dev;
        ino_ = st.st_ino;
        return opened();
    }

    // Serves the supervisor's socket (ServerState::given) through a
    // duplicate closed on stop; the supervisor's own fd is never closed.
    // The supervisor made the file, so it is not locked, checked or
    // unlinked (docs/security.md). O_NONBLOCK is set on the open file
    // description, which the supervisor shares.
    Result<Unit> adopt() {
        auto dup = own_copy(s_.given.get());
        if (!dup) return fail(dup.error());
        if (!set_nonblock_cloexec(dup->get())) return fail(Errc::socket, errno, "fcntl");
        listener_ = std::move(dup).value();
        adopted_ = true;
        return opened();
    }

    // Drops every connection, closes the socket and removes its file when
    // the file is still ours (never a successor's), then lets the name go.
    // The check and the unlink are two steps: in a directory that passed
    // check_directory() nobody else can put a file between them.
    // In a forked child (docs/design.md, "Handles and fork()") it only
    // closes its fds: the socket file and the name are the parent's.
    void close() noexcept {
        conns_.clear();  // closes their fds
        timers_.clear();
        pfds_.clear();
        if (listener_.valid()) {
            listener_.reset();
            struct stat st {};
            if (!adopted_ && owner_.here() && ::lstat(s_.path.c_str(), &st) == 0 && st.st_dev == dev_ && st.st_ino == ino_) ::unlink(s_.path.c_str());
        }
        lock_.reset();
    }

    bool finished() const noexcept { return shutting_down_ && (conns_.empty() || now_ >= shutdown_deadline_); }
    // Whether a reducer of this server is running (the Loop refuses re-entry).
    bool in_call() const noexcept { return in_call_; }
    // Whether this is the process that made it (a forked child's copy: not).
    bool here_cheaply() const noexcept { return owner_.here_cheaply(); }
    // The Loop's stop(): inside a reducer, once its response is queued, so
    // that it reaches its client before `connection close`.
    // A reducer that throws after stop() leaves the request in s_.stop, so
    // the next step() shuts down as after a StopHandle's.
    void stop() {
        if (!in_call_) return begin_shutdown();
        stop_after_call_ = true;
        s_.stop.requested.store(true, std::memory_order_release);
    }

    // Waits until something is ready or work is due. A signal ends the wait
    // early; the caller's loop then recomputes what is due.
    void wait() {
        int timeout = 0;
        prepare(timeout);
        if (::poll(pfds_.data(), static_cast<nfds_t>(pfds_.size()), timeout) < 0) {
            for (auto& p : pfds_) p.revents = 0;
        }
        now_ = now_ms();
    }

    // The fds to watch, with their events, and the milliseconds until work
    // is due; valid until the next call. The array is kept between calls:
    // pfds_[0] is the wake pipe, pfds_[1] the listener, pfds_[2 + i] conns_[i].
    const std::vector<struct pollfd>& prepare(int& timeout_ms) {
        const std::int64_t now = now_ms();
        std::int64_t due = timers_.empty() ? never : timers_[0]->due;
        if (!s_.timeout.is_forever() && !shutting_down_) due = min(due, later(later(last_activity_, s_.timeout.count()), 1));
        if (shutting_down_) due = min(due, shutdown_deadline_);
        const bool accepting = !shutting_down_ && now >= accept_paused_until_;
        if (!accepting && !shutting_down_) due = min(due, accept_paused_until_);
        if (trim_pending()) due = min(due, trimmed_at_ + trim_every_ms);  // see give_back()
        if (admitted_ != nullptr && stall_ms_ >= 0) due = min(due, later(later(admitted_at_, stall_ms_), 1));  // see budget_timers()
        pfds_[1].fd = accepting ? listener_.get() : -1;
        const std::int64_t left = due == never ? -1 : (due > now ? due - now : 0);
        timeout_ms = left > 0x7FFFFFFF ? 0x7FFFFFFF : static_cast<int>(left);
        return pfds_;
    }

    // Takes the revents of the user's own poll() on the set prepare() gave
    // (same order; extra entries are ignored, missing ones count as idle).
    void absorb(const struct pollfd* fds, std::size_t n) noexcept {
        for (std::size_t i = 0; i < pfds_.size(); ++i) {
            pfds_[i].revents = (i < n && fds[i].fd == pfds_[i].fd) ? fds[i].revents : 0;
        }
        now_ = now_ms();
    }

    // Does the ready work; on_message(Connection&, Message&) is called for
    // each application message, after its acknowledgement is queued, and
    // returns what to do once its response is queued (After).
    template <class H>
    void process(H&& on_message) {
        if ((pfds_[0].revents & POLLIN) != 0) {
            char drain[64];
            while (::read(s_.stop.wake_read.get(), drain, sizeof drain) > 0) {
            }
        }
        if (s_.stop.requested.load(std::memory_order_acquire) && !shutting_down_) begin_shutdown();
        const bool accept_ready = (pfds_[1].revents & POLLIN) != 0;
        for (std::size_t i = 0; i < conns_.size(); ++i) {
            const short rev = pfds_[2 + i].revents;
            if (rev == 0) continue;
            pfds_[2 + i].revents = 0;
            Connection& c = *conns_[i];
            if (c.dead) continue;
            if ((rev & (POLLIN | POLLHUP | POLLERR)) != 0) read(c, on_message);
            if (!c.dead && (rev & POLLOUT) != 0) flush(c);
            if (!c.dead) schedule(c);
        }
        if (accept_ready && !shutting_down_) accept();
        timers();
        if (!shutting_down_ && !s_.timeout.is_forever() && now_ - last_activity_ > s_.timeout.count()) begin_shutdown();
        if (s_.stop.requested.load(std::memory_order_acquire) && !shutting_down_) begin_shutdown();
        if (shutting_down_ && now_ >= shutdown_deadline_) {
            for (auto& c : conns_) drop(*c, DropReason::shutdown, Error{Errc::timed_out, 0, "shutdown"});
        }
        if (pausing_) budget_timers();
        sweep();
    }

    // Graceful shutdown: stop accepting, `connection close` to everyone.
    void begin_shutdown() {
        if (shutting_down_) return;
        shutting_down_ = true;
        s_.stop.requested.store(true, std::memory_order_release);
        shutdown_deadline_ = s_.config.shutdown_timeout.is_forever() ? never : later(now_, s_.config.shutdown_timeout.count());
        for (auto& c : conns_) {
            if (!c->dead) close_client(*c);
        }
    }

    // Sends `connection close`; the client is dropped on its `close ok`.
    // The reducer's close gives the client Config::close_timeout to answer;
    // a shutdown has its own deadline.
    void close_client(Connection& c) {
        if (c.dead) return;
        c.conv.close(now_, !shutting_down_);
        flush(c);
        if (!c.dead) schedule(c);
    }

    // What on_message (process()) asks for once its response is queued.
    enum class After : unsigned char { proceed, close, stop };

    // Acts on the response the reducer returned (Continuation::respond(),
    // drafted in `call`): keeps its draft and cuts every other one, or
    // queues what it names. `owned`: the Continuation's own message.
    void answer(Connection& c, Call& call, const Reply& r, Message* owned) {
        call.answered = true;
        if (r.kind == Reply::Kind::draft) {  // (the queue limit was checked by draft_reply())
            c.conv.keep_draft(call.start, r.from, r.to);
            return;
        }
        c.conv.keep_draft(call.start, call.start, call.start);  // none of the drafts is sent
        switch (r.kind) {
            case Reply::Kind::none:
            case Reply::Kind::draft: return;
            case Reply::Kind::echo: enqueue(c, std::move(scratch_)); return;
            case Reply::Kind::owned:
                if (owned == nullptr) return;
                if (const Protocol p = owned->protocol(); p != Protocol::none) return refuse(c, p);
                enqueue(c, std::move(*owned));
                return;
            case Reply::Kind::too_large: drop(c, DropReason::message_too_large, frame_error(r.from, "respond")); return;
            case Reply::Kind::queue_full: drop(c, DropReason::queue_full, Error{Errc::io, ENOBUFS, "write queue full"}); return;
            case Reply::Kind::protocol: refuse(c, r.as); return;
        }
    }
    // A response that would read as a protocol message: the client would
    // act on it (or wait for its reply forever), so it is dropped instead.
    void refuse(Connection& c, Protocol p) {
        drop(c, DropReason::invalid_response, Error{Errc::invalid_argument, 0, protocol::refusal(p, true)});
    }

    // Writes what is queued; a write error drops the peer, unless `lost` is
    // given: then the error is left there for the caller (read()), which
    // first takes what the vanished peer sent before it went.
    // Returns false on that write error.
    bool flush(Connection& c, Error* lost = nullptr) {
        if (c.dead) return true;
        auto t = transmit(c.fd.get(), c.conv, now_);
        if (!t) {
            if (lost != nullptr) *lost = t.error();
            else drop(c, DropReason::io_error, t.error());
            return false;
        }
        if (c.conv.wants_write()) {
            // The socket is full: POLLOUT calls again, unless the peer is not reading at all.
            if (c.conv.queued() > queue_limit()) {
                drop(c, DropReason::queue_full, Error{Errc::io, ENOBUFS, "write queue full"});
                return true;
            }
        } else if (c.conv.state() == Conversation::State::closed) {
            drop(c, DropReason::closed, Error{Errc::closed, 0, "closed"});
            return true;
        }
        account(c);
        watch(c);
        return true;
    }
    // What to poll c for: POLLOUT while bytes wait, POLLIN unless closed or paused.
    void watch(Connection& c) noexcept {
        const short in = c.conv.state() == Conversation::State::closed || read_paused(c) ? 0 : POLLIN;
        pfds_[2 + c.index].events = static_cast<short>(c.conv.wants_write() ? (in | POLLOUT) : in);
    }

private:
    static std::int64_t min(std::int64_t a, std::int64_t b) noexcept { return a < b ? a : b; }

    template <class M>
    void enqueue(Connection& c, M&& m) {
        if (c.dead) return;
        // A peer that is not reading (the socket refused the last write) and
        // would have more than Config::max_queued_bytes queued is dropped
        // before the response is encoded: its queue never outgrows the bound.
        if (c.conv.wants_write() && past_limit(c, frame_size(m.media_type().view().size(), m.content().size()))) {
            drop(c, DropReason::queue_full, Error{Errc::io, ENOBUFS, "write queue full"});
            return;
        }
        auto r = c.conv.respond(std::forward<M>(m));
        if (!r) drop(c, DropReason::message_too_large, r.error());  // the client would wait for it forever
    }

    // What a peer that does not read may leave queued (after a send that
    // wrote what the socket took) before it is dropped.
    std::size_t queue_limit() const noexcept { return queue_limit_; }
    static std::size_t limit_of(const Config& config) noexcept {
        if (config.max_queued_bytes != 0) return config.max_queued_bytes;
        const std::size_t frame = frame_size(0xFFFF, config.max_message_size);
        const std::size_t slack = std::size_t{1} << 20;
        return frame > SIZE_MAX - slack ? SIZE_MAX : frame + slack;  // saturates on a 32-bit size_t
    }

    // Read backpressure, only where reading costs memory: a peer whose
    // answers wait in its queue is not read further into a frame that
    // would take the queue and the receive buffer together past
    // queue_limit(). Small frames (under Conversation::min_room) are always
    // read, so a peer that never reads is still seen asking and dropped at
    // the respond; a paused one that takes nothing is dropped by the stall
    // timer (queue_full). Reading resumes when the peer reads.
    // ---- The server-wide budget (Config::max_total_queued_bytes) ---------
    // Held: what is queued for every client, and the buffers their
    // conversations hold beyond the small ones every connection keeps
    // (a large frame being received, a string kept for the next one, a
    // grown write buffer). Past the budget, kept buffers are given back
    // (pause()), and one client at a time is read, the admitted one, chosen
    // while no answer waits anywhere, until its message is in (account()):
    // a request read is an answer queued, and an answer may be larger than
    // its request. The queues are emptied by writing or by the stall timer;
    // the admitted one's message comes, or the client, not done within
    // stall_timeout of its admission, is dropped (one that trickles a byte
    // now and then cannot hold the others off); frames stopped midway are
    // admitted in turn (budget_timers()), so they end or go. An idle
    // connection is never admitted: only one being read, or with a frame in
    // progress. Memory grows by at most one message and its answer past the
    // budget.
    // (Asked by watch() too: it admits nobody; read() does, see admit().)
    bool read_paused(const Connection& c) const noexcept {
        if (pausing_ && over_budget() && (c.conv.wants_write() || !admissible(c))) return true;
        return c.conv.wants_write() && c.conv.receiving() >= Conversation::min_room && past_limit(c, c.conv.receiving());
    }
    bool over_budget() const noexcept { return queued_ + reserved_ >= budget_; }
    // The admitted one, or anyone while nobody is and no answer waits.
    bool admissible(const Connection& c) const noexcept { return admitted_ == &c || (admitted_ == nullptr && queued_ == 0); }
    // read() is about to read c past the budget: c is the admitted one now.
    void admit(Connection& c) noexcept {
        if (!pausing_ || admitted_ != nullptr || !over_budget()) return;
        admitted_ = &c;
        admitted_at_ = now_;
    }
    // Brings the server's totals up to date with c's queue and frame.
    // The common case, nothing held before or now, costs a few loads.
    void account(Connection& c) noexcept {
        const std::size_t q = c.conv.wants_write() ? c.conv.queued() : 0, r = c.conv.reserved();
        if ((q | r | c.queued | c.reserved) != 0 || admitted_ == &c) recount(c, q, r);
    }
    void recount(Connection& c, std::size_t q, std::size_t r) noexcept {
        if (admitted_ == &c && c.conv.receiving() < Conversation::min_room) let_go();  // its message is in
        queued_ = queued_ - c.queued + q;
        reserved_ = reserved_ - c.reserved + r;
        c.queued = q;
        c.reserved = r;
        if (over_budget() && !pausing_) pause();
    }
    // The budget is reached: buffers kept for later (a large string for the
    // next large frame, a grown write buffer) are given back by every
    // connection that has nothing in them, so that only what is in flight
    // is held; process() ends the pause (budget_timers()).
    void pause() noexcept {
        pausing_ = true;
        for (auto& k : conns_) {
            if (k->dead || k->reserved == 0) continue;
            const std::size_t freed = k->conv.shed();
            if (freed == 0) continue;
            freed_untrimmed_ += freed;  // (give_back() trims the heap)
            account(*k);
        }
    }
    // The admitted frame ended (or its client went): another may start.
    void let_go() noexcept {
        admitted_ = nullptr;
        rewatch_ = true;
    }
    static std::size_t budget_of(const Config& config, std::size_t one) noexcept {
        if (config.max_total_queued_bytes != 0) return config.max_total_queued_bytes;
        return one > SIZE_MAX / 4 ? SIZE_MAX : one * 4;
    }
    // At the end of process(): the pause ends under the budget; the peers
    // it left unwatched for reading are watched again then, and when the
    // admitted frame ended. The admitted client whose frame is not complete
    // stall_timeout after its admission is dropped.
    void budget_timers() {
        if (admitted_ != nullptr && stall_ms_ >= 0 && now_ - admitted_at_ > stall_ms_) {
            drop(*admitted_, DropReason::queue_full, Error{Errc::timed_out, ENOBUFS, "a large frame not done in Config::stall_timeout past Config::max_total_queued_bytes"});
        }
        if (!over_budget()) {
            pausing_ = false;
            admitted_ = nullptr;
            rewatch_ = true;
        }
        if (pausing_ && admitted_ == nullptr && queued_ == 0) {
            // Frames stopped midway may be what holds the budget: the first
            // one in progress is admitted, so that it ends or is dropped in
            // its turn (a frame that never got a turn would hold it for
            // ever). Otherwise whoever has something to read is admitted
            // when it is read (admit()).
            for (auto& k : conns_) {
                if (k->dead || k->conv.receiving() < Conversation::min_room) continue;
                admitted_ = k.get();
                admitted_at_ = now_;
                break;
            }
            rewatch_ = true;
        }
        if (!rewatch_) return;
        rewatch_ = false;
        for (auto& c : conns_) {
            if (!c->dead) watch(*c);
        }
    }
    // Whether `more` bytes on top of what is queued for c pass queue_limit().
    bool past_limit(const Connection& c, std::size_t more) const noexcept {
        const std::size_t limit = queue_limit();
        return c.conv.queued() >= limit || more > limit - c.conv.queued();
    }

    void accept() {
        for (int i = 0; i < 64; ++i) {
#if IPC_HPP_HAVE_ACCEPT4
            int fd = ::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
#else
            int fd = ::accept(listener_.get(), nullptr, nullptr);
            if (fd >= 0 && !set_nonblock_cloexec(fd)) {
                ::close(fd);
                continue;
            }
#endif
            if (fd < 0) {
                if (errno == EINTR || errno == ECONNABORTED) continue;
                if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                    accept_paused_until_ = now_ + 100;  // out of fds: let connections finish
                }
                return;
            }
            Fd owned(fd);
            Peer peer;
            (void)peer_of(fd, peer);
            if (!s_.allowed_uids.empty()) {
                bool ok = false;
                for (uid_t u : s_.allowed_uids) ok = ok || u == peer.uid;
                if (!ok) {
                    report(peer, DropReason::refused, Error{Errc::permission_denied, EACCES, "peer uid"});
                    continue;  // closed by `owned`, before any byte is sent
                }
            }
            if (conns_.size() - dead_ >= s_.config.max_connections) {
                // Full: told so (`connection close`, best effort) and closed.
                const ProtocolFrame& f = protocol_frames[static_cast<unsigned char>(Protocol::connection_close)];
                (void)send_some(fd, f.bytes, f.size);
                report(peer, DropReason::too_many_connections, Error{Errc::io, EMFILE, "Config::max_connections"});
                continue;
            }
            last_activity_ = now_;
            // The conversation queues `connection start` itself.
            auto c = std::unique_ptr<Connection>(new Connection(std::move(owned), s_.config, now_));
            c->peer = peer;
            c->index = conns_.size();
            pfds_.push_back(pollfd{fd, POLLIN, 0});
            conns_.push_back(std::move(c));
            Connection& added = *conns_.back();
            heap_push(added);
            flush(added);
            if (!added.dead) schedule(added);
        }
    }

    template <class H>
    void read(Connection& c, H& on_message) {
        // Bounded work per wake-up so one busy peer cannot starve the rest.
        for (int round = 0; round < 8 && !c.dead; ++round) {
            // Over: nothing more is read (or buffered) from it, only its
            // `close ok` written.
            if (c.conv.state() == Conversation::State::closed) break;
            if (round > 0) account(c);
            if (read_paused(c)) break;  // flush() below leaves POLLIN out
            admit(c);
            std::size_t room = 0;
            auto n = receive(c.fd.get(), c.conv, room);
            if (!n) {
                const Error& e = n.error();
                drop(c, e.code == Errc::closed_by_peer && e.sys_errno == 0 ? DropReason::end_of_file : DropReason::io_error, e);
                return;
            }
            if (n.value() == 0) break;
            c.conv.heard(now_);
            decode(c, on_message);
            if (n.value() < room) break;
        }
        if (c.dead) return;
        Error lost{};
        if (flush(c, &lost)) return;  // written (or queued)
        // The peer is gone, but what it sent before going is still in our
        // receive queue: complete messages are reduced, nothing is lost.
        for (int round = 0; round < 64 && !c.dead; ++round) {
            std::size_t room = 0;
            auto n = receive(c.fd.get(), c.conv, room);
            if (!n || n.value() == 0) break;
            decode(c, on_message);
        }
        drop(c, DropReason::io_error, lost);
    }

    template <class H>
    void decode(Connection& c, H& on_message) {
        while (!c.dead) {
            switch (c.conv.next()) {
                case Conversation::Event::none: return;
                case Conversation::Event::failed: {
                    const Error e = c.conv.error();
                    drop(c, e.code == Errc::message_too_large ? DropReason::message_too_large : DropReason::malformed_frame, e);
                    return;
                }
                case Conversation::Event::message:
                    last_activity_ = now_;
                    // The ack is queued; by default it leaves in one send()
                    // with the response (docs/protocol.md §4 allows it).
                    Decoder::store(c.conv.frame(), scratch_);
                    c.conv.after_large_frame();  // a large frame's buffer goes before the reducer answers
                    if (s_.config.flush_ack_before_reducer) flush(c);
                    if (!c.dead && c.conv.state() == Conversation::State::ready) {
                        After after;
                        {
                            Call call(c.conv, scratch_, queue_limit(), in_call_);  // (its end cuts the drafts of a reducer that threw)
                            after = on_message(c, scratch_, call);  // its response is queued when it returns
                        }
                        if (after == After::close) close_client(c);
                        if (after == After::stop || stop_after_call_) {
                            stop_after_call_ = false;
                            begin_shutdown();
                        }
                        now_ = now_ms();  // the reducer may have taken long: what is written next is stamped now
                    }
                    // A large message's string is not kept here for the next
                    // one: its connection's decoder may keep it to receive
                    // the next large frame into (until it is idle).
                    if (scratch_.content().capacity() > large_content) {
                        if (!pausing_) c.conv.recycle(std::move(scratch_.content()));  // (not past the budget)
                        std::string().swap(scratch_.content());
                    }
                    break;
                case Conversation::Event::closed: return;  // flush() drops it once `close ok` is out
                case Conversation::Event::started:
                case Conversation::Event::acknowledged: break;
            }
        }
    }

    // Runs the connections' timers that are due: O(due ones), not O(all).
    void timers() {
        std::size_t released = 0;
        for (std::size_t guard = timers_.size() + 1; guard > 0 && !timers_.empty() && timers_[0]->due <= now_; --guard) {
            Connection& c = *timers_[0];
            switch (c.conv.fire(now_, released).expired) {
                case Conversation::Expired::nothing: break;
                case Conversation::Expired::handshake: drop(c, DropReason::handshake_timeout, Error{Errc::timed_out, 0, "handshake"}); continue;
                case Conversation::Expired::close: drop(c, DropReason::close_timeout, Error{Errc::timed_out, 0, "close: no close ok"}); continue;
                case Conversation::Expired::stall:
                    drop(c, DropReason::queue_full, Error{Errc::timed_out, ENOBUFS, "the peer takes nothing (Config::stall_timeout)"});
                    continue;
            }
            flush(c);
            if (!c.dead) schedule(c);
        }
        give_back(released);
    }

    // Freed buffers stay in the allocator's cache otherwise: once 128 KiB
    // were freed, counted across calls (idle connections give theirs back
    // one by one), and at most every 50 ms, the heap is trimmed.
    void give_back(std::size_t freed) noexcept {
#if IPC_HPP_HAVE_MALLOC_TRIM
        freed_untrimmed_ += freed;
        if (!trim_pending() || now_ - trimmed_at_ < trim_every_ms) return;  // (prepare() wakes up for it)
        ::malloc_trim(0);
        freed_untrimmed_ = 0;
        trimmed_at_ = now_;
#else
        (void)freed;
#endif
    }
    static constexpr std::int64_t trim_every_ms = 50;
    bool trim_pending() const noexcept { return freed_untrimmed_ >= (std::size_t{1} << 17); }

    void drop(Connection& c, DropReason why, const Error& e) {
        if (c.dead) return;
        c.dead = true;
        c.fd.reset();
        pfds_[2 + c.index].fd = -1;
        queued_ -= c.queued;
        reserved_ -= c.reserved;
        c.queued = c.reserved = 0;
        if (admitted_ == &c) let_go();
        heap_remove(c);
        ++dead_;
        report(c.peer, why, e);
    }

    void report(const Peer& peer, DropReason why, const Error& e) {
        s_.on_drop(peer, why, e);
    }

    // Removes dropped connections, keeping conns_ and pfds_ aligned.
    void sweep() {
        if (dead_ == 0) return;
        std::size_t j = 0;
        std::size_t freed = 0;
        for (std::size_t i = 0; i < conns_.size(); ++i) {
            if (conns_[i]->dead) {
                freed += conns_[i]->conv.capacity();
                conns_[i].reset();  // its buffers go now
                continue;
            }
            if (i != j) {
                conns_[j] = std::move(conns_[i]);
                pfds_[2 + j] = pfds_[2 + i];
            }
            conns_[j]->index = j;
            ++j;
        }
        conns_.resize(j);
        pfds_.resize(2 + j);
        dead_ = 0;
        give_back(freed);
    }

    // ---- the timer heap: a binary min-heap of connections by due time,
    // each connection knowing its place (heap_at) so a new due time moves it
    // in O(log n).
    void schedule(Connection& c) {
        const std::int64_t due = c.conv.due();
        if (due == c.due) return;
        const bool earlier = due < c.due;
        c.due = due;
        if (earlier) heap_up(c.heap_at);
        else heap_down(c.heap_at);
    }
    void heap_push(Connection& c) {
        c.due = c.conv.due();
        c.heap_at = timers_.size();
        timers_.push_back(&c);
        heap_up(c.heap_at);
    }
    void heap_remove(Connection& c) {
        const std::size_t at = c.heap_at;
        Connection* last = timers_.back();
        timers_.pop_back();
        if (last == &c) return;
        timers_[at] = last;
        last->heap_at = at;
        heap_up(at);
        heap_down(last->heap_at);
    }
    void heap_set(std::size_t at, Connection* c) noexcept {
        timers_[at] = c;
        c->heap_at = at;
    }
    void heap_up(std::size_t at) noexcept {
        Connection* c = timers_[at];
        while (at > 0) {
            const std::size_t parent = (at - 1) / 2;
            if (timers_[parent]->due <= c->due) break;
            heap_set(at, timers_[parent]);
            at = parent;
        }
        heap_set(at, c);
    }
    void heap_down(std::size_t at) noexcept {
        Connection* c = timers_[at];
        const std::size_t n = timers_.size();
        for (;;) {
            std::size_t child = 2 * at + 1;
            if (child >= n) break;
            if (child + 1 < n && timers_[child + 1]->due < timers_[child]->due) ++child;
            if (timers_[child]->due >= c->due) break;
            heap_set(at, timers_[child]);
            at = child;
        }
        heap_set(at, c);
    }

    // The end of open() and adopt(): listener_ is set, serving starts now.
    Result<Unit> opened() {
        pfds_.assign({pollfd{s_.stop.wake_read.get(), POLLIN, 0}, pollfd{listener_.get(), POLLIN, 0}});
        now_ = now_ms();
        last_activity_ = now_;
        return Unit{};
    }

    std::shared_ptr<ServerState> keep_;  // a Loop keeps its server's state alive
    ServerState& s_;                     // *keep_
    Owner owner_;                        // the process that opened it
    std::size_t queue_limit_;            // see queue_limit()
    std::size_t budget_;                 // Config::max_total_queued_bytes, see account()
    std::size_t queued_ = 0;             // the sum of the connections' `queued`
    std::size_t reserved_ = 0;           // and of their `reserved`
    bool pausing_ = false;               // the budget was reached; process() ends the pause (budget_timers())
    bool rewatch_ = false;               // the pause eased: every peer's poll events again
    Connection* admitted_ = nullptr;     // the one large frame read on past the budget
    std::int64_t admitted_at_ = 0;
    std::int64_t stall_ms_;              // Config::stall_timeout (negative: none)
    Fd listener_;
    HeldLock lock_;  // holds NAME.lock while serving
    dev_t dev_ = 0;
    ino_t ino_ = 0;
    bool adopted_ = false;  // listener_ is a supervisor's socket: see adopt()
    std::vector<std::unique_ptr<Connection>> conns_;
    std::vector<struct pollfd> pfds_;  // persistent; see prepare()
    std::vector<Connection*> timers_;  // the heap
    std::size_t dead_ = 0;             // dropped, not swept yet
    std::size_t freed_untrimmed_ = 0;  // see give_back()
    std::int64_t trimmed_at_ = 0;
    Message scratch_;                  // the message being reduced
    bool in_call_ = false;             // a reducer is running (see Call)
    bool stop_after_call_ = false;     // stop() was called inside it
    std::int64_t now_ = 0;
    std::int64_t last_activity_ = 0;
    std::int64_t shutdown_deadline_ = 0;
    std::int64_t accept_paused_until_ = 0;
    bool shutting_down_ = false;
};

// What the Loop reads of a Continuation: it makes the reducer's, and acts
// on the one returned.
struct Answering {
    template <class Carry>
    static Continuation<Carry> make(std::uint64_t serial) noexcept {
        return Continuation<Carry>(serial);
    }
    // Keeps the returned decision's carry and queues its response; what
    // the server does next.
    template <class Carry>
    static ServerCore::After act(ServerCore& core, Connection& c, Call& call, Continuation<Carry>& next, Carry& carry) {
        IPC_HPP_CONFIG_ASSERT(next.decided(), "the reducer returned a Continuation it did not decide");
        if (!next.decided()) std::abort();
        IPC_HPP_CONFIG_ASSERT(next.serial_ == call.serial || next.serial_ == 0,
                              "the reducer returned a Continuation made for another reducer call");
        if (next.serial_ != call.serial && next.serial_ != 0) std::abort();
        carry = std::move(next.carry());
        using K = typename Continuation<Carry>::Kind;
        static const Reply no_reply{};
        core.answer(c, call, next.kind_ == K::respond ? next.reply_ : no_reply, next.message_.get());
        switch (next.kind_) {
            case K::close: return ServerCore::After::close;
            case K::stop: return ServerCore::After::stop;
            case K::respond:
            case K::proceed:
            case K::undecided: break;
        }
        return ServerCore::After::proceed;
    }
};

template <class R, class Carry>
Continuation<Carry> call_reducer(R& reducer, const Message& m, Continuation<Carry> k, Carry&& carry, const Peer& peer) {
    if constexpr (std::is_invocable<R&, const Message&, Continuation<Carry>, Carry, const Peer&>::value) {
        return reducer(m, std::move(k), std::move(carry), peer);
    } else {
        static_assert(std::is_invocable<R&, const Message&, Continuation<Carry>, Carry>::value,
                      "the reducer must be callable as (const Message&, Continuation<Carry>, Carry) "
                      "or (const Message&, Continuation<Carry>, Carry, const Peer&)");
        return reducer(m, std::move(k), std::move(carry));
    }
}

}  // namespace detail

// ===========================================================================
// 14. Server — the reduce loop, and its Loop for the user's event loop
// ===========================================================================

class Server {
public:
    Server(Server&&) noexcept = default;
    Server& operator=(Server&&) noexcept = default;
    Server(const Server&) = delete;
    Server& operator=(const Server&) = delete;

    const Name& name() const noexcept { return state()->name; }
    const std::string& path() const noexcept { return state()->path; }

    // A handle that stops this server from a signal handler or another thread.
    StopHandle stop_handle() const noexcept { return StopHandle(state()->stop_state); }
    void stop() noexcept { state()->stop.request(); }

    // Opt-in: while serve() runs, SIGHUP, SIGINT, SIGABRT, SIGTERM, SIGTSTP
    // and SIGALRM stop the server gracefully (the reference's behaviour);
    // the previous handlers are restored when serve() returns. Only one
    // server per process may use this at a time.
    Server& handle_signals(bool on = true) noexcept {
        state()->handle_signals = on;
        return *this;
    }
    // Only peers with one of these uids may connect (checked with
    // SO_PEERCRED before the handshake). Empty: whoever can open the file.
    Server& allow_uids(std::vector<uid_t> uids) {
        state()->allowed_uids = std::move(uids);
        return *this;
    }
    // Told each time a connection is dropped, with the reason. Called on the
    // serving thread; the library itself never prints.
    Server& on_drop(void (*f)(void* user, const Peer&, DropReason, const Error&), void* user = nullptr) noexcept {
        state()->on_drop.set(f, user);
        return *this;
    }
    // The same with any callable f(const Peer&, DropReason, const Error&)
    // (a lambda with captures): kept inside the Server, no heap and no
    // std::function; up to detail::DropHook::room bytes (a compile error
    // beyond).
    template <class F, class = std::enable_if_t<std::is_invocable<std::decay_t<F>&, const Peer&, DropReason, const Error&>::value>>
    Server& on_drop(F&& f) {
        state()->on_drop.emplace(std::forward<F>(f));
        return *this;
    }

    // Serves until the reducer stops, a stop is requested, or nothing
    // happened for longer than the listen() timeout; then shuts down
    // gracefully and returns the carried value. The reducer is called as
    // reducer(const Message&, Continuation<Carry>, Carry) — or with a
    // fourth `const Peer&` argument — and returns one of the continuation's
    // outcomes. A stop requested before serve() makes it return `carry` at once.
    template <class Carry, class Reducer>
    Result<Carry> serve(Carry carry, Reducer reducer);

    // The same loop, driven by yours: start() binds and returns a Loop;
    // call interest() for the fds to watch and the timeout, poll them with
    // your own fds, then step() with the results, until finished(); then
    // finish() gives the carried value. The Loop keeps what it serves
    // alive: the Server may go first (listen(...).and_then([](Server s) {
    // return s.start(...); }) is fine).
    template <class Carry, class Reducer>
    class Loop;
    template <class Carry, class Reducer>
    Result<Loop<Carry, Reducer>> start(Carry carry, Reducer reducer);

    // A server on a listening AF_UNIX stream socket that another
    // supervisor made (s6, runit, a test harness; systemd's is found by
    // Ipc::listen() itself). The fd stays the caller's, who may close it
    // at once: the server keeps a close-on-exec duplicate, listens on
    // another while serving, and never unlinks the socket's file. It sets
    // O_NONBLOCK on the open file description they share. An empty name is
    // taken from the bound path's last component, less ".sock".
    // Errc::socket when fd is not such a socket, Errc::invalid_name when no
    // name is given or found.
    static Result<Server> from_fd(int fd, std::string_view name = {}, Milliseconds timeout = Milliseconds::forever(),
                                  Config config = Config{}) {
        if (!detail::is_unix_listener(fd)) return fail(Errc::socket, ENOTSOCK, "from_fd: not a listening AF_UNIX stream socket");
        std::string path = detail::canonical_bound_path(fd);
        std::string_view stem = name;
        if (stem.empty()) {
            stem = std::string_view(path).substr(path.rfind('/') + 1);
            if (stem.size() > 5 && stem.substr(stem.size() - 5) == ".sock") stem.remove_suffix(5);
        }
        auto n = Name::parse(stem);
        if (!n) return fail(n.error());
        auto copy = detail::own_copy(fd);
        if (!copy) return fail(copy.error());
        return make(std::move(n).value(), std::move(path), std::move(config), timeout, std::move(copy).value());
    }

private:
    friend class Ipc;
    explicit Server(std::shared_ptr<detail::ServerState> s) noexcept : s_(std::move(s)) {}
    static Result<Server> make(Name name, std::string path, Config config, Milliseconds timeout, detail::Fd given) {
        int fds[2];
#if IPC_HPP_HAVE_SOCK_CLOEXEC  // pipe2() came with SOCK_CLOEXEC: no window for a fork+exec to inherit it
        if (::pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) return fail(Errc::socket, errno, "pipe");
        detail::Fd wake_read(fds[0]), wake_write(fds[1]);
#else
        if (::pipe(fds) != 0) return fail(Errc::socket, errno, "pipe");
        detail::Fd wake_read(fds[0]), wake_write(fds[1]);
        if (!detail::set_nonblock_cloexec(fds[0]) || !detail::set_nonblock_cloexec(fds[1])) return fail(Errc::socket, errno, "fcntl");
#endif
        auto stop = std::make_shared<detail::StopState>(std::move(wake_read), std::move(wake_write));
        auto state = std::shared_ptr<detail::ServerState>(
            new detail::ServerState(std::move(name), std::move(path), std::move(config), timeout, std::move(stop)));
        state->given = std::move(given);
        return Result<Server>(Server(std::move(state)));
    }
    detail::ServerState* state() const noexcept {
        IPC_HPP_CONFIG_ASSERT(s_ != nullptr, "use of a moved-from Server");
        if (s_ == nullptr) std::abort();
        return s_.get();
    }
    std::shared_ptr<detail::ServerState> s_;  // shared with its Loop, which may outlive it
};

template <class Carry, class Reducer>
class Server::Loop {
public:
    // A Loop is one pointer: moving it (swap, a std::vector of them) moves
    // nothing else, and never the reducer.
    Loop(Loop&& o) noexcept : b_(std::move(o.b_)) {}
    Loop& operator=(Loop&& o) noexcept {
        if (this != &o) {
            end();
            b_ = std::move(o.b_);
        }
        return *this;
    }
    Loop(const Loop&) = delete;
    Loop& operator=(const Loop&) = delete;
    ~Loop() { end(); }

    // The fds to watch and their events (an fd of -1 is to be skipped, as
    // poll() does), and in timeout_ms when the loop needs to run again even
    // if nothing is ready. Valid until the next call.
    const std::vector<struct pollfd>& interest(int& timeout_ms) {
        Body& b = here();
        if (!b.open) {
            timeout_ms = 0;
            return b.none;
        }
        return b.core.prepare(timeout_ms);
    }
    // Does the ready work: pass what interest() gave, with revents filled,
    // in the same order. Never blocks. Not from inside the reducer (abort).
    void step(const struct pollfd* fds, std::size_t n) {
        Body& b = outside("Server::Loop::step() called from inside its own reducer");
        if (!b.open) return;
        b.core.absorb(fds, n);
        run(b);
    }
    void step(const std::vector<struct pollfd>& fds) { step(fds.data(), fds.size()); }
    // Polls by itself (at most until the next due work), then does the work.
    void step() {
        Body& b = outside("Server::Loop::step() called from inside its own reducer");
        if (!b.open) return;
        b.core.wait();
        run(b);
    }
    bool finished() const noexcept {
        const Body& b = usable();
        return !b.open || b.core.finished();
    }
    // Stops gracefully (like the stop handle); keep stepping until
    // finished(). Inside the reducer, the stop begins once the response it
    // returns is queued: that response reaches its client first.
    void stop() noexcept {
        Body& b = here();
        if (b.open) b.core.stop();
    }
    // Closes everything (at once, if not finished) and gives the carry.
    // Not from inside the reducer (abort). In a forked child it only closes
    // the child's copies of the fds (docs/design.md, "Handles and fork()").
    Result<Carry> finish() {
        Body& b = usable();
        refuse_in_call(b, "Server::Loop::finish() called from inside its own reducer");
        close(b);
        IPC_HPP_CONFIG_ASSERT(b.carry.full(), "Server::Loop::finish() called twice");
        if (!b.carry.full()) std::abort();
        Result<Carry> out(std::move(b.carry.get()));
        b.carry.reset();
        return out;
    }

private:
    friend class Server;
    // Everything the Loop runs, in one place that does not move: the core
    // (which keeps the server's state alive), the signal handlers, the
    // carry and the reducer.
    struct Body {
        Body(std::shared_ptr<detail::ServerState> s, Carry c, Reducer r) : core(std::move(s)), reducer(std::move(r)) {
            carry.emplace(std::move(c));
        }
        detail::ServerCore core;
        detail::SignalGuard signals;
        detail::Slot<Carry> carry;
        Reducer reducer;
        bool open = false;                // listening (false: finished, or a sticky stop)
        std::vector<struct pollfd> none;  // the interest of a finished loop
    };
    explicit Loop(std::unique_ptr<Body> b) noexcept : b_(std::move(b)) {}

    Body& usable() const noexcept {
        IPC_HPP_CONFIG_ASSERT(b_ != nullptr, "use of a moved-from Server::Loop");
        if (b_ == nullptr) std::abort();
        return *b_;
    }
    Body& here() const noexcept {
        Body& b = usable();
        IPC_HPP_CONFIG_ASSERT(b.core.here_cheaply(), "Server::Loop used in a forked child: only dropping it is allowed there");
        if (!b.core.here_cheaply()) std::abort();
        return b;
    }
    Body& outside(const char* what) const noexcept {
        Body& b = here();
        refuse_in_call(b, what);
        return b;
    }
    static void refuse_in_call(const Body& b, const char* what) noexcept {
        IPC_HPP_CONFIG_ASSERT(!b.core.in_call(), what);
        if (b.core.in_call()) std::abort();
    }
    static void close(Body& b) noexcept {
        b.core.close();
        b.signals.restore();
        b.open = false;
    }
    void end() noexcept {
        if (b_ == nullptr) return;
        refuse_in_call(*b_, "Server::Loop destroyed from inside its own reducer");
        close(*b_);
        b_.reset();
    }
    // Body& b, not *this: the reducer may move the Loop away meanwhile.
    static void run(Body& b) {
        b.core.process([&b](detail::Connection& c, const Message& m, detail::Call& call) {
            Continuation<Carry> next =
                detail::call_reducer(b.reducer, m, detail::Answering::make<Carry>(call.serial), std::move(b.carry.get()), c.peer);
            return detail::Answering::act(b.core, c, call, next, b.carry.get());
        });
    }

    std::unique_ptr<Body> b_;  // null: moved from
};

template <class Carry, class Reducer>
Result<Server::Loop<Carry, Reducer>> Server::start(Carry carry, Reducer reducer) {
    using L = Loop<Carry, Reducer>;
    detail::ServerState& s = *state();
    std::unique_ptr<typename L::Body> b(new typename L::Body(s_, std::move(carry), std::move(reducer)));
    if (s.stop.requested.load(std::memory_order_acquire)) return Result<L>(L(std::move(b)));  // sticky stop: already finished
    auto opened = b->core.open();
    if (!opened) return fail(opened.error());
    b->open = true;
    if (s.handle_signals) b->signals.install(&s.stop);
    return Result<L>(L(std::move(b)));
}

template <class Carry, class Reducer>
Result<Carry> Server::serve(Carry carry, Reducer reducer) {
    auto loop = start(std::move(carry), std::move(reducer));
    if (!loop) return fail(loop.error());
    while (!loop->finished()) loop->step();
    return loop->finish();
}

// ===========================================================================
// 15. Ipc — the entry point (the seed's Factory::build())
// ===========================================================================

class Ipc {
public:
    Ipc() : Ipc(Config{}) {}
    // The directory is resolved once, here, to its canonical form
    // (docs/filesystem.md): every later bind, connect and listing uses it.
    explicit Ipc(Config config) : config_(std::move(config)) {
        if (config_.directory.empty()) config_.directory = detail::default_directory();
        config_.directory = detail::canonical_directory(config_.directory);
    }

    const Config& config() const noexcept { return config_; }
    const std::string& directory() const noexcept { return config_.directory; }
    std::string path_of(const Name& name) const { return detail::socket_path(config_.directory, name); }

    // The names of live servers in the directory (stale socket files, and
    // sockets not owned by an expected uid, are not reported), sorted.
    Result<std::vector<Name>> processes() const {
        std::vector<Name> names;
        DIR* d = ::opendir(config_.directory.c_str());
        if (d == nullptr) {
            if (errno == ENOENT) return names;
            return fail(Errc::directory, errno, "opendir");
        }
        const detail::Listeners listening = detail::listeners();  // one reading for every name
        while (struct dirent* e = ::readdir(d)) {
            std::string_view file(e->d_name);
            if (file.size() <= 5 || file.substr(file.size() - 5) != ".sock") continue;
            auto name = Name::parse(file.substr(0, file.size() - 5));
            if (!name) continue;
            if (detail::is_live(config_.directory, *name, config_.expect_server_uid, &listening)) {
                names.push_back(std::move(name).value());
            }
        }
        ::closedir(d);
        for (std::size_t i = 1; i < names.size(); ++i) {  // insertion sort: no <algorithm>
            for (std::size_t j = i; j > 0 && names[j] < names[j - 1]; --j) std::swap(names[j], names[j - 1]);
        }
        return names;
    }

    // Whether a live server has this name.
    bool exist(const Name& name) const { return detail::is_live(config_.directory, name, config_.expect_server_uid); }
    // The same for a name as a string: false when it is not a valid name
    // (no server can have it); Name::parse() tells why.
    bool exist(std::string_view name) const {
        auto n = Name::parse(name);
        return n && exist(n.value());
    }

    // Connects now and completes the handshake. The socket file must be a
    // socket (not a link) owned by an expected uid, and so must the process
    // that accepts (SO_PEERCRED), else Errc::permission_denied: a client
    // never talks to an impostor. A server that closes before `connection
    // start` refused us (Server::allow_uids): permission_denied too.
    Result<Process> get(const Name& name) const { return get(name, config_.handshake_timeout); }
    // get(), wait() and listen() also take the name as a string
    // (ipc.get("server-name")): Errc::invalid_name when it is not one.
    Result<Process> get(std::string_view name) const { return get(name, config_.handshake_timeout); }
    Result<Process> get(std::string_view name, Milliseconds timeout) const {
        return Name::parse(name).and_then([&](const Name& n) { return get(n, timeout); });
    }
    Result<Process> wait(std::string_view name, Milliseconds timeout = Milliseconds::forever()) const {
        return Name::parse(name).and_then([&](const Name& n) { return wait(n, timeout); });
    }
    Result<Server> listen(std::string_view name, Milliseconds timeout = Milliseconds::forever()) const {
        return Name::parse(name).and_then([&](const Name& n) { return listen(n, timeout); });
    }
    Result<Process> get(const Name& name, Milliseconds timeout) const {
        auto deadline = detail::Deadline::after(timeout);
        std::string path = path_of(name);
        struct sockaddr_un addr {};
        auto len = detail::unix_address(path, addr);
        if (!len) return fail(len.error());
        struct stat st {};
        if (::lstat(path.c_str(), &st) != 0) return fail(Errc::not_found, errno, "connect");
        if (!S_ISSOCK(st.st_mode) || !detail::expected_server_uid(st.st_uid, config_.expect_server_uid))
            return fail(Errc::permission_denied, EPERM, "NAME.sock is not a socket owned by the server's uid");
        auto sock = detail::stream_socket();
        if (!sock) return fail(sock.error());
        for (;;) {
            int r = ::connect(sock->get(), reinterpret_cast<const struct sockaddr*>(&addr), len.value());
            if (r == 0) break;
            int err = errno;
            if (err == EINTR) continue;
            if (err == ENOENT) return fail(Errc::not_found, err, "connect");
            if (err == ECONNREFUSED) return fail(Errc::connection_refused, err, "connect");
            if (err == EAGAIN || err == EINPROGRESS) {  // the backlog is full
                if (deadline.passed()) return fail(Errc::timed_out, err, "connect");
                struct timespec ts {0, 1000000};
                ::nanosleep(&ts, nullptr);
                continue;
            }
            return fail(Errc::socket, err, "connect");
        }
#if IPC_HPP_HAVE_SO_PEERCRED
        Peer server;
        if (!detail::peer_of(sock->get(), server)) return fail(Errc::socket, errno, "SO_PEERCRED");
        if (!detail::expected_server_uid(server.uid, config_.expect_server_uid))
            return fail(Errc::permission_denied, EPERM, "the server runs as an unexpected uid");
#endif
        Process p(std::move(sock).value(), name, config_);
        auto h = p.handshake(deadline);
        if (!h) {
            const bool refused = h.error() == Errc::closed_by_peer && h.error().sys_errno == 0 && !p.conv_.heard_anything();
            p.cut();
            if (refused) return fail(Errc::permission_denied, EACCES, "the server closed before connection start (allow_uids)");
            return fail(h.error());
        }
        return Result<Process>(std::move(p));
    }

    // Waits until a server with this name exists, then get()s it. Watches
    // the directory (inotify where available) rather than polling; a
    // socket file that refuses (a crashed server's) is retried on a slow,
    // bounded schedule (250 ms), or at once when the directory changes.
    Result<Process> wait(const Name& name, Milliseconds timeout = Milliseconds::forever()) const {
        auto deadline = detail::Deadline::after(timeout);
        auto dir = detail::make_directories(config_.directory, config_.directory_mode);
        if (!dir) return fail(dir.error());
        detail::Fd watch;
#if IPC_HPP_HAVE_INOTIFY
        {
            int fd = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
            if (fd >= 0) {
                watch = detail::Fd(fd);
                if (::inotify_add_watch(fd, config_.directory.c_str(), IN_CREATE | IN_MOVED_TO | IN_ATTRIB) < 0) watch.reset();
            }
        }
#endif
        for (;;) {
            auto p = get(name, deadline.is_never() ? config_.handshake_timeout : Milliseconds(deadline.poll_timeout()));
            if (p) return p;
            const Errc c = p.error().code;
            if (c != Errc::not_found && c != Errc::connection_refused && c != Errc::closed_by_peer && c != Errc::closed) return p;
            if (deadline.passed()) return fail(Errc::timed_out, 0, "wait");
            // Nothing there: sleep until the directory changes (1 s at most,
            // in case an event was missed; 25 ms without inotify). A file
            // that refuses (a crashed server's): 250 ms.
            const std::int64_t cap = c != Errc::not_found ? 250 : (watch.valid() ? 1000 : 25);
            if (watch.valid()) {
                if (detail::poll_one(watch.get(), POLLIN, deadline, cap) > 0) {
                    char buf[4096];
                    while (::read(watch.get(), buf, sizeof buf) > 0) {
                    }
                }
            } else {
                ::poll(nullptr, 0, deadline.poll_timeout(cap));
            }
        }
    }

    // A server on this name; it binds when serve() is called. `timeout`
    // stops it after that long without activity (a connection or an
    // application message).
    Result<Server> listen(const Name& name, Milliseconds timeout = Milliseconds::forever()) const {
        std::string path = path_of(name);
        struct sockaddr_un addr {};
        auto len = detail::unix_address(path, addr);
        if (!len) return fail(len.error());
        // systemd's socket for this name, if it passed one (docs/cookbook.md):
        // then path() is where that socket is bound.
        std::string bound = path;
        auto activated = detail::activated_socket(name, path, bound);
        if (!activated) return fail(activated.error());
        // A live server keeps its name (docs/protocol.md §5); serve() checks again, under the name's lock.
        if (!activated->valid() && detail::is_live(config_.directory, name, static_cast<uid_t>(-1)))
            return fail(Errc::name_in_use, EADDRINUSE, "listen");
        return Server::make(name, std::move(bound), config_, timeout, std::move(activated).value());
    }

private:
    Config config_;
};

}  // namespace v0_2
}  // namespace ipc_hpp

#endif  // IPC_HPP_INCLUDED
