/* SPDX-License-Identifier: GPL-3.0-only */
/* Transport adapter: QUIC connections (ngtcp2 + GnuTLS) over one UDP socket,
 * with the portredirect control stream and authentication built in. No event
 * loop: the relay layer calls in when the socket is readable, when a timer
 * fires, and when stream data is ready, and is called back through
 * prd_quic_callbacks. */
#ifndef PRD_QUIC_H
#define PRD_QUIC_H

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "../auth/auth.h"
#include "../codec/codec.h"
#include "../common/chunkbuf.h"
#include "../common/time.h"

typedef struct prd_quic_endpoint prd_quic_endpoint;
typedef struct prd_quic_conn prd_quic_conn;
typedef struct prd_qstream prd_qstream;

typedef struct prd_sockaddr {
  union {
    struct sockaddr sa;
    struct sockaddr_in in;
    struct sockaddr_in6 in6;
    struct sockaddr_storage ss;
  } u;
  socklen_t len;
} prd_sockaddr;

/* prd_sockaddr_str formats "1.2.3.4:5" or "[::1]:5" into |buf|. */
const char *prd_sockaddr_str(const prd_sockaddr *a, char *buf, size_t buflen);

/* Why a connection ended (callbacks.closed). Classify closes by kind and
 * code, never by the text of msg. */
typedef enum prd_quic_close_kind {
  PRD_QUIC_CLOSE_LOCAL,          /* we closed or refused it */
  PRD_QUIC_CLOSE_PEER_APP,       /* the peer's application CONNECTION_CLOSE */
  PRD_QUIC_CLOSE_PEER_TRANSPORT, /* the peer's transport CONNECTION_CLOSE */
  PRD_QUIC_CLOSE_IDLE,           /* idle timeout */
  PRD_QUIC_CLOSE_HANDSHAKE,      /* TLS handshake failed or timed out, or the
                                    server refused or never answered */
  PRD_QUIC_CLOSE_PIN_MISMATCH,   /* client: the server's certificate is not
                                    the pinned one */
  PRD_QUIC_CLOSE_NAME_MISMATCH,  /* client: its names do not match */
  PRD_QUIC_CLOSE_CERT_REJECTED,  /* client: no certificate, an unparsable
                                    one, or nothing to check it against */
  PRD_QUIC_CLOSE_STATELESS_RESET /* the peer forgot the connection */
} prd_quic_close_kind;

typedef struct prd_quic_close_info {
  prd_quic_close_kind kind;
  /* LOCAL and PEER_APP: the application error code (spec/05-errors.md;
   * NO_ERROR for a refusal); PEER_TRANSPORT: the transport error code, TLS
   * alerts as 0x100 + alert; 0 for the other kinds. */
  uint64_t code;
  /* The internal error where there is one (prd_err): PRD_ERR_PIN_MISMATCH
   * for PIN_MISMATCH, PRD_ERR_TLS for NAME_MISMATCH and CERT_REJECTED, the
   * authentication error of a failed authentication; -ECONNREFUSED for a
   * client's handshake that an ICMP error refused (HANDSHAKE); else 0. */
  int err;
  /* One line for the log, the peer's words in it escaped: never parse it. */
  const char *msg;
} prd_quic_close_info;

