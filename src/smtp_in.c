/*
 * smtp_in: the inbound SMTP state machine (RFC 5321, RFC 3207 STARTTLS).
 * Every state change goes through smtp_in_enter_state; every command goes
 * through the commands[] table.  Must not: write to the next hop (relay
 * does), hold a whole message in memory, or trust a byte before checking it.
 */
#include "smtp_in.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "conn.h"
#include "maillog.h"
#include "policy.h"
#include "proxy.h"
#include "relay.h"
#include "route.h"
#include "smtp_parse.h"
#include "tls.h"

#define SMTP_IN_CMD_MAX    512   /* RFC 5321 4.5.3.1.4, with CRLF */
#define SMTP_IN_TEXT_MAX   1000  /* RFC 5321 4.5.3.1.6, with CRLF */
#define SMTP_IN_BUF_MAX    65536 /* input held before reading pauses */
#define SMTP_IN_RDNS_MS    10000 /* reverse DNS waits no longer than this */
#define SMTP_IN_RATE_GRACE 10.0  /* seconds before data_min_rate applies */

enum smtp_in_state {
    SMTP_IN_RDNS,      /* looking up the client's name */
    SMTP_IN_HANDSHAKE, /* TLS handshake (STARTTLS or implicit) */
    SMTP_IN_CMD,       /* waiting for a command */
    SMTP_IN_BUSY,      /* waiting for the next hop's reply */
    SMTP_IN_DATA,      /* receiving message text */
    SMTP_IN_PROXY,     /* reading the PROXY protocol header */
    SMTP_IN_CLOSED
};

/* Problems found in message text; the message is refused at its end. */
enum {
    SMTP_IN_BARE = 1, /* bare CR or LF */
    SMTP_IN_NUL = 2,  /* NUL byte */
    SMTP_IN_SIZE = 4, /* over max_message_size */
    SMTP_IN_LONG = 8  /* text line over 1000 octets */
};

struct smtp_in {
    struct conn conn;
    struct smtp_in_env env;
    struct smtp_in *next, *prev;
    int refs; /* the conn, a pending rDNS lookup */
    enum smtp_in_state state;
    const struct config *cfg;
    const struct conf_listener *l;
    const struct conf_limits *lim;
    uint64_t icid;
    struct sockaddr_storage peer, local;
    char peer_ip[INET6_ADDRSTRLEN], local_ip[INET6_ADDRSTRLEN];
    char rdns[256];
    bool rdns_done, rdns_verified, admitted;
    enum sg_action action;
    enum tls_in_level tls_level;
    bool verify_client;
    bool denied; /* REJECT group: only QUIT works */
    bool tls_required_logged;
    bool implicit; /* handshake before the greeting */
    bool shutdown; /* stop after the current transaction */
    bool quit;
    bool proxied;   /* the peer is a trusted proxy; s->peer is its client */
    bool skip_line; /* discarding the rest of an overlong command */
    bool cmd_timer; /* the command deadline is armed */
    bool in_process;
    bool flow_paused; /* the next hop is not keeping up with DATA */
    char helo[256];
    int helo_kind; /* 0 none, 1 HELO, 2 EHLO */
    /* the transaction */
    struct relay *relay;
    uint64_t mid;
    struct smtp_path from;
    char first_rcpt[SMTP_PATH_MAX + 1];
    char pending_rcpt[SMTP_PATH_MAX + 1]; /* the RCPT awaiting its reply */
    unsigned nrcpt;
    /* DATA */
    int data_flags;
    bool prev_crlf, line_cont;
    unsigned long long data_bytes;
    uint64_t data_start;
    /* buffers */
    size_t in_pos, in_len, out_len; /* input pending: in[in_pos..in_len) */
    char in[SMTP_IN_BUF_MAX];
    char out[8192];
};

static void smtp_in_process(struct smtp_in *s);
static void smtp_in_close(struct smtp_in *s, bool lost);

/* ---- output ---- */

static void smtp_in_flush(struct smtp_in *s)
{
    if (s->out_len > 0)
        conn_write(&s->conn, s->out, s->out_len);
    s->out_len = 0;
}

/* Queues one reply (one or more lines without CRLF, joined by "\r\n"). */
static void smtp_in_reply(struct smtp_in *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void smtp_in_reply(struct smtp_in *s, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line) - 2, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n > sizeof(line) - 3)
        n = (int)sizeof(line) - 3;
    memcpy(line + n, "\r\n", 2);
    n += 2;
    if (s->out_len + (size_t)n > sizeof(s->out))
        smtp_in_flush(s);
    memcpy(s->out + s->out_len, line, (size_t)n);
    s->out_len += (size_t)n;
}

/* ---- state and timers ---- */

static size_t smtp_in_pending(const struct smtp_in *s)
{
    return s->in_len - s->in_pos;
}

static void smtp_in_enter_state(struct smtp_in *s, enum smtp_in_state st)
{
    s->state = st;
    s->cmd_timer = false;
}

static uint64_t smtp_in_secs_ms(int secs)
{
    return secs > 0 ? (uint64_t)secs * 1000 : 0;
}

/* The deadline of the current state: the idle timeout while nothing of a
 * command has arrived, then a deadline for the whole line that later bytes
 * do not extend; during DATA the moment the average rate would fall below
 * data_min_rate. */
