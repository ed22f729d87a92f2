#!/bin/sh
# Turns ipc_bench's output into an SVG of the round-trip latencies: for each
# rt_* measure, the median of ipc.hpp and of the raw AF_UNIX floor (bars,
# log scale) with the p99 as a whisker, and the median ratio above each pair.
#
#   build/bench/ipc_bench > bench/results.txt
#   bench/plot.sh bench/results.txt            # writes bench/latency.svg
#   build/bench/ipc_bench --quick | bench/plot.sh - /tmp/latency.svg
#
# Needs gnuplot (Debian: apt-get install -y gnuplot-nox).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
in=${1:--}
out=${2:-$here/latency.svg}

if ! command -v gnuplot >/dev/null 2>&1; then
    echo "plot.sh: gnuplot not found (Debian: apt-get install -y gnuplot-nox)" >&2
    exit 1
fi

data=$(mktemp "${TMPDIR:-/tmp}/ipc-bench-plot.XXXXXX")
trap 'rm -f "$data"' EXIT INT TERM

# name ipc_median ipc_p99 raw_median raw_p99, one rt_* line each.
cat -- "$in" | awk '
    $1 ~ /^rt_/ {
        delete v
        for (i = 2; i <= NF; i++) {
            n = index($i, "=")
            if (n > 0) v[substr($i, 1, n - 1)] = substr($i, n + 1)
        }
        if (("ipc_us" in v) && ("raw_us" in v)) {
            name = substr($1, 4)
            gsub(/_/, " ", name)
            printf "\"%s\" %s %s %s %s\n", name, v["ipc_us"], v["ipc_p99_us"], v["raw_us"], v["raw_p99_us"]
        }
    }' > "$data"

if [ ! -s "$data" ]; then
    echo "plot.sh: no rt_* lines with ipc_us= and raw_us= in ${in}" >&2
    exit 1
fi

header=$(cat -- "$in" 2>/dev/null | awk '/^# ipc_bench /{ sub(/^# /, ""); print; exit }' || true)

gnuplot <<EOF
set terminal svg size 1000,560 dynamic enhanced font "sans,11" background rgb "white"
set output "$out"
set title "ipc.hpp round trip vs the raw AF_UNIX floor\nmedian (bar) and p99 (whisker) in microseconds, log scale; label: median ratio ipc/raw\n${header}" noenhanced
set style data histogram
set style histogram errorbars gap 2 lw 1
set style fill solid 0.85 border rgb "black"
set boxwidth 0.9
set logscale y
set yrange [1:*]
set ylabel "microseconds"
set format y "%.0f"
set grid ytics lc rgb "#dddddd"
set xtics nomirror noenhanced font ",10"
set key left top noenhanced
plot "$data" using 2:2:3:xtic(1) title "ipc.hpp" lc rgb "#d95f02", \
     "" using 4:4:5 title "raw AF_UNIX" lc rgb "#1b9e77", \
     "" using 0:(\$3 > \$5 ? \$3 * 1.6 : \$5 * 1.6):(sprintf("%.2fx", \$2 / \$4)) with labels notitle font ",10"
EOF
echo "plot.sh: wrote $out"
