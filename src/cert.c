/*
 * cert: the command lines of `tlsgate cert` and `tlsgate trust` (usage,
 * options, dispatch to the cert_* modules) and the two checks the gateway
 * calls: cert_expiry_scan and cert_name_matches_host.  A tool module: it
 * and the cert_* files include OpenSSL headers, like certstore and tls.
 * Must not: touch a running gateway or the network (trust fetch does, in
 * cert_fetch), print a key or a password, or accept a password on the
 * command line.
 */
#include "cert.h"

#include <getopt.h>
#include <limits.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>

#include "cert_fetch.h"
#include "cert_install.h"
#include "cert_make.h"
#include "cert_p12.h"
#include "cert_show.h"
#include "cert_trust.h"
#include "cert_util.h"
#include "cert_x509.h"

static const char cert_usage[] =
    "usage: tlsgate cert COMMAND [options]\n"
    "\n"
    "Keys, certificates and CSRs in the certificate store: one directory per\n"
    "NAME holding key.pem (mode 0600), cert.pem (the certificate, then its\n"
    "chain) and csr.pem.  A listener serves NAME with \"certificate = NAME\".\n"
    "\n"
    "commands:\n"
    "  create NAME [--cn CN] [--san DNS-OR-IP]... [--org O] [--ou OU]\n"
    "         [--locality L] [--state ST] [--country CC] [--email ADDRESS]\n"
    "         [--key rsa:2048|rsa:3072|rsa:4096|ec:P-256|ec:P-384] [--days N] [--force]\n"
    "      a new private key, a self-signed certificate and a CSR.  CN defaults\n"
    "      to the hostname of a listener using NAME; without --san the CN is the\n"
    "      only name; --key defaults to rsa:2048, --days to 365.  An existing NAME\n"
    "      is replaced only with --force.\n"
    "  csr NAME\n"
    "      print the CSR of NAME (PEM) to send to a certificate authority.\n"
    "  install NAME SIGNED.pem [--chain INTERMEDIATES.pem]... [--key-file KEY]\n"
    "          [--password-file FILE] [--force]\n"
    "      install the certificate the CA signed: its key must be NAME's (or the\n"
    "      one given with --key-file); the chain is ordered leaf to root,\n"
    "      duplicates removed, unrelated certificates refused; the outcome against\n"
    "      the trust store is printed (complete chain, missing intermediate,\n"
    "      self-signed).  An expired certificate needs --force.\n"
    "  import NAME FILE.p12 [--password-file FILE] [--force]\n"
    "      key, certificate and chain from PKCS#12 (also legacy RC2/3DES files).\n"
    "  export NAME FILE.p12 [--password-file FILE] [--legacy] [--force]\n"
    "      write NAME as PKCS#12 (AES-256-CBC, PBKDF2, SHA-256 MAC; with --legacy\n"
    "      3DES and a SHA-1 MAC for old Windows); the file is mode 0600.\n"
    "  list [--json]\n"
    "      every certificate: CN, names, key type, issuer, expiry, days left,\n"
    "      self-signed, and the listeners that use it (hostname mismatches shown).\n"
    "  check NAME [--host HOST] [--json]\n"
    "      key, chain against the trust store, names (HOST, else the hostnames of\n"
    "      the listeners using NAME) and expiry (a warning within 30 days).\n"
    "  renew NAME [--new-key [--key TYPE]] [--days N]\n"
    "      a new CSR on the same key (or a new key with --new-key); a self-signed\n"
    "      certificate is re-signed at once, a CA-signed one stays in use until\n"
    "      the renewed one is installed (a new key waits in key.pending.pem).\n"
    "\n"
    "options:\n"
    "  -c, --config FILE    find the store through FILE's certs_dir and listeners\n"
    "                       (default policy/tlsgate.ini)\n"
    "  --certs-dir DIR      the store directory (overrides the configuration)\n"
    "  --password-file FILE the password is the first line of FILE; without it the\n"
    "                       password is asked on the terminal (never an argument)\n"
    "  -h, --help           this text\n"
    "\n"
    "A running gateway uses new or changed certificates after SIGHUP; sessions in\n"
    "flight keep the certificate they started with.\n"
    "\n"
    "exit codes: 0 success; 1 the operation failed (check: a problem was found);\n"
    "2 usage error.\n";

