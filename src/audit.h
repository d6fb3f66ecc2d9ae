/*
 * audit: `tlsgate audit [options] LOG...` answers "which mail crossed which
 * hop without TLS, or without a verified certificate, and why?" from ESA
 * text mail logs alone: ours (src/maillog.c) and a real Cisco ESA's, plain,
 * gzip'd, on standard input, rotated sets in any order, and the syslog-pushed
 * form.  The tool is its own group of modules over no gateway state:
 *
 *   audit_parse   one line -> one event (pure; every historical TLS variant)
 *   audit_input   files, .gz (through `gzip -dc`), "-", ordering by first
 *                 time stamp; 1 MiB batches parsed by one worker per CPU
 *                 (files mapped, pipes read), joined strictly in order;
 *                 newlines found 64 bytes at a time; the progress line
 *   audit_join    ICID / DCID / MID state with bounded memory
 *   audit_stats   counters, per domain / peer IP / protocol / cipher, the
 *                 hourly timeline, TLS-RPT sessions, spilled message lists
 *   audit_report  aligned text, CSV, JSON
 *   audit_html    the self-contained HTML page (inline SVG chart)
 *   audit_tlsrpt  RFC 8460 aggregate reports, one file per policy domain
 *   audit_main    options and filters
 *
 * Must not: allocate per line (events are slices of the read buffer; only a
 * new key -- a domain, an address, a connection -- allocates), touch the
 * network, or trust log text (every value is escaped on output).
 *
 * Counting (SPEC section 8): a connection is one "New SMTP ICID|DCID" line,
 * counted when it closes ("close"/"lost") or, if it never does, at the end of
 * the input; tls_success / tls_failed count connections with such a line
 * (success wins when both appear), no_tls the rest.  An inbound message is a
 * MID that was received ("MID n ready") and not aborted; an outbound message
 * is one delivery ("Message done DCID d MID m").  Verified outbound: TLS
 * success and our "DCID n TLS verify ok" line; unverified: TLS success
 * without it.  Required failures: connections with a "TLS was required but
 * ..." line (once per connection).
 *
 * What the join keeps (bounded): one entry per open connection (dropped at
 * its close; at most AUDIT_JOIN_MAX_CONNS per direction, the oldest is
 * finalized early beyond that) and one per message from "Start MID" until
 * "MID n done" / "Message finished MID n" / "MID n aborted" (at most
 * AUDIT_JOIN_MAX_MSGS, oldest finalized first).  A message keeps
 * its sender, its ICID's TLS result and the domains of its first
 * AUDIT_MSG_RCPTS recipients.  Tables of domains and peer addresses hold at
 * most AUDIT_STATS_MAX_KEYS keys each; later keys are counted as "(other)".
 * The lists (messages without TLS, required failures) stay in memory up
 * to AUDIT_STATS_SPILL_MEM bytes each (about 70 bytes per message), then
 * move to a temporary file.
 *
 * JSON (--json): the top level is exactly SPEC section 8's
 *   {"inbound", "outbound", "protocols", "ciphers", "domains", "without_tls"}.
 * Beyond the SPEC keys:
 *   inbound / outbound: also "required_failures" (inbound too),
 *     "verify_failed" (outbound: a "TLS verify failed" line),
 *     "messages_tls_unknown" (messages whose connection is not in the logs),
 *     "weak_protocol" / "weak_cipher" (TLS connections flagged below),
 *     "protocols" / "ciphers" (that direction's distribution),
 *     "peers": [{"ip", "host", "connections", "tls_success", "tls_failed",
 *                "no_tls", "messages", "messages_without_tls"}] (host: the
 *                reverse-DNS name inbound, the MX / certificate name
 *                outbound, first seen; null when none),
 *     "required_failure_list": [{"time", "id", "ip", "host", "domain",
 *                "policy", "reason"}] (id: the ICID or DCID; policy: the
 *                level from our Warning or verify line, else "required";
 *                reason: the most telling of the failure lines)
 *   Lists are ordered busiest first (peers, domains, distributions), equal
 *   ones in the order first seen; the spilled lists in log order.
 *   protocols / ciphers: name -> connections with TLS success, both
 *     directions (the SPEC form); which names are weak is in the text, CSV
 *     and HTML reports and in each direction's weak_* counts.
 *   domains[]: {"domain", "direction", "connections", "tls_success",
 *     "tls_failed", "no_tls", "verified", "unverified", "required_failures",
 *     "messages", "messages_without_tls"}; inbound rows are sender domains,
 *     outbound rows recipient domains; "(unknown)" counts the connections
 *     whose domain the log never names, "(other)" those beyond the cap.
 *   without_tls[]: {"mid", "icid", "dcid", "from", "to_domain", "time",
 *     "hop"}: one entry per delivery where the inbound hop, the outbound hop
 *     or both ("hop": "inbound" | "outbound" | "both") had no TLS, and one
 *     per received message without TLS that no DCID delivered (local
 *     delivery: "dcid" null).  Unknown values are null; times are
 *     "YYYY-MM-DDTHH:MM:SS" in the log's own clock.
 *
 * Weak (flagged, documented in the report): protocols below TLSv1.2 (SSLv2,
 * SSLv3, TLSv1, TLSv1.1 and OpenSSL's old "TLSv1/SSLv3"); ciphers with RC4,
 * DES or 3DES, NULL, EXPORT, anonymous key exchange, MD5 MACs, and CBC suites
 * with a SHA-1 MAC (dropped by Mozilla's "intermediate" profile: Lucky13 and
 * padding-oracle history).  TLS 1.3 suites are never weak.
 */
