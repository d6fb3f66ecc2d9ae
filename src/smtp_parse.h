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

#define SMTP_PATH_MAX 256   /* RFC 5321 4.5.3.1.3, without the brackets */
#define SMTP_DOMAIN_MAX 255 /* RFC 5321 4.5.3.1.2 */
#define SMTP_LOCAL_MAX 64   /* RFC 5321 4.5.3.1.1 */

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

struct smtp_cmd {
    enum smtp_verb verb;
    const char *name; /* canonical upper-case verb, "" for unknown */
    const char *arg;  /* text after the verb and one space, "" if none */
};

/* Splits LINE (NUL-terminated, CRLF already removed) into verb and argument.
 * Verbs are case-insensitive.  Returns 0, or -1 if the line holds a NUL or
 * other control character than TAB (REPLY is then set). */
int smtp_parse_command(const char *line, size_t len, struct smtp_cmd *out, const char **reply);

struct smtp_path {
    char addr[SMTP_PATH_MAX + 1];     /* "local@domain" as sent, "" for <> */
    char domain[SMTP_DOMAIN_MAX + 1]; /* lower-case, "" for <> or <postmaster> */
    bool null_path;                   /* MAIL FROM:<> */
    bool routing_chars;  /* '%' or '!' in the local part, or a quoted local
                            part holding '@': refused unless relaying */
    bool had_source_route; /* "<@a,@b:user@c>": the route was stripped */
    long long size;      /* SIZE=, -1 if absent */
    int body;            /* 0 absent, 7 for 7BIT, 8 for 8BITMIME */
    char params[512];    /* the ESMTP parameters as sent, "" if none */
};

/* Parses the argument of MAIL ("FROM:<path> params", IS_MAIL true) or RCPT
 * ("TO:<path> params").  Accepts optional space after the colon, and
 * <postmaster> without a domain for RCPT.  Returns NULL on success, else the
 * reply line to send, e.g. "501 5.1.7 Bad sender address syntax". Unknown
 * parameters get "555 5.5.4 ...". */
const char *smtp_parse_path(const char *arg, bool is_mail, struct smtp_path *out);

/* True if S is a syntactically valid domain or address literal for
 * EHLO/HELO ("[192.0.2.1]", "[IPv6:...]" included). */
bool smtp_parse_helo_ok(const char *s);

#endif
