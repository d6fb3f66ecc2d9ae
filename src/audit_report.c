/*
 * audit_report: the audit as aligned text (the default), CSV and JSON, from
 * struct audit_stats and its spilled lists.  The JSON top level is exactly
 * SPEC section 8's; what lies below it is documented in audit.h.  CSV is a
 * set of sections: each starts with a header row whose first field is
 * "section", rows carry the section name first, sections are separated by
 * an empty line.
 *
 * The lists can run to millions of rows, so the writers format numbers and
 * times themselves, look for the bytes that need escaping eight at a time
 * and copy everything else in runs into one output buffer.
 *
 * Must not: trust log text (JSON strings are escaped and kept valid UTF-8,
 * CSV fields quoted), or hold the lists in memory (they stream from the
 * spill file).
 */
#include "audit.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- a buffered writer ------------------------------------------------- */

#define AUDIT_REPORT_BUF  (1u << 16) /* without a writer thread (a terminal, a memory stream) */
#define AUDIT_REPORT_BIG  (1u << 18) /* a buffer of the writer thread */
#define AUDIT_REPORT_NBIG 4

/* A report can run to tens of megabytes: to a file or a pipe, a thread
 * writes each full buffer while the next is rendered (the copy into the
 * kernel costs about as much as the rendering).  The buffers are used in
 * turn: the one being rendered is (HEAD + FULL) % AUDIT_REPORT_NBIG. */
struct audit_report_writer {
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int fd;
    char *big[AUDIT_REPORT_NBIG];
    size_t len[AUDIT_REPORT_NBIG];
    unsigned head, full; /* the oldest buffer not yet written, how many */
    int done, failed;
};

struct audit_report_out {
    FILE *f;
    struct audit_report_writer *w; /* NULL: BUF goes to F */
    char *buf;
    size_t n, cap;
    int64_t day;   /* the day whose date is in DATE (audit_report_time) */
    char date[11]; /* "YYYY-MM-DDT" */
    char own[AUDIT_REPORT_BUF];
};

/* A string literal and its length, for audit_report_put. */
#define AUDIT_REPORT_LIT(s) s, sizeof(s) - 1

static void *audit_report_writer_main(void *arg)
{
    struct audit_report_writer *w = arg;
    pthread_mutex_lock(&w->lock);
    for (;;) {
        while (w->full == 0 && !w->done)
            pthread_cond_wait(&w->cond, &w->lock);
        if (w->full == 0)
            break;
        unsigned i = w->head;
        pthread_mutex_unlock(&w->lock);
        for (size_t at = 0; at < w->len[i] && !w->failed;) {
            ssize_t r = write(w->fd, w->big[i] + at, w->len[i] - at);
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0)
                w->failed = 1; /* only this thread writes it until the join */
            else
                at += (size_t)r;
        }
        pthread_mutex_lock(&w->lock);
        w->head = (w->head + 1) % AUDIT_REPORT_NBIG;
        w->full--;
        pthread_cond_signal(&w->cond);
    }
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

/* OUT's buffer goes to the writer thread; the next free one takes its place. */
static void audit_report_pass(struct audit_report_out *out)
{
    struct audit_report_writer *w = out->w;
    pthread_mutex_lock(&w->lock);
    w->len[(w->head + w->full) % AUDIT_REPORT_NBIG] = out->n;
    w->full++;
    pthread_cond_signal(&w->cond);
    while (w->full == AUDIT_REPORT_NBIG)
        pthread_cond_wait(&w->cond, &w->lock);
    out->buf = w->big[(w->head + w->full) % AUDIT_REPORT_NBIG];
    pthread_mutex_unlock(&w->lock);
    out->n = 0;
}

static void audit_report_flush(struct audit_report_out *out)
{
    if (out->w != NULL) {
        audit_report_pass(out);
        return;
    }
    fwrite_unlocked(out->buf, 1, out->n, out->f);
    out->n = 0;
}

/* A writer thread for F when it is a file, a pipe or a socket (a terminal
 * or /dev/null gains nothing from one); NULL otherwise, and OUT then
 * writes through F. */
static struct audit_report_writer *audit_report_writer_start(FILE *f)
{
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 ||
        !(S_ISREG(sb.st_mode) || S_ISFIFO(sb.st_mode) || S_ISSOCK(sb.st_mode)) || fflush(f) != 0)
        return NULL;
    struct audit_report_writer *w = calloc(1, sizeof(*w));
    if (w == NULL)
        return NULL;
    w->fd = fileno(f);
    int ok = 1;
    for (int i = 0; i < AUDIT_REPORT_NBIG; i++)
        ok &= (w->big[i] = malloc(AUDIT_REPORT_BIG)) != NULL;
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->cond, NULL);
    if (ok && pthread_create(&w->thread, NULL, audit_report_writer_main, w) == 0)
        return w;
    for (int i = 0; i < AUDIT_REPORT_NBIG; i++)
        free(w->big[i]);
    pthread_cond_destroy(&w->cond);
    pthread_mutex_destroy(&w->lock);
    free(w);
    return NULL;
}

/* Writes what is left, ends the thread; -1 if a write failed. */
static int audit_report_writer_end(struct audit_report_writer *w)
{
    pthread_mutex_lock(&w->lock);
    w->done = 1;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
    pthread_join(w->thread, NULL);
    int failed = w->failed;
    for (int i = 0; i < AUDIT_REPORT_NBIG; i++)
        free(w->big[i]);
    pthread_cond_destroy(&w->cond);
    pthread_mutex_destroy(&w->lock);
    free(w);
    return failed ? -1 : 0;
}

/* Room for N more bytes (at most AUDIT_REPORT_BUF): where to write them
 * (with the audit_report_at_* helpers), then audit_report_done. */
static char *audit_report_room(struct audit_report_out *out, size_t n)
{
    if (out->n + n > out->cap)
        audit_report_flush(out);
    return out->buf + out->n;
}

/* The bytes up to O, in the room given by audit_report_room, are written. */
static void audit_report_done(struct audit_report_out *out, char *o)
{
    out->n = (size_t)(o - out->buf);
}

static char *audit_report_at(char *o, const char *s, size_t n)
{
    memcpy(o, s, n);
    return o + n;
}

static void audit_report_put(struct audit_report_out *out, const void *p, size_t n)
{
    const char *s = p;
    while (out->n + n > out->cap) { /* what fits, then a new buffer */
        size_t part = out->cap - out->n;
        memcpy(out->buf + out->n, s, part);
        out->n += part;
        s += part;
        n -= part;
        audit_report_flush(out);
    }
    memcpy(out->buf + out->n, s, n);
    out->n += n;
}

static void audit_report_s(struct audit_report_out *out, const char *s)
{
    audit_report_put(out, s, strlen(s));
}

