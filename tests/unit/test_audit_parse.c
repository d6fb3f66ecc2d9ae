/*
 * Unit tests for `tlsgate audit` below its command line: the line parser
 * over a corpus of real and documented ESA log lines (tests/data/audit/
 * esa-variants.log: every line with its expected fields and its source),
 * time stamps and --since/--until times, weak protocol and cipher
 * classification, RFC 8460 result types, the joins (ICID -> MID -> DCID)
 * and what is counted, the bounded state, the filters, the ordering of a
 * rotated set, gzip and standard input, JSON string escaping.  Each test
 * works in its own mkdtemp directory when it needs files, and removes it.
 */
#include "audit.h"

#include <check.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stddef.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define TEST_N(a) ((int)(sizeof(a) / sizeof((a)[0])))

static char test_dir[256];

static void test_setup(void)
{
    snprintf(test_dir, sizeof test_dir, "%s/audit-XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    ck_assert_ptr_nonnull(mkdtemp(test_dir));
}

static int test_rm(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static void test_teardown(void)
{
    nftw(test_dir, test_rm, 16, FTW_DEPTH | FTW_PHYS);
}

static char *test_path(const char *name)
{
    static char buf[4][512];
    static int i;
    char *p = buf[i++ % 4];
    snprintf(p, sizeof buf[0], "%s/%s", test_dir, name);
    return p;
}

static void test_write(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fputs(text, f) >= 0, 1);
    ck_assert_int_eq(fclose(f), 0);
}

/* Source tree path of REL: TLSGATE_TEST_DATA is <source>/tests/data. */
static void test_data_path(char *buf, size_t size, const char *rel)
{
    const char *data = getenv("TLSGATE_TEST_DATA");
    if (data != NULL) {
        snprintf(buf, size, "%s/%s", data, rel);
        return;
    }
    char root[PATH_MAX / 2];
    snprintf(root, sizeof(root), "%s", __FILE__);
    for (int i = 0; i < 2; i++)
        *strrchr(root, '/') = '\0';
    snprintf(buf, size, "%s/data/%s", root, rel);
}

/* ---- the corpus ---------------------------------------------------------- */

static const struct audit_parse_ctx test_ctx = {2026, 12, {0}, 0};

/* The string field NAME of EV, or NULL when NAME is not one. */
static const struct audit_str *test_str_field(const struct audit_event *ev, const char *name)
{
    static const struct {
        const char *name;
        size_t off;
    } fields[] = {
        {"ip", offsetof(struct audit_event, ip)},
        {"local_ip", offsetof(struct audit_event, local_ip)},
        {"iface", offsetof(struct audit_event, iface)},
        {"host", offsetof(struct audit_event, host)},
        {"protocol", offsetof(struct audit_event, protocol)},
        {"cipher", offsetof(struct audit_event, cipher)},
        {"cn", offsetof(struct audit_event, cn)},
        {"domain", offsetof(struct audit_event, domain)},
        {"addr", offsetof(struct audit_event, addr)},
        {"reason", offsetof(struct audit_event, reason)},
        {"policy", offsetof(struct audit_event, policy)},
        {"rids", offsetof(struct audit_event, rids)},
        {"subject", offsetof(struct audit_event, subject)},
        {"issuer", offsetof(struct audit_event, issuer)},
        {"not_after", offsetof(struct audit_event, not_after)},
        {"details", offsetof(struct audit_event, details)},
    };
    for (int i = 0; i < TEST_N(fields); i++) {
        if (strcmp(fields[i].name, name) == 0)
            return (const struct audit_str *)((const char *)ev + fields[i].off);
    }
    return NULL;
}

/* The value of the number field NAME as text. */
static int test_num_field(const struct audit_event *ev, const char *name, char *buf, size_t len)
{
    char t[32];
    if (strcmp(name, "kind") == 0)
        snprintf(buf, len, "%s", audit_parse_kind_name(ev->kind));
    else if (strcmp(name, "dir") == 0)
        snprintf(buf, len, "%s", ev->dir == AUDIT_IN ? "in" : "out");
    else if (strcmp(name, "level") == 0)
        snprintf(buf, len, "%c", ev->level);
    else if (strcmp(name, "time") == 0)
        snprintf(buf, len, "%s",
                 ev->time == AUDIT_NO_TIME ? "none"
                                           : audit_parse_format_time(ev->time, t, sizeof(t)));
    else if (strcmp(name, "id") == 0)
        snprintf(buf, len, "%llu", (unsigned long long)ev->id);
    else if (strcmp(name, "mid") == 0)
        snprintf(buf, len, "%llu", (unsigned long long)ev->mid);
    else if (strcmp(name, "icid") == 0)
        snprintf(buf, len, "%llu", (unsigned long long)ev->icid);
    else if (strcmp(name, "rid") == 0)
        snprintf(buf, len, "%u", ev->rid);
    else if (strcmp(name, "port") == 0)
        snprintf(buf, len, "%d", ev->port);
    else if (strcmp(name, "verify_ok") == 0)
        snprintf(buf, len, "%d", ev->verify_ok);
    else if (strcmp(name, "no_starttls") == 0)
        snprintf(buf, len, "%d", ev->no_starttls);
    else
        return -1;
    return 0;
}

/* Checks one "key=value" expectation against EV; LINENO for messages. */
static void test_expect(const struct audit_event *ev, char *kv, int lineno)
{
    char *eq = strchr(kv, '=');
    ck_assert_msg(eq != NULL, "line %d: bad expectation '%s'", lineno, kv);
    *eq = '\0';
    const char *key = kv, *want = eq + 1;
    char got[1024];
    const struct audit_str *s = test_str_field(ev, key);
    if (s != NULL) {
        snprintf(got, sizeof(got), "%.*s", (int)s->n, s->n ? s->p : "");
    } else {
        ck_assert_msg(test_num_field(ev, key, got, sizeof(got)) == 0, "line %d: unknown key %s",
                      lineno, key);
        if (ev->kind == AUDIT_EV_NONE && strcmp(key, "kind") != 0)
            return;
    }
    ck_assert_msg(strcmp(got, want) == 0, "line %d: %s is '%s', expected '%s'", lineno, key, got,
                  want);
}

static void test_expect_all(const char *line, char *spec, int lineno)
{
    struct audit_event ev;
    struct audit_parse_ctx ctx = test_ctx;
    audit_parse_line(line, strlen(line), &ctx, &ev);
    for (char *kv = strtok(spec, ";"); kv != NULL; kv = strtok(NULL, ";")) {
        while (*kv == ' ')
            kv++;
        size_t n = strlen(kv);
        while (n > 0 && kv[n - 1] == ' ' && kv[n - 2] != '=')
            kv[--n] = '\0';
        if (n > 0 && kv[n - 1] == ' ' && kv[n - 2] == '=')
            kv[--n] = '\0';
        test_expect(&ev, kv, lineno);
    }
}

START_TEST(test_corpus)
{
    char path[PATH_MAX + 64], line[4096], last[4096] = "";
    int lineno = 0, checked = 0, pending = 0;
    test_data_path(path, sizeof(path), "audit/esa-variants.log");
    FILE *f = fopen(path, "r");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    while (fgets(line, sizeof(line), f) != NULL) {
        lineno++;
        line[strcspn(line, "\n")] = '\0';
        if (strncmp(line, "#> ", 3) == 0) {
            ck_assert_msg(pending, "line %d: expectation without a log line", lineno);
            test_expect_all(last, line + 3, lineno);
            pending = 0;
            checked++;
        } else if (line[0] != '#' && line[0] != '\0') {
            ck_assert_msg(!pending, "line %d: the line before has no expectation", lineno);
            snprintf(last, sizeof(last), "%s", line);
            pending = 1;
        }
    }
    fclose(f);
    ck_assert_int_eq(pending, 0);
    ck_assert_int_ge(checked, 80);
}
END_TEST

/* Every prefix of every corpus line parses without reading past its end
 * (ASan), and never turns a NONE line into an event by being cut short in
 * a way that changes the ID it names. */
START_TEST(test_corpus_prefixes)
{
    char path[PATH_MAX + 64], line[4096];
    test_data_path(path, sizeof(path), "audit/esa-variants.log");
    FILE *f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    while (fgets(line, sizeof(line), f) != NULL) {
        size_t n = strcspn(line, "\n");
        if (line[0] == '#')
            continue;
        for (size_t k = 0; k <= n; k++) {
            char *copy = malloc(k + 1); /* exactly K bytes: ASan sees overreads */
            memcpy(copy, line, k);
            struct audit_event ev;
            struct audit_parse_ctx ctx = test_ctx;
            audit_parse_line(copy, k, &ctx, &ev);
            free(copy);
        }
    }
    fclose(f);
}
END_TEST

/* ---- time stamps ----------------------------------------------------------- */

static const struct {
    const char *arg;
    int end;
    const char *want; /* NULL: rejected */
} time_args[] = {
    {"2026-11-23", 0, "2026-11-23T00:00:00"},
    {"2026-11-23", 1, "2026-11-23T23:59:59"},
    {"2026-11-23T13:00:00", 0, "2026-11-23T13:00:00"},
    {"2026-11-23T13:00:00", 1, "2026-11-23T13:00:00"},
    {"2026-11-23 13:05", 0, "2026-11-23T13:05:00"},
    {"2026-11-23T13:05", 1, "2026-11-23T13:05:59"},
    {"2024-02-29", 0, "2024-02-29T00:00:00"},
    {"2026-13-01", 0, NULL},
    {"2026-11-23T25:00:00", 0, NULL},
    {"2026-11-23X13:00:00", 0, NULL},
    {"26-11-23", 0, NULL},
    {"2026-11-23T13:00:00Z", 0, NULL},
    {"", 0, NULL},
};

START_TEST(test_time_args)
{
    int64_t t;
    char buf[32];
    int rc = audit_parse_time_arg(time_args[_i].arg, time_args[_i].end, &t);
    if (time_args[_i].want == NULL) {
        ck_assert_int_eq(rc, -1);
        return;
    }
    ck_assert_int_eq(rc, 0);
    ck_assert_str_eq(audit_parse_format_time(t, buf, sizeof(buf)), time_args[_i].want);
}
END_TEST

START_TEST(test_civil_round_trip)
{
    char buf[32];
    ck_assert_int_eq(audit_parse_civil(1970, 1, 1, 0, 0, 0), 0);
    ck_assert_int_eq(audit_parse_civil(2000, 3, 1, 0, 0, 0), 951868800);
    for (int64_t t = -86400LL * 400; t < 86400LL * 365 * 500; t += 86400 * 7 + 3607) {
        char want[32];
        time_t tt = (time_t)t;
        struct tm tm;
        gmtime_r(&tt, &tm);
        strftime(want, sizeof(want), "%Y-%m-%dT%H:%M:%S", &tm);
        ck_assert_str_eq(audit_parse_format_time(t, buf, sizeof(buf)), want);
    }
}
END_TEST

/* A syslog stamp has no year: months after the reference month are last
 * year's (a December line read in January). */
START_TEST(test_syslog_year)
{
    char buf[32];
    struct audit_parse_ctx jan = {2027, 1, {0}, 0};
    const char *dec = "<22>Dec 31 23:59:59 esa mail_logs: Info: ICID 1 close";
    const char *jan1 = "<22>Jan  1 00:00:01 esa mail_logs: Info: ICID 2 close";
    int64_t t = audit_parse_line_time(dec, strlen(dec), &jan);
    ck_assert_str_eq(audit_parse_format_time(t, buf, sizeof(buf)), "2026-12-31T23:59:59");
    t = audit_parse_line_time(jan1, strlen(jan1), &jan);
    ck_assert_str_eq(audit_parse_format_time(t, buf, sizeof(buf)), "2027-01-01T00:00:01");
    ck_assert_int_eq(audit_parse_line_time("no stamp at all", 15, &jan), AUDIT_NO_TIME);
}
END_TEST

/* ---- classification ------------------------------------------------------ */

static const struct {
    const char *name;
    const char *weak;
} weak_ciphers[] = {
    {"TLS_AES_256_GCM_SHA384", NULL},
    {"TLS_CHACHA20_POLY1305_SHA256", NULL},
    {"ECDHE-RSA-AES256-GCM-SHA384", NULL},
    {"ECDHE-ECDSA-CHACHA20-POLY1305", NULL},
    {"ECDHE-RSA-AES256-SHA384", NULL},
    {"DHE-RSA-AES128-GCM-SHA256", NULL},
    {"RC4-SHA", "RC4"},
    {"RC4-MD5", "RC4"},
    {"TLS_RSA_WITH_RC4_128_SHA", "RC4"},
    {"DES-CBC3-SHA", "3DES"},
    {"TLS_RSA_WITH_3DES_EDE_CBC_SHA", "3DES"},
    {"EDH-RSA-DES-CBC-SHA", "DES"},
    {"NULL-SHA256", "NULL"},
    {"TLS_RSA_WITH_NULL_SHA", "NULL"},
    {"EXP-RC2-CBC-MD5", "EXPORT"},
    {"ADH-AES256-GCM-SHA384", "anonymous"},
    {"AECDH-AES128-SHA", "anonymous"},
    {"AES128-SHA", "CBC-SHA1"},
    {"ECDHE-RSA-AES256-SHA", "CBC-SHA1"},
    {"DHE-RSA-AES256-SHA", "CBC-SHA1"},
    {"TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", "CBC-SHA1"},
};

START_TEST(test_weak_cipher)
{
    const char *got = audit_stats_weak_cipher(weak_ciphers[_i].name);
    if (weak_ciphers[_i].weak == NULL)
        ck_assert_msg(got == NULL, "%s flagged %s", weak_ciphers[_i].name, got);
    else
        ck_assert_msg(got != NULL && strcmp(got, weak_ciphers[_i].weak) == 0, "%s: %s",
                      weak_ciphers[_i].name, got ? got : "(not weak)");
}
END_TEST

START_TEST(test_weak_protocol)
{
    static const char *const weak[] = {"SSLv2", "SSLv3", "TLSv1", "TLSv1.1", "TLSv1/SSLv3"};
    static const char *const fine[] = {"TLSv1.2", "TLSv1.3", ""};
    for (int i = 0; i < TEST_N(weak); i++)
        ck_assert_ptr_nonnull(audit_stats_weak_protocol(weak[i]));
    for (int i = 0; i < TEST_N(fine); i++)
        ck_assert_ptr_null(audit_stats_weak_protocol(fine[i]));
}
END_TEST

static const struct {
    const char *reason;
    int no_starttls, verify_failed;
    const char *type;
} result_types[] = {
    {"STARTTLS not offered", 1, 0, "starttls-not-supported"},
    {"STARTTLS command not supported", 1, 0, "starttls-not-supported"},
    {"STARTTLS unexpected response", 0, 0, "starttls-not-supported"},
    {"certificate has expired", 0, 1, "certificate-expired"},
    {"certificate is not yet valid", 0, 1, "certificate-expired"},
    {"certificate name does not match localhost", 0, 1, "certificate-host-mismatch"},
    {"self-signed certificate", 0, 1, "certificate-not-trusted"},
    {"self signed certificate in certificate chain", 0, 1, "certificate-not-trusted"},
    {"unable to get local issuer certificate", 0, 1, "certificate-not-trusted"},
    {"no certificate presented", 0, 1, "certificate-not-trusted"},
    {"(337047686, 'error:1416F086:SSL routines:tls_process_server_certificate:certificate "
     "verify failed')",
     0, 0, "validation-failure"},
    {"(0, 'error:0A00018A:SSL routines::dh key too small')", 0, 0, "validation-failure"},
    {"connection closed by peer", 0, 0, "validation-failure"},
};

START_TEST(test_result_type)
{
    ck_assert_str_eq(audit_stats_result_type(result_types[_i].reason, result_types[_i].no_starttls,
                                             result_types[_i].verify_failed),
                     result_types[_i].type);
}
END_TEST

/* ---- joins and counts ---------------------------------------------------- */

struct test_audit {
    struct audit_stats st;
    struct audit_join j;
};

static void test_run(struct test_audit *a, const struct audit_filter *f, const char *const *lines,
                     int n)
{
    struct audit_filter all = {AUDIT_NO_TIME, AUDIT_NO_TIME, -1, NULL};
    ck_assert_int_eq(audit_stats_init(&a->st, f ? f : &all), 0);
    ck_assert_int_eq(audit_join_init(&a->j, &a->st), 0);
    a->j.ctx = test_ctx;
    for (int i = 0; i < n; i++)
        audit_join_line(&a->j, lines[i], strlen(lines[i]));
    audit_join_finish(&a->j);
}

static void test_done(struct test_audit *a)
{
    audit_join_free(&a->j);
    audit_stats_free(&a->st);
}

#define L(text) "Wed Sep  6 13:13:16 2023 Info: " text

/* One inbound TLS session with two messages: one delivered over a verified
 * TLS DCID, one over a plain DCID; one plain inbound session whose message
 * meets a required-TLS destination that does not offer STARTTLS; one
 * message delivered locally (no DCID) from the plain session. */
static const char *const session_lines[] = {
    L("New SMTP ICID 5 interface Data 1 (192.0.2.1) address 198.51.100.7 reverse dns host "
      "mail.example.com verified yes"),
    L("ICID 5 TLS success protocol TLSv1.3 cipher TLS_AES_256_GCM_SHA384"),
    L("Start MID 6 ICID 5"),
    L("MID 6 ICID 5 From: <alice@Example.COM>"),
    L("MID 6 ICID 5 RID 0 To: <bob@example.org>"),
    L("New SMTP DCID 8 interface 192.0.2.1 address 203.0.113.25 port 25"),
    L("DCID 8 TLS success protocol TLSv1.2 cipher ECDHE-RSA-AES256-GCM-SHA384"),
    L("DCID 8 TLS verify ok host mx.example.org policy required-verify"),
    L("MID 6 ready 2048 bytes from <alice@Example.COM>"),
    L("Delivery start DCID 8 MID 6 to RID [0]"),
    L("Message done DCID 8 MID 6 to RID [0]"),
    L("MID 6 done"),
    L("Start MID 7 ICID 5"),
    L("MID 7 ICID 5 From: <alice@example.com>"),
    L("MID 7 ICID 5 RID 0 To: <carol@plain.test>"),
    L("New SMTP DCID 9 interface 192.0.2.1 address 203.0.113.26 port 25"),
    L("MID 7 ready 100 bytes from <alice@example.com>"),
    L("Delivery start DCID 9 MID 7 to RID [0]"),
    L("Message done DCID 9 MID 7 to RID [0]"),
    L("MID 7 done"),
    L("DCID 8 close"),
    L("DCID 9 close"),
    L("ICID 5 close"),
    L("New SMTP ICID 10 interface Data 1 (192.0.2.1) address 198.51.100.8 reverse dns host "
      "unknown verified no"),
    L("Start MID 11 ICID 10"),
    L("MID 11 ICID 10 From: <dave@plainsender.test>"),
    L("MID 11 ICID 10 RID 0 To: <erin@req.test>"),
    L("New SMTP DCID 12 interface 192.0.2.1 address 203.0.113.27 port 25"),
    L("DCID 12 TLS failed: STARTTLS not offered"),
    L("DCID 12 IP 203.0.113.27 TLS was required but could not be successfully negotiated"),
    "Wed Sep  6 13:13:16 2023 Warning: TLS required for req.test could not be met by "
    "mx.req.test (203.0.113.27): STARTTLS not offered",
    L("Connection Error: DCID 12 domain: req.test IP: 203.0.113.27 port: 25 details: STARTTLS "
      "not offered interface: 192.0.2.1 reason: TLS required but not offered"),
    L("DCID 12 close"),
    L("MID 11 aborted: 451 4.7.4 Delivery to req.test failed"),
    L("Start MID 13 ICID 10"),
    L("MID 13 ICID 10 From: <dave@plainsender.test>"),
    L("MID 13 ICID 10 RID 0 To: <frank@example.test>"),
    L("MID 13 ready 10 bytes from <dave@plainsender.test>"),
    L("MID 13 done"),
    L("ICID 10 close"),
};

static const struct audit_count *test_domain(struct test_audit *a, const char *name, int dir)
{
    uint32_t k = audit_stats_key(&a->st, &a->st.domains, name, strlen(name), 1);
    ck_assert_uint_lt(k, a->st.domains.n);
    return &a->st.domains.keys[k].c[dir];
}

START_TEST(test_join_counts)
{
    struct test_audit a;
    test_run(&a, NULL, session_lines, TEST_N(session_lines));
    const struct audit_count *in = &a.st.total[AUDIT_IN], *out = &a.st.total[AUDIT_OUT];
    ck_assert_uint_eq(in->conns, 2);
    ck_assert_uint_eq(in->tls_ok, 1);
    ck_assert_uint_eq(in->no_tls, 1);
    ck_assert_uint_eq(in->msgs, 3); /* MID 11 was aborted */
    ck_assert_uint_eq(in->msgs_plain, 1);
    ck_assert_uint_eq(out->conns, 3);
    ck_assert_uint_eq(out->tls_ok, 1);
    ck_assert_uint_eq(out->tls_failed, 1);
    ck_assert_uint_eq(out->no_tls, 1);
    ck_assert_uint_eq(out->verified, 1);
    ck_assert_uint_eq(out->unverified, 0);
    ck_assert_uint_eq(out->req_failed, 1);
    ck_assert_uint_eq(out->msgs, 2);
    ck_assert_uint_eq(out->msgs_plain, 1);
    ck_assert_uint_eq(a.st.nreq, 1);
    ck_assert_uint_eq(a.st.nplain, 2); /* MID 7 outbound, MID 13 inbound (local) */
    ck_assert_uint_eq(test_domain(&a, "example.com", AUDIT_IN)->msgs, 2);
    ck_assert_uint_eq(test_domain(&a, "example.org", AUDIT_OUT)->verified, 1);
    ck_assert_uint_eq(test_domain(&a, "plain.test", AUDIT_OUT)->msgs_plain, 1);
    ck_assert_uint_eq(test_domain(&a, "req.test", AUDIT_OUT)->req_failed, 1);
    ck_assert_uint_eq(test_domain(&a, "req.test", AUDIT_OUT)->rpt_failed, 1);
    ck_assert_uint_eq(test_domain(&a, "example.org", AUDIT_OUT)->rpt_ok, 1);
    test_done(&a);
}
END_TEST

/* The spilled lists say which messages went without TLS, and why the
 * required level failed. */
START_TEST(test_join_lists)
{
    struct test_audit a;
    char buf[4096], *f[AUDIT_SPILL_FIELDS];
    test_run(&a, NULL, session_lines, TEST_N(session_lines));
    audit_stats_spill_rewind(&a.st, 'W');
    ck_assert_int_eq(audit_stats_spill_next(&a.st, 'W', buf, sizeof(buf), f), 1);
    ck_assert_str_eq(f[2], "7");
    ck_assert_str_eq(f[3], "5");
    ck_assert_str_eq(f[4], "9");
    ck_assert_str_eq(f[5], "outbound");
    ck_assert_str_eq(f[6], "alice@example.com");
    ck_assert_str_eq(f[7], "plain.test");
    ck_assert_int_eq(audit_stats_spill_next(&a.st, 'W', buf, sizeof(buf), f), 1);
    ck_assert_str_eq(f[2], "13");
    ck_assert_str_eq(f[4], "");
    ck_assert_str_eq(f[5], "inbound");
    ck_assert_str_eq(f[7], "example.test");
    ck_assert_int_eq(audit_stats_spill_next(&a.st, 'W', buf, sizeof(buf), f), 0);
    audit_stats_spill_rewind(&a.st, 'R');
    ck_assert_int_eq(audit_stats_spill_next(&a.st, 'R', buf, sizeof(buf), f), 1);
    ck_assert_str_eq(f[1], "outbound");
    ck_assert_str_eq(f[3], "12");
    ck_assert_str_eq(f[4], "203.0.113.27");
    ck_assert_str_eq(f[5], "mx.req.test");
    ck_assert_str_eq(f[6], "req.test");
    ck_assert_str_eq(f[7], "required");
    ck_assert_str_eq(f[8], "STARTTLS not offered");
    test_done(&a);
}
END_TEST

/* A connection's lines may be in two files: one join reads them all. */
START_TEST(test_join_spans_files)
{
    struct test_audit a;
    test_run(&a, NULL, session_lines, 12); /* up to "MID 6 done" */
    for (int i = 12; i < TEST_N(session_lines); i++)
        audit_join_line(&a.j, session_lines[i], strlen(session_lines[i]));
    audit_join_finish(&a.j);
    ck_assert_uint_eq(a.st.total[AUDIT_IN].conns, 2);
    ck_assert_uint_eq(a.st.total[AUDIT_OUT].msgs, 2);
    test_done(&a);
}
END_TEST

/* More open connections than the pool holds: the oldest are counted early
 * (as if closed), none is lost, memory stays bounded. */
START_TEST(test_join_bounded)
{
    struct test_audit a;
    struct audit_filter all = {AUDIT_NO_TIME, AUDIT_NO_TIME, -1, NULL};
    char line[256];
    int n = AUDIT_JOIN_MAX_CONNS + 1000;
    ck_assert_int_eq(audit_stats_init(&a.st, &all), 0);
    ck_assert_int_eq(audit_join_init(&a.j, &a.st), 0);
    for (int i = 1; i <= n; i++) {
        int len = snprintf(line, sizeof(line),
                           L("New SMTP ICID %d interface Data 1 (192.0.2.1) address 198.51.%d.%d "
                             "reverse dns host unknown verified no"),
                           i, i / 250 % 250, i % 250);
        audit_join_line(&a.j, line, (size_t)len);
    }
    ck_assert_uint_eq(a.j.evicted, 1000);
    ck_assert_uint_eq(a.st.total[AUDIT_IN].conns, 1000);
    audit_join_finish(&a.j);
    ck_assert_uint_eq(a.st.total[AUDIT_IN].conns, (uint64_t)n);
    ck_assert_uint_eq(a.st.total[AUDIT_IN].no_tls, (uint64_t)n);
    test_done(&a);
}
END_TEST

/* ESA's order: a message is delivered after its ICID closed (queued), and
 * "Message finished" ends it; "ICID n lost" then "close" count once. */
START_TEST(test_join_esa_order)
{
    static const char *const lines[] = {
        L("New SMTP ICID 1 interface Data 1 (192.0.2.1) address 198.51.100.1 reverse dns host "
          "a.example verified yes"),
        L("ICID 1 TLS success protocol TLSv1.2 cipher RC4-SHA"),
        L("Start MID 2 ICID 1"),
        L("MID 2 ICID 1 From: <x@a.example>"),
        L("MID 2 ICID 1 RID 0 To: <y@b.example>"),
        L("MID 2 ICID 1 RID 1 To: <z@c.example>"),
        L("MID 2 ready 10 bytes from <x@a.example>"),
        L("ICID 1 lost"),
        L("ICID 1 close"),
        L("New SMTP DCID 3 interface 192.0.2.1 address 203.0.113.1 port 25"),
        L("DCID 3 TLS success protocol TLSv1 cipher AES128-SHA for c.example"),
        L("Delivery start DCID 3 MID 2 to RID [1]"),
        L("Message done DCID 3 MID 2 to RID [1]"),
        L("DCID 3 close"),
        L("Message finished MID 2 done"),
    };
    struct test_audit a;
    test_run(&a, NULL, lines, TEST_N(lines));
    ck_assert_uint_eq(a.st.total[AUDIT_IN].conns, 1);
    ck_assert_uint_eq(a.st.total[AUDIT_IN].msgs, 1);
    ck_assert_uint_eq(a.st.total[AUDIT_IN].weak_cipher, 1);
    ck_assert_uint_eq(a.st.total[AUDIT_OUT].weak_protocol, 1);
    ck_assert_uint_eq(a.st.total[AUDIT_OUT].msgs, 1);
    ck_assert_uint_eq(test_domain(&a, "c.example", AUDIT_OUT)->msgs, 1);
    ck_assert_uint_eq(test_domain(&a, "c.example", AUDIT_OUT)->conns, 1);
    ck_assert_uint_eq(a.st.nplain, 0);
    test_done(&a);
}
END_TEST

static const struct {
    const char *since, *until, *domain;
    int direction;
    unsigned in_conns, out_conns, out_msgs;
} filter_cases[] = {
    {NULL, NULL, NULL, -1, 2, 3, 2},
    {NULL, NULL, NULL, AUDIT_IN, 2, 0, 0},
    {NULL, NULL, NULL, AUDIT_OUT, 0, 3, 2},
    {"2023-09-07", NULL, NULL, -1, 0, 0, 0},
    {NULL, "2023-09-05", NULL, -1, 0, 0, 0},
    {"2023-09-06", "2023-09-06", NULL, -1, 2, 3, 2},
    {"2023-09-06T13:13:16", "2023-09-06T13:13:16", NULL, -1, 2, 3, 2},
    {"2023-09-06T13:13:17", NULL, NULL, -1, 0, 0, 0},
    {NULL, NULL, "example.org", -1, 0, 1, 1},
    {NULL, NULL, "EXAMPLE.com", -1, 1, 0, 0},
    {NULL, NULL, ".test", -1, 1, 2, 1},
    {NULL, NULL, "nowhere.test", -1, 0, 0, 0},
};

START_TEST(test_filters)
{
    struct audit_filter f = {AUDIT_NO_TIME, AUDIT_NO_TIME, filter_cases[_i].direction,
                             filter_cases[_i].domain};
    if (filter_cases[_i].since)
        ck_assert_int_eq(audit_parse_time_arg(filter_cases[_i].since, 0, &f.since), 0);
    if (filter_cases[_i].until)
        ck_assert_int_eq(audit_parse_time_arg(filter_cases[_i].until, 1, &f.until), 0);
    struct test_audit a;
    test_run(&a, &f, session_lines, TEST_N(session_lines));
    ck_assert_uint_eq(a.st.total[AUDIT_IN].conns, filter_cases[_i].in_conns);
    ck_assert_uint_eq(a.st.total[AUDIT_OUT].conns, filter_cases[_i].out_conns);
    ck_assert_uint_eq(a.st.total[AUDIT_OUT].msgs, filter_cases[_i].out_msgs);
    test_done(&a);
}
END_TEST

/* Without a From: line the sender (and its domain) comes from "ready". */
START_TEST(test_join_ready_sender)
{
    static const char *const lines[] = {
        L("New SMTP ICID 1 interface Data 1 (192.0.2.1) address 198.51.100.1 reverse dns host "
          "a.example verified yes"),
        L("Start MID 2 ICID 1"),
        L("MID 2 ICID 1 RID 0 To: <y@b.example>"),
        L("MID 2 ready 10 bytes from <bob@Ready.Example>"),
        L("MID 2 done"),
        L("ICID 1 close"),
    };
    struct test_audit a;
    test_run(&a, NULL, lines, TEST_N(lines));
    ck_assert_uint_eq(test_domain(&a, "ready.example", AUDIT_IN)->msgs, 1);
    ck_assert_uint_eq(test_domain(&a, "ready.example", AUDIT_IN)->msgs_plain, 1);
    ck_assert_uint_eq(a.st.nplain, 1);
    test_done(&a);
}
END_TEST

/* ---- inputs ---------------------------------------------------------------- */

static void test_write_session(const char *path, int from, int to)
{
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    for (int i = from; i < to; i++)
        fprintf(f, "%s\n", session_lines[i]);
    fclose(f);
}

/* Reads PATHS through audit_input, the spilled lists kept in at most
 * BOUND bytes of memory each. */
static void test_read_bound(struct audit_stats *st, const char *const *paths, int n, size_t bound)
{
    struct audit_filter all = {AUDIT_NO_TIME, AUDIT_NO_TIME, -1, NULL};
    struct audit_join j;
    struct audit_input in[4];
    ck_assert_int_eq(audit_stats_init(st, &all), 0);
    audit_stats_spill_bound(st, bound);
    ck_assert_int_eq(audit_join_init(&j, st), 0);
    for (int i = 0; i < n; i++)
        ck_assert_int_eq(audit_input_probe(&in[i], paths[i]), 0);
    audit_input_order(in, (size_t)n);
    ck_assert_int_eq(audit_input_read(in, (size_t)n, &j, 0), 0);
    audit_join_finish(&j);
    for (int i = 0; i < n; i++)
        audit_input_free(&in[i]);
    audit_join_free(&j);
}

static void test_read(struct audit_stats *st, const char *const *paths, int n)
{
    test_read_bound(st, paths, n, AUDIT_STATS_SPILL_MEM);
}

/* A rotated set named in the wrong order, the older half gzip'd: the files
 * are read oldest first and the sessions that span them join up. */
START_TEST(test_input_rotated_gz)
{
    struct audit_stats st;
    char cmd[1024];
    test_write_session(test_path("mail.log.1"), 0, 16);
    test_write_session(test_path("mail.log"), 16, TEST_N(session_lines));
    snprintf(cmd, sizeof(cmd), "gzip -9 '%s'", test_path("mail.log.1"));
    ck_assert_int_eq(system(cmd), 0);
    const char *paths[] = {test_path("mail.log"), test_path("mail.log.1.gz")};
    test_read(&st, paths, 2);
    ck_assert_uint_eq(st.files, 2);
    ck_assert_uint_eq(st.lines, (uint64_t)TEST_N(session_lines));
    ck_assert_uint_eq(st.total[AUDIT_IN].conns, 2);
    ck_assert_uint_eq(st.total[AUDIT_IN].msgs, 3);
    ck_assert_uint_eq(st.total[AUDIT_OUT].msgs, 2);
    ck_assert_uint_eq(st.total[AUDIT_OUT].verified, 1);
    audit_stats_free(&st);
}
END_TEST

/* Equal first time stamps: the first ID decides (IDs only grow). */
START_TEST(test_input_order_by_id)
{
    struct audit_input in[2];
    test_write(test_path("b"), L("ICID 20 close") "\n");
    test_write(test_path("a"), L("ICID 10 close") "\n");
    ck_assert_int_eq(audit_input_probe(&in[0], test_path("b")), 0);
    ck_assert_int_eq(audit_input_probe(&in[1], test_path("a")), 0);
    audit_input_order(in, 2);
    ck_assert_uint_eq(in[0].first_id, 10);
    ck_assert_uint_eq(in[1].first_id, 20);
    audit_input_free(&in[0]);
    audit_input_free(&in[1]);
}
END_TEST

/* No newline at the end, CRLF line ends, an overlong line, a missing file. */
START_TEST(test_input_edges)
{
    struct audit_stats st;
    FILE *f = fopen(test_path("edges"), "w");
    ck_assert_ptr_nonnull(f);
    fprintf(f, "%s\r\n", session_lines[0]);
    for (int i = 0; i < 20000; i++)
        fputc('x', f);
    fprintf(f, "\n%s", session_lines[22]);
    fclose(f);
    const char *paths[] = {test_path("edges")};
    test_read(&st, paths, 1);
    ck_assert_uint_eq(st.lines, 3);
    ck_assert_uint_eq(st.total[AUDIT_IN].conns, 1);
    audit_stats_free(&st);
    struct audit_input in;
    ck_assert_int_eq(audit_input_probe(&in, test_path("missing")), -1);
    audit_input_free(&in);
}
END_TEST

/* The same through standard input (the pipe path: carried partial lines,
 * an overlong line cut and its tail skipped). */
START_TEST(test_input_stdin)
{
    struct audit_stats st;
    FILE *f = fopen(test_path("edges"), "w");
    ck_assert_ptr_nonnull(f);
    fprintf(f, "%s\r\n", session_lines[0]);
    for (int i = 0; i < 3000000; i++)
        fputc('x', f);
    fprintf(f, "\n%s\n%s", session_lines[1], session_lines[22]);
    fclose(f);
    ck_assert_ptr_nonnull(freopen(test_path("edges"), "r", stdin));
    const char *paths[] = {"-"};
    test_read(&st, paths, 1);
    ck_assert_uint_eq(st.lines, 4);
    ck_assert_uint_eq(st.total[AUDIT_IN].conns, 1);
    ck_assert_uint_eq(st.total[AUDIT_IN].tls_ok, 1);
    audit_stats_free(&st);
}
END_TEST

/* A large file (many batches, several workers) gives the counts a line by
 * line join gives. */
START_TEST(test_input_batches)
{
    struct audit_stats st;
    FILE *f = fopen(test_path("big"), "w");
    ck_assert_ptr_nonnull(f);
    for (int k = 0; k < 20000; k++) {
        fprintf(f,
                L("New SMTP ICID %d interface Data 1 (192.0.2.1) address 198.51.100.%d "
                  "reverse dns host unknown verified no") "\n",
                k + 1, k % 200);
        if (k % 3 != 0)
            fprintf(f, L("ICID %d TLS success protocol TLSv1.3 cipher TLS_AES_128_GCM_SHA256") "\n",
                    k + 1);
        fprintf(f, L("MID %d Subject 'padding padding padding padding padding padding'") "\n",
                k + 1);
        fprintf(f, L("ICID %d close") "\n", k + 1);
    }
    fclose(f);
    const char *paths[] = {test_path("big")};
    test_read(&st, paths, 1);
    ck_assert_uint_eq(st.total[AUDIT_IN].conns, 20000);
    ck_assert_uint_eq(st.total[AUDIT_IN].tls_ok, 13333);
    ck_assert_uint_eq(st.total[AUDIT_IN].no_tls, 6667);
    audit_stats_free(&st);
}
END_TEST

/* A mail log of tlsgate's own lines, NSESS inbound sessions, two of them
 * open at a time (their lines interleave), each with one to three
 * messages delivered over a TLS, plain or failing DCID: deliveries whose
 * "Delivery start" and "Message done" are adjacent and others where a line
 * of the other session comes between, peer-certificate and verify lines,
 * required-TLS failures with our Warning and a Connection Error. */
static void test_write_dense(const char *path, int nsess)
{
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    unsigned seed = 7;
    int icid = 100, dcid = 500, mid = 1000, sec = 0;
    char other[2][256] = {"", ""}; /* a pending line of the other session */
    for (int k = 0; k < nsess; k++) {
        int me = ++icid, side = k % 2;
        seed = seed * 1103515245u + 12345u;
        int tls_in = (seed >> 16) % 4 != 0, nmsg = 1 + (int)((seed >> 20) % 3);
        char stamp[40];
        snprintf(stamp, sizeof(stamp), "Mon Nov 30 %02d:%02d:%02d 2026 Info: ", sec / 3600 % 24,
                 sec / 60 % 60, sec % 60);
#define W(...) (fputs(stamp, f), fprintf(f, __VA_ARGS__), fputc('\n', f))
        W("New SMTP ICID %d interface Data 1 (192.0.2.1) address 198.51.%d.%d reverse dns host "
          "mx%d.sender.example verified yes",
          me, k % 7, 1 + k % 250, k % 9);
        if (other[!side][0] != '\0') { /* the other session's close comes in between */
            fputs(other[!side], f);
            other[!side][0] = '\0';
        }
        if (tls_in)
            W("ICID %d TLS success protocol %s cipher %s", me, k % 5 ? "TLSv1.3" : "TLSv1",
              k % 5 ? "TLS_AES_256_GCM_SHA384" : "DHE-RSA-AES256-SHA");
        for (int m = 0; m < nmsg; m++) {
            int my_mid = ++mid, d = ++dcid;
            const char *dom = (const char *[]){"example.org", "Example.NET", "bank.example",
                                               "plain.example"}[(k + m) % 4];
            W("Start MID %d ICID %d", my_mid, me);
            if (k % 13 != 0) /* else the sender comes from the "ready" line */
                W("MID %d ICID %d From: <user%d@Sender%d.example>", my_mid, me, m, k % 5);
            W("MID %d ICID %d RID 0 To: <rcpt%d@%s>", my_mid, me, k % 11, dom);
            W("MID %d ready %d bytes from <user%d@sender%d.example>", my_mid, 900 + k, m, k % 5);
            W("New SMTP DCID %d interface 192.0.2.1 address 203.0.113.%d port 25", d, 1 + k % 20);
            seed = seed * 1103515245u + 12345u;
            int r = (int)((seed >> 16) % 10);
            if (r == 0) {
                W("DCID %d TLS failed: STARTTLS not offered", d);
                W("DCID %d IP 203.0.113.%d TLS was required but could not be successfully "
                  "negotiated",
                  d, 1 + k % 20);
                fprintf(f,
                        "%.25sWarning: TLS required for %s could not be met by mx.%s "
                        "(203.0.113.%d): STARTTLS not offered\n",
                        stamp, dom, dom, 1 + k % 20);
                W("Connection Error: DCID %d domain: %s IP: 203.0.113.%d port: 25 details: "
                  "STARTTLS not offered interface: 192.0.2.1 reason: TLS required",
                  d, dom, 1 + k % 20);
                W("DCID %d close", d);
                W("MID %d aborted: 451 4.7.4 TLS required but not offered", my_mid);
                continue;
            }
            if (r < 8) {
                W("DCID %d TLS success protocol TLSv1.3 cipher TLS_AES_256_GCM_SHA384", d);
                W("DCID %d TLS peer certificate subject CN=mx.%s issuer CN=Example CA not after "
                  "Jan  1 00:00:00 2030 GMT",
                  d, dom);
                if (r < 5)
                    W("DCID %d TLS verify ok host mx.%s policy preferred-verify", d, dom);
            }
            W("Delivery start DCID %d MID %d to RID [0]", d, my_mid);
            if (r == 9)
                W("MID %d Subject 'between the start and the end of a delivery'", my_mid);
            if (r == 8)
                W("ICID %d TLS success protocol TLSv1.2 cipher AES128-SHA", me);
            W("Message done DCID %d MID %d to RID [0]", d, my_mid);
            W("MID %d done", my_mid);
            W("DCID %d close", d);
        }
        snprintf(other[side], sizeof(other[side]), "%sICID %d close\n", stamp, me);
        sec += 1 + k % 3;
#undef W
    }
    for (int i = 0; i < 2; i++)
        fputs(other[i], f);
    fclose(f);
}

static char *test_json(struct audit_stats *st)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(audit_report_json(f, st), 0);
    fclose(f);
    return buf;
}

