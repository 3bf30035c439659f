/* SPDX-License-Identifier: GPL-3.0-only */
/* The server's scheduler and the client's backoff (src/relay/server.c,
 * client.c): the choice of client, the pending queue, moving a stream a
 * silent client never acknowledged, and the retry delays. The relay's
 * functions are called through its private header, relay_int.h, without
 * the event loop: the QUIC connections are real ones from the pair harness
 * (helpers/quic_pair.h) under its fake clock, the users' TCP connections
 * real sockets on 127.0.0.1, and libevent's events are created but never
 * dispatched. */
#include <arpa/inet.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "relay/relay_int.h"

#include "helpers/quic_pair.h"

typedef struct sched {
  struct event_base *base;
  prd_relay_config cfg;
  relay r;
  tunnel t[QP_MAX_SIDES]; /* t[i]: the server's tunnel of client side i */
  int lfd;                /* the users' TCP listener */
  listener lst;           /* the listener on_accept is given */
  prd_sockaddr laddr;
  int users[16]; /* the users' ends */
  size_t nusers;
  prd_quic_callbacks harness_cb; /* the harness's server callbacks */
} sched;

static sched *S;

/* ---- server streams: the harness's or the relay's ----------------------- */

static int is_app(const void *user) {
  for (app_stream *a = P->s[SRV].streams; a; a = a->next) {
    if ((const void *)a == user) {
      return 1;
    }
  }
  return 0;
}

/* A stream the relay opened (st->user is its tcpc) goes to the relay's own
 * callbacks; the harness's streams to the harness's. */
static int sw_stream_data(prd_qstream *st, const uint8_t *data, size_t len,
                          int fin, void *ud) {
  if (is_app(prd_qstream_user(st))) {
    return S->harness_cb.stream_data(st, data, len, fin, ud);
  }
  return cb_stream_data(st, data, len, fin, ud);
}

static void sw_stream_reset(prd_qstream *st, uint64_t app_err, void *ud) {
  if (is_app(prd_qstream_user(st))) {
    S->harness_cb.stream_reset(st, app_err, ud);
  } else {
    cb_stream_reset(st, app_err, ud);
  }
}

static void sw_stream_writable(prd_qstream *st, void *ud) {
  if (is_app(prd_qstream_user(st))) {
    S->harness_cb.stream_writable(st, ud);
  } else {
    cb_stream_writable(st, ud);
  }
}

static void sw_stream_close(prd_qstream *st, uint64_t app_err, void *ud) {
  if (is_app(prd_qstream_user(st))) {
    S->harness_cb.stream_close(st, app_err, ud);
  } else {
    cb_stream_close(st, app_err, ud);
  }
}

/* ---- set-up ------------------------------------------------------------- */

static int setup(void **state) {
  prd_quic_callbacks *cb;
  qp_setup(state);
  S = calloc(1, sizeof(*S));
  assert_non_null(S);
  S->base = event_base_new();
  assert_non_null(S->base);
  S->cfg.pending_timeout_ns = 5 * SEC;
  S->cfg.max_connections = 1000;
  S->cfg.max_clients = 10;
  S->r.base = S->base;
  S->r.cfg = &S->cfg;
  S->r.role = &prd_relay_server_role;
  S->r.is_server = 1;
  S->r.pend_timer = evtimer_new(S->base, on_pend_timer, &S->r);
  S->r.unconf_timer = evtimer_new(S->base, on_unconf_timer, &S->r);
  assert_true(S->r.pend_timer && S->r.unconf_timer);
  S->lfd = -1;
  cb = &P->s[SRV].cb;
  S->harness_cb = *cb;
  cb->stream_data = sw_stream_data;
  cb->stream_reset = sw_stream_reset;
  cb->stream_writable = sw_stream_writable;
  cb->stream_close = sw_stream_close;
  return 0;
}

static int teardown(void **state) {
  /* Users still waiting, then the connections: the relay's stream_close
   * closes the TCP side of every stream still open, as at shutdown. */
  while (S->r.pend_head) {
    tc_close(S->r.pend_head, 1, 0, "test over");
  }
  prd_quic_endpoint_del(P->s[SRV].ep);
  P->s[SRV].ep = NULL;
  assert_int_equal(S->r.nconns, 0);
  qp_teardown(state);
  for (size_t i = 0; i < QP_MAX_SIDES; ++i) {
    if (S->t[i].retry_ev) {
      event_free(S->t[i].retry_ev);
    }
  }
  for (size_t i = 0; i < S->nusers; ++i) {
    close(S->users[i]);
  }
  if (S->lfd >= 0) {
    close(S->lfd);
  }
  event_free(S->r.pend_timer);
  event_free(S->r.unconf_timer);
  event_base_free(S->base);
  free(S);
  S = NULL;
  return 0;
}

/* add_tunnel: the server's tunnel of client |cidx|, authenticated, as
 * cb_conn_new and server_authenticated make it. */
static tunnel *add_tunnel(int cidx) {
  tunnel *t = &S->t[cidx];
  t->r = &S->r;
  t->qc = server_conn_of(cidx);
  assert_non_null(t->qc);
  t->timer_fd = -1;
  t->authenticated = 1;
  t->next = S->r.tunnels;
  if (S->r.tunnels) {
    S->r.tunnels->prev = t;
  }
  S->r.tunnels = t;
  return t;
}

