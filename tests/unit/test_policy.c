/*
 * Unit tests of policy: CIDR and name matching, match lists, sender group
 * selection (file order, listener scoping, the ALL group), accept domains,
 * destination and route lookup.  The configs are built by hand in memory,
 * so these tests do not depend on config.c's parser.
 */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy.h"

/* ---- helpers ---- */

/* "a.b.c.d/n" or "v6/n" into a struct cidr (a bare address: a host route). */
static struct cidr t_cidr(const char *text)
{
    struct cidr c;
    char addr[INET6_ADDRSTRLEN];
    const char *slash = strchr(text, '/');
    size_t alen = slash ? (size_t)(slash - text) : strlen(text);
    snprintf(addr, sizeof(addr), "%.*s", (int)alen, text);
    memset(&c, 0, sizeof(c));
    c.family = strchr(addr, ':') ? AF_INET6 : AF_INET;
    c.prefix = slash ? atoi(slash + 1) : (c.family == AF_INET ? 32 : 128);
    c.has_prefix = slash != NULL;
    ck_assert_int_eq(inet_pton(c.family, addr, c.addr), 1);
    return c;
}

/* An address literal into a sockaddr (port 25). */
static struct sockaddr_storage t_sa(const char *text)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    if (strchr(text, ':')) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(25);
        ck_assert_int_eq(inet_pton(AF_INET6, text, &in6->sin6_addr), 1);
    } else {
        struct sockaddr_in *in = (struct sockaddr_in *)&ss;
        in->sin_family = AF_INET;
        in->sin_port = htons(25);
        ck_assert_int_eq(inet_pton(AF_INET, text, &in->sin_addr), 1);
    }
    return ss;
}

#define SA(ss)  ((const struct sockaddr *)&(ss))
#define ROWS(a) ((int)(sizeof(a) / sizeof((a)[0])))
#define MAXN    8

/* A match list from NULL-terminated CIDR and name arrays (static storage,
 * so that tables of lists can be built once per test). */
struct t_list {
    struct cidr cidrs[MAXN];
    char *names[MAXN];
    struct matchlist l;
};

static void t_list_init(struct t_list *t, const char *const *cidrs, const char *const *names)
{
    memset(t, 0, sizeof(*t));
    t->l.cidrs = t->cidrs;
    t->l.names = t->names;
    for (size_t i = 0; cidrs != NULL && cidrs[i] != NULL; i++)
        t->cidrs[t->l.ncidrs++] = t_cidr(cidrs[i]);
    for (size_t i = 0; names != NULL && names[i] != NULL; i++)
        t->names[t->l.nnames++] = (char *)names[i];
}

/* ---- CIDR ---- */

struct cidr_case {
    const char *cidr;
    const char *addr;
    bool match;
};

static const struct cidr_case cidr_cases[] = {
    {"192.0.2.0/24", "192.0.2.77", true},
    {"192.0.2.0/24", "192.0.2.0", true},
    {"192.0.2.0/24", "192.0.2.255", true},
    {"192.0.2.0/24", "192.0.3.1", false},
    {"192.0.2.0/25", "192.0.2.127", true},
    {"192.0.2.0/25", "192.0.2.128", false},
    {"172.16.0.0/12", "172.31.255.255", true},
    {"172.16.0.0/12", "172.32.0.0", false},
    {"172.16.0.0/12", "172.15.255.255", false},
    {"192.0.2.1", "192.0.2.1", true},
    {"192.0.2.1", "192.0.2.2", false},
    {"192.0.2.1/31", "192.0.2.0", true},
    {"0.0.0.0/0", "203.0.113.9", true},
    {"0.0.0.0/0", "255.255.255.255", true},
    {"0.0.0.0/0", "2001:db8::1", false},       /* family mismatch */
    {"0.0.0.0/0", "::ffff:203.0.113.9", true}, /* mapped counts as IPv4 */
    {"10.0.0.0/8", "::ffff:10.1.2.3", true},
    {"10.0.0.0/8", "::ffff:11.1.2.3", false},
    {"192.0.2.1", "::ffff:192.0.2.1", true},
    {"192.0.2.0/24", "::192.0.2.1", false}, /* v4-compatible is not mapped */
    {"192.0.2.0/24", "2001:db8::c000:201", false},
    {"2001:db8::/32", "2001:db8:ffff::1", true},
    {"2001:db8::/32", "2001:db9::1", false},
    {"2001:db8::/33", "2001:db8:7fff::1", true},
    {"2001:db8::/33", "2001:db8:8000::1", false},
    {"2001:db8::/64", "2001:db8::abcd:1", true},
    {"2001:db8::/64", "2001:db8:0:1::1", false},
    {"::/0", "2001:db8::1", true},
    {"::/0", "::1", true},
    {"::/0", "192.0.2.1", false},        /* family mismatch */
    {"::/0", "::ffff:192.0.2.1", false}, /* mapped counts as IPv4 */
    {"::ffff:0:0/96", "192.0.2.1", false},
    {"::1", "::1", true},
    {"::1", "::2", false},
    {"2001:db8::1/128", "2001:db8::1", true},
    {"2001:db8::1/127", "2001:db8::", true},
    {"2001:db8::1/128", "2001:db8::1:0", false},
};

