/* SPDX-License-Identifier: GPL-3.0-only */
/* The in-process pair harness (quic_pair.h). */
#include <stddef.h>
#include <stdint.h>

#ifdef PRD_QP_NO_CMOCKA
/* Outside cmocka (fuzz/fuzz_pair.c): a failed check aborts, which the
 * fuzzer reports as a crash. */
#  include <stdio.h>
#  include <stdlib.h>
#  define qp_check(ok)                                                         \
    ((ok) ? (void)0                                                            \
          : (fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__,  \
                     #ok),                                                     \
             abort()))
#  define assert_true(c) qp_check(c)
#  define assert_false(c) qp_check(!(c))
#  define assert_non_null(p) qp_check((p) != NULL)
#  define assert_int_equal(a, b) qp_check((uintmax_t)(a) == (uintmax_t)(b))
#else
#  include <setjmp.h>
#  include <stdarg.h>

#  include <cmocka.h>
#endif

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

#include "common/chunkbuf.h"
#include "common/log.h"
#include "helpers/quic_pair.h"

/* ---- fake clock --------------------------------------------------------- */

/* It only moves forward, across tests too: the endpoint's per-address
 * rate limit is keyed by time. */
prd_tstamp fake_now = 1000 * SEC;

static prd_tstamp fake_clock(void) { return fake_now; }

uint8_t pattern(int64_t id, uint64_t off) {
  return (uint8_t)((off + (uint64_t)id * 13) % 251);
}

pair *P;

/* Fixtures made once: the server's identity and another one (a wrong pin). */
static char tmpdir[PATH_MAX];
prd_identity ident, other_ident;
uint8_t static_secret[32];
const uint8_t good_psk[] = "0123456789abcdef0123456789abcdef";
const uint8_t bad_psk[] = "0123456789abcdef0123456789abcdeX";

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

app_stream *app_new(side *sd, prd_qstream *st) {
  app_stream *a = calloc(1, sizeof(*a));
  assert_non_null(a);
  a->side = sd->idx;
  a->st = st;
  a->id = st ? prd_qstream_id(st) : -1;
  a->hold_credit = sd->hold_credit;
  a->next = sd->streams;
  sd->streams = a;
  return a;
}

/* app_feed writes what the stream may take now (prd_qstream_send_space),
 * as the relay does from its TCP socket. */
void app_feed(app_stream *a) {
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
    assert_int_equal(prd_qstream_reserve(st, &p, &avail, 1), 0);
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
    prd_qstream_commit(st, n);
    a->src_off += n;
    more = 1;
  }
  if (a->src_off == a->src_total && a->src_fin) {
    prd_qstream_shutdown_write(st);
  } else if (more) {
    prd_qstream_mark_ready(st);
  }
}

void app_send(app_stream *a, uint64_t n, int fin) {
  a->src_total += n;
  a->src_fin = fin;
  app_feed(a);
}

void app_consume(app_stream *a) {
  if (a->st && a->unconsumed) {
    prd_qstream_consumed(a->st, a->unconsumed);
  }
  a->unconsumed = 0;
}

app_stream *app_find(side *sd, int64_t id) {
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
  prd_qstream_set_user(st, app_new(sd, st));
  {
    app_stream *a = prd_qstream_user(st);
    a->has_service = hd->has_service;
    memcpy(a->service, hd->service, sizeof(a->service));
    a->has_port_offset = hd->has_port_offset;
    a->port_offset = hd->port_offset;
  }
  return 0;
}

