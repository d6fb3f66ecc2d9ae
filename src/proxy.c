/*
 * proxy: parses the PROXY protocol header (HAProxy's proxy-protocol.txt,
 * v1 text and v2 binary) that a trusted load balancer puts before the SMTP
 * bytes.  Strict on purpose: one syntax, single spaces, canonical ports,
 * only TCP over IPv4/IPv6, a bounded length; anything else is refused with a
 * static reason string.
 *
 * It must not do I/O, allocate, keep state or read past the length it was
 * given: these are the first bytes of an untrusted connection, and the
 * parser is fuzzed (tests/fuzz/fuzz_proxy.c).  Whether a peer may send a
 * header at all is the caller's decision (see proxy.h).
 */
#include "proxy.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>

#define PROXY_V2_HDR   16
#define PROXY_V2_SIG   12
#define PROXY_V4_TEXT  15 /* "255.255.255.255" */
#define PROXY_V6_TEXT  45 /* INET6_ADDRSTRLEN - 1 */
#define PROXY_PORT_MAX 5

/* Answers of the field checks: the field is invalid, a valid start of a
 * field (more bytes needed), or a complete valid field. */
enum proxy_check { PROXY_BAD = -1, PROXY_MORE = 0, PROXY_OK = 1 };

static const unsigned char proxy_v2_sig[PROXY_V2_SIG] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                                         0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

/* v2 family/transport bytes (proxy-protocol.txt 2.2). */
enum {
    PROXY_V2_UNSPEC = 0x00,
    PROXY_V2_TCP4 = 0x11,
    PROXY_V2_UDP4 = 0x12,
    PROXY_V2_TCP6 = 0x21,
    PROXY_V2_UDP6 = 0x22,
    PROXY_V2_UNIX_STREAM = 0x31,
    PROXY_V2_UNIX_DGRAM = 0x32
};

static int proxy_fail(struct proxy_info *out, const char *why)
{
    out->error = why;
    out->local = false;
    return -1;
}

/* Writes ADDR (4 or 16 bytes, network order) and PORT into SS. */
static void proxy_set_addr(struct sockaddr_storage *ss, int family, const unsigned char *addr,
                           unsigned port)
{
    memset(ss, 0, sizeof(*ss));
    if (family == AF_INET) {
        struct sockaddr_in *sin = (struct sockaddr_in *)ss;
        sin->sin_family = AF_INET;
        memcpy(&sin->sin_addr, addr, 4);
        sin->sin_port = htons((uint16_t)port);
    } else {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
        sin6->sin6_family = AF_INET6;
        memcpy(&sin6->sin6_addr, addr, 16);
        sin6->sin6_port = htons((uint16_t)port);
    }
}

/* ---- version 1: "PROXY TCP4|TCP6|UNKNOWN src dst sport dport\r\n" ---- */

/* A v1 field: its bytes, and whether it is complete (a space or the end of
 * a complete line follows) or may still grow. */
struct proxy_field {
    const char *p;
    size_t n;
    bool whole;
};

/* Splits the field at *POS off the N-byte LINE (PARTIAL: the line's end has
 * not arrived yet); returns true if a space follows it. */
static bool proxy_v1_field(const char *line, size_t n, bool partial, size_t *pos,
                           struct proxy_field *f)
{
    const char *sp = memchr(line + *pos, ' ', n - *pos);
    f->p = line + *pos;
    f->n = sp != NULL ? (size_t)(sp - f->p) : n - *pos;
    f->whole = sp != NULL || !partial;
    *pos += f->n + (sp != NULL);
    return sp != NULL;
}

static enum proxy_check proxy_v1_word(const struct proxy_field *f, const char *word)
{
    size_t wn = strlen(word);
    if (f->whole)
        return f->n == wn && memcmp(f->p, word, wn) == 0 ? PROXY_OK : PROXY_BAD;
    return f->n <= wn && memcmp(f->p, word, f->n) == 0 ? PROXY_MORE : PROXY_BAD;
}

