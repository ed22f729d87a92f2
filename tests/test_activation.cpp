// A listening socket made by a supervisor: systemd's socket activation
// (LISTEN_PID, LISTEN_FDS, LISTEN_FDNAMES, read by Ipc::listen) and
// Server::from_fd. The server must serve that socket, never bind its own
// over it, never unlink it, and leave the supervisor's fd open.
// tests/examples_test.sh runs the same through Debian's real
// systemd-socket-activate.
#include "support/basics.hpp"
#include "support/child.hpp"
#include "support/raw_peer.hpp"
#include "support/server.hpp"
#include "support/temp.hpp"

using namespace ipc_test;

namespace {

// A listening AF_UNIX stream socket bound at `path` (blocking, as a
// supervisor hands it over), or -1.
int supervisor_socket(const std::string& path, int type = SOCK_STREAM, bool listen = true) {
    struct sockaddr_un addr {};
    socklen_t len = 0;
    if (!fill_address(path, addr, len)) return -1;
    const int fd = ::socket(AF_UNIX, type | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    if (::bind(fd, reinterpret_cast<const struct sockaddr*>(&addr), len) != 0 || (listen && ::listen(fd, 16) != 0)) {
        ::close(fd);
        return -1;
    }
    return fd;
}

ino_t inode_of(const std::string& path) {
    struct stat st {};
    return ::lstat(path.c_str(), &st) == 0 ? st.st_ino : 0;
}

// Forks a child started the way systemd starts a service: `fds` on 3, 4, …
// (not close-on-exec), LISTEN_FDS set to their number, LISTEN_PID to the
// child's pid (or to `pid_offset` more), LISTEN_FDNAMES to `names` unless
// null. The child runs body() and reports its string (as spawn() does).
template <class Body>
Child spawn_activated(std::vector<int> fds, const char* names, Body body, long pid_offset = 0) {
    int p[2];
    REQUIRE(::pipe2(p, O_CLOEXEC) == 0);
    std::fflush(nullptr);
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        ::alarm(20);
        for (int sig : {SIGHUP, SIGINT, SIGABRT, SIGTERM, SIGTSTP, SIGALRM}) ::signal(sig, SIG_DFL);
        // Out of the way of 3, 4, …: the result pipe, then the sockets.
        const int out = ::fcntl(p[1], F_DUPFD_CLOEXEC, 200);
        std::vector<int> high;
        for (int fd : fds) high.push_back(::fcntl(fd, F_DUPFD_CLOEXEC, 300));
        for (std::size_t i = 0; i < high.size(); ++i) {
            const int target = 3 + static_cast<int>(i);
            if (high[i] < 0 || ::dup2(high[i], target) != target) ::_exit(3);
        }
        ::setenv("LISTEN_PID", std::to_string(static_cast<long>(::getpid()) + pid_offset).c_str(), 1);
        ::setenv("LISTEN_FDS", std::to_string(fds.size()).c_str(), 1);
        if (names != nullptr) ::setenv("LISTEN_FDNAMES", names, 1);
        else ::unsetenv("LISTEN_FDNAMES");
        std::string r;
        try {
            r = body();
        } catch (...) {
            r = "<exception>";
        }
        (void)write_all_fd(out, r);
        ::_exit(0);
    }
    ::close(p[1]);
    return Child(pid, p[0]);
}

// Whether fd is open and still a listening socket.
bool still_listening(int fd) {
    int value = 0;
    socklen_t len = sizeof value;
    return ::fcntl(fd, F_GETFD) >= 0 && ::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &value, &len) == 0 && value == 1;
}

std::string serve_commands(ipc::Server& server) {
    auto r = server.serve(0, CommandReducer{});
    return r ? "ok " + std::to_string(r.value()) : std::string("serve ") + errc_name(r.error().code);
}

}  // namespace

TEST_CASE("activation: listen() takes the fd LISTEN_FDNAMES names, serves it, and leaves it and its file to systemd") {
    Watchdog wd;
    TempDir dir;
    const ipc::Config config = test_config(dir.path());
    ipc::Ipc ipc(config);
    const std::string path = ipc.path_of(name_of("srv"));
    const int other = supervisor_socket(dir.file("other.sock"));
    const int mine = supervisor_socket(path);
    REQUIRE(other >= 0);
    REQUIRE(mine >= 0);
    const ino_t inode = inode_of(path);

    Child server = spawn_activated({other, mine}, "other:srv", [&]() -> std::string {
        ipc::Ipc child_ipc(config);
        auto s = child_ipc.listen("srv");
        if (!s) return std::string("listen ") + errc_name(s.error().code);
        std::string out = serve_commands(*s);
        const bool fd4 = still_listening(4), fd3 = still_listening(3);
        // Both passed fds, not only the one served: none leaks into the
        // programs this process runs (as sd_listen_fds() does).
        const bool cloexec = (::fcntl(3, F_GETFD) & FD_CLOEXEC) != 0 && (::fcntl(4, F_GETFD) & FD_CLOEXEC) != 0;
        return out + (fd4 && fd3 ? " fds open" : " fds closed") + (cloexec ? " cloexec" : "");
    });
    auto p = ipc.get("srv");  // the kernel queues us until the child accepts
    REQUIRE(p.has_value());
    CHECK(ipc.exist("srv"));
    CHECK(ping(*p) == "pong");
    REQUIRE(p->send(ipc::Message::text("stop"), ipc::Milliseconds(2000)).has_value());
    CHECK(outcome(p->wait(ipc::Milliseconds(2000))) == "closed");
    const std::string r = server.result(5000);
    CHECK(r == "ok 2 fds open cloexec");
    // Nothing was bound, locked or unlinked by the server: systemd's file
    // is the same file, still listened on by our copy of the fd.
    CHECK(inode_of(path) == inode);
    CHECK_FALSE(file_exists(dir.file("srv.lock")));
    ::close(other);
    ::close(mine);
}

