#!/usr/bin/env bash
# libFuzzer over ryze-events (Tests/fuzz/README.md):
#
#   deploy/fuzz.sh build               build every fuzz target (AddressSanitizer + libFuzzer)
#   deploy/fuzz.sh TARGET SECONDS      build if needed, then fuzz TARGET for SECONDS
#   deploy/fuzz.sh all SECONDS         each target in turn, SECONDS each
#   deploy/fuzz.sh TARGET -- FLAGS...  libFuzzer with your own flags (e.g. an artifact to replay)
#
# TARGET: json, request, logrecord, queuerecord, webhookurl, rawjson. A crash, a leak, a failed
# invariant or an input that takes over 1 s fails the run (non-zero exit); the input is saved
# under $FUZZ_OUT (.build-fuzz/artifacts) and printed in hex, so that a CI log alone is enough to
# reproduce it. Inputs found interesting accumulate in $FUZZ_CORPUS/TARGET
# (.build-fuzz/corpus/TARGET), so that local runs build on each other; the committed seeds
# (Tests/fuzz/corpus/TARGET) and every input that ever failed (Tests/fuzz/regressions/TARGET)
# are read at the start of every run. Each run appends a line to $FUZZ_OUT/runs.log.
set -euo pipefail
cd "$(dirname "$0")/.."

TARGETS=(json request logrecord queuerecord webhookurl rawjson)
# A failed invariant is a Swift fatalError: let libFuzzer's handler report it (stack, saved input)
# at once, rather than Swift's backtracer, which under AddressSanitizer trips over the sanitizer's
# stack poisoning and can leave a swift-backtrace process waiting behind.
export SWIFT_BACKTRACE=enable=no
SCRATCH=${FUZZ_SCRATCH:-.build-fuzz}
OUT=${FUZZ_OUT:-$SCRATCH/artifacts}
CORPUS=${FUZZ_CORPUS:-$SCRATCH/corpus}

usage() { sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

build() {
    # Release: the targets run two to three times faster than at -Onone (measured: json 45,000
    # inputs/s against 22,600, request 650 against 210) for about 30% more build CPU time.
    # -enable-testing lets a target reach internal API (RawJSON) through @testable import.
    # The status of swift build itself decides: binaries of an earlier build may be there.
    mkdir -p "$SCRATCH"
    local log="$SCRATCH/build.log"
    if ! swift build --package-path Tests/fuzz --scratch-path "$SCRATCH" -c release \
            -Xswiftc -sanitize=fuzzer,address -Xswiftc -enable-testing >"$log" 2>&1; then
        grep -E "error:" -A 3 "$log" | head -n 40 >&2 || true
        tail -n 5 "$log" >&2
        echo "fuzz build failed; full log: $log" >&2
        exit 1
    fi
    grep -E "^Build complete" "$log" || tail -n 1 "$log"
}

# The largest input libFuzzer makes for a target, and its dictionary.
max_len() { case "$1" in request) echo 8192 ;; *) echo 4096 ;; esac; }
dict() { case "$1" in json) echo Tests/fuzz/dict/json.dict ;; rawjson) echo Tests/fuzz/dict/rawjson.dict ;;
                      request) echo Tests/fuzz/dict/request.dict ;; webhookurl) echo Tests/fuzz/dict/webhookurl.dict ;; esac; }
# Read-only seed folders beyond the target's own: the JSON conformance cases for the JSON targets.
extra_seeds() { case "$1" in json|rawjson) echo Tests/JSONTestSuite/test_parsing ;; esac; }

run() {
    local target=$1 seconds=$2
    local bin="$SCRATCH/release/fuzz-$target"
    [ -x "$bin" ] || build
    mkdir -p "$OUT" "$CORPUS/$target" "Tests/fuzz/regressions/$target"
    local flags=(-max_total_time="$seconds" -timeout=1 -rss_limit_mb=2048 -max_len="$(max_len "$target")"
                 -artifact_prefix="$OUT/$target-" -print_final_stats=1)
    local d; d=$(dict "$target"); [ -n "$d" ] && flags+=(-dict="$d")
    local log="$OUT/$target.log"
    echo "== fuzz $target for ${seconds}s"
    local status=0
    # The first folder receives what libFuzzer finds; the others are only read.
    # shellcheck disable=SC2046
    "$bin" "${flags[@]}" "$CORPUS/$target" "Tests/fuzz/corpus/$target" "Tests/fuzz/regressions/$target" \
        $(extra_seeds "$target") >"$log" 2>&1 || status=$?
    local execs rate
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
    echo "$(date -u +%FT%TZ) $target seconds=$seconds execs=${execs:-?} exec_per_sec=${rate:-?} status=$status" >>"$OUT/runs.log"
    if [ "$status" -ne 0 ]; then
        grep -E "ERROR|SUMMARY|Fatal error|invariant|Test unit written|==[0-9]+==" "$log" | head -n 40 >&2 || true
        local artifact
        artifact=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n 1)
        if [ -n "$artifact" ] && [ -f "$artifact" ]; then
            echo "failing input ($(wc -c <"$artifact") bytes) saved as $artifact; as hex:" >&2
            head -c 4096 "$artifact" | od -An -v -tx1 >&2
            echo "replay: deploy/fuzz.sh $target -- $artifact" >&2
        fi
        echo "fuzz $target FAILED (exit $status); full log: $log" >&2
        return 1
    fi
    echo "   ok: ${execs:-?} inputs, ${rate:-?}/s, corpus $(find "$CORPUS/$target" -type f | wc -l) files"
}

[ $# -ge 1 ] || usage
case "$1" in
    build) build ;;
    all)
        [ $# -eq 2 ] || usage
        build
        failed=0
        for t in "${TARGETS[@]}"; do run "$t" "$2" || failed=1; done
        exit $failed ;;
    *)
        printf '%s\n' "${TARGETS[@]}" | grep -qx "$1" || usage
        if [ "${2:-}" = "--" ]; then
            bin="$SCRATCH/release/fuzz-$1"
            [ -x "$bin" ] || build
            shift 2
            exec "$bin" "$@"
        fi
        [ $# -eq 2 ] || usage
        run "$1" "$2" ;;
esac
