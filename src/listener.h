/*
 * listener: the worker event loops and their listening sockets.  Every
 * worker binds each listener's address with SO_REUSEPORT so the kernel
 * spreads connections over the loops; connection caps (per listener and per
 * client address) are shared by all workers.  Must not: parse SMTP.
 */
#ifndef TLSGATE_LISTENER_H
#define TLSGATE_LISTENER_H

#include <stdbool.h>
#include <stdio.h>

#include <uv.h>

#include "snapshot.h"

struct listener_pool;

/* Binds every listener of SNAP once per worker (errors to ERRS as
 * "PATH:LINE: listener NAME: cannot bind ADDRESS: reason") and starts the
 * worker threads.  NULL on failure. */
struct listener_pool *listener_start(struct snapshot *snap, FILE *errs);

/* SIGTERM: stop accepting, let transactions finish; FORCE ends them. */
void listener_stop(struct listener_pool *p, bool force);

/* True once every worker has ended. */
bool listener_done(struct listener_pool *p);

/* Joins the threads and frees P (after listener_done). */
void listener_free(struct listener_pool *p);

/* Sets a callback run on the main loop (through uv_async_send on ASYNC)
 * when a worker ends. */
void listener_notify(struct listener_pool *p, uv_async_t *async);

#endif
