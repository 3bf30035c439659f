/* SPDX-License-Identifier: GPL-3.0-only */
/* libFuzzer harness: control-stream bytes and timing into both auth roles. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#include "auth/auth.h"
#include "codec/codec.h"

/* Input layout:
 *   byte 0   configuration:
 *              bit 0  the client uses another exporter (another TLS session)
 *              bit 1  the client uses another PSK
 *              bit 2  the server is not started (stays IDLE)
 *              bit 3  the client is not started
 *              bits 4-7  server timeout = (v + 1) * 500 ms
 *   then operations, each one byte |op| (op & 7 selects, op >> 3 = arg):
 *     0  the next byte n, then n bytes, into the server's frame reader
 *        (arbitrary bytes from a "client")
 *     1  the same to the client
 *     2  pump: the client's queued bytes to the server
 *     3  pump: the server's queued bytes to the client
 *     4  advance the clock by (arg >> 1) * 100 ms; if arg & 1, run both
 *        timers (else a frame may arrive late with no timer having fired)
 *     5  both sides try to queue GOAWAY(arg)
 *     6  drop arg bytes of both output queues (a lossy caller)
 *     7  call start again on both (must be refused)
 * The PSK, exporter and challenge are those of the test vector
 * mac-psk-ilovespezifisch, so that corpus seeds can carry a valid MAC.
 *
 * Invariants (abort on violation):
 *   - a negative return leaves the machine FAILED, and FAILED returns its
 *     one error forever: no transition out of FAILED, the close code never
 *     changes, and nothing is queued after FAILED (the AUTH_RESULT queued by
 *     the failing transition itself is allowed);
 *   - a server becomes AUTHENTICATED only from WAIT_RESPONSE, before the
 *     deadline, on an AUTH_RESPONSE whose MAC equals the HMAC computed here
 *     independently of src/auth (without a Name, or with the Name
 *     "default" and the named MAC of spec/03-auth.md §3: the server has no
 *     client table); a client only from WAIT_RESULT on AUTH_RESULT(0);
 *   - every byte queued decodes as the frame the transition calls for. */

static const uint8_t fz_psk[] = "ilovespezifisch";
static const uint8_t fz_psk_other[] = "ilovespezifischen";
#define FZ_T0 ((prd_tstamp)1000000 * PRD_NS_PER_S)

#define FZ_CHECK(cond)                                                         \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "fuzz_auth: invariant failed at line %d: %s\n",          \
              __LINE__, #cond);                                                \
      abort();                                                                 \
    }                                                                          \
  } while (0)

typedef struct fz_side {
  prd_auth a;
  prd_frame_reader rd;
  int reader_dead; /* the reader reported an error: frames are lost */
  uint8_t exporter[PRD_AUTH_EXPORTER_LEN];
  uint8_t expect_mac[PRD_MAC_LEN];   /* server: the only MAC it may accept */
  uint8_t expect_named[PRD_MAC_LEN]; /* the same, named "default" */
} fz_side;

typedef struct fz_ctx {
  fz_side srv;
  fz_side cli;
  uint8_t challenge[PRD_CHALLENGE_MIN];
  prd_tstamp now;
} fz_ctx;

/* Snapshot of a machine before a call. */
typedef struct fz_snap {
  prd_auth_state state;
  uint64_t close_code;
  int fail_err;
  size_t outlen;
} fz_snap;

static fz_snap fz_take(const prd_auth *a) {
  fz_snap s;
  s.state = a->state;
  s.close_code = a->close_code;
  s.fail_err = a->fail_err;
  s.outlen = a->outlen;
  return s;
}

/* fz_queued decodes the bytes queued since |before|; returns the number of
 * frames (0 or 1 are the only legal counts per call) and the first one. */
static size_t fz_queued(const prd_auth *a, size_t before, prd_frame *first) {
  size_t off = before;
  size_t n = 0;

  FZ_CHECK(a->outlen >= before && a->outlen <= PRD_AUTH_OUT_MAX);
  while (off < a->outlen) {
    prd_frame fr;
    /* The features of the connection: AUTH_RESULT may echo CLIENT_NAME,
     * AUTH_RESPONSE carries a Name, only where HELLO offered it (spec/02
     * §3.3, §3.4). */
    prd_ssize rv =
        prd_frame_decode_ex(&fr, a->out + off, a->outlen - off,
                            PRD_FLAG_SERVICES | (a->hello_flags & a->features));
    FZ_CHECK(rv > 0);
    if (n == 0) {
      *first = fr;
    }
    off += (size_t)rv;
    ++n;
  }
  return n;
}

