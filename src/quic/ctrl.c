/* SPDX-License-Identifier: GPL-3.0-only */
/* The control stream (spec/02-framing.md §3) and the authentication state
 * machine behind it (spec/03-auth.md). */
#include <gnutls/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/log.h"
#include "quic_int.h"

/* ---- control stream (spec/02-framing.md §3) ---------------------------- */

void prd_ctrl_queue_output(prd_quic_conn *qc) {
  if (qc->auth.outlen == 0) {
    return;
  }
  if (prd_chunkbuf_append(&qc->ctrl_sendbuf, qc->auth.out, qc->auth.outlen) !=
      0) {
    prd_conn_set_error_app(qc, PRD_APP_INTERNAL_ERROR, "out of memory");
    return;
  }
  prd_auth_out_consume(&qc->auth, qc->auth.outlen);
  prd_conn_want_flush(qc);
}

size_t prd_ctrl_peek_unsent(prd_quic_conn *qc, ngtcp2_vec *vec, size_t max) {
  if (qc->ctrl_sid < 0 || qc->ctrl_sent_off >= qc->ctrl_sendbuf.tail_off) {
    return 0;
  }
  return prd_chunkbuf_peek(&qc->ctrl_sendbuf, qc->ctrl_sent_off,
                           (struct iovec *)vec, max);
}

void prd_ctrl_mark_sent(prd_quic_conn *qc, size_t n) { qc->ctrl_sent_off += n; }

int prd_ctrl_auth_failed(prd_quic_conn *qc, int rv) {
  char peer[80];
  const char *what = prd_strerror(rv);
  prd_sockaddr_str(&qc->remote, peer, sizeof(peer));
  if (qc->ep->is_server) {
    uint32_t quiet = 0;
    char who[4 * PRD_CLIENT_NAME_MAX + 32];
    /* spec/03-auth.md §6: rate-limited per address, with the count; with
     * the client's name (escaped: any bytes) and the true reason, which
     * the client never learns (§4.1). */
    who[0] = '\0';
    if (rv == PRD_ERR_AUTH_FAILED && qc->auth.namelen > 0) {
      char esc[4 * PRD_CLIENT_NAME_MAX + 1];
      prd_log_escape(esc, sizeof(esc), (const uint8_t *)qc->auth.name,
                     qc->auth.namelen);
      snprintf(who, sizeof(who), " as client \"%s\"", esc);
      if (qc->auth.key_err != 0) {
        what = prd_strerror(qc->auth.key_err);
      } else {
        what = "wrong key";
      }
    }
    if (prd_ep_auth_log_ok(qc->ep, &qc->hs_remote, &quiet)) {
      PRD_LOG_WARN("[%s] authentication failed from %s%s: %s (%s)%s%.0u%s",
                   qc->name, peer, who, what,
                   prd_app_err_name(qc->auth.close_code), quiet ? "; " : "",
                   quiet,
                   quiet ? " more failure lines from there left out" : "");
    }
  } else if (qc->auth.close_code == PRD_APP_AUTH_FAILED) {
    /* A configuration error: the relay logs it, at most every few
     * minutes, and backs off to the cap. */
    PRD_LOG_DEBUG("[%s] authentication failed: the server at %s rejected "
                  "our PSK",
                  qc->name, peer);
  } else {
    PRD_LOG_ERROR("[%s] authentication with %s failed: %s (%s)", qc->name, peer,
                  what, prd_app_err_name(qc->auth.close_code));
  }
  /* Queue AUTH_RESULT (server) so it goes out before CONNECTION_CLOSE. */
  prd_ctrl_queue_output(qc);
  prd_conn_set_error_app(qc, qc->auth.close_code, what);
  qc->flags |= PRD_QC_F_AUTH_FAILED;
  qc->close_err = rv;
  return NGTCP2_ERR_CALLBACK_FAILURE;
}

/* ctrl_on_services: server, a SERVICES frame was accepted
 * (spec/02-framing.md §3.7): hand the names to the relay and send
 * SERVICE_REFUSED (§3.8), in order, for each one it refused. Returns 0, or
 * an ngtcp2 error for the callback. */
