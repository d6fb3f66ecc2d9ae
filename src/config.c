/*
 * config: the INI file of SPEC section 4 turned into an immutable,
 * refcounted struct config.
 *
 * Three passes.  (1) Lines: inih splits "key = value" and strips comments;
 * our own reader feeds it one line per call, counts lines, tracks section
 * headers (inih truncates long section names), joins indented continuation
 * lines of lists and refuses lines too long for inih instead of letting it
 * split them.  (2) Build: every section's keys are checked and stored in its
 * struct, in an order that lets a listener inherit [gateway] wherever that
 * section is in the file.  (3) Check: references between sections, port
 * clashes, certificates and secret files on disk.  Every problem is kept
 * with its line and printed sorted by line; any problem discards the result.
 *
 * It must not: read the content of a secret file (it only stats it), look
 * names up (addresses are numeric), touch a running session, or rewrite
 * relative paths (they are relative to the working directory).
 */
#include "config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define CONFIG_MAX_KEYS              32
#define CONFIG_NONE                  -1 /* no section yet: a key is an error */
#define CONFIG_SKIP                  -2 /* a bad or duplicate section: its keys are ignored */
#define CONFIG_NAME_MAX              64
#define CONFIG_ARRAY_SIZE(a)         (sizeof(a) / sizeof((a)[0]))
#define CONFIG_FIELD(obj, off, type) ((type *)(void *)((char *)(obj) + (off)))

struct config_parser;
struct config_key;
struct config_section;

/* One "key = value" as written; value NULL: the key is not set. */
struct config_item {
    char *value;
    int line;
};

typedef void config_setter(struct config_parser *p, void *obj, const struct config_key *k,
                           const struct config_item *it);
typedef void config_hook(struct config_parser *p, struct config_section *s, void *obj);

struct config_key {
    const char *name;
    config_setter *set;
    size_t off;  /* of the field in the section's struct */
    size_t off2; /* of the count, for lists */
    long long min, max;
    const char *const *words; /* the values of an enum */
    bool list;                /* may continue on indented lines */
};

enum config_type_id {
    CONFIG_GATEWAY,
    CONFIG_LISTENER,
    CONFIG_SENDERGROUP,
    CONFIG_DESTINATION,
    CONFIG_ROUTE,
    CONFIG_ALERTS
};

struct config_type {
    enum config_type_id id;
    const char *name;
    bool named;
    const struct config_key *keys;
    size_t nkeys;
    config_hook *init;   /* defaults, before the keys */
    config_hook *finish; /* required keys, defaults that depend on other keys */
    config_hook *check;  /* other sections, files on disk */
};

struct config_section {
    const struct config_type *type;
    char *name;  /* after ':' (destinations lower-case), NULL for unnamed */
    char *label; /* "listener:in", for messages */
    int line;
    size_t index; /* in the type's array in struct config */
    struct config_item items[CONFIG_MAX_KEYS];
};

struct config_error {
    int line;
    size_t seq;
    char *msg;
};

struct config_parser {
    const char *name; /* of the file, in messages */
    const char *next; /* unread input */
    int line;
    struct config_section *sections;
    size_t nsections;
    long cur;      /* index of the section receiving keys, or CONFIG_NONE/SKIP */
    bool seen_key; /* a key line since the last header: indentation may continue it */
    int last_key;  /* key that indented lines continue; -1: ignore them */
    struct config_error *errors;
    size_t nerrors;
    bool oom;
    struct config *c;
};

static const char *const config_tls_in_words[] = {"off", "preferred", "required", NULL};
static const char *const config_tls_out_words[] = {
    "none", "preferred", "required", "preferred-verify", "required-verify", NULL};
static const char *const config_action_words[] = {"accept", "relay", "reject", NULL};
static const char *const config_proxy_words[] = {"no", "v1", "v2", "any", NULL};
static const char *const config_version_words[] = {"TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3", NULL};
static const char *const config_true_words[] = {"yes", "true", "on", "1", NULL};
static const char *const config_false_words[] = {"no", "false", "off", "0", NULL};

/* ---- memory and errors ---- */

static void config_error(struct config_parser *p, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Appends one zeroed element to *ARRAYP (of *N elements of SIZE bytes). */
static void *config_grow(struct config_parser *p, void *arrayp, size_t *n, size_t size)
{
    void **array = arrayp;
    char *grown = realloc(*array, (*n + 1) * size);
    if (!grown) {
        p->oom = true;
        return NULL;
    }
    *array = grown;
    memset(grown + *n * size, 0, size);
    return grown + (*n)++ * size;
}

static char *config_strdup(struct config_parser *p, const char *s)
{
    char *d = strdup(s);
    if (!d)
        p->oom = true;
    return d;
}

/* Replaces the string in *FIELD (owned) by a copy of S. */
static void config_replace(struct config_parser *p, char **field, const char *s)
{
    free(*field);
    *field = config_strdup(p, s);
}

static void config_error(struct config_parser *p, int line, const char *fmt, ...)
{
    va_list ap;
    char *msg;
    va_start(ap, fmt);
    if (vasprintf(&msg, fmt, ap) < 0)
        msg = NULL;
    va_end(ap);
    struct config_error *e = msg ? config_grow(p, &p->errors, &p->nerrors, sizeof(*e)) : NULL;
    if (!e) {
        free(msg);
        p->oom = true;
        return;
    }
    e->line = line;
    e->seq = p->nerrors;
    e->msg = msg;
}

static int config_error_cmp(const void *a, const void *b)
{
    const struct config_error *x = a, *y = b;
    if (x->line != y->line)
        return x->line < y->line ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static void config_report(struct config_parser *p, FILE *errs)
{
    qsort(p->errors, p->nerrors, sizeof(*p->errors), config_error_cmp);
    for (size_t i = 0; errs && i < p->nerrors; i++)
        fprintf(errs, "%s:%d: %s\n", p->name, p->errors[i].line, p->errors[i].msg);
    if (errs && p->oom)
        fprintf(errs, "%s:0: out of memory\n", p->name);
    if (errs)
        fflush(errs);
}

/* ---- text ---- */

static char *config_lskip(char *s)
{
    while (*s && isspace((unsigned char)*s))
        s++;
    return s;
}

static void config_rstrip(char *s)
{
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
}

static void config_lower(char *s)
{
    for (; *s; s++)
        *s = (char)tolower((unsigned char)*s);
}

/* Where inih sees the end of a key (one of CHARS) or an inline comment (a ';'
 * after white space); its rule, repeated so that both agree on every line. */
static char *config_find_or_comment(char *s, const char *chars)
{
    bool was_space = false;
    while (*s && !(chars && strchr(chars, *s)) && !(was_space && *s == ';')) {
        was_space = isspace((unsigned char)*s);
        s++;
    }
    return s;
}

/* Cuts an inline " ; comment" and trailing space, whatever inih was built with. */
static void config_strip_comment(char *s)
{
    *config_find_or_comment(s, NULL) = '\0';
    config_rstrip(s);
}

static int config_word(const char *const *words, const char *s)
{
    for (int i = 0; words[i]; i++)
        if (strcasecmp(words[i], s) == 0)
            return i;
    return -1;
}

/* "a, b or c" */
static void config_join_words(const char *const *words, char *buf, size_t size)
{
    size_t n = 0;
    buf[0] = '\0';
    for (int i = 0; words[i]; i++) {
        const char *sep = i == 0 ? "" : words[i + 1] ? ", " : " or ";
        n += (size_t)snprintf(buf + n, n < size ? size - n : 0, "%s%s", sep, words[i]);
    }
}

static bool config_is_label(const char *s, size_t n)
{
    if (n == 0 || n > 63 || s[0] == '-' || s[n - 1] == '-')
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '-')
            return false;
    return true;
}

/* A host or domain name: letters, digits and '-' in dot-separated labels. */
static bool config_is_domain(const char *s)
{
    if (strlen(s) > 253)
        return false;
    for (;;) {
        size_t n = strcspn(s, ".");
        if (!config_is_label(s, n))
            return false;
        if (s[n] == '\0')
            return true;
        s += n + 1;
    }
}

/* "example.org" or ".example.org" */
static bool config_is_domain_or_suffix(const char *s)
{
    return config_is_domain(s[0] == '.' ? s + 1 : s);
}

/* Section, certificate and other names: letters, digits, '.', '_', '-'. */
static bool config_is_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > CONFIG_NAME_MAX || s[0] == '.')
        return false;
    return strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == n;
}

