/*
 * proxy: the pure parser of the PROXY protocol header that a load balancer
 * (HAProxy, a cloud TCP balancer) sends before the SMTP bytes to pass on the
 * original client address — HAProxy's doc/proxy-protocol.txt, version 1
 * (text) and version 2 (binary).  No I/O, no allocation, no state; it never
 * reads past the length it is given.  It only parses: deciding whether a
 * header is expected and acting on it is the inbound session's job.
 *
 * The contract of a listener with proxy_protocol = v1 | v2 | any (SPEC 4, 9):
 *
 * - A header is expected only from a peer whose address (the socket's peer,
 *   an IPv4-mapped IPv6 address counting as IPv4) matches the listener's
 *   proxy_from, i.e. policy_matchlist(&l->proxy_from, peer, NULL, ...):
 *   names in proxy_from never match, since the balancer's reverse DNS is
 *   not looked up.  A peer not in proxy_from is an ordinary, direct SMTP
 *   client: no header is expected and its first bytes are SMTP.
 * - From a trusted peer, nothing is sent (no greeting) until the header is
 *   complete: the session reads, calls proxy_parse on everything received so
 *   far, and waits while it returns 0 (at most PROXY_HEADER_MAX bytes and the
 *   listener's command_timeout).  The bytes after the header are the start
 *   of the SMTP session and must be kept, not dropped.
 * - If the header is invalid (-1), or the peer closes or times out before it
 *   is complete, the connection is closed without any SMTP reply (the peer
 *   is a balancer, not an SMTP client) and one line is logged:
 *     Warning: listener NAME: invalid PROXY header from IP: REASON
 *   with IP the balancer's address and REASON proxy_info.error ("timeout"
 *   or "connection closed" for the other two cases).
 * - A valid header with local = false replaces the client address for
 *   everything that follows: the "New SMTP ICID ... address IP" line, reverse
 *   DNS, sender-group matching, the per-IP connection limit and the
 *   Received header.  The "(IP)" after the interface label stays the
 *   listener's own socket address.  With local = true (v2 LOCAL, e.g. a
 *   health check; v1 UNKNOWN; v2 UNSPEC) the real peer is kept.
 */
#ifndef TLSGATE_PROXY_H
#define TLSGATE_PROXY_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "config.h"

#define PROXY_V1_MAX     107 /* a whole v1 line with its CRLF */
#define PROXY_V2_MAX     536 /* 16-byte v2 header + address block + TLVs */
#define PROXY_HEADER_MAX 536 /* the most proxy_parse may ever need */

struct proxy_info {
    bool local;                       /* v2 LOCAL or UNSPEC, v1 UNKNOWN: keep the real peer */
    struct sockaddr_storage src, dst; /* AF_INET or AF_INET6 with the port,
                                         both zero when LOCAL */
    const char *error;                /* -1: a short static reason, else NULL */
};

/* Parses the PROXY header at the start of BUF (LEN bytes) as MODE allows it
 * (PROXY_V1 or PROXY_V2 only that version, PROXY_ANY either; PROXY_NO none)
 * and fills OUT.  Returns the header's length in bytes (> 0; the bytes after
 * it are the peer's payload), 0 when the bytes so far are the start of a
 * header and more are needed (every proper prefix of a valid header gives
 * 0, LEN 0 included), or -1 with OUT->error set when it can never become a
 * valid header.  Stable: once it returns -1 or N > 0 for some bytes,
 * appending bytes never changes the answer. */
int proxy_parse(const unsigned char *buf, size_t len, enum proxy_mode mode, struct proxy_info *out);

#endif
