/*
 * Unit tests of smtp_parse: tables of command lines, of MAIL/RCPT
 * arguments (relay tricks, quoting, literals, lengths, parameters, bad
 * bytes) and of HELO names, each row one Check loop iteration.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtp_parse.h"

/* ---- command lines ---- */

struct cmd_case {
    const char *line;
    size_t len; /* 0: strlen(line) */
    int rc;
    enum smtp_verb verb;
    const char *name;
    const char *arg;
    const char *reply; /* when rc is -1 */
};

#define CTL SMTP_REPLY_CONTROL_CHAR

static const struct cmd_case cmd_cases[] = {
    {"HELO mx.example.test", 0, 0, SMTP_HELO, "HELO", "mx.example.test", NULL},
    {"helo mx", 0, 0, SMTP_HELO, "HELO", "mx", NULL},
    {"EHLO", 0, 0, SMTP_EHLO, "EHLO", "", NULL},
    {"eHlO  client.example  ", 0, 0, SMTP_EHLO, "EHLO", "client.example", NULL},
    {"EHLO client.example\t", 0, 0, SMTP_EHLO, "EHLO", "client.example", NULL},
    {"MAIL FROM:<a@b.example>", 0, 0, SMTP_MAIL, "MAIL", "FROM:<a@b.example>", NULL},
    {"mail from:<>", 0, 0, SMTP_MAIL, "MAIL", "from:<>", NULL},
    {"MAIL   FROM:<a@b.example> SIZE=10", 0, 0, SMTP_MAIL, "MAIL", "FROM:<a@b.example> SIZE=10",
     NULL},
    {"RCPT TO:<x@y.example> ", 0, 0, SMTP_RCPT, "RCPT", "TO:<x@y.example>", NULL},
    {"Rcpt To:<x@y.example>", 0, 0, SMTP_RCPT, "RCPT", "To:<x@y.example>", NULL},
    {"DATA", 0, 0, SMTP_DATA, "DATA", "", NULL},
    {"data", 0, 0, SMTP_DATA, "DATA", "", NULL},
    {"RSET", 0, 0, SMTP_RSET, "RSET", "", NULL},
    {"NOOP", 0, 0, SMTP_NOOP, "NOOP", "", NULL},
    {"NOOP x\t", 0, 0, SMTP_NOOP, "NOOP", "x", NULL},
    {"QUIT", 0, 0, SMTP_QUIT, "QUIT", "", NULL},
    {"QUIT ", 0, 0, SMTP_QUIT, "QUIT", "", NULL},
    {"VRFY user", 0, 0, SMTP_VRFY, "VRFY", "user", NULL},
    {"EXPN staff", 0, 0, SMTP_EXPN, "EXPN", "staff", NULL},
    {"HELP", 0, 0, SMTP_HELP, "HELP", "", NULL},
    {"HELP MAIL", 0, 0, SMTP_HELP, "HELP", "MAIL", NULL},
    {"STARTTLS", 0, 0, SMTP_STARTTLS, "STARTTLS", "", NULL},
    {"starttls", 0, 0, SMTP_STARTTLS, "STARTTLS", "", NULL},
    {"AUTH PLAIN dGVzdAB0ZXN0AHRlc3Q=", 0, 0, SMTP_AUTH, "AUTH",
     "PLAIN dGVzdAB0ZXN0AHRlc3Q=", NULL},
    {"AUTH LOGIN", 0, 0, SMTP_AUTH, "AUTH", "LOGIN", NULL},
    {"BDAT 100 LAST", 0, 0, SMTP_BDAT, "BDAT", "100 LAST", NULL},
    {"HELO a\tb", 0, 0, SMTP_HELO, "HELO", "a\tb", NULL},
    {"HELO h\xc3\xa9llo", 0, 0, SMTP_HELO, "HELO", "h\xc3\xa9llo", NULL},
    /* unknown: not a verb, or the verb not followed by a space or the end */
    {"XCLIENT ADDR=192.0.2.1", 0, 0, SMTP_UNKNOWN, "", "", NULL},
    {"MAILFROM:<a@b.example>", 0, 0, SMTP_UNKNOWN, "", "", NULL},
    {"MAIL:FROM:<a@b.example>", 0, 0, SMTP_UNKNOWN, "", "", NULL},
    {"DATA\t", 0, 0, SMTP_UNKNOWN, "", "", NULL},
    {"STARTTLSX", 0, 0, SMTP_UNKNOWN, "", "", NULL},
    {"STARTTL", 0, 0, SMTP_UNKNOWN, "", "", NULL},
    {"", 0, 0, SMTP_UNKNOWN, "", "", NULL},
    {" QUIT", 0, 0, SMTP_UNKNOWN, "", "", NULL},
    {"123 QUIT", 0, 0, SMTP_UNKNOWN, "", "", NULL},
    {"GET / HTTP/1.1", 0, 0, SMTP_UNKNOWN, "", "", NULL},
    {"\xc3\xa9HLO x", 0, 0, SMTP_UNKNOWN, "", "", NULL},
    /* NUL, control characters and DEL anywhere in the LEN bytes */
    {"QUIT\r", 0, -1, SMTP_UNKNOWN, "", "", CTL},
    {"QUIT\0x", 6, -1, SMTP_UNKNOWN, "", "", CTL},
    {"\0", 1, -1, SMTP_UNKNOWN, "", "", CTL},
    {"MAIL FROM:<a\x01@b.example>", 0, -1, SMTP_UNKNOWN, "", "", CTL},
    {"RCPT TO:<a@b.example>\x1b", 0, -1, SMTP_UNKNOWN, "", "", CTL},
    {"NOOP\x7f", 0, -1, SMTP_UNKNOWN, "", "", CTL},
    {"HELO x\ny", 0, -1, SMTP_UNKNOWN, "", "", CTL},
    {"XYZZY \x02", 0, -1, SMTP_UNKNOWN, "", "", CTL},
};

