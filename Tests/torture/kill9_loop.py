#!/usr/bin/env python3
"""Crash torture: kill -9 of concurrent writers and compactions on ONE segment,
round after round, with no logfix in between; after every round, every record
whose address a writer printed must still be there and win for its key.

usage: python3 Tests/torture/kill9_loop.py [--rounds N] [--seed S] [--bin DIR]
                                           [--dir DIR] [--keep] [--quiet]

Each round (its schedule drawn from random.Random("SEED/round/N"), so it never
depends on timing) runs at once on the segment `seg`:

- one or two writers `logenc -a seg --sync batch|each`, each fed bursts of
  JSON lines by a thread: small bursts of puts and deletes over 300 keys,
  bulk bursts of thousands of lines (megabytes), and single puts of 1-4 MB
  values (one write(2) of megabytes); every value and timestamp is unique;
- sometimes a `logpack --in-place seg`, now and then started first, on
  whatever the last round's kills left, with the writers a moment later;

then kills each writer with SIGKILL: at a random moment, or (an "aimed"
kill, about a third of them) once the writer was sent one put of a 6-12 MB
value and the segment has since grown by 1 MB, which lands inside that
record's write(2) about half the time (the size grows in steps as the kernel
copies); and kills the compaction at a random moment or lets it finish. Every
whole address line a writer printed is recorded (an address line without its
newline was not printed). Some rounds, and always the last, end with a probe
writer (`logenc -a seg probe ...`): "the next writer". logfix never runs.

After every round, with every process dead:

(a) `logscan --no-values seg` reads and verifies the whole segment (every
    checksum; the values stay out of the pipe) and exits 0. Exit 1 is accepted
    only for a torn tail: damage after which there is no valid record
    (checked independently, by magic and CRC-32, in Python), left by a kill
    for the next writer to truncate; damage followed by a valid record is a
    failure (those records are unreadable), and so is any damage after a
    probe writer appended.
(b) the index is built from the segment (`logidx -o idx.json seg`; with a
    torn tail, which logidx refuses, from `logscan --no-values seg | logidx`)
    and `logidx get --json idx.json -` answers every key. The answer, and the
    newest record of the key in logscan's output, must be acceptable: the
    newest acknowledged op of the key, or an op that may have been appended
    after it. Op Y may be after acknowledged op X unless Y is provably
    earlier: Y was sent by the same writer before X, or Y's address line was
    read (for an unacknowledged Y: its writer was reaped) before X was sent.
    Values are compared, not offsets (a compaction moves records): logidx's
    value byte for byte, logscan's record by its CRC-32. A delete answers
    "deleted", or "missing" once a compaction dropped the tombstone.
(c) nothing acknowledged is missing: every acknowledged record whose offset
    no compaction can have changed since (acknowledged in a round without a
    compaction, or sent after the round's compaction ended) is at its printed
    offset in logscan's output with the printed length, type, key, timestamp
    and checksum; every address line matched its record (length and CRC-32
    recomputed here); and (b) holds for every key.

Prints "round N: ok" (or "round N: FAILED" and its first problems) per
round, then the totals (with --quiet only lines that the seed determines),
then "N passed, N failed" (rounds). Exit 0 if every round passed, 1 if one
failed (the first problems are listed with the seed and round), 2 on a usage
or setup error. Tools come from --bin DIR, else from PATH. The default 200
rounds take about two minutes on 2 CPUs; the golden case torture-kill9-short
runs 15 of them with --quiet.
"""
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the repository

import harness  # noqa: E402  (beside this script)

import json
import mmap
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