/* Many batches through the parsing threads report exactly what the same
 * lines joined one by one report (whatever the threads leave out or merge
 * on the way must not change a count, a list entry or an order). */
START_TEST(test_input_batches_as_lines)
{
    const char *path = test_path("dense");
    test_write_dense(path, 4000);
    struct audit_stats by_batch;
    const char *paths[] = {path};
    test_read(&by_batch, paths, 1);
    char *a = test_json(&by_batch);

    struct audit_filter all = {AUDIT_NO_TIME, AUDIT_NO_TIME, -1, NULL};
    struct audit_stats by_line;
    struct audit_join j;
    ck_assert_int_eq(audit_stats_init(&by_line, &all), 0);
    ck_assert_int_eq(audit_join_init(&j, &by_line), 0);
    FILE *f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    char line[1024];
    while (fgets(line, sizeof(line), f) != NULL) {
        audit_join_line(&j, line, strcspn(line, "\n"));
    }
    fclose(f);
    audit_join_finish(&j);
    char *b = test_json(&by_line);

    ck_assert_uint_gt(by_batch.total[AUDIT_IN].conns, 3900);
    ck_assert_uint_gt(by_batch.total[AUDIT_OUT].req_failed, 300);
    ck_assert_uint_gt(by_batch.nplain, 1000);
    ck_assert_uint_eq(by_batch.events, by_line.events);
    ck_assert_str_eq(a, b);
    free(a);
    free(b);
    audit_join_free(&j);
    audit_stats_free(&by_line);
    audit_stats_free(&by_batch);
}
END_TEST