#ifndef TLSGATE_AUDIT_H
#define TLSGATE_AUDIT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* `tlsgate audit ...` with ARGV[0] = "audit"; the process exit status. */
int audit_main(int argc, char **argv);

/* ---- audit_parse: one line -> one event ------------------------------- */

#define AUDIT_NO_TIME INT64_MIN

/* A piece of the line being parsed (not NUL-terminated).  Empty when N is
 * 0, and then P is not to be read (the parser does not clear it). */
struct audit_str {
    const char *p;
    uint32_t n;
};

enum audit_dir { AUDIT_IN = 0, AUDIT_OUT = 1 };

enum audit_ev {
    AUDIT_EV_NONE = 0,     /* a line that does not matter to the audit */
    AUDIT_EV_CONN_NEW,     /* New SMTP ICID|DCID: ip, local_ip, iface, host, port */
    AUDIT_EV_TLS_OK,       /* TLS success [protocol P cipher C] [CN..] [for D] */
    AUDIT_EV_TLS_FAILED,   /* TLS failed[: reason] */
    AUDIT_EV_TLS_REQUIRED, /* TLS was required but ... (DCID form: ip) */
    AUDIT_EV_NO_STARTTLS,  /* DCID n STARTTLS command not supported. */
    AUDIT_EV_VERIFY,       /* DCID n TLS verify ok|failed host H policy P [reason: R] */
    AUDIT_EV_PEER_CERT,    /* DCID n TLS peer certificate subject S issuer I not after T */
    AUDIT_EV_CLOSE,        /* ICID|DCID n close | lost */
    AUDIT_EV_MID_START,    /* Start MID m ICID i */
    AUDIT_EV_MID_FROM,     /* MID m ICID i From: <addr> */
    AUDIT_EV_MID_RCPT,     /* MID m ICID i RID r To: <addr> */
    AUDIT_EV_MID_READY,    /* MID m ready N bytes [from <addr>] */
    AUDIT_EV_MID_DONE,     /* MID m done | Message finished MID m ... */
    AUDIT_EV_MID_ABORTED,  /* MID m aborted[: reason] | Message aborted MID m ... */
    AUDIT_EV_DELIVERY,     /* Delivery start DCID d MID m to RID [rids] */
    AUDIT_EV_DELIVERED,    /* Message done DCID d MID m to RID [rids] */
    AUDIT_EV_BOUNCED,      /* Bounced: DCID d MID m to RID r - ... */
    AUDIT_EV_CONN_ERROR,   /* Connection Error: DCID d domain: D IP: a port: p ... reason: r */
    AUDIT_EV_REQ_WARNING,  /* TLS POLICY for D could not be met by H (IP): reason (ours) */
    AUDIT_EV_COUNT
};

