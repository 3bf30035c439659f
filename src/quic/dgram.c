/* SPDX-License-Identifier: GPL-3.0-only */
/* QUIC DATAGRAM frames (RFC 9221) for UDP services (spec/10-udp.md): the
 * bounded send queue the write loop drains next to the streams, the receive
 * callback, the size a datagram may have now, and the counters. Datagrams
 * are never retransmitted: a lost one stays lost. */
#include <stdlib.h>
#include <string.h>

#include "../common/log.h"
#include "quic_int.h"

struct prd_dgram {
  prd_dgram *next;
  size_t len;
  unsigned tries; /* packets written without it (it did not fit) */
  uint8_t data[];
};

static size_t varint_len(uint64_t n) {
  return n < 64 ? 1 : n < 16384 ? 2 : n < 1073741824 ? 4 : 8;
}

int prd_quic_conn_datagrams_ok(const prd_quic_conn *qc) {
  const ngtcp2_transport_params *rp;
  if (qc->conn == NULL || prd_conn_closing(qc) ||
      !(qc->flags & PRD_QC_F_AUTHENTICATED) ||
      !(qc->auth.negotiated & PRD_FLAG_DATAGRAMS)) {
    return 0;
  }
  rp = ngtcp2_conn_get_remote_transport_params(qc->conn);
  return rp != NULL && rp->max_datagram_frame_size > 0;
}

size_t prd_dgram_path_payload(prd_quic_conn *qc) {
  size_t payload = ngtcp2_conn_get_path_max_tx_udp_payload_size(qc->conn);
  /* Confirmed: a client's on HANDSHAKE_DONE, a server's when its handshake
   * completes (RFC 9001 §4.1.2). Before that, 1,200 bytes at most, as for
   * every datagram (spec/04-quic-profile.md §5). */
  int confirmed =
      (qc->flags & PRD_QC_F_HS_CONFIRMED) ||
      (qc->ep->is_server && ngtcp2_conn_get_handshake_completed(qc->conn));
  if (payload > PRD_TXBUF_SIZE) {
    payload = PRD_TXBUF_SIZE;
  }
  if (payload > PRD_MIN_UDP_PAYLOAD && !confirmed &&
      !qc->ep->cfg.max_udp_payload) {
    payload = PRD_MIN_UDP_PAYLOAD;
  }
  return payload;
}

size_t prd_quic_conn_max_datagram(prd_quic_conn *qc) {
  const ngtcp2_transport_params *rp;
  size_t payload, overhead, avail, n;

  if (!prd_quic_conn_datagrams_ok(qc)) {
    return 0;
  }
  payload = prd_dgram_path_payload(qc);
  /* spec/10-udp.md §5: a 1-RTT packet's short header (1 byte, the
   * Destination Connection ID, a packet number of up to 4 bytes) and the
   * AEAD tag (16 bytes), then the DATAGRAM frame's type and length. */
  overhead = 1 + ngtcp2_conn_get_dcid(qc->conn)->datalen + 4 + 16;
  if (payload <= overhead + 3) {
    return 0;
  }
  avail = payload - overhead;
  n = avail - 1 - varint_len(avail);
  rp = ngtcp2_conn_get_remote_transport_params(qc->conn);
  if (rp->max_datagram_frame_size < (uint64_t)n + 1 + varint_len(n)) {
    uint64_t m = rp->max_datagram_frame_size;
    n = m > 1 + varint_len(m) ? (size_t)(m - 1 - varint_len(m)) : 0;
  }
  return n;
}

