#!/usr/bin/env bash
# Builds the libFuzzer targets of Fuzz/targets/ and runs each one in turn.
#
#   Fuzz/run.sh [--seconds N | --runs N] [--build-only] [TARGET...]
#
# --runs N       N executions per target (default 2000), including the seeds
# --seconds N    N seconds per target instead
# --build-only   build the targets and stop
# TARGET         a name from Fuzz/targets/ (default: all of them)
#
# Each run starts from a temporary copy of Fuzz/corpus/TARGET (the committed
# corpus never changes) with a fixed -seed, so a --runs run is repeatable.
# Prints one line per target, then `N passed, N failed`; exits 1 if any target
# found something (its input is kept under .build-fuzz/fuzz/findings/TARGET/),
# 2 on a usage or build error or if a run was interrupted by a signal.
#
# Environment: SWIFTC (default swiftc), FUZZ_SEED (default 1), FUZZ_SKIP
# (invariants the targets skip, comma-separated: for fuzzing past a reported
# finding), FUZZ_ARGS (extra libFuzzer flags), FUZZ_JOBS (parallel target
# builds, default 2), FUZZ_SOURCES (the Sources
# directory to fuzz, default Sources; e.g. a commit exported with git
# archive), FUZZ_KEEP=1 keeps the work directories (grown corpus, logs).

set -euo pipefail
cd "$(dirname "$0")/.."

usage() { sed -n '2,/^[^#]/s/^# \{0,1\}//p' "$0"; exit "${1:-0}"; }
die() { echo "Fuzz/run.sh: $*" >&2; exit 2; }

mode=runs
amount=2000
build_only=0
targets=()
while (($#)); do
    case $1 in
        --runs|--seconds)
            [[ $# -ge 2 && $2 =~ ^[0-9]+$ && $2 -gt 0 ]] || die "$1 needs a positive number"
            mode=${1#--}; amount=$2; shift 2 ;;
        --build-only) build_only=1; shift ;;
        -h|--help) usage 0 ;;
        -*) die "unknown option $1 (see --help)" ;;
        *) [[ -f Fuzz/targets/$1.swift ]] || die "no target $1 (Fuzz/targets/$1.swift)"
           targets+=("$1"); shift ;;
    esac
