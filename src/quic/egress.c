/* SPDX-License-Identifier: GPL-3.0-only */
/* The write loop: the next stream, ngtcp2_conn_writev_stream, GSO batches
 * of equal-sized datagrams, and sends blocked on EAGAIN retried later; the
 * liveness probe that rides on it. */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "../common/log.h"
#include "quic_int.h"

#define MAX_IOV 16

/* ---- write loop ------------------------------------------------------- */

/* Pacing (ngtcp2 spaces bursts by the send quantum) matters where queues
 * overflow; on loopback it only adds timer wake-ups. */
static void conn_paced(prd_quic_conn *qc, prd_tstamp ts) {
  if (!(qc->flags & PRD_QC_F_NO_PACING)) {
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

/* One flush: the datagram size, the GSO batch being built in qc->txbuf and
 * how much this flush sent. */
typedef struct egress {
  ngtcp2_path_storage ps;
  ngtcp2_pkt_info pi;
  prd_tstamp ts;
  size_t payload; /* largest datagram now */
  size_t quantum; /* ngtcp2's send quantum */
  size_t maxseg;  /* datagrams per GSO batch */
  size_t segsize; /* the batch's datagram size (the last may be shorter) */
  size_t nseg;    /* datagrams in the batch */
  size_t off;     /* bytes in the batch, at the start of qc->txbuf */
  size_t burst;   /* bytes sent by this flush */
  /* The size of the packet being built after NGTCP2_ERR_WRITE_MORE (ngtcp2
   * wants the same one until the packet is done); 0 between packets. */
  size_t pkt_destlen;
} egress;

/* What one ngtcp2_conn_writev_stream call takes stream data from: the
 * control stream, a data stream, or nothing (ACKs, control frames). */
typedef struct egress_src {
  prd_qstream *st;
  int is_ctrl;
  int64_t sid;
  uint32_t flags;
  size_t nvec;
  ngtcp2_vec vec[MAX_IOV];
} egress_src;

/* How the write loop goes on after one packet: next packet; stop and finish
 * the flush; the socket is blocked; |qc| is closing; |qc| was freed. */
enum { EGRESS_NEXT, EGRESS_STOP, EGRESS_BLOCKED, EGRESS_CLOSED, EGRESS_FREED };

static void egress_init(prd_quic_conn *qc, egress *e) {
  memset(e, 0, sizeof(*e));
  e->ts = prd_now();
  e->payload = ngtcp2_conn_get_max_tx_udp_payload_size(qc->conn);
  if (e->payload > PRD_TXBUF_SIZE) {
    e->payload = PRD_TXBUF_SIZE;
  }
  if (e->payload > PRD_MIN_UDP_PAYLOAD &&
      !(qc->flags & PRD_QC_F_HS_CONFIRMED) && !qc->ep->cfg.max_udp_payload) {
    /* Until the handshake is confirmed the peer's max_udp_payload_size may
     * be unknown, and a client's datagram with an Initial packet would be
     * padded to the full size: none above 1,200 bytes (RFC 9000 §14.1,
     * spec/04-quic-profile.md §5), whatever the path could carry. */
    e->payload = PRD_MIN_UDP_PAYLOAD;
  }
  /* The send quantum sizes a paced burst; unpaced (loopback), a GSO batch
   * is as large as one sendmsg takes, whatever the congestion controller's
   * quantum (BBR's is 10 datagrams at small rates). */
  e->quantum = ngtcp2_conn_get_send_quantum(qc->conn);
  e->maxseg = (qc->flags & PRD_QC_F_NO_PACING) ? PRD_MAX_GSO_SEGS
                                               : e->quantum / e->payload;
  if (e->maxseg < 1) {
    e->maxseg = 1;
  }
  if (e->maxseg > PRD_MAX_GSO_SEGS) {
    e->maxseg = PRD_MAX_GSO_SEGS;
  }
  ngtcp2_path_storage_zero(&e->ps);
}

/* egress_next picks what the next packet carries: control stream bytes
 * first, then the data streams in round robin (the server's only once the
 * client is authenticated). */
static void egress_next(prd_quic_conn *qc, egress_src *src) {
  prd_qstream *st;
  int fin = 0;

  memset(src, 0, offsetof(egress_src, vec));
  src->sid = -1;
  src->flags = NGTCP2_WRITE_STREAM_FLAG_MORE;
  src->nvec = prd_ctrl_peek_unsent(qc, src->vec, MAX_IOV);
  if (src->nvec > 0) {
    src->is_ctrl = 1;
    src->sid = qc->ctrl_sid;
    return;
  }
  if (!prd_auth_is_authenticated(&qc->auth) && qc->ep->is_server) {
    return;
  }
  st = prd_stream_next_ready(qc);
  if (st == NULL) {
    return;
  }
  src->st = st;
  src->sid = st->id;
  src->nvec = prd_stream_peek_unsent(st, src->vec, MAX_IOV, &fin);
  if (fin) {
    src->flags |= NGTCP2_WRITE_STREAM_FLAG_FIN;
  }
}

/* egress_advance: ngtcp2 took |n| bytes of |src| into a packet. */
static void egress_advance(prd_quic_conn *qc, const egress_src *src, size_t n) {
  if (src->is_ctrl) {
    prd_ctrl_mark_sent(qc, n);
  } else if (src->st) {
    prd_stream_mark_sent(qc, src->st, n,
                         (src->flags & NGTCP2_WRITE_STREAM_FLAG_FIN) != 0);
  }
}

/* egress_error handles a negative ngtcp2_conn_writev_stream result: go on
 * with the next packet (EGRESS_NEXT), stop writing (EGRESS_STOP), or |qc|
 * is closing (EGRESS_CLOSED) or was freed (EGRESS_FREED). */
static int egress_error(prd_quic_conn *qc, const egress_src *src,
                        ngtcp2_ssize nwrite, ngtcp2_ssize ndatalen) {
  prd_qstream *st = src->st;
  if (nwrite == NGTCP2_ERR_WRITE_MORE) {
    egress_advance(qc, src, (size_t)ndatalen);
    return EGRESS_NEXT;
  }
  if (nwrite == NGTCP2_ERR_STREAM_DATA_BLOCKED && st) {
    prd_stream_unsendable(qc, st, 1);
    return EGRESS_NEXT;
  }
  if ((nwrite == NGTCP2_ERR_STREAM_SHUT_WR ||
       nwrite == NGTCP2_ERR_STREAM_NOT_FOUND) &&
      st) {
    prd_stream_unsendable(qc, st, 0);
    return EGRESS_NEXT;
  }
  if (nwrite == NGTCP2_ERR_STREAM_SHUT_WR) {
    /* Only a peer's STOP_SENDING shuts stream 0 for writing, and ngtcp2
     * 0.12 tells us here, not in a callback (spec/02-framing.md §1.1). */
    prd_conn_set_error_app(qc, PRD_APP_PROTOCOL_ERROR,
                           "STOP_SENDING on the control stream");
    if (prd_conn_write_close(qc) != 0) {
      prd_conn_finish(qc);
      return EGRESS_FREED;
    }
    return EGRESS_CLOSED;
  }
  if (nwrite == NGTCP2_ERR_STREAM_DATA_BLOCKED) {
    /* The control stream cannot be blocked for long; try later. */
    return EGRESS_STOP;
  }
  return prd_conn_handle_error(qc, (int)nwrite) < 0 ? EGRESS_FREED
                                                    : EGRESS_CLOSED;
}

/* egress_batch_start makes the datagram of |n| bytes at the start of
 * qc->txbuf the first of a new batch. */
static void egress_batch_start(prd_quic_conn *qc, egress *e, size_t n) {
  const ngtcp2_path *p = &e->ps.path;
  e->segsize = n;
  memcpy(&qc->tx_remote.u, p->remote.addr, p->remote.addrlen);
  qc->tx_remote.len = p->remote.addrlen;
  memcpy(&qc->tx_local.u, p->local.addr, p->local.addrlen);
  qc->tx_local.len = p->local.addrlen;
}

/* egress_batch_send sends the batch. Returns 0, or -1 when the socket is
 * blocked (the rest waits in qc->txbuf for prd_quic_endpoint_on_writable). */
static int egress_batch_send(prd_quic_conn *qc, egress *e) {
  qc->tx_off = 0;
  qc->tx_len = e->off;
  qc->tx_segsize = e->segsize;
  e->burst += e->off;
  e->off = 0;
  e->nseg = 0;
  return tx_send_pending(qc);
}

/* egress_batch_add adds the datagram of |n| bytes just written at
 * qc->txbuf + e->off to the batch, sending the batch when the datagram
 * cannot join it or ends it. Returns EGRESS_NEXT, EGRESS_STOP (a paced
 * burst is complete) or EGRESS_BLOCKED. */
static int egress_batch_add(prd_quic_conn *qc, egress *e, size_t n) {
  const ngtcp2_path *p = &e->ps.path;
  if (e->nseg == 0) {
    egress_batch_start(qc, e, n);
  } else if (n > e->segsize || p->remote.addrlen != qc->tx_remote.len ||
             memcmp(p->remote.addr, &qc->tx_remote.u, qc->tx_remote.len) != 0) {
    /* Cannot join the batch: send the batch, then start a new one with
     * this datagram. */
    size_t at = e->off;
    if (egress_batch_send(qc, e) != 0) {
      /* Keep this datagram behind the blocked batch. */
      memmove(qc->txbuf + qc->tx_len, qc->txbuf + at, n);
      qc->tx_len += n;
      return EGRESS_BLOCKED;
    }
    memmove(qc->txbuf, qc->txbuf + at, n);
    egress_batch_start(qc, e, n);
  }
  e->off += n;
  ++e->nseg;
  if (n < e->segsize || e->nseg >= e->maxseg ||
      e->off + e->payload > PRD_GSO_MAX_BYTES) {
    if (egress_batch_send(qc, e) != 0) {
      return EGRESS_BLOCKED;
    }
    if (!(qc->flags & PRD_QC_F_NO_PACING) && e->burst >= e->quantum) {
      /* Paced: one send quantum per write, as ngtcp2 intends. The pacing
       * time set now is in the expiry, so the timer (or an ACK) brings the
       * next write; without the stop a flush would send a whole congestion
       * window in one burst. */
      return EGRESS_STOP;
    }
  }
  return EGRESS_NEXT;
}

/* egress_probe_done: a liveness probe (prd_quic_conn_probe) went out with
 * this write; the keep-alive interval goes back to normal. */
static void egress_probe_done(prd_quic_conn *qc) {
  if (qc->flags & PRD_QC_F_PROBING) {
    PRD_LOG_DEBUG("[%s] liveness probe sent", qc->name);
    qc->flags &= ~PRD_QC_F_PROBING;
    ngtcp2_conn_set_keep_alive_timeout(
        qc->conn, qc->keepalive_ns ? qc->keepalive_ns : PRD_KEEP_ALIVE_OFF);
  }
}

/* ---- liveness: probes and suspicion -------------------------------- */

int prd_quic_conn_suspect(const prd_quic_conn *qc) {
  prd_conn_stat cs;
  prd_tstamp now = prd_now(), grace;
  if (qc->conn == NULL || prd_conn_closing(qc)) {
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
  if (qc->conn == NULL || prd_conn_closing(qc) ||
      (qc->flags & PRD_QC_F_PROBING)) {
    return;
  }
  /* A keep-alive due now makes ngtcp2 send a PING at the next expiry; the
   * normal interval is restored after that write (prd_quic_conn_flush). */
  ngtcp2_conn_set_keep_alive_timeout(qc->conn, 1);
  qc->flags |= PRD_QC_F_PROBING;
  qc->probe_ts = prd_now();
  prd_conn_update_timer(qc);
}

/* egress_write_dgram writes the next queued datagram (spec/10-udp.md) into
 * the batch, with whatever else ngtcp2 has to send: EGRESS_NEXT while there
 * is more to write. */
static int egress_write_dgram(prd_quic_conn *qc, egress *e) {
  ngtcp2_vec vec;
  ngtcp2_ssize nwrite;
  int accepted = 0;
  size_t destlen = e->pkt_destlen;

  prd_dgram_peek(qc, &vec);
  if (destlen == 0) {
    /* A new packet. A datagram's may be larger than the stream packets'
     * (a server's until confirmed): then it starts a batch of its own. */
    destlen = prd_dgram_path_payload(qc);
    if (destlen < e->payload) {
      destlen = e->payload;
    }
    if (destlen > e->payload && e->off > 0 && egress_batch_send(qc, e) != 0) {
      return EGRESS_BLOCKED;
    }
    if (e->off + destlen > PRD_TXBUF_SIZE) {
      destlen = PRD_TXBUF_SIZE - e->off;
    }
  }
  qc->flags |= PRD_QC_F_IN_CALLBACK;
  nwrite = ngtcp2_conn_writev_datagram(
      qc->conn, &e->ps.path, &e->pi, qc->txbuf + e->off, destlen, &accepted,
      NGTCP2_WRITE_DATAGRAM_FLAG_MORE, 0, &vec, 1, e->ts);
  qc->flags &= ~PRD_QC_F_IN_CALLBACK;
  if (nwrite == NGTCP2_ERR_WRITE_MORE) {
    e->pkt_destlen = destlen;
    prd_dgram_sent(qc);
    return EGRESS_NEXT;
  }
  if (nwrite == NGTCP2_ERR_INVALID_ARGUMENT ||
      nwrite == NGTCP2_ERR_INVALID_STATE) {
    /* Larger than the peer takes, or the peer takes none: dropped. */
    prd_dgram_drop_head(qc);
    return EGRESS_NEXT;
  }
  if (nwrite < 0) {
    egress_src none;
    memset(&none, 0, sizeof(none));
    return egress_error(qc, &none, nwrite, -1);
  }
  e->pkt_destlen = 0;
  if (accepted) {
    prd_dgram_sent(qc);
  } else if (prd_dgram_not_taken(qc, nwrite > 0) && nwrite == 0) {
    return EGRESS_NEXT; /* dropped as too large: the next one */
  }
  if (nwrite == 0) {
    return EGRESS_STOP;
  }
  return egress_batch_add(qc, e, (size_t)nwrite);
}

/* egress_write_one writes one packet into the batch: EGRESS_NEXT while there
 * is more to write. Queued datagrams take turns with the data streams, so
 * that neither starves the other; the control stream goes first. */
static int egress_write_one(prd_quic_conn *qc, egress *e) {
  egress_src src;
  ngtcp2_ssize ndatalen = -1, nwrite;

  egress_next(qc, &src);
  if (qc->dg_head && !src.is_ctrl && (src.sid < 0 || qc->dg_turn)) {
    qc->dg_turn = 0;
    return egress_write_dgram(qc, e);
  }
  qc->dg_turn = 1;
  qc->flags |= PRD_QC_F_IN_CALLBACK;
  nwrite = ngtcp2_conn_writev_stream(
      qc->conn, &e->ps.path, &e->pi, qc->txbuf + e->off,
      e->pkt_destlen ? e->pkt_destlen : e->payload, &ndatalen, src.flags,
      src.sid, src.vec, src.nvec, e->ts);
  qc->flags &= ~PRD_QC_F_IN_CALLBACK;
  if (nwrite < 0) {
    if (nwrite == NGTCP2_ERR_WRITE_MORE && e->pkt_destlen == 0) {
      e->pkt_destlen = e->payload;
    }
    return egress_error(qc, &src, nwrite, ndatalen);
  }
  e->pkt_destlen = 0;
  if (ndatalen >= 0) {
    egress_advance(qc, &src, (size_t)ndatalen);
  }
  if (nwrite == 0) {
    return EGRESS_STOP;
  }
  ++qc->tx_pkts;
  return egress_batch_add(qc, e, (size_t)nwrite);
}

/* egress_deferred: work kept out of ngtcp2 callbacks, done before the
 * write loop: the streams_available callback and stream aborts. */
static void egress_deferred(prd_quic_conn *qc) {
  if (qc->flags & PRD_QC_F_STREAMS_AVAILABLE) {
    qc->flags &= ~PRD_QC_F_STREAMS_AVAILABLE;
    if (qc->ep->cfg.cb->streams_available) {
      qc->ep->cfg.cb->streams_available(qc, qc->ud);
    }
  }
  prd_stream_do_aborts(qc);
}

int prd_egress_write(prd_quic_conn *qc) {
  egress e;
  int rv;

  if (qc->tx_len > 0 && tx_send_pending(qc) != 0) {
    return 0;
  }
  egress_deferred(qc);
  egress_init(qc, &e);
  while ((rv = egress_write_one(qc, &e)) == EGRESS_NEXT) {
  }
  if (rv == EGRESS_FREED) {
    return -1;
  }
  if (rv == EGRESS_CLOSED) {
    return 0;
  }
  if (rv == EGRESS_BLOCKED) {
    conn_paced(qc, e.ts); /* the rest follows prd_quic_endpoint_on_writable */
    return 0;
  }
  if (e.off > 0) {
    egress_batch_send(qc, &e);
  }
  conn_paced(qc, e.ts);
  egress_probe_done(qc);
  prd_conn_update_timer(qc);
  return 0;
}

void prd_quic_conn_flush(prd_quic_conn *qc) {
  if (qc->state == PRD_QC_CLOSED) {
    return;
  }
  if (prd_conn_closing(qc)) {
    prd_conn_update_timer(qc);
    return;
  }
  if (prd_conn_run_requested_close(qc)) {
    return;
  }
  prd_egress_write(qc);
}
