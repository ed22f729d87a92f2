// ipcctl — a small tool for scripts and debugging, built on ipc.hpp.
//
//   ipcctl [--dir DIR] list
//   ipcctl [--dir DIR] exist NAME
//   ipcctl [--dir DIR] wait NAME [--timeout-ms T]
//   ipcctl [--dir DIR] send NAME MEDIA_TYPE (CONTENT | - | --file F) [--wait-ms W] [--print-type]
//   ipcctl [--dir DIR] echo NAME [--max N] [--timeout-ms T]
//   ipcctl [--dir DIR] serve NAME [--reply-type TYPE] [--command-timeout-ms C]
//                                 [--max N] [--timeout-ms T] -- CMD [ARGS...]
//
// Exit status: 0 on success, 1 on a runtime failure, 2 on bad arguments.
// Errors are one line on stderr; nothing ever waits without a bound, except
// a server (echo, serve) started without --timeout-ms: it serves until stopped.
#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <string>
#include <string_view>

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ipc.hpp"

#ifndef NSIG
#define NSIG 65
#endif

namespace {

using namespace ipc_hpp;

const char* const usage_main =
    "usage: ipcctl [--dir DIR] <command> [args]\n"
    "\n"
    "commands:\n"
    "  list                                   names of live servers, one per line\n"
    "  exist NAME                             exit 0 if a live server has NAME, 1 if not\n"
    "  wait NAME [--timeout-ms T]             exit 0 once a server has NAME (1 after T ms)\n"
    "  send NAME MEDIA_TYPE (CONTENT | - | --file F) [--wait-ms W] [--print-type]\n"
    "                                         send one message (- : content from stdin),\n"
    "                                         print the reply's content\n"
    "  echo NAME [--max N] [--timeout-ms T]   serve NAME, answering each message with itself\n"
    "  serve NAME [options] -- CMD [ARGS...]  serve NAME, answering each message with what\n"
    "                                         CMD prints when given its content on stdin\n"
    "\n"
    "options:\n"
    "  --dir DIR   socket directory (default: $TMPDIR/innmind/ipc, else /tmp/innmind/ipc)\n"
    "  --help      this text; `ipcctl <command> --help` for one command\n";

const char* const usage_list =
    "usage: ipcctl [--dir DIR] list\n"
    "Prints the names of the live servers in the directory, one per line.\n"
    "Socket files left by crashed servers are not listed.\n";

const char* const usage_exist =
    "usage: ipcctl [--dir DIR] exist NAME\n"
    "Exits 0 when a live server has NAME, 1 when none has (a crashed server's\n"
    "socket file does not count); prints nothing. Never connects where\n"
    "/proc/net/unix can be read (elsewhere a server without a lock, such as\n"
    "innmind/ipc's or a systemd socket, is probed with a connect).\n";

const char* const usage_wait =
    "usage: ipcctl [--dir DIR] wait NAME [--timeout-ms T]\n"
    "Waits until a server has NAME and answers the handshake (watching the\n"
    "directory, not polling), then closes properly and exits 0; exits 1 with\n"
    "one line on stderr after T ms (default: no limit).\n";

const char* const usage_send =
    "usage: ipcctl [--dir DIR] send NAME MEDIA_TYPE (CONTENT | - | --file F) [--wait-ms W] [--print-type]\n"
    "Waits up to W ms (default 5000) for server NAME, sends one message, waits up\n"
    "to W ms for one reply, writes the reply's content bytes to stdout and closes\n"
    "the connection properly. The content is CONTENT, or every byte of stdin\n"
    "(-) or of file F (binary-safe: NUL included). With --print-type, the reply's\n"
    "media type and a newline come before its content. Exits non-zero with a\n"
    "one-line error on failure.\n";

const char* const usage_echo =
    "usage: ipcctl [--dir DIR] echo NAME [--max N] [--timeout-ms T]\n"
    "Serves NAME, answering each message with the same message, except `stop`:\n"
    "on a message whose content is `stop` it stops gracefully without answering\n"
    "(as innmind/ipc's fixtures/server.php does). It also stops after N messages\n"
    "(the Nth is answered), after T ms without activity, or on SIGINT/SIGTERM;\n"
    "then prints the number of application messages it received, `stop`\n"
    "included, and exits 0.\n";

const char* const usage_serve =
    "usage: ipcctl [--dir DIR] serve NAME [--reply-type TYPE] [--command-timeout-ms C]\n"
    "                                     [--max N] [--timeout-ms T] -- CMD [ARGS...]\n"
    "Serves NAME, running CMD once per message (like inetd, or socat's EXEC):\n"
    "  - the message's content is CMD's stdin (binary-safe);\n"
    "  - its environment has IPC_NAME (NAME), IPC_MEDIA_TYPE (the message's\n"
    "    canonical media type), IPC_PEER_PID, IPC_PEER_UID and IPC_PEER_GID (the\n"
    "    sender's, from SO_PEERCRED; unset where the system cannot tell);\n"
    "  - what it writes to stdout is the reply, with media type TYPE (default:\n"
    "    the message's); its stderr is ipcctl's.\n"
    "CMD runs in its own process group, killed when it is done: nothing it\n"
    "starts outlives the message (unless it calls setsid). It inherits no fd\n"
    "but 0, 1 and 2, and no LISTEN_* variable.\n"
    "When CMD exits non-zero, is killed, cannot be run, runs longer than C ms\n"
    "(default 10000, at most 2147483647), prints more than the largest message,\n"
    "or exits leaving its stdout open more than 200 ms (held by something it\n"
    "started), the sender gets no reply: its connection is closed (its wait\n"
    "ends with `connection closed`), ipcctl prints one line on stderr and\n"
    "serves on. Messages are run one at a time, in order of arrival.\n"
    "Stops after N messages (the Nth is answered), after T ms without activity,\n"
    "or on SIGINT/SIGTERM (after the running command); then prints the number\n"
    "of messages it received and exits 0.\n";

int bad_usage(const char* what, const char* usage) {
    std::fprintf(stderr, "ipcctl: %s\n%s", what, usage);
    return 2;
}

int failure(const char* step, const Error& e) {
    std::fprintf(stderr, "ipcctl: %s: %s\n", step, e.message().c_str());
    return 1;
}

// Parses a non-negative decimal integer that fits in an int64.
bool parse_count(const char* s, long long& out) {
    if (s == nullptr || *s == '\0') return false;
    char* end = nullptr;
    errno = 0;
    long long v = std::strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < 0) return false;
    out = v;
    return true;
}

