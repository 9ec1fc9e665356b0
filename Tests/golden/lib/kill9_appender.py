#!/usr/bin/env python3
"""kill -9 a `logenc -a SEG --sync MODE` writer at random moments and check
that every address it printed is an intact record.

usage: python3 kill9_appender.py MODE ROUNDS SEED

Each round appends to a fresh segment roundN/seg from a producer that feeds
bursts of JSON lines (puts and deletes with fixed timestamps), waits for the
first address line, sleeps a delay drawn from random.Random(SEED), and kills
the writer with SIGKILL. Then, for every whole address line it printed:

- the addresses are consecutive from offset 0 and name the records in input order;
- `logscan --at OFFSET SEG` exits 0 and prints the address line plus "value"
  (compared byte for byte after removing "value"), with the value the input had.

A kill may tear the record being written, so the segment as a whole is not
checked (that is logfix's job). Finally a new `logenc -a` on the same segment
must get the lock (it died with the writer) and its record must read back.

Prints only deterministic lines ("round N: ok"), plus the problems of a failed
round; exit 0 if every round passed, 1 otherwise. Run in a scratch directory
with logenc and logscan on PATH.
"""
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time

MODE = sys.argv[1]
ROUNDS = int(sys.argv[2])
rng = random.Random(int(sys.argv[3]))
BURST = 8          # lines per burst
PAUSE = 0.015      # seconds between bursts


def line(r, i):
    """Input line i of round r."""
    if i % 5 == 4:
        return '{"key":"r%d-%d","type":"delete","timestamp":%d}\n' % (r, i, 1700000000000 + i)
    return '{"key":"r%d-%d","value":"value %d %s","timestamp":%d}\n' % (
        r, i, i, "x" * (i % 97), 1700000000000 + i)


def feed(pipe, r):
    """A slow-ish producer: bursts of lines until the writer is killed."""
    try:
        for i in range(1000000):
            pipe.write(line(r, i).encode())
            if i % BURST == BURST - 1:
                pipe.flush()
                time.sleep(PAUSE)
    except OSError:  # BrokenPipeError once the writer is gone
        pass


def check_round(r, delay):
    problems = []
    seg = "round%d/seg" % r
    addr_path = "addr%d.jsonl" % r
    with open(addr_path, "wb") as addr:
        writer = subprocess.Popen(["logenc", "-a", seg, "--sync", MODE], stdin=subprocess.PIPE, stdout=addr)
    feeder = threading.Thread(target=feed, args=(writer.stdin, r))
    feeder.start()
    deadline = time.time() + 10
    while os.path.getsize(addr_path) == 0 and time.time() < deadline:
        time.sleep(0.002)
    time.sleep(delay)
    writer.send_signal(signal.SIGKILL)
    status = writer.wait()
    feeder.join()
    try:
        writer.stdin.close()
    except OSError:
        pass
    if status != -signal.SIGKILL:
        problems.append("the writer was not killed (status %d)" % status)

    with open(addr_path, "rb") as f:
        lines = f.read().decode().split("\n")
    lines = [text for text in lines[:-1] if text]  # the last piece has no newline: not a printed line
    if not lines:
        problems.append("no address printed")
    offset = 0
    for n, text in enumerate(lines):
        address = json.loads(text)
        if address.get("offset") != offset or address.get("key") != "r%d-%d" % (r, n):
            problems.append("address %d out of sequence: %s" % (n, text))
            break
        offset += address["length"]
        at = subprocess.run(["logscan", "--at", str(offset - address["length"]), seg],
                            capture_output=True, text=True)
        if at.returncode != 0 or at.stdout.count("\n") != 1:
            problems.append("logscan --at %d: exit %d: %s%s" % (
                address["offset"], at.returncode, at.stdout.strip(), at.stderr.strip()))
            continue
        pairs = json.loads(at.stdout, object_pairs_hook=lambda p: p)
        stripped = json.dumps(dict((k, v) for k, v in pairs if k != "value"),
                              separators=(",", ":"), ensure_ascii=False)
        if stripped != text:
            problems.append("--at %d: %s, address: %s" % (address["offset"], at.stdout.strip(), text))
        value = [v for k, v in pairs if k == "value"]
        want = json.loads(line(r, n)).get("value")
        if (value[0] if value else None) != want:
            problems.append("--at %d: value %r, input had %r" % (address["offset"], value, want))

    # The writers' lock died with the writer: the next append gets it.
    after = subprocess.run(["timeout", "10", "logenc", "-a", seg, "--sync", MODE, "--timestamp", "1", "after", "kill"],
                           capture_output=True, text=True)
    if after.returncode != 0:
        problems.append("append after the kill: exit %d: %s" % (after.returncode, after.stderr.strip()))
    else:
        offset = json.loads(after.stdout)["offset"]
        at = subprocess.run(["logscan", "--at", str(offset), "--no-values", seg], capture_output=True, text=True)
        if at.returncode != 0 or at.stdout != after.stdout:
            problems.append("append after the kill: --at %d gives %r %r for %r" % (
                offset, at.stdout, at.stderr, after.stdout))
    return problems


ok = True
for r in range(1, ROUNDS + 1):
    problems = check_round(r, rng.uniform(0.02, 0.2))
    print("round %d: %s" % (r, "FAILED" if problems else "ok"))
    for p in problems[:10]:
        print("    " + p)
    ok = ok and not problems
sys.exit(0 if ok else 1)