TEST_CASE("activation: without LISTEN_FDNAMES the fd bound at the server's path is taken") {
    Watchdog wd;
    TempDir dir;
    const ipc::Config config = test_config(dir.path());
    ipc::Ipc ipc(config);
    const std::string path = ipc.path_of(name_of("srv"));
    const int unrelated = supervisor_socket(dir.file("unrelated.sock"));
    const int mine = supervisor_socket(path);
    REQUIRE(unrelated >= 0);
    REQUIRE(mine >= 0);
    Child server = spawn_activated({unrelated, mine}, nullptr, [&]() -> std::string {
        auto s = ipc::Ipc(config).listen("srv");
        if (!s) return std::string("listen ") + errc_name(s.error().code);
        return serve_commands(*s);
    });
    auto p = ipc.get("srv");
    REQUIRE(p.has_value());
    CHECK(ping(*p, "count") == "1");
    REQUIRE(p->send(ipc::Message::text("stop"), ipc::Milliseconds(2000)).has_value());
    CHECK(server.result(5000) == "ok 2");
    CHECK(file_exists(path));
    ::close(unrelated);
    ::close(mine);
}

TEST_CASE("activation: the path is matched through a symlinked directory; a named socket bound elsewhere gives path()") {
    Watchdog wd;
    TempDir dir;
    // /var/run -> /run on Debian: systemd binds through the link, Ipc spells
    // the canonical directory.
    REQUIRE(::mkdir(dir.file("real").c_str(), 0700) == 0);
    REQUIRE(::symlink("real", dir.file("link").c_str()) == 0);
    const ipc::Config config = test_config(dir.file("link"));
    ipc::Ipc ipc(config);
    const int via_link = supervisor_socket(dir.file("link/srv.sock"));
    REQUIRE(via_link >= 0);
    Child server = spawn_activated({via_link}, "unrelated", [&]() -> std::string {
        auto s = ipc::Ipc(config).listen("srv");
        if (!s) return std::string("listen ") + errc_name(s.error().code);
        return s->path() + " " + serve_commands(*s);
    });
    auto p = ipc.get("srv");
    REQUIRE(p.has_value());
    CHECK(ping(*p) == "pong");
    REQUIRE(p->send(ipc::Message::text("stop"), ipc::Milliseconds(2000)).has_value());
    CHECK(server.result(5000) == ipc.path_of(name_of("srv")) + " ok 2");
    CHECK(ipc.path_of(name_of("srv")) == dir.file("real/srv.sock"));

    // Named for the server, bound outside its directory: served, and
    // path() says where (clients of the directory would not find it).
    const int elsewhere = supervisor_socket(dir.file("elsewhere.sock"));
    REQUIRE(elsewhere >= 0);
    Child named = spawn_activated({elsewhere}, "srv", [&]() -> std::string {
        auto s = ipc::Ipc(config).listen("srv");
        if (!s) return std::string("listen ") + errc_name(s.error().code);
        return s->path();
    });
    CHECK(named.result(5000) == dir.file("elsewhere.sock"));
    ::close(via_link);
    ::close(elsewhere);
}

