/*
 * Unit tests of proxy: a table of PROXY headers (v1 TCP4/TCP6/UNKNOWN, v2
 * PROXY over IPv4/IPv6 with and without TLVs, v2 LOCAL and UNSPEC) and of
 * invalid ones, each row one Check loop iteration.  Every valid header is
 * also cut at each length (all proper prefixes need more bytes) and
 * followed by SMTP bytes (exactly the header is consumed); invalid ones stay
 * invalid with bytes appended.  Inputs are copied into buffers of exactly
 * the length given, so that AddressSanitizer catches any over-read.
 */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy.h"

#define ROWS(a) ((int)(sizeof(a) / sizeof((a)[0])))
/* A byte string that may hold NULs: its bytes and length. */
#define B(s) s, sizeof(s) - 1

#define SIG     "\r\n\r\n\0\r\nQUIT\n"
#define V4_ADDR "\xc0\x00\x02\x01\xc6\x33\x64\x07\x9c\x40\x00\x19"
#define V6_ADDR                                                                                    \
    "\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x01"                                                   \
    "\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x25"                                                   \
    "\xff\xff\x00\x00"
#define SMTP_AFTER "EHLO client.example.test\r\n"

struct valid_case {
    const char *bytes;
    size_t len;
    enum proxy_mode mode;
    bool local;
    int family; /* of src and dst when not local */
    const char *src, *dst;
    unsigned sport, dport;
};

static const struct valid_case valid_cases[] = {
    {B("PROXY TCP4 192.0.2.1 198.51.100.7 40000 25\r\n"), PROXY_V1, false, AF_INET, "192.0.2.1",
     "198.51.100.7", 40000, 25},
    {B("PROXY TCP4 192.0.2.1 198.51.100.7 40000 25\r\n"), PROXY_ANY, false, AF_INET, "192.0.2.1",
     "198.51.100.7", 40000, 25},
    {B("PROXY TCP4 0.0.0.0 255.255.255.255 0 65535\r\n"), PROXY_ANY, false, AF_INET, "0.0.0.0",
     "255.255.255.255", 0, 65535},
    {B("PROXY TCP6 2001:db8::1 2001:db8::25 65535 0\r\n"), PROXY_V1, false, AF_INET6, "2001:db8::1",
     "2001:db8::25", 65535, 0},
    {B("PROXY TCP6 ::ffff:192.0.2.1 ::1 1 2\r\n"), PROXY_ANY, false, AF_INET6, "::ffff:192.0.2.1",
     "::1", 1, 2},
    {B("PROXY TCP6 2001:DB8::A 2001:db8::b 587 25\r\n"), PROXY_ANY, false, AF_INET6, "2001:db8::a",
     "2001:db8::b", 587, 25},
    {B("PROXY UNKNOWN\r\n"), PROXY_V1, true, 0, NULL, NULL, 0, 0},
    /* the spec's worst case: exactly 107 bytes; what follows UNKNOWN is ignored */
    {B("PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
       "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n"),
     PROXY_ANY, true, 0, NULL, NULL, 0, 0},
    {B("PROXY UNKNOWN whatever\tis here\r\n"), PROXY_ANY, true, 0, NULL, NULL, 0, 0},
    /* v2 PROXY TCP4, no TLVs */
    {B(SIG "\x21\x11\x00\x0c" V4_ADDR), PROXY_V2, false, AF_INET, "192.0.2.1", "198.51.100.7",
     40000, 25},
    {B(SIG "\x21\x11\x00\x0c" V4_ADDR), PROXY_ANY, false, AF_INET, "192.0.2.1", "198.51.100.7",
     40000, 25},
    /* v2 PROXY TCP4 with TLVs: ALPN "h2", NOOP of 0, AUTHORITY "mx" */
    {B(SIG "\x21\x11\x00\x19" V4_ADDR "\x01\x00\x02h2"
           "\x04\x00\x00"
           "\x02\x00\x02mx"),
     PROXY_V2, false, AF_INET, "192.0.2.1", "198.51.100.7", 40000, 25},
    /* v2 PROXY TCP6 (ports 65535 and 0), no TLVs and with a CRC32C TLV */
    {B(SIG "\x21\x21\x00\x24" V6_ADDR), PROXY_V2, false, AF_INET6, "2001:db8::1", "2001:db8::25",
     65535, 0},
    {B(SIG "\x21\x21\x00\x2b" V6_ADDR "\x03\x00\x04\x01\x02\x03\x04"), PROXY_ANY, false, AF_INET6,
     "2001:db8::1", "2001:db8::25", 65535, 0},
    /* v2 LOCAL (a health check): family ignored, block skipped */
    {B(SIG "\x20\x00\x00\x00"), PROXY_V2, true, 0, NULL, NULL, 0, 0},
    {B(SIG "\x20\x11\x00\x0c" V4_ADDR), PROXY_ANY, true, 0, NULL, NULL, 0, 0},
    {B(SIG "\x20\x31\x00\x00"), PROXY_ANY, true, 0, NULL, NULL, 0, 0},
    /* v2 PROXY UNSPEC: the receiver keeps the real peer */
    {B(SIG "\x21\x00\x00\x00"), PROXY_V2, true, 0, NULL, NULL, 0, 0},
    {B(SIG "\x21\x00\x00\x03\x04\x00\x00"), PROXY_ANY, true, 0, NULL, NULL, 0, 0},
};