START_TEST(test_command_table)
{
    const struct cmd_case *t = &cmd_cases[_i];
    size_t len = t->len ? t->len : strlen(t->line);
    struct smtp_cmd *cmd = malloc(sizeof(*cmd));
    const char *reply = NULL;
    int rc = smtp_parse_command(t->line, len, cmd, &reply);
    ck_assert_msg(rc == t->rc, "row %d \"%s\": rc %d", _i, t->line, rc);
    ck_assert_int_eq(cmd->verb, t->verb);
    ck_assert_str_eq(cmd->name, t->name);
    ck_assert_str_eq(cmd->arg, t->arg);
    if (t->rc < 0)
        ck_assert_str_eq(reply, t->reply);
    free(cmd);
}
END_TEST

/* The argument limit: SMTP_ARG_MAX bytes pass, one more is refused. */
START_TEST(test_command_arg_limit)
{
    size_t sizes[] = {SMTP_ARG_MAX, SMTP_ARG_MAX + 1};
    size_t n = sizes[_i];
    char *line = malloc(n + 6);
    struct smtp_cmd *cmd = malloc(sizeof(*cmd));
    memcpy(line, "AUTH ", 5);
    memset(line + 5, 'A', n);
    line[n + 5] = '\0';
    const char *reply = NULL;
    int rc = smtp_parse_command(line, n + 5, cmd, &reply);
    if (n <= SMTP_ARG_MAX) {
        ck_assert_int_eq(rc, 0);
        ck_assert_int_eq(cmd->verb, SMTP_AUTH);
        ck_assert_uint_eq(strlen(cmd->arg), n);
    } else {
        ck_assert_int_eq(rc, -1);
        ck_assert_str_eq(reply, SMTP_REPLY_LINE_TOO_LONG);
        ck_assert_int_eq(cmd->verb, SMTP_UNKNOWN);
    }
    free(line);
    free(cmd);
}
END_TEST

/* ---- MAIL / RCPT arguments ---- */

struct path_case {
    bool is_mail;
    const char *arg;
    const char *reply; /* NULL: accepted */
    const char *addr;
    const char *domain;
    bool null_path;
    bool routing;
    bool source_route;
    long long size;
    int body;
    const char *params;
};

