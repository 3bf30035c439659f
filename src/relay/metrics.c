/* SPDX-License-Identifier: GPL-3.0-only */
/* Prometheus text exposition of the relay's counters. */
#include "metrics.h"

#include <dirent.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "../common/chunkbuf.h"
#include "../common/log.h"

void prd_metrics_init(prd_metrics *m, int is_server) {
  memset(m, 0, sizeof(*m));
  m->is_server = is_server;
}

prd_metrics_tunnel *prd_metrics_add_tunnel(prd_metrics *m) {
  prd_metrics_tunnel *t;
  if (m->ntunnels == m->captunnels) {
    size_t cap = m->captunnels ? 2 * m->captunnels : 16;
    t = realloc(m->tunnels, cap * sizeof(*t));
    if (t == NULL) {
      return NULL;
    }
    m->tunnels = t;
    m->captunnels = cap;
  }
  t = &m->tunnels[m->ntunnels++];
  memset(t, 0, sizeof(*t));
  return t;
}

/* The process_* figures Prometheus client libraries export, from /proc
 * (proc(5): /proc/self/stat fields 14 utime, 15 stime, 22 starttime in
 * clock ticks since boot, 23 vsize in bytes, 24 rss in pages). The start
 * time goes through CLOCK_BOOTTIME, not /proc/stat's btime, which the
 * units' ProcSubset=pid hides. */
typedef struct proc_stats {
  double cpu_s, start_time_s;
  uint64_t vsize, rss, open_fds, max_fds;
} proc_stats;

static void read_proc_stats(proc_stats *ps) {
  char buf[1024], *p;
  unsigned long utime = 0, stime = 0, vsize = 0;
  unsigned long long start = 0;
  struct timespec rt, bt;
  long rss = 0, tck = sysconf(_SC_CLK_TCK);
  struct rlimit rl;
  FILE *f;
  DIR *d;
  size_t n;

  memset(ps, 0, sizeof(*ps));
  if (tck <= 0) {
    tck = 100;
  }
  f = fopen("/proc/self/stat", "r");
  if (f != NULL) {
    n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = 0;
    fclose(f);
    /* The command name may hold spaces and ')': fields follow the last. */
    p = strrchr(buf, ')');
    if (p != NULL &&
        sscanf(p + 2,
               "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu %*d %*d "
               "%*d %*d %*d %*d %llu %lu %ld",
               &utime, &stime, &start, &vsize, &rss) == 5) {
      ps->cpu_s = (double)(utime + stime) / (double)tck;
      ps->vsize = vsize;
      ps->rss = (uint64_t)rss * (uint64_t)sysconf(_SC_PAGESIZE);
    }
  }
  if (clock_gettime(CLOCK_REALTIME, &rt) == 0 &&
      clock_gettime(CLOCK_BOOTTIME, &bt) == 0) {
    ps->start_time_s = (double)rt.tv_sec + (double)rt.tv_nsec / 1e9 -
                       ((double)bt.tv_sec + (double)bt.tv_nsec / 1e9) +
                       (double)start / (double)tck;
  }
  d = opendir("/proc/self/fd");
  if (d != NULL) {
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
      ps->open_fds += e->d_name[0] != '.';
    }
    closedir(d);
    ps->open_fds -= ps->open_fds > 0; /* opendir's own descriptor */
  }
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
    ps->max_fds = rl.rlim_cur;
  }
}

/* A metric without the portredirect_ prefix (the standard process_*). */
static void std_metric(struct evbuffer *b, const char *name, const char *type,
                       const char *help, double v) {
  evbuffer_add_printf(b, "# HELP %s %s\n# TYPE %s %s\n%s %.17g\n", name, help,
                      name, type, name, v);
}

#if defined(__has_feature)
#  if __has_feature(address_sanitizer)
#    define PRD_ASAN 1
#  endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#  define PRD_ASAN 1
#endif
#ifdef PRD_ASAN
/* gcc 12 ships the ASan runtime, which has this function, without the
 * header that declares it. */
