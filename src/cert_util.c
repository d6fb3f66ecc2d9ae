/*
 * cert_util: the plumbing of the certificate commands — finding the store,
 * reading and writing certificate and key files, passwords, prompts and
 * JSON strings.  A tool module (it includes OpenSSL headers); the running
 * gateway never calls it.  Must not: print a private key or a password, or
 * leave a key file readable by anyone but its owner, even for a moment.
 */
#include "cert_util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include <ini.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>
#include <openssl/pkcs7.h>

#include "cert_x509.h"
#include "config.h"

#define CERT_UTIL_DEFAULT_CONFIG "policy/tlsgate.ini"
#define CERT_UTIL_MAX_FILE       (16 * 1024 * 1024)

/* ---- messages ---- */

int cert_util_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("tlsgate: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return CERT_EXIT_FAIL;
}

void cert_util_warn(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("warning: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

const char *cert_util_ossl_reason(char *buf, size_t len)
{
    unsigned long e = ERR_peek_last_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;
    snprintf(buf, len, "%s", r ? r : "");
    ERR_clear_error();
    return buf;
}

/* ---- the store and its users ---- */

static char *cert_util_strdup(const char *s)
{
    char *d = strdup(s ? s : "");
    if (d == NULL) {
        fputs("tlsgate: out of memory\n", stderr);
        exit(CERT_EXIT_FAIL);
    }
    return d;
}

static void cert_util_add_user(struct cert_env *env, const char *listener, const char *hostname,
                               const char *certificate)
{
    struct cert_user *u = realloc(env->users, (env->nusers + 1) * sizeof(*u));
    if (u == NULL) {
        fputs("tlsgate: out of memory\n", stderr);
        exit(CERT_EXIT_FAIL);
    }
    env->users = u;
    u[env->nusers].listener = cert_util_strdup(listener);
    u[env->nusers].hostname = hostname ? cert_util_strdup(hostname) : NULL;
    u[env->nusers].certificate = cert_util_strdup(certificate);
    env->nusers++;
}

static void cert_util_from_config(struct cert_env *env, const struct config *c)
{
    env->certs_dir = cert_util_strdup(c->certs_dir);
    env->hostname = cert_util_strdup(c->hostname);
    env->system_trust = c->system_trust;
    for (size_t i = 0; i < c->nlisteners; i++)
        cert_util_add_user(env, c->listeners[i].name, c->listeners[i].hostname,
                           c->listeners[i].certificate);
}

/* The user of listener NAME, added with the defaults when new. */
static struct cert_user *cert_util_user(struct cert_env *env, const char *name)
{
    for (size_t i = 0; i < env->nusers; i++)
        if (strcmp(env->users[i].listener, name) == 0)
            return &env->users[i];
    cert_util_add_user(env, name, NULL, "demo");
    return &env->users[env->nusers - 1];
}

static void cert_util_set(char **field, const char *value)
{
    free(*field);
    *field = cert_util_strdup(value);
}

/* inih handler of the lenient reading: only what the store needs. */
static int cert_util_on_key(void *arg, const char *section, const char *key, const char *value)
{
    struct cert_env *env = arg;
    if (strcmp(section, "gateway") == 0) {
        if (strcmp(key, "certs_dir") == 0)
            cert_util_set(&env->certs_dir, value);
        else if (strcmp(key, "hostname") == 0)
            cert_util_set(&env->hostname, value);
        else if (strcmp(key, "system_trust") == 0)
            env->system_trust = strcasecmp(value, "no") && strcasecmp(value, "false") &&
                                strcasecmp(value, "off") && strcmp(value, "0");
    } else if (strncmp(section, "listener:", 9) == 0) {
        struct cert_user *u = cert_util_user(env, section + 9);
        if (strcmp(key, "hostname") == 0)
            cert_util_set(&u->hostname, value);
        else if (strcmp(key, "certificate") == 0)
            cert_util_set(&u->certificate, value);
    }
    return 1;
}

/* Reads PATH without validating it (a certificate it names may not exist
 * yet: that is what the certificate commands are for). */
static int cert_util_lenient(struct cert_env *env, const char *path)
{
    env->system_trust = true;
    int rc = ini_parse(path, cert_util_on_key, env);
    if (rc == -1) {
        cert_util_fail("cannot read the configuration %s: %s", path, strerror(errno));
        return -1;
    }
    if (env->certs_dir == NULL)
        env->certs_dir = cert_util_strdup("certs");
    if (env->hostname == NULL)
        env->hostname = cert_util_strdup("localhost");
    for (size_t i = 0; i < env->nusers; i++)
        if (env->users[i].hostname == NULL)
            env->users[i].hostname = cert_util_strdup(env->hostname);
    return 0;
}

int cert_util_env_load(const struct cert_opts *o, struct cert_env *env)
{
    memset(env, 0, sizeof(*env));
    const char *path = o->config;
    if (path == NULL && o->certs_dir == NULL) {
        path = CERT_UTIL_DEFAULT_CONFIG;
        if (access(path, F_OK) != 0) {
            cert_util_fail("no certificate store: give -c FILE or --certs-dir DIR (%s does not "
                           "exist here)",
                           path);
            return -1;
        }
    }
    if (path != NULL) {
        FILE *devnull = fopen("/dev/null", "w");
        struct config *c = config_load(path, devnull);
        if (devnull)
            fclose(devnull);
        if (c != NULL)
            cert_util_from_config(env, c);
        config_unref(c);
        if (c == NULL && cert_util_lenient(env, path) < 0)
            return -1;
    } else {
        env->system_trust = true;
        env->hostname = cert_util_strdup("localhost");
    }
    if (o->certs_dir != NULL)
        cert_util_set(&env->certs_dir, o->certs_dir);
    return 0;
}

void cert_util_env_free(struct cert_env *env)
{
    for (size_t i = 0; i < env->nusers; i++) {
        free(env->users[i].listener);
        free(env->users[i].hostname);
        free(env->users[i].certificate);
    }
    free(env->users);
    free(env->certs_dir);
    free(env->hostname);
    memset(env, 0, sizeof(*env));
}

size_t cert_util_users(const struct cert_env *env, const char *name, char *buf, size_t len)
{
    size_t n = 0, used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < env->nusers; i++) {
        if (strcmp(env->users[i].certificate, name) != 0)
            continue;
        int w = snprintf(buf + used, len - used, "%s%s", n ? ", " : "", env->users[i].listener);
        if (w > 0 && (size_t)w < len - used)
            used += (size_t)w;
        n++;
    }
    if (n == 0)
        snprintf(buf, len, "-");
    return n;
}

int cert_util_warn_mismatch(const struct cert_env *env, const char *name, X509 *leaf)
{
    int n = 0;
    for (size_t i = 0; i < env->nusers; i++) {
        const struct cert_user *u = &env->users[i];
        if (strcmp(u->certificate, name) != 0 || u->hostname == NULL ||
            cert_x509_host_matches(leaf, u->hostname))
            continue;
        char names[1024];
        cert_x509_sans(leaf, ", ", names, sizeof(names));
        if (names[0] == '\0')
            cert_x509_cn(X509_get_subject_name(leaf), names, sizeof(names));
        cert_util_warn("listener %s uses certificate %s for hostname %s, which the certificate's "
                       "names (%s) do not cover: clients that check the name will reject it",
                       u->listener, name, u->hostname, names[0] ? names : "none");
        n++;
    }
    return n;
}

bool cert_util_valid_name(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > 64 || name[0] == '.' || strcmp(name, "trust") == 0)
        return false;
    return strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == n;
}

