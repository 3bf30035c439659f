/* SPDX-License-Identifier: GPL-3.0-only */
/* Unit tests for the authentication state machine (src/auth/auth.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth.h"
#include "codec/codec.h"
#include "common/err.h"
#include "helpers/vectors.h"

/* The values of vector mac-psk-ilovespezifisch in spec/test-vectors/auth.txt:
 * PSK "ilovespezifisch", exporter 00..1f, challenge a0..bf. */
static const uint8_t psk1[] = "ilovespezifisch";
#define PSK1_LEN (sizeof(psk1) - 1)
static const uint8_t psk2[] = "ilovespezifischX";
#define PSK2_LEN (sizeof(psk2) - 1)
static const uint8_t mac1[PRD_MAC_LEN] = {
    0x0c, 0xed, 0x16, 0xa4, 0xd6, 0x60, 0x69, 0xcf, 0x0a, 0x54, 0x8f,
    0xfe, 0xb9, 0x39, 0xcd, 0x44, 0x2a, 0xba, 0xc4, 0x25, 0x52, 0xf0,
    0xef, 0x5f, 0xdd, 0x12, 0x32, 0x4c, 0xf0, 0xae, 0x81, 0xef};
static uint8_t exporter1[PRD_AUTH_EXPORTER_LEN];
static uint8_t exporter2[PRD_AUTH_EXPORTER_LEN];
static uint8_t challenge1[PRD_CHALLENGE_MIN];

#define T0 ((prd_tstamp)1000 * PRD_NS_PER_S)
#define DEADLINE (T0 + PRD_AUTH_DEFAULT_TIMEOUT_NS)

static void init_values(void) {
  size_t i;

  for (i = 0; i < sizeof(exporter1); ++i) {
    exporter1[i] = (uint8_t)i;
    exporter2[i] = (uint8_t)(0x40 + i);
  }
  for (i = 0; i < sizeof(challenge1); ++i) {
    challenge1[i] = (uint8_t)(0xa0 + i);
  }
}

/* Frame builders. */
static prd_frame mk_hello(uint64_t version, uint64_t flags) {
  prd_frame fr;
  memset(&fr, 0, sizeof(fr));
  fr.type = PRD_FRAME_HELLO;
  fr.u.hello.version = version;
  fr.u.hello.flags = flags;
  return fr;
}

static prd_frame mk_challenge(uint64_t version, const uint8_t *c, size_t clen) {
  prd_frame fr;
  memset(&fr, 0, sizeof(fr));
  fr.type = PRD_FRAME_AUTH_CHALLENGE;
  fr.u.challenge.version = version;
  fr.u.challenge.challengelen = clen;
  memcpy(fr.u.challenge.challenge, c, clen);
  return fr;
}

static prd_frame mk_response(const uint8_t *mac) {
  prd_frame fr;
  memset(&fr, 0, sizeof(fr));
  fr.type = PRD_FRAME_AUTH_RESPONSE;
  memcpy(fr.u.response.mac, mac, PRD_MAC_LEN);
  return fr;
}

static prd_frame mk_result(uint64_t status) {
  prd_frame fr;
  memset(&fr, 0, sizeof(fr));
  fr.type = PRD_FRAME_AUTH_RESULT;
  fr.u.result.status = status;
  return fr;
}

static prd_frame mk_goaway(uint64_t code) {
  prd_frame fr;
  memset(&fr, 0, sizeof(fr));
  fr.type = PRD_FRAME_GOAWAY;
  fr.u.goaway.error_code = code;
  return fr;
}

/* decode_all decodes every frame in |data| into |frs| (at most |max|) and
 * fails the test on trailing or malformed bytes. Returns the count. */
static size_t decode_all(prd_frame *frs, size_t max, const uint8_t *data,
                         size_t datalen) {
  size_t n = 0;
  size_t off = 0;
  prd_ssize rv;

  while (off < datalen) {
    assert_true(n < max);
    rv = prd_frame_decode_ex(&frs[n], data + off, datalen - off,
                             PRD_FLAG_SERVICES);
    assert_true(rv > 0);
    off += (size_t)rv;
    ++n;
  }
  return n;
}

/* The frames queued by |a| since |before| bytes were in its queue. */
static size_t new_frames(prd_frame *frs, size_t max, const prd_auth *a,
                         size_t before) {
  assert_true(a->outlen >= before);
  return decode_all(frs, max, a->out + before, a->outlen - before);
}

static void init_server(prd_auth *a) {
  assert_int_equal(prd_auth_init(a, PRD_AUTH_ROLE_SERVER, psk1, PSK1_LEN, 0),
                   0);
}

static void init_client(prd_auth *a, const uint8_t *psk, size_t psklen) {
  assert_int_equal(prd_auth_init(a, PRD_AUTH_ROLE_CLIENT, psk, psklen, 0), 0);
}

/* server_to brings a fresh server to |st| along the legal path (FAILED via
 * a frame out of order: PROTOCOL_ERROR). The output queue is emptied. */
static void server_to(prd_auth *a, prd_auth_state st) {
  prd_frame fr;

  init_server(a);
  if (st == PRD_AUTH_STATE_IDLE) {
    return;
  }
  assert_int_equal(prd_auth_start(a, exporter1, challenge1, T0), 0);
  if (st == PRD_AUTH_STATE_FAILED) {
    fr = mk_goaway(0);
    assert_int_equal(prd_auth_on_frame(a, &fr, T0), PRD_ERR_AUTH_STATE);
  }
  if (st != PRD_AUTH_STATE_WAIT_HELLO && st != PRD_AUTH_STATE_FAILED) {
    fr = mk_hello(1, 0);
    assert_int_equal(prd_auth_on_frame(a, &fr, T0), 0);
    if (st != PRD_AUTH_STATE_WAIT_RESPONSE) {
      fr = mk_response(mac1);
      assert_int_equal(prd_auth_on_frame(a, &fr, T0), 0);
    }
  }
  assert_int_equal(a->state, st);
  prd_auth_out_consume(a, a->outlen);
}

static void client_to(prd_auth *a, prd_auth_state st) {
  prd_frame fr;

  init_client(a, psk1, PSK1_LEN);
  if (st == PRD_AUTH_STATE_IDLE) {
    return;
  }
  assert_int_equal(prd_auth_start(a, exporter1, NULL, T0), 0);
  if (st == PRD_AUTH_STATE_FAILED) {
    fr = mk_goaway(0);
    assert_int_equal(prd_auth_on_frame(a, &fr, T0), PRD_ERR_AUTH_STATE);
  }
  if (st != PRD_AUTH_STATE_WAIT_CHALLENGE && st != PRD_AUTH_STATE_FAILED) {
    fr = mk_challenge(1, challenge1, sizeof(challenge1));
    assert_int_equal(prd_auth_on_frame(a, &fr, T0), 0);
    if (st != PRD_AUTH_STATE_WAIT_RESULT) {
      fr = mk_result(0);
      assert_int_equal(prd_auth_on_frame(a, &fr, T0), 0);
    }
  }
  assert_int_equal(a->state, st);
  prd_auth_out_consume(a, a->outlen);
}

static int setup_group(void **state) {
  (void)state;
  init_values();
  return 0;
}

/* ------------------------------------------------------------------ */

/* spec/03-auth.md §7: the PSK is 1..1024 bytes (longer is refused);
 * §5: the deadline defaults to 5 s. */
static void test_auth_init_args(void **state) {
  static uint8_t big[PRD_AUTH_PSK_MAX + 1];
  prd_auth a;

  (void)state;
  memset(big, 'k', sizeof(big));
  assert_int_equal(prd_auth_init(&a, PRD_AUTH_ROLE_SERVER, psk1, 0, 0),
                   PRD_ERR_INVAL);
  assert_int_equal(prd_auth_init(&a, PRD_AUTH_ROLE_SERVER, NULL, 4, 0),
                   PRD_ERR_INVAL);
  assert_int_equal(prd_auth_init(&a, PRD_AUTH_ROLE_SERVER, big, sizeof(big), 0),
                   PRD_ERR_INVAL);
  assert_int_equal(prd_auth_init(&a, (prd_auth_role)7, psk1, PSK1_LEN, 0),
                   PRD_ERR_INVAL);
  assert_int_equal(prd_auth_init(NULL, PRD_AUTH_ROLE_SERVER, psk1, PSK1_LEN, 0),
                   PRD_ERR_INVAL);
  assert_int_equal(
      prd_auth_init(&a, PRD_AUTH_ROLE_CLIENT, big, PRD_AUTH_PSK_MAX, 0), 0);
  assert_int_equal(a.psklen, PRD_AUTH_PSK_MAX);
  assert_int_equal(prd_auth_init(&a, PRD_AUTH_ROLE_SERVER, psk1, PSK1_LEN, 0),
                   0);
  assert_int_equal(a.state, PRD_AUTH_STATE_IDLE);
  assert_int_equal(a.role, PRD_AUTH_ROLE_SERVER);
  assert_int_equal(a.timeout_ns, 5 * PRD_NS_PER_S);
  assert_int_equal(a.outlen, 0);
  assert_memory_equal(a.psk, psk1, PSK1_LEN);
  assert_int_equal(prd_auth_init(&a, PRD_AUTH_ROLE_SERVER, psk1, PSK1_LEN, 7),
                   0);
  assert_int_equal(a.timeout_ns, 7);
  prd_auth_free(&a);
}

/* spec/03-auth.md §3: every auth-mac vector, and its message layout. */
/* prd_auth_fail: the caller's way into FAILED; the first failure stands
 * and every later call returns its error. */
static void test_auth_fail_external(void **state) {
  prd_auth a;
  prd_frame fr;

  (void)state;
  assert_int_equal(prd_auth_init(&a, PRD_AUTH_ROLE_SERVER, psk1, PSK1_LEN, 0),
                   0);
  assert_int_equal(
      prd_auth_fail(&a, PRD_ERR_FRAME_TOO_LARGE, PRD_APP_PROTOCOL_ERROR),
      PRD_ERR_FRAME_TOO_LARGE);
  assert_int_equal(a.state, PRD_AUTH_STATE_FAILED);
  assert_int_equal(a.fail_err, PRD_ERR_FRAME_TOO_LARGE);
  assert_int_equal(a.close_code, PRD_APP_PROTOCOL_ERROR);
  assert_int_equal(
      prd_auth_fail(&a, PRD_ERR_AUTH_STATE, PRD_APP_INTERNAL_ERROR),
      PRD_ERR_FRAME_TOO_LARGE);
  assert_int_equal(a.close_code, PRD_APP_PROTOCOL_ERROR);
  memset(&fr, 0, sizeof(fr));
  fr.type = PRD_FRAME_GOAWAY;
  assert_int_equal(prd_auth_on_frame(&a, &fr, 0), PRD_ERR_FRAME_TOO_LARGE);
  assert_int_equal(a.outlen, 0);
  prd_auth_free(&a);
}

