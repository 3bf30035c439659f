/* SPDX-License-Identifier: GPL-3.0-only */
/* prd-conformance: a QUIC client on ngtcp2 + GnuTLS that connects to the
 * server under test and sends whatever bytes a test asks for on stream 0
 * and on the data streams the server opens (spec/02-framing.md §1). */
#include <arpa/inet.h>
#include <errno.h>
#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <gnutls/x509.h>
#include <ngtcp2/ngtcp2_crypto.h>
#include <ngtcp2/ngtcp2_crypto_gnutls.h>
#include <ngtcp2/version.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "auth/auth.h"
#include "cf.h"

/* The two ngtcp2 API generations (0.12 in Debian 12, 1.x later) differ in
 * the few calls below. */
#if NGTCP2_VERSION_NUM >= 0x010000
#  define CF_SHUTDOWN_STREAM(c, s, e) ngtcp2_conn_shutdown_stream(c, 0, s, e)
#  define CF_SHUTDOWN_STREAM_READ(c, s, e)                                     \
    ngtcp2_conn_shutdown_stream_read(c, 0, s, e)
#  define CF_TYPE_APP NGTCP2_CCERR_TYPE_APPLICATION
static void cf_get_ccerr(ngtcp2_conn *c, uint64_t *code, int *type,
                         const uint8_t **reason, size_t *reasonlen) {
  const ngtcp2_ccerr *e = ngtcp2_conn_get_ccerr(c);
  *code = e->error_code;
  *type = (int)e->type;
  *reason = e->reason;
  *reasonlen = e->reasonlen;
}
static ngtcp2_ssize cf_write_close(ngtcp2_conn *c, ngtcp2_path *path,
                                   ngtcp2_pkt_info *pi, uint8_t *buf,
                                   size_t len, uint64_t ts) {
  ngtcp2_ccerr e;
  ngtcp2_ccerr_default(&e);
  ngtcp2_ccerr_set_application_error(&e, 0, NULL, 0);
  return ngtcp2_conn_write_connection_close(c, path, pi, buf, len, &e, ts);
}
#else
#  define CF_SHUTDOWN_STREAM(c, s, e) ngtcp2_conn_shutdown_stream(c, s, e)
#  define CF_SHUTDOWN_STREAM_READ(c, s, e)                                     \
    ngtcp2_conn_shutdown_stream_read(c, s, e)
#  define CF_TYPE_APP NGTCP2_CONNECTION_CLOSE_ERROR_CODE_TYPE_APPLICATION
static void cf_get_ccerr(ngtcp2_conn *c, uint64_t *code, int *type,
                         const uint8_t **reason, size_t *reasonlen) {
  ngtcp2_connection_close_error e;
  ngtcp2_conn_get_connection_close_error(c, &e);
  *code = e.error_code;
  *type = (int)e.type;
  *reason = e.reason;
  *reasonlen = e.reasonlen;
}
static ngtcp2_ssize cf_write_close(ngtcp2_conn *c, ngtcp2_path *path,
                                   ngtcp2_pkt_info *pi, uint8_t *buf,
                                   size_t len, uint64_t ts) {
  ngtcp2_connection_close_error e;
  ngtcp2_connection_close_error_set_application_error(&e, 0, NULL, 0);
  return ngtcp2_conn_write_connection_close(c, path, pi, buf, len, &e, ts);
}
#endif

static const char DEFAULT_PRIORITY[] =
    "NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+AES-128-GCM:+AES-256-GCM:"
    "+CHACHA20-POLY1305:-GROUP-ALL:+GROUP-X25519:+GROUP-SECP256R1:"
    "+GROUP-SECP384R1:%DISABLE_TLS13_COMPAT_MODE";

cf_peer *g_peers; /* live peers, serviced by cf_run */

uint64_t cf_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

double cf_since_hs(const cf_peer *p, uint64_t t) {
  return p->t_hs == 0 ? -1.0 : (double)(int64_t)(t - p->t_hs) / 1e9;
}

void cf_rnd(void *buf, size_t len) {
  if (gnutls_rnd(GNUTLS_RND_RANDOM, buf, len) != 0) {
    abort();
  }
}

/* ngtcp2's log_printf: its format strings come from ngtcp2 itself. */
void cf_log_printf(void *user_data, const char *fmt, ...) {
  va_list ap;
  (void)user_data;
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
}

void cf_mark_closed(cf_peer *p, cf_close_kind k) {
  if (p->closed == CF_OPEN) {
    p->closed = k;
    p->t_close = cf_now();
  }
}

