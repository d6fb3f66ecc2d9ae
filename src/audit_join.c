/*
 * audit_join: joins the events of the mail log into connections and
 * messages: ICID -> MID (Start MID, From:, To:), MID -> DCID (Delivery
 * start, Message done), DCID -> domain (TLS success ... for D, Connection
 * Error, our required-TLS Warning, the recipient of its first delivery).
 * State lives in three pools (inbound connections, outbound connections,
 * messages): fixed-size entries found by ID through a hash index, kept in
 * order of age, in address space reserved for a cap (memory is taken as
 * entries are first used, and entries never move).
 *
 * What is kept, and for how long (the bound documented in audit.h): a
 * connection from its "New SMTP" line to its close (then it is counted and
 * dropped); a message from "Start MID" to "MID n done", "Message finished",
 * "MID n aborted".  When a pool is full the oldest entry is finalized early
 * (counted as if it had closed) and reused.  Entries carry
 * fixed-size strings: nothing is allocated per line.
 *
 * Must not: keep pointers into a pool across an allocation in the same
 * pool (a full pool finalizes its oldest entry and reuses it), or count
 * anything itself -- that is audit_stats' job, with the filters.
 */
#include "audit.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

typedef void (*audit_join_final_fn)(struct audit_join *j, struct audit_node *n);

struct audit_pool {
    char *items;       /* entry i (1-based) at items + (i - 1) * size */
    size_t size;       /* bytes per entry */
    size_t clear;      /* bytes cleared for a new entry (the strings after them are not) */
    uint32_t n;        /* entries ever handed out (high-water mark) */
    uint32_t max;      /* the bound (ITEMS and BUCKETS are reserved for it) */
    uint32_t count;    /* entries in use */
    uint32_t free;     /* free list through node.next */
    uint32_t head;     /* the newest entry */
    uint32_t tail;     /* the oldest entry */
    uint32_t last;     /* the entry last found or added: events come in runs */
    uint32_t *buckets; /* reserved for MAX_MASK + 1, MASK + 1 of them in use */
    uint32_t mask;     /* grows with COUNT: a small index stays in the cache */
    uint32_t max_mask; /* the most buckets (a power of 2, at least 2 * MAX) - 1 */
    audit_join_final_fn final;
};

/* ---- pools --------------------------------------------------------------- */

static struct audit_node *audit_join_at(struct audit_pool *p, uint32_t i)
{
    return (struct audit_node *)(p->items + (size_t)(i - 1) * p->size);
}

static uint32_t audit_join_index(const struct audit_node *n)
{
    return n->self;
}

/* IDs are handed out in increasing order: their low bits spread them over
 * the index and neighbours in time stay neighbours in memory. */
static uint32_t audit_join_slot(const struct audit_pool *p, uint64_t key)
{
    return (uint32_t)key & p->mask;
}

#define AUDIT_JOIN_BUCKETS 256 /* to begin with */

static void audit_join_pool_free(struct audit_pool *p)
{
    if (p == NULL)
        return;
    audit_stats_unreserve(p->items, (size_t)p->max * p->size);
    audit_stats_unreserve(p->buckets, ((size_t)p->max_mask + 1) * sizeof(*p->buckets));
    free(p);
}

static struct audit_pool *audit_join_pool_new(size_t size, size_t clear, uint32_t max,
                                              audit_join_final_fn fn)
{
    struct audit_pool *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return NULL;
    size_t nb = 1;
    while (nb < (size_t)max * 2)
        nb <<= 1;
    p->max_mask = (uint32_t)nb - 1;
    p->mask = (uint32_t)(nb < AUDIT_JOIN_BUCKETS ? nb : AUDIT_JOIN_BUCKETS) - 1;
    p->size = size;
    p->clear = clear;
    p->max = max;
    p->final = fn;
    p->items = audit_stats_reserve((size_t)max * size);
    p->buckets = audit_stats_reserve((size_t)nb * sizeof(*p->buckets));
    if (p->items == NULL || p->buckets == NULL) {
        audit_join_pool_free(p);
        return NULL;
    }
    return p;
}

static void audit_join_age_unlink(struct audit_pool *p, struct audit_node *n)
{
    if (n->prev != 0)
        audit_join_at(p, n->prev)->next = n->next;
    else
        p->head = n->next;
    if (n->next != 0)
        audit_join_at(p, n->next)->prev = n->prev;
    else
        p->tail = n->prev;
    n->prev = n->next = 0;
}

static void audit_join_age_push(struct audit_pool *p, struct audit_node *n)
{
    uint32_t i = audit_join_index(n);
    n->prev = 0;
    n->next = p->head;
    if (p->head != 0)
        audit_join_at(p, p->head)->prev = i;
    p->head = i;
    if (p->tail == 0)
        p->tail = i;
}