START_TEST(test_cidr_table)
{
    const struct cidr_case *t = &cidr_cases[_i];
    struct cidr n = t_cidr(t->cidr);
    struct sockaddr_storage ss = t_sa(t->addr);
    ck_assert_msg(policy_cidr_match(&n, SA(ss)) == t->match, "row %d: %s in %s", _i, t->addr,
                  t->cidr);
}
END_TEST

START_TEST(test_cidr_odd_inputs)
{
    struct cidr n = t_cidr("192.0.2.0/24");
    struct sockaddr_storage ss = t_sa("192.0.2.1");
    struct sockaddr_storage unix_sa;
    memset(&unix_sa, 0, sizeof(unix_sa));
    unix_sa.ss_family = AF_UNIX;
    ck_assert(!policy_cidr_match(&n, SA(unix_sa)));
    ck_assert(!policy_cidr_match(&n, NULL));
    ck_assert(!policy_cidr_match(NULL, SA(ss)));
    n.prefix = 33; /* corrupt: never matches */
    ck_assert(!policy_cidr_match(&n, SA(ss)));
    n.prefix = -1;
    ck_assert(!policy_cidr_match(&n, SA(ss)));
}
END_TEST

/* ---- names ---- */

struct name_case {
    const char *pattern;
    const char *name;
    bool match;
};

static const struct name_case name_cases[] = {
    {"mail.example.test", "mail.example.test", true},
    {"mail.example.test", "MAIL.Example.TEST", true},
    {"MAIL.EXAMPLE.TEST", "mail.example.test", true},
    {"mail.example.test", "mail.example.test.", true},
    {"mail.example.test", "xmail.example.test", false},
    {"mail.example.test", "a.mail.example.test", false},
    {"mail.example.test", "example.test", false},
    {"mail.example.test", "mail.example.test..", false},
    {".example.test", "a.example.test", true},
    {".example.test", "a.b.example.test", true},
    {".example.test", "A.EXAMPLE.TEST.", true},
    {".example.test", "example.test", false}, /* a suffix never matches the bare parent */
    {".example.test", "example.test.", false},
    {".example.test", "EXAMPLE.TEST", false},
    {".example.test", "badexample.test", false},
    {".example.test", ".example.test", false},
    {".example.test", "a.example.test.x", false},
    {"x", "x", true},
    {"x", "", false},
    {"x", ".", false},
    {"", "", false},
    {".", "a", false},
};

START_TEST(test_name_table)
{
    const struct name_case *t = &name_cases[_i];
    ck_assert_msg(policy_name_match(t->pattern, t->name) == t->match, "row %d: \"%s\" ~ \"%s\"", _i,
                  t->name, t->pattern);
}
END_TEST

START_TEST(test_name_null)
{
    ck_assert(!policy_name_match("x", NULL));
    ck_assert(!policy_name_match(NULL, "x"));
}
END_TEST

/* ---- match lists ---- */

struct list_case {
    const char *addr;
    const char *rdns;
    bool match;
    const char *why;
};

static const char *const list_cidrs[] = {"198.51.100.0/24", "::1", "2001:db8:1::/48", NULL};
static const char *const list_names[] = {"mx.example.test", ".corp.example.test", NULL};