/* spec/03-auth.md §3: every auth-mac vector, named or not. */
static void test_auth_mac_vectors(void **state) {
  prd_tv_file vf;
  size_t i;
  size_t n = 0;
  size_t named = 0;

  (void)state;
  assert_int_equal(prd_tv_load(&vf, "auth.txt"), 0);
  for (i = 0; i < vf.nblocks; ++i) {
    const prd_tv_block *b = &vf.blocks[i];
    uint8_t psk[PRD_AUTH_PSK_MAX];
    uint8_t exp[64];
    uint8_t chal[128];
    uint8_t msg[256];
    uint8_t want[64];
    uint8_t got[PRD_MAC_LEN];
    size_t psklen;
    size_t explen;
    size_t challen;
    size_t msglen;
    size_t wantlen;
    const char *cname;
    size_t cnamelen;

    if (!prd_tv_is_kind(b, "auth-mac")) {
      continue;
    }
    assert_int_equal(prd_tv_get_hex(b, "psk", psk, sizeof(psk), &psklen), 0);
    assert_int_equal(prd_tv_get_hex(b, "exporter", exp, sizeof(exp), &explen),
                     0);
    assert_int_equal(explen, PRD_AUTH_EXPORTER_LEN);
    assert_int_equal(
        prd_tv_get_hex(b, "challenge", chal, sizeof(chal), &challen), 0);
    assert_int_equal(prd_tv_get_hex(b, "message", msg, sizeof(msg), &msglen),
                     0);
    assert_int_equal(prd_tv_get_hex(b, "mac", want, sizeof(want), &wantlen), 0);
    assert_int_equal(wantlen, PRD_MAC_LEN);
    /* message = "portredirect-auth-v1" || exporter || challenge, and with a
     * client name NameLen || Name (spec/03-auth.md §3) */
    cname = prd_tv_get(b, "client-name");
    cnamelen = cname ? strlen(cname) : 0;
    assert_int_equal(msglen,
                     20 + explen + challen + (cname ? 1 + cnamelen : 0));
    assert_memory_equal(msg, PRD_AUTH_MAC_LABEL, 20);
    assert_memory_equal(msg + 20, exp, explen);
    assert_memory_equal(msg + 20 + explen, chal, challen);
    if (cname != NULL) {
      assert_true(prd_client_name_valid(cname, cnamelen));
      assert_int_equal(msg[20 + explen + challen], cnamelen);
      assert_memory_equal(msg + 21 + explen + challen, cname, cnamelen);
      ++named;
    }
    memset(got, 0, sizeof(got));
    assert_int_equal(prd_auth_compute_mac_named(got, psk, psklen, exp, chal,
                                                challen, cname, cnamelen),
                     0);
    if (cname == NULL) {
      uint8_t got2[PRD_MAC_LEN];

      assert_int_equal(
          prd_auth_compute_mac(got2, psk, psklen, exp, chal, challen), 0);
      assert_memory_equal(got, got2, PRD_MAC_LEN);
    }
    if (memcmp(got, want, PRD_MAC_LEN) != 0) {
      print_error("vector %s (line %zu): MAC differs\n", prd_tv_name(b),
                  b->line);
      fail();
    }
    ++n;
  }
  assert_true(n >= 3);
  assert_true(named >= 3);
  prd_tv_free(&vf);
}

/* hex_to decodes the hex string |hex| into |dest|; returns the length. */
static size_t hex_to(uint8_t *dest, size_t destlen, const char *hex) {
  size_t n = 0;
  unsigned v;

  while (hex[0] != '\0' && hex[1] != '\0') {
    assert_true(n < destlen);
    assert_int_equal(sscanf(hex, "%2x", &v), 1);
    dest[n++] = (uint8_t)v;
    hex += 2;
  }
  return n;
}

/* spec/03-auth.md §3 worked example and the control-stream bytes of §4,
 * produced by a client and a server machine. */
static void test_auth_spec_worked_example(void **state) {
  uint8_t e[PRD_AUTH_EXPORTER_LEN];
  uint8_t chal[PRD_CHALLENGE_MIN];
  uint8_t want[64];
  size_t wantlen;
  prd_auth srv;
  prd_auth cli;
  prd_frame_reader rd;
  prd_frame fr;
  int ready;

  (void)state;
  assert_int_equal(hex_to(e, sizeof(e),
                          "51079ace4b199b7b243c32d2c106fb4a"
                          "f72fee4fea5e5ec9aead348809fdba69"),
                   32);
  assert_int_equal(hex_to(chal, sizeof(chal),
                          "202122232425262728292a2b2c2d2e2f"
                          "303132333435363738393a3b3c3d3e3f"),
                   32);
  init_server(&srv);
  init_client(&cli, psk1, PSK1_LEN);
  /* The worked example is that of a client without named services
   * (spec/02-framing.md §3.1: HELLO Flags 0, AUTH_RESULT without Flags). */
  assert_int_equal(prd_auth_set_features(&cli, 0), 0);
  assert_int_equal(prd_auth_start(&srv, e, chal, T0), 0);
  assert_int_equal(prd_auth_start(&cli, e, NULL, T0), 0);

  /* client -> server: 01 02 01 00 */
  assert_int_equal(cli.outlen, 4);
  assert_memory_equal(cli.out, "\x01\x02\x01\x00", 4);
  assert_int_equal(prd_frame_decode(&fr, cli.out, cli.outlen), 4);
  prd_auth_out_consume(&cli, 4);
  assert_int_equal(prd_auth_on_frame(&srv, &fr, T0), 0);

  /* server -> client: 02 21 01 || challenge */
  wantlen = hex_to(want, sizeof(want),
                   "022101202122232425262728292a2b2c2d2e2f"
                   "303132333435363738393a3b3c3d3e3f");
  assert_int_equal(srv.outlen, wantlen);
  assert_memory_equal(srv.out, want, wantlen);
  prd_frame_reader_init(&rd);
  ready = 0;
  assert_int_equal(prd_frame_reader_feed(&rd, &fr, &ready, srv.out, srv.outlen),
                   (prd_ssize)wantlen);
  assert_true(ready);
  prd_auth_out_consume(&srv, srv.outlen);
  assert_int_equal(prd_auth_on_frame(&cli, &fr, T0), 0);

  /* client -> server: 03 20 || MAC */
  wantlen = hex_to(want, sizeof(want),
                   "03207f1fbc24a81788d82856d337c92b371e"
                   "ed563849a65a7f5e5e50b67f6e69d7a3");
  assert_int_equal(cli.outlen, wantlen);
  assert_memory_equal(cli.out, want, wantlen);
  assert_int_equal(prd_frame_decode(&fr, cli.out, cli.outlen),
                   (prd_ssize)wantlen);
  prd_auth_out_consume(&cli, wantlen);
  assert_int_equal(prd_auth_on_frame(&srv, &fr, T0), 0);

  /* server -> client: 04 01 00 */
  assert_int_equal(srv.outlen, 3);
  assert_memory_equal(srv.out, "\x04\x01\x00", 3);
  assert_int_equal(prd_frame_decode(&fr, srv.out, srv.outlen), 3);
  assert_int_equal(prd_auth_on_frame(&cli, &fr, T0), 0);
  assert_true(prd_auth_is_authenticated(&srv));
  assert_true(prd_auth_is_authenticated(&cli));
}

/* spec/03-auth.md §3: the challenge is 32..64 bytes; the PSK non-empty. */
static void test_auth_mac_rejects_bad_args(void **state) {
  uint8_t mac[PRD_MAC_LEN];
  uint8_t chal[PRD_CHALLENGE_MAX + 1];

  (void)state;
  memset(chal, 0x5a, sizeof(chal));
  assert_int_equal(prd_auth_compute_mac(mac, psk1, PSK1_LEN, exporter1, chal,
                                        PRD_CHALLENGE_MIN - 1),
                   PRD_ERR_INVAL);
  assert_int_equal(prd_auth_compute_mac(mac, psk1, PSK1_LEN, exporter1, chal,
                                        PRD_CHALLENGE_MAX + 1),
                   PRD_ERR_INVAL);
  assert_int_equal(prd_auth_compute_mac(mac, psk1, 0, exporter1, chal, 32),
                   PRD_ERR_INVAL);
  assert_int_equal(prd_auth_compute_mac(mac, NULL, 3, exporter1, chal, 32),
                   PRD_ERR_INVAL);
  assert_int_equal(prd_auth_compute_mac(mac, psk1, PSK1_LEN, NULL, chal, 32),
                   PRD_ERR_INVAL);
  assert_int_equal(
      prd_auth_compute_mac(mac, psk1, PSK1_LEN, exporter1, chal, 64), 0);
  assert_int_equal(
      prd_auth_compute_mac(mac, psk1, PSK1_LEN, exporter1, challenge1, 32), 0);
  assert_memory_equal(mac, mac1, PRD_MAC_LEN);
}

/* Looks up the encoding of frame vector |name| in frames.txt. */
static size_t frame_vector(uint8_t *dest, size_t destlen, const char *name) {
  prd_tv_file vf;
  const prd_tv_block *b;
  size_t len = 0;

  assert_int_equal(prd_tv_load(&vf, "frames.txt"), 0);
  b = prd_tv_find(&vf, name);
  assert_non_null(b);
  assert_int_equal(prd_tv_get_hex(b, "encoded", dest, destlen, &len), 0);
  prd_tv_free(&vf);
  return len;
}

/* spec/03-auth.md §4, spec/07-state-machines.md §1: the server's legal
 * path, with the bytes it queues checked against spec/test-vectors. */
static void test_auth_server_exchange(void **state) {
  prd_auth a;
  prd_frame fr;
  uint8_t chal[PRD_CHALLENGE_MIN];
  uint8_t want[PRD_FRAME_MAX_LEN];
  size_t wantlen;

  (void)state;
  init_server(&a);
  memcpy(chal, challenge1, sizeof(chal));
  assert_int_equal(prd_auth_start(&a, exporter1, chal, T0), 0);
  memset(chal, 0, sizeof(chal)); /* start copied it */
  assert_int_equal(a.state, PRD_AUTH_STATE_WAIT_HELLO);
  assert_int_equal(a.outlen, 0); /* the client speaks first */
  assert_int_equal(a.deadline, DEADLINE);

  fr = mk_hello(1, 0);
  assert_int_equal(prd_auth_on_frame(&a, &fr, T0 + 1), 0);
  assert_int_equal(a.state, PRD_AUTH_STATE_WAIT_RESPONSE);
  wantlen = frame_vector(want, sizeof(want), "auth-challenge-32");
  assert_int_equal(a.outlen, wantlen);
  assert_memory_equal(a.out, want, wantlen);
  prd_auth_out_consume(&a, a.outlen);

  fr = mk_response(mac1);
  assert_int_equal(prd_auth_on_frame(&a, &fr, DEADLINE - 1), 0);
  assert_int_equal(a.state, PRD_AUTH_STATE_AUTHENTICATED);
  assert_true(prd_auth_is_authenticated(&a));
  wantlen = frame_vector(want, sizeof(want), "auth-result-success");
  assert_int_equal(a.outlen, wantlen);
  assert_memory_equal(a.out, want, wantlen);
  assert_int_equal(a.peer_goaway, 0);
  prd_auth_free(&a);
}

/* spec/03-auth.md §4: HELLO.Version is the client's highest version; the
 * server selects 1 and ignores unknown flag bits. */
static void test_auth_server_selects_version_1(void **state) {
  prd_auth a;
  prd_frame fr;
  prd_frame out[4];

  (void)state;
  server_to(&a, PRD_AUTH_STATE_WAIT_HELLO);
  fr = mk_hello(300, PRD_VARINT_MAX);
  assert_int_equal(prd_auth_on_frame(&a, &fr, T0), 0);
  assert_int_equal(new_frames(out, 4, &a, 0), 1);
  assert_int_equal(out[0].type, PRD_FRAME_AUTH_CHALLENGE);
  assert_int_equal(out[0].u.challenge.version, 1);
  assert_int_equal(out[0].u.challenge.challengelen, PRD_CHALLENGE_MIN);
  assert_memory_equal(out[0].u.challenge.challenge, challenge1,
                      PRD_CHALLENGE_MIN);
  assert_int_equal(a.state, PRD_AUTH_STATE_WAIT_RESPONSE);
}

/* spec/03-auth.md §6: a client whose highest version is below 1 gets
 * VERSION_MISMATCH; the server queues nothing. */
static void test_auth_server_version_mismatch(void **state) {
  prd_auth a;
  prd_frame fr;

  (void)state;
  server_to(&a, PRD_AUTH_STATE_WAIT_HELLO);
  fr = mk_hello(0, 0);
  assert_int_equal(prd_auth_on_frame(&a, &fr, T0), PRD_ERR_VERSION);
  assert_int_equal(a.state, PRD_AUTH_STATE_FAILED);
  assert_int_equal(a.close_code, PRD_APP_VERSION_MISMATCH);
  assert_int_equal(a.outlen, 0);
}

/* spec/03-auth.md §6: a wrong PSK gives AUTH_RESULT(AUTH_FAILED) and
 * close code AUTH_FAILED. */