/* The entry for KEY, or NULL. */
static inline struct audit_node *audit_join_lookup(struct audit_pool *p, uint64_t key)
{
    for (uint32_t i = p->buckets[audit_join_slot(p, key)]; i != 0;) {
        struct audit_node *n = audit_join_at(p, i);
        if (n->key == key)
            return n;
        i = n->hnext;
    }
    return NULL;
}

/* The same, remembered: the next events are likely about it too. */
static inline struct audit_node *audit_join_find(struct audit_pool *p, uint64_t key)
{
    if (p->last != 0 && audit_join_at(p, p->last)->key == key)
        return audit_join_at(p, p->last);
    struct audit_node *n = audit_join_lookup(p, key);
    if (n != NULL)
        p->last = audit_join_index(n);
    return n;
}

static void audit_join_unhash(struct audit_pool *p, struct audit_node *n)
{
    uint32_t i = audit_join_index(n);
    uint32_t *link = &p->buckets[audit_join_slot(p, n->key)];
    while (*link != 0 && *link != i)
        link = &audit_join_at(p, *link)->hnext;
    if (*link == i)
        *link = n->hnext;
}

static void audit_join_remove(struct audit_pool *p, struct audit_node *n)
{
    if (p->last == audit_join_index(n))
        p->last = 0;
    audit_join_unhash(p, n);
    audit_join_age_unlink(p, n);
    n->next = p->free;
    p->free = audit_join_index(n);
    n->self = 0;
    p->count--;
}

/* A free entry: from the free list, a new one, or the oldest one finalized
 * early. */
static uint32_t audit_join_take(struct audit_join *j, struct audit_pool *p)
{
    if (p->free != 0) {
        uint32_t i = p->free;
        p->free = audit_join_at(p, i)->next;
        return i;
    }
    if (p->n < p->max)
        return ++p->n;
    struct audit_node *old = audit_join_at(p, p->tail);
    p->final(j, old);
    j->evicted++;
    audit_join_remove(p, old);
    return audit_join_take(j, p);
}

/* Twice the buckets, every entry linked anew (their memory is reserved). */
static void audit_join_rehash(struct audit_pool *p)
{
    p->mask = p->mask * 2 + 1;
    memset(p->buckets, 0, ((size_t)p->mask + 1) * sizeof(*p->buckets));
    for (uint32_t i = p->head; i != 0;) {
        struct audit_node *n = audit_join_at(p, i);
        uint32_t slot = audit_join_slot(p, n->key);
        n->hnext = p->buckets[slot];
        p->buckets[slot] = i;
        i = n->next;
    }
}

/* An entry for KEY, the newest in the age list, cleared up to its
 * strings (the caller sets those). */
static struct audit_node *audit_join_add(struct audit_join *j, struct audit_pool *p, uint64_t key)
{
    uint32_t i = audit_join_take(j, p);
    struct audit_node *n = audit_join_at(p, i);
    memset(n, 0, p->clear);
    n->key = key;
    n->self = i;
    uint32_t slot = audit_join_slot(p, key);
    n->hnext = p->buckets[slot];
    p->buckets[slot] = i;
    p->last = i;
    audit_join_age_push(p, n);
    p->count++;
    if ((size_t)p->count * 2 > (size_t)p->mask + 1 && p->mask < p->max_mask)
        audit_join_rehash(p);
    return n;
}

/* Finalizes every entry, oldest first. */
static void audit_join_drain(struct audit_join *j, struct audit_pool *p)
{
    while (p->tail != 0) {
        struct audit_node *n = audit_join_at(p, p->tail);
        p->final(j, n);
        audit_join_remove(p, n);
    }
}

/* ---- finalizing ---------------------------------------------------------- */

static void audit_join_final_conn(struct audit_join *j, struct audit_node *n)
{
    audit_stats_conn(j->st, (struct audit_conn *)n);
}

static void audit_join_final_msg(struct audit_join *j, struct audit_node *n)
{
    audit_stats_msg_in(j->st, (struct audit_msg *)n);
}

int audit_join_init(struct audit_join *j, struct audit_stats *st)
{
    memset(j, 0, sizeof(*j));
    j->st = st;
    for (int d = 0; d < 2; d++)
        j->conns[d] =
            audit_join_pool_new(sizeof(struct audit_conn), offsetof(struct audit_conn, ip),
                                AUDIT_JOIN_MAX_CONNS, audit_join_final_conn);
    j->msgs = audit_join_pool_new(sizeof(struct audit_msg), offsetof(struct audit_msg, rcpt_rid),
                                  AUDIT_JOIN_MAX_MSGS, audit_join_final_msg);
    if (j->conns[0] == NULL || j->conns[1] == NULL || j->msgs == NULL) {
        audit_join_free(j);
        return -1;
    }
    return 0;
}