#define OK      NULL
#define USAGE_M SMTP_REPLY_MAIL_USAGE
#define USAGE_R SMTP_REPLY_RCPT_USAGE
#define BAD_M   SMTP_REPLY_BAD_SENDER
#define BAD_R   SMTP_REPLY_BAD_RCPT
#define LONG_M  SMTP_REPLY_SENDER_TOO_LONG
#define LONG_R  SMTP_REPLY_RCPT_TOO_LONG
#define UTF8    SMTP_REPLY_NON_ASCII
#define BADP    SMTP_REPLY_BAD_PARAMS
#define BSIZE   SMTP_REPLY_BAD_SIZE
#define BBODY   SMTP_REPLY_BAD_BODY
#define M       true
#define R       false
/* A refused row: every output field is empty. */
#define NO(mail, arg, reply)                                                                       \
    {                                                                                              \
        mail, arg, reply, "", "", false, false, false, -1, 0, ""                                   \
    }

static const struct path_case path_cases[] = {
    /* MAIL: plain, case of the prefix, spaces after the colon */
    {M, "FROM:<user@example.test>", OK, "user@example.test", "example.test", 0, 0, 0, -1, 0, ""},
    {M, "from:<User@Example.TEST>", OK, "User@Example.TEST", "example.test", 0, 0, 0, -1, 0, ""},
    {M, "From: <user@example.test>", OK, "user@example.test", "example.test", 0, 0, 0, -1, 0, ""},
    {M, "FROM:   <user@example.test>", OK, "user@example.test", "example.test", 0, 0, 0, -1, 0, ""},
    {M, "FROM:<user@localhost>", OK, "user@localhost", "localhost", 0, 0, 0, -1, 0, ""},
    {M, "FROM:<first.last+tag@mail.example.test>", OK, "first.last+tag@mail.example.test",
     "mail.example.test", 0, 0, 0, -1, 0, ""},
    {M, "FROM:<a-b_c@x-1.example.test>", OK, "a-b_c@x-1.example.test", "x-1.example.test", 0, 0, 0,
     -1, 0, ""},
    /* the null path */
    {M, "FROM:<>", OK, "", "", 1, 0, 0, -1, 0, ""},
    {M, "FROM: <>", OK, "", "", 1, 0, 0, -1, 0, ""},
    {M, "FROM:<> SIZE=100", OK, "", "", 1, 0, 0, 100, 0, "SIZE=100"},
    /* parameters */
    {M, "FROM:<a@b.example> SIZE=1000 BODY=8BITMIME", OK, "a@b.example", "b.example", 0, 0, 0, 1000,
     8, "SIZE=1000 BODY=8BITMIME"},
    {M, "FROM:<a@b.example> body=7bit", OK, "a@b.example", "b.example", 0, 0, 0, -1, 7,
     "body=7bit"},
    {M, "FROM:<a@b.example>   SIZE=5   ", OK, "a@b.example", "b.example", 0, 0, 0, 5, 0, "SIZE=5"},
    {M, "FROM:<a@b.example> size=0", OK, "a@b.example", "b.example", 0, 0, 0, 0, 0, "size=0"},
    {M, "FROM:<a@b.example> SIZE=007", OK, "a@b.example", "b.example", 0, 0, 0, 7, 0, "SIZE=007"},
    {M, "FROM:<a@b.example> SIZE=9223372036854775807", OK, "a@b.example", "b.example", 0, 0, 0,
     9223372036854775807LL, 0, "SIZE=9223372036854775807"},
    {M, "FROM:<a@b.example> ", OK, "a@b.example", "b.example", 0, 0, 0, -1, 0, ""},
    NO(M, "FROM:<a@b.example> SIZE=9223372036854775808", BSIZE),
    NO(M, "FROM:<a@b.example> SIZE=99999999999999999999999", BSIZE),
    NO(M, "FROM:<a@b.example> SIZE=12a", BSIZE),
    NO(M, "FROM:<a@b.example> SIZE=-1", BSIZE),
    NO(M, "FROM:<a@b.example> SIZE", BSIZE),
    NO(M, "FROM:<a@b.example> SIZE=10 SIZE=20", BSIZE),
    NO(M, "FROM:<a@b.example> BODY=BINARYMIME", BBODY),
    NO(M, "FROM:<a@b.example> BODY=8BIT", BBODY),
    NO(M, "FROM:<a@b.example> BODY", BBODY),
    NO(M, "FROM:<a@b.example> BODY=7BIT BODY=7BIT", BBODY),
    NO(M, "FROM:<a@b.example> SIZE=", BADP),
    NO(M, "FROM:<a@b.example> =x", BADP),
    NO(M, "FROM:<a@b.example> SI_ZE=1", BADP),
    NO(M, "FROM:<a@b.example> -X=1", BADP),
    NO(M, "FROM:<a@b.example> SIZE=1=2", BADP),
    NO(M, "FROM:<a@b.example> X=\xc3\xa9", BADP),
    NO(M, "FROM:<a@b.example> SIZE=1\tBODY=7BIT", BADP),
    NO(M, "FROM:<a@b.example> AUTH=<>", "555 5.5.4 Unsupported parameter AUTH"),
    NO(M, "FROM:<a@b.example> SMTPUTF8", "555 5.5.4 Unsupported parameter SMTPUTF8"),
    NO(M, "FROM:<a@b.example> SIZE=1 ret=HDRS", "555 5.5.4 Unsupported parameter ret"),
    NO(M, "FROM:<a@b.example> ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789=1",
       "555 5.5.4 Unsupported parameter ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"),
    NO(M, "FROM:<a@b.example> junk", "555 5.5.4 Unsupported parameter junk"),
    /* syntax: missing brackets, prefix, trailing junk */
    NO(M, "FROM:a@b.example", USAGE_M),
    NO(M, "FROM: a@b.example", USAGE_M),
    NO(M, "FROM <a@b.example>", USAGE_M),
    NO(M, "FROM :<a@b.example>", USAGE_M),
    NO(M, "<a@b.example>", USAGE_M),
    NO(M, "TO:<a@b.example>", USAGE_M),
    NO(M, "", USAGE_M),
    NO(M, "FROM:", USAGE_M),
    NO(M, "FROM:\t<a@b.example>", USAGE_M),
    NO(M, "FROM:<a@b.example", BAD_M),
    NO(M, "FROM:<a@b.example>junk", BAD_M),
    NO(M, "FROM:<a@b.example>>", BAD_M),
    NO(M, "FROM:<a@b.example>\tSIZE=1", BAD_M),
    NO(M, "FROM:<<a@b.example>>", BAD_M),
    NO(M, "FROM:<user>", BAD_M),
    NO(M, "FROM:<postmaster>", BAD_M),
    NO(M, "FROM:<@>", BAD_M),
    NO(M, "FROM:<a@>", BAD_M),
    NO(M, "FROM:<@b.example>", BAD_M),
    NO(M, "FROM:< a@b.example>", BAD_M),
    NO(M, "FROM:<a@b.example >", BAD_M),
    NO(M, "FROM:<a\x01@b.example>", BAD_M),
    NO(M, "FROM:<a\x7f@b.example>", BAD_M),
    NO(M, "FROM:<\xc3\xa9@b.example>", UTF8),
    NO(M, "FROM:<a@b\xc3\xa9.example>", UTF8),
    {M, "FROM:<user%victim.example@example.test>", OK, "user%victim.example@example.test",
     "example.test", 0, 1, 0, -1, 0, ""},
    {M, "FROM:<user@[192.0.2.1]>", OK, "user@[192.0.2.1]", "[192.0.2.1]", 0, 0, 0, -1, 0, ""},

    /* RCPT: plain, case, spaces after the colon */
    {R, "TO:<rcpt@example.test>", OK, "rcpt@example.test", "example.test", 0, 0, 0, -1, 0, ""},
    {R, "to:<rcpt@EXAMPLE.test>", OK, "rcpt@EXAMPLE.test", "example.test", 0, 0, 0, -1, 0, ""},
    {R, "To: <rcpt@example.test>", OK, "rcpt@example.test", "example.test", 0, 0, 0, -1, 0, ""},
    {R, "TO:  <rcpt@example.test>  ", OK, "rcpt@example.test", "example.test", 0, 0, 0, -1, 0, ""},
    /* postmaster without a domain, RCPT only */
    {R, "TO:<postmaster>", OK, "postmaster", "", 0, 0, 0, -1, 0, ""},
    {R, "TO:<PostMaster>", OK, "postmaster", "", 0, 0, 0, -1, 0, ""},
    {R, "TO:<postmaster@example.test>", OK, "postmaster@example.test", "example.test", 0, 0, 0, -1,
     0, ""},
    NO(R, "TO:<postmistress>", BAD_R),
    NO(R, "TO:<@a.example:postmaster>", BAD_R),
    NO(R, "TO:<>", BAD_R),
    NO(R, "TO:<user>", BAD_R),
    /* relay tricks: accepted as syntax, flagged for policy */
    {R, "TO:<user%victim.example@example.test>", OK, "user%victim.example@example.test",
     "example.test", 0, 1, 0, -1, 0, ""},
    {R, "TO:<victim.example!user@example.test>", OK, "victim.example!user@example.test",
     "example.test", 0, 1, 0, -1, 0, ""},
    {R, "TO:<@example.test:user@victim.example>", OK, "user@victim.example", "victim.example", 0, 0,
     1, -1, 0, ""},
    {R, "TO:<@a.example,@b.example:user@victim.example>", OK, "user@victim.example",
     "victim.example", 0, 0, 1, -1, 0, ""},
    {R, "TO:<@a.example,@b.example:user%x.example@victim.example>", OK,
     "user%x.example@victim.example", "victim.example", 0, 1, 1, -1, 0, ""},
    {R, "TO:<\"user@victim.example\"@example.test>", OK, "\"user@victim.example\"@example.test",
     "example.test", 0, 1, 0, -1, 0, ""},
    {R, "TO:<\"user%victim\"@example.test>", OK, "\"user%victim\"@example.test", "example.test", 0,
     1, 0, -1, 0, ""},
    {R, "TO:<\"victim!user\"@example.test>", OK, "\"victim!user\"@example.test", "example.test", 0,
     1, 0, -1, 0, ""},
    {R, "TO:<\"a\\@b\"@example.test>", OK, "\"a\\@b\"@example.test", "example.test", 0, 1, 0, -1, 0,
     ""},
    {R, "TO:<!#$%&'*+-/=?^_`{|}~@example.test>", OK, "!#$%&'*+-/=?^_`{|}~@example.test",
     "example.test", 0, 1, 0, -1, 0, ""},
    NO(R, "TO:<@a.example,b.example:user@victim.example>", BAD_R),
    NO(R, "TO:<@a.example:>", BAD_R),
    NO(R, "TO:<@:user@victim.example>", BAD_R),
    NO(R, "TO:<@a.example,:user@victim.example>", BAD_R),
    NO(R, "TO:<@a.example>", BAD_R),
    NO(R, "TO:<@[192.0.2.1]:user@victim.example>", BAD_R),
    NO(R, "TO:<@a..example:user@victim.example>", BAD_R),
    NO(R, "TO:<user@victim.example@example.test>", BAD_R),
    NO(R, "TO:<user@@example.test>", BAD_R),
    /* quoted local parts */
    {R, "TO:<\"john doe\"@example.test>", OK, "\"john doe\"@example.test", "example.test", 0, 0, 0,
     -1, 0, ""},
    {R, "TO:<\"john\\\"doe\"@example.test>", OK, "\"john\\\"doe\"@example.test", "example.test", 0,
     0, 0, -1, 0, ""},
    {R, "TO:<\"a\\\\b\"@example.test>", OK, "\"a\\\\b\"@example.test", "example.test", 0, 0, 0, -1,
     0, ""},
    {R, "TO:<\"a>b\"@example.test>", OK, "\"a>b\"@example.test", "example.test", 0, 0, 0, -1, 0,
     ""},
    {R, "TO:<\"\"@example.test>", OK, "\"\"@example.test", "example.test", 0, 0, 0, -1, 0, ""},
    {R, "TO:<\"a.\"@example.test>", OK, "\"a.\"@example.test", "example.test", 0, 0, 0, -1, 0, ""},
    NO(R, "TO:<\"unterminated@example.test>", BAD_R),
    NO(R, "TO:<\"a\"b@example.test>", BAD_R),
    NO(R, "TO:<a\"b\"@example.test>", BAD_R),
    NO(R, "TO:<\"a\tb\"@example.test>", BAD_R),
    NO(R, "TO:<\"a\\\tb\"@example.test>", BAD_R),
    NO(R, "TO:<\"a\\", BAD_R),
    NO(R, "TO:<\"a\x01\"@example.test>", BAD_R),
    NO(R, "TO:<\"\xc3\xa9\"@example.test>", UTF8),
    /* dot-atoms */
    NO(R, "TO:<.user@example.test>", BAD_R),
    NO(R, "TO:<user.@example.test>", BAD_R),
    NO(R, "TO:<us..er@example.test>", BAD_R),
    NO(R, "TO:<user name@example.test>", BAD_R),
    NO(R, "TO:<us(er)@example.test>", BAD_R),
    NO(R, "TO:<us,er@example.test>", BAD_R),
    /* domains */
    NO(R, "TO:<user@example..test>", BAD_R),
    NO(R, "TO:<user@.example.test>", BAD_R),
    NO(R, "TO:<user@example.test.>", BAD_R),
    NO(R, "TO:<user@-example.test>", BAD_R),
    NO(R, "TO:<user@example-.test>", BAD_R),
    NO(R, "TO:<user@ex_ample.test>", BAD_R),
    NO(R, "TO:<user@exa mple.test>", BAD_R),
    NO(R, "TO:<user@example.test\xc3\xa9>", UTF8),
    /* address literals */
    {R, "TO:<user@[192.0.2.1]>", OK, "user@[192.0.2.1]", "[192.0.2.1]", 0, 0, 0, -1, 0, ""},
    {R, "TO:<user@[IPv6:2001:db8::1]>", OK, "user@[IPv6:2001:db8::1]", "[ipv6:2001:db8::1]", 0, 0,
     0, -1, 0, ""},
    {R, "TO:<user@[ipv6:2001:DB8::1]>", OK, "user@[ipv6:2001:DB8::1]", "[ipv6:2001:db8::1]", 0, 0,
     0, -1, 0, ""},
    {R, "TO:<user@[IPv6:::ffff:192.0.2.1]>", OK, "user@[IPv6:::ffff:192.0.2.1]",
     "[ipv6:::ffff:192.0.2.1]", 0, 0, 0, -1, 0, ""},
    {R, "TO:<user@[IPv6:2001:db8:0:0:0:0:0:1]>", OK, "user@[IPv6:2001:db8:0:0:0:0:0:1]",
     "[ipv6:2001:db8:0:0:0:0:0:1]", 0, 0, 0, -1, 0, ""},
    NO(R, "TO:<user@[IPv6:2001:db8::g]>", BAD_R),
    NO(R, "TO:<user@[IPv6:2001:db8::1%eth0]>", BAD_R),
    NO(R, "TO:<user@[IPv6:192.0.2.1]>", BAD_R),
    NO(R, "TO:<user@[2001:db8::1]>", BAD_R),
    NO(R, "TO:<user@[192.0.2.256]>", BAD_R),
    NO(R, "TO:<user@[192.0.2]>", BAD_R),
    NO(R, "TO:<user@[192.0.2.1 ]>", BAD_R),
    NO(R, "TO:<user@[tag:foo]>", BAD_R),
    NO(R, "TO:<user@[]>", BAD_R),
    NO(R, "TO:<user@[192.0.2.1>", BAD_R),
    NO(R, "TO:<user@192.0.2.1]>", BAD_R),
    NO(R, "TO:<user@[IPv6:1:2:3:4:5:6:7:8:9:10:11:12:13:14:15:16:17:18:19:20:21:22]>", BAD_R),
    /* parameters and trailing text */
    {R, "TO:<user@example.test> ", OK, "user@example.test", "example.test", 0, 0, 0, -1, 0, ""},
    NO(R, "TO:<user@example.test> NOTIFY=NEVER", "555 5.5.4 Unsupported parameter NOTIFY"),
    NO(R, "TO:<user@example.test> SIZE=10", "555 5.5.4 Unsupported parameter SIZE"),
    NO(R, "TO:<postmaster> ORCPT=rfc822;a@b", "555 5.5.4 Unsupported parameter ORCPT"),
    NO(R, "TO:<user@example.test> =", BADP),
    NO(R, "TO:<user@example.test>>", BAD_R),
    NO(R, "TO:<user@example.test>x", BAD_R),
    NO(R, "TO:user@example.test", USAGE_R),
    NO(R, "TO: user@example.test", USAGE_R),
    NO(R, "FROM:<user@example.test>", USAGE_R),
    NO(R, "TO<user@example.test>", USAGE_R),
    NO(R, "<user@example.test>", USAGE_R),
};

