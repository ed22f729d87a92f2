#!/usr/bin/env python3
"""testlog_count.py BUILD_DIR: prints "PASSED FAILED" from meson's test log.

Counted like .ci/run does: OK and EXPECTEDFAIL pass, SKIP is neither, FAIL,
TIMEOUT, ERROR and UNEXPECTEDPASS fail; a missing log is one failure (the
suite did not run). Used by .ci/run and tests/lib.sh (meson_summary_exit,
for tests/cross/run.sh and tests/fallbacks/run.sh).
"""
import json
import sys

passed = failed = 0
try:
    with open(sys.argv[1] + "/meson-logs/testlog.json") as log:
        for line in log:
            if line.strip():
                result = json.loads(line)["result"]
                if result in ("OK", "EXPECTEDFAIL"):
                    passed += 1
                elif result != "SKIP":
                    failed += 1
except FileNotFoundError:
    failed += 1
print(passed, failed)