void audit_join_finish(struct audit_join *j)
{
    audit_join_drain(j, j->msgs);
    audit_join_drain(j, j->conns[AUDIT_IN]);
    audit_join_drain(j, j->conns[AUDIT_OUT]);
}

void audit_join_free(struct audit_join *j)
{
    for (int d = 0; d < 2; d++)
        audit_join_pool_free(j->conns[d]);
    audit_join_pool_free(j->msgs);
    memset(j, 0, sizeof(*j));
}

/* ---- helpers ------------------------------------------------------------- */

/* S into DST (CAP bytes), cut to fit, NUL-terminated.  The values are
 * short: copied in two overlapping moves of 16, 8, 4 or 1 bytes (or 16-byte
 * steps), which is faster for them than the string instructions a
 * variable-length memcpy turns into. */
static void audit_join_copy(char *dst, size_t cap, struct audit_str s)
{
    size_t n = s.n < cap - 1 ? s.n : cap - 1;
    const char *p = s.p;
    if (n >= 16) {
        for (size_t i = 0; i + 16 < n; i += 16)
            memcpy(dst + i, p + i, 16);
        memcpy(dst + n - 16, p + n - 16, 16);
    } else if (n >= 8) {
        memcpy(dst, p, 8);
        memcpy(dst + n - 8, p + n - 8, 8);
    } else if (n >= 4) {
        memcpy(dst, p, 4);
        memcpy(dst + n - 4, p + n - 4, 4);
    } else if (n > 0) {
        dst[0] = p[0];
        dst[n / 2] = p[n / 2];
        dst[n - 1] = p[n - 1];
    }
    dst[n] = '\0';
}

static int audit_join_eq(const char *a, struct audit_str s)
{
    return strlen(a) == s.n && (s.n == 0 || memcmp(a, s.p, s.n) == 0);
}

/* Why a connection failed: the most telling reason wins (PRIO: 5 a
 * verification failure, 4 TLS failed, 3 our Warning, 2 Connection Error,
 * 1 "TLS was required but ..."). */
static void audit_join_reason(struct audit_conn *c, struct audit_str s, uint8_t prio)
{
    if (s.n == 0 || prio <= c->reason_prio)
        return;
    audit_join_copy(c->reason, sizeof(c->reason), s);
    c->reason_prio = prio;
}

static struct audit_conn *audit_join_conn(struct audit_join *j, int dir, uint64_t id)
{
    return (struct audit_conn *)audit_join_find(j->conns[dir], id);
}

static struct audit_msg *audit_join_msg(struct audit_join *j, uint64_t mid)
{
    return (struct audit_msg *)audit_join_find(j->msgs, mid);
}

static uint32_t audit_join_domain(struct audit_join *j, struct audit_str d, uint32_t hash)
{
    return audit_stats_key_hashed(j->st, &j->st->domains, d.p, d.n, 1, hash);
}

static void audit_join_set_domain(struct audit_join *j, struct audit_conn *c,
                                  const struct audit_event *ev)
{
    if (c->domain == AUDIT_NONE_KEY && ev->domain.n > 0)
        c->domain = audit_join_domain(j, ev->domain, ev->h_domain);
}

/* The recipient domain of RID in M (the first recipient's if RID is not
 * among those kept). */
static uint32_t audit_join_rcpt_domain(const struct audit_msg *m, uint32_t rid)
{
    if (m == NULL || m->nrcpt == 0)
        return AUDIT_NONE_KEY;
    for (uint8_t i = 0; i < m->nrcpt; i++) {
        if (m->rcpt_rid[i] == rid)
            return m->rcpt_domain[i];
    }
    return m->rcpt_domain[0];
}

/* ---- connection events --------------------------------------------------- */

static void audit_join_conn_new(struct audit_join *j, const struct audit_event *ev)
{
    struct audit_pool *p = j->conns[ev->dir];
    struct audit_node *old = audit_join_find(p, ev->id);
    if (old != NULL) { /* an ID seen twice: the first connection is over */
        p->final(j, old);
        audit_join_remove(p, old);
    }
    struct audit_conn *c = (struct audit_conn *)audit_join_add(j, p, ev->id);
    c->dir = (uint8_t)ev->dir;
    c->t_open = ev->time;
    c->t_fail = AUDIT_NO_TIME;
    c->protocol = c->cipher = c->domain = AUDIT_NONE_KEY;
    audit_join_copy(c->ip, sizeof(c->ip), ev->ip);
    c->ip_key = audit_stats_key_hashed(j->st, &j->st->ips, ev->ip.p, ev->ip.n, 1, ev->h_ip);
    /* Its counters are read at its close and by its messages, often fewer
     * events later than audit_join_prefetch looks ahead. */
    audit_stats_prefetch_key(&j->st->ips, c->ip_key, ev->dir);
    audit_join_copy(c->local_ip, sizeof(c->local_ip), ev->local_ip);
    c->host[0] = c->policy[0] = c->reason[0] = '\0';
    if (!(ev->host.n == 7 && memcmp(ev->host.p, "unknown", 7) == 0))
        audit_join_copy(c->host, sizeof(c->host), ev->host);
}