static void check_path_row(int i, const struct path_case *t, const char *reply,
                           const struct smtp_path *p)
{
    if (t->reply == NULL)
        ck_assert_msg(reply == NULL, "row %d \"%s\": refused with \"%s\"", i, t->arg, reply);
    else
        ck_assert_msg(reply != NULL && strcmp(reply, t->reply) == 0,
                      "row %d \"%s\": reply \"%s\", expected \"%s\"", i, t->arg,
                      reply ? reply : "(null)", t->reply);
    ck_assert_str_eq(p->addr, t->addr);
    ck_assert_str_eq(p->domain, t->domain);
    ck_assert_int_eq(p->null_path, t->null_path);
    ck_assert_msg(p->routing_chars == t->routing, "row %d \"%s\": routing_chars", i, t->arg);
    ck_assert_int_eq(p->had_source_route, t->source_route);
    ck_assert_int_eq(p->size, t->size);
    ck_assert_int_eq(p->body, t->body);
    ck_assert_str_eq(p->params, t->params);
}

START_TEST(test_path_table)
{
    const struct path_case *t = &path_cases[_i];
    struct smtp_path p;
    memset(&p, 0x55, sizeof(p)); /* the parser must set every field */
    const char *reply = smtp_parse_path(t->arg, t->is_mail, &p);
    check_path_row(_i, t, reply, &p);
}
END_TEST

