/*
 * audit_parse: one mail-log line -> one struct audit_event.  Pure: no state,
 * no allocation; every string of the event points into the line.
 *
 * The forms come from Cisco's published mail-log documentation and from
 * parsers of real ESA logs (tests/data/audit/esa-variants.log cites each):
 *   time stamps   "Www Mmm dd HH:MM:SS YYYY Level: " (ctime, day space- or
 *                 zero-padded); syslog "<PRI>Mmm dd HH:MM:SS [YYYY] [HOST]
 *                 TAG: Level: ", with or without PRI, weekday, host or year,
 *                 ISO 8601 (syslog-ng), and a full ESA line behind a syslog
 *                 header (the ESA time stamp wins)
 *   connections   "New SMTP|smtp ICID|DCID n interface ..." (with or without
 *                 port, reverse DNS, the interface address)
 *   TLS           "TLS success" bare, "protocol P cipher C" (cipher may be
 *                 empty, trailing space, " for DOMAIN"), "CN: <x>" / "CN=x";
 *                 "TLS failed" bare or ": reason"; "TLS was required but ..."
 *                 in the ICID form and the "DCID n IP a" form; "STARTTLS
 *                 command not supported."; ours: "TLS verify ok|failed",
 *                 "TLS peer certificate ...", the required-TLS Warning
 *   messages      Start MID, From:, RID r To:, ready, done, aborted,
 *                 "Message finished|aborted MID", Delivery start, Message
 *                 done (new "to RID [..]" and old "to [..]" forms), Bounced
 *                 (new and "DCID: n Message m" forms), Connection Error (with
 *                 and without domain, old "reason DCID: n" form)
 *
 * Must not: allocate, look at global state, read outside the line (words
 * and numbers are read 16 or 8 bytes at a time, only where the line has
 * them), or accept a line by a loose substring match (a "TLS success" inside
 * a Subject line counts for nothing: a line is recognized by its prefix
 * after the level word).
 */
#include "audit.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#include <stdio.h>
#include <string.h>

/* A cursor over the line: P up to E.  LINE is where the line starts, so
 * the bytes from LINE to E may be read, also before P. */
struct audit_parse_cur {
    const char *p, *e, *line;
};

static const char *const audit_parse_kinds[AUDIT_EV_COUNT] = {
    "none",        "conn_new", "tls_ok",    "tls_failed", "tls_required", "no_starttls", "verify",
    "peer_cert",   "close",    "mid_start", "mid_from",   "mid_rcpt",     "mid_ready",   "mid_done",
    "mid_aborted", "delivery", "delivered", "bounced",    "conn_error",   "req_warning",
};

const char *audit_parse_kind_name(enum audit_ev kind)
{
    return kind < AUDIT_EV_COUNT ? audit_parse_kinds[kind] : "?";
}

/* ---- cursor helpers ---------------------------------------------------- */

/* The helpers are called with constant strings and lengths: inlined, a
 * literal compare becomes a few integer compares.  AUDIT_PARSE_USUAL marks
 * the way the common line takes. */
#if defined(__GNUC__)
#define AUDIT_PARSE_INLINE   static inline __attribute__((always_inline))
#define AUDIT_PARSE_USUAL(x) __builtin_expect(!!(x), 1)
#else
#define AUDIT_PARSE_INLINE   static inline
#define AUDIT_PARSE_USUAL(x) (x)
#endif

/* Eight bytes at a time in one integer (little-endian GCC and clang): the
 * digits of a number, and a byte searched for where SSE2 is missing.  Byte
 * loops elsewhere. */
#if defined(__GNUC__) && defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define AUDIT_PARSE_SWAR 1
#endif

AUDIT_PARSE_INLINE size_t audit_parse_left(const struct audit_parse_cur *c)
{
    return (size_t)(c->e - c->p);
}

AUDIT_PARSE_INLINE uint64_t audit_parse_load8(const char *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof(v));
    return v;
}

/* The first CH in [P, E), or E; the bytes from LINE (<= P) to E may be
 * read. */
AUDIT_PARSE_INLINE const char *audit_parse_chr(const char *p, const char *e, const char *line,
                                               char ch)
{
#if defined(__SSE2__)
    const __m128i pattern = _mm_set1_epi8(ch);
    for (; e - p >= 16; p += 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
        unsigned hits = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(v, pattern));
        if (hits != 0)
            return p + __builtin_ctz(hits);
    }
    if (p < e && e - line >= 16) { /* the last bytes: the word that ends at E */
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(e - 16));
        unsigned hits = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(v, pattern));
        hits >>= 16 - (e - p); /* from P on */
        return hits != 0 ? p + __builtin_ctz(hits) : e;
    }
#elif defined(AUDIT_PARSE_SWAR)
    const uint64_t ones = 0x0101010101010101u, lows = 0x7f7f7f7f7f7f7f7fu;
    const uint64_t pattern = ones * (unsigned char)ch;
    for (; e - p >= 8; p += 8) {
        uint64_t x = audit_parse_load8(p) ^ pattern;
        uint64_t zero = (x - ones) & ~x & ~lows; /* its lowest bit marks the first CH */
        if (zero != 0)
            return p + __builtin_ctzll(zero) / 8;
    }
    if (p < e && e - line >= 8) { /* the last bytes: the word that ends at E */
        uint64_t x = audit_parse_load8(e - 8) ^ pattern;
        uint64_t zero = ~(((x & lows) + lows) | x | lows); /* exactly the CH bytes */
        zero >>= 8 * (8 - (e - p));                        /* from P on */
        return zero != 0 ? p + __builtin_ctzll(zero) / 8 : e;
    }
#else
    (void)line;
#endif
    while (p < e && *p != ch)
        p++;
    return p;
}

AUDIT_PARSE_INLINE uint32_t audit_parse_load4(const char *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof(v));
    return v;
}

AUDIT_PARSE_INLINE uint16_t audit_parse_load2(const char *p)
{
    uint16_t v;
    memcpy(&v, p, sizeof(v));
    return v;
}

/* P[0..N) == S[0..N), in overlapping loads of 8, 4 or 2 bytes. */
AUDIT_PARSE_INLINE int audit_parse_same(const char *p, const char *s, size_t n)
{
    if (n >= 8) {
        for (size_t i = 0; i + 8 < n; i += 8) {
            if (audit_parse_load8(p + i) != audit_parse_load8(s + i))
                return 0;
        }
        return audit_parse_load8(p + n - 8) == audit_parse_load8(s + n - 8);
    }
    if (n >= 4)
        return audit_parse_load4(p) == audit_parse_load4(s) &&
               audit_parse_load4(p + n - 4) == audit_parse_load4(s + n - 4);
    if (n >= 2)
        return audit_parse_load2(p) == audit_parse_load2(s) &&
               audit_parse_load2(p + n - 2) == audit_parse_load2(s + n - 2);
    return n == 0 || *p == *s;
}

