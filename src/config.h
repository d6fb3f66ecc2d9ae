/*
 * config: the INI file (SPEC section 4) turned into an immutable, refcounted
 * snapshot.  Loading is all-or-nothing: every problem is reported as
 * "FILE:LINE: message" and any problem discards the whole new snapshot, so a
 * bad reload changes nothing.  This module does no network I/O and never
 * touches a running session; it only reads the file and, to validate it,
 * stats the certificate store and secret files.
 */
#ifndef TLSGATE_CONFIG_H
#define TLSGATE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

/* Inbound TLS level of a listener or sender group (SPEC section 2). */
enum tls_in_level { TLS_IN_OFF, TLS_IN_PREFERRED, TLS_IN_REQUIRED };

/* Outbound TLS level of a destination or route (SPEC section 3), ordered
 * from weakest to strongest demand. */
enum tls_out_level {
    TLS_OUT_NONE,
    TLS_OUT_PREFERRED,
    TLS_OUT_REQUIRED,
    TLS_OUT_PREFERRED_VERIFY,
    TLS_OUT_REQUIRED_VERIFY
};

enum sg_action { SG_ACCEPT, SG_RELAY, SG_REJECT };
enum proxy_mode { PROXY_NO, PROXY_V1, PROXY_V2, PROXY_ANY };

/* One network: family AF_INET or AF_INET6, address in network order. */
struct cidr {
    int family;
    uint8_t addr[16];
    int prefix;
    bool has_prefix; /* written with "/n" (else a single address) */
};

/* A "match =" list: networks, exact host names and ".suffix" names
 * (names stored lower-case, suffixes keep their leading dot). */
struct matchlist {
    struct cidr *cidrs;
    size_t ncidrs;
    char **names;
    size_t nnames;
};

/* Limits and timeouts; [gateway] sets the defaults, a listener may override
 * each one.  Times in seconds. */
struct conf_limits {
    int command_timeout;        /* whole command line once it began: 60 */
    int tls_handshake_timeout;  /* whole handshake: 30 */
    int idle_timeout;           /* waiting for a command or data bytes: 300 */
    int data_min_rate;          /* bytes/second averaged over DATA: 1024 */
    int max_connections;        /* per listener: 1000 */
    int max_connections_per_ip; /* per client address: 50 */
    int max_recipients;         /* per message: 1000 */
};

struct conf_listener {
    char *name;    /* after "listener:" */
    int line;      /* line of the section header */
    char *address; /* as written: host:port or [v6]:port */
    struct sockaddr_storage addr;
    int addrlen;
    char *interface;   /* label for "New SMTP ICID" (default: the name) */
    char *hostname;    /* greeting name (default: gateway hostname) */
    char *certificate; /* name in certs_dir (default "demo") */
    enum tls_in_level tls;
    bool implicit_tls;
    char *route;           /* NULL: recipients are routed by domain */
    char **accept_domains; /* lower-case; ".suffix" entries keep the dot */
    size_t naccept_domains;
    enum proxy_mode proxy_protocol;
    struct matchlist proxy_from;
    struct conf_limits limits;
};

struct conf_sendergroup {
    char *name;
    int line;
    char *listener; /* NULL: every listener */
    struct matchlist match;
    enum sg_action action;
    int tls; /* -1: the listener's level, else enum tls_in_level */
    bool verify_client;
};

struct conf_destination {
    char *domain; /* "default", "example.org" or ".example.org" (lower-case) */
    int line;
    enum tls_out_level tls;
    bool fallback_plaintext;
};

struct conf_route {
    char *name;
    int line;
    char **domains; /* "*", exact, or ".suffix" (lower-case) */
    size_t ndomains;
    char *maildir; /* set for a Maildir route (then host is NULL) */
    char *host;
    int port; /* default 25 */
    bool implicit_tls;
    int tls; /* -1: the destination's level, else enum tls_out_level */
    char *auth_username;
    char *auth_password_file;
    char *auth_password_env;
};

struct conf_alerts {
    bool enabled; /* an [alerts] section exists */
    char **recipients;
    size_t nrecipients;
    char *route;
    int interval; /* seconds between alerts per destination: 3600 */
};

struct config {
    int refs; /* atomic; use config_ref / config_unref */
    char *path;

    /* [gateway] */
    char *hostname;
    char *maillog; /* path, "syslog" or "-" */
    char *state_dir;
    char *certs_dir;
    int workers;         /* resolved: "auto" becomes the number of cores */
    int min_tls_version; /* TLS1_2_VERSION style numbers: 0x0303 ... */
    char *ciphers;       /* TLS 1.2 cipher list, NULL: OpenSSL default */
    char *ciphersuites;  /* TLS 1.3 suites, NULL: OpenSSL default */
    bool system_trust;   /* use the system store with certs_dir/trust */
    long long max_message_size;
    int shutdown_timeout; /* SIGTERM: seconds to let transactions finish: 30 */
    int mx_port;          /* port of MX delivery: 25 */
    int connect_timeout;  /* outbound connection: 30 */
    int delivery_timeout; /* each outbound reply (RFC 5321 4.5.3.2): 300;
                             twice that for the end of data */
    struct conf_limits limits;

    struct conf_listener *listeners;
    size_t nlisteners;
    struct conf_sendergroup *sendergroups; /* in file order */
    size_t nsendergroups;
    struct conf_destination *destinations;
    size_t ndestinations;
    struct conf_route *routes;
    size_t nroutes;
    struct conf_alerts alerts;
};

/* Parses and validates PATH.  Every problem is written to ERRS as
 * "PATH:LINE: message\n" (LINE 0 for whole-file problems); returns NULL if
 * there was any.  A missing certificate named "demo" is not a problem
 * (tlsgate run creates it). */
struct config *config_load(const char *path, FILE *errs);

/* Parses from a string (for tests); NAME is used in messages. */
struct config *config_load_string(const char *name, const char *text, FILE *errs);

struct config *config_ref(struct config *c);
void config_unref(struct config *c);

const struct conf_listener *config_listener(const struct config *c, const char *name);
const struct conf_route *config_route(const struct config *c, const char *name);

/* Text forms, for logs and messages. */
const char *config_tls_in_name(enum tls_in_level l);
const char *config_tls_out_name(enum tls_out_level l);
const char *config_action_name(enum sg_action a);

/* "host:port" / "[v6]:port" → sockaddr; 0 or -1. */
int config_parse_address(const char *text, struct sockaddr_storage *ss, int *len);
/* "a.b.c.d/n", "v6/n" or a bare address; 0 or -1. */
int config_parse_cidr(const char *text, struct cidr *out);

#endif
