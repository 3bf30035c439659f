/* SPDX-License-Identifier: GPL-3.0-only */
/* prd-conformance server role: tests of a server under test, one per
 * observable requirement of spec/ (spec/conformance.md maps them). Each test
 * opens its own QUIC connection(s) and closes them when it ends. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <gnutls/crypto.h>
#include <ngtcp2/version.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth/auth.h"
#include "cf.h"

/* How long a server may take to react to a violation: it must close "as
 * soon as" it sees it, so a second is generous on loopback. */
#define REACT_S 2.0
/* How long a test watches for something that must not happen. */
#define QUIET_S 1.0

/* ---- small helpers ---------------------------------------------------- */

static cf_peer *connect_hs(cf_result *r, const cf_conn_opts *o) {
  cf_peer *p = cf_peer_new(o);
  char what[256];
  if (p == NULL) {
    cf_fail(r, "cannot start a QUIC connection");
    return NULL;
  }
  if (!cf_wait_hs(p)) {
    cf_describe(p, what, sizeof(what));
    cf_fail(r, "QUIC/TLS handshake with the server failed: %s%s", what,
            p->cert_mismatch ? " (certificate is not --server-cert)" : "");
    cf_peer_del(p);
    return NULL;
  }
  return p;
}

static void done(cf_peer *p) {
  if (p) {
    cf_peer_close(p);
    cf_peer_del(p);
  }
}

/* expect_app_close: the server closes with application error |code|
 * within |secs|. */
static int expect_app_close(cf_result *r, cf_peer *p, uint64_t code,
                            double secs, const char *after) {
  char what[256];
  cf_wait_closed(p, secs);
  if (p->closed == CF_CLOSED_APP && p->close_code == code) {
    return 1;
  }
  cf_describe(p, what, sizeof(what));
  cf_fail(r,
          "after %s: expected CONNECTION_CLOSE with %s (0x%llx) within "
          "%.1f s; got: %s",
          after, prd_app_err_name(code), (unsigned long long)code, secs, what);
  return 0;
}

/* expect_open: the connection stays open for |secs|. */
static int expect_open(cf_result *r, cf_peer *p, double secs,
                       const char *after) {
  char what[256];
  cf_wait_closed(p, secs);
  if (p->closed == CF_OPEN) {
    return 1;
  }
  cf_describe(p, what, sizeof(what));
  cf_fail(r, "after %s: expected the connection to stay open; got: %s", after,
          what);
  return 0;
}

/* hello_challenge: handshake, HELLO(1, 0), AUTH_CHALLENGE. */
static cf_peer *hello_challenge(cf_result *r) {
  cf_peer *p = connect_hs(r, NULL);
  char what[256];
  if (p == NULL) {
    return NULL;
  }
  cf_send_hello(p, PRD_PROTOCOL_VERSION, 0);
  if (!cf_wait_frame(p, PRD_FRAME_AUTH_CHALLENGE, cf_opt.timeout_s)) {
    cf_describe(p, what, sizeof(what));
    cf_fail(r, "no AUTH_CHALLENGE in reply to HELLO: %s", what);
    done(p);
    return NULL;
  }
  return p;
}

/* authed: a connection that completed the exchange with AUTH_RESULT(0). */
static cf_peer *authed_with(cf_result *r, const cf_conn_opts *o) {
  cf_peer *p = cf_peer_new(o);
  char what[256];
  int st;
  if (p == NULL) {
    cf_fail(r, "cannot start a QUIC connection");
    return NULL;
  }
  st = cf_authenticate(p);
  if (st != 0) {
    cf_describe(p, what, sizeof(what));
    cf_fail(r, "authentication with --psk-file failed (status %d): %s", st,
            what);
    done(p);
    return NULL;
  }
  return p;
}

static void hexstr(char *dst, size_t cap, const uint8_t *b, size_t n) {
  size_t k = 0;
  for (size_t i = 0; i < n && k + 3 < cap; ++i) {
    k += (size_t)snprintf(dst + k, cap - k, "%s%02x", i ? " " : "", b[i]);
  }
  if (n == 0 && cap) {
    dst[0] = '\0';
  }
}

static cf_peer *authed(cf_result *r) { return authed_with(r, NULL); }

/* ---- data-driven control stream violations ---------------------------- */

typedef enum phase {
  AT_START,     /* first bytes on stream 0, right after the handshake */
  AT_CHALLENGE, /* after HELLO and AUTH_CHALLENGE */
  AT_AUTHED,    /* after AUTH_RESULT(0) */
  /* HELLO with Flags bit 0 (SERVICES, spec/02-framing.md §3.1): */
  AT_SVC_CHALLENGE, /* after AUTH_CHALLENGE */
  AT_SVC_AUTHED     /* after AUTH_RESULT(0) with Flags bit 0 */
} phase;

typedef struct bad_bytes {
  phase at;
  const char *bytes; /* hex digits */
  uint64_t code;     /* expected application close code */
} bad_bytes;

static size_t unhex(uint8_t *out, size_t cap, const char *hex) {
  size_t n = 0;
  while (*hex && n < cap) {
    unsigned v;
    if (*hex == ' ') {
      ++hex;
      continue;
    }
    if (sscanf(hex, "%2x", &v) != 1) {
      break;
    }
    out[n++] = (uint8_t)v;
    hex += 2;
  }
  return n;
}

/* svc_challenge: handshake, HELLO(1, Flags bit 0), AUTH_CHALLENGE. */
static cf_peer *svc_challenge(cf_result *r, uint64_t flags) {
  cf_peer *p = connect_hs(r, NULL);
  char what[256];
  if (p == NULL) {
    return NULL;
  }
  cf_send_hello(p, PRD_PROTOCOL_VERSION, flags);
  if (!cf_wait_frame(p, PRD_FRAME_AUTH_CHALLENGE, cf_opt.timeout_s)) {
    cf_describe(p, what, sizeof(what));
    cf_fail(r, "no AUTH_CHALLENGE in reply to HELLO(Flags 0x%llx): %s",
            (unsigned long long)flags, what);
    done(p);
    return NULL;
  }
  return p;
}

/* svc_authed: HELLO with |flags|, the exchange, AUTH_RESULT(0); when
 * |need| is set, the Flags of AUTH_RESULT must hold bit 0 (SERVICES). */
static cf_peer *svc_authed(cf_result *r, uint64_t flags, int need) {
  cf_peer *p = svc_challenge(r, flags);
  const prd_frame *res;
  char what[256];
  if (p == NULL) {
    return NULL;
  }
  cf_send_response(p, cf_opt.psk, cf_opt.psklen, p->exporter);
  if (!cf_wait_frame(p, PRD_FRAME_AUTH_RESULT, cf_opt.timeout_s) ||
      (res = cf_find_frame(p, PRD_FRAME_AUTH_RESULT))->u.result.status != 0) {
    cf_describe(p, what, sizeof(what));
    cf_fail(r, "no AUTH_RESULT(0) after HELLO(Flags 0x%llx): %s%s",
            (unsigned long long)flags, what,
            p->ctrl_bad ? " (malformed control frame)" : "");
    done(p);
    return NULL;
  }
  if (need && (!res->u.result.has_flags ||
               !(res->u.result.flags & PRD_FLAG_SERVICES))) {
    cf_skip(r, "the server did not accept SERVICES (AUTH_RESULT %s)",
            res->u.result.has_flags ? "Flags without bit 0" : "without Flags");
    done(p);
    return NULL;
  }
  return p;
}

static cf_peer *reach(cf_result *r, phase at) {
  switch (at) {
  case AT_SVC_CHALLENGE:
    return svc_challenge(r, PRD_FLAG_SERVICES);
  case AT_SVC_AUTHED:
    return svc_authed(r, PRD_FLAG_SERVICES, 1);
  case AT_START:
    return connect_hs(r, NULL);
  case AT_CHALLENGE:
    return hello_challenge(r);
  case AT_AUTHED:
    return authed(r);
  }
  return NULL;
}

static void t_bad_bytes(cf_result *r, const void *arg) {
  const bad_bytes *b = arg;
  uint8_t buf[128];
  size_t n = unhex(buf, sizeof(buf), b->bytes);
  char after[128];
  cf_peer *p = reach(r, b->at);
  if (p == NULL) {
    return;
  }
  snprintf(after, sizeof(after), "sending %s%s", b->bytes,
           b->at == AT_START       ? " as the first bytes"
           : b->at == AT_CHALLENGE ? " after AUTH_CHALLENGE"
           : b->at == AT_AUTHED    ? " after AUTH_RESULT(0)"
           : b->at == AT_SVC_CHALLENGE
               ? " after HELLO(Flags 1) and AUTH_CHALLENGE"
               : " after AUTH_RESULT(0) with Flags 1");
  cf_ctrl_send(p, buf, n);
  if (expect_app_close(r, p, b->code, REACT_S, after) && b->at == AT_START &&
      cf_find_frame(p, PRD_FRAME_AUTH_CHALLENGE)) {
    cf_fail(r, "the server sent AUTH_CHALLENGE in reply to %s", b->bytes);
  }
  done(p);
}

#define BAD(name, at, hex, code) static const bad_bytes name = {at, hex, code}
BAD(b_unknown_type, AT_START, "06 00", PRD_APP_PROTOCOL_ERROR);
BAD(b_unknown_type_only, AT_START, "06", PRD_APP_PROTOCOL_ERROR);
BAD(b_reserved_type0, AT_START, "00 00", PRD_APP_PROTOCOL_ERROR);
BAD(b_ext_type, AT_START, "40 40 00", PRD_APP_PROTOCOL_ERROR);
BAD(b_unknown_authed, AT_AUTHED, "3f 00", PRD_APP_PROTOCOL_ERROR);
BAD(b_nonmin_type, AT_START, "40 01 02 01 00", PRD_APP_PROTOCOL_ERROR);
BAD(b_nonmin_length, AT_START, "01 40 02 01 00", PRD_APP_PROTOCOL_ERROR);
BAD(b_nonmin_version, AT_START, "01 03 40 01 00", PRD_APP_PROTOCOL_ERROR);
BAD(b_nonmin_goaway, AT_AUTHED, "05 02 40 06", PRD_APP_PROTOCOL_ERROR);
BAD(b_oversized_hdr, AT_START, "01 44 01", PRD_APP_PROTOCOL_ERROR);
BAD(b_huge_length, AT_START, "01 ff ff ff ff ff ff ff ff",
    PRD_APP_PROTOCOL_ERROR);
BAD(b_trailing, AT_START, "01 03 01 00 00", PRD_APP_PROTOCOL_ERROR);
BAD(b_short, AT_START, "01 01 01", PRD_APP_PROTOCOL_ERROR);
BAD(b_response_first, AT_START,
    "03 20 000102030405060708090a0b0c0d0e0f"
    "101112131415161718191a1b1c1d1e1f",
    PRD_APP_PROTOCOL_ERROR);
BAD(b_goaway_first, AT_START, "05 01 00", PRD_APP_PROTOCOL_ERROR);
BAD(b_challenge_from_client, AT_START,
    "02 21 01 000102030405060708090a0b0c0d0e0f"
    "101112131415161718191a1b1c1d1e1f",
    PRD_APP_PROTOCOL_ERROR);
BAD(b_hello_twice, AT_CHALLENGE, "01 02 01 00", PRD_APP_PROTOCOL_ERROR);
BAD(b_goaway_wait_response, AT_CHALLENGE, "05 01 00", PRD_APP_PROTOCOL_ERROR);
BAD(b_result_from_client, AT_CHALLENGE, "04 01 00", PRD_APP_PROTOCOL_ERROR);
BAD(b_response_short, AT_CHALLENGE,
    "03 1f 000102030405060708090a0b0c0d0e0f"
    "101112131415161718191a1b1c1d1e",
    PRD_APP_PROTOCOL_ERROR);
BAD(b_response_long, AT_CHALLENGE,
    "03 21 000102030405060708090a0b0c0d0e0f"
    "101112131415161718191a1b1c1d1e1f20",
    PRD_APP_PROTOCOL_ERROR);
BAD(b_hello_authed, AT_AUTHED, "01 02 01 00", PRD_APP_PROTOCOL_ERROR);
BAD(b_response_authed, AT_AUTHED,
    "03 20 000102030405060708090a0b0c0d0e0f"
    "101112131415161718191a1b1c1d1e1f",
    PRD_APP_PROTOCOL_ERROR);
BAD(b_trailing_goaway, AT_AUTHED, "05 02 06 00", PRD_APP_PROTOCOL_ERROR);
BAD(b_hello_version0, AT_START, "01 02 00 00", PRD_APP_VERSION_MISMATCH);
/* Named services, spec/02-framing.md §3.6, §3.7. */
#define SVC_DEFAULT "06 08 07 64 65 66 61 75 6c 74" /* SERVICES [default] */
BAD(b_svc_not_negotiated, AT_AUTHED, SVC_DEFAULT, PRD_APP_PROTOCOL_ERROR);
BAD(b_svc_refused_not_negotiated, AT_AUTHED, "07 03 0b 01 61",
    PRD_APP_PROTOCOL_ERROR);
BAD(b_svc_before_result, AT_SVC_CHALLENGE, SVC_DEFAULT, PRD_APP_PROTOCOL_ERROR);
BAD(b_svc_empty, AT_SVC_AUTHED, "06 00", PRD_APP_PROTOCOL_ERROR);
BAD(b_svc_len0, AT_SVC_AUTHED, "06 01 00", PRD_APP_PROTOCOL_ERROR);
BAD(b_svc_bad_char, AT_SVC_AUTHED, "06 04 03 61 2f 62", PRD_APP_PROTOCOL_ERROR);
BAD(b_svc_len64, AT_SVC_AUTHED,
    "06 40 42 40 40" /* Length 66, Name Length 64 (2-byte varints) */
    "61616161616161616161616161616161616161616161616161616161616161616161"
    "616161616161616161616161616161616161616161616161616161616161",
    PRD_APP_PROTOCOL_ERROR);
BAD(b_svc_duplicate, AT_SVC_AUTHED, "06 08 03 61 62 63 03 61 62 63",
    PRD_APP_PROTOCOL_ERROR);
BAD(b_svc_past_end, AT_SVC_AUTHED, "06 03 05 61 62", PRD_APP_PROTOCOL_ERROR);
BAD(b_svc_refused_from_client, AT_SVC_AUTHED, "07 03 0b 01 61",
    PRD_APP_PROTOCOL_ERROR);

