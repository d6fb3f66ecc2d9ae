/*
 * audit_input: the bytes of the logs, line by line, in the right order.
 * Regular files are mapped and cut into 1 MiB batches parsed in parallel
 * (see "batches" below); gzip'd files (recognized by their magic bytes, not
 * their name) are read from a `gzip -dc` child (posix_spawnp, no shell);
 * "-" is standard input.  Newlines are found 64 bytes at a time (AVX2 or
 * SSE2); a batch's pages are mapped in one call and given back once it is
 * joined.  A rotated set given in any order is sorted by the first time
 * stamp of each file, then by the first ICID/DCID/MID in it (IDs only
 * grow), then by mtime.  State of connections that span two files survives: the join sees
 * one stream.  On a terminal, a progress line is drawn on standard error
 * once the work has taken a couple of seconds.  A mapped file that is
 * truncated while it is read (copytruncate rotation) ends the run with a
 * message (SIGBUS) rather than a count of half-read data.
 *
 * Must not: allocate per line, read a file twice (except the first 64 KiB
 * that order the set), or leave a child process behind.
 */
#include "audit.h"

#include <errno.h>
#if defined(__SSE2__)
#include <immintrin.h>
#endif
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define AUDIT_INPUT_BATCH   (1u << 20)  /* bytes of lines per batch */
#define AUDIT_INPUT_HEAD    (64u << 10) /* probed to order a rotated set */
#define AUDIT_INPUT_LINE    8192        /* longer lines are cut (an ESA line is < 8 KiB) */
#define AUDIT_INPUT_WORKERS 4
#define AUDIT_INPUT_SPARE   4   /* batches beyond one per parser: none waits for a slow one */
#define AUDIT_INPUT_WAIT    2.0 /* seconds before a progress line appears */
#define AUDIT_INPUT_REDRAW  0.5

extern char **environ;

struct audit_input_stream {
    int fd;
    pid_t child; /* gzip, or 0 */
};

struct audit_input_progress {
    int on;    /* standard error is a terminal */
    int shown; /* a line was drawn */
    double start, last;
    uint64_t done, total;
};

/* ---- opening ------------------------------------------------------------- */

static int audit_input_gunzip(const char *path, struct audit_input_stream *s)
{
    int p[2];
    posix_spawn_file_actions_t fa;
    char *argv[] = {"gzip", "-dc", "--", (char *)path, NULL};

    if (pipe2(p, O_CLOEXEC) != 0)
        return -1;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, p[1], STDOUT_FILENO);
    int rc = posix_spawnp(&s->child, "gzip", &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(p[1]);
    if (rc != 0) {
        close(p[0]);
        errno = rc;
        return -1;
    }
    s->fd = p[0];
    return 0;
}

static int audit_input_open(const struct audit_input *in, struct audit_input_stream *s)
{
    s->child = 0;
    if (strcmp(in->path, "-") == 0) {
        s->fd = STDIN_FILENO;
        return 0;
    }
    if (in->gz)
        return audit_input_gunzip(in->path, s);
    s->fd = open(in->path, O_RDONLY | O_CLOEXEC);
    return s->fd >= 0 ? 0 : -1;
}

/* Closes S; for gzip, its exit status (0 ok).  KILL: we stopped early. */
static int audit_input_close(struct audit_input_stream *s, int kill_child)
{
    int status = 0;
    if (s->fd != STDIN_FILENO)
        close(s->fd);
    if (s->child > 0) {
        if (kill_child)
            kill(s->child, SIGTERM);
        while (waitpid(s->child, &status, 0) < 0 && errno == EINTR)
            ;
        s->child = 0;
        if (!kill_child && !(WIFEXITED(status) && WEXITSTATUS(status) == 0))
            return -1;
    }
    return 0;
}

static ssize_t audit_input_fill(int fd, char *buf, size_t len)
{
    size_t have = 0;
    while (have < len) {
        ssize_t r = read(fd, buf + have, len - have);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -1;
        if (r == 0)
            break;
        have += (size_t)r;
    }
    return (ssize_t)have;
}

/* ---- probing: what orders a rotated set ----------------------------------- */

