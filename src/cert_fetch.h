/*
 * cert_fetch: `tlsgate trust fetch HOST[:PORT] [--starttls smtp] [--implicit]`
 * — connects (blocking sockets with timeouts: a command-line tool, not the
 * event loop), takes the chain the server presents and stores each
 * certificate as a trust anchor named by its CN.
 */
#ifndef TLSGATE_CERT_FETCH_H
#define TLSGATE_CERT_FETCH_H

#include "cert_util.h"

/* Returns an exit code (CERT_EXIT_...). */
int cert_fetch_run(const struct cert_opts *o, struct cert_env *env);

#endif
