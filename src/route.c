/*
 * route: next-hop lookups and the Maildir writer.  Must not: block the event
 * loop on DNS or fsync (both run on the thread pool), or leave a partial
 * file in new/.
 */
#include "route.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <arpa/inet.h>

void route_addr_text(const struct sockaddr_storage *ss, char *buf, size_t len, int *port)
{
    const struct sockaddr_in *v4 = (const struct sockaddr_in *)ss;
    const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)ss;
    const void *a = ss->ss_family == AF_INET ? (const void *)&v4->sin_addr : &v6->sin6_addr;
    if (port != NULL)
        *port = ntohs(ss->ss_family == AF_INET ? v4->sin_port : v6->sin6_port);
    if (inet_ntop(ss->ss_family, a, buf, (socklen_t)len) == NULL)
        snprintf(buf, len, "unknown");
}

int route_source_text(const struct sockaddr_storage *dst, char *buf, size_t len)
{
    socklen_t dlen =
        dst->ss_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
    struct sockaddr_storage local;
    socklen_t llen = sizeof(local);
    int fd = socket(dst->ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int rc = connect(fd, (const struct sockaddr *)dst, dlen) == 0 &&
                     getsockname(fd, (struct sockaddr *)&local, &llen) == 0
                 ? 0
                 : -1;
    close(fd);
    if (rc == 0)
        route_addr_text(&local, buf, len, NULL);
    return rc;
}

/* ---- reverse DNS ---- */

struct route_rdns_req {
    uv_work_t work;
    struct sockaddr_storage sa;
    char name[NI_MAXHOST];
    bool found;
    bool verified;
    route_rdns_cb cb;
    void *arg;
};

static bool route_same_addr(const struct sockaddr *a, const struct sockaddr *b)
{
    if (a->sa_family != b->sa_family)
        return false;
    if (a->sa_family == AF_INET)
        return memcmp(&((const struct sockaddr_in *)a)->sin_addr,
                      &((const struct sockaddr_in *)b)->sin_addr, 4) == 0;
    return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
                  &((const struct sockaddr_in6 *)b)->sin6_addr, 16) == 0;
}

static void route_rdns_work(uv_work_t *w)
{
    struct route_rdns_req *r = w->data;
    socklen_t len =
        r->sa.ss_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
    if (getnameinfo((struct sockaddr *)&r->sa, len, r->name, sizeof(r->name), NULL, 0,
                    NI_NAMEREQD) != 0)
        return;
    r->found = true;
    struct addrinfo hints = {.ai_family = r->sa.ss_family, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    if (getaddrinfo(r->name, NULL, &hints, &res) != 0)
        return;
    for (struct addrinfo *ai = res; ai != NULL && !r->verified; ai = ai->ai_next)
        r->verified = route_same_addr(ai->ai_addr, (struct sockaddr *)&r->sa);
    freeaddrinfo(res);
}

static void route_rdns_done(uv_work_t *w, int status)
{
    struct route_rdns_req *r = w->data;
    bool ok = status == 0 && r->found;
    r->cb(r->arg, ok ? r->name : NULL, ok && r->verified);
    free(r);
}

int route_rdns(uv_loop_t *loop, const struct sockaddr *sa, route_rdns_cb cb, void *arg)
{
    struct route_rdns_req *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return UV_ENOMEM;
    memcpy(&r->sa, sa,
           sa->sa_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6));
    r->cb = cb;
    r->arg = arg;
    r->work.data = r;
    int rc = uv_queue_work(loop, &r->work, route_rdns_work, route_rdns_done);
    if (rc != 0)
        free(r);
    return rc;
}

/* ---- host addresses ---- */

#define ROUTE_HOST_MAX 16

struct route_host_req {
    uv_work_t work;
    char host[256];
    int port;
    struct sockaddr_storage addrs[ROUTE_HOST_MAX];
    size_t n;
    char err[512];
    route_host_cb cb;
    void *arg;
};

static void route_host_work(uv_work_t *w)
{
    struct route_host_req *r = w->data;
    char port[16];
    snprintf(port, sizeof(port), "%d", r->port);
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(r->host, port, &hints, &res);
    if (rc != 0) {
        snprintf(r->err, sizeof(r->err), "%s: %s", r->host, gai_strerror(rc));
        return;
    }
    for (struct addrinfo *ai = res; ai != NULL && r->n < ROUTE_HOST_MAX; ai = ai->ai_next)
        if (ai->ai_family == AF_INET || ai->ai_family == AF_INET6)
            memcpy(&r->addrs[r->n++], ai->ai_addr, ai->ai_addrlen);
    freeaddrinfo(res);
    if (r->n == 0)
        snprintf(r->err, sizeof(r->err), "%s: no address", r->host);
}

static void route_host_done(uv_work_t *w, int status)
{
    struct route_host_req *r = w->data;
    if (status != 0 && r->err[0] == '\0')
        snprintf(r->err, sizeof(r->err), "lookup cancelled");
    r->cb(r->arg, r->addrs, status == 0 ? r->n : 0, r->err);
    free(r);
}

