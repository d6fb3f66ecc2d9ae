/*
 * cert_trust: `tlsgate trust add | list | remove` — the trust anchors, one PEM
 * file per certificate in CERTS_DIR/trust.
 */
#ifndef TLSGATE_CERT_TRUST_H
#define TLSGATE_CERT_TRUST_H

#include "cert_util.h"

/* Each returns an exit code (CERT_EXIT_...). */
int cert_trust_add(const struct cert_opts *o, struct cert_env *env);
int cert_trust_list(const struct cert_opts *o, struct cert_env *env);
int cert_trust_remove(const struct cert_opts *o, struct cert_env *env);

/* A safe file stem for X from its CN (else its subject) into BUF:
 * letters, digits, '.', '_' and '-' only, '*' as "wildcard". */
const char *cert_trust_file_stem(X509 *x, char *buf, size_t len);

/* The file in ENV's trust directory that already holds X, into BUF; false
 * when none does. */
bool cert_trust_find(const struct cert_env *env, X509 *x, char *buf, size_t len);

/* Stores X as CERTS_DIR/trust/STEM.pem (STEM NULL: from its CN, with -2,
 * -3 ... when another certificate has the name).  With an explicit STEM an
 * existing different file is replaced only with FORCE.  PATH gets the file.
 * 0, or -1 after printing why. */
int cert_trust_store(const struct cert_env *env, X509 *x, const char *stem, bool force, char *path,
                     size_t pathlen);

#endif