typedef struct prd_quic_callbacks {
  /* The peer proved the PSK (server) / the server accepted us (client). */
  void (*authenticated)(prd_quic_conn *qc, void *ud);
  /* Client: the server opened data stream |st| and its header arrived; the
   * relay sets st->user and connects to the destination. Return 0, or a
   * wire error code to reset the stream with. */
  uint64_t (*stream_open)(prd_quic_conn *qc, prd_qstream *st,
                          const prd_stream_header *hd, void *ud);
  /* Stream payload from the peer (after the header). The relay writes it to
   * TCP or copies it; it calls prd_qstream_consumed as bytes leave for TCP.
   * |fin| marks the end of the peer's direction. Return 0 or -1 (the relay
   * then aborts the stream itself). */
  int (*stream_data)(prd_qstream *st, const uint8_t *data, size_t len, int fin,
                     void *ud);
  /* The peer aborted (RESET_STREAM or STOP_SENDING) with |app_err|. */
  void (*stream_reset)(prd_qstream *st, uint64_t app_err, void *ud);
  /* Space freed in the send buffer (ACK) or credit granted: resume reading
   * TCP if it was paused. */
  void (*stream_writable)(prd_qstream *st, void *ud);
  /* ngtcp2 forgot the stream; st->user must drop its pointer to |st|. The
   * stream is freed by prd_qstream_detach (or when the relay already did). */
  void (*stream_close)(prd_qstream *st, uint64_t app_err, void *ud);
  /* Server: more streams may be opened now. */
  void (*streams_available)(prd_quic_conn *qc, void *ud);
  /* The peer sent GOAWAY. */
  void (*goaway)(prd_quic_conn *qc, uint64_t code, void *ud);
  /* The connection is gone (closing/draining done or never established). The
   * relay must not use |qc| after this returns; every stream got
   * stream_close first. */
  void (*closed)(prd_quic_conn *qc, const prd_quic_close_info *info, void *ud);
  /* The connection's next deadline, after every read, write and timer
   * event, changed or not (UINT64_MAX = none). */
  void (*set_timer)(prd_quic_conn *qc, prd_tstamp expiry, void *ud);
  /* The connection has something to send: call prd_quic_conn_flush soon
   * (once per event-loop turn; several requests collapse). */
  void (*want_flush)(prd_quic_conn *qc, void *ud);
  /* Server: a new connection was accepted; the relay returns its user data
   * for it, or NULL to refuse it (out of memory or descriptors): the
   * connection is then freed without any other callback. */
  void *(*conn_new)(prd_quic_conn *qc, void *ud);
  /* The socket returned EAGAIN: call prd_quic_endpoint_on_writable when the
   * UDP socket is writable again. */
  void (*want_writable)(prd_quic_endpoint *ep, void *ud);
  /* Server: the client declared the services it serves (SERVICES,
   * spec/02-framing.md §3.7), replacing any earlier set. |names| holds |n|
   * valid names (NUL-terminated); the relay sets codes[i] to 0 to accept
   * names[i] or to PRD_APP_UNKNOWN_SERVICE to refuse it, and the quic layer
   * sends SERVICE_REFUSED (§3.8) for each refused name, in order. Not
   * called for a client that did not negotiate services: it serves
   * "default" only. Order: `authenticated` always comes first (by then
   * prd_quic_conn_services_negotiated is known), then `services` each time
   * a SERVICES frame is read, the first one usually a round trip later. A
   * negotiated client whose `services` has not come yet serves nothing
   * (spec/07-state-machines.md §1): open no stream on it. The arrays are
   * valid only during the call. */
  void (*services)(prd_quic_conn *qc, const char *const *names, size_t n,
                   uint64_t *codes, void *ud);
  /* Client: the server refused service |name| with |code| (SERVICE_REFUSED,
   * spec/02-framing.md §3.8; any code, known or not, refuses the name). The
   * connection stays up; the relay logs it once per name. Only after
   * `authenticated`, only where services were negotiated. */
  void (*service_refused)(prd_quic_conn *qc, const char *name, uint64_t code,
                          void *ud);
  /* A DATAGRAM frame's payload from the peer (spec/10-udp.md), only on an
   * authenticated connection where prd_quic_conn_datagrams_ok; others are
   * dropped and counted (prd_quic_dgram_stats.drop_early). Runs inside
   * ngtcp2: the relay may queue datagrams (prd_quic_conn_send_datagram) but
   * not close |qc|. |data| is valid only during the call. */
  void (*datagram)(prd_quic_conn *qc, const uint8_t *data, size_t len,
                   void *ud);
} prd_quic_callbacks;

/* Congestion controllers (--congestion-control). The values are 0.12's
 * ngtcp2_cc_algo; ngtcp2_compat.h maps them to what the ngtcp2 in use has. */
enum {
  PRD_QUIC_CC_RENO = 0,
  PRD_QUIC_CC_CUBIC = 1,
  PRD_QUIC_CC_BBR = 2,
  PRD_QUIC_CC_BBR2 = 3
};

