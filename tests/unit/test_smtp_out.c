/*
 * The replies a client gets for each kind of delivery failure: always 4xx
 * with the enhanced code the SPEC names, and nothing a peer could use to
 * inject a line.
 */
#include <check.h>
#include <string.h>

#include "smtp_out.h"

struct reply_case {
    enum smtp_out_failure f;
    const char *detail;
    const char *want;
};

static const struct reply_case reply_cases[] = {
    {SMTP_OUT_F_CONNECT, "connection refused",
     "451 4.4.1 Delivery to example.org failed: connection failed (connection refused)"},
    {SMTP_OUT_F_NO_TLS, "STARTTLS not offered",
     "451 4.7.4 Delivery to example.org failed: TLS required but not offered (STARTTLS not "
     "offered)"},
    {SMTP_OUT_F_HANDSHAKE, "dh key too small",
     "451 4.7.5 Delivery to example.org failed: TLS handshake failed (dh key too small)"},
    {SMTP_OUT_F_VERIFY, "certificate has expired",
     "451 4.7.5 Delivery to example.org failed: certificate verification failed (certificate has "
     "expired)"},
    {SMTP_OUT_F_AUTH, "535 Authentication Credentials Invalid",
     "451 4.7.0 Delivery to example.org failed: authentication failed (535 Authentication "
     "Credentials Invalid)"},
    {SMTP_OUT_F_PROTOCOL, "554 go away\r\n250 injected",
     "451 4.4.0 Delivery to example.org failed: unexpected SMTP response (554 go away??250 "
     "injected)"},
};

START_TEST(test_reply_table)
{
    const struct reply_case *c = &reply_cases[_i];
    char buf[600];
    ck_assert_str_eq(smtp_out_failure_text(c->f, "example.org", c->detail, buf, sizeof(buf)),
                     c->want);
    ck_assert_ptr_null(strpbrk(buf, "\r\n"));
    ck_assert_int_eq(buf[0], '4');
}
END_TEST

int main(void)
{
    Suite *s = suite_create("smtp_out");
    TCase *tc = tcase_create("replies");
    tcase_add_loop_test(tc, test_reply_table, 0,
                        (int)(sizeof(reply_cases) / sizeof(reply_cases[0])));
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
