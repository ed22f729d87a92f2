#!/usr/bin/env bash
# tests/consumer/run.sh: ipc.hpp used from other projects, each way in, built
# and run; ends with
#   consumers: N passed, N failed
# and exits non-zero when one fails. The checks:
#   meson-subproject     tests/consumer/meson: dependency('ipc-hpp',
#                        fallback: ['ipc-hpp', 'ipc_hpp_dep']) with
#                        subprojects/ipc-hpp a symlink to this repository
#   meson-pkg-config     `meson install` of this repository into a temporary
#                        prefix, then `pkg-config --cflags ipc-hpp` builds
#   cmake-subdir         tests/consumer/cmake_subdir: add_subdirectory()
#   cmake-install        `cmake --install` into a temporary prefix installs
#                        the header, ipc_hppConfig.cmake and its version file
#   cmake-find           tests/consumer/cmake_find: find_package(ipc_hpp
#                        <the header's version>) from that prefix
#   cmake-find-refuses   find_package(ipc_hpp <next minor>) must fail
#   mixed-versions       two TUs built against two versions of the header
#                        (a copy renamed to v999_999) must not link: the
#                        inline namespace keeps them apart
# Every consumer builds the same tests/consumer/consumer.cpp, which checks in
# #if that the header is the version the build system reported. Nothing is
# written in the source tree: all builds go to a temporary directory,
# removed at the end. Installs what is missing (Debian 12, root only).
# The checks are called through check() and the script ends in summary_exit,
# which always exits: shellcheck would take them for unreachable.
# shellcheck disable=SC2317
set -euo pipefail

# shellcheck source=SCRIPTDIR/../lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
repo=$repo_root
cd "$repo"

install_missing consumers \
    meson meson \
    ninja ninja-build \
    g++ g++ \
    cmake cmake \
    pkg-config pkg-config \
    python3 python3 \
    timeout coreutils

