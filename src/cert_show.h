/*
 * cert_show: `tlsgate cert list | check` — what the store holds, who uses it,
 * and whether a certificate is fit to serve (key, chain, names, expiry).
 */
#ifndef TLSGATE_CERT_SHOW_H
#define TLSGATE_CERT_SHOW_H

#include "cert_util.h"

/* Each returns an exit code (CERT_EXIT_...); check returns
 * CERT_EXIT_FAIL when it finds a problem. */
int cert_show_list(const struct cert_opts *o, struct cert_env *env);
int cert_show_check(const struct cert_opts *o, struct cert_env *env);

#endif