/* An address prefix: family 4 or 6, the |bits| leading bits of |addr|
 * (network order). */
typedef struct prd_addr_prefix {
  uint8_t family, bits;
  uint8_t addr[16];
} prd_addr_prefix;

/* prd_quic_client_key_fn: server, the client table (spec/03-auth.md §4.1),
 * asked when a client's AUTH_RESPONSE arrives (so a table swapped by a
 * reload counts from the next authentication). |name| (|namelen| bytes) is
 * a valid client name, "default" for a client that sent none; |peer| the
 * address its handshake came from. Copies the client's PSK to |psk| (room
 * for PRD_AUTH_PSK_MAX bytes) and sets |*ppsklen|, returning 0; or returns
 * PRD_ERR_CLIENT_UNKNOWN, or PRD_ERR_CLIENT_NOT_ALLOWED when |peer| is
 * outside the client's allowed prefixes. Any failure looks the same from
 * outside: AUTH_FAILED. */
typedef int (*prd_quic_client_key_fn)(void *arg, uint8_t *psk, size_t *ppsklen,
                                      const char *name, size_t namelen,
                                      const prd_sockaddr *peer);

typedef struct prd_quic_config {
  prd_auth_role role;
  /* client: its PSK; server: the PSK of the client "default" when
   * client_key is NULL (then every other name is unknown) */
  const uint8_t *psk;
  size_t psklen;
  /* server: the client table; NULL: psk above */
  prd_quic_client_key_fn client_key;
  void *client_key_arg;
  /* client: its name (spec/02-framing.md §3.3), NULL or "": none (HELLO
   * without CLIENT_NAME, the client "default"); must outlive the endpoint.
   * An invalid name makes prd_quic_endpoint_new_client fail
   * (PRD_ERR_INVAL). */
  const char *client_name;
  /* server identity (DER), server only */
  const uint8_t *cert_der;
  size_t certlen;
  const uint8_t *key_der;
  size_t keylen;
  /* client: pinned certificate (NULL with tofu = accept and report) */
  const uint8_t *pin_der;
  size_t pinlen;
  /* client: pinned SHA-256 fingerprints, 32 bytes each (--server-fingerprint);
   * when npin_sha256 > 0 they are the pin and pin_der is not used */
  const uint8_t *pin_sha256;
  size_t npin_sha256;
  const char *expected_name; /* SAN to match */
  const char *pin_name;      /* the pin's file, for messages */
  int tofu;                  /* accept any certificate when pin_der is NULL */
  const char *keylog_file;   /* NSS key log, NULL = off */
  uint64_t auth_timeout_ns;
  uint64_t idle_timeout_ns;
  uint64_t keepalive_ns;    /* 0 = off */
  uint32_t max_streams;     /* client: bidi streams granted to the server */
  uint32_t max_udp_payload; /* 0 = automatic (large on loopback) */
  int cc_algo;              /* PRD_QUIC_CC_* */
  int no_queue_bound;       /* egress.c's queue bound off (ngtcp2 0.12) */
  uint32_t max_pending_handshakes; /* server: unauthenticated cap */
  /* server: how long an address that failed authentication too often is
   * refused (0 = never), and the addresses never refused
   * (spec/08-security.md §3) */
  uint64_t auth_fail_cooldown_ns;
  const prd_addr_prefix *auth_exempt;
  size_t nauth_exempt;
  /* client: the services it declares after authentication when the server
   * negotiates them (SERVICES, spec/02-framing.md §3.7); NULL or 0 names:
   * only "default". The strings must outlive the endpoint. Names that are
   * invalid, repeated or do not fit one frame make
   * prd_quic_endpoint_new_client fail (PRD_ERR_INVAL, PRD_ERR_NOBUF). */
  const char *const *services;
  size_t nservices;
  /* UDP services (spec/10-udp.md §2): advertise max_datagram_frame_size
   * (PRD_DGRAM_FRAME_MAX) and, on a client, HELLO Flags bit 2; a server
   * with it echoes the bit. 0: neither, as before UDP services. */
  int datagrams;
  const prd_quic_callbacks *cb;
  void *ud;
} prd_quic_config;