bool cert_util_check_name(const char *name)
{
    if (cert_util_valid_name(name))
        return true;
    cert_util_fail("'%s' is not a valid certificate name: use letters, digits, '.', '_' and '-' "
                   "(at most 64, not starting with '.'; 'trust' is reserved)",
                   name);
    return false;
}

int cert_util_load_entry(const struct cert_env *env, const char *name, EVP_PKEY **key,
                         STACK_OF(X509) * *chain)
{
    char dir[CERT_PATH_MAX], path[CERT_PATH_MAX], err[CERT_PATH_MAX + 200];
    if (!cert_util_check_name(name))
        return -1;
    struct stat st;
    if (lstat(cert_util_path(dir, sizeof(dir), env, name, NULL), &st) != 0 && errno == ENOENT)
        return cert_util_fail("there is no certificate named %s in %s (tlsgate cert list shows "
                              "the store)",
                              name, env->certs_dir),
               -1;
    *chain = cert_util_read_certs(cert_util_path(path, sizeof(path), env, name, "cert.pem"), err,
                                  sizeof(err));
    if (*chain == NULL)
        return cert_util_fail("%s", err), -1;
    if (key == NULL)
        return 0;
    *key = cert_util_read_key(cert_util_path(path, sizeof(path), env, name, "key.pem"), NULL, err,
                              sizeof(err));
    if (*key != NULL)
        return 0;
    sk_X509_pop_free(*chain, X509_free);
    *chain = NULL;
    return cert_util_fail("%s", err), -1;
}