/* Decimal digits only, no sign, no overflow. */
static int config_parse_ll(const char *s, long long *out)
{
    if (!isdigit((unsigned char)*s))
        return -1;
    errno = 0;
    char *end;
    *out = strtoll(s, &end, 10);
    return errno || *end ? -1 : 0;
}

/* ---- addresses and networks ---- */

static int config_parse_port(const char *s)
{
    long long port;
    if (strlen(s) > 5 || config_parse_ll(s, &port) < 0 || port < 1 || port > 65535)
        return -1;
    return (int)port;
}

/* Splits "host:port" or "[v6]:port" into HOST (buffer of SIZE) and the port. */
static int config_split_address(const char *text, char *host, size_t size, int *family)
{
    const char *colon;
    size_t n;
    if (text[0] == '[') {
        colon = strstr(text, "]:");
        *family = AF_INET6;
        text++;
        n = colon ? (size_t)(colon - text) : 0;
        colon = colon ? colon + 1 : NULL;
    } else {
        colon = strrchr(text, ':');
        *family = AF_INET;
        n = colon ? (size_t)(colon - text) : 0;
    }
    if (!colon || n == 0 || n >= size || memchr(text, *family == AF_INET ? ':' : ']', n))
        return -1;
    memcpy(host, text, n);
    host[n] = '\0';
    return config_parse_port(colon + 1);
}

int config_parse_address(const char *text, struct sockaddr_storage *ss, int *len)
{
    char host[INET6_ADDRSTRLEN + 16], port[16];
    unsigned char probe[sizeof(struct in6_addr)];
    int family, portnum = config_split_address(text, host, sizeof(host), &family);
    if (portnum < 0)
        return -1;
    if (family == AF_INET && strcmp(host, "*") == 0)
        strcpy(host, "0.0.0.0");
    /* inet_pton refuses the "127.1" shorthands getaddrinfo would take; and
     * glibc's getaddrinfo would take "[*]" as a wildcard. */
    if (family == AF_INET ? inet_pton(AF_INET, host, probe) != 1 : !strchr(host, ':'))
        return -1;
    struct addrinfo hints = {.ai_family = family,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE};
    struct addrinfo *ai;
    snprintf(port, sizeof(port), "%d", portnum);
    if (getaddrinfo(host, port, &hints, &ai) != 0)
        return -1;
    memset(ss, 0, sizeof(*ss));
    memcpy(ss, ai->ai_addr, ai->ai_addrlen);
    *len = (int)ai->ai_addrlen;
    freeaddrinfo(ai);
    return 0;
}

static int config_parse_prefix(const char *s, int bits, int *prefix)
{
    long long n;
    if (strlen(s) > 3 || config_parse_ll(s, &n) < 0 || n > bits)
        return -1;
    *prefix = (int)n;
    return 0;
}

/* Clears the host bits: "10.1.2.3/8" is taken as 10.0.0.0/8. */
static void config_mask(struct cidr *c)
{
    int bytes = c->family == AF_INET ? 4 : 16;
    for (int i = 0; i < bytes; i++) {
        int keep = c->prefix - i * 8;
        c->addr[i] &= keep >= 8 ? 0xff : keep <= 0 ? 0 : (uint8_t)(0xff << (8 - keep));
    }
}

/* NULL, or why TEXT is not a network. */
static const char *config_cidr(const char *text, struct cidr *out)
{
    char buf[INET6_ADDRSTRLEN];
    const char *slash = strchr(text, '/');
    size_t n = slash ? (size_t)(slash - text) : strlen(text);
    memset(out, 0, sizeof(*out));
    if (n == 0 || n >= sizeof(buf))
        return "not an IP address";
    memcpy(buf, text, n);
    buf[n] = '\0';
    out->family = strchr(buf, ':') ? AF_INET6 : AF_INET;
    if (inet_pton(out->family, buf, out->addr) != 1)
        return "not an IP address";
    out->prefix = out->family == AF_INET ? 32 : 128;
    out->has_prefix = slash != NULL;
    if (slash && config_parse_prefix(slash + 1, out->prefix, &out->prefix) < 0)
        return out->family == AF_INET ? "the prefix must be 0 to 32"
                                      : "the prefix must be 0 to 128";
    config_mask(out);
    return NULL;
}

int config_parse_cidr(const char *text, struct cidr *out)
{
    return config_cidr(text, out) ? -1 : 0;
}

/* Entries of a match list that are meant as addresses, not names. */
static bool config_looks_numeric(const char *s)
{
    return strpbrk(s, ":/") || strspn(s, "0123456789.") == strlen(s);
}

/* ---- values ---- */

static void config_bad_int(struct config_parser *p, const struct config_key *k,
                           const struct config_item *it)
{
    if (k->max == INT_MAX || k->max == LLONG_MAX)
        config_error(p, it->line, "%s must be a %s integer, not '%s'", k->name,
                     k->min == 0 ? "non-negative" : "positive", it->value);
    else
        config_error(p, it->line, "%s must be an integer from %lld to %lld, not '%s'", k->name,
                     k->min, k->max, it->value);
}

static int config_int_value(struct config_parser *p, const struct config_key *k,
                            const struct config_item *it, long long *v)
{
    if (config_parse_ll(it->value, v) < 0 || *v < k->min || *v > k->max) {
        config_bad_int(p, k, it);
        return -1;
    }
    return 0;
}

static void config_set_int(struct config_parser *p, void *obj, const struct config_key *k,
                           const struct config_item *it)
{
    long long v;
    if (config_int_value(p, k, it, &v) == 0)
        *CONFIG_FIELD(obj, k->off, int) = (int)v;
}

static void config_set_size(struct config_parser *p, void *obj, const struct config_key *k,
                            const struct config_item *it)
{
    long long v;
    if (config_int_value(p, k, it, &v) == 0)
        *CONFIG_FIELD(obj, k->off, long long) = v;
}

static void config_set_workers(struct config_parser *p, void *obj, const struct config_key *k,
                               const struct config_item *it)
{
    long long v;
    if (strcasecmp(it->value, "auto") == 0) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        v = cores < 1 ? 1 : cores > k->max ? k->max : cores;
    } else if (config_parse_ll(it->value, &v) < 0 || v < k->min || v > k->max) {
        config_error(p, it->line, "workers must be an integer from 1 to %lld or auto, not '%s'",
                     k->max, it->value);
        return;
    }
    *CONFIG_FIELD(obj, k->off, int) = (int)v;
}

static int config_enum_value(struct config_parser *p, const struct config_key *k,
                             const struct config_item *it, const char *const *words)
{
    char allowed[160];
    int i = config_word(words, it->value);
    if (i < 0) {
        config_join_words(words, allowed, sizeof(allowed));
        config_error(p, it->line, "%s must be %s, not '%s'", k->name, allowed, it->value);
    }
    return i;
}

static void config_set_enum(struct config_parser *p, void *obj, const struct config_key *k,
                            const struct config_item *it)
{
    int i = config_enum_value(p, k, it, k->words);
    if (i >= 0)
        *CONFIG_FIELD(obj, k->off, int) = i;
}