bool is_help(const char* a) { return std::strcmp(a, "--help") == 0 || std::strcmp(a, "-h") == 0; }

// Every byte of f (binary-safe), or false with errno.
bool read_all(std::FILE* f, std::string& out) {
    char buf[65536];
    for (;;) {
        const std::size_t n = std::fread(buf, 1, sizeof buf, f);
        out.append(buf, n);
        if (n < sizeof buf) return std::ferror(f) == 0;
    }
}

// The one NAME argument of exist and wait, with --timeout-ms for wait
// (timeout_ms given). -1 when they are there, else the exit code: 0 after
// --help, 2 on bad arguments.
int one_name(int argc, char** argv, const char* usage, const char*& name, long long* timeout_ms) {
    for (int i = 0; i < argc; ++i) {
        if (is_help(argv[i])) return std::printf("%s", usage) < 0 ? 1 : 0;
        if (timeout_ms != nullptr && std::strcmp(argv[i], "--timeout-ms") == 0) {
            if (i + 1 >= argc || !parse_count(argv[i + 1], *timeout_ms)) return bad_usage("--timeout-ms needs a number of milliseconds", usage);
            ++i;
        } else if (argv[i][0] == '-' && argv[i][1] != '\0') {
            std::fprintf(stderr, "ipcctl: unknown option %s\n%s", argv[i], usage);
            return 2;
        } else if (name == nullptr) {
            name = argv[i];
        } else {
            return bad_usage("too many arguments", usage);
        }
    }
    if (name == nullptr) return bad_usage("needs NAME", usage);
    if (!Name::valid(name)) return bad_usage("NAME must match ^[a-zA-Z0-9_-]+$", usage);
    return -1;
}

