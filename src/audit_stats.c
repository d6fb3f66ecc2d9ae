/*
 * audit_stats: what the audit report is made of.  The join hands over
 * finished connections, received messages and deliveries; this module
 * applies the filters (--since/--until, --domain, --direction) and counts:
 * totals per direction, per domain, per peer address, per protocol and
 * cipher, the hourly timeline and the TLS-RPT sessions.  The two lists that
 * grow with the input (messages without TLS, required-TLS failures) are
 * written to temporary files (one per list) and read back by the reports.
 *
 * Spill records, binary, in log order: a fixed head (time, three IDs, a
 * code, the lengths of the strings) then the bytes of the strings, as they
 * were (the reader turns tabs and newlines into spaces; an empty string is
 * an unknown value):
 *   W  time mid icid dcid hop                 from to_domain
 *   R  time id           direction            ip host domain policy reason
 * They collect in a buffer written out in large writes, so a list costs a
 * fixed amount of memory however long it grows.
 *
 * Must not: allocate per line (keys are interned once, in an arena), or
 * hold more than AUDIT_STATS_MAX_KEYS keys per table.
 */
#include "audit.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <unistd.h>

#define AUDIT_STATS_ARENA     (256 * 1024)
#define AUDIT_STATS_MAX_HOURS (1u << 18) /* about 30 years of hours */
#define AUDIT_STATS_OTHER     "(other)"
#define AUDIT_STATS_UNKNOWN   "(unknown)"

struct audit_stats_block {
    struct audit_stats_block *next;
};

static int audit_stats_spill_open(struct audit_stats *st);
static void audit_stats_spill_close(struct audit_stats *st);

/* ---- interned strings ---------------------------------------------------- */

static char *audit_stats_strndup(struct audit_stats *st, const char *s, size_t n)
{
    if (st->arena_left < n + 1) {
        size_t size = n + 1 > AUDIT_STATS_ARENA ? n + 1 : AUDIT_STATS_ARENA;
        struct audit_stats_block *b = malloc(sizeof(*b) + size);
        if (b == NULL)
            return NULL;
        b->next = st->arenas;
        st->arenas = b;
        st->arena = (char *)(b + 1);
        st->arena_left = size;
    }
    char *p = st->arena;
    memcpy(p, s, n);
    p[n] = '\0';
    st->arena += n + 1;
    st->arena_left -= n + 1;
    return p;
}

/* The bytes 'A'..'Z' of W with 0x20 set (the others as they are) when
 * LOWER is 0x2020..20: eight at a time, no carry crosses a byte. */
static uint64_t audit_stats_lower8(uint64_t w, uint64_t lower)
{
    const uint64_t low7 = 0x7f7f7f7f7f7f7f7full, high = 0x8080808080808080ull;
    uint64_t b = w & low7;
    uint64_t ge_a = b + 0x3f3f3f3f3f3f3f3full; /* high bit: >= 'A' */
    uint64_t gt_z = b + 0x2525252525252525ull; /* high bit: > 'Z' */
    uint64_t upper = ge_a & ~gt_z & ~w & high;
    return w | ((upper >> 2) & lower);
}

/* The N (1..7) bytes at S in one word, in at most three loads. */
static uint64_t audit_stats_tail(const char *s, size_t n)
{
    uint32_t a, b;
    if (n >= 4) {
        memcpy(&a, s, 4);
        memcpy(&b, s + n - 4, 4);
        return (uint64_t)a | (uint64_t)b << 32;
    }
    return (uint64_t)(unsigned char)s[0] | (uint64_t)(unsigned char)s[n / 2] << 8 |
           (uint64_t)(unsigned char)s[n - 1] << 16;
}

/* Eight bytes a step, the last step overlapping (a name is hashed once per
 * event, in the parsing threads, and the join's tables only need a good
 * spread; the length is mixed in, so overlapping bytes cannot collide
 * names of different lengths). */
uint32_t audit_stats_hash(const char *s, size_t n, int fold)
{
    const uint64_t mul = 0x9e3779b97f4a7c15ull;
    const size_t len = n;
    uint64_t lower = fold ? 0x2020202020202020ull : 0;
    uint64_t h = 0xcbf29ce484222325ull ^ (uint64_t)n, w;
    for (; n > 8; s += 8, n -= 8) {
        memcpy(&w, s, sizeof(w));
        h = (h ^ audit_stats_lower8(w, lower)) * mul;
        h ^= h >> 29;
    }
    if (n > 0) { /* the last 1..8 bytes */
        if (len >= 8)
            memcpy(&w, s + n - 8, sizeof(w));
        else
            w = audit_stats_tail(s, n);
        h = (h ^ audit_stats_lower8(w, lower)) * mul;
        h ^= h >> 29;
    }
    h *= 0xff51afd7ed558ccdull;
    return (uint32_t)(h >> 32);
}

/* ---- tables -------------------------------------------------------------- */

static void audit_stats_table_init(struct audit_table *t, uint32_t max)
{
    memset(t, 0, sizeof(*t));
    t->max = max;
    t->other = AUDIT_NONE_KEY;
}

static void audit_stats_slot_put(struct audit_slot *slots, uint32_t mask,
                                 const struct audit_slot *from)
{
    uint32_t i = from->hash & mask;
    while (slots[i].key != 0)
        i = (i + 1) & mask;
    slots[i] = *from;
}

/* Tables of 2 MiB and more (the address table of a big log: it is read at
 * random, once per connection and message) are mapped on their own and
 * asked for huge pages, so that its lookups do not each miss the TLB.
 * Zeroed memory; NULL when out of memory. */
