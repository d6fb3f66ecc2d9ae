/*
 * alert: the per-destination rate limit of alert messages.
 */
#include <check.h>
#include <stdio.h>

#include "alert.h"

START_TEST(test_first_alert_is_due)
{
    ck_assert(alert_due("first.example", 1000, 3600));
}
END_TEST

START_TEST(test_repeat_within_interval_suppressed)
{
    ck_assert(alert_due("repeat.example", 1000, 3600));
    ck_assert(!alert_due("repeat.example", 1001, 3600));
    ck_assert(!alert_due("REPEAT.example", 4599, 3600));
    ck_assert(alert_due("repeat.example", 4600, 3600));
    ck_assert(!alert_due("repeat.example", 4601, 3600));
}
END_TEST

START_TEST(test_domains_independent)
{
    ck_assert(alert_due("a.example", 1000, 3600));
    ck_assert(alert_due("b.example", 1000, 3600));
    ck_assert(!alert_due("a.example", 1000, 3600));
}
END_TEST

START_TEST(test_many_domains_evict_oldest)
{
    char name[64];
    for (int i = 0; i < 300; i++) {
        snprintf(name, sizeof(name), "d%d.example", i);
        ck_assert(alert_due(name, 2000 + i, 3600));
    }
    /* the newest are still remembered */
    ck_assert(!alert_due("d299.example", 2400, 3600));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("alert");
    TCase *tc = tcase_create("rate");
    tcase_add_test(tc, test_first_alert_is_due);
    tcase_add_test(tc, test_repeat_within_interval_suppressed);
    tcase_add_test(tc, test_domains_independent);
    tcase_add_test(tc, test_many_domains_evict_oldest);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
