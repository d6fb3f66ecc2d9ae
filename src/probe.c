/*
 * probe: "tlsgate probe" (see probe.h for the command line, the JSON
 * report and the exit status).  Layout: options and set-up, targets (MX
 * or host), blocking I/O with a deadline per step, the SMTP and TLS steps
 * of one session, verdicts per destination level, then the text and JSON
 * reports.
 *
 * Must not: include OpenSSL headers (tls and certstore hold every OpenSSL
 * call, including the chain and temporary-key details), use the event
 * loop, write the mail log, or send anything past EHLO but QUIT.
 */
#include "probe.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "certstore.h"
#include "config.h"
#include "policy.h"
#include "route_mx.h"
#include "tls.h"

#define PROBE_DEFAULT_CONFIG  "policy/tlsgate.ini"
#define PROBE_TLS12           0x0303 /* TLS1_2_VERSION, the form config.h stores */
#define PROBE_TEXT            2048   /* one reply, lines joined with '\n' */
#define PROBE_LINE            1024   /* one reply line */
#define PROBE_MAX_LINES       100    /* lines of one reply */
#define PROBE_MAX_EXT         40     /* EHLO keywords kept */
#define PROBE_MAX_CHAIN       10     /* certificates of a chain kept */
#define PROBE_MAX_HOST_ADDRS  8      /* addresses of a host probed */
#define PROBE_NLEVELS         5      /* enum tls_out_level */
#define PROBE_MIN_DH          2048   /* the gateway refuses smaller DH groups */
#define PROBE_SOON_DAYS       30     /* "certificate-expires-soon" */
#define PROBE_DEFAULT_TIMEOUT 20
#define PROBE_POLICY_UNSET    (-2)
#define PROBE_POLICY_CONFIG   (-1)

static const char probe_usage[] =
    "usage: tlsgate probe DOMAIN | HOST[:PORT] [options]\n"
    "\n"
    "Tests a destination's TLS as tlsgate would see it: MX lookup (for a domain),\n"
    "then for each MX host and address: connect, greeting, EHLO, STARTTLS, protocol,\n"
    "cipher, server temporary key, presented chain, chain and name verification,\n"
    "timings, and the verdict of every destination level.\n"
    "\n"
    "A HOST:PORT, an IP address, or any argument with --host is probed directly;\n"
    "anything else is a domain whose MX targets are probed.\n"
    "\n"
    "options:\n"
    "  --starttls          STARTTLS after EHLO (default)\n"
    "  --implicit          TLS from the first byte (SMTPS; default port 465)\n"
    "  --host              the argument is a host, not a domain\n"
    "  --port N            port (default 25, 465 with --implicit); also for MX targets\n"
    "  --name NAME         reference name to verify and send as SNI\n"
    "  --ehlo NAME         EHLO name (default: the configuration's hostname)\n"
    "  --trust FILE        verify against the PEM certificates in FILE only\n"
    "  --policy LEVEL      none|preferred|required|preferred-verify|required-verify\n"
    "                      (default required-verify) or config (the configured level)\n"
    "  -c, --config FILE   configuration (default " PROBE_DEFAULT_CONFIG " when present)\n"
    "  --certs-dir DIR     certificate store: trust anchors in DIR/trust\n"
    "  --timeout SECS      limit for each step (default 20)\n"
    "  --no-retry          no permissive retry after a failed handshake\n"
    "  --json              JSON report (documented in src/probe.h)\n"
    "  -h, --help          this text\n"
    "\n"
    "exit status: 0 the policy would deliver (through at least one target),\n"
    "1 it would not, 2 usage or set-up error.\n";

/* ---- the report's data ---- */

enum probe_step {
    PROBE_CONNECT,
    PROBE_GREETING,
    PROBE_EHLO,
    PROBE_STARTTLS,
    PROBE_HANDSHAKE,
    PROBE_EHLO_TLS,
    PROBE_DONE
};

struct probe_reply {
    int code; /* 0: not received */
    char text[PROBE_TEXT];
    double ms;
};

struct probe_ehlo {
    struct probe_reply r;
    bool helo; /* EHLO was refused; HELO answered */
    char ext[PROBE_MAX_EXT][128];
    size_t next;
};

/* One handshake and what it showed. */
struct probe_tls {
    bool ok;
    double ms;
    char error[300];  /* tls_error() */
    char reason[200]; /* tls_error_reason() */
    char protocol[32], cipher[96];
    int cipher_bits;
    char key_kind[16], key_group[40];
    int key_bits; /* 0: no temporary key */
    struct tls_cert_info chain[PROBE_MAX_CHAIN];
    size_t nchain;
    enum tls_verify chain_v;
    char chain_reason[300];
    char matched[256]; /* "" when no reference name matched */
    char name_reason[600];
};

/* One connection: the steps in order, and where it stopped. */
struct probe_session {
    enum probe_step failed; /* PROBE_DONE: no step failed */
    char error[400];
    bool connected;
    double connect_ms;
    struct probe_reply greeting;
    struct probe_ehlo ehlo;
    bool starttls_offered;
    struct probe_reply starttls;
    bool injected; /* bytes came after the 220 to STARTTLS */
    bool tls_tried;
    struct probe_tls tls;
    struct probe_ehlo ehlo_tls;
};

struct probe_verdict {
    bool deliver, encrypted, verified;
    const char *reason; /* NULL, or one of the codes in probe.h */
    char text[900];
};

struct probe_target {
    char host[ROUTE_MX_HOST_MAX];
    int preference; /* -1 in host mode */
    bool implicit_mx, literal;
    struct sockaddr_storage addr;
    socklen_t addrlen;
    char addr_text[INET6_ADDRSTRLEN];
    char names[2][ROUTE_MX_HOST_MAX];
    size_t nnames;
    const char *sni; /* NULL: none */
    struct probe_session s;
    bool lax_tried;
    struct probe_session lax;
    struct probe_verdict v[PROBE_NLEVELS];
};

struct probe_opts {
    const char *arg, *ehlo, *trust, *config, *certs_dir, *name;
    bool implicit, host, json, no_retry;
    int port, timeout, policy;
};

struct probe {
    struct probe_opts o;
    struct config *cfg;     /* loaded configuration, or NULL */
    struct config settings; /* what certstore needs: cfg's, or defaults */
    struct ssl_ctx_st *ctx, *lax;
    char trust_text[600];
    char ehlo[256];
    bool mx_mode;
    char query[ROUTE_MX_HOST_MAX];
    int port;
    enum tls_out_level policy;
    const char *lookup_status;
    char lookup_error[512];
    struct probe_target *targets;
    size_t ntargets;
    const struct probe_target *via; /* the first target the policy delivers through */
};

/* ---- small helpers ---- */

static double probe_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

static void probe_lower(char *s)
{
    for (; *s; s++)
        *s = (char)tolower((unsigned char)*s);
}

static bool probe_is_address(const char *s)
{
    unsigned char buf[16];
    return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

/* snprintf for texts that may be cut short on purpose (long peer texts). */
static void probe_fmt(char *buf, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void probe_fmt(char *buf, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, len, fmt, ap);
    va_end(ap);
}

/* ---- options ---- */

static int probe_parse_level(const char *text, int *out)
{
    if (strcmp(text, "config") == 0) {
        *out = PROBE_POLICY_CONFIG;
        return 0;
    }
    for (int l = TLS_OUT_NONE; l <= TLS_OUT_REQUIRED_VERIFY; l++) {
        if (strcmp(text, config_tls_out_name((enum tls_out_level)l)) == 0) {
            *out = l;
            return 0;
        }
    }
    return -1;
}

static int probe_parse_number(const char *text, int min, int max, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || v < min || v > max)
        return -1;
    *out = (int)v;
    return 0;
}

enum {
    PROBE_OPT_STARTTLS = 256,
    PROBE_OPT_IMPLICIT,
    PROBE_OPT_HOST,
    PROBE_OPT_PORT,
    PROBE_OPT_NAME,
    PROBE_OPT_EHLO,
    PROBE_OPT_TRUST,
    PROBE_OPT_POLICY,
    PROBE_OPT_CERTS_DIR,
    PROBE_OPT_TIMEOUT,
    PROBE_OPT_NO_RETRY,
    PROBE_OPT_JSON
};