static void smtp_in_arm_timer(struct smtp_in *s)
{
    if (s->state == SMTP_IN_CMD) {
        if (smtp_in_pending(s) == 0) {
            s->cmd_timer = false;
            conn_set_timeout(&s->conn, smtp_in_secs_ms(s->lim->idle_timeout));
        } else if (!s->cmd_timer) {
            s->cmd_timer = true;
            conn_set_timeout(&s->conn, smtp_in_secs_ms(s->lim->command_timeout));
        }
    } else if (s->state == SMTP_IN_DATA && s->flow_paused) {
        conn_set_timeout(&s->conn, 0); /* the next hop's timeouts govern */
    } else if (s->state == SMTP_IN_DATA) {
        uint64_t idle = smtp_in_secs_ms(s->lim->idle_timeout);
        if (s->lim->data_min_rate > 0) {
            double due = (double)s->data_bytes / s->lim->data_min_rate + SMTP_IN_RATE_GRACE;
            double elapsed = (double)(uv_now(s->env.loop) - s->data_start) / 1000.0;
            uint64_t ms = due > elapsed ? (uint64_t)((due - elapsed) * 1000) + 1 : 1;
            if (idle == 0 || ms < idle)
                idle = ms;
        }
        conn_set_timeout(&s->conn, idle);
    } else if (s->state == SMTP_IN_BUSY) {
        conn_set_timeout(&s->conn, 0);
    }
}

/* ---- the transaction ---- */

static void smtp_in_end_transaction(struct smtp_in *s, const char *abort_reason)
{
    if (s->mid != 0 && abort_reason != NULL)
        maillog_mid_aborted(s->mid, abort_reason);
    if (s->relay != NULL)
        relay_reset(s->relay);
    s->mid = 0;
    s->nrcpt = 0;
    s->flow_paused = false;
    s->first_rcpt[0] = '\0';
    memset(&s->from, 0, sizeof(s->from));
}

/* ---- closing ---- */

static void smtp_in_unref(struct smtp_in *s)
{
    if (--s->refs > 0)
        return;
    s->env.on_closed(s->env.owner, (struct sockaddr *)&s->peer, s->admitted);
    snapshot_unref(s->env.snap);
    free(s);
}

static void smtp_in_on_conn_close(struct conn *c)
{
    struct smtp_in *s = c->data;
    smtp_in_unref(s);
}

static void smtp_in_unlink(struct smtp_in *s)
{
    struct smtp_in_list *list = s->env.list;
    if (s->prev != NULL)
        s->prev->next = s->next;
    else if (list->head == s)
        list->head = s->next;
    if (s->next != NULL)
        s->next->prev = s->prev;
    s->next = s->prev = NULL;
    list->count--;
}

/* Ends the session: LOST says the peer vanished or timed out ("ICID n
 * lost") rather than ending in order ("ICID n close"). */
static void smtp_in_close(struct smtp_in *s, bool lost)
{
    if (s->state == SMTP_IN_CLOSED)
        return;
    smtp_in_end_transaction(s, lost ? "connection lost" : "session closed");
    smtp_in_flush(s);
    if (s->icid != 0) {
        if (lost)
            maillog_icid_lost(s->icid);
        else
            maillog_icid_close(s->icid);
    }
    smtp_in_enter_state(s, SMTP_IN_CLOSED);
    relay_free(s->relay);
    s->relay = NULL;
    smtp_in_unlink(s);
    conn_close(&s->conn);
}

/* ---- commands ---- */

struct smtp_in_cmd {
    enum smtp_verb verb;
    bool needs_helo;
    bool needs_tls; /* refused with 530 before STARTTLS under "required" */
    void (*run)(struct smtp_in *s, const char *arg);
};

static void smtp_in_greet(struct smtp_in *s)
{
    if (s->denied)
        smtp_in_reply(s, "554 5.7.1 Access denied");
    else
        smtp_in_reply(s, "220 %s ESMTP tlsgate", s->l->hostname);
}

static bool smtp_in_starttls_offered(const struct smtp_in *s)
{
    return s->tls_level != TLS_IN_OFF && !conn_tls_active(&s->conn) &&
           s->env.snap->server_ctx[s->env.listener] != NULL;
}

static void smtp_in_cmd_helo(struct smtp_in *s, const char *arg, int kind)
{
    if (!smtp_parse_helo_ok(arg)) {
        smtp_in_reply(s, "501 5.5.4 Syntax: %s hostname", kind == 2 ? "EHLO" : "HELO");
        return;
    }
    smtp_in_end_transaction(s, "EHLO/HELO");
    snprintf(s->helo, sizeof(s->helo), "%s", arg);
    s->helo_kind = kind;
    if (kind == 1) {
        smtp_in_reply(s, "250 %s", s->l->hostname);
        return;
    }
    smtp_in_reply(s, "250-%s", s->l->hostname);
    smtp_in_reply(s, "250-PIPELINING");
    smtp_in_reply(s, "250-SIZE %lld", s->cfg->max_message_size);
    smtp_in_reply(s, "250-8BITMIME");
    smtp_in_reply(s, "250-ENHANCEDSTATUSCODES");
    if (smtp_in_starttls_offered(s))
        smtp_in_reply(s, "250-STARTTLS");
    smtp_in_reply(s, "250 HELP");
}

static void smtp_in_cmd_ehlo(struct smtp_in *s, const char *arg)
{
    smtp_in_cmd_helo(s, arg, 2);
}

