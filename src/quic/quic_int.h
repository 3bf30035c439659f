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
#define PRD_MAX_UDP_PAYLOAD_CAP 65507 /* IPv4 maximum (STYLE §10) */
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
  prd_udp udp;
};

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
  int handshake_done;
  int handshake_confirmed; /* datagrams stay at 1,200 bytes until then */
  int authenticated_reported;
  int closing; /* close requested/started */
  int closed_reported;
  int draining;
  prd_tstamp close_deadline;
  prd_ccerr last_error;
  prd_quic_close_reason close_reason;
  uint64_t close_code;
  char close_msg[1200];
  /* the peer's CONNECTION_CLOSE: application or transport, and its code */
  unsigned peer_close_app : 1;
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
  int pin_failed;
  char verify_msg[1024];
  uint8_t *peer_cert; /* TOFU: the certificate accepted */
  size_t peer_certlen;
  int probing;
  int in_callback;
  int auth_failed;
  int streams_available_pending;
  unsigned close_resends;
  prd_tstamp client_deadline;
  int tearing_down;
  int no_pacing;
  prd_tstamp last_rx, probe_ts;
  /* The first send after last_rx (prd_conn_pto_fired). */
  prd_tstamp tx_since_rx;
  int close_requested; /* 1 = app close, 2 = refuse */
  uint64_t requested_code;
  char requested_reason[64];
  uint64_t lost_closed; /* stream loss counts of streams already closed */
};

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
int prd_conn_closing(const prd_quic_conn *qc);
/* prd_conn_hs_remote: the address the server's handshake came from. */
const prd_sockaddr *prd_conn_hs_remote(const prd_quic_conn *qc);

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
