#!/usr/bin/env bash
# Runs every test: the unit tests under the release and the ASan/UBSan builds, then the
# CLI tests (tests/cli/*.sh) against both binaries, then the unit tests and the server's
# threaded tests under ThreadSanitizer. Ends with "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."
export HEADROOM_ASSETS="${HEADROOM_ASSETS:-../shared}"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"

total_pass=0
total_fail=0
total_skip=0

# Runs one suite, echoing its output, and adds its closing counts to the totals.
run_suite() {
    local label=$1
    shift
    echo "== $label"
    local out rc
    out=$("$@" 2>&1)
    rc=$?
    echo "$out"
    local summary
    summary=$(echo "$out" | grep -E '^[0-9]+ passed, [0-9]+ failed' | tail -n 1)
    if [ -z "$summary" ]; then
        echo "FAIL $label: suite ended without a summary (exit $rc)"
        total_fail=$((total_fail + 1))
        return
    fi
    local p f s
    p=$(echo "$summary" | sed -E 's/^([0-9]+) passed.*/\1/')
    f=$(echo "$summary" | sed -E 's/^[0-9]+ passed, ([0-9]+) failed.*/\1/')
    s=$(echo "$summary" | sed -nE 's/.*, ([0-9]+) skipped.*/\1/p')
    total_pass=$((total_pass + p))
    total_fail=$((total_fail + f))
    total_skip=$((total_skip + ${s:-0}))
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        echo "FAIL $label: exit status $rc with no failed test (crash?)"
        total_fail=$((total_fail + 1))
    fi
}

build=${BUILD:-build}
for flavour in release asan; do
    run_suite "unit tests ($flavour)" "$build/$flavour/test_unit"
    run_suite "cli tests ($flavour)" env HEADROOM_BIN="$build/$flavour/headroom" bash tests/cli/run_all.sh
done
# The unit tests once more under ThreadSanitizer: the engine, thread pool and template
# tests run threads; a race stops the run (no summary, so the suite fails). Then the
# server tests whose connection threads race the engine thread most (cancellations,
# shutdown, a full queue, streams) with the TSan binary: a report in the server's log
# fails the test that stops it. (The rest are too slow under TSan for their timeouts.)
run_suite "unit tests (tsan)" env TSAN_OPTIONS="halt_on_error=1" "$build/tsan/test_unit"
run_suite "cli tests (tsan: server threads)" env TSAN_OPTIONS="halt_on_error=0" HEADROOM_BIN="$build/tsan/headroom" \
    HEADROOM_TEST_FILTER="${HEADROOM_TEST_FILTER:-serve_(sigterm|stream_chunks|stop_strings|full_queue|stream_never)}" \
    bash tests/cli/run_all.sh

echo
if [ "$total_skip" -gt 0 ]; then
    echo "$total_pass passed, $total_fail failed, $total_skip skipped"
else
    echo "$total_pass passed, $total_fail failed"
fi
[ "$total_fail" -eq 0 ]