static const struct option probe_options[] = {
    {"starttls", no_argument, NULL, PROBE_OPT_STARTTLS},
    {"implicit", no_argument, NULL, PROBE_OPT_IMPLICIT},
    {"host", no_argument, NULL, PROBE_OPT_HOST},
    {"port", required_argument, NULL, PROBE_OPT_PORT},
    {"name", required_argument, NULL, PROBE_OPT_NAME},
    {"ehlo", required_argument, NULL, PROBE_OPT_EHLO},
    {"trust", required_argument, NULL, PROBE_OPT_TRUST},
    {"policy", required_argument, NULL, PROBE_OPT_POLICY},
    {"config", required_argument, NULL, 'c'},
    {"certs-dir", required_argument, NULL, PROBE_OPT_CERTS_DIR},
    {"timeout", required_argument, NULL, PROBE_OPT_TIMEOUT},
    {"no-retry", no_argument, NULL, PROBE_OPT_NO_RETRY},
    {"json", no_argument, NULL, PROBE_OPT_JSON},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

/* One option; 0, 1 for --help, -1 for a usage error (reported). */
static int probe_option(struct probe_opts *o, int ch, const char *arg)
{
    switch (ch) {
    case PROBE_OPT_STARTTLS:
        o->implicit = false;
        return 0;
    case PROBE_OPT_IMPLICIT:
        o->implicit = true;
        return 0;
    case PROBE_OPT_HOST:
        o->host = true;
        return 0;
    case PROBE_OPT_NAME:
        o->name = arg;
        return 0;
    case PROBE_OPT_EHLO:
        o->ehlo = arg;
        return 0;
    case PROBE_OPT_TRUST:
        o->trust = arg;
        return 0;
    case 'c':
        o->config = arg;
        return 0;
    case PROBE_OPT_CERTS_DIR:
        o->certs_dir = arg;
        return 0;
    case PROBE_OPT_NO_RETRY:
        o->no_retry = true;
        return 0;
    case PROBE_OPT_JSON:
        o->json = true;
        return 0;
    case 'h':
        return 1;
    case PROBE_OPT_PORT:
        if (probe_parse_number(arg, 1, 65535, &o->port) == 0)
            return 0;
        fprintf(stderr, "tlsgate probe: bad --port '%s'\n", arg);
        return -1;
    case PROBE_OPT_TIMEOUT:
        if (probe_parse_number(arg, 1, 3600, &o->timeout) == 0)
            return 0;
        fprintf(stderr, "tlsgate probe: bad --timeout '%s'\n", arg);
        return -1;
    case PROBE_OPT_POLICY:
        if (probe_parse_level(arg, &o->policy) == 0)
            return 0;
        fprintf(stderr, "tlsgate probe: unknown --policy '%s'\n", arg);
        return -1;
    default:
        return -1;
    }
}

/* 0, 1 after --help, 2 for a usage error. */
static int probe_parse_args(struct probe_opts *o, int argc, char **argv)
{
    o->timeout = PROBE_DEFAULT_TIMEOUT;
    o->policy = PROBE_POLICY_UNSET;
    optind = 1;
    int ch;
    while ((ch = getopt_long(argc, argv, "c:h", probe_options, NULL)) != -1) {
        int r = probe_option(o, ch, optarg);
        if (r == 1) {
            fputs(probe_usage, stdout);
            return 1;
        }
        if (r < 0) {
            fputs(probe_usage, stderr);
            return 2;
        }
    }
    if (optind + 1 != argc || argv[optind][0] == '\0') {
        fprintf(stderr, "tlsgate probe: give one DOMAIN or HOST[:PORT]\n\n%s", probe_usage);
        return 2;
    }
    o->arg = argv[optind];
    return 0;
}

/* ---- the argument: domain or host, and the port ---- */

/* Splits "[addr]", "[addr]:port", "[IPv6:addr]" into P->query; *PORT gets
 * the port (0 if none).  0 or -1. */
static int probe_parse_bracket(struct probe *p, const char *arg, int *port)
{
    const char *close = strchr(arg, ']');
    if (close == NULL)
        return -1;
    const char *in = arg + 1;
    if (strncasecmp(in, "IPv6:", 5) == 0)
        in += 5;
    snprintf(p->query, sizeof(p->query), "%.*s", (int)(close - in), in);
    if (!probe_is_address(p->query))
        return -1;
    if (close[1] == '\0')
        return 0;
    return close[1] == ':' ? probe_parse_number(close + 2, 1, 65535, port) : -1;
}

/* Fills query, mx_mode and port from the argument and the options. */
static int probe_parse_target(struct probe *p)
{
    const char *arg = p->o.arg;
    const char *colon = strchr(arg, ':');
    int port = 0;
    p->mx_mode = false;
    if (arg[0] == '[') {
        if (probe_parse_bracket(p, arg, &port) != 0)
            return -1;
    } else if (colon != NULL && strchr(colon + 1, ':') == NULL) {
        snprintf(p->query, sizeof(p->query), "%.*s", (int)(colon - arg), arg);
        if (probe_parse_number(colon + 1, 1, 65535, &port) != 0 || p->query[0] == '\0')
            return -1;
    } else {
        snprintf(p->query, sizeof(p->query), "%s", arg);
        p->mx_mode = !p->o.host && !probe_is_address(p->query);
    }
    size_t n = strlen(p->query);
    if (n > 1 && p->query[n - 1] == '.')
        p->query[n - 1] = '\0';
    probe_lower(p->query);
    if (port != 0 && p->o.port != 0 && port != p->o.port) {
        fprintf(stderr, "tlsgate probe: port %d in the argument, --port %d\n", port, p->o.port);
        return -1;
    }
    p->port = port ? port : p->o.port ? p->o.port : p->o.implicit ? 465 : 25;
    return 0;
}

/* ---- configuration, trust store and TLS contexts ---- */

static int probe_load_config(struct probe *p)
{
    const char *path = p->o.config;
    if (path == NULL && access(PROBE_DEFAULT_CONFIG, R_OK) == 0)
        path = PROBE_DEFAULT_CONFIG;
    if (path != NULL) {
        p->cfg = config_load(path, stderr);
        if (p->cfg == NULL) {
            fprintf(stderr, "tlsgate probe: cannot use the configuration %s\n", path);
            return -1;
        }
        p->settings = *p->cfg; /* a view: the pointers stay cfg's */
    } else {
        p->settings.certs_dir = "certs";
        p->settings.min_tls_version = PROBE_TLS12;
        p->settings.system_trust = true;
    }
    if (p->o.certs_dir != NULL)
        p->settings.certs_dir = (char *)p->o.certs_dir;
    return 0;
}

static int probe_make_contexts(struct probe *p)
{
    char err[512] = "";
    p->ctx = certstore_client_ctx(&p->settings, err, sizeof(err));
    p->lax = p->ctx ? certstore_client_ctx(&p->settings, err, sizeof(err)) : NULL;
    if (p->lax == NULL) {
        fprintf(stderr, "tlsgate probe: %s\n", err);
        return -1;
    }
    tls_ctx_permissive(p->lax);
    if (p->o.trust != NULL) {
        if (tls_ctx_trust_file(p->ctx, p->o.trust, err, sizeof(err)) != 0 ||
            tls_ctx_trust_file(p->lax, p->o.trust, err, sizeof(err)) != 0) {
            fprintf(stderr, "tlsgate probe: %s\n", err);
            return -1;
        }
        snprintf(p->trust_text, sizeof(p->trust_text), "%s (only)", p->o.trust);
    } else {
        snprintf(p->trust_text, sizeof(p->trust_text), "%s/trust%s", p->settings.certs_dir,
                 p->settings.system_trust ? " + system store" : "");
    }
    return 0;
}

static int probe_choose_policy(struct probe *p)
{
    if (p->o.policy == PROBE_POLICY_UNSET) {
        p->policy = TLS_OUT_REQUIRED_VERIFY;
    } else if (p->o.policy == PROBE_POLICY_CONFIG) {
        if (p->cfg == NULL) {
            fprintf(stderr, "tlsgate probe: --policy config needs a configuration (-c)\n");
            return -1;
        }
        p->policy = policy_tls_out(p->cfg, NULL, p->query);
    } else {
        p->policy = (enum tls_out_level)p->o.policy;
    }
    return 0;
}

static void probe_choose_ehlo(struct probe *p)
{
    if (p->o.ehlo != NULL)
        snprintf(p->ehlo, sizeof(p->ehlo), "%s", p->o.ehlo);
    else if (p->cfg != NULL && p->cfg->hostname != NULL)
        snprintf(p->ehlo, sizeof(p->ehlo), "%s", p->cfg->hostname);
    else if (gethostname(p->ehlo, sizeof(p->ehlo) - 1) != 0 || p->ehlo[0] == '\0')
        snprintf(p->ehlo, sizeof(p->ehlo), "localhost");
}

/* ---- targets ---- */

static struct probe_target *probe_add_target(struct probe *p, const char *host,
                                             const struct sockaddr *sa, socklen_t len)
{
    if (p->ntargets == ROUTE_MX_MAX_TARGETS)
        return NULL;
    struct probe_target *t = &p->targets[p->ntargets++];
    snprintf(t->host, sizeof(t->host), "%s", host);
    t->preference = -1;
    memcpy(&t->addr, sa, len);
    t->addrlen = len;
    const void *a = sa->sa_family == AF_INET6
                        ? (const void *)&((const struct sockaddr_in6 *)sa)->sin6_addr
                        : (const void *)&((const struct sockaddr_in *)sa)->sin_addr;
    inet_ntop(sa->sa_family, a, t->addr_text, sizeof(t->addr_text));
    return t;
}

/* The reference names and SNI of T (SPEC section 3; see probe.h). */
static void probe_target_names(const struct probe *p, struct probe_target *t)
{
    const char *first = p->o.name ? p->o.name : t->host;
    snprintf(t->names[0], sizeof(t->names[0]), "%s", first);
    t->nnames = 1;
    if (p->o.name == NULL && p->mx_mode && !t->literal && strcmp(t->host, p->query) != 0) {
        snprintf(t->names[1], sizeof(t->names[1]), "%s", p->query);
        t->nnames = 2;
    }
    t->sni = probe_is_address(t->names[0]) ? NULL : t->names[0];
}

static void probe_targets_from_mx(struct probe *p, const struct route_mx_result *res, bool mx)
{
    for (size_t i = 0; i < res->ntargets; i++) {
        const struct route_mx_target *rt = &res->targets[i];
        if (!mx && (!rt->implicit || strcmp(rt->host, p->query) != 0))
            continue; /* host mode: only the host's own addresses */
        struct probe_target *t =
            probe_add_target(p, rt->host, (const struct sockaddr *)&rt->addr, rt->addrlen);
        if (t == NULL)
            return;
        t->preference = mx ? rt->preference : -1;
        t->implicit_mx = mx && rt->implicit;
        t->literal = rt->literal;
    }
}

static void probe_lookup_mx(struct probe *p)
{
    struct route_mx_result *res = calloc(1, sizeof(*res));
    if (res == NULL) {
        p->lookup_status = "error";
        snprintf(p->lookup_error, sizeof(p->lookup_error), "out of memory");
        return;
    }
    enum route_mx_status st = route_mx_lookup(p->query, p->port, res);
    p->lookup_status = route_mx_status_name(st);
    if (st != ROUTE_MX_OK)
        snprintf(p->lookup_error, sizeof(p->lookup_error), "%s", res->error);
    else
        probe_targets_from_mx(p, res, true);
    free(res);
}

/* A host name under the TLSGATE_HOSTS_MX hook: its A/AAAA lines. */
static void probe_lookup_host_hook(struct probe *p)
{
    struct route_mx_result *res = calloc(1, sizeof(*res));
    if (res != NULL && route_mx_lookup(p->query, p->port, res) == ROUTE_MX_OK)
        probe_targets_from_mx(p, res, false);
    free(res);
}

static void probe_lookup_host_dns(struct probe *p)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
    struct addrinfo *ai = NULL;
    char port[8];
    snprintf(port, sizeof(port), "%d", p->port);
    int rc = getaddrinfo(p->query, port, &hints, &ai);
    if (rc != 0) {
        snprintf(p->lookup_error, sizeof(p->lookup_error), "%s: %s", p->query, gai_strerror(rc));
        return;
    }
    for (struct addrinfo *a = ai; a != NULL && p->ntargets < PROBE_MAX_HOST_ADDRS; a = a->ai_next)
        probe_add_target(p, p->query, a->ai_addr, a->ai_addrlen);
    freeaddrinfo(ai);
}