AUDIT_PARSE_INLINE int audit_parse_lit(struct audit_parse_cur *c, const char *s, size_t n)
{
    if (audit_parse_left(c) < n || !audit_parse_same(c->p, s, n))
        return 0;
    c->p += n;
    return 1;
}

#define AUDIT_PARSE_LIT(c, s) audit_parse_lit((c), (s), sizeof(s) - 1)

AUDIT_PARSE_INLINE int audit_parse_digit(char ch)
{
    return ch >= '0' && ch <= '9';
}

/* The value of the digits in the low K (1..8) bytes of X ('0' already
 * subtracted from each), the first digit in the lowest byte. */
AUDIT_PARSE_INLINE uint64_t audit_parse_digits8(uint64_t x, unsigned k)
{
    /* Leading zeros in front, then pairs of digits, fours, all eight. */
    x <<= 8 * (8 - k);
    x = ((x * (10 << 8 | 1)) >> 8) & 0x00ff00ff00ff00ffu;
    x = ((x * (100 << 16 | 1)) >> 16) & 0x0000ffff0000ffffu;
    return ((x * (10000ull << 32 | 1)) >> 32) & 0xffffffffu;
}

/* One to 19 digits. */
AUDIT_PARSE_INLINE int audit_parse_num(struct audit_parse_cur *c, uint64_t *v)
{
#if defined(AUDIT_PARSE_SWAR)
    size_t left = audit_parse_left(c);
    /* Up to seven digits at once; near the end of the line, its last eight
     * bytes with zeros shifted in after E. */
    if (AUDIT_PARSE_USUAL(left >= 8 || (left > 0 && c->e - c->line >= 8))) {
        uint64_t w =
            left >= 8 ? audit_parse_load8(c->p) : audit_parse_load8(c->e - 8) >> (64 - 8 * left);
        uint64_t x = w - 0x3030303030303030u; /* the digits: 0 to 9 */
        /* The high bit of the other bytes: above 9, or below 0 (exact up to
         * the first of them, all that is used). */
        uint64_t other = (x | (x + 0x7676767676767676u)) & 0x8080808080808080u;
        if (AUDIT_PARSE_USUAL(other != 0)) {
            unsigned k = (unsigned)__builtin_ctzll(other) / 8;
            c->p += k;
            *v = k > 0 ? audit_parse_digits8(x, k) : 0;
            return k > 0;
        }
    }
#endif
    const char *start = c->p, *p = c->p;
    const char *end = c->e - p > 19 ? p + 19 : c->e;
    uint64_t x = 0;

    /* Locals, not C: the compiler keeps them in registers. */
    while (p < end && audit_parse_digit(*p))
        x = x * 10 + (uint64_t)(*p++ - '0');
    c->p = p;
    *v = x;
    return p > start;
}

AUDIT_PARSE_INLINE void audit_parse_spaces(struct audit_parse_cur *c)
{
    while (c->p < c->e && *c->p == ' ')
        c->p++;
}

AUDIT_PARSE_INLINE struct audit_str audit_parse_slice(const char *a, const char *b)
{
    struct audit_str s = {a, (uint32_t)(b - a)};
    return s;
}

/* Up to the next space (or the end); the cursor stays on the space. */
AUDIT_PARSE_INLINE struct audit_str audit_parse_word(struct audit_parse_cur *c)
{
    const char *start = c->p;
    c->p = audit_parse_chr(c->p, c->e, c->line, ' ');
    return audit_parse_slice(start, c->p);
}

/* The rest of the line without trailing spaces. */
static struct audit_str audit_parse_rest(struct audit_parse_cur *c)
{
    const char *start = c->p;
    const char *end = c->e;
    while (end > start && (end[-1] == ' ' || end[-1] == '\r'))
        end--;
    c->p = c->e;
    return audit_parse_slice(start, end);
}

/* The first S[0..N) at or after the cursor, or NULL. */
AUDIT_PARSE_INLINE const char *audit_parse_find(const struct audit_parse_cur *c, const char *s,
                                                size_t n)
{
    if (audit_parse_left(c) < n)
        return NULL;
    const char *last = c->e - n + 1; /* candidates start before LAST */
    for (const char *p = c->p; (p = audit_parse_chr(p, last, c->line, s[0])) < last; p++) {
        if (audit_parse_same(p + 1, s + 1, n - 1))
            return p;
    }
    return NULL;
}

/* The text before S, leaving the cursor after S; 0 if S is not there. */
AUDIT_PARSE_INLINE int audit_parse_upto(struct audit_parse_cur *c, const char *s, size_t n,
                                        struct audit_str *out)
{
    const char *at = audit_parse_find(c, s, n);
    if (at == NULL)
        return 0;
    *out = audit_parse_slice(c->p, at);
    c->p = at + n;
    return 1;
}

#define AUDIT_PARSE_UPTO(c, s, out) audit_parse_upto((c), (s), sizeof(s) - 1, (out))

/* "<addr>" or a bare word. */
AUDIT_PARSE_INLINE struct audit_str audit_parse_addr(struct audit_parse_cur *c)
{
    audit_parse_spaces(c);
    if (c->p < c->e && *c->p == '<') {
        const char *end = audit_parse_chr(c->p, c->e, c->line, '>');
        if (end < c->e) {
            struct audit_str s = audit_parse_slice(c->p + 1, end);
            c->p = end + 1;
            return s;
        }
        c->p++;
    }
    return audit_parse_word(c);
}

/* ---- time -------------------------------------------------------------- */

int64_t audit_parse_civil(int year, int month, int day, int hour, int min, int sec)
{
    int64_t y = year - (month <= 2);
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    int64_t days = era * 146097 + doe - 719468;
    return days * 86400 + hour * 3600 + min * 60 + sec;
}

char *audit_parse_format_time(int64_t t, char *buf, size_t len)
{
    int64_t days = t >= 0 ? t / 86400 : (t - 86399) / 86400;
    int64_t secs = t - days * 86400;
    int64_t z = days + 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    int64_t d = doy - (153 * mp + 2) / 5 + 1;
    int64_t m = mp < 10 ? mp + 3 : mp - 9;
    int64_t y = yoe + era * 400 + (m <= 2);

    char out[20];
    int64_t f[6] = {y, m, d, secs / 3600, secs / 60 % 60, secs % 60};
    static const char sep[6] = {'-', '-', 'T', ':', ':', '\0'};
    if (y < 0 || y > 9999 || len < 20) {
        snprintf(buf, len, "%lld", (long long)t);
        return buf;
    }
    for (int i = 0, at = 0; i < 6; i++) {
        int w = i == 0 ? 4 : 2;
        for (int k = w - 1; k >= 0; k--, f[i] /= 10)
            out[at + k] = (char)('0' + f[i] % 10);
        at += w;
        out[at++] = sep[i];
    }
    memcpy(buf, out, 20);
    return buf;
}

