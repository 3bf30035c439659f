/* SPDX-License-Identifier: GPL-3.0-only */
/* TCP paths (spec/11-tcp-path.md): QUIC datagrams framed over TCP, for
 * networks that block UDP. The server's listener and accepted paths, the
 * client's dialed path; both feed records to prd_quic_endpoint_deliver and
 * take the endpoint's datagrams through prd_quic_endpoint_set_path_tx. */
#include <errno.h>
#include <event2/buffer.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../codec/codec.h"
#include "../common/log.h"
#include "relay_int.h"

#ifndef TCP_NOTSENT_LOWAT
#  define TCP_NOTSENT_LOWAT 25
#endif

/* spec/11-tcp-path.md §4: what may wait in front of one TCP connection, in
 * user space and unsent in the kernel; beyond it datagrams are dropped. */
#define QTCP_OUTQ_MAX (1024 * 1024)
#define QTCP_NOTSENT_LOWAT (256 * 1024)
/* spec/11-tcp-path.md §3.1: the server's deadlines and caps. */
#define QTCP_PREFACE_TIMEOUT_NS (5 * PRD_NS_PER_S)
#define QTCP_UNAUTH_TIMEOUT_NS (30 * PRD_NS_PER_S)
#define QTCP_MAX_PATHS 1024
#define QTCP_READ_BUDGET (1024 * 1024)
/* A closed path is remembered while a connection still uses it (at most
 * this long), so that its packets are dropped rather than sent as UDP to
 * the TCP peer's port. */
#define QTCP_DEAD_KEEP_NS (60 * PRD_NS_PER_S)

struct qtcp {
  relay *r;
  tunnel *t; /* client: its tunnel; server: NULL */
  int fd;
  struct event *rev, *wev;
  struct evbuffer *in, *out;
  prd_sockaddr local, peer;
  prd_tstamp created, preface_at, closed_at;
  uint64_t dropped; /* datagrams dropped on a full queue */
  unsigned preface_rx : 1, connecting : 1, dead : 1;
  qtcp *next, *prev; /* server: r->qtcps */
};

static void qtcp_free(qtcp *q) {
  if (q == NULL) {
    return;
  }
  relay_ev_free(&q->rev);
  relay_ev_free(&q->wev);
  if (q->in) {
    evbuffer_free(q->in);
  }
  if (q->out) {
    evbuffer_free(q->out);
  }
  if (q->fd >= 0) {
    close(q->fd);
  }
  free(q);
}

/* qtcp_shut stops |q|'s events and closes its socket now (the struct is
 * freed later, off the call stack), after one last try to write what is
 * queued: the preface answer before a framing error's close. */
static void qtcp_shut(qtcp *q) {
  q->dead = 1;
  event_del(q->rev);
  event_del(q->wev);
  if (q->fd >= 0) {
    if (!q->connecting) {
      evbuffer_write(q->out, q->fd);
    }
    close(q->fd);
    q->fd = -1;
  }
}

static qtcp *qtcp_new(relay *r, int fd) {
  qtcp *q = calloc(1, sizeof(*q));
  int one = 1, lowat = QTCP_NOTSENT_LOWAT;
  if (q == NULL) {
    return NULL;
  }
  q->r = r;
  q->fd = fd;
  q->created = prd_now();
  q->in = evbuffer_new();
  q->out = evbuffer_new();
  if (q->in == NULL || q->out == NULL) {
    q->fd = -1;
    qtcp_free(q);
    return NULL;
  }
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  setsockopt(fd, IPPROTO_TCP, TCP_NOTSENT_LOWAT, &lowat, sizeof(lowat));
  return q;
}

/* ---- sending ---------------------------------------------------------- */

/* qtcp_queue frames |len| bytes in datagrams of |segsize| onto |q|;
 * datagrams that do not fit the queue are dropped (spec/11-tcp-path.md
 * §3.1). */
