/* SPDX-License-Identifier: GPL-3.0-only */
/* One QUIC connection: ngtcp2 callbacks, the control stream with the auth
 * state machine, data streams with send buffers owned until ACK, the write
 * loop with GSO batches, and closing. */
#include <gnutls/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/log.h"
#include "quic_int.h"

#define MAX_IOV 16
/* Unsent bytes a stream may hold before the relay stops reading TCP. The
 * total (unsent + in flight) is capped by PRD_STREAM_SENDBUF_MAX. */
#define PRD_STREAM_UNSENT_MAX (256 * 1024)
#define PRD_STREAM_SENDBUF_MAX (8 * 1024 * 1024)
/* Initial flow-control windows. ngtcp2 auto-tunes the connection's up to
 * max_window; a stream's is auto-tuned up to PRD_STREAM_WINDOW_MAX, here
 * with ngtcp2 < 0.19 (prd_qstream_consumed; spec/04-quic-profile.md §2.3,
 * README: Performance). */
#ifndef PRD_STREAM_WINDOW
#  define PRD_STREAM_WINDOW (1024 * 1024)
#endif
#define PRD_STREAM_WINDOW_MAX (16 * 1024 * 1024)
#define PRD_CONN_WINDOW (16 * 1024 * 1024)
/* The server's window on stream 0 (spec/04-quic-profile.md §2: at least
 * 1040, one control frame). Before authentication it bounds what a peer can
 * make the server buffer, out-of-order data included: the client may open no
 * other stream (spec/08-security.md §3). Credit comes back as frames are
 * read. */
#define PRD_CTRL_WINDOW 4096
/* Client: streams whose header is incomplete or that wait for
 * authentication are bounded in number, in payload held (a 64 KiB chunk
 * each) and in time (spec/08-security.md §3). */
#define PRD_MAX_HELD_STREAMS 1024
#define PRD_MAX_HELD_PAYLOAD_STREAMS 16
#define PRD_HELD_TIMEOUT_NS (10 * PRD_NS_PER_S)

static ngtcp2_conn *get_conn(ngtcp2_crypto_conn_ref *ref) {
  prd_quic_conn *qc = ref->user_data;
  return qc->conn;
}

static void conn_want_flush(prd_quic_conn *qc) {
  const prd_quic_callbacks *cb = qc->ep->cfg.cb;
  if (cb->want_flush) {
    cb->want_flush(qc, qc->ud);
  }
}

static void conn_set_error_app(prd_quic_conn *qc, uint64_t code,
                               const char *reason) {
  prd_ccerr_set_app_error(&qc->last_error, code, (const uint8_t *)reason,
                          reason ? strlen(reason) : 0);
  qc->close_code = code;
  qc->close_reason = PRD_QUIC_CLOSE_LOCAL;
  snprintf(qc->close_msg, sizeof(qc->close_msg), "%s%s%s",
           prd_app_err_name(code), reason && reason[0] ? ": " : "",
           reason ? reason : "");
}

/* ---- streams ---------------------------------------------------------- */

static prd_qstream *stream_new(prd_quic_conn *qc, int64_t id, void *user) {
  prd_qstream *st = calloc(1, sizeof(*st));
  if (st == NULL) {
    return NULL;
  }
  st->id = id;
  st->qc = qc;
  st->user = user;
  prd_chunkbuf_init(&st->sendbuf, 0);
  st->all_next = qc->streams;
  if (qc->streams) {
    qc->streams->all_prev = st;
  }
  qc->streams = st;
  ++qc->nstreams;
  return st;
}

static void sendq_remove(prd_quic_conn *qc, prd_qstream *st) {
  prd_qstream **pp = &qc->sendq_head, *prev = NULL;
  if (!st->in_sendq) {
    return;
  }
  while (*pp && *pp != st) {
    prev = *pp;
    pp = &(*pp)->sendq_next;
  }
  if (*pp == st) {
    *pp = st->sendq_next;
    if (qc->sendq_tail == st) {
      qc->sendq_tail = prev;
    }
  }
  st->sendq_next = NULL;
  st->in_sendq = 0;
}

static void sendq_push(prd_quic_conn *qc, prd_qstream *st) {
  if (st->in_sendq) {
    return;
  }
  st->in_sendq = 1;
  st->sendq_next = NULL;
  if (qc->sendq_tail) {
    qc->sendq_tail->sendq_next = st;
  } else {
    qc->sendq_head = st;
  }
  qc->sendq_tail = st;
}

/* Client: |st| started or ends: it no longer counts as held. */
static void stream_unhold(prd_quic_conn *qc, prd_qstream *st) {
  if (st->held) {
    st->held = 0;
    --qc->nheld;
  }
  if (st->held_payload) {
    st->held_payload = 0;
    --qc->nheld_payload;
  }
  free(st->hdrbuf);
  st->hdrbuf = NULL;
  st->hdrlen = 0;
  prd_chunkbuf_free(&st->rxhold);
}

static void stream_free(prd_qstream *st) {
  prd_quic_conn *qc = st->qc;
  sendq_remove(qc, st);
  if (st->all_prev) {
    st->all_prev->all_next = st->all_next;
  } else {
    qc->streams = st->all_next;
  }
  if (st->all_next) {
    st->all_next->all_prev = st->all_prev;
  }
  --qc->nstreams;
  stream_unhold(qc, st);
  prd_chunkbuf_free(&st->sendbuf);
  free(st);
}

/* Tell the relay it may read TCP again (it ignores this unless paused). */
static void stream_notify_writable(prd_quic_conn *qc, prd_qstream *st) {
  if (st->user && qc->ep->cfg.cb->stream_writable &&
      prd_qstream_send_space(st) > 0) {
    qc->ep->cfg.cb->stream_writable(st, qc->ud);
  }
}

static int stream_has_output(const prd_qstream *st) {
  if (st->abort_pending) {
    return 1;
  }
  if (st->closed || st->reset || st->fin_sent) {
    return 0;
  }
  return st->sent_off < st->sendbuf.tail_off || st->fin_pending;
}

uint64_t prd_qstream_send_space(const prd_qstream *st) {
  uint64_t unsent = st->sendbuf.tail_off - st->sent_off;
  uint64_t total = prd_chunkbuf_len(&st->sendbuf);
  if (st->closed || st->reset || unsent >= PRD_STREAM_UNSENT_MAX ||
      total >= PRD_STREAM_SENDBUF_MAX) {
    return 0;
  }
  unsent = PRD_STREAM_UNSENT_MAX - unsent;
  total = PRD_STREAM_SENDBUF_MAX - total;
  return unsent < total ? unsent : total;
}

void prd_qstream_mark_ready(prd_qstream *st) {
  if (stream_has_output(st) && !st->blocked) {
    sendq_push(st->qc, st);
    conn_want_flush(st->qc);
  }
}

void prd_qstream_shutdown_write(prd_qstream *st) {
  if (st->fin_pending || st->fin_sent) {
    return;
  }
  st->fin_pending = 1;
  prd_qstream_mark_ready(st);
}

/* stream_window_bonus returns how many bytes to add to a stream's window on
 * top of the |n| just consumed. The window doubles (up to
 * PRD_STREAM_WINDOW_MAX) when half of it was consumed within two smoothed
 * RTTs, i.e. when flow control, not the reader, limits the stream: the rule
 * ngtcp2's own max_stream_window uses. We do it here because ngtcp2 < 0.19
 * can advertise an auto-tuned limit without raising its own, and then
 * rejects the peer's data with FLOW_CONTROL_ERROR (ngtcp2 2da36d2f);
 * growing the window through extend_max_stream_offset keeps every limit it
 * advertises below the one it enforces. */
static uint64_t stream_window_bonus(prd_quic_conn *qc, prd_qstream *st,
                                    size_t n) {
  prd_conn_stat cs;
  prd_tstamp now;
  uint64_t bonus = 0;

  if (st->rx_window == 0) {
    st->rx_window = PRD_STREAM_WINDOW;
  }
  st->rx_epoch_bytes += (uint32_t)(n < UINT32_MAX ? n : UINT32_MAX);
  if (st->rx_epoch_bytes < st->rx_window / 2) {
    return 0;
  }
  now = prd_now();
  prd_conn_get_stat(qc->conn, &cs);
  if (st->rx_epoch_ts != 0 && st->rx_window < PRD_STREAM_WINDOW_MAX &&
      now - st->rx_epoch_ts < 2 * cs.smoothed_rtt) {
    bonus = st->rx_window;
    if (st->rx_window + bonus > PRD_STREAM_WINDOW_MAX) {
      bonus = PRD_STREAM_WINDOW_MAX - st->rx_window;
    }
    st->rx_window += (uint32_t)bonus;
  }
  st->rx_epoch_ts = now;
  st->rx_epoch_bytes = 0;
  return bonus;
}

void prd_qstream_consumed(prd_qstream *st, size_t n) {
  prd_quic_conn *qc = st->qc;
  if (n == 0 || qc->conn == NULL || qc->tearing_down) {
    return;
  }
  /* Connection-level credit comes back even for a stream ngtcp2 has closed:
   * otherwise bytes still buffered for a slow TCP reader when the stream
   * completes would shrink the connection's window for good. */
  if (!st->closed) {
    ngtcp2_conn_extend_max_stream_offset(
        qc->conn, st->id,
        n + (PRD_NGTCP2_STREAM_AUTOTUNE ? 0 : stream_window_bonus(qc, st, n)));
  }
  ngtcp2_conn_extend_max_offset(qc->conn, n);
  conn_want_flush(qc);
}

void prd_qstream_abort(prd_qstream *st, uint64_t app_err) {
  if (st->closed || st->reset) {
    return;
  }
  st->reset = 1;
  st->abort_pending = 1;
  st->abort_code = app_err;
  /* The ngtcp2 call happens in the write loop, outside any callback. */
  sendq_push(st->qc, st);
  conn_want_flush(st->qc);
}

void prd_qstream_detach(prd_qstream *st) {
  st->user = NULL;
  if (st->closed) {
    /* During connection teardown conn_close_streams frees it. */
    if (!st->qc->tearing_down) {
      stream_free(st);
    }
    return;
  }
  if (!st->fin_sent && !st->fin_pending && !st->reset) {
    /* The relay closed without a clean FIN: abort so ngtcp2 forgets it. */
    prd_qstream_abort(st, PRD_APP_INTERNAL_ERROR);
  } else if (!st->rx_fin && !st->reset) {
    /* Nobody reads the peer's direction any more: STOP_SENDING only, the
     * queued bytes and FIN still go out. */
    st->abort_read_only = 1;
    st->abort_pending = 1;
    /* NO_ERROR never aborts a stream (spec/05-errors.md §2): our TCP end
     * stopped reading, which is the user's or destination's doing. */
    st->abort_code =
        st->qc->ep->is_server ? PRD_APP_USER_RESET : PRD_APP_DESTINATION_RESET;
    sendq_push(st->qc, st);
    conn_want_flush(st->qc);
  }
}

