/*
 * audit_report: the audit as aligned text (the default), CSV and JSON, from
 * struct audit_stats and its spilled lists.  The JSON top level is exactly
 * SPEC section 8's; what lies below it is documented in audit.h.  CSV is a
 * set of sections: each starts with a header row whose first field is
 * "section", rows carry the section name first, sections are separated by
 * an empty line.
 *
 * Must not: trust log text (JSON strings are escaped and kept valid UTF-8,
 * CSV fields quoted), or hold the lists in memory (they stream from the
 * spill file).
 */
#include "audit.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* ---- a buffered writer ------------------------------------------------- */

struct audit_report_out {
    FILE *f;
    size_t n;
    char buf[1 << 16];
};

static void audit_report_flush(struct audit_report_out *out)
{
    fwrite_unlocked(out->buf, 1, out->n, out->f);
    out->n = 0;
}

static void audit_report_put(struct audit_report_out *out, const void *p, size_t n)
{
    if (out->n + n > sizeof(out->buf)) {
        audit_report_flush(out);
        if (n > sizeof(out->buf)) {
            fwrite_unlocked(p, 1, n, out->f);
            return;
        }
    }
    memcpy(out->buf + out->n, p, n);
    out->n += n;
}

static void audit_report_s(struct audit_report_out *out, const char *s)
{
    audit_report_put(out, s, strlen(s));
}

static void audit_report_c(struct audit_report_out *out, int c)
{
    if (out->n == sizeof(out->buf))
        audit_report_flush(out);
    out->buf[out->n++] = (char)c;
}