static void smtp_in_cmd_helo1(struct smtp_in *s, const char *arg)
{
    smtp_in_cmd_helo(s, arg, 1);
}

static void smtp_in_cmd_starttls(struct smtp_in *s, const char *arg)
{
    if (arg[0] != '\0') {
        smtp_in_reply(s, "501 5.5.4 Syntax: STARTTLS");
        return;
    }
    if (conn_tls_active(&s->conn)) {
        smtp_in_reply(s, "503 5.5.1 Error: TLS already active");
        return;
    }
    if (!smtp_in_starttls_offered(s)) {
        smtp_in_reply(s, "502 5.5.1 STARTTLS not available");
        return;
    }
    smtp_in_reply(s, "220 2.0.0 Ready to start TLS");
    smtp_in_flush(s);
    /* RFC 3207 and CVE-2011-0411: nothing pipelined behind STARTTLS is
     * ever executed, and the session starts over inside TLS. */
    s->in_len = s->in_pos = 0;
    smtp_in_end_transaction(s, "STARTTLS");
    s->helo_kind = 0;
    smtp_in_enter_state(s, SMTP_IN_HANDSHAKE);
    conn_set_timeout(&s->conn, smtp_in_secs_ms(s->lim->tls_handshake_timeout));
    if (conn_start_tls(&s->conn, s->env.snap->server_ctx[s->env.listener], true, NULL,
                       s->verify_client) != 0)
        smtp_in_close(s, false);
}

static void smtp_in_on_mail(void *arg, const char *reply)
{
    struct smtp_in *s = arg;
    if (reply[0] == '2') {
        maillog_mid_start(s->mid, s->icid);
        maillog_mid_from(s->mid, s->icid, s->from.addr);
    } else {
        s->mid = 0;
    }
    smtp_in_reply(s, "%s", reply);
    smtp_in_enter_state(s, SMTP_IN_CMD);
    smtp_in_process(s);
}

static void smtp_in_cmd_mail(struct smtp_in *s, const char *arg)
{
    if (s->mid != 0) {
        smtp_in_reply(s, "503 5.5.1 Error: nested MAIL command");
        return;
    }
    const char *err = smtp_parse_path(arg, true, &s->from);
    if (err != NULL) {
        smtp_in_reply(s, "%s", err);
        return;
    }
    if (s->from.size > s->cfg->max_message_size) {
        smtp_in_reply(s, "552 5.3.4 Message size exceeds fixed limit");
        return;
    }
    s->mid = maillog_next_mid();
    smtp_in_enter_state(s, SMTP_IN_BUSY);
    relay_mail(s->relay, s->mid, &s->from, smtp_in_on_mail, s);
}

static void smtp_in_on_rcpt(void *arg, const char *reply)
{
    struct smtp_in *s = arg;
    if (reply[0] == '2') {
        if (s->nrcpt == 0)
            snprintf(s->first_rcpt, sizeof(s->first_rcpt), "%s", s->pending_rcpt);
        maillog_mid_rcpt(s->mid, s->icid, s->nrcpt, s->pending_rcpt);
        s->nrcpt++;
    }
    smtp_in_reply(s, "%s", reply);
    smtp_in_enter_state(s, SMTP_IN_CMD);
    smtp_in_process(s);
}

/* Local relay control: an accept group may only send to the listener's
 * accept_domains, and never through '%', '!' or quoted '@' routing. */
static const char *smtp_in_relay_check(const struct smtp_in *s, const struct smtp_path *to)
{
    if (s->action == SG_RELAY)
        return NULL;
    if (to->routing_chars)
        return "550 5.7.1 Relaying denied";
    if (to->domain[0] == '\0') /* <postmaster> */
        return NULL;
    if (!policy_domain_accepted(s->l, to->domain))
        return "550 5.7.1 Relaying denied";
    return NULL;
}

static void smtp_in_cmd_rcpt(struct smtp_in *s, const char *arg)
{
    if (s->mid == 0) {
        smtp_in_reply(s, "503 5.5.1 Error: need MAIL command");
        return;
    }
    struct smtp_path to;
    const char *err = smtp_parse_path(arg, false, &to);
    if (err == NULL)
        err = smtp_in_relay_check(s, &to);
    if (err == NULL && s->nrcpt >= (unsigned)s->lim->max_recipients)
        err = "452 4.5.3 Too many recipients";
    if (err != NULL) {
        smtp_in_reply(s, "%s", err);
        return;
    }
    snprintf(s->pending_rcpt, sizeof(s->pending_rcpt), "%s", to.addr);
    smtp_in_enter_state(s, SMTP_IN_BUSY);
    relay_rcpt(s->relay, s->nrcpt, &to, smtp_in_on_rcpt, s);
}

/* The Received: trace header (RFC 5321 4.4) with the TLS details
 * (RFC 8314 7.4 style), CRLF-terminated. */
