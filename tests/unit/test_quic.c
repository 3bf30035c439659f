/* SPDX-License-Identifier: GPL-3.0-only */
/* In-process tests of the transport adapter (src/quic/): a server and a
 * client endpoint joined by transmit(), a simulated network under a fake
 * clock that can delay, drop, duplicate and reorder datagrams, the way
 * ngtcp2's own tests drive a connection. The endpoints are the real ones
 * (real sockets on 127.0.0.1 exist but carry nothing): datagrams leave
 * through prd_quic_endpoint_set_transmit and arrive through
 * prd_quic_endpoint_deliver, and prd_now reads fake_now through
 * prd_now_hook. The callbacks below play the relay. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/err.h"
#include "common/log.h"
#include "common/time.h"
#include "quic/identity.h"
#include "quic/ngtcp2_compat.h"
#include "quic/quic.h"

#define MS PRD_NS_PER_MS
#define SEC PRD_NS_PER_S
#define NONE UINT64_MAX

enum { SRV = 0, CLI = 1 };

/* ---- fake clock --------------------------------------------------------- */

/* It only moves forward, across tests too: the endpoint's per-address
 * rate limit is process-wide and keyed by time. */
static prd_tstamp fake_now = 1000 * SEC;

static prd_tstamp fake_clock(void) { return fake_now; }

/* ---- the application side of a stream (what the relay's tcpc is) -------- */

typedef struct app_stream {
  struct app_stream *next;
  int side;
  int64_t id;
  prd_qstream *st; /* NULL once the transport let go */
  /* sending: src_total bytes of pattern(), then FIN when src_fin */
  uint64_t src_total, src_off;
  int src_fin;
  /* receiving: every byte checked against pattern() */
  uint64_t rx_off, rx_bad;
  int rx_fin;
  int hold_credit; /* do not return flow-control credit */
  size_t unconsumed;
  int reset;
  uint64_t reset_code;
  int closed;
  uint64_t close_code;
  unsigned writable;
} app_stream;

static uint8_t pattern(int64_t id, uint64_t off) {
  return (uint8_t)((off + (uint64_t)id * 13) % 251);
}

/* ---- the two sides ------------------------------------------------------ */

#define MAX_CONNS 8

typedef struct tracked {
  prd_quic_conn *qc;
  prd_tstamp expiry;
  int flush;
} tracked;

typedef struct side {
  int idx;
  prd_quic_endpoint *ep;
  prd_sockaddr addr;
  prd_quic_config cfg;
  prd_quic_callbacks cb;
  tracked conns[MAX_CONNS];
  prd_quic_conn *qc; /* the newest connection */
  unsigned conn_new, authenticated, streams_available, goaway;
  uint64_t goaway_code;
  unsigned closed;
  prd_quic_close_reason close_reason;
  uint64_t close_code;
  char close_msg[1200];
  prd_tstamp closed_at;
  unsigned want_writable;
  uint64_t refuse_code; /* client: stream_open answers this */
  int hold_credit;      /* new streams keep their credit */
  /* Close (1) or refuse (2) from inside a callback, as the relay does:
   * on the first stream data (client) or on authentication (server). */
  int close_in_callback;
  app_stream *streams;
} side;

typedef struct dgram {
  struct dgram *next;
  int to;
  prd_tstamp due;
  prd_sockaddr from, dest;
  size_t len;
  uint8_t data[];
} dgram;

typedef struct pair {
  side s[2];
  dgram *q; /* in flight, by due time */
  /* the network */
  uint64_t delay_ns;          /* one way */
  unsigned loss_pct, dup_pct; /* per datagram */
  unsigned reorder_pct;       /* held back by up to reorder_ns */
  uint64_t reorder_ns;
  int blackhole[2];    /* drop everything toward this side */
  unsigned drop_to[2]; /* drop the next n datagrams toward this side */
  unsigned pass_to[2]; /* let n more through toward this side, then none */
  int eagain[2];       /* this side's socket is full */
  uint32_t rng;
  /* counters */
  unsigned sent[2], dropped, duplicated, reordered, eagain_hits;
  size_t max_dgram[2];
} pair;

static pair *P;

/* Fixtures made once: the server's identity and another one (a wrong pin). */
static char tmpdir[PATH_MAX];
static prd_identity ident, other_ident;
static uint8_t static_secret[32];
static const uint8_t good_psk[] = "0123456789abcdef0123456789abcdef";
static const uint8_t bad_psk[] = "0123456789abcdef0123456789abcdeX";

static uint32_t rnd(void) {
  /* xorshift32: the same losses on every run */
  uint32_t x = P->rng;
  x ^= x << 13;
  x ^= x >> 17;
  x ^= x << 5;
  P->rng = x;
  return x;
}

static tracked *track_find(side *sd, const prd_quic_conn *qc) {
  for (size_t i = 0; i < MAX_CONNS; ++i) {
    if (sd->conns[i].qc == qc) {
      return &sd->conns[i];
    }
  }
  return NULL;
}

static tracked *track(side *sd, prd_quic_conn *qc) {
  tracked *t = track_find(sd, qc);
  if (t == NULL) {
    t = track_find(sd, NULL);
    assert_non_null(t);
    t->qc = qc;
    t->expiry = NONE;
    t->flush = 0;
  }
  return t;
}

static app_stream *app_new(side *sd, prd_qstream *st) {
  app_stream *a = calloc(1, sizeof(*a));
  assert_non_null(a);
  a->side = sd->idx;
  a->st = st;
  a->id = st ? st->id : -1;
  a->hold_credit = sd->hold_credit;
  a->next = sd->streams;
  sd->streams = a;
  return a;
}

/* app_feed writes what the stream may take now (prd_qstream_send_space),
 * as the relay does from its TCP socket. */
static void app_feed(app_stream *a) {
  prd_qstream *st = a->st;
  int more = 0;
  if (st == NULL) {
    return;
  }
  while (a->src_off < a->src_total) {
    uint64_t space = prd_qstream_send_space(st);
    uint8_t *p;
    size_t avail, n;
    if (space == 0) {
      break;
    }
    assert_int_equal(prd_chunkbuf_reserve(&st->sendbuf, &p, &avail, 1), 0);
    n = avail;
    if (n > space) {
      n = (size_t)space;
    }
    if (n > a->src_total - a->src_off) {
      n = (size_t)(a->src_total - a->src_off);
    }
    for (size_t i = 0; i < n; ++i) {
      p[i] = pattern(a->id, a->src_off + i);
    }
    prd_chunkbuf_commit(&st->sendbuf, n);
    a->src_off += n;
    more = 1;
  }
  if (a->src_off == a->src_total && a->src_fin) {
    prd_qstream_shutdown_write(st);
  } else if (more) {
    prd_qstream_mark_ready(st);
  }
}

