/* SPDX-License-Identifier: GPL-3.0-only */
/* One QUIC connection: the ngtcp2 callbacks, creation, the lifecycle,
 * closing and draining. Streams are in stream.c, the control stream in
 * ctrl.c, the write loop in egress.c. */
#include <gnutls/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/log.h"
#include "quic_int.h"

static ngtcp2_conn *get_conn(ngtcp2_crypto_conn_ref *ref) {
  prd_quic_conn *qc = ref->user_data;
  return qc->conn;
}

void prd_conn_want_flush(prd_quic_conn *qc) {
  const prd_quic_callbacks *cb = qc->ep->cfg.cb;
  if (cb->want_flush) {
    cb->want_flush(qc, qc->ud);
  }
}

void prd_conn_set_error_app(prd_quic_conn *qc, uint64_t code,
                            const char *reason) {
  prd_ccerr_set_app_error(&qc->last_error, code, (const uint8_t *)reason,
                          reason ? strlen(reason) : 0);
  qc->close_code = code;
  qc->close_kind = PRD_QUIC_CLOSE_LOCAL;
  snprintf(qc->close_msg, sizeof(qc->close_msg), "%s%s%s",
           prd_app_err_name(code), reason && reason[0] ? ": " : "",
           reason ? reason : "");
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
  qc->flags |= PRD_QC_F_HS_CONFIRMED;
  return 0;
}

static int cb_handshake_completed(ngtcp2_conn *conn, void *user_data) {
  prd_quic_conn *qc = user_data;
  (void)conn;
  qc->state = PRD_QC_AUTHENTICATING;
  if (qc->ep->is_server) {
    /* A server's handshake is confirmed when it completes (RFC 9001
     * §4.1.2), and ngtcp2 calls no handshake_confirmed on a server: without
     * this its packets stayed at 1,200 bytes (egress_init). */
    qc->flags |= PRD_QC_F_HS_CONFIRMED;
  }
  conn_keepalive(qc);
  return prd_ctrl_start(qc);
}

static int cb_extend_max_local_streams_bidi(ngtcp2_conn *conn,
                                            uint64_t max_streams,
                                            void *user_data) {
  prd_quic_conn *qc = user_data;
  (void)conn;
  (void)max_streams;
  if (qc->ep->is_server && qc->ep->cfg.cb->streams_available) {
    qc->flags |= PRD_QC_F_STREAMS_AVAILABLE;
    prd_conn_want_flush(qc);
  }
  return 0;
}

