/* SPDX-License-Identifier: GPL-3.0-only */
/* Authentication state machine: HELLO, challenge, MAC (spec/03-auth.md). */
#include "auth.h"

#include <string.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#define PRD_AUTH_MAC_LABEL_LEN (sizeof(PRD_AUTH_MAC_LABEL) - 1)

/* prd_ct_memeq returns 1 if the |len| bytes at |x| and |y| are equal, else 0.
 * Its running time depends only on |len|, never on where the inputs differ,
 * so that a MAC check leaks nothing about the expected value
 * (spec/03-auth.md §4). */
static int prd_ct_memeq(const uint8_t *x, const uint8_t *y, size_t len) {
  volatile uint8_t acc = 0;
  size_t i;

  for (i = 0; i < len; ++i) {
    acc = (uint8_t)(acc | (x[i] ^ y[i]));
  }
  /* Map 0 -> 1 and 1..255 -> 0 without a data-dependent branch. */
  return (int)(1 & (((unsigned)acc - 1) >> 8));
}

/* auth_fail moves |a| to FAILED with the wire code |code| and remembers
 * |err|, which every later call returns. */
static int auth_fail(prd_auth *a, int err, uint64_t code) {
  a->state = PRD_AUTH_STATE_FAILED;
  a->close_code = code;
  a->fail_err = err;
  return err;
}

int prd_auth_fail(prd_auth *a, int err, uint64_t code) {
  if (a->state == PRD_AUTH_STATE_FAILED) {
    return a->fail_err;
  }
  return auth_fail(a, err, code);
}

/* auth_queue appends the encoding of |fr| to the output queue. */
static int auth_queue(prd_auth *a, const prd_frame *fr) {
  prd_ssize n;

  n = prd_frame_encode(a->out + a->outlen, sizeof(a->out) - a->outlen, fr);
  if (n < 0) {
    return (int)n;
  }
  a->outlen += (size_t)n;
  return 0;
}

/* auth_queue_and_enter queues |fr| and moves to |next|: a transition that
 * sends a frame. A queue that cannot take a handshake frame is a local
 * failure (INTERNAL_ERROR). It cannot happen while the caller drains the
 * queue, because the whole exchange is far smaller than PRD_AUTH_OUT_MAX. */
static int auth_queue_and_enter(prd_auth *a, const prd_frame *fr,
                                prd_auth_state next) {
  int rv = auth_queue(a, fr);

  if (rv != 0) {
    return auth_fail(a, rv, PRD_APP_INTERNAL_ERROR);
  }
  a->state = next;
  return 0;
}

/* auth_on_goaway: GOAWAY in AUTHENTICATED, either role
 * (spec/07-state-machines.md §1, §2); the connection stays up. */
static int auth_on_goaway(prd_auth *a, const prd_frame *fr) {
  a->peer_goaway = 1;
  a->goaway_code = fr->u.goaway.error_code;
  return 0;
}

int prd_auth_init(prd_auth *a, prd_auth_role role, const uint8_t *psk,
                  size_t psklen, uint64_t timeout_ns) {
  if (a == NULL) {
    return PRD_ERR_INVAL;
  }
  memset(a, 0, sizeof(*a));
  if (psk == NULL || psklen == 0 || psklen > PRD_AUTH_PSK_MAX ||
      (role != PRD_AUTH_ROLE_SERVER && role != PRD_AUTH_ROLE_CLIENT)) {
    return PRD_ERR_INVAL;
  }
  a->role = role;
  a->state = PRD_AUTH_STATE_IDLE;
  a->timeout_ns = timeout_ns ? timeout_ns : PRD_AUTH_DEFAULT_TIMEOUT_NS;
  a->psklen = psklen;
  memcpy(a->psk, psk, psklen);
  a->features = PRD_FLAG_SERVICES | PRD_FLAG_CLIENT_NAME;
  return 0;
}