static void app_send(app_stream *a, uint64_t n, int fin) {
  a->src_total += n;
  a->src_fin = fin;
  app_feed(a);
}

static void app_consume(app_stream *a) {
  if (a->st && a->unconsumed) {
    prd_qstream_consumed(a->st, a->unconsumed);
  }
  a->unconsumed = 0;
}

static app_stream *app_find(side *sd, int64_t id) {
  for (app_stream *a = sd->streams; a; a = a->next) {
    if (a->id == id) {
      return a;
    }
  }
  return NULL;
}

/* ---- callbacks (the relay's part) -------------------------------------- */

static void cb_authenticated(prd_quic_conn *qc, void *ud) {
  side *sd = ud;
  ++sd->authenticated;
  if (sd->close_in_callback == 2) {
    prd_quic_conn_refuse(qc, "too many clients");
  }
}

static uint64_t cb_stream_open(prd_quic_conn *qc, prd_qstream *st,
                               const prd_stream_header *hd, void *ud) {
  side *sd = ud;
  (void)qc;
  assert_int_equal(hd->version, PRD_PROTOCOL_VERSION);
  assert_true(hd->has_src);
  if (sd->refuse_code) {
    return sd->refuse_code;
  }
  st->user = app_new(sd, st);
  return 0;
}

static int cb_stream_data(prd_qstream *st, const uint8_t *data, size_t len,
                          int fin, void *ud) {
  app_stream *a = st->user;
  side *sd = ud;
  assert_non_null(a);
  assert_false(a->rx_fin); /* nothing after FIN */
  if (sd->close_in_callback == 1) {
    prd_quic_conn_close(st->qc, PRD_APP_PROTOCOL_ERROR, "from a callback");
  }
  for (size_t i = 0; i < len; ++i) {
    if (data[i] != pattern(a->id, a->rx_off + i)) {
      ++a->rx_bad;
    }
  }
  a->rx_off += len;
  if (fin) {
    a->rx_fin = 1;
  }
  if (a->hold_credit) {
    a->unconsumed += len;
  } else if (len) {
    prd_qstream_consumed(st, len);
  }
  return 0;
}

static void cb_stream_reset(prd_qstream *st, uint64_t app_err, void *ud) {
  app_stream *a = st->user;
  (void)ud;
  a->reset = 1;
  a->reset_code = app_err;
}

static void cb_stream_writable(prd_qstream *st, void *ud) {
  app_stream *a = st->user;
  (void)ud;
  ++a->writable;
  app_feed(a);
}

static void cb_stream_close(prd_qstream *st, uint64_t app_err, void *ud) {
  app_stream *a = st->user;
  (void)ud;
  app_consume(a);
  a->closed = 1;
  a->close_code = app_err;
  a->st = NULL;
  st->user = NULL;
  prd_qstream_detach(st);
}

static void cb_streams_available(prd_quic_conn *qc, void *ud) {
  side *sd = ud;
  (void)qc;
  ++sd->streams_available;
}

static void cb_goaway(prd_quic_conn *qc, uint64_t code, void *ud) {
  side *sd = ud;
  (void)qc;
  ++sd->goaway;
  sd->goaway_code = code;
}

static void cb_closed(prd_quic_conn *qc, prd_quic_close_reason reason,
                      uint64_t code, const char *msg, void *ud) {
  side *sd = ud;
  tracked *t = track_find(sd, qc);
  assert_non_null(t);
  t->qc = NULL;
  if (sd->qc == qc) {
    sd->qc = NULL;
  }
  ++sd->closed;
  sd->close_reason = reason;
  sd->close_code = code;
  sd->closed_at = fake_now;
  snprintf(sd->close_msg, sizeof(sd->close_msg), "%s", msg);
}

static void cb_set_timer(prd_quic_conn *qc, prd_tstamp expiry, void *ud) {
  track(ud, qc)->expiry = expiry;
}

static void cb_want_flush(prd_quic_conn *qc, void *ud) {
  track(ud, qc)->flush = 1;
}

static void *cb_conn_new(prd_quic_conn *qc, void *ud) {
  side *sd = ud;
  track(sd, qc);
  sd->qc = qc;
  ++sd->conn_new;
  return sd; /* NULL would refuse the connection */
}

static void cb_want_writable(prd_quic_endpoint *ep, void *ud) {
  side *sd = ud;
  (void)ep;
  ++sd->want_writable;
}

/* ---- the network -------------------------------------------------------- */

static void enqueue(int to, const prd_sockaddr *from, const prd_sockaddr *dest,
                    const uint8_t *data, size_t len, prd_tstamp due) {
  dgram *d = malloc(sizeof(*d) + len), **pp;
  assert_non_null(d);
  d->to = to;
  d->due = due;
  d->from = *from;
  d->dest = *dest;
  d->len = len;
  memcpy(d->data, data, len);
  for (pp = &P->q; *pp && (*pp)->due <= due; pp = &(*pp)->next) {
  }
  d->next = *pp;
  *pp = d;
}

static int same_addr(const prd_sockaddr *a, const prd_sockaddr *b) {
  return a->u.sa.sa_family == AF_INET && b->u.sa.sa_family == AF_INET &&
         a->u.in.sin_addr.s_addr == b->u.in.sin_addr.s_addr &&
         a->u.in.sin_port == b->u.in.sin_port;
}