static void test_auth_server_wrong_psk(void **state) {
  prd_auth a;
  prd_frame fr;
  prd_frame out[4];
  uint8_t mac[PRD_MAC_LEN];
  uint8_t want[PRD_FRAME_MAX_LEN];
  size_t wantlen;

  (void)state;
  server_to(&a, PRD_AUTH_STATE_WAIT_RESPONSE);
  assert_int_equal(prd_auth_compute_mac(mac, psk2, PSK2_LEN, exporter1,
                                        challenge1, sizeof(challenge1)),
                   0);
  fr = mk_response(mac);
  assert_int_equal(prd_auth_on_frame(&a, &fr, T0), PRD_ERR_AUTH_FAILED);
  assert_int_equal(a.state, PRD_AUTH_STATE_FAILED);
  assert_int_equal(a.close_code, PRD_APP_AUTH_FAILED);
  assert_false(prd_auth_is_authenticated(&a));
  assert_int_equal(new_frames(out, 4, &a, 0), 1);
  assert_int_equal(out[0].type, PRD_FRAME_AUTH_RESULT);
  assert_int_equal(out[0].u.result.status, PRD_APP_AUTH_FAILED);
  wantlen = frame_vector(want, sizeof(want), "auth-result-auth-failed");
  assert_int_equal(a.outlen, wantlen);
  assert_memory_equal(a.out, want, wantlen);
}

/* spec/03-auth.md §3, §6: a response recorded on another TLS session (other
 * exporter, same PSK and challenge) is refused. */
static void test_auth_server_replayed_response(void **state) {
  prd_tv_file vf;
  const prd_tv_block *b;
  uint8_t exp[PRD_AUTH_EXPORTER_LEN];
  uint8_t mac[PRD_MAC_LEN];
  size_t len;
  prd_auth a;
  prd_frame fr;

  (void)state;
  /* The vector's MAC is valid for its own exporter... */
  assert_int_equal(prd_tv_load(&vf, "auth.txt"), 0);
  b = prd_tv_find(&vf, "mac-psk-ilovespezifisch-other-exporter");
  assert_non_null(b);
  assert_int_equal(prd_tv_get_hex(b, "exporter", exp, sizeof(exp), &len), 0);
  assert_int_equal(prd_tv_get_hex(b, "mac", mac, sizeof(mac), &len), 0);
  prd_tv_free(&vf);
  init_server(&a);
  assert_int_equal(prd_auth_start(&a, exp, challenge1, T0), 0);
  fr = mk_hello(1, 0);
  assert_int_equal(prd_auth_on_frame(&a, &fr, T0), 0);
  fr = mk_response(mac);
  assert_int_equal(prd_auth_on_frame(&a, &fr, T0), 0);
  assert_true(prd_auth_is_authenticated(&a));

  /* ...and worthless on this session (exporter 00..1f). */
  server_to(&a, PRD_AUTH_STATE_WAIT_RESPONSE);
  fr = mk_response(mac);
  assert_int_equal(prd_auth_on_frame(&a, &fr, T0), PRD_ERR_AUTH_FAILED);
  assert_int_equal(a.close_code, PRD_APP_AUTH_FAILED);
}

/* spec/03-auth.md §4: every single-bit change of the MAC is refused (the
 * whole MAC is compared, not a prefix). */
static void test_auth_server_mac_bit_flips(void **state) {
  prd_auth a;
  prd_frame fr;
  uint8_t mac[PRD_MAC_LEN];
  unsigned bit;

  (void)state;
  for (bit = 0; bit < PRD_MAC_LEN * 8; ++bit) {
    server_to(&a, PRD_AUTH_STATE_WAIT_RESPONSE);
    memcpy(mac, mac1, sizeof(mac));
    mac[bit / 8] ^= (uint8_t)(1u << (bit % 8));
    fr = mk_response(mac);
    assert_int_equal(prd_auth_on_frame(&a, &fr, T0), PRD_ERR_AUTH_FAILED);
  }
}

/* spec/03-auth.md §5: the deadline through prd_auth_on_timer, in both
 * waiting states; it does not apply once authenticated. */
static void test_auth_server_timeout_timer(void **state) {
  static const prd_auth_state waits[] = {PRD_AUTH_STATE_WAIT_HELLO,
                                         PRD_AUTH_STATE_WAIT_RESPONSE};
  prd_auth a;
  prd_frame fr;
  size_t i;

  (void)state;
  for (i = 0; i < 2; ++i) {
    server_to(&a, waits[i]);
    assert_int_equal(prd_auth_on_timer(&a, T0), 0);
    assert_int_equal(prd_auth_on_timer(&a, DEADLINE - 1), 0);
    assert_int_equal(a.state, waits[i]);
    assert_int_equal(prd_auth_on_timer(&a, DEADLINE), PRD_ERR_AUTH_TIMEOUT);
    assert_int_equal(a.state, PRD_AUTH_STATE_FAILED);
    assert_int_equal(a.close_code, PRD_APP_AUTH_TIMEOUT);
    assert_int_equal(a.outlen, 0);
    /* The valid next frame no longer helps. */
    fr = i == 0 ? mk_hello(1, 0) : mk_response(mac1);
    assert_int_equal(prd_auth_on_frame(&a, &fr, T0), PRD_ERR_AUTH_TIMEOUT);
    assert_int_equal(a.outlen, 0);
    assert_int_equal(prd_auth_on_timer(&a, DEADLINE), PRD_ERR_AUTH_TIMEOUT);
  }
  /* A configured timeout. */
  assert_int_equal(prd_auth_init(&a, PRD_AUTH_ROLE_SERVER, psk1, PSK1_LEN, 250),
                   0);
  assert_int_equal(prd_auth_on_timer(&a, UINT64_MAX), 0); /* not armed */
  assert_int_equal(prd_auth_start(&a, exporter1, challenge1, T0), 0);
  assert_int_equal(prd_auth_on_timer(&a, T0 + 249), 0);
  assert_int_equal(prd_auth_on_timer(&a, T0 + 250), PRD_ERR_AUTH_TIMEOUT);
  /* Authenticated: no deadline any more. */
  server_to(&a, PRD_AUTH_STATE_AUTHENTICATED);
  assert_int_equal(prd_auth_on_timer(&a, UINT64_MAX), 0);
  assert_int_equal(a.state, PRD_AUTH_STATE_AUTHENTICATED);
  fr = mk_goaway(PRD_APP_SHUTTING_DOWN);
  assert_int_equal(prd_auth_on_frame(&a, &fr, UINT64_MAX), 0);
  /* The client keeps no deadline. */
  client_to(&a, PRD_AUTH_STATE_WAIT_CHALLENGE);
  assert_int_equal(prd_auth_on_timer(&a, UINT64_MAX), 0);
  assert_int_equal(a.state, PRD_AUTH_STATE_WAIT_CHALLENGE);
}

/* spec/03-auth.md §5: a frame that arrives at or after the deadline fails
 * with AUTH_TIMEOUT, even a correct AUTH_RESPONSE (no AUTH_RESULT). */
static void test_auth_server_timeout_late_frame(void **state) {
  prd_auth a;
  prd_frame fr;

  (void)state;
  server_to(&a, PRD_AUTH_STATE_WAIT_HELLO);
  fr = mk_hello(1, 0);
  assert_int_equal(prd_auth_on_frame(&a, &fr, DEADLINE), PRD_ERR_AUTH_TIMEOUT);
  assert_int_equal(a.close_code, PRD_APP_AUTH_TIMEOUT);
  assert_int_equal(a.outlen, 0);

  server_to(&a, PRD_AUTH_STATE_WAIT_RESPONSE);
  fr = mk_response(mac1);
  assert_int_equal(prd_auth_on_frame(&a, &fr, DEADLINE + PRD_NS_PER_S),
                   PRD_ERR_AUTH_TIMEOUT);
  assert_int_equal(a.state, PRD_AUTH_STATE_FAILED);
  assert_int_equal(a.close_code, PRD_APP_AUTH_TIMEOUT);
  assert_int_equal(a.outlen, 0);

  /* A late frame that is also out of order: the deadline wins. */
  server_to(&a, PRD_AUTH_STATE_WAIT_HELLO);
  fr = mk_goaway(0);
  assert_int_equal(prd_auth_on_frame(&a, &fr, DEADLINE), PRD_ERR_AUTH_TIMEOUT);
}

/* spec/03-auth.md §5: a start near the end of the clock saturates the
 * deadline instead of wrapping around. */
static void test_auth_server_deadline_saturates(void **state) {
  prd_auth a;

  (void)state;
  init_server(&a);
  assert_int_equal(prd_auth_start(&a, exporter1, challenge1, UINT64_MAX - 5),
                   0);
  assert_int_equal(a.deadline, UINT64_MAX);
  assert_int_equal(prd_auth_on_timer(&a, UINT64_MAX - 1), 0);
}

/* spec/07-state-machines.md §1, §2: start is legal only in IDLE and needs
 * its inputs; a refused start changes nothing. */
static void test_auth_start_rules(void **state) {
  prd_auth a;
  prd_frame out[2];

  (void)state;
  init_server(&a);
  assert_int_equal(prd_auth_start(&a, exporter1, NULL, T0), PRD_ERR_INVAL);
  assert_int_equal(prd_auth_start(&a, NULL, challenge1, T0), PRD_ERR_INVAL);
  assert_int_equal(a.state, PRD_AUTH_STATE_IDLE);
  assert_int_equal(prd_auth_start(&a, exporter1, challenge1, T0), 0);
  assert_int_equal(prd_auth_start(&a, exporter1, challenge1, T0),
                   PRD_ERR_AUTH_STATE);
  assert_int_equal(a.state, PRD_AUTH_STATE_WAIT_HELLO);
  assert_int_equal(prd_auth_on_frame(&a, NULL, T0), PRD_ERR_INVAL);
  assert_int_equal(a.state, PRD_AUTH_STATE_WAIT_HELLO);

  /* Client: HELLO{1, 1} queued (spec/02-framing.md §3.1: bit 0, we do
   * named services), exactly the hello-v1-services vector. */
  init_client(&a, psk1, PSK1_LEN);
  assert_int_equal(prd_auth_start(&a, exporter1, NULL, T0), 0);
  assert_int_equal(a.state, PRD_AUTH_STATE_WAIT_CHALLENGE);
  assert_int_equal(new_frames(out, 2, &a, 0), 1);
  assert_int_equal(out[0].type, PRD_FRAME_HELLO);
  assert_int_equal(out[0].u.hello.version, 1);
  assert_int_equal(out[0].u.hello.flags, PRD_FLAG_SERVICES);
  assert_int_equal(a.outlen, 4);
  assert_memory_equal(a.out, "\x01\x02\x01\x01", 4);
  /* Features only in IDLE. */
  assert_int_equal(prd_auth_set_features(&a, 0), PRD_ERR_AUTH_STATE);
  assert_int_equal(prd_auth_start(&a, exporter1, NULL, T0), PRD_ERR_AUTH_STATE);
  assert_int_equal(a.outlen, 4); /* no second HELLO */
}

/* spec/03-auth.md §4, spec/07-state-machines.md §2: the client's legal
 * path; its AUTH_RESPONSE is the auth-response vector. */
static void test_auth_client_exchange(void **state) {
  prd_auth a;
  prd_frame fr;
  uint8_t want[PRD_FRAME_MAX_LEN];
  size_t wantlen;

  (void)state;
  client_to(&a, PRD_AUTH_STATE_WAIT_CHALLENGE);
  fr = mk_challenge(1, challenge1, sizeof(challenge1));
  assert_int_equal(prd_auth_on_frame(&a, &fr, T0), 0);
  assert_int_equal(a.state, PRD_AUTH_STATE_WAIT_RESULT);
  wantlen = frame_vector(want, sizeof(want), "auth-response");
  assert_int_equal(a.outlen, wantlen);
  assert_memory_equal(a.out, want, wantlen);
  assert_memory_equal(a.out + 2, mac1, PRD_MAC_LEN);
  prd_auth_out_consume(&a, a.outlen);
  fr = mk_result(0);
  assert_int_equal(prd_auth_on_frame(&a, &fr, T0), 0);
  assert_true(prd_auth_is_authenticated(&a));
  assert_int_equal(a.outlen, 0);
}

/* spec/03-auth.md §3: the client answers challenges of every allowed
 * length, checked against the 64-byte vector. */
