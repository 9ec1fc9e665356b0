#!/usr/bin/env python3
"""The 100,000-record round trip through a NATS JetStream key-value bucket.

usage: python3 Tests/bench/logsync_roundtrip.py [--records N] [--seed S] [--bin DIR]
                                                [--dir DIR] [--keep] [--quiet]

Builds a store `src` of N records (default 100,000; drawn from --seed) with
`logenc -a src/ --segment-size 1M`: puts, overwrites and deletes, of keys
holding dots (inner, leading, trailing, doubled), spaces, slashes, newlines
and tabs, non-ASCII, a leading `$`, `=` (also before hex digits), and plain
keys (A-Z a-z 0-9 - _, some with inner dots); values of 0-200 bytes, one in
ten not UTF-8 (written as value_b64). Then, against a throw-away
`nats-server -js`:

1. `logscan src | logsync push URL` must exit 0, its last line acknowledging
   N records up to sequence N with the cursor of src's last record;
2. `logsync pull URL | logenc -a dst/` must exit 0;
3. the live set of dst (`logscan dst`, the last record per key, deletes
   removing) must equal src's key for key, value byte for byte, timestamp
   for timestamp;
4. nats-py (if installed) must read the same: the latest message of every
   subject (an ordered consumer delivering the last per subject) is, for
   every plain key, under that same key, the live value (a DEL marker for a
   deleted key), and for every other key under its encoding; and its
   key-value API's get() returns the live value of 1,000 plain keys.

Prints the steps with their times and "round trip: ok" (or the differences,
"round trip: FAILED"); with --quiet only lines that do not depend on timing.
Exit 0 if the round trip holds, 1 if not, 2 on a setup error.
"""
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the repository

import os  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "golden", "lib"))

import natsserver  # noqa: E402  (Tests/golden/lib)

import argparse  # noqa: E402
import asyncio  # noqa: E402
import base64  # noqa: E402
import json  # noqa: E402
import random  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

try:
    import nats  # noqa: E402  (nats-py)