struct audit_event {
    enum audit_ev kind;
    enum audit_dir dir; /* ICID lines: AUDIT_IN, DCID lines: AUDIT_OUT */
    char level;         /* 'I'nfo 'W'arning 'D'ebug 'T'race 'C'ritical 'A'lert */
    int64_t time;       /* seconds since 1970 of the line's own (wall) clock */
    uint64_t id;        /* the ICID or DCID the line is about */
    uint64_t mid;       /* MID lines, Start MID, deliveries, bounces */
    uint64_t icid;      /* MID lines that name their ICID, Start MID */
    uint32_t rid;       /* RID of a To: line; first RID of a delivery */
    int port;           /* New SMTP DCID, Connection Error; 0 when absent */
    int verify_ok;      /* AUDIT_EV_VERIFY: 1 ok, 0 failed */
    int no_starttls;    /* the reason says the peer did not offer STARTTLS */
    struct audit_str ip, local_ip, iface, host, protocol, cipher, cn, domain, addr, reason, policy,
        rids, subject, issuer, not_after, details;
    /* Set by audit_join_prepare (in the parsing threads): the domain of
     * ADDR, and the hashes of the names the join looks up. */
    struct audit_str addr_domain;
    uint32_t h_ip, h_domain, h_addr_domain, h_protocol, h_cipher;
};

/* How to read time stamps that have no year (the syslog forms): a month
 * after REF_MONTH (1-12) belongs to the year before REF_YEAR.  STAMP and
 * STAMP_TIME cache the last ESA stamp (lines of one second share it). */
struct audit_parse_ctx {
    int ref_year;
    int ref_month;
    char stamp[24];
    int64_t stamp_time;
};

/* Parses LINE[0..LEN) (no newline) into *EV.  Returns EV->kind; lines that
 * do not matter return AUDIT_EV_NONE quickly, with *EV only partly set (and
 * their time stamp not computed). */
enum audit_ev audit_parse_line(const char *line, size_t len, struct audit_parse_ctx *ctx,
                               struct audit_event *ev);

/* The time stamp of a log line (any form), AUDIT_NO_TIME if none. */
int64_t audit_parse_line_time(const char *line, size_t len, const struct audit_parse_ctx *ctx);

/* A command-line time: "YYYY-MM-DD", "YYYY-MM-DDTHH:MM[:SS]" (or a space
 * instead of T).  END: a date alone means the end of that day.  0 or -1. */
int audit_parse_time_arg(const char *s, int end, int64_t *t);

/* Seconds since 1970 of a civil date and time (no time zone). */
int64_t audit_parse_civil(int year, int month, int day, int hour, int min, int sec);

/* "YYYY-MM-DDTHH:MM:SS" of T into BUF (at least 20 bytes). */
char *audit_parse_format_time(int64_t t, char *buf, size_t len);

/* The short name of an event kind ("tls_ok", ...), for tests and tracing. */
const char *audit_parse_kind_name(enum audit_ev kind);

/* ---- audit_stats: what the report is made of -------------------------- */

#define AUDIT_STATS_MAX_KEYS 100000
#define AUDIT_NONE_KEY       UINT32_MAX

enum audit_tls { AUDIT_TLS_NONE = 0, AUDIT_TLS_OK, AUDIT_TLS_FAILED, AUDIT_TLS_UNKNOWN };
enum audit_verify { AUDIT_VERIFY_NONE = 0, AUDIT_VERIFY_OK, AUDIT_VERIFY_FAILED };

struct audit_count {
    uint64_t conns, tls_ok, tls_failed, no_tls, verified, unverified, verify_failed, req_failed;
    uint64_t msgs, msgs_plain, msgs_unknown, weak_protocol, weak_cipher;
    uint64_t rpt_ok, rpt_failed; /* TLS-RPT sessions (outbound domains) */
};

/* One interned name (a domain, an address, a protocol, a cipher) with its
 * counters for both directions. */
struct audit_key {
    char *name;
    char *host[2]; /* the IP table: per direction, the first reverse-DNS / MX name */
    uint32_t len;
    uint32_t aux; /* the TLS-RPT table: the key of the policy domain */
    int weak;     /* protocols and ciphers: -1 not yet known, 0 no, 1 weak */
    struct audit_count c[2];
};

