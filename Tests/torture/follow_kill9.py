#!/usr/bin/env python3
"""Follower torture: `logscan --follow --cursor-file F DIR` killed with kill -9
at random moments, round after round, while writers append to the store DIR,
its segments roll over and `logpack DIR` merges them (killed or not); every run
resumes from the cursor file. Together the runs must print every committed
record, no key's value may go backwards, and no batch is ever shown in part.

usage: python3 Tests/torture/follow_kill9.py [--rounds N] [--seed S] [--bin DIR]
                                             [--dir DIR] [--keep] [--quiet] [--stop]

One store (`store`, in the work directory) lives through every round, so
merges meet segments that earlier rounds' writers, merges and kills left. Each
round (its schedule drawn from random.Random("SEED/round/N"), so it never
depends on timing) runs at once:

- one or two writers, `logenc -a store --sync batch --segment-size S` (S of
  2, 4, 8 or 16 KiB, so segments roll over every few dozen records), half of
  them `--atomic`: fed by a thread bursts of 1-15 records, or atomic batches of
  1-50 records each ended by `{"type":"commit"}` (a third of them sent in two
  pieces 5-40 ms apart: a writer killed in between never sends the commit
  line, and logenc holds half a batch). Each writer is killed with kill -9 at
  a random moment (4 in 5), or its input is closed and it must exit 0. Every record carries a version: a global
  counter, written as its timestamp (T0 + version) and at the head of its
  value ("v<version>:" and padding). Hot keys ("h<slot>-<n>", 12 per writer
  slot; puts and a few deletes) are written by only one writer slot, and a
  slot's writer is dead before the slot's next one starts, so for every key
  the order of commits is the order of versions; unique keys ("u<version>")
  are written once. The last record of every atomic batch has a unique key.
- 0 to 4 runs of `logpack store`,
  one after another at random moments: 3 in 10 killed with kill -9 within
  30 ms, 3 in 10 aimed: killed 0-3 ms after the store's lowest segment was
  renamed over (the merge's first rename), so the kill lands among its renames
  and removals and leaves the store half merged until the next merge.
- the follower, `logscan --follow --cursor-file store.cursor store`, stdout and
  stderr to files of their own per run (runs/rROUND-N.jsonl, .err): 2 to 5
  runs, each started after a pause (none, up to 80 ms, or up to 300 ms, while
  writers roll segments over and merges run) and killed at once, within 5 ms,
  after up to 300 ms, or once its output was quiet for 20-80 ms (idle); then
  one run that lasts until the writers and merges are dead, killed then.

Then, every process dead: a sentinel writer appends one record (and truncates
what the kills left), in 2 rounds in 5 a `logpack store` runs to completion
while no follower runs, and a last follower run resumes and is killed once it
printed the sentinel (it must within 20 s, else it hangs), the last record
committed: so by then the round's runs have had every chance to print
everything. `logscan store` must then exit 0 (it also tells, for the figures,
whether a killed merge left the store half merged: a record in it twice).
Checks, over the round's runs:

(a) nothing missed: every record a writer acknowledged (printed its address
    line) this round was printed by a follower run this round, unless a merge
    may have dropped it: a delete, or a record of a key with a newer record
    sent before some `logpack` (completed or killed) ended. Unique keys are
    never dropped, so every acknowledged unique record must be printed.
(b) nothing invented: every printed record is one sent here (key, timestamp,
    and value byte for byte), and none of an atomic batch whose commit line
    was never sent.
(c) no value goes backwards, within one stream. Records are identified by
    (key, timestamp), unique per write; a version is its timestamp - T0.
    Within one follower run, for every key, the versions printed never
    decrease (a record printed again, with the same version, is allowed: after
    a merge the follower starts again from the store's first segment). Across
    runs: the stream a consumer keeps is each run's output up to the record its
    cursor file names when it is killed, followed by the next run's output; as
    long as the next run resumed after that cursor (it did not say its cursor's
    record is "not there"), that joined stream must not go backwards either. A
    run that starts again from the store's first segment starts a new stream:
    the contract promises a consumer only that it ends at each key's newest
    value across that restart (README: "the replica gets those records again,
    in order"), so an older value there is counted in the figures, not failed.
(d) whole batches: within one run, the records of an atomic batch come as one
    group, in order, the "continues" flag on all but the last; the group holds
    every record of the batch that no merge may have dropped (always the last).
    Only the last group of a run's output may stop short (cut by the kill:
    stdout is flushed in 1 MiB pieces), with the flag on its last record; the
    batch must then be printed whole by some run of the round.
(e) the cursor file: after every kill it is one cursor line, and if the run
    changed it, it names a record that run printed (so it never gets ahead
    of what reached stdout).
(f) the follower exits only when killed (any other exit, or a note on stderr
    other than the two about a merge, is a failure); writers killed or exit 0
    after their input closed; logpack exits 0 or is killed.

Prints "round N: ok" (or "round N: FAILED" and its first problems) with the
round's figures, then the totals (with --quiet only lines the seed
determines), then "N passed, N failed" (rounds). Exit 0 if every round
passed, 1 if one failed (the first problems are listed with the seed and
round), 2 on a usage or setup error. Tools come from --bin DIR, else from PATH.
The default 100 rounds take about two minutes on 2 CPUs; the golden case
follow-kill9-short runs 6 of them with --quiet.
"""
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the repository