static bool proxy_v1_addr_char(char c, int family)
{
    if ((c >= '0' && c <= '9') || c == '.')
        return true;
    return family == AF_INET6 && (c == ':' || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'));
}

/* An address of FAMILY in text; a whole one goes through inet_pton, the
 * start of one only has to use the right characters and fit. */
static enum proxy_check proxy_v1_addr(const struct proxy_field *f, int family, unsigned char *addr)
{
    size_t max = family == AF_INET ? PROXY_V4_TEXT : PROXY_V6_TEXT;
    char text[PROXY_V6_TEXT + 1];
    if (f->n > max)
        return PROXY_BAD;
    for (size_t i = 0; i < f->n; i++) {
        if (!proxy_v1_addr_char(f->p[i], family))
            return PROXY_BAD;
    }
    if (!f->whole)
        return PROXY_MORE;
    memcpy(text, f->p, f->n);
    text[f->n] = '\0';
    return inet_pton(family, text, addr) == 1 ? PROXY_OK : PROXY_BAD;
}

/* A port: 0..65535 in decimal, no sign, no leading zero. */
static enum proxy_check proxy_v1_port(const struct proxy_field *f, unsigned *port)
{
    unsigned v = 0;
    if (f->n > PROXY_PORT_MAX || (f->n > 1 && f->p[0] == '0'))
        return PROXY_BAD;
    for (size_t i = 0; i < f->n; i++) {
        if (f->p[i] < '0' || f->p[i] > '9')
            return PROXY_BAD;
        v = v * 10 + (unsigned)(f->p[i] - '0');
    }
    if (v > 65535)
        return PROXY_BAD;
    if (!f->whole)
        return PROXY_MORE;
    *port = v;
    return f->n > 0 ? PROXY_OK : PROXY_BAD;
}

/* The four fields after "TCP4 " or "TCP6 " from *POS on. */
static int proxy_v1_tcp(const char *line, size_t n, bool partial, size_t pos, int family,
                        struct proxy_info *out)
{
    static const char *const why[4] = {"bad v1 source address", "bad v1 destination address",
                                       "bad v1 source port", "bad v1 destination port"};
    unsigned char addr[2][16];
    unsigned port[2] = {0, 0};
    bool more = true;
    for (int i = 0; i < 4; i++) {
        if (!more)
            return proxy_fail(out, "v1 line ends early");
        struct proxy_field f;
        more = proxy_v1_field(line, n, partial, &pos, &f);
        enum proxy_check rc =
            i < 2 ? proxy_v1_addr(&f, family, addr[i]) : proxy_v1_port(&f, &port[i - 2]);
        if (rc != PROXY_OK)
            return rc == PROXY_BAD ? proxy_fail(out, why[i]) : 0;
    }
    if (more)
        return proxy_fail(out, "v1 line has extra fields");
    proxy_set_addr(&out->src, family, addr[0], port[0]);
    proxy_set_addr(&out->dst, family, addr[1], port[1]);
    return 1;
}

/* The protocol field and what follows it. */
static int proxy_v1_proto(const char *line, size_t n, bool partial, size_t pos,
                          struct proxy_info *out)
{
    static const struct {
        const char *word;
        int family;
    } protos[] = {{"TCP4", AF_INET}, {"TCP6", AF_INET6}, {"UNKNOWN", AF_UNSPEC}};
    struct proxy_field f;
    bool more = proxy_v1_field(line, n, partial, &pos, &f);
    bool maybe = false;
    for (size_t i = 0; i < sizeof(protos) / sizeof(protos[0]); i++) {
        enum proxy_check rc = proxy_v1_word(&f, protos[i].word);
        maybe = maybe || rc == PROXY_MORE;
        if (rc != PROXY_OK)
            continue;
        if (protos[i].family != AF_UNSPEC)
            return more ? proxy_v1_tcp(line, n, partial, pos, protos[i].family, out)
                        : proxy_fail(out, "v1 line ends early");
        out->local = true; /* the rest of an UNKNOWN line is ignored */
        return partial ? 0 : 1;
    }
    return maybe ? 0 : proxy_fail(out, "bad v1 protocol");
}

/* The N bytes of a line without its CRLF; PARTIAL: no CR has arrived yet.
 * 1 when valid and complete, 0 when valid so far, -1 when invalid. */
static int proxy_v1_line(const char *line, size_t n, bool partial, struct proxy_info *out)
{
    struct proxy_field f;
    size_t pos = 0;
    bool more = proxy_v1_field(line, n, partial, &pos, &f);
    enum proxy_check rc = proxy_v1_word(&f, "PROXY");
    if (rc != PROXY_OK)
        return rc == PROXY_BAD ? proxy_fail(out, "not a PROXY v1 header") : 0;
    if (!more)
        return proxy_fail(out, "v1 line ends early");
    return proxy_v1_proto(line, n, partial, pos, out);
}

/* A line is at most 107 bytes with its CRLF.  Whatever arrived of a line
 * that has no CR yet, or one that is too long, is still checked as the
 * start of a line first, so that the reason given for a bad line never
 * changes as more bytes arrive. */
static int proxy_v1(const unsigned char *buf, size_t len, struct proxy_info *out)
{
    size_t window = len < PROXY_V1_MAX ? len : PROXY_V1_MAX;
    const unsigned char *cr = memchr(buf, '\r', window);
    size_t n = cr != NULL ? (size_t)(cr - buf) : window;
    if (cr == NULL || n + 2 > PROXY_V1_MAX) {
        if (proxy_v1_line((const char *)buf, n, true, out) < 0)
            return -1;
        if (cr == NULL && len < PROXY_V1_MAX)
            return 0;
        return proxy_fail(out, "v1 line longer than 107 bytes");
    }
    int rc = proxy_v1_line((const char *)buf, n, false, out);
    if (rc < 0)
        return rc;
    if (n + 1 == len)
        return 0;
    if (buf[n + 1] != '\n')
        return proxy_fail(out, "v1 line not ended by CRLF");
    return (int)n + 2;
}

/* ---- version 2: signature, ver/cmd, family, length, addresses, TLVs ---- */

/* The address block length a PROXY command needs for FAM; -1 if FAM is not
 * one we accept (UDP and UNIX sockets are no SMTP clients). */
static int proxy_v2_addrlen(unsigned fam, struct proxy_info *out)
{
    switch (fam) {
    case PROXY_V2_UNSPEC:
        return 0;
    case PROXY_V2_TCP4:
        return 12;
    case PROXY_V2_TCP6:
        return 36;
    case PROXY_V2_UDP4:
    case PROXY_V2_UDP6:
    case PROXY_V2_UNIX_STREAM:
    case PROXY_V2_UNIX_DGRAM:
        return proxy_fail(out, "v2 family is not TCP over IPv4/IPv6");
    default:
        return proxy_fail(out, "bad v2 family");
    }
}

/* A LOCAL command ignores the family, but it must still be a defined one. */
static bool proxy_v2_known_family(unsigned fam)
{
    return fam == PROXY_V2_UNSPEC || fam == PROXY_V2_TCP4 || fam == PROXY_V2_UDP4 ||
           fam == PROXY_V2_TCP6 || fam == PROXY_V2_UDP6 || fam == PROXY_V2_UNIX_STREAM ||
           fam == PROXY_V2_UNIX_DGRAM;
}

/* Checks the 12-byte signature and the ver/cmd and family bytes, as far as
 * they have arrived.  Returns the address block length the command needs
 * (0 for LOCAL and UNSPEC), or -1. */
static int proxy_v2_start(const unsigned char *buf, size_t len, struct proxy_info *out)
{
    size_t n = len < PROXY_V2_SIG ? len : PROXY_V2_SIG;
    if (memcmp(buf, proxy_v2_sig, n) != 0)
        return proxy_fail(out, "not a PROXY v2 header");
    if (len <= PROXY_V2_SIG)
        return 0;
    if ((buf[12] >> 4) != 2)
        return proxy_fail(out, "bad v2 version");
    if ((buf[12] & 0x0F) > 1)
        return proxy_fail(out, "bad v2 command");
    if (len <= 13)
        return 0;
    out->local = (buf[12] & 0x0F) == 0 || buf[13] == PROXY_V2_UNSPEC;
    if ((buf[12] & 0x0F) == 0)
        return proxy_v2_known_family(buf[13]) ? 0 : proxy_fail(out, "bad v2 family");
    return proxy_v2_addrlen(buf[13], out);
}

static int proxy_v2(const unsigned char *buf, size_t len, struct proxy_info *out)
{
    int need = proxy_v2_start(buf, len, out);
    if (need < 0)
        return -1;
    if (len < PROXY_V2_HDR)
        return 0;
    size_t total = PROXY_V2_HDR + ((size_t)buf[14] << 8 | buf[15]);
    if (total > PROXY_V2_MAX)
        return proxy_fail(out, "v2 header longer than 536 bytes");
    if (total < PROXY_V2_HDR + (size_t)need)
        return proxy_fail(out, "v2 address block too short");
    if (len < total)
        return 0;
    if (buf[13] == PROXY_V2_TCP4 && !out->local) {
        proxy_set_addr(&out->src, AF_INET, buf + 16, (unsigned)buf[24] << 8 | buf[25]);
        proxy_set_addr(&out->dst, AF_INET, buf + 20, (unsigned)buf[26] << 8 | buf[27]);
    } else if (buf[13] == PROXY_V2_TCP6 && !out->local) {
        proxy_set_addr(&out->src, AF_INET6, buf + 16, (unsigned)buf[48] << 8 | buf[49]);
        proxy_set_addr(&out->dst, AF_INET6, buf + 32, (unsigned)buf[50] << 8 | buf[51]);
    }
    return (int)total; /* TLVs, if any, are skipped */
}

/* ---- entry point ---- */

int proxy_parse(const unsigned char *buf, size_t len, enum proxy_mode mode, struct proxy_info *out)
{
    memset(out, 0, sizeof(*out));
    if (mode == PROXY_NO)
        return proxy_fail(out, "PROXY protocol not enabled");
    if (len == 0)
        return 0;
    int rc;
    if (mode == PROXY_V1 || (mode == PROXY_ANY && buf[0] == 'P'))
        rc = proxy_v1(buf, len, out);
    else if (mode == PROXY_V2 || buf[0] == proxy_v2_sig[0])
        rc = proxy_v2(buf, len, out);
    else
        rc = proxy_fail(out, "not a PROXY header");
    if (rc == 0)
        out->local = false; /* nothing is known until the header is whole */
    return rc;
}
