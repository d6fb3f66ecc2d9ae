/*
 * audit_tlsrpt: RFC 8460 (SMTP TLS Reporting) aggregate reports from the
 * outbound sessions of the logs, one JSON file per policy domain (the
 * recipient domain), named as section 5.3 asks:
 * "sender!policy-domain!begin-timestamp!end-timestamp.json" where sender is
 * the domain of --contact.
 *
 * What the log can tell: tlsgate and ESA know no MTA-STS or DANE policy, so
 * every policy is {"policy-type": "no-policy-found", "policy-domain": D}.
 * Sessions: successful = TLS success without a failed verification; failed
 * = TLS failed, a required level not met, STARTTLS not offered or refused,
 * or a failed verification (audit_stats).  result-type from the reason:
 * starttls-not-supported, certificate-expired, certificate-host-mismatch,
 * certificate-not-trusted, else validation-failure; failure-reason-code
 * carries the logged reason.  date-range: --since/--until when given, else
 * the first and last time stamps of the logs, converted from the log's
 * local clock to UTC.
 *
 * Must not: write outside the chosen directory (domain names from the log
 * are reduced to [a-z0-9.-_] in file names).
 */
#include "audit.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

/* The log's wall-clock T (local time) as seconds since the epoch. */
static time_t audit_tlsrpt_epoch(int64_t t)
{
    char buf[32];
    struct tm tm = {0};
    audit_parse_format_time(t, buf, sizeof(buf));
    if (sscanf(buf, "%d-%d-%dT%d:%d:%d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
               &tm.tm_min, &tm.tm_sec) != 6)
        return 0;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    tm.tm_isdst = -1;
    return mktime(&tm);
}