static int audit_parse_month(const char *s)
{
    switch (s[0]) {
    case 'J':
        if (s[1] == 'a')
            return s[2] == 'n' ? 1 : 0;
        return s[1] != 'u' ? 0 : s[2] == 'n' ? 6 : s[2] == 'l' ? 7 : 0;
    case 'F':
        return s[1] == 'e' && s[2] == 'b' ? 2 : 0;
    case 'M':
        return s[1] != 'a' ? 0 : s[2] == 'r' ? 3 : s[2] == 'y' ? 5 : 0;
    case 'A':
        return s[1] == 'p' && s[2] == 'r' ? 4 : s[1] == 'u' && s[2] == 'g' ? 8 : 0;
    case 'S':
        return s[1] == 'e' && s[2] == 'p' ? 9 : 0;
    case 'O':
        return s[1] == 'c' && s[2] == 't' ? 10 : 0;
    case 'N':
        return s[1] == 'o' && s[2] == 'v' ? 11 : 0;
    case 'D':
        return s[1] == 'e' && s[2] == 'c' ? 12 : 0;
    }
    return 0;
}

static int audit_parse_weekday(const char *s)
{
    static const char names[] = "MonTueWedThuFriSatSun";
    for (int i = 0; i < 7; i++) {
        if (s[0] == names[i * 3] && s[1] == names[i * 3 + 1] && s[2] == names[i * 3 + 2])
            return 1;
    }
    return 0;
}

static int audit_parse_2d(const char *s, int *v)
{
    if (!audit_parse_digit(s[0]) || !audit_parse_digit(s[1]))
        return 0;
    *v = (s[0] - '0') * 10 + (s[1] - '0');
    return 1;
}

AUDIT_PARSE_INLINE unsigned audit_parse_digit_at(const char *s, int i)
{
    return (unsigned)((unsigned char)s[i] - '0'); /* above 9: not a digit */
}

/* "HH:MM:SS" -> seconds of the day. */
AUDIT_PARSE_INLINE int audit_parse_hms(const char *s, int *secs)
{
    unsigned h0 = audit_parse_digit_at(s, 0), h1 = audit_parse_digit_at(s, 1);
    unsigned m0 = audit_parse_digit_at(s, 3), m1 = audit_parse_digit_at(s, 4);
    unsigned s0 = audit_parse_digit_at(s, 6), s1 = audit_parse_digit_at(s, 7);
    if (h0 > 9 || h1 > 9 || s[2] != ':' || m0 > 9 || m1 > 9 || s[5] != ':' || s0 > 9 || s1 > 9)
        return 0;
    unsigned h = h0 * 10 + h1, m = m0 * 10 + m1, sec = s0 * 10 + s1;
    if (h > 23 || m > 59 || sec > 60)
        return 0;
    *secs = (int)(h * 3600 + m * 60 + sec);
    return 1;
}

static int audit_parse_4d(const char *s, int *v)
{
    int a, b;
    if (!audit_parse_2d(s, &a) || !audit_parse_2d(s + 2, &b))
        return 0;
    *v = a * 100 + b;
    return 1;
}

static int64_t audit_parse_stamp_time(int year, int mon, int day, int secs)
{
    return audit_parse_civil(year, mon, day, 0, 0, 0) + secs;
}

/* "Mmm dd HH:MM:SS" (day one or two digits, space- or zero-padded). */
static int audit_parse_mdt(struct audit_parse_cur *c, int *mon, int *day, int *secs)
{
    const char *s = c->p;
    if (audit_parse_left(c) < 14 || (*mon = audit_parse_month(s)) == 0 || s[3] != ' ')
        return 0;
    s += 4;
    if (*s == ' ')
        s++;
    if (!audit_parse_digit(*s))
        return 0;
    *day = *s++ - '0';
    if (audit_parse_digit(*s))
        *day = *day * 10 + (*s++ - '0');
    if (*day < 1 || *day > 31 || c->e - s < 9 || *s != ' ' || !audit_parse_hms(s + 1, secs))
        return 0;
    c->p = s + 9;
    return 1;
}

/* "YYYY-MM-DD[T ]HH:MM:SS[.fraction][zone]" (syslog-ng, RFC 5424). */
static int audit_parse_iso(struct audit_parse_cur *c, int64_t *t)
{
    const char *s = c->p;
    int y, mo, d, secs;
    if (audit_parse_left(c) < 19 || !audit_parse_4d(s, &y) || s[4] != '-' ||
        !audit_parse_2d(s + 5, &mo) || s[7] != '-' || !audit_parse_2d(s + 8, &d) ||
        (s[10] != 'T' && s[10] != ' ') || !audit_parse_hms(s + 11, &secs) || mo < 1 || mo > 12)
        return 0;
    c->p = s + 19;
    while (c->p < c->e && *c->p != ' ')
        c->p++; /* fraction and zone: the log's own clock is what counts */
    *t = audit_parse_stamp_time(y, mo, d, secs);
    return 1;
}

/* [Www ]Mmm dd HH:MM:SS[ YYYY] or ISO; the year from CTX when absent. */
static int audit_parse_stamp(struct audit_parse_cur *c, const struct audit_parse_ctx *ctx,
                             int64_t *t)
{
    int mon, day, secs, year;
    if (audit_parse_left(c) > 0 && audit_parse_digit(*c->p))
        return audit_parse_iso(c, t);
    struct audit_parse_cur save = *c;
    if (audit_parse_left(c) > 4 && audit_parse_weekday(c->p) && c->p[3] == ' ')
        c->p += 4;
    if (!audit_parse_mdt(c, &mon, &day, &secs)) {
        *c = save;
        return 0;
    }
    if (audit_parse_left(c) >= 5 && c->p[0] == ' ' && audit_parse_4d(c->p + 1, &year) &&
        (audit_parse_left(c) == 5 || c->p[5] == ' ')) {
        c->p += 5;
    } else {
        year = ctx != NULL && ctx->ref_year > 0 ? ctx->ref_year : 1970;
        if (ctx != NULL && ctx->ref_year > 0 && mon > ctx->ref_month)
            year--;
    }
    *t = audit_parse_stamp_time(year, mon, day, secs);
    return 1;
}

/* The fixed-width ESA form "Www Mmm dd HH:MM:SS YYYY " at S. */
static int audit_parse_ctime_fast(const char *s, size_t len, int64_t *t)
{
    int mon, day, secs, year;
    if (len < 25 || s[3] != ' ' || s[7] != ' ' || s[10] != ' ' || s[19] != ' ' || s[24] != ' ')
        return 0;
    if ((mon = audit_parse_month(s + 4)) == 0 || !audit_parse_hms(s + 11, &secs) ||
        !audit_parse_4d(s + 20, &year))
        return 0;
    if (s[8] == ' ' && audit_parse_digit(s[9]))
        day = s[9] - '0';
    else if (!audit_parse_2d(s + 8, &day))
        return 0;
    *t = audit_parse_stamp_time(year, mon, day, secs);
    return 1;
}

