/* SPDX-License-Identifier: GPL-3.0-only */
/* A server and clients of the transport adapter (src/quic/) in one
 * process: real endpoints joined by transmit() (the endpoint's test seam)
 * on a simulated network under a fake clock (prd_now_hook) that can delay,
 * drop, duplicate and reorder datagrams, the way ngtcp2's own tests drive
 * a connection. The callbacks play the relay: every byte received is
 * checked against pattern(), credit is returned or held back, streams are
 * detached as src/relay/tcp.c does. Used by test_quic.c and test_scheduler.c.
 *
 * A test runs between qp_setup and qp_teardown (cmocka fixtures, with
 * qp_group_setup / qp_group_teardown around the group): P->s[SRV] is the
 * server, P->s[CLI] the first client; set their cfg and P's network knobs,
 * then connect_pair() (or start_pair() and pump() to a predicate). */
#ifndef PRD_TEST_QUIC_PAIR_H
#define PRD_TEST_QUIC_PAIR_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/err.h"
#include "common/time.h"
#include "quic/identity.h"
#include "quic/quic.h"

#define MS PRD_NS_PER_MS
#define SEC PRD_NS_PER_S
#define NONE UINT64_MAX

enum { SRV = 0, CLI = 1 };

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
  /* the Stream Header's SERVICE and PORT_OFFSET as the client got them */
  int has_service, has_port_offset;
  char service[PRD_SERVICE_NAME_MAX + 1];
  uint16_t port_offset;
} app_stream;

/* ---- the sides: the server, then the clients ------------------------- */

#define MAX_CONNS 8
#define QP_MAX_SIDES 5 /* the server and up to four clients */

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
  prd_quic_close_kind close_reason; /* callbacks.closed's info */
  uint64_t close_code;
  int close_err;
  char close_msg[1200];
  prd_tstamp closed_at;
  unsigned want_writable;
  uint64_t refuse_code; /* client: stream_open answers this */
  int hold_credit;      /* new streams keep their credit */
  /* Close (1) or refuse (2) from inside a callback, as the relay does:
   * on the first stream data (client) or on authentication (server). */
  int close_in_callback;
  app_stream *streams;
  /* Named services (spec/02-framing.md §3.7). old_peer: the endpoint acts
   * as a peer of the first text (prd_quic_endpoint_set_features 0). */
  int old_peer;
  const char *const *known_services; /* server: accepted; NULL = all */
  size_t nknown_services;
  unsigned services_calls;
  unsigned services_before_auth; /* callbacks.services before authenticated */
  size_t nservices_seen;         /* the last call's names */
  char services_seen[16][PRD_SERVICE_NAME_MAX + 1];
  unsigned refused_calls; /* client: callbacks.service_refused */
  uint64_t refused_code;
  char refused_name[PRD_SERVICE_NAME_MAX + 1];
  /* Datagrams (spec/10-udp.md): callbacks.datagram's count and bytes, and
   * the payloads that were not dgram_pattern(). */
  unsigned dg_recv, dg_bad;
  uint64_t dg_bytes;
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
  side s[QP_MAX_SIDES];
  int nsides; /* the server, then clients 1.. */
  dgram *q;   /* in flight, by due time */
  /* the network */
  uint64_t delay_ns;          /* one way */
  unsigned loss_pct, dup_pct; /* per datagram */
  unsigned reorder_pct;       /* held back by up to reorder_ns */
  uint64_t reorder_ns;
  /* a bottleneck each way: datagrams leave at rate_bps (0: no limit) in
   * order, then take delay_ns; one that would wait more than queue_ns
   * (0: no limit) before it is dropped */
  uint64_t rate_bps, queue_ns;
  prd_tstamp link_free[QP_MAX_SIDES];
  int blackhole[QP_MAX_SIDES];    /* drop everything toward this side */
  unsigned drop_to[QP_MAX_SIDES]; /* drop the next n toward this side */
  unsigned pass_to[QP_MAX_SIDES]; /* let n more through, then none */
  int eagain[QP_MAX_SIDES];       /* this side's socket is full */
  uint32_t rng;
  int trace; /* PRD_TEST_TRACE set: every datagram and loss on stderr */
  /* counters */
  unsigned sent[QP_MAX_SIDES], dropped, duplicated, reordered, eagain_hits;
  unsigned gso_sends; /* sends of more than one datagram */
  size_t max_dgram[QP_MAX_SIDES];
} pair;

extern pair *P;
extern prd_tstamp fake_now; /* only moves forward, across tests too */
extern prd_identity ident, other_ident; /* the server's, and another */
extern uint8_t static_secret[32];
extern const uint8_t good_psk[33], bad_psk[33];

/* pattern: byte |off| of stream |id|'s payload. */
uint8_t pattern(int64_t id, uint64_t off);

int qp_setup(void **state);
int qp_teardown(void **state);
int qp_group_setup(void **state);
int qp_group_teardown(void **state);

void start_server(void); /* again after a restart: the same port */
void start_client(void);
void start_pair(void);
/* connect_pair starts both and runs until both are authenticated. */
void connect_pair(void);
/* add_client starts one more client; returns its side. */
int add_client(void);
/* server_conn_of: the server's connection of client side |cidx|. */
prd_quic_conn *server_conn_of(int cidx);

/* pump runs the network, timers and flushes until |done| returns true or
 * |limit| of fake time has passed (done == NULL: the whole |limit|).
 * Returns done's last answer. */
int pump(int (*done)(void), uint64_t limit);

int same_addr(const prd_sockaddr *a, const prd_sockaddr *b);

/* dgram_pattern fills |buf| with |len| bytes that the receiving side's
 * callback checks: the length in the first two bytes, then a pattern. */
void dgram_pattern(uint8_t *buf, size_t len);

/* Streams: the server opens; the client's end appears with the header. */
app_stream *app_new(side *sd, prd_qstream *st);
app_stream *open_stream(void);
/* open_stream_try: NULL when the stream cannot be opened (the peer's
 * stream limit, a closing connection). */
app_stream *open_stream_try(void);
/* open_stream_svc opens a stream whose header names |service| (NULL: no
 * SERVICE field) and |port_offset| (0: no PORT_OFFSET field); returns
 * prd_qstream_open's answer, and the stream in |*pa| when it is 0. */
int open_stream_svc(app_stream **pa, const char *service, uint16_t port_offset);
app_stream *peer_of(const app_stream *a);
app_stream *app_find(side *sd, int64_t id);
/* app_send queues |n| more bytes of pattern(), then FIN if |fin|, written
 * as send space allows (the relay's TCP reads). */
void app_send(app_stream *a, uint64_t n, int fin);
void app_feed(app_stream *a);
/* app_consume returns the credit held back (hold_credit). */
void app_consume(app_stream *a);

/* Predicates for pump. watched_done: watch_a (and watch_b) closed on both
 * sides. */
extern app_stream *watch_a, *watch_b;
int watched_done(void);
int both_authenticated(void);
int server_gone(void);
int client_gone(void);
int both_gone(void);

#endif
