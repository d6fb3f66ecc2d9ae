/*
 * relay: one inbound session's next hops.  Must not: write to the client or
 * answer 250 to a message the next hop has not accepted.
 */
#include "relay.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy.h"
#include "route.h"

struct relay {
    uv_loop_t *loop;
    struct snapshot *snap;
    const struct conf_listener *listener;
    uint64_t icid;
    uint64_t mid;
    const struct conf_route *route; /* chosen at the first recipient */
    struct route_maildir *maildir;
    bool orphaned; /* the session is gone */
    int busy;      /* async work in flight */
    relay_cb cb;
    void *arg;
    char reply[512];
};

struct relay *relay_new(uv_loop_t *loop, struct snapshot *snap, int listener, uint64_t icid)
{
    struct relay *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return NULL;
    r->loop = loop;
    r->snap = snapshot_ref(snap);
    r->listener = &snap->cfg->listeners[listener];
    r->icid = icid;
    return r;
}

static void relay_destroy(struct relay *r)
{
    route_maildir_abort(r->maildir);
    snapshot_unref(r->snap);
    free(r);
}

void relay_free(struct relay *r)
{
    if (r == NULL)
        return;
    r->orphaned = true;
    if (r->busy == 0)
        relay_destroy(r);
}

void relay_reset(struct relay *r)
{
    route_maildir_abort(r->maildir);
    r->maildir = NULL;
    r->route = NULL;
    r->mid = 0;
}

void relay_mail(struct relay *r, uint64_t mid, const struct smtp_path *from, relay_cb cb, void *arg)
{
    (void)from;
    relay_reset(r);
    r->mid = mid;
    cb(arg, "250 2.1.0 Ok");
}

/* The route for DOMAIN: the listener's route (edge mode), else the static
 * route covering the domain; NULL means MX delivery. */
static const struct conf_route *relay_route_for(const struct relay *r, const char *domain)
{
    if (r->listener->route != NULL)
        return config_route(r->snap->cfg, r->listener->route);
    return policy_route_for_domain(r->snap->cfg, domain);
}

void relay_rcpt(struct relay *r, unsigned rid, const struct smtp_path *to, relay_cb cb, void *arg)
{
    (void)rid;
    const struct conf_route *route = relay_route_for(r, to->domain);
    if (r->route != NULL && route != r->route) {
        cb(arg, "452 4.5.3 Recipient for another route: send it in a new transaction");
        return;
    }
    if (route == NULL || route->maildir == NULL) {
        snprintf(r->reply, sizeof(r->reply), "451 4.4.0 No delivery path for %s",
                 to->domain[0] ? to->domain : "this recipient");
        cb(arg, r->reply);
        return;
    }
    r->route = route;
    cb(arg, "250 2.1.5 Ok");
}

void relay_data(struct relay *r, const char *received, relay_cb cb, void *arg)
{
    char err[512];
    r->maildir =
        route_maildir_begin(r->route->maildir, r->mid, r->snap->cfg->hostname, err, sizeof(err));
    if (r->maildir == NULL) {
        cb(arg, "451 4.3.0 Error: local delivery failed");
        return;
    }
    route_maildir_write(r->maildir, received, strlen(received));
    cb(arg, "354 End data with <CR><LF>.<CR><LF>");
}

void relay_write(struct relay *r, const char *buf, size_t len)
{
    if (r->maildir != NULL)
        route_maildir_write(r->maildir, buf, len);
}

static void relay_on_commit(void *arg, int status, const char *err)
{
    struct relay *r = arg;
    (void)err;
    r->busy--;
    if (r->orphaned) {
        if (r->busy == 0)
            relay_destroy(r);
        return;
    }
    if (status == 0)
        snprintf(r->reply, sizeof(r->reply), "250 2.0.0 Ok: queued as %llu",
                 (unsigned long long)r->mid);
    else
        snprintf(r->reply, sizeof(r->reply), "451 4.3.0 Error: local delivery failed");
    r->cb(r->arg, r->reply);
}

void relay_end(struct relay *r, relay_cb cb, void *arg)
{
    if (r->maildir == NULL) {
        cb(arg, "451 4.3.0 Error: local delivery failed");
        return;
    }
    struct route_maildir *m = r->maildir;
    r->maildir = NULL;
    r->cb = cb;
    r->arg = arg;
    r->busy++;
    route_maildir_commit(r->loop, m, relay_on_commit, r);
}
