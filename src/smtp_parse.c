/*
 * smtp_parse: turns untrusted protocol bytes into a verb and argument, and a
 * MAIL/RCPT argument into a checked path and its ESMTP parameters
 * (RFC 5321 4.1.1, 4.1.2, 4.5.3.1).  Every reply line it can return is
 * named in smtp_parse.h.
 *
 * It must not do I/O, allocate, keep state between calls or read past the
 * length or NUL it was given: it is the first code that sees a peer's bytes
 * and is fuzzed (tests/fuzz/fuzz_smtp_parse.c).  It decides syntax only;
 * whether a syntactically valid address is acceptable is policy's job.
 */
#include "smtp_parse.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define SMTP_PARSE_LABEL_MAX 63
#define SMTP_PARSE_KEY_SHOWN 32

static const struct {
    enum smtp_verb verb;
    const char *name;
} smtp_parse_verbs[] = {
    {SMTP_HELO, "HELO"}, {SMTP_EHLO, "EHLO"},         {SMTP_MAIL, "MAIL"}, {SMTP_RCPT, "RCPT"},
    {SMTP_DATA, "DATA"}, {SMTP_RSET, "RSET"},         {SMTP_NOOP, "NOOP"}, {SMTP_QUIT, "QUIT"},
    {SMTP_VRFY, "VRFY"}, {SMTP_EXPN, "EXPN"},         {SMTP_HELP, "HELP"}, {SMTP_AUTH, "AUTH"},
    {SMTP_BDAT, "BDAT"}, {SMTP_STARTTLS, "STARTTLS"},
};

/* The replies that differ between MAIL (index 1) and RCPT (index 0). */
static const char *const smtp_parse_usage[2] = {SMTP_REPLY_RCPT_USAGE, SMTP_REPLY_MAIL_USAGE};
static const char *const smtp_parse_bad[2] = {SMTP_REPLY_BAD_RCPT, SMTP_REPLY_BAD_SENDER};
static const char *const smtp_parse_too_long[2] = {SMTP_REPLY_RCPT_TOO_LONG,
                                                   SMTP_REPLY_SENDER_TOO_LONG};

/* ---- character classes (ASCII only, independent of the locale) ---- */

static bool smtp_parse_is_alpha(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool smtp_parse_is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static bool smtp_parse_is_letdig(unsigned char c)
{
    return smtp_parse_is_alpha(c) || smtp_parse_is_digit(c);
}

static bool smtp_parse_is_control(unsigned char c)
{
    return (c < 0x20 && c != '\t') || c == 0x7f;
}

/* RFC 5322 atext. */
static bool smtp_parse_is_atext(unsigned char c)
{
    return smtp_parse_is_letdig(c) || (c != 0 && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

static bool smtp_parse_is_routing(unsigned char c)
{
    return c == '%' || c == '!' || c == '@';
}

static unsigned char smtp_parse_lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c - 'A' + 'a') : c;
}

/* ---- command lines ---- */

static const char *smtp_parse_verb_name(const char *s, size_t n, enum smtp_verb *verb)
{
    for (size_t i = 0; i < sizeof(smtp_parse_verbs) / sizeof(smtp_parse_verbs[0]); i++) {
        const char *name = smtp_parse_verbs[i].name;
        if (strlen(name) == n && strncasecmp(s, name, n) == 0) {
            *verb = smtp_parse_verbs[i].verb;
            return name;
        }
    }
    return NULL;
}

static bool smtp_parse_has_control(const char *line, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (smtp_parse_is_control((unsigned char)line[i]))
            return true;
    }
    return false;
}

static bool smtp_parse_is_blank(char c)
{
    return c == ' ' || c == '\t';
}

/* Copies LINE[A..LEN) without the white space around it into OUT->argbuf. */
static int smtp_parse_set_arg(struct smtp_cmd *out, const char *line, size_t a, size_t len)
{
    while (a < len && smtp_parse_is_blank(line[a]))
        a++;
    while (len > a && smtp_parse_is_blank(line[len - 1]))
        len--;
    if (len - a > SMTP_ARG_MAX)
        return -1;
    memcpy(out->argbuf, line + a, len - a);
    out->argbuf[len - a] = '\0';
    return 0;
}