/* The spilled lists are the same whether they stay in memory, outgrow
 * their bound on the way (32 KiB: the list of messages without TLS here
 * is over 60 KB, its first records in memory) or are in their files from
 * the start. */
START_TEST(test_spill_bound)
{
    const char *path = test_path("dense");
    test_write_dense(path, 4000);
    const char *paths[] = {path};
    struct audit_stats st[3];
    const size_t bound[3] = {AUDIT_STATS_SPILL_MEM, 32 << 10, 0};
    char *json[3];
    for (int i = 0; i < 3; i++) {
        test_read_bound(&st[i], paths, 1, bound[i]);
        json[i] = test_json(&st[i]);
    }
    ck_assert_uint_gt(st[0].nplain, 1000);
    ck_assert_uint_gt(st[0].nreq, 300);
    ck_assert_ptr_nonnull(strstr(json[0], "\"without_tls\": [{\"mid\": "));
    ck_assert_str_eq(json[1], json[0]);
    ck_assert_str_eq(json[2], json[0]);
    /* read again after a report: the lists rewind */
    char *again = test_json(&st[1]);
    ck_assert_str_eq(again, json[0]);
    free(again);
    for (int i = 0; i < 3; i++) {
        free(json[i]);
        audit_stats_free(&st[i]);
    }
}
END_TEST

