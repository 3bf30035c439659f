/* SPDX-License-Identifier: GPL-3.0-only */
/* The server: the users' TCP listener, the QUIC clients it accepts, and the
 * scheduler that gives each user a client (spec/04-quic-profile.md §7):
 * pick_tunnel, the pending queue, and failover that moves a stream a silent
 * client never acknowledged. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "../common/log.h"
#include "../common/notify.h"
#include "relay_int.h"

#define ACCEPT_BUDGET 64

static void addr_to_hdr(prd_addr *a, const prd_sockaddr *s) {
  memset(a, 0, sizeof(*a));
  if (s->u.sa.sa_family == AF_INET) {
    a->family = 4;
    memcpy(a->addr, &s->u.in.sin_addr, 4);
    a->port = ntohs(s->u.in.sin_port);
  } else if (IN6_IS_ADDR_V4MAPPED(&s->u.in6.sin6_addr)) {
    /* spec/02-framing.md §4.1: mapped addresses travel as IPv4. */
    a->family = 4;
    memcpy(a->addr, &s->u.in6.sin6_addr.s6_addr[12], 4);
    a->port = ntohs(s->u.in6.sin6_port);
  } else {
    a->family = 6;
    memcpy(a->addr, &s->u.in6.sin6_addr, 16);
    a->port = ntohs(s->u.in6.sin6_port);
  }
}

static void pend_remove(relay *r, tcpc *tc) {
  tcpc **pp = &r->pend_head, *prev = NULL;
  if (!tc->pending) {
    return;
  }
  while (*pp && *pp != tc) {
    prev = *pp;
    pp = &(*pp)->pnext;
  }
  if (*pp) {
    *pp = tc->pnext;
    if (r->pend_tail == tc) {
      r->pend_tail = prev;
    }
  }
  tc->pnext = NULL;
  tc->pending = 0;
}

static void unconf_remove(relay *r, tcpc *tc) {
  tcpc **pp = &r->unconf;
  if (!tc->unconfirmed) {
    return;
  }
  while (*pp && *pp != tc) {
    pp = &(*pp)->unext;
  }
  if (*pp) {
    *pp = tc->unext;
  }
  tc->unext = NULL;
  tc->unconfirmed = 0;
}

/* spec/04-quic-profile.md §7: the authenticated client with the fewest
 * active streams that still answers; ties round-robin. */
static int tunnel_suspect(tunnel *t) {
  if (t->suspect_since && prd_quic_conn_last_rx(t->qc) <= t->suspect_since) {
    return 1;
  }
  t->suspect_since = 0;
  return prd_quic_conn_suspect(t->qc);
}

tunnel *pick_tunnel(relay *r, tunnel *exclude) {
  tunnel *t, *best = NULL;
  size_t best_active = SIZE_MAX;
  int best_suspect = 1;
  unsigned idx = 0, best_idx = 0, n = 0;

  for (t = r->tunnels; t; t = t->next) {
    if (t != exclude && t->qc && t->authenticated &&
        prd_quic_conn_is_authenticated(t->qc) &&
        !prd_quic_conn_peer_goaway(t->qc)) {
      ++n;
    }
  }
  if (n == 0) {
    return NULL;
  }
  for (t = r->tunnels; t; t = t->next, ++idx) {
    int suspect;
    if (t == exclude ||
        !(t->qc && t->authenticated && prd_quic_conn_is_authenticated(t->qc) &&
          !prd_quic_conn_peer_goaway(t->qc))) {
      continue;
    }
    suspect = tunnel_suspect(t);
    if (best == NULL || suspect < best_suspect ||
        (suspect == best_suspect &&
         (t->active < best_active ||
          (t->active == best_active &&
           (idx + n - r->rr % n) % n < (best_idx + n - r->rr % n) % n)))) {
      best = t;
      best_active = t->active;
      best_suspect = suspect;
      best_idx = idx;
    }
  }
  ++r->rr;
  return best;
}

static void pend_timer_arm(relay *r) {
  struct timeval tv;
  prd_tstamp now = prd_now();
  if (r->pend_head == NULL) {
    evtimer_del(r->pend_timer);
    return;
  }
  tv_from_ns(&tv,
             r->pend_head->deadline > now ? r->pend_head->deadline - now : 0);
  evtimer_add(r->pend_timer, &tv);
}