/* prd_quic_check_versions fails when the runtime ngtcp2 is older than the
 * headers we were built with (README "Platforms"). Returns 0 or -1 (logged). */
int prd_quic_check_versions(void);

/* Endpoint = one UDP socket plus its connections. */

/* prd_quic_endpoint_new_server binds |local| and prepares to accept.
 * |static_secret| (32 bytes) keys stateless reset tokens and Retry tokens so
 * they survive restarts. Returns 0 or a negative error (errno-based). */
int prd_quic_endpoint_new_server(prd_quic_endpoint **pep,
                                 const prd_quic_config *cfg,
                                 const prd_sockaddr *local,
                                 const uint8_t *static_secret);

/* prd_quic_endpoint_new_client creates a socket connected to |remote|
 * (bound to |local| when non-NULL) and starts one connection to it. */
int prd_quic_endpoint_new_client(prd_quic_endpoint **pep, prd_quic_conn **pqc,
                                 const prd_quic_config *cfg,
                                 const prd_sockaddr *local,
                                 const prd_sockaddr *remote);

/* prd_quic_endpoint_del closes the socket; connections must be gone. */
void prd_quic_endpoint_del(prd_quic_endpoint *ep);

int prd_quic_endpoint_fd(const prd_quic_endpoint *ep);

/* prd_quic_endpoint_on_readable reads datagrams until EAGAIN (or a budget)
 * and processes them. */
void prd_quic_endpoint_on_readable(prd_quic_endpoint *ep);
void prd_quic_endpoint_on_writable(prd_quic_endpoint *ep);

/* prd_quic_endpoint_num_conns counts live connections (all states). */
size_t prd_quic_endpoint_num_conns(const prd_quic_endpoint *ep);

/* Connection. */
void *prd_quic_conn_user(const prd_quic_conn *qc);
void prd_quic_conn_set_user(prd_quic_conn *qc, void *ud);
const prd_sockaddr *prd_quic_conn_remote(const prd_quic_conn *qc);
/* prd_quic_conn_local: the local address of |qc|'s current path. */
const prd_sockaddr *prd_quic_conn_local(const prd_quic_conn *qc);
const char *prd_quic_conn_name(const prd_quic_conn *qc); /* "c12" */
int prd_quic_conn_is_authenticated(const prd_quic_conn *qc);
size_t prd_quic_conn_num_streams(const prd_quic_conn *qc);
int prd_quic_conn_peer_goaway(const prd_quic_conn *qc);
/* Liveness hint for the server's scheduler: 1 when the peer stopped
 * acknowledging (a PTO fired with nothing acknowledged since). */
int prd_quic_conn_suspect(const prd_quic_conn *qc);
/* prd_quic_conn_probe asks for an immediate ack-eliciting packet so that a
 * dead peer is noticed (prd_quic_conn_suspect) quickly. A lost probe is not
 * sent again by itself: call it again while the connection is suspect (the
 * silence still counts from the first unanswered one). */
void prd_quic_conn_probe(prd_quic_conn *qc);

/* prd_quic_conn_last_rx: when the last datagram of |qc| arrived. */
prd_tstamp prd_quic_conn_last_rx(const prd_quic_conn *qc);
/* prd_quic_conn_pto_ns: the connection's current probe timeout. */
uint64_t prd_quic_conn_pto_ns(prd_quic_conn *qc);

/* prd_quic_conn_on_timer handles the connection's expiry. */
void prd_quic_conn_on_timer(prd_quic_conn *qc);

/* prd_quic_conn_flush writes every packet the connection can send now. */
void prd_quic_conn_flush(prd_quic_conn *qc);

/* prd_quic_conn_close starts closing with application |code|: CONNECTION_
 * CLOSE is sent, streams are closed; callbacks.closed follows. */
void prd_quic_conn_close(prd_quic_conn *qc, uint64_t code, const char *reason);

/* prd_quic_conn_tofu_cert: client in trust-on-first-use mode without a pin:
 * the certificate the server presented (valid while |qc| lives). Returns 0,
 * or -1 when there is none. */
int prd_quic_conn_tofu_cert(const prd_quic_conn *qc, const uint8_t **pder,
                            size_t *plen);

