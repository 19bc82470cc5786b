/* The tools layer behind doctor, plan, probe and bench: memory math against the
 * formula, shapes from GGUF, config.json and presets, the serve-window mirror against a
 * real engine, percentiles, length distributions, URLs, SSE, answers, and the
 * deterministic overflow plan. */
#include <stdlib.h>

#include "engine/engine.h"
#include "formats/ggml_type.h"
#include "test.h"
#include "tools/capacity.h"
#include "tools/client.h"
#include "tools/dist.h"
#include "tools/hf_config.h"
#include "tools/loadgen.h"
#include "tools/probe.h"
#include "tools/prom.h"
#include "tools/sse.h"
#include "tools/stats.h"

/* Meta-Llama-3-8B's config.json, as published. */
static const char LLAMA3_8B[] =
    "{\"architectures\": [\"LlamaForCausalLM\"], \"attention_bias\": false, \"bos_token_id\": 128000,"
    " \"eos_token_id\": 128001, \"hidden_act\": \"silu\", \"hidden_size\": 4096, \"initializer_range\": 0.02,"
    " \"intermediate_size\": 14336, \"max_position_embeddings\": 8192, \"model_type\": \"llama\","
    " \"num_attention_heads\": 32, \"num_hidden_layers\": 32, \"num_key_value_heads\": 8, \"pretraining_tp\": 1,"
    " \"rms_norm_eps\": 1e-05, \"rope_scaling\": null, \"rope_theta\": 500000.0, \"tie_word_embeddings\": false,"
    " \"torch_dtype\": \"bfloat16\", \"transformers_version\": \"4.40.0.dev0\", \"use_cache\": true,"
    " \"vocab_size\": 128256}";

HR_TEST(tools_kv_bytes_per_token_of_stories260K_equal_the_formula) {
    HR_ASSET(path, "models/stories260K.gguf");
    hr_error err = {0};
    hr_gguf g;
    HR_CHECK_OK(hr_gguf_open(&g, path, &err), &err);
    hr_model_shape s;
    hr_status st = hr_shape_from_gguf(&g, path, &s, &err);
    hr_gguf_close(&g);
    HR_CHECK_OK(st, &err);
    HR_CHECK_EQ_INT(s.n_layer, 5);
    HR_CHECK_EQ_INT(s.n_head_kv, 4);
    HR_CHECK_EQ_INT(s.head_dim, 8);
    HR_CHECK_EQ_INT(s.ctx_train, 512);
    /* 2 (K and V) x 5 layers x 4 KV heads x 8 values x element size */
    HR_CHECK_EQ_INT(hr_shape_kv_bytes_per_token(&s, HR_TYPE_F32), 2 * 5 * 4 * 8 * 4);
    HR_CHECK_EQ_INT(hr_shape_kv_bytes_per_token(&s, HR_TYPE_F16), 2 * 5 * 4 * 8 * 2);
    /* q8_0 stores 34 bytes per 32 values, but a head of 8 values is not a whole block. */
    HR_CHECK_EQ_INT(hr_shape_kv_bytes_per_token(&s, HR_TYPE_Q8_0), 0);
    hr_model *m = NULL;
    HR_CHECK_OK(hr_model_load(&m, path, NULL, &err), &err);
    uint64_t loaded = hr_model_weight_bytes(m);
    hr_model_free(m);
    HR_CHECK(s.weights_exact);
    HR_CHECK_EQ_INT(s.weight_bytes, loaded);
}

