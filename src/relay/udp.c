/* SPDX-License-Identifier: GPL-3.0-only */
/* UDP services (spec/10-udp.md): the server's listening UDP sockets and its
 * flows, one per user address and port, carried to a client in DATAGRAM
 * frames; the client's flows, one connected UDP socket each towards the
 * destination so that replies map back. Flows expire when idle and are
 * bounded per service and in all; every drop is counted per service. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../common/log.h"
#include "../quic/ratelimit.h"
#include "relay_int.h"

#define NBUCKETS 4096
#define HDR_ROOM 128    /* room before a payload for its header */
#define READ_BUDGET 64  /* datagrams read per readable event */
#define MAX_DGRAM 65535 /* the largest UDP payload read */
#define LISTEN_SOCKBUF (4 * 1024 * 1024)

typedef struct udp_sock {
  struct udp_state *st;
  int fd;
  struct event *ev;
  uint16_t svc, off;
} udp_sock;

typedef struct uflow uflow;
struct uflow {
  struct udp_state *st;
  uflow *pnext;       /* server: chain by user address (by_peer) */
  uflow *inext;       /* chain by tunnel and flow ID (by_id) */
  uflow *prev, *next; /* all flows */
  tunnel *t;
  uint64_t id;
  uint16_t svc, off;
  prd_sockaddr peer; /* server: the user */
  udp_sock *us;      /* server: the listening socket it came to */
  int fd;            /* client: connected to the destination */
  struct event *ev;  /* client: its readable event */
  prd_tstamp last;   /* the last datagram either way */
  unsigned replied : 1, confirmed : 1;
};

struct udp_state {
  relay *r;
  udp_sock *socks;
  size_t nsocks;
  uflow *by_peer[NBUCKETS], *by_id[NBUCKETS];
  uflow *all;
  size_t nflows;
  size_t svc_flows[PRD_RELAY_MAX_SERVICES];
  struct event *sweep;
  uint64_t sweep_ns;
  uint8_t buf[HDR_ROOM + MAX_DGRAM + 1];
};

/* ---- flows --------------------------------------------------------------- */

static uint32_t mix(uint64_t h) {
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  return (uint32_t)h;
}

static uint32_t hash_id(const tunnel *t, uint64_t id) {
  return mix((uint64_t)(uintptr_t)t * 31 + id) % NBUCKETS;
}

static uint32_t hash_peer(const udp_sock *us, const prd_sockaddr *a) {
  uint64_t h = (uint64_t)(uintptr_t)us;
  const uint8_t *p;
  size_t n;
  if (a->u.sa.sa_family == AF_INET6) {
    p = (const uint8_t *)&a->u.in6.sin6_addr;
    n = 16;
    h = h * 31 + a->u.in6.sin6_port;
  } else {
    p = (const uint8_t *)&a->u.in.sin_addr;
    n = 4;
    h = h * 31 + a->u.in.sin_port;
  }
  for (size_t i = 0; i < n; ++i) {
    h = h * 131 + p[i];
  }
  return mix(h) % NBUCKETS;
}

