#!/usr/bin/env bash
# Sources every tests/cli/test_*.sh into one shell and runs each function named test_*
# (only those matching the regex HEADROOM_TEST_FILTER when it is set).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"
for f in "$here"/test_*.sh; do
    [ -e "$f" ] || continue
    source "$f"
done
for t in $(declare -F | awk '{print $3}' | grep '^test_' | grep -E -- "${HEADROOM_TEST_FILTER:-.}" | sort); do
    "$t"
done
cli_summary
[ "$cli_fail" -eq 0 ]