int smtp_parse_command(const char *line, size_t len, struct smtp_cmd *out, const char **reply)
{
    out->verb = SMTP_UNKNOWN;
    out->name = "";
    out->argbuf[0] = '\0';
    out->arg = out->argbuf;
    if (smtp_parse_has_control(line, len)) {
        *reply = SMTP_REPLY_CONTROL_CHAR;
        return -1;
    }
    size_t v = 0;
    while (v < len && smtp_parse_is_alpha((unsigned char)line[v]))
        v++;
    if (v == 0 || (v < len && line[v] != ' '))
        return 0;
    enum smtp_verb verb;
    const char *name = smtp_parse_verb_name(line, v, &verb);
    if (name == NULL)
        return 0;
    if (smtp_parse_set_arg(out, line, v, len) < 0) {
        *reply = SMTP_REPLY_LINE_TOO_LONG;
        return -1;
    }
    out->verb = verb;
    out->name = name;
    return 0;
}

/* ---- domains and address literals ---- */

/* One label of N bytes: let-dig [*(let-dig / "-") let-dig], '_' allowed
 * inside when UNDERSCORE (HELO leniency). */
static bool smtp_parse_label_ok(const char *s, size_t n, bool underscore)
{
    if (n == 0 || n > SMTP_PARSE_LABEL_MAX)
        return false;
    if (!smtp_parse_is_letdig((unsigned char)s[0]) ||
        !smtp_parse_is_letdig((unsigned char)s[n - 1]))
        return false;
    for (size_t i = 1; i + 1 < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!smtp_parse_is_letdig(c) && c != '-' && !(underscore && c == '_'))
            return false;
    }
    return true;
}

/* RFC 5321 Domain: sub-domain *("." sub-domain), N bytes, no final dot. */
static bool smtp_parse_domain_ok(const char *s, size_t n, bool underscore)
{
    if (n == 0 || n > SMTP_DOMAIN_MAX)
        return false;
    size_t start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && s[i] != '.')
            continue;
        if (!smtp_parse_label_ok(s + start, i - start, underscore))
            return false;
        start = i + 1;
    }
    return true;
}

/* RFC 5321 address-literal of N bytes: "[IPv4]" or "[IPv6:addr]";
 * General-address-literal tags are refused. */
static bool smtp_parse_literal_ok(const char *s, size_t n)
{
    char text[INET6_ADDRSTRLEN + 8];
    unsigned char bin[16];
    if (n < 3 || s[0] != '[' || s[n - 1] != ']' || n - 2 >= sizeof(text))
        return false;
    memcpy(text, s + 1, n - 2);
    text[n - 2] = '\0';
    if (strncasecmp(text, "IPv6:", 5) == 0)
        return inet_pton(AF_INET6, text + 5, bin) == 1;
    return inet_pton(AF_INET, text, bin) == 1;
}

bool smtp_parse_helo_ok(const char *s)
{
    if (s == NULL || s[0] == '\0')
        return false;
    size_t n = strnlen(s, SMTP_DOMAIN_MAX + 1);
    if (s[0] == '[')
        return smtp_parse_literal_ok(s, n);
    return smtp_parse_domain_ok(s, n, true);
}

/* ---- paths ---- */

/* Length of the quoted-string at S (at most N bytes), 0 if invalid; sets
 * *ROUTING when it holds '@', '%' or '!'. */
static size_t smtp_parse_quoted(const char *s, size_t n, bool *routing)
{
    for (size_t i = 1; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"')
            return i + 1;
        if (c == '\\') {
            if (++i >= n)
                return 0;
            c = (unsigned char)s[i];
            if (c < 32 || c > 126)
                return 0;
        } else if (c < 32 || c > 126) {
            return 0;
        }
        *routing = *routing || smtp_parse_is_routing(c);
    }
    return 0;
}

/* Length of the dot-string at S (at most N bytes), 0 if invalid; sets
 * *ROUTING when it holds '%' or '!'. */
static size_t smtp_parse_dot_string(const char *s, size_t n, bool *routing)
{
    size_t i = 0;
    while (i < n && (smtp_parse_is_atext((unsigned char)s[i]) || s[i] == '.')) {
        if (s[i] == '.' && (i == 0 || s[i - 1] == '.'))
            return 0;
        *routing = *routing || smtp_parse_is_routing((unsigned char)s[i]);
        i++;
    }
    return (i > 0 && s[i - 1] == '.') ? 0 : i;
}

/* Length of the source route "@d1,@d2:" at S (N bytes), 0 if invalid. */
static size_t smtp_parse_source_route(const char *s, size_t n)
{
    size_t i = 0;
    while (i < n && s[i] == '@') {
        size_t d = ++i;
        while (i < n && s[i] != ',' && s[i] != ':')
            i++;
        if (i == n || !smtp_parse_domain_ok(s + d, i - d, false))
            return 0;
        if (s[i++] == ':')
            return i;
    }
    return 0;
}

