/*
 * cert_install: `tlsgate cert install NAME SIGNED.pem [--chain FILE]...`.
 * The signed certificate must carry NAME's key (or the pending key of a
 * renew --new-key, or the key given with --key-file); the chain is put in
 * order leaf to root with duplicates removed, and a certificate that does
 * not belong to it is refused, so cert.pem always holds one clean chain.
 * Must not: change anything on disk when it refuses.
 */
#include "cert_install.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>

#include "cert_x509.h"

struct cert_install {
    const struct cert_opts *o;
    struct cert_env *env;
    const char *name;
    EVP_PKEY *key;          /* NAME's key, or the one from --key-file */
    EVP_PKEY *pending;      /* key.pending.pem, if any */
    bool use_pending;       /* the signed certificate is for the pending key */
    STACK_OF(X509) * given; /* SIGNED.pem, then the --chain files */
    int nsigned;            /* how many of GIVEN came from SIGNED.pem */
    X509 *leaf;
    STACK_OF(X509) * chain; /* ordered, leaf first */
};

int cert_install_outcome(const struct cert_env *env, STACK_OF(X509) * chain)
{
    X509_STORE *store = cert_x509_trust_store(env->certs_dir, env->system_trust);
    struct cert_x509_verdict v;
    cert_x509_verify(store, chain, &v);
    printf("outcome: %s\n", v.text);
    if (v.status == CERT_CHAIN_MISSING)
        printf("  give the intermediate CA certificate with --chain (your CA publishes it); if\n"
               "  the root is a private CA, trust it with tlsgate trust add ROOT.pem\n");
    else if (v.status == CERT_CHAIN_UNTRUSTED)
        printf("  if this is your private CA, trust its root with tlsgate trust add ROOT.pem\n");
    else if (v.status == CERT_CHAIN_SELF_SIGNED)
        printf("  fine for tests; for verifiable TLS have the CSR signed by a CA\n");
    int status = (int)v.status;
    cert_x509_verdict_free(&v);
    X509_STORE_free(store);
    return status;
}

/* The keys: --key-file, else NAME's key.pem (and key.pending.pem). */
static int cert_install_keys(struct cert_install *in)
{
    char path[CERT_PATH_MAX], err[CERT_PATH_MAX + 200], pass[1024] = "";
    const struct cert_opts *o = in->o;
    if (o->key_file != NULL) {
        if (o->password_file && cert_util_password(o, "", false, pass, sizeof(pass)) < 0)
            return -1;
        in->key = cert_util_read_key(o->key_file, o->password_file ? pass : NULL, err, sizeof(err));
        OPENSSL_cleanse(pass, sizeof(pass));
        return in->key ? 0 : (cert_util_fail("%s", err), -1);
    }
    cert_util_path(path, sizeof(path), in->env, in->name, "key.pem");
    if (!cert_util_exists(path))
        return cert_util_fail("there is no key for %s in %s: make one with tlsgate cert create "
                              "%s (which writes the CSR), or give it with --key-file",
                              in->name, in->env->certs_dir, in->name),
               -1;
    in->key = cert_util_read_key(path, NULL, err, sizeof(err));
    if (in->key == NULL)
        return cert_util_fail("%s", err), -1;
    cert_util_path(path, sizeof(path), in->env, in->name, "key.pending.pem");
    if (cert_util_exists(path))
        in->pending = cert_util_read_key(path, NULL, err, sizeof(err));
    return 0;
}

/* Reads SIGNED.pem and every --chain file into IN->given (SIGNED first). */
static int cert_install_read(struct cert_install *in)
{
    char err[CERT_PATH_MAX + 200];
    in->given = cert_util_read_certs(in->o->pos[1], err, sizeof(err));
    if (in->given == NULL)
        return cert_util_fail("%s", err), -1;
    in->nsigned = sk_X509_num(in->given);
    for (size_t i = 0; i < in->o->nchains; i++) {
        STACK_OF(X509) *more = cert_util_read_certs(in->o->chains[i], err, sizeof(err));
        if (more == NULL)
            return cert_util_fail("%s", err), -1;
        X509 *x;
        while ((x = sk_X509_shift(more)) != NULL)
            sk_X509_push(in->given, x);
        sk_X509_free(more);
    }
    return 0;
}

/* The certificate of SIGNED.pem that carries the key (or pending key). */
static int cert_install_find_leaf(struct cert_install *in)
{
    for (int i = 0; i < in->nsigned && in->leaf == NULL; i++) {
        X509 *x = sk_X509_value(in->given, i);
        if (cert_x509_key_matches(x, in->key)) {
            in->leaf = x;
        } else if (in->pending && cert_x509_key_matches(x, in->pending)) {
            in->leaf = x;
            in->use_pending = true;
        }
    }
    if (in->leaf != NULL)
        return 0;
    char label[256];
    cert_x509_label(sk_X509_value(in->given, 0), label, sizeof(label));
    return cert_util_fail("the certificate in %s ('%s') does not match the private key of %s: "
                          "it was signed for another key, not from %s's CSR",
                          in->o->pos[1], label, in->name, in->name),
           -1;
}

