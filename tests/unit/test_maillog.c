/*
 * Unit tests for maillog: the ESA line formats byte for byte, scrubbing of
 * peer values, log targets and reopen after rotation, and the ID counters
 * (fresh start, restart, threads, processes, corrupt state).  Every test
 * works in its own mkdtemp directory and removes it; none depends on the
 * order of the others.
 */
#include "maillog.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define TEST_STAMP_LEN 25 /* "Wed Sep  6 13:13:16 2023 " */

static char test_dir[256];

static void test_setup(void)
{
    setenv("TZ", "UTC", 1);
    tzset();
    umask(022);
    snprintf(test_dir, sizeof test_dir, "%s/maillog-XXXXXX",
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
    maillog_close();
    maillog_ids_close();
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

/* The whole file as a string (static buffer, grows as needed). */
static char *test_slurp(const char *path)
{
    static char *buf;
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    rewind(f);
    free(buf);
    buf = malloc((size_t)n + 1);
    ck_assert_ptr_nonnull(buf);
    ck_assert_uint_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static void test_spitn(const char *path, const char *bytes, size_t n)
{
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(bytes, 1, n, f), n);
    fclose(f);
}

static void test_spit(const char *path, const char *text)
{
    test_spitn(path, text, strlen(text));
}

static size_t test_count_lines(const char *s)
{
    size_t n = 0;
    for (; *s != '\0'; s++)
        n += *s == '\n';
    return n;
}

/* "Www Mmm dd HH:MM:SS YYYY " shape, checked character class by class. */
static void test_assert_stamp(const char *line)
{
    const char *shape = "Aaa Aaa d9 99:99:99 9999 ";
    for (int i = 0; i < TEST_STAMP_LEN; i++) {
        char c = line[i], s = shape[i];
        int ok = s == 'A'   ? (c >= 'A' && c <= 'Z')
                 : s == 'a' ? (c >= 'a' && c <= 'z')
                 : s == '9' ? (c >= '0' && c <= '9')
                 : s == 'd' ? (c == ' ' || (c >= '1' && c <= '3'))
                            : c == s;
        ck_assert_msg(ok, "bad time stamp at %d in \"%s\"", i, line);
    }
}

/* ---- maillog_format --------------------------------------------------- */

static size_t test_format(char *buf, size_t len, time_t t, enum maillog_level level,
                          const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    size_t n = maillog_format(buf, len, t, level, fmt, ap);
    va_end(ap);
    return n;
}

static const struct {
    time_t t;
    enum maillog_level level;
    const char *text;
    const char *want;
} format_cases[] = {
    {1694005996, MAILLOG_INFO, "ICID 5 close", "Wed Sep  6 13:13:16 2023 Info: ICID 5 close\n"},
    {1694005996, MAILLOG_WARNING, "w", "Wed Sep  6 13:13:16 2023 Warning: w\n"},
    {1694005996, MAILLOG_DEBUG, "d", "Wed Sep  6 13:13:16 2023 Debug: d\n"},
    {1700000000, MAILLOG_INFO, "x", "Tue Nov 14 22:13:20 2023 Info: x\n"},
    {0, MAILLOG_INFO, "epoch", "Thu Jan  1 00:00:00 1970 Info: epoch\n"},
    {951782400, MAILLOG_INFO, "leap", "Tue Feb 29 00:00:00 2000 Info: leap\n"},
    {1704067199, MAILLOG_INFO, "", "Sun Dec 31 23:59:59 2023 Info: \n"},
    {1694005996, MAILLOG_INFO, "a\r\nWed Sep  6 13:13:16 2023 Info: forged",
     "Wed Sep  6 13:13:16 2023 Info: a??Wed Sep  6 13:13:16 2023 Info: forged\n"},
    {1694005996, MAILLOG_INFO, "tab\there \x7f\x80\xff end",
     "Wed Sep  6 13:13:16 2023 Info: tab?here ??? end\n"},
};

START_TEST(test_format_table)
{
    char buf[256];
    const char *text = format_cases[_i].text;
    size_t n = test_format(buf, sizeof buf, format_cases[_i].t, format_cases[_i].level, "%s", text);
    ck_assert_str_eq(buf, format_cases[_i].want);
    ck_assert_uint_eq(n, strlen(format_cases[_i].want));
}
END_TEST

START_TEST(test_format_args)
{
    char buf[256];
    test_format(buf, sizeof buf, 1694005996, MAILLOG_INFO, "ICID %llu %s %u",
                18446744073709551615ULL, "x", 7u);
    ck_assert_str_eq(buf, "Wed Sep  6 13:13:16 2023 Info: ICID 18446744073709551615 x 7\n");
}
END_TEST

/* A truncated line keeps its newline and never overruns LEN. */
static const struct {
    size_t len;
    const char *want;
} truncate_cases[] = {
    {1, ""},
    {2, "\n"},
    {26, "Wed Sep  6 13:13:16 2023\n"},
    {33, "Wed Sep  6 13:13:16 2023 Info: \n"},
    {36, "Wed Sep  6 13:13:16 2023 Info: abc\n"},
    {37, "Wed Sep  6 13:13:16 2023 Info: abcd\n"},
    {100, "Wed Sep  6 13:13:16 2023 Info: abcdefgh\n"},
};

START_TEST(test_format_truncate)
{
    char buf[128];
    memset(buf, 'Z', sizeof buf);
    size_t len = truncate_cases[_i].len;
    size_t n = test_format(buf, len, 1694005996, MAILLOG_INFO, "%s", "abcdefgh");
    ck_assert_str_eq(buf, truncate_cases[_i].want);
    ck_assert_uint_eq(n, strlen(truncate_cases[_i].want));
    ck_assert_int_eq(buf[len], 'Z');
}
END_TEST

START_TEST(test_format_zero_len)
{
    char buf[1] = {'Z'};
    ck_assert_uint_eq(test_format(buf, 0, 0, MAILLOG_INFO, "x"), 0);
    ck_assert_int_eq(buf[0], 'Z');
}
END_TEST

/* ---- maillog_clean ---------------------------------------------------- */

static const struct {
    const char *in;
    size_t len;
    const char *want;
} clean_cases[] = {
    {"mail.example.com", 64, "mail.example.com"},
    {"a\r\nb", 64, "a??b"},
    {"x\nWed Sep  6 13:13:16 2023 Info: New SMTP ICID 1", 64,
     "x?Wed Sep  6 13:13:16 2023 Info: New SMTP ICID 1"},
    {"\x01\x1f\x7f\x80\xc3\xa9\xff", 64, "???????"},
    {"tab\there", 64, "tab?here"},
    {" !~", 64, " !~"},
    {"", 64, ""},
    {NULL, 64, ""},
    {"abcdef", 4, "abc"},
    {"abcdef", 1, ""},
};

START_TEST(test_clean_table)
{
    char buf[64];
    memset(buf, 'Z', sizeof buf);
    char *r = maillog_clean(buf, clean_cases[_i].len, clean_cases[_i].in);
    ck_assert_ptr_eq(r, buf);
    ck_assert_str_eq(buf, clean_cases[_i].want);
    if (clean_cases[_i].len < sizeof buf)
        ck_assert_int_eq(buf[clean_cases[_i].len], 'Z');
}
END_TEST

/* ---- the ESA line helpers --------------------------------------------- */

static void call_icid_new(void)
{
    maillog_icid_new(5, "Data 1", "192.0.2.1", "198.51.100.7", "mail.example.com", 1);
}
static void call_icid_new_unknown(void)
{
    maillog_icid_new(5, "Data 1", "192.0.2.1", "198.51.100.7", NULL, 0);
}
static void call_icid_new_empty_rdns(void)
{
    maillog_icid_new(6, "Data 1", "192.0.2.1", "2001:db8::1", "", 0);
}
static void call_icid_new_forged(void)
{
    maillog_icid_new(5, "Data 1", "192.0.2.1", "198.51.100.7",
                     "evil\nWed Sep  6 13:13:16 2023 Info: ICID 5 TLS success", 0);
}
static void call_icid_sg(void)
{
    maillog_icid_sg(5, "ACCEPT", "UNKNOWNLIST", "198.51.100.0/24");
}
static void call_icid_sg_relay(void)
{
    maillog_icid_sg(9, "RELAY", "RELAYLIST", "10.0.0.0/8");
}
static void call_tls_success_icid(void)
{
    maillog_tls_success("ICID", 5, "TLSv1.3", "TLS_AES_256_GCM_SHA384");
}
static void call_tls_success_dcid(void)
{
    maillog_tls_success("DCID", 8, "TLSv1.2", "ECDHE-RSA-AES256-GCM-SHA384");
}
static void call_tls_failed_icid(void)
{
    maillog_tls_failed("ICID", 5,
                       "(336109761, 'error:1408A0C1:SSL routines:SSL3_GET_CLIENT_HELLO:no shared "
                       "cipher')");
}
static void call_tls_failed_dcid(void)
{
    maillog_tls_failed("DCID", 8, "STARTTLS unexpected response\r\n");
}
static void call_icid_tls_required(void)
{
    maillog_icid_tls_required(5);
}
static void call_mid_start(void)
{
    maillog_mid_start(6, 5);
}
static void call_mid_from(void)
{
    maillog_mid_from(6, 5, "sender@example.com");
}
static void call_mid_from_empty(void)
{
    maillog_mid_from(6, 5, "");
}
static void call_mid_rcpt(void)
{
    maillog_mid_rcpt(6, 5, 0, "rcpt@example.org");
}
static void call_mid_rcpt_utf8(void)
{
    maillog_mid_rcpt(6, 5, 12, "j\xc3\xb6rg@example.org");
}
static void call_mid_ready(void)
{
    maillog_mid_ready(6, 2048, "sender@example.com");
}
static void call_mid_ready_empty(void)
{
    maillog_mid_ready(18446744073709551615ULL, 0, "");
}
static void call_mid_done(void)
{
    maillog_mid_done(6);
}
static void call_mid_aborted(void)
{
    maillog_mid_aborted(6, "client closed the connection\n");
}
static void call_icid_close(void)
{
    maillog_icid_close(5);
}
static void call_icid_lost(void)
{
    maillog_icid_lost(5);
}

static const struct {
    void (*call)(void);
    const char *want; /* the line without the time stamp */
} helper_cases[] = {
    {call_icid_new, "Info: New SMTP ICID 5 interface Data 1 (192.0.2.1) address 198.51.100.7 "
                    "reverse dns host mail.example.com verified yes\n"},
    {call_icid_new_unknown, "Info: New SMTP ICID 5 interface Data 1 (192.0.2.1) address "
                            "198.51.100.7 reverse dns host unknown verified no\n"},
    {call_icid_new_empty_rdns, "Info: New SMTP ICID 6 interface Data 1 (192.0.2.1) address "
                               "2001:db8::1 reverse dns host unknown verified no\n"},
    {call_icid_new_forged,
     "Info: New SMTP ICID 5 interface Data 1 (192.0.2.1) address 198.51.100.7 reverse dns host "
     "evil?Wed Sep  6 13:13:16 2023 Info: ICID 5 TLS success verified no\n"},
    {call_icid_sg, "Info: ICID 5 ACCEPT SG UNKNOWNLIST match 198.51.100.0/24 SBRS None\n"},
    {call_icid_sg_relay, "Info: ICID 9 RELAY SG RELAYLIST match 10.0.0.0/8 SBRS None\n"},
    {call_tls_success_icid, "Info: ICID 5 TLS success protocol TLSv1.3 cipher "
                            "TLS_AES_256_GCM_SHA384\n"},
    {call_tls_success_dcid, "Info: DCID 8 TLS success protocol TLSv1.2 cipher "
                            "ECDHE-RSA-AES256-GCM-SHA384\n"},
    {call_tls_failed_icid, "Info: ICID 5 TLS failed: (336109761, 'error:1408A0C1:SSL "
                           "routines:SSL3_GET_CLIENT_HELLO:no shared cipher')\n"},
    {call_tls_failed_dcid, "Info: DCID 8 TLS failed: STARTTLS unexpected response??\n"},
    {call_icid_tls_required, "Info: ICID 5 TLS was required but remote host did not initiate it\n"},
    {call_mid_start, "Info: Start MID 6 ICID 5\n"},
    {call_mid_from, "Info: MID 6 ICID 5 From: <sender@example.com>\n"},
    {call_mid_from_empty, "Info: MID 6 ICID 5 From: <>\n"},
    {call_mid_rcpt, "Info: MID 6 ICID 5 RID 0 To: <rcpt@example.org>\n"},
    {call_mid_rcpt_utf8, "Info: MID 6 ICID 5 RID 12 To: <j??rg@example.org>\n"},
    {call_mid_ready, "Info: MID 6 ready 2048 bytes from <sender@example.com>\n"},
    {call_mid_ready_empty, "Info: MID 18446744073709551615 ready 0 bytes from <>\n"},
    {call_mid_done, "Info: MID 6 done\n"},
    {call_mid_aborted, "Info: MID 6 aborted: client closed the connection?\n"},
    {call_icid_close, "Info: ICID 5 close\n"},
    {call_icid_lost, "Info: ICID 5 lost\n"},
};

START_TEST(test_helpers_table)
{
    const char *path = test_path("mail.log");
    ck_assert_int_eq(maillog_open(path), 0);
    helper_cases[_i].call();
    maillog_close();
    const char *got = test_slurp(path);
    ck_assert_uint_eq(test_count_lines(got), 1);
    ck_assert_uint_gt(strlen(got), TEST_STAMP_LEN);
    test_assert_stamp(got);
    ck_assert_str_eq(got + TEST_STAMP_LEN, helper_cases[_i].want);
}
END_TEST

/* ---- targets ---------------------------------------------------------- */

START_TEST(test_open_creates_dirs_and_mode)
{
    const char *path = test_path("a/b/c/mail.log");
    ck_assert_int_eq(maillog_open(path), 0);
    maillog_info("hello %d", 1);
    maillog_close();
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_uint_eq(st.st_mode & 0777, 0640);
    ck_assert_str_eq(test_slurp(path) + TEST_STAMP_LEN, "Info: hello 1\n");
}
END_TEST

START_TEST(test_open_appends)
{
    const char *path = test_path("mail.log");
    test_spit(path, "old line\n");
    ck_assert_int_eq(maillog_open(path), 0);
    maillog_warning("new");
    maillog_close();
    const char *got = test_slurp(path);
    ck_assert_int_eq(strncmp(got, "old line\n", 9), 0);
    ck_assert_str_eq(got + 9 + TEST_STAMP_LEN, "Warning: new\n");
}
END_TEST

START_TEST(test_open_fails)
{
    test_spit(test_path("file"), "x");
    errno = 0;
    ck_assert_int_eq(maillog_open(test_path("file/mail.log")), -1);
    ck_assert_int_eq(errno, ENOTDIR);
    errno = 0;
    ck_assert_int_eq(maillog_open(""), -1);
    ck_assert_int_eq(errno, EINVAL);
}
END_TEST

/* Runs BODY's logging with standard error pointed at a file; returns it. */
static const char *test_capture_stderr(void (*body)(void))
{
    const char *path = test_path("stderr.txt");
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ck_assert_int_ge(fd, 0);
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    dup2(fd, STDERR_FILENO);
    close(fd);
    body();
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
    return test_slurp(path);
}

static void test_body_default(void)
{
    maillog_info("to stderr");
}

static void test_body_dash(void)
{
    ck_assert_int_eq(maillog_open("-"), 0);
    maillog_info("dash");
    ck_assert_int_eq(maillog_reopen(), 0);
    maillog_info("dash again");
    maillog_close();
}

START_TEST(test_default_is_stderr)
{
    const char *got = test_capture_stderr(test_body_default);
    ck_assert_str_eq(got + TEST_STAMP_LEN, "Info: to stderr\n");
}
END_TEST

START_TEST(test_dash_is_stderr)
{
    const char *got = test_capture_stderr(test_body_dash);
    ck_assert_uint_eq(test_count_lines(got), 2);
    ck_assert_ptr_nonnull(strstr(got, "Info: dash\n"));
    ck_assert_ptr_nonnull(strstr(got, "Info: dash again\n"));
}
END_TEST

START_TEST(test_syslog_target)
{
    ck_assert_int_eq(maillog_open("syslog"), 0);
    maillog_info("tlsgate unit test line");
    ck_assert_int_eq(maillog_reopen(), 0);
    maillog_warning("tlsgate unit test warning");
}
END_TEST

START_TEST(test_errno_kept)
{
    if (access("/dev/full", W_OK) == 0)
        ck_assert_int_eq(maillog_open("/dev/full"), 0); /* every write fails: ENOSPC */
    errno = EXDEV;
    maillog_info("x");
    ck_assert_int_eq(errno, EXDEV);
    maillog_mid_aborted(1, "y");
    ck_assert_int_eq(errno, EXDEV);
    maillog_next_icid();
    ck_assert_int_eq(errno, EXDEV);
}
END_TEST

START_TEST(test_long_line_truncated)
{
    const char *path = test_path("mail.log");
    size_t big = 20000;
    char *text = malloc(big + 1);
    memset(text, 'x', big);
    text[big] = '\0';
    ck_assert_int_eq(maillog_open(path), 0);
    maillog_info("%s", text);
    maillog_tls_failed("DCID", 1, text);
    maillog_info("after");
    maillog_close();
    free(text);
    const char *got = test_slurp(path);
    ck_assert_uint_eq(test_count_lines(got), 3);
    const char *second = strchr(got, '\n') + 1;
    ck_assert_uint_le((size_t)(second - got), 8191);
    ck_assert_ptr_nonnull(strstr(got, "Info: after\n"));
}
END_TEST

START_TEST(test_reopen_after_rename)
{
    const char *path = test_path("mail.log"), *rotated = test_path("mail.log.1");
    ck_assert_int_eq(maillog_open(path), 0);
    maillog_info("one");
    ck_assert_int_eq(rename(path, rotated), 0);
    maillog_info("two");
    ck_assert_int_eq(maillog_reopen(), 0);
    maillog_info("three");
    maillog_close();
    const char *old = test_slurp(rotated);
    ck_assert_uint_eq(test_count_lines(old), 2);
    ck_assert_str_eq(old + TEST_STAMP_LEN + strlen("Info: one\n") + TEST_STAMP_LEN, "Info: two\n");
    ck_assert_str_eq(test_slurp(path) + TEST_STAMP_LEN, "Info: three\n");
}
END_TEST

START_TEST(test_reopen_unopened)
{
    ck_assert_int_eq(maillog_reopen(), 0);
}
END_TEST

#define TEST_WRITERS 4
#define TEST_LINES   2000

static void *test_writer(void *arg)
{
    int t = (int)(intptr_t)arg;
    for (int i = 0; i < TEST_LINES; i++) {
        if (i == TEST_LINES / 2 && t == 0)
            maillog_reopen(); /* swapping the fd must not lose or split lines */
        maillog_info("writer %d line %d %s", t, i, "padding-padding-padding-padding");
    }
    return NULL;
}

/* Lines of concurrent writers arrive whole, each exactly once. */
START_TEST(test_concurrent_lines_whole)
{
    const char *path = test_path("mail.log");
    pthread_t th[TEST_WRITERS];
    ck_assert_int_eq(maillog_open(path), 0);
    for (int t = 0; t < TEST_WRITERS; t++)
        ck_assert_int_eq(pthread_create(&th[t], NULL, test_writer, (void *)(intptr_t)t), 0);
    for (int t = 0; t < TEST_WRITERS; t++)
        pthread_join(th[t], NULL);
    maillog_close();
    char *got = test_slurp(path);
    static unsigned char seen[TEST_WRITERS][TEST_LINES];
    memset(seen, 0, sizeof seen);
    size_t lines = 0;
    for (char *line = strtok(got, "\n"); line != NULL; line = strtok(NULL, "\n"), lines++) {
        int t, i, end = 0;
        test_assert_stamp(line);
        ck_assert_int_eq(sscanf(line + TEST_STAMP_LEN,
                                "Info: writer %d line %d padding-padding-padding-padding%n", &t, &i,
                                &end),
                         2);
        ck_assert_int_eq(line[TEST_STAMP_LEN + end], '\0');
        ck_assert(t >= 0 && t < TEST_WRITERS && i >= 0 && i < TEST_LINES && !seen[t][i]);
        seen[t][i] = 1;
    }
    ck_assert_uint_eq(lines, TEST_WRITERS * TEST_LINES);
}
END_TEST

/* ---- ID counters ------------------------------------------------------ */

START_TEST(test_ids_fresh)
{
    const char *dir = test_path("state/sub");
    ck_assert_int_eq(maillog_ids_open(dir), 0);
    struct stat st;
    ck_assert_int_eq(stat(dir, &st), 0);
    ck_assert_uint_eq(st.st_mode & 0777, 0750);
    for (uint64_t i = 1; i <= 3; i++)
        ck_assert_uint_eq(maillog_next_icid(), i);
    ck_assert_uint_eq(maillog_next_dcid(), 1);
    ck_assert_uint_eq(maillog_next_mid(), 1);
    ck_assert_uint_eq(maillog_next_mid(), 2);
    ck_assert_str_eq(test_slurp(test_path("state/sub/ids")), "icid 1001\ndcid 1001\nmid 1001\n");
}
END_TEST

START_TEST(test_ids_block_boundary)
{
    ck_assert_int_eq(maillog_ids_open(test_path("state")), 0);
    for (uint64_t i = 1; i <= 2500; i++)
        ck_assert_uint_eq(maillog_next_dcid(), i);
    ck_assert_str_eq(test_slurp(test_path("state/ids")), "icid 1001\ndcid 3001\nmid 1001\n");
}
END_TEST

START_TEST(test_ids_restart)
{
    const char *dir = test_path("state");
    uint64_t max[3] = {0, 0, 0};
    ck_assert_int_eq(maillog_ids_open(dir), 0);
    for (int i = 0; i < 1500; i++)
        max[0] = maillog_next_icid();
    max[1] = maillog_next_dcid();
    for (int i = 0; i < 10; i++)
        max[2] = maillog_next_mid();
    maillog_ids_close();
    ck_assert_int_eq(maillog_ids_open(dir), 0);
    ck_assert_uint_gt(maillog_next_icid(), max[0]);
    ck_assert_uint_gt(maillog_next_dcid(), max[1]);
    uint64_t m = maillog_next_mid();
    ck_assert_uint_gt(m, max[2]);
    ck_assert_uint_gt(maillog_next_mid(), m);
}
END_TEST

static int test_cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void test_assert_unique(uint64_t *ids, size_t n)
{
    qsort(ids, n, sizeof *ids, test_cmp_u64);
    for (size_t i = 1; i < n; i++)
        ck_assert_msg(ids[i] != ids[i - 1], "ID %llu handed out twice", (unsigned long long)ids[i]);
    ck_assert_uint_gt(ids[0], 0);
}

#define TEST_IDS_PER_WORKER 10000

static void *test_id_taker(void *arg)
{
    uint64_t *out = arg;
    for (int i = 0; i < TEST_IDS_PER_WORKER; i++)
        out[i] = maillog_next_mid();
    return NULL;
}

static void test_assert_increasing(const uint64_t *ids, size_t n)
{
    for (size_t i = 1; i < n; i++)
        ck_assert_uint_gt(ids[i], ids[i - 1]);
}

START_TEST(test_ids_threads)
{
    static uint64_t ids[2 * TEST_IDS_PER_WORKER];
    pthread_t th[2];
    ck_assert_int_eq(maillog_ids_open(test_path("state")), 0);
    for (int t = 0; t < 2; t++)
        pthread_create(&th[t], NULL, test_id_taker, ids + t * TEST_IDS_PER_WORKER);
    for (int t = 0; t < 2; t++)
        pthread_join(th[t], NULL);
    for (int t = 0; t < 2; t++)
        test_assert_increasing(ids + t * TEST_IDS_PER_WORKER, TEST_IDS_PER_WORKER);
    test_assert_unique(ids, 2 * TEST_IDS_PER_WORKER);
}
END_TEST

/* A child process: its own ids_open on DIR, IDs written to OUT raw. */
static void test_id_child(const char *dir, const char *out)
{
    static uint64_t ids[TEST_IDS_PER_WORKER];
    maillog_ids_close();
    if (maillog_ids_open(dir) < 0)
        _exit(2);
    test_id_taker(ids);
    int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || write(fd, ids, sizeof ids) != (ssize_t)sizeof ids)
        _exit(3);
    close(fd);
    _exit(0);
}

static void test_read_ids(const char *path, uint64_t *ids, size_t n)
{
    int fd = open(path, O_RDONLY);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(read(fd, ids, n * sizeof *ids), (ssize_t)(n * sizeof *ids));
    close(fd);
}

START_TEST(test_ids_processes)
{
    static uint64_t ids[2 * TEST_IDS_PER_WORKER];
    const char *dir = test_path("state");
    pid_t pid[2];
    for (int p = 0; p < 2; p++) {
        pid[p] = fork();
        ck_assert_int_ge(pid[p], 0);
        if (pid[p] == 0)
            test_id_child(dir, test_path(p ? "out1" : "out0"));
    }
    for (int p = 0; p < 2; p++) {
        int status;
        ck_assert_int_eq(waitpid(pid[p], &status, 0), pid[p]);
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child %d failed", p);
    }
    test_read_ids(test_path("out0"), ids, TEST_IDS_PER_WORKER);
    test_read_ids(test_path("out1"), ids + TEST_IDS_PER_WORKER, TEST_IDS_PER_WORKER);
    test_assert_unique(ids, 2 * TEST_IDS_PER_WORKER);
}
END_TEST

/* A child forked after ids_open must not reuse its parent's block. */
START_TEST(test_ids_fork_inherits_nothing)
{
    uint64_t ids[4];
    int fds[2];
    ck_assert_int_eq(maillog_ids_open(test_path("state")), 0);
    ids[0] = maillog_next_icid();
    ck_assert_int_eq(pipe(fds), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        uint64_t child[2] = {maillog_next_icid(), maillog_next_icid()};
        _exit(write(fds[1], child, sizeof child) == (ssize_t)sizeof child ? 0 : 1);
    }
    ck_assert_int_eq(read(fds[0], ids + 1, 2 * sizeof *ids), (ssize_t)(2 * sizeof *ids));
    waitpid(pid, NULL, 0);
    close(fds[0]);
    close(fds[1]);
    ids[3] = maillog_next_icid();
    test_assert_unique(ids, 4);
}
END_TEST

#define TEST_BYTES(s) s, sizeof(s) - 1

static const struct {
    const char *content;
    size_t len;
    const char *where; /* expected in the message on stderr */
} corrupt_cases[] = {
    {TEST_BYTES(""), "ids:1: "},
    {TEST_BYTES("icid 1\n"), "ids:2: "},
    {TEST_BYTES("icid x\ndcid 1\nmid 1\n"), "ids:1: "},
    {TEST_BYTES("icid 1\ndcid -4\nmid 1\n"), "ids:2: "},
    {TEST_BYTES("icid 1\ndcid 1\nmid 1"), "ids:3: "},
    {TEST_BYTES("icid 1\ndcid 1\nmid 1\nextra\n"), "ids:4: "},
    {TEST_BYTES("dcid 1\nicid 1\nmid 1\n"), "ids:1: "},
    {TEST_BYTES("icid 0\ndcid 1\nmid 1\n"), "ids:1: "},
    {TEST_BYTES("icid 1 \ndcid 1\nmid 1\n"), "ids:1: "},
    {TEST_BYTES("icid 99999999999999999999999\ndcid 1\nmid 1\n"), "ids:1: "},
    {TEST_BYTES("icid 18446744073709551615\ndcid 1\nmid 1\n"), "ids:1: "},
    {TEST_BYTES("icid 1\r\ndcid 1\nmid 1\n"), "ids:1: "},
    {TEST_BYTES("icid 1\ndcid 1\nmid 1\n\0junk"), "ids:1: "},
};

static const char *test_corrupt_dir;

static void test_body_corrupt(void)
{
    ck_assert_int_eq(maillog_ids_open(test_corrupt_dir), -1);
}

START_TEST(test_ids_corrupt)
{
    test_corrupt_dir = test_path("state");
    ck_assert_int_eq(mkdir(test_corrupt_dir, 0750), 0);
    const char *ids = test_path("state/ids");
    test_spitn(ids, corrupt_cases[_i].content, corrupt_cases[_i].len);
    const char *msg = test_capture_stderr(test_body_corrupt);
    ck_assert_msg(strstr(msg, ids) != NULL, "no file name in: %s", msg);
    ck_assert_msg(strstr(msg, corrupt_cases[_i].where) != NULL, "want %s in: %s",
                  corrupt_cases[_i].where, msg);
    /* the corrupt file is left alone for the administrator */
    ck_assert_int_eq(memcmp(test_slurp(ids), corrupt_cases[_i].content, corrupt_cases[_i].len), 0);
}
END_TEST

START_TEST(test_ids_valid_existing)
{
    ck_assert_int_eq(mkdir(test_path("state"), 0750), 0);
    test_spit(test_path("state/ids"), "icid 42\ndcid 7\nmid 123456789012\n");
    ck_assert_int_eq(maillog_ids_open(test_path("state")), 0);
    ck_assert_uint_eq(maillog_next_icid(), 42);
    ck_assert_uint_eq(maillog_next_dcid(), 7);
    ck_assert_uint_eq(maillog_next_mid(), 123456789012ULL);
    ck_assert_str_eq(test_slurp(test_path("state/ids")),
                     "icid 1042\ndcid 1007\nmid 123456790012\n");
}
END_TEST

START_TEST(test_ids_unopened_memory)
{
    uint64_t a = maillog_next_dcid(), b = maillog_next_dcid();
    ck_assert_uint_gt(a, 0);
    ck_assert_uint_gt(b, a);
}
END_TEST

static void test_body_open_fails(void)
{
    ck_assert_int_eq(maillog_ids_open(test_path("file/state")), -1);
}

START_TEST(test_ids_open_fails)
{
    test_spit(test_path("file"), "x");
    const char *msg = test_capture_stderr(test_body_open_fails);
    ck_assert_ptr_nonnull(strstr(msg, test_path("file/state")));
    ck_assert_uint_gt(maillog_next_icid(), 0); /* not opened: memory only */
}
END_TEST

/* ---- suite ------------------------------------------------------------ */

#define TEST_N(a) ((int)(sizeof(a) / sizeof((a)[0])))

static TCase *test_case(const char *name)
{
    TCase *tc = tcase_create(name);
    tcase_add_checked_fixture(tc, test_setup, test_teardown);
    tcase_set_timeout(tc, 60);
    return tc;
}

static Suite *test_suite(void)
{
    Suite *s = suite_create("maillog");
    TCase *tc = test_case("format");
    tcase_add_loop_test(tc, test_format_table, 0, TEST_N(format_cases));
    tcase_add_test(tc, test_format_args);
    tcase_add_loop_test(tc, test_format_truncate, 0, TEST_N(truncate_cases));
    tcase_add_test(tc, test_format_zero_len);
    tcase_add_loop_test(tc, test_clean_table, 0, TEST_N(clean_cases));
    tcase_add_loop_test(tc, test_helpers_table, 0, TEST_N(helper_cases));
    suite_add_tcase(s, tc);

    tc = test_case("targets");
    tcase_add_test(tc, test_open_creates_dirs_and_mode);
    tcase_add_test(tc, test_open_appends);
    tcase_add_test(tc, test_open_fails);
    tcase_add_test(tc, test_default_is_stderr);
    tcase_add_test(tc, test_dash_is_stderr);
    tcase_add_test(tc, test_syslog_target);
    tcase_add_test(tc, test_errno_kept);
    tcase_add_test(tc, test_long_line_truncated);
    tcase_add_test(tc, test_reopen_after_rename);
    tcase_add_test(tc, test_reopen_unopened);
    tcase_add_test(tc, test_concurrent_lines_whole);
    suite_add_tcase(s, tc);

    tc = test_case("ids");
    tcase_add_test(tc, test_ids_fresh);
    tcase_add_test(tc, test_ids_block_boundary);
    tcase_add_test(tc, test_ids_restart);
    tcase_add_test(tc, test_ids_threads);
    tcase_add_test(tc, test_ids_processes);
    tcase_add_test(tc, test_ids_fork_inherits_nothing);
    tcase_add_loop_test(tc, test_ids_corrupt, 0, TEST_N(corrupt_cases));
    tcase_add_test(tc, test_ids_valid_existing);
    tcase_add_test(tc, test_ids_unopened_memory);
    tcase_add_test(tc, test_ids_open_fails);
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