/* The open-addressing index of a table: a name's hash, its key + 1, and
 * the name itself when it is short (most addresses and domains): a lookup
 * then touches one cache line. */
#define AUDIT_SLOT_NAME 24
struct audit_slot {
    uint32_t hash, key;
    char name[AUDIT_SLOT_NAME];
};

struct audit_table {
    struct audit_key *keys;
    uint32_t n, cap, max, other;
    uint32_t last; /* the slot last found + 1: names come in runs */
    struct audit_slot *slots;
    uint32_t nslots;
};

/* The head of every pooled entry: the key, the age-list and hash links
 * (indices into the pool, 0 = none) and the entry's own index (0 while it
 * is free). */
struct audit_node {
    uint64_t key;
    uint32_t prev, next, hnext, self;
};

/* A finished (or evicted) connection as the join hands it over. */
struct audit_conn {
    struct audit_node node; /* key: the ICID or DCID */
    int64_t t_open, t_fail;
    uint8_t dir, tls, verify, req_failed, no_starttls, reason_prio;
    uint32_t protocol, cipher, domain, ip_key; /* keys; AUDIT_NONE_KEY when unknown */
    char ip[48], local_ip[48], host[96], policy[24], reason[160];
};

#define AUDIT_MSG_RCPTS 8

struct audit_msg {
    struct audit_node node; /* key: the MID */
    uint64_t icid;
    int64_t t_start, t_ready;
    uint8_t in_tls, ready, aborted, delivered, nrcpt;
    uint32_t from_domain, ip; /* keys */
    uint32_t rcpt_rid[AUDIT_MSG_RCPTS], rcpt_domain[AUDIT_MSG_RCPTS];
    char from[128];
};

struct audit_filter {
    int64_t since, until; /* AUDIT_NO_TIME: open */
    int direction;        /* -1 both, else enum audit_dir */
    const char *domain;   /* NULL: all; ".x" matches x and below */
};

struct audit_bucket {
    uint32_t n[2][3]; /* [dir][tls ok, failed, none] connections */
};

struct audit_spill; /* one spilled list: its temporary file and buffer (audit_stats.c) */

#define AUDIT_STATS_SPILL_MEM ((size_t)64 << 20)

struct audit_stats {
    struct audit_filter filter;
    struct audit_count total[2];
    struct audit_table domains, ips, protocols, ciphers, rpt;
    int64_t first, last; /* time stamps of the lines that matter */
    uint64_t lines, events, files;
    struct audit_bucket *hours;
    int64_t hour0; /* the hour of hours[0] */
    uint32_t nhours, cap_hours;
    struct audit_spill *spill[2]; /* the spilled lists: without TLS, required failures */
    uint64_t nplain, nreq;
    char *arena; /* interned strings */
    size_t arena_left;
    void *arenas; /* list of arena blocks */
};

/* SIZE bytes of address space, zero until written, whose memory is taken
 * only as it is touched (on huge pages where the kernel has them, from 2
 * MiB): tables, pools and lists grow inside it and never move or copy.
 * NULL when there is none; audit_stats_unreserve(P, SIZE) gives it back
 * (P may be NULL). */
void *audit_stats_reserve(size_t size);
void audit_stats_unreserve(void *p, size_t size);

int audit_stats_init(struct audit_stats *st, const struct audit_filter *f);
void audit_stats_free(struct audit_stats *st);

/* The key of NAME[0..N) in T (added when new; lower-cased when FOLD);
 * T->other when the table is full; AUDIT_NONE_KEY when N is 0. */
uint32_t audit_stats_key(struct audit_stats *st, struct audit_table *t, const char *name, size_t n,
                         int fold);
/* The same with HASH = audit_stats_hash(NAME, N, FOLD) already known. */
uint32_t audit_stats_key_hashed(struct audit_stats *st, struct audit_table *t, const char *name,
                                size_t n, int fold, uint32_t hash);
/* The hash of a name (of its lower-case form when FOLD). */
uint32_t audit_stats_hash(const char *s, size_t n, int fold);
/* Hints that the slot of HASH in T, or key K's counters of DIR, will be used soon
 * (the join looks a few events ahead: random addresses miss the caches). */