static void cb_services(prd_quic_conn *qc, const char *const *names, size_t n,
                        uint64_t *codes, void *ud) {
  side *sd = ud;
  (void)qc;
  ++sd->services_calls;
  if (sd->authenticated == 0) {
    ++sd->services_before_auth;
  }
  sd->nservices_seen = 0;
  for (size_t i = 0; i < n; ++i) {
    assert_true(prd_service_name_valid(names[i], strlen(names[i])));
    if (i < 16) {
      snprintf(sd->services_seen[i], sizeof(sd->services_seen[i]), "%s",
               names[i]);
      sd->nservices_seen = i + 1;
    }
    if (sd->known_services != NULL) {
      size_t k;
      for (k = 0; k < sd->nknown_services; ++k) {
        if (strcmp(sd->known_services[k], names[i]) == 0) {
          break;
        }
      }
      codes[i] = k < sd->nknown_services ? 0 : PRD_APP_UNKNOWN_SERVICE;
    }
  }
}

static void cb_service_refused(prd_quic_conn *qc, const char *name,
                               uint64_t code, void *ud) {
  side *sd = ud;
  (void)qc;
  assert_true(sd->authenticated > 0);
  ++sd->refused_calls;
  sd->refused_code = code;
  snprintf(sd->refused_name, sizeof(sd->refused_name), "%s", name);
}

void dgram_pattern(uint8_t *buf, size_t len) {
  for (size_t i = 0; i < len; ++i) {
    buf[i] = i == 0   ? (uint8_t)(len >> 8)
             : i == 1 ? (uint8_t)len
                      : (uint8_t)(i * 7 + 3);
  }
}

static void cb_datagram(prd_quic_conn *qc, const uint8_t *data, size_t len,
                        void *ud) {
  side *sd = ud;
  uint8_t want[2048];
  (void)qc;
  assert_true(sd->authenticated > 0);
  ++sd->dg_recv;
  sd->dg_bytes += len;
  if (len < 2 || len > sizeof(want)) {
    ++sd->dg_bad;
    return;
  }
  dgram_pattern(want, len);
  if (memcmp(want, data, len) != 0) {
    ++sd->dg_bad;
  }
}