HR_TEST(tools_hf_config_llama3_8b_shape_and_bytes) {
    hr_error err = {0};
    hr_model_shape s;
    HR_CHECK_OK(hr_hf_config_parse(LLAMA3_8B, sizeof LLAMA3_8B - 1, "config.json", -1, &s, &err), &err);
    HR_CHECK_EQ_INT(s.n_layer, 32);
    HR_CHECK_EQ_INT(s.n_head_kv, 8);
    HR_CHECK_EQ_INT(s.head_dim, 128);
    HR_CHECK_EQ_INT(hr_shape_kv_bytes_per_token(&s, HR_TYPE_F16), 2 * 32 * 8 * 128 * 2);
    HR_CHECK_EQ_INT(hr_shape_kv_bytes_per_token(&s, HR_TYPE_F16), 131072);
    HR_CHECK_EQ_INT(s.n_params, 8030261248ll); /* Meta's published count */
    HR_CHECK_EQ_INT(s.weight_type, HR_TYPE_BF16);
    HR_CHECK_EQ_INT(s.weight_bytes, 2 * 8030261248ll);
    HR_CHECK_EQ_INT(hr_shape_effective_ctx(&s), 8192);
    HR_CHECK(!s.rope.type[0] && s.sliding_window == 0 && !s.tied_embeddings);
}

HR_TEST(tools_hf_config_rope_scaling_and_sliding_window) {
    static const char llama31[] =
        "{\"num_hidden_layers\": 32, \"hidden_size\": 4096, \"num_attention_heads\": 32, \"num_key_value_heads\": 8,"
        " \"vocab_size\": 128256, \"max_position_embeddings\": 131072, \"rope_scaling\": {\"factor\": 8.0,"
        " \"low_freq_factor\": 1.0, \"high_freq_factor\": 4.0, \"original_max_position_embeddings\": 8192,"
        " \"rope_type\": \"llama3\"}}";
    static const char qwen_yarn[] =
        "{\"model_type\": \"qwen2\", \"num_hidden_layers\": 28, \"hidden_size\": 3584, \"num_attention_heads\": 28,"
        " \"num_key_value_heads\": 4, \"vocab_size\": 152064, \"max_position_embeddings\": 32768,"
        " \"sliding_window\": 131072, \"use_sliding_window\": false,"
        " \"rope_scaling\": {\"factor\": 4.0, \"original_max_position_embeddings\": 32768, \"type\": \"yarn\"}}";
    static const char mistral[] =
        "{\"num_hidden_layers\": 32, \"hidden_size\": 4096, \"num_attention_heads\": 32, \"num_key_value_heads\": 8,"
        " \"vocab_size\": 32000, \"max_position_embeddings\": 32768, \"sliding_window\": 4096}";
    hr_error err = {0};
    hr_model_shape s;
    HR_CHECK_OK(hr_hf_config_parse(llama31, sizeof llama31 - 1, "llama31", -1, &s, &err), &err);
    HR_CHECK(!strcmp(s.rope.type, "llama3") && s.rope.factor == 8.0 && s.rope.original_ctx == 8192);
    HR_CHECK_EQ_INT(hr_shape_effective_ctx(&s), 131072); /* llama3 states its extended context */
    HR_CHECK_OK(hr_hf_config_parse(qwen_yarn, sizeof qwen_yarn - 1, "qwen", -1, &s, &err), &err);
    HR_CHECK_EQ_INT(hr_shape_effective_ctx(&s), 4 * 32768);
    HR_CHECK_EQ_INT(s.sliding_window, 0); /* stated, but switched off */
    HR_CHECK(s.qkv_bias);
    HR_CHECK_OK(hr_hf_config_parse(mistral, sizeof mistral - 1, "mistral", HR_TYPE_Q4_0, &s, &err), &err);
    HR_CHECK_EQ_INT(s.sliding_window, 4096);
    HR_CHECK_EQ_INT(s.weight_bytes, (s.n_params + 31) / 32 * 18);

    static const char missing[] = "{\"hidden_size\": 4096}";
    HR_CHECK(hr_hf_config_parse(missing, sizeof missing - 1, "x.json", -1, &s, &err) == HR_ERR_FORMAT);
    HR_CHECKF(strstr(err.msg, "num_hidden_layers") && strstr(err.msg, "x.json"), "message: %s", err.msg);
    HR_CHECK(hr_hf_config_parse("{\"a\": ", 6, "bad.json", -1, &s, &err) == HR_ERR_FORMAT);
    HR_CHECKF(strstr(err.msg, "line 1"), "message: %s", err.msg);
}

