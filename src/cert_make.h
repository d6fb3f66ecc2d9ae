/*
 * cert_make: `tlsgate cert create | csr | renew` — new keys, self-signed
 * certificates and CSRs, as ESA's certconfig makes them.
 */
#ifndef TLSGATE_CERT_MAKE_H
#define TLSGATE_CERT_MAKE_H

#include "cert_util.h"

/* Each returns an exit code (CERT_EXIT_...); O holds the parsed command
 * line, ENV the store. */
int cert_make_create(const struct cert_opts *o, struct cert_env *env);
int cert_make_csr(const struct cert_opts *o, struct cert_env *env);
int cert_make_renew(const struct cert_opts *o, struct cert_env *env);

#endif
