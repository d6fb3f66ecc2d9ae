/*
 * cert_make: `tlsgate cert create | csr | renew`.  Like ESA's certconfig, a
 * new certificate is a private key, a self-signed certificate (so the
 * listener can serve TLS at once) and a CSR for a CA.  Must not: replace an
 * existing name without --force, or replace a CA-signed certificate with a
 * self-signed one on renew (the new key waits in key.pending.pem until the
 * signed certificate is installed).
 */
#include "cert_make.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>

#include "cert_x509.h"

#define CERT_MAKE_DEFAULT_KEY  "rsa:2048"
#define CERT_MAKE_DEFAULT_DAYS 365
#define CERT_MAKE_SANS_MAX     8192

/* The CN: --cn, else the hostname of the first listener that uses NAME. */
static const char *cert_make_cn(const struct cert_opts *o, const struct cert_env *env,
                                const char *name)
{
    if (o->cn != NULL)
        return o->cn;
    for (size_t i = 0; i < env->nusers; i++)
        if (strcmp(env->users[i].certificate, name) == 0 && env->users[i].hostname)
            return env->users[i].hostname;
    return NULL;
}

/* "DNS:a,IP:b" from --san (or the CN alone) into BUF; -1 after printing
 * why. */
static int cert_make_sans(const struct cert_opts *o, const char *cn, char *buf, size_t len)
{
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < o->nsans; i++) {
        char one[300];
        if (cert_x509_san_normalize(o->sans[i], one, sizeof(one)) < 0)
            return cert_util_fail("--san '%s' is neither a DNS name nor an IP address", o->sans[i]),
                   -1;
        int n = snprintf(buf + used, len - used, "%s%s", used ? "," : "", one);
        if (n < 0 || (size_t)n >= len - used)
            return cert_util_fail("too many --san names"), -1;
        used += (size_t)n;
    }
    if (o->nsans == 0 && cert_x509_san_normalize(cn, buf, len) < 0) {
        buf[0] = '\0';
        cert_util_warn("the CN '%s' is not a host name, so the certificate has no "
                       "subjectAltName; clients match names only there (give --san)",
                       cn);
    }
    return 0;
}

static X509_NAME *cert_make_subject(const struct cert_opts *o, const char *cn)
{
    const struct cert_x509_subject s = {.cn = cn,
                                        .org = o->org,
                                        .ou = o->ou,
                                        .locality = o->locality,
                                        .state = o->state,
                                        .country = o->country,
                                        .email = o->email};
    char err[300];
    X509_NAME *n = cert_x509_make_name(&s, err, sizeof(err));
    if (n == NULL)
        cert_util_fail("%s", err);
    return n;
}

/* Writes what is given of KEY (as KEYFILE), CERT and REQ into NAME's
 * directory, making it (0700) first.  0, or -1 after printing why. */
static int cert_make_write(const struct cert_env *env, const char *name, EVP_PKEY *key,
                           const char *keyfile, X509 *cert, X509_REQ *req)
{
    char path[CERT_PATH_MAX], err[CERT_PATH_MAX + 200];
    if (cert_util_mkdir(env->certs_dir, 0755, err, sizeof(err)) < 0 ||
        cert_util_mkdir(cert_util_path(path, sizeof(path), env, name, NULL), 0700, err,
                        sizeof(err)) < 0)
        return cert_util_fail("%s", err), -1;
    if (key && cert_util_write_key(cert_util_path(path, sizeof(path), env, name, keyfile), key, err,
                                   sizeof(err)) < 0)
        return cert_util_fail("%s", err), -1;
    int rc = 0;
    if (cert != NULL) {
        STACK_OF(X509) *one = sk_X509_new_null();
        rc = one && sk_X509_push(one, cert) ? 0 : -1;
        if (rc == 0)
            rc = cert_util_write_certs(cert_util_path(path, sizeof(path), env, name, "cert.pem"),
                                       one, err, sizeof(err));
        sk_X509_free(one);
    }
    if (rc == 0 && req)
        rc = cert_util_write_req(cert_util_path(path, sizeof(path), env, name, "csr.pem"), req, err,
                                 sizeof(err));
    return rc == 0 ? 0 : (cert_util_fail("%s", err), -1);
}