/* prd_quic_conn_refuse closes with the transport error CONNECTION_REFUSED
 * (server at its client cap, spec/04-quic-profile.md §7). */
void prd_quic_conn_refuse(prd_quic_conn *qc, const char *reason);

/* prd_quic_conn_goaway sends GOAWAY(|code|) on the control stream. */
void prd_quic_conn_goaway(prd_quic_conn *qc, uint64_t code);

/* Stats for metrics. */
typedef struct prd_quic_conn_info {
  uint64_t rtt_ns;
  uint64_t cwnd;
  uint64_t bytes_in_flight;
  size_t max_udp_payload;
  /* Packets carrying STREAM frames (data and control streams) that ngtcp2
   * declared lost, spurious losses included, summed over every stream the
   * connection ever had. ngtcp2 0.12 keeps no per-connection loss counter:
   * packets with only ACK, crypto or other frames are not counted. */
  uint64_t lost_packets;
  /* Packets (datagrams, coalesced packets counted once) written, of every
   * kind: the denominator of a loss rate (spec/11-tcp-path.md §3.2). */
  uint64_t sent_packets;
} prd_quic_conn_info;
void prd_quic_conn_get_info(prd_quic_conn *qc, prd_quic_conn_info *info);

/* Streams. */

/* prd_quic_conn_services_negotiated: both ends do named services (HELLO and
 * AUTH_RESULT Flags bit 0, spec/02-framing.md §3.1, §3.4); known once the
 * connection is authenticated (0 before; set before callbacks.authenticated
 * runs, on both sides, and never changes afterwards). A client
 * authenticated without it serves "default" only: the relay warns once if
 * it was configured with other services. Without it the server opens only
 * streams of the service "default" at port offset 0 on |qc|, with no SERVICE or
 * PORT_OFFSET field (§4.4). */
int prd_quic_conn_services_negotiated(const prd_quic_conn *qc);

/* prd_quic_conn_client_name: server: the name the client authenticated as
 * (spec/03-auth.md §4.1), "default" for a client that sent none; NULL
 * before `authenticated`. Valid as long as |qc|. Client: its own name, or
 * NULL without one. */
const char *prd_quic_conn_client_name(const prd_quic_conn *qc);

/* Datagrams (RFC 9221, spec/10-udp.md). The transport parameter both ends
 * advertise when they do UDP services. */
#define PRD_DGRAM_FRAME_MAX 65535

/* prd_quic_conn_datagrams_ok: |qc| is authenticated, both ends negotiated
 * DATAGRAMS (HELLO and AUTH_RESULT Flags bit 2) and the peer's
 * max_datagram_frame_size allows DATAGRAM frames. */
int prd_quic_conn_datagrams_ok(const prd_quic_conn *qc);

/* prd_quic_conn_max_datagram: the largest payload one DATAGRAM frame can
 * carry on |qc|'s path now (spec/10-udp.md §5); 0 without datagrams. It
 * grows when path MTU discovery finds a larger path MTU. */
size_t prd_quic_conn_max_datagram(prd_quic_conn *qc);

/* prd_quic_conn_send_datagram queues |len| bytes (copied) as one DATAGRAM
 * frame; the write loop sends queued datagrams in turn with stream data,
 * never fragmented, never retransmitted. Returns 0, PRD_ERR_INVAL (no
 * datagrams on |qc|), PRD_ERR_FRAME_TOO_LARGE (larger than
 * prd_quic_conn_max_datagram: dropped and counted as drop_size),
 * PRD_ERR_NOBUF (the bounded queue is full: dropped, counted as
 * drop_queue) or PRD_ERR_NOMEM. */
int prd_quic_conn_send_datagram(prd_quic_conn *qc, const uint8_t *data,
                                size_t len);

typedef struct prd_quic_dgram_stats {
  uint64_t sent, sent_bytes; /* written into packets */
  uint64_t recv, recv_bytes; /* delivered to callbacks.datagram */
  uint64_t acked, lost;      /* the packets carrying them (loss stays) */
  uint64_t drop_size;        /* too large for the path (at queueing or later) */
  uint64_t drop_queue;       /* the send queue was full (congestion) */
  uint64_t drop_early; /* received before authentication or unnegotiated */
  uint64_t queued;     /* in the send queue now */
} prd_quic_dgram_stats;

