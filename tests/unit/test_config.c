/*
 * Unit tests for config: a full configuration with every field checked, the
 * shipped default, a table of invalid inputs with their exact messages,
 * address and network parsing, and refcounting.
 *
 * Each test runs in a fresh temporary directory (the fixture) holding a
 * certificate store and secret files made at test time: nothing secret is
 * ever committed, and relative paths in the configurations resolve there.
 */
#include "config.h"

#include <arpa/inet.h>
#include <check.h>
#include <ftw.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char test_dir[64];
static char test_olddir[PATH_MAX];

static void test_write(const char *path, mode_t mode, const char *content)
{
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(content, f);
    fclose(f);
    ck_assert_int_eq(chmod(path, mode), 0);
}

static void test_mkdir(const char *path)
{
    ck_assert_int_eq(mkdir(path, 0755), 0);
}

/* A certificate store with a good "mx", an "open" one whose key is 0644 and
 * a "nokey" one; secrets with every mistake.  Contents are placeholders:
 * config only stats these files. */
static void test_setup(void)
{
    ck_assert_ptr_nonnull(getcwd(test_olddir, sizeof(test_olddir)));
    strcpy(test_dir, "/tmp/tlsgate-test-config-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(test_dir));
    ck_assert_int_eq(chdir(test_dir), 0);
    test_mkdir("certs");
    test_mkdir("certs/mx");
    test_mkdir("certs/open");
    test_mkdir("certs/nokey");
    test_mkdir("policy");
    test_mkdir("policy/dir.secret");
    test_write("certs/mx/cert.pem", 0644, "placeholder\n");
    test_write("certs/mx/key.pem", 0600, "placeholder\n");
    test_write("certs/open/cert.pem", 0644, "placeholder\n");
    test_write("certs/open/key.pem", 0644, "placeholder\n");
    test_write("certs/nokey/cert.pem", 0644, "placeholder\n");
    test_write("policy/ses.secret", 0600, "placeholder\n");
    test_write("policy/ro.secret", 0400, "placeholder\n");
    test_write("policy/open.secret", 0644, "placeholder\n");
    test_write("policy/group.secret", 0620, "placeholder\n");
    test_write("policy/wo.secret", 0200, "placeholder\n");
}

static int test_remove(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void test_teardown(void)
{
    ck_assert_int_eq(chdir(test_olddir), 0);
    nftw(test_dir, test_remove, 8, FTW_DEPTH | FTW_PHYS);
}

/* Loads TEXT as "t.ini"; *OUT gets everything written to errs (free it). */
static struct config *test_load(const char *text, char **out)
{
    size_t size;
    FILE *errs = open_memstream(out, &size);
    ck_assert_ptr_nonnull(errs);
    struct config *c = config_load_string("t.ini", text, errs);
    fclose(errs);
    return c;
}

/* Loads TEXT and expects success with no output. */
static struct config *test_load_ok(const char *text)
{
    char *out;
    struct config *c = test_load(text, &out);
    ck_assert_str_eq(out, "");
    ck_assert_ptr_nonnull(c);
    free(out);
    return c;
}

static const char *test_ip(const struct cidr *c, char *buf)
{
    return inet_ntop(c->family, c->addr, buf, INET6_ADDRSTRLEN);
}

static int test_port(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)ss)->sin_port);
    return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
}

/* ---- a full configuration ---- */

static const char test_full[] =
    "[gateway]\n"
    "hostname = gw.example.test        ; greeting, EHLO, Received\n"
    "maillog = -                       ; a path, \"syslog\", or \"-\" (stderr)\n"
    "state_dir = run/state             ; ID counters\n"
    "certs_dir = certs\n"
    "workers = 2\n"
    "min_tls_version = TLSv1.3\n"
    "ciphers = HIGH:!aNULL\n"
    "ciphersuites = TLS_AES_256_GCM_SHA384\n"
    "system_trust = no\n"
    "max_message_size = 10485760\n"
    "shutdown_timeout = 10\n"
    "command_timeout = 61\n"
    "tls_handshake_timeout = 31\n"
    "idle_timeout = 301\n"
    "data_min_rate = 0\n"
    "max_connections = 100\n"
    "max_connections_per_ip = 5\n"
    "max_recipients = 10\n"
    "\n"
    "[listener:in]\n"
    "address = 127.0.0.1:2525          ; host:port, [v6]:port\n"
    "interface = Data 1                ; label written in \"New SMTP ICID\" lines\n"
    "hostname = MX.example.test\n"
    "certificate = mx                  ; a name in certs_dir\n"
    "tls = required                    ; off | preferred | required\n"
    "implicit_tls = no                 ; yes = SMTPS\n"
    "route = local                     ; every accepted recipient goes here (edge mode);\n"
    "                                  ; without it, recipients are routed by domain\n"
    "accept_domains = example.test, .Example.test\n"
    "proxy_protocol = v2               ; or v1 | v2 | any; trusted sources in proxy_from\n"
    "proxy_from = 10.0.0.0/8, lb.example.test\n"
    "idle_timeout = 120\n"
    "max_recipients = 50\n"
    "\n"
    "[listener:smtps]\n"
    "address = [::1]:4650\n"
    "implicit_tls = yes\n"
    "\n"
    "[sendergroup:RELAYLIST]\n"
    "listener = in\n"
    "match = 127.0.0.0/8, ::1, .corp.example.test\n"
    "        192.168.1.7/24 ; a continuation line, with a comment\n"
    "        Host.Example.test\n"
    "action = relay                    ; accept | relay | reject\n"
    "tls = required                    ; overrides the listener's level\n"
    "verify_client = yes\n"
    "\n"
    "[sendergroup:ALL]\n"
    "action = reject\n"
    "\n"
    "[destination:default]\n"
    "tls = preferred\n"
    "[destination:Example.org]\n"
    "tls = required-verify\n"
    "fallback_plaintext = yes\n"
    "[destination:.example.net]\n"
    "tls = none\n"
    "\n"
    "[route:local]\n"
    "maildir = var/mail\n"
    "\n"
    "[route:ses]\n"
    "domains = *                       ; recipient domains sent this way\n"
    "host = email-smtp.us-east-1.amazonaws.com\n"
    "port = 587\n"
    "implicit_tls = no\n"
    "tls = required-verify\n"
    "auth_username = AKIAEXAMPLE\n"
    "auth_password_file = policy/ses.secret   ; or auth_password_env = SES_SMTP_PASSWORD\n"
    "\n"
    "[route:smtps]\n"
    "domains = example.com, .example.com\n"
    "host = 192.0.2.25\n"
    "implicit_tls = yes\n"
    "auth_username = user\n"
    "auth_password_env = PATH\n"
    "\n"
    "[alerts]\n"
    "recipients = postmaster@example.test, tls-admin@example.test\n"
    "route = local\n"
    "interval = 600\n";