static void audit_report_c(struct audit_report_out *out, int c)
{
    if (out->n == out->cap)
        audit_report_flush(out);
    out->buf[out->n++] = (char)c;
}

static void audit_report_f(struct audit_report_out *out, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void audit_report_f(struct audit_report_out *out, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (n > 0)
        audit_report_put(out, buf, (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1);
}

static const char audit_report_digits[] = "00010203040506070809"
                                          "10111213141516171819"
                                          "20212223242526272829"
                                          "30313233343536373839"
                                          "40414243444546474849"
                                          "50515253545556575859"
                                          "60616263646566676869"
                                          "70717273747576777879"
                                          "80818283848586878889"
                                          "90919293949596979899";

/* V in decimal, written backwards to end at END (room for 20 digits);
 * where it starts. */
static char *audit_report_dec(uint64_t v, char *end)
{
    char *p = end;
    while (v >= 100) {
        uint64_t q = v / 100;
        p -= 2;
        memcpy(p, audit_report_digits + 2 * (v - q * 100), 2);
        v = q;
    }
    if (v >= 10) {
        p -= 2;
        memcpy(p, audit_report_digits + 2 * v, 2);
    } else {
        *--p = (char)('0' + v);
    }
    return p;
}

/* V in decimal at O (room for 20 bytes); the end. */
static char *audit_report_at_num(char *o, uint64_t v)
{
    size_t n = 1;
    for (uint64_t ten = 10; n < 20 && v >= ten; ten *= 10)
        n++;
    audit_report_dec(v, o + n);
    return o + n;
}

static void audit_report_num(struct audit_report_out *out, uint64_t v)
{
    audit_report_done(out, audit_report_at_num(audit_report_room(out, 20), v));
}

/* "YYYY-MM-DDTHH:MM:SS" of T as audit_parse_format_time writes it, into P
 * (32 bytes); its length.  The date is worked out once a day. */
static size_t audit_report_time(struct audit_report_out *out, int64_t t, char *p)
{
    const int64_t span = (int64_t)1 << 40; /* days * 86400 cannot overflow */
    int64_t day = t >= 0 ? t / 86400 : (t - 86399) / 86400;
    if (t < -span || t > span) {
        audit_parse_format_time(t, p, 32);
        return strlen(p);
    }
    if (day != out->day) {
        char b[32];
        audit_parse_format_time(day * 86400, b, sizeof(b));
        if (b[10] != 'T') { /* a year without four digits: printed as a number */
            audit_parse_format_time(t, p, 32);
            return strlen(p);
        }
        memcpy(out->date, b, sizeof(out->date));
        out->day = day;
    }
    int secs = (int)(t - day * 86400);
    memcpy(p, out->date, sizeof(out->date));
    memcpy(p + 11, audit_report_digits + 2 * (secs / 3600), 2);
    p[13] = ':';
    memcpy(p + 14, audit_report_digits + 2 * (secs / 60 % 60), 2);
    p[16] = ':';
    memcpy(p + 17, audit_report_digits + 2 * (secs % 60), 2);
    p[19] = '\0';
    return 19;
}

static struct audit_report_out *audit_report_out_new(FILE *f)
{
    struct audit_report_out *out = malloc(sizeof(*out));
    if (out == NULL)
        return NULL;
    out->f = f;
    out->w = NULL;
    out->buf = out->own;
    out->n = 0;
    out->cap = sizeof(out->own);
    out->day = INT64_MIN;
    return out;
}

/* Runs WRITE into F through a writer; -1 on a write error. */
static int audit_report_to(FILE *f, struct audit_stats *st, const struct audit_report_opts *o,
                           void (*write)(struct audit_report_out *, struct audit_stats *,
                                         const struct audit_report_opts *))
{
    struct audit_report_out *out = audit_report_out_new(f);
    if (out == NULL)
        return -1;
    out->w = audit_report_writer_start(f);
    if (out->w != NULL) {
        out->buf = out->w->big[0];
        out->cap = AUDIT_REPORT_BIG;
    }
    write(out, st, o);
    audit_report_flush(out);
    int rc = out->w != NULL ? audit_report_writer_end(out->w) : 0;
    free(out);
    return rc != 0 || ferror(f) ? -1 : 0;
}

/* ---- sorting keys -------------------------------------------------------- */

struct audit_report_rank {
    uint64_t weight;
    uint32_t key;
};

static uint64_t audit_report_weight(const struct audit_key *k, int dir)
{
    if (dir >= 0)
        return k->c[dir].conns + k->c[dir].msgs;
    return k->c[0].conns + k->c[0].msgs + k->c[1].conns + k->c[1].msgs;
}

/* Busiest first; equals in the order they were first seen. */
static int audit_report_cmp(const void *a, const void *b)
{
    const struct audit_report_rank *x = a, *y = b;
    if (x->weight != y->weight)
        return x->weight > y->weight ? -1 : 1;
    return x->key < y->key ? -1 : x->key > y->key;
}

/* Sorts V[0..N) in ascending order, a byte a pass from the lowest (TMP:
 * room for N); passes where all values share the byte are skipped.  The
 * array that holds the result. */
static uint64_t *audit_report_radix(uint64_t *v, uint64_t *tmp, size_t n)
{
    size_t count[8][256] = {{0}};
    for (size_t i = 0; i < n; i++) {
        for (int b = 0; b < 8; b++)
            count[b][(v[i] >> (8 * b)) & 0xff]++;
    }
    for (int b = 0; b < 8 && n > 0; b++) {
        if (count[b][(v[0] >> (8 * b)) & 0xff] == n)
            continue;
        size_t at = 0;
        for (int d = 0; d < 256; d++) {
            size_t c = count[b][d];
            count[b][d] = at;
            at += c;
        }
        for (size_t i = 0; i < n; i++)
            tmp[count[b][(v[i] >> (8 * b)) & 0xff]++] = v[i];
        uint64_t *x = v;
        v = tmp;
        tmp = x;
    }
    return v;
}

/* The keys of R[0..N) in order: by radix sort of (~weight, key) when
 * every weight fits 32 bits (always, short of billions of connections),
 * else by qsort (and when out of memory).  V gets them. */
static void audit_report_order(struct audit_report_rank *r, size_t n, uint32_t *v)
{
    uint64_t *a = malloc((2 * n + 1) * sizeof(*a));
    int small = 1;
    for (size_t i = 0; i < n && small; i++)
        small = r[i].weight <= UINT32_MAX;
    if (a == NULL || !small) {
        free(a);
        qsort(r, n, sizeof(*r), audit_report_cmp);
        for (size_t i = 0; i < n; i++)
            v[i] = r[i].key;
        return;
    }
    for (size_t i = 0; i < n; i++)
        a[i] = (uint64_t)(UINT32_MAX - (uint32_t)r[i].weight) << 32 | r[i].key;
    uint64_t *s = audit_report_radix(a, a + n, n);
    for (size_t i = 0; i < n; i++)
        v[i] = (uint32_t)s[i];
    free(a);
}

uint32_t *audit_report_sorted(const struct audit_table *t, int dir, size_t *n)
{
    struct audit_report_rank *r = malloc(((size_t)t->n + 1) * sizeof(*r));
    uint32_t *v = malloc(((size_t)t->n + 1) * sizeof(*v));
    *n = 0;
    if (r == NULL || v == NULL) {
        free(r);
        free(v);
        return NULL;
    }
    for (uint32_t i = 0; i < t->n; i++) {
        uint64_t w = audit_report_weight(&t->keys[i], dir);
        if (w > 0)
            r[(*n)++] = (struct audit_report_rank){w, i};
    }
    audit_report_order(r, *n, v);
    free(r);
    return v;
}

/* The key of row I of the sorted keys V[0..N) of T, asking first for the
 * keys 16 rows ahead and their names and hosts (of DIR) 8 rows ahead:
 * sorted rows jump around memory. */
static const struct audit_key *audit_report_row(const struct audit_table *t, const uint32_t *v,
                                                size_t i, size_t n, int dir)
{
    if (i + 16 < n) {
        __builtin_prefetch(&t->keys[v[i + 16]]);
        __builtin_prefetch(&t->keys[v[i + 16]].c[dir]);
    }
    if (i + 8 < n) {
        const struct audit_key *k = &t->keys[v[i + 8]];
        __builtin_prefetch(k->name);
        if (k->host[dir] != NULL)
            __builtin_prefetch(k->host[dir]);
    }
    return &t->keys[v[i]];
}

const char *audit_report_dir_name(int dir)
{
    return dir == AUDIT_IN ? "inbound" : "outbound";
}

/* "YYYY-MM-DDTHH:MM:SS" of a spilled time field, "" when unknown. */
const char *audit_report_spill_time(const char *field, char *buf, size_t len)
{
    if (field == NULL || field[0] == '\0')
        return "";
    return audit_parse_format_time(strtoll(field, NULL, 10), buf, len);
}

/* ---- JSON ---------------------------------------------------------------- */

/* The length of a valid UTF-8 sequence at S (N bytes left), 0 if invalid. */
static size_t audit_report_utf8(const unsigned char *s, size_t n)
{
    size_t len = s[0] >= 0xf0 && s[0] <= 0xf4 ? 4 : s[0] >= 0xe0 ? 3 : s[0] >= 0xc2 ? 2 : 0;
    if (len == 0 || len > n || s[0] > 0xf4)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    }
    if ((len == 3 && s[0] == 0xe0 && s[1] < 0xa0) || (len == 3 && s[0] == 0xed && s[1] >= 0xa0) ||
        (len == 4 && s[0] == 0xf0 && s[1] < 0x90) || (len == 4 && s[0] == 0xf4 && s[1] >= 0x90))
        return 0;
    return len;
}

static int audit_report_json_plain_char(unsigned char ch)
{
    return ch >= 0x20 && ch < 0x7f && ch != '"' && ch != '\\';
}

/* The high bit of each byte of W that is 0 (the lowest one exact, higher
 * ones may be set by the borrow). */
static uint64_t audit_report_zero8(uint64_t w)
{
    return (w - 0x0101010101010101ull) & ~w & 0x8080808080808080ull;
}

/* Where the first byte of S[I..N) lies that a JSON string cannot hold as it
 * is: a control byte, '"', '\\', DEL, or a byte of a UTF-8 sequence (to be
 * checked); N when none.  Eight bytes a step. */
static size_t audit_report_json_run(const unsigned char *s, size_t i, size_t n)
{
    const uint64_t ones = 0x0101010101010101ull, high = 0x8080808080808080ull;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, s + i, sizeof(w));
        uint64_t m = ((w - 0x20 * ones) & ~w & high) | audit_report_zero8(w ^ ('"' * ones)) |
                     audit_report_zero8(w ^ ('\\' * ones)) | audit_report_zero8(w ^ (0x7f * ones)) |
                     (w & high);
        if (m != 0)
            return i + (size_t)__builtin_ctzll(m) / 8;
    }
    while (i < n && audit_report_json_plain_char(s[i]))
        i++;
    return i;
}