/* Removes NAME/FILE if it is there (a stale pending key, a stale CSR). */
static void cert_make_remove(const struct cert_env *env, const char *name, const char *file)
{
    char path[CERT_PATH_MAX];
    unlink(cert_util_path(path, sizeof(path), env, name, file));
}

static void cert_make_report(const struct cert_env *env, const char *name, EVP_PKEY *key, X509 *x,
                             const char *what)
{
    char type[64], when[64], names[2048], dn[1024];
    printf("%s %s in %s/%s:\n", what, name, env->certs_dir, name);
    printf("  key.pem   %s private key (mode 0600)\n", cert_x509_key_type(key, type, sizeof(type)));
    printf("  cert.pem  self-signed %s, valid until %s (%ld days)\n",
           cert_x509_dn(X509_get_subject_name(x), dn, sizeof(dn)),
           cert_x509_time(X509_get0_notAfter(x), false, when, sizeof(when)),
           cert_x509_days_left(x));
    printf("  csr.pem   certificate signing request for a CA\n");
    printf("names: %s\n", cert_x509_sans(x, ", ", names, sizeof(names))[0] ? names : "(none)");
    printf("next: send the CSR to your CA (tlsgate cert csr %s), then install what it signs:\n"
           "      tlsgate cert install %s SIGNED.pem --chain INTERMEDIATES.pem\n",
           name, name);
}

/* Refuses when NAME exists and --force is not given. */
static int cert_make_check_free(const struct cert_opts *o, const struct cert_env *env,
                                const char *name)
{
    char key[CERT_PATH_MAX], cert[CERT_PATH_MAX];
    cert_util_path(key, sizeof(key), env, name, "key.pem");
    cert_util_path(cert, sizeof(cert), env, name, "cert.pem");
    if (o->force || (!cert_util_exists(key) && !cert_util_exists(cert)))
        return 0;
    return cert_util_fail("certificate %s already exists in %s; give --force to replace it (its "
                          "private key is then lost)",
                          name, env->certs_dir),
           -1;
}

/* Makes key, self-signed certificate and CSR for SUBJECT and SANS. */
static int cert_make_all(const struct cert_opts *o, struct cert_env *env, const char *name,
                         X509_NAME *subject, const char *sans)
{
    char err[300];
    const char *type = o->key_type ? o->key_type : CERT_MAKE_DEFAULT_KEY;
    EVP_PKEY *key = cert_x509_new_key(type);
    X509 *x =
        key ? cert_x509_make_cert(key, subject, sans, o->days ? o->days : CERT_MAKE_DEFAULT_DAYS,
                                  err, sizeof(err))
            : NULL;
    X509_REQ *req = x ? cert_x509_make_req(key, subject, sans, err, sizeof(err)) : NULL;
    int rc = CERT_EXIT_FAIL;
    if (key == NULL)
        cert_util_fail("cannot make a %s key", type);
    else if (req == NULL)
        cert_util_fail("%s", err);
    else if (cert_make_write(env, name, key, "key.pem", x, req) == 0)
        rc = CERT_EXIT_OK;
    if (rc == CERT_EXIT_OK) {
        cert_make_remove(env, name, "key.pending.pem");
        cert_make_report(env, name, key, x, "created certificate");
        cert_util_warn_mismatch(env, name, x);
    }
    X509_REQ_free(req);
    X509_free(x);
    EVP_PKEY_free(key);
    return rc;
}

int cert_make_create(const struct cert_opts *o, struct cert_env *env)
{
    const char *name = o->pos[0];
    if (!cert_util_check_name(name))
        return CERT_EXIT_USAGE;
    const char *cn = cert_make_cn(o, env, name);
    if (cn == NULL || cn[0] == '\0') {
        fprintf(stderr,
                "tlsgate cert: create %s needs --cn (no listener uses %s, so there is "
                "no hostname to take it from)\n",
                name, name);
        return CERT_EXIT_USAGE;
    }
    char *sans = malloc(CERT_MAKE_SANS_MAX);
    X509_NAME *subject = NULL;
    int rc = CERT_EXIT_FAIL;
    if (sans && cert_make_sans(o, cn, sans, CERT_MAKE_SANS_MAX) == 0 &&
        (subject = cert_make_subject(o, cn)) != NULL && cert_make_check_free(o, env, name) == 0)
        rc = cert_make_all(o, env, name, subject, sans);
    X509_NAME_free(subject);
    free(sans);
    return rc;
}