int prd_auth_set_features(prd_auth *a, uint64_t features) {
  if ((features &
       ~(PRD_FLAG_SERVICES | PRD_FLAG_CLIENT_NAME | PRD_FLAG_DATAGRAMS)) != 0) {
    return PRD_ERR_INVAL;
  }
  if (a->state != PRD_AUTH_STATE_IDLE) {
    return PRD_ERR_AUTH_STATE;
  }
  a->features = features;
  return 0;
}

/* services_build encodes the |n| names into a SERVICES frame; none:
 * "default" alone (spec/02-framing.md §3.7). */
static int services_build(prd_frame *fr, const char *const *names, size_t n) {
  int rv;

  memset(fr, 0, sizeof(*fr));
  fr->type = PRD_FRAME_SERVICES;
  if (n > 0 && names == NULL) {
    return PRD_ERR_INVAL;
  }
  for (size_t i = 0; i < n; ++i) {
    if (names[i] == NULL) {
      return PRD_ERR_INVAL;
    }
    rv = prd_services_add(fr, names[i], strlen(names[i]));
    if (rv != 0) {
      return rv;
    }
  }
  if (n == 0) {
    return prd_services_add(fr, PRD_SERVICE_DEFAULT,
                            sizeof(PRD_SERVICE_DEFAULT) - 1);
  }
  return 0;
}

int prd_auth_set_key_lookup(prd_auth *a, prd_auth_key_fn fn, void *arg) {
  if (a->role != PRD_AUTH_ROLE_SERVER || a->state != PRD_AUTH_STATE_IDLE) {
    return PRD_ERR_INVAL;
  }
  a->key_fn = fn;
  a->key_arg = arg;
  return 0;
}

int prd_auth_set_client_name(prd_auth *a, const char *name) {
  size_t len = name ? strlen(name) : 0;

  if (a->role != PRD_AUTH_ROLE_CLIENT || a->state != PRD_AUTH_STATE_IDLE ||
      (len > 0 && !prd_client_name_valid(name, len))) {
    return PRD_ERR_INVAL;
  }
  memset(a->name, 0, sizeof(a->name));
  memcpy(a->name, name ? name : "", len);
  a->namelen = len;
  return 0;
}

int prd_auth_set_services(prd_auth *a, const char *const *names, size_t n) {
  prd_frame fr;
  int rv;

  if (a->role != PRD_AUTH_ROLE_CLIENT || a->state != PRD_AUTH_STATE_IDLE ||
      (n > 0 && names == NULL)) {
    return PRD_ERR_INVAL;
  }
  rv = services_build(&fr, names, n);
  if (rv != 0) {
    return rv;
  }
  if (n == 0) {
    a->has_services = 0; /* "default" only, built when sent */
    return 0;
  }
  a->services = fr;
  a->has_services = 1;
  return 0;
}

int prd_auth_update_services(prd_auth *a, const char *const *names, size_t n) {
  prd_frame fr;
  int rv;

  if (a->role != PRD_AUTH_ROLE_CLIENT) {
    return PRD_ERR_INVAL;
  }
  if (a->state == PRD_AUTH_STATE_FAILED) {
    return a->fail_err;
  }
  rv = services_build(&fr, names, n);
  if (rv != 0) {
    return rv;
  }
  a->services = fr;
  a->has_services = 1;
  /* spec/02-framing.md §3.7: a later SERVICES replaces the set. Before
   * AUTH_RESULT the new set is the one sent then. */
  if (a->state == PRD_AUTH_STATE_AUTHENTICATED &&
      prd_auth_services_negotiated(a)) {
    return auth_queue(a, &a->services);
  }
  return 0;
}

const prd_frame *prd_auth_last_services(const prd_auth *a) {
  if (a->role != PRD_AUTH_ROLE_SERVER || !a->has_services) {
    return NULL;
  }
  return &a->services;
}

