#!/usr/bin/env python3
"""Store torture: kill -9 of writers and of merges (`logpack DIR`) on a STORE
(a directory of segments), round after round, with rollovers all the time;
after every round every key answers as a dictionary model allows, and no
deleted key ever comes back.

usage: python3 Tests/torture/store_kill9.py [--rounds N] [--seed S] [--bin DIR]
                                            [--dir DIR] [--keep] [--quiet] [--stop]

Each round (its schedule drawn from random.Random("SEED/round/N"), so it never
depends on timing) runs at once on the store `store/`, with one --segment-size
for the round drawn from 4K to 64K (so writers start new segments constantly,
and a large record or batch gets a segment of its own):

- one or two writers `logenc -a store --segment-size S --sync none|batch|each`,
  some with --atomic (batches of 1-15 records, now and then 40-200, each ended
  by {"type":"commit"}, some sent in two pieces with a pause between, so kills
  land while logenc holds part of a batch), each fed by a thread: puts and
  deletes over 40 keys, 20 hot and 20 cold (written every few rounds, deleted
  half the time, so tombstones and the PUTs they hide sit in older segments
  for many rounds), values of 0-200 bytes and now and then 5-30 KB; every
  value and timestamp is unique. Each writer is killed with SIGKILL at a
  random moment, or (aimed) as soon as it starts a new segment, or is let
  finish: its stdin is closed after a complete batch, and it must exit 0
  having printed the address of every record it was sent;
- in most rounds a merge `logpack [--min-garbage F] store`
  (once `logpack --help` names a store DIR; until then merges are skipped,
  and said so), started before the writers, among them, or once they are
  dead; killed at a random moment, or (aimed) at the k-th change of the
  directory listing (a temporary created, a segment renamed or removed: the
  merge's steps), or at once or up to 3 ms after its first rename (the
  lowest closed segment replaced: between its renames), or let finish;
- in a quarter of the rounds, a torn write: what a writer killed inside its
  write(2) leaves, made without timing luck: under the store's lock, a prefix
  of an atomic batch (k whole records, or a cut at any byte) is appended to
  the active segment if it ends clean (a writer cuts a torn tail first),
  while the writers run or after they are dead; the next writer, or logfix,
  must cut it, and none of its records may ever show;
- for the whole round, a reader (in half the rounds two at once):
  `logscan store`, `logidx get --json store -` (every key), `logidx get
  --json store KEY...` (a few, each lookup opening segments only as far as
  it must) and now and then `logidx -o store/index.json store`, over and over.

Every whole address line a writer printed is an acknowledged record. Then,
with every process dead: in some rounds `logfix store` (one report line, for
the active segment: "truncated" at the torn tail exactly when one was there,
else "none"; then in half of them `logfix --check --full store` must find
every segment clean); in some (and always the last) a probe writer appends one
more record ("the next writer", which must cut a torn tail).

The model. A key's acceptable answers are computed from what the round's
records tell, on top of its answer after the last round (observed there, and
stable: merges and repairs never change an answer). A record is *known
appended* if its address line was printed, if logscan shows it, or if a later
record of the same writer (or of the same atomic batch) is known appended: a
writer appends in input order, and a kill cuts only the end. A record may be
appended if it is known appended, or was sent to a writer that was killed
(an atomic batch only with its commit line). A record X is *provably before*
a record Y when both were acknowledged and X's address (segment number, then
offset) is lower; when both come from one writer and X was sent first; when
X's address line was read (or X's writer reaped) before Y was sent; or when X
was acknowledged at or before the last acknowledged record of Y's writer and
Y is not acknowledged. The answer of a key must be a record that may have been
appended and is not provably before any known appended record of the key: the
last acknowledged value, or a later unacknowledged one; for a delete (or for
the last round's absent answer) "deleted" or "missing" (a merge may drop the
tombstone); a key never written is missing; a deleted key never comes back.

Checks after the kills, after logfix and after the probe writer:

(a) the directory holds only segment-N.dat (N of at least 4 digits, one name
    per number), LOCK, index.json, index-N.json and .NAME.tmp-* files;
(b) `logscan store` prints every segment in order of N, each from offset 0
    with no gap, records this torture wrote (key, type, value and checksum
    recomputed here; a record of an atomic batch whose commit line logenc
    never got is a failure) and exits 0 with each segment's records ending
    at its size; exit 1 only for a torn tail of the highest segment (the
    damage where its records end; from there only whole records of one
    uncommitted batch, then at most a torn record, and no valid record after
    it, checked independently by magic and CRC-32), and never after logfix or
    a probe writer; folded into a dict (the last record of each key), every
    key answers acceptably, and the same after logfix and after the probe
    writer (but for the probe's key) as after the kills;
(c) every acknowledged record that no merge can have moved (acknowledged
    with no merge since, or sent after the round's merge ended) is at its
    printed segment and offset, with the printed length and checksum;
(d) `logidx -o store/index.json store` (in some rounds only, so other rounds
    look up through a stale index and unindexed tails; once `logidx --help`
    names a store DIR) exits 0, and `logidx get --json store -` answers every
    key (the 40, the probe's, and 4 never written) exactly as logscan's dict;
(e) every read a reader made during the round succeeded (logscan: exit 1
    only for one incomplete record or uncommitted batch: an append in
    progress or a torn tail; logidx get: one answer per key; logidx -o, run
    by one reader only: exit 0), and each key's answer was a record
    that may have been appended and is not provably before a record of the
    key acknowledged before the read started, or the last round's answer if
    none was: so a key nobody writes answers exactly as before at every
    moment of a merge, and a read never shows a torn write;
(f) after a merge that completed (and merged): the outputs its report names
    are there, the segments it says it removed are gone, and logscan shows
    no record twice; a merge exits 0, or is killed.

Prints "round N: ok" or "round N: FAILED (seed S; reproduce: ...)" and its
first problems per round, then the totals (with --quiet only lines that the
seed and the tools' abilities determine), then "N passed, N failed" (rounds).
Exit 0 if every round passed, 1 if one failed, 2 on a usage or setup error.
Tools come from --bin DIR (default: bin/ of the repository). The default 100
rounds take under a minute on 2 CPUs (one of them busy elsewhere); the golden
case store-kill9-loop runs 10 of them (seed 5) with --quiet.
"""
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the repository

import harness  # noqa: E402  (beside this script)

import fcntl
import json
import os
import random
import re
import shutil
import signal
import struct
import subprocess
import threading
import time
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# Shared with the other loops: the format's constants, and the independent walk
# of a torn tail (whole records of an uncommitted batch, then a torn record, then
# nothing valid). Importing them has no side effects.
from kill9_loop import MAGIC  # noqa: E402
from batch_kill9 import walk_tail  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
STORE = "store"                  # relative to the work directory (every tool runs there)
HOT = ["k%02d" % n for n in range(20)]
COLD = ["k%02d" % n for n in range(20, 40)]
KEYS = HOT + COLD
PROBE_KEY = "probe"
GHOSTS = ["never-%d" % n for n in range(4)]          # never written: always missing
ALL_KEYS = KEYS + [PROBE_KEY] + GHOSTS
T0 = 1700000000000               # timestamp = T0 + round * 1e7 + writer * 1e6 + seq: unique per record
PROBE_WRITER = 9
TEAR_WRITER = 8
COMMIT = b'{"type":"commit"}\n'
SEGMENT = re.compile(r"^segment-(\d{4,})\.dat$")
RUN = re.compile(r"^index-(\d{4,})\.json$")
DAMAGE = re.compile(r"^logscan: (.*): offset (\d+): (.*)$")
EMPTY = re.compile(r"^logscan: (.*): empty segment$")
# What an append in progress, or a torn tail, looks like to a reader: never anything else.
TAIL = re.compile(r"^logscan: .*: offset \d+: (incomplete header|incomplete record|uncommitted batch): ")
MAX_PROBLEMS = 10
MERGE_TIMEOUT = 60