static void pend_push(relay *r, tcpc *tc) {
  if (tc->pending) {
    return;
  }
  tc->pending = 1;
  tc->pnext = NULL;
  if (r->pend_tail) {
    r->pend_tail->pnext = tc;
  } else {
    r->pend_head = tc;
  }
  r->pend_tail = tc;
  pend_timer_arm(r);
}

/* Returns 1 when |tc| got a stream, 0 when it has to wait. */
static void unconf_arm(relay *r) {
  struct timeval tv = {0, 50000};
  if (r->unconf && !evtimer_pending(r->unconf_timer, NULL)) {
    evtimer_add(r->unconf_timer, &tv);
  }
}

static int server_assign_to(relay *r, tcpc *tc, tunnel *t);

/* unconf_move moves |tc| from silent |old| to |nt|: a new stream carries
 * the header and every byte read so far (spec/04-quic-profile.md §7). */
static void unconf_move(relay *r, tcpc *tc, tunnel *old, tunnel *nt) {
  prd_qstream *ost = tc->st;
  uint64_t skip = tc->hdrlen; /* the old stream's header */
  tc->st = NULL;
  if (old->active > 0) {
    --old->active;
  }
  unconf_remove(r, tc);
  if (server_assign_to(r, tc, nt)) {
    (void)prd_qstream_move_unacked(tc->st, ost, skip);
  }
  prd_qstream_set_user(ost, NULL);
  prd_qstream_abort(ost, PRD_APP_STREAM_REFUSED);
  prd_qstream_detach(ost);
  if (tc->st == NULL) {
    tc_close(tc, 1, 0, "no client to move the connection to");
    return;
  }
  PRD_LOG_INFO("[t%llu] moved to %s from silent client %s",
               (unsigned long long)tc->id, prd_quic_conn_name(nt->qc),
               prd_quic_conn_name(old->qc));
}

/* spec/04-quic-profile.md §7 Liveness: a stream of which the client
 * acknowledged nothing in max(3 PTO, 300 ms) marks the client suspect and
 * moves to another client with all its bytes. */
void on_unconf_timer(evutil_socket_t fd, short what, void *arg) {
  relay *r = arg;
  prd_tstamp now = prd_now();
  tcpc *tc, *next;
  (void)fd;
  (void)what;
  for (tc = r->unconf; tc; tc = next) {
    tunnel *old = tc->t, *nt;
    prd_qstream *ost = tc->st;
    uint64_t wait;
    next = tc->unext;
    if (ost == NULL || old == NULL || old->qc == NULL ||
        prd_qstream_acked(ost) > 0 || tc->down > 0) {
      unconf_remove(r, tc); /* acknowledged (or gone): confirmed */
      continue;
    }
    wait = 3 * prd_quic_conn_pto_ns(old->qc);
    if (wait < 300 * PRD_NS_PER_MS) {
      wait = 300 * PRD_NS_PER_MS;
    }
    if (now - tc->assigned < wait) {
      continue;
    }
    if (prd_quic_conn_last_rx(old->qc) > tc->assigned ||
        prd_qstream_sent(ost) < tc->hdrlen) {
      /* The client still talks (only slowly), or congestion kept the header
       * from going out: not a dead client. */
      continue;
    }
    if (!old->suspect_since) {
      char peer[80];
      old->suspect_since = now;
      PRD_LOG_WARN(
          "[%s] client %s acknowledges nothing: passing it over",
          prd_quic_conn_name(old->qc),
          prd_sockaddr_str(prd_quic_conn_remote(old->qc), peer, sizeof(peer)));
      prd_quic_conn_probe(old->qc);
    }
    nt = pick_tunnel(r, old);
    if (nt == NULL || tunnel_suspect(nt)) {
      continue; /* nowhere better: keep waiting */
    }
    unconf_move(r, tc, old, nt);
  }
  unconf_arm(r);
}

static int server_assign(relay *r, tcpc *tc) {
  tunnel *t = pick_tunnel(r, NULL);
  if (t == NULL) {
    return 0;
  }
  return server_assign_to(r, tc, t);
}