static void audit_input_ctx(struct audit_input *in, time_t ref)
{
    struct tm tm;
    if (localtime_r(&ref, &tm) == NULL)
        memset(&tm, 0, sizeof(tm));
    in->ctx.ref_year = tm.tm_year + 1900;
    in->ctx.ref_month = tm.tm_mon + 1;
}

/* The first time stamp and the first connection or message ID in BUF. */
static void audit_input_scan_head(struct audit_input *in, const char *buf, size_t len)
{
    const char *p = buf, *end = buf + len, *nl;
    struct audit_event ev;
    in->first_time = AUDIT_NO_TIME;
    in->first_id = UINT64_MAX;
    for (; p < end && (nl = memchr(p, '\n', (size_t)(end - p))) != NULL; p = nl + 1) {
        if (in->first_time == AUDIT_NO_TIME)
            in->first_time = audit_parse_line_time(p, (size_t)(nl - p), &in->ctx);
        enum audit_ev kind = audit_parse_line(p, (size_t)(nl - p), &in->ctx, &ev);
        if (kind != AUDIT_EV_NONE && in->first_id == UINT64_MAX)
            in->first_id = ev.id != 0 ? ev.id : ev.mid;
        if (in->first_time != AUDIT_NO_TIME && in->first_id != UINT64_MAX)
            break;
    }
}

static int audit_input_probe_fail(struct audit_input *in, const char *what)
{
    fprintf(stderr, "tlsgate audit: %s: %s: %s\n", in->path, what, strerror(errno));
    return -1;
}

/* The head of a gzip'd file, decompressed. */
static int audit_input_probe_gz(struct audit_input *in, char *buf, ssize_t *n)
{
    struct audit_input_stream s;
    if (audit_input_gunzip(in->path, &s) != 0)
        return audit_input_probe_fail(in, "cannot run gzip");
    *n = audit_input_fill(s.fd, buf, AUDIT_INPUT_HEAD);
    audit_input_close(&s, 1);
    return *n < 0 ? audit_input_probe_fail(in, "cannot read") : 0;
}

/* The first AUDIT_INPUT_HEAD bytes of IN (decompressed when gzip'd) into
 * BUF; S stays open only for standard input, whose head is kept. */
static ssize_t audit_input_probe_head(struct audit_input *in, struct audit_input_stream *s,
                                      char *buf)
{
    int is_stdin = s->fd == STDIN_FILENO;
    ssize_t n = audit_input_fill(s->fd, buf, AUDIT_INPUT_HEAD);
    if (!is_stdin)
        audit_input_close(s, 0);
    if (n < 0)
        return audit_input_probe_fail(in, "cannot read");
    in->gz = n >= 2 && (unsigned char)buf[0] == 0x1f && (unsigned char)buf[1] == 0x8b;
    if (in->gz && is_stdin) {
        fprintf(stderr, "tlsgate audit: -: gzip data on standard input: name the file, or "
                        "decompress it first (zcat FILE | tlsgate audit -)\n");
        return -1;
    }
    if (in->gz && audit_input_probe_gz(in, buf, &n) != 0)
        return -1;
    return n;
}

int audit_input_probe(struct audit_input *in, const char *path)
{
    struct audit_input_stream s;
    struct stat sb;
    memset(in, 0, sizeof(*in));
    in->path = strdup(path);
    char *buf = malloc(AUDIT_INPUT_HEAD);
    if (in->path == NULL || buf == NULL || audit_input_open(in, &s) != 0) {
        free(buf);
        return audit_input_probe_fail(in, "cannot open");
    }
    int is_stdin = s.fd == STDIN_FILENO;
    if (!is_stdin && fstat(s.fd, &sb) == 0) {
        in->mtime = sb.st_mtime;
        in->size = S_ISREG(sb.st_mode) ? sb.st_size : 0;
    }
    audit_input_ctx(in, is_stdin ? time(NULL) : (time_t)in->mtime);
    ssize_t n = audit_input_probe_head(in, &s, buf);
    if (n >= 0)
        audit_input_scan_head(in, buf, (size_t)n);
    if (n >= 0 && is_stdin) {
        in->head = buf;
        in->head_len = (size_t)n;
    } else {
        free(buf);
    }
    return n >= 0 ? 0 : -1;
}

