/*
 * cert_p12: `tlsgate cert import NAME FILE.p12` and `cert export NAME
 * FILE.p12`.  Export writes what `openssl pkcs12` writes by default
 * (AES-256-CBC with PBKDF2, SHA-256 MAC), or with --legacy 3DES and a SHA-1
 * MAC for old Windows.  Import reads both and the RC2-40 files Windows and
 * Exchange write, loading OpenSSL's legacy provider only when needed.
 * Must not: take a password from the command line, print it or the key,
 * or write a PKCS#12 file readable by others.
 */
#include "cert_p12.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pkcs12.h>
#include <openssl/provider.h>

#include "cert_install.h"
#include "cert_x509.h"

#define CERT_P12_PASS_MAX 1024

/* ---- import ---- */

/* FILE as PKCS#12; NULL after printing why not. */
static PKCS12 *cert_p12_read(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return cert_util_fail("cannot read %s: %s", path, strerror(errno)), NULL;
    PKCS12 *p12 = d2i_PKCS12_fp(f, NULL);
    fclose(f);
    ERR_clear_error();
    if (p12 != NULL)
        return p12;
    char err[CERT_PATH_MAX + 200];
    STACK_OF(X509) *certs = cert_util_read_certs(path, err, sizeof(err));
    if (certs != NULL)
        cert_util_fail("%s is not a PKCS#12 file: it holds certificates (PEM or DER); install "
                       "them with tlsgate cert install",
                       path);
    else
        cert_util_fail("%s is not a PKCS#12 file (nor a PEM or DER certificate)", path);
    sk_X509_pop_free(certs, X509_free);
    return NULL;
}

/* Checks PASS against the integrity MAC.  *USE becomes the password to
 * decrypt with (NULL for the "no password" some tools write).  -1 after
 * printing "wrong password". */
static int cert_p12_check_mac(PKCS12 *p12, const char *path, const char *pass, const char **use)
{
    *use = pass;
    if (!PKCS12_mac_present(p12) || PKCS12_verify_mac(p12, pass, -1))
        return 0;
    if (pass[0] == '\0' && PKCS12_verify_mac(p12, NULL, 0)) {
        *use = NULL;
        return 0;
    }
    ERR_clear_error();
    return cert_util_fail("wrong password for %s (its integrity check fails)", path), -1;
}

/* The encryption algorithm of the first encrypted part, e.g.
 * "pbeWithSHA1And40BitRC2-CBC", into BUF. */
static const char *cert_p12_algorithm(PKCS12 *p12, char *buf, size_t len)
{
    snprintf(buf, len, "an algorithm this OpenSSL lacks");
    STACK_OF(PKCS7) *safes = PKCS12_unpack_authsafes(p12);
    for (int i = 0; i < sk_PKCS7_num(safes); i++) {
        PKCS7 *p7 = sk_PKCS7_value(safes, i);
        if (OBJ_obj2nid(p7->type) == NID_pkcs7_encrypted && p7->d.encrypted &&
            p7->d.encrypted->enc_data && p7->d.encrypted->enc_data->algorithm) {
            OBJ_obj2txt(buf, (int)len, p7->d.encrypted->enc_data->algorithm->algorithm, 0);
            break;
        }
    }
    sk_PKCS7_pop_free(safes, PKCS7_free);
    ERR_clear_error();
    return buf;
}

/* The legacy provider (RC2, RC4, DES ...), loaded once, next to the
 * default one. */
static bool cert_p12_load_legacy(void)
{
    static OSSL_PROVIDER *legacy;
    if (legacy == NULL)
        legacy = OSSL_PROVIDER_try_load(NULL, "legacy", 1);
    ERR_clear_error();
    return legacy != NULL;
}

/* PKCS12_parse, once more with the legacy provider when the first try
 * fails on an algorithm.  0, or -1 after printing why. */
static int cert_p12_parse(PKCS12 *p12, const char *path, const char *pass, EVP_PKEY **key,
                          X509 **cert, STACK_OF(X509) * *ca)
{
    if (PKCS12_parse(p12, pass, key, cert, ca))
        return 0;
    ERR_clear_error();
    char alg[128];
    cert_p12_algorithm(p12, alg, sizeof(alg));
    if (!cert_p12_load_legacy())
        return cert_util_fail("%s is encrypted with %s, a legacy algorithm (older Windows and "
                              "Exchange exports); this OpenSSL cannot load its legacy provider "
                              "(legacy.so in %s): install it, or export the file again with "
                              "AES-256",
                              path, alg,
                              getenv("OPENSSL_MODULES") ? getenv("OPENSSL_MODULES")
                                                        : OPENSSL_info(OPENSSL_INFO_MODULES_DIR)),
               -1;
    if (PKCS12_parse(p12, pass, key, cert, ca)) {
        fprintf(stderr,
                "note: %s uses legacy encryption (%s); read with OpenSSL's legacy "
                "provider\n",
                path, alg);
        return 0;
    }
    char reason[200];
    return cert_util_fail("cannot decrypt %s: %s", path,
                          cert_util_ossl_reason(reason, sizeof(reason))[0] ? reason
                                                                           : "damaged file"),
           -1;
}

