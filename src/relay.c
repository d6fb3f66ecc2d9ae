/*
 * relay: one inbound session's transactions and their next hops — a Maildir
 * or a delivery session (smtp_out) chosen at the first recipient and reused
 * by later transactions to the same route.  Must not: write to the client,
 * answer 250 to a message the next hop has not accepted, or let the end of
 * a message the client did not finish reach the next hop.
 */
#include "relay.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alert.h"
#include "maillog.h"
#include "policy.h"
#include "route.h"
#include "route_mx.h"
#include "smtp_out.h"

#define RELAY_CONNECT_TIMEOUT 30
#define RELAY_COMMAND_TIMEOUT 300 /* RFC 5321 4.5.3.2: 5 minutes */
#define RELAY_DATA_TIMEOUT    600 /* RFC 5321 4.5.3.2.6: 10 minutes */
#define RELAY_MAX_TARGETS     32

enum relay_step {
    RELAY_IDLE,    /* no transaction at the next hop */
    RELAY_OPENING, /* resolving and connecting for the first recipient */
    RELAY_MAIL,    /* MAIL sent at the next hop */
    RELAY_BODY,    /* between 354 and the end of data */
    RELAY_DONE     /* end of data answered */
};

struct relay {
    uv_loop_t *loop;
    struct snapshot *snap;
    const struct conf_listener *listener;
    uint64_t icid;
    uint64_t mid;
    struct smtp_path from;
    /* the next hop of this transaction */
    const struct conf_route *route; /* static or Maildir route; NULL with MX */
    char key[300];                  /* route name, or "mx:" domain */
    char domain[256];               /* domain of the first recipient */
    struct route_maildir *maildir;
    struct smtp_out *out; /* kept across transactions of the same key */
    char out_key[300];
    enum relay_step step;
    bool mail_failed;
    bool rcpt_waits; /* a next hop without PIPELINING: RCPT goes after MAIL's 2xx */
    char mail_reply[1024];
    char rids[512]; /* "0, 1, 2" */
    unsigned pending_rid;
    char pending_rcpt[SMTP_PATH_MAX + 40];
    /* flow control towards smtp_in */
    relay_flow_cb flow;
    void *flow_arg;
    bool orphaned; /* the session is gone */
    int busy;      /* async work in flight */
    relay_cb cb;
    void *arg;
    char reply[1200];
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

void relay_set_flow(struct relay *r, relay_flow_cb flow, void *arg)
{
    r->flow = flow;
    r->flow_arg = arg;
}

static void relay_drop_out(struct relay *r, bool graceful)
{
    if (r->out == NULL)
        return;
    if (graceful)
        smtp_out_close(r->out);
    else
        smtp_out_abort(r->out);
    r->out = NULL;
    r->out_key[0] = '\0';
}

static void relay_destroy(struct relay *r)
{
    route_maildir_abort(r->maildir);
    snapshot_unref(r->snap);
    free(r);
}

/* Returns true if R was destroyed: the session is gone and nothing is in
 * flight any more. */
static bool relay_release(struct relay *r)
{
    r->busy--;
    if (r->orphaned && r->busy == 0) {
        relay_destroy(r);
        return true;
    }
    return r->orphaned;
}

void relay_reset(struct relay *r)
{
    route_maildir_abort(r->maildir);
    r->maildir = NULL;
    if (r->out != NULL) {
        if (r->step == RELAY_BODY || r->step == RELAY_OPENING || !smtp_out_usable(r->out))
            relay_drop_out(r, false); /* never let a half message end */
        else if (r->step == RELAY_MAIL)
            smtp_out_command(r->out, "RSET", NULL, NULL);
    }
    r->step = RELAY_IDLE;
    r->route = NULL;
    r->key[0] = '\0';
    r->mid = 0;
    r->mail_failed = false;
    r->rcpt_waits = false;
    r->rids[0] = '\0';
}

void relay_free(struct relay *r)
{
    if (r == NULL)
        return;
    if (r->step != RELAY_BODY && r->step != RELAY_OPENING)
        relay_drop_out(r, true); /* QUIT, after an RSET still in flight */
    relay_reset(r);              /* aborts a delivery in the middle of a message */
    r->orphaned = true;
    if (r->busy == 0)
        relay_destroy(r);
}

void relay_mail(struct relay *r, uint64_t mid, const struct smtp_path *from, relay_cb cb, void *arg)
{
    relay_reset(r);
    r->mid = mid;
    r->from = *from;
    /* The next hop is not known before the first recipient: MAIL is sent
     * there together with it, and its reply answers that RCPT. */
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

static void relay_add_rid(struct relay *r, unsigned rid)
{
    size_t n = strlen(r->rids);
    snprintf(r->rids + n, sizeof(r->rids) - n, "%s%u", n ? ", " : "", rid);
}

/* ---- a recipient at the next hop ---- */

static void relay_log_bounce(struct relay *r, const char *rids, const char *reply)
{
    char clean[600];
    maillog_clean(clean, sizeof(clean), reply);
    maillog_info("Bounced: DCID %llu MID %llu to RID %s - %.3s - %s",
                 (unsigned long long)smtp_out_dcid(r->out), (unsigned long long)r->mid, rids, clean,
                 strlen(clean) > 4 ? clean + 4 : "");
}

static void relay_on_rcpt(void *arg, const char *reply)
{
    struct relay *r = arg;
    if (relay_release(r))
        return;
    if (r->mail_failed) {
        r->cb(r->arg, r->mail_reply);
        return;
    }
    if (reply[0] == '2') {
        relay_add_rid(r, r->pending_rid);
    } else if (reply[0] == '5') {
        char rid[16];
        snprintf(rid, sizeof(rid), "%u", r->pending_rid);
        relay_log_bounce(r, rid, reply);
    }
    r->cb(r->arg, reply);
}

static void relay_send_rcpt(struct relay *r)
{
    char line[SMTP_PATH_MAX + 60];
    snprintf(line, sizeof(line), "RCPT TO:<%s>", r->pending_rcpt);
    r->busy++;
    smtp_out_command(r->out, line, relay_on_rcpt, r);
}

static void relay_on_mail(void *arg, const char *reply)
{
    struct relay *r = arg;
    if (relay_release(r))
        return;
    if (reply[0] != '2') {
        r->mail_failed = true;
        snprintf(r->mail_reply, sizeof(r->mail_reply), "%s", reply);
    }
    if (!r->rcpt_waits)
        return;
    r->rcpt_waits = false;
    if (r->mail_failed)
        r->cb(r->arg, r->mail_reply); /* no transaction, no RCPT (RFC 5321 4.1.4) */
    else
        relay_send_rcpt(r);
}

/* MAIL (once per transaction, with the client's parameters that the next
 * hop can take) and the pending RCPT: together when the next hop offers
 * PIPELINING, else the RCPT once MAIL is accepted. */
static void relay_send_mail_rcpt(struct relay *r)
{
    char line[SMTP_PATH_MAX + 600];
    int n = snprintf(line, sizeof(line), "MAIL FROM:<%s>", r->from.addr);
    if (r->from.size >= 0 && smtp_out_has(r->out, "SIZE"))
        n += snprintf(line + n, sizeof(line) - (size_t)n, " SIZE=%lld", r->from.size);
    if (r->from.body == 8 && smtp_out_has(r->out, "8BITMIME"))
        snprintf(line + n, sizeof(line) - (size_t)n, " BODY=8BITMIME");
    r->step = RELAY_MAIL;
    r->busy++;
    smtp_out_command(r->out, line, relay_on_mail, r);
    if (smtp_out_has(r->out, "PIPELINING"))
        relay_send_rcpt(r);
    else
        r->rcpt_waits = true;
}

static void relay_on_ready(void *arg, const char *failure)
{
    struct relay *r = arg;
    if (relay_release(r))
        return;
    if (failure != NULL) {
        relay_drop_out(r, false);
        r->step = RELAY_IDLE;
        r->cb(r->arg, failure);
        return;
    }
    relay_send_mail_rcpt(r);
}

static void relay_on_required_failure(void *arg, const char *domain, const char *why)
{
    struct relay *r = arg;
    alert_raise(r->loop, r->snap, domain, why);
}

static void relay_open(struct relay *r, const struct smtp_out_target *t, size_t n)
{
    const struct config *cfg = r->snap->cfg;
    const struct conf_destination *dest = policy_destination(cfg, r->domain);
    struct smtp_out_opts opts = {
        .loop = r->loop,
        .ctx = r->snap->client_ctx,
        .route = r->route,
        .domain = r->domain,
        .level = policy_tls_out(cfg, r->route, r->domain),
        .fallback_plaintext = dest ? dest->fallback_plaintext : false,
        .helo = cfg->hostname,
        .connect_timeout = cfg->connect_timeout,
        .command_timeout = cfg->delivery_timeout,
        .data_timeout = cfg->delivery_timeout * 2,
        .on_required_failure = relay_on_required_failure,
        .alert_arg = r,
    };
    r->busy++;
    r->out = smtp_out_open(&opts, t, n, relay_on_ready, r);
    if (r->out == NULL) {
        r->busy--;
        r->step = RELAY_IDLE;
        r->cb(r->arg, "451 4.3.0 Cannot start a delivery session");
        return;
    }
    snprintf(r->out_key, sizeof(r->out_key), "%s", r->key);
}

static void relay_on_host(void *arg, const struct sockaddr_storage *addrs, size_t n,
                          const char *err)
{
    struct relay *r = arg;
    if (relay_release(r))
        return;
    if (n == 0) {
        snprintf(r->reply, sizeof(r->reply), "451 4.4.3 Cannot resolve %s: %s", r->route->host,
                 err);
        r->step = RELAY_IDLE;
        r->cb(r->arg, r->reply);
        return;
    }
    struct smtp_out_target t[RELAY_MAX_TARGETS];
    size_t k = n < RELAY_MAX_TARGETS ? n : RELAY_MAX_TARGETS;
    for (size_t i = 0; i < k; i++) {
        snprintf(t[i].host, sizeof(t[i].host), "%s", r->route->host);
        t[i].addr = addrs[i];
    }
    relay_open(r, t, k);
}

/* The client's reply when the MX lookup found no next hop; NULL if it did. */
static const char *relay_mx_failure(struct relay *r, const struct route_mx_result *res)
{
    switch (res->status) {
    case ROUTE_MX_OK:
        return NULL;
    case ROUTE_MX_NULL_MX: /* RFC 7505 section 4.2 */
        snprintf(r->reply, sizeof(r->reply),
                 "556 5.1.10 Recipient address rejected: %s does not accept mail (null MX)",
                 r->domain);
        break;
    case ROUTE_MX_NXDOMAIN:
    case ROUTE_MX_NODATA:
        snprintf(r->reply, sizeof(r->reply),
                 "450 4.1.2 Recipient address rejected: %s: no mail server found", r->domain);
        break;
    default:
        snprintf(r->reply, sizeof(r->reply), "451 4.4.3 Cannot look up the mail servers of %s",
                 r->domain);
    }
    return r->reply;
}

static void relay_on_mx(void *arg, struct route_mx_result *res)
{
    struct relay *r = arg;
    if (relay_release(r)) {
        route_mx_result_free(res);
        return;
    }
    const char *fail = relay_mx_failure(r, res);
    if (fail != NULL) {
        maillog_info("MID %llu RID [%u] lookup of %s: %s: %s", (unsigned long long)r->mid,
                     r->pending_rid, r->domain, route_mx_status_name(res->status), res->error);
        route_mx_result_free(res);
        r->step = RELAY_IDLE;
        r->cb(r->arg, fail);
        return;
    }
    struct smtp_out_target t[RELAY_MAX_TARGETS];
    size_t k = 0;
    for (size_t i = 0; i < res->ntargets && k < RELAY_MAX_TARGETS; i++, k++) {
        snprintf(t[k].host, sizeof(t[k].host), "%s",
                 res->targets[i].literal ? "" : res->targets[i].host);
        t[k].addr = res->targets[i].addr;
    }
    route_mx_result_free(res);
    relay_open(r, t, k);
}

/* First recipient of a transaction that goes to a host: reuse the open
 * session of the same route, or resolve and connect. */
static void relay_first_remote(struct relay *r)
{
    if (r->out != NULL && strcmp(r->out_key, r->key) == 0 && smtp_out_usable(r->out)) {
        relay_send_mail_rcpt(r);
        return;
    }
    relay_drop_out(r, true);
    r->step = RELAY_OPENING;
    r->busy++;
    int rc = r->route != NULL
                 ? route_resolve_host(r->loop, r->route->host, r->route->port, relay_on_host, r)
                 : route_mx_resolve(r->loop, r->domain, r->snap->cfg->mx_port, relay_on_mx, r);
    if (rc != 0) {
        r->busy--;
        r->step = RELAY_IDLE;
        r->cb(r->arg, "451 4.3.0 Cannot start a lookup");
    }
}

void relay_rcpt(struct relay *r, unsigned rid, const struct smtp_path *to, relay_cb cb, void *arg)
{
    const struct conf_route *route = relay_route_for(r, to->domain);
    char key[300];
    if (route != NULL)
        snprintf(key, sizeof(key), "route:%s", route->name);
    else
        snprintf(key, sizeof(key), "mx:%s", to->domain);
    if (r->key[0] != '\0' && strcmp(key, r->key) != 0) {
        cb(arg, "452 4.5.3 Recipient for another route: send it in a new transaction");
        return;
    }
    r->cb = cb;
    r->arg = arg;
    r->pending_rid = rid;
    snprintf(r->pending_rcpt, sizeof(r->pending_rcpt), "%s", to->addr);
    bool first = r->key[0] == '\0';
    if (first) {
        snprintf(r->key, sizeof(r->key), "%s", key);
        snprintf(r->domain, sizeof(r->domain), "%s", to->domain);
        r->route = route;
    }
    if (route != NULL && route->maildir != NULL) {
        relay_add_rid(r, rid);
        cb(arg, "250 2.1.5 Ok");
    } else if (route == NULL && to->domain[0] == '\0') {
        r->key[0] = first ? '\0' : r->key[0];
        cb(arg, "550 5.1.1 <postmaster> has no route here");
    } else if (first) {
        relay_first_remote(r);
    } else if (r->mail_failed) {
        cb(arg, r->mail_reply);
    } else if (r->out != NULL && r->step == RELAY_MAIL) {
        relay_send_rcpt(r);
    } else {
        cb(arg, "451 4.4.2 Connection to the next hop lost");
    }
}

/* ---- the message ---- */

static void relay_log_delivery(struct relay *r, const char *what)
{
    maillog_info("%s DCID %llu MID %llu to RID [%s]", what,
                 (unsigned long long)smtp_out_dcid(r->out), (unsigned long long)r->mid, r->rids);
}

static void relay_on_data(void *arg, const char *reply)
{
    struct relay *r = arg;
    if (relay_release(r))
        return;
    if (reply[0] == '3') {
        r->step = RELAY_BODY;
        smtp_out_write(r->out, r->reply, strlen(r->reply)); /* the Received: header */
        r->cb(r->arg, "354 End data with <CR><LF>.<CR><LF>");
        return;
    }
    r->cb(r->arg, reply);
}

static void relay_on_drain(void *arg)
{
    struct relay *r = arg;
    if (r->flow != NULL)
        r->flow(r->flow_arg, false);
}

void relay_data(struct relay *r, const char *received, relay_cb cb, void *arg)
{
    if (r->route != NULL && r->route->maildir != NULL) {
        char err[512];
        r->maildir = route_maildir_begin(r->route->maildir, r->mid, r->snap->cfg->hostname, err,
                                         sizeof(err));
        if (r->maildir == NULL) {
            maillog_warning("MID %llu Maildir delivery failed: %s", (unsigned long long)r->mid,
                            err);
            cb(arg, "451 4.3.0 Error: local delivery failed");
            return;
        }
        route_maildir_write(r->maildir, received, strlen(received));
        cb(arg, "354 End data with <CR><LF>.<CR><LF>");
        return;
    }
    if (r->out == NULL || r->step != RELAY_MAIL || r->rids[0] == '\0') {
        cb(arg, "451 4.4.2 Connection to the next hop lost");
        return;
    }
    relay_log_delivery(r, "Delivery start");
    snprintf(r->reply, sizeof(r->reply), "%s", received);
    r->cb = cb;
    r->arg = arg;
    smtp_out_on_drain(r->out, relay_on_drain, r);
    r->busy++;
    smtp_out_command(r->out, "DATA", relay_on_data, r);
}

bool relay_write(struct relay *r, const char *buf, size_t len)
{
    if (r->maildir != NULL) {
        route_maildir_write(r->maildir, buf, len);
        return false;
    }
    if (r->out != NULL && r->step == RELAY_BODY)
        return smtp_out_write(r->out, buf, len);
    return false;
}

static void relay_on_commit(void *arg, int status, const char *err)
{
    struct relay *r = arg;
    if (status != 0 && !r->orphaned)
        maillog_warning("MID %llu Maildir delivery failed: %s", (unsigned long long)r->mid, err);
    if (relay_release(r))
        return;
    if (status == 0)
        snprintf(r->reply, sizeof(r->reply), "250 2.0.0 Ok: queued as %llu",
                 (unsigned long long)r->mid);
    else
        snprintf(r->reply, sizeof(r->reply), "451 4.3.0 Error: local delivery failed");
    r->step = RELAY_DONE;
    r->cb(r->arg, r->reply);
}

static void relay_on_end(void *arg, const char *reply)
{
    struct relay *r = arg;
    if (relay_release(r))
        return;
    char clean[600];
    maillog_clean(clean, sizeof(clean), reply);
    if (reply[0] == '2') {
        relay_log_delivery(r, "Message done");
        maillog_info("MID %llu RID [%s] Response '%s'", (unsigned long long)r->mid, r->rids,
                     strlen(clean) > 4 ? clean + 4 : clean);
    } else if (reply[0] == '5') {
        /* ESA writes one Bounced line per recipient */
        char rids[sizeof(r->rids)], *save = NULL;
        snprintf(rids, sizeof(rids), "%s", r->rids);
        for (char *rid = strtok_r(rids, ", ", &save); rid; rid = strtok_r(NULL, ", ", &save))
            relay_log_bounce(r, rid, reply);
    } else {
        maillog_info("MID %llu RID [%s] Response '%s'", (unsigned long long)r->mid, r->rids, clean);
    }
    r->step = RELAY_DONE;
    r->cb(r->arg, reply);
}

void relay_end(struct relay *r, relay_cb cb, void *arg)
{
    r->cb = cb;
    r->arg = arg;
    if (r->maildir != NULL) {
        struct route_maildir *m = r->maildir;
        r->maildir = NULL;
        r->busy++;
        route_maildir_commit(r->loop, m, relay_on_commit, r);
        return;
    }
    if (r->out == NULL || r->step != RELAY_BODY) {
        cb(arg, "451 4.4.2 Connection to the next hop lost");
        return;
    }
    r->busy++;
    smtp_out_end(r->out, relay_on_end, r);
}
