/*
 * maillog: writes the mail log in the ESA text format (SPEC section 5) and
 * hands out the ICID/DCID/MID counters.
 *
 * Output: each line is built whole in a buffer and written with one write(2)
 * under a mutex, so lines of concurrent workers never interleave; the text is
 * scrubbed to printable ASCII so that nothing a peer sends can start a second
 * (forged) line.  Counters: blocks of IDs are reserved in STATE_DIR/ids
 * (under flock on STATE_DIR/ids.lock, written by temp file + fsync + rename +
 * directory fsync) before any ID of the block is handed out, so IDs stay
 * unique and increasing across threads, restarts and processes sharing the
 * directory.
 *
 * This file must not decide anything about mail or TLS, must not block on
 * anything but local files, and must never change errno for its callers'
 * logging calls.
 */
#include "maillog.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#define MAILLOG_LINE_MAX  8192             /* one log line, newline included */
#define MAILLOG_FIELD_MAX 1024             /* one cleaned value (address, host name) */
#define MAILLOG_TEXT_MAX  4096             /* one cleaned free-text reason */
#define MAILLOG_ID_BLOCK  1000             /* IDs reserved per write of the ids file */
#define MAILLOG_ID_LIMIT  (UINT64_MAX / 2) /* larger values mean a corrupt file */
#define MAILLOG_IDS_FILE  "ids"

/* ---- output target ---------------------------------------------------- */

enum maillog_kind { MAILLOG_TO_NONE, MAILLOG_TO_STDERR, MAILLOG_TO_SYSLOG, MAILLOG_TO_FILE };

struct maillog_target {
    enum maillog_kind kind;
    int fd;       /* the descriptor written to; owned only for MAILLOG_TO_FILE */
    char *target; /* as given to maillog_open, for maillog_reopen */
};

static pthread_mutex_t maillog_out_lock = PTHREAD_MUTEX_INITIALIZER;
static struct maillog_target maillog_out = {MAILLOG_TO_NONE, STDERR_FILENO, NULL};

/* ---- ID counters ------------------------------------------------------ */

enum maillog_counter { MAILLOG_ICID, MAILLOG_DCID, MAILLOG_MID, MAILLOG_NCOUNTERS };

static const char *const maillog_counter_names[MAILLOG_NCOUNTERS] = {"icid", "dcid", "mid"};

struct maillog_ids {
    char *dir;                        /* NULL: not opened, IDs come from memory only */
    uint64_t next[MAILLOG_NCOUNTERS]; /* next ID to hand out */
    uint64_t end[MAILLOG_NCOUNTERS];  /* end (exclusive) of the reserved block */
    int warned;                       /* a reservation failure was already logged */
};

static pthread_mutex_t maillog_ids_lock = PTHREAD_MUTEX_INITIALIZER;
static struct maillog_ids maillog_ids = {NULL, {1, 1, 1}, {0, 0, 0}, 0};
static pthread_once_t maillog_once = PTHREAD_ONCE_INIT;

/* ---- fork safety ------------------------------------------------------ */

/* A child must not inherit a locked mutex, nor hand out IDs from the block
 * its parent is still using: it reserves its own block on first use. */
static void maillog_atfork_prepare(void)
{
    pthread_mutex_lock(&maillog_ids_lock);
    pthread_mutex_lock(&maillog_out_lock);
}

static void maillog_atfork_parent(void)
{
    pthread_mutex_unlock(&maillog_out_lock);
    pthread_mutex_unlock(&maillog_ids_lock);
}

static void maillog_atfork_child(void)
{
    if (maillog_ids.dir != NULL) {
        for (int c = 0; c < MAILLOG_NCOUNTERS; c++)
            maillog_ids.end[c] = maillog_ids.next[c];
    }
    maillog_atfork_parent();
}

static void maillog_init_once(void)
{
    pthread_atfork(maillog_atfork_prepare, maillog_atfork_parent, maillog_atfork_child);
}

/* ---- formatting ------------------------------------------------------- */

static const char *maillog_level_word(enum maillog_level level)
{
    switch (level) {
    case MAILLOG_WARNING:
        return "Warning:";
    case MAILLOG_DEBUG:
        return "Debug:";
    case MAILLOG_INFO:
    default:
        return "Info:";
    }
}

