#!/usr/bin/env python3
"""Times `logpack DIR` against its peers on the stores gen_store.py makes
(issue 11), interleaved, and prints each run and the medians.

usage: merge_bench.py DATA [--bin NAME=DIR ...] [--runs N] [--big]

DATA holds (see gen_store.py for the .jsonl files):
  g2.orig/      the 2M-record store, half garbage, every record in a closed
                segment: logenc -a g2.orig/ --sync none --segment-size 64M,
                then one record with --segment-size 1 (a new active segment)
  g2.seg.orig   the same 2M records as one segment: logenc -a g2.seg.orig
  big.orig/     with --big: the 10M-record store (logenc -a big.orig/ ...)

Per run and build, each on a fresh copy (cp -a, then sync, outside the
timing): `logpack g2`, `logpack g2.seg > out.seg`, `logpack --in-place
g2ip.seg`, and with --big `logpack big`; wall time, peak RSS and user +
system time from /usr/bin/time. Builds take turns within each run.
"""
import argparse
import os
import shutil
import statistics
import subprocess


def timed(command, cwd, stdout=subprocess.DEVNULL):
    subprocess.run(["/usr/bin/time", "-o", "time.txt", "-f", "%e %M %U %S"] + command, cwd=cwd, stdout=stdout,
                   stderr=subprocess.DEVNULL, check=True)
    seconds, kb, user, system = open(os.path.join(cwd, "time.txt")).read().split()
    return float(seconds), int(kb), float(user) + float(system)


def fresh(data, source, target):
    path = os.path.join(data, target)
    if os.path.isdir(path):
        shutil.rmtree(path)
    elif os.path.exists(path):
        os.remove(path)
    subprocess.run(["cp", "-a", os.path.join(data, source), path], check=True)
    subprocess.run(["sync"], check=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("data")
    parser.add_argument("--bin", action="append", default=[], help="NAME=DIR (default: new=ROOT/bin)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--big", action="store_true")
    args = parser.parse_args()
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
    builds = [b.split("=", 1) for b in args.bin] or [("new", os.path.join(root, "bin"))]
    results = {}
    for run in range(args.runs):
        for name, directory in builds:
            logpack = os.path.abspath(os.path.join(directory, "logpack"))
            row = {}
            fresh(args.data, "g2.orig", "g2")
            row["DIR"] = timed([logpack, "g2"], args.data)
            with open(os.path.join(args.data, "out.seg"), "wb") as out:
                subprocess.run(["sync"], check=True)
                row["SEG>OUT"] = timed([logpack, "g2.seg.orig"], args.data, stdout=out)
            fresh(args.data, "g2.seg.orig", "g2ip.seg")
            row["in-place"] = timed([logpack, "--in-place", "g2ip.seg"], args.data)
            if args.big:
                fresh(args.data, "big.orig", "big")
                row["big DIR"] = timed([logpack, "big"], args.data)
            print("run %d %-6s " % (run + 1, name) + "  ".join("%s %.2f s (cpu %.2f) %d KB" % (k, s, cpu, kb) for k, (s, kb, cpu) in row.items()), flush=True)
            for k, v in row.items():
                results.setdefault((name, k), []).append(v)
    for name, _ in builds:
        line = "median %-6s" % name
        for (n, k), values in results.items():
            if n == name:
                line += "  %s %.2f s (cpu %.2f) %d KB" % (k, statistics.median(v[0] for v in values),
                                                         statistics.median(v[2] for v in values), statistics.median(v[1] for v in values))
        dir_s = statistics.median(v[0] for v in results[(name, "DIR")])
        seg_s = statistics.median(v[0] for v in results[(name, "SEG>OUT")])
        print(line + "  DIR/SEG %.2f" % (dir_s / seg_s))


if __name__ == "__main__":
    main()
