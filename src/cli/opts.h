/* SPDX-License-Identifier: GPL-3.0-only */
/* Command line and config file of both binaries (README "Options"). */
#ifndef PRD_OPTS_H
#define PRD_OPTS_H

#include <stddef.h>
#include <stdint.h>

#include "../common/log.h"

#define PRD_MAX_CERT_HOSTNAMES 16
#define PRD_MAX_AUTH_EXEMPT 16

/* An address prefix (--auth-fail-exempt): family 4 or 6, |bits| leading
 * bits of |addr| (network order). */
typedef struct prd_opts_prefix {
  uint8_t family, bits;
  uint8_t addr[16];
} prd_opts_prefix;
#define PRD_MAX_REMOTES 16
#define PRD_MAX_FINGERPRINTS 16
#define PRD_FINGERPRINT_BYTES 32 /* SHA-256 */

typedef enum prd_role { PRD_ROLE_SERVER, PRD_ROLE_CLIENT } prd_role;

typedef enum prd_proxy_proto {
  PRD_PROXY_NONE = 0,
  PRD_PROXY_V1 = 1,
  PRD_PROXY_V2 = 2
} prd_proxy_proto;

typedef enum prd_cc {
  PRD_CC_CUBIC = 0,
  PRD_CC_RENO,
  PRD_CC_BBR,
  PRD_CC_BBR2
} prd_cc;

/* --service NAME=HOST:PORT[-LAST][,proxy-protocol=...] (README "Services"):
 * on the server the TCP listen address and ports, on the client the
 * destination. The server's ",allow=CIDR" (repeatable) is the service's
 * source allowlist. */
#define PRD_MAX_SERVICES 16
#define PRD_MAX_ALLOW 16
typedef struct prd_opts_service {
  char name[64];       /* valid per prd_service_name_valid */
  char host[256];      /* brackets removed */
  uint16_t port, last; /* last >= port; last == port: one port */
  int proxy_protocol;  /* client: -1 = as --proxy-protocol, else a
                          prd_proxy_proto */
  prd_opts_prefix allow[PRD_MAX_ALLOW]; /* server: allow=; none: anyone */
  size_t n_allow;
  int route;            /* server: 0, or sni= (1) or host= (2) */
  char route_name[256]; /* its host name, lower-case */
  int udp;              /* udp:HOST:PORT (spec/10-udp.md) */
  uint32_t udp_timeout_s, udp_stream_timeout_s; /* timeout=, stream-timeout=;
                                                   0: 30 s, 180 s */
} prd_opts_service;

typedef struct prd_hostport {
  char host[256]; /* as given, brackets removed: "::1", "example.org" */
  uint16_t port;
  char cert[4096]; /* --quic-remote ...,cert=FILE: this server's pin */
  char name[256];  /* --quic-remote ...,name=SAN: its expected name */
} prd_hostport;

/* All strings are owned by the struct (fixed arrays or malloc'ed and freed by
 * prd_opts_free). Empty string = not given. */
