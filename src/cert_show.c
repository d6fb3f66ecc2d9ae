/*
 * cert_show: `tlsgate cert list` (a table, or --json) and `tlsgate cert
 * check NAME [--host H]` (key, chain against the trust store, names,
 * expiry).  Read-only: must not change the store.
 */
#include "cert_show.h"

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <openssl/err.h>

#include "cert_x509.h"

#define CERT_SHOW_COLS  9
#define CERT_SHOW_NOTES 24

/* ---- list ---- */

struct cert_show_row {
    char *name;
    STACK_OF(X509) * chain; /* NULL when unreadable */
    char error[CERT_PATH_MAX + 200];
    bool pending; /* key.pending.pem exists */
};

/* The store names (directories but trust/) of ENV, sorted.  -1 after
 * printing why, except that a missing store is empty. */
static int cert_show_names(const struct cert_env *env, struct dirent ***list)
{
    int n = scandir(env->certs_dir, list, NULL, alphasort);
    if (n < 0 && errno == ENOENT) {
        *list = NULL;
        return 0;
    }
    if (n < 0)
        return cert_util_fail("cannot read the store %s: %s", env->certs_dir, strerror(errno)), -1;
    int kept = 0;
    for (int i = 0; i < n; i++) {
        char path[CERT_PATH_MAX];
        struct stat st;
        struct dirent *d = (*list)[i];
        if (d->d_name[0] != '.' && strcmp(d->d_name, "trust") != 0 &&
            stat(cert_util_path(path, sizeof(path), env, d->d_name, NULL), &st) == 0 &&
            S_ISDIR(st.st_mode))
            (*list)[kept++] = d;
        else
            free(d);
    }
    return kept;
}

static void cert_show_load_row(const struct cert_env *env, const char *name,
                               struct cert_show_row *r)
{
    char path[CERT_PATH_MAX];
    r->name = strdup(name);
    r->chain = cert_util_read_certs(cert_util_path(path, sizeof(path), env, name, "cert.pem"),
                                    r->error, sizeof(r->error));
    r->pending = cert_util_exists(cert_util_path(path, sizeof(path), env, name, "key.pending.pem"));
    ERR_clear_error();
}

/* "in, in6 (hostname mismatch)" for the listeners using NAME. */
static const char *cert_show_used_by(const struct cert_env *env, const char *name, X509 *leaf,
                                     char *buf, size_t len)
{
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < env->nusers; i++) {
        const struct cert_user *u = &env->users[i];
        if (strcmp(u->certificate, name) != 0)
            continue;
        bool bad = leaf && u->hostname && !cert_x509_host_matches(leaf, u->hostname);
        int n = snprintf(buf + used, len - used, "%s%s%s", used ? ", " : "", u->listener,
                         bad ? " (hostname mismatch)" : "");
        if (n > 0 && (size_t)n < len - used)
            used += (size_t)n;
    }
    if (used == 0)
        snprintf(buf, len, "-");
    return buf;
}

/* The table cells of R into CELLS (new strings). */
static void cert_show_cells(const struct cert_env *env, struct cert_show_row *r, char **cells)
{
    char b[CERT_SHOW_COLS][2048];
    X509 *x = r->chain ? sk_X509_value(r->chain, 0) : NULL;
    for (int i = 0; i < CERT_SHOW_COLS; i++)
        snprintf(b[i], sizeof(b[i]), "-");
    snprintf(b[0], sizeof(b[0]), "%s", r->name);
    if (x != NULL) {
        cert_x509_cn(X509_get_subject_name(x), b[1], sizeof(b[1]));
        cert_x509_sans(x, ",", b[2], sizeof(b[2]));
        cert_x509_key_type(X509_get0_pubkey(x), b[3], sizeof(b[3]));
        cert_x509_cn(X509_get_issuer_name(x), b[4], sizeof(b[4]));
        cert_x509_time(X509_get0_notAfter(x), true, b[5], sizeof(b[5]));
        b[5][10] = '\0';
        snprintf(b[6], sizeof(b[6]), "%ld", cert_x509_days_left(x));
        snprintf(b[7], sizeof(b[7]), "%s", cert_x509_self_signed(x) ? "yes" : "no");
    } else {
        snprintf(b[1], sizeof(b[1]), "(unreadable)");
    }
    cert_show_used_by(env, r->name, x, b[8], sizeof(b[8]));
    for (int i = 0; i < CERT_SHOW_COLS; i++)
        cells[i] = strdup(b[i][0] ? b[i] : "-");
}