/* The escape of the byte or sequence at P (N bytes left) at *O (room for
 * 6 bytes), *O moved past it; the bytes it took. */
static size_t audit_report_json_escape(char **o, const unsigned char *p, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char ch = p[0];
    char *at = *o;
    size_t len = 1;
    if (ch == '"' || ch == '\\') {
        at[0] = '\\';
        at[1] = (char)ch;
        *o = at + 2;
    } else if (ch < 0x20 || ch == 0x7f) {
        memcpy(at, "\\u00", 4);
        at[4] = hex[ch >> 4];
        at[5] = hex[ch & 15];
        *o = at + 6;
    } else if ((len = audit_report_utf8(p, n)) == 0) {
        memcpy(at, "\\ufffd", 6);
        *o = at + 6;
        len = 1;
    } else {
        memcpy(at, p, len);
        *o = at + len;
    }
    return len;
}

/* The JSON string of S[0..N), in pieces of input whose output (at most 6
 * bytes per input byte) fits the buffer. */
static void audit_report_jstr(struct audit_report_out *out, const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    const size_t piece = 4096;
    size_t i = 0;
    do {
        size_t end = n - i > piece ? i + piece : n;
        char *o = audit_report_room(out, 6 * (end - i) + 8);
        if (i == 0)
            *o++ = '"';
        while (i < end) {
            size_t run = audit_report_json_run(p, i, end);
            o = audit_report_at(o, s + i, run - i);
            i = run;
            if (i < end)
                i += audit_report_json_escape(&o, p + i, n - i);
        }
        if (i >= n)
            *o++ = '"';
        audit_report_done(out, o);
    } while (i < n);
}

static void audit_report_json_s(struct audit_report_out *out, const char *s)
{
    audit_report_jstr(out, s, strlen(s));
}

/* A string, or null when empty. */
static void audit_report_json_opt(struct audit_report_out *out, const char *s)
{
    if (s == NULL || s[0] == '\0')
        audit_report_put(out, AUDIT_REPORT_LIT("null"));
    else
        audit_report_json_s(out, s);
}

static void audit_report_json_optn(struct audit_report_out *out, struct audit_str s)
{
    if (s.n == 0)
        audit_report_put(out, AUDIT_REPORT_LIT("null"));
    else
        audit_report_jstr(out, s.p, s.n);
}