int cmd_exist(const Ipc& ipc, int argc, char** argv) {
    const char* name = nullptr;
    if (int rc = one_name(argc, argv, usage_exist, name, nullptr); rc >= 0) return rc;
    return ipc.exist(name) ? 0 : 1;
}

int cmd_wait(const Ipc& ipc, int argc, char** argv) {
    const char* name = nullptr;
    long long timeout_ms = -1;
    if (int rc = one_name(argc, argv, usage_wait, name, &timeout_ms); rc >= 0) return rc;
    auto process = ipc.wait(name, timeout_ms >= 0 ? Milliseconds(timeout_ms) : Milliseconds::forever());
    if (!process) return failure(process.error() == Errc::timed_out ? "no server with that name in time" : "wait", process.error());
    auto closed = process->close();
    if (!closed) return failure("close", closed.error());
    return 0;
}

int cmd_list(const Ipc& ipc, int argc, char** argv) {
    for (int i = 0; i < argc; ++i) {
        if (is_help(argv[i])) return std::printf("%s", usage_list) < 0 ? 1 : 0;
        return bad_usage("list takes no arguments", usage_list);
    }
    auto names = ipc.processes();
    if (!names) return failure("list", names.error());
    for (const auto& n : names.value()) std::printf("%s\n", n.str().c_str());
    return 0;
}

int cmd_send(const Ipc& ipc, int argc, char** argv) {
    const char* positional[3] = {nullptr, nullptr, nullptr};
    int count = 0;
    long long wait_ms = 5000;
    const char* file = nullptr;
    bool print_type = false;
    for (int i = 0; i < argc; ++i) {
        if (is_help(argv[i])) return std::printf("%s", usage_send) < 0 ? 1 : 0;
        if (std::strcmp(argv[i], "--print-type") == 0) {
            print_type = true;
        } else if (std::strcmp(argv[i], "--wait-ms") == 0) {
            if (i + 1 >= argc || !parse_count(argv[i + 1], wait_ms)) return bad_usage("--wait-ms needs a number of milliseconds", usage_send);
            ++i;
        } else if (std::strcmp(argv[i], "--file") == 0) {
            if (i + 1 >= argc || argv[i + 1][0] == '\0' || file != nullptr) return bad_usage("--file needs one file", usage_send);
            file = argv[++i];
        } else if (count < 3) {
            positional[count++] = argv[i];
        } else {
            return bad_usage("too many arguments", usage_send);
        }
    }
    if (count != (file != nullptr ? 2 : 3))
        return bad_usage(file != nullptr ? "send --file F needs NAME and MEDIA_TYPE" : "send needs NAME, MEDIA_TYPE and CONTENT", usage_send);
    auto name = Name::parse(positional[0]);
    if (!name) return bad_usage("NAME must match ^[a-zA-Z0-9_-]+$", usage_send);
    std::string content;
    if (file != nullptr || std::strcmp(positional[2], "-") == 0) {
        std::FILE* f = file != nullptr ? std::fopen(file, "rb") : stdin;
        if (f == nullptr || !read_all(f, content)) {
            std::fprintf(stderr, "ipcctl: reading %s: %s\n", file != nullptr ? file : "stdin", std::strerror(errno));
            if (f != nullptr && f != stdin) std::fclose(f);
            return 1;
        }
        if (f != stdin) std::fclose(f);
    } else {
        content = positional[2];
    }
    auto message = Message::make(positional[1], content);
    if (!message) return failure("send", message.error());

    auto process = ipc.wait(name.value(), Milliseconds(wait_ms));
    if (!process) return failure(process.error() == Errc::timed_out ? "no server with that name" : "connect", process.error());
    auto sent = process->send(message.value(), Milliseconds(wait_ms));
    if (!sent) return failure("send", sent.error());
    auto reply = process->wait(Milliseconds(wait_ms));
    if (!reply) return failure("waiting for the reply", reply.error());
    const std::string& answer = reply->content();
    if (print_type) std::printf("%s\n", reply->media_type().str().c_str());
    if (!answer.empty() && std::fwrite(answer.data(), 1, answer.size(), stdout) != answer.size()) {
        std::fprintf(stderr, "ipcctl: writing the reply: %s\n", std::strerror(errno));
        return 1;
    }
    std::fflush(stdout);
    auto closed = process->close(Milliseconds(wait_ms));
    if (!closed) return failure("close", closed.error());
    return 0;
}