static void test_check_gateway(const struct config *c)
{
    ck_assert_str_eq(c->path, "t.ini");
    ck_assert_str_eq(c->hostname, "gw.example.test");
    ck_assert_str_eq(c->maillog, "-");
    ck_assert_str_eq(c->state_dir, "run/state");
    ck_assert_str_eq(c->certs_dir, "certs");
    ck_assert_int_eq(c->workers, 2);
    ck_assert_int_eq(c->min_tls_version, 0x0304);
    ck_assert_str_eq(c->ciphers, "HIGH:!aNULL");
    ck_assert_str_eq(c->ciphersuites, "TLS_AES_256_GCM_SHA384");
    ck_assert(!c->system_trust);
    ck_assert(c->max_message_size == 10485760);
    ck_assert_int_eq(c->shutdown_timeout, 10);
    ck_assert_int_eq(c->limits.command_timeout, 61);
    ck_assert_int_eq(c->limits.tls_handshake_timeout, 31);
    ck_assert_int_eq(c->limits.idle_timeout, 301);
    ck_assert_int_eq(c->limits.data_min_rate, 0);
    ck_assert_int_eq(c->limits.max_connections, 100);
    ck_assert_int_eq(c->limits.max_connections_per_ip, 5);
    ck_assert_int_eq(c->limits.max_recipients, 10);
}

static void test_check_listener_in(const struct conf_listener *l)
{
    char ip[INET6_ADDRSTRLEN];
    ck_assert_str_eq(l->name, "in");
    ck_assert_int_eq(l->line, 21);
    ck_assert_str_eq(l->address, "127.0.0.1:2525");
    ck_assert_int_eq(l->addr.ss_family, AF_INET);
    ck_assert_int_eq(l->addrlen, sizeof(struct sockaddr_in));
    ck_assert_int_eq(test_port(&l->addr), 2525);
    inet_ntop(AF_INET, &((const struct sockaddr_in *)&l->addr)->sin_addr, ip, sizeof(ip));
    ck_assert_str_eq(ip, "127.0.0.1");
    ck_assert_str_eq(l->interface, "Data 1");
    ck_assert_str_eq(l->hostname, "mx.example.test");
    ck_assert_str_eq(l->certificate, "mx");
    ck_assert_int_eq(l->tls, TLS_IN_REQUIRED);
    ck_assert(!l->implicit_tls);
    ck_assert_str_eq(l->route, "local");
    ck_assert_uint_eq(l->naccept_domains, 2);
    ck_assert_str_eq(l->accept_domains[0], "example.test");
    ck_assert_str_eq(l->accept_domains[1], ".example.test");
    ck_assert_int_eq(l->proxy_protocol, PROXY_V2);
    ck_assert_uint_eq(l->proxy_from.ncidrs, 1);
    ck_assert_str_eq(test_ip(&l->proxy_from.cidrs[0], ip), "10.0.0.0");
    ck_assert_int_eq(l->proxy_from.cidrs[0].prefix, 8);
    ck_assert_uint_eq(l->proxy_from.nnames, 1);
    ck_assert_str_eq(l->proxy_from.names[0], "lb.example.test");
    /* overridden, and inherited from [gateway] */
    ck_assert_int_eq(l->limits.idle_timeout, 120);
    ck_assert_int_eq(l->limits.max_recipients, 50);
    ck_assert_int_eq(l->limits.command_timeout, 61);
    ck_assert_int_eq(l->limits.data_min_rate, 0);
    ck_assert_int_eq(l->limits.max_connections_per_ip, 5);
}

static void test_check_listener_smtps(const struct conf_listener *l)
{
    ck_assert_str_eq(l->name, "smtps");
    ck_assert_int_eq(l->addr.ss_family, AF_INET6);
    ck_assert_int_eq(test_port(&l->addr), 4650);
    ck_assert_str_eq(l->interface, "smtps");
    ck_assert_str_eq(l->hostname, "gw.example.test");
    ck_assert_str_eq(l->certificate, "demo");
    ck_assert_int_eq(l->tls, TLS_IN_PREFERRED);
    ck_assert(l->implicit_tls);
    ck_assert_ptr_null(l->route);
    ck_assert_uint_eq(l->naccept_domains, 0);
    ck_assert_int_eq(l->proxy_protocol, PROXY_NO);
    ck_assert_int_eq(l->limits.idle_timeout, 301);
    ck_assert_int_eq(l->limits.max_recipients, 10);
}

static void test_check_sendergroups(const struct config *c)
{
    char ip[INET6_ADDRSTRLEN];
    ck_assert_uint_eq(c->nsendergroups, 2);
    const struct conf_sendergroup *g = &c->sendergroups[0];
    ck_assert_str_eq(g->name, "RELAYLIST");
    ck_assert_str_eq(g->listener, "in");
    ck_assert_uint_eq(g->match.ncidrs, 3);
    ck_assert_str_eq(test_ip(&g->match.cidrs[0], ip), "127.0.0.0");
    ck_assert_int_eq(g->match.cidrs[0].prefix, 8);
    ck_assert_int_eq(g->match.cidrs[1].family, AF_INET6);
    ck_assert_str_eq(test_ip(&g->match.cidrs[1], ip), "::1");
    ck_assert_int_eq(g->match.cidrs[1].prefix, 128);
    ck_assert_str_eq(test_ip(&g->match.cidrs[2], ip), "192.168.1.0");
    ck_assert_int_eq(g->match.cidrs[2].prefix, 24);
    ck_assert_uint_eq(g->match.nnames, 2);
    ck_assert_str_eq(g->match.names[0], ".corp.example.test");
    ck_assert_str_eq(g->match.names[1], "host.example.test");
    ck_assert_int_eq(g->action, SG_RELAY);
    ck_assert_int_eq(g->tls, TLS_IN_REQUIRED);
    ck_assert(g->verify_client);
    g = &c->sendergroups[1];
    ck_assert_str_eq(g->name, "ALL");
    ck_assert_ptr_null(g->listener);
    ck_assert_uint_eq(g->match.ncidrs + g->match.nnames, 0);
    ck_assert_int_eq(g->action, SG_REJECT);
    ck_assert_int_eq(g->tls, -1);
    ck_assert(!g->verify_client);
}