typedef struct prd_opts {
  prd_role role;
  /* common */
  prd_log_level log_level; /* --log-level, default info */
  char config_dir[4096];   /* --config-dir, resolved default */
  char config_file[4096];  /* --config */
  uint8_t *psk;            /* from --quic-psk / --quic-psk-file / env */
  size_t psklen;
  int psk_from_argv;         /* 1 when --quic-psk was used (warn) */
  int psk_file_loose;        /* the --quic-psk-file is group/world-readable */
  unsigned psk_file_mode;    /* its permission bits, for the warning */
  char psk_file[4096];       /* --quic-psk-file as given (for messages) */
  char clients_file[4096];   /* server: --clients-file ("" = none) */
  char client_name[65];      /* client: --client-name ("" = none) */
  char keylog_file[4096];    /* --keylog-file or SSLKEYLOGFILE */
  char metrics_listen[300];  /* --metrics-listen ADDR:PORT ("" = off) */
  uint32_t max_udp_payload;  /* --max-udp-payload, 0 = automatic */
  prd_cc congestion_control; /* --congestion-control, default bbr2 */
  int queue_bound;           /* --queue-bound, default on */
  uint32_t idle_timeout_ms;  /* --idle-timeout SECONDS, default 30 s */
  uint32_t keepalive_ms;     /* --keepalive SECONDS, default 10 s */
  prd_opts_service services[PRD_MAX_SERVICES]; /* --service, in order */
  size_t n_services;
  /* server */
  char local_host[256];       /* --local-host, default 127.0.0.1 */
  uint16_t local_port;        /* --local-port, required for the server */
  char quic_server_host[256]; /* --quic-server-host, default 127.0.0.1 */
  uint16_t quic_server_port;  /* --quic-server-port, default 4433 */
  char cert_hostnames[PRD_MAX_CERT_HOSTNAMES][256]; /* --quic-cert-hostname */
  size_t n_cert_hostnames;
  uint32_t pending_timeout_ms;    /* --pending-timeout SECONDS, default 5 */
  uint32_t auth_timeout_ms;       /* --auth-timeout SECONDS, default 5 */
  uint32_t auth_fail_cooldown_ms; /* --auth-fail-cooldown, default 60 s */
  prd_opts_prefix auth_exempt[PRD_MAX_AUTH_EXEMPT]; /* --auth-fail-exempt */
  size_t n_auth_exempt;
  uint32_t max_clients;     /* --max-clients, default 16 */
  uint32_t max_connections; /* --max-connections (TCP), default 20000 */
  uint32_t grace_ms;        /* --shutdown-grace SECONDS, default 10 */
  int print_metrics;        /* --print-metrics */
  int check_config;         /* --check-config: print what would run, exit */
  int print_fingerprint;    /* --print-fingerprint: print and exit
                               (server: its certificate; client: the
                               pinned one) */
  /* --quic-tcp-listen (spec/11-tcp-path.md): "off", or HOST:PORT; empty:
   * the UDP address */
  int quic_tcp_off;
  char quic_tcp_host[256];
  uint16_t quic_tcp_port;
  /* client */
  /* --quic-transport: 0 auto, 1 udp, 2 tcp */
  int quic_transport;
  /* --quic-udp-probe-interval SECONDS, default 30 s */
  uint32_t udp_probe_interval_ms;
  char destination_host[256]; /* --destination-host, default 127.0.0.1 */
  uint16_t destination_port;  /* --destination-port, required */
  prd_hostport
      remotes[PRD_MAX_REMOTES]; /* --quic-remote-host/-port or --quic-remote */
  size_t n_remotes;
  char remote_hostname_match[256]; /* --quic-remote-hostname-match (default:
                                      remote host) */
  char quic_local_host[256];       /* --quic-local-host ("" = any) */
  uint16_t quic_local_port;        /* --quic-local-port, default 0 */
  char server_cert[4096]; /* --server-cert FILE ("" = <config-dir>/cert.der) */
  int trust_on_first_use; /* --trust-on-first-use */
  prd_proxy_proto proxy_protocol; /* --proxy-protocol none|v1|v2 */
  uint32_t max_streams;           /* --max-streams, default 32768 */
  int provide_metrics; /* --provide-metrics = --metrics-listen 127.0.0.1:9898 */
  /* --server-fingerprint: SHA-256 of the server's certificate */
  uint8_t server_fingerprints[PRD_MAX_FINGERPRINTS][PRD_FINGERPRINT_BYTES];
  size_t n_server_fingerprints;
} prd_opts;

/* prd_opts_parse fills |o| from |argv| (and the config file named by --config,
 * and the environment: PORTREDIRECT_PSK, SSLKEYLOGFILE, XDG_CONFIG_HOME,
 * HOME). On --help or --version it prints to stdout and returns 1 (caller
 * exits 0). On a usage or configuration error it prints one line naming the
 * option (or file:line) to stderr and returns -1 (caller exits 2). Returns 0
 * when the program should run. */
int prd_opts_parse(prd_opts *o, prd_role role, int argc, char **argv);

/* prd_opts_free wipes and frees the PSK. */
void prd_opts_free(prd_opts *o);

#endif