#  if defined(__has_include)
#    if __has_include(<sanitizer/allocator_interface.h>)
#      include <sanitizer/allocator_interface.h>
#      define PRD_HAVE_ALLOCATOR_INTERFACE 1
#    endif
#  endif
#  ifndef PRD_HAVE_ALLOCATOR_INTERFACE
size_t __sanitizer_get_current_allocated_bytes(void);
#  endif
#endif

/* Bytes the program holds on the heap now: unlike RSS, this does not
 * depend on what the allocator keeps for later or returns to the system,
 * so a leak shows as growth here (tests/e2e/340). Under AddressSanitizer,
 * whose allocator replaces malloc, its own count. */
static uint64_t heap_bytes(void) {
#ifdef PRD_ASAN
  return (uint64_t)__sanitizer_get_current_allocated_bytes();
#else
  struct mallinfo2 mi = mallinfo2();
  return (uint64_t)mi.uordblks + (uint64_t)mi.hblkhd;
#endif
}

static void metric(struct evbuffer *b, const char *name, const char *type,
                   const char *help, uint64_t v) {
  evbuffer_add_printf(b,
                      "# HELP portredirect_%s %s\n# TYPE portredirect_%s %s\n"
                      "portredirect_%s %llu\n",
                      name, help, name, type, name, (unsigned long long)v);
}

/* A label value, escaped as the text format wants (\\, \", \n). */
static void label_value(struct evbuffer *b, const char *v) {
  for (; *v; ++v) {
    if (*v == '\\' || *v == '"') {
      evbuffer_add_printf(b, "\\%c", *v);
    } else if (*v == '\n') {
      evbuffer_add(b, "\\n", 2);
    } else {
      evbuffer_add(b, v, 1);
    }
  }
}

enum { TG_RTT_S, TG_CWND, TG_UDP_PAYLOAD };

/* A gauge with one series per tunnel (none when no tunnel is up). */
static void tunnel_gauge(struct evbuffer *b, const prd_metrics *m,
                         const char *name, const char *help, int what) {
  evbuffer_add_printf(b,
                      "# HELP portredirect_%s %s\n# TYPE portredirect_%s "
                      "gauge\n",
                      name, help, name);
  for (size_t i = 0; i < m->ntunnels; ++i) {
    const prd_metrics_tunnel *t = &m->tunnels[i];
    evbuffer_add_printf(b, "portredirect_%s{%s=\"", name,
                        m->is_server ? "client" : "remote");
    label_value(b, t->label);
    if (m->is_server) {
      /* client= is the client's name (spec/03-auth.md §4.1), peer= its
       * address, conn= the connection of the log lines. */
      evbuffer_add_printf(b, "\",peer=\"");
      label_value(b, t->peer);
      evbuffer_add_printf(b, "\",conn=\"");
      label_value(b, t->conn);
    }
    if (what == TG_RTT_S) {
      /* Prometheus base unit: seconds. */
      evbuffer_add_printf(b, "\"} %.9f\n", (double)t->rtt_ns / 1e9);
    } else {
      evbuffer_add_printf(
          b, "\"} %llu\n",
          (unsigned long long)(what == TG_CWND ? t->cwnd : t->max_udp_payload));
    }
  }
}

/* service_metric: one series per service, labelled service="NAME". */
static void service_metric(struct evbuffer *b, const prd_metrics *m,
                           const char *name, const char *type, const char *help,
                           const uint64_t *v) {
  evbuffer_add_printf(b,
                      "# HELP portredirect_%s %s\n# TYPE portredirect_%s %s\n",
                      name, help, name, type);
  for (size_t i = 0; i < m->nsvc; ++i) {
    evbuffer_add_printf(b, "portredirect_%s{service=\"", name);
    label_value(b, m->svc_names[i]);
    evbuffer_add_printf(b, "\"} %llu\n", (unsigned long long)v[i]);
  }
}

static const char *const udp_drop_names[PRD_UDP_DROP_N] = {
    "no_client",       "flow_limit", "oversize",  "congestion", "unknown_flow",
    "unknown_service", "malformed",  "allowlist", "socket"};

