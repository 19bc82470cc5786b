#include "tokenizer/jinja_unicode.h"

size_t hr_utf8_decode(const char *s, size_t n, uint32_t *cp) {
    const unsigned char *u = (const unsigned char *)s;
    unsigned char c = u[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    size_t len;
    uint32_t v, min;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2, v = c & 0x1Fu, min = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3, v = c & 0x0Fu, min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4, v = c & 0x07u, min = 0x10000;
    } else {
        *cp = HR_UTF8_ESCAPE_BASE + c;
        return 1;
    }
    if (n < len) {
        *cp = HR_UTF8_ESCAPE_BASE + c;
        return 1;
    }
    for (size_t i = 1; i < len; i++) {
        if ((u[i] & 0xC0) != 0x80) {
            *cp = HR_UTF8_ESCAPE_BASE + c;
            return 1;
        }
        v = (v << 6) | (u[i] & 0x3Fu);
    }
    /* overlong forms, UTF-16 surrogates and values past U+10FFFF are not UTF-8 */
    if (v < min || (v >= 0xD800 && v <= 0xDFFF) || v > 0x10FFFF) {
        *cp = HR_UTF8_ESCAPE_BASE + c;
        return 1;
    }
    *cp = v;
    return len;
}

size_t hr_utf8_encode(uint32_t cp, char out[4]) {
    if (cp >= HR_UTF8_ESCAPE_BASE + 0x80 && cp <= HR_UTF8_ESCAPE_BASE + 0xFF) {
        out[0] = (char)(cp - HR_UTF8_ESCAPE_BASE);
        return 1;
    }
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

size_t hr_utf8_count(const char *s, size_t n) {
    size_t count = 0;
    for (size_t i = 0; i < n; count++) {
        uint32_t cp;
        i += hr_utf8_decode(s + i, n - i, &cp);
    }
    return count;
}

bool hr_uni_is_space(uint32_t cp) {
    return (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x20) || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
           (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F ||
           cp == 0x3000;
}

bool hr_uni_is_linebreak(uint32_t cp) {
    return (cp >= 0x0A && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x1E) || cp == 0x85 || cp == 0x2028 || cp == 0x2029;
}

bool hr_uni_is_printable(uint32_t cp) {
    static const uint32_t ranges[][2] = {
        {0x00, 0x1F},        {0x7F, 0xA0},     {0xAD, 0xAD},       {0x600, 0x605},     {0x61C, 0x61C},
        {0x6DD, 0x6DD},      {0x70F, 0x70F},   {0x1680, 0x1680},   {0x180E, 0x180E},   {0x2000, 0x200F},
        {0x2028, 0x202F},    {0x205F, 0x206F}, {0x3000, 0x3000},   {0xD800, 0xF8FF},   {0xFEFF, 0xFEFF},
        {0xFFF9, 0xFFFB},    {0xFFFE, 0xFFFF}, {0x1D173, 0x1D17A}, {0xE0001, 0xE0001}, {0xE0020, 0xE007F},
        {0xF0000, 0x10FFFF},
    };
    for (size_t i = 0; i < sizeof ranges / sizeof ranges[0]; i++)
        if (cp >= ranges[i][0] && cp <= ranges[i][1]) return false;
    return true;
}

/* Blocks with letters that have case but whose mappings are not carried here. */
static bool unsupported_cased_block(uint32_t cp) {
    static const uint32_t ranges[][2] = {
        {0x0180, 0x02AF},   {0x0345, 0x0345},   {0x0370, 0x03FF},   {0x0460, 0x052F},   {0x0531, 0x0587},
        {0x10A0, 0x10FF},   {0x13A0, 0x13FF},   {0x1C80, 0x1CBF},   {0x1D00, 0x1DBF},   {0x1E00, 0x1FFF},
        {0x2100, 0x218F},   {0x24B6, 0x24E9},   {0x2C00, 0x2D2F},   {0xA640, 0xA69F},   {0xA720, 0xA7FF},
        {0xAB30, 0xABBF},   {0xFB00, 0xFB17},   {0x10400, 0x104FF}, {0x10570, 0x105BF}, {0x10C80, 0x10CFF},
        {0x118A0, 0x118FF}, {0x16E40, 0x16E9F}, {0x1E900, 0x1E95F},
    };
    for (size_t i = 0; i < sizeof ranges / sizeof ranges[0]; i++)
        if (cp >= ranges[i][0] && cp <= ranges[i][1]) return true;
    return false;
}

/* Simple one-to-one mapping; *is_upper tells which case cp is in. Returns false when cp
 * is not a letter with a simple mapping in the supported blocks. */
static bool simple_pair(uint32_t cp, uint32_t *other, bool *is_upper) {
#define PAIR(up, low) (*other = (up) == cp ? (low) : (up), *is_upper = (up) == cp, true)
    if (cp >= 'A' && cp <= 'Z') return PAIR(cp, cp + 32);
    if (cp >= 'a' && cp <= 'z') return PAIR(cp - 32, cp);
    if ((cp >= 0xC0 && cp <= 0xDE) && cp != 0xD7) return PAIR(cp, cp + 32);
    if ((cp >= 0xE0 && cp <= 0xFE) && cp != 0xF7) return PAIR(cp - 32, cp);
    if (cp == 0xFF) return PAIR(0x178u, 0xFFu);
    if (cp == 0x178) return PAIR(0x178u, 0xFFu);
    /* Latin Extended-A alternates upper/lower in pairs whose parity flips twice */
    if ((cp >= 0x100 && cp <= 0x12F) || (cp >= 0x132 && cp <= 0x137) || (cp >= 0x14A && cp <= 0x177))
        return PAIR(cp & ~1u, cp | 1u);
    if ((cp >= 0x139 && cp <= 0x148) || (cp >= 0x179 && cp <= 0x17E))
        return (cp & 1u) ? PAIR(cp, cp + 1) : PAIR(cp - 1, cp);
    if (cp >= 0x391 && cp <= 0x3AB && cp != 0x3A2) return PAIR(cp, cp + 32);
    if (cp >= 0x3B1 && cp <= 0x3CB && cp != 0x3C2) return PAIR(cp - 32, cp);
    if (cp == 0x386 || cp == 0x3AC) return PAIR(0x386u, 0x3ACu);
    if ((cp >= 0x388 && cp <= 0x38A)) return PAIR(cp, cp + 37);
    if ((cp >= 0x3AD && cp <= 0x3AF)) return PAIR(cp - 37, cp);
    if (cp == 0x38C || cp == 0x3CC) return PAIR(0x38Cu, 0x3CCu);
    if (cp == 0x38E || cp == 0x38F) return PAIR(cp, cp + 63);
    if (cp == 0x3CD || cp == 0x3CE) return PAIR(cp - 63, cp);
    if (cp >= 0x400 && cp <= 0x40F) return PAIR(cp, cp + 80);
    if (cp >= 0x450 && cp <= 0x45F) return PAIR(cp - 80, cp);
    if (cp >= 0x410 && cp <= 0x42F) return PAIR(cp, cp + 32);
    if (cp >= 0x430 && cp <= 0x44F) return PAIR(cp - 32, cp);
    if (cp >= 0xFF21 && cp <= 0xFF3A) return PAIR(cp, cp + 32);
    if (cp >= 0xFF41 && cp <= 0xFF5A) return PAIR(cp - 32, cp);
#undef PAIR
    return false;
}

/* Letters whose mapping is not a simple pair, as Python's str methods give them. */
static int special_case(uint32_t cp, hr_case_mode mode, uint32_t out[3]) {
    switch (cp) {
    case 0xDF: /* sharp s: "SS" upper, "Ss" title */
        if (mode == HR_CASE_LOWER) break;
        out[0] = 'S', out[1] = mode == HR_CASE_UPPER ? 'S' : 's';
        return 2;
    case 0xB5: /* micro sign */ out[0] = mode == HR_CASE_LOWER ? 0xB5 : 0x39C; return 1;
    case 0x130: /* dotted capital I lowers to i + combining dot */
        if (mode != HR_CASE_LOWER) break;
        out[0] = 'i', out[1] = 0x307;
        return 2;
    case 0x131: /* dotless i */ out[0] = mode == HR_CASE_LOWER ? 0x131 : 'I'; return 1;
    case 0x149: /* n preceded by apostrophe */
        if (mode == HR_CASE_LOWER) break;
        out[0] = 0x2BC, out[1] = 'N';
        return 2;
    case 0x17F: /* long s */ out[0] = mode == HR_CASE_LOWER ? 0x17F : 'S'; return 1;
    case 0x3A3: /* capital sigma; the final-sigma rule needs context, see callers */
    case 0x3C2:
    case 0x3C3: out[0] = mode == HR_CASE_LOWER ? (cp == 0x3A3 ? 0x3C3 : cp) : 0x3A3; return 1;
    default: return -1;
    }
    out[0] = cp;
    return 1;
}

bool hr_uni_is_cased(uint32_t cp) {
    uint32_t other;
    bool up;
    uint32_t out[3];
    return simple_pair(cp, &other, &up) || special_case(cp, HR_CASE_UPPER, out) > 0 || cp == 0xAA || cp == 0xBA ||
           cp == 0x138 || unsupported_cased_block(cp);
}

bool hr_uni_is_case_ignorable(uint32_t cp) {
    static const uint32_t ranges[][2] = {
        {0x27, 0x27},     {0x2E, 0x2E},     {0x3A, 0x3A},     {0x5E, 0x5E},     {0x60, 0x60},     {0xA8, 0xA8},
        {0xAD, 0xAD},     {0xAF, 0xAF},     {0xB4, 0xB4},     {0xB7, 0xB8},     {0x2B0, 0x36F},   {0x374, 0x375},
        {0x37A, 0x37A},   {0x384, 0x385},   {0x387, 0x387},   {0x483, 0x489},   {0x559, 0x559},   {0x200B, 0x200F},
        {0x2018, 0x2019}, {0x2024, 0x2024}, {0x2027, 0x2027}, {0xFE00, 0xFE0F}, {0xFF07, 0xFF07}, {0xFF0E, 0xFF0E},
        {0xFF1A, 0xFF1A}, {0xFF3E, 0xFF3E}, {0xFF40, 0xFF40},
    };
    for (size_t i = 0; i < sizeof ranges / sizeof ranges[0]; i++)
        if (cp >= ranges[i][0] && cp <= ranges[i][1]) return true;
    return false;
}

int hr_uni_case(uint32_t cp, hr_case_mode mode, uint32_t out[3]) {
    int n = special_case(cp, mode, out);
    if (n > 0) return n;
    uint32_t other;
    bool is_upper;
    if (simple_pair(cp, &other, &is_upper)) {
        bool want_upper = mode != HR_CASE_LOWER;
        out[0] = want_upper == is_upper ? cp : other;
        return 1;
    }
    if (unsupported_cased_block(cp)) return 0;
    out[0] = cp;
    return 1;
}