static int audit_input_cmp(const void *a, const void *b)
{
    const struct audit_input *x = a, *y = b;
    if (x->first_time != y->first_time) {
        if (x->first_time == AUDIT_NO_TIME || y->first_time == AUDIT_NO_TIME)
            return x->first_time == AUDIT_NO_TIME ? 1 : -1;
        return x->first_time < y->first_time ? -1 : 1;
    }
    if (x->first_id != y->first_id)
        return x->first_id < y->first_id ? -1 : 1;
    if (x->mtime != y->mtime)
        return x->mtime < y->mtime ? -1 : 1;
    return 0;
}

void audit_input_order(struct audit_input *in, size_t n)
{
    /* An insertion sort: stable (equal keys keep the command-line order),
     * and a rotated set is a handful of files. */
    for (size_t i = 1; i < n; i++) {
        struct audit_input x = in[i];
        size_t k = i;
        while (k > 0 && audit_input_cmp(&in[k - 1], &x) > 0) {
            in[k] = in[k - 1];
            k--;
        }
        in[k] = x;
    }
}

void audit_input_free(struct audit_input *in)
{
    free(in->path);
    free(in->head);
    memset(in, 0, sizeof(*in));
}

/* ---- progress ------------------------------------------------------------ */

static double audit_input_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void audit_input_progress(struct audit_input_progress *pg, uint64_t lines)
{
    if (!pg->on)
        return;
    double now = audit_input_now();
    if (now - pg->start < AUDIT_INPUT_WAIT || now - pg->last < AUDIT_INPUT_REDRAW)
        return;
    pg->last = now;
    pg->shown = 1;
    double mib = (double)pg->done / 1048576.0;
    if (pg->total > 0 && pg->done <= pg->total)
        fprintf(stderr, "\raudit: %.0f of %.0f MiB (%.0f%%), %llu lines, %.0f MiB/s   ", mib,
                (double)pg->total / 1048576.0, 100.0 * (double)pg->done / (double)pg->total,
                (unsigned long long)lines, mib / (now - pg->start));
    else
        fprintf(stderr, "\raudit: %.0f MiB, %llu lines, %.0f MiB/s   ", mib,
                (unsigned long long)lines, mib / (now - pg->start));
}

static void audit_input_progress_end(struct audit_input_progress *pg)
{
    if (pg->shown)
        fprintf(stderr, "\r%70s\r", "");
}

/* ---- batches --------------------------------------------------------------
 *
 * The input is cut into batches of about AUDIT_INPUT_BATCH bytes of whole
 * lines.  Parsing threads (one per further CPU) each take a free slot, parse
 * a batch into events and mark it ready; the calling thread joins the ready
 * batches strictly in order -- the join's state stays in one CPU's cache --
 * and parses a batch itself while the next one is not ready.  At most
 * parsers + AUDIT_INPUT_SPARE batches are in memory.  A regular file is mapped and cut by
 * offsets: batch k holds the lines that start in [k * B, (k + 1) * B).  A
 * pipe (gzip, standard input) is read in order under the lock, the partial
 * last line carried to the next batch.
 */

struct audit_input_batch {
    char *buf;
    size_t cap;
    const char *text; /* where the batch's lines start: the strings of the events lie after it */
    char *rec;        /* the events, packed for the join (audit_join_pack) */
    size_t nev, reclen, reccap;
    uint64_t lines, bytes;
    uint64_t unused; /* events the join has no use for (not handed over) */
    struct audit_parse_ctx ctx;
    int64_t first, last; /* the earliest and latest time stamps of its events */
    /* Where the last event packed starts: it is taken back when the next
     * one supersedes it (audit_join_supersedes; its time stamp still
     * counts, in FIRST and LAST). */
    size_t last_at;
};

enum { AUDIT_INPUT_FREE, AUDIT_INPUT_BUSY, AUDIT_INPUT_READY };

/* A batch between its claim and its join. */
struct audit_input_slot {
    struct audit_input_batch b;
    uint64_t k;
    size_t len; /* a pipe's batch: bytes read */
    int state;
};

