// Section 5: Error and Either.
#include "ipc.hpp"

#include <doctest/doctest.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <set>
#include <string>
#include <vector>

namespace {

namespace ipc = ipc_hpp;
using ipc::Errc;
using ipc::Error;
using ipc::Result;

using Owned = std::unique_ptr<int>;

Result<int> half(int n) {
    if (n % 2 != 0) return ipc::fail(Errc::invalid_argument, 0, "half: odd");
    return n / 2;
}

// Counts live instances, to see that Either constructs and destroys exactly
// what it holds when it is copied, moved and assigned across states.
struct Tracked {
    static int live;
    int id;
    explicit Tracked(int i) : id(i) { ++live; }
    Tracked(const Tracked& o) : id(o.id) { ++live; }
    Tracked(Tracked&& o) noexcept : id(o.id) { ++live; }
    Tracked& operator=(const Tracked&) = default;
    Tracked& operator=(Tracked&&) = default;
    ~Tracked() { --live; }
};
int Tracked::live = 0;

// Runs f in a forked child whose stderr goes to /dev/null and which may not
// dump core; returns the signal that ended the child (0 if it exited).
// The child gets SIGABRT's default action back: doctest's crash handler,
// inherited through fork, would otherwise report a crash and carry on.
template <class F>
int signal_ending_child(F f) {
    const pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        signal(SIGABRT, SIG_DFL);
        const rlimit no_core{0, 0};
        setrlimit(RLIMIT_CORE, &no_core);
        const int devnull = open("/dev/null", O_WRONLY);
        if (devnull >= 0) dup2(devnull, STDERR_FILENO);
        f();
        _exit(0);
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0) REQUIRE(errno == EINTR);
    return WIFSIGNALED(status) ? WTERMSIG(status) : 0;
}

}  // namespace

