/* SPDX-License-Identifier: GPL-3.0-only */
/* Unit tests for src/quic/ngtcp2_compat.h against whichever ngtcp2 the build
 * uses (0.12.1 or 1.x, README: Platforms): every --congestion-control value
 * maps to a controller that ngtcp2 has and can start a connection with, and
 * the probe-timeout hint reads the right statistics. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include <netinet/in.h>

#include "quic/ngtcp2_compat.h"

static void fake_rand(uint8_t *dest, size_t destlen,
                      const ngtcp2_rand_ctx *rand_ctx) {
  (void)rand_ctx;
  memset(dest, 0x5a, destlen);
}

static int fake_get_new_connection_id(ngtcp2_conn *conn, ngtcp2_cid *cid,
                                      uint8_t *token, size_t cidlen,
                                      void *user_data) {
  (void)conn;
  (void)user_data;
  memset(cid->data, 0x11, cidlen);
  cid->datalen = cidlen;
  memset(token, 0x22, NGTCP2_STATELESS_RESET_TOKENLEN);
  return 0;
}

static const ngtcp2_callbacks client_callbacks = {
    .client_initial = ngtcp2_crypto_client_initial_cb,
    .recv_crypto_data = ngtcp2_crypto_recv_crypto_data_cb,
    .encrypt = ngtcp2_crypto_encrypt_cb,
    .decrypt = ngtcp2_crypto_decrypt_cb,
    .hp_mask = ngtcp2_crypto_hp_mask_cb,
    .recv_retry = ngtcp2_crypto_recv_retry_cb,
    .rand = fake_rand,
    .get_new_connection_id = fake_get_new_connection_id,
    .update_key = ngtcp2_crypto_update_key_cb,
    .delete_crypto_aead_ctx = ngtcp2_crypto_delete_crypto_aead_ctx_cb,
    .delete_crypto_cipher_ctx = ngtcp2_crypto_delete_crypto_cipher_ctx_cb,
    .get_path_challenge_data = ngtcp2_crypto_get_path_challenge_data_cb,
    .version_negotiation = ngtcp2_crypto_version_negotiation_cb,
};

/* ngtcp2_conn_client_new with |cc| as the controller: 1.x aborts in
 * ngtcp2_unreachable() on a value it does not have. */
static ngtcp2_conn *client_with_cc(int cc) {
  ngtcp2_settings settings;
  ngtcp2_transport_params params;
  ngtcp2_cid dcid, scid;
  struct sockaddr_in6 local, remote;
  ngtcp2_path path;
  ngtcp2_conn *conn = NULL;
  uint8_t id[16];

  memset(id, 0x33, sizeof(id));
  ngtcp2_cid_init(&dcid, id, sizeof(id));
  ngtcp2_cid_init(&scid, id, 8);
  memset(&local, 0, sizeof(local));
  memset(&remote, 0, sizeof(remote));
  local.sin6_family = remote.sin6_family = AF_INET6;
  local.sin6_addr = remote.sin6_addr = in6addr_loopback;
  local.sin6_port = htons(40000);
  remote.sin6_port = htons(40001);
  path.local.addr = (ngtcp2_sockaddr *)&local;
  path.local.addrlen = sizeof(local);
  path.remote.addr = (ngtcp2_sockaddr *)&remote;
  path.remote.addrlen = sizeof(remote);
  path.user_data = NULL;

  ngtcp2_settings_default(&settings);
  settings.initial_ts = 1;
  settings.cc_algo = prd_cc_algo(cc);
  ngtcp2_transport_params_default(&params);
  assert_int_equal(
      ngtcp2_conn_client_new(&conn, &dcid, &scid, &path, NGTCP2_PROTO_VER_V1,
                             &client_callbacks, &settings, &params, NULL, NULL),
      0);
  return conn;
}

static void test_ngtcp2_compat_cc_algo_values(void **state) {
  (void)state;
  assert_int_equal(prd_cc_algo(PRD_QUIC_CC_RENO), NGTCP2_CC_ALGO_RENO);
  assert_int_equal(prd_cc_algo(PRD_QUIC_CC_CUBIC), NGTCP2_CC_ALGO_CUBIC);
#ifdef PRD_NGTCP2_V1
  /* One BBR in 1.x: both names select it (README: Platforms). */
  assert_int_equal(prd_cc_algo(PRD_QUIC_CC_BBR), NGTCP2_CC_ALGO_BBR);
  assert_int_equal(prd_cc_algo(PRD_QUIC_CC_BBR2), NGTCP2_CC_ALGO_BBR);
#else
  assert_int_equal(prd_cc_algo(PRD_QUIC_CC_BBR), NGTCP2_CC_ALGO_BBR);
  assert_int_equal(prd_cc_algo(PRD_QUIC_CC_BBR2), NGTCP2_CC_ALGO_BBR2);
#endif
  /* Never an unknown value, whatever comes in. */
  assert_int_equal(prd_cc_algo(-1), NGTCP2_CC_ALGO_CUBIC);
  assert_int_equal(prd_cc_algo(42), NGTCP2_CC_ALGO_CUBIC);
}

static void test_ngtcp2_compat_cc_algo_starts_a_connection(void **state) {
  static const int all[] = {PRD_QUIC_CC_RENO, PRD_QUIC_CC_CUBIC,
                            PRD_QUIC_CC_BBR, PRD_QUIC_CC_BBR2};
  size_t i;
  (void)state;
  for (i = 0; i < sizeof(all) / sizeof(all[0]); ++i) {
    ngtcp2_conn *conn = client_with_cc(all[i]);
    prd_conn_stat cs;
    assert_non_null(conn);
    prd_conn_get_stat(conn, &cs);
    assert_true(cs.cwnd > 0);
    assert_int_equal(cs.bytes_in_flight, 0);
    ngtcp2_conn_del(conn);
  }
}

static void test_ngtcp2_compat_pto_fired(void **state) {
  ngtcp2_conn *conn = client_with_cc(PRD_QUIC_CC_BBR2);
  ngtcp2_duration pto = ngtcp2_conn_get_pto(conn);
  ngtcp2_tstamp rx = 1000000000, tx = rx + 10;
  prd_conn_stat cs;
  (void)state;

  prd_conn_get_stat(conn, &cs);
  assert_false(prd_conn_pto_fired(conn, &cs, tx, rx, tx + 2 * pto));
#ifdef PRD_NGTCP2_V1
  /* Sent after the last datagram in, nothing back for a PTO. */
  cs.bytes_in_flight = 1200;
  assert_false(prd_conn_pto_fired(conn, &cs, tx, rx, tx + pto / 2));
  assert_true(prd_conn_pto_fired(conn, &cs, tx, rx, tx + pto + 1));
  /* Something came in after the send: no PTO. */
  assert_false(prd_conn_pto_fired(conn, &cs, tx, tx + 1, tx + 2 * pto));
  /* An idle connection whose keep-alive PING just left is not suspect. */
  assert_false(prd_conn_pto_fired(conn, &cs, rx + 30 * NGTCP2_SECONDS, rx,
                                  rx + 30 * NGTCP2_SECONDS + 1000));
#else
  cs.pto_count = 1;
  assert_true(prd_conn_pto_fired(conn, &cs, tx, rx, tx));
#endif
  ngtcp2_conn_del(conn);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_ngtcp2_compat_cc_algo_values),
      cmocka_unit_test(test_ngtcp2_compat_cc_algo_starts_a_connection),
      cmocka_unit_test(test_ngtcp2_compat_pto_fired),
  };
  return cmocka_run_group_tests_name("ngtcp2_compat", tests, NULL, NULL);
}