int prd_auth_queue_service_refused(prd_auth *a, uint64_t code, const char *name,
                                   size_t namelen) {
  prd_frame fr;

  if (a->state == PRD_AUTH_STATE_FAILED) {
    return a->fail_err;
  }
  if (a->role != PRD_AUTH_ROLE_SERVER ||
      a->state != PRD_AUTH_STATE_AUTHENTICATED ||
      !prd_auth_services_negotiated(a)) {
    return PRD_ERR_AUTH_STATE;
  }
  if (name == NULL || !prd_service_name_valid(name, namelen)) {
    return PRD_ERR_INVAL;
  }
  memset(&fr, 0, sizeof(fr));
  fr.type = PRD_FRAME_SERVICE_REFUSED;
  fr.u.refused.error_code = code;
  fr.u.refused.namelen = namelen;
  memcpy(fr.u.refused.name, name, namelen);
  /* PRD_ERR_NOBUF or PRD_ERR_INVAL from the codec; nothing queued then. */
  return auth_queue(a, &fr);
}

void prd_auth_free(prd_auth *a) {
  if (a == NULL) {
    return;
  }
  /* The PSK, the exporter and the queued AUTH_RESPONSE are secrets; wipe the
   * whole object with a memset the compiler may not elide
   * (docs/ARCHITECTURE.md §6). */
  gnutls_memset(a, 0, sizeof(*a));
}

int prd_auth_start(prd_auth *a, const uint8_t *exporter,
                   const uint8_t *challenge, prd_tstamp now) {
  prd_frame fr;
  int rv;

  if (a->state == PRD_AUTH_STATE_FAILED) {
    return a->fail_err;
  }
  if (a->state != PRD_AUTH_STATE_IDLE) {
    return PRD_ERR_AUTH_STATE;
  }
  if (exporter == NULL ||
      (a->role == PRD_AUTH_ROLE_SERVER && challenge == NULL)) {
    return PRD_ERR_INVAL;
  }
  memcpy(a->exporter, exporter, PRD_AUTH_EXPORTER_LEN);

  if (a->role == PRD_AUTH_ROLE_SERVER) {
    /* spec/03-auth.md §4, §5: the challenge is fixed now; the deadline runs
     * from the end of the handshake. */
    memcpy(a->challenge, challenge, PRD_CHALLENGE_MIN);
    a->challengelen = PRD_CHALLENGE_MIN;
    a->deadline =
        now > UINT64_MAX - a->timeout_ns ? UINT64_MAX : now + a->timeout_ns;
    a->state = PRD_AUTH_STATE_WAIT_HELLO;
    return 0;
  }

  /* Client: spec/03-auth.md §4, HELLO first on the control stream. */
  memset(&fr, 0, sizeof(fr));
  fr.type = PRD_FRAME_HELLO;
  fr.u.hello.version = PRD_PROTOCOL_VERSION;
  /* spec/02-framing.md §3.1: bit 0 when we implement named services, bit 1
   * only with a client name: without one, the bytes of a client that does
   * not know the bit. */
  fr.u.hello.flags = a->features;
  if (a->namelen == 0) {
    fr.u.hello.flags &= ~PRD_FLAG_CLIENT_NAME;
  }
  a->hello_flags = fr.u.hello.flags;
  rv = auth_queue(a, &fr);
  if (rv != 0) {
    /* Nothing was queued; the caller may drain and retry. */
    return rv;
  }
  a->state = PRD_AUTH_STATE_WAIT_CHALLENGE;
  return 0;
}

int prd_auth_compute_mac(uint8_t *mac, const uint8_t *psk, size_t psklen,
                         const uint8_t *exporter, const uint8_t *challenge,
                         size_t challengelen) {
  return prd_auth_compute_mac_named(mac, psk, psklen, exporter, challenge,
                                    challengelen, NULL, 0);
}