struct invalid_case {
    const char *bytes;
    size_t len;
    enum proxy_mode mode;
    const char *error; /* expected reason, exactly */
};

static const struct invalid_case invalid_cases[] = {
    /* not a PROXY header at all */
    {B("EHLO client.example.test\r\n"), PROXY_ANY, "not a PROXY header"},
    {B("GET / HTTP/1.0\r\n"), PROXY_V1, "not a PROXY v1 header"},
    {B("\x16\x03\x01\x02\x00\x01"), PROXY_ANY, "not a PROXY header"},
    {B("proxy TCP4 192.0.2.1 198.51.100.7 1 2\r\n"), PROXY_ANY, "not a PROXY header"},
    {B("PROXYTCP4 192.0.2.1 198.51.100.7 1 2\r\n"), PROXY_ANY, "not a PROXY v1 header"},
    {B("PROXY\r\n"), PROXY_ANY, "v1 line ends early"},
    /* mode mismatch */
    {B("PROXY TCP4 192.0.2.1 198.51.100.7 40000 25\r\n"), PROXY_V2, "not a PROXY v2 header"},
    {B(SIG "\x21\x11\x00\x0c" V4_ADDR), PROXY_V1, "not a PROXY v1 header"},
    {B("PROXY UNKNOWN\r\n"), PROXY_NO, "PROXY protocol not enabled"},
    {B(SIG "\x20\x00\x00\x00"), PROXY_NO, "PROXY protocol not enabled"},
    /* v1 protocol, family and addresses */
    {B("PROXY TCP5 192.0.2.1 198.51.100.7 1 2\r\n"), PROXY_ANY, "bad v1 protocol"},
    {B("PROXY tcp4 192.0.2.1 198.51.100.7 1 2\r\n"), PROXY_ANY, "bad v1 protocol"},
    {B("PROXY UNKNOWNX\r\n"), PROXY_ANY, "bad v1 protocol"},
    {B("PROXY UDP4 192.0.2.1 198.51.100.7 1 2\r\n"), PROXY_ANY, "bad v1 protocol"},
    {B("PROXY TCP4 2001:db8::1 198.51.100.7 1 2\r\n"), PROXY_ANY, "bad v1 source address"},
    {B("PROXY TCP6 192.0.2.1 2001:db8::1 1 2\r\n"), PROXY_ANY, "bad v1 source address"},
    {B("PROXY TCP6 2001:db8::1 192.0.2.1 1 2\r\n"), PROXY_ANY, "bad v1 destination address"},
    {B("PROXY TCP4 192.0.2.256 198.51.100.7 1 2\r\n"), PROXY_ANY, "bad v1 source address"},
    {B("PROXY TCP4 192.0.2.01 198.51.100.7 1 2\r\n"), PROXY_ANY, "bad v1 source address"},
    {B("PROXY TCP4 192.0.2 198.51.100.7 1 2\r\n"), PROXY_ANY, "bad v1 source address"},
    {B("PROXY TCP4 192.0.2.1 198.51.100.7.1 1 2\r\n"), PROXY_ANY, "bad v1 destination address"},
    {B("PROXY TCP4 192.0.2.1 mx.example.test 1 2\r\n"), PROXY_ANY, "bad v1 destination address"},
    {B("PROXY TCP6 2001:db8:::1 ::1 1 2\r\n"), PROXY_ANY, "bad v1 source address"},
    {B("PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n"), PROXY_ANY, "bad v1 source address"},
    /* v1 ports */
    {B("PROXY TCP4 192.0.2.1 198.51.100.7 65536 25\r\n"), PROXY_ANY, "bad v1 source port"},
    {B("PROXY TCP4 192.0.2.1 198.51.100.7 99999 25\r\n"), PROXY_ANY, "bad v1 source port"},
    {B("PROXY TCP4 192.0.2.1 198.51.100.7 100000 25\r\n"), PROXY_ANY, "bad v1 source port"},
    {B("PROXY TCP4 192.0.2.1 198.51.100.7 40000 025\r\n"), PROXY_ANY, "bad v1 destination port"},
    {B("PROXY TCP4 192.0.2.1 198.51.100.7 00 25\r\n"), PROXY_ANY, "bad v1 source port"},
    {B("PROXY TCP4 192.0.2.1 198.51.100.7 -1 25\r\n"), PROXY_ANY, "bad v1 source port"},
    {B("PROXY TCP4 192.0.2.1 198.51.100.7 +1 25\r\n"), PROXY_ANY, "bad v1 source port"},
    {B("PROXY TCP4 192.0.2.1 198.51.100.7 0x19 25\r\n"), PROXY_ANY, "bad v1 source port"},
    {B("PROXY TCP4 192.0.2.1 198.51.100.7 40000 \r\n"), PROXY_ANY, "bad v1 destination port"},
    /* v1 spacing, fields and line end */
    {B("PROXY  TCP4 192.0.2.1 198.51.100.7 1 2\r\n"), PROXY_ANY, "bad v1 protocol"},
    {B("PROXY TCP4 192.0.2.1  198.51.100.7 1 2\r\n"), PROXY_ANY, "bad v1 destination address"},
    {B("PROXY TCP4 192.0.2.1\t198.51.100.7 1 2\r\n"), PROXY_ANY, "bad v1 source address"},
    {B("PROXY TCP4 192.0.2.1 198.51.100.7 1 2 \r\n"), PROXY_ANY, "v1 line has extra fields"},
    {B("PROXY TCP4 192.0.2.1 198.51.100.7 1 2 3\r\n"), PROXY_ANY, "v1 line has extra fields"},
    {B("PROXY TCP4 192.0.2.1 198.51.100.7 40000\r\n"), PROXY_ANY, "v1 line ends early"},
    {B("PROXY TCP4\r\n"), PROXY_ANY, "v1 line ends early"},
    {B("PROXY TCP4 192.0.2.1 198.51.100.7 40000 25\n"), PROXY_ANY, "bad v1 destination port"},
    {B("PROXY TCP4 192.0.2.1 198.51.100.7 40000 25\rEHLO x\r\n"), PROXY_ANY,
     "v1 line not ended by CRLF"},
    {B("PROXY TCP4 192.0.2.1 198.51.100.7 40000 25\r\r\n"), PROXY_ANY, "v1 line not ended by CRLF"},
    {B("PROXY TCP4 192.0.2.1 198.51.100.7 40\0000 25\r\n"), PROXY_ANY, "bad v1 source port"},
    /* v1 too long: 108 bytes with the CRLF, and 107 bytes without one */
    {B("PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
       "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 655350\r\n"),
     PROXY_ANY, "v1 line longer than 107 bytes"},
    {B("PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
       "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 6553500"),
     PROXY_ANY, "v1 line longer than 107 bytes"},
    {B("PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255 "
       "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255 65535 65535\r\n"),
     PROXY_ANY, "v1 line longer than 107 bytes"},
    /* v2 signature, version, command */
    {B("\r\n\r\n\0\r\nQUIX\n\x21\x11\x00\x0c" V4_ADDR), PROXY_ANY, "not a PROXY v2 header"},
    {B("\r\n\r\n\x01\r\nQUIT\n\x21\x11\x00\x0c" V4_ADDR), PROXY_V2, "not a PROXY v2 header"},
    {B("\r\nQUIT\r\n"), PROXY_ANY, "not a PROXY v2 header"},
    {B(SIG "\x11\x11\x00\x0c" V4_ADDR), PROXY_ANY, "bad v2 version"},
    {B(SIG "\x31\x11\x00\x0c" V4_ADDR), PROXY_ANY, "bad v2 version"},
    {B(SIG "\x01\x11\x00\x0c" V4_ADDR), PROXY_ANY, "bad v2 version"},
    {B(SIG "\x22\x11\x00\x0c" V4_ADDR), PROXY_ANY, "bad v2 command"},
    {B(SIG "\x2f\x11\x00\x0c" V4_ADDR), PROXY_ANY, "bad v2 command"},
    /* v2 families and transports */
    {B(SIG "\x21\x12\x00\x0c" V4_ADDR), PROXY_ANY, "v2 family is not TCP over IPv4/IPv6"},
    {B(SIG "\x21\x22\x00\x24" V6_ADDR), PROXY_ANY, "v2 family is not TCP over IPv4/IPv6"},
    {B(SIG "\x21\x31\x00\x00"), PROXY_ANY, "v2 family is not TCP over IPv4/IPv6"},
    {B(SIG "\x21\x32\x00\x00"), PROXY_ANY, "v2 family is not TCP over IPv4/IPv6"},
    {B(SIG "\x21\x10\x00\x0c" V4_ADDR), PROXY_ANY, "bad v2 family"},
    {B(SIG "\x21\x01\x00\x0c" V4_ADDR), PROXY_ANY, "bad v2 family"},
    {B(SIG "\x21\x41\x00\x0c" V4_ADDR), PROXY_ANY, "bad v2 family"},
    {B(SIG "\x21\x13\x00\x0c" V4_ADDR), PROXY_ANY, "bad v2 family"},
    {B(SIG "\x20\x41\x00\x00"), PROXY_ANY, "bad v2 family"},
    /* v2 lengths */
    {B(SIG "\x21\x11\x00\x08" V4_ADDR), PROXY_ANY, "v2 address block too short"},
    {B(SIG "\x21\x21\x00\x0c" V4_ADDR), PROXY_ANY, "v2 address block too short"},
    {B(SIG "\x21\x11\x02\x09"), PROXY_ANY, "v2 header longer than 536 bytes"},
    {B(SIG "\x21\x11\xff\xff"), PROXY_ANY, "v2 header longer than 536 bytes"},
    {B(SIG "\x20\x00\xff\xff"), PROXY_ANY, "v2 header longer than 536 bytes"},
};

