/*
 * tls: OpenSSL over memory BIOs (the h2o model).  Input ciphertext goes into
 * the read BIO, output ciphertext is drained from the write BIO by the
 * caller.  Must not: touch sockets or libuv, log, or block.
 */
#include "tls.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

struct tls {
    SSL *ssl;
    BIO *rbio; /* ciphertext from the peer */
    BIO *wbio; /* ciphertext to the peer */
    char error[256];
};

struct tls *tls_new(SSL_CTX *ctx, bool server, const char *sni, bool verify_peer)
{
    struct tls *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return NULL;
    t->ssl = SSL_new(ctx);
    t->rbio = BIO_new(BIO_s_mem());
    t->wbio = BIO_new(BIO_s_mem());
    if (t->ssl == NULL || t->rbio == NULL || t->wbio == NULL) {
        BIO_free(t->rbio);
        BIO_free(t->wbio);
        SSL_free(t->ssl);
        free(t);
        return NULL;
    }
    BIO_set_mem_eof_return(t->rbio, -1);
    BIO_set_mem_eof_return(t->wbio, -1);
    SSL_set_bio(t->ssl, t->rbio, t->wbio);
    if (server) {
        SSL_set_accept_state(t->ssl);
        if (verify_peer)
            SSL_set_verify(t->ssl, SSL_VERIFY_PEER | SSL_VERIFY_CLIENT_ONCE, NULL);
    } else {
        SSL_set_connect_state(t->ssl);
        if (sni != NULL)
            SSL_set_tlsext_host_name(t->ssl, sni);
    }
    return t;
}

void tls_free(struct tls *t)
{
    if (t == NULL)
        return;
    SSL_free(t->ssl); /* frees both BIOs */
    free(t);
}

int tls_feed(struct tls *t, const char *buf, size_t len)
{
    return BIO_write(t->rbio, buf, (int)len) == (int)len ? 0 : -1;
}

/* Records the reason for a failed call in the ESA style: the first queued
 * OpenSSL error as "(code, 'error string')", else the SSL error class. */
static int tls_fail(struct tls *t, int ret)
{
    unsigned long e = ERR_peek_error();
    int sslerr = SSL_get_error(t->ssl, ret);
    if (e != 0) {
        char s[200];
        ERR_error_string_n(e, s, sizeof(s));
        snprintf(t->error, sizeof(t->error), "(%lu, '%s')", e, s);
    } else if (sslerr == SSL_ERROR_ZERO_RETURN) {
        snprintf(t->error, sizeof(t->error), "connection closed by peer");
    } else if (sslerr == SSL_ERROR_SYSCALL) {
        snprintf(t->error, sizeof(t->error), "unexpected end of TLS stream");
    } else {
        snprintf(t->error, sizeof(t->error), "SSL error %d", sslerr);
    }
    ERR_clear_error();
    return sslerr == SSL_ERROR_ZERO_RETURN ? TLS_EOF : TLS_ERROR;
}

int tls_handshake(struct tls *t)
{
    ERR_clear_error();
    int ret = SSL_do_handshake(t->ssl);
    if (ret == 1)
        return TLS_DONE;
    int err = SSL_get_error(t->ssl, ret);
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE)
        return TLS_AGAIN;
    tls_fail(t, ret);
    return TLS_ERROR;
}

ssize_t tls_read(struct tls *t, char *buf, size_t len)
{
    ERR_clear_error();
    int ret = SSL_read(t->ssl, buf, (int)len);
    if (ret > 0)
        return ret;
    int err = SSL_get_error(t->ssl, ret);
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE)
        return TLS_AGAIN;
    return tls_fail(t, ret);
}

int tls_write(struct tls *t, const char *buf, size_t len)
{
    ERR_clear_error();
    size_t done = 0;
    while (done < len) {
        size_t n = 0;
        int ret = SSL_write_ex(t->ssl, buf + done, len - done, &n);
        if (ret <= 0) {
            tls_fail(t, ret);
            return TLS_ERROR;
        }
        done += n;
    }
    return 0;
}

void tls_shutdown(struct tls *t)
{
    ERR_clear_error();
    if (SSL_is_init_finished(t->ssl))
        SSL_shutdown(t->ssl);
    ERR_clear_error();
}

size_t tls_pending(struct tls *t)
{
    return BIO_ctrl_pending(t->wbio);
}

