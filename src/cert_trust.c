/*
 * cert_trust: `tlsgate trust add | list | remove` over CERTS_DIR/trust, one
 * PEM file per certificate, named by its CN made safe as a file name.  The
 * gateway (certstore) loads every *.pem and *.crt there.  Must not: write
 * outside the trust directory, whatever a certificate's CN or a --name
 * says.
 */
#include "cert_trust.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>

#include "cert_x509.h"

#define CERT_TRUST_STEM_MAX 100

/* ---- names and files ---- */

const char *cert_trust_file_stem(X509 *x, char *buf, size_t len)
{
    char cn[512], out[CERT_TRUST_STEM_MAX + 16];
    size_t n = 0;
    cert_x509_label(x, cn, sizeof(cn));
    for (const char *p = cn; *p && n < CERT_TRUST_STEM_MAX; p++) {
        char c = *p;
        if (c == '*') {
            n += (size_t)snprintf(out + n, sizeof(out) - n, "wildcard");
            continue;
        }
        if (!(c >= 'a' && c <= 'z') && !(c >= 'A' && c <= 'Z') && !(c >= '0' && c <= '9') &&
            c != '.' && c != '-')
            c = '_';
        if (c == '_' && n > 0 && out[n - 1] == '_')
            continue; /* one '_' for a run of unsafe characters */
        out[n++] = c;
    }
    out[n] = '\0';
    const char *s = out + strspn(out, "._-"); /* no hidden files, no ".." */
    if (*s == '\0') {
        char fp[128];
        cert_x509_fingerprint(x, fp, sizeof(fp));
        snprintf(buf, len, "cert-%.2s%.2s%.2s%.2s", fp, fp + 3, fp + 6, fp + 9);
        return buf;
    }
    snprintf(buf, len, "%s", s);
    return buf;
}

static void cert_trust_dir(const struct cert_env *env, char *buf, size_t len)
{
    snprintf(buf, len, "%s/trust", env->certs_dir);
}

/* True for the files certstore loads: *.pem and *.crt, not hidden. */
static bool cert_trust_is_anchor_file(const char *name)
{
    size_t n = strlen(name);
    return name[0] != '.' && n > 4 &&
           (strcmp(name + n - 4, ".pem") == 0 || strcmp(name + n - 4, ".crt") == 0);
}

/* The anchor files of ENV, sorted; *N their number (0 for no directory). */
static struct dirent **cert_trust_files(const struct cert_env *env, int *n)
{
    char dir[CERT_PATH_MAX];
    struct dirent **list = NULL;
    cert_trust_dir(env, dir, sizeof(dir));
    *n = scandir(dir, &list, NULL, alphasort);
    int kept = 0;
    for (int i = 0; i < *n; i++) {
        if (cert_trust_is_anchor_file(list[i]->d_name))
            list[kept++] = list[i];
        else
            free(list[i]);
    }
    *n = *n < 0 ? 0 : kept;
    return list;
}

static void cert_trust_free_files(struct dirent **list, int n)
{
    for (int i = 0; i < n; i++)
        free(list[i]);
    free(list);
}

bool cert_trust_find(const struct cert_env *env, X509 *x, char *buf, size_t len)
{
    int n;
    struct dirent **files = cert_trust_files(env, &n);
    bool found = false;
    for (int i = 0; i < n && !found; i++) {
        char dir[CERT_PATH_MAX], path[CERT_PATH_MAX + 300], err[CERT_PATH_MAX + 400];
        cert_trust_dir(env, dir, sizeof(dir));
        snprintf(path, sizeof(path), "%s/%s", dir, files[i]->d_name);
        STACK_OF(X509) *certs = cert_util_read_certs(path, err, sizeof(err));
        for (int j = 0; j < sk_X509_num(certs) && !found; j++)
            found = cert_x509_same(x, sk_X509_value(certs, j));
        if (found)
            snprintf(buf, len, "%s", path);
        sk_X509_pop_free(certs, X509_free);
    }
    cert_trust_free_files(files, n);
    ERR_clear_error();
    return found;
}

/* The stem FREE for X: STEM, else STEM-2, STEM-3 ... not yet taken. */
static void cert_trust_free_stem(const char *dir, const char *stem, char *buf, size_t len)
{
    char path[CERT_PATH_MAX + 300];
    snprintf(buf, len, "%s", stem);
    for (int i = 2; i < 1000; i++) {
        snprintf(path, sizeof(path), "%s/%s.pem", dir, buf);
        if (!cert_util_exists(path))
            return;
        snprintf(buf, len, "%s-%d", stem, i);
    }
}