static void audit_join_tls_ok(struct audit_join *j, struct audit_conn *c,
                              const struct audit_event *ev)
{
    c->tls = AUDIT_TLS_OK;
    if (ev->protocol.n > 0)
        c->protocol = audit_stats_key_hashed(j->st, &j->st->protocols, ev->protocol.p,
                                             ev->protocol.n, 0, ev->h_protocol);
    if (ev->cipher.n > 0)
        c->cipher = audit_stats_key_hashed(j->st, &j->st->ciphers, ev->cipher.p, ev->cipher.n, 0,
                                           ev->h_cipher);
    if (c->dir == AUDIT_OUT)
        audit_join_set_domain(j, c, ev);
}

static void audit_join_required(struct audit_join *j, struct audit_conn *c,
                                const struct audit_event *ev)
{
    c->req_failed = 1;
    c->t_fail = ev->time;
    audit_join_reason(c, ev->reason, 1);
    if (c->dir == AUDIT_OUT)
        j->last_req_dcid = c->node.key;
}

static void audit_join_verify(struct audit_conn *c, const struct audit_event *ev)
{
    c->verify = ev->verify_ok ? AUDIT_VERIFY_OK : AUDIT_VERIFY_FAILED;
    if (ev->host.n > 0)
        audit_join_copy(c->host, sizeof(c->host), ev->host);
    audit_join_copy(c->policy, sizeof(c->policy), ev->policy);
    if (!ev->verify_ok)
        audit_join_reason(c, ev->reason, 5);
}

static void audit_join_conn_error(struct audit_join *j, struct audit_conn *c,
                                  const struct audit_event *ev)
{
    audit_join_set_domain(j, c, ev);
    audit_join_reason(c, ev->details.n > 0 ? ev->details : ev->reason, 2);
}

/* Our Warning names no DCID: it belongs to the last "TLS was required"
 * connection when the address matches. */
static void audit_join_req_warning(struct audit_join *j, const struct audit_event *ev)
{
    struct audit_conn *c = audit_join_conn(j, AUDIT_OUT, j->last_req_dcid);
    if (c == NULL || !audit_join_eq(c->ip, ev->ip))
        return;
    audit_join_copy(c->policy, sizeof(c->policy), ev->policy);
    if (c->host[0] == '\0')
        audit_join_copy(c->host, sizeof(c->host), ev->host);
    audit_join_set_domain(j, c, ev);
    audit_join_reason(c, ev->reason, 3);
    c->no_starttls |= (uint8_t)ev->no_starttls;
}

static void audit_join_close(struct audit_join *j, int dir, uint64_t id)
{
    struct audit_node *n = audit_join_find(j->conns[dir], id);
    if (n == NULL)
        return;
    j->conns[dir]->final(j, n);
    audit_join_remove(j->conns[dir], n);
}

static void audit_join_tls_failed(struct audit_conn *c, const struct audit_event *ev)
{
    if (c->tls != AUDIT_TLS_OK)
        c->tls = AUDIT_TLS_FAILED;
    c->no_starttls |= (uint8_t)ev->no_starttls;
    audit_join_reason(c, ev->reason, 4);
}

static void audit_join_no_starttls(struct audit_conn *c, const struct audit_event *ev)
{
    c->no_starttls = 1;
    audit_join_reason(c, ev->reason, 4);
}

/* ---- message events ------------------------------------------------------ */

static struct audit_msg *audit_join_msg_new(struct audit_join *j, const struct audit_event *ev)
{
    struct audit_msg *m = audit_join_msg(j, ev->mid);
    if (m != NULL)
        return m;
    m = (struct audit_msg *)audit_join_add(j, j->msgs, ev->mid);
    m->icid = ev->icid;
    m->t_start = ev->time;
    m->t_ready = AUDIT_NO_TIME;
    m->from_domain = m->ip = AUDIT_NONE_KEY;
    m->from[0] = '\0';
    struct audit_conn *c = audit_join_conn(j, AUDIT_IN, ev->icid);
    m->in_tls = c != NULL ? c->tls : AUDIT_TLS_UNKNOWN;
    if (c != NULL)
        m->ip = c->ip_key;
    return m;
}