static int ctrl_on_services(prd_quic_conn *qc, const prd_frame *fr) {
  const prd_quic_callbacks *cb = qc->ep->cfg.cb;
  const char **names;
  uint64_t *codes;
  char *strs;
  const char *name;
  size_t namelen, off = 0, n = 0, i;
  int rv;

  /* One block: the pointers, the codes, then the names, NUL-terminated
   * (a name and its length byte take namelen + 1 bytes of the list). */
  names = malloc(fr->u.services.count * (sizeof(*names) + sizeof(*codes)) +
                 fr->u.services.listlen + 1);
  if (names == NULL) {
    prd_conn_set_error_app(qc, PRD_APP_INTERNAL_ERROR, "out of memory");
    return NGTCP2_ERR_CALLBACK_FAILURE;
  }
  codes = (uint64_t *)(void *)(names + fr->u.services.count);
  strs = (char *)(codes + fr->u.services.count);
  while (n < fr->u.services.count &&
         prd_services_next(fr, &off, &name, &namelen)) {
    memcpy(strs, name, namelen);
    strs[namelen] = '\0';
    names[n] = strs;
    codes[n] = 0;
    strs += namelen + 1;
    ++n;
  }
  PRD_LOG_DEBUG("[%s] the client declared %zu service(s)", qc->name, n);
  if (cb->services) {
    cb->services(qc, names, n, codes, qc->ud);
  }
  for (i = 0; i < n && !prd_conn_closing(qc); ++i) {
    if (codes[i] == 0) {
      continue;
    }
    rv = prd_auth_queue_service_refused(&qc->auth, codes[i], names[i],
                                        strlen(names[i]));
    if (rv == PRD_ERR_NOBUF) {
      prd_ctrl_queue_output(qc); /* drain the queue, then once more */
      rv = prd_auth_queue_service_refused(&qc->auth, codes[i], names[i],
                                          strlen(names[i]));
    }
    if (rv != 0) {
      PRD_LOG_WARN("[%s] cannot send SERVICE_REFUSED: %s", qc->name,
                   prd_strerror(rv));
      break;
    }
    prd_ctrl_queue_output(qc);
  }
  free(names);
  return 0;
}

/* ctrl_after_frame: what the connection does once the state machine accepted
 * |fr|. Returns 0, or an ngtcp2 error for the callback. */
static int ctrl_after_frame(prd_quic_conn *qc, const prd_frame *fr) {
  const prd_quic_callbacks *cb = qc->ep->cfg.cb;

  switch (fr->type) {
  case PRD_FRAME_HELLO:
    /* Server: SERVICES and SERVICE_REFUSED are known types from now on
     * when both ends do them (codec.h, prd_frame_decode_ex). */
    prd_frame_reader_set_features(&qc->ctrl_reader,
                                  qc->auth.hello_flags & qc->auth.features);
    break;
  case PRD_FRAME_AUTH_RESULT:
    /* Client: from now on, the negotiated features only. */
    prd_frame_reader_set_features(&qc->ctrl_reader, qc->auth.negotiated);
    break;
  case PRD_FRAME_GOAWAY:
    if (cb->goaway) {
      cb->goaway(qc, fr->u.goaway.error_code, qc->ud);
    }
    break;
  case PRD_FRAME_SERVICES:
    return ctrl_on_services(qc, fr);
  case PRD_FRAME_SERVICE_REFUSED:
    PRD_LOG_DEBUG("[%s] the server refused a service (%s)", qc->name,
                  prd_app_err_name(fr->u.refused.error_code));
    if (cb->service_refused) {
      cb->service_refused(qc, fr->u.refused.name, fr->u.refused.error_code,
                          qc->ud);
    }
    break;
  default:
    break;
  }
  return 0;
}

