/*
 * conn: libuv stream + optional tls.  Must not: parse SMTP, log, or free
 * itself anywhere but through the close callback.
 */
#include "conn.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tls.h"

#define CONN_DRAIN_MS 5000 /* how long a close waits for writes to drain */

struct conn_write_req {
    uv_write_t req;
    size_t len;
    char data[];
};

static void conn_on_write(uv_write_t *req, int status)
{
    struct conn *c = req->handle->data;
    size_t len = ((struct conn_write_req *)req)->len;
    free(req);
    if (status != 0 || c->closing || c->ops->on_drain == NULL)
        return;
    size_t queued = c->tcp.write_queue_size;
    if (queued < CONN_LOW_WATER && queued + len >= CONN_LOW_WATER)
        c->ops->on_drain(c);
}

/* Queues LEN bytes as they are (ciphertext or clear text). */
static void conn_send_raw(struct conn *c, const char *buf, size_t len)
{
    if (len == 0 || uv_is_closing((uv_handle_t *)&c->tcp))
        return;
    struct conn_write_req *w = malloc(sizeof(*w) + len);
    if (w == NULL)
        return;
    memcpy(w->data, buf, len);
    w->len = len;
    uv_buf_t b = uv_buf_init(w->data, (unsigned)len);
    if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, conn_on_write) != 0)
        free(w);
}

/* Sends whatever ciphertext the tls endpoint has produced. */
static void conn_flush_tls(struct conn *c)
{
    size_t n;
    while (c->tls != NULL && (n = tls_pending(c->tls)) > 0) {
        char *tmp = malloc(n);
        if (tmp == NULL)
            return;
        size_t got = tls_take_out(c->tls, tmp, n);
        conn_send_raw(c, tmp, got);
        free(tmp);
    }
}

void conn_write(struct conn *c, const char *buf, size_t len)
{
    if (c->closing && !c->draining)
        return;
    if (c->tls == NULL || c->handshaking) {
        conn_send_raw(c, buf, len);
        return;
    }
    if (tls_write(c->tls, buf, len) == 0)
        conn_flush_tls(c);
}

void conn_printf(struct conn *c, const char *fmt, ...)
{
    char line[2048];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    conn_write(c, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
}

static void conn_on_handle_closed(uv_handle_t *h)
{
    struct conn *c = h->data;
    if (--c->open_handles == 0) {
        tls_free(c->tls);
        c->tls = NULL;
        c->ops->on_close(c);
    }
}

static void conn_close_handles(struct conn *c)
{
    if (!uv_is_closing((uv_handle_t *)&c->timer))
        uv_close((uv_handle_t *)&c->timer, conn_on_handle_closed);
    if (!uv_is_closing((uv_handle_t *)&c->tcp))
        uv_close((uv_handle_t *)&c->tcp, conn_on_handle_closed);
}

static void conn_on_shutdown(uv_shutdown_t *req, int status)
{
    (void)status;
    conn_close_handles(req->data);
}

static void conn_on_drain_timeout(uv_timer_t *t)
{
    conn_close_handles(t->data);
}

void conn_close(struct conn *c)
{
    if (c->closing)
        return;
    c->closing = true;
    uv_read_stop((uv_stream_t *)&c->tcp);
    uv_timer_stop(&c->timer);
    if (c->tls != NULL && !c->handshaking) {
        tls_shutdown(c->tls);
        conn_flush_tls(c);
    }
    c->shutdown.data = c;
    if (uv_shutdown(&c->shutdown, (uv_stream_t *)&c->tcp, conn_on_shutdown) != 0) {
        conn_close_handles(c);
        return;
    }
    c->draining = true;
    uv_timer_start(&c->timer, conn_on_drain_timeout, CONN_DRAIN_MS, 0);
}

static void conn_on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    (void)hint;
    struct conn *c = h->data;
    *buf = uv_buf_init(c->buf, sizeof(c->buf));
}

static void conn_tls_done(struct conn *c, int status)
{
    c->handshaking = false;
    if (status == 0)
        uv_timer_stop(&c->timer);
    c->ops->on_tls(c, status);
}

/* Decrypts what is buffered and hands it up until paused or closed. */
static void conn_drain_tls(struct conn *c)
{
    while (!c->paused && !c->closing && c->tls != NULL && !c->handshaking) {
        ssize_t n = tls_read(c->tls, c->plain, sizeof(c->plain));
        conn_flush_tls(c); /* alerts, key updates, session tickets */
        if (n > 0) {
            c->ops->on_data(c, c->plain, (size_t)n);
        } else if (n == TLS_AGAIN) {
            return;
        } else {
            c->ops->on_eof(c, n == TLS_EOF ? 0 : UV_EPROTO);
            return;
        }
    }
}