#define AUDIT_STATS_HUGE ((size_t)2 << 20)

void *audit_stats_reserve(size_t size)
{
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                   -1, 0);
    if (p == MAP_FAILED)
        return NULL;
#ifdef MADV_HUGEPAGE
    if (size >= AUDIT_STATS_HUGE)
        madvise(p, size, MADV_HUGEPAGE);
#endif
    return p;
}

void audit_stats_unreserve(void *p, size_t size)
{
    if (p != NULL)
        munmap(p, size);
}

static void *audit_stats_mem(size_t size)
{
    return size < AUDIT_STATS_HUGE ? calloc(1, size) : audit_stats_reserve(size);
}

static void audit_stats_mem_free(void *p, size_t size)
{
    if (size < AUDIT_STATS_HUGE)
        free(p);
    else
        audit_stats_unreserve(p, size);
}

static int audit_stats_rehash(struct audit_table *t, uint32_t ns)
{
    struct audit_slot *s = audit_stats_mem((size_t)ns * sizeof(*s));
    if (s == NULL)
        return -1;
    for (uint32_t i = 0; i < t->nslots; i++) {
        if (t->slots[i].key != 0)
            audit_stats_slot_put(s, ns - 1, &t->slots[i]);
    }
    audit_stats_mem_free(t->slots, (size_t)t->nslots * sizeof(*s));
    t->slots = s;
    t->nslots = ns;
    t->last = 0; /* slots moved */
    return 0;
}

/* Room for one more key (the index stays at most half full). */
static int audit_stats_table_grow(struct audit_table *t)
{
    if (t->n == t->cap) {
        uint32_t cap = t->cap ? t->cap * 2 : 64;
        /* Past AUDIT_STATS_HUGE the table takes room for its whole bound
         * at once: its pages are touched (and zeroed) only as keys come, it
         * is never copied again, and it lies where huge pages fit. */
        if ((size_t)cap * sizeof(struct audit_key) >= AUDIT_STATS_HUGE && t->max + 1 > t->n)
            cap = t->max + 1;
        struct audit_key *k = audit_stats_mem((size_t)cap * sizeof(*k));
        if (k == NULL)
            return -1;
        if (t->n > 0)
            memcpy(k, t->keys, (size_t)t->n * sizeof(*k));
        audit_stats_mem_free(t->keys, (size_t)t->cap * sizeof(*k));
        t->keys = k;
        t->cap = cap;
    }
    if ((t->n + 1) * 2 > t->nslots)
        return audit_stats_rehash(t, t->nslots ? t->nslots * 2 : 256);
    return 0;
}

static uint32_t audit_stats_add(struct audit_stats *st, struct audit_table *t, const char *name,
                                size_t n, uint32_t hash, int fold)
{
    if (audit_stats_table_grow(t) != 0)
        return AUDIT_NONE_KEY;
    struct audit_key *k = &t->keys[t->n];
    memset(k, 0, sizeof(*k));
    k->name = audit_stats_strndup(st, name, n);
    if (k->name == NULL)
        return AUDIT_NONE_KEY;
    for (size_t i = 0; fold && i < n; i++)
        k->name[i] = k->name[i] >= 'A' && k->name[i] <= 'Z' ? (char)(k->name[i] + 32) : k->name[i];
    k->len = (uint32_t)n;
    k->aux = AUDIT_NONE_KEY;
    k->weak = -1;
    struct audit_slot sl = {hash, ++t->n, {0}};
    if (n < AUDIT_SLOT_NAME)
        memcpy(sl.name, k->name, n);
    audit_stats_slot_put(t->slots, t->nslots - 1, &sl);
    return t->n - 1;
}

void audit_stats_prefetch_slot(const struct audit_table *t, uint32_t hash)
{
    if (t->nslots > 0)
        __builtin_prefetch(&t->slots[hash & (t->nslots - 1)]);
}

void audit_stats_prefetch_key(const struct audit_table *t, uint32_t k, int dir)
{
    if (k >= t->n)
        return;
    const struct audit_key *key = &t->keys[k];
    const char *c = (const char *)&key->c[dir];
    __builtin_prefetch(&key->host[dir]);
    __builtin_prefetch(c, 1);
    __builtin_prefetch(c + 64, 1);
    __builtin_prefetch(c + sizeof(key->c[dir]) - 1, 1);
}

/* K is NAME (whose upper-case letters count as lower-case when FOLD: keys
 * of folded tables are stored in lower case). */
static int audit_stats_is(const struct audit_key *k, const char *name, size_t n, int fold)
{
    if (k->len != n)
        return 0;
    if (!fold)
        return memcmp(k->name, name, n) == 0;
    for (size_t i = 0; i < n; i++) {
        char ch = name[i] >= 'A' && name[i] <= 'Z' ? (char)(name[i] + 32) : name[i];
        if (ch != k->name[i])
            return 0;
    }
    return 1;
}

/* A[0..N) equals B[0..N), for 0 < N < AUDIT_SLOT_NAME: a word at a time,
 * the last word overlapping (no call for the few bytes of an address). */
static int audit_stats_same(const char *a, const char *b, size_t n)
{
    uint64_t x, y, diff = 0;
    if (n < 8)
        return audit_stats_tail(a, n) == audit_stats_tail(b, n);
    for (size_t i = 0; i + 8 < n; i += 8) {
        memcpy(&x, a + i, sizeof(x));
        memcpy(&y, b + i, sizeof(y));
        diff |= x ^ y;
    }
    memcpy(&x, a + n - 8, sizeof(x));
    memcpy(&y, b + n - 8, sizeof(y));
    return (diff | (x ^ y)) == 0;
}