size_t tls_take_out(struct tls *t, char *buf, size_t len)
{
    int n = BIO_read(t->wbio, buf, (int)len);
    return n > 0 ? (size_t)n : 0;
}

const char *tls_protocol(const struct tls *t)
{
    return SSL_get_version(t->ssl);
}

const char *tls_cipher(const struct tls *t)
{
    return SSL_get_cipher_name(t->ssl);
}

int tls_cipher_bits(const struct tls *t)
{
    return SSL_get_cipher_bits(t->ssl, NULL);
}

/* NAME in RFC 2253 form into BUF. */
static void tls_name_text(X509_NAME *name, char *buf, size_t len)
{
    buf[0] = '\0';
    BIO *mem = BIO_new(BIO_s_mem());
    if (mem == NULL)
        return;
    X509_NAME_print_ex(mem, name, 0, XN_FLAG_RFC2253);
    int n = BIO_read(mem, buf, (int)len - 1);
    buf[n > 0 ? n : 0] = '\0';
    BIO_free(mem);
}

const char *tls_peer_subject(const struct tls *t, char *buf, size_t len)
{
    buf[0] = '\0';
    X509 *cert = SSL_get0_peer_certificate(t->ssl);
    if (cert != NULL)
        tls_name_text(X509_get_subject_name(cert), buf, len);
    return buf;
}

const char *tls_peer_issuer(const struct tls *t, char *buf, size_t len)
{
    buf[0] = '\0';
    X509 *cert = SSL_get0_peer_certificate(t->ssl);
    if (cert != NULL)
        tls_name_text(X509_get_issuer_name(cert), buf, len);
    return buf;
}

const char *tls_peer_not_after(const struct tls *t, char *buf, size_t len)
{
    buf[0] = '\0';
    X509 *cert = SSL_get0_peer_certificate(t->ssl);
    BIO *mem = cert ? BIO_new(BIO_s_mem()) : NULL;
    if (mem == NULL)
        return buf;
    ASN1_TIME_print(mem, X509_get0_notAfter(cert));
    int n = BIO_read(mem, buf, (int)len - 1);
    buf[n > 0 ? n : 0] = '\0';
    BIO_free(mem);
    return buf;
}

const char *tls_peer_tmp_key(const struct tls *t, char *buf, size_t len)
{
    EVP_PKEY *key = NULL;
    buf[0] = '\0';
    if (!SSL_get_peer_tmp_key(t->ssl, &key) || key == NULL)
        return buf;
    int id = EVP_PKEY_get_base_id(key);
    const char *kind = id == EVP_PKEY_DH ? "DH" : id == EVP_PKEY_EC ? "ECDH" : "ECDH";
    const char *name = id == EVP_PKEY_EC || id == EVP_PKEY_DH ? "" : EVP_PKEY_get0_type_name(key);
    snprintf(buf, len, "%s%s%s %d bits", kind, name && name[0] ? " " : "", name ? name : "",
             EVP_PKEY_get_bits(key));
    EVP_PKEY_free(key);
    return buf;
}

static enum tls_verify tls_verify_chain(const struct tls *t, char *reason, size_t len)
{
    long v = SSL_get_verify_result(t->ssl);
    if (v == X509_V_OK)
        return TLS_VERIFY_OK;
    snprintf(reason, len, "%s", X509_verify_cert_error_string(v));
    switch (v) {
    case X509_V_ERR_CERT_HAS_EXPIRED:
    case X509_V_ERR_CERT_NOT_YET_VALID:
        return TLS_VERIFY_EXPIRED;
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
    case X509_V_ERR_CERT_UNTRUSTED:
        return TLS_VERIFY_UNTRUSTED;
    default:
        return TLS_VERIFY_OTHER;
    }
}

int tls_cert_match(X509 *cert, const char *const *names, size_t nnames)
{
    /* OpenSSL's default already takes the CN only without DNS SANs; no
     * partial-label wildcards ("w*.example.com"), no multi-label ones. */
    const unsigned flags = X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS;
    for (size_t i = 0; i < nnames; i++) {
        if (names[i] == NULL || names[i][0] == '\0')
            continue;
        if (X509_check_host(cert, names[i], 0, flags, NULL) == 1)
            return (int)i;
    }
    return -1;
}