/* "Www Mmm dd HH:MM:SS YYYY " like ctime(3), without locale dependence. */
static size_t maillog_stamp(char *buf, size_t len, time_t t)
{
    static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    struct tm tm;

    if (localtime_r(&t, &tm) == NULL || tm.tm_wday < 0 || tm.tm_wday > 6 || tm.tm_mon < 0 ||
        tm.tm_mon > 11)
        memset(&tm, 0, sizeof tm); /* out of range: a fixed, still parseable stamp */
    int n = snprintf(buf, len, "%s %s %2d %02d:%02d:%02d %d ", days[tm.tm_wday], months[tm.tm_mon],
                     tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, tm.tm_year + 1900);
    if (n < 0)
        return 0;
    return (size_t)n < len ? (size_t)n : len - 1;
}

static int maillog_is_unsafe(unsigned char c)
{
    return c < 0x20 || c >= 0x7f;
}

/* Control characters and non-ASCII in the text become '?': one line stays
 * one line, and log readers never see invalid UTF-8. */
static void maillog_scrub(char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (maillog_is_unsafe((unsigned char)s[i]))
            s[i] = '?';
    }
}

/* The line into BUF (LEN > 0); *STAMP_LEN gets the length of the time stamp
 * (which syslog does not want). */
static size_t maillog_vline(char *buf, size_t len, time_t t, enum maillog_level level,
                            size_t *stamp_len, const char *fmt, va_list ap)
{
    size_t n = maillog_stamp(buf, len, t);
    *stamp_len = n;
    if (n + 1 < len) {
        int w = snprintf(buf + n, len - n, "%s ", maillog_level_word(level));
        n += w < 0 ? 0 : ((size_t)w < len - n ? (size_t)w : len - n - 1);
    }
    size_t text = n;
    if (n + 1 < len) {
        int w = vsnprintf(buf + n, len - n, fmt, ap);
        n += w < 0 ? 0 : ((size_t)w < len - n ? (size_t)w : len - n - 1);
    }
    maillog_scrub(buf + text, n - text);
    if (n + 1 < len)
        n++;
    if (n > 0)
        buf[n - 1] = '\n'; /* a truncated line still ends its line */
    buf[n] = '\0';
    return n;
}

size_t maillog_format(char *buf, size_t len, time_t t, enum maillog_level level, const char *fmt,
                      va_list ap)
{
    size_t stamp_len;

    if (len == 0)
        return 0;
    return maillog_vline(buf, len, t, level, &stamp_len, fmt, ap);
}

char *maillog_clean(char *buf, size_t len, const char *s)
{
    size_t i = 0;

    if (len == 0)
        return buf;
    for (; s != NULL && s[i] != '\0' && i + 1 < len; i++)
        buf[i] = maillog_is_unsafe((unsigned char)s[i]) ? '?' : s[i];
    buf[i] = '\0';
    return buf;
}

/* ---- writing ---------------------------------------------------------- */

static int maillog_syslog_priority(enum maillog_level level)
{
    switch (level) {
    case MAILLOG_WARNING:
        return LOG_WARNING;
    case MAILLOG_DEBUG:
        return LOG_DEBUG;
    case MAILLOG_INFO:
    default:
        return LOG_INFO;
    }
}

/* The whole line; only a short write (full disk, signal on a pipe) makes a
 * second call, and the mutex keeps our own lines apart even then. */
static void maillog_write_all(int fd, const char *buf, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, buf, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return;
        buf += w;
        n -= (size_t)w;
    }
}

static void maillog_emit(enum maillog_level level, char *line, size_t n, size_t stamp_len)
{
    pthread_mutex_lock(&maillog_out_lock);
    if (maillog_out.kind == MAILLOG_TO_SYSLOG) {
        line[n - 1] = '\0';
        syslog(maillog_syslog_priority(level), "%s", line + stamp_len);
    } else {
        maillog_write_all(maillog_out.fd, line, n);
    }
    pthread_mutex_unlock(&maillog_out_lock);
}

void maillog_write(enum maillog_level level, const char *fmt, ...)
{
    int saved_errno = errno;
    char line[MAILLOG_LINE_MAX];
    size_t stamp_len;
    va_list ap;

    va_start(ap, fmt);
    size_t n = maillog_vline(line, sizeof line, time(NULL), level, &stamp_len, fmt, ap);
    va_end(ap);
    if (n > stamp_len)
        maillog_emit(level, line, n, stamp_len);
    errno = saved_errno;
}

/* ---- opening ---------------------------------------------------------- */

