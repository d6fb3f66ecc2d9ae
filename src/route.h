/*
 * route: where mail goes and the lookups that decide it — the Maildir next
 * hop (write to tmp/, fsync, rename into new/) and the reverse DNS of a
 * client (forward-confirmed).  Everything that may block runs on the libuv
 * thread pool.  Must not: speak SMTP, or decide policy.
 */
#ifndef TLSGATE_ROUTE_H
#define TLSGATE_ROUTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <uv.h>

/* The address of SS as text ("192.0.2.1", "2001:db8::1"; "unknown" if it
 * cannot be shown) into BUF, and its port into *PORT when PORT is set. */
void route_addr_text(const struct sockaddr_storage *ss, char *buf, size_t len, int *port);

/* The local address the system would send from towards DST, as text into
 * BUF (found by routing a datagram socket; nothing is sent): the interface
 * of a delivery attempt that never connected.  0, or -1 if there is none. */
int route_source_text(const struct sockaddr_storage *dst, char *buf, size_t len);

/* Reverse DNS of SA, forward-confirmed: CB gets the name (NULL if none) and
 * whether one of the name's addresses is SA.  ARG must stay valid until CB
 * runs (the caller holds a reference).  0 or a UV error. */
typedef void (*route_rdns_cb)(void *arg, const char *name, bool verified);
int route_rdns(uv_loop_t *loop, const struct sockaddr *sa, route_rdns_cb cb, void *arg);

/* The addresses of HOST (a name or an address literal) on PORT, on the
 * thread pool: CB gets up to MAX addresses, IPv6 and IPv4 in resolver
 * order, or n = 0 with ERR.  ARG must stay valid until CB runs. */
typedef void (*route_host_cb)(void *arg, const struct sockaddr_storage *addrs, size_t n,
                              const char *err);
int route_resolve_host(uv_loop_t *loop, const char *host, int port, route_host_cb cb, void *arg);

struct route_maildir;

/* Starts a message in the Maildir DIR (tmp/, new/, cur/ created if
 * missing): a new file in DIR/tmp.  NULL with ERR set. */
struct route_maildir *route_maildir_begin(const char *dir, uint64_t mid, const char *hostname,
                                          char *err, size_t errlen);

/* Appends LEN bytes; a line ending CRLF is stored as LF (the Maildir
 * convention).  A failure is remembered and reported by commit. */
void route_maildir_write(struct route_maildir *m, const char *buf, size_t len);

/* Flushes, fsyncs, renames the file into DIR/new and fsyncs the directory,
 * on the thread pool; CB gets 0 or -1 with ERR text, and M is freed. */
typedef void (*route_maildir_cb)(void *arg, int status, const char *err);
void route_maildir_commit(uv_loop_t *loop, struct route_maildir *m, route_maildir_cb cb, void *arg);

/* Removes the file from tmp/ and frees M. */
void route_maildir_abort(struct route_maildir *m);

#endif
