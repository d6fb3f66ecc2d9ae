/*
 * policy: the lookups that turn a config snapshot and a fact about a peer
 * (client address, host name, recipient domain) into a decision input:
 * sender group, inbound level, accepted domain, destination entry, route.
 *
 * It must stay pure: no I/O, no DNS (the caller passes the forward-confirmed
 * reverse name), no allocation, no logging and no state, so that every
 * answer depends only on the arguments and can be tested from a table.
 */
#include "policy.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* Rank of a list entry for a domain: 0 no match, the catch-all lowest, then
 * ".suffix" entries by length, an exact entry highest. */
#define POLICY_RANK_NONE     0
#define POLICY_RANK_CATCHALL 1
#define POLICY_RANK_EXACT    SIZE_MAX

/* ---- addresses ---- */

/* The family and address bytes of SA; an IPv4-mapped IPv6 address yields
 * its IPv4 address.  False for other families. */
static bool policy_sa_addr(const struct sockaddr *sa, int *family, const uint8_t **bytes)
{
    if (sa == NULL)
        return false;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;
        *family = AF_INET;
        *bytes = (const uint8_t *)&in->sin_addr;
        return true;
    }
    if (sa->sa_family != AF_INET6)
        return false;
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;
    bool mapped = IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr);
    *family = mapped ? AF_INET : AF_INET6;
    *bytes = in6->sin6_addr.s6_addr + (mapped ? 12 : 0);
    return true;
}

/* True if the first BITS bits of A and B are equal. */
static bool policy_prefix_equal(const uint8_t *a, const uint8_t *b, int bits)
{
    size_t whole = (size_t)bits / 8;
    int rest = bits % 8;
    if (memcmp(a, b, whole) != 0)
        return false;
    if (rest == 0)
        return true;
    uint8_t mask = (uint8_t)(0xff << (8 - rest));
    return ((a[whole] ^ b[whole]) & mask) == 0;
}

bool policy_cidr_match(const struct cidr *n, const struct sockaddr *sa)
{
    int family;
    const uint8_t *bytes;
    if (n == NULL || !policy_sa_addr(sa, &family, &bytes) || family != n->family)
        return false;
    int maxbits = family == AF_INET ? 32 : 128;
    if (n->prefix < 0 || n->prefix > maxbits)
        return false;
    return policy_prefix_equal(n->addr, bytes, n->prefix);
}

/* ---- names ---- */

/* Length of S without one trailing dot. */
static size_t policy_name_len(const char *s)
{
    size_t n = strlen(s);
    return (n > 0 && s[n - 1] == '.') ? n - 1 : n;
}

bool policy_name_match(const char *pattern, const char *name)
{
    if (pattern == NULL || name == NULL)
        return false;
    size_t pn = policy_name_len(pattern);
    size_t nn = policy_name_len(name);
    if (pn == 0 || nn == 0)
        return false;
    if (pattern[0] == '.')
        return nn > pn && strncasecmp(name + nn - pn, pattern, pn) == 0;
    return nn == pn && strncasecmp(name, pattern, pn) == 0;
}

/* ---- match lists and sender groups ---- */

static void policy_why(char *why, size_t whylen, const char *text)
{
    if (why != NULL && whylen > 0)
        snprintf(why, whylen, "%s", text);
}

static void policy_why_cidr(char *why, size_t whylen, const struct cidr *n)
{
    char text[INET6_ADDRSTRLEN];
    if (why == NULL || whylen == 0)
        return;
    if (inet_ntop(n->family, n->addr, text, sizeof(text)) == NULL)
        snprintf(text, sizeof(text), "?");
    /* as written in the config: a single address without "/32" */
    if (!n->has_prefix && n->prefix == (n->family == AF_INET ? 32 : 128))
        snprintf(why, whylen, "%s", text);
    else
        snprintf(why, whylen, "%s/%d", text, n->prefix);
}

bool policy_matchlist(const struct matchlist *l, const struct sockaddr *sa, const char *rdns,
                      char *why, size_t whylen)
{
    if (l == NULL)
        return false;
    for (size_t i = 0; i < l->ncidrs; i++) {
        if (policy_cidr_match(&l->cidrs[i], sa)) {
            policy_why_cidr(why, whylen, &l->cidrs[i]);
            return true;
        }
    }
    for (size_t i = 0; rdns != NULL && i < l->nnames; i++) {
        if (policy_name_match(l->names[i], rdns)) {
            policy_why(why, whylen, l->names[i]);
            return true;
        }
    }
    return false;
}

