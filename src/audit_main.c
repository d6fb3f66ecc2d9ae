/*
 * audit_main: `tlsgate audit [options] LOG...` -- its options and the order
 * of the work: probe and order the inputs, read them through the join into
 * the statistics, then write the chosen reports.  Standard output gets the
 * text report unless --json or --csv is chosen, or only --html / --tlsrpt
 * (which write files) are.
 *
 * Exit status: 0 done; 1 an input could not be read completely (the report
 * covers what was read); 2 usage or setup errors (nothing written).
 *
 * Must not: run the gateway's start-up (configuration, logs, ID state): the
 * tool reads logs only.
 */
#include "audit.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#define AUDIT_MAIN_LIMIT 50

static const char audit_main_usage[] =
    "usage: tlsgate audit [options] LOG...\n"
    "\n"
    "Reads ESA-format mail logs (tlsgate's and a Cisco ESA's: plain, .gz, \"-\" for\n"
    "standard input, rotated sets in any order, the syslog form) and reports TLS on\n"
    "every inbound and outbound hop.\n"
    "\n"
    "filters:\n"
    "  --since TIME         from TIME (YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS], log clock)\n"
    "  --until TIME         up to TIME (a date alone: the end of that day)\n"
    "  --domain D           only domain D (\".D\": D and its subdomains); inbound:\n"
    "                       the sender's domain, outbound: the recipient's\n"
    "  --direction in|out   one direction only\n"
    "output (standard output: text unless one of these is chosen):\n"
    "  --text | --csv | --json\n"
    "  --html FILE          a self-contained HTML page (summary, chart, tables)\n"
    "  --tlsrpt DIR         RFC 8460 reports, one JSON file per recipient domain;\n"
    "                       needs --org NAME and --contact ADDR\n"
    "  -o, --output FILE    write the text, CSV or JSON report to FILE\n"
    "  --limit N            rows per list in text and HTML (default 50, 0: all)\n"
    "  --year YYYY          the year of syslog lines that have none (default: from\n"
    "                       the file's modification time)\n"
    "  --no-progress        no progress line on standard error\n"
    "  -h, --help           this text\n"
    "\n"
    "exit status: 0 done; 1 an input could not be read to its end (the report covers\n"
    "what was read); 2 a usage error, or an input that cannot be opened.\n";

struct audit_main_opts {
    struct audit_filter filter;
    int text, csv, json, progress, year;
    size_t limit;
    const char *html, *output;
    struct audit_tlsrpt_opts rpt;
};

enum {
    AUDIT_MAIN_SINCE = 256,
    AUDIT_MAIN_UNTIL,
    AUDIT_MAIN_DOMAIN,
    AUDIT_MAIN_DIRECTION,
    AUDIT_MAIN_TEXT,
    AUDIT_MAIN_CSV,
    AUDIT_MAIN_JSON,
    AUDIT_MAIN_HTML,
    AUDIT_MAIN_TLSRPT,
    AUDIT_MAIN_ORG,
    AUDIT_MAIN_CONTACT,
    AUDIT_MAIN_LIMIT_OPT,
    AUDIT_MAIN_YEAR,
    AUDIT_MAIN_NO_PROGRESS,
};