/* mkdir -p PATH; 0 or -1 with errno. */
static int maillog_mkdirs(const char *path, mode_t mode)
{
    char *p = strdup(path);

    if (p == NULL)
        return -1;
    for (char *s = p + 1; *s != '\0'; s++) {
        if (*s != '/')
            continue;
        *s = '\0';
        if (mkdir(p, mode) < 0 && errno != EEXIST) {
            free(p);
            return -1;
        }
        *s = '/';
    }
    int rc = mkdir(p, mode) < 0 && errno != EEXIST ? -1 : 0;
    int saved_errno = errno;
    free(p);
    errno = saved_errno;
    return rc;
}

/* Creates the directories above the file PATH. */
static int maillog_mkparent(const char *path)
{
    const char *slash = strrchr(path, '/');

    if (slash == NULL || slash == path)
        return 0;
    char *dir = strndup(path, (size_t)(slash - path));
    if (dir == NULL)
        return -1;
    int rc = maillog_mkdirs(dir, 0750);
    int saved_errno = errno;
    free(dir);
    errno = saved_errno;
    return rc;
}

static int maillog_open_file(const char *path)
{
    if (maillog_mkparent(path) < 0)
        return -1;
    return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
}

/* Builds the new target in *T without touching the current one. */
static int maillog_target_make(struct maillog_target *t, const char *target)
{
    t->target = strdup(target);
    if (t->target == NULL)
        return -1;
    if (strcmp(target, "-") == 0) {
        t->kind = MAILLOG_TO_STDERR;
        t->fd = STDERR_FILENO;
    } else if (strcmp(target, "syslog") == 0) {
        t->kind = MAILLOG_TO_SYSLOG;
        t->fd = STDERR_FILENO;
        openlog("mail_logs", LOG_NDELAY, LOG_MAIL);
    } else {
        t->kind = MAILLOG_TO_FILE;
        t->fd = maillog_open_file(target);
        if (t->fd < 0) {
            int saved_errno = errno;
            free(t->target);
            errno = saved_errno;
            return -1;
        }
    }
    return 0;
}

/* Releases what the previous target owned (after it was swapped out). */
static void maillog_target_free(struct maillog_target *old, const struct maillog_target *now)
{
    if (old->kind == MAILLOG_TO_FILE)
        close(old->fd);
    if (old->kind == MAILLOG_TO_SYSLOG && now->kind != MAILLOG_TO_SYSLOG)
        closelog();
    free(old->target);
}

static void maillog_target_swap(struct maillog_target *t)
{
    pthread_mutex_lock(&maillog_out_lock);
    struct maillog_target old = maillog_out;
    maillog_out = *t;
    pthread_mutex_unlock(&maillog_out_lock);
    maillog_target_free(&old, t);
}

int maillog_open(const char *target)
{
    struct maillog_target t;

    pthread_once(&maillog_once, maillog_init_once);
    tzset();
    if (target == NULL || *target == '\0') {
        errno = EINVAL;
        return -1;
    }
    if (maillog_target_make(&t, target) < 0)
        return -1;
    maillog_target_swap(&t);
    return 0;
}

/* A copy of the current target's name, or NULL when nothing was opened. */
static char *maillog_target_name(void)
{
    pthread_mutex_lock(&maillog_out_lock);
    char *name = maillog_out.target != NULL ? strdup(maillog_out.target) : NULL;
    pthread_mutex_unlock(&maillog_out_lock);
    return name;
}

int maillog_reopen(void)
{
    char *name = maillog_target_name();

    if (name == NULL)
        return 0; /* standard error by default: nothing to reopen */
    int rc = maillog_open(name);
    int saved_errno = errno;
    free(name);
    errno = saved_errno;
    return rc;
}

void maillog_close(void)
{
    struct maillog_target none = {MAILLOG_TO_NONE, STDERR_FILENO, NULL};

    maillog_target_swap(&none);
}

/* ---- the ids file ----------------------------------------------------- */

static int maillog_ids_path(char *buf, size_t len, const char *dir, const char *name)
{
    int n = snprintf(buf, len, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= len) {
        errno = ENAMETOOLONG;
        return -1;
    }
    return 0;
}

