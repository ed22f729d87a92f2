#!/usr/bin/env bash
# tests/examples_test.sh IPCCTL COUNTER_SERVER PING_CLIENT
#
# Drives the example programs as a user would, as real processes: ipcctl's
# whole contract (list, send, echo and their stop conditions, --help, bad
# arguments, bounded waits) and the README's demo (the seed's counter server
# and ping client). Every wait is bounded; ends with "N passed, N failed".
set -u

ipcctl=$1
counter_server=$2
ping_client=$3
dir=$(mktemp -d "${TMPDIR:-/tmp}/ipchpp-examples.XXXXXX")
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
    rm -rf "$dir"
}
trap cleanup EXIT

passed=0
failed=0
check() {  # check DESCRIPTION EXPECTED ACTUAL
    if [ "$2" == "$3" ]; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        echo "FAIL: $1: expected [$2], got [$3]"
    fi
}
# reap PID: `wait` for a process of ours, for at most 20 s; past that it
# is killed and the status is 124 (a hung server fails its check, it does
# not hang the suite).
reap() {
    for _ in $(seq 2000); do
        kill -0 "$1" 2> /dev/null || break
        sleep 0.01
    done
    if kill -0 "$1" 2> /dev/null; then
        echo "FAIL: process $1 still running after 20 s: killed"
        kill -9 "$1" 2> /dev/null
        wait "$1" 2> /dev/null
        return 124
    fi
    wait "$1"
}
# wait_for_socket PATH: until a supervisor has made its socket file (at most 5 s).
wait_for_socket() {
    for _ in $(seq 500); do
        [ -S "$1" ] && return 0
        sleep 0.01
    done
    return 1
}
# wait_for_name NAME: until `ipcctl list` shows NAME (at most 5 s).
wait_for_name() {
    for _ in $(seq 500); do
        "$ipcctl" --dir "$dir" list 2>/dev/null | grep -qx "$1" && return 0
        sleep 0.01
    done
    return 1
}

# --help everywhere, exit 0; bad arguments exit 2 with a message.
for args in "--help" "list --help" "exist --help" "wait --help" "send --help" "echo --help" "serve --help"; do
    # shellcheck disable=SC2086
    "$ipcctl" $args > "$dir/out" 2>&1
    check "ipcctl $args exits 0" 0 $?
    grep -q "usage: ipcctl" "$dir/out"
    check "ipcctl $args prints a usage" 0 $?
done
for args in "" "bogus" "send" "send a text/plain" "echo" "--dir" "echo n --max x" "send n text/plain c --wait-ms -1" "--nope list" \
    "exist" "exist a b" "exist bad.name" "wait" "wait n --timeout-ms x" "wait n --bogus" "send bad.name text/plain x" \
    "send n text/plain --file" "send n text/plain x --file f" \
    "serve" "serve n" "serve n --" "serve -- cat" "serve bad.name -- cat" "serve n --reply-type bad -- cat" \
    "serve n --command-timeout-ms 0 -- cat" "serve n --command-timeout-ms x -- cat" "serve n --max 0 -- cat" \
    "serve n --bogus -- cat" "serve n m -- cat"; do
    # shellcheck disable=SC2086
    "$ipcctl" $args > /dev/null 2> "$dir/err"
    check "ipcctl $args exits 2" 2 $?
    check "ipcctl $args explains on stderr" 1 "$([ -s "$dir/err" ] && echo 1 || echo 0)"
done

