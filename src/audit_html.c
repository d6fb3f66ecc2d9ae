/*
 * audit_html: the audit as one self-contained HTML page: summary, an inline
 * SVG chart of TLS coverage over time (inbound and outbound, each bar the
 * share of connections with TLS success / TLS failed / no TLS in its time
 * slice), protocols and ciphers with the weak ones flagged, the per-domain
 * and per-address tables, required-TLS failures and messages without TLS.
 *
 * Must not: reference anything outside the file (no scripts, fonts, images
 * or style sheets: the page opens offline and makes no network fetch), or
 * print a log value unescaped.
 */
#include "audit.h"

#include <stdlib.h>
#include <string.h>

#define AUDIT_HTML_BARS  96
#define AUDIT_HTML_W     960
#define AUDIT_HTML_PANEL 170
#define AUDIT_HTML_LEFT  110
#define AUDIT_HTML_RIGHT 20

static const char audit_html_style[] =
    "body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:24px 32px;"
    "color:#1f2328;background:#fff}\n"
    "h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px "
    "solid #d0d7de;padding-bottom:4px}\n"
    ".meta{color:#57606a;margin:0 0 12px}\n"
    "table{border-collapse:collapse;font-size:13px}th,td{border:1px solid #d0d7de;"
    "padding:3px 8px;text-align:right}th{background:#f6f8fa}td.l,th.l{text-align:left}\n"
    ".weak{color:#b42318;font-weight:600}.bad{color:#b42318}.more{color:#57606a;margin:6px 0}\n"
    "svg{display:block;margin:8px 0}svg text{font-size:11px;fill:#1f2328}\n"
    ".key span{display:inline-block;width:12px;height:12px;margin:0 4px 0 14px;"
    "vertical-align:-1px}\n";

#define AUDIT_HTML_OK   "#2da44e"
#define AUDIT_HTML_FAIL "#cf222e"
#define AUDIT_HTML_NONE "#afb8c1"

static void audit_html_esc(FILE *out, const char *s)
{
    for (; s != NULL && *s != '\0'; s++) {
        switch (*s) {
        case '<':
            fputs_unlocked("&lt;", out);
            break;
        case '>':
            fputs_unlocked("&gt;", out);
            break;
        case '&':
            fputs_unlocked("&amp;", out);
            break;
        case '"':
            fputs_unlocked("&quot;", out);
            break;
        case '\'':
            fputs_unlocked("&#39;", out);
            break;
        default:
            fputc_unlocked((unsigned char)*s < 0x20 ? ' ' : *s, out);
        }
    }
}

static void audit_html_td(FILE *out, const char *s, int left)
{
    fputs_unlocked(left ? "<td class=\"l\">" : "<td>", out);
    audit_html_esc(out, s != NULL && s[0] != '\0' ? s : "-");
    fputs_unlocked("</td>", out);
}

static void audit_html_num(FILE *out, uint64_t v, int bad)
{
    fprintf(out, "<td%s>%llu</td>", bad && v > 0 ? " class=\"bad\"" : "", (unsigned long long)v);
}

static void audit_html_head_row(FILE *out, const char *const *cols, int n, int nleft)
{
    fputs_unlocked("<tr>", out);
    for (int i = 0; i < n; i++)
        fprintf(out, "<th%s>%s</th>", i < nleft ? " class=\"l\"" : "", cols[i]);
    fputs_unlocked("</tr>\n", out);
}

/* ---- summary ------------------------------------------------------------- */

