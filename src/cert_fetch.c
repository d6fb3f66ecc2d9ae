/*
 * cert_fetch: `tlsgate trust fetch HOST[:PORT] [--starttls smtp] [--implicit]`
 * — the job of the openssl/awk one-liner in the SES guide, done with care:
 * connect (STARTTLS over SMTP or implicit TLS), take the chain the server
 * presents, show each certificate with its SHA-256 fingerprint and whether
 * the chain verifies against the current trust store, and store each one
 * as trust/CN.pem after confirmation.  A command-line tool: blocking
 * sockets with a timeout on every step, plain SSL on the descriptor.
 * Must not: send anything but EHLO, STARTTLS and QUIT, or store anything
 * the user did not confirm (or --yes).
 */
#include "cert_fetch.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "cert_trust.h"
#include "cert_x509.h"

#define CERT_FETCH_TIMEOUT   30
#define CERT_FETCH_REPLY_MAX 65536

struct cert_fetch {
    const struct cert_opts *o;
    struct cert_env *env;
    char host[256], port[8];
    bool implicit;
    int timeout;
    int fd;
    char buf[4096]; /* bytes received and not yet taken as reply lines */
    size_t len;
    SSL_CTX *ctx;
    SSL *ssl;
    STACK_OF(X509) * chain;
};

/* ---- target ---- */

static int cert_fetch_usage(const char *fmt, const char *arg)
{
    fputs("tlsgate trust: ", stderr);
    fprintf(stderr, fmt, arg);
    fputc('\n', stderr);
    return CERT_EXIT_USAGE;
}

/* HOST, [V6]:PORT, HOST:PORT or a bare IPv6 address into F. */
static int cert_fetch_target(struct cert_fetch *f, const char *arg)
{
    const char *port = NULL;
    size_t hostlen;
    if (arg[0] == '[') {
        const char *end = strchr(arg, ']');
        if (end == NULL || (end[1] != '\0' && end[1] != ':'))
            return cert_fetch_usage("'%s' is not HOST[:PORT]", arg);
        hostlen = (size_t)(end - arg - 1);
        arg++;
        port = end[1] == ':' ? end + 2 : NULL;
    } else {
        const char *colon = strchr(arg, ':');
        bool v6 = colon && strchr(colon + 1, ':');
        hostlen = colon && !v6 ? (size_t)(colon - arg) : strlen(arg);
        port = colon && !v6 ? colon + 1 : NULL;
    }
    if (hostlen == 0 || hostlen >= sizeof(f->host))
        return cert_fetch_usage("'%s' is not HOST[:PORT]", arg);
    snprintf(f->host, sizeof(f->host), "%.*s", (int)hostlen, arg);
    char *end;
    long p = port ? strtol(port, &end, 10) : 0;
    if (port && (*port == '\0' || *end != '\0' || p < 1 || p > 65535))
        return cert_fetch_usage("'%s' is not a port number", port);
    if (f->o->implicit && f->o->starttls)
        return cert_fetch_usage("%s: --starttls and --implicit exclude each other", "fetch");
    f->implicit = f->o->implicit || (!f->o->starttls && (p == 465 || p == 2465));
    snprintf(f->port, sizeof(f->port), "%ld", p ? p : f->implicit ? 465 : 25);
    return -1;
}

/* ---- connection ---- */

/* Connects one address with the timeout; the descriptor or -1 (errno). */
static int cert_fetch_connect_one(const struct addrinfo *ai, int timeout)
{
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
    if (fd < 0)
        return -1;
    int err = 0;
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        err = errno;
        if (err == EINPROGRESS) {
            struct pollfd p = {.fd = fd, .events = POLLOUT};
            socklen_t len = sizeof(err);
            int r = poll(&p, 1, timeout * 1000);
            if (r == 0)
                err = ETIMEDOUT;
            else if (r < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
                err = errno;
        }
    }
    if (err != 0) {
        close(fd);
        errno = err;
        return -1;
    }
    return fd;
}

/* Blocking from here on, every read and write bounded by the timeout. */
static void cert_fetch_blocking(int fd, int timeout)
{
    struct timeval tv = {.tv_sec = timeout};
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

static int cert_fetch_connect(struct cert_fetch *f)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res;
    int rc = getaddrinfo(f->host, f->port, &hints, &res);
    if (rc != 0)
        return cert_util_fail("cannot resolve %s: %s", f->host, gai_strerror(rc)), -1;
    int e = ECONNREFUSED;
    f->fd = -1;
    for (struct addrinfo *ai = res; ai != NULL && f->fd < 0; ai = ai->ai_next) {
        errno = 0;
        f->fd = cert_fetch_connect_one(ai, f->timeout);
        if (f->fd < 0)
            e = errno;
    }
    freeaddrinfo(res);
    if (f->fd < 0)
        return cert_util_fail("cannot connect to %s port %s: %s", f->host, f->port,
                              e == ETIMEDOUT ? "no answer (timed out)" : strerror(e)),
               -1;
    cert_fetch_blocking(f->fd, f->timeout);
    return 0;
}

