/*
 * main: the command line, start-up, and the signals of the running gateway
 * (SIGHUP reload, SIGUSR1 log reopen, SIGTERM/SIGINT graceful stop).  Must
 * not: handle mail; the worker loops (listener) do.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <uv.h>

#include "alert.h"
#include "audit.h"
#include "cert.h"
#include "certstore.h"
#include "config.h"
#include "listener.h"
#include "maillog.h"
#include "probe.h"
#include "snapshot.h"

#define MAIN_DEFAULT_CONFIG "policy/tlsgate.ini"

static const char main_usage[] =
    "usage: tlsgate COMMAND [options]\n"
    "\n"
    "commands:\n"
    "  run   -c FILE    run the gateway in the foreground on configuration FILE\n"
    "  check -c FILE    validate FILE; every problem is printed as FILE:LINE: message\n"
    "  probe DOMAIN|HOST[:PORT] [options]   test a destination's TLS (tlsgate probe --help)\n"
    "  audit [options] LOG...               TLS on every hop, from mail logs (audit --help)\n"
    "  cert  create|csr|install|import|export|list|check|renew ...   (tlsgate cert --help)\n"
    "  trust add|list|remove|fetch ...      the trust store (tlsgate trust --help)\n"
    "\n"
    "options:\n"
    "  -c, --config FILE   configuration file (default " MAIN_DEFAULT_CONFIG ")\n"
    "  -h, --help          this text\n"
    "  -V, --version       the version\n"
    "\n"
    "signals (run): SIGHUP reloads the configuration (a bad file changes nothing),\n"
    "SIGUSR1 reopens the mail log, SIGTERM or SIGINT stops accepting, lets\n"
    "transactions in flight finish (at most shutdown_timeout seconds), answers\n"
    "idle sessions 421 4.3.2 and exits 0.\n"
    "\n"
    "exit codes: 0 success, 1 bad configuration or start-up failure, 2 usage error.\n";

struct main_state {
    const char *path;
    uv_loop_t *loop;
    uv_signal_t sighup, sigusr1, sigterm, sigint;
    uv_timer_t force;
    uv_timer_t expiry; /* daily certificate expiry check */
    uv_async_t worker_ended;
    struct listener_pool *pool;
    bool stopping;
};

/* Makes the demonstration certificate for listeners that use "demo" when
 * it is missing, and warns about every listener that serves it. */
static int main_demo_certs(const struct config *cfg)
{
    for (size_t i = 0; i < cfg->nlisteners; i++) {
        const struct conf_listener *l = &cfg->listeners[i];
        if (strcmp(l->certificate, "demo") != 0 || (l->tls == TLS_IN_OFF && !l->implicit_tls))
            continue;
        if (!certstore_exists(cfg->certs_dir, "demo")) {
            char err[512];
            if (certstore_make_demo(cfg->certs_dir, "demo", l->hostname, err, sizeof(err)) != 0) {
                fprintf(stderr, "tlsgate: %s\n", err);
                return -1;
            }
            maillog_warning("created the demonstration certificate %s/demo for %s", cfg->certs_dir,
                            l->hostname);
        }
        maillog_warning("listener %s uses the demonstration certificate %s/demo: a self-signed "
                        "certificate that cannot give verifiable TLS; install a real one with "
                        "tlsgate cert",
                        l->name, cfg->certs_dir);
    }
    return 0;
}

/* Loads PATH into a snapshot, with every problem written to ERRS. */
static struct snapshot *main_load(const char *path, FILE *errs)
{
    struct config *cfg = config_load(path, errs);
    if (cfg == NULL)
        return NULL;
    if (main_demo_certs(cfg) != 0) {
        config_unref(cfg);
        return NULL;
    }
    return snapshot_new(cfg, errs);
}

/* True when OLD and NEW bind the same listeners (a reload cannot rebind). */
static bool main_same_listeners(const struct config *old, const struct config *new)
{
    if (old->nlisteners != new->nlisteners)
        return false;
    for (size_t i = 0; i < old->nlisteners; i++) {
        if (strcmp(old->listeners[i].name, new->listeners[i].name) != 0 ||
            strcmp(old->listeners[i].address, new->listeners[i].address) != 0)
            return false;
    }
    return true;
}