static int same_peer(const prd_sockaddr *a, const prd_sockaddr *b) {
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

static uflow *find_by_id(struct udp_state *st, const tunnel *t, uint64_t id) {
  uflow *f = st->by_id[hash_id(t, id)];
  while (f && !(f->t == t && f->id == id)) {
    f = f->inext;
  }
  return f;
}

static uflow *find_by_peer(struct udp_state *st, const udp_sock *us,
                           const prd_sockaddr *a) {
  uflow *f = st->by_peer[hash_peer(us, a)];
  while (f && !(f->us == us && same_peer(&f->peer, a))) {
    f = f->pnext;
  }
  return f;
}

/* drop counts a dropped datagram of service |svc|; SVC_UNKNOWN for one
 * whose service is not known (an unknown flow, a malformed message): it is
 * counted under the first UDP service. */
#define SVC_UNKNOWN 0xffffu
static void drop(relay *r, unsigned svc, int reason) {
  if (svc == SVC_UNKNOWN) {
    for (svc = 0; svc < r->cfg->nservices && !r->cfg->services[svc].udp;
         ++svc) {
    }
  }
  if (svc < PRD_RELAY_MAX_SERVICES) {
    ++r->metrics.udp_drops[reason][svc];
  }
}

/* svc_timeout_ns: how long flow |f| may stay idle (spec/10-udp.md §4). */
static uint64_t svc_timeout_ns(const relay *r, const uflow *f) {
  const prd_relay_service *sv = &r->cfg->services[f->svc];
  if (f->replied) {
    return sv->udp_stream_timeout_ns ? sv->udp_stream_timeout_ns
                                     : PRD_UDP_STREAM_TIMEOUT_NS;
  }
  return sv->udp_timeout_ns ? sv->udp_timeout_ns : PRD_UDP_TIMEOUT_NS;
}

static void on_dest_read(evutil_socket_t fd, short what, void *arg);

/* flow_new makes a flow of service |svc| on |t|; NULL (counted) over the
 * limits or out of memory. */
static uflow *flow_new(struct udp_state *st, tunnel *t, uint64_t id,
                       unsigned svc, unsigned off) {
  relay *r = st->r;
  uflow *f;

  if (st->nflows >= PRD_UDP_MAX_FLOWS ||
      st->svc_flows[svc] >= PRD_UDP_MAX_SVC_FLOWS) {
    drop(r, svc, PRD_UDP_DROP_FLOW_LIMIT);
    return NULL;
  }
  f = calloc(1, sizeof(*f));
  if (f == NULL) {
    drop(r, svc, PRD_UDP_DROP_SOCKET);
    return NULL;
  }
  f->st = st;
  f->t = t;
  f->id = id;
  f->svc = (uint16_t)svc;
  f->off = (uint16_t)off;
  f->fd = -1;
  f->last = prd_now();
  f->next = st->all;
  if (st->all) {
    st->all->prev = f;
  }
  st->all = f;
  f->inext = st->by_id[hash_id(t, id)];
  st->by_id[hash_id(t, id)] = f;
  ++st->nflows;
  ++st->svc_flows[svc];
  ++r->metrics.udp_flows[svc];
  return f;
}

static void flow_free(uflow *f) {
  struct udp_state *st = f->st;
  uflow **pp;

  for (pp = &st->by_id[hash_id(f->t, f->id)]; *pp != f; pp = &(*pp)->inext) {
  }
  *pp = f->inext;
  if (f->us) {
    for (pp = &st->by_peer[hash_peer(f->us, &f->peer)]; *pp != f;
         pp = &(*pp)->pnext) {
    }
    *pp = f->pnext;
  }
  if (f->prev) {
    f->prev->next = f->next;
  } else {
    st->all = f->next;
  }
  if (f->next) {
    f->next->prev = f->prev;
  }
  relay_ev_free(&f->ev);
  if (f->fd >= 0) {
    close(f->fd);
  }
  --st->nflows;
  --st->svc_flows[f->svc];
  --st->r->metrics.udp_flows[f->svc];
  free(f);
}

static void on_sweep(evutil_socket_t fd, short what, void *arg) {
  struct udp_state *st = arg;
  prd_tstamp now = prd_now();
  uflow *f, *next;
  struct timeval tv;
  (void)fd;
  (void)what;

  for (f = st->all; f; f = next) {
    next = f->next;
    if (now - f->last > svc_timeout_ns(st->r, f)) {
      PRD_LOG_DEBUG("UDP flow %llu of service \"%s\" expired",
                    (unsigned long long)f->id, svc_name(st->r, f->svc));
      flow_free(f);
    }
  }
  tv_from_ns(&tv, st->sweep_ns);
  evtimer_add(st->sweep, &tv);
}

/* send_msg encodes |d|'s header in front of the payload at |payload| (which
 * has HDR_ROOM bytes before it) and queues it on |t|. */
static int send_msg(relay *r, tunnel *t, const prd_udp_dgram *d,
                    uint8_t *payload, size_t len, unsigned svc) {
  uint8_t hdr[HDR_ROOM];
  prd_ssize n = prd_udp_dgram_encode_hdr(hdr, sizeof(hdr), d);
  int rv;

  if (n < 0 || t->qc == NULL) {
    drop(r, svc, PRD_UDP_DROP_SOCKET);
    return -1;
  }
  memcpy(payload - n, hdr, (size_t)n);
  rv = prd_quic_conn_send_datagram(t->qc, payload - n, len + (size_t)n);
  if (rv == PRD_ERR_FRAME_TOO_LARGE) {
    drop(r, svc, PRD_UDP_DROP_OVERSIZE);
  } else if (rv == PRD_ERR_NOBUF || rv == PRD_ERR_NOMEM) {
    drop(r, svc, PRD_UDP_DROP_CONGESTION);
  } else if (rv != 0) {
    drop(r, svc, PRD_UDP_DROP_NO_CLIENT);
  }
  return rv;
}

/* ---- server -------------------------------------------------------------- */

static void addr_of(prd_addr *a, const prd_sockaddr *s) {
  memset(a, 0, sizeof(*a));
  if (s->u.sa.sa_family == AF_INET) {
    a->family = 4;
    memcpy(a->addr, &s->u.in.sin_addr, 4);
    a->port = ntohs(s->u.in.sin_port);
  } else if (IN6_IS_ADDR_V4MAPPED(&s->u.in6.sin6_addr)) {
    a->family = 4; /* spec/02-framing.md §4.1 */
    memcpy(a->addr, &s->u.in6.sin6_addr.s6_addr[12], 4);
    a->port = ntohs(s->u.in6.sin6_port);
  } else {
    a->family = 6;
    memcpy(a->addr, &s->u.in6.sin6_addr, 16);
    a->port = ntohs(s->u.in6.sin6_port);
  }
}

/* srv_user_dgram: |len| bytes from |peer| at st->buf + HDR_ROOM. */
static void srv_user_dgram(udp_sock *us, const prd_sockaddr *peer, size_t len) {
  struct udp_state *st = us->st;
  relay *r = st->r;
  const prd_relay_service *sv = &r->cfg->services[us->svc];
  uflow *f = find_by_peer(st, us, peer);
  prd_udp_dgram d;
  tunnel *t;

  if (f != NULL && ((f->t->svc_denied >> us->svc) & 1u)) {
    /* spec/03-auth.md §4.1: a reload took the service from the flow's
     * client; the flow ends and this datagram picks a client anew. */
    flow_free(f);
    f = NULL;
  }
  if (f == NULL) {
    if (sv->nallow > 0 && !prd_rl_exempt(peer, sv->allow, sv->nallow)) {
      drop(r, us->svc, PRD_UDP_DROP_ALLOWLIST);
      return;
    }
    /* The choice of client is that of TCP users (spec/10-udp.md §4); a
     * draining server starts no flow. */
    t = r->stopping ? NULL : pick_tunnel(r, NULL, us->svc, us->off);
    if (t == NULL) {
      drop(r, us->svc, PRD_UDP_DROP_NO_CLIENT);
      return;
    }
    f = flow_new(st, t, t->udp_next_id, us->svc, us->off);
    if (f == NULL) {
      return;
    }
    ++t->udp_next_id;
    f->us = us;
    f->peer = *peer;
    f->pnext = st->by_peer[hash_peer(us, peer)];
    st->by_peer[hash_peer(us, peer)] = f;
  }
  f->last = prd_now();
  memset(&d, 0, sizeof(d));
  d.flow_id = f->id;
  if (f->confirmed) {
    d.type = PRD_UDP_FLOW_DATA;
  } else {
    /* spec/10-udp.md §3.1: FLOW_OPEN until a reply confirms the flow. */
    d.type = PRD_UDP_FLOW_OPEN;
    d.servicelen = strlen(sv->name);
    memcpy(d.service, sv->name, d.servicelen + 1);
    d.port_offset = f->off;
    addr_of(&d.source, peer);
  }
  if (send_msg(r, f->t, &d, st->buf + HDR_ROOM, len, f->svc) == 0) {
    ++r->metrics.udp_dgrams[0][f->svc];
    r->metrics.udp_bytes[0][f->svc] += len;
  }
}

static void on_user_read(evutil_socket_t fd, short what, void *arg) {
  udp_sock *us = arg;
  (void)what;
  for (int i = 0; i < READ_BUDGET; ++i) {
    prd_sockaddr peer;
    ssize_t n;
    memset(&peer, 0, sizeof(peer));
    peer.len = sizeof(peer.u);
    n = recvfrom(fd, us->st->buf + HDR_ROOM, MAX_DGRAM, MSG_TRUNC, &peer.u.sa,
                 &peer.len);
    if (n < 0) {
      if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        drop(us->st->r, us->svc, PRD_UDP_DROP_SOCKET);
        continue; /* ICMP errors of earlier sends */
      }
      return;
    }
    if ((size_t)n > MAX_DGRAM) {
      drop(us->st->r, us->svc, PRD_UDP_DROP_OVERSIZE);
      continue;
    }
    srv_user_dgram(us, &peer, (size_t)n);
  }
}