struct EchoState {
    long long received = 0;
};

int cmd_echo(const Ipc& ipc, int argc, char** argv) {
    const char* name_arg = nullptr;
    long long max = -1;
    long long timeout_ms = -1;
    for (int i = 0; i < argc; ++i) {
        if (is_help(argv[i])) return std::printf("%s", usage_echo) < 0 ? 1 : 0;
        if (std::strcmp(argv[i], "--max") == 0) {
            if (i + 1 >= argc || !parse_count(argv[i + 1], max) || max == 0) return bad_usage("--max needs a positive number", usage_echo);
            ++i;
        } else if (std::strcmp(argv[i], "--timeout-ms") == 0) {
            if (i + 1 >= argc || !parse_count(argv[i + 1], timeout_ms)) return bad_usage("--timeout-ms needs a number of milliseconds", usage_echo);
            ++i;
        } else if (name_arg == nullptr) {
            name_arg = argv[i];
        } else {
            return bad_usage("too many arguments", usage_echo);
        }
    }
    if (name_arg == nullptr) return bad_usage("echo needs NAME", usage_echo);
    auto name = Name::parse(name_arg);
    if (!name) return failure("echo", name.error());
    auto server = ipc.listen(name.value(), timeout_ms >= 0 ? Milliseconds(timeout_ms) : Milliseconds::forever());
    if (!server) return failure("listen", server.error());
    server->handle_signals();
    StopHandle stop = server->stop_handle();
    auto result = server->serve(EchoState{}, [&](const Message& m, auto k, EchoState s) {
        ++s.received;
        // `stop` is not answered: the reference's fixtures/client.php relies
        // on it (its wait after `stop` ends with the connection closed).
        if (m.content() == "stop") return k.stop(s);
        // The Nth message is answered first; the stop takes effect after its
        // response is queued, so the sender gets its echo before the close.
        if (max > 0 && s.received >= max) stop.request();
        return k.respond(s, m);
    });
    if (!result) return failure("serve", result.error());
    std::printf("%lld\n", result->received);
    return 0;
}

// ---------------------------------------------------------------------------
// serve: one command per message
// ---------------------------------------------------------------------------

