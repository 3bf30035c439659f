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
#include "../quic/ratelimit.h"
#include "peek.h"
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

/* tunnel_serves: |t| serves service |svc| at port offset |off|
 * (spec/02-framing.md §3.7, §4.4). */
static inline int tunnel_serves(const relay *r, const tunnel *t, unsigned svc,
                                unsigned off) {
  /* spec/03-auth.md §4.1: only what the client's identity allows. */
  if ((t->svc_denied >> svc) & 1u) {
    return 0;
  }
  if (!t->svc_negotiated) {
    return (int)svc == r->svc_default && off == 0;
  }
  return (t->svc_mask >> svc) & 1u;
}

/* relay_find_client: the client named |name| (|namelen| bytes) in the
 * configuration's table, or NULL. */
static const prd_relay_client *relay_find_client(const prd_relay_config *cfg,
                                                 const char *name,
                                                 size_t namelen) {
  for (size_t i = 0; i < cfg->nclients; ++i) {
    const prd_relay_client *cl = &cfg->clients[i];
    if (strlen(cl->name) == namelen && memcmp(cl->name, name, namelen) == 0) {
      return cl;
    }
  }
  return NULL;
}

/* server_client_key: the client table for the QUIC layer (quic.h,
 * prd_quic_client_key_fn), read from r->cfg at each authentication so that
 * a reload's table applies to the next one. */
static int server_client_key(void *arg, uint8_t *psk, size_t *ppsklen,
                             const char *name, size_t namelen,
                             const prd_sockaddr *peer) {
  relay *r = arg;
  const prd_relay_client *cl = relay_find_client(r->cfg, name, namelen);

  if (cl == NULL || cl->psk == NULL || cl->psklen == 0 ||
      cl->psklen > PRD_AUTH_PSK_MAX) {
    return PRD_ERR_CLIENT_UNKNOWN;
  }
  if (cl->nallow > 0 && !prd_rl_exempt(peer, cl->allow, cl->nallow)) {
    return PRD_ERR_CLIENT_NOT_ALLOWED;
  }
  memcpy(psk, cl->psk, cl->psklen);
  *ppsklen = cl->psklen;
  return 0;
}

/* client_denies: the services of r->cfg that client |name| may not serve,
 * as bits of cfg->services (none without a table, or with services=*). */
static uint32_t client_denies(const relay *r, const char *name) {
  const prd_relay_client *cl;
  uint32_t mask = UINT32_MAX;

  if (r->cfg->nclients == 0) {
    return 0;
  }
  cl = relay_find_client(r->cfg, name, strlen(name));
  if (cl == NULL) {
    return UINT32_MAX;
  }
  if (cl->all_services) {
    return 0;
  }
  for (size_t k = 0; k < r->cfg->nservices && k < 32; ++k) {
    for (size_t i = 0; i < cl->nservices; ++i) {
      if (strcmp(cl->services[i], r->cfg->services[k].name) == 0) {
        mask &= ~(1u << k);
      }
    }
  }
  return mask;
}

static inline int tunnel_eligible(const relay *r, const tunnel *t, unsigned svc,
                                  unsigned off) {
  return t->qc && t->authenticated && tunnel_serves(r, t, svc, off) &&
         prd_quic_conn_is_authenticated(t->qc) &&
         !prd_quic_conn_peer_goaway(t->qc) &&
         (!r->cfg->services[svc].udp || prd_quic_conn_datagrams_ok(t->qc));
}

