/*
 * smtp_out: the outbound SMTP client and the destination TLS levels.  Every
 * state change goes through smtp_out_enter_state.  Must not: send MAIL,
 * AUTH or message text before the TLS level of the destination is met, or
 * act on a byte the next hop sent in clear after "220" to STARTTLS.
 */
#include "smtp_out.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conn.h"
#include "maillog.h"
#include "route.h"
#include "tls.h"

#define SMTP_OUT_REPLY_MAX 4096
#define SMTP_OUT_LINE_MAX  2048
#define SMTP_OUT_QUEUE     8

enum smtp_out_state {
    SMTP_OUT_CONNECT,
    SMTP_OUT_IMPLICIT, /* TLS before the greeting */
    SMTP_OUT_GREETING,
    SMTP_OUT_EHLO,
    SMTP_OUT_HELO,
    SMTP_OUT_STARTTLS,
    SMTP_OUT_HANDSHAKE,
    SMTP_OUT_EHLO_TLS,
    SMTP_OUT_AUTH,
    SMTP_OUT_AUTH_USER,
    SMTP_OUT_AUTH_PASS,
    SMTP_OUT_READY,
    SMTP_OUT_QUIT,
    SMTP_OUT_DEAD
};

struct smtp_out_pending {
    smtp_out_cb cb;
    void *arg;
    bool sent;
    char line[1024]; /* until sent */
};

struct smtp_out {
    struct smtp_out_opts opts;
    char domain[256];
    char helo[256];
    struct smtp_out_target *targets;
    size_t ntargets, next_target;
    const struct smtp_out_target *cur;
    struct conn *conn; /* the current connection, NULL between attempts */
    int conns;         /* connections not yet closed */
    bool owner_gone;
    bool opening;      /* inside smtp_out_open: no callback may run */
    bool failed_early; /* every target failed before smtp_out_open returned */
    enum smtp_out_state state;
    uint64_t dcid;
    char local_ip[INET6_ADDRSTRLEN], peer_ip[INET6_ADDRSTRLEN];
    int port;
    bool plaintext_retry; /* this attempt skips STARTTLS (fallback) */
    bool handshake_failed;
    /* what EHLO advertised */
    bool ext_starttls, ext_pipelining, ext_auth_plain, ext_auth_login, ext_8bitmime, ext_size;
    bool tls_up;
    smtp_out_cb ready;
    void *ready_arg;
    char last_reply[1024]; /* the reply for the client if every attempt fails */
    /* replies */
    char reply[SMTP_OUT_REPLY_MAX];
    size_t reply_len;
    char in[SMTP_OUT_LINE_MAX];
    size_t in_len;
    /* commands awaiting replies */
    struct smtp_out_pending queue[SMTP_OUT_QUEUE];
    size_t qhead, qlen;
    /* message text, gathered into writes of up to a buffer each */
    bool at_line_start;
    size_t body_len;
    char body[16384];
    void (*drain)(void *arg);
    void *drain_arg;
};

static void smtp_out_next_attempt(struct smtp_out *o);
static void smtp_out_after_tls(struct smtp_out *o);
static void smtp_out_pump(struct smtp_out *o);

static void smtp_out_enter_state(struct smtp_out *o, enum smtp_out_state st)
{
    o->state = st;
}

/* ---- writing ---- */

static void smtp_out_send(struct smtp_out *o, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void smtp_out_send(struct smtp_out *o, const char *fmt, ...)
{
    char line[SMTP_OUT_LINE_MAX];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line) - 2, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n > sizeof(line) - 3)
        return;
    memcpy(line + n, "\r\n", 2);
    conn_write(o->conn, line, (size_t)n + 2);
    explicit_bzero(line, sizeof(line)); /* AUTH lines carry a secret */
}

static void smtp_out_arm(struct smtp_out *o, int secs)
{
    conn_set_timeout(o->conn, secs > 0 ? (uint64_t)secs * 1000 : 0);
}

/* ---- connections ---- */

static void smtp_out_free(struct smtp_out *o)
{
    free(o->targets);
    free(o);
}

static void smtp_out_on_close(struct conn *c)
{
    struct smtp_out *o = c->data;
    free(c);
    if (--o->conns == 0 && o->owner_gone)
        smtp_out_free(o);
}

static void smtp_out_drop_conn(struct smtp_out *o)
{
    if (o->conn == NULL)
        return;
    if (o->dcid != 0 && o->state != SMTP_OUT_CONNECT)
        maillog_info("DCID %llu close", (unsigned long long)o->dcid);
    conn_close(o->conn);
    o->conn = NULL;
}

/* ---- failures ---- */