static void test_auth_client_challenge_lengths(void **state) {
  prd_tv_file vf;
  const prd_tv_block *b;
  uint8_t psk[64];
  uint8_t exp[PRD_AUTH_EXPORTER_LEN];
  uint8_t chal[PRD_CHALLENGE_MAX + 1];
  uint8_t mac[PRD_MAC_LEN];
  size_t psklen;
  size_t len;
  size_t challen;
  prd_auth a;
  prd_frame fr;
  prd_frame out[2];

  (void)state;
  assert_int_equal(prd_tv_load(&vf, "auth.txt"), 0);
  b = prd_tv_find(&vf, "mac-psk-32-bytes-challenge-64");
  assert_non_null(b);
  assert_int_equal(prd_tv_get_hex(b, "psk", psk, sizeof(psk), &psklen), 0);
  assert_int_equal(prd_tv_get_hex(b, "exporter", exp, sizeof(exp), &len), 0);
  assert_int_equal(prd_tv_get_hex(b, "challenge", chal, sizeof(chal), &challen),
                   0);
  assert_int_equal(challen, 64);
  assert_int_equal(prd_tv_get_hex(b, "mac", mac, sizeof(mac), &len), 0);
  prd_tv_free(&vf);

  init_client(&a, psk, psklen);
  assert_int_equal(prd_auth_start(&a, exp, NULL, T0), 0);
  prd_auth_out_consume(&a, a.outlen);
  fr = mk_challenge(1, chal, challen);
  assert_int_equal(prd_auth_on_frame(&a, &fr, T0), 0);
  assert_int_equal(new_frames(out, 2, &a, 0), 1);
  assert_int_equal(out[0].type, PRD_FRAME_AUTH_RESPONSE);
  assert_memory_equal(out[0].u.response.mac, mac, PRD_MAC_LEN);

  /* Out of range (a frame the codec would not produce): PROTOCOL_ERROR. */
  client_to(&a, PRD_AUTH_STATE_WAIT_CHALLENGE);
  fr = mk_challenge(1, chal, PRD_CHALLENGE_MIN);
  fr.u.challenge.challengelen = PRD_CHALLENGE_MIN - 1;
  assert_int_equal(prd_auth_on_frame(&a, &fr, T0), PRD_ERR_AUTH_STATE);
  assert_int_equal(a.close_code, PRD_APP_PROTOCOL_ERROR);
  assert_int_equal(a.outlen, 0);
  client_to(&a, PRD_AUTH_STATE_WAIT_CHALLENGE);
  fr = mk_challenge(1, chal, PRD_CHALLENGE_MAX);
  fr.u.challenge.challengelen = PRD_CHALLENGE_MAX + 1;
  assert_int_equal(prd_auth_on_frame(&a, &fr, T0), PRD_ERR_AUTH_STATE);
  assert_int_equal(a.outlen, 0);
}

/* spec/03-auth.md §6: a challenge for another version is VERSION_MISMATCH
 * and gets no response. */
static void test_auth_client_version_mismatch(void **state) {
  static const uint64_t versions[] = {0, 2, 300, PRD_VARINT_MAX};
  prd_auth a;
  prd_frame fr;
  size_t i;

  (void)state;
  for (i = 0; i < sizeof(versions) / sizeof(versions[0]); ++i) {
    client_to(&a, PRD_AUTH_STATE_WAIT_CHALLENGE);
    fr = mk_challenge(versions[i], challenge1, sizeof(challenge1));
    assert_int_equal(prd_auth_on_frame(&a, &fr, T0), PRD_ERR_VERSION);
    assert_int_equal(a.state, PRD_AUTH_STATE_FAILED);
    assert_int_equal(a.close_code, PRD_APP_VERSION_MISMATCH);
    assert_int_equal(a.outlen, 0);
  }
}

/* spec/03-auth.md §6: a non-zero AUTH_RESULT fails the client with that
 * status as close code; every later call returns the same error even when
 * the status looks like another error's code. */
static void test_auth_client_result_failure(void **state) {
  static const uint64_t statuses[] = {PRD_APP_AUTH_FAILED, PRD_APP_AUTH_TIMEOUT,
                                      PRD_APP_VERSION_MISMATCH, 0x1234};
  prd_auth a;
  prd_frame fr;
  size_t i;

  (void)state;
  for (i = 0; i < sizeof(statuses) / sizeof(statuses[0]); ++i) {
    client_to(&a, PRD_AUTH_STATE_WAIT_RESULT);
    fr = mk_result(statuses[i]);
    assert_int_equal(prd_auth_on_frame(&a, &fr, T0), PRD_ERR_AUTH_FAILED);
    assert_int_equal(a.state, PRD_AUTH_STATE_FAILED);
    assert_int_equal(a.close_code, statuses[i]);
    fr = mk_result(0);
    assert_int_equal(prd_auth_on_frame(&a, &fr, T0), PRD_ERR_AUTH_FAILED);
    assert_int_equal(prd_auth_on_timer(&a, T0), PRD_ERR_AUTH_FAILED);
    assert_int_equal(prd_auth_queue_goaway(&a, 0), PRD_ERR_AUTH_FAILED);
    assert_int_equal(prd_auth_start(&a, exporter1, NULL, T0),
                     PRD_ERR_AUTH_FAILED);
    assert_int_equal(a.close_code, statuses[i]);
    assert_int_equal(a.outlen, 0);
  }
}

/* The frame kinds of the transition tables. */
typedef enum ev_kind {
  EV_HELLO_V1,
  EV_HELLO_V0,
  EV_CHALLENGE_V1,
  EV_CHALLENGE_V2,
  EV_RESPONSE_GOOD,
  EV_RESPONSE_BAD,
  EV_RESULT_OK,
  EV_RESULT_FAIL,
  EV_GOAWAY,
  EV_UNKNOWN_TYPE,
  EV_COUNT
} ev_kind;

static const char *const ev_names[EV_COUNT] = {
    "HELLO(1)",          "HELLO(0)",         "AUTH_CHALLENGE(1)",
    "AUTH_CHALLENGE(2)", "AUTH_RESPONSE ok", "AUTH_RESPONSE bad",
    "AUTH_RESULT(0)",    "AUTH_RESULT(4)",   "GOAWAY",
    "type 0x06"};

static prd_frame mk_event(ev_kind ev) {
  uint8_t bad[PRD_MAC_LEN];
  prd_frame fr;

  switch (ev) {
  case EV_HELLO_V1:
    return mk_hello(1, 0);
  case EV_HELLO_V0:
    return mk_hello(0, 0);
  case EV_CHALLENGE_V1:
    return mk_challenge(1, challenge1, sizeof(challenge1));
  case EV_CHALLENGE_V2:
    return mk_challenge(2, challenge1, sizeof(challenge1));
  case EV_RESPONSE_GOOD:
    return mk_response(mac1);
  case EV_RESPONSE_BAD:
    memcpy(bad, mac1, sizeof(bad));
    bad[31] ^= 1;
    return mk_response(bad);
  case EV_RESULT_OK:
    return mk_result(0);
  case EV_RESULT_FAIL:
    return mk_result(PRD_APP_AUTH_FAILED);
  case EV_GOAWAY:
    return mk_goaway(PRD_APP_SHUTTING_DOWN);
  default:
    memset(&fr, 0, sizeof(fr));
    fr.type = 0x06;
    return fr;
  }
}

typedef struct transition {
  prd_auth_state from;
  ev_kind ev;
  int rv;
  prd_auth_state to;
  uint64_t close_code; /* checked when |to| is FAILED */
  uint64_t out_type;   /* frame queued by the transition, 0 = none */
  uint64_t out_status; /* AUTH_RESULT status when out_type is RESULT */
} transition;

/* The listed transitions; every other state × frame pair must fail with
 * PRD_ERR_AUTH_STATE / PROTOCOL_ERROR and queue nothing, and FAILED
 * absorbs everything (spec/07-state-machines.md). */
static const transition server_table[] = {
    {PRD_AUTH_STATE_WAIT_HELLO, EV_HELLO_V1, 0, PRD_AUTH_STATE_WAIT_RESPONSE, 0,
     PRD_FRAME_AUTH_CHALLENGE, 0},
    {PRD_AUTH_STATE_WAIT_HELLO, EV_HELLO_V0, PRD_ERR_VERSION,
     PRD_AUTH_STATE_FAILED, PRD_APP_VERSION_MISMATCH, 0, 0},
    {PRD_AUTH_STATE_WAIT_RESPONSE, EV_RESPONSE_GOOD, 0,
     PRD_AUTH_STATE_AUTHENTICATED, 0, PRD_FRAME_AUTH_RESULT, 0},
    {PRD_AUTH_STATE_WAIT_RESPONSE, EV_RESPONSE_BAD, PRD_ERR_AUTH_FAILED,
     PRD_AUTH_STATE_FAILED, PRD_APP_AUTH_FAILED, PRD_FRAME_AUTH_RESULT,
     PRD_APP_AUTH_FAILED},
    {PRD_AUTH_STATE_AUTHENTICATED, EV_GOAWAY, 0, PRD_AUTH_STATE_AUTHENTICATED,
     0, 0, 0},
};

static const transition client_table[] = {
    {PRD_AUTH_STATE_WAIT_CHALLENGE, EV_CHALLENGE_V1, 0,
     PRD_AUTH_STATE_WAIT_RESULT, 0, PRD_FRAME_AUTH_RESPONSE, 0},
    {PRD_AUTH_STATE_WAIT_CHALLENGE, EV_CHALLENGE_V2, PRD_ERR_VERSION,
     PRD_AUTH_STATE_FAILED, PRD_APP_VERSION_MISMATCH, 0, 0},
    {PRD_AUTH_STATE_WAIT_RESULT, EV_RESULT_OK, 0, PRD_AUTH_STATE_AUTHENTICATED,
     0, 0, 0},
    {PRD_AUTH_STATE_WAIT_RESULT, EV_RESULT_FAIL, PRD_ERR_AUTH_FAILED,
     PRD_AUTH_STATE_FAILED, PRD_APP_AUTH_FAILED, 0, 0},
    {PRD_AUTH_STATE_AUTHENTICATED, EV_GOAWAY, 0, PRD_AUTH_STATE_AUTHENTICATED,
     0, 0, 0},
};

static void run_table(prd_auth_role role, const prd_auth_state *states,
                      size_t nstates, const transition *table, size_t ntable) {
  size_t si;
  size_t ri;
  int ev;
  size_t checked = 0;

  for (si = 0; si < nstates; ++si) {
    for (ev = 0; ev < EV_COUNT; ++ev) {
      transition want = {states[si],
                         (ev_kind)ev,
                         PRD_ERR_AUTH_STATE,
                         PRD_AUTH_STATE_FAILED,
                         PRD_APP_PROTOCOL_ERROR,
                         0,
                         0};
      prd_auth a;
      prd_frame fr = mk_event((ev_kind)ev);
      prd_frame out[4];
      size_t nout;
      int rv;

      for (ri = 0; ri < ntable; ++ri) {
        if (table[ri].from == states[si] && table[ri].ev == (ev_kind)ev) {
          want = table[ri];
        }
      }
      if (role == PRD_AUTH_ROLE_SERVER) {
        server_to(&a, states[si]);
      } else {
        client_to(&a, states[si]);
      }
      rv = prd_auth_on_frame(&a, &fr, T0 + 1);
      nout = new_frames(out, 4, &a, 0);
      if (rv != want.rv || a.state != want.to ||
          (want.to == PRD_AUTH_STATE_FAILED &&
           a.close_code != want.close_code) ||
          nout != (want.out_type ? 1u : 0u) ||
          (nout == 1 && out[0].type != want.out_type) ||
          (nout == 1 && out[0].type == PRD_FRAME_AUTH_RESULT &&
           out[0].u.result.status != want.out_status)) {
        print_error("%s in %s on %s: rv %d (want %d), state %s (want %s), "
                    "close %llu (want %llu), %zu frame(s) queued\n",
                    role == PRD_AUTH_ROLE_SERVER ? "server" : "client",
                    prd_auth_state_name(states[si]), ev_names[ev], rv, want.rv,
                    prd_auth_state_name(a.state), prd_auth_state_name(want.to),
                    (unsigned long long)a.close_code,
                    (unsigned long long)want.close_code, nout);
        fail();
      }
      if (a.state == PRD_AUTH_STATE_FAILED) {
        assert_int_equal(a.fail_err, rv);
      }
      ++checked;
    }
  }
  assert_int_equal(checked, nstates * EV_COUNT);
}

