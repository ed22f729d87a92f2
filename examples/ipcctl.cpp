// ipcctl — a small tool for scripts and debugging, built on ipc.hpp.
//
//   ipcctl [--dir DIR] list
//   ipcctl [--dir DIR] exist NAME
//   ipcctl [--dir DIR] wait NAME [--timeout-ms T]
//   ipcctl [--dir DIR] send NAME MEDIA_TYPE (CONTENT | - | --file F) [--wait-ms W]
//   ipcctl [--dir DIR] echo NAME [--max N] [--timeout-ms T]
//
// Exit status: 0 on success, 1 on a runtime failure, 2 on bad arguments.
// Errors are one line on stderr; nothing ever waits without a bound, except
// an `echo` server started without --timeout-ms (it serves until stopped).
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

#include "ipc.hpp"

namespace {

using namespace ipc_hpp;

const char* const usage_main =
    "usage: ipcctl [--dir DIR] <command> [args]\n"
    "\n"
    "commands:\n"
    "  list                                   names of live servers, one per line\n"
    "  exist NAME                             exit 0 if a live server has NAME, 1 if not\n"
    "  wait NAME [--timeout-ms T]             exit 0 once a server has NAME (1 after T ms)\n"
    "  send NAME MEDIA_TYPE (CONTENT | - | --file F) [--wait-ms W]\n"
    "                                         send one message (- : content from stdin),\n"
    "                                         print the reply's content\n"
    "  echo NAME [--max N] [--timeout-ms T]   serve NAME, answering each message with itself\n"
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
    "socket file does not count); prints nothing. Never connects.\n";

const char* const usage_wait =
    "usage: ipcctl [--dir DIR] wait NAME [--timeout-ms T]\n"
    "Waits until a server has NAME and answers the handshake (watching the\n"
    "directory, not polling), then closes properly and exits 0; exits 1 with\n"
    "one line on stderr after T ms (default: no limit).\n";

const char* const usage_send =
    "usage: ipcctl [--dir DIR] send NAME MEDIA_TYPE (CONTENT | - | --file F) [--wait-ms W]\n"
    "Waits up to W ms (default 5000) for server NAME, sends one message, waits up\n"
    "to W ms for one reply, writes the reply's content bytes to stdout and closes\n"
    "the connection properly. The content is CONTENT, or every byte of stdin\n"
    "(-) or of file F (binary-safe: NUL included). Exits non-zero with a\n"
    "one-line error on failure.\n";

const char* const usage_echo =
    "usage: ipcctl [--dir DIR] echo NAME [--max N] [--timeout-ms T]\n"
    "Serves NAME, answering each message with the same message, except `stop`:\n"
    "on a message whose content is `stop` it stops gracefully without answering\n"
    "(as innmind/ipc's fixtures/server.php does). It also stops after N messages\n"
    "(the Nth is answered), after T ms without activity, or on SIGINT/SIGTERM;\n"
    "then prints the number of application messages it received, `stop`\n"
    "included, and exits 0.\n";

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
    for (int i = 0; i < argc; ++i) {
        if (is_help(argv[i])) return std::printf("%s", usage_send) < 0 ? 1 : 0;
        if (std::strcmp(argv[i], "--wait-ms") == 0) {
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
    auto result = server->serve(EchoState{}, [&](const Message& m, Continuation<EchoState> k, EchoState s) {
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
    std::fprintf(stderr, "ipcctl: unknown command %s\n%s", argv[i], usage_main);
    return 2;
}
