// Regression (0.2, issue 24): another local user could keep a service down.
// - The kernel prints a newline in a socket's name into /proc/net/unix as it
//   is: an abstract socket named "x\n<seven fields> /our/dir/NAME.sock"
//   reads as a listener on our path, so a crashed server's stale NAME.sock
//   looked live (exist(), processes()) and its restart failed with
//   name_in_use while the attacker's socket stayed open. The same with a
//   read lock on NAME.lock, which was readable by whoever could connect.
// - A sticky, world-writable socket directory (/tmp itself) was trusted,
//   but another user could create NAME.lock or NAME.sock there first.
// The third finding, memory queued across clients, is torture 1's crowd;
// here, the large frame read on past the budget cannot be held by a peer
// that trickles it.
#include "../support/basics.hpp"
#include "../support/child.hpp"
#include "../support/frames.hpp"
#include "../support/raw_peer.hpp"
#include "../support/server.hpp"
#include "../support/temp.hpp"

#include <algorithm>
#include <atomic>
#include <thread>

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

using namespace ipc_test;

namespace {

namespace d = ipc::detail;

// The line a forged name adds to /proc/net/unix: a listening stream socket
// (flags __SO_ACCEPTCON) bound at `path`.
std::string forged_line(const std::string& path) { return "0000000000000000: 00000002 00000000 00010000 0001 01 1 " + path; }

// In a child, as `user` (or as we are, when nullptr): an abstract socket
// whose name carries a forged /proc/net/unix line for `path`, listening;
// marks `ready`, then waits to be killed.
Child forger(const struct passwd* user, const std::string& path, const Pipe& ready) {
    return spawn([user, path, &ready]() -> std::string {
        if (user != nullptr && !become(user)) return "become";
        const std::string name = std::string(1, '\0') + "x\n" + forged_line(path);
        struct sockaddr_un addr {};
        if (name.size() > sizeof addr.sun_path) return "name too long";
        addr.sun_family = AF_UNIX;
        std::memcpy(addr.sun_path, name.data(), name.size());
        const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        const auto len = static_cast<socklen_t>(offsetof(struct sockaddr_un, sun_path) + name.size());
        if (fd < 0 || ::bind(fd, reinterpret_cast<const struct sockaddr*>(&addr), len) != 0 || ::listen(fd, 4) != 0) return "bind";
        ready.mark();
        for (;;) ::pause();
    });
}

bool names_contain(const ipc::Result<std::vector<ipc::Name>>& names, const ipc::Name& name) {
    return names.has_value() && std::find(names->begin(), names->end(), name) != names->end();
}

// Liveness of the file at `path` from each source the library can fall
// back to: sock_diag (when the kernel answers it here), /proc/net/unix, none.
std::string sources_say(const std::string& path) {
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0) return "no file";
    std::string said;
    d::Listeners best = d::listeners();
    if (best.source == d::Listeners::Source::sock_diag) said += d::listening_at(best, path, st) ? "diag:live " : "diag:stale ";
    d::Listeners proc;
    if (d::listening_paths(proc.paths)) {
        proc.source = d::Listeners::Source::proc_net_unix;
        said += d::listening_at(proc, path, st) ? "proc:live " : "proc:stale ";
    }
    const d::Listeners none;
    said += d::listening_at(none, path, st) ? "connect:live" : "connect:stale";
    return said;
}

// The budget cases' server, on a thread: 1 MiB messages at most, a
// 512 KiB budget, and the given stall_timeout.
ThreadServer<int> small_budget_server(Case& k, std::int64_t stall_ms) {
    k.config.max_message_size = 1u << 20;
    k.config.max_total_queued_bytes = 512u << 10;
    k.config.stall_timeout = ipc::Milliseconds(stall_ms);
    k.reconfigure();
    return ThreadServer<int>(k.ipc, k.name, 0, CommandReducer{});
}

}  // namespace

