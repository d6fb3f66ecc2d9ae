/*
 * The certificate commands' pieces that the gateway and the tool share:
 * cert_name_matches_host and cert_expiry_scan over a store made with
 * `cert create` in-process, the exit codes of bad command lines, --san
 * normalisation and trust file names made safe.  The whole commands are
 * proven against the openssl CLI in tests/integration/test_cert.py and
 * test_trust.py.
 */
#include <check.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cert.h"
#include "cert_trust.h"
#include "cert_x509.h"
#include "config.h"

static char cert_test_dir[256];

/* Runs `tlsgate ARGS...` (cert or trust) in-process; the exit code. */
static int cert_test_run(const char *first, ...)
{
    char *argv[32];
    int argc = 0;
    va_list ap;
    va_start(ap, first);
    for (const char *a = first; a != NULL && argc < 31; a = va_arg(ap, const char *))
        argv[argc++] = strdup(a);
    va_end(ap);
    argv[argc] = NULL;
    fflush(stdout);
    int rc = strcmp(argv[0], "trust") == 0 ? trust_main(argc, argv) : cert_main(argc, argv);
    for (int i = 0; i < argc; i++)
        free(argv[i]);
    return rc;
}

static void cert_test_setup(void)
{
    snprintf(cert_test_dir, sizeof(cert_test_dir), "/tmp/tlsgate-cert-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(cert_test_dir));
}

static void cert_test_teardown(void)
{
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", cert_test_dir);
    ck_assert_int_eq(system(cmd), 0);
}

START_TEST(test_usage_exit_codes)
{
    const char *d = cert_test_dir;
    ck_assert_int_eq(cert_test_run("cert", NULL), 2);
    ck_assert_int_eq(cert_test_run("cert", "--help", NULL), 0);
    ck_assert_int_eq(cert_test_run("trust", "-h", NULL), 0);
    ck_assert_int_eq(cert_test_run("cert", "frobnicate", NULL), 2);
    ck_assert_int_eq(cert_test_run("cert", "create", "--certs-dir", d, NULL), 2);
    ck_assert_int_eq(cert_test_run("cert", "create", "x", "--days", "0", "--certs-dir", d, NULL),
                     2);
    ck_assert_int_eq(
        cert_test_run("cert", "create", "x", "--key", "rsa:1024", "--certs-dir", d, NULL), 2);
    ck_assert_int_eq(cert_test_run("cert", "create", "x", "--certs-dir", d, NULL), 2); /* no CN */
    ck_assert_int_eq(
        cert_test_run("cert", "create", "../x", "--cn", "a.test", "--certs-dir", d, NULL), 2);
    ck_assert_int_eq(cert_test_run("cert", "list", "--cn", "x", "--certs-dir", d, NULL), 2);
    ck_assert_int_eq(cert_test_run("cert", "list", "extra", "--certs-dir", d, NULL), 2);
    ck_assert_int_eq(cert_test_run("cert", "list", "--bogus", "--certs-dir", d, NULL), 2);
    ck_assert_int_eq(
        cert_test_run("cert", "export", "x", "f.p12", "--password", "pw", "--certs-dir", d, NULL),
        2); /* never a password on the command line */
    ck_assert_int_eq(cert_test_run("trust", "fetch", "h", "--implicit", "--starttls", "smtp",
                                   "--certs-dir", d, NULL),
                     2);
    ck_assert_int_eq(
        cert_test_run("trust", "fetch", "h", "--starttls", "imap", "--certs-dir", d, NULL), 2);
    ck_assert_int_eq(cert_test_run("trust", "fetch", "h:99999", "--certs-dir", d, NULL), 2);
    /* operation failures are 1 */
    ck_assert_int_eq(cert_test_run("cert", "csr", "missing", "--certs-dir", d, NULL), 1);
    ck_assert_int_eq(cert_test_run("trust", "remove", "missing", "--certs-dir", d, NULL), 1);
}
END_TEST

START_TEST(test_san_normalize)
{
    static const struct {
        const char *in, *out; /* out NULL: refused */
    } cases[] = {
        {"mx.example.test", "DNS:mx.example.test"},
        {"DNS:mx.example.test", "DNS:mx.example.test"},
        {"dns:*.example.test", "DNS:*.example.test"},
        {"192.0.2.1", "IP:192.0.2.1"},
        {"IP:2001:DB8::1", "IP:2001:db8::1"},
        {"::1", "IP:::1"},
        {"IP:mx.example.test", NULL},
        {"DNS:192.0.2.1", "DNS:192.0.2.1"},
        {"bad name.test", NULL},
        {"a..b", NULL},
        {"-a.test", NULL},
        {"", NULL},
        {"x*.example.test", NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
        char buf[300];
        int rc = cert_x509_san_normalize(cases[i].in, buf, sizeof(buf));
        if (cases[i].out == NULL) {
            ck_assert_msg(rc < 0, "'%s' accepted as %s", cases[i].in, buf);
        } else {
            ck_assert_msg(rc == 0, "'%s' refused", cases[i].in);
            ck_assert_str_eq(buf, cases[i].out);
        }
    }
}
END_TEST

/* A self-signed certificate whose subject is just CN (or nothing). */
static X509 *cert_test_cert(const char *cn)
{
    char err[300];
    struct cert_x509_subject s = {.cn = cn};
    X509_NAME *name = cert_x509_make_name(&s, err, sizeof(err));
    EVP_PKEY *key = cert_x509_new_key("ec:P-256");
    X509 *x = cert_x509_make_cert(key, name, NULL, 1, err, sizeof(err));
    ck_assert_msg(x != NULL, "%s", err);
    X509_NAME_free(name);
    EVP_PKEY_free(key);
    return x;
}

START_TEST(test_trust_file_stem)
{
    static const struct {
        const char *cn, *stem;
    } cases[] = {
        {"tlsgate Test Root CA", "tlsgate_Test_Root_CA"},
        {"*.example.com", "wildcard.example.com"},
        {"../../etc/passwd", "etc_passwd"},
        {"Amazon RSA 2048 M01", "Amazon_RSA_2048_M01"},
        {"a  //  b", "a_b"},
        {"\xc3\x84-Trust Root", "Trust_Root"}, /* "Ä-Trust Root" */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
        char buf[200];
        X509 *x = cert_test_cert(cases[i].cn);
        cert_trust_file_stem(x, buf, sizeof(buf));
        ck_assert_str_eq(buf, cases[i].stem);
        X509_free(x);
    }
    X509 *x = cert_test_cert(NULL);
    char buf[200];
    cert_trust_file_stem(x, buf, sizeof(buf));
    ck_assert_msg(strncmp(buf, "cert-", 5) == 0 && strlen(buf) == 13, "%s", buf);
    X509_free(x);
}
END_TEST

START_TEST(test_name_matches_host)
{
    const char *d = cert_test_dir;
    ck_assert_int_eq(cert_test_run("cert", "create", "mx", "--cn", "mx.example.test", "--san",
                                   "mx.example.test", "--san", "192.0.2.1", "--san",
                                   "*.wild.example.test", "--key", "ec:P-256", "--certs-dir", d,
                                   NULL),
                     0);
    ck_assert(cert_name_matches_host(d, "mx", "mx.example.test"));
    ck_assert(cert_name_matches_host(d, "mx", "MX.Example.Test"));
    ck_assert(cert_name_matches_host(d, "mx", "192.0.2.1"));
    ck_assert(cert_name_matches_host(d, "mx", "a.wild.example.test"));
    ck_assert(!cert_name_matches_host(d, "mx", "a.b.wild.example.test"));
    ck_assert(!cert_name_matches_host(d, "mx", "other.example.test"));
    ck_assert(!cert_name_matches_host(d, "mx", "192.0.2.2"));
    ck_assert(!cert_name_matches_host(d, "missing", "mx.example.test"));
    /* without --san the CN becomes the one subjectAltName */
    ck_assert_int_eq(cert_test_run("cert", "create", "auto", "--cn", "auto.example.test", "--key",
                                   "ec:P-256", "--certs-dir", d, NULL),
                     0);
    ck_assert(cert_name_matches_host(d, "auto", "auto.example.test"));
    ck_assert(!cert_name_matches_host(d, "auto", "mx.example.test"));
}
END_TEST

struct cert_test_seen {
    int calls;
    char name[64];
    long days;
    char subject[256];
    char not_after[64];
};

static void cert_test_on_warn(void *arg, const char *name, const char *subject, long days_left,
                              const char *not_after)
{
    struct cert_test_seen *s = arg;
    s->calls++;
    snprintf(s->name, sizeof(s->name), "%s", name);
    snprintf(s->subject, sizeof(s->subject), "%s", subject);
    snprintf(s->not_after, sizeof(s->not_after), "%s", not_after);
    s->days = days_left;
}

START_TEST(test_expiry_scan)
{
    const char *d = cert_test_dir;
    ck_assert_int_eq(cert_test_run("cert", "create", "soon", "--cn", "soon.example.test", "--days",
                                   "10", "--key", "ec:P-256", "--certs-dir", d, NULL),
                     0);
    ck_assert_int_eq(cert_test_run("cert", "create", "later", "--cn", "later.example.test",
                                   "--days", "400", "--key", "ec:P-256", "--certs-dir", d, NULL),
                     0);
    char ini[1024];
    snprintf(ini, sizeof(ini),
             "[gateway]\ncerts_dir = %s\n"
             "[listener:a]\naddress = 127.0.0.1:2525\ncertificate = soon\n"
             "[listener:b]\naddress = 127.0.0.1:2526\ncertificate = later\n"
             "[listener:c]\naddress = 127.0.0.1:2527\ncertificate = soon\n",
             d);
    struct config *c = config_load_string("test.ini", ini, stderr);
    ck_assert_ptr_nonnull(c);
    struct cert_test_seen seen = {0};
    ck_assert_int_eq(cert_expiry_scan(c, cert_test_on_warn, &seen), 1);
    ck_assert_int_eq(seen.calls, 1);
    ck_assert_str_eq(seen.name, "soon");
    ck_assert_str_eq(seen.subject, "CN=soon.example.test");
    ck_assert_msg(seen.days == 9 || seen.days == 10, "%ld days", seen.days);
    ck_assert_msg(strstr(seen.not_after, " UTC") != NULL, "%s", seen.not_after);
    config_unref(c);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("cert");
    TCase *tc = tcase_create("cert");
    tcase_set_timeout(tc, 60);
    tcase_add_checked_fixture(tc, cert_test_setup, cert_test_teardown);
    tcase_add_test(tc, test_usage_exit_codes);
    tcase_add_test(tc, test_san_normalize);
    tcase_add_test(tc, test_trust_file_stem);
    tcase_add_test(tc, test_name_matches_host);
    tcase_add_test(tc, test_expiry_scan);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