static void cert_show_table(const struct cert_env *env, struct cert_show_row *rows, int n)
{
    static const char *const head[CERT_SHOW_COLS] = {
        "NAME", "CN", "SANS", "KEY", "ISSUER", "NOT-AFTER", "DAYS", "SELF-SIGNED", "USED-BY"};
    char *(*cells)[CERT_SHOW_COLS] = calloc((size_t)n + 1, sizeof(*cells));
    size_t w[CERT_SHOW_COLS];
    if (cells == NULL)
        return;
    for (int c = 0; c < CERT_SHOW_COLS; c++)
        w[c] = strlen(head[c]);
    for (int i = 0; i < n; i++) {
        cert_show_cells(env, &rows[i], cells[i]);
        for (int c = 0; c < CERT_SHOW_COLS; c++)
            if (cells[i][c] && strlen(cells[i][c]) > w[c])
                w[c] = strlen(cells[i][c]);
    }
    for (int i = -1; i < n; i++)
        for (int c = 0; c < CERT_SHOW_COLS; c++) {
            const char *s = i < 0 ? head[c] : cells[i][c] ? cells[i][c] : "?";
            printf(c + 1 < CERT_SHOW_COLS ? "%-*s  " : "%.*s\n",
                   c + 1 < CERT_SHOW_COLS ? (int)w[c] : (int)strlen(s), s);
        }
    for (int i = 0; i < n; i++)
        for (int c = 0; c < CERT_SHOW_COLS; c++)
            free(cells[i][c]);
    free(cells);
}

/* Listeners naming a certificate the store does not hold. */
static bool cert_show_missing(const struct cert_env *env, const struct cert_user *u)
{
    char path[CERT_PATH_MAX];
    return !cert_util_exists(cert_util_path(path, sizeof(path), env, u->certificate, "cert.pem"));
}

static void cert_show_text_notes(const struct cert_env *env, struct cert_show_row *rows, int n)
{
    for (int i = 0; i < n; i++) {
        if (rows[i].chain == NULL)
            printf("%s: %s\n", rows[i].name, rows[i].error);
        if (rows[i].pending)
            printf("%s: a new key from renew --new-key waits in key.pending.pem for its signed "
                   "certificate\n",
                   rows[i].name);
    }
    for (size_t i = 0; i < env->nusers; i++)
        if (cert_show_missing(env, &env->users[i]))
            printf("listener %s uses certificate %s, which is not in the store%s\n",
                   env->users[i].listener, env->users[i].certificate,
                   strcmp(env->users[i].certificate, "demo") == 0 ? " (tlsgate run creates it)"
                                                                  : "");
}

static void cert_show_json_strings(FILE *f, char **v, size_t n)
{
    fputc('[', f);
    for (size_t i = 0; i < n; i++) {
        fputs(i ? ", " : "", f);
        cert_util_json_str(f, v[i]);
    }
    fputc(']', f);
}

static void cert_show_json_users(const struct cert_env *env, const char *name, X509 *x)
{
    int n = 0;
    fputs("\"used_by\": [", stdout);
    for (size_t i = 0; i < env->nusers; i++) {
        const struct cert_user *u = &env->users[i];
        if (strcmp(u->certificate, name) != 0)
            continue;
        printf("%s{\"listener\": ", n++ ? ", " : "");
        cert_util_json_str(stdout, u->listener);
        fputs(", \"hostname\": ", stdout);
        cert_util_json_str(stdout, u->hostname);
        printf(", \"name_matches\": %s}",
               x && u->hostname && cert_x509_host_matches(x, u->hostname) ? "true" : "false");
    }
    fputc(']', stdout);
}