/* A number at O, or null when it is 0 and ZERO_UNKNOWN (0 means unknown). */
static char *audit_report_at_id(char *o, uint64_t v, int zero_unknown)
{
    if (v == 0 && zero_unknown)
        return audit_report_at(o, AUDIT_REPORT_LIT("null"));
    return audit_report_at_num(o, v);
}

/* A time at O (room for 32 bytes) as a JSON string, or null when unknown. */
static char *audit_report_at_time(struct audit_report_out *out, char *o, int64_t t)
{
    if (t == AUDIT_NO_TIME)
        return audit_report_at(o, AUDIT_REPORT_LIT("null"));
    *o = '"';
    o += 1 + audit_report_time(out, t, o + 1);
    *o = '"';
    return o + 1;
}

/* The literal KEY (e.g. ", \"no_tls\": ") and the number V at O. */
#define AUDIT_REPORT_AT_KV(o, key, v)                                                              \
    audit_report_at_num(audit_report_at(o, AUDIT_REPORT_LIT(key)), v)

/* At O: the connection and message counts of C as JSON members (with the
 * verification counts when VERIFIED; no leading comma when FIRST). */
static char *audit_report_at_counts(char *o, const struct audit_count *c, int first, int verified)
{
    if (first)
        o = AUDIT_REPORT_AT_KV(o, "\"connections\": ", c->conns);
    else
        o = AUDIT_REPORT_AT_KV(o, ", \"connections\": ", c->conns);
    o = AUDIT_REPORT_AT_KV(o, ", \"tls_success\": ", c->tls_ok);
    o = AUDIT_REPORT_AT_KV(o, ", \"tls_failed\": ", c->tls_failed);
    o = AUDIT_REPORT_AT_KV(o, ", \"no_tls\": ", c->no_tls);
    if (verified) {
        o = AUDIT_REPORT_AT_KV(o, ", \"verified\": ", c->verified);
        o = AUDIT_REPORT_AT_KV(o, ", \"unverified\": ", c->unverified);
        o = AUDIT_REPORT_AT_KV(o, ", \"required_failures\": ", c->req_failed);
    }
    o = AUDIT_REPORT_AT_KV(o, ", \"messages\": ", c->msgs);
    return AUDIT_REPORT_AT_KV(o, ", \"messages_without_tls\": ", c->msgs_plain);
}

static void audit_report_json_counts(struct audit_report_out *out, const struct audit_count *c,
                                     int dir)
{
    char *o = audit_report_room(out, 512);
    audit_report_done(out, audit_report_at_counts(o, c, 1, dir == AUDIT_OUT));
}

/* {"name": count, ...} of one direction (DIR) or both (-1). */
static void audit_report_json_dist(struct audit_report_out *out, const struct audit_table *t,
                                   int dir)
{
    size_t n;
    uint32_t *v = audit_report_sorted(t, dir, &n);
    audit_report_c(out, '{');
    for (size_t i = 0; v != NULL && i < n; i++) {
        const struct audit_key *k = &t->keys[v[i]];
        if (i > 0)
            audit_report_put(out, AUDIT_REPORT_LIT(", "));
        audit_report_json_s(out, k->name);
        audit_report_put(out, AUDIT_REPORT_LIT(": "));
        audit_report_num(out, dir >= 0 ? k->c[dir].conns : k->c[0].conns + k->c[1].conns);
    }
    audit_report_c(out, '}');
    free(v);
}

static void audit_report_json_peer(struct audit_report_out *out, const struct audit_key *k, int dir,
                                   int first)
{
    const struct audit_count *c = &k->c[dir];
    if (first)
        audit_report_put(out, AUDIT_REPORT_LIT("{\"ip\": "));
    else
        audit_report_put(out, AUDIT_REPORT_LIT(", {\"ip\": "));
    audit_report_json_s(out, k->name);
    audit_report_put(out, AUDIT_REPORT_LIT(", \"host\": "));
    audit_report_json_opt(out, k->host[dir]);
    char *o = audit_report_at_counts(audit_report_room(out, 512), c, 0, 0);
    *o++ = '}';
    audit_report_done(out, o);
}

static void audit_report_json_peers(struct audit_report_out *out, const struct audit_stats *st,
                                    int dir)
{
    size_t n;
    uint32_t *v = audit_report_sorted(&st->ips, dir, &n);
    audit_report_put(out, AUDIT_REPORT_LIT("\"peers\": ["));
    for (size_t i = 0; v != NULL && i < n; i++) {
        audit_report_json_peer(out, audit_report_row(&st->ips, v, i, n, dir), dir, i == 0);
    }
    audit_report_c(out, ']');
    free(v);
}

static void audit_report_json_reqfail(struct audit_report_out *out, const struct audit_spill_rec *r,
                                      int first)
{
    static const char *const keys[] = {
        ", \"ip\": ", ", \"host\": ", ", \"domain\": ", ", \"policy\": ", ", \"reason\": "};
    if (first)
        audit_report_put(out, AUDIT_REPORT_LIT("{\"time\": "));
    else
        audit_report_put(out, AUDIT_REPORT_LIT(", {\"time\": "));
    char *o = audit_report_at_time(out, audit_report_room(out, 96), r->time);
    o = AUDIT_REPORT_AT_KV(o, ", \"id\": ", r->id[0]);
    audit_report_done(out, o);
    for (int i = 0; i < 5; i++) {
        audit_report_s(out, keys[i]);
        audit_report_json_optn(out, r->s[i]);
    }
    audit_report_c(out, '}');
}

static void audit_report_json_reqfails(struct audit_report_out *out, struct audit_stats *st,
                                       int dir)
{
    struct audit_spill_rec r;
    int first = 1;
    audit_report_put(out, AUDIT_REPORT_LIT("\"required_failure_list\": ["));
    audit_stats_spill_rewind(st, 'R');
    while (audit_stats_spill_read(st, 'R', &r)) {
        if (strcmp(r.what, audit_report_dir_name(dir)) != 0)
            continue;
        audit_report_json_reqfail(out, &r, first);
        first = 0;
    }
    audit_report_c(out, ']');
}

