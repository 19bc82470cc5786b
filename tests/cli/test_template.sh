# CLI tests of `headroom template`: the reference renders byte for byte, the built-in
# templates, a GGUF model's own template and token texts, and the errors.

# template_gguf OUT TEMPLATE_FILE: writes a GGUF v3 file with no tensors holding a chat
# template and a three-token vocabulary (BOS id 1, EOS id 2), little-endian by hand.
template_gguf() {
    local LC_ALL=C # ${#s} must count bytes
    t_u32() { printf "$(printf '\\%03o\\%03o\\%03o\\%03o' $(($1 & 255)) $((($1 >> 8) & 255)) $((($1 >> 16) & 255)) $((($1 >> 24) & 255)))"; }
    t_u64() { t_u32 "$1"; t_u32 0; }
    t_str() { t_u64 "${#1}"; printf '%s' "$1"; }
    {
        printf 'GGUF'; t_u32 3; t_u64 0; t_u64 4
        t_str tokenizer.chat_template; t_u32 8; t_str "$(cat "$2")"
        t_str tokenizer.ggml.tokens; t_u32 9; t_u32 8; t_u64 3
        t_str '<unk>'; t_str '<|begin_of_text|>'; t_str '<|end_of_text|>'
        t_str tokenizer.ggml.bos_token_id; t_u32 4; t_u32 1
        t_str tokenizer.ggml.eos_token_id; t_u32 4; t_u32 2
    } >"$1"
}