/* fz_after_call checks the invariants common to every call. */
static void fz_after_call(const prd_auth *a, const fz_snap *b, int rv) {
  FZ_CHECK(a->state <= PRD_AUTH_STATE_FAILED);
  if (b->state == PRD_AUTH_STATE_FAILED) {
    FZ_CHECK(a->state == PRD_AUTH_STATE_FAILED);
    FZ_CHECK(rv == b->fail_err && rv < 0);
    FZ_CHECK(a->close_code == b->close_code);
    FZ_CHECK(a->fail_err == b->fail_err);
    FZ_CHECK(a->outlen == b->outlen);
  }
  if (a->state == PRD_AUTH_STATE_FAILED) {
    FZ_CHECK(rv < 0 && rv == a->fail_err);
  }
}

/* fz_response_ok: |fr| is the AUTH_RESPONSE the server may accept. */
static int fz_response_ok(const fz_ctx *c, const prd_frame *fr) {
  if (fr->u.response.namelen == 0) {
    return memcmp(fr->u.response.mac, c->srv.expect_mac, PRD_MAC_LEN) == 0;
  }
  return fr->u.response.namelen == 7 &&
         memcmp(fr->u.response.name, "default", 7) == 0 &&
         memcmp(fr->u.response.mac, c->srv.expect_named, PRD_MAC_LEN) == 0;
}

static void fz_server_frame(fz_ctx *c, const prd_frame *fr) {
  prd_auth *a = &c->srv.a;
  fz_snap b = fz_take(a);
  prd_frame out;
  size_t nout;
  int rv;

  rv = prd_auth_on_frame(a, fr, c->now);
  fz_after_call(a, &b, rv);
  FZ_CHECK(rv == 0 || a->state == PRD_AUTH_STATE_FAILED);
  if (b.state == PRD_AUTH_STATE_FAILED) {
    return;
  }
  nout = fz_queued(a, b.outlen, &out);
  if (a->state == PRD_AUTH_STATE_AUTHENTICATED &&
      b.state != PRD_AUTH_STATE_AUTHENTICATED) {
    /* The one way in: a correct MAC, in time. */
    FZ_CHECK(b.state == PRD_AUTH_STATE_WAIT_RESPONSE);
    FZ_CHECK(fr->type == PRD_FRAME_AUTH_RESPONSE);
    FZ_CHECK(fz_response_ok(c, fr));
    FZ_CHECK(c->now < a->deadline);
    FZ_CHECK(nout == 1 && out.type == PRD_FRAME_AUTH_RESULT &&
             out.u.result.status == 0);
  } else if (a->state == PRD_AUTH_STATE_WAIT_RESPONSE &&
             b.state == PRD_AUTH_STATE_WAIT_HELLO) {
    FZ_CHECK(fr->type == PRD_FRAME_HELLO && fr->u.hello.version >= 1);
    FZ_CHECK(nout == 1 && out.type == PRD_FRAME_AUTH_CHALLENGE);
    FZ_CHECK(out.u.challenge.version == 1);
    FZ_CHECK(out.u.challenge.challengelen == PRD_CHALLENGE_MIN);
    FZ_CHECK(memcmp(out.u.challenge.challenge, c->challenge,
                    PRD_CHALLENGE_MIN) == 0);
  } else if (a->state == PRD_AUTH_STATE_FAILED &&
             a->close_code == PRD_APP_AUTH_FAILED) {
    /* A wrong MAC: the AUTH_RESULT that caused FAILED, nothing else. */
    FZ_CHECK(b.state == PRD_AUTH_STATE_WAIT_RESPONSE);
    FZ_CHECK(fr->type == PRD_FRAME_AUTH_RESPONSE);
    FZ_CHECK(!fz_response_ok(c, fr));
    FZ_CHECK(nout == 1 && out.type == PRD_FRAME_AUTH_RESULT &&
             out.u.result.status == PRD_APP_AUTH_FAILED);
  } else {
    FZ_CHECK(nout == 0);
    FZ_CHECK(a->state == b.state || a->state == PRD_AUTH_STATE_FAILED);
  }
  if (a->state == PRD_AUTH_STATE_FAILED &&
      a->close_code == PRD_APP_AUTH_TIMEOUT) {
    FZ_CHECK(c->now >= a->deadline);
  }
  if (a->state == PRD_AUTH_STATE_AUTHENTICATED &&
      b.state == PRD_AUTH_STATE_AUTHENTICATED) {
    FZ_CHECK((fr->type == PRD_FRAME_GOAWAY && a->peer_goaway == 1 &&
              a->goaway_code == fr->u.goaway.error_code) ||
             (fr->type == PRD_FRAME_SERVICES &&
              prd_auth_services_negotiated(a) &&
              prd_auth_last_services(a) != NULL));
  }
}

