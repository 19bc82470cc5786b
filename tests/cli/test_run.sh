# CLI tests of `headroom run`, `convert` and `synth`.

# Prompt tokens (BOS included) that `run` reports on stderr.
prompt_tokens_of() {
    "$HR" run "$@" -n 0 --temp 0 2>&1 >/dev/null | sed -nE 's/.*prompt ([0-9]+) tokens.*/\1/p'
}

# Runs every ref/llama2c case through the CLI and compares stdout byte for byte.
# run.c -n 256 prints 256 pieces after BOS, so the continuation is 257 - prompt tokens.
check_reference_cases() {
    local name=$1
    shift
    local bad=()
    for prompt_file in "$ASSETS"/ref/llama2c/case*.prompt; do
        local c=${prompt_file%.prompt}
        local prompt
        prompt=$(cat "$prompt_file")
        local n
        n=$(prompt_tokens_of "$@" -p "$prompt")
        if [ -z "$n" ]; then bad+=("$(basename "$c"): no prompt count on stderr"); continue; fi
        "$HR" run "$@" -p "$prompt" -n $((257 - n)) --temp 0 >"$TMP/out.txt" 2>"$TMP/err.txt"
        cmp -s "$TMP/out.txt" "$c.txt" || bad+=("$(basename "$c"): $(cmp "$TMP/out.txt" "$c.txt" 2>&1 | head -1)")
    done
    if [ ${#bad[@]} -eq 0 ]; then pass "$name"; else fail "$name" "${bad[@]}"; fi
}

test_run_gguf_matches_reference() {
    need_asset run_gguf_matches_reference models/stories260K.gguf || return
    check_reference_cases run_gguf_matches_reference -m "$ASSETS/models/stories260K.gguf"
}

test_run_llama2c_bin_matches_reference() {
    need_asset run_llama2c_bin_matches_reference models/stories260K.bin || return
    check_reference_cases run_llama2c_bin_matches_reference -m "$ASSETS/models/stories260K.bin" \
        --tokenizer "$ASSETS/models/tok512.bin"
}

test_run_readme_example_prints_reference_continuation() {
    local name=run_readme_example_prints_reference_continuation
    need_asset $name models/stories260K.gguf || return
    "$HR" run -m "$ASSETS/models/stories260K.gguf" -p "Once upon a time" -n 64 --temp 0 >"$TMP/out.txt" 2>"$TMP/err.txt"
    local got want
    got=$(cat "$TMP/out.txt")
    want=$(head -c ${#got} "$ASSETS/ref/llama2c/case1.txt")
    if [ ${#got} -gt 150 ] && [ "$got" = "$want" ] && grep -q "generated 64 tokens" "$TMP/err.txt"; then
        pass $name
    else
        fail $name "stdout: ${got:0:120}" "stderr: $(cat "$TMP/err.txt")"
    fi
}

test_run_clamps_to_the_window_and_reject_refuses() {
    local name=run_clamps_to_the_window_and_reject_refuses
    need_asset $name models/stories260K.gguf || return
    local m="$ASSETS/models/stories260K.gguf"
    "$HR" run -m "$m" -p "Once upon a time" -n 100000 --ctx-size 40 --temp 0 >"$TMP/out.txt" 2>"$TMP/err.txt"
    local rc1=$?
    "$HR" run -m "$m" -p "Once upon a time" -n 100 --ctx-size 40 --policy reject >"$TMP/out2.txt" 2>"$TMP/err2.txt"
    local rc2=$?
    if [ $rc1 -eq 0 ] && grep -q "clamped to 35: the window is 40 tokens and the prompt takes 5" "$TMP/err.txt" &&
        grep -Eq "generated 3[0-5] tokens" "$TMP/err.txt" && [ $rc2 -eq 1 ] &&
        grep -q "105 tokens (5 prompt + 100 to generate) but the window is 40" "$TMP/err2.txt"; then
        pass $name
    else
        fail $name "clamp rc=$rc1: $(cat "$TMP/err.txt")" "reject rc=$rc2: $(cat "$TMP/err2.txt")"
    fi
}

# The KV pool is written in full at start-up, so one larger than the machine is refused
# there, with the numbers, instead of being killed later.
test_run_refuses_a_kv_pool_larger_than_memory() {
    local name=run_refuses_a_kv_pool_larger_than_memory
    need_asset $name models/stories260K.gguf || return
    "$HR" run -m "$ASSETS/models/stories260K.gguf" -p "Once" -n 4 --kv-mem 1T >"$TMP/out.txt" 2>"$TMP/err.txt"
    local rc=$?
    if [ $rc -eq 1 ] && [ ! -s "$TMP/out.txt" ] &&
        grep -Eq "KV pool of 1048575 MiB \([0-9]+ blocks x 16 tokens\) is larger than this machine's memory \([0-9]+ MiB\)" "$TMP/err.txt"; then
        pass $name
    else
        fail $name "rc=$rc" "stderr: $(cat "$TMP/err.txt")"
    fi
}

test_run_bad_input_gets_clear_errors() {
    local name=run_bad_input_gets_clear_errors
    local bad=()
    "$HR" run >/dev/null 2>"$TMP/e1"; [ $? -eq 2 ] && grep -q "no model given" "$TMP/e1" || bad+=("no -m: $(cat "$TMP/e1")")
    "$HR" run -m /nonexistent.gguf >/dev/null 2>"$TMP/e2"; [ $? -eq 1 ] && grep -q "cannot open '/nonexistent.gguf'" "$TMP/e2" || bad+=("missing file: $(cat "$TMP/e2")")
    "$HR" run -m x -n -5 >/dev/null 2>"$TMP/e3"; [ $? -eq 2 ] && grep -q "not a whole number" "$TMP/e3" || bad+=("-n -5: $(cat "$TMP/e3")")
    "$HR" run -m x --temp nan >/dev/null 2>"$TMP/e4"; [ $? -eq 2 ] || bad+=("--temp nan: $(cat "$TMP/e4")")
    "$HR" run -m x --bogus >/dev/null 2>"$TMP/e5"; [ $? -eq 2 ] && grep -q "unknown option '--bogus'" "$TMP/e5" || bad+=("--bogus: $(cat "$TMP/e5")")
    printf 'GGUF\003\000\000\000garbage' >"$TMP/bad.gguf"
    "$HR" run -m "$TMP/bad.gguf" >/dev/null 2>"$TMP/e6"; [ $? -eq 1 ] && grep -q "at byte" "$TMP/e6" || bad+=("corrupt gguf: $(cat "$TMP/e6")")
    head -c 1000 /dev/urandom >"$TMP/bad.bin"
    "$HR" run -m "$TMP/bad.bin" --tokenizer "$TMP/bad.bin" >/dev/null 2>"$TMP/e7"; [ $? -eq 1 ] && grep -q "llama2.c checkpoint" "$TMP/e7" || bad+=("random .bin: $(cat "$TMP/e7")")
    "$HR" run --help | grep -q "usage: headroom run" || bad+=("--help")
    "$HR" --version | grep -q "^headroom [0-9]" || bad+=("--version")
    "$HR" frobnicate >/dev/null 2>"$TMP/e8"; [ $? -eq 2 ] && grep -q "unknown command 'frobnicate'" "$TMP/e8" || bad+=("unknown command")
    if [ ${#bad[@]} -eq 0 ]; then pass $name; else fail $name "${bad[@]}"; fi
}

# What an adversarial user found: a crash, hangs, unbounded reads, and writers that
# replaced devices and links.
test_files_that_are_not_plain_text_or_plain_files_get_clear_errors() {
    local name=files_that_are_not_plain_text_or_plain_files_get_clear_errors
    need_asset $name models/stories260K.gguf || return
    local bad=() m=$ASSETS/models/stories260K.gguf rc
    printf 'a\0b\nc\n' >"$TMP/nul.txt"
    "$HR" run -m "$m" --prompts "$TMP/nul.txt" -n 2 >/dev/null 2>"$TMP/e1"; rc=$?
    [ $rc -eq 1 ] && grep -q "NUL byte at offset 1" "$TMP/e1" || bad+=("--prompts with a NUL byte: rc $rc $(cat "$TMP/e1")")
    rm -f "$TMP/fifo" && mkfifo "$TMP/fifo"
    timeout 20 "$HR" run -m "$TMP/fifo" -p x >/dev/null 2>"$TMP/e2"; rc=$?
    [ $rc -eq 1 ] && grep -q "not a regular file" "$TMP/e2" || bad+=("-m FIFO: rc $rc (124 is a hang) $(cat "$TMP/e2")")
    timeout 20 "$HR" count -m "$m" --file /dev/zero >/dev/null 2>"$TMP/e3"; rc=$?
    [ $rc -ne 0 ] && [ $rc -ne 124 ] && grep -q "'/dev/zero' is not a file" "$TMP/e3" || bad+=("count --file /dev/zero: rc $rc $(cat "$TMP/e3")")
    printf 'Once upon a time' | "$HR" count -m "$m" --file /dev/stdin >"$TMP/o4" 2>"$TMP/e4" &&
        [ "$(cat "$TMP/o4")" = 5 ] || bad+=("count --file of a pipe: $(cat "$TMP/o4" "$TMP/e4")")
    # Writers replace regular files only; a link is written through and stays a link.
    "$HR" synth --preset tiny -o "$TMP" >/dev/null 2>"$TMP/e5"; rc=$?
    [ $rc -eq 2 ] && grep -q "is not a regular file; refusing" "$TMP/e5" || bad+=("synth -o DIR: rc $rc $(cat "$TMP/e5")")
    "$HR" synth --preset tiny -o /nonexistent/dir/x.gguf >/dev/null 2>"$TMP/e9"; rc=$?
    [ $rc -eq 2 ] && grep -q "cannot write" "$TMP/e9" && ! grep -q "tensors generated" "$TMP/e9" ||
        bad+=("synth -o into a missing directory: rc $rc, not refused before the work: $(cat "$TMP/e9")")
    "$HR" synth --preset tiny -o "$TMP/fifo" >/dev/null 2>"$TMP/e6"; rc=$?
    [ $rc -eq 2 ] && [ -p "$TMP/fifo" ] || bad+=("synth -o FIFO: rc $rc, $(ls -l "$TMP/fifo") $(cat "$TMP/e6")")
    rm -f "$TMP/link.gguf" "$TMP/target.gguf" && ln -s target.gguf "$TMP/link.gguf"
    "$HR" synth --preset tiny -o "$TMP/link.gguf" >/dev/null 2>"$TMP/e7"; rc=$?
    [ $rc -eq 0 ] && [ -L "$TMP/link.gguf" ] && [ -f "$TMP/target.gguf" ] || bad+=("synth -o LINK: rc $rc $(ls -l "$TMP"/link.gguf "$TMP"/target.gguf 2>&1) $(cat "$TMP/e7")")
    if [ -e "$ASSETS/models/stories260K.bin" ]; then
        cp "$ASSETS/models/stories260K.bin" "$TMP/in.bin"
        "$HR" convert "$TMP/in.bin" --tokenizer "$ASSETS/models/tok512.bin" -o "$TMP/in.bin" >/dev/null 2>"$TMP/e8"; rc=$?
        [ $rc -eq 2 ] && grep -q "is one of the inputs" "$TMP/e8" && cmp -s "$TMP/in.bin" "$ASSETS/models/stories260K.bin" ||
            bad+=("convert -o INPUT: rc $rc $(cat "$TMP/e8")")
    fi
    if [ ${#bad[@]} -eq 0 ]; then pass $name; else fail $name "${bad[@]}"; fi
}

test_convert_output_runs_like_the_reference() {
    local name=convert_output_runs_like_the_reference
    need_asset $name models/stories260K.bin || return
    if ! "$HR" convert "$ASSETS/models/stories260K.bin" --tokenizer "$ASSETS/models/tok512.bin" -o "$TMP/conv.gguf" 2>"$TMP/err.txt"; then
        fail $name "convert failed: $(cat "$TMP/err.txt")"
        return
    fi
    check_reference_cases $name -m "$TMP/conv.gguf"
}

test_convert_refuses_bad_arguments() {
    local name=convert_refuses_bad_arguments
    local bad=()
    "$HR" convert >/dev/null 2>&1; [ $? -eq 2 ] || bad+=("no args")
    "$HR" convert x.bin -o y.gguf --type q9_9 >/dev/null 2>"$TMP/e"; [ $? -eq 2 ] && grep -q "unknown tensor type 'q9_9'" "$TMP/e" || bad+=("--type q9_9: $(cat "$TMP/e")")
    if [ -e "$ASSETS/models/stories260K.gguf" ]; then
        "$HR" convert "$ASSETS/models/stories260K.gguf" -o "$TMP/x.gguf" >/dev/null 2>"$TMP/e2"; [ $? -eq 1 ] && grep -q "already a GGUF" "$TMP/e2" || bad+=("gguf input: $(cat "$TMP/e2")")
    fi
    if [ ${#bad[@]} -eq 0 ]; then pass $name; else fail $name "${bad[@]}"; fi
}

test_synth_tiny_models_load_and_run() {
    local name=synth_tiny_models_load_and_run
    local bad=()
    for type in f32 f16 bf16 q8_0 q4_0 q4_k q5_k q6_k q4_k_m; do
        if ! "$HR" synth --preset tiny --type $type --seed 7 -o "$TMP/tiny-$type.gguf" 2>"$TMP/e"; then
            bad+=("synth $type: $(cat "$TMP/e")")
            continue
        fi
        "$HR" run -m "$TMP/tiny-$type.gguf" -p "hello world" -n 8 --temp 0 >/dev/null 2>"$TMP/e" &&
            grep -q "generated" "$TMP/e" || bad+=("run $type: $(cat "$TMP/e")")
    done
    "$HR" synth --preset tiny --type f32 --seed 7 -o "$TMP/again.gguf" 2>/dev/null
    cmp -s "$TMP/tiny-f32.gguf" "$TMP/again.gguf" || bad+=("same seed gave different files")
    "$HR" synth --preset tiny --type q9 -o "$TMP/k.gguf" >/dev/null 2>"$TMP/e"; [ $? -eq 1 ] && grep -q "unknown tensor type 'q9'" "$TMP/e" || bad+=("--type q9: $(cat "$TMP/e")")
    "$HR" synth --preset huge -o "$TMP/h.gguf" >/dev/null 2>"$TMP/e"; [ $? -eq 2 ] && grep -q "unknown preset 'huge'" "$TMP/e" || bad+=("bad preset: $(cat "$TMP/e")")
    "$HR" synth --preset tiny --type q2_k -o "$TMP/k.gguf" >/dev/null 2>"$TMP/e"; [ $? -eq 1 ] && grep -q "does not write q2_k tensors" "$TMP/e" || bad+=("--type q2_k: $(cat "$TMP/e")")
    if [ ${#bad[@]} -eq 0 ]; then pass $name; else fail $name "${bad[@]}"; fi
}

test_synth_copies_a_real_vocabulary() {
    local name=synth_copies_a_real_vocabulary
    need_asset $name vocab/ggml-vocab-llama-spm.gguf || return
    if "$HR" synth --preset tiny --vocab "$ASSETS/vocab/ggml-vocab-llama-spm.gguf" -o "$TMP/v.gguf" 2>"$TMP/e" &&
        "$HR" run -m "$TMP/v.gguf" -p "Hello world" -n 4 --temp 0 >"$TMP/out" 2>"$TMP/e2" &&
        grep -q "prompt 3 tokens" "$TMP/e2" && grep -q "^Hello world" "$TMP/out"; then
        pass $name
    else
        fail $name "$(cat "$TMP/e" "$TMP/e2" 2>/dev/null)"
    fi
}

# Each prompt of a batch must continue exactly as it does alone (on stories260K, or on
# the model BATCH_MODEL names; BOTH_ARGS are options for both runs, the arguments after
# the name for the batch only).
check_batch_equals_alone() {
    local name=$1
    shift
    printf '%s\n' "Once upon a time" "The little dog" "Lily and Tom went to the park" "Tim said, \"Hello!\" and" \
        "One day, a big cat" "The sun was shining" "Sam had a red ball" "A bird sat on a tree" >"$TMP/prompts.txt"
    local m="${BATCH_MODEL:-$ASSETS/models/stories260K.gguf}"
    local both=()
    read -r -a both <<<"${BOTH_ARGS:-}"
    if ! "$HR" run -m "$m" --prompts "$TMP/prompts.txt" -n 40 --temp 0 "${both[@]}" "$@" >"$TMP/batch.jsonl" 2>"$TMP/batch.err"; then
        fail "$name" "batch run failed: $(cat "$TMP/batch.err")"
        return
    fi
    local bad=()
    local i=0
    while IFS= read -r prompt; do
        if [ -z "${BATCH_MODEL:-}" ]; then
            "$HR" run -m "$m" -p "$prompt" -n 40 --temp 0 "${both[@]}" >"$TMP/alone.txt" 2>/dev/null
        else
            # A random model's text need not be UTF-8, which JSON lines replace: compare
            # JSON with JSON, the prompt alone in a batch of one.
            printf '%s\n' "$prompt" >"$TMP/one.txt"
            "$HR" run -m "$m" --prompts "$TMP/one.txt" -n 40 --temp 0 "${both[@]}" 2>/dev/null |
                jq -j '.prompt + .text' >"$TMP/alone.txt"
        fi
        local got
        got=$(jq -j --argjson i "$i" --arg p "$prompt" \
            'select(.index == $i) | if .prompt == $p then .prompt + .text else "prompt mismatch" end' "$TMP/batch.jsonl")
        [ "$got" = "$(cat "$TMP/alone.txt")" ] || bad+=("prompt $i: batch '${got:0:60}' vs alone '$(head -c 60 "$TMP/alone.txt")'")
        i=$((i + 1))
    done <"$TMP/prompts.txt"
    [ "$(wc -l <"$TMP/batch.jsonl")" -eq 8 ] || bad+=("expected 8 JSON lines, got $(wc -l <"$TMP/batch.jsonl")")
    if [ ${#bad[@]} -eq 0 ]; then pass "$name"; else fail "$name" "${bad[@]}"; fi
}

test_run_prompts_batch_equals_each_alone() {
    need_asset run_prompts_batch_equals_each_alone models/stories260K.gguf || return
    check_batch_equals_alone run_prompts_batch_equals_each_alone --parallel 8
}

test_run_prompts_small_pool_preempts_and_output_is_unchanged() {
    local name=run_prompts_small_pool_preempts_and_output_is_unchanged
    need_asset $name models/stories260K.gguf || return
    # 20 blocks of 16 tokens (640 bytes per token for this model at f16) for 8 sequences of ~50 tokens
    check_batch_equals_alone $name --parallel 8 --kv-mem 204800
    grep -Eq "[1-9][0-9]* preemptions" "$TMP/batch.err" || fail "$name (preemption)" "no preemption reported: $(cat "$TMP/batch.err")"
}

test_run_truncate_cuts_the_prompt_from_the_left() {
    local name=run_truncate_cuts_the_prompt_from_the_left
    need_asset $name models/stories260K.gguf || return
    "$HR" run -m "$ASSETS/models/stories260K.gguf" -p "Once upon a time there was a dog and a cat and a bird" \
        -n 10 --ctx-size 12 --policy truncate --temp 0 >"$TMP/out" 2>"$TMP/err"
    local rc=$?
    if [ $rc -eq 0 ] && grep -q "cut from the left to 11 tokens" "$TMP/err" && grep -q "generated 1 tokens" "$TMP/err" &&
        grep -q "and a bird" "$TMP/out" && ! grep -q "Once upon" "$TMP/out"; then
        pass $name
    else
        fail $name "rc=$rc" "stdout: $(cat "$TMP/out")" "stderr: $(cat "$TMP/err")"
    fi
}

test_bench_model_reports_pp_tg_and_bandwidth() {
    local name=bench_model_reports_pp_tg_and_bandwidth
    need_asset $name models/stories260K.gguf || return
    "$HR" bench-model -m "$ASSETS/models/stories260K.gguf" -p 32 -n 16 -r 2 >"$TMP/out" 2>"$TMP/err"
    local rc=$?
    "$HR" bench-model -m "$ASSETS/models/stories260K.gguf" -p 500 -n 100 >/dev/null 2>"$TMP/err2"
    local rc2=$?
    # A llama2.c checkpoint, with its tokenizer as run takes it.
    local rc3=0
    if [ -e "$ASSETS/models/stories260K.bin" ]; then
        "$HR" bench-model -m "$ASSETS/models/stories260K.bin" --tokenizer "$ASSETS/models/tok512.bin" -p 16 -n 8 -r 1 >"$TMP/out3" 2>&1
        rc3=$?
        grep -Eq '^tg8 +[0-9.]+' "$TMP/out3" || rc3=99
    fi
    if [ $rc -eq 0 ] && grep -Eq '^pp32 +[0-9.]+ +[0-9.]+ +[0-9.]+' "$TMP/out" && grep -Eq '^tg16 +[0-9.]+' "$TMP/out" &&
        grep -q "GB/s achieved; machine read bandwidth" "$TMP/out" && [ $rc2 -eq 2 ] && grep -q "exceed the model's 512-token context" "$TMP/err2" &&
        [ $rc3 -eq 0 ]; then
        pass $name
    else
        fail $name "rc=$rc rc2=$rc2 rc3=$rc3" "$(cat "$TMP/out" "$TMP/err" "$TMP/err2" "$TMP/out3" 2>/dev/null)"
    fi
}

# --stages splits pp and tg steps into matmuls, attention and the rest: each row's
# stages add up to its ms/step (within the rounding of four printed values).
test_bench_model_stages_add_up_to_each_step() {
    local name=bench_model_stages_add_up_to_each_step
    need_asset $name models/stories260K.gguf || return
    "$HR" bench-model -m "$ASSETS/models/stories260K.gguf" -p 64 -n 32 -r 2 --stages >"$TMP/out" 2>"$TMP/err"
    local rc=$? rows
    rows=$(awk '/^stages +ms\/step +matmul ms +GFLOP\/s +attention ms +K\/V GB\/s +other ms/ { on = 1; next }
        on && ($1 == "pp64" || $1 == "tg32") && NF == 7 && $2 > 0 && $4 > 0 && $6 > 0 {
            d = $2 - ($3 + $5 + $7); if (d < 0) d = -d; if (d <= 0.021) n++ }
        END { print n + 0 }' "$TMP/out")
    if [ $rc -eq 0 ] && [ "$rows" = 2 ]; then
        pass $name
    else
        fail $name "rc=$rc rows=$rows" "$(cat "$TMP/out" "$TMP/err")"
    fi
}

# A 110m-shaped model (12 KV heads) for the tests of attention work items that span
# several heads; made once per test run.
many_kv_heads_model() {
    [ -s "$TMP/m110.gguf" ] && return 0
    "$HR" synth --preset 110m --type q8_0 --vocab "$ASSETS/models/stories260K.gguf" --ctx 256 -o "$TMP/m110.gguf" \
        2>"$TMP/synth.err"
}

# One sequence decoding on several threads reads runs of several KV heads per work item
# (items of 3 heads on 2 threads, 2 on 3): what it generates must not depend on the
# thread count.
test_run_many_kv_heads_unchanged_with_1_to_3_threads() {
    local name=run_many_kv_heads_unchanged_with_1_to_3_threads bad=() kv t
    need_asset $name models/stories260K.gguf || return
    many_kv_heads_model || { fail $name "synth failed" "$(cat "$TMP/synth.err")"; return; }
    for kv in f32 f16; do
        for t in 1 2 3; do
            "$HR" run -m "$TMP/m110.gguf" -p "Once upon a time" -n 40 --temp 0 -t $t --kv-type $kv \
                >"$TMP/out.$kv.$t" 2>"$TMP/err" || bad+=("-t $t --kv-type $kv failed: $(cat "$TMP/err")")
        done
        [ -s "$TMP/out.$kv.1" ] || bad+=("--kv-type $kv generated nothing")
        for t in 2 3; do
            cmp -s "$TMP/out.$kv.1" "$TMP/out.$kv.$t" || bad+=("--kv-type $kv: -t $t differs from -t 1")
        done
    done
    if [ ${#bad[@]} -eq 0 ]; then pass $name; else fail $name "${bad[@]}"; fi
}

# A few sequences decoding together take items of several heads each (4 sequences on
# 2 threads: 6 heads; as they finish, fewer): each must continue as it does alone.
test_run_many_kv_heads_batch_equals_each_alone() {
    local name=run_many_kv_heads_batch_equals_each_alone
    need_asset $name models/stories260K.gguf || return
    many_kv_heads_model || { fail $name "synth failed" "$(cat "$TMP/synth.err")"; return; }
    BATCH_MODEL="$TMP/m110.gguf" check_batch_equals_alone $name --parallel 4 -t 2
}

# Eight sequences decoding on 2 threads are tiles enough for decode_span's items: 4 of
# the 12 heads with f16 K/V, 6 with q8_0. Each must still continue as it does alone.
test_run_many_sequences_decode_span_equals_each_alone() {
    local name=run_many_sequences_decode_span_equals_each_alone kv
    need_asset $name models/stories260K.gguf || return
    many_kv_heads_model || { fail $name "synth failed" "$(cat "$TMP/synth.err")"; return; }
    for kv in f16 q8_0; do
        BATCH_MODEL="$TMP/m110.gguf" BOTH_ARGS="--kv-type $kv" check_batch_equals_alone "$name (--kv-type $kv)" --parallel 8 -t 2
    done
}

test_run_reference_unchanged_with_1_to_4_threads() {
    local name=run_reference_unchanged_with_1_to_4_threads
    need_asset $name models/stories260K.gguf || return
    local bad=() t c n prompt
    for c in case2 case4; do
        prompt=$(cat "$ASSETS/ref/llama2c/$c.prompt")
        n=$(prompt_tokens_of -m "$ASSETS/models/stories260K.gguf" -p "$prompt")
        for t in 1 2 3 4; do
            "$HR" run -m "$ASSETS/models/stories260K.gguf" -p "$prompt" -n $((257 - n)) --temp 0 -t $t >"$TMP/out.txt" 2>/dev/null
            cmp -s "$TMP/out.txt" "$ASSETS/ref/llama2c/$c.txt" || bad+=("$c with -t $t: $(cmp "$TMP/out.txt" "$ASSETS/ref/llama2c/$c.txt" 2>&1 | head -1)")
        done
    done
    if [ ${#bad[@]} -eq 0 ]; then pass $name; else fail $name "${bad[@]}"; fi
}

# RoPE scaling metadata as a user's file carries it: linear scaling changes what run
# samples (same seed), YaRN is refused with the key named, and synth checks its flag.
test_run_applies_linear_rope_scaling_and_refuses_yarn() {
    local name=run_applies_linear_rope_scaling_and_refuses_yarn bad=() kind out rc
    need_asset $name models/stories260K.gguf || return
    for kind in plain linear:2 yarn:4; do
        local flags=()
        [ $kind = plain ] || flags=(--rope-scaling $kind)
        "$HR" synth --preset tiny --vocab "$ASSETS/models/stories260K.gguf" --ctx 512 "${flags[@]}" \
            -o "$TMP/rope-${kind%%:*}.gguf" 2>"$TMP/synth.err" || bad+=("synth $kind failed: $(cat "$TMP/synth.err")")
    done
    for kind in plain linear; do
        "$HR" run -m "$TMP/rope-$kind.gguf" -p "Once upon a time there was" -n 40 --temp 1.5 --seed 3 \
            >"$TMP/rope-$kind.txt" 2>"$TMP/run.err" || bad+=("run on the $kind model failed: $(cat "$TMP/run.err")")
    done
    cmp -s "$TMP/rope-plain.txt" "$TMP/rope-linear.txt" && bad+=("linear scaling x2 left the sampled text unchanged")
    "$HR" doctor "$TMP/rope-linear.gguf" >"$TMP/doctor.txt" 2>&1
    grep -q "RoPE scaling .*linear x2" "$TMP/doctor.txt" || bad+=("doctor does not show the linear scaling: $(grep RoPE "$TMP/doctor.txt")")
    "$HR" run -m "$TMP/rope-yarn.gguf" -p "Once" -n 4 >/dev/null 2>"$TMP/run.err"
    rc=$?
    [ $rc -eq 1 ] && grep -q "RoPE scaling 'yarn' (llama.rope.scaling.type) is not supported" "$TMP/run.err" ||
        bad+=("run on a YaRN model: exit $rc, $(cat "$TMP/run.err")")
    out=$("$HR" synth --preset tiny --rope-scaling cubic:2 -o "$TMP/x.gguf" 2>&1)
    rc=$?
    [ $rc -eq 2 ] && [[ $out == *"must be linear:F or yarn:F"* ]] || bad+=("synth --rope-scaling cubic:2: exit $rc, $out")
    out=$("$HR" synth --preset tiny --rope-scaling linear:1e-320 -o "$TMP/x.gguf" 2>&1)
    rc=$?
    [ $rc -eq 2 ] && [[ $out == *"must be linear:F or yarn:F"* ]] || bad+=("synth --rope-scaling linear:1e-320 (0 as a float): exit $rc, $out")
    if [ ${#bad[@]} -eq 0 ]; then pass $name; else fail $name "${bad[@]}"; fi
}
