#!/usr/bin/env python3
"""Compares `logpack DIR` of two builds on the same random stores: the merged
segments must be the same bytes and the reports the same but for duration_ms.
For checking that a change to the merge's algorithm keeps what it writes.

usage: merge_compare.py OLD_BIN NEW_BIN [--stores N] [--seed S] [--dir DIR]

Each store: 1 to 400 atomic batches of 1-12 records (puts and deletes over a
few to a few hundred keys, values of 0-300 bytes), written with
`logenc -a --atomic` at a --segment-size of 256 bytes to 64 KB, so segments,
batches, overwrites inside and across segments and tombstones that do or do
not hide a PUT all occur; then merged once or twice, with appends between.
"""
import argparse
import json
import os
import random
import shutil
import subprocess
import sys


def run(args, data=None):
    p = subprocess.run(args, input=data, capture_output=True)
    return p.returncode, p.stdout, p.stderr


def write(bin_dir, store, rng, segment_size, keys):
    lines = []
    for _ in range(rng.randint(1, 400)):
        for _ in range(rng.randint(1, 12)):
            key = "k%d" % rng.randrange(keys)
            if rng.random() < 0.25:
                lines.append(json.dumps({"key": key, "type": "delete", "timestamp": 1}))
            else:
                lines.append(json.dumps({"key": key, "value": "v" * rng.randint(0, 300), "timestamp": 1}))
        lines.append('{"type":"commit"}')
    code, _, err = run([os.path.join(bin_dir, "logenc"), "-a", store + "/", "--atomic", "--sync", "none",
                        "--segment-size", str(segment_size)], ("\n".join(lines) + "\n").encode())
    if code != 0:
        sys.exit("logenc failed: %s" % err.decode())


def snapshot(store):
    return {name: open(os.path.join(store, name), "rb").read()
            for name in sorted(os.listdir(store)) if name.startswith("segment-")}


def report(out, store):
    line = json.loads(out.decode().replace(store, "STORE"))
    line.pop("duration_ms")
    return json.dumps(line, sort_keys=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("old")
    parser.add_argument("new")
    parser.add_argument("--stores", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--dir", default="/tmp/merge-compare")
    args = parser.parse_args()
    failed = 0
    for n in range(args.stores):
        rng = random.Random("%d/%d" % (args.seed, n))
        segment_size = rng.choice([256, 1024, 4096, 65536])
        keys = rng.choice([3, 20, 300])
        shutil.rmtree(args.dir, ignore_errors=True)
        base = os.path.join(args.dir, "base")
        write(args.old, base, rng, segment_size, keys)
        stores = {}
        for which in ("old", "new"):
            stores[which] = os.path.join(args.dir, which)
            shutil.copytree(base, stores[which])
        problems = []
        for merge in range(rng.randint(1, 2)):
            if merge:
                shutil.rmtree(base)
                shutil.copytree(stores["old"], base)
                write(args.old, base, random.Random("%d/%d/more" % (args.seed, n)), segment_size, keys)
                for which in ("old", "new"):
                    shutil.rmtree(stores[which])
                    shutil.copytree(base, stores[which])
            results = {}
            for which, bin_dir in (("old", args.old), ("new", args.new)):
                code, out, err = run([os.path.join(bin_dir, "logpack"), stores[which]])
                results[which] = (code, report(out, stores[which]) if code == 0 else err.decode().replace(stores[which], "STORE"))
            if results["old"] != results["new"]:
                problems.append("merge %d: reports differ:\n  old %.400s\n  new %.400s" % (merge, results["old"], results["new"]))
            if snapshot(stores["old"]) != snapshot(stores["new"]):
                problems.append("merge %d: the segments differ" % merge)
        if problems:
            failed += 1
            print("store %d (seed %d, segment size %d, %d keys):\n%s" % (n, args.seed, segment_size, keys, "\n".join(problems)))
    print("%d passed, %d failed" % (args.stores - failed, failed))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
