/*
 * smtp_out: one delivery session (DCID) to a next hop — connect (trying
 * each target in order), greeting, EHLO (HELO only where clear text is
 * allowed), STARTTLS and the destination TLS level (SPEC section 3), AUTH
 * PLAIN/LOGIN over TLS, then SMTP commands and a streamed message body.
 * It writes the DCID lines of the mail log and decides, for a failed
 * attempt, the 4xx the client gets.  Must not: know about the inbound
 * session, or send a secret or a message over a connection whose TLS level
 * is not met.
 */
#ifndef TLSGATE_SMTP_OUT_H
#define TLSGATE_SMTP_OUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <uv.h>

#include "config.h"

struct ssl_ctx_st;
struct smtp_out;

/* How a delivery attempt failed. */
enum smtp_out_failure {
    SMTP_OUT_F_CONNECT,   /* no connection, or it dropped */
    SMTP_OUT_F_NO_TLS,    /* a required level: STARTTLS not offered or refused */
    SMTP_OUT_F_HANDSHAKE, /* the TLS handshake failed */
    SMTP_OUT_F_VERIFY,    /* required-verify: the certificate check failed */
    SMTP_OUT_F_AUTH,      /* AUTH refused or impossible */
    SMTP_OUT_F_PROTOCOL   /* greeting or EHLO refused, a bad reply */
};

/* The reply a client gets for failure F towards DOMAIN: always a 4xx, so
 * the client keeps the message (451 4.4.1 connection, 4.7.4 TLS not
 * offered, 4.7.5 handshake or certificate, 4.7.0 AUTH, 4.4.0 protocol).
 * DETAIL is cleaned of control characters.  Returns BUF. */
const char *smtp_out_failure_text(enum smtp_out_failure f, const char *domain, const char *detail,
                                  char *buf, size_t len);

/* One address to try, with the host name it came from (the MX or the
 * route host: the name a certificate is checked against). */
struct smtp_out_target {
    char host[256];
    struct sockaddr_storage addr;
};

struct smtp_out_opts {
    uv_loop_t *loop;
    struct ssl_ctx_st *ctx;         /* client context (certstore) */
    const struct conf_route *route; /* NULL for MX delivery */
    const char *domain;             /* the recipient domain */
    enum tls_out_level level;
    bool fallback_plaintext;
    const char *helo; /* our name in EHLO */
    int connect_timeout;
    int command_timeout; /* RFC 5321 4.5.3.2: minutes, configurable */
    int data_timeout;    /* for the reply to the end of data */
    /* Optional: a required level could not be met (for the alert). */
    void (*on_required_failure)(void *arg, const char *domain, const char *why);
    void *alert_arg;
};

/* A reply from the next hop, or the 4xx/5xx that stands for a failure
 * (then the session is unusable: close it).  Lines joined by CRLF, without
 * the final CRLF. */
typedef void (*smtp_out_cb)(void *arg, const char *reply);

/* Opens a session over TARGETS (copied), trying each in order until one
 * meets the TLS level; READY gets NULL when the session can take MAIL, else
 * the reply for the client.  READY never runs before this returns; NULL
 * means no attempt could even start. */
struct smtp_out *smtp_out_open(const struct smtp_out_opts *opts, const struct smtp_out_target *t,
                               size_t n, smtp_out_cb ready, void *arg);

/* Sends one command line (without CRLF); CB gets its reply.  Commands
 * queue; with PIPELINING they are written without waiting. */
void smtp_out_command(struct smtp_out *o, const char *line, smtp_out_cb cb, void *arg);

/* After a 354: message text (CRLF lines, not dot-stuffed; smtp_out stuffs
 * it).  Returns true while the writer should pause; DRAIN is then called
 * once the queue has emptied enough. */
bool smtp_out_write(struct smtp_out *o, const char *buf, size_t len);
void smtp_out_on_drain(struct smtp_out *o, void (*drain)(void *arg), void *arg);

/* Ends the message with CRLF "." CRLF; CB gets the final reply. */
void smtp_out_end(struct smtp_out *o, smtp_out_cb cb, void *arg);

/* What the next hop's EHLO advertised: "SIZE", "8BITMIME", "PIPELINING". */
bool smtp_out_has(const struct smtp_out *o, const char *extension);

/* True while the session can take a new transaction. */
bool smtp_out_usable(const struct smtp_out *o);

/* The DCID of the connection in use (0 before one is up). */
uint64_t smtp_out_dcid(const struct smtp_out *o);

/* Ends the session: QUIT when it is usable, else just closes.  No callback
 * runs after this; the session frees itself. */
void smtp_out_close(struct smtp_out *o);

/* Ends the session at once, without QUIT: for a message the client did
 * not finish, whose end must never reach the next hop. */
void smtp_out_abort(struct smtp_out *o);

#endif