/* spec/07-state-machines.md §1: every server state × every frame type. */
static void test_auth_server_table(void **state) {
  static const prd_auth_state states[] = {
      PRD_AUTH_STATE_IDLE, PRD_AUTH_STATE_WAIT_HELLO,
      PRD_AUTH_STATE_WAIT_RESPONSE, PRD_AUTH_STATE_AUTHENTICATED,
      PRD_AUTH_STATE_FAILED};

  (void)state;
  run_table(PRD_AUTH_ROLE_SERVER, states, 5, server_table,
            sizeof(server_table) / sizeof(server_table[0]));
}

/* spec/07-state-machines.md §2: every client state × every frame type. */
static void test_auth_client_table(void **state) {
  static const prd_auth_state states[] = {
      PRD_AUTH_STATE_IDLE, PRD_AUTH_STATE_WAIT_CHALLENGE,
      PRD_AUTH_STATE_WAIT_RESULT, PRD_AUTH_STATE_AUTHENTICATED,
      PRD_AUTH_STATE_FAILED};

  (void)state;
  run_table(PRD_AUTH_ROLE_CLIENT, states, 5, client_table,
            sizeof(client_table) / sizeof(client_table[0]));
}

/* spec/03-auth.md §6: FAILED is final. Whatever failed it, every later call
 * returns the same error, keeps the close code and queues nothing; the
 * AUTH_RESULT that caused it stays queued for sending. */
static void test_auth_failed_is_final(void **state) {
  prd_auth a;
  prd_frame fr;
  size_t outlen;
  int ev;
  int round;

  (void)state;
  for (round = 0; round < 4; ++round) {
    int err;
    uint64_t code;

    server_to(&a, round < 2 ? PRD_AUTH_STATE_WAIT_RESPONSE
                            : PRD_AUTH_STATE_WAIT_HELLO);
    if (round == 0) {
      fr = mk_event(EV_RESPONSE_BAD);
      err = prd_auth_on_frame(&a, &fr, T0);
    } else if (round == 1) {
      err = prd_auth_on_timer(&a, DEADLINE);
    } else if (round == 2) {
      fr = mk_hello(0, 0);
      err = prd_auth_on_frame(&a, &fr, T0);
    } else {
      fr = mk_response(mac1);
      err = prd_auth_on_frame(&a, &fr, T0);
    }
    assert_true(err < 0);
    code = a.close_code;
    outlen = a.outlen;
    assert_int_equal(outlen, round == 0 ? 3u : 0u);
    for (ev = 0; ev < EV_COUNT; ++ev) {
      fr = mk_event((ev_kind)ev);
      assert_int_equal(prd_auth_on_frame(&a, &fr, T0), err);
      assert_int_equal(prd_auth_on_frame(&a, &fr, UINT64_MAX), err);
    }
    assert_int_equal(prd_auth_on_timer(&a, T0), err);
    assert_int_equal(prd_auth_on_timer(&a, UINT64_MAX), err);
    assert_int_equal(prd_auth_queue_goaway(&a, 0), err);
    assert_int_equal(prd_auth_start(&a, exporter1, challenge1, T0), err);
    assert_int_equal(a.state, PRD_AUTH_STATE_FAILED);
    assert_int_equal(a.close_code, code);
    assert_int_equal(a.outlen, outlen);
    assert_false(prd_auth_is_authenticated(&a));
  }
}

/* spec/03-auth.md §4 (GOAWAY after AUTHENTICATED): queued only when
 * authenticated; a received GOAWAY is recorded. */
static void test_auth_goaway(void **state) {
  static prd_frame out[PRD_AUTH_OUT_MAX / 3 + 1];
  prd_auth a;
  prd_frame fr;
  size_t n;
  size_t i;
  int rv;

  (void)state;
  server_to(&a, PRD_AUTH_STATE_WAIT_HELLO);
  assert_int_equal(prd_auth_queue_goaway(&a, 0), PRD_ERR_AUTH_STATE);
  assert_int_equal(a.state, PRD_AUTH_STATE_WAIT_HELLO); /* local misuse */
  client_to(&a, PRD_AUTH_STATE_WAIT_RESULT);
  assert_int_equal(prd_auth_queue_goaway(&a, 0), PRD_ERR_AUTH_STATE);
  assert_int_equal(a.outlen, 0);

  server_to(&a, PRD_AUTH_STATE_AUTHENTICATED);
  assert_int_equal(prd_auth_queue_goaway(&a, PRD_APP_SHUTTING_DOWN), 0);
  assert_int_equal(a.outlen, 3);
  assert_memory_equal(a.out, "\x05\x01\x06", 3);
  assert_int_equal(prd_auth_queue_goaway(&a, PRD_VARINT_MAX + 1),
                   PRD_ERR_INVAL);
  assert_int_equal(a.outlen, 3);
  /* Fill the queue: NOBUF, and what was queued stays intact. */
  for (i = 0;; ++i) {
    rv = prd_auth_queue_goaway(&a, 0x1234);
    if (rv != 0) {
      break;
    }
  }
  assert_int_equal(rv, PRD_ERR_NOBUF);
  assert_true(a.outlen > PRD_AUTH_OUT_MAX - 4);
  n = new_frames(out, sizeof(out) / sizeof(out[0]), &a, 0);
  assert_int_equal(n, i + 1);
  assert_int_equal(out[0].u.goaway.error_code, PRD_APP_SHUTTING_DOWN);
  assert_int_equal(out[n - 1].u.goaway.error_code, 0x1234);
  assert_int_equal(a.state, PRD_AUTH_STATE_AUTHENTICATED);

  /* Received. */
  client_to(&a, PRD_AUTH_STATE_AUTHENTICATED);
  assert_int_equal(a.peer_goaway, 0);
  fr = mk_goaway(PRD_APP_SHUTTING_DOWN);
  assert_int_equal(prd_auth_on_frame(&a, &fr, T0), 0);
  assert_int_equal(a.peer_goaway, 1);
  assert_int_equal(a.goaway_code, PRD_APP_SHUTTING_DOWN);
  fr = mk_goaway(PRD_APP_NO_ERROR);
  assert_int_equal(prd_auth_on_frame(&a, &fr, T0), 0);
  assert_int_equal(a.goaway_code, PRD_APP_NO_ERROR);
  assert_int_equal(a.outlen, 0);
  assert_true(prd_auth_is_authenticated(&a));
}

/* spec/03-auth.md §4: frames leave on stream 0 in the order queued; the
 * output queue keeps that order across partial consumption. */
static void test_auth_out_consume(void **state) {
  prd_auth a;
  prd_frame out[4];

  (void)state;
  server_to(&a, PRD_AUTH_STATE_AUTHENTICATED);
  assert_int_equal(prd_auth_queue_goaway(&a, 1), 0);
  assert_int_equal(prd_auth_queue_goaway(&a, 2), 0);
  assert_int_equal(a.outlen, 6);
  prd_auth_out_consume(&a, 1);
  assert_int_equal(a.outlen, 5);
  assert_memory_equal(a.out, "\x01\x01\x05\x01\x02", 5);
  prd_auth_out_consume(&a, 2);
  assert_int_equal(new_frames(out, 4, &a, 0), 1);
  assert_int_equal(out[0].u.goaway.error_code, 2);
  prd_auth_out_consume(&a, 100);
  assert_int_equal(a.outlen, 0);
  prd_auth_out_consume(&a, 1);
  assert_int_equal(a.outlen, 0);
}

/* pump moves every queued byte of |from| into |to| through a frame reader,
 * |chunk| bytes at a time, feeding each complete frame to |to|. Returns the
 * first error of |to|, else 0. */
static int pump(prd_auth *from, prd_frame_reader *rd, prd_auth *to,
                size_t chunk, prd_tstamp now) {
  uint8_t buf[PRD_AUTH_OUT_MAX];
  size_t len = from->outlen;
  size_t off = 0;

  memcpy(buf, from->out, len);
  prd_auth_out_consume(from, len);
  while (off < len) {
    size_t n = len - off < chunk ? len - off : chunk;
    size_t used = 0;

    while (used < n) {
      prd_frame fr;
      int ready = 0;
      prd_ssize rv;

      /* The reader's features as src/quic/ctrl.c sets them (codec.h). */
      if (to->role == PRD_AUTH_ROLE_CLIENT) {
        prd_frame_reader_set_features(rd, prd_auth_is_authenticated(to)
                                              ? to->negotiated
                                              : to->hello_flags);
      } else {
        prd_frame_reader_set_features(rd, to->hello_flags & to->features);
      }
      rv = prd_frame_reader_feed(rd, &fr, &ready, buf + off + used, n - used);

      assert_true(rv >= 0);
      used += (size_t)rv;
      if (ready) {
        int err = prd_auth_on_frame(to, &fr, now);
        if (err != 0) {
          return err;
        }
      }
      if (rv == 0 && !ready) {
        break;
      }
    }
    off += n;
  }
  return 0;
}

typedef struct pair_result {
  int server_rv;
  int client_rv;
} pair_result;

/* run_pair runs a client and a server through their byte queues until
 * neither has anything to send. */
static pair_result run_pair(prd_auth *srv, prd_auth *cli, size_t chunk,
                            const uint8_t *srv_exporter,
                            const uint8_t *cli_exporter) {
  prd_frame_reader to_srv;
  prd_frame_reader to_cli;
  pair_result res = {0, 0};
  int rounds = 0;

  prd_frame_reader_init(&to_srv);
  prd_frame_reader_init(&to_cli);
  assert_int_equal(prd_auth_start(srv, srv_exporter, challenge1, T0), 0);
  assert_int_equal(prd_auth_start(cli, cli_exporter, NULL, T0), 0);
  while ((cli->outlen > 0 && res.server_rv == 0) ||
         (srv->outlen > 0 && res.client_rv == 0)) {
    assert_true(++rounds < 10);
    if (res.server_rv == 0) {
      res.server_rv = pump(cli, &to_srv, srv, chunk, T0 + 10);
    } else {
      prd_auth_out_consume(cli, cli->outlen);
    }
    if (res.client_rv == 0) {
      res.client_rv = pump(srv, &to_cli, cli, chunk, T0 + 10);
    } else {
      prd_auth_out_consume(srv, srv->outlen);
    }
  }
  return res;
}

/* spec/03-auth.md §4: a whole exchange through the byte queues and the
 * frame reader, byte by byte and in larger pieces, then GOAWAY both ways;
 * a wrong PSK and a relayed session (different exporters) fail on both
 * sides with AUTH_FAILED. */
static void test_auth_full_exchange(void **state) {
  static const size_t chunks[] = {1, 2, 3, 7, PRD_AUTH_OUT_MAX};
  prd_auth srv;
  prd_auth cli;
  pair_result r;
  size_t i;

  (void)state;
  for (i = 0; i < sizeof(chunks) / sizeof(chunks[0]); ++i) {
    init_server(&srv);
    init_client(&cli, psk1, PSK1_LEN);
    r = run_pair(&srv, &cli, chunks[i], exporter1, exporter1);
    assert_int_equal(r.server_rv, 0);
    assert_int_equal(r.client_rv, 0);
    assert_true(prd_auth_is_authenticated(&srv));
    assert_true(prd_auth_is_authenticated(&cli));
    /* Drain in either direction. */
    {
      prd_frame_reader rd;
      prd_frame_reader_init(&rd);
      assert_int_equal(prd_auth_queue_goaway(&srv, PRD_APP_SHUTTING_DOWN), 0);
      assert_int_equal(pump(&srv, &rd, &cli, chunks[i], T0), 0);
      assert_int_equal(cli.peer_goaway, 1);
      assert_int_equal(cli.goaway_code, PRD_APP_SHUTTING_DOWN);
      prd_frame_reader_init(&rd);
      assert_int_equal(prd_auth_queue_goaway(&cli, PRD_APP_NO_ERROR), 0);
      assert_int_equal(pump(&cli, &rd, &srv, chunks[i], T0), 0);
      assert_int_equal(srv.peer_goaway, 1);
    }
    prd_auth_free(&srv);
    prd_auth_free(&cli);
  }

  /* Wrong PSK. */
  init_server(&srv);
  init_client(&cli, psk2, PSK2_LEN);
  r = run_pair(&srv, &cli, 1, exporter1, exporter1);
  assert_int_equal(r.server_rv, PRD_ERR_AUTH_FAILED);
  assert_int_equal(srv.close_code, PRD_APP_AUTH_FAILED);
  assert_int_equal(r.client_rv, PRD_ERR_AUTH_FAILED);
  assert_int_equal(cli.close_code, PRD_APP_AUTH_FAILED);
  assert_int_equal(srv.outlen, 0);
  assert_int_equal(cli.outlen, 0);

  /* Right PSK, but the two ends are on different TLS sessions (a relay in
   * the middle): the exporters differ. */
  init_server(&srv);
  init_client(&cli, psk1, PSK1_LEN);
  r = run_pair(&srv, &cli, 5, exporter1, exporter2);
  assert_int_equal(r.server_rv, PRD_ERR_AUTH_FAILED);
  assert_int_equal(r.client_rv, PRD_ERR_AUTH_FAILED);
  assert_false(prd_auth_is_authenticated(&srv));
  assert_false(prd_auth_is_authenticated(&cli));
}