static void probe_lookup_host(struct probe *p)
{
    p->lookup_status = "ok";
    if (probe_is_address(p->query)) {
        probe_lookup_host_dns(p); /* numeric: no lookup happens */
        if (p->ntargets == 1)
            p->targets[0].literal = true;
    } else if (getenv(ROUTE_MX_ENV_HOSTS) != NULL) {
        probe_lookup_host_hook(p);
    } else {
        probe_lookup_host_dns(p);
    }
    if (p->ntargets == 0) {
        p->lookup_status = "error";
        if (p->lookup_error[0] == '\0')
            snprintf(p->lookup_error, sizeof(p->lookup_error), "no address for %s", p->query);
    }
}

static int probe_find_targets(struct probe *p)
{
    p->targets = calloc(ROUTE_MX_MAX_TARGETS, sizeof(*p->targets));
    if (p->targets == NULL)
        return -1;
    if (p->mx_mode)
        probe_lookup_mx(p);
    else
        probe_lookup_host(p);
    for (size_t i = 0; i < p->ntargets; i++)
        probe_target_names(p, &p->targets[i]);
    return 0;
}

/* ---- blocking I/O with deadlines ---- */

struct probe_io {
    int fd;
    struct tls *tls;
    char in[16384]; /* plaintext received, not yet taken as lines */
    size_t inlen;
    double deadline;
    char error[300];
};

static int probe_io_fail(struct probe_io *io, const char *what)
{
    snprintf(io->error, sizeof(io->error), "%s", what);
    return -1;
}

/* Waits for EVENTS on the socket until the deadline. */
static int probe_io_wait(struct probe_io *io, short events)
{
    for (;;) {
        double left = io->deadline - probe_now();
        if (left <= 0)
            return probe_io_fail(io, "timed out");
        struct pollfd pfd = {.fd = io->fd, .events = events};
        int n = poll(&pfd, 1, (int)left + 1);
        if (n > 0)
            return 0;
        if (n < 0 && errno != EINTR)
            return probe_io_fail(io, strerror(errno));
    }
}

static int probe_io_connect(struct probe_io *io, const struct probe_target *t)
{
    io->fd = socket(t->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (io->fd < 0)
        return probe_io_fail(io, strerror(errno));
    if (connect(io->fd, (const struct sockaddr *)&t->addr, t->addrlen) == 0)
        return 0;
    if (errno != EINPROGRESS)
        return probe_io_fail(io, strerror(errno));
    if (probe_io_wait(io, POLLOUT) != 0)
        return -1;
    int err = 0;
    socklen_t len = sizeof(err);
    getsockopt(io->fd, SOL_SOCKET, SO_ERROR, &err, &len);
    return err ? probe_io_fail(io, strerror(err)) : 0;
}

static int probe_io_raw_send(struct probe_io *io, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = send(io->fd, buf, len, MSG_NOSIGNAL);
        if (n > 0) {
            buf += n;
            len -= (size_t)n;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
            if (probe_io_wait(io, POLLOUT) != 0)
                return -1;
        } else {
            return probe_io_fail(io, strerror(errno));
        }
    }
    return 0;
}

/* Some bytes from the socket into BUF: their number, or -1. */
static ssize_t probe_io_raw_recv(struct probe_io *io, char *buf, size_t len)
{
    for (;;) {
        ssize_t n = recv(io->fd, buf, len, 0);
        if (n > 0)
            return n;
        if (n == 0)
            return probe_io_fail(io, "connection closed by the server");
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            return probe_io_fail(io, strerror(errno));
        if (probe_io_wait(io, POLLIN) != 0)
            return -1;
    }
}

/* Sends the ciphertext the TLS endpoint has queued. */
static int probe_io_flush(struct probe_io *io)
{
    char buf[16384];
    size_t n;
    while (io->tls != NULL && (n = tls_take_out(io->tls, buf, sizeof(buf))) > 0) {
        if (probe_io_raw_send(io, buf, n) != 0)
            return -1;
    }
    return 0;
}

/* Reads ciphertext from the socket into the TLS endpoint. */
static int probe_io_feed(struct probe_io *io)
{
    char buf[16384];
    ssize_t n = probe_io_raw_recv(io, buf, sizeof(buf));
    if (n < 0)
        return -1;
    return tls_feed(io->tls, buf, (size_t)n) == 0 ? 0 : probe_io_fail(io, "out of memory");
}

static int probe_io_handshake(struct probe_io *io)
{
    for (;;) {
        int r = tls_handshake(io->tls);
        if (probe_io_flush(io) != 0 && r != TLS_ERROR)
            return -1;
        if (r == TLS_DONE)
            return 0;
        if (r == TLS_ERROR)
            return probe_io_fail(io, tls_error(io->tls));
        if (probe_io_feed(io) != 0)
            return -1;
    }
}

/* More plaintext into io->in. */
static int probe_io_fill(struct probe_io *io)
{
    size_t space = sizeof(io->in) - io->inlen;
    if (space == 0)
        return probe_io_fail(io, "reply line too long");
    if (io->tls == NULL) {
        ssize_t n = probe_io_raw_recv(io, io->in + io->inlen, space);
        io->inlen += n > 0 ? (size_t)n : 0;
        return n > 0 ? 0 : -1;
    }
    for (;;) {
        ssize_t n = tls_read(io->tls, io->in + io->inlen, space);
        if (probe_io_flush(io) != 0)
            return -1;
        if (n > 0) {
            io->inlen += (size_t)n;
            return 0;
        }
        if (n == TLS_EOF)
            return probe_io_fail(io, "connection closed by the server (close_notify)");
        if (n == TLS_ERROR)
            return probe_io_fail(io, tls_error(io->tls));
        if (probe_io_feed(io) != 0)
            return -1;
    }
}

/* One line without its CRLF into LINE. */
static int probe_io_line(struct probe_io *io, char *line, size_t len)
{
    char *nl;
    while ((nl = memchr(io->in, '\n', io->inlen)) == NULL) {
        if (probe_io_fill(io) != 0)
            return -1;
    }
    size_t n = (size_t)(nl - io->in);
    size_t keep = n > 0 && io->in[n - 1] == '\r' ? n - 1 : n;
    snprintf(line, len, "%.*s", (int)keep, io->in);
    io->inlen -= n + 1;
    memmove(io->in, nl + 1, io->inlen);
    return 0;
}

static bool probe_reply_line_ok(const char *line)
{
    return isdigit((unsigned char)line[0]) && isdigit((unsigned char)line[1]) &&
           isdigit((unsigned char)line[2]) && (line[3] == '\0' || line[3] == ' ' || line[3] == '-');
}

