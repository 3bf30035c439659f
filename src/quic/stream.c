/* SPDX-License-Identifier: GPL-3.0-only */
/* Data streams: the send queue, send buffers owned until ACK, receive
 * windows, and the client's streams held until their header and
 * authentication (spec/02-framing.md §1, §4). */
#include <stdlib.h>
#include <string.h>

#include "../common/log.h"
#include "quic_int.h"

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
    prd_conn_want_flush(st->qc);
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
  if (n == 0 || qc->conn == NULL || (qc->flags & PRD_QC_F_TEARING_DOWN)) {
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
  prd_conn_want_flush(qc);
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
  prd_conn_want_flush(st->qc);
}

void prd_qstream_detach(prd_qstream *st) {
  st->user = NULL;
  if (st->closed) {
    /* During connection teardown prd_stream_close_all frees it. */
    if (!(st->qc->flags & PRD_QC_F_TEARING_DOWN)) {
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
    prd_conn_want_flush(st->qc);
  }
}

int prd_qstream_open(prd_qstream **pst, prd_quic_conn *qc,
                     const prd_stream_header *hd, void *user) {
  uint8_t hdr[PRD_STREAM_HEADER_MAX];
  prd_stream_header h;
  prd_ssize n;
  int64_t sid;
  prd_qstream *st;
  int rv;

  if (prd_conn_closing(qc) || !prd_auth_is_authenticated(&qc->auth) ||
      hd == NULL) {
    return PRD_ERR_INVAL;
  }
  h = *hd;
  /* spec/02-framing.md §4.4: PORT_OFFSET only when not 0, SERVICE "default"
   * optional; without SERVICES negotiated neither field, and nothing but
   * "default" at offset 0 (such a client would reach the wrong
   * destination). */
  if (h.has_port_offset && h.port_offset == 0) {
    h.has_port_offset = 0;
  }
  if (!prd_auth_services_negotiated(&qc->auth)) {
    if (h.has_port_offset ||
        (h.has_service &&
         (h.servicelen != sizeof(PRD_SERVICE_DEFAULT) - 1 ||
          memcmp(h.service, PRD_SERVICE_DEFAULT, h.servicelen) != 0))) {
      return PRD_ERR_INVAL;
    }
    h.has_service = 0;
  }
  n = prd_stream_header_encode(hdr, sizeof(hdr), &h);
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

/* Packets with STREAM frames of the streams ngtcp2 still holds that were
 * declared lost (the closed ones are in qc->lost_closed). */
uint64_t prd_stream_open_lost(prd_quic_conn *qc) {
  uint64_t n = 0;
  if (qc->conn == NULL || (qc->flags & PRD_QC_F_TEARING_DOWN)) {
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
void prd_stream_close_all(prd_quic_conn *qc) {
  prd_quic_endpoint *ep = qc->ep;
  prd_qstream *st, *next;
  qc->lost_closed += prd_stream_open_lost(qc); /* final count */
  qc->flags |= PRD_QC_F_TEARING_DOWN;
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

/* Process deferred stream aborts (spec/02-framing.md §6). */
/* stream_unseen: the server's stream |st| may be unknown to the peer: none
 * of its bytes acknowledged, none received. ngtcp2 forgets a stream whose
 * first frame is RESET_STREAM or STOP_SENDING and answers neither, so an
 * abort now would leave our end waiting for the peer's half until the
 * connection closes: the abort waits until a first byte (of the header,
 * sent alone if need be) is acknowledged (spec/02-framing.md §6.3). */
static int stream_unseen(const prd_quic_conn *qc, const prd_qstream *st) {
  return qc->ep->is_server && !st->closed && st->sendbuf.head_off == 0 &&
         st->rx_bytes == 0 && !st->rx_fin;
}

void prd_stream_do_aborts(prd_quic_conn *qc) {
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

/* prd_stream_expire_held: client: an incomplete Stream Header times out
 * (spec/08-security.md §3). */
void prd_stream_expire_held(prd_quic_conn *qc, prd_tstamp now) {
  prd_qstream *st, *next;
  if (qc->ep->is_server || qc->nheld == 0) {
    return;
  }
  for (st = qc->streams; st; st = next) {
    next = st->all_next;
    if (st->held && now - st->held_since >= PRD_HELD_TIMEOUT_NS) {
      prd_qstream_abort(st, PRD_APP_PROTOCOL_ERROR);
      stream_unhold(qc, st);
    }
  }
}

/* ---- the send side: what egress.c takes from the streams -------------- */

prd_qstream *prd_stream_next_ready(prd_quic_conn *qc) {
  prd_qstream *st;
  while ((st = qc->sendq_head) != NULL) {
    if (!stream_has_output(st) || st->blocked ||
        (st->abort_pending && (st->sent_off > 0 || !stream_unseen(qc, st)))) {
      sendq_remove(qc, st);
      continue;
    }
    break;
  }
  return st;
}

size_t prd_stream_peek_unsent(prd_qstream *st, ngtcp2_vec *vec, size_t max,
                              int *pfin) {
  size_t nvec =
      prd_chunkbuf_peek(&st->sendbuf, st->sent_off, (struct iovec *)vec, max);
  *pfin = 0;
  if (st->abort_pending && nvec > 0) {
    /* Aborted before anything was sent: one byte, for the peer to know the
     * stream (stream_unseen). */
    nvec = 1;
    vec[0].len = 1;
  } else if (st->fin_pending) {
    uint64_t total = 0;
    for (size_t i = 0; i < nvec; ++i) {
      total += vec[i].len;
    }
    *pfin = st->sent_off + total == st->sendbuf.tail_off;
  }
  return nvec;
}

void prd_stream_mark_sent(prd_quic_conn *qc, prd_qstream *st, size_t n,
                          int fin) {
  st->sent_off += n;
  st->tx_bytes += n;
  if (fin && st->sent_off == st->sendbuf.tail_off) {
    st->fin_sent = 1;
  }
  sendq_remove(qc, st);
  if (stream_has_output(st)) {
    sendq_push(qc, st); /* round robin */
  }
  stream_notify_writable(qc, st);
}

void prd_stream_unsendable(prd_quic_conn *qc, prd_qstream *st, int blocked) {
  sendq_remove(qc, st);
  if (blocked) {
    st->blocked = 1; /* until cb_extend_max_stream_data */
  } else {
    st->reset = 1;
  }
}

/* prd_stream_start_all: the client authenticated; start the streams whose
 * header arrived before (spec/08-security.md §3). */
void prd_stream_start_all(prd_quic_conn *qc) {
  prd_qstream *st, *next;
  for (st = qc->streams; st; st = next) {
    next = st->all_next;
    stream_try_start(qc, st);
  }
}

/* ---- accessors ---------------------------------------------------------- */

int64_t prd_qstream_id(const prd_qstream *st) { return st->id; }
void *prd_qstream_user(const prd_qstream *st) { return st->user; }
void prd_qstream_set_user(prd_qstream *st, void *user) { st->user = user; }
prd_quic_conn *prd_qstream_conn(const prd_qstream *st) { return st->qc; }

int prd_qstream_reserve(prd_qstream *st, uint8_t **pbuf, size_t *pavail,
                        size_t want) {
  return prd_chunkbuf_reserve(&st->sendbuf, pbuf, pavail, want);
}

void prd_qstream_commit(prd_qstream *st, size_t n) {
  if (n > 0) {
    prd_chunkbuf_commit(&st->sendbuf, n);
  } else {
    prd_chunkbuf_trim(&st->sendbuf);
  }
}

int prd_qstream_write(prd_qstream *st, const void *data, size_t len) {
  return prd_chunkbuf_append(&st->sendbuf, data, len);
}

uint64_t prd_qstream_written(const prd_qstream *st) {
  return st->sendbuf.tail_off;
}
uint64_t prd_qstream_sent(const prd_qstream *st) { return st->sent_off; }
uint64_t prd_qstream_acked(const prd_qstream *st) {
  return st->sendbuf.head_off;
}

int prd_qstream_move_unacked(prd_qstream *dst, prd_qstream *src,
                             uint64_t skip) {
  struct iovec iov[16];
  uint64_t off = src->sendbuf.head_off > skip ? src->sendbuf.head_off : skip;
  int rv = 0;

  while (off < src->sendbuf.tail_off && rv == 0) {
    size_t n = prd_chunkbuf_peek(&src->sendbuf, off, iov, 16);
    if (n == 0) {
      break;
    }
    for (size_t i = 0; i < n && rv == 0; ++i) {
      rv = prd_chunkbuf_append(&dst->sendbuf, iov[i].iov_base, iov[i].iov_len);
      off += iov[i].iov_len;
    }
  }
  if (src->fin_pending) {
    prd_qstream_shutdown_write(dst);
  }
  prd_qstream_mark_ready(dst);
  return rv;
}

/* ---- ngtcp2 stream callbacks (the tables are in conn.c) ---------------- */

/* ctrl_ended: stream 0 ended (FIN, RESET_STREAM or the stream closed) while
 * the connection is up: PROTOCOL_ERROR (spec/02-framing.md §1.1). */
static int ctrl_ended(prd_quic_conn *qc, const char *why) {
  if (prd_conn_closing(qc)) {
    return 0;
  }
  prd_conn_set_error_app(qc, PRD_APP_PROTOCOL_ERROR, why);
  return NGTCP2_ERR_CALLBACK_FAILURE;
}

int prd_cb_stream_open(ngtcp2_conn *conn, int64_t stream_id, void *user_data) {
  prd_quic_conn *qc = user_data;
  prd_qstream *st;
  (void)conn;

  if (qc->ep->is_server) {
    /* Only the client's first bidi stream is allowed (flow control enforces
     * it); it is the control stream. */
    if (stream_id != 0 || qc->ctrl_sid != -1) {
      prd_conn_set_error_app(qc, PRD_APP_PROTOCOL_ERROR, "unexpected stream");
      return NGTCP2_ERR_CALLBACK_FAILURE;
    }
    qc->ctrl_sid = stream_id;
    return 0;
  }
  /* Client: a server-initiated bidi stream is a data stream. */
  if ((stream_id & 0x3) != 0x1) {
    prd_conn_set_error_app(qc, PRD_APP_PROTOCOL_ERROR,
                           "unexpected stream type");
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

int prd_cb_recv_stream_data(ngtcp2_conn *conn, uint32_t flags,
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
    return prd_ctrl_recv(qc, data, datalen, fin);
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

int prd_cb_acked_stream_data_offset(ngtcp2_conn *conn, int64_t stream_id,
                                    uint64_t offset, uint64_t datalen,
                                    void *user_data, void *stream_user_data) {
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

int prd_cb_stream_close(ngtcp2_conn *conn, uint32_t flags, int64_t stream_id,
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
    return ctrl_ended(qc, "control stream closed");
  }
  if (!qc->ep->is_server && (stream_id & 0x3) == 0x1) {
    /* Replenish the server's stream credit (spec/04-quic-profile.md §2). */
    ngtcp2_conn_extend_max_streams_bidi(conn, 1);
  }
  if (st == NULL) {
    return 0;
  }
  if ((flags & NGTCP2_STREAM_CLOSE_FLAG_APP_ERROR_CODE_SET) &&
      app_error_code == PRD_APP_NO_ERROR && !st->reset &&
      !prd_conn_closing(qc) && !(qc->flags & PRD_QC_F_TEARING_DOWN)) {
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

int prd_cb_stream_reset(ngtcp2_conn *conn, int64_t stream_id,
                        uint64_t final_size, uint64_t app_error_code,
                        void *user_data, void *stream_user_data) {
  prd_quic_conn *qc = user_data;
  prd_qstream *st = stream_user_data;
  (void)conn;
  (void)final_size;

  if (stream_id == qc->ctrl_sid) {
    return ctrl_ended(qc, "control stream reset");
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

int prd_cb_extend_max_stream_data(ngtcp2_conn *conn, int64_t stream_id,
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