int prd_ctrl_recv(prd_quic_conn *qc, const uint8_t *data, size_t len, int fin) {
  prd_tstamp now = prd_now();
  while (len > 0) {
    prd_frame fr;
    int ready = 0, rv;
    prd_ssize n =
        prd_frame_reader_feed(&qc->ctrl_reader, &fr, &ready, data, len);
    if (n < 0) {
      return prd_ctrl_auth_failed(
          qc, prd_auth_fail(&qc->auth, (int)n, PRD_APP_PROTOCOL_ERROR));
    }
    data += n;
    len -= (size_t)n;
    if (!ready) {
      continue;
    }
    rv = prd_auth_on_frame(&qc->auth, &fr, now);
    if (rv != 0) {
      return prd_ctrl_auth_failed(qc, rv);
    }
    prd_ctrl_queue_output(qc);
    /* The reader's features change before the next frame is decoded; the
     * authenticated callback comes before any SERVICES callback. */
    if (prd_auth_is_authenticated(&qc->auth)) {
      prd_ctrl_report_authenticated(qc);
    }
    rv = ctrl_after_frame(qc, &fr);
    if (rv != 0) {
      return rv;
    }
    if (prd_conn_closing(qc)) {
      return 0; /* a callback closed the connection */
    }
  }
  if (fin && !prd_conn_closing(qc)) {
    return prd_ctrl_auth_failed(qc, prd_auth_fail(&qc->auth, PRD_ERR_AUTH_STATE,
                                                  PRD_APP_PROTOCOL_ERROR));
  }
  return 0;
}

void prd_ctrl_report_authenticated(prd_quic_conn *qc) {
  if (qc->flags & PRD_QC_F_AUTHENTICATED) {
    return;
  }
  qc->flags |= PRD_QC_F_AUTHENTICATED;
  if (qc->state == PRD_QC_AUTHENTICATING) {
    qc->state = PRD_QC_OPEN;
  }
  prd_ep_conn_authenticated(qc->ep);
  if (qc->ep->cfg.cb->authenticated) {
    qc->ep->cfg.cb->authenticated(qc, qc->ud);
  }
  prd_stream_start_all(qc);
}

void prd_quic_conn_goaway(prd_quic_conn *qc, uint64_t code) {
  if (prd_auth_queue_goaway(&qc->auth, code) == 0) {
    prd_ctrl_queue_output(qc);
  }
}

/* prd_ctrl_start: the handshake completed; start authentication (the client
 * opens the control stream, spec/02-framing.md §1). Returns 0 or an ngtcp2
 * error for the callback. */
int prd_ctrl_start(prd_quic_conn *qc) {
  uint8_t exporter[PRD_AUTH_EXPORTER_LEN];
  uint8_t challenge[PRD_CHALLENGE_MIN];
  int rv;

  if (prd_tls_exporter(qc, exporter, sizeof(exporter)) != 0) {
    prd_conn_set_error_app(qc, PRD_APP_INTERNAL_ERROR, "TLS exporter failed");
    return NGTCP2_ERR_CALLBACK_FAILURE;
  }
  if (qc->ep->is_server) {
    if (gnutls_rnd(GNUTLS_RND_RANDOM, challenge, sizeof(challenge)) != 0) {
      return NGTCP2_ERR_CALLBACK_FAILURE;
    }
  } else {
    rv = ngtcp2_conn_open_bidi_stream(qc->conn, &qc->ctrl_sid, NULL);
    if (rv != 0) {
      prd_conn_set_error_app(qc, PRD_APP_PROTOCOL_ERROR,
                             "cannot open the control stream");
      return NGTCP2_ERR_CALLBACK_FAILURE;
    }
  }
  /* spec/03-auth.md §5: the client gives up after twice the server's
   * default deadline. */
  qc->client_deadline = prd_now() + 2 * PRD_AUTH_DEFAULT_TIMEOUT_NS;
  rv = prd_auth_set_features(&qc->auth, qc->ep->features);
  if (rv == 0) {
    rv = prd_auth_start(&qc->auth, exporter, challenge, prd_now());
  }
  gnutls_memset(exporter, 0, sizeof(exporter));
  if (rv != 0) {
    return prd_ctrl_auth_failed(
        qc, prd_auth_fail(&qc->auth, rv, PRD_APP_INTERNAL_ERROR));
  }
  if (!qc->ep->is_server) {
    /* spec/02-framing.md §3.4: AUTH_RESULT may carry the Flags we sent. */
    prd_frame_reader_set_features(&qc->ctrl_reader, qc->auth.hello_flags);
  }
  prd_ctrl_queue_output(qc);
  if (qc->ep->cfg.cb->set_timer) {
    /* The auth deadline is one of our timers. */
    prd_conn_want_flush(qc);
  }
  return 0;
}