work=$(mktemp -d "${TMPDIR:-/tmp}/ipc-hpp-consumers.XXXXXX")
trap 'rm -rf "$work"' EXIT
limit=${IPC_HPP_CONSUMER_SECONDS:-300}  # bound for each step
started=$SECONDS
passed=0
failed=0
version=$(python3 -c 'import re, sys; t = open(sys.argv[1]).read(); print(".".join(re.search(r"#define IPC_HPP_VERSION_" + k + r" +(\d+)", t).group(1) for k in ("MAJOR", "MINOR", "PATCH")))' ipc.hpp)
major=${version%%.*}
minor=${version#*.}
minor=${minor%%.*}
echo "consumers: ipc.hpp $version; $(cmake --version | head -n1); meson $(meson --version)"

# check NAME FUNCTION: runs FUNCTION in a subshell that stops at its first
# failing command (output to a log), and counts it.
check() {
    local name=$1 log="$work/$1.log" rc
    set +e
    (
        set -e
        "$2"
    ) >"$log" 2>&1
    rc=$?
    set -e
    if [ "$rc" -eq 0 ]; then
        passed=$((passed + 1))
        echo "consumers: $name: ok"
    else
        failed=$((failed + 1))
        echo "consumers: $name: FAILED" >&2
        tail -n 40 "$log" >&2
    fi
}

# Every external step is bounded.
run() { timeout "$limit" "$@"; }

meson_subproject() {
    local src="$work/meson-src"
    mkdir -p "$src"
    cp -r tests/consumer/meson tests/consumer/consumer.cpp "$src/"
    mkdir -p "$src/meson/subprojects"
    ln -sfn "$repo" "$src/meson/subprojects/ipc-hpp"
    run meson setup "$work/meson-build" "$src/meson" --force-fallback-for=ipc-hpp
    grep -q 'Dependency ipc-hpp found: YES' "$work/meson-build/meson-logs/meson-log.txt"
    run meson compile -C "$work/meson-build"
    run meson test -C "$work/meson-build" --print-errorlogs
    grep "consumer: ipc.hpp $version" "$work/meson-build/meson-logs/testlog.txt"
}

meson_pkg_config() {
    run meson setup "$work/pc-build" "$repo" --prefix="$work/pc-prefix" -Dtests=disabled -Dexamples=disabled
    run meson install -C "$work/pc-build"
    test -f "$work/pc-prefix/include/ipc.hpp"
    local cflags
    cflags=$(PKG_CONFIG_PATH="$work/pc-prefix/share/pkgconfig" pkg-config --cflags ipc-hpp)
    test "$(PKG_CONFIG_PATH="$work/pc-prefix/share/pkgconfig" pkg-config --modversion ipc-hpp)" = "$version"
    # shellcheck disable=SC2086 # cflags is a list of flags
    run g++ -std=c++17 -Wall -Wextra -Wpedantic -Werror $cflags \
        -DEXPECTED_VERSION_MAJOR="$major" -DEXPECTED_VERSION_MINOR="$minor" \
        tests/consumer/consumer.cpp -o "$work/pc-consumer"
    run "$work/pc-consumer"
}

cmake_subdir() {
    run cmake -S tests/consumer/cmake_subdir -B "$work/subdir-build" -DIPC_HPP_SOURCE_DIR="$repo"
    run cmake --build "$work/subdir-build"
    run "$work/subdir-build/consumer" | grep "consumer: ipc.hpp $version"
    # Vendored, it installs nothing by default.
    ! grep -q 'ipc_hppConfig' "$work/subdir-build/ipc_hpp/cmake_install.cmake" 2>/dev/null
}

cmake_install() {
    run cmake -S "$repo" -B "$work/install-build" -DCMAKE_INSTALL_PREFIX="$work/prefix"
    run cmake --install "$work/install-build"
    test -f "$work/prefix/include/ipc.hpp"
    cmp "$work/prefix/include/ipc.hpp" ipc.hpp
    test -f "$work/prefix/share/cmake/ipc_hpp/ipc_hppConfig.cmake"
    test -f "$work/prefix/share/cmake/ipc_hpp/ipc_hppConfigVersion.cmake"
    grep -q "PACKAGE_VERSION \"$version\"" "$work/prefix/share/cmake/ipc_hpp/ipc_hppConfigVersion.cmake"
}

cmake_find() {
    run cmake -S tests/consumer/cmake_find -B "$work/find-build" \
        -DCMAKE_PREFIX_PATH="$work/prefix" -DIPC_HPP_REQUEST="$major.$minor" | tee "$work/find.out"
    grep -q "found ipc_hpp $version in $work/prefix/" "$work/find.out"
    run cmake --build "$work/find-build"
    run "$work/find-build/consumer" | grep "consumer: ipc.hpp $version"
}

cmake_find_refuses() {
    # Before 1.0 another minor version is another API: it must not be found.
    if run cmake -S tests/consumer/cmake_find -B "$work/refuse-build" \
        -DCMAKE_PREFIX_PATH="$work/prefix" -DIPC_HPP_REQUEST="$major.$((minor + 1))" >"$work/refuse.out" 2>&1; then
        echo "find_package(ipc_hpp $major.$((minor + 1))) accepted $version"
        return 1
    fi
    cat "$work/refuse.out"
    grep -q 'compatible with requested version' "$work/refuse.out"  # refused for its version, not for being absent
}

mixed_versions() {
    local dir="$work/mixed"
    mkdir -p "$dir/other"
    # The same header as if it were another version: only the inline
    # namespace and the macros differ.
    sed -E -e 's/^inline namespace v[0-9]+_[0-9]+ \{/inline namespace v999_999 {/' \
        -e 's/^(#define IPC_HPP_VERSION_(MAJOR|MINOR)) +[0-9]+$/\1 999/' ipc.hpp >"$dir/other/ipc.hpp"
    grep -q '^inline namespace v999_999 {' "$dir/other/ipc.hpp"
    cat >"$dir/library.cpp" <<'EOF'
#include "ipc.hpp"
#include <cstddef>
std::size_t content_size(const ipc_hpp::Message& m) { return m.content().size(); }
EOF
    cat >"$dir/main.cpp" <<'EOF'
#include "ipc.hpp"
#include <cstddef>
std::size_t content_size(const ipc_hpp::Message& m);
int main() { return content_size(ipc_hpp::Message::text("abc")) == 3 ? 0 : 1; }
EOF
    # Control: one version on both sides links and runs.
    run g++ -std=c++17 -I"$repo" "$dir/library.cpp" "$dir/main.cpp" -o "$dir/same"
    run "$dir/same"
    # Two versions: an undefined reference to the other namespace's symbol.
    if run g++ -std=c++17 -c -I"$repo" "$dir/library.cpp" -o "$dir/library.o" \
        && run g++ -std=c++17 -c -I"$dir/other" "$dir/main.cpp" -o "$dir/main.o" \
        && run g++ "$dir/library.o" "$dir/main.o" -o "$dir/mixed" >"$dir/link.out" 2>&1; then
        echo "two versions of ipc.hpp linked together silently"
        return 1
    fi
    cat "$dir/link.out"
    grep -q 'undefined reference to .*content_size(ipc_hpp::v999_999::Message const&)' "$dir/link.out"
}

check meson-subproject meson_subproject
check meson-pkg-config meson_pkg_config
check cmake-subdir cmake_subdir
check cmake-install cmake_install
check cmake-find cmake_find
check cmake-find-refuses cmake_find_refuses
check mixed-versions mixed_versions

echo "consumers: $((SECONDS - started)) s"
summary_exit "consumers: " "$passed" "$failed" 0