static const char cert_trust_usage[] =
    "usage: tlsgate trust COMMAND [options]\n"
    "\n"
    "Trust anchors: one PEM file per certificate in CERTS_DIR/trust, used with\n"
    "the system store when system_trust = yes.\n"
    "\n"
    "commands:\n"
    "  add FILE [--name NAME] [--force]\n"
    "      each certificate of FILE (PEM, DER or PKCS#7) as trust/NAME.pem (NAME\n"
    "      defaults to the CN); a different file of that name is replaced only\n"
    "      with --force.\n"
    "  list [--json]\n"
    "      every trust anchor: name, subject, issuer, expiry, SHA-256 fingerprint.\n"
    "  remove NAME\n"
    "      delete trust/NAME.pem.\n"
    "  fetch HOST[:PORT] [--starttls smtp | --implicit] [--servername NAME]\n"
    "        [--timeout SECONDS] [--yes]\n"
    "      connect, take the chain the server presents, show each certificate\n"
    "      with its SHA-256 fingerprint and whether the chain verifies against\n"
    "      the current trust store, and store each one as trust/CN.pem after\n"
    "      asking (--yes: without asking).  Default: STARTTLS on port 25;\n"
    "      implicit TLS for ports 465 and 2465 (default port with --implicit:\n"
    "      465).  --timeout defaults to 30 seconds per step.\n"
    "\n"
    "options:\n"
    "  -c, --config FILE    find the store through FILE's certs_dir\n"
    "                       (default policy/tlsgate.ini)\n"
    "  --certs-dir DIR      the store directory (overrides the configuration)\n"
    "  -h, --help           this text\n"
    "\n"
    "A running gateway uses changed trust anchors after SIGHUP.\n"
    "\n"
    "exit codes: 0 success; 1 the operation failed (fetch: nothing stored when\n"
    "the question is declined); 2 usage error.\n";

/* Option codes above the ASCII range are long-only. */
enum {
    CERT_OPT_CERTS_DIR = 256,
    CERT_OPT_CN,
    CERT_OPT_SAN,
    CERT_OPT_ORG,
    CERT_OPT_OU,
    CERT_OPT_LOCALITY,
    CERT_OPT_STATE,
    CERT_OPT_COUNTRY,
    CERT_OPT_EMAIL,
    CERT_OPT_KEY,
    CERT_OPT_DAYS,
    CERT_OPT_FORCE,
    CERT_OPT_JSON,
    CERT_OPT_CHAIN,
    CERT_OPT_KEY_FILE,
    CERT_OPT_PASSWORD_FILE,
    CERT_OPT_HOST,
    CERT_OPT_NAME,
    CERT_OPT_STARTTLS,
    CERT_OPT_IMPLICIT,
    CERT_OPT_YES,
    CERT_OPT_NEW_KEY,
    CERT_OPT_LEGACY,
    CERT_OPT_SERVERNAME,
    CERT_OPT_TIMEOUT,
    CERT_OPT_PASSWORD, /* refused: a password never goes on the command line */
    CERT_OPT_END
};