static int cb_recv_stateless_reset(ngtcp2_conn *conn,
                                   const ngtcp2_pkt_stateless_reset *sr,
                                   void *user_data) {
  prd_quic_conn *qc = user_data;
  (void)conn;
  (void)sr;
  qc->close_kind = PRD_QUIC_CLOSE_STATELESS_RESET;
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

/* callbacks_init fills |cb| for one role: the crypto helper's callbacks and
 * ours. ngtcp2 copies the table when the connection is made. */
static void callbacks_init(ngtcp2_callbacks *cb, int is_server) {
  memset(cb, 0, sizeof(*cb));
  if (is_server) {
    cb->recv_client_initial = ngtcp2_crypto_recv_client_initial_cb;
    cb->extend_max_local_streams_bidi = cb_extend_max_local_streams_bidi;
  } else {
    cb->client_initial = ngtcp2_crypto_client_initial_cb;
    cb->recv_retry = ngtcp2_crypto_recv_retry_cb;
    cb->recv_stateless_reset = cb_recv_stateless_reset;
  }
  cb->recv_crypto_data = ngtcp2_crypto_recv_crypto_data_cb;
  cb->handshake_completed = cb_handshake_completed;
  cb->handshake_confirmed = cb_handshake_confirmed;
  cb->encrypt = ngtcp2_crypto_encrypt_cb;
  cb->decrypt = ngtcp2_crypto_decrypt_cb;
  cb->hp_mask = ngtcp2_crypto_hp_mask_cb;
  cb->recv_stream_data = prd_cb_recv_stream_data;
  cb->acked_stream_data_offset = prd_cb_acked_stream_data_offset;
  cb->stream_open = prd_cb_stream_open;
  cb->stream_close = prd_cb_stream_close;
  cb->rand = cb_rand;
  cb->get_new_connection_id = cb_get_new_connection_id;
  cb->remove_connection_id = cb_remove_connection_id;
  cb->update_key = ngtcp2_crypto_update_key_cb;
  cb->stream_reset = prd_cb_stream_reset;
  cb->extend_max_stream_data = prd_cb_extend_max_stream_data;
  cb->path_validation = cb_path_validation;
  cb->delete_crypto_aead_ctx = ngtcp2_crypto_delete_crypto_aead_ctx_cb;
  cb->delete_crypto_cipher_ctx = ngtcp2_crypto_delete_crypto_cipher_ctx_cb;
  cb->get_path_challenge_data = ngtcp2_crypto_get_path_challenge_data_cb;
  cb->version_negotiation = ngtcp2_crypto_version_negotiation_cb;
  cb->recv_datagram = prd_cb_recv_datagram;
  cb->lost_datagram = prd_cb_lost_datagram;
  cb->ack_datagram = prd_cb_ack_datagram;
}

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
  if (is_loopback(&qc->remote)) {
    qc->flags |= PRD_QC_F_NO_PACING;
  }
  if (cfg->no_queue_bound) {
    qc->flags |= PRD_QC_F_NO_QUEUE_BOUND;
  }

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
  if (qc->ep->features & PRD_FLAG_DATAGRAMS) {
    /* spec/04-quic-profile.md §2, spec/10-udp.md §2 */
    params->max_datagram_frame_size = PRD_DGRAM_FRAME_MAX;
  }
}

/* conn_client_key: the auth layer's key lookup (auth.h) for a server
 * connection: the relay's client table, with the address the handshake
 * came from (spec/03-auth.md §4.1). */
static int conn_client_key(void *arg, uint8_t *psk, size_t *ppsklen,
                           const char *name, size_t namelen) {
  prd_quic_conn *qc = arg;

  return qc->ep->cfg.client_key(qc->ep->cfg.client_key_arg, psk, ppsklen, name,
                                namelen, &qc->hs_remote);
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
  if (ep->is_server && ep->cfg.client_key != NULL) {
    /* spec/03-auth.md §4.1: each client's key from the table, looked up
     * when its AUTH_RESPONSE arrives; ours only for refused names. */
    if (prd_auth_init(&qc->auth, PRD_AUTH_ROLE_SERVER, ep->dummy_key,
                      sizeof(ep->dummy_key), ep->cfg.auth_timeout_ns) != 0 ||
        prd_auth_set_key_lookup(&qc->auth, conn_client_key, qc) != 0) {
      return PRD_ERR_INVAL;
    }
    return 0;
  }
  if (prd_auth_init(&qc->auth,
                    ep->is_server ? PRD_AUTH_ROLE_SERVER : PRD_AUTH_ROLE_CLIENT,
                    ep->cfg.psk, ep->cfg.psklen,
                    ep->cfg.auth_timeout_ns) != 0) {
    return PRD_ERR_INVAL;
  }
  if (!ep->is_server) {
    if (prd_auth_set_client_name(&qc->auth, ep->cfg.client_name) != 0) {
      return PRD_ERR_INVAL;
    }
    /* The names the client declares (spec/02-framing.md §3.7): invalid,
     * repeated or too many names fail prd_quic_endpoint_new_client. */
    return prd_auth_set_services(&qc->auth, ep->cfg.services,
                                 ep->cfg.nservices);
  }
  return 0;
}

/* conn_discard frees a connection whose creation failed before it joined
 * the endpoint; returns |rv|. */