/* ---- authentication --------------------------------------------------- */

static void t_auth_ok(cf_result *r, const void *arg) {
  cf_peer *p = cf_peer_new(NULL);
  int st;
  char what[256];
  (void)arg;
  if (p == NULL) {
    cf_fail(r, "cannot start a QUIC connection");
    return;
  }
  st = cf_authenticate(p);
  cf_describe(p, what, sizeof(what));
  if (p->ctrl_bad) {
    cf_fail(r, "the server sent a malformed control frame");
  } else if (st != 0) {
    cf_fail(r, "expected AUTH_RESULT(0), got status %d: %s", st, what);
  } else if (p->nframes != 2 || p->frames[0].type != PRD_FRAME_AUTH_CHALLENGE ||
             p->frames[1].type != PRD_FRAME_AUTH_RESULT) {
    cf_fail(r,
            "expected exactly AUTH_CHALLENGE then AUTH_RESULT, got %d "
            "frames",
            p->nframes);
  } else {
    expect_open(r, p, 0.2, "AUTH_RESULT(0)");
  }
  done(p);
}

static void t_challenge(cf_result *r, const void *arg) {
  cf_peer *p = hello_challenge(r);
  const prd_frame *ch;
  (void)arg;
  if (p == NULL) {
    return;
  }
  ch = cf_find_frame(p, PRD_FRAME_AUTH_CHALLENGE);
  if (ch->u.challenge.version != 1) {
    cf_fail(r, "AUTH_CHALLENGE Version %llu, expected 1",
            (unsigned long long)ch->u.challenge.version);
  } else if (ch->u.challenge.challengelen != 32) {
    cf_fail(r, "Challenge of %zu bytes, expected 32",
            ch->u.challenge.challengelen);
  } else if (p->nframes != 1) {
    cf_fail(r, "%d control frames before AUTH_RESPONSE, expected 1",
            p->nframes);
  }
  done(p);
}

static void t_challenge_fresh(cf_result *r, const void *arg) {
  uint8_t seen[4][64];
  (void)arg;
  for (int i = 0; i < 4; ++i) {
    cf_peer *p = hello_challenge(r);
    const prd_frame *ch;
    if (p == NULL) {
      return;
    }
    ch = cf_find_frame(p, PRD_FRAME_AUTH_CHALLENGE);
    memset(seen[i], 0, sizeof(seen[i]));
    memcpy(seen[i], ch->u.challenge.challenge, ch->u.challenge.challengelen);
    done(p);
    for (int k = 0; k < i; ++k) {
      if (memcmp(seen[k], seen[i], sizeof(seen[i])) == 0) {
        cf_fail(r, "connections %d and %d got the same challenge", k + 1,
                i + 1);
        return;
      }
    }
  }
}

static void t_bad_mac(cf_result *r, const void *arg) {
  cf_peer *p = hello_challenge(r);
  uint8_t wrong[32];
  const prd_frame *res;
  (void)arg;
  if (p == NULL) {
    return;
  }
  /* The right PSK with one byte changed, so a length check cannot tell. */
  memcpy(wrong, cf_opt.psk, cf_opt.psklen < 32 ? cf_opt.psklen : 32);
  wrong[0] ^= 0x55;
  cf_send_response(p, wrong, cf_opt.psklen < 32 ? cf_opt.psklen : 32,
                   p->exporter);
  if (expect_app_close(r, p, PRD_APP_AUTH_FAILED, REACT_S,
                       "AUTH_RESPONSE with a wrong MAC")) {
    res = cf_find_frame(p, PRD_FRAME_AUTH_RESULT);
    /* The close may overtake AUTH_RESULT (spec/03-auth.md §4), so only a
     * wrong Status is a failure. */
    if (res && res->u.result.status != PRD_APP_AUTH_FAILED) {
      cf_fail(r, "AUTH_RESULT Status %llu, expected 4 (AUTH_FAILED)",
              (unsigned long long)res->u.result.status);
    }
  }
  done(p);
}

/* A response computed for another connection: with that connection's
 * exporter and this challenge (a relay), or replayed whole. */
static void t_mac_other_session(cf_result *r, const void *arg) {
  int replay = arg != NULL;
  cf_peer *a = hello_challenge(r), *b;
  if (a == NULL) {
    return;
  }
  b = hello_challenge(r);
  if (b == NULL) {
    done(a);
    return;
  }
  if (replay) {
    const prd_frame *ch = cf_find_frame(a, PRD_FRAME_AUTH_CHALLENGE);
    prd_frame fr;
    memset(&fr, 0, sizeof(fr));
    fr.type = PRD_FRAME_AUTH_RESPONSE;
    prd_auth_compute_mac(fr.u.response.mac, cf_opt.psk, cf_opt.psklen,
                         a->exporter, ch->u.challenge.challenge,
                         ch->u.challenge.challengelen);
    cf_ctrl_frame(b, &fr);
  } else {
    cf_send_response(b, cf_opt.psk, cf_opt.psklen, a->exporter);
  }
  expect_app_close(r, b, PRD_APP_AUTH_FAILED, REACT_S,
                   replay ? "AUTH_RESPONSE replayed from another connection"
                          : "a MAC over another connection's exporter");
  done(b);
  done(a);
}

static void t_deadline(cf_result *r, const void *arg) {
  int hello = arg != NULL;
  cf_peer *p = hello ? hello_challenge(r) : connect_hs(r, NULL);
  double t, dl = cf_opt.auth_timeout_s;
  if (p == NULL) {
    return;
  }
  if (expect_app_close(r, p, PRD_APP_AUTH_TIMEOUT, dl + 3.0,
                       hello ? "HELLO and no AUTH_RESPONSE"
                             : "a handshake and no HELLO")) {
    t = cf_since_hs(p, p->t_close);
    if (t < dl - 0.5) {
      cf_fail(r,
              "closed %.2f s after the handshake, before the %.1f s "
              "deadline (--auth-timeout)",
              t, dl);
    }
  }
  done(p);
}

static void t_deadline_disarmed(cf_result *r, const void *arg) {
  cf_peer *p = authed(r);
  (void)arg;
  if (p == NULL) {
    return;
  }
  expect_open(r, p, cf_opt.auth_timeout_s + 1.0,
              "authenticating and waiting past the deadline");
  done(p);
}

static void t_hello_version(cf_result *r, const void *arg) {
  /* Unknown bits only: bit 0 is SERVICES, bit 1 CLIENT_NAME
   * (spec/02-framing.md §3.1), which changes AUTH_RESPONSE. */
  uint64_t v = arg ? 0x3fff : 1, flags = arg ? 0 : 0x3ffffffc;
  cf_peer *p = connect_hs(r, NULL);
  const prd_frame *ch;
  char what[256];
  if (p == NULL) {
    return;
  }
  cf_send_hello(p, v, flags);
  if (!cf_wait_frame(p, PRD_FRAME_AUTH_CHALLENGE, REACT_S)) {
    cf_describe(p, what, sizeof(what));
    cf_fail(r,
            "no AUTH_CHALLENGE in reply to HELLO(Version %llu, Flags "
            "0x%llx): %s",
            (unsigned long long)v, (unsigned long long)flags, what);
  } else if ((ch = cf_find_frame(p, PRD_FRAME_AUTH_CHALLENGE))
                 ->u.challenge.version != 1) {
    cf_fail(r, "AUTH_CHALLENGE Version %llu, expected 1",
            (unsigned long long)ch->u.challenge.version);
  } else {
    cf_send_response(p, cf_opt.psk, cf_opt.psklen, p->exporter);
    if (!cf_wait_frame(p, PRD_FRAME_AUTH_RESULT, REACT_S) ||
        cf_find_frame(p, PRD_FRAME_AUTH_RESULT)->u.result.status != 0) {
      cf_describe(p, what, sizeof(what));
      cf_fail(r, "no AUTH_RESULT(0) after a valid response: %s", what);
    }
  }
  done(p);
}

/* AUTH_RESULT Flags (spec/02-framing.md §3.4): present when HELLO Flags
 * was not 0, absent when it was 0, never a bit the HELLO did not offer;
 * |arg| is the HELLO Flags. */
static void t_svc_flags(cf_result *r, const void *arg) {
  uint64_t offered = *(const uint64_t *)arg;
  cf_peer *p = svc_authed(r, offered, 0);
  const prd_frame *res;
  if (p == NULL) {
    return;
  }
  res = cf_find_frame(p, PRD_FRAME_AUTH_RESULT);
  if (offered == 0 && res->u.result.has_flags) {
    cf_fail(r, "AUTH_RESULT carries Flags 0x%llx in reply to HELLO Flags 0",
            (unsigned long long)res->u.result.flags);
  } else if (offered != 0 && !res->u.result.has_flags) {
    cf_fail(r, "AUTH_RESULT without Flags in reply to HELLO Flags 0x%llx",
            (unsigned long long)offered);
  } else if (res->u.result.flags & ~offered) {
    cf_fail(r,
            "AUTH_RESULT Flags 0x%llx holds bits HELLO (0x%llx) did not "
            "offer",
            (unsigned long long)res->u.result.flags,
            (unsigned long long)offered);
  } else if (offered & PRD_FLAG_SERVICES &&
             !(res->u.result.flags & PRD_FLAG_SERVICES)) {
    cf_skip(r,
            "the server does not implement named services (AUTH_RESULT "
            "Flags 0x%llx)",
            (unsigned long long)res->u.result.flags);
  } else {
    expect_open(r, p, 0.3, "AUTH_RESULT(0)");
  }
  done(p);
}

static const uint64_t fl_zero = 0, fl_services = PRD_FLAG_SERVICES,
                      fl_unknown = 0x3ffffffd; /* all but CLIENT_NAME */

static int until_two_refused(void *arg) {
  const cf_peer *p = arg;
  int got = 0;
  for (int i = 0; i < p->nframes; ++i) {
    got += p->frames[i].type == PRD_FRAME_SERVICE_REFUSED;
  }
  return got >= 2 || p->closed || p->ctrl_bad;
}

/* SERVICES naming a service the server does not have: one SERVICE_REFUSED
 * (UNKNOWN_SERVICE, the name), in order; the connection stays up
 * (spec/02-framing.md §3.7). */
static void t_svc_unknown(cf_result *r, const void *arg) {
  static const char *names[] = {"prd-cf-nosuch-1", "prd-cf-nosuch-2"};
  cf_peer *p = svc_authed(r, PRD_FLAG_SERVICES, 1);
  prd_frame fr;
  int got = 0;
  char what[256];
  (void)arg;
  if (p == NULL) {
    return;
  }
  memset(&fr, 0, sizeof(fr));
  fr.type = PRD_FRAME_SERVICES;
  for (size_t i = 0; i < 2; ++i) {
    prd_services_add(&fr, names[i], strlen(names[i]));
  }
  cf_ctrl_frame(p, &fr);
  cf_run(REACT_S, until_two_refused, p);
  for (int i = 0; i < p->nframes; ++i) {
    got += p->frames[i].type == PRD_FRAME_SERVICE_REFUSED;
  }
  if (p->ctrl_bad) {
    cf_fail(r, "the server sent a malformed control frame");
  } else if (got != 2) {
    cf_describe(p, what, sizeof(what));
    cf_fail(r, "expected 2 SERVICE_REFUSED, got %d (%s)", got, what);
  } else {
    int k = 0;
    for (int i = 0; i < p->nframes; ++i) {
      const prd_frame *f = &p->frames[i];
      if (f->type != PRD_FRAME_SERVICE_REFUSED) {
        continue;
      }
      if (f->u.refused.error_code != PRD_APP_UNKNOWN_SERVICE ||
          strcmp(f->u.refused.name, names[k]) != 0) {
        cf_fail(r,
                "SERVICE_REFUSED %d: code 0x%llx name \"%s\", expected "
                "UNKNOWN_SERVICE (0xb) \"%s\"",
                k + 1, (unsigned long long)f->u.refused.error_code,
                f->u.refused.name, names[k]);
        break;
      }
      ++k;
    }
    if (k == 2) {
      expect_open(r, p, QUIET_S, "SERVICES naming only unknown services");
    }
  }
  done(p);
}

/* Frames split into one-byte STREAM frames must be reassembled. */
static void t_split(cf_result *r, const void *arg) {
  cf_peer *p = connect_hs(r, NULL);
  uint8_t buf[64];
  prd_frame fr;
  prd_ssize n;
  const prd_frame *ch, *res;
  char what[256];
  (void)arg;
  if (p == NULL) {
    return;
  }
  memset(&fr, 0, sizeof(fr));
  fr.type = PRD_FRAME_HELLO;
  fr.u.hello.version = 1;
  n = prd_frame_encode(buf, sizeof(buf), &fr);
  for (prd_ssize i = 0; i < n; ++i) {
    cf_ctrl_send(p, buf + i, 1);
    cf_run(0.05, NULL, NULL);
  }
  if (!cf_wait_frame(p, PRD_FRAME_AUTH_CHALLENGE, REACT_S)) {
    cf_describe(p, what, sizeof(what));
    cf_fail(r, "no AUTH_CHALLENGE after a HELLO sent byte by byte: %s", what);
    done(p);
    return;
  }
  ch = cf_find_frame(p, PRD_FRAME_AUTH_CHALLENGE);
  memset(&fr, 0, sizeof(fr));
  fr.type = PRD_FRAME_AUTH_RESPONSE;
  prd_auth_compute_mac(fr.u.response.mac, cf_opt.psk, cf_opt.psklen,
                       p->exporter, ch->u.challenge.challenge,
                       ch->u.challenge.challengelen);
  n = prd_frame_encode(buf, sizeof(buf), &fr);
  cf_ctrl_send(p, buf, 1);
  cf_run(0.05, NULL, NULL);
  cf_ctrl_send(p, buf + 1, 20);
  cf_run(0.05, NULL, NULL);
  cf_ctrl_send(p, buf + 21, (size_t)n - 21);
  if (!cf_wait_frame(p, PRD_FRAME_AUTH_RESULT, REACT_S) ||
      (res = cf_find_frame(p, PRD_FRAME_AUTH_RESULT))->u.result.status != 0) {
    cf_describe(p, what, sizeof(what));
    cf_fail(r, "no AUTH_RESULT(0) after an AUTH_RESPONSE in three pieces: %s",
            what);
  }
  done(p);
}