/* prd_quic_conn_dgram_stats: |qc|'s datagram counters so far. */
void prd_quic_conn_dgram_stats(const prd_quic_conn *qc,
                               prd_quic_dgram_stats *s);

/* prd_qstream_open (server) opens a data stream and queues its header.
 * SERVICE and PORT_OFFSET are written when |hd| sets them (PORT_OFFSET 0 is
 * left out). Without services negotiated, a header naming a service other
 * than "default" or a non-zero port offset is refused with PRD_ERR_INVAL
 * (nothing is sent), and SERVICE "default" is left out (spec/02-framing.md
 * §4.4). Returns 0, PRD_ERR_QUIC when the peer's stream limit is reached
 * (wait for callbacks.streams_available), or another negative error. */
int prd_qstream_open(prd_qstream **pst, prd_quic_conn *qc,
                     const prd_stream_header *hd, void *user);

/* A stream's id, and the relay's pointer (its TCP side; NULL once
 * detached). */
int64_t prd_qstream_id(const prd_qstream *st);
void *prd_qstream_user(const prd_qstream *st);
void prd_qstream_set_user(prd_qstream *st, void *user);
/* prd_qstream_conn: the connection |st| belongs to. */
prd_quic_conn *prd_qstream_conn(const prd_qstream *st);

/* Sending. The send buffer holds the bytes from the first unacknowledged one
 * to the last written: bytes handed to ngtcp2 stay there until acknowledged.
 * Write with prd_qstream_reserve + _commit (read TCP
 * straight into the buffer) or prd_qstream_write (copy in), then call
 * prd_qstream_mark_ready. prd_qstream_send_space returns how many more bytes
 * the relay should buffer before pausing its TCP read. */

/* prd_qstream_reserve points |*pbuf| at |*pavail| >= |want| writable bytes
 * at the end of the send buffer. Returns 0 or PRD_ERR_NOMEM. */
int prd_qstream_reserve(prd_qstream *st, uint8_t **pbuf, size_t *pavail,
                        size_t want);
/* prd_qstream_commit appends the first |n| reserved bytes; 0 gives an unused
 * reservation back. */
void prd_qstream_commit(prd_qstream *st, size_t n);
/* prd_qstream_write copies |len| bytes in. Returns 0 or PRD_ERR_NOMEM. */
int prd_qstream_write(prd_qstream *st, const void *data, size_t len);

/* Byte counts from the start of the stream (its header included): written
 * into the send buffer, handed to QUIC, acknowledged by the peer. */
uint64_t prd_qstream_written(const prd_qstream *st);
uint64_t prd_qstream_sent(const prd_qstream *st);
uint64_t prd_qstream_acked(const prd_qstream *st);

/* prd_qstream_move_unacked copies the bytes of |src| from offset |skip| (or
 * its first unacknowledged byte, if later) to its last written one into
 * |dst|, and the FIN if |src| has one queued, then marks |dst| ready: a
 * stream moving to another connection (spec/04-quic-profile.md §7). |src|
 * is unchanged. Returns 0 or PRD_ERR_NOMEM. */
int prd_qstream_move_unacked(prd_qstream *dst, prd_qstream *src, uint64_t skip);

uint64_t prd_qstream_send_space(const prd_qstream *st);
void prd_qstream_mark_ready(prd_qstream *st);
/* prd_qstream_shutdown_write queues FIN after the buffered bytes. */
void prd_qstream_shutdown_write(prd_qstream *st);

/* prd_qstream_consumed returns |n| bytes of flow-control credit (they reached
 * the TCP socket). */
void prd_qstream_consumed(prd_qstream *st, size_t n);

/* prd_qstream_abort resets both directions with |app_err| (RESET_STREAM +
 * STOP_SENDING). */
void prd_qstream_abort(prd_qstream *st, uint64_t app_err);

/* prd_qstream_detach: the relay is done with |st| (its TCP side is closed).
 * If the stream is still open in ngtcp2 it stays until ngtcp2 closes it;
 * if it is already closed it is freed now. */