/* The report of FMT ('j' JSON, 'c' CSV, 't' text) of ST written to F; -1
 * on a write error. */
static int test_report_to(FILE *f, struct audit_stats *st, char fmt)
{
    struct audit_report_opts o = {"test", 0};
    return fmt == 'j'   ? audit_report_json(f, st)
           : fmt == 'c' ? audit_report_csv(f, st)
                        : audit_report_text(f, st, &o);
}

/* A report to a file or a pipe goes through the writer thread (many of its
 * buffers in turn here): the bytes are those written to a memory stream,
 * which has no such thread; a file that cannot be written is an error. */
START_TEST(test_report_writer)
{
    const char *path = test_path("dense");
    test_write_dense(path, 10000);
    const char *paths[] = {path};
    struct audit_stats st;
    test_read(&st, paths, 1);
    for (const char *fmt = "jct"; *fmt != '\0'; fmt++) {
        char *mem = NULL;
        size_t len = 0;
        FILE *m = open_memstream(&mem, &len);
        ck_assert_ptr_nonnull(m);
        ck_assert_int_eq(test_report_to(m, &st, *fmt), 0);
        fclose(m);
        if (*fmt == 'j')
            ck_assert_uint_gt(len, 6u << 18); /* more than the thread's 4 buffers of 256 KiB */
        FILE *f = tmpfile();
        ck_assert_ptr_nonnull(f);
        fputs("head ", f); /* buffered in F before the report */
        ck_assert_int_eq(test_report_to(f, &st, *fmt), 0);
        fflush(f);
        ck_assert_int_eq(ftell(f), (long)len + 5);
        char *back = malloc(len + 5);
        rewind(f);
        ck_assert_uint_eq(fread(back, 1, len + 5, f), len + 5);
        ck_assert_int_eq(memcmp(back, "head ", 5), 0);
        ck_assert_int_eq(memcmp(back + 5, mem, len), 0);
        fclose(f);
        free(back);
        free(mem);
    }
    FILE *ro = fopen(path, "r");
    ck_assert_ptr_nonnull(ro);
    ck_assert_int_eq(audit_report_json(ro, &st), -1);
    fclose(ro);
    audit_stats_free(&st);
}
END_TEST