int prd_qstream_open(prd_qstream **pst, prd_quic_conn *qc,
                     const prd_stream_header *hd, void *user) {
  uint8_t hdr[PRD_STREAM_HEADER_MAX];
  prd_ssize n;
  int64_t sid;
  prd_qstream *st;
  int rv;

  if (qc->closing || !prd_auth_is_authenticated(&qc->auth)) {
    return PRD_ERR_INVAL;
  }
  n = prd_stream_header_encode(hdr, sizeof(hdr), hd);
  if (n < 0) {
    return (int)n;
  }
  rv = ngtcp2_conn_open_bidi_stream(qc->conn, &sid, NULL);
  if (rv != 0) {
    return rv == NGTCP2_ERR_STREAM_ID_BLOCKED ? PRD_ERR_QUIC : PRD_ERR_INVAL;
  }
  st = stream_new(qc, sid, user);
  if (st == NULL) {
    prd_conn_shutdown_stream(qc->conn, sid, PRD_APP_INTERNAL_ERROR);
    return PRD_ERR_NOMEM;
  }
  st->hdr_done = 1;
  ngtcp2_conn_set_stream_user_data(qc->conn, sid, st);
  if (prd_chunkbuf_append(&st->sendbuf, hdr, (size_t)n) != 0) {
    prd_qstream_abort(st, PRD_APP_INTERNAL_ERROR);
    return PRD_ERR_NOMEM;
  }
  prd_qstream_mark_ready(st);
  *pst = st;
  return 0;
}

/* ---- control stream (spec/02-framing.md §3) ---------------------------- */

static void ctrl_queue_auth_output(prd_quic_conn *qc) {
  if (qc->auth.outlen == 0) {
    return;
  }
  if (prd_chunkbuf_append(&qc->ctrl_sendbuf, qc->auth.out, qc->auth.outlen) !=
      0) {
    conn_set_error_app(qc, PRD_APP_INTERNAL_ERROR, "out of memory");
    return;
  }
  prd_auth_out_consume(&qc->auth, qc->auth.outlen);
  conn_want_flush(qc);
}