static void audit_join_from(struct audit_join *j, const struct audit_event *ev)
{
    struct audit_msg *m = audit_join_msg_new(j, ev);
    if (m == NULL)
        return;
    audit_join_copy(m->from, sizeof(m->from), ev->addr);
    m->from_domain = audit_join_domain(j, ev->addr_domain, ev->h_addr_domain);
    struct audit_conn *c = audit_join_conn(j, AUDIT_IN, ev->icid);
    if (c != NULL && c->domain == AUDIT_NONE_KEY)
        c->domain = m->from_domain;
}

static void audit_join_rcpt(struct audit_join *j, const struct audit_event *ev)
{
    struct audit_msg *m = audit_join_msg_new(j, ev);
    if (m == NULL || m->nrcpt >= AUDIT_MSG_RCPTS)
        return;
    m->rcpt_rid[m->nrcpt] = ev->rid;
    m->rcpt_domain[m->nrcpt] = audit_join_domain(j, ev->addr_domain, ev->h_addr_domain);
    m->nrcpt++;
}

static void audit_join_ready(struct audit_join *j, const struct audit_event *ev)
{
    struct audit_msg *m = audit_join_msg(j, ev->mid);
    if (m == NULL)
        return;
    m->ready = 1;
    m->t_ready = ev->time;
    if (m->from[0] == '\0' && ev->addr.n > 0) { /* no From: line: rare, so worked out here */
        struct audit_str d = audit_stats_addr_domain(ev->addr.p, ev->addr.n);
        audit_join_copy(m->from, sizeof(m->from), ev->addr);
        m->from_domain = audit_join_domain(j, d, audit_stats_hash(d.p, d.n, 1));
    }
}

static void audit_join_msg_end(struct audit_join *j, const struct audit_event *ev)
{
    struct audit_msg *m = audit_join_msg(j, ev->mid);
    if (m == NULL)
        return;
    if (ev->kind == AUDIT_EV_MID_ABORTED)
        m->aborted = 1;
    j->msgs->final(j, &m->node);
    audit_join_remove(j->msgs, &m->node);
}

/* Delivery start / Message done / Bounced: the DCID learns its domain; a
 * done delivery is counted. */
static void audit_join_delivery(struct audit_join *j, const struct audit_event *ev)
{
    struct audit_conn *c = audit_join_conn(j, AUDIT_OUT, ev->id);
    struct audit_msg *m = audit_join_msg(j, ev->mid);
    uint32_t domain = audit_join_rcpt_domain(m, ev->rid);
    if (c != NULL && c->domain == AUDIT_NONE_KEY)
        c->domain = domain;
    if (domain == AUDIT_NONE_KEY && c != NULL)
        domain = c->domain;
    if (ev->kind != AUDIT_EV_DELIVERED)
        return;
    audit_stats_delivery(j->st, c, m, domain, ev->time, ev->id, ev->mid);
    if (m != NULL)
        m->delivered = 1;
}

/* ---- entry points -------------------------------------------------------- */

/* One switch for every kind: the events about a connection need its
 * entry (none when its "New SMTP" line is not in the logs). */
void audit_join_event(struct audit_join *j, const struct audit_event *ev)
{
    struct audit_conn *c;
    switch (ev->kind) {
    case AUDIT_EV_CONN_NEW:
        audit_join_conn_new(j, ev);
        break;
    case AUDIT_EV_CLOSE:
        audit_join_close(j, ev->dir, ev->id);
        break;
    case AUDIT_EV_REQ_WARNING:
        audit_join_req_warning(j, ev);
        break;
    case AUDIT_EV_TLS_OK:
        if ((c = audit_join_conn(j, ev->dir, ev->id)) != NULL)
            audit_join_tls_ok(j, c, ev);
        break;
    case AUDIT_EV_TLS_FAILED:
        if ((c = audit_join_conn(j, ev->dir, ev->id)) != NULL)
            audit_join_tls_failed(c, ev);
        break;
    case AUDIT_EV_TLS_REQUIRED:
        if ((c = audit_join_conn(j, ev->dir, ev->id)) != NULL)
            audit_join_required(j, c, ev);
        break;
    case AUDIT_EV_NO_STARTTLS:
        if ((c = audit_join_conn(j, ev->dir, ev->id)) != NULL)
            audit_join_no_starttls(c, ev);
        break;
    case AUDIT_EV_VERIFY:
        if ((c = audit_join_conn(j, ev->dir, ev->id)) != NULL)
            audit_join_verify(c, ev);
        break;
    case AUDIT_EV_CONN_ERROR:
        if ((c = audit_join_conn(j, ev->dir, ev->id)) != NULL)
            audit_join_conn_error(j, c, ev);
        break;
    case AUDIT_EV_MID_START:
        audit_join_msg_new(j, ev);
        break;
    case AUDIT_EV_MID_FROM:
        audit_join_from(j, ev);
        break;
    case AUDIT_EV_MID_RCPT:
        audit_join_rcpt(j, ev);
        break;
    case AUDIT_EV_MID_READY:
        audit_join_ready(j, ev);
        break;
    case AUDIT_EV_MID_DONE:
    case AUDIT_EV_MID_ABORTED:
        audit_join_msg_end(j, ev);
        break;
    case AUDIT_EV_DELIVERY:
    case AUDIT_EV_DELIVERED:
    case AUDIT_EV_BOUNCED:
        audit_join_delivery(j, ev);
        break;
    default:
        break;
    }
}