static const struct list_case list_cases[] = {
    {"198.51.100.7", NULL, true, "198.51.100.0/24"},
    {"198.51.100.7", "mx.example.test", true, "198.51.100.0/24"}, /* networks first */
    {"::1", NULL, true, "::1"},
    {"::ffff:198.51.100.9", NULL, true, "198.51.100.0/24"},
    {"2001:db8:1:2::3", NULL, true, "2001:db8:1::/48"},
    {"203.0.113.5", "host.corp.example.test", true, ".corp.example.test"},
    {"203.0.113.5", "MX.example.test.", true, "mx.example.test"},
    {"203.0.113.5", "corp.example.test", false, ""},
    {"203.0.113.5", "mx.example.test.evil", false, ""},
    {"203.0.113.5", NULL, false, ""},
    {"2001:db8:2::1", NULL, false, ""},
};

START_TEST(test_matchlist_table)
{
    const struct list_case *t = &list_cases[_i];
    struct t_list l;
    char why[64] = "";
    t_list_init(&l, list_cidrs, list_names);
    struct sockaddr_storage ss = t_sa(t->addr);
    bool m = policy_matchlist(&l.l, SA(ss), t->rdns, why, sizeof(why));
    ck_assert_msg(m == t->match, "row %d: %s %s", _i, t->addr, t->rdns ? t->rdns : "-");
    ck_assert_str_eq(why, t->why);
    ck_assert(policy_matchlist(&l.l, SA(ss), t->rdns, NULL, 0) == t->match);
}
END_TEST

START_TEST(test_matchlist_why_truncated)
{
    struct t_list l;
    char why[8];
    t_list_init(&l, list_cidrs, NULL);
    struct sockaddr_storage ss = t_sa("198.51.100.1");
    ck_assert(policy_matchlist(&l.l, SA(ss), NULL, why, sizeof(why)));
    ck_assert_str_eq(why, "198.51.");
    t_list_init(&l, NULL, NULL);
    ck_assert(!policy_matchlist(&l.l, SA(ss), "x", why, sizeof(why)));
}
END_TEST

/* ---- sender groups ---- */

struct sg_def {
    const char *name;
    const char *listener;
    const char *cidrs[MAXN];
    const char *names[MAXN];
    int tls;
};

/* In file order. */
static const struct sg_def sg_defs[] = {
    {"RELAYLIST", "in", {"127.0.0.0/8", "::1"}, {".corp.example.test"}, TLS_IN_OFF},
    {"ALL", NULL, {"198.51.100.0/24"}, {0}, -1}, /* its list is never used */
    {"BLOCKED", NULL, {"192.0.2.0/24", "198.51.100.66"}, {"spam.example.test"}, -1},
    {"SUBMIT", "sub", {"10.0.0.0/8"}, {0}, TLS_IN_REQUIRED},
    {"WIDE", NULL, {"10.0.0.0/8", "127.0.0.1"}, {".example.test"}, -1},
    {"ALL", "sub", {0}, {0}, TLS_IN_REQUIRED},
};

struct sg_config {
    struct config c;
    struct conf_sendergroup groups[MAXN];
    struct t_list lists[MAXN];
};

static void sg_config_init(struct sg_config *s, const struct sg_def *defs, size_t n)
{
    memset(s, 0, sizeof(*s));
    s->c.sendergroups = s->groups;
    s->c.nsendergroups = n;
    for (size_t i = 0; i < n; i++) {
        t_list_init(&s->lists[i], defs[i].cidrs, defs[i].names);
        s->groups[i].name = (char *)defs[i].name;
        s->groups[i].listener = (char *)defs[i].listener;
        s->groups[i].match = s->lists[i].l;
        s->groups[i].tls = defs[i].tls;
        s->groups[i].line = (int)i + 1;
    }
}

struct sg_case {
    const char *listener;
    const char *addr;
    const char *rdns;
    int line; /* line of the expected group, 0 for NULL */
    const char *why;
};

