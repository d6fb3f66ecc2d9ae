/*
 * cert_x509: facts about certificates and chains for the certificate
 * commands, and making keys, certificates and CSRs.  A tool module: it
 * includes OpenSSL headers (like certstore and tls) but is never used by
 * the gateway's event loop.  Must not: print, or read files other than the
 * trust store.
 */
#include "cert_x509.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/bio.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509v3.h>

/* ---- names and facts ---- */

const char *cert_x509_cn(const X509_NAME *name, char *buf, size_t len)
{
    buf[0] = '\0';
    int i = name ? X509_NAME_get_index_by_NID(name, NID_commonName, -1) : -1;
    if (i < 0)
        return buf;
    ASN1_STRING *s = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i));
    unsigned char *utf8 = NULL;
    int n = ASN1_STRING_to_UTF8(&utf8, s);
    if (n >= 0)
        snprintf(buf, len, "%.*s", n, (const char *)utf8);
    OPENSSL_free(utf8);
    return buf;
}

const char *cert_x509_dn(const X509_NAME *name, char *buf, size_t len)
{
    buf[0] = '\0';
    BIO *b = BIO_new(BIO_s_mem());
    if (b == NULL)
        return buf;
    X509_NAME_print_ex(b, name, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB);
    char *data;
    long n = BIO_get_mem_data(b, &data);
    snprintf(buf, len, "%.*s", (int)n, data);
    BIO_free(b);
    return buf;
}

const char *cert_x509_label(X509 *x, char *buf, size_t len)
{
    if (cert_x509_cn(X509_get_subject_name(x), buf, len)[0] == '\0')
        cert_x509_dn(X509_get_subject_name(x), buf, len);
    return buf;
}

/* One DNS or IP entry as text into BUF; NULL for other kinds. */
static const char *cert_x509_gen_text(const GENERAL_NAME *g, bool prefix, char *buf, size_t len)
{
    if (g->type == GEN_DNS) {
        const ASN1_STRING *s = g->d.dNSName;
        snprintf(buf, len, "%s%.*s", prefix ? "DNS:" : "", ASN1_STRING_length(s),
                 (const char *)ASN1_STRING_get0_data(s));
        return buf;
    }
    if (g->type != GEN_IPADD)
        return NULL;
    const ASN1_OCTET_STRING *ip = g->d.iPAddress;
    char addr[INET6_ADDRSTRLEN] = "?";
    int n = ASN1_STRING_length(ip);
    if (n == 4 || n == 16)
        inet_ntop(n == 4 ? AF_INET : AF_INET6, ASN1_STRING_get0_data(ip), addr, sizeof(addr));
    snprintf(buf, len, "%s%s", prefix ? "IP:" : "", addr);
    return buf;
}

/* The SAN entries joined by SEP, with or without their "DNS:"/"IP:". */
static const char *cert_x509_join_sans(X509 *x, bool prefix, const char *sep, char *buf, size_t len)
{
    buf[0] = '\0';
    GENERAL_NAMES *gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    size_t used = 0;
    for (int i = 0; i < sk_GENERAL_NAME_num(gens); i++) {
        char one[512];
        if (!cert_x509_gen_text(sk_GENERAL_NAME_value(gens, i), prefix, one, sizeof(one)))
            continue;
        int n = snprintf(buf + used, len - used, "%s%s", used ? sep : "", one);
        if (n < 0 || (size_t)n >= len - used)
            break;
        used += (size_t)n;
    }
    GENERAL_NAMES_free(gens);
    return buf;
}

const char *cert_x509_sans(X509 *x, const char *sep, char *buf, size_t len)
{
    return cert_x509_join_sans(x, false, sep, buf, len);
}

const char *cert_x509_san_spec(X509 *x, char *buf, size_t len)
{
    return cert_x509_join_sans(x, true, ",", buf, len);
}

