/* SPDX-License-Identifier: GPL-3.0-only */
/* The event loop: the base, signals, systemd notifications, each QUIC
 * connection's timer and flush events, and the graceful shutdown (drain,
 * linger, grace period). */
#include <errno.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "../common/log.h"
#include "../common/notify.h"
#include "relay_int.h"

/* Type=notify: a client without a tunnel this long after start reports
 * READY=1 anyway (with a STATUS= saying so), so that boot and systemctl
 * start go on while it keeps trying. */
#define READY_ANYWAY_NS ((uint64_t)60 * PRD_NS_PER_S)

void tv_from_ns(struct timeval *tv, uint64_t ns) {
  uint64_t us = (ns + 999) / 1000;
  tv->tv_sec = (time_t)(us / 1000000);
  tv->tv_usec = (suseconds_t)(us % 1000000);
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

int tunnel_events(relay *r, tunnel *t) {
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

void tunnel_events_free(tunnel *t) {
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

void check_drained(relay *r) {
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

void start_shutdown(relay *r) {
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
  if (r->role->stop) {
    r->role->stop(r); /* no new users or dials */
  }
  for (tunnel *t = r->tunnels; t; t = t->next) {
    if (t->qc && t->authenticated) {
      prd_quic_conn_goaway(t->qc, PRD_APP_SHUTTING_DOWN);
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

/* SIGHUP: read the configuration again and apply it (README "Reload").
 * A configuration that does not parse was logged by the hook (one ERROR)
 * and changes nothing; the process never exits over a reload. systemd
 * hears RELOADING=1, then READY=1 once it is applied (or refused). */
static void on_sighup(evutil_socket_t fd, short what, void *arg) {
  relay *r = arg;
  prd_relay_config *next;
  (void)fd;
  (void)what;
  if (r->stopping) {
    PRD_LOG_INFO("SIGHUP while shutting down: not reloading");
    return;
  }
  if (r->cfg->reload == NULL || r->role->reload == NULL) {
    PRD_LOG_INFO("SIGHUP: nothing to reload; carrying on");
    return;
  }
  PRD_LOG_INFO("SIGHUP: reloading the configuration");
  if (r->ready_sent) {
    /* MONOTONIC_USEC: what Type=notify-reload (systemd 253) asks for. */
    prd_notify("RELOADING=1\nMONOTONIC_USEC=%llu\nSTATUS=reloading the "
               "configuration",
               (unsigned long long)(prd_now() / 1000));
  }
  next = calloc(1, sizeof(*next));
  if (next == NULL) {
    PRD_LOG_ERROR("reload: out of memory; the running configuration stays");
  } else if (r->cfg->reload(next, r->cfg->reload_arg) == 0) {
    int applied = r->role->reload(r, next) == 0;
    if (r->cfg->reload_done) {
      r->cfg->reload_done(applied, r->cfg->reload_arg);
    }
  }
  free(next);
  if (r->ready_sent) {
    prd_notify("READY=1");
    r->status_key = UINT64_MAX; /* say the STATUS= again */
    notify_status(r);
  }
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

static int common_init(relay *r, prd_relay_config *cfg, const relay_role *role,
                       int is_server) {
  struct timeval tv = {1, 0};

  memset(r, 0, sizeof(*r));
  r->cfg = cfg;
  r->role = role;
  r->is_server = is_server;
  r->svc_default = 0;
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

int relay_common_init(relay *r, prd_relay_config *cfg, const relay_role *role,
                      int is_server) {
  int rv = common_init(r, cfg, role, is_server);
  if (rv != 0) {
    if (rv == -1) {
      PRD_LOG_ERROR("cannot initialise the event loop");
    }
    relay_common_free(r);
    return -1;
  }
  return 0;
}

void relay_common_free(relay *r) {
  prd_metrics_free(&r->metrics);
  relay_ev_free(&r->sigint_ev);
  relay_ev_free(&r->sigterm_ev);
  relay_ev_free(&r->sighup_ev);
  relay_ev_free(&r->grace_ev);
  relay_ev_free(&r->hard_ev);
  relay_ev_free(&r->drain_ev);
  relay_ev_free(&r->linger_ev);
  relay_ev_free(&r->tick_ev);
  relay_ev_free(&r->wd_ev);
  if (r->base) {
    event_base_free(r->base);
  }
}
