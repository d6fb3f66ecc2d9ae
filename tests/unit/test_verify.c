/*
 * RFC 6125 name matching (tls_cert_match): certificates made in memory with
 * the given CN and subjectAltNames, checked against reference names.
 */
#include <check.h>
#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/x509v3.h>

#include "tls.h"

struct verify_case {
    const char *cn;   /* NULL: no CN */
    const char *sans; /* "DNS:a,DNS:b,IP:..." or NULL: no subjectAltName */
    const char *ref;
    int match;
};

static const struct verify_case verify_cases[] = {
    /* DNS-IDs */
    {NULL, "DNS:mx.example.org", "mx.example.org", 1},
    {NULL, "DNS:mx.example.org", "MX.Example.ORG", 1},
    {NULL, "DNS:MX.EXAMPLE.ORG", "mx.example.org", 1},
    {NULL, "DNS:mx.example.org", "mx2.example.org", 0},
    {NULL, "DNS:mx.example.org", "example.org", 0},
    {NULL, "DNS:a.example.org,DNS:mx.example.org", "mx.example.org", 1},
    /* the CN only counts without DNS SANs */
    {"mx.example.org", NULL, "mx.example.org", 1},
    {"mx.example.org", "DNS:other.example.org", "mx.example.org", 0},
    {"mx.example.org", "IP:192.0.2.1", "mx.example.org", 1},
    {"mx.example.org", NULL, "mx.example.net", 0},
    /* wildcards: the whole left-most label only */
    {NULL, "DNS:*.example.org", "mx.example.org", 1},
    {NULL, "DNS:*.example.org", "a.b.example.org", 0},
    {NULL, "DNS:*.example.org", "example.org", 0},
    {NULL, "DNS:m*.example.org", "mx.example.org", 0},
    {NULL, "DNS:*x.example.org", "mx.example.org", 0},
    {NULL, "DNS:mx.*.org", "mx.example.org", 0},
    {NULL, "DNS:*.*.example.org", "a.b.example.org", 0},
    {NULL, "DNS:*.org", "example.org", 0},
    {"*.example.org", NULL, "mx.example.org", 1},
    /* IDNA: names compare as A-labels */
    {NULL, "DNS:xn--bcher-kva.example", "xn--bcher-kva.example", 1},
    {NULL, "DNS:xn--bcher-kva.example", "XN--BCHER-KVA.example", 1},
    {NULL, "DNS:xn--bcher-kva.example", "bucher.example", 0},
    {NULL, "DNS:*.xn--bcher-kva.example", "mx.xn--bcher-kva.example", 1},
    /* an IP address SAN is not a DNS-ID */
    {NULL, "IP:192.0.2.1", "192.0.2.1.example", 0},
    /* trailing dots and empty references */
    {NULL, "DNS:mx.example.org", "", 0},
};

static X509 *verify_make_cert(const char *cn, const char *sans)
{
    static EVP_PKEY *key;
    if (key == NULL)
        key = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    X509_set_pubkey(x, key);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, (const unsigned char *)"test", -1, -1, 0);
    if (cn != NULL)
        X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(x, name);
    if (sans != NULL) {
        X509V3_CTX v3;
        X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
        X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name, sans);
        ck_assert_ptr_nonnull(ext);
        X509_add_ext(x, ext, -1);
        X509_EXTENSION_free(ext);
    }
    ck_assert_int_ne(X509_sign(x, key, EVP_sha256()), 0);
    return x;
}

START_TEST(test_name_table)
{
    const struct verify_case *c = &verify_cases[_i];
    X509 *x = verify_make_cert(c->cn, c->sans);
    const char *names[1] = {c->ref};
    int got = tls_cert_match(x, names, 1);
    ck_assert_msg((got == 0) == (c->match == 1), "row %d: cn=%s sans=%s ref=%s: got %d", _i,
                  c->cn ? c->cn : "-", c->sans ? c->sans : "-", c->ref, got);
    X509_free(x);
}
END_TEST

START_TEST(test_second_reference_name)
{
    /* an MX host that does not match, then the recipient domain that does */
    X509 *x = verify_make_cert(NULL, "DNS:example.org");
    const char *names[2] = {"mx1.hosting.example", "example.org"};
    ck_assert_int_eq(tls_cert_match(x, names, 2), 1);
    const char *none[2] = {"mx1.hosting.example", NULL};
    ck_assert_int_eq(tls_cert_match(x, none, 2), -1);
    X509_free(x);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("verify");
    TCase *tc = tcase_create("rfc6125");
    tcase_add_loop_test(tc, test_name_table, 0,
                        (int)(sizeof(verify_cases) / sizeof(verify_cases[0])));
    tcase_add_test(tc, test_second_reference_name);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