/* udp_series writes one series of a UDP service metric. */
static void udp_series(struct evbuffer *b, const prd_metrics *m,
                       const char *name, size_t svc, const char *label,
                       const char *value, uint64_t v) {
  evbuffer_add_printf(b, "portredirect_%s{service=\"", name);
  label_value(b, m->svc_names[svc]);
  if (label) {
    evbuffer_add_printf(b, "\",%s=\"%s", label, value);
  }
  evbuffer_add_printf(b, "\"} %llu\n", (unsigned long long)v);
}

/* udp_metrics: the UDP services' series (spec/10-udp.md), none without. */
static void udp_metrics(struct evbuffer *b, const prd_metrics *m) {
  static const char *const dirs[2] = {"up", "down"};
  size_t n = 0;
  for (size_t i = 0; i < m->nsvc; ++i) {
    n += m->svc_udp[i] != 0;
  }
  if (n == 0) {
    return;
  }
  evbuffer_add_printf(
      b, "# HELP portredirect_udp_datagrams_total UDP datagrams forwarded, "
         "per UDP service and direction (up: user to destination)\n"
         "# TYPE portredirect_udp_datagrams_total counter\n");
  for (size_t i = 0; i < m->nsvc; ++i) {
    for (int d = 0; d < 2 && m->svc_udp[i]; ++d) {
      udp_series(b, m, "udp_datagrams_total", i, "direction", dirs[d],
                 m->udp_dgrams[d][i]);
    }
  }
  evbuffer_add_printf(
      b, "# HELP portredirect_udp_bytes_total UDP payload bytes forwarded, "
         "per UDP service and direction (up: user to destination)\n"
         "# TYPE portredirect_udp_bytes_total counter\n");
  for (size_t i = 0; i < m->nsvc; ++i) {
    for (int d = 0; d < 2 && m->svc_udp[i]; ++d) {
      udp_series(b, m, "udp_bytes_total", i, "direction", dirs[d],
                 m->udp_bytes[d][i]);
    }
  }
  evbuffer_add_printf(
      b, "# HELP portredirect_udp_dropped_total UDP datagrams dropped, per "
         "UDP service and reason (unknown flows and malformed messages count "
         "under the first UDP service)\n"
         "# TYPE portredirect_udp_dropped_total counter\n");
  for (size_t i = 0; i < m->nsvc; ++i) {
    for (int k = 0; k < PRD_UDP_DROP_N && m->svc_udp[i]; ++k) {
      udp_series(b, m, "udp_dropped_total", i, "reason", udp_drop_names[k],
                 m->udp_drops[k][i]);
    }
  }
  evbuffer_add_printf(b, "# HELP portredirect_udp_flows_active UDP flows "
                         "open now, per UDP service\n"
                         "# TYPE portredirect_udp_flows_active gauge\n");
  for (size_t i = 0; i < m->nsvc; ++i) {
    if (m->svc_udp[i]) {
      udp_series(b, m, "udp_flows_active", i, NULL, NULL, m->udp_flows[i]);
    }
  }
}