/* One complete (multi-line) reply into R; its time since START. */
static int probe_io_reply(struct probe_io *io, struct probe_reply *r, double start)
{
    char line[PROBE_LINE];
    size_t used = 0;
    r->text[0] = '\0';
    for (int i = 0; i < PROBE_MAX_LINES; i++) {
        if (probe_io_line(io, line, sizeof(line)) != 0)
            return -1;
        if (!probe_reply_line_ok(line))
            return probe_io_fail(io, "malformed reply");
        if (used + strlen(line) + 2 < sizeof(r->text))
            used += (size_t)snprintf(r->text + used, sizeof(r->text) - used, "%s%s",
                                     used ? "\n" : "", line);
        if (line[3] != '-') {
            r->code = atoi(line);
            r->ms = probe_now() - start;
            return 0;
        }
    }
    return probe_io_fail(io, "reply with too many lines");
}

static int probe_io_send_line(struct probe_io *io, const char *line)
{
    char buf[PROBE_LINE];
    int n = snprintf(buf, sizeof(buf), "%s\r\n", line);
    if (io->tls == NULL)
        return probe_io_raw_send(io, buf, (size_t)n);
    if (tls_write(io->tls, buf, (size_t)n) != 0)
        return probe_io_fail(io, tls_error(io->tls));
    return probe_io_flush(io);
}

/* A command and its reply. */
static int probe_io_command(struct probe_io *io, const char *line, struct probe_reply *r)
{
    double start = probe_now();
    if (probe_io_send_line(io, line) != 0)
        return -1;
    return probe_io_reply(io, r, start);
}

static void probe_io_close(struct probe_io *io)
{
    if (io->tls != NULL) {
        tls_shutdown(io->tls);
        probe_io_flush(io);
        tls_free(io->tls);
        io->tls = NULL;
    }
    if (io->fd >= 0)
        close(io->fd);
    io->fd = -1;
}

/* ---- one session: the steps ---- */

struct probe_run {
    const struct probe *p;
    const struct probe_target *t;
    struct probe_session *s;
    struct probe_io io;
    struct ssl_ctx_st *ctx;
};

static int probe_fail(struct probe_run *r, enum probe_step step, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int probe_fail(struct probe_run *r, enum probe_step step, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->s->error, sizeof(r->s->error), fmt, ap);
    va_end(ap);
    r->s->failed = step;
    return -1;
}

static void probe_arm(struct probe_run *r)
{
    r->io.deadline = probe_now() + r->p->o.timeout * 1000.0;
}

static int probe_step_connect(struct probe_run *r)
{
    probe_arm(r);
    double start = probe_now();
    if (probe_io_connect(&r->io, r->t) != 0)
        return probe_fail(r, PROBE_CONNECT, "connect: %s", r->io.error);
    r->s->connected = true;
    r->s->connect_ms = probe_now() - start;
    return 0;
}

static int probe_step_greeting(struct probe_run *r)
{
    probe_arm(r);
    if (probe_io_reply(&r->io, &r->s->greeting, probe_now()) != 0)
        return probe_fail(r, PROBE_GREETING, "greeting: %s", r->io.error);
    if (r->s->greeting.code != 220)
        return probe_fail(r, PROBE_GREETING, "greeting: %s", r->s->greeting.text);
    return 0;
}

/* The EHLO keywords: every line of the reply after the first. */
static void probe_ehlo_extensions(struct probe_ehlo *e)
{
    const char *line = strchr(e->r.text, '\n');
    e->next = 0;
    while (line != NULL && e->next < PROBE_MAX_EXT) {
        line++;
        const char *end = strchr(line, '\n');
        size_t n = end ? (size_t)(end - line) : strlen(line);
        if (n > 4)
            snprintf(e->ext[e->next++], sizeof(e->ext[0]), "%.*s", (int)(n - 4), line + 4);
        line = end;
    }
}

static bool probe_has_ext(const struct probe_ehlo *e, const char *kw)
{
    size_t n = strlen(kw);
    for (size_t i = 0; i < e->next; i++) {
        if (strncasecmp(e->ext[i], kw, n) == 0 && (e->ext[i][n] == '\0' || e->ext[i][n] == ' '))
            return true;
    }
    return false;
}

/* EHLO, or HELO when EHLO is refused (as the gateway does). */
static int probe_step_ehlo(struct probe_run *r, struct probe_ehlo *e, enum probe_step step)
{
    char line[300];
    probe_arm(r);
    snprintf(line, sizeof(line), "EHLO %s", r->p->ehlo);
    if (probe_io_command(&r->io, line, &e->r) != 0)
        return probe_fail(r, step, "EHLO: %s", r->io.error);
    if (e->r.code == 250) {
        probe_ehlo_extensions(e);
        return 0;
    }
    char refused[PROBE_TEXT];
    snprintf(refused, sizeof(refused), "%s", e->r.text);
    snprintf(line, sizeof(line), "HELO %s", r->p->ehlo);
    e->helo = true;
    if (probe_io_command(&r->io, line, &e->r) != 0)
        return probe_fail(r, step, "HELO: %s", r->io.error);
    if (e->r.code != 250)
        return probe_fail(r, step, "EHLO: %s; HELO: %s", refused, e->r.text);
    return 0;
}

static int probe_step_starttls(struct probe_run *r)
{
    probe_arm(r);
    if (probe_io_command(&r->io, "STARTTLS", &r->s->starttls) != 0)
        return probe_fail(r, PROBE_STARTTLS, "STARTTLS: %s", r->io.error);
    if (r->s->starttls.code != 220)
        return probe_fail(r, PROBE_STARTTLS, "STARTTLS refused: %s", r->s->starttls.text);
    r->s->injected = r->io.inlen > 0;
    r->io.inlen = 0; /* RFC 3207: nothing received before the handshake counts */
    return 0;
}

/* Chain and name, judged as the gateway's verify levels judge them. */
static void probe_tls_verify(struct probe_tls *x, const struct tls *tls,
                             const struct probe_target *t)
{
    const char *names[2] = {t->names[0], t->nnames > 1 ? t->names[1] : NULL};
    char reason[600];
    enum tls_verify v = tls_verify_peer(tls, names, t->nnames, x->matched, sizeof(x->matched),
                                        reason, sizeof(reason));
    x->chain_v = v == TLS_VERIFY_NAME ? TLS_VERIFY_OK : v;
    if (v == TLS_VERIFY_NAME)
        snprintf(x->name_reason, sizeof(x->name_reason), "%s", reason);
    else if (v != TLS_VERIFY_OK)
        probe_fmt(x->chain_reason, sizeof(x->chain_reason), "%s", reason);
    if (v == TLS_VERIFY_NO_CERT)
        snprintf(x->name_reason, sizeof(x->name_reason), "no certificate presented");
    else if (x->matched[0] == '\0' && v != TLS_VERIFY_NAME)
        snprintf(x->name_reason, sizeof(x->name_reason), "certificate name does not match %s%s%s",
                 names[0], names[1] ? " or " : "", names[1] ? names[1] : "");
}

static void probe_tls_collect(struct probe_tls *x, const struct tls *tls,
                              const struct probe_target *t)
{
    snprintf(x->protocol, sizeof(x->protocol), "%s", tls_protocol(tls));
    snprintf(x->cipher, sizeof(x->cipher), "%s", tls_cipher(tls));
    x->cipher_bits = tls_cipher_bits(tls);
    tls_peer_tmp_key_info(tls, x->key_kind, sizeof(x->key_kind), x->key_group, sizeof(x->key_group),
                          &x->key_bits);
    size_t n = tls_peer_chain_len(tls);
    for (x->nchain = 0; x->nchain < n && x->nchain < PROBE_MAX_CHAIN; x->nchain++)
        tls_peer_chain_cert(tls, x->nchain, &x->chain[x->nchain]);
    probe_tls_verify(x, tls, t);
}

static int probe_step_handshake(struct probe_run *r)
{
    struct probe_tls *x = &r->s->tls;
    r->s->tls_tried = true;
    r->io.tls = tls_new(r->ctx, false, r->t->sni, false);
    if (r->io.tls == NULL)
        return probe_fail(r, PROBE_HANDSHAKE, "cannot create a TLS session");
    probe_arm(r);
    double start = probe_now();
    int rc = probe_io_handshake(&r->io);
    x->ms = probe_now() - start;
    if (rc != 0) {
        snprintf(x->error, sizeof(x->error), "%s", r->io.error);
        tls_error_reason(r->io.tls, x->reason, sizeof(x->reason));
        if (strcmp(r->io.error, tls_error(r->io.tls)) != 0)
            probe_fmt(x->reason, sizeof(x->reason), "%s", r->io.error); /* a socket error */
        return probe_fail(r, PROBE_HANDSHAKE, "TLS handshake failed: %s", x->reason);
    }
    x->ok = true;
    probe_tls_collect(x, r->io.tls, r->t);
    return 0;
}

