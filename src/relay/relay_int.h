/* SPDX-License-Identifier: GPL-3.0-only */
/* The relay's private declarations, shared by its files and by
 * tests/unit/test_scheduler.c: loop.c (event base, signals, each QUIC
 * connection's timer and flush events, shutdown and drain), tunnel.c (what
 * server and client tunnels share), tcp.c (the TCP side of a stream),
 * server.c (listener and scheduler) and client.c (the dialer). tcp.c,
 * tunnel.c and loop.c know neither role: what differs goes through
 * relay_role. */
#ifndef PRD_RELAY_INT_H
#define PRD_RELAY_INT_H

#include <event2/dns.h>
#include <event2/event.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/time.h>

#include "../common/chunkbuf.h"
#include "metrics.h"
#include "relay.h"

#define BACKOFF_MIN_MS 500
#define BACKOFF_MAX_MS 30000
/* A drain keeps pending users waiting at most this long beyond their own
 * --pending-timeout: a client that sent GOAWAY but never leaves must not
 * hold them for ever. */
#define PEND_DRAIN_MAX_NS (60 * PRD_NS_PER_S)

typedef struct relay relay;
typedef struct tunnel tunnel;
typedef struct tcpc tcpc;
typedef struct qtcp qtcp; /* a TCP path (qtcp.c) */

/* The server's TCP listener of one port of one service. */
typedef struct listener {
  relay *r;
  int fd;
  prd_sockaddr addr; /* what it is bound to */
  struct event *ev;
  uint16_t svc;    /* index in r->cfg->services */
  uint16_t off;    /* port offset in the service's range */
  uint32_t routes; /* services sharing this address by sni=/host= (bits
                      of cfg->services); 0: svc alone, no peek */
} listener;

/* relay_role: what the shared files need from the server or the client.
 * tcp_unlink, tcp_freed and stop may be NULL (nothing to do); the client
 * alone connects, so only it needs tcp_connect_failed. */
typedef struct relay_role {
  const char *peer; /* the other side, in logs: "client" or "server" */
  /* The code a local TCP error resets the stream with (spec/05-errors.md). */
  uint64_t local_reset_code;
  /* tcp_label returns what |tc|'s TCP side is connected to, for its log
   * lines, written into |buf| if need be. */
  const char *(*tcp_label)(tcpc *tc, char *buf, size_t buflen);
  /* 1 when the TCP side is the user's: the byte counts in the logs are
   * named from the user's side. */
  int tcp_is_user;
  /* tcp_unlink: |tc| is closing: it leaves the role's queues. */
  void (*tcp_unlink)(tcpc *tc);
  /* tcp_freed: a TCP connection is gone (a paused accept may resume). */
  void (*tcp_freed)(relay *r);
  /* tcp_connect_failed: |tc|'s connect failed (its socket is closed, its
   * events freed): dial the next address, or close |tc|. */
  void (*tcp_connect_failed)(tcpc *tc);
  /* stop: a drain begins (start_shutdown), before the GOAWAYs. */
  void (*stop)(relay *r);
  /* reload: apply |next|, the configuration SIGHUP read again (README
   * "Reload"); what cannot change live is logged and kept. Returns 0, or
   * -1 (logged) when it refused |next| whole and applied nothing. */
  int (*reload)(relay *r, prd_relay_config *next);
} relay_role;

extern const relay_role prd_relay_server_role;
extern const relay_role prd_relay_client_role;

