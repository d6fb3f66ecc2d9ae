/*
 * Unit tests of route_mx: the DNS answer parser on wire-format messages
 * built by hand (compression, CNAME, rcodes, truncated and garbage
 * buffers), null MX, ordering and equal-preference shuffling (fixed and
 * statistical), address literals, the TLSGATE_HOSTS_MX file, and one
 * asynchronous lookup on a real uv loop.  No test uses real DNS.
 */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "route_mx.h"

#define ROWS(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* ---- a DNS message builder ---- */

struct t_msg {
    unsigned char b[4096];
    size_t len;
};

static void t_u8(struct t_msg *m, unsigned v)
{
    ck_assert_uint_lt(m->len, sizeof(m->b));
    m->b[m->len++] = (unsigned char)v;
}

static void t_u16(struct t_msg *m, unsigned v)
{
    t_u8(m, v >> 8);
    t_u8(m, v & 0xff);
}

/* Labels of NAME ("" is the root), ending with the root label unless
 * PTR >= 0, which ends them with a compression pointer to offset PTR. */
static void t_name(struct t_msg *m, const char *name, int ptr)
{
    while (*name != '\0') {
        size_t n = strcspn(name, ".");
        t_u8(m, (unsigned)n);
        for (size_t i = 0; i < n; i++)
            t_u8(m, (unsigned char)name[i]);
        name += n + (name[n] == '.');
    }
    if (ptr >= 0)
        t_u16(m, 0xc000u | (unsigned)ptr);
    else
        t_u8(m, 0);
}

#define T_QNAME 12 /* offset of the question name */

/* Header (a response, RD+RA, RCODE) and the question QNAME/QTYPE IN. */
static void t_start(struct t_msg *m, unsigned rcode, unsigned ancount, const char *qname,
                    unsigned qtype)
{
    memset(m, 0, sizeof(*m));
    t_u16(m, 0x1234);
    t_u16(m, 0x8180 | rcode);
    t_u16(m, 1);
    t_u16(m, ancount);
    t_u16(m, 0);
    t_u16(m, 0);
    t_name(m, qname, -1);
    t_u16(m, qtype);
    t_u16(m, 1);
}

/* An RR header: owner as a pointer to OWNER_OFF, TYPE, IN, TTL; returns
 * the offset of RDLENGTH, filled in by t_end_rr. */
static size_t t_rr(struct t_msg *m, int owner_off, unsigned type)
{
    t_u16(m, 0xc000u | (unsigned)owner_off);
    t_u16(m, type);
    t_u16(m, 1);
    t_u16(m, 0);
    t_u16(m, 3600);
    size_t at = m->len;
    t_u16(m, 0);
    return at;
}

static void t_end_rr(struct t_msg *m, size_t at)
{
    size_t rdlen = m->len - at - 2;
    m->b[at] = (unsigned char)(rdlen >> 8);
    m->b[at + 1] = (unsigned char)(rdlen & 0xff);
}

/* An MX RR for the name at OWNER_OFF: PREF, then HOST's labels ended by a
 * pointer to PTR (or the root when PTR < 0). */
static void t_mx(struct t_msg *m, int owner_off, unsigned pref, const char *host, int ptr)
{
    size_t at = t_rr(m, owner_off, 15);
    t_u16(m, pref);
    t_name(m, host, ptr);
    t_end_rr(m, at);
}

/* ---- the answer parser, table-driven ---- */

static void b_single(struct t_msg *m)
{
    t_start(m, 0, 1, "example.org", 15);
    t_mx(m, T_QNAME, 10, "mx1.example.org", -1);
}

static void b_compressed(struct t_msg *m)
{
    t_start(m, 0, 3, "example.org", 15);
    t_mx(m, T_QNAME, 20, "mx2", T_QNAME);
    t_mx(m, T_QNAME, 10, "mx1", T_QNAME);
    t_mx(m, T_QNAME, 30, "", T_QNAME + 8); /* "org" inside the question */
}

/* The third RR's host points at the first RR's host (a pointer to a
 * name that itself ends in a pointer). */
static void b_chained_pointers(struct t_msg *m)
{
    t_start(m, 0, 2, "example.org", 15);
    size_t first = m->len + 12 + 2; /* owner ptr, type, class, ttl, rdlen, pref */
    t_mx(m, T_QNAME, 10, "mx", T_QNAME);
    t_mx(m, T_QNAME, 20, "backup", (int)first);
}

static void b_upper(struct t_msg *m)
{
    t_start(m, 0, 1, "Example.ORG", 15);
    t_mx(m, T_QNAME, 5, "MX.Example.ORG", -1);
}

static void b_null(struct t_msg *m)
{
    t_start(m, 0, 1, "example.org", 15);
    t_mx(m, T_QNAME, 0, "", -1);
}

