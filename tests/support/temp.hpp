// Temp directories and configs: a fresh directory per test (TempDir), test_config, name_of, the Case fixture.
#ifndef IPC_HPP_TESTS_SUPPORT_TEMP_HPP
#define IPC_HPP_TESTS_SUPPORT_TEMP_HPP

#include "ipc.hpp"

#include "basics.hpp"

#include <doctest/doctest.h>

#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

#include <ftw.h>
#include <stdlib.h>
#include <sys/stat.h>

namespace ipc_test {

namespace ipc = ipc_hpp;

// A fresh directory (mkdtemp), removed with everything in it at the end.
// Short on purpose: sun_path holds 107 bytes.
class TempDir {
public:
    TempDir() {
        char tmpl[] = "/tmp/ipchpp-XXXXXX";
        const char* made = ::mkdtemp(tmpl);
        REQUIRE(made != nullptr);
        path_ = made;
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    ~TempDir() { remove_tree(path_); }
    const std::string& path() const { return path_; }
    std::string file(std::string_view name) const { return path_ + "/" + std::string(name); }

    static void remove_tree(const std::string& path) {
        ::nftw(
            path.c_str(),
            [](const char* p, const struct stat*, int, struct FTW*) -> int {
                ::remove(p);
                return 0;
            },
            16, FTW_DEPTH | FTW_PHYS);
    }

private:
    std::string path_;
};

inline bool file_exists(const std::string& path) {
    struct stat st {};
    return ::lstat(path.c_str(), &st) == 0;
}

// The tests' heartbeat period, both sides, unless a case says otherwise.
constexpr std::int64_t test_heartbeat_ms = 50;

// The configuration the tests use: a short heartbeat and short timeouts.
inline ipc::Config test_config(const std::string& dir, std::int64_t heartbeat_ms = test_heartbeat_ms) {
    ipc::Config c;
    c.directory = dir;
    c.heartbeat = ipc::Milliseconds(heartbeat_ms);
    c.handshake_timeout = ipc::Milliseconds(3000);
    c.close_timeout = ipc::Milliseconds(1000);
    c.shutdown_timeout = ipc::Milliseconds(1500);
    return c;
}

inline ipc::Name name_of(std::string_view s) { return ipc::Name::parse(s).value(); }

// What most cases start with (TEST_CASE_FIXTURE(Case, "...")): a watchdog,
// a fresh directory, the test config on it, an Ipc and the name "srv". A
// case that needs another setting changes config, then calls reconfigure()
// (until then ipc has the old one); a fixture built on this one may give
// another heartbeat or name. A fixture's members are the body's: none may
// be called f, doctest's name for the body.
struct Case {
    Watchdog wd;
    TempDir dir;
    ipc::Config config;
    ipc::Ipc ipc{config};
    const ipc::Name name;

    explicit Case(std::int64_t heartbeat_ms = test_heartbeat_ms, std::string_view name_text = "srv")
        : config(test_config(dir.path(), heartbeat_ms)), name(name_of(name_text)) {}
    // ipc on config as it is now.
    void reconfigure() { ipc = ipc::Ipc(config); }
};

// The same with both sides beating every Ms ms.
template <std::int64_t Ms>
struct CaseBeating : Case {
    CaseBeating() : Case(Ms) {}
};

}  // namespace ipc_test

#endif
