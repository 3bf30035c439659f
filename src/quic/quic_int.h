/* SPDX-License-Identifier: GPL-3.0-only */
/* Internals shared by the files of the transport adapter. */
#ifndef PRD_QUIC_INT_H
#define PRD_QUIC_INT_H

#include <gnutls/gnutls.h>
#include <ngtcp2/ngtcp2_crypto_gnutls.h>

#include "cid_map.h"
#include "ngtcp2_compat.h"
#include "quic.h"
#include "ratelimit.h"
#include "udp.h"

#define PRD_SCID_LEN 16
#define PRD_MAX_GSO_SEGS 64
#define PRD_TXBUF_SIZE (64 * 1024)
/* One GSO send must fit in one UDP datagram's 16-bit length. */
#define PRD_GSO_MAX_BYTES 65000
#define PRD_MAX_UDP_PAYLOAD_CAP 65507 /* IPv4 maximum: 65535 - 20 - 8 */
/* RFC 9000 §14: every path carries this much, and datagrams stay at it
 * until the peer's transport parameters are known. */
#define PRD_MIN_UDP_PAYLOAD 1200
/* Datagram size on loopback paths (MTU 65,536) unless --max-udp-payload
 * says otherwise: one datagram per 65,000-byte send, the fewest packets to
 * encrypt and acknowledge (README: Performance). -D overrides it for A/B
 * builds. */
#ifndef PRD_LOOPBACK_UDP_PAYLOAD
#  define PRD_LOOPBACK_UDP_PAYLOAD 65000
#endif

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
/* The queue bound (egress.c): what may wait in the bottleneck's queue,
 * as time at the delivery rate: an eighth of the minimum RTT, at most the
 * first, plus the second ... */
#define PRD_QUEUE_BOUND_MARGIN_MAX_NS (5 * PRD_NS_PER_MS)
#define PRD_QUEUE_BOUND_SLACK_NS (2 * PRD_NS_PER_MS)
/* ... the delivery rate it is measured in: the third largest of the last
 * intervals of a smoothed RTT (at least PRD_QUEUE_BOUND_MIN_INTERVAL_NS, so
 * that BBR's 200 ms ProbeRTT spans few) in which stream data waited ... */
#define PRD_QUEUE_BOUND_SAMPLES 8
#define PRD_QUEUE_BOUND_MIN_INTERVAL_NS (100 * PRD_NS_PER_MS)
/* ... and the minimum RTT: over the last one or two of these windows. */
#define PRD_QUEUE_BOUND_RTT_WINDOW_NS (5 * PRD_NS_PER_S)
/* Another sender keeps the queue up (or the path grew longer): after this
 * many intervals in a row in which no RTT sample came within twice the
 * bound's own queue plus 2 ms of the minimum, the bound stands aside, and
 * tries again after PRD_QUEUE_BOUND_RETRY_NS. */
#define PRD_QUEUE_BOUND_UNDRAINED 4
#define PRD_QUEUE_BOUND_RETRY_NS (5 * PRD_NS_PER_S)
/* The bound is below the path when it held stream data and yet the queue
 * stayed empty (every RTT of the interval within a quarter of its own queue
 * of the minimum would show it; the lowest is what is kept): the rate takes
 * that interval's, and after PRD_QUEUE_BOUND_EMPTY_PROBE such intervals in
 * a row the bound grows by PRD_QUEUE_BOUND_PROBE_GAIN for the next one. */
#define PRD_QUEUE_BOUND_EMPTY_PROBE 2
#define PRD_QUEUE_BOUND_PROBE_GAIN 1.25

/* The datagram send queue (dgram.c): at most this many datagrams and
 * bytes wait for the write loop; more are dropped and counted
 * (spec/10-udp.md §6). */
#define PRD_DGRAM_QUEUE_MAX 1024
#define PRD_DGRAM_QUEUE_BYTES (4 * 1024 * 1024)
typedef struct prd_dgram prd_dgram;

/* A data stream (spec/02-framing.md §1), opaque outside quic/. The send
 * buffer holds the bytes from the first unacknowledged one to the last read
 * from TCP: bytes handed to ngtcp2 stay here until acknowledged
 * (docs/ARCHITECTURE.md §3). */
