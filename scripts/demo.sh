#!/usr/bin/env bash
# The main job: serve the default model, send one chat request that fits and one that
# overflows the window, print both answers with their headroom objects, stop the server.
set -euo pipefail
cd "$(dirname "$0")/.."
HR=${HEADROOM_BIN:-build/release/headroom}
ASSETS=${HEADROOM_ASSETS:-../shared}
MODEL=${MODEL:-$ASSETS/models/stories260K.gguf}
work=$(mktemp -d "${TMPDIR:-/tmp}/headroom-demo-XXXXXX")
server_pid=
cleanup() {
    [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

if [ ! -e "$MODEL" ]; then
    echo "demo: $MODEL is not here; using a synthetic tiny model with random weights instead (its text is noise)"
    MODEL="$work/tiny.gguf"
    "$HR" synth --preset tiny --ctx 512 -o "$MODEL" 2>/dev/null
fi

"$HR" serve -m "$MODEL" --port 0 --policy reject 2>"$work/serve.log" &
server_pid=$!
for _ in $(seq 100); do
    grep -q "listening on" "$work/serve.log" 2>/dev/null && break
    sleep 0.1
done
url=$(sed -nE 's/.*listening on (http[^ ]*)$/\1/p' "$work/serve.log")
if [ -z "$url" ]; then
    echo "demo: the server did not start:" >&2
    cat "$work/serve.log" >&2
    exit 1
fi
sed -n '1p' "$work/serve.log"

ask() {
    local title=$1 body=$2
    echo
    echo "== $title"
    echo "POST $url/chat/completions $body"
    curl -s "$url/chat/completions" -H 'Content-Type: application/json' -d "$body" |
        jq '{answer: (.choices[0].message.content // null), finish_reason: (.choices[0].finish_reason // null), usage, headroom, error}
            | with_entries(select(.value != null))'
}

ask "a request that fits" \
    '{"messages":[{"role":"user","content":"Once upon a time"}],"max_tokens":48,"temperature":0}'
ask "a request that overflows the 512-token window (policy reject)" \
    '{"messages":[{"role":"user","content":"Once upon a time"}],"max_tokens":1000,"temperature":0}'
ask "the same request with context_policy clamp: the output is clamped to the room" \
    '{"messages":[{"role":"user","content":"Once upon a time"}],"max_tokens":1000,"temperature":0,"context_policy":"clamp"}'
echo
echo "server stopped."