SEG = "seg"                      # relative to the work directory (every tool runs there)
KEYS = ["k%03d" % n for n in range(300)]
BIG_KEYS = KEYS[:4]              # the only keys given 1-4 MB values (bounds the compacted size)
PROBE_KEY = "probe"
ALL_KEYS = KEYS + [PROBE_KEY]
T0 = 1700000000000               # timestamp = T0 + round * 1e8 + writer * 1e7 + seq: unique per op
MAGIC = b"\x89LOG"
MAX_RECORD = 64 << 20
AIM_GROWTH = 1 << 20             # an aimed kill fires once the segment grew this much after the huge put was sent
MAX_PROBLEMS = 10
COMPACTION_TIMEOUT = 60


def ident_of(ts):
    """'rRwWiI' for the op with timestamp ts."""
    r, rest = divmod(ts - T0, 10 ** 8)
    w, i = divmod(rest, 10 ** 7)
    return "r%dw%di%d" % (r, w, i)


CLOCK = harness.Clock()


class Op:
    """One input line sent to a writer: a put or a delete of key, timestamp ts."""
    __slots__ = ("key", "put", "ts", "size", "writer", "seq", "sent", "done", "ack", "sync", "addr", "crcs")

    def __init__(self, key, put, ts, size, writer, seq, sync):
        self.key, self.put, self.ts, self.size = key, put, ts, size
        self.writer, self.seq, self.sync = writer, seq, sync
        self.sent = None     # tick before its line was written to the writer's stdin
        self.done = None     # tick after its address line was read, or after its writer was reaped
        self.ack = None      # the address line (bytes), if the writer printed it
        self.addr = None     # (offset, (key, type, timestamp, length, checksum)) parsed from it
        self.crcs = None

    def value(self):
        return "%s:%s" % (ident_of(self.ts), chr(97 + self.seq % 26) * self.size)

    def line(self):
        if self.put:
            return '{"key":"%s","value":"%s","timestamp":%d}\n' % (self.key, self.value(), self.ts)
        return '{"key":"%s","type":"delete","timestamp":%d}\n' % (self.key, self.ts)

    def describe(self):
        return "%s %s of %s (round %s writer %s, --sync %s, %s)" % (
            "put" if self.put else "delete", ident_of(self.ts), self.key, self.writer[0], self.writer[1],
            self.sync, "acknowledged at offset %d" % self.addr[0] if self.addr else "never acknowledged")

    def checksums(self):
        """The record's length and its CRC-32 with the flags byte 0 or 1 (continues)."""
        if self.crcs is None:
            self.crcs = self.compute_checksums()
        return self.crcs

    def compute_checksums(self):
        key = self.key.encode()
        value = self.value().encode() if self.put else b""
        out = []
        for flags in (0, 1):
            header = struct.pack(">4sBBBBIIQ", MAGIC, 1, 1 if self.put else 2, flags, 0, len(key), len(value), self.ts)
            out.append("0x%08x" % (zlib.crc32(value, zlib.crc32(key, zlib.crc32(header))) & 0xFFFFFFFF))
        return 28 + len(key) + len(value), out


class KeyState:
    """What the acknowledgements say about one key: the latest send tick of an
    acknowledged op, and per writer the highest acknowledged sequence number."""
    __slots__ = ("last_ack_sent", "last_ack", "ack_seq", "ops")

    def __init__(self):
        self.last_ack_sent = None
        self.last_ack = None
        self.ack_seq = {}
        self.ops = []        # ops that may still be the newest (pruned after every check)

    def note_ack(self, op):
        if self.last_ack_sent is None or op.sent > self.last_ack_sent:
            self.last_ack_sent, self.last_ack = op.sent, op
        if op.seq > self.ack_seq.get(op.writer, -1):
            self.ack_seq[op.writer] = op.seq

    def candidate(self, op):
        """Op may be the key's newest record: no acknowledged op is provably after it."""
        if self.last_ack_sent is not None and op.done < self.last_ack_sent:
            return False
        return op.seq >= self.ack_seq.get(op.writer, -1)

    def may_be_missing(self, candidates):
        return self.last_ack_sent is None or any(not op.put for op in candidates)


def size_of(path):
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