static void audit_report_json_dir(struct audit_report_out *out, struct audit_stats *st, int dir)
{
    const struct audit_count *c = &st->total[dir];
    audit_report_c(out, '{');
    audit_report_json_counts(out, c, dir);
    char *o = audit_report_room(out, 256);
    if (dir == AUDIT_IN)
        o = AUDIT_REPORT_AT_KV(o, ", \"required_failures\": ", c->req_failed);
    else
        o = AUDIT_REPORT_AT_KV(o, ", \"verify_failed\": ", c->verify_failed);
    o = AUDIT_REPORT_AT_KV(o, ", \"messages_tls_unknown\": ", c->msgs_unknown);
    o = AUDIT_REPORT_AT_KV(o, ", \"weak_protocol\": ", c->weak_protocol);
    o = AUDIT_REPORT_AT_KV(o, ", \"weak_cipher\": ", c->weak_cipher);
    audit_report_done(out, o);
    audit_report_put(out, AUDIT_REPORT_LIT(", \"protocols\": "));
    audit_report_json_dist(out, &st->protocols, dir);
    audit_report_put(out, AUDIT_REPORT_LIT(", \"ciphers\": "));
    audit_report_json_dist(out, &st->ciphers, dir);
    audit_report_put(out, AUDIT_REPORT_LIT(", "));
    audit_report_json_peers(out, st, dir);
    audit_report_put(out, AUDIT_REPORT_LIT(", "));
    audit_report_json_reqfails(out, st, dir);
    audit_report_c(out, '}');
}

static void audit_report_json_domains(struct audit_report_out *out, const struct audit_stats *st)
{
    int first = 1;
    audit_report_c(out, '[');
    for (int dir = 0; dir < 2; dir++) {
        size_t n;
        uint32_t *v = audit_report_sorted(&st->domains, dir, &n);
        for (size_t i = 0; v != NULL && i < n; i++) {
            const struct audit_key *k = audit_report_row(&st->domains, v, i, n, dir);
            if (first)
                audit_report_put(out, AUDIT_REPORT_LIT("{\"domain\": "));
            else
                audit_report_put(out, AUDIT_REPORT_LIT(",\n  {\"domain\": "));
            first = 0;
            audit_report_json_s(out, k->name);
            if (dir == AUDIT_IN)
                audit_report_put(out, AUDIT_REPORT_LIT(", \"direction\": \"inbound\", "));
            else
                audit_report_put(out, AUDIT_REPORT_LIT(", \"direction\": \"outbound\", "));
            audit_report_json_counts(out, &k->c[dir], AUDIT_OUT);
            audit_report_c(out, '}');
        }
        free(v);
    }
    audit_report_c(out, ']');
}

static void audit_report_json_plain(struct audit_report_out *out, const struct audit_spill_rec *r,
                                    int first)
{
    char *o = audit_report_room(out, 128);
    if (first)
        o = audit_report_at(o, AUDIT_REPORT_LIT("{\"mid\": "));
    else
        o = audit_report_at(o, AUDIT_REPORT_LIT(",\n  {\"mid\": "));
    o = audit_report_at_num(o, r->id[0]);
    o = audit_report_at(o, AUDIT_REPORT_LIT(", \"icid\": "));
    o = audit_report_at_id(o, r->id[1], 1);
    o = audit_report_at(o, AUDIT_REPORT_LIT(", \"dcid\": "));
    o = audit_report_at_id(o, r->id[2], 1);
    o = audit_report_at(o, AUDIT_REPORT_LIT(", \"from\": "));
    audit_report_done(out, o);
    audit_report_json_optn(out, r->s[0]);
    audit_report_put(out, AUDIT_REPORT_LIT(", \"to_domain\": "));
    audit_report_json_optn(out, r->s[1]);
    o = audit_report_room(out, 96);
    o = audit_report_at(o, AUDIT_REPORT_LIT(", \"time\": "));
    o = audit_report_at_time(out, o, r->time);
    o = audit_report_at(o, AUDIT_REPORT_LIT(", \"hop\": \"")); /* hop names need no escapes */
    o = audit_report_at(o, r->what, strlen(r->what));
    o = audit_report_at(o, AUDIT_REPORT_LIT("\"}"));
    audit_report_done(out, o);
}

static void audit_report_json_plains(struct audit_report_out *out, struct audit_stats *st)
{
    struct audit_spill_rec r;
    int first = 1;
    audit_report_c(out, '[');
    audit_stats_spill_rewind(st, 'W');
    while (audit_stats_spill_read(st, 'W', &r)) {
        audit_report_json_plain(out, &r, first);
        first = 0;
    }
    audit_report_c(out, ']');
}

static void audit_report_json_all(struct audit_report_out *out, struct audit_stats *st,
                                  const struct audit_report_opts *o)
{
    (void)o;
    audit_report_put(out, AUDIT_REPORT_LIT("{\"inbound\": "));
    audit_report_json_dir(out, st, AUDIT_IN);
    audit_report_put(out, AUDIT_REPORT_LIT(",\n \"outbound\": "));
    audit_report_json_dir(out, st, AUDIT_OUT);
    audit_report_put(out, AUDIT_REPORT_LIT(",\n \"protocols\": "));
    audit_report_json_dist(out, &st->protocols, -1);
    audit_report_put(out, AUDIT_REPORT_LIT(",\n \"ciphers\": "));
    audit_report_json_dist(out, &st->ciphers, -1);
    audit_report_put(out, AUDIT_REPORT_LIT(",\n \"domains\": "));
    audit_report_json_domains(out, st);
    audit_report_put(out, AUDIT_REPORT_LIT(",\n \"without_tls\": "));
    audit_report_json_plains(out, st);
    audit_report_put(out, AUDIT_REPORT_LIT("}\n"));
}

/* ---- aligned text -------------------------------------------------------- */

struct audit_report_table {
    size_t ncols, n, cap;
    char **cells;
    const char *right; /* 'r' per right-aligned column */
};

static void audit_report_cell(struct audit_report_table *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void audit_report_cell(struct audit_report_table *t, const char *fmt, ...)
{
    va_list ap;
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 64;
        char **c = realloc(t->cells, cap * sizeof(*c));
        if (c == NULL)
            return;
        t->cells = c;
        t->cap = cap;
    }
    va_start(ap, fmt);
    if (vasprintf(&t->cells[t->n], fmt, ap) < 0)
        t->cells[t->n] = NULL;
    va_end(ap);
    t->n++;
}

/* One row into LINE (LEN bytes), columns padded to W, trailing blanks cut. */
static void audit_report_table_row(const struct audit_report_table *t, size_t row, const size_t *w,
                                   char *line, size_t len)
{
    size_t n = 0;
    line[0] = '\0';
    for (size_t col = 0; col < t->ncols && n < len; col++) {
        const char *s = t->cells[row * t->ncols + col];
        int r = snprintf(line + n, len - n, t->right[col] == 'r' ? "%*s  " : "%-*s  ", (int)w[col],
                         s ? s : "");
        n += r > 0 ? (size_t)r : 0;
    }
    n = n < len ? n : len - 1;
    while (n > 0 && line[n - 1] == ' ')
        n--;
    line[n] = '\0';
}