static void config_set_bool(struct config_parser *p, void *obj, const struct config_key *k,
                            const struct config_item *it)
{
    if (config_word(config_true_words, it->value) >= 0)
        *CONFIG_FIELD(obj, k->off, bool) = true;
    else if (config_word(config_false_words, it->value) >= 0)
        *CONFIG_FIELD(obj, k->off, bool) = false;
    else
        config_error(p, it->line, "%s must be yes or no, not '%s'", k->name, it->value);
}

/* min_tls_version: stored as OpenSSL's TLS1_VERSION (0x0301) ... TLS1_3_VERSION. */
static void config_set_tls_version(struct config_parser *p, void *obj, const struct config_key *k,
                                   const struct config_item *it)
{
    int i = config_enum_value(p, k, it, config_version_words);
    if (i >= 0)
        *CONFIG_FIELD(obj, k->off, int) = 0x0301 + i;
}

static void config_set_str(struct config_parser *p, void *obj, const struct config_key *k,
                           const struct config_item *it)
{
    config_replace(p, CONFIG_FIELD(obj, k->off, char *), it->value);
}

static void config_set_hostname(struct config_parser *p, void *obj, const struct config_key *k,
                                const struct config_item *it)
{
    if (!config_is_domain(it->value)) {
        config_error(p, it->line, "%s must be a host name, not '%s'", k->name, it->value);
        return;
    }
    char **field = CONFIG_FIELD(obj, k->off, char *);
    config_replace(p, field, it->value);
    if (*field)
        config_lower(*field);
}

/* A route's next hop: a host name or an IPv4/IPv6 literal. */
static void config_set_host(struct config_parser *p, void *obj, const struct config_key *k,
                            const struct config_item *it)
{
    unsigned char ip[sizeof(struct in6_addr)];
    if (inet_pton(AF_INET6, it->value, ip) == 1 || inet_pton(AF_INET, it->value, ip) == 1)
        config_set_str(p, obj, k, it);
    else if (config_looks_numeric(it->value) || !config_is_domain(it->value))
        config_error(p, it->line, "host must be a host name or an IP address, not '%s'", it->value);
    else
        config_set_hostname(p, obj, k, it);
}

static void config_set_certificate(struct config_parser *p, void *obj, const struct config_key *k,
                                   const struct config_item *it)
{
    if (!config_is_name(it->value))
        config_error(p, it->line,
                     "certificate must be a name in certs_dir (letters, digits, '.', '_' and "
                     "'-'), not '%s'",
                     it->value);
    else if (strcmp(it->value, "trust") == 0)
        config_error(p, it->line, "certificate name 'trust' is reserved for trust anchors");
    else
        config_set_str(p, obj, k, it);
}

