/*
 * alert: rate-limited alert messages about failed required TLS levels.
 * Must not: block the loop, or alert about an alert.
 */
#include "alert.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "maillog.h"
#include "route.h"
#include "smtp_out.h"

#define ALERT_SLOTS    256
#define ALERT_TEXT_MAX 4096

struct alert_slot {
    char domain[256];
    time_t last;
};

static pthread_mutex_t alert_lock = PTHREAD_MUTEX_INITIALIZER;
static struct alert_slot alert_slots[ALERT_SLOTS];

bool alert_due(const char *domain, time_t now, int interval)
{
    bool due = true;
    pthread_mutex_lock(&alert_lock);
    struct alert_slot *free_slot = NULL, *oldest = &alert_slots[0];
    for (size_t i = 0; i < ALERT_SLOTS; i++) {
        struct alert_slot *s = &alert_slots[i];
        if (s->domain[0] == '\0') {
            if (free_slot == NULL)
                free_slot = s;
            continue;
        }
        if (s->last < oldest->last)
            oldest = s;
        if (strcasecmp(s->domain, domain) == 0) {
            due = now - s->last >= interval;
            if (due)
                s->last = now;
            pthread_mutex_unlock(&alert_lock);
            return due;
        }
    }
    struct alert_slot *s = free_slot ? free_slot : oldest;
    snprintf(s->domain, sizeof(s->domain), "%s", domain);
    s->last = now;
    pthread_mutex_unlock(&alert_lock);
    return due;
}

/* One alert on its way: the text, and for a host route the session. */
struct alert_msg {
    uv_loop_t *loop;
    struct snapshot *snap;
    const struct conf_route *route;
    char domain[256];
    struct smtp_out *out;
    size_t next_rcpt;
    char text[ALERT_TEXT_MAX];
};

static void alert_finish(struct alert_msg *a, const char *failure)
{
    const struct conf_alerts *al = &a->snap->cfg->alerts;
    if (failure != NULL)
        maillog_warning("alert about %s could not be delivered through route %s: %s", a->domain,
                        al->route, failure);
    else
        maillog_info("alert about %s sent to %zu recipients through route %s", a->domain,
                     al->nrecipients, al->route);
    if (a->out != NULL)
        smtp_out_close(a->out);
    snapshot_unref(a->snap);
    free(a);
}

/* The message: headers, then BODY (CRLF lines). */
static void alert_compose(struct alert_msg *a, const char *subject, const char *body)
{
    const struct config *cfg = a->snap->cfg;
    char date[64], to[1024] = "";
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S %z", &tm);
    for (size_t i = 0, n = 0; i < cfg->alerts.nrecipients && n < sizeof(to); i++)
        n += (size_t)snprintf(to + n, sizeof(to) - n, "%s%s", i ? ", " : "",
                              cfg->alerts.recipients[i]);
    snprintf(a->text, sizeof(a->text),
             "From: tlsgate <postmaster@%s>\r\nTo: %s\r\nSubject: tlsgate alert: %s\r\n"
             "Date: %s\r\nMessage-ID: <alert.%lld.%d@%s>\r\nAuto-Submitted: auto-generated\r\n"
             "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n%s"
             "\r\nFurther alerts about this are suppressed for %d seconds; the mail log has "
             "every\r\noccurrence.\r\n",
             cfg->hostname, to, subject, date, (long long)now, (int)getpid(), cfg->hostname, body,
             cfg->alerts.interval);
}

static void alert_on_commit(void *arg, int status, const char *err)
{
    alert_finish(arg, status == 0 ? NULL : err);
}

static void alert_to_maildir(struct alert_msg *a)
{
    char err[512];
    struct route_maildir *m =
        route_maildir_begin(a->route->maildir, 0, a->snap->cfg->hostname, err, sizeof(err));
    if (m == NULL) {
        alert_finish(a, err);
        return;
    }
    route_maildir_write(m, a->text, strlen(a->text));
    route_maildir_commit(a->loop, m, alert_on_commit, a);
}

/* ---- through a host: MAIL FROM:<>, each RCPT, DATA, text, end ---- */

static void alert_send_next(struct alert_msg *a);

static void alert_on_end(void *arg, const char *reply)
{
    struct alert_msg *a = arg;
    alert_finish(a, reply[0] == '2' ? NULL : reply);
}

static void alert_on_data(void *arg, const char *reply)
{
    struct alert_msg *a = arg;
    if (reply[0] != '3') {
        alert_finish(a, reply);
        return;
    }
    smtp_out_write(a->out, a->text, strlen(a->text));
    smtp_out_end(a->out, alert_on_end, a);
}