/* The server's control frames, decoded with src/codec as they complete. */
static void parse_ctrl(cf_peer *p) {
  while (!p->ctrl_bad && p->ctrl_rxpos < p->ctrl_rxlen) {
    prd_frame fr;
    prd_ssize n =
        prd_frame_decode_ex(&fr, p->ctrl_rx + p->ctrl_rxpos,
                            p->ctrl_rxlen - p->ctrl_rxpos, p->hello_flags);
    if (n == PRD_ERR_NEED_MORE) {
      return;
    }
    if (n < 0) {
      p->ctrl_bad = 1;
      return;
    }
    p->ctrl_rxpos += (size_t)n;
    if (p->nframes < CF_MAX_FRAMES) {
      p->frames[p->nframes++] = fr;
    }
  }
}

/* ---- ngtcp2 callbacks ------------------------------------------------- */

ngtcp2_conn *cf_get_conn(ngtcp2_crypto_conn_ref *ref) {
  cf_peer *p = ref->user_data;
  return p->conn;
}

static void cb_rand(uint8_t *dest, size_t destlen, const ngtcp2_rand_ctx *c) {
  (void)c;
  cf_rnd(dest, destlen);
}

static int cb_get_new_cid(ngtcp2_conn *conn, ngtcp2_cid *cid, uint8_t *token,
                          size_t cidlen, void *user_data) {
  uint8_t buf[NGTCP2_MAX_CIDLEN];
  (void)conn;
  (void)user_data;
  cf_rnd(buf, cidlen);
  ngtcp2_cid_init(cid, buf, cidlen);
  cf_rnd(token, NGTCP2_STATELESS_RESET_TOKENLEN);
  return 0;
}

static int cb_handshake_completed(ngtcp2_conn *conn, void *user_data) {
  cf_peer *p = user_data;
  p->hs_done = 1;
  p->t_hs = cf_now();
  /* spec/03-auth.md §2 */
  if (gnutls_prf_rfc5705(p->tls, sizeof(PRD_AUTH_EXPORTER_LABEL) - 1,
                         PRD_AUTH_EXPORTER_LABEL, 0, NULL, 32,
                         (char *)p->exporter) != 0) {
    return NGTCP2_ERR_CALLBACK_FAILURE;
  }
  if (!p->is_server && !p->no_ctrl && p->ctrl < 0 &&
      ngtcp2_conn_open_bidi_stream(conn, &p->ctrl, NULL) != 0) {
    return NGTCP2_ERR_CALLBACK_FAILURE;
  }
  return 0;
}

cf_stream *cf_stream_of(cf_peer *p, int64_t id) {
  for (int i = 0; i < p->nstreams; ++i) {
    if (p->streams[i]->id == id) {
      return p->streams[i];
    }
  }
  return NULL;
}

static int cb_stream_open(ngtcp2_conn *conn, int64_t id, void *user_data) {
  cf_peer *p = user_data;
  cf_stream *s;
  (void)conn;
  if (p->is_server && id % 4 == 0) {
    /* Client-initiated bidi: stream 0 is the control stream, any other
     * is counted (spec/02-framing.md §1.1). */
    if (id == 0 && p->ctrl < 0) {
      p->ctrl = 0;
    } else {
      ++p->client_streams;
    }
    return 0;
  }
  if (id == p->ctrl || p->nstreams >= CF_MAX_STREAMS) {
    return 0;
  }
  s = calloc(1, sizeof(*s));
  if (s == NULL) {
    return NGTCP2_ERR_CALLBACK_FAILURE;
  }
  s->id = id;
  p->streams[p->nstreams++] = s;
  return 0;
}

static int cb_recv_stream_data(ngtcp2_conn *conn, uint32_t flags, int64_t id,
                               uint64_t offset, const uint8_t *data,
                               size_t datalen, void *user_data,
                               void *stream_user_data) {
  cf_peer *p = user_data;
  cf_stream *s;
  (void)offset;
  (void)stream_user_data;
  ngtcp2_conn_extend_max_stream_offset(conn, id, datalen);
  ngtcp2_conn_extend_max_offset(conn, datalen);
  if (id == p->ctrl) {
    size_t n = datalen;
    if (n > sizeof(p->ctrl_rx) - p->ctrl_rxlen) {
      n = sizeof(p->ctrl_rx) - p->ctrl_rxlen;
    }
    if (n) { /* a FIN alone comes with no data pointer */
      memcpy(p->ctrl_rx + p->ctrl_rxlen, data, n);
      p->ctrl_rxlen += n;
    }
    parse_ctrl(p);
    return 0;
  }
  s = cf_stream_of(p, id);
  if (s == NULL) {
    return 0;
  }
  s->rxtotal += datalen;
  if (datalen > sizeof(s->rx) - s->rxlen) {
    datalen = sizeof(s->rx) - s->rxlen;
  }
  if (datalen) {
    memcpy(s->rx + s->rxlen, data, datalen);
    s->rxlen += datalen;
  }
  if (flags & NGTCP2_STREAM_DATA_FLAG_FIN) {
    s->rx_fin = 1;
  }
  return 0;
}

