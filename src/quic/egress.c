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
  uint64_t inflight; /* bytes in flight when the flush began */
  uint64_t bound;    /* the queue bound on them; 0: none (egress_bound) */
  int measuring;     /* the bound is on for |qc| (it may not apply yet) */
  int held;          /* the bound held stream data back */
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

/* qb_margin: what the bound lets wait in the bottleneck's queue beyond the
 * path's bandwidth-delay product, as time at the delivery rate: an eighth
 * of the minimum RTT, at most PRD_QUEUE_BOUND_MARGIN_MAX_NS, plus
 * PRD_QUEUE_BOUND_SLACK_NS for ACKs that come late. */
static uint64_t qb_margin(uint64_t min_rtt) {
  uint64_t m = min_rtt / 8;
  return (m < PRD_QUEUE_BOUND_MARGIN_MAX_NS ? m
                                            : PRD_QUEUE_BOUND_MARGIN_MAX_NS) +
         PRD_QUEUE_BOUND_SLACK_NS;
}

/* qb_rate: the third largest sample. Not the largest: the bytes that leave
 * the flight include those declared lost, and a burst of tail drops at the
 * bottleneck (Startup's overshoot) makes a sample half as much again as the
 * path. Not the median: a rate measured with the bound in force is what
 * the bound let through, and ACKs that come late leave the pipe short in
 * some intervals; the bound must not follow those down. */
static uint64_t qb_rate(const prd_quic_conn *qc) {
  uint64_t v[PRD_QUEUE_BOUND_SAMPLES];
  memcpy(v, qc->qb.rate, sizeof(v));
  for (size_t i = 1; i < PRD_QUEUE_BOUND_SAMPLES; ++i) {
    for (size_t j = i; j > 0 && v[j - 1] > v[j]; --j) {
      uint64_t t = v[j];
      v[j] = v[j - 1];
      v[j - 1] = t;
    }
  }
  return v[PRD_QUEUE_BOUND_SAMPLES - 3];
}

/* qb_sample ends a measuring interval at |now|, |left| bytes out of flight
 * (acknowledged or declared lost). When stream data waited in it (the
 * network, not the application, set the pace) its rate is a sample, unless
 * - the interval began after one that was not busy: its first round trip
 *   brought no ACKs, and its rate is the restart of the ACK clock;
 * - the bound applies and held nothing: the congestion controller set the
 *   pace (BBR's ProbeRTT halves its window for 200 ms and a round trip
 *   every few seconds), and its rate says nothing of the path's. Taken as
 *   samples, a few of those pulled the bound below the path, and a bound
 *   below the path measures only what it lets through (README, "The queue
 *   bound").
 * With the samples:
 * - Startup ends, as in BBR, when three samples in a row fall short of a
 *   quarter more than the best; the bound applies from then on;
 * - the bound stands aside when, for PRD_QUEUE_BOUND_UNDRAINED busy
 *   intervals in a row, no RTT seen came near the minimum although the
 *   bound held its own queue to |own|: another sender fills the queue, and
 *   would take the path from a tunnel that yields (or the path grew longer
 *   than the minimum RTT says). It tries again PRD_QUEUE_BOUND_RETRY_NS
 *   later. */