static int server_assign_to(relay *r, tcpc *tc, tunnel *t) {
  prd_stream_header hd;
  prd_sockaddr local;
  int rv;

  memset(&hd, 0, sizeof(hd));
  hd.version = PRD_PROTOCOL_VERSION;
  hd.has_src = 1;
  addr_to_hdr(&hd.src, &tc->peer);
  local.len = sizeof(local.u.ss);
  if (getsockname(tc->fd, &local.u.sa, &local.len) == 0) {
    hd.has_dst = 1;
    addr_to_hdr(&hd.dst, &local);
  }
  rv = prd_qstream_open(&tc->st, t->qc, &hd, tc);
  if (rv != 0) {
    tc->st = NULL;
    return 0;
  }
  tc->t = t;
  ++t->active;
  tc->hdrlen = prd_qstream_written(tc->st);
  tc->assigned = prd_now();
  if (!tc->unconfirmed) {
    tc->unconfirmed = 1;
    tc->unext = r->unconf;
    r->unconf = tc;
  }
  unconf_arm(r);
  PRD_LOG_DEBUG("[t%llu] forwarded on %s stream %lld",
                (unsigned long long)tc->id, prd_quic_conn_name(t->qc),
                (long long)prd_qstream_id(tc->st));
  tc_enable_read(tc, 1);
  return 1;
}

void pend_drain(relay *r) {
  while (r->pend_head) {
    tcpc *tc = r->pend_head;
    pend_remove(r, tc);
    if (!server_assign(r, tc)) {
      /* Put it back at the front: order is kept. */
      tc->pending = 1;
      tc->pnext = r->pend_head;
      r->pend_head = tc;
      if (r->pend_tail == NULL) {
        r->pend_tail = tc;
      }
      break;
    }
  }
  pend_timer_arm(r);
}

/* client_draining: an authenticated client sent GOAWAY and is still
 * connected: it is stopping, most often to be restarted. */
static int client_draining(relay *r) {
  for (tunnel *t = r->tunnels; t; t = t->next) {
    if (t->authenticated && t->qc && prd_quic_conn_peer_goaway(t->qc)) {
      return 1;
    }
  }
  return 0;
}

/* pend_extend gives every pending user a full --pending-timeout from now,
 * but never more than PEND_DRAIN_MAX_NS past its own. */
static void pend_extend(relay *r) {
  prd_tstamp d = prd_now() + r->cfg->pending_timeout_ns, cap;
  for (tcpc *tc = r->pend_head; tc; tc = tc->pnext) {
    cap = tc->start + r->cfg->pending_timeout_ns + PEND_DRAIN_MAX_NS;
    tc->deadline = tc->deadline > d ? tc->deadline : d;
    tc->deadline = tc->deadline < cap ? tc->deadline : cap;
  }
  pend_timer_arm(r);
}

void on_pend_timer(evutil_socket_t fd, short what, void *arg) {
  relay *r = arg;
  prd_tstamp now = prd_now();
  (void)fd;
  (void)what;
  if (client_draining(r)) {
    /* Users wait out a client's drain (a restart: systemctl restart stops
     * the old one before starting the new one), then --pending-timeout
     * more once it has gone (server_closed); up to a minute more in all. */
    pend_extend(r);
  }
  while (r->pend_head && r->pend_head->deadline <= now) {
    tcpc *tc = r->pend_head;
    tc_close(tc, 1, 0, "no client connected (--pending-timeout)");
  }
  pend_timer_arm(r);
}

