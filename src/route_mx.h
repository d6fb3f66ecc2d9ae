/*
 * route_mx: the MX next hops of a recipient domain (RFC 5321 5.1), as an
 * ordered list of (MX host, address) targets for the outbound session to
 * try one after the other.  DNS runs on the libuv thread pool; the answer
 * comes back on the loop thread.
 *
 * Must not: block the event loop, connect anywhere, or decide TLS policy
 * (the caller maps a status to a reply and a log line).
 *
 * Test hook: when the environment variable TLSGATE_HOSTS_MX names a file,
 * that file replaces DNS entirely (the sandbox has no network).  It is read
 * on every lookup; '#' starts a comment; lines are
 *     DOMAIN PREFERENCE HOST      an MX record ("example.org 10 mx1.example.org";
 *                                 "example.org 0 ." is a null MX)
 *     NAME A ADDRESS              an IPv4 address of NAME
 *     NAME AAAA ADDRESS           an IPv6 address of NAME
 * A domain with MX lines gets those; a domain with only A/AAAA lines gets
 * the implicit MX; any other domain is NXDOMAIN.  A host's addresses are
 * its A/AAAA lines only (write "localhost A 127.0.0.1" for localhost); an
 * MX host that is itself a numeric address ("example.org 10 127.0.0.1",
 * "example.org 10 ::1") is
 * used as is; any other host has no address.  So nothing is ever asked of
 * DNS or /etc/hosts.  A missing file or a bad line is a TEMPFAIL naming
 * FILE:LINE.  Never set it in production.
 */
#ifndef TLSGATE_ROUTE_MX_H
#define TLSGATE_ROUTE_MX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <uv.h>

#define ROUTE_MX_HOST_MAX     256 /* a host name and its NUL */
#define ROUTE_MX_MAX_RECORDS  64  /* MX records kept from one answer */
#define ROUTE_MX_MAX_HOSTS    10  /* MX hosts kept after ordering */
#define ROUTE_MX_ADDRS_PER_MX 4   /* addresses kept per MX host */
#define ROUTE_MX_MAX_TARGETS  (ROUTE_MX_MAX_HOSTS * ROUTE_MX_ADDRS_PER_MX)
#define ROUTE_MX_ENV_HOSTS    "TLSGATE_HOSTS_MX"

enum route_mx_status {
    ROUTE_MX_OK,       /* at least one target */
    ROUTE_MX_NXDOMAIN, /* permanent: the domain does not exist (or is a bad literal) */
    ROUTE_MX_NULL_MX,  /* permanent: RFC 7505 "MX 0 .", the domain accepts no mail */
    ROUTE_MX_NODATA,   /* permanent: no MX and no A/AAAA, or no MX host has an address */
    ROUTE_MX_TEMPFAIL, /* temporary: SERVFAIL, timeout, malformed answer, no memory */
};

/* One next hop.  HOST is the MX host name, lower-case, without the
 * trailing dot; for the implicit MX it is the domain itself, for an
 * address literal the bare address text ("192.0.2.1", "2001:db8::1").
 * ADDR carries the port given to the lookup. */
struct route_mx_target {
    char host[ROUTE_MX_HOST_MAX];
    int preference; /* the MX preference; 0 for implicit MX and literals */
    struct sockaddr_storage addr;
    socklen_t addrlen;
    bool implicit; /* no MX record: the domain's own A/AAAA, or a literal */
    bool literal;  /* the domain was an address literal: no name to verify or send as SNI */
};

/* Targets in the order to try them: MX preference ascending, hosts of equal
 * preference in random order (RFC 5321 5.1), and for each host its
 * addresses in getaddrinfo's order (RFC 6724 destination selection)
 * interleaved by family (RFC 8305 4), so that the per-host cap never drops
 * a whole family.  No address appears twice. */
struct route_mx_result {
    enum route_mx_status status;
    char error[512]; /* why, for the log, when status != ROUTE_MX_OK */
    char domain[ROUTE_MX_HOST_MAX];
    size_t ntargets; /* > 0 exactly when status == ROUTE_MX_OK */
    struct route_mx_target targets[ROUTE_MX_MAX_TARGETS];
};

/* Called on the loop thread, exactly once per successful route_mx_resolve.
 * RES is never NULL and belongs to the callback from then on: free it with
 * route_mx_result_free (it is kept while the caller walks the targets). */
typedef void (*route_mx_cb)(void *arg, struct route_mx_result *res);

/* Looks up the targets for DOMAIN (a name, "[a.b.c.d]" or "[IPv6:...]") on
 * the thread pool of LOOP and calls CB(ARG, res) on the loop thread.  ARG
 * must stay valid until CB runs (the caller holds a reference).  PORT is
 * 1..65535.  0, or a UV error (and then CB is never called). */
int route_mx_resolve(uv_loop_t *loop, const char *domain, int port, route_mx_cb cb, void *arg);

/* Frees a result handed to a route_mx_cb; NULL is a no-op. */
void route_mx_result_free(struct route_mx_result *res);

/* The same lookup, blocking: for tools (probe) and tests, never on the loop
 * thread.  Fills RES completely; returns RES->status. */
enum route_mx_status route_mx_lookup(const char *domain, int port, struct route_mx_result *res);

/* True for the statuses that must not be retried (a 5xx for the client). */
bool route_mx_permanent(enum route_mx_status status);

/* "ok", "nxdomain", "null-mx", "nodata", "tempfail". */
const char *route_mx_status_name(enum route_mx_status status);

/* ---- the pure parts, exposed for the unit tests and the fuzzer ---- */

/* One MX record; HOST "" is the root (the target of a null MX). */
struct route_mx_record {
    int preference;
    char host[ROUTE_MX_HOST_MAX];
};

/* Parses a DNS response MSG of LEN bytes (as res_nquery returns it) to an
 * MX question.  Stores up to MAX MX records of the question name (or of
 * the end of its CNAME chain in the answer) in OUT, lower-cased without
 * the trailing dot, and their number in *N; records with a host name that
 * is not a plain host name are skipped.  Returns ROUTE_MX_OK (with *N == 0
 * when there is no MX: the implicit MX applies), ROUTE_MX_NXDOMAIN for
 * rcode NXDOMAIN, ROUTE_MX_TEMPFAIL for any other rcode or a malformed
 * message.  Never reads outside MSG. */
enum route_mx_status route_mx_parse_answer(const unsigned char *msg, size_t len,
                                           struct route_mx_record *out, size_t max, size_t *n);

/* True when the records say "no mail" (RFC 7505): there is at least one
 * and every one has the root as its host. */
bool route_mx_is_null(const struct route_mx_record *recs, size_t n);

/* A uniform random number in [0, BOUND), BOUND > 0. */
typedef uint32_t (*route_mx_rand_fn)(void *ctx, uint32_t bound);

/* Orders RECS in place: root hosts dropped, preference ascending, equal
 * preferences shuffled with RND (NULL: the system's random source), a
 * host repeated keeps its first place, at most ROUTE_MX_MAX_HOSTS kept.
 * Returns the new count. */
size_t route_mx_order(struct route_mx_record *recs, size_t n, route_mx_rand_fn rnd, void *ctx);

/* If DOMAIN is an address literal ("[192.0.2.1]", "[IPv6:2001:db8::1]"),
 * fills *T (port PORT) and returns 1; 0 if it is not bracketed; -1 if it
 * is bracketed but not a valid literal. */
int route_mx_literal(const char *domain, int port, struct route_mx_target *t);

#endif
