/* SPDX-License-Identifier: GPL-3.0-only */
/* The endpoint's tables on their own: the CID map (src/quic/cid_map.h) and
 * the rate limits (src/quic/ratelimit.h), driven with explicit times. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <string.h>

#include "quic/cid_map.h"
#include "quic/ratelimit.h"

#define MS PRD_NS_PER_MS
#define SEC PRD_NS_PER_S
#define T0 (1000 * SEC)

/* Stand-ins for connections: the map only keeps their addresses. */
static char conns[3];
#define QC(i) ((prd_quic_conn *)(void *)&conns[i])

static ngtcp2_cid make_cid(uint32_t n, size_t len) {
  uint8_t b[NGTCP2_MAX_CIDLEN] = {0};
  ngtcp2_cid cid;
  b[0] = (uint8_t)(n >> 24);
  b[1] = (uint8_t)(n >> 16);
  b[2] = (uint8_t)(n >> 8);
  b[3] = (uint8_t)n;
  b[len - 1] ^= 0x5a;
  ngtcp2_cid_init(&cid, b, len);
  return cid;
}

static prd_quic_conn *find(const prd_cid_map *m, const ngtcp2_cid *cid) {
  return prd_cid_map_find(m, cid->data, cid->datalen);
}

/* ---- CID map ------------------------------------------------------------ */

static void test_cid_map_add_find_remove(void **state) {
  static prd_cid_map m;
  ngtcp2_cid a = make_cid(1, 16), b = make_cid(2, 16), c = make_cid(1, 8);
  uint8_t big[NGTCP2_MAX_CIDLEN + 1] = {0};
  (void)state;
  memset(&m, 0, sizeof(m));
  assert_null(find(&m, &a));
  assert_int_equal(prd_cid_map_add(&m, &a, QC(0)), 0);
  assert_int_equal(prd_cid_map_add(&m, &b, QC(1)), 0);
  assert_ptr_equal(find(&m, &a), QC(0));
  assert_ptr_equal(find(&m, &b), QC(1));
  /* Same leading bytes, other length: another CID. */
  assert_null(find(&m, &c));
  assert_null(prd_cid_map_find(&m, big, sizeof(big)));
  assert_int_equal(prd_cid_map_size(&m), 2);
  /* Adding a CID again moves it to the new connection. */
  assert_int_equal(prd_cid_map_add(&m, &a, QC(2)), 0);
  assert_ptr_equal(find(&m, &a), QC(2));
  assert_int_equal(prd_cid_map_size(&m), 2);
  /* Removing unmaps it whatever connection it maps to. */
  prd_cid_map_remove(&m, &a);
  assert_null(find(&m, &a));
  prd_cid_map_remove(&m, &a); /* not there: nothing happens */
  assert_ptr_equal(find(&m, &b), QC(1));
  assert_int_equal(prd_cid_map_size(&m), 1);
  prd_cid_map_clear(&m);
  assert_int_equal(prd_cid_map_size(&m), 0);
}

/* Many more CIDs than buckets, of three connections; forgetting one
 * connection unmaps exactly its CIDs. */
static void test_cid_map_many_and_forget(void **state) {
  static prd_cid_map m;
  const uint32_t n = 6000;
  size_t per[3] = {0, 0, 0};
  (void)state;
  memset(&m, 0, sizeof(m));
  for (uint32_t i = 0; i < n; ++i) {
    ngtcp2_cid cid = make_cid(i, i % 2 ? 16 : 8);
    assert_int_equal(prd_cid_map_add(&m, &cid, QC(i % 3)), 0);
    ++per[i % 3];
  }
  assert_int_equal(prd_cid_map_size(&m), n);
  for (uint32_t i = 0; i < n; ++i) {
    ngtcp2_cid cid = make_cid(i, i % 2 ? 16 : 8);
    assert_ptr_equal(find(&m, &cid), QC(i % 3));
  }
  assert_int_equal(prd_cid_map_forget(&m, QC(1)), per[1]);
  assert_int_equal(prd_cid_map_forget(&m, QC(1)), 0);
  assert_int_equal(prd_cid_map_size(&m), per[0] + per[2]);
  for (uint32_t i = 0; i < n; ++i) {
    ngtcp2_cid cid = make_cid(i, i % 2 ? 16 : 8);
    if (i % 3 == 1) {
      assert_null(find(&m, &cid));
    } else {
      assert_ptr_equal(find(&m, &cid), QC(i % 3));
    }
  }
  prd_cid_map_clear(&m);
  assert_int_equal(prd_cid_map_size(&m), 0);
  assert_int_equal(prd_cid_map_forget(&m, QC(0)), 0);
  for (size_t i = 0; i < PRD_CID_BUCKETS; ++i) {
    assert_null(m.buckets[i]);
  }
}