/* ---- named services: HELLO/AUTH_RESULT Flags, SERVICES, SERVICE_REFUSED
 * (spec/02-framing.md §3.1, §3.4, §3.7, §3.8; spec/07-state-machines.md
 * §1, §2). */

static prd_frame mk_result_flags(uint64_t status, uint64_t flags) {
  prd_frame fr = mk_result(status);
  fr.u.result.has_flags = 1;
  fr.u.result.flags = flags;
  return fr;
}

static prd_frame mk_services(const char *const *names, size_t n) {
  prd_frame fr;
  size_t i;
  memset(&fr, 0, sizeof(fr));
  fr.type = PRD_FRAME_SERVICES;
  for (i = 0; i < n; ++i) {
    assert_int_equal(prd_services_add(&fr, names[i], strlen(names[i])), 0);
  }
  return fr;
}

static prd_frame mk_refused(uint64_t code, const char *name) {
  prd_frame fr;
  memset(&fr, 0, sizeof(fr));
  fr.type = PRD_FRAME_SERVICE_REFUSED;
  fr.u.refused.error_code = code;
  fr.u.refused.namelen = strlen(name);
  memcpy(fr.u.refused.name, name, strlen(name));
  return fr;
}

/* srv_flags_to brings a server that got HELLO Flags |flags| to
 * WAIT_RESPONSE, then sends it an AUTH_RESPONSE with |mac|; returns the
 * result of that call. The AUTH_RESULT stays queued. */
static int srv_flags_to_result(prd_auth *a, uint64_t features, uint64_t flags,
                               const uint8_t *mac) {
  prd_frame fr;
  init_server(a);
  assert_int_equal(prd_auth_set_features(a, features), 0);
  assert_int_equal(prd_auth_start(a, exporter1, challenge1, T0), 0);
  fr = mk_hello(1, flags);
  assert_int_equal(prd_auth_on_frame(a, &fr, T0), 0);
  prd_auth_out_consume(a, a->outlen);
  fr = mk_response(mac);
  return prd_auth_on_frame(a, &fr, T0);
}

/* spec/02-framing.md §3.4, spec/07-state-machines.md §1: the server answers
 * HELLO Flags in AUTH_RESULT, success or failure, only when they were not
 * 0, with only the bits offered that it implements. */
static void test_auth_server_result_flags(void **state) {
  static const uint8_t badmac[PRD_MAC_LEN] = {1};
  prd_auth a;

  (void)state;
  /* A client with named services: 04 02 00 01, negotiated. */
  assert_int_equal(srv_flags_to_result(&a, PRD_FLAG_SERVICES, 1, mac1), 0);
  assert_int_equal(a.outlen, 4);
  assert_memory_equal(a.out, "\x04\x02\x00\x01", 4);
  assert_true(prd_auth_services_negotiated(&a));
  assert_null(prd_auth_last_services(&a)); /* serves nothing yet */
  /* Failure: 04 02 04 01, and never negotiated. */
  assert_int_equal(srv_flags_to_result(&a, PRD_FLAG_SERVICES, 1, badmac),
                   PRD_ERR_AUTH_FAILED);
  assert_memory_equal(a.out, "\x04\x02\x04\x01", 4);
  assert_false(prd_auth_services_negotiated(&a));
  /* An old client (HELLO Flags 0): the bytes of the first text. */
  assert_int_equal(srv_flags_to_result(&a, PRD_FLAG_SERVICES, 0, mac1), 0);
  assert_int_equal(a.outlen, 3);
  assert_memory_equal(a.out, "\x04\x01\x00", 3);
  assert_false(prd_auth_services_negotiated(&a));
  assert_int_equal(srv_flags_to_result(&a, PRD_FLAG_SERVICES, 0, badmac),
                   PRD_ERR_AUTH_FAILED);
  assert_int_equal(a.outlen, 3);
  assert_memory_equal(a.out, "\x04\x01\x04", 3);
  /* Only unknown bits: ignored, answered with Flags 0 (04 02 00 00). */
  assert_int_equal(srv_flags_to_result(&a, PRD_FLAG_SERVICES, 0x18, mac1), 0);
  assert_memory_equal(a.out, "\x04\x02\x00\x00", 4);
  assert_false(prd_auth_services_negotiated(&a));
  assert_int_equal(srv_flags_to_result(&a, PRD_FLAG_SERVICES, 0x19, mac1), 0);
  assert_memory_equal(a.out, "\x04\x02\x00\x01", 4);
  assert_true(prd_auth_services_negotiated(&a));
  /* A server of the first text (features 0) never sends Flags. */
  assert_int_equal(srv_flags_to_result(&a, 0, 1, mac1), 0);
  assert_int_equal(a.outlen, 3);
  assert_memory_equal(a.out, "\x04\x01\x00", 3);
  assert_false(prd_auth_services_negotiated(&a));
  assert_int_equal(prd_auth_set_features(&a, 8), PRD_ERR_INVAL);
}

/* spec/02-framing.md §3.4, §3.7, spec/07-state-machines.md §2: the client
 * accepts AUTH_RESULT with or without Flags, checks them, and sends
 * SERVICES at once when negotiated. */
static void test_auth_client_result_flags(void **state) {
  static const char *const two[] = {"web", "ssh"};
  prd_auth a;
  prd_frame fr;
  prd_frame out[2];

  (void)state;
  /* Negotiated, nothing configured: SERVICES "default" (services-default). */
  client_to(&a, PRD_AUTH_STATE_WAIT_RESULT);
  fr = mk_result_flags(0, PRD_FLAG_SERVICES);
  assert_int_equal(prd_auth_on_frame(&a, &fr, T0), 0);
  assert_true(prd_auth_is_authenticated(&a));
  assert_true(prd_auth_services_negotiated(&a));
  assert_int_equal(a.outlen, 10);
  assert_memory_equal(a.out,
                      "\x06\x08\x07"
                      "default",
                      10);

  /* Negotiated with configured names: all of them, in order. */
  init_client(&a, psk1, PSK1_LEN);
  assert_int_equal(prd_auth_set_services(&a, two, 2), 0);
  assert_int_equal(prd_auth_start(&a, exporter1, NULL, T0), 0);
  fr = mk_challenge(1, challenge1, sizeof(challenge1));
  assert_int_equal(prd_auth_on_frame(&a, &fr, T0), 0);
  prd_auth_out_consume(&a, a.outlen);
  fr = mk_result_flags(0, PRD_FLAG_SERVICES);
  assert_int_equal(prd_auth_on_frame(&a, &fr, T0), 0);
  assert_int_equal(new_frames(out, 2, &a, 0), 1);
  assert_int_equal(out[0].type, PRD_FRAME_SERVICES);
  assert_int_equal(out[0].u.services.count, 2);
  assert_memory_equal(a.out, "\x06\x08\x03web\x03ssh", 10);

  /* An old server (no Flags), or Flags 0: authenticated, not negotiated,
   * nothing sent. */
  client_to(&a, PRD_AUTH_STATE_WAIT_RESULT);
  fr = mk_result(0);
  assert_int_equal(prd_auth_on_frame(&a, &fr, T0), 0);
  assert_true(prd_auth_is_authenticated(&a));
  assert_false(prd_auth_services_negotiated(&a));
  assert_int_equal(a.outlen, 0);
  client_to(&a, PRD_AUTH_STATE_WAIT_RESULT);
  fr = mk_result_flags(0, 0);
  assert_int_equal(prd_auth_on_frame(&a, &fr, T0), 0);
  assert_false(prd_auth_services_negotiated(&a));
  assert_int_equal(a.outlen, 0);

  /* A bit we did not send: PROTOCOL_ERROR. */
  client_to(&a, PRD_AUTH_STATE_WAIT_RESULT);
  fr = mk_result_flags(0, 3);
  assert_int_equal(prd_auth_on_frame(&a, &fr, T0), PRD_ERR_AUTH_STATE);
  assert_int_equal(a.close_code, PRD_APP_PROTOCOL_ERROR);
  assert_int_equal(a.outlen, 0);

  /* Failure with Flags: closes with the Status. */
  client_to(&a, PRD_AUTH_STATE_WAIT_RESULT);
  fr = mk_result_flags(PRD_APP_AUTH_FAILED, PRD_FLAG_SERVICES);
  assert_int_equal(prd_auth_on_frame(&a, &fr, T0), PRD_ERR_AUTH_FAILED);
  assert_int_equal(a.close_code, PRD_APP_AUTH_FAILED);
  assert_int_equal(a.outlen, 0);

  /* A client that sent HELLO Flags 0: any Flags is PROTOCOL_ERROR. */
  init_client(&a, psk1, PSK1_LEN);
  assert_int_equal(prd_auth_set_features(&a, 0), 0);
  assert_int_equal(prd_auth_start(&a, exporter1, NULL, T0), 0);
  assert_memory_equal(a.out, "\x01\x02\x01\x00", 4);
  fr = mk_challenge(1, challenge1, sizeof(challenge1));
  assert_int_equal(prd_auth_on_frame(&a, &fr, T0), 0);
  prd_auth_out_consume(&a, a.outlen);
  fr = mk_result_flags(0, 0);
  assert_int_equal(prd_auth_on_frame(&a, &fr, T0), PRD_ERR_AUTH_STATE);
  assert_int_equal(a.close_code, PRD_APP_PROTOCOL_ERROR);
}

/* spec/02-framing.md §3.7: a later SERVICES replaces the set. A reload
 * (README "Reload") queues one when authenticated with SERVICES
 * negotiated; before AUTH_RESULT the new set is the one sent then. */
static void test_auth_update_services(void **state) {
  static const char *const one[] = {"web"};
  static const char *const two[] = {"web", "ssh"};
  prd_auth a;
  prd_frame fr;

  (void)state;
  client_to(&a, PRD_AUTH_STATE_WAIT_RESULT);
  assert_int_equal(prd_auth_update_services(&a, two, 2), 0);
  assert_int_equal(a.outlen, 0); /* nothing before AUTH_RESULT */
  fr = mk_result_flags(0, PRD_FLAG_SERVICES);
  assert_int_equal(prd_auth_on_frame(&a, &fr, T0), 0);
  assert_memory_equal(a.out, "\x06\x08\x03web\x03ssh", 10);
  prd_auth_out_consume(&a, a.outlen);
  assert_int_equal(prd_auth_update_services(&a, one, 1), 0);
  assert_int_equal(a.outlen, 6);
  assert_memory_equal(a.out, "\x06\x04\x03web", 6);
  prd_auth_out_consume(&a, a.outlen);
  /* None: "default" alone. */
  assert_int_equal(prd_auth_update_services(&a, NULL, 0), 0);
  assert_memory_equal(a.out,
                      "\x06\x08\x07"
                      "default",
                      10);
  prd_auth_out_consume(&a, a.outlen);

  /* Not negotiated: stored, nothing sent. */
  client_to(&a, PRD_AUTH_STATE_WAIT_RESULT);
  fr = mk_result(0);
  assert_int_equal(prd_auth_on_frame(&a, &fr, T0), 0);
  assert_int_equal(prd_auth_update_services(&a, one, 1), 0);
  assert_int_equal(a.outlen, 0);
}

