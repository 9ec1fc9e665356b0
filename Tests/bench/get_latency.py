#!/usr/bin/env python3
"""One `logidx get DIR KEY` process per lookup on a live store (issue 11), beside
a sqlite3 point query in its own process, in the same run.

usage: get_latency.py --store DIR [--bin DIR] [--seconds S] [--rounds N] [--peer-db PATH]

The store is the 10M-record one (`gen_store.py big | logenc -a DIR/ --sync none
--segment-size 64M`). During each round a writer appends RATE records/s with
`logenc -a DIR --sync batch`, and the index is brought up to date every UPDATE
s with `logidx -o DIR/index.json DIR`; lookups are timed from spawn to exit,
half for random old keys (user-NNNNNNN), half for keys written in the last
few seconds. The peer is `sqlite3 DB "select v from kv where k='user-...'"`,
spawned the same way, against a table of as many keys with a primary key
(built at --peer-db if it is missing: about 40 s). Fixed seeds.
"""
import argparse
import os
import random
import sqlite3
import statistics
import subprocess
import threading
import time

RATE, UPDATE = 5000, 5.0
KEYS = 10_000_000


def spawn_timed(argv):
    """Wall time of one process, spawn to exit, in ms, and its exit status."""
    started = time.perf_counter()
    pid = os.posix_spawn(argv[0], argv, {}, file_actions=[(os.POSIX_SPAWN_OPEN, 1, "/dev/null", os.O_WRONLY, 0)])
    _, status = os.waitpid(pid, 0)
    return (time.perf_counter() - started) * 1000, status


def summary(label, times):
    times = sorted(times)
    return "%s: %d lookups, median %.2f ms, p90 %.2f ms, p99 %.2f ms, max %.2f ms" % (
        label, len(times), statistics.median(times), times[int(len(times) * 0.9)], times[int(len(times) * 0.99)], times[-1])


def logkit_round(bin_dir, store, seconds, rng, round_number):
    stop = threading.Event()
    written = [0]
    prefix = "live%d-" % round_number

    def writer():
        p = subprocess.Popen([bin_dir + "/logenc", "-a", store, "--sync", "batch"], stdin=subprocess.PIPE,
                             stdout=subprocess.DEVNULL)
        n, began = 0, time.monotonic()
        while not stop.is_set():
            due = int((time.monotonic() - began) * RATE)
            lines = "".join('{"key":"%s%07d","value":"%s"}\n' % (prefix, i, "v" * 80) for i in range(n, due))
            if lines:
                p.stdin.write(lines.encode())
                p.stdin.flush()
            n = written[0] = due
            time.sleep(0.01)
        p.stdin.close()
        p.wait()

    def updater():
        while not stop.is_set():
            began = time.monotonic()
            subprocess.run([bin_dir + "/logidx", "-o", store + "/index.json", store], check=True, stdout=subprocess.DEVNULL)
            stop.wait(max(0, UPDATE - (time.monotonic() - began)))

    threads = [threading.Thread(target=writer), threading.Thread(target=updater)]
    for t in threads:
        t.start()
    time.sleep(2)
    times = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if rng.random() < 0.5:
            key = "user-%07d" % rng.randrange(KEYS)
        else:
            key = "%s%07d" % (prefix, max(0, written[0] - 1 - rng.randrange(min(written[0], 20000) or 1)))
        ms, status = spawn_timed([bin_dir + "/logidx", "get", store, key])
        if status != 0:
            print("lookup failed:", key, status)
        times.append(ms)
        time.sleep(0.005)
    stop.set()
    for t in threads:
        t.join()
    return times


def peer_round(db, count, rng):
    times = []
    for _ in range(count):
        ms, _ = spawn_timed(["/usr/bin/sqlite3", db, "select v from kv where k='user-%07d'" % rng.randrange(KEYS)])
        times.append(ms)
        time.sleep(0.005)
    return times


def build_peer(db):
    if os.path.exists(db):
        return
    connection = sqlite3.connect(db)
    connection.execute("create table kv (k text primary key, v text)")
    connection.executemany("insert into kv values (?, ?)", (("user-%07d" % i, "v" * 100) for i in range(KEYS)))
    connection.commit()
    connection.close()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--store", required=True)
    parser.add_argument("--bin", default="bin")
    parser.add_argument("--seconds", type=float, default=45)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--peer-db", default="/tmp/logkit-get-latency.db")
    args = parser.parse_args()
    build_peer(args.peer_db)
    rng = random.Random(5)
    bin_dir = os.path.abspath(args.bin)
    for n in range(args.rounds):
        subprocess.run([bin_dir + "/logidx", "-o", args.store + "/index.json", args.store], check=True, stdout=subprocess.DEVNULL)
        print(summary("round %d: logidx get" % (n + 1), logkit_round(bin_dir, args.store, args.seconds, rng, n)))
        print(summary("round %d: sqlite3 point query" % (n + 1), peer_round(args.peer_db, 800, rng)))


if __name__ == "__main__":
    main()