static const struct option cert_options[] = {
    {"config", required_argument, NULL, 'c'},
    {"help", no_argument, NULL, 'h'},
    {"certs-dir", required_argument, NULL, CERT_OPT_CERTS_DIR},
    {"cn", required_argument, NULL, CERT_OPT_CN},
    {"san", required_argument, NULL, CERT_OPT_SAN},
    {"org", required_argument, NULL, CERT_OPT_ORG},
    {"ou", required_argument, NULL, CERT_OPT_OU},
    {"locality", required_argument, NULL, CERT_OPT_LOCALITY},
    {"state", required_argument, NULL, CERT_OPT_STATE},
    {"country", required_argument, NULL, CERT_OPT_COUNTRY},
    {"email", required_argument, NULL, CERT_OPT_EMAIL},
    {"key", required_argument, NULL, CERT_OPT_KEY},
    {"days", required_argument, NULL, CERT_OPT_DAYS},
    {"force", no_argument, NULL, CERT_OPT_FORCE},
    {"json", no_argument, NULL, CERT_OPT_JSON},
    {"chain", required_argument, NULL, CERT_OPT_CHAIN},
    {"key-file", required_argument, NULL, CERT_OPT_KEY_FILE},
    {"password-file", required_argument, NULL, CERT_OPT_PASSWORD_FILE},
    {"host", required_argument, NULL, CERT_OPT_HOST},
    {"name", required_argument, NULL, CERT_OPT_NAME},
    {"starttls", required_argument, NULL, CERT_OPT_STARTTLS},
    {"implicit", no_argument, NULL, CERT_OPT_IMPLICIT},
    {"yes", no_argument, NULL, CERT_OPT_YES},
    {"new-key", no_argument, NULL, CERT_OPT_NEW_KEY},
    {"legacy", no_argument, NULL, CERT_OPT_LEGACY},
    {"servername", required_argument, NULL, CERT_OPT_SERVERNAME},
    {"timeout", required_argument, NULL, CERT_OPT_TIMEOUT},
    {"password", required_argument, NULL, CERT_OPT_PASSWORD},
    {"passin", required_argument, NULL, CERT_OPT_PASSWORD},
    {"passout", required_argument, NULL, CERT_OPT_PASSWORD},
    {NULL, 0, NULL, 0},
};

/* One subcommand: its positional arguments and the options it takes. */
struct cert_cmd {
    const char *name;
    int min_pos, max_pos;
    const char *args; /* for messages: "NAME SIGNED.pem" */
    int (*run)(const struct cert_opts *o, struct cert_env *env);
    const int *allowed; /* option codes, 0-terminated */
};

#define CERT_ALLOW(...) ((const int[]){__VA_ARGS__, 0})

static const struct cert_cmd cert_cmds[] = {
    {"create", 1, 1, "NAME", cert_make_create,
     CERT_ALLOW(CERT_OPT_CN, CERT_OPT_SAN, CERT_OPT_ORG, CERT_OPT_OU, CERT_OPT_LOCALITY,
                CERT_OPT_STATE, CERT_OPT_COUNTRY, CERT_OPT_EMAIL, CERT_OPT_KEY, CERT_OPT_DAYS,
                CERT_OPT_FORCE)},
    {"csr", 1, 1, "NAME", cert_make_csr, CERT_ALLOW(-1)},
    {"install", 2, 2, "NAME SIGNED.pem", cert_install_run,
     CERT_ALLOW(CERT_OPT_CHAIN, CERT_OPT_KEY_FILE, CERT_OPT_PASSWORD_FILE, CERT_OPT_FORCE)},
    {"import", 2, 2, "NAME FILE.p12", cert_p12_import,
     CERT_ALLOW(CERT_OPT_PASSWORD_FILE, CERT_OPT_FORCE)},
    {"export", 2, 2, "NAME FILE.p12", cert_p12_export,
     CERT_ALLOW(CERT_OPT_PASSWORD_FILE, CERT_OPT_LEGACY, CERT_OPT_FORCE)},
    {"list", 0, 0, "", cert_show_list, CERT_ALLOW(CERT_OPT_JSON)},
    {"check", 1, 1, "NAME", cert_show_check, CERT_ALLOW(CERT_OPT_HOST, CERT_OPT_JSON)},
    {"renew", 1, 1, "NAME", cert_make_renew,
     CERT_ALLOW(CERT_OPT_NEW_KEY, CERT_OPT_KEY, CERT_OPT_DAYS)},
};

static const struct cert_cmd cert_trust_cmds[] = {
    {"add", 1, 1, "FILE", cert_trust_add, CERT_ALLOW(CERT_OPT_NAME, CERT_OPT_FORCE)},
    {"list", 0, 0, "", cert_trust_list, CERT_ALLOW(CERT_OPT_JSON)},
    {"remove", 1, 1, "NAME", cert_trust_remove, CERT_ALLOW(-1)},
    {"fetch", 1, 1, "HOST[:PORT]", cert_fetch_run,
     CERT_ALLOW(CERT_OPT_STARTTLS, CERT_OPT_IMPLICIT, CERT_OPT_YES, CERT_OPT_SERVERNAME,
                CERT_OPT_TIMEOUT)},
};

