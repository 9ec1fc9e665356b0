#!/usr/bin/env python3
"""logsync throughput on this machine, against one local nats-server -js.

usage: python3 Tests/bench/logsync_bench.py [--records N] [--runs N] [--seed S]
                                            [--bin DIR] [--no-peer] [--check]

Writes N records (default 100,000; distinct plain keys, values of 50-150
printable bytes drawn from --seed, fixed timestamps) as record JSON lines, then,
--runs times each (default 5), on one throw-away server (a free loopback
port, a temporary store directory, file storage):

- push: `logsync push URL/pushK < records.jsonl > /dev/null`, into a new bucket each run;
- pull: `logsync pull URL/pushK > /dev/null`, of a bucket holding the N records;
- the peer (unless --no-peer, or nats-py is missing): nats-py publishing the
  same records to a new KV bucket (`js.publish_async`, at most 4096 awaiting
  their acknowledgement, as push's default --window; each with
  Logkit-Timestamp and Nats-Expected-Last-Sequence headers, as push sends),
  and reading them back with an ordered consumer.

Prints each measurement's median (and min-max) in records per second, and
the commands, as a table; then whether push reached 50,000 records/s and
pull 100,000 records/s. Exit 0; with --check, exit 1 if a target was missed;
2 on a setup error (a tool or nats-server missing, a command failing).
"""
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the repository

import os  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "golden", "lib"))

import natsserver  # noqa: E402  (Tests/golden/lib)

import argparse  # noqa: E402
import asyncio  # noqa: E402
import json  # noqa: E402
import random  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

try:
    import nats  # noqa: E402  (nats-py)
except ImportError:
    nats = None

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
T0 = 1700000000000
PUSH_TARGET = 50000
PULL_TARGET = 100000
WINDOW = 4096


def fail(message):
    print("logsync_bench.py: %s" % message, file=sys.stderr)
    sys.exit(2)


def make_records(n, seed):
    rng = random.Random(seed)
    alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 -_:,."
    recs = []
    for i in range(n):
        value = "".join(rng.choice(alphabet) for _ in range(rng.randint(50, 150)))
        recs.append(("user-%07d" % i, value, T0 + i))
    return recs


def timed(cmd, stdin_path=None, expect_lines=None):
    """Runs CMD (stdout to /dev/null, or counted), returns the wall time in seconds."""
    stdin = open(stdin_path, "rb") if stdin_path else subprocess.DEVNULL
    try:
        t = time.perf_counter()
        p = subprocess.run(cmd, stdin=stdin, stdout=subprocess.PIPE if expect_lines else subprocess.DEVNULL,
                           stderr=subprocess.PIPE)
        elapsed = time.perf_counter() - t
    finally:
        if stdin_path:
            stdin.close()
    if p.returncode != 0:
        fail("%s exited %d: %s" % (" ".join(cmd), p.returncode, p.stderr.decode(errors="replace").strip()))
    if expect_lines is not None and p.stdout.count(b"\n") != expect_lines:
        fail("%s printed %d lines, not %d" % (" ".join(cmd), p.stdout.count(b"\n"), expect_lines))
    return elapsed


async def peer_publish(url, bucket, recs):
    nc = await nats.connect(url)
    try:
        js = nc.jetstream(publish_async_max_pending=WINDOW)
        await js.create_key_value(bucket=bucket, history=1)
        subject = "$KV.%s." % bucket
        t = time.perf_counter()
        futures = []
        for seq, (key, value, ts) in enumerate(recs):
            futures.append(await js.publish_async(subject + key, value.encode(), headers={
                "Logkit-Timestamp": str(ts), "Nats-Expected-Last-Sequence": str(seq)}))
        await js.publish_async_completed()
        elapsed = time.perf_counter() - t
        errors = [f for f in futures if f.exception() is not None]
        if errors:
            fail("nats-py: %d publishes failed, the first: %s" % (len(errors), errors[0].exception()))
        return elapsed
    finally:
        await nc.close()