struct audit_input_run {
    struct audit_input *in;
    struct audit_join *j;
    struct audit_input_progress *pg;
    struct audit_input_stream s;
    int seekable;
    const char *map; /* seekable: the file, mapped */
    size_t map_len;
    uint64_t nbatches;   /* seekable: how many */
    uint64_t next_claim; /* the next batch to hand out */
    uint64_t next_join;  /* the next batch to join */
    uint64_t released;   /* seekable: batches before this one are unmapped from memory */
    int eof, failed, err;
    char *carry; /* a pipe: the partial line after the last batch */
    size_t carry_len;
    int skip; /* a pipe: the rest of an overlong line is still to come */
    struct audit_input_slot slots[AUDIT_INPUT_WORKERS + AUDIT_INPUT_SPARE];
    int nslots;
    pthread_mutex_t lock;
    pthread_cond_t turn; /* a slot changed state */
};

static int audit_input_batch_room(struct audit_input_batch *b, size_t bytes)
{
    if (bytes > b->cap) {
        char *buf = realloc(b->buf, bytes);
        if (buf == NULL)
            return -1;
        b->buf = buf;
        b->cap = bytes;
    }
    return 0;
}

/* Packs EV (its strings in the text of B) after the events of B; -1 when memory
 * is out (EV is lost). */
static int audit_input_add_event(struct audit_input_batch *b, const struct audit_event *ev)
{
    size_t need = AUDIT_JOIN_PACKED_MAX;
    if (b->reccap - b->reclen < need) {
        size_t cap = b->reccap ? b->reccap * 2 : (size_t)256 << 10;
        while (cap - b->reclen < need)
            cap *= 2;
        char *rec = realloc(b->rec, cap);
        if (rec == NULL)
            return -1;
        b->rec = rec;
        b->reccap = cap;
    }
    if (ev->time != AUDIT_NO_TIME) {
        if (b->first == AUDIT_NO_TIME || ev->time < b->first)
            b->first = ev->time;
        if (b->last == AUDIT_NO_TIME || ev->time > b->last)
            b->last = ev->time;
    }
    if (b->nev > 0 && audit_join_supersedes(b->rec + b->last_at, ev)) {
        b->reclen = b->last_at;
        b->nev--;
        b->unused++;
    }
    b->last_at = b->reclen;
    b->reclen += audit_join_pack(b->rec + b->reclen, ev, b->text);
    b->nev++;
    return 0;
}

/* Newline finder: a bitmask of the newlines of 64 bytes at a time (AVX2
 * where the CPU has it, else SSE2, part of every x86-64), memchr elsewhere
 * and near the end of the data. */
struct audit_input_nl {
    const char *block, *end;
    uint64_t mask;
};

#if defined(__SSE2__)
static uint64_t audit_input_nl_mask_sse2(const char *p)
{
    const __m128i nl = _mm_set1_epi8('\n');
    uint64_t m = 0;
    for (int i = 0; i < 4; i++) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(p + 16 * i));
        m |= (uint64_t)(uint16_t)_mm_movemask_epi8(_mm_cmpeq_epi8(v, nl)) << (16 * i);
    }
    return m;
}

#define AUDIT_INPUT_AVX2 __attribute__((target("avx2")))
AUDIT_INPUT_AVX2 static uint64_t audit_input_nl_mask_avx2(const char *p)
{
    const __m256i nl = _mm256_set1_epi8('\n');
    __m256i lo = _mm256_loadu_si256((const __m256i *)(const void *)p);
    __m256i hi = _mm256_loadu_si256((const __m256i *)(const void *)(p + 32));
    return (uint64_t)(uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(lo, nl)) |
           (uint64_t)(uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(hi, nl)) << 32;
}

/* audit_input_nl_init_X and audit_input_nl_next_X (the next newline at or
 * after P, P inside the current block or after it; NULL if none) for the
 * mask function audit_input_nl_mask_X, compiled with ATTR. */