static void fz_client_frame(fz_ctx *c, const prd_frame *fr) {
  prd_auth *a = &c->cli.a;
  fz_snap b = fz_take(a);
  prd_frame out;
  size_t nout;
  int rv;

  rv = prd_auth_on_frame(a, fr, c->now);
  fz_after_call(a, &b, rv);
  FZ_CHECK(rv == 0 || a->state == PRD_AUTH_STATE_FAILED);
  if (b.state == PRD_AUTH_STATE_FAILED) {
    return;
  }
  nout = fz_queued(a, b.outlen, &out);
  if (a->state == PRD_AUTH_STATE_WAIT_RESULT &&
      b.state == PRD_AUTH_STATE_WAIT_CHALLENGE) {
    uint8_t mac[PRD_MAC_LEN];
    FZ_CHECK(fr->type == PRD_FRAME_AUTH_CHALLENGE &&
             fr->u.challenge.version == 1);
    FZ_CHECK(nout == 1 && out.type == PRD_FRAME_AUTH_RESPONSE);
    FZ_CHECK(prd_auth_compute_mac(mac, a->psk, a->psklen, c->cli.exporter,
                                  fr->u.challenge.challenge,
                                  fr->u.challenge.challengelen) == 0);
    FZ_CHECK(memcmp(mac, out.u.response.mac, PRD_MAC_LEN) == 0);
  } else if (a->state == PRD_AUTH_STATE_AUTHENTICATED &&
             b.state == PRD_AUTH_STATE_WAIT_RESULT &&
             prd_auth_services_negotiated(a)) {
    /* spec/02-framing.md §3.7: SERVICES at once. */
    FZ_CHECK(nout == 1 && out.type == PRD_FRAME_SERVICES);
  } else {
    FZ_CHECK(nout == 0);
  }
  if (a->state == PRD_AUTH_STATE_AUTHENTICATED &&
      b.state != PRD_AUTH_STATE_AUTHENTICATED) {
    FZ_CHECK(b.state == PRD_AUTH_STATE_WAIT_RESULT);
    FZ_CHECK(fr->type == PRD_FRAME_AUTH_RESULT && fr->u.result.status == 0);
  }
  if (a->state == PRD_AUTH_STATE_FAILED &&
      b.state == PRD_AUTH_STATE_WAIT_RESULT &&
      fr->type == PRD_FRAME_AUTH_RESULT) {
    FZ_CHECK(a->close_code == fr->u.result.status);
  }
}

/* fz_feed pushes |data| through the side's frame reader into its machine. */
static void fz_feed(fz_ctx *c, fz_side *s, const uint8_t *data,
                    size_t datalen) {
  size_t off = 0;

  if (s->reader_dead) {
    return; /* a real endpoint has closed the connection by now */
  }
  while (off < datalen) {
    prd_frame fr;
    int ready = 0;
    prd_ssize rv =
        prd_frame_reader_feed(&s->rd, &fr, &ready, data + off, datalen - off);

    if (rv < 0) {
      s->reader_dead = 1;
      return;
    }
    FZ_CHECK((size_t)rv <= datalen - off);
    off += (size_t)rv;
    if (ready) {
      if (s == &c->srv) {
        fz_server_frame(c, &fr);
      } else {
        fz_client_frame(c, &fr);
      }
      /* The reader's features as src/quic/ctrl.c sets them. */
      if (s->a.role == PRD_AUTH_ROLE_SERVER &&
          s->a.state != PRD_AUTH_STATE_WAIT_HELLO) {
        prd_frame_reader_set_features(&s->rd, s->a.hello_flags & s->a.features);
      } else if (s->a.role == PRD_AUTH_ROLE_CLIENT) {
        prd_frame_reader_set_features(&s->rd,
                                      s->a.state == PRD_AUTH_STATE_AUTHENTICATED
                                          ? s->a.negotiated
                                          : s->a.hello_flags);
      }
    } else if (rv == 0) {
      FZ_CHECK(off == datalen);
      break;
    }
  }
}

