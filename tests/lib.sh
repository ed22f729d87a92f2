# shellcheck shell=bash
# tests/lib.sh: plumbing shared by .ci/run and tests/{cross,fallbacks,consumer}/run.sh.
# Source it from bash, from any cwd. NAME is a script's line prefix ("ci",
# "cross arm"). Call the functions as plain commands, not under if, || or &&,
# so that set -e still stops them (at a failing apt-get, say).

# The repository's root, an absolute path, whatever the caller's cwd.
repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# have CHECK: is CHECK there: a command, or one of space-separated absolute path globs a file?
have() {
    local path
    case $1 in
        /*)
            # shellcheck disable=SC2086 # split and globbed on purpose
            for path in $1; do [ -f "$path" ] && return 0; done
            return 1
            ;;
        *) command -v "$1" >/dev/null 2>&1 ;;
    esac
}

# install_missing [--all] [--no-summary] NAME CHECK PACKAGE...: apt-get what fails its CHECK.
# (--all: every PACKAGE once one is missing. Not root or no apt-get: one error
# line, "NAME: 0 passed, 1 failed" unless --no-summary, and exit 1.)
install_missing() {
    local all=0 summary=1 name packages=() missing=()
    while true; do
        case $1 in
            --all) all=1 ;;
            --no-summary) summary=0 ;;
            *) break ;;
        esac
        shift
    done
    name=$1
    shift
    while [ $# -gt 0 ]; do
        packages+=("$2")
        have "$1" || missing+=("$2")
        shift 2
    done
    if [ ${#missing[@]} -eq 0 ]; then return 0; fi
    echo "$name: missing: ${missing[*]}"
    if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
        echo "$name: not root (or no apt-get): install ${missing[*]} and run again" >&2
        if [ "$summary" -eq 1 ]; then echo "$name: 0 passed, 1 failed"; fi
        exit 1
    fi
    if [ "$all" -eq 0 ]; then packages=("${missing[@]}"); fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update
    apt-get install -y --no-install-recommends "${packages[@]}"
}

# summary_exit PREFIX PASSED FAILED STATUS: the "PREFIXP passed, F failed" last line, and exit.
# (1 on STATUS != 0, a failure or nothing passed; else 0.)
summary_exit() {
    echo "$1$2 passed, $3 failed"
    if [ "$4" -ne 0 ] || [ "$3" -ne 0 ] || [ "$2" -eq 0 ]; then exit 1; fi
    exit 0
}

# meson_summary_exit NAME STARTED BUILD_DIR STATUS: "NAME: S s" and summary_exit from the test log.
# (S: since $SECONDS was STARTED. STATUS != 0 counts as at least one failure.)
meson_summary_exit() {
    local counts passed failed
    counts=$(python3 "$repo_root/tests/testlog_count.py" "$3")
    passed=${counts% *}
    failed=${counts#* }
    if [ "$4" -ne 0 ] && [ "$failed" -eq 0 ]; then failed=1; fi
    echo "$1: $((SECONDS - $2)) s"
    summary_exit "$1: " "$passed" "$failed" "$4"
}

stage_names=()
stage_seconds=()
stage_started=

# stage NAME SHORT HEADING: ends the running stage, starts "NAME: === N. HEADING ===".
stage() {
    stage_end "$1"
    stage_names+=("$2")
    stage_started=$SECONDS
    echo "$1: === ${#stage_names[@]}. $3 ==="
}

# stage_end NAME: ends the running stage, if any: "NAME: stage N (SHORT): S s".
stage_end() {
    local n=${#stage_names[@]}
    if [ -z "$stage_started" ]; then return 0; fi
    stage_seconds+=($((SECONDS - stage_started)))
    stage_started=
    echo "$1: stage $n (${stage_names[n - 1]}): ${stage_seconds[n - 1]} s"
}

# stage_table NAME: ends the running stage, prints each stage's time and the total.
stage_table() {
    local i total=0
    stage_end "$1"
    echo "$1: stage times:"
    for i in "${!stage_names[@]}"; do
        printf '%s: %4d s  %d. %s\n' "$1" "${stage_seconds[i]}" $((i + 1)) "${stage_names[i]}"
        total=$((total + stage_seconds[i]))
    done
    printf '%s: %4d s  total\n' "$1" "$total"
}