static void audit_join_time(struct audit_stats *st, int64_t t)
{
    if (t == AUDIT_NO_TIME)
        return;
    if (st->first == AUDIT_NO_TIME || t < st->first)
        st->first = t;
    if (st->last == AUDIT_NO_TIME || t > st->last)
        st->last = t;
}

/* The kinds audit_join_prefetch has work for (most events skip its call). */
#define AUDIT_JOIN_PF_KINDS                                                                        \
    (1u << AUDIT_EV_CONN_NEW | 1u << AUDIT_EV_MID_FROM | 1u << AUDIT_EV_MID_RCPT |                 \
     1u << AUDIT_EV_CLOSE | 1u << AUDIT_EV_MID_DONE | 1u << AUDIT_EV_DELIVERED)

/* Brings what event EV will touch into the cache while earlier events are
 * joined: the index slot of a new address or domain, the counters of the
 * address of a closing connection or a finished message. */
static void audit_join_prefetch_kind(struct audit_join *j, const struct audit_event *ev)
{
    struct audit_stats *st = j->st;
    const struct audit_node *n;
    switch (ev->kind) {
    case AUDIT_EV_CONN_NEW:
        audit_stats_prefetch_slot(&st->ips, ev->h_ip);
        break;
    case AUDIT_EV_MID_FROM:
    case AUDIT_EV_MID_RCPT:
        audit_stats_prefetch_slot(&st->domains, ev->h_addr_domain);
        break;
    case AUDIT_EV_CLOSE:
        if ((n = audit_join_lookup(j->conns[ev->dir], ev->id)) != NULL) {
            const struct audit_conn *c = (const struct audit_conn *)n;
            audit_stats_prefetch_key(&st->ips, c->ip_key, ev->dir);
            audit_stats_prefetch_key(&st->domains, c->domain, ev->dir);
            audit_stats_prefetch_key(&st->protocols, c->protocol, ev->dir);
            audit_stats_prefetch_key(&st->ciphers, c->cipher, ev->dir);
        }
        break;
    case AUDIT_EV_MID_DONE:
        if ((n = audit_join_lookup(j->msgs, ev->mid)) != NULL) {
            const struct audit_msg *m = (const struct audit_msg *)n;
            audit_stats_prefetch_key(&st->ips, m->ip, AUDIT_IN);
            audit_stats_prefetch_key(&st->domains, m->from_domain, AUDIT_IN);
        }
        break;
    case AUDIT_EV_DELIVERED:
        if ((n = audit_join_lookup(j->conns[AUDIT_OUT], ev->id)) != NULL)
            audit_stats_prefetch_key(&st->ips, ((const struct audit_conn *)n)->ip_key, AUDIT_OUT);
        break;
    default:
        break;
    }
}

static inline void audit_join_prefetch(struct audit_join *j, const struct audit_event *ev)
{
    if (AUDIT_JOIN_PF_KINDS >> ev->kind & 1u)
        audit_join_prefetch_kind(j, ev);
}

#define AUDIT_JOIN_AHEAD 8

void audit_join_events(struct audit_join *j, const struct audit_event *ev, size_t n)
{
    j->st->events += n;
    for (size_t i = 0; i < n && i < AUDIT_JOIN_AHEAD; i++)
        audit_join_prefetch(j, &ev[i]);
    for (size_t i = 0; i < n; i++) {
        if (i + AUDIT_JOIN_AHEAD < n)
            audit_join_prefetch(j, &ev[i + AUDIT_JOIN_AHEAD]);
        audit_join_time(j->st, ev[i].time);
        audit_join_event(j, &ev[i]);
    }
}

/* ---- packed events ------------------------------------------------------- */

struct audit_join_rec {
    uint8_t kind, flags; /* AUDIT_JOIN_F_* */
    uint16_t unused;
    uint32_t rid;
    int64_t time;
    /* then the fields of the kind (AUDIT_JOIN_LAYOUT) */
};

enum { AUDIT_JOIN_F_OUT = 1, AUDIT_JOIN_F_VERIFY_OK = 2, AUDIT_JOIN_F_NO_STARTTLS = 4 };