static ssize_t transmit(prd_quic_endpoint *ep, const prd_sockaddr *local,
                        const prd_sockaddr *remote, const uint8_t *data,
                        size_t len, size_t segsize, void *arg) {
  side *from = arg;
  int to = !from->idx;
  (void)ep;
  assert_true(segsize > 0 && len > 0);
  if (P->eagain[from->idx]) {
    ++P->eagain_hits;
    return -EAGAIN;
  }
  /* Every datagram goes to the other side's address. */
  assert_true(same_addr(remote, &P->s[to].addr));
  for (size_t off = 0; off < len; off += segsize) {
    size_t n = len - off < segsize ? len - off : segsize;
    prd_tstamp due = fake_now + P->delay_ns;
    ++P->sent[from->idx];
    if (n > P->max_dgram[from->idx]) {
      P->max_dgram[from->idx] = n;
    }
    if (P->blackhole[to] || (P->loss_pct && rnd() % 100 < P->loss_pct)) {
      ++P->dropped;
      continue;
    }
    if (P->pass_to[to] && --P->pass_to[to] == 0) {
      P->blackhole[to] = 1;
    }
    if (P->drop_to[to]) {
      --P->drop_to[to];
      ++P->dropped;
      continue;
    }
    if (P->reorder_pct && rnd() % 100 < P->reorder_pct) {
      due += 1 + rnd() % P->reorder_ns;
      ++P->reordered;
    }
    enqueue(to, local, remote, data + off, n, due);
    if (P->dup_pct && rnd() % 100 < P->dup_pct) {
      enqueue(to, local, remote, data + off, n, due + 1 + rnd() % (5 * MS));
      ++P->duplicated;
    }
  }
  return (ssize_t)len;
}

/* ---- the event loop ----------------------------------------------------- */

static void run_flushes(void) {
  for (int round = 0;; ++round) {
    int any = 0;
    assert_true(round < 10000); /* a flush that always wants another */
    for (int s = 0; s < 2; ++s) {
      for (size_t i = 0; i < MAX_CONNS; ++i) {
        tracked *t = &P->s[s].conns[i];
        if (t->qc && t->flush) {
          t->flush = 0;
          any = 1;
          prd_quic_conn_flush(t->qc);
        }
      }
    }
    if (!any) {
      return;
    }
  }
}

/* fire_timers runs the expired timers; returns how many. */
static int fire_timers(void) {
  int n = 0;
  for (int s = 0; s < 2; ++s) {
    for (size_t i = 0; i < MAX_CONNS; ++i) {
      tracked *t = &P->s[s].conns[i];
      if (t->qc && t->expiry <= fake_now) {
        t->expiry = NONE;
        ++n;
        prd_quic_conn_on_timer(t->qc);
      }
    }
  }
  return n;
}

static int deliver_due(void) {
  int n = 0;
  /* Only what is due now: new datagrams are due at the earliest now +
   * delay_ns, and a zero delay must not loop here. */
  dgram *batch = NULL, **tail = &batch;
  while (P->q && P->q->due <= fake_now) {
    dgram *d = P->q;
    P->q = d->next;
    d->next = NULL;
    *tail = d;
    tail = &d->next;
  }
  while (batch) {
    dgram *d = batch;
    side *to = &P->s[d->to];
    batch = d->next;
    if (to->ep && same_addr(&d->dest, &to->addr)) {
      prd_quic_endpoint_deliver(to->ep, &d->dest, &d->from, d->data, d->len);
      ++n;
    }
    free(d);
  }
  return n;
}

/* pump runs the pair until |done| returns true or |limit| of fake time has
 * passed (done == NULL: the whole |limit|). Returns done's last answer. */
static int pump(int (*done)(void), uint64_t limit) {
  prd_tstamp end = fake_now + limit;
  for (long iter = 0;; ++iter) {
    prd_tstamp next = NONE;
    /* A timer that stays due after it fired would spin here. */
    assert_true(iter < 2000000);
    run_flushes();
    if (done && done()) {
      return 1;
    }
    if (fire_timers() > 0 || deliver_due() > 0) {
      continue;
    }
    if (P->q) {
      next = P->q->due;
    }
    for (int s = 0; s < 2; ++s) {
      for (size_t i = 0; i < MAX_CONNS; ++i) {
        tracked *t = &P->s[s].conns[i];
        if (t->qc && t->expiry < next) {
          next = t->expiry;
        }
      }
    }
    if (next > end) {
      fake_now = end;
      run_flushes();
      return done ? done() : 1;
    }
    fake_now = next;
  }
}

/* ---- set-up ------------------------------------------------------------- */

static void local_addr(prd_quic_endpoint *ep, prd_sockaddr *a) {
  memset(a, 0, sizeof(*a));
  a->len = sizeof(a->u.ss);
  assert_int_equal(getsockname(prd_quic_endpoint_fd(ep), &a->u.sa, &a->len), 0);
}

static void side_init(side *sd, int idx) {
  sd->idx = idx;
  sd->cb.authenticated = cb_authenticated;
  sd->cb.stream_open = cb_stream_open;
  sd->cb.stream_data = cb_stream_data;
  sd->cb.stream_reset = cb_stream_reset;
  sd->cb.stream_writable = cb_stream_writable;
  sd->cb.stream_close = cb_stream_close;
  sd->cb.streams_available = cb_streams_available;
  sd->cb.goaway = cb_goaway;
  sd->cb.closed = cb_closed;
  sd->cb.set_timer = cb_set_timer;
  sd->cb.want_flush = cb_want_flush;
  sd->cb.conn_new = idx == SRV ? cb_conn_new : NULL;
  sd->cb.want_writable = cb_want_writable;
  sd->cfg.role = idx == SRV ? PRD_AUTH_ROLE_SERVER : PRD_AUTH_ROLE_CLIENT;
  sd->cfg.psk = good_psk;
  sd->cfg.psklen = sizeof(good_psk) - 1;
  sd->cfg.auth_timeout_ns = 5 * SEC;
  sd->cfg.idle_timeout_ns = 30 * SEC;
  sd->cfg.keepalive_ns = 0;
  sd->cfg.max_streams = 100;
  sd->cfg.cc_algo = PRD_QUIC_CC_CUBIC;
  sd->cfg.max_pending_handshakes = 64;
  sd->cfg.cb = &sd->cb;
  sd->cfg.ud = sd;
  if (idx == SRV) {
    sd->cfg.cert_der = ident.cert_der;
    sd->cfg.certlen = ident.certlen;
    sd->cfg.key_der = ident.key_der;
    sd->cfg.keylen = ident.keylen;
  } else {
    sd->cfg.pin_der = ident.cert_der;
    sd->cfg.pinlen = ident.certlen;
    sd->cfg.expected_name = "localhost";
    sd->cfg.pin_name = "test-pin.der";
  }
}