/* ---- csr ---- */

/* The CSR at PATH when it is for KEY; NULL otherwise. */
static X509_REQ *cert_make_stored_req(const char *path, EVP_PKEY *key)
{
    FILE *f = fopen(path, "r");
    X509_REQ *req = f ? PEM_read_X509_REQ(f, NULL, NULL, NULL) : NULL;
    if (f)
        fclose(f);
    EVP_PKEY *pub = req ? X509_REQ_get0_pubkey(req) : NULL;
    if (req && (pub == NULL || EVP_PKEY_eq(pub, key) != 1)) {
        X509_REQ_free(req);
        req = NULL;
    }
    ERR_clear_error();
    return req;
}

/* The key a new CSR is for: the pending one when there is one. */
static EVP_PKEY *cert_make_csr_key(const struct cert_env *env, const char *name, EVP_PKEY *key)
{
    char path[CERT_PATH_MAX], err[CERT_PATH_MAX + 200];
    cert_util_path(path, sizeof(path), env, name, "key.pending.pem");
    if (!cert_util_exists(path))
        return key;
    EVP_PKEY *pending = cert_util_read_key(path, NULL, err, sizeof(err));
    if (pending == NULL) {
        cert_util_warn("%s; using key.pem", err);
        return key;
    }
    EVP_PKEY_free(key);
    return pending;
}

int cert_make_csr(const struct cert_opts *o, struct cert_env *env)
{
    const char *name = o->pos[0];
    EVP_PKEY *key = NULL;
    STACK_OF(X509) *chain = NULL;
    if (cert_util_load_entry(env, name, &key, &chain) < 0)
        return CERT_EXIT_FAIL;
    key = cert_make_csr_key(env, name, key);
    char path[CERT_PATH_MAX], sans[CERT_MAKE_SANS_MAX], err[CERT_PATH_MAX + 200];
    cert_util_path(path, sizeof(path), env, name, "csr.pem");
    X509_REQ *req = cert_make_stored_req(path, key);
    X509 *leaf = sk_X509_value(chain, 0);
    int rc = CERT_EXIT_OK;
    if (req == NULL) {
        cert_x509_san_spec(leaf, sans, sizeof(sans));
        req = cert_x509_make_req(key, X509_get_subject_name(leaf), sans, err, sizeof(err));
        if (req == NULL || cert_util_write_req(path, req, err, sizeof(err)) < 0)
            rc = cert_util_fail("%s", err);
        else
            fprintf(stderr, "note: made a new CSR from the certificate's subject and names (%s)\n",
                    path);
    }
    if (rc == CERT_EXIT_OK && !PEM_write_X509_REQ(stdout, req))
        rc = cert_util_fail("cannot write the CSR to standard output");
    X509_REQ_free(req);
    EVP_PKEY_free(key);
    sk_X509_pop_free(chain, X509_free);
    return rc;
}

/* ---- renew ---- */

/* Renew on the same key: a new CSR, and a re-signed self-signed
 * certificate; a CA-signed certificate stays. */
static int cert_make_renew_same(const struct cert_opts *o, struct cert_env *env, const char *name,
                                EVP_PKEY *key, X509 *leaf, const char *sans)
{
    char err[300], when[64];
    bool self = cert_x509_self_signed(leaf);
    const X509_NAME *subject = X509_get_subject_name(leaf);
    X509 *x =
        self ? cert_x509_make_cert(key, subject, sans, o->days ? o->days : CERT_MAKE_DEFAULT_DAYS,
                                   err, sizeof(err))
             : NULL;
    X509_REQ *req =
        self && x == NULL ? NULL : cert_x509_make_req(key, subject, sans, err, sizeof(err));
    int rc = req == NULL                                          ? cert_util_fail("%s", err)
             : cert_make_write(env, name, NULL, NULL, x, req) < 0 ? CERT_EXIT_FAIL
                                                                  : CERT_EXIT_OK;
    if (rc == CERT_EXIT_OK && self)
        cert_make_report(env, name, key, x, "renewed (same key) certificate");
    else if (rc == CERT_EXIT_OK)
        printf("new CSR for %s on the same key in %s/%s/csr.pem; the CA-signed certificate stays "
               "in use (valid until %s, %ld days) until you install the renewed one with\n"
               "  tlsgate cert install %s SIGNED.pem\n",
               name, env->certs_dir, name,
               cert_x509_time(X509_get0_notAfter(leaf), false, when, sizeof(when)),
               cert_x509_days_left(leaf), name);
    X509_free(x);
    X509_REQ_free(req);
    return rc;
}