/* ---- rate limits -------------------------------------------------------- */

static const uint8_t secret[32] = {1, 2, 3, 4, 5, 6, 7, 8};

/* addr makes the address |ip| (IPv4 or IPv6), port 4433. */
static prd_sockaddr addr(const char *ip) {
  prd_sockaddr a;
  memset(&a, 0, sizeof(a));
  if (strchr(ip, ':')) {
    a.u.in6.sin6_family = AF_INET6;
    a.u.in6.sin6_port = htons(4433);
    assert_int_equal(inet_pton(AF_INET6, ip, &a.u.in6.sin6_addr), 1);
    a.len = sizeof(a.u.in6);
  } else {
    a.u.in.sin_family = AF_INET;
    a.u.in.sin_port = htons(4433);
    assert_int_equal(inet_pton(AF_INET, ip, &a.u.in.sin_addr), 1);
    a.len = sizeof(a.u.in);
  }
  return a;
}

static prd_sockaddr addr_n(uint32_t n) {
  prd_sockaddr a = addr("10.0.0.0");
  a.u.in.sin_addr.s_addr = htonl(0x0a000000u + n);
  return a;
}

/* At most PRD_RL_RESETS_PER_S stateless resets within a one-second window;
 * the next window has a full budget again. */
static void test_rl_stateless_reset_window(void **state) {
  static prd_ratelimit rl;
  int sent = 0;
  (void)state;
  prd_rl_init(&rl, secret);
  for (int i = 0; i < 3 * PRD_RL_RESETS_PER_S; ++i) {
    sent += prd_rl_reset_ok(&rl, T0 + (prd_tstamp)i * MS / 4);
  }
  assert_int_equal(sent, PRD_RL_RESETS_PER_S);
  /* Still inside the window that started at T0. */
  assert_false(prd_rl_reset_ok(&rl, T0 + SEC));
  sent = 0;
  for (int i = 0; i < 3 * PRD_RL_RESETS_PER_S; ++i) {
    sent += prd_rl_reset_ok(&rl, T0 + SEC + 1 + (prd_tstamp)i);
  }
  assert_int_equal(sent, PRD_RL_RESETS_PER_S);
}

/* An address starts PRD_RL_BURST connections at once, then PRD_RL_PER_S a
 * second; an IPv6 /64 counts as one address. */
static void test_rl_admission_tokens(void **state) {
  static prd_ratelimit rl;
  prd_sockaddr a = addr("2001:db8:1:2::1"), b = addr("2001:db8:1:2::ffff");
  prd_sockaddr c = addr("2001:db8:1:3::1"), v4 = addr("192.0.2.7");
  prd_sockaddr mapped = addr("::ffff:192.0.2.7");
  prd_rl_entry *e;
  (void)state;
  prd_rl_init(&rl, secret);
  e = prd_rl_get(&rl, &a, T0, 0);
  assert_non_null(e);
  for (int i = 0; i < PRD_RL_BURST; ++i) {
    assert_true(prd_rl_has_token(e, T0));
    prd_rl_take_token(e);
  }
  assert_false(prd_rl_has_token(e, T0));
  assert_ptr_equal(prd_rl_get(&rl, &b, T0, 0), e);
  assert_ptr_not_equal(prd_rl_get(&rl, &c, T0, 0), e);
  assert_true(prd_rl_has_token(prd_rl_get(&rl, &c, T0, 0), T0));
  /* One token every 1/PRD_RL_PER_S s. */
  assert_false(prd_rl_has_token(e, T0 + SEC / PRD_RL_PER_S - MS));
  assert_true(prd_rl_has_token(e, T0 + SEC / PRD_RL_PER_S));
  prd_rl_take_token(e);
  assert_false(prd_rl_has_token(e, T0 + SEC / PRD_RL_PER_S));
  /* IPv4 and IPv4-mapped IPv6 are the same address. */
  assert_true(prd_rl_same_key(&v4, &mapped));
  assert_true(prd_rl_same_key(&a, &b));
  assert_false(prd_rl_same_key(&a, &c));
  assert_ptr_equal(prd_rl_get(&rl, &v4, T0, 0),
                   prd_rl_get(&rl, &mapped, T0, 0));
}

/* PRD_RL_FAIL_BUDGET failures within PRD_RL_WINDOW use up the budget; the
 * count starts again after the window. */