/* "Info: " and the other level words. */
static int audit_parse_level(struct audit_parse_cur *c, char *level)
{
    const char *s = c->p;
    size_t n = audit_parse_left(c);
    size_t w = 0;
    switch (n > 0 ? *s : 0) {
    case 'I':
        w = n >= 6 && memcmp(s, "Info: ", 6) == 0 ? 6 : 0;
        break;
    case 'W':
        w = n >= 9 && memcmp(s, "Warning: ", 9) == 0 ? 9 : 0;
        break;
    case 'D':
        w = n >= 7 && memcmp(s, "Debug: ", 7) == 0 ? 7 : 0;
        break;
    case 'T':
        w = n >= 7 && memcmp(s, "Trace: ", 7) == 0 ? 7 : 0;
        break;
    case 'C':
        w = n >= 10 && memcmp(s, "Critical: ", 10) == 0 ? 10 : 0;
        break;
    case 'A':
        w = n >= 7 && memcmp(s, "Alert: ", 7) == 0 ? 7 : 0;
        break;
    }
    if (w == 0)
        return 0;
    *level = *s;
    c->p += w;
    return 1;
}

static void audit_parse_skip_token(struct audit_parse_cur *c)
{
    audit_parse_word(c);
    audit_parse_spaces(c);
}

/* The general header: PRI, a time stamp, host and tag tokens, the level. */
static int audit_parse_head_slow(struct audit_parse_cur *c, const struct audit_parse_ctx *ctx,
                                 int64_t *t, char *level)
{
    if (audit_parse_left(c) > 0 && *c->p == '<') {
        size_t n = audit_parse_left(c) < 6 ? audit_parse_left(c) : 6;
        const char *gt = memchr(c->p, '>', n);
        if (gt != NULL)
            c->p = gt + 1;
    }
    if (audit_parse_stamp(c, ctx, t))
        audit_parse_spaces(c);
    for (int i = 0; i < 10 && c->p < c->e; i++) { /* RFC 5424 has 7 fields */
        if (audit_parse_level(c, level))
            return 1;
        if (audit_parse_stamp(c, ctx, t)) /* an ESA line behind a syslog header */
            audit_parse_spaces(c);
        else
            audit_parse_skip_token(c);
    }
    return 0;
}

/* The shape of the fixed-width ESA stamp "Www Mmm dd HH:MM:SS YYYY ". */
static int audit_parse_ctime_shape(const char *s, size_t len)
{
    return len >= 25 && s[3] == ' ' && s[7] == ' ' && s[10] == ' ' && s[13] == ':' &&
           s[16] == ':' && s[19] == ' ' && s[24] == ' ';
}

/* audit_parse_head for the lines that are not the common ESA Info line. */
static int audit_parse_head_other(struct audit_parse_cur *c, const struct audit_parse_ctx *ctx,
                                  int64_t *t, char *level, const char **lazy)
{
    if (audit_parse_ctime_shape(c->p, audit_parse_left(c))) {
        struct audit_parse_cur fast = {c->p + 25, c->e, c->line};
        if (audit_parse_level(&fast, level)) {
            *lazy = c->p;
            *c = fast;
            return 1;
        }
    }
    return audit_parse_head_slow(c, ctx, t, level);
}

/* The common head "Www Mmm dd HH:MM:SS YYYY Info: " (ctime shape, level
 * Info): the bytes of the pattern where the mask is set, 32 bytes at S
 * compared as four words. */
static const char audit_parse_info_pattern[32] = "Www Mmm dd HH:MM:SS YYYY Info: ";
/* clang-format off */
static const unsigned char audit_parse_info_mask[32] = {
    0,   0,   0,   255, 0,   0,   0,   255, /* "Www Mmm " */
    0,   0,   255, 0,   0,   255, 0,   0,   /* "dd HH:MM" */
    255, 0,   0,   255, 0,   0,   0,   0,   /* ":SS YYYY" */
    255, 255, 255, 255, 255, 255, 255, 0,   /* " Info: " */
};
/* clang-format on */

AUDIT_PARSE_INLINE int audit_parse_info_head(const char *s)
{
    uint64_t diff = 0;
    for (int i = 0; i < 32; i += 8)
        diff |= (audit_parse_load8(s + i) ^ audit_parse_load8(audit_parse_info_pattern + i)) &
                audit_parse_load8((const char *)audit_parse_info_mask + i);
    return diff == 0;
}

/* Sets *T and *LEVEL and leaves C at the message text; 0 if the line has
 * no level word where one belongs.  The common ESA stamp is only checked
 * for its shape and left in *LAZY (*T stays unknown): its value is computed
 * for the lines that matter. */
AUDIT_PARSE_INLINE int audit_parse_head(struct audit_parse_cur *c,
                                        const struct audit_parse_ctx *ctx, int64_t *t, char *level,
                                        const char **lazy)
{
    *t = AUDIT_NO_TIME;
    *lazy = NULL;
    if (AUDIT_PARSE_USUAL(audit_parse_left(c) > 31 && audit_parse_info_head(c->p))) {
        *level = 'I';
        *lazy = c->p;
        c->p += 31;
        return 1;
    }
    return audit_parse_head_other(c, ctx, t, level, lazy);
}

int64_t audit_parse_line_time(const char *line, size_t len, const struct audit_parse_ctx *ctx)
{
    struct audit_parse_cur c = {line, line + len, line};
    int64_t t;
    char level;
    const char *lazy;
    if (audit_parse_head(&c, ctx, &t, &level, &lazy) && lazy != NULL &&
        !audit_parse_ctime_fast(lazy, len, &t))
        t = AUDIT_NO_TIME;
    return t;
}

int audit_parse_time_arg(const char *s, int end, int64_t *t)
{
    size_t n = strlen(s);
    int y, mo, d, h = 0, mi = 0, sec = 0;
    if (n < 10 || !audit_parse_4d(s, &y) || s[4] != '-' || !audit_parse_2d(s + 5, &mo) ||
        s[7] != '-' || !audit_parse_2d(s + 8, &d) || mo < 1 || mo > 12 || d < 1 || d > 31)
        return -1;
    if (n == 10) {
        *t = audit_parse_civil(y, mo, d, 0, 0, 0) + (end ? 86399 : 0);
        return 0;
    }
    if ((s[10] != 'T' && s[10] != ' ') || n < 16 || !audit_parse_2d(s + 11, &h) || s[13] != ':' ||
        !audit_parse_2d(s + 14, &mi) || h > 23 || mi > 59)
        return -1;
    if (n == 16) {
        *t = audit_parse_civil(y, mo, d, h, mi, end ? 59 : 0);
        return 0;
    }
    if (n != 19 || s[16] != ':' || !audit_parse_2d(s + 17, &sec) || sec > 60)
        return -1;
    *t = audit_parse_civil(y, mo, d, h, mi, sec);
    return 0;
}