def ident_of(ts):
    """'rRwWsS' for the record with timestamp ts."""
    r, rest = divmod(ts - T0, 10 ** 7)
    w, s = divmod(rest, 10 ** 6)
    return "r%dw%ds%d" % (r, w, s)


CLOCK = harness.Clock()


class Batch:
    """An atomic batch: its records are appended all or none, once logenc got its commit line."""
    __slots__ = ("ops", "committed")

    def __init__(self):
        self.ops = []
        self.committed = False   # every byte up to its commit line reached logenc's stdin


class Op:
    """One record sent to a writer: a put or a delete of key, timestamp ts."""
    __slots__ = ("key", "put", "ts", "size", "w", "seq", "sync", "batch", "sent", "done", "ack", "addr", "crcs", "known")

    def __init__(self, key, put, ts, size, w, seq, sync, batch=None):
        self.key, self.put, self.ts, self.size = key, put, ts, size
        self.w, self.seq, self.sync, self.batch = w, seq, sync, batch
        self.sent = None     # tick before its line was written to the writer's stdin
        self.done = None     # tick after its address line was read, or after its writer was reaped
        self.ack = None      # the address line (bytes), if the writer printed it
        self.addr = None     # (segment number, offset, length, checksum) from it
        self.crcs = None
        self.known = False   # known to have been appended (see the model)

    def value(self):
        return "%s:%s" % (ident_of(self.ts), chr(97 + self.seq % 26) * self.size)

    def line(self):
        if self.put:
            return '{"key":"%s","value":"%s","timestamp":%d}\n' % (self.key, self.value(), self.ts)
        return '{"key":"%s","type":"delete","timestamp":%d}\n' % (self.key, self.ts)

    def possible(self):
        """It may have been appended: acknowledged, or sent (a batch: with its commit line)."""
        return self.ack is not None or (self.sent is not None and (self.batch is None or self.batch.committed))

    def describe(self):
        what = "%s %s of %s" % ("put" if self.put else "delete", ident_of(self.ts), self.key)
        if self.addr:
            state = "acknowledged at segment %d offset %d" % self.addr[:2]
        elif self.batch is not None and not self.batch.committed:
            state = "its batch's commit line never sent"
        else:
            state = "never acknowledged"
        return "%s (--sync %s%s, %s)" % (what, self.sync, ", atomic" if self.batch is not None else "", state)

    def checksums(self):
        """The record's length and its CRC-32 with the flags byte 0 or 1 (continues;
        a merge may re-seal a batch whose end it dropped)."""
        if self.crcs is None:
            key = self.key.encode()
            value = self.value().encode() if self.put else b""
            out = []
            for flags in (0, 1):
                header = struct.pack(">4sBBBBIIQ", MAGIC, 1, 1 if self.put else 2, flags, 0, len(key), len(value), self.ts)
                out.append("0x%08x" % (zlib.crc32(value, zlib.crc32(key, zlib.crc32(header))) & 0xFFFFFFFF))
            self.crcs = (28 + len(key) + len(value), out)
        return self.crcs


def before(x, y, last_acked):
    """x is provably before y (both records of this round)."""
    if x is y:
        return False
    if x.addr and y.addr:
        return x.addr[:2] < y.addr[:2]
    if x.w == y.w:
        return x.seq < y.seq
    if x.done is not None and y.sent is not None and x.done < y.sent:
        return True
    if x.addr and not y.addr:
        z = last_acked.get(y.w)
        return z is not None and x.addr[:2] <= z.addr[:2]
    return False


def segments_of(path):
    """{number: name} of the segments in the directory."""
    out = {}
    try:
        names = os.listdir(path)
    except OSError:
        return out
    for name in names:
        m = SEGMENT.match(name)
        if m:
            out[int(m.group(1))] = name
    return out


def highest_segment(path):
    numbers = segments_of(path)
    return max(numbers) if numbers else 0