# An echo server: list, send (content bytes on stdout, canonical round trip),
# stop on `stop` after answering it, then the count on stdout.
"$ipcctl" --dir "$dir" echo e1 > "$dir/e1.out" 2> "$dir/e1.err" &
pids+=($!)
e1=$!
wait_for_name e1
check "list shows the echo server" "e1" "$("$ipcctl" --dir "$dir" list)"
check "send prints the reply's content" "hello world" "$("$ipcctl" --dir "$dir" send e1 'text/plain;charset=utf-8' 'hello world')"
check "send of an empty content" "" "$("$ipcctl" --dir "$dir" send e1 application/octet-stream '')"
"$ipcctl" --dir "$dir" send e1 'not a type' x > /dev/null 2> "$dir/err"
check "an invalid media type fails" 1 $?
check "with a one-line error" 1 "$(wc -l < "$dir/err")"
# `stop` is not answered (innmind/ipc's fixtures/server.php): the sender's
# wait ends with the server's close, so send fails, printing nothing.
"$ipcctl" --dir "$dir" send e1 text/plain stop > "$dir/stop.out" 2> "$dir/err"
check "send of stop fails: no reply" 1 $?
check "send of stop prints no reply" "" "$(cat "$dir/stop.out")"
check "send of stop says the server closed" 1 "$(grep -c 'connection closed' "$dir/err")"
reap "$e1"
check "echo exits 0 after stop" 0 $?
check "echo prints how many messages it received" 3 "$(cat "$dir/e1.out")"
check "the server is gone from the list" "" "$("$ipcctl" --dir "$dir" list)"
check "its socket file is removed" 0 "$(find "$dir" -name '*.sock' | wc -l)"

# send to nobody: fails within --wait-ms, one line on stderr.
start=$(date +%s%N)
"$ipcctl" --dir "$dir" send nobody text/plain x --wait-ms 300 > /dev/null 2> "$dir/err"
rc=$?
elapsed=$((($(date +%s%N) - start) / 1000000))
check "send to a missing server fails" 1 $rc
check "within its --wait-ms (300 ms, under 3 s)" 1 "$([ "$elapsed" -ge 300 ] && [ "$elapsed" -lt 3000 ] && echo 1 || echo 0)"
check "with a one-line error" 1 "$(wc -l < "$dir/err")"

# exist and wait: exit codes for scripts; send - and --file: binary-safe.
"$ipcctl" --dir "$dir" exist nobody
check "exist on a missing server exits 1" 1 $?
start=$(date +%s%N)
"$ipcctl" --dir "$dir" wait nobody --timeout-ms 300 > /dev/null 2> "$dir/err"
rc=$?
elapsed=$((($(date +%s%N) - start) / 1000000))
check "wait on a missing server exits 1 after --timeout-ms" 1 "$([ "$rc" -eq 1 ] && [ "$elapsed" -ge 300 ] && [ "$elapsed" -lt 3000 ] && echo 1 || echo 0)"
check "with a one-line error" 1 "$(wc -l < "$dir/err")"
"$ipcctl" --dir "$dir" wait e4 --timeout-ms 10000 > /dev/null 2> "$dir/wait.err" &
waiter=$!
sleep 0.2
"$ipcctl" --dir "$dir" echo e4 > "$dir/e4.out" &
pids+=($!)
e4=$!
reap "$waiter"
check "wait returns 0 once the server appears" 0 $?
"$ipcctl" --dir "$dir" exist e4
check "exist on a live server exits 0" 0 $?
printf 'a\0b\377\0' > "$dir/bin.in"
"$ipcctl" --dir "$dir" send e4 application/octet-stream - < "$dir/bin.in" > "$dir/bin.out"
check "send - exits 0" 0 $?
cmp -s "$dir/bin.in" "$dir/bin.out"
check "send - is binary-safe (NUL and 0xFF come back)" 0 $?
head -c 300000 /dev/urandom > "$dir/big.in"
"$ipcctl" --dir "$dir" send e4 application/octet-stream --file "$dir/big.in" > "$dir/big.out"
check "send --file exits 0" 0 $?
cmp -s "$dir/big.in" "$dir/big.out"
check "send --file sends the file's bytes (300 kB)" 0 $?
"$ipcctl" --dir "$dir" send e4 text/plain --file "$dir/missing" > /dev/null 2> "$dir/err"
check "send --file of a missing file exits 1" 1 $?
check "with a one-line error" 1 "$(wc -l < "$dir/err")"
"$ipcctl" --dir "$dir" send e4 text/plain stop > /dev/null 2>&1
reap "$e4"
check "the echo server stops on stop" 0 $?

# --max N: stops after answering the Nth message.
"$ipcctl" --dir "$dir" echo e2 --max 2 > "$dir/e2.out" &
pids+=($!)
e2=$!
wait_for_name e2
check "--max: first" "a" "$("$ipcctl" --dir "$dir" send e2 text/plain a)"
check "--max: second" "b" "$("$ipcctl" --dir "$dir" send e2 text/plain b)"
reap "$e2"
check "--max 2 stops and exits 0" 0 $?
check "--max 2 prints 2" 2 "$(cat "$dir/e2.out")"

