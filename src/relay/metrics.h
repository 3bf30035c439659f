/* SPDX-License-Identifier: GPL-3.0-only */
/* Counters and the optional Prometheus text endpoint (libevent evhttp). */
#ifndef PRD_METRICS_H
#define PRD_METRICS_H

#include <stdint.h>

struct event_base;
struct evhttp;

typedef struct prd_metrics {
  int is_server;
  uint64_t conns_total, active, conns_failed;
  uint64_t bytes_up, bytes_down; /* TCP->QUIC, QUIC->TCP at this side */
  uint64_t auth_failures;
  uint64_t clients;    /* server: authenticated clients; client: tunnels up */
  uint64_t reconnects; /* client */
  uint64_t tunnel_up;  /* client */
  uint64_t rtt_ns, cwnd;
  struct evhttp *http;
  void (*fill)(void *arg, struct prd_metrics *m);
  void *fill_arg;
} prd_metrics;

void prd_metrics_init(prd_metrics *m, int is_server);

/* prd_metrics_listen serves GET /metrics on |addr| ("HOST:PORT",
 * "[V6]:PORT"). |fill| refreshes gauges before each answer. Returns 0 or -1
 * (logged). */
int prd_metrics_listen(prd_metrics *m, struct event_base *base,
                       const char *addr,
                       void (*fill)(void *arg, prd_metrics *m), void *arg);

void prd_metrics_free(prd_metrics *m);

#endif
