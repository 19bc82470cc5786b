#include "base/utf8.h"

#include <string.h>

/* Sequence length announced by lead byte c (0 for bytes that cannot lead), and the
 * range allowed for the second byte, which rules out overlong forms, surrogates and
 * code points above U+10FFFF. */
static size_t lead_info(unsigned char c, unsigned char *lo, unsigned char *hi) {
    *lo = 0x80;
    *hi = 0xBF;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) return 2;
    if (c >= 0xE0 && c <= 0xEF) {
        if (c == 0xE0) *lo = 0xA0;
        if (c == 0xED) *hi = 0x9F;
        return 3;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        if (c == 0xF0) *lo = 0x90;
        if (c == 0xF4) *hi = 0x8F;
        return 4;
    }
    return 0;
}

/* True when s[0..k) are the first k bytes of a well-formed sequence of length need. */
static bool valid_prefix(const unsigned char *s, size_t k, size_t need, unsigned char lo, unsigned char hi) {
    for (size_t i = 1; i < k && i < need; i++) {
        bool ok = i == 1 ? s[i] >= lo && s[i] <= hi : (s[i] & 0xC0) == 0x80;
        if (!ok) return false;
    }
    return true;
}

size_t hr_utf8_seq_len(const unsigned char *s, size_t avail) {
    if (avail == 0) return 0;
    unsigned char lo, hi;
    size_t need = lead_info(s[0], &lo, &hi);
    if (need == 0 || avail < need || !valid_prefix(s, need, need, lo, hi)) return 0;
    return need;
}

size_t hr_utf8_complete_len(const char *str, size_t n) {
    const unsigned char *s = (const unsigned char *)str;
    /* Only a lead byte among the last three can start an unfinished sequence. */
    for (size_t back = 1; back <= 3 && back <= n; back++) {
        const unsigned char *lead = s + n - back;
        if ((*lead & 0xC0) == 0x80) continue;
        unsigned char lo, hi;
        size_t need = lead_info(*lead, &lo, &hi);
        return need > back && valid_prefix(lead, back, need, lo, hi) ? n - back : n;
    }
    return n;
}

size_t hr_utf8_sanitize(const char *str, size_t n, char *dst) {
    const unsigned char *s = (const unsigned char *)str;
    size_t out = 0;
    for (size_t i = 0; i < n;) {
        size_t len = hr_utf8_seq_len(s + i, n - i);
        if (len == 0) {
            memcpy(dst + out, "\xEF\xBF\xBD", 3);
            out += 3;
            i++;
        } else {
            memcpy(dst + out, s + i, len);
            out += len;
            i += len;
        }
    }
    dst[out] = '\0';
    return out;
}