HR_TEST(tools_presets_have_the_published_parameter_counts) {
    static const struct {
        const char *name;
        long long params, ctx, effective, kv_f16;
    } want[] = {
        {"llama-2-7b", 6738415616ll, 4096, 4096, 2 * 32 * 32 * 128 * 2},
        {"llama-3-8b", 8030261248ll, 8192, 8192, 131072},
        {"llama-3.1-8b", 8030261248ll, 131072, 131072, 131072},
        {"llama-3.2-1b", 1235814400ll, 131072, 131072, 2 * 16 * 8 * 64 * 2},
        {"mistral-7b", 7241732096ll, 32768, 32768, 131072},
        {"qwen2.5-7b", 7615616512ll, 32768, 32768, 2 * 28 * 4 * 128 * 2},
        {"tinyllama-1.1b", 1100048384ll, 2048, 2048, 2 * 22 * 4 * 64 * 2},
    };
    hr_error err = {0};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        hr_model_shape s;
        HR_CHECK_OK(hr_shape_preset(want[i].name, HR_TYPE_BF16, &s, &err), &err);
        HR_CHECKF((long long)s.n_params == want[i].params, "%s: %llu parameters, expected %lld", want[i].name,
                  (unsigned long long)s.n_params, want[i].params);
        HR_CHECK_EQ_INT(s.ctx_train, want[i].ctx);
        HR_CHECK_EQ_INT(hr_shape_effective_ctx(&s), want[i].effective);
        HR_CHECK_EQ_INT(hr_shape_kv_bytes_per_token(&s, HR_TYPE_F16), want[i].kv_f16);
    }
    hr_model_shape s;
    HR_CHECK_OK(hr_shape_preset("mistral-7b", HR_TYPE_BF16, &s, &err), &err);
    HR_CHECK_EQ_INT(s.sliding_window, 4096);
    HR_CHECK(hr_shape_preset("gpt-5", HR_TYPE_BF16, &s, &err) == HR_ERR_NOT_FOUND);
    HR_CHECKF(strstr(err.msg, "llama-3.1-8b") && strstr(err.msg, "tinyllama-1.1b"), "message: %s", err.msg);
}

/* doctor's arithmetic must agree with the engine serve builds, for every flag that shapes it. */
HR_TEST(tools_pool_plan_matches_the_engine) {
    HR_ASSET(path, "models/stories260K.gguf");
    hr_error err = {0};
    hr_model *m = NULL;
    HR_CHECK_OK(hr_model_load(&m, path, NULL, &err), &err);
    hr_model_shape s;
    hr_shape_from_gguf(&m->gguf, path, &s, &err);
    const hr_engine_config cases[] = {
        {.parallel = 4, .kv_type = HR_TYPE_F32},
        {.ctx_size = 256, .parallel = 2, .kv_type = HR_TYPE_F32},
        {.kv_mem_bytes = 65536, .parallel = 4, .kv_type = HR_TYPE_F32},
        {.ctx_size = 1000, .parallel = 1, .kv_type = HR_TYPE_F16},
        {.ctx_size = 100, .parallel = 3, .block_tokens = 32, .kv_type = HR_TYPE_F16},
        {.ctx_size = 300, .kv_mem_bytes = 1 << 20, .parallel = 8, .block_tokens = 7, .kv_type = HR_TYPE_F16},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        hr_engine_config cfg = cases[i];
        cfg.n_threads = 1;
        hr_pool_plan p;
        hr_engine *e = NULL;
        hr_status st = hr_pool_plan_compute(&s, &cfg, &p, &err);
        if (st == HR_OK) st = hr_engine_new(&e, m, &cfg, &err);
        hr_engine_stats es = {0};
        if (st == HR_OK) hr_engine_stats_get(e, &es);
        hr_engine_free(e);
        if (st != HR_OK) hr_model_free(m);
        HR_CHECK_OK(st, &err);
        if (p.window != es.window || p.n_blocks != es.blocks_total || p.block_tokens != es.block_tokens) {
            hr_model_free(m);
            HR_CHECKF(false, "case %zu: plan window %lld, %lld blocks of %lld; engine window %d, %d blocks of %d", i,
                      (long long)p.window, (long long)p.n_blocks, (long long)p.block_tokens, es.window, es.blocks_total,
                      es.block_tokens);
        }
    }
    /* Both refuse q8_0 for heads of 8 values. */
    hr_engine_config q8 = {.parallel = 1, .kv_type = HR_TYPE_Q8_0, .n_threads = 1};
    hr_pool_plan p;
    hr_engine *e = NULL;
    bool plan_refused = hr_pool_plan_compute(&s, &q8, &p, &err) == HR_ERR_UNSUPPORTED;
    bool engine_refused = hr_engine_new(&e, m, &q8, &err) != HR_OK;
    hr_engine_free(e);
    hr_model_free(m);
    HR_CHECK(plan_refused && engine_refused);
}

