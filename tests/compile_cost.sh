#!/usr/bin/env bash
# tests/compile_cost.sh [REPETITIONS]: what including ipc.hpp costs a
# translation unit. A report, not a test: nothing is compared with a limit.
#
# Compiles, REPETITIONS times each (default 7), with
#   ${CXX:-g++} -std=c++17 -O0 -fsyntax-only
#   (a) an empty TU, (b) a TU that includes only ipc.hpp,
#   (c) a TU that includes only <string> and <vector> (what any user has),
# and prints the median wall time of each, then
#   include_cost_ms=<(b) - (a)> (empty: …, ipc.hpp: …, <string>+<vector>: …)
# Then lists the standard headers ipc.hpp includes and flags the heavy ones
# its style rules out (<iostream>, <sstream>, <regex>, <functional>, and a
# few more of the same weight), and how many lines the preprocessor makes of
# each TU. Bounded: each compile gets 120 s.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

reps=${1:-7}
cxx=${CXX:-g++}
if ! command -v "$cxx" >/dev/null 2>&1; then
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1 && [ "$cxx" = g++ ]; then
        export DEBIAN_FRONTEND=noninteractive
        apt-get update
        apt-get install -y --no-install-recommends g++
    else
        echo "compile_cost: needs $cxx" >&2
        exit 1
    fi
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/ipc-hpp-compile-cost.XXXXXX")
trap 'rm -rf "$work"' EXIT
: >"$work/empty.cpp"
printf '#include "ipc.hpp"\n' >"$work/ipc.cpp"
printf '#include <string>\n#include <vector>\n' >"$work/string_vector.cpp"

flags=(-std=c++17 -O0 -fsyntax-only -I"$PWD")
echo "compile_cost: $("$cxx" --version | head -n1), ${flags[*]}, $reps runs each, median"

# median_ms FILE: the median wall time of compiling FILE, in milliseconds.
median_ms() {
    local file=$1 i start end
    local times=()
    "$cxx" "${flags[@]}" "$file"  # warm the file cache; errors show here
    for ((i = 0; i < reps; i++)); do
        start=$(date +%s%N)
        timeout 120 "$cxx" "${flags[@]}" "$file"
        end=$(date +%s%N)
        times+=($(((end - start) / 1000000)))
    done
    printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : int((a[NR / 2] + a[NR / 2 + 1]) / 2)}'
}

empty=$(median_ms "$work/empty.cpp")
ipc=$(median_ms "$work/ipc.cpp")
string_vector=$(median_ms "$work/string_vector.cpp")
seconds() { awk -v ms="$1" 'BEGIN {printf "%.3f", ms / 1000}'; }
echo "empty TU:               $(seconds "$empty") s"
echo "ipc.hpp:                $(seconds "$ipc") s"
echo "<string>+<vector>:      $(seconds "$string_vector") s"
for tu in empty ipc string_vector; do
    printf '%-23s %s preprocessed lines\n' "$tu:" "$("$cxx" -std=c++17 -E -P -I"$PWD" "$work/$tu.cpp" | wc -l)"
done
echo "include_cost_ms=$((ipc - empty)) (empty: $empty, ipc.hpp: $ipc, <string>+<vector>: $string_vector)"

# The headers ipc.hpp includes itself (not what they include in turn).
standard=$(grep -E '^[[:space:]]*#[[:space:]]*include[[:space:]]*<' ipc.hpp | sed -E 's/.*<([^>]+)>.*/\1/' | sort -u)
echo "ipc.hpp includes: $(echo "$standard" | tr '\n' ' ')"
heavy='iostream sstream fstream regex functional locale iomanip algorithm chrono thread mutex map unordered_map optional variant filesystem'
flagged=()
for h in $standard; do
    for x in $heavy; do
        if [ "$h" = "$x" ]; then flagged+=("<$h>"); fi
    done
done
if [ ${#flagged[@]} -eq 0 ]; then
    echo "heavy headers: none (none of: $heavy)"
else
    echo "heavy headers: ${flagged[*]} (STYLE: avoid <iostream>, <sstream>, <regex>, <functional>)"
fi