void on_accept(evutil_socket_t fd, short what, void *arg) {
  relay *r = arg;
  (void)what;
  for (int i = 0; i < ACCEPT_BUDGET; ++i) {
    prd_sockaddr peer;
    int cfd;
    tcpc *tc;
    char buf[80];

    if (r->nconns >= r->cfg->max_connections) {
      /* Leave the rest in the kernel's backlog; resume when one closes. */
      event_del(r->listen_ev);
      r->listen_paused = 1;
      PRD_LOG_WARN("connection limit reached (--max-connections %u); "
                   "pausing accept",
                   r->cfg->max_connections);
      return;
    }
    peer.len = sizeof(peer.u.ss);
    cfd = accept4((int)fd, &peer.u.sa, &peer.len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (cfd < 0) {
      if (errno == EMFILE || errno == ENFILE) {
        struct timeval tv = {1, 0};
        PRD_LOG_WARN("accept: %s; pausing accept for a second",
                     strerror(errno));
        event_del(r->listen_ev);
        r->listen_paused = 1;
        /* A close resumes it sooner; with none open, this timer does. */
        evtimer_add(r->accept_retry, &tv);
      }
      return;
    }
    set_nodelay(cfd);
    tc = tc_new(r, cfd);
    if (tc == NULL) {
      close(cfd);
      continue;
    }
    tc->peer = peer;
    PRD_LOG_DEBUG("[t%llu] accepted from %s", (unsigned long long)tc->id,
                  prd_sockaddr_str(&peer, buf, sizeof(buf)));
    tc->deadline = tc->start + r->cfg->pending_timeout_ns;
    if (r->pend_head || !server_assign(r, tc)) {
      pend_push(r, tc);
      pend_drain(r);
    }
  }
}

static void server_listen_resume(relay *r) {
  if (r->listen_paused && !r->stopping && r->nconns < r->cfg->max_connections) {
    r->listen_paused = 0;
    event_add(r->listen_ev, NULL);
  }
}

static void on_accept_retry(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  server_listen_resume(arg);
}

/* NULL refuses the QUIC connection (quic.h): the peer may try again. */
static void *cb_conn_new(prd_quic_conn *qc, void *ud) {
  relay *r = ud;
  tunnel *t = calloc(1, sizeof(*t));
  if (t == NULL) {
    return NULL;
  }
  t->r = r;
  t->qc = qc;
  t->timer_fd = -1;
  if (tunnel_events(r, t) != 0) {
    tunnel_events_free(t);
    free(t);
    return NULL;
  }
  t->next = r->tunnels;
  if (r->tunnels) {
    r->tunnels->prev = t;
  }
  r->tunnels = t;
  return t;
}

static size_t server_num_clients(relay *r) {
  size_t n = 0;
  for (tunnel *t = r->tunnels; t; t = t->next) {
    n += t->authenticated && t->qc;
  }
  return n;
}

static void server_authenticated(prd_quic_conn *qc, void *ud) {
  tunnel *t = ud;
  relay *r = t->r;
  char peer[80];

  if (server_num_clients(r) >= r->cfg->max_clients) {
    PRD_LOG_WARN(
        "[%s] client limit reached (--max-clients %u): refusing %s",
        prd_quic_conn_name(qc), r->cfg->max_clients,
        prd_sockaddr_str(prd_quic_conn_remote(qc), peer, sizeof(peer)));
    prd_quic_conn_refuse(qc, "too many clients");
    return;
  }
  t->authenticated = 1;
  t->up_since = prd_now();
  ++r->metrics.clients;
  PRD_LOG_INFO("[%s] client authenticated from %s", prd_quic_conn_name(qc),
               prd_sockaddr_str(prd_quic_conn_remote(qc), peer, sizeof(peer)));
  /* A client that reconnects may leave a dead connection behind: probe the
   * others so the scheduler stops picking a dead one. */
  for (tunnel *o = r->tunnels; o; o = o->next) {
    if (o != t && o->qc && o->authenticated) {
      prd_quic_conn_probe(o->qc);
    }
  }
  if (r->stopping) {
    prd_quic_conn_goaway(qc, PRD_APP_SHUTTING_DOWN);
    return;
  }
  pend_drain(r);
}

static void server_streams_available(prd_quic_conn *qc, void *ud) {
  tunnel *t = ud;
  (void)qc;
  pend_drain(t->r);
}

static void server_closed(prd_quic_conn *qc, const prd_quic_close_info *ci,
                          void *ud) {
  tunnel *t = ud;
  relay *r;
  char peer[80];
  prd_quic_conn_info info;
  const char *msg = ci->msg;
  /* By kind and code: the text may hold the peer's own words. */
  int auth_failed =
      ci->kind == PRD_QUIC_CLOSE_LOCAL && ci->code == PRD_APP_AUTH_FAILED;
  if (t == NULL) {
    return;
  }
  r = t->r;
  prd_sockaddr_str(prd_quic_conn_remote(qc), peer, sizeof(peer));
  if (t->authenticated) {
    --r->metrics.clients;
    PRD_LOG_INFO("[%s] client %s disconnected: %s", prd_quic_conn_name(qc),
                 peer, msg && msg[0] ? msg : "closed");
    if (prd_quic_conn_peer_goaway(qc) && r->pend_head) {
      pend_extend(r); /* a drained client: its successor may be starting */
    }
  } else if (ci->kind == PRD_QUIC_CLOSE_PEER_TRANSPORT && ci->code == 0x0c) {
    /* spec/05-errors.md §3: quinn sends a certificate rejection as 0x0c. */
    PRD_LOG_WARN("[%s] the client %s aborted the handshake (it may have "
                 "rejected our certificate): %s",
                 prd_quic_conn_name(qc), peer, msg);
  } else if (ci->kind == PRD_QUIC_CLOSE_PEER_TRANSPORT && ci->code >= 0x100 &&
             ci->code <= 0x1ff) {
    /* spec/05-errors.md §3: a client that rejects our certificate. */
    PRD_LOG_WARN("[%s] handshake with %s failed: %s", prd_quic_conn_name(qc),
                 peer, msg);
  } else if (!auth_failed) {
    PRD_LOG_DEBUG("[%s] unauthenticated connection from %s ended: %s",
                  prd_quic_conn_name(qc), peer, msg && msg[0] ? msg : "");
  }
  if (!t->authenticated && auth_failed) {
    ++r->metrics.auth_failures;
  }
  /* The connection's loss count, kept for the lost-packets counter. */
  prd_quic_conn_get_info(qc, &info);
  r->metrics.lost_closed += info.lost_packets;
  t->qc = NULL;
  tunnel_events_free(t);
  if (t->prev) {
    t->prev->next = t->next;
  } else {
    r->tunnels = t->next;
  }
  if (t->next) {
    t->next->prev = t->prev;
  }
  free(t);
  if (r->stopping) {
    check_drained(r);
  }
}

static void server_want_writable(prd_quic_endpoint *ep, void *ud) {
  relay *r = ud;
  (void)ep;
  event_add(r->udp_wev, NULL);
}

/* ---- the server's part of the shared code (relay_role) ----------------- */

static const char *server_tcp_label(tcpc *tc, char *buf, size_t buflen) {
  return prd_sockaddr_str(&tc->peer, buf, buflen);
}

static void server_tcp_unlink(tcpc *tc) {
  pend_remove(tc->r, tc);
  unconf_remove(tc->r, tc);
}

static void server_stop(relay *r) {
  if (r->listen_ev) {
    event_del(r->listen_ev);
  }
  while (r->pend_head) {
    tc_close(r->pend_head, 1, 0, "server shutting down");
  }
}

const relay_role prd_relay_server_role = {
    .peer = "client",
    .local_reset_code = PRD_APP_USER_RESET,
    .tcp_label = server_tcp_label,
    .tcp_is_user = 1,
    .tcp_unlink = server_tcp_unlink,
    .tcp_freed = server_listen_resume,
    .stop = server_stop,
};

/* The descriptors the server may need: one per user connection, one timer
 * per QUIC connection (pending handshakes and clients), the metrics
 * connections and a few of its own. Raise the soft RLIMIT_NOFILE towards the
 * hard one; if that is still short, lower --max-connections so that accept
 * pauses at the cap before the process runs out (spec/08-security.md §3). */
static void server_check_nofile(prd_relay_config *cfg) {
  struct rlimit rl;
  uint64_t reserve = 64 + (uint64_t)cfg->quic.max_pending_handshakes +
                     cfg->max_clients + PRD_METRICS_MAX_CONNS;
  uint64_t need = reserve + cfg->max_connections, cap;

  if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY ||
      rl.rlim_cur >= need) {
    return;
  }
  if (rl.rlim_max == RLIM_INFINITY || rl.rlim_max > rl.rlim_cur) {
    struct rlimit up = rl;
    up.rlim_cur =
        rl.rlim_max == RLIM_INFINITY || rl.rlim_max > need ? need : rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &up) == 0) {
      rl = up;
    }
  }
  if (rl.rlim_cur >= need) {
    return;
  }
  cap = rl.rlim_cur > 2 * reserve ? rl.rlim_cur - reserve : rl.rlim_cur / 2;
  if (cap == 0) {
    cap = 1;
  }
  PRD_LOG_WARN("the descriptor limit (RLIMIT_NOFILE %llu) is below the %llu "
               "that --max-connections %u needs: accepting at most %llu user "
               "connections",
               (unsigned long long)rl.rlim_cur, (unsigned long long)need,
               cfg->max_connections, (unsigned long long)cap);
  cfg->max_connections = (uint32_t)cap;
}