void prd_qstream_detach(prd_qstream *st);

/* TCP paths (spec/11-tcp-path.md): the relay owns the TCP connections and
 * their framing; the endpoint only hands it datagrams and takes datagrams
 * from it. */

/* prd_quic_path_tx_fn takes the datagrams an endpoint sends on path
 * (|local|, |remote|): |len| bytes in datagrams of |segsize| (the last may
 * be shorter). It returns -ENOENT when that path is not one of its TCP
 * paths (the datagrams then go out on UDP); otherwise |len|, datagrams that
 * did not fit its queue being dropped (spec/11-tcp-path.md §3.1). */
typedef ssize_t (*prd_quic_path_tx_fn)(prd_quic_endpoint *ep,
                                       const prd_sockaddr *local,
                                       const prd_sockaddr *remote,
                                       const uint8_t *data, size_t len,
                                       size_t segsize, void *arg);

/* prd_quic_endpoint_set_path_tx sends through |fn| first (NULL: UDP
 * only). Datagrams read from a TCP path go to
 * prd_quic_endpoint_deliver. */
void prd_quic_endpoint_set_path_tx(prd_quic_endpoint *ep,
                                   prd_quic_path_tx_fn fn, void *arg);

/* prd_quic_endpoint_path_in_use: 1 when a connection of |ep| that is not
 * closing uses path (|local|, |remote|) (authenticated: and has
 * authenticated), else 0. */
int prd_quic_endpoint_path_in_use(const prd_quic_endpoint *ep,
                                  const prd_sockaddr *local,
                                  const prd_sockaddr *remote,
                                  int authenticated);

/* Test seam: in-process tests (tests/unit/test_quic.c) join a server and a
 * client endpoint without the network. The programs never call these. */

/* prd_quic_transmit_fn takes the datagrams an endpoint would send on its
 * socket: |len| bytes in datagrams of |segsize| (the last may be shorter)
 * from |local| to |remote|. It returns |len|, or -EAGAIN with nothing sent
 * (the endpoint then waits for prd_quic_endpoint_on_writable). */
typedef ssize_t (*prd_quic_transmit_fn)(prd_quic_endpoint *ep,
                                        const prd_sockaddr *local,
                                        const prd_sockaddr *remote,
                                        const uint8_t *data, size_t len,
                                        size_t segsize, void *arg);

/* prd_quic_endpoint_set_transmit sends through |fn| instead of the socket
 * (NULL: the socket again). */
void prd_quic_endpoint_set_transmit(prd_quic_endpoint *ep,
                                    prd_quic_transmit_fn fn, void *arg);

/* prd_quic_endpoint_set_features sets the HELLO Flags bits that the
 * endpoint's connections implement from their next handshake on
 * (PRD_FLAG_SERVICES | PRD_FLAG_CLIENT_NAME by default; 0 makes it act as a
 * peer of the first text of spec/02: HELLO Flags 0, AUTH_RESULT without
 * Flags). */
void prd_quic_endpoint_set_features(prd_quic_endpoint *ep, uint64_t features);

/* prd_quic_conn_set_services: client: the services |qc| declares from now
 * on (prd_auth_update_services); an authenticated connection that
 * negotiated named services sends a new SERVICES frame. The names are
 * copied. Returns 0 or a negative PRD_ERR_*. */
int prd_quic_conn_set_services(prd_quic_conn *qc, const char *const *names,
                               size_t n);

/* prd_quic_endpoint_set_psk: the pre-shared key of the connections |ep|
 * makes from now on (a reload, README "Reload"); those under way keep
 * theirs. |psk| is borrowed: it must stay valid until the next call or
 * prd_quic_endpoint_del. */
void prd_quic_endpoint_set_psk(prd_quic_endpoint *ep, const uint8_t *psk,
                               size_t psklen);

/* prd_quic_endpoint_deliver processes one datagram from |remote| to |local|
 * as if the socket had received it (also a TCP path's records). */
void prd_quic_endpoint_deliver(prd_quic_endpoint *ep, const prd_sockaddr *local,
                               const prd_sockaddr *remote, const uint8_t *pkt,
                               size_t len);

#endif
