/*
 * conn: one TCP connection on a libuv loop, with an optional tls endpoint
 * beneath it.  Upper layers see plaintext bytes in, plaintext writes out,
 * "TLS ready"/"TLS failed", end of stream and one deadline timer; they never
 * see a socket or OpenSSL.  Every socket gets TCP_NODELAY.  A conn is freed
 * only from its close callback (ops->on_close), after conn_close().
 */
#ifndef TLSGATE_CONN_H
#define TLSGATE_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

struct ssl_ctx_st;
struct tls;
struct conn;

struct conn_ops {
    void (*on_data)(struct conn *c, const char *buf, size_t len); /* plaintext */
    void (*on_tls)(struct conn *c, int status);                   /* 0 ready, -1 failed */
    void (*on_eof)(struct conn *c, int status); /* 0 peer closed, else a UV error */
    void (*on_timeout)(struct conn *c);
    void (*on_close)(struct conn *c); /* handles closed: the owner frees its state */
    /* Optional: an outgoing connection completed (0) or failed (UV error). */
    void (*on_connect)(struct conn *c, int status);
    /* Optional: the queue of unwritten bytes fell below CONN_LOW_WATER. */
    void (*on_drain)(struct conn *c);
};

#define CONN_HIGH_WATER (256 * 1024) /* a writer should pause above this */
#define CONN_LOW_WATER  (64 * 1024)

struct conn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_shutdown_t shutdown;
    uv_connect_t connect;
    const struct conn_ops *ops;
    void *data;
    struct tls *tls;
    bool handshaking;
    bool reading;
    bool paused;
    bool closing;
    bool draining; /* flushing writes before the close */
    int open_handles;
    char buf[16384];
    char plain[16384];
};

/* Initialises C's handles on LOOP; 0 or a UV error. */
int conn_init(struct conn *c, uv_loop_t *loop, const struct conn_ops *ops, void *data);

/* Accepts a pending connection from SERVER into C and sets TCP_NODELAY. */
int conn_accept(struct conn *c, uv_stream_t *server);

/* Connects C to ADDR; ops->on_connect reports the outcome, and the
 * deadline timer (conn_set_timeout) bounds it.  0 or a UV error. */
int conn_connect(struct conn *c, const struct sockaddr *addr);

/* Starts delivering input to ops->on_data. */
int conn_start(struct conn *c);
void conn_pause(struct conn *c);
void conn_resume(struct conn *c);

/* Hands back LEN bytes that were read before a layer was known (e.g. the
 * start of a TLS handshake behind a PROXY header) as if read again. */
void conn_inject(struct conn *c, const char *buf, size_t len);

/* Queues LEN plaintext bytes (copied), encrypted when TLS is up. */
void conn_write(struct conn *c, const char *buf, size_t len);
void conn_printf(struct conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Starts a TLS handshake on CTX as server or client; from now on every byte
 * read is TLS.  ops->on_tls reports the outcome.  0 or -1. */
int conn_start_tls(struct conn *c, struct ssl_ctx_st *ctx, bool server, const char *sni,
                   bool verify_peer);
const struct tls *conn_tls(const struct conn *c);
/* True once a handshake has completed. */
bool conn_tls_active(const struct conn *c);
/* Reason for the last TLS failure. */
const char *conn_tls_error(const struct conn *c);

/* Arms the deadline: ops->on_timeout after MS milliseconds (0 disarms). */
void conn_set_timeout(struct conn *c, uint64_t ms);

/* Flushes queued writes (a TLS close_notify too), then closes.  Safe to
 * call more than once; ops->on_close follows exactly once. */
void conn_close(struct conn *c);

/* Bytes queued for the peer and not yet written. */
size_t conn_write_queue(const struct conn *c);

/* Local and peer addresses as text ("127.0.0.1", "::1") and sockaddr. */
int conn_addresses(struct conn *c, struct sockaddr_storage *local, struct sockaddr_storage *peer);

#endif
