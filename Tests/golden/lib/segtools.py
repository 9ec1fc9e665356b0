"""Helpers for the logfix/logpack golden cases: make a segment from a seed,
split a segment into its records, run a tool.

    import os, sys
    sys.dont_write_bytecode = True  # no __pycache__ in the repository
    sys.path.insert(0, os.environ["ROOT"] + "/Tests/golden/lib")
    from segtools import records_jsonl, encode, split, run
"""
import json
import random
import struct
import subprocess
import sys


def records_jsonl(seed, count, keys=12, deletes=0.2, max_key=20, max_value=60, t0=1700000000000):
    """`count` JSON lines from random.Random(seed): puts and deletes over a few
    keys of varied lengths (so keys are overwritten and deleted), values of
    varied lengths, timestamps t0, t0+1, ..."""
    rng = random.Random(seed)
    names = ["k%d-%s" % (n, "x" * rng.randrange(max_key)) for n in range(keys)]
    lines = []
    for i in range(count):
        key = rng.choice(names)
        if rng.random() < deletes:
            lines.append({"key": key, "type": "delete", "timestamp": t0 + i})
        else:
            value = "v%d-%s" % (i, "".join(rng.choice("abcdefgh é") for _ in range(rng.randrange(max_value))))
            lines.append({"key": key, "value": value, "timestamp": t0 + i})
    return "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines).encode()


def run(args, data=b"", ok=(0,)):
    """Runs a command; exits the case with a message if its status is not in `ok`."""
    p = subprocess.run(args, input=data, capture_output=True)
    if ok is not None and p.returncode not in ok:
        sys.exit("FAIL: %s exited %d: %s" % (" ".join(args), p.returncode, p.stderr.decode(errors="replace")))
    return p


def encode(jsonl):
    """The binary records logenc makes of `jsonl`."""
    return run(["logenc"], jsonl).stdout


def split(segment):
    """[(offset, length)] of the records of a valid segment (lengths from the headers)."""
    out = []
    offset = 0
    while offset < len(segment):
        key_length, value_length = struct.unpack(">II", segment[offset + 8:offset + 16])
        length = 28 + key_length + value_length
        out.append((offset, length))
        offset += length
    if offset != len(segment):
        raise ValueError("not a whole number of records")
    return out