int route_resolve_host(uv_loop_t *loop, const char *host, int port, route_host_cb cb, void *arg)
{
    struct route_host_req *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return UV_ENOMEM;
    snprintf(r->host, sizeof(r->host), "%s", host);
    r->port = port;
    r->cb = cb;
    r->arg = arg;
    r->work.data = r;
    int rc = uv_queue_work(loop, &r->work, route_host_work, route_host_done);
    if (rc != 0)
        free(r);
    return rc;
}

/* ---- Maildir ---- */

struct route_maildir {
    uv_work_t work;
    int fd;
    int error; /* first errno of a failed write */
    bool cr;   /* the last byte written was a held-back CR */
    char tmp_path[4096];
    char new_path[4096];
    char new_dir[4096];
    route_maildir_cb cb;
    void *arg;
    char err[256];
    size_t used;
    char buf[65536];
};

static int route_mkdirs(const char *dir)
{
    static const char *const sub[] = {"", "/tmp", "/new", "/cur"};
    char path[4096];
    for (size_t i = 0; i < sizeof(sub) / sizeof(sub[0]); i++) {
        snprintf(path, sizeof(path), "%s%s", dir, sub[i]);
        if (mkdir(path, 0700) != 0 && errno != EEXIST)
            return -1;
    }
    return 0;
}

struct route_maildir *route_maildir_begin(const char *dir, uint64_t mid, const char *hostname,
                                          char *err, size_t errlen)
{
    if (route_mkdirs(dir) != 0) {
        snprintf(err, errlen, "cannot create Maildir %s: %s", dir, strerror(errno));
        return NULL;
    }
    struct route_maildir *m = calloc(1, sizeof(*m));
    if (m == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    struct timeval tv;
    gettimeofday(&tv, NULL);
    char base[512];
    snprintf(base, sizeof(base), "%lld.M%ldP%dQ%llu.%s", (long long)tv.tv_sec, (long)tv.tv_usec,
             (int)getpid(), (unsigned long long)mid, hostname);
    snprintf(m->tmp_path, sizeof(m->tmp_path), "%s/tmp/%s", dir, base);
    snprintf(m->new_path, sizeof(m->new_path), "%s/new/%s", dir, base);
    snprintf(m->new_dir, sizeof(m->new_dir), "%s/new", dir);
    m->fd = open(m->tmp_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (m->fd < 0) {
        snprintf(err, errlen, "cannot create %s: %s", m->tmp_path, strerror(errno));
        free(m);
        return NULL;
    }
    return m;
}

static void route_maildir_flush(struct route_maildir *m)
{
    size_t off = 0;
    while (off < m->used && m->error == 0) {
        ssize_t n = write(m->fd, m->buf + off, m->used - off);
        if (n < 0 && errno != EINTR)
            m->error = errno;
        else if (n > 0)
            off += (size_t)n;
    }
    m->used = 0;
}

static void route_maildir_put(struct route_maildir *m, char ch)
{
    if (m->used == sizeof(m->buf))
        route_maildir_flush(m);
    m->buf[m->used++] = ch;
}

void route_maildir_write(struct route_maildir *m, const char *buf, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (m->cr && buf[i] != '\n')
            route_maildir_put(m, '\r');
        m->cr = buf[i] == '\r';
        if (!m->cr)
            route_maildir_put(m, buf[i]);
    }
}

static void route_maildir_commit_work(uv_work_t *w)
{
    struct route_maildir *m = w->data;
    if (m->cr)
        route_maildir_put(m, '\r');
    route_maildir_flush(m);
    if (m->error == 0 && fsync(m->fd) != 0)
        m->error = errno;
    if (close(m->fd) != 0 && m->error == 0)
        m->error = errno;
    m->fd = -1;
    if (m->error == 0 && rename(m->tmp_path, m->new_path) != 0)
        m->error = errno;
    if (m->error != 0) {
        snprintf(m->err, sizeof(m->err), "%.160s: %s", m->tmp_path, strerror(m->error));
        unlink(m->tmp_path);
        return;
    }
    int dfd = open(m->new_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
}

static void route_maildir_commit_done(uv_work_t *w, int status)
{
    struct route_maildir *m = w->data;
    if (status != 0 && m->error == 0) {
        m->error = EIO;
        snprintf(m->err, sizeof(m->err), "commit cancelled");
    }
    m->cb(m->arg, m->error ? -1 : 0, m->err);
    free(m);
}

void route_maildir_commit(uv_loop_t *loop, struct route_maildir *m, route_maildir_cb cb, void *arg)
{
    m->cb = cb;
    m->arg = arg;
    m->work.data = m;
    if (uv_queue_work(loop, &m->work, route_maildir_commit_work, route_maildir_commit_done) != 0) {
        route_maildir_abort(m);
        cb(arg, -1, "cannot queue the Maildir commit");
    }
}

void route_maildir_abort(struct route_maildir *m)
{
    if (m == NULL)
        return;
    if (m->fd >= 0)
        close(m->fd);
    unlink(m->tmp_path);
    free(m);
}