static void config_set_envname(struct config_parser *p, void *obj, const struct config_key *k,
                               const struct config_item *it)
{
    const char *s = it->value;
    if (isdigit((unsigned char)*s) ||
        strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_") != strlen(s))
        config_error(p, it->line, "%s must be an environment variable name, not '%s'", k->name, s);
    else
        config_set_str(p, obj, k, it);
}

static void config_set_address(struct config_parser *p, void *obj, const struct config_key *k,
                               const struct config_item *it)
{
    struct conf_listener *l = obj;
    if (config_parse_address(it->value, &l->addr, &l->addrlen) < 0) {
        l->addrlen = 0;
        config_error(p, it->line,
                     "address must be IPv4:PORT, [IPv6]:PORT or *:PORT with a numeric address "
                     "and a port from 1 to 65535, not '%s'",
                     it->value);
        return;
    }
    config_set_str(p, obj, k, it);
}

/* ---- lists ---- */

typedef void config_entry_fn(struct config_parser *p, void *obj, const struct config_key *k,
                             const struct config_item *it, char *entry);

/* Calls FN for each entry of a comma or space separated list. */
static void config_each_entry(struct config_parser *p, void *obj, const struct config_key *k,
                              const struct config_item *it, config_entry_fn *fn)
{
    char *copy = config_strdup(p, it->value), *save = NULL;
    if (!copy)
        return;
    for (char *e = strtok_r(copy, ", \t", &save); e; e = strtok_r(NULL, ", \t", &save))
        fn(p, obj, k, it, e);
    free(copy);
}

static void config_push(struct config_parser *p, char ***v, size_t *n, const char *s)
{
    char *copy = config_strdup(p, s);
    char **slot = copy ? config_grow(p, v, n, sizeof(*slot)) : NULL;
    if (slot)
        *slot = copy;
    else
        free(copy);
}

static void config_push_field(struct config_parser *p, void *obj, const struct config_key *k,
                              const char *s)
{
    config_push(p, CONFIG_FIELD(obj, k->off, char **), CONFIG_FIELD(obj, k->off2, size_t), s);
}

static void config_domain_entry(struct config_parser *p, void *obj, const struct config_key *k,
                                const struct config_item *it, char *e)
{
    config_lower(e);
    if (config_is_domain_or_suffix(e))
        config_push_field(p, obj, k, e);
    else
        config_error(p, it->line, "%s: '%s' is not a domain or .domain", k->name, e);
}

static void config_route_domain_entry(struct config_parser *p, void *obj,
                                      const struct config_key *k, const struct config_item *it,
                                      char *e)
{
    config_lower(e);
    if (strcmp(e, "*") == 0 || config_is_domain_or_suffix(e))
        config_push_field(p, obj, k, e);
    else
        config_error(p, it->line, "%s: '%s' is not *, a domain or .domain", k->name, e);
}

static void config_recipient_entry(struct config_parser *p, void *obj, const struct config_key *k,
                                   const struct config_item *it, char *e)
{
    char *at = strrchr(e, '@');
    if (at && at > e && config_is_domain(at + 1) && !memchr(e, '<', (size_t)(at - e)))
        config_push_field(p, obj, k, e);
    else
        config_error(p, it->line, "%s: '%s' is not a mail address (local@domain)", k->name, e);
}

static void config_match_cidr(struct config_parser *p, struct matchlist *m,
                              const struct config_key *k, const struct config_item *it, char *e)
{
    struct cidr net;
    const char *why = config_cidr(e, &net);
    struct cidr *slot = why ? NULL : config_grow(p, &m->cidrs, &m->ncidrs, sizeof(*slot));
    if (slot)
        *slot = net;
    else if (why)
        config_error(p, it->line, "%s: bad network '%s': %s", k->name, e, why);
}

static void config_match_entry(struct config_parser *p, void *obj, const struct config_key *k,
                               const struct config_item *it, char *e)
{
    struct matchlist *m = CONFIG_FIELD(obj, k->off, struct matchlist);
    config_lower(e);
    if (config_looks_numeric(e))
        config_match_cidr(p, m, k, it, e);
    else if (config_is_domain_or_suffix(e))
        config_push(p, &m->names, &m->nnames, e);
    else
        config_error(p, it->line, "%s: '%s' is not an address, a network, a host name or a .domain",
                     k->name, e);
}

static void config_set_domains(struct config_parser *p, void *obj, const struct config_key *k,
                               const struct config_item *it)
{
    config_each_entry(p, obj, k, it, config_domain_entry);
}

static void config_set_route_domains(struct config_parser *p, void *obj, const struct config_key *k,
                                     const struct config_item *it)
{
    config_each_entry(p, obj, k, it, config_route_domain_entry);
}

static void config_set_recipients(struct config_parser *p, void *obj, const struct config_key *k,
                                  const struct config_item *it)
{
    config_each_entry(p, obj, k, it, config_recipient_entry);
}

static void config_set_match(struct config_parser *p, void *obj, const struct config_key *k,
                             const struct config_item *it)
{
    config_each_entry(p, obj, k, it, config_match_entry);
}

/* ---- the schema ---- */

#define CK(n, fn, T, f)                                                                            \
    {                                                                                              \
        .name = n, .set = fn, .off = offsetof(T, f)                                                \
    }
#define CK_INT(n, T, f, lo, hi)                                                                    \
    {                                                                                              \
        .name = n, .set = config_set_int, .off = offsetof(T, f), .min = lo, .max = hi              \
    }
#define CK_ENUM(n, T, f, w)                                                                        \
    {                                                                                              \
        .name = n, .set = config_set_enum, .off = offsetof(T, f), .words = w                       \
    }
#define CK_LIST(n, fn, T, f, cnt)                                                                  \
    {                                                                                              \
        .name = n, .set = fn, .off = offsetof(T, f), .off2 = offsetof(T, cnt), .list = true        \
    }
#define CK_MATCH(n, T, f)                                                                          \
    {                                                                                              \
        .name = n, .set = config_set_match, .off = offsetof(T, f), .list = true                    \
    }
#define CK_LIMITS(T)                                                                               \
    CK_INT("command_timeout", T, limits.command_timeout, 1, 86400),                                \
        CK_INT("tls_handshake_timeout", T, limits.tls_handshake_timeout, 1, 86400),                \
        CK_INT("idle_timeout", T, limits.idle_timeout, 1, 86400),                                  \
        CK_INT("data_min_rate", T, limits.data_min_rate, 0, INT_MAX),                              \
        CK_INT("max_connections", T, limits.max_connections, 1, INT_MAX),                          \
        CK_INT("max_connections_per_ip", T, limits.max_connections_per_ip, 1, INT_MAX),            \
        CK_INT("max_recipients", T, limits.max_recipients, 1, INT_MAX)

static const struct config_key config_gateway_keys[] = {
    CK("hostname", config_set_hostname, struct config, hostname),
    CK("maillog", config_set_str, struct config, maillog),
    CK("state_dir", config_set_str, struct config, state_dir),
    CK("certs_dir", config_set_str, struct config, certs_dir),
    {.name = "workers",
     .set = config_set_workers,
     .off = offsetof(struct config, workers),
     .min = 1,
     .max = 64},
    CK("min_tls_version", config_set_tls_version, struct config, min_tls_version),
    CK("ciphers", config_set_str, struct config, ciphers),
    CK("ciphersuites", config_set_str, struct config, ciphersuites),
    CK("system_trust", config_set_bool, struct config, system_trust),
    {.name = "max_message_size",
     .set = config_set_size,
     .off = offsetof(struct config, max_message_size),
     .min = 1,
     .max = LLONG_MAX},
    CK_INT("shutdown_timeout", struct config, shutdown_timeout, 0, 86400),
    CK_INT("mx_port", struct config, mx_port, 1, 65535),
    CK_INT("connect_timeout", struct config, connect_timeout, 1, 3600),
    CK_INT("delivery_timeout", struct config, delivery_timeout, 1, 86400),
    CK_LIMITS(struct config),
};

static const struct config_key config_listener_keys[] = {
    CK("address", config_set_address, struct conf_listener, address),
    CK("interface", config_set_str, struct conf_listener, interface),
    CK("hostname", config_set_hostname, struct conf_listener, hostname),
    CK("certificate", config_set_certificate, struct conf_listener, certificate),
    CK_ENUM("tls", struct conf_listener, tls, config_tls_in_words),
    CK("implicit_tls", config_set_bool, struct conf_listener, implicit_tls),
    CK("route", config_set_str, struct conf_listener, route),
    CK_LIST("accept_domains", config_set_domains, struct conf_listener, accept_domains,
            naccept_domains),
    CK_ENUM("proxy_protocol", struct conf_listener, proxy_protocol, config_proxy_words),
    CK_MATCH("proxy_from", struct conf_listener, proxy_from),
    CK_LIMITS(struct conf_listener),
};

static const struct config_key config_sendergroup_keys[] = {
    CK("listener", config_set_str, struct conf_sendergroup, listener),
    CK_MATCH("match", struct conf_sendergroup, match),
    CK_ENUM("action", struct conf_sendergroup, action, config_action_words),
    CK_ENUM("tls", struct conf_sendergroup, tls, config_tls_in_words),
    CK("verify_client", config_set_bool, struct conf_sendergroup, verify_client),
};

static const struct config_key config_destination_keys[] = {
    CK_ENUM("tls", struct conf_destination, tls, config_tls_out_words),
    CK("fallback_plaintext", config_set_bool, struct conf_destination, fallback_plaintext),
};

static const struct config_key config_route_keys[] = {
    CK_LIST("domains", config_set_route_domains, struct conf_route, domains, ndomains),
    CK("maildir", config_set_str, struct conf_route, maildir),
    CK("host", config_set_host, struct conf_route, host),
    CK_INT("port", struct conf_route, port, 1, 65535),
    CK("implicit_tls", config_set_bool, struct conf_route, implicit_tls),
    CK_ENUM("tls", struct conf_route, tls, config_tls_out_words),
    CK("auth_username", config_set_str, struct conf_route, auth_username),
    CK("auth_password_file", config_set_str, struct conf_route, auth_password_file),
    CK("auth_password_env", config_set_envname, struct conf_route, auth_password_env),
};

static const struct config_key config_alerts_keys[] = {
    CK_LIST("recipients", config_set_recipients, struct conf_alerts, recipients, nrecipients),
    CK("route", config_set_str, struct conf_alerts, route),
    CK_INT("interval", struct conf_alerts, interval, 1, 604800),
};

_Static_assert(CONFIG_ARRAY_SIZE(config_gateway_keys) <= CONFIG_MAX_KEYS, "keys");
_Static_assert(CONFIG_ARRAY_SIZE(config_listener_keys) <= CONFIG_MAX_KEYS, "keys");

/* ---- looking at sections ---- */

static const struct config_item *config_item_of(const struct config_section *s, const char *key)
{
    for (size_t i = 0; i < s->type->nkeys; i++)
        if (strcmp(s->type->keys[i].name, key) == 0)
            return &s->items[i];
    return NULL;
}

static bool config_has(const struct config_section *s, const char *key)
{
    const struct config_item *it = config_item_of(s, key);
    return it && it->value;
}

/* The line of KEY, or of the section header when KEY is not set. */
static int config_line_of(const struct config_section *s, const char *key)
{
    const struct config_item *it = config_item_of(s, key);
    return it && it->value ? it->line : s->line;
}

static const char *config_value_of(const struct config_section *s, const char *key)
{
    const struct config_item *it = config_item_of(s, key);
    return it ? it->value : NULL;
}

static void config_require(struct config_parser *p, const struct config_section *s, const char *key)
{
    if (!config_has(s, key))
        config_error(p, s->line, "[%s] needs %s", s->label, key);
}

static const struct config_section *config_find_section(const struct config_parser *p,
                                                        enum config_type_id id, const char *name)
{
    for (size_t i = 0; i < p->nsections; i++) {
        const struct config_section *s = &p->sections[i];
        if (s->type->id == id && (!s->name ? !name : name && strcmp(s->name, name) == 0))
            return s;
    }
    return NULL;
}

/* A reference to another section by name, e.g. "route = local". */
static void config_check_ref(struct config_parser *p, const struct config_section *s,
                             const char *key, enum config_type_id id, const char *what)
{
    const char *name = config_value_of(s, key);
    if (name && !config_find_section(p, id, name))
        config_error(p, config_line_of(s, key), "%s '%s' does not exist (no [%s:%s] section)", what,
                     name, what, name);
}

/* ---- [gateway] ---- */

static void config_gateway_defaults(struct config_parser *p, struct config *c)
{
    c->maillog = config_strdup(p, "var/log/mail.log");
    c->state_dir = config_strdup(p, "var/state");
    c->certs_dir = config_strdup(p, "certs");
    c->workers = 1;
    c->min_tls_version = 0x0303;
    c->system_trust = true;
    c->max_message_size = 52428800;
    c->shutdown_timeout = 30;
    c->mx_port = 25;
    c->connect_timeout = 30;
    c->delivery_timeout = 300;
    c->limits = (struct conf_limits){.command_timeout = 60,
                                     .tls_handshake_timeout = 30,
                                     .idle_timeout = 300,
                                     .data_min_rate = 1024,
                                     .max_connections = 1000,
                                     .max_connections_per_ip = 50,
                                     .max_recipients = 1000};
}

static void config_gateway_hostname(struct config_parser *p, struct config *c)
{
    char name[256] = "";
    if (c->hostname)
        return;
    if (gethostname(name, sizeof(name) - 1) < 0 || name[0] == '\0')
        strcpy(name, "localhost");
    c->hostname = config_strdup(p, name);
}

/* ---- [listener:NAME] ---- */

static void config_listener_init(struct config_parser *p, struct config_section *s, void *obj)
{
    struct conf_listener *l = obj;
    l->name = config_strdup(p, s->name);
    l->line = s->line;
    l->certificate = config_strdup(p, "demo");
    l->tls = TLS_IN_PREFERRED;
    l->proxy_protocol = PROXY_NO;
    l->limits = p->c->limits;
}

static void config_listener_finish(struct config_parser *p, struct config_section *s, void *obj)
{
    struct conf_listener *l = obj;
    config_require(p, s, "address");
    if (!l->interface)
        l->interface = config_strdup(p, l->name);
    if (!l->hostname && p->c->hostname)
        l->hostname = config_strdup(p, p->c->hostname);
    if (l->implicit_tls && l->tls == TLS_IN_OFF)
        config_error(p, config_line_of(s, "implicit_tls"),
                     "implicit_tls = yes contradicts tls = off");
    if (l->proxy_protocol != PROXY_NO && !config_has(s, "proxy_from"))
        config_error(p, config_line_of(s, "proxy_protocol"),
                     "proxy_protocol = %s needs proxy_from (the addresses allowed to send "
                     "PROXY headers)",
                     config_proxy_words[l->proxy_protocol]);
}

/* TLS is offered on L, by the listener itself or by a sender group on it. */
static bool config_listener_needs_cert(const struct config *c, const struct conf_listener *l)
{
    if (l->implicit_tls || l->tls != TLS_IN_OFF)
        return true;
    for (size_t i = 0; i < c->nsendergroups; i++) {
        const struct conf_sendergroup *g = &c->sendergroups[i];
        if ((!g->listener || strcmp(g->listener, l->name) == 0) && g->tls > TLS_IN_OFF)
            return true;
    }
    return false;
}

static void config_check_cert_file(struct config_parser *p, int line, const char *name,
                                   const char *file, bool key)
{
    char path[PATH_MAX];
    struct stat st;
    if (snprintf(path, sizeof(path), "%s/%s/%s", p->c->certs_dir, name, file) >=
        (int)sizeof(path)) {
        config_error(p, line, "certificate '%s': the path of %s is too long", name, file);
    } else if (stat(path, &st) < 0) {
        if (errno == ENOENT)
            config_error(p, line, "certificate '%s': %s does not exist (tlsgate cert create %s)",
                         name, path, name);
        else
            config_error(p, line, "certificate '%s': %s cannot be checked: %s", name, path,
                         strerror(errno));
    } else if (!S_ISREG(st.st_mode)) {
        config_error(p, line, "certificate '%s': %s is not a regular file", name, path);
    } else if (access(path, R_OK) < 0) {
        config_error(p, line, "certificate '%s': %s is not readable: %s", name, path,
                     strerror(errno));
    } else if (key && (st.st_mode & 044)) {
        config_error(p, line,
                     "certificate '%s': %s is readable by group or others (mode %04o); chmod "
                     "600 it",
                     name, path, (unsigned)(st.st_mode & 07777));
    }
}

static void config_check_certificate(struct config_parser *p, const struct config_section *s,
                                     const struct conf_listener *l)
{
    if (!l->certificate || !p->c->certs_dir || strcmp(l->certificate, "demo") == 0 ||
        !config_listener_needs_cert(p->c, l))
        return;
    int line = config_line_of(s, "certificate");
    config_check_cert_file(p, line, l->certificate, "cert.pem", false);
    config_check_cert_file(p, line, l->certificate, "key.pem", true);
}

static bool config_is_any(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET)
        return ((const struct sockaddr_in *)ss)->sin_addr.s_addr == htonl(INADDR_ANY);
    return IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)ss)->sin6_addr);
}

