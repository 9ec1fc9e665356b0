#!/usr/bin/env python3
"""Replication torture: the pipeline
`logscan --follow --after "$(logsync position URL)" store | logsync push URL`
killed with kill -9 at random moments (push, the follower, or nats-server
itself, restarted on the same port and store directory), round after round,
while writers append to the store; every kill is followed by the resume
pipeline. The bucket must end up holding exactly the store: every record, in
store order, none twice except a re-sent suffix, and push never reports a
record the server does not hold.

usage: python3 Tests/torture/logsync_kill9.py [--rounds N] [--seed S] [--bin DIR]
                                              [--dir DIR] [--keep] [--quiet] [--stop]

Needs nats-server (PATH, or $NATS_SERVER); nats-py (`import nats`) for the
checks of the stream itself (without it they are skipped and said so). One
store (`store`, in the work directory), one server (its store directory
`nats`, its log `nats.log`) and one bucket (`tort`, created by the first push
with --history 64) live through every round. Each round (its schedule drawn
from random.Random("SEED/round/N"), so it never depends on timing) runs at once:

- one or two writers, `logenc -a store --sync batch --segment-size S` (S of
  2, 4, 8 or 16 KiB, so segments roll over every few dozen records), half of
  them `--atomic` (batches of 1-30 records, each ended by {"type":"commit"}),
  the others fed bursts of 1-15 records, for 0.2-0.8 s; then their input is
  closed and they must exit 0. Keys: the round's hot keys (puts, deletes, some
  values not UTF-8, so sent as value_b64; keys with dots, spaces, slashes,
  `$`, `=`, a newline, non-ASCII), and unique keys. A key is written in one
  round only, so no key has more than 64 values in the bucket's history and
  the stream keeps every message the loop checks.
- 2 to 4 pipeline runs, one after another: `logsync position URL` (must exit
  0), then `logscan --follow --after POSITION store | logsync push --history 64
  --reconnect 1 [--window W] URL` (W 4096, 64 or 1). Each run is cut, at once,
  after 5-100 ms, after 100-400 ms, or just after push's first acknowledgement
  line, by one of: kill -9 of push (then of the follower, which may sleep on
  an idle store), kill -9 of the follower (push must then finish and exit 0,
  or exit 1 naming the line the kill cut, every line before it acknowledged),
  or kill -9 of nats-server, then either restarted within 0-0.5 s (push must
  reconnect, go on, and exit 0 when the follower is then killed; unless it
  had printed nothing yet: a kill during its connection setup may end it
  with exit 2, counted in the figures) or left down until push gives up
  (exit 2, one line naming the URL) and restarted.
- then, the writers done, a last run that must send everything: it is ended
  (the follower killed) once push acknowledged the store's last record, and
  push must exit 0.

Checks after every round (the last one covers the whole run):

(a) the bucket as `logsync pull URL` prints it equals the store's live set as
    `logscan store` says (last record per key, deletes removing): the same
    keys, values byte for byte, timestamps.
(b) the stream, read with nats-py in order: every message is a record of the
    store (its Logkit-Cursor names it; key, operation, value and
    Logkit-Timestamp are that record's); in stream order the records are the
    store's, in store order, with no record missing (so no key's value ever
    goes backwards); a record sent again is allowed only as a re-sent suffix
    (a run of consecutive records starting at or before the last one sent,
    counted in the figures).
(c) every line push printed (acknowledged count, sequence, cursor) is true:
    the message at that sequence is that cursor's record, and the count is
    the number of sequences the run added (sequence - acknowledged is the
    stream's last sequence when the run started).
(d) exit statuses: position 0; push killed, or 0 after its input closed
    (the follower killed, or a server it reconnected to), or 2 after the
    server stayed away, with stderr naming the URL; nothing on push's stderr
    otherwise; writers exit 0.

Prints "round N: ok" (or "round N: FAILED" and its first problems) with the
round's figures, then the totals (with --quiet only lines the seed
determines), then "N passed, N failed" (rounds). Exit 0 if every round
passed, 1 if one failed, 2 on a usage or setup error. Tools come from --bin
DIR, else from PATH. The default 30 rounds take about a minute on 2 CPUs; the
golden case logsync-kill9-short runs 5 of them with --quiet.
"""
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the repository