/* The slot holds NAME (short names are compared in the slot itself). */
static int audit_stats_slot_is(const struct audit_table *t, const struct audit_slot *sl,
                               const char *name, size_t n, int fold)
{
    if (n >= AUDIT_SLOT_NAME)
        return audit_stats_is(&t->keys[sl->key - 1], name, n, fold);
    if (sl->name[n] != '\0')
        return 0;
    if (n > 0 && audit_stats_same(sl->name, name, n)) /* already lower case: most names */
        return 1;
    for (size_t i = 0; i < n; i++) {
        char ch = name[i];
        if (fold && ch >= 'A' && ch <= 'Z')
            ch = (char)(ch + 32);
        if (ch != sl->name[i])
            return 0;
    }
    return n > 0 || sl->name[0] == '\0';
}

static uint32_t audit_stats_find(struct audit_table *t, const char *name, size_t n, int fold,
                                 uint32_t hash)
{
    uint32_t mask = t->nslots - 1;
    if (t->nslots == 0)
        return AUDIT_NONE_KEY;
    for (uint32_t i = hash & mask; t->slots[i].key != 0; i = (i + 1) & mask) {
        const struct audit_slot *sl = &t->slots[i];
        if (sl->hash == hash && audit_stats_slot_is(t, sl, name, n, fold)) {
            t->last = i + 1;
            return sl->key - 1;
        }
    }
    return AUDIT_NONE_KEY;
}

uint32_t audit_stats_key_hashed(struct audit_stats *st, struct audit_table *t, const char *name,
                                size_t n, int fold, uint32_t hash)
{
    if (n == 0)
        return AUDIT_NONE_KEY;
    if (n > 255)
        n = 255;
    if (t->last != 0 && t->slots[t->last - 1].hash == hash &&
        audit_stats_slot_is(t, &t->slots[t->last - 1], name, n, fold))
        return t->slots[t->last - 1].key - 1;
    uint32_t k = audit_stats_find(t, name, n, fold, hash);
    if (k != AUDIT_NONE_KEY)
        return k;
    if (t->n >= t->max) {
        if (t->other == AUDIT_NONE_KEY)
            t->other = audit_stats_add(st, t, AUDIT_STATS_OTHER, strlen(AUDIT_STATS_OTHER),
                                       audit_stats_hash(AUDIT_STATS_OTHER, 7, 0), 0);
        return t->other;
    }
    return audit_stats_add(st, t, name, n, hash, fold);
}

uint32_t audit_stats_key(struct audit_stats *st, struct audit_table *t, const char *name, size_t n,
                         int fold)
{
    n = n > 255 ? 255 : n;
    return audit_stats_key_hashed(st, t, name, n, fold, audit_stats_hash(name, n, fold));
}

struct audit_str audit_stats_addr_domain(const char *addr, size_t n)
{
    struct audit_str none = {NULL, 0};
    const char *at = n > 0 ? memrchr(addr, '@', n) : NULL;
    if (at == NULL)
        return none;
    size_t len = n - (size_t)(at + 1 - addr);
    while (len > 0 && (at[len] == '>' || at[len] == '.' || at[len] == ' '))
        len--;
    struct audit_str d = {at + 1, (uint32_t)len};
    return d;
}

static void audit_stats_table_free(struct audit_table *t)
{
    audit_stats_mem_free(t->keys, (size_t)t->cap * sizeof(*t->keys));
    audit_stats_mem_free(t->slots, (size_t)t->nslots * sizeof(*t->slots));
    memset(t, 0, sizeof(*t));
}

/* ---- life ---------------------------------------------------------------- */

int audit_stats_init(struct audit_stats *st, const struct audit_filter *f)
{
    memset(st, 0, sizeof(*st));
    st->filter = *f;
    st->first = st->last = AUDIT_NO_TIME;
    audit_stats_table_init(&st->domains, AUDIT_STATS_MAX_KEYS);
    audit_stats_table_init(&st->ips, AUDIT_STATS_MAX_KEYS);
    audit_stats_table_init(&st->protocols, 1000);
    audit_stats_table_init(&st->ciphers, 1000);
    audit_stats_table_init(&st->rpt, AUDIT_STATS_MAX_KEYS);
    return audit_stats_spill_open(st);
}

void audit_stats_free(struct audit_stats *st)
{
    audit_stats_table_free(&st->domains);
    audit_stats_table_free(&st->ips);
    audit_stats_table_free(&st->protocols);
    audit_stats_table_free(&st->ciphers);
    audit_stats_table_free(&st->rpt);
    free(st->hours);
    audit_stats_spill_close(st);
    while (st->arenas != NULL) {
        struct audit_stats_block *b = st->arenas;
        st->arenas = b->next;
        free(b);
    }
    memset(st, 0, sizeof(*st));
}

/* ---- filters ------------------------------------------------------------- */

static int audit_stats_dir_wanted(const struct audit_stats *st, int dir)
{
    return st->filter.direction < 0 || st->filter.direction == dir;
}

static int audit_stats_time_wanted(const struct audit_stats *st, int64_t t)
{
    if (t == AUDIT_NO_TIME)
        return st->filter.since == AUDIT_NO_TIME && st->filter.until == AUDIT_NO_TIME;
    return (st->filter.since == AUDIT_NO_TIME || t >= st->filter.since) &&
           (st->filter.until == AUDIT_NO_TIME || t <= st->filter.until);
}

