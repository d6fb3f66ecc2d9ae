/*
 * relay: carries one inbound session's transactions to their next hop.  The
 * route is chosen at the first accepted recipient; every reply the client
 * gets for MAIL, RCPT, DATA and the end of data comes from here, and the
 * end-of-data 250 is given only once the next hop holds the message (for a
 * Maildir: after fsync and rename).  Must not: speak to the client, log
 * inbound events, or hold a whole message in memory.
 *
 * Replies are complete SMTP reply lines without the final CRLF.  A callback
 * may run before the call that caused it returns.
 */
#ifndef TLSGATE_RELAY_H
#define TLSGATE_RELAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "smtp_parse.h"
#include "snapshot.h"

struct relay;
typedef void (*relay_cb)(void *arg, const char *reply);

/* A relay for the inbound session ICID on listener LISTENER of SNAP (which
 * must outlive it). */
struct relay *relay_new(uv_loop_t *loop, struct snapshot *snap, int listener, uint64_t icid);

/* Drops the session's side: no callback runs after this; work in flight
 * finishes and then frees the relay. */
void relay_free(struct relay *r);

/* Starts transaction MID from FROM. */
void relay_mail(struct relay *r, uint64_t mid, const struct smtp_path *from, relay_cb cb,
                void *arg);

/* Adds recipient RID (the number the mail log gives it) that local policy
 * accepted. */
void relay_rcpt(struct relay *r, unsigned rid, const struct smtp_path *to, relay_cb cb, void *arg);

/* Opens the message; RECEIVED (the trace header, CRLF-terminated) comes
 * first.  The reply is 354 or an error. */
void relay_data(struct relay *r, const char *received, relay_cb cb, void *arg);

/* Appends message text (dot-unstuffed, CRLF line ends).  Returns true when
 * the next hop is not keeping up: the caller stops reading until the flow
 * callback says to go on. */
bool relay_write(struct relay *r, const char *buf, size_t len);

/* FLOW(arg, false) is called when a paused writer may go on. */
typedef void (*relay_flow_cb)(void *arg, bool pause);
void relay_set_flow(struct relay *r, relay_flow_cb flow, void *arg);

/* Ends the message; the reply is the next hop's final answer. */
void relay_end(struct relay *r, relay_cb cb, void *arg);

/* Abandons the transaction (RSET, a refused message, a lost client). */
void relay_reset(struct relay *r);

#endif