static void qtcp_queue(qtcp *q, const uint8_t *data, size_t len,
                       size_t segsize) {
  size_t off = 0;
  if (q->dead) {
    return;
  }
  if (segsize == 0) {
    segsize = len;
  }
  while (off < len) {
    size_t m = len - off < segsize ? len - off : segsize;
    uint8_t hd[2] = {(uint8_t)(m >> 8), (uint8_t)m};
    if (m == 0 || m > 65535) {
      break;
    }
    if (evbuffer_get_length(q->out) + 2 + m > QTCP_OUTQ_MAX) {
      ++q->dropped;
      ++q->r->metrics.tcp_path_drops;
    } else {
      evbuffer_add(q->out, hd, 2);
      evbuffer_add(q->out, data + off, m);
    }
    off += m;
  }
  if (q->wev && evbuffer_get_length(q->out) > 0) {
    event_add(q->wev, NULL);
  }
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

/* server_path_tx: prd_quic_path_tx_fn of the server's endpoint. */
static ssize_t server_path_tx(prd_quic_endpoint *ep, const prd_sockaddr *local,
                              const prd_sockaddr *remote, const uint8_t *data,
                              size_t len, size_t segsize, void *arg) {
  relay *r = arg;
  (void)ep;
  for (qtcp *q = r->qtcps; q; q = q->next) {
    if (!q->dead && addr_eq(&q->peer, remote) && addr_eq(&q->local, local)) {
      qtcp_queue(q, data, len, segsize);
      return (ssize_t)len;
    }
  }
  for (qtcp *q = r->qtcp_dead; q; q = q->next) {
    if (addr_eq(&q->peer, remote) && addr_eq(&q->local, local)) {
      return (ssize_t)len; /* a closed TCP path: dropped */
    }
  }
  return -ENOENT;
}

/* client_path_tx: prd_quic_path_tx_fn of a client's endpoint on TCP: every
 * datagram goes onto the tunnel's TCP path. */
static ssize_t client_path_tx(prd_quic_endpoint *ep, const prd_sockaddr *local,
                              const prd_sockaddr *remote, const uint8_t *data,
                              size_t len, size_t segsize, void *arg) {
  tunnel *t = arg;
  (void)ep;
  (void)local;
  (void)remote;
  if (t->qt) {
    qtcp_queue(t->qt, data, len, segsize);
  }
  return (ssize_t)len;
}

/* ---- errors ------------------------------------------------------------ */

static void server_path_close(qtcp *q, const char *why);
static void client_path_fail(qtcp *q, const char *why, int no_path);

static void qtcp_fail(qtcp *q, const char *why, int no_path) {
  if (q->t) {
    client_path_fail(q, why, no_path);
  } else {
    server_path_close(q, why);
  }
}

/* ---- receiving --------------------------------------------------------- */

/* qtcp_records hands the complete records in q->in to the endpoint; the
 * framing is codec/tcppath.c's (spec/11-tcp-path.md §2.2).
 * Returns 0, or -1 after a framing error (|q| failed). */
static int qtcp_records(qtcp *q) {
  relay *r = q->r;
  while (!q->dead) {
    size_t have = evbuffer_get_length(q->in);
    uint8_t hd[PRD_TCP_RECORD_HDR_LEN];
    prd_tcp_record rec;
    const uint8_t *p;
    prd_quic_endpoint *ep;
    int rv;
    if (have < sizeof(hd)) {
      return 0;
    }
    /* The Length alone gives the record's size (NEED_MORE from these two
     * bytes); the datagram is pulled up once it is whole. */
    evbuffer_copyout(q->in, hd, sizeof(hd));
    rv = prd_tcp_record_next(&rec, hd, sizeof(hd), PRD_TCP_RECORD_MAX);
    if (rv != 0 && rv != PRD_ERR_NEED_MORE) {
      qtcp_fail(q, rec.why, 0);
      return -1;
    }
    if (have < rec.size) {
      return 0;
    }
    p = evbuffer_pullup(q->in, (ev_ssize_t)rec.size);
    if (p == NULL) {
      qtcp_fail(q, "out of memory", 0);
      return -1;
    }
    ep = q->t ? q->t->ep : r->ep;
    if (ep) {
      if (q->t && q->t->qc) {
        /* The client's connection has one path, whatever TCP's addresses
         * are: its own. */
        prd_quic_endpoint_deliver(ep, prd_quic_conn_local(q->t->qc),
                                  prd_quic_conn_remote(q->t->qc), p + rec.off,
                                  rec.len);
      } else if (!q->t) {
        prd_quic_endpoint_deliver(ep, &q->local, &q->peer, p + rec.off,
                                  rec.len);
      }
    }
    if (!q->dead) {
      evbuffer_drain(q->in, rec.size);
    }
  }
  return 0;
}

/* qtcp_preface checks the peer's preface (spec/11-tcp-path.md §2.1, through
 * codec/tcppath.c). Returns 1 when it is there and good, 0 when more bytes
 * are needed, -1 after failing |q|. */
static int qtcp_preface(qtcp *q) {
  uint8_t got[PRD_TCP_PREFACE_LEN];
  char esc[64];
  char why[160];
  if (evbuffer_get_length(q->in) < PRD_TCP_PREFACE_LEN) {
    return 0;
  }
  evbuffer_remove(q->in, got, sizeof(got));
  switch (prd_tcp_preface_check(got, sizeof(got))) {
  case PRD_TCP_PREFACE_OURS:
    break;
  case PRD_TCP_PREFACE_OTHER_VERSION:
    snprintf(why, sizeof(why), "TCP path version %u, this side speaks %u",
             got[PRD_TCP_PREFACE_LEN - 1], (unsigned)PRD_TCP_PATH_VERSION);
    if (!q->t) {
      evbuffer_add(q->out, prd_tcp_preface, PRD_TCP_PREFACE_LEN);
      evbuffer_write(q->out, q->fd);
    }
    qtcp_fail(q, why, 1);
    return -1;
  default:
    prd_log_escape(esc, sizeof(esc), got, sizeof(got));
    snprintf(why, sizeof(why), "not a TCP path preface: \"%s\"", esc);
    qtcp_fail(q, why, 1);
    return -1;
  }
  q->preface_rx = 1;
  q->preface_at = prd_now();
  if (!q->t) {
    /* The server answers with its own (§2.1). */
    evbuffer_prepend(q->out, prd_tcp_preface, PRD_TCP_PREFACE_LEN);
    event_add(q->wev, NULL);
  }
  return 1;
}

static void on_qtcp_read(evutil_socket_t fd, short what, void *arg) {
  qtcp *q = arg;
  size_t total = 0;
  (void)what;
  while (!q->dead && total < QTCP_READ_BUDGET) {
    int n = evbuffer_read(q->in, fd, 65536);
    if (n == 0) {
      qtcp_fail(q, "the peer closed the TCP path", !q->preface_rx);
      return;
    }
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
        break;
      }
      {
        char why[120];
        snprintf(why, sizeof(why), "TCP path: %s", strerror(errno));
        qtcp_fail(q, why, !q->preface_rx);
      }
      return;
    }
    total += (size_t)n;
    if (!q->preface_rx && qtcp_preface(q) < 0) {
      return;
    }
    if (q->preface_rx && qtcp_records(q) != 0) {
      return;
    }
  }
}

