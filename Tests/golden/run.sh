#!/usr/bin/env bash
# Golden tests for the logkit tools: each case is a directory
# Tests/golden/cases/NAME/ holding a bash script `cmd` and the expected
# `stdout`, `stderr` (byte-exact; a missing file means empty) and `status`
# (exit code; a missing file means 0). See Tests/golden/README.md.
#
# usage: Tests/golden/run.sh [NAME-GLOB...]
#        UPDATE=1 Tests/golden/run.sh NAME...   # rewrite expected files from actual output
#
# A case may hold a `requires` file naming what it needs beyond the tools, one
# word a line (`#` comments): a command on PATH (`nats-server`), or
# `python:MODULE` (a module python3 must import: `python:nats` for nats-py).
# A case whose need is missing is not run: it prints "skip NAME: needs WHAT"
# and counts as skipped, never as passed.
#
# Each `cmd` runs with `bash cmd`, its cwd a fresh empty temporary directory
# (removed afterwards), stdin /dev/null, and PATH="$BIN:$PATH" (BIN defaults to
# $ROOT/bin; set it to test another build of the tools),
# ROOT (the repository root), FIXTURES="$ROOT/fixtures", LC_ALL=C.
# The last line of output is always "N passed, N failed" (unless the tools are
# missing), preceded by "N skipped" when cases were skipped. Exit status: 0 no
# case failed, 1 a case failed (or no case matched), 2 the tools in bin/ are
# missing.
set -u

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)
CASES="$ROOT/Tests/golden/cases"
BIN=${BIN:-$ROOT/bin}
TOOLS=(logenc logdec)
CASE_TIMEOUT=${CASE_TIMEOUT:-20}

for tool in "${TOOLS[@]}"; do
    if [[ ! -x "$BIN/$tool" || ! -f "$BIN/$tool" ]]; then
        echo "run.sh: $BIN/$tool is missing or not executable; build the tools first: (cd '$ROOT' && make build)" >&2
        exit 2
    fi
done

work=$(mktemp -d "${TMPDIR:-/tmp}/logkit-golden.XXXXXX") || exit 2
trap 'rm -rf "$work"' EXIT
trap 'exit 130' INT TERM

# Select the cases: every directory under cases/, or those matching a glob.
names=()
for dir in "$CASES"/*/; do
    [[ -d "$dir" ]] || continue
    name=$(basename "$dir")
    if (($# == 0)); then
        names+=("$name")
        continue
    fi
    for glob in "$@"; do
        # shellcheck disable=SC2053 # the glob is meant to match as a pattern
        if [[ "$name" == $glob ]]; then
            names+=("$name")
            break
        fi
    done
done

passed=0
failed=0
skipped=0
declare -A have=()  # requirement -> 1 (present) or 0 (missing), checked once each

if ((${#names[@]} == 0)); then
    echo "run.sh: no case matches: $*" >&2
    echo "0 passed, 0 failed"
    exit 1
fi

# Prints the expected status of a case: the number in its status file, or 0.
expected_status() {
    local file="$1/status" value=0
    if [[ -f "$file" ]]; then
        read -r value < "$file" || true
        value=${value//[[:space:]]/}
    fi
    echo "${value:-0}"
}

# Sets `missing` to the first need of a case (its `requires` file) that is
# not there, as the skip line names it, or to nothing.
check_requirements() {
    local file="$1/requires" need
    missing=
    [[ -f "$file" ]] || return 0
    while read -r need || [[ -n "$need" ]]; do
        need=${need%%#*}
        need=${need//[[:space:]]/}
        [[ -n "$need" ]] || continue
        if [[ -z "${have[$need]:-}" ]]; then
            if [[ "$need" == python:* ]]; then
                [[ "${need#python:}" =~ ^[A-Za-z_][A-Za-z0-9_.]*$ ]] &&
                    PATH="$BIN:$PATH" python3 -c "import ${need#python:}" > /dev/null 2>&1 && have[$need]=1 || have[$need]=0
            else
                PATH="$BIN:$PATH" command -v "$need" > /dev/null 2>&1 && have[$need]=1 || have[$need]=0
            fi
        fi
        if [[ "${have[$need]}" == 0 ]]; then
            [[ "$need" == python:* ]] && missing="python module ${need#python:}" || missing=$need
            return 0
        fi
    done < "$file"
}

# Shows how an actual stream differs from the expected one (a missing file is empty).
show_diff() {
    local stream="$1" expected="$2" actual="$3"
    [[ -f "$expected" ]] || expected=/dev/null
    diff -a -u --label "expected $stream" --label "actual $stream" "$expected" "$actual" | sed 's/^/    /'
}

for name in "${names[@]}"; do
    case_dir="$CASES/$name"
    out="$work/out/$name"
    cwd="$work/cwd/$name"
    mkdir -p "$out" "$cwd"

    if [[ ! -f "$case_dir/cmd" ]]; then
        echo "FAIL $name"
        echo "    no cmd file in $case_dir"
        failed=$((failed + 1))
        continue
    fi

    check_requirements "$case_dir"
    if [[ -n "$missing" ]]; then
        echo "skip $name: needs $missing"
        skipped=$((skipped + 1))
        rm -rf "$cwd"
        continue
    fi

    (
        cd "$cwd" || exit 125
        exec env -u BASH_ENV -u ENV -u CDPATH -u UPDATE \
            PATH="$BIN:$PATH" ROOT="$ROOT" FIXTURES="$ROOT/fixtures" LC_ALL=C \
            timeout -k 2 "$CASE_TIMEOUT" bash "$case_dir/cmd"
    ) < /dev/null > "$out/stdout" 2> "$out/stderr"
    status=$?
    rm -rf "$cwd"

    if [[ -n "${UPDATE:-}" ]]; then
        for stream in stdout stderr; do
            if [[ -s "$out/$stream" ]]; then
                cp "$out/$stream" "$case_dir/$stream"
            else
                rm -f "$case_dir/$stream"
            fi
        done
        if ((status != 0)); then
            echo "$status" > "$case_dir/status"
        else
            rm -f "$case_dir/status"
        fi
        echo "updated $name (exit $status); review $case_dir before keeping it"
        passed=$((passed + 1))
        continue
    fi

    want=$(expected_status "$case_dir")
    ok=1
    for stream in stdout stderr; do
        expected="$case_dir/$stream"
        [[ -f "$expected" ]] || expected=/dev/null
        cmp -s "$expected" "$out/$stream" || ok=0
    done
    [[ "$status" == "$want" ]] || ok=0

    if ((ok)); then
        echo "ok   $name"
        passed=$((passed + 1))
    else
        echo "FAIL $name"
        for stream in stdout stderr; do
            expected="$case_dir/$stream"
            [[ -f "$expected" ]] || expected=/dev/null
            cmp -s "$expected" "$out/$stream" || show_diff "$stream" "$case_dir/$stream" "$out/$stream"
        done
        if [[ "$status" != "$want" ]]; then
            echo "    exit status: expected $want, actual $status"
            ((status == 124)) && echo "    (124: timed out after ${CASE_TIMEOUT}s)"
        fi
        failed=$((failed + 1))
    fi
done

((skipped == 0)) || echo "$skipped skipped"
echo "$passed passed, $failed failed"
((failed == 0))