static bool policy_sg_applies(const struct conf_sendergroup *g, const char *listener)
{
    return g->listener == NULL || (listener != NULL && strcmp(g->listener, listener) == 0);
}

static bool policy_sg_is_all(const struct conf_sendergroup *g)
{
    return g->name != NULL && strcmp(g->name, "ALL") == 0;
}

/* The "ALL" group for LISTENER: one scoped to it, else an unscoped one. */
static const struct conf_sendergroup *policy_sg_all(const struct config *c, const char *listener)
{
    const struct conf_sendergroup *unscoped = NULL;
    for (size_t i = 0; i < c->nsendergroups; i++) {
        const struct conf_sendergroup *g = &c->sendergroups[i];
        if (!policy_sg_is_all(g) || !policy_sg_applies(g, listener))
            continue;
        if (g->listener != NULL)
            return g;
        if (unscoped == NULL)
            unscoped = g;
    }
    return unscoped;
}

const struct conf_sendergroup *policy_sendergroup(const struct config *c, const char *listener,
                                                  const struct sockaddr *sa, const char *rdns,
                                                  char *why, size_t whylen)
{
    for (size_t i = 0; c != NULL && i < c->nsendergroups; i++) {
        const struct conf_sendergroup *g = &c->sendergroups[i];
        if (policy_sg_is_all(g) || !policy_sg_applies(g, listener))
            continue;
        if (policy_matchlist(&g->match, sa, rdns, why, whylen))
            return g;
    }
    policy_why(why, whylen, "ALL");
    return c != NULL ? policy_sg_all(c, listener) : NULL;
}

enum tls_in_level policy_tls_in(const struct conf_listener *l, const struct conf_sendergroup *sg)
{
    if (sg != NULL && sg->tls >= 0)
        return (enum tls_in_level)sg->tls;
    return l != NULL ? l->tls : TLS_IN_PREFERRED;
}

/* ---- domains, destinations, routes ---- */

bool policy_domain_accepted(const struct conf_listener *l, const char *domain)
{
    for (size_t i = 0; l != NULL && i < l->naccept_domains; i++) {
        if (policy_name_match(l->accept_domains[i], domain))
            return true;
    }
    return false;
}

/* Rank of ENTRY for DOMAIN, CATCHALL being the name of the catch-all entry
 * ("default" or "*"), which is never compared with DOMAIN. */
static size_t policy_rank(const char *entry, const char *domain, const char *catchall)
{
    if (entry == NULL)
        return POLICY_RANK_NONE;
    if (strcmp(entry, catchall) == 0)
        return POLICY_RANK_CATCHALL;
    if (!policy_name_match(entry, domain))
        return POLICY_RANK_NONE;
    return entry[0] == '.' ? POLICY_RANK_CATCHALL + strlen(entry) : POLICY_RANK_EXACT;
}

const struct conf_destination *policy_destination(const struct config *c, const char *domain)
{
    const struct conf_destination *best = NULL;
    size_t best_rank = POLICY_RANK_NONE;
    for (size_t i = 0; c != NULL && i < c->ndestinations; i++) {
        size_t rank = policy_rank(c->destinations[i].domain, domain, "default");
        if (rank > best_rank) {
            best = &c->destinations[i];
            best_rank = rank;
        }
    }
    return best;
}

enum tls_out_level policy_tls_out(const struct config *c, const struct conf_route *route,
                                  const char *domain)
{
    if (route != NULL && route->tls >= 0)
        return (enum tls_out_level)route->tls;
    const struct conf_destination *d = policy_destination(c, domain);
    return d != NULL ? d->tls : TLS_OUT_PREFERRED;
}

/* The best rank of any of R's domains for DOMAIN. */
static size_t policy_route_rank(const struct conf_route *r, const char *domain)
{
    size_t best = POLICY_RANK_NONE;
    for (size_t i = 0; i < r->ndomains; i++) {
        size_t rank = policy_rank(r->domains[i], domain, "*");
        if (rank > best)
            best = rank;
    }
    return best;
}

const struct conf_route *policy_route_for_domain(const struct config *c, const char *domain)
{
    const struct conf_route *best = NULL;
    size_t best_rank = POLICY_RANK_NONE;
    for (size_t i = 0; c != NULL && i < c->nroutes; i++) {
        size_t rank = policy_route_rank(&c->routes[i], domain);
        if (rank > best_rank) {
            best = &c->routes[i];
            best_rank = rank;
        }
    }
    return best;
}