static void on_metrics(struct evhttp_request *req, void *arg) {
  prd_metrics *m = arg;
  struct evbuffer *b;
  const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
  const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
  proc_stats ps;

  /* The path alone: a query string (/metrics?x=1) is ignored. */
  if (path == NULL || strcmp(path, "/metrics") != 0) {
    evhttp_send_error(req, HTTP_NOTFOUND, NULL);
    return;
  }
  m->ntunnels = 0;
  if (m->fill) {
    m->fill(m->fill_arg, m);
  }
  b = evbuffer_new();
  if (b == NULL) {
    evhttp_send_error(req, HTTP_INTERNAL, NULL);
    return;
  }
  metric(b, "connections_accepted_total", "counter",
         m->is_server ? "TCP connections accepted from users"
                      : "Tunneled streams received from servers",
         m->conns_total);
  metric(b, "connections_active", "gauge", "TCP connections open now",
         m->active);
  service_metric(b, m, "service_connections_accepted_total", "counter",
                 m->is_server ? "TCP connections accepted from users, per "
                                "service"
                              : "Tunneled streams received, per service",
                 m->svc_total);
  service_metric(b, m, "service_connections_active", "gauge",
                 "TCP connections open now, per service", m->svc_active);
  if (m->is_server) {
    evbuffer_add_printf(
        b, "# HELP portredirect_service_connections_refused_total User "
           "connections closed at accept, per service and reason "
           "(allowlist: the source is not in the service's allow=)\n"
           "# TYPE portredirect_service_connections_refused_total counter\n");
    for (size_t i = 0; i < m->nsvc; ++i) {
      evbuffer_add_printf(b, "portredirect_service_connections_refused_total"
                             "{service=\"");
      label_value(b, m->svc_names[i]);
      evbuffer_add_printf(b, "\",reason=\"allowlist\"} %llu\n",
                          (unsigned long long)m->svc_refused_allow[i]);
    }
  }
  udp_metrics(b, m);
  metric(b, "connections_failed_total", "counter",
         "TCP connections that ended in an error (destination unreachable, "
         "no client, tunnel lost, ...); not those the user reset",
         m->conns_failed);
  metric(b, "bytes_received_total", "counter",
         "Bytes read from local TCP sockets into the tunnel", m->bytes_up);
  metric(b, "bytes_sent_total", "counter",
         "Bytes written from the tunnel to local TCP sockets", m->bytes_down);
  metric(b, "auth_failures_total", "counter",
         "Connections closed because authentication failed", m->auth_failures);
  metric(b, "clients_connected", "gauge",
         m->is_server ? "Authenticated clients connected"
                      : "Authenticated tunnels up",
         m->clients);
  metric(b, "reconnects_total", "counter", "Tunnel reconnect attempts",
         m->reconnects);
  metric(b, "tunnel_up", "gauge", "1 when at least one tunnel is up",
         m->is_server ? (m->clients > 0) : m->tunnel_up);
  if (!m->is_server) {
    evbuffer_add_printf(b,
                        "# HELP portredirect_quic_path 1 for the packet path "
                        "in use (spec/11-tcp-path.md)\n"
                        "# TYPE portredirect_quic_path gauge\n"
                        "portredirect_quic_path{path=\"udp\"} %d\n"
                        "portredirect_quic_path{path=\"tcp\"} %d\n",
                        m->path_tcp ? 0 : 1, m->path_tcp ? 1 : 0);
    metric(b, "quic_path_switches_total", "counter",
           "Moves of the tunnel between UDP and TCP", m->path_switches);
  }
  if (m->is_server) {
    metric(b, "quic_tcp_paths", "gauge",
           "TCP paths (QUIC over TCP, spec/11-tcp-path.md) open now",
           m->tcp_paths);
  }
  metric(b, "quic_tcp_path_drops_total", "counter",
         "QUIC datagrams dropped because a TCP path's queue was full",
         m->tcp_path_drops);
  tunnel_gauge(b, m, "quic_rtt_seconds",
               m->is_server ? "Smoothed RTT of each authenticated client's "
                              "QUIC connection"
                            : "Smoothed RTT of each server's tunnel (while up)",
               TG_RTT_S);
  tunnel_gauge(b, m, "quic_cwnd_bytes",
               m->is_server ? "Congestion window of each authenticated "
                              "client's QUIC connection"
                            : "Congestion window of each server's tunnel "
                              "(while up)",
               TG_CWND);
  tunnel_gauge(b, m, "quic_max_udp_payload_bytes",
               "Largest UDP payload sent on the tunnel's path now (path MTU "
               "discovery raises it from 1200; 65000 on loopback)",
               TG_UDP_PAYLOAD);
  metric(b, "quic_lost_packets_total", "counter",
         "QUIC packets carrying stream frames (data or control stream) "
         "declared lost, as ngtcp2 counts them per stream, spurious losses "
         "included; packets with only ACK, handshake or other frames are "
         "not counted",
         m->lost_packets);
  metric(b, "buffer_bytes", "gauge", "Bytes held in stream buffers",
         prd_chunk_bytes_in_use);
  metric(b, "heap_allocated_bytes", "gauge",
         "Bytes allocated on the heap now (malloc); unlike RSS, not what the "
         "allocator keeps in reserve, so a leak shows as growth here",
         heap_bytes());
  read_proc_stats(&ps);
  std_metric(b, "process_cpu_seconds_total", "counter",
             "Total user and system CPU time spent in seconds.", ps.cpu_s);
  std_metric(b, "process_open_fds", "gauge", "Number of open file descriptors.",
             (double)ps.open_fds);
  std_metric(b, "process_max_fds", "gauge",
             "Maximum number of open file descriptors.", (double)ps.max_fds);
  std_metric(b, "process_virtual_memory_bytes", "gauge",
             "Virtual memory size in bytes.", (double)ps.vsize);
  std_metric(b, "process_resident_memory_bytes", "gauge",
             "Resident memory size in bytes.", (double)ps.rss);
  std_metric(b, "process_start_time_seconds", "gauge",
             "Start time of the process since unix epoch in seconds.",
             ps.start_time_s);
  evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                    "text/plain; version=0.0.4");
  evhttp_send_reply(req, HTTP_OK, "OK", b);
  evbuffer_free(b);
}