/* One "key": "value" pair of the certificate X's facts. */
static void cert_show_json_pair(const char *key, const char *value, bool comma)
{
    printf("\"%s\": ", key);
    cert_util_json_str(stdout, value);
    if (comma)
        fputs(", ", stdout);
}

/* The facts of X as JSON members (no braces). */
static void cert_show_json_facts(X509 *x)
{
    char b[2048];
    size_t nsans;
    char **sans = cert_x509_san_list(x, &nsans);
    cert_show_json_pair("cn", cert_x509_cn(X509_get_subject_name(x), b, sizeof(b)), true);
    fputs("\"sans\": ", stdout);
    cert_show_json_strings(stdout, sans, nsans);
    cert_x509_free_strings(sans, nsans);
    fputs(", ", stdout);
    cert_show_json_pair("key_type", cert_x509_key_type(X509_get0_pubkey(x), b, sizeof(b)), true);
    cert_show_json_pair("subject", cert_x509_dn(X509_get_subject_name(x), b, sizeof(b)), true);
    cert_show_json_pair("issuer", cert_x509_dn(X509_get_issuer_name(x), b, sizeof(b)), true);
    cert_show_json_pair("issuer_cn", cert_x509_cn(X509_get_issuer_name(x), b, sizeof(b)), true);
    cert_show_json_pair("not_before", cert_x509_time(X509_get0_notBefore(x), true, b, sizeof(b)),
                        true);
    cert_show_json_pair("not_after", cert_x509_time(X509_get0_notAfter(x), true, b, sizeof(b)),
                        true);
    cert_show_json_pair("sha256", cert_x509_fingerprint(x, b, sizeof(b)), true);
    printf("\"days_left\": %ld, \"expired\": %s, \"self_signed\": %s", cert_x509_days_left(x),
           cert_x509_expired(x) ? "true" : "false", cert_x509_self_signed(x) ? "true" : "false");
}

static void cert_show_json_row(const struct cert_env *env, struct cert_show_row *r)
{
    X509 *x = r->chain ? sk_X509_value(r->chain, 0) : NULL;
    fputs("{", stdout);
    cert_show_json_pair("name", r->name, true);
    if (x != NULL) {
        cert_show_json_facts(x);
        printf(", \"chain_length\": %d, ", sk_X509_num(r->chain));
    }
    cert_show_json_pair("error", x ? NULL : r->error, true);
    printf("\"pending_key\": %s, ", r->pending ? "true" : "false");
    cert_show_json_users(env, r->name, x);
    fputs("}", stdout);
}

static void cert_show_json(const struct cert_env *env, struct cert_show_row *rows, int n)
{
    fputs("{", stdout);
    cert_show_json_pair("certs_dir", env->certs_dir, true);
    fputs("\"certificates\": [", stdout);
    for (int i = 0; i < n; i++) {
        fputs(i ? ",\n  " : "\n  ", stdout);
        cert_show_json_row(env, &rows[i]);
    }
    fputs("],\n \"missing\": [", stdout);
    int m = 0;
    for (size_t i = 0; i < env->nusers; i++) {
        if (!cert_show_missing(env, &env->users[i]))
            continue;
        printf("%s{\"listener\": ", m++ ? ", " : "");
        cert_util_json_str(stdout, env->users[i].listener);
        fputs(", \"certificate\": ", stdout);
        cert_util_json_str(stdout, env->users[i].certificate);
        fputs("}", stdout);
    }
    fputs("]}\n", stdout);
}