static void test_check_destinations(const struct config *c)
{
    ck_assert_uint_eq(c->ndestinations, 3);
    ck_assert_str_eq(c->destinations[0].domain, "default");
    ck_assert_int_eq(c->destinations[0].tls, TLS_OUT_PREFERRED);
    ck_assert(!c->destinations[0].fallback_plaintext);
    ck_assert_str_eq(c->destinations[1].domain, "example.org");
    ck_assert_int_eq(c->destinations[1].tls, TLS_OUT_REQUIRED_VERIFY);
    ck_assert(c->destinations[1].fallback_plaintext);
    ck_assert_str_eq(c->destinations[2].domain, ".example.net");
    ck_assert_int_eq(c->destinations[2].tls, TLS_OUT_NONE);
}

static void test_check_routes(const struct config *c)
{
    ck_assert_uint_eq(c->nroutes, 3);
    const struct conf_route *r = config_route(c, "local");
    ck_assert_ptr_eq(r, &c->routes[0]);
    ck_assert_str_eq(r->maildir, "var/mail");
    ck_assert_ptr_null(r->host);
    ck_assert_uint_eq(r->ndomains, 0);
    ck_assert_int_eq(r->tls, -1);
    r = config_route(c, "ses");
    ck_assert_uint_eq(r->ndomains, 1);
    ck_assert_str_eq(r->domains[0], "*");
    ck_assert_ptr_null(r->maildir);
    ck_assert_str_eq(r->host, "email-smtp.us-east-1.amazonaws.com");
    ck_assert_int_eq(r->port, 587);
    ck_assert(!r->implicit_tls);
    ck_assert_int_eq(r->tls, TLS_OUT_REQUIRED_VERIFY);
    ck_assert_str_eq(r->auth_username, "AKIAEXAMPLE");
    ck_assert_str_eq(r->auth_password_file, "policy/ses.secret");
    ck_assert_ptr_null(r->auth_password_env);
    r = config_route(c, "smtps");
    ck_assert_uint_eq(r->ndomains, 2);
    ck_assert_str_eq(r->domains[1], ".example.com");
    ck_assert_str_eq(r->host, "192.0.2.25");
    ck_assert_int_eq(r->port, 465);
    ck_assert(r->implicit_tls);
    ck_assert_int_eq(r->tls, -1);
    ck_assert_str_eq(r->auth_password_env, "PATH");
    ck_assert_ptr_null(config_route(c, "nope"));
}

START_TEST(test_full_config)
{
    struct config *c = test_load_ok(test_full);
    test_check_gateway(c);
    ck_assert_uint_eq(c->nlisteners, 2);
    test_check_listener_in(config_listener(c, "in"));
    test_check_listener_smtps(config_listener(c, "smtps"));
    ck_assert_ptr_null(config_listener(c, "out"));
    test_check_sendergroups(c);
    test_check_destinations(c);
    test_check_routes(c);
    ck_assert(c->alerts.enabled);
    ck_assert_uint_eq(c->alerts.nrecipients, 2);
    ck_assert_str_eq(c->alerts.recipients[1], "tls-admin@example.test");
    ck_assert_str_eq(c->alerts.route, "local");
    ck_assert_int_eq(c->alerts.interval, 600);
    config_unref(c);
}
END_TEST

/* ---- defaults ---- */

START_TEST(test_defaults)
{
    char host[256] = "";
    struct config *c = test_load_ok("[listener:in]\naddress = *:2525\n");
    gethostname(host, sizeof(host) - 1);
    ck_assert_str_eq(c->hostname, host[0] ? host : "localhost");
    ck_assert_str_eq(c->maillog, "var/log/mail.log");
    ck_assert_str_eq(c->state_dir, "var/state");
    ck_assert_str_eq(c->certs_dir, "certs");
    ck_assert_int_eq(c->workers, 1);
    ck_assert_int_eq(c->min_tls_version, 0x0303);
    ck_assert_ptr_null(c->ciphers);
    ck_assert_ptr_null(c->ciphersuites);
    ck_assert(c->system_trust);
    ck_assert(c->max_message_size == 52428800);
    ck_assert_int_eq(c->shutdown_timeout, 30);
    const struct conf_limits want = {60, 30, 300, 1024, 1000, 50, 1000};
    ck_assert_mem_eq(&c->limits, &want, sizeof(want));
    const struct conf_listener *l = &c->listeners[0];
    ck_assert_mem_eq(&l->limits, &want, sizeof(want));
    ck_assert_str_eq(l->hostname, c->hostname);
    ck_assert_str_eq(l->interface, "in");
    ck_assert_str_eq(l->certificate, "demo");
    ck_assert_int_eq(l->tls, TLS_IN_PREFERRED);
    ck_assert_uint_eq(((const struct sockaddr_in *)&l->addr)->sin_addr.s_addr, htonl(INADDR_ANY));
    ck_assert_int_eq(test_port(&l->addr), 2525);
    ck_assert(!c->alerts.enabled);
    ck_assert_uint_eq(c->nsendergroups + c->ndestinations + c->nroutes, 0);
    config_unref(c);
}
END_TEST

/* A listener starts from the final [gateway] values, wherever [gateway] is. */
START_TEST(test_gateway_after_listener)
{
    struct config *c = test_load_ok("[listener:in]\n"
                                    "address = 127.0.0.1:2525\n"
                                    "max_connections = 7\n"
                                    "[gateway]\n"
                                    "hostname = late.example.test\n"
                                    "command_timeout = 5\n"
                                    "max_connections = 9\n");
    const struct conf_listener *l = config_listener(c, "in");
    ck_assert_str_eq(l->hostname, "late.example.test");
    ck_assert_int_eq(l->limits.command_timeout, 5);
    ck_assert_int_eq(l->limits.max_connections, 7);
    ck_assert_int_eq(c->limits.max_connections, 9);
    config_unref(c);
}
END_TEST

