/* SPDX-License-Identifier: GPL-3.0-only */
/* libevent relay: TCP <-> QUIC stream glue with bounded buffers, the
 * server's listener and client scheduler, the client's reconnecting
 * tunnels, graceful shutdown and metrics. */
#include "relay.h"

#include <arpa/inet.h>
#include <errno.h>
#include <malloc.h>
#include <event2/event.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "../common/log.h"
#include "../common/notify.h"
#include "../quic/identity.h"
#include "metrics.h"
#include "proxy.h"

#define READ_BUDGET (1024 * 1024) /* bytes per TCP read event */
#define ACCEPT_BUDGET 64
#define DIRECT_WRITE_MIN (16 * 1024)
#define RD_PAUSE_TURNS 4 /* see tc_read */
#define BACKOFF_MIN_MS 500
#define BACKOFF_MAX_MS 30000
/* Client: how long one address of a remote may take to authenticate before
 * the next address is tried (only while another address remains). */
#define DIAL_TIMEOUT_MS 3000
/* A PSK the server rejects is a configuration error: logged once per this
 * long, retried at the backoff cap. */
/* Type=notify: a client without a tunnel this long after start reports
 * READY=1 anyway (with a STATUS= saying so), so that boot and systemctl
 * start go on while it keeps trying. */
#define READY_ANYWAY_NS ((uint64_t)60 * PRD_NS_PER_S)
#define PSK_ERROR_EVERY_NS ((uint64_t)300 * PRD_NS_PER_S)
#define STABLE_NS (60 * PRD_NS_PER_S)

typedef struct relay relay;
typedef struct tunnel tunnel;
typedef struct tcpc tcpc;

struct tunnel {
  relay *r;
  prd_quic_endpoint *ep; /* client: its own; server: NULL */
  prd_quic_conn *qc;
  struct event *timer, *flush_ev;
  int timer_fd;           /* the QUIC connection's timer (tunnel_events) */
  prd_tstamp timer_armed; /* its expiry, 0 when not armed */
  struct event *udp_rev, *udp_wev, *retry_ev; /* client */
  prd_quic_endpoint *dead_ep;                 /* client: freed on retry */
  tunnel *next, *prev;                        /* server list */
  prd_relay_remote *remote;                   /* client */
  struct event *dial_ev;                      /* client: per-address timeout */
  size_t addr_idx;  /* client: the address of remote->addrs being dialed */
  int resolve_next; /* client: resolve the host again before the next dial */
  uint64_t backoff_ms;
  prd_tstamp up_since;
  int authenticated;
  size_t active;            /* TCP connections on this tunnel */
  prd_tstamp suspect_since; /* server: a stream went unacknowledged */
  prd_tstamp psk_err_at;    /* client: when the PSK error was last logged */
};

struct tcpc {
  relay *r;
  tunnel *t;
  int fd;
  struct event *rev, *wev;
  prd_qstream *st;
  prd_chunkbuf out; /* QUIC -> TCP bytes not yet written */
  tcpc *pnext;      /* server: pending list */
  tcpc *unext;      /* server: streams not yet acknowledged */
  prd_tstamp assigned;
  uint64_t hdrlen; /* server: stream header bytes at the stream's start */
  char qname[24];  /* the QUIC connection's name once the stream is gone */
  int unconfirmed;
  prd_tstamp start, deadline;
  prd_sockaddr peer;
  uint64_t id;
  uint64_t up, down; /* bytes TCP->QUIC, QUIC->TCP */
  size_t dest_idx;
  int dest_err;    /* errno of the last failed connect to the destination */
  uint8_t rd_idle; /* turns the socket was readable while paused */
  unsigned connecting : 1, rd_eof : 1, rd_paused : 1, wr_fin : 1, wr_shut : 1,
      pending : 1, rd_enabled : 1, wr_enabled : 1;
};

struct relay {
  struct event_base *base;
  prd_relay_config *cfg;
  prd_quic_callbacks cb;
  int is_server;
  /* server */
  prd_quic_endpoint *ep;
  struct event *udp_rev, *udp_wev;
  int listen_fd;
  struct event *listen_ev;
  int listen_paused;
  struct event *accept_retry; /* resumes accept after EMFILE */
  tunnel *tunnels;
  unsigned rr;
  tcpc *pend_head, *pend_tail;
  struct event *pend_timer;
  tcpc *unconf; /* streams whose client has acknowledged nothing yet */
  struct event *unconf_timer;
  /* client */
  tunnel remotes[16];
  /* both */
  size_t nconns;
  uint64_t next_id;
  int stopping;
  struct event *sigint_ev, *sigterm_ev, *sighup_ev, *grace_ev, *hard_ev,
      *tick_ev;
  struct event *drain_ev;  /* re-checks the drain outside QUIC callbacks */
  struct event *linger_ev; /* the pause between the last stream and close */
  int drain_busy;          /* a stream was open during the drain */
  int lingering;           /* 1 = linger_ev armed, 2 = it fired */
  int drain_starting;      /* start_shutdown is resetting pending users */
  prd_metrics metrics;
  int exit_code;
  size_t trim_mark; /* connection count at the last malloc_trim */
  /* systemd (sd_notify, src/common/notify.h) */
  struct event *wd_ev; /* WATCHDOG=1 at half of WatchdogSec= */
  int ready_sent;
  prd_tstamp started;
  uint64_t status_key; /* what the last STATUS= said */
};

/* ---- helpers ---------------------------------------------------------- */

static void tv_from_ns(struct timeval *tv, uint64_t ns) {
  uint64_t us = (ns + 999) / 1000;
  tv->tv_sec = (time_t)(us / 1000000);
  tv->tv_usec = (suseconds_t)(us % 1000000);
}

static void set_nodelay(int fd) {
  int on = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
}

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

static uint64_t local_reset_code(relay *r) {
  return r->is_server ? PRD_APP_USER_RESET : PRD_APP_DESTINATION_RESET;
}

static void tc_enable_read(tcpc *tc, int on) {
  if (on && !tc->rd_enabled) {
    event_add(tc->rev, NULL);
    tc->rd_enabled = 1;
  } else if (!on && tc->rd_enabled) {
    event_del(tc->rev);
    tc->rd_enabled = 0;
  }
}

static void tc_enable_write(tcpc *tc, int on) {
  if (on && !tc->wr_enabled) {
    event_add(tc->wev, NULL);
    tc->wr_enabled = 1;
  } else if (!on && tc->wr_enabled) {
    event_del(tc->wev);
    tc->wr_enabled = 0;
  }
}

/* Runs the write callback at the end of this event-loop turn instead of
 * registering EPOLLOUT: a socket with room takes the bytes without any
 * epoll_ctl; only a full socket (EAGAIN) registers for EPOLLOUT. */
static void tc_schedule_write(tcpc *tc) {
  if (!tc->wr_enabled) {
    event_active(tc->wev, EV_WRITE, 0);
  }
}

static void check_drained(relay *r);
static void server_listen_resume(relay *r);

/* ---- TCP connection lifecycle ----------------------------------------- */

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

/* tc_close closes the TCP side; |rst| sends a TCP RST (SO_LINGER 0) and
 * aborts the stream with |code| (spec/02-framing.md §6). */