struct prd_qstream {
  int64_t id;
  prd_quic_conn *qc;
  void *user;           /* the relay's TCP side, NULL once detached */
  prd_chunkbuf sendbuf; /* stream offsets: head = acked, tail = read */
  uint64_t sent_off;    /* next offset to hand to ngtcp2 */
  uint64_t rx_bytes, tx_bytes;
  /* Receive-window auto-tuning (spec/04-quic-profile.md §2.3): the window we
   * grant, bytes consumed since the last doubling check, and when it began. */
  uint32_t rx_window, rx_epoch_bytes;
  uint64_t rx_epoch_ts;
  unsigned fin_pending : 1; /* TCP EOF seen: send FIN after the data */
  unsigned fin_sent : 1;
  unsigned blocked : 1; /* stream flow control */
  unsigned in_sendq : 1;
  unsigned closed : 1;        /* ngtcp2 closed it; struct freed when detached */
  unsigned reset : 1;         /* we or the peer aborted */
  unsigned abort_pending : 1; /* RESET_STREAM+STOP_SENDING to send */
  unsigned hdr_done : 1;      /* client: stream header parsed */
  unsigned rx_fin : 1;        /* peer's FIN received */
  unsigned fin_delivered : 1;
  unsigned abort_read_only : 1;
  uint64_t abort_code;
  /* Client, until the stream starts (header parsed and authenticated): the
   * first bytes, at most the header's 512, in a small buffer; payload behind
   * a complete header in rxhold (spec/08-security.md §3). */
  uint8_t *hdrbuf;
  uint16_t hdrlen;
  unsigned held : 1;         /* counted in the connection's held streams */
  unsigned held_payload : 1; /* rxhold holds payload before the start */
  prd_tstamp held_since;
  prd_chunkbuf rxhold; /* client: payload held until header + auth */
  prd_qstream *sendq_next;
  prd_qstream *all_prev, *all_next;
};

struct prd_quic_endpoint {
  prd_quic_config cfg;
  int is_server;
  uint8_t static_secret[32];
  gnutls_certificate_credentials_t cred;
  gnutls_priority_t prio;
  prd_quic_conn *conns; /* all live connections */
  size_t nconns;
  size_t npending; /* server: not yet authenticated */
  prd_cid_map cids;
  prd_ratelimit rl;
  int keylog_fd;
  /* Test seam: datagrams go here instead of the socket when set
   * (prd_quic_endpoint_set_transmit). */
  prd_quic_transmit_fn transmit;
  void *transmit_arg;
  /* The relay's TCP paths (prd_quic_endpoint_set_path_tx). */
  prd_quic_path_tx_fn path_tx;
  void *path_tx_arg;
  /* HELLO Flags bits implemented (PRD_FLAG_SERVICES | PRD_FLAG_CLIENT_NAME;
   * test seam: prd_quic_endpoint_set_features). */
  uint64_t features;
  /* server: the stand-in key a refused client name's MAC is computed under
   * (spec/03-auth.md §4.1), random, never a client's */
  uint8_t dummy_key[32];
  prd_udp udp;
};

/* The lifecycle of a connection (ngtcp2 keeps its own, NGTCP2_CS_*; this is
 * ours, around it). One state at a time, moving only forward:
 *
 *   HANDSHAKE --handshake completed--> AUTHENTICATING --authenticated--> OPEN
 *   (any of the three) --we close, refuse or fail; a fatal ngtcp2 error-->
 *       CLOSING (CONNECTION_CLOSE sent, repeated to the peer's packets until
 *       close_deadline, 3 PTO)
 *   (any of the three) --the peer's CONNECTION_CLOSE or a stateless reset-->
 *       DRAINING (silent until close_deadline)
 *   (any state) --idle or handshake timeout, refused, dropped, deadline
 *       passed--> CLOSED (callbacks.stream_close for every stream, then
 *       callbacks.closed, then freed)
 *
 * AUTHENTICATING and OPEN are the authentication state machines of
 * spec/07-state-machines.md §1 and §2 (qc->auth) before and after
 * AUTHENTICATED; a client's FAILED there is our CLOSING or DRAINING, and
 * its connection lifecycle (§4) SERVING ends with our CLOSED. Authentication
 * fails only through prd_auth_fail (ctrl.c), which sets PRD_QC_F_AUTH_FAILED
 * and closes with the code auth chose. */