static void fz_pump(fz_ctx *c, fz_side *from, fz_side *to) {
  uint8_t buf[PRD_AUTH_OUT_MAX];
  size_t len = from->a.outlen;

  memcpy(buf, from->a.out, len);
  prd_auth_out_consume(&from->a, len);
  FZ_CHECK(from->a.outlen == 0);
  fz_feed(c, to, buf, len);
}

static void fz_timer(fz_ctx *c, prd_auth *a) {
  fz_snap b = fz_take(a);
  int rv = prd_auth_on_timer(a, c->now);

  fz_after_call(a, &b, rv);
  FZ_CHECK(a->outlen == b.outlen);
  if (b.state != PRD_AUTH_STATE_FAILED) {
    if (rv != 0) {
      FZ_CHECK(rv == PRD_ERR_AUTH_TIMEOUT && a->role == PRD_AUTH_ROLE_SERVER);
      FZ_CHECK(c->now >= a->deadline);
      FZ_CHECK(a->close_code == PRD_APP_AUTH_TIMEOUT);
    } else {
      FZ_CHECK(a->state == b.state);
    }
  }
}

static void fz_goaway(prd_auth *a, uint64_t code) {
  fz_snap b = fz_take(a);
  int rv = prd_auth_queue_goaway(a, code);
  prd_frame out;

  fz_after_call(a, &b, rv);
  FZ_CHECK(a->state == b.state);
  if (rv == 0) {
    FZ_CHECK(a->state == PRD_AUTH_STATE_AUTHENTICATED);
    FZ_CHECK(fz_queued(a, b.outlen, &out) == 1);
    FZ_CHECK(out.type == PRD_FRAME_GOAWAY && out.u.goaway.error_code == code);
  } else {
    FZ_CHECK(a->outlen == b.outlen);
    FZ_CHECK(a->state != PRD_AUTH_STATE_AUTHENTICATED || rv == PRD_ERR_NOBUF);
  }
}

static void fz_restart(fz_ctx *c, fz_side *s) {
  fz_snap b = fz_take(&s->a);
  int rv;

  if (b.state == PRD_AUTH_STATE_IDLE) {
    return; /* deliberately never started; keep it so */
  }
  rv = prd_auth_start(&s->a, s->exporter, c->challenge, c->now);
  fz_after_call(&s->a, &b, rv);
  FZ_CHECK(rv < 0);
  FZ_CHECK(s->a.state == b.state && s->a.outlen == b.outlen);
}

/* Only what was queued before FAILED may still be sent; a dropped prefix
 * (op 6) is the caller's business. */
