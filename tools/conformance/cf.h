/* SPDX-License-Identifier: GPL-3.0-only */
/* prd-conformance: shared declarations of the QUIC peer driver (peer.c), the
 * report writer (report.c) and the test tables (server_tests.c).
 *
 * The tool is a test peer, not a layer of the product: it drives ngtcp2 and
 * GnuTLS itself so that it can send what our own stack never would, and uses
 * src/codec and src/auth only to encode well-formed frames and MACs. */
#ifndef PRD_CF_H
#define PRD_CF_H

#include <netinet/in.h>
#include <ngtcp2/ngtcp2.h>
#include <ngtcp2/ngtcp2_crypto.h>
#include <gnutls/gnutls.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "codec/codec.h"

#define CF_MAX_STREAMS 16
#define CF_STREAM_RX_MAX 65536
#define CF_CTRL_MAX 8192
#define CF_MAX_FRAMES 16
#define CF_MAX_DGRAMS 8

/* ---- options ---------------------------------------------------------- */

typedef struct cf_opts {
  struct sockaddr_storage target;
  socklen_t targetlen;
  struct sockaddr_storage tcp; /* --tcp: the server's user port */
  socklen_t tcplen;
  int have_tcp;
  /* --service-tcp NAME=HOST:PORT: the user port of a second service */
  char svc_name[64];
  struct sockaddr_storage svc_tcp;
  socklen_t svc_tcplen;
  int have_svc_tcp;
  /* --client NAME:PSKFILE: a client name the server knows, and its key
   * (spec/03-auth.md §4.1); enables the client name tests */
  char client_name[PRD_CLIENT_NAME_MAX + 1];
  uint8_t client_psk[1024];
  size_t client_psklen;
  int have_client;
  /* --service-udp NAME=HOST:PORT: the server has the UDP service NAME
   * (spec/10-udp.md), users send to HOST:PORT */
  char svc_udp_name[64];
  struct sockaddr_storage svc_udp;
  socklen_t svc_udplen;
  int have_svc_udp;
  /* --tcp-path HOST:PORT: the server's TCP path (spec/11-tcp-path.md) */
  struct sockaddr_storage tcp_path;
  socklen_t tcp_pathlen;
  int have_tcp_path;
  const char *bind; /* --bind: local address for QUIC connections */
  uint8_t psk[1024];
  size_t psklen;
  uint8_t *cert; /* --server-cert: DER of the expected certificate */
  size_t certlen;
  double auth_timeout_s; /* the server's deadline (--auth-timeout) */
  double timeout_s;      /* per-step timeout (--timeout) */
  int verbose;
} cf_opts;

extern cf_opts cf_opt;

/* ---- QUIC peer (client side of a connection to the server under test) */

typedef enum cf_close_kind {
  CF_OPEN = 0,
  CF_CLOSED_APP,       /* peer sent CONNECTION_CLOSE 0x1d */
  CF_CLOSED_TRANSPORT, /* peer sent CONNECTION_CLOSE 0x1c */
  CF_CLOSED_IDLE,
  CF_CLOSED_HS_TIMEOUT,
  CF_CLOSED_RESET, /* stateless reset */
  CF_CLOSED_LOCAL  /* our own stack gave up (see reason) */
} cf_close_kind;

typedef struct cf_stream {
  int64_t id;
  uint8_t rx[CF_STREAM_RX_MAX];
  size_t rxlen;
  uint64_t rxtotal; /* all bytes received, also those not kept in rx */
  int rx_fin;
  int reset, stop;
  uint64_t reset_code, stop_code;
  int closed;
  int we_shut_wr; /* we sent FIN or RESET_STREAM on it */
  uint8_t tx[4096];
  size_t txlen, txsent;
  int tx_fin; /* 1 queued, 2 sent */
} cf_stream;

typedef struct cf_conn_opts {
  const char *alpn;         /* comma-separated list; NULL: portredirect/1 */
  const char *priority;     /* GnuTLS priority string; NULL: the default */
  const char *sni;          /* NULL: none */
  int no_ctrl;              /* do not open stream 0 at handshake completion */
  uint64_t max_udp_payload; /* our max_udp_payload_size; 0: the default */
  uint64_t max_dgram_frame; /* our max_datagram_frame_size; 0: none */
} cf_conn_opts;

typedef struct cf_peer {
  struct cf_peer *next;
  int fd;
  ngtcp2_conn *conn;
  ngtcp2_crypto_conn_ref ref;
  gnutls_session_t tls;
  gnutls_certificate_credentials_t cred;
  struct sockaddr_storage local, remote;
  socklen_t locallen, remotelen;
  int is_server;      /* client role: we play the server */
  int client_streams; /* streams the client opened besides stream 0 */
  uint64_t t_start, t_hs;
  int hs_done;
  int cert_mismatch;   /* the server's certificate is not --server-cert */
  int cert_requested;  /* the server sent CertificateRequest */
  size_t max_rx_dgram; /* the largest datagram received */
  uint8_t exporter[32];
  int no_ctrl;
  /* control stream */
  int64_t ctrl;
  uint8_t ctrl_tx[CF_CTRL_MAX];
  size_t ctrl_txlen, ctrl_txsent;
  int ctrl_fin;   /* 1 queued, 2 sent */
  int ctrl_reset; /* 1: send RESET_STREAM, 2: STOP_SENDING */
  uint8_t ctrl_rx[CF_CTRL_MAX];
  size_t ctrl_rxlen, ctrl_rxpos;
  prd_frame frames[CF_MAX_FRAMES]; /* server's control frames, in order */
  int nframes;
  int ctrl_bad; /* the server sent a malformed control frame */
  /* the Flags of the HELLO sent (cf_send_hello): the server's frames are
   * decoded with them (spec/02-framing.md §3.4: AUTH_RESULT Flags only in
   * reply to HELLO Flags other than 0, and only bits offered) */
  uint64_t hello_flags;
  /* DATAGRAM frames (spec/10-udp.md): the first CF_MAX_DGRAMS received,
   * and one to send (cf_dgram_send) */
  uint8_t dgram_rx[CF_MAX_DGRAMS][2048];
  size_t dgram_rxlen[CF_MAX_DGRAMS];
  int ndgram_rx;
  uint8_t dgram_tx[2048];
  size_t dgram_txlen;
  /* data streams opened by the server */
  cf_stream *streams[CF_MAX_STREAMS];
  int nstreams;
  /* outcome */
  cf_close_kind closed;
  uint64_t close_code;
  uint64_t t_close;
  char reason[128];
} cf_peer;

