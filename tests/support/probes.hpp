// fd and RSS probes: open fds of this process or another, VmRSS/VmHWM, a process state, from /proc.
#ifndef IPC_HPP_TESTS_SUPPORT_PROBES_HPP
#define IPC_HPP_TESTS_SUPPORT_PROBES_HPP

#include "ipc.hpp"

#include <cstdio>
#include <cstring>
#include <cstdlib>
#include <string>

#include <dirent.h>
#include <sys/types.h>

namespace ipc_test {

namespace ipc = ipc_hpp;

// Open file descriptors of this process.
inline int count_fds() {
    DIR* d = ::opendir("/proc/self/fd");
    if (d == nullptr) return -1;
    int n = 0;
    while (struct dirent* e = ::readdir(d)) {
        if (e->d_name[0] != '.') ++n;
    }
    ::closedir(d);
    return n - 1;  // the directory stream itself
}

// A field of /proc/PID/status in KiB ("VmRSS:", "VmHWM:"), -1 if unknown.
inline long status_kb(pid_t pid, const char* field) {
    const std::string path = "/proc/" + std::to_string(pid) + "/status";
    FILE* f = std::fopen(path.c_str(), "r");
    if (f == nullptr) return -1;
    const std::size_t len = std::strlen(field);
    char line[256];
    long kb = -1;
    while (std::fgets(line, sizeof line, f) != nullptr) {
        if (std::strncmp(line, field, len) == 0) {
            kb = std::strtol(line + len, nullptr, 10);
            break;
        }
    }
    std::fclose(f);
    return kb;
}
// VmRSS of a process in KiB, -1 if unknown.
inline long rss_kb(pid_t pid) { return status_kb(pid, "VmRSS:"); }
// Its VmHWM (peak RSS); reset_peak() starts a new peak from the current
// RSS (/proc/PID/clear_refs, Linux 4.0).
inline long peak_kb(pid_t pid) { return status_kb(pid, "VmHWM:"); }
inline bool reset_peak(pid_t pid) {
    const std::string path = "/proc/" + std::to_string(pid) + "/clear_refs";
    FILE* f = std::fopen(path.c_str(), "w");
    if (f == nullptr) return false;
    const bool ok = std::fputs("5", f) >= 0;
    return std::fclose(f) == 0 && ok;
}

// Open fds of a process (ls /proc/<pid>/fd), -1 if unknown.
inline int fd_count(pid_t pid) {
    const std::string path = "/proc/" + std::to_string(pid) + "/fd";
    DIR* d = ::opendir(path.c_str());
    if (d == nullptr) return -1;
    int n = 0;
    while (struct dirent* e = ::readdir(d)) {
        if (e->d_name[0] != '.') ++n;
    }
    ::closedir(d);
    return n;
}

// The state letter of a process (R, S, D, Z...) from /proc/<pid>/stat.
inline char proc_state(pid_t pid) {
    const std::string path = "/proc/" + std::to_string(pid) + "/stat";
    FILE* f = std::fopen(path.c_str(), "r");
    if (f == nullptr) return '?';
    char buf[512];
    const std::size_t n = std::fread(buf, 1, sizeof buf - 1, f);
    std::fclose(f);
    buf[n] = '\0';
    const char* close_paren = std::strrchr(buf, ')');
    return (close_paren != nullptr && close_paren[1] == ' ') ? close_paren[2] : '?';
}

}  // namespace ipc_test

#endif
