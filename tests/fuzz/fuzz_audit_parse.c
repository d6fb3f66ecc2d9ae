/*
 * libFuzzer harness for audit_parse: arbitrary bytes, split at newlines, as
 * mail-log lines.  Besides the sanitizers it checks the parser's promises
 * and aborts when one is broken: every string of an event lies inside its
 * line, the event kind is known, a direction is in or out, a time stamp is
 * either absent or within the years a log can carry, and parsing the same
 * line twice gives the same event.  Built by tools/fuzz only, never by
 * CMake (it links src/audit_parse.c alone).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"

static void fuzz_audit_parse_check(int cond)
{
    if (!cond)
        abort();
}

static void fuzz_audit_parse_inside(struct audit_str s, const char *line, size_t len)
{
    if (s.n == 0)
        return;
    fuzz_audit_parse_check(s.p >= line && s.p + s.n <= line + len);
}

static void fuzz_audit_parse_event(const struct audit_event *ev, const char *line, size_t len)
{
    const struct audit_str strs[] = {
        ev->ip,      ev->local_ip, ev->iface,     ev->host,    ev->protocol, ev->cipher,
        ev->cn,      ev->domain,   ev->addr,      ev->reason,  ev->policy,   ev->rids,
        ev->subject, ev->issuer,   ev->not_after, ev->details,
    };
    fuzz_audit_parse_check(ev->kind < AUDIT_EV_COUNT);
    fuzz_audit_parse_check(ev->dir == AUDIT_IN || ev->dir == AUDIT_OUT);
    fuzz_audit_parse_check(ev->time == AUDIT_NO_TIME ||
                           (ev->time >= audit_parse_civil(0, 1, 1, 0, 0, 0) &&
                            ev->time <= audit_parse_civil(10000, 1, 1, 0, 0, 0)));
    for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++)
        fuzz_audit_parse_inside(strs[i], line, len);
}

static void fuzz_audit_parse_line(const char *line, size_t len)
{
    struct audit_parse_ctx ctx = {2026, 11, {0}, 0};
    struct audit_event a, b;
    char *copy = malloc(len ? len : 1); /* exactly LEN bytes: ASan sees overreads */
    if (copy == NULL)
        return;
    memcpy(copy, line, len);
    enum audit_ev k = audit_parse_line(copy, len, &ctx, &a);
    if (k != AUDIT_EV_NONE) {
        fuzz_audit_parse_event(&a, copy, len);
        fuzz_audit_parse_check(audit_parse_line(copy, len, &ctx, &b) == k);
        fuzz_audit_parse_check(a.id == b.id && a.mid == b.mid && a.time == b.time);
    }
    (void)audit_parse_line_time(copy, len, &ctx);
    free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data, *end = p + size;
    while (p <= end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *stop = nl != NULL ? nl : end;
        fuzz_audit_parse_line(p, (size_t)(stop - p));
        if (nl == NULL)
            break;
        p = nl + 1;
    }
    return 0;
}