static void audit_report_table_print(struct audit_report_out *out, struct audit_report_table *t)
{
    size_t w[16] = {0};
    char line[4096];
    for (size_t i = 0; i < t->n; i++) {
        size_t len = t->cells[i] ? strlen(t->cells[i]) : 0;
        if (len > w[i % t->ncols])
            w[i % t->ncols] = len;
    }
    for (size_t row = 0; row < t->n / t->ncols; row++) {
        audit_report_table_row(t, row, w, line, sizeof(line));
        audit_report_f(out, "%s\n", line);
    }
    for (size_t i = 0; i < t->n; i++)
        free(t->cells[i]);
    free(t->cells);
    memset(t, 0, sizeof(*t));
}

static void audit_report_text_summary(struct audit_report_out *out, const struct audit_stats *st)
{
    struct audit_report_table t = {9, 0, 0, NULL, "lrrrrrrrr"};
    static const char *const head[] = {"",           "connections", "TLS ok",
                                       "TLS failed", "no TLS",      "req. failed",
                                       "messages",   "w/o TLS",     "TLS unknown"};
    for (int i = 0; i < 9; i++)
        audit_report_cell(&t, "%s", head[i]);
    for (int dir = 0; dir < 2; dir++) {
        const struct audit_count *c = &st->total[dir];
        audit_report_cell(&t, "%s", audit_report_dir_name(dir));
        uint64_t v[8] = {c->conns,      c->tls_ok, c->tls_failed, c->no_tls,
                         c->req_failed, c->msgs,   c->msgs_plain, c->msgs_unknown};
        for (int i = 0; i < 8; i++)
            audit_report_cell(&t, "%llu", (unsigned long long)v[i]);
    }
    audit_report_table_print(out, &t);
    const struct audit_count *o = &st->total[AUDIT_OUT];
    audit_report_f(out,
                   "\noutbound TLS certificates: %llu verified, %llu unverified (%llu failed "
                   "verification)\n",
                   (unsigned long long)o->verified, (unsigned long long)o->unverified,
                   (unsigned long long)o->verify_failed);
}

static void audit_report_text_dist(struct audit_report_out *out, const struct audit_table *tb,
                                   const char *title, int cipher)
{
    size_t n;
    uint32_t *v = audit_report_sorted(tb, -1, &n);
    struct audit_report_table t = {4, 0, 0, NULL, "lrrl"};
    audit_report_f(out, "\n%s (connections with TLS success)\n", title);
    audit_report_cell(&t, "  name");
    audit_report_cell(&t, "inbound");
    audit_report_cell(&t, "outbound");
    audit_report_cell(&t, "%s", "");
    for (size_t i = 0; v != NULL && i < n; i++) {
        const struct audit_key *k = &tb->keys[v[i]];
        const char *weak =
            cipher ? audit_stats_weak_cipher(k->name) : audit_stats_weak_protocol(k->name);
        audit_report_cell(&t, "  %s", k->name);
        audit_report_cell(&t, "%llu", (unsigned long long)k->c[AUDIT_IN].conns);
        audit_report_cell(&t, "%llu", (unsigned long long)k->c[AUDIT_OUT].conns);
        audit_report_cell(&t, "%s%s", weak ? "WEAK: " : "", weak ? weak : "");
    }
    if (n == 0) {
        audit_report_f(out, "  (none)\n");
        for (size_t i = 0; i < t.n; i++)
            free(t.cells[i]);
        free(t.cells);
    } else {
        audit_report_table_print(out, &t);
    }
    free(v);
}

static void audit_report_more(struct audit_report_out *out, size_t shown, size_t total)
{
    if (shown < total)
        audit_report_f(out, "  ... %zu more (--limit 0, --csv or --json show all)\n",
                       total - shown);
}

static void audit_report_text_domain_row(struct audit_report_table *t, const char *name, int dir,
                                         const struct audit_count *c)
{
    audit_report_cell(t, "  %s", audit_report_dir_name(dir));
    audit_report_cell(t, "%s", name);
    uint64_t v[8] = {c->conns,    c->tls_ok,     c->tls_failed, c->no_tls,
                     c->verified, c->req_failed, c->msgs,       c->msgs_plain};
    for (int i = 0; i < 8; i++)
        audit_report_cell(t, "%llu", (unsigned long long)v[i]);
}

static void audit_report_text_domains(struct audit_report_out *out, const struct audit_stats *st,
                                      size_t limit)
{
    struct audit_report_table t = {10, 0, 0, NULL, "llrrrrrrrr"};
    static const char *const head[] = {"  direction", "domain",   "conns",    "TLS ok", "failed",
                                       "no TLS",      "verified", "req.fail", "msgs",   "w/o TLS"};
    size_t total = 0, shown = 0;
    audit_report_f(out, "\nper domain (inbound: sender domain, outbound: recipient domain)\n");
    for (int i = 0; i < 10; i++)
        audit_report_cell(&t, "%s", head[i]);
    for (int dir = 0; dir < 2; dir++) {
        size_t n;
        uint32_t *v = audit_report_sorted(&st->domains, dir, &n);
        for (size_t i = 0; v != NULL && i < n; i++, total++) {
            if (limit != 0 && shown >= limit)
                continue;
            audit_report_text_domain_row(&t, st->domains.keys[v[i]].name, dir,
                                         &st->domains.keys[v[i]].c[dir]);
            shown++;
        }
        free(v);
    }
    audit_report_table_print(out, &t);
    audit_report_more(out, shown, total);
}

static void audit_report_text_peers(struct audit_report_out *out, const struct audit_stats *st,
                                    size_t limit)
{
    struct audit_report_table t = {9, 0, 0, NULL, "lllrrrrrr"};
    static const char *const head[] = {"  direction", "address", "host", "conns",  "TLS ok",
                                       "failed",      "no TLS",  "msgs", "w/o TLS"};
    size_t total = 0, shown = 0;
    audit_report_f(out, "\nper peer address\n");
    for (int i = 0; i < 9; i++)
        audit_report_cell(&t, "%s", head[i]);
    for (int dir = 0; dir < 2; dir++) {
        size_t n;
        uint32_t *v = audit_report_sorted(&st->ips, dir, &n);
        for (size_t i = 0; v != NULL && i < n; i++, total++) {
            const struct audit_key *k = &st->ips.keys[v[i]];
            const struct audit_count *c = &k->c[dir];
            if (limit != 0 && shown >= limit)
                continue;
            audit_report_cell(&t, "  %s", audit_report_dir_name(dir));
            audit_report_cell(&t, "%s", k->name);
            audit_report_cell(&t, "%s", k->host[dir] ? k->host[dir] : "-");
            uint64_t val[6] = {c->conns,  c->tls_ok, c->tls_failed,
                               c->no_tls, c->msgs,   c->msgs_plain};
            for (int x = 0; x < 6; x++)
                audit_report_cell(&t, "%llu", (unsigned long long)val[x]);
            shown++;
        }
        free(v);
    }
    audit_report_table_print(out, &t);
    audit_report_more(out, shown, total);
}

