/*
 * snapshot: one configuration together with the TLS contexts made from it.
 * Sessions hold a reference for their whole life, so a reload (SIGHUP)
 * never changes what a session in flight sees.  Must not: open sockets.
 */
#ifndef TLSGATE_SNAPSHOT_H
#define TLSGATE_SNAPSHOT_H

#include <stdio.h>

#include "config.h"

struct ssl_ctx_st;

struct snapshot {
    int refs; /* atomic */
    struct config *cfg;
    struct ssl_ctx_st **server_ctx; /* per cfg->listeners[i]; NULL when TLS is off */
    struct ssl_ctx_st *client_ctx;  /* for delivery sessions */
};

/* Builds the TLS contexts of CFG (taking over its reference).  On failure
 * writes "PATH:LINE: message" lines to ERRS and returns NULL. */
struct snapshot *snapshot_new(struct config *cfg, FILE *errs);
struct snapshot *snapshot_ref(struct snapshot *s);
void snapshot_unref(struct snapshot *s);

/* The process-wide current snapshot: snapshot_current returns a new
 * reference; snapshot_install replaces it (taking over S's reference). */
struct snapshot *snapshot_current(void);
void snapshot_install(struct snapshot *s);

/* Index of the listener called NAME in S's config, or -1. */
int snapshot_listener_index(const struct snapshot *s, const char *name);

#endif
