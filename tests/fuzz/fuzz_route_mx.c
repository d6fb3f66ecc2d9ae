/*
 * libFuzzer harness for route_mx's pure parts: arbitrary bytes as a DNS
 * response to an MX query, the records found put in order with a random
 * source taken from the input, and the bytes as an address literal.
 * Besides the sanitizers it checks route_mx's promises (no records unless
 * OK, host names lower-case without a trailing dot, the ordered list sorted,
 * without roots or repeats and within the cap) and aborts when one is
 * broken.  Built by tools/fuzz only, never by CMake; it must not touch DNS.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "route_mx.h"

struct fuzz_route_mx_rng {
    const uint8_t *data;
    size_t size, pos;
};

static void fuzz_route_mx_check(bool cond)
{
    if (!cond)
        abort();
}

/* Random numbers from the input bytes, cycling (any value is legal). */
static uint32_t fuzz_route_mx_rand(void *ctx, uint32_t bound)
{
    struct fuzz_route_mx_rng *r = ctx;
    if (r->size == 0)
        return 0;
    uint32_t x = r->data[r->pos++ % r->size];
    return x % bound;
}

static void fuzz_route_mx_check_host(const char *h)
{
    size_t len = strnlen(h, ROUTE_MX_HOST_MAX);
    fuzz_route_mx_check(len < ROUTE_MX_HOST_MAX);
    fuzz_route_mx_check(len == 0 || h[len - 1] != '.');
    for (size_t i = 0; i < len; i++)
        fuzz_route_mx_check(!(h[i] >= 'A' && h[i] <= 'Z'));
}

static void fuzz_route_mx_order(struct route_mx_record *recs, size_t n, const uint8_t *data,
                                size_t size)
{
    struct fuzz_route_mx_rng rng = {data, size, 0};
    size_t k = route_mx_order(recs, n, fuzz_route_mx_rand, &rng);
    fuzz_route_mx_check(k <= n && k <= ROUTE_MX_MAX_HOSTS);
    for (size_t i = 0; i < k; i++) {
        fuzz_route_mx_check(recs[i].host[0] != '\0');
        fuzz_route_mx_check(i == 0 || recs[i - 1].preference <= recs[i].preference);
        for (size_t j = 0; j < i; j++)
            fuzz_route_mx_check(strcmp(recs[i].host, recs[j].host) != 0);
    }
}

static void fuzz_route_mx_literal(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    memcpy(text, data, size);
    text[size] = '\0';
    struct route_mx_target t;
    int rc = route_mx_literal(text, 25, &t);
    fuzz_route_mx_check(rc >= -1 && rc <= 1);
    fuzz_route_mx_check(rc != 0 || text[0] != '[');
    if (rc == 1)
        fuzz_route_mx_check(t.host[0] != '\0' && t.literal && t.addrlen > 0);
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct route_mx_record recs[ROUTE_MX_MAX_RECORDS];
    size_t n = 12345;
    /* a heap copy of exactly SIZE bytes, so that ASan sees any over-read */
    uint8_t *msg = malloc(size > 0 ? size : 1);
    memcpy(msg, data, size);
    enum route_mx_status st = route_mx_parse_answer(msg, size, recs, ROUTE_MX_MAX_RECORDS, &n);
    fuzz_route_mx_check(st == ROUTE_MX_OK || st == ROUTE_MX_NXDOMAIN || st == ROUTE_MX_TEMPFAIL);
    fuzz_route_mx_check(n <= ROUTE_MX_MAX_RECORDS && (st == ROUTE_MX_OK || n == 0));
    for (size_t i = 0; i < n; i++) {
        fuzz_route_mx_check(recs[i].preference >= 0 && recs[i].preference <= 65535);
        fuzz_route_mx_check_host(recs[i].host);
    }
    bool null = route_mx_is_null(recs, n);
    fuzz_route_mx_check(!null || n > 0);
    fuzz_route_mx_order(recs, n, data, size);
    fuzz_route_mx_literal(data, size);
    free(msg);
    return 0;
}