struct tunnel {
  relay *r;
  prd_quic_endpoint *ep; /* client: its own; server: NULL */
  prd_quic_conn *qc;
  struct event *timer, *flush_ev;
  int timer_fd;           /* the QUIC connection's timer (tunnel_events) */
  prd_tstamp timer_armed; /* its expiry, 0 when not armed */
  struct event *udp_rev, *udp_wev, *retry_ev; /* client */
  prd_quic_endpoint *dead_ep;                 /* client: freed on retry */
  tunnel *next, *prev;                        /* r->tunnels; prev: server */
  prd_relay_remote *remote;                   /* client */
  struct event *dial_ev;                      /* client: per-address timeout */
  size_t addr_idx;  /* client: the address of remote->addrs being dialed */
  int resolve_next; /* client: resolve the host again before the next dial */
  struct evdns_getaddrinfo_request *dns_req; /* client: resolving */
  int dns_now; /* client: inside evdns_getaddrinfo (it may answer at once) */
  uint64_t backoff_ms;
  prd_tstamp up_since;
  int authenticated;
  size_t active;            /* TCP connections on this tunnel */
  prd_tstamp suspect_since; /* server: a stream went unacknowledged */
  prd_tstamp psk_err_at;    /* client: when the PSK error was last logged */
  /* server: named services (spec/02-framing.md §3.7). A client that did
   * not negotiate them serves the service default at offset 0 only; one
   * that did serves the services of svc_mask (bits of cfg->services). */
  int svc_negotiated;
  uint32_t svc_mask;
  int svc_refused_logged;
  /* server: the client's identity (spec/03-auth.md §4.1): its name, and the
   * services of cfg->services it may NOT serve (bits; 0: all), from
   * cfg->clients at authentication; it is given no stream of those. */
  char client[PRD_RELAY_CLIENT_NAME_MAX + 1];
  uint32_t svc_denied;
  int svc_denied_logged;
  int svc_warned; /* client: "does not support named services" logged */
  /* server: the names of its last SERVICES, for a reload to match them
   * against the services again */
  char svc_declared[PRD_RELAY_MAX_SERVICES][64];
  size_t nsvc_declared;
  uint64_t udp_next_id; /* server: the next UDP flow ID (spec/10-udp.md) */
  /* client: the TCP path (spec/11-tcp-path.md, qtcp.c) */
  qtcp *qt;                     /* the dial's TCP path, NULL on UDP */
  struct event *qtcp_timer;     /* the server's preface is due */
  struct event *udp_timer;      /* auto: UDP gave no answer in time */
  int use_tcp;                  /* the next dial goes over TCP */
  int tcp_no_path;              /* this dial found no TCP path at the server */
  int tcp_no_path_logged;       /* "offers no TCP path" said once */
  prd_tstamp no_tcp_until;      /* auto: no TCP path tried before then */
  prd_tstamp udp_suspect_since; /* auto, on UDP: nothing acknowledged since */
  prd_tstamp ack_probe_at;      /* auto, on UDP: the last PING we asked for */
  int udp_refused;              /* auto: this dial's UDP was refused (ICMP) */
  int tcp_refused;              /* the TCP path's connect was refused */
  int refused_warned;           /* "UDP refused ... using TCP" said once */
  int switch_now;               /* dial again at once, on the other path */
  qtcp *qt_old; /* a path left for UDP, read until qt_old_until */
  prd_tstamp qt_old_until;
  struct event *path_ev; /* auto: the path policy's tick (client.c) */
  /* auto, on TCP: the UDP probe (qtcp_probe_send), its socket, when it was
   * sent, whether it was answered, answers in a row, the next one */
  int probe_fd;
  struct event *probe_ev;
  prd_tstamp probe_sent, probe_next;
  int probe_answered, probe_ok;
  uint64_t probe_interval_ns; /* grows when a move back does not last */
  prd_tstamp back_at;         /* the last move back to UDP */
  /* auto, on UDP: the loss window (start, packets sent and lost then),
   * and the windows in a row that lost a heavy share */
  prd_tstamp loss_at;
  uint64_t loss_sent, loss_lost;
  unsigned loss_heavy;
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
  uint64_t up, down;     /* bytes TCP->QUIC, QUIC->TCP */
  uint16_t svc;          /* its service, an index in r->cfg->services */
  uint16_t port_off;     /* its port offset in the service's range */
  struct event *peek_ev; /* server: waiting for the bytes to route by */
  uint32_t peek_routes;  /* the services it may go to (listener.routes) */
  size_t dest_idx;
  int dest_err;    /* errno of the last failed connect to the destination */
  uint8_t rd_idle; /* turns the socket was readable while paused */
  unsigned connecting : 1, rd_eof : 1, rd_paused : 1, wr_fin : 1, wr_shut : 1,
      pending : 1, rd_enabled : 1, wr_enabled : 1, svc_counted : 1;
};