static int cidx_authenticated;

static int client_authenticated_p(void) {
  return P->s[cidx_authenticated].authenticated > 0;
}

/* connect_clients connects |n| clients (sides 1..n) and makes tunnels. */
static void connect_clients(int n) {
  start_server();
  start_client();
  for (int i = 2; i <= n; ++i) {
    add_client();
  }
  for (int i = 1; i <= n; ++i) {
    cidx_authenticated = i;
    assert_true(pump(client_authenticated_p, 5 * SEC));
  }
  for (int i = 1; i <= n; ++i) {
    add_tunnel(i);
  }
}

static void listen_users(void) {
  int on = 1;
  S->lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  assert_true(S->lfd >= 0);
  setsockopt(S->lfd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
  memset(&S->laddr, 0, sizeof(S->laddr));
  S->laddr.u.in.sin_family = AF_INET;
  S->laddr.u.in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  S->laddr.len = sizeof(S->laddr.u.in);
  assert_int_equal(bind(S->lfd, &S->laddr.u.sa, S->laddr.len), 0);
  assert_int_equal(listen(S->lfd, 16), 0);
  S->laddr.len = sizeof(S->laddr.u.ss);
  assert_int_equal(getsockname(S->lfd, &S->laddr.u.sa, &S->laddr.len), 0);
}

/* users_arrive connects |n| users and lets the server accept them. */
static void users_arrive(size_t n) {
  if (S->lfd < 0) {
    listen_users();
  }
  for (size_t i = 0; i < n; ++i) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct timeval tv = {1, 0}; /* a read never hangs the test */
    assert_true(fd >= 0 && S->nusers < 16);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    assert_int_equal(connect(fd, &S->laddr.u.sa, S->laddr.len), 0);
    S->users[S->nusers++] = fd;
  }
  S->lst.r = &S->r;
  S->lst.fd = S->lfd;
  on_accept(S->lfd, EV_READ, &S->lst);
}

static size_t pending_count(void) {
  size_t n = 0;
  for (tcpc *tc = S->r.pend_head; tc; tc = tc->pnext) {
    ++n;
  }
  return n;
}

/* ---- the choice of client (spec/04-quic-profile.md §7) ------------------ */

static void test_pick_fewest_active_then_round_robin(void **state) {
  unsigned seen[4] = {0};
  (void)state;
  connect_clients(3);
  S->t[1].active = 2;
  S->t[2].active = 0;
  S->t[3].active = 1;
  assert_ptr_equal(pick_tunnel(&S->r, NULL, 0, 0), &S->t[2]);
  assert_ptr_equal(pick_tunnel(&S->r, NULL, 0, 0), &S->t[2]);
  /* Equal load: every client in turn. */
  S->t[1].active = S->t[2].active = S->t[3].active = 0;
  for (int i = 0; i < 6; ++i) {
    tunnel *t = pick_tunnel(&S->r, NULL, 0, 0);
    assert_non_null(t);
    ++seen[t - S->t];
  }
  assert_int_equal(seen[1], 2);
  assert_int_equal(seen[2], 2);
  assert_int_equal(seen[3], 2);
  /* |exclude| is never chosen. */
  for (int i = 0; i < 6; ++i) {
    assert_ptr_not_equal(pick_tunnel(&S->r, &S->t[2], 0, 0), &S->t[2]);
  }
}

static void test_pick_skips_draining_and_unauthenticated(void **state) {
  (void)state;
  connect_clients(2);
  S->t[1].active = 5; /* the busier one: chosen only when alone */
  /* Client 2 drains (GOAWAY): it gets no new streams. */
  prd_quic_conn_goaway(P->s[2].qc, PRD_APP_SHUTTING_DOWN);
  assert_true(pump(NULL, 200 * MS));
  assert_true(prd_quic_conn_peer_goaway(S->t[2].qc));
  for (int i = 0; i < 4; ++i) {
    assert_ptr_equal(pick_tunnel(&S->r, NULL, 0, 0), &S->t[1]);
  }
  assert_null(pick_tunnel(&S->r, &S->t[1], 0, 0));
  S->t[1].authenticated = 0;
  assert_null(pick_tunnel(&S->r, NULL, 0, 0));
}

static void test_pick_passes_over_a_silent_client(void **state) {
  (void)state;
  connect_clients(2);
  assert_true(pump(NULL, 1 * SEC)); /* the handshakes' last ACKs */
  S->t[1].active = 0;
  S->t[2].active = 3;
  /* Client 1 vanishes; a probe finds out. */
  P->blackhole[1] = 1;
  prd_quic_conn_probe(S->t[1].qc);
  assert_true(pump(NULL, 1 * SEC));
  assert_true(prd_quic_conn_suspect(S->t[1].qc));
  assert_ptr_equal(pick_tunnel(&S->r, NULL, 0, 0), &S->t[2]);
  /* Only suspects left: one of them all the same. */
  assert_ptr_equal(pick_tunnel(&S->r, &S->t[2], 0, 0), &S->t[1]);
}

/* ---- the pending queue -------------------------------------------------- */

