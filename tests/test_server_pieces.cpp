// Section 12: server pieces — the stop handle (from a signal handler, before serve), handle_signals and the six signals, to_string(DropReason); servers in forked processes.
#include "support/basics.hpp"
#include "support/bytes.hpp"
#include "support/child.hpp"
#include "support/frames.hpp"
#include "support/probes.hpp"
#include "support/raw_peer.hpp"
#include "support/server.hpp"
#include "support/temp.hpp"

#include <chrono>
#include <future>
#include <set>

using namespace ipc_test;

namespace {

ipc::StopHandle g_stop;  // for the signal handler of a forked server
extern "C" void request_stop(int) { g_stop.request(); }

const int stop_signals[6] = {SIGHUP, SIGINT, SIGABRT, SIGTERM, SIGTSTP, SIGALRM};

}  // namespace

TEST_SUITE("server-pieces") {

TEST_CASE_FIXTURE(Case, "server: stop handle from a signal handler, with clients in other processes") {
    Child server = spawn_server(config, name, 0, CommandReducer{}, ipc::Milliseconds::forever(), [](ipc::Server& s) {
        g_stop = s.stop_handle();
        struct sigaction sa {};
        sa.sa_handler = &request_stop;
        sigemptyset(&sa.sa_mask);
        ::sigaction(SIGUSR1, &sa, nullptr);
    });
    REQUIRE(wait_live(ipc, name));

    // Three client processes: each pings, says it is ready, then waits.
    Pipe ready;
    const int ready_fd = ready.write_end();
    std::vector<Child> clients;
    for (int i = 0; i < 3; ++i) {
        clients.push_back(spawn([config = config, name = name, ready_fd] {
            ipc::Ipc mine(config);
            auto p = mine.get(name);
            if (!p) return std::string("get ") + errc_name(p.error().code);
            std::string pong = ping(*p);
            (void)write_all_fd(ready_fd, "r");
            if (pong != "pong") return pong;
            return outcome(p->wait(ipc::Milliseconds(5000)));
        }));
    }
    REQUIRE(read_n(ready.read_end(), 3, 5000));
    auto mine = ipc.get(name);
    REQUIRE(mine.has_value());
    CHECK(ping(*mine, "count") == "4");

    server.signal(SIGUSR1);
    CHECK(outcome(mine->wait(ipc::Milliseconds(3000))) == "closed");
    for (Child& c : clients) CHECK(c.result(5000) == "closed");
    std::string r = server.result(5000);
    CAPTURE(r);
    CHECK(r == "ok 4 drops=closed,closed,closed,closed");
    CHECK_FALSE(file_exists(ipc.path_of(name)));
}

TEST_CASE_FIXTURE(Case, "server: a stop requested before serve returns the carry at once, without binding") {
    auto server = ipc.listen(name_of("early"));
    REQUIRE(server.has_value());
    ipc::StopHandle handle = server->stop_handle();
    CHECK_FALSE(handle.requested());
    handle();
    CHECK(handle.requested());
    Stopwatch sw;
    auto r = server->serve(std::string("carry"), [](const ipc::Message&, ipc::Continuation<std::string> c, std::string s) {
        return c.stop(s + "!");
    });
    REQUIRE(r.has_value());
    CHECK(r.value() == "carry");
    CHECK(sw.elapsed() < 500);
    CHECK_FALSE(file_exists(ipc.path_of(name_of("early"))));
    CHECK(ipc::StopHandle{}.requested() == false);  // a default handle does nothing
    ipc::StopHandle{}.request();
}

TEST_CASE("server: handle_signals — each of the reference's six signals stops it gracefully, then handlers are restored") {
    Watchdog wd;
    TempDir dir;
    const ipc::Config config = test_config(dir.path());
    ipc::Ipc ipc(config);
    for (int sig : stop_signals) {
        CAPTURE(sig);
        const ipc::Name name = name_of("sig" + std::to_string(sig));
        Child server = spawn([config, name] {
            ipc::Ipc mine(config);
            auto s = mine.listen(name);
            if (!s) return std::string("listen ") + errc_name(s.error().code);
            s->handle_signals();
            auto installed = [] {
                std::string bits;
                for (int x : stop_signals) {
                    struct sigaction sa {};
                    ::sigaction(x, nullptr, &sa);
                    bits += sa.sa_handler == SIG_DFL ? '0' : '1';
                }
                return bits;
            };
            std::string before = installed();
            auto r = s->serve(0, [&](const ipc::Message&, ipc::Continuation<int> c, int n) {
                return c.respond(n + 1, ipc::Message::text(installed()));
            });
            if (!r) return std::string("serve ") + errc_name(r.error().code);
            return "ok " + std::to_string(r.value()) + " before=" + before + " after=" + installed();
        });
        auto p = get_live(ipc, name);
        CHECK(ping(*p, "probe") == "111111");  // all six handled while serving
        server.signal(sig);
        CHECK(outcome(p->wait(ipc::Milliseconds(3000))) == "closed");
        CHECK(server.result(5000) == "ok 1 before=000000 after=000000");
        CHECK(server.exited_with(0));
        CHECK_FALSE(file_exists(ipc.path_of(name)));
    }
}

TEST_CASE_FIXTURE(Case, "server: without handle_signals no disposition changes, and SIGTERM kills it leaving a stale file") {
    SUBCASE("in this process: dispositions before, while serving and after are the same") {
        struct sigaction before[6], during[6], after[6];
        for (int i = 0; i < 6; ++i) ::sigaction(stop_signals[i], nullptr, &before[i]);
        {
            ThreadServer<int> server(ipc, name, 0, CommandReducer{});
            auto p = get_live(ipc, name);
            CHECK(ping(*p) == "pong");
            for (int i = 0; i < 6; ++i) ::sigaction(stop_signals[i], nullptr, &during[i]);
            REQUIRE(p->close().has_value());
            CHECK(server.finish().has_value());
        }
        for (int i = 0; i < 6; ++i) ::sigaction(stop_signals[i], nullptr, &after[i]);
        for (int i = 0; i < 6; ++i) {
            CAPTURE(stop_signals[i]);
            CHECK((during[i].sa_handler == before[i].sa_handler));
            CHECK(during[i].sa_flags == before[i].sa_flags);
            CHECK((after[i].sa_handler == before[i].sa_handler));
        }
    }
    SUBCASE("in a forked server: SIGTERM kills it; the file it leaves is no process and is replaced") {
        Child server = spawn_server(config, name, 0, CommandReducer{});
        auto p = get_live(ipc, name);
        CHECK(ping(*p) == "pong");
        server.signal(SIGTERM);
        CHECK(outcome(p->wait(ipc::Milliseconds(3000))) == "closed_by_peer");
        CHECK(server.result(5000) == "");
        CHECK(WIFSIGNALED(server.status()));
        CHECK(WTERMSIG(server.status()) == SIGTERM);

        CHECK(file_exists(ipc.path_of(name)));  // left behind
        CHECK_FALSE(ipc.exist(name));
        auto listed = ipc.processes();
        REQUIRE(listed.has_value());
        CHECK(listed->empty());
        CHECK(outcome(ipc.get(name)) == "connection_refused");

        ThreadServer<int> successor(ipc, name, 0, CommandReducer{});
        auto q = get_live(ipc, name);
        CHECK(ping(*q, "count") == "1");
        REQUIRE(q->close().has_value());
        successor.finish_expecting(1);
        CHECK_FALSE(file_exists(ipc.path_of(name)));
    }
}

TEST_CASE("server: to_string names each drop reason by its enumerator") {
    std::set<std::string> seen;
    const int last = static_cast<int>(ipc::DropReason::invalid_response);
    for (int r = 0; r <= last; ++r) {
        const std::string n = ipc::to_string(static_cast<ipc::DropReason>(r));
        CHECK(n != "unknown");
        seen.insert(n);
    }
    CHECK(seen.size() == static_cast<std::size_t>(last + 1));
    CHECK(std::string(ipc::to_string(ipc::DropReason::queue_full)) == "queue_full");
    CHECK(std::string(ipc::to_string(ipc::DropReason::too_many_connections)) == "too_many_connections");
    CHECK(std::string(ipc::to_string(static_cast<ipc::DropReason>(last + 1))) == "unknown");
}


}  // TEST_SUITE