/* ---- lengths (RFC 5321 4.5.3.1) ---- */

struct len_case {
    bool is_mail;
    size_t local;  /* bytes of local part */
    size_t domain; /* bytes of domain */
    size_t label;  /* longest label of the domain */
    const char *reply;
};

static const struct len_case len_cases[] = {
    {R, 64, 11, 7, OK},          /* local part at the limit */
    {R, 65, 11, 7, LONG_R},      /* one over */
    {M, 65, 11, 7, LONG_M},      /* one over, sender form */
    {R, 1, 63, 63, OK},          /* label at the limit */
    {R, 1, 64, 64, BAD_R},       /* label one over */
    {M, 1, 64, 64, BAD_M},       /* label one over, sender form */
    {R, 64, 191, 63, OK},        /* path exactly SMTP_PATH_MAX */
    {R, 64, 192, 63, LONG_R},    /* path one over */
    {M, 64, 192, 63, LONG_M},    /* path one over, sender form */
    {R, 1, 254, 63, OK},         /* the longest domain a path can hold */
    {R, 1, 255, 63, LONG_R},     /* a 255-byte domain overflows the path */
    {R, 200, 11, 7, LONG_R},     /* far too long a local part */
    {R, 1000, 1000, 63, LONG_R}, /* far too long everything */
};