tunnel *pick_tunnel(relay *r, tunnel *exclude, unsigned svc, unsigned off) {
  tunnel *t, *best = NULL;
  size_t best_active = SIZE_MAX;
  int best_suspect = 1;
  unsigned idx = 0, best_idx = 0, n = 0;

  for (t = r->tunnels; t; t = t->next) {
    if (t != exclude && tunnel_eligible(r, t, svc, off)) {
      ++n;
    }
  }
  if (n == 0) {
    return NULL;
  }
  for (t = r->tunnels; t; t = t->next, ++idx) {
    int suspect;
    if (t == exclude || !tunnel_eligible(r, t, svc, off)) {
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
    nt = pick_tunnel(r, old, tc->svc, tc->port_off);
    if (nt == NULL || tunnel_suspect(nt)) {
      continue; /* nowhere better: keep waiting */
    }
    unconf_move(r, tc, old, nt);
  }
  unconf_arm(r);
}

static int server_assign(relay *r, tcpc *tc) {
  tunnel *t = pick_tunnel(r, NULL, tc->svc, tc->port_off);
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
  /* spec/02-framing.md §4.4: SERVICE and PORT_OFFSET only where named
   * services were negotiated (tunnel_serves keeps the others at default,
   * offset 0); absent means default and 0. */
  if (t->svc_negotiated) {
    if ((int)tc->svc != r->svc_default) {
      const char *nm = svc_name(r, tc->svc);
      hd.has_service = 1;
      hd.servicelen = strlen(nm);
      memcpy(hd.service, nm, hd.servicelen + 1);
    }
    if (tc->port_off != 0) {
      hd.has_port_offset = 1;
      hd.port_offset = tc->port_off;
    }
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

/* pend_drain gives the pending users a client, in order within each
 * service: once a user of a service (and of offset 0 or not: only offset 0
 * may go to a client without named services) has to wait, the later ones
 * of the same kind wait too; the others go on. */
void pend_drain(relay *r) {
  uint64_t blocked = 0, all = 0;
  tcpc **pp = &r->pend_head, *prev = NULL;

  for (size_t i = 0; i < r->cfg->nservices && i < 32; ++i) {
    all |= (uint64_t)3 << (2 * i);
  }
  if (all == 0) {
    all = 3;
  }
  while (*pp && blocked != all) {
    tcpc *tc = *pp;
    uint64_t bit = (uint64_t)1 << (2 * tc->svc + (tc->port_off != 0));
    if ((blocked & bit) == 0) {
      /* Unlink, then try; on failure link it back where it was. */
      *pp = tc->pnext;
      if (r->pend_tail == tc) {
        r->pend_tail = prev;
      }
      tc->pending = 0;
      tc->pnext = NULL;
      if (server_assign(r, tc)) {
        continue;
      }
      blocked |= bit;
      tc->pending = 1;
      tc->pnext = *pp;
      *pp = tc;
      if (tc->pnext == NULL) {
        r->pend_tail = tc;
      }
    }
    prev = *pp;
    pp = &(*pp)->pnext;
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
    char why[128];
    if ((int)tc->svc == r->svc_default && tc->port_off == 0) {
      tc_close(tc, 1, 0, "no client connected (--pending-timeout)");
      continue;
    }
    snprintf(why, sizeof(why),
             "no client serves service \"%s\" port offset %u "
             "(--pending-timeout)",
             svc_name(r, tc->svc), (unsigned)tc->port_off);
    tc_close(tc, 1, 0, why);
  }
  pend_timer_arm(r);
}

static void listen_pause(relay *r) {
  for (size_t i = 0; i < r->nls; ++i) {
    event_del(r->ls[i].ev);
  }
  r->listen_paused = 1;
}

/* accepted sends a user's connection, its service known, to a client or
 * to the pending queue. */
static void accepted(relay *r, tcpc *tc) {
  char buf[80];

  svc_count(tc);
  PRD_LOG_DEBUG("[t%llu] accepted from %s%s%s%s", (unsigned long long)tc->id,
                prd_sockaddr_str(&tc->peer, buf, sizeof(buf)),
                (int)tc->svc == r->svc_default ? "" : " for service \"",
                (int)tc->svc == r->svc_default ? "" : svc_name(r, tc->svc),
                (int)tc->svc == r->svc_default ? "" : "\"");
  tc->deadline = tc->start + r->cfg->pending_timeout_ns;
  if (r->pend_head || !server_assign(r, tc)) {
    pend_push(r, tc);
    pend_drain(r);
  }
}

/* route_pick: the service of |routes| that |kind| |name| names, else the
 * one without sni=/host= (the address's default), else -1. */
static int route_pick(const relay *r, uint32_t routes, int kind,
                      const char *name) {
  int dflt = -1;
  for (size_t i = 0; i < r->cfg->nservices; ++i) {
    const prd_relay_service *sv = &r->cfg->services[i];
    if (((routes >> i) & 1u) == 0 || ((r->svc_gone >> i) & 1u)) {
      continue;
    }
    if (sv->route == PRD_ROUTE_NONE) {
      dflt = (int)i;
    } else if (kind != PRD_ROUTE_NONE && sv->route == kind &&
               strcmp(sv->route_name, name) == 0) {
      return (int)i;
    }
  }
  return dflt;
}

/* on_peek: a routed user's first bytes (README "Services", sni= and
 * host=). They are read with MSG_PEEK and stay in the socket, so they are
 * the stream's first bytes; the event is edge-triggered: it fires again
 * only when more arrive. Decided on a name, on PRD_PEEK_MAX bytes, on EOF
 * or after PRD_RELAY_PEEK_TIMEOUT_S. */
static void on_peek(evutil_socket_t fd, short what, void *arg) {
  tcpc *tc = arg;
  relay *r = tc->r;
  uint8_t buf[PRD_PEEK_MAX];
  char name[PRD_PEEK_NAME_MAX] = "";
  prd_tstamp now = prd_now();
  prd_peek_result rs = PRD_PEEK_NONE, rh = PRD_PEEK_NONE;
  int kind = PRD_ROUTE_NONE, svc;
  ssize_t n = recv((int)fd, buf, sizeof(buf), MSG_PEEK);

  if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
    tc_close(tc, 1, 0, "reset before its first bytes");
    return;
  }
  if (n > 0) {
    rs = prd_peek_sni(buf, (size_t)n, name);
    if (rs == PRD_PEEK_FOUND) {
      kind = PRD_ROUTE_SNI;
    } else {
      rh = prd_peek_http_host(buf, (size_t)n, name);
      kind = rh == PRD_PEEK_FOUND ? PRD_ROUTE_HOST : PRD_ROUTE_NONE;
    }
  }
  if (kind == PRD_ROUTE_NONE && n != 0 && !(what & EV_TIMEOUT) &&
      now < tc->deadline &&
      (n < 0 || rs == PRD_PEEK_MORE || rh == PRD_PEEK_MORE)) {
    struct timeval tv;
    uint64_t left = tc->deadline - now;
    tv.tv_sec = (time_t)(left / PRD_NS_PER_S);
    tv.tv_usec = (suseconds_t)(left % PRD_NS_PER_S / 1000);
    event_add(tc->peek_ev, &tv); /* the same deadline, not a new one */
    return;
  }
  relay_ev_free(&tc->peek_ev);
  if (r->stopping) {
    tc_close(tc, 1, 0, "server shutting down");
    return;
  }
  /* |name| holds only the characters of a host name (peek.c): safe to
   * log. */
  svc = route_pick(r, tc->peek_routes, kind, name);
  if (svc < 0) {
    char pb[80];
    if (r->noroute_logged == 0 || now - r->noroute_logged >= PRD_NS_PER_S) {
      PRD_LOG_WARN("[t%llu] closed a connection from %s: no service for "
                   "%s%s%s%s and no default on that address (%u more not "
                   "logged)",
                   (unsigned long long)tc->id,
                   prd_sockaddr_str(&tc->peer, pb, sizeof(pb)),
                   kind == PRD_ROUTE_SNI    ? "TLS server name \""
                   : kind == PRD_ROUTE_HOST ? "HTTP host \""
                                            : "a user without a name",
                   name, kind ? "\"" : "",
                   (what & EV_TIMEOUT) && kind == PRD_ROUTE_NONE
                       ? " (nothing to route by in 5 s)"
                       : "",
                   (unsigned)r->noroute_quiet);
      r->noroute_logged = now;
      r->noroute_quiet = 0;
    } else {
      ++r->noroute_quiet;
    }
    tc_close(tc, 0, 0, "no service for it on this address");
    return;
  }
  tc->svc = (uint16_t)svc;
  accepted(r, tc);
}

/* peek_start waits for |tc|'s first bytes to choose among |routes|. */
static void peek_start(relay *r, tcpc *tc, uint32_t routes) {
  struct timeval tv = {PRD_RELAY_PEEK_TIMEOUT_S, 0};

  tc->peek_routes = routes;
  tc->deadline = tc->start + (uint64_t)PRD_RELAY_PEEK_TIMEOUT_S * PRD_NS_PER_S;
  tc->peek_ev =
      event_new(r->base, tc->fd, EV_READ | EV_ET | EV_PERSIST, on_peek, tc);
  if (tc->peek_ev == NULL || event_add(tc->peek_ev, &tv) != 0) {
    tc_close(tc, 1, 0, "out of memory");
  }
}

/* allow_refuse: |peer| is not in service |sv|'s allowlist (README
 * "Services", allow=): count it and log it, at most a line per address (an
 * IPv6 /64) every 10 s. An IPv4-mapped IPv6 peer matches IPv4 prefixes. */
static int allow_refuse(relay *r, const listener *l, const prd_sockaddr *peer) {
  const prd_relay_service *sv = &r->cfg->services[l->svc];
  uint32_t quiet = 0;
  char buf[80];

  if (sv->nallow == 0 || prd_rl_exempt(peer, sv->allow, sv->nallow)) {
    return 0;
  }
  ++r->metrics.svc_refused_allow[l->svc];
  if (r->allow_rl && prd_rl_log_ok(r->allow_rl, peer, prd_now(), &quiet)) {
    PRD_LOG_WARN("refused a connection from %s to service \"%s\": not in "
                 "its allow list (%u more from there not logged)",
                 prd_sockaddr_str(peer, buf, sizeof(buf)), sv->name,
                 (unsigned)quiet);
  }
  return 1;
}

void on_accept(evutil_socket_t fd, short what, void *arg) {
  listener *l = arg;
  relay *r = l->r;
  (void)what;
  for (int i = 0; i < ACCEPT_BUDGET; ++i) {
    prd_sockaddr peer;
    int cfd;
    tcpc *tc;

    if (r->nconns >= r->cfg->max_connections) {
      /* Leave the rest in the kernel's backlog; resume when one closes. */
      listen_pause(r);
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
        listen_pause(r);
        /* A close resumes it sooner; with none open, this timer does. */
        evtimer_add(r->accept_retry, &tv);
      }
      return;
    }
    if (allow_refuse(r, l, &peer)) {
      close(cfd);
      continue;
    }
    set_nodelay(cfd);
    tc = tc_new(r, cfd);
    if (tc == NULL) {
      close(cfd);
      continue;
    }
    tc->peer = peer;
    tc->svc = l->svc;
    tc->port_off = l->off;
    if (l->routes != 0) {
      peek_start(r, tc, l->routes);
      continue;
    }
    accepted(r, tc);
  }
}

static void server_listen_resume(relay *r) {
  if (r->listen_paused && !r->stopping && r->nconns < r->cfg->max_connections) {
    r->listen_paused = 0;
    for (size_t i = 0; i < r->nls; ++i) {
      event_add(r->ls[i].ev, NULL);
    }
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
  /* spec/07 §1: with named services negotiated, eligible for none until
   * SERVICES arrives (server_services). */
  t->svc_negotiated = prd_quic_conn_services_negotiated(qc);
  t->up_since = prd_now();
  /* spec/03-auth.md §4.1: the name was checked with its key, so it holds
   * only [A-Za-z0-9._-]; escaped all the same. */
  prd_log_escape(t->client, sizeof(t->client),
                 (const uint8_t *)prd_quic_conn_client_name(qc),
                 strlen(prd_quic_conn_client_name(qc)));
  t->svc_denied = client_denies(r, t->client);
  ++r->metrics.clients;
  PRD_LOG_INFO("[%s] client authenticated from %s as \"%s\"",
               prd_quic_conn_name(qc),
               prd_sockaddr_str(prd_quic_conn_remote(qc), peer, sizeof(peer)),
               t->client);
  if (!t->svc_negotiated && r->svc_default >= 0 &&
      ((t->svc_denied >> r->svc_default) & 1u)) {
    PRD_LOG_WARN("[%s] client \"%s\" serves only the service default, which "
                 "the clients file does not allow it: it gets no streams",
                 prd_quic_conn_name(qc), t->client);
  }
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

/* server_services: the client declared its services (spec/02-framing.md
 * §3.7, spec/07 §1): it serves those this server has and its identity
 * allows; the others are refused with UNKNOWN_SERVICE, or
 * SERVICE_NOT_PERMITTED (spec/03-auth.md §4.1), and logged once per
 * client. */
static void server_services(prd_quic_conn *qc, const char *const *names,
                            size_t n, uint64_t *codes, void *ud) {
  tunnel *t = ud;
  relay *r;
  uint32_t mask = 0;
  char peer[80];

  if (t == NULL) {
    return;
  }
  r = t->r;
  t->nsvc_declared = 0;
  for (size_t i = 0; i < n; ++i) {
    size_t k;
    if (t->nsvc_declared < PRD_RELAY_MAX_SERVICES) {
      snprintf(t->svc_declared[t->nsvc_declared++], sizeof(t->svc_declared[0]),
               "%s", names[i]);
    }
    for (k = 0; k < r->cfg->nservices; ++k) {
      if (!((r->svc_gone >> k) & 1u) &&
          strcmp(names[i], r->cfg->services[k].name) == 0) {
        break;
      }
    }
    if (k < r->cfg->nservices && !((t->svc_denied >> k) & 1u)) {
      mask |= 1u << k;
      codes[i] = 0;
      continue;
    }
    if (k < r->cfg->nservices) {
      codes[i] = PRD_APP_SERVICE_NOT_PERMITTED;
      if (!t->svc_denied_logged) {
        t->svc_denied_logged = 1;
        PRD_LOG_WARN("[%s] client \"%s\" declared service \"%s\", which "
                     "its line in the clients file does not allow: refused "
                     "(SERVICE_NOT_PERMITTED)",
                     prd_quic_conn_name(qc), t->client, names[i]);
      }
      continue;
    }
    codes[i] = PRD_APP_UNKNOWN_SERVICE;
    if (!t->svc_refused_logged) {
      t->svc_refused_logged = 1;
      /* The codec let through only [A-Za-z0-9._-] (spec/02 §3.7). */
      PRD_LOG_WARN(
          "[%s] client %s declared service \"%s\", which this "
          "server does not have: refused (UNKNOWN_SERVICE)",
          prd_quic_conn_name(qc),
          prd_sockaddr_str(prd_quic_conn_remote(qc), peer, sizeof(peer)),
          names[i]);
    }
  }
  t->svc_mask = mask;
  t->svc_negotiated = 1; /* SERVICES comes only where negotiated */
  PRD_LOG_DEBUG("[%s] client serves %zu of the %zu services it declared",
                prd_quic_conn_name(qc), (size_t)__builtin_popcount(mask), n);
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
    PRD_LOG_INFO("[%s] client %s (\"%s\") disconnected: %s",
                 prd_quic_conn_name(qc), peer, t->client,
                 msg && msg[0] ? msg : "closed");
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
  udp_tunnel_gone(r, t);
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
  char peer[80];
  relay *r = tc->r;

  if ((int)tc->svc == r->svc_default && tc->port_off == 0) {
    return prd_sockaddr_str(&tc->peer, buf, buflen);
  }
  prd_sockaddr_str(&tc->peer, peer, sizeof(peer));
  if (tc->port_off == 0) {
    snprintf(buf, buflen, "%s service \"%s\"", peer, svc_name(r, tc->svc));
  } else {
    snprintf(buf, buflen, "%s service \"%s\" port offset %u", peer,
             svc_name(r, tc->svc), (unsigned)tc->port_off);
  }
  return buf;
}

static void server_tcp_unlink(tcpc *tc) {
  pend_remove(tc->r, tc);
  unconf_remove(tc->r, tc);
}

static void server_stop(relay *r) {
  for (size_t i = 0; i < r->nls; ++i) {
    event_del(r->ls[i].ev);
  }
  while (r->pend_head) {
    tc_close(r->pend_head, 1, 0, "server shutting down");
  }
}

static int server_reload(relay *r, prd_relay_config *next);

const relay_role prd_relay_server_role = {
    .peer = "client",
    .local_reset_code = PRD_APP_USER_RESET,
    .tcp_label = server_tcp_label,
    .tcp_is_user = 1,
    .tcp_unlink = server_tcp_unlink,
    .tcp_freed = server_listen_resume,
    .stop = server_stop,
    .reload = server_reload,
};

/* The descriptors the server may need: one per user connection, one timer
 * per QUIC connection (pending handshakes and clients), the metrics
 * connections and a few of its own. Raise the soft RLIMIT_NOFILE towards the
 * hard one; if that is still short, lower --max-connections so that accept
 * pauses at the cap before the process runs out (spec/08-security.md §3). */
static void server_check_nofile(prd_relay_config *cfg, size_t nls) {
  struct rlimit rl;
  uint64_t reserve = 64 + nls + (uint64_t)cfg->quic.max_pending_handshakes +
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

/* same_addr: |a| and |b| are the same address and port. */
static int same_addr(const prd_sockaddr *a, const prd_sockaddr *b) {
  if (a->u.sa.sa_family != b->u.sa.sa_family) {
    return 0;
  }
  if (a->u.sa.sa_family == AF_INET6) {
    return a->u.in6.sin6_port == b->u.in6.sin6_port &&
           memcmp(&a->u.in6.sin6_addr, &b->u.in6.sin6_addr, 16) == 0;
  }
  return a->u.in.sin_port == b->u.in.sin_port &&
         a->u.in.sin_addr.s_addr == b->u.in.sin_addr.s_addr;
}

/* svc_group: the first service listening on service |s|'s address (|s|
 * itself when it is the first); the others share its listener. */
static size_t svc_group(const prd_relay_config *cfg, size_t s) {
  for (size_t g = 0; g < s; ++g) {
    if (cfg->services[g].udp == cfg->services[s].udp &&
        same_addr(&cfg->services[g].listen_addr,
                  &cfg->services[s].listen_addr)) {
      return g;
    }
  }
  return s;
}

/* server_check_routes: services that share an address are told apart by
 * sni= or host= (one may have neither: the default), on one port each
 * (README "Services"). Logs and returns -1 when not. */
static int server_check_routes(const prd_relay_config *cfg) {
  char buf[80];
  for (size_t s = 0; s < cfg->nservices; ++s) {
    const prd_relay_service *a = &cfg->services[s];
    for (size_t k = 0; k < s; ++k) {
      const prd_relay_service *b = &cfg->services[k];
      const char *why = NULL;
      if (a->udp != b->udp || !same_addr(&a->listen_addr, &b->listen_addr)) {
        continue; /* a UDP and a TCP service may share a port number */
      }
      if (a->udp) {
        why = "UDP services cannot share an address (no routing for UDP)";
      } else if (a->nports > 1 || b->nports > 1) {
        why = "services on one address route one port each, not a range";
      } else if (a->route == PRD_ROUTE_NONE && b->route == PRD_ROUTE_NONE) {
        why = "give each sni= or host= (one may have neither: the default)";
      } else if (a->route == b->route &&
                 strcmp(a->route_name, b->route_name) == 0) {
        why = "both route the same name";
      }
      if (why) {
        PRD_LOG_ERROR("services \"%s\" and \"%s\" both listen on %s: %s",
                      b->name, a->name,
                      prd_sockaddr_str(&a->listen_addr, buf, sizeof(buf)), why);
        return -1;
      }
    }
  }
  return 0;
}

/* listen_open opens a listening TCP socket on |a|. Returns it, or -1 with
 * errno set. */
static int listen_open(const prd_sockaddr *a) {
  int on = 1, off6 = 0, err;
  int fd =
      socket(a->u.sa.sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return -1;
  }
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
  if (a->u.sa.sa_family == AF_INET6) {
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off6, sizeof(off6));
  }
  if (bind(fd, &a->u.sa, a->len) != 0 || listen(fd, 4096) != 0) {
    err = errno;
    close(fd);
    errno = err;
    return -1;
  }
  return fd;
}

/* server_listen_tcp opens the users' listening sockets, one per port of
 * each service, one for the services that share an address; logs and
 * returns -1 on failure. */
static int server_listen_tcp(relay *r) {
  prd_relay_config *cfg = r->cfg;
  char buf[80];
  size_t k = 0;

  if (r->nls == 0) {
    return 0; /* UDP services only */
  }
  r->ls = calloc(r->nls, sizeof(*r->ls));
  if (r->ls == NULL) {
    PRD_LOG_ERROR("out of memory");
    r->nls = 0;
    return -1;
  }
  for (size_t i = 0; i < r->nls; ++i) {
    r->ls[i].fd = -1;
  }
  for (size_t s = 0; s < cfg->nservices; ++s) {
    const prd_relay_service *sv = &cfg->services[s];
    unsigned nports = sv->nports ? sv->nports : 1;
    uint32_t routes = 0;
    int shared = 0;
    if (sv->udp || svc_group(cfg, s) != s) {
      continue; /* the first on its address listens; UDP: udp.c */
    }
    for (size_t m = s; m < cfg->nservices; ++m) {
      if (svc_group(cfg, m) == s) {
        routes |= 1u << m;
        shared |= m != s || cfg->services[m].route != PRD_ROUTE_NONE;
      }
    }
    for (unsigned off = 0; off < nports; ++off, ++k) {
      listener *l = &r->ls[k];
      prd_sockaddr a = sv->listen_addr;
      uint16_t port = (uint16_t)(ntohs(a.u.in.sin_port) + off);
      if (a.u.sa.sa_family == AF_INET6) {
        a.u.in6.sin6_port = htons(port);
      } else {
        a.u.in.sin_port = htons(port);
      }
      l->r = r;
      l->svc = (uint16_t)s;
      l->off = (uint16_t)off;
      l->routes = shared ? routes : 0;
      l->addr = a;
      l->fd = listen_open(&a);
      if (l->fd < 0) {
        if ((int)s == r->svc_default && cfg->services[s].nports <= 1 &&
            cfg->nservices == 1) {
          PRD_LOG_ERROR(
              "cannot listen for TCP on %s: %s (--local-host/--local-port)",
              prd_sockaddr_str(&a, buf, sizeof(buf)), strerror(errno));
        } else {
          PRD_LOG_ERROR("cannot listen for TCP on %s: %s (--service %s)",
                        prd_sockaddr_str(&a, buf, sizeof(buf)), strerror(errno),
                        sv->name);
        }
        return -1;
      }
    }
  }
  return 0;
}

/* server_check_et: on_peek relies on edge-triggered events (epoll): a
 * level-triggered one would fire again at once for the bytes it leaves in
 * the socket. Logs and returns -1 when routing is asked for without them. */
static int server_check_et(relay *r) {
  for (size_t i = 0; i < r->nls; ++i) {
    if (r->ls[i].routes != 0 &&
        (event_base_get_features(r->base) & EV_FEATURE_ET) == 0) {
      PRD_LOG_ERROR("sni=/host= routing needs edge-triggered events, which "
                    "libevent's %s method lacks",
                    event_base_get_method(r->base));
      return -1;
    }
  }
  return 0;
}

/* server_free frees what the server made, after the loop: whatever is
 * left after the grace period goes now. */
static void server_free(relay *r) {
  while (r->pend_head) {
    tc_close(r->pend_head, 1, 0, "server shutting down");
  }
  udp_free(r);
  prd_quic_endpoint_del(r->ep);
  qtcp_server_free(r);
  while (r->tunnels) {
    tunnel *t = r->tunnels;
    r->tunnels = t->next;
    tunnel_events_free(t);
    free(t);
  }
  event_free(r->udp_rev);
  event_free(r->udp_wev);
  for (size_t i = 0; i < r->nls; ++i) {
    if (r->ls[i].ev) {
      event_free(r->ls[i].ev);
    }
    if (r->ls[i].fd >= 0) {
      close(r->ls[i].fd);
    }
  }
  free(r->ls);
  event_free(r->pend_timer);
  event_free(r->accept_retry);
  event_free(r->unconf_timer);
  free(r->allow_rl);
  relay_common_free(r);
}

/* ---- reload (README "Reload") ------------------------------------------ */

static int svc_is_gone(const relay *r, size_t s) {
  return (r->svc_gone >> s) & 1u;
}

/* svc_live_group is svc_group among the services a reload left. */
static size_t svc_live_group(const relay *r, size_t s) {
  for (size_t g = 0; g < s; ++g) {
    if (!svc_is_gone(r, g) &&
        r->cfg->services[g].udp == r->cfg->services[s].udp &&
        same_addr(&r->cfg->services[g].listen_addr,
                  &r->cfg->services[s].listen_addr)) {
      return g;
    }
  }
  return s;
}

/* want_listeners writes into |w| (when not NULL) the listeners the services
 * not gone need, as server_listen_tcp makes them; returns their count. */
static size_t want_listeners(const relay *r, listener *w) {
  const prd_relay_config *cfg = r->cfg;
  size_t n = 0;
  for (size_t s = 0; s < cfg->nservices; ++s) {
    const prd_relay_service *sv = &cfg->services[s];
    unsigned nports = sv->nports ? sv->nports : 1;
    uint32_t routes = 0;
    int shared = 0;
    if (sv->udp || svc_is_gone(r, s) || svc_live_group(r, s) != s) {
      continue; /* UDP: relay/udp.c's sockets */
    }
    for (size_t m = s; m < cfg->nservices; ++m) {
      if (!svc_is_gone(r, m) && svc_live_group(r, m) == s) {
        routes |= 1u << m;
        shared |= m != s || cfg->services[m].route != PRD_ROUTE_NONE;
      }
    }
    for (unsigned off = 0; off < nports; ++off, ++n) {
      listener *l;
      uint16_t port;
      if (w == NULL) {
        continue;
      }
      l = &w[n];
      l->addr = sv->listen_addr;
      port = (uint16_t)(ntohs(l->addr.u.in.sin_port) + off);
      if (l->addr.u.sa.sa_family == AF_INET6) {
        l->addr.u.in6.sin6_port = htons(port);
      } else {
        l->addr.u.in.sin_port = htons(port);
      }
      l->svc = (uint16_t)s;
      l->off = (uint16_t)off;
      l->routes = shared ? routes : 0;
      l->fd = -1;
    }
  }
  return n;
}

/* server_relisten makes the listeners match the services: a socket whose
 * address is still wanted stays open (its backlog with it), the others
 * close, new addresses are bound. A service whose address cannot be bound
 * is logged (one ERROR) and left out with the services sharing it. */
static void server_relisten(relay *r) {
  for (int attempt = 0; attempt <= PRD_RELAY_MAX_SERVICES; ++attempt) {
    size_t n = want_listeners(r, NULL), failed = SIZE_MAX;
    listener *w = calloc(n ? n : 1, sizeof(*w));
    size_t *from = calloc(n ? n : 1, sizeof(*from)); /* r->ls index + 1 */
    char buf[80];
    if (w == NULL || from == NULL) {
      PRD_LOG_ERROR("reload: out of memory; the listeners stay as they were");
      free(w);
      free(from);
      return;
    }
    want_listeners(r, w);
    for (size_t i = 0; i < n && failed == SIZE_MAX; ++i) {
      for (size_t j = 0; j < r->nls && from[i] == 0; ++j) {
        int taken = 0;
        for (size_t k = 0; k < i; ++k) {
          taken |= from[k] == j + 1;
        }
        if (!taken && r->ls[j].fd >= 0 &&
            same_addr(&r->ls[j].addr, &w[i].addr)) {
          from[i] = j + 1;
          w[i].fd = r->ls[j].fd;
        }
      }
      if (w[i].fd < 0 && (w[i].fd = listen_open(&w[i].addr)) < 0) {
        failed = i;
        PRD_LOG_ERROR("reload: cannot listen for TCP on %s: %s; service "
                      "\"%s\" left out",
                      prd_sockaddr_str(&w[i].addr, buf, sizeof(buf)),
                      strerror(errno), r->cfg->services[w[i].svc].name);
      }
    }
    if (failed != SIZE_MAX) {
      /* Leave out the service and those routed on its address; close
       * what this attempt opened, and plan again. */
      r->svc_gone |= w[failed].routes ? w[failed].routes : 1u << w[failed].svc;
      for (size_t i = 0; i < failed; ++i) {
        if (from[i] == 0) {
          close(w[i].fd);
        }
      }
      free(w);
      free(from);
      continue;
    }
    for (size_t i = 0; i < n; ++i) {
      if (from[i] != 0) {
        listener *old = &r->ls[from[i] - 1];
        relay_ev_free(&old->ev);
        old->fd = -1; /* now w[i]'s: its backlog stays */
      }
      w[i].r = r;
      w[i].ev =
          event_new(r->base, w[i].fd, EV_READ | EV_PERSIST, on_accept, &w[i]);
      if (w[i].ev && !r->listen_paused && !r->stopping) {
        event_add(w[i].ev, NULL);
      }
    }
    for (size_t j = 0; j < r->nls; ++j) {
      relay_ev_free(&r->ls[j].ev);
      if (r->ls[j].fd >= 0) {
        close(r->ls[j].fd);
      }
    }
    free(r->ls);
    free(from);
    r->ls = w;
    r->nls = n;
    return;
  }
}

/* client_known: |name| is in |cfg|'s clients table (or there is none). */
static int client_known(const prd_relay_client *clients, size_t n,
                        const char *name) {
  for (size_t i = 0; i < n; ++i) {
    if (name && strcmp(clients[i].name, name) == 0) {
      return 1;
    }
  }
  return n == 0;
}

/* tunnel_remask: the services |t| serves once a reload changed them: those
 * of its last SERVICES that exist and that its client may serve. */
static void tunnel_remask(relay *r, tunnel *t) {
  uint32_t mask = 0;
  for (size_t i = 0; i < t->nsvc_declared; ++i) {
    for (size_t k = 0; k < r->cfg->nservices; ++k) {
      if (!svc_is_gone(r, k) &&
          strcmp(t->svc_declared[i], r->cfg->services[k].name) == 0 &&
          !((t->svc_denied >> k) & 1u)) {
        mask |= 1u << k;
      }
    }
  }
  t->svc_mask = mask;
}

/* server_reload applies |next| (relay_role.reload). */
static int server_reload(relay *r, prd_relay_config *next) {
  prd_relay_config *cfg = r->cfg;
  const prd_quic_config *oq = &cfg->quic, *nq = &next->quic;
  svc_plan p;
  unsigned cadd = 0, crem = 0, nrevoked = 0, left_out;
  uint32_t gone_before;
  size_t nlive = 0;

  if (next->nservices == 0 || server_check_routes(next) != 0) {
    PRD_LOG_ERROR("reload refused: no usable service; the running "
                  "configuration stays");
    return -1;
  }
  if (reload_keep_udp(r, next) != 0) {
    return -1;
  }
  /* What needs a new socket, certificate or process: said, not applied. */
  WARN_RESTART(!same_addr(&cfg->quic_addr, &next->quic_addr),
               "--quic-server-host/--quic-server-port");
  WARN_RESTART(strcmp(cfg->metrics_listen, next->metrics_listen) != 0,
               "--metrics-listen");
  WARN_RESTART(cfg->quic_tcp_off != next->quic_tcp_off ||
                   (!cfg->quic_tcp_off &&
                    !same_addr(&cfg->quic_tcp_addr, &next->quic_tcp_addr)),
               "--quic-tcp-listen");
  WARN_RESTART(oq->idle_timeout_ns != nq->idle_timeout_ns, "--idle-timeout");
  WARN_RESTART(oq->keepalive_ns != nq->keepalive_ns, "--keepalive");
  WARN_RESTART(oq->max_udp_payload != nq->max_udp_payload, "--max-udp-payload");
  WARN_RESTART(oq->cc_algo != nq->cc_algo, "--congestion-control");
  WARN_RESTART(oq->no_queue_bound != nq->no_queue_bound, "--queue-bound");
  WARN_RESTART(oq->auth_timeout_ns != nq->auth_timeout_ns, "--auth-timeout");
  WARN_RESTART(oq->auth_fail_cooldown_ns != nq->auth_fail_cooldown_ns ||
                   oq->nauth_exempt != nq->nauth_exempt ||
                   (oq->nauth_exempt > 0 &&
                    memcmp(oq->auth_exempt, nq->auth_exempt,
                           oq->nauth_exempt * sizeof(*oq->auth_exempt)) != 0),
               "--auth-fail-cooldown/--auth-fail-exempt");
  WARN_RESTART(strcmp(oq->keylog_file ? oq->keylog_file : "",
                      nq->keylog_file ? nq->keylog_file : "") != 0,
               "--keylog-file");
  /* Live: limits and timers read when used. */
  cfg->pending_timeout_ns = next->pending_timeout_ns;
  cfg->max_clients = next->max_clients;
  cfg->max_connections = next->max_connections;
  cfg->grace_ns = next->grace_ns;
  cfg->print_metrics = next->print_metrics;
  /* The key of new connections; connected clients keep their tunnels. */
  if (oq->psklen != nq->psklen ||
      (nq->psklen && memcmp(oq->psk, nq->psk, nq->psklen) != 0)) {
    PRD_LOG_INFO("reload: the PSK changed: clients authenticate with the "
                 "new one; those connected keep their tunnels");
  }
  cfg->quic.psk = nq->psk;
  cfg->quic.psklen = nq->psklen;
  prd_quic_endpoint_set_psk(r->ep, nq->psk, nq->psklen);

  /* Services: by name onto the running slots. */
  svc_plan_make(&p, cfg->services, cfg->nservices, r->svc_gone,
                r->metrics.svc_active, next->services, next->nservices);
  r->svc_gone |= p.removed;
  for (tcpc *tc = r->pend_head, *nx; tc; tc = nx) {
    nx = tc->pnext;
    if ((p.removed >> tc->svc) & 1u) {
      tc_close(tc, 1, 0, "its service was removed (reload)");
    }
  }
  for (size_t i = 0; i < next->nservices; ++i) {
    int s = p.slot[i];
    if (s < 0) {
      PRD_LOG_ERROR("reload: no room for service \"%s\" (at most %d, "
                    "counting removed ones still in use): left out",
                    next->services[i].name, PRD_RELAY_MAX_SERVICES);
      continue;
    }
    if (p.change[i] == SVC_ADDED) {
      r->metrics.svc_total[s] = 0;
      r->metrics.svc_active[s] = 0;
      r->metrics.svc_refused_allow[s] = 0;
      r->svc_gone &= ~(1u << s);
    }
    cfg->services[s] = next->services[i];
  }
  cfg->nservices = p.nslots;
  gone_before = r->svc_gone;
  server_relisten(r);
  left_out = (unsigned)__builtin_popcount(r->svc_gone & ~gone_before);
  r->svc_default = -1;
  r->metrics.nsvc = cfg->nservices;
  for (size_t s = 0; s < cfg->nservices; ++s) {
    r->metrics.svc_names[s] = cfg->services[s].name;
    if (!svc_is_gone(r, s)) {
      ++nlive;
      if (strcmp(cfg->services[s].name, PRD_SERVICE_DEFAULT) == 0) {
        r->svc_default = (int)s;
      }
      if (cfg->services[s].nallow > 0 && r->allow_rl == NULL &&
          (r->allow_rl = calloc(1, sizeof(*r->allow_rl))) != NULL) {
        prd_rl_init(r->allow_rl, cfg->static_secret);
      }
    }
  }

  /* Clients: the table the authentication reads; a connected client whose
   * name left it is revoked (spec/07-state-machines.md §6). */
  for (size_t i = 0; i < next->nclients; ++i) {
    cadd += !client_known(cfg->clients, cfg->nclients, next->clients[i].name) ||
            cfg->nclients == 0;
  }
  for (size_t i = 0; i < cfg->nclients; ++i) {
    crem +=
        !client_known(next->clients, next->nclients, cfg->clients[i].name) ||
        next->nclients == 0;
  }
  cfg->clients = next->clients;
  cfg->nclients = next->nclients;
  for (tunnel *t = r->tunnels, *nx; t; t = nx) {
    const char *cname;
    nx = t->next; /* closing may free |t| */
    if (t->qc == NULL || !t->authenticated) {
      continue;
    }
    cname = prd_quic_conn_client_name(t->qc);
    if (!client_known(cfg->clients, cfg->nclients, cname)) {
      char peer[80];
      ++nrevoked;
      PRD_LOG_WARN(
          "[%s] client \"%s\" from %s revoked (reload): closing its "
          "connection (CLIENT_REVOKED)",
          prd_quic_conn_name(t->qc), cname ? cname : "?",
          prd_sockaddr_str(prd_quic_conn_remote(t->qc), peer, sizeof(peer)));
      prd_quic_conn_close(t->qc, PRD_APP_CLIENT_REVOKED, "client revoked");
      continue;
    }
    /* spec/03-auth.md §4.1 with the new table's services= lines. */
    t->svc_denied = client_denies(r, t->client);
    if (t->svc_negotiated) {
      tunnel_remask(r, t);
    }
  }
  PRD_LOG_INFO("reload: %zu services (+%u -%u ~%u), %zu clients (+%u -%u), "
               "%u revoked%s",
               nlive, p.nadded, p.nremoved, p.nchanged, cfg->nclients, cadd,
               crem, nrevoked, left_out ? ", some left out (see above)" : "");
  pend_drain(r);
  return 0;
}

int prd_relay_server_run(prd_relay_config *cfg) {
  relay r;
  char buf[80];
  int rv = 1;

  if (relay_common_init(&r, cfg, &prd_relay_server_role, 1) != 0) {
    return 1;
  }
  r.qtcp_fd = -1;
  r.cb.authenticated = server_authenticated;
  r.cb.streams_available = server_streams_available;
  r.cb.closed = server_closed;
  r.cb.services = server_services;
  r.cb.conn_new = cb_conn_new;
  r.cb.want_writable = server_want_writable;
  if (cfg->nclients > 0) {
    /* spec/03-auth.md §4.1: each client's key from the table. */
    cfg->quic.client_key = server_client_key;
    cfg->quic.client_key_arg = &r;
  }
  r.cb.datagram = udp_on_datagram;
  cfg->quic.datagrams = udp_any(cfg); /* spec/10-udp.md §2 */
  if (cfg->quic.max_pending_handshakes == 0) {
    cfg->quic.max_pending_handshakes = 256;
  }
  relay_services_init(&r);
  if (server_check_routes(cfg) != 0) {
    relay_common_free(&r);
    return 1;
  }
  for (size_t i = 0; i < cfg->nservices; ++i) {
    if (!cfg->services[i].udp && svc_group(cfg, i) == i) {
      r.nls += cfg->services[i].nports ? cfg->services[i].nports : 1;
    }
  }
  server_check_nofile(cfg, r.nls);
  for (size_t i = 0; i < cfg->nservices && r.allow_rl == NULL; ++i) {
    if (cfg->services[i].nallow > 0) {
      /* Only with an allowlist: the single-service path pays nothing. */
      r.allow_rl = calloc(1, sizeof(*r.allow_rl));
      if (r.allow_rl == NULL) {
        PRD_LOG_ERROR("out of memory");
        relay_common_free(&r);
        return 1;
      }
      prd_rl_init(r.allow_rl, cfg->static_secret);
    }
  }
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
    free(r.allow_rl);
    relay_common_free(&r);
    return 1;
  }
  if (server_listen_tcp(&r) != 0 || server_check_et(&r) != 0 ||
      udp_start(&r) != 0 || qtcp_server_listen(&r) != 0) {
    qtcp_server_free(&r);
    udp_free(&r);
    for (size_t i = 0; i < r.nls; ++i) {
      if (r.ls[i].fd >= 0) {
        close(r.ls[i].fd);
      }
    }
    free(r.ls);
    free(r.allow_rl);
    prd_quic_endpoint_del(r.ep);
    relay_common_free(&r);
    return 1;
  }
  r.udp_rev = event_new(r.base, prd_quic_endpoint_fd(r.ep),
                        EV_READ | EV_PERSIST, on_udp_read, r.ep);
  r.udp_wev = event_new(r.base, prd_quic_endpoint_fd(r.ep), EV_WRITE,
                        on_udp_write, r.ep);
  for (size_t i = 0; i < r.nls; ++i) {
    r.ls[i].ev = event_new(r.base, r.ls[i].fd, EV_READ | EV_PERSIST, on_accept,
                           &r.ls[i]);
  }
  r.pend_timer = evtimer_new(r.base, on_pend_timer, &r);
  r.accept_retry = evtimer_new(r.base, on_accept_retry, &r);
  r.unconf_timer = evtimer_new(r.base, on_unconf_timer, &r);
  event_add(r.udp_rev, NULL);
  for (size_t i = 0; i < r.nls; ++i) {
    event_add(r.ls[i].ev, NULL);
  }
  PRD_LOG_INFO("QUIC listening on %s",
               prd_sockaddr_str(&cfg->quic_addr, buf, sizeof(buf)));
  for (size_t i = 0; i < cfg->nservices; ++i) {
    const prd_relay_service *sv = &cfg->services[i];
    if (sv->udp) {
      continue; /* logged by udp_start */
    }
    prd_sockaddr_str(&sv->listen_addr, buf, sizeof(buf));
    if ((int)i == r.svc_default && sv->nports <= 1) {
      PRD_LOG_INFO("TCP listening on %s", buf);
    } else if (sv->nports <= 1) {
      PRD_LOG_INFO("TCP listening on %s for service \"%s\"", buf, sv->name);
    } else {
      PRD_LOG_INFO("TCP listening on %s (and the next %u ports) for service "
                   "\"%s\"",
                   buf, (unsigned)sv->nports - 1, sv->name);
    }
  }
  prd_sockaddr_str(&cfg->services[0].listen_addr, buf, sizeof(buf));
  r.ready_sent = 1;
  prd_notify("READY=1\nSTATUS=listening on TCP %s; no client yet", buf);

  event_base_dispatch(r.base);

  server_free(&r);
  PRD_LOG_INFO("server stopped");
  return 0;
}