/* Both would bind the same port of the same family, on the same or a wildcard address. */
static bool config_clash(const struct conf_listener *a, const struct conf_listener *b)
{
    const struct sockaddr_in *a4 = (const void *)&a->addr, *b4 = (const void *)&b->addr;
    const struct sockaddr_in6 *a6 = (const void *)&a->addr, *b6 = (const void *)&b->addr;
    if (!a->addrlen || !b->addrlen || a->addr.ss_family != b->addr.ss_family)
        return false;
    if (a->addr.ss_family == AF_INET && a4->sin_port != b4->sin_port)
        return false;
    if (a->addr.ss_family == AF_INET6 && a6->sin6_port != b6->sin6_port)
        return false;
    if (config_is_any(&a->addr) || config_is_any(&b->addr))
        return true;
    if (a->addr.ss_family == AF_INET)
        return a4->sin_addr.s_addr == b4->sin_addr.s_addr;
    return memcmp(&a6->sin6_addr, &b6->sin6_addr, sizeof(a6->sin6_addr)) == 0;
}

static void config_check_clash(struct config_parser *p, const struct config_section *s,
                               const struct conf_listener *l)
{
    for (const struct conf_listener *o = p->c->listeners; o < l; o++)
        if (config_clash(o, l))
            config_error(p, config_line_of(s, "address"),
                         "address %s clashes with listener '%s' (line %d)", l->address, o->name,
                         o->line);
}

static void config_listener_check(struct config_parser *p, struct config_section *s, void *obj)
{
    config_check_ref(p, s, "route", CONFIG_ROUTE, "route");
    config_check_certificate(p, s, obj);
    config_check_clash(p, s, obj);
}

/* ---- [sendergroup:NAME] ---- */

static void config_sendergroup_init(struct config_parser *p, struct config_section *s, void *obj)
{
    struct conf_sendergroup *g = obj;
    g->name = config_strdup(p, s->name);
    g->line = s->line;
    g->action = SG_ACCEPT;
    g->tls = -1;
}

static void config_sendergroup_finish(struct config_parser *p, struct config_section *s, void *obj)
{
    (void)obj;
    if (strcmp(s->name, "ALL") != 0)
        config_require(p, s, "match");
    else if (config_has(s, "match"))
        config_error(p, config_line_of(s, "match"),
                     "[sendergroup:ALL] must not have match: ALL is the group of the clients "
                     "that match no other group");
}

static void config_sendergroup_check(struct config_parser *p, struct config_section *s, void *obj)
{
    (void)obj;
    config_check_ref(p, s, "listener", CONFIG_LISTENER, "listener");
}

/* ---- [destination:DOMAIN] ---- */

static void config_destination_init(struct config_parser *p, struct config_section *s, void *obj)
{
    struct conf_destination *d = obj;
    d->domain = config_strdup(p, s->name);
    d->line = s->line;
}

static void config_destination_finish(struct config_parser *p, struct config_section *s, void *obj)
{
    (void)obj;
    config_require(p, s, "tls");
}

/* ---- [route:NAME] ---- */

static void config_route_init(struct config_parser *p, struct config_section *s, void *obj)
{
    struct conf_route *r = obj;
    r->name = config_strdup(p, s->name);
    r->line = s->line;
    r->tls = -1;
}

/* Keys that only mean something for a host route. */
static void config_route_host_keys(struct config_parser *p, const struct config_section *s)
{
    static const char *const keys[] = {"port",          "implicit_tls",       "tls",
                                       "auth_username", "auth_password_file", "auth_password_env"};
    for (size_t i = 0; i < CONFIG_ARRAY_SIZE(keys); i++)
        if (config_has(s, keys[i]))
            config_error(p, config_line_of(s, keys[i]),
                         "%s needs host (a maildir route delivers locally)", keys[i]);
}

