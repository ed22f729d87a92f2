#!/usr/bin/env python3
"""Seeds a libFuzzer corpus for fuzz_decoder from tests/vectors.jsonl.

usage: make_corpus.py VECTORS_JSONL OUT_DIR

Each frame made by the reference encoder (and each decode input) becomes one
seed, prefixed by the byte that tells the target how to cut the stream.
"""
import json
import os
import sys

vectors, out = sys.argv[1], sys.argv[2]
os.makedirs(out, exist_ok=True)
count = 0
with open(vectors) as lines:
    for i, line in enumerate(lines):
        vector = json.loads(line)
        frame = vector.get("frame_hex") or vector.get("input_hex")
        if frame is None:
            continue
        for cut in (0, 1, 8, 9):
            with open(os.path.join(out, f"vector-{i}-{cut}"), "wb") as seed:
                seed.write(bytes([cut]) + bytes.fromhex(frame))
            count += 1
print(f"{count} seeds in {out}")