/* Comments, CRLF, a byte-order mark, spacing and case of words. */
START_TEST(test_syntax_accepted)
{
    struct config *c = test_load_ok("\xEF\xBB\xBF; comment\r\n"
                                    "# another comment\r\n"
                                    "[ gateway ]   ; comment after a header\r\n"
                                    "  ciphers=HIGH;not-a-comment-without-space\r\n"
                                    "maillog   =   a;b   ; but this is one\r\n"
                                    "state_dir : colon/form\r\n"
                                    "system_trust = OFF\r\n"
                                    "workers = auto\r\n"
                                    "[listener:in]\r\n"
                                    "address = 127.0.0.1:2525\r\n"
                                    "tls = Required\r\n"
                                    "implicit_tls = true\r\n");
    ck_assert_str_eq(c->ciphers, "HIGH;not-a-comment-without-space");
    ck_assert_str_eq(c->maillog, "a;b");
    ck_assert_str_eq(c->state_dir, "colon/form");
    ck_assert(!c->system_trust);
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    ck_assert_int_eq(c->workers, cores < 1 ? 1 : cores > 64 ? 64 : cores);
    ck_assert_int_eq(c->listeners[0].tls, TLS_IN_REQUIRED);
    ck_assert(c->listeners[0].implicit_tls);
    config_unref(c);
}
END_TEST

/* Lists may continue on indented lines; indented "key =" lines are keys. */
START_TEST(test_continuation)
{
    struct config *c = test_load_ok("[listener:in]\n"
                                    "address = 127.0.0.1:2525\n"
                                    "accept_domains = a.example,\n"
                                    "    b.example   ; comment\n"
                                    "\n"
                                    "    ; an indented comment\n"
                                    "    .c.example\n"
                                    "  tls = off\n");
    const struct conf_listener *l = &c->listeners[0];
    ck_assert_uint_eq(l->naccept_domains, 3);
    ck_assert_str_eq(l->accept_domains[1], "b.example");
    ck_assert_str_eq(l->accept_domains[2], ".c.example");
    ck_assert_int_eq(l->tls, TLS_IN_OFF);
    config_unref(c);
}
END_TEST

/* Source tree path of REL: TLSGATE_TEST_DATA is <source>/tests/data. */
static void test_source_path(char *buf, size_t size, const char *rel)
{
    const char *data = getenv("TLSGATE_TEST_DATA");
    char root[PATH_MAX];
    snprintf(root, sizeof(root), "%s", data ? data : __FILE__);
    for (int i = 0; i < (data ? 2 : 3); i++) {
        char *slash = strrchr(root, '/');
        ck_assert_ptr_nonnull(slash);
        *slash = '\0';
    }
    snprintf(buf, size, "%s/%s", root, rel);
}

START_TEST(test_shipped_default)
{
    char path[PATH_MAX + 32], *out;
    size_t size;
    test_source_path(path, sizeof(path), "policy/tlsgate.ini");
    FILE *errs = open_memstream(&out, &size);
    struct config *c = config_load(path, errs);
    fclose(errs);
    ck_assert_str_eq(out, "");
    free(out);
    ck_assert_ptr_nonnull(c);
    ck_assert_str_eq(c->path, path);
    ck_assert_uint_eq(c->nlisteners, 2);
    ck_assert_int_eq(c->listeners[1].addr.ss_family, AF_INET6);
    ck_assert_str_eq(c->listeners[0].route, "local");
    ck_assert_str_eq(config_route(c, "local")->maildir, "var/mail");
    ck_assert_int_eq(c->sendergroups[0].action, SG_RELAY);
    config_unref(c);
}
END_TEST

START_TEST(test_missing_file)
{
    char *out;
    size_t size;
    FILE *errs = open_memstream(&out, &size);
    ck_assert_ptr_null(config_load("no/such.ini", errs));
    fclose(errs);
    ck_assert_str_eq(out, "no/such.ini:0: cannot read: No such file or directory\n");
    free(out);
}
END_TEST

/* ---- every validation error, with its exact message ---- */

#define BASE "[listener:in]\naddress = 127.0.0.1:2525\n" /* lines 1 and 2 */

struct test_case {
    const char *text;
    const char *want; /* "": the text is valid */
};