typedef enum prd_qc_state {
  PRD_QC_HANDSHAKE,
  PRD_QC_AUTHENTICATING,
  PRD_QC_OPEN,
  PRD_QC_CLOSING,
  PRD_QC_DRAINING,
  PRD_QC_CLOSED
} prd_qc_state;

/* Flags: what holds independently of the state. */
/* datagrams may exceed 1,200 bytes */
#define PRD_QC_F_HS_CONFIRMED (1u << 0)
/* callbacks.authenticated was called (stays set while closing) */
#define PRD_QC_F_AUTHENTICATED (1u << 1)
/* authentication failed (charged to the address, spec/03-auth.md §6) */
#define PRD_QC_F_AUTH_FAILED (1u << 2)
/* inside ngtcp2: no writes now */
#define PRD_QC_F_IN_CALLBACK (1u << 3)
/* prd_quic_conn_close in a callback: done by the next flush */
#define PRD_QC_F_CLOSE_REQUESTED (1u << 4)
/* the same for prd_quic_conn_refuse */
#define PRD_QC_F_REFUSE_REQUESTED (1u << 5)
/* callbacks.streams_available due */
#define PRD_QC_F_STREAMS_AVAILABLE (1u << 6)
/* a liveness probe is due */
#define PRD_QC_F_PROBING (1u << 7)
/* streams are being closed and freed */
#define PRD_QC_F_TEARING_DOWN (1u << 8)
/* loopback: no pacing */
#define PRD_QC_F_NO_PACING (1u << 9)
/* no queue bound (egress.c) */
#define PRD_QC_F_NO_QUEUE_BOUND (1u << 10)

struct prd_quic_conn {
  prd_quic_endpoint *ep;
  /* endpoint.c's: the endpoint's list, and its queue of connections
   * waiting for the socket to be writable */
  prd_quic_conn *next, *prev;
  prd_udp_waiter tx_wait;
  ngtcp2_conn *conn;
  ngtcp2_crypto_conn_ref conn_ref;
  gnutls_session_t tls;
  void *ud;
  char name[24];
  prd_sockaddr local, remote;
  prd_auth auth;
  int64_t ctrl_sid; /* -1 until open */
  prd_frame_reader ctrl_reader;
  prd_chunkbuf ctrl_sendbuf; /* control stream bytes until ACK */
  uint64_t ctrl_sent_off;
  prd_qc_state state;
  unsigned flags; /* PRD_QC_F_* */
  prd_tstamp close_deadline;
  prd_ccerr last_error;
  prd_quic_close_kind close_kind;
  uint64_t close_code; /* application code; streams end with it */
  int close_err;       /* prd_quic_close_info.err */
  char close_msg[1200];
  /* the code of the peer's transport CONNECTION_CLOSE */
  uint64_t peer_close_code;
  /* close packet kept for retransmission in the closing period */
  uint8_t *close_pkt;
  size_t close_pktlen;
  /* streams */
  prd_qstream *streams; /* all live streams */
  size_t nstreams;
  size_t nheld, nheld_payload; /* client: streams not started yet */
  prd_qstream *sendq_head, *sendq_tail;
  /* pending (blocked) datagrams */
  uint8_t *txbuf;
  size_t tx_off, tx_len, tx_segsize;
  prd_sockaddr tx_remote, tx_local;
  ngtcp2_cid scids[16];
  size_t nscids;
  ngtcp2_cid odcid; /* server: client's original DCID */
  int have_odcid;
  /* server: the address the handshake came from, validated by its
   * completion; authentication failures are charged to it */
  prd_sockaddr hs_remote;
  prd_tstamp created;
  uint64_t udp_payload;  /* chosen max payload */
  uint64_t keepalive_ns; /* PING interval in use, 0 = off (conn_keepalive) */
  /* client: why verify_cb rejected the server's certificate */
  char verify_msg[1024];
  prd_quic_close_kind verify_kind; /* with verify_err: PIN_ or NAME_MISMATCH */
  int verify_err;
  uint8_t *peer_cert; /* TOFU: the certificate accepted */
  size_t peer_certlen;
  unsigned close_resends;
  prd_tstamp client_deadline;
  prd_tstamp last_rx, probe_ts;
  /* The first send after last_rx (prd_conn_pto_fired). */
  prd_tstamp tx_since_rx;
  uint64_t requested_code;
  char requested_reason[64];
  uint64_t lost_closed; /* stream loss counts of streams already closed */
  /* datagrams (dgram.c) */
  prd_dgram *dg_head, *dg_tail;
  size_t dg_nqueued, dg_queued_bytes;
  int dg_turn; /* egress: a datagram's turn before the streams' */
  prd_quic_dgram_stats dg;
  uint64_t tx_pkts; /* packets written, of every kind */
  /* The queue bound (egress.c). */
  struct {
    uint64_t sent;      /* bytes of the packets written */
    uint64_t mark_left; /* of them, out of flight at mark_ts */
    prd_tstamp mark_ts; /* the start of the interval being measured */
    int busy;           /* the network held stream data in this interval */
    int held;           /* of it, the bound held some */
    int resumed;        /* the interval before this one was not busy */
    unsigned empty;     /* held intervals in a row with the queue empty */
    /* the rate of the last busy intervals, bytes/s; the next slot */
    uint64_t rate[PRD_QUEUE_BOUND_SAMPLES];
    unsigned next;
    uint64_t est; /* the rate the bound uses: qb_rate of those */
    /* Startup: the best rate so far, and the intervals since it grew by a
     * quarter; filled when the path is full. */
    uint64_t full_rate;
    unsigned full_count;
    int filled;
    /* The bound applies (filled, and no other sender's queue seen); the
     * lowest RTT sample of this interval; intervals in a row whose lowest
     * RTT showed a queue the bound did not make; when to try again. */
    int engaged;
    uint64_t interval_min_rtt;
    unsigned undrained;
    prd_tstamp retry_ts;
    /* the minimum RTT of this and the previous window, since rtt_ts */
    uint64_t rtt_min[2];
    prd_tstamp rtt_ts;
    uint64_t cc_min_rtt; /* ngtcp2's: grows only when it resets */
  } qb;
};