/* srv_on_msg: a message from the client of |t| (spec/10-udp.md §3.2,
 * §3.3). */
static void srv_on_msg(struct udp_state *st, tunnel *t,
                       const prd_udp_dgram *d) {
  relay *r = st->r;
  uflow *f = find_by_id(st, t, d->flow_id);

  if (f == NULL || d->type == PRD_UDP_FLOW_OPEN) {
    /* Expired, or never ours: dropped. */
    drop(r, f ? f->svc : SVC_UNKNOWN,
         f ? PRD_UDP_DROP_MALFORMED : PRD_UDP_DROP_UNKNOWN_FLOW);
    return;
  }
  if ((t->svc_denied >> f->svc) & 1u) {
    /* spec/03-auth.md §4.1: a reload took the service from this client. */
    drop(r, f->svc, PRD_UDP_DROP_UNKNOWN_FLOW);
    flow_free(f);
    return;
  }
  if (d->type == PRD_UDP_FLOW_CLOSE) {
    f->confirmed = 0; /* FLOW_OPEN again from the next datagram */
    return;
  }
  f->confirmed = 1;
  f->replied = 1;
  f->last = prd_now();
  if (sendto(f->us->fd, d->payload, d->payloadlen, MSG_DONTWAIT, &f->peer.u.sa,
             f->peer.len) < 0) {
    drop(r, f->svc, PRD_UDP_DROP_SOCKET);
    return;
  }
  ++r->metrics.udp_dgrams[1][f->svc];
  r->metrics.udp_bytes[1][f->svc] += d->payloadlen;
}