static int cb_acked(ngtcp2_conn *conn, int64_t id, uint64_t offset,
                    uint64_t datalen, void *user_data, void *sud) {
  (void)conn;
  (void)id;
  (void)offset;
  (void)datalen;
  (void)user_data;
  (void)sud;
  return 0; /* every send buffer lives as long as the peer */
}

static int cb_recv_datagram(ngtcp2_conn *conn, uint32_t flags,
                            const uint8_t *data, size_t datalen,
                            void *user_data) {
  cf_peer *p = user_data;
  (void)conn;
  (void)flags;
  if (p->ndgram_rx < CF_MAX_DGRAMS && datalen <= sizeof(p->dgram_rx[0])) {
    memcpy(p->dgram_rx[p->ndgram_rx], data, datalen);
    p->dgram_rxlen[p->ndgram_rx++] = datalen;
  }
  return 0;
}

void cf_dgram_send(cf_peer *p, const void *data, size_t len) {
  if (len <= sizeof(p->dgram_tx)) {
    memcpy(p->dgram_tx, data, len);
    p->dgram_txlen = len;
    cf_flush(p);
  }
}

static int cb_stream_reset(ngtcp2_conn *conn, int64_t id, uint64_t final_size,
                           uint64_t code, void *user_data, void *sud) {
  cf_stream *s = cf_stream_of(user_data, id);
  (void)conn;
  (void)final_size;
  (void)sud;
  if (s && !s->reset) {
    s->reset = 1;
    s->reset_code = code;
  }
  return 0;
}

static int cb_stream_stop_sending(ngtcp2_conn *conn, int64_t id, uint64_t code,
                                  void *user_data, void *sud) {
  cf_stream *s = cf_stream_of(user_data, id);
  (void)conn;
  (void)sud;
  if (s && !s->stop) {
    s->stop = 1;
    s->stop_code = code;
  }
  return 0;
}

static int cb_stream_close(ngtcp2_conn *conn, uint32_t flags, int64_t id,
                           uint64_t code, void *user_data, void *sud) {
  cf_stream *s = cf_stream_of(user_data, id);
  (void)conn;
  (void)flags;
  (void)code;
  (void)sud;
  if (s) {
    s->closed = 1;
    /* Our sending part can only have ended without us through the peer's
     * STOP_SENDING (the stack then resets it, RFC 9000 §3.5). ngtcp2 0.12
     * does not call stream_stop_sending when RESET_STREAM came first in
     * the same packet, so this is how the STOP_SENDING is seen then, with
     * the stream's error code as ngtcp2 reports it at close. */
    if (!s->stop && !s->we_shut_wr) {
      s->stop = 1;
      s->stop_code = code;
    }
  }
  return 0;
}

static int cb_recv_stateless_reset(ngtcp2_conn *conn,
                                   const ngtcp2_pkt_stateless_reset *sr,
                                   void *user_data) {
  (void)conn;
  (void)sr;
  cf_mark_closed(user_data, CF_CLOSED_RESET);
  return 0;
}

const ngtcp2_callbacks cf_client_cbs = {
    .client_initial = ngtcp2_crypto_client_initial_cb,
    .recv_crypto_data = ngtcp2_crypto_recv_crypto_data_cb,
    .handshake_completed = cb_handshake_completed,
    .encrypt = ngtcp2_crypto_encrypt_cb,
    .decrypt = ngtcp2_crypto_decrypt_cb,
    .hp_mask = ngtcp2_crypto_hp_mask_cb,
    .recv_stream_data = cb_recv_stream_data,
    .acked_stream_data_offset = cb_acked,
    .stream_open = cb_stream_open,
    .stream_close = cb_stream_close,
    .recv_stateless_reset = cb_recv_stateless_reset,
    .recv_retry = ngtcp2_crypto_recv_retry_cb,
    .rand = cb_rand,
    .get_new_connection_id = cb_get_new_cid,
    .update_key = ngtcp2_crypto_update_key_cb,
    .stream_reset = cb_stream_reset,
    .stream_stop_sending = cb_stream_stop_sending,
    .recv_datagram = cb_recv_datagram,
    .delete_crypto_aead_ctx = ngtcp2_crypto_delete_crypto_aead_ctx_cb,
    .delete_crypto_cipher_ctx = ngtcp2_crypto_delete_crypto_cipher_ctx_cb,
    .get_path_challenge_data = ngtcp2_crypto_get_path_challenge_data_cb,
    .version_negotiation = ngtcp2_crypto_version_negotiation_cb,
};

/* ---- TLS -------------------------------------------------------------- */

/* The server's leaf certificate must be --server-cert, byte for byte
 * (spec/03-auth.md §8.1 check 2); the signature is checked by GnuTLS. */