char **cert_x509_san_list(X509 *x, size_t *n)
{
    GENERAL_NAMES *gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    int total = sk_GENERAL_NAME_num(gens);
    char **v = calloc((size_t)(total > 0 ? total : 0) + 1, sizeof(*v));
    *n = 0;
    for (int i = 0; v && i < total; i++) {
        char one[512];
        if (cert_x509_gen_text(sk_GENERAL_NAME_value(gens, i), false, one, sizeof(one)))
            v[(*n)++] = strdup(one);
    }
    GENERAL_NAMES_free(gens);
    return v;
}

void cert_x509_free_strings(char **v, size_t n)
{
    for (size_t i = 0; v && i < n; i++)
        free(v[i]);
    free(v);
}

const char *cert_x509_key_type(const EVP_PKEY *key, char *buf, size_t len)
{
    char group[80] = "";
    size_t glen = 0;
    switch (EVP_PKEY_get_base_id(key)) {
    case EVP_PKEY_RSA:
        snprintf(buf, len, "rsa:%d", EVP_PKEY_get_bits(key));
        break;
    case EVP_PKEY_EC: {
        EVP_PKEY_get_group_name(key, group, sizeof(group), &glen);
        const char *nist = EC_curve_nid2nist(OBJ_sn2nid(group));
        snprintf(buf, len, "ec:%s", nist ? nist : group);
        break;
    }
    case EVP_PKEY_ED25519:
        snprintf(buf, len, "ed25519");
        break;
    case EVP_PKEY_ED448:
        snprintf(buf, len, "ed448");
        break;
    default:
        snprintf(buf, len, "%s:%d", OBJ_nid2sn(EVP_PKEY_get_base_id(key)), EVP_PKEY_get_bits(key));
    }
    return buf;
}

const char *cert_x509_time(const ASN1_TIME *t, bool iso, char *buf, size_t len)
{
    struct tm tm;
    buf[0] = '\0';
    if (t != NULL && ASN1_TIME_to_tm(t, &tm) == 1)
        strftime(buf, len, iso ? "%Y-%m-%dT%H:%M:%SZ" : "%Y-%m-%d %H:%M:%S UTC", &tm);
    return buf;
}

long cert_x509_days_left(X509 *x)
{
    struct tm tm;
    if (ASN1_TIME_to_tm(X509_get0_notAfter(x), &tm) != 1)
        return 0;
    long long diff = (long long)timegm(&tm) - (long long)time(NULL);
    if (diff >= 0)
        return (long)(diff / 86400);
    return (long)-((-diff + 86399) / 86400);
}

bool cert_x509_expired(X509 *x)
{
    return X509_cmp_current_time(X509_get0_notAfter(x)) < 0;
}

bool cert_x509_not_yet_valid(X509 *x)
{
    return X509_cmp_current_time(X509_get0_notBefore(x)) > 0;
}

bool cert_x509_self_signed(X509 *x)
{
    int r = X509_self_signed(x, 1);
    ERR_clear_error();
    return r == 1;
}

bool cert_x509_is_ca(X509 *x)
{
    return X509_check_ca(x) != 0;
}

const char *cert_x509_fingerprint(X509 *x, char *buf, size_t len)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    buf[0] = '\0';
    if (X509_digest(x, EVP_sha256(), md, &n) != 1)
        return buf;
    size_t used = 0;
    for (unsigned int i = 0; i < n && used + 4 <= len; i++)
        used += (size_t)snprintf(buf + used, len - used, "%s%02X", i ? ":" : "", md[i]);
    return buf;
}

bool cert_x509_key_matches(X509 *x, const EVP_PKEY *key)
{
    const EVP_PKEY *pub = X509_get0_pubkey(x);
    bool ok = pub != NULL && key != NULL && EVP_PKEY_eq(pub, key) == 1;
    ERR_clear_error();
    return ok;
}

bool cert_x509_host_matches(X509 *x, const char *host)
{
    unsigned char addr[16];
    int r;
    if (inet_pton(AF_INET, host, addr) == 1 || inet_pton(AF_INET6, host, addr) == 1)
        r = X509_check_ip_asc(x, host, 0);
    else /* the rules of tls_cert_match: CN only without DNS SANs */
        r = X509_check_host(x, host, 0, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS, NULL);
    ERR_clear_error();
    return r == 1;
}