/* prd_conn_closing: CLOSING, DRAINING or CLOSED. */
static inline int prd_conn_closing(const prd_quic_conn *qc) {
  return qc->state >= PRD_QC_CLOSING;
}

/* tls.c */
int prd_tls_server_cred(prd_quic_endpoint *ep);
int prd_tls_session_new(prd_quic_conn *qc);
int prd_tls_exporter(prd_quic_conn *qc, uint8_t *out, size_t outlen);

/* conn.c */
int prd_conn_server_new(prd_quic_conn **pqc, prd_quic_endpoint *ep,
                        const ngtcp2_pkt_hd *hd, const prd_sockaddr *local,
                        const prd_sockaddr *remote, const ngtcp2_cid *odcid,
                        const ngtcp2_cid *retry_scid);
int prd_conn_client_new(prd_quic_conn **pqc, prd_quic_endpoint *ep,
                        const prd_sockaddr *local, const prd_sockaddr *remote);
/* prd_conn_read feeds one datagram; returns 0 or -1 when the connection was
 * closed (and freed). */
int prd_conn_read(prd_quic_conn *qc, const prd_sockaddr *local,
                  const prd_sockaddr *remote, const uint8_t *pkt, size_t len,
                  uint8_t ecn);
void prd_conn_free(prd_quic_conn *qc);
/* prd_conn_refused: the client's socket got ECONNREFUSED. */
void prd_conn_refused(prd_quic_conn *qc);

/* The connection's state, for endpoint.c. */
int prd_conn_auth_failed(const prd_quic_conn *qc);
/* prd_conn_authenticated: the authenticated callback ran. */
int prd_conn_authenticated(const prd_quic_conn *qc);
/* prd_conn_hs_remote: the address the server's handshake came from. */
const prd_sockaddr *prd_conn_hs_remote(const prd_quic_conn *qc);

/* conn.c, for the other files: flushing, closing, the timer */
void prd_conn_want_flush(prd_quic_conn *qc);
/* prd_conn_set_error_app: we close with application error |code|. */
void prd_conn_set_error_app(prd_quic_conn *qc, uint64_t code,
                            const char *reason);