#define AUDIT_INPUT_NL(X, ATTR)                                                                    \
    ATTR static inline void audit_input_nl_init_##X(struct audit_input_nl *f, const char *p,       \
                                                    const char *end)                               \
    {                                                                                              \
        f->block = p;                                                                              \
        f->end = end;                                                                              \
        f->mask = end - p >= 64 ? audit_input_nl_mask_##X(p) : 0;                                  \
    }                                                                                              \
    ATTR static inline const char *audit_input_nl_next_##X(struct audit_input_nl *f,               \
                                                           const char *p)                          \
    {                                                                                              \
        for (;;) {                                                                                 \
            if (f->mask != 0) {                                                                    \
                const char *at = f->block + __builtin_ctzll(f->mask);                              \
                f->mask &= f->mask - 1;                                                            \
                if (at >= p)                                                                       \
                    return at;                                                                     \
                continue;                                                                          \
            }                                                                                      \
            if (f->end - f->block < 128)                                                           \
                break;                                                                             \
            f->block += 64;                                                                        \
            f->mask = audit_input_nl_mask_##X(f->block);                                           \
        }                                                                                          \
        if (p < f->block + 64 && f->end - f->block >= 64)                                          \
            p = f->block + 64;                                                                     \
        return memchr(p, '\n', (size_t)(f->end - p));                                              \
    }
AUDIT_INPUT_NL(sse2, )
AUDIT_INPUT_NL(avx2, AUDIT_INPUT_AVX2)
#else
static inline void audit_input_nl_init_any(struct audit_input_nl *f, const char *p, const char *end)
{
    f->end = end;
    (void)p;
}

static inline const char *audit_input_nl_next_any(struct audit_input_nl *f, const char *p)
{
    return memchr(p, '\n', (size_t)(f->end - p));
}
#endif

/* One line of LEN bytes at P into B. */
static inline void audit_input_line(struct audit_input_batch *b, const char *p, size_t len)
{
    struct audit_event ev;
    if (len > 0 && p[len - 1] == '\r')
        len--;
    b->lines++;
    if (len > AUDIT_INPUT_LINE)
        len = AUDIT_INPUT_LINE;
    if (audit_parse_line(p, len, &b->ctx, &ev) != AUDIT_EV_NONE) {
        if (audit_join_prepare(&ev))
            audit_input_add_event(b, &ev);
        else
            b->unused++;
    }
}

/* audit_input_parse_X: the lines of P[0..END) that start before LIMIT, into
 * events, with the newline finder X. */
#define AUDIT_INPUT_PARSE(X, ATTR)                                                                 \
    ATTR static void audit_input_parse_##X(struct audit_input_batch *b, const char *p,             \
                                           const char *end, const char *limit)                     \
    {                                                                                              \
        struct audit_input_nl f;                                                                   \
        audit_input_nl_init_##X(&f, p, end);                                                       \
        while (p < end && p < limit) {                                                             \
            const char *nl = audit_input_nl_next_##X(&f, p);                                       \
            audit_input_line(b, p, (size_t)((nl != NULL ? nl : end) - p));                         \
            p = nl != NULL ? nl + 1 : end;                                                         \
        }                                                                                          \
    }

#if defined(__SSE2__)
AUDIT_INPUT_PARSE(sse2, )
AUDIT_INPUT_PARSE(avx2, AUDIT_INPUT_AVX2)

static void audit_input_parse(struct audit_input_batch *b, const char *p, const char *end,
                              const char *limit)
{
    if (__builtin_cpu_supports("avx2"))
        audit_input_parse_avx2(b, p, end, limit);
    else
        audit_input_parse_sse2(b, p, end, limit);
}
#else
AUDIT_INPUT_PARSE(any, )

static void audit_input_parse(struct audit_input_batch *b, const char *p, const char *end,
                              const char *limit)
{
    audit_input_parse_any(b, p, end, limit);
}
#endif

/* Batch K of a regular file: the lines that start in [k * B, (k + 1) * B)
 * of the mapping. */