std::int64_t monotonic_ms() {
    struct timespec ts {};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<std::int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

// What running a command for one message gave: its stdout, or why not.
struct CommandResult {
    bool ok = false;
    std::string output;
    std::string why;
};

struct CommandSpec {
    char** argv = nullptr;  // CMD ARGS..., null-terminated
    const char* name = nullptr;
    long long timeout_ms = 10000;
    std::size_t max_output = 0;
};

void set_env(const char* var, long long value, bool known) {
    if (known) ::setenv(var, std::to_string(value).c_str(), 1);
    else ::unsetenv(var);
}

// Every fd but 0, 1 and 2 closes on exec: the command inherits nothing of
// ipcctl's (a supervisor's listening sockets included).
void close_on_exec_above_stderr() {
    DIR* d = ::opendir("/proc/self/fd");
    if (d == nullptr) {
        for (int fd = 3; fd < 1024; ++fd) (void)::fcntl(fd, F_SETFD, FD_CLOEXEC);
        return;
    }
    const int own = ::dirfd(d);
    while (struct dirent* e = ::readdir(d)) {
        const int fd = std::atoi(e->d_name);
        if (fd > 2 && fd != own) (void)::fcntl(fd, F_SETFD, FD_CLOEXEC);
    }
    ::closedir(d);
}

// In the child, between fork and exec (ipcctl is single-threaded, so
// setenv and opendir are safe here): stdin and stdout are the pipes, the
// environment describes the message, nothing else is inherited, and
// signals are as a fresh process expects them. The parent blocked every
// signal around fork(): ipcctl's handlers are reset before they are
// unblocked, so a signal meant for ipcctl cannot run one here.
[[noreturn]] void exec_command(const CommandSpec& spec, const Message& m, const Peer& peer, int in, int out, int report) {
    ::setpgid(0, 0);  // its own group: what it starts is killed with it
    if (::dup2(in, 0) < 0 || ::dup2(out, 1) < 0) ::_exit(127);
    close_on_exec_above_stderr();
    for (int sig = 1; sig < NSIG; ++sig) (void)::signal(sig, SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    // Socket activation's variables were for ipcctl (sd_listen_fds(3)).
    for (const char* var : {"LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"}) ::unsetenv(var);
    ::setenv("IPC_NAME", spec.name, 1);
    ::setenv("IPC_MEDIA_TYPE", m.media_type().str().c_str(), 1);
    set_env("IPC_PEER_PID", peer.pid, peer.pid > 0);
    set_env("IPC_PEER_UID", static_cast<long long>(peer.uid), peer.uid != static_cast<uid_t>(-1));
    set_env("IPC_PEER_GID", static_cast<long long>(peer.gid), peer.gid != static_cast<gid_t>(-1));
    ::execvp(spec.argv[0], spec.argv);
    const int err = errno;
    (void)!::write(report, &err, sizeof err);  // report is close-on-exec: nothing arrives when exec works
    ::_exit(127);
}

std::string exit_reason(int status) {
    if (WIFSIGNALED(status)) return "killed by signal " + std::to_string(WTERMSIG(status)) + " (" + strsignal(WTERMSIG(status)) + ")";
    return "exited with status " + std::to_string(WEXITSTATUS(status));
}

void close_all(std::initializer_list<int> fds) {
    for (int fd : fds) ::close(fd);
}

// How long output may still come once the command has exited: what it
// started in the background and left holding its stdout gets this long.
constexpr std::int64_t exit_grace_ms = 200;

// Feeds the content to CMD's stdin while reading its stdout (either may be
// larger than a pipe holds), until its stdout ends and it has exited, or
// the deadline passes. Its process group is killed at the end either way:
// nothing it started outlives the message (setsid() escapes this).
CommandResult run_command(const CommandSpec& spec, const Message& m, const Peer& peer) {
    CommandResult result;
    int in[2], out[2], report[2];
    if (::pipe2(in, O_CLOEXEC) != 0) return {false, {}, std::string("pipe: ") + std::strerror(errno)};
    if (::pipe2(out, O_CLOEXEC) != 0) {
        close_all({in[0], in[1]});
        return {false, {}, std::string("pipe: ") + std::strerror(errno)};
    }
    if (::pipe2(report, O_CLOEXEC) != 0) {
        close_all({in[0], in[1], out[0], out[1]});
        return {false, {}, std::string("pipe: ") + std::strerror(errno)};
    }
    std::fflush(nullptr);
    sigset_t all, before;
    sigfillset(&all);
    ::sigprocmask(SIG_SETMASK, &all, &before);
    const pid_t pid = ::fork();
    if (pid == 0) exec_command(spec, m, peer, in[0], out[1], report[1]);
    const int fork_errno = errno;
    ::sigprocmask(SIG_SETMASK, &before, nullptr);
    close_all({in[0], out[1], report[1]});
    if (pid < 0) {
        close_all({in[1], out[0], report[0]});
        return {false, {}, std::string("fork: ") + std::strerror(fork_errno)};
    }
    ::setpgid(pid, pid);  // also here, so that kill(-pid) works whoever runs first
    std::int64_t deadline = monotonic_ms() + spec.timeout_ms;
    const std::string& content = m.content();
    std::size_t written = 0;
    int to_child = in[1], from_child = out[0];
    (void)::fcntl(to_child, F_SETFL, O_NONBLOCK);
    auto end_input = [&] {
        ::close(to_child);
        to_child = -1;
    };
    if (content.empty()) end_input();
    bool exited = false, timed_out = false, too_long = false;
    int status = 0, wait_errno = 0;
    while (from_child >= 0 || !exited) {
        if (!exited) {
            const pid_t r = ::waitpid(pid, &status, WNOHANG);
            if (r == pid) {
                exited = true;
                deadline = std::min(deadline, monotonic_ms() + exit_grace_ms);
            } else if (r < 0 && errno != EINTR) {
                wait_errno = errno;
                break;
            }
        }
        const std::int64_t left = deadline - monotonic_ms();
        if (left <= 0) {
            timed_out = true;
            break;
        }
        // Whether it has exited is checked every 20 ms (no SIGCHLD handler:
        // the library's signal handling stays the only one).
        struct pollfd fds[2] = {{from_child, POLLIN, 0}, {to_child, POLLOUT, 0}};
        const int nfds = from_child < 0 ? 0 : (to_child >= 0 ? 2 : 1);
        if (::poll(fds, static_cast<nfds_t>(nfds), static_cast<int>(exited ? left : std::min<std::int64_t>(left, 20))) < 0) continue;
        if (to_child >= 0 && fds[1].revents != 0) {
            const ssize_t n = ::write(to_child, content.data() + written, content.size() - written);
            if (n > 0) written += static_cast<std::size_t>(n);
            // Done, or it stopped reading (EPIPE): either way, end of input.
            if (written == content.size() || (n < 0 && errno != EAGAIN && errno != EINTR)) end_input();
        }
        if (from_child >= 0 && fds[0].revents != 0) {
            char buf[65536];
            const ssize_t n = ::read(from_child, buf, sizeof buf);
            if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN)) {
                ::close(from_child);
                from_child = -1;
            } else if (n > 0) {
                result.output.append(buf, static_cast<std::size_t>(n));
                if (result.output.size() > spec.max_output) {
                    too_long = true;
                    break;
                }
            }
        }
    }
    const bool held_open = exited && from_child >= 0;
    if (to_child >= 0) ::close(to_child);
    if (from_child >= 0) ::close(from_child);
    ::kill(-pid, SIGKILL);  // the group: a timeout, or what it left behind
    if (!exited && wait_errno == 0) {
        while (::waitpid(pid, &status, 0) < 0) {
            if (errno != EINTR) {
                wait_errno = errno;
                break;
            }
        }
    }
    int exec_errno = 0;
    const bool exec_failed = ::read(report[0], &exec_errno, sizeof exec_errno) == static_cast<ssize_t>(sizeof exec_errno);
    ::close(report[0]);
    if (exec_failed) return {false, {}, std::string("cannot run it: ") + std::strerror(exec_errno)};
    if (wait_errno != 0) return {false, {}, std::string("lost track of it: waitpid: ") + std::strerror(wait_errno)};
    if (too_long) return {false, {}, "its output is over " + std::to_string(spec.max_output) + " bytes; killed"};
    if (held_open) return {false, {}, exit_reason(status) + ", but its stdout stayed open (held by a process it started); killed"};
    if (timed_out) return {false, {}, "timed out after " + std::to_string(spec.timeout_ms) + " ms; killed"};
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) return {false, {}, exit_reason(status)};
    result.ok = true;
    return result;
}