/* When PKCS12_parse found no certificate for the key (no localKeyID),
 * takes it from CA. */
static void cert_p12_take_leaf(EVP_PKEY *key, X509 **cert, STACK_OF(X509) * ca)
{
    for (int i = 0; *cert == NULL && i < sk_X509_num(ca); i++) {
        if (cert_x509_key_matches(sk_X509_value(ca, i), key))
            *cert = sk_X509_delete(ca, i);
    }
}

struct cert_p12_content {
    EVP_PKEY *key;
    X509 *cert;
    STACK_OF(X509) * ca;
    STACK_OF(X509) * chain; /* ordered, cert first */
};

static void cert_p12_content_free(struct cert_p12_content *c)
{
    EVP_PKEY_free(c->key);
    X509_free(c->cert);
    sk_X509_pop_free(c->ca, X509_free);
    sk_X509_pop_free(c->chain, X509_free);
}

/* Key, certificate and ordered chain of P12; -1 after printing why. */
static int cert_p12_content(PKCS12 *p12, const char *path, const char *pass,
                            struct cert_p12_content *c)
{
    const char *use;
    char err[1024];
    if (cert_p12_check_mac(p12, path, pass, &use) < 0 ||
        cert_p12_parse(p12, path, use, &c->key, &c->cert, &c->ca) < 0)
        return -1;
    if (c->key == NULL)
        return cert_util_fail("%s holds no private key; export it again with its private key",
                              path),
               -1;
    cert_p12_take_leaf(c->key, &c->cert, c->ca);
    if (c->cert == NULL)
        return cert_util_fail("%s holds no certificate for its private key", path), -1;
    if (!cert_x509_key_matches(c->cert, c->key))
        return cert_util_fail("the private key in %s does not match its certificate", path), -1;
    if (cert_x509_order(c->cert, c->ca, true, &c->chain, stdout, err, sizeof(err)) < 0)
        return cert_util_fail("%s", err), -1;
    return 0;
}

/* Refuses to replace NAME without --force. */
static int cert_p12_check_free(const struct cert_opts *o, const struct cert_env *env,
                               const char *name)
{
    char key[CERT_PATH_MAX], cert[CERT_PATH_MAX];
    cert_util_path(key, sizeof(key), env, name, "key.pem");
    cert_util_path(cert, sizeof(cert), env, name, "cert.pem");
    if (o->force || (!cert_util_exists(key) && !cert_util_exists(cert)))
        return 0;
    return cert_util_fail("certificate %s already exists in %s; give --force to replace it", name,
                          env->certs_dir),
           -1;
}

/* Writes the imported key and chain as NAME. */
static int cert_p12_store(const struct cert_env *env, const char *name, struct cert_p12_content *c)
{
    char path[CERT_PATH_MAX], err[CERT_PATH_MAX + 200];
    if (cert_util_mkdir(env->certs_dir, 0755, err, sizeof(err)) < 0 ||
        cert_util_mkdir(cert_util_path(path, sizeof(path), env, name, NULL), 0700, err,
                        sizeof(err)) < 0 ||
        cert_util_write_key(cert_util_path(path, sizeof(path), env, name, "key.pem"), c->key, err,
                            sizeof(err)) < 0 ||
        cert_util_write_certs(cert_util_path(path, sizeof(path), env, name, "cert.pem"), c->chain,
                              err, sizeof(err)) < 0)
        return cert_util_fail("%s", err), -1;
    /* a CSR or pending key of a previous key no longer applies */
    unlink(cert_util_path(path, sizeof(path), env, name, "csr.pem"));
    unlink(cert_util_path(path, sizeof(path), env, name, "key.pending.pem"));
    return 0;
}

static void cert_p12_import_report(const struct cert_env *env, const char *name,
                                   struct cert_p12_content *c)
{
    char dn[1024], type[64], when[64];
    printf("imported certificate %s into %s/%s:\n", name, env->certs_dir, name);
    printf("  subject:  %s\n", cert_x509_dn(X509_get_subject_name(c->cert), dn, sizeof(dn)));
    printf("  issuer:   %s\n", cert_x509_dn(X509_get_issuer_name(c->cert), dn, sizeof(dn)));
    printf("  key:      %s (key.pem, mode 0600)\n", cert_x509_key_type(c->key, type, sizeof(type)));
    printf("  expires:  %s (%ld days)\n",
           cert_x509_time(X509_get0_notAfter(c->cert), false, when, sizeof(when)),
           cert_x509_days_left(c->cert));
    printf("  chain:    %d certificate(s) after the leaf\n", sk_X509_num(c->chain) - 1);
    cert_install_outcome(env, c->chain);
    if (cert_x509_expired(c->cert))
        cert_util_warn("the imported certificate has expired");
    cert_util_warn_mismatch(env, name, c->cert);
}

