/*
 * The tls module without sockets: a client and a server endpoint pumped
 * into each other in memory, over contexts made by certstore.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/ssl.h>

#include "certstore.h"
#include "config.h"
#include "tls.h"

static char tls_test_dir[256];
static SSL_CTX *tls_test_server;

static void tls_test_setup(void)
{
    snprintf(tls_test_dir, sizeof(tls_test_dir), "/tmp/tlsgate-tls-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tls_test_dir));
    char err[512];
    ck_assert_int_eq(certstore_make_demo(tls_test_dir, "demo", "mx.example.test", err, sizeof(err)),
                     0);
    struct config c = {.certs_dir = tls_test_dir, .min_tls_version = TLS1_2_VERSION};
    struct conf_listener l = {.name = "in", .certificate = "demo"};
    tls_test_server = certstore_server_ctx(&c, &l, err, sizeof(err));
    ck_assert_msg(tls_test_server != NULL, "%s", err);
}

static void tls_test_teardown(void)
{
    certstore_ctx_free(tls_test_server);
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", tls_test_dir);
    ck_assert_int_eq(system(cmd), 0);
}

/* Moves ciphertext from A to B; returns the number of bytes moved. */
static size_t tls_test_move(struct tls *a, struct tls *b)
{
    char buf[65536];
    size_t total = 0, n;
    while ((n = tls_take_out(a, buf, sizeof(buf))) > 0) {
        ck_assert_int_eq(tls_feed(b, buf, n), 0);
        total += n;
    }
    return total;
}

/* Runs both handshakes to the end; returns the client's and server's last
 * results through the pointers. */
static void tls_test_pump(struct tls *client, struct tls *server, int *cr, int *sr)
{
    *cr = *sr = TLS_AGAIN;
    for (int round = 0; round < 20; round++) {
        if (*cr == TLS_AGAIN)
            *cr = tls_handshake(client);
        tls_test_move(client, server);
        if (*sr == TLS_AGAIN)
            *sr = tls_handshake(server);
        size_t moved = tls_test_move(server, client);
        if (*cr != TLS_AGAIN && *sr != TLS_AGAIN && moved == 0)
            return;
        if (*cr == TLS_ERROR || *sr == TLS_ERROR)
            return;
    }
}

static SSL_CTX *tls_test_client_ctx(int max_version)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (max_version)
        SSL_CTX_set_max_proto_version(ctx, max_version);
    SSL_CTX_set_min_proto_version(ctx, TLS1_VERSION);
    SSL_CTX_set_security_level(ctx, 0);
    return ctx;
}

START_TEST(test_handshake_and_data)
{
    SSL_CTX *cctx = tls_test_client_ctx(0);
    struct tls *client = tls_new(cctx, false, "mx.example.test", false);
    struct tls *server = tls_new(tls_test_server, true, NULL, false);
    int cr, sr;
    tls_test_pump(client, server, &cr, &sr);
    ck_assert_int_eq(cr, TLS_DONE);
    ck_assert_int_eq(sr, TLS_DONE);
    ck_assert_str_eq(tls_protocol(server), "TLSv1.3");
    ck_assert_str_eq(tls_cipher(server), tls_cipher(client));
    ck_assert_int_ge(tls_cipher_bits(server), 128);

    const char msg[] = "EHLO client.example\r\n";
    ck_assert_int_eq(tls_write(client, msg, sizeof(msg) - 1), 0);
    ck_assert_uint_gt(tls_test_move(client, server), sizeof(msg) - 1);
    char buf[256];
    ssize_t n = tls_read(server, buf, sizeof(buf));
    ck_assert_int_eq(n, (ssize_t)sizeof(msg) - 1);
    ck_assert_mem_eq(buf, msg, sizeof(msg) - 1);
    ck_assert_int_eq(tls_read(server, buf, sizeof(buf)), TLS_AGAIN);

    tls_shutdown(client);
    tls_test_move(client, server);
    ck_assert_int_eq(tls_read(server, buf, sizeof(buf)), TLS_EOF);
    tls_free(client);
    tls_free(server);
    SSL_CTX_free(cctx);
}
END_TEST

START_TEST(test_tls12_below_floor_fails)
{
    SSL_CTX *cctx = tls_test_client_ctx(TLS1_1_VERSION);
    struct tls *client = tls_new(cctx, false, NULL, false);
    struct tls *server = tls_new(tls_test_server, true, NULL, false);
    int cr, sr;
    tls_test_pump(client, server, &cr, &sr);
    ck_assert_int_eq(sr, TLS_ERROR);
    ck_assert_msg(strstr(tls_error(server), "unsupported protocol") != NULL, "%s",
                  tls_error(server));
    ck_assert_ptr_nonnull(strstr(tls_error(server), "error:"));
    tls_free(client);
    tls_free(server);
    SSL_CTX_free(cctx);
}
END_TEST

START_TEST(test_tls12_works)
{
    SSL_CTX *cctx = tls_test_client_ctx(TLS1_2_VERSION);
    struct tls *client = tls_new(cctx, false, NULL, false);
    struct tls *server = tls_new(tls_test_server, true, NULL, false);
    int cr, sr;
    tls_test_pump(client, server, &cr, &sr);
    ck_assert_int_eq(sr, TLS_DONE);
    ck_assert_str_eq(tls_protocol(server), "TLSv1.2");
    ck_assert_str_eq(tls_protocol(client), "TLSv1.2");
    tls_free(client);
    tls_free(server);
    SSL_CTX_free(cctx);
}
END_TEST

START_TEST(test_garbage_is_an_error)
{
    struct tls *server = tls_new(tls_test_server, true, NULL, false);
    const char junk[] = "MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\n";
    ck_assert_int_eq(tls_feed(server, junk, sizeof(junk) - 1), 0);
    ck_assert_int_eq(tls_handshake(server), TLS_ERROR);
    ck_assert_ptr_nonnull(strstr(tls_error(server), "wrong version number"));
    tls_free(server);
}
END_TEST

START_TEST(test_partial_records)
{
    SSL_CTX *cctx = tls_test_client_ctx(0);
    struct tls *client = tls_new(cctx, false, NULL, false);
    struct tls *server = tls_new(tls_test_server, true, NULL, false);
    int cr, sr;
    tls_test_pump(client, server, &cr, &sr);
    ck_assert_int_eq(sr, TLS_DONE);
    char big[40000];
    memset(big, 'x', sizeof(big));
    ck_assert_int_eq(tls_write(server, big, sizeof(big)), 0);
    /* deliver the ciphertext one byte at a time */
    char ct[65536];
    size_t n = tls_take_out(server, ct, sizeof(ct));
    size_t got = 0;
    char out[16384];
    for (size_t i = 0; i < n; i++) {
        tls_feed(client, ct + i, 1);
        ssize_t r;
        while ((r = tls_read(client, out, sizeof(out))) > 0)
            got += (size_t)r;
        ck_assert(r == TLS_AGAIN);
    }
    ck_assert_uint_eq(got, sizeof(big));
    tls_free(client);
    tls_free(server);
    SSL_CTX_free(cctx);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("tls");
    TCase *tc = tcase_create("pump");
    tcase_add_checked_fixture(tc, tls_test_setup, tls_test_teardown);
    tcase_add_test(tc, test_handshake_and_data);
    tcase_add_test(tc, test_tls12_below_floor_fails);
    tcase_add_test(tc, test_tls12_works);
    tcase_add_test(tc, test_garbage_is_an_error);
    tcase_add_test(tc, test_partial_records);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