static const char *smtp_out_reason_text(enum smtp_out_failure f)
{
    switch (f) {
    case SMTP_OUT_F_CONNECT:
        return "connection failed";
    case SMTP_OUT_F_NO_TLS:
        return "TLS required but not offered";
    case SMTP_OUT_F_HANDSHAKE:
        return "TLS handshake failed";
    case SMTP_OUT_F_VERIFY:
        return "certificate verification failed";
    case SMTP_OUT_F_AUTH:
        return "authentication failed";
    default:
        return "unexpected SMTP response";
    }
}

const char *smtp_out_failure_text(enum smtp_out_failure f, const char *domain, const char *detail,
                                  char *buf, size_t len)
{
    static const char *const codes[] = {
        [SMTP_OUT_F_CONNECT] = "451 4.4.1",   [SMTP_OUT_F_NO_TLS] = "451 4.7.4",
        [SMTP_OUT_F_HANDSHAKE] = "451 4.7.5", [SMTP_OUT_F_VERIFY] = "451 4.7.5",
        [SMTP_OUT_F_AUTH] = "451 4.7.0",      [SMTP_OUT_F_PROTOCOL] = "451 4.4.0",
    };
    char clean[300];
    maillog_clean(clean, sizeof(clean), detail);
    snprintf(buf, len, "%s Delivery to %s failed: %s (%s)", codes[f], domain,
             smtp_out_reason_text(f), clean);
    return buf;
}

/* The reply the client gets when this is the last failure. */
static void smtp_out_failure_reply(struct smtp_out *o, enum smtp_out_failure f, const char *detail)
{
    smtp_out_failure_text(f, o->domain, detail, o->last_reply, sizeof(o->last_reply));
}

static bool smtp_out_level_required(const struct smtp_out *o)
{
    return o->opts.level == TLS_OUT_REQUIRED || o->opts.level == TLS_OUT_REQUIRED_VERIFY;
}

/* The required level could not be met: both ESA lines and the warning
 * that names the destination (SPEC section 7). */
static void smtp_out_log_required(struct smtp_out *o, const char *why)
{
    maillog_info("DCID %llu IP %s TLS was required but could not be successfully negotiated",
                 (unsigned long long)o->dcid, o->peer_ip);
    maillog_warning("TLS %s for %s could not be met by %s (%s): %s",
                    config_tls_out_name(o->opts.level), o->domain, o->cur->host, o->peer_ip, why);
    if (o->opts.on_required_failure != NULL && !o->owner_gone) {
        char text[700];
        snprintf(text, sizeof(text), "TLS %s: %s (%s): %s", config_tls_out_name(o->opts.level),
                 o->cur->host[0] ? o->cur->host : o->peer_ip, o->peer_ip, why);
        o->opts.on_required_failure(o->opts.alert_arg, o->domain, text);
    }
}

/* Ends the current attempt; tries a plain-text retry, the next target, or
 * gives up with the reply for the client. */
static void smtp_out_fail(struct smtp_out *o, enum smtp_out_failure f, const char *detail)
{
    char clean[300];
    maillog_clean(clean, sizeof(clean), detail);
    if (o->local_ip[0] == '\0' && o->cur != NULL) /* never connected: the route's interface */
        route_source_text(&o->cur->addr, o->local_ip, sizeof(o->local_ip));
    maillog_info("Connection Error: DCID %llu domain: %s IP: %s port: %d details: %s "
                 "interface: %s reason: %s",
                 (unsigned long long)o->dcid, o->domain, o->peer_ip, o->port, clean,
                 o->local_ip[0] ? o->local_ip : "unknown", smtp_out_reason_text(f));
    smtp_out_failure_reply(o, f, detail);
    bool retry_clear = f == SMTP_OUT_F_HANDSHAKE && !smtp_out_level_required(o) &&
                       o->opts.fallback_plaintext && !o->plaintext_retry &&
                       !(o->opts.route && o->opts.route->implicit_tls);
    smtp_out_drop_conn(o);
    if (retry_clear) {
        o->plaintext_retry = true;
        o->next_target--; /* the same address again, without STARTTLS */
    } else {
        o->plaintext_retry = false;
    }
    smtp_out_next_attempt(o);
}

/* The session broke after it was ready: every command waiting for a reply
 * gets the failure. */
static void smtp_out_lost(struct smtp_out *o, const char *why)
{
    char reply[400];
    snprintf(reply, sizeof(reply), "451 4.4.2 Connection to the next hop lost: %s", why);
    smtp_out_enter_state(o, SMTP_OUT_DEAD);
    if (o->dcid)
        maillog_info("Connection Error: DCID %llu domain: %s IP: %s port: %d details: %s "
                     "interface: %s reason: connection lost",
                     (unsigned long long)o->dcid, o->domain, o->peer_ip, o->port, why,
                     o->local_ip[0] ? o->local_ip : "unknown");
    smtp_out_drop_conn(o);
    while (o->qlen > 0 && !o->owner_gone) {
        struct smtp_out_pending p = o->queue[o->qhead];
        o->qhead = (o->qhead + 1) % SMTP_OUT_QUEUE;
        o->qlen--;
        if (p.cb != NULL)
            p.cb(p.arg, reply);
    }
    /* A writer held back by a full socket would wait for a drain that no
     * longer comes: let it go on (what it writes now is dropped, and the
     * end of the message is answered with the 451 above).  Last: the
     * writer may end the session. */
    if (o->drain != NULL && !o->owner_gone)
        o->drain(o->drain_arg);
}