static void on_qtcp_write(evutil_socket_t fd, short what, void *arg) {
  qtcp *q = arg;
  (void)what;
  if (q->connecting) {
    int err = 0;
    socklen_t len = sizeof(err);
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) {
      char why[120];
      snprintf(why, sizeof(why), "TCP connect: %s", strerror(err));
      if (q->t && err == ECONNREFUSED) {
        q->t->tcp_refused = 1;
      }
      qtcp_fail(q, why, 1);
      return;
    }
    q->connecting = 0;
    event_add(q->rev, NULL);
  }
  while (evbuffer_get_length(q->out) > 0) {
    int n = evbuffer_write(q->out, fd);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
        break;
      }
      {
        char why[120];
        snprintf(why, sizeof(why), "TCP path: %s", strerror(errno));
        qtcp_fail(q, why, !q->preface_rx);
      }
      return;
    }
    if (n == 0) {
      break;
    }
  }
  if (evbuffer_get_length(q->out) == 0) {
    event_del(q->wev);
  } else {
    event_add(q->wev, NULL);
  }
}

static int qtcp_events(qtcp *q) {
  q->rev = event_new(q->r->base, q->fd, EV_READ | EV_PERSIST, on_qtcp_read, q);
  q->wev = event_new(q->r->base, q->fd, EV_WRITE, on_qtcp_write, q);
  return q->rev && q->wev ? 0 : -1;
}