bool cert_x509_same(X509 *a, X509 *b)
{
    return X509_cmp(a, b) == 0;
}

/* ---- the trust store ---- */

X509_STORE *cert_x509_trust_store(const char *certs_dir, bool system)
{
    X509_STORE *store = X509_STORE_new();
    if (store == NULL)
        return NULL;
    if (system)
        X509_STORE_set_default_paths(store);
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s/trust", certs_dir);
    DIR *d = opendir(dir);
    struct dirent *de;
    while (d != NULL && (de = readdir(d)) != NULL) {
        size_t n = strlen(de->d_name);
        if (de->d_name[0] == '.' || n < 5 ||
            (strcmp(de->d_name + n - 4, ".pem") && strcmp(de->d_name + n - 4, ".crt")))
            continue;
        char path[4096 + 256];
        snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
        X509_STORE_load_file(store, path);
    }
    if (d != NULL)
        closedir(d);
    ERR_clear_error();
    return store;
}

/* ---- chain order ---- */

/* ISSUER issued SUBJECT: names, key identifiers and the signature. */
static bool cert_x509_issued(X509 *issuer, X509 *subject)
{
    bool ok = X509_check_issued(issuer, subject) == X509_V_OK &&
              X509_verify(subject, X509_get0_pubkey(issuer)) == 1;
    ERR_clear_error();
    return ok;
}

/* CANDIDATES without duplicates (of each other or of LEAF); new stack of
 * borrowed pointers. */
static STACK_OF(X509) * cert_x509_dedupe(X509 *leaf, STACK_OF(X509) * candidates, FILE *notes)
{
    STACK_OF(X509) *out = sk_X509_new_null();
    for (int i = 0; out && i < sk_X509_num(candidates); i++) {
        X509 *c = sk_X509_value(candidates, i);
        char label[256];
        bool dup = cert_x509_same(c, leaf);
        for (int j = 0; !dup && j < sk_X509_num(out); j++)
            dup = cert_x509_same(c, sk_X509_value(out, j));
        if (!dup) {
            sk_X509_push(out, c);
            continue;
        }
        if (notes)
            fprintf(notes, "removed a duplicate of '%s' from the chain\n",
                    cert_x509_label(c, label, sizeof(label)));
    }
    return out;
}

/* The index in POOL of the certificate that issued CUR, or -1. */
static int cert_x509_find_issuer(STACK_OF(X509) * pool, X509 *cur)
{
    for (int i = 0; i < sk_X509_num(pool); i++)
        if (cert_x509_issued(sk_X509_value(pool, i), cur))
            return i;
    return -1;
}

/* Fails (ERR) or, with DROP, notes each certificate left in POOL. */
static int cert_x509_unrelated(STACK_OF(X509) * pool, X509 *leaf, bool drop, FILE *notes, char *err,
                               size_t errlen)
{
    char label[256], top[256];
    cert_x509_label(leaf, top, sizeof(top));
    for (int i = 0; drop && notes && i < sk_X509_num(pool); i++)
        fprintf(notes, "dropped '%s': it is not part of the chain of '%s'\n",
                cert_x509_label(sk_X509_value(pool, i), label, sizeof(label)), top);
    if (drop || sk_X509_num(pool) == 0)
        return 0;
    snprintf(err, errlen,
             "'%s' is not part of the chain of '%s' (it issued neither that certificate nor any "
             "above it)",
             cert_x509_label(sk_X509_value(pool, 0), label, sizeof(label)), top);
    return -1;
}