/* ---- the handshake phase ---- */

static void smtp_out_ready(struct smtp_out *o)
{
    smtp_out_enter_state(o, SMTP_OUT_READY);
    smtp_out_arm(o, 0);
    smtp_out_cb cb = o->ready;
    o->ready = NULL;
    if (cb != NULL)
        cb(o->ready_arg, NULL);
}

static void smtp_out_parse_ehlo(struct smtp_out *o)
{
    o->ext_starttls = o->ext_pipelining = o->ext_auth_plain = o->ext_auth_login = false;
    o->ext_8bitmime = o->ext_size = false;
    char *save = NULL;
    for (char *line = strtok_r(o->reply, "\n", &save); line != NULL;
         line = strtok_r(NULL, "\n", &save)) {
        const char *kw = line + (strlen(line) > 4 ? 4 : strlen(line));
        if (strncasecmp(kw, "STARTTLS", 8) == 0)
            o->ext_starttls = true;
        else if (strncasecmp(kw, "PIPELINING", 10) == 0)
            o->ext_pipelining = true;
        else if (strncasecmp(kw, "8BITMIME", 8) == 0)
            o->ext_8bitmime = true;
        else if (strncasecmp(kw, "SIZE", 4) == 0)
            o->ext_size = true;
        else if (strncasecmp(kw, "AUTH", 4) == 0 && (kw[4] == ' ' || kw[4] == '=')) {
            for (const char *m = kw + 5; *m; m++) {
                if (strncasecmp(m, "PLAIN", 5) == 0)
                    o->ext_auth_plain = true;
                if (strncasecmp(m, "LOGIN", 5) == 0)
                    o->ext_auth_login = true;
            }
        }
    }
}

static void smtp_out_start_tls(struct smtp_out *o)
{
    smtp_out_enter_state(o, SMTP_OUT_HANDSHAKE);
    o->in_len = 0; /* nothing sent in clear before the handshake counts */
    const char *sni = o->cur->host[0] ? o->cur->host : NULL;
    if (conn_start_tls(o->conn, o->opts.ctx, false, sni, false) != 0)
        smtp_out_fail(o, SMTP_OUT_F_HANDSHAKE, "cannot create TLS session");
}

/* After EHLO (or HELO) in clear: decide about STARTTLS by the level. */
static void smtp_out_choose_tls(struct smtp_out *o)
{
    if (o->tls_up || o->opts.level == TLS_OUT_NONE || o->plaintext_retry) {
        smtp_out_after_tls(o);
        return;
    }
    if (o->ext_starttls) {
        smtp_out_enter_state(o, SMTP_OUT_STARTTLS);
        smtp_out_send(o, "STARTTLS");
        return;
    }
    if (smtp_out_level_required(o)) {
        maillog_tls_failed("DCID", o->dcid, "STARTTLS not offered");
        smtp_out_log_required(o, "STARTTLS not offered");
        smtp_out_fail(o, SMTP_OUT_F_NO_TLS, "STARTTLS not offered");
        return;
    }
    smtp_out_after_tls(o);
}

static const char *smtp_out_auth_secret(const struct conf_route *r, char *buf, size_t len)
{
    if (r->auth_password_env != NULL) {
        const char *v = getenv(r->auth_password_env);
        snprintf(buf, len, "%s", v ? v : "");
        return buf;
    }
    int fd = open(r->auth_password_file, O_RDONLY | O_CLOEXEC);
    ssize_t n = fd >= 0 ? read(fd, buf, len - 1) : -1;
    if (fd >= 0)
        close(fd);
    buf[n > 0 ? n : 0] = '\0';
    buf[strcspn(buf, "\r\n")] = '\0';
    return buf;
}

static void smtp_out_b64(const unsigned char *in, size_t n, char *out, size_t outlen)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;
    for (size_t i = 0; i < n && o + 5 < outlen; i += 3) {
        unsigned v = (unsigned)in[i] << 16;
        if (i + 1 < n)
            v |= (unsigned)in[i + 1] << 8;
        if (i + 2 < n)
            v |= in[i + 2];
        out[o++] = tab[(v >> 18) & 63];
        out[o++] = tab[(v >> 12) & 63];
        out[o++] = i + 1 < n ? tab[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < n ? tab[v & 63] : '=';
    }
    out[o] = '\0';
}