/* A malloc'd copy of LEN bytes of P (at least one byte is allocated). */
static unsigned char *copy(const char *p, size_t len)
{
    unsigned char *b = malloc(len > 0 ? len : 1);
    ck_assert_ptr_nonnull(b);
    memcpy(b, p, len);
    return b;
}

static int parse(const char *p, size_t len, enum proxy_mode mode, struct proxy_info *out)
{
    unsigned char *b = copy(p, len);
    int rc = proxy_parse(b, len, mode, out);
    free(b);
    return rc;
}

static void check_addr(const struct sockaddr_storage *ss, int family, const char *ip, unsigned port)
{
    char text[INET6_ADDRSTRLEN];
    ck_assert_int_eq(ss->ss_family, family);
    if (family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &sin->sin_addr, text, sizeof(text));
        ck_assert_uint_eq(ntohs(sin->sin_port), port);
    } else {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &sin6->sin6_addr, text, sizeof(text));
        ck_assert_uint_eq(ntohs(sin6->sin6_port), port);
    }
    ck_assert_str_eq(text, ip);
}

static void check_valid(const struct valid_case *t, const struct proxy_info *info)
{
    ck_assert_ptr_null(info->error);
    ck_assert_int_eq(info->local, t->local);
    if (t->local) {
        ck_assert_int_eq(info->src.ss_family, AF_UNSPEC);
        ck_assert_int_eq(info->dst.ss_family, AF_UNSPEC);
        return;
    }
    check_addr(&info->src, t->family, t->src, t->sport);
    check_addr(&info->dst, t->family, t->dst, t->dport);
}