int cert_trust_store(const struct cert_env *env, X509 *x, const char *stem, bool force, char *path,
                     size_t pathlen)
{
    char dir[CERT_PATH_MAX], name[CERT_TRUST_STEM_MAX + 32], err[CERT_PATH_MAX + 200] = "";
    cert_trust_dir(env, dir, sizeof(dir));
    if (cert_util_mkdir(env->certs_dir, 0755, err, sizeof(err)) < 0 ||
        cert_util_mkdir(dir, 0755, err, sizeof(err)) < 0)
        return cert_util_fail("%s", err), -1;
    if (stem == NULL) {
        char auto_stem[CERT_TRUST_STEM_MAX + 16];
        cert_trust_free_stem(dir, cert_trust_file_stem(x, auto_stem, sizeof(auto_stem)), name,
                             sizeof(name));
    } else {
        snprintf(name, sizeof(name), "%s", stem);
    }
    snprintf(path, pathlen, "%s/%s.pem", dir, name);
    if (stem != NULL && !force && cert_util_exists(path))
        return cert_util_fail("%s already holds a different certificate; choose another --name "
                              "or give --force to replace it",
                              path),
               -1;
    STACK_OF(X509) *one = sk_X509_new_null();
    int rc = one && sk_X509_push(one, x) ? cert_util_write_certs(path, one, err, sizeof(err)) : -1;
    sk_X509_free(one);
    if (rc < 0)
        cert_util_fail("%s", err[0] ? err : "out of memory");
    return rc;
}

/* ---- add ---- */

/* A --name: a plain file stem (".pem" dropped), no path. */
static bool cert_trust_valid_stem(const char *s)
{
    size_t n = strlen(s);
    return n > 0 && n <= CERT_TRUST_STEM_MAX && s[0] != '.' &&
           strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == n;
}

/* The --name without a ".pem"/".crt" ending into BUF. */
static const char *cert_trust_stem_of(const char *name, char *buf, size_t len)
{
    snprintf(buf, len, "%s", name);
    size_t n = strlen(buf);
    if (n > 4 && (strcmp(buf + n - 4, ".pem") == 0 || strcmp(buf + n - 4, ".crt") == 0))
        buf[n - 4] = '\0';
    return buf;
}

static void cert_trust_describe(X509 *x, const char *indent)
{
    char b[1024], when[64];
    printf("%ssubject: %s\n", indent, cert_x509_dn(X509_get_subject_name(x), b, sizeof(b)));
    printf("%sissuer:  %s\n", indent, cert_x509_dn(X509_get_issuer_name(x), b, sizeof(b)));
    printf("%sexpires: %s (%ld days)%s\n", indent,
           cert_x509_time(X509_get0_notAfter(x), false, when, sizeof(when)), cert_x509_days_left(x),
           cert_x509_expired(x) ? " EXPIRED" : "");
    printf("%ssha256:  %s\n", indent, cert_x509_fingerprint(x, b, sizeof(b)));
}

/* Adds one certificate; 1 when added, 0 when already trusted, or -1
 * after printing why. */
static int cert_trust_add_one(const struct cert_opts *o, const struct cert_env *env, X509 *x,
                              const char *stem)
{
    char path[CERT_PATH_MAX + 300], label[256];
    cert_x509_label(x, label, sizeof(label));
    if (cert_trust_find(env, x, path, sizeof(path))) {
        printf("'%s' is already trusted: %s\n", label, path);
        return 0;
    }
    if (cert_trust_store(env, x, stem, o->force, path, sizeof(path)) < 0)
        return -1;

    printf("added trust anchor %s\n", path);
    cert_trust_describe(x, "  ");
    if (!cert_x509_is_ca(x))
        cert_util_warn("'%s' is not a CA certificate: as a trust anchor it vouches only for "
                       "itself",
                       label);
    if (cert_x509_expired(x))
        cert_util_warn("'%s' has expired: chains through it do not verify", label);
    return 1;
}