const char *cert_util_path(char *buf, size_t len, const struct cert_env *env, const char *name,
                           const char *file)
{
    if (file)
        snprintf(buf, len, "%s/%s/%s", env->certs_dir, name, file);
    else
        snprintf(buf, len, "%s/%s", env->certs_dir, name);
    return buf;
}

bool cert_util_exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

/* ---- reading ---- */

/* The bytes of a file, read once and parsed in several ways. */
struct cert_util_file {
    char *data;
    size_t len;
};

/* The whole of PATH into F; -1 with ERR. */
static int cert_util_slurp(const char *path, struct cert_util_file *f, char *err, size_t errlen)
{
    FILE *in = fopen(path, "rb");
    if (in == NULL) {
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
        return -1;
    }
    FILE *mem = open_memstream(&f->data, &f->len);
    char buf[8192];
    size_t n, total = 0;
    while (mem && (n = fread(buf, 1, sizeof(buf), in)) > 0 && total <= CERT_UTIL_MAX_FILE) {
        fwrite(buf, 1, n, mem);
        total += n;
    }
    int bad = ferror(in), e = errno;
    fclose(in);
    if (mem == NULL || fclose(mem) != 0 || bad || total > CERT_UTIL_MAX_FILE) {
        snprintf(err, errlen, "cannot read %s: %s", path,
                 bad   ? strerror(e)
                 : mem ? "the file is too large"
                       : "out of memory");
        free(mem ? f->data : NULL);
        f->data = NULL;
        return -1;
    }
    return 0;
}

/* A new read-only BIO over F, positioned at its start. */
static BIO *cert_util_bio(const struct cert_util_file *f)
{
    return BIO_new_mem_buf(f->data, (int)f->len);
}

static bool cert_util_has(const struct cert_util_file *f, const char *text)
{
    return f->len > 0 && memmem(f->data, f->len, text, strlen(text)) != NULL;
}

/* The certificates of a PKCS#7 bundle (.p7b/.p7c) appended to OUT. */
static void cert_util_p7_certs(PKCS7 *p7, STACK_OF(X509) * out)
{
    STACK_OF(X509) *certs = NULL;
    if (p7 && PKCS7_type_is_signed(p7) && p7->d.sign)
        certs = p7->d.sign->cert;
    for (int i = 0; i < sk_X509_num(certs); i++) {
        X509 *x = sk_X509_value(certs, i);
        if (X509_up_ref(x))
            sk_X509_push(out, x);
    }
}