static void conn_handshake_step(struct conn *c)
{
    int r = tls_handshake(c->tls);
    conn_flush_tls(c);
    if (r == TLS_DONE) {
        conn_tls_done(c, 0);
        conn_drain_tls(c); /* application data that came with the Finished */
    } else if (r == TLS_ERROR) {
        conn_tls_done(c, -1);
    }
}

/* Bytes from the peer, as read or as handed back by conn_inject. */
static void conn_input(struct conn *c, const char *buf, size_t len)
{
    if (c->tls == NULL) {
        c->ops->on_data(c, buf, len);
        return;
    }
    if (tls_feed(c->tls, buf, len) != 0) {
        c->ops->on_eof(c, UV_ENOMEM);
        return;
    }
    if (c->handshaking)
        conn_handshake_step(c);
    else
        conn_drain_tls(c);
}

static void conn_on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct conn *c = s->data;
    if (c->closing || nread == 0)
        return;
    if (nread < 0) {
        uv_read_stop(s);
        c->reading = false;
        c->ops->on_eof(c, nread == UV_EOF ? 0 : (int)nread);
        return;
    }
    conn_input(c, buf->base, (size_t)nread);
}

void conn_inject(struct conn *c, const char *buf, size_t len)
{
    if (!c->closing && len > 0)
        conn_input(c, buf, len);
}

static void conn_on_timer(uv_timer_t *t)
{
    struct conn *c = t->data;
    c->ops->on_timeout(c);
}

int conn_init(struct conn *c, uv_loop_t *loop, const struct conn_ops *ops, void *data)
{
    memset(c, 0, offsetof(struct conn, buf));
    c->ops = ops;
    c->data = data;
    int r = uv_tcp_init(loop, &c->tcp);
    if (r != 0)
        return r;
    uv_timer_init(loop, &c->timer);
    c->tcp.data = c;
    c->timer.data = c;
    c->open_handles = 2;
    return 0;
}

int conn_accept(struct conn *c, uv_stream_t *server)
{
    int r = uv_accept(server, (uv_stream_t *)&c->tcp);
    if (r == 0)
        uv_tcp_nodelay(&c->tcp, 1);
    return r;
}

static void conn_on_connect(uv_connect_t *req, int status)
{
    struct conn *c = req->data;
    if (status == UV_ECANCELED || c->closing)
        return;
    if (status == 0)
        uv_tcp_nodelay(&c->tcp, 1);
    c->ops->on_connect(c, status);
}

int conn_connect(struct conn *c, const struct sockaddr *addr)
{
    c->connect.data = c;
    return uv_tcp_connect(&c->connect, &c->tcp, addr, conn_on_connect);
}

int conn_start(struct conn *c)
{
    c->reading = true;
    return uv_read_start((uv_stream_t *)&c->tcp, conn_on_alloc, conn_on_read);
}

void conn_pause(struct conn *c)
{
    c->paused = true;
    if (c->reading && !c->closing)
        uv_read_stop((uv_stream_t *)&c->tcp);
}

void conn_resume(struct conn *c)
{
    if (!c->paused || c->closing)
        return;
    c->paused = false;
    if (c->reading)
        uv_read_start((uv_stream_t *)&c->tcp, conn_on_alloc, conn_on_read);
    if (c->tls != NULL && !c->handshaking)
        conn_drain_tls(c);
}

int conn_start_tls(struct conn *c, struct ssl_ctx_st *ctx, bool server, const char *sni,
                   bool verify_peer)
{
    c->tls = tls_new(ctx, server, sni, verify_peer);
    if (c->tls == NULL)
        return -1;
    c->handshaking = true;
    if (!server)
        conn_handshake_step(c); /* sends the ClientHello */
    return 0;
}

const struct tls *conn_tls(const struct conn *c)
{
    return c->tls;
}

bool conn_tls_active(const struct conn *c)
{
    return c->tls != NULL && !c->handshaking;
}

const char *conn_tls_error(const struct conn *c)
{
    return c->tls ? tls_error(c->tls) : "no TLS";
}

void conn_set_timeout(struct conn *c, uint64_t ms)
{
    if (c->closing)
        return;
    if (ms == 0)
        uv_timer_stop(&c->timer);
    else
        uv_timer_start(&c->timer, conn_on_timer, ms, 0);
}

size_t conn_write_queue(const struct conn *c)
{
    return c->tcp.write_queue_size;
}

int conn_addresses(struct conn *c, struct sockaddr_storage *local, struct sockaddr_storage *peer)
{
    int len = sizeof(*local);
    if (uv_tcp_getsockname(&c->tcp, (struct sockaddr *)local, &len) != 0)
        return -1;
    len = sizeof(*peer);
    return uv_tcp_getpeername(&c->tcp, (struct sockaddr *)peer, &len) == 0 ? 0 : -1;
}