static void b_nxdomain(struct t_msg *m)
{
    t_start(m, 3, 0, "nope.example", 15);
}

static void b_servfail(struct t_msg *m)
{
    t_start(m, 2, 0, "example.org", 15);
}

static void b_refused(struct t_msg *m)
{
    t_start(m, 5, 0, "example.org", 15);
}

static void b_nodata(struct t_msg *m)
{
    t_start(m, 0, 0, "example.org", 15);
}

static void b_cname(struct t_msg *m)
{
    t_start(m, 0, 2, "alias.example", 15);
    size_t at = t_rr(m, T_QNAME, 5);
    size_t target = m->len;
    t_name(m, "real.example", -1);
    t_end_rr(m, at);
    t_mx(m, (int)target, 10, "mx.real.example", -1);
}

/* An MX of another name, its owner written out rather than compressed. */
static void b_foreign_owner(struct t_msg *m)
{
    t_start(m, 0, 1, "example.org", 15);
    t_name(m, "other.example", -1);
    t_u16(m, 15);
    t_u16(m, 1);
    t_u16(m, 0);
    t_u16(m, 60);
    size_t at = m->len;
    t_u16(m, 0);
    t_u16(m, 10);
    t_name(m, "mx", T_QNAME);
    t_end_rr(m, at);
}

static void b_bad_host(struct t_msg *m)
{
    t_start(m, 0, 2, "example.org", 15);
    t_mx(m, T_QNAME, 10, "bad host", T_QNAME);
    t_mx(m, T_QNAME, 20, "good", T_QNAME);
}

static void b_other_types(struct t_msg *m)
{
    t_start(m, 0, 2, "example.org", 15);
    size_t at = t_rr(m, T_QNAME, 1); /* an A record in an MX answer */
    t_u16(m, 0xc000);
    t_u16(m, 0x0201);
    t_end_rr(m, at);
    t_mx(m, T_QNAME, 10, "mx", T_QNAME);
}

static void b_truncated(struct t_msg *m)
{
    b_compressed(m);
    m->len -= 3;
}

static void b_loop(struct t_msg *m)
{
    t_start(m, 0, 1, "example.org", 15);
    size_t at = t_rr(m, T_QNAME, 15);
    t_u16(m, 10);
    t_u16(m, 0xc000u | (unsigned)m->len); /* points at itself */
    t_end_rr(m, at);
}

static void b_forward_ptr(struct t_msg *m)
{
    t_start(m, 0, 1, "example.org", 15);
    t_mx(m, T_QNAME, 10, "mx", 4000);
}

static void b_short_rdata(struct t_msg *m)
{
    t_start(m, 0, 1, "example.org", 15);
    size_t at = t_rr(m, T_QNAME, 15);
    t_u16(m, 10);
    t_end_rr(m, at);
}

/* The MX host's label runs on past RDLENGTH into the next record (whose
 * owner, the root, would end it): well-formed as a message, bad as an RR. */
static void b_name_past_rdata(struct t_msg *m)
{
    t_start(m, 0, 2, "example.org", 15);
    size_t at = t_rr(m, T_QNAME, 15);
    t_u16(m, 10);
    t_u8(m, 2);
    t_u8(m, 'm');
    t_u8(m, 'x');
    t_end_rr(m, at);
    t_name(m, "", -1); /* a TXT record of the root with no data */
    t_u16(m, 16);
    t_u16(m, 1);
    t_u16(m, 0);
    t_u16(m, 0);
    t_u16(m, 0);
}

static void b_query(struct t_msg *m)
{
    b_single(m);
    m->b[2] &= 0x7f; /* QR = 0: a query, not a response */
}

static void b_qtype_a(struct t_msg *m)
{
    t_start(m, 0, 0, "example.org", 1);
}

static void b_no_question(struct t_msg *m)
{
    t_start(m, 0, 0, "example.org", 15);
    m->b[5] = 0;
    m->len = 12;
}

static void b_trailing(struct t_msg *m)
{
    b_single(m);
    t_u16(m, 0xdead);
}

static void b_count_lies(struct t_msg *m)
{
    b_single(m);
    m->b[7] = 5; /* ANCOUNT 5, one record present */
}

static void b_empty(struct t_msg *m)
{
    memset(m, 0, sizeof(*m));
}

struct parse_case {
    const char *name;
    void (*build)(struct t_msg *m);
    enum route_mx_status status;
    size_t n;
    struct {
        int pref;
        const char *host;
    } want[4];
};