/* AUTH PLAIN (preferred) or LOGIN, only inside TLS. */
static void smtp_out_auth(struct smtp_out *o)
{
    const struct conf_route *r = o->opts.route;
    if (!o->tls_up) {
        smtp_out_fail(o, SMTP_OUT_F_AUTH, "AUTH is never sent without TLS");
        return;
    }
    if (!o->ext_auth_plain && !o->ext_auth_login) {
        smtp_out_fail(o, SMTP_OUT_F_AUTH, "next hop offers neither AUTH PLAIN nor AUTH LOGIN");
        return;
    }
    if (!o->ext_auth_plain) {
        smtp_out_enter_state(o, SMTP_OUT_AUTH_USER);
        smtp_out_send(o, "AUTH LOGIN");
        return;
    }
    char secret[1024], plain[1400], b64[2000];
    smtp_out_auth_secret(r, secret, sizeof(secret));
    int n = snprintf(plain, sizeof(plain), "%c%s%c%s", 0, r->auth_username, 0, secret);
    smtp_out_b64((unsigned char *)plain, n > 0 ? (size_t)n : 0, b64, sizeof(b64));
    smtp_out_enter_state(o, SMTP_OUT_AUTH);
    smtp_out_send(o, "AUTH PLAIN %s", b64);
    explicit_bzero(secret, sizeof(secret));
    explicit_bzero(plain, sizeof(plain));
    explicit_bzero(b64, sizeof(b64));
}

static void smtp_out_auth_login_step(struct smtp_out *o)
{
    const struct conf_route *r = o->opts.route;
    char secret[1024], b64[1400];
    if (o->state == SMTP_OUT_AUTH_USER) {
        smtp_out_b64((const unsigned char *)r->auth_username, strlen(r->auth_username), b64,
                     sizeof(b64));
        smtp_out_enter_state(o, SMTP_OUT_AUTH_PASS);
    } else {
        smtp_out_auth_secret(r, secret, sizeof(secret));
        smtp_out_b64((unsigned char *)secret, strlen(secret), b64, sizeof(b64));
        explicit_bzero(secret, sizeof(secret));
        smtp_out_enter_state(o, SMTP_OUT_AUTH);
    }
    smtp_out_send(o, "%s", b64);
    explicit_bzero(b64, sizeof(b64));
}

/* TLS is settled (up, or not required): AUTH if configured, then ready. */
static void smtp_out_after_tls(struct smtp_out *o)
{
    if (o->opts.route != NULL && o->opts.route->auth_username != NULL)
        smtp_out_auth(o);
    else
        smtp_out_ready(o);
}

/* The verify levels: judge the certificate against the route host, or the
 * MX host and the recipient domain. */
static bool smtp_out_verify(struct smtp_out *o)
{
    bool verify =
        o->opts.level == TLS_OUT_PREFERRED_VERIFY || o->opts.level == TLS_OUT_REQUIRED_VERIFY;
    const struct tls *t = conn_tls(o->conn);
    char subject[512], issuer[512], expiry[64];
    maillog_info("DCID %llu TLS peer certificate subject %s issuer %s not after %s",
                 (unsigned long long)o->dcid, tls_peer_subject(t, subject, sizeof(subject)),
                 tls_peer_issuer(t, issuer, sizeof(issuer)),
                 tls_peer_not_after(t, expiry, sizeof(expiry)));
    if (!verify)
        return true;
    const char *names[2] = {o->cur->host, o->opts.route ? NULL : o->domain};
    char matched[256], reason[512];
    enum tls_verify v =
        tls_verify_peer(t, names, 2, matched, sizeof(matched), reason, sizeof(reason));
    const char *policy = config_tls_out_name(o->opts.level);
    if (v == TLS_VERIFY_OK) {
        maillog_info("DCID %llu TLS verify ok host %s policy %s", (unsigned long long)o->dcid,
                     matched, policy);
        return true;
    }
    maillog_info("DCID %llu TLS verify failed host %s policy %s reason: %s",
                 (unsigned long long)o->dcid, o->cur->host, policy, reason);
    if (o->opts.level == TLS_OUT_PREFERRED_VERIFY)
        return true;
    smtp_out_log_required(o, reason);
    smtp_out_fail(o, SMTP_OUT_F_VERIFY, reason);
    return false;
}

/* The handshake failed (an error, or the peer closed in the middle). */
static void smtp_out_handshake_failed(struct smtp_out *o, const char *why)
{
    maillog_tls_failed("DCID", o->dcid, why);
    if (smtp_out_level_required(o))
        smtp_out_log_required(o, why);
    smtp_out_fail(o, SMTP_OUT_F_HANDSHAKE, why);
}