static void smtp_in_received(struct smtp_in *s, char *buf, size_t len)
{
    char date[64], tlsinfo[256];
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S %z", &tm);
    const struct tls *t = conn_tls(&s->conn);
    bool tls = conn_tls_active(&s->conn);
    if (tls)
        snprintf(tlsinfo, sizeof(tlsinfo), "(using %s with cipher %s (%d bits))", tls_protocol(t),
                 tls_cipher(t), tls_cipher_bits(t));
    else
        snprintf(tlsinfo, sizeof(tlsinfo), "(no TLS)");
    char helo[256], rdns[256], rcpt[300] = "";
    maillog_clean(helo, sizeof(helo), s->helo);
    maillog_clean(rdns, sizeof(rdns), s->rdns[0] ? s->rdns : "unknown");
    if (s->nrcpt == 1)
        snprintf(rcpt, sizeof(rcpt), "\r\n\tfor <%s>", s->first_rcpt);
    snprintf(buf, len,
             "Received: from %s (%s [%s])\r\n\tby %s (tlsgate) with %s id %llu\r\n\t%s%s;"
             " %s\r\n",
             helo, rdns, s->peer_ip, s->l->hostname,
             tls ? (s->helo_kind == 2 ? "ESMTPS" : "SMTPS")
                 : (s->helo_kind == 2 ? "ESMTP" : "SMTP"),
             (unsigned long long)s->mid, tlsinfo, rcpt, date);
}

static void smtp_in_on_data(void *arg, const char *reply)
{
    struct smtp_in *s = arg;
    smtp_in_reply(s, "%s", reply);
    if (reply[0] != '3') {
        smtp_in_end_transaction(s, reply);
        smtp_in_enter_state(s, SMTP_IN_CMD);
    } else {
        s->data_flags = 0;
        s->prev_crlf = true;
        s->line_cont = false;
        s->data_bytes = 0;
        s->data_start = uv_now(s->env.loop);
        smtp_in_enter_state(s, SMTP_IN_DATA);
    }
    smtp_in_process(s);
}

static void smtp_in_cmd_data(struct smtp_in *s, const char *arg)
{
    if (s->nrcpt == 0) {
        smtp_in_reply(s, "503 5.5.1 Error: need RCPT command");
        return;
    }
    if (arg[0] != '\0') {
        smtp_in_reply(s, "501 5.5.4 Syntax: DATA");
        return;
    }
    char received[1024];
    smtp_in_received(s, received, sizeof(received));
    smtp_in_enter_state(s, SMTP_IN_BUSY);
    relay_data(s->relay, received, smtp_in_on_data, s);
}

static void smtp_in_cmd_rset(struct smtp_in *s, const char *arg)
{
    (void)arg;
    smtp_in_end_transaction(s, "RSET");
    smtp_in_reply(s, "250 2.0.0 Ok");
}

static void smtp_in_cmd_noop(struct smtp_in *s, const char *arg)
{
    (void)arg;
    smtp_in_reply(s, "250 2.0.0 Ok");
}

static void smtp_in_cmd_quit(struct smtp_in *s, const char *arg)
{
    (void)arg;
    smtp_in_reply(s, "221 2.0.0 Bye");
    s->quit = true;
}

static void smtp_in_cmd_vrfy(struct smtp_in *s, const char *arg)
{
    if (arg[0] == '\0')
        smtp_in_reply(s, "501 5.5.4 Syntax: VRFY address");
    else
        smtp_in_reply(s,
                      "252 2.5.0 Cannot VRFY user, but will accept message and attempt delivery");
}

static void smtp_in_cmd_help(struct smtp_in *s, const char *arg)
{
    (void)arg;
    smtp_in_reply(s, "214 2.0.0 Commands: HELO EHLO MAIL RCPT DATA RSET NOOP QUIT VRFY HELP%s",
                  smtp_in_starttls_offered(s) ? " STARTTLS" : "");
}

static void smtp_in_cmd_unimplemented(struct smtp_in *s, const char *arg)
{
    (void)arg;
    smtp_in_reply(s, "502 5.5.1 Error: command not implemented");
}

static const struct smtp_in_cmd smtp_in_commands[] = {
    {SMTP_EHLO, false, false, smtp_in_cmd_ehlo},
    {SMTP_HELO, false, false, smtp_in_cmd_helo1},
    {SMTP_STARTTLS, false, false, smtp_in_cmd_starttls},
    {SMTP_MAIL, true, true, smtp_in_cmd_mail},
    {SMTP_RCPT, true, true, smtp_in_cmd_rcpt},
    {SMTP_DATA, true, true, smtp_in_cmd_data},
    {SMTP_RSET, false, false, smtp_in_cmd_rset},
    {SMTP_NOOP, false, false, smtp_in_cmd_noop},
    {SMTP_QUIT, false, false, smtp_in_cmd_quit},
    {SMTP_VRFY, false, false, smtp_in_cmd_vrfy},
    {SMTP_HELP, false, false, smtp_in_cmd_help},
    {SMTP_AUTH, false, true, smtp_in_cmd_unimplemented},
    {SMTP_EXPN, false, false, smtp_in_cmd_unimplemented},
    {SMTP_BDAT, false, false, smtp_in_cmd_unimplemented},
};

/* Under "required", refuses the command until TLS is up, and logs the
 * failure once per session in both ESA forms. */
static bool smtp_in_tls_missing(struct smtp_in *s)
{
    if (s->tls_level != TLS_IN_REQUIRED || conn_tls_active(&s->conn))
        return false;
    smtp_in_reply(s, "530 5.7.0 Must issue a STARTTLS command first");
    if (!s->tls_required_logged) {
        s->tls_required_logged = true;
        maillog_icid_tls_required(s->icid);
        maillog_tls_failed("ICID", s->icid, "TLS was required but remote host did not initiate it");
    }
    return true;
}