static const struct test_case test_cases[] = {
    /* syntax */
    {"workers = 1\n" BASE, "t.ini:1: key 'workers' comes before any [section]\n"},
    {BASE "[gateway\n", "t.ini:3: section header lacks ']'\n"},
    {BASE "[gateway] x\nworkers = zz\n", "t.ini:3: unexpected text after ']'\n"},
    {BASE "[gateway]\nworkers\n", "t.ini:4: expected [section] or key = value\n"},
    {BASE "[gateway]\n= 5\n", "t.ini:4: missing key name before '='\n"},
    {BASE "[gateway]\nhostname = a.example\n  b.example\n",
     "t.ini:5: indented line continues hostname, which is not a list (only lists may span "
     "lines)\n"},
    {BASE "[gateway]\nmaillog =\n", "t.ini:4: maillog needs a value\n"},
    /* sections */
    {BASE "[foo]\nbar = 1\n",
     "t.ini:3: unknown section [foo] (sections are gateway, listener:NAME, sendergroup:NAME, "
     "destination:DOMAIN, route:NAME and alerts)\n"},
    {BASE "[listener]\naddress = 127.0.0.1:1\n",
     "t.ini:3: [listener] needs a name: [listener:NAME]\n"},
    {BASE "[route:]\n", "t.ini:3: [route] needs a name: [route:NAME]\n"},
    {BASE "[gateway:x]\n", "t.ini:3: [gateway:x] takes no name; write [gateway]\n"},
    {BASE "[listener:a b]\n",
     "t.ini:3: bad name in [listener:a b]: use letters, digits, '.', '_' and '-'\n"},
    {BASE "[destination:exa_mple.org]\ntls = none\n",
     "t.ini:3: bad name in [destination:exa_mple.org]: expected default, a domain or .domain\n"},
    {BASE "[listener:in]\naddress = 127.0.0.1:2526\nbogus = 1\n",
     "t.ini:3: duplicate section [listener:in] (first at line 1)\n"},
    {BASE "[destination:Example.org]\ntls = none\n[destination:example.ORG]\ntls = required\n",
     "t.ini:5: duplicate section [destination:example.org] (first at line 3)\n"},
    {BASE "[alerts]\nroute = r\nrecipients = a@example.org\n[alerts]\n[route:r]\nmaildir = m\n",
     "t.ini:6: duplicate section [alerts] (first at line 3)\n"},
    /* keys */
    {BASE "[gateway]\nfoo = 1\n", "t.ini:4: unknown key 'foo' in [gateway]\n"},
    {BASE "[listener:b]\naddress = 127.0.0.1:2600\nmatch = ::1\n",
     "t.ini:5: unknown key 'match' in [listener:b]\n"},
    {BASE "[gateway]\nworkers = 1\nworkers = 2\n",
     "t.ini:5: duplicate key 'workers' in [gateway] (first at line 4)\n"},
    /* values */
    {BASE "[gateway]\nhostname = not valid!\n",
     "t.ini:4: hostname must be a host name, not 'not valid!'\n"},
    {BASE "[gateway]\nworkers = 65\n",
     "t.ini:4: workers must be an integer from 1 to 64 or auto, not '65'\n"},
    {BASE "[gateway]\nidle_timeout = 0\n",
     "t.ini:4: idle_timeout must be an integer from 1 to 86400, not '0'\n"},
    {BASE "[gateway]\nmax_connections = -5\n",
     "t.ini:4: max_connections must be a positive integer, not '-5'\n"},
    {BASE "[gateway]\ndata_min_rate = fast\n",
     "t.ini:4: data_min_rate must be a non-negative integer, not 'fast'\n"},
    {BASE "[gateway]\nmax_message_size = 10M\n",
     "t.ini:4: max_message_size must be a positive integer, not '10M'\n"},
    {BASE "[gateway]\nmax_message_size = 99999999999999999999\n",
     "t.ini:4: max_message_size must be a positive integer, not '99999999999999999999'\n"},
    {BASE "[gateway]\nmin_tls_version = SSLv3\n",
     "t.ini:4: min_tls_version must be TLSv1, TLSv1.1, TLSv1.2 or TLSv1.3, not 'SSLv3'\n"},
    {BASE "[gateway]\nsystem_trust = maybe\n",
     "t.ini:4: system_trust must be yes or no, not 'maybe'\n"},
    {BASE "[listener:b]\naddress = 127.0.0.1:2600\ntls = maybe\n",
     "t.ini:5: tls must be off, preferred or required, not 'maybe'\n"},
    {BASE "[listener:b]\naddress = 127.0.0.1:2600\nproxy_protocol = v3\n",
     "t.ini:5: proxy_protocol must be no, v1, v2 or any, not 'v3'\n"},
    {BASE "[listener:b]\naddress = 127.0.0.1:2600\naccept_domains = example.org, -bad.org\n",
     "t.ini:5: accept_domains: '-bad.org' is not a domain or .domain\n"},
    {BASE "[listener:b]\naddress = 127.0.0.1:2600\nhostname = mx..example\n",
     "t.ini:5: hostname must be a host name, not 'mx..example'\n"},
    {BASE "[sendergroup:G]\nmatch = ::1\naction = allow\n",
     "t.ini:5: action must be accept, relay or reject, not 'allow'\n"},
    {BASE "[destination:.example.org]\ntls = verify\n",
     "t.ini:4: tls must be none, preferred, required, preferred-verify or required-verify, not "
     "'verify'\n"},
    {BASE "[route:r]\nhost = 1.2.3\n",
     "t.ini:4: host must be a host name or an IP address, not '1.2.3'\n"},
    {BASE "[route:r]\nhost = h.example\nport = 0\n",
     "t.ini:5: port must be an integer from 1 to 65535, not '0'\n"},
    {BASE "[route:r]\nmaildir = m\ndomains = example.org, mple..org\n",
     "t.ini:5: domains: 'mple..org' is not *, a domain or .domain\n"},
    {BASE "[alerts]\nrecipients = postmaster\nroute = r\n[route:r]\nmaildir = m\n",
     "t.ini:4: recipients: 'postmaster' is not a mail address (local@domain)\n"},
    {BASE "[alerts]\nrecipients = a@b.example\nroute = r\ninterval = 0s\n[route:r]\nmaildir = m\n",
     "t.ini:6: interval must be an integer from 1 to 604800, not '0s'\n"},
    /* addresses and networks */
    {BASE "[listener:b]\naddress = 127.0.0.1\n",
     "t.ini:4: address must be IPv4:PORT, [IPv6]:PORT or *:PORT with a numeric address and a "
     "port from 1 to 65535, not '127.0.0.1'\n"},
    {BASE "[listener:b]\naddress = localhost:25\n",
     "t.ini:4: address must be IPv4:PORT, [IPv6]:PORT or *:PORT with a numeric address and a "
     "port from 1 to 65535, not 'localhost:25'\n"},
    {BASE "[sendergroup:G]\nmatch = 10.0.0.0/33\n",
     "t.ini:4: match: bad network '10.0.0.0/33': the prefix must be 0 to 32\n"},
    {BASE "[sendergroup:G]\nmatch = 2001:db8::/129\n",
     "t.ini:4: match: bad network '2001:db8::/129': the prefix must be 0 to 128\n"},
    {BASE "[sendergroup:G]\nmatch = 10.0.0.300\n",
     "t.ini:4: match: bad network '10.0.0.300': not an IP address\n"},
    {BASE "[sendergroup:G]\nmatch = 10.0.0.0/8, bad_name\n",
     "t.ini:4: match: 'bad_name' is not an address, a network, a host name or a .domain\n"},
    {BASE "[sendergroup:G]\nmatch = 10.1.2.3/8, 2001:db8::1/32\n", ""},
    /* port clashes */
    {BASE "[listener:b]\naddress = 127.0.0.1:2525\n",
     "t.ini:4: address 127.0.0.1:2525 clashes with listener 'in' (line 1)\n"},
    {BASE "[listener:b]\naddress = *:2525\n",
     "t.ini:4: address *:2525 clashes with listener 'in' (line 1)\n"},
    {BASE "[listener:a6]\naddress = [::1]:2525\n[listener:b6]\naddress = [::]:2525\n",
     "t.ini:6: address [::]:2525 clashes with listener 'a6' (line 3)\n"},
    {BASE "[listener:b]\naddress = 127.0.0.2:2525\n[listener:c]\naddress = [::]:2525\n", ""},
    /* references */
    {BASE "[listener:b]\naddress = 127.0.0.1:2600\nroute = nowhere\n",
     "t.ini:5: route 'nowhere' does not exist (no [route:nowhere] section)\n"},
    {BASE "[sendergroup:G]\nlistener = nope\nmatch = ::1\n",
     "t.ini:4: listener 'nope' does not exist (no [listener:nope] section)\n"},
    {BASE "[alerts]\nrecipients = a@b.example\nroute = gone\n",
     "t.ini:5: route 'gone' does not exist (no [route:gone] section)\n"},
    {"[gateway]\n", "t.ini:0: no [listener:NAME] section; at least one listener is needed\n"},
    /* required keys and rules of sections */
    {BASE "[listener:b]\ntls = off\n", "t.ini:3: [listener:b] needs address\n"},
    {BASE "[listener:b]\naddress = 127.0.0.1:2600\nproxy_protocol = v2\n",
     "t.ini:5: proxy_protocol = v2 needs proxy_from (the addresses allowed to send PROXY "
     "headers)\n"},
    {BASE "[listener:b]\naddress = 127.0.0.1:2600\ntls = off\nimplicit_tls = yes\n",
     "t.ini:6: implicit_tls = yes contradicts tls = off\n"},
    {BASE "[sendergroup:G]\naction = relay\n", "t.ini:3: [sendergroup:G] needs match\n"},
    {BASE "[sendergroup:ALL]\nmatch = 10.0.0.0/8\n",
     "t.ini:4: [sendergroup:ALL] must not have match: ALL is the group of the clients that "
     "match no other group\n"},
    {BASE "[destination:default]\nfallback_plaintext = yes\n",
     "t.ini:3: [destination:default] needs tls\n"},
    {BASE "[alerts]\ninterval = 60\n",
     "t.ini:3: [alerts] needs recipients\nt.ini:3: [alerts] needs route\n"},
    /* routes */
    {BASE "[route:r]\ndomains = *\n", "t.ini:3: [route:r] needs maildir or host\n"},
    {BASE "[route:r]\nmaildir = var/mail\nhost = smtp.example.org\n",
     "t.ini:5: [route:r] has both maildir and host; choose one\n"},
    {BASE "[route:r]\nmaildir = m\nauth_username = u\nport = 25\n",
     "t.ini:5: auth_username needs host (a maildir route delivers locally)\n"
     "t.ini:6: port needs host (a maildir route delivers locally)\n"},
    {BASE "[route:r]\nhost = h.example\ntls = required\nauth_username = u\n",
     "t.ini:6: auth_username needs auth_password_file or auth_password_env\n"},
    {BASE "[route:r]\nhost = h.example\ntls = required\nauth_username = u\n"
          "auth_password_file = policy/ses.secret\nauth_password_env = PATH\n",
     "t.ini:8: auth_password_file and auth_password_env exclude each other; choose one\n"},
    {BASE "[route:r]\nhost = h.example\ntls = required\nauth_password_env = PATH\n",
     "t.ini:6: auth_password_env needs auth_username\n"},
    {BASE "[route:r]\nhost = h.example\nauth_username = u\nauth_password_env = PATH\n",
     "t.ini:5: AUTH needs tls = required or required-verify (secrets are never sent in clear)\n"},
    {BASE "[route:r]\nhost = h.example\ntls = preferred-verify\nauth_username = u\n"
          "auth_password_env = PATH\n",
     "t.ini:6: AUTH needs tls = required or required-verify (secrets are never sent in clear)\n"},
    {BASE "[route:r]\nhost = h.example\nimplicit_tls = yes\nauth_username = u\n"
          "auth_password_file = policy/ro.secret\n",
     ""},
    {BASE "[route:r]\nhost = h.example\ntls = required\nauth_username = u\n"
          "auth_password_env = 1BAD\n",
     "t.ini:7: auth_password_env must be an environment variable name, not '1BAD'\n"},
    {BASE "[route:r]\nhost = h.example\ntls = required\nauth_username = u\n"
          "auth_password_env = TLSGATE_TEST_SURELY_UNSET\n",
     "t.ini:7: auth_password_env TLSGATE_TEST_SURELY_UNSET is not set in the environment\n"},
    {BASE "[route:a]\ndomains = example.org, *\nmaildir = m\n"
          "[route:b]\ndomains = EXAMPLE.org *\nmaildir = n\n",
     "t.ini:7: domain 'example.org' is already routed by route 'a' (line 3)\n"
     "t.ini:7: domain '*' is already routed by route 'a' (line 3)\n"},
    {BASE "[route:a]\ndomains = .example.org, .example.org\nmaildir = m\n",
     "t.ini:4: domain '.example.org' is listed twice\n"},
    /* secret files */
    {BASE "[route:r]\nhost = h.example\ntls = required\nauth_username = u\n"
          "auth_password_file = policy/missing.secret\n",
     "t.ini:7: auth_password_file policy/missing.secret does not exist\n"},
    {BASE "[route:r]\nhost = h.example\ntls = required\nauth_username = u\n"
          "auth_password_file = policy/open.secret\n",
     "t.ini:7: auth_password_file policy/open.secret is readable by group or others (mode "
     "0644); chmod 600 it\n"},
    {BASE "[route:r]\nhost = h.example\ntls = required\nauth_username = u\n"
          "auth_password_file = policy/group.secret\n",
     "t.ini:7: auth_password_file policy/group.secret has group or other permissions (mode "
     "0620); chmod 600 it\n"},
    {BASE "[route:r]\nhost = h.example\ntls = required\nauth_username = u\n"
          "auth_password_file = policy/wo.secret\n",
     "t.ini:7: auth_password_file policy/wo.secret is not readable by its owner (mode 0200); "
     "chmod 600 it\n"},
    {BASE "[route:r]\nhost = h.example\ntls = required\nauth_username = u\n"
          "auth_password_file = policy/dir.secret\n",
     "t.ini:7: auth_password_file policy/dir.secret is not a regular file\n"},
    /* certificates */
    {BASE "[listener:b]\naddress = 127.0.0.1:2600\ncertificate = nothere\n",
     "t.ini:5: certificate 'nothere': certs/nothere/cert.pem does not exist (tlsgate cert "
     "create nothere)\n"
     "t.ini:5: certificate 'nothere': certs/nothere/key.pem does not exist (tlsgate cert "
     "create nothere)\n"},
    {BASE "[listener:b]\naddress = 127.0.0.1:2600\ncertificate = nokey\n",
     "t.ini:5: certificate 'nokey': certs/nokey/key.pem does not exist (tlsgate cert create "
     "nokey)\n"},
    {BASE "[listener:b]\naddress = 127.0.0.1:2600\ncertificate = open\n",
     "t.ini:5: certificate 'open': certs/open/key.pem is readable by group or others (mode "
     "0644); chmod 600 it\n"},
    {BASE "[gateway]\ncerts_dir = elsewhere\n[listener:b]\naddress = 127.0.0.1:2600\n"
          "certificate = mx\n",
     "t.ini:7: certificate 'mx': elsewhere/mx/cert.pem does not exist (tlsgate cert create "
     "mx)\n"
     "t.ini:7: certificate 'mx': elsewhere/mx/key.pem does not exist (tlsgate cert create "
     "mx)\n"},
    {BASE "[listener:b]\naddress = 127.0.0.1:2600\ncertificate = ../mx\n",
     "t.ini:5: certificate must be a name in certs_dir (letters, digits, '.', '_' and '-'), not "
     "'../mx'\n"},
    {BASE "[listener:b]\naddress = 127.0.0.1:2600\ncertificate = trust\n",
     "t.ini:5: certificate name 'trust' is reserved for trust anchors\n"},
    /* no TLS offered: no certificate needed; unless a sender group asks for TLS */
    {BASE "[listener:b]\naddress = 127.0.0.1:2600\ncertificate = nothere\ntls = off\n", ""},
    {BASE "[listener:b]\naddress = 127.0.0.1:2600\ncertificate = nokey\ntls = off\n"
          "[sendergroup:G]\nlistener = b\nmatch = ::1\ntls = required\n",
     "t.ini:5: certificate 'nokey': certs/nokey/key.pem does not exist (tlsgate cert create "
     "nokey)\n"},
    {BASE "[listener:b]\naddress = 127.0.0.1:2600\ncertificate = demo\ntls = required\n", ""},
};

