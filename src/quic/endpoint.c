/* SPDX-License-Identifier: GPL-3.0-only */
/* The endpoint: its connections and their tables, datagram dispatch by
 * connection ID, and the server's accept path (Retry, stateless reset,
 * version negotiation). The socket is udp.c's, the CID table cid_map.c's,
 * the rate limits ratelimit.c's. */
#include <errno.h>
#include <fcntl.h>
#include <gnutls/crypto.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../common/log.h"
#include "quic_int.h"

#define READ_BUDGET 256
#define RETRY_TOKEN_TIMEOUT (10 * NGTCP2_SECONDS)

/* ---- life ------------------------------------------------------------- */

static int ep_common(prd_quic_endpoint **pep, const prd_quic_config *cfg,
                     int is_server) {
  prd_quic_endpoint *ep = calloc(1, sizeof(*ep));
  if (ep == NULL) {
    return PRD_ERR_NOMEM;
  }
  ep->cfg = *cfg;
  ep->is_server = is_server;
  ep->features = PRD_FLAG_SERVICES | PRD_FLAG_CLIENT_NAME |
                 (cfg->datagrams ? PRD_FLAG_DATAGRAMS : 0);
  if (gnutls_rnd(GNUTLS_RND_RANDOM, ep->dummy_key, sizeof(ep->dummy_key)) !=
      0) {
    free(ep);
    return PRD_ERR_TLS;
  }
  ep->udp.fd = -1;
  ep->keylog_fd = -1;
  if (cfg->keylog_file && cfg->keylog_file[0]) {
    ep->keylog_fd =
        open(cfg->keylog_file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (ep->keylog_fd < 0) {
      PRD_LOG_WARN("cannot open key log file %s: %s", cfg->keylog_file,
                   strerror(errno));
    }
  }
  if (prd_tls_server_cred(ep) != 0) {
    prd_quic_endpoint_del(ep);
    return PRD_ERR_TLS;
  }
  *pep = ep;
  return 0;
}

int prd_quic_endpoint_new_server(prd_quic_endpoint **pep,
                                 const prd_quic_config *cfg,
                                 const prd_sockaddr *local,
                                 const uint8_t *static_secret) {
  prd_quic_endpoint *ep;
  int rv = ep_common(&ep, cfg, 1);
  if (rv != 0) {
    return rv;
  }
  memcpy(ep->static_secret, static_secret, sizeof(ep->static_secret));
  prd_rl_init(&ep->rl, ep->static_secret);
  rv = prd_udp_open_server(&ep->udp, local);
  if (rv != 0) {
    prd_quic_endpoint_del(ep);
    return rv;
  }
  *pep = ep;
  return 0;
}

int prd_quic_endpoint_new_client(prd_quic_endpoint **pep, prd_quic_conn **pqc,
                                 const prd_quic_config *cfg,
                                 const prd_sockaddr *local,
                                 const prd_sockaddr *remote) {
  prd_quic_endpoint *ep;
  prd_quic_conn *qc;
  int rv = ep_common(&ep, cfg, 0);
  if (rv != 0) {
    return rv;
  }
  /* A random static secret: the client never sends stateless resets. */
  gnutls_rnd(GNUTLS_RND_RANDOM, ep->static_secret, sizeof(ep->static_secret));
  prd_rl_init(&ep->rl, ep->static_secret);
  rv = prd_udp_open_client(&ep->udp, local, remote);
  if (rv == 0) {
    rv = prd_conn_client_new(&qc, ep, &ep->udp.local, remote);
  }
  if (rv != 0) {
    prd_quic_endpoint_del(ep);
    return rv;
  }
  *pep = ep;
  *pqc = qc;
  return 0;
}

void prd_quic_endpoint_del(prd_quic_endpoint *ep) {
  if (ep == NULL) {
    return;
  }
  while (ep->conns) {
    prd_conn_free(ep->conns);
  }
  prd_cid_map_clear(&ep->cids);
  prd_udp_close(&ep->udp);
  if (ep->keylog_fd >= 0) {
    close(ep->keylog_fd);
  }
  if (ep->cred) {
    gnutls_certificate_free_credentials(ep->cred);
  }
  if (ep->prio) {
    gnutls_priority_deinit(ep->prio);
  }
  free(ep);
}

int prd_quic_endpoint_fd(const prd_quic_endpoint *ep) { return ep->udp.fd; }

size_t prd_quic_endpoint_num_conns(const prd_quic_endpoint *ep) {
  return ep->nconns;
}

/* ---- the connections' tables ------------------------------------------ */

void prd_ep_conn_add(prd_quic_endpoint *ep, prd_quic_conn *qc) {
  qc->next = ep->conns;
  if (ep->conns) {
    ep->conns->prev = qc;
  }
  ep->conns = qc;
  ++ep->nconns;
  if (ep->is_server) {
    ++ep->npending;
  }
}

void prd_ep_conn_authenticated(prd_quic_endpoint *ep) {
  if (ep->is_server && ep->npending > 0) {
    --ep->npending;
  }
}

void prd_ep_conn_forget(prd_quic_endpoint *ep, prd_quic_conn *qc) {
  /* The CID map may still refer to it under CIDs that ngtcp2 already
   * retired; sweep them. */
  prd_cid_map_forget(&ep->cids, qc);
  if (!prd_conn_authenticated(qc)) {
    prd_ep_conn_authenticated(ep);
  }
  prd_udp_unblock(&ep->udp, &qc->tx_wait);
  if (qc->prev) {
    qc->prev->next = qc->next;
  } else if (ep->conns == qc) {
    ep->conns = qc->next;
  }
  if (qc->next) {
    qc->next->prev = qc->prev;
  }
  --ep->nconns;
}

int prd_ep_cid_add(prd_quic_endpoint *ep, const ngtcp2_cid *cid,
                   prd_quic_conn *qc) {
  return prd_cid_map_add(&ep->cids, cid, qc);
}

void prd_ep_cid_remove(prd_quic_endpoint *ep, const ngtcp2_cid *cid) {
  prd_cid_map_remove(&ep->cids, cid);
}

/* ---- send ------------------------------------------------------------- */

ssize_t prd_ep_send(prd_quic_endpoint *ep, const prd_sockaddr *local,
                    const prd_sockaddr *remote, const uint8_t *data, size_t len,
                    size_t segsize) {
  if (ep->path_tx) {
    ssize_t n =
        ep->path_tx(ep, local, remote, data, len, segsize, ep->path_tx_arg);
    if (n != -ENOENT) {
      return n;
    }
  }
  if (ep->transmit) {
    return ep->transmit(ep, local, remote, data, len, segsize,
                        ep->transmit_arg);
  }
  return prd_udp_send(&ep->udp, local, remote, data, len, segsize);
}

void prd_ep_block(prd_quic_endpoint *ep, prd_quic_conn *qc) {
  prd_udp_block(&ep->udp, &qc->tx_wait);
  if (ep->cfg.cb->want_writable) {
    ep->cfg.cb->want_writable(ep, ep->cfg.ud);
  }
}

/* waiter_conn: the connection whose tx_wait |w| is. */
static prd_quic_conn *waiter_conn(prd_udp_waiter *w) {
  return (prd_quic_conn *)(void *)((char *)w -
                                   offsetof(prd_quic_conn, tx_wait));
}

void prd_quic_endpoint_on_writable(prd_quic_endpoint *ep) {
  prd_udp_waiter *list, *w;
  prd_udp_take_blocked(&ep->udp, &list);
  while ((w = prd_udp_next_waiter(&list)) != NULL) {
    prd_quic_conn_flush(waiter_conn(w));
  }
}

/* ---- per-address admission -------------------------------------------- */

/* authenticated_from: a connection that proved the PSK from |a|'s address
 * (or /64) is connected. */
static int authenticated_from(prd_quic_endpoint *ep, const prd_sockaddr *a) {
  for (prd_quic_conn *c = ep->conns; c; c = c->next) {
    if (prd_conn_authenticated(c) && !prd_conn_closing(c) &&
        prd_rl_same_key(prd_conn_hs_remote(c), a)) {
      return 1;
    }
  }
  return 0;
}

/* refuse_from refuses the connections from |a|'s address still
 * authenticating, but |qc|: each would get one more guess. */
static void refuse_from(prd_quic_endpoint *ep, prd_quic_conn *qc,
                        const prd_sockaddr *a) {
  prd_quic_conn *c, *next;
  for (c = ep->conns; c; c = next) {
    next = c->next;
    if (c != qc && !prd_conn_authenticated(c) && !prd_conn_closing(c) &&
        prd_rl_same_key(prd_conn_hs_remote(c), a)) {
      prd_quic_conn_refuse(c, "address cooling down");
    }
  }
}

void prd_ep_auth_failure(prd_quic_endpoint *ep, prd_quic_conn *qc) {
  prd_tstamp now = prd_now();
  const prd_sockaddr *a = prd_conn_hs_remote(qc);
  prd_rl_entry *e = prd_rl_fail(&ep->rl, a, now);
  unsigned long long window_s = PRD_RL_WINDOW / PRD_NS_PER_S;
  char peer[80];

  if (e == NULL || ep->cfg.auth_fail_cooldown_ns == 0 ||
      prd_rl_exempt(a, ep->cfg.auth_exempt, ep->cfg.nauth_exempt)) {
    return;
  }
  prd_sockaddr_str(a, peer, sizeof(peer));
  /* spec/08-security.md §3: others' failures do not lock out a client that
   * proved the PSK from the same address (CGNAT, an office NAT). */
  if (authenticated_from(ep, a)) {
    PRD_LOG_WARN("%u authentication failures from %s within %llu s: not "
                 "cooling it down, a client that authenticated from there "
                 "is connected",
                 PRD_RL_FAIL_BUDGET, peer, window_s);
    return;
  }
  prd_rl_cool_down(e, now + ep->cfg.auth_fail_cooldown_ns);
  PRD_LOG_WARN(
      "%u authentication failures from %s within %llu s: "
      "refusing its new connections for %llu s",
      PRD_RL_FAIL_BUDGET, peer, window_s,
      (unsigned long long)(ep->cfg.auth_fail_cooldown_ns / PRD_NS_PER_S));
  refuse_from(ep, qc, a);
}

int prd_ep_auth_log_ok(prd_quic_endpoint *ep, const prd_sockaddr *a,
                       uint32_t *psuppressed) {
  return prd_rl_log_ok(&ep->rl, a, prd_now(), psuppressed);
}

/* ---- stateless answers ------------------------------------------------ */

static void send_stateless_reset(prd_quic_endpoint *ep,
                                 const prd_sockaddr *local,
                                 const prd_sockaddr *remote,
                                 const uint8_t *dcid, size_t dcidlen,
                                 size_t pktlen) {
  uint8_t token[NGTCP2_STATELESS_RESET_TOKENLEN];
  uint8_t rand[64], buf[128];
  ngtcp2_cid cid;
  ngtcp2_ssize n;
  size_t randlen;

  /* RFC 9000 §10.3: one byte shorter than the packet that triggered it, and
   * at least 22 bytes (1 + NGTCP2_MIN_STATELESS_RESET_RANDLEN + the token:
   * ngtcp2 writes and recognises no shorter reset), so for any trigger of 23
   * bytes or more. A client's keepalive PING is about 40 bytes: it must get
   * a reset after our restart, or the client waits for its idle timeout.
   * Rate-limited: garbage floods must not turn us into a reflector. */
  if (pktlen < 1 + NGTCP2_MIN_STATELESS_RESET_RANDLEN +
                   NGTCP2_STATELESS_RESET_TOKENLEN + 1 ||
      !prd_rl_reset_ok(&ep->rl, prd_now())) {
    return;
  }
  randlen = pktlen - 1 - NGTCP2_STATELESS_RESET_TOKENLEN - 1;
  if (randlen > sizeof(rand)) {
    randlen = sizeof(rand);
  }
  if (randlen < NGTCP2_MIN_STATELESS_RESET_RANDLEN) {
    return;
  }
  ngtcp2_cid_init(&cid, dcid, dcidlen);
  if (ngtcp2_crypto_generate_stateless_reset_token(
          token, ep->static_secret, sizeof(ep->static_secret), &cid) != 0) {
    return;
  }
  gnutls_rnd(GNUTLS_RND_NONCE, rand, randlen);
  n = ngtcp2_pkt_write_stateless_reset(buf, sizeof(buf), token, rand, randlen);
  if (n > 0) {
    prd_ep_send(ep, local, remote, buf, (size_t)n, (size_t)n);
  }
}

static void send_retry(prd_quic_endpoint *ep, const ngtcp2_pkt_hd *hd,
                       const prd_sockaddr *local, const prd_sockaddr *remote) {
  uint8_t token[NGTCP2_CRYPTO_MAX_RETRY_TOKENLEN];
  uint8_t buf[1280], scidbuf[PRD_SCID_LEN];
  ngtcp2_cid scid;
  ngtcp2_ssize tokenlen, n;

  gnutls_rnd(GNUTLS_RND_RANDOM, scidbuf, sizeof(scidbuf));
  ngtcp2_cid_init(&scid, scidbuf, sizeof(scidbuf));
  tokenlen = ngtcp2_crypto_generate_retry_token(
      token, ep->static_secret, sizeof(ep->static_secret), hd->version,
      &remote->u.sa, remote->len, &scid, &hd->dcid, prd_now());
  if (tokenlen < 0) {
    return;
  }
  n = ngtcp2_crypto_write_retry(buf, sizeof(buf), hd->version, &hd->scid, &scid,
                                &hd->dcid, token, (size_t)tokenlen);
  if (n > 0) {
    prd_ep_send(ep, local, remote, buf, (size_t)n, (size_t)n);
  }
}

/* send_version_negotiation answers a long-header packet of a version we do
 * not speak, if it is big enough not to make us an amplifier. */
static void send_version_negotiation(prd_quic_endpoint *ep,
                                     const prd_sockaddr *local,
                                     const prd_sockaddr *remote,
                                     const ngtcp2_version_cid *vc, size_t len) {
  uint8_t buf[256];
  uint32_t sv[] = {NGTCP2_PROTO_VER_V1};
  uint8_t r;
  ngtcp2_ssize n;
  gnutls_rnd(GNUTLS_RND_NONCE, &r, 1);
  n = ngtcp2_pkt_write_version_negotiation(
      buf, sizeof(buf), r, vc->scid, vc->scidlen, vc->dcid, vc->dcidlen, sv, 1);
  if (n > 0 && len >= 1200) {
    prd_ep_send(ep, local, remote, buf, (size_t)n, (size_t)n);
  }
}

/* ---- accept ----------------------------------------------------------- */

/* admit: whether an Initial from |remote| may start a connection now
 * (|*podcid| set when it carries a valid Retry token); otherwise it was
 * answered with Retry or dropped. */
static int admit(prd_quic_endpoint *ep, const ngtcp2_pkt_hd *hd,
                 const prd_sockaddr *local, const prd_sockaddr *remote,
                 ngtcp2_cid *odcid, ngtcp2_cid **podcid) {
  prd_tstamp now = prd_now();
  /* spec/08-security.md §3: an unvalidated Initial (possibly spoofed) finds
   * its address's entry but never evicts one that holds a failure count, a
   * cool-down or a spent bucket; without a free or clean slot it gets Retry. */
  prd_rl_entry *rl = prd_rl_get(&ep->rl, remote, now, 0);
  if (rl && prd_rl_cooling(rl, now)) {
    prd_rl_note_drop(rl, remote, now,
                     "cooling down after authentication failures");
    return 0;
  }
  if (prd_hd_tokenlen(hd) > 0 &&
      prd_hd_token(hd)[0] == NGTCP2_CRYPTO_TOKEN_MAGIC_RETRY) {
    if (ngtcp2_crypto_verify_retry_token(
            odcid, prd_hd_token(hd), prd_hd_tokenlen(hd), ep->static_secret,
            sizeof(ep->static_secret), hd->version, &remote->u.sa, remote->len,
            &hd->dcid, RETRY_TOKEN_TIMEOUT, prd_now()) != 0) {
      return 0; /* forged or stale token */
    }
    *podcid = odcid;
    if (rl == NULL) {
      rl = prd_rl_get(&ep->rl, remote, now, 1);
    }
  } else if (rl == NULL || ep->npending >= ep->cfg.max_pending_handshakes / 2 ||
             !prd_rl_has_token(rl, now)) {
    /* Under pressure, or the address is over its rate: make the peer prove
     * its address first (spec/04-quic-profile.md §3), so that spoofed
     * Initials cost no state and cannot use up a real address's budget. */
    send_retry(ep, hd, local, remote);
    return 0;
  }
  if (ep->npending >= ep->cfg.max_pending_handshakes) {
    return 0;
  }
  if (!prd_rl_has_token(rl, now)) {
    prd_rl_note_drop(rl, remote, now, "too many new connections");
    return 0;
  }
  prd_rl_take_token(rl);
  return 1;
}

static void server_accept(prd_quic_endpoint *ep, const prd_sockaddr *local,
                          const prd_sockaddr *remote, const uint8_t *pkt,
                          size_t len, uint8_t ecn) {
  ngtcp2_pkt_hd hd;
  ngtcp2_cid odcid, *podcid = NULL;
  prd_quic_conn *qc;

  if (ngtcp2_accept(&hd, pkt, len) != 0) {
    return; /* not an Initial we can accept: drop silently */
  }
  if (!admit(ep, &hd, local, remote, &odcid, &podcid)) {
    return;
  }
  if (prd_conn_server_new(&qc, ep, &hd, local, remote, podcid,
                          podcid ? &hd.dcid : NULL) != 0) {
    return;
  }
  if (prd_conn_read(qc, local, remote, pkt, len, ecn) == 0) {
    prd_quic_conn_flush(qc);
  }
}

/* ---- dispatch --------------------------------------------------------- */

/* conn_read feeds a datagram to a server's connection. An authentication
 * failure it causes (not a later protocol error of an authenticated peer)
 * counts against the address. */
static void conn_read(prd_quic_endpoint *ep, prd_quic_conn *qc,
                      const prd_sockaddr *local, const prd_sockaddr *remote,
                      const uint8_t *pkt, size_t len, uint8_t ecn) {
  int counted = prd_conn_auth_failed(qc) || prd_conn_authenticated(qc);
  if (prd_conn_read(qc, local, remote, pkt, len, ecn) == 0 && !counted &&
      prd_conn_auth_failed(qc)) {
    /* Charged to the address the handshake came from, not to this
     * datagram's source: ngtcp2 takes frames from a new, unvalidated path,
     * so the source could be a victim's, spoofed. */
    prd_ep_auth_failure(ep, qc);
  }
}

static void dispatch(prd_quic_endpoint *ep, const prd_sockaddr *local,
                     const prd_sockaddr *remote, const uint8_t *pkt, size_t len,
                     uint8_t ecn) {
  ngtcp2_version_cid vc;
  prd_quic_conn *qc;
  int rv;

  if (!ep->is_server) {
    if (ep->conns) {
      prd_conn_read(ep->conns, local, remote, pkt, len, ecn);
    }
    return;
  }
  rv = ngtcp2_pkt_decode_version_cid(&vc, pkt, len, PRD_SCID_LEN);
  if (rv == NGTCP2_ERR_VERSION_NEGOTIATION) {
    send_version_negotiation(ep, local, remote, &vc, len);
    return;
  }
  if (rv != 0) {
    return;
  }
  qc = prd_cid_map_find(&ep->cids, vc.dcid, vc.dcidlen);
  if (qc) {
    conn_read(ep, qc, local, remote, pkt, len, ecn);
  } else if (pkt[0] & 0x80) {
    server_accept(ep, local, remote, pkt, len, ecn);
  } else {
    send_stateless_reset(ep, local, remote, vc.dcid, vc.dcidlen, len);
  }
}

/* ---- receive ---------------------------------------------------------- */

/* on_datagram: udp.c's receive callback. A client's socket is connected:
 * every datagram comes from its connection's peer. */
static void on_datagram(void *arg, const prd_sockaddr *local,
                        const prd_sockaddr *remote, const uint8_t *pkt,
                        size_t len, uint8_t ecn) {
  prd_quic_endpoint *ep = arg;
  prd_sockaddr peer;
  if (!ep->is_server && ep->conns) {
    peer = *prd_quic_conn_remote(ep->conns);
    remote = &peer;
  }
  dispatch(ep, local, remote, pkt, len, ecn);
}

static int on_refused(void *arg) {
  prd_quic_endpoint *ep = arg;
  if (!ep->is_server && ep->conns) {
    prd_conn_refused(ep->conns);
    return 1;
  }
  return 0;
}

/* Reads up to READ_BUDGET datagrams (or GRO trains). */
void prd_quic_endpoint_on_readable(prd_quic_endpoint *ep) {
  prd_udp_read(&ep->udp, READ_BUDGET, on_datagram, on_refused, ep);
}

/* ---- TCP paths (spec/11-tcp-path.md) ---------------------------------- */

void prd_quic_endpoint_set_path_tx(prd_quic_endpoint *ep,
                                   prd_quic_path_tx_fn fn, void *arg) {
  ep->path_tx = fn;
  ep->path_tx_arg = arg;
}

static int addr_eq(const prd_sockaddr *a, const prd_sockaddr *b) {
  if (a->u.sa.sa_family != b->u.sa.sa_family) {
    return 0;
  }
  if (a->u.sa.sa_family == AF_INET) {
    return a->u.in.sin_port == b->u.in.sin_port &&
           a->u.in.sin_addr.s_addr == b->u.in.sin_addr.s_addr;
  }
  return a->u.in6.sin6_port == b->u.in6.sin6_port &&
         memcmp(&a->u.in6.sin6_addr, &b->u.in6.sin6_addr, 16) == 0;
}

int prd_quic_endpoint_path_in_use(const prd_quic_endpoint *ep,
                                  const prd_sockaddr *local,
                                  const prd_sockaddr *remote,
                                  int authenticated) {
  for (const prd_quic_conn *c = ep->conns; c; c = c->next) {
    const ngtcp2_path *p;
    prd_sockaddr l, r;
    if (c->conn == NULL || prd_conn_closing(c) ||
        (authenticated && !prd_conn_authenticated(c))) {
      continue;
    }
    p = ngtcp2_conn_get_path(c->conn);
    if (p->local.addrlen > sizeof(l.u) || p->remote.addrlen > sizeof(r.u)) {
      continue;
    }
    memset(&l, 0, sizeof(l));
    memset(&r, 0, sizeof(r));
    memcpy(&l.u, p->local.addr, p->local.addrlen);
    memcpy(&r.u, p->remote.addr, p->remote.addrlen);
    if (addr_eq(&l, local) && addr_eq(&r, remote)) {
      return 1;
    }
  }
  return 0;
}

/* ---- test seam -------------------------------------------------------- */

void prd_quic_endpoint_set_transmit(prd_quic_endpoint *ep,
                                    prd_quic_transmit_fn fn, void *arg) {
  ep->transmit = fn;
  ep->transmit_arg = arg;
}

void prd_quic_endpoint_deliver(prd_quic_endpoint *ep, const prd_sockaddr *local,
                               const prd_sockaddr *remote, const uint8_t *pkt,
                               size_t len) {
  dispatch(ep, local, remote, pkt, len, 0);
}
