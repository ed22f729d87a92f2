#!/bin/sh
# compile_and_run.sh OUTPUT COMPILER ARGS...: compiles with COMPILER ARGS
# into OUTPUT, then runs OUTPUT. Used by the "strict ..." tests.
set -eu
out=$1
shift
"$@" -o "$out"
exec "$out"