static void smtp_out_on_tls(struct conn *c, int status)
{
    struct smtp_out *o = c->data;
    if (status != 0) {
        char why[300];
        snprintf(why, sizeof(why), "%s", conn_tls_error(c));
        smtp_out_handshake_failed(o, why);
        return;
    }
    const struct tls *t = conn_tls(c);
    maillog_tls_success("DCID", o->dcid, tls_protocol(t), tls_cipher(t));
    o->tls_up = true;
    if (!smtp_out_verify(o))
        return;
    if (o->state == SMTP_OUT_IMPLICIT) {
        smtp_out_enter_state(o, SMTP_OUT_GREETING);
        smtp_out_arm(o, o->opts.command_timeout);
        return;
    }
    smtp_out_enter_state(o, SMTP_OUT_EHLO_TLS);
    smtp_out_send(o, "EHLO %s", o->helo);
}

static void smtp_out_auth_failed(struct smtp_out *o)
{
    maillog_warning("DCID %llu AUTH failed for %s at %s: %s", (unsigned long long)o->dcid,
                    o->opts.route->auth_username, o->cur->host, o->reply);
    smtp_out_fail(o, SMTP_OUT_F_AUTH, o->reply);
}

/* One complete reply during the handshake phase. */
static void smtp_out_handshake_reply(struct smtp_out *o, int code)
{
    switch (o->state) {
    case SMTP_OUT_GREETING:
        if (code != 220) {
            smtp_out_fail(o, SMTP_OUT_F_PROTOCOL, o->reply);
            return;
        }
        smtp_out_enter_state(o, SMTP_OUT_EHLO);
        smtp_out_send(o, "EHLO %s", o->helo);
        return;
    case SMTP_OUT_EHLO:
    case SMTP_OUT_EHLO_TLS:
        if (code == 250) {
            smtp_out_parse_ehlo(o);
            if (o->state == SMTP_OUT_EHLO)
                smtp_out_choose_tls(o);
            else
                smtp_out_after_tls(o);
        } else if (o->state == SMTP_OUT_EHLO && !smtp_out_level_required(o)) {
            smtp_out_enter_state(o, SMTP_OUT_HELO); /* RFC 5321 3.2 */
            smtp_out_send(o, "HELO %s", o->helo);
        } else if (o->state == SMTP_OUT_EHLO && !o->tls_up) {
            /* HELO cannot offer STARTTLS: the required level cannot be met */
            maillog_tls_failed("DCID", o->dcid, "EHLO refused, STARTTLS impossible");
            smtp_out_log_required(o, o->reply);
            smtp_out_fail(o, SMTP_OUT_F_NO_TLS, o->reply);
        } else {
            smtp_out_fail(o, SMTP_OUT_F_PROTOCOL, o->reply);
        }
        return;
    case SMTP_OUT_HELO:
        if (code != 250) {
            smtp_out_fail(o, SMTP_OUT_F_PROTOCOL, o->reply);
            return;
        }
        o->ext_starttls = false;
        smtp_out_choose_tls(o);
        return;
    case SMTP_OUT_STARTTLS:
        if (code == 220) {
            smtp_out_start_tls(o);
            return;
        }
        maillog_tls_failed("DCID", o->dcid, "STARTTLS unexpected response");
        if (smtp_out_level_required(o)) {
            smtp_out_log_required(o, o->reply);
            smtp_out_fail(o, SMTP_OUT_F_NO_TLS, o->reply);
        } else {
            smtp_out_after_tls(o); /* preferred: STARTTLS refused, go on in clear */
        }
        return;
    case SMTP_OUT_AUTH:
        if (code == 235) {
            maillog_info("DCID %llu AUTH success user %s", (unsigned long long)o->dcid,
                         o->opts.route->auth_username);
            smtp_out_ready(o);
        } else {
            smtp_out_auth_failed(o);
        }
        return;
    case SMTP_OUT_AUTH_USER:
    case SMTP_OUT_AUTH_PASS:
        if (code == 334) {
            smtp_out_auth_login_step(o);
        } else {
            smtp_out_auth_failed(o);
        }
        return;
    default:
        return;
    }
}

/* ---- replies ---- */

static void smtp_out_command_reply(struct smtp_out *o)
{
    if (o->qlen == 0) {
        smtp_out_lost(o, "reply without a command");
        return;
    }
    struct smtp_out_pending p = o->queue[o->qhead];
    o->qhead = (o->qhead + 1) % SMTP_OUT_QUEUE;
    o->qlen--;
    if (o->qlen == 0)
        smtp_out_arm(o, 0);
    if (o->state == SMTP_OUT_QUIT && o->qlen == 0) { /* the reply to QUIT */
        smtp_out_drop_conn(o);
        return;
    }
    smtp_out_pump(o);
    if (p.cb != NULL)
        p.cb(p.arg, o->reply);
}