static void test_rl_failures_and_cool_down(void **state) {
  static prd_ratelimit rl;
  prd_sockaddr a = addr("198.51.100.9");
  prd_rl_entry *e = NULL;
  prd_tstamp t = T0;
  (void)state;
  prd_rl_init(&rl, secret);
  for (int i = 1; i < PRD_RL_FAIL_BUDGET; ++i) {
    assert_null(prd_rl_fail(&rl, &a, t));
    t += SEC;
  }
  /* Outside the window: the count starts again. */
  t = T0 + PRD_RL_WINDOW + SEC;
  for (int i = 1; i < PRD_RL_FAIL_BUDGET; ++i) {
    assert_null(prd_rl_fail(&rl, &a, t));
  }
  e = prd_rl_fail(&rl, &a, t);
  assert_non_null(e);
  assert_ptr_equal(e, prd_rl_get(&rl, &a, t, 0));
  assert_false(prd_rl_cooling(e, t));
  prd_rl_cool_down(e, t + 60 * SEC);
  assert_true(prd_rl_cooling(e, t));
  assert_true(prd_rl_cooling(e, t + 60 * SEC - 1));
  assert_false(prd_rl_cooling(e, t + 60 * SEC));
  /* While cooling down, a full budget of failures asks for no new one. */
  for (int i = 0; i < 2 * PRD_RL_FAIL_BUDGET; ++i) {
    assert_null(prd_rl_fail(&rl, &a, t + SEC));
  }
}

/* One failure line per address every 10 s, with the count left out. */
static void test_rl_log_ok(void **state) {
  static prd_ratelimit rl;
  prd_sockaddr a = addr("203.0.113.5"), b = addr("203.0.113.6");
  uint32_t quiet = 99;
  (void)state;
  prd_rl_init(&rl, secret);
  assert_true(prd_rl_log_ok(&rl, &a, T0, &quiet));
  assert_int_equal(quiet, 0);
  for (int i = 0; i < 3; ++i) {
    assert_false(prd_rl_log_ok(&rl, &a, T0 + (prd_tstamp)i * SEC, &quiet));
  }
  assert_true(prd_rl_log_ok(&rl, &b, T0, &quiet));
  assert_int_equal(quiet, 0);
  assert_true(prd_rl_log_ok(&rl, &a, T0 + 10 * SEC, &quiet));
  assert_int_equal(quiet, 3);
}

static void test_rl_exempt(void **state) {
  prd_addr_prefix p[2] = {{4, 20, {192, 0, 16, 0}},
                          {6, 48, {0x20, 0x01, 0x0d, 0xb8, 0, 1}}};
  prd_sockaddr in = addr("192.0.31.255"), out = addr("192.0.32.1");
  prd_sockaddr mapped = addr("::ffff:192.0.17.1");
  prd_sockaddr in6 = addr("2001:db8:1:ffff::1");
  prd_sockaddr out6 = addr("2001:db8:2::1");
  (void)state;
  assert_true(prd_rl_exempt(&in, p, 2));
  assert_true(prd_rl_exempt(&mapped, p, 2));
  assert_false(prd_rl_exempt(&out, p, 2));
  assert_true(prd_rl_exempt(&in6, p, 2));
  assert_false(prd_rl_exempt(&out6, p, 2));
  assert_false(prd_rl_exempt(&in, p, 0));
}

/* A table full of entries that hold something (a spent token) gives none up
 * to an unvalidated address: NULL, and the caller sends Retry. A validated
 * one takes the least recently seen entry. */
static void test_rl_full_table(void **state) {
  static prd_ratelimit rl;
  prd_sockaddr fresh = addr_n(1000000);
  prd_rl_entry *e;
  (void)state;
  prd_rl_init(&rl, secret);
  for (uint32_t i = 0; i < 4 * PRD_RL_SLOTS; ++i) {
    prd_sockaddr a = addr_n(i);
    e = prd_rl_get(&rl, &a, T0 + i, 1);
    assert_non_null(e);
    prd_rl_take_token(e);
  }
  for (size_t i = 0; i < PRD_RL_SLOTS; ++i) {
    assert_true(rl.table[i].used);
  }
  assert_null(prd_rl_get(&rl, &fresh, T0 + 4 * PRD_RL_SLOTS, 0));
  e = prd_rl_get(&rl, &fresh, T0 + 4 * PRD_RL_SLOTS, 1);
  assert_non_null(e);
  assert_true(prd_rl_has_token(e, T0 + 4 * PRD_RL_SLOTS));
  /* Once the tokens are back the entries are clean, and give way. */
  {
    prd_sockaddr other = addr_n(2000000);
    assert_non_null(prd_rl_get(&rl, &other, T0 + 60 * SEC, 0));
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_cid_map_add_find_remove),
      cmocka_unit_test(test_cid_map_many_and_forget),
      cmocka_unit_test(test_rl_stateless_reset_window),
      cmocka_unit_test(test_rl_admission_tokens),
      cmocka_unit_test(test_rl_failures_and_cool_down),
      cmocka_unit_test(test_rl_log_ok),
      cmocka_unit_test(test_rl_exempt),
      cmocka_unit_test(test_rl_full_table),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
