/*
 * maillog: the mail log in the ESA text format (SPEC section 5) and the
 * ICID/DCID/MID counters.  Every line is written whole with one write(2), so
 * lines of concurrent workers never interleave.  The counters are unique and
 * increasing across workers (one mutex) and across restarts (blocks of IDs
 * are reserved in state_dir/ids before they are handed out).  This module
 * knows the log forms; it decides nothing about mail.
 */
#ifndef TLSGATE_MAILLOG_H
#define TLSGATE_MAILLOG_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

enum maillog_level { MAILLOG_INFO, MAILLOG_WARNING, MAILLOG_DEBUG };

/* TARGET is a file path (created 0640, appended), "syslog" (facility mail,
 * ident "mail_logs") or "-" (standard error).  0 or -1 with errno. */
int maillog_open(const char *target);
/* Reopens the same target (SIGUSR1, after rotation).  0 or -1. */
int maillog_reopen(void);
void maillog_close(void);

/* Writes one line: "Www Mmm dd HH:MM:SS YYYY Info: " + the formatted text. */
void maillog_write(enum maillog_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
#define maillog_info(...)    maillog_write(MAILLOG_INFO, __VA_ARGS__)
#define maillog_warning(...) maillog_write(MAILLOG_WARNING, __VA_ARGS__)

/* The full line for time T (local time, ctime style with a space-padded
 * day) into BUF with a trailing newline; returns its length (truncated to
 * LEN-1 like snprintf).  Used by maillog_write and by tests. */
size_t maillog_format(char *buf, size_t len, time_t t, enum maillog_level level, const char *fmt,
                      va_list ap);

/* ID counters.  maillog_ids_open reads STATE_DIR/ids (creating the
 * directory and file if missing) and must be called before the next_*
 * functions; 0 or -1 with a message on stderr. */
int maillog_ids_open(const char *state_dir);
void maillog_ids_close(void);
uint64_t maillog_next_icid(void);
uint64_t maillog_next_dcid(void);
uint64_t maillog_next_mid(void);

/* The standard ESA lines.  Values that come from peers (host names,
 * addresses, reasons) are written with control characters replaced by '?'
 * so that a peer cannot forge log lines. */
void maillog_icid_new(uint64_t icid, const char *interface, const char *local_ip,
                      const char *peer_ip, const char *rdns, int verified);
void maillog_icid_sg(uint64_t icid, const char *action, const char *group, const char *match);
void maillog_tls_success(const char *kind, uint64_t id, const char *protocol, const char *cipher);
void maillog_tls_failed(const char *kind, uint64_t id, const char *reason);
void maillog_icid_tls_required(uint64_t icid);
void maillog_mid_start(uint64_t mid, uint64_t icid);
void maillog_mid_from(uint64_t mid, uint64_t icid, const char *from);
void maillog_mid_rcpt(uint64_t mid, uint64_t icid, unsigned rid, const char *to);
void maillog_mid_ready(uint64_t mid, unsigned long long bytes, const char *from);
void maillog_mid_done(uint64_t mid);
/* "MID n aborted: REASON" */
void maillog_mid_aborted(uint64_t mid, const char *reason);
void maillog_icid_close(uint64_t icid);
void maillog_icid_lost(uint64_t icid);

/* Copies S into BUF (LEN bytes) with control characters and non-ASCII
 * replaced by '?'; returns BUF. */
char *maillog_clean(char *buf, size_t len, const char *s);

#endif