/* prd_ctrl_on_timer runs the authentication deadlines. Returns 0, or 1 when
 * |qc| started closing or was freed. */
int prd_ctrl_on_timer(prd_quic_conn *qc, prd_tstamp now) {
  int rv;

  if (qc->ep->is_server && !prd_auth_is_authenticated(&qc->auth)) {
    rv = prd_auth_on_timer(&qc->auth, now);
    if (rv != 0) {
      char peer[80];
      uint32_t quiet = 0;
      prd_sockaddr_str(&qc->remote, peer, sizeof(peer));
      if (prd_ep_auth_log_ok(qc->ep, &qc->hs_remote, &quiet)) {
        PRD_LOG_WARN("[%s] authentication timed out for %s%s%.0u%s", qc->name,
                     peer, quiet ? "; " : "", quiet,
                     quiet ? " more failure lines from there left out" : "");
      }
      /* spec/03-auth.md §6: timeouts count towards the budget too. */
      prd_ep_auth_failure(qc->ep, qc);
      prd_conn_set_error_app(qc, PRD_APP_AUTH_TIMEOUT,
                             "authentication timeout");
      if (prd_conn_write_close(qc) != 0) {
        prd_conn_finish(qc);
      }
      return 1;
    }
    if (qc->state == PRD_QC_HANDSHAKE &&
        now - qc->created > qc->ep->cfg.auth_timeout_ns + 10 * PRD_NS_PER_S) {
      snprintf(qc->close_msg, sizeof(qc->close_msg), "handshake timed out");
      prd_conn_finish(qc);
      return 1;
    }
  }
  if (!qc->ep->is_server && qc->state == PRD_QC_AUTHENTICATING &&
      !prd_auth_is_authenticated(&qc->auth) && now >= qc->client_deadline) {
    prd_conn_set_error_app(qc, PRD_APP_AUTH_TIMEOUT,
                           "the server did not complete authentication");
    if (prd_conn_write_close(qc) != 0) {
      prd_conn_finish(qc);
    }
    return 1;
  }
  return 0;
}

int prd_quic_conn_services_negotiated(const prd_quic_conn *qc) {
  return prd_auth_services_negotiated(&qc->auth);
}

const char *prd_quic_conn_client_name(const prd_quic_conn *qc) {
  if (!qc->ep->is_server) {
    return qc->auth.namelen > 0 ? qc->auth.name : NULL;
  }
  if (!(qc->flags & PRD_QC_F_AUTHENTICATED)) {
    return NULL;
  }
  /* spec/03-auth.md §4.1: the name checked with its key, a valid one. */
  return qc->auth.name;
}

void prd_quic_endpoint_set_features(prd_quic_endpoint *ep, uint64_t features) {
  ep->features = features;
}

int prd_quic_conn_set_services(prd_quic_conn *qc, const char *const *names,
                               size_t n) {
  int rv = prd_auth_update_services(&qc->auth, names, n);
  if (rv == 0) {
    prd_ctrl_queue_output(qc); /* and flush */
  }
  return rv;
}

void prd_quic_endpoint_set_psk(prd_quic_endpoint *ep, const uint8_t *psk,
                               size_t psklen) {
  /* prd_auth_init copies the key into each new connection. */
  ep->cfg.psk = psk;
  ep->cfg.psklen = psklen;
}
