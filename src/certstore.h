/*
 * certstore: the certificate store on disk (SPEC section 6) and the SSL_CTX
 * objects made from it.  Layout: CERTS_DIR/NAME/{key.pem (0600), cert.pem
 * (leaf then chain), csr.pem}, trust anchors in CERTS_DIR/trust/.  Only
 * this module and tls include OpenSSL headers.  Must not: do network I/O or
 * log; callers turn the error text into a log line or a message.
 */
#ifndef TLSGATE_CERTSTORE_H
#define TLSGATE_CERTSTORE_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"

struct ssl_ctx_st;

/* A server context for listener L of C: its certificate and key, the
 * protocol floor, cipher lists, automatic DH of at least 2048 bits, no
 * client-initiated renegotiation, and the trust store for client
 * certificates.  NULL with the reason in ERR. */
struct ssl_ctx_st *certstore_server_ctx(const struct config *c, const struct conf_listener *l,
                                        char *err, size_t errlen);

/* A client context for delivery: the protocol floor and cipher lists, DH
 * of at least 2048 bits, and the trust store (certs_dir/trust plus the
 * system store when system_trust = yes).  The handshake never fails on
 * verification: the verify levels judge the result afterwards. */
struct ssl_ctx_st *certstore_client_ctx(const struct config *c, char *err, size_t errlen);

/* Drops one reference to CTX (NULL is fine). */
void certstore_ctx_free(struct ssl_ctx_st *ctx);

/* True if CERTS_DIR/NAME holds cert.pem and key.pem. */
bool certstore_exists(const char *certs_dir, const char *name);

/* Creates CERTS_DIR/NAME with a new EC P-256 key (0600) and a self-signed
 * certificate for HOSTNAME valid 365 days.  0, or -1 with ERR set. */
int certstore_make_demo(const char *certs_dir, const char *name, const char *hostname, char *err,
                        size_t errlen);

#endif