/* The formula for q8_0 where heads are whole blocks: 34 bytes per 32 values. */
HR_TEST(tools_kv_bytes_q8_0_for_whole_blocks) {
    hr_model_shape s;
    hr_error err = {0};
    HR_CHECK_OK(hr_shape_preset("llama-3-8b", HR_TYPE_BF16, &s, &err), &err);
    HR_CHECK_EQ_INT(hr_shape_kv_bytes_per_token(&s, HR_TYPE_Q8_0), 2 * 32 * 8 * (128 / 32) * 34);
    HR_CHECK_EQ_INT(hr_shape_kv_bytes_per_token(&s, HR_TYPE_F32), 2 * 32 * 8 * 128 * 4);
}

HR_TEST(tools_capacity_rows_and_targets) {
    hr_model_shape s;
    hr_error err = {0};
    HR_CHECK_OK(hr_shape_preset("llama-3-8b", HR_TYPE_BF16, &s, &err), &err);
    hr_capacity_row r;
    uint64_t mem = s.weight_bytes + 10 * (131072ull * 8192) + 5;
    hr_capacity_row_compute(&s, HR_TYPE_F16, 8192, 7000, 2, mem, &r);
    HR_CHECK_EQ_INT(r.kv_bytes_per_seq, 131072ll * 8192);
    HR_CHECK_EQ_INT(r.max_new_tokens, 1192);
    HR_CHECK_EQ_INT(r.seqs_fit, 10);
    HR_CHECK_EQ_INT(r.total_bytes, s.weight_bytes + 2 * 131072ull * 8192);
    HR_CHECK(r.fits);
    int64_t targets[32];
    size_t n = hr_capacity_targets(&s, targets, 32);
    HR_CHECK_EQ_INT(n, 3);
    HR_CHECK(targets[0] == 2048 && targets[1] == 4096 && targets[2] == 8192);
    HR_CHECK_OK(hr_shape_preset("llama-3.1-8b", HR_TYPE_BF16, &s, &err), &err);
    n = hr_capacity_targets(&s, targets, 32);
    HR_CHECK(n == 6 && targets[0] == 4096 && targets[5] == 131072);
    char buf[32];
    hr_format_bytes(640, buf, sizeof buf);
    HR_CHECK(!strcmp(buf, "640 B"));
    hr_format_bytes(3 << 20, buf, sizeof buf);
    HR_CHECK(!strcmp(buf, "3.00 MiB"));
}

HR_TEST(tools_percentiles_interpolate_between_ranks) {
    hr_samples s = {0};
    hr_summary m;
    hr_summarize(&s, &m);
    HR_CHECK(m.n == 0 && m.p50 == 0 && m.max == 0);
    hr_samples_push(&s, 2);
    hr_samples_push(&s, 1);
    hr_summarize(&s, &m);
    HR_CHECK(m.p50 == 1.5 && m.max == 2 && m.mean == 1.5);
    hr_samples_free(&s);
    for (int i = 100; i >= 1; i--) hr_samples_push(&s, i);
    hr_summarize(&s, &m);
    hr_samples_free(&s);
    HR_CHECKF(m.n == 100 && m.p50 == 50.5 && m.p90 > 90.09 && m.p90 < 90.11 && m.p99 > 99.0 && m.p99 < 99.02 &&
                  m.max == 100,
              "p50 %g p90 %g p99 %g max %g", m.p50, m.p90, m.p99, m.max);
    double one = 7;
    HR_CHECK(hr_percentile(&one, 1, 99) == 7);
}

