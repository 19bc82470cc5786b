/* bench_tokenize — tokenizer throughput on one core: encodes about 1 MB of mixed text
 * (English-like prose with a long tail of made-up words, code, numbers, punctuation,
 * accented Latin, Cyrillic, CJK and emoji, generated from a fixed seed) with a
 * vocabulary and prints MB/s. A text file may be given instead.
 *
 * usage: bench_tokenize VOCAB [TEXT_FILE] [--repeat N]
 *   VOCAB  a GGUF (model or vocab-only) or a tokenizer.json
 *
 * build (after `make release`, from the repository root):
 *   gcc -std=c11 -D_GNU_SOURCE -O2 -Isrc bench/bench_tokenize.c build/release/libheadroom.a \
 *       $(pkg-config --cflags --libs jansson libpcre2-8 libutf8proc) -lm -pthread -o build/bench_tokenize
 *   build/bench_tokenize ../shared/tokenizers/llama3/tokenizer.json */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/file.h"
#include "formats/gguf.h"
#include "tokenizer/hf_tokenizer.h"
#include "tokenizer/tokenize.h"

enum { TEXT_BYTES = 1 << 20 };

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static uint32_t next_rand(uint32_t bound) {
    rng_state ^= rng_state << 13; /* xorshift64: fixed seed, same text every run */
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state % bound);
}

static const char *const COMMON[] = {
    "the", "of", "and", "to", "in", "a", "is", "that", "for", "it", "as", "was", "with", "be", "by", "on", "not",
    "he", "this", "are", "or", "his", "from", "at", "which", "but", "have", "an", "had", "they", "you", "were",
    "their", "one", "all", "we", "can", "her", "has", "there", "been", "if", "more", "when", "will", "would",
    "who", "so", "no", "time", "people", "model", "token", "window", "cache", "request", "server", "budget",
    "because", "through", "between", "another", "however", "important", "different", "information", "system"};
static const char *const SYLLABLES[] = {"ka", "ri", "to", "men", "sol", "ver", "an", "dre", "qu", "ix",
                                        "lo", "pha", "stru", "ne", "gal", "th", "or", "emb", "wy", "zu"};
static const char *const EXTRAS[] = {
    "café", "naïve", "Größe", "résumé", "привет", "мир", "東京", "日本語", "你好", "世界", "🙂", "🚀", "—", "…",
    "3.14159", "2024-05-01", "$1,299.00", "(see §4)", "x += 1;", "if (n > 0) {", "return ids;", "}\n",
    "    ", "\t", "\n\n", "e.g.", "I'm", "don't", "we've", "HTTP/1.1", "0xFF", "#include <stdio.h>"};

static size_t append(char *buf, size_t len, const char *s) {
    size_t n = strlen(s);
    if (len + n > TEXT_BYTES) return len;
    memcpy(buf + len, s, n);
    return len + n;
}

static char *make_text(size_t *out_len) {
    char *buf = malloc(TEXT_BYTES + 1);
    if (!buf) return NULL;
    size_t len = 0, words = 0;
    while (len + 64 < TEXT_BYTES) {
        uint32_t kind = next_rand(100);
        if (kind < 70) {
            len = append(buf, len, COMMON[next_rand(sizeof COMMON / sizeof COMMON[0])]);
        } else if (kind < 88) {
            for (uint32_t s = 0, n = 1 + next_rand(4); s < n; s++)
                len = append(buf, len, SYLLABLES[next_rand(sizeof SYLLABLES / sizeof SYLLABLES[0])]);
        } else if (kind < 94) {
            char num[16];
            snprintf(num, sizeof num, "%u", next_rand(100000));
            len = append(buf, len, num);
        } else {
            len = append(buf, len, EXTRAS[next_rand(sizeof EXTRAS / sizeof EXTRAS[0])]);
        }
        words++;
        uint32_t sep = next_rand(100);
        len = append(buf, len, sep < 80 ? " " : sep < 88 ? ", " : sep < 95 ? ". " : sep < 98 ? ".\n" : "\n\n");
        if (words % 17 == 0) buf[len - 1] = ' ';
    }
    buf[len] = '\0';
    *out_len = len;
    return buf;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    if (argc < 2 || strcmp(argv[1], "--help") == 0) {
        fprintf(stderr, "usage: bench_tokenize VOCAB [TEXT_FILE] [--repeat N]\n");
        return 2;
    }
    const char *vocab_path = argv[1], *text_path = NULL;
    int repeat = 5;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--repeat") == 0 && i + 1 < argc) repeat = atoi(argv[++i]);
        else text_path = argv[i];
    }
    if (repeat < 1) repeat = 1;
    hr_error err = {0};
    hr_vocab *v = NULL;
    hr_gguf g;
    bool gguf = strlen(vocab_path) > 5 && strcmp(vocab_path + strlen(vocab_path) - 5, ".gguf") == 0;
    double t0 = now_s();
    hr_status st = gguf ? hr_gguf_open(&g, vocab_path, &err) : HR_OK;
    if (st == HR_OK) st = gguf ? hr_vocab_from_gguf(&v, &g, &err) : hr_vocab_from_hf(&v, vocab_path, &err);
    double load_s = now_s() - t0;
    if (st != HR_OK) {
        fprintf(stderr, "bench_tokenize: %s\n", err.msg);
        return 1;
    }
    char *text;
    size_t len;
    if (text_path) {
        st = hr_file_read_all(text_path, &text, &len, &err);
    } else {
        text = make_text(&len);
        if (!text) st = hr_fail(&err, HR_ERR_NOMEM, "out of memory for the text");
    }
    double best = 0;
    size_t count = 0;
    for (int r = 0; r < repeat && st == HR_OK; r++) {
        hr_tokens ids = {0};
        double start = now_s();
        st = hr_tok_encode(v, text, len, 0, &ids, &err);
        double mbs = (double)len / (1 << 20) / (now_s() - start);
        if (mbs > best) best = mbs;
        count = ids.count;
        hr_tokens_free(&ids);
    }
    if (st == HR_OK)
        printf("%s: loaded %d tokens in %.3f s; %zu bytes -> %zu tokens (%.2f bytes/token); %.1f MB/s (best of %d)\n",
               vocab_path, v->n_tokens, load_s, len, count, (double)len / (double)(count ? count : 1), best, repeat);
    else
        fprintf(stderr, "bench_tokenize: %s\n", err.msg);
    free(text);
    hr_vocab_free(v);
    if (gguf) hr_gguf_close(&g);
    return st == HR_OK ? 0 : 1;
}
