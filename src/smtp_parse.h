/*
 * smtp_parse: the pure parsers of the inbound protocol — a command line into
 * verb and argument, and a MAIL/RCPT argument into a path and its ESMTP
 * parameters (RFC 5321 section 4.1).  No I/O and no session state; every
 * failure is returned as the complete SMTP reply line to send.
 */
#ifndef TLSGATE_SMTP_PARSE_H
#define TLSGATE_SMTP_PARSE_H

#include <stdbool.h>
#include <stddef.h>

#define SMTP_PATH_MAX   256 /* RFC 5321 4.5.3.1.3, without the brackets */
#define SMTP_DOMAIN_MAX 255 /* RFC 5321 4.5.3.1.2 */
#define SMTP_LOCAL_MAX  64  /* RFC 5321 4.5.3.1.1 */

enum smtp_verb {
    SMTP_UNKNOWN,
    SMTP_HELO,
    SMTP_EHLO,
    SMTP_MAIL,
    SMTP_RCPT,
    SMTP_DATA,
    SMTP_RSET,
    SMTP_NOOP,
    SMTP_QUIT,
    SMTP_VRFY,
    SMTP_EXPN,
    SMTP_HELP,
    SMTP_STARTTLS,
    SMTP_AUTH,
    SMTP_BDAT
};

/* Longest argument smtp_parse_command accepts: the AUTH command line limit
 * of RFC 4954 section 4 (every other command is far shorter). */
#define SMTP_ARG_MAX 12288

/* Replies of smtp_parse_command. */
#define SMTP_REPLY_CONTROL_CHAR  "500 5.5.2 Error: NUL or control character in command"
#define SMTP_REPLY_LINE_TOO_LONG "500 5.5.2 Error: line too long"

struct smtp_cmd {
    enum smtp_verb verb;
    const char *name; /* canonical upper-case verb, "" for unknown */
    const char *arg;  /* text after the verb and one space, "" if none */
    /* Storage for ARG (trailing white space removed), which points here:
     * copying the struct keeps ARG pointing into the original. */
    char argbuf[SMTP_ARG_MAX + 1];
};

/* Splits LINE (LEN bytes, NUL-terminated, CRLF already removed) into verb
 * and argument.  The verb is the leading ASCII letters, case-insensitive,
 * followed by a space or the end of the line; anything else ("MAIL:FROM",
 * " QUIT", "XCLIENT ...") is SMTP_UNKNOWN with name and arg "", and 0 is
 * returned (the session answers "500 5.5.2 Error: command not recognized").
 * The argument starts after the spaces that follow the verb; trailing
 * spaces and TABs are removed.  Returns 0, or -1 with *REPLY set to
 * SMTP_REPLY_CONTROL_CHAR if the LEN bytes hold a NUL, DEL or a control
 * character other than TAB, or to SMTP_REPLY_LINE_TOO_LONG if the argument
 * exceeds SMTP_ARG_MAX.  Bytes >= 0x80 are not refused here (the path
 * parser refuses them in addresses). */
int smtp_parse_command(const char *line, size_t len, struct smtp_cmd *out, const char **reply);

struct smtp_path {
    /* "local@domain" as sent without the source route, "" for <>,
     * "postmaster" for <postmaster> in any case */
    char addr[SMTP_PATH_MAX + 1];
    char domain[SMTP_DOMAIN_MAX + 1]; /* lower-case, "" for <> or <postmaster> */
    bool null_path;                   /* MAIL FROM:<> */
    /* '%' or '!' in an unquoted local part, or '@', '%' or '!' in a quoted
     * one (source-routing tricks): refused unless relaying */
    bool routing_chars;
    bool had_source_route; /* "<@a,@b:user@c>": the route was stripped */
    long long size;        /* SIZE=, -1 if absent */
    int body;              /* 0 absent, 7 for 7BIT, 8 for 8BITMIME */
    char params[512];      /* the ESMTP parameters as sent, "" if none */
    char reply[80];        /* storage for replies that name a parameter */
};

/* Replies of smtp_parse_path (MAIL / RCPT forms). */
#define SMTP_REPLY_MAIL_USAGE        "501 5.5.4 Syntax: MAIL FROM:<address>"
#define SMTP_REPLY_RCPT_USAGE        "501 5.5.4 Syntax: RCPT TO:<address>"
#define SMTP_REPLY_BAD_SENDER        "501 5.1.7 Bad sender address syntax"
#define SMTP_REPLY_BAD_RCPT          "501 5.1.3 Bad recipient address syntax"
#define SMTP_REPLY_SENDER_TOO_LONG   "501 5.1.7 Sender address too long"
#define SMTP_REPLY_RCPT_TOO_LONG     "501 5.1.3 Recipient address too long"
#define SMTP_REPLY_NON_ASCII         "553 5.6.7 Non-ASCII address not permitted without SMTPUTF8"
#define SMTP_REPLY_BAD_PARAMS        "501 5.5.4 Syntax error in parameters"
#define SMTP_REPLY_PARAMS_TOO_LONG   "501 5.5.4 Parameters too long"
#define SMTP_REPLY_BAD_SIZE          "501 5.5.4 Bad SIZE parameter"
#define SMTP_REPLY_BAD_BODY          "501 5.5.4 Bad BODY parameter"
#define SMTP_REPLY_UNSUPPORTED_PARAM "555 5.5.4 Unsupported parameter " /* + KEY */

/* Parses the argument of MAIL ("FROM:<path> params", IS_MAIL true) or RCPT
 * ("TO:<path> params").  The prefix is case-insensitive and may be followed
 * by spaces; the angle brackets are required (else the USAGE reply).
 * Inside them (RFC 5321 4.1.2): an optional source route "@a,@b:" (removed,
 * had_source_route set), a dot-atom or quoted-string local part of at most
 * SMTP_LOCAL_MAX bytes, "@", and an LDH domain (labels 1..63) or an address
 * literal "[192.0.2.1]" / "[IPv6:2001:db8::1]".  <> is allowed for MAIL
 * only; <postmaster> (any case, no domain) for RCPT only, stored as
 * "postmaster".  Content of the brackets longer than SMTP_PATH_MAX, or a
 * local part longer than SMTP_LOCAL_MAX: the TOO_LONG reply; any byte >=
 * 0x80 inside the brackets: SMTP_REPLY_NON_ASCII (SMTPUTF8 is not offered);
 * anything but spaces and parameters after the ">": the BAD reply.
 * Parameters are KEY or KEY=VALUE separated by spaces (RFC 5321 4.1.2
 * esmtp-param; duplicates refused).  MAIL knows SIZE=digits and
 * BODY=7BIT|8BITMIME; any other parameter, and every RCPT parameter, gets
 * "555 5.5.4 Unsupported parameter KEY" (KEY as sent, cut at 32 bytes,
 * written to OUT->reply).  Returns NULL on success, else the reply line. */
const char *smtp_parse_path(const char *arg, bool is_mail, struct smtp_path *out);

/* True if S is a syntactically valid domain or address literal for
 * EHLO/HELO ("[192.0.2.1]", "[IPv6:...]" included).  More lenient than for
 * addresses, as clients are: a single label ("mypc") and '_' in labels
 * ("my_pc.lan") are accepted; empty, spaces and control characters not. */
bool smtp_parse_helo_ok(const char *s);

#endif