HR_TEST(tools_length_distributions) {
    hr_error err = {0};
    hr_dist d;
    hr_rng rng;
    hr_rng_seed(&rng, 3);
    HR_CHECK_OK(hr_dist_parse("8", 1, 100, &d, &err), &err);
    HR_CHECK(hr_dist_draw(&d, &rng) == 8 && hr_dist_draw(&d, &rng) == 8);
    HR_CHECK_OK(hr_dist_parse("4..6", 1, 100, &d, &err), &err);
    bool seen[7] = {false};
    for (int i = 0; i < 200; i++) {
        int64_t v = hr_dist_draw(&d, &rng);
        HR_CHECK(v >= 4 && v <= 6);
        seen[v] = true;
    }
    HR_CHECK(seen[4] && seen[5] && seen[6]);
    char path[512], spec[520];
    snprintf(path, sizeof path, "%s/lengths.txt", hr_test_tmpdir());
    FILE *f = fopen(path, "w");
    HR_CHECK(f);
    fputs("# a trace\n3 5\n9,2\n", f);
    fclose(f);
    snprintf(spec, sizeof spec, "@%s", path);
    HR_CHECK_OK(hr_dist_parse(spec, 1, 100, &d, &err), &err);
    int64_t got[5];
    for (int i = 0; i < 5; i++) got[i] = hr_dist_draw(&d, &rng);
    HR_CHECK(d.lo == 2 && d.hi == 9);
    hr_dist_free(&d);
    HR_CHECK(got[0] == 3 && got[1] == 5 && got[2] == 9 && got[3] == 2 && got[4] == 3);
    static const char *const bad[] = {"", "x", "5..2", "0", "3..", "1..1000", "2.5"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        HR_CHECKF(hr_dist_parse(bad[i], 1, 100, &d, &err) != HR_OK, "'%s' was accepted", bad[i]);
    f = fopen(path, "w");
    HR_CHECK(f);
    fputs("3 four 5\n", f);
    fclose(f);
    HR_CHECK(hr_dist_parse(spec, 1, 100, &d, &err) == HR_ERR_FORMAT);
    HR_CHECKF(strstr(err.msg, "'four'"), "message: %s", err.msg);
}

HR_TEST(tools_endpoints_and_the_loopback_check) {
    static const struct {
        const char *url, *root, *host;
        bool loopback;
    } ok[] = {
        {"http://127.0.0.1:8080/v1", "http://127.0.0.1:8080", "127.0.0.1", true},
        {"http://127.9.8.7:8080/v1/", "http://127.9.8.7:8080", "127.9.8.7", true},
        {"http://localhost:8080/", "http://localhost:8080", "localhost", true},
        {"http://[::1]:9000", "http://[::1]:9000", "::1", true},
        {"https://api.example.com/openai/v1", "https://api.example.com/openai", "api.example.com", false},
        {"http://10.0.0.1:8000", "http://10.0.0.1:8000", "10.0.0.1", false},
        {"http://localhost.example.com/v1", "http://localhost.example.com", "localhost.example.com", false},
        {"http://128.0.0.1", "http://128.0.0.1", "128.0.0.1", false},
        {"http://h/v1v1", "http://h/v1v1", "h", false},
    };
    hr_error err = {0};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        hr_endpoint ep;
        HR_CHECK_OK(hr_endpoint_parse(ok[i].url, &ep, &err), &err);
        HR_CHECKF(!strcmp(ep.root, ok[i].root) && !strcmp(ep.host, ok[i].host), "%s: root %s host %s", ok[i].url,
                  ep.root, ep.host);
        HR_CHECKF(hr_endpoint_is_loopback(&ep) == ok[i].loopback, "%s: loopback %d", ok[i].url,
                  hr_endpoint_is_loopback(&ep));
    }
    static const char *const bad[] = {"ftp://x",        "127.0.0.1:8080", "http://user@evil.com@127.0.0.1",
                                      "http://h:99999", "http://:80",     "http://h/v1?x=1",
                                      "http://[::1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        hr_endpoint ep;
        HR_CHECKF(hr_endpoint_parse(bad[i], &ep, &err) == HR_ERR_INVALID, "'%s' was accepted", bad[i]);
    }
}