static void smtp_in_dispatch(struct smtp_in *s, const struct smtp_cmd *cmd)
{
    if (s->denied) {
        if (cmd->verb == SMTP_QUIT)
            smtp_in_cmd_quit(s, cmd->arg);
        else
            smtp_in_reply(s, "503 5.7.1 Access denied");
        return;
    }
    for (size_t i = 0; i < sizeof(smtp_in_commands) / sizeof(smtp_in_commands[0]); i++) {
        const struct smtp_in_cmd *c = &smtp_in_commands[i];
        if (c->verb != cmd->verb)
            continue;
        if (c->needs_tls && smtp_in_tls_missing(s))
            return;
        if (c->needs_helo && s->helo_kind == 0) {
            smtp_in_reply(s, "503 5.5.1 Error: send HELO/EHLO first");
            return;
        }
        c->run(s, cmd->arg);
        return;
    }
    smtp_in_reply(s, "500 5.5.2 Error: command not recognized");
}

/* Input is consumed by moving a cursor; the buffer is compacted only
 * before more is appended (no memmove per line). */
static void smtp_in_consume(struct smtp_in *s, size_t n)
{
    s->in_pos += n;
    if (s->in_pos == s->in_len)
        s->in_pos = s->in_len = 0;
}

static void smtp_in_compact(struct smtp_in *s)
{
    memmove(s->in, s->in + s->in_pos, s->in_len - s->in_pos);
    s->in_len -= s->in_pos;
    s->in_pos = 0;
}

/* Takes one command line from the input; false when more input is needed. */
static bool smtp_in_take_command(struct smtp_in *s)
{
    char *in = s->in + s->in_pos;
    size_t in_len = smtp_in_pending(s);
    char *lf = memchr(in, '\n', in_len);
    if (s->skip_line) {
        if (lf == NULL) {
            s->in_len = s->in_pos = 0;
            return false;
        }
        s->skip_line = false;
        smtp_in_consume(s, (size_t)(lf - in) + 1);
        return true;
    }
    if (lf == NULL) {
        if (in_len <= SMTP_IN_CMD_MAX)
            return false;
        smtp_in_reply(s, "500 5.5.2 Error: line too long");
        s->skip_line = true;
        s->in_len = s->in_pos = 0;
        return true;
    }
    size_t n = (size_t)(lf - in) + 1;
    if (n > SMTP_IN_CMD_MAX) {
        smtp_in_reply(s, "500 5.5.2 Error: line too long");
        smtp_in_consume(s, n);
        return true;
    }
    size_t len = n - 1;
    if (len == 0 || in[len - 1] != '\r') {
        /* A command line ends only in CRLF; a bare LF is how SMTP
         * smuggling starts, so the session ends here (as Postfix does). */
        smtp_in_reply(s, "521 5.5.2 %s Error: bare <LF> received", s->l->hostname);
        s->quit = true;
        return false;
    }
    len--;
    char line[SMTP_IN_CMD_MAX + 1];
    memcpy(line, in, len);
    line[len] = '\0';
    smtp_in_consume(s, n);
    s->cmd_timer = false;
    struct smtp_cmd cmd;
    const char *err = NULL;
    if (smtp_parse_command(line, len, &cmd, &err) != 0)
        smtp_in_reply(s, "%s", err);
    else
        smtp_in_dispatch(s, &cmd);
    return true;
}

/* ---- DATA ---- */

static void smtp_in_on_end(void *arg, const char *reply)
{
    struct smtp_in *s = arg;
    smtp_in_reply(s, "%s", reply);
    if (reply[0] == '2') {
        maillog_mid_done(s->mid);
        smtp_in_end_transaction(s, NULL);
    } else {
        smtp_in_end_transaction(s, reply);
    }
    smtp_in_enter_state(s, SMTP_IN_CMD);
    smtp_in_process(s);
}

static void smtp_in_data_refuse(struct smtp_in *s)
{
    const char *reply = "552 5.3.4 Message text line exceeds 1000 octets";
    if (s->data_flags & SMTP_IN_BARE)
        reply = "550 5.6.0 Message contains bare CR or LF; refused";
    else if (s->data_flags & SMTP_IN_NUL)
        reply = "550 5.6.0 Message contains NUL bytes; refused";
    else if (s->data_flags & SMTP_IN_SIZE)
        reply = "552 5.3.4 Message size exceeds fixed limit";
    smtp_in_reply(s, "%s", reply);
    smtp_in_end_transaction(s, reply + 4);
    smtp_in_enter_state(s, SMTP_IN_CMD);
}

static void smtp_in_data_end(struct smtp_in *s)
{
    if (s->data_flags != 0) {
        smtp_in_data_refuse(s);
        return;
    }
    maillog_mid_ready(s->mid, s->data_bytes, s->from.addr);
    smtp_in_enter_state(s, SMTP_IN_BUSY);
    relay_end(s->relay, smtp_in_on_end, s);
}

/* Flags NUL and CR not followed by LF in TEXT[0..N). */
static void smtp_in_scan(struct smtp_in *s, const char *text, size_t n)
{
    if (memchr(text, '\0', n) != NULL)
        s->data_flags |= SMTP_IN_NUL;
    if (memchr(text, '\r', n) != NULL)
        s->data_flags |= SMTP_IN_BARE;
}