int cmd_serve(const Ipc& ipc, int argc, char** argv) {
    const char* name_arg = nullptr;
    const char* reply_type_arg = nullptr;
    long long max = -1;
    long long timeout_ms = -1;
    CommandSpec spec;
    int i = 0;
    for (; i < argc; ++i) {
        if (std::strcmp(argv[i], "--") == 0) break;
        if (is_help(argv[i])) return std::printf("%s", usage_serve) < 0 ? 1 : 0;
        const bool has_value = i + 1 < argc;
        if (std::strcmp(argv[i], "--max") == 0) {
            if (!has_value || !parse_count(argv[i + 1], max) || max == 0) return bad_usage("--max needs a positive number", usage_serve);
            ++i;
        } else if (std::strcmp(argv[i], "--timeout-ms") == 0) {
            if (!has_value || !parse_count(argv[i + 1], timeout_ms)) return bad_usage("--timeout-ms needs a number of milliseconds", usage_serve);
            ++i;
        } else if (std::strcmp(argv[i], "--command-timeout-ms") == 0) {
            if (!has_value || !parse_count(argv[i + 1], spec.timeout_ms) || spec.timeout_ms == 0 || spec.timeout_ms > 0x7FFFFFFF)
                return bad_usage("--command-timeout-ms needs a number of milliseconds from 1 to 2147483647", usage_serve);
            ++i;
        } else if (std::strcmp(argv[i], "--reply-type") == 0) {
            if (!has_value) return bad_usage("--reply-type needs a media type", usage_serve);
            reply_type_arg = argv[++i];
        } else if (argv[i][0] == '-' && argv[i][1] != '\0') {
            std::fprintf(stderr, "ipcctl: unknown option %s\n%s", argv[i], usage_serve);
            return 2;
        } else if (name_arg == nullptr) {
            name_arg = argv[i];
        } else {
            return bad_usage("too many arguments before --", usage_serve);
        }
    }
    if (name_arg == nullptr) return bad_usage("serve needs NAME", usage_serve);
    if (i + 1 >= argc) return bad_usage("serve needs -- CMD [ARGS...]", usage_serve);
    auto name = Name::parse(name_arg);
    if (!name) return bad_usage("NAME must match ^[a-zA-Z0-9_-]+$", usage_serve);
    auto reply_type = MediaType::parse(reply_type_arg != nullptr ? reply_type_arg : "text/plain");
    if (!reply_type) return bad_usage("--reply-type is not a valid media type", usage_serve);
    spec.argv = argv + i + 1;  // argv[argc] is null
    spec.name = name_arg;
    // Commands take their time: each message's ack leaves before its command
    // runs, so that a sender's send() does not time out meanwhile.
    Config config = ipc.config();
    config.flush_ack_before_reducer = true;
    spec.max_output = config.max_message_size;
    auto server = Ipc(config).listen(name.value(), timeout_ms >= 0 ? Milliseconds(timeout_ms) : Milliseconds::forever());
    if (!server) return failure("listen", server.error());
    server->handle_signals();
    std::signal(SIGPIPE, SIG_IGN);  // a command that exits without reading its stdin
    std::signal(SIGCHLD, SIG_DFL);  // inherited as ignored, children would reap themselves
    StopHandle stop = server->stop_handle();
    auto result = server->serve(0LL, [&](const Message& m, auto k, long long received, const Peer& peer) {
        ++received;
        CommandResult r = run_command(spec, m, peer);
        if (!r.ok) {
            std::fprintf(stderr, "ipcctl: serve %s: %s: %s; no reply\n", name_arg, spec.argv[0], r.why.c_str());
            return k.close(received);
        }
        if (max > 0 && received >= max) stop.request();
        return k.respond(received, Message(reply_type_arg != nullptr ? reply_type.value() : m.media_type(), std::move(r.output)));
    });
    if (!result) return failure("serve", result.error());
    std::printf("%lld\n", result.value());
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    std::string dir;
    int i = 1;
    for (; i < argc; ++i) {
        if (std::strcmp(argv[i], "--dir") == 0) {
            if (i + 1 >= argc || argv[i + 1][0] == '\0') return bad_usage("--dir needs a directory", usage_main);
            dir = argv[++i];
        } else if (is_help(argv[i])) {
            std::printf("%s", usage_main);
            return 0;
        } else if (argv[i][0] == '-') {
            std::fprintf(stderr, "ipcctl: unknown option %s\n%s", argv[i], usage_main);
            return 2;
        } else {
            break;
        }
    }
    if (i >= argc) return bad_usage("missing command", usage_main);
    Config config;
    config.directory = dir;
    Ipc ipc(config);
    std::string_view command = argv[i];
    int rest = argc - i - 1;
    char** args = argv + i + 1;
    if (command == "list") return cmd_list(ipc, rest, args);
    if (command == "exist") return cmd_exist(ipc, rest, args);
    if (command == "wait") return cmd_wait(ipc, rest, args);
    if (command == "send") return cmd_send(ipc, rest, args);
    if (command == "echo") return cmd_echo(ipc, rest, args);
    if (command == "serve") return cmd_serve(ipc, rest, args);
    std::fprintf(stderr, "ipcctl: unknown command %s\n%s", argv[i], usage_main);
    return 2;
}
