/*
 * smtp_in: the inbound SMTP session (ICID) — greeting, the command table,
 * STARTTLS and the inbound TLS level, relay control, the DATA stream and its
 * defences (bare CR/LF, NUL, line and size limits), timeouts, and the mail
 * log lines of the session.  Messages go to the next hop through relay; this
 * module never includes smtp_out.h and never touches a socket directly.
 */
#ifndef TLSGATE_SMTP_IN_H
#define TLSGATE_SMTP_IN_H

#include <stdbool.h>
#include <sys/socket.h>

#include <uv.h>

#include "snapshot.h"

struct smtp_in;

/* The sessions of one worker, for shutdown. */
struct smtp_in_list {
    struct smtp_in *head;
    size_t count;
};

struct smtp_in_env {
    uv_loop_t *loop;
    struct snapshot *snap; /* the session takes its own reference */
    int listener;          /* index in snap->cfg->listeners */
    struct smtp_in_list *list;
    /* Admission control: NULL to admit PEER on listener LISTENER of SNAP,
     * else the 421 reply to send.  Called once the client's address is
     * known (after a PROXY header). */
    const char *(*admit)(void *owner, const struct snapshot *snap, int listener,
                         const struct sockaddr *peer);
    /* Called once the session is gone; ADMITTED says whether admit said yes. */
    void (*on_closed)(void *owner, const struct sockaddr *peer, bool admitted);
    void *owner;
};

/* Accepts the pending connection on SERVER and runs a session on it.
 * 0 or a UV error (then nothing was allocated). */
int smtp_in_accept(const struct smtp_in_env *env, uv_stream_t *server);

/* SIGTERM: idle sessions get "421 4.3.2" now; a session in DATA or waiting
 * for the next hop finishes its transaction first.  With FORCE every session
 * is answered 421 and closed at once (its transaction is abandoned). */
void smtp_in_shutdown_all(struct smtp_in_list *list, bool force);

#endif