static void tc_close(tcpc *tc, int rst, uint64_t code, const char *why) {
  relay *r = tc->r;
  char peer[80];
  double secs = (double)(prd_now() - tc->start) / 1e9;

  if (tc->st) {
    /* Bytes dropped unwritten still hold connection credit: return it. */
    prd_qstream_consumed(tc->st, (size_t)prd_chunkbuf_len(&tc->out));
    prd_qstream_set_user(tc->st, NULL);
    if (rst) {
      prd_qstream_abort(tc->st, code);
    }
    prd_qstream_detach(tc->st);
    tc->st = NULL;
  }
  if (rst && tc->fd >= 0) {
    struct linger lg = {1, 0};
    setsockopt(tc->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
  }
  pend_remove(r, tc);
  unconf_remove(r, tc);
  if (tc->t && tc->t->active > 0) {
    --tc->t->active;
  }
  /* One tag per TCP connection, [tN], on every line about it; the byte
   * counts named from the user's side so that server and client agree
   * (up/down are TCP->QUIC/QUIC->TCP at this side: the user's TCP on the
   * server, the destination's on the client). */
  PRD_LOG_INFO(
      "[t%llu] closed %s (%s): %s, %llu bytes from user, %llu bytes to user, "
      "%.3f s",
      (unsigned long long)tc->id,
      r->is_server ? prd_sockaddr_str(&tc->peer, peer, sizeof(peer))
                   : r->cfg->dest_label,
      tc->t && tc->t->qc ? prd_quic_conn_name(tc->t->qc)
      : tc->qname[0]     ? tc->qname
                         : "no tunnel",
      why, (unsigned long long)(r->is_server ? tc->up : tc->down),
      (unsigned long long)(r->is_server ? tc->down : tc->up), secs);
  if (tc->rev) {
    event_free(tc->rev);
  }
  if (tc->wev) {
    event_free(tc->wev);
  }
  if (tc->fd >= 0) {
    close(tc->fd);
  }
  prd_chunkbuf_free(&tc->out);
  --r->nconns;
  r->metrics.active = r->nconns;
  /* A user's reset is how many clients end a connection (wrk, browsers):
   * not a failure. */
  if (rst && code != PRD_APP_USER_RESET) {
    ++r->metrics.conns_failed;
  }
  free(tc);
  if (r->is_server && r->listen_paused) {
    server_listen_resume(r);
  }
  if (r->stopping) {
    check_drained(r);
  }
}

/* Close cleanly once both directions are finished and written out. */
static void tc_maybe_finish(tcpc *tc) {
  if (tc->connecting || tc->pending) {
    return;
  }
  if (prd_chunkbuf_len(&tc->out) > 0) {
    return;
  }
  if (tc->st == NULL) {
    tc_close(tc, 0, 0, "done");
    return;
  }
  if (tc->rd_eof && tc->wr_shut) {
    tc_close(tc, 0, 0, "done");
  }
}

static void tc_flush_out(tcpc *tc) {
  struct iovec iov[16];
  while (prd_chunkbuf_len(&tc->out) > 0) {
    size_t n = prd_chunkbuf_peek(&tc->out, tc->out.head_off, iov, 16);
    ssize_t w = writev(tc->fd, iov, (int)n);
    if (w < 0) {
      if (errno == EINTR) {
        continue;
      }
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        tc_enable_write(tc, 1);
        return;
      }
      tc_close(tc, 1, local_reset_code(tc->r), strerror(errno));
      return;
    }
    prd_chunkbuf_release(&tc->out, tc->out.head_off + (uint64_t)w);
    tc->down += (uint64_t)w;
    tc->r->metrics.bytes_down += (uint64_t)w;
    if (tc->st) {
      prd_qstream_consumed(tc->st, (size_t)w);
    }
  }
  tc_enable_write(tc, 0);
  if (tc->wr_fin && !tc->wr_shut) {
    shutdown(tc->fd, SHUT_WR);
    tc->wr_shut = 1;
  }
  tc_maybe_finish(tc);
}

static void tc_read(tcpc *tc) {
  size_t total = 0;
  prd_qstream *st = tc->st;

  while (total < READ_BUDGET) {
    uint64_t space = prd_qstream_send_space(st);
    uint8_t *p;
    size_t avail;
    ssize_t n;

    if (space == 0) {
      /* Backpressure: resume on ACK/credit (stream_writable). EPOLLIN
       * stays registered for a few turns, since sends and ACKs usually free
       * space soon and removing and re-adding it costs two epoll_ctl; after
       * RD_PAUSE_TURNS turns still without space it is unregistered. */
      if (tc->rd_paused && total == 0) {
        if (++tc->rd_idle >= RD_PAUSE_TURNS) {
          tc_enable_read(tc, 0);
        }
        return;
      }
      tc->rd_paused = 1;
      tc->rd_idle = 0;
      break;
    }
    if (prd_qstream_reserve(st, &p, &avail, 4096) != 0) {
      tc_close(tc, 1, PRD_APP_INTERNAL_ERROR, "out of memory");
      return;
    }
    if (avail > space) {
      avail = (size_t)space;
    }
    n = read(tc->fd, p, avail);
    if (n > 0) {
      prd_qstream_commit(st, (size_t)n);
      tc->up += (uint64_t)n;
      tc->r->metrics.bytes_up += (uint64_t)n;
      total += (size_t)n;
      if ((size_t)n < avail) {
        break; /* drained the socket for now */
      }
      continue;
    }
    prd_qstream_commit(st, 0);
    if (n == 0) {
      tc->rd_eof = 1;
      tc_enable_read(tc, 0);
      prd_qstream_shutdown_write(st);
      break;
    }
    if (errno == EINTR) {
      continue;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      break;
    }
    prd_qstream_mark_ready(st);
    tc_close(tc, 1, local_reset_code(tc->r), strerror(errno));
    return;
  }
  prd_qstream_mark_ready(st);
  if (tc->rd_eof) {
    tc_maybe_finish(tc);
  }
}

static void on_tcp_read(evutil_socket_t fd, short what, void *arg) {
  tcpc *tc = arg;
  (void)fd;
  (void)what;
  if (tc->st == NULL) {
    tc_enable_read(tc, 0);
    return;
  }
  tc_read(tc);
}

static void client_try_connect(tcpc *tc);

static void on_tcp_write(evutil_socket_t fd, short what, void *arg) {
  tcpc *tc = arg;
  (void)what;
  if (tc->connecting) {
    int err = 0;
    socklen_t len = sizeof(err);
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) {
      PRD_LOG_DEBUG("[t%llu] connect to destination failed: %s",
                    (unsigned long long)tc->id, strerror(err));
      tc->dest_err = err;
      close(tc->fd);
      event_free(tc->rev);
      event_free(tc->wev);
      tc->rev = tc->wev = NULL;
      tc->rd_enabled = tc->wr_enabled = 0;
      ++tc->dest_idx;
      client_try_connect(tc);
      return;
    }
    tc->connecting = 0;
    set_nodelay(tc->fd);
    PRD_LOG_DEBUG("[t%llu] connected to destination",
                  (unsigned long long)tc->id);
    if (tc->st) {
      tc_enable_read(tc, 1);
    }
  }
  tc_flush_out(tc);
}

static tcpc *tc_new(relay *r, int fd) {
  tcpc *tc = calloc(1, sizeof(*tc));
  if (tc == NULL) {
    return NULL;
  }
  tc->r = r;
  tc->fd = fd;
  tc->id = ++r->next_id;
  tc->start = prd_now();
  prd_chunkbuf_init(&tc->out, 0);
  if (fd >= 0) {
    tc->rev = event_new(r->base, fd, EV_READ | EV_PERSIST, on_tcp_read, tc);
    tc->wev = event_new(r->base, fd, EV_WRITE | EV_PERSIST, on_tcp_write, tc);
    if (tc->rev == NULL || tc->wev == NULL) {
      event_free(tc->rev);
      event_free(tc->wev);
      free(tc);
      return NULL;
    }
  }
  ++r->nconns;
  ++r->metrics.conns_total;
  r->metrics.active = r->nconns;
  return tc;
}

/* ---- QUIC callbacks shared by both roles ------------------------------ */