/* ---- SMTP ---- */

static int cert_fetch_send(struct cert_fetch *f, const char *line)
{
    size_t n = strlen(line), off = 0;
    while (off < n) {
        ssize_t w = send(f->fd, line + off, n - off, MSG_NOSIGNAL);
        if (w <= 0)
            return cert_util_fail("cannot send to %s: %s", f->host,
                                  w < 0 ? strerror(errno) : "connection closed"),
                   -1;
        off += (size_t)w;
    }
    return 0;
}

/* One line (without CRLF) into LINE, from the buffer or the socket. */
static int cert_fetch_line(struct cert_fetch *f, char *line, size_t len)
{
    char *nl;
    while ((nl = memchr(f->buf, '\n', f->len)) == NULL) {
        if (f->len == sizeof(f->buf))
            return cert_util_fail("%s sent a reply line longer than %zu bytes", f->host,
                                  sizeof(f->buf)),
                   -1;
        ssize_t r = recv(f->fd, f->buf + f->len, sizeof(f->buf) - f->len, 0);
        if (r <= 0)
            return cert_util_fail("%s: %s", f->host,
                                  r == 0            ? "the server closed the connection"
                                  : errno == EAGAIN ? "no reply in time (timed out)"
                                                    : strerror(errno)),
                   -1;
        f->len += (size_t)r;
    }
    size_t n = (size_t)(nl - f->buf) + 1;
    snprintf(line, len, "%.*s", (int)(n - 1), f->buf);
    line[strcspn(line, "\r")] = '\0';
    memmove(f->buf, f->buf + n, f->len - n);
    f->len -= n;
    return 0;
}

/* A whole (multi-line) reply: its code, and its text in TEXT. */
static int cert_fetch_reply(struct cert_fetch *f, char *text, size_t len)
{
    char line[1100];
    size_t used = 0;
    text[0] = '\0';
    for (int lines = 0; lines < 200; lines++) {
        if (cert_fetch_line(f, line, sizeof(line)) < 0)
            return -1;
        int n = snprintf(text + used, len - used, "%s%s", used ? "\n" : "", line);
        if (n > 0 && (size_t)n < len - used)
            used += (size_t)n;
        if (strlen(line) < 3 || strspn(line, "0123456789") < 3)
            return cert_util_fail("%s does not speak SMTP: '%s'", f->host, line), -1;
        if (line[3] != '-')
            return atoi(line);
    }
    return cert_util_fail("%s sent a reply of more than 200 lines", f->host), -1;
}

/* EHLO: true if STARTTLS is among the extensions. */
static bool cert_fetch_offers(const char *ehlo)
{
    for (const char *p = ehlo; p != NULL; p = strchr(p, '\n')) {
        p += *p == '\n';
        if (strlen(p) >= 12 && strncasecmp(p + 4, "STARTTLS", 8) == 0 &&
            (p[12] == '\0' || p[12] == '\n' || p[12] == ' ' || p[12] == '\r'))
            return true;
    }
    return false;
}

/* Greeting, EHLO, STARTTLS; 0 once the server waits for the handshake. */
static int cert_fetch_starttls(struct cert_fetch *f)
{
    char text[CERT_FETCH_REPLY_MAX], cmd[300];
    int code = cert_fetch_reply(f, text, sizeof(text));
    if (code < 0)
        return cert_util_fail("no SMTP greeting from %s port %s (if it speaks TLS at once, give "
                              "--implicit)",
                              f->host, f->port),
               -1;
    if (code != 220)
        return cert_util_fail("%s did not greet with 220: %s", f->host, text), -1;
    snprintf(cmd, sizeof(cmd), "EHLO %s\r\n", f->env->hostname);
    if (cert_fetch_send(f, cmd) < 0 || (code = cert_fetch_reply(f, text, sizeof(text))) < 0)
        return -1;
    if (code != 250)
        return cert_util_fail("%s refused EHLO: %s", f->host, text), -1;
    if (!cert_fetch_offers(text))
        return cert_util_fail("%s port %s does not offer STARTTLS (try --implicit for SMTPS)",
                              f->host, f->port),
               -1;
    if (cert_fetch_send(f, "STARTTLS\r\n") < 0 ||
        (code = cert_fetch_reply(f, text, sizeof(text))) < 0)
        return -1;
    if (code != 220)
        return cert_util_fail("%s refused STARTTLS: %s", f->host, text), -1;
    if (f->len != 0)
        return cert_util_fail("%s sent data after its STARTTLS reply; refusing the handshake",
                              f->host),
               -1;
    return 0;
}