static int conn_discard(prd_quic_conn *qc, int rv) {
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

/* conn_alloc makes a connection for either role: allocated, initialised,
 * its settings and transport parameters filled in. Returns 0 or a PRD_ERR_*
 * (nothing left allocated). */
static int conn_alloc(prd_quic_conn **pqc, prd_quic_endpoint *ep,
                      const prd_sockaddr *local, const prd_sockaddr *remote,
                      ngtcp2_settings *settings,
                      ngtcp2_transport_params *params) {
  prd_quic_conn *qc = calloc(1, sizeof(*qc));
  int rv;

  if (qc == NULL) {
    return PRD_ERR_NOMEM;
  }
  rv = conn_common_init(qc, ep, local, remote);
  if (rv != 0) {
    return conn_discard(qc, rv);
  }
  settings_init(qc, settings, params);
  *pqc = qc;
  return 0;
}

/* conn_attach finishes |qc| once ngtcp2_conn_{server,client}_new returned
 * |new_rv|: its TLS session and keep-alive, and its place in the endpoint.
 * Returns 0 or a PRD_ERR_*. */
static int conn_attach(prd_quic_conn *qc, int new_rv) {
  int rv;
  if (new_rv != 0) {
    return PRD_ERR_QUIC;
  }
  rv = prd_tls_session_new(qc);
  if (rv != 0) {
    return rv;
  }
  qc->conn_ref.get_conn = get_conn;
  ngtcp2_conn_set_tls_native_handle(qc->conn, qc->tls);
  conn_keepalive(qc);
  prd_ep_conn_add(qc->ep, qc);
  return 0;
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
  prd_quic_conn *qc;
  ngtcp2_settings settings;
  ngtcp2_callbacks callbacks;
  ngtcp2_transport_params params;
  ngtcp2_path path;
  ngtcp2_cid scid;
  uint8_t scidbuf[PRD_SCID_LEN];
  int rv;

  rv = conn_alloc(&qc, ep, local, remote, &settings, &params);
  if (rv != 0) {
    return rv;
  }
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
  callbacks_init(&callbacks, 1);
  rv = conn_attach(qc, ngtcp2_conn_server_new(&qc->conn, &hd->scid, &scid,
                                              &path, hd->version, &callbacks,
                                              &settings, &params, NULL, qc));
  if (rv != 0) {
    goto fail;
  }
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
  return conn_discard(qc, rv);
}

int prd_conn_client_new(prd_quic_conn **pqc, prd_quic_endpoint *ep,
                        const prd_sockaddr *local, const prd_sockaddr *remote) {
  prd_quic_conn *qc;
  ngtcp2_settings settings;
  ngtcp2_callbacks callbacks;
  ngtcp2_transport_params params;
  ngtcp2_path path;
  ngtcp2_cid scid, dcid;
  uint8_t buf[PRD_SCID_LEN];
  int rv;

  rv = conn_alloc(&qc, ep, local, remote, &settings, &params);
  if (rv != 0) {
    return rv;
  }
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
  callbacks_init(&callbacks, 0);
  rv = conn_attach(qc, ngtcp2_conn_client_new(&qc->conn, &dcid, &scid, &path,
                                              NGTCP2_PROTO_VER_V1, &callbacks,
                                              &settings, &params, NULL, qc));
  if (rv != 0) {
    goto fail;
  }
  *pqc = qc;
  return 0;
fail:
  return conn_discard(qc, rv);
}

void prd_conn_free(prd_quic_conn *qc) {
  prd_quic_endpoint *ep = qc->ep;
  size_t i, n;

  prd_stream_close_all(qc);
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
  prd_ep_conn_forget(ep, qc);
  if (qc->conn) {
    ngtcp2_conn_del(qc->conn);
  }
  if (qc->tls) {
    gnutls_deinit(qc->tls);
  }
  prd_chunkbuf_free(&qc->ctrl_sendbuf);
  prd_dgram_free_all(qc);
  prd_auth_free(&qc->auth);
  free(qc->close_pkt);
  free(qc->peer_cert);
  free(qc->txbuf);
  free(qc);
}

/* conn_close_info: what callbacks.closed says about the close. */
static void conn_close_info(const prd_quic_conn *qc, prd_quic_close_info *ci) {
  ci->kind = qc->close_kind;
  ci->err = qc->close_err;
  ci->msg = qc->close_msg;
  switch (qc->close_kind) {
  case PRD_QUIC_CLOSE_LOCAL:
  case PRD_QUIC_CLOSE_PEER_APP:
    ci->code = qc->close_code;
    break;
  case PRD_QUIC_CLOSE_PEER_TRANSPORT:
    ci->code = qc->peer_close_code;
    break;
  default:
    ci->code = 0;
    break;
  }
}

/* Report and free. */
void prd_conn_finish(prd_quic_conn *qc) {
  const prd_quic_callbacks *cb = qc->ep->cfg.cb;
  if (qc->state != PRD_QC_CLOSED) {
    qc->state = PRD_QC_CLOSED;
    prd_stream_close_all(qc);
    if (cb->closed) {
      prd_quic_close_info info;
      conn_close_info(qc, &info);
      cb->closed(qc, &info, qc->ud);
    }
  }
  prd_conn_free(qc);
}

void prd_conn_update_timer(prd_quic_conn *qc) {
  const prd_quic_callbacks *cb = qc->ep->cfg.cb;
  prd_tstamp expiry;
  if (cb->set_timer == NULL) {
    return;
  }
  if (prd_conn_closing(qc)) {
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
  qc->close_kind = e.type == PRD_CCERR_TYPE_APPLICATION
                       ? PRD_QUIC_CLOSE_PEER_APP
                       : PRD_QUIC_CLOSE_PEER_TRANSPORT;
  qc->close_code = e.error_code;
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
  qc->state = PRD_QC_DRAINING;
  qc->close_deadline = prd_now() + 3 * ngtcp2_conn_get_pto(qc->conn);
  prd_conn_update_timer(qc);
}

int prd_conn_write_close(prd_quic_conn *qc) {
  ngtcp2_path_storage ps;
  ngtcp2_pkt_info pi;
  uint8_t buf[1500];
  ngtcp2_ssize n;

  if (!prd_conn_closing(qc)) {
    qc->state = PRD_QC_CLOSING;
  }
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
  prd_conn_update_timer(qc);
  return 0;
}

/* Handle a fatal ngtcp2 result; returns -1 when |qc| was freed. */
int prd_conn_handle_error(prd_quic_conn *qc, int rv) {
  switch (rv) {
  case NGTCP2_ERR_DRAINING:
    /* A stateless reset also drains: cb_recv_stateless_reset described it
     * already, and the peer sent no CONNECTION_CLOSE. */
    if (qc->close_kind != PRD_QUIC_CLOSE_STATELESS_RESET) {
      describe_peer_close(qc);
    }
    conn_enter_draining(qc);
    return 0;
  case NGTCP2_ERR_IDLE_CLOSE:
    qc->close_kind = PRD_QUIC_CLOSE_IDLE;
    qc->close_code = PRD_APP_NO_ERROR;
    snprintf(qc->close_msg, sizeof(qc->close_msg),
             "idle timeout: nothing heard from the peer");
    prd_conn_finish(qc);
    return -1;
  case NGTCP2_ERR_DROP_CONN:
    if (qc->close_msg[0] == 0) {
      snprintf(qc->close_msg, sizeof(qc->close_msg), "connection dropped");
    }
    prd_conn_finish(qc);
    return -1;
  case NGTCP2_ERR_CRYPTO:
    /* verify_cb's rejection of the server's certificate, or another TLS
     * failure. */
    qc->close_kind = PRD_QUIC_CLOSE_HANDSHAKE;
    if (qc->verify_msg[0]) {
      qc->close_kind =
          qc->verify_err ? qc->verify_kind : PRD_QUIC_CLOSE_CERT_REJECTED;
      qc->close_err = qc->verify_err ? qc->verify_err : PRD_ERR_TLS;
    }
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
      prd_conn_set_error_app(qc, PRD_APP_INTERNAL_ERROR, "internal error");
    }
    break;
  case NGTCP2_ERR_HANDSHAKE_TIMEOUT:
    qc->close_kind = PRD_QUIC_CLOSE_HANDSHAKE;
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
    prd_conn_finish(qc);
    return -1;
  default:
    if (qc->close_msg[0] == 0) {
      snprintf(qc->close_msg, sizeof(qc->close_msg), "QUIC error: %s",
               ngtcp2_strerror(rv));
    }
    prd_ccerr_set_liberr(&qc->last_error, rv, NULL, 0);
    break;
  }
  if ((qc->flags & PRD_QC_F_AUTH_FAILED) && !prd_conn_closing(qc)) {
    /* Let AUTH_RESULT go out before CONNECTION_CLOSE (best effort). The
     * connection is CLOSING from here: the write loop runs once more, but
     * nothing else (a flush, a close) starts it again. */
    qc->state = PRD_QC_CLOSING;
    if (prd_egress_write(qc) != 0) {
      return -1;
    }
  }
  if (prd_conn_write_close(qc) != 0) {
    prd_conn_finish(qc);
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

  if (qc->state == PRD_QC_DRAINING) {
    return 0;
  }
  if (prd_conn_closing(qc)) {
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
  qc->flags |= PRD_QC_F_IN_CALLBACK;
  qc->last_rx = prd_now();
  rv = ngtcp2_conn_read_pkt(qc->conn, &path, &pi, pkt, len, qc->last_rx);
  qc->flags &= ~PRD_QC_F_IN_CALLBACK;
  if (rv != 0) {
    if (rv == NGTCP2_ERR_DISCARD_PKT) {
      return 0;
    }
    return prd_conn_handle_error(qc, rv);
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
  prd_conn_want_flush(qc);
  return 0;
}

void prd_quic_conn_on_timer(prd_quic_conn *qc) {
  prd_tstamp now = prd_now();
  int rv;

  if (prd_conn_closing(qc)) {
    if (now >= qc->close_deadline) {
      prd_conn_finish(qc);
      return;
    }
    prd_conn_update_timer(qc);
    return;
  }
  prd_stream_expire_held(qc, now);
  if (prd_ctrl_on_timer(qc, now) != 0) {
    return;
  }
  qc->flags |= PRD_QC_F_IN_CALLBACK;
  rv = ngtcp2_conn_handle_expiry(qc->conn, now);
  qc->flags &= ~PRD_QC_F_IN_CALLBACK;
  if (rv != 0) {
    prd_conn_handle_error(qc, rv);
    return;
  }
  prd_quic_conn_flush(qc);
}

/* request_reason keeps |reason| for a close carried out by the next flush;
 * the deferred close passes qc->requested_reason itself back in. */
static void request_reason(prd_quic_conn *qc, const char *reason) {
  if (reason != qc->requested_reason) {
    snprintf(qc->requested_reason, sizeof(qc->requested_reason), "%s",
             reason ? reason : "");
  }
}

void prd_quic_conn_close(prd_quic_conn *qc, uint64_t code, const char *reason) {
  if (prd_conn_closing(qc) ||
      (qc->flags & (PRD_QC_F_CLOSE_REQUESTED | PRD_QC_F_REFUSE_REQUESTED))) {
    return;
  }
  if (qc->flags & PRD_QC_F_IN_CALLBACK) {
    /* Never write from inside an ngtcp2 callback (docs/ARCHITECTURE.md
     * §4): do it in the next flush. */
    qc->flags |= PRD_QC_F_CLOSE_REQUESTED;
    qc->requested_code = code;
    request_reason(qc, reason);
    prd_conn_want_flush(qc);
    return;
  }
  prd_conn_set_error_app(qc, code, reason);
  if (qc->state == PRD_QC_HANDSHAKE) {
    prd_conn_finish(qc);
    return;
  }
  /* Flush pending stream data and control frames first (best effort). */
  prd_quic_conn_flush(qc);
  if (qc->state == PRD_QC_CLOSED) {
    return;
  }
  if (prd_conn_write_close(qc) != 0) {
    prd_conn_finish(qc);
  }
}

void prd_quic_conn_refuse(prd_quic_conn *qc, const char *reason) {
  if (prd_conn_closing(qc) ||
      (qc->flags & (PRD_QC_F_CLOSE_REQUESTED | PRD_QC_F_REFUSE_REQUESTED))) {
    return;
  }
  if (qc->flags & PRD_QC_F_IN_CALLBACK) {
    qc->flags |= PRD_QC_F_REFUSE_REQUESTED;
    request_reason(qc, reason);
    prd_conn_want_flush(qc);
    return;
  }
  /* spec/04-quic-profile.md §7: transport CONNECTION_REFUSED (0x02). */
  prd_ccerr_set_transport_error(&qc->last_error, NGTCP2_CONNECTION_REFUSED,
                                (const uint8_t *)reason, strlen(reason));
  qc->close_kind = PRD_QUIC_CLOSE_LOCAL;
  qc->close_code = PRD_APP_NO_ERROR;
  snprintf(qc->close_msg, sizeof(qc->close_msg), "refused: %s", reason);
  if (prd_conn_write_close(qc) != 0) {
    prd_conn_finish(qc);
  }
}

/* prd_conn_run_requested_close runs a close or refusal asked for inside an
 * ngtcp2 callback. Returns 1 when there was one. */
int prd_conn_run_requested_close(prd_quic_conn *qc) {
  unsigned how =
      qc->flags & (PRD_QC_F_CLOSE_REQUESTED | PRD_QC_F_REFUSE_REQUESTED);
  if (how == 0) {
    return 0;
  }
  qc->flags &= ~how;
  if (how & PRD_QC_F_REFUSE_REQUESTED) {
    prd_quic_conn_refuse(qc, qc->requested_reason);
  } else {
    prd_quic_conn_close(qc, qc->requested_code, qc->requested_reason);
  }
  return 1;
}

/* ---- accessors -------------------------------------------------------- */

void *prd_quic_conn_user(const prd_quic_conn *qc) { return qc->ud; }
void prd_quic_conn_set_user(prd_quic_conn *qc, void *ud) { qc->ud = ud; }
const prd_sockaddr *prd_quic_conn_remote(const prd_quic_conn *qc) {
  return &qc->remote;
}
const prd_sockaddr *prd_quic_conn_local(const prd_quic_conn *qc) {
  return &qc->local;
}
const char *prd_quic_conn_name(const prd_quic_conn *qc) { return qc->name; }
int prd_quic_conn_is_authenticated(const prd_quic_conn *qc) {
  return prd_auth_is_authenticated(&qc->auth) && !prd_conn_closing(qc);
}
size_t prd_quic_conn_num_streams(const prd_quic_conn *qc) {
  return qc->nstreams;
}
int prd_quic_conn_peer_goaway(const prd_quic_conn *qc) {
  return qc->auth.peer_goaway != 0;
}

void prd_quic_conn_get_info(prd_quic_conn *qc, prd_quic_conn_info *info) {
  prd_conn_stat cs;
  memset(info, 0, sizeof(*info));
  info->lost_packets = qc->lost_closed;
  info->sent_packets = qc->tx_pkts;
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
  info->lost_packets += prd_stream_open_lost(qc);
}

void prd_conn_refused(prd_quic_conn *qc) {
  char peer[80];
  if (qc->state != PRD_QC_HANDSHAKE) {
    return; /* established: the idle timeout or a stateless reset decides */
  }
  qc->close_kind = PRD_QUIC_CLOSE_HANDSHAKE;
  qc->close_err = -ECONNREFUSED;
  snprintf(qc->close_msg, sizeof(qc->close_msg),
           "connection refused by %s (is the server running?)",
           prd_sockaddr_str(&qc->remote, peer, sizeof(peer)));
  prd_conn_finish(qc);
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

/* ---- for endpoint.c --------------------------------------------------- */

int prd_conn_auth_failed(const prd_quic_conn *qc) {
  return (qc->flags & PRD_QC_F_AUTH_FAILED) != 0;
}

int prd_conn_authenticated(const prd_quic_conn *qc) {
  return (qc->flags & PRD_QC_F_AUTHENTICATED) != 0;
}

const prd_sockaddr *prd_conn_hs_remote(const prd_quic_conn *qc) {
  return &qc->hs_remote;
}