/* The end of the path that starts with '<' at S: the first '>' outside a
 * quoted string, or NULL. */
static const char *smtp_parse_path_end(const char *s)
{
    bool quoted = false;
    for (s++; *s != '\0'; s++) {
        if (quoted && *s == '\\' && s[1] != '\0')
            s++;
        else if (*s == '"')
            quoted = !quoted;
        else if (*s == '>' && !quoted)
            return s;
    }
    return NULL;
}

static bool smtp_parse_ascii(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)s[i] >= 0x80)
            return false;
    }
    return true;
}

static bool smtp_parse_is_postmaster(const char *s, size_t n)
{
    return n == 10 && strncasecmp(s, "postmaster", 10) == 0;
}

/* Checks the mailbox "local@domain" (S, N bytes) and stores it in OUT. */
static const char *smtp_parse_mailbox(const char *s, size_t n, bool is_mail, struct smtp_path *out)
{
    size_t local = (n > 0 && s[0] == '"') ? smtp_parse_quoted(s, n, &out->routing_chars)
                                          : smtp_parse_dot_string(s, n, &out->routing_chars);
    if (local > SMTP_LOCAL_MAX)
        return smtp_parse_too_long[is_mail];
    if (local == 0 || local >= n || s[local] != '@')
        return smtp_parse_bad[is_mail];
    const char *dom = s + local + 1;
    size_t dlen = n - local - 1;
    bool ok = (dlen > 0 && dom[0] == '[') ? smtp_parse_literal_ok(dom, dlen)
                                          : smtp_parse_domain_ok(dom, dlen, false);
    if (!ok)
        return smtp_parse_bad[is_mail];
    memcpy(out->addr, s, n);
    out->addr[n] = '\0';
    for (size_t i = 0; i < dlen; i++)
        out->domain[i] = (char)smtp_parse_lower((unsigned char)dom[i]);
    out->domain[dlen] = '\0';
    return NULL;
}

/* Checks the content of the brackets (S, N bytes) and stores it in OUT. */
static const char *smtp_parse_inside(const char *s, size_t n, bool is_mail, struct smtp_path *out)
{
    if (!smtp_parse_ascii(s, n))
        return SMTP_REPLY_NON_ASCII;
    if (n > SMTP_PATH_MAX)
        return smtp_parse_too_long[is_mail];
    if (n == 0) {
        out->null_path = true;
        return is_mail ? NULL : smtp_parse_bad[is_mail];
    }
    if (!is_mail && smtp_parse_is_postmaster(s, n)) {
        strcpy(out->addr, "postmaster");
        return NULL;
    }
    if (s[0] == '@') {
        size_t route = smtp_parse_source_route(s, n);
        if (route == 0)
            return smtp_parse_bad[is_mail];
        out->had_source_route = true;
        s += route;
        n -= route;
    }
    return smtp_parse_mailbox(s, n, is_mail, out);
}

/* ---- ESMTP parameters ---- */

/* esmtp-keyword: (ALPHA / DIGIT) *(ALPHA / DIGIT / "-"), N bytes. */
static bool smtp_parse_keyword_ok(const char *s, size_t n)
{
    if (n == 0 || !smtp_parse_is_letdig((unsigned char)s[0]))
        return false;
    for (size_t i = 1; i < n; i++) {
        if (!smtp_parse_is_letdig((unsigned char)s[i]) && s[i] != '-')
            return false;
    }
    return true;
}

/* esmtp-value: 1*(%d33-60 / %d62-126), N bytes. */
static bool smtp_parse_value_ok(const char *s, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 33 || c > 126 || c == '=')
            return false;
    }
    return true;
}

static bool smtp_parse_key_is(const char *key, size_t n, const char *name)
{
    return strlen(name) == n && strncasecmp(key, name, n) == 0;
}

/* SIZE=digits (VAL may be NULL when there was no "="). */
static const char *smtp_parse_size(const char *val, size_t n, struct smtp_path *out)
{
    long long size = 0;
    if (val == NULL || out->size >= 0)
        return SMTP_REPLY_BAD_SIZE;
    for (size_t i = 0; i < n; i++) {
        if (!smtp_parse_is_digit((unsigned char)val[i]))
            return SMTP_REPLY_BAD_SIZE;
        if (__builtin_mul_overflow(size, 10, &size) ||
            __builtin_add_overflow(size, val[i] - '0', &size))
            return SMTP_REPLY_BAD_SIZE;
    }
    out->size = size;
    return NULL;
}

