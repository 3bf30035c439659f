/* SPDX-License-Identifier: GPL-3.0-only */
/* The server endpoint's stateless paths (src/quic/endpoint.c) through the
 * pair harness (helpers/quic_pair.h): Retry and its tokens, stateless
 * resets and their rate limit, packets that get no answer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <ngtcp2/ngtcp2_crypto.h>
#include <string.h>

#include "helpers/quic_pair.h"

/* ---- helpers ------------------------------------------------------------ */

static const uint8_t dcid8[8] = {0xd0, 1, 2, 3, 4, 5, 6, 7};
static const uint8_t scid8[8] = {0x5c, 1, 2, 3, 4, 5, 6, 7};

/* initial writes into |pkt| a 1,200-byte QUIC v1 Initial from scid8 to
 * |dcid| carrying |token| (its payload is junk: nothing past the header is
 * read before a connection exists). */
static size_t initial(uint8_t pkt[1200], const uint8_t *dcid, size_t dcidlen,
                      const uint8_t *token, size_t tokenlen) {
  size_t n = 0, rest;
  assert_true(tokenlen < 64 * 64);
  memset(pkt, 0, 1200);
  pkt[n++] = 0xc0; /* long header, Initial, 1-byte packet number */
  pkt[n++] = 0, pkt[n++] = 0, pkt[n++] = 0, pkt[n++] = 1;
  pkt[n++] = (uint8_t)dcidlen;
  memcpy(pkt + n, dcid, dcidlen);
  n += dcidlen;
  pkt[n++] = sizeof(scid8);
  memcpy(pkt + n, scid8, sizeof(scid8));
  n += sizeof(scid8);
  pkt[n++] = (uint8_t)(0x40 | tokenlen >> 8);
  pkt[n++] = (uint8_t)tokenlen;
  if (tokenlen > 0) {
    memcpy(pkt + n, token, tokenlen);
    n += tokenlen;
  }
  rest = 1200 - n - 2;
  pkt[n++] = (uint8_t)(0x40 | rest >> 8);
  pkt[n++] = (uint8_t)rest;
  return 1200;
}

static void deliver_from(const prd_sockaddr *from, const uint8_t *pkt,
                         size_t len) {
  prd_quic_endpoint_deliver(P->s[SRV].ep, &P->s[SRV].addr, from, pkt, len);
}

/* sent_to_client: datagrams queued toward the client since the network was
 * last emptied. */
static unsigned sent_to_client(void) {
  unsigned n = 0;
  for (const dgram *d = P->q; d; d = d->next) {
    n += d->to == CLI;
  }
  return n;
}

/* drain empties the network without delivering anything. */
static void drain(void) {
  while (P->q) {
    dgram *d = P->q;
    P->q = d->next;
    free(d);
  }
}

/* retry_initial writes into |pkt| an Initial to dcid8 with a Retry token
 * made now for |addr| (as send_retry makes them). */
static void retry_initial(uint8_t pkt[1200], const prd_sockaddr *addr) {
  uint8_t token[NGTCP2_CRYPTO_MAX_RETRY_TOKENLEN];
  ngtcp2_cid retry_scid, odcid;
  ngtcp2_ssize tokenlen;
  ngtcp2_cid_init(&retry_scid, dcid8, sizeof(dcid8));
  ngtcp2_cid_init(&odcid, scid8, sizeof(scid8));
  tokenlen = ngtcp2_crypto_generate_retry_token(
      token, static_secret, sizeof(static_secret), NGTCP2_PROTO_VER_V1,
      &addr->u.sa, addr->len, &retry_scid, &odcid, fake_now);
  assert_true(tokenlen > 0);
  initial(pkt, dcid8, sizeof(dcid8), token, (size_t)tokenlen);
}

static int server_sent(void) { return P->sent[SRV] > 0; }

static int is_retry(const dgram *d) {
  /* RFC 9000 §17.2.5: long header, fixed bit, type 3; version 1. */
  return d->len > 5 && (d->data[0] & 0xf0) == 0xf0 && d->data[1] == 0 &&
         d->data[2] == 0 && d->data[3] == 0 && d->data[4] == 1;
}

/* ---- tests -------------------------------------------------------------- */

/* With room for one pending handshake the server answers the first Initial
 * with Retry and keeps no state; the client comes back with the token and
 * the handshake completes (spec/04-quic-profile.md §3). */
static void test_retry_round_trip(void **state) {
  (void)state;
  P->s[SRV].cfg.max_pending_handshakes = 1;
  start_pair();
  assert_true(pump(server_sent, 1 * SEC));
  assert_int_equal(P->sent[SRV], 1);
  assert_non_null(P->q);
  assert_true(is_retry(P->q));
  assert_int_equal(P->q->to, CLI);
  assert_int_equal(prd_quic_endpoint_num_conns(P->s[SRV].ep), 0);
  assert_int_equal(P->s[SRV].conn_new, 0);
  assert_true(pump(both_authenticated, 5 * SEC));
  assert_int_equal(P->s[SRV].conn_new, 1);
  assert_int_equal(prd_quic_endpoint_num_conns(P->s[SRV].ep), 1);
}

/* A Retry token is good for its address, for 10 s: a forged, a stale or a
 * borrowed one is dropped without an answer; a good one opens a
 * connection even while the server asks everyone else for Retry. */