static int setup(void **state) {
  (void)state;
  P = calloc(1, sizeof(*P));
  assert_non_null(P);
  P->delay_ns = 10 * MS;
  P->reorder_ns = 20 * MS;
  P->rng = 2463534242u;
  side_init(&P->s[SRV], SRV);
  side_init(&P->s[CLI], CLI);
  return 0;
}

static void start_server(void) {
  side *s = &P->s[SRV];
  prd_sockaddr any;
  memset(&any, 0, sizeof(any));
  any.u.in.sin_family = AF_INET;
  any.u.in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  any.len = sizeof(any.u.in);
  if (s->addr.len) {
    any = s->addr; /* a restart: the same port */
  }
  assert_int_equal(
      prd_quic_endpoint_new_server(&s->ep, &s->cfg, &any, static_secret), 0);
  local_addr(s->ep, &s->addr);
  prd_quic_endpoint_set_transmit(s->ep, transmit, s);
}

static void start_client(void) {
  side *c = &P->s[CLI];
  prd_quic_conn *qc;
  assert_int_equal(
      prd_quic_endpoint_new_client(&c->ep, &qc, &c->cfg, NULL, &P->s[SRV].addr),
      0);
  local_addr(c->ep, &c->addr);
  prd_quic_endpoint_set_transmit(c->ep, transmit, c);
  c->qc = qc;
  track(c, qc)->flush = 1; /* the relay flushes a new connection */
}

static void start_pair(void) {
  start_server();
  start_client();
}

static int both_authenticated(void) {
  return P->s[SRV].authenticated && P->s[CLI].authenticated;
}

static void connect_pair(void) {
  start_pair();
  assert_true(pump(both_authenticated, 5 * SEC));
  assert_non_null(P->s[SRV].qc);
  assert_non_null(P->s[CLI].qc);
}

static void free_streams(side *sd) {
  while (sd->streams) {
    app_stream *a = sd->streams;
    sd->streams = a->next;
    free(a);
  }
}

static int teardown(void **state) {
  (void)state;
  /* Endpoints first: their connections call back into the streams. */
  for (int s = 0; s < 2; ++s) {
    prd_quic_endpoint_del(P->s[s].ep);
    P->s[s].ep = NULL;
  }
  for (int s = 0; s < 2; ++s) {
    free_streams(&P->s[s]);
  }
  while (P->q) {
    dgram *d = P->q;
    P->q = d->next;
    free(d);
  }
  free(P);
  P = NULL;
  return 0;
}

static void rm_rf(const char *path) {
  struct stat st;
  if (lstat(path, &st) != 0) {
    return;
  }
  if (S_ISDIR(st.st_mode)) {
    DIR *d = opendir(path);
    struct dirent *de;
    char sub[PATH_MAX];
    while (d && (de = readdir(d)) != NULL) {
      if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) {
        snprintf(sub, sizeof(sub), "%s/%s", path, de->d_name);
        rm_rf(sub);
      }
    }
    if (d) {
      closedir(d);
    }
    rmdir(path);
  } else {
    unlink(path);
  }
}

static int group_setup(void **state) {
  static const char *const names[] = {"localhost", "127.0.0.1"};
  char dir[PATH_MAX], err[512];
  const char *base = getenv("TMPDIR");
  (void)state;
  snprintf(tmpdir, sizeof(tmpdir), "%s/test_quic.XXXXXX",
           base && base[0] ? base : "/tmp");
  if (mkdtemp(tmpdir) == NULL) {
    return -1;
  }
  snprintf(dir, sizeof(dir), "%s/a", tmpdir);
  if (prd_identity_load_or_create(&ident, dir, names, 2, err, sizeof(err)) !=
      0) {
    fprintf(stderr, "%s\n", err);
    return -1;
  }
  snprintf(dir, sizeof(dir), "%s/b", tmpdir);
  if (prd_identity_load_or_create(&other_ident, dir, names, 2, err,
                                  sizeof(err)) != 0) {
    fprintf(stderr, "%s\n", err);
    return -1;
  }
  if (prd_identity_static_secret(&ident, static_secret) != 0) {
    return -1;
  }
  prd_now_hook = fake_clock;
  /* Failures are expected here; keep the output to cmocka's. */
  if (getenv("PRD_TEST_LOG") == NULL) {
    prd_log_threshold = PRD_LOG_OFF;
  }
  return 0;
}

static int group_teardown(void **state) {
  (void)state;
  prd_now_hook = NULL;
  prd_identity_free(&ident);
  prd_identity_free(&other_ident);
  rm_rf(tmpdir);
  return 0;
}

/* ---- helpers for the tests ---------------------------------------------- */

static app_stream *open_stream(void) {
  prd_stream_header hd;
  prd_qstream *st;
  app_stream *a;
  memset(&hd, 0, sizeof(hd));
  hd.version = PRD_PROTOCOL_VERSION;
  hd.has_src = 1;
  hd.src.family = 4;
  hd.src.addr[0] = 127;
  hd.src.addr[3] = 1;
  hd.src.port = 40000;
  a = app_new(&P->s[SRV], NULL);
  assert_int_equal(prd_qstream_open(&st, P->s[SRV].qc, &hd, a), 0);
  a->st = st;
  a->id = st->id;
  return a;
}

/* The client's end of server stream |a| (NULL until its header arrived). */
static app_stream *peer_of(const app_stream *a) {
  return app_find(&P->s[!a->side], a->id);
}

static app_stream *watch_a, *watch_b;

static int watched_done(void) {
  app_stream *pa = peer_of(watch_a);
  app_stream *pb = watch_b ? peer_of(watch_b) : NULL;
  return watch_a->closed && pa && pa->closed &&
         (watch_b == NULL || (watch_b->closed && pb && pb->closed));
}

static int server_closed(void) { return P->s[SRV].closed > 0; }
static int client_closed(void) { return P->s[CLI].closed > 0; }
static int both_closed(void) { return server_closed() && client_closed(); }

/* ---- tests -------------------------------------------------------------- */