/* Parses "NAME DIGITS" at *P (NUL-terminated text); advances past '\n'. */
static const char *maillog_ids_parse_line(const char **p, const char *name, uint64_t *value)
{
    const char *s = *p;
    size_t nl = strlen(name);

    if (*s == '\0')
        return "missing line";
    if (strncmp(s, name, nl) != 0 || s[nl] != ' ')
        return "unexpected counter name";
    s += nl + 1;
    if (*s < '0' || *s > '9')
        return "value is not a number";
    uint64_t v = 0;
    for (; *s >= '0' && *s <= '9'; s++) {
        if (v > (MAILLOG_ID_LIMIT - (uint64_t)(*s - '0')) / 10)
            return "value out of range";
        v = v * 10 + (uint64_t)(*s - '0');
    }
    if (*s != '\n')
        return "junk after the value or missing newline";
    if (v == 0)
        return "value must be at least 1";
    *value = v;
    *p = s + 1;
    return NULL;
}

/* Parses the three counters; -1 after a "FILE:LINE: message" on stderr. */
static int maillog_ids_parse(const char *path, const char *text, uint64_t *vals)
{
    const char *p = text;

    for (int c = 0; c < MAILLOG_NCOUNTERS; c++) {
        const char *err = maillog_ids_parse_line(&p, maillog_counter_names[c], &vals[c]);
        if (err != NULL) {
            fprintf(stderr, "tlsgate: %s:%d: corrupt ID file: %s (expected \"%s N\")\n", path,
                    c + 1, err, maillog_counter_names[c]);
            return -1;
        }
    }
    if (*p != '\0') {
        fprintf(stderr, "tlsgate: %s:%d: corrupt ID file: unexpected extra line\n", path,
                MAILLOG_NCOUNTERS + 1);
        return -1;
    }
    return 0;
}

/* Reads DIR/ids into VALS: 0, 1 when the file does not exist yet, -1 on
 * error or corruption (message on stderr). */
static int maillog_ids_load(const char *dir, uint64_t *vals)
{
    char path[PATH_MAX], text[512];

    if (maillog_ids_path(path, sizeof path, dir, MAILLOG_IDS_FILE) < 0)
        return -1;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT)
        return 1;
    if (fd < 0) {
        fprintf(stderr, "tlsgate: %s: cannot open: %s\n", path, strerror(errno));
        return -1;
    }
    ssize_t n = read(fd, text, sizeof text - 1);
    int saved_errno = errno;
    close(fd);
    if (n < 0) {
        fprintf(stderr, "tlsgate: %s: cannot read: %s\n", path, strerror(saved_errno));
        return -1;
    }
    text[n] = '\0';
    if (memchr(text, '\0', (size_t)n) != NULL || (size_t)n == sizeof text - 1) {
        fprintf(stderr, "tlsgate: %s:1: corrupt ID file: not a short text file\n", path);
        return -1;
    }
    return maillog_ids_parse(path, text, vals);
}

static int maillog_fsync_path(const char *path, int flags)
{
    int fd = open(path, flags | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    int saved_errno = errno;
    close(fd);
    errno = saved_errno;
    return rc;
}

static int maillog_write_file(const char *path, const char *text, size_t n)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (fd < 0)
        return -1;
    ssize_t w = write(fd, text, n);
    int rc = (w == (ssize_t)n && fsync(fd) == 0) ? 0 : -1;
    int saved_errno = w >= 0 && w != (ssize_t)n ? ENOSPC : errno;
    close(fd);
    errno = saved_errno;
    return rc;
}

/* Replaces DIR/ids atomically and durably: a crash leaves either the old
 * or the new file, never a torn or empty one. */
static int maillog_ids_store(const char *dir, const uint64_t *vals)
{
    char path[PATH_MAX], tmp[PATH_MAX], text[128];

    if (maillog_ids_path(path, sizeof path, dir, MAILLOG_IDS_FILE) < 0 ||
        maillog_ids_path(tmp, sizeof tmp, dir, MAILLOG_IDS_FILE ".tmp") < 0)
        return -1;
    int n = snprintf(text, sizeof text, "icid %" PRIu64 "\ndcid %" PRIu64 "\nmid %" PRIu64 "\n",
                     vals[MAILLOG_ICID], vals[MAILLOG_DCID], vals[MAILLOG_MID]);
    if (maillog_write_file(tmp, text, (size_t)n) < 0 || rename(tmp, path) < 0)
        return -1;
    return maillog_fsync_path(dir, O_RDONLY | O_DIRECTORY);
}

/* The lock is on a file that is never replaced: flock on "ids" itself would
 * lock the old inode once another process renamed a new "ids" over it. */
