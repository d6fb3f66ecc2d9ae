/*
 * route_mx: MX resolution for outbound delivery (RFC 5321 5.1, RFC 7505):
 * res_nquery with a per-call resolver state (thread-safe), the answer
 * parsed with ns_initparse/ns_parserr/dn_expand, host addresses from
 * getaddrinfo, all on the libuv thread pool; or, for tests, the
 * TLSGATE_HOSTS_MX file instead of DNS.
 *
 * Must not: run DNS on the loop thread, trust any length or pointer in an
 * answer before libresolv has bounds-checked it, connect anywhere, or know
 * about TLS policy.  The parser, the ordering and the literal parser stay
 * pure so that tests and the fuzzer can drive them without DNS.
 */
#include "route_mx.h"

#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <resolv.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#define ROUTE_MX_CHAIN_MAX  8     /* names in a CNAME chain we follow */
#define ROUTE_MX_ANSWER_MAX 65536 /* the largest DNS message (TCP) */
#define ROUTE_MX_GAI_MAX    16    /* addresses considered per host */

/* ---- names and statuses ---- */

bool route_mx_permanent(enum route_mx_status status)
{
    return status == ROUTE_MX_NXDOMAIN || status == ROUTE_MX_NULL_MX || status == ROUTE_MX_NODATA;
}

const char *route_mx_status_name(enum route_mx_status status)
{
    switch (status) {
    case ROUTE_MX_OK:
        return "ok";
    case ROUTE_MX_NXDOMAIN:
        return "nxdomain";
    case ROUTE_MX_NULL_MX:
        return "null-mx";
    case ROUTE_MX_NODATA:
        return "nodata";
    case ROUTE_MX_TEMPFAIL:
        break;
    }
    return "tempfail";
}

/* NAME lower-cased without one trailing dot into OUT (ROUTE_MX_HOST_MAX
 * bytes); "." becomes "", the root.  False if it does not fit. */