static void config_route_auth(struct config_parser *p, const struct config_section *s,
                              const struct conf_route *r)
{
    bool file = config_has(s, "auth_password_file"), env = config_has(s, "auth_password_env");
    int line = config_line_of(s, "auth_username");
    if (file && env)
        config_error(p, config_line_of(s, "auth_password_env"),
                     "auth_password_file and auth_password_env exclude each other; choose one");
    if (!config_has(s, "auth_username")) {
        if (file || env)
            config_error(p, config_line_of(s, file ? "auth_password_file" : "auth_password_env"),
                         "%s needs auth_username",
                         file ? "auth_password_file" : "auth_password_env");
        return;
    }
    if (!file && !env)
        config_error(p, line, "auth_username needs auth_password_file or auth_password_env");
    if (!r->implicit_tls && r->tls != TLS_OUT_REQUIRED && r->tls != TLS_OUT_REQUIRED_VERIFY)
        config_error(p, line,
                     "AUTH needs tls = required or required-verify (secrets are never sent in "
                     "clear)");
}

static void config_route_finish(struct config_parser *p, struct config_section *s, void *obj)
{
    struct conf_route *r = obj;
    bool maildir = config_has(s, "maildir"), host = config_has(s, "host");
    if (!maildir && !host)
        config_error(p, s->line, "[%s] needs maildir or host", s->label);
    else if (maildir && host)
        config_error(p,
                     config_line_of(s, "maildir") > config_line_of(s, "host")
                         ? config_line_of(s, "maildir")
                         : config_line_of(s, "host"),
                     "[%s] has both maildir and host; choose one", s->label);
    else if (maildir)
        config_route_host_keys(p, s);
    else
        config_route_auth(p, s, r);
    if (!config_has(s, "port"))
        r->port = r->implicit_tls ? 465 : 25;
}

static void config_check_secret(struct config_parser *p, int line, const char *path)
{
    const char *k = "auth_password_file";
    struct stat st;
    unsigned mode;
    if (stat(path, &st) < 0) {
        if (errno == ENOENT)
            config_error(p, line, "%s %s does not exist", k, path);
        else
            config_error(p, line, "%s %s cannot be checked: %s", k, path, strerror(errno));
        return;
    }
    mode = (unsigned)(st.st_mode & 07777);
    if (!S_ISREG(st.st_mode))
        config_error(p, line, "%s %s is not a regular file", k, path);
    else if (st.st_uid != geteuid())
        config_error(p, line, "%s %s is owned by uid %u, not by the running uid %u; chown it", k,
                     path, (unsigned)st.st_uid, (unsigned)geteuid());
    else if (mode & 044)
        config_error(p, line, "%s %s is readable by group or others (mode %04o); chmod 600 it", k,
                     path, mode);
    else if (mode & 033)
        config_error(p, line, "%s %s has group or other permissions (mode %04o); chmod 600 it", k,
                     path, mode);
    else if (!(mode & 0400))
        config_error(p, line, "%s %s is not readable by its owner (mode %04o); chmod 600 it", k,
                     path, mode);
}

static void config_domain_clash(struct config_parser *p, const struct config_section *s,
                                const struct conf_route *r, const struct conf_route *o,
                                const char *domain)
{
    if (o == r)
        config_error(p, config_line_of(s, "domains"), "domain '%s' is listed twice", domain);
    else
        config_error(p, config_line_of(s, "domains"),
                     "domain '%s' is already routed by route '%s' (line %d)", domain, o->name,
                     o->line);
}

/* The same entry ("*", a domain or a .suffix) in two routes: which one wins? */
static void config_check_route_domains(struct config_parser *p, const struct config_section *s,
                                       const struct conf_route *r)
{
    for (size_t i = 0; i < r->ndomains; i++)
        for (const struct conf_route *o = p->c->routes; o <= r; o++)
            for (size_t j = 0; j < (o == r ? i : o->ndomains); j++)
                if (strcmp(o->domains[j], r->domains[i]) == 0)
                    config_domain_clash(p, s, r, o, r->domains[i]);
}

static void config_route_check(struct config_parser *p, struct config_section *s, void *obj)
{
    struct conf_route *r = obj;
    config_check_route_domains(p, s, r);
    if (!r->host)
        return;
    if (r->auth_password_file)
        config_check_secret(p, config_line_of(s, "auth_password_file"), r->auth_password_file);
    if (r->auth_password_env && !getenv(r->auth_password_env))
        config_error(p, config_line_of(s, "auth_password_env"),
                     "auth_password_env %s is not set in the environment", r->auth_password_env);
}

/* ---- [alerts] ---- */

static void config_alerts_init(struct config_parser *p, struct config_section *s, void *obj)
{
    struct conf_alerts *a = obj;
    (void)p;
    (void)s;
    a->enabled = true;
    a->interval = 3600;
}

static void config_alerts_finish(struct config_parser *p, struct config_section *s, void *obj)
{
    (void)obj;
    config_require(p, s, "recipients");
    config_require(p, s, "route");
}

static void config_alerts_check(struct config_parser *p, struct config_section *s, void *obj)
{
    (void)obj;
    config_check_ref(p, s, "route", CONFIG_ROUTE, "route");
}

#define CONFIG_TYPE(id, n, named, keys, init, finish, check)                                       \
    {                                                                                              \
        id, n, named, keys, CONFIG_ARRAY_SIZE(keys), init, finish, check                           \
    }

/* In build order: [gateway] first, so that listeners can inherit from it. */
static const struct config_type config_types[] = {
    CONFIG_TYPE(CONFIG_GATEWAY, "gateway", false, config_gateway_keys, NULL, NULL, NULL),
    CONFIG_TYPE(CONFIG_ROUTE, "route", true, config_route_keys, config_route_init,
                config_route_finish, config_route_check),
    CONFIG_TYPE(CONFIG_LISTENER, "listener", true, config_listener_keys, config_listener_init,
                config_listener_finish, config_listener_check),
    CONFIG_TYPE(CONFIG_SENDERGROUP, "sendergroup", true, config_sendergroup_keys,
                config_sendergroup_init, config_sendergroup_finish, config_sendergroup_check),
    CONFIG_TYPE(CONFIG_DESTINATION, "destination", true, config_destination_keys,
                config_destination_init, config_destination_finish, NULL),
    CONFIG_TYPE(CONFIG_ALERTS, "alerts", false, config_alerts_keys, config_alerts_init,
                config_alerts_finish, config_alerts_check),
};

/* ---- pass 1: lines ---- */

static const struct config_type *config_find_type(const char *name)
{
    for (size_t i = 0; i < CONFIG_ARRAY_SIZE(config_types); i++)
        if (strcmp(config_types[i].name, name) == 0)
            return &config_types[i];
    return NULL;
}

/* NULL if NAME is a good name for a section of type T (normalised in place). */
static const char *config_bad_section_name(const struct config_type *t, char *name)
{
    if (t->id != CONFIG_DESTINATION)
        return config_is_name(name) ? NULL : "use letters, digits, '.', '_' and '-'";
    config_lower(name);
    if (strcmp(name, "default") == 0 || config_is_domain_or_suffix(name))
        return NULL;
    return "expected default, a domain or .domain";
}

/* NULL if TYPE:NAME may open a section; else it reports why not. */
static const struct config_type *config_section_type(struct config_parser *p, const char *type,
                                                     char *name)
{
    const struct config_type *t = config_find_type(type);
    const char *why;
    if (!t)
        config_error(p, p->line,
                     "unknown section [%s] (sections are gateway, listener:NAME, "
                     "sendergroup:NAME, destination:DOMAIN, route:NAME and alerts)",
                     type);
    else if (t->named && !name)
        config_error(p, p->line, "[%s] needs a name: [%s:NAME]", type, type);
    else if (!t->named && name)
        config_error(p, p->line, "[%s:%s] takes no name; write [%s]", type, name, type);
    else if (name && (why = config_bad_section_name(t, name)))
        config_error(p, p->line, "bad name in [%s:%s]: %s", type, name, why);
    else
        return t;
    return NULL;
}