int prd_auth_compute_mac_named(uint8_t *mac, const uint8_t *psk, size_t psklen,
                               const uint8_t *exporter,
                               const uint8_t *challenge, size_t challengelen,
                               const char *name, size_t namelen) {
  uint8_t msg[PRD_AUTH_MAC_LABEL_LEN + PRD_AUTH_EXPORTER_LEN +
              PRD_CHALLENGE_MAX + 1 + PRD_CLIENT_NAME_MAX];
  size_t msglen;
  int rv;

  if (mac == NULL || psk == NULL || psklen == 0 || psklen > PRD_AUTH_PSK_MAX ||
      exporter == NULL || challenge == NULL ||
      challengelen < PRD_CHALLENGE_MIN || challengelen > PRD_CHALLENGE_MAX ||
      namelen > PRD_CLIENT_NAME_MAX || (namelen > 0 && name == NULL)) {
    return PRD_ERR_INVAL;
  }
  /* spec/03-auth.md §3: label || exporter || challenge, and with a client
   * name NameLen || Name. */
  memcpy(msg, PRD_AUTH_MAC_LABEL, PRD_AUTH_MAC_LABEL_LEN);
  memcpy(msg + PRD_AUTH_MAC_LABEL_LEN, exporter, PRD_AUTH_EXPORTER_LEN);
  memcpy(msg + PRD_AUTH_MAC_LABEL_LEN + PRD_AUTH_EXPORTER_LEN, challenge,
         challengelen);
  msglen = PRD_AUTH_MAC_LABEL_LEN + PRD_AUTH_EXPORTER_LEN + challengelen;
  if (namelen > 0) {
    msg[msglen++] = (uint8_t)namelen;
    memcpy(msg + msglen, name, namelen);
    msglen += namelen;
  }

  rv = gnutls_hmac_fast(GNUTLS_MAC_SHA256, psk, psklen, msg, msglen, mac);
  gnutls_memset(msg, 0, sizeof(msg));
  return rv < 0 ? PRD_ERR_INVAL : 0;
}

/* server_check_response computes the MAC |fr| should carry and compares
 * it in constant time (spec/03-auth.md §3, §4.1). Sets |*pok| to 1 only
 * for the right MAC of a known client allowed here; a->name and
 * a->key_err say whose it was and why it failed. Returns 0, or
 * PRD_ERR_AUTH_STATE for a frame whose Name does not match HELLO's Flags
 * (the codec prevents it; a hand-made frame may not), or a MAC error. */
static int server_check_response(prd_auth *a, const prd_frame *fr, int *pok) {
  uint8_t expect[PRD_MAC_LEN];
  uint8_t key[PRD_AUTH_PSK_MAX];
  size_t keylen = 0;
  int named = (a->hello_flags & a->features & PRD_FLAG_CLIENT_NAME) != 0;
  int rv;

  if (named != (fr->u.response.namelen > 0) ||
      fr->u.response.namelen > PRD_CLIENT_NAME_MAX) {
    return PRD_ERR_AUTH_STATE;
  }
  /* A client that names itself is that client; one that does not is
   * "default" (spec/03-auth.md §4.1). */
  memset(a->name, 0, sizeof(a->name));
  if (named) {
    a->namelen = fr->u.response.namelen;
    memcpy(a->name, fr->u.response.name, a->namelen);
  } else {
    a->namelen = sizeof(PRD_CLIENT_DEFAULT) - 1;
    memcpy(a->name, PRD_CLIENT_DEFAULT, a->namelen);
  }
  a->key_err = 0;
  if (!prd_client_name_valid(a->name, a->namelen)) {
    a->key_err = PRD_ERR_CLIENT_NAME;
  } else if (a->key_fn != NULL) {
    a->key_err = a->key_fn(a->key_arg, key, &keylen, a->name, a->namelen);
    if (a->key_err == 0 && (keylen == 0 || keylen > PRD_AUTH_PSK_MAX)) {
      a->key_err = PRD_ERR_CLIENT_UNKNOWN;
    }
  } else if (a->namelen == sizeof(PRD_CLIENT_DEFAULT) - 1 &&
             memcmp(a->name, PRD_CLIENT_DEFAULT, a->namelen) == 0) {
    memcpy(key, a->psk, a->psklen);
    keylen = a->psklen;
  } else {
    a->key_err = PRD_ERR_CLIENT_UNKNOWN;
  }
  if (a->key_err != 0) {
    /* spec/03-auth.md §4.1: the same work as for a known name, under our
     * stand-in key, so that neither the reply nor its timing tells. */
    memcpy(key, a->psk, a->psklen);
    keylen = a->psklen;
  }
  rv = prd_auth_compute_mac_named(
      expect, key, keylen, a->exporter, a->challenge, a->challengelen,
      named ? a->name : NULL, named ? a->namelen : 0);
  gnutls_memset(key, 0, sizeof(key));
  if (rv != 0) {
    gnutls_memset(expect, 0, sizeof(expect));
    return rv;
  }
  *pok =
      prd_ct_memeq(expect, fr->u.response.mac, PRD_MAC_LEN) & (a->key_err == 0);
  gnutls_memset(expect, 0, sizeof(expect));
  return 0;
}