/* ---- events ------------------------------------------------------------ */

/* Resets EV for a line that matters: the numbers, and the lengths of the
 * strings (a string is empty by its length; its pointer is then unused).
 * Cheaper than clearing the whole event on every line that counts. */
static enum audit_ev audit_parse_start(struct audit_event *ev, enum audit_ev kind,
                                       enum audit_dir dir)
{
    /* Stores, not a loop over pointers to the fields: once per event. */
    ev->ip.n = ev->local_ip.n = ev->iface.n = ev->host.n = ev->protocol.n = ev->cipher.n = 0;
    ev->cn.n = ev->domain.n = ev->addr.n = ev->reason.n = ev->policy.n = ev->rids.n = 0;
    ev->subject.n = ev->issuer.n = ev->not_after.n = ev->details.n = ev->addr_domain.n = 0;
    ev->kind = kind;
    ev->dir = dir;
    ev->id = ev->mid = ev->icid = 0;
    ev->rid = 0;
    ev->port = ev->verify_ok = ev->no_starttls = 0;
    ev->h_ip = ev->h_domain = ev->h_addr_domain = ev->h_protocol = ev->h_cipher = 0;
    return kind;
}

static int audit_parse_contains(struct audit_str s, const char *needle)
{
    return s.n > 0 && memmem(s.p, s.n, needle, strlen(needle)) != NULL;
}

/* The peer did not offer (or refused) STARTTLS, by the reason's words. */
static int audit_parse_no_starttls(struct audit_str reason)
{
    return audit_parse_contains(reason, "STARTTLS command not supported") ||
           audit_parse_contains(reason, "STARTTLS not offered") ||
           audit_parse_contains(reason, "STARTTLS not advertised") ||
           audit_parse_contains(reason, "did not initiate");
}

/* After "TLS success": protocol, cipher, CN and "for DOMAIN" in any mix. */
static void audit_parse_success_tail(struct audit_parse_cur *c, struct audit_event *ev)
{
    while (c->p < c->e) {
        audit_parse_spaces(c);
        if (AUDIT_PARSE_LIT(c, "protocol ")) {
            ev->protocol = audit_parse_word(c);
        } else if (AUDIT_PARSE_LIT(c, "cipher")) {
            if (c->p < c->e && *c->p == ' ')
                c->p++;
            ev->cipher = audit_parse_word(c);
        } else if (AUDIT_PARSE_LIT(c, "for ")) {
            ev->domain = audit_parse_word(c);
        } else if (AUDIT_PARSE_LIT(c, "CN:") || AUDIT_PARSE_LIT(c, "CN=")) {
            audit_parse_spaces(c);
            ev->cn = audit_parse_rest(c);
            if (ev->cn.n >= 2 && ev->cn.p[0] == '<' && ev->cn.p[ev->cn.n - 1] == '>')
                ev->cn = audit_parse_slice(ev->cn.p + 1, ev->cn.p + ev->cn.n - 1);
        } else {
            audit_parse_skip_token(c);
        }
    }
}

static enum audit_ev audit_parse_failed(struct audit_parse_cur *c, struct audit_event *ev,
                                        enum audit_dir dir, uint64_t id)
{
    audit_parse_start(ev, AUDIT_EV_TLS_FAILED, dir);
    ev->id = id;
    audit_parse_spaces(c);
    if (AUDIT_PARSE_LIT(c, ":"))
        audit_parse_spaces(c);
    ev->reason = audit_parse_rest(c);
    ev->no_starttls = audit_parse_no_starttls(ev->reason);
    return ev->kind;
}

/* "verify ok|failed host H policy P[ reason: R]" */
static enum audit_ev audit_parse_verify(struct audit_parse_cur *c, struct audit_event *ev,
                                        uint64_t id)
{
    int ok = AUDIT_PARSE_LIT(c, "ok ");
    if (!ok && !AUDIT_PARSE_LIT(c, "failed "))
        return AUDIT_EV_NONE;
    audit_parse_start(ev, AUDIT_EV_VERIFY, AUDIT_OUT);
    ev->id = id;
    ev->verify_ok = ok;
    if (AUDIT_PARSE_LIT(c, "host "))
        ev->host = audit_parse_word(c);
    if (AUDIT_PARSE_LIT(c, " policy "))
        ev->policy = audit_parse_word(c);
    if (AUDIT_PARSE_LIT(c, " reason:")) {
        audit_parse_spaces(c);
        ev->reason = audit_parse_rest(c);
    }
    return ev->kind;
}

/* "peer certificate subject S issuer I not after T" */
static enum audit_ev audit_parse_peer_cert(struct audit_parse_cur *c, struct audit_event *ev,
                                           uint64_t id)
{
    struct audit_str subject, issuer;
    if (!AUDIT_PARSE_UPTO(c, " issuer ", &subject))
        return AUDIT_EV_NONE;
    if (!AUDIT_PARSE_UPTO(c, " not after ", &issuer))
        return AUDIT_EV_NONE;
    audit_parse_start(ev, AUDIT_EV_PEER_CERT, AUDIT_OUT);
    ev->id = id;
    ev->subject = subject;
    ev->issuer = issuer;
    ev->not_after = audit_parse_rest(c);
    return ev->kind;
}

/* After "ICID|DCID n TLS ". */
static enum audit_ev audit_parse_tls(struct audit_parse_cur *c, struct audit_event *ev,
                                     enum audit_dir dir, uint64_t id)
{
    if (AUDIT_PARSE_LIT(c, "success")) {
        if (c->p < c->e && *c->p != ' ')
            return AUDIT_EV_NONE;
        audit_parse_start(ev, AUDIT_EV_TLS_OK, dir);
        ev->id = id;
        audit_parse_success_tail(c, ev);
        return ev->kind;
    }
    if (AUDIT_PARSE_LIT(c, "failed"))
        return audit_parse_failed(c, ev, dir, id);
    if (AUDIT_PARSE_LIT(c, "was required but")) {
        audit_parse_start(ev, AUDIT_EV_TLS_REQUIRED, dir);
        ev->id = id;
        audit_parse_spaces(c);
        ev->reason = audit_parse_rest(c);
        return ev->kind;
    }
    if (dir == AUDIT_OUT && AUDIT_PARSE_LIT(c, "verify "))
        return audit_parse_verify(c, ev, id);
    if (dir == AUDIT_OUT && AUDIT_PARSE_LIT(c, "peer certificate subject "))
        return audit_parse_peer_cert(c, ev, id);
    return AUDIT_EV_NONE;
}

/* "DCID n IP a.b.c.d TLS was required but could not be successfully
 * negotiated" (the form ESA bug 25546 left as it is). */