done
if ((${#targets[@]} == 0)); then
    for f in Fuzz/targets/*.swift; do t=${f##*/}; targets+=("${t%.swift}"); done
fi

SWIFTC=${SWIFTC:-swiftc}
SOURCES=${FUZZ_SOURCES:-Sources}
# The Swift runtime's own crash backtracer would run after a target aborts
# with a finding, and trip ASan; libFuzzer and ASan report crashes already.
export SWIFT_BACKTRACE=enable=no
SEED=${FUZZ_SEED:-1}
OUT=.build-fuzz/fuzz
FLAGS=(-swift-version 6 -O -gline-tables-only -sanitize=fuzzer,address -parse-as-library)
mkdir -p "$OUT/findings"

# --- Build ------------------------------------------------------------------
# The library modules are the directories of Sources/ that hold Swift files
# but no executable (no main.swift, no @main): Common, or the modules it is
# split into. Each is compiled once, in the order their imports require, as a
# static library with -enable-testing (the targets reach internal API through
# @testable import), from a snapshot of the sources, so that edits made
# meanwhile cannot break or skew the build. They are rebuilt only when the
# sources, flags or compiler change; a target only when it or they change.
# A directory of C files with an include/ directory (CLogCRC) is a C module:
# compiled first, with clang and the same sanitizers, as a static library
# beside its headers and module map, which the Swift modules importing it and
# the targets see through -I.

build_start=$SECONDS
snapshot=$(mktemp -d)
trap 'rm -rf "$snapshot"' EXIT
modules=()
c_modules=()
for dir in "$SOURCES"/*/; do
    name=$(basename "$dir")
    if compgen -G "$dir*.c" > /dev/null && [[ -d $dir/include ]]; then
        mkdir -p "$snapshot/c/$name"
        cp -R "$dir". "$snapshot/c/$name/"
        c_modules+=("$name")
        continue
    fi
    compgen -G "$dir*.swift" > /dev/null || continue
    [[ -e $dir/main.swift ]] && continue
    grep -qs '^@main' "$dir"*.swift && continue
    mkdir -p "$snapshot/$name"
    cp "$dir"*.swift "$snapshot/$name/"
    modules+=("$name")
done
((${#modules[@]})) || die "no library sources under $SOURCES/"
# Dependency order: a module comes after every library module it imports.
ordered=()
remaining=("${modules[@]}")
while ((${#remaining[@]})); do
    next=()
    for m in "${remaining[@]}"; do
        ready=1
        for other in "${remaining[@]}"; do
            [[ $other == "$m" ]] && continue
            if grep -qsE "^(@testable |@_exported |public |package |internal )*import $other\b" "$snapshot/$m"/*.swift; then ready=0; fi
        done
        if ((ready)); then ordered+=("$m"); else next+=("$m"); fi
    done
    ((${#next[@]} < ${#remaining[@]})) || die "library modules import each other in a cycle: ${next[*]}"
    remaining=("${next[@]}")
done
CC=${CC:-${SWIFTC%swiftc}clang}
C_FLAGS=(-O2 -gline-tables-only -fsanitize=fuzzer-no-link,address)
stamp=$( { "$SWIFTC" --version 2>&1; "$CC" --version 2>&1; echo "${FLAGS[*]} ${C_FLAGS[*]} ${ordered[*]} ${c_modules[*]}"
           cat "$snapshot"/*/*.swift; if ((${#c_modules[@]})); then find "$snapshot/c" -type f | sort | xargs cat; fi
         } | sha256sum | cut -c1-16)
if [[ ! -f $OUT/lib/stamp || $(cat "$OUT/lib/stamp") != "$stamp" ]]; then
    rm -rf "$OUT/lib.new" && mkdir -p "$OUT/lib.new"
    for m in "${c_modules[@]}"; do
        echo "building $m (C) for fuzzing..."
        mkdir -p "$OUT/lib.new/$m"
        cp -R "$snapshot/c/$m/include/." "$OUT/lib.new/$m/"
        for c in "$snapshot/c/$m"/*.c; do
            "$CC" "${C_FLAGS[@]}" -I "$snapshot/c/$m/include" -c "$c" -o "$OUT/lib.new/$m/$(basename "$c" .c).o" \
                || die "building $m failed"
        done
        ar rcs "$OUT/lib.new/lib$m.a" "$OUT/lib.new/$m"/*.o
    done
    c_includes=()
    for m in "${c_modules[@]}"; do c_includes+=(-I "$OUT/lib.new/$m"); done
    for m in "${ordered[@]}"; do
        echo "building $m for fuzzing ($(ls "$snapshot/$m" | wc -l) files)..."
        "$SWIFTC" "${FLAGS[@]}" -suppress-warnings -enable-testing -package-name logkit -module-name "$m" -I "$OUT/lib.new" "${c_includes[@]}" \
            -emit-module -emit-module-path "$OUT/lib.new/$m.swiftmodule" \
            -emit-library -static -o "$OUT/lib.new/lib$m.a" "$snapshot/$m"/*.swift \
            || die "building $m failed"
    done
    echo "${ordered[*]}" > "$OUT/lib.new/modules"
    echo "${c_modules[*]}" > "$OUT/lib.new/c-modules"
    echo "$stamp" > "$OUT/lib.new/stamp"
    rm -rf "$OUT/lib" && mv "$OUT/lib.new" "$OUT/lib"
fi
libraries=()
for m in $(cat "$OUT/lib/modules"); do libraries+=("-l$m"); done
# After the Swift libraries, which the static linker must have seen first.
for m in $(cat "$OUT/lib/c-modules"); do libraries+=(-I "$OUT/lib/$m" "-l$m"); done
# The targets build two at a time (FUZZ_JOBS).
# A target's `// Shared: NAME` lines name files of Fuzz/shared/ it is built with.
shared_of() { sed -n 's|^// Shared: \(.*\)$|Fuzz/shared/\1.swift|p' "Fuzz/targets/$1.swift"; }
build_target() {
    local t=$1 tstamp=$2
    local shared
    mapfile -t shared < <(shared_of "$t")
    "$SWIFTC" "${FLAGS[@]}" -enable-experimental-feature Extern -package-name logkit -use-ld=lld \
        -I "$OUT/lib" -L "$OUT/lib" "${libraries[@]}" "Fuzz/targets/$t.swift" "${shared[@]}" -o "$OUT/bin/$t" \
        > "$OUT/bin/$t.log" 2>&1 && echo "$tstamp" > "$OUT/bin/$t.stamp"
}
mkdir -p "$OUT/bin"
pids=()
names=()
for t in "${targets[@]}"; do
    tstamp=$( { cat "$OUT/lib/stamp"; cat "Fuzz/targets/$t.swift" $(shared_of "$t"); } | sha256sum | cut -c1-16)
    if [[ ! -x $OUT/bin/$t || ! -f $OUT/bin/$t.stamp || $(cat "$OUT/bin/$t.stamp") != "$tstamp" ]]; then
        echo "building $t..."
        rm -f "$OUT/bin/$t.stamp"
        while (($(jobs -rp | wc -l) >= ${FUZZ_JOBS:-2})); do wait -n || true; done
        build_target "$t" "$tstamp" &
        pids+=($!)
        names+=("$t")
    fi
done
for n in "${!pids[@]}"; do
    if ! wait "${pids[$n]}"; then
        cat "$OUT/bin/${names[$n]}.log" >&2
        die "building ${names[$n]} failed"
    fi
done
echo "build: $((SECONDS - build_start)) s (library modules: $(cat "$OUT/lib/modules"); snapshot $(cat "$OUT/lib/stamp"))"
((build_only)) && exit 0

# --- Run --------------------------------------------------------------------

max_len() {
    case $1 in
        *) echo 2048 ;;
    esac
}

# Work directories (libFuzzer writes every new input) in memory if possible.
WORK=${TMPDIR:-/tmp}
[[ -d /dev/shm && -w /dev/shm ]] && WORK=/dev/shm
passed=0
failed=0
interrupted=0
total=0
for t in "${targets[@]}"; do
    work=$(mktemp -d "$WORK/logkit-fuzz-$t.XXXXXX")
    mkdir -p "$work/corpus" "$work/artifacts"
    if [[ -d Fuzz/corpus/$t ]]; then cp -R "Fuzz/corpus/$t/." "$work/corpus/"; fi
    if [[ $mode == runs ]]; then limit=(-runs="$amount"); else limit=(-max_total_time="$amount"); fi
    start=$SECONDS
    set +e
    # shellcheck disable=SC2086
    "$OUT/bin/$t" "${limit[@]}" -seed="$SEED" -max_len="$(max_len "$t")" -timeout=20 \
        -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$work/artifacts/" \
        ${FUZZ_ARGS:-} "$work/corpus" > "$work/log" 2>&1
    status=$?
    set -e
    elapsed=$((SECONDS - start))
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/log" | tail -1)
    if [[ -z $execs ]]; then execs=$(sed -n 's/^Done \([0-9]*\) runs.*/\1/p' "$work/log" | tail -1); fi
    execs=${execs:-0}
    total=$((total + execs))
    found=$(find "$work/artifacts" -type f | head -1)
    if [[ $status -eq 0 && -z $found ]]; then
        passed=$((passed + 1))
        echo "$t: $execs executions in ${elapsed} s, nothing found"
    elif [[ -z $found ]] && grep -q 'libFuzzer: run interrupted' "$work/log"; then
        interrupted=$((interrupted + 1))
        echo "$t: INTERRUPTED by a signal after $execs executions in ${elapsed} s, nothing found"
    else
        failed=$((failed + 1))
        echo "$t: FOUND something after $execs executions in ${elapsed} s (libFuzzer exit $status)"
        reason=$(awk '/^logkit-fuzz: invariant/ { p = 1; print; next } p && /^  / { print; next } { p = 0 }' "$work/log")
        [[ -n $reason ]] || reason=$(grep -m1 -E 'ERROR: (AddressSanitizer|libFuzzer)|Fatal error|SUMMARY' "$work/log" || true)
        [[ -n $reason ]] && echo "$reason" | sed 's/^/  /'
        # Where in the library it happened: the first frame in its sources.
        frame=$(grep -m1 -E ' in .* /[^ ]*/(Log[A-Za-z]*|Common)/[A-Za-z]+\.swift:[0-9]+' "$work/log" || true)
        if [[ -n $frame ]]; then
            symbol=$(sed -E 's/.* in ([^ ]+) .*/\1/' <<< "$frame")
            symbol=$("${SWIFTC%swiftc}swift-demangle" --simplified --compact "$symbol" 2> /dev/null || echo "$symbol")
            echo "  at $(sed -E 's#.*/((Log[A-Za-z]*|Common)/[A-Za-z]+\.swift:[0-9]+).*#\1#' <<< "$frame"): $symbol"
        fi 
        if [[ -n $found ]]; then
            mkdir -p "$OUT/findings/$t"
            cp "$found" "$OUT/findings/$t/"
            echo "  input: $OUT/findings/$t/${found##*/}  (replay: $OUT/bin/$t $OUT/findings/$t/${found##*/})"
        fi
        echo "  log: last lines"
        tail -n 25 "$work/log" | sed 's/^/    /'
    fi
    if [[ ${FUZZ_KEEP:-0} == 1 ]]; then echo "  kept: $work"; else rm -rf "$work"; fi
done
echo "total: $total executions"
echo "$passed passed, $((failed + interrupted)) failed"
((failed == 0)) || exit 1
((interrupted == 0)) || exit 2
