# CLI tests of `headroom count`.

# True when the binary has the count command; otherwise fails test $1 in one line.
count_available() {
    if "$HR" count --help >/dev/null 2>&1; then return 0; fi
    fail "$1" "headroom has no 'count' command (hr_cmd_count is not dispatched from main.c)"
    return 1
}

# Writes case N (1-based) of a vocabulary test file to $TMP/case.txt, byte for byte.
extract_case() {
    awk -v n="$2" 'BEGIN { RS = "\n__ggml_vocab_test__\n" } NR == n { printf "%s", $0 }' "$1" >"$TMP/case.txt"
}

# count --raw --ids on every listed case of INP must print the matching line of OUT.
check_vector_cases() {
    local name=$1 model=$2 inp=$3 out=$4
    shift 4
    local bad=()
    for n in "$@"; do
        extract_case "$inp" "$n"
        local want got
        want=$(sed -n "${n}p" "$out" | sed 's/^ *//; s/ *$//')
        got=$("$HR" count -m "$model" --file "$TMP/case.txt" --raw --ids 2>&1 | sed -n 2p)
        [ "$got" = "$want" ] || bad+=("case $n: got [$got] want [$want]")
    done
    if [ ${#bad[@]} -eq 0 ]; then pass "$name"; else fail "$name" "${bad[@]:0:5}"; fi
}

test_count_raw_matches_gguf_vectors() {
    local name=count_raw_matches_gguf_vectors
    count_available $name || return
    need_asset $name vocab/ggml-vocab-llama-spm.gguf || return
    local all
    all=$(seq 1 46)
    for v in llama-spm gpt-2; do
        local f="$ASSETS/vocab/ggml-vocab-$v.gguf"
        check_vector_cases "${name}_$v" "$f" "$f.inp" "$f.out" $all
    done
}

test_count_raw_matches_tokenizer_json_vectors() {
    local name=count_raw_matches_tokenizer_json_vectors
    count_available $name || return
    need_asset $name tokenizers/qwen3/tokenizer.json || return
    for t in llama3 qwen3 gemma3 llama2; do
        local d="$ASSETS/tokenizers/$t"
        check_vector_cases "${name}_$t" "$d/tokenizer.json" "$d/vectors.inp" "$d/vectors.out" 9 46
    done
}

test_count_text_adds_bos_and_parses_special_tokens() {
    local name=count_text_adds_bos_and_parses_special_tokens
    count_available $name || return
    need_asset $name tokenizers/llama3/tokenizer.json || return
    local bad=() out
    out=$("$HR" count -m "$ASSETS/vocab/ggml-vocab-llama-spm.gguf" --text "Hello world" --ids 2>&1)
    [ "$out" = $'3\n1 15043 3186' ] || bad+=("spm: $out")
    out=$("$HR" count -m "$ASSETS/vocab/ggml-vocab-llama-spm.gguf" --text "Hello world" 2>&1)
    [ "$out" = "3" ] || bad+=("count only: $out")
    out=$("$HR" count -m "$ASSETS/tokenizers/llama3/tokenizer.json" --text "Hi<|eot_id|>" --ids 2>&1)
    [ "$out" = $'2\n13347 128009' ] || bad+=("llama3 special: $out")
    out=$("$HR" count -m "$ASSETS/tokenizers/llama3" --text "Hi<|eot_id|>" --raw 2>&1)
    [ "$out" = "8" ] || bad+=("llama3 --raw (user text cannot inject <|eot_id|>): $out")
    if [ ${#bad[@]} -eq 0 ]; then pass $name; else fail $name "${bad[@]}"; fi
}

test_count_file_stdin_and_invalid_utf8() {
    local name=count_file_stdin_and_invalid_utf8
    count_available $name || return
    need_asset $name vocab/ggml-vocab-gpt-2.gguf || return
    local m="$ASSETS/vocab/ggml-vocab-gpt-2.gguf" bad=() out
    out=$(printf 'Hello world' | "$HR" count -m "$m" --file - --ids 2>&1)
    [ "$out" = $'2\n15496 995' ] || bad+=("stdin: $out")
    printf 'ok \377\376 end' >"$TMP/bad.txt"
    out=$("$HR" count -m "$m" --file "$TMP/bad.txt" --raw 2>&1)
    [[ "$out" =~ ^[0-9]+$ ]] && [ "$out" -ge 4 ] || bad+=("invalid UTF-8: $out")
    if [ ${#bad[@]} -eq 0 ]; then pass $name; else fail $name "${bad[@]}"; fi
}

test_count_chat_uses_the_model_template() {
    local name=count_chat_uses_the_model_template
    count_available $name || return
    need_asset $name tokenizers/qwen3/tokenizer.json || return
    printf '[{"role": "user", "content": "Hello there"}]' >"$TMP/chat.json"
    printf '{"messages": [{"role": "user", "content": "Hello there"}], "add_generation_prompt": false}' >"$TMP/chat2.json"
    local bad=() out
    out=$("$HR" count -m "$ASSETS/tokenizers/qwen3" --chat "$TMP/chat.json" --ids 2>&1)
    [ "$out" = $'10\n151644 872 198 9707 1052 151645 198 151644 77091 198' ] || bad+=("qwen3: $out")
    out=$("$HR" count -m "$ASSETS/tokenizers/llama3" --chat "$TMP/chat.json" --ids 2>&1)
    [ "$out" = $'12\n128000 128006 882 128007 271 9906 1070 128009 128006 78191 128007 271' ] || bad+=("llama3: $out")
    out=$("$HR" count -m "$ASSETS/tokenizers/qwen3" --chat "$TMP/chat2.json" 2>&1)
    [ "$out" = "7" ] || bad+=("no generation prompt: $out")
    out=$("$HR" count -m "$ASSETS/tokenizers/llama2" --chat "$TMP/chat.json" 2>&1)
    [ $? -eq 1 ] && [[ "$out" == *"has no chat template"* ]] || bad+=("no template: $out")
    out=$("$HR" count -m "$ASSETS/tokenizers/llama2" --chat "$TMP/chat.json" --template llama2 2>&1)
    [[ "$out" =~ ^[0-9]+$ ]] || bad+=("--template llama2: $out")
    if [ ${#bad[@]} -eq 0 ]; then pass $name; else fail $name "${bad[@]}"; fi
}

test_count_bad_input_gets_clear_errors() {
    local name=count_bad_input_gets_clear_errors
    count_available $name || return
    local bad=()
    "$HR" count --text hi >/dev/null 2>"$TMP/e1"; [ $? -eq 2 ] && grep -q "no model given" "$TMP/e1" || bad+=("no -m: $(cat "$TMP/e1")")
    "$HR" count -m x >/dev/null 2>"$TMP/e2"; [ $? -eq 2 ] && grep -q "exactly one of --text, --file or --chat" "$TMP/e2" || bad+=("no input: $(cat "$TMP/e2")")
    "$HR" count -m x --text a --file b >/dev/null 2>"$TMP/e3"; [ $? -eq 2 ] || bad+=("two inputs")
    "$HR" count -m x --text a --bogus >/dev/null 2>"$TMP/e4"; [ $? -eq 2 ] && grep -q "unknown option '--bogus'" "$TMP/e4" || bad+=("--bogus: $(cat "$TMP/e4")")
    "$HR" count -m /nonexistent.gguf --text a >/dev/null 2>"$TMP/e5"; [ $? -eq 1 ] && grep -q "cannot open '/nonexistent.gguf'" "$TMP/e5" || bad+=("missing model: $(cat "$TMP/e5")")
    printf 'not a model' >"$TMP/junk.gguf"
    "$HR" count -m "$TMP/junk.gguf" --text a >/dev/null 2>"$TMP/e6"; [ $? -eq 1 ] && grep -q "not a GGUF file\|at byte" "$TMP/e6" || bad+=("junk model: $(cat "$TMP/e6")")
    printf '{"model": ' >"$TMP/tokenizer.json"
    "$HR" count -m "$TMP/tokenizer.json" --text a >/dev/null 2>"$TMP/e7"; [ $? -eq 1 ] && grep -q "line 1" "$TMP/e7" || bad+=("bad json: $(cat "$TMP/e7")")
    "$HR" count --help | grep -q "usage: headroom count" || bad+=("--help")
    if [ -e "$ASSETS/vocab/ggml-vocab-gpt-2.gguf" ]; then
        "$HR" count -m "$ASSETS/vocab/ggml-vocab-gpt-2.gguf" --file /nonexistent.txt >/dev/null 2>"$TMP/e8"; [ $? -eq 1 ] && grep -q "nonexistent.txt" "$TMP/e8" || bad+=("missing file: $(cat "$TMP/e8")")
        printf '[{"role": ' >"$TMP/badchat.json"
        "$HR" count -m "$ASSETS/vocab/ggml-vocab-gpt-2.gguf" --chat "$TMP/badchat.json" >/dev/null 2>"$TMP/e9"; [ $? -eq 1 ] && grep -q "badchat.json line 1" "$TMP/e9" || bad+=("bad chat json: $(cat "$TMP/e9")")
    fi
    if [ ${#bad[@]} -eq 0 ]; then pass $name; else fail $name "${bad[@]}"; fi
}
