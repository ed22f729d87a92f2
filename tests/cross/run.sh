#!/usr/bin/env bash
# tests/cross/run.sh ARCH: the whole test suite cross-compiled for a 32-bit
# target and run under qemu-user.
#
#   ARCH = arm   (arm-linux-gnueabihf: ARMv7 hard float, little-endian)
#        | mips  (mips-linux-gnu: MIPS32r2 o32, big-endian)
#   (the triplet is accepted too)
#
# Installs what is missing (Debian 12, only as root and only what is
# missing), configures build-cross-ARCH from scratch with
# tests/cross/TRIPLET.ini, builds, runs `meson test` (the exe_wrapper runs
# every test binary under qemu-ARCH), and ends with
#   cross ARCH: N passed, N failed
# Exits non-zero when the build or a test fails.
#
# Every test runs under qemu, the real-socket and fork tests included
# (qemu-user forwards socket, poll, fork, signals and /proc/net/unix to the
# host kernel): no doctest filter is needed. If one ever is, add a
# --test-case-exclude to the ipc_tests test's args in tests/meson.build
# under `if meson.is_cross_build()`, with the reason (meson test's
# --test-args would reach every test, not only the doctest binary).
#
# The torture suite (tests/torture.cpp: thousands of fork/kill cycles, 1000
# clients) is built for the target, so it must compile for 32-bit and
# big-endian, but it is not run under qemu: emulating that much process
# churn takes longer than CI has. It runs natively and under the sanitizers.
#
# Bounded time: build IPC_HPP_CROSS_BUILD_SECONDS (default 1200), tests
# IPC_HPP_CROSS_TEST_SECONDS (default 900); each test's own meson timeout is
# multiplied by 3 for the emulation.
set -euo pipefail

# shellcheck source=SCRIPTDIR/../lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
cd "$repo_root"

case "${1:-}" in
    arm | arm-linux-gnueabihf) arch=arm; triplet=arm-linux-gnueabihf; qemu="qemu-arm" ;;
    mips | mips-linux-gnu) arch=mips; triplet=mips-linux-gnu; qemu="qemu-mips" ;;
    *)
        echo "usage: $0 arm|mips" >&2
        exit 2
        ;;
esac

build_dir=build-cross-$arch
started=$SECONDS

# The build machine's doctest.h is copied into the cross build at configure
# time.
install_missing "cross $arch" \
    meson meson \
    ninja ninja-build \
    python3 python3 \
    timeout coreutils \
    "$triplet-g++" "g++-$triplet" \
    "$qemu" qemu-user \
    "/usr/include/doctest/doctest.h /usr/local/include/doctest/doctest.h" doctest-dev

echo "cross $arch: $("$triplet-g++" --version | head -n1), $("$qemu" --version | head -n1)"

# finish STATUS: the summary line from the test log, and exit.
finish() { meson_summary_exit "cross $arch" "$started" "$build_dir" "$1"; }

rm -rf "$build_dir"
# -Dbench=disabled: the benchmark is no test, and under qemu it would measure
# the emulator (it also needs libatomic on 32-bit MIPS for its 64-bit
# counters).
if ! meson setup "$build_dir" --cross-file "tests/cross/$triplet.ini" -Dbench=disabled \
    || ! timeout "${IPC_HPP_CROSS_BUILD_SECONDS:-1200}" meson compile -C "$build_dir"; then
    echo "cross $arch: build failed" >&2
    finish 1
fi

status=0
timeout "${IPC_HPP_CROSS_TEST_SECONDS:-900}" \
    meson test -C "$build_dir" --print-errorlogs --timeout-multiplier 3 --no-suite torture || status=1
# doctest's own summary (how many test cases ran under qemu).
grep -E '^\[doctest\] (test cases|assertions)' "$build_dir/meson-logs/testlog.txt" || true
finish "$status"