static const struct parse_case parse_cases[] = {
    {"single", b_single, ROUTE_MX_OK, 1, {{10, "mx1.example.org"}}},
    {"compressed",
     b_compressed,
     ROUTE_MX_OK,
     3,
     {{20, "mx2.example.org"}, {10, "mx1.example.org"}, {30, "org"}}},
    {"chained pointers",
     b_chained_pointers,
     ROUTE_MX_OK,
     2,
     {{10, "mx.example.org"}, {20, "backup.mx.example.org"}}},
    {"upper case", b_upper, ROUTE_MX_OK, 1, {{5, "mx.example.org"}}},
    {"null mx", b_null, ROUTE_MX_OK, 1, {{0, ""}}},
    {"nxdomain", b_nxdomain, ROUTE_MX_NXDOMAIN, 0, {{0, NULL}}},
    {"servfail", b_servfail, ROUTE_MX_TEMPFAIL, 0, {{0, NULL}}},
    {"refused", b_refused, ROUTE_MX_TEMPFAIL, 0, {{0, NULL}}},
    {"nodata", b_nodata, ROUTE_MX_OK, 0, {{0, NULL}}},
    {"cname", b_cname, ROUTE_MX_OK, 1, {{10, "mx.real.example"}}},
    {"foreign owner", b_foreign_owner, ROUTE_MX_OK, 0, {{0, NULL}}},
    {"bad host skipped", b_bad_host, ROUTE_MX_OK, 1, {{20, "good.example.org"}}},
    {"other types ignored", b_other_types, ROUTE_MX_OK, 1, {{10, "mx.example.org"}}},
    {"truncated", b_truncated, ROUTE_MX_TEMPFAIL, 0, {{0, NULL}}},
    {"pointer loop", b_loop, ROUTE_MX_TEMPFAIL, 0, {{0, NULL}}},
    {"forward pointer", b_forward_ptr, ROUTE_MX_TEMPFAIL, 0, {{0, NULL}}},
    {"short rdata", b_short_rdata, ROUTE_MX_TEMPFAIL, 0, {{0, NULL}}},
    {"name past rdata", b_name_past_rdata, ROUTE_MX_TEMPFAIL, 0, {{0, NULL}}},
    {"query not response", b_query, ROUTE_MX_TEMPFAIL, 0, {{0, NULL}}},
    {"question type A", b_qtype_a, ROUTE_MX_TEMPFAIL, 0, {{0, NULL}}},
    {"no question", b_no_question, ROUTE_MX_TEMPFAIL, 0, {{0, NULL}}},
    {"trailing bytes", b_trailing, ROUTE_MX_TEMPFAIL, 0, {{0, NULL}}},
    {"ancount lies", b_count_lies, ROUTE_MX_TEMPFAIL, 0, {{0, NULL}}},
    {"empty", b_empty, ROUTE_MX_TEMPFAIL, 0, {{0, NULL}}},
};

START_TEST(test_parse_table)
{
    const struct parse_case *c = &parse_cases[_i];
    struct t_msg m;
    struct route_mx_record recs[8];
    size_t n = 99;
    c->build(&m);
    enum route_mx_status st = route_mx_parse_answer(m.b, m.len, recs, 8, &n);
    ck_assert_msg(st == c->status, "%s: status %d, want %d", c->name, st, c->status);
    ck_assert_msg(n == c->n, "%s: %zu records, want %zu", c->name, n, c->n);
    for (size_t i = 0; i < n; i++) {
        ck_assert_msg(recs[i].preference == c->want[i].pref, "%s[%zu]: pref", c->name, i);
        ck_assert_msg(strcmp(recs[i].host, c->want[i].host) == 0, "%s[%zu]: host '%s' want '%s'",
                      c->name, i, recs[i].host, c->want[i].host);
    }
}
END_TEST

START_TEST(test_parse_max)
{
    struct t_msg m;
    struct route_mx_record recs[3];
    char host[16];
    size_t n = 0;
    t_start(&m, 0, 20, "example.org", 15);
    for (int i = 0; i < 20; i++) {
        snprintf(host, sizeof(host), "mx%d", i);
        t_mx(&m, T_QNAME, (unsigned)i, host, T_QNAME);
    }
    ck_assert_int_eq(route_mx_parse_answer(m.b, m.len, recs, 3, &n), ROUTE_MX_OK);
    ck_assert_uint_eq(n, 3);
    ck_assert_str_eq(recs[2].host, "mx2.example.org");
}
END_TEST

/* Every strict prefix of a valid answer is malformed: an error, never a
 * crash or a read past the prefix (ASan watches the heap copy). */
START_TEST(test_parse_prefixes)
{
    struct t_msg m;
    struct route_mx_record recs[8];
    size_t n;
    b_compressed(&m);
    for (size_t len = 0; len < m.len; len++) {
        unsigned char *copy = malloc(len + 1);
        memcpy(copy, m.b, len);
        ck_assert_int_eq(route_mx_parse_answer(copy, len, recs, 8, &n), ROUTE_MX_TEMPFAIL);
        ck_assert_uint_eq(n, 0);
        free(copy);
    }
}
END_TEST