TEST_SUITE("regression") {

TEST_CASE_FIXTURE(Case, "regression: another user's abstract socket forging a /proc/net/unix line keeps no stale name alive, nor its restart out") {
    const struct passwd* user = hostile_user();
    if (user == nullptr) MESSAGE("the forger runs as us: needs root and the user ipc-hostile (.ci/run creates it) to run as another user");
    const std::string sock = ipc.path_of(name);
    REQUIRE(make_stale_socket(sock));  // a crashed server's file: bound, closed, never unlinked
    Pipe ready;
    Child attacker = forger(user, sock, ready);
    REQUIRE(ready.wait_mark(5000));

#if IPC_HPP_HAVE_PROC_NET_UNIX
    // The forgery is real: /proc/net/unix reads as a listener on our path.
    std::vector<std::string> paths;
    REQUIRE(d::listening_paths(paths));
    REQUIRE(d::listed(paths, sock));
#endif
    // 0.2: exist() true, processes() listed it, listen() name_in_use.
    CHECK(sources_say(sock).find("live") == std::string::npos);
    CHECK_FALSE(ipc.exist(name));
    CHECK_FALSE(names_contain(ipc.processes(), name));
    {
        ThreadServer<int> restarted(ipc, name, 0, CommandReducer{});
        // (Not get_live(): where sock_diag is not there, the tests' own
        // listening() reads /proc/net/unix, which the forger has fooled.)
        REQUIRE(eventually([&] { return ipc.exist(name); }, 5000));
        auto p = ipc.get(name);
        REQUIRE(p.has_value());
        CHECK(ping(*p) == "pong");
        CHECK(ipc.exist(name));
        CHECK(names_contain(ipc.processes(), name));
        REQUIRE(p->close().has_value());
        restarted.finish_expecting(1);  // the one ping
    }
    CHECK_FALSE(file_exists(sock));

    // A server that takes no lock (innmind/ipc's), bound right at the path,
    // is still live by every source, and listed.
    {
        RawListener reference(sock);
        REQUIRE(reference.valid());
        CHECK(sources_say(sock).find("stale") == std::string::npos);
        CHECK(ipc.exist(name));
        CHECK(names_contain(ipc.processes(), name));
    }
    attacker.kill_now();
}

TEST_CASE_FIXTURE(Case, "regression: NAME.lock is ours alone, and another user's read lock on an old readable one keeps no stale name alive") {
    const struct passwd* user = hostile_user();
    if (user == nullptr) {
        MESSAGE("skipped: needs root and the user ipc-hostile (.ci/run creates it)");
        return;
    }
    REQUIRE(::chmod(dir.path().c_str(), 0755) == 0);
    config.socket_mode = 0666;  // others may connect (0.2 made NAME.lock 0644 then)
    reconfigure();
    const std::string lock = dir.path() + "/srv.lock", sock = ipc.path_of(name);
    {
        Child crashed = spawn_server(config, name, 0, CommandReducer{});
        REQUIRE(wait_live(ipc, name));
        crashed.kill_now();  // SIGKILL: the socket file and the lock's content stay
    }
    struct stat st {};
    REQUIRE(::lstat(lock.c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0600);  // 0.2: 0644
    // As an older version left it: readable by all. The other user opens it
    // and holds a read lock (0.2: exist() true, processes() listed it,
    // every restart name_in_use).
    REQUIRE(::chmod(lock.c_str(), 0644) == 0);
    Pipe ready;
    Child reader = spawn([user, &lock, &ready]() -> std::string {
        if (!become(user)) return "become";
        const int fd = ::open(lock.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0) return "open";
        struct flock fl {};
        fl.l_type = F_RDLCK;
        fl.l_whence = SEEK_SET;
        if (::fcntl(fd, F_OFD_SETLK, &fl) != 0) return "lock";
        ready.mark();
        for (;;) ::pause();
    });
    REQUIRE(ready.wait_mark(5000));
    CHECK_FALSE(ipc.exist(name));
    CHECK_FALSE(names_contain(ipc.processes(), name));
    {
        const ipc::Error e = start_refused(config, name);  // their lock is on the file: the name cannot be taken while they hold it
        CHECK(e == ipc::Errc::name_in_use);
        CHECK(std::string(e.where).find("read-locked") != std::string::npos);  // but it says why
    }
    REQUIRE(::lstat(lock.c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0600);  // and nobody can open it again
    Child again = spawn([user, &lock]() -> std::string {
        if (!become(user)) return "become";
        return ::open(lock.c_str(), O_RDONLY | O_CLOEXEC) < 0 && errno == EACCES ? "refused" : "opened";
    });
    CHECK(again.result() == "refused");
    reader.kill_now();
    ThreadServer<int> restarted(ipc, name, 0, CommandReducer{});
    REQUIRE(eventually([&] { return ipc.exist(name); }, 5000));
    restarted.finish_expecting(0);
    CHECK_FALSE(file_exists(sock));
}

TEST_CASE("regression: a sticky directory others can create files in is refused as the socket directory; a squatter's files are neither obeyed nor touched") {
    Watchdog wd;
    TempDir dir;
    REQUIRE(::chmod(dir.path().c_str(), 0755) == 0);  // (the second user reaches the shared directory)
    const std::string shared = dir.file("shared");
    REQUIRE(::mkdir(shared.c_str(), 0700) == 0);
    REQUIRE(::chmod(shared.c_str(), 01777) == 0);  // like /tmp
    const ipc::Name name = name_of("srv");
    const std::string sock = shared + "/srv.sock", lock = shared + "/srv.lock";

    // 0.2 served here; whoever could create files there could take the name first.
    {
        const ipc::Error e = start_refused(test_config(shared), name);
        CHECK(e == ipc::Errc::insecure_directory);
        CHECK(std::string(e.where).find("Config::allow_shared_directory") != std::string::npos);
        CHECK_FALSE(file_exists(sock));
        CHECK_FALSE(file_exists(lock));
    }

    const struct passwd* user = hostile_user();
    if (user == nullptr) {
        MESSAGE("skipped the squatter: needs root and the user ipc-hostile (.ci/run creates it)");
        return;
    }
    // The squatter: an empty NAME.lock and a listening NAME.sock of theirs.
    Pipe ready;
    Child squatter = spawn([user, &sock, &lock, &ready]() -> std::string {
        if (!become(user)) return "become";
        const int l = ::open(lock.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644);
        if (l < 0) return "lock";
        ::close(l);
        struct sockaddr_un addr {};
        socklen_t len = 0;
        if (!fill_address(sock, addr, len)) return "address";
        const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || ::bind(fd, reinterpret_cast<const struct sockaddr*>(&addr), len) != 0 || ::listen(fd, 4) != 0) return "bind";
        ready.mark();
        for (;;) ::pause();
    });
    REQUIRE(ready.wait_mark(5000));
    struct stat lock_before {}, sock_before {};
    REQUIRE(::lstat(lock.c_str(), &lock_before) == 0);
    REQUIRE(::lstat(sock.c_str(), &sock_before) == 0);
    REQUIRE(lock_before.st_uid == user->pw_uid);

    // Still refused, with the reason, before anything is touched.
    CHECK(start_refused(test_config(shared), name) == ipc::Errc::insecure_directory);
    // Told the directory is shared: the squatter's lock is not obeyed as a
    // server's, nor taken over; a clear error, and their files as they were.
    ipc::Config relaxed = test_config(shared);
    relaxed.allow_shared_directory = true;
    ipc::Ipc ipc(relaxed);
    auto server = ipc.listen(name);
    if (server.has_value()) {
        auto loop = server->start(0, CommandReducer{});
        REQUIRE_FALSE(loop.has_value());
        CHECK(loop.error() == ipc::Errc::insecure_directory);
    } else {
        CHECK(server.error() == ipc::Errc::insecure_directory);
    }
    // Clients do not take the squatter's socket for a server of ours.
    CHECK_FALSE(ipc.exist(name));
    CHECK_FALSE(names_contain(ipc.processes(), name));
    auto p = ipc.get(name);
    REQUIRE_FALSE(p.has_value());
    CHECK(p.error() == ipc::Errc::permission_denied);
    struct stat lock_after {}, sock_after {};
    REQUIRE(::lstat(lock.c_str(), &lock_after) == 0);
    REQUIRE(::lstat(sock.c_str(), &sock_after) == 0);
    CHECK(lock_after.st_ino == lock_before.st_ino);
    CHECK(lock_after.st_uid == user->pw_uid);
    CHECK(lock_after.st_size == 0);
    CHECK(lock_after.st_mode == lock_before.st_mode);
    CHECK(sock_after.st_ino == sock_before.st_ino);
    CHECK(sock_after.st_uid == user->pw_uid);
    squatter.kill_now();
}

TEST_CASE_FIXTURE(Case, "regression: past Config::max_total_queued_bytes, a peer trickling the one large frame read on is dropped after stall_timeout, and the next one goes through") {
    ThreadServer<int> server = small_budget_server(*this, 600);
    REQUIRE(wait_live(ipc, name));
    // A: announces 900 KiB, sends 600 KiB (the budget is passed, and A's
    // frame is the one read on), then a byte every 100 ms.
    RawConn a = RawConn::connect(ipc.path_of(name));
    REQUIRE(a.valid());
    REQUIRE(a.handshake());
    const std::string big = frame("application/octet-stream", std::string(std::size_t{900} << 10, 'a'));
    const std::size_t sent_at_once = (std::size_t{600} << 10) + 32;
    REQUIRE(a.send(std::string_view(big).substr(0, sent_at_once)));
    sleep_ms(100);
    std::atomic<bool> stop{false};
    std::thread trickle([&] {
        for (std::size_t i = sent_at_once; i < big.size() && !stop.load(); ++i) {
            if (!a.send(std::string_view(big).substr(i, 1), 1000)) return;
            sleep_ms(100);
        }
    });
    // B: a 200 KiB frame, paused behind A's until A is dropped.
    auto b = ipc.get(name);
    REQUIRE(b.has_value());
    const std::string content(std::size_t{200} << 10, 'b');
    Stopwatch sw;
    REQUIRE(b->send(ipc::Message::make("application/octet-stream", content).value(), ipc::Milliseconds(5000)).has_value());
    auto reply = b->wait(ipc::Milliseconds(5000));
    const std::int64_t took = sw.elapsed();
    stop.store(true);
    trickle.join();
    REQUIRE(reply.has_value());  // before the fix: A's trickle kept B's frame waiting (timed_out)
    CHECK(reply->content() == content);
    CHECK(took < 3000);
    std::string before;
    CHECK(a.wait_eof(2000, &before));
    CHECK(server.drops.count(ipc::DropReason::queue_full) == 1);
    REQUIRE(b->close().has_value());
    server.finish_expecting(1);
}

TEST_CASE_FIXTURE(Case, "regression: past Config::max_total_queued_bytes, frames stopped midway are dropped in turn, an idle client is never admitted, and the server reads again") {
    ThreadServer<int> server = small_budget_server(*this, 1000);
    REQUIRE(wait_live(ipc, name));
    auto idle = ipc.get(name);  // the first connection: first in the server's list, heartbeating
    REQUIRE(idle.has_value());
    // A peer that asks and never reads: answers wait for it until its stall
    // timer drops it, so nobody is admitted when the budget is passed.
    RawConn hoarder = RawConn::connect(ipc.path_of(name));
    REQUIRE(hoarder.valid());
    REQUIRE(hoarder.handshake());
    std::string pings;  // 768 KB of answers: more than the socket takes, less queued than the budget
    for (int i = 0; i < 12000; ++i) pings += frame("text/plain", "ping");
    (void)hoarder.send(pings, 200);  // (it is paused, past the budget, before all is sent)
    // Four peers each send 200 KiB of a 900 KiB frame and stop: together
    // past the budget, and never again readable.
    const std::string big = frame("application/octet-stream", std::string(std::size_t{900} << 10, 'p'));
    std::vector<RawConn> partial;
    for (int i = 0; i < 4; ++i) {
        partial.push_back(RawConn::connect(ipc.path_of(name)));
        REQUIRE(partial.back().valid());
        REQUIRE(partial.back().handshake());
        REQUIRE(partial.back().send(std::string_view(big).substr(0, std::size_t{200} << 10)));
    }
    sleep_ms(4000);  // four stall_timeouts
    // Before the fix, re-watching every peer admitted the idle one; each of
    // its heartbeats let it go and admitted it again, so the frames stopped
    // midway were never dropped and nobody else was read again.
    auto other = ipc.get(name, ipc::Milliseconds(3000));
    REQUIRE(other.has_value());
    const std::string content(std::size_t{100} << 10, 'e');
    REQUIRE(other->send(ipc::Message::make("application/octet-stream", content).value(), ipc::Milliseconds(3000)).has_value());
    auto back = other->wait(ipc::Milliseconds(3000));
    REQUIRE(back.has_value());
    CHECK(back->content() == content);
    CHECK(ping(*idle) == "pong");
    CHECK(server.drops.count(ipc::DropReason::queue_full) >= 2);  // stopped frames' senders, and the hoarder (or its queue bound)
    REQUIRE(idle->close().has_value());
    REQUIRE(other->close().has_value());
    CHECK(server.finish().has_value());
}

}  // TEST_SUITE