except ImportError:
    nats = None

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
T0 = 1700000000000
BUCKET = "roundtrip"
PLAIN = re.compile(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$")
SHAPES = ["user-%d", "cfg.db%d.host", "a.b.c%d", ".lead%d", "trail%d.", "dots..%d", "with space %d", "path/to/%d",
          "line\nbreak%d", "tab\t%d", "caf\u00e9 %d", "\u65e5\u672c%d", "\U0001F600%d", "$home%d", "eq=%d", "eq=41-%d",
          "Plain_Key-%d", "x/%d/", "back\\slash%d", "quote\"%d"]


def fail(message):
    print("logsync_roundtrip.py: %s" % message, file=sys.stderr)
    sys.exit(2)


def encode_key(key):
    """The spec's encoding (docs/logsync.md, Keys)."""
    raw = key.encode("utf-8")
    out = []
    for i, b in enumerate(raw):
        c = chr(b)
        if c.isascii() and (c.isalnum() or c in "-_/"):
            out.append(c)
        elif c == "." and 0 < i < len(raw) - 1 and raw[i - 1:i] != b"." and raw[i + 1:i + 2] != b".":
            out.append(c)
        else:
            out.append("=%02X" % b)
    return "".join(out)


def value_of(rec):
    if "value_b64" in rec:
        return base64.b64decode(rec["value_b64"])
    return rec["value"].encode("utf-8", "surrogatepass")


def live_set(lines):
    live = {}
    for line in lines:
        rec = json.loads(line)
        if rec["type"] == "delete":
            live.pop(rec["key"], None)
        else:
            live[rec["key"]] = (value_of(rec), rec["timestamp"])
    return live


def make_input(n, seed, path):
    rng = random.Random(seed)
    nkeys = max(1, n // 3)
    keys = [SHAPES[i % len(SHAPES)] % i for i in range(nkeys)]
    with open(path, "w") as f:
        for i in range(n):
            key = keys[rng.randrange(nkeys)]
            ts = T0 + i
            r = rng.random()
            if r < 0.1:
                f.write(json.dumps({"key": key, "type": "delete", "timestamp": ts}) + "\n")
            elif r < 0.2:
                raw = b"\xff" + bytes(rng.randrange(256) for _ in range(rng.randint(0, 200)))
                f.write(json.dumps({"key": key, "value_b64": base64.b64encode(raw).decode(), "timestamp": ts}) + "\n")
            else:
                value = "".join(rng.choice("abcdefghij \u00e9\"\\\n\t") for _ in range(rng.randint(0, 200)))
                f.write(json.dumps({"key": key, "value": value, "timestamp": ts}) + "\n")


async def nats_check(url, live, say):
    """Step 4: the problems nats-py finds."""
    problems = []
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        sub = await js.subscribe("$KV.%s.>" % BUCKET, ordered_consumer=True, deliver_policy=nats.js.api.DeliverPolicy.LAST_PER_SUBJECT,
                                 pending_msgs_limit=1 << 20, pending_bytes_limit=1 << 30)
        subjects = {}
        while True:
            msg = await sub.next_msg(timeout=10)
            subjects[msg.subject[len("$KV.%s." % BUCKET):]] = ((msg.headers or {}).get("KV-Operation"), msg.data)
            if msg.metadata.num_pending == 0:
                break
        await sub.unsubscribe()
        by_encoding = {}
        plain = 0
        for key, v in live.items():
            enc = encode_key(key)
            if PLAIN.match(key):
                plain += 1
                if enc != key:
                    problems.append("the spec's encoding of plain key %r is %r" % (key, enc))
            by_encoding[enc] = key
            got = subjects.get(enc)
            if got is None:
                problems.append("nats-py: no message under %r (key %r)" % (enc, key))
            elif got[0] is not None or (got[1] or b"") != v[0]:
                problems.append("nats-py: %r (key %r) holds %r %r, not the live value" % (enc, key, got[0], got[1][:40]))
        for enc, (op, _) in subjects.items():
            if enc not in by_encoding and op not in ("DEL", "PURGE"):
                problems.append("nats-py: %r holds a value, but the key is not live in src" % enc)
        kv = await js.key_value(BUCKET)
        plain_keys = sorted(k for k in live if PLAIN.match(k))
        sample = random.Random(0).sample(plain_keys, min(1000, len(plain_keys)))
        for key in sample:
            e = await kv.get(key)
            if (e.value or b"") != live[key][0]:  # nats-py gives None for an empty value
                problems.append("nats-py kv.get(%r) is %r (%s), not the live value %r" % (key, (e.value or b"")[:40], e.operation, live[key][0][:40]))
        say("nats-py: %d subjects, the latest message of each read in order; %d live plain keys read under the same "
            "key, the others under their encoding; kv.get() of %d plain keys" % (len(subjects), plain, len(sample)))
    finally:
        await nc.close()
    return problems


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=100000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--bin", default=os.path.join(ROOT, "bin"), help="directory of the tools (default: ROOT/bin)")
    parser.add_argument("--dir", help="work directory (default: a new temporary one, removed afterwards)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary work directory")
    parser.add_argument("--quiet", action="store_true", help="print only lines that do not depend on timing")
    args = parser.parse_args()
    if args.records < 1:
        parser.error("--records must be at least 1")
    tool = lambda name: os.path.join(args.bin, name)  # noqa: E731
    for name in ("logenc", "logscan", "logsync"):
        if not os.access(tool(name), os.X_OK):
            fail("%s is missing: build the tools first (make build)" % tool(name))
    if not natsserver.available():
        fail("nats-server not found (install it, or set NATS_SERVER)")
    own = args.dir is None
    work = tempfile.mkdtemp(prefix="logkit-logsync-roundtrip.") if own else os.path.abspath(args.dir)
    os.makedirs(work, exist_ok=True)
    for d in ("src", "dst"):
        if os.path.exists(os.path.join(work, d)):
            fail("%s already holds %s" % (work, d))

    def say(line, timing=""):
        print(line + ("" if args.quiet or not timing else " (%s)" % timing), flush=True)

    def sh(cmd, what):
        t = time.perf_counter()
        p = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], cwd=work, capture_output=True)
        elapsed = time.perf_counter() - t
        if p.returncode != 0:
            print("%s: exit %d: %s" % (what, p.returncode, p.stderr.decode(errors="replace").strip()[:500]))
            print("round trip: FAILED")
            sys.exit(1)
        return p.stdout, elapsed

    env_bin = "PATH=%s:$PATH; " % shlex_quote(args.bin)
    try:
        make_input(args.records, args.seed, os.path.join(work, "in.jsonl"))
        _, t = sh(env_bin + "logenc -a src/ --sync none --segment-size 1M < in.jsonl > /dev/null", "logenc -a src/")
        say("src: %d records written by logenc -a src/ --segment-size 1M" % args.records, "%.2f s" % t)
        src_lines, _ = sh(env_bin + "logscan src", "logscan src")
        src_lines = src_lines.splitlines()
        src = live_set(src_lines)
        last = json.loads(src_lines[-1])
        with natsserver.NatsServer(store_dir=os.path.join(work, "nats"), log=os.path.join(work, "nats.log")) as server:
            url = server.url(BUCKET)
            out, t = sh(env_bin + "logscan src | logsync push %s" % url, "logscan src | logsync push URL")
            acks = out.splitlines()
            final = json.loads(acks[-1]) if acks else {}
            want = {"acknowledged": args.records, "sequence": args.records,
                    "cursor": {k: last[k] for k in ("segment", "offset", "length", "checksum")}}
            problems = []
            if final != want:
                problems.append("push's last line is %s, not %s" % (json.dumps(final), json.dumps(want)))
            say("logscan src | logsync push URL: the last acknowledgement line %s" % (
                "as expected" if final == want else "WRONG"),
                "of %d; %.2f s, %.0f records/s" % (len(acks), t, args.records / t))
            out, t = sh(env_bin + "logsync pull %s | tee pulled.jsonl | logenc -a dst/ --sync none > /dev/null" % url,
                        "logsync pull URL | logenc -a dst/")
            with open(os.path.join(work, "pulled.jsonl"), "rb") as f:
                pulled = f.read().count(b"\n")
            say("logsync pull URL | logenc -a dst/: %d records (the live keys of src: %d)" % (pulled, len(src)),
                "%.2f s, %.0f records/s" % (t, pulled / t))
            dst_lines, _ = sh(env_bin + "logscan dst", "logscan dst")
            dst = live_set(dst_lines.splitlines())
            missing = [k for k in src if k not in dst]
            extra = [k for k in dst if k not in src]
            wrong = [k for k in src if k in dst and dst[k] != src[k]]
            if missing or extra or wrong:
                problems.append("dst's live set differs from src's: %d keys missing (%s), %d extra (%s), %d with "
                                "another value or timestamp (%s)" % (
                                    len(missing), ", ".join(map(repr, missing[:3])), len(extra),
                                    ", ".join(map(repr, extra[:3])), len(wrong), ", ".join(map(repr, wrong[:3]))))
            else:
                say("dst's live set equals src's: %d keys, values byte for byte, timestamps" % len(src))
            if nats is None:
                say("nats-py is missing: its check was skipped")
            else:
                problems += asyncio.run(nats_check(server.url(), src, say))
        for p in problems[:10]:
            print("  " + p)
        print("round trip: %s" % ("FAILED" if problems else "ok"))
        return 1 if problems else 0
    finally:
        if own and not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        elif not args.quiet:
            print("work directory kept: %s" % work, file=sys.stderr)


def shlex_quote(s):
    import shlex
    return shlex.quote(s)


if __name__ == "__main__":
    sys.exit(main())
