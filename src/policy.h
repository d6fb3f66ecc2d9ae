/*
 * policy: pure lookups over a config snapshot — which sender group a client
 * falls in, whether a recipient domain is accepted, which destination entry
 * and which route govern a recipient domain.  No I/O, no allocation, no
 * state: every function answers from its arguments alone.
 */
#ifndef TLSGATE_POLICY_H
#define TLSGATE_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "config.h"

/* True if SA (AF_INET or AF_INET6; an IPv4-mapped IPv6 address counts as
 * IPv4) lies in network N. */
bool policy_cidr_match(const struct cidr *n, const struct sockaddr *sa);

/* PATTERN is an exact name or a ".suffix"; NAME matches ".example.com" when
 * it ends in ".example.com" (not "example.com" itself).  Case-insensitive;
 * one trailing dot on NAME is ignored. */
bool policy_name_match(const char *pattern, const char *name);

/* True if SA or the forward-confirmed host name RDNS (NULL when there is
 * none) matches list L.  When it matches and WHY is not NULL, the matching
 * entry is written to WHY as written in the config ("198.51.100.0/24",
 * ".corp.example.test"). */
bool policy_matchlist(const struct matchlist *l, const struct sockaddr *sa, const char *rdns,
                      char *why, size_t whylen);

/* The first sender group in file order that applies to LISTENER (its
 * "listener =" is that name or unset; with LISTENER NULL only unset ones)
 * and matches the client.  A group named "ALL" is never matched by its
 * list: when nothing matches, the answer is the "ALL" group that applies to
 * LISTENER (one scoped to it preferred over an unscoped one) and WHY is
 * "ALL"; NULL means the implicit group ALL (action accept, the listener's
 * TLS level). */
const struct conf_sendergroup *policy_sendergroup(const struct config *c, const char *listener,
                                                  const struct sockaddr *sa, const char *rdns,
                                                  char *why, size_t whylen);

/* The inbound TLS level for a client of listener L in group SG (may be NULL). */
enum tls_in_level policy_tls_in(const struct conf_listener *l, const struct conf_sendergroup *sg);

/* True if DOMAIN is in L's accept_domains (exact or ".suffix" entry). */
bool policy_domain_accepted(const struct conf_listener *l, const char *domain);

/* The destination entry for DOMAIN: exact entry, else the longest matching
 * ".parent" entry, else "default"; NULL if none of them exists (then the
 * level is preferred). */
const struct conf_destination *policy_destination(const struct config *c, const char *domain);

/* The outbound level for DOMAIN over ROUTE (may be NULL): the route's own
 * level wins, then the destination entry, else preferred. */
enum tls_out_level policy_tls_out(const struct config *c, const struct conf_route *route,
                                  const char *domain);

/* The static route whose "domains" list covers DOMAIN: exact entries first,
 * then the longest ".suffix", then "*"; NULL means MX delivery. */
const struct conf_route *policy_route_for_domain(const struct config *c, const char *domain);

#endif