/* spec/02-framing.md §3.7: the client's names are checked when set. */
static void test_auth_set_services_rules(void **state) {
  static const char *const bad[] = {"ok", "no space"};
  static const char *const dup[] = {"a", "b", "a"};
  static const char *const empty[] = {""};
  static const char *names[17];
  static char buf[17][64];
  prd_auth a;
  size_t i;

  (void)state;
  init_client(&a, psk1, PSK1_LEN);
  assert_int_equal(prd_auth_set_services(&a, bad, 2), PRD_ERR_INVAL);
  assert_int_equal(prd_auth_set_services(&a, dup, 3), PRD_ERR_INVAL);
  assert_int_equal(prd_auth_set_services(&a, empty, 1), PRD_ERR_INVAL);
  assert_int_equal(prd_auth_set_services(&a, NULL, 1), PRD_ERR_INVAL);
  for (i = 0; i < 17; ++i) {
    snprintf(buf[i], sizeof(buf[i]), "%02zu%061d", i, 0);
    names[i] = buf[i];
  }
  assert_int_equal(prd_auth_set_services(&a, names, 16), 0); /* 1024 bytes */
  assert_int_equal(prd_auth_set_services(&a, names, 17), PRD_ERR_NOBUF);
  assert_int_equal(prd_auth_set_services(&a, NULL, 0), 0);
  init_server(&a);
  assert_int_equal(prd_auth_set_services(&a, bad, 1), PRD_ERR_INVAL);
  client_to(&a, PRD_AUTH_STATE_WAIT_CHALLENGE);
  assert_int_equal(prd_auth_set_services(&a, bad, 1), PRD_ERR_INVAL);
}

/* spec/07-state-machines.md §1: SERVICES in AUTHENTICATED where
 * negotiated, any number of times, each replacing the set; SERVICE_REFUSED
 * queued per refused name (spec/02-framing.md §3.8 example). */
static void test_auth_server_services(void **state) {
  static const char *const one[] = {"default", "web"};
  static const char *const two[] = {"ssh"};
  prd_auth a;
  prd_frame fr;
  const prd_frame *last;
  const char *name;
  size_t namelen, off = 0;

  (void)state;
  assert_int_equal(srv_flags_to_result(&a, PRD_FLAG_SERVICES, 1, mac1), 0);
  prd_auth_out_consume(&a, a.outlen);
  /* Refusals can be queued once negotiated. */
  assert_int_equal(
      prd_auth_queue_service_refused(&a, PRD_APP_UNKNOWN_SERVICE, "web", 3), 0);
  assert_memory_equal(a.out, "\x07\x05\x0b\x03web", 7);
  prd_auth_out_consume(&a, a.outlen);
  fr = mk_services(one, 2);
  assert_int_equal(prd_auth_on_frame(&a, &fr, T0), 0);
  assert_int_equal(a.outlen, 0);
  last = prd_auth_last_services(&a);
  assert_non_null(last);
  assert_int_equal(last->u.services.count, 2);
  fr = mk_services(two, 1);
  assert_int_equal(prd_auth_on_frame(&a, &fr, T0), 0);
  last = prd_auth_last_services(&a);
  assert_int_equal(last->u.services.count, 1);
  assert_int_equal(prd_services_next(last, &off, &name, &namelen), 1);
  assert_int_equal(namelen, 3);
  assert_memory_equal(name, "ssh", 3);
  assert_int_equal(prd_services_next(last, &off, &name, &namelen), 0);
  assert_int_equal(prd_auth_queue_service_refused(&a, 0x0b, "no space", 8),
                   PRD_ERR_INVAL);
  assert_int_equal(a.outlen, 0);
  /* A hand-made empty SERVICES frame: PROTOCOL_ERROR. */
  fr = mk_services(NULL, 0);
  assert_int_equal(prd_auth_on_frame(&a, &fr, T0), PRD_ERR_AUTH_STATE);
  assert_int_equal(a.close_code, PRD_APP_PROTOCOL_ERROR);

  /* SERVICE_REFUSED is the wrong direction. */
  assert_int_equal(srv_flags_to_result(&a, PRD_FLAG_SERVICES, 1, mac1), 0);
  fr = mk_refused(PRD_APP_UNKNOWN_SERVICE, "web");
  assert_int_equal(prd_auth_on_frame(&a, &fr, T0), PRD_ERR_AUTH_STATE);

  /* Not negotiated (old client): SERVICES is PROTOCOL_ERROR, and nothing
   * can be refused. */
  assert_int_equal(srv_flags_to_result(&a, PRD_FLAG_SERVICES, 0, mac1), 0);
  prd_auth_out_consume(&a, a.outlen);
  assert_int_equal(
      prd_auth_queue_service_refused(&a, PRD_APP_UNKNOWN_SERVICE, "web", 3),
      PRD_ERR_AUTH_STATE);
  fr = mk_services(one, 1);
  assert_int_equal(prd_auth_on_frame(&a, &fr, T0), PRD_ERR_AUTH_STATE);
  assert_int_equal(a.close_code, PRD_APP_PROTOCOL_ERROR);

  /* Before AUTHENTICATED: PROTOCOL_ERROR. */
  server_to(&a, PRD_AUTH_STATE_WAIT_RESPONSE);
  fr = mk_services(one, 1);
  assert_int_equal(prd_auth_on_frame(&a, &fr, T0), PRD_ERR_AUTH_STATE);
  assert_int_equal(a.close_code, PRD_APP_PROTOCOL_ERROR);
}

/* spec/07-state-machines.md §2: SERVICE_REFUSED in AUTHENTICATED where
 * negotiated, any code, the connection stays; elsewhere PROTOCOL_ERROR. */
static void test_auth_client_service_refused(void **state) {
  static const char *const one[] = {"default"};
  prd_auth a;
  prd_frame fr;

  (void)state;
  client_to(&a, PRD_AUTH_STATE_WAIT_RESULT);
  fr = mk_result_flags(0, PRD_FLAG_SERVICES);
  assert_int_equal(prd_auth_on_frame(&a, &fr, T0), 0);
  prd_auth_out_consume(&a, a.outlen);
  fr = mk_refused(PRD_APP_UNKNOWN_SERVICE, "web");
  assert_int_equal(prd_auth_on_frame(&a, &fr, T0), 0);
  fr = mk_refused(0x99, "other"); /* unknown code, undeclared name */
  assert_int_equal(prd_auth_on_frame(&a, &fr, T0), 0);
  assert_true(prd_auth_is_authenticated(&a));
  assert_int_equal(a.outlen, 0);
  assert_null(prd_auth_last_services(&a));
  /* SERVICES is the wrong direction. */
  fr = mk_services(one, 1);
  assert_int_equal(prd_auth_on_frame(&a, &fr, T0), PRD_ERR_AUTH_STATE);

  /* Not negotiated. */
  client_to(&a, PRD_AUTH_STATE_AUTHENTICATED);
  fr = mk_refused(PRD_APP_UNKNOWN_SERVICE, "web");
  assert_int_equal(prd_auth_on_frame(&a, &fr, T0), PRD_ERR_AUTH_STATE);
  assert_int_equal(a.close_code, PRD_APP_PROTOCOL_ERROR);
  /* Before AUTHENTICATED. */
  client_to(&a, PRD_AUTH_STATE_WAIT_RESULT);
  fr = mk_refused(PRD_APP_UNKNOWN_SERVICE, "web");
  assert_int_equal(prd_auth_on_frame(&a, &fr, T0), PRD_ERR_AUTH_STATE);
}

/* spec/02-framing.md §3.7: a whole exchange, byte by byte, new client and
 * new server, and each with a peer of the first text. */
static void test_auth_services_pairs(void **state) {
  static const size_t chunks[] = {1, PRD_AUTH_OUT_MAX};
  static const uint64_t feats[][2] = {{1, 1}, {0, 1}, {1, 0}, {0, 0}};
  prd_auth srv, cli;
  pair_result r;
  size_t i, j;

  (void)state;
  for (i = 0; i < 2; ++i) {
    for (j = 0; j < 4; ++j) {
      init_server(&srv);
      init_client(&cli, psk1, PSK1_LEN);
      assert_int_equal(prd_auth_set_features(&srv, feats[j][0]), 0);
      assert_int_equal(prd_auth_set_features(&cli, feats[j][1]), 0);
      r = run_pair(&srv, &cli, chunks[i], exporter1, exporter1);
      assert_int_equal(r.server_rv, 0);
      assert_int_equal(r.client_rv, 0);
      assert_true(prd_auth_is_authenticated(&srv));
      assert_true(prd_auth_is_authenticated(&cli));
      assert_int_equal(prd_auth_services_negotiated(&srv), j == 0);
      assert_int_equal(prd_auth_services_negotiated(&cli), j == 0);
      if (j == 0) {
        assert_non_null(prd_auth_last_services(&srv));
        assert_int_equal(prd_auth_last_services(&srv)->u.services.count, 1);
      } else {
        assert_null(prd_auth_last_services(&srv));
      }
      prd_auth_free(&srv);
      prd_auth_free(&cli);
    }
  }
}

/* spec/08-security.md §5: prd_auth_free wipes the PSK and the
 * exporter. */
/* A client table for the server (spec/03-auth.md §4.1): alice has psk1,
 * bob psk2, "default" psk1; "carol" is refused as not allowed here. */
static int names_calls;
static int test_key_fn(void *arg, uint8_t *psk, size_t *ppsklen,
                       const char *name, size_t namelen) {
  (void)arg;
  ++names_calls;
  if ((namelen == 5 && memcmp(name, "alice", 5) == 0) ||
      (namelen == 7 && memcmp(name, "default", 7) == 0)) {
    memcpy(psk, psk1, PSK1_LEN);
    *ppsklen = PSK1_LEN;
    return 0;
  }
  if (namelen == 3 && memcmp(name, "bob", 3) == 0) {
    memcpy(psk, psk2, PSK2_LEN);
    *ppsklen = PSK2_LEN;
    return 0;
  }
  if (namelen == 5 && memcmp(name, "carol", 5) == 0) {
    return PRD_ERR_CLIENT_NOT_ALLOWED;
  }
  return PRD_ERR_CLIENT_UNKNOWN;
}

/* named_pair runs a client named |name| (NULL: none) with |psk| against a
 * server with the table above and a stand-in key, through the frame
 * readers; returns the server's result and copies its output after
 * AUTH_CHALLENGE (AUTH_RESULT) to |res| (|*preslen| bytes). */
static int named_pair(prd_auth *srv, const char *name, const uint8_t *psk,
                      size_t psklen, uint8_t *res, size_t *preslen) {
  static const uint8_t dummy[32] = {0x42};
  prd_frame_reader to_srv;
  prd_frame_reader to_cli;
  prd_auth cli;
  int rv;

  assert_int_equal(
      prd_auth_init(srv, PRD_AUTH_ROLE_SERVER, dummy, sizeof(dummy), 0), 0);
  assert_int_equal(prd_auth_set_key_lookup(srv, test_key_fn, NULL), 0);
  init_client(&cli, psk, psklen);
  assert_int_equal(prd_auth_set_client_name(&cli, name), 0);
  prd_frame_reader_init(&to_srv);
  prd_frame_reader_init(&to_cli);
  assert_int_equal(prd_auth_start(srv, exporter1, challenge1, T0), 0);
  assert_int_equal(prd_auth_start(&cli, exporter1, NULL, T0), 0);
  /* HELLO: bit 1 only with a name (spec/02-framing.md §3.1). */
  assert_int_equal(cli.outlen, 4);
  assert_memory_equal(cli.out, name ? "\x01\x02\x01\x03" : "\x01\x02\x01\x01",
                      4);
  assert_int_equal(pump(&cli, &to_srv, srv, 1, T0 + 10), 0);
  assert_int_equal(pump(srv, &to_cli, &cli, 1, T0 + 10), 0);
  rv = pump(&cli, &to_srv, srv, 1, T0 + 10);
  *preslen = srv->outlen;
  memcpy(res, srv->out, srv->outlen);
  prd_auth_free(&cli);
  return rv;
}

/* spec/03-auth.md §3, §4.1, spec/02-framing.md §3.1, §3.3: a named client
 * authenticates with its own key and the server knows its name; a wrong
 * key, an unknown name and a name not allowed here get the same reply
 * (AUTH_RESULT 04 02 04 03) and the same close code, and the key table is
 * consulted once each time; a nameless client is "default". */