int cert_x509_order(X509 *leaf, STACK_OF(X509) * candidates, bool drop_unrelated,
                    STACK_OF(X509) * *ordered, FILE *notes, char *err, size_t errlen)
{
    STACK_OF(X509) *pool = cert_x509_dedupe(leaf, candidates, notes);
    STACK_OF(X509) *out = sk_X509_new_null();
    if (pool == NULL || out == NULL || !X509_up_ref(leaf) || !sk_X509_push(out, leaf)) {
        snprintf(err, errlen, "out of memory");
        sk_X509_free(pool);
        sk_X509_pop_free(out, X509_free);
        return -1;
    }
    X509 *cur = leaf;
    int i;
    while (!cert_x509_self_signed(cur) && (i = cert_x509_find_issuer(pool, cur)) >= 0) {
        cur = sk_X509_delete(pool, i);
        X509_up_ref(cur);
        sk_X509_push(out, cur);
    }
    int rc = cert_x509_unrelated(pool, leaf, drop_unrelated, notes, err, errlen);
    sk_X509_free(pool);
    if (rc < 0)
        sk_X509_pop_free(out, X509_free);
    else
        *ordered = out;
    return rc;
}

/* ---- verification ---- */

const char *cert_x509_chain_name(enum cert_x509_chain s)
{
    static const char *const names[] = {"complete", "self_signed", "missing_intermediate",
                                        "untrusted_root", "invalid"};
    return names[s];
}

/* "a → b → c" of the labels of CHAIN into BUF. */
static const char *cert_x509_path_text(STACK_OF(X509) * chain, char *buf, size_t len)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; i < sk_X509_num(chain); i++) {
        char label[256];
        int n = snprintf(buf + used, len - used, "%s'%s'", i ? " -> " : "",
                         cert_x509_label(sk_X509_value(chain, i), label, sizeof(label)));
        if (n < 0 || (size_t)n >= len - used)
            break;
        used += (size_t)n;
    }
    return buf;
}

/* The sentence when the issuer of LAST (the end of the chain so far) is
 * nowhere: given alone, the leaf lacks its intermediate; with a chain, it
 * may as well end at a root the store does not trust. */
static void cert_x509_judge_missing(struct cert_x509_verdict *v, X509 *last, const char *path)
{
    char label[256], issuer[300];
    v->status = CERT_CHAIN_MISSING;
    cert_x509_label(last, label, sizeof(label));
    cert_x509_dn(X509_get_issuer_name(last), issuer, sizeof(issuer));
    if (sk_X509_num(v->built) == 1)
        snprintf(v->text, sizeof(v->text),
                 "missing intermediate: the issuer of '%s' (%s) is neither in the chain nor in "
                 "the trust store",
                 label, issuer);
    else
        snprintf(v->text, sizeof(v->text),
                 "missing intermediate or untrusted root: the chain %s ends at '%s', whose "
                 "issuer (%s) is neither in the chain nor in the trust store",
                 path, label, issuer);
}

/* The verdict's status and sentence from the verification error. */
static void cert_x509_judge(struct cert_x509_verdict *v, X509 *at)
{
    char path[600], label[256];
    X509 *last = sk_X509_value(v->built, sk_X509_num(v->built) - 1);
    cert_x509_path_text(v->built, path, sizeof(path));
    switch (v->error) {
    case X509_V_OK:
        v->status = CERT_CHAIN_COMPLETE;
        if (sk_X509_num(v->built) == 1)
            snprintf(v->text, sizeof(v->text), "self-signed, and trusted by the trust store");
        else
            snprintf(v->text, sizeof(v->text), "complete chain: %s (trusted)", path);
        break;
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
        v->status = CERT_CHAIN_SELF_SIGNED;
        snprintf(v->text, sizeof(v->text),
                 "self-signed: clients that verify certificates will not trust it");
        break;
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
        cert_x509_judge_missing(v, last, path);
        break;
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
        v->status = CERT_CHAIN_UNTRUSTED;
        snprintf(v->text, sizeof(v->text),
                 "untrusted root: the chain %s ends at '%s', which is not in the trust store", path,
                 cert_x509_label(last, label, sizeof(label)));
        break;
    default:
        v->status = CERT_CHAIN_INVALID;
        snprintf(v->text, sizeof(v->text), "does not verify: %s (at '%s')",
                 X509_verify_cert_error_string(v->error),
                 at ? cert_x509_label(at, label, sizeof(label)) : "?");
    }
}