static const struct option audit_main_longopts[] = {
    {"since", required_argument, NULL, AUDIT_MAIN_SINCE},
    {"until", required_argument, NULL, AUDIT_MAIN_UNTIL},
    {"domain", required_argument, NULL, AUDIT_MAIN_DOMAIN},
    {"direction", required_argument, NULL, AUDIT_MAIN_DIRECTION},
    {"text", no_argument, NULL, AUDIT_MAIN_TEXT},
    {"csv", no_argument, NULL, AUDIT_MAIN_CSV},
    {"json", no_argument, NULL, AUDIT_MAIN_JSON},
    {"html", required_argument, NULL, AUDIT_MAIN_HTML},
    {"tlsrpt", required_argument, NULL, AUDIT_MAIN_TLSRPT},
    {"org", required_argument, NULL, AUDIT_MAIN_ORG},
    {"contact", required_argument, NULL, AUDIT_MAIN_CONTACT},
    {"output", required_argument, NULL, 'o'},
    {"limit", required_argument, NULL, AUDIT_MAIN_LIMIT_OPT},
    {"year", required_argument, NULL, AUDIT_MAIN_YEAR},
    {"no-progress", no_argument, NULL, AUDIT_MAIN_NO_PROGRESS},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

static int audit_main_bad(const char *what, const char *arg)
{
    fprintf(stderr, "tlsgate audit: %s: %s\n%s", what, arg, audit_main_usage);
    return -1;
}

static int audit_main_number(const char *s, long lo, long hi, long *v)
{
    char *end;
    long x = strtol(s, &end, 10);
    if (*s == '\0' || *end != '\0' || x < lo || x > hi)
        return -1;
    *v = x;
    return 0;
}

/* One option that takes a value; -1 after a message. */
static int audit_main_value(int ch, const char *arg, struct audit_main_opts *o)
{
    long v;
    switch (ch) {
    case AUDIT_MAIN_SINCE:
        return audit_parse_time_arg(arg, 0, &o->filter.since) == 0
                   ? 0
                   : audit_main_bad("bad --since time", arg);
    case AUDIT_MAIN_UNTIL:
        return audit_parse_time_arg(arg, 1, &o->filter.until) == 0
                   ? 0
                   : audit_main_bad("bad --until time", arg);
    case AUDIT_MAIN_DOMAIN:
        o->filter.domain = arg;
        return arg[0] != '\0' ? 0 : audit_main_bad("empty --domain", arg);
    case AUDIT_MAIN_DIRECTION:
        if (strcmp(arg, "in") != 0 && strcmp(arg, "out") != 0)
            return audit_main_bad("--direction must be in or out", arg);
        o->filter.direction = strcmp(arg, "in") == 0 ? AUDIT_IN : AUDIT_OUT;
        return 0;
    case AUDIT_MAIN_LIMIT_OPT:
        if (audit_main_number(arg, 0, 1000000000L, &v) != 0)
            return audit_main_bad("bad --limit", arg);
        o->limit = (size_t)v;
        return 0;
    case AUDIT_MAIN_YEAR:
        if (audit_main_number(arg, 1970, 9999, &v) != 0)
            return audit_main_bad("bad --year", arg);
        o->year = (int)v;
        return 0;
    }
    return 0;
}

static int audit_main_option(int ch, const char *arg, struct audit_main_opts *o)
{
    switch (ch) {
    case AUDIT_MAIN_TEXT:
        o->text = 1;
        return 0;
    case AUDIT_MAIN_CSV:
        o->csv = 1;
        return 0;
    case AUDIT_MAIN_JSON:
        o->json = 1;
        return 0;
    case AUDIT_MAIN_HTML:
        o->html = arg;
        return 0;
    case AUDIT_MAIN_TLSRPT:
        o->rpt.dir = arg;
        return 0;
    case AUDIT_MAIN_ORG:
        o->rpt.org = arg;
        return 0;
    case AUDIT_MAIN_CONTACT:
        o->rpt.contact = arg;
        return 0;
    case 'o':
        o->output = arg;
        return 0;
    case AUDIT_MAIN_NO_PROGRESS:
        o->progress = 0;
        return 0;
    }
    return audit_main_value(ch, arg, o);
}

static int audit_main_check(const struct audit_main_opts *o)
{
    if (o->text + o->csv + o->json > 1) {
        fprintf(stderr, "tlsgate audit: choose one of --text, --csv, --json\n");
        return -1;
    }
    if (o->rpt.dir != NULL && (o->rpt.org == NULL || o->rpt.contact == NULL)) {
        fprintf(stderr, "tlsgate audit: --tlsrpt needs --org NAME and --contact ADDR\n");
        return -1;
    }
    if (o->filter.since != AUDIT_NO_TIME && o->filter.until != AUDIT_NO_TIME &&
        o->filter.since > o->filter.until) {
        fprintf(stderr, "tlsgate audit: --since is after --until\n");
        return -1;
    }
    return 0;
}

/* 1 on --help, 0 when the options are fine, -1 after a message. */
static int audit_main_options(int argc, char **argv, struct audit_main_opts *o)
{
    int ch;
    memset(o, 0, sizeof(*o));
    o->filter.since = o->filter.until = AUDIT_NO_TIME;
    o->filter.direction = -1;
    o->limit = AUDIT_MAIN_LIMIT;
    o->progress = 1;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "ho:", audit_main_longopts, NULL)) != -1) {
        if (ch == 'h') {
            fputs(audit_main_usage, stdout);
            return 1;
        }
        if (ch == '?' || audit_main_option(ch, optarg, o) != 0)
            return -1;
    }
    if (optind >= argc) {
        fprintf(stderr, "tlsgate audit: no LOG given\n%s", audit_main_usage);
        return -1;
    }
    return audit_main_check(o);
}

