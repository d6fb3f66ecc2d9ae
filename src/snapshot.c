/*
 * snapshot: config + SSL_CTXs, refcounted and swapped atomically.
 */
#include "snapshot.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "certstore.h"

static pthread_mutex_t snapshot_lock = PTHREAD_MUTEX_INITIALIZER;
static struct snapshot *snapshot_cur;

static bool snapshot_needs_tls(const struct conf_listener *l)
{
    return l->tls != TLS_IN_OFF || l->implicit_tls;
}

struct snapshot *snapshot_new(struct config *cfg, FILE *errs)
{
    struct snapshot *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    s->refs = 1;
    s->cfg = cfg;
    s->server_ctx = calloc(cfg->nlisteners ? cfg->nlisteners : 1, sizeof(*s->server_ctx));
    int bad = s->server_ctx == NULL;
    for (size_t i = 0; !bad && i < cfg->nlisteners; i++) {
        const struct conf_listener *l = &cfg->listeners[i];
        if (!snapshot_needs_tls(l))
            continue;
        char err[512];
        s->server_ctx[i] = certstore_server_ctx(cfg, l, err, sizeof(err));
        if (s->server_ctx[i] == NULL) {
            fprintf(errs, "%s:%d: listener %s: certificate %s: %s\n", cfg->path, l->line, l->name,
                    l->certificate, err);
            bad = 1;
        }
    }
    char err[512];
    if (!bad && (s->client_ctx = certstore_client_ctx(cfg, err, sizeof(err))) == NULL) {
        fprintf(errs, "%s:0: outbound TLS: %s\n", cfg->path, err);
        bad = 1;
    }
    if (bad) {
        snapshot_unref(s);
        return NULL;
    }
    return s;
}

struct snapshot *snapshot_ref(struct snapshot *s)
{
    __atomic_add_fetch(&s->refs, 1, __ATOMIC_RELAXED);
    return s;
}

void snapshot_unref(struct snapshot *s)
{
    if (s == NULL || __atomic_sub_fetch(&s->refs, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    for (size_t i = 0; s->server_ctx && i < s->cfg->nlisteners; i++)
        certstore_ctx_free(s->server_ctx[i]);
    free(s->server_ctx);
    certstore_ctx_free(s->client_ctx);
    config_unref(s->cfg);
    free(s);
}

struct snapshot *snapshot_current(void)
{
    pthread_mutex_lock(&snapshot_lock);
    struct snapshot *s = snapshot_cur ? snapshot_ref(snapshot_cur) : NULL;
    pthread_mutex_unlock(&snapshot_lock);
    return s;
}

void snapshot_install(struct snapshot *s)
{
    pthread_mutex_lock(&snapshot_lock);
    struct snapshot *old = snapshot_cur;
    snapshot_cur = s;
    pthread_mutex_unlock(&snapshot_lock);
    snapshot_unref(old);
}

int snapshot_listener_index(const struct snapshot *s, const char *name)
{
    for (size_t i = 0; i < s->cfg->nlisteners; i++)
        if (strcmp(s->cfg->listeners[i].name, name) == 0)
            return (int)i;
    return -1;
}