/* A complete reply is in o->reply (lines joined by "\r\n"). */
static void smtp_out_on_reply(struct smtp_out *o)
{
    int code = atoi(o->reply);
    if (o->state < SMTP_OUT_READY)
        smtp_out_handshake_reply(o, code);
    else
        smtp_out_command_reply(o);
}

/* Adds one reply line; returns 1 when the reply is complete, -1 if the
 * line is not a valid reply line. */
static int smtp_out_reply_line(struct smtp_out *o, char *line, size_t len)
{
    if (len < 3 || line[0] < '2' || line[0] > '5' || line[1] < '0' || line[1] > '9' ||
        line[2] < '0' || line[2] > '9' || (len > 3 && line[3] != ' ' && line[3] != '-'))
        return -1;
    if (o->reply_len > 0 && memcmp(o->reply, line, 3) != 0)
        return -1;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)line[i] < 0x20 && line[i] != '\t')
            line[i] = '?';
    size_t room = sizeof(o->reply) - o->reply_len - 3;
    size_t n = len < room ? len : room;
    if (o->reply_len > 0) {
        memcpy(o->reply + o->reply_len, "\r\n", 2);
        o->reply_len += 2;
    }
    memcpy(o->reply + o->reply_len, line, n);
    o->reply_len += n;
    o->reply[o->reply_len] = '\0';
    return len == 3 || line[3] == ' ' ? 1 : 0;
}

static void smtp_out_on_data(struct conn *c, const char *buf, size_t len)
{
    struct smtp_out *o = c->data;
    while (len > 0 && o->conn == c && o->state != SMTP_OUT_HANDSHAKE) {
        size_t n = len < sizeof(o->in) - o->in_len ? len : sizeof(o->in) - o->in_len;
        memcpy(o->in + o->in_len, buf, n);
        o->in_len += n;
        buf += n;
        len -= n;
        char *lf;
        while (o->conn == c && o->state != SMTP_OUT_HANDSHAKE &&
               (lf = memchr(o->in, '\n', o->in_len)) != NULL) {
            size_t linelen = (size_t)(lf - o->in);
            size_t used = linelen + 1;
            if (linelen > 0 && o->in[linelen - 1] == '\r')
                linelen--;
            o->in[linelen] = '\0';
            int r = smtp_out_reply_line(o, o->in, linelen);
            memmove(o->in, o->in + used, o->in_len - used);
            o->in_len -= used;
            if (r < 0) {
                o->reply_len = 0;
                if (o->state < SMTP_OUT_READY)
                    smtp_out_fail(o, SMTP_OUT_F_PROTOCOL, "invalid SMTP reply");
                else
                    smtp_out_lost(o, "invalid SMTP reply");
                return;
            }
            if (r == 1) {
                o->reply_len = 0;
                smtp_out_on_reply(o);
            }
        }
        if (o->conn == c && o->in_len == sizeof(o->in)) {
            smtp_out_lost(o, "reply line too long");
            return;
        }
    }
}

static void smtp_out_on_eof(struct conn *c, int status)
{
    struct smtp_out *o = c->data;
    const char *why = status == 0 ? "connection closed by peer" : uv_strerror(status);
    if (o->state == SMTP_OUT_QUIT) {
        smtp_out_drop_conn(o);
    } else if (o->state == SMTP_OUT_HANDSHAKE || (o->state == SMTP_OUT_IMPLICIT && !o->tls_up)) {
        char text[300];
        snprintf(text, sizeof(text), "%s during the TLS handshake", why);
        smtp_out_handshake_failed(o, text);
    } else if (o->state < SMTP_OUT_READY) {
        smtp_out_fail(o, SMTP_OUT_F_CONNECT, why);
    } else {
        smtp_out_lost(o, why);
    }
}

static void smtp_out_on_timeout(struct conn *c)
{
    struct smtp_out *o = c->data;
    if (o->state == SMTP_OUT_QUIT)
        smtp_out_drop_conn(o);
    else if (o->state < SMTP_OUT_READY)
        smtp_out_fail(o, SMTP_OUT_F_CONNECT, "timeout");
    else
        smtp_out_lost(o, "timeout");
}

static void smtp_out_on_drain_conn(struct conn *c)
{
    struct smtp_out *o = c->data;
    if (o->drain != NULL && !o->owner_gone)
        o->drain(o->drain_arg);
}