void cert_x509_verify(X509_STORE *store, STACK_OF(X509) * chain, struct cert_x509_verdict *v)
{
    memset(v, 0, sizeof(*v));
    X509 *leaf = sk_X509_value(chain, 0);
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    if (ctx == NULL || store == NULL || leaf == NULL ||
        X509_STORE_CTX_init(ctx, store, leaf, chain) != 1) {
        v->status = CERT_CHAIN_INVALID;
        v->error = X509_V_ERR_UNSPECIFIED;
        snprintf(v->text, sizeof(v->text), "cannot verify: out of memory");
        X509_STORE_CTX_free(ctx);
        return;
    }
    X509_VERIFY_PARAM_set_flags(X509_STORE_CTX_get0_param(ctx), X509_V_FLAG_NO_CHECK_TIME);
    X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_SERVER);
    int ok = X509_verify_cert(ctx);
    v->error = ok == 1 ? X509_V_OK : X509_STORE_CTX_get_error(ctx);
    v->built = X509_STORE_CTX_get1_chain(ctx);
    if (v->built == NULL || sk_X509_num(v->built) == 0) {
        sk_X509_free(v->built);
        v->built = sk_X509_new_null();
        X509_up_ref(leaf);
        sk_X509_push(v->built, leaf);
    }
    cert_x509_judge(v, X509_STORE_CTX_get_current_cert(ctx));
    X509_STORE_CTX_free(ctx);
    ERR_clear_error();
}

void cert_x509_verdict_free(struct cert_x509_verdict *v)
{
    sk_X509_pop_free(v->built, X509_free);
    v->built = NULL;
}

/* ---- making keys, certificates and CSRs ---- */

static const char *const cert_x509_key_types[] = {"rsa:2048", "rsa:3072", "rsa:4096", "ec:P-256",
                                                  "ec:P-384"};

bool cert_x509_valid_key_type(const char *type)
{
    for (size_t i = 0; i < sizeof(cert_x509_key_types) / sizeof(*cert_x509_key_types); i++)
        if (strcasecmp(type, cert_x509_key_types[i]) == 0)
            return true;
    return false;
}

EVP_PKEY *cert_x509_new_key(const char *type)
{
    if (!cert_x509_valid_key_type(type))
        return NULL;
    if (strncasecmp(type, "rsa:", 4) == 0)
        return EVP_RSA_gen((unsigned int)atoi(type + 4));
    return EVP_EC_gen(strcasecmp(type + 3, "P-256") == 0 ? "P-256" : "P-384");
}

/* Adds FIELD=VALUE to NAME if VALUE is set, within MAX characters. */
static int cert_x509_add_field(X509_NAME *name, const char *field, const char *opt,
                               const char *value, size_t max, char *err, size_t errlen)
{
    if (value == NULL || value[0] == '\0')
        return 0;
    if (strlen(value) > max) {
        snprintf(err, errlen, "%s is longer than %zu characters, the limit of X.509", opt, max);
        return -1;
    }
    if (!X509_NAME_add_entry_by_txt(name, field, MBSTRING_UTF8, (const unsigned char *)value, -1,
                                    -1, 0)) {
        ERR_clear_error();
        snprintf(err, errlen, "%s '%s' cannot be put in a certificate", opt, value);
        return -1;
    }
    return 0;
}

static bool cert_x509_valid_country(const char *c)
{
    return c == NULL ||
           (strlen(c) == 2 && isupper((unsigned char)c[0]) && isupper((unsigned char)c[1]));
}

