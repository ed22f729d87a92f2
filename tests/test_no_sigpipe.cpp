// "No SIGPIPE" (README, Guarantees) on every code path that promises it. A
// client sends to a server that was killed after the handshake: the send
// must fail with closed_by_peer, not kill the client. The client runs in a
// child process, so that a SIGPIPE kills only that child and is reported
// here. Runs in the normal build (MSG_NOSIGNAL) and in the fallbacks build
// (tests/fallbacks/run.sh: IPC_HPP_HAVE_MSG_NOSIGNAL=0).
#include "ipc.hpp"

#include <doctest/doctest.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <string>

#include <sys/wait.h>
#include <unistd.h>

namespace {

// MSG_NOSIGNAL on each send, or (IPC_HPP_HAVE_MSG_NOSIGNAL=0) SIGPIPE
// blocked around each send and a raised one taken back: either way the
// library keeps SIGPIPE away with the default disposition (SIGPIPE kills).
constexpr bool library_keeps_sigpipe_away = true;

void write_byte(int fd) {
    char b = 1;
    while (::write(fd, &b, 1) < 0 && errno == EINTR) {
    }
}

bool read_byte(int fd) {
    char b = 0;
    ssize_t r;
    do {
        r = ::read(fd, &b, 1);
    } while (r < 0 && errno == EINTR);
    return r == 1;
}

}  // namespace

TEST_SUITE("no_sigpipe") {

TEST_CASE("no SIGPIPE: a send to a server killed after the handshake fails with closed_by_peer") {
    char dir_template[] = "/tmp/ipc-nosigpipe-XXXXXX";
    const char* dir = ::mkdtemp(dir_template);
    REQUIRE(dir != nullptr);
    ipc_hpp::Config config;
    config.directory = dir;
    const auto name = ipc_hpp::Name::parse("nosigpipe").value();

    const pid_t server = ::fork();
    REQUIRE(server >= 0);
    if (server == 0) {
        ::alarm(20);
        ipc_hpp::Ipc ipc(config);
        auto s = ipc.listen(name);
        if (s) (void)s->serve(0, [](const ipc_hpp::Message&, ipc_hpp::Continuation<int> k, int n) { return k.continue_(n); });
        ::_exit(0);
    }

    int connected[2];
    int go[2];
    REQUIRE(::pipe(connected) == 0);
    REQUIRE(::pipe(go) == 0);
    const pid_t client = ::fork();
    REQUIRE(client >= 0);
    if (client == 0) {
        ::alarm(20);
        ::signal(SIGPIPE, library_keeps_sigpipe_away ? SIG_DFL : SIG_IGN);
        ipc_hpp::Ipc ipc(config);
        auto p = ipc.wait(name, ipc_hpp::Milliseconds(10000));
        if (!p) ::_exit(2);
        write_byte(connected[1]);
        if (!read_byte(go[0])) ::_exit(3);  // the server is dead now
        auto r = p->send(ipc_hpp::Message::text("hello"), ipc_hpp::Milliseconds(2000));
        ::_exit(!r && r.error() == ipc_hpp::Errc::closed_by_peer ? 0 : 4);
    }
    ::close(connected[1]);
    ::close(go[0]);

    const bool handshake = read_byte(connected[0]);
    ::kill(server, SIGKILL);
    ::waitpid(server, nullptr, 0);
    write_byte(go[1]);
    int status = 0;
    REQUIRE(::waitpid(client, &status, 0) == client);
    ::close(connected[0]);
    ::close(go[1]);

    const bool killed_by_sigpipe = WIFSIGNALED(status) && WTERMSIG(status) == SIGPIPE;
    const bool closed_by_peer = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    INFO("client status: ", (WIFSIGNALED(status) ? "killed by signal " + std::to_string(WTERMSIG(status))
                                                 : "exit " + std::to_string(WEXITSTATUS(status))));
    CHECK(handshake);
    CHECK_FALSE(killed_by_sigpipe);
    CHECK(closed_by_peer);

    ::unlink(ipc_hpp::Ipc(config).path_of(name).c_str());
    ::rmdir(dir);
}

}  // TEST_SUITE