TEST_CASE("activation: fds meant for another process, or a named fd that is not a listener, are refused, never bound over") {
    Watchdog wd;
    TempDir dir;
    const ipc::Config config = test_config(dir.path());
    ipc::Ipc ipc(config);
    const std::string path = ipc.path_of(name_of("srv"));
    const int mine = supervisor_socket(path);
    REQUIRE(mine >= 0);
    const ino_t inode = inode_of(path);
    auto listen_result = [&]() -> std::string {
        auto s = ipc::Ipc(config).listen("srv");
        return s ? std::string("listening") : std::string(errc_name(s.error().code));
    };
    // LISTEN_PID is someone else's (inherited from a parent): the fds are
    // not ours, and systemd's live socket keeps the name.
    CHECK(spawn_activated({mine}, "srv", listen_result, 1).result(5000) == "name_in_use");
    // Named for us, but a bound socket that does not listen, or a datagram
    // socket: a clear error, not a bind next to it.
    const int quiet = supervisor_socket(dir.file("quiet.sock"), SOCK_STREAM, false);
    const int dgram = supervisor_socket(dir.file("dgram.sock"), SOCK_DGRAM, false);
    REQUIRE(quiet >= 0);
    REQUIRE(dgram >= 0);
    CHECK(spawn_activated({quiet}, "srv", listen_result).result(5000) == "socket");
    CHECK(spawn_activated({dgram}, "srv", listen_result).result(5000) == "socket");
    // Malformed variables are ignored (sd_listen_fds would fail): the live
    // socket keeps the name.
    CHECK(spawn_activated({mine}, "srv", [&]() -> std::string {
              ::setenv("LISTEN_FDS", "1x", 1);
              return listen_result();
          }).result(5000) == "name_in_use");
    CHECK(inode_of(path) == inode);
    ::close(mine);
    ::close(quiet);
    ::close(dgram);
}

TEST_CASE("activation: Server::from_fd serves another supervisor's socket; the fd stays the caller's") {
    Watchdog wd;
    TempDir dir;
    const ipc::Config config = test_config(dir.path());
    ipc::Ipc ipc(config);
    const std::string path = ipc.path_of(name_of("handed"));
    const int fd = supervisor_socket(path);
    REQUIRE(fd >= 0);
    Child server = spawn([&]() -> std::string {
        auto s = ipc::Server::from_fd(fd, {}, ipc::Milliseconds::forever(), config);
        if (!s) return std::string("from_fd ") + errc_name(s.error().code);
        std::string out = s->name().str() + " " + (s->path() == path ? "path" : s->path()) + " " + serve_commands(*s);
        return out + (still_listening(fd) ? " open" : " closed");
    });
    auto p = ipc.get("handed");
    REQUIRE(p.has_value());
    CHECK(ping(*p) == "pong");
    REQUIRE(p->send(ipc::Message::text("stop"), ipc::Milliseconds(2000)).has_value());
    CHECK(server.result(5000) == "handed path ok 2 open");
    CHECK(file_exists(path));
    CHECK(still_listening(fd));
    ::close(fd);
}

TEST_CASE("activation: after from_fd the caller may close its fd, even when its number is reused at once") {
    Watchdog wd;
    TempDir dir;
    const ipc::Config config = test_config(dir.path());
    ipc::Ipc ipc(config);
    Child server = spawn([&]() -> std::string {
        const int alpha = supervisor_socket(ipc.path_of(name_of("alpha")));
        auto s = ipc::Server::from_fd(alpha, {}, ipc::Milliseconds::forever(), config);
        if (!s) return std::string("from_fd ") + errc_name(s.error().code);
        ::close(alpha);
        const int beta = supervisor_socket(ipc.path_of(name_of("beta")));  // takes alpha's number
        const std::string reused = beta == alpha ? "reused " : "not reused ";
        return reused + serve_commands(*s);
    });
    auto p = ipc.wait("alpha", ipc::Milliseconds(5000));
    REQUIRE(p.has_value());
    CHECK(ping(*p) == "pong");
    // beta's socket is nobody's server: no handshake comes from it.
    REQUIRE(eventually([&] { return file_exists(ipc.path_of(name_of("beta"))); }));
    CHECK(outcome(ipc.get("beta", ipc::Milliseconds(300))) == "timed_out");
    REQUIRE(p->send(ipc::Message::text("stop"), ipc::Milliseconds(2000)).has_value());
    CHECK(server.result(5000) == "reused ok 2");
}

TEST_CASE("activation: Server::from_fd refuses what it cannot serve, with the reason") {
    TempDir dir;
    auto from = [](int fd, std::string_view name = {}) {
        auto s = ipc::Server::from_fd(fd, name);
        return s ? std::string("ok ") + s->name().str() : std::string(errc_name(s.error().code));
    };
    int p[2];
    REQUIRE(::pipe2(p, O_CLOEXEC) == 0);
    CHECK(from(p[0]) == "socket");
    CHECK(from(-1) == "socket");
    const int quiet = supervisor_socket(dir.file("quiet.sock"), SOCK_STREAM, false);
    const int dgram = supervisor_socket(dir.file("dgram.sock"), SOCK_DGRAM, false);
    CHECK(from(quiet) == "socket");
    CHECK(from(dgram) == "socket");
    // No name given and none in the path, or an invalid one given.
    const int odd = supervisor_socket(dir.file("not.a.name"));
    REQUIRE(odd >= 0);
    CHECK(from(odd) == "invalid_name");
    CHECK(from(odd, "bad name") == "invalid_name");
    CHECK(from(odd, "good") == "ok good");
    const int plain = supervisor_socket(dir.file("control"));
    CHECK(from(plain) == "ok control");
    for (int fd : {p[0], p[1], quiet, dgram, odd, plain}) ::close(fd);
}