static int three_client_streams(void) {
  size_t n = 0;
  for (app_stream *a = P->s[CLI].streams; a; a = a->next) {
    ++n;
  }
  return n == 3;
}

static void test_pending_users_are_served_in_order(void **state) {
  uint64_t ids[3];
  size_t i = 0;
  (void)state;
  start_server();
  /* No client yet: the users wait, in arrival order. */
  users_arrive(3);
  assert_int_equal(S->r.nconns, 3);
  assert_int_equal(pending_count(), 3);
  for (tcpc *tc = S->r.pend_head; tc; tc = tc->pnext) {
    ids[i++] = tc->id;
  }
  assert_true(ids[0] < ids[1] && ids[1] < ids[2]);
  /* A client arrives (server_authenticated drains the queue). */
  start_client();
  assert_true(pump(both_authenticated, 5 * SEC));
  add_tunnel(CLI);
  pend_drain(&S->r);
  assert_int_equal(pending_count(), 0);
  assert_int_equal(S->t[CLI].active, 3);
  /* First come, first served: stream ids follow arrival. */
  for (tcpc *tc = S->r.unconf; tc; tc = tc->unext) {
    for (i = 0; i < 3 && ids[i] != tc->id; ++i) {
    }
    assert_true(i < 3);
    assert_int_equal(prd_qstream_id(tc->st), (int64_t)(4 * i + 1));
  }
  assert_true(pump(three_client_streams, 2 * SEC));
}

/* ---- named services (spec/02-framing.md §3.7, §4.4) -------------------- */

/* two_services: the server has default (0) and web (1, two ports). */
static void two_services(void) {
  memcpy(S->cfg.services[0].name, "default", 8);
  S->cfg.services[0].nports = 1;
  memcpy(S->cfg.services[1].name, "web", 4);
  S->cfg.services[1].nports = 2;
  S->cfg.nservices = 2;
  relay_services_init(&S->r);
  assert_int_equal(S->r.svc_default, 0);
}

static void test_pick_only_clients_of_the_service(void **state) {
  (void)state;
  two_services();
  connect_clients(2);
  /* Client 1 negotiated and serves web only; client 2 is an older one. */
  S->t[1].svc_negotiated = 1;
  S->t[1].svc_mask = 1u << 1;
  for (int i = 0; i < 4; ++i) {
    assert_ptr_equal(pick_tunnel(&S->r, NULL, 1, 0), &S->t[1]);
    assert_ptr_equal(pick_tunnel(&S->r, NULL, 1, 1), &S->t[1]);
    assert_ptr_equal(pick_tunnel(&S->r, NULL, 0, 0), &S->t[2]);
  }
  /* An older client serves default at offset 0 only. */
  assert_null(pick_tunnel(&S->r, NULL, 0, 1));
  assert_null(pick_tunnel(&S->r, &S->t[1], 1, 0));
  /* A negotiated client that declared nothing yet serves nothing. */
  S->t[1].svc_mask = 0;
  assert_null(pick_tunnel(&S->r, NULL, 1, 0));
  assert_null(pick_tunnel(&S->r, &S->t[2], 0, 0));
}

/* spec/03-auth.md §4.1: a client whose identity may not serve a service
 * gets none of its users, whatever it declared; an older client (no
 * SERVICES) that may not serve default gets nothing. */
static void test_pick_only_permitted_clients(void **state) {
  (void)state;
  two_services();
  connect_clients(2);
  S->t[1].svc_negotiated = 1;
  S->t[1].svc_mask = (1u << 0) | (1u << 1);
  S->t[1].svc_denied = 1u << 1; /* declared web, may not serve it */
  for (int i = 0; i < 4; ++i) {
    assert_null(pick_tunnel(&S->r, NULL, 1, 0));
    assert_non_null(pick_tunnel(&S->r, NULL, 0, 0));
  }
  S->t[2].svc_denied = 1u << 0; /* the older client may not serve default */
  for (int i = 0; i < 4; ++i) {
    assert_ptr_equal(pick_tunnel(&S->r, NULL, 0, 0), &S->t[1]);
  }
  S->t[1].svc_denied = UINT32_MAX; /* an identity gone from the table */
  assert_null(pick_tunnel(&S->r, NULL, 0, 0));
  assert_null(pick_tunnel(&S->r, NULL, 1, 0));
}

/* A user of a service nobody serves waits without holding up the users of
 * another service behind it, and times out naming its service. */
static void test_pending_per_service(void **state) {
  (void)state;
  two_services();
  start_server();
  S->lst.svc = 1;
  users_arrive(2);
  S->lst.svc = 0;
  users_arrive(1);
  assert_int_equal(pending_count(), 3);
  start_client();
  assert_true(pump(both_authenticated, 5 * SEC));
  add_tunnel(CLI);
  pend_drain(&S->r);
  /* The default user went to the (older) client; web's two still wait, in
   * order. */
  assert_int_equal(pending_count(), 2);
  assert_int_equal(S->t[CLI].active, 1);
  assert_int_equal(S->r.pend_head->svc, 1);
  assert_int_equal(S->r.pend_tail->svc, 1);
  assert_true(S->r.pend_head->id < S->r.pend_tail->id);
  assert_ptr_equal(S->r.pend_head->pnext, S->r.pend_tail);
  fake_now += S->cfg.pending_timeout_ns + 1;
  on_pend_timer(-1, EV_TIMEOUT, &S->r);
  assert_int_equal(pending_count(), 0);
  assert_int_equal(S->r.nconns, 1);
}