static void smtp_out_on_connect(struct conn *c, int status)
{
    struct smtp_out *o = c->data;
    if (status != 0) {
        smtp_out_fail(o, SMTP_OUT_F_CONNECT, uv_strerror(status));
        return;
    }
    struct sockaddr_storage local, peer;
    if (conn_addresses(c, &local, &peer) == 0)
        route_addr_text(&local, o->local_ip, sizeof(o->local_ip), NULL);
    maillog_info("New SMTP DCID %llu interface %s address %s port %d", (unsigned long long)o->dcid,
                 o->local_ip, o->peer_ip, o->port);
    conn_start(c);
    smtp_out_arm(o, o->opts.command_timeout);
    if (o->opts.route != NULL && o->opts.route->implicit_tls) {
        smtp_out_enter_state(o, SMTP_OUT_IMPLICIT);
        smtp_out_start_tls(o);
        o->state = SMTP_OUT_IMPLICIT; /* the greeting comes inside TLS */
        return;
    }
    smtp_out_enter_state(o, SMTP_OUT_GREETING);
}

static const struct conn_ops smtp_out_conn_ops = {
    .on_data = smtp_out_on_data,
    .on_tls = smtp_out_on_tls,
    .on_eof = smtp_out_on_eof,
    .on_timeout = smtp_out_on_timeout,
    .on_close = smtp_out_on_close,
    .on_connect = smtp_out_on_connect,
    .on_drain = smtp_out_on_drain_conn,
};

static void smtp_out_next_attempt(struct smtp_out *o)
{
    if (o->next_target >= o->ntargets) {
        smtp_out_enter_state(o, SMTP_OUT_DEAD);
        if (o->opening) {
            o->failed_early = true;
            return;
        }
        smtp_out_cb cb = o->ready;
        o->ready = NULL;
        if (cb != NULL && !o->owner_gone)
            cb(o->ready_arg, o->last_reply);
        return;
    }
    o->cur = &o->targets[o->next_target++];
    o->dcid = maillog_next_dcid();
    o->local_ip[0] = '\0';
    o->tls_up = false;
    o->in_len = o->reply_len = 0;
    route_addr_text(&o->cur->addr, o->peer_ip, sizeof(o->peer_ip), &o->port);
    smtp_out_enter_state(o, SMTP_OUT_CONNECT);
    struct conn *c = malloc(sizeof(*c));
    if (c == NULL || conn_init(c, o->opts.loop, &smtp_out_conn_ops, o) != 0) {
        free(c);
        smtp_out_failure_reply(o, SMTP_OUT_F_CONNECT, "out of resources");
        o->next_target = o->ntargets;
        smtp_out_next_attempt(o);
        return;
    }
    o->conn = c;
    o->conns++;
    smtp_out_arm(o, o->opts.connect_timeout);
    int rc = conn_connect(c, (struct sockaddr *)&o->cur->addr);
    if (rc != 0)
        smtp_out_fail(o, SMTP_OUT_F_CONNECT, uv_strerror(rc));
}

/* ---- the public side ---- */

struct smtp_out *smtp_out_open(const struct smtp_out_opts *opts, const struct smtp_out_target *t,
                               size_t n, smtp_out_cb ready, void *arg)
{
    struct smtp_out *o = calloc(1, sizeof(*o));
    if (o == NULL)
        return NULL;
    o->targets = calloc(n ? n : 1, sizeof(*t));
    if (o->targets == NULL) {
        free(o);
        return NULL;
    }
    memcpy(o->targets, t, n * sizeof(*t));
    o->ntargets = n;
    o->opts = *opts;
    snprintf(o->domain, sizeof(o->domain), "%s", opts->domain ? opts->domain : "");
    snprintf(o->helo, sizeof(o->helo), "%s", opts->helo);
    o->opts.domain = o->domain;
    o->opts.helo = o->helo;
    o->ready = ready;
    o->ready_arg = arg;
    snprintf(o->last_reply, sizeof(o->last_reply), "451 4.4.0 No next hop for %s", o->domain);
    o->opening = true;
    smtp_out_next_attempt(o);
    o->opening = false;
    if (o->failed_early) {
        o->owner_gone = true;
        if (o->conns == 0)
            smtp_out_free(o);
        return NULL;
    }
    return o;
}

/* Writes the queued commands that may go now: all of them when the next
 * hop advertised PIPELINING (RFC 2920), else only the oldest. */
static void smtp_out_pump(struct smtp_out *o)
{
    for (size_t i = 0; i < o->qlen && o->conn != NULL; i++) {
        struct smtp_out_pending *p = &o->queue[(o->qhead + i) % SMTP_OUT_QUEUE];
        if (p->sent)
            continue;
        if (i > 0 && !o->ext_pipelining)
            return;
        p->sent = true;
        smtp_out_send(o, "%s", p->line);
        explicit_bzero(p->line, sizeof(p->line));
    }
}

static void smtp_out_push(struct smtp_out *o, const char *line, smtp_out_cb cb, void *arg)
{
    size_t tail = (o->qhead + o->qlen) % SMTP_OUT_QUEUE;
    struct smtp_out_pending *p = &o->queue[tail];
    p->cb = cb;
    p->arg = arg;
    p->sent = line == NULL;
    snprintf(p->line, sizeof(p->line), "%s", line ? line : "");
    o->qlen++;
    smtp_out_arm(o, o->opts.command_timeout);
}