TEST_SUITE("either") {

TEST_CASE("error: every code has its own description") {
    std::set<std::string> seen;
    const int last = static_cast<int>(Errc::insecure_directory);  // the last code
    for (int c = static_cast<int>(Errc::invalid_name); c <= last; ++c) {
        const std::string d = ipc::describe(static_cast<Errc>(c));
        CHECK_FALSE(d.empty());
        CHECK(d != "unknown error");
        seen.insert(d);
    }
    CHECK(seen.size() == static_cast<std::size_t>(last));  // 20: codes start at 1
}

TEST_CASE("error: to_string names each code by its enumerator") {
    std::set<std::string> seen;
    const int last = static_cast<int>(Errc::insecure_directory);
    for (int c = static_cast<int>(Errc::invalid_name); c <= last; ++c) {
        const std::string n = ipc::to_string(static_cast<Errc>(c));
        CHECK(n != "unknown");
        CHECK(n.find(' ') == std::string::npos);
        seen.insert(n);
    }
    CHECK(seen.size() == static_cast<std::size_t>(last));  // codes start at 1: one name each
    CHECK(std::string(ipc::to_string(Errc::timed_out)) == "timed_out");
    CHECK(std::string(ipc::to_string(Errc::insecure_directory)) == "insecure_directory");
    CHECK(std::string(ipc::to_string(static_cast<Errc>(0))) == "unknown");
    CHECK(std::string(ipc::to_string(static_cast<Errc>(last + 1))) == "unknown");
}

TEST_CASE("error: what, where and errno in one line") {
    const Error plain{Errc::malformed_frame, 0, "decode"};
    CHECK(std::string(plain.what()) == "malformed frame");
    CHECK(plain.message() == "malformed frame: decode");
    CHECK(Error{Errc::closed}.message() == "connection closed");

    const Error sys{Errc::io, EPIPE, "send"};
    CHECK(sys.message() == "i/o error: send: " + std::string(std::strerror(EPIPE)));

    // The size goes through a volatile: g++ -O2 would otherwise see the
    // truncation coming and warn (-Wformat-truncation); it is the point here.
    const volatile std::size_t eight = 8;
    std::vector<char> small(eight);
    CHECK(std::string(sys.format(small.data(), eight)) == "i/o err");  // truncated, still terminated
    char untouched[1] = {'u'};
    CHECK(sys.format(untouched, 0) == untouched);
    CHECK(untouched[0] == 'u');
}

TEST_CASE("error: comparison looks at the code and errno, not where") {
    CHECK(Error{Errc::io, EPIPE, "send"} == Error{Errc::io, EPIPE, "write"});
    CHECK(Error{Errc::io, EPIPE} != Error{Errc::io, ECONNRESET});
    CHECK(Error{Errc::io, EPIPE} == Errc::io);
    CHECK(Error{Errc::io, EPIPE} != Errc::closed);
    CHECK(ipc::Unit{} == ipc::Unit{});
}

TEST_CASE("either: a value or an error") {
    Result<int> value = 42;
    CHECK(value.has_value());
    CHECK(static_cast<bool>(value));
    CHECK(value.value() == 42);
    CHECK(*value == 42);

    Result<int> error = ipc::fail(Errc::timed_out, ETIMEDOUT, "wait");
    CHECK_FALSE(error.has_value());
    CHECK_FALSE(static_cast<bool>(error));
    CHECK(error.error() == Errc::timed_out);
    CHECK(error.error().sys_errno == ETIMEDOUT);

    // An Error converts implicitly when it cannot be mistaken for a value.
    Result<std::string> from_error = Error{Errc::closed};
    CHECK(from_error.error() == Errc::closed);

    Result<std::string> text = std::string("abc");
    CHECK(text->size() == 3);
}

TEST_CASE("either: value_or") {
    CHECK(Result<int>(7).value_or(0) == 7);
    CHECK(Result<int>(ipc::fail(Errc::closed)).value_or(0) == 0);

    Result<Owned> owned = std::make_unique<int>(5);
    CHECK(*std::move(owned).value_or(nullptr) == 5);
    CHECK(Result<Owned>(ipc::fail(Errc::closed)).value_or(nullptr) == nullptr);
}

TEST_CASE("either: and_then / flat_map chain what may fail, and stop at the first error") {
    CHECK(Result<int>(8).and_then(half).and_then(half).value() == 2);
    CHECK(Result<int>(8).flat_map(half).flat_map(half).flat_map(half).value() == 1);

    int calls = 0;
    auto counted = [&calls](int n) { ++calls; return half(n); };
    auto r = Result<int>(6).and_then(counted).and_then(counted).and_then(counted);
    CHECK(r.error() == Errc::invalid_argument);
    CHECK(std::string(r.error().where) == "half: odd");
    CHECK(calls == 2);

    Result<Owned> owned = std::make_unique<int>(3);
    auto moved = std::move(owned).and_then([](Owned p) -> Result<Owned> { *p += 1; return p; });
    CHECK(*moved.value() == 4);

    // On Result<Unit>, the next step needs no argument (one that takes the
    // Unit still works).
    int steps = 0;
    auto step = [&steps]() -> Result<ipc::Unit> { ++steps; return ipc::Unit{}; };
    auto chained = Result<ipc::Unit>(ipc::Unit{}).and_then(step).and_then([&steps] { ++steps; return Result<int>(7); });
    CHECK(chained.value() == 7);
    CHECK(steps == 2);
    Result<ipc::Unit> failed = ipc::fail(Errc::closed, 0, "x");
    CHECK(failed.and_then(step).error() == Errc::closed);
    CHECK(steps == 2);
    CHECK(Result<ipc::Unit>(ipc::Unit{}).and_then([](ipc::Unit) { return Result<int>(1); }).value() == 1);
}

TEST_CASE("either: transform / map change the value, leave an error alone") {
    CHECK(Result<int>(2).transform([](int n) { return n * 1.5; }).value() == 3.0);
    CHECK(Result<int>(2).map([](int n) { return std::to_string(n); }).value() == "2");

    bool called = false;
    auto r = Result<int>(ipc::fail(Errc::closed)).map([&called](int n) { called = true; return n; });
    CHECK_FALSE(called);
    CHECK(r.error() == Errc::closed);

    Result<Owned> owned = std::make_unique<int>(9);
    auto doubled = std::move(owned).transform([](Owned p) { return *p * 2; });
    CHECK(doubled.value() == 18);
}

TEST_CASE("either: map_error changes the error, leaves a value alone") {
    auto text = [](const Error& e) { return std::string(e.what()); };
    CHECK(Result<int>(ipc::fail(Errc::closed)).map_error(text).error() == "connection closed");
    ipc::Either<int, std::string> kept = Result<int>(1).map_error(text);
    CHECK(kept.value() == 1);

    Result<Owned> owned = std::make_unique<int>(1);
    auto still = std::move(owned).map_error([](Error e) { return std::string(e.what()); });
    CHECK(*still.value() == 1);
}

TEST_CASE("either: or_else recovers from an error, leaves a value alone") {
    auto retry = [](const Error& e) -> Result<int> {
        if (e == Errc::timed_out) return 0;
        return ipc::fail(e);
    };
    CHECK(Result<int>(ipc::fail(Errc::timed_out)).or_else(retry).value() == 0);
    CHECK(Result<int>(ipc::fail(Errc::closed)).or_else(retry).error() == Errc::closed);
    CHECK(Result<int>(5).or_else(retry).value() == 5);

    Result<Owned> owned = ipc::fail(Errc::closed);
    auto recovered = std::move(owned).or_else([](Error) -> Result<Owned> { return std::make_unique<int>(0); });
    CHECK(*recovered.value() == 0);
}

TEST_CASE("either: match calls exactly one side") {
    auto show = [](const Result<int>& r) {
        return r.match([](int n) { return "value " + std::to_string(n); },
                       [](const Error& e) { return std::string("error ") + e.what(); });
    };
    CHECK(show(3) == "value 3");
    CHECK(show(ipc::fail(Errc::closed)) == "error connection closed");

    Result<Owned> owned = std::make_unique<int>(4);
    const int got = std::move(owned).match([](Owned p) { return *p; }, [](Error) { return -1; });
    CHECK(got == 4);
}

TEST_CASE("either: a move-only error type") {
    using Either = ipc::Either<int, std::unique_ptr<std::string>>;
    Either e = ipc::fail(std::make_unique<std::string>("why"));
    REQUIRE_FALSE(e.has_value());
    CHECK(*e.error() == "why");
    Either moved = std::move(e);
    auto why = std::move(moved).error();
    CHECK(*why == "why");
}

TEST_CASE("either: copies, moves and assignments across states construct and destroy exactly once") {
    REQUIRE(Tracked::live == 0);
    {
        ipc::Either<Tracked, Error> a = Tracked{1};
        ipc::Either<Tracked, Error> b = Error{Errc::closed};
        CHECK(Tracked::live == 1);

        auto c = a;  // copy of a value
        CHECK(Tracked::live == 2);
        b = a;  // error -> value
        CHECK(Tracked::live == 3);
        CHECK(b.value().id == 1);
        c = ipc::Either<Tracked, Error>(Error{Errc::io});  // value -> error
        CHECK(Tracked::live == 2);
        CHECK(c.error() == Errc::io);
        a = std::move(b);  // value -> value
        CHECK(Tracked::live == 2);
        const auto& same = a;
        a = same;  // self-assignment
        CHECK(Tracked::live == 2);
        CHECK(a.value().id == 1);
    }
    CHECK(Tracked::live == 0);
}

TEST_CASE("either: equality") {
    CHECK(Result<int>(1) == Result<int>(1));
    CHECK(Result<int>(1) != Result<int>(2));
    CHECK(Result<int>(1) != Result<int>(ipc::fail(Errc::closed)));
    CHECK(Result<int>(ipc::fail(Errc::closed)) == Result<int>(ipc::fail(Errc::closed)));
}

TEST_CASE("either: misuse aborts instead of being undefined") {
    CHECK(signal_ending_child([] {
              Result<int> error = ipc::fail(Errc::closed);
              (void)error.value();
          }) == SIGABRT);
    CHECK(signal_ending_child([] {
              Result<int> value = 1;
              (void)value.error();
          }) == SIGABRT);
    CHECK(signal_ending_child([] {
              Result<Owned> error = ipc::fail(Errc::closed);
              (void)*std::move(error).value();
          }) == SIGABRT);
    // And the right use does not.
    CHECK(signal_ending_child([] {
              Result<int> value = 1;
              (void)value.value();
          }) == 0);
}

}  // TEST_SUITE
