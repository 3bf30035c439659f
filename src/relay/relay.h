/* SPDX-License-Identifier: GPL-3.0-only */
/* The relay: libevent loop, TCP sockets glued to QUIC streams with bounded
 * buffers (spec/02-framing.md §6), the server's listener and scheduler, the
 * client's reconnecting tunnels, signals and metrics. */
#ifndef PRD_RELAY_H
#define PRD_RELAY_H

#include <stddef.h>
#include <stdint.h>

#include "../quic/quic.h"

#define PRD_RELAY_MAX_ADDRS 8

typedef struct prd_relay_remote {
  char label[300]; /* "host:port" as given, for logs and metrics */
  char host[256];  /* as given: resolved again before each round of dials,
                    * without blocking the loop (evdns) */
  uint16_t port;
  prd_sockaddr addrs[PRD_RELAY_MAX_ADDRS]; /* the last resolution, in order */
  size_t naddrs;
  char expected_name[256]; /* SAN to match */
  const uint8_t *pin_der;  /* NULL with tofu */
  size_t pinlen;
  /* --server-fingerprint values, 32 bytes each (then pin_der is NULL) */
  const uint8_t *pin_sha256;
  size_t npin_sha256;
  char tofu_path[4400]; /* where a TOFU certificate is stored */
  int pin_owned;        /* pin_der was malloc'ed by the relay */
  char pin_name[4400];  /* the pin's file, for messages */
} prd_relay_remote;

/* One named service (README "Services"; spec/02-framing.md §3.7): the server
 * listens on |nports| ports from listen_addr's; the client connects its
 * streams to dest, at port offset k to each address's port + k. */
#define PRD_RELAY_MAX_SERVICES 16
#define PRD_RELAY_MAX_ALLOW 16
#define PRD_ROUTE_NONE 0
#define PRD_ROUTE_SNI 1
#define PRD_ROUTE_HOST 2
/* How long the server waits for a user's first bytes to route it by, at
 * most (README "Services"); and at most PRD_PEEK_MAX bytes (peek.h). */
#define PRD_RELAY_PEEK_TIMEOUT_S 5
typedef struct prd_relay_service {
  char name[64];            /* PRD_SERVICE_DEFAULT for the seed's flags */
  char host[300];           /* for logs: the host as given, IPv6 in brackets */
  uint16_t port;            /* the first port */
  uint16_t nports;          /* 1 + LAST - PORT */
  prd_sockaddr listen_addr; /* server: TCP, port = the first port */
  prd_sockaddr dest[PRD_RELAY_MAX_ADDRS]; /* client: resolved, first port */
  size_t ndest;
  int proxy_protocol; /* client: 0, 1, 2 */
  /* server: the sources allowed (allow=); none: any. Others are closed at
   * accept. */
  prd_addr_prefix allow[PRD_RELAY_MAX_ALLOW];
  size_t nallow;
  /* server: routing on a listen address that services share (sni=,
   * host=): the user's TLS server name or HTTP host must be route_name
   * (lower-case); PRD_ROUTE_NONE: the address's default. */
  int route;
  char route_name[256];
  /* A UDP service (spec/10-udp.md): the server listens for UDP, the client
   * sends to a UDP destination; flows expire after udp_timeout_ns idle
   * without a reply, udp_stream_timeout_ns once one was seen (0: 30 s and
   * 180 s). */
  int udp;
  uint64_t udp_timeout_ns, udp_stream_timeout_ns;
} prd_relay_service;

/* One client identity of the server (README "Clients"; the clients file,
 * spec/06-files-and-cli.md): its name, its own key, the services it may
 * serve and the addresses it may connect from. --quic-psk and
 * --quic-psk-file make one client named "default" that may serve every
 * service. */
#define PRD_RELAY_CLIENT_NAME_MAX 64
typedef struct prd_relay_client {
  char name[PRD_RELAY_CLIENT_NAME_MAX + 1];
  uint8_t *psk; /* owned by the configuration */
  size_t psklen;
  int all_services; /* services=* */
  char services[PRD_RELAY_MAX_SERVICES][64];
  size_t nservices;
  prd_addr_prefix allow[PRD_RELAY_MAX_ALLOW]; /* none: any address */
  size_t nallow;
} prd_relay_client;