static void test_handshake_and_auth(void **state) {
  prd_tstamp t0 = fake_now;
  (void)state;
  connect_pair();
  assert_int_equal(P->s[SRV].conn_new, 1);
  assert_int_equal(P->s[SRV].authenticated, 1);
  assert_int_equal(P->s[CLI].authenticated, 1);
  assert_true(prd_quic_conn_is_authenticated(P->s[SRV].qc));
  assert_true(prd_quic_conn_is_authenticated(P->s[CLI].qc));
  assert_int_equal(prd_quic_endpoint_num_conns(P->s[SRV].ep), 1);
  /* 1-RTT handshake, then AUTH_HELLO / AUTH_CHALLENGE / AUTH_RESPONSE /
   * AUTH_RESULT over the control stream: a few round trips of 20 ms. */
  assert_true(fake_now - t0 >= 40 * MS);
  assert_true(fake_now - t0 <= 200 * MS);
  /* Datagrams stay at 1,200 bytes until the handshake is confirmed. */
  assert_true(P->max_dgram[CLI] <= 1200);
  assert_int_equal(P->s[SRV].closed + P->s[CLI].closed, 0);
  assert_string_equal(prd_quic_conn_name(P->s[SRV].qc),
                      prd_quic_conn_name(P->s[SRV].qc));
  assert_true(same_addr(prd_quic_conn_remote(P->s[SRV].qc), &P->s[CLI].addr));
  /* Nothing more to say: the pair goes quiet (no keep-alive configured). */
  pump(NULL, 5 * SEC);
  assert_int_equal(P->s[SRV].closed + P->s[CLI].closed, 0);
}

static void test_wrong_psk(void **state) {
  (void)state;
  P->s[CLI].cfg.psk = bad_psk;
  start_pair();
  assert_true(pump(both_closed, 5 * SEC));
  assert_int_equal(P->s[SRV].authenticated, 0);
  assert_int_equal(P->s[CLI].authenticated, 0);
  /* The server rejects the proof and closes with AUTH_FAILED
   * (spec/03-auth.md); the client learns it from the server. */
  assert_int_equal(P->s[SRV].close_reason, PRD_QUIC_CLOSE_LOCAL);
  assert_int_equal(P->s[SRV].close_code, PRD_APP_AUTH_FAILED);
  assert_int_equal(P->s[CLI].close_code, PRD_APP_AUTH_FAILED);
  assert_int_equal(prd_quic_endpoint_num_conns(P->s[SRV].ep), 0);
}

static void test_wrong_pin(void **state) {
  (void)state;
  P->s[CLI].cfg.pin_der = other_ident.cert_der;
  P->s[CLI].cfg.pinlen = other_ident.certlen;
  start_pair();
  assert_true(pump(both_closed, 5 * SEC));
  assert_int_equal(P->s[SRV].authenticated + P->s[CLI].authenticated, 0);
  assert_int_equal(P->s[CLI].close_reason, PRD_QUIC_CLOSE_HANDSHAKE);
  assert_non_null(strstr(P->s[CLI].close_msg, "does not match the pinned"));
  assert_non_null(strstr(P->s[CLI].close_msg, "test-pin.der"));
  /* The server hears a TLS alert (bad_certificate = 42). */
  assert_int_equal(P->s[SRV].close_reason, PRD_QUIC_CLOSE_PEER);
  assert_non_null(strstr(P->s[SRV].close_msg, "TLS alert"));
}

static void test_wrong_name(void **state) {
  (void)state;
  P->s[CLI].cfg.expected_name = "example.org";
  start_pair();
  assert_true(pump(both_closed, 5 * SEC));
  assert_int_equal(P->s[CLI].close_reason, PRD_QUIC_CLOSE_HANDSHAKE);
  assert_non_null(strstr(P->s[CLI].close_msg, "names do not match"));
}

static void test_stream_data_and_fin_both_ways(void **state) {
  app_stream *a, *b;
  (void)state;
  connect_pair();
  a = open_stream();
  assert_int_equal(prd_quic_conn_num_streams(P->s[SRV].qc), 1);
  app_send(a, 300000, 1);
  watch_a = a;
  watch_b = NULL;
  /* The client's side appears once the header arrived; it answers. */
  while ((b = peer_of(a)) == NULL) {
    assert_true(pump(NULL, 10 * MS));
  }
  assert_int_equal(prd_quic_conn_num_streams(P->s[CLI].qc), 1);
  app_send(b, 123457, 1);
  assert_true(pump(watched_done, 5 * SEC));
  assert_int_equal(b->rx_off, 300000);
  assert_int_equal(a->rx_off, 123457);
  assert_int_equal(a->rx_bad + b->rx_bad, 0);
  assert_true(a->rx_fin && b->rx_fin);
  assert_int_equal(a->close_code, PRD_APP_NO_ERROR);
  assert_int_equal(b->close_code, PRD_APP_NO_ERROR);
  assert_false(a->reset || b->reset);
  assert_int_equal(prd_quic_conn_num_streams(P->s[SRV].qc), 0);
  assert_int_equal(prd_quic_conn_num_streams(P->s[CLI].qc), 0);
}

static void test_empty_stream_fin(void **state) {
  app_stream *a, *b;
  (void)state;
  connect_pair();
  a = open_stream();
  app_send(a, 0, 1); /* the header, then FIN at once */
  watch_a = a;
  watch_b = NULL;
  while ((b = peer_of(a)) == NULL) {
    assert_true(pump(NULL, 10 * MS));
  }
  assert_true(pump(NULL, 100 * MS) && b->rx_fin);
  assert_int_equal(b->rx_off, 0);
  app_send(b, 0, 1);
  assert_true(pump(watched_done, 2 * SEC));
  assert_int_equal(a->close_code, PRD_APP_NO_ERROR);
}

static int all_streams_done(void) {
  for (app_stream *a = P->s[SRV].streams; a; a = a->next) {
    app_stream *b = peer_of(a);
    if (!a->closed || b == NULL || !b->closed) {
      return 0;
    }
  }
  return 1;
}