static void probe_step_quit(struct probe_run *r)
{
    struct probe_reply bye;
    r->io.deadline = probe_now() + 2000; /* a courtesy: do not wait long */
    probe_io_command(&r->io, "QUIT", &bye);
}

/* The steps of a STARTTLS session after the connect. */
static int probe_steps_starttls(struct probe_run *r)
{
    if (probe_step_greeting(r) != 0 || probe_step_ehlo(r, &r->s->ehlo, PROBE_EHLO) != 0)
        return -1;
    r->s->starttls_offered = !r->s->ehlo.helo && probe_has_ext(&r->s->ehlo, "STARTTLS");
    if (!r->s->starttls_offered)
        return 0;
    if (probe_step_starttls(r) != 0 || probe_step_handshake(r) != 0)
        return -1;
    return probe_step_ehlo(r, &r->s->ehlo_tls, PROBE_EHLO_TLS);
}

static int probe_steps_implicit(struct probe_run *r)
{
    if (probe_step_handshake(r) != 0 || probe_step_greeting(r) != 0)
        return -1;
    return probe_step_ehlo(r, &r->s->ehlo, PROBE_EHLO);
}

static void probe_session(const struct probe *p, const struct probe_target *t,
                          struct probe_session *s, struct ssl_ctx_st *ctx)
{
    struct probe_run *r = calloc(1, sizeof(*r));
    s->failed = PROBE_DONE;
    if (r == NULL) {
        s->failed = PROBE_CONNECT;
        snprintf(s->error, sizeof(s->error), "out of memory");
        return;
    }
    *r = (struct probe_run){.p = p, .t = t, .s = s, .ctx = ctx, .io = {.fd = -1}};
    if (probe_step_connect(r) == 0) {
        int rc = p->o.implicit ? probe_steps_implicit(r) : probe_steps_starttls(r);
        if (rc == 0 || s->failed == PROBE_STARTTLS || s->failed == PROBE_EHLO)
            probe_step_quit(r);
    }
    probe_io_close(&r->io);
    free(r);
}

/* ---- verdicts ---- */

static const char *probe_reason_code(const struct probe_tls *x)
{
    switch (x->chain_v) {
    case TLS_VERIFY_NO_CERT:
        return "no-certificate";
    case TLS_VERIFY_EXPIRED:
        return "certificate-expired";
    case TLS_VERIFY_UNTRUSTED:
        return "certificate-not-trusted";
    case TLS_VERIFY_OTHER:
        return "validation-failure";
    default:
        return x->matched[0] ? NULL : "certificate-host-mismatch";
    }
}

static bool probe_verified(const struct probe_tls *x)
{
    return x->ok && x->chain_v == TLS_VERIFY_OK && x->matched[0] != '\0';
}

/* Why verification failed, chain first (both when both failed). */
static void probe_verify_text(const struct probe_tls *x, char *buf, size_t len)
{
    const char *chain = x->chain_v != TLS_VERIFY_OK ? x->chain_reason : "";
    const char *name =
        x->matched[0] == '\0' && x->chain_v != TLS_VERIFY_NO_CERT ? x->name_reason : "";
    probe_fmt(buf, len, "%s%s%s", chain, chain[0] && name[0] ? "; " : "", name);
}

static bool probe_dh_too_small(const struct probe_session *s)
{
    return s->tls_tried && !s->tls.ok && strstr(s->tls.reason, "dh key too small") != NULL;
}

