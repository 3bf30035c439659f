/* SPDX-License-Identifier: GPL-3.0-only */
/* What opts.c (the table, the command line, the checks at the end),
 * values.c (one option's value), config.c (the --config file) and usage.c
 * (--help) share. Private to src/cli/opts*.c, values.c, config.c and
 * usage.c. */
#ifndef PRD_OPTS_PRIV_H
#define PRD_OPTS_PRIV_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "opts.h"
#include "opts_internal.h"

#ifndef PRD_VERSION
#  define PRD_VERSION "0.0.0"
#endif

#define PRD_STR2(x) #x
#define PRD_STR(x) PRD_STR2(x)

/* Defaults (README "Options"). Durations in seconds. */
#define DEF_HOST "127.0.0.1"
#define DEF_QUIC_PORT 4433
#define DEF_PENDING_TIMEOUT_S 5
#define DEF_AUTH_TIMEOUT_S 5
#define DEF_AUTH_FAIL_COOLDOWN_S 60
#define DEF_MAX_CLIENTS 16
#define DEF_MAX_CONNECTIONS 20000
#define DEF_SHUTDOWN_GRACE_S 10
#define DEF_IDLE_TIMEOUT_S 30
#define DEF_KEEPALIVE_S 10
#define DEF_MAX_STREAMS 32768
#define DEF_METRICS_LISTEN "127.0.0.1:9898"

#define MAX_PSK_BYTES 1024
#define MAX_CONFIG_BYTES (1024 * 1024)
#define MAX_CONFIG_LINE 4096
#define MAX_PATH_BYTES 4096

/* Option identifiers, in the order --help lists them within a section. */
typedef enum opt_id {
  /* Tunnel */
  OPT_LOCAL_HOST,
  OPT_LOCAL_PORT,
  OPT_DESTINATION_HOST,
  OPT_DESTINATION_PORT,
  OPT_PROXY_PROTOCOL,
  OPT_SERVICE,
  OPT_PENDING_TIMEOUT,
  OPT_MAX_CONNECTIONS,
  OPT_MAX_CLIENTS,
  OPT_MAX_STREAMS,
  /* QUIC */
  OPT_QUIC_SERVER_HOST,
  OPT_QUIC_SERVER_PORT,
  OPT_QUIC_CERT_HOSTNAME,
  OPT_QUIC_REMOTE_HOST,
  OPT_QUIC_REMOTE_PORT,
  OPT_QUIC_REMOTE,
  OPT_QUIC_LOCAL_HOST,
  OPT_QUIC_LOCAL_PORT,
  OPT_IDLE_TIMEOUT,
  OPT_KEEPALIVE,
  OPT_MAX_UDP_PAYLOAD,
  OPT_CONGESTION_CONTROL,
  OPT_QUEUE_BOUND,
  OPT_QUIC_TCP_LISTEN,
  OPT_QUIC_TRANSPORT,
  OPT_QUIC_UDP_PROBE_INTERVAL,
  /* Security */
  OPT_QUIC_PSK,
  OPT_QUIC_PSK_FILE,
  OPT_CLIENTS_FILE,
  OPT_CLIENT_NAME,
  OPT_AUTH_TIMEOUT,
  OPT_AUTH_FAIL_COOLDOWN,
  OPT_AUTH_FAIL_EXEMPT,
  OPT_QUIC_REMOTE_HOSTNAME_MATCH,
  OPT_SERVER_CERT,
  OPT_SERVER_FINGERPRINT,
  OPT_TRUST_ON_FIRST_USE,
  OPT_PRINT_FINGERPRINT,
  OPT_KEYLOG_FILE,
  /* Operations */
  OPT_CONFIG,
  OPT_CONFIG_DIR,
  OPT_CHECK_CONFIG,
  OPT_LOG_LEVEL,
  OPT_METRICS_LISTEN,
  OPT_PROVIDE_METRICS,
  OPT_PRINT_METRICS,
  OPT_SHUTDOWN_GRACE,
  OPT_HELP,
  OPT_VERSION,
  OPT_COUNT
} opt_id;

enum {
  ROLE_SERVER = 1u << PRD_ROLE_SERVER,
  ROLE_CLIENT = 1u << PRD_ROLE_CLIENT,
  ROLE_BOTH = ROLE_SERVER | ROLE_CLIENT
};

