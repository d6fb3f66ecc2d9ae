/*
 * libFuzzer harness for proxy: the first byte picks the mode, the rest is
 * what a peer sent.  Every length from 0 to the end (up to a bound past the
 * longest header) is parsed from a buffer of exactly that length, so that
 * AddressSanitizer sees any over-read, and the parser's promises are
 * checked: a result never exceeds the length; once -1 or N > 0, appending
 * bytes never changes it (nor the reason or the addresses); -1 always
 * carries a reason and 0 or N never do; PROXY_ANY answers as the version
 * that the first byte selects; a v1 header ends in CRLF and fits 107 bytes,
 * a v2 one fits 536; a TCP4 v1 header and any v2 PROXY header re-encode to
 * the very bytes parsed.  Aborts when one is broken.  Built by tools/fuzz
 * only, never by CMake.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy.h"

#define FUZZ_PROXY_SPAN (PROXY_HEADER_MAX + 64)

static void fuzz_proxy_check(bool cond)
{
    if (!cond)
        abort();
}

static int fuzz_proxy_parse(const uint8_t *data, size_t len, enum proxy_mode mode,
                            struct proxy_info *out)
{
    unsigned char *b = malloc(len > 0 ? len : 1);
    memcpy(b, data, len);
    int rc = proxy_parse(b, len, mode, out);
    free(b);
    return rc;
}

static size_t fuzz_proxy_addr(const struct sockaddr_storage *ss, unsigned char *addr,
                              unsigned *port)
{
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;
        memcpy(addr, &sin->sin_addr, 4);
        *port = ntohs(sin->sin_port);
        return 4;
    }
    const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;
    memcpy(addr, &sin6->sin6_addr, 16);
    *port = ntohs(sin6->sin6_port);
    return 16;
}

/* A v1 TCP4 line printed back from INFO equals the N bytes parsed (IPv4
 * text is canonical under the strict rules; IPv6 text is not). */
static void fuzz_proxy_v1_roundtrip(const uint8_t *data, int n, const struct proxy_info *info)
{
    char src[INET6_ADDRSTRLEN], dst[INET6_ADDRSTRLEN], line[256];
    unsigned char a[16], b[16];
    unsigned sport, dport;
    if (info->local || info->src.ss_family != AF_INET)
        return;
    fuzz_proxy_addr(&info->src, a, &sport);
    fuzz_proxy_addr(&info->dst, b, &dport);
    inet_ntop(AF_INET, a, src, sizeof(src));
    inet_ntop(AF_INET, b, dst, sizeof(dst));
    int w = snprintf(line, sizeof(line), "PROXY TCP4 %s %s %u %u\r\n", src, dst, sport, dport);
    fuzz_proxy_check(w == n && memcmp(line, data, (size_t)n) == 0);
}

/* The address block of a v2 PROXY header re-encoded from INFO equals the
 * bytes after the 16-byte header. */
static void fuzz_proxy_v2_roundtrip(const uint8_t *data, int n, const struct proxy_info *info)
{
    unsigned char a[16], b[16], block[36];
    unsigned sport, dport;
    if (info->local)
        return;
    size_t alen = fuzz_proxy_addr(&info->src, a, &sport);
    fuzz_proxy_check(fuzz_proxy_addr(&info->dst, b, &dport) == alen);
    fuzz_proxy_check(data[13] == (alen == 4 ? 0x11 : 0x21) && (size_t)n >= 16 + 2 * alen + 4);
    memcpy(block, a, alen);
    memcpy(block + alen, b, alen);
    block[2 * alen] = (unsigned char)(sport >> 8);
    block[2 * alen + 1] = (unsigned char)sport;
    block[2 * alen + 2] = (unsigned char)(dport >> 8);
    block[2 * alen + 3] = (unsigned char)dport;
    fuzz_proxy_check(memcmp(block, data + 16, 2 * alen + 4) == 0);
}

/* Same answer: the flag, the reason (a static string, so by pointer) and
 * the addresses. */
static bool fuzz_proxy_same(const struct proxy_info *a, const struct proxy_info *b)
{
    return a->local == b->local && a->error == b->error &&
           memcmp(&a->src, &b->src, sizeof(a->src)) == 0 &&
           memcmp(&a->dst, &b->dst, sizeof(a->dst)) == 0;
}

/* The promises about one header of N > 0 bytes. */
static void fuzz_proxy_header(const uint8_t *data, int n, const struct proxy_info *info)
{
    fuzz_proxy_check(info->error == NULL);
    if (!info->local) {
        int f = info->src.ss_family;
        fuzz_proxy_check(f == AF_INET || f == AF_INET6);
        fuzz_proxy_check(info->dst.ss_family == f);
    } else {
        fuzz_proxy_check(info->src.ss_family == AF_UNSPEC && info->dst.ss_family == AF_UNSPEC);
    }
    if (data[0] == 'P') {
        fuzz_proxy_check(n <= PROXY_V1_MAX && data[n - 2] == '\r' && data[n - 1] == '\n');
        fuzz_proxy_v1_roundtrip(data, n, info);
    } else {
        fuzz_proxy_check(n >= 16 && n <= PROXY_V2_MAX);
        fuzz_proxy_check(n == 16 + (data[14] << 8 | data[15]));
        fuzz_proxy_v2_roundtrip(data, n, info);
    }
}

/* Parses every length of DATA in MODE and checks the answers' stability. */
static void fuzz_proxy_mode(const uint8_t *data, size_t size, enum proxy_mode mode)
{
    struct proxy_info info, first;
    int settled = 0;
    for (size_t len = 0; len <= size; len++) {
        int rc = fuzz_proxy_parse(data, len, mode, &info);
        fuzz_proxy_check(rc >= -1 && (rc < 0 || (size_t)rc <= len));
        fuzz_proxy_check((rc == -1) == (info.error != NULL));
        if (settled != 0) {
            fuzz_proxy_check(rc == settled && fuzz_proxy_same(&info, &first));
            continue;
        }
        fuzz_proxy_check(mode != PROXY_NO || rc == -1);
        if (rc > 0)
            fuzz_proxy_header(data, rc, &info);
        if (rc != 0) {
            settled = rc;
            first = info;
        }
    }
}

/* PROXY_ANY answers exactly as the version its first byte selects. */
static void fuzz_proxy_any(const uint8_t *data, size_t size)
{
    struct proxy_info any, one;
    enum proxy_mode mode = size > 0 && data[0] == 'P' ? PROXY_V1 : PROXY_V2;
    int rc = fuzz_proxy_parse(data, size, PROXY_ANY, &any);
    int rc1 = fuzz_proxy_parse(data, size, mode, &one);
    if (size > 0 && data[0] != 'P' && data[0] != '\r')
        fuzz_proxy_check(rc == -1);
    else
        fuzz_proxy_check(rc == rc1 && fuzz_proxy_same(&any, &one));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    static const enum proxy_mode modes[] = {PROXY_NO, PROXY_V1, PROXY_V2, PROXY_ANY};
    enum proxy_mode mode = modes[data[0] % 4];
    data++;
    size--;
    if (size > FUZZ_PROXY_SPAN)
        size = FUZZ_PROXY_SPAN;
    fuzz_proxy_mode(data, size, mode);
    fuzz_proxy_any(data, size);
    return 0;
}
