// The platform layer, function by function: header section 9 (the
// /proc/net/unix parser, the sock_diag listing, the paths a name owns, sun_path, the socket
// directory, Deadline) and section 7's Buffer, plus what section 8's
// Milliseconds does at its extremes that tests/test_client.cpp does not
// already pin. Everything here runs in this process, in its own TempDir;
// what needs the kernel (the /proc/net/unix lines) is made by the test.
#include "support/basics.hpp"
#include "support/temp.hpp"

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <ratio>
#include <string>
#include <string_view>
#include <vector>

#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <unistd.h>

using namespace ipc_test;

namespace {

namespace d = ipc::detail;

// The whole of a file, read as listening_paths() reads /proc/net/unix
// (but in smaller chunks); false when it cannot be read.
bool read_whole(const char* path, std::string& text) {
    const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    d::Fd owned(fd);
    char chunk[4096];
    for (;;) {
        const ssize_t r = ::read(fd, chunk, sizeof chunk);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return false;
        if (r == 0) return true;
        text.append(chunk, static_cast<std::size_t>(r));
    }
}

// A socket of `type` bound at exactly these sun_path bytes: a leading NUL
// makes the name abstract (no NUL added), a path that fills sun_path gets
// no NUL either (Linux takes it); listening when asked.
d::Fd bound_socket(const std::string& where, bool listening, int type = SOCK_STREAM) {
    struct sockaddr_un addr {};
    REQUIRE(where.size() <= sizeof addr.sun_path);
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, where.data(), where.size());
    const bool no_nul = (!where.empty() && where[0] == '\0') || where.size() == sizeof addr.sun_path;
    const std::size_t len = offsetof(struct sockaddr_un, sun_path) + where.size() + (no_nul ? 0 : 1);
    d::Fd fd(::socket(AF_UNIX, type | SOCK_CLOEXEC, 0));
    REQUIRE(fd.valid());
    REQUIRE(::bind(fd.get(), reinterpret_cast<const struct sockaddr*>(&addr), static_cast<socklen_t>(len)) == 0);
    if (listening) REQUIRE(::listen(fd.get(), 4) == 0);
    return fd;
}

std::size_t count_of(const std::vector<std::string>& v, const std::string& s) {
    return static_cast<std::size_t>(std::count(v.begin(), v.end(), s));
}

// The lines of `text` that end with " " + path (one per socket the kernel
// lists there).
std::vector<std::string> lines_ending_with(const std::string& text, const std::string& path) {
    std::vector<std::string> found;
    const std::string tail = " " + path;
    std::size_t b = 0;
    while (b < text.size()) {
        std::size_t e = text.find('\n', b);
        if (e == std::string::npos) e = text.size();
        const std::string line = text.substr(b, e - b);
        if (line.size() >= tail.size() && line.compare(line.size() - tail.size(), tail.size(), tail) == 0) found.push_back(line);
        b = e + 1;
    }
    return found;
}

// Splits a /proc/net/unix line into its space-separated fields (the path's
// spaces split it too; only the first seven fields are looked at).
std::vector<std::string> fields_of(const std::string& line) {
    std::vector<std::string> out;
    std::size_t i = 0;
    while (i < line.size()) {
        while (i < line.size() && line[i] == ' ') ++i;
        std::size_t j = i;
        while (j < line.size() && line[j] != ' ') ++j;
        if (j > i) out.push_back(line.substr(i, j - i));
        i = j;
    }
    return out;
}

std::string real_path(const std::string& p) {
    char buf[PATH_MAX];
    REQUIRE(::realpath(p.c_str(), buf) != nullptr);
    return buf;
}

// Sets or unsets an environment variable for one scope, and puts back what
// was there.
class EnvGuard {
public:
    explicit EnvGuard(const char* var) : var_(var) {
        const char* v = std::getenv(var);
        had_ = v != nullptr;
        if (had_) old_ = v;
    }
    ~EnvGuard() {
        if (had_) ::setenv(var_, old_.c_str(), 1);
        else ::unsetenv(var_);
    }
    EnvGuard(const EnvGuard&) = delete;
    EnvGuard& operator=(const EnvGuard&) = delete;
    void set(const char* value) const { REQUIRE(::setenv(var_, value, 1) == 0); }
    void unset() const { REQUIRE(::unsetenv(var_) == 0); }

private:
    const char* var_;
    bool had_ = false;
    std::string old_;
};

// Changes the working directory for one scope.
class CwdGuard {
public:
    explicit CwdGuard(const std::string& to) {
        char buf[PATH_MAX];
        REQUIRE(::getcwd(buf, sizeof buf) != nullptr);
        old_ = buf;
        REQUIRE(::chdir(to.c_str()) == 0);
    }
    ~CwdGuard() { (void)::chdir(old_.c_str()); }
    CwdGuard(const CwdGuard&) = delete;
    CwdGuard& operator=(const CwdGuard&) = delete;

private:
    std::string old_;
};

std::string view_of(const d::Buffer& b) { return std::string(b.data() == nullptr ? "" : b.data(), b.size()); }

// An emptied buffer that gave its memory back: none is held, and the next
// append (of s) starts again at 256 bytes.
void given_back_then_regrows(d::Buffer& b, const std::string& s) {
    CHECK(b.capacity() == 0);
    CHECK(b.data() == nullptr);
    b.append(s.data(), s.size());
    CHECK(b.capacity() == 256);
    CHECK(view_of(b) == s);
}