static void probe_verdict_set(struct probe_verdict *v, bool deliver, const char *reason,
                              const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void probe_verdict_set(struct probe_verdict *v, bool deliver, const char *reason,
                              const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    v->deliver = deliver;
    v->reason = reason;
    int n = snprintf(v->text, sizeof(v->text), "%s",
                     deliver ? "would deliver " : "would NOT deliver: ");
    vsnprintf(v->text + n, sizeof(v->text) - (size_t)n, fmt, ap);
    va_end(ap);
}

/* The session failed before TLS could be judged: the same for every level
 * that gets that far. */
static bool probe_verdict_early(const struct probe_session *s, struct probe_verdict *v)
{
    switch (s->failed) {
    case PROBE_CONNECT:
        probe_verdict_set(v, false, "connect-failed", "%s", s->error);
        return true;
    case PROBE_GREETING:
        probe_verdict_set(v, false, "greeting-failed", "%s", s->error);
        return true;
    case PROBE_EHLO:
        probe_verdict_set(v, false, "ehlo-failed", "%s", s->error);
        return true;
    default:
        return false;
    }
}

static void probe_verdict_handshake(const struct probe_session *s, enum tls_out_level l,
                                    struct probe_verdict *v)
{
    bool dh = probe_dh_too_small(s);
    const char *retry = (l == TLS_OUT_PREFERRED || l == TLS_OUT_PREFERRED_VERIFY)
                            ? " (clear-text retry only with fallback_plaintext = yes)"
                            : "";
    probe_verdict_set(v, false, dh ? "dh-key-too-small" : "handshake-failed",
                      "TLS handshake failed: %s%s%s", s->tls.reason,
                      dh ? " (the server's DH group is below 2048 bits)" : "", retry);
}

/* A level that would fall back to clear text (preferred*, STARTTLS mode). */
static void probe_verdict_clear(const struct probe_session *s, bool required,
                                struct probe_verdict *v)
{
    bool refused = s->failed == PROBE_STARTTLS;
    const char *why = refused ? s->error : "STARTTLS not offered";
    if (required)
        probe_verdict_set(v, false, refused ? "starttls-refused" : "starttls-not-supported", "%s",
                          why);
    else
        probe_verdict_set(v, true, NULL, "in clear (%s)", why);
}

static void probe_verdict_tls(const struct probe_session *s, enum tls_out_level l,
                              struct probe_verdict *v)
{
    const struct probe_tls *x = &s->tls;
    char why[900];
    probe_verify_text(x, why, sizeof(why));
    v->encrypted = true;
    v->verified = probe_verified(x);
    if (s->failed == PROBE_EHLO_TLS) {
        probe_verdict_set(v, false, "ehlo-failed", "%s (after TLS)", s->error);
        v->encrypted = v->verified = false;
    } else if (l == TLS_OUT_PREFERRED || l == TLS_OUT_REQUIRED || l == TLS_OUT_NONE) {
        probe_verdict_set(v, true, NULL, "encrypted (unverified)");
        v->verified = false; /* these levels do not check the certificate */
    } else if (v->verified) {
        probe_verdict_set(v, true, NULL, "encrypted and verified (name %s)", x->matched);
    } else if (l == TLS_OUT_PREFERRED_VERIFY) {
        probe_verdict_set(v, true, probe_reason_code(x), "encrypted (verification failed: %s)",
                          why);
    } else {
        probe_verdict_set(v, false, probe_reason_code(x), "%s", why);
        v->encrypted = false;
    }
}

static void probe_verdict(const struct probe *p, const struct probe_session *s,
                          enum tls_out_level l, struct probe_verdict *v)
{
    bool required = l == TLS_OUT_REQUIRED || l == TLS_OUT_REQUIRED_VERIFY;
    memset(v, 0, sizeof(*v));
    if (p->o.implicit && s->failed == PROBE_HANDSHAKE)
        probe_verdict_handshake(s, l, v);
    else if (probe_verdict_early(s, v))
        return;
    else if (p->o.implicit)
        probe_verdict_tls(s, l, v);
    else if (l == TLS_OUT_NONE)
        probe_verdict_set(v, true, NULL, "in clear (level none never uses STARTTLS)");
    else if (!s->starttls_offered || s->failed == PROBE_STARTTLS)
        probe_verdict_clear(s, required, v);
    else if (s->failed == PROBE_HANDSHAKE)
        probe_verdict_handshake(s, l, v);
    else
        probe_verdict_tls(s, l, v);
}

/* ---- probing every target ---- */

static void probe_target(struct probe *p, struct probe_target *t)
{
    probe_session(p, t, &t->s, p->ctx);
    if (t->s.failed == PROBE_HANDSHAKE && t->s.tls_tried && !p->o.no_retry) {
        t->lax_tried = true;
        probe_session(p, t, &t->lax, p->lax);
    }
    for (int l = TLS_OUT_NONE; l <= TLS_OUT_REQUIRED_VERIFY; l++)
        probe_verdict(p, &t->s, (enum tls_out_level)l, &t->v[l]);
    if (p->via == NULL && t->v[p->policy].deliver)
        p->via = t;
}

/* ---- flags ---- */

static bool probe_weak_cipher(const struct probe_tls *x)
{
    static const char *const weak[] = {"RC4", "DES", "NULL", "EXP", "MD5", "ADH", "AECDH"};
    if (x->cipher_bits > 0 && x->cipher_bits < 128)
        return true;
    for (size_t i = 0; i < sizeof(weak) / sizeof(weak[0]); i++) {
        if (strstr(x->cipher, weak[i]) != NULL)
            return true;
    }
    return false;
}

static bool probe_old_protocol(const struct probe_tls *x)
{
    return strcmp(x->protocol, "TLSv1") == 0 || strcmp(x->protocol, "TLSv1.1") == 0 ||
           strncmp(x->protocol, "SSL", 3) == 0;
}

/* The flags of T into OUT; their number. */
static size_t probe_flags(const struct probe_target *t, const char **out)
{
    const struct probe_tls *xs[2] = {t->s.tls.ok ? &t->s.tls : NULL,
                                     t->lax_tried && t->lax.tls.ok ? &t->lax.tls : NULL};
    bool dh = false, old = false, weak = false;
    for (int i = 0; i < 2; i++) {
        if (xs[i] == NULL)
            continue;
        dh |= strcmp(xs[i]->key_kind, "DH") == 0 && xs[i]->key_bits < PROBE_MIN_DH;
        old |= probe_old_protocol(xs[i]);
        weak |= probe_weak_cipher(xs[i]);
    }
    size_t n = 0;
    if (probe_dh_too_small(&t->s))
        out[n++] = "dh-key-too-small";
    if (dh)
        out[n++] = "dh-below-2048";
    if (old)
        out[n++] = "tls-below-1.2";
    if (weak)
        out[n++] = "weak-cipher";
    if (t->s.injected)
        out[n++] = "data-after-starttls";
    if (t->s.tls.ok && t->s.tls.nchain > 0 && t->s.tls.chain[0].expired)
        out[n++] = "certificate-expired";
    else if (t->s.tls.ok && t->s.tls.nchain > 0 && t->s.tls.chain[0].days_left < PROBE_SOON_DAYS)
        out[n++] = "certificate-expires-soon";
    return n;
}

static const char *probe_flag_text(const char *flag)
{
    if (strcmp(flag, "dh-key-too-small") == 0)
        return "handshake refused: the server's DH group is below 2048 bits";
    if (strcmp(flag, "dh-below-2048") == 0)
        return "server temporary key: finite-field DH below 2048 bits";
    if (strcmp(flag, "tls-below-1.2") == 0)
        return "the server negotiates a protocol below TLS 1.2";
    if (strcmp(flag, "weak-cipher") == 0)
        return "the server negotiates a weak cipher";
    if (strcmp(flag, "data-after-starttls") == 0)
        return "bytes followed the 220 to STARTTLS (discarded)";
    if (strcmp(flag, "certificate-expired") == 0)
        return "the server's certificate has expired";
    return "the server's certificate expires within 30 days";
}

/* ---- text report ---- */

static const char *probe_step_name(enum probe_step s)
{
    static const char *const names[] = {"connect", "greeting", "ehlo", "starttls",
                                        "tls",     "ehlo_tls", NULL};
    return names[s];
}

/* "  LABEL  [   12.3 ms]  TEXT" with the columns aligned; MS < 0: no time. */
static void probe_row(const char *label, double ms, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void probe_row(const char *label, double ms, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (ms >= 0)
        printf("  %-17s %8.1f ms  ", label, ms);
    else
        printf("  %-17s %11s  ", label, "");
    vprintf(fmt, ap);
    putchar('\n');
    va_end(ap);
}

/* The first line of a reply. */
static const char *probe_first_line(const char *text, char *buf, size_t len)
{
    const char *nl = strchr(text, '\n');
    snprintf(buf, len, "%.*s", nl ? (int)(nl - text) : (int)strlen(text), text);
    return buf;
}

static void probe_print_ehlo(const char *label, const struct probe_ehlo *e)
{
    char list[PROBE_TEXT] = "";
    size_t used = 0;
    for (size_t i = 0; i < e->next && used + 2 < sizeof(list); i++)
        used +=
            (size_t)snprintf(list + used, sizeof(list) - used, "%s%s", i ? ", " : "", e->ext[i]);
    char first[PROBE_LINE];
    probe_row(label, e->r.ms, "%s%s", probe_first_line(e->r.text, first, sizeof(first)),
              e->helo ? " (after HELO; EHLO refused)" : "");
    if (e->next > 0)
        probe_row("  extensions", -1, "%s", list);
}

/* PRE then NAME into BUF: the labels of the permissive retry are indented. */
static const char *probe_label(char *buf, size_t len, const char *pre, const char *name)
{
    probe_fmt(buf, len, "%s%s", pre, name);
    return buf;
}

static void probe_print_cert(const char *pre, size_t i, const struct tls_cert_info *c)
{
    char label[48], name[32];
    probe_fmt(name, sizeof(name), "certificate %zu", i);
    probe_row(probe_label(label, sizeof(label), pre, name), -1, "subject  %s", c->subject);
    probe_row("", -1, "issuer   %s", c->issuer);
    if (c->days_left < 0)
        probe_row("", -1, "valid    %s .. %s (EXPIRED %ld days ago)", c->not_before, c->not_after,
                  -c->days_left);
    else
        probe_row("", -1, "valid    %s .. %s (%s%ld days left)", c->not_before, c->not_after,
                  c->expired ? "NOT YET VALID, " : "", c->days_left);
    probe_row("", -1, "key      %s%s", c->key, c->self_signed ? ", self-signed" : "");
    if (c->san[0])
        probe_row("", -1, "names    %s", c->san);
}

static void probe_print_key(const char *label, const struct probe_tls *x)
{
    if (x->key_bits == 0) {
        probe_row(label, -1, "none reported");
        return;
    }
    bool small = strcmp(x->key_kind, "DH") == 0 && x->key_bits < PROBE_MIN_DH;
    probe_row(label, -1, "%s%s%s %d bits%s", x->key_kind, x->key_group[0] ? " " : "", x->key_group,
              x->key_bits, small ? "  ! below 2048 bits" : "");
}

static void probe_print_verify(const char *pre, const struct probe_target *t,
                               const struct probe_tls *x)
{
    char label[48];
    probe_label(label, sizeof(label), pre, "chain");
    if (x->chain_v == TLS_VERIFY_OK)
        probe_row(label, -1, "verified against the trust store");
    else
        probe_row(label, -1, "NOT verified: %s", x->chain_reason);
    char checked[600];
    snprintf(checked, sizeof(checked), "%s%s%s", t->names[0], t->nnames > 1 ? ", " : "",
             t->nnames > 1 ? t->names[1] : "");
    probe_label(label, sizeof(label), pre, "name");
    if (x->matched[0])
        probe_row(label, -1, "matched %s (checked %s)", x->matched, checked);
    else
        probe_row(label, -1, "NOT matched: %s", x->name_reason);
}

static void probe_print_tls(const char *pre, const struct probe_target *t,
                            const struct probe_tls *x)
{
    char label[48];
    probe_row(probe_label(label, sizeof(label), pre, "protocol"), -1, "%s%s", x->protocol,
              probe_old_protocol(x) ? "  ! below TLS 1.2" : "");
    probe_row(probe_label(label, sizeof(label), pre, "cipher"), -1, "%s (%d bits)%s", x->cipher,
              x->cipher_bits, probe_weak_cipher(x) ? "  ! weak" : "");
    probe_print_key(probe_label(label, sizeof(label), pre, "server temp key"), x);
    for (size_t i = 0; i < x->nchain; i++)
        probe_print_cert(pre, i, &x->chain[i]);
    if (x->nchain == 0)
        probe_row(probe_label(label, sizeof(label), pre, "certificate"), -1, "none presented");
    probe_print_verify(pre, t, x);
}

static void probe_print_handshake(const struct probe_session *s)
{
    if (s->tls.ok) {
        probe_row("TLS handshake", s->tls.ms, "ok");
        return;
    }
    probe_row("TLS handshake", s->tls.ms, "FAILED: %s", s->tls.reason);
    if (probe_dh_too_small(s))
        probe_row("", -1,
                  "the server's DH group is below 2048 bits: tlsgate (security level "
                  "2) refuses it");
}

static void probe_print_smtp(const struct probe *p, const struct probe_session *s)
{
    char first[PROBE_LINE];
    if (s->greeting.code)
        probe_row("greeting", s->greeting.ms, "%s",
                  probe_first_line(s->greeting.text, first, sizeof(first)));
    if (s->ehlo.r.code)
        probe_print_ehlo("EHLO", &s->ehlo);
    if (p->o.implicit)
        return;
    if (s->ehlo.r.code == 250 || s->ehlo.helo)
        probe_row("STARTTLS", -1, "%s", s->starttls_offered ? "offered" : "NOT offered");
    if (s->starttls.code)
        probe_row("STARTTLS reply", s->starttls.ms, "%s%s",
                  probe_first_line(s->starttls.text, first, sizeof(first)),
                  s->injected ? "  ! followed by data (discarded)" : "");
}

static void probe_print_lax(const struct probe_target *t)
{
    const struct probe_session *s = &t->lax;
    if (!t->lax_tried)
        return;
    if (!s->tls.ok) {
        probe_row("permissive retry", s->tls_tried ? s->tls.ms : -1, "FAILED: %s", s->error);
        return;
    }
    probe_row("permissive retry", s->tls.ms,
              "ok (security level 0, TLS 1.0 floor: only to show what the server offers)");
    probe_print_tls("  ", t, &s->tls);
}

static void probe_print_session(const struct probe *p, const struct probe_target *t)
{
    const struct probe_session *s = &t->s;
    if (!s->connected) {
        probe_row("connect", -1, "FAILED: %s", s->error);
        return;
    }
    probe_row("connect", s->connect_ms, "ok");
    if (p->o.implicit && s->tls_tried)
        probe_print_handshake(s);
    probe_print_smtp(p, s);
    if (!p->o.implicit && s->tls_tried)
        probe_print_handshake(s);
    if (s->tls.ok)
        probe_print_tls("", t, &s->tls);
    if (s->ehlo_tls.r.code)
        probe_print_ehlo("EHLO in TLS", &s->ehlo_tls);
    if (s->failed != PROBE_DONE && s->failed != PROBE_HANDSHAKE)
        probe_row("stopped", -1, "%s", s->error);
    probe_print_lax(t);
}

static void probe_print_target(const struct probe *p, const struct probe_target *t)
{
    const char *fmt = t->addr.ss_family == AF_INET6 ? "[%s]:%d" : "%s:%d";
    char where[INET6_ADDRSTRLEN + 16];
    snprintf(where, sizeof(where), fmt, t->addr_text, p->port);
    if (t->preference >= 0)
        printf("\nMX %d %s%s  %s\n", t->preference, t->host, t->implicit_mx ? " (implicit MX)" : "",
               where);
    else
        printf("\nhost %s  %s\n", t->host, where);
    probe_print_session(p, t);
    const char *flags[8];
    size_t n = probe_flags(t, flags);
    for (size_t i = 0; i < n; i++)
        probe_row(i == 0 ? "warnings" : "", -1, "! %s: %s", flags[i], probe_flag_text(flags[i]));
    printf("  verdicts\n");
    for (int l = TLS_OUT_NONE; l <= TLS_OUT_REQUIRED_VERIFY; l++)
        printf("    %-17s %s%s\n", config_tls_out_name((enum tls_out_level)l), t->v[l].text,
               l == (int)p->policy ? "   <- --policy" : "");
}

/* A verdict's text without its "would (NOT) deliver" lead. */
static const char *probe_verdict_detail(const struct probe_verdict *v)
{
    const char *lead = v->deliver ? "would deliver " : "would NOT deliver: ";
    size_t n = strlen(lead);
    return strncmp(v->text, lead, n) == 0 ? v->text + n : v->text;
}

static void probe_result_text(const struct probe *p, char *buf, size_t len)
{
    const char *level = config_tls_out_name(p->policy);
    const struct probe_target *t = p->via ? p->via : p->ntargets ? &p->targets[0] : NULL;
    char where[ROUTE_MX_HOST_MAX + INET6_ADDRSTRLEN + 24] = "";
    if (t != NULL && strcmp(t->host, t->addr_text) == 0)
        probe_fmt(where, sizeof(where), "%s port %d", t->addr_text, p->port);
    else if (t != NULL)
        probe_fmt(where, sizeof(where), "%s [%s] port %d", t->host, t->addr_text, p->port);
    if (p->via != NULL)
        probe_fmt(buf, len, "%s would deliver through %s: %s", level, where,
                  probe_verdict_detail(&t->v[p->policy]));
    else if (t == NULL)
        probe_fmt(buf, len, "%s would NOT deliver to %s: %s: %s", level, p->query, p->lookup_status,
                  p->lookup_error);
    else if (p->ntargets == 1)
        probe_fmt(buf, len, "%s would NOT deliver to %s (%s): %s", level, p->query, where,
                  probe_verdict_detail(&t->v[p->policy]));
    else
        probe_fmt(buf, len,
                  "%s would NOT deliver to %s through any of its %zu targets (first, %s: %s)",
                  level, p->query, p->ntargets, where, probe_verdict_detail(&t->v[p->policy]));
}

static void probe_print_text(const struct probe *p)
{
    printf("tlsgate probe %s: %s, %s, port %d, EHLO %s\n", p->query,
           p->mx_mode ? "MX lookup" : "host", p->o.implicit ? "implicit TLS" : "STARTTLS", p->port,
           p->ehlo);
    printf("trust store: %s\n", p->trust_text);
    if (p->mx_mode)
        printf("MX lookup: %s%s%s (%zu target%s)\n", p->lookup_status,
               p->lookup_error[0] ? ": " : "", p->lookup_error, p->ntargets,
               p->ntargets == 1 ? "" : "s");
    else if (p->ntargets == 0)
        printf("lookup: %s\n", p->lookup_error);
    for (size_t i = 0; i < p->ntargets; i++)
        probe_print_target(p, &p->targets[i]);
    char result[1200];
    probe_result_text(p, result, sizeof(result));
    printf("\nresult: %s\n", result);
}

/* ---- JSON report ---- */

struct probe_json {
    FILE *f;
    int depth;
    bool first[16];
};

static void probe_json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        if (*c == '"' || *c == '\\')
            fprintf(f, "\\%c", *c);
        else if (*c == '\n')
            fputs("\\n", f);
        else if (*c < 0x20 || *c == 0x7f)
            fprintf(f, "\\u%04x", *c);
        else
            fputc(*c, f); /* UTF-8 passes through; other bytes are rare here */
    }
    fputc('"', f);
}