static void test_pending_users_time_out(void **state) {
  char c;
  (void)state;
  start_server();
  users_arrive(2);
  assert_int_equal(pending_count(), 2);
  /* A client connecting at the last moment is too late for nobody. */
  fake_now += S->cfg.pending_timeout_ns - 1;
  on_pend_timer(-1, EV_TIMEOUT, &S->r);
  assert_int_equal(pending_count(), 2);
  fake_now += 2;
  on_pend_timer(-1, EV_TIMEOUT, &S->r);
  assert_int_equal(pending_count(), 0);
  assert_int_equal(S->r.nconns, 0);
  /* The users see their connection reset. */
  for (size_t i = 0; i < S->nusers; ++i) {
    ssize_t n = read(S->users[i], &c, 1);
    assert_true(n < 0 && errno == ECONNRESET);
  }
}

static void test_pending_users_wait_for_a_draining_client(void **state) {
  prd_tstamp t0;
  (void)state;
  connect_clients(1);
  /* The only client drains: no stream for it, the users wait longer. */
  prd_quic_conn_goaway(P->s[CLI].qc, PRD_APP_SHUTTING_DOWN);
  assert_true(pump(NULL, 200 * MS));
  users_arrive(1);
  t0 = fake_now;
  assert_int_equal(pending_count(), 1);
  fake_now += S->cfg.pending_timeout_ns + 1;
  on_pend_timer(-1, EV_TIMEOUT, &S->r);
  assert_int_equal(pending_count(), 1);
  /* But not for ever: a minute past its own timeout, whatever the drain
   * (spec/04-quic-profile.md §6.3). */
  for (int i = 0; i < 20 && pending_count() > 0; ++i) {
    fake_now += S->cfg.pending_timeout_ns;
    on_pend_timer(-1, EV_TIMEOUT, &S->r);
  }
  assert_int_equal(pending_count(), 0);
  assert_true(fake_now - t0 >= S->cfg.pending_timeout_ns + PEND_DRAIN_MAX_NS);
  assert_true(fake_now - t0 <=
              2 * S->cfg.pending_timeout_ns + PEND_DRAIN_MAX_NS + 1);
}

/* ---- failover: a stream a silent client never acknowledged -------------- */

static int moved_stream_arrived(void) {
  app_stream *b = app_find(&P->s[2], 1);
  return b && b->rx_off == 3000 && b->rx_fin;
}

static void test_unacknowledged_stream_moves(void **state) {
  uint8_t buf[3000];
  tcpc *tc;
  app_stream *b;
  (void)state;
  connect_clients(2);
  assert_true(pump(NULL, 1 * SEC));
  S->t[2].active = 1; /* client 1 gets the user */
  /* Client 1 is gone, unbeknown to the server. */
  P->blackhole[1] = 1;
  users_arrive(1);
  tc = S->r.unconf;
  assert_non_null(tc);
  assert_ptr_equal(tc->t, &S->t[1]);
  /* The user sends 3000 bytes and its FIN. */
  for (size_t i = 0; i < sizeof(buf); ++i) {
    buf[i] = pattern(1, i);
  }
  assert_int_equal(write(S->users[0], buf, sizeof(buf)), (ssize_t)sizeof(buf));
  shutdown(S->users[0], SHUT_WR);
  tc_read(tc);
  tc_read(tc); /* EOF */
  assert_true(pump(NULL, 100 * MS));
  /* Before max(3 PTO, 300 ms) it stays. */
  on_unconf_timer(-1, EV_TIMEOUT, &S->r);
  assert_ptr_equal(tc->t, &S->t[1]);
  assert_true(pump(NULL, 1 * SEC));
  on_unconf_timer(-1, EV_TIMEOUT, &S->r);
  /* Moved to client 2 with the header, every byte and the FIN. */
  assert_ptr_equal(tc->t, &S->t[2]);
  assert_int_equal(S->t[1].active, 0);
  assert_int_equal(S->t[2].active, 2);
  assert_true(S->t[1].suspect_since != 0);
  assert_true(pump(moved_stream_arrived, 2 * SEC));
  b = app_find(&P->s[2], 1);
  assert_int_equal(b->rx_bad, 0);
  /* Client 2's answer reaches the user. */
  app_send(b, 100, 1);
  assert_true(pump(NULL, 200 * MS));
  event_base_loop(S->base, EVLOOP_NONBLOCK); /* the relay's TCP writes */
  {
    uint8_t in[200];
    ssize_t n = read(S->users[0], in, sizeof(in));
    assert_int_equal(n, 100);
    for (ssize_t i = 0; i < n; ++i) {
      assert_int_equal(in[i], pattern(1, (uint64_t)i));
    }
  }
}

/* ---- the client's backoff ----------------------------------------------- */

