/*
 * listener: bind, accept, caps, and the worker threads that run the loops.
 * Must not: speak SMTP or change a snapshot.
 */
#include "listener.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "maillog.h"
#include "smtp_in.h"

#define LISTENER_BACKLOG    511
#define LISTENER_IP_BUCKETS 4096

enum { LISTENER_RUN, LISTENER_STOP, LISTENER_FORCE };

struct listener_worker;

struct listener_sock {
    uv_tcp_t tcp;
    struct listener_worker *w;
    int index; /* listener index in the snapshot */
    int fd;
};

struct listener_worker {
    struct listener_pool *pool;
    uv_loop_t loop;
    uv_async_t wake;
    uv_thread_t thread;
    struct listener_sock *socks;
    size_t nsocks;
    struct smtp_in_list sessions;
    bool stopping;
    bool ended;
};

struct listener_ip {
    struct listener_ip *next;
    uint8_t addr[16];
    int count;
};

struct listener_pool {
    struct listener_worker *workers;
    int nworkers;
    int command; /* atomic: LISTENER_RUN / STOP / FORCE */
    int ended;   /* atomic: workers that have ended */
    uv_async_t *notify;
    pthread_mutex_t lock; /* the counts below */
    int *per_listener;
    size_t nlisteners;
    struct listener_ip *ips[LISTENER_IP_BUCKETS];
};

/* ---- caps ---- */