int cert_trust_add(const struct cert_opts *o, struct cert_env *env)
{
    char err[CERT_PATH_MAX + 200], stem[CERT_TRUST_STEM_MAX + 16];
    if (o->name && !cert_trust_valid_stem(cert_trust_stem_of(o->name, stem, sizeof(stem)))) {
        fprintf(stderr,
                "tlsgate trust: --name '%s' must be a plain file name (letters, digits, "
                "'.', '_', '-')\n",
                o->name);
        return CERT_EXIT_USAGE;
    }
    STACK_OF(X509) *certs = cert_util_read_certs(o->pos[0], err, sizeof(err));
    if (certs == NULL)
        return cert_util_fail("%s", err);
    if (o->name && sk_X509_num(certs) > 1) {
        fprintf(stderr, "tlsgate trust: --name needs a file with one certificate; %s holds %d\n",
                o->pos[0], sk_X509_num(certs));
        sk_X509_pop_free(certs, X509_free);
        return CERT_EXIT_USAGE;
    }
    int rc = CERT_EXIT_OK, added = 0;
    for (int i = 0; i < sk_X509_num(certs); i++) {
        int r = cert_trust_add_one(o, env, sk_X509_value(certs, i), o->name ? stem : NULL);
        if (r < 0)
            rc = CERT_EXIT_FAIL;
        added += r > 0;
    }
    if (added > 0)
        printf("a running gateway uses the new trust anchors after SIGHUP\n");
    sk_X509_pop_free(certs, X509_free);
    return rc;
}

/* ---- list ---- */

struct cert_trust_entry {
    char file[300];
    X509 *x;         /* NULL: the file is unreadable */
    char error[600]; /* then why */
};

/* Every certificate of every anchor file; *N entries. */
static struct cert_trust_entry *cert_trust_entries(const struct cert_env *env, int *count)
{
    int n, used = 0, cap = 16;
    struct dirent **files = cert_trust_files(env, &n);
    struct cert_trust_entry *e = calloc((size_t)cap, sizeof(*e));
    char dir[CERT_PATH_MAX], path[CERT_PATH_MAX + 300];
    cert_trust_dir(env, dir, sizeof(dir));
    for (int i = 0; e && i < n; i++) {
        char err[CERT_PATH_MAX + 400] = "";
        snprintf(path, sizeof(path), "%s/%s", dir, files[i]->d_name);
        STACK_OF(X509) *certs = cert_util_read_certs(path, err, sizeof(err));
        for (int j = 0; e && j < (certs ? sk_X509_num(certs) : 1); j++) {
            if (used == cap) {
                struct cert_trust_entry *m = realloc(e, (size_t)(cap *= 2) * sizeof(*e));
                if (m == NULL)
                    break;
                e = m;
            }
            memset(&e[used], 0, sizeof(*e));
            snprintf(e[used].file, sizeof(e[used].file), "%s", files[i]->d_name);
            snprintf(e[used].error, sizeof(e[used].error), "%.590s", err);
            if (certs && X509_up_ref(sk_X509_value(certs, j)))
                e[used].x = sk_X509_value(certs, j);
            used++;
        }
        sk_X509_pop_free(certs, X509_free);
    }
    cert_trust_free_files(files, n);
    ERR_clear_error();
    *count = used;
    return e;
}

static void cert_trust_list_text(const struct cert_env *env, struct cert_trust_entry *e, int n)
{
    char b[1024], when[64];
    if (n == 0)
        printf("no trust anchors in %s/trust (tlsgate trust add FILE or trust fetch HOST)\n",
               env->certs_dir);
    for (int i = 0; i < n; i++) {
        if (e[i].x == NULL) {
            printf("%s: %s\n", e[i].file, e[i].error);
            continue;
        }
        X509 *x = e[i].x;
        printf("%s\n", e[i].file);
        printf("  subject: %s\n", cert_x509_dn(X509_get_subject_name(x), b, sizeof(b)));
        printf("  issuer:  %s%s\n", cert_x509_dn(X509_get_issuer_name(x), b, sizeof(b)),
               cert_x509_self_signed(x) ? " (self-signed)" : "");
        printf("  expires: %s (%ld days)%s%s\n",
               cert_x509_time(X509_get0_notAfter(x), false, when, sizeof(when)),
               cert_x509_days_left(x), cert_x509_expired(x) ? " EXPIRED" : "",
               cert_x509_is_ca(x) ? "" : ", not a CA");
        printf("  sha256:  %s\n", cert_x509_fingerprint(x, b, sizeof(b)));
    }
    printf("system store: %s\n", env->system_trust ? "used as well (system_trust = yes)"
                                                   : "not used (system_trust = no)");
}