START_TEST(test_errors)
{
    const struct test_case *t = &test_cases[_i];
    char *out;
    struct config *c = test_load(t->text, &out);
    ck_assert_str_eq(out, t->want);
    if (t->want[0])
        ck_assert_ptr_null(c);
    else
        ck_assert_ptr_nonnull(c);
    config_unref(c);
    free(out);
}
END_TEST

/* Every problem is reported, not just the first, in line order. */
START_TEST(test_all_errors)
{
    char *out;
    struct config *c = test_load("[route:r]\n"
                                 "host = h.example\n"
                                 "[listener:in]\n"
                                 "address = 127.0.0.1:99999\n"
                                 "tls = sometimes\n"
                                 "route = elsewhere\n",
                                 &out);
    ck_assert_ptr_null(c);
    ck_assert_str_eq(out, "t.ini:4: address must be IPv4:PORT, [IPv6]:PORT or *:PORT with a "
                          "numeric address and a port from 1 to 65535, not '127.0.0.1:99999'\n"
                          "t.ini:5: tls must be off, preferred or required, not 'sometimes'\n"
                          "t.ini:6: route 'elsewhere' does not exist (no [route:elsewhere] "
                          "section)\n");
    free(out);
}
END_TEST

/* inih's line buffer is limited: a longer line is refused, not split. */
START_TEST(test_long_line)
{
    char text[5000], *out;
    int n = snprintf(text, sizeof(text), BASE "[gateway]\nhostname = ");
    memset(text + n, 'a', sizeof(text) - n - 2);
    strcpy(text + sizeof(text) - 2, "\n");
    struct config *c = test_load(text, &out);
    ck_assert_ptr_null(c);
    ck_assert_msg(strncmp(out, "t.ini:4: line is longer than ", 29) == 0, "got %s", out);
    ck_assert_ptr_nonnull(strstr(out, " characters (continue a long list on indented lines)\n"));
    ck_assert_ptr_eq(strchr(out, '\n'), out + strlen(out) - 1);
    free(out);
}
END_TEST