/* Random bytes, and a valid answer with random bytes flipped. */
START_TEST(test_parse_garbage)
{
    struct t_msg good;
    struct route_mx_record recs[8];
    unsigned seed = 12345;
    b_compressed(&good);
    for (int round = 0; round < 20000; round++) {
        size_t len = round % 2 ? good.len : (size_t)(rand_r(&seed) % 600);
        unsigned char *buf = malloc(len + 1);
        if (round % 2) {
            memcpy(buf, good.b, len);
            for (int k = 0; k < 3; k++)
                buf[rand_r(&seed) % len] = (unsigned char)rand_r(&seed);
        } else {
            for (size_t i = 0; i < len; i++)
                buf[i] = (unsigned char)rand_r(&seed);
        }
        size_t n = 0;
        enum route_mx_status st = route_mx_parse_answer(buf, len, recs, 8, &n);
        ck_assert(st == ROUTE_MX_OK || n == 0);
        for (size_t i = 0; i < n; i++)
            ck_assert_uint_lt(strlen(recs[i].host), ROUTE_MX_HOST_MAX);
        free(buf);
    }
}
END_TEST

/* ---- null MX ---- */

struct null_case {
    size_t n;
    const char *hosts[3];
    bool null;
};

static const struct null_case null_cases[] = {
    {0, {NULL}, false},
    {1, {""}, true},
    {2, {"", ""}, true},
    {1, {"mx.example.org"}, false},
    {2, {"", "mx.example.org"}, false},
};

START_TEST(test_null_mx)
{
    const struct null_case *c = &null_cases[_i];
    struct route_mx_record recs[3];
    memset(recs, 0, sizeof(recs));
    for (size_t i = 0; i < c->n; i++)
        snprintf(recs[i].host, sizeof(recs[i].host), "%s", c->hosts[i]);
    ck_assert_int_eq(route_mx_is_null(recs, c->n), c->null);
}
END_TEST

/* ---- ordering ---- */

static uint32_t t_rand_zero(void *ctx, uint32_t bound)
{
    (void)ctx;
    (void)bound;
    return 0;
}

static uint32_t t_rand_identity(void *ctx, uint32_t bound)
{
    (void)ctx;
    return bound - 1; /* Fisher-Yates then swaps each element with itself */
}

/* xorshift32, so that a statistical test is reproducible. */
static uint32_t t_rand_xorshift(void *ctx, uint32_t bound)
{
    uint32_t *s = ctx;
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s % bound;
}

/* "pref:host" records, "pref:" is the root. */
static size_t t_records(struct route_mx_record *recs, const char *const *spec)
{
    size_t n = 0;
    for (; spec[n] != NULL; n++) {
        const char *colon = strchr(spec[n], ':');
        recs[n].preference = atoi(spec[n]);
        snprintf(recs[n].host, sizeof(recs[n].host), "%s", colon + 1);
    }
    return n;
}

struct order_case {
    const char *name;
    route_mx_rand_fn rnd;
    const char *in[16];
    const char *out[16];
};

static const struct order_case order_cases[] = {
    {"by preference", t_rand_identity, {"30:c", "10:a", "20:b", NULL}, {"a", "b", "c", NULL}},
    {"stable without shuffle",
     t_rand_identity,
     {"10:x", "10:y", "10:z", "5:w", NULL},
     {"w", "x", "y", "z", NULL}},
    {"fixed shuffle", t_rand_zero, {"10:a", "10:b", "10:c", NULL}, {"b", "c", "a", NULL}},
    {"groups kept apart",
     t_rand_zero,
     {"20:c", "10:a", "20:d", "10:b", NULL},
     {"b", "a", "d", "c", NULL}},
    {"root dropped", t_rand_identity, {"10:", "20:b", NULL}, {"b", NULL}},
    {"repeat keeps best", t_rand_identity, {"20:a", "10:b", "5:a", NULL}, {"a", "b", NULL}},
    {"cap",
     t_rand_identity,
     {"1:h1", "2:h2", "3:h3", "4:h4", "5:h5", "6:h6", "7:h7", "8:h8", "9:h9", "10:h10", "11:h11",
      "12:h12", NULL},
     {"h1", "h2", "h3", "h4", "h5", "h6", "h7", "h8", "h9", "h10", NULL}},
    {"empty", t_rand_identity, {NULL}, {NULL}},
};

START_TEST(test_order_table)
{
    const struct order_case *c = &order_cases[_i];
    struct route_mx_record recs[16];
    size_t n = route_mx_order(recs, t_records(recs, c->in), c->rnd, NULL);
    size_t want = 0;
    while (c->out[want] != NULL)
        want++;
    ck_assert_msg(n == want, "%s: %zu hosts, want %zu", c->name, n, want);
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(strcmp(recs[i].host, c->out[i]) == 0, "%s[%zu]: '%s' want '%s'", c->name, i,
                      recs[i].host, c->out[i]);
}
END_TEST

