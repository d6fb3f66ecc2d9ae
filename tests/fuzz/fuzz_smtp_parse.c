/*
 * libFuzzer harness for smtp_parse: arbitrary bytes as a command line, as a
 * MAIL and a RCPT argument, and as a HELO name.  Besides the sanitizers it
 * checks the parsers' promises (accepted paths fit their buffers, domains
 * are lower-case and ASCII, replies are SMTP reply lines) and aborts when
 * one is broken.  Built by tools/fuzz only, never by CMake.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtp_parse.h"

static void fuzz_smtp_parse_check(bool cond)
{
    if (!cond)
        abort();
}

static bool fuzz_smtp_parse_reply_ok(const char *r)
{
    return strlen(r) >= 4 && r[0] >= '4' && r[0] <= '5' && r[3] == ' ';
}

static void fuzz_smtp_parse_path(const char *arg, bool is_mail)
{
    struct smtp_path p;
    const char *reply = smtp_parse_path(arg, is_mail, &p);
    if (reply != NULL) {
        fuzz_smtp_parse_check(fuzz_smtp_parse_reply_ok(reply) && p.addr[0] == '\0');
        return;
    }
    fuzz_smtp_parse_check(strlen(p.addr) <= SMTP_PATH_MAX);
    fuzz_smtp_parse_check(strlen(p.domain) <= SMTP_DOMAIN_MAX);
    fuzz_smtp_parse_check(strlen(p.params) < sizeof(p.params));
    fuzz_smtp_parse_check(!p.null_path || (is_mail && p.addr[0] == '\0'));
    fuzz_smtp_parse_check(p.null_path || p.addr[0] != '\0');
    for (const char *d = p.domain; *d != '\0'; d++)
        fuzz_smtp_parse_check((unsigned char)*d < 0x80 && !(*d >= 'A' && *d <= 'Z'));
    fuzz_smtp_parse_check(p.domain[0] == '\0' || strstr(p.addr, "@") != NULL);
    fuzz_smtp_parse_check(p.body == 0 || p.body == 7 || p.body == 8);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct smtp_cmd *cmd = malloc(sizeof(*cmd));
    char *line = malloc(size + 1);
    memcpy(line, data, size);
    line[size] = '\0';
    const char *reply = NULL;
    if (smtp_parse_command(line, size, cmd, &reply) < 0) {
        fuzz_smtp_parse_check(reply != NULL && fuzz_smtp_parse_reply_ok(reply));
    } else {
        fuzz_smtp_parse_check(strlen(cmd->arg) <= SMTP_ARG_MAX);
        if (cmd->verb == SMTP_MAIL || cmd->verb == SMTP_RCPT)
            fuzz_smtp_parse_path(cmd->arg, cmd->verb == SMTP_MAIL);
        if (cmd->verb == SMTP_HELO || cmd->verb == SMTP_EHLO)
            (void)smtp_parse_helo_ok(cmd->arg);
    }
    /* the raw bytes too, up to the first NUL, without the command parser's
     * control-character filter in front */
    fuzz_smtp_parse_path(line, true);
    fuzz_smtp_parse_path(line, false);
    (void)smtp_parse_helo_ok(line);
    free(line);
    free(cmd);
    return 0;
}