/* Puts the other given certificates in order behind the leaf. */
static int cert_install_order(struct cert_install *in)
{
    char err[1024];
    STACK_OF(X509) *rest = sk_X509_new_null();
    for (int i = 0; rest && i < sk_X509_num(in->given); i++)
        if (sk_X509_value(in->given, i) != in->leaf)
            sk_X509_push(rest, sk_X509_value(in->given, i));
    int rc =
        rest ? cert_x509_order(in->leaf, rest, false, &in->chain, stdout, err, sizeof(err)) : -1;
    sk_X509_free(rest);
    if (rc < 0)
        cert_util_fail("refused: %s; nothing was installed", rest ? err : "out of memory");
    return rc;
}

/* An expired certificate is refused without --force. */
static int cert_install_dates(struct cert_install *in)
{
    char when[64];
    cert_x509_time(X509_get0_notAfter(in->leaf), false, when, sizeof(when));
    if (cert_x509_expired(in->leaf) && !in->o->force)
        return cert_util_fail("the certificate expired on %s; nothing was installed (give "
                              "--force to install it anyway)",
                              when),
               -1;
    if (cert_x509_expired(in->leaf))
        cert_util_warn("the certificate expired on %s", when);
    if (cert_x509_not_yet_valid(in->leaf))
        cert_util_warn("the certificate is not valid yet (from %s)",
                       cert_x509_time(X509_get0_notBefore(in->leaf), false, when, sizeof(when)));
    return 0;
}

/* --key-file over an existing, different key needs --force. */
static int cert_install_key_guard(struct cert_install *in)
{
    char path[CERT_PATH_MAX], err[CERT_PATH_MAX + 200];
    cert_util_path(path, sizeof(path), in->env, in->name, "key.pem");
    if (in->o->key_file == NULL || in->o->force || !cert_util_exists(path))
        return 0;
    EVP_PKEY *old = cert_util_read_key(path, NULL, err, sizeof(err));
    bool same = old != NULL && EVP_PKEY_eq(old, in->key) == 1;
    EVP_PKEY_free(old);
    ERR_clear_error();
    if (same)
        return 0;
    return cert_util_fail("%s already has a different private key; give --force to replace it",
                          in->name),
           -1;
}

/* Writes the key (when it changes) and cert.pem. */
static int cert_install_write(struct cert_install *in)
{
    char path[CERT_PATH_MAX], err[CERT_PATH_MAX + 200];
    EVP_PKEY *key = in->use_pending ? in->pending : in->o->key_file ? in->key : NULL;
    if (cert_util_mkdir(in->env->certs_dir, 0755, err, sizeof(err)) < 0 ||
        cert_util_mkdir(cert_util_path(path, sizeof(path), in->env, in->name, NULL), 0700, err,
                        sizeof(err)) < 0)
        return cert_util_fail("%s", err), -1;
    if (key && cert_util_write_key(cert_util_path(path, sizeof(path), in->env, in->name, "key.pem"),
                                   key, err, sizeof(err)) < 0)
        return cert_util_fail("%s", err), -1;
    if (cert_util_write_certs(cert_util_path(path, sizeof(path), in->env, in->name, "cert.pem"),
                              in->chain, err, sizeof(err)) < 0)
        return cert_util_fail("%s", err), -1;
    if (in->use_pending)
        unlink(cert_util_path(path, sizeof(path), in->env, in->name, "key.pending.pem"));
    return 0;
}

static void cert_install_report(struct cert_install *in)
{
    char dn[1024], issuer[1024], when[64];
    X509 *leaf = in->leaf;
    printf("installed certificate %s in %s/%s/cert.pem%s:\n", in->name, in->env->certs_dir,
           in->name, in->use_pending ? " with the pending key from renew --new-key" : "");
    printf("  subject:  %s\n", cert_x509_dn(X509_get_subject_name(leaf), dn, sizeof(dn)));
    printf("  issuer:   %s\n", cert_x509_dn(X509_get_issuer_name(leaf), issuer, sizeof(issuer)));
    printf("  expires:  %s (%ld days)\n",
           cert_x509_time(X509_get0_notAfter(leaf), false, when, sizeof(when)),
           cert_x509_days_left(leaf));
    for (int i = 1; i < sk_X509_num(in->chain); i++)
        printf("  chain %d:  %s\n", i,
               cert_x509_dn(X509_get_subject_name(sk_X509_value(in->chain, i)), dn, sizeof(dn)));
    cert_install_outcome(in->env, in->chain);
    cert_util_warn_mismatch(in->env, in->name, leaf);
    printf("a running gateway serves it to new sessions after SIGHUP (sessions in flight keep "
           "the old one)\n");
}

int cert_install_run(const struct cert_opts *o, struct cert_env *env)
{
    struct cert_install in = {.o = o, .env = env, .name = o->pos[0]};
    if (!cert_util_check_name(in.name))
        return CERT_EXIT_USAGE;
    int rc = CERT_EXIT_FAIL;
    if (cert_install_keys(&in) == 0 && cert_install_read(&in) == 0 &&
        cert_install_find_leaf(&in) == 0 && cert_install_order(&in) == 0 &&
        cert_install_dates(&in) == 0 && cert_install_key_guard(&in) == 0 &&
        cert_install_write(&in) == 0) {
        cert_install_report(&in);
        rc = CERT_EXIT_OK;
    }
    sk_X509_pop_free(in.chain, X509_free);
    sk_X509_pop_free(in.given, X509_free);
    EVP_PKEY_free(in.key);
    EVP_PKEY_free(in.pending);
    return rc;
}