/* A cell of a spilled string, "-" when it is empty. */
static void audit_report_text_str(struct audit_report_table *t, struct audit_str s)
{
    if (s.n == 0)
        audit_report_cell(t, "-");
    else
        audit_report_cell(t, "%.*s", (int)s.n, s.p);
}

static void audit_report_text_time(struct audit_report_out *out, struct audit_report_table *t,
                                   int64_t time)
{
    char b[32];
    if (time == AUDIT_NO_TIME)
        b[0] = '\0';
    else
        audit_report_time(out, time, b);
    audit_report_cell(t, "  %s", b);
}

static void audit_report_text_reqfails(struct audit_report_out *out, struct audit_stats *st,
                                       size_t limit)
{
    struct audit_spill_rec r;
    struct audit_report_table t = {8, 0, 0, NULL, "llrlllll"};
    static const char *const head[] = {"  time", "direction", "id",     "address",
                                       "host",   "domain",    "policy", "reason"};
    size_t shown = 0;
    audit_report_f(out, "\nrequired-TLS failures (%llu)\n", (unsigned long long)st->nreq);
    if (st->nreq == 0)
        return;
    for (int i = 0; i < 8; i++)
        audit_report_cell(&t, "%s", head[i]);
    audit_stats_spill_rewind(st, 'R');
    while ((limit == 0 || shown < limit) && audit_stats_spill_read(st, 'R', &r)) {
        audit_report_text_time(out, &t, r.time);
        audit_report_cell(&t, "%s", r.what);
        audit_report_cell(&t, "%llu", (unsigned long long)r.id[0]);
        for (int i = 0; i < 5; i++)
            audit_report_text_str(&t, r.s[i]);
        shown++;
    }
    audit_report_table_print(out, &t);
    audit_report_more(out, shown, st->nreq);
}

/* An ID cell: "-" when it is 0 and ZERO_UNKNOWN. */
static void audit_report_text_id(struct audit_report_table *t, uint64_t v, int zero_unknown)
{
    if (v == 0 && zero_unknown)
        audit_report_cell(t, "-");
    else
        audit_report_cell(t, "%llu", (unsigned long long)v);
}

static void audit_report_text_plains(struct audit_report_out *out, struct audit_stats *st,
                                     size_t limit)
{
    struct audit_spill_rec r;
    struct audit_report_table t = {7, 0, 0, NULL, "lrrrlll"};
    static const char *const head[] = {"  time", "MID", "ICID", "DCID", "hop", "from", "to domain"};
    size_t shown = 0;
    audit_report_f(out, "\nmessages without TLS on a hop (%llu)\n", (unsigned long long)st->nplain);
    if (st->nplain == 0)
        return;
    for (int i = 0; i < 7; i++)
        audit_report_cell(&t, "%s", head[i]);
    audit_stats_spill_rewind(st, 'W');
    while ((limit == 0 || shown < limit) && audit_stats_spill_read(st, 'W', &r)) {
        audit_report_text_time(out, &t, r.time);
        audit_report_text_id(&t, r.id[0], 0);
        audit_report_text_id(&t, r.id[1], 1);
        audit_report_text_id(&t, r.id[2], 1);
        audit_report_cell(&t, "%s", r.what);
        audit_report_text_str(&t, r.s[0]);
        audit_report_text_str(&t, r.s[1]);
        shown++;
    }
    audit_report_table_print(out, &t);
    audit_report_more(out, shown, st->nplain);
}

static void audit_report_text_head(struct audit_report_out *out, const struct audit_stats *st,
                                   const char *title)
{
    char a[32], b[32];
    audit_report_f(out, "%s: %llu file%s, %llu lines (%llu events)", title,
                   (unsigned long long)st->files, st->files == 1 ? "" : "s",
                   (unsigned long long)st->lines, (unsigned long long)st->events);
    if (st->first != AUDIT_NO_TIME)
        audit_report_f(out, ", %s .. %s", audit_parse_format_time(st->first, a, sizeof(a)),
                       audit_parse_format_time(st->last, b, sizeof(b)));
    audit_report_c(out, '\n');
    const struct audit_filter *f = &st->filter;
    if (f->since != AUDIT_NO_TIME)
        audit_report_f(out, "since %s\n", audit_parse_format_time(f->since, a, sizeof(a)));
    if (f->until != AUDIT_NO_TIME)
        audit_report_f(out, "until %s\n", audit_parse_format_time(f->until, a, sizeof(a)));
    if (f->domain != NULL)
        audit_report_f(out, "domain %s\n", f->domain);
    if (f->direction >= 0)
        audit_report_f(out, "direction %s\n", audit_report_dir_name(f->direction));
    audit_report_c(out, '\n');
}

static void audit_report_text_all(struct audit_report_out *out, struct audit_stats *st,
                                  const struct audit_report_opts *o)
{
    audit_report_text_head(out, st, o->title);
    audit_report_text_summary(out, st);
    audit_report_text_dist(out, &st->protocols, "protocols", 0);
    audit_report_text_dist(out, &st->ciphers, "ciphers", 1);
    audit_report_text_domains(out, st, o->list_limit);
    audit_report_text_peers(out, st, o->list_limit);
    audit_report_text_reqfails(out, st, o->list_limit);
    audit_report_text_plains(out, st, o->list_limit);
    audit_report_f(
        out, "\nweak: protocols below TLSv1.2; RC4, DES/3DES, NULL, EXPORT, anonymous, MD5 and "
             "CBC-SHA1 cipher suites\n");
}

/* ---- CSV ----------------------------------------------------------------- */

/* S[0..N) needs quotes in CSV: it holds a comma, a quote or a line end. */
static int audit_report_csv_quoted(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if ((unsigned char)ch <= ',' && (ch == ',' || ch == '"' || ch == '\r' || ch == '\n'))
            return 1;
    }
    return 0;
}

/* S[0..N) as a CSV field (quoted when needed, quotes doubled), then SEP
 * unless it is 0. */
static void audit_report_csv_fieldn(struct audit_report_out *out, const char *s, size_t n, char sep)
{
    if (!audit_report_csv_quoted(s, n)) {
        audit_report_put(out, s, n);
    } else {
        audit_report_c(out, '"');
        for (const char *q; (q = memchr(s, '"', n)) != NULL; n -= (size_t)(q + 1 - s), s = q + 1) {
            audit_report_put(out, s, (size_t)(q + 1 - s));
            audit_report_c(out, '"');
        }
        audit_report_put(out, s, n);
        audit_report_c(out, '"');
    }
    if (sep != 0)
        audit_report_c(out, sep);
}

static void audit_report_csv_field(struct audit_report_out *out, const char *s, char sep)
{
    audit_report_csv_fieldn(out, s != NULL ? s : "", s != NULL ? strlen(s) : 0, sep);
}