static const struct sg_case sg_cases[] = {
    {"in", "127.0.0.1", NULL, 1, "127.0.0.0/8"},
    {"in", "::1", NULL, 1, "::1"},
    {"in", "::ffff:127.0.0.5", NULL, 1, "127.0.0.0/8"},
    {"in", "203.0.113.7", "mx1.corp.example.test", 1, ".corp.example.test"},
    {"in", "203.0.113.7", "mx1.example.test", 5, ".example.test"},
    {"in", "203.0.113.7", NULL, 2, "ALL"},  /* no match: the unscoped ALL */
    {"in", "198.51.100.1", NULL, 2, "ALL"}, /* ALL's own list is ignored */
    {"in", "198.51.100.66", NULL, 3, "198.51.100.66"},
    {"in", "192.0.2.9", NULL, 3, "192.0.2.0/24"},
    {"in", "203.0.113.7", "SPAM.example.test", 3, "spam.example.test"}, /* before WIDE */
    {"out", "127.0.0.1", NULL, 5, "127.0.0.1"}, /* RELAYLIST is scoped to "in" */
    {"out", "127.0.0.2", NULL, 2, "ALL"},
    {"out", "203.0.113.7", "x.corp.example.test", 5, ".example.test"},
    {"sub", "10.1.1.1", NULL, 4, "10.0.0.0/8"}, /* SUBMIT comes before WIDE */
    {"in", "10.1.1.1", NULL, 5, "10.0.0.0/8"},
    {"sub", "203.0.113.7", NULL, 6, "ALL"}, /* the scoped ALL beats the unscoped */
    {"sub", "127.0.0.1", NULL, 5, "127.0.0.1"},
    {NULL, "127.0.0.1", NULL, 5, "127.0.0.1"}, /* no listener: unscoped groups only */
    {NULL, "10.1.1.1", NULL, 5, "10.0.0.0/8"},
    {NULL, "203.0.113.7", NULL, 2, "ALL"},
};

START_TEST(test_sendergroup_table)
{
    const struct sg_case *t = &sg_cases[_i];
    struct sg_config s;
    char why[64] = "unset";
    sg_config_init(&s, sg_defs, ROWS(sg_defs));
    struct sockaddr_storage ss = t_sa(t->addr);
    const struct conf_sendergroup *g =
        policy_sendergroup(&s.c, t->listener, SA(ss), t->rdns, why, sizeof(why));
    if (t->line == 0)
        ck_assert_ptr_null(g);
    else
        ck_assert_msg(g != NULL && g->line == t->line, "row %d: group %s (line %d)", _i,
                      g ? g->name : "NULL", g ? g->line : 0);
    ck_assert_str_eq(why, t->why);
}
END_TEST

/* Without an ALL section the answer for "nothing matched" is NULL. */
START_TEST(test_sendergroup_no_all)
{
    struct sg_config s;
    char why[64] = "unset";
    sg_config_init(&s, sg_defs, 1); /* RELAYLIST only */
    struct sockaddr_storage ss = t_sa("203.0.113.7");
    ck_assert_ptr_null(policy_sendergroup(&s.c, "in", SA(ss), NULL, why, sizeof(why)));
    ck_assert_str_eq(why, "ALL");
    /* an ALL scoped to another listener does not apply */
    sg_config_init(&s, &sg_defs[3], 3); /* SUBMIT, WIDE, ALL(sub) */
    ck_assert_ptr_null(policy_sendergroup(&s.c, "in", SA(ss), NULL, why, sizeof(why)));
    ck_assert_ptr_null(policy_sendergroup(NULL, "in", SA(ss), NULL, why, sizeof(why)));
    ck_assert_str_eq(why, "ALL");
}
END_TEST

START_TEST(test_tls_in)
{
    struct conf_listener l;
    struct conf_sendergroup sg;
    memset(&l, 0, sizeof(l));
    memset(&sg, 0, sizeof(sg));
    l.tls = TLS_IN_PREFERRED;
    sg.tls = -1;
    ck_assert_int_eq(policy_tls_in(&l, NULL), TLS_IN_PREFERRED);
    ck_assert_int_eq(policy_tls_in(&l, &sg), TLS_IN_PREFERRED);
    sg.tls = TLS_IN_REQUIRED;
    ck_assert_int_eq(policy_tls_in(&l, &sg), TLS_IN_REQUIRED);
    sg.tls = TLS_IN_OFF; /* 0 is a level, not "unset" */
    ck_assert_int_eq(policy_tls_in(&l, &sg), TLS_IN_OFF);
    l.tls = TLS_IN_REQUIRED;
    sg.tls = -1;
    ck_assert_int_eq(policy_tls_in(&l, &sg), TLS_IN_REQUIRED);
}
END_TEST

/* ---- accept domains ---- */

struct accept_case {
    const char *domain;
    bool ok;
};

static const struct accept_case accept_cases[] = {
    {"example.test", true},
    {"a.example.test", true},
    {"x.y.example.test", true},
    {"EXAMPLE.TEST.", true},
    {"A.Example.Test", true},
    {"other.test", true},
    {"a.other.test", false},
    {"example.org", false},
    {"notexample.test", false},
    {"example.test.x", false},
    {"", false},
};