static bool route_mx_norm(const char *name, char *out)
{
    size_t len = strlen(name);
    if (len > 0 && name[len - 1] == '.')
        len--;
    if (len >= ROUTE_MX_HOST_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        out[i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
    }
    out[len] = '\0';
    return true;
}

/* A lower-case host name: labels of 1..63 letters, digits, '-' or '_'
 * (dn_expand escapes anything else with '\', which fails here). */
static bool route_mx_hostname_ok(const char *h)
{
    size_t label = 0;
    if (*h == '\0' || strlen(h) > 253)
        return false;
    for (; *h != '\0'; h++) {
        char c = *h;
        if (c == '.') {
            if (label == 0)
                return false;
            label = 0;
            continue;
        }
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_'))
            return false;
        if (++label > 63)
            return false;
    }
    return label > 0;
}

static enum route_mx_status route_mx_fail(struct route_mx_result *res, enum route_mx_status st,
                                          const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static enum route_mx_status route_mx_fail(struct route_mx_result *res, enum route_mx_status st,
                                          const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(res->error, sizeof(res->error), fmt, ap);
    va_end(ap);
    res->status = st;
    res->ntargets = 0;
    return st;
}

/* ---- the answer parser ---- */

/* The domain name at offset OFF of RR's data into OUT, normalized.  False
 * if it is malformed or runs past the record's data. */
static bool route_mx_rdata_name(const ns_msg *h, const ns_rr *rr, size_t off, char *out)
{
    char buf[NS_MAXDNAME];
    if (ns_rr_rdlen(*rr) <= off)
        return false;
    int k = dn_expand(ns_msg_base(*h), ns_msg_end(*h), ns_rr_rdata(*rr) + off, buf, sizeof(buf));
    if (k < 0 || (size_t)k + off > ns_rr_rdlen(*rr))
        return false;
    return route_mx_norm(buf, out);
}

/* True if RR's owner is one of NAMES. */
static bool route_mx_owner_in(const ns_rr *rr, char names[][ROUTE_MX_HOST_MAX], size_t n)
{
    char owner[ROUTE_MX_HOST_MAX];
    if (!route_mx_norm(ns_rr_name(*rr), owner))
        return false;
    for (size_t i = 0; i < n; i++)
        if (strcmp(owner, names[i]) == 0)
            return true;
    return false;
}

/* The one question: an MX question of class IN; its name into NAME. */
static bool route_mx_parse_question(ns_msg *h, char *name)
{
    ns_rr rr;
    if (ns_msg_count(*h, ns_s_qd) != 1 || ns_parserr(h, ns_s_qd, 0, &rr) < 0)
        return false;
    if (ns_rr_type(rr) != ns_t_mx || ns_rr_class(rr) != ns_c_in)
        return false;
    return route_mx_norm(ns_rr_name(rr), name);
}

/* The target of a CNAME for NAMES[N-1] in the answer into NAMES[N].
 * 1 found, 0 none, -1 malformed message. */
static int route_mx_parse_cname(ns_msg *h, char names[][ROUTE_MX_HOST_MAX], size_t n)
{
    for (int i = 0; i < ns_msg_count(*h, ns_s_an); i++) {
        ns_rr rr;
        if (ns_parserr(h, ns_s_an, i, &rr) < 0)
            return -1;
        if (ns_rr_type(rr) != ns_t_cname || !route_mx_owner_in(&rr, names + n - 1, 1))
            continue;
        return route_mx_rdata_name(h, &rr, 0, names[n]) ? 1 : -1;
    }
    return 0;
}

/* Stores RR in OUT[*N] if it is an MX of one of NAMES with a usable host.
 * -1 if its data is malformed. */
static int route_mx_parse_rr(ns_msg *h, const ns_rr *rr, char names[][ROUTE_MX_HOST_MAX],
                             size_t nnames, struct route_mx_record *out)
{
    if (ns_rr_type(*rr) != ns_t_mx || ns_rr_class(*rr) != ns_c_in ||
        !route_mx_owner_in(rr, names, nnames))
        return 0;
    if (ns_rr_rdlen(*rr) < 3 || !route_mx_rdata_name(h, rr, 2, out->host))
        return -1;
    if (out->host[0] != '\0' && !route_mx_hostname_ok(out->host))
        return 0;
    out->preference = (ns_rr_rdata(*rr)[0] << 8) | ns_rr_rdata(*rr)[1];
    return 1;
}

static enum route_mx_status route_mx_parse_mx(ns_msg *h, char names[][ROUTE_MX_HOST_MAX],
                                              size_t nnames, struct route_mx_record *out,
                                              size_t max, size_t *n)
{
    for (int i = 0; i < ns_msg_count(*h, ns_s_an); i++) {
        ns_rr rr;
        if (ns_parserr(h, ns_s_an, i, &rr) < 0)
            return ROUTE_MX_TEMPFAIL;
        if (*n == max)
            continue;
        int k = route_mx_parse_rr(h, &rr, names, nnames, &out[*n]);
        if (k < 0)
            return ROUTE_MX_TEMPFAIL;
        *n += (size_t)k;
    }
    return ROUTE_MX_OK;
}

enum route_mx_status route_mx_parse_answer(const unsigned char *msg, size_t len,
                                           struct route_mx_record *out, size_t max, size_t *n)
{
    ns_msg h;
    char names[ROUTE_MX_CHAIN_MAX][ROUTE_MX_HOST_MAX];
    *n = 0;
    if (msg == NULL || len < NS_HFIXEDSZ || len > 65535 || (msg[2] & 0x80) == 0)
        return ROUTE_MX_TEMPFAIL;
    if (ns_initparse(msg, (int)len, &h) < 0)
        return ROUTE_MX_TEMPFAIL;
    int rcode = msg[3] & 0x0f;
    if (rcode == ns_r_nxdomain)
        return ROUTE_MX_NXDOMAIN;
    if (rcode != ns_r_noerror || !route_mx_parse_question(&h, names[0]))
        return ROUTE_MX_TEMPFAIL;
    size_t nnames = 1;
    int k;
    while (nnames < ROUTE_MX_CHAIN_MAX && (k = route_mx_parse_cname(&h, names, nnames)) != 0) {
        if (k < 0)
            return ROUTE_MX_TEMPFAIL;
        nnames++;
    }
    enum route_mx_status st = route_mx_parse_mx(&h, names, nnames, out, max, n);
    if (st != ROUTE_MX_OK)
        *n = 0;
    return st;
}

bool route_mx_is_null(const struct route_mx_record *recs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (recs[i].host[0] != '\0')
            return false;
    return n > 0;
}

/* ---- ordering ---- */

/* Uniform in [0, BOUND) from getrandom, rejecting the biased top. */
static uint32_t route_mx_rand_system(void *ctx, uint32_t bound)
{
    (void)ctx;
    uint64_t range = (uint64_t)1 << 32;
    uint64_t limit = range - range % bound;
    uint32_t x;
    do {
        if (getrandom(&x, sizeof(x), 0) != (ssize_t)sizeof(x))
            x = (uint32_t)random();
    } while ((uint64_t)x >= limit);
    return x % bound;
}

static void route_mx_swap(struct route_mx_record *a, struct route_mx_record *b)
{
    struct route_mx_record t = *a;
    *a = *b;
    *b = t;
}

/* Stable insertion sort by preference (a list is at most a few dozen). */
static void route_mx_sort(struct route_mx_record *recs, size_t n)
{
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && recs[j - 1].preference > recs[j].preference; j--)
            route_mx_swap(&recs[j - 1], &recs[j]);
}

/* Drops root hosts and later repeats of a host; returns the new count. */
static size_t route_mx_compact(struct route_mx_record *recs, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        bool keep = recs[i].host[0] != '\0';
        for (size_t j = 0; keep && j < k; j++)
            keep = strcmp(recs[j].host, recs[i].host) != 0;
        if (keep)
            recs[k++] = recs[i];
    }
    return k;
}

