#!/usr/bin/env python3
"""The functions that cost most per round trip, by callgrind.

    callgrind_top.py FILE_N FILE_2N N [COUNT]

FILE_N and FILE_2N are callgrind output files of one process (the server or
the client) after N and 2N round trips; prints the COUNT (default 5)
functions whose own instructions (exclusive Ir) grew most between them,
divided by N: what one round trip spends in each, start-up cancelled out.
"""
import re
import subprocess
import sys


def self_costs(path):
    out = subprocess.run(["callgrind_annotate", "--threshold=100", "--inclusive=no", path],
                         capture_output=True, text=True, check=True).stdout
    costs = {}
    for line in out.splitlines():
        m = re.match(r"\s*([\d,]+)\s+(?:\([\s\d.]+%\)\s+)?(\S.*)$", line)
        if not m or "=>" in line or ":" not in m.group(2):
            continue
        name = m.group(2)
        if name.startswith("PROGRAM TOTALS"):
            continue
        costs[name] = costs.get(name, 0) + int(m.group(1).replace(",", ""))
    return costs


def short(name):
    name = re.sub(r"\s*\[[^\]]*\]$", "", name)  # the object file
    name = name.split(":", 1)[1] if ":" in name.split("(")[0] else name  # the source file
    name = name.replace("(anonymous namespace)::", "").replace("ipc_hpp::v0_2::", "").replace("std::__cxx11::", "std::")
    depth, cut = 0, []
    for ch in name:  # template arguments and parameters elided
        if ch in "<(":
            if depth == 0:
                cut.append(ch + ("...>" if ch == "<" else "...)"))
            depth += 1
        elif ch in ">)":
            depth -= 1
        elif depth == 0:
            cut.append(ch)
    return "".join(cut)[:100]


def main():
    a, b, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    count = int(sys.argv[4]) if len(sys.argv) > 4 else 5
    ca, cb = self_costs(a), self_costs(b)
    rows = sorted(((cb.get(k, 0) - ca.get(k, 0)) / n, k) for k in set(ca) | set(cb))
    for per_rt, name in reversed(rows[-count:]):
        print(f"  {per_rt:7.1f}  {short(name)}")


if __name__ == "__main__":
    main()