/* prd_conn_write_close sends CONNECTION_CLOSE and enters the closing
 * period. Returns 0, or -1 when nothing could be written (the caller then
 * calls prd_conn_finish). */
int prd_conn_write_close(prd_quic_conn *qc);
/* prd_conn_finish reports the close (callbacks.closed) and frees |qc|. */
void prd_conn_finish(prd_quic_conn *qc);
/* prd_conn_handle_error handles a fatal ngtcp2 result; returns -1 when |qc|
 * was freed. */
int prd_conn_handle_error(prd_quic_conn *qc, int rv);
void prd_conn_update_timer(prd_quic_conn *qc);
int prd_conn_run_requested_close(prd_quic_conn *qc);

/* stream.c */
void prd_stream_start_all(prd_quic_conn *qc);
void prd_stream_expire_held(prd_quic_conn *qc, prd_tstamp now);
/* The send side, for egress.c (the verbs of Knot's libknot/quic: what to
 * send, mark it sent; cb_acked_stream_data_offset acknowledges).
 * prd_stream_next_ready pops the queued streams that have nothing to send
 * and returns the first that has, or NULL. prd_stream_peek_unsent points
 * |vec| at the bytes not yet handed to ngtcp2 and sets |*pfin| when they end
 * with the FIN. prd_stream_mark_sent: ngtcp2 took |n| of them (and the FIN,
 * when |fin| and they were the last). */
prd_qstream *prd_stream_next_ready(prd_quic_conn *qc);
size_t prd_stream_peek_unsent(prd_qstream *st, ngtcp2_vec *vec, size_t max,
                              int *pfin);
void prd_stream_mark_sent(prd_quic_conn *qc, prd_qstream *st, size_t n,
                          int fin);
/* prd_stream_unsendable: ngtcp2 refused |st|'s data: flow control
 * (|blocked|, until more credit) or the stream is gone. */
void prd_stream_unsendable(prd_quic_conn *qc, prd_qstream *st, int blocked);
/* prd_stream_do_aborts sends the deferred stream aborts (outside ngtcp2
 * callbacks, spec/02-framing.md §6). */
void prd_stream_do_aborts(prd_quic_conn *qc);
/* prd_stream_open_lost: loss count of the streams ngtcp2 still holds. */
uint64_t prd_stream_open_lost(prd_quic_conn *qc);
/* prd_stream_close_all tells the relay about every stream still open, then
 * forgets them all (connection teardown). */
void prd_stream_close_all(prd_quic_conn *qc);
/* The ngtcp2 stream callbacks. */
int prd_cb_stream_open(ngtcp2_conn *conn, int64_t stream_id, void *user_data);
int prd_cb_recv_stream_data(ngtcp2_conn *conn, uint32_t flags,
                            int64_t stream_id, uint64_t offset,
                            const uint8_t *data, size_t datalen,
                            void *user_data, void *stream_user_data);
int prd_cb_acked_stream_data_offset(ngtcp2_conn *conn, int64_t stream_id,
                                    uint64_t offset, uint64_t datalen,
                                    void *user_data, void *stream_user_data);
int prd_cb_stream_close(ngtcp2_conn *conn, uint32_t flags, int64_t stream_id,
                        uint64_t app_error_code, void *user_data,
                        void *stream_user_data);
int prd_cb_stream_reset(ngtcp2_conn *conn, int64_t stream_id,
                        uint64_t final_size, uint64_t app_error_code,
                        void *user_data, void *stream_user_data);
int prd_cb_extend_max_stream_data(ngtcp2_conn *conn, int64_t stream_id,
                                  uint64_t max_data, void *user_data,
                                  void *stream_user_data);

/* dgram.c: the send queue for egress.c. prd_dgram_peek points |vec| at the
 * next datagram (0: none); prd_dgram_sent: ngtcp2 took it;
 * prd_dgram_not_taken: it did not, in a packet written with other frames
 * (|wrote_packet|) or with nothing written; returns 1 when it was dropped
 * as too large (spec/10-udp.md §5), 0 when it waits. prd_dgram_drop_head
 * drops it (ngtcp2 refused it as too large for the peer). */
