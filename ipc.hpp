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
// Layout of this file (each part starts with a banner):
//   1. version          2. configuration      3. platform detection
//   4. includes         5. Either and Error   6. names, media types, messages
//   7. frame codec      8. detail: sockets, clock, paths
//   9. client (Process) 10. entry point (Ipc) 11. server (template, last)

#ifndef IPC_HPP_INCLUDED
#define IPC_HPP_INCLUDED

// ===========================================================================
// 1. Version — integers, usable in #if. meson.build reads them from here.
// ===========================================================================

#define IPC_HPP_VERSION_MAJOR 0
#define IPC_HPP_VERSION_MINOR 1
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
#if defined(SOCK_CLOEXEC) || defined(__linux__)
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

// Tell a live server from a stale socket file by reading /proc/net/unix
// instead of connecting (a connect-and-drop probe resets a PHP server's carry).
#ifndef IPC_HPP_HAVE_PROC_NET_UNIX
#if defined(__linux__)
#define IPC_HPP_HAVE_PROC_NET_UNIX 1
#else
#define IPC_HPP_HAVE_PROC_NET_UNIX 0
#endif
#endif

// ===========================================================================
// 4. Includes — POSIX C headers and small standard headers only.
// ===========================================================================

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <dirent.h>
#include <time.h>
#include <unistd.h>

#if IPC_HPP_HAVE_EXCEPTIONS
#include <stdexcept>
#endif

namespace ipc_hpp {
inline namespace v0_1 {

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
    }
    return "unknown error";
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
    const char* format(char* buf, std::size_t size) const noexcept {
        if (size == 0) return buf;
        if (sys_errno != 0) {
            std::snprintf(buf, size, "%s%s%s: %s", what(), *where ? ": " : "", where, std::strerror(sys_errno));
        } else {
            std::snprintf(buf, size, "%s%s%s", what(), *where ? ": " : "", where);
        }
        return buf;
    }
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

    // f(T) -> Either<U, E>
    template <class F>
    auto and_then(F&& f) const& {
        using R = std::decay_t<decltype(f(value_))>;
        static_assert(detail::is_either<R>::value, "and_then: f must return an Either");
        if (ok_) return f(value_);
        return R(Failure<E>{error_});
    }
    template <class F>
    auto and_then(F&& f) && {
        using R = std::decay_t<decltype(f(std::move(value_)))>;
        static_assert(detail::is_either<R>::value, "and_then: f must return an Either");
        if (ok_) return f(std::move(value_));
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

// A process name: ^[a-zA-Z0-9_-]+$ (PROTOCOL §1).
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
// reference would reject it.
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
    explicit MediaType(std::string s) : value_(std::move(s)) {}
    std::string value_;
};

// The six messages of the protocol itself (PROTOCOL §3). Each is text/plain.
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
    if (type != media_type || body.size() < 21 || body.substr(0, 12) != "innmind/ipc:") return Protocol::none;
    for (Protocol p : {Protocol::connection_start, Protocol::connection_start_ok, Protocol::connection_close,
                       Protocol::connection_close_ok, Protocol::heartbeat, Protocol::message_received}) {
        if (body == content(p)) return p;
    }
    return Protocol::none;
}
}  // namespace protocol

// A message: a media type and binary-safe content (any bytes, NUL
// included, at most 4 GiB - 1).
class Message {
public:
    Message() : type_(MediaType::octet_stream()) {}
    Message(MediaType type, std::string content) : type_(std::move(type)), content_(std::move(content)) {}