START_TEST(test_accept_table)
{
    const struct accept_case *t = &accept_cases[_i];
    char *domains[] = {"example.test", ".example.test", "other.test"};
    struct conf_listener l;
    memset(&l, 0, sizeof(l));
    l.accept_domains = domains;
    l.naccept_domains = 3;
    ck_assert_msg(policy_domain_accepted(&l, t->domain) == t->ok, "row %d: %s", _i, t->domain);
    l.naccept_domains = 0;
    ck_assert(!policy_domain_accepted(&l, t->domain));
}
END_TEST

/* ---- destinations ---- */

/* Suffix entries before the exact one and the shorter suffix first, so
 * that file order cannot explain the answers. */
static struct conf_destination t_dests[] = {
    {".example.org", 1, TLS_OUT_REQUIRED, false},
    {".mail.example.org", 2, TLS_OUT_PREFERRED_VERIFY, false},
    {"default", 3, TLS_OUT_NONE, false},
    {"example.org", 4, TLS_OUT_REQUIRED_VERIFY, false},
    {"mx.mail.example.org", 5, TLS_OUT_REQUIRED, true},
};

struct dest_case {
    const char *domain;
    int line;     /* expected entry (its line) with every entry; 0 = NULL */
    int line_two; /* with only the first two (the suffix entries) */
};

static const struct dest_case dest_cases[] = {
    {"example.org", 4, 0}, /* a suffix entry never matches the bare parent */
    {"EXAMPLE.ORG.", 4, 0},
    {"a.example.org", 1, 1},
    {"mail.example.org", 1, 1},
    {"x.mail.example.org", 2, 2}, /* the longest suffix wins */
    {"a.b.mail.example.org", 2, 2},
    {"mx.mail.example.org", 5, 2}, /* exact beats every suffix */
    {"example.net", 3, 0},
    {"default", 3, 0},
    {"org", 3, 0},
    {"", 3, 0},
};

static struct config t_dest_config(size_t n)
{
    struct config c;
    memset(&c, 0, sizeof(c));
    c.destinations = t_dests;
    c.ndestinations = n;
    return c;
}

START_TEST(test_destination_table)
{
    const struct dest_case *t = &dest_cases[_i];
    struct config c = t_dest_config(ROWS(t_dests));
    const struct conf_destination *d = policy_destination(&c, t->domain);
    ck_assert_msg((d ? d->line : 0) == t->line, "row %d: %s got %d", _i, t->domain,
                  d ? d->line : 0);
    /* only the suffix entries: no exact entry, no "default" */
    c = t_dest_config(2);
    d = policy_destination(&c, t->domain);
    ck_assert_msg((d ? d->line : 0) == t->line_two, "row %d (two entries): %s got %d", _i,
                  t->domain, d ? d->line : 0);
}
END_TEST

START_TEST(test_tls_out)
{
    struct config c = t_dest_config(ROWS(t_dests));
    struct conf_route r;
    memset(&r, 0, sizeof(r));
    r.tls = -1;
    ck_assert_int_eq(policy_tls_out(&c, NULL, "example.org"), TLS_OUT_REQUIRED_VERIFY);
    ck_assert_int_eq(policy_tls_out(&c, &r, "a.example.org"), TLS_OUT_REQUIRED);
    ck_assert_int_eq(policy_tls_out(&c, NULL, "example.net"), TLS_OUT_NONE);
    r.tls = TLS_OUT_REQUIRED_VERIFY; /* the route wins */
    ck_assert_int_eq(policy_tls_out(&c, &r, "example.net"), TLS_OUT_REQUIRED_VERIFY);
    r.tls = TLS_OUT_NONE; /* 0 is a level, not "unset" */
    ck_assert_int_eq(policy_tls_out(&c, &r, "example.org"), TLS_OUT_NONE);
    c = t_dest_config(0); /* no destination entries at all */
    ck_assert_int_eq(policy_tls_out(&c, NULL, "example.org"), TLS_OUT_PREFERRED);
    ck_assert_ptr_null(policy_destination(&c, "example.org"));
    ck_assert_int_eq(policy_tls_out(NULL, NULL, "example.org"), TLS_OUT_PREFERRED);
}
END_TEST

/* ---- routes ---- */

static char *r_star[] = {"*"};
static char *r_partner[] = {"partner.test", ".partner.test"};
static char *r_deep[] = {".eu.partner.test"};
static char *r_exact[] = {"x.eu.partner.test"};
static char *r_dup[] = {".partner.test", "other.test"};