/* ---- client -------------------------------------------------------------- */

static void on_dest_read(evutil_socket_t fd, short what, void *arg) {
  uflow *f = arg;
  struct udp_state *st = f->st;
  relay *r = st->r;
  prd_udp_dgram d;
  (void)what;

  memset(&d, 0, sizeof(d));
  d.type = PRD_UDP_FLOW_DATA;
  d.flow_id = f->id;
  for (int i = 0; i < READ_BUDGET; ++i) {
    ssize_t n = recv(fd, st->buf + HDR_ROOM, MAX_DGRAM, MSG_TRUNC);
    if (n < 0) {
      if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        drop(r, f->svc, PRD_UDP_DROP_SOCKET); /* ICMP: the flow stays */
        continue;
      }
      return;
    }
    if ((size_t)n > MAX_DGRAM) {
      drop(r, f->svc, PRD_UDP_DROP_OVERSIZE);
      continue;
    }
    f->replied = 1;
    f->last = prd_now();
    if (send_msg(r, f->t, &d, st->buf + HDR_ROOM, (size_t)n, f->svc) == 0) {
      ++r->metrics.udp_dgrams[1][f->svc];
      r->metrics.udp_bytes[1][f->svc] += (size_t)n;
    }
  }
}

/* cli_flow_new: spec/10-udp.md §3.1, a FLOW_OPEN for a flow we do not have:
 * a socket connected to the service's destination at the offset. */