/* server_listen_tcp opens the users' listening socket; logs and returns
 * -1 on failure. */
static int server_listen_tcp(relay *r) {
  prd_relay_config *cfg = r->cfg;
  char buf[80];
  int on = 1;

  r->listen_fd = socket(cfg->listen_addr.u.sa.sa_family,
                        SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (r->listen_fd >= 0) {
    setsockopt(r->listen_fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
    if (cfg->listen_addr.u.sa.sa_family == AF_INET6) {
      int off = 0;
      setsockopt(r->listen_fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof(off));
    }
  }
  if (r->listen_fd < 0 ||
      bind(r->listen_fd, &cfg->listen_addr.u.sa, cfg->listen_addr.len) != 0 ||
      listen(r->listen_fd, 4096) != 0) {
    PRD_LOG_ERROR("cannot listen for TCP on %s: %s (--local-host/--local-port)",
                  prd_sockaddr_str(&cfg->listen_addr, buf, sizeof(buf)),
                  strerror(errno));
    if (r->listen_fd >= 0) {
      close(r->listen_fd);
    }
    r->listen_fd = -1;
    return -1;
  }
  return 0;
}

/* server_free frees what the server made, after the loop: whatever is
 * left after the grace period goes now. */
static void server_free(relay *r) {
  while (r->pend_head) {
    tc_close(r->pend_head, 1, 0, "server shutting down");
  }
  prd_quic_endpoint_del(r->ep);
  while (r->tunnels) {
    tunnel *t = r->tunnels;
    r->tunnels = t->next;
    tunnel_events_free(t);
    free(t);
  }
  event_free(r->udp_rev);
  event_free(r->udp_wev);
  event_free(r->listen_ev);
  event_free(r->pend_timer);
  event_free(r->accept_retry);
  event_free(r->unconf_timer);
  close(r->listen_fd);
  relay_common_free(r);
}

int prd_relay_server_run(prd_relay_config *cfg) {
  relay r;
  char buf[80];
  int rv = 1;

  if (relay_common_init(&r, cfg, &prd_relay_server_role, 1) != 0) {
    return 1;
  }
  r.cb.authenticated = server_authenticated;
  r.cb.streams_available = server_streams_available;
  r.cb.closed = server_closed;
  r.cb.conn_new = cb_conn_new;
  r.cb.want_writable = server_want_writable;
  if (cfg->quic.max_pending_handshakes == 0) {
    cfg->quic.max_pending_handshakes = 256;
  }
  server_check_nofile(cfg);
  rv = prd_quic_endpoint_new_server(&r.ep, &cfg->quic, &cfg->quic_addr,
                                    cfg->static_secret);
  if (rv != 0) {
    PRD_LOG_ERROR("cannot listen for QUIC on %s: %s%s",
                  prd_sockaddr_str(&cfg->quic_addr, buf, sizeof(buf)),
                  prd_strerror(rv),
                  rv == -EADDRINUSE ? " (another program, perhaps another "
                                      "portredirect_server, has this "
                                      "--quic-server-port)"
                                    : "");
    relay_common_free(&r);
    return 1;
  }
  if (server_listen_tcp(&r) != 0) {
    prd_quic_endpoint_del(r.ep);
    relay_common_free(&r);
    return 1;
  }
  r.udp_rev = event_new(r.base, prd_quic_endpoint_fd(r.ep),
                        EV_READ | EV_PERSIST, on_udp_read, r.ep);
  r.udp_wev = event_new(r.base, prd_quic_endpoint_fd(r.ep), EV_WRITE,
                        on_udp_write, r.ep);
  r.listen_ev =
      event_new(r.base, r.listen_fd, EV_READ | EV_PERSIST, on_accept, &r);
  r.pend_timer = evtimer_new(r.base, on_pend_timer, &r);
  r.accept_retry = evtimer_new(r.base, on_accept_retry, &r);
  r.unconf_timer = evtimer_new(r.base, on_unconf_timer, &r);
  event_add(r.udp_rev, NULL);
  event_add(r.listen_ev, NULL);
  PRD_LOG_INFO("QUIC listening on %s",
               prd_sockaddr_str(&cfg->quic_addr, buf, sizeof(buf)));
  PRD_LOG_INFO("TCP listening on %s",
               prd_sockaddr_str(&cfg->listen_addr, buf, sizeof(buf)));
  r.ready_sent = 1;
  prd_notify("READY=1\nSTATUS=listening on TCP %s; no client yet", buf);

  event_base_dispatch(r.base);

  server_free(&r);
  PRD_LOG_INFO("server stopped");
  return 0;
}