/* The tool being run: "cert" or "trust", with its table and usage. */
struct cert_tool {
    const char *name;
    const struct cert_cmd *cmds;
    size_t ncmds;
    const char *usage;
};

static int cert_usage_error(const struct cert_tool *t, const char *fmt, const char *a,
                            const char *b)
{
    fprintf(stderr, "tlsgate %s: ", t->name);
    fprintf(stderr, fmt, a, b);
    fprintf(stderr, "\n(tlsgate %s --help lists the commands and options)\n", t->name);
    return CERT_EXIT_USAGE;
}

static const char *cert_option_name(int code)
{
    for (const struct option *p = cert_options; p->name; p++)
        if (p->val == code)
            return p->name;
    return "?";
}

static bool cert_allowed(const struct cert_cmd *cmd, int code)
{
    if (code == 'c' || code == CERT_OPT_CERTS_DIR)
        return true;
    for (const int *a = cmd->allowed; *a; a++)
        if (*a == code)
            return true;
    return false;
}

/* A whole number in [MIN, MAX] for --NAME; -1 when it is not one. */
static int cert_number(const char *s, int min, int max)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (end == s || *end != '\0' || v < min || v > max)
        return -1;
    return (int)v;
}

/* Stores one repeatable value; -1 when there are too many. */
static int cert_push(const char **arr, size_t *n, size_t max, const char *v)
{
    if (*n >= max)
        return -1;
    arr[(*n)++] = v;
    return 0;
}

/* An option stored straight into a field of struct cert_opts. */
struct cert_field {
    int code;
    size_t offset;
};

/* Options whose value is kept as given. */
static const struct cert_field cert_text_options[] = {
    {'c', offsetof(struct cert_opts, config)},
    {CERT_OPT_CERTS_DIR, offsetof(struct cert_opts, certs_dir)},
    {CERT_OPT_CN, offsetof(struct cert_opts, cn)},
    {CERT_OPT_ORG, offsetof(struct cert_opts, org)},
    {CERT_OPT_OU, offsetof(struct cert_opts, ou)},
    {CERT_OPT_LOCALITY, offsetof(struct cert_opts, locality)},
    {CERT_OPT_STATE, offsetof(struct cert_opts, state)},
    {CERT_OPT_COUNTRY, offsetof(struct cert_opts, country)},
    {CERT_OPT_EMAIL, offsetof(struct cert_opts, email)},
    {CERT_OPT_KEY_FILE, offsetof(struct cert_opts, key_file)},
    {CERT_OPT_PASSWORD_FILE, offsetof(struct cert_opts, password_file)},
    {CERT_OPT_HOST, offsetof(struct cert_opts, host)},
    {CERT_OPT_NAME, offsetof(struct cert_opts, name)},
    {CERT_OPT_SERVERNAME, offsetof(struct cert_opts, servername)},
};

/* Options without a value: each sets a bool. */
static const struct cert_field cert_flag_options[] = {
    {CERT_OPT_FORCE, offsetof(struct cert_opts, force)},
    {CERT_OPT_JSON, offsetof(struct cert_opts, json)},
    {CERT_OPT_IMPLICIT, offsetof(struct cert_opts, implicit)},
    {CERT_OPT_YES, offsetof(struct cert_opts, yes)},
    {CERT_OPT_NEW_KEY, offsetof(struct cert_opts, new_key)},
    {CERT_OPT_LEGACY, offsetof(struct cert_opts, legacy)},
};

#define CERT_COUNT(a) (sizeof(a) / sizeof(*(a)))