typedef struct {
    char got[4][64];
    int n;
} sse_events;

static void collect(void *ctx, const char *data, size_t len) {
    sse_events *e = ctx;
    if (e->n < 4) snprintf(e->got[e->n++], sizeof e->got[0], "%.*s", (int)len, data);
}

HR_TEST(tools_sse_events_survive_any_split) {
    static const char stream[] =
        ": comment\r\ndata: {\"a\":1}\r\n\r\nevent: x\ndata:two\ndata: lines\n\ndata: [DONE]\n\n";
    for (size_t step = 1; step <= sizeof stream; step++) {
        hr_sse p = {0};
        sse_events e = {0};
        for (size_t i = 0; i < sizeof stream - 1; i += step)
            hr_sse_feed(&p, stream + i, i + step < sizeof stream - 1 ? step : sizeof stream - 1 - i, collect, &e);
        hr_sse_free(&p);
        HR_CHECKF(e.n == 3 && !strcmp(e.got[0], "{\"a\":1}") && !strcmp(e.got[1], "two\nlines") &&
                      !strcmp(e.got[2], "[DONE]"),
                  "step %zu: %d events: '%s' '%s' '%s'", step, e.n, e.got[0], e.got[1], e.got[2]);
    }
}

HR_TEST(tools_chat_answers_clamped_refused_malformed) {
    static const char clamped[] =
        "{\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"abc\"},\"finish_reason\":"
        "\"length\"}],\"usage\":{\"prompt_tokens\":495,\"completion_tokens\":17,\"total_tokens\":512},"
        "\"headroom\":{\"window\":512,\"prompt_tokens\":495,\"max_tokens_requested\":33,\"max_tokens_granted\":17,"
        "\"room\":17,\"policy\":\"clamp\",\"messages_dropped\":0,\"summarized\":false,\"message_cut\":false}}";
    static const char refused[] = "{\"error\":{\"message\":\"too long\",\"type\":\"invalid_request_error\","
                                  "\"param\":\"messages\",\"code\":\"context_length_exceeded\"}}";
    hr_chat_answer a;
    hr_chat_answer_parse(200, clamped, sizeof clamped - 1, &a);
    HR_CHECK(!a.malformed && a.prompt_tokens == 495 && a.completion_tokens == 17);
    HR_CHECK(!strcmp(a.finish_reason, "length") && a.has_headroom && a.room == 17);
    HR_CHECK(hr_chat_answer_clamped(&a) && !hr_chat_answer_truncated(&a));
    hr_chat_answer_parse(400, refused, sizeof refused - 1, &a);
    HR_CHECK(!strcmp(a.error_code, "context_length_exceeded") && !strcmp(a.error_message, "too long"));
    HR_CHECK(a.prompt_tokens == -1 && !hr_chat_answer_clamped(&a));
    static const char chunk[] =
        "{\"choices\":[{\"index\":0,\"delta\":{\"content\":\", tre\"},\"finish_reason\":null}]}";
    json_t *j = json_loads(chunk, 0, NULL);
    hr_chat_answer_init(&a, 200);
    size_t bytes = hr_chat_answer_chunk(j, &a);
    json_decref(j);
    HR_CHECK(bytes == 5 && !a.finish_reason[0]);
    hr_chat_answer_parse(200, "{}", 2, &a);
    HR_CHECK(a.malformed);
    hr_chat_answer_parse(502, "<html>bad gateway</html>", 24, &a);
    HR_CHECK(!strcmp(a.error_message, "<html>bad gateway</html>"));
    char *body = hr_chat_body("m", "the the", 7, 5, true);
    HR_CHECK(body);
    bool fine = strstr(body, "\"max_tokens\":5") && strstr(body, "\"include_usage\":true") &&
                strstr(body, "\"content\":\"the the\"");
    free(body);
    HR_CHECK(fine);
}