static void cert_trust_json_entry(struct cert_trust_entry *e)
{
    char b[1024];
    X509 *x = e->x;
    fputs("{\"file\": ", stdout);
    cert_util_json_str(stdout, e->file);
    if (x == NULL) {
        fputs(", \"error\": ", stdout);
        cert_util_json_str(stdout, e->error);
        fputs("}", stdout);
        return;
    }
    fputs(", \"subject\": ", stdout);
    cert_util_json_str(stdout, cert_x509_dn(X509_get_subject_name(x), b, sizeof(b)));
    fputs(", \"cn\": ", stdout);
    cert_util_json_str(stdout, cert_x509_cn(X509_get_subject_name(x), b, sizeof(b)));
    fputs(", \"issuer\": ", stdout);
    cert_util_json_str(stdout, cert_x509_dn(X509_get_issuer_name(x), b, sizeof(b)));
    fputs(", \"not_after\": ", stdout);
    cert_util_json_str(stdout, cert_x509_time(X509_get0_notAfter(x), true, b, sizeof(b)));
    fputs(", \"sha256\": ", stdout);
    cert_util_json_str(stdout, cert_x509_fingerprint(x, b, sizeof(b)));
    printf(", \"days_left\": %ld, \"expired\": %s, \"self_signed\": %s, \"ca\": %s}",
           cert_x509_days_left(x), cert_x509_expired(x) ? "true" : "false",
           cert_x509_self_signed(x) ? "true" : "false", cert_x509_is_ca(x) ? "true" : "false");
}

static void cert_trust_list_json(const struct cert_env *env, struct cert_trust_entry *e, int n)
{
    char dir[CERT_PATH_MAX];
    cert_trust_dir(env, dir, sizeof(dir));
    fputs("{\"trust_dir\": ", stdout);
    cert_util_json_str(stdout, dir);
    printf(", \"system_trust\": %s, \"anchors\": [", env->system_trust ? "true" : "false");
    for (int i = 0; i < n; i++) {
        fputs(i ? ",\n  " : "\n  ", stdout);
        cert_trust_json_entry(&e[i]);
    }
    fputs("]}\n", stdout);
}

int cert_trust_list(const struct cert_opts *o, struct cert_env *env)
{
    int n = 0;
    struct cert_trust_entry *e = cert_trust_entries(env, &n);
    if (e == NULL)
        return cert_util_fail("out of memory");
    if (o->json)
        cert_trust_list_json(env, e, n);
    else
        cert_trust_list_text(env, e, n);
    for (int i = 0; i < n; i++)
        X509_free(e[i].x);
    free(e);
    return CERT_EXIT_OK;
}

/* ---- remove ---- */

int cert_trust_remove(const struct cert_opts *o, struct cert_env *env)
{
    char stem[CERT_TRUST_STEM_MAX + 16], dir[CERT_PATH_MAX], path[CERT_PATH_MAX + 300];
    const char *arg = o->pos[0];
    size_t n = strlen(arg);
    bool has_ext = n > 4 && (strcmp(arg + n - 4, ".pem") == 0 || strcmp(arg + n - 4, ".crt") == 0);
    if (!cert_trust_valid_stem(cert_trust_stem_of(arg, stem, sizeof(stem)))) {
        fprintf(stderr,
                "tlsgate trust: '%s' is not a trust anchor name (see tlsgate trust "
                "list)\n",
                arg);
        return CERT_EXIT_USAGE;
    }
    cert_trust_dir(env, dir, sizeof(dir));
    snprintf(path, sizeof(path), "%s/%s", dir, has_ext ? arg : stem);
    if (!has_ext) {
        snprintf(path, sizeof(path), "%s/%s.pem", dir, stem);
        if (!cert_util_exists(path))
            snprintf(path, sizeof(path), "%s/%s.crt", dir, stem);
    }
    if (!cert_util_exists(path))
        return cert_util_fail("there is no trust anchor %s in %s (tlsgate trust list shows them)",
                              arg, dir);
    if (unlink(path) != 0)
        return cert_util_fail("cannot remove %s: %s", path, strerror(errno));
    printf("removed trust anchor %s; a running gateway stops trusting it after SIGHUP\n", path);
    return CERT_EXIT_OK;
}