static enum audit_ev audit_parse_dcid_ip(struct audit_parse_cur *c, struct audit_event *ev,
                                         uint64_t id)
{
    struct audit_str ip = audit_parse_word(c);
    if (!AUDIT_PARSE_LIT(c, " TLS was required but"))
        return AUDIT_EV_NONE;
    audit_parse_start(ev, AUDIT_EV_TLS_REQUIRED, AUDIT_OUT);
    ev->id = id;
    ev->ip = ip;
    audit_parse_spaces(c);
    ev->reason = audit_parse_rest(c);
    return ev->kind;
}

static int audit_parse_is(struct audit_parse_cur *c, const char *word, size_t n)
{
    struct audit_parse_cur t = *c;
    if (!audit_parse_lit(&t, word, n))
        return 0;
    audit_parse_spaces(&t);
    return t.p == t.e;
}

/* After "ICID " or "DCID ". */
static enum audit_ev audit_parse_conn(struct audit_parse_cur *c, struct audit_event *ev,
                                      enum audit_dir dir)
{
    uint64_t id;
    if (!audit_parse_num(c, &id) || !AUDIT_PARSE_LIT(c, " "))
        return AUDIT_EV_NONE;
    switch (audit_parse_left(c) > 0 ? *c->p : 0) {
    case 'T':
        return AUDIT_PARSE_LIT(c, "TLS ") ? audit_parse_tls(c, ev, dir, id) : AUDIT_EV_NONE;
    case 'c':
    case 'l':
        if (!audit_parse_is(c, "close", 5) && !audit_parse_is(c, "lost", 4))
            return AUDIT_EV_NONE;
        audit_parse_start(ev, AUDIT_EV_CLOSE, dir);
        ev->id = id;
        return ev->kind;
    case 'I':
        return dir == AUDIT_OUT && AUDIT_PARSE_LIT(c, "IP ") ? audit_parse_dcid_ip(c, ev, id)
                                                             : AUDIT_EV_NONE;
    case 'S':
        if (!AUDIT_PARSE_LIT(c, "STARTTLS command not supported"))
            return AUDIT_EV_NONE;
        audit_parse_start(ev, AUDIT_EV_NO_STARTTLS, dir);
        ev->id = id;
        ev->no_starttls = 1;
        ev->reason = audit_parse_slice(c->p - 30, c->p);
        return ev->kind;
    }
    return AUDIT_EV_NONE;
}

/* "IFACE (LOCAL)" -> iface and local address. */
static void audit_parse_iface(struct audit_str s, struct audit_event *ev)
{
    ev->iface = s;
    if (s.n < 3 || s.p[s.n - 1] != ')')
        return;
    const char *open = s.p + s.n - 1; /* the local address is short: back to its '(' */
    while (open > s.p && *open != '(')
        open--;
    if (*open != '(')
        return;
    ev->local_ip = audit_parse_slice(open + 1, s.p + s.n - 1);
    const char *end = open;
    while (end > s.p && end[-1] == ' ')
        end--;
    ev->iface = audit_parse_slice(s.p, end);
}

/* After "New SMTP ICID n interface ". */
static enum audit_ev audit_parse_new_icid(struct audit_parse_cur *c, struct audit_event *ev)
{
    struct audit_str iface;
    if (!AUDIT_PARSE_UPTO(c, " address ", &iface))
        return ev->kind = AUDIT_EV_NONE;
    audit_parse_iface(iface, ev);
    ev->ip = audit_parse_word(c);
    audit_parse_spaces(c);
    if (AUDIT_PARSE_LIT(c, "reverse dns host")) {
        audit_parse_spaces(c);
        ev->host = audit_parse_word(c);
    }
    return ev->kind;
}

/* After "New SMTP DCID n interface ". */
static enum audit_ev audit_parse_new_dcid(struct audit_parse_cur *c, struct audit_event *ev)
{
    ev->local_ip = audit_parse_word(c);
    ev->iface = ev->local_ip;
    if (!AUDIT_PARSE_LIT(c, " address "))
        return ev->kind = AUDIT_EV_NONE;
    ev->ip = audit_parse_word(c);
    uint64_t port;
    if (AUDIT_PARSE_LIT(c, " port ") && audit_parse_num(c, &port) && port < 65536)
        ev->port = (int)port;
    return ev->kind;
}

/* "New SMTP ICID|DCID n interface ..." ("New smtp" in some documents). */
static enum audit_ev audit_parse_new(struct audit_parse_cur *c, struct audit_event *ev)
{
    enum audit_dir dir;
    uint64_t id;
    if (!AUDIT_PARSE_LIT(c, "New SMTP ") && !AUDIT_PARSE_LIT(c, "New smtp "))
        return AUDIT_EV_NONE;
    if (AUDIT_PARSE_LIT(c, "ICID "))
        dir = AUDIT_IN;
    else if (AUDIT_PARSE_LIT(c, "DCID "))
        dir = AUDIT_OUT;
    else
        return AUDIT_EV_NONE;
    if (!audit_parse_num(c, &id) || !AUDIT_PARSE_LIT(c, " interface "))
        return AUDIT_EV_NONE;
    audit_parse_start(ev, AUDIT_EV_CONN_NEW, dir);
    ev->id = id;
    return dir == AUDIT_IN ? audit_parse_new_icid(c, ev) : audit_parse_new_dcid(c, ev);
}

/* After "MID m ICID i ": "From: <a>" or "RID r To: <a>". */
static enum audit_ev audit_parse_mid_icid(struct audit_parse_cur *c, struct audit_event *ev,
                                          uint64_t mid, uint64_t icid)
{
    uint64_t rid = 0;
    enum audit_ev kind;
    if (AUDIT_PARSE_LIT(c, "From:")) {
        kind = AUDIT_EV_MID_FROM;
    } else if (AUDIT_PARSE_LIT(c, "RID ") && audit_parse_num(c, &rid) &&
               AUDIT_PARSE_LIT(c, " To:")) {
        kind = AUDIT_EV_MID_RCPT;
    } else {
        return AUDIT_EV_NONE;
    }
    audit_parse_start(ev, kind, AUDIT_IN);
    ev->mid = mid;
    ev->icid = icid;
    ev->rid = (uint32_t)rid;
    ev->addr = audit_parse_addr(c);
    return kind;
}

/* "ready N bytes[ from <a>]" */
static enum audit_ev audit_parse_mid_ready(struct audit_parse_cur *c, struct audit_event *ev,
                                           uint64_t mid)
{
    uint64_t bytes;
    if (!audit_parse_num(c, &bytes) || !AUDIT_PARSE_LIT(c, " bytes"))
        return AUDIT_EV_NONE;
    audit_parse_start(ev, AUDIT_EV_MID_READY, AUDIT_IN);
    ev->mid = mid;
    audit_parse_spaces(c);
    if (AUDIT_PARSE_LIT(c, "from"))
        ev->addr = audit_parse_addr(c);
    return ev->kind;
}

