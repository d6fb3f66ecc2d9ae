/*
 * cert: the `tlsgate cert ...` and `tlsgate trust ...` commands (SPEC
 * section 6) — the ESA certconfig workflow on the command line — and the
 * two certificate checks the running gateway asks for: expiry warnings and
 * the listener hostname mismatch.  The commands are a tool of their own
 * over the store on disk (certs_dir): they never touch a running gateway,
 * which picks up their work on SIGHUP.
 */
#ifndef TLSGATE_CERT_H
#define TLSGATE_CERT_H

#include <stdbool.h>

#include "config.h"

/* `tlsgate cert SUBCOMMAND ...` and `tlsgate trust SUBCOMMAND ...`: ARGV[0]
 * is "cert" / "trust", the rest the subcommand and its options (including
 * -c FILE / --certs-dir DIR, which find the store).  Returns the exit code:
 * 0 success, 1 the operation failed, 2 usage error. */
int cert_main(int argc, char **argv);
int trust_main(int argc, char **argv);

/* Calls WARN once for each certificate that a listener of C uses (its leaf
 * and every certificate of its chain in cert.pem; each store name once)
 * and that expires within 30 days or has expired: NAME is the store name,
 * SUBJECT the certificate's subject (RFC 2253), DAYS_LEFT whole days until
 * notAfter (negative once expired), NOT_AFTER "2027-01-02 03:04:05 UTC".
 * Returns the number of calls.  Reads files only; safe at start-up and from
 * a timer (it does not block on anything but the local disk). */
int cert_expiry_scan(const struct config *c,
                     void (*warn)(void *arg, const char *name, const char *subject, long days_left,
                                  const char *not_after),
                     void *arg);

/* True when the certificate CERTS_DIR/NAME/cert.pem covers HOSTNAME (a DNS
 * name or an IP address) by the rules the gateway's clients use: DNS and IP
 * subjectAltNames, the CN only without DNS SANs, a wildcard only as the
 * whole left-most label.  False as well when it cannot be read. */
bool cert_name_matches_host(const char *certs_dir, const char *name, const char *hostname);

#endif