static int verify_cert(gnutls_session_t s) {
  ngtcp2_crypto_conn_ref *ref = gnutls_session_get_ptr(s);
  cf_peer *p = ref->user_data;
  unsigned n = 0;
  const gnutls_datum_t *certs = gnutls_certificate_get_peers(s, &n);
  if (cf_opt.cert == NULL) {
    return 0;
  }
  if (certs == NULL || n == 0 || certs[0].size != cf_opt.certlen ||
      memcmp(certs[0].data, cf_opt.cert, cf_opt.certlen) != 0) {
    p->cert_mismatch = 1;
    return GNUTLS_E_CERTIFICATE_ERROR;
  }
  return 0;
}

/* Called only when the server sends CertificateRequest (spec/04 §1). */
static int retrieve_cert(gnutls_session_t s, const gnutls_datum_t *req_ca_rdn,
                         int nreqs, const gnutls_pk_algorithm_t *pk_algos,
                         int pk_algos_length, gnutls_pcert_st **pcert,
                         unsigned int *pcert_length, gnutls_privkey_t *pkey) {
  ngtcp2_crypto_conn_ref *ref = gnutls_session_get_ptr(s);
  cf_peer *p = ref->user_data;
  (void)req_ca_rdn;
  (void)nreqs;
  (void)pk_algos;
  (void)pk_algos_length;
  p->cert_requested = 1;
  *pcert = NULL;
  *pcert_length = 0;
  *pkey = NULL;
  return 0;
}

static int tls_new(cf_peer *p, const cf_conn_opts *o) {
  gnutls_datum_t alpn[8];
  char alpnbuf[256];
  unsigned nalpn = 0;
  const char *err = NULL;

  if (gnutls_certificate_allocate_credentials(&p->cred) != 0) {
    return -1;
  }
  gnutls_certificate_set_verify_function(p->cred, verify_cert);
  gnutls_certificate_set_retrieve_function2(p->cred, retrieve_cert);
  if (gnutls_init(&p->tls, GNUTLS_CLIENT | GNUTLS_NO_END_OF_EARLY_DATA) != 0 ||
      ngtcp2_crypto_gnutls_configure_client_session(p->tls) != 0 ||
      gnutls_priority_set_direct(
          p->tls, o->priority ? o->priority : DEFAULT_PRIORITY, &err) != 0 ||
      gnutls_credentials_set(p->tls, GNUTLS_CRD_CERTIFICATE, p->cred) != 0) {
    return -1;
  }
  snprintf(alpnbuf, sizeof(alpnbuf), "%s", o->alpn ? o->alpn : PRD_ALPN);
  for (char *tok = strtok(alpnbuf, ","); tok && nalpn < 8;
       tok = strtok(NULL, ",")) {
    alpn[nalpn].data = (unsigned char *)tok;
    alpn[nalpn].size = (unsigned)strlen(tok);
    ++nalpn;
  }
  /* Not MANDATORY: a test that offers a wrong ALPN wants to see what the
   * server does about it. */
  if (gnutls_alpn_set_protocols(p->tls, alpn, nalpn, 0) != 0) {
    return -1;
  }
  if (o->sni && gnutls_server_name_set(p->tls, GNUTLS_NAME_DNS, o->sni,
                                       strlen(o->sni)) != 0) {
    return -1;
  }
  p->ref.get_conn = cf_get_conn;
  p->ref.user_data = p;
  gnutls_session_set_ptr(p->tls, &p->ref);
  ngtcp2_conn_set_tls_native_handle(p->conn, p->tls);
  return 0;
}

/* ---- connection ------------------------------------------------------- */