class Writer:
    """One `logenc -a seg --sync MODE` process with a feeder and a reader thread."""

    def __init__(self, torture, r, w, sync, kill_kind, start_delay, life):
        self.t = torture
        self.r, self.w, self.sync = r, w, sync
        self.kill_kind, self.start_delay, self.life = kill_kind, start_delay, life
        self.rng = random.Random("%d/writer/%d/%d" % (torture.seed, r, w))
        # An aimed writer gets one put of a 6-12 MB value as its burst number huge_at.
        self.huge_at = self.rng.randint(0, 3) if kill_kind == "aimed" else None
        self.huge_sent = threading.Event()
        self.bursts = 0
        self.ops = []
        self.acks = 0
        self.extra_lines = 0
        self.stop = threading.Event()
        self.status = None
        self.reaped = None
        self.stderr = b""
        self.fired = False       # an aimed kill that saw the segment grow after the huge put

    def burst(self):
        rng, ops = self.rng, []

        def op(key, put, size):
            seq = len(self.ops) + len(ops)
            ops.append(Op(key, put, T0 + self.r * 10 ** 8 + self.w * 10 ** 7 + seq, size, (self.r, self.w), seq, self.sync))

        x = rng.random()
        self.bursts += 1
        if self.bursts - 1 == self.huge_at:
            op(rng.choice(BIG_KEYS[:2]), True, rng.randint(6 << 20, 12 << 20))
        elif x < 0.07:                # one or two puts of 1-4 MB: a write(2) of megabytes
            for _ in range(rng.randint(1, 2)):
                op(rng.choice(BIG_KEYS), True, rng.randint(1 << 20, 4 << 20))
        elif x < 0.14:                # thousands of lines, megabytes in all
            for _ in range(rng.randint(2000, 6000)):
                put = rng.random() < 0.9
                op(rng.choice(KEYS), put, rng.randint(200, 1500) if put else 0)
        else:                         # a small burst
            for _ in range(rng.randint(1, 40)):
                put = rng.random() < 0.8
                op(rng.choice(KEYS), put, rng.randint(0, 200) if put else 0)
        return ops

    def feed(self):
        fd = self.proc.stdin.fileno()
        try:
            while not self.stop.is_set():
                ops = self.burst()
                data = "".join(op.line() for op in ops).encode()
                tick = CLOCK.tick()
                for op in ops:
                    op.sent = tick
                self.ops.extend(ops)
                if self.bursts - 1 == self.huge_at:
                    self.huge_sent.set()
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
                pause = self.rng.uniform(0, 0.012)
                if pause > 0.002:
                    time.sleep(pause)
        except OSError:  # EPIPE once the writer is dead
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
                self.extra_lines += 1
            self.acks += 1

    def read_stderr(self):
        self.stderr = self.proc.stderr.read()

    def run(self):
        """Started in a thread: start the writer, wait, kill it, reap it."""
        time.sleep(self.start_delay)
        self.proc = subprocess.Popen(
            [self.t.tool("logenc"), "-a", SEG, "--sync", self.sync], cwd=self.t.work,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.threads = [threading.Thread(target=f) for f in (self.feed, self.read, self.read_stderr)]
        for thread in self.threads:
            thread.start()
        deadline = time.monotonic() + self.life
        if self.kill_kind == "aimed":
            if self.huge_sent.wait(timeout=self.life):
                path = os.path.join(self.t.work, SEG)
                base = size_of(path)
                while time.monotonic() < deadline + 0.5:  # a tight loop: the write takes milliseconds
                    if size_of(path) - base >= AIM_GROWTH:
                        self.fired = True
                        break
        else:
            time.sleep(self.life)
        self.stop.set()
        self.proc.send_signal(signal.SIGKILL)
        self.status = self.proc.wait()
        self.reaped = CLOCK.tick()
        for thread in self.threads:
            thread.join()
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        for op in self.ops:
            if op.ack is None:
                op.done = self.reaped


class Compaction:
    def __init__(self, torture, start_delay, kill_after):
        self.t = torture
        self.start_delay, self.kill_after = start_delay, kill_after
        self.status = None
        self.killed = False
        self.out = self.err = b""
        self.ended = None

    def run(self):
        time.sleep(self.start_delay)
        p = subprocess.Popen([self.t.tool("logpack"), "--in-place", SEG], cwd=self.t.work,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            self.out, self.err = p.communicate(timeout=self.kill_after if self.kill_after is not None else COMPACTION_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.killed = True
            p.send_signal(signal.SIGKILL)
            self.out, self.err = p.communicate()
        self.status = p.returncode
        self.ended = CLOCK.tick()


def first_valid_record_after(path, start):
    """The offset of the first valid record (magic, header rules, CRC-32) that
    begins after `start`, or None: an independent resynchronising reader."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size <= start + 1:
            return None
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
            position = start + 1
            while True:
                position = m.find(MAGIC, position)
                if position < 0 or position + 28 > size:
                    return None
                version, rtype, flags, reserved, klen, vlen, _ = struct.unpack(">BBBBIIQ", m[position + 4:position + 24])
                length = 28 + klen + vlen
                if (version == 1 and rtype in (1, 2) and flags & ~1 == 0 and reserved == 0 and klen >= 1
                        and (rtype == 1 or vlen == 0) and length <= MAX_RECORD and position + length <= size):
                    stored = struct.unpack(">I", m[position + 24:position + 28])[0]
                    crc = zlib.crc32(m[position + 28:position + length], zlib.crc32(m[position:position + 24]))
                    if crc & 0xFFFFFFFF == stored:
                        return position
                position += 1


class Torture:
    def __init__(self, args):
        self.seed, self.rounds, self.quiet = args.seed, args.rounds, args.quiet
        self.bin = os.path.abspath(args.bin) if args.bin else None
        self.work = args.dir
        self.keys = {key: KeyState() for key in ALL_KEYS}
        self.stable = []          # acknowledged ops whose printed offsets no compaction can have moved
        self.outcome = harness.Rounds(MAX_PROBLEMS)
        self.n = dict(writers=0, batch=0, each=0, aimed=0, fired=0, compactions=0,
                      compaction_kills_planned=0, compactions_first=0, compaction_killed=0, compaction_ok=0, compaction_refused=0,
                      compaction_other=0, probes=0, acked=0, acked_bytes=0, sent=0, torn_seen=0,
                      truncation_notices=0, torn_before_probe=0, scans=0, index_builds=0, lookups=0, addresses=0, ack_lines=0)

    def tool(self, name):
        path = shutil.which(name, path=self.bin) if self.bin else shutil.which(name)
        if not path:
            setup_error("%s not found in %s" % (name, self.bin or "PATH"))
        return path

    def run(self, args, data=None, timeout=120):
        """Runs a tool to completion; a hang is exit 124 with a note on stderr."""
        try:
            return subprocess.run(args, input=data, capture_output=True, cwd=self.work, timeout=timeout)
        except subprocess.TimeoutExpired:
            return subprocess.CompletedProcess(args, 124, b"", b"%s: timed out after %d s" % (args[0].encode(), timeout))

    # ---- acknowledgements -------------------------------------------------

    def register(self, ops, problems):
        """Adds a round's ops to their keys, checking every address line."""
        for op in ops:
            self.n["sent"] += 1
            state = self.keys[op.key]
            state.ops.append(op)
            if op.ack is None:
                continue
            self.n["acked"] += 1
            self.n["ack_lines"] += 1
            length, crcs = op.checksums()
            self.n["acked_bytes"] += length
            try:
                a = json.loads(op.ack)
                want = {"segment": SEG, "length": length, "type": "put" if op.put else "delete",
                        "key": op.key, "timestamp": op.ts}
                bad = [k for k, v in want.items() if a.get(k) != v] + (
                    [] if a.get("checksum") in crcs else ["checksum"])
                if list(a) != ["segment", "offset", "length", "type", "key", "timestamp", "checksum"]:
                    bad.append("fields")
                op.addr = (a["offset"], (a["key"], a["type"], a["timestamp"], a["length"], a["checksum"]))
            except (ValueError, AttributeError, KeyError, TypeError):
                bad = ["not JSON"]
                op.addr = (-1, None)
            if bad:
                problems.append("the address line of %s is wrong (%s): %r" % (op.describe(), ", ".join(bad), op.ack))
            state.note_ack(op)

    # ---- one round -----------------------------------------------------------

    def round(self, r):
        rng = random.Random("%d/round/%d" % (self.seed, r))
        writers = []
        for w in range(1, rng.choice((1, 2)) + 1):
            sync = rng.choice(("batch", "each"))
            aimed = rng.random() < 0.35
            start = 0.0 if w == 1 else rng.uniform(0, 0.1)
            life = rng.uniform(0.1, 0.45) if aimed else rng.uniform(0.03, 0.35)
            writers.append(Writer(self, r, w, sync, "aimed" if aimed else "random", start, life))
        compaction = None
        if rng.random() < 0.5:
            kill_after = rng.uniform(0, 0.12) if rng.random() < 0.5 else None
            if rng.random() < 0.3:
                # The compaction first (a cron job right after the crash), on whatever the last
                # round's kills left, while the writers start a moment later.
                compaction = Compaction(self, 0.0, kill_after)
                for wr in writers:
                    wr.start_delay += rng.uniform(0.002, 0.03)
                self.n["compactions_first"] += 1
            else:
                compaction = Compaction(self, rng.uniform(0, 0.3), kill_after)
        probe = rng.random() < 0.3 or r == self.rounds

        self.n["writers"] += len(writers)
        for wr in writers:
            self.n[wr.sync] += 1
            self.n["aimed"] += wr.kill_kind == "aimed"
        threads = [threading.Thread(target=wr.run) for wr in writers]
        if compaction:
            self.n["compactions"] += 1
            self.n["compaction_kills_planned"] += compaction.kill_after is not None
            threads.append(threading.Thread(target=compaction.run))
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        problems = []
        for wr in writers:
            self.n["fired"] += wr.fired
            self.n["truncation_notices"] += wr.stderr.count(b"torn tail")
            if wr.status != -signal.SIGKILL:
                problems.append("writer %d (--sync %s) exited %s before it was killed: %s" % (
                    wr.w, wr.sync, wr.status, wr.stderr.decode(errors="replace").strip()))
            if wr.extra_lines:
                problems.append("writer %d printed %d address lines more than the records it was sent" % (wr.w, wr.extra_lines))
            self.register(wr.ops, problems)
        if compaction:
            if compaction.killed:
                self.n["compaction_killed"] += 1
                if compaction.kill_after is None:
                    problems.append("logpack --in-place did not finish within %d s" % COMPACTION_TIMEOUT)
            if compaction.status == 0:
                self.n["compaction_ok"] += 1
            elif compaction.status == 1:
                self.n["compaction_refused"] += 1  # a damaged segment (a torn tail): refused, nothing changed
            elif compaction.status != -signal.SIGKILL:
                self.n["compaction_other"] += 1
                if compaction.status is None or compaction.status < 0 or compaction.status > 2:
                    problems.append("logpack --in-place died of %s: %s" % (
                        "signal %d" % -compaction.status if compaction.status and compaction.status < 0 else "exit %s" % compaction.status,
                        compaction.err.decode(errors="replace").strip()))

        probe_op = None
        if probe:
            self.n["probes"] += 1
            if self.run([self.tool("logscan"), "--count", SEG]).returncode == 1:
                self.n["torn_before_probe"] += 1  # damage at the end, left by a kill, for the probe writer
            probe_op = Op(PROBE_KEY, True, T0 + r * 10 ** 8 + 9 * 10 ** 7, 0, (r, 9), 0, "batch")
            probe_op.sent = CLOCK.tick()
            p = self.run([self.tool("logenc"), "-a", SEG, "--sync", "batch", "--timestamp", str(probe_op.ts),
                          PROBE_KEY, probe_op.value()], timeout=60)
            probe_op.done = CLOCK.tick()
            self.n["truncation_notices"] += p.stderr.count(b"torn tail")
            if p.returncode == 0 and p.stdout.endswith(b"\n") and p.stdout.count(b"\n") == 1:
                probe_op.ack = p.stdout
            else:
                problems.append("the probe writer (logenc -a after the kills): exit %d, stdout %r: %s" % (
                    p.returncode, p.stdout, p.stderr.decode(errors="replace").strip()))
            self.register([probe_op], problems)

        # Offsets printed before a compaction may have moved; after it ended they stay.
        round_acked = [op for wr in writers for op in wr.ops if op.ack is not None]
        if compaction and compaction.status not in (1, 2):  # 1, 2: refused, nothing changed
            self.stable = [op for op in round_acked if op.sent > compaction.ended]
        else:
            self.stable.extend(round_acked)
        if probe_op is not None and probe_op.ack is not None:
            self.stable.append(probe_op)

        problems.extend(self.check(strict=probe))
        for state in self.keys.values():
            state.ops = [op for op in state.ops if state.candidate(op)]
        return problems

    # ---- the checks ------------------------------------------------------------

    def check(self, strict):
        problems = []
        path = os.path.join(self.work, SEG)
        size = os.path.getsize(path)

        # (a) logscan reads (and verifies) the whole segment. Values are left out (the pipe
        # would carry every megabyte of them); the checksums stand for them.
        self.n["scans"] += 1
        by_offset, newest, end, order_bad = {}, {}, 0, None
        scan = subprocess.Popen([self.tool("logscan"), "--no-values", SEG], cwd=self.work,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for raw in scan.stdout:
            rec = json.loads(raw)
            if rec["offset"] != end and order_bad is None:
                order_bad = "logscan printed offset %d after a record ending at %d" % (rec["offset"], end)
            end = rec["offset"] + rec["length"]
            by_offset[rec["offset"]] = (rec["key"], rec["type"], rec["timestamp"], rec["length"], rec["checksum"])
            newest[rec["key"]] = (rec["type"], rec["timestamp"], rec["checksum"], None)
        err = scan.stderr.read().decode(errors="replace")
        status = scan.wait()
        if order_bad:
            problems.append(order_bad)
        damage = None
        if status == 0:
            if end != size:
                problems.append("logscan exited 0, but its records end at %d of %d bytes" % (end, size))
        elif status == 1:
            m = re.search(r"offset (\d+): (.*)", err)
            damage = int(m.group(1)) if m else end
            reason = m.group(2) if m else err.strip()
            if damage != end:
                problems.append("logscan reported damage at %d, but its last record ended at %d" % (damage, end))
            after = first_valid_record_after(path, damage)
            if after is not None:
                problems.append("logscan: damage at offset %d (%s) is followed by a valid record at offset %d of %d bytes: "
                                "every record after the damage is unreadable (a writer appended after a torn record)"
                                % (damage, reason, after, size))
            elif strict:
                problems.append("a torn tail (%d bytes at offset %d: %s) is still there after a writer appended" % (
                    size - damage, damage, reason))
            else:
                self.n["torn_seen"] += 1  # left by a kill; the next writer must truncate it
        else:
            problems.append("logscan exited %d: %s" % (status, err.strip()))

        # (c) every acknowledged record whose offset cannot have moved is at its offset, whole.
        lost = []
        for op in self.stable:
            offset, want = op.addr
            if by_offset.get(offset) != want:
                lost.append(op)
        self.n["addresses"] += len(self.stable)
        if lost:
            problems.append("%d of %d acknowledged records that no compaction can have moved are not at their "
                            "printed offsets, the first:" % (len(lost), len(self.stable)))
            for op in lost[:3]:
                got = by_offset.get(op.addr[0])
                problems.append("  %s: offset %d is %s" % (
                    op.describe(), op.addr[0],
                    "beyond the damage at offset %d" % damage if damage is not None and op.addr[0] >= damage
                    else "not a record in logscan's output" if got is None else "another record %s" % (got,)))

        # (b) an index built from the segment answers every key acceptably.
        self.n["index_builds"] += 1
        if os.path.exists(os.path.join(self.work, "idx.json")):
            os.remove(os.path.join(self.work, "idx.json"))
        if status == 0:
            idx = self.run([self.tool("logidx"), "-o", "idx.json", SEG])
            if idx.returncode != 0:
                problems.append("logidx -o idx.json seg exited %d: %s" % (idx.returncode, idx.stderr.decode(errors="replace").strip()))
        else:
            # logidx refuses a damaged segment; the documented pipeline indexes its valid records.
            scan_nv = subprocess.Popen([self.tool("logscan"), "--no-values", SEG], cwd=self.work,
                                       stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            idx = subprocess.run([self.tool("logidx"), "-o", "idx.json"], stdin=scan_nv.stdout,
                                 capture_output=True, cwd=self.work)
            scan_nv.stdout.close()
            scan_nv.wait()
            if idx.returncode != 0:
                problems.append("logscan --no-values seg | logidx -o idx.json exited %d: %s" % (
                    idx.returncode, idx.stderr.decode(errors="replace").strip()))
        answers = {}
        if idx.returncode == 0:
            get = self.run([self.tool("logidx"), "get", "--json", "idx.json", "-"], "".join(k + "\n" for k in ALL_KEYS).encode())
            lines = get.stdout.decode(errors="replace").splitlines()
            if len(lines) != len(ALL_KEYS) or get.returncode not in (0, 1):
                problems.append("logidx get --json: exit %d, %d lines for %d keys: %s" % (
                    get.returncode, len(lines), len(ALL_KEYS), get.stderr.decode(errors="replace").strip()))
            for key, text in zip(ALL_KEYS, lines):
                a = json.loads(text)
                status_ = a.get("status")
                if a.get("key") != key or status_ not in ("found", "deleted", "missing"):
                    problems.append("logidx get %s: %s" % (key, text[:200]))
                answers[key] = (None if status_ == "missing" else
                                ("put" if status_ == "found" else "delete", a.get("timestamp"), a.get("checksum"), a.get("value")))

        for key in ALL_KEYS:
            state = self.keys[key]
            candidates = {op.ts: op for op in state.ops if state.candidate(op)}
            scanned = newest.get(key)
            readers = [("logscan's newest record", scanned)]
            if key in answers:
                self.n["lookups"] += 1
                answer = answers[key]
                if (answer and answer[:3]) != (scanned and scanned[:3]):
                    problems.append("key %s: logidx get answers %s, logscan's newest record is %s" % (
                        key, show(answer), show(scanned)))
                    readers.insert(0, ("logidx get", answer))
                else:
                    readers = [("logidx get and logscan's newest record", answer)]
            for reader, answer in readers:
                why = judge(state, candidates, answer)
                if why:
                    problems.append("key %s: %s: %s, %s; the newest acknowledged op is %s" % (
                        key, reader, show(answer), why, state.last_ack.describe() if state.last_ack else "none"))
        return problems

    # ---- the loop ----------------------------------------------------------------

    def preload(self):
        """Round 0: one put of every key, appended by a writer that finishes."""
        ops = [Op(key, True, T0 + 1 * 10 ** 7 + i, 16, (0, 1), i, "batch") for i, key in enumerate(KEYS)]
        tick = CLOCK.tick()
        for op in ops:
            op.sent = tick
        p = self.run([self.tool("logenc"), "-a", SEG, "--sync", "batch"], "".join(op.line() for op in ops).encode())
        tick = CLOCK.tick()
        lines = p.stdout.splitlines(keepends=True)
        if p.returncode != 0 or len(lines) != len(ops):
            setup_error("the preload failed: exit %d: %s" % (p.returncode, p.stderr.decode(errors="replace").strip()))
        for op, line in zip(ops, lines):
            op.ack, op.done = line, tick
        problems = []
        self.register(ops, problems)
        self.stable.extend(ops)
        if problems:
            setup_error("the preload: %s" % problems[0])

    def main(self):
        started = time.monotonic()
        self.preload()
        for r in range(1, self.rounds + 1):
            problems = self.round(r)
            print("round %d: %s" % (r, "FAILED" if problems else "ok"), flush=True)
            self.outcome.record(r, problems)
        n = self.n
        print("schedule (seed %d): %d rounds, %d writers (%d --sync batch, %d --sync each) all killed, %d of the kills "
              "aimed at the write(2) of a 6-12 MB record, %d compactions (%d started before the writers, %d to be killed), "
              "%d probe writers" % (
                  self.seed, self.rounds, n["writers"], n["batch"], n["each"], n["aimed"], n["compactions"],
                  n["compactions_first"], n["compaction_kills_planned"], n["probes"]))
        if not self.quiet:
            print("kills: %d writers (%d aimed kills fired as the segment grew by 1 MB after the huge put), %d compactions" % (
                n["writers"], n["fired"], n["compaction_killed"]))
            print("compactions: %d completed, %d killed, %d refused a damaged segment (exit 1), %d other exits" % (
                n["compaction_ok"], n["compaction_killed"], n["compaction_refused"], n["compaction_other"]))
            print("records: %d sent, %d acknowledged (%.1f MB)" % (n["sent"], n["acked"], n["acked_bytes"] / 1e6))
            print("torn tails: %d left for the next round at a check, %d found before a probe writer; %d writer notices "
                  "of a truncated torn tail" % (n["torn_seen"], n["torn_before_probe"], n["truncation_notices"]))
            print("checks: %d address lines, %d logscan reads of the segment, %d index builds, %d keys through logidx get "
                  "and logscan, %d acknowledged addresses re-read; segment now %d bytes; %.1f s" % (
                      n["ack_lines"], n["scans"], n["index_builds"], n["lookups"], n["addresses"],
                      os.path.getsize(os.path.join(self.work, SEG)), time.monotonic() - started))
        return harness.report("kill9_loop.py", self.seed, self.rounds, self.outcome,
                              " --bin " + self.bin if self.bin else "")


def setup_error(message):
    harness.setup_error("kill9_loop.py", message)


def show(answer):
    if answer is None:
        return "missing"
    kind, ts, checksum, value = answer
    return "%s %s" % (kind, ident_of(ts) if isinstance(ts, int) else ts)


def judge(state, candidates, answer):
    """None if `answer` may be the key's newest record, else why not."""
    if answer is None:
        if state.may_be_missing(candidates.values()):
            return None
        return "but a put was acknowledged and no delete may have followed it"
    kind, ts, checksum, value = answer
    op = candidates.get(ts)
    if op is None:
        return "older than the newest acknowledged op (or never written)"
    if op.put != (kind == "put"):
        return "but that op was a %s" % ("put" if op.put else "delete")
    if checksum not in op.checksums()[1]:
        return "with checksum %s, not the one of the record sent (%s)" % (checksum, op.checksums()[1][0])
    if op.put and value is not None and value != op.value():
        return "with a value that is not the one sent (%d bytes, %r...)" % (len(value), value[:40])
    return None


def main():
    harness.run(__doc__, Torture, 200, "logkit-torture.", SEG, "segment", stop=False)

if __name__ == "__main__":
    main()