// Lines copied from `cat /proc/net/unix` on the machine these tests were
// written on (Linux 6.18, kptr_restrict=0, 2026-12-03), from two captures
// of sockets made for the purpose, in the kernel's layout
// "%pK: %08X %08X %08X %04X %02X %5lu[ path]" (net/unix/af_unix.c):
// unbound and connected sockets, a listener and the connection it accepted
// (same path, Flags 0, St 03), paths with runs of spaces and a leading
// space, a relative path that starts with two spaces (bound from its
// directory, listed as bound), a bound but not listening stream socket and a datagram one, a
// SOCK_SEQPACKET listener (Type 0005), abstract names ('@' first, each NUL
// an '@'; "@a921b" is an autobound one), a 107-byte path, and a socket
// bound at "/tmp/ipc-t13/\n0000000000000000: 00000002 00000000 00010000
// 0001 01 1 /x/spoof.sock" (the newline printed as is: two lines).
constexpr std::string_view captured =
    "Num       RefCount Protocol Flags    Type St Inode Path\n"
    "0000000076eeb4bb: 00000003 00000000 00000000 0001 03 419291\n"
    "00000000b630f6d7: 00000003 00000000 00000000 0001 03 419292 /tmp/ipchpp-qPyeUx/.hoard.b9yj3q/s\n"
    "00000000772b7ec6: 00000002 00000000 00010000 0001 01 458618 /tmp/ipc-t13/srv.sock\n"
    "0000000062892e5f: 00000002 00000000 00010000 0001 01 458621 /tmp/ipc-t13/two  spaces .sock\n"
    "00000000984ed58f: 00000002 00000000 00000000 0001 01 458622 /tmp/ipc-t13/bound.sock\n"
    "00000000fb7bdd5f: 00000002 00000000 00010000 0005 01 458623 /tmp/ipc-t13/seq.sock\n"
    "00000000c68ae1e9: 00000002 00000000 00010000 0001 01 458625 /tmp/ipc-t13/\n"
    "0000000000000000: 00000002 00000000 00010000 0001 01 1 /x/spoof.sock\n"
    "000000001d955355: 00000003 00000000 00000000 0001 03 458620 /tmp/ipc-t13/srv.sock\n"
    "000000000217c286: 00000002 00000000 00010000 0001 01 458624 @ipc-t13 abstract\n"
    "00000000b7049f6e: 00000002 00000000 00010000 0001 01 424903 @t13abs@nul\n"
    "00000000bf8d19b0: 00000002 00000000 00010000 0001 01 424910 @a921b\n"
    "000000000e119eba: 00000002 00000000 00000000 0002 01 424907 /tmp/t13exp/dJDp4vh/dgram.sock\n"
    "00000000d3b4082f: 00000002 00000000 00010000 0001 01 424908 /tmp/t13exp/dJDp4vh/ sp\n"
    "0000000033da1b1c: 00000002 00000000 00010000 0001 01 949978   two leading.sock\n"
    "00000000c758c069: 00000002 00000000 00010000 0001 01 424904 "
    "/tmp/t13exp/dJDp4vh/LLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLL\n";

}  // namespace