void smtp_out_command(struct smtp_out *o, const char *line, smtp_out_cb cb, void *arg)
{
    if (o->state != SMTP_OUT_READY || o->qlen == SMTP_OUT_QUEUE) {
        if (cb != NULL)
            cb(arg, "451 4.4.2 Connection to the next hop lost");
        return;
    }
    smtp_out_push(o, line, cb, arg);
    smtp_out_pump(o);
    o->at_line_start = true;
    o->body_len = 0;
}

static void smtp_out_body_flush(struct smtp_out *o)
{
    conn_write(o->conn, o->body, o->body_len);
    o->body_len = 0;
}

static void smtp_out_body_put(struct smtp_out *o, const char *buf, size_t len)
{
    if (o->body_len + len > sizeof(o->body))
        smtp_out_body_flush(o);
    if (len > sizeof(o->body)) {
        conn_write(o->conn, buf, len);
        return;
    }
    memcpy(o->body + o->body_len, buf, len);
    o->body_len += len;
}

bool smtp_out_write(struct smtp_out *o, const char *buf, size_t len)
{
    if (o->state != SMTP_OUT_READY)
        return false;
    /* dot-stuffing (RFC 5321 4.5.2): a line that starts with "." gets one
     * more; the caller hands over whole lines or continuations */
    size_t start = 0;
    for (size_t i = 0; i < len; i++) {
        if (o->at_line_start && buf[i] == '.') {
            smtp_out_body_put(o, buf + start, i - start);
            smtp_out_body_put(o, ".", 1);
            start = i;
        }
        o->at_line_start = buf[i] == '\n';
    }
    smtp_out_body_put(o, buf + start, len - start);
    return conn_write_queue(o->conn) > CONN_HIGH_WATER;
}

void smtp_out_on_drain(struct smtp_out *o, void (*drain)(void *arg), void *arg)
{
    o->drain = drain;
    o->drain_arg = arg;
}

void smtp_out_end(struct smtp_out *o, smtp_out_cb cb, void *arg)
{
    if (o->state != SMTP_OUT_READY || o->qlen == SMTP_OUT_QUEUE) {
        cb(arg, "451 4.4.2 Connection to the next hop lost");
        return;
    }
    smtp_out_push(o, NULL, cb, arg);
    const char *dot = o->at_line_start ? ".\r\n" : "\r\n.\r\n";
    smtp_out_body_put(o, dot, strlen(dot));
    smtp_out_body_flush(o);
    smtp_out_arm(o, o->opts.data_timeout);
}

bool smtp_out_has(const struct smtp_out *o, const char *ext)
{
    if (strcmp(ext, "SIZE") == 0)
        return o->ext_size;
    if (strcmp(ext, "8BITMIME") == 0)
        return o->ext_8bitmime;
    if (strcmp(ext, "PIPELINING") == 0)
        return o->ext_pipelining;
    return false;
}

bool smtp_out_usable(const struct smtp_out *o)
{
    return o->state == SMTP_OUT_READY && o->qlen == 0;
}

uint64_t smtp_out_dcid(const struct smtp_out *o)
{
    return o->dcid;
}

void smtp_out_abort(struct smtp_out *o)
{
    o->owner_gone = true;
    o->ready = NULL;
    o->drain = NULL;
    smtp_out_enter_state(o, SMTP_OUT_DEAD);
    smtp_out_drop_conn(o);
    if (o->conns == 0)
        smtp_out_free(o);
}

/* Only commands whose replies nobody waits for (RSET) are in the queue. */
static bool smtp_out_queue_quiet(const struct smtp_out *o)
{
    for (size_t i = 0; i < o->qlen; i++) {
        if (o->queue[(o->qhead + i) % SMTP_OUT_QUEUE].cb != NULL)
            return false;
    }
    return true;
}

void smtp_out_close(struct smtp_out *o)
{
    o->owner_gone = true;
    o->ready = NULL;
    o->drain = NULL;
    if (o->state == SMTP_OUT_READY && o->conn != NULL && o->qlen < SMTP_OUT_QUEUE &&
        smtp_out_queue_quiet(o)) {
        /* QUIT after what is queued (an RSET, say), as the last of a
         * pipelined group or once the replies before it are in */
        smtp_out_push(o, "QUIT", NULL, NULL); /* its reply ends the session */
        smtp_out_enter_state(o, SMTP_OUT_QUIT);
        smtp_out_pump(o);
        smtp_out_arm(o, 5);
    } else {
        smtp_out_enter_state(o, SMTP_OUT_DEAD);
        smtp_out_drop_conn(o);
    }
    if (o->conns == 0)
        smtp_out_free(o);
}