static void fz_drop(prd_auth *a, size_t n) {
  size_t before = a->outlen;

  prd_auth_out_consume(a, n);
  FZ_CHECK(a->outlen == (n >= before ? 0 : before - n));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static fz_ctx c;
  uint8_t cfg;
  size_t off = 1;
  size_t i;

  if (size < 1) {
    return 0;
  }
  cfg = data[0];
  memset(&c, 0, sizeof(c));
  c.now = FZ_T0;
  for (i = 0; i < PRD_AUTH_EXPORTER_LEN; ++i) {
    c.srv.exporter[i] = (uint8_t)i;
    c.cli.exporter[i] = (cfg & 1) ? (uint8_t)(0x80 ^ i) : (uint8_t)i;
  }
  for (i = 0; i < PRD_CHALLENGE_MIN; ++i) {
    c.challenge[i] = (uint8_t)(0xa0 + i);
  }
  /* The expectation, computed without src/auth. */
  {
    uint8_t msg[20 + PRD_AUTH_EXPORTER_LEN + PRD_CHALLENGE_MIN];
    memcpy(msg, "portredirect-auth-v1", 20);
    memcpy(msg + 20, c.srv.exporter, PRD_AUTH_EXPORTER_LEN);
    memcpy(msg + 20 + PRD_AUTH_EXPORTER_LEN, c.challenge, PRD_CHALLENGE_MIN);
    FZ_CHECK(gnutls_hmac_fast(GNUTLS_MAC_SHA256, fz_psk, sizeof(fz_psk) - 1,
                              msg, sizeof(msg), c.srv.expect_mac) == 0);
  }
  {
    uint8_t msg[20 + PRD_AUTH_EXPORTER_LEN + PRD_CHALLENGE_MIN + 8];
    memcpy(msg, "portredirect-auth-v1", 20);
    memcpy(msg + 20, c.srv.exporter, PRD_AUTH_EXPORTER_LEN);
    memcpy(msg + 20 + PRD_AUTH_EXPORTER_LEN, c.challenge, PRD_CHALLENGE_MIN);
    memcpy(msg + 20 + PRD_AUTH_EXPORTER_LEN + PRD_CHALLENGE_MIN, "\007default",
           8);
    FZ_CHECK(gnutls_hmac_fast(GNUTLS_MAC_SHA256, fz_psk, sizeof(fz_psk) - 1,
                              msg, sizeof(msg), c.srv.expect_named) == 0);
  }
  FZ_CHECK(
      prd_auth_init(&c.srv.a, PRD_AUTH_ROLE_SERVER, fz_psk, sizeof(fz_psk) - 1,
                    (uint64_t)((cfg >> 4) + 1) * 500 * PRD_NS_PER_MS) == 0);
  if (cfg & 2) {
    FZ_CHECK(prd_auth_init(&c.cli.a, PRD_AUTH_ROLE_CLIENT, fz_psk_other,
                           sizeof(fz_psk_other) - 1, 0) == 0);
  } else {
    FZ_CHECK(prd_auth_init(&c.cli.a, PRD_AUTH_ROLE_CLIENT, fz_psk,
                           sizeof(fz_psk) - 1, 0) == 0);
  }
  prd_frame_reader_init(&c.srv.rd);
  prd_frame_reader_init(&c.cli.rd);
  if (!(cfg & 4)) {
    FZ_CHECK(prd_auth_start(&c.srv.a, c.srv.exporter, c.challenge, c.now) == 0);
    FZ_CHECK(c.srv.a.outlen == 0);
  }
  if (!(cfg & 8)) {
    FZ_CHECK(prd_auth_start(&c.cli.a, c.cli.exporter, NULL, c.now) == 0);
    FZ_CHECK(c.cli.a.outlen == 4);
    prd_frame_reader_set_features(&c.cli.rd, c.cli.a.hello_flags);
  }

  while (off < size) {
    uint8_t op = data[off++];
    uint8_t arg = (uint8_t)(op >> 3);
    size_t n;

    switch (op & 7) {
    case 0:
    case 1:
      if (off >= size) {
        break;
      }
      n = data[off++];
      if (n > size - off) {
        n = size - off;
      }
      fz_feed(&c, (op & 7) == 0 ? &c.srv : &c.cli, data + off, n);
      off += n;
      break;
    case 2:
      fz_pump(&c, &c.cli, &c.srv);
      break;
    case 3:
      fz_pump(&c, &c.srv, &c.cli);
      break;
    case 4:
      c.now += (prd_tstamp)(arg >> 1) * 100 * PRD_NS_PER_MS;
      if (arg & 1) {
        fz_timer(&c, &c.srv.a);
        fz_timer(&c, &c.cli.a);
      }
      break;
    case 5:
      fz_goaway(&c.srv.a, arg);
      fz_goaway(&c.cli.a, arg);
      break;
    case 6:
      fz_drop(&c.srv.a, arg);
      fz_drop(&c.cli.a, arg);
      break;
    default:
      fz_restart(&c, &c.srv);
      fz_restart(&c, &c.cli);
      break;
    }
  }

  prd_auth_free(&c.srv.a);
  prd_auth_free(&c.cli.a);
  FZ_CHECK(c.srv.a.psklen == 0 && c.srv.a.psk[0] == 0);
  return 0;
}