test_template_matches_every_reference_render() {
    local name=template_matches_every_reference_render
    need_asset $name templates/tokens.json || return
    need_asset $name ref/templates/conversations || return
    local bad=() pairs=0 tmpl conv ref base
    for tmpl in $(jq -r 'keys[]' "$ASSETS/templates/tokens.json"); do
        local bos eos
        bos=$(jq -r --arg t "$tmpl" '.[$t].bos_token' "$ASSETS/templates/tokens.json")
        eos=$(jq -r --arg t "$tmpl" '.[$t].eos_token' "$ASSETS/templates/tokens.json")
        for conv in "$ASSETS"/ref/templates/conversations/*.json; do
            base=$(basename "$conv" .json)
            ref="$ASSETS/ref/templates/rendered/$tmpl/$base"
            pairs=$((pairs + 1))
            "$HR" template --chat-template "$ASSETS/templates/$tmpl.jinja" --chat "$conv" \
                --bos-token "$bos" --eos-token "$eos" --date 2024-07-26 >"$TMP/out" 2>"$TMP/err"
            local rc=$?
            if [ -e "$ref.txt" ]; then
                [ $rc -eq 0 ] && cmp -s "$TMP/out" "$ref.txt" || bad+=("$tmpl x $base: rc $rc $(cat "$TMP/err")")
            else
                # a refusal must carry the reference's message and print nothing
                [ $rc -eq 1 ] && [ ! -s "$TMP/out" ] && grep -qF -- "$(head -n 1 "$ref.error")" "$TMP/err" ||
                    bad+=("$tmpl x $base: expected the error $(head -n 1 "$ref.error"), rc $rc $(cat "$TMP/err")")
            fi
        done
    done
    if [ ${#bad[@]} -eq 0 ] && [ $pairs -gt 0 ]; then pass "$name ($pairs pairs)"; else fail "$name" "${bad[@]}"; fi
}

test_template_builtin_chatml_prints_exactly_the_prompt() {
    local name=template_builtin_chatml_prints_exactly_the_prompt
    printf '%s' '{"messages": [{"role": "user", "content": "Hi"}], "add_generation_prompt": true}' >"$TMP/chat.json"
    printf '<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n' >"$TMP/want"
    "$HR" template --chat-template chatml --chat "$TMP/chat.json" >"$TMP/out" 2>"$TMP/err"
    local rc=$?
    if [ $rc -eq 0 ] && cmp -s "$TMP/out" "$TMP/want"; then pass $name; else fail $name "rc $rc: $(cat "$TMP/err")" "$(od -c "$TMP/out" | head -5)"; fi
}

test_template_uses_the_models_template_and_tokens() {
    local name=template_uses_the_models_template_and_tokens
    need_asset $name templates/tokenizer-config-llama3.jinja || return
    template_gguf "$TMP/chat.gguf" "$ASSETS/templates/tokenizer-config-llama3.jinja"
    local ref="$ASSETS/ref/templates/rendered/tokenizer-config-llama3/system-multi.txt"
    "$HR" template -m "$TMP/chat.gguf" --chat "$ASSETS/ref/templates/conversations/system-multi.json" >"$TMP/out" 2>"$TMP/err"
    local rc=$?
    if [ $rc -eq 0 ] && cmp -s "$TMP/out" "$ref"; then pass $name; else fail $name "rc $rc: $(cat "$TMP/err")"; fi
}

test_template_model_without_template_is_an_error() {
    local name=template_model_without_template_is_an_error
    need_asset $name models/stories260K.gguf || return
    printf '[{"role": "user", "content": "Hi"}]' >"$TMP/chat.json"
    "$HR" template -m "$ASSETS/models/stories260K.gguf" --chat "$TMP/chat.json" >"$TMP/out" 2>"$TMP/err"
    local rc=$?
    if [ $rc -eq 1 ] && grep -q "no chat template" "$TMP/err"; then pass $name; else fail $name "rc $rc: $(cat "$TMP/err")"; fi
}

test_template_raise_exception_goes_to_stderr() {
    local name=template_raise_exception_goes_to_stderr
    printf '%s' '{"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]}' >"$TMP/chat.json"
    "$HR" template --chat-template mistral --chat "$TMP/chat.json" >"$TMP/out" 2>"$TMP/err"
    local rc=$?
    if [ $rc -eq 1 ] && [ ! -s "$TMP/out" ] &&
        grep -qF "TemplateError: Conversation roles must alternate user/assistant/user/assistant/..." "$TMP/err"; then
        pass $name
    else
        fail $name "rc $rc: $(cat "$TMP/err")"
    fi
}

# A template that binds thousands of names and looks names up in a long loop renders in
# time proportional to its steps (each lookup scanned every name: 84 s for 20000 names).
test_template_many_variables_render_in_linear_time() {
    local name=template_many_variables_render_in_linear_time
    {
        local i
        for ((i = 0; i < 20000; i++)); do printf '{%% set v%d = %d %%}' $i $i; done
        printf '{%% for i in range(20000) %%}{%% if z0 is defined or z1 is defined or z2 is defined or v19999 is not defined %%}x{%% endif %%}{%% endfor %%}ok'
    } >"$TMP/many.jinja"
    printf '%s' '{"messages": [{"role": "user", "content": "a"}]}' >"$TMP/chat.json"
    local t0=$SECONDS rc
    timeout 120 "$HR" template --chat-template "$TMP/many.jinja" --chat "$TMP/chat.json" >"$TMP/out" 2>"$TMP/err"
    rc=$?
    if [ $rc -eq 0 ] && [ "$(cat "$TMP/out")" = ok ] && [ $((SECONDS - t0)) -le 10 ]; then
        pass $name
    else
        fail $name "rc $rc in $((SECONDS - t0)) s: $(head -c 200 "$TMP/out") $(cat "$TMP/err")"
    fi
}

test_template_usage_errors_and_help() {
    local name=template_usage_errors_and_help bad=()
    printf '[]' >"$TMP/chat.json"
    "$HR" template --help >"$TMP/out" 2>&1 && grep -q "usage: headroom template" "$TMP/out" || bad+=("--help")
    "$HR" template --chat "$TMP/chat.json" >/dev/null 2>&1
    [ $? -eq 2 ] || bad+=("no template accepted")
    "$HR" template --chat-template chatml >/dev/null 2>&1
    [ $? -eq 2 ] || bad+=("no --chat accepted")
    "$HR" template --chat-template chatml --chat "$TMP/chat.json" --bogus >/dev/null 2>&1
    [ $? -eq 2 ] || bad+=("unknown option accepted")
    "$HR" template --chat-template no-such-template --chat "$TMP/chat.json" >/dev/null 2>&1
    [ $? -eq 1 ] || bad+=("missing template file accepted")
    printf '{"messages": ' >"$TMP/broken.json"
    "$HR" template --chat-template chatml --chat "$TMP/broken.json" >/dev/null 2>&1
    [ $? -eq 1 ] || bad+=("broken JSON accepted")
    local d
    for d in 2024-02-30 2023-02-29 -1-01-01 2024-13-01; do
        "$HR" template --chat-template chatml --chat "$TMP/chat.json" --date $d >/dev/null 2>"$TMP/err"
        [ $? -eq 2 ] && grep -q "is not a date" "$TMP/err" || bad+=("--date $d accepted (mktime rolls it over)")
    done
    if [ ${#bad[@]} -eq 0 ]; then pass $name; else fail $name "${bad[@]}"; fi
}