/* After "MID ". */
static enum audit_ev audit_parse_mid(struct audit_parse_cur *c, struct audit_event *ev)
{
    uint64_t mid, icid;
    if (!audit_parse_num(c, &mid) || !AUDIT_PARSE_LIT(c, " "))
        return AUDIT_EV_NONE;
    switch (audit_parse_left(c) > 0 ? *c->p : 0) {
    case 'I':
        if (AUDIT_PARSE_LIT(c, "ICID ") && audit_parse_num(c, &icid) && AUDIT_PARSE_LIT(c, " "))
            return audit_parse_mid_icid(c, ev, mid, icid);
        return AUDIT_EV_NONE;
    case 'r':
        return AUDIT_PARSE_LIT(c, "ready ") ? audit_parse_mid_ready(c, ev, mid) : AUDIT_EV_NONE;
    case 'd':
        if (!audit_parse_is(c, "done", 4))
            return AUDIT_EV_NONE;
        audit_parse_start(ev, AUDIT_EV_MID_DONE, AUDIT_IN);
        ev->mid = mid;
        return ev->kind;
    case 'a':
        if (!AUDIT_PARSE_LIT(c, "aborted"))
            return AUDIT_EV_NONE;
        audit_parse_start(ev, AUDIT_EV_MID_ABORTED, AUDIT_IN);
        ev->mid = mid;
        if (AUDIT_PARSE_LIT(c, ":"))
            audit_parse_spaces(c);
        ev->reason = audit_parse_rest(c);
        return ev->kind;
    }
    return AUDIT_EV_NONE;
}

/* "Start MID m ICID i" */
static enum audit_ev audit_parse_start_mid(struct audit_parse_cur *c, struct audit_event *ev)
{
    uint64_t mid, icid;
    if (!audit_parse_num(c, &mid) || !AUDIT_PARSE_LIT(c, " ICID ") || !audit_parse_num(c, &icid))
        return AUDIT_EV_NONE;
    audit_parse_start(ev, AUDIT_EV_MID_START, AUDIT_IN);
    ev->mid = mid;
    ev->icid = icid;
    return ev->kind;
}

/* "to RID [0, 1]", "to [0]", "to RID 0", "to 0": the list and its first. */
AUDIT_PARSE_INLINE int audit_parse_rids(struct audit_parse_cur *c, struct audit_event *ev)
{
    if (!AUDIT_PARSE_LIT(c, " to "))
        return 0;
    AUDIT_PARSE_LIT(c, "RID ");
    if (c->p < c->e && *c->p == '[') {
        const char *end = audit_parse_chr(c->p, c->e, c->line, ']');
        if (end == c->e)
            return 0;
        ev->rids = audit_parse_slice(c->p + 1, end);
        c->p = end + 1;
    } else {
        ev->rids = audit_parse_word(c);
    }
    struct audit_parse_cur r = {ev->rids.p, ev->rids.p + ev->rids.n, c->line};
    uint64_t rid = 0;
    audit_parse_num(&r, &rid);
    ev->rid = (uint32_t)rid;
    return 1;
}

/* After "Delivery start DCID " / "Message done DCID ": "d MID m to RID [..]". */
static enum audit_ev audit_parse_delivery(struct audit_parse_cur *c, struct audit_event *ev,
                                          enum audit_ev kind)
{
    uint64_t dcid, mid;
    if (!audit_parse_num(c, &dcid) || !AUDIT_PARSE_LIT(c, " MID ") || !audit_parse_num(c, &mid))
        return AUDIT_EV_NONE;
    audit_parse_start(ev, kind, AUDIT_OUT);
    ev->id = dcid;
    ev->mid = mid;
    if (!audit_parse_rids(c, ev))
        return ev->kind = AUDIT_EV_NONE;
    return kind;
}

/* After "Bounced: DCID": "[:] d MID|Message m to [RID] r - reason". */
static enum audit_ev audit_parse_bounced(struct audit_parse_cur *c, struct audit_event *ev)
{
    uint64_t dcid, mid;
    AUDIT_PARSE_LIT(c, ":");
    audit_parse_spaces(c);
    if (!audit_parse_num(c, &dcid) ||
        (!AUDIT_PARSE_LIT(c, " MID ") && !AUDIT_PARSE_LIT(c, " Message ")) ||
        !audit_parse_num(c, &mid))
        return AUDIT_EV_NONE;
    audit_parse_start(ev, AUDIT_EV_BOUNCED, AUDIT_OUT);
    ev->id = dcid;
    ev->mid = mid;
    audit_parse_rids(c, ev);
    if (AUDIT_PARSE_LIT(c, " - "))
        ev->reason = audit_parse_rest(c);
    return ev->kind;
}

/* One "KEY value" field of a Connection Error line, searched forward. */
AUDIT_PARSE_INLINE int audit_parse_field(struct audit_parse_cur *c, const char *key,
                                         struct audit_str *out)
{
    const char *at = audit_parse_find(c, key, strlen(key));
    if (at == NULL)
        return 0;
    c->p = at + strlen(key);
    audit_parse_spaces(c);
    *out = audit_parse_word(c);
    return 1;
}

/* "domain: D IP: a port: p details: X interface: i reason: r" (each part
 * optional: the oldest forms have no domain and no port). */
static void audit_parse_conn_error_fields(struct audit_parse_cur *c, struct audit_event *ev)
{
    struct audit_str port = {0};
    uint64_t n;

    audit_parse_field(c, "domain:", &ev->domain);
    audit_parse_field(c, "IP:", &ev->ip);
    if (audit_parse_field(c, "port:", &port)) {
        struct audit_parse_cur r = {port.p, port.p + port.n, c->line};
        if (audit_parse_num(&r, &n) && n < 65536)
            ev->port = (int)n;
    }
    const char *d = audit_parse_find(c, "details:", 8);
    if (d != NULL) {
        c->p = d + 8;
        audit_parse_spaces(c);
        const char *end = audit_parse_find(c, " interface:", 11);
        ev->details = audit_parse_slice(c->p, end != NULL ? end : c->e);
        c->p = end != NULL ? end : c->e;
    }
    audit_parse_field(c, "interface:", &ev->local_ip);
    const char *why = audit_parse_find(c, "reason:", 7);
    if (why != NULL) {
        c->p = why + 7;
        audit_parse_spaces(c);
        ev->reason = audit_parse_rest(c);
    }
}

