/*
 * cert_x509: what the certificate commands need to know about one
 * certificate (names, key type, dates, fingerprint), about a chain (order
 * leaf to root, duplicates, unrelated certificates) and about its standing
 * against the trust store (complete / missing intermediate / self-signed /
 * untrusted root), plus making keys, certificates and CSRs.  Pure OpenSSL
 * work: no files except the trust store, no output.
 */
#ifndef TLSGATE_CERT_X509_H
#define TLSGATE_CERT_X509_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

/* Days before notAfter at which a certificate counts as expiring soon. */
#define CERT_X509_SOON_DAYS 30

/* The subject's (or issuer's) CN into BUF, "" without one. */
const char *cert_x509_cn(const X509_NAME *name, char *buf, size_t len);
/* The name in one line, RFC 2253 ("CN=a,O=b"). */
const char *cert_x509_dn(const X509_NAME *name, char *buf, size_t len);
/* The CN, else the whole subject: a short label for messages. */
const char *cert_x509_label(X509 *x, char *buf, size_t len);
/* subjectAltName DNS and IP entries, "a, 1.2.3.4" (SEP between). */
const char *cert_x509_sans(X509 *x, const char *sep, char *buf, size_t len);
/* The SAN entries as a NULL-terminated array of new strings (free with
 * cert_x509_free_strings); IPs as text. */
char **cert_x509_san_list(X509 *x, size_t *n);
void cert_x509_free_strings(char **v, size_t n);
/* "rsa:2048", "ec:P-256", "ed25519" ... */
const char *cert_x509_key_type(const EVP_PKEY *key, char *buf, size_t len);
/* An ASN1_TIME as "2027-01-02 03:04:05 UTC", or ISO 8601 with ISO. */
const char *cert_x509_time(const ASN1_TIME *t, bool iso, char *buf, size_t len);
/* Whole days from now to notAfter, rounded down (negative once expired). */
long cert_x509_days_left(X509 *x);
bool cert_x509_expired(X509 *x);
bool cert_x509_not_yet_valid(X509 *x);
/* Issued by itself with a signature its own key verifies. */
bool cert_x509_self_signed(X509 *x);
bool cert_x509_is_ca(X509 *x);
/* SHA-256 of the DER as "AB:CD:...". */
const char *cert_x509_fingerprint(X509 *x, char *buf, size_t len);
/* The certificate's public key is KEY's. */
bool cert_x509_key_matches(X509 *x, const EVP_PKEY *key);
/* HOST (a DNS name or an IP address) is covered by X (RFC 6125 rules). */
bool cert_x509_host_matches(X509 *x, const char *host);
bool cert_x509_same(X509 *a, X509 *b);

/* The trust store: every PEM in CERTS_DIR/trust plus, with SYSTEM, the
 * system store. */
X509_STORE *cert_x509_trust_store(const char *certs_dir, bool system);

/* Orders the certificates of CANDIDATES behind LEAF from leaf to root.
 * Each duplicate (of another candidate, or of the leaf) is dropped with a
 * line on NOTES; a candidate that is not in the chain is dropped with a
 * line too when DROP_UNRELATED, else it makes the call fail with its label
 * in ERR.  ORDERED gets a new stack: LEAF first (new references).  0 or
 * -1. */
int cert_x509_order(X509 *leaf, STACK_OF(X509) * candidates, bool drop_unrelated,
                    STACK_OF(X509) * *ordered, FILE *notes, char *err, size_t errlen);

enum cert_x509_chain {
    CERT_CHAIN_COMPLETE,    /* verifies to a trust anchor */
    CERT_CHAIN_SELF_SIGNED, /* a self-signed leaf that is not trusted */
    CERT_CHAIN_MISSING,     /* an issuer is neither given nor trusted */
    CERT_CHAIN_UNTRUSTED,   /* ends at a root that is not trusted */
    CERT_CHAIN_INVALID      /* any other verification error */
};

struct cert_x509_verdict {
    enum cert_x509_chain status;
    int error;              /* X509_V_ERR_..., X509_V_OK when complete */
    char text[1024];        /* one sentence for the user */
    STACK_OF(X509) * built; /* the chain as verified (leaf .. last found) */
};

/* Verifies CHAIN (leaf first) against STORE for TLS server use, dates
 * ignored (expiry is judged separately).  Free with
 * cert_x509_verdict_free. */
void cert_x509_verify(X509_STORE *store, STACK_OF(X509) * chain, struct cert_x509_verdict *v);
void cert_x509_verdict_free(struct cert_x509_verdict *v);
const char *cert_x509_chain_name(enum cert_x509_chain s);

/* A new key of TYPE ("rsa:2048" ... "ec:P-384"); NULL for a bad TYPE. */
EVP_PKEY *cert_x509_new_key(const char *type);
bool cert_x509_valid_key_type(const char *type);

/* The subject and names of a new certificate or CSR. */
struct cert_x509_subject {
    const char *cn, *org, *ou, *locality, *state, *country, *email;
    const char *const *sans; /* "DNS:x" / "IP:x" */
    size_t nsans;
};

/* X509_NAME from S; NULL with ERR (a field too long, a bad country). */
X509_NAME *cert_x509_make_name(const struct cert_x509_subject *s, char *err, size_t errlen);
/* A self-signed server certificate for KEY, SUBJECT and SANS, DAYS days. */
X509 *cert_x509_make_cert(EVP_PKEY *key, const X509_NAME *subject, const char *sans, int days,
                          char *err, size_t errlen);
/* A CSR for KEY with SUBJECT and SANS ("DNS:a,IP:b"; NULL or "" none). */
X509_REQ *cert_x509_make_req(EVP_PKEY *key, const X509_NAME *subject, const char *sans, char *err,
                             size_t errlen);
/* "DNS:a,IP:b" from X's subjectAltName into BUF ("" without one). */
const char *cert_x509_san_spec(X509 *x, char *buf, size_t len);
/* Turns one --san value ("DNS:x", "IP:x" or a bare name or address) into
 * "DNS:x" / "IP:x" in BUF; -1 if it is neither a DNS name nor an IP. */
int cert_x509_san_normalize(const char *in, char *buf, size_t len);

#endif