/* server_on_frame: spec/07-state-machines.md §1. */
static int server_on_frame(prd_auth *a, const prd_frame *fr, prd_tstamp now) {
  prd_frame out;
  int ok = 0;
  int rv;

  /* spec/03-auth.md §5: once the deadline has passed nothing before
   * AUTHENTICATED is accepted any more, whatever the frame is. */
  if ((a->state == PRD_AUTH_STATE_WAIT_HELLO ||
       a->state == PRD_AUTH_STATE_WAIT_RESPONSE) &&
      now >= a->deadline) {
    return auth_fail(a, PRD_ERR_AUTH_TIMEOUT, PRD_APP_AUTH_TIMEOUT);
  }

  memset(&out, 0, sizeof(out));
  switch (a->state) {
  case PRD_AUTH_STATE_WAIT_HELLO:
    if (fr->type != PRD_FRAME_HELLO) {
      break;
    }
    /* spec/03-auth.md §4: HELLO.Version is the client's highest version;
     * we speak only 1, so anything below is a mismatch. Unknown flag bits
     * are ignored. */
    if (fr->u.hello.version < PRD_PROTOCOL_VERSION) {
      return auth_fail(a, PRD_ERR_VERSION, PRD_APP_VERSION_MISMATCH);
    }
    /* spec/02-framing.md §3.1: keep Flags, answered in AUTH_RESULT. */
    a->hello_flags = fr->u.hello.flags;
    out.type = PRD_FRAME_AUTH_CHALLENGE;
    out.u.challenge.version = PRD_PROTOCOL_VERSION;
    out.u.challenge.challengelen = a->challengelen;
    memcpy(out.u.challenge.challenge, a->challenge, a->challengelen);
    return auth_queue_and_enter(a, &out, PRD_AUTH_STATE_WAIT_RESPONSE);

  case PRD_AUTH_STATE_WAIT_RESPONSE:
    if (fr->type != PRD_FRAME_AUTH_RESPONSE) {
      break;
    }
    /* spec/03-auth.md §3, §4: recompute and compare in constant time. */
    rv = server_check_response(a, fr, &ok);
    if (rv == PRD_ERR_AUTH_STATE) {
      break;
    }
    if (rv != 0) {
      return auth_fail(a, rv, PRD_APP_INTERNAL_ERROR);
    }
    out.type = PRD_FRAME_AUTH_RESULT;
    /* spec/02-framing.md §3.4: Flags, whatever the Status, when HELLO.Flags
     * was not 0 (and we implement a feature: with none we answer as a
     * server of the first text); only bits the client offered. */
    if (a->hello_flags != 0 && a->features != 0) {
      out.u.result.has_flags = 1;
      out.u.result.flags = a->hello_flags & a->features;
    }
    if (!ok) {
      /* spec/03-auth.md §6: AUTH_RESULT(AUTH_FAILED), then the caller
       * closes the connection with AUTH_FAILED. This is the only output
       * that may be queued by the transition into FAILED. */
      out.u.result.status = PRD_APP_AUTH_FAILED;
      rv = auth_queue(a, &out);
      if (rv != 0) {
        return auth_fail(a, rv, PRD_APP_INTERNAL_ERROR);
      }
      return auth_fail(a, PRD_ERR_AUTH_FAILED, PRD_APP_AUTH_FAILED);
    }
    out.u.result.status = PRD_APP_NO_ERROR;
    rv = auth_queue_and_enter(a, &out, PRD_AUTH_STATE_AUTHENTICATED);
    if (rv == 0) {
      a->negotiated = out.u.result.flags; /* 0 without Flags */
    }
    return rv;

  case PRD_AUTH_STATE_AUTHENTICATED:
    if (fr->type == PRD_FRAME_GOAWAY) {
      return auth_on_goaway(a, fr);
    }
    /* spec/02-framing.md §3.7: only where negotiated; each frame replaces
     * the set. The codec checked the names; a hand-made frame may be
     * empty. */
    if (fr->type == PRD_FRAME_SERVICES && prd_auth_services_negotiated(a) &&
        fr->u.services.count > 0 &&
        fr->u.services.listlen <= sizeof(fr->u.services.list)) {
      a->services = *fr;
      a->has_services = 1;
      return 0;
    }
    break;

  default: /* IDLE: no frame can precede the end of the handshake. */
    break;
  }
  return auth_fail(a, PRD_ERR_AUTH_STATE, PRD_APP_PROTOCOL_ERROR);
}