static void main_reload(struct main_state *m)
{
    char *errtext = NULL;
    size_t errlen = 0;
    FILE *errs = open_memstream(&errtext, &errlen);
    if (errs == NULL)
        return;
    struct snapshot *next = main_load(m->path, errs);
    struct snapshot *cur = snapshot_current();
    if (next != NULL && !main_same_listeners(cur->cfg, next->cfg)) {
        fprintf(errs, "%s:0: listener names or addresses changed; that needs a restart\n", m->path);
        snapshot_unref(next);
        next = NULL;
    }
    snapshot_unref(cur);
    fclose(errs);
    if (next == NULL) {
        for (char *line = strtok(errtext, "\n"); line != NULL; line = strtok(NULL, "\n"))
            maillog_warning("configuration reload failed: %s", line);
        fprintf(stderr, "%s", errtext ? errtext : "");
    } else {
        snapshot_install(next);
        maillog_info("configuration reloaded from %s", m->path);
    }
    free(errtext);
}

static void main_on_signal(uv_signal_t *h, int signum);

/* Lets the main loop end.  The signal handles stay open (unreferenced)
 * until the signals are ignored, so a second SIGTERM during the last steps
 * of the shutdown cannot kill the process with the default action. */
static void main_close_all(struct main_state *m)
{
    uv_unref((uv_handle_t *)&m->sighup);
    uv_unref((uv_handle_t *)&m->sigusr1);
    uv_unref((uv_handle_t *)&m->sigterm);
    uv_unref((uv_handle_t *)&m->sigint);
    uv_close((uv_handle_t *)&m->force, NULL);
    uv_close((uv_handle_t *)&m->expiry, NULL);
    uv_close((uv_handle_t *)&m->worker_ended, NULL);
}