/* The index of a permutation of a, b, c (0..5). */
static int t_perm_index(const struct route_mx_record *r)
{
    static const char *const perms[6] = {"abc", "acb", "bac", "bca", "cab", "cba"};
    char s[4] = {r[0].host[0], r[1].host[0], r[2].host[0], '\0'};
    for (int i = 0; i < 6; i++)
        if (strcmp(s, perms[i]) == 0)
            return i;
    return -1;
}

/* Equal preferences after the better group, as 6 permutations counted
 * over RUNS orderings with RND. */
static void t_count_perms(route_mx_rand_fn rnd, void *ctx, int runs, int *count)
{
    static const char *const in[] = {"20:c", "5:first", "20:a", "20:b", NULL};
    for (int r = 0; r < runs; r++) {
        struct route_mx_record recs[4];
        size_t n = route_mx_order(recs, t_records(recs, in), rnd, ctx);
        ck_assert_uint_eq(n, 4);
        ck_assert_str_eq(recs[0].host, "first");
        int p = t_perm_index(recs + 1);
        ck_assert_int_ge(p, 0);
        count[p]++;
    }
}

START_TEST(test_shuffle_uniform)
{
    uint32_t state = 2463534242u;
    int count[6] = {0};
    t_count_perms(t_rand_xorshift, &state, 6000, count);
    for (int i = 0; i < 6; i++)
        ck_assert_msg(count[i] > 850 && count[i] < 1150, "permutation %d seen %d/6000", i,
                      count[i]);
}
END_TEST

START_TEST(test_shuffle_system_rng)
{
    int count[6] = {0};
    t_count_perms(NULL, NULL, 600, count);
    for (int i = 0; i < 6; i++)
        ck_assert_msg(count[i] > 0, "permutation %d never seen", i);
}
END_TEST

/* ---- address literals ---- */

struct literal_case {
    const char *domain;
    int rc;
    int family;
    const char *host;
};

static const struct literal_case literal_cases[] = {
    {"[192.0.2.1]", 1, AF_INET, "192.0.2.1"},
    {"[IPv6:2001:DB8::1]", 1, AF_INET6, "2001:db8::1"},
    {"[ipv6:::1]", 1, AF_INET6, "::1"},
    {"[IPv6:::ffff:192.0.2.7]", 1, AF_INET6, "::ffff:192.0.2.7"},
    {"example.org", 0, 0, NULL},
    {"", 0, 0, NULL},
    {"[192.0.2.256]", -1, 0, NULL},
    {"[192.0.2]", -1, 0, NULL},
    {"[2001:db8::1]", -1, 0, NULL}, /* IPv6 needs the tag */
    {"[IPv6:192.0.2.1]", -1, 0, NULL},
    {"[192.0.2.1", -1, 0, NULL},
    {"[]", -1, 0, NULL},
    {"[", -1, 0, NULL},
    {"[tag:whatever]", -1, 0, NULL},
    {"[IPv6:1111:2222:3333:4444:5555:6666:7777:8888:9999]", -1, 0, NULL},
};

START_TEST(test_literal)
{
    const struct literal_case *c = &literal_cases[_i];
    struct route_mx_target t;
    ck_assert_int_eq(route_mx_literal(c->domain, 2525, &t), c->rc);
    if (c->rc != 1)
        return;
    ck_assert_int_eq(t.addr.ss_family, c->family);
    ck_assert_str_eq(t.host, c->host);
    ck_assert(t.implicit && t.literal);
    in_port_t port = c->family == AF_INET ? ((struct sockaddr_in *)&t.addr)->sin_port
                                          : ((struct sockaddr_in6 *)&t.addr)->sin6_port;
    ck_assert_int_eq(ntohs(port), 2525);
    ck_assert_int_eq(t.addrlen, c->family == AF_INET ? sizeof(struct sockaddr_in)
                                                     : sizeof(struct sockaddr_in6));
}
END_TEST

START_TEST(test_status_helpers)
{
    ck_assert(!route_mx_permanent(ROUTE_MX_OK));
    ck_assert(route_mx_permanent(ROUTE_MX_NXDOMAIN));
    ck_assert(route_mx_permanent(ROUTE_MX_NULL_MX));
    ck_assert(route_mx_permanent(ROUTE_MX_NODATA));
    ck_assert(!route_mx_permanent(ROUTE_MX_TEMPFAIL));
    ck_assert_str_eq(route_mx_status_name(ROUTE_MX_NULL_MX), "null-mx");
    ck_assert_str_eq(route_mx_status_name(ROUTE_MX_TEMPFAIL), "tempfail");
}
END_TEST