/* client_on_frame: spec/07-state-machines.md §2. */
static int client_on_frame(prd_auth *a, const prd_frame *fr) {
  prd_frame out;
  int rv;

  memset(&out, 0, sizeof(out));
  switch (a->state) {
  case PRD_AUTH_STATE_WAIT_CHALLENGE:
    if (fr->type != PRD_FRAME_AUTH_CHALLENGE) {
      break;
    }
    /* spec/03-auth.md §4: the server must select the version we offered. */
    if (fr->u.challenge.version != PRD_PROTOCOL_VERSION) {
      return auth_fail(a, PRD_ERR_VERSION, PRD_APP_VERSION_MISMATCH);
    }
    /* The codec enforces 32..64 bytes; a hand-made frame might not. */
    if (fr->u.challenge.challengelen < PRD_CHALLENGE_MIN ||
        fr->u.challenge.challengelen > PRD_CHALLENGE_MAX) {
      break;
    }
    out.type = PRD_FRAME_AUTH_RESPONSE;
    if (a->hello_flags & PRD_FLAG_CLIENT_NAME) {
      /* spec/02-framing.md §3.3: the Name follows the MAC, which covers
       * it (spec/03-auth.md §3). */
      out.u.response.namelen = a->namelen;
      memcpy(out.u.response.name, a->name, a->namelen);
    }
    rv = prd_auth_compute_mac_named(
        out.u.response.mac, a->psk, a->psklen, a->exporter,
        fr->u.challenge.challenge, fr->u.challenge.challengelen,
        out.u.response.name, out.u.response.namelen);
    if (rv != 0) {
      return auth_fail(a, rv, PRD_APP_INTERNAL_ERROR);
    }
    rv = auth_queue_and_enter(a, &out, PRD_AUTH_STATE_WAIT_RESULT);
    gnutls_memset(&out, 0, sizeof(out));
    return rv;

  case PRD_AUTH_STATE_WAIT_RESULT:
    if (fr->type != PRD_FRAME_AUTH_RESULT) {
      break;
    }
    /* spec/02-framing.md §3.4: Flags only in reply to HELLO Flags other
     * than 0, and only bits we sent. */
    if (fr->u.result.has_flags &&
        (a->hello_flags == 0 || (fr->u.result.flags & ~a->hello_flags) != 0)) {
      break;
    }
    if (fr->u.result.status != PRD_APP_NO_ERROR) {
      /* spec/03-auth.md §6: the server closes with that code; so do we. */
      return auth_fail(a, PRD_ERR_AUTH_FAILED, fr->u.result.status);
    }
    a->state = PRD_AUTH_STATE_AUTHENTICATED;
    a->negotiated = fr->u.result.has_flags ? fr->u.result.flags : 0;
    if (prd_auth_services_negotiated(a)) {
      /* spec/02-framing.md §3.7: SERVICES at once, before any other frame;
       * "default" alone when none were configured. */
      if (!a->has_services) {
        memset(&out, 0, sizeof(out));
        out.type = PRD_FRAME_SERVICES;
        rv = prd_services_add(&out, PRD_SERVICE_DEFAULT,
                              sizeof(PRD_SERVICE_DEFAULT) - 1);
        if (rv != 0) {
          return auth_fail(a, rv, PRD_APP_INTERNAL_ERROR);
        }
        a->services = out;
        a->has_services = 1;
      }
      return auth_queue_and_enter(a, &a->services,
                                  PRD_AUTH_STATE_AUTHENTICATED);
    }
    return 0;

  case PRD_AUTH_STATE_AUTHENTICATED:
    if (fr->type == PRD_FRAME_GOAWAY) {
      return auth_on_goaway(a, fr);
    }
    /* spec/02-framing.md §3.8: only where negotiated; the connection stays
     * up and the caller reports the name. */
    if (fr->type == PRD_FRAME_SERVICE_REFUSED &&
        prd_auth_services_negotiated(a)) {
      return 0;
    }
    break;

  default: /* IDLE */
    break;
  }
  return auth_fail(a, PRD_ERR_AUTH_STATE, PRD_APP_PROTOCOL_ERROR);
}