/* ---- TLS ---- */

static bool cert_fetch_is_ip(const char *host)
{
    unsigned char a[16];
    return inet_pton(AF_INET, host, a) == 1 || inet_pton(AF_INET6, host, a) == 1;
}

/* The reason a handshake failed, in words. */
static const char *cert_fetch_tls_error(SSL *ssl, int r, char *buf, size_t len)
{
    int e = SSL_get_error(ssl, r);
    if (e == SSL_ERROR_SYSCALL && (errno == EAGAIN || errno == EWOULDBLOCK))
        snprintf(buf, len, "no answer in time (timed out)");
    else if (e == SSL_ERROR_SYSCALL || e == SSL_ERROR_ZERO_RETURN)
        snprintf(buf, len, "the server closed the connection");
    else if (cert_util_ossl_reason(buf, len)[0] == '\0')
        snprintf(buf, len, "TLS error %d", e);
    return buf;
}

/* The handshake; F->chain gets the presented certificates. */
static int cert_fetch_handshake(struct cert_fetch *f)
{
    char err[256];
    f->ctx = SSL_CTX_new(TLS_client_method());
    f->ssl = f->ctx ? SSL_new(f->ctx) : NULL;
    if (f->ssl == NULL)
        return cert_util_fail("cannot make a TLS client"), -1;
    /* Only certificates are read here, nothing secret is sent: let old
     * servers and weak keys through so that they can be shown. */
    SSL_set_security_level(f->ssl, 0);
    SSL_set_min_proto_version(f->ssl, 0);
    SSL_set_verify(f->ssl, SSL_VERIFY_NONE, NULL);
    const char *sni = f->o->servername ? f->o->servername : f->host;
    if (!cert_fetch_is_ip(sni))
        SSL_set_tlsext_host_name(f->ssl, sni);
    SSL_set_fd(f->ssl, f->fd);
    int r = SSL_connect(f->ssl);
    if (r != 1)
        return cert_util_fail("TLS handshake with %s port %s failed: %s", f->host, f->port,
                              cert_fetch_tls_error(f->ssl, r, err, sizeof(err))),
               -1;
    STACK_OF(X509) *peer = SSL_get_peer_cert_chain(f->ssl);
    f->chain = sk_X509_new_null();
    for (int i = 0; f->chain && i < sk_X509_num(peer); i++) {
        X509 *x = sk_X509_value(peer, i);
        if (X509_up_ref(x))
            sk_X509_push(f->chain, x);
    }
    if (sk_X509_num(f->chain) == 0)
        return cert_util_fail("%s presented no certificate", f->host), -1;
    return 0;
}

/* Ends the session politely; failures do not matter any more. */
static void cert_fetch_close(struct cert_fetch *f)
{
    if (f->ssl && SSL_is_init_finished(f->ssl)) {
        SSL_write(f->ssl, "QUIT\r\n", 6);
        SSL_shutdown(f->ssl);
    }
    SSL_free(f->ssl);
    SSL_CTX_free(f->ctx);
    if (f->fd >= 0)
        close(f->fd);
    f->ssl = NULL;
    f->ctx = NULL;
    f->fd = -1;
    ERR_clear_error();
}

/* ---- showing and storing ---- */

static void cert_fetch_show_one(struct cert_fetch *f, int i, X509 *x)
{
    char b[1024], when[64], stem[128], path[CERT_PATH_MAX + 300];
    printf("[%d] %s\n", i + 1, cert_x509_label(x, b, sizeof(b)));
    printf("    subject: %s\n", cert_x509_dn(X509_get_subject_name(x), b, sizeof(b)));
    printf("    issuer:  %s\n", cert_x509_dn(X509_get_issuer_name(x), b, sizeof(b)));
    printf("    expires: %s (%ld days)%s\n",
           cert_x509_time(X509_get0_notAfter(x), false, when, sizeof(when)), cert_x509_days_left(x),
           cert_x509_expired(x) ? " EXPIRED" : "");
    printf("    sha256:  %s\n", cert_x509_fingerprint(x, b, sizeof(b)));
    if (cert_trust_find(f->env, x, path, sizeof(path)))
        printf("    already trusted: %s\n", path);
    else
        printf("    new: to be stored as %s/trust/%s.pem\n", f->env->certs_dir,
               cert_trust_file_stem(x, stem, sizeof(stem)));
}