static char *audit_tlsrpt_rfc3339(time_t t, char *buf, size_t len)
{
    struct tm tm;
    if (gmtime_r(&t, &tm) == NULL || strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(buf, len, "1970-01-01T00:00:00Z");
    return buf;
}

/* The sender part of the file name: the domain of "mailto:x@d", "x@d" or an
 * https URI's host. */
static void audit_tlsrpt_sender(const char *contact, char *buf, size_t len)
{
    const char *p = strrchr(contact, '@');
    if (p != NULL) {
        p++;
    } else if ((p = strstr(contact, "://")) != NULL) {
        p += 3;
    } else {
        p = "tlsgate";
    }
    size_t n = strcspn(p, "/:?#>");
    snprintf(buf, len, "%.*s", (int)n, p);
}

/* S reduced to a file-name part: [A-Za-z0-9.-_], never "." or "..". */
static void audit_tlsrpt_safe(char *s)
{
    for (char *p = s; *p; p++) {
        char c = *p;
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '.' || c == '-' || c == '_';
        if (!ok)
            *p = '_';
    }
    if (s[0] == '\0' || strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
        s[0] = '_', s[1] = '\0';
}

struct audit_tlsrpt_ctx {
    const struct audit_tlsrpt_opts *o;
    struct audit_stats *st;
    time_t start, end;
    char sender[256];
    uint32_t *details; /* rpt keys sorted by policy domain */
    size_t ndetails, next;
};

static void audit_tlsrpt_key(FILE *out, const char *key, const char *value, int more)
{
    fprintf(out, "\"%s\": ", key);
    audit_report_json_str(out, value, strlen(value));
    if (more)
        fputs(", ", out);
}

/* One failure-details object from a key "domain \x1f result \x1f sending
 * ip \x1f receiving ip \x1f mx host \x1f reason". */
static void audit_tlsrpt_detail(FILE *out, const struct audit_key *k, int first)
{
    char copy[600], *f[6] = {0};
    snprintf(copy, sizeof(copy), "%s", k->name);
    char *p = copy;
    for (int i = 0; i < 6 && p != NULL; i++) {
        f[i] = p;
        p = strchr(p, '\x1f');
        if (p != NULL)
            *p++ = '\0';
    }
    fputs(first ? "\n      {" : ",\n      {", out);
    audit_tlsrpt_key(out, "result-type", f[1] ? f[1] : "validation-failure", 1);
    if (f[2] && f[2][0])
        audit_tlsrpt_key(out, "sending-mta-ip", f[2], 1);
    if (f[4] && f[4][0])
        audit_tlsrpt_key(out, "receiving-mx-hostname", f[4], 1);
    if (f[3] && f[3][0])
        audit_tlsrpt_key(out, "receiving-ip", f[3], 1);
    fprintf(out, "\"failed-session-count\": %llu", (unsigned long long)k->c[AUDIT_OUT].conns);
    if (f[5] && f[5][0]) {
        fputs(", ", out);
        audit_tlsrpt_key(out, "failure-reason-code", f[5], 0);
    }
    fputc('}', out);
}

static void audit_tlsrpt_details(FILE *out, struct audit_tlsrpt_ctx *c, uint32_t domain)
{
    const struct audit_table *rpt = &c->st->rpt;
    int first = 1;
    fputs("\"failure-details\": [", out);
    while (c->next < c->ndetails && rpt->keys[c->details[c->next]].aux == domain) {
        audit_tlsrpt_detail(out, &rpt->keys[c->details[c->next]], first);
        first = 0;
        c->next++;
    }
    fputs(first ? "]" : "\n    ]", out);
}

static void audit_tlsrpt_body(FILE *out, struct audit_tlsrpt_ctx *c, uint32_t domain)
{
    char a[32], b[32], id[600];
    const struct audit_key *k = &c->st->domains.keys[domain];
    audit_tlsrpt_rfc3339(c->start, a, sizeof(a));
    audit_tlsrpt_rfc3339(c->end, b, sizeof(b));
    snprintf(id, sizeof(id), "%s_%s@%s", a, k->name, c->sender);
    fputs("{\n  ", out);
    audit_tlsrpt_key(out, "organization-name", c->o->org, 1);
    fputs("\n  \"date-range\": {", out);
    audit_tlsrpt_key(out, "start-datetime", a, 1);
    audit_tlsrpt_key(out, "end-datetime", b, 0);
    fputs("},\n  ", out);
    audit_tlsrpt_key(out, "contact-info", c->o->contact, 1);
    fputs("\n  ", out);
    audit_tlsrpt_key(out, "report-id", id, 1);
    fputs("\n  \"policies\": [{\n    \"policy\": {\"policy-type\": \"no-policy-found\", ", out);
    audit_tlsrpt_key(out, "policy-domain", k->name, 0);
    fprintf(out,
            "},\n    \"summary\": {\"total-successful-session-count\": %llu, "
            "\"total-failure-session-count\": %llu},\n    ",
            (unsigned long long)k->c[AUDIT_OUT].rpt_ok,
            (unsigned long long)k->c[AUDIT_OUT].rpt_failed);
    audit_tlsrpt_details(out, c, domain);
    fputs("\n  }]\n}\n", out);
}

static int audit_tlsrpt_file(struct audit_tlsrpt_ctx *c, uint32_t domain)
{
    char sender[256], name[256], path[4096];
    snprintf(sender, sizeof(sender), "%s", c->sender);
    snprintf(name, sizeof(name), "%s", c->st->domains.keys[domain].name);
    audit_tlsrpt_safe(sender);
    audit_tlsrpt_safe(name);
    snprintf(path, sizeof(path), "%s/%s!%s!%lld!%lld.json", c->o->dir, sender, name,
             (long long)c->start, (long long)c->end);
    FILE *out = fopen(path, "w");
    if (out == NULL) {
        fprintf(stderr, "tlsgate audit: %s: %s\n", path, strerror(errno));
        return -1;
    }
    audit_tlsrpt_body(out, c, domain);
    if (fclose(out) != 0) {
        fprintf(stderr, "tlsgate audit: %s: %s\n", path, strerror(errno));
        return -1;
    }
    return 0;
}

static int audit_tlsrpt_cmp(const void *a, const void *b, void *arg)
{
    const struct audit_table *t = arg;
    uint32_t x = t->keys[*(const uint32_t *)a].aux, y = t->keys[*(const uint32_t *)b].aux;
    if (x != y)
        return x < y ? -1 : 1;
    return strcmp(t->keys[*(const uint32_t *)a].name, t->keys[*(const uint32_t *)b].name);
}

static int audit_tlsrpt_prepare(struct audit_tlsrpt_ctx *c)
{
    const struct audit_stats *st = c->st;
    int64_t from = st->filter.since != AUDIT_NO_TIME ? st->filter.since : st->first;
    int64_t to = st->filter.until != AUDIT_NO_TIME ? st->filter.until : st->last;
    c->start = from != AUDIT_NO_TIME ? audit_tlsrpt_epoch(from) : 0;
    c->end = to != AUDIT_NO_TIME ? audit_tlsrpt_epoch(to) : 0;
    audit_tlsrpt_sender(c->o->contact, c->sender, sizeof(c->sender));
    c->ndetails = st->rpt.n;
    c->details = malloc((c->ndetails + 1) * sizeof(*c->details));
    if (c->details == NULL)
        return -1;
    for (uint32_t i = 0; i < st->rpt.n; i++)
        c->details[i] = i;
    qsort_r(c->details, c->ndetails, sizeof(*c->details), audit_tlsrpt_cmp, (void *)&st->rpt);
    if (mkdir(c->o->dir, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "tlsgate audit: %s: %s\n", c->o->dir, strerror(errno));
        return -1;
    }
    return 0;
}

int audit_tlsrpt_write(struct audit_stats *st, const struct audit_tlsrpt_opts *o)
{
    struct audit_tlsrpt_ctx c = {.o = o, .st = st};
    int written = 0;
    if (audit_tlsrpt_prepare(&c) != 0) {
        free(c.details);
        return -1;
    }
    for (uint32_t d = 0; d < st->domains.n; d++) {
        const struct audit_count *k = &st->domains.keys[d].c[AUDIT_OUT];
        while (c.next < c.ndetails && st->rpt.keys[c.details[c.next]].aux < d)
            c.next++;
        if (k->rpt_ok + k->rpt_failed == 0 || d == st->domains.other)
            continue;
        if (audit_tlsrpt_file(&c, d) != 0) {
            free(c.details);
            return -1;
        }
        written++;
    }
    free(c.details);
    return written;
}