static uint64_t retry_delay_ms(tunnel *t) {
  struct timeval when, now;
  assert_true(event_pending(t->retry_ev, EV_TIMEOUT, &when));
  evutil_gettimeofday(&now, NULL);
  int64_t ms = ((int64_t)when.tv_sec - (int64_t)now.tv_sec) * 1000 +
               ((int64_t)when.tv_usec - (int64_t)now.tv_usec) / 1000;
  return ms > 0 ? (uint64_t)ms : 0; /* due now: a little in the past */
}

static void test_client_backoff(void **state) {
  tunnel *t;
  prd_relay_remote *rm = calloc(1, sizeof(*rm));
  uint64_t want = BACKOFF_MIN_MS;
  (void)state;
  assert_non_null(rm);
  S->r.is_server = 0;
  t = &S->t[1];
  t->r = &S->r;
  t->remote = rm;
  t->retry_ev = evtimer_new(S->base, on_client_retry, t);
  t->backoff_ms = BACKOFF_MIN_MS;
  /* spec/07-state-machines.md §4: d doubles from 0.5 s to the 30 s cap,
   * each wait drawn from [d/2, d]. */
  for (int i = 0; i < 10; ++i) {
    uint64_t d;
    client_schedule_retry(t);
    d = retry_delay_ms(t);
    assert_true(d + 20 >= want / 2);
    assert_true(d <= want);
    want = want * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : want * 2;
    assert_int_equal(t->backoff_ms, want);
    event_del(t->retry_ev);
  }
  /* Three addresses: the next at once, after the last a backoff and a new
   * round with the name resolved again. */
  rm->naddrs = 3;
  t->addr_idx = 0;
  t->backoff_ms = BACKOFF_MIN_MS;
  client_next_address(t);
  assert_int_equal(t->addr_idx, 1);
  assert_true(retry_delay_ms(t) <= 20);
  client_next_address(t);
  assert_int_equal(t->addr_idx, 2);
  client_next_address(t);
  assert_int_equal(t->addr_idx, 0);
  assert_true(t->resolve_next);
  assert_true(retry_delay_ms(t) + 20 >= BACKOFF_MIN_MS / 2);
  assert_int_equal(t->backoff_ms, 2 * BACKOFF_MIN_MS);
  event_del(t->retry_ev);
  free(rm);
}

/* spec/11-tcp-path.md §3.2: UDP is taken as throttled after two windows in
 * a row that each lost a quarter of at least 200 packets. One such window
 * between good ones is a burst of congestion loss (on the WAN bench, a
 * download that started after a pause lost 29 % of one window's packets at
 * 80 ms RTT and 0.1 % random loss, and the tunnel went to TCP); a window
 * with fewer packets is no evidence either way and starts the count over. */
static void test_client_loss_windows(void **state) {
  tunnel t;
  (void)state;
  memset(&t, 0, sizeof(t));
  assert_false(client_loss_window(&t, 520, 150)); /* 29 %: a burst */
  assert_false(client_loss_window(&t, 9000, 9));  /* 0.1 % */
  assert_false(client_loss_window(&t, 520, 150));
  assert_false(client_loss_window(&t, 150, 100)); /* too few to tell */
  assert_false(client_loss_window(&t, 520, 150));
  assert_false(client_loss_window(&t, 800, 199)); /* just under 25 % */
  assert_false(client_loss_window(&t, 400, 100)); /* 25 % */
  assert_true(client_loss_window(&t, 400, 200));  /* and 50 %: throttled */
  assert_true(client_loss_window(&t, 400, 200));
  assert_false(client_loss_window(&t, 400, 10));
}

/* At the cap the waits spread over the whole of [15 s, 30 s]
 * (spec/07-state-machines.md §4), never beyond it. */
static void test_client_backoff_spread(void **state) {
  tunnel *t = &S->t[1];
  uint64_t lo = UINT64_MAX, hi = 0;
  (void)state;
  t->r = &S->r;
  t->retry_ev = evtimer_new(S->base, on_client_retry, t);
  for (int i = 0; i < 200; ++i) {
    uint64_t d;
    t->backoff_ms = BACKOFF_MAX_MS;
    client_schedule_retry(t);
    d = retry_delay_ms(t);
    event_del(t->retry_ev);
    assert_true(d + 20 >= BACKOFF_MAX_MS / 2);
    assert_true(d <= BACKOFF_MAX_MS);
    lo = d < lo ? d : lo;
    hi = d > hi ? d : hi;
  }
  /* 200 draws: each end's outer tenth is hit but for a chance of 1e-9. */
  assert_true(lo < BACKOFF_MAX_MS / 2 + BACKOFF_MAX_MS / 20);
  assert_true(hi > BACKOFF_MAX_MS - BACKOFF_MAX_MS / 20);
}

/* ---- the client's resolution, off the loop (evdns) ---------------------- */

static char hosts_path[64];

static void write_hosts(const char *text) {
  FILE *f = fopen(hosts_path, "w");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
}

static prd_sockaddr sa_of(const char *ip, uint16_t port) {
  prd_sockaddr a;
  memset(&a, 0, sizeof(a));
  if (strchr(ip, ':')) {
    a.u.in6.sin6_family = AF_INET6;
    inet_pton(AF_INET6, ip, &a.u.in6.sin6_addr);
    a.u.in6.sin6_port = htons(port);
    a.len = sizeof(a.u.in6);
  } else {
    a.u.in.sin_family = AF_INET;
    inet_pton(AF_INET, ip, &a.u.in.sin_addr);
    a.u.in.sin_port = htons(port);
    a.len = sizeof(a.u.in);
  }
  return a;
}