int prd_auth_on_frame(prd_auth *a, const prd_frame *fr, prd_tstamp now) {
  if (a->state == PRD_AUTH_STATE_FAILED) {
    return a->fail_err;
  }
  if (fr == NULL) {
    return PRD_ERR_INVAL;
  }
  if (a->role == PRD_AUTH_ROLE_SERVER) {
    return server_on_frame(a, fr, now);
  }
  return client_on_frame(a, fr);
}

int prd_auth_on_timer(prd_auth *a, prd_tstamp now) {
  if (a->state == PRD_AUTH_STATE_FAILED) {
    return a->fail_err;
  }
  /* spec/03-auth.md §5: only the server keeps a deadline, armed by start. */
  if (a->role == PRD_AUTH_ROLE_SERVER &&
      (a->state == PRD_AUTH_STATE_WAIT_HELLO ||
       a->state == PRD_AUTH_STATE_WAIT_RESPONSE) &&
      now >= a->deadline) {
    return auth_fail(a, PRD_ERR_AUTH_TIMEOUT, PRD_APP_AUTH_TIMEOUT);
  }
  return 0;
}

int prd_auth_queue_goaway(prd_auth *a, uint64_t error_code) {
  prd_frame fr;

  if (a->state == PRD_AUTH_STATE_FAILED) {
    return a->fail_err;
  }
  if (a->state != PRD_AUTH_STATE_AUTHENTICATED) {
    return PRD_ERR_AUTH_STATE;
  }
  memset(&fr, 0, sizeof(fr));
  fr.type = PRD_FRAME_GOAWAY;
  fr.u.goaway.error_code = error_code;
  /* PRD_ERR_NOBUF or PRD_ERR_INVAL (code > PRD_VARINT_MAX) from the codec;
   * nothing is queued then. */
  return auth_queue(a, &fr);
}

void prd_auth_out_consume(prd_auth *a, size_t n) {
  if (n > a->outlen) {
    n = a->outlen;
  }
  memmove(a->out, a->out + n, a->outlen - n);
  a->outlen -= n;
  /* The queue may have held an AUTH_RESPONSE; leave no copy behind. */
  gnutls_memset(a->out + a->outlen, 0, sizeof(a->out) - a->outlen);
}

const char *prd_auth_state_name(prd_auth_state s) {
  switch (s) {
  case PRD_AUTH_STATE_IDLE:
    return "IDLE";
  case PRD_AUTH_STATE_WAIT_HELLO:
    return "WAIT_HELLO";
  case PRD_AUTH_STATE_WAIT_RESPONSE:
    return "WAIT_RESPONSE";
  case PRD_AUTH_STATE_WAIT_CHALLENGE:
    return "WAIT_CHALLENGE";
  case PRD_AUTH_STATE_WAIT_RESULT:
    return "WAIT_RESULT";
  case PRD_AUTH_STATE_AUTHENTICATED:
    return "AUTHENTICATED";
  case PRD_AUTH_STATE_FAILED:
    return "FAILED";
  }
  return "UNKNOWN";
}