/* A secret file must belong to the user tlsgate runs as. */
START_TEST(test_secret_owner)
{
    char text[512], want[512], *out;
    const char *path = "policy/other.secret";
    if (geteuid() == 0) {
        test_write(path, 0600, "placeholder\n");
        ck_assert_int_eq(chown(path, 65534, 65534), 0);
    } else {
        path = "/etc/passwd"; /* owned by root */
    }
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    snprintf(text, sizeof(text),
             BASE "[route:r]\nhost = h.example\ntls = required\nauth_username = u\n"
                  "auth_password_file = %s\n",
             path);
    snprintf(want, sizeof(want),
             "t.ini:7: auth_password_file %s is owned by uid %u, not by the running uid %u; "
             "chown it\n",
             path, (unsigned)st.st_uid, (unsigned)geteuid());
    ck_assert_ptr_null(test_load(text, &out));
    ck_assert_str_eq(out, want);
    free(out);
}
END_TEST

/* ---- refcount ---- */

START_TEST(test_refcount)
{
    struct config *c = test_load_ok(BASE);
    ck_assert_int_eq(c->refs, 1);
    ck_assert_ptr_eq(config_ref(c), c);
    ck_assert_ptr_eq(config_ref(c), c);
    ck_assert_int_eq(c->refs, 3);
    config_unref(c);
    config_unref(c);
    ck_assert_int_eq(c->refs, 1);
    ck_assert_str_eq(c->listeners[0].name, "in");
    config_unref(c); /* frees: ASan reports a leak or a double free */
    ck_assert_ptr_null(config_ref(NULL));
    config_unref(NULL);
}
END_TEST

/* ---- addresses, networks, names ---- */

struct test_address {
    const char *text;
    int family; /* 0: must fail */
    const char *ip;
    int port;
};