/* Starts a member KEY (NULL inside an array) at the current depth. */
static void probe_json_key(struct probe_json *j, const char *key)
{
    if (j->depth > 0) {
        fputs(j->first[j->depth] ? "\n" : ",\n", j->f);
        fprintf(j->f, "%*s", j->depth * 2, "");
    }
    j->first[j->depth] = false;
    if (key != NULL) {
        probe_json_string(j->f, key);
        fputs(": ", j->f);
    }
}

static void probe_json_open(struct probe_json *j, const char *key, char c)
{
    probe_json_key(j, key);
    fputc(c, j->f);
    j->first[++j->depth] = true;
}

static void probe_json_close(struct probe_json *j, char c)
{
    bool empty = j->first[j->depth--];
    if (!empty)
        fprintf(j->f, "\n%*s", j->depth * 2, "");
    fputc(c, j->f);
}

static void probe_json_str(struct probe_json *j, const char *key, const char *v)
{
    probe_json_key(j, key);
    if (v == NULL)
        fputs("null", j->f);
    else
        probe_json_string(j->f, v);
}

/* A string, or null when it is empty. */
static void probe_json_text(struct probe_json *j, const char *key, const char *v)
{
    probe_json_str(j, key, v && v[0] ? v : NULL);
}

static void probe_json_int(struct probe_json *j, const char *key, long v)
{
    probe_json_key(j, key);
    fprintf(j->f, "%ld", v);
}

static void probe_json_ms(struct probe_json *j, const char *key, double v)
{
    probe_json_key(j, key);
    fprintf(j->f, "%.1f", v);
}

static void probe_json_bool(struct probe_json *j, const char *key, bool v)
{
    probe_json_key(j, key);
    fputs(v ? "true" : "false", j->f);
}

static void probe_json_null(struct probe_json *j, const char *key)
{
    probe_json_key(j, key);
    fputs("null", j->f);
}

static void probe_json_reply_fields(struct probe_json *j, const struct probe_reply *r)
{
    probe_json_int(j, "code", r->code);
    probe_json_str(j, "text", r->text);
    probe_json_ms(j, "ms", r->ms);
}

static void probe_json_reply(struct probe_json *j, const char *key, const struct probe_reply *r)
{
    if (r->code == 0) {
        probe_json_null(j, key);
        return;
    }
    probe_json_open(j, key, '{');
    probe_json_reply_fields(j, r);
    probe_json_close(j, '}');
}

static void probe_json_ehlo(struct probe_json *j, const char *key, const struct probe_ehlo *e)
{
    if (e->r.code == 0) {
        probe_json_null(j, key);
        return;
    }
    probe_json_open(j, key, '{');
    probe_json_str(j, "command", e->helo ? "HELO" : "EHLO");
    probe_json_reply_fields(j, &e->r);
    probe_json_open(j, "extensions", '[');
    for (size_t i = 0; i < e->next; i++)
        probe_json_str(j, NULL, e->ext[i]);
    probe_json_close(j, ']');
    probe_json_close(j, '}');
}

/* "DNS:a, IP:b" as an array. */
static void probe_json_san(struct probe_json *j, const char *san)
{
    probe_json_open(j, "san", '[');
    while (*san) {
        const char *end = strstr(san, ", ");
        size_t n = end ? (size_t)(end - san) : strlen(san);
        char item[300];
        snprintf(item, sizeof(item), "%.*s", (int)n, san);
        probe_json_str(j, NULL, item);
        san += n + (end ? 2 : 0);
    }
    probe_json_close(j, ']');
}

static void probe_json_cert(struct probe_json *j, const struct tls_cert_info *c)
{
    probe_json_open(j, NULL, '{');
    probe_json_str(j, "subject", c->subject);
    probe_json_str(j, "issuer", c->issuer);
    probe_json_str(j, "not_before", c->not_before);
    probe_json_str(j, "not_after", c->not_after);
    probe_json_int(j, "days_left", c->days_left);
    probe_json_bool(j, "expired", c->expired);
    probe_json_bool(j, "self_signed", c->self_signed);
    probe_json_str(j, "key", c->key);
    probe_json_san(j, c->san);
    probe_json_close(j, '}');
}

