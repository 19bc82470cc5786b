# tests/cli/lib.sh — helpers for the CLI tests, sourced by each tests/cli/test_*.sh.
# A test is a shell function; `pass`/`fail` record its outcome. HEADROOM_BIN is the binary
# under test; ASSETS is ../shared (or $HEADROOM_ASSETS).

HR=${HEADROOM_BIN:?HEADROOM_BIN must point at a headroom binary}
ASSETS=${HEADROOM_ASSETS:-../shared}
TMP=$(mktemp -d "${TMPDIR:-/tmp}/headroom-cli-XXXXXX")
trap 'rm -rf "$TMP"' EXIT
cli_pass=0
cli_fail=0
cli_skip=0

pass() { cli_pass=$((cli_pass + 1)); echo "ok   $1"; }
fail() { cli_fail=$((cli_fail + 1)); echo "FAIL $1"; shift; for line in "$@"; do echo "     $line"; done; }

# need_asset NAME PATH: true when the asset exists; otherwise reports a loud skip (or a
# failure under CI, where the assets must be present).
need_asset() {
    if [ -e "$ASSETS/$2" ]; then return 0; fi
    if [ -n "${CI:-}" ]; then
        fail "$1" "asset $ASSETS/$2 missing under CI"
    else
        cli_skip=$((cli_skip + 1))
        echo "SKIP $1 — skipped: no assets ($ASSETS/$2)"
    fi
    return 1
}

cli_summary() {
    if [ "$cli_skip" -gt 0 ]; then
        echo "$cli_pass passed, $cli_fail failed, $cli_skip skipped"
    else
        echo "$cli_pass passed, $cli_fail failed"
    fi
}