/* PEM: every CERTIFICATE block, else a PKCS7 block. */
static void cert_util_read_pem(const struct cert_util_file *f, STACK_OF(X509) * out)
{
    BIO *b = cert_util_bio(f);
    X509 *x;
    while (b && (x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL)
        sk_X509_push(out, x);
    BIO_free(b);
    if (sk_X509_num(out) == 0 && (b = cert_util_bio(f)) != NULL) {
        PKCS7 *p7 = PEM_read_bio_PKCS7(b, NULL, NULL, NULL);
        cert_util_p7_certs(p7, out);
        PKCS7_free(p7);
        BIO_free(b);
    }
    ERR_clear_error();
}

/* DER: one or more certificates, else a PKCS#7 bundle. */
static void cert_util_read_der(const struct cert_util_file *f, STACK_OF(X509) * out)
{
    const unsigned char *p = (const unsigned char *)f->data, *end = p + f->len;
    X509 *x;
    while (p < end && (x = d2i_X509(NULL, &p, end - p)) != NULL)
        sk_X509_push(out, x);
    if (sk_X509_num(out) == 0) {
        p = (const unsigned char *)f->data;
        PKCS7 *p7 = d2i_PKCS7(NULL, &p, (long)f->len);
        cert_util_p7_certs(p7, out);
        PKCS7_free(p7);
    }
    ERR_clear_error();
}

/* Why F (from PATH) holds no certificate, in one sentence. */
static void cert_util_no_cert(const struct cert_util_file *f, const char *path, char *err,
                              size_t errlen)
{
    const unsigned char *p = (const unsigned char *)f->data;
    PKCS12 *p12 = d2i_PKCS12(NULL, &p, (long)f->len);
    if (p12 != NULL)
        snprintf(err, errlen, "%s is a PKCS#12 file, not a certificate: use tlsgate cert import",
                 path);
    else if (cert_util_has(f, "CERTIFICATE REQUEST-----"))
        snprintf(err, errlen,
                 "%s is a certificate signing request, not a certificate: a CA must sign it "
                 "first",
                 path);
    else if (cert_util_has(f, "PRIVATE KEY-----"))
        snprintf(err, errlen, "%s holds a private key, not a certificate", path);
    else if (f->len == 0)
        snprintf(err, errlen, "%s is empty", path);
    else
        snprintf(err, errlen, "%s is not a certificate file (PEM, DER or PKCS#7)", path);
    PKCS12_free(p12);
    ERR_clear_error();
}

STACK_OF(X509) * cert_util_read_certs(const char *path, char *err, size_t errlen)
{
    struct cert_util_file f = {0};
    if (cert_util_slurp(path, &f, err, errlen) < 0)
        return NULL;
    STACK_OF(X509) *out = sk_X509_new_null();
    if (out == NULL)
        snprintf(err, errlen, "out of memory");
    else if (cert_util_has(&f, "-----BEGIN "))
        cert_util_read_pem(&f, out);
    else
        cert_util_read_der(&f, out);
    if (out != NULL && sk_X509_num(out) == 0) {
        cert_util_no_cert(&f, path, err, errlen);
        sk_X509_free(out);
        out = NULL;
    }
    free(f.data);
    return out;
}

X509 *cert_util_read_cert(const char *path, char *err, size_t errlen)
{
    STACK_OF(X509) *s = cert_util_read_certs(path, err, errlen);
    if (s == NULL)
        return NULL;
    X509 *x = sk_X509_shift(s);
    sk_X509_pop_free(s, X509_free);
    return x;
}

/* Passphrase callback: the given password, never a terminal prompt. */
static int cert_util_on_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)rwflag;
    if (u == NULL)
        return -1;
    int n = (int)strlen(u);
    if (n > size)
        n = size;
    memcpy(buf, u, (size_t)n);
    return n;
}