/* Fisher-Yates over each run of equal preference. */
static void route_mx_shuffle(struct route_mx_record *recs, size_t n, route_mx_rand_fn rnd,
                             void *ctx)
{
    for (size_t start = 0, end; start < n; start = end) {
        for (end = start + 1; end < n && recs[end].preference == recs[start].preference; end++)
            ;
        for (size_t i = end - 1; i > start; i--) {
            uint32_t span = (uint32_t)(i - start + 1);
            route_mx_swap(&recs[i], &recs[start + rnd(ctx, span) % span]);
        }
    }
}

size_t route_mx_order(struct route_mx_record *recs, size_t n, route_mx_rand_fn rnd, void *ctx)
{
    route_mx_sort(recs, n);
    n = route_mx_compact(recs, n);
    route_mx_shuffle(recs, n, rnd != NULL ? rnd : route_mx_rand_system, ctx);
    return n < ROUTE_MX_MAX_HOSTS ? n : ROUTE_MX_MAX_HOSTS;
}

/* ---- addresses ---- */

static void route_mx_set_port(struct sockaddr_storage *ss, int port)
{
    if (ss->ss_family == AF_INET)
        ((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
    else
        ((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
}

static socklen_t route_mx_salen(const struct sockaddr_storage *ss)
{
    return ss->ss_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
}

/* TEXT (AF_INET dotted quad or AF_INET6) into SS; false if invalid. */
static bool route_mx_pton(int family, const char *text, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof(*ss));
    ss->ss_family = (sa_family_t)family;
    void *dst = family == AF_INET ? (void *)&((struct sockaddr_in *)ss)->sin_addr
                                  : (void *)&((struct sockaddr_in6 *)ss)->sin6_addr;
    return inet_pton(family, text, dst) == 1;
}

static bool route_mx_same_addr(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    if (a->ss_family != b->ss_family)
        return false;
    if (a->ss_family == AF_INET)
        return memcmp(&((const struct sockaddr_in *)a)->sin_addr,
                      &((const struct sockaddr_in *)b)->sin_addr, 4) == 0;
    return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
                  &((const struct sockaddr_in6 *)b)->sin6_addr, 16) == 0;
}

/* The first address of IN not yet USED, of FAMILY if there is one. */
static size_t route_mx_next_addr(const struct sockaddr_storage *in, size_t n, const bool *used,
                                 int family)
{
    size_t any = n;
    for (size_t i = 0; i < n; i++) {
        if (used[i])
            continue;
        if (in[i].ss_family == family)
            return i;
        if (any == n)
            any = i;
    }
    return any;
}

/* Up to ROUTE_MX_ADDRS_PER_MX of IN (N <= ROUTE_MX_GAI_MAX) into OUT,
 * alternating families from the first one's (RFC 8305 4). */
static size_t route_mx_interleave(const struct sockaddr_storage *in, size_t n,
                                  struct sockaddr_storage *out)
{
    bool used[ROUTE_MX_GAI_MAX] = {false};
    int family = n > 0 ? in[0].ss_family : AF_INET6;
    size_t k = 0;
    while (k < ROUTE_MX_ADDRS_PER_MX) {
        size_t i = route_mx_next_addr(in, n, used, family);
        if (i == n)
            break;
        used[i] = true;
        out[k++] = in[i];
        family = in[i].ss_family == AF_INET6 ? AF_INET : AF_INET6;
    }
    return k;
}

/* HOST's addresses from getaddrinfo (both families, no AI_ADDRCONFIG, the
 * system's RFC 6724 order).  0 with *N (0: the name has no address), -1
 * on a temporary failure (ERR says why). */
static int route_mx_addrs_gai(const char *host, struct sockaddr_storage *out, size_t *n, char *err,
                              size_t errlen)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    struct sockaddr_storage all[ROUTE_MX_GAI_MAX];
    size_t nall = 0;
    *n = 0;
    int rc = getaddrinfo(host, NULL, &hints, &res);
    if (rc == EAI_NONAME || rc == EAI_NODATA)
        return 0;
    if (rc != 0) {
        snprintf(err, errlen, "address lookup of %s: %s", host, gai_strerror(rc));
        return -1;
    }
    for (struct addrinfo *ai = res; ai != NULL && nall < ROUTE_MX_GAI_MAX; ai = ai->ai_next)
        if (ai->ai_family == AF_INET || ai->ai_family == AF_INET6)
            memcpy(&all[nall++], ai->ai_addr, ai->ai_addrlen);
    freeaddrinfo(res);
    *n = route_mx_interleave(all, nall, out);
    return 0;
}

int route_mx_literal(const char *domain, int port, struct route_mx_target *t)
{
    size_t len = strlen(domain);
    char inner[INET6_ADDRSTRLEN + 8];
    if (domain[0] != '[')
        return 0;
    if (len < 2 || domain[len - 1] != ']' || len - 2 >= sizeof(inner))
        return -1;
    memcpy(inner, domain + 1, len - 2);
    inner[len - 2] = '\0';
    memset(t, 0, sizeof(*t));
    bool v6 = strncasecmp(inner, "IPv6:", 5) == 0;
    if (!route_mx_pton(v6 ? AF_INET6 : AF_INET, v6 ? inner + 5 : inner, &t->addr))
        return -1;
    const void *src = v6 ? (const void *)&((struct sockaddr_in6 *)&t->addr)->sin6_addr
                         : (const void *)&((struct sockaddr_in *)&t->addr)->sin_addr;
    inet_ntop(t->addr.ss_family, src, t->host, sizeof(t->host));
    route_mx_set_port(&t->addr, port);
    t->addrlen = route_mx_salen(&t->addr);
    t->implicit = true;
    t->literal = true;
    return 1;
}

/* ---- the TLSGATE_HOSTS_MX file ---- */

enum route_mx_line_kind { ROUTE_MX_LINE_MX, ROUTE_MX_LINE_ADDR };

struct route_mx_line {
    enum route_mx_line_kind kind;
    char name[ROUTE_MX_HOST_MAX];
    struct route_mx_record mx;    /* ROUTE_MX_LINE_MX */
    struct sockaddr_storage addr; /* ROUTE_MX_LINE_ADDR */
};

static int route_mx_file_addr_line(const char *type, const char *text, struct route_mx_line *l)
{
    l->kind = ROUTE_MX_LINE_ADDR;
    return route_mx_pton(strlen(type) == 1 ? AF_INET : AF_INET6, text, &l->addr) ? 1 : -1;
}

static int route_mx_file_mx_line(const char *pref, const char *host, struct route_mx_line *l)
{
    char *end = NULL;
    errno = 0;
    long p = strtol(pref, &end, 10);
    if (errno != 0 || end == pref || *end != '\0' || p < 0 || p > 65535)
        return -1;
    l->kind = ROUTE_MX_LINE_MX;
    l->mx.preference = (int)p;
    if (!route_mx_norm(host, l->mx.host))
        return -1;
    struct sockaddr_storage ss;
    if (l->mx.host[0] == '\0' || route_mx_hostname_ok(l->mx.host) ||
        route_mx_pton(AF_INET6, l->mx.host, &ss))
        return 1;
    return -1;
}

/* One line: 1 parsed into L, 0 blank or comment, -1 malformed. */
static int route_mx_file_line(char *line, struct route_mx_line *l)
{
    char *f[3];
    char *save = NULL;
    size_t k = 0;
    line[strcspn(line, "#")] = '\0';
    for (char *t = strtok_r(line, " \t\r\n", &save); t != NULL;
         t = strtok_r(NULL, " \t\r\n", &save)) {
        if (k == 3)
            return -1;
        f[k++] = t;
    }
    if (k == 0)
        return 0;
    if (k != 3 || !route_mx_norm(f[0], l->name) || !route_mx_hostname_ok(l->name))
        return -1;
    if (strcasecmp(f[1], "A") == 0 || strcasecmp(f[1], "AAAA") == 0)
        return route_mx_file_addr_line(f[1], f[2], l);
    return route_mx_file_mx_line(f[1], f[2], l);
}

typedef void (*route_mx_line_fn)(void *ctx, const struct route_mx_line *l);

/* Calls FN for every line of PATH; -1 with ERR on a missing file or a bad
 * line (then nothing of the file is to be used). */
static int route_mx_file_scan(const char *path, route_mx_line_fn fn, void *ctx, char *err,
                              size_t errlen)
{
    char line[1024];
    char ebuf[128];
    int lineno = 0;
    FILE *f = fopen(path, "re");
    if (f == NULL) {
        snprintf(err, errlen, "%s: %s", path, strerror_r(errno, ebuf, sizeof(ebuf)));
        return -1;
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        struct route_mx_line l;
        lineno++;
        int k = route_mx_file_line(line, &l);
        if (k < 0) {
            snprintf(err, errlen, "%s:%d: bad line (want DOMAIN PREF HOST or NAME A|AAAA ADDR)",
                     path, lineno);
            fclose(f);
            return -1;
        }
        if (k > 0)
            fn(ctx, &l);
    }
    fclose(f);
    return 0;
}

struct route_mx_file_query {
    const char *name;
    struct route_mx_record *recs; /* MX lines of NAME */
    size_t max, n;
    struct sockaddr_storage addrs[ROUTE_MX_GAI_MAX]; /* A/AAAA lines of NAME */
    size_t naddrs;
};

static void route_mx_file_collect(void *ctx, const struct route_mx_line *l)
{
    struct route_mx_file_query *q = ctx;
    if (strcmp(l->name, q->name) != 0)
        return;
    if (l->kind == ROUTE_MX_LINE_MX && q->n < q->max)
        q->recs[q->n++] = l->mx;
    if (l->kind == ROUTE_MX_LINE_ADDR && q->naddrs < ROUTE_MX_GAI_MAX)
        q->addrs[q->naddrs++] = l->addr;
}

/* The MX step from the file: MX lines, or none (implicit MX) when the
 * domain has address lines, or NXDOMAIN. */
static enum route_mx_status route_mx_file_mx(const char *path, const char *domain,
                                             struct route_mx_record *recs, size_t max, size_t *n,
                                             char *err, size_t errlen)
{
    struct route_mx_file_query q = {.name = domain, .recs = recs, .max = max};
    *n = 0;
    if (route_mx_file_scan(path, route_mx_file_collect, &q, err, errlen) < 0)
        return ROUTE_MX_TEMPFAIL;
    *n = q.n;
    if (q.n > 0 || q.naddrs > 0)
        return ROUTE_MX_OK;
    snprintf(err, errlen, "%s: not in %s", domain, path);
    return ROUTE_MX_NXDOMAIN;
}

/* HOST's addresses from the file's A/AAAA lines, else HOST itself if it
 * is numeric; never DNS. */
static int route_mx_file_addrs(const char *path, const char *host, struct sockaddr_storage *out,
                               size_t *n, char *err, size_t errlen)
{
    struct route_mx_file_query q = {.name = host};
    *n = 0;
    if (route_mx_file_scan(path, route_mx_file_collect, &q, err, errlen) < 0)
        return -1;
    if (q.naddrs == 0 &&
        (route_mx_pton(AF_INET, host, &q.addrs[0]) || route_mx_pton(AF_INET6, host, &q.addrs[0])))
        q.naddrs = 1;
    *n = route_mx_interleave(q.addrs, q.naddrs, out);
    return 0;
}

/* ---- DNS ---- */

static enum route_mx_status route_mx_herrno(int herr, const char *domain, char *err, size_t errlen)
{
    switch (herr) {
    case HOST_NOT_FOUND:
        snprintf(err, errlen, "%s: domain does not exist (NXDOMAIN)", domain);
        return ROUTE_MX_NXDOMAIN;
    case NO_DATA:
        return ROUTE_MX_OK; /* no MX: the implicit MX */
    case TRY_AGAIN:
        snprintf(err, errlen, "MX lookup of %s: SERVFAIL or timeout", domain);
        return ROUTE_MX_TEMPFAIL;
    case NO_RECOVERY:
        snprintf(err, errlen, "MX lookup of %s: refused or malformed (FORMERR/REFUSED/NOTIMP)",
                 domain);
        return ROUTE_MX_TEMPFAIL;
    default:
        snprintf(err, errlen, "MX lookup of %s: resolver error %d", domain, herr);
        return ROUTE_MX_TEMPFAIL;
    }
}

/* The MX step from DNS: res_nquery with a state of our own (thread-safe). */
static enum route_mx_status route_mx_dns_mx(const char *domain, struct route_mx_record *recs,
                                            size_t max, size_t *n, char *err, size_t errlen)
{
    struct __res_state st;
    unsigned char *buf = malloc(ROUTE_MX_ANSWER_MAX);
    *n = 0;
    memset(&st, 0, sizeof(st));
    if (buf == NULL || res_ninit(&st) != 0) {
        free(buf);
        snprintf(err, errlen, "MX lookup of %s: resolver initialisation failed", domain);
        return ROUTE_MX_TEMPFAIL;
    }
    int len = res_nquery(&st, domain, ns_c_in, ns_t_mx, buf, ROUTE_MX_ANSWER_MAX);
    int herr = st.res_h_errno;
    res_nclose(&st);
    enum route_mx_status s = ROUTE_MX_TEMPFAIL;
    if (len < 0)
        s = route_mx_herrno(herr, domain, err, errlen);
    else if ((s = route_mx_parse_answer(buf, (size_t)len, recs, max, n)) != ROUTE_MX_OK)
        snprintf(err, errlen, "MX lookup of %s: %s answer", domain,
                 s == ROUTE_MX_NXDOMAIN ? "NXDOMAIN" : "malformed or failed");
    free(buf);
    return s;
}

/* ---- the whole lookup ---- */

/* Appends HOST's addresses (those not already in RES) as targets.  -1 on a
 * temporary failure of the address lookup. */
static int route_mx_add_host(struct route_mx_result *res, const struct route_mx_record *rec,
                             bool implicit, int port, const char *file, char *err, size_t errlen)
{
    struct sockaddr_storage addrs[ROUTE_MX_ADDRS_PER_MX];
    size_t n = 0;
    int rc = file != NULL ? route_mx_file_addrs(file, rec->host, addrs, &n, err, errlen)
                          : route_mx_addrs_gai(rec->host, addrs, &n, err, errlen);
    for (size_t i = 0; i < n && res->ntargets < ROUTE_MX_MAX_TARGETS; i++) {
        bool seen = false;
        for (size_t j = 0; j < res->ntargets && !seen; j++)
            seen = route_mx_same_addr(&res->targets[j].addr, &addrs[i]);
        if (seen)
            continue;
        struct route_mx_target *t = &res->targets[res->ntargets++];
        snprintf(t->host, sizeof(t->host), "%s", rec->host);
        t->preference = rec->preference;
        t->addr = addrs[i];
        route_mx_set_port(&t->addr, port);
        t->addrlen = route_mx_salen(&t->addr);
        t->implicit = implicit;
    }
    return rc;
}

/* The address step: every host of RECS in order, or the implicit MX. */
static enum route_mx_status route_mx_add_all(struct route_mx_result *res,
                                             struct route_mx_record *recs, size_t n, int port,
                                             const char *file)
{
    char err[sizeof(res->error)] = "";
    bool implicit = n == 0;
    bool temp = false;
    if (implicit) {
        snprintf(recs[0].host, sizeof(recs[0].host), "%s", res->domain);
        recs[0].preference = 0;
        n = 1;
    }
    for (size_t i = 0; i < n; i++)
        temp |= route_mx_add_host(res, &recs[i], implicit, port, file, err, sizeof(err)) < 0;
    if (res->ntargets > 0)
        return ROUTE_MX_OK;
    if (temp)
        return route_mx_fail(res, ROUTE_MX_TEMPFAIL, "%s: %s", res->domain, err);
    if (implicit)
        return route_mx_fail(res, ROUTE_MX_NODATA, "%s: no MX and no A/AAAA record", res->domain);
    return route_mx_fail(res, ROUTE_MX_NODATA, "%s: none of its %zu MX hosts has an address",
                         res->domain, n);
}

/* The MX step and what follows from it, for a valid domain name. */
static enum route_mx_status route_mx_lookup_name(struct route_mx_result *res, int port,
                                                 struct route_mx_record *recs)
{
    const char *file = getenv(ROUTE_MX_ENV_HOSTS);
    size_t n = 0;
    enum route_mx_status st;
    if (file != NULL && file[0] == '\0')
        file = NULL;
    if (file != NULL)
        st = route_mx_file_mx(file, res->domain, recs, ROUTE_MX_MAX_RECORDS, &n, res->error,
                              sizeof(res->error));
    else
        st = route_mx_dns_mx(res->domain, recs, ROUTE_MX_MAX_RECORDS, &n, res->error,
                             sizeof(res->error));
    if (st != ROUTE_MX_OK)
        return res->status = st;
    if (route_mx_is_null(recs, n))
        return route_mx_fail(res, ROUTE_MX_NULL_MX,
                             "%s: null MX (RFC 7505), the domain accepts no mail", res->domain);
    n = route_mx_order(recs, n, NULL, NULL);
    return route_mx_add_all(res, recs, n, port, file);
}

enum route_mx_status route_mx_lookup(const char *domain, int port, struct route_mx_result *res)
{
    memset(res, 0, sizeof(*res));
    snprintf(res->domain, sizeof(res->domain), "%s", domain);
    if (port < 1 || port > 65535)
        return route_mx_fail(res, ROUTE_MX_TEMPFAIL, "invalid port %d", port);
    int lit = route_mx_literal(domain, port, &res->targets[0]);
    if (lit < 0)
        return route_mx_fail(res, ROUTE_MX_NXDOMAIN, "%.255s: not a valid address literal", domain);
    if (lit > 0) {
        res->ntargets = 1;
        return res->status = ROUTE_MX_OK;
    }
    if (!route_mx_norm(domain, res->domain) || !route_mx_hostname_ok(res->domain))
        return route_mx_fail(res, ROUTE_MX_NXDOMAIN, "%.255s: not a valid domain name", domain);
    struct route_mx_record *recs = calloc(ROUTE_MX_MAX_RECORDS, sizeof(*recs));
    if (recs == NULL)
        return route_mx_fail(res, ROUTE_MX_TEMPFAIL, "%s: out of memory", res->domain);
    enum route_mx_status st = route_mx_lookup_name(res, port, recs);
    free(recs);
    return st;
}

/* ---- on the thread pool ---- */

struct route_mx_req {
    uv_work_t work;
    char *domain;
    int port;
    route_mx_cb cb;
    void *arg;
    struct route_mx_result *res;
};

static void route_mx_on_work(uv_work_t *w)
{
    struct route_mx_req *r = w->data;
    route_mx_lookup(r->domain, r->port, r->res);
}

static void route_mx_on_done(uv_work_t *w, int status)
{
    struct route_mx_req *r = w->data;
    route_mx_cb cb = r->cb;
    void *arg = r->arg;
    struct route_mx_result *res = r->res;
    if (status != 0)
        route_mx_fail(res, ROUTE_MX_TEMPFAIL, "%s: lookup cancelled", r->domain);
    free(r->domain);
    free(r);
    cb(arg, res);
}

void route_mx_result_free(struct route_mx_result *res)
{
    free(res);
}

int route_mx_resolve(uv_loop_t *loop, const char *domain, int port, route_mx_cb cb, void *arg)
{
    if (loop == NULL || domain == NULL || cb == NULL || port < 1 || port > 65535)
        return UV_EINVAL;
    struct route_mx_req *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return UV_ENOMEM;
    r->domain = strdup(domain);
    r->res = calloc(1, sizeof(*r->res));
    r->port = port;
    r->cb = cb;
    r->arg = arg;
    r->work.data = r;
    int rc = r->domain == NULL || r->res == NULL ? UV_ENOMEM : 0;
    if (rc == 0)
        rc = uv_queue_work(loop, &r->work, route_mx_on_work, route_mx_on_done);
    if (rc != 0) {
        free(r->res);
        free(r->domain);
        free(r);
    }
    return rc;
}