/* ---- the TLSGATE_HOSTS_MX file ---- */

static char t_file[64];

/* TEXT into a new temporary file (the previous one removed), named by
 * TLSGATE_HOSTS_MX. */
static void t_write_hosts(const char *text)
{
    if (t_file[0] != '\0')
        unlink(t_file);
    snprintf(t_file, sizeof(t_file), "/tmp/test_route_mx.XXXXXX");
    int fd = mkstemp(t_file);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    ck_assert_int_eq(setenv(ROUTE_MX_ENV_HOSTS, t_file, 1), 0);
}

static const char t_hosts[] = "# test zone\n"
                              "example.org 10 mx1.example.org\n"
                              "example.org 10 mx2.example.org   # equal preference\n"
                              "example.org 20 backup.example.net\n"
                              "mx1.example.org A 192.0.2.1\n"
                              "mx2.example.org AAAA 2001:db8::2\n"
                              "mx2.example.org A 192.0.2.2\n"
                              "backup.example.net A 192.0.2.1\n" /* as mx1: deduplicated */
                              "backup.example.net a 198.51.100.9\n"
                              "\n"
                              "nomail.example 0 .\n"
                              "implicit.example A 192.0.2.50\n"
                              "implicit.example AAAA 2001:db8::50\n"
                              "implicit.example A 192.0.2.51\n"
                              "many.example A 192.0.2.61\n"
                              "many.example A 192.0.2.62\n"
                              "many.example A 192.0.2.63\n"
                              "many.example A 192.0.2.64\n"
                              "many.example AAAA 2001:db8::61\n"
                              "many.example AAAA 2001:db8::62\n"
                              "local.example 5 localhost\n"
                              "localhost A 127.0.0.1\n"
                              "numeric.example 5 127.0.0.2\n"
                              "numeric6.example 5 ::1\n"
                              "dangling.example 10 gone.example\n"
                              "\t  # only a comment\n";

static void t_hosts_setup(void)
{
    t_file[0] = '\0';
    t_write_hosts(t_hosts);
}

static void t_hosts_teardown(void)
{
    unlink(t_file);
    unsetenv(ROUTE_MX_ENV_HOSTS);
}

/* "host addr" of a target, for comparing with a table. */
static void t_target_text(const struct route_mx_target *t, char *out, size_t len)
{
    char addr[INET6_ADDRSTRLEN];
    const void *src = t->addr.ss_family == AF_INET
                          ? (const void *)&((const struct sockaddr_in *)&t->addr)->sin_addr
                          : (const void *)&((const struct sockaddr_in6 *)&t->addr)->sin6_addr;
    inet_ntop(t->addr.ss_family, src, addr, sizeof(addr));
    snprintf(out, len, "%s %s", t->host, addr);
}

struct file_case {
    const char *domain;
    enum route_mx_status status;
    const char *targets[8]; /* "host addr"; '*' first: this one in any order */
    bool implicit;
};

static const struct file_case file_cases[] = {
    {"example.org",
     ROUTE_MX_OK,
     {"*mx1.example.org 192.0.2.1", "*mx2.example.org 2001:db8::2", "*mx2.example.org 192.0.2.2",
      "backup.example.net 198.51.100.9", NULL},
     false},
    {"EXAMPLE.org.",
     ROUTE_MX_OK,
     {"*mx1.example.org 192.0.2.1", "*mx2.example.org 2001:db8::2", "*mx2.example.org 192.0.2.2",
      "backup.example.net 198.51.100.9", NULL},
     false},
    {"nomail.example", ROUTE_MX_NULL_MX, {NULL}, false},
    {"implicit.example",
     ROUTE_MX_OK,
     {"implicit.example 192.0.2.50", "implicit.example 2001:db8::50", "implicit.example 192.0.2.51",
      NULL},
     true},
    {"many.example",
     ROUTE_MX_OK,
     {"many.example 192.0.2.61", "many.example 2001:db8::61", "many.example 192.0.2.62",
      "many.example 2001:db8::62", NULL},
     true},
    {"local.example", ROUTE_MX_OK, {"localhost 127.0.0.1", NULL}, false},
    {"numeric.example", ROUTE_MX_OK, {"127.0.0.2 127.0.0.2", NULL}, false},
    {"numeric6.example", ROUTE_MX_OK, {"::1 ::1", NULL}, false},
    {"dangling.example", ROUTE_MX_NODATA, {NULL}, false},
    {"unknown.example", ROUTE_MX_NXDOMAIN, {NULL}, false},
    {"mx1.example.org", ROUTE_MX_OK, {"mx1.example.org 192.0.2.1", NULL}, true},
    {"[192.0.2.99]", ROUTE_MX_OK, {"192.0.2.99 192.0.2.99", NULL}, true},
    {"[192.0.2.999]", ROUTE_MX_NXDOMAIN, {NULL}, false},
    {"bad..name", ROUTE_MX_NXDOMAIN, {NULL}, false},
};