static int maillog_ids_flock(const char *dir)
{
    char path[PATH_MAX];

    if (maillog_ids_path(path, sizeof path, dir, MAILLOG_IDS_FILE ".lock") < 0)
        return -1;
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0)
        return -1;
    while (flock(fd, LOCK_EX) < 0) {
        if (errno != EINTR) {
            int saved_errno = errno;
            close(fd);
            errno = saved_errno;
            return -1;
        }
    }
    return fd;
}

/* Reserves a new block for each counter in MASK (bit c for counter c):
 * [max(file value, next), +MAILLOG_ID_BLOCK).  Called with maillog_ids_lock
 * held.  0, or -1 with a message on stderr. */
static int maillog_ids_reserve(unsigned mask)
{
    uint64_t vals[MAILLOG_NCOUNTERS] = {1, 1, 1}, start[MAILLOG_NCOUNTERS];
    const char *dir = maillog_ids.dir;
    int lock = maillog_ids_flock(dir);

    if (lock < 0) {
        fprintf(stderr, "tlsgate: %s/ids.lock: cannot lock: %s\n", dir, strerror(errno));
        return -1;
    }
    int rc = maillog_ids_load(dir, vals) < 0 ? -1 : 0;
    for (int c = 0; c < MAILLOG_NCOUNTERS && rc == 0; c++) {
        start[c] = vals[c] > maillog_ids.next[c] ? vals[c] : maillog_ids.next[c];
        if (mask & (1u << c))
            vals[c] = start[c] + MAILLOG_ID_BLOCK;
    }
    if (rc == 0 && maillog_ids_store(dir, vals) < 0) {
        fprintf(stderr, "tlsgate: %s/ids: cannot write: %s\n", dir, strerror(errno));
        rc = -1;
    }
    for (int c = 0; c < MAILLOG_NCOUNTERS && rc == 0; c++) {
        if (mask & (1u << c)) {
            maillog_ids.next[c] = start[c];
            maillog_ids.end[c] = vals[c];
        }
    }
    close(lock); /* releases the flock */
    return rc;
}

/* ---- the counters ----------------------------------------------------- */

int maillog_ids_open(const char *state_dir)
{
    int saved_errno = errno;
    char *dir = strdup(state_dir);

    pthread_once(&maillog_once, maillog_init_once);
    if (dir == NULL || maillog_mkdirs(state_dir, 0750) < 0) {
        fprintf(stderr, "tlsgate: %s: cannot create directory: %s\n", state_dir, strerror(errno));
        free(dir);
        return -1;
    }
    pthread_mutex_lock(&maillog_ids_lock);
    free(maillog_ids.dir);
    maillog_ids.dir = dir;
    memset(maillog_ids.next, 0, sizeof maillog_ids.next); /* the file is the truth */
    memset(maillog_ids.end, 0, sizeof maillog_ids.end);
    maillog_ids.warned = 0;
    int rc = maillog_ids_reserve((1u << MAILLOG_NCOUNTERS) - 1);
    if (rc < 0) {
        free(maillog_ids.dir);
        maillog_ids.dir = NULL;
    }
    pthread_mutex_unlock(&maillog_ids_lock);
    errno = saved_errno;
    return rc;
}

void maillog_ids_close(void)
{
    pthread_mutex_lock(&maillog_ids_lock);
    free(maillog_ids.dir);
    maillog_ids.dir = NULL;
    pthread_mutex_unlock(&maillog_ids_lock);
}

/* When a block cannot be reserved (full disk...), IDs go on from memory:
 * still unique and increasing in this process, and the next successful
 * reservation starts above them.  Logged once per failure streak. */
static void maillog_ids_refill(enum maillog_counter c)
{
    if (maillog_ids_reserve(1u << c) == 0) {
        maillog_ids.warned = 0;
        return;
    }
    if (!maillog_ids.warned)
        maillog_warning("cannot reserve %s IDs in %s/ids; continuing from memory",
                        maillog_counter_names[c], maillog_ids.dir);
    maillog_ids.warned = 1;
}

static uint64_t maillog_next(enum maillog_counter c)
{
    int saved_errno = errno;

    pthread_mutex_lock(&maillog_ids_lock);
    if (maillog_ids.next[c] == 0)
        maillog_ids.next[c] = 1;
    if (maillog_ids.dir != NULL && maillog_ids.next[c] >= maillog_ids.end[c])
        maillog_ids_refill(c);
    uint64_t id = maillog_ids.next[c]++;
    pthread_mutex_unlock(&maillog_ids_lock);
    errno = saved_errno;
    return id;
}