struct relay {
  struct event_base *base;
  prd_relay_config *cfg;
  prd_quic_callbacks cb;
  const relay_role *role;
  int is_server;
  /* server */
  prd_quic_endpoint *ep;
  struct event *udp_rev, *udp_wev;
  listener *ls; /* one per port of each service */
  size_t nls;
  int listen_paused;
  struct event *accept_retry; /* resumes accept after EMFILE */
  tunnel *tunnels;
  unsigned rr;
  tcpc *pend_head, *pend_tail;
  struct event *pend_timer;
  tcpc *unconf; /* streams whose client has acknowledged nothing yet */
  struct event *unconf_timer;
  prd_tstamp noroute_logged;      /* the last "no service" line */
  uint32_t noroute_quiet;         /* lines left out since */
  struct prd_ratelimit *allow_rl; /* log lines of allowlist refusals; NULL
                                     when no service has allow= */
  /* server: TCP paths (spec/11-tcp-path.md, qtcp.c) */
  int qtcp_fd; /* the listener, -1 when off */
  struct event *qtcp_ev, *qtcp_sweep;
  qtcp *qtcps, *qtcp_dead; /* open; closed, freed by the sweep */
  size_t nqtcp;
  /* client */
  uint32_t svc_refused_logged; /* services a server refused, logged once */
  int svc_unknown_logged;      /* a stream for a service not served */
  const char *svc_names[PRD_RELAY_MAX_SERVICES]; /* what it declares */
  tunnel remotes[16];
  struct evdns_base *dns; /* client_resolve's; NULL: names not resolved */
  const char *hosts_file; /* what client_resolve loads into |dns| */
  /* both */
  int svc_default; /* index of the service default, -1 when none */
  /* slots of cfg->services whose service a reload removed: kept for the
   * connections still open (their logs and metrics), matched by nothing */
  uint32_t svc_gone;
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
  struct udp_state *udp; /* udp.c's: NULL without UDP services */
  int exit_code;
  size_t trim_mark; /* connection count at the last malloc_trim */
  /* systemd (sd_notify, src/common/notify.h) */
  struct event *wd_ev; /* WATCHDOG=1 at half of WatchdogSec= */
  int ready_sent;
  prd_tstamp started;
  uint64_t status_key; /* what the last STATUS= said */
};

/* ---- loop.c ------------------------------------------------------------ */

/* relay_ev_free frees the event |*pev| points to, if any, and clears it. */
static inline void relay_ev_free(struct event **pev) {
  if (*pev) {
    event_free(*pev);
    *pev = NULL;
  }
}

void tv_from_ns(struct timeval *tv, uint64_t ns);
/* relay_common_init sets up |r|'s base, signals, timers and metrics for
 * |role|. Returns 0, or -1 with the error logged and |r| freed. */
int relay_common_init(relay *r, prd_relay_config *cfg, const relay_role *role,
                      int is_server);
void relay_common_free(relay *r);
/* tunnel_events creates |t|'s timerfd and flush event; on failure the
 * caller frees what was made with tunnel_events_free. */
int tunnel_events(relay *r, tunnel *t);
void tunnel_events_free(tunnel *t);
/* check_drained closes the connections, then exits the loop, once a drain
 * may (outside QUIC callbacks: see drain_ev). */
void check_drained(relay *r);
void start_shutdown(relay *r);

/* ---- tunnel.c ---------------------------------------------------------- */

/* The tunnels are r->tunnels, linked by next: the server's as clients
 * connect, the client's one per remote, in --server order. */
size_t live_conns(relay *r);
void close_all_conns(relay *r, uint64_t code);
size_t streams_left(relay *r);
uint64_t linger_ns(relay *r);
void relay_fill_info(void *arg, prd_metrics *m);
void on_udp_read(evutil_socket_t fd, short what, void *arg);
void on_udp_write(evutil_socket_t fd, short what, void *arg);

/* ---- qtcp.c: TCP paths (spec/11-tcp-path.md) --------------------------- */

/* The client's wait for the server's preface (spec/11-tcp-path.md §2.1). */
#define QTCP_CLIENT_PREFACE_S 3
/* After the server was found to offer no TCP path, the client tries none
 * for this long (--quic-transport auto). */
#define NO_TCP_RETRY_NS (300 * PRD_NS_PER_S)