/* ---- valid headers ---- */

START_TEST(test_valid)
{
    const struct valid_case *t = &valid_cases[_i];
    struct proxy_info info;
    ck_assert_int_eq(parse(t->bytes, t->len, t->mode, &info), (int)t->len);
    check_valid(t, &info);
}
END_TEST

START_TEST(test_valid_prefixes)
{
    const struct valid_case *t = &valid_cases[_i];
    for (size_t n = 0; n < t->len; n++) {
        struct proxy_info info;
        int rc = parse(t->bytes, n, t->mode, &info);
        ck_assert_msg(rc == 0, "row %d: prefix of %zu bytes gave %d (%s)", _i, n, rc,
                      info.error ? info.error : "");
        ck_assert_ptr_null(info.error);
    }
}
END_TEST

START_TEST(test_valid_then_smtp)
{
    const struct valid_case *t = &valid_cases[_i];
    size_t extra = sizeof(SMTP_AFTER) - 1;
    char *both = malloc(t->len + extra);
    memcpy(both, t->bytes, t->len);
    memcpy(both + t->len, SMTP_AFTER, extra);
    for (size_t n = t->len; n <= t->len + extra; n++) {
        struct proxy_info info;
        ck_assert_int_eq(parse(both, n, t->mode, &info), (int)t->len);
        check_valid(t, &info);
    }
    free(both);
}
END_TEST