int prd_dgram_peek(prd_quic_conn *qc, ngtcp2_vec *vec);
/* prd_dgram_path_payload: the largest packet a datagram may go in now. */
size_t prd_dgram_path_payload(prd_quic_conn *qc);
void prd_dgram_sent(prd_quic_conn *qc);
int prd_dgram_not_taken(prd_quic_conn *qc, int wrote_packet);
void prd_dgram_drop_head(prd_quic_conn *qc);
void prd_dgram_free_all(prd_quic_conn *qc);
int prd_cb_recv_datagram(ngtcp2_conn *conn, uint32_t flags, const uint8_t *data,
                         size_t datalen, void *user_data);
int prd_cb_lost_datagram(ngtcp2_conn *conn, uint64_t dgram_id, void *user_data);
int prd_cb_ack_datagram(ngtcp2_conn *conn, uint64_t dgram_id, void *user_data);

/* egress.c */
/* prd_egress_write runs the deferred stream work and writes what can be
 * sent now, whatever the state. Returns 0, or -1 when |qc| was freed. */
int prd_egress_write(prd_quic_conn *qc);

/* ctrl.c */
void prd_ctrl_queue_output(prd_quic_conn *qc);
/* The control stream's bytes not yet handed to ngtcp2 (0 when none, or
 * before the stream opens), and ngtcp2 taking |n| of them. */
size_t prd_ctrl_peek_unsent(prd_quic_conn *qc, ngtcp2_vec *vec, size_t max);
void prd_ctrl_mark_sent(prd_quic_conn *qc, size_t n);
/* prd_ctrl_auth_failed logs a failed authentication and sets the close;
 * returns NGTCP2_ERR_CALLBACK_FAILURE. */
int prd_ctrl_auth_failed(prd_quic_conn *qc, int rv);
int prd_ctrl_recv(prd_quic_conn *qc, const uint8_t *data, size_t len, int fin);
void prd_ctrl_report_authenticated(prd_quic_conn *qc);
int prd_ctrl_start(prd_quic_conn *qc);
int prd_ctrl_on_timer(prd_quic_conn *qc, prd_tstamp now);

/* endpoint.c */
/* prd_ep_conn_add adds a new connection to the endpoint's list (on a
 * server, as one not authenticated yet); prd_ep_conn_authenticated counts
 * its authentication; prd_ep_conn_forget takes it out of every table of the
 * endpoint (list, CID map, blocked queue) before it is freed. */
void prd_ep_conn_add(prd_quic_endpoint *ep, prd_quic_conn *qc);
void prd_ep_conn_authenticated(prd_quic_endpoint *ep);
void prd_ep_conn_forget(prd_quic_endpoint *ep, prd_quic_conn *qc);
int prd_ep_cid_add(prd_quic_endpoint *ep, const ngtcp2_cid *cid,
                   prd_quic_conn *qc);
void prd_ep_cid_remove(prd_quic_endpoint *ep, const ngtcp2_cid *cid);
/* prd_ep_send sends |len| bytes of datagrams of |segsize| each (the last may
 * be shorter), through the test seam if one is set, else prd_udp_send.
 * Returns bytes sent, or -EAGAIN with nothing sent, or another negative
 * errno (datagrams dropped). */
ssize_t prd_ep_send(prd_quic_endpoint *ep, const prd_sockaddr *local,
                    const prd_sockaddr *remote, const uint8_t *data, size_t len,
                    size_t segsize);
/* prd_ep_block queues |qc| to be flushed when the socket is writable. */
void prd_ep_block(prd_quic_endpoint *ep, prd_quic_conn *qc);

/* prd_ep_auth_failure counts an authentication failure or timeout of |qc|
 * (server) against the address its handshake came from, and starts that
 * address's cool-down when it is over its budget (spec/03-auth.md §6). */
void prd_ep_auth_failure(prd_quic_endpoint *ep, prd_quic_conn *qc);

/* prd_ep_auth_log_ok: whether a failure line about |a| may be logged now
 * (at most one per address every 10 s); |*psuppressed| gets the number of
 * lines left out since the last one. */
int prd_ep_auth_log_ok(prd_quic_endpoint *ep, const prd_sockaddr *a,
                       uint32_t *psuppressed);

#endif
