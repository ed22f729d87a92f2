#!/usr/bin/env bash
# User-space instructions per 16-byte round trip, server and client apart,
# by callgrind (instruction counts are steady on noisy machines, unlike
# times). Runs ipc_bench's isolated measures (ipc_rt_16B, raw_rt_16B: warm-up
# plus N untimed round trips, both processes on the first CPU) under
#   valgrind --tool=callgrind --trace-children=yes
# for N and 2N round trips, and prints (Ir(2N) - Ir(N)) / N for each process,
# so start-up, connection and warm-up cancel out.
#
#   bench/callgrind.sh [--budget FILE] [IPC_BENCH] [N]   # defaults: build/bench/ipc_bench 2000
#
# Then, for the server and the client apart, the five functions whose own
# instructions cost most per round trip (bench/callgrind_top.py). With
# --budget FILE (bench/callgrind_budget.txt, in CI), it fails (exit 3) when
# ipc_total is over the budget the file holds: the guard that keeps a rise
# from landing unseen. Lower the budget with every change that cuts the path.
#
# Needs valgrind (Debian: apt-get install -y valgrind). Output: one line per
# floor, in ipc_bench's key=value form, e.g.
#   callgrind_rt_16B ipc_server=... ipc_client=... ipc_total=... raw_server=... raw_client=... raw_total=... rts=N
# To see where they go: callgrind_annotate on the files this leaves in
# $KEEP (set KEEP=DIR to keep them).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
budget_file=
if [ "${1:-}" = --budget ]; then
    budget_file=$2
    shift 2
fi
bench=${1:-$here/../build/bench/ipc_bench}
n=${2:-2000}

if ! command -v valgrind >/dev/null 2>&1; then
    echo "callgrind.sh: valgrind not found (Debian: apt-get install -y valgrind)" >&2
    exit 1
fi
if [ ! -x "$bench" ]; then
    echo "callgrind.sh: $bench is not built (meson compile -C build ipc_bench)" >&2
    exit 1
fi

work=${KEEP:-$(mktemp -d "${TMPDIR:-/tmp}/ipc-callgrind.XXXXXX")}
mkdir -p "$work"
[ -n "${KEEP:-}" ] || trap 'rm -rf "$work"' EXIT INT TERM

# run MEASURE ITERATIONS: prints "server_Ir client_Ir" for one run, and
# leaves the two processes' output files as $work/MEASURE.ITERATIONS.{server,client}.
run() {
    local measure=$1 iters=$2 out=$work/$1.$2 server client
    mkdir -p "$out"
    valgrind --tool=callgrind --trace-children=yes --callgrind-out-file="$out/cg.%p" \
        "$bench" --only "$measure" --iterations "$iters" --verbose >"$out/stdout" 2>"$out/stderr"
    # ipc_bench --verbose names each child: "# MEASURE: ROLE pid=PID cpus=..."
    server=$(sed -nE "s/^# $measure: server-[a-z]+ pid=([0-9]+).*/\1/p" "$out/stderr")
    client=$(sed -nE "s/^# $measure: client pid=([0-9]+).*/\1/p" "$out/stderr")
    if [ -z "$server" ] || [ -z "$client" ]; then
        echo "callgrind.sh: $measure: no child pids in ipc_bench's output" >&2
        cat "$out/stderr" >&2
        exit 1
    fi
    cp "$out/cg.$server" "$out.server"
    cp "$out/cg.$client" "$out.client"
    echo "$(total "$out/cg.$server") $(total "$out/cg.$client")"
}

# total FILE: the instructions (Ir) a callgrind output file counted.
total() {
    sed -nE 's/^(summary|totals): ([0-9]+).*/\2/p' "$1" | head -n 1
}

line() {
    local measure=$1 a b
    read -r -a a <<<"$(run "$measure" "$n")"
    read -r -a b <<<"$(run "$measure" $((2 * n)))"
    awk -v n="$n" -v s1="${a[0]}" -v c1="${a[1]}" -v s2="${b[0]}" -v c2="${b[1]}" \
        'BEGIN { s = (s2 - s1) / n; c = (c2 - c1) / n; printf "%.0f %.0f %.0f", s, c, s + c }'
}

read -r is ic it <<<"$(line ipc_rt_16B)"
read -r rs rc rt <<<"$(line raw_rt_16B)"
echo "callgrind_rt_16B ipc_server=$is ipc_client=$ic ipc_total=$it raw_server=$rs raw_client=$rc raw_total=$rt rts=$n method=Ir(2N)-Ir(N)/N"
if command -v callgrind_annotate >/dev/null 2>&1 && command -v python3 >/dev/null 2>&1; then
    for role in server client; do
        echo "# ipc_rt_16B $role: the five functions that cost most, own instructions per round trip"
        python3 "$here/callgrind_top.py" "$work/ipc_rt_16B.$n.$role" "$work/ipc_rt_16B.$((2 * n)).$role" "$n" 5
    done
fi
if [ -n "$budget_file" ]; then
    budget=$(sed -nE 's/^ipc_total_budget=([0-9]+).*/\1/p' "$budget_file")
    if [ -z "$budget" ]; then
        echo "callgrind.sh: no ipc_total_budget=N line in $budget_file" >&2
        exit 1
    fi
    if [ "$it" -gt "$budget" ]; then
        echo "callgrind_budget: FAIL ipc_total=$it is over the budget of $budget ($budget_file)"
        exit 3
    fi
    echo "callgrind_budget: ok ipc_total=$it within the budget of $budget ($budget_file)"
fi