static void smtp_in_data_text(struct smtp_in *s, const char *text, size_t n)
{
    s->data_bytes += n;
    if (s->data_bytes > (unsigned long long)s->cfg->max_message_size)
        s->data_flags |= SMTP_IN_SIZE;
    if (s->data_flags == 0 && relay_write(s->relay, text, n))
        s->flow_paused = true;
}

/* An overlong line without its LF yet: flag it and pass on what we have
 * (keeping a final CR, which may be the start of CRLF). */
static void smtp_in_data_partial(struct smtp_in *s)
{
    char *in = s->in + s->in_pos;
    size_t in_len = smtp_in_pending(s);
    size_t n = in_len - (in[in_len - 1] == '\r' ? 1 : 0);
    s->data_flags |= SMTP_IN_LONG;
    smtp_in_scan(s, in, n);
    smtp_in_data_text(s, in, n);
    smtp_in_consume(s, n);
    s->line_cont = true;
}

/* Takes one line of message text; false when more input is needed.  The
 * end of data is only CRLF "." CRLF: a line "." that ends in CRLF right
 * after a line that ended in CRLF. */
static bool smtp_in_take_data(struct smtp_in *s)
{
    char *in = s->in + s->in_pos;
    size_t in_len = smtp_in_pending(s);
    char *lf = memchr(in, '\n', in_len);
    if (lf == NULL) {
        if (in_len > SMTP_IN_TEXT_MAX)
            smtp_in_data_partial(s);
        return false;
    }
    size_t n = (size_t)(lf - in) + 1;
    bool crlf = n >= 2 && in[n - 2] == '\r';
    bool start = !s->line_cont;
    s->line_cont = false;
    if (!crlf)
        s->data_flags |= SMTP_IN_BARE;
    smtp_in_scan(s, in, crlf ? n - 2 : n - 1);
    if (start && n > SMTP_IN_TEXT_MAX)
        s->data_flags |= SMTP_IN_LONG;
    if (start && s->prev_crlf && crlf && n == 3 && in[0] == '.') {
        smtp_in_consume(s, n);
        smtp_in_data_end(s);
        return true;
    }
    size_t skip = (start && in[0] == '.') ? 1 : 0; /* dot-stuffing */
    smtp_in_data_text(s, in + skip, n - skip);
    s->prev_crlf = crlf;
    smtp_in_consume(s, n);
    return true;
}

/* ---- the input loop ---- */

static void smtp_in_after_commands(struct smtp_in *s)
{
    if (s->quit) {
        smtp_in_close(s, false);
        return;
    }
    if (s->shutdown && s->state == SMTP_IN_CMD) {
        smtp_in_reply(s, "421 4.3.2 Service shutting down");
        smtp_in_close(s, false);
        return;
    }
    smtp_in_flush(s);
    smtp_in_arm_timer(s);
    if (smtp_in_pending(s) >= sizeof(s->in) / 2 || s->flow_paused)
        conn_pause(&s->conn);
    else
        conn_resume(&s->conn);
}

static void smtp_in_process(struct smtp_in *s)
{
    if (s->in_process)
        return;
    s->in_process = true;
    bool more = true;
    while (more && !s->quit) {
        if (s->state == SMTP_IN_CMD)
            more = smtp_in_take_command(s);
        else if (s->state == SMTP_IN_DATA && !s->flow_paused)
            more = smtp_in_take_data(s);
        else
            more = false;
    }
    s->in_process = false;
    if (s->state != SMTP_IN_CLOSED && s->state != SMTP_IN_HANDSHAKE)
        smtp_in_after_commands(s);
}

static void smtp_in_on_input(struct conn *c, const char *buf, size_t len)
{
    struct smtp_in *s = c->data;
    if (s->state == SMTP_IN_CLOSED || s->state == SMTP_IN_HANDSHAKE)
        return;
    while (len > 0) {
        smtp_in_compact(s);
        size_t room = sizeof(s->in) - s->in_len;
        if (room == 0) { /* cannot happen while reading pauses at half */
            smtp_in_close(s, true);
            return;
        }
        size_t n = len < room ? len : room;
        memcpy(s->in + s->in_len, buf, n);
        s->in_len += n;
        buf += n;
        len -= n;
        smtp_in_process(s);
        if (s->state == SMTP_IN_CLOSED || s->state == SMTP_IN_HANDSHAKE)
            return;
    }
}

/* ---- connection events ---- */

static void smtp_in_log_tls(struct smtp_in *s)
{
    const struct tls *t = conn_tls(&s->conn);
    maillog_tls_success("ICID", s->icid, tls_protocol(t), tls_cipher(t));
    if (s->verify_client) {
        char subject[512];
        tls_peer_subject(t, subject, sizeof(subject));
        maillog_info("ICID %llu TLS client certificate %s subject %s", (unsigned long long)s->icid,
                     tls_peer_verified(t) ? "verified" : "not verified",
                     subject[0] ? subject : "(none)");
    }
}

static void smtp_in_on_tls(struct conn *c, int status)
{
    struct smtp_in *s = c->data;
    if (status != 0) {
        maillog_tls_failed("ICID", s->icid, conn_tls_error(c));
        smtp_in_close(s, false);
        return;
    }
    smtp_in_log_tls(s);
    s->in_len = s->in_pos = 0;
    smtp_in_enter_state(s, SMTP_IN_CMD);
    if (s->implicit) {
        s->implicit = false;
        smtp_in_greet(s);
    }
    smtp_in_after_commands(s);
}