static int addr_is(const prd_sockaddr *a, const char *ip, uint16_t port) {
  prd_sockaddr b = sa_of(ip, port);
  return memcmp(a, &b, sizeof(b)) == 0;
}

/* resolver_tunnel: client tunnel 1 for remote |host|:4433, first resolved
 * to 127.0.0.3, with a resolver of its own that reads hosts_path. */
static tunnel *resolver_tunnel(const char *host) {
  tunnel *t = &S->t[1];
  prd_relay_remote *rm = calloc(1, sizeof(*rm));
  int fd;
  assert_non_null(rm);
  snprintf(rm->host, sizeof(rm->host), "%s", host);
  snprintf(rm->label, sizeof(rm->label), "%s:4433", host);
  rm->port = 4433;
  rm->addrs[0] = sa_of("127.0.0.3", 4433);
  rm->naddrs = 1;
  snprintf(hosts_path, sizeof(hosts_path), "/tmp/prd-hosts-XXXXXX");
  fd = mkstemp(hosts_path);
  assert_true(fd >= 0);
  close(fd);
  S->r.is_server = 0;
  S->r.role = &prd_relay_client_role;
  S->r.dns = evdns_base_new(S->base, 0);
  assert_non_null(S->r.dns);
  S->r.hosts_file = hosts_path;
  t->r = &S->r;
  t->remote = rm;
  return t;
}

static void resolver_done(tunnel *t) {
  evdns_base_free(S->r.dns, 1);
  S->r.dns = NULL;
  unlink(hosts_path);
  free(t->remote);
  t->remote = NULL;
}

static void test_client_resolve_follows_hosts(void **state) {
  tunnel *t;
  prd_relay_remote *rm;
  (void)state;
  t = resolver_tunnel("moving.prd.test");
  rm = t->remote;
  /* A name in the hosts file is answered at once: the dial goes on. */
  write_hosts("127.0.0.1 moving.prd.test\n");
  assert_int_equal(client_resolve(t), 0);
  assert_null(t->dns_req);
  assert_int_equal(rm->naddrs, 1);
  assert_true(addr_is(&rm->addrs[0], "127.0.0.1", 4433));
  /* The file is read again each round (getaddrinfo does): the record moves,
   * the addresses follow. A new set keeps the previous first family first. */
  write_hosts("::1 moving.prd.test\n127.0.0.2 moving.prd.test\n");
  assert_int_equal(client_resolve(t), 0);
  assert_int_equal(rm->naddrs, 2);
  assert_true(addr_is(&rm->addrs[0], "127.0.0.2", 4433));
  assert_true(addr_is(&rm->addrs[1], "::1", 4433));
  /* The same set in another order: rounds dial in the order they did. */
  write_hosts("127.0.0.2 moving.prd.test\n::1 moving.prd.test\n");
  assert_int_equal(client_resolve(t), 0);
  assert_true(addr_is(&rm->addrs[0], "127.0.0.2", 4433));
  assert_true(addr_is(&rm->addrs[1], "::1", 4433));
  write_hosts("::1 moving.prd.test\n");
  assert_int_equal(client_resolve(t), 0);
  assert_int_equal(rm->naddrs, 1);
  assert_true(addr_is(&rm->addrs[0], "::1", 4433));
  resolver_done(t);
}

/* A DNS server on 127.0.0.1 that answers when the test says so. */
static int dns_server(char *ns, size_t nslen) {
  struct sockaddr_in sin;
  socklen_t len = sizeof(sin);
  struct timeval tv = {2, 0};
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  assert_true(fd >= 0);
  memset(&sin, 0, sizeof(sin));
  sin.sin_family = AF_INET;
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
  assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  snprintf(ns, nslen, "127.0.0.1:%u", ntohs(sin.sin_port));
  return fd;
}

/* dns_answer answers one query: A with 127.0.0.7, AAAA with no address. */
static void dns_answer(int fd) {
  static const uint8_t a_rr[] = {0xc0, 0x0c, 0, 1, 0,   1, 0, 0,
                                 0,    60,   0, 4, 127, 0, 0, 7};
  uint8_t q[512], out[600];
  struct sockaddr_storage from;
  socklen_t fromlen = sizeof(from);
  ssize_t n = recvfrom(fd, q, sizeof(q), 0, (struct sockaddr *)&from, &fromlen);
  size_t end = 12, len;
  int is_a;
  assert_true(n > 12);
  while (end < (size_t)n && q[end] != 0) {
    end += (size_t)q[end] + 1;
  }
  end += 5; /* the root label, QTYPE, QCLASS */
  assert_true(end <= (size_t)n);
  is_a = q[end - 4] == 0 && q[end - 3] == 1;
  memcpy(out, q, end);
  out[2] = 0x81; /* a response to a recursive query */
  out[3] = 0x80; /* recursion available, NOERROR */
  memset(out + 6, 0, 6);
  out[7] = (uint8_t)is_a; /* ANCOUNT */
  len = end;
  if (is_a) {
    memcpy(out + len, a_rr, sizeof(a_rr));
    len += sizeof(a_rr);
  }
  assert_int_equal(sendto(fd, out, len, 0, (struct sockaddr *)&from, fromlen),
                   (ssize_t)len);
}