int cert_p12_import(const struct cert_opts *o, struct cert_env *env)
{
    const char *name = o->pos[0], *path = o->pos[1];
    if (!cert_util_check_name(name))
        return CERT_EXIT_USAGE;
    if (cert_p12_check_free(o, env, name) < 0)
        return CERT_EXIT_FAIL;
    PKCS12 *p12 = cert_p12_read(path);
    if (p12 == NULL)
        return CERT_EXIT_FAIL;
    char pass[CERT_P12_PASS_MAX] = "", prompt[CERT_PATH_MAX + 32];
    snprintf(prompt, sizeof(prompt), "Password for %s: ", path);
    struct cert_p12_content c = {0};
    int rc = CERT_EXIT_FAIL;
    if (cert_util_password(o, prompt, false, pass, sizeof(pass)) == 0 &&
        cert_p12_content(p12, path, pass, &c) == 0 && cert_p12_store(env, name, &c) == 0) {
        cert_p12_import_report(env, name, &c);
        rc = CERT_EXIT_OK;
    }
    OPENSSL_cleanse(pass, sizeof(pass));
    cert_p12_content_free(&c);
    PKCS12_free(p12);
    return rc;
}

/* ---- export ---- */

/* The PKCS#12 of KEY and CHAIN under PASS, DER-encoded into *OUT. */
static int cert_p12_build(const char *name, EVP_PKEY *key, STACK_OF(X509) * chain, const char *pass,
                          bool legacy, unsigned char **out)
{
    int nid = legacy ? NID_pbe_WithSHA1And3_Key_TripleDES_CBC : NID_aes_256_cbc;
    STACK_OF(X509) *ca = sk_X509_new_null();
    for (int i = 1; ca && i < sk_X509_num(chain); i++)
        sk_X509_push(ca, sk_X509_value(chain, i));
    PKCS12 *p12 = ca ? PKCS12_create(pass, name, key, sk_X509_value(chain, 0), ca, nid, nid,
                                     PKCS12_DEFAULT_ITER, -1, 0)
                     : NULL;
    int len = -1;
    if (p12 && PKCS12_set_mac(p12, pass, -1, NULL, 0, PKCS12_DEFAULT_ITER,
                              legacy ? EVP_sha1() : EVP_sha256()))
        len = i2d_PKCS12(p12, out);
    PKCS12_free(p12);
    sk_X509_free(ca);
    return len;
}

/* Refuses an existing PATH without --force, and an empty password. */
static int cert_p12_export_checks(const struct cert_opts *o, const char *path)
{
    if (!o->force && cert_util_exists(path))
        return cert_util_fail("%s exists; give --force to replace it", path), -1;
    return 0;
}

static void cert_p12_export_report(const char *name, const char *path, EVP_PKEY *key,
                                   STACK_OF(X509) * chain, bool legacy)
{
    char type[64], label[256];
    printf("exported %s to %s (mode 0600): %s key, certificate '%s' and %d chain "
           "certificate(s)\n",
           name, path, cert_x509_key_type(key, type, sizeof(type)),
           cert_x509_label(sk_X509_value(chain, 0), label, sizeof(label)), sk_X509_num(chain) - 1);
    if (legacy)
        printf("encryption: 3DES (pbeWithSHA1And3-KeyTripleDES-CBC), SHA-1 MAC: for old Windows "
               "only\n");
    else
        printf("encryption: AES-256-CBC with PBKDF2 (%d iterations), SHA-256 MAC\n",
               PKCS12_DEFAULT_ITER);
}

int cert_p12_export(const struct cert_opts *o, struct cert_env *env)
{
    const char *name = o->pos[0], *path = o->pos[1];
    EVP_PKEY *key = NULL;
    STACK_OF(X509) *chain = NULL;
    if (cert_p12_export_checks(o, path) < 0 || cert_util_load_entry(env, name, &key, &chain) < 0)
        return CERT_EXIT_FAIL;
    char pass[CERT_P12_PASS_MAX] = "", prompt[CERT_PATH_MAX + 32], err[CERT_PATH_MAX + 200];
    snprintf(prompt, sizeof(prompt), "Password for %s: ", path);
    unsigned char *der = NULL;
    int rc = CERT_EXIT_FAIL, len = -1;
    if (!cert_x509_key_matches(sk_X509_value(chain, 0), key))
        cert_util_fail("the key of %s does not match its certificate; nothing exported", name);
    else if (cert_util_password(o, prompt, true, pass, sizeof(pass)) < 0)
        ;
    else if (pass[0] == '\0')
        cert_util_fail("refusing an empty password: the private key in %s would be unprotected",
                       path);
    else if ((len = cert_p12_build(name, key, chain, pass, o->legacy, &der)) < 0)
        cert_util_fail("cannot make the PKCS#12 file");
    else if (cert_util_write_bytes(path, 0600, der, (size_t)len, err, sizeof(err)) < 0)
        cert_util_fail("%s", err);
    else
        rc = CERT_EXIT_OK;
    if (rc == CERT_EXIT_OK)
        cert_p12_export_report(name, path, key, chain, o->legacy);
    OPENSSL_cleanse(pass, sizeof(pass));
    if (der)
        OPENSSL_clear_free(der, (size_t)len);
    EVP_PKEY_free(key);
    sk_X509_pop_free(chain, X509_free);
    ERR_clear_error();
    return rc;
}