static void qb_sample(prd_quic_conn *qc, const prd_conn_stat *cs, uint64_t left,
                      prd_tstamp now, uint64_t min_rtt) {
  uint64_t rate =
      (uint64_t)((double)(left - qc->qb.mark_left) * (double)PRD_NS_PER_S /
                 (double)(now - qc->qb.mark_ts));
  uint64_t own = qb_margin(min_rtt);
  int counted =
      qc->qb.busy && !qc->qb.resumed && (!qc->qb.engaged || qc->qb.held);
  if (counted) {
    qc->qb.rate[qc->qb.next++ % PRD_QUEUE_BOUND_SAMPLES] = rate;
    if (qc->qb.engaged && qc->qb.interval_min_rtt <= min_rtt + own / 4) {
      /* The bound held, and the queue stayed empty: the path carries at
       * least this rate, and the slower samples were the bound's own (or a
       * disturbance that is over). Growing only by its margin a few
       * intervals at a time, a bound that a stall of the path pulled down
       * to a fifth took 8 s to come back. */
      for (size_t i = 0; i < PRD_QUEUE_BOUND_SAMPLES; ++i) {
        if (qc->qb.rate[i] < rate) {
          qc->qb.rate[i] = rate;
        }
      }
      ++qc->qb.empty;
    } else {
      qc->qb.empty = 0;
    }
    qc->qb.est = qb_rate(qc);
  } else if (qc->qb.busy) {
    qc->qb.empty = 0;
  }
  if (!qc->qb.filled) {
    if (!counted) {
      /* nothing learnt */
    } else if (rate * 4 >= qc->qb.full_rate * 5) {
      qc->qb.full_rate = rate;
      qc->qb.full_count = 0;
    } else if (++qc->qb.full_count >= 3) {
      /* Startup's slower samples are not the path's. */
      for (size_t i = 0; i < PRD_QUEUE_BOUND_SAMPLES; ++i) {
        qc->qb.rate[i] = qc->qb.full_rate;
      }
      qc->qb.est = qc->qb.full_rate;
      qc->qb.filled = qc->qb.engaged = 1;
    }
  } else if (qc->qb.engaged && qc->qb.busy) {
    if (qc->qb.interval_min_rtt > min_rtt + 2 * own + PRD_NS_PER_MS * 2) {
      if (++qc->qb.undrained >= PRD_QUEUE_BOUND_UNDRAINED) {
        PRD_LOG_DEBUG("[%s] queue bound: a queue it did not make, RTT "
                      "%.1f ms over %.1f; standing aside",
                      qc->name, (double)qc->qb.interval_min_rtt / 1e6,
                      (double)min_rtt / 1e6);
        qc->qb.engaged = 0;
        qc->qb.undrained = 0;
        qc->qb.retry_ts = now + PRD_QUEUE_BOUND_RETRY_NS;
      }
    } else {
      qc->qb.undrained = 0;
    }
  }
  if (qc->qb.filled && !qc->qb.engaged && now >= qc->qb.retry_ts) {
    qc->qb.engaged = 1;
  }
  PRD_LOG_TRACE("[%s] queue bound: %s %.1f Mbit/s over %.0f ms, lowest RTT "
                "%.1f ms (minimum %.1f), %s%s at %.1f Mbit/s; cwnd %" PRIu64
                " in flight %" PRIu64 " delivery %.1f Mbit/s",
                qc->name,
                counted       ? "sample"
                : qc->qb.busy ? "not a sample"
                              : "idle",
                (double)rate * 8e-6, (double)(now - qc->qb.mark_ts) / 1e6,
                (double)qc->qb.interval_min_rtt / 1e6, (double)min_rtt / 1e6,
                qc->qb.engaged  ? "applies"
                : qc->qb.filled ? "stands aside"
                                : "startup",
                qc->qb.engaged && qc->qb.empty >= PRD_QUEUE_BOUND_EMPTY_PROBE
                    ? ", probing"
                    : "",
                (double)qc->qb.est * 8e-6, (uint64_t)cs->cwnd,
                (uint64_t)cs->bytes_in_flight,
                (double)prd_conn_delivery_rate(cs) * 8e-6);
  qc->qb.resumed = !qc->qb.busy;
  qc->qb.held = 0;
  qc->qb.busy = 0;
  qc->qb.interval_min_rtt = UINT64_MAX;
  qc->qb.mark_ts = now;
  qc->qb.mark_left = left;
}

/* qb_min_rtt: the minimum of the latest RTTs seen at each flush in the
 * last one or two windows, so that a path that grew longer is seen within
 * two windows (ngtcp2's minimum is for the whole connection). BBR's
 * ProbeRTT drains the queue at least every 5 s. */
static uint64_t qb_min_rtt(prd_quic_conn *qc, const prd_conn_stat *cs,
                           prd_tstamp now) {
  uint64_t m;
  if (now - qc->qb.rtt_ts >= PRD_QUEUE_BOUND_RTT_WINDOW_NS) {
    qc->qb.rtt_min[1] = qc->qb.rtt_min[0];
    qc->qb.rtt_min[0] = UINT64_MAX;
    qc->qb.rtt_ts = now;
  }
  if (cs->latest_rtt && cs->latest_rtt < qc->qb.rtt_min[0]) {
    qc->qb.rtt_min[0] = cs->latest_rtt;
  }
  m = qc->qb.rtt_min[0] < qc->qb.rtt_min[1] ? qc->qb.rtt_min[0]
                                            : qc->qb.rtt_min[1];
  return m > cs->min_rtt ? m : cs->min_rtt;
}

/* The queue bound (ngtcp2 0.12): once the path is full, stream data and
 * datagrams wait while the bytes in flight exceed what the path holds (the
 * delivery rate over the minimum RTT) by more than qb_margin: an eighth of
 * the minimum RTT, at most 5 ms, plus 2 ms, at the delivery rate.
 *
 * ngtcp2 0.12 lets a paced write go up to 1 ms early and counts the next
 * pacing time from it, so on a path where ACKs come every other datagram
 * nothing is ever held: the sender follows the ACK clock, and BBR's window
 * of two bandwidth-delay products keeps one of them in the bottleneck's
 * queue, a minimum RTT of delay for every stream in the tunnel. Holding
 * each write until its pacing time instead bounds the queue but lets BBRv2
 * read random loss as congestion (README, "WAN path"). The bound keeps the
 * ACK clock and caps the bytes in flight: what it holds goes out as ACKs
 * return. Its delivery rate is not ngtcp2's: while writes are held ngtcp2
 * counts the connection as application-limited, and its estimate then only
 * grows. Nor stream bytes acknowledged: those come in jumps as
 * retransmissions fill holes. Not unpaced (loopback, where the CPU is the
 * bottleneck). */