static void test_retry_tokens(void **state) {
  uint8_t pkt[1200], token[100];
  prd_sockaddr from, other;
  unsigned conns;
  (void)state;
  P->s[SRV].cfg.max_pending_handshakes = 1;
  connect_pair();
  assert_true(pump(NULL, 1 * SEC));
  drain();
  conns = P->s[SRV].conn_new;
  from = P->s[CLI].addr;
  other = from;
  other.u.in.sin_port ^= 0x0101;

  /* No token: Retry. */
  deliver_from(&from, pkt, initial(pkt, dcid8, sizeof(dcid8), NULL, 0));
  assert_int_equal(sent_to_client(), 1);
  assert_true(is_retry(P->q));
  drain();
  /* A forged token. */
  memset(token, 0x77, sizeof(token));
  token[0] = NGTCP2_CRYPTO_TOKEN_MAGIC_RETRY;
  deliver_from(&from, pkt,
               initial(pkt, dcid8, sizeof(dcid8), token, sizeof(token)));
  assert_null(P->q);
  /* A good token from another address, and then a stale one. */
  retry_initial(pkt, &from);
  deliver_from(&other, pkt, sizeof(pkt));
  assert_null(P->q);
  assert_true(pump(NULL, 11 * SEC));
  drain();
  deliver_from(&from, pkt, sizeof(pkt));
  assert_null(P->q);
  assert_int_equal(P->s[SRV].conn_new, conns);
  /* A good one. */
  retry_initial(pkt, &from);
  deliver_from(&from, pkt, sizeof(pkt));
  /* A connection was made (its junk payload then ends it). */
  assert_int_equal(P->s[SRV].conn_new, conns + 1);
}

/* Short-header packets of no connection get a stateless reset, at most 100
 * a second, and none to a packet too short to be answered by a shorter one
 * (RFC 9000 §10.3). Packets of a long header that are not an Initial get
 * nothing. */
static void test_stateless_reset_rate_limit(void **state) {
  uint8_t pkt[60];
  prd_sockaddr from;
  unsigned before;
  (void)state;
  connect_pair();
  assert_true(pump(NULL, 2 * SEC));
  drain();
  from = P->s[CLI].addr;
  memset(pkt, 0xab, sizeof(pkt));
  pkt[0] = 0x40; /* short header, fixed bit; DCID 0xabab... */
  before = P->sent[SRV];
  deliver_from(&from, pkt, 21);
  assert_int_equal(P->sent[SRV], before);
  for (int i = 0; i < 150; ++i) {
    pkt[1] = (uint8_t)i;
    deliver_from(&from, pkt, sizeof(pkt));
  }
  assert_int_equal(P->sent[SRV] - before, 100);
  assert_int_equal(sent_to_client(), 100);
  assert_true(P->q->len < sizeof(pkt) && P->q->len >= 22);
  /* A second later the budget is back. */
  assert_true(pump(NULL, 1100 * MS));
  drain();
  before = P->sent[SRV];
  for (int i = 0; i < 150; ++i) {
    pkt[1] = (uint8_t)i;
    deliver_from(&from, pkt, sizeof(pkt));
  }
  assert_int_equal(P->sent[SRV] - before, 100);
  drain();
  /* A Handshake packet (long header, type 2) of no connection. */
  before = P->sent[SRV];
  {
    uint8_t hs[1200];
    initial(hs, dcid8, sizeof(dcid8), NULL, 0);
    hs[0] = 0xe0;
    deliver_from(&from, hs, sizeof(hs));
  }
  assert_int_equal(P->sent[SRV], before);
  /* The pair never noticed. */
  assert_true(pump(NULL, 1 * SEC));
  assert_int_equal(P->s[SRV].closed + P->s[CLI].closed, 0);
}

/* A connection that ends while it waits for the socket leaves the
 * endpoint's blocked queue: the socket's writability flushes nothing (ASan
 * builds see any use of it after the free). */
static void test_blocked_conn_freed(void **state) {
  app_stream *a;
  (void)state;
  connect_pair();
  a = open_stream();
  P->eagain[SRV] = 1;
  app_send(a, 200000, 1);
  assert_true(pump(NULL, 100 * MS));
  assert_true(P->s[SRV].want_writable > 0);
  prd_quic_conn_close(P->s[SRV].qc, PRD_APP_NO_ERROR, "done");
  assert_true(pump(server_gone, 60 * SEC));
  assert_int_equal(prd_quic_endpoint_num_conns(P->s[SRV].ep), 0);
  P->eagain[SRV] = 0;
  prd_quic_endpoint_on_writable(P->s[SRV].ep);
  assert_int_equal(prd_quic_endpoint_num_conns(P->s[SRV].ep), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_retry_round_trip, qp_setup,
                                      qp_teardown),
      cmocka_unit_test_setup_teardown(test_retry_tokens, qp_setup, qp_teardown),
      cmocka_unit_test_setup_teardown(test_stateless_reset_rate_limit, qp_setup,
                                      qp_teardown),
      cmocka_unit_test_setup_teardown(test_blocked_conn_freed, qp_setup,
                                      qp_teardown),
  };
  return cmocka_run_group_tests(tests, qp_group_setup, qp_group_teardown);
}