static void audit_input_load_file(struct audit_input_run *r, struct audit_input_batch *b,
                                  uint64_t k)
{
    const char *base = r->map, *end = r->map + r->map_len;
    const char *p = base + k * AUDIT_INPUT_BATCH;
    const char *limit = p + AUDIT_INPUT_BATCH < end ? p + AUDIT_INPUT_BATCH : end;
    b->text = p;
#ifdef MADV_POPULATE_READ
    /* the batch's pages mapped in one call rather than fault by fault */
    madvise((void *)p, (size_t)(limit - p), MADV_POPULATE_READ);
#endif
    if (k > 0 && p[-1] != '\n') { /* the line at p - 1 belongs to batch k - 1 */
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        p = nl != NULL ? nl + 1 : end;
    }
    audit_input_parse(b, p, end, limit);
    b->bytes = (uint64_t)(limit - (base + k * AUDIT_INPUT_BATCH));
}

/* The next batch of a pipe, under the lock: the carried partial line, then
 * what read(2) gives.  Returns the bytes of whole lines in B->buf. */
static ssize_t audit_input_read_pipe(struct audit_input_run *r, struct audit_input_batch *b)
{
    if (audit_input_batch_room(b, r->carry_len + AUDIT_INPUT_BATCH) != 0)
        return -1;
    memcpy(b->buf, r->carry, r->carry_len);
    size_t have = r->carry_len;
    ssize_t n = audit_input_fill(r->s.fd, b->buf + have, AUDIT_INPUT_BATCH);
    if (n < 0)
        return -1;
    int end = n == 0;
    if (r->skip) { /* the tail of an overlong line cut in the batch before */
        const char *nl = memchr(b->buf, '\n', (size_t)n);
        size_t drop = nl != NULL ? (size_t)(nl + 1 - b->buf) : (size_t)n;
        memmove(b->buf, b->buf + drop, (size_t)n - drop);
        n -= (ssize_t)drop;
        r->skip = nl == NULL;
    }
    have += (size_t)n;
    if (end) { /* the end: the carried line is the last one */
        r->eof = 1;
        r->carry_len = 0;
        return (ssize_t)have;
    }
    const char *nl = memrchr(b->buf, '\n', have);
    size_t whole = nl != NULL ? (size_t)(nl + 1 - b->buf) : 0;
    size_t rest = have - whole;
    if (rest > AUDIT_INPUT_LINE) { /* an overlong line: its head counts, not its tail */
        whole = have, rest = 0;
        r->skip = 1;
    }
    memcpy(r->carry, b->buf + whole, rest);
    r->carry_len = rest;
    return (ssize_t)whole;
}

/* Under the lock: more batches can be claimed. */
static int audit_input_more(const struct audit_input_run *r)
{
    return !r->failed && (r->seekable ? r->next_claim < r->nbatches : !r->eof);
}

static struct audit_input_slot *audit_input_slot_with(struct audit_input_run *r, int state,
                                                      uint64_t k)
{
    for (int i = 0; i < r->nslots; i++) {
        struct audit_input_slot *s = &r->slots[i];
        if (s->state == state && (state != AUDIT_INPUT_READY || s->k == k))
            return s;
    }
    return NULL;
}

/* Under the lock: the next batch into slot S (a pipe is read now, in
 * order); parsed by audit_input_parse_slot without the lock. */
static void audit_input_take(struct audit_input_run *r, struct audit_input_slot *s)
{
    struct audit_input_batch *b = &s->b;
    b->nev = b->reclen = b->lines = b->bytes = b->unused = 0;
    b->first = b->last = AUDIT_NO_TIME;
    s->state = AUDIT_INPUT_BUSY;
    s->k = r->next_claim++;
    s->len = 0;
    if (r->seekable)
        return;
    ssize_t n = audit_input_read_pipe(r, b);
    if (n < 0) {
        r->failed = 1;
        r->err = errno;
        n = 0;
    }
    s->len = (size_t)n;
}

/* Under the lock, in a parsing thread: gives back the pages of the batches
 * that are joined and no longer read (a batch reads the byte before it and
 * the end of its last line in the next one), so that they are not all
 * unmapped at the end, on the way to the report. */