/* ",n,n,...\n" */
static void audit_report_csv_counts(struct audit_report_out *out, const struct audit_count *c)
{
    uint64_t v[12] = {c->conns,    c->tls_ok,     c->tls_failed,    c->no_tls,
                      c->verified, c->unverified, c->verify_failed, c->req_failed,
                      c->msgs,     c->msgs_plain, c->weak_protocol, c->weak_cipher};
    for (int i = 0; i < 12; i++) {
        audit_report_c(out, ',');
        audit_report_num(out, v[i]);
    }
    audit_report_c(out, '\n');
}

static const char audit_report_csv_counts_head[] =
    "connections,tls_success,tls_failed,no_tls,verified,unverified,verify_failed,"
    "required_failures,messages,messages_without_tls,weak_protocol,weak_cipher\n";

static void audit_report_csv_dist(struct audit_report_out *out, const struct audit_table *tb,
                                  const char *section, int cipher)
{
    size_t n;
    uint32_t *v = audit_report_sorted(tb, -1, &n);
    for (size_t i = 0; v != NULL && i < n; i++) {
        const struct audit_key *k = &tb->keys[v[i]];
        const char *weak =
            cipher ? audit_stats_weak_cipher(k->name) : audit_stats_weak_protocol(k->name);
        audit_report_f(out, "%s,", section);
        audit_report_csv_field(out, k->name, ',');
        audit_report_f(out, "%llu,%llu,", (unsigned long long)k->c[AUDIT_IN].conns,
                       (unsigned long long)k->c[AUDIT_OUT].conns);
        audit_report_csv_field(out, weak, '\n');
    }
    free(v);
}

static void audit_report_csv_table(struct audit_report_out *out, const struct audit_table *tb,
                                   const char *section, int hosts)
{
    for (int dir = 0; dir < 2; dir++) {
        size_t n;
        uint32_t *v = audit_report_sorted(tb, dir, &n);
        for (size_t i = 0; v != NULL && i < n; i++) {
            const struct audit_key *k = audit_report_row(tb, v, i, n, dir);
            audit_report_s(out, section);
            audit_report_c(out, ',');
            audit_report_s(out, audit_report_dir_name(dir));
            audit_report_c(out, ',');
            audit_report_csv_field(out, k->name, hosts ? ',' : 0);
            if (hosts)
                audit_report_csv_field(out, k->host[dir], 0);
            audit_report_csv_counts(out, &k->c[dir]);
        }
        free(v);
    }
}

/* The time of a spilled record for CSV: empty when unknown. */
static void audit_report_csv_time(struct audit_report_out *out, int64_t t)
{
    char b[32];
    if (t != AUDIT_NO_TIME)
        audit_report_put(out, b, audit_report_time(out, t, b));
}

/* An ID for CSV: empty when it is 0 and ZERO_UNKNOWN. */
static void audit_report_csv_id(struct audit_report_out *out, uint64_t v, int zero_unknown)
{
    audit_report_c(out, ',');
    if (v != 0 || !zero_unknown)
        audit_report_num(out, v);
}

static void audit_report_csv_lists(struct audit_report_out *out, struct audit_stats *st)
{
    struct audit_spill_rec r;
    audit_report_s(out, "\nsection,direction,time,id,ip,host,domain,policy,reason\n");
    audit_stats_spill_rewind(st, 'R');
    while (audit_stats_spill_read(st, 'R', &r)) {
        audit_report_put(out, AUDIT_REPORT_LIT("required_failure,"));
        audit_report_s(out, r.what);
        audit_report_c(out, ',');
        audit_report_csv_time(out, r.time);
        audit_report_csv_id(out, r.id[0], 0);
        for (int i = 0; i < 5; i++) {
            audit_report_c(out, ',');
            audit_report_csv_fieldn(out, r.s[i].p, r.s[i].n, i == 4 ? '\n' : 0);
        }
    }
    audit_report_s(out, "\nsection,time,mid,icid,dcid,hop,from,to_domain\n");
    audit_stats_spill_rewind(st, 'W');
    while (audit_stats_spill_read(st, 'W', &r)) {
        audit_report_put(out, AUDIT_REPORT_LIT("without_tls,"));
        audit_report_csv_time(out, r.time);
        audit_report_csv_id(out, r.id[0], 0);
        audit_report_csv_id(out, r.id[1], 1);
        audit_report_csv_id(out, r.id[2], 1);
        audit_report_c(out, ',');
        audit_report_s(out, r.what);
        audit_report_c(out, ',');
        audit_report_csv_fieldn(out, r.s[0].p, r.s[0].n, ',');
        audit_report_csv_fieldn(out, r.s[1].p, r.s[1].n, '\n');
    }
}

static void audit_report_csv_all(struct audit_report_out *out, struct audit_stats *st,
                                 const struct audit_report_opts *o)
{
    (void)o;
    audit_report_f(out, "section,direction,%s", audit_report_csv_counts_head);
    for (int dir = 0; dir < 2; dir++) {
        audit_report_f(out, "summary,%s", audit_report_dir_name(dir));
        audit_report_csv_counts(out, &st->total[dir]);
    }
    audit_report_s(out, "\nsection,name,inbound,outbound,weak\n");
    audit_report_csv_dist(out, &st->protocols, "protocol", 0);
    audit_report_csv_dist(out, &st->ciphers, "cipher", 1);
    audit_report_f(out, "\nsection,direction,domain,%s", audit_report_csv_counts_head);
    audit_report_csv_table(out, &st->domains, "domain", 0);
    audit_report_f(out, "\nsection,direction,ip,host,%s", audit_report_csv_counts_head);
    audit_report_csv_table(out, &st->ips, "peer", 1);
    audit_report_csv_lists(out, st);
}

/* ---- entry points -------------------------------------------------------- */

int audit_report_json(FILE *f, struct audit_stats *st)
{
    return audit_report_to(f, st, NULL, audit_report_json_all);
}

int audit_report_text(FILE *f, struct audit_stats *st, const struct audit_report_opts *o)
{
    return audit_report_to(f, st, o, audit_report_text_all);
}

int audit_report_csv(FILE *f, struct audit_stats *st)
{
    return audit_report_to(f, st, NULL, audit_report_csv_all);
}

void audit_report_json_str(FILE *f, const char *s, size_t n)
{
    struct audit_report_out *out = audit_report_out_new(f);
    if (out == NULL)
        return;
    audit_report_jstr(out, s, n);
    audit_report_flush(out);
    free(out);
}

void audit_report_u64(FILE *f, uint64_t v)
{
    char b[24];
    char *p = audit_report_dec(v, b + sizeof(b));
    fwrite_unlocked(p, 1, (size_t)(b + sizeof(b) - p), f);
}
