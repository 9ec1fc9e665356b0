#!/usr/bin/env python3
"""Measures how long a writer waits for the store's lock while `logpack DIR`
merges (issue 11: never more than 50 ms; by design never at all, since a
merge does not take DIR/LOCK).

usage: merge_lock_wait.py STORE [--bin DIR] [--work DIR] [--rate N] [--limit-ms MS]

STORE is copied to WORK (default /tmp/merge-lock-wait) and left as it was.
On the copy, one writer `logenc -a COPY --sync batch` runs under
`strace -f -tt -T -e trace=flock`, fed N records a second (default 1000) by
a thread; after half a second `logpack COPY` starts, and half a second after
it ends the writer's input is closed. Printed, as one JSON line: the merge's
duration; the writer's flock(2) calls on the lock, all of them and those
that began while the merge ran, with the longest wait (the time strace
measured inside the call); and how long a record took from being sent to
its address line being read, during the merge (this includes fsync, which
the merge's own writing slows: it is not a lock wait, and is shown apart).
Exits 1 if a flock during the merge waited longer than --limit-ms (50).
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time

FLOCK = re.compile(r"^(?:\d+\s+)?(\d\d):(\d\d):(\d\d\.\d+) flock\(\d+, (LOCK_[A-Z_|]+)\)\s+= (-?\d+).*<(\d+\.\d+)>$")


def clock_of(line_time, day_start):
    h, m, s = line_time
    return day_start + int(h) * 3600 + int(m) * 60 + float(s)


def percentile(values, p):
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, int(p / 100 * len(values)))]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("store")
    parser.add_argument("--bin", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bin"))
    parser.add_argument("--work", default="/tmp/merge-lock-wait")
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--limit-ms", type=float, default=50)
    args = parser.parse_args()
    shutil.rmtree(args.work, ignore_errors=True)
    os.makedirs(args.work)
    store = os.path.join(args.work, "store")
    subprocess.run(["cp", "-a", args.store, store], check=True)
    trace = os.path.join(args.work, "writer.strace")
    writer = subprocess.Popen(
        ["strace", "-f", "-tt", "-T", "-e", "trace=flock", "-o", trace,
         os.path.join(args.bin, "logenc"), "-a", store, "--sync", "batch"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    sent = []
    acked = []
    stop = threading.Event()

    def feed():
        n = 0
        interval = 1.0 / args.rate
        next_at = time.time()
        while not stop.is_set():
            line = b'{"key":"lockwait-%07d","value":"%s"}\n' % (n, b"x" * 100)
            sent.append(time.time())
            writer.stdin.write(line)
            writer.stdin.flush()
            n += 1
            next_at += interval
            delay = next_at - time.time()
            if delay > 0:
                time.sleep(delay)
        writer.stdin.close()

    def read():
        for _ in writer.stdout:
            acked.append(time.time())

    feeder = threading.Thread(target=feed)
    reader = threading.Thread(target=read)
    feeder.start()
    reader.start()
    time.sleep(0.5)
    merge_start = time.time()
    merge = subprocess.run([os.path.join(args.bin, "logpack"), store], capture_output=True)
    merge_end = time.time()
    time.sleep(0.5)
    stop.set()
    feeder.join()
    reader.join()
    err = writer.stderr.read().decode()
    if writer.wait() != 0 or merge.returncode != 0:
        sys.exit("writer exit %d: %s\nlogpack exit %d: %s" % (
            writer.returncode, err, merge.returncode, merge.stderr.decode()))
    day = time.localtime(merge_start)
    day_start = time.mktime((day.tm_year, day.tm_mon, day.tm_mday, 0, 0, 0, 0, 0, -1))
    waits = []
    during = []
    for line in open(trace):
        m = FLOCK.match(line.strip())
        if not m or "LOCK_UN" in m.group(4):
            continue
        started = clock_of(m.group(1, 2, 3), day_start)
        wait = float(m.group(6)) * 1000
        waits.append(wait)
        if merge_start <= started <= merge_end:
            during.append(wait)
    latencies = [(acked[n] - sent[n]) * 1000 for n in range(min(len(sent), len(acked)))
                 if merge_start <= sent[n] <= merge_end]
    result = {
        "merge_ms": round((merge_end - merge_start) * 1000, 1),
        "merged": json.loads(merge.stdout)["merged"],
        "records_acknowledged": len(acked),
        "flock_calls": len(waits),
        "flock_calls_during_merge": len(during),
        "max_flock_wait_ms": round(max(waits, default=0), 3),
        "max_flock_wait_during_merge_ms": round(max(during, default=0), 3),
        "ack_latency_during_merge_ms": {
            "p50": round(percentile(latencies, 50) or 0, 2),
            "p99": round(percentile(latencies, 99) or 0, 2),
            "max": round(max(latencies, default=0), 2)},
    }
    print(json.dumps(result))
    sys.exit(1 if not during or max(during) > args.limit_ms else 0)


if __name__ == "__main__":
    main()