int cert_show_list(const struct cert_opts *o, struct cert_env *env)
{
    struct dirent **names = NULL;
    int n = cert_show_names(env, &names);
    if (n < 0)
        return CERT_EXIT_FAIL;
    struct cert_show_row *rows = calloc((size_t)n + 1, sizeof(*rows));
    for (int i = 0; rows && i < n; i++)
        cert_show_load_row(env, names[i]->d_name, &rows[i]);
    if (rows && o->json) {
        cert_show_json(env, rows, n);
    } else if (rows) {
        if (n == 0)
            printf("no certificates in %s (tlsgate cert create NAME makes one)\n", env->certs_dir);
        else
            cert_show_table(env, rows, n);
        cert_show_text_notes(env, rows, n);
    }
    for (int i = 0; i < n; i++) {
        if (rows) {
            free(rows[i].name);
            sk_X509_pop_free(rows[i].chain, X509_free);
        }
        free(names[i]);
    }
    free(names);
    free(rows);
    return rows ? CERT_EXIT_OK : cert_util_fail("out of memory");
}

/* ---- check ---- */

struct cert_show_notes {
    char text[CERT_SHOW_NOTES][1024];
    int n;
};

static void cert_show_note(struct cert_show_notes *notes, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void cert_show_note(struct cert_show_notes *notes, const char *fmt, ...)
{
    if (notes->n >= CERT_SHOW_NOTES)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(notes->text[notes->n++], sizeof(notes->text[0]), fmt, ap);
    va_end(ap);
}

struct cert_show_check {
    const char *name;
    STACK_OF(X509) * chain;
    X509 *leaf;
    EVP_PKEY *key;
    char key_error[CERT_PATH_MAX + 200];
    bool key_matches;
    struct cert_x509_verdict verdict;
    const char *hosts[64];
    bool host_ok[64];
    size_t nhosts;
    struct cert_show_notes problems, warnings;
};

/* The private key: readable, private, the certificate's. */
static void cert_show_check_key(const struct cert_env *env, struct cert_show_check *k)
{
    char path[CERT_PATH_MAX];
    struct stat st;
    cert_util_path(path, sizeof(path), env, k->name, "key.pem");
    k->key = cert_util_read_key(path, NULL, k->key_error, sizeof(k->key_error));
    if (k->key == NULL) {
        cert_show_note(&k->problems, "%s", k->key_error);
        return;
    }
    if (stat(path, &st) == 0 && (st.st_mode & 077))
        cert_show_note(&k->problems,
                       "%s is readable by group or others (mode %04o): chmod 600 it; the "
                       "gateway refuses it",
                       path, (unsigned)(st.st_mode & 07777));
    k->key_matches = cert_x509_key_matches(k->leaf, k->key);
    if (!k->key_matches)
        cert_show_note(&k->problems, "the private key in key.pem does not match the certificate");
}

/* Expiry of every certificate of the chain as given and as built. */
static void cert_show_check_dates(struct cert_show_check *k, STACK_OF(X509) * certs)
{
    char label[256], when[64];
    for (int i = 0; i < sk_X509_num(certs); i++) {
        X509 *x = sk_X509_value(certs, i);
        cert_x509_label(x, label, sizeof(label));
        cert_x509_time(X509_get0_notAfter(x), false, when, sizeof(when));
        long days = cert_x509_days_left(x);
        if (cert_x509_expired(x))
            cert_show_note(&k->problems, "'%s' expired on %s (%ld days ago)", label, when, -days);
        else if (cert_x509_not_yet_valid(x))
            cert_show_note(&k->problems, "'%s' is not valid yet", label);
        else if (days < CERT_X509_SOON_DAYS)
            cert_show_note(&k->warnings, "'%s' expires in %ld days (%s)", label, days, when);
    }
}

/* Certificates of BUILT that are not in CHAIN (the trust anchor). */
static STACK_OF(X509) * cert_show_anchors(STACK_OF(X509) * chain, STACK_OF(X509) * built)
{
    STACK_OF(X509) *out = sk_X509_new_null();
    for (int i = 0; out && i < sk_X509_num(built); i++) {
        X509 *x = sk_X509_value(built, i);
        bool in = false;
        for (int j = 0; j < sk_X509_num(chain) && !in; j++)
            in = cert_x509_same(x, sk_X509_value(chain, j));
        if (!in)
            sk_X509_push(out, x);
    }
    return out;
}

static void cert_show_check_hosts(const struct cert_opts *o, const struct cert_env *env,
                                  struct cert_show_check *k)
{
    if (o->host)
        k->hosts[k->nhosts++] = o->host;
    for (size_t i = 0; !o->host && i < env->nusers && k->nhosts < 64; i++) {
        const struct cert_user *u = &env->users[i];
        bool dup = u->hostname == NULL || strcmp(u->certificate, k->name) != 0;
        for (size_t j = 0; j < k->nhosts && !dup; j++)
            dup = strcasecmp(k->hosts[j], u->hostname) == 0;
        if (!dup)
            k->hosts[k->nhosts++] = u->hostname;
    }
    char names[2048];
    cert_x509_sans(k->leaf, ", ", names, sizeof(names));
    for (size_t i = 0; i < k->nhosts; i++) {
        k->host_ok[i] = cert_x509_host_matches(k->leaf, k->hosts[i]);
        if (!k->host_ok[i])
            cert_show_note(&k->problems, "the name %s is not covered by the certificate (%s)",
                           k->hosts[i], names[0] ? names : "no subjectAltName");
    }
    if (k->nhosts == 0)
        cert_show_note(&k->warnings, "no host name checked: no listener uses %s (give --host)",
                       k->name);
}

static void cert_show_check_run(const struct cert_opts *o, const struct cert_env *env,
                                struct cert_show_check *k)
{
    cert_show_check_key(env, k);
    X509_STORE *store = cert_x509_trust_store(env->certs_dir, env->system_trust);
    cert_x509_verify(store, k->chain, &k->verdict);
    X509_STORE_free(store);
    if (k->verdict.status != CERT_CHAIN_COMPLETE)
        cert_show_note(&k->problems, "chain: %s", k->verdict.text);
    cert_show_check_dates(k, k->chain);
    STACK_OF(X509) *anchors = cert_show_anchors(k->chain, k->verdict.built);
    cert_show_check_dates(k, anchors);
    sk_X509_free(anchors);
    cert_show_check_hosts(o, env, k);
}

static void cert_show_check_text(const struct cert_env *env, struct cert_show_check *k)
{
    char b[2048], when[64], from[64];
    X509 *x = k->leaf;
    printf("certificate %s (%s/%s/cert.pem)\n", k->name, env->certs_dir, k->name);
    printf("  subject:  %s\n", cert_x509_dn(X509_get_subject_name(x), b, sizeof(b)));
    printf("  names:    %s\n", cert_x509_sans(x, ", ", b, sizeof(b))[0] ? b : "(none)");
    printf("  key:      %s, %s\n", cert_x509_key_type(X509_get0_pubkey(x), b, sizeof(b)),
           k->key == NULL   ? "key.pem unreadable"
           : k->key_matches ? "matches the certificate"
                            : "DOES NOT MATCH the certificate");
    printf("  issuer:   %s\n", cert_x509_dn(X509_get_issuer_name(x), b, sizeof(b)));
    printf("  valid:    %s to %s (%ld days left)\n",
           cert_x509_time(X509_get0_notBefore(x), false, from, sizeof(from)),
           cert_x509_time(X509_get0_notAfter(x), false, when, sizeof(when)),
           cert_x509_days_left(x));
    printf("  chain:    %s\n", k->verdict.text);
    for (size_t i = 0; i < k->nhosts; i++)
        printf("  host:     %s %s\n", k->hosts[i], k->host_ok[i] ? "matches" : "DOES NOT MATCH");
    printf("  sha256:   %s\n", cert_x509_fingerprint(x, b, sizeof(b)));
    for (int i = 0; i < k->warnings.n; i++)
        printf("warning: %s\n", k->warnings.text[i]);
    for (int i = 0; i < k->problems.n; i++)
        printf("problem: %s\n", k->problems.text[i]);
    if (k->problems.n == 0)
        printf("result: ok%s\n", k->warnings.n ? " (with warnings)" : "");
    else
        printf("result: %d problem(s)\n", k->problems.n);
}

static void cert_show_json_notes(const char *key, struct cert_show_notes *n)
{
    printf("\"%s\": [", key);
    for (int i = 0; i < n->n; i++) {
        fputs(i ? ", " : "", stdout);
        cert_util_json_str(stdout, n->text[i]);
    }
    fputc(']', stdout);
}

static void cert_show_json_chain(struct cert_show_check *k)
{
    char b[2048];
    printf("\"chain\": {\"status\": \"%s\", ", cert_x509_chain_name(k->verdict.status));
    cert_show_json_pair("message", k->verdict.text, true);
    fputs("\"certificates\": [", stdout);
    for (int i = 0; i < sk_X509_num(k->verdict.built); i++) {
        X509 *x = sk_X509_value(k->verdict.built, i);
        fputs(i ? ", {" : "{", stdout);
        cert_show_json_pair("subject", cert_x509_dn(X509_get_subject_name(x), b, sizeof(b)), true);
        cert_show_json_pair("issuer", cert_x509_dn(X509_get_issuer_name(x), b, sizeof(b)), true);
        cert_show_json_pair("not_after", cert_x509_time(X509_get0_notAfter(x), true, b, sizeof(b)),
                            true);
        cert_show_json_pair("sha256", cert_x509_fingerprint(x, b, sizeof(b)), false);
        fputs("}", stdout);
    }
    fputs("]}", stdout);
}

static void cert_show_check_json(struct cert_show_check *k)
{
    long days = cert_x509_days_left(k->leaf);
    fputs("{", stdout);
    cert_show_json_pair("name", k->name, true);
    printf("\"ok\": %s, ", k->problems.n ? "false" : "true");
    cert_show_json_facts(k->leaf);
    printf(", \"expires_soon\": %s, \"key_matches\": %s, ",
           days < CERT_X509_SOON_DAYS ? "true" : "false", k->key_matches ? "true" : "false");
    cert_show_json_chain(k);
    fputs(", \"hosts\": [", stdout);
    for (size_t i = 0; i < k->nhosts; i++) {
        fputs(i ? ", {\"host\": " : "{\"host\": ", stdout);
        cert_util_json_str(stdout, k->hosts[i]);
        printf(", \"matches\": %s}", k->host_ok[i] ? "true" : "false");
    }
    fputs("], ", stdout);
    cert_show_json_notes("problems", &k->problems);
    fputs(", ", stdout);
    cert_show_json_notes("warnings", &k->warnings);
    fputs("}\n", stdout);
}

int cert_show_check(const struct cert_opts *o, struct cert_env *env)
{
    struct cert_show_check *k = calloc(1, sizeof(*k));
    if (k == NULL)
        return cert_util_fail("out of memory");
    k->name = o->pos[0];
    if (cert_util_load_entry(env, k->name, NULL, &k->chain) < 0) {
        free(k);
        return CERT_EXIT_FAIL;
    }
    k->leaf = sk_X509_value(k->chain, 0);
    cert_show_check_run(o, env, k);
    if (o->json)
        cert_show_check_json(k);
    else
        cert_show_check_text(env, k);
    int rc = k->problems.n ? CERT_EXIT_FAIL : CERT_EXIT_OK;
    cert_x509_verdict_free(&k->verdict);
    EVP_PKEY_free(k->key);
    sk_X509_pop_free(k->chain, X509_free);
    free(k);
    return rc;
}