static void test_auth_client_names(void **state) {
  prd_auth srv;
  uint8_t res[64];
  size_t reslen = 0;
  uint8_t fail_res[64];
  size_t fail_reslen = 0;

  (void)state;
  names_calls = 0;
  assert_int_equal(named_pair(&srv, "alice", psk1, PSK1_LEN, res, &reslen), 0);
  assert_true(prd_auth_is_authenticated(&srv));
  assert_string_equal(srv.name, "alice");
  assert_int_equal(srv.key_err, 0);
  assert_int_equal(reslen, 4);
  assert_memory_equal(res, "\x04\x02\x00\x03", 4);
  assert_int_equal(names_calls, 1);
  prd_auth_free(&srv);

  assert_int_equal(named_pair(&srv, "bob", psk2, PSK2_LEN, res, &reslen), 0);
  assert_string_equal(srv.name, "bob");
  prd_auth_free(&srv);

  /* A wrong key: bob with alice's key. */
  assert_int_equal(
      named_pair(&srv, "bob", psk1, PSK1_LEN, fail_res, &fail_reslen),
      PRD_ERR_AUTH_FAILED);
  assert_int_equal(srv.close_code, PRD_APP_AUTH_FAILED);
  assert_int_equal(srv.key_err, 0);
  assert_int_equal(fail_reslen, 4);
  assert_memory_equal(fail_res, "\x04\x02\x04\x03", 4);
  prd_auth_free(&srv);

  /* An unknown name, and a known one not allowed: the same bytes. */
  names_calls = 0;
  assert_int_equal(named_pair(&srv, "mallory", psk1, PSK1_LEN, res, &reslen),
                   PRD_ERR_AUTH_FAILED);
  assert_int_equal(srv.close_code, PRD_APP_AUTH_FAILED);
  assert_int_equal(srv.key_err, PRD_ERR_CLIENT_UNKNOWN);
  assert_string_equal(srv.name, "mallory");
  assert_int_equal(reslen, fail_reslen);
  assert_memory_equal(res, fail_res, reslen);
  assert_int_equal(names_calls, 1);
  prd_auth_free(&srv);
  assert_int_equal(named_pair(&srv, "carol", psk1, PSK1_LEN, res, &reslen),
                   PRD_ERR_AUTH_FAILED);
  assert_int_equal(srv.key_err, PRD_ERR_CLIENT_NOT_ALLOWED);
  assert_memory_equal(res, fail_res, reslen);
  prd_auth_free(&srv);

  /* No name: "default" (its HELLO has Flags 1 only). */
  assert_int_equal(named_pair(&srv, NULL, psk1, PSK1_LEN, res, &reslen), 0);
  assert_string_equal(srv.name, "default");
  assert_memory_equal(res, "\x04\x02\x00\x01", 4);
  prd_auth_free(&srv);
}

/* spec/02-framing.md §3.3, spec/03-auth.md §4.1: a Name of valid length
 * that breaks the character rule fails like a wrong key (the key table is
 * not asked); a Name where HELLO had no CLIENT_NAME, or none where it had,
 * is a PROTOCOL_ERROR. Without a key table, the PSK of init is "default"'s
 * and every other name is unknown. */
static void test_auth_client_name_rules(void **state) {
  static const char *const bad[] = {"-x", ".x", "a b", "a/b", "\xc3\xa9"};
  prd_auth a;
  prd_frame fr;
  size_t i;
  uint8_t mac[PRD_MAC_LEN];

  (void)state;
  for (i = 0; i < sizeof(bad) / sizeof(bad[0]); ++i) {
    init_server(&a);
    assert_int_equal(prd_auth_set_key_lookup(&a, test_key_fn, NULL), 0);
    assert_int_equal(prd_auth_start(&a, exporter1, challenge1, T0), 0);
    fr = mk_hello(1, PRD_FLAG_CLIENT_NAME);
    assert_int_equal(prd_auth_on_frame(&a, &fr, T0), 0);
    prd_auth_out_consume(&a, a.outlen);
    fr = mk_response(mac1);
    fr.u.response.namelen = strlen(bad[i]);
    memcpy(fr.u.response.name, bad[i], fr.u.response.namelen);
    names_calls = 0;
    assert_int_equal(prd_auth_on_frame(&a, &fr, T0), PRD_ERR_AUTH_FAILED);
    assert_int_equal(a.close_code, PRD_APP_AUTH_FAILED);
    assert_int_equal(a.key_err, PRD_ERR_CLIENT_NAME);
    assert_int_equal(names_calls, 0);
    assert_memory_equal(a.out, "\x04\x02\x04\x02", 4);
    prd_auth_free(&a);
    assert_false(prd_client_name_valid(bad[i], strlen(bad[i])));
  }
  /* A Name without CLIENT_NAME in HELLO: out of order. */
  server_to(&a, PRD_AUTH_STATE_WAIT_RESPONSE);
  fr = mk_response(mac1);
  fr.u.response.namelen = 5;
  memcpy(fr.u.response.name, "alice", 5);
  assert_int_equal(prd_auth_on_frame(&a, &fr, T0), PRD_ERR_AUTH_STATE);
  assert_int_equal(a.close_code, PRD_APP_PROTOCOL_ERROR);
  prd_auth_free(&a);
  /* No Name although HELLO had CLIENT_NAME. */
  init_server(&a);
  assert_int_equal(prd_auth_start(&a, exporter1, challenge1, T0), 0);
  fr = mk_hello(1, PRD_FLAG_CLIENT_NAME);
  assert_int_equal(prd_auth_on_frame(&a, &fr, T0), 0);
  fr = mk_response(mac1);
  assert_int_equal(prd_auth_on_frame(&a, &fr, T0), PRD_ERR_AUTH_STATE);
  prd_auth_free(&a);
  /* No key table: "default" is the PSK of init, and "alice" unknown even
   * with the right MAC under that PSK. */
  init_server(&a);
  assert_int_equal(prd_auth_start(&a, exporter1, challenge1, T0), 0);
  fr = mk_hello(1, PRD_FLAG_CLIENT_NAME);
  assert_int_equal(prd_auth_on_frame(&a, &fr, T0), 0);
  assert_int_equal(prd_auth_compute_mac_named(mac, psk1, PSK1_LEN, exporter1,
                                              challenge1, sizeof(challenge1),
                                              "alice", 5),
                   0);
  fr = mk_response(mac);
  fr.u.response.namelen = 5;
  memcpy(fr.u.response.name, "alice", 5);
  assert_int_equal(prd_auth_on_frame(&a, &fr, T0), PRD_ERR_AUTH_FAILED);
  assert_int_equal(a.key_err, PRD_ERR_CLIENT_UNKNOWN);
  prd_auth_free(&a);
  init_server(&a);
  assert_int_equal(prd_auth_start(&a, exporter1, challenge1, T0), 0);
  fr = mk_hello(1, PRD_FLAG_CLIENT_NAME);
  assert_int_equal(prd_auth_on_frame(&a, &fr, T0), 0);
  assert_int_equal(prd_auth_compute_mac_named(mac, psk1, PSK1_LEN, exporter1,
                                              challenge1, sizeof(challenge1),
                                              "default", 7),
                   0);
  fr = mk_response(mac);
  fr.u.response.namelen = 7;
  memcpy(fr.u.response.name, "default", 7);
  assert_int_equal(prd_auth_on_frame(&a, &fr, T0), 0);
  assert_true(prd_auth_is_authenticated(&a));
  prd_auth_free(&a);
  /* Setters: roles, validity, state. */
  init_client(&a, psk1, PSK1_LEN);
  assert_int_equal(prd_auth_set_client_name(&a, "-bad"), PRD_ERR_INVAL);
  assert_int_equal(prd_auth_set_client_name(&a, ""), 0);
  assert_int_equal(a.namelen, 0);
  assert_int_equal(prd_auth_set_key_lookup(&a, test_key_fn, NULL),
                   PRD_ERR_INVAL);
  assert_int_equal(
      prd_auth_set_client_name(&a, "A123456789012345678901234567890123456789"
                                   "0123456789012345678901234"),
      PRD_ERR_INVAL); /* 65 bytes */
  prd_auth_free(&a);
  init_server(&a);
  assert_int_equal(prd_auth_set_client_name(&a, "alice"), PRD_ERR_INVAL);
  prd_auth_free(&a);
}

static void test_auth_free_wipes(void **state) {
  static const uint8_t zero[PRD_AUTH_PSK_MAX];
  prd_auth a;

  (void)state;
  server_to(&a, PRD_AUTH_STATE_WAIT_RESPONSE);
  assert_memory_not_equal(a.psk, zero, PSK1_LEN);
  prd_auth_free(&a);
  assert_memory_equal(a.psk, zero, sizeof(a.psk));
  assert_memory_equal(a.exporter, zero, sizeof(a.exporter));
  assert_memory_equal(a.challenge, zero, sizeof(a.challenge));
  assert_int_equal(a.psklen, 0);
  assert_int_equal(a.outlen, 0);
  prd_auth_free(&a);
  prd_auth_free(NULL);
}

/* spec/07-state-machines.md §1, §2: the state names used in logs. */
static void test_auth_state_names(void **state) {
  (void)state;
  assert_string_equal(prd_auth_state_name(PRD_AUTH_STATE_IDLE), "IDLE");
  assert_string_equal(prd_auth_state_name(PRD_AUTH_STATE_WAIT_HELLO),
                      "WAIT_HELLO");
  assert_string_equal(prd_auth_state_name(PRD_AUTH_STATE_WAIT_RESPONSE),
                      "WAIT_RESPONSE");
  assert_string_equal(prd_auth_state_name(PRD_AUTH_STATE_WAIT_CHALLENGE),
                      "WAIT_CHALLENGE");
  assert_string_equal(prd_auth_state_name(PRD_AUTH_STATE_WAIT_RESULT),
                      "WAIT_RESULT");
  assert_string_equal(prd_auth_state_name(PRD_AUTH_STATE_AUTHENTICATED),
                      "AUTHENTICATED");
  assert_string_equal(prd_auth_state_name(PRD_AUTH_STATE_FAILED), "FAILED");
  assert_string_equal(prd_auth_state_name((prd_auth_state)99), "UNKNOWN");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_auth_init_args),
      cmocka_unit_test(test_auth_server_result_flags),
      cmocka_unit_test(test_auth_client_result_flags),
      cmocka_unit_test(test_auth_set_services_rules),
      cmocka_unit_test(test_auth_update_services),
      cmocka_unit_test(test_auth_server_services),
      cmocka_unit_test(test_auth_client_service_refused),
      cmocka_unit_test(test_auth_services_pairs),
      cmocka_unit_test(test_auth_client_names),
      cmocka_unit_test(test_auth_client_name_rules),
      cmocka_unit_test(test_auth_fail_external),
      cmocka_unit_test(test_auth_mac_vectors),
      cmocka_unit_test(test_auth_mac_rejects_bad_args),
      cmocka_unit_test(test_auth_spec_worked_example),
      cmocka_unit_test(test_auth_server_exchange),
      cmocka_unit_test(test_auth_server_selects_version_1),
      cmocka_unit_test(test_auth_server_version_mismatch),
      cmocka_unit_test(test_auth_server_wrong_psk),
      cmocka_unit_test(test_auth_server_replayed_response),
      cmocka_unit_test(test_auth_server_mac_bit_flips),
      cmocka_unit_test(test_auth_server_timeout_timer),
      cmocka_unit_test(test_auth_server_timeout_late_frame),
      cmocka_unit_test(test_auth_server_deadline_saturates),
      cmocka_unit_test(test_auth_start_rules),
      cmocka_unit_test(test_auth_client_exchange),
      cmocka_unit_test(test_auth_client_challenge_lengths),
      cmocka_unit_test(test_auth_client_version_mismatch),
      cmocka_unit_test(test_auth_client_result_failure),
      cmocka_unit_test(test_auth_server_table),
      cmocka_unit_test(test_auth_client_table),
      cmocka_unit_test(test_auth_failed_is_final),
      cmocka_unit_test(test_auth_goaway),
      cmocka_unit_test(test_auth_out_consume),
      cmocka_unit_test(test_auth_full_exchange),
      cmocka_unit_test(test_auth_free_wipes),
      cmocka_unit_test(test_auth_state_names),
  };

  return cmocka_run_group_tests_name("auth", tests, setup_group, NULL);
}