static void test_stream_limit_and_streams_available(void **state) {
  app_stream *a[8];
  prd_stream_header hd;
  prd_qstream *st;
  (void)state;
  P->s[CLI].cfg.max_streams = 4;
  connect_pair();
  for (int i = 0; i < 4; ++i) {
    a[i] = open_stream();
    app_send(a[i], (uint64_t)(1000 * (i + 1)), 1);
  }
  /* The fifth waits for credit. */
  memset(&hd, 0, sizeof(hd));
  hd.version = PRD_PROTOCOL_VERSION;
  hd.has_src = 1;
  hd.src.family = 4;
  assert_int_equal(prd_qstream_open(&st, P->s[SRV].qc, &hd, NULL),
                   PRD_ERR_QUIC);
  /* The client answers each with FIN: the streams complete, the client
   * replenishes the credit and the server hears streams_available. */
  assert_true(pump(NULL, 200 * MS));
  for (int i = 0; i < 4; ++i) {
    app_stream *b = peer_of(a[i]);
    assert_non_null(b);
    assert_int_equal(b->rx_off, 1000 * (i + 1));
    app_send(b, 10, 1);
  }
  assert_true(pump(all_streams_done, 2 * SEC));
  assert_true(pump(NULL, 200 * MS));
  assert_true(P->s[SRV].streams_available > 0);
  /* Four more fit now. */
  for (int i = 4; i < 8; ++i) {
    a[i] = open_stream();
    app_send(a[i], 500, 1);
  }
  for (int i = 4; i < 8; ++i) {
    app_stream *b;
    while ((b = peer_of(a[i])) == NULL || !b->rx_fin) {
      assert_true(pump(NULL, 10 * MS));
    }
    app_send(b, 0, 1);
  }
  assert_true(pump(all_streams_done, 2 * SEC));
  for (app_stream *x = P->s[SRV].streams; x; x = x->next) {
    assert_int_equal(x->close_code, PRD_APP_NO_ERROR);
    assert_int_equal(x->rx_bad + peer_of(x)->rx_bad, 0);
  }
}

static void test_reset_server_to_client(void **state) {
  app_stream *a, *b;
  (void)state;
  connect_pair();
  a = open_stream();
  app_send(a, 5000, 0);
  while ((b = peer_of(a)) == NULL || b->rx_off < 5000) {
    assert_true(pump(NULL, 10 * MS));
  }
  prd_qstream_abort(a->st, PRD_APP_USER_RESET);
  watch_a = a;
  watch_b = NULL;
  assert_true(pump(watched_done, 2 * SEC));
  assert_true(b->reset);
  assert_int_equal(b->reset_code, PRD_APP_USER_RESET);
  assert_int_equal(b->close_code, PRD_APP_USER_RESET);
  assert_int_equal(a->close_code, PRD_APP_USER_RESET);
  assert_false(b->rx_fin);
  /* The connection lives on. */
  assert_int_equal(P->s[SRV].closed + P->s[CLI].closed, 0);
}

static void test_reset_client_to_server(void **state) {
  app_stream *a, *b;
  (void)state;
  connect_pair();
  a = open_stream();
  app_send(a, 100, 0);
  while ((b = peer_of(a)) == NULL) {
    assert_true(pump(NULL, 10 * MS));
  }
  app_send(b, 70000, 0);
  assert_true(pump(NULL, 200 * MS));
  assert_int_equal(a->rx_off, 70000);
  prd_qstream_abort(b->st, PRD_APP_DESTINATION_RESET);
  watch_a = a;
  watch_b = NULL;
  assert_true(pump(watched_done, 2 * SEC));
  assert_true(a->reset);
  assert_int_equal(a->reset_code, PRD_APP_DESTINATION_RESET);
  assert_int_equal(a->close_code, PRD_APP_DESTINATION_RESET);
  assert_int_equal(P->s[SRV].closed + P->s[CLI].closed, 0);
}

static void test_stream_refused_by_client(void **state) {
  app_stream *a;
  (void)state;
  connect_pair();
  P->s[CLI].refuse_code = PRD_APP_DESTINATION_UNREACHABLE;
  a = open_stream();
  app_send(a, 1000, 0);
  watch_a = a;
  assert_true(pump(NULL, 500 * MS));
  assert_true(a->reset);
  assert_int_equal(a->reset_code, PRD_APP_DESTINATION_UNREACHABLE);
  assert_true(a->closed);
  assert_null(peer_of(a));
}

static void test_detach_half_closed(void **state) {
  app_stream *a, *b;
  (void)state;
  connect_pair();
  a = open_stream();
  app_send(a, 2000, 1);
  while ((b = peer_of(a)) == NULL || !b->rx_fin) {
    assert_true(pump(NULL, 10 * MS));
  }
  /* The server's TCP side goes away after its FIN while the client still
   * sends: STOP_SENDING, and the client's stream ends with USER_RESET. */
  a->st->user = NULL;
  prd_qstream_detach(a->st);
  a->st = NULL;
  app_send(b, 100000, 0);
  assert_true(pump(NULL, 1 * SEC));
  assert_true(b->closed);
  assert_int_equal(b->close_code, PRD_APP_USER_RESET);
  assert_int_equal(prd_quic_conn_num_streams(P->s[SRV].qc), 0);
}

static int client_got_all(void) {
  app_stream *b = peer_of(watch_a);
  return b && b->rx_off == watch_a->src_total;
}

static void test_flow_control_and_window_growth(void **state) {
  app_stream *a, *b;
  uint64_t window;
  (void)state;
  P->s[CLI].hold_credit = 1;
  connect_pair();
  a = open_stream();
  app_send(a, 6 * 1024 * 1024, 1);
  watch_a = a;
  assert_false(pump(client_got_all, 2 * SEC));
  b = peer_of(a);
  assert_non_null(b);
  /* Without credit the sender stops at the stream's initial window (1 MiB,
   * of which the stream header took a few bytes); its data waits in the
   * send buffer and the relay's reads are paused (no send space). */
  window = b->rx_off;
  assert_true(window > 900 * 1024 && window <= 1024 * 1024);
  assert_int_equal(prd_qstream_send_space(a->st) < 512 * 1024, 1);
  /* The reader drains: credit flows back and the rest arrives. */
  b->hold_credit = 0;
  app_consume(b);
  assert_true(pump(client_got_all, 5 * SEC));
  assert_int_equal(b->rx_bad, 0);
  assert_true(b->rx_fin);
#if !PRD_NGTCP2_STREAM_AUTOTUNE
  /* A reader that keeps up within two RTTs gets a larger window
   * (spec/04-quic-profile.md §2.3). */
  assert_non_null(b->st);
  assert_true(b->st->rx_window > 1024 * 1024);
#endif
}