/* TARGETS against RES: '*' rows may come in any order among themselves. */
static void t_check_targets(const struct route_mx_result *res, const char *const *want)
{
    size_t n = 0;
    while (want[n] != NULL)
        n++;
    ck_assert_uint_eq(res->ntargets, n);
    for (size_t i = 0; i < n; i++) {
        char got[ROUTE_MX_HOST_MAX + INET6_ADDRSTRLEN + 2];
        t_target_text(&res->targets[i], got, sizeof(got));
        bool found = false;
        if (want[i][0] != '*')
            found = strcmp(got, want[i]) == 0;
        for (size_t j = 0; j < n && !found; j++)
            found = want[j][0] == '*' && strcmp(got, want[j] + 1) == 0;
        ck_assert_msg(found, "target %zu '%s' not expected", i, got);
    }
}

START_TEST(test_file_table)
{
    const struct file_case *c = &file_cases[_i];
    struct route_mx_result *res = malloc(sizeof(*res));
    enum route_mx_status st = route_mx_lookup(c->domain, 25, res);
    ck_assert_msg(st == c->status, "%s: %s (%s)", c->domain, route_mx_status_name(st), res->error);
    ck_assert_int_eq(res->status, st);
    t_check_targets(res, c->targets);
    for (size_t i = 0; i < res->ntargets; i++) {
        ck_assert_int_eq(res->targets[i].implicit, c->implicit);
        ck_assert_int_eq(ntohs(((struct sockaddr_in *)&res->targets[i].addr)->sin_port), 25);
    }
    if (st != ROUTE_MX_OK)
        ck_assert_str_ne(res->error, "");
    free(res);
}
END_TEST

/* Equal preferences really are shuffled between lookups. */
START_TEST(test_file_shuffles)
{
    struct route_mx_result *res = malloc(sizeof(*res));
    int first_mx1 = 0;
    for (int i = 0; i < 200; i++) {
        ck_assert_int_eq(route_mx_lookup("example.org", 25, res), ROUTE_MX_OK);
        first_mx1 += strcmp(res->targets[0].host, "mx1.example.org") == 0;
        ck_assert_str_eq(res->targets[res->ntargets - 1].host, "backup.example.net");
    }
    ck_assert_int_gt(first_mx1, 40);
    ck_assert_int_lt(first_mx1, 160);
    free(res);
}
END_TEST

START_TEST(test_file_caps)
{
    char text[4096] = "";
    for (int i = 0; i < 12; i++) {
        size_t len = strlen(text);
        snprintf(text + len, sizeof(text) - len,
                 "big.example %d h%d.example\nh%d.example A 192.0.2.%d\n", i, i, i, i + 1);
    }
    t_write_hosts(text);
    struct route_mx_result *res = malloc(sizeof(*res));
    ck_assert_int_eq(route_mx_lookup("big.example", 25, res), ROUTE_MX_OK);
    ck_assert_uint_eq(res->ntargets, ROUTE_MX_MAX_HOSTS);
    ck_assert_str_eq(res->targets[0].host, "h0.example");
    ck_assert_str_eq(res->targets[9].host, "h9.example");
    ck_assert_int_eq(res->targets[9].preference, 9);
    free(res);
}
END_TEST

struct file_error_case {
    const char *text;
    const char *domain;
    enum route_mx_status status;
    const char *error_part;
};

static const struct file_error_case file_error_cases[] = {
    {"a.example 10 mx.example\nmx.example MX-ish 1\n", "a.example", ROUTE_MX_TEMPFAIL,
     ":2: bad line"},
    {"a.example 99999 mx.example\n", "a.example", ROUTE_MX_TEMPFAIL, ":1: bad line"},
    {"a.example A 300.1.1.1\n", "a.example", ROUTE_MX_TEMPFAIL, ":1: bad line"},
    {"a.example AAAA 192.0.2.1\n", "a.example", ROUTE_MX_TEMPFAIL, ":1: bad line"},
    {"a.example 10 mx.example extra\n", "a.example", ROUTE_MX_TEMPFAIL, ":1: bad line"},
    {"a.example 10 mx.example\n", "a.example", ROUTE_MX_NODATA, "has an address"},
    {"a.example 10 .\na.example 20 .\n", "a.example", ROUTE_MX_NULL_MX, "null MX"},
    {"", "a.example", ROUTE_MX_NXDOMAIN, "not in"},
};