/* Writes N bytes of a domain with labels of at most LABEL bytes. */
static void make_domain(char *s, size_t n, size_t label)
{
    for (size_t i = 0, run = 0; i < n; i++) {
        bool dot = run == label && i + 1 < n;
        s[i] = dot ? '.' : 'a' + (char)(i % 26);
        run = dot ? 0 : run + 1;
    }
    s[n] = '\0';
}

START_TEST(test_path_lengths)
{
    const struct len_case *t = &len_cases[_i];
    char *arg = malloc(t->local + t->domain + 16);
    struct smtp_path p;
    size_t pre = strlen(t->is_mail ? "FROM:<" : "TO:<");
    memcpy(arg, t->is_mail ? "FROM:<" : "TO:<", pre);
    memset(arg + pre, 'l', t->local);
    arg[pre + t->local] = '@';
    make_domain(arg + pre + t->local + 1, t->domain, t->label);
    strcat(arg, ">");
    const char *reply = smtp_parse_path(arg, t->is_mail, &p);
    if (t->reply == NULL) {
        ck_assert_msg(reply == NULL, "row %d: %s", _i, reply);
        ck_assert_uint_eq(strlen(p.addr), t->local + 1 + t->domain);
        ck_assert_uint_eq(strlen(p.domain), t->domain);
    } else {
        ck_assert_msg(reply != NULL && strcmp(reply, t->reply) == 0, "row %d: %s", _i,
                      reply ? reply : "(null)");
        ck_assert_str_eq(p.addr, "");
    }
    free(arg);
}
END_TEST