static void test_close_by_server(void **state) {
  (void)state;
  connect_pair();
  open_stream();
  prd_quic_conn_close(P->s[SRV].qc, PRD_APP_SHUTTING_DOWN, "going down");
  assert_true(pump(both_closed, 5 * SEC));
  assert_int_equal(P->s[CLI].close_reason, PRD_QUIC_CLOSE_PEER);
  assert_int_equal(P->s[CLI].close_code, PRD_APP_SHUTTING_DOWN);
  assert_non_null(strstr(P->s[CLI].close_msg, "going down"));
  assert_int_equal(P->s[SRV].close_reason, PRD_QUIC_CLOSE_LOCAL);
  assert_int_equal(P->s[SRV].close_code, PRD_APP_SHUTTING_DOWN);
  /* Every open stream heard stream_close before closed. */
  for (app_stream *a = P->s[SRV].streams; a; a = a->next) {
    assert_true(a->closed);
    assert_int_equal(a->close_code, PRD_APP_SHUTTING_DOWN);
  }
  for (app_stream *a = P->s[CLI].streams; a; a = a->next) {
    assert_true(a->closed);
  }
}

static void test_close_by_client(void **state) {
  (void)state;
  connect_pair();
  prd_quic_conn_close(P->s[CLI].qc, PRD_APP_NO_ERROR, "bye");
  assert_true(pump(both_closed, 5 * SEC));
  assert_int_equal(P->s[SRV].close_reason, PRD_QUIC_CLOSE_PEER);
  assert_int_equal(P->s[SRV].close_code, PRD_APP_NO_ERROR);
  assert_non_null(strstr(P->s[SRV].close_msg, "bye"));
  assert_int_equal(P->s[CLI].close_reason, PRD_QUIC_CLOSE_LOCAL);
}

static void test_refuse(void **state) {
  (void)state;
  connect_pair();
  prd_quic_conn_refuse(P->s[SRV].qc, "at capacity");
  assert_true(pump(both_closed, 5 * SEC));
  /* spec/04-quic-profile.md §7: transport CONNECTION_REFUSED; the relay
   * tells it by this text today. */
  assert_int_equal(P->s[CLI].close_reason, PRD_QUIC_CLOSE_PEER);
  assert_non_null(strstr(P->s[CLI].close_msg, "transport error 0x2"));
}

static void test_goaway(void **state) {
  (void)state;
  connect_pair();
  assert_false(prd_quic_conn_peer_goaway(P->s[CLI].qc));
  prd_quic_conn_goaway(P->s[SRV].qc, PRD_APP_SHUTTING_DOWN);
  assert_true(pump(NULL, 200 * MS));
  assert_int_equal(P->s[CLI].goaway, 1);
  assert_int_equal(P->s[CLI].goaway_code, PRD_APP_SHUTTING_DOWN);
  assert_true(prd_quic_conn_peer_goaway(P->s[CLI].qc));
  assert_int_equal(P->s[SRV].closed + P->s[CLI].closed, 0);
}

static void test_idle_timeout(void **state) {
  prd_tstamp t0;
  (void)state;
  P->s[SRV].cfg.idle_timeout_ns = 2 * SEC;
  P->s[CLI].cfg.idle_timeout_ns = 3 * SEC;
  connect_pair();
  t0 = fake_now;
  assert_true(pump(both_closed, 10 * SEC));
  /* The smaller of both sides' timeouts (at least 3 PTO). */
  assert_int_equal(P->s[SRV].close_reason, PRD_QUIC_CLOSE_IDLE);
  assert_int_equal(P->s[CLI].close_reason, PRD_QUIC_CLOSE_IDLE);
  assert_true(P->s[SRV].closed_at - t0 >= 1900 * MS);
  assert_true(P->s[SRV].closed_at - t0 <= 2100 * MS);
  assert_true(P->s[CLI].closed_at - t0 <= 2100 * MS);
  assert_non_null(strstr(P->s[CLI].close_msg, "idle timeout"));
}

static void test_keepalive_keeps_it_open(void **state) {
  (void)state;
  P->s[SRV].cfg.idle_timeout_ns = 2 * SEC;
  P->s[CLI].cfg.idle_timeout_ns = 30 * SEC;
  P->s[CLI].cfg.keepalive_ns = 10 * SEC; /* lowered to half of 2 s */
  connect_pair();
  assert_false(pump(both_closed, 20 * SEC));
  assert_int_equal(P->s[SRV].closed + P->s[CLI].closed, 0);
}

static void test_peer_vanishes(void **state) {
  (void)state;
  P->s[SRV].cfg.idle_timeout_ns = 10 * SEC;
  connect_pair();
  assert_false(prd_quic_conn_suspect(P->s[SRV].qc));
  assert_true(pump(NULL, 1 * SEC)); /* the handshake's last ACKs */
  P->blackhole[CLI] = P->blackhole[SRV] = 1;
  prd_quic_conn_probe(P->s[SRV].qc);
  assert_true(pump(NULL, 1 * SEC));
  assert_true(prd_quic_conn_suspect(P->s[SRV].qc));
  assert_true(pump(server_closed, 15 * SEC));
  assert_int_equal(P->s[SRV].close_reason, PRD_QUIC_CLOSE_IDLE);
}

static void test_no_answer_over_udp(void **state) {
  (void)state;
  P->blackhole[SRV] = 1;
  start_pair();
  assert_true(pump(client_closed, 30 * SEC));
  assert_int_equal(P->s[CLI].close_reason, PRD_QUIC_CLOSE_HANDSHAKE);
  assert_non_null(strstr(P->s[CLI].close_msg, "nothing answered over UDP"));
  assert_int_equal(P->s[SRV].conn_new, 0);
}

static void test_server_handshake_timeout(void **state) {
  (void)state;
  /* Only the client's first Initial reaches the server: its handshake
   * never completes, and the pending slot is given back. */
  P->pass_to[SRV] = 1;
  start_pair();
  assert_true(pump(server_closed, 30 * SEC));
  assert_int_equal(P->s[SRV].conn_new, 1);
  assert_int_equal(P->s[SRV].close_reason, PRD_QUIC_CLOSE_HANDSHAKE);
  assert_non_null(strstr(P->s[SRV].close_msg, "handshake timed out"));
  assert_int_equal(prd_quic_endpoint_num_conns(P->s[SRV].ep), 0);
}

static void test_close_from_callback(void **state) {
  app_stream *a;
  (void)state;
  connect_pair();
  P->s[CLI].close_in_callback = 1;
  a = open_stream();
  app_send(a, 100, 0);
  assert_true(pump(both_closed, 5 * SEC));
  assert_int_equal(P->s[CLI].close_reason, PRD_QUIC_CLOSE_LOCAL);
  assert_int_equal(P->s[CLI].close_code, PRD_APP_PROTOCOL_ERROR);
  assert_int_equal(P->s[SRV].close_reason, PRD_QUIC_CLOSE_PEER);
  assert_int_equal(P->s[SRV].close_code, PRD_APP_PROTOCOL_ERROR);
  assert_non_null(strstr(P->s[SRV].close_msg, "from a callback"));
  assert_true(a->closed);
}

