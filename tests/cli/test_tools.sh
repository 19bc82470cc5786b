# CLI tests of `doctor`, `plan`, `probe` and `bench`. The live ones start `headroom serve`
# on stories260K (window 512) on a free loopback port; nothing is sent anywhere else.

# tools_serve NAME [serve flags]: starts a server; sets tools_url and tools_pid, or fails NAME.
tools_serve() {
    local name=$1
    shift
    tools_starts=$((${tools_starts:-0} + 1))
    # A fresh file per start: the background shell creates it only after the fork, and a
    # reused name could show the previous server's address in the meantime.
    tools_log="$TMP/serve-$name-$tools_starts.log"
    : >"$tools_log"
    "$HR" serve -m "$ASSETS/models/stories260K.gguf" --port 0 "$@" 2>"$tools_log" &
    tools_pid=$!
    for _ in $(seq 300); do
        grep -q "listening on" "$tools_log" 2>/dev/null && break
        kill -0 "$tools_pid" 2>/dev/null || break
        sleep 0.05
    done
    tools_url=$(sed -nE 's/.*listening on (http[^ ]*)$/\1/p' "$tools_log")
    [ -n "$tools_url" ] && return 0
    fail "$name" "serve did not start: $(cat "$tools_log")"
    tools_stop
    return 1
}

# tools_stop: stops the server started last; false when its log shows a sanitizer report.
tools_stop() {
    [ -n "${tools_pid:-}" ] && kill "$tools_pid" 2>/dev/null && wait "$tools_pid" 2>/dev/null
    tools_pid=
    ! grep -Eq "Sanitizer|runtime error" "$tools_log" 2>/dev/null
}

# tools_check DESCRIPTION COMMAND...: runs COMMAND; when it fails, DESCRIPTION joins tools_bad.
tools_check() {
    local what=$1
    shift
    "$@" || tools_bad+=("$what")
}