static uflow *cli_flow_new(struct udp_state *st, tunnel *t,
                           const prd_udp_dgram *d) {
  relay *r = st->r;
  size_t svc;
  const prd_relay_service *sv = NULL;
  prd_sockaddr dst;
  uflow *f;

  for (svc = 0; svc < r->cfg->nservices; ++svc) {
    sv = &r->cfg->services[svc];
    if (sv->udp && strcmp(sv->name, d->service) == 0) {
      break;
    }
  }
  if (svc >= r->cfg->nservices || d->port_offset >= sv->nports ||
      sv->ndest == 0) {
    drop(r, SVC_UNKNOWN, PRD_UDP_DROP_UNKNOWN_SERVICE);
    return NULL;
  }
  f = flow_new(st, t, d->flow_id, (unsigned)svc, d->port_offset);
  if (f == NULL) {
    return NULL;
  }
  dst = sv->dest[0];
  if (dst.u.sa.sa_family == AF_INET6) {
    dst.u.in6.sin6_port = htons((uint16_t)(sv->port + d->port_offset));
  } else {
    dst.u.in.sin_port = htons((uint16_t)(sv->port + d->port_offset));
  }
  f->fd =
      socket(dst.u.sa.sa_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (f->fd < 0 || connect(f->fd, &dst.u.sa, dst.len) != 0 ||
      (f->ev = event_new(r->base, f->fd, EV_READ | EV_PERSIST, on_dest_read,
                         f)) == NULL ||
      event_add(f->ev, NULL) != 0) {
    char buf[80];
    PRD_LOG_WARN("UDP service \"%s\": cannot open a socket to %s: %s", sv->name,
                 prd_sockaddr_str(&dst, buf, sizeof(buf)), strerror(errno));
    drop(r, (unsigned)svc, PRD_UDP_DROP_SOCKET);
    flow_free(f);
    return NULL;
  }
  return f;
}

static void cli_on_msg(struct udp_state *st, tunnel *t,
                       const prd_udp_dgram *d) {
  relay *r = st->r;
  uflow *f = find_by_id(st, t, d->flow_id);

  if (d->type == PRD_UDP_FLOW_CLOSE) {
    drop(r, f ? f->svc : SVC_UNKNOWN, PRD_UDP_DROP_MALFORMED);
    return;
  }
  if (f == NULL && d->type == PRD_UDP_FLOW_DATA) {
    /* spec/10-udp.md §3.2: we forgot it; the server reopens it. */
    prd_udp_dgram c;
    uint8_t *p = st->buf + HDR_ROOM;
    drop(r, SVC_UNKNOWN, PRD_UDP_DROP_UNKNOWN_FLOW);
    memset(&c, 0, sizeof(c));
    c.type = PRD_UDP_FLOW_CLOSE;
    c.flow_id = d->flow_id;
    send_msg(r, t, &c, p, 0, SVC_UNKNOWN);
    return;
  }
  if (f == NULL) {
    f = cli_flow_new(st, t, d);
    if (f == NULL) {
      return;
    }
  }
  f->last = prd_now();
  if (send(f->fd, d->payload, d->payloadlen, MSG_DONTWAIT) < 0) {
    drop(r, f->svc, PRD_UDP_DROP_SOCKET);
    return;
  }
  ++r->metrics.udp_dgrams[0][f->svc];
  r->metrics.udp_bytes[0][f->svc] += d->payloadlen;
}

/* ---- both ---------------------------------------------------------------- */

void udp_on_datagram(prd_quic_conn *qc, const uint8_t *data, size_t len,
                     void *ud) {
  tunnel *t = ud;
  relay *r;
  prd_udp_dgram d;
  (void)qc;

  if (t == NULL || t->r->udp == NULL) {
    return;
  }
  r = t->r;
  if (prd_udp_dgram_decode(&d, data, len) != 0) {
    drop(r, SVC_UNKNOWN, PRD_UDP_DROP_MALFORMED);
    return;
  }
  if (r->is_server) {
    srv_on_msg(r->udp, t, &d);
  } else {
    cli_on_msg(r->udp, t, &d);
  }
}

void udp_tunnel_gone(relay *r, tunnel *t) {
  uflow *f, *next;
  if (r->udp == NULL) {
    return;
  }
  for (f = r->udp->all; f; f = next) {
    next = f->next;
    if (f->t == t) {
      flow_free(f);
    }
  }
  t->udp_next_id = 0;
}

int udp_any(const prd_relay_config *cfg) {
  for (size_t i = 0; i < cfg->nservices; ++i) {
    if (cfg->services[i].udp) {
      return 1;
    }
  }
  return 0;
}

int udp_start(relay *r) {
  prd_relay_config *cfg = r->cfg;
  struct udp_state *st;
  struct timeval tv;
  uint64_t min_to = PRD_UDP_TIMEOUT_NS;
  char buf[80];
  size_t k = 0;

  if (!udp_any(cfg)) {
    return 0;
  }
  st = calloc(1, sizeof(*st));
  if (st == NULL) {
    PRD_LOG_ERROR("out of memory");
    return -1;
  }
  st->r = r;
  r->udp = st;
  for (size_t s = 0; s < cfg->nservices; ++s) {
    const prd_relay_service *sv = &cfg->services[s];
    if (!sv->udp) {
      continue;
    }
    r->metrics.svc_udp[s] = 1;
    if (sv->udp_timeout_ns && sv->udp_timeout_ns < min_to) {
      min_to = sv->udp_timeout_ns;
    }
    if (r->is_server) {
      st->nsocks += sv->nports ? sv->nports : 1;
    }
  }
  st->sweep_ns = min_to / 4;
  if (st->sweep_ns > PRD_NS_PER_S) {
    st->sweep_ns = PRD_NS_PER_S;
  }
  if (st->sweep_ns < 100 * PRD_NS_PER_MS) {
    st->sweep_ns = 100 * PRD_NS_PER_MS;
  }
  st->sweep = evtimer_new(r->base, on_sweep, st);
  if (st->sweep == NULL) {
    PRD_LOG_ERROR("out of memory");
    return -1;
  }
  tv_from_ns(&tv, st->sweep_ns);
  evtimer_add(st->sweep, &tv);
  if (!r->is_server) {
    return 0;
  }
  st->socks = calloc(st->nsocks, sizeof(*st->socks));
  if (st->socks == NULL) {
    PRD_LOG_ERROR("out of memory");
    st->nsocks = 0;
    return -1;
  }
  for (size_t i = 0; i < st->nsocks; ++i) {
    st->socks[i].fd = -1;
  }
  for (size_t s = 0; s < cfg->nservices; ++s) {
    const prd_relay_service *sv = &cfg->services[s];
    unsigned nports = sv->nports ? sv->nports : 1;
    if (!sv->udp) {
      continue;
    }
    for (unsigned off = 0; off < nports; ++off, ++k) {
      udp_sock *us = &st->socks[k];
      prd_sockaddr a = sv->listen_addr;
      uint16_t port = (uint16_t)(sv->port + off);
      int on = 1;
      if (a.u.sa.sa_family == AF_INET6) {
        a.u.in6.sin6_port = htons(port);
      } else {
        a.u.in.sin_port = htons(port);
      }
      us->st = st;
      us->svc = (uint16_t)s;
      us->off = (uint16_t)off;
      us->fd = socket(a.u.sa.sa_family,
                      SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      if (us->fd >= 0 && a.u.sa.sa_family == AF_INET6) {
        int off6 = 0;
        setsockopt(us->fd, IPPROTO_IPV6, IPV6_V6ONLY, &off6, sizeof(off6));
      }
      if (us->fd >= 0) {
        /* Every user of the port shares this socket: a burst must not
         * overflow the default buffer while the loop is busy (the kernel
         * caps the size at net.core.rmem_max). */
        int sz = LISTEN_SOCKBUF;
        setsockopt(us->fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
        setsockopt(us->fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
        setsockopt(us->fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
      }
      if (us->fd < 0 || bind(us->fd, &a.u.sa, a.len) != 0) {
        PRD_LOG_ERROR("cannot listen for UDP on %s: %s (--service %s)",
                      prd_sockaddr_str(&a, buf, sizeof(buf)), strerror(errno),
                      sv->name);
        return -1;
      }
      us->ev =
          event_new(r->base, us->fd, EV_READ | EV_PERSIST, on_user_read, us);
      if (us->ev == NULL || event_add(us->ev, NULL) != 0) {
        PRD_LOG_ERROR("out of memory");
        return -1;
      }
    }
    prd_sockaddr_str(&sv->listen_addr, buf, sizeof(buf));
    if (nports <= 1) {
      PRD_LOG_INFO("UDP listening on %s for service \"%s\"", buf, sv->name);
    } else {
      PRD_LOG_INFO("UDP listening on %s (and the next %u ports) for service "
                   "\"%s\"",
                   buf, nports - 1, sv->name);
    }
  }
  return 0;
}

void udp_free(relay *r) {
  struct udp_state *st = r->udp;
  if (st == NULL) {
    return;
  }
  while (st->all) {
    flow_free(st->all);
  }
  for (size_t i = 0; i < st->nsocks; ++i) {
    relay_ev_free(&st->socks[i].ev);
    if (st->socks[i].fd >= 0) {
      close(st->socks[i].fd);
    }
  }
  free(st->socks);
  relay_ev_free(&st->sweep);
  free(st);
  r->udp = NULL;
}