/* --domain D: D itself; ".D": D and every name below it. */
static int audit_stats_domain_wanted(const struct audit_stats *st, uint32_t key)
{
    const char *want = st->filter.domain;
    if (want == NULL)
        return 1;
    if (key == AUDIT_NONE_KEY || key >= st->domains.n)
        return 0;
    const char *name = st->domains.keys[key].name;
    if (want[0] != '.')
        return strcasecmp(name, want) == 0;
    size_t n = strlen(name), w = strlen(want);
    return strcasecmp(name, want + 1) == 0 || (n > w && strcasecmp(name + n - w, want) == 0);
}

/* ---- weak protocols and ciphers ------------------------------------------ */

const char *audit_stats_weak_protocol(const char *name)
{
    static const char *const weak[] = {"SSLv2",   "SSLv3",   "TLSv1",
                                       "TLSv1.0", "TLSv1.1", "TLSv1/SSLv3"};
    for (size_t i = 0; i < sizeof(weak) / sizeof(weak[0]); i++) {
        if (strcasecmp(name, weak[i]) == 0)
            return "< TLSv1.2";
    }
    return NULL;
}

static int audit_stats_has(const char *name, const char *part)
{
    return strcasestr(name, part) != NULL;
}

/* A CBC suite with a SHA-1 MAC: OpenSSL names end in "-SHA" (AES128-SHA,
 * ECDHE-RSA-AES256-SHA), IANA names in "_CBC_SHA". */
static int audit_stats_cbc_sha1(const char *name)
{
    size_t n = strlen(name);
    if (n >= 8 && strcasecmp(name + n - 8, "_CBC_SHA") == 0)
        return 1;
    return n >= 4 && strcasecmp(name + n - 4, "-SHA") == 0 && !audit_stats_has(name, "GCM") &&
           !audit_stats_has(name, "CHACHA") && !audit_stats_has(name, "CCM");
}

const char *audit_stats_weak_cipher(const char *name)
{
    if (strncmp(name, "TLS_AES_", 8) == 0 || strncmp(name, "TLS_CHACHA20_", 13) == 0)
        return NULL; /* TLS 1.3 */
    if (audit_stats_has(name, "RC4"))
        return "RC4";
    if (audit_stats_has(name, "3DES") || audit_stats_has(name, "DES-CBC3") ||
        audit_stats_has(name, "DES_EDE"))
        return "3DES";
    if (audit_stats_has(name, "DES"))
        return "DES";
    if (audit_stats_has(name, "NULL"))
        return "NULL";
    if (audit_stats_has(name, "EXP"))
        return "EXPORT";
    if (audit_stats_has(name, "ADH") || audit_stats_has(name, "AECDH") ||
        audit_stats_has(name, "anon"))
        return "anonymous";
    if (audit_stats_has(name, "MD5"))
        return "MD5";
    if (audit_stats_cbc_sha1(name))
        return "CBC-SHA1";
    return NULL;
}

/* ---- RFC 8460 result types ----------------------------------------------- */

const char *audit_stats_result_type(const char *reason, int no_starttls, int verify_failed)
{
    if (no_starttls || audit_stats_has(reason, "STARTTLS"))
        return "starttls-not-supported";
    if (audit_stats_has(reason, "expired") || audit_stats_has(reason, "not yet valid"))
        return "certificate-expired";
    if (audit_stats_has(reason, "name does not match") || audit_stats_has(reason, "mismatch"))
        return "certificate-host-mismatch";
    if (audit_stats_has(reason, "self signed") || audit_stats_has(reason, "self-signed") ||
        audit_stats_has(reason, "local issuer") || audit_stats_has(reason, "untrusted") ||
        audit_stats_has(reason, "not trusted") || audit_stats_has(reason, "unable to verify") ||
        audit_stats_has(reason, "unable to get issuer") ||
        audit_stats_has(reason, "no certificate presented"))
        return "certificate-not-trusted";
    (void)verify_failed;
    return "validation-failure";
}

/* ---- the spill file ------------------------------------------------------ */

#define AUDIT_STATS_SPILL_BUF  (256 * 1024)
#define AUDIT_STATS_SPILL_STR  1024 /* longest string kept (values are shorter) */
#define AUDIT_STATS_SPILL_NSTR 5

/* The head of a record; the bytes of its strings follow. */
struct audit_stats_spill_head {
    int64_t time;
    uint64_t id[3];
    uint16_t len[AUDIT_STATS_SPILL_NSTR];
    uint8_t code; /* W: the hop (audit_stats_hops), R: the direction */
    uint8_t pad[5];
};

#define AUDIT_STATS_SPILL_MAX                                                                      \
    (sizeof(struct audit_stats_spill_head) + AUDIT_STATS_SPILL_NSTR * AUDIT_STATS_SPILL_STR)

/* One list.  It stays in memory, WIN holding all of it, while it fits in
 * MEM bytes (AUDIT_STATS_SPILL_MEM); beyond that it moves to FILE,
 * and WIN is BUF: while written, it collects the records not yet in FILE;
 * once rewound, it holds a window of FILE from which records are read. */
struct audit_spill {
    FILE *file;
    char *win;
    size_t cap;    /* bytes WIN can hold */
    size_t mem;    /* the memory bound */
    int in_file;   /* the list is in FILE */
    uint64_t size; /* bytes in FILE */
    uint64_t off;  /* reading: the offset in FILE of WIN[N] */
    size_t n, at;  /* bytes in WIN; reading: where the next record starts */
    int reading;
    char buf[AUDIT_STATS_SPILL_BUF];
};

static const char *const audit_stats_hops[] = {"inbound", "outbound", "both"};