/* ---- server ------------------------------------------------------------ */

static void server_path_unlink(qtcp *q) {
  relay *r = q->r;
  if (q->prev) {
    q->prev->next = q->next;
  } else {
    r->qtcps = q->next;
  }
  if (q->next) {
    q->next->prev = q->prev;
  }
  --r->nqtcp;
  r->metrics.tcp_paths = r->nqtcp;
}

static void server_path_close(qtcp *q, const char *why) {
  char a[80];
  if (q->dead) {
    return;
  }
  PRD_LOG_DEBUG("TCP path from %s closed: %s",
                prd_sockaddr_str(&q->peer, a, sizeof(a)), why);
  qtcp_shut(q);
  server_path_unlink(q);
  /* Freed by the sweep: it may be on the call stack (qtcp_records). */
  q->closed_at = prd_now();
  q->next = q->r->qtcp_dead;
  q->r->qtcp_dead = q;
}

/* server_unauth counts the paths that carry no authenticated connection. */
static size_t server_unauth(relay *r) {
  size_t n = 0;
  for (qtcp *q = r->qtcps; q; q = q->next) {
    n += !prd_quic_endpoint_path_in_use(r->ep, &q->local, &q->peer, 1);
  }
  return n;
}

static void on_qtcp_accept(evutil_socket_t fd, short what, void *arg) {
  relay *r = arg;
  (void)what;
  for (int i = 0; i < 16; ++i) {
    prd_sockaddr peer;
    qtcp *q;
    int cfd;
    peer.len = sizeof(peer.u.ss);
    cfd = accept4(fd, &peer.u.sa, &peer.len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (cfd < 0) {
      return; /* EAGAIN, or EMFILE: the next readable event retries */
    }
    /* spec/11-tcp-path.md §3.1: bounded, and few unauthenticated. */
    if (r->nqtcp >= QTCP_MAX_PATHS ||
        server_unauth(r) >= r->cfg->quic.max_pending_handshakes) {
      char a[80];
      PRD_LOG_DEBUG("TCP path from %s refused: too many",
                    prd_sockaddr_str(&peer, a, sizeof(a)));
      close(cfd);
      continue;
    }
    q = qtcp_new(r, cfd);
    if (q == NULL) {
      close(cfd);
      continue;
    }
    q->peer = peer;
    q->local.len = sizeof(q->local.u.ss);
    getsockname(cfd, &q->local.u.sa, &q->local.len);
    if (qtcp_events(q) != 0) {
      qtcp_free(q);
      continue;
    }
    q->next = r->qtcps;
    if (r->qtcps) {
      r->qtcps->prev = q;
    }
    r->qtcps = q;
    ++r->nqtcp;
    r->metrics.tcp_paths = r->nqtcp;
    event_add(q->rev, NULL);
  }
}

/* on_qtcp_sweep (each second): frees closed paths and closes the ones past
 * their deadlines (spec/11-tcp-path.md §3.1). */
static void on_qtcp_sweep(evutil_socket_t fd, short what, void *arg) {
  relay *r = arg;
  prd_tstamp now = prd_now();
  qtcp *q, *next;
  (void)fd;
  (void)what;
  for (q = r->qtcps; q; q = next) {
    next = q->next;
    if (!q->preface_rx) {
      if (now - q->created > QTCP_PREFACE_TIMEOUT_NS) {
        server_path_close(q, "no preface");
      }
    } else if (now - q->preface_at > QTCP_UNAUTH_TIMEOUT_NS &&
               !prd_quic_endpoint_path_in_use(r->ep, &q->local, &q->peer, 1)) {
      server_path_close(q, "no authenticated connection uses it");
    }
  }
  for (qtcp **pq = &r->qtcp_dead; (q = *pq) != NULL;) {
    if (now - q->closed_at > QTCP_DEAD_KEEP_NS ||
        !prd_quic_endpoint_path_in_use(r->ep, &q->local, &q->peer, 0)) {
      *pq = q->next;
      qtcp_free(q);
    } else {
      pq = &q->next;
    }
  }
}

int qtcp_server_listen(relay *r) {
  const prd_relay_config *cfg = r->cfg;
  const prd_sockaddr *a = &cfg->quic_tcp_addr;
  char buf[80];
  int on = 1, off = 0;

  r->qtcp_fd = -1;
  if (cfg->quic_tcp_off) {
    return 0;
  }
  r->qtcp_fd =
      socket(a->u.sa.sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (r->qtcp_fd < 0) {
    PRD_LOG_ERROR("cannot listen for the TCP path: %s", strerror(errno));
    return -1;
  }
  setsockopt(r->qtcp_fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
  if (a->u.sa.sa_family == AF_INET6) {
    setsockopt(r->qtcp_fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof(off));
  }
  if (bind(r->qtcp_fd, &a->u.sa, a->len) != 0 || listen(r->qtcp_fd, 64) != 0) {
    int err = errno;
    close(r->qtcp_fd);
    r->qtcp_fd = -1;
    if (!cfg->quic_tcp_explicit) {
      /* The default must not stop a server that ran before it existed. */
      PRD_LOG_WARN("cannot listen for QUIC over TCP on %s: %s; clients "
                   "behind networks that block UDP cannot connect (use "
                   "--quic-tcp-listen HOST:PORT to move it, or off)",
                   prd_sockaddr_str(a, buf, sizeof(buf)), strerror(err));
      return 0;
    }
    PRD_LOG_ERROR("cannot listen for QUIC over TCP on %s: %s",
                  prd_sockaddr_str(a, buf, sizeof(buf)), strerror(err));
    return -1;
  }
  r->qtcp_ev =
      event_new(r->base, r->qtcp_fd, EV_READ | EV_PERSIST, on_qtcp_accept, r);
  r->qtcp_sweep = event_new(r->base, -1, EV_PERSIST, on_qtcp_sweep, r);
  if (r->qtcp_ev == NULL || r->qtcp_sweep == NULL) {
    PRD_LOG_ERROR("out of memory");
    return -1;
  }
  {
    struct timeval tv = {1, 0};
    event_add(r->qtcp_sweep, &tv);
  }
  event_add(r->qtcp_ev, NULL);
  prd_quic_endpoint_set_path_tx(r->ep, server_path_tx, r);
  PRD_LOG_INFO("QUIC over TCP (spec/11-tcp-path.md) listening on %s",
               prd_sockaddr_str(a, buf, sizeof(buf)));
  return 0;
}

void qtcp_server_free(relay *r) {
  qtcp *q;
  while ((q = r->qtcps) != NULL) {
    r->qtcps = q->next;
    qtcp_free(q);
  }
  while ((q = r->qtcp_dead) != NULL) {
    r->qtcp_dead = q->next;
    qtcp_free(q);
  }
  relay_ev_free(&r->qtcp_ev);
  relay_ev_free(&r->qtcp_sweep);
  if (r->qtcp_fd >= 0) {
    close(r->qtcp_fd);
    r->qtcp_fd = -1;
  }
}

/* ---- client ------------------------------------------------------------ */

/* client_path_fail: the tunnel's TCP path failed. A dial's connection
 * closes with |why| (client_closed then decides what next); an established
 * one goes back to UDP (it may still work, or the idle timeout ends it).
 * |no_path|: the server offers no TCP path (refused, no preface). */
static void client_path_fail(qtcp *q, const char *why, int no_path) {
  tunnel *t = q->t;
  char msg[600];
  if (q->dead) {
    return;
  }
  qtcp_shut(q);
  if (q != t->qt) {
    return; /* a path being left */
  }
  if (t->authenticated && t->qc) {
    if (!t->tcp_no_path_logged || !no_path) {
      PRD_LOG_WARN("[%s] %s%s; staying on UDP", prd_quic_conn_name(t->qc),
                   no_path ? "the server offers no TCP path: " : "", why);
    }
    t->tcp_no_path_logged |= no_path;
    if (no_path) {
      t->no_tcp_until = prd_now() + NO_TCP_RETRY_NS;
    }
    qtcp_client_leave(t, 0);
    if (t->udp_rev) {
      event_add(t->udp_rev, NULL);
    }
    return;
  }
  if (no_path && t->udp_refused && t->tcp_refused) {
    /* Refused both ways: more likely down than without a TCP path. */
    snprintf(msg, sizeof(msg),
             "connection refused by %s over UDP and TCP (is the server "
             "running?)",
             t->remote->label);
  } else if (no_path) {
    t->tcp_no_path = 1;
    snprintf(msg, sizeof(msg), "the server at %s offers no TCP path (%s)",
             t->remote->label, why);
  } else {
    snprintf(msg, sizeof(msg), "%s", why);
  }
  if (t->qc) {
    prd_quic_conn_close(t->qc, PRD_APP_NO_ERROR, msg);
  }
}

/* on_client_preface_timeout: spec/11-tcp-path.md §2.1, the server did not
 * answer the preface. */
static void on_client_preface_timeout(evutil_socket_t fd, short what,
                                      void *arg) {
  tunnel *t = arg;
  (void)fd;
  (void)what;
  if (t->qt && !t->qt->preface_rx && !t->qt->dead) {
    client_path_fail(t->qt, "no answer to the preface within 3 s", 1);
  }
}

int qtcp_client_open(tunnel *t, const prd_sockaddr *to) {
  relay *r = t->r;
  qtcp *q;
  prd_sockaddr dst = *to;
  struct timeval tv = {QTCP_CLIENT_PREFACE_S, 0};
  int fd =
      socket(to->u.sa.sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return -errno;
  }
  q = qtcp_new(r, fd);
  if (q == NULL) {
    close(fd);
    return PRD_ERR_NOMEM;
  }
  q->t = t;
  q->peer = dst;
  if (qtcp_events(q) != 0) {
    qtcp_free(q);
    return PRD_ERR_NOMEM;
  }
  if (connect(fd, &dst.u.sa, dst.len) != 0 && errno != EINPROGRESS) {
    int err = -errno;
    qtcp_free(q);
    return err;
  }
  q->connecting = 1;
  evbuffer_add(q->out, prd_tcp_preface, PRD_TCP_PREFACE_LEN);
  event_add(q->wev, NULL);
  t->qt = q;
  if (t->qtcp_timer == NULL) {
    t->qtcp_timer = evtimer_new(r->base, on_client_preface_timeout, t);
  }
  if (t->qtcp_timer) {
    evtimer_add(t->qtcp_timer, &tv);
  }
  prd_quic_endpoint_set_path_tx(t->ep, client_path_tx, t);
  return 0;
}

void qtcp_client_free(tunnel *t) {
  if (t->qtcp_timer) {
    evtimer_del(t->qtcp_timer);
  }
  qtcp_free(t->qt);
  t->qt = NULL;
  qtcp_free(t->qt_old);
  t->qt_old = NULL;
}

void qtcp_free_old(tunnel *t) {
  qtcp_free(t->qt_old);
  t->qt_old = NULL;
}

int qtcp_client_ready(const tunnel *t) {
  return t->qt != NULL && t->qt->preface_rx && !t->qt->dead;
}

void qtcp_client_leave(tunnel *t, uint64_t linger_ns) {
  qtcp *q = t->qt;
  if (q == NULL) {
    return;
  }
  if (t->qtcp_timer) {
    evtimer_del(t->qtcp_timer);
  }
  if (t->ep) {
    prd_quic_endpoint_set_path_tx(t->ep, NULL, NULL);
  }
  t->qt = NULL;
  qtcp_free(t->qt_old);
  t->qt_old = q;
  /* Still read for a while: the server answers where it last heard from
   * us until it sees the new path. */
  t->qt_old_until = prd_now() + linger_ns;
}

/* ---- the client's UDP probe ----------------------------------------- */

static void on_probe_read(evutil_socket_t fd, short what, void *arg) {
  tunnel *t = arg;
  uint8_t buf[2048];
  (void)what;
  while (recv(fd, buf, sizeof(buf), 0) > 0) {
    t->probe_answered = 1;
  }
}

int qtcp_probe_send(tunnel *t, const prd_sockaddr *to) {
  uint8_t pkt[1200];
  if (t->probe_fd < 0) {
    t->probe_fd = socket(to->u.sa.sa_family,
                         SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (t->probe_fd < 0) {
      return -errno;
    }
    if (connect(t->probe_fd, &to->u.sa, to->len) != 0) {
      int err = -errno;
      qtcp_probe_close(t);
      return err;
    }
    t->probe_ev = event_new(t->r->base, t->probe_fd, EV_READ | EV_PERSIST,
                            on_probe_read, t);
    if (t->probe_ev == NULL) {
      qtcp_probe_close(t);
      return PRD_ERR_NOMEM;
    }
    event_add(t->probe_ev, NULL);
  }
  /* spec/11-tcp-path.md §3.2: a long-header packet of a reserved version
   * (RFC 9000 §15, 0x?a?a?a?a), 1200 bytes so that the server may answer
   * it with Version Negotiation (RFC 9000 §6.1); no server state. */
  memset(pkt, 0, sizeof(pkt));
  pkt[0] = 0xc0;
  pkt[1] = 0x1a;
  pkt[2] = 0x2a;
  pkt[3] = 0x3a;
  pkt[4] = 0x4a;
  pkt[5] = 8; /* DCID length */
  for (int i = 0; i < 8; ++i) {
    pkt[6 + i] = (uint8_t)random();
  }
  pkt[14] = 8; /* SCID length */
  for (int i = 0; i < 8; ++i) {
    pkt[15 + i] = (uint8_t)random();
  }
  t->probe_answered = 0;
  if (send(t->probe_fd, pkt, sizeof(pkt), 0) < 0) {
    return -errno;
  }
  return 0;
}

void qtcp_probe_close(tunnel *t) {
  relay_ev_free(&t->probe_ev);
  if (t->probe_fd >= 0) {
    close(t->probe_fd);
  }
  t->probe_fd = -1;
}

void qtcp_client_stop(tunnel *t) {
  qtcp *qs[2] = {t->qt, t->qt_old};
  if (t->qtcp_timer) {
    evtimer_del(t->qtcp_timer);
  }
  for (int i = 0; i < 2; ++i) {
    if (qs[i] && !qs[i]->dead) {
      qs[i]->dead = 1;
      event_del(qs[i]->rev);
      event_del(qs[i]->wev);
    }
  }
}