/* cf_peer_new starts a connection to cf_opt.target; NULL on a local
 * failure (printed). */
cf_peer *cf_peer_new(const cf_conn_opts *o);
void cf_peer_del(cf_peer *p);
/* cf_run services every live peer until |until(arg)| returns non-zero or
 * |seconds| pass; returns the predicate's last value. |until| may be NULL. */
int cf_run(double seconds, int (*until)(void *), void *arg);
/* cf_ctrl_send queues raw bytes on stream 0 (opening it if needed). */
void cf_ctrl_send(cf_peer *p, const void *data, size_t len);
/* cf_ctrl_frame encodes |fr| with src/codec and queues it. */
void cf_ctrl_frame(cf_peer *p, const prd_frame *fr);
/* cf_find_frame returns the first received control frame of |type|. */
const prd_frame *cf_find_frame(const cf_peer *p, uint64_t type);
cf_stream *cf_stream_of(cf_peer *p, int64_t id);
/* cf_stream_send queues bytes (and FIN) on a server-opened stream. */
void cf_stream_send(cf_peer *p, cf_stream *s, const void *data, size_t len,
                    int fin);
/* cf_dgram_send queues one DATAGRAM frame (replacing one not yet sent). */
void cf_dgram_send(cf_peer *p, const void *data, size_t len);
/* cf_stream_reset sends RESET_STREAM and STOP_SENDING with |code|. */
void cf_stream_reset(cf_peer *p, cf_stream *s, uint64_t code);
/* cf_peer_close sends CONNECTION_CLOSE(NO_ERROR) if still open. */
void cf_peer_close(cf_peer *p);
double cf_since_hs(const cf_peer *p, uint64_t t);
uint64_t cf_now(void);
/* Remote transport parameters, NULL before the handshake. */
const ngtcp2_transport_params *cf_remote_params(cf_peer *p);

/* For the server side (client_role.c). */
extern cf_peer *g_peers;
extern const ngtcp2_callbacks cf_client_cbs;
void cf_flush(cf_peer *p);
void cf_on_error(cf_peer *p, int rv);
void cf_mark_closed(cf_peer *p, cf_close_kind k);
ngtcp2_conn *cf_get_conn(ngtcp2_crypto_conn_ref *ref);
void cf_rnd(void *buf, size_t len);
/* cf_log_printf is ngtcp2's log_printf (-v); its formats come from ngtcp2. */
void cf_log_printf(void *user_data, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Helpers built on the above (peer.c). */
int cf_wait_hs(cf_peer *p); /* 1 when the handshake completed */
int cf_wait_closed(cf_peer *p, double seconds);
int cf_wait_frame(cf_peer *p, uint64_t type, double seconds);
/* cf_authenticate: HELLO, AUTH_CHALLENGE, AUTH_RESPONSE, AUTH_RESULT;
 * returns the Status, or -1 when no AUTH_RESULT came. */
int cf_authenticate(cf_peer *p);
void cf_send_hello(cf_peer *p, uint64_t version, uint64_t flags);
void cf_send_response(cf_peer *p, const uint8_t *psk, size_t psklen,
                      const uint8_t *exporter);
/* cf_describe writes what happened to |p| ("closed by the server with
 * application error 0x2 PROTOCOL_ERROR", "still open", ...). */
void cf_describe(const cf_peer *p, char *buf, size_t len);

/* ---- tests and report ------------------------------------------------- */

typedef enum cf_verdict { CF_PASS, CF_FAIL, CF_SKIP } cf_verdict;

typedef struct cf_result {
  cf_verdict v;
  char diag[512];
} cf_result;

typedef struct cf_test {
  const char *id;    /* stable id cited by spec/conformance.md */
  const char *file;  /* "spec/02-framing.md" */
  const char *sec;   /* "§3.1" */
  const char *level; /* "MUST", "MUST NOT", "SHOULD" */
  const char *title;
  int needs_tcp;
  void (*fn)(cf_result *r, const void *arg);
  const void *arg;
} cf_test;

extern const cf_test cf_server_tests[];
extern const size_t cf_server_ntests;
extern const cf_test cf_client_tests[];
extern const size_t cf_client_ntests;
/* cf_client_setup loads or makes the identity in |config_dir| and listens
 * on cf_opt.target; -1 after printing why not. */
int cf_client_setup(const char *listen, const char *config_dir);

/* cf_fail and cf_skip set the verdict and a printf-style diagnostic. */
void cf_fail(cf_result *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void cf_skip(cf_result *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* report.c */
typedef struct cf_known {
  const char *id;
  const char *why;
} cf_known;

int cf_report_run(const cf_test *tests, size_t ntests, const char *filter,
                  int tap, const char *junit, const cf_known *known,
                  size_t nknown, const char *suite);

#endif