/* BODY=7BIT|8BITMIME (VAL may be NULL). */
static const char *smtp_parse_body(const char *val, size_t n, struct smtp_path *out)
{
    if (val == NULL || out->body != 0)
        return SMTP_REPLY_BAD_BODY;
    if (smtp_parse_key_is(val, n, "7BIT"))
        out->body = 7;
    else if (smtp_parse_key_is(val, n, "8BITMIME"))
        out->body = 8;
    else
        return SMTP_REPLY_BAD_BODY;
    return NULL;
}

static const char *smtp_parse_unsupported(const char *key, size_t n, struct smtp_path *out)
{
    int shown = (int)(n > SMTP_PARSE_KEY_SHOWN ? SMTP_PARSE_KEY_SHOWN : n);
    snprintf(out->reply, sizeof(out->reply), "%s%.*s", SMTP_REPLY_UNSUPPORTED_PARAM, shown, key);
    return out->reply;
}

/* One parameter "KEY" or "KEY=VALUE" (S, N bytes). */
static const char *smtp_parse_param(const char *s, size_t n, bool is_mail, struct smtp_path *out)
{
    const char *eq = memchr(s, '=', n);
    size_t klen = eq ? (size_t)(eq - s) : n;
    const char *val = eq ? eq + 1 : NULL;
    size_t vlen = eq ? n - klen - 1 : 0;
    if (!smtp_parse_keyword_ok(s, klen) || (val != NULL && !smtp_parse_value_ok(val, vlen)))
        return SMTP_REPLY_BAD_PARAMS;
    if (is_mail && smtp_parse_key_is(s, klen, "SIZE"))
        return smtp_parse_size(val, vlen, out);
    if (is_mail && smtp_parse_key_is(s, klen, "BODY"))
        return smtp_parse_body(val, vlen, out);
    return smtp_parse_unsupported(s, klen, out);
}

/* The text after '>' (S): nothing, or spaces and space-separated
 * parameters. */
static const char *smtp_parse_params(const char *s, bool is_mail, struct smtp_path *out)
{
    if (*s == '\0')
        return NULL;
    if (*s != ' ')
        return smtp_parse_bad[is_mail];
    while (*s == ' ')
        s++;
    size_t n = strlen(s);
    while (n > 0 && s[n - 1] == ' ')
        n--;
    if (n >= sizeof(out->params))
        return SMTP_REPLY_PARAMS_TOO_LONG;
    memcpy(out->params, s, n);
    out->params[n] = '\0';
    for (size_t i = 0; i < n;) {
        size_t e = i;
        while (e < n && s[e] != ' ')
            e++;
        const char *reply = smtp_parse_param(s + i, e - i, is_mail, out);
        if (reply != NULL)
            return reply;
        i = e;
        while (i < n && s[i] == ' ')
            i++;
    }
    return NULL;
}

/* Empties OUT except for OUT->reply, which may hold the reply. */
static void smtp_parse_path_init(struct smtp_path *out)
{
    out->addr[0] = '\0';
    out->domain[0] = '\0';
    out->null_path = false;
    out->routing_chars = false;
    out->had_source_route = false;
    out->size = -1;
    out->body = 0;
    out->params[0] = '\0';
}

/* After "FROM:" / "TO:" (case-insensitive) and any spaces: the '<', or
 * NULL. */
static const char *smtp_parse_after_prefix(const char *arg, bool is_mail)
{
    const char *prefix = is_mail ? "FROM:" : "TO:";
    size_t n = strlen(prefix);
    if (strncasecmp(arg, prefix, n) != 0)
        return NULL;
    arg += n;
    while (*arg == ' ')
        arg++;
    return *arg == '<' ? arg : NULL;
}

const char *smtp_parse_path(const char *arg, bool is_mail, struct smtp_path *out)
{
    out->reply[0] = '\0';
    smtp_parse_path_init(out);
    const char *lt = smtp_parse_after_prefix(arg, is_mail);
    if (lt == NULL)
        return smtp_parse_usage[is_mail];
    const char *gt = smtp_parse_path_end(lt);
    if (gt == NULL)
        return smtp_parse_bad[is_mail];
    const char *reply = smtp_parse_inside(lt + 1, (size_t)(gt - lt - 1), is_mail, out);
    if (reply == NULL)
        reply = smtp_parse_params(gt + 1, is_mail, out);
    if (reply != NULL)
        smtp_parse_path_init(out);
    return reply;
}