int prd_quic_conn_send_datagram(prd_quic_conn *qc, const uint8_t *data,
                                size_t len) {
  prd_dgram *d;

  if (!prd_quic_conn_datagrams_ok(qc)) {
    return PRD_ERR_INVAL;
  }
  if (len == 0 || len > prd_quic_conn_max_datagram(qc)) {
    ++qc->dg.drop_size;
    return PRD_ERR_FRAME_TOO_LARGE;
  }
  if (qc->dg_nqueued >= PRD_DGRAM_QUEUE_MAX ||
      qc->dg_queued_bytes + len > PRD_DGRAM_QUEUE_BYTES) {
    /* Congestion: the write loop cannot keep up (spec/10-udp.md §6). */
    ++qc->dg.drop_queue;
    return PRD_ERR_NOBUF;
  }
  d = malloc(sizeof(*d) + len);
  if (d == NULL) {
    ++qc->dg.drop_queue;
    return PRD_ERR_NOMEM;
  }
  d->next = NULL;
  d->len = len;
  d->tries = 0;
  memcpy(d->data, data, len);
  if (qc->dg_tail) {
    qc->dg_tail->next = d;
  } else {
    qc->dg_head = d;
  }
  qc->dg_tail = d;
  ++qc->dg_nqueued;
  qc->dg_queued_bytes += len;
  prd_conn_want_flush(qc);
  return 0;
}

void prd_quic_conn_dgram_stats(const prd_quic_conn *qc,
                               prd_quic_dgram_stats *s) {
  *s = qc->dg;
  s->queued = qc->dg_nqueued;
}

int prd_dgram_peek(prd_quic_conn *qc, ngtcp2_vec *vec) {
  if (qc->dg_head == NULL) {
    return 0;
  }
  vec->base = qc->dg_head->data;
  vec->len = qc->dg_head->len;
  return 1;
}

/* dgram_pop frees the queue's head. */
static void dgram_pop(prd_quic_conn *qc) {
  prd_dgram *d = qc->dg_head;
  qc->dg_head = d->next;
  if (qc->dg_head == NULL) {
    qc->dg_tail = NULL;
  }
  --qc->dg_nqueued;
  qc->dg_queued_bytes -= d->len;
  free(d);
}

void prd_dgram_sent(prd_quic_conn *qc) {
  ++qc->dg.sent;
  qc->dg.sent_bytes += qc->dg_head->len;
  dgram_pop(qc);
}

int prd_dgram_not_taken(prd_quic_conn *qc, int wrote_packet) {
  /* A datagram that an empty packet cannot take is too large for the path
   * now (spec/10-udp.md §5): dropped, never fragmented. One that missed a
   * packet that other frames filled gets the next ones, three at most. */
  if (wrote_packet ? ++qc->dg_head->tries < 3
                   : qc->dg_head->len <= prd_quic_conn_max_datagram(qc)) {
    return 0;
  }
  ++qc->dg.drop_size;
  dgram_pop(qc);
  return 1;
}

void prd_dgram_drop_head(prd_quic_conn *qc) {
  ++qc->dg.drop_size;
  dgram_pop(qc);
}

void prd_dgram_free_all(prd_quic_conn *qc) {
  while (qc->dg_head) {
    dgram_pop(qc);
  }
}

int prd_cb_recv_datagram(ngtcp2_conn *conn, uint32_t flags, const uint8_t *data,
                         size_t datalen, void *user_data) {
  prd_quic_conn *qc = user_data;
  const prd_quic_callbacks *cb = qc->ep->cfg.cb;
  (void)conn;
  (void)flags;
  /* Only on an authenticated connection that negotiated them: a server's
   * datagram can overtake AUTH_RESULT, and is then lost like any other
   * (spec/10-udp.md §2). */
  if (!prd_quic_conn_datagrams_ok(qc) || cb->datagram == NULL) {
    ++qc->dg.drop_early;
    return 0;
  }
  ++qc->dg.recv;
  qc->dg.recv_bytes += datalen;
  cb->datagram(qc, data, datalen, qc->ud);
  return 0;
}

int prd_cb_lost_datagram(ngtcp2_conn *conn, uint64_t dgram_id,
                         void *user_data) {
  prd_quic_conn *qc = user_data;
  (void)conn;
  (void)dgram_id;
  ++qc->dg.lost; /* counted only: it stays lost (spec/10-udp.md §6) */
  return 0;
}

int prd_cb_ack_datagram(ngtcp2_conn *conn, uint64_t dgram_id, void *user_data) {
  prd_quic_conn *qc = user_data;
  (void)conn;
  (void)dgram_id;
  ++qc->dg.acked;
  return 0;
}