static int audit_stats_spill_open(struct audit_stats *st)
{
    for (int i = 0; i < 2; i++) {
        struct audit_spill *s = malloc(sizeof(*s));
        if (s == NULL)
            return -1;
        memset(s, 0, offsetof(struct audit_spill, buf));
        s->mem = AUDIT_STATS_SPILL_MEM;
        st->spill[i] = s;
        s->file = tmpfile();
        if (s->file == NULL)
            return -1;
    }
    return 0;
}

static void audit_stats_spill_close(struct audit_stats *st)
{
    for (int i = 0; i < 2; i++) {
        if (st->spill[i] != NULL && st->spill[i]->file != NULL)
            fclose(st->spill[i]->file);
        if (st->spill[i] != NULL && !st->spill[i]->in_file)
            audit_stats_unreserve(st->spill[i]->win, AUDIT_STATS_SPILL_MEM);
        free(st->spill[i]);
        st->spill[i] = NULL;
    }
}

static struct audit_spill *audit_stats_spill(struct audit_stats *st, char kind)
{
    return st->spill[kind == 'R'];
}

void audit_stats_spill_bound(struct audit_stats *st, size_t bytes)
{
    for (int i = 0; i < 2; i++) {
        if (st->spill[i] != NULL)
            st->spill[i]->mem = bytes;
    }
}

/* Appends the buffered records to the file, all or none (a list that meets
 * a full disk loses records, never its order or framing); nothing while
 * the list is in memory. */
static void audit_stats_spill_flush(struct audit_spill *s)
{
    if (!s->in_file)
        return;
    int fd = fileno(s->file);
    size_t done = 0;
    while (done < s->n) {
        ssize_t r = pwrite(fd, s->win + done, s->n - done, (off_t)(s->size + done));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        done += (size_t)r;
    }
    if (done == s->n)
        s->size += done;
    s->n = 0;
}

/* Room in WIN for a record of any size: the list's memory, reserved at
 * its first record (it grows in place, on huge pages where the kernel has
 * them), while the list fits the bound, else the list moves to the file
 * (once) and BUF is flushed. */
static void audit_stats_spill_room(struct audit_spill *s)
{
    if (!s->in_file) {
        size_t bound = s->mem < AUDIT_STATS_SPILL_MEM ? s->mem : AUDIT_STATS_SPILL_MEM;
        if (s->win == NULL && bound >= AUDIT_STATS_SPILL_MAX)
            s->win = audit_stats_reserve(AUDIT_STATS_SPILL_MEM);
        if (s->win != NULL && s->n + AUDIT_STATS_SPILL_MAX <= bound) {
            s->cap = bound;
            return;
        }
        s->in_file = 1; /* WIN[0..N) is written below, then BUF takes over */
    }
    char *mem = s->win != s->buf ? s->win : NULL;
    audit_stats_spill_flush(s);
    audit_stats_unreserve(mem, AUDIT_STATS_SPILL_MEM);
    s->win = s->buf;
    s->cap = sizeof(s->buf);
}

/* Appends a record: H, then the strings STR[0..NSTR). */
static void audit_stats_spill_put(struct audit_spill *s, struct audit_stats_spill_head *h,
                                  const struct audit_str *str, int nstr)
{
    if (s->reading) {
        s->reading = 0;
        if (s->in_file)
            s->n = 0;
    }
    if (s->n + AUDIT_STATS_SPILL_MAX > s->cap)
        audit_stats_spill_room(s);
    char *rec = s->win + s->n, *at = rec + sizeof(*h);
    for (int i = 0; i < AUDIT_STATS_SPILL_NSTR; i++) {
        uint32_t n = i < nstr ? str[i].n : 0;
        h->len[i] = (uint16_t)(n < AUDIT_STATS_SPILL_STR ? n : AUDIT_STATS_SPILL_STR);
        if (h->len[i] > 0)
            memcpy(at, str[i].p, h->len[i]);
        at += h->len[i];
    }
    memcpy(rec, h, sizeof(*h));
    s->n += (size_t)(at - rec);
}

static struct audit_str audit_stats_spill_s(const char *s)
{
    struct audit_str v = {s, (uint32_t)strlen(s)};
    return v;
}

static const char *audit_stats_name(const struct audit_table *t, uint32_t key)
{
    return key != AUDIT_NONE_KEY && key < t->n ? t->keys[key].name : "";
}

int audit_stats_spill_rewind(struct audit_stats *st, char kind)
{
    struct audit_spill *s = audit_stats_spill(st, kind);
    if (!s->reading)
        audit_stats_spill_flush(s);
    s->reading = 1;
    s->at = 0;
    s->off = 0;
    if (s->in_file)
        s->n = 0;
    return 0;
}

/* Moves what is left of the window to the front of BUF and reads more. */
static void audit_stats_spill_refill(struct audit_spill *s)
{
    if (!s->in_file)
        return; /* all of it is in WIN */
    int fd = fileno(s->file);
    memmove(s->buf, s->buf + s->at, s->n - s->at);
    s->n -= s->at;
    s->at = 0;
    while (s->n < sizeof(s->buf) && s->off < s->size) {
        size_t want = sizeof(s->buf) - s->n;
        if (want > s->size - s->off)
            want = (size_t)(s->size - s->off);
        ssize_t r = pread(fd, s->buf + s->n, want, (off_t)s->off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            s->size = s->off; /* unreadable: the list ends here */
            break;
        }
        s->n += (size_t)r;
        s->off += (uint64_t)r;
    }
}