/* What each kind carries after the head, in order: N a number (an ID, 8
 * bytes, or a hash, 4), S a string (8 bytes: its offset from the batch's
 * text, 32 bits, and its length).  These are all the fields the join reads
 * of that kind; only they travel from the parsing threads.  One list for
 * both directions, so packing and unpacking cannot disagree, and each is
 * straight-line code for its kind. */
#define AUDIT_JOIN_LAYOUT(N, S)                                                                    \
    case AUDIT_EV_CONN_NEW:                                                                        \
        N(id) N(h_ip) S(ip) S(local_ip) S(host) break;                                             \
    case AUDIT_EV_TLS_OK:                                                                          \
        N(id) N(h_domain) N(h_protocol) N(h_cipher) S(protocol) S(cipher) S(domain) break;         \
    case AUDIT_EV_TLS_FAILED:                                                                      \
    case AUDIT_EV_TLS_REQUIRED:                                                                    \
    case AUDIT_EV_NO_STARTTLS:                                                                     \
        N(id) S(reason) break;                                                                     \
    case AUDIT_EV_VERIFY:                                                                          \
        N(id) S(host) S(policy) S(reason) break;                                                   \
    case AUDIT_EV_CLOSE:                                                                           \
        N(id) break;                                                                               \
    case AUDIT_EV_MID_START:                                                                       \
        N(mid) N(icid) break;                                                                      \
    case AUDIT_EV_MID_FROM:                                                                        \
        N(mid) N(icid) N(h_addr_domain) S(addr) S(addr_domain) break;                              \
    case AUDIT_EV_MID_RCPT:                                                                        \
        N(mid) N(icid) N(h_addr_domain) S(addr_domain) break;                                      \
    case AUDIT_EV_MID_READY:                                                                       \
        N(mid) S(addr) break;                                                                      \
    case AUDIT_EV_MID_DONE:                                                                        \
    case AUDIT_EV_MID_ABORTED:                                                                     \
        N(mid) break;                                                                              \
    case AUDIT_EV_DELIVERY:                                                                        \
    case AUDIT_EV_DELIVERED:                                                                       \
    case AUDIT_EV_BOUNCED:                                                                         \
        N(id) N(mid) break;                                                                        \
    case AUDIT_EV_CONN_ERROR:                                                                      \
        N(id) N(h_domain) S(domain) S(details) S(reason) break;                                    \
    case AUDIT_EV_REQ_WARNING:                                                                     \
        N(h_domain) S(ip) S(host) S(domain) S(reason) S(policy) break;                             \
    default:                                                                                       \
        break;

#define AUDIT_JOIN_PUT_N(f)                                                                        \
    memcpy(s, &ev->f, sizeof(ev->f));                                                              \
    s += sizeof(ev->f);
#define AUDIT_JOIN_PUT_S(f)                                                                        \
    {                                                                                              \
        uint64_t at = (uint64_t)(ev->f.n > 0 ? ev->f.p - base : 0) |                               \
                      (uint64_t)(ev->f.n < 65535u ? ev->f.n : 65535u) << 32;                       \
        memcpy(s, &at, 8);                                                                         \
        s += 8;                                                                                    \
    }
#define AUDIT_JOIN_GET_N(f)                                                                        \
    memcpy(&ev->f, s, sizeof(ev->f));                                                              \
    s += sizeof(ev->f);
#define AUDIT_JOIN_GET_S(f)                                                                        \
    {                                                                                              \
        uint64_t at;                                                                               \
        memcpy(&at, s, 8);                                                                         \
        s += 8;                                                                                    \
        ev->f.p = base + (uint32_t)at;                                                             \
        ev->f.n = (uint32_t)(at >> 32);                                                            \
        first = first != NULL ? first : ev->f.p;                                                   \
    }

size_t audit_join_pack(char *dst, const struct audit_event *ev, const char *base)
{
    struct audit_join_rec r = {
        .kind = (uint8_t)ev->kind,
        .flags = (uint8_t)((ev->dir == AUDIT_OUT ? AUDIT_JOIN_F_OUT : 0) |
                           (ev->verify_ok ? AUDIT_JOIN_F_VERIFY_OK : 0) |
                           (ev->no_starttls ? AUDIT_JOIN_F_NO_STARTTLS : 0)),
        .rid = ev->rid,
        .time = ev->time,
    };
    memcpy(dst, &r, sizeof(r));
    char *s = dst + sizeof(r);
    switch (ev->kind) {
        AUDIT_JOIN_LAYOUT(AUDIT_JOIN_PUT_N, AUDIT_JOIN_PUT_S)
    }
    return (size_t)(s - dst);
}