/* Stores the value of option CODE in O; -1 for a bad value. */
static int cert_set_option(struct cert_opts *o, int code, const char *v)
{
    for (size_t i = 0; i < CERT_COUNT(cert_text_options); i++)
        if (cert_text_options[i].code == code) {
            *(const char **)((char *)o + cert_text_options[i].offset) = v;
            return 0;
        }
    for (size_t i = 0; i < CERT_COUNT(cert_flag_options); i++)
        if (cert_flag_options[i].code == code) {
            *(bool *)((char *)o + cert_flag_options[i].offset) = true;
            return 0;
        }
    switch (code) {
    case CERT_OPT_SAN:
        return cert_push(o->sans, &o->nsans, CERT_MAX_SANS, v);
    case CERT_OPT_CHAIN:
        return cert_push(o->chains, &o->nchains, CERT_MAX_CHAINS, v);
    case CERT_OPT_KEY:
        o->key_type = v;
        return cert_x509_valid_key_type(v) ? 0 : -1;
    case CERT_OPT_STARTTLS:
        o->starttls = v;
        return strcmp(v, "smtp") == 0 ? 0 : -1;
    case CERT_OPT_DAYS:
        return (o->days = cert_number(v, 1, 36500)) < 0 ? -1 : 0;
    case CERT_OPT_TIMEOUT:
        return (o->timeout = cert_number(v, 1, 600)) < 0 ? -1 : 0;
    }
    return 0;
}

static int cert_bad_value(const struct cert_tool *t, int code, const char *v)
{
    static const char *const hints[] = {
        [CERT_OPT_KEY - CERT_OPT_CERTS_DIR] = "rsa:2048, rsa:3072, rsa:4096, ec:P-256 or ec:P-384",
        [CERT_OPT_DAYS - CERT_OPT_CERTS_DIR] = "a number of days from 1 to 36500",
        [CERT_OPT_STARTTLS - CERT_OPT_CERTS_DIR] = "smtp",
        [CERT_OPT_TIMEOUT - CERT_OPT_CERTS_DIR] = "a number of seconds from 1 to 600",
        [CERT_OPT_SAN - CERT_OPT_CERTS_DIR] = "at most 64 of them",
        [CERT_OPT_CHAIN - CERT_OPT_CERTS_DIR] = "at most 8 of them",
    };
    const char *hint = hints[code - CERT_OPT_CERTS_DIR];
    char what[200];
    snprintf(what, sizeof(what), "--%s must be %s, not '%%s'%%s", cert_option_name(code),
             hint ? hint : "valid");
    return cert_usage_error(t, what, v, "");
}

/* The usage error for option character CH from getopt_long. */
static int cert_option_error(const struct cert_tool *t, const struct cert_cmd *cmd, int ch,
                             char **argv)
{
    if (ch == CERT_OPT_PASSWORD)
        return cert_usage_error(t, "a password is never taken from the command line%s%s",
                                " (anyone on the host can read it there): use --password-file "
                                "FILE, or answer the prompt",
                                "");
    char opt[3] = {'-', (char)optopt, '\0'}, name[64];
    /* the option without "=VALUE": the value may be a secret */
    snprintf(name, sizeof(name), "%.*s", (int)strcspn(argv[optind - 1], "="), argv[optind - 1]);
    const char *what = optopt > 0 && optopt < 128 ? opt : name;
    if (ch == ':')
        return cert_usage_error(t, "option %s needs a value%s", what, "");
    return cert_usage_error(t, "unknown option '%s' for %s", what, cmd->name);
}

/* Reads the options and positional arguments of CMD (ARGV[0] is its
 * name) into O.  -1 to go on, else the exit code (help, usage error). */
static int cert_parse(const struct cert_tool *t, const struct cert_cmd *cmd, int argc, char **argv,
                      struct cert_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->cmd = cmd->name;
    optind = 0; /* glibc: a full re-initialisation */
    opterr = 0;
    int ch;
    while ((ch = getopt_long(argc, argv, ":c:h", cert_options, NULL)) != -1) {
        if (ch == 'h') {
            fputs(t->usage, stdout);
            return CERT_EXIT_OK;
        }
        if (ch == CERT_OPT_PASSWORD || ch == '?' || ch == ':')
            return cert_option_error(t, cmd, ch, argv);
        if (!cert_allowed(cmd, ch))
            return cert_usage_error(t, "option --%s does not apply to %s", cert_option_name(ch),
                                    cmd->name);
        if (cert_set_option(o, ch, optarg) < 0)
            return cert_bad_value(t, ch, optarg);
    }
    for (int i = optind; i < argc; i++) {
        if (o->npos >= cmd->max_pos)
            return cert_usage_error(t, "unexpected argument '%s' (usage: %s)", argv[i],
                                    cmd->args[0] ? cmd->args : "no arguments");
        o->pos[o->npos++] = argv[i];
    }
    if (o->npos < cmd->min_pos)
        return cert_usage_error(t, "%s needs %s", cmd->name, cmd->args);
    return -1;
}