/* ---- limits of the endpoint (spec/08-security.md §3) ------------------ */

/* A request is a request line and a few headers, without a body. */
#define METRICS_MAX_HEADERS_BYTES 8192
#define METRICS_MAX_BODY_BYTES 1024
#define METRICS_TIMEOUT_S 5

static void metrics_accept_update(prd_metrics *m) {
  int want;
  if (m->listener == NULL) {
    return; /* being freed */
  }
  want = m->nconns < PRD_METRICS_MAX_CONNS &&
         !evtimer_pending(m->accept_retry, NULL);
  if (want && m->paused) {
    m->paused = 0;
    evconnlistener_enable(m->listener);
  } else if (!want && !m->paused) {
    m->paused = 1;
    evconnlistener_disable(m->listener);
  }
}

/* libevent 2.1 has no connection cap for evhttp and tells nobody when it
 * frees a connection. We hold a reference on each connection's bufferevent;
 * evhttp's bufferevent_free clears its callbacks but leaves it (and its
 * socket, already shut down for writing) to us. Once a second we release
 * the ones evhttp let go. Beyond the cap the listener pauses and new
 * connections wait in the kernel's backlog. */
static void metrics_sweep(evutil_socket_t fd, short what, void *arg) {
  prd_metrics *m = arg;
  size_t i = 0;
  (void)fd;
  (void)what;
  while (i < m->nconns) {
    bufferevent_event_cb eventcb;
    void *cbarg;
    bufferevent_getcb(m->conns[i], NULL, NULL, &eventcb, &cbarg);
    if (eventcb == NULL && cbarg == NULL) {
      bufferevent_decref(m->conns[i]);
      m->conns[i] = m->conns[--m->nconns];
    } else {
      ++i;
    }
  }
  metrics_accept_update(m);
  if (m->nconns == 0) {
    evtimer_del(m->sweep);
  }
}

static struct bufferevent *metrics_new_bev(struct event_base *base, void *arg) {
  prd_metrics *m = arg;
  struct bufferevent *bev;
  if (m->nconns == m->capconns) {
    size_t cap = m->capconns ? 2 * m->capconns : PRD_METRICS_MAX_CONNS;
    struct bufferevent **p = realloc(m->conns, cap * sizeof(*p));
    if (p == NULL) {
      return NULL;
    }
    m->conns = p;
    m->capconns = cap;
  }
  bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
  if (bev == NULL) {
    return NULL;
  }
  bufferevent_incref(bev);
  m->conns[m->nconns++] = bev;
  if (!evtimer_pending(m->sweep, NULL)) {
    struct timeval tv = {1, 0};
    evtimer_add(m->sweep, &tv);
  }
  metrics_accept_update(m);
  return bev;
}