tools_finish() {
    local name=$1
    shift
    if [ ${#tools_bad[@]} -eq 0 ]; then pass "$name"; else fail "$name" "${tools_bad[@]}" "$@"; fi
}

tools_jq_is() { [ "$(jq -r "$2" "$1" 2>/dev/null)" = "$3" ]; }

# tools_usage MESSAGE ARGS...: headroom ARGS must exit 2 with MESSAGE on stderr.
tools_usage() {
    local want=$1
    shift
    "$HR" "$@" >/dev/null 2>"$TMP/e.txt"
    local rc=$?
    [ $rc -eq 2 ] && grep -q -- "$want" "$TMP/e.txt" || tools_bad+=("$* -> rc $rc: $(cat "$TMP/e.txt")")
}

test_tools_plan_gguf_kv_bytes_equal_the_formula() {
    local name=tools_plan_gguf_kv_bytes_equal_the_formula
    need_asset $name models/stories260K.gguf || return
    tools_bad=()
    local m="$ASSETS/models/stories260K.gguf"
    # 2 x 5 layers x 4 KV heads x 8 head dim x 4 bytes (f32)
    local want=$((2 * 5 * 4 * 8 * 4))
    "$HR" plan "$m" --kv-type f32 --mem 1G --json >"$TMP/plan.json" 2>"$TMP/plan.err"
    tools_check "rc $?" [ $? -eq 0 ]
    tools_check "f32 bytes/token" tools_jq_is "$TMP/plan.json" .kv_bytes_per_token "$want"
    tools_check "f16 bytes/token" tools_jq_is "$TMP/plan.json" .kv_bytes_per_token_by_type.f16 $((want / 2))
    tools_check "context" tools_jq_is "$TMP/plan.json" '.rows[-1].context' 512
    tools_check "KV per sequence" tools_jq_is "$TMP/plan.json" '.rows[-1].kv_bytes_per_sequence' $((want * 512))
    tools_check "layers" tools_jq_is "$TMP/plan.json" .model.layers 5
    "$HR" plan "$m" --kv-type f32 --mem 1G --prompt-tokens 400 >"$TMP/plan.txt"
    tools_check "text: bytes/token" grep -q "KV per token  $want B at f32 = 2 x 5 layers x 4 KV heads x 8 values x 4 B" "$TMP/plan.txt"
    tools_check "text: row 512" grep -Eq "^ +512 +640 KiB +112 " "$TMP/plan.txt"
    tools_finish $name "$(cat "$TMP/plan.err" "$TMP/plan.txt" 2>/dev/null)"
}

test_tools_plan_config_json_fixture() {
    local name=tools_plan_config_json_fixture
    tools_bad=()
    # Meta-Llama-3-8B's published config.json
    cat >"$TMP/config.json" <<'EOF'
{"architectures": ["LlamaForCausalLM"], "attention_bias": false, "bos_token_id": 128000, "eos_token_id": 128001,
 "hidden_act": "silu", "hidden_size": 4096, "initializer_range": 0.02, "intermediate_size": 14336,
 "max_position_embeddings": 8192, "model_type": "llama", "num_attention_heads": 32, "num_hidden_layers": 32,
 "num_key_value_heads": 8, "pretraining_tp": 1, "rms_norm_eps": 1e-05, "rope_scaling": null, "rope_theta": 500000.0,
 "tie_word_embeddings": false, "torch_dtype": "bfloat16", "transformers_version": "4.40.0.dev0", "use_cache": true,
 "vocab_size": 128256}
EOF
    "$HR" plan "$TMP/config.json" --kv-type f16 --mem 24G --json >"$TMP/cfg.json" 2>"$TMP/cfg.err"
    # 2 x 32 layers x 8 KV heads x 128 head dim x 2 bytes (f16)
    tools_check "f16 bytes/token" tools_jq_is "$TMP/cfg.json" .kv_bytes_per_token $((2 * 32 * 8 * 128 * 2))
    tools_check "parameters" tools_jq_is "$TMP/cfg.json" .parameters 8030261248
    tools_check "weights bf16" tools_jq_is "$TMP/cfg.json" .weights_bytes $((2 * 8030261248))
    tools_check "context" tools_jq_is "$TMP/cfg.json" .model.context_train 8192
    tools_check "8192 row" tools_jq_is "$TMP/cfg.json" '.rows[-1].kv_bytes_per_sequence' $((131072 * 8192))
    # The same model with Qwen-style YaRN added: effective context = original x factor.
    sed 's/"rope_scaling": null/"rope_scaling": {"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 8192}/' \
        "$TMP/config.json" >"$TMP/yarn.json"
    "$HR" plan "$TMP/yarn.json" --mem 24G --json >"$TMP/yarn.out" 2>>"$TMP/cfg.err"
    tools_check "yarn effective" tools_jq_is "$TMP/yarn.out" .model.effective_context 32768
    tools_check "yarn last row" tools_jq_is "$TMP/yarn.out" '.rows[-1].context' 32768
    "$HR" plan "$TMP/yarn.json" --mem 24G >"$TMP/yarn.txt"
    tools_check "yarn text" grep -q "RoPE scaling yarn x4 of 8192 -> 32768 positions" "$TMP/yarn.txt"
    echo '{"hidden_size": 64}' >"$TMP/broken.json"
    "$HR" plan "$TMP/broken.json" >/dev/null 2>"$TMP/broken.err"
    tools_check "missing field rc" [ $? -eq 1 ]
    tools_check "missing field message" grep -q 'lacks "num_hidden_layers"' "$TMP/broken.err"
    tools_finish $name "$(cat "$TMP/cfg.err" "$TMP/broken.err" 2>/dev/null)"
}

test_tools_plan_presets() {
    local name=tools_plan_presets
    tools_bad=()
    "$HR" plan --list-presets >"$TMP/presets.txt"
    local p
    for p in llama-3-8b llama-3.1-8b mistral-7b qwen2.5-7b tinyllama-1.1b; do
        tools_check "listed $p" grep -q "^  $p " "$TMP/presets.txt"
    done
    "$HR" plan --preset llama-3.1-8b --mem 24G --json >"$TMP/p.json"
    tools_check "json parses" jq -e . "$TMP/p.json" >/dev/null
    tools_check "f16 bytes/token" tools_jq_is "$TMP/p.json" .kv_bytes_per_token 131072
    tools_check "rope llama3" tools_jq_is "$TMP/p.json" '.model.rope_scaling | "\(.type) \(.factor) \(.original_context)"' "llama3 8 8192"
    tools_check "context 131072" tools_jq_is "$TMP/p.json" .model.context_train 131072
    tools_check "first row 4096" tools_jq_is "$TMP/p.json" '.rows[0].context' 4096
    tools_check "131072 does not fit 24G" tools_jq_is "$TMP/p.json" '.rows[-1].fits' false
    "$HR" plan --preset llama-3-8b --ctx 8192 --prompt-tokens 7000 --parallel 2 --mem 32G --json >"$TMP/p2.json"
    tools_check "max new 1192" tools_jq_is "$TMP/p2.json" '.rows[0].max_new_tokens' 1192
    tools_check "two sequences" tools_jq_is "$TMP/p2.json" '.rows[0].total_bytes' $((2 * 8030261248 + 2 * 131072 * 8192))
    "$HR" plan --preset mistral-7b --mem 24G >"$TMP/m.txt"
    tools_check "mistral sliding window" grep -q "window of 4096 tokens" "$TMP/m.txt"
    "$HR" plan --preset tinyllama-1.1b --kv-type q8_0 --mem 8G --json >"$TMP/t.json"
    # q8_0: 34 bytes per 32 values; 22 layers x 4 KV heads x 64 values
    tools_check "tinyllama q8_0" tools_jq_is "$TMP/t.json" .kv_bytes_per_token $((2 * 22 * 4 * 64 / 32 * 34))
    tools_finish $name
}

test_tools_doctor_names_the_binding_cap() {
    local name=tools_doctor_names_the_binding_cap
    need_asset $name models/stories260K.gguf || return
    tools_bad=()
    local m="$ASSETS/models/stories260K.gguf"
    "$HR" doctor "$m" --mem 1G >"$TMP/d0.txt" 2>&1
    tools_check "default rc" [ $? -eq 0 ]
    tools_check "trained context binds" grep -Eq "trained context +512 +llama.context_length.*<- binds" "$TMP/d0.txt"
    tools_check "pool of 4" grep -Eq "KV pool, one sequence +2048 +128 blocks x 16 tokens" "$TMP/d0.txt"
    tools_check "bytes/token" grep -q "KV per token   640 B at f16" "$TMP/d0.txt"
    tools_check "no problems" grep -q "no problems found" "$TMP/d0.txt"
    "$HR" doctor "$m" --ctx-size 256 --mem 1G >"$TMP/d1.txt" 2>&1
    tools_check "ctx-size binds" grep -Eq -- "--ctx-size +256 +given +<- binds" "$TMP/d1.txt"
    tools_check "window 256" grep -Eq "=> window +256" "$TMP/d1.txt"
    tools_check "trained does not bind" grep -Eq "trained context +512 +llama.context_length \(GGUF metadata\)$" "$TMP/d1.txt"
    "$HR" doctor "$m" --kv-mem 64K --mem 1G >"$TMP/d2.txt" 2>&1
    tools_check "pool binds" grep -Eq "KV pool, one sequence +96 +6 blocks x 16 tokens, from --kv-mem 65536 +<- binds" "$TMP/d2.txt"
    tools_check "window 96" grep -Eq "=> window +96" "$TMP/d2.txt"
    tools_check "pool advice" grep -q "the KV pool holds 96 tokens, fewer than the 512-token context" "$TMP/d2.txt"
    "$HR" doctor -m "$m" --lane-max 100 --port 8080 --threads 2 --mem 1G >"$TMP/d3.txt" 2>&1
    tools_check "lane binds" grep -Eq "gateway lane +100 +--lane-max +<- binds" "$TMP/d3.txt"
    "$HR" doctor "$m" --ctx-size 4096 --mem 1G >"$TMP/d4.txt" 2>&1
    tools_check "above trained context" grep -q "ctx-size 4096 is above the trained context 512 and the model has no RoPE scaling" "$TMP/d4.txt"
    "$HR" doctor "$m" --mem 1M >"$TMP/d5.txt" 2>&1
    tools_check "too little memory rc" [ $? -eq 1 ]
    tools_check "too little memory" grep -q "problem: weights + KV pool need" "$TMP/d5.txt"
    tools_check "q8_0 unusable for 8-wide heads" grep -q "(f16 640 B/token, q8_0 unusable)" "$TMP/d5.txt"
    "$HR" synth --preset tiny --type q8_0 -o "$TMP/tiny-doctor.gguf" 2>/dev/null
    "$HR" doctor "$TMP/tiny-doctor.gguf" --mem 1M --kv-type f32 >"$TMP/d8.txt" 2>&1
    tools_check "smaller KV types per token" grep -q "(f16 2.00 KiB/token, q8_0 1.06 KiB/token)" "$TMP/d8.txt"
    "$HR" doctor "$m" --kv-type q8_0 >"$TMP/d6.txt" 2>&1
    tools_check "q8_0 refused" grep -q "head size (8) to be a multiple of its block of 32" "$TMP/d6.txt"
    "$HR" doctor "$TMP/nonexistent.gguf" >"$TMP/d7.txt" 2>&1
    tools_check "missing model rc" [ $? -eq 1 ]
    tools_finish $name "$(cat "$TMP/d1.txt" "$TMP/d2.txt")"
}

test_tools_doctor_url_agrees_with_serve() {
    local name=tools_doctor_url_agrees_with_serve
    need_asset $name models/stories260K.gguf || return
    tools_bad=()
    "$HR" doctor "$ASSETS/models/stories260K.gguf" --kv-mem 64K --mem 1G >"$TMP/du0.txt" 2>&1
    tools_serve $name --kv-mem 64K --policy reject || return
    tools_check "serve window 96" grep -q "window 96 tokens" "$tools_log"
    tools_check "doctor window 96" grep -Eq "=> window +96" "$TMP/du0.txt"
    "$HR" doctor --url "$tools_url" --mem 1G >"$TMP/du.txt" 2>&1
    tools_check "url rc" [ $? -eq 0 ]
    tools_check "advertised 96" grep -Eq "/v1/models window +96" "$TMP/du.txt"
    tools_check "probed 96" grep -Eq "=> probed window +96 .*largest prompt \+ max_tokens accepted: 96 tokens; over it the server refuses" "$TMP/du.txt"
    tools_stop || tools_bad+=("server log: $(grep -E "Sanitizer|runtime error" "$tools_log" | head -3)")
    tools_finish $name "$(cat "$TMP/du.txt")"
}

test_tools_probe_finds_the_window_under_reject() {
    local name=tools_probe_finds_the_window_under_reject
    need_asset $name models/stories260K.gguf || return
    tools_bad=()
    tools_serve $name --policy reject || return
    "$HR" probe "$tools_url" >"$TMP/pr.txt" 2>"$TMP/pr.err"
    tools_check "rc" [ $? -eq 0 ]
    tools_check "result 512" grep -q "result           largest prompt + max_tokens accepted: 512 tokens; over it the server refuses" "$TMP/pr.txt"
    tools_check "prompt boundary" grep -q "a 511-token prompt is accepted, 512 refused" "$TMP/pr.txt"
    tools_check "boundary error text" grep -q "HTTP 400 context_length_exceeded: this request needs 513 tokens (512 prompt + 1 to generate) but the window is 512" "$TMP/pr.txt"
    tools_check "no silent clamping" grep -q "silent clamping  no" "$TMP/pr.txt"
    "$HR" probe "${tools_url%/v1}" --json >"$TMP/pr.json" 2>>"$TMP/pr.err"
    tools_check "json total 512" tools_jq_is "$TMP/pr.json" .total_accepted 512
    tools_check "json max_tokens boundary" tools_jq_is "$TMP/pr.json" '"\(.max_tokens.prompt)+\(.max_tokens.accepted)"' "495+17"
    tools_check "bounded" jq -e '.requests <= 40' "$TMP/pr.json" >/dev/null
    "$HR" probe "$tools_url" --max-requests 4 >"$TMP/pr4.txt" 2>&1
    tools_check "budget rc 1" [ $? -eq 1 ]
    tools_check "budget stop" grep -q "used all 4 requests" "$TMP/pr4.txt"
    tools_stop || tools_bad+=("server log: $(grep -E "Sanitizer|runtime error" "$tools_log" | head -3)")
    # Another window, and a prompt cap below it (--min-room): not a number the probe assumes.
    tools_serve $name --ctx-size 300 --min-room 50 || return
    "$HR" probe "$tools_url" --json >"$TMP/pr300.json" 2>>"$TMP/pr.err"
    tools_check "ctx 300 total" tools_jq_is "$TMP/pr300.json" .total_accepted 300
    tools_check "min-room prompt cap" tools_jq_is "$TMP/pr300.json" .prompt.accepted 250
    tools_stop || tools_bad+=("server log: $(grep -E "Sanitizer|runtime error" "$tools_log" | head -3)")
    tools_finish $name "$(cat "$TMP/pr.txt" "$TMP/pr.err")"
}

test_tools_probe_reports_silent_clamping() {
    local name=tools_probe_reports_silent_clamping
    need_asset $name models/stories260K.gguf || return
    tools_bad=()
    tools_serve $name --policy clamp || return
    "$HR" probe "$tools_url/" >"$TMP/pc.txt" 2>"$TMP/pc.err"
    tools_check "rc" [ $? -eq 0 ]
    tools_check "clamping yes" grep -q "silent clamping  yes" "$TMP/pc.txt"
    tools_check "granted" grep -q "the headroom object reports max_tokens_granted 17 of 33" "$TMP/pc.txt"
    tools_check "window 512" grep -q "largest prompt + max_tokens accepted: 512 tokens; over it the server clamps" "$TMP/pc.txt"
    tools_stop || tools_bad+=("server log: $(grep -E "Sanitizer|runtime error" "$tools_log" | head -3)")
    tools_finish $name "$(cat "$TMP/pc.txt" "$TMP/pc.err")"
}

# bench_args: 40 requests, a quarter built over the window, the rest well inside it.
tools_bench_args=(--requests 40 --concurrency 4 --overflow-share 0.25 --prompt-tokens 16..64 --max-tokens 8..32 --seed 7)

test_tools_bench_counts_rejections_under_reject() {
    local name=tools_bench_counts_rejections_under_reject
    need_asset $name models/stories260K.gguf || return
    tools_bad=()
    tools_serve $name --policy reject || return
    "$HR" bench "$tools_url" "${tools_bench_args[@]}" --stream --json "$TMP/br.json" >"$TMP/br.txt" 2>"$TMP/br.err"
    tools_check "rc 0" [ $? -eq 0 ]
    tools_check "30 x 200" tools_jq_is "$TMP/br.json" '.status["200"]' 30
    tools_check "10 x 400" tools_jq_is "$TMP/br.json" '.status["400"]' 10
    tools_check "10 context_length_exceeded" tools_jq_is "$TMP/br.json" .error_codes.context_length_exceeded 10
    tools_check "10 planned over" tools_jq_is "$TMP/br.json" .planned_over_window 10
    tools_check "no 5xx" tools_jq_is "$TMP/br.json" '[.status | to_entries[] | select(.key | startswith("5"))] | length' 0
    tools_check "no failures" tools_jq_is "$TMP/br.json" '"\(.server_errors) \(.connection_errors) \(.unexplained)"' "0 0 0"
    tools_check "ttft measured" tools_jq_is "$TMP/br.json" .ttft_ms.count 30
    tools_check "summary" grep -q "result: ok" "$TMP/br.txt"
    tools_check "no progress bar off a terminal" [ ! -s "$TMP/br.err" ]
    # A window it does not have: the refusals of requests "planned to fit" are unexplained.
    "$HR" bench "$tools_url" --requests 6 --window 2000 --prompt-tokens 600 --max-tokens 4 >"$TMP/bu.txt" 2>&1
    tools_check "unexplained rc 1" [ $? -eq 1 ]
    tools_check "unexplained note" grep -q "refused a request that fits the 2000-token window" "$TMP/bu.txt"
    tools_stop || tools_bad+=("server log: $(grep -E "Sanitizer|runtime error" "$tools_log" | head -3)")
    tools_finish $name "$(cat "$TMP/br.txt" "$TMP/br.err")"
}

test_tools_bench_counts_clamps_under_clamp() {
    local name=tools_bench_counts_clamps_under_clamp
    need_asset $name models/stories260K.gguf || return
    tools_bad=()
    tools_serve $name --policy clamp || return
    "$HR" bench "$tools_url" "${tools_bench_args[@]}" --json - >"$TMP/bc.json" 2>"$TMP/bc.txt"
    tools_check "rc 0" [ $? -eq 0 ]
    tools_check "40 x 200" tools_jq_is "$TMP/bc.json" '.status["200"]' 40
    tools_check "10 clamped" tools_jq_is "$TMP/bc.json" .clamped 10
    tools_check "no rejections" tools_jq_is "$TMP/bc.json" '.error_codes | length' 0
    tools_check "no failures" tools_jq_is "$TMP/bc.json" .failures 0
    tools_check "e2e measured" tools_jq_is "$TMP/bc.json" .e2e_ms.count 40
    tools_check "report on stderr" grep -q "clamped                        10" "$TMP/bc.txt"
    # Soak: a line per interval, and alerts when room falls below the threshold.
    "$HR" bench "$tools_url" --soak --duration 1.5 --interval 0.5 --alert-room 400 --prompt-tokens 100..300 \
        --max-tokens 4..16 --json "$TMP/bs.json" >"$TMP/bs.txt" 2>&1
    tools_check "soak rc 0" [ $? -eq 0 ]
    tools_check "soak lines" [ "$(grep -c '^\[ *[0-9.]* s\] [0-9]* answered' "$TMP/bs.txt")" -ge 2 ]
    tools_check "soak alert" grep -q "^ALERT .*room fell to [0-9]* tokens, below --alert-room 400" "$TMP/bs.txt"
    tools_check "soak metrics" grep -q "server: KV [0-9]*% used" "$TMP/bs.txt"
    tools_check "soak json alerts" jq -e '.alerts > 0' "$TMP/bs.json" >/dev/null
    tools_stop || tools_bad+=("server log: $(grep -E "Sanitizer|runtime error" "$tools_log" | head -3)")
    tools_finish $name "$(cat "$TMP/bc.txt" "$TMP/bs.txt")"
}

test_tools_bench_refuses_non_loopback() {
    local name=tools_bench_refuses_non_loopback
    tools_bad=()
    local url
    for url in http://192.0.2.7:8000/v1 http://localhost.example.com:8000 "http://[2001:db8::1]:8000" https://api.example.com/v1; do
        "$HR" bench "$url" --requests 1 >"$TMP/nl.txt" 2>&1
        local rc=$?
        tools_check "$url rc $rc" [ $rc -eq 2 ]
        tools_check "$url message" grep -q "refusing to load-test .* is not a loopback address" "$TMP/nl.txt"
    done
    # Loopback with nothing listening: no answer is a failure, not a hang.
    "$HR" bench http://127.0.0.1:9/v1 --requests 1 --timeout 5 >"$TMP/nl2.txt" 2>&1
    tools_check "closed port rc 1" [ $? -eq 1 ]
    tools_finish $name "$(cat "$TMP/nl.txt" "$TMP/nl2.txt")"
}

# Absurd sizes saturate and read as too big; before, they wrapped around to "fits".
test_tools_absurd_sizes_never_fit() {
    local name=tools_absurd_sizes_never_fit
    tools_bad=()
    "$HR" plan --preset llama-3.1-8b --mem 24G --ctx 4294967296 --parallel 32768 >"$TMP/ab.txt" 2>&1
    tools_check "plan 2^32 x 32768: does not fit ($(tail -3 "$TMP/ab.txt"))" grep -q "does not fit" "$TMP/ab.txt"
    "$HR" plan --preset llama-3.1-8b --mem 24G --ctx 4294967296 --parallel 32768 --json >"$TMP/ab.json" 2>/dev/null
    tools_check "plan --json: fits false, total saturated" tools_jq_is "$TMP/ab.json" \
        '.rows[0] | .fits == false and .total_bytes == 9223372036854775807' true
    if [ -e "$ASSETS/models/stories260K.gguf" ]; then
        "$HR" doctor "$ASSETS/models/stories260K.gguf" --kv-mem 18446744073709551615 >"$TMP/dr.txt" 2>&1
        local rc=$?
        tools_check "doctor --kv-mem 2^64-1: rc $rc, does not fit ($(grep total "$TMP/dr.txt"))" \
            eval '[ $rc -eq 1 ] && grep -q "does NOT fit" "$TMP/dr.txt"'
    fi
    tools_usage "is not a size" doctor x.gguf --kv-mem " -1"
    tools_finish $name
}

# A server that answers with numbers no model has, or with a body that never ends: the
# clients neither overflow nor grow without bound.
test_tools_clients_survive_a_hostile_server() {
    local name=tools_clients_survive_a_hostile_server
    tools_bad=()
    cat >"$TMP/hostile.py" <<'PY'
import json, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
HUGE = 9223372036854775807
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def send_json(self, obj):
        body = json.dumps(obj).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def do_GET(self):
        if sys.argv[1] == "endless":
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            try:
                while True: self.wfile.write(b" " * 65536)
            except OSError: return
        self.send_json({"data": [{"id": "m", "context_window": HUGE}]})
    def do_POST(self):
        req = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        words = len(req["messages"][0]["content"].split())
        self.send_json({"choices": [{"index": 0, "message": {"role": "assistant", "content": "x"}, "finish_reason": "stop"}],
                        "usage": {"prompt_tokens": words + 1, "completion_tokens": HUGE, "total_tokens": HUGE}})
srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
print(srv.server_address[1], flush=True)
srv.serve_forever()
PY
    local mode port pid
    for mode in huge endless; do
        python3 "$TMP/hostile.py" $mode >"$TMP/hostile.port" 2>/dev/null &
        pid=$!
        for _ in $(seq 50); do [ -s "$TMP/hostile.port" ] && break; sleep 0.1; done
        port=$(cat "$TMP/hostile.port")
        timeout 60 "$HR" probe "http://127.0.0.1:$port" --timeout 30 >"$TMP/hp.txt" 2>&1
        local rc=$?
        tools_check "probe, $mode server: rc $rc (124 is a hang)" [ $rc -ne 124 ]
        tools_check "probe, $mode server: no sanitizer report" eval '! grep -qE "Sanitizer|runtime error" "$TMP/hp.txt"'
        [ $mode = endless ] && tools_check "probe, endless body: 'larger than 64 MiB' ($(tail -1 "$TMP/hp.txt"))" \
            grep -q "larger than 64 MiB" "$TMP/hp.txt"
        timeout 60 "$HR" bench "http://127.0.0.1:$port" --model m --requests 8 --overflow-share 0.5 --window 512 --timeout 20 >"$TMP/hb.txt" 2>&1
        rc=$?
        tools_check "bench, $mode server: rc $rc (124 is a hang)" [ $rc -ne 124 ]
        [ $mode = huge ] && tools_check "bench, huge numbers: the load ran ($(tail -2 "$TMP/hb.txt"))" grep -q "requests" "$TMP/hb.txt"
        tools_check "bench, $mode server: no sanitizer report" eval '! grep -qE "Sanitizer|runtime error" "$TMP/hb.txt"'
        kill $pid 2>/dev/null
        wait $pid 2>/dev/null
        : >"$TMP/hostile.port"
    done
    tools_finish $name "$(tail -n 3 "$TMP/hp.txt" "$TMP/hb.txt")"
}

test_tools_bad_flags_and_help() {
    local name=tools_bad_flags_and_help
    tools_bad=()
    local c
    for c in doctor plan probe bench; do
        "$HR" $c --help >"$TMP/h.txt" 2>&1
        tools_check "$c --help" grep -q "^usage: headroom $c" "$TMP/h.txt"
        "$HR" $c --bogus x >/dev/null 2>"$TMP/e.txt"
        local rc=$?
        tools_check "$c --bogus rc $rc" [ $rc -eq 2 ]
        tools_check "$c --bogus message" grep -q "headroom $c: unknown option '--bogus'" "$TMP/e.txt"
    done
    tools_usage "give one of MODEL.gguf, config.json or --preset NAME" plan
    tools_usage "unknown tensor type 'q9'" plan --preset llama-3-8b --kv-type q9
    tools_usage "unknown preset 'gpt-9'" plan --preset gpt-9
    tools_usage "is not a whole number from 1" plan --preset llama-3-8b --ctx 0
    tools_usage "is not a size" plan --preset llama-3-8b --mem lots
    tools_usage "--ctx needs a value" plan --preset llama-3-8b --ctx
    tools_usage "no model given" doctor
    tools_usage "unknown context policy 'maybe'" doctor x.gguf --policy maybe
    tools_usage "no URL given" probe
    tools_usage "is not an http:// or https:// URL" probe ftp://127.0.0.1/
    tools_usage "the port is not a number from 1 to 65535" probe http://127.0.0.1:0/
    tools_usage "--json: cannot write '/nonexistent/dir/x.json'" bench http://127.0.0.1:1 --requests 1 --json /nonexistent/dir/x.json
    tools_usage "is not a whole number from 4" probe http://127.0.0.1:1 --max-requests 1
    tools_usage "is not a whole number from 1" bench http://127.0.0.1:1 --concurrency 0
    tools_usage "is not a number from 0 to 1" bench http://127.0.0.1:1 --overflow-share 1.5
    tools_usage "--requests and --duration exclude each other" bench http://127.0.0.1:1 --requests 3 --duration 2
    tools_usage "--soak runs for a --duration" bench http://127.0.0.1:1 --soak
    tools_usage "the range is empty" bench http://127.0.0.1:1 --prompt-tokens 9..3
    tools_usage "is not N, A..B or @FILE" bench http://127.0.0.1:1 --max-tokens lots
    "$HR" plan "$TMP/no-such-config.json" >/dev/null 2>"$TMP/e.txt"
    tools_check "missing file rc 1" [ $? -eq 1 ]
    tools_finish $name
}