static void smtp_in_on_eof(struct conn *c, int status)
{
    (void)status;
    struct smtp_in *s = c->data;
    if (s->state == SMTP_IN_BUSY) {
        /* the next hop's answer decides; then the session ends */
        s->quit = true;
        return;
    }
    smtp_in_close(s, true);
}

static void smtp_in_on_timeout(struct conn *c)
{
    struct smtp_in *s = c->data;
    if (s->state == SMTP_IN_CMD || s->state == SMTP_IN_DATA)
        smtp_in_reply(s, "421 4.4.2 %s Error: timeout exceeded", s->l->hostname);
    if (s->state == SMTP_IN_HANDSHAKE)
        maillog_tls_failed("ICID", s->icid, "TLS handshake timed out");
    smtp_in_close(s, true);
}

static const struct conn_ops smtp_in_conn_ops = {
    .on_data = smtp_in_on_input,
    .on_tls = smtp_in_on_tls,
    .on_eof = smtp_in_on_eof,
    .on_timeout = smtp_in_on_timeout,
    .on_close = smtp_in_on_conn_close,
};

/* ---- start ---- */

static void smtp_in_choose_group(struct smtp_in *s)
{
    char why[300] = "ALL";
    const struct conf_sendergroup *sg =
        policy_sendergroup(s->cfg, s->l->name, (struct sockaddr *)&s->peer,
                           s->rdns_verified ? s->rdns : NULL, why, sizeof(why));
    s->action = sg ? sg->action : SG_ACCEPT;
    s->tls_level = policy_tls_in(s->l, sg);
    s->verify_client = sg ? sg->verify_client : false;
    s->denied = s->action == SG_REJECT;
    const char *word = s->action == SG_RELAY ? "RELAY" : s->denied ? "REJECT" : "ACCEPT";
    maillog_icid_sg(s->icid, word, sg ? sg->name : "ALL", why);
}

/* Starts (or, after a PROXY header, resumes) reading. */
static void smtp_in_read(struct smtp_in *s)
{
    if (s->proxied)
        conn_resume(&s->conn);
    else
        conn_start(&s->conn);
}

static void smtp_in_on_flow(void *arg, bool pause)
{
    struct smtp_in *s = arg;
    s->flow_paused = pause;
    if (!pause && s->state == SMTP_IN_DATA)
        smtp_in_process(s);
}

static void smtp_in_begin(struct smtp_in *s)
{
    maillog_icid_new(s->icid, s->l->interface, s->local_ip, s->peer_ip, s->rdns[0] ? s->rdns : NULL,
                     s->rdns_verified);
    smtp_in_choose_group(s);
    s->relay = relay_new(s->env.loop, s->env.snap, s->env.listener, s->icid);
    if (s->relay == NULL) {
        smtp_in_reply(s, "421 4.3.0 %s Error: out of memory", s->l->hostname);
        smtp_in_close(s, false);
        return;
    }
    relay_set_flow(s->relay, smtp_in_on_flow, s);
    if (s->l->implicit_tls && !s->denied) {
        s->implicit = true;
        smtp_in_enter_state(s, SMTP_IN_HANDSHAKE);
        conn_set_timeout(&s->conn, smtp_in_secs_ms(s->lim->tls_handshake_timeout));
        if (conn_start_tls(&s->conn, s->env.snap->server_ctx[s->env.listener], true, NULL,
                           s->verify_client) != 0) {
            smtp_in_close(s, false);
            return;
        }
        smtp_in_read(s);
        /* a ClientHello that came behind the PROXY header */
        smtp_in_compact(s);
        size_t early = s->in_len;
        s->in_len = s->in_pos = 0;
        conn_inject(&s->conn, s->in, early);
        return;
    }
    smtp_in_enter_state(s, SMTP_IN_CMD);
    smtp_in_greet(s);
    smtp_in_read(s);
    smtp_in_process(s);
}

static void smtp_in_on_rdns(void *arg, const char *name, bool verified)
{
    struct smtp_in *s = arg;
    if (s->state == SMTP_IN_RDNS && !s->rdns_done) {
        s->rdns_done = true;
        s->conn.ops = &smtp_in_conn_ops;
        if (name != NULL)
            maillog_clean(s->rdns, sizeof(s->rdns), name);
        s->rdns_verified = verified;
        smtp_in_begin(s);
    }
    smtp_in_unref(s);
}

/* The reverse lookup took too long: go on without a name. */
static void smtp_in_on_rdns_timeout(struct conn *c)
{
    struct smtp_in *s = c->data;
    s->rdns_done = true;
    c->ops = &smtp_in_conn_ops;
    smtp_in_begin(s);
}

static const struct conn_ops smtp_in_rdns_ops = {
    .on_data = smtp_in_on_input,
    .on_tls = smtp_in_on_tls,
    .on_eof = smtp_in_on_eof,
    .on_timeout = smtp_in_on_rdns_timeout,
    .on_close = smtp_in_on_conn_close,
};

/* Refuses a connection over the caps: the 421 reply, then close. */
static void smtp_in_refuse(struct smtp_in *s, const char *reply)
{
    smtp_in_reply(s, "%s", reply);
    smtp_in_flush(s);
    smtp_in_enter_state(s, SMTP_IN_CLOSED);
    smtp_in_unlink(s);
    conn_close(&s->conn);
}