static void audit_input_release(struct audit_input_run *r)
{
    uint64_t from = r->released, to = r->next_join > 0 ? r->next_join - 1 : 0;
    if (!r->seekable || to <= from + 7)
        return;
    r->released = to;
    pthread_mutex_unlock(&r->lock);
    madvise((void *)(r->map + from * AUDIT_INPUT_BATCH), (size_t)(to - from) * AUDIT_INPUT_BATCH,
            MADV_DONTNEED);
    pthread_mutex_lock(&r->lock);
}

/* Parses slot S (without the lock), then marks it ready (with it). */
static void audit_input_parse_slot(struct audit_input_run *r, struct audit_input_slot *s)
{
    struct audit_input_batch *b = &s->b;
    pthread_mutex_unlock(&r->lock);
    if (r->seekable) {
        audit_input_load_file(r, b, s->k);
    } else {
        b->text = b->buf;
        audit_input_parse(b, b->buf, b->buf + s->len, b->buf + s->len);
        b->bytes = s->len;
    }
    pthread_mutex_lock(&r->lock);
    s->state = AUDIT_INPUT_READY;
    pthread_cond_broadcast(&r->turn);
}

/* Joins slot S (without the lock) and frees it. */
static void audit_input_join(struct audit_input_run *r, struct audit_input_slot *s)
{
    struct audit_input_batch *b = &s->b;
    pthread_mutex_unlock(&r->lock);
    audit_join_packed(r->j, b->rec, b->nev, b->text, b->first, b->last);
    r->j->st->lines += b->lines;
    r->j->st->events += b->unused;
    r->pg->done += b->bytes;
    audit_input_progress(r->pg, r->j->st->lines);
    pthread_mutex_lock(&r->lock);
    s->state = AUDIT_INPUT_FREE;
    r->next_join++;
    pthread_cond_broadcast(&r->turn);
}

/* A parsing thread: takes free slots while there are batches. */
static void *audit_input_parser(void *arg)
{
    struct audit_input_run *r = arg;
    struct audit_input_slot *s = NULL;
    pthread_mutex_lock(&r->lock);
    for (;;) {
        while (audit_input_more(r) && (s = audit_input_slot_with(r, AUDIT_INPUT_FREE, 0)) == NULL)
            pthread_cond_wait(&r->turn, &r->lock);
        if (!audit_input_more(r))
            break;
        audit_input_take(r, s);
        audit_input_parse_slot(r, s);
        audit_input_release(r);
    }
    pthread_mutex_unlock(&r->lock);
    return NULL;
}

/* The calling thread joins the batches in order, and parses one itself
 * when the next is not ready yet: the join's state stays in one cache. */
static void audit_input_joiner(struct audit_input_run *r)
{
    struct audit_input_slot *s;
    pthread_mutex_lock(&r->lock);
    for (;;) {
        if ((s = audit_input_slot_with(r, AUDIT_INPUT_READY, r->next_join)) != NULL) {
            audit_input_join(r, s);
        } else if (r->next_join == r->next_claim && !audit_input_more(r)) {
            break;
        } else if (audit_input_more(r) &&
                   (s = audit_input_slot_with(r, AUDIT_INPUT_FREE, 0)) != NULL) {
            audit_input_take(r, s);
            audit_input_parse_slot(r, s);
        } else {
            pthread_cond_wait(&r->turn, &r->lock);
        }
    }
    pthread_mutex_unlock(&r->lock);
}

/* Parsing threads besides the caller: one per further CPU. */
static int audit_input_parsers(const struct audit_input_run *r)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    int n = cpus > AUDIT_INPUT_WORKERS ? AUDIT_INPUT_WORKERS : cpus < 1 ? 1 : (int)cpus;
    if (r->seekable && r->nbatches < 2)
        n = 1; /* a small file: threads would only cost */
    return n - 1;
}

static void audit_input_run_all(struct audit_input_run *r)
{
    pthread_t t[AUDIT_INPUT_WORKERS];
    int n = audit_input_parsers(r), started = 0;
    r->nslots = n + AUDIT_INPUT_SPARE;
    for (int i = 0; i < r->nslots; i++)
        r->slots[i].b.ctx = r->in->ctx;
    for (int i = 0; i < n; i++) {
        if (pthread_create(&t[started], NULL, audit_input_parser, r) == 0)
            started++;
    }
    audit_input_joiner(r);
    for (int i = 0; i < started; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < r->nslots; i++) {
        free(r->slots[i].b.buf);
        free(r->slots[i].b.rec);
    }
}