/* qtcp_server_listen opens the server's TCP path listener
 * (cfg->quic_tcp_addr) unless cfg->quic_tcp_off, and routes r->ep's
 * datagrams for its paths. Returns 0, or -1 (logged). */
int qtcp_server_listen(relay *r);
void qtcp_server_free(relay *r);
/* qtcp_client_open dials the TCP path to |to| for t->ep, whose datagrams
 * all go there from now on. Returns 0 or a negative errno. */
int qtcp_client_open(tunnel *t, const prd_sockaddr *to);
/* qtcp_client_stop silences the tunnel's TCP path (its connection is
 * gone); qtcp_client_free frees it (off the call stack of its reads). */
void qtcp_client_stop(tunnel *t);
void qtcp_client_free(tunnel *t);
/* qtcp_client_leave: the tunnel's datagrams go to UDP again; its TCP path
 * is read for |linger_ns| more, then closed by qtcp_client_free or the
 * next leave. */
void qtcp_client_leave(tunnel *t, uint64_t linger_ns);
/* qtcp_free_old closes the path left (off its read callback). */
void qtcp_free_old(tunnel *t);
/* qtcp_client_ready: the tunnel is on a TCP path the server answered. */
int qtcp_client_ready(const tunnel *t);
/* qtcp_probe_send sends one UDP probe to |to| from t->probe_fd (opened on
 * first use); an answer sets t->probe_answered. Returns 0 or a negative
 * errno. qtcp_probe_close closes the socket. */
int qtcp_probe_send(tunnel *t, const prd_sockaddr *to);
void qtcp_probe_close(tunnel *t);

/* ---- tcp.c ------------------------------------------------------------- */

void set_nodelay(int fd);
/* tc_new makes the TCP side for |fd| (-1: not connected yet) and counts it
 * in r->nconns. NULL when out of memory. */
tcpc *tc_new(relay *r, int fd);
/* tc_close closes the TCP side and frees |tc|; |rst| sends a TCP RST
 * (SO_LINGER 0) and aborts the stream with |code| (spec/02-framing.md §6). */
void tc_close(tcpc *tc, int rst, uint64_t code, const char *why);
void tc_enable_read(tcpc *tc, int on);
void tc_enable_write(tcpc *tc, int on);
void tc_read(tcpc *tc);
void on_tcp_read(evutil_socket_t fd, short what, void *arg);
void on_tcp_write(evutil_socket_t fd, short what, void *arg);
/* The QUIC stream callbacks of both roles (quic.h). */
int cb_stream_data(prd_qstream *st, const uint8_t *data, size_t len, int fin,
                   void *ud);
void cb_stream_reset(prd_qstream *st, uint64_t app_err, void *ud);
void cb_stream_writable(prd_qstream *st, void *ud);
void cb_stream_close(prd_qstream *st, uint64_t app_err, void *ud);

/* ---- server.c ---------------------------------------------------------- */

/* relay_services_init makes cfg->services from the single-service fields
 * when it is empty, and finds the service default. */
void relay_services_init(relay *r);
/* svc_count counts |tc| in its service's metrics (once its service is
 * known); tc_close takes it out again. */
static inline void svc_count(tcpc *tc) {
  if (tc->svc < tc->r->metrics.nsvc) {
    ++tc->r->metrics.svc_total[tc->svc];
    ++tc->r->metrics.svc_active[tc->svc];
    tc->svc_counted = 1;
  }
}
/* svc_name is service |svc|'s name ("default" when not set up). */
const char *svc_name(const relay *r, unsigned svc);

/* pick_tunnel: spec/04-quic-profile.md §7, among the clients that serve
 * service |svc| at port offset |off|; never |exclude|. */
tunnel *pick_tunnel(relay *r, tunnel *exclude, unsigned svc, unsigned off);
void pend_drain(relay *r);
void on_pend_timer(evutil_socket_t fd, short what, void *arg);
void on_unconf_timer(evutil_socket_t fd, short what, void *arg);
void on_accept(evutil_socket_t fd, short what, void *arg);

/* ---- reload.c ---------------------------------------------------------- */

/* What a reload does to one new service (svc_plan.change). */
#define SVC_SAME 0
#define SVC_ADDED 1
#define SVC_MOVED 2   /* server: another address or number of ports */
#define SVC_UPDATED 3 /* other fields, changed in place */