/* ---- the work ------------------------------------------------------------ */

static struct audit_input *audit_main_probe(char **paths, size_t n, int year)
{
    struct audit_input *in = calloc(n, sizeof(*in));
    if (in == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        if (audit_input_probe(&in[i], paths[i]) != 0) {
            for (size_t k = 0; k <= i; k++)
                audit_input_free(&in[k]);
            free(in);
            return NULL;
        }
        if (year > 0) {
            in[i].ctx.ref_year = year;
            in[i].ctx.ref_month = 12;
        }
    }
    audit_input_order(in, n);
    return in;
}

static int audit_main_stdout(const struct audit_main_opts *o, struct audit_stats *st)
{
    struct audit_report_opts ro = {"tlsgate audit", o->limit};
    if (!o->text && !o->csv && !o->json && (o->html != NULL || o->rpt.dir != NULL))
        return 0;
    FILE *out = o->output != NULL ? fopen(o->output, "w") : stdout;
    if (out == NULL) {
        perror(o->output);
        return -1;
    }
    setvbuf(out, NULL, _IOFBF, 1 << 20);
    int rc = o->json  ? audit_report_json(out, st)
             : o->csv ? audit_report_csv(out, st)
                      : audit_report_text(out, st, &ro);
    if (fflush(out) != 0)
        rc = -1;
    if (out != stdout && fclose(out) != 0)
        rc = -1;
    return rc;
}

static int audit_main_outputs(const struct audit_main_opts *o, struct audit_stats *st)
{
    struct audit_report_opts ro = {"tlsgate audit", o->limit};
    int rc = audit_main_stdout(o, st);
    if (o->html != NULL && audit_html_write(o->html, st, &ro) != 0)
        rc = -1;
    if (o->rpt.dir != NULL && audit_tlsrpt_write(st, &o->rpt) < 0)
        rc = -1;
    return rc;
}

static int audit_main_run(const struct audit_main_opts *o, struct audit_input *in, size_t n)
{
    struct audit_stats st;
    struct audit_join j;
    if (audit_stats_init(&st, &o->filter) != 0 || audit_join_init(&j, &st) != 0) {
        fprintf(stderr, "tlsgate audit: out of memory or no temporary file\n");
        audit_stats_free(&st);
        return 2;
    }
    int read_rc = audit_input_read(in, n, &j, o->progress);
    audit_join_finish(&j);
    int out_rc = audit_main_outputs(o, &st);
    audit_join_free(&j);
    audit_stats_free(&st);
    if (out_rc != 0)
        return 2;
    return read_rc != 0 ? 1 : 0;
}

int audit_main(int argc, char **argv)
{
    struct audit_main_opts o;
    int rc = audit_main_options(argc, argv, &o);
    if (rc != 0)
        return rc > 0 ? 0 : 2;
    size_t n = (size_t)(argc - optind);
    struct audit_input *in = audit_main_probe(argv + optind, n, o.year);
    if (in == NULL)
        return 2;
    rc = audit_main_run(&o, in, n);
    for (size_t i = 0; i < n; i++)
        audit_input_free(&in[i]);
    free(in);
    return rc;
}