/* A file truncated while mapped: its pages are gone, nothing sensible can
 * be counted any more. */
static void audit_input_on_sigbus(int sig)
{
    static const char msg[] = "tlsgate audit: an input file was truncated while being read\n";
    (void)sig;
    if (write(STDERR_FILENO, msg, sizeof(msg) - 1) < 0)
        _exit(1);
    _exit(1);
}

static int audit_input_map(struct audit_input_run *r, const struct stat *sb)
{
    static int handler;
    if (sb->st_size == 0)
        return 0;
    if (!handler) {
        struct sigaction sa = {0};
        sa.sa_handler = audit_input_on_sigbus;
        sigaction(SIGBUS, &sa, NULL);
        handler = 1;
    }
    void *m = mmap(NULL, (size_t)sb->st_size, PROT_READ, MAP_PRIVATE, r->s.fd, 0);
    if (m == MAP_FAILED)
        return -1;
    madvise(m, (size_t)sb->st_size, MADV_SEQUENTIAL);
    r->map = m;
    r->map_len = (size_t)sb->st_size;
    r->nbatches = (r->map_len + AUDIT_INPUT_BATCH - 1) / AUDIT_INPUT_BATCH;
    return 0;
}

static int audit_input_setup(struct audit_input_run *r, struct audit_input *in)
{
    struct stat sb;
    r->seekable =
        !in->gz && strcmp(in->path, "-") != 0 && fstat(r->s.fd, &sb) == 0 && S_ISREG(sb.st_mode);
    if (r->seekable)
        return audit_input_map(r, &sb);
    r->carry = malloc(AUDIT_INPUT_LINE + in->head_len + 1);
    if (r->carry == NULL)
        return -1;
    memcpy(r->carry, in->head != NULL ? in->head : "", in->head_len);
    r->carry_len = in->head_len;
    r->pg->done += in->head_len;
    return 0;
}

static int audit_input_one(struct audit_input *in, struct audit_join *j,
                           struct audit_input_progress *pg)
{
    struct audit_input_run r = {.in = in, .j = j, .pg = pg};
    if (audit_input_open(in, &r.s) != 0) {
        fprintf(stderr, "tlsgate audit: %s: cannot open: %s\n", in->path, strerror(errno));
        return -1;
    }
    pthread_mutex_init(&r.lock, NULL);
    pthread_cond_init(&r.turn, NULL);
    if (audit_input_setup(&r, in) != 0) {
        r.failed = 1;
        r.err = ENOMEM;
    } else {
        audit_input_run_all(&r);
    }
    pthread_cond_destroy(&r.turn);
    pthread_mutex_destroy(&r.lock);
    free(r.carry);
    if (r.map != NULL)
        munmap((void *)r.map, r.map_len);
    int gz_failed = audit_input_close(&r.s, r.failed) != 0;
    j->st->files++;
    if (r.failed)
        fprintf(stderr, "tlsgate audit: %s: read error: %s\n", in->path, strerror(r.err));
    else if (gz_failed)
        fprintf(stderr, "tlsgate audit: %s: gzip reported an error\n", in->path);
    return r.failed || gz_failed ? -1 : 0;
}

int audit_input_read(struct audit_input *in, size_t n, struct audit_join *j, int progress)
{
    struct audit_input_progress pg = {0};
    int rc = 0, sized = 1; /* every size known: a percentage can be shown */
    pg.on = progress && isatty(STDERR_FILENO);
    pg.start = pg.last = audit_input_now();
    for (size_t i = 0; i < n; i++) {
        pg.total += (uint64_t)in[i].size;
        sized &= !in[i].gz && in[i].size > 0;
    }
    if (!sized)
        pg.total = 0;
    for (size_t i = 0; i < n; i++) {
        if (audit_input_one(&in[i], j, &pg) != 0)
            rc = -1;
    }
    audit_input_progress_end(&pg);
    return rc;
}
