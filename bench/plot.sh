#!/bin/sh
# Turns ipc_bench's output into an SVG of the round-trip latencies: for each
# rt_* measure, the median of ipc.hpp, of the raw AF_UNIX floor and of the
# peers ZeroMQ and nng (bars, log scale) with the p99 as a whisker, and the
# median ratio ipc/raw above each group. A peer whose lines are missing or
# skipped (not built) is left out of the chart; one missing from a single
# measure leaves a gap there.
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
text=$(mktemp "${TMPDIR:-/tmp}/ipc-bench-plot.XXXXXX")
trap 'rm -f "$data" "$text"' EXIT INT TERM
cat -- "$in" > "$text"  # read twice: the rows, then the header

# One row per rt_* measure that has an ipc.hpp line:
#   name ipc_median ipc_p99 raw_median raw_p99 zeromq_median zeromq_p99
#   nng_median nng_p99 top
# NaN where a value is missing (gnuplot draws nothing there); top = the
# highest p99 of the row, where its label goes.
awk '
    function val(x) { return x == "" ? "NaN" : x }
    $1 ~ /^rt_/ {
        delete v
        for (i = 2; i <= NF; i++) {
            n = index($i, "=")
            if (n > 0) v[substr($i, 1, n - 1)] = substr($i, n + 1)
        }
        if (("ipc_us" in v) && ("raw_us" in v)) {
            rows++
            key[rows] = $1
            m[$1, "ipc"] = v["ipc_us"]; p[$1, "ipc"] = v["ipc_p99_us"]
            m[$1, "raw"] = v["raw_us"]; p[$1, "raw"] = v["raw_p99_us"]
        } else if (("peer" in v) && ("peer_us" in v)) {
            base = substr($1, 1, length($1) - length(v["peer"]) - 1)
            m[base, v["peer"]] = v["peer_us"]; p[base, v["peer"]] = v["peer_p99_us"]
        }
    }
    END {
        split("ipc raw zeromq nng", who, " ")
        for (r = 1; r <= rows; r++) {
            k = key[r]
            name = substr(k, 4)
            gsub(/_/, " ", name)
            line = "\"" name "\""
            top = 0
            for (w = 1; w <= 4; w++) {
                mv = ((k, who[w]) in m) ? m[k, who[w]] : ""
                pv = ((k, who[w]) in p) ? p[k, who[w]] : ""
                line = line " " val(mv) " " val(pv)
                if (pv != "" && pv + 0 > top) top = pv + 0
                if (mv != "" && mv + 0 > top) top = mv + 0
            }
            print line, (top > 0 ? top : 1)
        }
    }' "$text" > "$data"

if [ ! -s "$data" ]; then
    echo "plot.sh: no rt_* lines with ipc_us= and raw_us= in ${in}" >&2
    exit 1
fi

header=$(awk '/^# ipc_bench /{ sub(/^# /, ""); print; exit }' "$text" || true)
peers=$(awk '/^# peers: /{ sub(/^# /, ""); print; exit }' "$text" || true)

# The series: ipc.hpp and raw always, each peer when it has a value somewhere.
# (gnuplot column c is awk field NF - (10 - c): the quoted name has spaces.)
has() { awk -v c="$1" '$(NF - 10 + c) ~ /^[0-9]/ { found = 1 } END { exit !found }' "$data"; }
series="\"$data\" using 2:2:3:xtic(1) title \"ipc.hpp\" lc rgb \"#d95f02\", \"\" using 4:4:5 title \"raw AF_UNIX\" lc rgb \"#1b9e77\""
shown="ipc.hpp, raw AF_UNIX"
if has 6; then
    series="$series, \"\" using 6:6:7 title \"ZeroMQ REQ/REP\" lc rgb \"#7570b3\""
    shown="$shown, ZeroMQ"
fi
if has 8; then
    series="$series, \"\" using 8:8:9 title \"nng req0/rep0\" lc rgb \"#e7298a\""
    shown="$shown, nng"
fi
series="$series, \"\" using 0:(\$10 * 1.6):(sprintf(\"%.2fx\", \$2 / \$4)) with labels notitle font \",10\""

gnuplot <<EOF
set terminal svg size 1100,580 dynamic enhanced font "sans,11" background rgb "white"
set output "$out"
set title "round trip: ${shown}\nmedian (bar) and p99 (whisker) in microseconds, log scale; label: median ratio ipc/raw\n${header}${peers:+; $peers}" noenhanced
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
plot $series
EOF
echo "plot.sh: wrote $out (${shown})"