import harness  # noqa: E402  (beside this script)

import glob
import itertools
import json
import os
import random
import shutil
import signal
import subprocess
import threading
import time

STORE = "store"                  # relative to the work directory (every tool runs there)
CURSOR = "store.cursor"          # beside the store: a store holds nothing but its own files
RUNS = "runs"                    # the follower runs' stdout and stderr files
T0 = 1700000000000               # a record's timestamp is T0 + its version
SLOTS = 2                        # writer slots; slot s alone writes the hot keys h<s>-*
HOT_PER_SLOT = 12
COMMIT = b'{"type":"commit"}\n'
MERGE_NOTES = ("merged while followed", "is not there (merged?)")
CATCH_UP_TIMEOUT = 20            # seconds for the last run to print the sentinel
PROCESS_TIMEOUT = 30
MAX_PROBLEMS = 10


class Versions:
    """The global version counter, shared by the writers' feeder threads."""

    def __init__(self):
        self.counter = itertools.count(1)
        self.lock = threading.Lock()

    def next(self):
        with self.lock:
            return next(self.counter)


class Batch:
    """An atomic batch: its ops, and how far its commit line got."""
    __slots__ = ("bid", "ops", "commit_sent", "partial_end", "whole_seen")

    def __init__(self, bid):
        self.bid = bid
        self.ops = []
        self.commit_sent = False  # set just before the write(2) that carries the commit line
        self.partial_end = False  # this round, a run's output ended inside it
        self.whole_seen = False   # this round, some run printed it whole


class Op:
    """One record sent to a writer."""
    __slots__ = ("key", "version", "put", "value", "batch", "index", "sent", "ack", "printed", "round", "next")

    def __init__(self, key, version, put, pad, batch=None, index=None):
        self.key, self.version, self.put = key, version, put
        self.value = "v%d:%s" % (version, pad) if put else None
        self.batch, self.index = batch, index
        self.sent = None      # time.monotonic() just before the write(2) that carried its line
        self.ack = None       # its address line, if the writer printed it
        self.printed = False  # by a follower run of this round
        self.round = None
        self.next = None      # the key's next op

    @property
    def ts(self):
        return T0 + self.version

    @property
    def unique(self):
        return self.key.startswith("u")

    def line(self):
        if self.put:
            return '{"key":"%s","value":"%s","timestamp":%d}\n' % (self.key, self.value, self.ts)
        return '{"key":"%s","type":"delete","timestamp":%d}\n' % (self.key, self.ts)

    def describe(self):
        what = "put" if self.put else "delete"
        where = "" if self.batch is None else " (record %d of %d of atomic batch %s)" % (
            self.index + 1, len(self.batch.ops), self.batch.bid)
        return "%s v%d of %s%s, round %s, %s" % (what, self.version, self.key, where, self.round,
                                                 "acknowledged" if self.ack else "never acknowledged")