static void test_refuse_from_callback(void **state) {
  (void)state;
  P->s[SRV].close_in_callback = 2;
  start_pair();
  assert_true(pump(both_closed, 5 * SEC));
  assert_int_equal(P->s[SRV].authenticated, 1);
  assert_int_equal(P->s[CLI].close_reason, PRD_QUIC_CLOSE_PEER);
  assert_non_null(strstr(P->s[CLI].close_msg, "transport error 0x2"));
}

static void test_handshake_loss(void **state) {
  (void)state;
  /* The first Initial and the server's first flight are lost. */
  P->drop_to[SRV] = 1;
  start_pair();
  P->drop_to[CLI] = 2;
  assert_true(pump(both_authenticated, 10 * SEC));
  assert_true(P->dropped >= 3);
}

static void test_retry(void **state) {
  (void)state;
  /* With room for one pending handshake the server asks for Retry first
   * (spec/04-quic-profile.md §3). */
  P->s[SRV].cfg.max_pending_handshakes = 1;
  connect_pair();
  assert_int_equal(P->s[SRV].conn_new, 1);
}

static void test_loss_and_recovery(void **state) {
  app_stream *a[3], *b[3];
  prd_quic_conn_info info;
  (void)state;
  connect_pair();
  P->loss_pct = 10;
  P->dup_pct = 5;
  P->reorder_pct = 10;
  for (int i = 0; i < 3; ++i) {
    a[i] = open_stream();
    app_send(a[i], (uint64_t)(400000 + 1111 * i), 1);
  }
  for (int i = 0; i < 3; ++i) {
    while ((b[i] = peer_of(a[i])) == NULL) {
      assert_true(pump(NULL, 10 * MS));
    }
    app_send(b[i], (uint64_t)(200000 + 7 * i), 1);
  }
  assert_true(pump(all_streams_done, 60 * SEC));
  for (int i = 0; i < 3; ++i) {
    assert_int_equal(b[i]->rx_off, a[i]->src_total);
    assert_int_equal(a[i]->rx_off, b[i]->src_total);
    assert_int_equal(a[i]->rx_bad + b[i]->rx_bad, 0);
    assert_int_equal(a[i]->close_code, PRD_APP_NO_ERROR);
    assert_int_equal(b[i]->close_code, PRD_APP_NO_ERROR);
  }
  assert_true(P->dropped > 0 && P->duplicated > 0 && P->reordered > 0);
  prd_quic_conn_get_info(P->s[SRV].qc, &info);
  assert_true(info.lost_packets > 0);
  assert_int_equal(P->s[SRV].closed + P->s[CLI].closed, 0);
}

static void test_socket_full(void **state) {
  app_stream *a;
  (void)state;
  connect_pair();
  a = open_stream();
  P->eagain[SRV] = 1;
  app_send(a, 200000, 1);
  watch_a = a;
  assert_false(pump(client_got_all, 100 * MS));
  assert_true(P->eagain_hits > 0);
  assert_true(P->s[SRV].want_writable > 0);
  P->eagain[SRV] = 0;
  prd_quic_endpoint_on_writable(P->s[SRV].ep);
  assert_true(pump(client_got_all, 5 * SEC));
  assert_int_equal(peer_of(a)->rx_bad, 0);
}

static void test_stateless_reset_after_restart(void **state) {
  app_stream *a, *b;
  (void)state;
  connect_pair();
  a = open_stream();
  app_send(a, 10, 0);
  while ((b = peer_of(a)) == NULL) {
    assert_true(pump(NULL, 10 * MS));
  }
  /* The server restarts (same port, same static secret) and forgets the
   * connection: the client's next packet is answered with a stateless
   * reset. */
  prd_quic_endpoint_del(P->s[SRV].ep);
  P->s[SRV].ep = NULL;
  memset(P->s[SRV].conns, 0, sizeof(P->s[SRV].conns));
  P->s[SRV].qc = NULL;
  start_server();
  /* A packet large enough to be answered (RFC 9000 §10.3). */
  app_send(b, 1000, 0);
  assert_true(pump(client_closed, 5 * SEC));
  assert_int_equal(P->s[CLI].close_reason, PRD_QUIC_CLOSE_RESET);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_handshake_and_auth, setup, teardown),
      cmocka_unit_test_setup_teardown(test_wrong_psk, setup, teardown),
      cmocka_unit_test_setup_teardown(test_wrong_pin, setup, teardown),
      cmocka_unit_test_setup_teardown(test_wrong_name, setup, teardown),
      cmocka_unit_test_setup_teardown(test_stream_data_and_fin_both_ways, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_empty_stream_fin, setup, teardown),
      cmocka_unit_test_setup_teardown(test_stream_limit_and_streams_available,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_reset_server_to_client, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_reset_client_to_server, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_stream_refused_by_client, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_detach_half_closed, setup, teardown),
      cmocka_unit_test_setup_teardown(test_flow_control_and_window_growth,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_close_by_server, setup, teardown),
      cmocka_unit_test_setup_teardown(test_close_by_client, setup, teardown),
      cmocka_unit_test_setup_teardown(test_refuse, setup, teardown),
      cmocka_unit_test_setup_teardown(test_goaway, setup, teardown),
      cmocka_unit_test_setup_teardown(test_idle_timeout, setup, teardown),
      cmocka_unit_test_setup_teardown(test_keepalive_keeps_it_open, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_peer_vanishes, setup, teardown),
      cmocka_unit_test_setup_teardown(test_no_answer_over_udp, setup, teardown),
      cmocka_unit_test_setup_teardown(test_server_handshake_timeout, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_close_from_callback, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_refuse_from_callback, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_handshake_loss, setup, teardown),
      cmocka_unit_test_setup_teardown(test_retry, setup, teardown),
      cmocka_unit_test_setup_teardown(test_loss_and_recovery, setup, teardown),
      cmocka_unit_test_setup_teardown(test_socket_full, setup, teardown),
      cmocka_unit_test_setup_teardown(test_stateless_reset_after_restart, setup,
                                      teardown),
  };
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