# --timeout-ms T: stops after T ms without activity.
start=$(date +%s%N)
"$ipcctl" --dir "$dir" echo e3 --timeout-ms 300 > "$dir/e3.out"
check "--timeout-ms exits 0" 0 $?
elapsed=$((($(date +%s%N) - start) / 1000000))
check "--timeout-ms 300 stops between 0.3 and 3 s" 1 "$([ "$elapsed" -ge 300 ] && [ "$elapsed" -lt 3000 ] && echo 1 || echo 0)"
check "--timeout-ms prints 0" 0 "$(cat "$dir/e3.out")"

# SIGINT and SIGTERM stop it gracefully.
for sig in INT TERM; do
    "$ipcctl" --dir "$dir" echo "e$sig" > "$dir/$sig.out" &
    pids+=($!)
    pid=$!
    wait_for_name "e$sig"
    "$ipcctl" --dir "$dir" send "e$sig" text/plain one > /dev/null
    kill -"$sig" "$pid"
    reap "$pid"
    check "SIG$sig: exits 0" 0 $?
    check "SIG$sig: prints the count" 1 "$(cat "$dir/$sig.out")"
done

# serve NAME -- CMD: one command per message, content on stdin, the media
# type and the sender on the environment, stdout the reply; a failing,
# missing or slow command gets the sender no reply (its connection closed),
# one line on stderr, and the server serves on.
cat > "$dir/cmd.sh" << 'END'
c=$(cat)
case $c in
    fail) echo "to stderr" >&2; exit 3 ;;
    slow) sleep "$MARK" & sleep "$MARK" ;;
    linger) printf early; sleep "$MARK" & exit 0 ;;
    fds) for f in /proc/$$/fd/*; do readlink "$f"; done | grep -c '^socket:'; env | grep -c '^LISTEN_'; exit 0 ;;
    env) printf '%s|%s|%s|%s|%s' "$IPC_NAME" "$IPC_MEDIA_TYPE" "${IPC_PEER_UID-unset}" "${IPC_PEER_GID-unset}" "${IPC_PEER_PID-unset}" ;;
    *) printf '<%s>' "$c" ;;
esac
END
# A sleep only this run's commands start (pgrep matches nothing else).
export MARK="30.$$"
"$ipcctl" --dir "$dir" serve s1 --command-timeout-ms 300 -- sh "$dir/cmd.sh" > "$dir/s1.out" 2> "$dir/s1.err" &
pids+=($!)
s1=$!
wait_for_name s1
check "serve: stdout is the reply" "<hi there>" "$("$ipcctl" --dir "$dir" send s1 text/plain 'hi there')"
check "serve: the request's media type by default" "text/plain; charset=utf-8" "$("$ipcctl" --dir "$dir" send s1 'text/plain;charset=utf-8' x --print-type | head -n1)"
IFS='|' read -r v_name v_type v_uid v_gid v_pid <<< "$("$ipcctl" --dir "$dir" send s1 'application/x-test' env)"
check "serve: IPC_NAME" s1 "$v_name"
check "serve: IPC_MEDIA_TYPE" application/x-test "$v_type"
# SO_PEERCRED: the sender's uid and gid; unset only where the platform
# cannot tell (then all three are).
if [ "$v_uid" = unset ]; then
    check "serve: without SO_PEERCRED the peer variables are all unset" "unset unset" "$v_gid $v_pid"
else
    check "serve: IPC_PEER_UID and IPC_PEER_GID are the sender's" "$(id -u) $(id -g)" "$v_uid $v_gid"
    check "serve: IPC_PEER_PID is a pid other than the server's" 1 "$([[ "$v_pid" =~ ^[0-9]+$ ]] && [ "$v_pid" != "$s1" ] && echo 1 || echo 0)"
fi
"$ipcctl" --dir "$dir" send s1 text/plain fail > "$dir/fail.out" 2> "$dir/err"
check "serve: a command that exits non-zero gets no reply" "1 " "$? $(cat "$dir/fail.out")"
check "serve: the sender sees the connection closed" 1 "$(grep -c 'connection closed' "$dir/err")"
start=$(date +%s%N)
"$ipcctl" --dir "$dir" send s1 text/plain slow > /dev/null 2>&1
rc=$?
elapsed=$((($(date +%s%N) - start) / 1000000))
check "serve: a command past --command-timeout-ms (300) is killed, no reply, in under 3 s" "1 1" "$rc $([ "$elapsed" -ge 300 ] && [ "$elapsed" -lt 3000 ] && echo 1 || echo 0)"
check "serve: with its process group (no sleep left)" 0 "$(pgrep -fx "sleep $MARK" | wc -l)"
"$ipcctl" --dir "$dir" send s1 text/plain linger > "$dir/linger.out" 2> /dev/null
check "serve: a command that exits 0 but leaves its stdout held open gets no reply" "1 " "$? $(cat "$dir/linger.out")"
check "serve: and what held it is killed" 0 "$(pgrep -fx "sleep $MARK" | wc -l)"
check "serve: and serves on" "<after>" "$("$ipcctl" --dir "$dir" send s1 text/plain after)"
kill -TERM "$s1"
reap "$s1"
check "serve: SIGTERM exits 0" 0 $?
check "serve: and prints how many messages it received" 7 "$(cat "$dir/s1.out")"
check "serve: the command's own stderr passes through" 1 "$(grep -c '^to stderr$' "$dir/s1.err")"
check "serve: one line on stderr per failure (exit status, timeout)" \
    "ipcctl: serve s1: sh: exited with status 3; no reply|ipcctl: serve s1: sh: timed out after 300 ms; killed; no reply|ipcctl: serve s1: sh: exited with status 0, but its stdout stayed open (held by a process it started); killed; no reply" \
    "$(grep '^ipcctl' "$dir/s1.err" | tr '\n' '|' | sed 's/|$//')"

# Binary content both ways, larger than a pipe holds; --reply-type; --max.
"$ipcctl" --dir "$dir" serve s2 --reply-type application/octet-stream --max 2 -- cat > "$dir/s2.out" 2> "$dir/s2.err" &
pids+=($!)
s2=$!
wait_for_name s2
head -c 1000000 /dev/urandom > "$dir/mb.in"
"$ipcctl" --dir "$dir" send s2 text/plain --file "$dir/mb.in" > "$dir/mb.out"
check "serve: 1 MB of random bytes through cat" 0 "$(cmp -s "$dir/mb.in" "$dir/mb.out"; echo $?)"
check "serve: --reply-type sets the reply's media type" "application/octet-stream" "$("$ipcctl" --dir "$dir" send s2 text/plain x --print-type | head -n1)"
reap "$s2"
check "serve: --max 2 stops after the second and exits 0" "0 2" "$? $(cat "$dir/s2.out")"

# SIGCHLD inherited as ignored (children would reap themselves): a failing
# command is still a failure, never its output as a reply.
env --ignore-signal=CHLD "$ipcctl" --dir "$dir" serve s4 --max 1 -- sh -c 'cat; exit 3' > /dev/null 2> "$dir/s4.err" &
pids+=($!)
s4=$!
wait_for_name s4
"$ipcctl" --dir "$dir" send s4 text/plain x > "$dir/s4.reply" 2> /dev/null
check "serve: with SIGCHLD ignored, a failing command still gets no reply" "1 " "$? $(cat "$dir/s4.reply")"
check "serve: and is reported" 1 "$(grep -c 'exited with status 3; no reply' "$dir/s4.err")"
kill -TERM "$s4" 2> /dev/null
reap "$s4"

# A command that cannot be run: one line, no reply, serving on.
"$ipcctl" --dir "$dir" serve s3 --max 2 -- "$dir/no-such-command" > /dev/null 2> "$dir/s3.err" &
pids+=($!)
s3=$!
wait_for_name s3
"$ipcctl" --dir "$dir" send s3 text/plain x > /dev/null 2>&1
check "serve: a missing command gets no reply" 1 $?
"$ipcctl" --dir "$dir" send s3 text/plain x > /dev/null 2>&1
kill -TERM "$s3" 2> /dev/null
reap "$s3"
check "serve: says why, once per message" "2 2" "$(grep -c 'cannot run it: No such file or directory; no reply' "$dir/s3.err") $(wc -l < "$dir/s3.err")"

# systemd socket activation, with Debian's systemd-socket-activate: it binds
# and listens, waits for a first connection, then execs the server with
# LISTEN_PID/LISTEN_FDS (and LISTEN_FDNAMES with --fdname). The server must
# serve that socket (not bind its own), and leave the file to the supervisor.
if command -v systemd-socket-activate > /dev/null 2>&1; then
    for how in fdname path; do
        fdname=()
        [ "$how" = fdname ] && fdname=(--fdname=act)
        systemd-socket-activate -l "$dir/act.sock" "${fdname[@]}" "$ipcctl" --dir "$dir" echo act > "$dir/act.out" 2> "$dir/act.err" &
        pids+=($!)
        act=$!
        wait_for_socket "$dir/act.sock"
        inode=$(stat -c %i "$dir/act.sock")
        check "activation by $how: the first message starts the server and is answered" "one" "$("$ipcctl" --dir "$dir" send act text/plain one)"
        "$ipcctl" --dir "$dir" exist act
        check "activation by $how: the supervisor's socket counts as live" 0 $?
        check "activation by $how: and the next" "two" "$("$ipcctl" --dir "$dir" send act text/plain two)"
        check "activation by $how: the server has no file of its own" "act.sock" "$(cd "$dir" && ls -d act* .act* 2> /dev/null | grep -v '^act\.\(out\|err\)$' | tr '\n' ' ' | sed 's/ $//')"
        "$ipcctl" --dir "$dir" send act text/plain stop > /dev/null 2>&1
        reap "$act"
        check "activation by $how: the server exits 0 after stop" 0 $?
        check "activation by $how: it received the three messages" 3 "$(cat "$dir/act.out")"
        check "activation by $how: the socket file is left to the supervisor" "$inode" "$(stat -c %i "$dir/act.sock" 2> /dev/null)"
        rm -f "$dir/act.sock"
    done
    # Two sockets passed, ours second: `serve` takes its own by name, and the
    # commands it runs inherit neither socket nor LISTEN_* variables.
    systemd-socket-activate -l "$dir/other.sock" -l "$dir/act2.sock" --fdname=other:act2 \
        "$ipcctl" --dir "$dir" serve act2 --max 1 -- sh "$dir/cmd.sh" > /dev/null 2> "$dir/act2.err" &
    pids+=($!)
    act2=$!
    wait_for_socket "$dir/act2.sock"
    check "activation: a command of serve inherits no socket and no LISTEN_ variable" "0 0" "$("$ipcctl" --dir "$dir" send act2 text/plain fds | tr '\n' ' ' | sed 's/ $//')"
    reap "$act2"
    check "activation: serve took its socket by name and stopped after --max 1" 0 $?
    rm -f "$dir/other.sock" "$dir/act2.sock"

    # The example units (examples/systemd/), checked by systemd itself, with
    # ExecStart pointing at this build's ipcctl.
    units=$(dirname "${BASH_SOURCE[0]}")/../examples/systemd
    mkdir -p "$dir/units"
    cp "$units/echo-server.socket" "$dir/units/"
    sed "s|/usr/local/bin/ipcctl|$(readlink -f "$ipcctl")|" "$units/echo-server.service" > "$dir/units/echo-server.service"
    systemd-analyze verify "$dir/units/echo-server.socket" "$dir/units/echo-server.service" > "$dir/verify.out" 2>&1
    check "systemd-analyze verify accepts examples/systemd/ ($(tr '\n' ' ' < "$dir/verify.out"))" 0 $?
else
    check "systemd-socket-activate is installed (apt-get install systemd)" yes no
fi

# The README's demo: the seed's counter server and ping client.
TMPDIR=$dir "$counter_server" > "$dir/counter.out" 2>&1 &
pids+=($!)
server=$!
check "ping_client prints the seed's line" "server responded pong" "$(TMPDIR=$dir timeout 20 "$ping_client")"
kill -TERM "$server"
reap "$server"
check "counter_server stops gracefully on SIGTERM" 0 $?
check "and prints its count" "counter: 1" "$(cat "$dir/counter.out")"

echo "examples: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