enum tls_verify tls_verify_peer(const struct tls *t, const char *const *names, size_t nnames,
                                char *matched, size_t matchedlen, char *reason, size_t reasonlen)
{
    matched[0] = reason[0] = '\0';
    X509 *cert = SSL_get0_peer_certificate(t->ssl);
    if (cert == NULL) {
        snprintf(reason, reasonlen, "no certificate presented");
        return TLS_VERIFY_NO_CERT;
    }
    enum tls_verify chain = tls_verify_chain(t, reason, reasonlen);
    int i = tls_cert_match(cert, names, nnames);
    if (i >= 0) {
        snprintf(matched, matchedlen, "%s", names[i]);
        return chain;
    }
    if (chain != TLS_VERIFY_OK)
        return chain;
    int n = snprintf(reason, reasonlen, "certificate name does not match");
    const char *sep = " ";
    for (size_t i = 0; i < nnames && n > 0 && (size_t)n < reasonlen; i++) {
        if (names[i] == NULL || names[i][0] == '\0')
            continue;
        n += snprintf(reason + n, reasonlen - (size_t)n, "%s%s", sep, names[i]);
        sep = " or ";
    }
    return TLS_VERIFY_NAME;
}

bool tls_peer_verified(const struct tls *t)
{
    X509 *cert = SSL_get1_peer_certificate(t->ssl);
    bool ok = cert != NULL && SSL_get_verify_result(t->ssl) == X509_V_OK;
    X509_free(cert);
    return ok;
}

const char *tls_error(const struct tls *t)
{
    return t->error[0] ? t->error : "unknown TLS error";
}

/* ---- for the tools (probe) ---- */

size_t tls_peer_chain_len(const struct tls *t)
{
    STACK_OF(X509) *chain = SSL_get_peer_cert_chain(t->ssl);
    return chain != NULL ? (size_t)sk_X509_num(chain) : 0;
}

/* TM as ISO 8601 UTC into BUF ("" when the time cannot be read). */
static void tls_iso_time(const ASN1_TIME *when, char *buf, size_t len)
{
    struct tm tm;
    buf[0] = '\0';
    if (when != NULL && ASN1_TIME_to_tm(when, &tm) == 1)
        strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* KEY as "RSA 2048 bits", "EC P-256 256 bits", "ED25519 256 bits". */
static void tls_key_text(EVP_PKEY *key, char *buf, size_t len)
{
    char group[64] = "";
    buf[0] = '\0';
    if (key == NULL)
        return;
    int id = EVP_PKEY_get_base_id(key);
    if (id == EVP_PKEY_EC && EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group,
                                                            sizeof(group), NULL) == 1) {
        const char *nist = EC_curve_nid2nist(OBJ_txt2nid(group));
        if (nist != NULL)
            snprintf(group, sizeof(group), "%s", nist);
    }
    const char *type = id == EVP_PKEY_RSA  ? "RSA"
                       : id == EVP_PKEY_EC ? "EC"
                                           : EVP_PKEY_get0_type_name(key);
    snprintf(buf, len, "%s%s%s %d bits", type ? type : "unknown", group[0] ? " " : "", group,
             EVP_PKEY_get_bits(key));
    ERR_clear_error();
}

/* One subjectAltName entry appended to BUF as "DNS:name" or "IP:addr". */
static void tls_san_add(const GENERAL_NAME *gn, char *buf, size_t len)
{
    char item[300] = "";
    if (gn->type == GEN_DNS) {
        snprintf(item, sizeof(item), "DNS:%.*s", ASN1_STRING_length(gn->d.dNSName),
                 (const char *)ASN1_STRING_get0_data(gn->d.dNSName));
    } else if (gn->type == GEN_IPADD) {
        char addr[INET6_ADDRSTRLEN] = "";
        int n = ASN1_STRING_length(gn->d.iPAddress);
        const unsigned char *p = ASN1_STRING_get0_data(gn->d.iPAddress);
        if (n == 4 || n == 16)
            inet_ntop(n == 4 ? AF_INET : AF_INET6, p, addr, sizeof(addr));
        snprintf(item, sizeof(item), "IP:%s", addr);
    }
    size_t used = strlen(buf);
    if (item[0] != '\0' && used + strlen(item) + 3 < len)
        snprintf(buf + used, len - used, "%s%s", used ? ", " : "", item);
}

static void tls_san_text(X509 *cert, char *buf, size_t len)
{
    buf[0] = '\0';
    GENERAL_NAMES *names = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
    for (int i = 0; names != NULL && i < sk_GENERAL_NAME_num(names); i++)
        tls_san_add(sk_GENERAL_NAME_value(names, i), buf, len);
    GENERAL_NAMES_free(names);
}