static void alert_on_reply(void *arg, const char *reply)
{
    struct alert_msg *a = arg;
    if (reply[0] != '2') {
        alert_finish(a, reply);
        return;
    }
    alert_send_next(a);
}

static void alert_send_next(struct alert_msg *a)
{
    const struct conf_alerts *al = &a->snap->cfg->alerts;
    if (a->next_rcpt < al->nrecipients) {
        char line[600];
        snprintf(line, sizeof(line), "RCPT TO:<%s>", al->recipients[a->next_rcpt++]);
        smtp_out_command(a->out, line, alert_on_reply, a);
        return;
    }
    smtp_out_command(a->out, "DATA", alert_on_data, a);
}

static void alert_on_ready(void *arg, const char *failure)
{
    struct alert_msg *a = arg;
    if (failure != NULL) {
        alert_finish(a, failure);
        return;
    }
    smtp_out_command(a->out, "MAIL FROM:<>", alert_on_reply, a);
}

static void alert_on_host(void *arg, const struct sockaddr_storage *addrs, size_t n,
                          const char *err)
{
    struct alert_msg *a = arg;
    if (n == 0) {
        alert_finish(a, err);
        return;
    }
    struct smtp_out_target t[8];
    size_t k = n < 8 ? n : 8;
    for (size_t i = 0; i < k; i++) {
        snprintf(t[i].host, sizeof(t[i].host), "%s", a->route->host);
        t[i].addr = addrs[i];
    }
    const struct config *cfg = a->snap->cfg;
    struct smtp_out_opts opts = {
        .loop = a->loop,
        .ctx = a->snap->client_ctx,
        .route = a->route,
        .domain = a->route->host,
        .level = a->route->tls >= 0 ? (enum tls_out_level)a->route->tls : TLS_OUT_PREFERRED,
        .helo = cfg->hostname,
        .connect_timeout = cfg->connect_timeout,
        .command_timeout = cfg->delivery_timeout,
        .data_timeout = cfg->delivery_timeout * 2,
    };
    a->out = smtp_out_open(&opts, t, k, alert_on_ready, a);
    if (a->out == NULL)
        alert_finish(a, "cannot start a delivery session");
}

/* Sends SUBJECT/BODY about KEY unless KEY had an alert within the
 * interval. */
static void alert_send(uv_loop_t *loop, struct snapshot *snap, const char *key, const char *subject,
                       const char *body)
{
    const struct conf_alerts *al = &snap->cfg->alerts;
    if (!al->enabled || al->nrecipients == 0 || !alert_due(key, time(NULL), al->interval))
        return;
    const struct conf_route *route = config_route(snap->cfg, al->route);
    struct alert_msg *a = route ? calloc(1, sizeof(*a)) : NULL;
    if (a == NULL)
        return;
    a->loop = loop;
    a->snap = snapshot_ref(snap);
    a->route = route;
    snprintf(a->domain, sizeof(a->domain), "%.255s", key);
    alert_compose(a, subject, body);
    if (route->maildir != NULL)
        alert_to_maildir(a);
    else if (route_resolve_host(loop, route->host, route->port, alert_on_host, a) != 0)
        alert_finish(a, "cannot start a lookup");
}

void alert_raise(uv_loop_t *loop, struct snapshot *snap, const char *domain, const char *why)
{
    char subject[400], body[2048], clean[1024];
    maillog_clean(clean, sizeof(clean), why);
    snprintf(subject, sizeof(subject), "required TLS for %s failed", domain);
    snprintf(body, sizeof(body),
             "tlsgate on %s could not meet the TLS level required for %s:\r\n\r\n  %s\r\n"
             "\r\nNo message was sent to %s over a weaker connection. The sending clients were"
             "\r\nanswered with a temporary failure and will retry.\r\n",
             snap->cfg->hostname, domain, clean, domain);
    alert_send(loop, snap, domain, subject, body);
}

void alert_certificate(uv_loop_t *loop, struct snapshot *snap, const char *name, const char *text)
{
    char key[300], subject[400], body[2048], clean[1024];
    maillog_clean(clean, sizeof(clean), text);
    snprintf(key, sizeof(key), "certificate:%s", name);
    snprintf(subject, sizeof(subject), "certificate %s expires soon", name);
    snprintf(body, sizeof(body),
             "tlsgate on %s uses the certificate %s, which needs renewing:\r\n\r\n  %s\r\n"
             "\r\nRenew it with: tlsgate cert renew %s (then install the signed certificate"
             "\r\nand reload with SIGHUP).\r\n",
             snap->cfg->hostname, name, clean, name);
    alert_send(loop, snap, key, subject, body);
}