void audit_stats_prefetch_slot(const struct audit_table *t, uint32_t hash);
void audit_stats_prefetch_key(const struct audit_table *t, uint32_t k, int dir);

/* The domain part of an address: "user@Example.ORG>" -> "Example.ORG"
 * (empty when there is no '@'). */
struct audit_str audit_stats_addr_domain(const char *addr, size_t n);

void audit_stats_conn(struct audit_stats *st, const struct audit_conn *c);
void audit_stats_msg_in(struct audit_stats *st, const struct audit_msg *m);
/* One "Message done": C or M may be NULL (not in the logs); DOMAIN the
 * recipient domain key. */
void audit_stats_delivery(struct audit_stats *st, const struct audit_conn *c,
                          const struct audit_msg *m, uint32_t domain, int64_t t, uint64_t dcid,
                          uint64_t mid);

/* NULL, or why NAME is weak ("< TLSv1.2", "RC4", "3DES", ...). */
const char *audit_stats_weak_protocol(const char *name);
const char *audit_stats_weak_cipher(const char *name);

/* The RFC 8460 result-type for a failure reason. */
const char *audit_stats_result_type(const char *reason, int no_starttls, int verify_failed);

/* The memory bound of each list (at most AUDIT_STATS_SPILL_MEM), set
 * before the first record (tests move lists to their files early with a
 * small one). */
void audit_stats_spill_bound(struct audit_stats *st, size_t bytes);

/* Spilled records, read back in order: rewind the list KIND ('W' without
 * TLS, 'R' required failures), then read each record. */
int audit_stats_spill_rewind(struct audit_stats *st, char kind);

/* One record as audit_stats_spill_read returns it.  The strings point into
 * the reader's buffer (valid until the next read of that list), tabs,
 * newlines and carriage returns in them read as spaces; empty ones are
 * unknown values. */
struct audit_spill_rec {
    int64_t time; /* AUDIT_NO_TIME: unknown */
    /* W: the MID, ICID and DCID (ICID and DCID 0: unknown); R: the ICID or
     * DCID of the failed connection */
    uint64_t id[3];
    const char *what;      /* W: the hop ("inbound", "outbound", "both"); R: the direction */
    struct audit_str s[5]; /* W: from, to_domain; R: ip, host, domain, policy, reason */
};
/* The next record of the list KIND into *R: 1, or 0 at the end. */
int audit_stats_spill_read(struct audit_stats *st, char kind, struct audit_spill_rec *r);

/* The next record of the list KIND as text fields in BUF (LEN bytes; longer
 * values are cut): FIELDS (room for AUDIT_SPILL_FIELDS) get the kind, then
 *   W  time mid icid dcid hop from to_domain
 *   R  direction time id ip host domain policy reason
 * (time in seconds since 1970; unknown values are empty); 0 at the end. */
#define AUDIT_SPILL_FIELDS 9
int audit_stats_spill_next(struct audit_stats *st, char kind, char *buf, size_t len, char **fields);

/* ---- audit_join ------------------------------------------------------ */

#define AUDIT_JOIN_MAX_CONNS 65536
#define AUDIT_JOIN_MAX_MSGS  262144

struct audit_pool; /* one table of open connections or messages */

struct audit_join {
    struct audit_stats *st;
    struct audit_pool *conns[2], *msgs;
    struct audit_parse_ctx ctx;
    uint64_t last_req_dcid; /* the DCID of the last "TLS was required" line */
    uint64_t evicted;
};

int audit_join_init(struct audit_join *j, struct audit_stats *st);
/* One line of input. */
void audit_join_line(struct audit_join *j, const char *line, size_t len);
/* What can be done to an event before its turn, in the parsing threads:
 * hashes and the domain of its address.  Touches no join state.  0 when the
 * join has no use for the event (it need not be handed over). */