/* Renew with a new key: replaces a self-signed certificate at once; for a
 * CA-signed one the key waits in key.pending.pem with its CSR. */
static int cert_make_renew_new(const struct cert_opts *o, struct cert_env *env, const char *name,
                               EVP_PKEY *old, X509 *leaf, const char *sans)
{
    char type[64], err[300];
    const char *t = o->key_type ? o->key_type : cert_x509_key_type(old, type, sizeof(type));
    EVP_PKEY *key = cert_x509_new_key(t);
    if (key == NULL)
        return cert_util_fail("cannot make a %s key (give --key)", t);
    const X509_NAME *subject = X509_get_subject_name(leaf);
    bool self = cert_x509_self_signed(leaf);
    X509 *x =
        self ? cert_x509_make_cert(key, subject, sans, o->days ? o->days : CERT_MAKE_DEFAULT_DAYS,
                                   err, sizeof(err))
             : NULL;
    X509_REQ *req =
        self && x == NULL ? NULL : cert_x509_make_req(key, subject, sans, err, sizeof(err));
    int rc = req == NULL ? cert_util_fail("%s", err)
             : cert_make_write(env, name, key, self ? "key.pem" : "key.pending.pem", x, req) < 0
                 ? CERT_EXIT_FAIL
                 : CERT_EXIT_OK;
    if (rc == CERT_EXIT_OK && self) {
        cert_make_remove(env, name, "key.pending.pem");
        cert_make_report(env, name, key, x, "renewed (new key) certificate");
    } else if (rc == CERT_EXIT_OK) {
        printf("new %s key for %s waits in %s/%s/key.pending.pem (mode 0600), its CSR in "
               "csr.pem; the current key and CA-signed certificate stay in use until\n"
               "  tlsgate cert install %s SIGNED.pem\n"
               "installs the certificate signed for the new key\n",
               cert_x509_key_type(key, type, sizeof(type)), name, env->certs_dir, name, name);
    }
    X509_free(x);
    X509_REQ_free(req);
    EVP_PKEY_free(key);
    return rc;
}

int cert_make_renew(const struct cert_opts *o, struct cert_env *env)
{
    const char *name = o->pos[0];
    if (o->key_type != NULL && !o->new_key) {
        fprintf(stderr, "tlsgate cert: renew --key needs --new-key (the same key keeps its "
                        "type)\n");
        return CERT_EXIT_USAGE;
    }
    EVP_PKEY *key = NULL;
    STACK_OF(X509) *chain = NULL;
    if (cert_util_load_entry(env, name, &key, &chain) < 0)
        return CERT_EXIT_FAIL;
    X509 *leaf = sk_X509_value(chain, 0);
    char sans[CERT_MAKE_SANS_MAX];
    cert_x509_san_spec(leaf, sans, sizeof(sans));
    int rc;
    if (!cert_x509_key_matches(leaf, key))
        rc = cert_util_fail("the key of %s does not match its certificate; make a new one with "
                            "tlsgate cert create %s --force",
                            name, name);
    else if (o->new_key)
        rc = cert_make_renew_new(o, env, name, key, leaf, sans);
    else
        rc = cert_make_renew_same(o, env, name, key, leaf, sans);
    if (rc == CERT_EXIT_OK)
        cert_util_warn_mismatch(env, name, leaf);
    EVP_PKEY_free(key);
    sk_X509_pop_free(chain, X509_free);
    return rc;
}