START_TEST(test_file_errors)
{
    const struct file_error_case *c = &file_error_cases[_i];
    struct route_mx_result *res = malloc(sizeof(*res));
    t_write_hosts(c->text);
    enum route_mx_status st = route_mx_lookup(c->domain, 25, res);
    ck_assert_msg(st == c->status, "case %d: %s (%s)", _i, route_mx_status_name(st), res->error);
    ck_assert_msg(strstr(res->error, c->error_part) != NULL, "case %d: error '%s'", _i, res->error);
    ck_assert_uint_eq(res->ntargets, 0);
    free(res);
}
END_TEST

START_TEST(test_file_missing)
{
    struct route_mx_result *res = malloc(sizeof(*res));
    setenv(ROUTE_MX_ENV_HOSTS, "/nonexistent/hosts-mx", 1);
    ck_assert_int_eq(route_mx_lookup("example.org", 25, res), ROUTE_MX_TEMPFAIL);
    ck_assert_ptr_nonnull(strstr(res->error, "/nonexistent/hosts-mx"));
    ck_assert_int_eq(route_mx_lookup("example.org", 0, res), ROUTE_MX_TEMPFAIL);
    free(res);
}
END_TEST

/* ---- the asynchronous lookup on a loop ---- */

struct t_async {
    int calls;
    uv_thread_t loop_thread;
    bool on_loop_thread;
    struct route_mx_result *res;
};

static void t_on_mx(void *arg, struct route_mx_result *res)
{
    struct t_async *a = arg;
    uv_thread_t self = uv_thread_self();
    a->calls++;
    a->on_loop_thread = uv_thread_equal(&self, &a->loop_thread) != 0;
    a->res = res;
}

START_TEST(test_async)
{
    uv_loop_t loop;
    struct t_async a = {.loop_thread = uv_thread_self()};
    struct t_async lit = {.loop_thread = uv_thread_self()};
    ck_assert_int_eq(uv_loop_init(&loop), 0);
    ck_assert_int_eq(route_mx_resolve(&loop, "Example.ORG", 2525, t_on_mx, &a), 0);
    ck_assert_int_eq(route_mx_resolve(&loop, "[IPv6:::1]", 25, t_on_mx, &lit), 0);
    ck_assert_int_eq(route_mx_resolve(&loop, "example.org", 0, t_on_mx, &a), UV_EINVAL);
    ck_assert_int_eq(route_mx_resolve(&loop, NULL, 25, t_on_mx, &a), UV_EINVAL);
    ck_assert_int_eq(a.calls, 0);
    ck_assert_int_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
    ck_assert_int_eq(a.calls, 1);
    ck_assert(a.on_loop_thread);
    ck_assert_int_eq(a.res->status, ROUTE_MX_OK);
    ck_assert_str_eq(a.res->domain, "example.org");
    ck_assert_uint_eq(a.res->ntargets, 4);
    ck_assert_int_eq(ntohs(((struct sockaddr_in *)&a.res->targets[0].addr)->sin_port), 2525);
    ck_assert_int_eq(lit.calls, 1);
    ck_assert_int_eq(lit.res->status, ROUTE_MX_OK);
    ck_assert_str_eq(lit.res->targets[0].host, "::1");
    route_mx_result_free(a.res);
    route_mx_result_free(lit.res);
    route_mx_result_free(NULL);
    ck_assert_int_eq(uv_loop_close(&loop), 0);
}
END_TEST

static Suite *route_mx_suite(void)
{
    Suite *s = suite_create("route_mx");
    TCase *tc = tcase_create("parse");
    tcase_add_loop_test(tc, test_parse_table, 0, ROWS(parse_cases));
    tcase_add_test(tc, test_parse_max);
    tcase_add_test(tc, test_parse_prefixes);
    tcase_add_test(tc, test_parse_garbage);
    tcase_add_loop_test(tc, test_null_mx, 0, ROWS(null_cases));
    suite_add_tcase(s, tc);

    tc = tcase_create("order");
    tcase_add_loop_test(tc, test_order_table, 0, ROWS(order_cases));
    tcase_add_test(tc, test_shuffle_uniform);
    tcase_add_test(tc, test_shuffle_system_rng);
    tcase_add_loop_test(tc, test_literal, 0, ROWS(literal_cases));
    tcase_add_test(tc, test_status_helpers);
    suite_add_tcase(s, tc);

    tc = tcase_create("file");
    tcase_add_checked_fixture(tc, t_hosts_setup, t_hosts_teardown);
    tcase_add_loop_test(tc, test_file_table, 0, ROWS(file_cases));
    tcase_add_test(tc, test_file_shuffles);
    tcase_add_test(tc, test_file_caps);
    tcase_add_loop_test(tc, test_file_errors, 0, ROWS(file_error_cases));
    tcase_add_test(tc, test_file_missing);
    tcase_add_test(tc, test_async);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(route_mx_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