static const struct test_address test_addresses[] = {
    {"127.0.0.1:25", AF_INET, "127.0.0.1", 25},
    {"*:2525", AF_INET, "0.0.0.0", 2525},
    {"0.0.0.0:65535", AF_INET, "0.0.0.0", 65535},
    {"[::1]:2525", AF_INET6, "::1", 2525},
    {"[::]:25", AF_INET6, "::", 25},
    {"[2001:db8::7]:587", AF_INET6, "2001:db8::7", 587},
    {"127.0.0.1", 0, NULL, 0},
    {"127.0.0.1:0", 0, NULL, 0},
    {"127.0.0.1:65536", 0, NULL, 0},
    {"127.0.0.1:+25", 0, NULL, 0},
    {"127.0.0.1:25x", 0, NULL, 0},
    {":25", 0, NULL, 0},
    {"localhost:25", 0, NULL, 0},
    {"127.1:25", 0, NULL, 0},
    {"::1:25", 0, NULL, 0},
    {"[::1]25", 0, NULL, 0},
    {"[::1]:", 0, NULL, 0},
    {"[127.0.0.1]:25", 0, NULL, 0},
    {"[*]:25", 0, NULL, 0},
    {"", 0, NULL, 0},
};

START_TEST(test_parse_address)
{
    const struct test_address *t = &test_addresses[_i];
    struct sockaddr_storage ss;
    int len = 0;
    char ip[INET6_ADDRSTRLEN];
    int rc = config_parse_address(t->text, &ss, &len);
    ck_assert_msg(rc == (t->family ? 0 : -1), "%s: %d", t->text, rc);
    if (!t->family)
        return;
    ck_assert_int_eq(ss.ss_family, t->family);
    const void *a = t->family == AF_INET ? (const void *)&((struct sockaddr_in *)&ss)->sin_addr
                                         : (const void *)&((struct sockaddr_in6 *)&ss)->sin6_addr;
    ck_assert_str_eq(inet_ntop(t->family, a, ip, sizeof(ip)), t->ip);
    ck_assert_int_eq(test_port(&ss), t->port);
    ck_assert_int_eq(len, t->family == AF_INET ? sizeof(struct sockaddr_in)
                                               : sizeof(struct sockaddr_in6));
}
END_TEST

struct test_cidr {
    const char *text;
    int family; /* 0: must fail */
    const char *ip;
    int prefix;
};

static const struct test_cidr test_cidrs[] = {
    {"10.0.0.0/8", AF_INET, "10.0.0.0", 8},
    {"10.1.2.3/8", AF_INET, "10.0.0.0", 8},
    {"192.168.1.77/25", AF_INET, "192.168.1.0", 25},
    {"192.168.1.200/25", AF_INET, "192.168.1.128", 25},
    {"192.0.2.1", AF_INET, "192.0.2.1", 32},
    {"0.0.0.0/0", AF_INET, "0.0.0.0", 0},
    {"::1", AF_INET6, "::1", 128},
    {"2001:db8:ffff::1/33", AF_INET6, "2001:db8:8000::", 33},
    {"::/0", AF_INET6, "::", 0},
    {"10.0.0.0/33", 0, NULL, 0},
    {"10.0.0.0/", 0, NULL, 0},
    {"10.0.0.0/-1", 0, NULL, 0},
    {"10.0.0.0/8x", 0, NULL, 0},
    {"10.0.0.0/0008", 0, NULL, 0},
    {"/8", 0, NULL, 0},
    {"1.2.3", 0, NULL, 0},
    {"example.org", 0, NULL, 0},
    {"2001:db8::/129", 0, NULL, 0},
    {"", 0, NULL, 0},
};

START_TEST(test_parse_cidr)
{
    const struct test_cidr *t = &test_cidrs[_i];
    struct cidr c;
    char ip[INET6_ADDRSTRLEN];
    int rc = config_parse_cidr(t->text, &c);
    ck_assert_msg(rc == (t->family ? 0 : -1), "%s: %d", t->text, rc);
    if (!t->family)
        return;
    ck_assert_int_eq(c.family, t->family);
    ck_assert_str_eq(test_ip(&c, ip), t->ip);
    ck_assert_int_eq(c.prefix, t->prefix);
}
END_TEST

START_TEST(test_names)
{
    ck_assert_str_eq(config_tls_in_name(TLS_IN_OFF), "off");
    ck_assert_str_eq(config_tls_in_name(TLS_IN_PREFERRED), "preferred");
    ck_assert_str_eq(config_tls_in_name(TLS_IN_REQUIRED), "required");
    ck_assert_str_eq(config_tls_out_name(TLS_OUT_NONE), "none");
    ck_assert_str_eq(config_tls_out_name(TLS_OUT_PREFERRED), "preferred");
    ck_assert_str_eq(config_tls_out_name(TLS_OUT_REQUIRED), "required");
    ck_assert_str_eq(config_tls_out_name(TLS_OUT_PREFERRED_VERIFY), "preferred-verify");
    ck_assert_str_eq(config_tls_out_name(TLS_OUT_REQUIRED_VERIFY), "required-verify");
    ck_assert_str_eq(config_action_name(SG_ACCEPT), "accept");
    ck_assert_str_eq(config_action_name(SG_RELAY), "relay");
    ck_assert_str_eq(config_action_name(SG_REJECT), "reject");
    ck_assert_str_eq(config_tls_out_name((enum tls_out_level)99), "unknown");
}
END_TEST

static Suite *test_suite(void)
{
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("config");
    tcase_add_checked_fixture(tc, test_setup, test_teardown);
    tcase_add_test(tc, test_full_config);
    tcase_add_test(tc, test_defaults);
    tcase_add_test(tc, test_gateway_after_listener);
    tcase_add_test(tc, test_syntax_accepted);
    tcase_add_test(tc, test_continuation);
    tcase_add_test(tc, test_shipped_default);
    tcase_add_test(tc, test_missing_file);
    tcase_add_loop_test(tc, test_errors, 0, sizeof(test_cases) / sizeof(test_cases[0]));
    tcase_add_test(tc, test_all_errors);
    tcase_add_test(tc, test_long_line);
    tcase_add_test(tc, test_secret_owner);
    tcase_add_test(tc, test_refcount);
    tcase_add_loop_test(tc, test_parse_address, 0,
                        sizeof(test_addresses) / sizeof(test_addresses[0]));
    tcase_add_loop_test(tc, test_parse_cidr, 0, sizeof(test_cidrs) / sizeof(test_cidrs[0]));
    tcase_add_test(tc, test_names);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(test_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