/* ---- GOAWAY and stream 0 ---------------------------------------------- */

static void t_goaway(cf_result *r, const void *arg) {
  const char *hex = arg;
  uint8_t buf[32];
  size_t n = unhex(buf, sizeof(buf), hex);
  char after[96];
  cf_peer *p = authed(r);
  if (p == NULL) {
    return;
  }
  snprintf(after, sizeof(after), "sending %s after AUTH_RESULT(0)", hex);
  cf_ctrl_send(p, buf, n);
  expect_open(r, p, QUIET_S, after);
  done(p);
}

static void t_ctrl_end(cf_result *r, const void *arg) {
  const char *how = arg;
  cf_peer *p = authed(r);
  char after[96];
  if (p == NULL) {
    return;
  }
  if (strcmp(how, "FIN") == 0) {
    p->ctrl_fin = 1;
  } else if (strcmp(how, "RESET_STREAM") == 0) {
    p->ctrl_reset = 1;
  } else {
    p->ctrl_reset = 2;
  }
  snprintf(after, sizeof(after), "%s on stream 0", how);
  expect_app_close(r, p, PRD_APP_PROTOCOL_ERROR, REACT_S, after);
  done(p);
}

static void t_ctrl_fin_hello(cf_result *r, const void *arg) {
  cf_peer *p = connect_hs(r, NULL);
  (void)arg;
  if (p == NULL) {
    return;
  }
  cf_send_hello(p, 1, 0);
  p->ctrl_fin = 1;
  expect_app_close(r, p, PRD_APP_PROTOCOL_ERROR, REACT_S,
                   "HELLO with FIN on stream 0");
  done(p);
}

/* ---- QUIC and TLS profile --------------------------------------------- */

static void t_alpn(cf_result *r, const void *arg) {
  const char *alpn = arg;
  cf_conn_opts o = {.alpn = alpn};
  cf_peer *p = cf_peer_new(&o);
  char what[256];
  gnutls_datum_t sel;
  int ok_expected = strstr(alpn, PRD_ALPN) != NULL;
  if (p == NULL) {
    cf_fail(r, "cannot start a QUIC connection");
    return;
  }
  cf_wait_hs(p);
  if (ok_expected) {
    if (!p->hs_done || p->closed) {
      cf_describe(p, what, sizeof(what));
      cf_fail(r, "offering ALPN %s: handshake failed: %s", alpn, what);
    } else if (gnutls_alpn_get_selected_protocol(p->tls, &sel) != 0 ||
               sel.size != PRD_ALPN_LEN ||
               memcmp(sel.data, PRD_ALPN, PRD_ALPN_LEN) != 0) {
      cf_fail(r, "offering ALPN %s: the server did not select %s", alpn,
              PRD_ALPN);
    }
  } else {
    cf_wait_closed(p, REACT_S);
    if (p->hs_done && !p->closed) {
      cf_fail(r, "offering only ALPN %s: the handshake completed", alpn);
    } else if (p->closed != CF_CLOSED_TRANSPORT || p->close_code != 0x178) {
      cf_describe(p, what, sizeof(what));
      cf_fail(r,
              "offering only ALPN %s: expected transport error 0x178 "
              "(no_application_protocol); got: %s",
              alpn, what);
    }
  }
  done(p);
}

typedef struct tp_check {
  const char *what;
  int which;
} tp_check;