/* The size of the next record once it is whole in the window; 0 at the end. */
static size_t audit_stats_spill_whole(struct audit_spill *s, struct audit_stats_spill_head *h)
{
    for (int pass = 0; pass < 2; pass++) {
        size_t left = s->n - s->at;
        if (left >= sizeof(*h)) {
            memcpy(h, s->win + s->at, sizeof(*h));
            size_t need = sizeof(*h);
            for (int i = 0; i < AUDIT_STATS_SPILL_NSTR; i++)
                need += h->len[i];
            if (left >= need)
                return need;
        }
        if (pass == 0)
            audit_stats_spill_refill(s);
    }
    return 0;
}

/* Tabs, newlines and carriage returns in a value read as spaces (skipped
 * eight bytes at a time up to the first byte below 0x20). */
static void audit_stats_spill_blank(char *p, size_t n)
{
    const uint64_t ones = 0x0101010101010101ull, high = 0x8080808080808080ull;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, sizeof(w));
        if (((w - 0x20 * ones) & ~w & high) != 0)
            break;
    }
    for (; i < n; i++) {
        if (p[i] == '\t' || p[i] == '\n' || p[i] == '\r')
            p[i] = ' ';
    }
}

int audit_stats_spill_read(struct audit_stats *st, char kind, struct audit_spill_rec *r)
{
    struct audit_spill *s = audit_stats_spill(st, kind);
    struct audit_stats_spill_head h;
    size_t size = s->reading ? audit_stats_spill_whole(s, &h) : 0;
    if (size == 0)
        return 0;
    char *at = s->win + s->at + sizeof(h);
    r->time = h.time;
    memcpy(r->id, h.id, sizeof(r->id));
    r->what = kind == 'R' ? (h.code == AUDIT_IN ? "inbound" : "outbound")
                          : audit_stats_hops[h.code < 3 ? h.code : 0];
    for (int i = 0; i < AUDIT_STATS_SPILL_NSTR; i++) {
        r->s[i].p = at;
        r->s[i].n = h.len[i];
        audit_stats_spill_blank(at, h.len[i]);
        at += h.len[i];
    }
    s->at += size;
    return 1;
}

/* Text fields for audit_stats_spill_next: each value NUL-terminated in
 * BUF, cut when BUF is full. */
struct audit_stats_fields {
    char *at, *end;
    char **f;
    int n;
};

static void audit_stats_field(struct audit_stats_fields *x, const char *s, size_t n)
{
    size_t room = (size_t)(x->end - x->at);
    if (room == 0) {
        x->f[x->n++] = x->end - 1; /* the NUL of the last field */
        return;
    }
    n = n < room - 1 ? n : room - 1;
    memcpy(x->at, s, n);
    x->at[n] = '\0';
    x->f[x->n++] = x->at;
    x->at += n + 1;
}