static int cb_stream_data(prd_qstream *st, const uint8_t *data, size_t len,
                          int fin, void *ud) {
  tcpc *tc = prd_qstream_user(st);
  (void)ud;
  if (len > 0) {
    if (len >= DIRECT_WRITE_MIN && prd_chunkbuf_len(&tc->out) == 0 &&
        !tc->connecting) {
      /* Large pieces go straight to the socket, no copy. */
      while (len > 0) {
        ssize_t w = write(tc->fd, data, len);
        if (w < 0) {
          if (errno == EINTR) {
            continue;
          }
          if (errno == EAGAIN || errno == EWOULDBLOCK) {
            break;
          }
          tc_close(tc, 1, local_reset_code(tc->r), strerror(errno));
          return 0;
        }
        data += w;
        len -= (size_t)w;
        tc->down += (uint64_t)w;
        tc->r->metrics.bytes_down += (uint64_t)w;
        prd_qstream_consumed(st, (size_t)w);
      }
    }
    if (len > 0) {
      /* Small pieces (one per QUIC packet) are gathered and written with one
       * writev after the packets read in this event-loop turn (see
       * tc_schedule_write). The buffer is bounded by the stream's flow-control
       * window: credit comes back only when these bytes reach the socket. */
      if (prd_chunkbuf_append(&tc->out, data, len) != 0) {
        tc_close(tc, 1, PRD_APP_INTERNAL_ERROR, "out of memory");
        return 0;
      }
      if (!tc->connecting) {
        tc_schedule_write(tc);
      }
    }
  }
  if (fin) {
    tc->wr_fin = 1;
    if (prd_chunkbuf_len(&tc->out) == 0 && !tc->connecting) {
      shutdown(tc->fd, SHUT_WR);
      tc->wr_shut = 1;
      tc_maybe_finish(tc);
    }
  }
  return 0;
}

static void cb_stream_reset(prd_qstream *st, uint64_t app_err, void *ud) {
  tcpc *tc = prd_qstream_user(st);
  char why[96];
  (void)ud;
  snprintf(why, sizeof(why), "reset by the %s side (%s)",
           tc->r->is_server ? "client" : "server", prd_app_err_name(app_err));
  /* The stream is aborted by the transport already; RST the TCP side. */
  tc_close(tc, 1, app_err, why);
}

static void cb_stream_writable(prd_qstream *st, void *ud) {
  tcpc *tc = prd_qstream_user(st);
  (void)ud;
  if (tc->rd_paused && !tc->rd_eof) {
    tc->rd_paused = 0;
    tc_enable_read(tc, 1);
  }
}

static void cb_stream_close(prd_qstream *st, uint64_t app_err, void *ud) {
  tcpc *tc = prd_qstream_user(st);
  (void)ud;
  /* The stream is complete but a slow TCP reader may still have bytes
   * queued: their connection-level credit is due now, since nobody will
   * account for them once the stream is gone. */
  prd_qstream_consumed(st, (size_t)prd_chunkbuf_len(&tc->out));
  tc->st = NULL;
  prd_qstream_set_user(st, NULL);
  prd_qstream_detach(st);
  if (tc->t) {
    /* The stream is gone: the TCP side no longer holds its tunnel, which
     * may be freed (server_closed) before the last bytes reach TCP. */
    if (tc->t->qc) {
      snprintf(tc->qname, sizeof(tc->qname), "%s",
               prd_quic_conn_name(tc->t->qc));
    }
    if (tc->t->active > 0) {
      --tc->t->active;
    }
    tc->t = NULL;
  }
  if (app_err != PRD_APP_NO_ERROR) {
    char why[96];
    snprintf(why, sizeof(why), "stream ended: %s", prd_app_err_name(app_err));
    tc_close(tc, 1, app_err, why);
    return;
  }
  tc_enable_read(tc, 0);
  tc_maybe_finish(tc);
}

/* The QUIC connection's timer is a timerfd of its own, armed at the
 * absolute expiry: ngtcp2's timers (ACK delay, loss detection, pacing) need
 * better than the millisecond epoll_wait timeouts of libevent's other
 * timers, and a base with EVENT_BASE_FLAG_PRECISE_TIMER pays one
 * timerfd_settime per event-loop turn. Arming is lazy: an expiry later
 * than the one armed leaves the timer as it is, since it then fires early
 * and on_conn_timer asks ngtcp2 again (handling an expiry early does
 * nothing). Most flushes move the expiry later (the loss timer follows the
 * last packet sent), so the timer is re-armed about once per expiry rather
 * than once per turn. */
static void tunnel_timer_arm(tunnel *t, prd_tstamp expiry) {
  struct itimerspec its;
  memset(&its, 0, sizeof(its));
  if (expiry == 0) {
    expiry = 1; /* 0 would disarm: fire now */
  }
  its.it_value.tv_sec = (time_t)(expiry / PRD_NS_PER_S);
  its.it_value.tv_nsec = (long)(expiry % PRD_NS_PER_S);
  if (timerfd_settime(t->timer_fd, TFD_TIMER_ABSTIME, &its, NULL) == 0) {
    t->timer_armed = expiry;
  }
}

static void cb_set_timer(prd_quic_conn *qc, prd_tstamp expiry, void *ud) {
  tunnel *t = ud;
  (void)qc;
  if (t && t->r->stopping == 1 && t->r->nconns == 0) {
    /* Draining with every TCP side gone: streams may have ended in this
     * call (their last ACK arrived). Look again from the event loop, never
     * from inside the connection's processing. */
    event_active(t->r->drain_ev, EV_TIMEOUT, 0);
  }
  if (t == NULL || t->timer == NULL || expiry == UINT64_MAX) {
    return; /* an armed timer may fire for nothing: harmless */
  }
  if (t->timer_armed != 0 && t->timer_armed <= expiry) {
    return;
  }
  tunnel_timer_arm(t, expiry);
}

static void cb_want_flush(prd_quic_conn *qc, void *ud) {
  tunnel *t = ud;
  (void)qc;
  if (t && t->flush_ev) {
    event_active(t->flush_ev, EV_TIMEOUT, 0);
  }
}

static void on_conn_timer(evutil_socket_t fd, short what, void *arg) {
  tunnel *t = arg;
  uint64_t ticks;
  (void)what;
  if (read(fd, &ticks, sizeof(ticks)) < 0 && errno == EAGAIN) {
    return; /* re-armed later than it was about to fire */
  }
  t->timer_armed = 0;
  if (t->qc) {
    prd_quic_conn_on_timer(t->qc);
  }
}

static void on_conn_flush(evutil_socket_t fd, short what, void *arg) {
  tunnel *t = arg;
  (void)fd;
  (void)what;
  if (t->qc) {
    prd_quic_conn_flush(t->qc);
  }
}

static int tunnel_events(relay *r, tunnel *t) {
  t->timer_armed = 0;
  t->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  if (t->timer_fd < 0) {
    /* Once a second at most: a flood of Initials must not flood the log. */
    static prd_tstamp logged;
    prd_tstamp now = prd_now();
    if (logged == 0 || now - logged >= PRD_NS_PER_S) {
      logged = now;
      PRD_LOG_WARN("cannot create a timer: %s; refusing new QUIC "
                   "connections until one is free",
                   strerror(errno));
    }
    return -1;
  }
  t->timer =
      event_new(r->base, t->timer_fd, EV_READ | EV_PERSIST, on_conn_timer, t);
  t->flush_ev = event_new(r->base, -1, 0, on_conn_flush, t);
  if (t->timer == NULL || t->flush_ev == NULL ||
      event_add(t->timer, NULL) != 0) {
    return -1;
  }
  /* event_active() appends the flush behind the events already active in
   * this turn, so several reads share one flush. */
  return 0;
}

static void tunnel_events_free(tunnel *t) {
  if (t->timer) {
    event_free(t->timer);
    t->timer = NULL;
  }
  if (t->timer_fd >= 0) {
    close(t->timer_fd);
    t->timer_fd = -1;
  }
  t->timer_armed = 0;
  if (t->flush_ev) {
    event_free(t->flush_ev);
    t->flush_ev = NULL;
  }
}

/* ---- server ----------------------------------------------------------- */

/* spec/04-quic-profile.md §7: the authenticated client with the fewest
 * active streams that still answers; ties round-robin. */