static void main_close_signals(struct main_state *m)
{
    /* Only this thread takes signals (the workers block them); blocked
     * here, then ignored, a late signal is discarded. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGUSR1);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    uv_signal_stop(&m->sighup);
    uv_signal_stop(&m->sigusr1);
    uv_signal_stop(&m->sigterm);
    uv_signal_stop(&m->sigint);
    signal(SIGHUP, SIG_IGN);
    signal(SIGUSR1, SIG_IGN);
    signal(SIGTERM, SIG_IGN);
    signal(SIGINT, SIG_IGN);
    uv_close((uv_handle_t *)&m->sighup, NULL);
    uv_close((uv_handle_t *)&m->sigusr1, NULL);
    uv_close((uv_handle_t *)&m->sigterm, NULL);
    uv_close((uv_handle_t *)&m->sigint, NULL);
    uv_run(m->loop, UV_RUN_NOWAIT);
}

static void main_on_worker_ended(uv_async_t *a)
{
    struct main_state *m = a->data;
    if (listener_done(m->pool))
        main_close_all(m);
}

static void main_on_force(uv_timer_t *t)
{
    struct main_state *m = t->data;
    maillog_warning("shutdown timeout reached: closing the remaining sessions");
    listener_stop(m->pool, true);
}

static void main_stop(struct main_state *m)
{
    if (m->stopping)
        return;
    m->stopping = true;
    struct snapshot *cur = snapshot_current();
    uint64_t ms = (uint64_t)cur->cfg->shutdown_timeout * 1000;
    snapshot_unref(cur);
    maillog_info("shutting down: no new connections, finishing transactions in flight");
    uv_timer_start(&m->force, main_on_force, ms ? ms : 1, 0);
    listener_stop(m->pool, false);
}

static void main_on_signal(uv_signal_t *h, int signum)
{
    struct main_state *m = h->data;
    if (signum == SIGHUP && !m->stopping)
        main_reload(m);
    else if (signum == SIGUSR1 && maillog_reopen() != 0)
        fprintf(stderr, "tlsgate: cannot reopen the mail log: %s\n", strerror(errno));
    else if (signum == SIGTERM || signum == SIGINT)
        main_stop(m);
}

static void main_signal(struct main_state *m, uv_signal_t *h, int signum)
{
    uv_signal_init(m->loop, h);
    h->data = m;
    uv_signal_start(h, main_on_signal, signum);
}

struct main_expiry {
    uv_loop_t *loop;
    struct snapshot *snap;
};

static void main_expiry_warn(void *arg, const char *name, const char *subject, long days_left,
                             const char *not_after)
{
    struct main_expiry *e = arg;
    char text[700];
    if (days_left < 0)
        snprintf(text, sizeof(text), "certificate %s (%s) has expired (%s)", name, subject,
                 not_after);
    else
        snprintf(text, sizeof(text), "certificate %s (%s) expires in %ld days (%s)", name, subject,
                 days_left, not_after);
    maillog_warning("%s", text);
    alert_certificate(e->loop, e->snap, name, text);
}

/* At start and then daily: a Warning line for every configured certificate
 * that expires within 30 days. */
static void main_on_expiry(uv_timer_t *t)
{
    struct main_expiry e = {.loop = t->loop, .snap = snapshot_current()};
    if (e.snap != NULL)
        cert_expiry_scan(e.snap->cfg, main_expiry_warn, &e);
    snapshot_unref(e.snap);
}

static int main_run(const char *path)
{
    struct config *probe = config_load(path, stderr);
    if (probe == NULL)
        return 1;
    if (maillog_open(probe->maillog) != 0) {
        fprintf(stderr, "tlsgate: cannot open the mail log %s: %s\n", probe->maillog,
                strerror(errno));
        config_unref(probe);
        return 1;
    }
    int ids = maillog_ids_open(probe->state_dir);
    config_unref(probe);
    if (ids != 0)
        return 1;
    struct snapshot *snap = main_load(path, stderr);
    if (snap == NULL)
        return 1;
    snapshot_install(snap);
    struct main_state m = {.path = path, .loop = uv_default_loop()};
    m.pool = listener_start(snap, stderr);
    if (m.pool == NULL)
        return 1;
    main_signal(&m, &m.sighup, SIGHUP);
    main_signal(&m, &m.sigusr1, SIGUSR1);
    main_signal(&m, &m.sigterm, SIGTERM);
    main_signal(&m, &m.sigint, SIGINT);
    uv_timer_init(m.loop, &m.force);
    m.force.data = &m;
    uv_timer_init(m.loop, &m.expiry);
    uv_timer_start(&m.expiry, main_on_expiry, 0, 24ULL * 3600 * 1000);
    uv_async_init(m.loop, &m.worker_ended, main_on_worker_ended);
    m.worker_ended.data = &m;
    listener_notify(m.pool, &m.worker_ended);
    maillog_info("tlsgate started with %s: %zu listeners, %d workers", path, snap->cfg->nlisteners,
                 snap->cfg->workers);
    uv_run(m.loop, UV_RUN_DEFAULT);
    main_close_signals(&m);
    listener_free(m.pool);
    maillog_info("tlsgate stopped");
    snapshot_install(NULL);
    maillog_ids_close();
    maillog_close();
    uv_loop_close(m.loop);
    return 0;
}

static int main_check(const char *path)
{
    struct config *cfg = config_load(path, stderr);
    if (cfg == NULL)
        return 1;
    printf("%s: ok (%zu listeners, %zu sender groups, %zu destinations, %zu routes)\n", path,
           cfg->nlisteners, cfg->nsendergroups, cfg->ndestinations, cfg->nroutes);
    config_unref(cfg);
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    if (argc < 2) {
        fputs(main_usage, stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "audit") == 0)
        return audit_main(argc - 1, argv + 1);
    if (strcmp(cmd, "probe") == 0) /* tool commands parse their own options */
        return probe_main(argc - 1, argv + 1);
    if (strcmp(cmd, "cert") == 0)
        return cert_main(argc - 1, argv + 1);
    if (strcmp(cmd, "trust") == 0)
        return trust_main(argc - 1, argv + 1);
    const char *path = MAIN_DEFAULT_CONFIG;
    int ch;
    /* "tlsgate COMMAND [options]", or "tlsgate --help" alone */
    int first = cmd[0] == '-' ? 0 : 1;
    while ((ch = getopt_long(argc - first, argv + first, "c:hV", opts, NULL)) != -1) {
        if (ch == 'c') {
            path = optarg;
        } else if (ch == 'h') {
            fputs(main_usage, stdout);
            return 0;
        } else if (ch == 'V') {
            puts("tlsgate 0.1");
            return 0;
        } else {
            fputs(main_usage, stderr);
            return 2;
        }
    }
    if (first == 0 || optind + first != argc) {
        fputs(main_usage, stderr);
        return 2;
    }
    setenv("UV_THREADPOOL_SIZE", "16", 0);
    signal(SIGPIPE, SIG_IGN);
    if (strcmp(cmd, "run") == 0)
        return main_run(path);
    if (strcmp(cmd, "check") == 0)
        return main_check(path);
    fprintf(stderr, "tlsgate: unknown command '%s'\n\n%s", cmd, main_usage);
    return 2;
}