X509_NAME *cert_x509_make_name(const struct cert_x509_subject *s, char *err, size_t errlen)
{
    if (!cert_x509_valid_country(s->country)) {
        snprintf(err, errlen,
                 "--country must be a two-letter ISO 3166 code such as DE or US, "
                 "not '%s'",
                 s->country);
        return NULL;
    }
    X509_NAME *n = X509_NAME_new();
    if (n == NULL || cert_x509_add_field(n, "C", "--country", s->country, 2, err, errlen) ||
        cert_x509_add_field(n, "ST", "--state", s->state, 128, err, errlen) ||
        cert_x509_add_field(n, "L", "--locality", s->locality, 128, err, errlen) ||
        cert_x509_add_field(n, "O", "--org", s->org, 64, err, errlen) ||
        cert_x509_add_field(n, "OU", "--ou", s->ou, 64, err, errlen) ||
        cert_x509_add_field(n, "CN", "--cn", s->cn, 64, err, errlen) ||
        cert_x509_add_field(n, "emailAddress", "--email", s->email, 128, err, errlen)) {
        X509_NAME_free(n);
        return NULL;
    }
    return n;
}

/* Adds extension NID=VALUE (through the v3 config syntax) to STACK. */
static int cert_x509_ext(STACK_OF(X509_EXTENSION) * *stack, X509V3_CTX *ctx, int nid,
                         const char *value)
{
    X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, ctx, nid, value);
    if (e == NULL)
        return -1;
    if (X509v3_add_ext(stack, e, -1) == NULL) {
        X509_EXTENSION_free(e);
        return -1;
    }
    X509_EXTENSION_free(e);
    return 0;
}

/* The extensions of a server certificate or CSR for KEY. */
static STACK_OF(X509_EXTENSION) *
    cert_x509_server_exts(X509V3_CTX *ctx, const EVP_PKEY *key, const char *sans, bool cert)
{
    STACK_OF(X509_EXTENSION) *s = NULL;
    bool rsa = EVP_PKEY_get_base_id(key) == EVP_PKEY_RSA;
    int bad = 0;
    if (cert)
        bad |= cert_x509_ext(&s, ctx, NID_basic_constraints, "critical,CA:FALSE");
    bad |= cert_x509_ext(&s, ctx, NID_key_usage,
                         rsa ? "critical,digitalSignature,keyEncipherment"
                             : "critical,digitalSignature");
    bad |= cert_x509_ext(&s, ctx, NID_ext_key_usage, "serverAuth,clientAuth");
    if (sans && sans[0])
        bad |= cert_x509_ext(&s, ctx, NID_subject_alt_name, sans);
    if (cert)
        bad |= cert_x509_ext(&s, ctx, NID_subject_key_identifier, "hash");
    if (bad) {
        sk_X509_EXTENSION_pop_free(s, X509_EXTENSION_free);
        return NULL;
    }
    return s;
}

static const EVP_MD *cert_x509_md(const EVP_PKEY *key)
{
    return EVP_PKEY_get_bits(key) >= 384 && EVP_PKEY_get_base_id(key) == EVP_PKEY_EC ? EVP_sha384()
                                                                                     : EVP_sha256();
}

/* A random positive 128-bit serial number into X. */
static int cert_x509_serial(X509 *x)
{
    unsigned char b[16];
    if (RAND_bytes(b, sizeof(b)) != 1)
        return -1;
    b[0] = (unsigned char)((b[0] & 0x7f) | 0x01);
    BIGNUM *bn = BN_bin2bn(b, sizeof(b), NULL);
    int ok = bn && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) != NULL;
    BN_free(bn);
    return ok ? 0 : -1;
}

/* Version, serial, dates, names and key of a new self-signed X. */
static int cert_x509_fill(X509 *x, EVP_PKEY *key, const X509_NAME *subject, int days)
{
    if (!X509_set_version(x, 2) || cert_x509_serial(x) < 0 ||
        !X509_gmtime_adj(X509_getm_notBefore(x), -300) ||
        !X509_gmtime_adj(X509_getm_notAfter(x), (long)days * 86400) ||
        !X509_set_subject_name(x, subject) || !X509_set_issuer_name(x, subject) ||
        !X509_set_pubkey(x, key))
        return -1;
    return 0;
}