typedef struct prd_relay_config prd_relay_config;

/* The client's packet path (README "TCP fallback", spec/11-tcp-path.md
 * §3.2): UDP first and TCP when UDP gives no answer; UDP only; TCP only. */
enum {
  PRD_RELAY_TRANSPORT_AUTO = 0,
  PRD_RELAY_TRANSPORT_UDP = 1,
  PRD_RELAY_TRANSPORT_TCP = 2
};

/* SIGHUP (README "Reload"): called on the loop; fills |next| with the
 * configuration read again from the same sources (command line, --config,
 * --clients-file). Returns 0, or -1 after logging one ERROR line that names
 * FILE:LINE; the running configuration then stays. */
typedef int (*prd_relay_reload_fn)(prd_relay_config *next, void *arg);

/* After a reload hook returned 0: whether the relay applied |next|
 * (|applied| 1) or refused it whole (0, logged); the running configuration
 * points into the last one applied from then on. */
typedef void (*prd_relay_reload_done_fn)(int applied, void *arg);

struct prd_relay_config {
  prd_quic_config quic; /* cb and ud are filled in by the relay */
  /* server */
  prd_sockaddr listen_addr;     /* TCP */
  prd_sockaddr quic_addr;       /* UDP */
  const uint8_t *static_secret; /* 32 bytes */
  uint64_t pending_timeout_ns;
  uint32_t max_clients;
  uint32_t max_connections;
  int print_metrics;
  /* server: the TCP path listener (spec/11-tcp-path.md), off when
   * quic_tcp_off */
  prd_sockaddr quic_tcp_addr;
  int quic_tcp_off;
  int quic_tcp_explicit; /* --quic-tcp-listen given: failing to listen is
                            fatal (else a warning) */
  /* client */
  int quic_transport; /* PRD_RELAY_TRANSPORT_* */
  /* auto, on TCP: how often UDP is probed (0: 30 s) */
  uint64_t udp_probe_interval_ns;
  prd_relay_remote remotes[16];
  size_t nremotes;
  prd_sockaddr quic_local; /* family AF_UNSPEC = any */
  int have_quic_local;
  int quic_local_any; /* no --quic-local-host: any address of each family */
  prd_sockaddr dest[PRD_RELAY_MAX_ADDRS];
  size_t ndest;
  char dest_label[300];
  int proxy_protocol; /* 0, 1, 2 */
  /* Trust on first use (spec/06-files-and-cli.md §3): called on the loop
   * once per remote, when a tunnel authenticated a server that |remote| had
   * no pin for; the relay pins |der| in memory for the reconnects, the hook
   * stores it in |remote|'s tofu_path. |der| is valid only during the call;
   * the hook must not block (the CLI writes from a thread). NULL:
   * nothing stored on disk. */
  void (*tofu_store)(const prd_relay_remote *remote, const uint8_t *der,
                     size_t len, void *arg);
  void *tofu_arg;
  /* both: the services; none: one service default from listen_addr
   * (server) or dest, dest_label and proxy_protocol (client). */
  prd_relay_service services[PRD_RELAY_MAX_SERVICES];
  size_t nservices;
  /* server: the clients (--clients-file, and "default" from --quic-psk);
   * the CLI owns the array. 0 clients: everyone uses quic.psk. */
  prd_relay_client *clients;
  size_t nclients;
  /* both */
  uint64_t grace_ns;
  char metrics_listen[300];             /* "" = off */
  prd_relay_reload_fn reload;           /* NULL: SIGHUP is only logged */
  prd_relay_reload_done_fn reload_done; /* NULL: not told */
  void *reload_arg;
};

/* prd_relay_server_run runs the server until SIGINT/SIGTERM. Returns 0 on a
 * clean shutdown, or 1 when it could not start (message logged). */
int prd_relay_server_run(prd_relay_config *cfg);

/* prd_relay_client_run runs the client until SIGINT/SIGTERM. */
int prd_relay_client_run(prd_relay_config *cfg);

#endif