/* The client's address is known: admission, an ICID, reverse DNS. */
static void smtp_in_start_session(struct smtp_in *s)
{
    s->conn.ops = &smtp_in_rdns_ops;
    const char *refusal =
        s->env.admit(s->env.owner, s->env.snap, s->env.listener, (struct sockaddr *)&s->peer);
    if (refusal != NULL) {
        smtp_in_refuse(s, refusal);
        return;
    }
    s->admitted = true;
    s->icid = maillog_next_icid();
    smtp_in_enter_state(s, SMTP_IN_RDNS);
    conn_set_timeout(&s->conn, SMTP_IN_RDNS_MS);
    s->refs++;
    if (route_rdns(s->env.loop, (struct sockaddr *)&s->peer, smtp_in_on_rdns, s) != 0) {
        s->refs--;
        smtp_in_on_rdns_timeout(&s->conn);
    }
}

/* ---- the PROXY protocol header (see proxy.h for the contract) ---- */

static void smtp_in_proxy_refuse(struct smtp_in *s, const char *why)
{
    maillog_warning("listener %s: invalid PROXY header from %s: %s", s->l->name, s->peer_ip, why);
    smtp_in_enter_state(s, SMTP_IN_CLOSED);
    smtp_in_unlink(s);
    conn_close(&s->conn);
}

static void smtp_in_proxy_on_data(struct conn *c, const char *buf, size_t len)
{
    struct smtp_in *s = c->data;
    if (s->state != SMTP_IN_PROXY)
        return;
    size_t room = sizeof(s->in) - s->in_len;
    size_t n = len < room ? len : room;
    memcpy(s->in + s->in_len, buf, n);
    s->in_len += n;
    struct proxy_info info;
    int rc = proxy_parse((const unsigned char *)s->in, s->in_len, s->l->proxy_protocol, &info);
    if (rc == 0)
        return;
    if (rc < 0) {
        smtp_in_proxy_refuse(s, info.error);
        return;
    }
    smtp_in_consume(s, (size_t)rc); /* what follows is the client's */
    if (!info.local) {
        s->peer = info.src;
        route_addr_text(&s->peer, s->peer_ip, sizeof(s->peer_ip), NULL);
    }
    conn_pause(c);
    conn_set_timeout(c, 0);
    smtp_in_start_session(s);
}

static void smtp_in_proxy_on_eof(struct conn *c, int status)
{
    (void)status;
    smtp_in_proxy_refuse(c->data, "connection closed");
}

static void smtp_in_proxy_on_timeout(struct conn *c)
{
    smtp_in_proxy_refuse(c->data, "timeout");
}

static const struct conn_ops smtp_in_proxy_ops = {
    .on_data = smtp_in_proxy_on_data,
    .on_tls = smtp_in_on_tls,
    .on_eof = smtp_in_proxy_on_eof,
    .on_timeout = smtp_in_proxy_on_timeout,
    .on_close = smtp_in_on_conn_close,
};

static bool smtp_in_from_proxy(const struct smtp_in *s)
{
    return s->l->proxy_protocol != PROXY_NO &&
           policy_matchlist(&s->l->proxy_from, (const struct sockaddr *)&s->peer, NULL, NULL, 0);
}

int smtp_in_accept(const struct smtp_in_env *env, uv_stream_t *server)
{
    struct smtp_in *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return UV_ENOMEM;
    int rc = conn_init(&s->conn, env->loop, &smtp_in_rdns_ops, s);
    if (rc != 0) {
        free(s);
        return rc;
    }
    s->env = *env;
    snapshot_ref(env->snap);
    s->cfg = env->snap->cfg;
    s->l = &s->cfg->listeners[env->listener];
    s->lim = &s->l->limits;
    s->refs = 1;
    s->next = env->list->head;
    if (s->next != NULL)
        s->next->prev = s;
    env->list->head = s;
    env->list->count++;
    if (conn_accept(&s->conn, server) != 0 || conn_addresses(&s->conn, &s->local, &s->peer) != 0) {
        smtp_in_enter_state(s, SMTP_IN_CLOSED);
        smtp_in_unlink(s);
        conn_close(&s->conn);
        return 0;
    }
    route_addr_text(&s->peer, s->peer_ip, sizeof(s->peer_ip), NULL);
    route_addr_text(&s->local, s->local_ip, sizeof(s->local_ip), NULL);
    if (smtp_in_from_proxy(s)) {
        s->proxied = true;
        s->conn.ops = &smtp_in_proxy_ops;
        smtp_in_enter_state(s, SMTP_IN_PROXY);
        conn_set_timeout(&s->conn, smtp_in_secs_ms(s->lim->command_timeout));
        conn_start(&s->conn);
        return 0;
    }
    smtp_in_start_session(s);
    return 0;
}

/* ---- shutdown ---- */

void smtp_in_shutdown_all(struct smtp_in_list *list, bool force)
{
    struct smtp_in *s = list->head;
    while (s != NULL) {
        struct smtp_in *next = s->next;
        s->shutdown = true;
        if (force || s->state == SMTP_IN_CMD) {
            if (s->state == SMTP_IN_CMD || s->state == SMTP_IN_DATA)
                smtp_in_reply(s, "421 4.3.2 Service shutting down");
            smtp_in_close(s, false);
        } else if (s->state == SMTP_IN_RDNS || s->state == SMTP_IN_HANDSHAKE ||
                   s->state == SMTP_IN_PROXY) {
            smtp_in_close(s, false);
        }
        s = next;
    }
}
