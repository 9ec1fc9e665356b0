#!/usr/bin/env python3
"""Batch torture: kill -9 of writers appending atomic batches (and of
compactions) on ONE segment, round after round; after every round no reader
may show part of a batch, and no acknowledged batch may be lost.

usage: python3 Tests/torture/batch_kill9.py [--rounds N] [--seed S] [--bin DIR]
                                            [--dir DIR] [--keep] [--quiet] [--stop]

Each round (its schedule drawn from random.Random("SEED/round/N"), so it never
depends on timing) runs at once on the segment `seg`:

- one or two writers `logenc -a seg --atomic --sync batch|each|none`, each fed
  by a thread a stream of batches: a batch of n records (1 to 1,000, mostly
  few) is n JSON lines followed by `{"type":"commit"}`, sent in one piece or
  split (some lines, a pause, the rest with the commit line, so kills land
  while logenc holds part of a batch). Every record has its own key
  "b<batch>-<i>", so nothing is ever overwritten and a compaction must keep
  every record; its value is "b<batch>/<i>/<n>:" and padding; all records of a
  batch share its timestamp; the batch id is ROUND.WRITER.SEQ. Now and then a
  batch is large (100-1,000 records, up to 1.4 MB);
- about one writer in ten is aimed: it is sent one batch of megabytes (or, one
  time in five, a smaller one) while this script holds the writers' lock
  (flock on seg.lock, as another writer would), until logenc waits for it;
  then, with logenc and the aiming thread on two different CPUs, the lock is
  released and logenc killed at the segment's first growth or once it grew by
  up to 30% of the batch (inside its write(2), when the kernel lets a watcher
  see the file grow and the kill lands before the copy ends: with another
  process busy on one of two CPUs, one aimed kill in four or five), or up to 6 ms
  after the whole batch is there (in its fsync or its address lines);
- sometimes a `logpack --in-place seg` (kill9_loop.Compaction), now and then
  started first, on whatever the last round left, the writers a moment later;
  killed at a random moment or let finish;
- in a quarter of the rounds, a torn write: what a writer killed inside its
  write(2) leaves, made without timing luck: under the writers' lock, a prefix
  of a batch encoded by `logenc --atomic` (k whole records, or a cut at any
  byte) is appended to the segment and never committed; while the writers run
  (the next of them must cut it) or after they are dead.

Every whole address line a writer printed is recorded; writers are killed at
random moments (seeded lifetimes) or as aimed. Then, in about half the rounds,
`logfix seg` runs; in about half (and always the last) a probe writer appends
one more atomic batch, `logenc -a seg --atomic --sync batch`; in the rounds
with neither, the next round's writers (or compaction) meet whatever the kills
left, and must truncate an uncommitted batch themselves.

Checks, with every process dead: after the kills, with the segment as it is;
after logfix ((a), (c), (d)); after the probe writer (all):

(a) `logscan --no-values seg` shows only whole batches: every record it prints
    belongs to a batch sent here, the records of a batch come together, in
    order (i = 0..n-1), each with its length and CRC-32 as computed here from
    the line sent (so value, timestamp and flags are checked too), all but the
    last with "continues":true, the last without; no batch appears twice; a
    batch whose commit line never reached logenc (cut off by the kill, or a
    torn write) is never visible. The committed records a clean check has seen
    must be there at the next check as they were (byte for byte the same
    lines, so nothing was dropped or moved, across compactions too, as nothing
    is overwritten); only what follows them is parsed again, and read once more
    with values (`logscan --from OFFSET seg`), every value compared.
(b) an index built from the segment (`logidx -o idx.json seg`; with a torn
    tail, which logidx refuses, `logscan --no-values seg | logidx -o idx.json`)
    answers `logidx get --json idx.json -` for every key of a sample of batches
    (this round's invisible and half-sent ones first, then visible ones, then
    older ones): "found", with the value, timestamp, checksum, length, flag
    and offset of the record, for every record of a visible batch, and
    "missing" for every record of an invisible one. The index of the previous
    check (stale: the segment grew, was truncated or compacted since) must
    answer the same, byte for byte (catching up on a tail, or replaying).
(c) every batch of which a writer printed an address line (all n of them:
    acknowledged; some of them: it was committed before any was printed) is
    whole and visible, at the offset printed, and every address line is the
    line logscan prints for that record (--sync none too: no OS crash here).
(d) logscan reports damage only as a torn tail at the very end: the damage is
    where its last record ends, and an independent walk here (magic, header
    rules, CRC-32) finds from there only whole records of one batch (from its
    first record on, all with the continues flag; then "uncommitted batch: N
    records" must be the reason), then at most a torn record, and no valid
    record after that; `logfix --check seg` agrees (exit 1, "checked", damage
    at that offset, a repair leaving that size, no valid record after it).
    After logfix (which must report "truncated" at the damage exactly when a
    torn tail was there, else "none") and after the probe writer (which must
    say it truncated a torn tail exactly when one was there), the segment is
    clean: logscan exits 0 and its records end at the segment's end.

Prints "round N: ok" (or "round N: FAILED" and its first problems) per round,
then the totals (with --quiet only the line the seed determines), then "N
passed, N failed" (rounds). Exit 0 if every round passed, 1 if one failed (the
first problems are listed with the seed and round), 2 on a usage or setup
error. Tools come from --bin DIR, else from PATH. The default 200 rounds take
about three minutes on 2 CPUs (one of them busy elsewhere); the golden case
torture-batch-kill9-short runs 12 of them with --quiet.
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
# Shared with the kill -9 loop: the in-place compaction run (killed or not), the
# independent resynchronising reader, the format's constants. Importing it has
# no side effects.
from kill9_loop import COMPACTION_TIMEOUT, MAGIC, MAX_RECORD, Compaction, first_valid_record_after  # noqa: E402

SEG = "seg"                      # relative to the work directory (every tool runs there); kill9_loop's too
IDX, IDX_PREV = "idx.json", "idx.prev.json"
T0 = 1700000000000               # a batch's timestamp: T0 + round * 1e6 + writer * 1e5 + seq
COMMIT = b'{"type":"commit"}\n'
PROBE_WRITER = 9
TEAR_WRITER = 8
MAX_PROBLEMS = 10
SAMPLE_KEYS = 6000               # keys looked up through the index per check, about
LINE = re.compile(rb'\{"segment":"seg","offset":(\d+),"length":(\d+),"type":"put","key":"b([0-9.]+)-(\d+)",'
                  rb'"timestamp":(\d+),"checksum":"(0x[0-9a-f]{8})"(,"continues":true)?\}')
DAMAGE = re.compile(r"^logscan: seg: offset (\d+): (.*)$")


class Batch:
    """n records, keys b<id>-<i>, values b<id>/<i>/<n>:padding, one timestamp."""
    __slots__ = ("bid", "r", "w", "s", "ts", "n", "lo", "span", "salt", "large", "sync",
                 "sent", "addrs", "addr_offset", "visible", "offset", "seen", "lengths")

    def __init__(self, r, w, s, n, lo, span, large, sync):
        self.bid = "%d.%d.%d" % (r, w, s)
        self.r, self.w, self.s = r, w, s
        self.ts = T0 + r * 10 ** 6 + w * 10 ** 5 + s
        self.n, self.lo, self.span, self.large, self.sync = n, lo, max(1, span), large, sync
        self.salt = (r * 131 + w * 17 + s * 7) % 997
        self.sent = False        # the commit line (and every line before it) reached logenc's stdin
        self.addrs = []          # the address lines the writer printed (without newlines)
        self.addr_offset = None  # the first one's offset
        self.visible = False     # whole in the segment at the last check
        self.offset = None       # where its first record is
        self.seen = False        # ever seen whole
        self.lengths = None

    def key(self, i):
        return "b%s-%d" % (self.bid, i)

    def value(self, i):
        return "b%s/%d/%d:%s" % (self.bid, i, self.n, chr(97 + i % 26) * (self.lo + (i * 7919 + self.salt) % self.span))

    def text(self, start, end):
        return "".join('{"key":"%s","value":"%s","timestamp":%d}\n' % (self.key(i), self.value(i), self.ts)
                       for i in range(start, end)).encode()

    def record(self, i):
        """The record's length and CRC-32 ("0x%08x"), its flag set on all but the last."""
        key, value = self.key(i).encode(), self.value(i).encode()
        header = struct.pack(">4sBBBBIIQ", MAGIC, 1, 1, 1 if i < self.n - 1 else 0, 0, len(key), len(value), self.ts)
        return 28 + len(key) + len(value), "0x%08x" % (zlib.crc32(value, zlib.crc32(key, zlib.crc32(header))) & 0xFFFFFFFF)

    def length(self, i):
        if self.lengths is None:
            self.lengths = [28 + len(self.key(j)) + len(self.value(j)) for j in range(self.n)]
        return self.lengths[i]

    def size(self):
        return sum(self.length(i) for i in range(self.n))

    def describe(self):
        if self.w == TEAR_WRITER:
            return "the torn write %s (a prefix of a batch of %d records, appended under the lock, never committed)" % (
                self.bid, self.n)
        what = "the probe batch" if self.w == PROBE_WRITER else "batch %s" % self.bid
        ack = ("acknowledged at offset %d" % self.addr_offset if len(self.addrs) == self.n else
               "%d of its %d address lines printed" % (len(self.addrs), self.n) if self.addrs else
               "never acknowledged" if self.sent else "its commit line never sent")
        return "%s (%d records%s, round %d writer %d, --sync %s, %s)" % (
            what, self.n, ", large" if self.large else "", self.r, self.w, self.sync, ack)