static int cert_dispatch(const struct cert_tool *t, int argc, char **argv)
{
    if (argc < 2) {
        fputs(t->usage, stderr);
        return CERT_EXIT_USAGE;
    }
    const char *sub = argv[1];
    if (!strcmp(sub, "-h") || !strcmp(sub, "--help") || !strcmp(sub, "help")) {
        fputs(t->usage, stdout);
        return CERT_EXIT_OK;
    }
    const struct cert_cmd *cmd = NULL;
    for (size_t i = 0; i < t->ncmds && cmd == NULL; i++)
        if (strcmp(t->cmds[i].name, sub) == 0)
            cmd = &t->cmds[i];
    if (cmd == NULL)
        return cert_usage_error(t, "unknown command '%s'%s", sub, "");
    struct cert_opts o;
    int rc = cert_parse(t, cmd, argc - 1, argv + 1, &o);
    if (rc >= 0)
        return rc;
    struct cert_env env;
    if (cert_util_env_load(&o, &env) < 0)
        return CERT_EXIT_FAIL;
    rc = cmd->run(&o, &env);
    cert_util_env_free(&env);
    ERR_clear_error();
    return rc;
}

int cert_main(int argc, char **argv)
{
    const struct cert_tool t = {"cert", cert_cmds, sizeof(cert_cmds) / sizeof(*cert_cmds),
                                cert_usage};
    return cert_dispatch(&t, argc, argv);
}

int trust_main(int argc, char **argv)
{
    const struct cert_tool t = {"trust", cert_trust_cmds,
                                sizeof(cert_trust_cmds) / sizeof(*cert_trust_cmds),
                                cert_trust_usage};
    return cert_dispatch(&t, argc, argv);
}

/* ---- checks for the gateway ---- */

/* WARN for each certificate of CERTS_DIR/NAME/cert.pem expiring soon. */
static int cert_scan_one(const char *certs_dir, const char *name,
                         void (*warn)(void *, const char *, const char *, long, const char *),
                         void *arg)
{
    char path[CERT_PATH_MAX], err[512];
    snprintf(path, sizeof(path), "%s/%s/cert.pem", certs_dir, name);
    STACK_OF(X509) *certs = cert_util_read_certs(path, err, sizeof(err));
    int n = 0;
    for (int i = 0; i < sk_X509_num(certs); i++) {
        X509 *x = sk_X509_value(certs, i);
        long days = cert_x509_days_left(x);
        if (days >= CERT_X509_SOON_DAYS && !cert_x509_expired(x))
            continue;
        char subject[512], when[64];
        cert_x509_dn(X509_get_subject_name(x), subject, sizeof(subject));
        cert_x509_time(X509_get0_notAfter(x), false, when, sizeof(when));
        warn(arg, name, subject, days, when);
        n++;
    }
    sk_X509_pop_free(certs, X509_free);
    ERR_clear_error();
    return n;
}

int cert_expiry_scan(const struct config *c,
                     void (*warn)(void *arg, const char *name, const char *subject, long days_left,
                                  const char *not_after),
                     void *arg)
{
    int n = 0;
    for (size_t i = 0; c != NULL && i < c->nlisteners; i++) {
        const char *name = c->listeners[i].certificate;
        bool seen = false;
        for (size_t j = 0; j < i && !seen; j++)
            seen = strcmp(c->listeners[j].certificate, name) == 0;
        if (!seen && name != NULL)
            n += cert_scan_one(c->certs_dir, name, warn, arg);
    }
    return n;
}

bool cert_name_matches_host(const char *certs_dir, const char *name, const char *hostname)
{
    char path[CERT_PATH_MAX], err[512];
    snprintf(path, sizeof(path), "%s/%s/cert.pem", certs_dir, name);
    X509 *x = cert_util_read_cert(path, err, sizeof(err));
    bool ok = x != NULL && hostname != NULL && cert_x509_host_matches(x, hostname);
    X509_free(x);
    ERR_clear_error();
    return ok;
}