static void listener_ip_key(const struct sockaddr *sa, uint8_t key[16])
{
    memset(key, 0, 16);
    if (sa->sa_family == AF_INET) {
        key[10] = key[11] = 0xff;
        memcpy(key + 12, &((const struct sockaddr_in *)sa)->sin_addr, 4);
    } else {
        memcpy(key, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
    }
}

static struct listener_ip **listener_ip_slot(struct listener_pool *p, const uint8_t key[16])
{
    uint32_t h = 2166136261u;
    for (int i = 0; i < 16; i++)
        h = (h ^ key[i]) * 16777619u;
    struct listener_ip **slot = &p->ips[h % LISTENER_IP_BUCKETS];
    while (*slot != NULL && memcmp((*slot)->addr, key, 16) != 0)
        slot = &(*slot)->next;
    return slot;
}

static const char *listener_admit(struct listener_worker *w, const struct snapshot *snap,
                                  int listener, const struct sockaddr *peer)
{
    struct listener_pool *p = w->pool;
    const struct conf_limits *lim = &snap->cfg->listeners[listener].limits;
    uint8_t key[16];
    listener_ip_key(peer, key);
    const char *refusal = NULL;
    pthread_mutex_lock(&p->lock);
    struct listener_ip **slot = listener_ip_slot(p, key);
    if (p->per_listener[listener] >= lim->max_connections)
        refusal = "421 4.7.0 Too many connections, try again later";
    else if (*slot != NULL && (*slot)->count >= lim->max_connections_per_ip)
        refusal = "421 4.7.0 Too many connections from your address";
    else if (*slot == NULL && (*slot = calloc(1, sizeof(**slot))) == NULL)
        refusal = "421 4.3.0 Out of memory, try again later";
    if (refusal == NULL) {
        memcpy((*slot)->addr, key, 16);
        (*slot)->count++;
        p->per_listener[listener]++;
    }
    pthread_mutex_unlock(&p->lock);
    return refusal;
}

static void listener_worker_maybe_end(struct listener_worker *w);

static void listener_on_session_closed(void *owner, const struct sockaddr *peer, bool admitted)
{
    struct listener_sock *ls = owner;
    struct listener_worker *w = ls->w;
    struct listener_pool *p = w->pool;
    if (admitted) {
        uint8_t key[16];
        listener_ip_key(peer, key);
        pthread_mutex_lock(&p->lock);
        struct listener_ip **slot = listener_ip_slot(p, key);
        if (*slot != NULL && --(*slot)->count == 0) {
            struct listener_ip *dead = *slot;
            *slot = dead->next;
            free(dead);
        }
        p->per_listener[ls->index]--;
        pthread_mutex_unlock(&p->lock);
    }
    listener_worker_maybe_end(w);
}

/* ---- accept ---- */

static const char *listener_admit_sock(void *owner, const struct snapshot *snap, int listener,
                                       const struct sockaddr *peer)
{
    struct listener_sock *ls = owner;
    return listener_admit(ls->w, snap, listener, peer);
}

static void listener_on_connection(uv_stream_t *server, int status)
{
    struct listener_sock *ls = server->data;
    struct listener_worker *w = ls->w;
    if (status != 0 || w->stopping)
        return;
    struct snapshot *snap = snapshot_current();
    struct smtp_in_env env = {
        .loop = &w->loop,
        .snap = snap,
        .listener = ls->index,
        .list = &w->sessions,
        .admit = listener_admit_sock,
        .on_closed = listener_on_session_closed,
        .owner = ls,
    };
    int rc = smtp_in_accept(&env, server);
    if (rc != 0)
        maillog_warning("accept failed: %s", uv_strerror(rc));
    snapshot_unref(snap);
}

/* ---- bind ---- */

static int listener_bind_one(const struct conf_listener *l)
{
    int fd = socket(l->addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -1;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (l->addr.ss_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    if (bind(fd, (const struct sockaddr *)&l->addr, (socklen_t)l->addrlen) != 0 ||
        listen(fd, LISTENER_BACKLOG) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

static int listener_bind_worker(struct listener_worker *w, const struct config *cfg, FILE *errs)
{
    w->nsocks = cfg->nlisteners;
    w->socks = calloc(w->nsocks ? w->nsocks : 1, sizeof(*w->socks));
    if (w->socks == NULL)
        return -1;
    for (size_t i = 0; i < w->nsocks; i++) {
        const struct conf_listener *l = &cfg->listeners[i];
        w->socks[i].w = w;
        w->socks[i].index = (int)i;
        w->socks[i].fd = listener_bind_one(l);
        if (w->socks[i].fd < 0) {
            fprintf(errs, "%s:%d: listener %s: cannot bind %s: %s\n", cfg->path, l->line, l->name,
                    l->address, strerror(errno));
            return -1;
        }
    }
    return 0;
}

/* ---- worker threads ---- */

static void listener_on_closed_handle(uv_handle_t *h)
{
    (void)h;
}

static void listener_worker_maybe_end(struct listener_worker *w)
{
    if (!w->stopping || w->ended || w->sessions.count > 0)
        return;
    w->ended = true;
    uv_close((uv_handle_t *)&w->wake, listener_on_closed_handle);
}

static void listener_on_wake(uv_async_t *a)
{
    struct listener_worker *w = a->data;
    int cmd = __atomic_load_n(&w->pool->command, __ATOMIC_ACQUIRE);
    if (cmd == LISTENER_RUN)
        return;
    if (!w->stopping) {
        w->stopping = true;
        for (size_t i = 0; i < w->nsocks; i++)
            uv_close((uv_handle_t *)&w->socks[i].tcp, listener_on_closed_handle);
    }
    smtp_in_shutdown_all(&w->sessions, cmd == LISTENER_FORCE);
    listener_worker_maybe_end(w);
}

static void listener_worker_main(void *arg)
{
    struct listener_worker *w = arg;
    uv_run(&w->loop, UV_RUN_DEFAULT);
    uv_loop_close(&w->loop);
    __atomic_add_fetch(&w->pool->ended, 1, __ATOMIC_ACQ_REL);
    if (w->pool->notify != NULL)
        uv_async_send(w->pool->notify);
}

static int listener_worker_init(struct listener_worker *w)
{
    if (uv_loop_init(&w->loop) != 0)
        return -1;
    uv_async_init(&w->loop, &w->wake, listener_on_wake);
    w->wake.data = w;
    for (size_t i = 0; i < w->nsocks; i++) {
        struct listener_sock *ls = &w->socks[i];
        uv_tcp_init(&w->loop, &ls->tcp);
        ls->tcp.data = ls;
        if (uv_tcp_open(&ls->tcp, ls->fd) != 0 ||
            uv_listen((uv_stream_t *)&ls->tcp, LISTENER_BACKLOG, listener_on_connection) != 0)
            return -1;
    }
    return 0;
}

struct listener_pool *listener_start(struct snapshot *snap, FILE *errs)
{
    const struct config *cfg = snap->cfg;
    struct listener_pool *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return NULL;
    pthread_mutex_init(&p->lock, NULL);
    p->nworkers = cfg->workers > 0 ? cfg->workers : 1;
    p->workers = calloc((size_t)p->nworkers, sizeof(*p->workers));
    p->nlisteners = cfg->nlisteners;
    p->per_listener = calloc(cfg->nlisteners ? cfg->nlisteners : 1, sizeof(int));
    if (p->workers == NULL || p->per_listener == NULL)
        return NULL;
    for (int i = 0; i < p->nworkers; i++) {
        p->workers[i].pool = p;
        if (listener_bind_worker(&p->workers[i], cfg, errs) != 0)
            return NULL;
    }
    /* Workers inherit a mask that blocks every signal: only the main
     * thread's loop takes them. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int failed = 0;
    for (int i = 0; i < p->nworkers && !failed; i++) {
        failed = listener_worker_init(&p->workers[i]) != 0 ||
                 uv_thread_create(&p->workers[i].thread, listener_worker_main, &p->workers[i]) != 0;
        if (failed)
            fprintf(errs, "%s:0: cannot start worker %d\n", cfg->path, i);
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return failed ? NULL : p;
}

void listener_notify(struct listener_pool *p, uv_async_t *async)
{
    p->notify = async;
}

void listener_stop(struct listener_pool *p, bool force)
{
    __atomic_store_n(&p->command, force ? LISTENER_FORCE : LISTENER_STOP, __ATOMIC_RELEASE);
    for (int i = 0; i < p->nworkers; i++)
        uv_async_send(&p->workers[i].wake);
}

bool listener_done(struct listener_pool *p)
{
    return __atomic_load_n(&p->ended, __ATOMIC_ACQUIRE) == p->nworkers;
}

void listener_free(struct listener_pool *p)
{
    for (int i = 0; i < p->nworkers; i++) {
        uv_thread_join(&p->workers[i].thread);
        free(p->workers[i].socks);
    }
    for (size_t b = 0; b < LISTENER_IP_BUCKETS; b++) {
        while (p->ips[b] != NULL) {
            struct listener_ip *dead = p->ips[b];
            p->ips[b] = dead->next;
            free(dead);
        }
    }
    pthread_mutex_destroy(&p->lock);
    free(p->per_listener);
    free(p->workers);
    free(p);
}