/* ---- invalid headers ---- */

START_TEST(test_invalid)
{
    const struct invalid_case *t = &invalid_cases[_i];
    struct proxy_info info;
    ck_assert_int_eq(parse(t->bytes, t->len, t->mode, &info), -1);
    ck_assert_ptr_nonnull(info.error);
    ck_assert_str_eq(info.error, t->error);
    ck_assert(!info.local);
}
END_TEST

/* Invalid stays invalid, for the same reason, whatever follows. */
START_TEST(test_invalid_then_more)
{
    const struct invalid_case *t = &invalid_cases[_i];
    size_t extra = sizeof(SMTP_AFTER) - 1;
    char *both = malloc(t->len + extra);
    memcpy(both, t->bytes, t->len);
    memcpy(both + t->len, SMTP_AFTER, extra);
    struct proxy_info info;
    ck_assert_int_eq(parse(both, t->len + extra, t->mode, &info), -1);
    ck_assert_str_eq(info.error, t->error);
    free(both);
}
END_TEST

/* ---- boundaries ---- */

START_TEST(test_empty)
{
    struct proxy_info info;
    ck_assert_int_eq(parse("", 0, PROXY_ANY, &info), 0);
    ck_assert_int_eq(parse("", 0, PROXY_V1, &info), 0);
    ck_assert_int_eq(parse("", 0, PROXY_V2, &info), 0);
    ck_assert_int_eq(parse("", 0, PROXY_NO, &info), -1);
}
END_TEST

