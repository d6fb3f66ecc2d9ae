/*
 * cert_util: what the `tlsgate cert` and `tlsgate trust` commands share —
 * their options, where the store is (from -c FILE or --certs-dir), which
 * listeners use which certificate, reading certificate and key files of
 * any form with one-sentence errors, atomic writes (keys 0600), passwords
 * and confirmations from the terminal, and JSON strings.  Part of the
 * command-line tool only: must not be called by the running gateway, and
 * never prints a key or a password.
 */
#ifndef TLSGATE_CERT_UTIL_H
#define TLSGATE_CERT_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

/* Exit codes of every subcommand (documented in --help). */
#define CERT_EXIT_OK    0
#define CERT_EXIT_FAIL  1
#define CERT_EXIT_USAGE 2

#define CERT_MAX_SANS   64
#define CERT_MAX_CHAINS 8
#define CERT_MAX_POS    3
#define CERT_PATH_MAX   4096

/* The parsed command line of one subcommand. */
struct cert_opts {
    const char *cmd; /* "create", "install", "fetch", ... */
    const char *config, *certs_dir;
    const char *cn, *org, *ou, *locality, *state, *country, *email;
    const char *sans[CERT_MAX_SANS];
    size_t nsans;
    const char *key_type; /* --key rsa:2048 ... */
    int days;             /* 0: the default */
    const char *chains[CERT_MAX_CHAINS];
    size_t nchains;
    const char *key_file; /* install --key-file */
    const char *password_file;
    const char *host;     /* check --host */
    const char *name;     /* trust add --name */
    const char *starttls; /* fetch --starttls smtp */
    const char *servername;
    int timeout; /* fetch, seconds */
    bool json, force, yes, new_key, implicit, legacy;
    const char *pos[CERT_MAX_POS]; /* positional arguments after the subcommand */
    int npos;
};

/* One listener that names a certificate. */
struct cert_user {
    char *listener;
    char *hostname;
    char *certificate;
};

/* Where the store is and who uses it. */
struct cert_env {
    char *certs_dir;
    char *hostname; /* [gateway] hostname, for EHLO */
    bool system_trust;
    struct cert_user *users;
    size_t nusers;
};

/* Fills ENV from O: the configuration (-c, or policy/tlsgate.ini unless
 * only --certs-dir is given) read with config_load or, when it does not
 * validate (a certificate not created yet), leniently; --certs-dir wins.
 * 0, or -1 after printing why. */
int cert_util_env_load(const struct cert_opts *o, struct cert_env *env);
void cert_util_env_free(struct cert_env *env);

/* Prints "tlsgate: MESSAGE" to stderr; returns CERT_EXIT_FAIL. */
int cert_util_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Prints "warning: MESSAGE" to stderr. */
void cert_util_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Adds the first queued OpenSSL error's reason to BUF ("" if none) and
 * clears the queue. */
const char *cert_util_ossl_reason(char *buf, size_t len);

/* A store name: letters, digits, '.', '_', '-', not starting with '.',
 * and not "trust". */
bool cert_util_valid_name(const char *name);
/* CERTS_DIR/NAME/FILE (FILE NULL: the directory) into BUF. */
const char *cert_util_path(char *buf, size_t len, const struct cert_env *env, const char *name,
                           const char *file);
bool cert_util_exists(const char *path);

/* Reads every certificate of PATH (PEM with one or more, or DER) into a new
 * stack.  NULL with one sentence in ERR: unreadable, a PKCS#12 file, a key
 * only, or not a certificate at all. */
STACK_OF(X509) * cert_util_read_certs(const char *path, char *err, size_t errlen);
/* The first certificate of PATH (new reference) or NULL with ERR set. */
X509 *cert_util_read_cert(const char *path, char *err, size_t errlen);
/* A private key from PATH (PEM or DER; PASS for an encrypted one, may be
 * NULL).  NULL with one sentence in ERR. */
EVP_PKEY *cert_util_read_key(const char *path, const char *pass, char *err, size_t errlen);

/* Atomic writes: a temporary file in the same directory (mode MODE, not
 * widened by the umask for 0600), fsync, rename.  0 or -1 with ERR. */
int cert_util_write_key(const char *path, EVP_PKEY *key, char *err, size_t errlen);
int cert_util_write_certs(const char *path, STACK_OF(X509) * certs, char *err, size_t errlen);
int cert_util_write_req(const char *path, X509_REQ *req, char *err, size_t errlen);
int cert_util_write_bytes(const char *path, int mode, const void *data, size_t len, char *err,
                          size_t errlen);
/* Creates DIR with MODE if missing; 0 or -1 with ERR. */
int cert_util_mkdir(const char *dir, int mode, char *err, size_t errlen);

/* A password: the first line of O->password_file, else asked on the
 * terminal without echo (twice when CONFIRM).  0 or -1 after printing why.
 * The caller wipes BUF with OPENSSL_cleanse. */
int cert_util_password(const struct cert_opts *o, const char *prompt, bool confirm, char *buf,
                       size_t len);
/* Asks QUESTION [y/N] on stdin; true only for an answer starting y/Y. */
bool cert_util_confirm(const char *question);

/* S as a JSON string (quotes included) on F; NULL prints null. */
void cert_util_json_str(FILE *f, const char *s);

/* Loads store entry NAME: its chain (cert.pem, leaf first) and, when KEY
 * is not NULL, its private key.  0, or -1 after printing why (no such
 * name, unreadable, not PEM). */
int cert_util_load_entry(const struct cert_env *env, const char *name, EVP_PKEY **key,
                         STACK_OF(X509) * *chain);
/* Checks that NAME is a valid store name; else prints why and returns
 * false. */
bool cert_util_check_name(const char *name);

/* Listeners of ENV whose certificate is NAME, as "a, b" into BUF ("-" when
 * none); returns the count. */
size_t cert_util_users(const struct cert_env *env, const char *name, char *buf, size_t len);
/* Warns for each listener using NAME whose hostname LEAF does not cover;
 * returns how many. */
int cert_util_warn_mismatch(const struct cert_env *env, const char *name, X509 *leaf);

#endif