static void metrics_accept_retry(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  metrics_accept_update(arg);
}

/* accept() failed (EMFILE): pause for a second instead of spinning. */
static void metrics_accept_error(struct evconnlistener *l, void *arg) {
  prd_metrics *m = arg;
  struct timeval tv = {1, 0};
  int err = EVUTIL_SOCKET_ERROR();
  (void)l;
  if (!evtimer_pending(m->accept_retry, NULL)) {
    PRD_LOG_WARN("metrics: accept: %s; pausing for a second",
                 evutil_socket_error_to_string(err));
  }
  evtimer_add(m->accept_retry, &tv);
  metrics_accept_update(m);
}

int prd_metrics_listen(prd_metrics *m, struct event_base *base,
                       const char *addr,
                       void (*fill)(void *arg, prd_metrics *m), void *arg) {
  char host[300];
  const char *colon = strrchr(addr, ':');
  struct evhttp_bound_socket *bound;
  unsigned port;
  size_t hl;

  if (colon == NULL || sscanf(colon + 1, "%u", &port) != 1 || port > 65535) {
    PRD_LOG_ERROR("--metrics-listen: invalid address \"%s\"", addr);
    return -1;
  }
  hl = (size_t)(colon - addr);
  if (hl >= sizeof(host)) {
    return -1;
  }
  memcpy(host, addr, hl);
  host[hl] = 0;
  if (host[0] == '[' && hl >= 2 && host[hl - 1] == ']') {
    memmove(host, host + 1, hl - 2);
    host[hl - 2] = 0;
  }
  m->http = evhttp_new(base);
  if (m->http == NULL) {
    return -1;
  }
  m->fill = fill;
  m->fill_arg = arg;
  evhttp_set_gencb(m->http, on_metrics, m);
  evhttp_set_max_headers_size(m->http, METRICS_MAX_HEADERS_BYTES);
  evhttp_set_max_body_size(m->http, METRICS_MAX_BODY_BYTES);
  evhttp_set_timeout(m->http, METRICS_TIMEOUT_S);
  evhttp_set_allowed_methods(m->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD);
  evhttp_set_bevcb(m->http, metrics_new_bev, m);
  m->accept_retry = evtimer_new(base, metrics_accept_retry, m);
  m->sweep = event_new(base, -1, EV_PERSIST, metrics_sweep, m);
  if (m->accept_retry == NULL || m->sweep == NULL) {
    PRD_LOG_ERROR("cannot serve metrics on %s (--metrics-listen): out of "
                  "memory",
                  addr);
    prd_metrics_free(m);
    return -1;
  }
  bound = evhttp_bind_socket_with_handle(m->http, host, (uint16_t)port);
  if (bound == NULL) {
    /* libevent leaves bind's errno (its cleanup is a close). */
    PRD_LOG_ERROR("cannot serve metrics on %s (--metrics-listen): %s", addr,
                  strerror(errno));
    prd_metrics_free(m);
    return -1;
  }
  m->listener = evhttp_bound_socket_get_listener(bound);
  evconnlistener_set_error_cb(m->listener, metrics_accept_error);
  PRD_LOG_INFO("metrics on http://%s/metrics", addr);
  return 0;
}

void prd_metrics_free(prd_metrics *m) {
  m->listener = NULL;
  if (m->http) {
    evhttp_free(m->http);
    m->http = NULL;
  }
  if (m->accept_retry) {
    event_free(m->accept_retry);
    m->accept_retry = NULL;
  }
  if (m->sweep) {
    event_free(m->sweep);
    m->sweep = NULL;
  }
  /* evhttp_free freed every connection: drop our references. */
  for (size_t i = 0; i < m->nconns; ++i) {
    bufferevent_decref(m->conns[i]);
  }
  free(m->conns);
  m->conns = NULL;
  m->nconns = m->capconns = 0;
  free(m->tunnels);
  m->tunnels = NULL;
  m->ntunnels = m->captunnels = 0;
}