/* svc_plan: how the services of a reload map onto the running slots of
 * cfg->services, by name. */
typedef struct svc_plan {
  int slot[PRD_RELAY_MAX_SERVICES]; /* new service i's slot; -1: no room */
  uint8_t change[PRD_RELAY_MAX_SERVICES]; /* SVC_* of new service i */
  uint32_t removed;                       /* running slots whose name went */
  size_t nslots;                          /* cfg->nservices afterwards */
  unsigned nadded, nremoved, nchanged;
} svc_plan;

/* svc_plan_make plans the reload from the |nold| running services |old|
 * (slots in |gone| are free, |active| counts each slot's open connections;
 * NULL: none) to the |nnew| services |nw|. A kept service keeps its slot;
 * a new one takes the next slot, else a free one that no connection uses. */
void svc_plan_make(svc_plan *p, const prd_relay_service *old, size_t nold,
                   uint32_t gone, const uint64_t *active,
                   const prd_relay_service *nw, size_t nnew);

/* svc_keep_udp: UDP services keep what start-up made of them (relay/udp.c
 * binds their sockets and sets datagrams up once): replaces the UDP
 * services of the |*nnew| new ones |nw| with the running ones of |old|
 * (slots in |gone| are not running). Returns 0, 1 when the new file's UDP
 * services differed (the caller says a restart applies them), or -1 when
 * they do not fit. */
int svc_keep_udp(const prd_relay_service *old, size_t nold, uint32_t gone,
                 prd_relay_service *nw, size_t *nnew);

/* reload_keep_udp applies svc_keep_udp to |next| against |r|'s running
 * services (README "Reload": UDP services keep their sockets, flows and
 * DATAGRAMS in HELLO), with the WARN of a changed one. Returns 0, or -1
 * (logged) when the reload is refused. */
int reload_keep_udp(relay *r, prd_relay_config *next);

/* WARN_RESTART: a setting a reload cannot change live (README "Reload"). */
#define WARN_RESTART(cond, what)                                               \
  do {                                                                         \
    if (cond) {                                                                \
      PRD_LOG_WARN("reload: %s changed; restart to apply", what);              \
    }                                                                          \
  } while (0)

/* ---- udp.c (spec/10-udp.md) ------------------------------------------- */

#define PRD_UDP_TIMEOUT_NS (30 * PRD_NS_PER_S)
#define PRD_UDP_STREAM_TIMEOUT_NS (180 * PRD_NS_PER_S)
#define PRD_UDP_MAX_FLOWS 16384
#define PRD_UDP_MAX_SVC_FLOWS 1024
/* udp_any: |cfg| has a UDP service. */
int udp_any(const prd_relay_config *cfg);
/* udp_start sets up UDP services (server: binds their sockets); 0 without
 * any. Returns 0, or -1 logged (udp_free cleans up). */
int udp_start(relay *r);
void udp_free(relay *r);
/* udp_tunnel_gone ends the flows of |t| (its connection is closing). */
void udp_tunnel_gone(relay *r, tunnel *t);
/* callbacks.datagram of both roles. */
void udp_on_datagram(prd_quic_conn *qc, const uint8_t *data, size_t len,
                     void *ud);

/* ---- client.c ---------------------------------------------------------- */

void on_client_retry(evutil_socket_t fd, short what, void *arg);
void client_schedule_retry(tunnel *t);
/* client_loss_window counts one loss window of UDP in which |sent| packets
 * were sent and |lost| declared lost; returns 1 when the windows in a row
 * with a heavy share lost say that UDP is throttled (spec/11-tcp-path.md
 * §3.2). */
int client_loss_window(tunnel *t, uint64_t sent, uint64_t lost);
void client_next_address(tunnel *t);
/* client_resolve resolves t->remote->host again into its addrs through
 * r->dns: 1 when the answer comes later (then the dial follows it), 0 when
 * it came at once or there is nothing to resolve. */
int client_resolve(tunnel *t);
/* client_resolve_cancel cancels t's resolution, if one is under way: its
 * callback will not touch |t|. */
void client_resolve_cancel(tunnel *t);

#endif