/* ---- output pieces --------------------------------------------------------- */

START_TEST(test_json_str)
{
    char *buf;
    size_t len;
    FILE *f = open_memstream(&buf, &len);
    audit_report_json_str(f, "a\"b\\c\td\x01\x7f", 9);
    audit_report_json_str(f, "caf\xc3\xa9 \xff\xe2\x82", 9);
    fclose(f);
    ck_assert_str_eq(buf,
                     "\"a\\\"b\\\\c\\u0009d\\u0001\\u007f\"\"caf\xc3\xa9 \\ufffd\\ufffd\\ufffd\"");
    free(buf);
}
END_TEST

/* The JSON top level is exactly SPEC section 8's. */
START_TEST(test_json_top_level)
{
    struct test_audit a;
    char *buf;
    size_t len;
    test_run(&a, NULL, session_lines, TEST_N(session_lines));
    FILE *f = open_memstream(&buf, &len);
    ck_assert_int_eq(audit_report_json(f, &a.st), 0);
    fclose(f);
    ck_assert_msg(strncmp(buf, "{\"inbound\": {\"connections\": 2, ", 31) == 0, "%.60s", buf);
    const char *keys[] = {",\n \"outbound\": {", ",\n \"protocols\": {", ",\n \"ciphers\": {",
                          ",\n \"domains\": [", ",\n \"without_tls\": ["};
    for (int i = 0; i < TEST_N(keys); i++)
        ck_assert_msg(strstr(buf, keys[i]) != NULL, "no %s", keys[i]);
    ck_assert_ptr_nonnull(
        strstr(buf, "\"verified\": 1, \"unverified\": 0, \"required_failures\": 1"));
    ck_assert_ptr_nonnull(strstr(buf, "{\"mid\": 13, \"icid\": 10, \"dcid\": null"));
    free(buf);
    test_done(&a);
}
END_TEST