static void audit_report_f(struct audit_report_out *out, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void audit_report_f(struct audit_report_out *out, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (n > 0)
        audit_report_put(out, buf, (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1);
}

/* Runs WRITE into F through a writer; -1 on a write error. */
static int audit_report_to(FILE *f, struct audit_stats *st, const struct audit_report_opts *o,
                           void (*write)(struct audit_report_out *, struct audit_stats *,
                                         const struct audit_report_opts *))
{
    struct audit_report_out *out = malloc(sizeof(*out));
    if (out == NULL)
        return -1;
    out->f = f;
    out->n = 0;
    write(out, st, o);
    audit_report_flush(out);
    free(out);
    return ferror(f) ? -1 : 0;
}

/* ---- sorting keys -------------------------------------------------------- */

struct audit_report_rank {
    uint64_t weight;
    uint32_t key;
};

static uint64_t audit_report_weight(const struct audit_key *k, int dir)
{
    if (dir >= 0)
        return k->c[dir].conns + k->c[dir].msgs;
    return k->c[0].conns + k->c[0].msgs + k->c[1].conns + k->c[1].msgs;
}

/* Busiest first; equals in the order they were first seen. */
static int audit_report_cmp(const void *a, const void *b)
{
    const struct audit_report_rank *x = a, *y = b;
    if (x->weight != y->weight)
        return x->weight > y->weight ? -1 : 1;
    return x->key < y->key ? -1 : x->key > y->key;
}

uint32_t *audit_report_sorted(const struct audit_table *t, int dir, size_t *n)
{
    struct audit_report_rank *r = malloc(((size_t)t->n + 1) * sizeof(*r));
    uint32_t *v = malloc(((size_t)t->n + 1) * sizeof(*v));
    *n = 0;
    if (r == NULL || v == NULL) {
        free(r);
        free(v);
        return NULL;
    }
    for (uint32_t i = 0; i < t->n; i++) {
        uint64_t w = audit_report_weight(&t->keys[i], dir);
        if (w > 0)
            r[(*n)++] = (struct audit_report_rank){w, i};
    }
    qsort(r, *n, sizeof(*r), audit_report_cmp);
    for (size_t i = 0; i < *n; i++)
        v[i] = r[i].key;
    free(r);
    return v;
}

const char *audit_report_dir_name(int dir)
{
    return dir == AUDIT_IN ? "inbound" : "outbound";
}

/* "YYYY-MM-DDTHH:MM:SS" of a spilled time field, "" when unknown. */
const char *audit_report_spill_time(const char *field, char *buf, size_t len)
{
    if (field == NULL || field[0] == '\0')
        return "";
    return audit_parse_format_time(strtoll(field, NULL, 10), buf, len);
}

/* ---- JSON ---------------------------------------------------------------- */

/* The length of a valid UTF-8 sequence at S (N bytes left), 0 if invalid. */
static size_t audit_report_utf8(const unsigned char *s, size_t n)
{
    size_t len = s[0] >= 0xf0 && s[0] <= 0xf4 ? 4 : s[0] >= 0xe0 ? 3 : s[0] >= 0xc2 ? 2 : 0;
    if (len == 0 || len > n || s[0] > 0xf4)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    }
    if ((len == 3 && s[0] == 0xe0 && s[1] < 0xa0) || (len == 3 && s[0] == 0xed && s[1] >= 0xa0) ||
        (len == 4 && s[0] == 0xf0 && s[1] < 0x90) || (len == 4 && s[0] == 0xf4 && s[1] >= 0x90))
        return 0;
    return len;
}

static int audit_report_json_plain_char(unsigned char ch)
{
    return ch >= 0x20 && ch < 0x7f && ch != '"' && ch != '\\';
}

static void audit_report_jstr(struct audit_report_out *out, const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    audit_report_c(out, '"');
    for (size_t i = 0; i < n;) {
        size_t run = i;
        while (run < n && audit_report_json_plain_char(p[run]))
            run++;
        if (run > i) {
            audit_report_put(out, p + i, run - i);
            i = run;
            continue;
        }
        unsigned char ch = p[i];
        size_t len = ch >= 0x80 ? audit_report_utf8(p + i, n - i) : 1;
        if (ch == '"' || ch == '\\')
            audit_report_f(out, "\\%c", ch);
        else if (ch < 0x20 || ch == 0x7f)
            audit_report_f(out, "\\u%04x", ch);
        else if (len == 0)
            audit_report_s(out, "\\ufffd");
        else
            audit_report_put(out, p + i, len);
        i += len ? len : 1;
    }
    audit_report_c(out, '"');
}

static void audit_report_json_s(struct audit_report_out *out, const char *s)
{
    audit_report_jstr(out, s, strlen(s));
}

/* A string, or null when empty. */
static void audit_report_json_opt(struct audit_report_out *out, const char *s)
{
    if (s == NULL || s[0] == '\0')
        audit_report_s(out, "null");
    else
        audit_report_json_s(out, s);
}

/* A number field of the spill file, or null. */
static void audit_report_json_num(struct audit_report_out *out, const char *s)
{
    audit_report_s(out, s != NULL && s[0] != '\0' ? s : "null");
}

static void audit_report_num(struct audit_report_out *out, uint64_t v)
{
    char b[24];
    int i = sizeof(b);
    do {
        b[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    audit_report_put(out, b + i, sizeof(b) - (size_t)i);
}

static void audit_report_json_u(struct audit_report_out *out, const char *key, uint64_t v, int more)
{
    audit_report_c(out, '"');
    audit_report_s(out, key);
    audit_report_s(out, "\": ");
    audit_report_num(out, v);
    if (more)
        audit_report_s(out, ", ");
}

static void audit_report_json_counts(struct audit_report_out *out, const struct audit_count *c,
                                     int dir)
{
    audit_report_json_u(out, "connections", c->conns, 1);
    audit_report_json_u(out, "tls_success", c->tls_ok, 1);
    audit_report_json_u(out, "tls_failed", c->tls_failed, 1);
    audit_report_json_u(out, "no_tls", c->no_tls, 1);
    if (dir == AUDIT_OUT) {
        audit_report_json_u(out, "verified", c->verified, 1);
        audit_report_json_u(out, "unverified", c->unverified, 1);
        audit_report_json_u(out, "required_failures", c->req_failed, 1);
    }
    audit_report_json_u(out, "messages", c->msgs, 1);
    audit_report_json_u(out, "messages_without_tls", c->msgs_plain, 0);
}

/* {"name": count, ...} of one direction (DIR) or both (-1). */
static void audit_report_json_dist(struct audit_report_out *out, const struct audit_table *t,
                                   int dir)
{
    size_t n;
    uint32_t *v = audit_report_sorted(t, dir, &n);
    audit_report_c(out, '{');
    for (size_t i = 0; v != NULL && i < n; i++) {
        const struct audit_key *k = &t->keys[v[i]];
        if (i > 0)
            audit_report_s(out, ", ");
        audit_report_json_s(out, k->name);
        audit_report_s(out, ": ");
        audit_report_num(out, dir >= 0 ? k->c[dir].conns : k->c[0].conns + k->c[1].conns);
    }
    audit_report_c(out, '}');
    free(v);
}

static void audit_report_json_peers(struct audit_report_out *out, const struct audit_stats *st,
                                    int dir)
{
    size_t n;
    uint32_t *v = audit_report_sorted(&st->ips, dir, &n);
    audit_report_s(out, "\"peers\": [");
    for (size_t i = 0; v != NULL && i < n; i++) {
        const struct audit_key *k = &st->ips.keys[v[i]];
        const struct audit_count *c = &k->c[dir];
        audit_report_s(out, i > 0 ? ", {\"ip\": " : "{\"ip\": ");
        audit_report_json_s(out, k->name);
        audit_report_s(out, ", \"host\": ");
        audit_report_json_opt(out, k->host[dir]);
        audit_report_s(out, ", ");
        audit_report_json_u(out, "connections", c->conns, 1);
        audit_report_json_u(out, "tls_success", c->tls_ok, 1);
        audit_report_json_u(out, "tls_failed", c->tls_failed, 1);
        audit_report_json_u(out, "no_tls", c->no_tls, 1);
        audit_report_json_u(out, "messages", c->msgs, 1);
        audit_report_json_u(out, "messages_without_tls", c->msgs_plain, 0);
        audit_report_c(out, '}');
    }
    audit_report_c(out, ']');
    free(v);
}

static void audit_report_json_reqfail(struct audit_report_out *out, char **f, int first)
{
    char tb[32];
    audit_report_s(out, first ? "{\"time\": " : ", {\"time\": ");
    audit_report_json_opt(out, audit_report_spill_time(f[2], tb, sizeof(tb)));
    audit_report_s(out, ", \"id\": ");
    audit_report_json_num(out, f[3]);
    static const char *const keys[] = {"ip", "host", "domain", "policy", "reason"};
    for (int i = 0; i < 5; i++) {
        audit_report_f(out, ", \"%s\": ", keys[i]);
        audit_report_json_opt(out, f[4 + i]);
    }
    audit_report_c(out, '}');
}

static void audit_report_json_reqfails(struct audit_report_out *out, struct audit_stats *st,
                                       int dir)
{
    char buf[4096], *f[AUDIT_SPILL_FIELDS];
    int first = 1;
    audit_report_s(out, "\"required_failure_list\": [");
    audit_stats_spill_rewind(st, 'R');
    while (audit_stats_spill_next(st, 'R', buf, sizeof(buf), f)) {
        if (strcmp(f[1], audit_report_dir_name(dir)) != 0)
            continue;
        audit_report_json_reqfail(out, f, first);
        first = 0;
    }
    audit_report_c(out, ']');
}

static void audit_report_json_dir(struct audit_report_out *out, struct audit_stats *st, int dir)
{
    const struct audit_count *c = &st->total[dir];
    audit_report_c(out, '{');
    audit_report_json_counts(out, c, dir);
    audit_report_s(out, ", ");
    if (dir == AUDIT_IN)
        audit_report_json_u(out, "required_failures", c->req_failed, 1);
    else
        audit_report_json_u(out, "verify_failed", c->verify_failed, 1);
    audit_report_json_u(out, "messages_tls_unknown", c->msgs_unknown, 1);
    audit_report_json_u(out, "weak_protocol", c->weak_protocol, 1);
    audit_report_json_u(out, "weak_cipher", c->weak_cipher, 1);
    audit_report_s(out, "\"protocols\": ");
    audit_report_json_dist(out, &st->protocols, dir);
    audit_report_s(out, ", \"ciphers\": ");
    audit_report_json_dist(out, &st->ciphers, dir);
    audit_report_s(out, ", ");
    audit_report_json_peers(out, st, dir);
    audit_report_s(out, ", ");
    audit_report_json_reqfails(out, st, dir);
    audit_report_c(out, '}');
}

static void audit_report_json_domains(struct audit_report_out *out, const struct audit_stats *st)
{
    int first = 1;
    audit_report_c(out, '[');
    for (int dir = 0; dir < 2; dir++) {
        size_t n;
        uint32_t *v = audit_report_sorted(&st->domains, dir, &n);
        for (size_t i = 0; v != NULL && i < n; i++) {
            const struct audit_key *k = &st->domains.keys[v[i]];
            audit_report_s(out, first ? "{\"domain\": " : ",\n  {\"domain\": ");
            first = 0;
            audit_report_json_s(out, k->name);
            audit_report_s(out, dir == AUDIT_IN ? ", \"direction\": \"inbound\", "
                                                : ", \"direction\": \"outbound\", ");
            audit_report_json_counts(out, &k->c[dir], AUDIT_OUT);
            audit_report_c(out, '}');
        }
        free(v);
    }
    audit_report_c(out, ']');
}

static void audit_report_json_plain(struct audit_report_out *out, char **f, int first)
{
    char tb[32];
    audit_report_s(out, first ? "{\"mid\": " : ",\n  {\"mid\": ");
    audit_report_json_num(out, f[2]);
    audit_report_s(out, ", \"icid\": ");
    audit_report_json_num(out, f[3]);
    audit_report_s(out, ", \"dcid\": ");
    audit_report_json_num(out, f[4]);
    audit_report_s(out, ", \"from\": ");
    audit_report_json_opt(out, f[6]);
    audit_report_s(out, ", \"to_domain\": ");
    audit_report_json_opt(out, f[7]);
    audit_report_s(out, ", \"time\": ");
    audit_report_json_opt(out, audit_report_spill_time(f[1], tb, sizeof(tb)));
    audit_report_s(out, ", \"hop\": ");
    audit_report_json_s(out, f[5]);
    audit_report_c(out, '}');
}

static void audit_report_json_plains(struct audit_report_out *out, struct audit_stats *st)
{
    char buf[4096], *f[AUDIT_SPILL_FIELDS];
    int first = 1;
    audit_report_c(out, '[');
    audit_stats_spill_rewind(st, 'W');
    while (audit_stats_spill_next(st, 'W', buf, sizeof(buf), f)) {
        audit_report_json_plain(out, f, first);
        first = 0;
    }
    audit_report_c(out, ']');
}

static void audit_report_json_all(struct audit_report_out *out, struct audit_stats *st,
                                  const struct audit_report_opts *o)
{
    (void)o;
    audit_report_s(out, "{\"inbound\": ");
    audit_report_json_dir(out, st, AUDIT_IN);
    audit_report_s(out, ",\n \"outbound\": ");
    audit_report_json_dir(out, st, AUDIT_OUT);
    audit_report_s(out, ",\n \"protocols\": ");
    audit_report_json_dist(out, &st->protocols, -1);
    audit_report_s(out, ",\n \"ciphers\": ");
    audit_report_json_dist(out, &st->ciphers, -1);
    audit_report_s(out, ",\n \"domains\": ");
    audit_report_json_domains(out, st);
    audit_report_s(out, ",\n \"without_tls\": ");
    audit_report_json_plains(out, st);
    audit_report_s(out, "}\n");
}

/* ---- aligned text -------------------------------------------------------- */

struct audit_report_table {
    size_t ncols, n, cap;
    char **cells;
    const char *right; /* 'r' per right-aligned column */
};

static void audit_report_cell(struct audit_report_table *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void audit_report_cell(struct audit_report_table *t, const char *fmt, ...)
{
    va_list ap;
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 64;
        char **c = realloc(t->cells, cap * sizeof(*c));
        if (c == NULL)
            return;
        t->cells = c;
        t->cap = cap;
    }
    va_start(ap, fmt);
    if (vasprintf(&t->cells[t->n], fmt, ap) < 0)
        t->cells[t->n] = NULL;
    va_end(ap);
    t->n++;
}

/* One row into LINE (LEN bytes), columns padded to W, trailing blanks cut. */
static void audit_report_table_row(const struct audit_report_table *t, size_t row, const size_t *w,
                                   char *line, size_t len)
{
    size_t n = 0;
    line[0] = '\0';
    for (size_t col = 0; col < t->ncols && n < len; col++) {
        const char *s = t->cells[row * t->ncols + col];
        int r = snprintf(line + n, len - n, t->right[col] == 'r' ? "%*s  " : "%-*s  ", (int)w[col],
                         s ? s : "");
        n += r > 0 ? (size_t)r : 0;
    }
    n = n < len ? n : len - 1;
    while (n > 0 && line[n - 1] == ' ')
        n--;
    line[n] = '\0';
}

static void audit_report_table_print(struct audit_report_out *out, struct audit_report_table *t)
{
    size_t w[16] = {0};
    char line[4096];
    for (size_t i = 0; i < t->n; i++) {
        size_t len = t->cells[i] ? strlen(t->cells[i]) : 0;
        if (len > w[i % t->ncols])
            w[i % t->ncols] = len;
    }
    for (size_t row = 0; row < t->n / t->ncols; row++) {
        audit_report_table_row(t, row, w, line, sizeof(line));
        audit_report_f(out, "%s\n", line);
    }
    for (size_t i = 0; i < t->n; i++)
        free(t->cells[i]);
    free(t->cells);
    memset(t, 0, sizeof(*t));
}

static void audit_report_text_summary(struct audit_report_out *out, const struct audit_stats *st)
{
    struct audit_report_table t = {9, 0, 0, NULL, "lrrrrrrrr"};
    static const char *const head[] = {"",           "connections", "TLS ok",
                                       "TLS failed", "no TLS",      "req. failed",
                                       "messages",   "w/o TLS",     "TLS unknown"};
    for (int i = 0; i < 9; i++)
        audit_report_cell(&t, "%s", head[i]);
    for (int dir = 0; dir < 2; dir++) {
        const struct audit_count *c = &st->total[dir];
        audit_report_cell(&t, "%s", audit_report_dir_name(dir));
        uint64_t v[8] = {c->conns,      c->tls_ok, c->tls_failed, c->no_tls,
                         c->req_failed, c->msgs,   c->msgs_plain, c->msgs_unknown};
        for (int i = 0; i < 8; i++)
            audit_report_cell(&t, "%llu", (unsigned long long)v[i]);
    }
    audit_report_table_print(out, &t);
    const struct audit_count *o = &st->total[AUDIT_OUT];
    audit_report_f(out,
                   "\noutbound TLS certificates: %llu verified, %llu unverified (%llu failed "
                   "verification)\n",
                   (unsigned long long)o->verified, (unsigned long long)o->unverified,
                   (unsigned long long)o->verify_failed);
}

static void audit_report_text_dist(struct audit_report_out *out, const struct audit_table *tb,
                                   const char *title, int cipher)
{
    size_t n;
    uint32_t *v = audit_report_sorted(tb, -1, &n);
    struct audit_report_table t = {4, 0, 0, NULL, "lrrl"};
    audit_report_f(out, "\n%s (connections with TLS success)\n", title);
    audit_report_cell(&t, "  name");
    audit_report_cell(&t, "inbound");
    audit_report_cell(&t, "outbound");
    audit_report_cell(&t, "%s", "");
    for (size_t i = 0; v != NULL && i < n; i++) {
        const struct audit_key *k = &tb->keys[v[i]];
        const char *weak =
            cipher ? audit_stats_weak_cipher(k->name) : audit_stats_weak_protocol(k->name);
        audit_report_cell(&t, "  %s", k->name);
        audit_report_cell(&t, "%llu", (unsigned long long)k->c[AUDIT_IN].conns);
        audit_report_cell(&t, "%llu", (unsigned long long)k->c[AUDIT_OUT].conns);
        audit_report_cell(&t, "%s%s", weak ? "WEAK: " : "", weak ? weak : "");
    }
    if (n == 0) {
        audit_report_f(out, "  (none)\n");
        for (size_t i = 0; i < t.n; i++)
            free(t.cells[i]);
        free(t.cells);
    } else {
        audit_report_table_print(out, &t);
    }
    free(v);
}

static void audit_report_more(struct audit_report_out *out, size_t shown, size_t total)
{
    if (shown < total)
        audit_report_f(out, "  ... %zu more (--limit 0, --csv or --json show all)\n",
                       total - shown);
}

static void audit_report_text_domain_row(struct audit_report_table *t, const char *name, int dir,
                                         const struct audit_count *c)
{
    audit_report_cell(t, "  %s", audit_report_dir_name(dir));
    audit_report_cell(t, "%s", name);
    uint64_t v[8] = {c->conns,    c->tls_ok,     c->tls_failed, c->no_tls,
                     c->verified, c->req_failed, c->msgs,       c->msgs_plain};
    for (int i = 0; i < 8; i++)
        audit_report_cell(t, "%llu", (unsigned long long)v[i]);
}

static void audit_report_text_domains(struct audit_report_out *out, const struct audit_stats *st,
                                      size_t limit)
{
    struct audit_report_table t = {10, 0, 0, NULL, "llrrrrrrrr"};
    static const char *const head[] = {"  direction", "domain",   "conns",    "TLS ok", "failed",
                                       "no TLS",      "verified", "req.fail", "msgs",   "w/o TLS"};
    size_t total = 0, shown = 0;
    audit_report_f(out, "\nper domain (inbound: sender domain, outbound: recipient domain)\n");
    for (int i = 0; i < 10; i++)
        audit_report_cell(&t, "%s", head[i]);
    for (int dir = 0; dir < 2; dir++) {
        size_t n;
        uint32_t *v = audit_report_sorted(&st->domains, dir, &n);
        for (size_t i = 0; v != NULL && i < n; i++, total++) {
            if (limit != 0 && shown >= limit)
                continue;
            audit_report_text_domain_row(&t, st->domains.keys[v[i]].name, dir,
                                         &st->domains.keys[v[i]].c[dir]);
            shown++;
        }
        free(v);
    }
    audit_report_table_print(out, &t);
    audit_report_more(out, shown, total);
}

static void audit_report_text_peers(struct audit_report_out *out, const struct audit_stats *st,
                                    size_t limit)
{
    struct audit_report_table t = {9, 0, 0, NULL, "lllrrrrrr"};
    static const char *const head[] = {"  direction", "address", "host", "conns",  "TLS ok",
                                       "failed",      "no TLS",  "msgs", "w/o TLS"};
    size_t total = 0, shown = 0;
    audit_report_f(out, "\nper peer address\n");
    for (int i = 0; i < 9; i++)
        audit_report_cell(&t, "%s", head[i]);
    for (int dir = 0; dir < 2; dir++) {
        size_t n;
        uint32_t *v = audit_report_sorted(&st->ips, dir, &n);
        for (size_t i = 0; v != NULL && i < n; i++, total++) {
            const struct audit_key *k = &st->ips.keys[v[i]];
            const struct audit_count *c = &k->c[dir];
            if (limit != 0 && shown >= limit)
                continue;
            audit_report_cell(&t, "  %s", audit_report_dir_name(dir));
            audit_report_cell(&t, "%s", k->name);
            audit_report_cell(&t, "%s", k->host[dir] ? k->host[dir] : "-");
            uint64_t val[6] = {c->conns,  c->tls_ok, c->tls_failed,
                               c->no_tls, c->msgs,   c->msgs_plain};
            for (int x = 0; x < 6; x++)
                audit_report_cell(&t, "%llu", (unsigned long long)val[x]);
            shown++;
        }
        free(v);
    }
    audit_report_table_print(out, &t);
    audit_report_more(out, shown, total);
}

static void audit_report_text_reqfails(struct audit_report_out *out, struct audit_stats *st,
                                       size_t limit)
{
    char buf[4096], tb[32], *f[AUDIT_SPILL_FIELDS];
    struct audit_report_table t = {8, 0, 0, NULL, "llrlllll"};
    static const char *const head[] = {"  time", "direction", "id",     "address",
                                       "host",   "domain",    "policy", "reason"};
    size_t shown = 0;
    audit_report_f(out, "\nrequired-TLS failures (%llu)\n", (unsigned long long)st->nreq);
    if (st->nreq == 0)
        return;
    for (int i = 0; i < 8; i++)
        audit_report_cell(&t, "%s", head[i]);
    audit_stats_spill_rewind(st, 'R');
    while (audit_stats_spill_next(st, 'R', buf, sizeof(buf), f)) {
        if (limit != 0 && shown >= limit)
            continue;
        audit_report_cell(&t, "  %s", audit_report_spill_time(f[2], tb, sizeof(tb)));
        audit_report_cell(&t, "%s", f[1]);
        for (int i = 3; i < 9; i++)
            audit_report_cell(&t, "%s", f[i][0] ? f[i] : "-");
        shown++;
    }
    audit_report_table_print(out, &t);
    audit_report_more(out, shown, st->nreq);
}

static void audit_report_text_plains(struct audit_report_out *out, struct audit_stats *st,
                                     size_t limit)
{
    char buf[4096], tb[32], *f[AUDIT_SPILL_FIELDS];
    struct audit_report_table t = {7, 0, 0, NULL, "lrrrlll"};
    static const char *const head[] = {"  time", "MID", "ICID", "DCID", "hop", "from", "to domain"};
    size_t shown = 0;
    audit_report_f(out, "\nmessages without TLS on a hop (%llu)\n", (unsigned long long)st->nplain);
    if (st->nplain == 0)
        return;
    for (int i = 0; i < 7; i++)
        audit_report_cell(&t, "%s", head[i]);
    audit_stats_spill_rewind(st, 'W');
    while (audit_stats_spill_next(st, 'W', buf, sizeof(buf), f)) {
        if (limit != 0 && shown >= limit)
            continue;
        audit_report_cell(&t, "  %s", audit_report_spill_time(f[1], tb, sizeof(tb)));
        for (int i = 2; i < 8; i++)
            audit_report_cell(&t, "%s", f[i][0] ? f[i] : "-");
        shown++;
    }
    audit_report_table_print(out, &t);
    audit_report_more(out, shown, st->nplain);
}

static void audit_report_text_head(struct audit_report_out *out, const struct audit_stats *st,
                                   const char *title)
{
    char a[32], b[32];
    audit_report_f(out, "%s: %llu file%s, %llu lines (%llu events)", title,
                   (unsigned long long)st->files, st->files == 1 ? "" : "s",
                   (unsigned long long)st->lines, (unsigned long long)st->events);
    if (st->first != AUDIT_NO_TIME)
        audit_report_f(out, ", %s .. %s", audit_parse_format_time(st->first, a, sizeof(a)),
                       audit_parse_format_time(st->last, b, sizeof(b)));
    audit_report_c(out, '\n');
    const struct audit_filter *f = &st->filter;
    if (f->since != AUDIT_NO_TIME)
        audit_report_f(out, "since %s\n", audit_parse_format_time(f->since, a, sizeof(a)));
    if (f->until != AUDIT_NO_TIME)
        audit_report_f(out, "until %s\n", audit_parse_format_time(f->until, a, sizeof(a)));
    if (f->domain != NULL)
        audit_report_f(out, "domain %s\n", f->domain);
    if (f->direction >= 0)
        audit_report_f(out, "direction %s\n", audit_report_dir_name(f->direction));
    audit_report_c(out, '\n');
}

static void audit_report_text_all(struct audit_report_out *out, struct audit_stats *st,
                                  const struct audit_report_opts *o)
{
    audit_report_text_head(out, st, o->title);
    audit_report_text_summary(out, st);
    audit_report_text_dist(out, &st->protocols, "protocols", 0);
    audit_report_text_dist(out, &st->ciphers, "ciphers", 1);
    audit_report_text_domains(out, st, o->list_limit);
    audit_report_text_peers(out, st, o->list_limit);
    audit_report_text_reqfails(out, st, o->list_limit);
    audit_report_text_plains(out, st, o->list_limit);
    audit_report_f(
        out, "\nweak: protocols below TLSv1.2; RC4, DES/3DES, NULL, EXPORT, anonymous, MD5 and "
             "CBC-SHA1 cipher suites\n");
}

/* ---- CSV ----------------------------------------------------------------- */

/* S as a CSV field (quoted when needed), then SEP unless it is 0. */
static void audit_report_csv_field(struct audit_report_out *out, const char *s, char sep)
{
    if (s == NULL)
        s = "";
    if (strpbrk(s, ",\"\r\n") != NULL) {
        audit_report_c(out, '"');
        for (; *s; s++) {
            if (*s == '"')
                audit_report_c(out, '"');
            audit_report_c(out, *s);
        }
        audit_report_c(out, '"');
    } else {
        audit_report_s(out, s);
    }
    if (sep != 0)
        audit_report_c(out, sep);
}

/* ",n,n,...\n" */
static void audit_report_csv_counts(struct audit_report_out *out, const struct audit_count *c)
{
    uint64_t v[12] = {c->conns,    c->tls_ok,     c->tls_failed,    c->no_tls,
                      c->verified, c->unverified, c->verify_failed, c->req_failed,
                      c->msgs,     c->msgs_plain, c->weak_protocol, c->weak_cipher};
    for (int i = 0; i < 12; i++)
        audit_report_f(out, ",%llu", (unsigned long long)v[i]);
    audit_report_c(out, '\n');
}

static const char audit_report_csv_counts_head[] =
    "connections,tls_success,tls_failed,no_tls,verified,unverified,verify_failed,"
    "required_failures,messages,messages_without_tls,weak_protocol,weak_cipher\n";

static void audit_report_csv_dist(struct audit_report_out *out, const struct audit_table *tb,
                                  const char *section, int cipher)
{
    size_t n;
    uint32_t *v = audit_report_sorted(tb, -1, &n);
    for (size_t i = 0; v != NULL && i < n; i++) {
        const struct audit_key *k = &tb->keys[v[i]];
        const char *weak =
            cipher ? audit_stats_weak_cipher(k->name) : audit_stats_weak_protocol(k->name);
        audit_report_f(out, "%s,", section);
        audit_report_csv_field(out, k->name, ',');
        audit_report_f(out, "%llu,%llu,", (unsigned long long)k->c[AUDIT_IN].conns,
                       (unsigned long long)k->c[AUDIT_OUT].conns);
        audit_report_csv_field(out, weak, '\n');
    }
    free(v);
}

static void audit_report_csv_table(struct audit_report_out *out, const struct audit_table *tb,
                                   const char *section, int hosts)
{
    for (int dir = 0; dir < 2; dir++) {
        size_t n;
        uint32_t *v = audit_report_sorted(tb, dir, &n);
        for (size_t i = 0; v != NULL && i < n; i++) {
            const struct audit_key *k = &tb->keys[v[i]];
            audit_report_f(out, "%s,%s,", section, audit_report_dir_name(dir));
            audit_report_csv_field(out, k->name, hosts ? ',' : 0);
            if (hosts)
                audit_report_csv_field(out, k->host[dir], 0);
            audit_report_csv_counts(out, &k->c[dir]);
        }
        free(v);
    }
}

static void audit_report_csv_lists(struct audit_report_out *out, struct audit_stats *st)
{
    char buf[4096], tb[32], *f[AUDIT_SPILL_FIELDS];
    audit_report_s(out, "\nsection,direction,time,id,ip,host,domain,policy,reason\n");
    audit_stats_spill_rewind(st, 'R');
    while (audit_stats_spill_next(st, 'R', buf, sizeof(buf), f)) {
        audit_report_f(out, "required_failure,%s,%s", f[1], audit_report_spill_time(f[2], tb, 32));
        for (int i = 3; i < 9; i++) {
            audit_report_c(out, ',');
            audit_report_csv_field(out, f[i], i == 8 ? '\n' : 0);
        }
    }
    audit_report_s(out, "\nsection,time,mid,icid,dcid,hop,from,to_domain\n");
    audit_stats_spill_rewind(st, 'W');
    while (audit_stats_spill_next(st, 'W', buf, sizeof(buf), f)) {
        audit_report_f(out, "without_tls,%s,%s,%s,%s,%s,", audit_report_spill_time(f[1], tb, 32),
                       f[2], f[3], f[4], f[5]);
        audit_report_csv_field(out, f[6], ',');
        audit_report_csv_field(out, f[7], '\n');
    }
}

static void audit_report_csv_all(struct audit_report_out *out, struct audit_stats *st,
                                 const struct audit_report_opts *o)
{
    (void)o;
    audit_report_f(out, "section,direction,%s", audit_report_csv_counts_head);
    for (int dir = 0; dir < 2; dir++) {
        audit_report_f(out, "summary,%s", audit_report_dir_name(dir));
        audit_report_csv_counts(out, &st->total[dir]);
    }
    audit_report_s(out, "\nsection,name,inbound,outbound,weak\n");
    audit_report_csv_dist(out, &st->protocols, "protocol", 0);
    audit_report_csv_dist(out, &st->ciphers, "cipher", 1);
    audit_report_f(out, "\nsection,direction,domain,%s", audit_report_csv_counts_head);
    audit_report_csv_table(out, &st->domains, "domain", 0);
    audit_report_f(out, "\nsection,direction,ip,host,%s", audit_report_csv_counts_head);
    audit_report_csv_table(out, &st->ips, "peer", 1);
    audit_report_csv_lists(out, st);
}

/* ---- entry points -------------------------------------------------------- */

int audit_report_json(FILE *f, struct audit_stats *st)
{
    return audit_report_to(f, st, NULL, audit_report_json_all);
}

int audit_report_text(FILE *f, struct audit_stats *st, const struct audit_report_opts *o)
{
    return audit_report_to(f, st, o, audit_report_text_all);
}

int audit_report_csv(FILE *f, struct audit_stats *st)
{
    return audit_report_to(f, st, NULL, audit_report_csv_all);
}

void audit_report_json_str(FILE *f, const char *s, size_t n)
{
    struct audit_report_out *out = malloc(sizeof(*out));
    if (out == NULL)
        return;
    out->f = f;
    out->n = 0;
    audit_report_jstr(out, s, n);
    audit_report_flush(out);
    free(out);
}

void audit_report_u64(FILE *f, uint64_t v)
{
    char b[24];
    int i = sizeof(b);
    do {
        b[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    fwrite_unlocked(b + i, 1, sizeof(b) - (size_t)i, f);
}
