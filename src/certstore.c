/*
 * certstore: certificates and keys on disk, and the SSL_CTX objects the
 * listeners use.  Must not: log, touch the network, or keep secrets in
 * memory longer than a context build.
 */
#include "certstore.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

static void certstore_path(char *buf, size_t len, const char *dir, const char *name,
                           const char *file)
{
    snprintf(buf, len, "%s/%s/%s", dir, name, file);
}

/* The first OpenSSL error as text after PREFIX. */
static void certstore_ossl_error(char *err, size_t len, const char *prefix)
{
    char s[200] = "";
    unsigned long e = ERR_get_error();
    if (e != 0)
        ERR_error_string_n(e, s, sizeof(s));
    snprintf(err, len, "%s%s%s", prefix, s[0] ? ": " : "", s);
    ERR_clear_error();
}

bool certstore_exists(const char *certs_dir, const char *name)
{
    char path[4096];
    certstore_path(path, sizeof(path), certs_dir, name, "cert.pem");
    if (access(path, R_OK) != 0)
        return false;
    certstore_path(path, sizeof(path), certs_dir, name, "key.pem");
    return access(path, R_OK) == 0;
}

/* Adds every PEM certificate in CERTS_DIR/trust to STORE. */
static void certstore_load_trust(X509_STORE *store, const char *certs_dir)
{
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s/trust", certs_dir);
    DIR *d = opendir(dir);
    if (d == NULL)
        return;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        size_t n = strlen(de->d_name);
        if (n < 5 || (strcmp(de->d_name + n - 4, ".pem") && strcmp(de->d_name + n - 4, ".crt")))
            continue;
        char path[4096 + 256];
        snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
        X509_STORE_load_file(store, path);
        ERR_clear_error();
    }
    closedir(d);
}

/* Protocol floor, ciphers and the trust store shared by both directions. */
static int certstore_common(SSL_CTX *ctx, const struct config *c, char *err, size_t errlen)
{
    SSL_CTX_set_min_proto_version(ctx, c->min_tls_version);
    if (c->ciphers && !SSL_CTX_set_cipher_list(ctx, c->ciphers)) {
        certstore_ossl_error(err, errlen, "bad ciphers");
        return -1;
    }
    if (c->ciphersuites && !SSL_CTX_set_ciphersuites(ctx, c->ciphersuites)) {
        certstore_ossl_error(err, errlen, "bad ciphersuites");
        return -1;
    }
    /* Security level 2 refuses finite-field DH and RSA keys below 2048 bits. */
    if (SSL_CTX_get_security_level(ctx) < 2)
        SSL_CTX_set_security_level(ctx, 2);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
    X509_STORE *store = SSL_CTX_get_cert_store(ctx);
    if (c->system_trust)
        X509_STORE_set_default_paths(store);
    certstore_load_trust(store, c->certs_dir);
    ERR_clear_error();
    return 0;
}

SSL_CTX *certstore_server_ctx(const struct config *c, const struct conf_listener *l, char *err,
                              size_t errlen)
{
    char cert[4096], key[4096];
    certstore_path(cert, sizeof(cert), c->certs_dir, l->certificate, "cert.pem");
    certstore_path(key, sizeof(key), c->certs_dir, l->certificate, "key.pem");
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL) {
        certstore_ossl_error(err, errlen, "cannot create TLS context");
        return NULL;
    }
    if (certstore_common(ctx, c, err, errlen) < 0)
        goto fail;
    SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_dh_auto(ctx, 1);
    SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"tlsgate", 7);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
        certstore_ossl_error(err, errlen, cert);
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
        certstore_ossl_error(err, errlen, key);
        goto fail;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        snprintf(err, errlen, "%s does not match the certificate %s", key, cert);
        goto fail;
    }
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

SSL_CTX *certstore_client_ctx(const struct config *c, char *err, size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL) {
        certstore_ossl_error(err, errlen, "cannot create TLS context");
        return NULL;
    }
    if (certstore_common(ctx, c, err, errlen) < 0) {
        SSL_CTX_free(ctx);
        return NULL;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    return ctx;
}

void certstore_ctx_free(SSL_CTX *ctx)
{
    SSL_CTX_free(ctx);
}

/* A self-signed certificate for HOSTNAME on KEY, valid DAYS days. */
static X509 *certstore_self_signed(EVP_PKEY *key, const char *hostname, int days)
{
    X509 *x = X509_new();
    if (x == NULL)
        return NULL;
    X509_set_version(x, 2);
    unsigned char serial[16];
    FILE *r = fopen("/dev/urandom", "rb");
    if (r == NULL || fread(serial, 1, sizeof(serial), r) != sizeof(serial))
        memset(serial, 0x5a, sizeof(serial));
    if (r)
        fclose(r);
    serial[0] &= 0x7f;
    BIGNUM *bn = BN_bin2bn(serial, sizeof(serial), NULL);
    BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x));
    BN_free(bn);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), (long)days * 86400);
    X509_set_pubkey(x, key);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
                               (const unsigned char *)"tlsgate demonstration", -1, -1, 0);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)hostname, -1, -1,
                               0);
    X509_set_issuer_name(x, name);
    char san[300];
    snprintf(san, sizeof(san), "DNS:%s", hostname);
    X509V3_CTX v3;
    X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name, san);
    if (ext != NULL) {
        X509_add_ext(x, ext, -1);
        X509_EXTENSION_free(ext);
    }
    if (X509_sign(x, key, EVP_sha256()) == 0) {
        X509_free(x);
        return NULL;
    }
    return x;
}

/* Writes KEY to PATH created 0600 (never wider, whatever the umask). */
static int certstore_write_key(const char *path, EVP_PKEY *key)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return -1;
    FILE *f = fdopen(fd, "w");
    if (f == NULL) {
        close(fd);
        return -1;
    }
    int ok = PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL);
    return (fclose(f) == 0 && ok) ? 0 : -1;
}

static int certstore_write_cert(const char *path, X509 *x)
{
    FILE *f = fopen(path, "w");
    if (f == NULL)
        return -1;
    int ok = PEM_write_X509(f, x);
    return (fclose(f) == 0 && ok) ? 0 : -1;
}

int certstore_make_demo(const char *certs_dir, const char *name, const char *hostname, char *err,
                        size_t errlen)
{
    char dir[4096], key_path[4096], cert_path[4096];
    snprintf(dir, sizeof(dir), "%s/%s", certs_dir, name);
    mkdir(certs_dir, 0755);
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "cannot create %s: %s", dir, strerror(errno));
        return -1;
    }
    certstore_path(key_path, sizeof(key_path), certs_dir, name, "key.pem");
    certstore_path(cert_path, sizeof(cert_path), certs_dir, name, "cert.pem");
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *x = key ? certstore_self_signed(key, hostname, 365) : NULL;
    int rc = -1;
    if (x == NULL)
        certstore_ossl_error(err, errlen, "cannot make the demonstration certificate");
    else if (certstore_write_key(key_path, key) < 0 || certstore_write_cert(cert_path, x) < 0)
        snprintf(err, errlen, "cannot write %s: %s", dir, strerror(errno));
    else
        rc = 0;
    X509_free(x);
    EVP_PKEY_free(key);
    return rc;
}