int audit_join_supersedes(const char *rec, const struct audit_event *ev)
{
    struct audit_join_rec r;
    uint64_t n[2]; /* the record's first two numbers, for these kinds */
    memcpy(&r, rec, sizeof(r));
    if (ev->kind == AUDIT_EV_DELIVERED && r.kind == AUDIT_EV_DELIVERY) { /* N(id) N(mid) */
        memcpy(n, rec + sizeof(r), sizeof(n));
        return n[0] == ev->id && n[1] == ev->mid && r.rid == ev->rid;
    }
    if (ev->kind == AUDIT_EV_MID_FROM && r.kind == AUDIT_EV_MID_START) { /* N(mid) N(icid) */
        memcpy(n, rec + sizeof(r), sizeof(n));
        return n[0] == ev->mid && n[1] == ev->icid;
    }
    return 0;
}

/* The event packed at P into *EV (its strings point into the batch's text
 * at BASE); the next record.  Only the fields of its kind are set: the
 * others keep what an earlier event left, and the join does not read them. */
static const char *audit_join_unpack(const char *p, struct audit_event *ev, const char *base)
{
    struct audit_join_rec r;
    memcpy(&r, p, sizeof(r));
    ev->kind = (enum audit_ev)r.kind;
    ev->dir = (r.flags & AUDIT_JOIN_F_OUT) ? AUDIT_OUT : AUDIT_IN;
    ev->verify_ok = (r.flags & AUDIT_JOIN_F_VERIFY_OK) != 0;
    ev->no_starttls = (r.flags & AUDIT_JOIN_F_NO_STARTTLS) != 0;
    ev->rid = r.rid;
    ev->time = r.time;
    const char *s = p + sizeof(r), *first = NULL;
    switch (ev->kind) {
        AUDIT_JOIN_LAYOUT(AUDIT_JOIN_GET_N, AUDIT_JOIN_GET_S)
    }
    if (first != NULL) { /* another CPU read the line: it is joined AHEAD events on */
        __builtin_prefetch(first);
        __builtin_prefetch(first + 64);
    }
    return s;
}

#define AUDIT_JOIN_RING 16 /* > AUDIT_JOIN_AHEAD, a power of 2 */

void audit_join_packed(struct audit_join *j, const char *recs, size_t n, const char *base,
                       int64_t first, int64_t last)
{
    audit_join_time(j->st, first);
    audit_join_time(j->st, last);
    struct audit_event ring[AUDIT_JOIN_RING];
    memset(ring, 0, sizeof(ring)); /* no field is ever read unset */
    const char *p = recs;
    size_t next = 0; /* the next event to unpack */
    j->st->events += n;
    for (; next < n && next < AUDIT_JOIN_AHEAD; next++) {
        p = audit_join_unpack(p, &ring[next % AUDIT_JOIN_RING], base);
        audit_join_prefetch(j, &ring[next % AUDIT_JOIN_RING]);
    }
    for (size_t i = 0; i < n; i++) {
        if (next < n) {
            p = audit_join_unpack(p, &ring[next % AUDIT_JOIN_RING], base);
            audit_join_prefetch(j, &ring[next % AUDIT_JOIN_RING]);
            next++;
        }
        audit_join_event(j, &ring[i % AUDIT_JOIN_RING]);
    }
}

int audit_join_prepare(struct audit_event *ev)
{
    switch (ev->kind) {
    case AUDIT_EV_NONE:
    case AUDIT_EV_PEER_CERT: /* no report reads it */
        return 0;
    case AUDIT_EV_CONN_NEW:
        ev->h_ip = audit_stats_hash(ev->ip.p, ev->ip.n, 1);
        break;
    case AUDIT_EV_TLS_OK:
        ev->h_protocol = audit_stats_hash(ev->protocol.p, ev->protocol.n, 0);
        ev->h_cipher = audit_stats_hash(ev->cipher.p, ev->cipher.n, 0);
        ev->h_domain = audit_stats_hash(ev->domain.p, ev->domain.n, 1);
        break;
    case AUDIT_EV_CONN_ERROR:
    case AUDIT_EV_REQ_WARNING:
        ev->h_domain = audit_stats_hash(ev->domain.p, ev->domain.n, 1);
        break;
    case AUDIT_EV_MID_FROM:
    case AUDIT_EV_MID_RCPT: /* not "ready": its address matters only without a From: line */
        ev->addr_domain = audit_stats_addr_domain(ev->addr.p, ev->addr.n);
        ev->h_addr_domain = audit_stats_hash(ev->addr_domain.p, ev->addr_domain.n, 1);
        break;
    default:
        break;
    }
    return 1;
}

void audit_join_line(struct audit_join *j, const char *line, size_t len)
{
    struct audit_event ev;
    j->st->lines++;
    if (audit_parse_line(line, len, &j->ctx, &ev) == AUDIT_EV_NONE)
        return;
    if (audit_join_prepare(&ev))
        audit_join_events(j, &ev, 1);
    else
        j->st->events++;
}