static void t_tp(cf_result *r, const void *arg) {
  const tp_check *c = arg;
  cf_peer *p = connect_hs(r, NULL);
  const ngtcp2_transport_params *tp;
  if (p == NULL) {
    return;
  }
  tp = cf_remote_params(p);
  if (tp == NULL) {
    cf_fail(r, "no transport parameters");
    done(p);
    return;
  }
  switch (c->which) {
  case 0:
    if (tp->initial_max_streams_bidi != 1 || tp->initial_max_streams_uni != 0) {
      cf_fail(r,
              "initial_max_streams_bidi %llu (expected 1), "
              "initial_max_streams_uni %llu (expected 0)",
              (unsigned long long)tp->initial_max_streams_bidi,
              (unsigned long long)tp->initial_max_streams_uni);
    }
    break;
  case 1:
    if (tp->initial_max_stream_data_bidi_remote < 1040) {
      cf_fail(r, "initial_max_stream_data_bidi_remote %llu < 1040",
              (unsigned long long)tp->initial_max_stream_data_bidi_remote);
    }
    break;
  case 2:
    if (tp->initial_max_stream_data_bidi_remote > 16384) {
      cf_fail(r,
              "initial_max_stream_data_bidi_remote %llu: more than a few "
              "KiB (16384) for an unauthenticated peer",
              (unsigned long long)tp->initial_max_stream_data_bidi_remote);
    }
    break;
  case 3:
#if NGTCP2_VERSION_NUM >= 0x010000
    if (tp->preferred_addr_present) {
#else
    if (tp->preferred_address_present) {
#endif
      cf_fail(r, "preferred_address sent");
    }
    break;
  case 4:
    if (tp->disable_active_migration) {
      cf_fail(r, "disable_active_migration sent");
    }
    break;
  case 5:
    if (tp->active_connection_id_limit < 2) {
      cf_fail(r, "active_connection_id_limit %llu < 2",
              (unsigned long long)tp->active_connection_id_limit);
    }
    break;
  case 6:
    if (!tp->stateless_reset_token_present) {
      cf_fail(r, "no stateless_reset_token");
    }
    break;
  case 7:
    if (tp->max_datagram_frame_size != 0) {
      cf_fail(r, "max_datagram_frame_size %llu sent",
              (unsigned long long)tp->max_datagram_frame_size);
    }
    break;
  }
  done(p);
}

static const tp_check tp_streams = {"streams", 0};
static const tp_check tp_ctrl_min = {"ctrl credit", 1};
static const tp_check tp_ctrl_max = {"ctrl credit small", 2};
static const tp_check tp_pref = {"preferred_address", 3};
static const tp_check tp_migr = {"disable_active_migration", 4};
static const tp_check tp_cidlim = {"active_connection_id_limit", 5};
static const tp_check tp_srt = {"stateless_reset_token", 6};
static const tp_check tp_dgram = {"max_datagram_frame_size", 7};

static void t_tls(cf_result *r, const void *arg) {
  const char *prio = arg;
  cf_conn_opts o = {.priority = prio};
  cf_peer *p = connect_hs(r, &o);
  (void)arg;
  if (p == NULL) {
    return;
  }
  if (cf_authenticate(p) != 0) {
    char what[256];
    cf_describe(p, what, sizeof(what));
    cf_fail(r, "handshake completed but authentication failed: %s", what);
  }
  done(p);
}

static void t_sni(cf_result *r, const void *arg) {
  cf_conn_opts o = {.sni = arg};
  cf_peer *p = connect_hs(r, &o);
  if (p) {
    done(p);
  }
}

static void t_no_certreq(cf_result *r, const void *arg) {
  cf_peer *p = connect_hs(r, NULL);
  (void)arg;
  if (p == NULL) {
    return;
  }
  if (p->cert_requested) {
    cf_fail(r, "the server sent CertificateRequest");
  }
  done(p);
}

static void t_cert(cf_result *r, const void *arg) {
  cf_peer *p = cf_peer_new(NULL);
  (void)arg;
  if (p == NULL) {
    cf_fail(r, "cannot start a QUIC connection");
    return;
  }
  cf_wait_hs(p);
  if (p->cert_mismatch) {
    cf_fail(r, "the server's certificate is not the one in --server-cert");
  } else if (!p->hs_done) {
    cf_fail(r, "no handshake");
  }
  done(p);
}

/* A long-header packet of an unknown version gets a Version Negotiation
 * packet that lists version 1 (RFC 9000 §6, §17.2.1). */
static void t_version_negotiation(cf_result *r, const void *arg) {
  uint8_t pkt[1200], rx[1500];
  int fd = socket(cf_opt.target.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  struct pollfd pfd;
  ssize_t n = -1;
  (void)arg;
  memset(pkt, 0, sizeof(pkt));
  pkt[0] = 0xc0;
  pkt[1] = 0x1a; /* version 0x1a2a3a4a: reserved, never supported */
  pkt[2] = 0x2a;
  pkt[3] = 0x3a;
  pkt[4] = 0x4a;
  pkt[5] = 8;
  gnutls_rnd(GNUTLS_RND_RANDOM, pkt + 6, 8);
  pkt[14] = 8;
  gnutls_rnd(GNUTLS_RND_RANDOM, pkt + 15, 8);
  if (fd < 0 ||
      connect(fd, (struct sockaddr *)&cf_opt.target, cf_opt.targetlen) != 0 ||
      send(fd, pkt, sizeof(pkt), 0) < 0) {
    cf_fail(r, "cannot send a datagram: %s", strerror(errno));
    if (fd >= 0) {
      close(fd);
    }
    return;
  }
  pfd.fd = fd;
  pfd.events = POLLIN;
  if (poll(&pfd, 1, (int)(REACT_S * 1000)) == 1) {
    n = recv(fd, rx, sizeof(rx), 0);
  }
  close(fd);
  if (n < 7 || !(rx[0] & 0x80) || rx[1] || rx[2] || rx[3] || rx[4]) {
    cf_fail(r, "no Version Negotiation packet in reply to version "
               "0x1a2a3a4a");
    return;
  }
  {
    size_t off = 5, dcil, scil;
    int has_v1 = 0, others = 0;
    dcil = rx[off++];
    if (off + dcil >= (size_t)n ||
        memcmp(rx + off, pkt + 15, dcil < 8 ? dcil : 8) != 0) {
      cf_fail(r, "Version Negotiation with the wrong Destination CID");
      return;
    }
    off += dcil;
    scil = rx[off++];
    off += scil;
    for (; off + 4 <= (size_t)n; off += 4) {
      uint32_t v = (uint32_t)rx[off] << 24 | (uint32_t)rx[off + 1] << 16 |
                   (uint32_t)rx[off + 2] << 8 | rx[off + 3];
      if (v == 1) {
        has_v1 = 1;
      } else if ((v & 0x0f0f0f0f) != 0x0a0a0a0a) {
        ++others; /* reserved versions (greasing) are allowed */
      }
    }
    if (!has_v1 || others) {
      cf_fail(r,
              "Version Negotiation lists %s version 1 and %d other "
              "version(s)",
              has_v1 ? "" : "no", others);
    }
  }
}

/* A short-header packet for a connection the server does not know gets a
 * stateless reset, smaller than the packet (spec/04-quic-profile.md §3,
 * RFC 9000 §10.3): 1200 bytes, or 42, the size of an idle client's PING. */
static void t_stateless_reset(cf_result *r, const void *arg) {
  size_t len = arg ? 42 : 1200;
  uint8_t pkt[1200], rx[1500];
  int fd = socket(cf_opt.target.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  struct pollfd pfd;
  ssize_t n = -1;
  gnutls_rnd(GNUTLS_RND_RANDOM, pkt, len);
  pkt[0] = (uint8_t)(0x40 | (pkt[0] & 0x3f)); /* short header, fixed bit */
  if (fd < 0 ||
      connect(fd, (struct sockaddr *)&cf_opt.target, cf_opt.targetlen) != 0 ||
      send(fd, pkt, len, 0) < 0) {
    cf_fail(r, "cannot send a datagram: %s", strerror(errno));
    if (fd >= 0) {
      close(fd);
    }
    return;
  }
  pfd.fd = fd;
  pfd.events = POLLIN;
  if (poll(&pfd, 1, (int)(REACT_S * 1000)) == 1) {
    n = recv(fd, rx, sizeof(rx), 0);
  }
  close(fd);
  if (n < 0) {
    cf_fail(r, "no reply to a %zu-byte packet for an unknown connection", len);
  } else if (n < 21 || (rx[0] & 0xc0) != 0x40) {
    cf_fail(r,
            "the reply (%zd bytes, first byte 0x%02x) is no stateless "
            "reset",
            n, rx[0]);
  } else if ((size_t)n >= len) {
    cf_fail(r,
            "a %zd-byte stateless reset for a %zu-byte packet: not "
            "smaller",
            n, len);
  }
}

/* Key updates must be supported (spec/04-quic-profile.md §1): after ours,
 * the server still reads what we send, so an unknown frame type gets its
 * PROTOCOL_ERROR. */
static void t_key_update(cf_result *r, const void *arg) {
  cf_peer *p = authed(r);
  int rv;
  (void)arg;
  if (p == NULL) {
    return;
  }
  cf_run(0.2, NULL, NULL); /* until the handshake is confirmed */
  rv = ngtcp2_conn_initiate_key_update(p->conn, cf_now());
  if (rv != 0) {
    cf_fail(r, "cannot initiate a key update: %s", ngtcp2_strerror(rv));
  } else {
    cf_ctrl_send(p, "\x3f\x00", 2);
    expect_app_close(r, p, PRD_APP_PROTOCOL_ERROR, REACT_S,
                     "a key update, then frame type 0x3f");
  }
  done(p);
}

/* ---- data streams (--tcp) --------------------------------------------- */

/* A user connection to the server's TCP port. */
typedef struct user {
  int fd;
  struct sockaddr_storage local;
  socklen_t locallen;
  uint8_t rx[65536];
  size_t rxlen;
  int eof, reset;
} user;

static int user_connect_to(cf_result *r, user *u,
                           const struct sockaddr_storage *to, socklen_t tolen) {
  memset(u, 0, sizeof(*u));
  u->fd = socket(to->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (u->fd < 0 || connect(u->fd, (const struct sockaddr *)to, tolen) != 0) {
    cf_fail(r, "cannot connect to the user port: %s", strerror(errno));
    if (u->fd >= 0) {
      close(u->fd);
    }
    u->fd = -1;
    return 0;
  }
  fcntl(u->fd, F_SETFL, fcntl(u->fd, F_GETFL) | O_NONBLOCK);
  u->locallen = sizeof(u->local);
  getsockname(u->fd, (struct sockaddr *)&u->local, &u->locallen);
  return 1;
}

static int user_connect(cf_result *r, user *u) {
  return user_connect_to(r, u, &cf_opt.tcp, cf_opt.tcplen);
}

static void user_poll(user *u) {
  while (u->fd >= 0 && !u->eof && !u->reset) {
    ssize_t n = recv(u->fd, u->rx + u->rxlen, sizeof(u->rx) - u->rxlen, 0);
    if (n > 0) {
      u->rxlen += (size_t)n;
    } else if (n == 0) {
      u->eof = 1;
    } else {
      if (errno == ECONNRESET) {
        u->reset = 1;
      }
      return;
    }
  }
}

static void user_close(user *u, int rst) {
  if (u->fd < 0) {
    return;
  }
  if (rst) {
    struct linger l = {1, 0};
    setsockopt(u->fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
  }
  close(u->fd);
  u->fd = -1;
}

static uint16_t user_port(const user *u) {
  return u->local.ss_family == AF_INET
             ? ntohs(((const struct sockaddr_in *)&u->local)->sin_port)
             : ntohs(((const struct sockaddr_in6 *)&u->local)->sin6_port);
}

/* The data stream whose SOURCE port is |u|'s: other users' streams (left
 * over from earlier tests) are ignored. */
struct find_ds {
  cf_peer *p;
  user *u;
  cf_stream *s;
  prd_stream_header hd;
  size_t hdlen;
  int bad;
};

static int until_ds(void *arg) {
  struct find_ds *f = arg;
  user_poll(f->u);
  for (int i = 0; i < f->p->nstreams && !f->s; ++i) {
    cf_stream *s = f->p->streams[i];
    prd_stream_header hd;
    prd_ssize n = prd_stream_header_decode(&hd, s->rx, s->rxlen);
    if (n == PRD_ERR_NEED_MORE) {
      continue;
    }
    if (n < 0) {
      f->s = s;
      f->bad = (int)n;
    } else if (hd.src.port == user_port(f->u)) {
      f->s = s;
      f->hd = hd;
      f->hdlen = (size_t)n;
    }
  }
  return f->s != NULL || f->p->closed;
}

/* open_ds: an authenticated peer and a user whose data stream has arrived
 * with a complete, valid Stream Header and no user byte sent. */
static int open_ds_with(cf_result *r, cf_peer **pp, user *u, struct find_ds *f,
                        const cf_conn_opts *o) {
  char what[256];
  *pp = authed_with(r, o);
  if (*pp == NULL) {
    return 0;
  }
  if (!user_connect(r, u)) {
    done(*pp);
    return 0;
  }
  memset(f, 0, sizeof(*f));
  f->p = *pp;
  f->u = u;
  cf_run(cf_opt.timeout_s, until_ds, f);
  if (f->s == NULL) {
    cf_describe(*pp, what, sizeof(what));
    cf_fail(r,
            "no data stream with a complete Stream Header for a user "
            "connection that sent nothing (%s)",
            what);
  } else if (f->bad) {
    char hex[128];
    hexstr(hex, sizeof(hex), f->s->rx, f->s->rxlen < 40 ? f->s->rxlen : 40);
    cf_fail(r, "invalid Stream Header (%s): %s", prd_strerror(f->bad), hex);
  } else {
    return 1;
  }
  user_close(u, 0);
  done(*pp);
  return 0;
}

static int open_ds(cf_result *r, cf_peer **pp, user *u, struct find_ds *f) {
  return open_ds_with(r, pp, u, f, NULL);
}

static void t_ds_header(cf_result *r, const void *arg) {
  int which = arg ? *(const int *)arg : 0;
  cf_peer *p;
  user u;
  struct find_ds f;
  if (!open_ds(r, &p, &u, &f)) {
    return;
  }
  switch (which) {
  case 1: { /* SOURCE: the user's address and port */
    prd_addr want;
    memset(&want, 0, sizeof(want));
    if (u.local.ss_family == AF_INET) {
      want.family = 4;
      memcpy(want.addr, &((struct sockaddr_in *)&u.local)->sin_addr, 4);
    } else {
      want.family = 6;
      memcpy(want.addr, &((struct sockaddr_in6 *)&u.local)->sin6_addr, 16);
    }
    want.port = user_port(&u);
    if (f.hd.src.family != want.family ||
        memcmp(f.hd.src.addr, want.addr, want.family == 4 ? 4 : 16) != 0) {
      cf_fail(r, "SOURCE is not the user's address");
    }
    break;
  }
  case 2: /* SOURCE first, then DESTINATION */
    if (f.s->rx[2] != PRD_HDR_FIELD_SOURCE) {
      cf_fail(r, "the first field is type 0x%02x, not SOURCE", f.s->rx[2]);
    }
    break;
  case 3: { /* DESTINATION: the address and port the user connected to */
    uint16_t port =
        cf_opt.tcp.ss_family == AF_INET
            ? ntohs(((struct sockaddr_in *)&cf_opt.tcp)->sin_port)
            : ntohs(((struct sockaddr_in6 *)&cf_opt.tcp)->sin6_port);
    if (f.hd.has_dst && f.hd.dst.port != port) {
      cf_fail(r, "DESTINATION port %u, the user connected to %u", f.hd.dst.port,
              port);
    }
    break;
  }
  case 4: /* not negotiated: no SERVICE, no PORT_OFFSET */
    if (f.hd.has_service || f.hd.has_port_offset) {
      cf_fail(r, "Stream Header holds %s on a connection without SERVICES",
              f.hd.has_service ? "SERVICE" : "PORT_OFFSET");
    }
    break;
  default:
    if (f.s->id % 4 != 1) {
      cf_fail(r, "data stream id %lld is not server-initiated bidirectional",
              (long long)f.s->id);
    }
    break;
  }
  user_close(&u, 0);
  done(p);
}

static const int hd_src = 1, hd_order = 2, hd_dst = 3, hd_no_svc = 4;

struct xfer {
  user *u;
  cf_stream *s;
  size_t want;
  int want_eof, want_fin, want_reset, want_user_reset;
};

static int until_xfer(void *arg) {
  struct xfer *x = arg;
  user_poll(x->u);
  if (x->want_eof) {
    return x->u->eof || x->u->reset;
  }
  if (x->want_fin) {
    return x->s->rx_fin || x->s->reset;
  }
  if (x->want_reset) {
    return x->s->reset && x->s->stop;
  }
  if (x->want_user_reset) {
    return x->u->reset || x->u->eof;
  }
  return x->u->rxlen >= x->want;
}

static int until_rx_total(void *arg) {
  struct xfer *x = arg;
  return x->s->rxtotal >= x->want || x->s->reset;
}

static void t_ds_bytes(cf_result *r, const void *arg) {
  const char *dir = arg;
  cf_peer *p;
  user u;
  struct find_ds f;
  uint8_t data[3000];
  struct xfer x;
  if (!open_ds(r, &p, &u, &f)) {
    return;
  }
  memset(&x, 0, sizeof(x));
  x.u = &u;
  x.s = f.s;
  for (size_t i = 0; i < sizeof(data); ++i) {
    data[i] = (uint8_t)(i * 7 + 3);
  }
  if (strcmp(dir, "up") == 0) { /* user -> stream */
    if (send(u.fd, data, sizeof(data), 0) != (ssize_t)sizeof(data)) {
      cf_fail(r, "cannot write the user socket");
    } else {
      shutdown(u.fd, SHUT_WR);
      x.want_fin = 1;
      cf_run(cf_opt.timeout_s, until_xfer, &x);
      if (!f.s->rx_fin) {
        cf_fail(r,
                "no FIN on the stream after the user's half-close (%zu "
                "of %zu bytes)",
                f.s->rxlen - f.hdlen, sizeof(data));
      } else if (f.s->rxlen - f.hdlen != sizeof(data) ||
                 memcmp(f.s->rx + f.hdlen, data, sizeof(data)) != 0) {
        cf_fail(r,
                "the stream carried %zu bytes, not the user's %zu bytes "
                "unmodified",
                f.s->rxlen - f.hdlen, sizeof(data));
      }
    }
  } else { /* stream -> user, then FIN: EOF, and the other way still works */
    cf_stream_send(p, f.s, data, sizeof(data), 1);
    x.want_eof = 1;
    cf_run(cf_opt.timeout_s, until_xfer, &x);
    if (!u.eof) {
      cf_fail(r, "the user saw no EOF after our FIN (%zu of %zu bytes%s)",
              u.rxlen, sizeof(data), u.reset ? ", connection reset" : "");
    } else if (u.rxlen != sizeof(data) ||
               memcmp(u.rx, data, sizeof(data)) != 0) {
      cf_fail(r, "the user got %zu bytes, not our %zu bytes unmodified",
              u.rxlen, sizeof(data));
    } else if (send(u.fd, "ping", 4, 0) != 4) {
      cf_fail(r, "the user cannot write after our half-close");
    } else {
      x.want_eof = 0;
      x.want = f.hdlen + 4;
      cf_run(cf_opt.timeout_s, until_rx_total, &x);
      if (f.s->rxlen - f.hdlen < 4 || f.s->reset) {
        cf_fail(r, "the user's bytes after our FIN did not arrive");
      }
    }
  }
  user_close(&u, 0);
  done(p);
}

/* A sender never exceeds the peer's max_udp_payload_size
 * (spec/04-quic-profile.md §5), also on loopback, where the path would
 * carry 64 KiB datagrams: we advertise the minimum, 1200. */
static void t_ds_max_udp_payload(cf_result *r, const void *arg) {
  cf_conn_opts o = {.max_udp_payload = 1200};
  static uint8_t data[262144];
  cf_peer *p;
  user u;
  struct find_ds f;
  struct xfer x;
  size_t sent = 0;
  (void)arg;
  if (!open_ds_with(r, &p, &u, &f, &o)) {
    return;
  }
  memset(&x, 0, sizeof(x));
  x.u = &u;
  x.s = f.s;
  x.want = sizeof(data) + f.hdlen;
  while (sent < sizeof(data) && !p->closed) {
    ssize_t n = send(u.fd, data + sent, sizeof(data) - sent, MSG_DONTWAIT);
    if (n > 0) {
      sent += (size_t)n;
    }
    cf_run(0.01, until_rx_total, &x);
  }
  cf_run(cf_opt.timeout_s, until_rx_total, &x);
  if (f.s->rxtotal < x.want) {
    cf_fail(r, "only %llu of %zu bytes arrived",
            (unsigned long long)f.s->rxtotal, x.want);
  } else if (p->max_rx_dgram > 1200) {
    cf_fail(r, "a %zu-byte datagram, over our max_udp_payload_size 1200",
            p->max_rx_dgram);
  }
  user_close(&u, 0);
  done(p);
}

static void t_ds_user_reset(cf_result *r, const void *arg) {
  cf_peer *p;
  user u;
  struct find_ds f;
  struct xfer x;
  (void)arg;
  if (!open_ds(r, &p, &u, &f)) {
    return;
  }
  memset(&x, 0, sizeof(x));
  x.u = &u;
  x.s = f.s;
  user_close(&u, 1);
  x.want_reset = 1;
  cf_run(cf_opt.timeout_s, until_xfer, &x);
  if (!f.s->reset || f.s->reset_code != PRD_APP_USER_RESET) {
    cf_fail(r,
            "after the user's TCP RST: RESET_STREAM %s (code 0x%llx), "
            "expected USER_RESET (0x9)",
            f.s->reset ? "received" : "not received",
            (unsigned long long)f.s->reset_code);
  } else if (!f.s->stop || f.s->stop_code != PRD_APP_USER_RESET) {
    cf_fail(r,
            "after the user's TCP RST: STOP_SENDING %s (code 0x%llx), "
            "expected USER_RESET (0x9)",
            f.s->stop ? "received" : "not received",
            (unsigned long long)f.s->stop_code);
  }
  done(p);
}

static void t_ds_client_reset(cf_result *r, const void *arg) {
  uint64_t code = arg ? *(const uint64_t *)arg : PRD_APP_DESTINATION_RESET;
  cf_peer *p;
  user u;
  struct find_ds f;
  struct xfer x;
  if (!open_ds(r, &p, &u, &f)) {
    return;
  }
  memset(&x, 0, sizeof(x));
  x.u = &u;
  x.s = f.s;
  /* Bytes in flight towards the user make a reset observable as
   * ECONNRESET rather than a plain EOF. */
  cf_stream_reset(p, f.s, code);
  x.want_user_reset = 1;
  cf_run(cf_opt.timeout_s, until_xfer, &x);
  if (!u.reset) {
    /* A reset that arrives before we read looks like ECONNRESET on the
     * next read; an EOF is a clean close, which §6.3 forbids. */
    cf_fail(r, "after RESET_STREAM 0x%llx: the user's TCP connection %s",
            (unsigned long long)code,
            u.eof ? "was closed cleanly (FIN), not reset (RST)"
                  : "was neither reset nor closed");
  }
  user_close(&u, 0);
  done(p);
}

static const uint64_t code_unknown = 0x3fff;

static void t_ds_goaway(cf_result *r, const void *arg) {
  cf_peer *p = authed(r);
  user u;
  struct find_ds f;
  (void)arg;
  if (p == NULL) {
    return;
  }
  cf_ctrl_send(p, "\x05\x01\x00", 3);
  cf_run(0.3, NULL, NULL);
  if (!user_connect(r, &u)) {
    done(p);
    return;
  }
  memset(&f, 0, sizeof(f));
  f.p = p;
  f.u = &u;
  cf_run(QUIET_S, until_ds, &f);
  if (p->nstreams) {
    cf_fail(r, "the server opened data stream %lld after our GOAWAY",
            (long long)p->streams[0]->id);
  }
  user_close(&u, 1);
  done(p);
}

static void t_ds_before_auth(cf_result *r, const void *arg) {
  cf_peer *p = hello_challenge(r);
  user u;
  struct find_ds f;
  (void)arg;
  if (p == NULL) {
    return;
  }
  if (!user_connect(r, &u)) {
    done(p);
    return;
  }
  memset(&f, 0, sizeof(f));
  f.p = p;
  f.u = &u;
  /* Watch for less than the deadline, which keeps running. */
  cf_run(cf_opt.auth_timeout_s * 0.4 < 0.5 ? cf_opt.auth_timeout_s * 0.4 : 0.5,
         until_ds, &f);
  if (p->nstreams) {
    cf_fail(r, "data stream %lld opened before our AUTH_RESPONSE",
            (long long)p->streams[0]->id);
  } else {
    cf_send_response(p, cf_opt.psk, cf_opt.psklen, p->exporter);
    cf_run(cf_opt.timeout_s, until_ds, &f);
    if (f.s == NULL) {
      cf_fail(r, "the waiting user's data stream never came after "
                 "AUTH_RESULT(0)");
    }
  }
  user_close(&u, 1);
  done(p);
}

/* A negotiated client gets no data stream before its first SERVICES; after
 * SERVICES [default] it gets one, whose header has no SERVICE other than
 * `default` and no PORT_OFFSET (spec/02-framing.md §1.2, §3.7, §4.4). */
static void t_svc_ds(cf_result *r, const void *arg) {
  cf_peer *p = svc_authed(r, PRD_FLAG_SERVICES, 1);
  user u;
  struct find_ds f;
  prd_frame fr;
  char what[256];
  (void)arg;
  if (p == NULL) {
    return;
  }
  if (!user_connect(r, &u)) {
    done(p);
    return;
  }
  memset(&f, 0, sizeof(f));
  f.p = p;
  f.u = &u;
  cf_run(QUIET_S, until_ds, &f);
  if (p->nstreams) {
    cf_fail(r, "data stream %lld opened before our first SERVICES",
            (long long)p->streams[0]->id);
    goto out;
  }
  memset(&fr, 0, sizeof(fr));
  fr.type = PRD_FRAME_SERVICES;
  prd_services_add(&fr, PRD_SERVICE_DEFAULT, strlen(PRD_SERVICE_DEFAULT));
  cf_ctrl_frame(p, &fr);
  cf_run(cf_opt.timeout_s, until_ds, &f);
  if (f.s == NULL) {
    cf_describe(p, what, sizeof(what));
    cf_fail(r,
            "no data stream for the waiting user after SERVICES [default] "
            "(%s)",
            what);
  } else if (f.bad) {
    cf_fail(r, "invalid Stream Header (%s)", prd_strerror(f.bad));
  } else if (f.hd.has_service &&
             strcmp(f.hd.service, PRD_SERVICE_DEFAULT) != 0) {
    cf_fail(r, "SERVICE \"%s\" on a stream of the `default` user port",
            f.hd.service);
  } else if (f.hd.has_port_offset && f.hd.port_offset != 0) {
    cf_fail(r, "PORT_OFFSET %u on the `default` user port",
            (unsigned)f.hd.port_offset);
  } else if (p->closed) {
    cf_describe(p, what, sizeof(what));
    cf_fail(r, "%s", what);
  }
out:
  user_close(&u, 1);
  done(p);
}

/* A user of the second service (--service-tcp NAME=...): a client that
 * declared NAME gets a stream whose header carries SERVICE NAME
 * (spec/02-framing.md §4.4); a client that declared only `default`, or did
 * not negotiate SERVICES, gets no stream for it (§3.7, §4.4). |arg|: 0
 * declares NAME, 1 declares default, 2 does not negotiate. */
static void t_svc_second(cf_result *r, const void *arg) {
  int mode = *(const int *)arg;
  cf_peer *p;
  user u;
  struct find_ds f;
  prd_frame fr;
  const char *decl = mode == 0 ? cf_opt.svc_name : PRD_SERVICE_DEFAULT;
  char what[256];
  if (!cf_opt.have_svc_tcp) {
    cf_skip(r, "needs --service-tcp");
    return;
  }
  p = mode == 2 ? authed(r) : svc_authed(r, PRD_FLAG_SERVICES, 1);
  if (p == NULL) {
    return;
  }
  if (mode != 2) {
    memset(&fr, 0, sizeof(fr));
    fr.type = PRD_FRAME_SERVICES;
    prd_services_add(&fr, decl, strlen(decl));
    cf_ctrl_frame(p, &fr);
    cf_run(0.2, NULL, NULL);
  }
  if (!user_connect_to(r, &u, &cf_opt.svc_tcp, cf_opt.svc_tcplen)) {
    done(p);
    return;
  }
  memset(&f, 0, sizeof(f));
  f.p = p;
  f.u = &u;
  cf_run(mode == 0 ? cf_opt.timeout_s : QUIET_S, until_ds, &f);
  if (mode != 0) {
    if (p->nstreams) {
      cf_fail(r,
              "a data stream for a user of service \"%s\" on a client "
              "that %s",
              cf_opt.svc_name,
              mode == 1 ? "declared only default"
                        : "did not negotiate "
                          "SERVICES");
    }
  } else if (f.s == NULL) {
    cf_describe(p, what, sizeof(what));
    cf_fail(r, "no data stream for a user of service \"%s\" (%s)",
            cf_opt.svc_name, what);
  } else if (f.bad) {
    cf_fail(r, "invalid Stream Header (%s)", prd_strerror(f.bad));
  } else if (!f.hd.has_service || strcmp(f.hd.service, cf_opt.svc_name)) {
    cf_fail(r, "the Stream Header has %s%s%s, not SERVICE \"%s\"",
            f.hd.has_service ? "SERVICE \"" : "no SERVICE",
            f.hd.has_service ? f.hd.service : "", f.hd.has_service ? "\"" : "",
            cf_opt.svc_name);
  }
  user_close(&u, 1);
  done(p);
}

static const int sv_declared = 0, sv_default_only = 1, sv_not_negotiated = 2;

/* ---- client names, spec/02-framing.md §3.3, spec/03-auth.md §4.1 ------ */

typedef enum name_mode {
  NM_KNOWN,     /* --client's name and key: authenticated */
  NM_UNKNOWN,   /* a name the server has no client of, --client's key */
  NM_WRONG_KEY, /* --client's name, a wrong key */
  NM_SAME,      /* NM_UNKNOWN and NM_WRONG_KEY get the same bytes */
  NM_LEN0,      /* CLIENT_NAME, but no Name (Length 32) */
  NM_LEN65      /* a Name of 65 bytes (Length 97) */
} name_mode;

#define CF_NOSUCH_CLIENT "prd-cf-nosuch-client"

/* name_send: AUTH_RESPONSE with the named MAC of |name| under |psk|. */
static void name_send(cf_peer *p, const char *name, const uint8_t *psk,
                      size_t psklen) {
  const prd_frame *ch = cf_find_frame(p, PRD_FRAME_AUTH_CHALLENGE);
  prd_frame fr;
  memset(&fr, 0, sizeof(fr));
  fr.type = PRD_FRAME_AUTH_RESPONSE;
  fr.u.response.namelen = strlen(name);
  memcpy(fr.u.response.name, name, fr.u.response.namelen + 1);
  prd_auth_compute_mac_named(
      fr.u.response.mac, psk, psklen, p->exporter, ch->u.challenge.challenge,
      ch->u.challenge.challengelen, name, fr.u.response.namelen);
  cf_ctrl_frame(p, &fr);
}

/* name_refused: HELLO(Flags 2) and a named response that must fail with
 * AUTH_FAILED; |*tail| gets the control bytes after AUTH_CHALLENGE. */
static cf_peer *name_refused(cf_result *r, const char *name, const uint8_t *psk,
                             size_t psklen, const char *what_sent,
                             uint8_t *tail, size_t *taillen) {
  cf_peer *p = svc_challenge(r, PRD_FLAG_CLIENT_NAME);
  const prd_frame *res;
  prd_frame ch;
  prd_ssize n;
  if (p == NULL) {
    return NULL;
  }
  name_send(p, name, psk, psklen);
  if (!expect_app_close(r, p, PRD_APP_AUTH_FAILED, REACT_S, what_sent)) {
    done(p);
    return NULL;
  }
  res = cf_find_frame(p, PRD_FRAME_AUTH_RESULT);
  if (res && res->u.result.status != PRD_APP_AUTH_FAILED) {
    cf_fail(r, "after %s: AUTH_RESULT Status %llu, expected 4 (AUTH_FAILED)",
            what_sent, (unsigned long long)res->u.result.status);
    done(p);
    return NULL;
  }
  n = prd_frame_decode_ex(&ch, p->ctrl_rx, p->ctrl_rxlen, p->hello_flags);
  *taillen = 0;
  if (n > 0) {
    *taillen = p->ctrl_rxlen - (size_t)n;
    memcpy(tail, p->ctrl_rx + n, *taillen);
  }
  return p;
}

static void t_name(cf_result *r, const void *arg) {
  name_mode mode = *(const name_mode *)arg;
  uint8_t wrong[1024], tail[2][CF_CTRL_MAX], buf[160];
  size_t taillen[2];
  cf_peer *p, *q;
  const prd_frame *res;
  char what[256], hex[2][128];
  if (!cf_opt.have_client) {
    cf_skip(r, "needs --client");
    return;
  }
  /* --client's key with one byte changed, so a length check cannot tell */
  memcpy(wrong, cf_opt.client_psk, cf_opt.client_psklen);
  wrong[0] ^= 0x55;
  switch (mode) {
  case NM_KNOWN:
    p = svc_challenge(r, PRD_FLAG_CLIENT_NAME);
    if (p == NULL) {
      return;
    }
    name_send(p, cf_opt.client_name, cf_opt.client_psk, cf_opt.client_psklen);
    cf_wait_frame(p, PRD_FRAME_AUTH_RESULT, cf_opt.timeout_s);
    res = cf_find_frame(p, PRD_FRAME_AUTH_RESULT);
    cf_describe(p, what, sizeof(what));
    if (p->ctrl_bad) {
      cf_fail(r, "the server sent a malformed control frame");
    } else if (res == NULL || res->u.result.status != 0) {
      cf_fail(r,
              "expected AUTH_RESULT(0) for client \"%s\" with its key, got "
              "%s%llu: %s",
              cf_opt.client_name, res ? "status " : "none",
              res ? (unsigned long long)res->u.result.status : 0ULL, what);
    } else if (!res->u.result.has_flags ||
               !(res->u.result.flags & PRD_FLAG_CLIENT_NAME)) {
      cf_fail(r, "AUTH_RESULT(0) %s, not Flags with bit 1 (CLIENT_NAME)",
              res->u.result.has_flags ? "Flags without bit 1"
                                      : "without Flags");
    } else {
      expect_open(r, p, 0.3, "AUTH_RESULT(0) for a named client");
    }
    done(p);
    return;
  case NM_UNKNOWN:
  case NM_WRONG_KEY:
    done(mode == NM_UNKNOWN
             ? name_refused(r, CF_NOSUCH_CLIENT, cf_opt.client_psk,
                            cf_opt.client_psklen,
                            "AUTH_RESPONSE naming an unknown client", tail[0],
                            &taillen[0])
             : name_refused(r, cf_opt.client_name, wrong, cf_opt.client_psklen,
                            "AUTH_RESPONSE naming --client with a wrong key",
                            tail[0], &taillen[0]));
    return;
  case NM_SAME:
    p = name_refused(
        r, CF_NOSUCH_CLIENT, cf_opt.client_psk, cf_opt.client_psklen,
        "AUTH_RESPONSE naming an unknown client", tail[0], &taillen[0]);
    if (p == NULL) {
      return;
    }
    q = name_refused(r, cf_opt.client_name, wrong, cf_opt.client_psklen,
                     "AUTH_RESPONSE naming --client with a wrong key", tail[1],
                     &taillen[1]);
    if (q == NULL) {
      done(p);
      return;
    }
    if (taillen[0] != taillen[1] || memcmp(tail[0], tail[1], taillen[0]) ||
        p->close_code != q->close_code) {
      hexstr(hex[0], sizeof(hex[0]), tail[0], taillen[0]);
      hexstr(hex[1], sizeof(hex[1]), tail[1], taillen[1]);
      cf_fail(r,
              "an unknown name got [%s] and close 0x%llx, a wrong key got "
              "[%s] and close 0x%llx",
              hex[0], (unsigned long long)p->close_code, hex[1],
              (unsigned long long)q->close_code);
    }
    done(q);
    done(p);
    return;
  case NM_LEN0:
  case NM_LEN65: {
    /* Type 0x03, Length 32 (no Name) or 97 (a 2-byte varint), the MAC:
     * for Length 32 the right unnamed MAC of --psk-file, which only a
     * server that ignores CLIENT_NAME would accept. */
    const prd_frame *ch;
    size_t n = 0;
    p = svc_challenge(r, PRD_FLAG_CLIENT_NAME);
    if (p == NULL) {
      return;
    }
    ch = cf_find_frame(p, PRD_FRAME_AUTH_CHALLENGE);
    buf[n++] = PRD_FRAME_AUTH_RESPONSE;
    if (mode == NM_LEN0) {
      buf[n++] = 32;
    } else {
      buf[n++] = 0x40;
      buf[n++] = 32 + 65;
    }
    prd_auth_compute_mac(buf + n, cf_opt.psk, cf_opt.psklen, p->exporter,
                         ch->u.challenge.challenge,
                         ch->u.challenge.challengelen);
    n += 32;
    if (mode == NM_LEN65) {
      memset(buf + n, 'a', 65);
      n += 65;
    }
    cf_ctrl_send(p, buf, n);
    expect_app_close(r, p, PRD_APP_PROTOCOL_ERROR, REACT_S,
                     mode == NM_LEN0
                         ? "HELLO(Flags 2) and AUTH_RESPONSE without a Name"
                         : "HELLO(Flags 2) and AUTH_RESPONSE with a 65-byte "
                           "Name");
    done(p);
    return;
  }
  }
}

static const name_mode nm_known = NM_KNOWN, nm_unknown = NM_UNKNOWN,
                       nm_wrong_key = NM_WRONG_KEY, nm_same = NM_SAME,
                       nm_len0 = NM_LEN0, nm_len65 = NM_LEN65;

/* ---- DATAGRAMS, spec/10-udp.md §2 ------------------------------------- */

/* dgram_authed: HELLO with SERVICES and DATAGRAMS, our
 * max_datagram_frame_size advertised (an endpoint that sets bit 2 must,
 * spec/10-udp.md §2), the exchange, AUTH_RESULT(0). */
static cf_peer *dgram_authed_flags(cf_result *r, uint64_t flags) {
  cf_conn_opts o = {.max_dgram_frame = 65535};
  cf_peer *p = connect_hs(r, &o);
  const prd_frame *res;
  char what[256];
  if (p == NULL) {
    return NULL;
  }
  cf_send_hello(p, PRD_PROTOCOL_VERSION, flags);
  if (!cf_wait_frame(p, PRD_FRAME_AUTH_CHALLENGE, cf_opt.timeout_s)) {
    cf_describe(p, what, sizeof(what));
    cf_fail(r, "no AUTH_CHALLENGE in reply to HELLO(Flags %llu): %s",
            (unsigned long long)flags, what);
    done(p);
    return NULL;
  }
  cf_send_response(p, cf_opt.psk, cf_opt.psklen, p->exporter);
  if (!cf_wait_frame(p, PRD_FRAME_AUTH_RESULT, cf_opt.timeout_s) ||
      (res = cf_find_frame(p, PRD_FRAME_AUTH_RESULT))->u.result.status != 0) {
    cf_describe(p, what, sizeof(what));
    cf_fail(r, "no AUTH_RESULT(0) after HELLO(Flags %llu): %s%s",
            (unsigned long long)flags, what,
            p->ctrl_bad ? " (malformed control frame)" : "");
    done(p);
    return NULL;
  }
  return p;
}

static cf_peer *dgram_authed(cf_result *r) {
  return dgram_authed_flags(r, PRD_FLAG_SERVICES | PRD_FLAG_DATAGRAMS);
}

/* t_dgram_flags: |arg| 1: a server with a UDP service (--service-udp)
 * echoes DATAGRAMS and advertises max_datagram_frame_size; 0: a server
 * that advertises no max_datagram_frame_size does not echo it. */
static void t_dgram_flags(cf_result *r, const void *arg) {
  int has_udp = *(const int *)arg;
  cf_peer *p;
  const prd_frame *res;
  const ngtcp2_transport_params *tp;
  int echoed;
  if (has_udp && !cf_opt.have_svc_udp) {
    cf_skip(r, "needs --service-udp");
    return;
  }
  if (!has_udp && cf_opt.have_svc_udp) {
    cf_skip(r, "the server has a UDP service (--service-udp)");
    return;
  }
  p = dgram_authed(r);
  if (p == NULL) {
    return;
  }
  res = cf_find_frame(p, PRD_FRAME_AUTH_RESULT);
  tp = cf_remote_params(p);
  echoed = res->u.result.has_flags &&
           (res->u.result.flags & PRD_FLAG_DATAGRAMS) != 0;
  if (has_udp) {
    if (!echoed) {
      cf_fail(r,
              "HELLO Flags 5 to a server with UDP service \"%s\": AUTH_RESULT "
              "%s",
              cf_opt.svc_udp_name,
              res->u.result.has_flags ? "Flags without bit 2"
                                      : "without Flags");
    } else if (tp == NULL || tp->max_datagram_frame_size == 0) {
      cf_fail(r, "DATAGRAMS echoed without max_datagram_frame_size");
    } else {
      expect_open(r, p, 0.3, "AUTH_RESULT(0) with DATAGRAMS");
    }
  } else if (tp && tp->max_datagram_frame_size != 0) {
    cf_skip(r,
            "the server advertises max_datagram_frame_size %llu: it may have "
            "a UDP service (give --service-udp)",
            (unsigned long long)tp->max_datagram_frame_size);
  } else if (echoed) {
    cf_fail(r,
            "AUTH_RESULT Flags 0x%llx echoes DATAGRAMS from a server "
            "without max_datagram_frame_size (no UDP service)",
            (unsigned long long)res->u.result.flags);
  } else {
    expect_open(r, p, 0.3, "AUTH_RESULT(0) without DATAGRAMS");
  }
  done(p);
}

static const int dg_udp = 1, dg_none = 0;

struct dgram_wait {
  cf_peer *p;
  int n; /* wait until more than n DATAGRAM frames came */
};

static int until_dgram(void *arg) {
  struct dgram_wait *w = arg;
  return w->p->ndgram_rx > w->n || w->p->closed;
}

/* dgram_user: a user datagram to the UDP service until the server sends
 * the next DATAGRAM frame (retried: UDP may lose it). 1 when one came. */
static int dgram_user(cf_peer *p, int fd, const char *payload) {
  struct dgram_wait w = {p, p->ndgram_rx};
  for (double t = 0; t < cf_opt.timeout_s && !p->closed; t += 0.5) {
    if (send(fd, payload, strlen(payload), 0) < 0) {
      return 0;
    }
    if (cf_run(0.5, until_dgram, &w)) {
      return p->ndgram_rx > w.n;
    }
  }
  return 0;
}

/* dgram_decode: the last DATAGRAM frame received; 0 on success, else a
 * failure is set. */
static int dgram_decode(cf_result *r, cf_peer *p, prd_udp_dgram *d,
                        uint64_t type, const char *payload) {
  int i = p->ndgram_rx - 1;
  char hex[3 * 32];
  size_t plen = strlen(payload);
  int rv = prd_udp_dgram_decode(d, p->dgram_rx[i], p->dgram_rxlen[i]);
  hexstr(hex, sizeof(hex), p->dgram_rx[i],
         p->dgram_rxlen[i] < 32 ? p->dgram_rxlen[i] : 32);
  if (rv != 0) {
    cf_fail(r, "a malformed DATAGRAM payload [%s]: %s", hex, prd_strerror(rv));
  } else if (d->type != type) {
    cf_fail(r, "a DATAGRAM of Type 0x%llx [%s], expected %s",
            (unsigned long long)d->type, hex,
            type == PRD_UDP_FLOW_OPEN ? "FLOW_OPEN" : "FLOW_DATA");
  } else if (d->payloadlen != plen || memcmp(d->payload, payload, plen)) {
    cf_fail(r, "the Payload is not the user's datagram \"%s\" [%s]", payload,
            hex);
  } else {
    return 0;
  }
  return -1;
}

/* Without DATAGRAMS negotiated (HELLO Flags 1, though we advertise
 * max_datagram_frame_size and declare the UDP service), the server sends
 * no DATAGRAM frame for a user's datagrams (spec/10-udp.md §2). */
static void t_dgram_not_negotiated(cf_result *r, const void *arg) {
  cf_peer *p;
  prd_frame fr;
  int fd;
  (void)arg;
  if (!cf_opt.have_svc_udp) {
    cf_skip(r, "needs --service-udp");
    return;
  }
  p = dgram_authed_flags(r, PRD_FLAG_SERVICES);
  if (p == NULL) {
    return;
  }
  memset(&fr, 0, sizeof(fr));
  fr.type = PRD_FRAME_SERVICES;
  prd_services_add(&fr, cf_opt.svc_udp_name, strlen(cf_opt.svc_udp_name));
  cf_ctrl_frame(p, &fr);
  cf_run(0.2, NULL, NULL);
  fd = socket(cf_opt.svc_udp.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || connect(fd, (const struct sockaddr *)&cf_opt.svc_udp,
                        cf_opt.svc_udplen) != 0) {
    cf_fail(r, "cannot open the user's UDP socket: %s", strerror(errno));
    if (fd >= 0) {
      close(fd);
    }
    done(p);
    return;
  }
  for (int i = 0; i < 4 && p->ndgram_rx == 0; ++i) {
    if (send(fd, "prd-cf-udp-up", 13, 0) < 0) {
      break;
    }
    cf_run(QUIET_S / 4, NULL, NULL);
  }
  if (p->ndgram_rx) {
    cf_fail(r, "%d DATAGRAM frame(s) on a connection without DATAGRAMS",
            p->ndgram_rx);
  }
  close(fd);
  done(p);
}

/* A user's datagram reaches the client as FLOW_OPEN (service, offset 0,
 * the user's address), the client's FLOW_DATA reaches the user, and the
 * next user datagram of the confirmed flow comes as FLOW_DATA
 * (spec/10-udp.md §3.1, §3.2). */
static void t_dgram_relay(cf_result *r, const void *arg) {
  cf_peer *p;
  prd_udp_dgram d, up;
  prd_frame fr;
  const prd_frame *res;
  uint8_t buf[256];
  struct sockaddr_storage me;
  socklen_t melen = sizeof(me);
  int fd;
  prd_ssize n;
  char got[64];
  ssize_t k = -1;
  uint16_t myport;
  static const char down[] = "prd-cf-udp-down";
  (void)arg;
  if (!cf_opt.have_svc_udp) {
    cf_skip(r, "needs --service-udp");
    return;
  }
  p = dgram_authed(r);
  if (p == NULL) {
    return;
  }
  res = cf_find_frame(p, PRD_FRAME_AUTH_RESULT);
  if (!res->u.result.has_flags ||
      (res->u.result.flags & (PRD_FLAG_SERVICES | PRD_FLAG_DATAGRAMS)) !=
          (PRD_FLAG_SERVICES | PRD_FLAG_DATAGRAMS)) {
    cf_fail(r,
            "SERVICES and DATAGRAMS not both negotiated (AUTH_RESULT "
            "Flags 0x%llx)",
            (unsigned long long)res->u.result.flags);
    done(p);
    return;
  }
  memset(&fr, 0, sizeof(fr));
  fr.type = PRD_FRAME_SERVICES;
  prd_services_add(&fr, cf_opt.svc_udp_name, strlen(cf_opt.svc_udp_name));
  cf_ctrl_frame(p, &fr);
  cf_run(0.2, NULL, NULL);
  fd = socket(cf_opt.svc_udp.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0 ||
      connect(fd, (const struct sockaddr *)&cf_opt.svc_udp,
              cf_opt.svc_udplen) != 0 ||
      getsockname(fd, (struct sockaddr *)&me, &melen) != 0) {
    cf_fail(r, "cannot open the user's UDP socket: %s", strerror(errno));
    if (fd >= 0) {
      close(fd);
    }
    done(p);
    return;
  }
  myport =
      ntohs(me.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&me)->sin6_port
                                     : ((struct sockaddr_in *)&me)->sin_port);
  if (!dgram_user(p, fd, "prd-cf-udp-up")) {
    cf_fail(r,
            "no DATAGRAM frame for a user datagram to service \"%s\" "
            "within %.1f s",
            cf_opt.svc_udp_name, cf_opt.timeout_s);
    goto out;
  }
  if (dgram_decode(r, p, &up, PRD_UDP_FLOW_OPEN, "prd-cf-udp-up") != 0) {
    goto out;
  }
  if (strcmp(up.service, cf_opt.svc_udp_name) != 0 || up.port_offset != 0 ||
      up.source.port != myport) {
    cf_fail(r,
            "FLOW_OPEN for service \"%s\" offset %u from port %u, expected "
            "\"%s\" offset 0 from the user's port %u",
            up.service, (unsigned)up.port_offset, (unsigned)up.source.port,
            cf_opt.svc_udp_name, (unsigned)myport);
    goto out;
  }
  /* The reply, FLOW_DATA, until the user has it (retried: UDP may lose
   * it). */
  memset(&d, 0, sizeof(d));
  d.type = PRD_UDP_FLOW_DATA;
  d.flow_id = up.flow_id;
  n = prd_udp_dgram_encode_hdr(buf, sizeof(buf), &d);
  if (n < 0) {
    cf_fail(r, "cannot encode FLOW_DATA: %s", prd_strerror((int)n));
    goto out;
  }
  memcpy(buf + n, down, sizeof(down) - 1);
  for (double t = 0; t < cf_opt.timeout_s && k < 0; t += 0.3) {
    cf_dgram_send(p, buf, (size_t)n + sizeof(down) - 1);
    cf_run(0.3, NULL, NULL);
    k = recv(fd, got, sizeof(got), MSG_DONTWAIT);
  }
  if (k != (ssize_t)sizeof(down) - 1 || memcmp(got, down, (size_t)k)) {
    cf_fail(r,
            "the user did not receive the client's FLOW_DATA \"%s\" "
            "within %.1f s",
            down, cf_opt.timeout_s);
    goto out;
  }
  /* The flow is confirmed: the next user datagram comes as FLOW_DATA. */
  if (!dgram_user(p, fd, "prd-cf-udp-again")) {
    cf_fail(r, "no DATAGRAM frame for a second user datagram");
    goto out;
  }
  if (dgram_decode(r, p, &d, PRD_UDP_FLOW_DATA, "prd-cf-udp-again") == 0 &&
      d.flow_id != up.flow_id) {
    cf_fail(r, "FLOW_DATA with Flow ID %llu, the flow's is %llu",
            (unsigned long long)d.flow_id, (unsigned long long)up.flow_id);
  }
out:
  close(fd);
  done(p);
}

/* ---- the TCP path, spec/11-tcp-path.md §2 (optional part) ------------- */

#define TCP_PREFACE "\x50\x52\x44\x2d\x51\x4f\x54\x01" /* "PRD-QOT", 1 */

typedef struct tcp_probe {
  const char *what; /* for diagnostics */
  const char *send; /* bytes sent (hex) */
  int answer;       /* 1: the server answers with its preface (8 bytes) */
  int closes;       /* 1: then closes the TCP connection */
} tcp_probe;

/* t_tcp_path connects to --tcp-path, sends |send| and reads what comes
 * back until EOF or a reset, or QUIET_S / REACT_S of silence. */
static void t_tcp_path(cf_result *r, const void *arg) {
  const tcp_probe *t = arg;
  uint8_t out[128], in[256];
  size_t n = unhex(out, sizeof(out), t->send), got = 0;
  int fd, eof = 0, err = 0;
  uint64_t deadline;
  char hex[3 * 32];
  if (!cf_opt.have_tcp_path) {
    cf_skip(r, "needs --tcp-path (the TCP path is optional)");
    return;
  }
  fd = socket(cf_opt.tcp_path.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || connect(fd, (const struct sockaddr *)&cf_opt.tcp_path,
                        cf_opt.tcp_pathlen) != 0) {
    cf_fail(r, "cannot connect to --tcp-path: %s", strerror(errno));
    if (fd >= 0) {
      close(fd);
    }
    return;
  }
  if (write(fd, out, n) != (ssize_t)n) {
    cf_fail(r, "cannot send %s: %s", t->send, strerror(errno));
    close(fd);
    return;
  }
  /* Wait for EOF when the server must close, else until the preface. */
  deadline =
      cf_now() + (uint64_t)((t->closes ? REACT_S : cf_opt.timeout_s) * 1e9);
  while (!eof && !err && cf_now() < deadline && (t->closes || got < 8) &&
         got < sizeof(in)) {
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    int ms = (int)((deadline - cf_now()) / 1000000) + 1;
    ssize_t k;
    if (poll(&pfd, 1, ms) <= 0) {
      continue;
    }
    k = read(fd, in + got, sizeof(in) - got);
    if (k > 0) {
      got += (size_t)k;
    } else if (k == 0) {
      eof = 1;
    } else if (errno != EINTR && errno != EAGAIN) {
      err = errno; /* a reset closes as well */
    }
  }
  close(fd);
  hexstr(hex, sizeof(hex), in, got < 32 ? got : 32);
  if (t->answer && (got < 8 || memcmp(in, TCP_PREFACE, 8) != 0)) {
    cf_fail(r,
            "after %s: expected the preface 50 52 44 2d 51 4f 54 01, got "
            "[%s]%s",
            t->what, hex, eof ? " and EOF" : "");
  } else if (!t->answer && got > 0) {
    cf_fail(r, "after %s: expected the connection closed unanswered, got [%s]",
            t->what, hex);
  } else if (t->closes && got > (t->answer ? 8u : 0u)) {
    cf_fail(r, "after %s: expected nothing after the preface, got [%s]",
            t->what, hex);
  } else if (t->closes && !eof && !err) {
    cf_fail(r, "after %s: the TCP connection is still open after %.1f s",
            t->what, REACT_S);
  }
}

/* tcp_drain reads --tcp-path's answer for |secs| or until EOF or a reset;
 * returns 1 when the server closed the connection. */
static int tcp_drain(int fd, double secs, size_t *pgot) {
  uint64_t deadline = cf_now() + (uint64_t)(secs * 1e9);
  uint8_t in[4096];
  while (cf_now() < deadline) {
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    int ms = (int)((deadline - cf_now()) / 1000000) + 1;
    ssize_t k;
    if (poll(&pfd, 1, ms) <= 0) {
      continue;
    }
    k = read(fd, in, sizeof(in));
    if (k > 0) {
      *pgot += (size_t)k;
    } else if (k == 0 || (errno != EINTR && errno != EAGAIN)) {
      return 1;
    }
  }
  return 0;
}

/* A record of Length 65527 (not a QUIC packet: dropped, spec/11-tcp-path.md
 * §2.3) is accepted: the connection stays open, and a record of Length 0
 * behind it is still seen as one (§2.2). */
static void t_tcp_big(cf_result *r, const void *arg) {
  static uint8_t out[8 + 2 + 65527];
  size_t got = 0, off = 0;
  int fd;
  (void)arg;
  if (!cf_opt.have_tcp_path) {
    cf_skip(r, "needs --tcp-path (the TCP path is optional)");
    return;
  }
  memcpy(out, TCP_PREFACE, 8);
  out[8] = 65527 >> 8;
  out[9] = 65527 & 0xff;
  memset(out + 10, 0, 65527); /* first byte 0: no QUIC packet (fixed bit) */
  fd = socket(cf_opt.tcp_path.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || connect(fd, (const struct sockaddr *)&cf_opt.tcp_path,
                        cf_opt.tcp_pathlen) != 0) {
    cf_fail(r, "cannot connect to --tcp-path: %s", strerror(errno));
    if (fd >= 0) {
      close(fd);
    }
    return;
  }
  while (off < sizeof(out)) {
    ssize_t k = write(fd, out + off, sizeof(out) - off);
    if (k <= 0) {
      cf_fail(r, "the server stopped reading a record of Length 65527: %s",
              k < 0 ? strerror(errno) : "EOF");
      close(fd);
      return;
    }
    off += (size_t)k;
  }
  if (tcp_drain(fd, QUIET_S, &got)) {
    cf_fail(r,
            "a record of Length 65527 closed the TCP connection (%zu "
            "bytes came first)",
            got);
  } else if (got < 8) {
    cf_fail(r, "no preface in answer (%zu bytes)", got);
  } else if (write(fd, "\0\0", 2) != 2 || !tcp_drain(fd, REACT_S, &got)) {
    cf_fail(r,
            "a record of Length 0 after a record of Length 65527 did not "
            "close the TCP connection within %.1f s",
            REACT_S);
  }
  close(fd);
}

static const tcp_probe tp_preface = {"our preface", "50 52 44 2d 51 4f 54 01",
                                     1, 0},
                       tp_garbage = {"8 bytes other than the Magic",
                                     "47 45 54 20 2f 20 48 54", 0, 1},
                       tp_len0 = {"the preface and a record of Length 0",
                                  "50 52 44 2d 51 4f 54 01 00 00", 1, 1},
                       tp_version = {"a preface with Version 2",
                                     "50 52 44 2d 51 4f 54 02", 1, 1};

/* ---- the table -------------------------------------------------------- */

#define F02 "spec/02-framing.md"
#define F03 "spec/03-auth.md"
#define F04 "spec/04-quic-profile.md"
#define F05 "spec/05-errors.md"
#define F10 "spec/10-udp.md"
#define F11 "spec/11-tcp-path.md"

const cf_test cf_server_tests[] = {
    /* authentication, spec/03 and spec/02 §3.1–§3.4 */
    {"srv-auth-ok", F03, "§4", "MUST",
     "HELLO, AUTH_RESPONSE with the right MAC: AUTH_CHALLENGE then "
     "AUTH_RESULT(0), connection stays up",
     0, t_auth_ok, NULL},
    {"srv-challenge", F02, "§3.2", "MUST",
     "AUTH_CHALLENGE in reply to HELLO: Version 1, a 32-byte Challenge, "
     "nothing else",
     0, t_challenge, NULL},
    {"srv-challenge-fresh", F02, "§3.2", "MUST",
     "the Challenge is fresh on every connection", 0, t_challenge_fresh, NULL},
    {"srv-bad-mac", F03, "§4", "MUST",
     "a wrong MAC: AUTH_RESULT(AUTH_FAILED) and CONNECTION_CLOSE(AUTH_FAILED)",
     0, t_bad_mac, NULL},
    {"srv-mac-other-exporter", F03, "§2", "MUST",
     "a MAC over another connection's TLS exporter is refused with "
     "AUTH_FAILED",
     0, t_mac_other_session, NULL},
    {"srv-mac-replayed", F03, "§1", "MUST",
     "an AUTH_RESPONSE replayed from another connection is refused with "
     "AUTH_FAILED",
     0, t_mac_other_session, "replay"},
    {"srv-deadline-no-hello", F03, "§5", "MUST",
     "no HELLO: CONNECTION_CLOSE(AUTH_TIMEOUT) at the deadline", 0, t_deadline,
     NULL},
    {"srv-deadline-no-response", F03, "§5", "MUST",
     "HELLO but no AUTH_RESPONSE: CONNECTION_CLOSE(AUTH_TIMEOUT) at the "
     "deadline",
     0, t_deadline, "hello"},
    {"srv-deadline-disarmed", F03, "§5", "MUST",
     "the deadline is disarmed on AUTHENTICATED", 0, t_deadline_disarmed, NULL},
    {"srv-hello-version0", F02, "§3.1", "MUST",
     "HELLO Version 0: CONNECTION_CLOSE(VERSION_MISMATCH), no AUTH_CHALLENGE",
     0, t_bad_bytes, &b_hello_version0},
    {"srv-hello-version-high", F02, "§3.1", "MUST",
     "HELLO Version 16383: AUTH_CHALLENGE selects Version 1", 0,
     t_hello_version, "high"},
    {"srv-hello-flags", F02, "§3.1", "MUST NOT",
     "HELLO with unknown Flags bits is not rejected", 0, t_hello_version, NULL},
    {"srv-split-frames", F02, "§1.1", "MUST",
     "control frames split into one-byte STREAM frames are reassembled", 0,
     t_split, NULL},
    /* frames out of order, wrong direction */
    {"srv-response-before-hello", F03, "§4", "MUST",
     "AUTH_RESPONSE before HELLO: PROTOCOL_ERROR", 0, t_bad_bytes,
     &b_response_first},
    {"srv-goaway-before-hello", F02, "§3.5", "MUST",
     "GOAWAY before authentication (first frame): PROTOCOL_ERROR", 0,
     t_bad_bytes, &b_goaway_first},
    {"srv-goaway-wait-response", F02, "§3.5", "MUST",
     "GOAWAY in WAIT_RESPONSE: PROTOCOL_ERROR", 0, t_bad_bytes,
     &b_goaway_wait_response},
    {"srv-challenge-from-client", F02, "§3", "MUST",
     "AUTH_CHALLENGE from the client (wrong direction): PROTOCOL_ERROR", 0,
     t_bad_bytes, &b_challenge_from_client},
    {"srv-result-from-client", F02, "§3", "MUST",
     "AUTH_RESULT from the client (wrong direction): PROTOCOL_ERROR", 0,
     t_bad_bytes, &b_result_from_client},
    {"srv-hello-twice", F02, "§3.1", "MUST", "a second HELLO: PROTOCOL_ERROR",
     0, t_bad_bytes, &b_hello_twice},
    {"srv-hello-after-auth", F03, "§4", "MUST",
     "HELLO after AUTH_RESULT(0): PROTOCOL_ERROR", 0, t_bad_bytes,
     &b_hello_authed},
    {"srv-response-after-auth", F02, "§3.3", "MUST",
     "a second AUTH_RESPONSE after AUTH_RESULT(0): PROTOCOL_ERROR", 0,
     t_bad_bytes, &b_response_authed},
    {"srv-response-len31", F02, "§3.3", "MUST",
     "AUTH_RESPONSE with Length 31: PROTOCOL_ERROR", 0, t_bad_bytes,
     &b_response_short},
    {"srv-response-len33", F02, "§3.3", "MUST",
     "AUTH_RESPONSE with Length 33: PROTOCOL_ERROR", 0, t_bad_bytes,
     &b_response_long},
    /* unknown types, varints, lengths */
    {"srv-unknown-type", F02, "§3", "MUST",
     "unknown frame type 0x06: PROTOCOL_ERROR, never skipped", 0, t_bad_bytes,
     &b_unknown_type},
    {"srv-unknown-type-early", F02, "§3", "MUST",
     "unknown frame type: PROTOCOL_ERROR as soon as Type is complete (no "
     "Length sent)",
     0, t_bad_bytes, &b_unknown_type_only},
    {"srv-reserved-type0", F02, "§3.6", "MUST",
     "reserved frame type 0x00: PROTOCOL_ERROR", 0, t_bad_bytes,
     &b_reserved_type0},
    {"srv-extension-type", F02, "§3.6", "MUST",
     "un-negotiated extension frame type 0x40: PROTOCOL_ERROR", 0, t_bad_bytes,
     &b_ext_type},
    {"srv-unknown-after-auth", F02, "§3", "MUST",
     "unknown frame type 0x3f after AUTH_RESULT(0): PROTOCOL_ERROR", 0,
     t_bad_bytes, &b_unknown_authed},
    {"srv-nonminimal-type", F02, "§2", "MUST",
     "non-minimal varint in Type (40 01): PROTOCOL_ERROR", 0, t_bad_bytes,
     &b_nonmin_type},
    {"srv-nonminimal-length", F02, "§2", "MUST",
     "non-minimal varint in Length (40 02): PROTOCOL_ERROR", 0, t_bad_bytes,
     &b_nonmin_length},
    {"srv-nonminimal-version", F02, "§2", "MUST",
     "non-minimal varint in HELLO Version: PROTOCOL_ERROR", 0, t_bad_bytes,
     &b_nonmin_version},
    {"srv-nonminimal-goaway", F02, "§2", "MUST",
     "non-minimal varint in GOAWAY Error Code: PROTOCOL_ERROR", 0, t_bad_bytes,
     &b_nonmin_goaway},
    {"srv-oversized-early", F02, "§3", "MUST NOT",
     "Length 1025: PROTOCOL_ERROR without waiting for the payload", 0,
     t_bad_bytes, &b_oversized_hdr},
    {"srv-huge-length", F02, "§5", "MUST NOT",
     "Length 2^62-1: PROTOCOL_ERROR, nothing buffered", 0, t_bad_bytes,
     &b_huge_length},
    {"srv-trailing-byte", F02, "§3", "MUST",
     "HELLO with a trailing byte: PROTOCOL_ERROR", 0, t_bad_bytes, &b_trailing},
    {"srv-missing-field", F02, "§3", "MUST",
     "HELLO without Flags: PROTOCOL_ERROR", 0, t_bad_bytes, &b_short},
    {"srv-goaway-trailing", F02, "§3.5", "MUST",
     "GOAWAY whose payload is not exactly one varint: PROTOCOL_ERROR", 0,
     t_bad_bytes, &b_trailing_goaway},
    /* GOAWAY and stream 0 */
    {"srv-goaway-accepted", F02, "§3.5", "MUST",
     "GOAWAY(NO_ERROR) after authentication closes nothing", 0, t_goaway,
     "05 01 00"},
    {"srv-goaway-repeated", F02, "§3.5", "MUST",
     "repeated GOAWAY frames (in one STREAM frame) are accepted", 0, t_goaway,
     "05 01 00 05 01 06 05 01 00"},
    {"srv-goaway-unknown-code", F05, "§4", "MUST NOT",
     "GOAWAY with an unknown Error Code takes effect unchanged", 0, t_goaway,
     "05 02 7f ff"},
    {"srv-ctrl-fin", F02, "§1.1", "MUST", "FIN on stream 0: PROTOCOL_ERROR", 0,
     t_ctrl_end, "FIN"},
    {"srv-ctrl-reset", F02, "§1.1", "MUST",
     "RESET_STREAM on stream 0: PROTOCOL_ERROR", 0, t_ctrl_end, "RESET_STREAM"},
    {"srv-ctrl-stop-sending", F02, "§1.1", "MUST",
     "STOP_SENDING on stream 0: PROTOCOL_ERROR", 0, t_ctrl_end, "STOP_SENDING"},
    {"srv-ctrl-fin-with-hello", F02, "§1.1", "MUST",
     "HELLO with FIN on stream 0: PROTOCOL_ERROR", 0, t_ctrl_fin_hello, NULL},
    /* QUIC and TLS profile */
    {"srv-alpn-mismatch", F04, "§1", "MUST",
     "offering only ALPN portredirect/2: TLS alert no_application_protocol "
     "(0x178)",
     0, t_alpn, "portredirect/2"},
    {"srv-alpn-select", F04, "§1", "MUST",
     "offering h3 and portredirect/1: portredirect/1 is selected", 0, t_alpn,
     "h3,portredirect/1"},
    {"srv-version-negotiation", F04, "§1", "MUST",
     "an unknown QUIC version gets Version Negotiation listing only version "
     "1",
     0, t_version_negotiation, NULL},
    {"srv-tp-streams", F04, "§2", "MUST",
     "initial_max_streams_bidi 1, initial_max_streams_uni 0", 0, t_tp,
     &tp_streams},
    {"srv-tp-ctrl-credit", F02, "§6.5", "MUST",
     "at least 1040 bytes of credit on the control stream", 0, t_tp,
     &tp_ctrl_min},
    {"srv-tp-ctrl-credit-small", F04, "§2", "SHOULD",
     "control stream credit of a few KiB at most (≤ 16384)", 0, t_tp,
     &tp_ctrl_max},
    {"srv-tp-no-preferred-address", F04, "§4", "MUST NOT",
     "no preferred_address", 0, t_tp, &tp_pref},
    {"srv-tp-migration", F04, "§4", "SHOULD NOT", "no disable_active_migration",
     0, t_tp, &tp_migr},
    {"srv-tp-cid-limit", F04, "§2", "MUST",
     "active_connection_id_limit at least 2", 0, t_tp, &tp_cidlim},
    {"srv-tp-reset-token", F04, "§3", "MUST", "a stateless_reset_token is sent",
     0, t_tp, &tp_srt},
    {"srv-tp-no-datagram", F04, "§2", "MUST NOT",
     "no max_datagram_frame_size (no DATAGRAM frames)", 0, t_tp, &tp_dgram},
    {"srv-cipher-aes128gcm", F04, "§1", "MUST",
     "TLS_AES_128_GCM_SHA256 alone is accepted", 0, t_tls,
     "NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+AES-128-GCM:-GROUP-ALL:"
     "+GROUP-SECP256R1:+GROUP-X25519:%DISABLE_TLS13_COMPAT_MODE"},
    {"srv-cipher-aes256gcm", F04, "§1", "SHOULD",
     "TLS_AES_256_GCM_SHA384 alone is accepted", 0, t_tls,
     "NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+AES-256-GCM:-GROUP-ALL:"
     "+GROUP-SECP256R1:+GROUP-X25519:%DISABLE_TLS13_COMPAT_MODE"},
    {"srv-cipher-chacha20", F04, "§1", "SHOULD",
     "TLS_CHACHA20_POLY1305_SHA256 alone is accepted", 0, t_tls,
     "NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+CHACHA20-POLY1305:"
     "-GROUP-ALL:+GROUP-SECP256R1:+GROUP-X25519:%DISABLE_TLS13_COMPAT_MODE"},
    {"srv-group-secp256r1", F04, "§1", "MUST",
     "key exchange with secp256r1 alone", 0, t_tls,
     "NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+AES-128-GCM:-GROUP-ALL:"
     "+GROUP-SECP256R1:%DISABLE_TLS13_COMPAT_MODE"},
    {"srv-group-x25519", F04, "§1", "SHOULD", "key exchange with x25519 alone",
     0, t_tls,
     "NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+AES-128-GCM:-GROUP-ALL:"
     "+GROUP-X25519:%DISABLE_TLS13_COMPAT_MODE"},
    {"srv-no-certificate-request", F04, "§1", "MUST NOT",
     "no CertificateRequest", 0, t_no_certreq, NULL},
    {"srv-certificate", F03, "§8.1", "MUST",
     "the server presents the certificate given as --server-cert", 0, t_cert,
     NULL},
    {"srv-sni-any", F03, "§8.3", "MUST NOT",
     "a server_name that is not the server's is not rejected", 0, t_sni,
     "unknown.invalid"},
    {"srv-sni-none", F03, "§8.3", "MUST NOT",
     "a handshake without server_name is not rejected", 0, t_sni, NULL},
    {"srv-stateless-reset", F04, "§3", "SHOULD",
     "a 1200-byte packet for an unknown connection gets a smaller stateless "
     "reset",
     0, t_stateless_reset, NULL},
    {"srv-stateless-reset-small", F04, "§3", "SHOULD",
     "a 42-byte packet for an unknown connection gets a smaller stateless "
     "reset",
     0, t_stateless_reset, "small"},
    {"srv-key-update", F04, "§1", "MUST",
     "after a key update the server still reads the connection", 0,
     t_key_update, NULL},
    /* data streams (need --tcp) */
    {"srv-ds-not-before-auth", F02, "§1.2", "MUST NOT",
     "no data stream before AUTH_RESPONSE; the waiting user's stream comes "
     "after AUTH_RESULT(0)",
     1, t_ds_before_auth, NULL},
    {"srv-ds-header-at-once", F02, "§1.2", "MUST",
     "a server-initiated bidi stream with a complete, valid Stream Header "
     "before any user byte",
     1, t_ds_header, NULL},
    {"srv-ds-header-source", F02, "§4.2", "MUST",
     "SOURCE is the user's address and port", 1, t_ds_header, &hd_src},
    {"srv-ds-header-order", F02, "§4", "MUST", "SOURCE is the first field", 1,
     t_ds_header, &hd_order},
    {"srv-ds-header-destination", F02, "§4.2", "MUST",
     "DESTINATION, if sent, is the port the user connected to", 1, t_ds_header,
     &hd_dst},
    {"srv-ds-bytes-up", F02, "§6.2", "MUST",
     "user bytes arrive unmodified; the user's half-close becomes FIN", 1,
     t_ds_bytes, "up"},
    {"srv-ds-bytes-down", F02, "§6.2", "MUST",
     "our bytes and FIN reach the user as bytes and EOF; the other direction "
     "keeps flowing",
     1, t_ds_bytes, "down"},
    {"srv-ds-user-reset", F02, "§6.3", "MUST",
     "the user's TCP RST: RESET_STREAM and STOP_SENDING with USER_RESET", 1,
     t_ds_user_reset, NULL},
    {"srv-ds-client-reset", F02, "§6.3", "MUST",
     "RESET_STREAM(DESTINATION_RESET) from us: the user's TCP connection is "
     "reset",
     1, t_ds_client_reset, NULL},
    {"srv-ds-unknown-reset-code", F05, "§4", "MUST",
     "RESET_STREAM with an unknown code: the user's TCP connection is reset", 1,
     t_ds_client_reset, &code_unknown},
    {"srv-ds-max-udp-payload", F04, "§5", "MUST NOT",
     "256 KiB from the user in datagrams of at most our "
     "max_udp_payload_size (1200)",
     1, t_ds_max_udp_payload, NULL},
    {"srv-ds-not-after-goaway", F02, "§3.5", "MUST NOT",
     "no new data stream after our GOAWAY", 1, t_ds_goaway, NULL},
    /* named services, spec/02 §3.4, §3.6–§3.8, §4.4 */
    {"srv-svc-result-flags", F02, "§3.4", "MUST",
     "HELLO Flags 1: AUTH_RESULT(0) carries Flags with bit 0 (SERVICES)", 0,
     t_svc_flags, &fl_services},
    {"srv-svc-result-no-flags", F02, "§3.4", "MUST NOT",
     "HELLO Flags 0: AUTH_RESULT carries no Flags", 0, t_svc_flags, &fl_zero},
    {"srv-svc-result-offered-only", F02, "§3.4", "MUST NOT",
     "HELLO with unknown Flags bits: AUTH_RESULT Flags holds none of them", 0,
     t_svc_flags, &fl_unknown},
    {"srv-svc-not-negotiated", F02, "§3.6", "MUST",
     "SERVICES without negotiation: PROTOCOL_ERROR", 0, t_bad_bytes,
     &b_svc_not_negotiated},
    {"srv-svc-refused-not-negotiated", F02, "§3.6", "MUST",
     "SERVICE_REFUSED without negotiation: PROTOCOL_ERROR", 0, t_bad_bytes,
     &b_svc_refused_not_negotiated},
    {"srv-svc-before-result", F02, "§3.7", "MUST",
     "SERVICES before AUTH_RESULT: PROTOCOL_ERROR", 0, t_bad_bytes,
     &b_svc_before_result},
    {"srv-svc-empty", F02, "§3.7", "MUST",
     "SERVICES with an empty Payload: PROTOCOL_ERROR", 0, t_bad_bytes,
     &b_svc_empty},
    {"srv-svc-name-len0", F02, "§3.7", "MUST",
     "SERVICES with Name Length 0: PROTOCOL_ERROR", 0, t_bad_bytes,
     &b_svc_len0},
    {"srv-svc-name-char", F02, "§3.7", "MUST",
     "SERVICES with a '/' in a name: PROTOCOL_ERROR", 0, t_bad_bytes,
     &b_svc_bad_char},
    {"srv-svc-name-len64", F02, "§3.7", "MUST",
     "SERVICES with a 64-byte name: PROTOCOL_ERROR", 0, t_bad_bytes,
     &b_svc_len64},
    {"srv-svc-duplicate", F02, "§3.7", "MUST",
     "SERVICES naming a service twice: PROTOCOL_ERROR", 0, t_bad_bytes,
     &b_svc_duplicate},
    {"srv-svc-past-end", F02, "§3.7", "MUST",
     "SERVICES with a name past the end of the Payload: PROTOCOL_ERROR", 0,
     t_bad_bytes, &b_svc_past_end},
    {"srv-svc-refused-from-client", F02, "§3.8", "MUST",
     "SERVICE_REFUSED sent by the client: PROTOCOL_ERROR", 0, t_bad_bytes,
     &b_svc_refused_from_client},
    {"srv-svc-unknown", F02, "§3.7", "MUST",
     "SERVICES naming unknown services: one SERVICE_REFUSED(UNKNOWN_SERVICE) "
     "per name, in order, connection stays up",
     0, t_svc_unknown, NULL},
    {"srv-svc-no-ds-before-services", F02, "§1.2", "MUST NOT",
     "negotiated: no data stream before SERVICES, then one for `default` "
     "without another SERVICE or PORT_OFFSET",
     1, t_svc_ds, NULL},
    {"srv-svc-header-service", F02, "§4.4", "MUST",
     "a user of the second service (--service-tcp): the Stream Header "
     "carries its SERVICE",
     1, t_svc_second, &sv_declared},
    {"srv-svc-not-declared", F02, "§3.7", "MUST",
     "a client that declared only default gets no stream for the second "
     "service",
     1, t_svc_second, &sv_default_only},
    {"srv-svc-not-negotiated-other", F02, "§4.4", "MUST NOT",
     "a client without SERVICES gets no stream for the second service", 1,
     t_svc_second, &sv_not_negotiated},
    {"srv-svc-header-not-negotiated", F02, "§4.4", "MUST NOT",
     "not negotiated: the Stream Header has no SERVICE or PORT_OFFSET", 1,
     t_ds_header, &hd_no_svc},
    /* client names, spec/02-framing.md §3.3, spec/03-auth.md §3, §4.1 */
    {"srv-name-ok", F03, "§4.1", "MUST",
     "HELLO Flags 2, the named MAC of --client's name and key: AUTH_RESULT(0) "
     "with Flags bit 1, connection stays up",
     0, t_name, &nm_known},
    {"srv-name-unknown", F03, "§4.1", "MUST",
     "a name the server does not know: AUTH_RESULT(AUTH_FAILED), "
     "CONNECTION_CLOSE(AUTH_FAILED)",
     0, t_name, &nm_unknown},
    {"srv-name-wrong-key", F03, "§3", "MUST",
     "--client's name with a wrong key: AUTH_RESULT(AUTH_FAILED), "
     "CONNECTION_CLOSE(AUTH_FAILED)",
     0, t_name, &nm_wrong_key},
    {"srv-name-indistinguishable", F03, "§4.1", "MUST",
     "an unknown name and a wrong key get the same control bytes and close "
     "code",
     0, t_name, &nm_same},
    {"srv-name-missing", F02, "§3.3", "MUST",
     "HELLO Flags 2, AUTH_RESPONSE without a Name (Length 32): "
     "PROTOCOL_ERROR",
     0, t_name, &nm_len0},
    {"srv-name-len65", F02, "§3.3", "MUST",
     "a Name of 65 bytes (Length 97): PROTOCOL_ERROR", 0, t_name, &nm_len65},
    /* DATAGRAMS, spec/10-udp.md §2 */
    {"srv-dgram-echo", F10, "§2", "MUST",
     "HELLO Flags 5 to a server with a UDP service (--service-udp): "
     "AUTH_RESULT Flags bit 2 and max_datagram_frame_size",
     0, t_dgram_flags, &dg_udp},
    {"srv-dgram-no-udp-service", F10, "§2", "MUST",
     "HELLO Flags 5 to a server without a UDP service (no "
     "max_datagram_frame_size): no bit 2 in AUTH_RESULT Flags",
     0, t_dgram_flags, &dg_none},
    {"srv-dgram-relay", F10, "§3.1", "MUST",
     "a user datagram comes as FLOW_OPEN, our FLOW_DATA reaches the user, "
     "the next one comes as FLOW_DATA (--service-udp)",
     0, t_dgram_relay, NULL},
    {"srv-dgram-not-negotiated", F10, "§2", "MUST NOT",
     "no DATAGRAM frame to a client that declared the UDP service but did "
     "not negotiate DATAGRAMS (--service-udp)",
     0, t_dgram_not_negotiated, NULL},
    /* the TCP path, spec/11-tcp-path.md §2 (optional; --tcp-path) */
    {"srv-tcp-preface", F11, "§2.1", "MUST",
     "TCP path: our preface is answered with the server's, Version 1", 0,
     t_tcp_path, &tp_preface},
    {"srv-tcp-garbage", F11, "§2.1", "MUST",
     "TCP path: 8 bytes other than the Magic: closed without an answer", 0,
     t_tcp_path, &tp_garbage},
    {"srv-tcp-version", F11, "§2.1", "MUST",
     "TCP path: a preface with Version 2: the server's preface (Version 1), "
     "then close",
     0, t_tcp_path, &tp_version},
    {"srv-tcp-record-len0", F11, "§2.2", "MUST",
     "TCP path: a record of Length 0: closed without a record in answer", 0,
     t_tcp_path, &tp_len0},
    {"srv-tcp-record-65527", F11, "§2.2", "MUST",
     "TCP path: a record of Length 65527 is accepted (the connection stays "
     "open; a record of Length 0 behind it closes it)",
     0, t_tcp_big, NULL},
};

const size_t cf_server_ntests =
    sizeof(cf_server_tests) / sizeof(cf_server_tests[0]);