import os  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "golden", "lib"))

import harness  # noqa: E402  (beside this script)
import natsserver  # noqa: E402  (Tests/golden/lib)

import asyncio  # noqa: E402
import base64  # noqa: E402
import json  # noqa: E402
import random  # noqa: E402
import re  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402

try:
    import nats  # noqa: E402  (nats-py)
except ImportError:
    nats = None

STORE = "store"
BUCKET = "tort"
RUNS = "runs"
T0 = 1700000000000
HISTORY = 64
RECONNECT = 1
FINAL_TIMEOUT = 30          # seconds for the last run to acknowledge the store's last record
PROCESS_TIMEOUT = 20
MAX_PROBLEMS = 10
COMMIT = b'{"type":"commit"}\n'
KEY_SHAPES = ["r%d.k%02d", "r%d k%02d", "r%d/k%02d", "$r%d=k%02d", "r%d..k%02d.", "r%d\nk%02d", "r%d \u00e9\u00e8 k%02d"]


def setup_error(message):
    harness.setup_error("logsync_kill9.py", message)


def cursor_of(rec):
    return (rec["segment"], rec["offset"], rec["length"], rec["checksum"])


def parse_cursor(text):
    try:
        c = json.loads(text)
        return (c["segment"], c["offset"], c["length"], c["checksum"])
    except (ValueError, KeyError, TypeError):
        return None


def cut_line(err, acks):
    """Whether push's stderr says line N is malformed and its last acknowledgement
    counts the N - 1 lines before it."""
    m = re.match(r"logsync: line (\d+): ", err)
    if not m or "\n" in err or not acks:
        return False
    try:
        return json.loads(acks[-1])["acknowledged"] == int(m.group(1)) - 1
    except (ValueError, KeyError, TypeError):
        return False


def value_bytes(rec):
    if "value_b64" in rec:
        return base64.b64decode(rec["value_b64"])
    if "value" in rec:
        return rec["value"].encode("utf-8", "surrogatepass")
    return None


def decode_key(token):
    """The spec's decoding: each =XX (upper-case hex) back into its byte."""
    out = bytearray()
    raw = token.encode()
    i = 0
    while i < len(raw):
        hexits = raw[i + 1:i + 3]
        if raw[i:i + 1] == b"=" and len(hexits) == 2 and all(c in b"0123456789ABCDEF" for c in hexits):
            out.append(int(raw[i + 1:i + 3], 16))
            i += 3
        else:
            out.append(raw[i])
            i += 1
    return out.decode("utf-8", "surrogateescape")