static int tunnel_suspect(tunnel *t) {
  if (t->suspect_since && prd_quic_conn_last_rx(t->qc) <= t->suspect_since) {
    return 1;
  }
  t->suspect_since = 0;
  return prd_quic_conn_suspect(t->qc);
}

static tunnel *pick_tunnel(relay *r, tunnel *exclude) {
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

/* spec/04-quic-profile.md §7 Liveness: a stream of which the client
 * acknowledged nothing in max(3 PTO, 300 ms) marks the client suspect and
 * moves to another client with all its bytes. */
static void on_unconf_timer(evutil_socket_t fd, short what, void *arg) {
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
    /* Move: a new stream carries the header and every byte read so far. */
    {
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
        continue;
      }
      PRD_LOG_INFO("[t%llu] moved to %s from silent client %s",
                   (unsigned long long)tc->id, prd_quic_conn_name(nt->qc),
                   prd_quic_conn_name(old->qc));
    }
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

static void pend_drain(relay *r) {
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

/* A drain keeps pending users waiting at most this long beyond their own
 * --pending-timeout: a client that sent GOAWAY but never leaves must not
 * hold them for ever. */
#define PEND_DRAIN_MAX_NS (60 * PRD_NS_PER_S)

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

static void on_pend_timer(evutil_socket_t fd, short what, void *arg) {
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

static void on_accept(evutil_socket_t fd, short what, void *arg) {
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

static void on_udp_read(evutil_socket_t fd, short what, void *arg) {
  prd_quic_endpoint *ep = arg;
  (void)fd;
  (void)what;
  prd_quic_endpoint_on_readable(ep);
}

static void on_udp_write(evutil_socket_t fd, short what, void *arg) {
  prd_quic_endpoint *ep = arg;
  (void)fd;
  (void)what;
  prd_quic_endpoint_on_writable(ep);
}

static void cb_want_writable(prd_quic_endpoint *ep, void *ud) {
  relay *r = ud;
  if (r->is_server) {
    event_add(r->udp_wev, NULL);
    return;
  }
  for (size_t i = 0; i < r->cfg->nremotes; ++i) {
    if (r->remotes[i].ep == ep && r->remotes[i].udp_wev) {
      event_add(r->remotes[i].udp_wev, NULL);
    }
  }
}

/* ---- client ----------------------------------------------------------- */

static void client_try_connect(tcpc *tc) {
  relay *r = tc->r;
  while (tc->dest_idx < r->cfg->ndest) {
    const prd_sockaddr *d = &r->cfg->dest[tc->dest_idx];
    int fd = socket(d->u.sa.sa_family,
                    SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      tc->dest_err = errno;
      ++tc->dest_idx;
      continue;
    }
    tc->fd = fd;
    tc->rev = event_new(r->base, fd, EV_READ | EV_PERSIST, on_tcp_read, tc);
    tc->wev = event_new(r->base, fd, EV_WRITE | EV_PERSIST, on_tcp_write, tc);
    if (connect(fd, &d->u.sa, d->len) == 0 || errno == EINPROGRESS) {
      tc->connecting = 1;
      tc_enable_write(tc, 1);
      return;
    }
    tc->dest_err = errno;
    PRD_LOG_DEBUG("[t%llu] connect: %s", (unsigned long long)tc->id,
                  strerror(errno));
    event_free(tc->rev);
    event_free(tc->wev);
    tc->rev = tc->wev = NULL;
    close(fd);
    tc->fd = -1;
    ++tc->dest_idx;
  }
  /* Every address failed: spec/05-errors.md DESTINATION_UNREACHABLE. */
  PRD_LOG_WARN("[t%llu] destination %s unreachable: %s",
               (unsigned long long)tc->id, r->cfg->dest_label,
               tc->dest_err ? strerror(tc->dest_err) : "no address to dial");
  tc->connecting = 0;
  tc_close(tc, 1, PRD_APP_DESTINATION_UNREACHABLE, "destination unreachable");
}

static uint64_t client_stream_open(prd_quic_conn *qc, prd_qstream *st,
                                   const prd_stream_header *hd, void *ud) {
  tunnel *t = ud;
  relay *r = t->r;
  tcpc *tc;

  if (r->stopping) {
    return PRD_APP_STREAM_REFUSED;
  }
  tc = tc_new(r, -1);
  if (tc == NULL) {
    return PRD_APP_INTERNAL_ERROR;
  }
  tc->fd = -1;
  tc->t = t;
  ++t->active;
  tc->st = st;
  prd_qstream_set_user(st, tc);
  if (hd->has_src) {
    if (hd->src.family == 4) {
      tc->peer.u.in.sin_family = AF_INET;
      memcpy(&tc->peer.u.in.sin_addr, hd->src.addr, 4);
      tc->peer.u.in.sin_port = htons(hd->src.port);
      tc->peer.len = sizeof(tc->peer.u.in);
    } else {
      tc->peer.u.in6.sin6_family = AF_INET6;
      memcpy(&tc->peer.u.in6.sin6_addr, hd->src.addr, 16);
      tc->peer.u.in6.sin6_port = htons(hd->src.port);
      tc->peer.len = sizeof(tc->peer.u.in6);
    }
  }
  if (r->cfg->proxy_protocol) {
    uint8_t pp[PRD_PROXY_MAX];
    size_t n = prd_proxy_encode(pp, sizeof(pp), r->cfg->proxy_protocol, hd);
    if (n == 0 || prd_chunkbuf_append(&tc->out, pp, n) != 0) {
      tc->st = NULL;
      prd_qstream_set_user(st, NULL);
      --t->active;
      --r->nconns;
      prd_chunkbuf_free(&tc->out);
      free(tc);
      return PRD_APP_INTERNAL_ERROR;
    }
  }
  (void)qc;
  PRD_LOG_DEBUG("[t%llu] %s stream %lld opened", (unsigned long long)tc->id,
                prd_quic_conn_name(qc), (long long)prd_qstream_id(st));
  client_try_connect(tc);
  /* On failure client_try_connect closed |tc| and aborted the stream. */
  return 0;
}

static void client_connect(tunnel *t);

static void on_client_retry(evutil_socket_t fd, short what, void *arg) {
  tunnel *t = arg;
  (void)fd;
  (void)what;
  client_connect(t);
}

/* The address being dialed did not give an authenticated tunnel within
 * DIAL_TIMEOUT_MS while another address remains: give it up; client_closed
 * moves on to the next one. */
static void on_client_dial_timeout(evutil_socket_t fd, short what, void *arg) {
  tunnel *t = arg;
  char why[200], a[80];
  (void)fd;
  (void)what;
  if (t->qc && !t->authenticated) {
    if (prd_quic_conn_last_rx(t->qc) == 0) {
      snprintf(why, sizeof(why),
               "nothing answered over UDP within %d ms; check that UDP "
               "reaches %s",
               DIAL_TIMEOUT_MS,
               prd_sockaddr_str(prd_quic_conn_remote(t->qc), a, sizeof(a)));
    } else {
      snprintf(why, sizeof(why), "no tunnel within %d ms", DIAL_TIMEOUT_MS);
    }
    prd_quic_conn_close(t->qc, PRD_APP_AUTH_TIMEOUT, why);
  }
}

static void client_schedule_retry(tunnel *t) {
  struct timeval tv;
  uint64_t ms = t->backoff_ms, jitter;
  uint32_t rnd = (uint32_t)random();
  /* +-25 % jitter so that many clients do not reconnect in lockstep. */
  jitter = ms / 2 ? rnd % (ms / 2) : 0;
  ms = ms - ms / 4 + jitter;
  tv_from_ns(&tv, ms * PRD_NS_PER_MS);
  evtimer_add(t->retry_ev, &tv);
  t->backoff_ms *= 2;
  if (t->backoff_ms > BACKOFF_MAX_MS) {
    t->backoff_ms = BACKOFF_MAX_MS;
  }
}

/* The attempt at the current address failed before the tunnel was up: the
 * next address at once; after the last one, back off, then a new round with
 * the host name resolved again. */
static void client_next_address(tunnel *t) {
  struct timeval tv = {0, 0};
  if (t->addr_idx + 1 < t->remote->naddrs) {
    ++t->addr_idx;
    evtimer_add(t->retry_ev, &tv);
    return;
  }
  t->addr_idx = 0;
  t->resolve_next = 1;
  client_schedule_retry(t);
}

/* Resolve the remote's host again (blocking getaddrinfo, once per round:
 * DNS changes are followed). On failure the previous addresses stay. */
static void client_resolve(tunnel *t) {
  prd_relay_remote *rm = t->remote;
  prd_sockaddr tmp[PRD_RELAY_MAX_ADDRS];
  char err[400], list[400], a[80];
  size_t n, off = 0;

  if (t->r->cfg->resolve == NULL || rm->host[0] == 0) {
    return;
  }
  n = t->r->cfg->resolve(tmp, PRD_RELAY_MAX_ADDRS, rm->host, rm->port, 0, err,
                         sizeof(err));
  if (n == 0) {
    PRD_LOG_WARN("%s: %s; dialing the %zu address(es) resolved before",
                 rm->label, err, rm->naddrs);
    return;
  }
  if (n == rm->naddrs && memcmp(tmp, rm->addrs, n * sizeof(tmp[0])) == 0) {
    return;
  }
  list[0] = 0;
  for (size_t i = 0; i < n && off < sizeof(list); ++i) {
    int w = snprintf(list + off, sizeof(list) - off, "%s%s", i ? ", " : "",
                     prd_sockaddr_str(&tmp[i], a, sizeof(a)));
    off += w > 0 ? (size_t)w : 0;
  }
  PRD_LOG_INFO("%s now resolves to %s", rm->label, list);
  memcpy(rm->addrs, tmp, n * sizeof(tmp[0]));
  rm->naddrs = n;
}

/* The local address to bind for a dial to |to|: --quic-local-port without
 * --quic-local-host binds the wildcard address of |to|'s family. */
static const prd_sockaddr *client_local(relay *r, const prd_sockaddr *to,
                                        prd_sockaddr *buf) {
  const prd_sockaddr *l = &r->cfg->quic_local;
  uint16_t port;
  if (!r->cfg->have_quic_local) {
    return NULL;
  }
  if (!r->cfg->quic_local_any || l->u.sa.sa_family == to->u.sa.sa_family) {
    return l;
  }
  port = l->u.sa.sa_family == AF_INET6 ? l->u.in6.sin6_port : l->u.in.sin_port;
  memset(buf, 0, sizeof(*buf));
  if (to->u.sa.sa_family == AF_INET6) {
    buf->u.in6.sin6_family = AF_INET6;
    buf->u.in6.sin6_addr = in6addr_any;
    buf->u.in6.sin6_port = port;
    buf->len = sizeof(buf->u.in6);
  } else {
    buf->u.in.sin_family = AF_INET;
    buf->u.in.sin_addr.s_addr = htonl(INADDR_ANY);
    buf->u.in.sin_port = port;
    buf->len = sizeof(buf->u.in);
  }
  return buf;
}

/* Trust on first use: pin the certificate of the first server we
 * authenticated with, on disk and for the next reconnects. */
static void client_tofu_store(tunnel *t, prd_quic_conn *qc) {
  const uint8_t *der;
  size_t len;
  char fp[PRD_FINGERPRINT_LEN];
  uint8_t *copy;
  if (t->remote->pin_der || prd_quic_conn_tofu_cert(qc, &der, &len) != 0) {
    return;
  }
  copy = malloc(len);
  if (copy == NULL) {
    return;
  }
  memcpy(copy, der, len);
  if (prd_file_write_atomic(t->remote->tofu_path, der, len, 0600) != 0) {
    PRD_LOG_ERROR("cannot store the server certificate in %s",
                  t->remote->tofu_path);
  }
  if (prd_cert_fingerprint(fp, der, len) != 0) {
    snprintf(fp, sizeof(fp), "?");
  }
  PRD_LOG_WARN("trust on first use: pinned the certificate of %s "
               "(SHA-256 %s) in %s; compare it with "
               "'portredirect_server --print-fingerprint' on the server",
               t->remote->label, fp, t->remote->tofu_path);
  t->remote->pin_der = copy;
  t->remote->pinlen = len;
  t->remote->pin_owned = 1;
  memcpy(t->remote->pin_name, t->remote->tofu_path,
         sizeof(t->remote->pin_name));
}

static void client_authenticated(prd_quic_conn *qc, void *ud) {
  tunnel *t = ud;
  relay *r = t->r;
  char a[80];
  t->authenticated = 1;
  t->up_since = prd_now();
  t->psk_err_at = 0;
  if (!r->ready_sent) {
    r->ready_sent = 1;
    prd_notify("READY=1\nSTATUS=tunnel up to %s", t->remote->label);
  }
  if (t->dial_ev) {
    evtimer_del(t->dial_ev);
  }
  ++r->metrics.clients;
  r->metrics.tunnel_up = 1;
  if (t->remote->naddrs > 1) {
    PRD_LOG_INFO("[%s] tunnel up: authenticated to %s (%s)",
                 prd_quic_conn_name(qc), t->remote->label,
                 prd_sockaddr_str(prd_quic_conn_remote(qc), a, sizeof(a)));
  } else {
    PRD_LOG_INFO("[%s] tunnel up: authenticated to %s", prd_quic_conn_name(qc),
                 t->remote->label);
  }
  client_tofu_store(t, qc);
  if (r->stopping) {
    prd_quic_conn_goaway(qc, PRD_APP_SHUTTING_DOWN);
  }
}

static void client_closed(prd_quic_conn *qc, const prd_quic_close_info *ci,
                          void *ud) {
  tunnel *t = ud;
  relay *r = t->r;
  int stable, psk_rejected, was_up = t->authenticated;
  prd_quic_conn_info info;
  char a[80], at[100];
  const char *msg = ci->msg;

  if (t->dial_ev) {
    evtimer_del(t->dial_ev);
  }
  /* The connection's loss count, kept for the lost-packets counter. */
  prd_quic_conn_get_info(qc, &info);
  r->metrics.lost_closed += info.lost_packets;
  at[0] = 0;
  if (t->remote->naddrs > 1) {
    snprintf(at, sizeof(at), " (%s, address %zu of %zu)",
             prd_sockaddr_str(prd_quic_conn_remote(qc), a, sizeof(a)),
             t->addr_idx + 1, t->remote->naddrs);
  }
  stable = t->authenticated && prd_now() - t->up_since >= STABLE_NS;
  psk_rejected = !t->authenticated &&
                 (ci->kind == PRD_QUIC_CLOSE_LOCAL ||
                  ci->kind == PRD_QUIC_CLOSE_PEER_APP) &&
                 ci->code == PRD_APP_AUTH_FAILED;
  if (psk_rejected) {
    prd_tstamp now = prd_now();
    if (t->psk_err_at == 0 || now - t->psk_err_at >= PSK_ERROR_EVERY_NS) {
      t->psk_err_at = now;
      PRD_LOG_ERROR("[%s] authentication failed: %s%s rejected our PSK "
                    "(AUTH_FAILED), a configuration error; check "
                    "--quic-psk/--quic-psk-file on both sides. Retrying every "
                    "%d s; this message repeats every %d minutes",
                    prd_quic_conn_name(qc), t->remote->label, at,
                    BACKOFF_MAX_MS / 1000,
                    (int)(PSK_ERROR_EVERY_NS / PRD_NS_PER_S / 60));
    } else {
      PRD_LOG_DEBUG("[%s] %s%s rejected our PSK again", prd_quic_conn_name(qc),
                    t->remote->label, at);
    }
  } else if (t->authenticated) {
    --r->metrics.clients;
    PRD_LOG_INFO("[%s] tunnel to %s%s down: %s", prd_quic_conn_name(qc),
                 t->remote->label, at, msg && msg[0] ? msg : "closed");
  } else if (ci->kind == PRD_QUIC_CLOSE_PIN_MISMATCH ||
             ci->kind == PRD_QUIC_CLOSE_NAME_MISMATCH ||
             ci->kind == PRD_QUIC_CLOSE_CERT_REJECTED) {
    PRD_LOG_ERROR("[%s] %s%s: %s", prd_quic_conn_name(qc), t->remote->label, at,
                  msg);
  } else {
    PRD_LOG_WARN("[%s] cannot connect to %s%s: %s", prd_quic_conn_name(qc),
                 t->remote->label, at, msg && msg[0] ? msg : "failed");
  }
  r->metrics.tunnel_up = 0;
  for (size_t i = 0; i < r->cfg->nremotes; ++i) {
    if (r->remotes[i].qc && r->remotes[i].authenticated &&
        &r->remotes[i] != t) {
      r->metrics.tunnel_up = 1;
    }
  }
  t->qc = NULL;
  t->authenticated = 0;
  tunnel_events_free(t);
  /* The endpoint is still on the call stack: free it on the retry. */
  t->dead_ep = t->ep;
  t->ep = NULL;
  if (t->udp_rev) {
    event_del(t->udp_rev);
  }
  if (t->udp_wev) {
    event_del(t->udp_wev);
  }
  if (r->stopping) {
    check_drained(r);
    return;
  }
  if (stable) {
    t->backoff_ms = BACKOFF_MIN_MS;
  }
  ++r->metrics.reconnects;
  if (psk_rejected) {
    /* Retrying sooner cannot help: straight to the cap. */
    t->backoff_ms = BACKOFF_MAX_MS;
  }
  if (!was_up) {
    client_next_address(t);
    return;
  }
  /* A tunnel that was up: a new round, from the first address. */
  t->addr_idx = 0;
  t->resolve_next = 1;
  client_schedule_retry(t);
}

static void client_connect(tunnel *t) {
  relay *r = t->r;
  prd_relay_remote *rm = t->remote;
  prd_quic_config qcfg = r->cfg->quic;
  prd_sockaddr lbuf;
  const prd_sockaddr *to;
  char a[80];
  int rv;

  if (t->dead_ep) {
    if (t->udp_rev) {
      event_free(t->udp_rev);
      t->udp_rev = NULL;
    }
    if (t->udp_wev) {
      event_free(t->udp_wev);
      t->udp_wev = NULL;
    }
    prd_quic_endpoint_del(t->dead_ep);
    t->dead_ep = NULL;
  }
  if (r->stopping) {
    return;
  }
  if (t->resolve_next) {
    t->resolve_next = 0;
    client_resolve(t);
  }
  if (t->addr_idx >= rm->naddrs) {
    t->addr_idx = 0;
  }
  to = &rm->addrs[t->addr_idx];
  prd_sockaddr_str(to, a, sizeof(a));
  qcfg.pin_der = t->remote->pin_der;
  qcfg.pinlen = t->remote->pinlen;
  qcfg.expected_name = t->remote->expected_name;
  qcfg.pin_name = t->remote->pin_name;
  qcfg.pin_sha256 = t->remote->pin_sha256;
  qcfg.npin_sha256 = t->remote->npin_sha256;
  qcfg.ud = t;
  if (tunnel_events(r, t) != 0) {
    tunnel_events_free(t);
    client_schedule_retry(t);
    return;
  }
  rv = prd_quic_endpoint_new_client(&t->ep, &t->qc, &qcfg,
                                    client_local(r, to, &lbuf), to);
  if (rv != 0) {
    PRD_LOG_WARN("cannot start a connection to %s (%s): %s", rm->label, a,
                 prd_strerror(rv));
    tunnel_events_free(t);
    t->ep = NULL;
    t->qc = NULL;
    client_next_address(t);
    return;
  }
  t->udp_rev = event_new(r->base, prd_quic_endpoint_fd(t->ep),
                         EV_READ | EV_PERSIST, on_udp_read, t->ep);
  t->udp_wev = event_new(r->base, prd_quic_endpoint_fd(t->ep), EV_WRITE,
                         on_udp_write, t->ep);
  event_add(t->udp_rev, NULL);
  PRD_LOG_DEBUG("[%s] connecting to %s (%s, address %zu of %zu)",
                prd_quic_conn_name(t->qc), rm->label, a, t->addr_idx + 1,
                rm->naddrs);
  if (t->addr_idx + 1 < rm->naddrs && t->dial_ev) {
    /* Another address remains: do not wait for the handshake timeout. */
    struct timeval tv;
    tv_from_ns(&tv, (uint64_t)DIAL_TIMEOUT_MS * PRD_NS_PER_MS);
    evtimer_add(t->dial_ev, &tv);
  }
  prd_quic_conn_flush(t->qc);
}

/* ---- shutdown, signals, metrics --------------------------------------- */

static size_t live_conns(relay *r) {
  size_t n = 0;
  if (r->is_server) {
    /* server_closed unlinks a tunnel before its connection is freed. */
    for (tunnel *t = r->tunnels; t; t = t->next) {
      ++n;
    }
    return n;
  }
  for (size_t i = 0; i < r->cfg->nremotes; ++i) {
    n += r->remotes[i].qc != NULL;
  }
  return n;
}

static void close_all_conns(relay *r, uint64_t code) {
  if (r->is_server) {
    tunnel *t = r->tunnels, *next;
    for (; t; t = next) {
      next = t->next;
      if (t->qc) {
        prd_quic_conn_close(t->qc, code, "shutting down");
      }
    }
    return;
  }
  for (size_t i = 0; i < r->cfg->nremotes; ++i) {
    if (r->remotes[i].qc) {
      prd_quic_conn_close(r->remotes[i].qc, code, "shutting down");
    }
  }
}

/* streams_left counts the data streams the QUIC connections still hold: a
 * stream is forgotten only when its bytes and FIN went out and were
 * acknowledged both ways, or it was reset (spec/04-quic-profile.md §6.2). */
static size_t streams_left(relay *r) {
  size_t n = 0;
  if (r->is_server) {
    for (tunnel *t = r->tunnels; t; t = t->next) {
      n += t->qc ? prd_quic_conn_num_streams(t->qc) : 0;
    }
    return n;
  }
  for (size_t i = 0; i < r->cfg->nremotes; ++i) {
    if (r->remotes[i].qc) {
      n += prd_quic_conn_num_streams(r->remotes[i].qc);
    }
  }
  return n;
}

/* linger_ns: max(100 ms, 3 PTO) over the connections still open. */
static uint64_t linger_ns(relay *r) {
  uint64_t linger = 100 * PRD_NS_PER_MS, pto;
  for (tunnel *t = r->is_server ? r->tunnels : NULL; t; t = t->next) {
    pto = t->qc ? 3 * prd_quic_conn_pto_ns(t->qc) : 0;
    linger = pto > linger ? pto : linger;
  }
  for (size_t i = 0; !r->is_server && i < r->cfg->nremotes; ++i) {
    pto = r->remotes[i].qc ? 3 * prd_quic_conn_pto_ns(r->remotes[i].qc) : 0;
    linger = pto > linger ? pto : linger;
  }
  return linger;
}

/* drain_may_close: 1 once a drain may close the connections. Every TCP side
 * must be closed and every stream ended in QUIC too: closing earlier would
 * abort a stream whose last bytes or FIN are still unacknowledged. And an
 * acknowledgment shows only that the peer's stack holds the bytes, while
 * some stacks discard what their application has not read yet when the
 * connection closes: after the last stream, linger max(100 ms, 3 PTO),
 * within the grace period (spec/04-quic-profile.md §6.2). */
static int drain_may_close(relay *r) {
  struct timeval tv;
  if (r->nconns > 0 || streams_left(r) > 0) {
    r->drain_busy = 1;
    if (r->lingering) {
      /* A stream after the linger began: linger after the last one. */
      evtimer_del(r->linger_ev);
      r->lingering = 0;
    }
    return 0;
  }
  if (!r->drain_busy || r->lingering == 2) {
    return 1;
  }
  if (r->lingering == 0) {
    r->lingering = 1;
    tv_from_ns(&tv, linger_ns(r));
    evtimer_add(r->linger_ev, &tv);
  }
  return 0;
}

static void check_drained(relay *r) {
  if (r->drain_starting) {
    return; /* start_shutdown looks once it has reset the pending users */
  }
  if (r->stopping == 1 && drain_may_close(r)) {
    r->stopping = 2;
    close_all_conns(r, PRD_APP_SHUTTING_DOWN);
  }
  if (r->stopping == 2 && live_conns(r) == 0) {
    event_base_loopexit(r->base, NULL);
  }
}

static void on_grace(evutil_socket_t fd, short what, void *arg) {
  relay *r = arg;
  (void)fd;
  (void)what;
  PRD_LOG_INFO("grace period over: closing %zu remaining connections",
               r->nconns);
  r->stopping = 2;
  close_all_conns(r, PRD_APP_SHUTTING_DOWN);
  check_drained(r);
}

static void on_linger(evutil_socket_t fd, short what, void *arg) {
  relay *r = arg;
  (void)fd;
  (void)what;
  r->lingering = 2;
  check_drained(r);
}

static void on_drain_check(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  check_drained(arg);
}

static void on_hard_exit(evutil_socket_t fd, short what, void *arg) {
  relay *r = arg;
  (void)fd;
  (void)what;
  event_base_loopexit(r->base, NULL);
}

static void start_shutdown(relay *r) {
  struct timeval tv;
  if (r->stopping) {
    PRD_LOG_INFO("second signal: exiting now");
    event_base_loopexit(r->base, NULL);
    return;
  }
  r->stopping = 1;
  r->drain_starting = 1;
  PRD_LOG_INFO("shutting down: draining %zu connections for up to %.1f s",
               r->nconns, (double)r->cfg->grace_ns / 1e9);
  if (r->is_server) {
    if (r->listen_ev) {
      event_del(r->listen_ev);
    }
    while (r->pend_head) {
      tc_close(r->pend_head, 1, 0, "server shutting down");
    }
    for (tunnel *t = r->tunnels; t; t = t->next) {
      if (t->qc && t->authenticated) {
        prd_quic_conn_goaway(t->qc, PRD_APP_SHUTTING_DOWN);
      }
    }
  } else {
    for (size_t i = 0; i < r->cfg->nremotes; ++i) {
      tunnel *t = &r->remotes[i];
      if (t->retry_ev) {
        evtimer_del(t->retry_ev);
      }
      if (t->dial_ev) {
        evtimer_del(t->dial_ev);
      }
      if (t->qc && t->authenticated) {
        prd_quic_conn_goaway(t->qc, PRD_APP_SHUTTING_DOWN);
      }
    }
  }
  tv_from_ns(&tv, r->cfg->grace_ns);
  evtimer_add(r->grace_ev, &tv);
  tv_from_ns(&tv, r->cfg->grace_ns + 3 * PRD_NS_PER_S);
  evtimer_add(r->hard_ev, &tv);
  r->drain_starting = 0;
  check_drained(r);
}

static void on_signal(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  prd_notify("STOPPING=1\nSTATUS=shutting down: draining connections");
  start_shutdown(arg);
}

static void on_watchdog(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  (void)arg;
  /* From the event loop: a loop that hangs stops the pings. */
  prd_notify("WATCHDOG=1");
}

/* STATUS= for systemctl status, when what it says changed. */
static void notify_status(relay *r) {
  uint64_t key = ((uint64_t)r->metrics.clients << 32) ^ r->nconns;
  if (r->stopping || (r->status_key == key && r->ready_sent)) {
    return;
  }
  if (!r->is_server && !r->ready_sent) {
    if (prd_now() - r->started < READY_ANYWAY_NS) {
      return;
    }
    r->ready_sent = 1;
    prd_notify("READY=1\nSTATUS=no tunnel up yet after %d s; retrying (see "
               "the log)",
               (int)(READY_ANYWAY_NS / PRD_NS_PER_S));
    r->status_key = key;
    return;
  }
  if (!r->ready_sent) {
    return;
  }
  r->status_key = key;
  prd_notify("STATUS=%llu %s up, %zu connection%s open",
             (unsigned long long)r->metrics.clients,
             r->is_server ? (r->metrics.clients == 1 ? "client" : "clients")
                          : (r->metrics.clients == 1 ? "tunnel" : "tunnels"),
             r->nconns, r->nconns == 1 ? "" : "s");
}

/* SIGHUP's default action would end the process without a drain; until a
 * reload exists it is only noted (docs: man pages, SIGNALS). */
static void on_sighup(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  (void)arg;
  PRD_LOG_INFO("SIGHUP: reload is not supported yet; carrying on");
}

static void on_tick(evutil_socket_t fd, short what, void *arg) {
  relay *r = arg;
  /* After a wave of closes, give the freed heap back to the system so that
   * RSS follows the number of connections (bench: memory flat). */
  if (r->nconns + 1000 < r->trim_mark) {
    malloc_trim(0);
    r->trim_mark = r->nconns;
  } else if (r->nconns > r->trim_mark) {
    r->trim_mark = r->nconns;
  }
  static uint64_t last_total = UINT64_MAX, last_active = UINT64_MAX,
                  last_clients = UINT64_MAX;
  (void)fd;
  (void)what;
  notify_status(r);
  if (r->cfg->print_metrics && (last_total != r->metrics.conns_total ||
                                last_active != r->metrics.active ||
                                last_clients != r->metrics.clients)) {
    last_total = r->metrics.conns_total;
    last_active = r->metrics.active;
    last_clients = r->metrics.clients;
    fprintf(stderr,
            "metrics: connections_total=%llu active=%llu clients=%llu "
            "bytes_up=%llu bytes_down=%llu auth_failures=%llu\n",
            (unsigned long long)r->metrics.conns_total,
            (unsigned long long)r->metrics.active,
            (unsigned long long)r->metrics.clients,
            (unsigned long long)r->metrics.bytes_up,
            (unsigned long long)r->metrics.bytes_down,
            (unsigned long long)r->metrics.auth_failures);
  }
}

/* One series per authenticated tunnel; the lost-packets counter over every
 * connection, live or gone. */
static void fill_tunnel(prd_metrics *m, prd_quic_conn *qc, int up,
                        const char *label) {
  prd_quic_conn_info info;
  prd_metrics_tunnel *mt;
  prd_quic_conn_get_info(qc, &info);
  m->lost_packets += info.lost_packets;
  if (!up || (mt = prd_metrics_add_tunnel(m)) == NULL) {
    return;
  }
  mt->rtt_ns = info.rtt_ns;
  mt->cwnd = info.cwnd;
  mt->max_udp_payload = info.max_udp_payload;
  if (label) {
    snprintf(mt->label, sizeof(mt->label), "%s", label);
  } else {
    prd_sockaddr_str(prd_quic_conn_remote(qc), mt->label, sizeof(mt->label));
    snprintf(mt->conn, sizeof(mt->conn), "%s", prd_quic_conn_name(qc));
  }
}

static void relay_fill_info(void *arg, prd_metrics *m) {
  relay *r = arg;
  m->lost_packets = m->lost_closed;
  if (r->is_server) {
    for (tunnel *t = r->tunnels; t; t = t->next) {
      if (t->qc) {
        fill_tunnel(m, t->qc, t->authenticated, NULL);
      }
    }
  } else {
    for (size_t i = 0; i < r->cfg->nremotes; ++i) {
      tunnel *t = &r->remotes[i];
      if (t->qc) {
        fill_tunnel(m, t->qc, t->authenticated, t->remote->label);
      }
    }
  }
}

static int relay_common_init(relay *r, prd_relay_config *cfg, int is_server) {
  struct timeval tv = {1, 0};

  memset(r, 0, sizeof(*r));
  r->cfg = cfg;
  r->is_server = is_server;
  r->listen_fd = -1;
  /* Not EVENT_BASE_FLAG_PRECISE_TIMER: it costs a timerfd_settime in every
   * turn of the loop. The QUIC connections, whose timers need it, have
   * timerfds of their own (cb_set_timer); the relay's other timers count
   * in tens of milliseconds or more. */
  r->base = event_base_new();
  if (r->base == NULL) {
    return -1;
  }
  r->cb.stream_data = cb_stream_data;
  r->cb.stream_reset = cb_stream_reset;
  r->cb.stream_writable = cb_stream_writable;
  r->cb.stream_close = cb_stream_close;
  r->cb.set_timer = cb_set_timer;
  r->cb.want_flush = cb_want_flush;
  r->cb.want_writable = cb_want_writable;
  cfg->quic.cb = &r->cb;
  cfg->quic.ud = r;
  signal(SIGPIPE, SIG_IGN);
  r->sigint_ev = evsignal_new(r->base, SIGINT, on_signal, r);
  r->sigterm_ev = evsignal_new(r->base, SIGTERM, on_signal, r);
  r->sighup_ev = evsignal_new(r->base, SIGHUP, on_sighup, r);
  r->grace_ev = evtimer_new(r->base, on_grace, r);
  r->hard_ev = evtimer_new(r->base, on_hard_exit, r);
  r->drain_ev = evtimer_new(r->base, on_drain_check, r);
  r->linger_ev = evtimer_new(r->base, on_linger, r);
  r->tick_ev = event_new(r->base, -1, EV_PERSIST, on_tick, r);
  if (!r->sigint_ev || !r->sigterm_ev || !r->sighup_ev || !r->grace_ev ||
      !r->hard_ev || !r->drain_ev || !r->linger_ev || !r->tick_ev) {
    return -1;
  }
  event_add(r->sigint_ev, NULL);
  event_add(r->sigterm_ev, NULL);
  event_add(r->sighup_ev, NULL);
  event_add(r->tick_ev, &tv);
  r->started = prd_now();
  if (prd_notify_watchdog_usec() > 0) {
    struct timeval wtv;
    tv_from_ns(&wtv, prd_notify_watchdog_usec() * 1000 / 2);
    r->wd_ev = event_new(r->base, -1, EV_PERSIST, on_watchdog, r);
    if (r->wd_ev == NULL) {
      return -1;
    }
    event_add(r->wd_ev, &wtv);
  }
  prd_metrics_init(&r->metrics, is_server);
  if (cfg->metrics_listen[0]) {
    if (prd_metrics_listen(&r->metrics, r->base, cfg->metrics_listen,
                           relay_fill_info, r) != 0) {
      return -2; /* logged */
    }
  }
  return 0;
}

static void relay_common_free(relay *r) {
  prd_metrics_free(&r->metrics);
  if (r->sigint_ev) {
    event_free(r->sigint_ev);
  }
  if (r->sigterm_ev) {
    event_free(r->sigterm_ev);
  }
  if (r->sighup_ev) {
    event_free(r->sighup_ev);
  }
  if (r->grace_ev) {
    event_free(r->grace_ev);
  }
  if (r->hard_ev) {
    event_free(r->hard_ev);
  }
  if (r->drain_ev) {
    event_free(r->drain_ev);
  }
  if (r->linger_ev) {
    event_free(r->linger_ev);
  }
  if (r->tick_ev) {
    event_free(r->tick_ev);
  }
  if (r->wd_ev) {
    event_free(r->wd_ev);
  }
  if (r->base) {
    event_base_free(r->base);
  }
}

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

int prd_relay_server_run(prd_relay_config *cfg) {
  relay r;
  char buf[80];
  int on = 1, rv = 1;

  if ((rv = relay_common_init(&r, cfg, 1)) != 0) {
    if (rv == -1) {
      PRD_LOG_ERROR("cannot initialise the event loop");
    }
    relay_common_free(&r);
    return 1;
  }
  r.cb.authenticated = server_authenticated;
  r.cb.streams_available = server_streams_available;
  r.cb.closed = server_closed;
  r.cb.conn_new = cb_conn_new;
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
  r.listen_fd = socket(cfg->listen_addr.u.sa.sa_family,
                       SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (r.listen_fd >= 0) {
    setsockopt(r.listen_fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
    if (cfg->listen_addr.u.sa.sa_family == AF_INET6) {
      int off = 0;
      setsockopt(r.listen_fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof(off));
    }
  }
  if (r.listen_fd < 0 ||
      bind(r.listen_fd, &cfg->listen_addr.u.sa, cfg->listen_addr.len) != 0 ||
      listen(r.listen_fd, 4096) != 0) {
    PRD_LOG_ERROR("cannot listen for TCP on %s: %s (--local-host/--local-port)",
                  prd_sockaddr_str(&cfg->listen_addr, buf, sizeof(buf)),
                  strerror(errno));
    if (r.listen_fd >= 0) {
      close(r.listen_fd);
    }
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

  while (r.pend_head) {
    tc_close(r.pend_head, 1, 0, "server shutting down");
  }
  /* Whatever is left after the grace period goes now. */
  prd_quic_endpoint_del(r.ep);
  while (r.tunnels) {
    tunnel *t = r.tunnels;
    r.tunnels = t->next;
    tunnel_events_free(t);
    free(t);
  }
  event_free(r.udp_rev);
  event_free(r.udp_wev);
  event_free(r.listen_ev);
  event_free(r.pend_timer);
  event_free(r.accept_retry);
  event_free(r.unconf_timer);
  close(r.listen_fd);
  relay_common_free(&r);
  PRD_LOG_INFO("server stopped");
  return 0;
}

int prd_relay_client_run(prd_relay_config *cfg) {
  relay r;
  int rv;

  if ((rv = relay_common_init(&r, cfg, 0)) != 0) {
    if (rv == -1) {
      PRD_LOG_ERROR("cannot initialise the event loop");
    }
    relay_common_free(&r);
    return 1;
  }
  r.cb.authenticated = client_authenticated;
  r.cb.stream_open = client_stream_open;
  r.cb.closed = client_closed;
  srandom((unsigned)prd_now());
  for (size_t i = 0; i < cfg->nremotes; ++i) {
    tunnel *t = &r.remotes[i];
    t->r = &r;
    t->timer_fd = -1;
    t->remote = &cfg->remotes[i];
    t->backoff_ms = BACKOFF_MIN_MS;
    t->retry_ev = evtimer_new(r.base, on_client_retry, t);
    t->dial_ev = evtimer_new(r.base, on_client_dial_timeout, t);
    client_connect(t);
  }

  event_base_dispatch(r.base);

  for (size_t i = 0; i < cfg->nremotes; ++i) {
    tunnel *t = &r.remotes[i];
    if (t->ep) {
      t->dead_ep = t->ep;
      t->ep = NULL;
    }
    if (t->ep == NULL && t->dead_ep) {
      prd_quic_endpoint_del(t->dead_ep);
      t->dead_ep = NULL;
    }
    tunnel_events_free(t);
    if (t->udp_rev) {
      event_free(t->udp_rev);
    }
    if (t->udp_wev) {
      event_free(t->udp_wev);
    }
    if (t->retry_ev) {
      event_free(t->retry_ev);
    }
    if (t->dial_ev) {
      event_free(t->dial_ev);
    }
    if (t->remote->pin_owned) {
      free((void *)(uintptr_t)t->remote->pin_der);
      t->remote->pin_der = NULL;
    }
  }
  relay_common_free(&r);
  PRD_LOG_INFO("client stopped");
  return 0;
}