static uint64_t egress_bound(prd_quic_conn *qc, egress *e) {
  prd_conn_stat cs;
  uint64_t left, min_rtt;
  prd_tstamp interval;
  double bound, floor;
  if (!PRD_NGTCP2_LAX_PACING ||
      (qc->flags & (PRD_QC_F_NO_PACING | PRD_QC_F_NO_QUEUE_BOUND))) {
    return 0;
  }
  e->measuring = 1;
  prd_conn_get_stat(qc->conn, &cs);
  e->inflight = cs.bytes_in_flight;
  if (cs.min_rtt == UINT64_MAX) {
    /* No RTT sample yet, or ngtcp2 started over on a new path (it resets
     * its congestion state there): start over with the first sample. */
    qc->qb.mark_ts = 0;
    return 0;
  }
  if (cs.min_rtt > qc->qb.cc_min_rtt || qc->qb.mark_ts == 0) {
    /* The first RTT sample (of this path). */
    uint64_t sent = qc->qb.sent;
    memset(&qc->qb, 0, sizeof(qc->qb));
    qc->qb.sent = sent;
    qc->qb.rtt_min[0] = qc->qb.rtt_min[1] = UINT64_MAX;
    qc->qb.interval_min_rtt = UINT64_MAX;
    qc->qb.rtt_ts = e->ts;
    qc->qb.mark_ts = e->ts;
    qc->qb.mark_left = sent - cs.bytes_in_flight;
  }
  qc->qb.cc_min_rtt = cs.min_rtt;
  min_rtt = qb_min_rtt(qc, &cs, e->ts);
  if (cs.latest_rtt && cs.latest_rtt < qc->qb.interval_min_rtt) {
    qc->qb.interval_min_rtt = cs.latest_rtt;
  }
  left = qc->qb.sent - cs.bytes_in_flight;
  interval = cs.smoothed_rtt > PRD_QUEUE_BOUND_MIN_INTERVAL_NS
                 ? cs.smoothed_rtt
                 : PRD_QUEUE_BOUND_MIN_INTERVAL_NS;
  if (e->ts - qc->qb.mark_ts >= interval && left >= qc->qb.mark_left) {
    qb_sample(qc, &cs, left, e->ts, min_rtt);
  }
  if (!qc->qb.engaged) {
    return 0;
  }
  bound = (double)qc->qb.est * (double)(min_rtt + qb_margin(min_rtt)) /
          (double)PRD_NS_PER_S;
  if (qc->qb.empty >= PRD_QUEUE_BOUND_EMPTY_PROBE) {
    /* Below the path (qb_sample): find how far. */
    bound *= PRD_QUEUE_BOUND_PROBE_GAIN;
  }
  /* Never below seven tenths of what ngtcp2's delivery rate says the path
   * holds: that estimate only grows while the bound holds writes, so a
   * pipe left short cannot pull the bound far down with it. Not nine
   * tenths: ngtcp2's largest sample runs a fifth to a third above the path
   * after Startup (ACKs that come in bunches), and a bound that high would
   * keep Startup's queue. */
  floor = 0.7 * (double)prd_conn_delivery_rate(&cs) * (double)min_rtt /
          (double)PRD_NS_PER_S;
  if (bound < floor) {
    bound = floor;
  }
  return bound < 4.0 * (double)e->payload ? 4 * e->payload : (uint64_t)bound;
}

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
  e->bound = egress_bound(qc, e);
  ngtcp2_path_storage_zero(&e->ps);
}

/* egress_held: the queue bound holds stream data and datagrams back. */
static int egress_held(const egress *e) {
  return e->bound && e->inflight + e->burst + e->off >= e->bound;
}

/* egress_next picks what the next packet carries: control stream bytes
 * first, then the data streams in round robin (the server's only once the
 * client is authenticated, and none while the queue bound holds them). */
static void egress_next(prd_quic_conn *qc, egress *e, egress_src *src) {
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
  if (egress_held(e)) {
    e->held = 1;
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
  qc->qb.sent += n;
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
  if (!qc->probe_ts || qc->last_rx >= qc->probe_ts) {
    /* Another probe while one is unanswered keeps the first one's time:
     * the silence counts from there. ngtcp2 0.12 neither resends a lost
     * PING nor sets a probe timeout for it, so the caller probes again. */
    qc->probe_ts = prd_now();
  }
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

  egress_next(qc, e, &src);
  if (qc->dg_head && !src.is_ctrl && !egress_held(e) &&
      (src.sid < 0 || qc->dg_turn)) {
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
  if (e.measuring && (e.held || (prd_stream_next_ready(qc) != NULL &&
                                 ngtcp2_conn_get_max_data_left(qc->conn) > 0 &&
                                 (!qc->ep->is_server ||
                                  prd_auth_is_authenticated(&qc->auth))))) {
    /* The network (the bound, the congestion window, pacing), not the
     * streams or flow control, ended the flush with stream data left. */
    qc->qb.busy = 1;
    qc->qb.held |= e.held;
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