TEST_SUITE("detail") {

// ---- /proc/net/unix ---------------------------------------------------------

TEST_CASE("detail: parse_listening_paths on lines captured from this kernel") {
    std::vector<std::string> out;
    d::parse_listening_paths(captured, out);
    const std::string long_path = "/tmp/t13exp/dJDp4vh/" + std::string(87, 'L');
    REQUIRE(long_path.size() == 107);
    // In file order; only Flags 0x10000 counts: not the accepted connection
    // at srv.sock, nor bound.sock or dgram.sock, nor the unbound sockets.
    // The whole rest of the line is the path: its spaces, the one after
    // "/" in "/ sp", and the two a relative path starts with, are kept.
    // Abstract names come back as the kernel writes them ("@..."), which
    // no socket_path() can equal. The Type is not looked at: the
    // SOCK_SEQPACKET listener is listed. The newline path is two entries,
    // neither of them the path: its first line up to the newline, and the
    // tail, which reads as a line of its own (see the next test but one).
    const std::vector<std::string> expected = {
        "/tmp/ipc-t13/srv.sock",
        "/tmp/ipc-t13/two  spaces .sock",
        "/tmp/ipc-t13/seq.sock",
        "/tmp/ipc-t13/",
        "/x/spoof.sock",
        "@ipc-t13 abstract",
        "@t13abs@nul",
        "@a921b",
        "/tmp/t13exp/dJDp4vh/ sp",
        "  two leading.sock",
        long_path,
    };
    CHECK(out == expected);
    CHECK(count_of(out, "/tmp/ipc-t13/srv.sock") == 1);
    CHECK(count_of(out, "/tmp/ipc-t13/bound.sock") == 0);
}

TEST_CASE("detail: parse_listening_paths: the header, the last line, short lines, padded inodes") {
    const std::string header = "Num       RefCount Protocol Flags    Type St Inode Path\n";
    const std::string listener = "00000000772b7ec6: 00000002 00000000 00010000 0001 01 458618 /tmp/a.sock";
    std::vector<std::string> out;

    d::parse_listening_paths("", out);
    CHECK(out.empty());
    d::parse_listening_paths(header, out);
    CHECK(out.empty());
    // The first line is always taken for the header, whatever it holds.
    d::parse_listening_paths(listener + "\n", out);
    CHECK(out.empty());
    d::parse_listening_paths(listener, out);
    CHECK(out.empty());

    // A last line without its newline is read all the same.
    d::parse_listening_paths(header + listener, out);
    CHECK(out == std::vector<std::string>{"/tmp/a.sock"});
    // It appends: what `out` held stays (listening_paths() clears it first).
    d::parse_listening_paths(header + listener + "\n", out);
    CHECK(out == std::vector<std::string>{"/tmp/a.sock", "/tmp/a.sock"});

    out.clear();
    // %5lu pads an inode under five digits with spaces: still seven
    // fields, then one space, then the path.
    d::parse_listening_paths(header + "0000000000000000: 00000002 00000000 00010000 0001 01   123 /tmp/p\n", out);
    CHECK(out == std::vector<std::string>{"/tmp/p"});
    out.clear();
    // Seven fields and no path (an unbound listener cannot exist, but the
    // line would be skipped); six fields; a space after the inode and an
    // empty path: nothing, nothing, one empty path.
    d::parse_listening_paths(header + "0000000000000000: 00000002 00000000 00010000 0001 01 458618\n" +
                                 "0000000000000000: 00000002 00000000 00010000 0001 01\n" +
                                 "0000000000000000: 00000002 00000000 00010000 0001 01 458618 \n",
                             out);
    CHECK(out == std::vector<std::string>{""});
    out.clear();
    // Flags is hexadecimal, and only bit 0x10000 (__SO_ACCEPTCON) is read.
    d::parse_listening_paths(header + "0000000000000000: 00000002 00000000 0001FFFF 0001 01 1 /tmp/all\n" +
                                 "0000000000000000: 00000002 00000000 0000FFFF 0001 01 2 /tmp/none\n" +
                                 "0000000000000000: 00000002 00000000 00110000 0001 01 3 /tmp/high\n",
                             out);
    CHECK(out == std::vector<std::string>{"/tmp/all", "/tmp/high"});
}

TEST_CASE("detail: /proc/net/unix as the kernel writes it for sockets made here") {
    TempDir dir;
    std::string text;
    if (!read_whole("/proc/net/unix", text)) {
        MESSAGE("/proc/net/unix cannot be read here: only the captured lines are checked");
        std::vector<std::string> out{"stale"};
        CHECK_FALSE(d::listening_paths(out));
        CHECK(out.empty());
        return;
    }
    const std::string tag = "ipc_hpp-t13-" + std::to_string(::getpid());

    const std::string spaced = dir.file("two  spaces .sock");
    const std::string leading = dir.file(" leading.sock");
    const std::string bound = dir.file("bound.sock");
    const std::string dgram = dir.file("dgram.sock");
    const std::string served = dir.file("srv.sock");
    const std::string seqpacket = dir.file("seq.sock");
    std::string near_limit = dir.path() + "/";
    near_limit.append(107 - near_limit.size(), 'L');
    std::string full = dir.path() + "/";
    full.append(108 - full.size(), 'M');  // fills sun_path: no room for a NUL
    const std::string abstract = std::string(1, '\0') + tag + " abstract";
    const std::string abstract_nul = std::string(1, '\0') + tag + std::string(1, '\0') + "nul";
    // A path with a newline, made so that its second half reads as a
    // listener at `victim`, where nothing is bound.
    const std::string fake = "\n0: 0 0 10000 1 1 1 ";
    const std::string victim = dir.file("v.sock");
    std::string nl_dir = dir.path() + "/" + fake;
    REQUIRE(::mkdir(nl_dir.c_str(), 0700) == 0);
    for (std::size_t i = 1; i <= dir.path().size(); ++i) {
        if (i == dir.path().size() || dir.path()[i] == '/') REQUIRE(::mkdir((nl_dir + dir.path().substr(0, i)).c_str(), 0700) == 0);
    }
    const std::string newline = nl_dir + victim;
    REQUIRE(newline.size() < sizeof(sockaddr_un::sun_path));

    std::vector<d::Fd> held;
    held.push_back(bound_socket(spaced, true));
    held.push_back(bound_socket(leading, true));
    held.push_back(bound_socket(bound, false));
    held.push_back(bound_socket(dgram, false, SOCK_DGRAM));
    held.push_back(bound_socket(seqpacket, true, SOCK_SEQPACKET));
    held.push_back(bound_socket(near_limit, true));
    held.push_back(bound_socket(full, true));
    held.push_back(bound_socket(abstract, true));
    held.push_back(bound_socket(abstract_nul, true));
    held.push_back(bound_socket(newline, true));
    const d::Fd listener = bound_socket(served, true);
    const std::string relative = "  " + tag + " leading.sock";  // bound from `dir`: listed as written
    {
        CwdGuard cwd(dir.path());
        held.push_back(bound_socket(relative, true));
    }
    // A connection to srv.sock, accepted: the accepted end is listed at
    // srv.sock too, not listening.
    d::Fd client(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    REQUIRE(client.valid());
    struct sockaddr_un addr {};
    const auto len = d::unix_address(served, addr);
    REQUIRE(len.has_value());
    REQUIRE(::connect(client.get(), reinterpret_cast<const struct sockaddr*>(&addr), len.value()) == 0);
    const d::Fd accepted(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
    REQUIRE(accepted.valid());

    text.clear();
    REQUIRE(read_whole("/proc/net/unix", text));

    // The kernel's own lines, as the parser expects them: the listener's
    // Flags 00010000, Type 0001 (stream), St 01; the accepted end's Flags 0,
    // St 03; one space, then the path with its spaces.
    const auto spaced_lines = lines_ending_with(text, spaced);
    REQUIRE(spaced_lines.size() == 1);
    const auto fields = fields_of(spaced_lines[0]);
    REQUIRE(fields.size() >= 8);
    CHECK(fields[3] == "00010000");
    CHECK(fields[4] == "0001");
    CHECK(fields[5] == "01");
    CHECK(spaced_lines[0].find(fields[6] + " " + spaced) != std::string::npos);
    const auto served_lines = lines_ending_with(text, served);
    REQUIRE(served_lines.size() == 2);
    CHECK(fields_of(served_lines[0])[3] != fields_of(served_lines[1])[3]);
    CHECK(lines_ending_with(text, "@" + tag + " abstract").size() == 1);
    CHECK(lines_ending_with(text, "@" + tag + "@nul").size() == 1);
    CHECK(lines_ending_with(text, full).size() == 1);
    CHECK(lines_ending_with(text, dir.path() + "/").size() == 1);  // the newline path, cut at the newline

    std::vector<std::string> out;
    d::parse_listening_paths(text, out);
    CHECK(count_of(out, spaced) == 1);
    CHECK(count_of(out, leading) == 1);
    CHECK(count_of(out, relative) == 1);
    CHECK(count_of(out, served) == 1);  // the listener; not the accepted end
    CHECK(count_of(out, near_limit) == 1);
    CHECK(count_of(out, full) == 1);  // 108 bytes: listed, though unix_address() cannot reach it
    CHECK(count_of(out, "@" + tag + " abstract") == 1);
    CHECK(count_of(out, "@" + tag + "@nul") == 1);
    CHECK(count_of(out, seqpacket) == 1);  // Type is not looked at
    CHECK(count_of(out, bound) == 0);
    CHECK(count_of(out, dgram) == 0);
    // A path with a newline cannot be represented: the kernel prints it as
    // is, so the parser sees the part before the newline as one listener
    // and reads the rest as a line of its own, here a listener at
    // `victim`, where nothing listens. The path itself is never listed.
    CHECK(count_of(out, newline) == 0);
    CHECK(count_of(out, dir.path() + "/") == 1);
    CHECK(count_of(out, victim) == 1);

    // listening_paths() is the same parse of the live file (which other
    // processes change meanwhile, so only our sockets are compared), or
    // false, with `out` emptied, where it is not read.
    std::vector<std::string> live{"stale"};
#if IPC_HPP_HAVE_PROC_NET_UNIX
    REQUIRE(d::listening_paths(live));
    CHECK(count_of(live, "stale") == 0);
    for (const auto& p : {spaced, leading, relative, served, near_limit, full, seqpacket, victim}) CHECK(count_of(live, p) == 1);
    CHECK(count_of(live, "@" + tag + " abstract") == 1);
    CHECK(count_of(live, bound) == 0);
    CHECK(count_of(live, newline) == 0);
#else
    CHECK_FALSE(d::listening_paths(live));
    CHECK(live.empty());
#endif
}

// ---- sock_diag: the files listening sockets are bound to --------------------

TEST_CASE("detail: dev_major and dev_minor decode st_dev as <sys/sysmacros.h> does") {
    for (std::uint64_t dev : {std::uint64_t{0}, std::uint64_t{0x803}, std::uint64_t{0x10302}, std::uint64_t{0x12345678AB},
                              std::uint64_t{0xFFFFFFFFFFFF}, ~std::uint64_t{0}}) {
        CAPTURE(dev);
        CHECK(d::dev_major(dev) == major(static_cast<dev_t>(dev)));
        CHECK(d::dev_minor(dev) == minor(static_cast<dev_t>(dev)));
    }
}

TEST_CASE("detail: listeners() names the file a socket listens on, by device and inode, and no other") {
    TempDir dir;
    const std::string live = dir.file("live.sock"), stale = dir.file("stale.sock"), moved = dir.file("moved.sock");
    struct sockaddr_un addr {};
    const auto bind_at = [&](const std::string& path, bool listen) {
        REQUIRE(d::unix_address(path, addr).has_value());
        const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        REQUIRE(fd >= 0);
        REQUIRE(::bind(fd, reinterpret_cast<const struct sockaddr*>(&addr), d::unix_address(path, addr).value()) == 0);
        if (listen) REQUIRE(::listen(fd, 4) == 0);
        return d::Fd(fd);
    };
    d::Fd a = bind_at(live, true);
    { d::Fd gone = bind_at(stale, true); }  // closed: a stale file
    d::Fd bound = bind_at(dir.file("bound.sock"), false);  // bound, not listening
    d::Fd b = bind_at(dir.file("b.sock"), true);
    REQUIRE(::rename(dir.file("b.sock").c_str(), moved.c_str()) == 0);  // (how an ipc.hpp server puts its socket in place)
    struct stat st_live {}, st_stale {}, st_bound {}, st_moved {};
    REQUIRE(::lstat(live.c_str(), &st_live) == 0);
    REQUIRE(::lstat(stale.c_str(), &st_stale) == 0);
    REQUIRE(::lstat(dir.file("bound.sock").c_str(), &st_bound) == 0);
    REQUIRE(::lstat(moved.c_str(), &st_moved) == 0);
    const d::Listeners l = d::listeners();
#if IPC_HPP_HAVE_SOCK_DIAG
    if (l.source != d::Listeners::Source::sock_diag) {
        // qemu-user (the cross builds' runs) answers no sock_diag request:
        // the fallback is then what is used, and tested below.
        MESSAGE("sock_diag not answered here (source ", static_cast<int>(l.source), "): only the fallbacks are checked");
    } else {
    CHECK(l.has(st_live));
    CHECK(l.has(st_moved));  // the file, wherever it is now
    CHECK_FALSE(l.has(st_stale));
    CHECK_FALSE(l.has(st_bound));
    CHECK(d::listening_at(l, live, st_live));
    CHECK_FALSE(d::listening_at(l, stale, st_stale));
    struct stat other = st_live;
    other.st_ino += 1;
    CHECK_FALSE(l.has(other));
    }
#elif IPC_HPP_HAVE_PROC_NET_UNIX
    REQUIRE(l.source == d::Listeners::Source::proc_net_unix);
#else
    CHECK(l.source == d::Listeners::Source::none);
#endif
    // Whatever the source: the listener is live and the stale file is not
    // (from /proc/net/unix or alone, a connect confirms).
    const d::Listeners none;
    CHECK(d::listening_at(none, live, st_live));
    CHECK_FALSE(d::listening_at(none, stale, st_stale));
    CHECK_FALSE(d::listening_at(none, dir.file("bound.sock"), st_bound));
}

// ---- The paths a name owns, sun_path ------------------------------------------

TEST_CASE("detail: socket_path, lock_path and private_bind_dir, with and without a trailing slash") {
    const ipc::Name n = name_of("srv-1_x");
    for (const char* spelled : {"/run/user/1000/ipc", "/run/user/1000/ipc/"}) {
        CAPTURE(spelled);
        const std::string dir = spelled;
        CHECK(d::socket_path(dir, n) == "/run/user/1000/ipc/srv-1_x.sock");
        CHECK(d::lock_path(dir, n) == "/run/user/1000/ipc/srv-1_x.lock");
        CHECK(d::private_bind_dir(dir, n) == "/run/user/1000/ipc/.srv-1_x.XXXXXX");
    }
    CHECK(d::socket_path("/", n) == "/srv-1_x.sock");
    CHECK(d::lock_path("/", n) == "/srv-1_x.lock");
    CHECK(d::private_bind_dir("/", n) == "/.srv-1_x.XXXXXX");
    // Only one trailing slash is looked at: the directory is canonical.
    CHECK(d::socket_path("/a//", n) == "/a//srv-1_x.sock");
}

TEST_CASE("detail: private_bind_dir is a mkdtemp template whose socket path is 5 bytes longer than socket_path") {
    TempDir dir;
    const ipc::Name n = name_of("srv");
    const std::string tmpl = d::private_bind_dir(dir.path(), n);
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    REQUIRE(::mkdtemp(buf.data()) != nullptr);
    const std::string made(buf.data());
    REQUIRE(made.size() == tmpl.size());
    CHECK(made.compare(0, tmpl.size() - 6, tmpl, 0, tmpl.size() - 6) == 0);
    CHECK(made.substr(tmpl.size() - 6) != "XXXXXX");
    struct stat st {};
    REQUIRE(::lstat(made.c_str(), &st) == 0);
    CHECK(S_ISDIR(st.st_mode));
    const std::string at = made + "/s";
    CHECK(at.size() == d::socket_path(dir.path(), n).size() + 5);
    struct sockaddr_un addr {};
    const auto len = d::unix_address(at, addr);
    REQUIRE(len.has_value());
    d::Fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    CHECK(::bind(fd.get(), reinterpret_cast<const struct sockaddr*>(&addr), len.value()) == 0);
    CHECK(d::bound_path(fd.get()) == at);
}

TEST_CASE("detail: unix_address takes 107 bytes and the NUL, refuses 108 and an empty path, never truncates") {
    TempDir dir;
    std::string fits = dir.path() + "/";
    fits.append(107 - fits.size(), 'f');
    REQUIRE(fits.size() == 107);
    REQUIRE(sizeof(sockaddr_un::sun_path) == 108);

    struct sockaddr_un addr {};
    std::memset(&addr, 0x5A, sizeof addr);
    const auto len = d::unix_address(fits, addr);
    REQUIRE(len.has_value());
    CHECK(len.value() == offsetof(struct sockaddr_un, sun_path) + 108);
    CHECK(addr.sun_family == AF_UNIX);
    CHECK(std::string(addr.sun_path, 107) == fits);
    CHECK(addr.sun_path[107] == '\0');
    // The kernel takes it as it is, and gives it back whole.
    d::Fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    REQUIRE(::bind(fd.get(), reinterpret_cast<const struct sockaddr*>(&addr), len.value()) == 0);
    CHECK(d::bound_path(fd.get()) == fits);

    for (const std::string& refused : {fits + "g", fits + "gh", std::string()}) {
        CAPTURE(refused.size());
        std::memset(&addr, 0x5A, sizeof addr);
        const auto no = d::unix_address(refused, addr);
        REQUIRE_FALSE(no.has_value());
        CHECK(no.error().code == ipc::Errc::path_too_long);
        CHECK(no.error().sys_errno == ENAMETOOLONG);
        // Nothing of the path is written: an empty sun_path, no prefix of it.
        CHECK(addr.sun_family == AF_UNIX);
        CHECK(addr.sun_path[0] == '\0');
        CHECK(addr.sun_path[107] == '\0');
    }
}

// ---- The socket directory -------------------------------------------------------

TEST_CASE("detail: default_directory with TMPDIR set, unset and empty") {
    const char* before = std::getenv("TMPDIR");
    const std::string saved = before != nullptr ? before : "";
    const bool had = before != nullptr;
    {
        EnvGuard env("TMPDIR");
        env.unset();
        CHECK(d::default_directory() == "/tmp/innmind/ipc");
        env.set("");
        CHECK(d::default_directory() == "/tmp/innmind/ipc");
        env.set("/var/tmp");
        CHECK(d::default_directory() == "/var/tmp/innmind/ipc");
        env.set("/var/tmp///");
        CHECK(d::default_directory() == "/var/tmp/innmind/ipc");
        env.set("/");
        CHECK(d::default_directory() == "/innmind/ipc");
        env.set("///");
        CHECK(d::default_directory() == "/innmind/ipc");
        env.set("/with space");
        CHECK(d::default_directory() == "/with space/innmind/ipc");
        // Taken as written, as PHP's sys_get_temp_dir() does: not made
        // absolute or resolved here (Ipc canonicalises its directory).
        env.set("rel/./dir");
        CHECK(d::default_directory() == "rel/./dir/innmind/ipc");
    }
    const char* after = std::getenv("TMPDIR");
    CHECK((after != nullptr) == had);
    if (had && after != nullptr) CHECK(std::string(after) == saved);
}

TEST_CASE("detail: canonical_directory: absolute, relative, '.', '..', symlinks, a missing tail") {
    TempDir dir;
    const std::string root = real_path(dir.path());
    const std::string parent = root.substr(0, root.rfind('/')).empty() ? "/" : root.substr(0, root.rfind('/'));
    REQUIRE(::mkdir((root + "/a").c_str(), 0700) == 0);
    REQUIRE(::mkdir((root + "/a/b").c_str(), 0700) == 0);
    REQUIRE(::symlink("a/b", (root + "/l").c_str()) == 0);                  // relative target
    REQUIRE(::symlink((root + "/a").c_str(), (root + "/abs").c_str()) == 0);  // absolute target
    REQUIRE(::symlink("nowhere", (root + "/dangle").c_str()) == 0);

    CHECK(d::canonical_directory(root) == root);
    CHECK(d::canonical_directory(dir.path() + "/") == root);
    CHECK(d::canonical_directory("/" + dir.path() + "//a/./b/") == root + "/a/b");
    CHECK(d::canonical_directory(dir.path() + "/a/b/../..") == root);
    CHECK(d::canonical_directory(dir.path() + "/a/../a/b/.") == root + "/a/b");
    CHECK(d::canonical_directory("/") == "/");
    CHECK(d::canonical_directory("/..") == "/");
    CHECK(d::canonical_directory("/../..//./") == "/");

    // Symlinks are resolved, and a ".." after one goes up from its target.
    CHECK(d::canonical_directory(dir.path() + "/l") == root + "/a/b");
    CHECK(d::canonical_directory(dir.path() + "/abs/b") == root + "/a/b");
    CHECK(d::canonical_directory(dir.path() + "/l/..") == root + "/a");
    CHECK(d::canonical_directory(dir.path() + "/l/../..") == root);

    // What does not exist yet is normalised as written, after the part
    // that exists is resolved; a dangling link is such a part, kept as is.
    CHECK(d::canonical_directory(dir.path() + "/missing") == root + "/missing");
    CHECK(d::canonical_directory(dir.path() + "/l/missing/x/") == root + "/a/b/missing/x");
    CHECK(d::canonical_directory(dir.path() + "/missing/x/../y/.") == root + "/missing/y");
    CHECK(d::canonical_directory(dir.path() + "/missing/../..") == parent);
    CHECK(d::canonical_directory(dir.path() + "/dangle/x") == root + "/dangle/x");
    CHECK(d::canonical_directory("/ipc_hpp-t13-missing-" + std::to_string(::getpid()) + "/..") == "/");

    // Relative to the working directory; "" is the working directory.
    CwdGuard cwd(root + "/a");
    CHECK(d::canonical_directory("") == root + "/a");
    CHECK(d::canonical_directory(".") == root + "/a");
    CHECK(d::canonical_directory("b") == root + "/a/b");
    CHECK(d::canonical_directory("./b/") == root + "/a/b");
    CHECK(d::canonical_directory("..") == root);
    CHECK(d::canonical_directory("../l/../b") == root + "/a/b");
    CHECK(d::canonical_directory("new/./dir") == root + "/a/new/dir");
}

// ---- Deadline, later, Milliseconds ------------------------------------------------

TEST_CASE("detail: later() saturates at never") {
    CHECK(d::later(5, 7) == 12);
    CHECK(d::later(0, 0) == 0);
    CHECK(d::later(d::never - 1, 1) == d::never);
    CHECK(d::later(d::never - 1, 2) == d::never);
    CHECK(d::later(d::never, 0) == d::never);
    CHECK(d::later(0, d::never) == d::never);
    CHECK(d::later(1, d::never) == d::never);
    CHECK(d::later(d::never, d::never) == d::never);
}

TEST_CASE("detail: Deadline arithmetic at a given time: never, 0, negative, huge, and poll_timeout's clamps") {
    const std::int64_t now = 1000;

    // Never: from never(), forever(), any negative duration.
    for (const d::Deadline& x : {d::Deadline::never(), d::Deadline::after(ipc::Milliseconds::forever(), now),
                                 d::Deadline::after(ipc::Milliseconds(-7), now),
                                 d::Deadline::after(ipc::Milliseconds(INT64_MIN), now), d::Deadline::after(ipc::Milliseconds(-1))}) {
        CHECK(x.is_never());
        CHECK_FALSE(x.passed(0));
        CHECK_FALSE(x.passed(INT64_MAX));
        CHECK_FALSE(x.passed());
        CHECK(x.poll_timeout(now, -1) == -1);
        CHECK(x.poll_timeout(-1) == -1);
        CHECK(x.poll_timeout() == -1);
        CHECK(x.poll_timeout(now, 0) == 0);  // a cap bounds even an infinite wait
        CHECK(x.poll_timeout(now, 50) == 50);
        CHECK(x.poll_timeout(50) == 50);
        CHECK(x.poll_timeout(now, std::int64_t{1} << 40) == INT_MAX);
    }

    // Zero: due at once.
    const d::Deadline zero = d::Deadline::after(ipc::Milliseconds(0), now);
    CHECK_FALSE(zero.is_never());
    CHECK_FALSE(zero.passed(now - 1));
    CHECK(zero.passed(now));
    CHECK(zero.passed(now + 1));
    CHECK(zero.poll_timeout(now, -1) == 0);
    CHECK(zero.poll_timeout(now + 5000, -1) == 0);  // late: 0, never negative
    CHECK(zero.poll_timeout(now - 30, -1) == 30);   // asked before it was set
    CHECK(zero.poll_timeout(now, 50) == 0);

    const d::Deadline soon = d::Deadline::after(ipc::Milliseconds(250), now);
    CHECK_FALSE(soon.passed(now + 249));
    CHECK(soon.passed(now + 250));
    CHECK(soon.poll_timeout(now, -1) == 250);
    CHECK(soon.poll_timeout(now, 100) == 100);  // the smaller of the two
    CHECK(soon.poll_timeout(now, 1000) == 250);
    CHECK(soon.poll_timeout(now, 0) == 0);
    CHECK(soon.poll_timeout(now + 100, -1) == 150);
    CHECK(soon.poll_timeout(now + 251, 100) == 0);

    // Huge: saturates at never (INT64_MAX) without becoming "never", and
    // what poll() is given is clamped to INT_MAX.
    const d::Deadline huge = d::Deadline::after(ipc::Milliseconds(INT64_MAX), now);
    CHECK_FALSE(huge.is_never());
    CHECK_FALSE(huge.passed(INT64_MAX - 1));
    CHECK(huge.passed(INT64_MAX));
    CHECK(huge.poll_timeout(now, -1) == INT_MAX);
    CHECK(huge.poll_timeout(now, INT64_MAX) == INT_MAX);
    CHECK(huge.poll_timeout(now, 7) == 7);
    CHECK(d::Deadline::after(ipc::Milliseconds(INT64_MAX - 500), now).poll_timeout(now, -1) == INT_MAX);
    // Past INT_MAX but far from saturating: still INT_MAX; at INT_MAX and
    // one under it: exact.
    CHECK(d::Deadline::after(ipc::Milliseconds(std::int64_t{INT_MAX} + 1), now).poll_timeout(now, -1) == INT_MAX);
    CHECK(d::Deadline::after(ipc::Milliseconds(std::int64_t{INT_MAX}), now).poll_timeout(now, -1) == INT_MAX);
    CHECK(d::Deadline::after(ipc::Milliseconds(std::int64_t{INT_MAX} - 1), now).poll_timeout(now, -1) == INT_MAX - 1);
    CHECK(d::Deadline::after(ipc::Milliseconds(std::int64_t{3000000000}), 0).poll_timeout(1000000000, -1) == 2000000000);
}

TEST_CASE("detail: Deadline on the monotonic clock") {
    const std::int64_t t0 = d::now_ms();
    CHECK(t0 >= 0);
    CHECK(d::Deadline::after(ipc::Milliseconds(0)).passed());
    const d::Deadline minute = d::Deadline::after(ipc::Milliseconds(60000));
    CHECK_FALSE(minute.is_never());
    CHECK_FALSE(minute.passed());
    CHECK(minute.passed(d::now_ms() + 60000));
    const int left = minute.poll_timeout();
    CHECK(left <= 60000);
    CHECK(left > 50000);
    CHECK(minute.poll_timeout(25) == 25);
    const d::Deadline shortly = d::Deadline::after(ipc::Milliseconds(20));
    CHECK(eventually([&] { return shortly.passed(); }, 2000));
    CHECK(d::now_ms() - t0 >= 20);
    CHECK(shortly.poll_timeout() == 0);
}

TEST_CASE("detail: Milliseconds from durations at the extremes (beyond test_client.cpp's)") {
    using namespace std::chrono;
    constexpr std::int64_t top = INT64_MAX;
    // Integral counts: saturated exactly where count * 1000 would overflow.
    CHECK(ipc::Milliseconds(seconds(INT64_MAX / 1000)).count() == INT64_MAX / 1000 * 1000);
    CHECK(ipc::Milliseconds(seconds(INT64_MAX / 1000 + 1)).count() == top);
    CHECK(ipc::Milliseconds(minutes(1)).count() == 60000);
    CHECK(ipc::Milliseconds(minutes(INT64_MAX / 60000 + 1)).count() == top);
    CHECK(ipc::Milliseconds(milliseconds::max()).count() == top);
    CHECK(ipc::Milliseconds(milliseconds::min()).is_forever());
    // A finer unit does not overflow: nanoseconds::max() is 9223372036854.775807 ms.
    CHECK(ipc::Milliseconds(nanoseconds::max()).count() == 9223372036855);
    CHECK(ipc::Milliseconds(nanoseconds(1000000)).count() == 1);
    CHECK(ipc::Milliseconds(nanoseconds(1000001)).count() == 2);
    // Ratios that do not divide: rounded up.
    CHECK(ipc::Milliseconds(duration<long long, std::ratio<1, 3>>(1)).count() == 334);
    CHECK(ipc::Milliseconds(duration<long long, std::ratio<1, 3>>(3)).count() == 1000);
    CHECK(ipc::Milliseconds(duration<long long, std::ratio<7, 3>>(1)).count() == 2334);
    // Small and unsigned representations.
    CHECK(ipc::Milliseconds(duration<short, std::milli>(-1)).is_forever());
    CHECK(ipc::Milliseconds(duration<unsigned, std::milli>(5)).count() == 5);
    CHECK(ipc::Milliseconds(duration<unsigned>(UINT_MAX)).count() == std::int64_t{UINT_MAX} * 1000);
    CHECK(ipc::Milliseconds(duration<unsigned char, std::milli>(200)).count() == 200);
    // An unsigned count above INT64_MAX saturates too. It was cast to
    // intmax_t first: ULLONG_MAX ms came out as -1 (no limit, by luck),
    // and 2^63 + 5 s overflowed (undefined), to 5000 ms on x86-64.
    CHECK(ipc::Milliseconds(duration<unsigned long long, std::milli>(ULLONG_MAX)).count() == top);
    CHECK(ipc::Milliseconds(duration<std::uint64_t>((std::uint64_t{1} << 63) + 5)).count() == top);
    CHECK(ipc::Milliseconds(duration<std::uint64_t, std::milli>(std::uint64_t{1} << 63)).count() == top);
    CHECK(ipc::Milliseconds(duration<std::uint64_t, std::milli>((std::uint64_t{1} << 63) - 1)).count() == top);
    CHECK(ipc::Milliseconds(duration<std::uint64_t, std::milli>((std::uint64_t{1} << 63) - 2)).count() == top - 1);
    // Floating-point counts: infinity and NaN are no finite timeout.
    CHECK(ipc::Milliseconds(duration<double>(std::numeric_limits<double>::infinity())).count() == top);
    CHECK(ipc::Milliseconds(duration<double>(-std::numeric_limits<double>::infinity())).is_forever());
    CHECK(ipc::Milliseconds(duration<double>(std::numeric_limits<double>::quiet_NaN())).count() == top);
    CHECK(ipc::Milliseconds(duration<double>(1e300)).count() == top);
    CHECK(ipc::Milliseconds(duration<double>(-0.0)).count() == 0);
    CHECK(ipc::Milliseconds(duration<float, std::milli>(0.25f)).count() == 1);
    CHECK(ipc::Milliseconds(duration<double, std::milli>(2.0)).count() == 2);
    CHECK(ipc::Milliseconds(duration<double, std::micro>(1e-9)).count() == 1);
}

// ---- Buffer (section 7) -----------------------------------------------------------

TEST_CASE("detail: Buffer grows from nothing to 256 bytes, then by doubling, keeping its bytes") {
    d::Buffer b;
    CHECK(b.data() == nullptr);
    CHECK(b.size() == 0);
    CHECK(b.capacity() == 0);
    CHECK(b.empty());
    b.append(nullptr, 0);  // nothing to add: no memory either
    CHECK(b.capacity() == 0);
    CHECK(b.reserve_tail(0) == nullptr);
    CHECK(b.capacity() == 0);

    b.append("x", 1);
    CHECK(b.size() == 1);
    CHECK(b.capacity() == 256);
    CHECK_FALSE(b.empty());
    const std::string fill(255, 'a');
    b.append(fill.data(), fill.size());
    CHECK(b.size() == 256);
    CHECK(b.capacity() == 256);  // an exact fit does not grow
    b.append("y", 1);
    CHECK(b.capacity() == 512);
    b.append(std::string(256, 'b').data(), 256);
    CHECK(b.size() == 513);
    CHECK(b.capacity() == 1024);
    CHECK(view_of(b) == "x" + fill + "y" + std::string(256, 'b'));
}

TEST_CASE("detail: Buffer reserve_tail and commit: room without a copy, large at once") {
    d::Buffer b;
    const std::size_t large = (std::size_t{1} << 20) + 1;
    char* p = b.reserve_tail(large);
    REQUIRE(p != nullptr);
    CHECK(p == b.data());
    CHECK(b.size() == 0);                         // room, not bytes
    CHECK(b.capacity() == std::size_t{2} << 20);  // 256 doubled up to the need
    std::memset(p, 'r', large);
    b.commit(large);
    CHECK(b.size() == large);
    CHECK(b.capacity() == std::size_t{2} << 20);

    // Room that is there is handed out as it is: same memory, no growth.
    const char* at = b.data();
    char* q = b.reserve_tail(100);
    CHECK(q == b.data() + large);
    CHECK(b.data() == at);
    CHECK(b.capacity() == std::size_t{2} << 20);
    std::memcpy(q, "tail", 4);
    b.commit(4);
    CHECK(b.size() == large + 4);
    CHECK(std::string(b.data() + large - 2, 6) == "rrtail");
    // try_reserve_tail is the same where memory is there.
    CHECK(b.try_reserve_tail(16) == b.data() + b.size());
    CHECK(b.capacity() == std::size_t{2} << 20);

    // Past the capacity: the next doubling that fits, bytes kept.
    d::Buffer c;
    c.append("0123456789", 10);
    REQUIRE(c.capacity() == 256);
    char* r = c.reserve_tail(1000);
    CHECK(c.capacity() == 1024);
    CHECK(r == c.data() + 10);
    CHECK(view_of(c) == "0123456789");
}

TEST_CASE("detail: Buffer consume and clear keep the memory; the rest moves to the front") {
    d::Buffer b;
    b.append("0123456789", 10);
    const char* at = b.data();
    b.consume(0);
    CHECK(view_of(b) == "0123456789");
    b.consume(3);
    CHECK(view_of(b) == "3456789");
    CHECK(b.data() == at);  // compacted in place
    CHECK(b.capacity() == 256);
    b.consume(7);
    CHECK(b.empty());
    CHECK(b.capacity() == 256);
    b.append("abc", 3);
    b.consume(100);  // more than there is: empty
    CHECK(b.size() == 0);
    b.append("abc", 3);
    b.clear();
    CHECK(b.empty());
    CHECK(b.capacity() == 256);
    CHECK(b.data() == at);
    b.append("z", 1);
    CHECK(view_of(b) == "z");
}

TEST_CASE("detail: Buffer shrink gives a large buffer back to 4096 bytes once it holds little; release frees an empty one") {
    d::Buffer b;
    const std::string big((std::size_t{1} << 20) + 5, 'm');
    b.append(big.data(), big.size());
    const std::size_t grown = b.capacity();
    CHECK(grown == std::size_t{2} << 20);
    b.shrink();  // holds more than it would keep: nothing
    CHECK(b.capacity() == grown);
    b.consume(big.size() - 10);
    b.shrink(static_cast<std::size_t>(4));  // still more than 4 bytes held
    CHECK(b.capacity() == grown);
    b.shrink();
    CHECK(b.capacity() == 4096);
    CHECK(view_of(b) == std::string(10, 'm'));
    b.shrink();      // already there
    b.shrink(8192);  // never grows
    CHECK(b.capacity() == 4096);
    // Growth goes on from what is left: 4096 doubled, not 256.
    b.append(std::string(4087, 'n').data(), 4087);
    CHECK(b.size() == 4097);
    CHECK(b.capacity() == 8192);
    // Another keep: exactly that much.
    b.clear();
    b.shrink(300);
    CHECK(b.capacity() == 300);
    b.append("q", 1);
    CHECK(b.capacity() == 300);

    b.release();  // not empty: kept
    CHECK(b.capacity() == 300);
    CHECK(view_of(b) == "q");
    b.clear();
    b.release();
    given_back_then_regrows(b, "again");
}

TEST_CASE("detail: Buffer try_reserve_tail refuses room whose end would wrap around, and changes nothing") {
    // size + n past SIZE_MAX wrapped to a small need, which the capacity
    // met: a pointer came back for SIZE_MAX bytes of room that were not
    // there. Now nullptr, as for any room the memory is not there for
    // (and without asking malloc for it).
    d::Buffer b;
    b.append("0123456789", 10);
    const char* at = b.data();
    CHECK(b.try_reserve_tail(SIZE_MAX) == nullptr);
    CHECK(b.try_reserve_tail(SIZE_MAX - 9) == nullptr);  // wraps to exactly 0
    CHECK(b.try_reserve_tail(SIZE_MAX - 4) == nullptr);
    CHECK(b.data() == at);
    CHECK(b.size() == 10);
    CHECK(b.capacity() == 256);
    CHECK(view_of(b) == "0123456789");
    CHECK(b.try_reserve_tail(246) == b.data() + 10);  // what is there is still given
}

TEST_CASE("detail: Buffer shrink(0) frees an empty buffer, and keeps one that holds bytes") {
    // realloc(p, 0) frees p and returns nullptr (glibc): shrink(0) kept
    // the freed pointer and its capacity, and the next append wrote into
    // freed memory.
    d::Buffer b;
    b.append("abc", 3);
    b.shrink(0);  // holds 3 bytes: kept
    CHECK(b.capacity() == 256);
    CHECK(view_of(b) == "abc");
    b.clear();
    b.shrink(0);
    given_back_then_regrows(b, "x");
}

TEST_CASE("detail: Buffer moves its memory, leaving an empty buffer") {
    d::Buffer a;
    a.append("hello", 5);
    const char* at = a.data();
    d::Buffer b(std::move(a));
    CHECK(b.data() == at);
    CHECK(view_of(b) == "hello");
    CHECK(a.data() == nullptr);  // moved from: empty
    CHECK(a.size() == 0);
    CHECK(a.capacity() == 0);
    d::Buffer c;
    c.append("old", 3);
    c = std::move(b);
    CHECK(c.data() == at);
    CHECK(view_of(c) == "hello");
    CHECK(b.capacity() == 0);
    a.append("x", 1);          // a moved-from buffer is usable
    CHECK(view_of(a) == "x");
}

}  // TEST_SUITE