static const char *probe_chain_result(enum tls_verify v)
{
    switch (v) {
    case TLS_VERIFY_OK:
        return "ok";
    case TLS_VERIFY_NO_CERT:
        return "no-certificate";
    case TLS_VERIFY_EXPIRED:
        return "expired";
    case TLS_VERIFY_UNTRUSTED:
        return "untrusted";
    default:
        return "other";
    }
}

static void probe_json_verify(struct probe_json *j, const struct probe_target *t,
                              const struct probe_tls *x)
{
    probe_json_open(j, "chain_verify", '{');
    probe_json_bool(j, "ok", x->chain_v == TLS_VERIFY_OK);
    probe_json_str(j, "result", probe_chain_result(x->chain_v));
    probe_json_text(j, "reason", x->chain_v == TLS_VERIFY_OK ? "" : x->chain_reason);
    probe_json_close(j, '}');
    probe_json_open(j, "name_verify", '{');
    probe_json_bool(j, "ok", x->matched[0] != '\0');
    probe_json_text(j, "matched", x->matched);
    probe_json_open(j, "checked", '[');
    for (size_t i = 0; i < t->nnames; i++)
        probe_json_str(j, NULL, t->names[i]);
    probe_json_close(j, ']');
    probe_json_text(j, "reason", x->matched[0] ? "" : x->name_reason);
    probe_json_close(j, '}');
}

static void probe_json_tmp_key(struct probe_json *j, const struct probe_tls *x)
{
    if (x->key_bits == 0) {
        probe_json_null(j, "temp_key");
        return;
    }
    probe_json_open(j, "temp_key", '{');
    probe_json_str(j, "kind", x->key_kind);
    probe_json_str(j, "group", x->key_group);
    probe_json_int(j, "bits", x->key_bits);
    probe_json_close(j, '}');
}

static void probe_json_tls(struct probe_json *j, const char *key, const struct probe_target *t,
                           const struct probe_session *s)
{
    const struct probe_tls *x = &s->tls;
    if (!s->tls_tried) {
        probe_json_null(j, key);
        return;
    }
    probe_json_open(j, key, '{');
    probe_json_bool(j, "ok", x->ok);
    probe_json_ms(j, "ms", x->ms);
    probe_json_text(j, "error", x->error);
    probe_json_text(j, "reason", x->reason);
    if (x->ok) {
        probe_json_str(j, "protocol", x->protocol);
        probe_json_str(j, "cipher", x->cipher);
        probe_json_int(j, "cipher_bits", x->cipher_bits);
        probe_json_tmp_key(j, x);
        probe_json_open(j, "chain", '[');
        for (size_t i = 0; i < x->nchain; i++)
            probe_json_cert(j, &x->chain[i]);
        probe_json_close(j, ']');
        probe_json_verify(j, t, x);
    }
    probe_json_ehlo(j, "ehlo", &s->ehlo_tls);
    probe_json_close(j, '}');
}

static void probe_json_verdicts(struct probe_json *j, const struct probe_target *t)
{
    probe_json_open(j, "verdicts", '{');
    for (int l = TLS_OUT_NONE; l <= TLS_OUT_REQUIRED_VERIFY; l++) {
        const struct probe_verdict *v = &t->v[l];
        probe_json_open(j, config_tls_out_name((enum tls_out_level)l), '{');
        probe_json_bool(j, "deliver", v->deliver);
        probe_json_bool(j, "encrypted", v->encrypted);
        probe_json_bool(j, "verified", v->verified);
        probe_json_str(j, "reason", v->reason);
        probe_json_str(j, "text", v->text);
        probe_json_close(j, '}');
    }
    probe_json_close(j, '}');
}

static void probe_json_session(struct probe_json *j, const struct probe_target *t)
{
    const struct probe_session *s = &t->s;
    probe_json_str(j, "failed_step", s->failed == PROBE_DONE ? NULL : probe_step_name(s->failed));
    probe_json_text(j, "error", s->error);
    probe_json_open(j, "connect", '{');
    probe_json_bool(j, "ok", s->connected);
    probe_json_ms(j, "ms", s->connect_ms);
    probe_json_close(j, '}');
    probe_json_reply(j, "greeting", &s->greeting);
    probe_json_ehlo(j, "ehlo", &s->ehlo);
    probe_json_bool(j, "starttls_offered", s->starttls_offered);
    if (s->starttls.code == 0) {
        probe_json_null(j, "starttls");
    } else {
        probe_json_open(j, "starttls", '{');
        probe_json_reply_fields(j, &s->starttls);
        probe_json_bool(j, "data_after_220", s->injected);
        probe_json_close(j, '}');
    }
    probe_json_tls(j, "tls", t, s);
    if (t->lax_tried)
        probe_json_tls(j, "permissive", t, &t->lax);
    else
        probe_json_null(j, "permissive");
}

static void probe_json_target(struct probe_json *j, const struct probe *p,
                              const struct probe_target *t)
{
    probe_json_open(j, NULL, '{');
    probe_json_str(j, "host", t->host);
    if (t->preference >= 0)
        probe_json_int(j, "preference", t->preference);
    else
        probe_json_null(j, "preference");
    probe_json_bool(j, "implicit_mx", t->implicit_mx);
    probe_json_str(j, "address", t->addr_text);
    probe_json_int(j, "port", p->port);
    probe_json_str(j, "sni", t->sni);
    probe_json_open(j, "reference_names", '[');
    for (size_t i = 0; i < t->nnames; i++)
        probe_json_str(j, NULL, t->names[i]);
    probe_json_close(j, ']');
    probe_json_session(j, t);
    const char *flags[8];
    size_t n = probe_flags(t, flags);
    probe_json_open(j, "flags", '[');
    for (size_t i = 0; i < n; i++)
        probe_json_str(j, NULL, flags[i]);
    probe_json_close(j, ']');
    probe_json_verdicts(j, t);
    probe_json_close(j, '}');
}

static void probe_json_result(struct probe_json *j, const struct probe *p, int rc)
{
    char text[1200];
    probe_result_text(p, text, sizeof(text));
    probe_json_open(j, "result", '{');
    probe_json_str(j, "policy", config_tls_out_name(p->policy));
    probe_json_bool(j, "deliver", p->via != NULL);
    if (p->via == NULL) {
        probe_json_null(j, "via");
    } else {
        probe_json_open(j, "via", '{');
        probe_json_str(j, "host", p->via->host);
        probe_json_str(j, "address", p->via->addr_text);
        probe_json_int(j, "port", p->port);
        probe_json_close(j, '}');
    }
    probe_json_str(j, "text", text);
    probe_json_close(j, '}');
    probe_json_int(j, "exit", rc);
}

static void probe_print_json(const struct probe *p, int rc)
{
    struct probe_json j = {.f = stdout};
    probe_json_open(&j, NULL, '{');
    probe_json_str(&j, "query", p->query);
    probe_json_str(&j, "mode", p->mx_mode ? "mx" : "host");
    probe_json_str(&j, "tls_mode", p->o.implicit ? "implicit" : "starttls");
    probe_json_int(&j, "port", p->port);
    probe_json_str(&j, "ehlo", p->ehlo);
    probe_json_str(&j, "policy", config_tls_out_name(p->policy));
    probe_json_str(&j, "trust", p->trust_text);
    probe_json_open(&j, "lookup", '{');
    probe_json_str(&j, "status", p->lookup_status);
    probe_json_text(&j, "error", p->lookup_error);
    probe_json_close(&j, '}');
    probe_json_open(&j, "targets", '[');
    for (size_t i = 0; i < p->ntargets; i++)
        probe_json_target(&j, p, &p->targets[i]);
    probe_json_close(&j, ']');
    probe_json_result(&j, p, rc);
    probe_json_close(&j, '}');
    fputc('\n', stdout);
}

/* ---- the command ---- */

static int probe_setup(struct probe *p)
{
    if (probe_parse_target(p) != 0) {
        fprintf(stderr, "tlsgate probe: bad DOMAIN or HOST[:PORT] '%s'\n", p->o.arg);
        return -1;
    }
    if (probe_load_config(p) != 0 || probe_choose_policy(p) != 0 || probe_make_contexts(p) != 0)
        return -1;
    probe_choose_ehlo(p);
    return 0;
}

static void probe_free(struct probe *p)
{
    certstore_ctx_free(p->ctx);
    certstore_ctx_free(p->lax);
    free(p->targets);
    if (p->cfg != NULL)
        config_unref(p->cfg);
    free(p);
}

int probe_main(int argc, char **argv)
{
    struct probe *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return 2;
    int rc = probe_parse_args(&p->o, argc, argv);
    if (rc == 0)
        rc = probe_setup(p) == 0 && probe_find_targets(p) == 0 ? 0 : 2;
    if (rc == 0) {
        for (size_t i = 0; i < p->ntargets; i++)
            probe_target(p, &p->targets[i]);
        rc = p->via != NULL ? 0 : 1;
        if (p->o.json)
            probe_print_json(p, rc);
        else
            probe_print_text(p);
    } else if (rc == 1) {
        rc = 0; /* --help */
    }
    fflush(stdout);
    probe_free(p);
    return rc;
}
