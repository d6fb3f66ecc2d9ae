/*
 * cert_install: `tlsgate cert install NAME SIGNED.pem [--chain FILE]` — a
 * CA-signed certificate and its chain into the store, checked against the
 * stored key and the trust store.
 */
#ifndef TLSGATE_CERT_INSTALL_H
#define TLSGATE_CERT_INSTALL_H

#include "cert_util.h"

/* Returns an exit code (CERT_EXIT_...). */
int cert_install_run(const struct cert_opts *o, struct cert_env *env);

/* Prints the standing of CHAIN (leaf first) against ENV's trust store as
 * "outcome: ..." and returns its status (enum cert_x509_chain). */
int cert_install_outcome(const struct cert_env *env, STACK_OF(X509) * chain);

#endif