EVP_PKEY *cert_util_read_key(const char *path, const char *pass, char *err, size_t errlen)
{
    struct cert_util_file f = {0};
    if (cert_util_slurp(path, &f, err, errlen) < 0)
        return NULL;
    bool encrypted = cert_util_has(&f, "ENCRYPTED");
    EVP_PKEY *k = NULL;
    if (cert_util_has(&f, "-----BEGIN ")) {
        BIO *b = cert_util_bio(&f);
        k = b ? PEM_read_bio_PrivateKey(b, NULL, cert_util_on_passphrase, (void *)pass) : NULL;
        BIO_free(b);
    } else {
        const unsigned char *p = (const unsigned char *)f.data;
        k = d2i_AutoPrivateKey(NULL, &p, (long)f.len);
    }
    ERR_clear_error();
    if (k == NULL && encrypted && pass == NULL)
        snprintf(err, errlen, "%s is an encrypted key: give its password with --password-file",
                 path);
    else if (k == NULL && encrypted)
        snprintf(err, errlen, "wrong password for the key in %s", path);
    else if (k == NULL)
        snprintf(err, errlen, "%s is not a private key file (PEM or DER)", path);
    OPENSSL_clear_free(f.data, f.len);
    return k;
}

/* ---- writing ---- */

typedef int (*cert_util_writer)(FILE *f, const void *arg);

static int cert_util_put_key(FILE *f, const void *arg)
{
    return PEM_write_PrivateKey(f, (EVP_PKEY *)arg, NULL, NULL, 0, NULL, NULL) ? 0 : -1;
}

static int cert_util_put_certs(FILE *f, const void *arg)
{
    STACK_OF(X509) *s = (STACK_OF(X509) *)arg;
    for (int i = 0; i < sk_X509_num(s); i++)
        if (!PEM_write_X509(f, sk_X509_value(s, i)))
            return -1;
    return 0;
}

static int cert_util_put_req(FILE *f, const void *arg)
{
    return PEM_write_X509_REQ(f, (X509_REQ *)arg) ? 0 : -1;
}

struct cert_util_bytes {
    const void *data;
    size_t len;
};

static int cert_util_put_bytes(FILE *f, const void *arg)
{
    const struct cert_util_bytes *b = arg;
    return fwrite(b->data, 1, b->len, f) == b->len ? 0 : -1;
}

/* Writes through FN into a new file beside PATH, then renames it over:
 * readers see the old file or the whole new one, never a part. */
static int cert_util_write_with(const char *path, int mode, cert_util_writer fn, const void *arg,
                                char *err, size_t errlen)
{
    char tmp[CERT_PATH_MAX + 32];
    snprintf(tmp, sizeof(tmp), "%s.tmp%ld", path, (long)getpid());
    unlink(tmp);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode & 0600);
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (f == NULL) {
        snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    errno = 0;
    int bad = fn(f, arg) != 0 || fflush(f) != 0 || fsync(fd) != 0 || fchmod(fd, mode) != 0;
    int e = bad ? errno : 0;
    if (fclose(f) != 0 && !bad) {
        bad = 1;
        e = errno;
    }
    if (!bad && rename(tmp, path) == 0)
        return 0;
    if (!bad)
        e = errno;
    snprintf(err, errlen, "cannot write %s: %s", path, e ? strerror(e) : "write error");
    unlink(tmp);
    ERR_clear_error();
    return -1;
}

int cert_util_write_key(const char *path, EVP_PKEY *key, char *err, size_t errlen)
{
    return cert_util_write_with(path, 0600, cert_util_put_key, key, err, errlen);
}

int cert_util_write_certs(const char *path, STACK_OF(X509) * certs, char *err, size_t errlen)
{
    return cert_util_write_with(path, 0644, cert_util_put_certs, certs, err, errlen);
}

int cert_util_write_req(const char *path, X509_REQ *req, char *err, size_t errlen)
{
    return cert_util_write_with(path, 0644, cert_util_put_req, req, err, errlen);
}

int cert_util_write_bytes(const char *path, int mode, const void *data, size_t len, char *err,
                          size_t errlen)
{
    struct cert_util_bytes b = {data, len};
    return cert_util_write_with(path, mode, cert_util_put_bytes, &b, err, errlen);
}