    // Validates the media type; refuses content over 4 GiB - 1.
    static Result<Message> make(std::string_view media_type, std::string_view content) {
        if (content.size() > 0xFFFFFFFFull) return fail(Errc::message_too_large, 0, "Message::make");
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
    // One of the six protocol messages.
    static Message of(Protocol p) { return text(protocol::content(p)); }

    const MediaType& media_type() const noexcept { return type_; }
    const std::string& content() const noexcept { return content_; }
    std::string& content() noexcept { return content_; }
    Protocol protocol() const noexcept { return protocol::classify(type_.view(), content_); }
    bool is_protocol() const noexcept { return protocol() != Protocol::none; }

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
// 7. Frame codec (PROTOCOL §2)
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
}  // namespace detail

// Appends the frame for (media type, content) to out. The media type must
// already be canonical and valid (MediaType guarantees it); lengths past the
// format's limits are refused.
inline Result<Unit> encode_to(std::string_view media_type, std::string_view content, std::string& out) {
    if (media_type.size() > 0xFFFFu) return fail(Errc::invalid_media_type, 0, "encode: media type too long");
    if (content.size() > 0xFFFFFFFFull) return fail(Errc::message_too_large, 0, "encode");
    std::size_t at = out.size();
    out.resize(at + frame_size(media_type.size(), content.size()));
    char* p = &out[at];
    detail::put_u16(p, static_cast<std::uint16_t>(media_type.size()));
    p += 2;
    if (!media_type.empty()) std::memcpy(p, media_type.data(), media_type.size());
    p += media_type.size();
    detail::put_u32(p, static_cast<std::uint32_t>(content.size()));
    p += 4;
    if (!content.empty()) std::memcpy(p, content.data(), content.size());
    p += content.size();
    *p = static_cast<char>(end_marker);
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

// Incremental frame decoder. Feed it bytes in chunks of any size (one at a
// time included) and take complete messages out with next(). A frame whose
// announced content exceeds the maximum is refused from its length prefix,
// before anything is allocated for it. Errors are sticky: once next()
// returned `error`, the stream cannot be resynchronised and the connection
// should be dropped.
class Decoder {
public:
    enum class Status : unsigned char { message, need_more, error };

    explicit Decoder(std::uint32_t max_message_size = default_max_message_size) noexcept : max_(max_message_size) {}

    std::uint32_t max_message_size() const noexcept { return max_; }
    void set_max_message_size(std::uint32_t m) noexcept { max_ = m; }

    // Copies bytes in.
    void feed(const void* data, std::size_t n) {
        compact();
        buf_.append(static_cast<const char*>(data), n);
    }
    void feed(std::string_view s) { feed(s.data(), s.size()); }

    // Zero-copy feeding: get room for up to n bytes, read into it, then
    // commit how many arrived.
    char* prepare(std::size_t n) {
        compact();
        committed_ = buf_.size();
        buf_.resize(committed_ + n);
        return &buf_[committed_];
    }
    void commit(std::size_t n) noexcept { buf_.resize(committed_ + n); }

    // Decodes the next complete frame into `out`.
    Status next(Message& out) {
        if (failed_) return Status::error;
        const std::size_t avail = buf_.size() - pos_;
        const char* p = buf_.data() + pos_;
        if (avail < 2) return Status::need_more;
        const std::size_t type_len = detail::get_u16(p);
        if (avail < 2 + type_len) return Status::need_more;
        std::string_view raw_type(p + 2, type_len);
        if (!checked_) {
            // Validate the media type as soon as it is complete.
            if (protocol::media_type == raw_type) {
                type_.assign(raw_type.data(), raw_type.size());
            } else if (!detail::canonical_media_type(raw_type, type_)) {
                return error(Errc::invalid_media_type, "decode: media type refused");
            }
            checked_ = true;
        }
        if (avail < 2 + type_len + 4) return Status::need_more;
        const std::uint32_t content_len = detail::get_u32(p + 2 + type_len);
        if (content_len > max_) return error(Errc::message_too_large, "decode: announced content length");
        const std::size_t total = frame_size(type_len, content_len);
        if (avail < total) {
            want_ = total;
            return Status::need_more;
        }
        if (static_cast<unsigned char>(p[total - 1]) != end_marker) return error(Errc::malformed_frame, "decode: end marker is not 0xCE");
        out.type_.value_.assign(type_);
        out.content_.assign(p + 2 + type_len + 4, content_len);
        pos_ += total;
        checked_ = false;
        want_ = 0;
        return Status::message;
    }

    const Error& last_error() const noexcept { return error_; }
    bool failed() const noexcept { return failed_; }
    // Bytes received and not yet consumed as frames.
    std::size_t buffered() const noexcept { return buf_.size() - pos_; }
    // Bytes the current partial frame needs in all (0 when unknown).
    std::size_t wanted() const noexcept { return want_; }
    // Gives memory back after a burst of large messages.
    void shrink() {
        compact();
        if (buf_.capacity() > 65536 && buf_.size() < 4096) buf_.shrink_to_fit();
    }
    void reset() noexcept {
        buf_.clear();
        pos_ = 0;
        failed_ = false;
        checked_ = false;
        want_ = 0;
    }

private:
    Status error(Errc c, const char* where) {
        failed_ = true;
        error_ = Error{c, 0, where};
        return Status::error;
    }
    void compact() {
        if (pos_ == 0) return;
        if (pos_ == buf_.size()) {
            buf_.clear();
        } else {
            buf_.erase(0, pos_);
        }
        pos_ = 0;
    }

    std::string buf_;
    std::size_t pos_ = 0;
    std::size_t committed_ = 0;
    std::size_t want_ = 0;
    std::string type_;  // the current frame's media type, canonical
    std::uint32_t max_;
    bool failed_ = false;
    bool checked_ = false;
    Error error_{};
};

//@@CONTINUE@@

}  // namespace v0_1
}  // namespace ipc_hpp

#endif  // IPC_HPP_INCLUDED