static void config_add_section(struct config_parser *p, const struct config_type *t,
                               const char *name)
{
    const struct config_section *first = config_find_section(p, t->id, name);
    if (first) {
        config_error(p, p->line, "duplicate section [%s] (first at line %d)", first->label,
                     first->line);
        return;
    }
    struct config_section *s = config_grow(p, &p->sections, &p->nsections, sizeof(*s));
    if (!s)
        return;
    s->type = t;
    s->line = p->line;
    s->name = name ? config_strdup(p, name) : NULL;
    if (asprintf(&s->label, "%s%s%s", t->name, name ? ":" : "", name ? name : "") < 0) {
        s->label = NULL;
        p->oom = true;
    }
    p->cur = (long)(p->nsections - 1);
}

/* "[type:name]" (T points at '['). */
static void config_on_header(struct config_parser *p, char *t)
{
    char *end = strchr(t, ']'), *rest;
    p->cur = CONFIG_SKIP;
    p->seen_key = false;
    p->last_key = -1;
    if (!end) {
        config_error(p, p->line, "section header lacks ']'");
        return;
    }
    rest = config_lskip(end + 1);
    if (*rest && *rest != ';' && *rest != '#') {
        config_error(p, p->line, "unexpected text after ']'");
        return;
    }
    *end = '\0';
    t = config_lskip(t + 1);
    config_rstrip(t);
    char *colon = strchr(t, ':'), *name = colon ? config_lskip(colon + 1) : NULL;
    if (colon) {
        *colon = '\0';
        config_rstrip(t);
    }
    const struct config_type *type = config_section_type(p, t, name && *name ? name : NULL);
    if (type)
        config_add_section(p, type, name && *name ? name : NULL);
}

/* An indented line after a key continues that key's list. */
static void config_on_continuation(struct config_parser *p, char *t)
{
    if (p->last_key < 0)
        return;
    struct config_section *s = &p->sections[p->cur];
    const struct config_key *k = &s->type->keys[p->last_key];
    struct config_item *it = &s->items[p->last_key];
    char *joined;
    config_strip_comment(t);
    if (!k->list) {
        config_error(p, p->line,
                     "indented line continues %s, which is not a list (only lists may span "
                     "lines)",
                     k->name);
    } else if (asprintf(&joined, "%s, %s", it->value, t) < 0) {
        p->oom = true;
    } else {
        free(it->value);
        it->value = joined;
    }
}

