// A server under test: forked (spawn_server, spawn_late_server) or on a thread (ThreadServer), its DropLog, CommandReducer, ping, wait_live/get_live, the ServedCase fixture.
#ifndef IPC_HPP_TESTS_SUPPORT_SERVER_HPP
#define IPC_HPP_TESTS_SUPPORT_SERVER_HPP

#include "basics.hpp"
#include "child.hpp"
#include "probes.hpp"
#include "temp.hpp"

#include <doctest/doctest.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include <sys/stat.h>

namespace ipc_test {

namespace ipc = ipc_hpp;

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

// What start() on `name` (a CommandReducer from 0) fails with, once
// listen() has worked (both REQUIREd).
inline ipc::Error start_refused(const ipc::Config& config, const ipc::Name& name) {
    ipc::Ipc ipc(config);
    auto server = ipc.listen(name);
    REQUIRE(server.has_value());
    auto loop = server->start(0, CommandReducer{});
    REQUIRE_FALSE(loop.has_value());
    return loop.error();
}

// One round trip: send `what`, wait for the reply; its content, or
// "send <errc>" / "reply <errc>".
inline std::string ask(ipc::Process& p, std::string_view what, std::int64_t timeout_ms = 3000) {
    auto s = p.send(ipc::Message::text(what), ipc::Milliseconds(timeout_ms));
    if (!s) return std::string("send ") + errc_name(s.error().code);
    auto m = p.wait(ipc::Milliseconds(timeout_ms));
    if (!m) return std::string("reply ") + errc_name(m.error().code);
    return m->content();
}

// One round trip with a CommandReducer server, 3 s each way.
inline std::string ping(ipc::Process& p, std::string_view what = "ping") { return ask(p, what); }

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

// Forks a server that starts after its clients: it waits delay_ms, then
// serves a CommandReducer from 0 on name. Its result is "ok <carry>",
// "listen failed" or "serve failed".
inline Child spawn_late_server(const ipc::Config& config, const ipc::Name& name, long delay_ms) {
    return spawn([config, name, delay_ms] {
        sleep_ms(delay_ms);
        ipc::Ipc mine(config);
        auto s = mine.listen(name);
        if (!s) return std::string("listen failed");
        auto r = s->serve(0, CommandReducer{});
        return r ? "ok " + std::to_string(r.value()) : std::string("serve failed");
    });
}

// Whether the kernel lists a listening AF_UNIX socket bound to path: a raw
// or reference-like server. sock_diag where the kernel answers it (a file's
// inode: another user's forged /proc/net/unix line cannot fool it), else
// /proc/net/unix (flag __SO_ACCEPTCON). Never connects: a connect-and-drop
// probe would show up as a dropped connection in the server under test.
inline bool listening(const std::string& path) {
    const ipc::detail::Listeners known = ipc::detail::listeners();
    if (known.source == ipc::detail::Listeners::Source::sock_diag) {
        struct stat st {};
        return ::lstat(path.c_str(), &st) == 0 && known.has(st);
    }
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

// Until name is live, then a Process on it (both REQUIREd).
inline ipc::Result<ipc::Process> get_live(const ipc::Ipc& ipc, const ipc::Name& name) {
    REQUIRE(wait_live(ipc, name));
    auto p = ipc.get(name);
    REQUIRE(p.has_value());
    return p;
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
    // finish(stop), and checks that serve() returned the carry expected.
    void finish_expecting(const Carry& expected, bool stop = true) {
        auto r = finish(stop);
        REQUIRE(r.has_value());
        CHECK(r.value() == expected);
    }

    DropLog drops;

private:
    ipc::Result<ipc::Server> server_;
    ipc::StopHandle stop_;
    ipc::Result<Carry> result_;
    std::atomic<bool> done_{false};
    std::thread thread_;
};

// A Case whose name "srv" is served by a forked CommandReducer server from 0,
// live before the case starts (TEST_CASE_FIXTURE(ServedCase, "...")).
struct ServedCase : Case {
    Child server = spawn_server(config, name, 0, CommandReducer{});
    explicit ServedCase(std::int64_t heartbeat_ms = test_heartbeat_ms) : Case(heartbeat_ms) { REQUIRE(wait_live(ipc, name)); }
};

// ServedCase with both sides beating every Ms ms.
template <std::int64_t Ms>
struct ServedCaseBeating : ServedCase {
    ServedCaseBeating() : ServedCase(Ms) {}
};

}  // namespace ipc_test

#endif