static void audit_html_summary(FILE *out, const struct audit_stats *st)
{
    static const char *const cols[] = {
        "",         "connections",           "TLS success", "TLS failed",
        "no TLS",   "required-TLS failures", "verified",    "unverified",
        "messages", "messages without TLS"};
    fputs_unlocked("<h2>Summary</h2>\n<table id=\"summary\">\n", out);
    audit_html_head_row(out, cols, 10, 1);
    for (int dir = 0; dir < 2; dir++) {
        const struct audit_count *c = &st->total[dir];
        fprintf(out, "<tr><td class=\"l\">%s</td>", audit_report_dir_name(dir));
        audit_html_num(out, c->conns, 0);
        audit_html_num(out, c->tls_ok, 0);
        audit_html_num(out, c->tls_failed, 1);
        audit_html_num(out, c->no_tls, 1);
        audit_html_num(out, c->req_failed, 1);
        if (dir == AUDIT_OUT) {
            audit_html_num(out, c->verified, 0);
            audit_html_num(out, c->unverified, 1);
        } else {
            fputs_unlocked("<td>-</td><td>-</td>", out);
        }
        audit_html_num(out, c->msgs, 0);
        audit_html_num(out, c->msgs_plain, 1);
        fputs_unlocked("</tr>\n", out);
    }
    fputs_unlocked("</table>\n", out);
}

/* ---- the chart ----------------------------------------------------------- */

/* The counts of bar B (K hours per bar) for DIR: ok, failed, none. */
static void audit_html_bar_counts(const struct audit_stats *st, uint32_t b, uint32_t k, int dir,
                                  uint64_t n[3])
{
    n[0] = n[1] = n[2] = 0;
    for (uint32_t h = b * k; h < (b + 1) * k && h < st->nhours; h++) {
        for (int i = 0; i < 3; i++)
            n[i] += st->hours[h].n[dir][i];
    }
}

static void audit_html_rect(FILE *out, double x, double y, double w, double h, const char *fill)
{
    if (h > 0)
        fprintf(out, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\"/>", x,
                y, w, h, fill);
}

static void audit_html_bar(FILE *out, const struct audit_stats *st, uint32_t b, uint32_t k, int dir,
                           double top, double bw)
{
    uint64_t n[3];
    char t0[32], t1[32];
    audit_html_bar_counts(st, b, k, dir, n);
    uint64_t total = n[0] + n[1] + n[2];
    if (total == 0)
        return;
    double x = AUDIT_HTML_LEFT + b * bw, y = top, h = AUDIT_HTML_PANEL;
    int64_t from = (st->hour0 + (int64_t)b * k) * 3600;
    fprintf(out, "<g><title>%s .. %s: %llu TLS, %llu failed, %llu without TLS (%.0f%% TLS)</title>",
            audit_parse_format_time(from, t0, sizeof(t0)),
            audit_parse_format_time(from + (int64_t)k * 3600, t1, sizeof(t1)),
            (unsigned long long)n[0], (unsigned long long)n[1], (unsigned long long)n[2],
            100.0 * (double)n[0] / (double)total);
    static const char *const fill[3] = {AUDIT_HTML_OK, AUDIT_HTML_FAIL, AUDIT_HTML_NONE};
    for (int i = 0; i < 3; i++) {
        double part = h * (double)n[i] / (double)total;
        audit_html_rect(out, x + 1, y, bw > 3 ? bw - 2 : bw, part, fill[i]);
        y += part;
    }
    fputs_unlocked("</g>", out);
}

static void audit_html_axes(FILE *out, const char *title, double top, double right)
{
    fprintf(out, "<text x=\"4\" y=\"%.1f\" font-weight=\"600\">%s</text>\n", top + 12, title);
    for (int pct = 0; pct <= 100; pct += 50) {
        double y = top + AUDIT_HTML_PANEL * (100 - pct) / 100.0;
        fprintf(out,
                "<line x1=\"%d\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#d0d7de\"/>"
                "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%d%%</text>\n",
                AUDIT_HTML_LEFT, right, y, y, AUDIT_HTML_LEFT - 6, y + 4, pct);
    }
}