class Writer:
    """One `logenc -a seg --atomic --sync MODE` process with a feeder and a reader thread."""

    def __init__(self, torture, r, w, sync, aimed, start_delay, life):
        self.t = torture
        self.r, self.w, self.sync, self.aimed = r, w, sync, aimed
        self.start_delay, self.life = start_delay, life
        self.rng = random.Random("%d/writer/%d/%d" % (torture.seed, r, w))
        # An aimed writer's large batch is one of its first three, and the feeder
        # kills it at that batch's append (see aim()); others get one now and then.
        if aimed:
            self.large_at = self.rng.randint(0, 2)
        else:
            self.large_at = self.rng.randint(0, 3) if self.rng.random() < 0.15 else None
        self.aim_factor = self.rng.random()  # see aim()
        self.large_started = threading.Event()
        self.aim_done = threading.Event()
        self.large = None
        self.batches = []        # every batch whose first line was about to be sent, in order
        self.extra_lines = []
        self.stop = threading.Event()
        self.status = None
        self.stderr = b""
        self.fired = False
        self.aim_missed = None   # why an aimed kill could not be aimed

    def make_batch(self):
        rng, s = self.rng, len(self.batches)
        if s == self.large_at:
            if self.aimed and self.aim_factor < 0.8:    # to be killed inside its write(2): megabytes
                n, lo, span = rng.randint(500, 800), rng.randint(3000, 4000), 1000
            elif self.aimed:                              # to be killed after it: in its fsync or address lines
                n, lo, span = rng.randint(200, 600), rng.randint(300, 800), 500
            else:
                n, lo, span = rng.randint(100, 1000), rng.randint(200, 800), 600
            return Batch(self.r, self.w, s, n, lo, span, True, self.sync)
        n = max(1, min(1000, int(1000 ** (rng.random() ** 1.4) + 0.5)))  # 1 to 1,000, mostly few
        return Batch(self.r, self.w, s, n, rng.randint(0, 30), rng.randint(1, 40), False, self.sync)

    def feed(self):
        fd = self.proc.stdin.fileno()

        def write(data):
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]

        try:
            while not self.stop.is_set():
                b = self.make_batch()
                split = self.rng.random() < 0.3
                cut = self.rng.randint(1, b.n)        # with cut == n, the commit line comes late
                pause1 = self.rng.uniform(0.001, 0.02)
                pause = self.rng.uniform(0.015, 0.07)
                self.batches.append(b)
                if b.large:
                    self.large = b
                    if self.aimed:
                        self.large_started.set()
                        self.aim(b, write)
                        return
                if split:
                    write(b.text(0, cut))
                    time.sleep(pause1)
                    write(b.text(cut, b.n) + COMMIT)
                else:
                    write(b.text(0, b.n) + COMMIT)
                b.sent = True
                time.sleep(pause)
        except OSError:  # EPIPE once the writer is dead
            pass
        finally:
            self.aim_done.set()

    def aim(self, b, write):
        """Holds the writers' lock (as another writer would) while the large batch
        is sent and encoded, until logenc waits for the lock; then, with logenc
        and this thread on two different CPUs (when there are two), releases the
        lock and kills logenc as soon as the segment grows (the kernel extends
        the file folio by folio, in growing steps, while it copies; the copy of
        one folio is not interrupted), or once it grew by a part of the batch, or
        up to 6 ms after the whole batch is there: inside the batch's write(2)
        about half the time, else before it, or in its fsync or address lines."""
        path = os.path.join(self.t.work, SEG)
        # logenc must be done with the batches before (their address lines all
        # read): else it could want the lock while this thread, holding it, fills
        # its input pipe.
        deadline = time.monotonic() + 5
        while any(len(x.addrs) < x.n for x in self.batches[:-1]) and not self.stop.is_set():
            if time.monotonic() > deadline:
                self.aim_missed = "logenc did not finish its earlier batches within 5 s"
                return
            time.sleep(0.001)
        lock = os.open(path + ".lock", os.O_RDONLY | os.O_NOFOLLOW)
        pinned = None
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
            write(b.text(0, b.n) + COMMIT)
            b.sent = True
            waiting = " WRITE %d " % self.proc.pid
            deadline = time.monotonic() + 5
            while True:
                try:
                    with open("/proc/locks") as f:
                        if any("->" in line and waiting in line for line in f):
                            break
                except OSError:
                    self.aim_missed = "no /proc/locks"
                    time.sleep(0.05)
                    break
                if time.monotonic() > deadline or self.stop.is_set():
                    self.aim_missed = "logenc did not wait for the writers' lock within 5 s"
                    break
                time.sleep(0.0002)
            cpus = sorted(os.sched_getaffinity(0))
            if len(cpus) >= 2:
                try:
                    os.sched_setaffinity(self.proc.pid, {cpus[0]})
                    os.sched_setaffinity(0, {cpus[1]})  # this thread only
                    pinned = set(cpus)
                except OSError:
                    pass
            base = os.path.getsize(path)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
            os.close(lock)
        size = b.size()
        if self.aim_factor < 0.7:
            target = base + 1                                             # its first growth
        elif self.aim_factor < 0.8:
            target = base + 1 + int(size * (self.aim_factor - 0.7) * 3)  # up to 30% of the batch
        else:
            target = base + size                                          # all of it, then up to 6 ms
        deadline = time.monotonic() + 1
        while os.stat(path).st_size < target and time.monotonic() < deadline:
            pass
        if self.aim_factor >= 0.8:
            until = time.monotonic() + (self.aim_factor - 0.8) * 0.03
            while time.monotonic() < until:
                pass
        self.proc.send_signal(signal.SIGKILL)
        self.fired = True
        if pinned:
            os.sched_setaffinity(0, pinned)

    def read(self):
        k = 0
        for raw in iter(self.proc.stdout.readline, b""):
            if not raw.endswith(b"\n"):
                break  # cut by the kill: not a printed address
            while k < len(self.batches) and len(self.batches[k].addrs) >= self.batches[k].n:
                k += 1
            if k < len(self.batches):
                self.batches[k].addrs.append(raw[:-1])
            else:
                self.extra_lines.append(raw[:-1])

    def read_stderr(self):
        self.stderr = self.proc.stderr.read()

    def run(self):
        """Started in a thread: start the writer, wait, kill it, reap it."""
        time.sleep(self.start_delay)
        self.proc = subprocess.Popen(
            [self.t.tool("logenc"), "-a", SEG, "--atomic", "--sync", self.sync], cwd=self.t.work,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        threads = [threading.Thread(target=f) for f in (self.feed, self.read, self.read_stderr)]
        for thread in threads:
            thread.start()
        if not self.aimed:
            time.sleep(self.life)
        elif self.large_started.wait(timeout=self.life):
            self.aim_done.wait(timeout=30)
        self.stop.set()
        self.proc.send_signal(signal.SIGKILL)
        self.status = self.proc.wait()
        for thread in threads:
            thread.join()
        try:
            self.proc.stdin.close()
        except OSError:
            pass


class Tear:
    """What a writer killed inside the write(2) of a batch leaves, made without
    timing luck: under the writers' lock, like a writer, a prefix of an atomic
    batch encoded by `logenc --atomic` (k whole records, or a cut at any byte)
    is appended to the segment, and never committed."""

    def __init__(self, torture, r, rng):
        self.t = torture
        self.batch = Batch(r, TEAR_WRITER, 0, rng.randint(2, 300), rng.randint(0, 300), rng.randint(1, 200), False, "-")
        self.after = rng.random() < 0.6      # once every writer is dead, else while they run
        self.start_delay = 0 if self.after else rng.uniform(0, 0.3)
        self.whole = rng.random() < 0.35     # cut at a record boundary: only whole records, all with the flag
        self.records = rng.randint(1, self.batch.n - 1)
        self.fraction = rng.random()
        self.cut = None
        self.error = None

    def run(self):
        b = self.batch
        p = self.t.run([self.t.tool("logenc"), "--atomic"], b.text(0, b.n))
        if p.returncode != 0 or len(p.stdout) != b.size():
            self.error = "logenc --atomic (for a torn write): exit %d, %d bytes for %d: %s" % (
                p.returncode, len(p.stdout), b.size(), p.stderr.decode(errors="replace").strip()[:300])
            return
        if self.whole:
            self.cut = sum(b.length(i) for i in range(self.records))
        else:
            self.cut = 1 + int(self.fraction * (b.size() - 2))
        time.sleep(self.start_delay)
        path = os.path.join(self.t.work, SEG)
        lock = os.open(path + ".lock", os.O_RDONLY | os.O_NOFOLLOW)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
            fd = os.open(path, os.O_WRONLY | os.O_APPEND)
            try:
                view = memoryview(p.stdout)[:self.cut]
                while view:
                    view = view[os.write(fd, view):]
            finally:
                os.close(fd)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
            os.close(lock)


def walk_tail(path, start):
    """From `start`, where logscan reported damage: the whole valid records that
    follow one another there, as (offset, key, continues); where that chain
    stops; the segment's size; the first valid record after the stop; and the
    key of the torn record at the stop, if its header and key are there."""
    with open(path, "rb") as f:
        f.seek(start)
        tail = f.read()
    size, position, chain = start + len(tail), 0, []
    while position + 28 <= len(tail):
        magic, version, rtype, flags, reserved, klen, vlen, _ = struct.unpack(">4sBBBBIIQ", tail[position:position + 24])
        length = 28 + klen + vlen
        if not (magic == MAGIC and version == 1 and rtype in (1, 2) and flags & ~1 == 0 and reserved == 0 and klen >= 1
                and (rtype == 1 or vlen == 0) and length <= MAX_RECORD and position + length <= len(tail)):
            break
        stored = struct.unpack(">I", tail[position + 24:position + 28])[0]
        if zlib.crc32(tail[position + 28:position + length], zlib.crc32(tail[position:position + 24])) & 0xFFFFFFFF != stored:
            break
        chain.append((start + position, tail[position + 28:position + 28 + klen].decode(errors="replace"), flags & 1 == 1))
        position += length
    stop = start + position
    after = first_valid_record_after(path, stop) if stop < size else None
    torn_key = None
    if position + 24 <= len(tail) and tail[position:position + 4] == MAGIC:
        klen = struct.unpack(">I", tail[position + 12:position + 16])[0]
        if 1 <= klen <= 64 and position + 28 + klen <= len(tail):
            torn_key = tail[position + 28:position + 28 + klen].decode(errors="replace")
    return chain, stop, size, after, torn_key


class Torture:
    def __init__(self, args):
        self.seed, self.rounds, self.quiet, self.stop_on_failure = args.seed, args.rounds, args.quiet, args.stop
        self.bin = os.path.abspath(args.bin) if args.bin else None
        self.work = args.dir
        self.batches = {}         # bid -> Batch: every batch a writer began to send
        self.acked = []           # batches of which an address line was printed
        self.prefix = None        # logscan's output up to the committed end at the last clean check
        self.prefix_end = 0       # that end (an offset)
        self.last_round = []      # the batches of the current round
        self.aim_missed = {}      # why aimed kills could not be aimed: how often
        self.torn_batches = set() # the batches whose records are in the torn tail at the last check
        self.outcome = harness.Rounds(MAX_PROBLEMS)
        self.tools = {}
        self.timing = {}          # seconds spent in each tool (and mode), for the totals
        self.n = dict(writers=0, batch=0, each=0, none=0, aimed=0, fired=0, two_writers=0, compactions=0,
                      compactions_first=0, compaction_kills_planned=0, compaction_killed=0, compaction_ok=0,
                      compaction_refused=0, compaction_other=0, fixes=0, fix_truncated=0, probes=0, probe_truncated=0,
                      sent=0, half_sent=0, acked=0, partly_acked=0, acked_records=0, seen=0, large_sent=0,
                      large_torn=0, large_inside=0, torn_whole=0, torn_batch=0, torn_record=0, notices=0, checks=0,
                      lookups=0, stale_lookups=0, values=0, writer_kills=0, tears=0, tears_whole=0)

    def tool(self, name):
        if name not in self.tools:
            path = shutil.which(name, path=self.bin) if self.bin else shutil.which(name)
            if not path:
                setup_error("%s not found in %s" % (name, self.bin or "PATH"))
            self.tools[name] = path
        return self.tools[name]

    def run(self, args, data=None, timeout=120):
        """Runs a tool to completion; a hang is exit 124 with a note on stderr."""
        started = time.monotonic()
        try:
            return subprocess.run(args, input=data, capture_output=True, cwd=self.work, timeout=timeout)
        except subprocess.TimeoutExpired:
            return subprocess.CompletedProcess(args, 124, b"", b"%s: timed out after %d s" % (args[0].encode(), timeout))
        finally:
            what = " ".join([os.path.basename(args[0])] + [a for a in args[1:2] if a.startswith("-") or a == "get"])
            self.timing[what] = self.timing.get(what, 0) + time.monotonic() - started

    # ---- acknowledgements -------------------------------------------------

    def register(self, batches, problems):
        """Adds batches to the registry, checking every address line printed for them."""
        for b in batches:
            self.batches[b.bid] = b
            if b.w == TEAR_WRITER:
                continue
            if not b.sent:
                self.n["half_sent"] += 1
                if b.addrs:
                    problems.append("%s: address lines printed for a batch whose commit line was never sent" % b.describe())
                continue
            self.n["sent"] += 1
            if not b.addrs:
                continue
            self.acked.append(b)
            self.n["acked" if len(b.addrs) == b.n else "partly_acked"] += 1
            self.n["acked_records"] += len(b.addrs)
            position = None
            for i, raw in enumerate(b.addrs):
                m = LINE.fullmatch(raw)
                if not m:
                    problems.append("%s: address line %d is not as logscan --no-values prints it: %r" % (
                        b.describe(), i, raw[:300]))
                    break
                offset = int(m.group(1))
                if i == 0:
                    b.addr_offset = position = offset
                want = (position, b.record(i)[0], b.bid, i, b.ts, b.record(i)[1], i < b.n - 1)
                got = (offset, int(m.group(2)), m.group(3).decode(), int(m.group(4)), int(m.group(5)),
                       m.group(6).decode(), m.group(7) is not None)
                if got != want:
                    problems.append("%s: address line %d is %r, expected offset %d, length %d, key %s, timestamp %d, "
                                    "checksum %s, continues %s" % (b.describe(), i, raw[:300], want[0], want[1],
                                                                   b.key(i), want[4], want[5], want[6]))
                    break
                position += want[1]

    # ---- the checks ------------------------------------------------------------

    def check(self, r, label, strict, index=True):
        """Checks (a)-(d) of the segment as it is now; returns (problems, torn),
        torn being (offset, reason) of a torn tail or None."""
        self.n["checks"] += 1
        problems = []
        path = os.path.join(self.work, SEG)
        size = os.path.getsize(path)
        scan = self.run([self.tool("logscan"), "--no-values", SEG])
        out, err, status = scan.stdout, scan.stderr.decode(errors="replace"), scan.returncode

        # (a) whole batches only. The lines seen at the last clean check must be there unchanged.
        start, offset = 0, 0
        if self.prefix is not None:
            if out.startswith(self.prefix):
                start, offset = len(self.prefix), self.prefix_end
            else:
                common = os.path.commonprefix([out, self.prefix])
                line = common.count(b"\n")
                problems.append("the committed records changed since the last check: logscan's line %d is %r, was %r" % (
                    line + 1, out[len(common) - len(common.split(b"\n")[-1]):].split(b"\n")[0][:200],
                    self.prefix[len(common) - len(common.split(b"\n")[-1]):].split(b"\n")[0][:200]))
        if start == 0:
            was = [b for b in self.batches.values() if b.visible]
            for b in self.batches.values():
                b.visible = False
        new_batches = []
        current, first, expect = None, None, 0
        lines = out[start:].split(b"\n")
        if lines and lines[-1] == b"":
            lines.pop()
        else:
            problems.append("logscan's output does not end with a newline")
        for raw in lines:
            m = LINE.fullmatch(raw)
            if not m:
                problems.append("logscan printed a line this torture never wrote: %r" % raw[:300])
                break
            at, length, bid, i, ts, checksum, cont = (int(m.group(1)), int(m.group(2)), m.group(3).decode(),
                                                      int(m.group(4)), int(m.group(5)), m.group(6).decode(),
                                                      m.group(7) is not None)
            if at != offset:
                problems.append("logscan printed offset %d after a record ending at %d" % (at, offset))
            offset = at + length
            b = self.batches.get(bid)
            if b is None or i >= b.n:
                problems.append("logscan printed record %d of batch %s, which was never sent" % (i, bid))
                continue
            if current is not None and (b is not current or i != expect):
                problems.append("logscan shows part of a batch: %d of the %d records of %s, then record %d of %s" % (
                    expect, current.n, current.describe(), i, bid))
                current = None
            if current is None:
                if i != 0:
                    problems.append("logscan shows part of a batch: %s starts at its record %d (offset %d)" % (
                        b.describe(), i, at))
                    continue
                current, first, expect = b, at, 0
            if (length, checksum) != b.record(i) or ts != b.ts or cont != (i < b.n - 1):
                problems.append("record %d of %s at offset %d: length %d, checksum %s, timestamp %d, continues %s; "
                                "expected %d, %s, %d, %s" % (i, b.describe(), at, length, checksum, ts, cont,
                                                             b.record(i)[0], b.record(i)[1], b.ts, i < b.n - 1))
            if i < len(b.addrs) and b.addrs[i] != raw:
                problems.append("record %d of %s: the writer printed %r, logscan prints %r" % (
                    i, b.describe(), b.addrs[i][:300], raw[:300]))
            expect += 1
            if expect == b.n:
                current = None
                if b.visible:
                    problems.append("logscan shows %s twice, at offsets %d and %d" % (b.describe(), b.offset, first))
                    continue
                if not b.sent:
                    problems.append("logscan shows %s, whose commit line logenc never got" % b.describe())
                b.visible, b.offset = True, first
                new_batches.append(b)
                if not b.seen:
                    b.seen = True
                    self.n["seen"] += 1
        if current is not None:
            problems.append("logscan shows part of a batch: its records end with %d of the %d records of %s" % (
                expect, current.n, current.describe()))
        if start == 0:
            gone = [b for b in was if not b.visible]
            for b in gone[:3]:
                problems.append("%s was seen whole at offset %d at an earlier check and is not there now" % (
                    b.describe(), b.offset))
            if len(gone) > 3:
                problems.append("... and %d more batches seen earlier are gone" % (len(gone) - 3))
        end = offset

        # (d) damage only as a torn tail at the very end.
        torn = None
        self.torn_batches = set()
        if status == 0:
            if end != size:
                problems.append("logscan exited 0, but its records end at %d of %d bytes" % (end, size))
            if err:
                problems.append("logscan exited 0 and said: %s" % err.strip()[:300])
        elif status == 1:
            messages = err.strip().split("\n")
            m = DAMAGE.match(messages[0]) if len(messages) == 1 else None
            if not m:
                problems.append("logscan exited 1 with: %s" % err.strip()[:500])
            else:
                damage, reason = int(m.group(1)), m.group(2)
                torn = (damage, reason)
                if damage != end:
                    problems.append("logscan reported damage at %d (%s), but its last record ended at %d" % (damage, reason, end))
                chain, stop, size_, after, torn_key = walk_tail(path, damage)
                self.torn_batches = {k.rsplit("-", 1)[0][1:] for k in [k for _, k, _ in chain] + [torn_key] if k}
                if any(cont is False for _, _, cont in chain):
                    offset_ = next(o for o, _, cont in chain if not cont)
                    problems.append("logscan reported damage at %d (%s), but the whole records from there end a "
                                    "batch at offset %d: a committed batch is hidden" % (damage, reason, offset_))
                elif chain:
                    keys = [k for _, k, _ in chain]
                    bid = keys[0].rsplit("-", 1)[0][1:]
                    if keys != ["b%s-%d" % (bid, i) for i in range(len(keys))]:
                        problems.append("the uncommitted records at the end are not the start of one batch: %s" % (
                            ", ".join(keys[:6]) + (" ..." if len(keys) > 6 else "")))
                    if not reason.startswith("uncommitted batch: %d record" % len(chain)):
                        problems.append("logscan reported damage at %d as %r, but %d whole records with the continues "
                                        "flag start there" % (damage, reason, len(chain)))
                if after is not None:
                    problems.append("logscan: damage at offset %d (%s), where a torn record at %d is followed by a "
                                    "valid record at offset %d of %d bytes: the records after it are unreadable" % (
                                        damage, reason, stop, after, size_))
                if strict:
                    problems.append("a torn tail (%d bytes at offset %d: %s) is still there %s" % (
                        size - damage, damage, reason, label))
                else:
                    # logfix --check classifies it the same way: a torn tail to cut at the damage.
                    p = self.run([self.tool("logfix"), "--check", SEG])
                    try:
                        report = json.loads(p.stdout)
                    except ValueError:
                        report = {}
                    want = {"action": "checked", "failure_offset": damage, "recovered_size": damage, "records_after_damage": 0}
                    if p.returncode != 1 or any(report.get(k) != v for k, v in want.items()):
                        problems.append("logfix --check seg (a torn tail at %d: %s): exit %d, %s: %s" % (
                            damage, reason, p.returncode, p.stdout.decode(errors="replace").strip()[:400],
                            p.stderr.decode(errors="replace").strip()[:300]))
                    self.n["torn_whole" if chain and stop == size_ else "torn_batch" if chain else "torn_record"] += 1
        else:
            problems.append("logscan exited %d: %s" % (status, err.strip()[:500]))

        # The new records once more, with their values.
        if new_batches:
            self.n["values"] += sum(b.n for b in new_batches)
            scan = self.run([self.tool("logscan"), "--from", str(new_batches[0].offset), SEG])
            got = scan.stdout.split(b"\n")[:-1]
            want = [(b, i) for b in new_batches for i in range(b.n)]
            if len(got) < len(want):
                problems.append("logscan --from %d seg printed %d records, not the %d seen without values (exit %d: %s)" % (
                    new_batches[0].offset, len(got), len(want), scan.returncode,
                    scan.stderr.decode(errors="replace").strip()[:300]))
            for (b, i), raw in zip(want, got):
                rec = json.loads(raw)
                if rec.get("key") != b.key(i) or rec.get("value") != b.value(i):
                    problems.append("logscan --from: record %d of %s has key %r and value %r..., expected %r" % (
                        i, b.describe(), rec.get("key"), str(rec.get("value"))[:60], b.value(i)[:60]))
                    break

        # (c) every batch of which an address line was printed is whole, where it was printed.
        lost = [b for b in self.acked if not b.visible or b.offset != b.addr_offset]
        for b in lost[:4]:
            problems.append("%s is %s" % (b.describe(), "at offset %d" % b.offset if b.visible else "not in the segment" +
                                          (" (beyond the damage at %d)" % torn[0] if torn and b.addr_offset is not None
                                           and b.addr_offset >= torn[0] else "")))
        if len(lost) > 4:
            problems.append("... and %d more acknowledged batches lost" % (len(lost) - 4))

        # (b) the index: found for every record of a visible batch, missing for every one of an invisible one.
        if index:
            problems.extend(self.check_index(r, label, status))

        if problems:
            self.prefix = None
        else:
            self.prefix, self.prefix_end = out, end
        return problems, torn

    def sample(self, r, label):
        """Batches to look up through the index: this round's first."""
        rng = random.Random("%d/sample/%d/%s" % (self.seed, r, label))
        this = self.last_round
        older = [b for b in self.batches.values() if b.r < r]
        groups = [
            [b for b in this if b.sent and not b.visible],
            [b for b in this if not b.sent],
            [b for b in this if b.visible],
            [b for b in older if b.visible],
            [b for b in older if not b.visible],
        ]
        limits = [6, 2, 4, 2, 2]
        picked, keys = [], 0
        for group, limit in zip(groups, limits):
            group = sorted(group, key=lambda b: (b.w, b.s))
            rng.shuffle(group)
            for b in group[:limit]:
                if picked and keys + b.n > SAMPLE_KEYS:
                    continue
                picked.append(b)
                keys += b.n
        return picked

    def check_index(self, r, label, scan_status):
        problems = []
        for name in (IDX,):
            if os.path.exists(os.path.join(self.work, name)):
                os.remove(os.path.join(self.work, name))
        if scan_status == 0:
            idx = self.run([self.tool("logidx"), "-o", IDX, SEG])
            if idx.returncode != 0:
                return ["logidx -o %s seg exited %d: %s" % (IDX, idx.returncode, idx.stderr.decode(errors="replace").strip())]
        else:
            # logidx refuses a damaged segment; the documented pipeline indexes its committed records.
            scan_nv = subprocess.Popen([self.tool("logscan"), "--no-values", SEG], cwd=self.work,
                                       stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            idx = subprocess.run([self.tool("logidx"), "-o", IDX], stdin=scan_nv.stdout, capture_output=True, cwd=self.work)
            scan_nv.stdout.close()
            scan_nv.wait()
            if idx.returncode != 0:
                return ["logscan --no-values seg | logidx -o %s exited %d: %s" % (
                    IDX, idx.returncode, idx.stderr.decode(errors="replace").strip())]
        batches = self.sample(r, label)
        want = [(b, i) for b in batches for i in range(b.n)]
        data = "".join(b.key(i) + "\n" for b, i in want).encode()
        get = self.run([self.tool("logidx"), "get", "--json", IDX, "-"], data)
        self.n["lookups"] += len(want)
        lines = get.stdout.split(b"\n")[:-1]
        missing = any(not b.visible for b in batches)
        if len(lines) != len(want) or get.returncode != (1 if missing else 0):
            problems.append("logidx get --json %s -: exit %d, %d lines for %d keys: %s" % (
                IDX, get.returncode, len(lines), len(want), get.stderr.decode(errors="replace").strip()[:300]))
        bad = 0
        for (b, i), raw in zip(want, lines):
            a = json.loads(raw)
            if b.visible:
                position = b.offset + sum(b.length(j) for j in range(i)) if i < 50 or i == b.n - 1 else None
                length, checksum = b.record(i)
                ok = (a.get("status") == "found" and a.get("key") == b.key(i) and a.get("value") == b.value(i)
                      and a.get("timestamp") == b.ts and a.get("checksum") == checksum and a.get("length") == length
                      and a.get("continues", False) == (i < b.n - 1) and (position is None or a.get("offset") == position))
            else:
                ok = a == {"status": "missing", "key": b.key(i)}
            if not ok:
                bad += 1
                if bad <= 3:
                    problems.append("logidx get %s: %s; %s is %s" % (
                        b.key(i), raw[:200].decode(errors="replace"), b.describe(),
                        "whole in the segment at offset %d" % b.offset if b.visible else "not in the segment"))
        if bad > 3:
            problems.append("... and %d more wrong answers from logidx get" % (bad - 3))

        # The index of the previous check, stale now, answers the same (catching up, or replaying).
        prev = os.path.join(self.work, IDX_PREV)
        if os.path.exists(prev):
            stale = self.run([self.tool("logidx"), "get", "--json", IDX_PREV, "-"], data)
            self.n["stale_lookups"] += len(want)
            if stale.returncode != get.returncode or stale.stdout != get.stdout:
                got = stale.stdout.split(b"\n")
                diff = next((k for k, (x, y) in enumerate(zip(got, lines)) if x != y), min(len(got), len(lines)))
                problems.append("logidx get --json with the previous check's index: exit %d (fresh index: %d), answer %d: "
                                "%r, fresh index: %r; %s" % (
                                    stale.returncode, get.returncode, diff + 1, got[diff][:200] if diff < len(got) else None,
                                    lines[diff][:200] if diff < len(lines) else None,
                                    stale.stderr.decode(errors="replace").strip()[:200]))
        os.replace(os.path.join(self.work, IDX), prev)
        return problems

    # ---- one round -----------------------------------------------------------

    def round(self, r):
        rng = random.Random("%d/round/%d" % (self.seed, r))
        writers = []
        count = 2 if rng.random() < 0.4 else 1
        for w in range(1, count + 1):
            sync = rng.choice(("batch", "each", "none"))
            aimed = rng.random() < 0.1
            start = 0.0 if w == 1 else rng.uniform(0, 0.1)
            life = rng.uniform(0.15, 0.45) if aimed else rng.uniform(0.03, 0.4)
            writers.append(Writer(self, r, w, sync, aimed, start, life))
        compaction = None
        if rng.random() < 0.4:
            kill_after = rng.uniform(0, 0.25) if rng.random() < 0.5 else None
            if rng.random() < 0.3:
                # The compaction first, on whatever the last round left; the writers a moment later.
                compaction = Compaction(self, 0.0, kill_after)
                for wr in writers:
                    wr.start_delay += rng.uniform(0.002, 0.03)
                self.n["compactions_first"] += 1
            else:
                compaction = Compaction(self, rng.uniform(0, 0.3), kill_after)
        fix = rng.random() < 0.5
        probe = rng.random() < 0.5 or r == self.rounds
        probe_rng = random.Random("%d/probe/%d" % (self.seed, r))
        tear = Tear(self, r, random.Random("%d/tear/%d" % (self.seed, r))) if rng.random() < 0.25 else None

        self.n["writers"] += len(writers)
        self.n["two_writers"] += len(writers) == 2
        for wr in writers:
            self.n[wr.sync] += 1
            self.n["aimed"] += wr.aimed
        threads = [threading.Thread(target=wr.run) for wr in writers]
        if compaction:
            self.n["compactions"] += 1
            self.n["compaction_kills_planned"] += compaction.kill_after is not None
            threads.append(threading.Thread(target=compaction.run))
        if tear:
            self.n["tears"] += 1
            self.n["tears_whole"] += tear.whole
            if not tear.after:
                threads.append(threading.Thread(target=tear.run))
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if tear and tear.after:
            tear.run()

        problems = []
        self.last_round = [b for wr in writers for b in wr.batches]
        if tear:
            self.last_round.append(tear.batch)
            self.register([tear.batch], problems)
            if tear.error:
                problems.append(tear.error)
        for wr in writers:
            self.n["fired"] += wr.fired
            if wr.aim_missed:
                self.aim_missed[wr.aim_missed] = self.aim_missed.get(wr.aim_missed, 0) + 1
            self.n["notices"] += wr.stderr.count(b"torn tail")
            if wr.status == -signal.SIGKILL:
                self.n["writer_kills"] += 1
            else:
                problems.append("writer %d (--sync %s) exited %s before it was killed: %s" % (
                    wr.w, wr.sync, wr.status, wr.stderr.decode(errors="replace").strip()[:500]))
            if wr.extra_lines:
                problems.append("writer %d printed %d address lines more than the records of the batches it was sent: %r" % (
                    wr.w, len(wr.extra_lines), wr.extra_lines[0][:200]))
            self.register(wr.batches, problems)
        if compaction:
            if compaction.killed:
                self.n["compaction_killed"] += 1
                if compaction.kill_after is None:
                    problems.append("logpack --in-place did not finish within %d s" % COMPACTION_TIMEOUT)
            if compaction.status == 0:
                self.n["compaction_ok"] += 1
            elif compaction.status == 1:
                self.n["compaction_refused"] += 1  # a torn tail, or damage appended meanwhile: nothing changed
            elif compaction.status != -signal.SIGKILL:
                self.n["compaction_other"] += 1
                if compaction.status is None or compaction.status < 0 or compaction.status > 2:
                    problems.append("logpack --in-place died of %s: %s" % (
                        "signal %d" % -compaction.status if compaction.status and compaction.status < 0 else "exit %s" % compaction.status,
                        compaction.err.decode(errors="replace").strip()))

        found, torn = self.check(r, "after the kills", strict=False)
        problems.extend(found)
        for wr in writers:
            if wr.aimed and wr.large is not None and wr.large.sent:
                self.n["large_sent"] += 1
                self.n["large_torn"] += not wr.large.visible
                self.n["large_inside"] += wr.large.bid in self.torn_batches
        if fix:
            self.n["fixes"] += 1
            p = self.run([self.tool("logfix"), SEG])
            try:
                report = json.loads(p.stdout)
            except ValueError:
                report = {}
            if torn:
                want = {"action": "truncated", "recovered_size": torn[0]}
                self.n["fix_truncated"] += 1
            else:
                want = {"action": "none"}
            if p.returncode != 0 or any(report.get(k) != v for k, v in want.items()):
                problems.append("logfix seg (%s): exit %d, %s: %s" % (
                    "after a torn tail at %d" % torn[0] if torn else "on a clean segment", p.returncode,
                    p.stdout.decode(errors="replace").strip()[:400], p.stderr.decode(errors="replace").strip()[:300]))
            found, after_fix = self.check(r, "after logfix", strict=True, index=False)
            problems.extend(found)
            torn = after_fix
        if probe:
            self.n["probes"] += 1
            b = Batch(r, PROBE_WRITER, 0, probe_rng.randint(1, 5), probe_rng.randint(0, 30), probe_rng.randint(1, 40),
                      False, "batch")
            self.last_round.append(b)
            p = self.run([self.tool("logenc"), "-a", SEG, "--atomic", "--sync", "batch"], b.text(0, b.n) + COMMIT, timeout=60)
            b.sent = True
            b.addrs = p.stdout.split(b"\n")[:-1] if p.stdout.endswith(b"\n") else []
            notice = p.stderr.count(b"torn tail")
            self.n["notices"] += notice
            self.n["probe_truncated"] += notice > 0
            if p.returncode != 0 or len(b.addrs) != b.n:
                problems.append("the probe writer (logenc -a seg --atomic, %d records): exit %d, stdout %r: %s" % (
                    b.n, p.returncode, p.stdout[:300], p.stderr.decode(errors="replace").strip()[:300]))
            elif bool(notice) != bool(torn):
                problems.append("the probe writer %s: %s" % (
                    "found a torn tail at %d and said nothing" % torn[0] if torn else "truncated a torn tail that no check saw",
                    p.stderr.decode(errors="replace").strip()[:300]))
            self.register([b], problems)
            found, _ = self.check(r, "after the probe writer", strict=True)
            problems.extend(found)
        return problems

    # ---- the loop ----------------------------------------------------------------

    def preload(self):
        """Round 0: one batch of three records, appended by a writer that finishes."""
        b = Batch(0, 1, 0, 3, 4, 8, False, "batch")
        p = self.run([self.tool("logenc"), "-a", SEG, "--atomic"], b.text(0, b.n) + COMMIT)
        b.sent = True
        b.addrs = p.stdout.split(b"\n")[:-1]
        problems = []
        if p.returncode != 0 or len(b.addrs) != b.n:
            setup_error("the preload failed: exit %d: %s" % (p.returncode, p.stderr.decode(errors="replace").strip()))
        self.register([b], problems)
        self.last_round = [b]
        found, _ = self.check(0, "after the preload", strict=True)
        problems.extend(found)
        if problems:
            setup_error("the preload: %s" % problems[0])

    def main(self):
        started = time.monotonic()
        self.preload()
        for r in range(1, self.rounds + 1):
            problems = self.round(r)
            print("round %d: %s" % (r, "FAILED" if problems else "ok"), flush=True)
            if self.outcome.record(r, problems) and self.stop_on_failure:
                break
        rounds = r
        n = self.n
        print("schedule (seed %d): %d rounds, %d writers (%d --sync batch, %d --sync each, %d --sync none; two at once "
              "in %d rounds) all killed, %d of the kills aimed at the append of a large batch, %d compactions "
              "(%d started before the writers, %d to be killed), %d torn writes (%d of whole records), logfix in %d rounds, "
              "%d probe writers" % (
                  self.seed, rounds, n["writers"], n["batch"], n["each"], n["none"], n["two_writers"], n["aimed"],
                  n["compactions"], n["compactions_first"], n["compaction_kills_planned"], n["tears"], n["tears_whole"],
                  n["fixes"], n["probes"]))
        if not self.quiet:
            print("kills: %d writers, %d compactions; %d aimed kills fired at the append of a large batch: %d of "
                  "the %d sent never became visible, %d of them cut inside the write(2) (their records at the torn "
                  "end)" % (n["writer_kills"], n["compaction_killed"], n["fired"], n["large_torn"], n["large_sent"],
                            n["large_inside"]) + "".join("; %d times %s" % (v, k) for k, v in sorted(self.aim_missed.items())))
            print("compactions: %d started, %d completed, %d killed, %d refused a damaged segment (exit 1), %d other exits" % (
                n["compactions"], n["compaction_ok"], n["compaction_killed"], n["compaction_refused"], n["compaction_other"]))
            print("batches: %d sent with their commit line, %d cut off before it; %d acknowledged (%d records), %d with "
                  "part of their address lines printed; %d seen whole; %d sent and never acknowledged, never visible" % (
                      n["sent"], n["half_sent"], n["acked"], n["acked_records"], n["partly_acked"], n["seen"],
                      sum(1 for b in self.batches.values() if b.sent and not b.seen)))
            print("torn tails after the kills: %d uncommitted batches of whole records, %d of whole records and a torn "
                  "one, %d torn records alone; logfix ran %d times (%d truncations), the probe writer %d times (%d "
                  "truncations); %d writer notices of a truncated torn tail" % (
                      n["torn_whole"], n["torn_batch"], n["torn_record"], n["fixes"], n["fix_truncated"], n["probes"],
                                 n["probe_truncated"], n["notices"]))
            print("checks: %d (logscan, values of %d new records, an index build), %d keys through logidx get, %d "
                  "through the previous index; segment now %d bytes; %.1f s" % (
                      n["checks"], n["values"], n["lookups"], n["stale_lookups"],
                      os.path.getsize(os.path.join(self.work, SEG)), time.monotonic() - started))
            print("time in the tools run after the rounds: %s" % ", ".join(
                "%s %.1f s" % (k, v) for k, v in sorted(self.timing.items(), key=lambda kv: -kv[1])))
        return harness.report("batch_kill9.py", self.seed, rounds, self.outcome,
                              " --stop --keep" + (" --bin " + self.bin if self.bin else ""))


def setup_error(message):
    harness.setup_error("batch_kill9.py", message)


def main():
    harness.run(__doc__, Torture, 200, "logkit-batch-torture.", SEG, "segment")

if __name__ == "__main__":
    main()
