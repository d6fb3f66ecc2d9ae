/*
 * cert_p12: `tlsgate cert import | export` — PKCS#12 files in the modern
 * form (AES-256, PBKDF2, SHA-256 MAC) and, on import, the legacy forms
 * Windows and Exchange write (3DES, RC2-40).
 */
#ifndef TLSGATE_CERT_P12_H
#define TLSGATE_CERT_P12_H

#include "cert_util.h"

/* Each returns an exit code (CERT_EXIT_...). */
int cert_p12_import(const struct cert_opts *o, struct cert_env *env);
int cert_p12_export(const struct cert_opts *o, struct cert_env *env);

#endif