typedef enum opt_kind {
  KIND_VALUE,  /* --name VALUE or --name=VALUE */
  KIND_REPEAT, /* like KIND_VALUE, may be given up to 16 times */
  KIND_FLAG,   /* --name, or --name=BOOL; BOOL in a config file */
  KIND_ACTION  /* --help, --version: never in a config file */
} opt_kind;

/* Options of one group are one setting: when the command line gives any of
 * them, the config file's values for the whole group are ignored. */
typedef enum opt_group {
  GROUP_NONE,
  GROUP_PSK,
  GROUP_REMOTE,
  GROUP_PIN, /* how the server's certificate is trusted */
  GROUP_COUNT
} opt_group;

typedef enum opt_section {
  SEC_TUNNEL,
  SEC_QUIC,
  SEC_SECURITY,
  SEC_OPERATIONS,
  SEC_COUNT
} opt_section;

typedef struct opt_def {
  const char *name; /* long name without "--"; also the config file key */
  const char *arg;  /* value placeholder in --help, NULL for flags */
  unsigned roles;
  opt_kind kind;
  opt_group group;
  opt_section section;
  const char *help; /* one line of --help, at most 43 columns */
} opt_def;

/* Parser state of one prd_opts_parse call. */
typedef struct parse_ctx {
  prd_opts *o;
  const char *prog;
  FILE *out;
  FILE *err;
  /* Location of the value being applied: command line or file:line. */
  int in_file;
  const char *file_name;
  size_t line;
  unsigned char cli_seen[OPT_COUNT];
  unsigned char file_seen[OPT_COUNT];
  unsigned char cli_group[GROUP_COUNT];
  /* PSK sources, resolved in finish() by precedence. */
  char *psk_value; /* malloc'ed copy of --quic-psk, wiped on free */
  size_t psk_value_len;
  int psk_value_from_argv;
  char psk_file[MAX_PATH_BYTES];
  size_t psk_file_line; /* 0: command line */
  /* --quic-remote-host / --quic-remote-port before they become remotes[0]. */
  char remote_host[256];
  uint16_t remote_port;
  int keylog_given;
  int keepalive_given;
  int metrics_given;
  char qbuf[320]; /* prd_opts_quote() output */
} parse_ctx;

/* prd_opt_defs is the option table, indexed by opt_id (opts.c). */
extern const opt_def prd_opt_defs[OPT_COUNT];

/* prd_opts_quote renders |s| for a message: in double quotes, at most 64
 * bytes, with control and non-ASCII bytes as \xHH so that the message stays
 * one line. The result lives in |c| until the next call. */
const char *prd_opts_quote(parse_ctx *c, const char *s);

/* prd_opts_report writes one error line: "PROG: [FILE:LINE: ][--]NAME:
 * MESSAGE", and on the command line a second line pointing at --help. */
void prd_opts_report(parse_ctx *c, const opt_def *d, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* prd_opts_report_other_role reports |d| as an option of the other binary. */
void prd_opts_report_other_role(parse_ctx *c, const opt_def *d);

/* prd_opts_find looks up a long name of |n| bytes, or returns NULL. */
const opt_def *prd_opts_find(const char *name, size_t n);

/* prd_opts_apply_value checks and stores the value |s| of option |id| (NULL
 * for a flag without a value) in |c|'s options (values.c). Returns 0 or -1
 * (reported). */
int prd_opts_apply_value(parse_ctx *c, opt_id id, const char *s);

/* prd_opts_parse_prefix reads "ADDR" or "ADDR/BITS" (IPv4 or IPv6) into
 * |p| (values.c; also the clients file's allow=). Returns 0 or -1. */
int prd_opts_parse_prefix(prd_opts_prefix *p, const char *s);

/* prd_opts_read_file reads all of |path| into a malloc'ed buffer, and its
 * permission bits into |*pmode| unless NULL (config.c). Returns 0, a
 * negative errno, or -EFBIG when the file is longer than |max| bytes. The
 * caller wipes and frees |*pbuf|. */
int prd_opts_read_file(char **pbuf, size_t *plen, const char *path, size_t max,
                       unsigned *pmode);

/* prd_opts_parse_config_file applies the --config file, or the text in
 * |io| (config.c). Returns 0 or -1 (reported). */
int prd_opts_parse_config_file(parse_ctx *c, const prd_opts_io *io);

/* prd_opts_print_help prints --help for |c|'s role to |c->out| (usage.c). */
void prd_opts_print_help(parse_ctx *c);

#endif