static int auth_failed(prd_quic_conn *qc, int rv) {
  char peer[80];
  const char *what = prd_strerror(rv);
  prd_sockaddr_str(&qc->remote, peer, sizeof(peer));
  if (qc->ep->is_server) {
    uint32_t quiet = 0;
    /* spec/03-auth.md §6: rate-limited per address, with the count. */
    if (prd_ep_auth_log_ok(qc->ep, &qc->hs_remote, &quiet)) {
      PRD_LOG_WARN("[%s] authentication failed from %s: %s (%s)%s%.0u%s",
                   qc->name, peer, what, prd_app_err_name(qc->auth.close_code),
                   quiet ? "; " : "", quiet,
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
  ctrl_queue_auth_output(qc);
  conn_set_error_app(qc, qc->auth.close_code, what);
  qc->auth_failed = 1;
  return NGTCP2_ERR_CALLBACK_FAILURE;
}

static void report_authenticated(prd_quic_conn *qc);

static int ctrl_recv(prd_quic_conn *qc, const uint8_t *data, size_t len,
                     int fin) {
  prd_tstamp now = prd_now();
  while (len > 0) {
    prd_frame fr;
    int ready = 0, rv;
    prd_ssize n =
        prd_frame_reader_feed(&qc->ctrl_reader, &fr, &ready, data, len);
    if (n < 0) {
      qc->auth.state = PRD_AUTH_STATE_FAILED;
      qc->auth.close_code = PRD_APP_PROTOCOL_ERROR;
      return auth_failed(qc, (int)n);
    }
    data += n;
    len -= (size_t)n;
    if (!ready) {
      continue;
    }
    rv = prd_auth_on_frame(&qc->auth, &fr, now);
    if (rv != 0) {
      return auth_failed(qc, rv);
    }
    ctrl_queue_auth_output(qc);
    if (fr.type == PRD_FRAME_GOAWAY && qc->ep->cfg.cb->goaway) {
      qc->ep->cfg.cb->goaway(qc, fr.u.goaway.error_code, qc->ud);
    }
    if (prd_auth_is_authenticated(&qc->auth)) {
      report_authenticated(qc);
    }
  }
  if (fin && !qc->closing) {
    qc->auth.state = PRD_AUTH_STATE_FAILED;
    qc->auth.close_code = PRD_APP_PROTOCOL_ERROR;
    return auth_failed(qc, PRD_ERR_AUTH_STATE);
  }
  return 0;
}

/* ---- client: data streams that arrive before auth or in pieces ---------- */

static int stream_deliver(prd_quic_conn *qc, prd_qstream *st,
                          const uint8_t *data, size_t len, int fin) {
  const prd_quic_callbacks *cb = qc->ep->cfg.cb;
  if (st->user == NULL) {
    /* The relay let go of it: drop the bytes but return their credit. */
    prd_qstream_consumed(st, len);
    return 0;
  }
  if (cb->stream_data(st, data, len, fin, qc->ud) != 0) {
    prd_qstream_abort(st, PRD_APP_INTERNAL_ERROR);
  }
  return 0;
}

/* Client side: parse the header once authenticated; hand the stream to the
 * relay; then deliver what was held. spec/02-framing.md §1, §4. */
static void stream_try_start(prd_quic_conn *qc, prd_qstream *st) {
  const prd_quic_callbacks *cb = qc->ep->cfg.cb;
  prd_stream_header hd;
  struct iovec iov[1];
  prd_ssize n;
  uint64_t err;

  if (st->hdr_done || st->reset) {
    return;
  }
  if (st->hdrlen == 0) {
    if (st->rx_fin) {
      prd_qstream_abort(st, PRD_APP_PROTOCOL_ERROR);
      stream_unhold(qc, st);
    }
    return;
  }
  /* The header is checked as soon as it is complete, authenticated or not. */
  n = prd_stream_header_decode(&hd, st->hdrbuf, st->hdrlen);
  if (n == PRD_ERR_NEED_MORE) {
    if (st->rx_fin || st->hdrlen >= PRD_STREAM_HEADER_MAX) {
      prd_qstream_abort(st, PRD_APP_PROTOCOL_ERROR);
      stream_unhold(qc, st);
    }
    return;
  }
  if (n < 0) {
    PRD_LOG_WARN("[%s] stream %lld: bad stream header (%s)", qc->name,
                 (long long)st->id, prd_strerror((int)n));
    prd_qstream_abort(st, PRD_APP_PROTOCOL_ERROR);
    stream_unhold(qc, st);
    return;
  }
  if (!prd_auth_is_authenticated(&qc->auth)) {
    return;
  }
  st->hdr_done = 1;
  prd_qstream_consumed(st, (size_t)n);
  err = cb->stream_open(qc, st, &hd, qc->ud);
  if (err != 0) {
    prd_qstream_abort(st, err);
    stream_unhold(qc, st);
    return;
  }
  /* Deliver the held payload: behind the header in hdrbuf, then rxhold. */
  if ((size_t)n < st->hdrlen && !st->reset) {
    stream_deliver(qc, st, st->hdrbuf + n, st->hdrlen - (size_t)n,
                   st->rx_fin && prd_chunkbuf_len(&st->rxhold) == 0);
  }
  while (prd_chunkbuf_len(&st->rxhold) > 0 && !st->reset) {
    size_t len;
    int last;
    if (prd_chunkbuf_peek(&st->rxhold, st->rxhold.head_off, iov, 1) == 0) {
      break;
    }
    len = iov[0].iov_len;
    last = st->rx_fin && st->rxhold.head_off + len == st->rxhold.tail_off;
    stream_deliver(qc, st, iov[0].iov_base, len, last);
    if (last) {
      st->fin_delivered = 1; /* not again below */
    }
    prd_chunkbuf_release(&st->rxhold, st->rxhold.head_off + len);
  }
  if (st->rx_fin && prd_chunkbuf_len(&st->rxhold) == 0 &&
      (size_t)n == st->hdrlen && !st->fin_delivered && !st->reset) {
    /* FIN arrived with no payload held. */
    stream_deliver(qc, st, NULL, 0, 1);
  }
  st->fin_delivered = st->rx_fin;
  stream_unhold(qc, st);
}

static void report_authenticated(prd_quic_conn *qc) {
  prd_qstream *st, *next;
  if (qc->authenticated_reported) {
    return;
  }
  qc->authenticated_reported = 1;
  if (qc->ep->is_server && qc->ep->npending > 0) {
    --qc->ep->npending;
  }
  if (qc->ep->cfg.cb->authenticated) {
    qc->ep->cfg.cb->authenticated(qc, qc->ud);
  }
  for (st = qc->streams; st; st = next) {
    next = st->all_next;
    stream_try_start(qc, st);
  }
}

/* ---- ngtcp2 callbacks ------------------------------------------------- */

static int cb_rand_bytes(uint8_t *dest, size_t len) {
  return gnutls_rnd(GNUTLS_RND_RANDOM, dest, len) == 0 ? 0 : -1;
}

static void cb_rand(uint8_t *dest, size_t destlen,
                    const ngtcp2_rand_ctx *rand_ctx) {
  (void)rand_ctx;
  if (gnutls_rnd(GNUTLS_RND_RANDOM, dest, destlen) != 0) {
    abort(); /* no randomness: nothing safe to do */
  }
}

static int cb_get_new_connection_id(ngtcp2_conn *conn, ngtcp2_cid *cid,
                                    uint8_t *token, size_t cidlen,
                                    void *user_data) {
  prd_quic_conn *qc = user_data;
  uint8_t buf[NGTCP2_MAX_CIDLEN];
  (void)conn;
  if (cb_rand_bytes(buf, cidlen) != 0) {
    return NGTCP2_ERR_CALLBACK_FAILURE;
  }
  ngtcp2_cid_init(cid, buf, cidlen);
  if (ngtcp2_crypto_generate_stateless_reset_token(
          token, qc->ep->static_secret, sizeof(qc->ep->static_secret), cid) !=
      0) {
    return NGTCP2_ERR_CALLBACK_FAILURE;
  }
  if (qc->ep->is_server && prd_ep_cid_add(qc->ep, cid, qc) != 0) {
    return NGTCP2_ERR_CALLBACK_FAILURE;
  }
  return 0;
}

static int cb_remove_connection_id(ngtcp2_conn *conn, const ngtcp2_cid *cid,
                                   void *user_data) {
  prd_quic_conn *qc = user_data;
  (void)conn;
  if (qc->ep->is_server) {
    prd_ep_cid_remove(qc->ep, cid);
  }
  return 0;
}

/* conn_keepalive sets the PING interval: the configured one until the
 * peer's max_idle_timeout is known, then never more than half the effective
 * idle timeout (the smaller of both sides', spec/04-quic-profile.md §2.2),
 * so that a peer with a short timeout does not see the tunnel as idle. */
static void conn_keepalive(prd_quic_conn *qc) {
  const ngtcp2_transport_params *rp;
  uint64_t ka = qc->ep->cfg.keepalive_ns, idle = qc->ep->cfg.idle_timeout_ns;

  rp = ngtcp2_conn_get_remote_transport_params(qc->conn);
  if (rp && rp->max_idle_timeout &&
      (idle == 0 || rp->max_idle_timeout < idle)) {
    idle = rp->max_idle_timeout;
  }
  if (ka && idle && ka > idle / 2) {
    ka = idle / 2;
  }
  qc->keepalive_ns = ka;
  ngtcp2_conn_set_keep_alive_timeout(qc->conn, ka ? ka : PRD_KEEP_ALIVE_OFF);
}

static int cb_handshake_confirmed(ngtcp2_conn *conn, void *user_data) {
  prd_quic_conn *qc = user_data;
  (void)conn;
  qc->handshake_confirmed = 1;
  return 0;
}

static int cb_handshake_completed(ngtcp2_conn *conn, void *user_data) {
  prd_quic_conn *qc = user_data;
  uint8_t exporter[PRD_AUTH_EXPORTER_LEN];
  uint8_t challenge[PRD_CHALLENGE_MIN];
  int rv;

  qc->handshake_done = 1;
  conn_keepalive(qc);
  if (prd_tls_exporter(qc, exporter, sizeof(exporter)) != 0) {
    conn_set_error_app(qc, PRD_APP_INTERNAL_ERROR, "TLS exporter failed");
    return NGTCP2_ERR_CALLBACK_FAILURE;
  }
  if (qc->ep->is_server) {
    if (cb_rand_bytes(challenge, sizeof(challenge)) != 0) {
      return NGTCP2_ERR_CALLBACK_FAILURE;
    }
  } else {
    /* spec/02-framing.md §1: the client opens the control stream. */
    rv = ngtcp2_conn_open_bidi_stream(conn, &qc->ctrl_sid, NULL);
    if (rv != 0) {
      conn_set_error_app(qc, PRD_APP_PROTOCOL_ERROR,
                         "cannot open the control stream");
      return NGTCP2_ERR_CALLBACK_FAILURE;
    }
  }
  /* spec/03-auth.md §5: the client gives up after twice the server's
   * default deadline. */
  qc->client_deadline = prd_now() + 2 * PRD_AUTH_DEFAULT_TIMEOUT_NS;
  rv = prd_auth_start(&qc->auth, exporter, challenge, prd_now());
  gnutls_memset(exporter, 0, sizeof(exporter));
  if (rv != 0) {
    return auth_failed(qc, rv);
  }
  ctrl_queue_auth_output(qc);
  if (qc->ep->cfg.cb->set_timer) {
    /* The auth deadline is one of our timers. */
    conn_want_flush(qc);
  }
  return 0;
}

static int cb_stream_open(ngtcp2_conn *conn, int64_t stream_id,
                          void *user_data) {
  prd_quic_conn *qc = user_data;
  prd_qstream *st;
  (void)conn;

  if (qc->ep->is_server) {
    /* Only the client's first bidi stream is allowed (flow control enforces
     * it); it is the control stream. */
    if (stream_id != 0 || qc->ctrl_sid != -1) {
      conn_set_error_app(qc, PRD_APP_PROTOCOL_ERROR, "unexpected stream");
      return NGTCP2_ERR_CALLBACK_FAILURE;
    }
    qc->ctrl_sid = stream_id;
    return 0;
  }
  /* Client: a server-initiated bidi stream is a data stream. */
  if ((stream_id & 0x3) != 0x1) {
    conn_set_error_app(qc, PRD_APP_PROTOCOL_ERROR, "unexpected stream type");
    return NGTCP2_ERR_CALLBACK_FAILURE;
  }
  st = stream_new(qc, stream_id, NULL);
  if (st == NULL) {
    return NGTCP2_ERR_CALLBACK_FAILURE;
  }
  prd_chunkbuf_init(&st->rxhold, 0);
  ngtcp2_conn_set_stream_user_data(conn, stream_id, st);
  if (qc->nheld >= PRD_MAX_HELD_STREAMS) {
    /* A server opening streams without completing their headers. */
    prd_qstream_abort(st, PRD_APP_STREAM_REFUSED);
    return 0;
  }
  st->held = 1;
  st->held_since = prd_now();
  ++qc->nheld;
  return 0;
}

static int cb_recv_stream_data(ngtcp2_conn *conn, uint32_t flags,
                               int64_t stream_id, uint64_t offset,
                               const uint8_t *data, size_t datalen,
                               void *user_data, void *stream_user_data) {
  prd_quic_conn *qc = user_data;
  prd_qstream *st = stream_user_data;
  int fin = (flags & NGTCP2_STREAM_DATA_FLAG_FIN) != 0;
  (void)offset;

  if (stream_id == qc->ctrl_sid) {
    ngtcp2_conn_extend_max_stream_offset(conn, stream_id, datalen);
    ngtcp2_conn_extend_max_offset(conn, datalen);
    return ctrl_recv(qc, data, datalen, fin);
  }
  if (st == NULL) {
    ngtcp2_conn_extend_max_stream_offset(conn, stream_id, datalen);
    ngtcp2_conn_extend_max_offset(conn, datalen);
    return 0;
  }
  st->rx_bytes += datalen;
  if (!st->hdr_done) {
    size_t take = 0;
    if (st->reset || !st->held) {
      return 0; /* aborted: ngtcp2 still delivers what was in flight */
    }
    if (st->hdrlen < PRD_STREAM_HEADER_MAX) {
      if (st->hdrbuf == NULL &&
          (st->hdrbuf = malloc(PRD_STREAM_HEADER_MAX)) == NULL) {
        prd_qstream_abort(st, PRD_APP_INTERNAL_ERROR);
        stream_unhold(qc, st);
        return 0;
      }
      take = PRD_STREAM_HEADER_MAX - st->hdrlen;
      if (take > datalen) {
        take = datalen;
      }
      memcpy(st->hdrbuf + st->hdrlen, data, take);
      st->hdrlen = (uint16_t)(st->hdrlen + take);
    }
    if (datalen > take) {
      /* Payload before the start: only while waiting for AUTH_RESULT, and
       * on a bounded number of streams. */
      if (!st->held_payload &&
          qc->nheld_payload >= PRD_MAX_HELD_PAYLOAD_STREAMS) {
        prd_qstream_abort(st, PRD_APP_STREAM_REFUSED);
        stream_unhold(qc, st);
        return 0;
      }
      if (!st->held_payload) {
        st->held_payload = 1;
        ++qc->nheld_payload;
      }
      if (prd_chunkbuf_append(&st->rxhold, data + take, datalen - take) != 0) {
        prd_qstream_abort(st, PRD_APP_INTERNAL_ERROR);
        stream_unhold(qc, st);
        return 0;
      }
    }
    if (fin) {
      st->rx_fin = 1;
    }
    stream_try_start(qc, st);
    return 0;
  }
  if (fin) {
    st->fin_delivered = 1;
    st->rx_fin = 1;
  }
  return stream_deliver(qc, st, data, datalen, fin);
}

static int cb_acked_stream_data_offset(ngtcp2_conn *conn, int64_t stream_id,
                                       uint64_t offset, uint64_t datalen,
                                       void *user_data,
                                       void *stream_user_data) {
  prd_quic_conn *qc = user_data;
  prd_qstream *st = stream_user_data;
  (void)conn;

  if (stream_id == qc->ctrl_sid) {
    prd_chunkbuf_release(&qc->ctrl_sendbuf, offset + datalen);
    return 0;
  }
  if (st == NULL) {
    return 0;
  }
  prd_chunkbuf_release(&st->sendbuf, offset + datalen);
  stream_notify_writable(qc, st);
  return 0;
}

static int cb_stream_close(ngtcp2_conn *conn, uint32_t flags, int64_t stream_id,
                           uint64_t app_error_code, void *user_data,
                           void *stream_user_data) {
  prd_quic_conn *qc = user_data;
  prd_qstream *st = stream_user_data;

  /* ngtcp2 still has the stream here: keep its loss count for metrics. */
  qc->lost_closed += ngtcp2_conn_get_stream_loss_count(conn, stream_id);
  if (!(flags & NGTCP2_STREAM_CLOSE_FLAG_APP_ERROR_CODE_SET)) {
    app_error_code = PRD_APP_NO_ERROR;
  }
  if (stream_id == qc->ctrl_sid) {
    if (!qc->closing) {
      conn_set_error_app(qc, PRD_APP_PROTOCOL_ERROR, "control stream closed");
      return NGTCP2_ERR_CALLBACK_FAILURE;
    }
    return 0;
  }
  if (!qc->ep->is_server && (stream_id & 0x3) == 0x1) {
    /* Replenish the server's stream credit (STYLE §10, Streams). */
    ngtcp2_conn_extend_max_streams_bidi(conn, 1);
  }
  if (st == NULL) {
    return 0;
  }
  if ((flags & NGTCP2_STREAM_CLOSE_FLAG_APP_ERROR_CODE_SET) &&
      app_error_code == PRD_APP_NO_ERROR && !st->reset && !qc->closing &&
      !qc->tearing_down) {
    /* The peer aborted with NO_ERROR (a STOP_SENDING, which ngtcp2 0.12
     * answers without a callback): still an abort, and a code that never
     * aborts a stream (spec/05-errors.md §2). */
    app_error_code = PRD_APP_PROTOCOL_ERROR;
  }
  st->closed = 1;
  sendq_remove(qc, st);
  prd_chunkbuf_free(&st->sendbuf);
  if (st->user) {
    if (qc->ep->cfg.cb->stream_close) {
      qc->ep->cfg.cb->stream_close(st, app_error_code, qc->ud);
    }
  } else {
    stream_free(st);
  }
  return 0;
}

static int cb_stream_reset(ngtcp2_conn *conn, int64_t stream_id,
                           uint64_t final_size, uint64_t app_error_code,
                           void *user_data, void *stream_user_data) {
  prd_quic_conn *qc = user_data;
  prd_qstream *st = stream_user_data;
  (void)conn;
  (void)final_size;

  if (stream_id == qc->ctrl_sid) {
    if (!qc->closing) {
      conn_set_error_app(qc, PRD_APP_PROTOCOL_ERROR, "control stream reset");
      return NGTCP2_ERR_CALLBACK_FAILURE;
    }
    return 0;
  }
  if (st == NULL) {
    return 0;
  }
  if (st->user && qc->ep->cfg.cb->stream_reset) {
    qc->ep->cfg.cb->stream_reset(st, app_error_code, qc->ud);
  }
  if (st->user == NULL && (st->fin_pending || st->fin_sent)) {
    /* Detached after our FIN: this answers our STOP_SENDING
     * (prd_qstream_detach), and our bytes and FIN still go out. */
    return 0;
  }
  /* Abort our direction too: a TCP RST ends both (spec/02-framing.md §6). */
  prd_qstream_abort(st, app_error_code);
  return 0;
}

static int cb_extend_max_stream_data(ngtcp2_conn *conn, int64_t stream_id,
                                     uint64_t max_data, void *user_data,
                                     void *stream_user_data) {
  prd_quic_conn *qc = user_data;
  prd_qstream *st = stream_user_data;
  (void)conn;
  (void)max_data;
  if (stream_id == qc->ctrl_sid || st == NULL) {
    return 0;
  }
  if (st->blocked) {
    st->blocked = 0;
    prd_qstream_mark_ready(st);
  }
  return 0;
}

static int cb_extend_max_local_streams_bidi(ngtcp2_conn *conn,
                                            uint64_t max_streams,
                                            void *user_data) {
  prd_quic_conn *qc = user_data;
  (void)conn;
  (void)max_streams;
  if (qc->ep->is_server && qc->ep->cfg.cb->streams_available) {
    qc->streams_available_pending = 1;
    conn_want_flush(qc);
  }
  return 0;
}

static int cb_recv_stateless_reset(ngtcp2_conn *conn,
                                   const ngtcp2_pkt_stateless_reset *sr,
                                   void *user_data) {
  prd_quic_conn *qc = user_data;
  (void)conn;
  (void)sr;
  qc->close_reason = PRD_QUIC_CLOSE_RESET;
  snprintf(qc->close_msg, sizeof(qc->close_msg),
           "stateless reset from the peer (it restarted or lost the "
           "connection)");
  return 0;
}

/* cb_path_validation logs a peer's new address once ngtcp2 has validated it
 * (NAT rebinding or migration, spec/04-quic-profile.md §4). */
static int cb_path_validation(
    ngtcp2_conn *conn, uint32_t flags, const ngtcp2_path *path,
    PRD_PATH_VALIDATION_FALLBACK_PARAM ngtcp2_path_validation_result res,
    void *user_data) {
  prd_quic_conn *qc = user_data;
  prd_sockaddr to;
  char was[64], now[64];
  (void)conn;
  (void)flags;

  if (path->remote.addrlen > sizeof(to.u)) {
    return 0;
  }
  memset(&to, 0, sizeof(to));
  memcpy(&to.u, path->remote.addr, path->remote.addrlen);
  to.len = (socklen_t)path->remote.addrlen;
  prd_sockaddr_str(&qc->remote, was, sizeof(was));
  prd_sockaddr_str(&to, now, sizeof(now));
  if (res == NGTCP2_PATH_VALIDATION_RESULT_SUCCESS) {
    PRD_LOG_INFO("%s %s: path to %s validated, connection migrated",
                 qc->ep->is_server ? "client" : "server", was, now);
  } else {
    PRD_LOG_INFO("%s %s: path to %s not validated, staying on the old path",
                 qc->ep->is_server ? "client" : "server", was, now);
  }
  return 0;
}

static const ngtcp2_callbacks client_callbacks = {
    .client_initial = ngtcp2_crypto_client_initial_cb,
    .recv_crypto_data = ngtcp2_crypto_recv_crypto_data_cb,
    .handshake_completed = cb_handshake_completed,
    .handshake_confirmed = cb_handshake_confirmed,
    .encrypt = ngtcp2_crypto_encrypt_cb,
    .decrypt = ngtcp2_crypto_decrypt_cb,
    .hp_mask = ngtcp2_crypto_hp_mask_cb,
    .recv_stream_data = cb_recv_stream_data,
    .acked_stream_data_offset = cb_acked_stream_data_offset,
    .stream_open = cb_stream_open,
    .stream_close = cb_stream_close,
    .recv_stateless_reset = cb_recv_stateless_reset,
    .recv_retry = ngtcp2_crypto_recv_retry_cb,
    .rand = cb_rand,
    .get_new_connection_id = cb_get_new_connection_id,
    .remove_connection_id = cb_remove_connection_id,
    .update_key = ngtcp2_crypto_update_key_cb,
    .stream_reset = cb_stream_reset,
    .extend_max_stream_data = cb_extend_max_stream_data,
    .path_validation = cb_path_validation,
    .delete_crypto_aead_ctx = ngtcp2_crypto_delete_crypto_aead_ctx_cb,
    .delete_crypto_cipher_ctx = ngtcp2_crypto_delete_crypto_cipher_ctx_cb,
    .get_path_challenge_data = ngtcp2_crypto_get_path_challenge_data_cb,
    .version_negotiation = ngtcp2_crypto_version_negotiation_cb,
};

static const ngtcp2_callbacks server_callbacks = {
    .recv_client_initial = ngtcp2_crypto_recv_client_initial_cb,
    .recv_crypto_data = ngtcp2_crypto_recv_crypto_data_cb,
    .handshake_completed = cb_handshake_completed,
    .handshake_confirmed = cb_handshake_confirmed,
    .encrypt = ngtcp2_crypto_encrypt_cb,
    .decrypt = ngtcp2_crypto_decrypt_cb,
    .hp_mask = ngtcp2_crypto_hp_mask_cb,
    .recv_stream_data = cb_recv_stream_data,
    .acked_stream_data_offset = cb_acked_stream_data_offset,
    .stream_open = cb_stream_open,
    .stream_close = cb_stream_close,
    .rand = cb_rand,
    .get_new_connection_id = cb_get_new_connection_id,
    .remove_connection_id = cb_remove_connection_id,
    .update_key = ngtcp2_crypto_update_key_cb,
    .stream_reset = cb_stream_reset,
    .extend_max_local_streams_bidi = cb_extend_max_local_streams_bidi,
    .extend_max_stream_data = cb_extend_max_stream_data,
    .path_validation = cb_path_validation,
    .delete_crypto_aead_ctx = ngtcp2_crypto_delete_crypto_aead_ctx_cb,
    .delete_crypto_cipher_ctx = ngtcp2_crypto_delete_crypto_cipher_ctx_cb,
    .get_path_challenge_data = ngtcp2_crypto_get_path_challenge_data_cb,
    .version_negotiation = ngtcp2_crypto_version_negotiation_cb,
};

/* ---- creation --------------------------------------------------------- */

static int is_loopback(const prd_sockaddr *a) {
  if (a->u.sa.sa_family == AF_INET) {
    return (ntohl(a->u.in.sin_addr.s_addr) >> 24) == 127;
  }
  if (a->u.sa.sa_family == AF_INET6) {
    const struct in6_addr *x = &a->u.in6.sin6_addr;
    if (IN6_IS_ADDR_LOOPBACK(x)) {
      return 1;
    }
    if (IN6_IS_ADDR_V4MAPPED(x)) {
      return x->s6_addr[12] == 127;
    }
  }
  return 0;
}

static void settings_init(prd_quic_conn *qc, ngtcp2_settings *settings,
                          ngtcp2_transport_params *params) {
  const prd_quic_config *cfg = &qc->ep->cfg;
  size_t payload = cfg->max_udp_payload;

  ngtcp2_settings_default(settings);
  settings->initial_ts = prd_now();
  settings->cc_algo = prd_cc_algo(cfg->cc_algo);
  /* The connection's window auto-tunes up to max_window (README:
   * Performance). Streams' windows are auto-tuned by ngtcp2 up to
   * max_stream_window, or, where its tuning trips a FLOW_CONTROL_ERROR bug
   * under loss (ngtcp2 < 0.19), by stream_window_bonus instead
   * (PRD_NGTCP2_STREAM_AUTOTUNE). */
  settings->max_window = 64 * 1024 * 1024;
  settings->max_stream_window =
      PRD_NGTCP2_STREAM_AUTOTUNE ? PRD_STREAM_WINDOW_MAX : 0;
  settings->handshake_timeout = 10 * NGTCP2_SECONDS;
  settings->rand_ctx.native_handle = NULL;
  if (payload == 0 && is_loopback(&qc->remote)) {
    /* Loopback's MTU is 65,536: large datagrams are safe and much cheaper
     * (spec/04-quic-profile.md §5). */
    payload = PRD_LOOPBACK_UDP_PAYLOAD;
  }
  if (payload > PRD_MAX_UDP_PAYLOAD_CAP) {
    payload = PRD_MAX_UDP_PAYLOAD_CAP;
  }
  if (payload > 1452) {
    settings->max_tx_udp_payload_size = payload;
    settings->no_tx_udp_payload_size_shaping = 1;
    settings->no_pmtud = 1;
  } else if (payload >= 1200) {
    settings->max_tx_udp_payload_size = payload;
  }
  qc->udp_payload = payload ? payload : 1452;
  qc->no_pacing = is_loopback(&qc->remote);

  ngtcp2_transport_params_default(params);
  params->initial_max_stream_data_bidi_local = PRD_STREAM_WINDOW;
  params->initial_max_stream_data_bidi_remote =
      qc->ep->is_server ? PRD_CTRL_WINDOW : PRD_STREAM_WINDOW;
  params->initial_max_data = PRD_CONN_WINDOW;
  params->initial_max_streams_uni = 0;
  params->max_idle_timeout = cfg->idle_timeout_ns;
  params->active_connection_id_limit = 4;
  if (qc->ep->is_server) {
    /* spec/04-quic-profile.md §2: only the control stream. */
    params->initial_max_streams_bidi = 1;
  } else {
    params->initial_max_streams_bidi = cfg->max_streams;
  }
}

static int conn_common_init(prd_quic_conn *qc, prd_quic_endpoint *ep,
                            const prd_sockaddr *local,
                            const prd_sockaddr *remote) {
  qc->ep = ep;
  qc->ud = ep->cfg.ud;
  qc->ctrl_sid = -1;
  qc->local = *local;
  qc->remote = *remote;
  qc->created = prd_now();
  prd_frame_reader_init(&qc->ctrl_reader);
  prd_chunkbuf_init(&qc->ctrl_sendbuf, 0);
  prd_ccerr_default(&qc->last_error);
  static uint64_t conn_seq; /* process-wide: names stay unique in logs */
  snprintf(qc->name, sizeof(qc->name), "%c%llu", ep->is_server ? 'c' : 'q',
           (unsigned long long)++conn_seq);
  qc->conn_ref.get_conn = get_conn;
  qc->conn_ref.user_data = qc;
  qc->txbuf = malloc(PRD_TXBUF_SIZE);
  if (qc->txbuf == NULL) {
    return PRD_ERR_NOMEM;
  }
  if (prd_auth_init(&qc->auth,
                    ep->is_server ? PRD_AUTH_ROLE_SERVER : PRD_AUTH_ROLE_CLIENT,
                    ep->cfg.psk, ep->cfg.psklen,
                    ep->cfg.auth_timeout_ns) != 0) {
    return PRD_ERR_INVAL;
  }
  return 0;
}

static void conn_link(prd_quic_conn *qc) {
  prd_quic_endpoint *ep = qc->ep;
  qc->next = ep->conns;
  if (ep->conns) {
    ep->conns->prev = qc;
  }
  ep->conns = qc;
  ++ep->nconns;
}

static ngtcp2_path make_path(prd_quic_conn *qc) {
  ngtcp2_path path;
  path.local.addr = &qc->local.u.sa;
  path.local.addrlen = qc->local.len;
  path.remote.addr = &qc->remote.u.sa;
  path.remote.addrlen = qc->remote.len;
  path.user_data = NULL;
  return path;
}

int prd_conn_server_new(prd_quic_conn **pqc, prd_quic_endpoint *ep,
                        const ngtcp2_pkt_hd *hd, const prd_sockaddr *local,
                        const prd_sockaddr *remote, const ngtcp2_cid *odcid,
                        const ngtcp2_cid *retry_scid) {
  prd_quic_conn *qc = calloc(1, sizeof(*qc));
  ngtcp2_settings settings;
  ngtcp2_transport_params params;
  ngtcp2_path path;
  ngtcp2_cid scid;
  uint8_t scidbuf[PRD_SCID_LEN];
  int rv;

  if (qc == NULL) {
    return PRD_ERR_NOMEM;
  }
  rv = conn_common_init(qc, ep, local, remote);
  if (rv != 0) {
    goto fail;
  }
  settings_init(qc, &settings, &params);
  prd_settings_set_token(&settings, prd_hd_token(hd), prd_hd_tokenlen(hd));
  if (odcid) {
    prd_params_set_original_dcid(&params, odcid);
    params.retry_scid = *retry_scid;
    params.retry_scid_present = 1;
  } else {
    prd_params_set_original_dcid(&params, &hd->dcid);
  }
  qc->odcid = hd->dcid;
  qc->have_odcid = 1;
  qc->hs_remote = *remote;
  params.stateless_reset_token_present = 1;
  if (cb_rand_bytes(scidbuf, sizeof(scidbuf)) != 0) {
    rv = PRD_ERR_TLS;
    goto fail;
  }
  ngtcp2_cid_init(&scid, scidbuf, sizeof(scidbuf));
  if (ngtcp2_crypto_generate_stateless_reset_token(
          params.stateless_reset_token, ep->static_secret,
          sizeof(ep->static_secret), &scid) != 0) {
    rv = PRD_ERR_TLS;
    goto fail;
  }
  path = make_path(qc);
  rv = ngtcp2_conn_server_new(&qc->conn, &hd->scid, &scid, &path, hd->version,
                              &server_callbacks, &settings, &params, NULL, qc);
  if (rv != 0) {
    rv = PRD_ERR_QUIC;
    goto fail;
  }
  rv = prd_tls_session_new(qc);
  if (rv != 0) {
    goto fail;
  }
  qc->conn_ref.get_conn = get_conn;
  ngtcp2_conn_set_tls_native_handle(qc->conn, qc->tls);
  conn_keepalive(qc);
  conn_link(qc);
  ++ep->npending;
  if (prd_ep_cid_add(ep, &scid, qc) != 0 ||
      prd_ep_cid_add(ep, &hd->dcid, qc) != 0) {
    prd_conn_free(qc);
    return PRD_ERR_NOMEM;
  }
  if (ep->cfg.cb->conn_new) {
    /* Without its own user data every later callback would take the
     * endpoint's for this connection's: refuse the connection instead (the
     * peer's Initial is dropped; nothing was sent yet). */
    void *ud = ep->cfg.cb->conn_new(qc, ep->cfg.ud);
    if (ud == NULL) {
      prd_conn_free(qc);
      return PRD_ERR_NOMEM;
    }
    qc->ud = ud;
  }
  *pqc = qc;
  return 0;
fail:
  if (qc->conn) {
    ngtcp2_conn_del(qc->conn);
  }
  if (qc->tls) {
    gnutls_deinit(qc->tls);
  }
  prd_auth_free(&qc->auth);
  free(qc->txbuf);
  free(qc);
  return rv;
}

int prd_conn_client_new(prd_quic_conn **pqc, prd_quic_endpoint *ep,
                        const prd_sockaddr *local, const prd_sockaddr *remote) {
  prd_quic_conn *qc = calloc(1, sizeof(*qc));
  ngtcp2_settings settings;
  ngtcp2_transport_params params;
  ngtcp2_path path;
  ngtcp2_cid scid, dcid;
  uint8_t buf[PRD_SCID_LEN];
  int rv;

  if (qc == NULL) {
    return PRD_ERR_NOMEM;
  }
  rv = conn_common_init(qc, ep, local, remote);
  if (rv != 0) {
    goto fail;
  }
  settings_init(qc, &settings, &params);
  if (cb_rand_bytes(buf, sizeof(buf)) != 0) {
    rv = PRD_ERR_TLS;
    goto fail;
  }
  ngtcp2_cid_init(&scid, buf, sizeof(buf));
  if (cb_rand_bytes(buf, sizeof(buf)) != 0) {
    rv = PRD_ERR_TLS;
    goto fail;
  }
  ngtcp2_cid_init(&dcid, buf, sizeof(buf));
  path = make_path(qc);
  rv = ngtcp2_conn_client_new(&qc->conn, &dcid, &scid, &path,
                              NGTCP2_PROTO_VER_V1, &client_callbacks, &settings,
                              &params, NULL, qc);
  if (rv != 0) {
    rv = PRD_ERR_QUIC;
    goto fail;
  }
  rv = prd_tls_session_new(qc);
  if (rv != 0) {
    goto fail;
  }
  qc->conn_ref.get_conn = get_conn;
  ngtcp2_conn_set_tls_native_handle(qc->conn, qc->tls);
  conn_keepalive(qc);
  conn_link(qc);
  *pqc = qc;
  return 0;
fail:
  if (qc->conn) {
    ngtcp2_conn_del(qc->conn);
  }
  if (qc->tls) {
    gnutls_deinit(qc->tls);
  }
  prd_auth_free(&qc->auth);
  free(qc->txbuf);
  free(qc);
  return rv;
}

/* ---- teardown --------------------------------------------------------- */

/* Packets with STREAM frames of the streams ngtcp2 still holds that were
 * declared lost (the closed ones are in qc->lost_closed). */
static uint64_t conn_open_streams_lost(prd_quic_conn *qc) {
  uint64_t n = 0;
  if (qc->conn == NULL || qc->tearing_down) {
    return 0;
  }
  if (qc->ctrl_sid >= 0) {
    n += ngtcp2_conn_get_stream_loss_count(qc->conn, qc->ctrl_sid);
  }
  for (prd_qstream *st = qc->streams; st; st = st->all_next) {
    if (!st->closed) {
      n += ngtcp2_conn_get_stream_loss_count(qc->conn, st->id);
    }
  }
  return n;
}

/* Tell the relay about every stream still open, then forget them all. */
static void conn_close_streams(prd_quic_conn *qc) {
  prd_quic_endpoint *ep = qc->ep;
  prd_qstream *st, *next;
  qc->lost_closed += conn_open_streams_lost(qc); /* final count */
  qc->tearing_down = 1;
  for (st = qc->streams; st; st = next) {
    next = st->all_next;
    if (!st->closed) {
      uint64_t code = qc->close_code ? qc->close_code : PRD_APP_SHUTTING_DOWN;
      st->closed = 1;
      if (st->fin_delivered && st->fin_sent && !st->reset &&
          prd_chunkbuf_len(&st->sendbuf) == 0) {
        /* The peer's direction ended and ours was acknowledged up to its
         * FIN: the stream is complete but for that last ACK, so the relay
         * finishes it cleanly (spec/04-quic-profile.md §6.4). */
        code = PRD_APP_NO_ERROR;
      }
      if (st->user && ep->cfg.cb->stream_close) {
        ep->cfg.cb->stream_close(st, code, qc->ud);
      }
    }
    /* Whatever the relay did, nobody refers to it any more. */
    stream_free(st);
  }
}

void prd_conn_free(prd_quic_conn *qc) {
  prd_quic_endpoint *ep = qc->ep;
  size_t i, n;

  conn_close_streams(qc);
  if (ep->is_server && qc->conn) {
    ngtcp2_cid *scids;
    n = prd_conn_num_scid(qc->conn);
    scids = calloc(n ? n : 1, sizeof(*scids));
    if (scids) {
      n = ngtcp2_conn_get_scid(qc->conn, scids);
      for (i = 0; i < n; ++i) {
        prd_ep_cid_remove(ep, &scids[i]);
      }
      free(scids);
    }
    if (qc->have_odcid) {
      prd_ep_cid_remove(ep, &qc->odcid);
    }
  }
  /* The endpoint may still refer to it in its CID table under CIDs that
   * ngtcp2 already retired; sweep them. */
  if (ep->is_server) {
    for (i = 0; i < PRD_CID_BUCKETS; ++i) {
      prd_cid_entry **pp = &ep->cids[i];
      while (*pp) {
        if ((*pp)->qc == qc) {
          prd_cid_entry *e = *pp;
          *pp = e->next;
          free(e);
        } else {
          pp = &(*pp)->next;
        }
      }
    }
  }
  if (ep->is_server && !qc->authenticated_reported && ep->npending > 0) {
    --ep->npending;
  }
  if (qc->in_blocked) {
    prd_quic_conn **pp = &ep->blocked;
    while (*pp && *pp != qc) {
      pp = &(*pp)->blocked_next;
    }
    if (*pp) {
      *pp = qc->blocked_next;
    }
  }
  if (qc->prev) {
    qc->prev->next = qc->next;
  } else if (ep->conns == qc) {
    ep->conns = qc->next;
  }
  if (qc->next) {
    qc->next->prev = qc->prev;
  }
  --ep->nconns;
  if (qc->conn) {
    ngtcp2_conn_del(qc->conn);
  }
  if (qc->tls) {
    gnutls_deinit(qc->tls);
  }
  prd_chunkbuf_free(&qc->ctrl_sendbuf);
  prd_auth_free(&qc->auth);
  free(qc->close_pkt);
  free(qc->peer_cert);
  free(qc->txbuf);
  free(qc);
}

/* Report and free. */
static void conn_finish(prd_quic_conn *qc) {
  const prd_quic_callbacks *cb = qc->ep->cfg.cb;
  if (!qc->closed_reported) {
    qc->closed_reported = 1;
    conn_close_streams(qc);
    if (cb->closed) {
      cb->closed(qc, qc->close_reason, qc->close_code, qc->close_msg, qc->ud);
    }
  }
  prd_conn_free(qc);
}

static void conn_update_timer(prd_quic_conn *qc) {
  const prd_quic_callbacks *cb = qc->ep->cfg.cb;
  prd_tstamp expiry;
  if (cb->set_timer == NULL) {
    return;
  }
  if (qc->closing || qc->draining) {
    expiry = qc->close_deadline;
  } else {
    expiry = ngtcp2_conn_get_expiry(qc->conn);
    if (!prd_auth_is_authenticated(&qc->auth) &&
        qc->auth.state != PRD_AUTH_STATE_IDLE) {
      prd_tstamp d =
          qc->ep->is_server ? qc->auth.deadline : qc->client_deadline;
      if (d < expiry) {
        expiry = d;
      }
    }
  }
  /* Called after every flush; the relay re-arms only when the expiry moves
   * earlier (cb_set_timer), so an unchanged one costs a comparison. */
  cb->set_timer(qc, expiry, qc->ud);
}

/* Describe the peer's CONNECTION_CLOSE for the log. */
static void describe_peer_close(prd_quic_conn *qc) {
  prd_ccerr e;
  prd_conn_get_ccerr(qc->conn, &e);
  qc->close_reason = PRD_QUIC_CLOSE_PEER;
  qc->close_code = e.error_code;
  qc->peer_close_app = e.type == PRD_CCERR_TYPE_APPLICATION;
  qc->peer_close_code = e.error_code;
  if (e.type == PRD_CCERR_TYPE_APPLICATION) {
    /* The reason phrase is the peer's, possibly an unauthenticated one's:
     * escaped, so that it cannot forge log lines or send terminal escapes
     * (spec/08-security.md §3). */
    char reason[256];
    prd_log_escape(reason, sizeof(reason), e.reason,
                   e.reason ? e.reasonlen : 0);
    snprintf(qc->close_msg, sizeof(qc->close_msg),
             "peer closed the connection: %s (0x%llx)%s%s",
             prd_app_err_name(e.error_code), (unsigned long long)e.error_code,
             reason[0] ? ": " : "", reason);
  } else {
    qc->close_code = PRD_APP_INTERNAL_ERROR;
    if (e.error_code >= 0x100 && e.error_code <= 0x1ff) {
      snprintf(qc->close_msg, sizeof(qc->close_msg),
               "peer closed the connection: TLS alert %llu%s",
               (unsigned long long)(e.error_code - 0x100),
               (e.error_code >= 0x12a && e.error_code <= 0x12e) ||
                       e.error_code == 0x130
                   ? " (it rejected our certificate or we do not share a "
                     "pin)"
                   : (e.error_code == 0x178
                          ? " (no common ALPN: not a portredirect peer or "
                            "another protocol version)"
                          : ""));
    } else {
      snprintf(qc->close_msg, sizeof(qc->close_msg),
               "peer closed the connection: transport error 0x%llx",
               (unsigned long long)e.error_code);
    }
  }
}

static void conn_enter_draining(prd_quic_conn *qc) {
  qc->draining = 1;
  qc->closing = 1;
  qc->close_deadline = prd_now() + 3 * ngtcp2_conn_get_pto(qc->conn);
  conn_update_timer(qc);
}

static int conn_write_close(prd_quic_conn *qc) {
  ngtcp2_path_storage ps;
  ngtcp2_pkt_info pi;
  uint8_t buf[1500];
  ngtcp2_ssize n;

  qc->closing = 1;
  if (qc->conn == NULL || prd_conn_in_closing_period(qc->conn) ||
      prd_conn_in_draining_period(qc->conn)) {
    return 0;
  }
  ngtcp2_path_storage_zero(&ps);
  memset(&pi, 0, sizeof(pi));
  n = ngtcp2_conn_write_connection_close(
      qc->conn, &ps.path, &pi, buf, sizeof(buf), &qc->last_error, prd_now());
  if (n <= 0) {
    return -1;
  }
  free(qc->close_pkt);
  qc->close_pkt = malloc((size_t)n);
  if (qc->close_pkt) {
    memcpy(qc->close_pkt, buf, (size_t)n);
    qc->close_pktlen = (size_t)n;
  }
  prd_ep_send(qc->ep, &qc->local, &qc->remote, buf, (size_t)n, (size_t)n);
  qc->close_deadline = prd_now() + 3 * ngtcp2_conn_get_pto(qc->conn);
  conn_update_timer(qc);
  return 0;
}

/* Handle a fatal ngtcp2 result; returns -1 when |qc| was freed. */
static int conn_handle_error(prd_quic_conn *qc, int rv) {
  switch (rv) {
  case NGTCP2_ERR_DRAINING:
    /* A stateless reset also drains: cb_recv_stateless_reset described it
     * already, and the peer sent no CONNECTION_CLOSE. */
    if (qc->close_reason != PRD_QUIC_CLOSE_RESET) {
      describe_peer_close(qc);
    }
    conn_enter_draining(qc);
    return 0;
  case NGTCP2_ERR_IDLE_CLOSE:
    qc->close_reason = PRD_QUIC_CLOSE_IDLE;
    qc->close_code = PRD_APP_NO_ERROR;
    snprintf(qc->close_msg, sizeof(qc->close_msg),
             "idle timeout: nothing heard from the peer");
    conn_finish(qc);
    return -1;
  case NGTCP2_ERR_DROP_CONN:
    if (qc->close_msg[0] == 0) {
      snprintf(qc->close_msg, sizeof(qc->close_msg), "connection dropped");
    }
    conn_finish(qc);
    return -1;
  case NGTCP2_ERR_CRYPTO:
    qc->close_reason = PRD_QUIC_CLOSE_HANDSHAKE;
    qc->close_code = PRD_APP_INTERNAL_ERROR;
    if (qc->close_msg[0] == 0) {
      snprintf(qc->close_msg, sizeof(qc->close_msg), "TLS handshake failed%s%s",
               qc->verify_msg[0] ? ": " : "", qc->verify_msg);
    }
    prd_ccerr_set_tls_alert(&qc->last_error,
                            ngtcp2_conn_get_tls_alert(qc->conn), NULL, 0);
    break;
  case NGTCP2_ERR_CALLBACK_FAILURE:
    /* last_error was set by the callback. */
    if (qc->close_msg[0] == 0) {
      conn_set_error_app(qc, PRD_APP_INTERNAL_ERROR, "internal error");
    }
    break;
  case NGTCP2_ERR_HANDSHAKE_TIMEOUT:
    qc->close_reason = PRD_QUIC_CLOSE_HANDSHAKE;
    if (!qc->ep->is_server && qc->last_rx == 0) {
      /* Not one datagram came back: UDP is dropped on the way, or nothing
       * listens there. */
      char peer[80];
      prd_sockaddr_str(&qc->remote, peer, sizeof(peer));
      snprintf(qc->close_msg, sizeof(qc->close_msg),
               "handshake timed out: nothing answered over UDP; check that "
               "UDP reaches %s (a firewall dropping UDP, or no server on "
               "that address and port)",
               peer);
    } else {
      snprintf(qc->close_msg, sizeof(qc->close_msg), "handshake timed out");
    }
    conn_finish(qc);
    return -1;
  default:
    if (qc->close_msg[0] == 0) {
      snprintf(qc->close_msg, sizeof(qc->close_msg), "QUIC error: %s",
               ngtcp2_strerror(rv));
    }
    prd_ccerr_set_liberr(&qc->last_error, rv, NULL, 0);
    break;
  }
  if (qc->auth_failed) {
    /* Let AUTH_RESULT go out first (best effort). */
    qc->closing = 0;
    prd_quic_conn_flush(qc);
    if (qc->closed_reported) {
      return -1;
    }
  }
  if (conn_write_close(qc) != 0) {
    conn_finish(qc);
    return -1;
  }
  return 0;
}

int prd_conn_read(prd_quic_conn *qc, const prd_sockaddr *local,
                  const prd_sockaddr *remote, const uint8_t *pkt, size_t len,
                  uint8_t ecn) {
  ngtcp2_path path;
  ngtcp2_pkt_info pi;
  int rv;

  if (qc->draining) {
    return 0;
  }
  if (qc->closing) {
    /* Closing period: answer with the same CONNECTION_CLOSE, sparingly. */
    if (qc->close_pkt && (qc->close_resends++ & 0x7) == 0) {
      prd_ep_send(qc->ep, &qc->local, &qc->remote, qc->close_pkt,
                  qc->close_pktlen, qc->close_pktlen);
    }
    return 0;
  }
  path.local.addr = (ngtcp2_sockaddr *)(uintptr_t)&local->u.sa;
  path.local.addrlen = local->len;
  path.remote.addr = (ngtcp2_sockaddr *)(uintptr_t)&remote->u.sa;
  path.remote.addrlen = remote->len;
  path.user_data = NULL;
  memset(&pi, 0, sizeof(pi));
  pi.ecn = ecn;
  qc->in_callback = 1;
  qc->last_rx = prd_now();
  rv = ngtcp2_conn_read_pkt(qc->conn, &path, &pi, pkt, len, qc->last_rx);
  qc->in_callback = 0;
  if (rv != 0) {
    if (rv == NGTCP2_ERR_DISCARD_PKT) {
      return 0;
    }
    return conn_handle_error(qc, rv);
  }
  /* Track the path the peer uses now (migration, NAT rebinding). */
  {
    const ngtcp2_path *p = ngtcp2_conn_get_path(qc->conn);
    if (p->remote.addrlen <= sizeof(qc->remote.u)) {
      memcpy(&qc->remote.u, p->remote.addr, p->remote.addrlen);
      qc->remote.len = p->remote.addrlen;
    }
    if (p->local.addrlen <= sizeof(qc->local.u)) {
      memcpy(&qc->local.u, p->local.addr, p->local.addrlen);
      qc->local.len = p->local.addrlen;
    }
  }
  conn_want_flush(qc);
  return 0;
}

/* ---- write loop ------------------------------------------------------- */

/* Pacing (ngtcp2 spaces bursts by the send quantum) matters where queues
 * overflow; on loopback it only adds timer wake-ups. */
static void conn_paced(prd_quic_conn *qc, prd_tstamp ts) {
  if (!qc->no_pacing) {
    ngtcp2_conn_update_pkt_tx_time(qc->conn, ts);
  }
}

static int tx_send_pending(prd_quic_conn *qc) {
  if (qc->tx_len > 0 && qc->tx_since_rx <= qc->last_rx) {
    qc->tx_since_rx = prd_now(); /* prd_conn_pto_fired */
  }
  while (qc->tx_len > 0) {
    ssize_t n = prd_ep_send(qc->ep, &qc->tx_local, &qc->tx_remote,
                            qc->txbuf + qc->tx_off, qc->tx_len, qc->tx_segsize);
    if (n == -EAGAIN) {
      prd_ep_block(qc->ep, qc);
      return -1;
    }
    if (n < 0) {
      /* Dropped: QUIC's loss recovery will resend. */
      n = (ssize_t)qc->tx_len;
    }
    qc->tx_off += (size_t)n;
    qc->tx_len -= (size_t)n;
  }
  qc->tx_off = 0;
  return 0;
}

/* stream_unseen: the server's stream |st| may be unknown to the peer: none
 * of its bytes acknowledged, none received. ngtcp2 forgets a stream whose
 * first frame is RESET_STREAM or STOP_SENDING and answers neither, so an
 * abort now would leave our end waiting for the peer's half until the
 * connection closes: the abort waits until a first byte (of the header,
 * sent alone if need be) is acknowledged. */
static int stream_unseen(const prd_quic_conn *qc, const prd_qstream *st) {
  return qc->ep->is_server && !st->closed && st->sendbuf.head_off == 0 &&
         st->rx_bytes == 0 && !st->rx_fin;
}

/* Process deferred stream aborts (spec/02-framing.md §6). */
static void conn_do_aborts(prd_quic_conn *qc) {
  prd_qstream *st, *next;
  for (st = qc->streams; st; st = next) {
    next = st->all_next;
    if (st->abort_pending && !stream_unseen(qc, st)) {
      st->abort_pending = 0;
      sendq_remove(qc, st);
      if (st->closed) {
        continue;
      }
      if (st->abort_read_only) {
        st->abort_read_only = 0;
        prd_conn_shutdown_stream_read(qc->conn, st->id, st->abort_code);
        if (stream_has_output(st)) {
          sendq_push(qc, st);
        }
      } else {
        prd_conn_shutdown_stream(qc->conn, st->id, st->abort_code);
      }
    }
  }
}

void prd_quic_conn_flush(prd_quic_conn *qc) {
  ngtcp2_path_storage ps;
  ngtcp2_pkt_info pi;
  prd_tstamp ts;
  size_t segsize = 0, nseg = 0, off = 0, maxseg, payload, quantum;
  size_t burst = 0; /* bytes sent by this flush */

  if (qc->closed_reported) {
    return;
  }
  if (qc->closing) {
    conn_update_timer(qc);
    return;
  }
  if (qc->close_requested) {
    int how = qc->close_requested;
    qc->close_requested = 0;
    if (how == 2) {
      prd_quic_conn_refuse(qc, qc->requested_reason);
    } else {
      prd_quic_conn_close(qc, qc->requested_code, qc->requested_reason);
    }
    return;
  }
  if (qc->tx_len > 0 && tx_send_pending(qc) != 0) {
    return;
  }
  if (qc->streams_available_pending) {
    qc->streams_available_pending = 0;
    if (qc->ep->cfg.cb->streams_available) {
      qc->ep->cfg.cb->streams_available(qc, qc->ud);
    }
  }
  conn_do_aborts(qc);

  ts = prd_now();
  payload = ngtcp2_conn_get_max_tx_udp_payload_size(qc->conn);
  if (payload > PRD_TXBUF_SIZE) {
    payload = PRD_TXBUF_SIZE;
  }
  if (payload > PRD_MIN_UDP_PAYLOAD && !qc->handshake_confirmed &&
      !qc->ep->cfg.max_udp_payload) {
    /* Until the handshake is confirmed the peer's max_udp_payload_size may
     * be unknown, and a client's datagram with an Initial packet would be
     * padded to the full size: none above 1,200 bytes (RFC 9000 §14.1,
     * spec/04-quic-profile.md §5), whatever the path could carry. */
    payload = PRD_MIN_UDP_PAYLOAD;
  }
  /* The send quantum sizes a paced burst; unpaced (loopback), a GSO batch
   * is as large as one sendmsg takes, whatever the congestion controller's
   * quantum (BBR's is 10 datagrams at small rates). */
  quantum = ngtcp2_conn_get_send_quantum(qc->conn);
  maxseg = qc->no_pacing ? PRD_MAX_GSO_SEGS : quantum / payload;
  if (maxseg < 1) {
    maxseg = 1;
  }
  if (maxseg > PRD_MAX_GSO_SEGS) {
    maxseg = PRD_MAX_GSO_SEGS;
  }
  ngtcp2_path_storage_zero(&ps);
  memset(&pi, 0, sizeof(pi));

  for (;;) {
    prd_qstream *st = NULL;
    int64_t sid = -1;
    ngtcp2_vec vec[MAX_IOV];
    size_t nvec = 0;
    uint32_t flags = NGTCP2_WRITE_STREAM_FLAG_MORE;
    ngtcp2_ssize ndatalen = -1, nwrite;
    int is_ctrl = 0;

    if (qc->ctrl_sid >= 0 && qc->ctrl_sent_off < qc->ctrl_sendbuf.tail_off) {
      is_ctrl = 1;
      sid = qc->ctrl_sid;
      nvec = prd_chunkbuf_peek(&qc->ctrl_sendbuf, qc->ctrl_sent_off,
                               (struct iovec *)vec, MAX_IOV);
    } else if (prd_auth_is_authenticated(&qc->auth) || !qc->ep->is_server) {
      while ((st = qc->sendq_head) != NULL) {
        if (!stream_has_output(st) || st->blocked ||
            (st->abort_pending &&
             (st->sent_off > 0 || !stream_unseen(qc, st)))) {
          sendq_remove(qc, st);
          continue;
        }
        break;
      }
      if (st) {
        sid = st->id;
        nvec = prd_chunkbuf_peek(&st->sendbuf, st->sent_off,
                                 (struct iovec *)vec, MAX_IOV);
        if (st->abort_pending && nvec > 0) {
          /* Aborted before anything was sent: one byte, for the peer to
           * know the stream (stream_unseen). */
          nvec = 1;
          vec[0].len = 1;
        } else if (st->fin_pending) {
          uint64_t total = 0;
          for (size_t i = 0; i < nvec; ++i) {
            total += vec[i].len;
          }
          if (st->sent_off + total == st->sendbuf.tail_off) {
            flags |= NGTCP2_WRITE_STREAM_FLAG_FIN;
          }
        }
      }
    }

    qc->in_callback = 1;
    nwrite = ngtcp2_conn_writev_stream(qc->conn, &ps.path, &pi, qc->txbuf + off,
                                       payload, &ndatalen, flags, sid, vec,
                                       nvec, ts);
    qc->in_callback = 0;
    if (nwrite < 0) {
      if (nwrite == NGTCP2_ERR_WRITE_MORE) {
        if (is_ctrl) {
          qc->ctrl_sent_off += (uint64_t)ndatalen;
        } else if (st) {
          st->sent_off += (uint64_t)ndatalen;
          st->tx_bytes += (uint64_t)ndatalen;
          if ((flags & NGTCP2_WRITE_STREAM_FLAG_FIN) &&
              st->sent_off == st->sendbuf.tail_off) {
            st->fin_sent = 1;
          }
          sendq_remove(qc, st);
          if (stream_has_output(st)) {
            sendq_push(qc, st); /* round robin */
          }
          stream_notify_writable(qc, st);
        }
        continue;
      }
      if (nwrite == NGTCP2_ERR_STREAM_DATA_BLOCKED && st) {
        st->blocked = 1;
        sendq_remove(qc, st);
        continue;
      }
      if ((nwrite == NGTCP2_ERR_STREAM_SHUT_WR ||
           nwrite == NGTCP2_ERR_STREAM_NOT_FOUND) &&
          st) {
        sendq_remove(qc, st);
        st->reset = 1;
        continue;
      }
      if (nwrite == NGTCP2_ERR_STREAM_SHUT_WR) {
        /* Only a peer's STOP_SENDING shuts stream 0 for writing, and
         * ngtcp2 0.12 tells us here, not in a callback (spec/02-framing.md
         * §1.1). */
        conn_set_error_app(qc, PRD_APP_PROTOCOL_ERROR,
                           "STOP_SENDING on the control stream");
        if (conn_write_close(qc) != 0) {
          conn_finish(qc);
        }
        return;
      }
      if (nwrite == NGTCP2_ERR_STREAM_DATA_BLOCKED) {
        /* The control stream cannot be blocked for long; try later. */
        break;
      }
      conn_handle_error(qc, (int)nwrite);
      return;
    }
    if (ndatalen >= 0) {
      if (is_ctrl) {
        qc->ctrl_sent_off += (uint64_t)ndatalen;
      } else if (st) {
        st->sent_off += (uint64_t)ndatalen;
        st->tx_bytes += (uint64_t)ndatalen;
        if ((flags & NGTCP2_WRITE_STREAM_FLAG_FIN) &&
            st->sent_off == st->sendbuf.tail_off) {
          st->fin_sent = 1;
        }
        sendq_remove(qc, st);
        if (stream_has_output(st)) {
          sendq_push(qc, st);
        }
        stream_notify_writable(qc, st);
      }
    }
    if (nwrite == 0) {
      break;
    }
    /* Batch datagrams of equal size for one GSO send. */
    if (nseg == 0) {
      segsize = (size_t)nwrite;
      memcpy(&qc->tx_remote.u, ps.path.remote.addr, ps.path.remote.addrlen);
      qc->tx_remote.len = ps.path.remote.addrlen;
      memcpy(&qc->tx_local.u, ps.path.local.addr, ps.path.local.addrlen);
      qc->tx_local.len = ps.path.local.addrlen;
    } else if ((size_t)nwrite > segsize ||
               ps.path.remote.addrlen != qc->tx_remote.len ||
               memcmp(ps.path.remote.addr, &qc->tx_remote.u,
                      qc->tx_remote.len) != 0) {
      /* Cannot join the batch: send the batch, then start a new one with
       * this datagram. */
      qc->tx_off = 0;
      qc->tx_len = off;
      qc->tx_segsize = segsize;
      burst += off;
      if (tx_send_pending(qc) != 0) {
        /* Keep this datagram behind the blocked batch. */
        memmove(qc->txbuf + qc->tx_len, qc->txbuf + off, (size_t)nwrite);
        qc->tx_len += (size_t)nwrite;
        conn_paced(qc, ts);
        return;
      }
      memmove(qc->txbuf, qc->txbuf + off, (size_t)nwrite);
      off = 0;
      nseg = 0;
      segsize = (size_t)nwrite;
      memcpy(&qc->tx_remote.u, ps.path.remote.addr, ps.path.remote.addrlen);
      qc->tx_remote.len = ps.path.remote.addrlen;
      memcpy(&qc->tx_local.u, ps.path.local.addr, ps.path.local.addrlen);
      qc->tx_local.len = ps.path.local.addrlen;
    }
    off += (size_t)nwrite;
    ++nseg;
    if ((size_t)nwrite < segsize || nseg >= maxseg ||
        off + payload > PRD_GSO_MAX_BYTES) {
      qc->tx_off = 0;
      qc->tx_len = off;
      qc->tx_segsize = segsize;
      burst += off;
      off = 0;
      nseg = 0;
      if (tx_send_pending(qc) != 0) {
        conn_paced(qc, ts);
        return;
      }
      if (!qc->no_pacing && burst >= quantum) {
        /* Paced: one send quantum per write, as ngtcp2 intends. The pacing
         * time set now is in the expiry, so the timer (or an ACK) brings
         * the next write; without the stop a flush would send a whole
         * congestion window in one burst. */
        break;
      }
    }
  }
  if (off > 0) {
    qc->tx_off = 0;
    qc->tx_len = off;
    qc->tx_segsize = segsize;
    tx_send_pending(qc);
  }
  conn_paced(qc, ts);
  if (qc->probing) {
    PRD_LOG_DEBUG("[%s] liveness probe sent", qc->name);
    qc->probing = 0;
    ngtcp2_conn_set_keep_alive_timeout(
        qc->conn, qc->keepalive_ns ? qc->keepalive_ns : PRD_KEEP_ALIVE_OFF);
  }
  conn_update_timer(qc);
}

void prd_quic_conn_on_timer(prd_quic_conn *qc) {
  prd_tstamp now = prd_now();
  int rv;

  if (qc->closing || qc->draining) {
    if (now >= qc->close_deadline) {
      conn_finish(qc);
      return;
    }
    conn_update_timer(qc);
    return;
  }
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
      conn_set_error_app(qc, PRD_APP_AUTH_TIMEOUT, "authentication timeout");
      if (conn_write_close(qc) != 0) {
        conn_finish(qc);
      }
      return;
    }
    if (!qc->handshake_done &&
        now - qc->created > qc->ep->cfg.auth_timeout_ns + 10 * PRD_NS_PER_S) {
      snprintf(qc->close_msg, sizeof(qc->close_msg), "handshake timed out");
      conn_finish(qc);
      return;
    }
  }
  if (!qc->ep->is_server && qc->nheld > 0) {
    /* An incomplete Stream Header times out (spec/08-security.md §3). */
    prd_qstream *st, *next;
    for (st = qc->streams; st; st = next) {
      next = st->all_next;
      if (st->held && now - st->held_since >= PRD_HELD_TIMEOUT_NS) {
        prd_qstream_abort(st, PRD_APP_PROTOCOL_ERROR);
        stream_unhold(qc, st);
      }
    }
  }
  if (!qc->ep->is_server && qc->handshake_done &&
      !prd_auth_is_authenticated(&qc->auth) && now >= qc->client_deadline) {
    conn_set_error_app(qc, PRD_APP_AUTH_TIMEOUT,
                       "the server did not complete authentication");
    if (conn_write_close(qc) != 0) {
      conn_finish(qc);
    }
    return;
  }
  qc->in_callback = 1;
  rv = ngtcp2_conn_handle_expiry(qc->conn, now);
  qc->in_callback = 0;
  if (rv != 0) {
    conn_handle_error(qc, rv);
    return;
  }
  prd_quic_conn_flush(qc);
}

void prd_quic_conn_close(prd_quic_conn *qc, uint64_t code, const char *reason) {
  if (qc->closing || qc->close_requested) {
    return;
  }
  if (qc->in_callback) {
    /* Never write from inside an ngtcp2 callback (STYLE §9.16): do it in
     * the next flush. */
    qc->close_requested = 1;
    qc->requested_code = code;
    snprintf(qc->requested_reason, sizeof(qc->requested_reason), "%s",
             reason ? reason : "");
    conn_want_flush(qc);
    return;
  }
  conn_set_error_app(qc, code, reason);
  if (!qc->handshake_done) {
    conn_finish(qc);
    return;
  }
  /* Flush pending stream data and control frames first (best effort). */
  prd_quic_conn_flush(qc);
  if (qc->closed_reported) {
    return;
  }
  if (conn_write_close(qc) != 0) {
    conn_finish(qc);
  }
}

void prd_quic_conn_refuse(prd_quic_conn *qc, const char *reason) {
  if (qc->closing || qc->close_requested) {
    return;
  }
  if (qc->in_callback) {
    qc->close_requested = 2;
    snprintf(qc->requested_reason, sizeof(qc->requested_reason), "%s",
             reason ? reason : "");
    conn_want_flush(qc);
    return;
  }
  /* spec/04-quic-profile.md §7: transport CONNECTION_REFUSED (0x02). */
  prd_ccerr_set_transport_error(&qc->last_error, NGTCP2_CONNECTION_REFUSED,
                                (const uint8_t *)reason, strlen(reason));
  qc->close_reason = PRD_QUIC_CLOSE_LOCAL;
  qc->close_code = PRD_APP_NO_ERROR;
  snprintf(qc->close_msg, sizeof(qc->close_msg), "refused: %s", reason);
  if (conn_write_close(qc) != 0) {
    conn_finish(qc);
  }
}

void prd_quic_conn_goaway(prd_quic_conn *qc, uint64_t code) {
  if (prd_auth_queue_goaway(&qc->auth, code) == 0) {
    ctrl_queue_auth_output(qc);
  }
}

/* ---- accessors -------------------------------------------------------- */

void *prd_quic_conn_user(const prd_quic_conn *qc) { return qc->ud; }
void prd_quic_conn_set_user(prd_quic_conn *qc, void *ud) { qc->ud = ud; }
const prd_sockaddr *prd_quic_conn_remote(const prd_quic_conn *qc) {
  return &qc->remote;
}
const char *prd_quic_conn_name(const prd_quic_conn *qc) { return qc->name; }
int prd_quic_conn_is_authenticated(const prd_quic_conn *qc) {
  return prd_auth_is_authenticated(&qc->auth) && !qc->closing;
}
size_t prd_quic_conn_num_streams(const prd_quic_conn *qc) {
  return qc->nstreams;
}
int prd_quic_conn_peer_goaway(const prd_quic_conn *qc) {
  return qc->auth.peer_goaway != 0;
}

int prd_quic_conn_suspect(const prd_quic_conn *qc) {
  prd_conn_stat cs;
  prd_tstamp now = prd_now(), grace;
  if (qc->conn == NULL || qc->closing) {
    return 1;
  }
  prd_conn_get_stat(qc->conn, &cs);
  if (prd_conn_pto_fired(qc->conn, &cs, qc->tx_since_rx, qc->last_rx, now)) {
    return 1;
  }
  /* A probe went out and nothing came back within a few RTTs. */
  grace = 3 * ngtcp2_conn_get_pto(qc->conn);
  if (grace < 50 * PRD_NS_PER_MS) {
    grace = 50 * PRD_NS_PER_MS;
  }
  return qc->probe_ts && qc->last_rx < qc->probe_ts &&
         now - qc->probe_ts > grace;
}

void prd_quic_conn_probe(prd_quic_conn *qc) {
  if (qc->conn == NULL || qc->closing || qc->probing) {
    return;
  }
  /* A keep-alive due now makes ngtcp2 send a PING at the next expiry; the
   * normal interval is restored after that write (prd_quic_conn_flush). */
  ngtcp2_conn_set_keep_alive_timeout(qc->conn, 1);
  qc->probing = 1;
  qc->probe_ts = prd_now();
  conn_update_timer(qc);
}

void prd_quic_conn_get_info(prd_quic_conn *qc, prd_quic_conn_info *info) {
  prd_conn_stat cs;
  memset(info, 0, sizeof(*info));
  info->lost_packets = qc->lost_closed;
  if (qc->conn == NULL) {
    return;
  }
  prd_conn_get_stat(qc->conn, &cs);
  info->rtt_ns = cs.smoothed_rtt;
  info->cwnd = cs.cwnd;
  info->bytes_in_flight = cs.bytes_in_flight;
  /* What the path carries now: 1200 until path MTU discovery raises it
   * (cs.max_tx_udp_payload_size is only the configured ceiling). */
  info->max_udp_payload =
      ngtcp2_conn_get_path_max_tx_udp_payload_size(qc->conn);
  info->lost_packets += conn_open_streams_lost(qc);
}

void prd_conn_refused(prd_quic_conn *qc) {
  char peer[80];
  if (qc->handshake_done || qc->closing) {
    return; /* established: the idle timeout or a stateless reset decides */
  }
  qc->close_reason = PRD_QUIC_CLOSE_HANDSHAKE;
  snprintf(qc->close_msg, sizeof(qc->close_msg),
           "connection refused by %s (is the server running?)",
           prd_sockaddr_str(&qc->remote, peer, sizeof(peer)));
  conn_finish(qc);
}

int prd_quic_conn_peer_close(const prd_quic_conn *qc, uint64_t *pcode) {
  *pcode = qc->peer_close_code;
  return qc->close_reason != PRD_QUIC_CLOSE_PEER ? -1
         : qc->peer_close_app                    ? 1
                                                 : 0;
}

int prd_quic_conn_cert_rejected(const prd_quic_conn *qc) {
  return qc->verify_msg[0] != 0;
}

int prd_quic_conn_tofu_cert(const prd_quic_conn *qc, const uint8_t **pder,
                            size_t *plen) {
  if (qc->peer_cert == NULL) {
    return -1;
  }
  *pder = qc->peer_cert;
  *plen = qc->peer_certlen;
  return 0;
}

prd_tstamp prd_quic_conn_last_rx(const prd_quic_conn *qc) {
  return qc->last_rx;
}

uint64_t prd_quic_conn_pto_ns(prd_quic_conn *qc) {
  return qc->conn ? ngtcp2_conn_get_pto(qc->conn) : PRD_NS_PER_S;
}
