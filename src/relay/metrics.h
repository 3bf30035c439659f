/* SPDX-License-Identifier: GPL-3.0-only */
/* Counters and the optional Prometheus text endpoint (libevent evhttp). */
#ifndef PRD_METRICS_H
#define PRD_METRICS_H

#include <stddef.h>
#include <stdint.h>

struct bufferevent;
struct event;
struct event_base;
struct evconnlistener;
struct evhttp;

/* One authenticated tunnel's transport figures, one series each. Client:
 * remote="HOST:PORT" as given; server: client="ADDR:PORT" (the client's
 * address) and conn="cN" (our name of the connection, unique). */
typedef struct prd_metrics_tunnel {
  char label[300]; /* client: the remote; server: the client's name */
  char peer[80];   /* server only: the client's address */
  char conn[24];   /* server only */
  uint64_t rtt_ns, cwnd;
  uint64_t max_udp_payload; /* bytes */
} prd_metrics_tunnel;

/* Why a UDP datagram was dropped (spec/10-udp.md), as the metric's reason
 * label says it (prd_metrics_udp_drop_names). */
enum {
  PRD_UDP_DROP_NO_CLIENT,       /* no client serves the service */
  PRD_UDP_DROP_FLOW_LIMIT,      /* a new flow over the limits */
  PRD_UDP_DROP_OVERSIZE,        /* too large for the path */
  PRD_UDP_DROP_CONGESTION,      /* the send queue was full */
  PRD_UDP_DROP_UNKNOWN_FLOW,    /* a flow ID this end does not know */
  PRD_UDP_DROP_UNKNOWN_SERVICE, /* client: a service it does not serve */
  PRD_UDP_DROP_MALFORMED,       /* not a valid message (spec/10-udp.md §3) */
  PRD_UDP_DROP_ALLOWLIST,       /* server: the source is not allowed */
  PRD_UDP_DROP_SOCKET,          /* a socket error (ICMP, descriptors) */
  PRD_UDP_DROP_N
};

typedef struct prd_metrics {
  int is_server;
  uint64_t conns_total, active, conns_failed;
  uint64_t bytes_up, bytes_down; /* TCP->QUIC, QUIC->TCP at this side */
  uint64_t auth_failures;
  uint64_t clients;      /* server: authenticated clients; client: tunnels up */
  uint64_t reconnects;   /* client */
  uint64_t tunnel_up;    /* client */
  uint64_t lost_closed;  /* lost packets of the connections already gone */
  uint64_t lost_packets; /* filled: lost_closed + the live connections' */
  /* TCP paths (spec/11-tcp-path.md). Client: 1 while its dial is on one,
   * and the moves between UDP and TCP; both: datagrams dropped on a full
   * TCP path queue. */
  uint64_t path_tcp;
  uint64_t path_switches;
  uint64_t tcp_path_drops;
  uint64_t tcp_paths; /* server: TCP paths open now */
  /* Per service (README "Services"): the names (the relay's, NULL-ended
   * at nsvc) and their counters, indexed like the relay's services. */
  const char *svc_names[16];
  size_t nsvc;
  uint64_t svc_total[16], svc_active[16];
  uint64_t svc_refused_allow[16]; /* server: closed at accept, allow= */
  /* UDP services (spec/10-udp.md), per service: datagrams and bytes
   * forwarded, [0] user -> destination, [1] back; drops by reason; flows
   * open now. svc_udp marks the UDP services. */
  int svc_udp[16];
  uint64_t udp_dgrams[2][16], udp_bytes[2][16];
  uint64_t udp_drops[PRD_UDP_DROP_N][16];
  uint64_t udp_flows[16];
  prd_metrics_tunnel *tunnels; /* filled before each answer */
  size_t ntunnels, captunnels;
  struct evhttp *http;
  /* the endpoint's limits (spec/08-security.md §3) */
  struct evconnlistener *listener;
  struct event *accept_retry; /* re-enables accept after EMFILE */
  struct event *sweep;        /* releases the connections evhttp freed */
  struct bufferevent **conns; /* connections open now, one reference each */
  size_t nconns, capconns;
  int paused;
  void (*fill)(void *arg, struct prd_metrics *m);
  void *fill_arg;
} prd_metrics;

/* The metrics endpoint serves at most this many connections at once; more
 * wait in the kernel's backlog (spec/08-security.md §3). */
#define PRD_METRICS_MAX_CONNS 16

void prd_metrics_init(prd_metrics *m, int is_server);

/* prd_metrics_add_tunnel (for |fill|): a zeroed series slot, or NULL when
 * out of memory. */
prd_metrics_tunnel *prd_metrics_add_tunnel(prd_metrics *m);

/* prd_metrics_listen serves GET /metrics on |addr| ("HOST:PORT",
 * "[V6]:PORT"). |fill| refreshes gauges before each answer (the tunnel list
 * is emptied before it is called). Returns 0 or -1 (logged). */
int prd_metrics_listen(prd_metrics *m, struct event_base *base,
                       const char *addr,
                       void (*fill)(void *arg, prd_metrics *m), void *arg);

void prd_metrics_free(prd_metrics *m);

#endif