static int cb_stream_data(prd_qstream *st, const uint8_t *data, size_t len,
                          int fin, void *ud) {
  app_stream *a = prd_qstream_user(st);
  side *sd = ud;
  assert_non_null(a);
  assert_false(a->rx_fin); /* nothing after FIN */
  if (sd->close_in_callback == 1) {
    prd_quic_conn_close(prd_qstream_conn(st), PRD_APP_PROTOCOL_ERROR,
                        "from a callback");
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
  app_stream *a = prd_qstream_user(st);
  (void)ud;
  a->reset = 1;
  a->reset_code = app_err;
}

static void cb_stream_writable(prd_qstream *st, void *ud) {
  app_stream *a = prd_qstream_user(st);
  (void)ud;
  ++a->writable;
  app_feed(a);
}

static void cb_stream_close(prd_qstream *st, uint64_t app_err, void *ud) {
  app_stream *a = prd_qstream_user(st);
  (void)ud;
  app_consume(a);
  a->closed = 1;
  a->close_code = app_err;
  a->st = NULL;
  prd_qstream_set_user(st, NULL);
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

static void cb_closed(prd_quic_conn *qc, const prd_quic_close_info *ci,
                      void *ud) {
  side *sd = ud;
  tracked *t = track_find(sd, qc);
  assert_non_null(t);
  t->qc = NULL;
  if (sd->qc == qc) {
    sd->qc = NULL;
  }
  ++sd->closed;
  sd->close_reason = ci->kind;
  sd->close_code = ci->code;
  sd->close_err = ci->err;
  sd->closed_at = fake_now;
  snprintf(sd->close_msg, sizeof(sd->close_msg), "%s", ci->msg);
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

int same_addr(const prd_sockaddr *a, const prd_sockaddr *b) {
  return a->u.sa.sa_family == AF_INET && b->u.sa.sa_family == AF_INET &&
         a->u.in.sin_addr.s_addr == b->u.in.sin_addr.s_addr &&
         a->u.in.sin_port == b->u.in.sin_port;
}

static ssize_t transmit(prd_quic_endpoint *ep, const prd_sockaddr *local,
                        const prd_sockaddr *remote, const uint8_t *data,
                        size_t len, size_t segsize, void *arg) {
  side *from = arg;
  int to = SRV;
  (void)ep;
  if (from->idx == SRV) {
    /* To the client at |remote|. */
    for (to = CLI; to < P->nsides && !same_addr(remote, &P->s[to].addr); ++to) {
    }
    assert_true(to < P->nsides);
  }
  assert_true(segsize > 0 && len > 0);
  if (P->eagain[from->idx]) {
    ++P->eagain_hits;
    return -EAGAIN;
  }
  if (len > segsize) {
    ++P->gso_sends;
  }
  if (P->trace) {
    fprintf(stderr, "%llu.%03llu %s %zu bytes in datagrams of %zu\n",
            (unsigned long long)(fake_now / SEC),
            (unsigned long long)(fake_now / MS % 1000),
            from->idx == SRV ? "server>" : "client>", len, segsize);
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
      if (P->trace) {
        fprintf(stderr, "  datagram %zu lost\n", off / segsize);
      }
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
    if (P->rate_bps) {
      prd_tstamp start =
          P->link_free[to] > fake_now ? P->link_free[to] : fake_now;
      if (P->queue_ns && start - fake_now > P->queue_ns) {
        ++P->dropped;
        continue;
      }
      P->link_free[to] = start + (prd_tstamp)(n * 8 * SEC / P->rate_bps);
      due = P->link_free[to] + P->delay_ns;
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
    for (int s = 0; s < P->nsides; ++s) {
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
  for (int s = 0; s < P->nsides; ++s) {
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
int pump(int (*done)(void), uint64_t limit) {
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
    for (int s = 0; s < P->nsides; ++s) {
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
  sd->cb.services = idx == SRV ? cb_services : NULL;
  sd->cb.service_refused = idx == SRV ? NULL : cb_service_refused;
  sd->cb.datagram = cb_datagram;
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

int qp_setup(void **state) {
  (void)state;
  P = calloc(1, sizeof(*P));
  assert_non_null(P);
  P->delay_ns = 10 * MS;
  P->reorder_ns = 20 * MS;
  P->rng = 2463534242u;
  P->trace = getenv("PRD_TEST_TRACE") != NULL;
  for (int s = 0; s < QP_MAX_SIDES; ++s) {
    side_init(&P->s[s], s);
  }
  P->nsides = 2;
  return 0;
}

void start_server(void) {
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
  if (s->old_peer) {
    prd_quic_endpoint_set_features(s->ep, 0);
  }
}

static void start_client_n(int idx) {
  side *c = &P->s[idx];
  prd_quic_conn *qc;
  assert_int_equal(
      prd_quic_endpoint_new_client(&c->ep, &qc, &c->cfg, NULL, &P->s[SRV].addr),
      0);
  local_addr(c->ep, &c->addr);
  prd_quic_endpoint_set_transmit(c->ep, transmit, c);
  if (c->old_peer) {
    prd_quic_endpoint_set_features(c->ep, 0);
  }
  c->qc = qc;
  track(c, qc)->flush = 1; /* the relay flushes a new connection */
}

void start_client(void) { start_client_n(CLI); }

int add_client(void) {
  int idx = P->nsides;
  assert_true(idx < QP_MAX_SIDES);
  ++P->nsides;
  start_client_n(idx);
  return idx;
}

prd_quic_conn *server_conn_of(int cidx) {
  for (size_t i = 0; i < MAX_CONNS; ++i) {
    prd_quic_conn *qc = P->s[SRV].conns[i].qc;
    if (qc && same_addr(prd_quic_conn_remote(qc), &P->s[cidx].addr)) {
      return qc;
    }
  }
  return NULL;
}

void start_pair(void) {
  start_server();
  start_client();
}

int both_authenticated(void) {
  return P->s[SRV].authenticated && P->s[CLI].authenticated;
}

void connect_pair(void) {
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

int qp_teardown(void **state) {
  (void)state;
  /* Endpoints first: their connections call back into the streams. */
  for (int s = 0; s < P->nsides; ++s) {
    prd_quic_endpoint_del(P->s[s].ep);
    P->s[s].ep = NULL;
  }
  for (int s = 0; s < P->nsides; ++s) {
    free_streams(&P->s[s]);
  }
  while (P->q) {
    dgram *d = P->q;
    P->q = d->next;
    free(d);
  }
  free(P);
  P = NULL;
  /* Every send buffer and held byte went back (the relay's too). */
  assert_int_equal(prd_chunk_bytes_in_use, 0);
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

int qp_group_setup(void **state) {
  static const char *const names[] = {"localhost", "127.0.0.1"};
  char dir[PATH_MAX], err[512];
  const char *base = getenv("TMPDIR");
  (void)state;
  snprintf(tmpdir, sizeof(tmpdir), "%s/quic_pair.XXXXXX",
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
  /* Failures are expected here; keep the output to cmocka's unless
   * PRD_TEST_LOG is set (to a level, "trace" say, or to anything for the
   * default). */
  if (getenv("PRD_TEST_LOG") == NULL) {
    prd_log_threshold = PRD_LOG_OFF;
  } else {
    (void)prd_log_level_parse(&prd_log_threshold, getenv("PRD_TEST_LOG"));
  }
  return 0;
}

int qp_group_teardown(void **state) {
  (void)state;
  prd_now_hook = NULL;
  prd_identity_free(&ident);
  prd_identity_free(&other_ident);
  rm_rf(tmpdir);
  return 0;
}

/* ---- helpers for the tests ---------------------------------------------- */

app_stream *open_stream_try(void) {
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
  if (prd_qstream_open(&st, P->s[SRV].qc, &hd, a) != 0) {
    P->s[SRV].streams = a->next; /* app_new put it first */
    free(a);
    return NULL;
  }
  a->st = st;
  a->id = prd_qstream_id(st);
  return a;
}

app_stream *open_stream(void) {
  app_stream *a = open_stream_try();
  assert_non_null(a);
  return a;
}

int open_stream_svc(app_stream **pa, const char *service,
                    uint16_t port_offset) {
  prd_stream_header hd;
  prd_qstream *st = NULL;
  app_stream *a;
  int rv;
  memset(&hd, 0, sizeof(hd));
  hd.version = PRD_PROTOCOL_VERSION;
  hd.has_src = 1;
  hd.src.family = 4;
  hd.src.addr[0] = 127;
  hd.src.addr[3] = 1;
  hd.src.port = 40000;
  if (service != NULL) {
    hd.has_service = 1;
    hd.servicelen = strlen(service);
    memcpy(hd.service, service, hd.servicelen);
  }
  if (port_offset != 0) {
    hd.has_port_offset = 1;
    hd.port_offset = port_offset;
  }
  a = app_new(&P->s[SRV], NULL);
  rv = prd_qstream_open(&st, P->s[SRV].qc, &hd, a);
  if (rv != 0) {
    /* The app side was never attached: drop it as the relay would. */
    a->closed = 1;
    *pa = NULL;
    return rv;
  }
  a->st = st;
  a->id = prd_qstream_id(st);
  *pa = a;
  return 0;
}

/* The client's end of server stream |a| (NULL until its header arrived). */
app_stream *peer_of(const app_stream *a) {
  return app_find(&P->s[a->side == SRV ? CLI : SRV], a->id);
}

app_stream *watch_a, *watch_b;

int watched_done(void) {
  app_stream *pa = peer_of(watch_a);
  app_stream *pb = watch_b ? peer_of(watch_b) : NULL;
  return watch_a->closed && pa && pa->closed &&
         (watch_b == NULL || (watch_b->closed && pb && pb->closed));
}

int server_gone(void) { return P->s[SRV].closed > 0; }
int client_gone(void) { return P->s[CLI].closed > 0; }
int both_gone(void) { return server_gone() && client_gone(); }
