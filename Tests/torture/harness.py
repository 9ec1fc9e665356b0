"""What the kill -9 loops share: their command line and their work directory.

Each loop is a class taking the parsed arguments, whose main() runs the rounds
and returns the exit status; run() parses the options every loop takes, makes
or checks the work directory, runs the loop and cleans up.
"""
import argparse
import os
import shutil
import sys
import tempfile
import threading


def run(doc, torture, rounds, prefix, target, kind, bin_default=None, stop=True,
        keep_help="keep the temporary work directory"):
    """`target` is what the loop creates in the work directory (a segment or a
    store, named by `kind`): a given directory must not hold one already."""
    parser = argparse.ArgumentParser(description=doc.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=rounds)
    parser.add_argument("--seed", type=int, default=1)
    if bin_default:
        parser.add_argument("--bin", default=bin_default, help="directory of the tools (default: ROOT/bin)")
    else:
        parser.add_argument("--bin", help="directory of the tools (default: PATH)")
    parser.add_argument("--dir", help="work directory (default: a new temporary one, removed afterwards)")
    parser.add_argument("--keep", action="store_true", help=keep_help)
    parser.add_argument("--quiet", action="store_true", help="print only lines the seed determines (for golden tests)")
    if stop:
        parser.add_argument("--stop", action="store_true", help="stop after the first failed round (with --keep, to inspect it)")
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    own = args.dir is None
    if own:
        args.dir = tempfile.mkdtemp(prefix=prefix)
    else:
        os.makedirs(args.dir, exist_ok=True)
        if os.path.exists(os.path.join(args.dir, target)):
            parser.error("%s already holds a %s" % (args.dir, kind))
    try:
        status = torture(args).main()
    finally:
        if own and not args.keep:
            shutil.rmtree(args.dir, ignore_errors=True)
        elif not args.quiet:
            print("work directory kept: %s" % args.dir, file=sys.stderr)
    sys.exit(status)


class Clock:
    """One global order of the events a loop sees (sends, acknowledgements, reaps)."""

    def __init__(self):
        self.n = 0
        self.lock = threading.Lock()

    def tick(self):
        with self.lock:
            self.n += 1
            return self.n


class Rounds:
    """The failed rounds and their first problems: each round's problems are
    printed as it ends, and report() sums them up."""

    def __init__(self, limit):
        self.limit = limit
        self.failed = []
        self.problems = []  # (round, text): the first ones, for the summary

    def record(self, r, problems):
        """Prints a round's problems and keeps them; whether there were any."""
        for p in problems[:self.limit]:
            print("    " + p, flush=True)
        if len(problems) > self.limit:
            print("    ... and %d more problems" % (len(problems) - self.limit), flush=True)
        if problems:
            self.failed.append(r)
            self.problems.extend((r, p) for p in problems[:self.limit] if len(self.problems) < self.limit)
        return bool(problems)


def report(script, seed, rounds, outcome, options):
    """The end of every loop's output: the failed rounds (a Rounds), the command
    that replays the first with `options`, its problems, and `N passed, N failed`.
    Returns the exit status."""
    failed_rounds, problems = outcome.failed, outcome.problems
    if failed_rounds:
        print("FAILED rounds: %s" % " ".join(map(str, failed_rounds[:40])) + (" ..." if len(failed_rounds) > 40 else ""))
        print("reproduce (same schedule; the timing differs): python3 Tests/torture/%s --seed %d --rounds %d%s" % (
            script, seed, failed_rounds[0], options))
        print("first problems:")
        for r, p in problems:
            print("  seed %d round %d: %s" % (seed, r, p))
    print("%d passed, %d failed" % (rounds - len(failed_rounds), len(failed_rounds)))
    return 1 if failed_rounds else 0


def setup_error(script, message):
    print("%s: %s" % (script, message), file=sys.stderr)
    sys.exit(2)