class Writer:
    """One `logenc -a store` fed by a thread, its input closed after its life."""

    def __init__(self, t, r, slot, atomic, size, life):
        self.t, self.r, self.slot, self.atomic, self.size, self.life = t, r, slot, atomic, size, life
        self.rng = random.Random("%d/writer/%d/%d" % (t.seed, r, slot))
        self.sent = 0
        self.status = None
        self.stderr = b""

    def line(self):
        rng = self.rng
        v = self.t.next_version()
        if rng.random() < 0.2:
            key = "u%d" % v
        else:
            shape = KEY_SHAPES[rng.randrange(len(KEY_SHAPES))]
            key = shape % (self.r, self.slot * 10 + rng.randrange(6))
        ts = T0 + v
        if not key.startswith("u") and rng.random() < 0.08:
            return json.dumps({"key": key, "type": "delete", "timestamp": ts}) + "\n"
        if rng.random() < 0.1:
            raw = b"\xff\xfe" + ("v%d:" % v).encode() + bytes(rng.randrange(256) for _ in range(rng.randint(0, 40)))
            return json.dumps({"key": key, "value_b64": base64.b64encode(raw).decode(), "timestamp": ts}) + "\n"
        return json.dumps({"key": key, "value": "v%d:%s" % (v, "x" * rng.randint(0, 100)), "timestamp": ts},
                          ensure_ascii=False) + "\n"

    def start(self):
        cmd = [self.t.tool("logenc"), "-a", STORE + "/", "--sync", "batch", "--segment-size", str(self.size)]
        if self.atomic:
            cmd.append("--atomic")
        self.proc = subprocess.Popen(cmd, cwd=self.t.work, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        self.thread = threading.Thread(target=self.feed, daemon=True)
        self.thread.start()

    def feed(self):
        rng = self.rng
        end = time.monotonic() + self.life
        try:
            while time.monotonic() < end:
                if self.atomic:
                    n = rng.randint(1, 30)
                    data = "".join(self.line() for _ in range(n)).encode() + COMMIT
                else:
                    n = rng.randint(1, 15)
                    data = "".join(self.line() for _ in range(n)).encode()
                self.proc.stdin.write(data)
                self.proc.stdin.flush()
                self.sent += n
                time.sleep(rng.uniform(0.005, 0.03))
        except OSError:
            pass
        finally:
            try:
                self.proc.stdin.close()
            except OSError:
                pass

    def finish(self):
        self.thread.join()
        self.proc.stdin = None  # closed by the feeder
        try:
            _, self.stderr = self.proc.communicate(timeout=PROCESS_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, self.stderr = self.proc.communicate()
        self.status = self.proc.returncode


class Run:
    """One pipeline run: position, then the follower piped into push."""

    def __init__(self, t, name, window):
        self.t, self.name, self.window = t, name, window
        self.acks_path = os.path.join(t.work, RUNS, name + ".acks")
        self.err_path = os.path.join(t.work, RUNS, name + ".err")
        self.ferr_path = os.path.join(t.work, RUNS, name + ".follower.err")
        self.position = None
        self.base = None           # the stream's last sequence when the run started
        self.push_status = None
        self.killed = set()

    def start(self):
        t = self.t
        p = subprocess.run([t.tool("logsync"), "position", t.url], cwd=t.work, capture_output=True,
                           timeout=PROCESS_TIMEOUT)
        self.position_status = p.returncode
        self.position_err = p.stderr.decode(errors="replace").strip()
        if p.returncode != 0:
            return False
        self.position = p.stdout.decode().rstrip("\n")
        self.base = t.last_sequence()
        r, w = os.pipe()
        with open(self.ferr_path, "wb") as ferr:
            self.follower = subprocess.Popen([t.tool("logscan"), "--follow", "--after", self.position, STORE],
                                             cwd=t.work, stdin=subprocess.DEVNULL, stdout=w, stderr=ferr)
        cmd = [t.tool("logsync"), "push", "--history", str(HISTORY), "--reconnect", str(RECONNECT)]
        if self.window != 4096:
            cmd += ["--window", str(self.window)]
        with open(self.acks_path, "wb") as out, open(self.err_path, "wb") as err:
            self.push = subprocess.Popen(cmd + [t.url], cwd=t.work, stdin=r, stdout=out, stderr=err)
        os.close(r)
        os.close(w)
        return True

    def acks(self):
        try:
            with open(self.acks_path, "rb") as f:
                data = f.read()
        except OSError:
            return []
        return [line for line in data.split(b"\n")[:-1]]

    def wait_ack(self, timeout, cursor=None):
        """Waits for an acknowledgement line (naming CURSOR, if given)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in reversed(self.acks()):
                if cursor is None:
                    return True
                try:
                    if parse_cursor(json.dumps(json.loads(line).get("cursor"))) == cursor:
                        return True
                except ValueError:
                    pass
            if self.push.poll() is not None:
                return False
            time.sleep(0.005)
        return False

    def kill(self, which):
        proc = self.push if which == "push" else self.follower
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            self.killed.add(which)

    def end(self):
        """Waits for push (the follower is killed if it is still running: its
        output may be closed while it sleeps on an idle store)."""
        try:
            self.push_status = self.push.wait(PROCESS_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.push.kill()
            self.push_status = "hung"
            self.push.wait()
        if self.follower.poll() is None:
            self.follower.kill()
        self.follower.wait()


class Torture:
    def __init__(self, args):
        self.seed, self.rounds, self.quiet = args.seed, args.rounds, args.quiet
        self.bin, self.work, self.keep = args.bin, os.path.abspath(args.dir), args.keep
        self.stop_on_failure = args.stop
        self.version = 0
        self.version_lock = threading.Lock()
        self.outcome = harness.Rounds(MAX_PROBLEMS)
        self.n = dict.fromkeys([
            "writers", "atomic", "records", "runs", "kill_push", "kill_follower", "kill_server_quick",
            "kill_server_long", "resent", "messages", "acks_checked", "reconnected", "gave_up", "gave_up_setup", "cut_lines"], 0)

    def tool(self, name):
        return os.path.join(self.bin, name) if self.bin else name

    def next_version(self):
        with self.version_lock:
            self.version += 1
            return self.version

    # ---- the bucket, read independently ------------------------------------------

    def last_sequence(self):
        if nats is None:
            return None
        return asyncio.run(self._last_sequence())

    async def _last_sequence(self):
        nc = await nats.connect(self.server.url(), allow_reconnect=False, connect_timeout=5)
        try:
            try:
                info = await nc.jetstream().stream_info("KV_" + BUCKET)
            except nats.js.errors.NotFoundError:
                return 0
            return info.state.last_seq
        finally:
            await nc.close()

    async def _read_stream(self):
        """Every message of the bucket's stream, in order: (seq, subject, headers, data)."""
        nc = await nats.connect(self.server.url(), allow_reconnect=False, connect_timeout=5)
        out = []
        try:
            js = nc.jetstream()
            try:
                info = await js.stream_info("KV_" + BUCKET)
            except nats.js.errors.NotFoundError:
                return out, 0, 0
            first, last = info.state.first_seq, info.state.last_seq
            if info.state.messages == 0:
                return out, first, last
            sub = await js.subscribe("$KV.%s.>" % BUCKET, ordered_consumer=True)
            try:
                while True:
                    msg = await sub.next_msg(timeout=5)
                    seq = msg.metadata.sequence.stream
                    out.append((seq, msg.subject, dict(msg.headers or {}), msg.data))
                    if seq >= last:
                        break
            finally:
                await sub.unsubscribe()
            return out, first, last
        finally:
            await nc.close()

    # ---- a round -------------------------------------------------------------------

    def round(self, r):
        rng = random.Random("%d/round/%d" % (self.seed, r))
        n = self.n
        problems = []
        writers = []
        for slot in range(rng.choice([1, 1, 2])):
            w = Writer(self, r, slot, rng.random() < 0.5, rng.choice([2048, 4096, 8192, 16384]),
                       rng.uniform(0.2, 0.8))
            writers.append(w)
            n["writers"] += 1
            n["atomic"] += w.atomic
        plan = []
        for k in range(rng.randint(2, 4)):
            when = rng.choice(["now", "soon", "later", "first-ack"])
            delay = {"now": 0, "soon": rng.uniform(0.005, 0.1), "later": rng.uniform(0.1, 0.4),
                     "first-ack": rng.uniform(0, 0.02)}[when]
            target = rng.choices(["push", "follower", "server"], [4, 3, 3])[0]
            quick = rng.random() < 0.7
            down = rng.uniform(0, 0.5)
            window = rng.choice([4096, 4096, 64, 1])
            plan.append((k, when, delay, target, quick, down, window))
        for w in writers:
            w.start()
        runs = []
        for k, when, delay, target, quick, down, window in plan:
            run = Run(self, "r%d-%d" % (r, k), window)
            runs.append(run)
            n["runs"] += 1
            if not run.start():
                problems.append("%s: logsync position exited %s: %s" % (run.name, run.position_status, run.position_err))
                continue
            if when == "first-ack":
                run.wait_ack(1)
            time.sleep(delay)
            if target == "push":
                n["kill_push"] += 1
                run.kill("push")
                run.end()
            elif target == "follower":
                n["kill_follower"] += 1
                run.kill("follower")
                run.end()
            else:
                run.acks_at_kill = len(run.acks())
                self.server.kill9()
                if quick:
                    n["kill_server_quick"] += 1
                    time.sleep(down)
                    self.start_server()
                    time.sleep(rng.uniform(0.05, 0.3))  # push reconnects and goes on
                    run.kill("follower")
                    run.end()
                else:
                    n["kill_server_long"] += 1
                    # push gives up after --reconnect (if it had something to send or notices the loss)
                    try:
                        run.push.wait(RECONNECT + 3)
                    except subprocess.TimeoutExpired:
                        pass
                    run.kill("follower")
                    run.end()
                    self.start_server()
                run.server_kill = "quick" if quick else "long"
        for w in writers:
            w.finish()
            if w.status != 0:
                problems.append("writer %d exited %s: %s" % (w.slot, w.status, w.stderr.decode(errors="replace")[:300]))
            n["records"] += w.sent

        # The last run: everything the store holds must be acknowledged.
        scan = self.scan()
        final = Run(self, "r%d-last" % r, 4096)
        runs.append(final)
        n["runs"] += 1
        if not final.start():
            problems.append("%s: logsync position exited %s: %s" % (final.name, final.position_status, final.position_err))
        else:
            last = cursor_of(scan[-1]) if scan else None
            if last is not None and parse_cursor(final.position) != last:
                if not final.wait_ack(FINAL_TIMEOUT, last):
                    problems.append("%s: push did not acknowledge the store's last record %s within %d s" % (
                        final.name, last, FINAL_TIMEOUT))
            else:
                time.sleep(0.05)
            final.kill("follower")
            final.end()

        for run in runs:
            problems.extend(self.check_run(run))
        problems.extend(self.check_bucket(scan))
        return problems

    def start_server(self):
        try:
            self.server.start()
        except natsserver.ServerError as e:
            setup_error("cannot restart nats-server: %s" % e)

    def scan(self):
        p = subprocess.run([self.tool("logscan"), STORE], cwd=self.work, capture_output=True, timeout=120)
        if p.returncode != 0:
            setup_error("logscan store exited %d: %s" % (p.returncode, p.stderr.decode(errors="replace").strip()))
        return [json.loads(line) for line in p.stdout.splitlines()]

    # ---- checks -------------------------------------------------------------------

    def check_run(self, run):
        problems = []
        if run.position is None:
            return problems
        name = run.name
        with open(run.err_path, "rb") as f:
            err = f.read().decode(errors="replace").strip()
        status = run.push_status
        server_kill = getattr(run, "server_kill", None)
        if "push" in run.killed:
            if status != -signal.SIGKILL:
                problems.append("%s: push exited %s before it was killed: %s" % (name, status, err[:300]))
        elif status == 0:
            if err:
                problems.append("%s: push exited 0 but wrote on stderr: %s" % (name, err[:300]))
            if server_kill:
                self.n["reconnected"] += 1
        elif status == 1 and "follower" in run.killed and cut_line(err, run.acks()):
            # The kill -9 cut the follower's last write mid-line: push read an unterminated
            # line at the end of its input, said so, and exits 1 after acknowledging every line before.
            self.n["cut_lines"] += 1
        elif status == 2 and server_kill:
            self.n["gave_up"] += 1
            lines = err.splitlines()
            if len(lines) != 1 or self.url not in lines[0]:
                problems.append("%s: push exited 2 after the server went away, but its stderr is not one line "
                                "naming %s: %r" % (name, self.url, err[:300]))
            if server_kill == "quick" and not run.acks_at_kill:
                # Killed before push printed anything: the kill may have hit its connection setup
                # (connect, the bucket's lookup or creation), where push does not reconnect.
                self.n["gave_up_setup"] += 1
            elif server_kill == "quick":
                problems.append("%s: push gave up (exit 2) although the server was back within --reconnect %d: %s" % (
                    name, RECONNECT, err[:300]))
        else:
            problems.append("%s: push exited %s: %s" % (name, status, err[:300]))
        with open(run.ferr_path, "rb") as f:
            ferr = f.read().decode(errors="replace").strip()
        if ferr:
            problems.append("%s: the follower wrote on stderr: %s" % (name, ferr[:300]))
        # The acknowledgement lines, checked against the stream later (check_bucket).
        prev = 0
        for i, raw in enumerate(run.acks()):
            try:
                a = json.loads(raw)
                n, seq, cur = a["acknowledged"], a["sequence"], a["cursor"]
            except (ValueError, KeyError, TypeError):
                problems.append("%s: push printed a line that is not an acknowledgement: %r" % (name, raw[:200]))
                continue
            if n < prev:
                problems.append("%s: acknowledgement line %d counts %d, fewer than the line before (%d)" % (
                    name, i + 1, n, prev))
            prev = n
            if n > 0:
                self.pending_acks.append((name, i + 1, n, seq, cur, run.base))
        return problems

    def check_bucket(self, scan):
        problems = []
        # (a) logsync pull equals the store's live set.
        live = {}
        for rec in scan:
            if rec["type"] == "delete":
                live.pop(rec["key"], None)
            else:
                live[rec["key"]] = (value_bytes(rec), rec["timestamp"])
        p = subprocess.run([self.tool("logsync"), "pull", self.url], cwd=self.work, capture_output=True,
                           timeout=120)
        if p.returncode != 0:
            problems.append("logsync pull exited %d: %s" % (p.returncode, p.stderr.decode(errors="replace").strip()[:300]))
        else:
            pulled = {}
            for line in p.stdout.splitlines():
                rec = json.loads(line)
                if rec["key"] in pulled:
                    problems.append("logsync pull printed key %r twice" % rec["key"])
                pulled[rec["key"]] = (value_bytes(rec), rec["timestamp"])
            missing = [k for k in live if k not in pulled]
            extra = [k for k in pulled if k not in live]
            wrong = [k for k in live if k in pulled and pulled[k] != live[k]]
            if missing or extra or wrong:
                problems.append("the bucket (logsync pull) is not the store's live set: %d keys missing (%s), %d "
                                "extra (%s), %d with another value or timestamp (%s)" % (
                                    len(missing), ", ".join(map(repr, missing[:3])), len(extra),
                                    ", ".join(map(repr, extra[:3])), len(wrong),
                                    "; ".join("%r: %r != %r" % (k, pulled[k], live[k]) for k in wrong[:2])))
        if nats is None:
            self.pending_acks = []
            return problems
        # (b) the stream, in order, is the store, in order.
        msgs, first, last = asyncio.run(self._read_stream())
        self.n["messages"] = len(msgs)
        index = {cursor_of(rec): i for i, rec in enumerate(scan)}
        by_seq = {}
        prev = -1
        seen = set()
        bad = []
        resent = 0
        if msgs and (first != 1 or len(msgs) != last):
            bad.append("the stream holds %d messages from sequence %d to %d: some were removed" % (len(msgs), first, last))
        for seq, subject, headers, data in msgs:
            cur = parse_cursor(headers.get("Logkit-Cursor", ""))
            i = index.get(cur)
            if i is None:
                bad.append("sequence %d (%s) has no Logkit-Cursor naming a store record: %r" % (
                    seq, subject, headers.get("Logkit-Cursor")))
                continue
            by_seq[seq] = cur
            rec = scan[i]
            key = decode_key(subject.split(".", 2)[2])
            op = headers.get("KV-Operation")
            want_op = "DEL" if rec["type"] == "delete" else None
            if key != rec["key"] or op != want_op or headers.get("Logkit-Timestamp") != str(rec["timestamp"]) or (
                    want_op is None and data != value_bytes(rec)):
                bad.append("sequence %d is not the record its cursor names (store record %d): key %r op %s ts %s" % (
                    seq, i + 1, key, op, headers.get("Logkit-Timestamp")))
            if i == prev + 1:
                pass
            elif i <= prev and i in seen:
                resent += 1  # the start of a re-sent suffix
            elif i > prev + 1:
                bad.append("sequence %d is store record %d, but record%s %s before it never reached the stream" % (
                    seq, i + 1, "s" if i > prev + 2 else "", "%d-%d" % (prev + 2, i) if i > prev + 2 else str(prev + 2)))
            else:
                bad.append("sequence %d is store record %d, after record %d: out of order" % (seq, i + 1, prev + 1))
            seen.add(i)
            prev = i
        if scan and prev != len(scan) - 1 and not bad:
            bad.append("the stream ends at store record %d of %d" % (prev + 1, len(scan)))
        self.n["resent"] += resent
        if bad:
            problems.append("the stream is not the store in order: %d problems, the first: %s" % (len(bad), "; ".join(bad[:3])))
        # (c) every acknowledgement line is true.
        for name, line, n, seq, cur, base in self.pending_acks:
            self.n["acks_checked"] += 1
            held = by_seq.get(seq)
            want = parse_cursor(json.dumps(cur)) if cur is not None else None
            if held is None:
                problems.append("%s: acknowledgement line %d names sequence %d, which the stream does not hold "
                                "(or holds without a store cursor)" % (name, line, seq))
            elif held != want:
                problems.append("%s: acknowledgement line %d names sequence %d with cursor %s, but the stream holds %s "
                                "there" % (name, line, seq, want, held))
            if base is not None and seq - n != base:
                problems.append("%s: acknowledgement line %d: %d acknowledged up to sequence %d, but the run started "
                                "after sequence %d" % (name, line, n, seq, base))
        self.pending_acks = []
        return problems

    # ---- the loop -----------------------------------------------------------------

    def main(self):
        started = time.monotonic()
        if not natsserver.available():
            setup_error("nats-server not found (install it, or set NATS_SERVER)")
        os.makedirs(os.path.join(self.work, RUNS), exist_ok=True)
        self.pending_acks = []
        self.server = natsserver.NatsServer(store_dir=os.path.join(self.work, "nats"),
                                            log=os.path.join(self.work, "nats.log"))
        try:
            self.start_server()
            self.url = self.server.url(BUCKET)
            return self.loop(started)
        finally:
            self.server.close()

    def loop(self, started):
        r = 0
        for r in range(1, self.rounds + 1):
            before = dict(self.n)
            problems = self.round(r)
            if self.quiet:
                print("round %d: %s" % (r, "FAILED" if problems else "ok"), flush=True)
            else:
                d = {k: v - before[k] for k, v in self.n.items()}
                print("round %d: %s (%d writers, %d records; %d runs: %d push, %d follower, %d server kills (%d "
                      "restarted at once, %d left down); %d pushes reconnected, %d gave up; %d re-sent suffixes; "
                      "stream %d messages)" % (
                          r, "FAILED" if problems else "ok", d["writers"], d["records"], d["runs"], d["kill_push"],
                          d["kill_follower"], d["kill_server_quick"] + d["kill_server_long"], d["kill_server_quick"],
                          d["kill_server_long"], d["reconnected"], d["gave_up"], d["resent"], self.n["messages"]),
                      flush=True)
            if self.outcome.record(r, problems) and self.stop_on_failure:
                break
        n = self.n
        print("schedule (seed %d): %d rounds, %d writers (%d --atomic), %d pipeline runs: kill -9 of push %d, of the "
              "follower %d, of nats-server %d (%d restarted at once, %d left down past push's --reconnect)" % (
                  self.seed, r, n["writers"], n["atomic"], n["runs"], n["kill_push"], n["kill_follower"],
                  n["kill_server_quick"] + n["kill_server_long"], n["kill_server_quick"], n["kill_server_long"]))
        if not self.quiet:
            print("records: %d sent; the stream holds %d messages (%d re-sent suffixes); %d acknowledgement lines "
                  "checked; pushes that outlived a server kill: %d, that gave up: %d (%d of them, the server back at once, "
                  "killed before push's first acknowledgement line: in its connection setup?); %d pushes exited 1 on "
                  "the line a follower's kill cut%s; %.1f s" % (
                      n["records"], n["messages"], n["resent"], n["acks_checked"], n["reconnected"], n["gave_up"],
                      n["gave_up_setup"], n["cut_lines"],
                      "" if nats else " (nats-py missing: the stream and acknowledgement checks were skipped)",
                      time.monotonic() - started))
        return harness.report("logsync_kill9.py", self.seed, r, self.outcome,
                              " --stop --keep" + (" --bin " + self.bin if self.bin else ""))


def main():
    harness.run(__doc__, Torture, 30, "logkit-logsync-torture.", STORE, "store",
                keep_help="keep the work directory (store, server store and log, every run's output)")


if __name__ == "__main__":
    main()
