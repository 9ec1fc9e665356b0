#!/usr/bin/env python3
"""Inputs for the store-merge benchmarks (issue 11), as JSON lines for
`logenc -a DIR/ --sync none --segment-size 64M < FILE`. Fixed seeds, so
every run measures the same bytes.

usage: gen_store.py big    [--records N] > big.jsonl
       gen_store.py garbage [--records N] > garbage.jsonl

big:     N records (default 10,000,000) of keys user-NNNNNNN drawn at random
         from N keys (so about a third are overwritten by a later record), 5%
         of them DELETEs, values of 50-150 bytes: ~1.4 GB, 22 segments of 64M.
garbage: N records (default 2,000,000): a PUT of each of N/2 keys, in a
         shuffled order, then each key again in another order, a PUT (80%)
         or a DELETE (20%): half the records are garbage.
"""
import argparse
import random
import sys

ALPHABET = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("kind", choices=["big", "garbage"])
    parser.add_argument("--records", type=int)
    args = parser.parse_args()
    rng = random.Random(11)
    # One long random text; each value is a slice of it, so values differ
    # without the cost of drawing every byte.
    pool = bytes(rng.choice(ALPHABET) for _ in range(1 << 16))
    out = sys.stdout.buffer
    lines = []
    timestamp = 1700000000000

    def put(key, n):
        start = rng.randrange(len(pool) - 150)
        size = rng.randint(50, 150)
        lines.append(b'{"key":"user-%07d","value":"%s","timestamp":%d}\n' % (key, pool[start:start + size], timestamp + n))

    def delete(key, n):
        lines.append(b'{"key":"user-%07d","type":"delete","timestamp":%d}\n' % (key, timestamp + n))

    def flush():
        out.write(b"".join(lines))
        lines.clear()

    if args.kind == "big":
        count = args.records or 10_000_000
        for n in range(count):
            key = rng.randrange(count)
            if rng.random() < 0.05:
                delete(key, n)
            else:
                put(key, n)
            if len(lines) >= 100_000:
                flush()
    else:
        count = args.records or 2_000_000
        keys = list(range(count // 2))
        n = 0
        for again in (False, True):
            rng.shuffle(keys)
            for key in keys:
                if again and rng.random() < 0.2:
                    delete(key, n)
                else:
                    put(key, n)
                n += 1
                if len(lines) >= 100_000:
                    flush()
    flush()


if __name__ == "__main__":
    main()