async def peer_read(url, bucket, n):
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        t = time.perf_counter()
        sub = await js.subscribe("$KV.%s.>" % bucket, ordered_consumer=True, pending_msgs_limit=1 << 20,
                                 pending_bytes_limit=1 << 30)
        count = 0
        while count < n:
            msg = await sub.next_msg(timeout=10)
            count += 1
        elapsed = time.perf_counter() - t
        await sub.unsubscribe()
        return elapsed
    finally:
        await nc.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=100000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--bin", default=os.path.join(ROOT, "bin"), help="directory of the tools (default: ROOT/bin)")
    parser.add_argument("--no-peer", action="store_true", help="do not measure nats-py")
    parser.add_argument("--check", action="store_true", help="exit 1 if push or pull misses its target")
    args = parser.parse_args()
    if args.records < 1 or args.runs < 1:
        parser.error("--records and --runs must be at least 1")
    logsync = os.path.join(args.bin, "logsync")
    if not os.access(logsync, os.X_OK):
        fail("%s is missing: build the tools first (make build)" % logsync)
    if not natsserver.available():
        fail("nats-server not found (install it, or set NATS_SERVER)")
    peer = not args.no_peer and nats is not None

    work = tempfile.mkdtemp(prefix="logkit-logsync-bench.")
    try:
        recs = make_records(args.records, args.seed)
        path = os.path.join(work, "records.jsonl")
        with open(path, "w") as f:
            for key, value, ts in recs:
                f.write(json.dumps({"key": key, "value": value, "timestamp": ts}) + "\n")
        size = os.path.getsize(path)
        with natsserver.NatsServer(store_dir=os.path.join(work, "nats"), log=os.path.join(work, "nats.log")) as server:
            url = server.url()
            push, pull, ppush, ppull = [], [], [], []
            for k in range(args.runs):
                bucket = "push%d" % k
                push.append(timed([logsync, "push", "%s/%s" % (url, bucket)], stdin_path=path))
                pull.append(timed([logsync, "pull", "%s/%s" % (url, bucket)], expect_lines=args.records))
                if peer:
                    ppush.append(asyncio.run(peer_publish(url, "peer%d" % k, recs)))
                    ppull.append(asyncio.run(peer_read(url, "peer%d" % k, args.records)))
                print("run %d of %d: push %.2f s, pull %.2f s%s" % (
                    k + 1, args.runs, push[-1], pull[-1],
                    ", nats-py publish %.2f s, read %.2f s" % (ppush[-1], ppull[-1]) if peer else ""), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    n = args.records

    def row(what, times, cmd):
        rates = sorted(n / t for t in times)
        return (what, "%.0f" % statistics.median(rates), "%.0f-%.0f" % (rates[0], rates[-1]), cmd)

    rows = [("measurement", "records/s (median)", "min-max", "command"),
            row("logsync push", push, "logsync push nats://127.0.0.1:PORT/pushK < records.jsonl > /dev/null"),
            row("logsync pull", pull, "logsync pull nats://127.0.0.1:PORT/pushK > /dev/null")]
    if peer:
        rows.append(row("nats-py publish", ppush, "js.publish_async(...) x N, <= %d pending; publish_async_completed()" % WINDOW))
        rows.append(row("nats-py read", ppull, "js.subscribe('$KV.peerK.>', ordered_consumer=True), N messages"))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    print()
    print("%d records (%.1f MB of JSON lines, values 50-150 bytes, seed %d), %d runs, nats-server %s, %d CPUs" % (
        n, size / 1e6, args.seed, args.runs, server_version(), os.cpu_count() or 0))
    for i, r in enumerate(rows):
        print("  ".join(c.ljust(widths[j]) if j < 3 else c for j, c in enumerate(r)).rstrip())
        if i == 0:
            print("  ".join("-" * w for w in widths[:3]) + "  " + "-" * 7)
    if not peer and not args.no_peer:
        print("(nats-py is missing: no peer measured)")
    push_rate = statistics.median(n / t for t in push)
    pull_rate = statistics.median(n / t for t in pull)
    ok_push, ok_pull = push_rate >= PUSH_TARGET, pull_rate >= PULL_TARGET
    print()
    print("target push >= %d records/s: %s (%.0f)" % (PUSH_TARGET, "met" if ok_push else "MISSED", push_rate))
    print("target pull >= %d records/s: %s (%.0f)" % (PULL_TARGET, "met" if ok_pull else "MISSED", pull_rate))
    sys.exit(1 if args.check and not (ok_push and ok_pull) else 0)


def server_version():
    try:
        return subprocess.run([natsserver.binary(), "--version"], capture_output=True, text=True).stdout.split()[-1]
    except (OSError, IndexError):
        return "?"


if __name__ == "__main__":
    main()