/* A v2 header of TOTAL bytes: PROXY TCP4 and NOOP TLVs filling the rest. */
static char *v2_of_length(size_t total)
{
    char *b = calloc(1, total);
    size_t plen = total - 16;
    memcpy(b, SIG "\x21\x11", 14);
    b[14] = (char)(plen >> 8);
    b[15] = (char)(plen & 0xff);
    memcpy(b + 16, V4_ADDR, 12);
    b[28] = 0x04; /* PP2_TYPE_NOOP */
    b[29] = (char)((plen - 15) >> 8);
    b[30] = (char)((plen - 15) & 0xff);
    return b;
}

START_TEST(test_v2_max_length)
{
    struct proxy_info info;
    char *b = v2_of_length(PROXY_V2_MAX);
    ck_assert_int_eq(parse(b, PROXY_V2_MAX, PROXY_V2, &info), PROXY_V2_MAX);
    ck_assert(!info.local);
    check_addr(&info.src, AF_INET, "192.0.2.1", 40000);
    ck_assert_int_eq(parse(b, PROXY_V2_MAX - 1, PROXY_V2, &info), 0);
    free(b);
    b = v2_of_length(PROXY_V2_MAX + 1);
    ck_assert_int_eq(parse(b, 16, PROXY_ANY, &info), -1);
    ck_assert_int_eq(parse(b, PROXY_V2_MAX + 1, PROXY_ANY, &info), -1);
    free(b);
}
END_TEST

/* Without a CR, 106 bytes may still become a header; 107 cannot. */
START_TEST(test_v1_no_crlf)
{
    char line[PROXY_V1_MAX + 1];
    struct proxy_info info;
    memcpy(line, "PROXY UNKNOWN ", 14);
    memset(line + 14, 'x', sizeof(line) - 14);
    ck_assert_int_eq(parse(line, PROXY_V1_MAX - 1, PROXY_V1, &info), 0);
    ck_assert_int_eq(parse(line, PROXY_V1_MAX, PROXY_V1, &info), -1);
    ck_assert_str_eq(info.error, "v1 line longer than 107 bytes");
    ck_assert_int_eq(parse(line, PROXY_V1_MAX + 1, PROXY_V1, &info), -1);
}
END_TEST

/* A header that is only a prefix of a longer, invalid one still waits. */
START_TEST(test_v1_waits_for_crlf)
{
    struct proxy_info info;
    ck_assert_int_eq(parse(B("PROXY TCP4 192.0.2.1 198.51.100.7 40000 25"), PROXY_V1, &info), 0);
    ck_assert_int_eq(parse(B("PROXY TCP4 192.0.2.1 198.51.100.7 40000 25\r"), PROXY_V1, &info), 0);
    ck_assert_int_eq(parse(B("PROXY TCP4 192.0.2.1 198.51.100.7 40000 2\r"), PROXY_V1, &info), 0);
    ck_assert_int_eq(parse(B("PROXY TCP4 192.0.2.1 198.51.100.7 40000 025"), PROXY_V1, &info), -1);
    ck_assert_int_eq(parse(B("PROXY TCP4 192.0.2.1 198.51.100.7 40000\r"), PROXY_V1, &info), -1);
}
END_TEST

static Suite *proxy_suite(void)
{
    Suite *s = suite_create("proxy");
    TCase *tc = tcase_create("valid");
    tcase_add_loop_test(tc, test_valid, 0, ROWS(valid_cases));
    tcase_add_loop_test(tc, test_valid_prefixes, 0, ROWS(valid_cases));
    tcase_add_loop_test(tc, test_valid_then_smtp, 0, ROWS(valid_cases));
    suite_add_tcase(s, tc);
    tc = tcase_create("invalid");
    tcase_add_loop_test(tc, test_invalid, 0, ROWS(invalid_cases));
    tcase_add_loop_test(tc, test_invalid_then_more, 0, ROWS(invalid_cases));
    suite_add_tcase(s, tc);
    tc = tcase_create("boundaries");
    tcase_add_test(tc, test_empty);
    tcase_add_test(tc, test_v2_max_length);
    tcase_add_test(tc, test_v1_no_crlf);
    tcase_add_test(tc, test_v1_waits_for_crlf);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(proxy_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