/* The verdict against the current trust store and the name check. */
static void cert_fetch_judge(struct cert_fetch *f)
{
    X509_STORE *store = cert_x509_trust_store(f->env->certs_dir, f->env->system_trust);
    struct cert_x509_verdict v;
    cert_x509_verify(store, f->chain, &v);
    if (v.status == CERT_CHAIN_COMPLETE)
        printf("verification: the chain verifies against the current trust store: %s\n", v.text);
    else
        printf("verification: the chain does NOT verify against the current trust store: %s\n",
               v.text);
    cert_x509_verdict_free(&v);
    X509_STORE_free(store);
    X509 *leaf = sk_X509_value(f->chain, 0);
    const char *name = f->o->servername ? f->o->servername : f->host;
    char names[2048];
    if (cert_x509_host_matches(leaf, name))
        printf("name: %s matches the certificate\n", name);
    else
        printf("name: %s is NOT covered by the certificate (%s)\n", name,
               cert_x509_sans(leaf, ", ", names, sizeof(names))[0] ? names : "no subjectAltName");
}

/* The certificates of the chain not yet trusted (and not repeated). */
static STACK_OF(X509) * cert_fetch_new(struct cert_fetch *f)
{
    STACK_OF(X509) *out = sk_X509_new_null();
    char path[CERT_PATH_MAX + 300];
    for (int i = 0; out && i < sk_X509_num(f->chain); i++) {
        X509 *x = sk_X509_value(f->chain, i);
        bool dup = cert_trust_find(f->env, x, path, sizeof(path));
        for (int j = 0; j < sk_X509_num(out) && !dup; j++)
            dup = cert_x509_same(x, sk_X509_value(out, j));
        if (!dup)
            sk_X509_push(out, x);
    }
    return out;
}

static int cert_fetch_store(struct cert_fetch *f)
{
    STACK_OF(X509) *fresh = cert_fetch_new(f);
    int n = sk_X509_num(fresh), rc = CERT_EXIT_OK;
    char question[CERT_PATH_MAX + 100], path[CERT_PATH_MAX + 300];
    snprintf(question, sizeof(question), "store %d new certificate(s) in %s/trust?", n,
             f->env->certs_dir);
    if (n == 0) {
        printf("every certificate is already trusted; nothing to store\n");
    } else if (!f->o->yes && !cert_util_confirm(question)) {
        printf("nothing stored\n");
        rc = CERT_EXIT_FAIL;
    } else {
        for (int i = 0; i < n && rc == CERT_EXIT_OK; i++) {
            if (cert_trust_store(f->env, sk_X509_value(fresh, i), NULL, false, path, sizeof(path)) <
                0)
                rc = CERT_EXIT_FAIL;
            else
                printf("stored %s\n", path);
        }
        if (rc == CERT_EXIT_OK)
            printf("a running gateway uses them after SIGHUP\n");
    }
    sk_X509_free(fresh);
    return rc;
}

int cert_fetch_run(const struct cert_opts *o, struct cert_env *env)
{
    struct cert_fetch f = {.o = o, .env = env, .fd = -1};
    f.timeout = o->timeout ? o->timeout : CERT_FETCH_TIMEOUT;
    int rc = cert_fetch_target(&f, o->pos[0]);
    if (rc >= 0)
        return rc;
    signal(SIGPIPE, SIG_IGN); /* a tool process: a closed peer is an error, not a signal */
    rc = CERT_EXIT_FAIL;
    if (cert_fetch_connect(&f) == 0 && (f.implicit || cert_fetch_starttls(&f) == 0) &&
        cert_fetch_handshake(&f) == 0) {
        printf("%s port %s (%s, %s, %s) presented %d certificate(s):\n", f.host, f.port,
               f.implicit ? "implicit TLS" : "STARTTLS", SSL_get_version(f.ssl),
               SSL_get_cipher_name(f.ssl), sk_X509_num(f.chain));
        for (int i = 0; i < sk_X509_num(f.chain); i++)
            cert_fetch_show_one(&f, i, sk_X509_value(f.chain, i));
        cert_fetch_judge(&f);
        cert_fetch_close(&f);
        fflush(stdout);
        rc = cert_fetch_store(&f);
    }
    cert_fetch_close(&f);
    sk_X509_pop_free(f.chain, X509_free);
    return rc;
}