/* Parameters longer than the params buffer are refused, not cut. */
START_TEST(test_path_params_too_long)
{
    char arg[1024];
    struct smtp_path p;
    int n = snprintf(arg, sizeof(arg), "FROM:<a@b.example> SIZE=1 X-LONG=");
    memset(arg + n, 'v', 600);
    arg[n + 600] = '\0';
    ck_assert_str_eq(smtp_parse_path(arg, true, &p), SMTP_REPLY_PARAMS_TOO_LONG);
    ck_assert_str_eq(p.params, "");
}
END_TEST

/* ---- HELO / EHLO names ---- */

struct helo_case {
    const char *name;
    bool ok;
};

static const struct helo_case helo_cases[] = {
    {"mx.example.test", true},
    {"MX.Example.TEST", true},
    {"mypc", true},
    {"my_pc.lan", true},
    {"a", true},
    {"1.2.3.4", true},
    {"x-1.example", true},
    {"[192.0.2.1]", true},
    {"[IPv6:2001:db8::1]", true},
    {"[ipv6:::1]", true},
    {"", false},
    {"mx example", false},
    {"mx.example.test.", false},
    {".example.test", false},
    {"mx..example", false},
    {"-mx.example", false},
    {"mx-.example", false},
    {"mx\texample", false},
    {"mx\x01", false},
    {"h\xc3\xa9llo", false},
    {"[192.0.2.1", false},
    {"[192.0.2.300]", false},
    {"[2001:db8::1]", false},
    {"[IPv6:zz::1]", false},
    {"[]", false},
    {"[", false},
    {"mx.example.test,x", false},
    {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.x", true},   /* 63 */
    {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.x", false}, /* 64 */
};

START_TEST(test_helo_table)
{
    const struct helo_case *t = &helo_cases[_i];
    ck_assert_msg(smtp_parse_helo_ok(t->name) == t->ok, "row %d \"%s\"", _i, t->name);
}
END_TEST

START_TEST(test_helo_lengths)
{
    char name[400];
    make_domain(name, 255, 63);
    ck_assert(smtp_parse_helo_ok(name));
    make_domain(name, 256, 63);
    ck_assert(!smtp_parse_helo_ok(name));
    make_domain(name, 399, 63);
    ck_assert(!smtp_parse_helo_ok(name));
    ck_assert(!smtp_parse_helo_ok(NULL));
}
END_TEST

#define ROWS(a) ((int)(sizeof(a) / sizeof((a)[0])))

static Suite *smtp_parse_suite(void)
{
    Suite *s = suite_create("smtp_parse");
    TCase *tc = tcase_create("command");
    tcase_add_loop_test(tc, test_command_table, 0, ROWS(cmd_cases));
    tcase_add_loop_test(tc, test_command_arg_limit, 0, 2);
    suite_add_tcase(s, tc);
    tc = tcase_create("path");
    tcase_add_loop_test(tc, test_path_table, 0, ROWS(path_cases));
    tcase_add_loop_test(tc, test_path_lengths, 0, ROWS(len_cases));
    tcase_add_test(tc, test_path_params_too_long);
    suite_add_tcase(s, tc);
    tc = tcase_create("helo");
    tcase_add_loop_test(tc, test_helo_table, 0, ROWS(helo_cases));
    tcase_add_test(tc, test_helo_lengths);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(smtp_parse_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