cf_peer *cf_peer_new(const cf_conn_opts *o) {
  static const cf_conn_opts defaults;
  cf_peer *p = calloc(1, sizeof(*p));
  ngtcp2_settings s;
  ngtcp2_transport_params tp;
  ngtcp2_cid scid, dcid;
  ngtcp2_path path;
  uint8_t buf[16];

  if (o == NULL) {
    o = &defaults;
  }
  if (p == NULL) {
    return NULL;
  }
  p->ctrl = -1;
  p->no_ctrl = o->no_ctrl;
  p->t_start = cf_now();
  p->fd = socket(cf_opt.target.ss_family,
                 SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (p->fd < 0) {
    fprintf(stderr, "prd-conformance: socket: %s\n", strerror(errno));
    free(p);
    return NULL;
  }
  if (cf_opt.bind) {
    struct sockaddr_storage la;
    struct sockaddr_in *in = (struct sockaddr_in *)&la;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&la;
    memset(&la, 0, sizeof(la));
    la.ss_family = cf_opt.target.ss_family;
    if ((la.ss_family == AF_INET &&
         inet_pton(AF_INET, cf_opt.bind, &in->sin_addr) != 1) ||
        (la.ss_family == AF_INET6 &&
         inet_pton(AF_INET6, cf_opt.bind, &in6->sin6_addr) != 1) ||
        bind(p->fd, (struct sockaddr *)&la,
             la.ss_family == AF_INET ? sizeof(*in) : sizeof(*in6)) != 0) {
      fprintf(stderr, "prd-conformance: cannot bind to '%s'\n", cf_opt.bind);
      close(p->fd);
      free(p);
      return NULL;
    }
  }
  if (connect(p->fd, (struct sockaddr *)&cf_opt.target, cf_opt.targetlen) !=
      0) {
    fprintf(stderr, "prd-conformance: connect: %s\n", strerror(errno));
    close(p->fd);
    free(p);
    return NULL;
  }
  p->locallen = sizeof(p->local);
  getsockname(p->fd, (struct sockaddr *)&p->local, &p->locallen);
  p->remote = cf_opt.target;
  p->remotelen = cf_opt.targetlen;

  ngtcp2_settings_default(&s);
  s.initial_ts = cf_now();
  s.max_tx_udp_payload_size = 1452;
  s.handshake_timeout = (uint64_t)(cf_opt.timeout_s * NGTCP2_SECONDS);
  if (cf_opt.verbose) {
    s.log_printf = cf_log_printf; /* -v: ngtcp2's own frame log */
  }
  ngtcp2_transport_params_default(&tp);
  /* spec/04-quic-profile.md §2: the client lets the server open data
   * streams and opens none but stream 0 itself. */
  tp.initial_max_stream_data_bidi_local = 1 << 20;
  tp.initial_max_stream_data_bidi_remote = 1 << 20;
  tp.initial_max_data = 16 << 20;
  tp.initial_max_streams_bidi = 64;
  tp.initial_max_streams_uni = 0;
  tp.max_idle_timeout = 30 * NGTCP2_SECONDS;
  tp.active_connection_id_limit = 4;
  if (o->max_udp_payload) {
    tp.max_udp_payload_size = o->max_udp_payload;
  }
  tp.max_datagram_frame_size = o->max_dgram_frame;
  cf_rnd(buf, sizeof(buf));
  ngtcp2_cid_init(&scid, buf, 16);
  cf_rnd(buf, sizeof(buf));
  ngtcp2_cid_init(&dcid, buf, 16);
  path.local.addr = (ngtcp2_sockaddr *)&p->local;
  path.local.addrlen = p->locallen;
  path.remote.addr = (ngtcp2_sockaddr *)&cf_opt.target;
  path.remote.addrlen = cf_opt.targetlen;
  path.user_data = NULL;
  if (ngtcp2_conn_client_new(&p->conn, &dcid, &scid, &path, NGTCP2_PROTO_VER_V1,
                             &cf_client_cbs, &s, &tp, NULL, p) != 0 ||
      tls_new(p, o) != 0) {
    fprintf(stderr, "prd-conformance: cannot set up a QUIC connection\n");
    cf_peer_del(p);
    return NULL;
  }
  p->next = g_peers;
  g_peers = p;
  return p;
}

void cf_peer_del(cf_peer *p) {
  if (p == NULL) {
    return;
  }
  for (cf_peer **pp = &g_peers; *pp; pp = &(*pp)->next) {
    if (*pp == p) {
      *pp = p->next;
      break;
    }
  }
  if (p->conn) {
    ngtcp2_conn_del(p->conn);
  }
  if (p->tls) {
    gnutls_deinit(p->tls);
  }
  if (p->cred) {
    gnutls_certificate_free_credentials(p->cred);
  }
  if (p->fd >= 0) {
    close(p->fd);
  }
  for (int i = 0; i < p->nstreams; ++i) {
    free(p->streams[i]);
  }
  free(p);
}

void cf_on_error(cf_peer *p, int rv) {
  uint64_t code;
  int type;
  const uint8_t *reason;
  size_t reasonlen;

  switch (rv) {
  case NGTCP2_ERR_DRAINING:
  case NGTCP2_ERR_CLOSING:
    cf_get_ccerr(p->conn, &code, &type, &reason, &reasonlen);
    p->close_code = code;
    /* The reason phrase is network bytes: only printable ASCII is kept. */
    for (size_t i = 0; i < reasonlen && i + 1 < sizeof(p->reason); ++i) {
      p->reason[i] =
          reason[i] >= 0x20 && reason[i] < 0x7f ? (char)reason[i] : '?';
      p->reason[i + 1] = '\0';
    }
    cf_mark_closed(p,
                   type == CF_TYPE_APP ? CF_CLOSED_APP : CF_CLOSED_TRANSPORT);
    break;
  case NGTCP2_ERR_IDLE_CLOSE:
    cf_mark_closed(p, CF_CLOSED_IDLE);
    break;
  case NGTCP2_ERR_HANDSHAKE_TIMEOUT:
    cf_mark_closed(p, CF_CLOSED_HS_TIMEOUT);
    break;
  default:
    snprintf(p->reason, sizeof(p->reason), "%s", ngtcp2_strerror(rv));
    cf_mark_closed(p, CF_CLOSED_LOCAL);
    break;
  }
}

void cf_flush(cf_peer *p) {
  uint8_t buf[1500];
  ngtcp2_path_storage ps;
  ngtcp2_pkt_info pi;
  uint64_t ts = cf_now();

  if (p->closed) {
    return;
  }
  if (p->ctrl >= 0 && p->ctrl_reset == 1) {
    p->ctrl_reset = 0;
    CF_SHUTDOWN_STREAM(p->conn, p->ctrl, PRD_APP_NO_ERROR);
  } else if (p->ctrl >= 0 && p->ctrl_reset == 2) {
    p->ctrl_reset = 0;
    CF_SHUTDOWN_STREAM_READ(p->conn, p->ctrl, PRD_APP_NO_ERROR);
  }
  ngtcp2_path_storage_zero(&ps);
  for (int guard = 0; guard < 1024; ++guard) {
    ngtcp2_vec vec = {NULL, 0};
    ngtcp2_ssize nd = -1, nw;
    int64_t sid = -1;
    uint32_t flags = 0;
    cf_stream *s = NULL;

    if (p->dgram_txlen && p->hs_done) {
      /* One DATAGRAM frame, alone or with what else is due. */
      ngtcp2_vec dv = {p->dgram_tx, p->dgram_txlen};
      int accepted = 0;
      nw = ngtcp2_conn_writev_datagram(
          p->conn, &ps.path, &pi, buf, sizeof(buf), &accepted,
          NGTCP2_WRITE_DATAGRAM_FLAG_NONE, 0, &dv, 1, ts);
      if (nw < 0 || accepted) {
        p->dgram_txlen = 0; /* sent, or refused: a datagram may be lost */
      }
      if (nw > 0) {
        if (send(p->fd, buf, (size_t)nw, 0) < 0) {
          break;
        }
        continue;
      }
    }
    if (p->ctrl >= 0 && (p->ctrl_txsent < p->ctrl_txlen || p->ctrl_fin == 1)) {
      sid = p->ctrl;
      vec.base = p->ctrl_tx + p->ctrl_txsent;
      vec.len = p->ctrl_txlen - p->ctrl_txsent;
      flags = p->ctrl_fin == 1 ? NGTCP2_WRITE_STREAM_FLAG_FIN : 0;
    } else {
      for (int i = 0; i < p->nstreams; ++i) {
        cf_stream *t = p->streams[i];
        if (!t->closed && !t->reset && !t->stop &&
            (t->txsent < t->txlen || t->tx_fin == 1)) {
          s = t;
          sid = t->id;
          vec.base = t->tx + t->txsent;
          vec.len = t->txlen - t->txsent;
          flags = t->tx_fin == 1 ? NGTCP2_WRITE_STREAM_FLAG_FIN : 0;
          break;
        }
      }
    }
    nw = ngtcp2_conn_writev_stream(p->conn, &ps.path, &pi, buf, sizeof(buf),
                                   &nd, flags, sid, vec.len ? &vec : NULL,
                                   vec.len ? 1 : 0, ts);
    if (nw < 0) {
      if (nw == NGTCP2_ERR_STREAM_DATA_BLOCKED ||
          nw == NGTCP2_ERR_STREAM_SHUT_WR ||
          nw == NGTCP2_ERR_STREAM_NOT_FOUND) {
        /* Blocked or gone: drop what is left (a test peer). */
        if (s) {
          s->txsent = s->txlen;
          s->tx_fin = s->tx_fin ? 2 : 0;
          continue;
        }
        if (sid >= 0 && sid == p->ctrl) {
          p->ctrl_txsent = p->ctrl_txlen;
          p->ctrl_fin = p->ctrl_fin ? 2 : 0;
          continue;
        }
      }
      cf_on_error(p, (int)nw);
      return;
    }
    if (nd >= 0 && sid >= 0) {
      if (s) {
        s->txsent += (size_t)nd;
        if (flags && s->txsent == s->txlen) {
          s->tx_fin = 2;
        }
      } else {
        p->ctrl_txsent += (size_t)nd;
        if (flags && p->ctrl_txsent == p->ctrl_txlen) {
          p->ctrl_fin = 2;
        }
      }
    }
    if (nw == 0) {
      break;
    }
    if (send(p->fd, buf, (size_t)nw, 0) < 0) {
      break; /* loss is QUIC's business */
    }
  }
}

static void on_readable(cf_peer *p) {
  uint8_t buf[65536];
  ngtcp2_path path;
  ngtcp2_pkt_info pi = {0};
  for (;;) {
    ssize_t n = recv(p->fd, buf, sizeof(buf), 0);
    int rv;
    if (n < 0) {
      return; /* EAGAIN, or ICMP errors: the idle timeout decides */
    }
    if ((size_t)n > p->max_rx_dgram) {
      p->max_rx_dgram = (size_t)n;
    }
    path.local.addr = (ngtcp2_sockaddr *)&p->local;
    path.local.addrlen = p->locallen;
    path.remote.addr = (ngtcp2_sockaddr *)&p->remote;
    path.remote.addrlen = p->remotelen;
    path.user_data = NULL;
    rv = ngtcp2_conn_read_pkt(p->conn, &path, &pi, buf, (size_t)n, cf_now());
    if (rv != 0) {
      cf_on_error(p, rv);
      return;
    }
  }
}

int cf_run(double seconds, int (*until)(void *), void *arg) {
  uint64_t end = cf_now() + (uint64_t)(seconds * 1e9);
  struct pollfd pfd[64];
  cf_peer *ps[64];

  for (;;) {
    int n = 0, r;
    uint64_t now = cf_now(), wake = end;
    if (until && (r = until(arg)) != 0) {
      return r;
    }
    if (now >= end) {
      return until ? until(arg) : 0;
    }
    for (cf_peer *p = g_peers; p && n < 64; p = p->next) {
      uint64_t exp;
      if (p->closed) {
        continue;
      }
      cf_flush(p);
      exp = ngtcp2_conn_get_expiry(p->conn);
      if (exp < wake) {
        wake = exp;
      }
      pfd[n].fd = p->fd;
      pfd[n].events = POLLIN;
      ps[n++] = p;
    }
    {
      /* At most 10 ms, so that predicates that look at TCP sockets run. */
      uint64_t ms = wake > now ? (wake - now) / 1000000u : 0;
      poll(pfd, (nfds_t)n, ms > 10 ? 10 : (int)ms);
    }
    for (int i = 0; i < n; ++i) {
      cf_peer *p = ps[i];
      if (pfd[i].revents & POLLIN) {
        on_readable(p);
      }
      /* ngtcp2 1.x asserts that time never goes back: read the clock after
       * the packets were read with theirs. */
      now = cf_now();
      if (!p->closed && ngtcp2_conn_get_expiry(p->conn) <= now) {
        int rv = ngtcp2_conn_handle_expiry(p->conn, now);
        if (rv != 0) {
          cf_on_error(p, rv);
        }
      }
      cf_flush(p);
    }
  }
}

void cf_ctrl_send(cf_peer *p, const void *data, size_t len) {
  if (p->ctrl < 0 && p->hs_done) {
    if (ngtcp2_conn_open_bidi_stream(p->conn, &p->ctrl, NULL) != 0) {
      return;
    }
  }
  if (len > sizeof(p->ctrl_tx) - p->ctrl_txlen) {
    len = sizeof(p->ctrl_tx) - p->ctrl_txlen;
  }
  memcpy(p->ctrl_tx + p->ctrl_txlen, data, len);
  p->ctrl_txlen += len;
}

void cf_ctrl_frame(cf_peer *p, const prd_frame *fr) {
  uint8_t buf[PRD_FRAME_MAX_LEN];
  prd_ssize n = prd_frame_encode(buf, sizeof(buf), fr);
  if (n > 0) {
    cf_ctrl_send(p, buf, (size_t)n);
  }
}

const prd_frame *cf_find_frame(const cf_peer *p, uint64_t type) {
  for (int i = 0; i < p->nframes; ++i) {
    if (p->frames[i].type == type) {
      return &p->frames[i];
    }
  }
  return NULL;
}

void cf_stream_send(cf_peer *p, cf_stream *s, const void *data, size_t len,
                    int fin) {
  (void)p;
  if (len > sizeof(s->tx) - s->txlen) {
    len = sizeof(s->tx) - s->txlen;
  }
  memcpy(s->tx + s->txlen, data, len);
  s->txlen += len;
  if (fin) {
    s->tx_fin = 1;
    s->we_shut_wr = 1;
  }
}

void cf_stream_reset(cf_peer *p, cf_stream *s, uint64_t code) {
  s->we_shut_wr = 1;
  CF_SHUTDOWN_STREAM(p->conn, s->id, code);
}

void cf_peer_close(cf_peer *p) {
  uint8_t buf[1500];
  ngtcp2_path_storage ps;
  ngtcp2_pkt_info pi;
  ngtcp2_ssize n;
  if (p == NULL || p->closed || !p->hs_done) {
    return;
  }
  ngtcp2_path_storage_zero(&ps);
  n = cf_write_close(p->conn, &ps.path, &pi, buf, sizeof(buf), cf_now());
  if (n > 0 && send(p->fd, buf, (size_t)n, 0) < 0) {
    /* nothing to do: the server's idle timeout cleans up */
  }
  cf_mark_closed(p, CF_CLOSED_LOCAL);
  snprintf(p->reason, sizeof(p->reason), "closed by the test");
}

const ngtcp2_transport_params *cf_remote_params(cf_peer *p) {
  return ngtcp2_conn_get_remote_transport_params(p->conn);
}

/* ---- helpers ---------------------------------------------------------- */

static int until_hs(void *arg) {
  cf_peer *p = arg;
  return p->hs_done || p->closed;
}

int cf_wait_hs(cf_peer *p) {
  cf_run(cf_opt.timeout_s, until_hs, p);
  return p->hs_done && !p->closed;
}

static int until_closed(void *arg) { return ((cf_peer *)arg)->closed != 0; }

int cf_wait_closed(cf_peer *p, double seconds) {
  return cf_run(seconds, until_closed, p);
}

struct wait_frame {
  cf_peer *p;
  uint64_t type;
};

static int until_frame(void *arg) {
  struct wait_frame *w = arg;
  return cf_find_frame(w->p, w->type) != NULL || w->p->closed || w->p->ctrl_bad;
}

int cf_wait_frame(cf_peer *p, uint64_t type, double seconds) {
  struct wait_frame w = {p, type};
  cf_run(seconds, until_frame, &w);
  return cf_find_frame(p, type) != NULL;
}

void cf_send_hello(cf_peer *p, uint64_t version, uint64_t flags) {
  prd_frame fr;
  memset(&fr, 0, sizeof(fr));
  fr.type = PRD_FRAME_HELLO;
  fr.u.hello.version = version;
  fr.u.hello.flags = flags;
  p->hello_flags = flags;
  cf_ctrl_frame(p, &fr);
}

void cf_send_response(cf_peer *p, const uint8_t *psk, size_t psklen,
                      const uint8_t *exporter) {
  const prd_frame *ch = cf_find_frame(p, PRD_FRAME_AUTH_CHALLENGE);
  prd_frame fr;
  memset(&fr, 0, sizeof(fr));
  fr.type = PRD_FRAME_AUTH_RESPONSE;
  if (ch) {
    prd_auth_compute_mac(fr.u.response.mac, psk, psklen, exporter,
                         ch->u.challenge.challenge,
                         ch->u.challenge.challengelen);
  }
  cf_ctrl_frame(p, &fr);
}

int cf_authenticate(cf_peer *p) {
  const prd_frame *res;
  int status;
  if (!cf_wait_hs(p)) {
    return -1;
  }
  cf_send_hello(p, PRD_PROTOCOL_VERSION, 0);
  if (!cf_wait_frame(p, PRD_FRAME_AUTH_CHALLENGE, cf_opt.timeout_s)) {
    return -1;
  }
  cf_send_response(p, cf_opt.psk, cf_opt.psklen, p->exporter);
  if (!cf_wait_frame(p, PRD_FRAME_AUTH_RESULT, cf_opt.timeout_s)) {
    return -1;
  }
  res = cf_find_frame(p, PRD_FRAME_AUTH_RESULT);
  status = (int)res->u.result.status;
  if (status != 0) {
    /* spec/07-state-machines.md §1: the close follows AUTH_RESULT; it may
     * come in a later datagram than the frame. */
    cf_wait_closed(p, 1.0);
  }
  return status;
}

void cf_describe(const cf_peer *p, char *buf, size_t len) {
  switch (p->closed) {
  case CF_OPEN:
    snprintf(buf, len, "connection still open%s",
             p->hs_done ? "" : ", handshake not complete");
    break;
  case CF_CLOSED_APP:
    snprintf(buf, len,
             "closed by the peer with application error 0x%llx %s "
             "(reason \"%s\")",
             (unsigned long long)p->close_code, prd_app_err_name(p->close_code),
             p->reason);
    break;
  case CF_CLOSED_TRANSPORT:
    snprintf(buf, len,
             "closed by the peer with transport error 0x%llx (reason "
             "\"%s\")",
             (unsigned long long)p->close_code, p->reason);
    break;
  case CF_CLOSED_IDLE:
    snprintf(buf, len, "idle timeout");
    break;
  case CF_CLOSED_HS_TIMEOUT:
    snprintf(buf, len, "no handshake (timeout)");
    break;
  case CF_CLOSED_RESET:
    snprintf(buf, len, "stateless reset");
    break;
  case CF_CLOSED_LOCAL:
    snprintf(buf, len, "closed locally: %s", p->reason);
    break;
  }
}