static void audit_stats_field_num(struct audit_stats_fields *x, uint64_t v, int known)
{
    char b[24];
    size_t i = sizeof(b);
    do {
        b[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    audit_stats_field(x, b + i, known ? sizeof(b) - i : 0);
}

static void audit_stats_field_time(struct audit_stats_fields *x, int64_t t)
{
    char b[24];
    int n = t != AUDIT_NO_TIME ? snprintf(b, sizeof(b), "%lld", (long long)t) : 0;
    audit_stats_field(x, b, n > 0 ? (size_t)n : 0);
}

int audit_stats_spill_next(struct audit_stats *st, char kind, char *buf, size_t len, char **fields)
{
    struct audit_spill_rec r;
    struct audit_stats_fields x = {buf, buf + len, fields, 0};
    if (len == 0 || !audit_stats_spill_read(st, kind, &r))
        return 0;
    audit_stats_field(&x, kind == 'R' ? "R" : "W", 1);
    if (kind == 'R')
        audit_stats_field(&x, r.what, strlen(r.what));
    audit_stats_field_time(&x, r.time);
    audit_stats_field_num(&x, r.id[0], 1);
    if (kind != 'R') {
        audit_stats_field_num(&x, r.id[1], r.id[1] != 0);
        audit_stats_field_num(&x, r.id[2], r.id[2] != 0);
        audit_stats_field(&x, r.what, strlen(r.what));
    }
    for (int i = 0; i < (kind == 'R' ? 5 : 2); i++)
        audit_stats_field(&x, r.s[i].p, r.s[i].n);
    return 1;
}

/* ---- the timeline -------------------------------------------------------- */

static int audit_stats_hours_fit(struct audit_stats *st, uint32_t n)
{
    if (n <= st->cap_hours)
        return 0;
    uint32_t cap = st->cap_hours ? st->cap_hours : 64;
    while (cap < n)
        cap *= 2;
    struct audit_bucket *b = realloc(st->hours, (size_t)cap * sizeof(*b));
    if (b == NULL)
        return -1;
    st->hours = b;
    st->cap_hours = cap;
    return 0;
}

static struct audit_bucket *audit_stats_hour(struct audit_stats *st, int64_t t)
{
    int64_t h = t >= 0 ? t / 3600 : (t - 3599) / 3600;
    if (st->nhours == 0)
        st->hour0 = h;
    if (h < st->hour0) {
        int64_t shift = st->hour0 - h;
        if (st->nhours + shift > AUDIT_STATS_MAX_HOURS ||
            audit_stats_hours_fit(st, st->nhours + (uint32_t)shift) != 0)
            return NULL;
        memmove(st->hours + shift, st->hours, st->nhours * sizeof(*st->hours));
        memset(st->hours, 0, (size_t)shift * sizeof(*st->hours));
        st->nhours += (uint32_t)shift;
        st->hour0 = h;
    }
    int64_t i = h - st->hour0;
    if (i >= AUDIT_STATS_MAX_HOURS || audit_stats_hours_fit(st, (uint32_t)i + 1) != 0)
        return NULL;
    if ((uint32_t)i >= st->nhours) {
        memset(st->hours + st->nhours, 0, ((size_t)i + 1 - st->nhours) * sizeof(*st->hours));
        st->nhours = (uint32_t)i + 1;
    }
    return &st->hours[i];
}

/* ---- connections --------------------------------------------------------- */

static void audit_stats_count_conn(struct audit_count *k, const struct audit_conn *c, int weak_p,
                                   int weak_c)
{
    k->conns++;
    if (c->tls == AUDIT_TLS_OK) {
        k->tls_ok++;
        k->weak_protocol += weak_p;
        k->weak_cipher += weak_c;
        if (c->dir == AUDIT_OUT && c->verify == AUDIT_VERIFY_OK)
            k->verified++;
        else if (c->dir == AUDIT_OUT)
            k->unverified++;
    } else if (c->tls == AUDIT_TLS_FAILED) {
        k->tls_failed++;
    } else {
        k->no_tls++;
    }
    k->verify_failed += c->verify == AUDIT_VERIFY_FAILED;
    k->req_failed += c->req_failed != 0;
}

static void audit_stats_spill_reqfail(struct audit_stats *st, const struct audit_conn *c)
{
    struct audit_stats_spill_head h = {
        c->t_fail != AUDIT_NO_TIME ? c->t_fail : c->t_open, {c->node.key, 0, 0}, {0}, c->dir, {0}};
    struct audit_str str[AUDIT_STATS_SPILL_NSTR] = {
        audit_stats_spill_s(c->ip), audit_stats_spill_s(c->host),
        audit_stats_spill_s(audit_stats_name(&st->domains, c->domain)),
        audit_stats_spill_s(c->policy[0] ? c->policy : "required"), audit_stats_spill_s(c->reason)};
    audit_stats_spill_put(st->spill[1], &h, str, AUDIT_STATS_SPILL_NSTR);
    st->nreq++;
}

/* One TLS-RPT failure-details key: "domain \x1f result \x1f sending ip \x1f
 * receiving ip \x1f mx host \x1f reason". */
static void audit_stats_rpt_failure(struct audit_stats *st, const struct audit_conn *c)
{
    char key[600];
    const char *type =
        audit_stats_result_type(c->reason, c->no_starttls, c->verify == AUDIT_VERIFY_FAILED);
    int n = snprintf(key, sizeof(key), "%s\x1f%s\x1f%s\x1f%s\x1f%s\x1f%.100s",
                     audit_stats_name(&st->domains, c->domain), type, c->local_ip, c->ip, c->host,
                     c->reason);
    if (n < 0)
        return;
    uint32_t k = audit_stats_key(st, &st->rpt, key, strlen(key), 0);
    if (k == AUDIT_NONE_KEY)
        return;
    st->rpt.keys[k].aux = c->domain;
    st->rpt.keys[k].c[AUDIT_OUT].conns++;
}

/* RFC 8460 sessions: success = TLS up and no failed verification; failure =
 * TLS failed, required level not met, STARTTLS missing, verification failed.
 * Sessions that never tried TLS are not reported. */
static void audit_stats_rpt(struct audit_stats *st, const struct audit_conn *c)
{
    if (c->dir != AUDIT_OUT || c->domain == AUDIT_NONE_KEY || c->domain == st->domains.other)
        return;
    struct audit_count *k = &st->domains.keys[c->domain].c[AUDIT_OUT];
    int failed = c->tls == AUDIT_TLS_FAILED || c->req_failed || c->no_starttls ||
                 c->verify == AUDIT_VERIFY_FAILED;
    if (failed) {
        k->rpt_failed++;
        audit_stats_rpt_failure(st, c);
    } else if (c->tls == AUDIT_TLS_OK) {
        k->rpt_ok++;
    }
}

/* The domain row of connections whose domain the log never names (an
 * inbound session without MAIL FROM, a delivery connection that failed
 * before any recipient was logged). */
static uint32_t audit_stats_unknown(struct audit_stats *st)
{
    return audit_stats_key(st, &st->domains, AUDIT_STATS_UNKNOWN, strlen(AUDIT_STATS_UNKNOWN), 0);
}

static void audit_stats_conn_keys(struct audit_stats *st, const struct audit_conn *c,
                                  struct audit_count **k)
{
    uint32_t d = c->domain != AUDIT_NONE_KEY ? c->domain : audit_stats_unknown(st);
    k[0] = &st->total[c->dir];
    k[1] = d != AUDIT_NONE_KEY ? &st->domains.keys[d].c[c->dir] : NULL;
    k[2] = NULL;
    if (c->ip_key != AUDIT_NONE_KEY) {
        struct audit_key *key = &st->ips.keys[c->ip_key];
        if (key->host[c->dir] == NULL && c->host[0] != '\0')
            key->host[c->dir] = audit_stats_strndup(st, c->host, strlen(c->host));
        k[2] = &key->c[c->dir];
    }
}

/* Whether key K of T is weak, decided once per key. */
static int audit_stats_is_weak(struct audit_table *t, uint32_t k, int cipher)
{
    struct audit_key *key = &t->keys[k];
    if (key->weak < 0)
        key->weak = (cipher ? audit_stats_weak_cipher(key->name)
                            : audit_stats_weak_protocol(key->name)) != NULL;
    return key->weak;
}

static void audit_stats_conn_tls(struct audit_stats *st, const struct audit_conn *c, int *weak_p,
                                 int *weak_c)
{
    *weak_p = *weak_c = 0;
    if (c->tls != AUDIT_TLS_OK)
        return;
    if (c->protocol != AUDIT_NONE_KEY) {
        st->protocols.keys[c->protocol].c[c->dir].conns++;
        *weak_p = audit_stats_is_weak(&st->protocols, c->protocol, 0);
    }
    if (c->cipher != AUDIT_NONE_KEY) {
        st->ciphers.keys[c->cipher].c[c->dir].conns++;
        *weak_c = audit_stats_is_weak(&st->ciphers, c->cipher, 1);
    }
}

void audit_stats_conn(struct audit_stats *st, const struct audit_conn *c)
{
    if (!audit_stats_dir_wanted(st, c->dir) || !audit_stats_time_wanted(st, c->t_open) ||
        !audit_stats_domain_wanted(st, c->domain))
        return;
    struct audit_count *k[3];
    int weak_p, weak_c;
    audit_stats_conn_tls(st, c, &weak_p, &weak_c);
    audit_stats_conn_keys(st, c, k);
    for (int i = 0; i < 3; i++) {
        if (k[i] != NULL)
            audit_stats_count_conn(k[i], c, weak_p, weak_c);
    }
    struct audit_bucket *b = c->t_open != AUDIT_NO_TIME ? audit_stats_hour(st, c->t_open) : NULL;
    if (b != NULL)
        b->n[c->dir][c->tls == AUDIT_TLS_OK ? 0 : c->tls == AUDIT_TLS_FAILED ? 1 : 2]++;
    if (c->req_failed)
        audit_stats_spill_reqfail(st, c);
    audit_stats_rpt(st, c);
}

/* ---- messages ------------------------------------------------------------ */

static int audit_stats_plain(int tls)
{
    return tls == AUDIT_TLS_NONE || tls == AUDIT_TLS_FAILED;
}

static void audit_stats_count_msg(struct audit_count *k, int tls)
{
    if (k == NULL)
        return;
    k->msgs++;
    k->msgs_plain += audit_stats_plain(tls);
    k->msgs_unknown += tls == AUDIT_TLS_UNKNOWN;
}

static struct audit_count *audit_stats_ip_count(struct audit_stats *st, uint32_t ip, int dir)
{
    return ip != AUDIT_NONE_KEY && ip < st->ips.n ? &st->ips.keys[ip].c[dir] : NULL;
}

static void audit_stats_spill_plain(struct audit_stats *st, int64_t t, const struct audit_msg *m,
                                    uint64_t mid, uint64_t dcid, const char *hop, uint32_t domain)
{
    uint8_t code = hop[0] == 'b' ? 2 : hop[0] == 'o' ? 1 : 0; /* audit_stats_hops */
    struct audit_stats_spill_head h = {t, {mid, m != NULL ? m->icid : 0, dcid}, {0}, code, {0}};
    struct audit_str str[2] = {audit_stats_spill_s(m != NULL ? m->from : ""),
                               audit_stats_spill_s(audit_stats_name(&st->domains, domain))};
    audit_stats_spill_put(st->spill[0], &h, str, 2);
    st->nplain++;
}

void audit_stats_msg_in(struct audit_stats *st, const struct audit_msg *m)
{
    if (!m->ready || m->aborted || !audit_stats_dir_wanted(st, AUDIT_IN) ||
        !audit_stats_time_wanted(st, m->t_ready) || !audit_stats_domain_wanted(st, m->from_domain))
        return;
    audit_stats_count_msg(&st->total[AUDIT_IN], m->in_tls);
    if (m->from_domain != AUDIT_NONE_KEY)
        audit_stats_count_msg(&st->domains.keys[m->from_domain].c[AUDIT_IN], m->in_tls);
    audit_stats_count_msg(audit_stats_ip_count(st, m->ip, AUDIT_IN), m->in_tls);
    if (!m->delivered && audit_stats_plain(m->in_tls))
        audit_stats_spill_plain(st, m->t_ready, m, m->node.key, 0, "inbound",
                                m->nrcpt > 0 ? m->rcpt_domain[0] : AUDIT_NONE_KEY);
}

static void audit_stats_delivery_count(struct audit_stats *st, const struct audit_conn *c,
                                       uint32_t domain)
{
    int tls = c != NULL ? c->tls : AUDIT_TLS_UNKNOWN;
    audit_stats_count_msg(&st->total[AUDIT_OUT], tls);
    if (domain != AUDIT_NONE_KEY)
        audit_stats_count_msg(&st->domains.keys[domain].c[AUDIT_OUT], tls);
    if (c != NULL)
        audit_stats_count_msg(audit_stats_ip_count(st, c->ip_key, AUDIT_OUT), tls);
}

void audit_stats_delivery(struct audit_stats *st, const struct audit_conn *c,
                          const struct audit_msg *m, uint32_t domain, int64_t t, uint64_t dcid,
                          uint64_t mid)
{
    if (!audit_stats_time_wanted(st, t))
        return;
    int want_out = audit_stats_dir_wanted(st, AUDIT_OUT) && audit_stats_domain_wanted(st, domain);
    if (want_out)
        audit_stats_delivery_count(st, c, domain);
    int out_plain = c != NULL && audit_stats_plain(c->tls) && want_out;
    int in_plain =
        m != NULL && audit_stats_plain(m->in_tls) && audit_stats_dir_wanted(st, AUDIT_IN) &&
        (audit_stats_domain_wanted(st, m->from_domain) || audit_stats_domain_wanted(st, domain));
    if (out_plain || in_plain)
        audit_stats_spill_plain(st, t, m, mid, dcid,
                                out_plain && in_plain ? "both"
                                : out_plain           ? "outbound"
                                                      : "inbound",
                                domain);
}