int tls_peer_chain_cert(const struct tls *t, size_t i, struct tls_cert_info *out)
{
    STACK_OF(X509) *chain = SSL_get_peer_cert_chain(t->ssl);
    if (chain == NULL || i >= (size_t)sk_X509_num(chain))
        return -1;
    X509 *cert = sk_X509_value(chain, (int)i);
    memset(out, 0, sizeof(*out));
    tls_name_text(X509_get_subject_name(cert), out->subject, sizeof(out->subject));
    tls_name_text(X509_get_issuer_name(cert), out->issuer, sizeof(out->issuer));
    tls_iso_time(X509_get0_notBefore(cert), out->not_before, sizeof(out->not_before));
    tls_iso_time(X509_get0_notAfter(cert), out->not_after, sizeof(out->not_after));
    tls_key_text(X509_get0_pubkey(cert), out->key, sizeof(out->key));
    tls_san_text(cert, out->san, sizeof(out->san));
    int days = 0, secs = 0;
    if (ASN1_TIME_diff(&days, &secs, NULL, X509_get0_notAfter(cert)) == 1)
        out->days_left = days;
    out->expired = X509_cmp_current_time(X509_get0_notAfter(cert)) < 0 ||
                   X509_cmp_current_time(X509_get0_notBefore(cert)) > 0;
    out->self_signed = X509_self_signed(cert, 0) == 1;
    ERR_clear_error();
    return 0;
}

int tls_peer_tmp_key_info(const struct tls *t, char *kind, size_t kindlen, char *group,
                          size_t grouplen, int *bits)
{
    EVP_PKEY *key = NULL;
    kind[0] = group[0] = '\0';
    *bits = 0;
    if (!SSL_get_peer_tmp_key(t->ssl, &key) || key == NULL)
        return -1;
    int id = EVP_PKEY_get_base_id(key);
    snprintf(kind, kindlen, "%s", id == EVP_PKEY_DH ? "DH" : "ECDH");
    if (id == EVP_PKEY_EC) {
        char name[64] = "";
        EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, name, sizeof(name), NULL);
        const char *nist = EC_curve_nid2nist(OBJ_txt2nid(name));
        snprintf(group, grouplen, "%s", nist ? nist : name);
    } else if (id != EVP_PKEY_DH) {
        snprintf(group, grouplen, "%s", EVP_PKEY_get0_type_name(key));
    }
    *bits = EVP_PKEY_get_bits(key);
    EVP_PKEY_free(key);
    ERR_clear_error();
    return 0;
}

const char *tls_error_reason(const struct tls *t, char *buf, size_t len)
{
    /* "(code, 'error:HEX:library:function:reason')": the part after the
     * fourth colon inside the quotes. */
    const char *text = tls_error(t);
    const char *q = strstr(text, "'error:");
    const char *p = q ? q + 1 : NULL;
    for (int colons = 0; p != NULL && colons < 4; colons++)
        p = (p = strchr(p, ':')) ? p + 1 : NULL;
    const char *end = p ? strrchr(p, '\'') : NULL;
    if (p == NULL || end == NULL || end == p)
        snprintf(buf, len, "%s", text);
    else
        snprintf(buf, len, "%.*s", (int)(end - p), p);
    return buf;
}

int tls_ctx_trust_file(SSL_CTX *ctx, const char *path, char *err, size_t errlen)
{
    X509_STORE *store = X509_STORE_new();
    if (store == NULL || X509_STORE_load_file(store, path) != 1) {
        unsigned long e = ERR_peek_error();
        char s[200] = "no certificates";
        if (e != 0)
            ERR_error_string_n(e, s, sizeof(s));
        snprintf(err, errlen, "cannot load trust anchors from %s: %s", path, s);
        X509_STORE_free(store);
        ERR_clear_error();
        return -1;
    }
    SSL_CTX_set_cert_store(ctx, store); /* frees the old store */
    return 0;
}

void tls_ctx_permissive(SSL_CTX *ctx)
{
    SSL_CTX_set_security_level(ctx, 0);
    SSL_CTX_set_min_proto_version(ctx, TLS1_VERSION);
    SSL_CTX_set_cipher_list(ctx, "ALL:@SECLEVEL=0");
    ERR_clear_error();
}