static TCase *test_case(const char *name)
{
    TCase *tc = tcase_create(name);
    tcase_add_checked_fixture(tc, test_setup, test_teardown);
    tcase_set_timeout(tc, 120);
    return tc;
}

static Suite *test_suite(void)
{
    Suite *s = suite_create("audit");
    TCase *tc = test_case("parse");
    tcase_add_test(tc, test_corpus);
    tcase_add_test(tc, test_corpus_prefixes);
    tcase_add_loop_test(tc, test_time_args, 0, TEST_N(time_args));
    tcase_add_test(tc, test_civil_round_trip);
    tcase_add_test(tc, test_syslog_year);
    suite_add_tcase(s, tc);

    tc = test_case("classify");
    tcase_add_loop_test(tc, test_weak_cipher, 0, TEST_N(weak_ciphers));
    tcase_add_test(tc, test_weak_protocol);
    tcase_add_loop_test(tc, test_result_type, 0, TEST_N(result_types));
    suite_add_tcase(s, tc);

    tc = test_case("join");
    tcase_add_test(tc, test_join_counts);
    tcase_add_test(tc, test_join_lists);
    tcase_add_test(tc, test_join_spans_files);
    tcase_add_test(tc, test_join_bounded);
    tcase_add_test(tc, test_join_esa_order);
    tcase_add_test(tc, test_join_ready_sender);
    tcase_add_loop_test(tc, test_filters, 0, TEST_N(filter_cases));
    suite_add_tcase(s, tc);

    tc = test_case("input");
    tcase_add_test(tc, test_input_rotated_gz);
    tcase_add_test(tc, test_input_order_by_id);
    tcase_add_test(tc, test_input_edges);
    tcase_add_test(tc, test_input_stdin);
    tcase_add_test(tc, test_input_batches);
    tcase_add_test(tc, test_input_batches_as_lines);
    tcase_add_test(tc, test_spill_bound);
    tcase_add_test(tc, test_report_writer);
    suite_add_tcase(s, tc);

    tc = test_case("output");
    tcase_add_test(tc, test_json_str);
    tcase_add_test(tc, test_json_top_level);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(test_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