int audit_join_prepare(struct audit_event *ev);
/* One prepared event (used by audit_join_line; exposed for tests). */
void audit_join_event(struct audit_join *j, const struct audit_event *ev);
/* N prepared events in order. */
void audit_join_events(struct audit_join *j, const struct audit_event *ev, size_t n);
/* A prepared event packed for the join (the workers of audit_input hand
 * batches of these over): kind, flags, RID and time in 16 bytes, then the
 * fields the join reads of that kind, in a fixed order: IDs (8 bytes) and
 * hashes (4), then strings (of ip, local_ip, host, protocol, cipher,
 * domain, addr, addr_domain, reason, policy, details), each as 8 bytes:
 * its offset from BASE (the start of the batch's text, at most 4 GiB
 * before it) and its length (at most 65535 bytes, longer ones are cut).
 * The strings stay in the batch's text, which outlives the join of the
 * batch: the join reads one short sequential stream and the strings it
 * needs, never a 350-byte event written by another CPU. */
#define AUDIT_JOIN_PACKED_MAX (16 + 48)
/* Packs EV, whose strings lie in the text at BASE, into DST (room for
 * AUDIT_JOIN_PACKED_MAX bytes); the bytes written. */
size_t audit_join_pack(char *dst, const struct audit_event *ev, const char *base);
/* 1 when EV, which follows the packed event at REC at once, makes it
 * redundant: REC is the "Delivery start" of the delivery whose "Message
 * done" EV is, or the "Start MID" of the message (and ICID) whose "From:"
 * EV is.  The join would do nothing with REC that EV does not do. */
int audit_join_supersedes(const char *rec, const struct audit_event *ev);
/* N packed events from RECS, whose strings lie in the text at BASE, in
 * order; FIRST and LAST: the earliest and latest time stamps of the events
 * they were packed from (AUDIT_NO_TIME: none). */
void audit_join_packed(struct audit_join *j, const char *recs, size_t n, const char *base,
                       int64_t first, int64_t last);
/* End of all input: finalizes what is still open. */
void audit_join_finish(struct audit_join *j);
void audit_join_free(struct audit_join *j);

/* ---- audit_input ----------------------------------------------------- */

struct audit_input {
    char *path;         /* "-": standard input */
    int gz;             /* gzip magic seen */
    int64_t first_time; /* first time stamp, AUDIT_NO_TIME if none */
    uint64_t first_id;  /* first ICID/DCID/MID number seen */
    int64_t mtime, size;
    struct audit_parse_ctx ctx;
    char *head; /* standard input: the bytes read while probing */
    size_t head_len;
};

/* Opens every path far enough to order them: 0, or -1 with a message. */
int audit_input_probe(struct audit_input *in, const char *path);
/* Sorts a rotated set by first time stamp (then first ID, mtime). */
void audit_input_order(struct audit_input *in, size_t n);
/* Reads every input in order, line by line, into J; PROGRESS: show a
 * progress line on a terminal.  0, or -1 after a read error (message
 * printed). */
int audit_input_read(struct audit_input *in, size_t n, struct audit_join *j, int progress);
void audit_input_free(struct audit_input *in);

/* ---- output ---------------------------------------------------------- */

struct audit_report_opts {
    const char *title;
    size_t list_limit; /* rows of the lists in text and HTML (0: all) */
};

int audit_report_text(FILE *out, struct audit_stats *st, const struct audit_report_opts *o);
int audit_report_csv(FILE *out, struct audit_stats *st);
int audit_report_json(FILE *out, struct audit_stats *st);

/* V in decimal. */
void audit_report_u64(FILE *out, uint64_t v);
/* JSON string (with quotes) of S[0..N): escapes, invalid UTF-8 -> U+FFFD. */
void audit_report_json_str(FILE *out, const char *s, size_t n);

/* The keys of T with connections or messages in DIR (-1: either), busiest
 * first, equals in the order first seen; *N of them; free() the array
 * (NULL on no memory). */
uint32_t *audit_report_sorted(const struct audit_table *t, int dir, size_t *n);
/* "inbound" / "outbound" */
const char *audit_report_dir_name(int dir);
/* "YYYY-MM-DDTHH:MM:SS" of a spilled time field; "" when it is empty. */
const char *audit_report_spill_time(const char *field, char *buf, size_t len);

int audit_html_write(const char *path, struct audit_stats *st, const struct audit_report_opts *o);

struct audit_tlsrpt_opts {
    const char *dir, *org, *contact;
};

/* One RFC 8460 report per policy domain into O->dir; the number written,
 * or -1 with a message. */
int audit_tlsrpt_write(struct audit_stats *st, const struct audit_tlsrpt_opts *o);

#endif