class Writer:
    """One `logenc -a store [--atomic]` with a feeder, a reader and a stderr thread."""

    def __init__(self, torture, r, slot, atomic, size, start_delay, life, end):
        self.t = torture
        self.r, self.slot, self.atomic, self.size = r, slot, atomic, size
        self.start_delay, self.life, self.end = start_delay, life, end
        self.rng = random.Random("%d/writer/%d/%d" % (torture.seed, r, slot))
        self.ops = []            # in the order their lines were sent
        self.batches = []
        self.acks = 0
        self.extra_lines = []
        self.bad_lines = []
        self.stop = threading.Event()
        self.fed = threading.Event()
        self.status = None
        self.stderr = b""

    def new_op(self, unique, batch=None, index=None):
        version = self.t.versions.next()
        rng = self.rng
        if unique:
            op = Op("u%d" % version, version, True, "u" * rng.randint(0, 60), batch, index)
        else:
            key = "h%d-%02d" % (self.slot, rng.randrange(HOT_PER_SLOT))
            op = Op(key, version, rng.random() < 0.93, chr(97 + version % 26) * rng.randint(0, 80), batch, index)
        op.round = self.r
        return op

    def burst(self):
        """The next piece of input: a list of (bytes, ops, batch or None) pieces."""
        rng = self.rng
        if not self.atomic:
            ops = [self.new_op(rng.random() < 0.2) for _ in range(rng.randint(1, 15))]
            return [("".join(op.line() for op in ops).encode(), ops, None)]
        batch = Batch("%d.%d.%d" % (self.r, self.slot, len(self.batches)))
        self.batches.append(batch)
        n = max(1, min(50, int(50 ** (rng.random() ** 1.3) + 0.5)))
        for i in range(n):
            batch.ops.append(self.new_op(i == n - 1 or rng.random() < 0.2, batch, i))
        text = "".join(op.line() for op in batch.ops).encode() + COMMIT
        if n > 1 and rng.random() < 0.33:
            k = rng.randint(1, n - 1)
            cut = sum(len(op.line()) for op in batch.ops[:k])
            return [(text[:cut], batch.ops[:k], None), (text[cut:], batch.ops[k:], batch)]
        return [(text, batch.ops, batch)]

    def feed(self):
        fd = self.proc.stdin.fileno()
        try:
            while not self.stop.is_set():
                pieces = self.burst()
                for k, (data, ops, batch) in enumerate(pieces):
                    if k:
                        time.sleep(self.rng.uniform(0.005, 0.04))
                        if self.stop.is_set() and self.end == "kill":
                            return  # about to be killed: the batch's commit line is never sent
                    now = time.monotonic()
                    for op in ops:  # before the write: its address line may come at once
                        op.sent = now
                        self.ops.append(op)
                    if batch is not None:
                        batch.commit_sent = True  # from here on, logenc may have it
                    view = memoryview(data)
                    try:
                        while view:
                            view = view[os.write(fd, view):]
                    except OSError:
                        if batch is not None:
                            batch.commit_sent = False  # cut short: logenc died without its commit line
                        raise
                time.sleep(self.rng.uniform(0.002, 0.03))
        except OSError:  # EPIPE once the writer is dead
            pass
        finally:
            self.fed.set()

    def read(self):
        for raw in iter(self.proc.stdout.readline, b""):
            if not raw.endswith(b"\n"):
                break  # cut by the kill: not a printed address
            if self.acks < len(self.ops):
                op = self.ops[self.acks]
                try:
                    a = json.loads(raw)
                    ok = (a.get("key") == op.key and a.get("timestamp") == op.ts
                          and a.get("type") == ("put" if op.put else "delete")
                          and str(a.get("segment", "")).startswith(STORE + "/segment-"))
                except ValueError:
                    ok = False
                if ok:
                    op.ack = raw
                else:
                    self.bad_lines.append((op, raw))
            else:
                self.extra_lines.append(raw)
            self.acks += 1

    def read_stderr(self):
        self.stderr = self.proc.stderr.read()

    def run(self):
        time.sleep(self.start_delay)
        args = [self.t.tool("logenc"), "-a", STORE, "--sync", "batch", "--segment-size", str(self.size)]
        if self.atomic:
            args.append("--atomic")
        self.proc = subprocess.Popen(args, cwd=self.t.work, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        threads = [threading.Thread(target=f) for f in (self.feed, self.read, self.read_stderr)]
        for thread in threads:
            thread.start()
        time.sleep(self.life)
        self.stop.set()
        if self.end == "kill":
            self.proc.send_signal(signal.SIGKILL)
            self.status = self.proc.wait()
        else:
            self.fed.wait()  # the feeder stops between bursts: no half batch
            try:
                self.proc.stdin.close()
            except OSError:
                pass
            try:
                self.status = self.proc.wait(timeout=PROCESS_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.send_signal(signal.SIGKILL)
                self.status = "hung"
                self.proc.wait()
        for thread in threads:
            thread.join()
        try:
            self.proc.stdin.close()
        except OSError:
            pass


class Packer:
    """`logpack store` runs, one after another, each let finish or killed:
    at a random moment ("random"), or "aimed" at its renames and removals: a moment
    (0-3 ms) after the store's lowest segment was renamed over (its first rename)."""

    def __init__(self, torture, plan, t_start):
        self.t = torture
        self.plan = plan          # [(start offset, (kind, value) or None, segment size)]
        self.t_start = t_start
        self.results = []         # (status, stdout, stderr, ended, kind)

    def lowest(self):
        """The path and inode of the store's lowest segment."""
        store = os.path.join(self.t.work, STORE)
        names = sorted((int(name[8:-4]), name) for name in os.listdir(store)
                       if name.startswith("segment-") and name.endswith(".dat"))
        if not names:
            return None, None
        path = os.path.join(store, names[0][1])
        try:
            return path, os.stat(path).st_ino
        except OSError:
            return path, None

    def run_one(self, kill, size):
        path, inode = self.lowest() if kill and kill[0] == "aimed" else (None, None)
        p = subprocess.Popen([self.t.tool("logpack"), STORE], cwd=self.t.work,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        if kill and kill[0] == "aimed":
            out_box = {}
            reader = threading.Thread(target=lambda: out_box.update(zip(("out", "err"), p.communicate())))
            reader.start()
            deadline = time.monotonic() + PROCESS_TIMEOUT
            while p.poll() is None and time.monotonic() < deadline:
                try:
                    if os.stat(path).st_ino != inode:
                        break
                except OSError:
                    break
            until = time.monotonic() + kill[1]
            while time.monotonic() < until:
                pass
            if p.poll() is None:
                p.send_signal(signal.SIGKILL)
            reader.join()
            out, err = out_box.get("out", b""), out_box.get("err", b"")
            status = p.returncode
        else:
            try:
                out, err = p.communicate(timeout=kill[1] if kill else PROCESS_TIMEOUT)
                status = p.returncode
            except subprocess.TimeoutExpired:
                p.send_signal(signal.SIGKILL)
                out, err = p.communicate()
                status = -signal.SIGKILL if kill else "hung (killed after %d s)" % PROCESS_TIMEOUT
        self.results.append((status, out, err, time.monotonic(), kill[0] if kill else None))

    def run(self):
        for start, kill, size in self.plan:
            delay = self.t_start + start - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            self.run_one(kill, size)


class FollowerRun:
    """One `logscan --follow --cursor-file store.cursor store` process and its files."""

    def __init__(self, torture, r, n, kind, value):
        self.t = torture
        self.r, self.n, self.kind, self.value = r, n, kind, value
        self.out = os.path.join(torture.work, RUNS, "r%d-%d.jsonl" % (r, n))
        self.err = os.path.join(torture.work, RUNS, "r%d-%d.err" % (r, n))
        self.status = None
        self.cursor_before = None
        self.cursor_after = None
        self.caught_up = None

    def name(self):
        return "follower run %d (%s)" % (self.n, self.kind)

    def start(self):
        self.cursor_before = read_cursor(self.t.work)
        with open(self.out, "wb") as out, open(self.err, "wb") as err:
            self.proc = subprocess.Popen([self.t.tool("logscan"), "--follow", "--cursor-file", CURSOR, STORE],
                                         cwd=self.t.work, stdin=subprocess.DEVNULL, stdout=out, stderr=err)

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.status = self.proc.wait()
        self.cursor_after = read_cursor(self.t.work)

    def run(self, until=None):
        """Runs as planned, then kills it; `until` (an Event) for the run that lasts the writers' time."""
        self.start()
        if self.kind == "instant":
            pass
        elif self.kind in ("early", "busy"):
            time.sleep(self.value)
        elif self.kind == "idle":
            self.wait_quiet(self.value, 1.5)
        elif self.kind == "tail":
            until.wait()
            time.sleep(self.value)
        self.kill()

    def wait_quiet(self, quiet, cap):
        """Until the output did not grow for `quiet` seconds (at most `cap`)."""
        deadline = time.monotonic() + cap
        size, since = -1, time.monotonic()
        while time.monotonic() < deadline:
            now_size = size_of(self.out)
            if now_size != size:
                size, since = now_size, time.monotonic()
            elif time.monotonic() - since >= quiet:
                return
            if self.proc.poll() is not None:
                return
            time.sleep(0.003)

    def catch_up(self, needle):
        """The last run: until it printed `needle` (the sentinel), then a moment idle."""
        self.start()
        deadline = time.monotonic() + CATCH_UP_TIMEOUT
        seen, tail = 0, b""
        self.caught_up = False
        with open(self.out, "rb") as f:
            while time.monotonic() < deadline and self.proc.poll() is None:
                chunk = f.read()
                if chunk:
                    text = tail + chunk
                    if needle in text:
                        self.caught_up = True
                        break
                    tail = text[-len(needle):]
                    seen += len(chunk)
                else:
                    time.sleep(0.003)
        if self.caught_up:
            time.sleep(self.value)
        self.kill()


def size_of(path):
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


def read_cursor(work):
    try:
        with open(os.path.join(work, CURSOR), "rb") as f:
            return f.read()
    except FileNotFoundError:
        return None


def parse_cursor(text):
    """(segment, offset, length, checksum), or None if `text` is not one cursor line."""
    try:
        if not text.endswith(b"\n") or text.count(b"\n") != 1:
            return None
        c = json.loads(text)
        return (c["segment"], c["offset"], c["length"], c["checksum"])
    except (ValueError, KeyError, TypeError):
        return None


class Torture:
    def __init__(self, args):
        self.seed, self.rounds, self.quiet, self.stop_on_failure = args.seed, args.rounds, args.quiet, args.stop
        self.bin = os.path.abspath(args.bin) if args.bin else None
        self.work = args.dir
        self.versions = Versions()
        self.ops = {}             # (key, timestamp) -> Op
        self.last_op = {}         # key -> its newest Op
        self.pack_end = None      # when the latest logpack that may have changed the store ended
        self.chain = {}           # key -> highest version in the joined stream so far (c)
        self.pending = []         # ops sent before round 1 (the preload), checked in round 1
        self.touched = set()      # batches a run printed whole or ended inside, this round
        self.keep_failed = args.keep
        self.outcome = harness.Rounds(MAX_PROBLEMS)
        self.n = dict(writers=0, atomic=0, plain=0, kill_planned=0, close_planned=0, writer_kills=0, writer_closed=0,
                      packs_planned=0, pack_kills_planned=0, pack_aimed_planned=0, pack_aimed=0, pack_kills=0, merges=0, pack_skipped=0, final_packs=0,
                      runs=0, run_kills=0, sent=0, acked=0, acked_unique=0, printed=0, printed_runs=0, dropped_ok=0,
                      restart_merged=0, restart_cursor=0, cut_lines=0, cut_batches=0, batches=0,
                      batches_uncommitted=0, torn_notices=0, half_merged=0, back_across_restart=0, resumed=0, fresh=0, catch_up_s=0.0)

    def tool(self, name):
        path = shutil.which(name, path=self.bin) if self.bin else shutil.which(name)
        if not path:
            setup_error("%s not found in %s" % (name, self.bin or "PATH"))
        return path

    def run(self, args, data=None, timeout=PROCESS_TIMEOUT):
        try:
            return subprocess.run(args, input=data, capture_output=True, cwd=self.work, timeout=timeout)
        except subprocess.TimeoutExpired:
            return subprocess.CompletedProcess(args, 124, b"", b"%s: timed out after %d s" % (args[0].encode(), timeout))

    def register(self, ops):
        for op in ops:
            self.ops[(op.key, op.ts)] = op
            last = self.last_op.get(op.key)
            if last is not None:
                last.next = op
            self.last_op[op.key] = op

    def droppable(self, op):
        """May a merge have removed op before a follower run printed it? Tombstones are
        always dropped; a record only once a newer one of its key was there to merge."""
        if self.pack_end is None:
            return False
        if not op.put:
            return op.sent < self.pack_end
        later = op.next
        while later is not None:
            if later.sent is not None and (later.batch is None or later.batch.commit_sent):
                return later.sent < self.pack_end
            later = later.next
        return False

    # ---- one round -------------------------------------------------------------

    def schedule(self, r):
        rng = random.Random("%d/round/%d" % (self.seed, r))
        size = rng.choice((2048, 4096, 8192, 16384))
        writers = []
        for slot in range(rng.choice((1, 2, 2))):
            atomic = rng.random() < 0.5
            start = 0.0 if slot == 0 else rng.uniform(0, 0.15)
            life = rng.uniform(0.2, 0.8)
            end = "kill" if rng.random() < 0.8 else "close"
            writers.append(Writer(self, r, slot, atomic, size if rng.random() < 0.7 else rng.choice((2048, 16384)),
                                  start, life, end))
        packs = []
        for _ in range(rng.choice((0, 1, 2, 2, 3, 4))):
            x = rng.random()
            kill = ("random", rng.uniform(0, 0.03)) if x < 0.3 else (
                "aimed", 0 if rng.random() < 0.5 else rng.uniform(0, 0.003)) if x < 0.6 else None
            packs.append((rng.uniform(0, 0.8), kill, rng.choice((4096, 16384, 65536, 262144))))
        packs.sort()
        runs = []
        for _ in range(rng.randint(2, 5)):
            kind = rng.choices(("instant", "early", "busy", "idle"), (0.15, 0.15, 0.45, 0.25))[0]
            value = {"instant": 0, "early": rng.uniform(0, 0.005), "busy": rng.uniform(0.005, 0.3),
                     "idle": rng.uniform(0.02, 0.08)}[kind]
            gap = 0.0 if rng.random() < 0.3 else rng.uniform(0, 0.08) if rng.random() < 0.6 else rng.uniform(0.08, 0.3)
            runs.append((gap, kind, value))
        tail = (rng.uniform(0, 0.05), "tail", rng.uniform(0, 0.05))
        final_pack = rng.random() < 0.4
        final = rng.uniform(0, 0.03)
        return size, writers, packs, runs, tail, final_pack, final

    def round(self, r):
        size, writers, pack_plan, run_plan, tail_plan, final_pack, final_wait = self.schedule(r)
        n = self.n
        n["writers"] += len(writers)
        for wr in writers:
            n["atomic" if wr.atomic else "plain"] += 1
            n["kill_planned" if wr.end == "kill" else "close_planned"] += 1
        n["packs_planned"] += len(pack_plan) + final_pack
        n["pack_kills_planned"] += sum(1 for p in pack_plan if p[1] is not None)
        n["pack_aimed_planned"] += sum(1 for p in pack_plan if p[1] is not None and p[1][0] == "aimed")
        n["final_packs"] += final_pack
        problems = []

        t_start = time.monotonic()
        packer = Packer(self, pack_plan, t_start)
        done = threading.Event()
        runs = []

        def follow():
            for k, (gap, kind, value) in enumerate(run_plan + [tail_plan]):
                time.sleep(gap)
                fr = FollowerRun(self, r, k + 1, kind, value)
                runs.append(fr)
                fr.run(until=done)

        threads = [threading.Thread(target=wr.run) for wr in writers] + [threading.Thread(target=packer.run)]
        follower = threading.Thread(target=follow)
        for thread in threads + [follower]:
            thread.start()
        for thread in threads:
            thread.join()
        done.set()
        follower.join()

        # Every process dead: the sentinel (the next writer: it truncates what the kills
        # left), maybe a whole merge, then the last follower run catches up.
        sentinel = Op("s%d" % r, self.versions.next(), True, "sentinel")
        sentinel.round = r
        sentinel.sent = time.monotonic()
        p = self.run([self.tool("logenc"), "-a", STORE, "--sync", "batch", "--segment-size", str(size)],
                     sentinel.line().encode())
        n["torn_notices"] += p.stderr.count(b"torn tail")
        if p.returncode == 0 and p.stdout.endswith(b"\n") and p.stdout.count(b"\n") == 1:
            sentinel.ack = p.stdout
        else:
            problems.append("the sentinel writer (logenc -a store, after the kills): exit %d, stdout %r: %s" % (
                p.returncode, p.stdout[:200], p.stderr.decode(errors="replace").strip()[:300]))
        if final_pack:
            packer.run_one(None, size)
        last = FollowerRun(self, r, len(runs) + 1, "last", final_wait)
        runs.append(last)
        started = time.monotonic()
        last.catch_up(b'"key":"%s"' % sentinel.key.encode())
        n["catch_up_s"] += time.monotonic() - started
        if not last.caught_up:
            problems.append("%s: did not print the sentinel %s within %d s (exit %s; a hang?)" % (
                last.name(), sentinel.key, CATCH_UP_TIMEOUT, last.status))

        # What the writers and merges did.
        round_ops = list(self.pending)
        self.pending = []
        for wr in writers:
            n["torn_notices"] += wr.stderr.count(b"torn tail")
            if wr.end == "kill" and wr.status == -signal.SIGKILL:
                n["writer_kills"] += 1
            elif wr.end == "close" and wr.status == 0:
                n["writer_closed"] += 1
            else:
                problems.append("writer %d (%s, %s) exited %s: %s" % (
                    wr.slot, "--atomic" if wr.atomic else "plain", "to be killed" if wr.end == "kill"
                    else "its input closed", wr.status, wr.stderr.decode(errors="replace").strip()[:300]))
            if wr.extra_lines:
                problems.append("writer %d printed %d address lines more than the records it was sent: %r" % (
                    wr.slot, len(wr.extra_lines), wr.extra_lines[0][:200]))
            for op, raw in wr.bad_lines[:3]:
                problems.append("writer %d: the address line for %s is %r" % (wr.slot, op.describe(), raw[:200]))
            self.register(wr.ops)
            round_ops.extend(wr.ops)
            n["batches"] += len(wr.batches)
            n["batches_uncommitted"] += sum(1 for b in wr.batches if not b.commit_sent)
        self.register([sentinel])
        round_ops.append(sentinel)
        for status, out, err, ended, kind in packer.results:
            if status == -signal.SIGKILL:
                n["pack_kills"] += 1
                n["pack_aimed"] += kind == "aimed"
                self.pack_end = ended
            elif status == 0:
                try:
                    merged = json.loads(out).get("merged") is True
                except ValueError:
                    merged = False
                    problems.append("logpack store printed a report that is not JSON: %r" % out[:200])
                n["merges" if merged else "pack_skipped"] += 1
                if merged:
                    self.pack_end = ended
            else:
                problems.append("logpack store exited %s: %s" % (status, err.decode(errors="replace").strip()[:300]))
                self.pack_end = ended

        # A stat: is the store half merged (a logpack killed between its renames and removals)?
        # Then a record is in it twice, once in a merged segment and once in an old one.
        scan = self.run([self.tool("logscan"), "--no-values", STORE])
        seen = set()
        for raw in scan.stdout.splitlines():
            try:
                rec = json.loads(raw)
            except ValueError:
                continue
            seen_before = (rec.get("key"), rec.get("timestamp")) in seen
            seen.add((rec.get("key"), rec.get("timestamp")))
            if seen_before:
                n["half_merged"] += 1
                break
        if scan.returncode != 0:
            problems.append("logscan store (every process dead, after the sentinel) exited %d: %s" % (
                scan.returncode, scan.stderr.decode(errors="replace").strip()[:300]))

        # The follower runs, in order.
        for fr in runs:
            problems.extend(self.check_run(fr))
        n["runs"] += len(runs)

        # (a) nothing acknowledged missed.
        missed = []
        for op in round_ops:
            n["sent"] += 1
            if op.ack is None:
                continue
            n["acked"] += 1
            n["acked_unique"] += op.unique
            if not op.printed:
                if self.droppable(op):
                    n["dropped_ok"] += 1
                else:
                    missed.append(op)
        if missed:
            problems.append("%d acknowledged records were printed by no follower run of the round, and no merge can "
                            "have dropped them; the first: %s" % (len(missed), "; ".join(op.describe() for op in missed[:3])))
        # (d) a batch a run's output ended inside is printed whole by some run.
        for b in sorted(self.touched, key=lambda b: b.bid):
            if b.partial_end and not b.whole_seen:
                problems.append("atomic batch %s (%d records) ended a run's output in part and no run of the round "
                                "printed it whole" % (b.bid, len(b.ops)))
        for b in self.touched:
            b.partial_end = b.whole_seen = False
        self.touched = set()
        if not self.keep_runs(problems):
            for fr in runs:
                for path in (fr.out, fr.err):
                    try:
                        os.remove(path)
                    except OSError:
                        pass
        return problems

    def keep_runs(self, problems):
        return bool(problems) and self.keep_failed

    # ---- one follower run ------------------------------------------------------

    def check_run(self, fr):
        n = self.n
        problems = []
        name = "%s" % fr.name()
        n["run_kills"] += fr.status == -signal.SIGKILL
        with open(fr.err, "rb") as f:
            err = f.read().decode(errors="replace")
        notes = [line for line in err.splitlines() if line]
        restarted_at_start = False
        for k, line in enumerate(notes):
            if MERGE_NOTES[0] in line:
                n["restart_merged"] += 1
            elif MERGE_NOTES[1] in line:
                n["restart_cursor"] += 1
                if k == 0:
                    restarted_at_start = True
                else:
                    problems.append("%s: stderr note %d (the cursor's record is not there) is not its first: %s" % (
                        name, k + 1, line))
            else:
                problems.append("%s: unexpected stderr: %s" % (name, line[:300]))
        if fr.status != -signal.SIGKILL:
            problems.append("%s exited %s before it was killed: %s" % (name, fr.status, err.strip()[:300]))
        fresh = fr.cursor_before is None or restarted_at_start
        n["fresh" if fresh else "resumed"] += 1

        with open(fr.out, "rb") as f:
            data = f.read()
        raw_lines = data.split(b"\n")
        if raw_lines[-1]:
            n["cut_lines"] += 1  # the kill cut a write(2) of the output mid-line
        raw_lines = raw_lines[:-1]
        n["printed"] += len(raw_lines)
        n["printed_runs"] += bool(raw_lines)

        # Parse, identify, and check each record: (b).
        recs = []
        bad = []
        for i, raw in enumerate(raw_lines):
            try:
                rec = json.loads(raw)
                key, ts = rec["key"], rec["timestamp"]
            except (ValueError, KeyError, TypeError):
                bad.append("line %d is not a record line: %r" % (i + 1, raw[:200]))
                recs.append(None)
                continue
            op = self.ops.get((key, ts))
            if op is None:
                bad.append("line %d is a record never sent: %r" % (i + 1, raw[:200]))
            elif rec.get("type") != ("put" if op.put else "delete") or rec.get("value") != op.value:
                bad.append("line %d is not the record sent as %s: %r" % (i + 1, op.describe(), raw[:200]))
                op = None
            elif op.batch is not None and not op.batch.commit_sent:
                bad.append("line %d is a record of atomic batch %s, whose commit line was never sent: %r" % (
                    i + 1, op.batch.bid, raw[:200]))
            elif not str(rec.get("segment", "")).startswith(STORE + "/segment-"):
                bad.append("line %d names a segment outside the store: %r" % (i + 1, raw[:200]))
            recs.append((rec, op))
            if op is not None:
                op.printed = True
        if bad:
            problems.append("%s: %d bad lines; %s" % (name, len(bad), "; ".join(bad[:3])))

        # (c) versions never go backwards: within the run, and joined to the stream so far.
        mine = {}
        chain = self.chain  # compared with even after a restart: a figure then, not a failure
        back_run, back_chain = [], []
        for i, item in enumerate(recs):
            if item is None or item[1] is None:
                continue
            rec, op = item
            v = op.version
            prev = mine.get(op.key)
            if prev is not None and v < prev[0]:
                back_run.append("line %d: %s v%d (%s offset %d) after v%d (line %d)" % (
                    i + 1, op.key, v, rec["segment"], rec["offset"], prev[0], prev[1] + 1))
            if prev is None or v > prev[0]:
                mine[op.key] = (v, i)
            c = chain.get(op.key)
            if c is not None and v < c:
                back_chain.append("line %d: %s v%d (%s offset %d) after v%d" % (i + 1, op.key, v, rec["segment"], rec["offset"], c))
        if back_run:
            problems.append("%s: %d times a key's version went backwards within the run (%d lines), the first: %s" % (
                name, len(back_run), len(recs), "; ".join(back_run[:3])))
        elif back_chain and fresh:
            n["back_across_restart"] += 1
        elif back_chain:
            problems.append("%s resumed after its cursor but printed, %d times, a version older than the stream before "
                            "the cursor had reached, the first: %s" % (name, len(back_chain), "; ".join(back_chain[:3])))

        # (e) the cursor names a record this run printed (or is as it was), and cut the run there.
        cut = None
        after = parse_cursor(fr.cursor_after) if fr.cursor_after is not None else None
        if fr.cursor_after is not None and after is None:
            problems.append("%s: the cursor file is not one cursor line after the kill: %r" % (name, fr.cursor_after[:200]))
        elif fr.cursor_after != fr.cursor_before:
            for i in range(len(recs) - 1, -1, -1):
                item = recs[i]
                if item is not None and (item[0].get("segment"), item[0].get("offset"), item[0].get("length"),
                                         item[0].get("checksum")) == after:
                    cut = i
                    break
            if cut is None:
                problems.append("%s: the cursor file names a record the run did not print (ahead of stdout?): %r" % (
                    name, fr.cursor_after[:200]))
        if cut is not None:
            if fresh:
                self.chain = {}
            for item in recs[:cut + 1]:
                if item is not None and item[1] is not None:
                    op = item[1]
                    if self.chain.get(op.key, -1) < op.version:
                        self.chain[op.key] = op.version

        # (d) whole batches, in order, with their flags.
        partial = []
        i = 0
        while i < len(recs):
            item = recs[i]
            if item is None or item[1] is None or item[1].batch is None:
                if item is not None and item[0].get("continues") and (item[1] is None or item[1].batch is None):
                    partial.append("line %d has the continues flag but is no batch's record" % (i + 1))
                i += 1
                continue
            b = item[1].batch
            j = i
            while j < len(recs) and recs[j] is not None and recs[j][1] is not None and recs[j][1].batch is b:
                j += 1
            group = recs[i:j]
            indexes = [op.index for _, op in group]
            flags = [bool(rec.get("continues")) for rec, _ in group]
            at_end = j == len(recs)
            why = None
            if any(x >= y for x, y in zip(indexes, indexes[1:])):
                why = "out of order (records %s)" % ",".join(str(x + 1) for x in indexes)
            elif any(not f for f in flags[:-1]):
                why = "without the continues flag on a record before its last"
            elif flags[-1]:
                # The group says more records follow: only the kill may cut it, at the very end.
                if not at_end:
                    why = "stopping at record %d, with the continues flag, and another record follows" % (indexes[-1] + 1)
                else:
                    n["cut_batches"] += 1
                    b.partial_end = True
                    self.touched.add(b)
            else:
                present = set(indexes)
                lacking = [op for op in b.ops if op.index not in present and not self.droppable(op)]
                if lacking:
                    why = "without %d records no merge can have dropped (record %s of %d)" % (
                        len(lacking), ",".join(str(op.index + 1) for op in lacking[:5]), len(b.ops))
                else:
                    b.whole_seen = True
                    self.touched.add(b)
            if why:
                partial.append("lines %d-%d: atomic batch %s %s" % (i + 1, j, b.bid, why))
            i = j
        if partial:
            problems.append("%s: %d partial or broken batches, the first: %s" % (name, len(partial), "; ".join(partial[:3])))
        return problems

    # ---- the loop --------------------------------------------------------------

    def preload(self):
        """Round 0: a first version of every hot key and a few unique ones, by a writer that finishes."""
        ops = []
        for slot in range(SLOTS):
            for k in range(HOT_PER_SLOT):
                v = self.versions.next()
                ops.append(Op("h%d-%02d" % (slot, k), v, True, "p"))
        for _ in range(8):
            v = self.versions.next()
            ops.append(Op("u%d" % v, v, True, "p"))
        now = time.monotonic()
        for op in ops:
            op.sent, op.round = now, 0
        p = self.run([self.tool("logenc"), "-a", STORE + "/", "--sync", "batch", "--segment-size", "4096"],
                     "".join(op.line() for op in ops).encode())
        lines = p.stdout.splitlines(keepends=True)
        if p.returncode != 0 or len(lines) != len(ops):
            setup_error("the preload failed: exit %d: %s" % (p.returncode, p.stderr.decode(errors="replace").strip()))
        for op, line in zip(ops, lines):
            op.ack = line
        self.register(ops)
        self.pending = ops

    def main(self):
        started = time.monotonic()
        os.makedirs(os.path.join(self.work, RUNS), exist_ok=True)
        self.preload()
        for r in range(1, self.rounds + 1):
            before = dict(self.n)
            problems = self.round(r)
            if self.quiet:
                print("round %d: %s" % (r, "FAILED" if problems else "ok"), flush=True)
            else:
                d = {k: v - before[k] for k, v in self.n.items()}
                print("round %d: %s (%d writers, %d killed; %d records acknowledged; %d logpack runs, %d merges, %d "
                      "killed; %d follower runs printed %d records, %d restarts after merges)" % (
                          r, "FAILED" if problems else "ok", d["writers"], d["writer_kills"], d["acked"],
                          d["packs_planned"], d["merges"], d["pack_kills"], d["runs"], d["printed"],
                          d["restart_merged"] + d["restart_cursor"]), flush=True)
            if self.outcome.record(r, problems) and self.stop_on_failure:
                break
        rounds = r
        n = self.n
        print("schedule (seed %d): %d rounds, %d writers (%d plain, %d --atomic; %d to be killed, %d to see their input "
              "close), %d logpack runs (%d to be killed, %d of them aimed at the renames; %d whole after the sentinel), %d follower runs all killed" % (
                  self.seed, rounds, n["writers"], n["plain"], n["atomic"], n["kill_planned"], n["close_planned"],
                  n["packs_planned"], n["pack_kills_planned"], n["pack_aimed_planned"], n["final_packs"], n["runs"]))
        if not self.quiet:
            print("kills: %d follower runs, %d writers, %d logpack runs; %d writers exited 0 after their input closed" % (
                n["run_kills"], n["writer_kills"], n["pack_kills"], n["writer_closed"]))
            print("merges: %d completed, %d logpack runs found nothing to merge, %d killed (%d aimed kills landed after "
                  "the first rename); the store was left half merged (a record in it twice) at the end of %d rounds" % (
                      n["merges"], n["pack_skipped"], n["pack_kills"], n["pack_aimed"], n["half_merged"]))
            print("records: %d sent, %d acknowledged (%d of unique keys), %d never printed but droppable by a merge; "
                  "%d atomic batches (%d cut off before their commit line); %d writer notices of a torn tail" % (
                      n["sent"], n["acked"], n["acked_unique"], n["dropped_ok"], n["batches"], n["batches_uncommitted"],
                      n["torn_notices"]))
            print("follower: %d records printed (with repeats) by %d runs (%d printed something); %d resumed from the "
                  "cursor, %d started from the first segment; restarts after merges: %d \"merged while followed\", %d "
                  "\"cursor's record is not there\" (%d of those runs printed a version older than the stream before their "
                  "restart had reached: allowed); %d outputs cut mid-line, %d batches cut at a run's end; last runs "
                  "caught up in %.2f s on average" % (
                      n["printed"], n["runs"], n["printed_runs"], n["resumed"], n["fresh"], n["restart_merged"],
                      n["restart_cursor"], n["back_across_restart"], n["cut_lines"], n["cut_batches"],
                      n["catch_up_s"] / max(1, rounds)))
            segments = len(glob.glob(os.path.join(self.work, STORE, "segment-*.dat")))
            size = sum(size_of(p) for p in glob.glob(os.path.join(self.work, STORE, "segment-*.dat")))
            print("store now: %d segments, %d bytes; %.1f s" % (segments, size, time.monotonic() - started))
        return harness.report("follow_kill9.py", self.seed, rounds, self.outcome,
                              " --stop --keep" + (" --bin " + self.bin if self.bin else ""))


def setup_error(message):
    harness.setup_error("follow_kill9.py", message)


def main():
    harness.run(__doc__, Torture, 100, "logkit-follow-torture.", STORE, "store", keep_help="keep the work directory, and failed rounds' follower outputs")

if __name__ == "__main__":
    main()