uint64_t maillog_next_icid(void)
{
    return maillog_next(MAILLOG_ICID);
}

uint64_t maillog_next_dcid(void)
{
    return maillog_next(MAILLOG_DCID);
}

uint64_t maillog_next_mid(void)
{
    return maillog_next(MAILLOG_MID);
}

/* ---- the standard ESA lines ------------------------------------------- */

/* Each helper cleans every string it prints: most come from peers, and the
 * rest cost nothing to clean. */
#define MAILLOG_CLEAN(name, s)                                                                     \
    char name##_buf[MAILLOG_FIELD_MAX];                                                            \
    const char *name = maillog_clean(name##_buf, sizeof name##_buf, (s))

void maillog_icid_new(uint64_t icid, const char *interface, const char *local_ip,
                      const char *peer_ip, const char *rdns, int verified)
{
    MAILLOG_CLEAN(ifc, interface);
    MAILLOG_CLEAN(lip, local_ip);
    MAILLOG_CLEAN(pip, peer_ip);
    MAILLOG_CLEAN(host, rdns != NULL && *rdns != '\0' ? rdns : "unknown");
    maillog_info("New SMTP ICID %llu interface %s (%s) address %s reverse dns host %s verified %s",
                 (unsigned long long)icid, ifc, lip, pip, host, verified ? "yes" : "no");
}

void maillog_icid_sg(uint64_t icid, const char *action, const char *group, const char *match)
{
    MAILLOG_CLEAN(act, action);
    MAILLOG_CLEAN(sg, group);
    MAILLOG_CLEAN(m, match);
    maillog_info("ICID %llu %s SG %s match %s SBRS None", (unsigned long long)icid, act, sg, m);
}

void maillog_tls_success(const char *kind, uint64_t id, const char *protocol, const char *cipher)
{
    MAILLOG_CLEAN(k, kind);
    MAILLOG_CLEAN(proto, protocol);
    MAILLOG_CLEAN(ciph, cipher);
    maillog_info("%s %llu TLS success protocol %s cipher %s", k, (unsigned long long)id, proto,
                 ciph);
}

void maillog_tls_failed(const char *kind, uint64_t id, const char *reason)
{
    MAILLOG_CLEAN(k, kind);
    char why[MAILLOG_TEXT_MAX];
    maillog_info("%s %llu TLS failed: %s", k, (unsigned long long)id,
                 maillog_clean(why, sizeof why, reason));
}

void maillog_icid_tls_required(uint64_t icid)
{
    maillog_info("ICID %llu TLS was required but remote host did not initiate it",
                 (unsigned long long)icid);
}

void maillog_mid_start(uint64_t mid, uint64_t icid)
{
    maillog_info("Start MID %llu ICID %llu", (unsigned long long)mid, (unsigned long long)icid);
}

void maillog_mid_from(uint64_t mid, uint64_t icid, const char *from)
{
    MAILLOG_CLEAN(addr, from);
    maillog_info("MID %llu ICID %llu From: <%s>", (unsigned long long)mid, (unsigned long long)icid,
                 addr);
}

void maillog_mid_rcpt(uint64_t mid, uint64_t icid, unsigned rid, const char *to)
{
    MAILLOG_CLEAN(addr, to);
    maillog_info("MID %llu ICID %llu RID %u To: <%s>", (unsigned long long)mid,
                 (unsigned long long)icid, rid, addr);
}

void maillog_mid_ready(uint64_t mid, unsigned long long bytes, const char *from)
{
    MAILLOG_CLEAN(addr, from);
    maillog_info("MID %llu ready %llu bytes from <%s>", (unsigned long long)mid, bytes, addr);
}

void maillog_mid_done(uint64_t mid)
{
    maillog_info("MID %llu done", (unsigned long long)mid);
}

void maillog_mid_aborted(uint64_t mid, const char *reason)
{
    char why[MAILLOG_TEXT_MAX];
    maillog_info("MID %llu aborted: %s", (unsigned long long)mid,
                 maillog_clean(why, sizeof why, reason));
}

void maillog_icid_close(uint64_t icid)
{
    maillog_info("ICID %llu close", (unsigned long long)icid);
}

void maillog_icid_lost(uint64_t icid)
{
    maillog_info("ICID %llu lost", (unsigned long long)icid);
}