/* Adds the extensions of a self-signed server certificate to X. */
static int cert_x509_cert_exts(X509 *x, EVP_PKEY *key, const char *sans)
{
    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
    STACK_OF(X509_EXTENSION) *exts = cert_x509_server_exts(&ctx, key, sans, true);
    int bad = exts == NULL;
    for (int i = 0; !bad && i < sk_X509_EXTENSION_num(exts); i++)
        bad = !X509_add_ext(x, sk_X509_EXTENSION_value(exts, i), -1);
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    /* after the subject key identifier, which it copies */
    X509_EXTENSION *aki =
        bad ? NULL : X509V3_EXT_conf_nid(NULL, &ctx, NID_authority_key_identifier, "keyid");
    bad = bad || aki == NULL || !X509_add_ext(x, aki, -1);
    X509_EXTENSION_free(aki);
    return bad ? -1 : 0;
}

X509 *cert_x509_make_cert(EVP_PKEY *key, const X509_NAME *subject, const char *sans, int days,
                          char *err, size_t errlen)
{
    X509 *x = X509_new();
    if (x == NULL || cert_x509_fill(x, key, subject, days) < 0 ||
        cert_x509_cert_exts(x, key, sans) < 0 || X509_sign(x, key, cert_x509_md(key)) <= 0) {
        snprintf(err, errlen, "cannot make the certificate");
        ERR_clear_error();
        X509_free(x);
        return NULL;
    }
    return x;
}

X509_REQ *cert_x509_make_req(EVP_PKEY *key, const X509_NAME *subject, const char *sans, char *err,
                             size_t errlen)
{
    X509_REQ *req = X509_REQ_new();
    X509V3_CTX ctx;
    STACK_OF(X509_EXTENSION) *exts = NULL;
    if (req == NULL || !X509_REQ_set_version(req, 0) || !X509_REQ_set_subject_name(req, subject) ||
        !X509_REQ_set_pubkey(req, key))
        goto fail;
    X509V3_set_ctx(&ctx, NULL, NULL, req, NULL, 0);
    exts = cert_x509_server_exts(&ctx, key, sans, false);
    if (exts == NULL || !X509_REQ_add_extensions(req, exts) ||
        X509_REQ_sign(req, key, cert_x509_md(key)) <= 0)
        goto fail;
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    return req;
fail:
    snprintf(err, errlen, "cannot make the certificate signing request");
    ERR_clear_error();
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    X509_REQ_free(req);
    return NULL;
}

/* A DNS name as certificates carry it: labels of letters, digits and '-'
 * (an optional "*." in front), at most 253 characters. */
static bool cert_x509_valid_dns(const char *s)
{
    if (strncmp(s, "*.", 2) == 0)
        s += 2;
    size_t n = strlen(s), label = 0;
    if (n == 0 || n > 253 || s[0] == '.' || s[0] == '-' || s[n - 1] == '.')
        return false;
    for (const char *p = s; *p; p++) {
        if (*p == '.') {
            if (label == 0 || p[-1] == '-')
                return false;
            label = 0;
        } else if ((isalnum((unsigned char)*p) || *p == '-') && ++label <= 63) {
            continue;
        } else {
            return false;
        }
    }
    return true;
}

int cert_x509_san_normalize(const char *in, char *buf, size_t len)
{
    unsigned char addr[16];
    char text[INET6_ADDRSTRLEN];
    bool want_ip = strncasecmp(in, "IP:", 3) == 0, want_dns = strncasecmp(in, "DNS:", 4) == 0;
    const char *v = want_ip ? in + 3 : want_dns ? in + 4 : in;
    if (!want_dns) {
        int af = inet_pton(AF_INET, v, addr) == 1    ? AF_INET
                 : inet_pton(AF_INET6, v, addr) == 1 ? AF_INET6
                                                     : 0;
        if (af != 0) {
            snprintf(buf, len, "IP:%s", inet_ntop(af, addr, text, sizeof(text)));
            return 0;
        }
        if (want_ip)
            return -1;
    }
    if (!cert_x509_valid_dns(v))
        return -1;
    snprintf(buf, len, "DNS:%s", v);
    return 0;
}