int cert_util_mkdir(const char *dir, int mode, char *err, size_t errlen)
{
    struct stat st;
    if (mkdir(dir, (mode_t)mode) == 0 ||
        (errno == EEXIST && stat(dir, &st) == 0 && S_ISDIR(st.st_mode)))
        return 0;
    snprintf(err, errlen, "cannot create the directory %s: %s", dir,
             errno == EEXIST ? "a file of that name exists" : strerror(errno));
    return -1;
}

/* ---- passwords and questions ---- */

/* The first line of PATH into BUF; -1 after printing why not. */
static int cert_util_password_file(const char *path, char *buf, size_t len)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return cert_util_fail("cannot read the password file %s: %s", path, strerror(errno)), -1;
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && (st.st_mode & 077))
        cert_util_warn("the password file %s can be read by others (chmod 600 it)", path);
    if (fgets(buf, (int)len, f) == NULL)
        buf[0] = '\0';
    fclose(f);
    buf[strcspn(buf, "\r\n")] = '\0';
    return 0;
}

/* Asks PROMPT on TTY with echo off; -1 if cancelled or unreadable. */
static int cert_util_ask(int tty, const char *prompt, char *buf, size_t len)
{
    struct termios old, quiet;
    if (tcgetattr(tty, &old) != 0)
        return -1;
    quiet = old;
    /* No echo; Ctrl-C ends the line (VEOL) instead of killing us with
     * the echo still off, and then cancels. */
    quiet.c_lflag &= (tcflag_t) ~(ECHO | ISIG);
    quiet.c_lflag |= ICANON;
    quiet.c_cc[VEOL] = 3;
    /* echo off before the prompt shows: an answer typed at once must not
     * appear on the screen (nor be flushed away) */
    tcsetattr(tty, TCSAFLUSH, &quiet);
    (void)!write(tty, prompt, strlen(prompt));
    ssize_t n = read(tty, buf, len - 1);
    tcsetattr(tty, TCSADRAIN, &old);
    (void)!write(tty, "\n", 1);
    if (n <= 0 || memchr(buf, 3, (size_t)n) != NULL || memchr(buf, '\n', (size_t)n) == NULL) {
        OPENSSL_cleanse(buf, len);
        return -1;
    }
    buf[n] = '\0';
    buf[strcspn(buf, "\r\n")] = '\0';
    return 0;
}

static int cert_util_password_tty(const char *prompt, bool confirm, char *buf, size_t len)
{
    int tty = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (tty < 0)
        return cert_util_fail("no terminal to ask for the password: give it with "
                              "--password-file FILE"),
               -1;
    char again[1024];
    int rc = cert_util_ask(tty, prompt, buf, len);
    if (rc == 0 && confirm) {
        rc = cert_util_ask(tty, "Repeat the password: ", again, sizeof(again));
        if (rc == 0 && strcmp(buf, again) != 0) {
            cert_util_fail("the two passwords differ");
            rc = -2;
        }
        OPENSSL_cleanse(again, sizeof(again));
    }
    close(tty);
    if (rc == -1)
        cert_util_fail("no password given (cancelled)");
    return rc < 0 ? -1 : 0;
}

int cert_util_password(const struct cert_opts *o, const char *prompt, bool confirm, char *buf,
                       size_t len)
{
    buf[0] = '\0';
    if (o->password_file != NULL)
        return cert_util_password_file(o->password_file, buf, len);
    return cert_util_password_tty(prompt, confirm, buf, len);
}

bool cert_util_confirm(const char *question)
{
    char line[64];
    fprintf(stderr, "%s [y/N] ", question);
    fflush(stderr);
    if (fgets(line, sizeof(line), stdin) == NULL) {
        fputc('\n', stderr);
        return false;
    }
    return line[0] == 'y' || line[0] == 'Y';
}

/* ---- JSON ---- */

void cert_util_json_str(FILE *f, const char *s)
{
    if (s == NULL) {
        fputs("null", f);
        return;
    }
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p == '\n')
            fputs("\\n", f);
        else if (*p < 0x20 || *p == 0x7f)
            fprintf(f, "\\u%04x", *p);
        else
            fputc(*p, f);
    }
    fputc('"', f);
}
