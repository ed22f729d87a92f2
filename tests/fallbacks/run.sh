#!/usr/bin/env bash
# tests/fallbacks/run.sh: the test suite with every optional platform feature
# of ipc.hpp forced off, so that the portable code paths (the ones a
# non-Linux or old system would take) are compiled and run on Linux:
#   IPC_HPP_HAVE_ACCEPT4=0        accept() + fcntl() instead of accept4()
#   IPC_HPP_HAVE_SOCK_CLOEXEC=0   socket() + fcntl() instead of SOCK_CLOEXEC|SOCK_NONBLOCK
#   IPC_HPP_HAVE_MSG_NOSIGNAL=0   send() without MSG_NOSIGNAL
#   IPC_HPP_HAVE_SO_PEERCRED=0    no peer credentials
#   IPC_HPP_HAVE_PROC_NET_UNIX=0  liveness by connecting, not /proc/net/unix
#   IPC_HPP_HAVE_SOCK_DIAG=0      nor sock_diag (netlink)
#   IPC_HPP_HAVE_INOTIFY=0        Ipc::wait polls with a backoff
#   IPC_HPP_HAVE_MALLOC_TRIM=0    idle buffers freed, no malloc_trim() (non-glibc)
#   IPC_HPP_HAVE_PTHREAD_ATFORK=0 a forked child told by getpid() on close only, its lock copies kept
# That is meson's -Dfallbacks=true (meson.build adds these defines to
# every target, tests/meson.build to the strict compiles too).
#
# Installs what is missing (Debian 12, root only), configures
# build-fallbacks from scratch, builds, runs `meson test`, and ends with
#   fallbacks: N passed, N failed
# Exits non-zero when the build or a test fails. Bounded time: build
# IPC_HPP_FALLBACKS_BUILD_SECONDS (default 1200), tests
# IPC_HPP_FALLBACKS_TEST_SECONDS (default 900).
set -euo pipefail

# shellcheck source=SCRIPTDIR/../lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
cd "$repo_root"

build_dir=build-fallbacks
started=$SECONDS

install_missing fallbacks \
    meson meson \
    ninja ninja-build \
    g++ g++ \
    python3 python3 \
    timeout coreutils \
    /usr/include/doctest/doctest.h doctest-dev

# finish STATUS: the summary line from the test log, and exit.
finish() { meson_summary_exit fallbacks "$started" "$build_dir" "$1"; }

rm -rf "$build_dir"
if ! meson setup "$build_dir" -Dfallbacks=true \
    || ! timeout "${IPC_HPP_FALLBACKS_BUILD_SECONDS:-1200}" meson compile -C "$build_dir"; then
    echo "fallbacks: build failed" >&2
    finish 1
fi
# The defines really are on the command line of every compile.
for feature in ACCEPT4 SOCK_CLOEXEC MSG_NOSIGNAL SO_PEERCRED PROC_NET_UNIX SOCK_DIAG INOTIFY MALLOC_TRIM PTHREAD_ATFORK; do
    if ! grep -q -- "-DIPC_HPP_HAVE_$feature=0" "$build_dir/compile_commands.json"; then
        echo "fallbacks: IPC_HPP_HAVE_$feature=0 is not in the build's compile commands" >&2
        finish 1
    fi
done

status=0
timeout "${IPC_HPP_FALLBACKS_TEST_SECONDS:-900}" meson test -C "$build_dir" --print-errorlogs || status=1
grep -E '^\[doctest\] (test cases|assertions)' "$build_dir/meson-logs/testlog.txt" || true
finish "$status"