/* A route without domains first, the catch-all before the specific ones. */
static struct conf_route t_routes[] = {
    {.name = "local", .line = 1, .maildir = "var/mail", .tls = -1},
    {.name = "ses", .line = 2, .domains = r_star, .ndomains = 1, .tls = -1},
    {.name = "partner", .line = 3, .domains = r_partner, .ndomains = 2, .tls = -1},
    {.name = "deep", .line = 4, .domains = r_deep, .ndomains = 1, .tls = -1},
    {.name = "exact", .line = 5, .domains = r_exact, .ndomains = 1, .tls = -1},
    {.name = "dup", .line = 6, .domains = r_dup, .ndomains = 2, .tls = -1},
};

struct route_case {
    const char *domain;
    const char *route;       /* all routes */
    const char *route_no_ca; /* without "ses" (the catch-all) */
};

static const struct route_case route_cases[] = {
    {"partner.test", "partner", "partner"},
    {"PARTNER.TEST.", "partner", "partner"},
    {"a.partner.test", "partner", "partner"}, /* equal suffix: the first route */
    {"eu.partner.test", "partner", "partner"},
    {"a.eu.partner.test", "deep", "deep"},   /* longest suffix */
    {"x.eu.partner.test", "exact", "exact"}, /* exact beats every suffix */
    {"other.test", "dup", "dup"},
    {"example.com", "ses", NULL},
    {"local", "ses", NULL}, /* route names are not domains */
    {"", "ses", NULL},
};

START_TEST(test_route_table)
{
    const struct route_case *t = &route_cases[_i];
    struct config c;
    memset(&c, 0, sizeof(c));
    c.routes = t_routes;
    c.nroutes = ROWS(t_routes);
    const struct conf_route *r = policy_route_for_domain(&c, t->domain);
    ck_assert_msg(r != NULL && strcmp(r->name, t->route) == 0, "row %d: %s got %s", _i, t->domain,
                  r ? r->name : "NULL");
    struct conf_route without[ROWS(t_routes) - 1];
    without[0] = t_routes[0];
    memcpy(&without[1], &t_routes[2], sizeof(without) - sizeof(without[0]));
    c.routes = without;
    c.nroutes = ROWS(without);
    r = policy_route_for_domain(&c, t->domain);
    if (t->route_no_ca == NULL)
        ck_assert_ptr_null(r);
    else
        ck_assert_msg(r != NULL && strcmp(r->name, t->route_no_ca) == 0, "row %d: %s got %s", _i,
                      t->domain, r ? r->name : "NULL");
}
END_TEST

START_TEST(test_route_none)
{
    struct config c;
    memset(&c, 0, sizeof(c));
    ck_assert_ptr_null(policy_route_for_domain(&c, "example.com"));
    ck_assert_ptr_null(policy_route_for_domain(NULL, "example.com"));
    c.routes = t_routes;
    c.nroutes = 1; /* only the Maildir route, which has no domains */
    ck_assert_ptr_null(policy_route_for_domain(&c, "example.com"));
}
END_TEST

static Suite *policy_suite(void)
{
    Suite *s = suite_create("policy");
    TCase *tc = tcase_create("match");
    tcase_add_loop_test(tc, test_cidr_table, 0, ROWS(cidr_cases));
    tcase_add_test(tc, test_cidr_odd_inputs);
    tcase_add_loop_test(tc, test_name_table, 0, ROWS(name_cases));
    tcase_add_test(tc, test_name_null);
    tcase_add_loop_test(tc, test_matchlist_table, 0, ROWS(list_cases));
    tcase_add_test(tc, test_matchlist_why_truncated);
    suite_add_tcase(s, tc);
    tc = tcase_create("sendergroup");
    tcase_add_loop_test(tc, test_sendergroup_table, 0, ROWS(sg_cases));
    tcase_add_test(tc, test_sendergroup_no_all);
    tcase_add_test(tc, test_tls_in);
    suite_add_tcase(s, tc);
    tc = tcase_create("domain");
    tcase_add_loop_test(tc, test_accept_table, 0, ROWS(accept_cases));
    tcase_add_loop_test(tc, test_destination_table, 0, ROWS(dest_cases));
    tcase_add_test(tc, test_tls_out);
    tcase_add_loop_test(tc, test_route_table, 0, ROWS(route_cases));
    tcase_add_test(tc, test_route_none);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(policy_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