/* After "Connection Error: ". */
static enum audit_ev audit_parse_conn_error(struct audit_parse_cur *c, struct audit_event *ev)
{
    const char *start = c->p;
    uint64_t dcid;
    if (!AUDIT_PARSE_LIT(c, "DCID")) {
        const char *at = audit_parse_find(c, " DCID", 5);
        if (at == NULL)
            return AUDIT_EV_NONE;
        c->p = at + 5;
    }
    AUDIT_PARSE_LIT(c, ":");
    audit_parse_spaces(c);
    if (!audit_parse_num(c, &dcid))
        return AUDIT_EV_NONE;
    const char *old_reason_end = c->p;
    audit_parse_start(ev, AUDIT_EV_CONN_ERROR, AUDIT_OUT);
    ev->id = dcid;
    audit_parse_conn_error_fields(c, ev);
    if (ev->reason.n == 0 && start < old_reason_end && memcmp(start, "DCID", 4) != 0) {
        const char *end = memmem(start, (size_t)(old_reason_end - start), " DCID", 5);
        ev->reason = audit_parse_slice(start, end != NULL ? end : start);
    }
    return ev->kind;
}

/* Ours (Warning): "TLS POLICY for DOMAIN could not be met by HOST (IP): why". */
static enum audit_ev audit_parse_req_warning(struct audit_parse_cur *c, struct audit_event *ev)
{
    struct audit_str policy, domain, host, ip;
    policy = audit_parse_word(c);
    if (!AUDIT_PARSE_LIT(c, " for "))
        return AUDIT_EV_NONE;
    domain = audit_parse_word(c);
    if (!AUDIT_PARSE_LIT(c, " could not be met by "))
        return AUDIT_EV_NONE;
    host = audit_parse_word(c);
    if (!AUDIT_PARSE_LIT(c, " (") || !AUDIT_PARSE_UPTO(c, "):", &ip))
        return AUDIT_EV_NONE;
    audit_parse_start(ev, AUDIT_EV_REQ_WARNING, AUDIT_OUT);
    ev->policy = policy;
    ev->domain = domain;
    ev->host = host;
    ev->ip = ip;
    audit_parse_spaces(c);
    ev->reason = audit_parse_rest(c);
    ev->no_starttls = audit_parse_no_starttls(ev->reason);
    return ev->kind;
}

static enum audit_ev audit_parse_m(struct audit_parse_cur *c, struct audit_event *ev)
{
    if (AUDIT_PARSE_LIT(c, "MID "))
        return audit_parse_mid(c, ev);
    if (AUDIT_PARSE_LIT(c, "Message done DCID "))
        return audit_parse_delivery(c, ev, AUDIT_EV_DELIVERED);
    uint64_t mid;
    enum audit_ev kind;
    if (AUDIT_PARSE_LIT(c, "Message finished MID "))
        kind = AUDIT_EV_MID_DONE;
    else if (AUDIT_PARSE_LIT(c, "Message aborted MID "))
        kind = AUDIT_EV_MID_ABORTED;
    else
        return AUDIT_EV_NONE;
    if (!audit_parse_num(c, &mid))
        return AUDIT_EV_NONE;
    audit_parse_start(ev, kind, AUDIT_IN);
    ev->mid = mid;
    audit_parse_spaces(c);
    ev->reason = audit_parse_rest(c);
    return kind;
}

/* The message text after the level word, by its first letter. */
static enum audit_ev audit_parse_text(struct audit_parse_cur *c, struct audit_event *ev)
{
    switch (audit_parse_left(c) > 0 ? *c->p : 0) {
    case 'N':
        return audit_parse_new(c, ev);
    case 'I':
        return AUDIT_PARSE_LIT(c, "ICID ") ? audit_parse_conn(c, ev, AUDIT_IN) : AUDIT_EV_NONE;
    case 'D':
        if (AUDIT_PARSE_LIT(c, "DCID "))
            return audit_parse_conn(c, ev, AUDIT_OUT);
        if (AUDIT_PARSE_LIT(c, "Delivery start DCID "))
            return audit_parse_delivery(c, ev, AUDIT_EV_DELIVERY);
        return AUDIT_EV_NONE;
    case 'M':
        return audit_parse_m(c, ev);
    case 'S':
        return AUDIT_PARSE_LIT(c, "Start MID ") ? audit_parse_start_mid(c, ev) : AUDIT_EV_NONE;
    case 'B':
        return AUDIT_PARSE_LIT(c, "Bounced: DCID") ? audit_parse_bounced(c, ev) : AUDIT_EV_NONE;
    case 'C':
        return AUDIT_PARSE_LIT(c, "Connection Error: ") ? audit_parse_conn_error(c, ev)
                                                        : AUDIT_EV_NONE;
    case 'T':
        return AUDIT_PARSE_LIT(c, "TLS ") ? audit_parse_req_warning(c, ev) : AUDIT_EV_NONE;
    }
    return AUDIT_EV_NONE;
}

/* The value of the ESA stamp at S, through the one-entry cache in CTX: the
 * same stamp is the cached value, the same day moves it by the seconds. */
static int64_t audit_parse_lazy_time(const char *s, size_t len, struct audit_parse_ctx *ctx)
{
    const char *c = ctx != NULL ? ctx->stamp : NULL;
    int64_t t;
    int secs, cached_secs;
    if (AUDIT_PARSE_USUAL(c != NULL && audit_parse_load8(s) == audit_parse_load8(c) &&
                          audit_parse_load8(s + 8) == audit_parse_load8(c + 8) &&
                          audit_parse_load8(s + 16) == audit_parse_load8(c + 16)))
        return ctx->stamp_time;
    if (c != NULL && audit_parse_load8(s) == audit_parse_load8(c) &&
        audit_parse_load4(s + 7) == audit_parse_load4(c + 7) && s[19] == c[19] &&
        audit_parse_load4(s + 20) == audit_parse_load4(c + 20)) {
        if (audit_parse_hms(s + 11, &secs) && audit_parse_hms(c + 11, &cached_secs)) {
            t = ctx->stamp_time - cached_secs + secs;
            memcpy(ctx->stamp, s, sizeof(ctx->stamp));
            ctx->stamp_time = t;
            return t;
        }
    }
    if (!audit_parse_ctime_fast(s, len, &t))
        return AUDIT_NO_TIME;
    if (ctx != NULL) {
        memcpy(ctx->stamp, s, sizeof(ctx->stamp));
        ctx->stamp_time = t;
    }
    return t;
}

enum audit_ev audit_parse_line(const char *line, size_t len, struct audit_parse_ctx *ctx,
                               struct audit_event *ev)
{
    struct audit_parse_cur c = {line, line + len, line};
    const char *lazy;
    ev->kind = AUDIT_EV_NONE;
    if (!audit_parse_head(&c, ctx, &ev->time, &ev->level, &lazy) || ev->level == 'D' ||
        ev->level == 'T')
        return AUDIT_EV_NONE;
    ev->kind = audit_parse_text(&c, ev);
    if (ev->kind != AUDIT_EV_NONE && lazy != NULL)
        ev->time = audit_parse_lazy_time(lazy, len, ctx);
    return ev->kind;
}