class Writer:
    """One `logenc -a store` process with a feeder and a reader thread."""

    def __init__(self, torture, r, w, sync, atomic, fate, start_delay, life, size):
        self.t = torture
        self.r, self.w, self.sync, self.atomic = r, w, sync, atomic
        self.fate, self.start_delay, self.life, self.size = fate, start_delay, life, size
        self.rng = random.Random("%d/writer/%d/%d" % (torture.seed, r, w))
        self.ops = []
        self.batches = []
        self.acks = 0
        self.extra = []
        self.stop = threading.Event()
        self.status = None
        self.reaped = None
        self.stderr = b""
        self.fired = False       # an aimed kill that saw a new segment appear
        self.eof_wait = None     # seconds from the end of its input to its exit (let finish)
        self.hung = False

    def new_op(self, key, put, size, batch=None):
        seq = len(self.ops)
        op = Op(key, put, T0 + self.r * 10 ** 7 + self.w * 10 ** 6 + seq, size, self.w, seq, self.sync, batch)
        self.ops.append(op)
        return op

    def pick(self):
        """A key and whether to put it: hot keys mostly, cold ones now and then (deleted half the time)."""
        rng = self.rng
        if rng.random() < 0.03:
            return rng.choice(COLD), rng.random() < 0.5
        return rng.choice(HOT), rng.random() < 0.75

    def value_size(self):
        return self.rng.randint(5 << 10, 30 << 10) if self.rng.random() < 0.01 else self.rng.randint(0, 200)

    def feed(self):
        fd = self.proc.stdin.fileno()
        rng = self.rng

        def write(data):
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]

        try:
            while not self.stop.is_set():
                if self.atomic:
                    batch = Batch()
                    n = rng.randint(40, 200) if rng.random() < 0.06 else rng.randint(1, 15)
                    split = rng.random() < 0.3
                    cut = rng.randint(1, n)
                    pause = rng.uniform(0.001, 0.02)
                    tick = CLOCK.tick()
                    for _ in range(n):
                        key, put = self.pick()
                        op = self.new_op(key, put, self.value_size() if put else 0, batch)
                        op.sent = tick
                        batch.ops.append(op)
                    self.batches.append(batch)
                    lines = [op.line().encode() for op in batch.ops]
                    if split:
                        write(b"".join(lines[:cut]))
                        time.sleep(pause)
                        write(b"".join(lines[cut:]) + COMMIT)
                    else:
                        write(b"".join(lines) + COMMIT)
                    batch.committed = True
                else:
                    ops = []
                    tick = CLOCK.tick()
                    for _ in range(rng.randint(1, 20)):
                        key, put = self.pick()
                        op = self.new_op(key, put, self.value_size() if put else 0)
                        op.sent = tick
                        ops.append(op)
                    write("".join(op.line() for op in ops).encode())
                time.sleep(rng.uniform(0.002, 0.02))
        except OSError:  # EPIPE once the writer is dead
            pass
        finally:
            if self.fate == "finish":
                try:
                    self.proc.stdin.close()
                except OSError:
                    pass

    def read(self):
        for raw in iter(self.proc.stdout.readline, b""):
            if not raw.endswith(b"\n"):
                break  # cut by the kill: not a printed address
            tick = CLOCK.tick()
            if self.acks < len(self.ops):
                op = self.ops[self.acks]
                op.ack, op.done = raw, tick
            else:
                self.extra.append(raw)
            self.acks += 1

    def read_stderr(self):
        self.stderr = self.proc.stderr.read()

    def run(self):
        """Started in a thread: start the writer, wait, kill it or end its input, reap it."""
        time.sleep(self.start_delay)
        args = [self.t.tool("logenc"), "-a", STORE, "--segment-size", str(self.size), "--sync", self.sync]
        if self.atomic:
            args.append("--atomic")
        self.proc = subprocess.Popen(args, cwd=self.t.work, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        threads = [threading.Thread(target=f) for f in (self.feed, self.read, self.read_stderr)]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + self.life
        if self.fate == "rollover":
            # Killed as soon as a new segment appears: inside the rollover, or just after it.
            store = os.path.join(self.t.work, STORE)
            base = highest_segment(store)
            following = os.path.join(store, "segment-%04d.dat" % (base + 1))
            polls = 0
            while time.monotonic() < deadline + 0.3:
                polls += 1
                if os.path.exists(following) or (polls % 64 == 0 and highest_segment(store) > base):
                    self.fired = True
                    break
        else:
            time.sleep(self.life)
        self.stop.set()
        if self.fate == "finish":
            threads[0].join()
            ended = time.monotonic()
            try:
                self.status = self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.hung = True
                self.proc.send_signal(signal.SIGKILL)
                self.status = self.proc.wait()
            self.eof_wait = time.monotonic() - ended
        else:
            self.proc.send_signal(signal.SIGKILL)
            self.status = self.proc.wait()
        self.reaped = CLOCK.tick()
        for thread in threads:
            thread.join()
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        for op in self.ops:
            if op.ack is None:
                op.done = self.reaped


class Merge:
    """One `logpack store`: killed at a random moment, at the k-th change of the
    directory listing, or let finish."""

    def __init__(self, torture, when, start_delay, kind, kill_after, changes, linger, size, min_garbage):
        self.t = torture
        self.when, self.start_delay, self.kind = when, start_delay, kind
        self.kill_after, self.changes, self.linger = kill_after, changes, linger
        self.size, self.min_garbage = size, min_garbage
        self.report = None
        self.status = None
        self.killed = False
        self.fired = False
        self.out = self.err = b""
        self.started = self.ended = None
        self.seconds = None

    def run(self):
        time.sleep(self.start_delay)
        self.started = CLOCK.tick()
        began = time.monotonic()
        store = os.path.join(self.t.work, STORE)
        numbers = segments_of(store)
        lowest = os.path.join(store, numbers[min(numbers)]) if numbers else None
        try:
            inode = os.stat(lowest).st_ino if lowest else None
        except OSError:
            inode = None
        p = subprocess.Popen([self.t.tool("logpack")] + self.options() + [STORE], cwd=self.t.work,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        if self.kind == "rename" and inode is not None:
            # Killed between its renames: as soon as the lowest segment is another file (its first
            # output renamed over it), at once or after a moment of up to 3 ms.
            deadline = time.monotonic() + MERGE_TIMEOUT
            while p.poll() is None and time.monotonic() < deadline:
                try:
                    if os.stat(lowest).st_ino == inode:
                        continue
                except OSError:
                    pass
                until = time.monotonic() + self.linger
                while time.monotonic() < until:
                    pass
                p.send_signal(signal.SIGKILL)
                self.killed = self.fired = True
                break
        if self.kind == "aimed":
            seen, changes = None, 0
            deadline = time.monotonic() + MERGE_TIMEOUT
            while p.poll() is None and time.monotonic() < deadline:
                try:
                    now = frozenset(os.listdir(store))
                except OSError:
                    continue
                if seen is not None and now != seen:
                    changes += 1
                    if changes >= self.changes:
                        p.send_signal(signal.SIGKILL)
                        self.killed = self.fired = True
                        break
                seen = now
        timeout = self.kill_after if self.kind == "timer" else MERGE_TIMEOUT
        try:
            self.out, self.err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.killed = True
            p.send_signal(signal.SIGKILL)
            self.out, self.err = p.communicate()
        self.status = p.returncode
        self.seconds = time.monotonic() - began
        self.ended = CLOCK.tick()
        if self.status == 0:
            try:
                self.report = json.loads(self.out)
            except ValueError:
                self.report = None

    def options(self):
        return ["--min-garbage", str(self.min_garbage)] if self.min_garbage is not None else []

    def command(self):
        return " ".join(["logpack"] + self.options() + [STORE])


class Tear:
    """What a writer killed inside the write(2) of a batch leaves, made without
    timing luck: under the store's lock (flock on store/LOCK), like a writer, a
    prefix of an atomic batch encoded by `logenc --atomic` (k whole records, or
    a cut at any byte) is appended to the active (highest) segment, and never
    committed: none of its records may ever be visible. Like a writer, it
    appends only to a clean end: if a killed writer left a torn tail there, it
    does nothing (the next writer or logfix cuts that one)."""

    def __init__(self, torture, r, rng):
        self.t = torture
        self.after = rng.random() < 0.6      # once every writer is dead, else while they run
        self.start_delay = 0 if self.after else rng.uniform(0, 0.3)
        self.whole = rng.random() < 0.35     # cut at a record boundary: only whole records, all with the flag
        self.batch = Batch()
        for seq in range(rng.randint(2, 12)):
            op = Op(rng.choice(KEYS), True, T0 + r * 10 ** 7 + TEAR_WRITER * 10 ** 6 + seq, rng.randint(0, 300),
                    TEAR_WRITER, seq, "-", self.batch)
            self.batch.ops.append(op)
        self.records = rng.randint(1, len(self.batch.ops) - 1)
        self.fraction = rng.random()
        self.segment = None
        self.skipped = False
        self.error = None

    def run(self):
        ops = self.batch.ops
        p = self.t.run([self.t.tool("logenc"), "--atomic"], "".join(op.line() for op in ops).encode())
        sizes = [op.checksums()[0] for op in ops]
        if p.returncode != 0 or len(p.stdout) != sum(sizes):
            self.error = "logenc --atomic (for a torn write): exit %d, %d bytes for %d: %s" % (
                p.returncode, len(p.stdout), sum(sizes), p.stderr.decode(errors="replace").strip()[:300])
            return
        cut = sum(sizes[:self.records]) if self.whole else 1 + int(self.fraction * (sum(sizes) - 2))
        time.sleep(self.start_delay)
        store = os.path.join(self.t.work, STORE)
        lock = os.open(os.path.join(store, "LOCK"), os.O_RDONLY | os.O_NOFOLLOW)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
            numbers = segments_of(store)
            self.segment = numbers[max(numbers)]
            path = os.path.join(store, self.segment)
            # A writer cuts a torn tail before it appends: a torn write lands only on a clean end
            # (whole records, the last one ending its batch), never after another torn tail.
            chain, stop, size, _, _ = walk_tail(path, 0)
            if stop != size or (chain and chain[-1][2]):
                self.skipped = True
                return
            fd = os.open(path, os.O_WRONLY | os.O_APPEND)
            try:
                view = memoryview(p.stdout)[:cut]
                while view:
                    view = view[os.write(fd, view):]
            finally:
                os.close(fd)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
            os.close(lock)


class Reader:
    """Reads the store for the whole round, while writers append, merges merge
    and torn writes land, over and over: `logscan store`, and (once logidx
    takes a store) `logidx get --json store -` for every key (one view of all
    segments), `logidx get --json store KEY...` for a few (each lookup opening
    segments newest first, only as far as it must, starting over if a merge
    replaced one meanwhile) and now and then `logidx -o store/index.json
    store`. Each read is judged afterwards against what was acknowledged
    before it started (see check_reader)."""

    def __init__(self, torture, rng, done, updates):
        self.t, self.rng, self.done, self.updates = torture, rng, done, updates
        self.results = []        # (command, exit status, {key: answer} or None, stderr, start tick, keys asked)

    def run(self):
        t = self.t
        while not self.done.is_set():
            x = self.rng.random()
            start = CLOCK.tick()
            if x < 0.45 or not t.can_index:
                p = t.run([t.tool("logscan"), STORE], timeout=30)
                answers = {}
                for raw in p.stdout.split(b"\n")[:-1]:
                    try:
                        rec = json.loads(raw)
                        answers[rec["key"]] = answer_of(rec)
                    except (ValueError, KeyError, TypeError):
                        answers = None
                        break
                self.results.append(("logscan " + STORE, p.returncode, answers, p.stderr, start, ALL_KEYS))
            elif x < 0.85 or not self.updates:
                # A few keys as arguments: each lookup opens segments newest first, only as far
                # as it must. Every key from stdin: one view of all the segments.
                few = x < 0.65
                keys = self.rng.sample(ALL_KEYS, 6) if few else ALL_KEYS
                asked = keys if few else ["-"]
                p = t.run([t.tool("logidx"), "get", "--json", STORE] + asked,
                          None if few else "".join(k + "\n" for k in keys).encode(), timeout=30)
                answers = {}
                lines = p.stdout.split(b"\n")[:-1]
                for key, raw in zip(keys, lines):
                    try:
                        a = json.loads(raw)
                    except ValueError:
                        a = {}
                    answers[key] = None if a.get("status") == "missing" else answer_of(a)
                if len(lines) != len(keys):
                    answers = None
                self.results.append(("logidx get --json %s %s (%d answers for %d keys)" % (STORE, " ".join(asked), len(lines), len(keys)),
                                     p.returncode, answers, p.stderr, start, keys))
            else:
                p = t.run([t.tool("logidx"), "-o", STORE + "/index.json", STORE], timeout=30)
                self.results.append(("logidx -o %s/index.json %s" % (STORE, STORE), p.returncode, None, p.stderr, start, ALL_KEYS))
            time.sleep(self.rng.uniform(0.002, 0.02))


class Scan:
    """What `logscan store` showed: the newest record of each key, every record's
    timestamp, the torn tail (path, offset, reason) or None, the segments."""

    def __init__(self):
        self.newest = {}
        self.seen = {}           # timestamp -> count
        self.at = {}             # (segment number, offset) -> (timestamp, length, checksum)
        self.torn = None
        self.segments = {}
        self.records = 0


def answer_of(rec):
    """A logscan line or a logidx answer as (type, timestamp, checksum, value), None if missing."""
    if rec is None:
        return None
    return (rec.get("type"), rec.get("timestamp"), rec.get("checksum"), rec.get("value"))


def show(answer):
    if answer is None:
        return "missing"
    kind, ts, checksum, value = answer
    what = ident_of(ts) if isinstance(ts, int) and ts >= T0 else repr(ts)
    return "%s %s" % ("deleted by" if kind == "delete" else kind, what)


class Torture:
    def __init__(self, args):
        self.seed, self.rounds, self.quiet, self.stop_on_failure = args.seed, args.rounds, args.quiet, args.stop
        self.bin = os.path.abspath(args.bin)
        self.work = args.dir
        self.store = os.path.join(self.work, STORE)
        self.tools = {}
        self.ops = {}             # timestamp -> Op, every record ever sent
        self.state = {key: ("absent", None) for key in ALL_KEYS}   # each key's answer after the last round
        self.stable = {}          # (segment, offset) -> op: acknowledged records no merge can have moved
        self.outcome = harness.Rounds(MAX_PROBLEMS)
        self.timing = {}
        self.n = dict(writers=0, none=0, batch=0, each=0, atomic=0, two_writers=0, fate_kill=0, fate_rollover=0,
                      fate_finish=0, writer_kills=0, fired=0, finished=0, merges=0, merges_first=0, merges_during=0,
                      merges_after=0, merge_timer=0, merge_aimed=0, merge_rename=0, merge_finish=0, merge_ok=0, merge_killed=0,
                      merge_fired=0, merge_other=0, merges_skipped=0, fixes=0, full_checks=0, probes=0,
                      index_updates=0, sent=0, acked=0, acked_bytes=0, unacked_seen=0, unacked_possible=0,
                      torn_seen=0, fix_truncated=0, notices=0, scans=0, lookups=0, answers=0, addresses=0,
                      duplicates=0, empty_segments=0, index_refused=0, segments_max=0, merge_ms=0, max_eof_wait=0,
                      tears=0, tears_whole=0, merge_merged=0, merge_nothing=0, merge_outputs=0,
                      merge_removed=0, merge_sizes=0, merge_min_garbage=0,
                      reads=0, read_answers=0, two_readers=0, reads_tail=0, tears_skipped=0)
        self.can_merge = self.takes_store("logpack")
        self.can_index = self.takes_store("logidx")

    def tool(self, name):
        if name not in self.tools:
            path = shutil.which(name, path=self.bin)
            if not path:
                setup_error("%s not found in %s" % (name, self.bin))
            self.tools[name] = path
        return self.tools[name]

    def takes_store(self, name):
        """The tool's --help names a store DIR."""
        p = subprocess.run([self.tool(name), "--help"], capture_output=True)
        return re.search(rb"\bDIR\b", p.stdout) is not None

    def run(self, args, data=None, timeout=120):
        """Runs a tool to completion; a hang is exit 124 with a note on stderr."""
        started = time.monotonic()
        try:
            return subprocess.run(args, input=data, capture_output=True, cwd=self.work, timeout=timeout)
        except subprocess.TimeoutExpired:
            return subprocess.CompletedProcess(args, 124, b"", b"%s: timed out after %d s" % (args[0].encode(), timeout))
        finally:
            what = " ".join([os.path.basename(args[0])] + [a for a in args[1:3] if a.startswith("-") or a == "get"][:1])
            self.timing[what] = self.timing.get(what, 0) + time.monotonic() - started

    # ---- acknowledgements -------------------------------------------------

    def register(self, ops, problems, sent=True):
        """Adds ops to the registry, checking every address line printed for them."""
        for op in ops:
            self.ops[op.ts] = op
            self.n["sent"] += sent
            if op.ack is None:
                continue
            self.n["acked"] += 1
            length, crcs = op.checksums()
            self.n["acked_bytes"] += length
            bad = []
            try:
                a = json.loads(op.ack)
                m = re.match(r"^%s/segment-(\d{4,})\.dat$" % STORE, a.get("segment", ""))
                last = op.batch is None or op is op.batch.ops[-1]
                want = {"length": length, "type": "put" if op.put else "delete", "key": op.key, "timestamp": op.ts,
                        "checksum": crcs[0 if last else 1]}
                bad = [k for k, v in want.items() if a.get(k) != v]
                if not m:
                    bad.append("segment")
                if a.get("continues", False) != (not last):
                    bad.append("continues")
                fields = ["segment", "offset", "length", "type", "key", "timestamp", "checksum"] + ([] if last else ["continues"])
                if list(a) != fields:
                    bad.append("fields")
                if not bad:
                    op.addr = (int(m.group(1)), a["offset"], length, a["checksum"])
            except (ValueError, AttributeError, KeyError, TypeError):
                bad = ["not JSON"]
            if bad:
                problems.append("the address line of %s is wrong (%s): %r" % (op.describe(), ", ".join(bad), op.ack[:300]))

    # ---- the checks ------------------------------------------------------------

    def check_listing(self, label):
        problems = []
        numbers = {}
        for name in sorted(os.listdir(self.store)):
            m = SEGMENT.match(name)
            if m:
                number = int(m.group(1))
                if number in numbers:
                    problems.append("%s: %s and %s both name segment %d" % (label, numbers[number], name, number))
                numbers[number] = name
            elif name not in ("LOCK", "index.json") and not RUN.match(name) and not (
                    name.startswith(".") and ".tmp-" in name):
                problems.append("%s: %s/%s is not a file a store may hold (a merge's or a writer's leftover?)" % (
                    label, STORE, name))
        return problems

    def scan(self, label, strict):
        """(b) for the store as it is: returns (Scan, problems)."""
        self.n["scans"] += 1
        problems = self.check_listing(label)
        s = Scan()
        s.segments = segments_of(self.store)
        p = self.run([self.tool("logscan"), STORE])
        err = p.stderr.decode(errors="replace")
        ends = {}                 # segment number -> where its records end
        order = []
        bad = 0
        for raw in p.stdout.split(b"\n")[:-1]:
            try:
                rec = json.loads(raw)
                m = re.match(r"^%s/segment-(\d{4,})\.dat$" % STORE, rec["segment"])
                number, offset, ts = int(m.group(1)), rec["offset"], rec["timestamp"]
            except (ValueError, KeyError, TypeError, AttributeError):
                problems.append("%s: logscan printed %r" % (label, raw[:200]))
                break
            if not order or order[-1] != number:
                if number in ends or (order and number < order[-1]):
                    problems.append("%s: logscan printed segment %d after segment %d" % (label, number, order[-1]))
                order.append(number)
            if offset != ends.get(number, 0) and bad < 3:
                bad += 1
                problems.append("%s: logscan printed offset %d of segment %d after a record ending at %d" % (
                    label, offset, number, ends.get(number, 0)))
            ends[number] = offset + rec["length"]
            s.records += 1
            s.at[(number, offset)] = (ts, rec["length"], rec["checksum"])
            s.seen[ts] = s.seen.get(ts, 0) + 1
            op = self.ops.get(ts)
            why = None
            if op is None:
                why = "a record this torture never wrote"
            elif rec.get("key") != op.key or rec.get("type") != ("put" if op.put else "delete"):
                why = "a record with the timestamp of %s" % op.describe()
            elif op.put and rec.get("value") != op.value():
                why = "%s with another value (%r...)" % (op.describe(), str(rec.get("value"))[:40])
            elif (rec.get("length"), rec.get("checksum") in op.checksums()[1]) != (op.checksums()[0], True):
                why = "%s with length %s and checksum %s" % (op.describe(), rec.get("length"), rec.get("checksum"))
            elif not op.possible():
                why = "%s, which logenc never got whole (its commit line was not sent)" % op.describe()
            if why and bad < 6:
                bad += 1
                problems.append("%s: logscan shows %s at segment %d offset %d" % (label, why, number, offset))
            s.newest[rec.get("key")] = rec
        s.dups = sum(1 for c in s.seen.values() if c > 1)
        # Exit status and stderr: damage only as a torn tail at the end of the highest segment.
        highest = max(s.segments) if s.segments else None
        damage = []
        for line in err.splitlines():
            m = DAMAGE.match(line)
            if m:
                damage.append((m.group(1), int(m.group(2)), m.group(3)))
            elif EMPTY.match(line):
                self.n["empty_segments"] += 1
            elif line:
                problems.append("%s: logscan said: %s" % (label, line[:300]))
        if p.returncode == 0 and damage:
            problems.append("%s: logscan exited 0 after reporting damage: %s" % (label, err.strip()[:300]))
        if p.returncode not in (0, 1):
            problems.append("%s: logscan %s exited %d: %s" % (label, STORE, p.returncode, err.strip()[:300]))
        elif p.returncode == 1 and not damage:
            problems.append("%s: logscan exited 1 and reported no damage: %s" % (label, err.strip()[:300]))
        for path, offset, reason in damage:
            m = re.match(r"^%s/segment-(\d{4,})\.dat$" % STORE, path)
            number = int(m.group(1)) if m else None
            where = "%s offset %d (%s)" % (path, offset, reason)
            if number != highest:
                problems.append("%s: logscan reports damage in %s, which is not the active segment (%s): a closed "
                                "segment must be whole" % (label, where, s.segments.get(highest)))
                continue
            if offset != ends.get(number, 0):
                problems.append("%s: logscan reports damage at %s, but the records it printed of that segment end at %d" % (
                    label, where, ends.get(number, 0)))
            chain, stop, size, after, _ = walk_tail(os.path.join(self.work, path), offset)
            if any(not cont for _, _, cont in chain):
                problems.append("%s: damage at %s, but whole records from there end a batch: a committed batch is hidden" % (
                    label, where))
            if after is not None:
                problems.append("%s: damage at %s is followed by a valid record at offset %d of %d bytes: not a torn tail" % (
                    label, where, after, size))
            if strict:
                problems.append("%s: a torn tail (%s) is still there" % (label, where))
            s.torn = (path, offset, reason)
        if len(damage) > 1:
            problems.append("%s: logscan reports damage in %d places: %s" % (label, len(damage), err.strip()[:300]))
        for number, name in sorted(s.segments.items()):
            size = os.path.getsize(os.path.join(self.store, name))
            end = ends.get(number, 0)
            if end != size and not (s.torn and number == highest):
                problems.append("%s: logscan's records of %s end at %d of its %d bytes" % (label, name, end, size))
        if s.segments:
            self.n["segments_max"] = max(self.n["segments_max"], len(s.segments))
        return s, problems

    def check_stable(self, s, label):
        """(c) acknowledged records that no merge can have moved are where their address lines said."""
        self.n["addresses"] += len(self.stable)
        lost = [op for (number, offset), op in self.stable.items()
                if s.at.get((number, offset)) != (op.ts, op.addr[2], op.addr[3])]
        problems = []
        if lost:
            problems.append("%s: %d of %d acknowledged records that no merge can have moved are not at their printed "
                            "addresses, the first:" % (label, len(lost), len(self.stable)))
            for op in lost[:3]:
                got = s.at.get(op.addr[:2])
                problems.append("  %s: %s" % (op.describe(), "nothing there" if got is None else
                                             "the record of %s is there" % ident_of(got[0])))
        return problems

    def acceptable(self, key, round_ops, last_acked):
        """The states the key may answer: records that may have been appended and are
        not provably before a record of the key known to have been appended; the
        last round's answer if no record of the key is known appended."""
        ops = [op for op in round_ops.get(key, ()) if op.possible()]
        known = [op for op in ops if op.known]
        states = [op for op in ops if not any(before(op, k, last_acked) for k in known)]
        if not known:
            states.append(self.state[key])
        return states, known

    def matches(self, key, answer, state):
        if isinstance(state, Op):
            kind, op = ("put" if state.put else "delete"), state
        else:
            kind, op = state
        if kind == "put":
            return (answer is not None and answer[0] == "put" and answer[1] == op.ts and answer[2] in op.checksums()[1]
                    and answer[3] == op.value())
        # A delete, or absent: missing, or deleted by a tombstone of the key (a merge may drop it).
        if answer is None:
            return True
        tomb = self.ops.get(answer[1])
        return (answer[0] == "delete" and tomb is not None and tomb.key == key and not tomb.put
                and answer[2] in tomb.checksums()[1])

    def check_reader(self, reader, round_ops, last_acked, writers, tear):
        """Every read made during the round: exit statuses, and each key's answer. A read
        must answer a record that may have been appended and is not provably before a
        record of the key acknowledged before the read started; the last round's
        answer only if no such record exists (so a key nobody wrote this round answers
        exactly as after the last round, through every step of a merge)."""
        problems = []
        for command, status, answers, err, start, asked in reader.results:
            self.n["reads"] += 1
            text = err.decode(errors="replace").strip()
            lines = [line for line in text.splitlines() if not EMPTY.match(line)]
            if command.startswith("logscan"):
                # A batch being appended, or a torn tail, at the end of the active segment: damage of
                # those shapes only (a live append is "not shown yet"; logscan reports the batch).
                tail = [line for line in lines if TAIL.match(line)]
                ok = status == 0 or (status == 1 and len(tail) == len(lines) == 1)
                self.n["reads_tail"] += status == 1 and ok
            elif command.startswith("logidx get"):
                ok = status in (0, 1) and answers is not None
            else:
                ok = status == 0
            if not ok:
                problems.append("during the round: %s exited %d: %s" % (command, status, text[:600]))
                continue
            if answers is None:
                continue
            for key in asked:
                self.n["read_answers"] += 1
                answer = answers.get(key)
                ops = [op for op in round_ops.get(key, ()) if op.possible()]
                known = [op for op in ops if op.addr and op.done < start]
                states = [op for op in ops if not any(before(op, k, last_acked) for k in known)]
                if not known:
                    states.append(self.state[key])
                if any(self.matches(key, answer, state) for state in states):
                    continue
                st = self.state[key]
                last = "missing" if st[0] == "absent" else "%s %s" % ("put" if st[0] == "put" else "deleted by",
                                                                      ident_of(st[1].ts))
                newest = max(known, key=lambda op: op.addr[:2], default=None)
                problems.append("during the round: %s: key %s answers %s: %s" % (
                    command, key, show(answer),
                    "written by nobody this round, it answered %s after the last round" % last if key not in round_ops
                    else "the newest record of the key acknowledged before the read started is %s" % newest.describe()
                    if newest else "not a record sent this round, and it answered %s after the last round" % last))
                break
        return problems[:6]

    def judge(self, label, reader, answers, round_ops, last_acked):
        problems = []
        for key in ALL_KEYS:
            self.n["answers"] += 1
            answer = answers.get(key)
            states, known = self.acceptable(key, round_ops, last_acked)
            if any(self.matches(key, answer, state) for state in states):
                continue
            newest = max((op for op in known if op.addr), key=lambda op: op.addr[:2], default=None)
            allowed = ", ".join(sorted(set(
                ("put %s" % ident_of(st.ts) if st.put else "deleted/missing (%s)" % ident_of(st.ts)) if isinstance(st, Op)
                else "missing" if st[0] == "absent" else "%s %s (last round)" % ("put" if st[0] == "put" else "deleted/missing",
                                                                                  ident_of(st[1].ts))
                for st in states)))
            why = ("a deleted key came back" if answer and answer[0] == "put" and states and all(
                not (st.put if isinstance(st, Op) else st[0] == "put") for st in states) else "not acceptable")
            problems.append("%s: key %s: %s answers %s: %s; acceptable: %s; newest acknowledged record of the key this "
                            "round: %s; known appended this round: %d records of it" % (
                                label, key, reader, show(answer), why, allowed or "nothing",
                                newest.describe() if newest else "none", len(known)))
        return problems

    def mark_known(self, writers, scan):
        """Which records are known to have been appended: acknowledged or seen, and every
        earlier record of the same writer, and the whole batch of one."""
        for wr in writers:
            top = -1
            for op in wr.ops:
                if op.ack is not None or op.ts in scan.seen:
                    top = op.seq
                    if op.batch is not None:
                        top = max(top, op.batch.ops[-1].seq)
                    if op.ack is None:
                        self.n["unacked_seen"] += 1
            for op in wr.ops[:top + 1]:
                op.known = True

    def lookups(self, label, scan, index):
        """(d) the index, updated in some rounds, answers every key as logscan's dict."""
        problems = []
        if index:
            self.n["index_updates"] += 1
            idx = self.run([self.tool("logidx"), "-o", STORE + "/index.json", STORE])
            if idx.returncode != 0:
                if idx.returncode == 1 and scan.torn:
                    self.n["index_refused"] += 1  # a torn tail: the old index stays
                else:
                    problems.append("%s: logidx -o %s/index.json %s exited %d: %s" % (
                        label, STORE, STORE, idx.returncode, idx.stderr.decode(errors="replace").strip()[:300]))
        get = self.run([self.tool("logidx"), "get", "--json", STORE, "-"], "".join(k + "\n" for k in ALL_KEYS).encode())
        self.n["lookups"] += len(ALL_KEYS)
        lines = get.stdout.decode(errors="replace").split("\n")[:-1]
        answers = {}
        for key, text in zip(ALL_KEYS, lines):
            try:
                a = json.loads(text)
            except ValueError:
                a = {}
            status = a.get("status")
            if a.get("key") != key or status not in ("found", "deleted", "missing"):
                problems.append("%s: logidx get %s: %s" % (label, key, text[:200]))
                continue
            answers[key] = None if status == "missing" else answer_of(a)
        want_status = 0 if all(answers.get(k) and answers[k][0] == "put" for k in ALL_KEYS) else 1
        if len(lines) != len(ALL_KEYS) or get.returncode != want_status:
            problems.append("%s: logidx get --json %s -: exit %d, %d lines for %d keys: %s" % (
                label, STORE, get.returncode, len(lines), len(ALL_KEYS), get.stderr.decode(errors="replace").strip()[:300]))
        for key in ALL_KEYS:
            if key in answers:
                mine = answers[key]
                theirs = answer_of(scan.newest.get(key))
                if mine != theirs:
                    problems.append("%s: key %s: logidx get answers %s, logscan's newest record is %s" % (
                        label, key, show(mine), show(theirs)))
        return answers, problems

    # ---- one round -----------------------------------------------------------

    def round(self, r):
        rng = random.Random("%d/round/%d" % (self.seed, r))
        size = rng.choice((4, 4, 6, 8, 12, 16, 24, 32, 48, 64)) << 10
        writers = []
        count = 2 if rng.random() < 0.45 else 1
        for w in range(1, count + 1):
            sync = rng.choice(("none", "batch", "each"))
            atomic = rng.random() < 0.4
            x = rng.random()
            fate = "kill" if x < 0.6 else "rollover" if x < 0.75 else "finish"
            start = 0.0 if w == 1 else rng.uniform(0, 0.1)
            life = rng.uniform(0.03, 0.35)
            writers.append(Writer(self, r, w, sync, atomic, fate, start, life, size))
        merge = None
        if rng.random() < 0.65:
            x = rng.random()
            when = "first" if x < 0.2 else "during" if x < 0.8 else "after"
            x = rng.random()
            kind = "timer" if x < 0.25 else "aimed" if x < 0.5 else "rename" if x < 0.75 else "finish"
            merge = Merge(self, when, rng.uniform(0, 0.25) if when == "during" else 0.0, kind,
                          rng.uniform(0, 0.15), 1 + int(rng.random() ** 2 * 20), rng.choice((0.0, rng.uniform(0, 0.003))),
                          rng.choice((None, None, size, 2 * size, 1 << 10, 2 << 10, 4 << 10, 8 << 10)),
                          rng.choice((None, None, None, 0.1, 0.3, 0.6)))
            if when == "first":
                for wr in writers:
                    wr.start_delay += rng.uniform(0.002, 0.03)
        fix = rng.random() < 0.35
        full = rng.random() < 0.5
        probe = rng.random() < 0.3 or r == self.rounds
        index = rng.random() < 0.6
        tear = Tear(self, r, random.Random("%d/tear/%d" % (self.seed, r))) if rng.random() < 0.25 else None
        reading = threading.Event()
        readers = [Reader(self, random.Random("%d/reader/%d/%d" % (self.seed, r, k)), reading, k == 0)
                   for k in range(2 if rng.random() < 0.5 else 1)]
        probe_rng = random.Random("%d/probe/%d" % (self.seed, r))

        n = self.n
        n["writers"] += len(writers)
        n["two_writers"] += len(writers) == 2
        for wr in writers:
            n[wr.sync] += 1
            n["atomic"] += wr.atomic
            n["fate_" + wr.fate] += 1
        if merge:
            n["merges"] += 1
            n["merges_" + merge.when] += 1
            n["merge_" + merge.kind] += 1
            n["merge_sizes"] += merge.size is not None
            n["merge_min_garbage"] += merge.min_garbage is not None
            if not self.can_merge:
                n["merges_skipped"] += 1
                merge = None
        n["fixes"] += fix
        n["full_checks"] += fix and full
        n["two_readers"] += len(readers) == 2
        if tear:
            n["tears"] += 1
            n["tears_whole"] += tear.whole
        n["probes"] += probe

        threads = [threading.Thread(target=wr.run) for wr in writers]
        if merge and merge.when != "after":
            threads.append(threading.Thread(target=merge.run))
        if tear and not tear.after:
            threads.append(threading.Thread(target=tear.run))
        reading_threads = [threading.Thread(target=reader.run) for reader in readers]
        for thread in reading_threads:
            thread.start()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if tear and tear.after:
            tear.run()
        if merge and merge.when == "after":
            merge.run()
        reading.set()
        for thread in reading_threads:
            thread.join()

        problems = []
        if tear:
            self.register(tear.batch.ops, problems, sent=False)
            n["tears_skipped"] += tear.skipped
            if tear.error:
                problems.append(tear.error)
        round_ops = {}
        last_acked = {}
        for wr in writers:
            n["notices"] += wr.stderr.count(b"torn tail")
            if wr.fate == "finish":
                if wr.hung:
                    problems.append("writer %d (--sync %s%s) did not exit within 30 s of the end of its input" % (
                        wr.w, wr.sync, " --atomic" if wr.atomic else ""))
                elif wr.status != 0:
                    problems.append("writer %d (--sync %s%s), its input ended, exited %s: %s" % (
                        wr.w, wr.sync, " --atomic" if wr.atomic else "", wr.status,
                        wr.stderr.decode(errors="replace").strip()[:300]))
                else:
                    n["finished"] += 1
                    n["max_eof_wait"] = max(n["max_eof_wait"], wr.eof_wait)
            elif wr.status == -signal.SIGKILL:
                n["writer_kills"] += 1
                n["fired"] += wr.fired
            else:
                problems.append("writer %d (--sync %s%s) exited %s before it was killed: %s" % (
                    wr.w, wr.sync, " --atomic" if wr.atomic else "", wr.status,
                    wr.stderr.decode(errors="replace").strip()[:300]))
            if wr.extra:
                problems.append("writer %d printed %d address lines more than the records it was sent: %r" % (
                    wr.w, len(wr.extra), wr.extra[0][:200]))
            self.register(wr.ops, problems)
            if wr.fate == "finish" and wr.status == 0:
                unacked = [op for op in wr.ops if op.ack is None]
                if unacked:
                    problems.append("writer %d exited 0 at the end of its input without printing the addresses of %d "
                                    "records, the first %s" % (wr.w, len(unacked), unacked[0].describe()))
            for op in wr.ops:
                round_ops.setdefault(op.key, []).append(op)
                if op.addr:
                    last_acked[op.w] = op
                elif op.possible():
                    n["unacked_possible"] += 1
        merged = False
        if merge:
            if merge.killed:
                n["merge_killed"] += 1
                n["merge_fired"] += merge.fired
                merged = True
                if merge.kind == "finish":
                    problems.append("logpack %s did not finish within %d s" % (STORE, MERGE_TIMEOUT))
            elif merge.status == 0:
                n["merge_ok"] += 1
                n["merge_ms"] += merge.seconds * 1000
                merged = True
                report = merge.report if isinstance(merge.report, dict) else {}
                if report.get("merged") is True:
                    n["merge_merged"] += 1
                    n["merge_outputs"] += len(report.get("outputs") or ())
                    n["merge_removed"] += len(report.get("removed") or ())
                elif report.get("merged") is False and report.get("skipped"):
                    n["merge_nothing"] += 1
                else:
                    problems.append("%s exited 0 with the report %r" % (merge.command(), merge.out[:300]))
            else:
                n["merge_other"] += 1
                merged = True
                problems.append("%s exited %s: %s" % (merge.command(), merge.status, merge.err.decode(errors="replace").strip()[:300]))
        # Acknowledged addresses stay valid until a merge can have moved them.
        if merged:
            self.stable = {}
        for wr in writers:
            for op in wr.ops:
                if op.addr and (not merged or op.sent > merge.ended):
                    self.stable[op.addr[:2]] = op

        scan, found = self.scan("after the kills", strict=False)
        problems.extend(found)
        if scan.torn:
            n["torn_seen"] += 1
        n["duplicates"] += scan.dups
        if merge and merge.status == 0 and isinstance(merge.report, dict) and merge.report.get("merged") is True:
            outputs = [o.get("path") for o in merge.report.get("outputs") or () if isinstance(o, dict)]
            removed = [x.get("path") if isinstance(x, dict) else x for x in merge.report.get("removed") or ()]
            gone = [x for x in outputs if not x or not os.path.exists(os.path.join(self.work, x))]
            back = [x for x in removed if not x or os.path.exists(os.path.join(self.work, x))]
            if gone or back:
                problems.append("after %s completed: %s" % (merge.command(), "; ".join(
                    (["its outputs %s are not there" % ", ".join(map(str, gone))] if gone else []) +
                    (["the segments it removed %s are there" % ", ".join(map(str, back))] if back else []))))
            if scan.dups:
                problems.append("after %s completed: logscan shows %d records twice (a merge keeps one record per key "
                                "of the closed segments)" % (merge.command(), scan.dups))
        self.mark_known(writers, scan)
        problems.extend(self.judge("after the kills", "logscan's newest record", 
                                   {k: answer_of(v) for k, v in scan.newest.items()}, round_ops, last_acked))
        problems.extend(self.check_stable(scan, "after the kills"))
        before_fix = {k: answer_of(scan.newest.get(k)) for k in ALL_KEYS}
        for reader in readers:
            problems.extend(self.check_reader(reader, round_ops, last_acked, writers, tear))

        if fix:
            p = self.run([self.tool("logfix"), STORE])
            reports = []
            for line in p.stdout.decode(errors="replace").splitlines():
                try:
                    reports.append(json.loads(line))
                except ValueError:
                    reports.append({"line": line})
            active = "%s/%s" % (STORE, scan.segments[max(scan.segments)]) if scan.segments else None
            if scan.torn:
                want = {"segment": scan.torn[0], "action": "truncated", "recovered_size": scan.torn[1]}
                n["fix_truncated"] += 1
            else:
                want = {"segment": active, "action": "none"}
            if p.returncode != 0 or len(reports) != 1 or any(reports[0].get(k) != v for k, v in want.items()):
                problems.append("logfix %s (%s): exit %d, %s: %s" % (
                    STORE, "a torn tail at %s offset %d" % scan.torn[:2] if scan.torn else "no torn tail", p.returncode,
                    p.stdout.decode(errors="replace").strip()[:400], p.stderr.decode(errors="replace").strip()[:300]))
            scan, found = self.scan("after logfix", strict=True)
            problems.extend(found)
            if full:
                p = self.run([self.tool("logfix"), "--check", "--full", STORE])
                lines = p.stdout.decode(errors="replace").splitlines()
                dirty = [line for line in lines if '"action":"none"' not in line]
                if p.returncode != 0 or dirty or len(lines) != len(scan.segments):
                    problems.append("logfix --check --full %s after logfix: exit %d, %d report lines for %d segments%s: %s" % (
                        STORE, p.returncode, len(lines), len(scan.segments),
                        ", the first not clean: " + dirty[0][:300] if dirty else "",
                        p.stderr.decode(errors="replace").strip()[:300]))
        probe_op = None
        if probe:
            key = probe_rng.choice(KEYS + [PROBE_KEY] * 4)
            put = key == PROBE_KEY or probe_rng.random() < 0.6
            probe_op = Op(key, put, T0 + r * 10 ** 7 + PROBE_WRITER * 10 ** 6, probe_rng.randint(0, 100) if put else 0,
                          PROBE_WRITER, 0, "batch")
            probe_op.sent = CLOCK.tick()
            args = [self.tool("logenc"), "-a", STORE, "--segment-size", str(size), "--timestamp", str(probe_op.ts)]
            args += [key, probe_op.value()] if put else ["-d", key]
            p = self.run(args, timeout=60)
            probe_op.done = CLOCK.tick()
            n["notices"] += p.stderr.count(b"torn tail")
            if p.returncode == 0 and p.stdout.endswith(b"\n") and p.stdout.count(b"\n") == 1:
                probe_op.ack = p.stdout
            else:
                problems.append("the probe writer (%s): exit %d, stdout %r: %s" % (
                    " ".join(os.path.basename(a) for a in args[:1]) + " " + " ".join(args[1:])[:120], p.returncode,
                    p.stdout[:200], p.stderr.decode(errors="replace").strip()[:300]))
            self.register([probe_op], problems)
            round_ops.setdefault(key, []).append(probe_op)
            if probe_op.addr:
                self.stable[probe_op.addr[:2]] = probe_op
                probe_op.known = True
            scan, found = self.scan("after the probe writer", strict=True)
            problems.extend(found)
        final = {k: answer_of(scan.newest.get(k)) for k in ALL_KEYS}
        if fix or probe:
            label = "after the probe writer" if probe else "after logfix"
            problems.extend(self.judge(label, "logscan's newest record", final, round_ops, last_acked))
            problems.extend(self.check_stable(scan, label))
            changed = [k for k in ALL_KEYS if final[k] != before_fix[k] and not (probe_op and k == probe_op.key)]
            for k in changed[:3]:
                problems.append("%s: key %s answered %s after the kills, now %s" % (label, k, show(before_fix[k]), show(final[k])))
        if self.can_index:
            label = "through the index" + (" (after the probe writer)" if probe else " (after logfix)" if fix else "")
            answers, found = self.lookups(label, scan, index)
            problems.extend(found)
            problems.extend(self.judge(label, "logidx get", answers, round_ops, last_acked))

        # The answers now are the next round's starting point (they are stable: a merge or a
        # repair never changes one). Kept as observed, also after a failure, so one wrong
        # answer is reported once.
        for key in ALL_KEYS:
            rec = scan.newest.get(key)
            op = self.ops.get(rec.get("timestamp")) if rec else None
            if rec is None or op is None:
                self.state[key] = ("absent", None)
            else:
                self.state[key] = ("put" if rec.get("type") == "put" else "delete", op)
        return problems

    # ---- the loop ----------------------------------------------------------------

    def preload(self):
        """Round 0: one put of every key, in segments of 1 KB, appended by a writer that finishes."""
        ops = [Op(key, True, T0 + 1 * 10 ** 6 + i, 40 + i * 3, 1, i, "batch") for i, key in enumerate(KEYS)]
        tick = CLOCK.tick()
        for op in ops:
            op.sent = tick
        p = self.run([self.tool("logenc"), "-a", STORE, "--segment-size", "1K"], "".join(op.line() for op in ops).encode())
        tick = CLOCK.tick()
        lines = p.stdout.splitlines(keepends=True)
        if p.returncode != 0 or len(lines) != len(ops):
            setup_error("the preload failed: exit %d: %s" % (p.returncode, p.stderr.decode(errors="replace").strip()))
        for op, line in zip(ops, lines):
            op.ack, op.done = line, tick
        problems = []
        self.register(ops, problems)
        for op in ops:
            self.state[op.key] = ("put", op)
            self.stable[op.addr[:2]] = op
        if problems:
            setup_error("the preload: %s" % problems[0])

    def main(self):
        started = time.monotonic()
        os.makedirs(self.store)
        self.preload()
        r = 0
        for r in range(1, self.rounds + 1):
            problems = self.round(r)
            if problems:
                print("round %d: FAILED (seed %d; reproduce: python3 Tests/torture/store_kill9.py --seed %d --rounds %d "
                      "--stop --keep --bin %s)" % (r, self.seed, self.seed, r, self.bin), flush=True)
            else:
                print("round %d: ok" % r, flush=True)
            if self.outcome.record(r, problems) and self.stop_on_failure:
                break
        rounds = r
        n = self.n
        print("schedule (seed %d): %d rounds, %d writers (%d --sync none, %d batch, %d each; %d --atomic; two at once in "
              "%d rounds): %d killed at random moments, %d killed as they start a new segment, %d let finish; %d merges "
              "(%d started before the writers, %d among them, %d after them; %d killed at random moments, %d at a change of "
              "the directory, %d at their first rename, %d let finish), %d torn writes (%d of whole records), logfix in %d rounds (%d with logfix --check "
              "--full), %d probe writers, two readers at once in %d rounds" % (
                  self.seed, rounds, n["writers"], n["none"], n["batch"], n["each"], n["atomic"], n["two_writers"],
                  n["fate_kill"], n["fate_rollover"], n["fate_finish"], n["merges"], n["merges_first"], n["merges_during"],
                  n["merges_after"], n["merge_timer"], n["merge_aimed"], n["merge_rename"], n["merge_finish"], n["tears"], n["tears_whole"],
                  n["fixes"], n["full_checks"],
                  n["probes"], n["two_readers"]))
        if not self.can_merge:
            print("merges skipped: logpack --help names no store DIR (logpack DIR is not there yet)")
        if not self.can_index:
            print("index lookups skipped: logidx --help names no store DIR (logidx get DIR is not there yet)")
        if not self.quiet:
            print("kills: %d writers (%d as a new segment appeared), %d merges (%d at a change of the directory or their "
                  "first rename); %d writers "
                  "finished (their input ended), the longest took %.3f s from the end of its input to its exit" % (
                      n["writer_kills"], n["fired"], n["merge_killed"], n["merge_fired"], n["finished"], n["max_eof_wait"]))
            print("merges: %d run (%d with --segment-size, %d with --min-garbage), %d completed (%.0f ms on average): %d "
                  "merged (%d outputs written, %d segments removed), %d found nothing worth merging; %d killed, %d other "
                  "exits" % (
                      n["merges"] - n["merges_skipped"], n["merge_sizes"], n["merge_min_garbage"], n["merge_ok"],
                      n["merge_ms"] / max(1, n["merge_ok"]), n["merge_merged"], n["merge_outputs"], n["merge_removed"],
                      n["merge_nothing"], n["merge_killed"], n["merge_other"]))
            print("reads during the rounds: %d (logscan, logidx get, logidx -o), %d answers judged; %d logscan reads "
                  "ended at an append in progress or a torn tail (exit 1)" % (n["reads"], n["read_answers"], n["reads_tail"]))
            print("records: %d sent, %d acknowledged (%.1f MB); %d not acknowledged but possibly appended, %d of them seen "
                  "in the store; %d records seen twice by a scan" % (
                      n["sent"], n["acked"], n["acked_bytes"] / 1e6, n["unacked_possible"], n["unacked_seen"], n["duplicates"]))
            print("torn tails after the kills: %d; logfix truncated %d; %d writer notices of a truncated torn tail; %d empty "
                  "segments noted by logscan; %d torn writes skipped (the active segment did not end clean)" % (
                      n["torn_seen"], n["fix_truncated"], n["notices"], n["empty_segments"], n["tears_skipped"]))
            segments = segments_of(self.store)
            print("checks: %d logscan reads, %d answers judged, %d index updates (%d refused a torn tail), %d keys through "
                  "logidx get, %d acknowledged addresses re-read; at most %d segments, now %d (%.1f MB); %.1f s" % (
                      n["scans"], n["answers"], n["index_updates"], n["index_refused"], n["lookups"], n["addresses"],
                      n["segments_max"], len(segments),
                      sum(os.path.getsize(os.path.join(self.store, s)) for s in segments.values()) / 1e6,
                      time.monotonic() - started))
            print("time in the tools run after the rounds: %s" % ", ".join(
                "%s %.1f s" % (k, v) for k, v in sorted(self.timing.items(), key=lambda kv: -kv[1])))
        return harness.report("store_kill9.py", self.seed, rounds, self.outcome,
                              " --stop --keep --bin " + self.bin)


def setup_error(message):
    harness.setup_error("store_kill9.py", message)


def main():
    harness.run(__doc__, Torture, 100, "logkit-store-torture.", STORE, "store", bin_default=os.path.join(ROOT, "bin"))

if __name__ == "__main__":
    main()