static void test_client_resolve_off_the_loop(void **state) {
  char ns[32];
  tunnel *t;
  int dfd;
  (void)state;
  t = resolver_tunnel("slow.prd.test");
  write_hosts("127.0.0.1 localhost\n");
  dfd = dns_server(ns, sizeof(ns));
  assert_int_equal(evdns_base_nameserver_ip_add(S->r.dns, ns), 0);
  S->r.stopping = 1; /* the answer updates the addresses but dials nothing */
  /* Not in the hosts file: the question goes to the DNS server and the call
   * returns at once, with the answer to come through the loop. */
  assert_int_equal(client_resolve(t), 1);
  assert_non_null(t->dns_req);
  assert_true(addr_is(&t->remote->addrs[0], "127.0.0.3", 4433));
  dns_answer(dfd); /* A and AAAA, in either order */
  dns_answer(dfd);
  for (int i = 0; i < 200 && t->dns_req; ++i) {
    event_base_loop(S->base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
    usleep(5000);
  }
  assert_null(t->dns_req);
  assert_int_equal(t->remote->naddrs, 1);
  assert_true(addr_is(&t->remote->addrs[0], "127.0.0.7", 4433));
  /* Shutdown cancels a question under way: its answer touches nothing (the
   * tunnel may be gone). */
  assert_int_equal(client_resolve(t), 1);
  client_resolve_cancel(t);
  assert_null(t->dns_req);
  t->r = NULL;
  free(t->remote);
  t->remote = NULL;
  for (int i = 0; i < 20; ++i) {
    event_base_loop(S->base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
  }
  evdns_base_free(S->r.dns, 1);
  S->r.dns = NULL;
  S->r.stopping = 0;
  unlink(hosts_path);
  close(dfd);
}

/* ---- reload: the services plan (src/relay/reload.c) -------------------- */

static void svc_set(prd_relay_service *sv, const char *name, uint16_t port) {
  memset(sv, 0, sizeof(*sv));
  snprintf(sv->name, sizeof(sv->name), "%s", name);
  sv->listen_addr.u.in.sin_family = AF_INET;
  sv->listen_addr.u.in.sin_port = htons(port);
  sv->listen_addr.len = sizeof(sv->listen_addr.u.in);
  sv->port = port;
  sv->nports = 1;
}

/* README "Reload": services matched by name keep their slot; a removed one
 * leaves its slot to the connections still open; new ones go after the
 * running ones, then into free slots no connection uses. */
static void test_reload_plan_keeps_slots_by_name(void **state) {
  prd_relay_service old[PRD_RELAY_MAX_SERVICES], nw[PRD_RELAY_MAX_SERVICES];
  uint64_t active[PRD_RELAY_MAX_SERVICES] = {0};
  size_t n;
  svc_plan p;
  (void)state;

  svc_set(&old[0], "default", 8080);
  svc_set(&old[1], "a", 8081);
  svc_set(&old[2], "b", 8082);
  /* b moves, a goes, c comes, default stays; a new order changes nothing */
  svc_set(&nw[0], "c", 8083);
  svc_set(&nw[1], "b", 9082);
  svc_set(&nw[2], "default", 8080);
  svc_plan_make(&p, old, 3, 0, active, nw, 3);
  assert_int_equal(p.slot[0], 3);
  assert_int_equal(p.change[0], SVC_ADDED);
  assert_int_equal(p.slot[1], 2);
  assert_int_equal(p.change[1], SVC_MOVED);
  assert_int_equal(p.slot[2], 0);
  assert_int_equal(p.change[2], SVC_SAME);
  assert_int_equal(p.removed, 1u << 1);
  assert_int_equal(p.nslots, 4);
  assert_int_equal(p.nadded, 1);
  assert_int_equal(p.nremoved, 1);
  assert_int_equal(p.nchanged, 1);

  /* allow= changes in place; a gone slot is matched by no name. */
  nw[2].nallow = 1;
  nw[2].allow[0].family = 4;
  svc_plan_make(&p, old, 3, 1u << 0, active, &nw[2], 1);
  assert_int_equal(p.change[0], SVC_ADDED); /* slot 0 was gone */
  assert_int_equal(p.slot[0], 3);
  svc_plan_make(&p, old, 3, 0, active, &nw[2], 1);
  assert_int_equal(p.change[0], SVC_UPDATED);
  assert_int_equal(p.slot[0], 0);

  /* Full: a new service takes a removed slot that no connection uses. */
  for (int i = 0; i < PRD_RELAY_MAX_SERVICES; ++i) {
    char nm[16];
    snprintf(nm, sizeof(nm), "s%d", i);
    svc_set(&old[i], nm, (uint16_t)(10000 + i));
  }
  active[3] = 1;
  n = 0;
  for (int i = 0; i < PRD_RELAY_MAX_SERVICES; ++i) {
    if (i != 3 && i != 5) {
      nw[n++] = old[i];
    }
  }
  svc_set(&nw[n++], "new", 20000);
  svc_plan_make(&p, old, PRD_RELAY_MAX_SERVICES, (1u << 3) | (1u << 5), active,
                nw, n);
  assert_int_equal(p.slot[n - 1], 5); /* 3 still has a connection */
  assert_int_equal(p.nremoved, 0);
  active[5] = 1;
  svc_plan_make(&p, old, PRD_RELAY_MAX_SERVICES, (1u << 3) | (1u << 5), active,
                nw, n);
  n = n - 1;
  assert_int_equal(p.slot[n], -1); /* no room */
}

/* README "Reload": a UDP service keeps its socket and slot as started; a
 * new file that makes it a TCP service of the same name is a changed UDP
 * service (restart to apply), not a second service of that name. */
static void test_reload_udp_turned_tcp_keeps_udp(void **state) {
  prd_relay_service old[2], nw[PRD_RELAY_MAX_SERVICES];
  uint64_t active[PRD_RELAY_MAX_SERVICES] = {0};
  size_t n = 2;
  svc_plan p;
  (void)state;

  svc_set(&old[0], "default", 8080);
  svc_set(&old[1], "echo", 5353);
  old[1].udp = 1;
  svc_set(&nw[0], "default", 8080);
  svc_set(&nw[1], "echo", 9000); /* TCP now */
  assert_int_equal(svc_keep_udp(old, 2, 0, nw, &n), 1);
  assert_int_equal(n, 2);
  for (size_t i = 0; i < n; ++i) {
    if (strcmp(nw[i].name, "echo") == 0) {
      assert_true(nw[i].udp);
    }
  }
  svc_plan_make(&p, old, 2, 0, active, nw, n);
  assert_int_equal(p.nadded, 0);
  assert_int_equal(p.nchanged, 0);
  assert_int_equal(p.nremoved, 0);
}

static int both_closed_p(void) { return P->s[1].closed && P->s[2].closed; }

/* spec/07-state-machines.md §6: a reload whose clients table no longer
 * names a connected client closes its connection with CLIENT_REVOKED
 * (spec/05-errors.md §2); a table that still names it changes nothing. */
static void test_reload_revokes_removed_clients(void **state) {
  prd_relay_config *next = calloc(1, sizeof(*next));
  prd_relay_client keep, other;
  (void)state;
  assert_non_null(next);
  memset(&keep, 0, sizeof(keep));
  memset(&other, 0, sizeof(other));
  snprintf(keep.name, sizeof(keep.name), "default");
  snprintf(other.name, sizeof(other.name), "alice");
  connect_clients(2);
  S->r.ep = P->s[SRV].ep;
  svc_set(&S->cfg.services[0], PRD_SERVICE_DEFAULT, 0);
  S->cfg.services[0].listen_addr.u.in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  S->cfg.nservices = 1;
  S->r.metrics.nsvc = 1;
  next->services[0] = S->cfg.services[0];
  next->nservices = 1;
  next->max_clients = 10;
  next->max_connections = 1000;
  next->pending_timeout_ns = 5 * SEC;
  next->clients = &keep;
  next->nclients = 1;
  prd_relay_server_role.reload(&S->r, next);
  assert_int_equal(S->r.nls, 1); /* the service's listener */
  assert_true(pump(NULL, 200 * MS));
  assert_int_equal(P->s[1].closed, 0);
  assert_int_equal(P->s[2].closed, 0);
  next->clients = &other;
  prd_relay_server_role.reload(&S->r, next);
  assert_true(pump(both_closed_p, 2 * SEC));
  assert_int_equal(P->s[1].close_code, PRD_APP_CLIENT_REVOKED);
  assert_int_equal(P->s[2].close_code, PRD_APP_CLIENT_REVOKED);
  assert_int_equal(S->r.nls, 1); /* the unchanged service kept it */
  for (size_t i = 0; i < S->r.nls; ++i) {
    relay_ev_free(&S->r.ls[i].ev);
    close(S->r.ls[i].fd);
  }
  free(S->r.ls);
  S->r.ls = NULL;
  S->r.nls = 0;
  S->r.tunnels = NULL; /* the harness freed the connections */
  S->r.ep = NULL;
  free(next);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_pick_only_clients_of_the_service,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_pick_only_permitted_clients, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_pending_per_service, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_pick_fewest_active_then_round_robin,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(
          test_pick_skips_draining_and_unauthenticated, setup, teardown),
      cmocka_unit_test_setup_teardown(test_pick_passes_over_a_silent_client,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_pending_users_are_served_in_order,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_pending_users_time_out, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(
          test_pending_users_wait_for_a_draining_client, setup, teardown),
      cmocka_unit_test_setup_teardown(test_unacknowledged_stream_moves, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_client_backoff, setup, teardown),
      cmocka_unit_test(test_client_loss_windows),
      cmocka_unit_test_setup_teardown(test_client_backoff_spread, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_client_resolve_follows_hosts, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_client_resolve_off_the_loop, setup,
                                      teardown),
      cmocka_unit_test(test_reload_plan_keeps_slots_by_name),
      cmocka_unit_test(test_reload_udp_turned_tcp_keeps_udp),
      cmocka_unit_test_setup_teardown(test_reload_revokes_removed_clients,
                                      setup, teardown),
  };
  return cmocka_run_group_tests(tests, qp_group_setup, qp_group_teardown);
}