static void audit_html_time_labels(FILE *out, const struct audit_stats *st, double y, double right)
{
    char t0[32], t1[32];
    audit_parse_format_time(st->hour0 * 3600, t0, sizeof(t0));
    audit_parse_format_time((st->hour0 + st->nhours) * 3600, t1, sizeof(t1));
    t0[16] = t1[16] = '\0'; /* to the minute */
    fprintf(out, "<text x=\"%d\" y=\"%.1f\">%s</text>", AUDIT_HTML_LEFT, y, t0);
    fprintf(out, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%s</text>\n", right, y, t1);
}

static void audit_html_chart(FILE *out, const struct audit_stats *st)
{
    double right = AUDIT_HTML_W - AUDIT_HTML_RIGHT;
    int height = 2 * AUDIT_HTML_PANEL + 80;
    fputs_unlocked("<h2>TLS coverage over time</h2>\n", out);
    fprintf(out,
            "<svg id=\"coverage-chart\" xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" "
            "height=\"%d\" viewBox=\"0 0 %d %d\" role=\"img\" aria-label=\"TLS coverage over "
            "time\">\n",
            AUDIT_HTML_W, height, AUDIT_HTML_W, height);
    if (st->nhours == 0) {
        fputs_unlocked("<text x=\"10\" y=\"20\">no connections in the period</text>\n</svg>\n",
                       out);
        return;
    }
    uint32_t k = (st->nhours + AUDIT_HTML_BARS - 1) / AUDIT_HTML_BARS;
    uint32_t bars = (st->nhours + k - 1) / k;
    double bw = (right - AUDIT_HTML_LEFT) / bars;
    for (int dir = 0; dir < 2; dir++) {
        double top = 10 + dir * (AUDIT_HTML_PANEL + 30);
        audit_html_axes(out, dir == AUDIT_IN ? "inbound" : "outbound", top, right);
        for (uint32_t b = 0; b < bars; b++)
            audit_html_bar(out, st, b, k, dir, top, bw);
        fputc_unlocked('\n', out);
    }
    audit_html_time_labels(out, st, 2 * AUDIT_HTML_PANEL + 58, right);
    fputs_unlocked("</svg>\n", out);
    fprintf(out,
            "<p class=\"key\">each bar: %u hour%s of connections<span style=\"background:%s\">"
            "</span>TLS success<span style=\"background:%s\"></span>TLS failed"
            "<span style=\"background:%s\"></span>no TLS</p>\n",
            k, k == 1 ? "" : "s", AUDIT_HTML_OK, AUDIT_HTML_FAIL, AUDIT_HTML_NONE);
}

/* ---- tables -------------------------------------------------------------- */

static void audit_html_dist(FILE *out, const struct audit_table *t, const char *title,
                            const char *id, int cipher)
{
    static const char *const cols[] = {"name", "inbound", "outbound", "weak"};
    size_t n;
    uint32_t *v = audit_report_sorted(t, -1, &n);
    fprintf(out, "<h2>%s</h2>\n<table id=\"%s\">\n", title, id);
    audit_html_head_row(out, cols, 4, 1);
    for (size_t i = 0; v != NULL && i < n; i++) {
        const struct audit_key *k = &t->keys[v[i]];
        const char *weak =
            cipher ? audit_stats_weak_cipher(k->name) : audit_stats_weak_protocol(k->name);
        fputs_unlocked("<tr>", out);
        audit_html_td(out, k->name, 1);
        audit_html_num(out, k->c[AUDIT_IN].conns, 0);
        audit_html_num(out, k->c[AUDIT_OUT].conns, 0);
        fputs_unlocked(weak ? "<td class=\"l weak\">" : "<td class=\"l\">", out);
        audit_html_esc(out, weak ? weak : "");
        fputs_unlocked("</td></tr>\n", out);
    }
    fputs_unlocked("</table>\n", out);
    free(v);
}

static void audit_html_more(FILE *out, size_t shown, size_t total)
{
    if (shown < total)
        fprintf(out, "<p class=\"more\">%zu more rows not shown (--limit 0 shows all)</p>\n",
                total - shown);
}

static void audit_html_domain_row(FILE *out, const char *name, int dir, const struct audit_count *c)
{
    fputs_unlocked("<tr>", out);
    audit_html_td(out, audit_report_dir_name(dir), 1);
    audit_html_td(out, name, 1);
    audit_html_num(out, c->conns, 0);
    audit_html_num(out, c->tls_ok, 0);
    audit_html_num(out, c->tls_failed, 1);
    audit_html_num(out, c->no_tls, 1);
    audit_html_num(out, c->verified, 0);
    audit_html_num(out, c->req_failed, 1);
    audit_html_num(out, c->msgs, 0);
    audit_html_num(out, c->msgs_plain, 1);
    fprintf(out, "<td>%.0f%%</td></tr>\n",
            c->conns ? 100.0 * (double)c->tls_ok / (double)c->conns : 0.0);
}

static void audit_html_domains(FILE *out, const struct audit_stats *st, size_t limit)
{
    static const char *const cols[] = {
        "direction",  "domain",      "connections", "TLS success",
        "TLS failed", "no TLS",      "verified",    "required-TLS failures",
        "messages",   "without TLS", "TLS share"};
    size_t shown = 0, total = 0;
    fputs_unlocked(
        "<h2>Per domain</h2>\n<p class=\"meta\">inbound: the sender's domain; outbound: the "
        "recipient's domain</p>\n<table id=\"domains\">\n",
        out);
    audit_html_head_row(out, cols, 11, 2);
    for (int dir = 0; dir < 2; dir++) {
        size_t n;
        uint32_t *v = audit_report_sorted(&st->domains, dir, &n);
        for (size_t i = 0; v != NULL && i < n; i++, total++) {
            if (limit != 0 && shown >= limit)
                continue;
            audit_html_domain_row(out, st->domains.keys[v[i]].name, dir,
                                  &st->domains.keys[v[i]].c[dir]);
            shown++;
        }
        free(v);
    }
    fputs_unlocked("</table>\n", out);
    audit_html_more(out, shown, total);
}

static void audit_html_peers(FILE *out, const struct audit_stats *st, size_t limit)
{
    static const char *const cols[] = {"direction",   "address",     "host",
                                       "connections", "TLS success", "TLS failed",
                                       "no TLS",      "messages",    "without TLS"};
    size_t shown = 0, total = 0;
    fputs_unlocked("<h2>Per peer address</h2>\n<table id=\"peers\">\n", out);
    audit_html_head_row(out, cols, 9, 3);
    for (int dir = 0; dir < 2; dir++) {
        size_t n;
        uint32_t *v = audit_report_sorted(&st->ips, dir, &n);
        for (size_t i = 0; v != NULL && i < n; i++, total++) {
            const struct audit_key *k = &st->ips.keys[v[i]];
            if (limit != 0 && shown >= limit)
                continue;
            fputs_unlocked("<tr>", out);
            audit_html_td(out, audit_report_dir_name(dir), 1);
            audit_html_td(out, k->name, 1);
            audit_html_td(out, k->host[dir], 1);
            audit_html_num(out, k->c[dir].conns, 0);
            audit_html_num(out, k->c[dir].tls_ok, 0);
            audit_html_num(out, k->c[dir].tls_failed, 1);
            audit_html_num(out, k->c[dir].no_tls, 1);
            audit_html_num(out, k->c[dir].msgs, 0);
            audit_html_num(out, k->c[dir].msgs_plain, 1);
            fputs_unlocked("</tr>\n", out);
            shown++;
        }
        free(v);
    }
    fputs_unlocked("</table>\n", out);
    audit_html_more(out, shown, total);
}

static void audit_html_reqfails(FILE *out, struct audit_stats *st, size_t limit)
{
    static const char *const cols[] = {"time", "direction", "ID",     "address",
                                       "host", "domain",    "policy", "reason"};
    char buf[4096], tb[32], *f[AUDIT_SPILL_FIELDS];
    size_t shown = 0;
    fprintf(out, "<h2>Required-TLS failures (%llu)</h2>\n<table id=\"required-failures\">\n",
            (unsigned long long)st->nreq);
    audit_html_head_row(out, cols, 8, 8);
    audit_stats_spill_rewind(st, 'R');
    while (audit_stats_spill_next(st, 'R', buf, sizeof(buf), f)) {
        if (limit != 0 && shown >= limit)
            continue;
        fputs_unlocked("<tr>", out);
        audit_html_td(out, audit_report_spill_time(f[2], tb, sizeof(tb)), 1);
        for (int i = 1; i < 9; i++) {
            if (i != 2)
                audit_html_td(out, f[i], 1);
        }
        fputs_unlocked("</tr>\n", out);
        shown++;
    }
    fputs_unlocked("</table>\n", out);
    audit_html_more(out, shown, st->nreq);
}

static void audit_html_plains(FILE *out, struct audit_stats *st, size_t limit)
{
    static const char *const cols[] = {"time", "MID",      "ICID", "DCID", "hop without TLS",
                                       "from", "to domain"};
    char buf[4096], tb[32], *f[AUDIT_SPILL_FIELDS];
    size_t shown = 0;
    fprintf(out, "<h2>Messages without TLS (%llu)</h2>\n<table id=\"without-tls\">\n",
            (unsigned long long)st->nplain);
    audit_html_head_row(out, cols, 7, 7);
    audit_stats_spill_rewind(st, 'W');
    while (audit_stats_spill_next(st, 'W', buf, sizeof(buf), f)) {
        if (limit != 0 && shown >= limit)
            continue;
        fputs_unlocked("<tr>", out);
        audit_html_td(out, audit_report_spill_time(f[1], tb, sizeof(tb)), 1);
        for (int i = 2; i < 8; i++)
            audit_html_td(out, f[i], 1);
        fputs_unlocked("</tr>\n", out);
        shown++;
    }
    fputs_unlocked("</table>\n", out);
    audit_html_more(out, shown, st->nplain);
}

static void audit_html_top(FILE *out, const struct audit_stats *st, const char *title)
{
    char a[32], b[32];
    fputs_unlocked("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n", out);
    fputs_unlocked("<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
                   "style-src 'unsafe-inline'\">\n<title>",
                   out);
    audit_html_esc(out, title);
    fprintf(out, "</title>\n<style>\n%s</style>\n</head>\n<body>\n<h1>", audit_html_style);
    audit_html_esc(out, title);
    fprintf(out, "</h1>\n<p class=\"meta\">%llu file%s, %llu lines", (unsigned long long)st->files,
            st->files == 1 ? "" : "s", (unsigned long long)st->lines);
    if (st->first != AUDIT_NO_TIME)
        fprintf(out, ", %s .. %s", audit_parse_format_time(st->first, a, sizeof(a)),
                audit_parse_format_time(st->last, b, sizeof(b)));
    if (st->filter.domain != NULL) {
        fputs_unlocked(", domain ", out);
        audit_html_esc(out, st->filter.domain);
    }
    if (st->filter.direction >= 0)
        fprintf(out, ", %s only", audit_report_dir_name(st->filter.direction));
    fputs_unlocked("</p>\n", out);
}

int audit_html_write(const char *path, struct audit_stats *st, const struct audit_report_opts *o)
{
    FILE *out = fopen(path, "w");
    if (out == NULL) {
        perror(path);
        return -1;
    }
    audit_html_top(out, st, o->title);
    audit_html_summary(out, st);
    audit_html_chart(out, st);
    audit_html_dist(out, &st->protocols, "Protocols", "protocols", 0);
    audit_html_dist(out, &st->ciphers, "Ciphers", "ciphers", 1);
    audit_html_domains(out, st, o->list_limit);
    audit_html_peers(out, st, o->list_limit);
    audit_html_reqfails(out, st, o->list_limit);
    audit_html_plains(out, st, o->list_limit);
    fputs_unlocked(
        "<p class=\"meta\">Weak: protocols below TLSv1.2; RC4, DES and 3DES, NULL, EXPORT, "
        "anonymous, MD5 and CBC-SHA1 cipher suites.</p>\n</body>\n</html>\n",
        out);
    int rc = ferror(out) ? -1 : 0;
    if (fclose(out) != 0 || rc != 0) {
        perror(path);
        return -1;
    }
    return 0;
}