/* "name =" at the start of T: a key line even when indented. */
static bool config_looks_like_key(const char *t)
{
    size_t n = strspn(t, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_");
    while (t[n] == ' ' || t[n] == '\t')
        n++;
    return n > 0 && t[n] == '=';
}

/* true if T is a "key = value" line as inih will split it. */
static bool config_check_key_line(struct config_parser *p, char *t)
{
    char *end = config_find_or_comment(t, "=:");
    if (*end != '=' && *end != ':') {
        config_error(p, p->line, "expected [section] or key = value");
        return false;
    }
    if (end == t) {
        config_error(p, p->line, "missing key name before '%c'", *end);
        return false;
    }
    return true;
}

/* Decides what LINE (NUL-terminated, in inih's buffer) is; true: pass it to inih. */
static bool config_take_line(struct config_parser *p, char *line)
{
    char *t = config_lskip(line);
    if (*t == '\0' || *t == ';' || *t == '#')
        return false;
    if (*t == '[') {
        config_on_header(p, t);
        return false;
    }
    if (t > line && p->seen_key && !config_looks_like_key(t)) {
        config_on_continuation(p, t);
        return false;
    }
    if (!config_check_key_line(p, t))
        return false;
    memmove(line, t, strlen(t) + 1);
    return true;
}

/* inih's reader: one physical line per call, so inih's line numbers are ours.
 * Lines that inih need not see are passed as a comment. */
static char *config_read_line(char *str, int num, void *stream)
{
    struct config_parser *p = stream;
    const char *s = p->next;
    if (*s == '\0')
        return NULL;
    size_t len = strcspn(s, "\n");
    p->next = s + len + (s[len] == '\n');
    p->line++;
    if (p->line == 1 && strncmp(s, "\xEF\xBB\xBF", 3) == 0) {
        s += 3;
        len -= 3;
    }
    if (len > 0 && s[len - 1] == '\r')
        len--;
    strcpy(str, ";");
    if (len > (size_t)num - 1) {
        config_error(p, p->line,
                     "line is longer than %d characters (continue a long list on indented "
                     "lines)",
                     num - 1);
        return str;
    }
    memcpy(str, s, len);
    str[len] = '\0';
    if (!config_take_line(p, str))
        strcpy(str, ";");
    return str;
}

static int config_find_key(const struct config_type *t, const char *name)
{
    for (size_t i = 0; i < t->nkeys; i++)
        if (strcmp(t->keys[i].name, name) == 0)
            return (int)i;
    return -1;
}

/* inih's handler; the section comes from our reader, inih's may be truncated. */
static int config_on_key(void *user, const char *section, const char *name, const char *value)
{
    struct config_parser *p = user;
    (void)section;
    p->seen_key = true;
    p->last_key = -1;
    if (p->cur == CONFIG_NONE)
        config_error(p, p->line, "key '%s' comes before any [section]", name);
    if (p->cur < 0)
        return 1;
    struct config_section *s = &p->sections[p->cur];
    int k = config_find_key(s->type, name);
    if (k < 0) {
        config_error(p, p->line, "unknown key '%s' in [%s]", name, s->label);
    } else if (s->items[k].value) {
        config_error(p, p->line, "duplicate key '%s' in [%s] (first at line %d)", name, s->label,
                     s->items[k].line);
    } else if ((s->items[k].value = config_strdup(p, value))) {
        config_strip_comment(s->items[k].value);
        s->items[k].line = p->line;
        p->last_key = k;
    }
    return 1;
}

static void config_read(struct config_parser *p)
{
    int rc = ini_parse_stream(config_read_line, p, config_on_key, p);
    if (rc == -2)
        p->oom = true;
    else if (rc != 0 && p->nerrors == 0)
        config_error(p, rc, "cannot parse this line");
}

/* ---- pass 2 and 3: build and check ---- */

static size_t config_count(const struct config_parser *p, enum config_type_id id)
{
    size_t n = 0;
    for (size_t i = 0; i < p->nsections; i++)
        n += p->sections[i].type->id == id;
    return n;
}

static void *config_calloc(struct config_parser *p, size_t n, size_t size)
{
    void *a = n ? calloc(n, size) : NULL;
    if (n && !a)
        p->oom = true;
    return a;
}

static void config_allocate(struct config_parser *p)
{
    struct config *c = p->c;
    size_t seen[CONFIG_ALERTS + 1] = {0};
    c->nlisteners = config_count(p, CONFIG_LISTENER);
    c->listeners = config_calloc(p, c->nlisteners, sizeof(*c->listeners));
    c->nsendergroups = config_count(p, CONFIG_SENDERGROUP);
    c->sendergroups = config_calloc(p, c->nsendergroups, sizeof(*c->sendergroups));
    c->ndestinations = config_count(p, CONFIG_DESTINATION);
    c->destinations = config_calloc(p, c->ndestinations, sizeof(*c->destinations));
    c->nroutes = config_count(p, CONFIG_ROUTE);
    c->routes = config_calloc(p, c->nroutes, sizeof(*c->routes));
    for (size_t i = 0; i < p->nsections; i++)
        p->sections[i].index = seen[p->sections[i].type->id]++;
}

static void *config_object(struct config *c, const struct config_section *s)
{
    switch (s->type->id) {
    case CONFIG_GATEWAY:
        return c;
    case CONFIG_LISTENER:
        return c->listeners ? &c->listeners[s->index] : NULL;
    case CONFIG_SENDERGROUP:
        return c->sendergroups ? &c->sendergroups[s->index] : NULL;
    case CONFIG_DESTINATION:
        return c->destinations ? &c->destinations[s->index] : NULL;
    case CONFIG_ROUTE:
        return c->routes ? &c->routes[s->index] : NULL;
    case CONFIG_ALERTS:
        return &c->alerts;
    }
    return NULL;
}

static void config_apply(struct config_parser *p, struct config_section *s, void *obj)
{
    for (size_t i = 0; i < s->type->nkeys; i++) {
        const struct config_item *it = &s->items[i];
        if (!it->value)
            continue;
        if (it->value[0] == '\0')
            config_error(p, it->line, "%s needs a value", s->type->keys[i].name);
        else
            s->type->keys[i].set(p, obj, &s->type->keys[i], it);
    }
}

static void config_build_type(struct config_parser *p, const struct config_type *t)
{
    for (size_t i = 0; i < p->nsections; i++) {
        struct config_section *s = &p->sections[i];
        void *obj = s->type == t ? config_object(p->c, s) : NULL;
        if (!obj)
            continue;
        if (t->init)
            t->init(p, s, obj);
        config_apply(p, s, obj);
        if (t->finish)
            t->finish(p, s, obj);
    }
    if (t->id == CONFIG_GATEWAY)
        config_gateway_hostname(p, p->c);
}

static void config_check_type(struct config_parser *p, const struct config_type *t)
{
    for (size_t i = 0; i < p->nsections && t->check; i++) {
        struct config_section *s = &p->sections[i];
        void *obj = s->type == t ? config_object(p->c, s) : NULL;
        if (obj)
            t->check(p, s, obj);
    }
}

static void config_build(struct config_parser *p)
{
    config_gateway_defaults(p, p->c);
    config_allocate(p);
    if (p->oom)
        return;
    for (size_t i = 0; i < CONFIG_ARRAY_SIZE(config_types); i++)
        config_build_type(p, &config_types[i]);
    for (size_t i = 0; i < CONFIG_ARRAY_SIZE(config_types); i++)
        config_check_type(p, &config_types[i]);
    if (p->c->nlisteners == 0)
        config_error(p, 0, "no [listener:NAME] section; at least one listener is needed");
}

/* ---- freeing ---- */

static void config_free_strv(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static void config_free_match(struct matchlist *m)
{
    free(m->cidrs);
    config_free_strv(m->names, m->nnames);
}

static void config_free_listener(struct conf_listener *l)
{
    free(l->name);
    free(l->address);
    free(l->interface);
    free(l->hostname);
    free(l->certificate);
    free(l->route);
    config_free_strv(l->accept_domains, l->naccept_domains);
    config_free_match(&l->proxy_from);
}

static void config_free_route(struct conf_route *r)
{
    free(r->name);
    config_free_strv(r->domains, r->ndomains);
    free(r->maildir);
    free(r->host);
    free(r->auth_username);
    free(r->auth_password_file);
    free(r->auth_password_env);
}

static void config_free_lists(struct config *c)
{
    for (size_t i = 0; i < c->nlisteners; i++)
        config_free_listener(&c->listeners[i]);
    free(c->listeners);
    for (size_t i = 0; i < c->nsendergroups; i++) {
        free(c->sendergroups[i].name);
        free(c->sendergroups[i].listener);
        config_free_match(&c->sendergroups[i].match);
    }
    free(c->sendergroups);
    for (size_t i = 0; i < c->ndestinations; i++)
        free(c->destinations[i].domain);
    free(c->destinations);
    for (size_t i = 0; i < c->nroutes; i++)
        config_free_route(&c->routes[i]);
    free(c->routes);
}

static void config_free(struct config *c)
{
    if (!c)
        return;
    config_free_lists(c);
    config_free_strv(c->alerts.recipients, c->alerts.nrecipients);
    free(c->alerts.route);
    free(c->path);
    free(c->hostname);
    free(c->maillog);
    free(c->state_dir);
    free(c->certs_dir);
    free(c->ciphers);
    free(c->ciphersuites);
    free(c);
}

static void config_free_parser(struct config_parser *p)
{
    for (size_t i = 0; i < p->nsections; i++) {
        for (size_t k = 0; k < CONFIG_MAX_KEYS; k++)
            free(p->sections[i].items[k].value);
        free(p->sections[i].name);
        free(p->sections[i].label);
    }
    free(p->sections);
    for (size_t i = 0; i < p->nerrors; i++)
        free(p->errors[i].msg);
    free(p->errors);
}

/* ---- public ---- */

struct config *config_load_string(const char *name, const char *text, FILE *errs)
{
    struct config_parser p = {.name = name ? name : "config",
                              .next = text ? text : "",
                              .cur = CONFIG_NONE,
                              .last_key = -1};
    p.c = calloc(1, sizeof(*p.c));
    if (p.c) {
        p.c->refs = 1;
        p.c->path = config_strdup(&p, p.name);
        config_read(&p);
        config_build(&p);
    } else {
        p.oom = true;
    }
    if (p.nerrors || p.oom) {
        config_report(&p, errs);
        config_free(p.c);
        p.c = NULL;
    }
    config_free_parser(&p);
    return p.c;
}

/* The whole file as a string; NULL after reporting why not. */
static char *config_slurp(const char *path, FILE *errs)
{
    FILE *f = fopen(path, "r");
    char *text = NULL;
    size_t size = 0;
    FILE *mem = f ? open_memstream(&text, &size) : NULL;
    char buf[4096];
    size_t n;
    while (mem && (n = fread(buf, 1, sizeof(buf), f)) > 0)
        fwrite(buf, 1, n, mem);
    int bad = !f || !mem || ferror(f), err = errno;
    if (mem && fclose(mem) != 0)
        bad = 1;
    if (f)
        fclose(f);
    if (bad || strlen(text) != size) {
        if (errs)
            fprintf(errs, "%s:0: cannot read: %s\n", path,
                    bad ? strerror(err) : "the file contains a NUL byte");
        free(text);
        return NULL;
    }
    return text;
}

struct config *config_load(const char *path, FILE *errs)
{
    char *text = config_slurp(path, errs);
    if (!text)
        return NULL;
    struct config *c = config_load_string(path, text, errs);
    free(text);
    return c;
}

struct config *config_ref(struct config *c)
{
    if (c)
        __atomic_add_fetch(&c->refs, 1, __ATOMIC_RELAXED);
    return c;
}

void config_unref(struct config *c)
{
    if (c && __atomic_sub_fetch(&c->refs, 1, __ATOMIC_ACQ_REL) == 0)
        config_free(c);
}

const struct conf_listener *config_listener(const struct config *c, const char *name)
{
    for (size_t i = 0; c && name && i < c->nlisteners; i++)
        if (strcmp(c->listeners[i].name, name) == 0)
            return &c->listeners[i];
    return NULL;
}

const struct conf_route *config_route(const struct config *c, const char *name)
{
    for (size_t i = 0; c && name && i < c->nroutes; i++)
        if (strcmp(c->routes[i].name, name) == 0)
            return &c->routes[i];
    return NULL;
}

static const char *config_word_name(const char *const *words, size_t n, int i)
{
    return i >= 0 && (size_t)i < n - 1 ? words[i] : "unknown";
}

const char *config_tls_in_name(enum tls_in_level l)
{
    return config_word_name(config_tls_in_words, CONFIG_ARRAY_SIZE(config_tls_in_words), (int)l);
}

const char *config_tls_out_name(enum tls_out_level l)
{
    return config_word_name(config_tls_out_words, CONFIG_ARRAY_SIZE(config_tls_out_words), (int)l);
}

const char *config_action_name(enum sg_action a)
{
    return config_word_name(config_action_words, CONFIG_ARRAY_SIZE(config_action_words), (int)a);
}