HR_TEST(tools_prometheus_values) {
    static const char text[] = "# HELP x y\n# TYPE headroom_window_tokens gauge\nheadroom_window_tokens 512\n"
                               "headroom_requests_total{outcome=\"ok\"} 7\nheadroom_window_tokens_extra 3\n";
    double v = 0;
    HR_CHECK(hr_prom_value(text, "headroom_window_tokens", &v) && v == 512);
    HR_CHECK(hr_prom_value(text, "headroom_requests_total{outcome=\"ok\"}", &v) && v == 7);
    HR_CHECK(!hr_prom_value(text, "headroom_requests_total", &v));
    HR_CHECK(!hr_prom_value(text, "missing", &v));
}

HR_TEST(tools_synthetic_prompts_follow_the_calibration) {
    hr_prompt_calib c = {.unit = "the", .overhead = 3, .per_unit = 2};
    HR_CHECK_EQ_INT(hr_prompt_tokens(&c, 10), 23);
    HR_CHECK_EQ_INT(hr_prompt_units(&c, 23), 10);
    HR_CHECK_EQ_INT(hr_prompt_units(&c, 24), 10);
    HR_CHECK_EQ_INT(hr_prompt_units(&c, 2), 1);
    hr_strbuf b = {0};
    hr_prompt_text(&c, 3, &b);
    bool same = !strcmp(hr_strbuf_str(&b), "the the the");
    hr_strbuf_free(&b);
    HR_CHECK(same);
}

/* The overflow share is exact and the plan does not depend on timing: the bench test's
 * expected counts rely on both. */
HR_TEST(tools_overflow_plan_is_exact_and_seeded) {
    hr_error err = {0};
    hr_dist prompt, max_tokens;
    HR_CHECK_OK(hr_dist_parse("16..64", 1, 1000, &prompt, &err), &err);
    HR_CHECK_OK(hr_dist_parse("8..32", 1, 1000, &max_tokens, &err), &err);
    hr_load_config cfg = {.calib = {.unit = "the", .overhead = 1, .per_unit = 1},
                          .window = 512,
                          .prompt_tokens = &prompt,
                          .max_tokens = &max_tokens,
                          .overflow_share = 0.25};
    static const struct {
        double share;
        int n, over;
    } cases[] = {{0.25, 40, 10}, {0.1, 1000, 100}, {1.0 / 3, 10, 3}, {0, 50, 0}, {1, 7, 7}};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        cfg.overflow_share = cases[k].share;
        hr_load_planner a, b;
        hr_load_planner_init(&a, 9);
        hr_load_planner_init(&b, 9);
        int over = 0;
        for (int i = 0; i < cases[k].n; i++) {
            int64_t ua, ma, ub, mb;
            bool oa, ob;
            hr_load_plan_next(&a, &cfg, &ua, &ma, &oa);
            hr_load_plan_next(&b, &cfg, &ub, &mb, &ob);
            HR_CHECK(ua == ub && ma == mb && oa == ob);
            int64_t total = hr_prompt_tokens(&cfg.calib, ua) + ma;
            HR_CHECKF(oa == (total > 512), "share %g request %d: over %d, %lld tokens", cases[k].share, i, oa,
                      (long long)total);
            over += oa;
        }
        HR_CHECKF(over == cases[k].over, "share %g of %d: %d over, expected %d", cases[k].share, cases[k].n, over,
                  cases[k].over);
    }
}
