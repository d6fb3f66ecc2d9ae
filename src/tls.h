/*
 * tls: one TLS endpoint (an OpenSSL SSL object) over two memory BIOs.  The
 * caller feeds it the ciphertext it read from the network and sends what
 * tls_take_out() gives back; this module never touches a socket, a timer or
 * the event loop, so it can be tested by pumping two endpoints into each
 * other.  Errors are returned as text once, for the mail log.
 */
#ifndef TLSGATE_TLS_H
#define TLSGATE_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct ssl_ctx_st; /* SSL_CTX, opaque outside tls and certstore */
struct tls;

enum tls_result {
    TLS_DONE = 1,   /* handshake complete / bytes returned */
    TLS_AGAIN = 0,  /* needs more input from the peer */
    TLS_ERROR = -1, /* fatal; tls_error() says why */
    TLS_EOF = -2    /* the peer sent close_notify */
};

/* A server (SERVER true) or client endpoint on CTX (its refcount is taken).
 * SNI is the server name a client sends (may be NULL).  VERIFY_PEER asks a
 * server for a client certificate (checked, but not required). */
struct tls *tls_new(struct ssl_ctx_st *ctx, bool server, const char *sni, bool verify_peer);
void tls_free(struct tls *t);

/* Ciphertext received from the peer. 0, or -1 if out of memory. */
int tls_feed(struct tls *t, const char *buf, size_t len);

/* Advances the handshake: TLS_DONE, TLS_AGAIN or TLS_ERROR. */
int tls_handshake(struct tls *t);

/* Decrypts up to LEN bytes into BUF: the number of bytes (> 0), TLS_AGAIN,
 * TLS_EOF or TLS_ERROR. */
ssize_t tls_read(struct tls *t, char *buf, size_t len);

/* Encrypts LEN bytes; the ciphertext is then available from tls_take_out.
 * 0 or -1 (TLS_ERROR). */
int tls_write(struct tls *t, const char *buf, size_t len);

/* Queues a close_notify alert for tls_take_out. */
void tls_shutdown(struct tls *t);

/* Pending ciphertext to send: returns its length and moves up to LEN bytes
 * into BUF; 0 when there is none. */
size_t tls_pending(struct tls *t);
size_t tls_take_out(struct tls *t, char *buf, size_t len);

/* After the handshake: "TLSv1.3", the cipher's OpenSSL name, and its
 * secret bits. */
const char *tls_protocol(const struct tls *t);
const char *tls_cipher(const struct tls *t);
int tls_cipher_bits(const struct tls *t);

/* The peer certificate's subject in RFC 2253 form into BUF ("" if none) and
 * whether it verified against the trust store. */
const char *tls_peer_subject(const struct tls *t, char *buf, size_t len);
bool tls_peer_verified(const struct tls *t);

/* Judges the peer certificate of a finished client handshake: whether
 * its chain verified against the context's trust store, and whether one of
 * NAMES matches it by RFC 6125 (DNS-IDs in subjectAltName, the CN only when
 * there is none, a wildcard only as the whole left-most label).  MATCHED
 * gets the reference name that matched; REASON a one-line explanation of a
 * failure ("certificate has expired", "name mismatch: ..."). Returns
 * TLS_VERIFY_OK or the first failing kind. */
enum tls_verify {
    TLS_VERIFY_OK,
    TLS_VERIFY_NO_CERT,
    TLS_VERIFY_EXPIRED,
    TLS_VERIFY_UNTRUSTED,
    TLS_VERIFY_NAME,
    TLS_VERIFY_OTHER
};
enum tls_verify tls_verify_peer(const struct tls *t, const char *const *names, size_t nnames,
                                char *matched, size_t matchedlen, char *reason, size_t reasonlen);

/* The RFC 6125 check alone: the first of NAMES that CERT (an X509) is
 * valid for — DNS-IDs in subjectAltName, the CN only when there is no DNS
 * SAN, a wildcard only as the whole left-most label and never over a
 * public suffix label alone; names compared as A-labels, case-insensitive.
 * Returns its index, or -1. */
struct x509_st;
int tls_cert_match(struct x509_st *cert, const char *const *names, size_t nnames);

/* The peer certificate's issuer (RFC 2253) and notAfter ("Jan  2 00:00:00
 * 2027 GMT") into BUF, "" when there is none. */
const char *tls_peer_issuer(const struct tls *t, char *buf, size_t len);
const char *tls_peer_not_after(const struct tls *t, char *buf, size_t len);

/* The server's ephemeral key as "ECDH X25519 253 bits" / "DH 2048 bits". */
const char *tls_peer_tmp_key(const struct tls *t, char *buf, size_t len);

/* Why the last call failed: a reason such as "(336109761,
 * 'error:0A0000C1:SSL routines::no shared cipher')" in the ESA style. */
const char *tls_error(const struct tls *t);

/* ---- for the tools (probe): details of a finished client handshake ---- */

/* One certificate of the chain the peer presented. */
struct tls_cert_info {
    char subject[512];   /* RFC 2253 */
    char issuer[512];    /* RFC 2253 */
    char not_before[32]; /* ISO 8601 UTC: "2027-01-02T00:00:00Z" */
    char not_after[32];
    char key[64];   /* "RSA 2048 bits", "EC P-256 256 bits" */
    char san[768];  /* subjectAltName: "DNS:a.example, IP:192.0.2.1" */
    long days_left; /* whole days until notAfter; negative once expired */
    bool expired;   /* notAfter passed, or notBefore not reached */
    bool self_signed;
};

/* How many certificates the peer presented (0 when none), and certificate
 * I of them in the order sent (0 is the leaf): 0, or -1 if I is out of
 * range. */
size_t tls_peer_chain_len(const struct tls *t);
int tls_peer_chain_cert(const struct tls *t, size_t i, struct tls_cert_info *out);

/* The server's ephemeral key: KIND "DH" or "ECDH", GROUP its curve or
 * group ("X25519", "P-256", "" for an unnamed DH group) and its size in
 * *BITS.  0, or -1 when the handshake used none. */
int tls_peer_tmp_key_info(const struct tls *t, char *kind, size_t kindlen, char *group,
                          size_t grouplen, int *bits);

/* The reason part of tls_error() ("dh key too small" out of "(167772538,
 * 'error:0A00018A:SSL routines::dh key too small')") into BUF; the whole
 * text when it has no OpenSSL reason. */
const char *tls_error_reason(const struct tls *t, char *buf, size_t len);

/* Replaces the trust store of CTX by the certificates of the PEM file
 * PATH alone.  0, or -1 with ERR set. */
int tls_ctx_trust_file(struct ssl_ctx_st *ctx, const char *path, char *err, size_t errlen);

/* Lowers CTX to security level 0, a TLS 1.0 floor and every cipher, so
 * that a probe can see what a server offers that the normal client
 * context refuses (1024-bit DH, old protocols).  Never for delivery. */
void tls_ctx_permissive(struct ssl_ctx_st *ctx);

#endif
