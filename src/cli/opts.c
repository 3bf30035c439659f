/* SPDX-License-Identifier: GPL-3.0-only */
/* Command line, config file and environment of both binaries (PRODUCT §2). */
#include "opts.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "opts_internal.h"

#ifndef PRD_VERSION
#  define PRD_VERSION "0.0.0"
#endif

#define PRD_STR2(x) #x
#define PRD_STR(x) PRD_STR2(x)

/* Defaults (PRODUCT §2, §2.1). Durations in seconds. */
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
  /* Security */
  OPT_QUIC_PSK,
  OPT_QUIC_PSK_FILE,
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

#define OPT(id, nm, ar, ro, ki, gr, se, he)                                    \
  [id] = {.name = (nm),                                                        \
          .arg = (ar),                                                         \
          .roles = (ro),                                                       \
          .kind = (ki),                                                        \
          .group = (gr),                                                       \
          .section = (se),                                                     \
          .help = (he)}

static const opt_def opt_defs[OPT_COUNT] = {
    OPT(OPT_LOCAL_HOST, "local-host", "HOST", ROLE_SERVER, KIND_VALUE,
        GROUP_NONE, SEC_TUNNEL, "TCP listen address (default " DEF_HOST ")"),
    OPT(OPT_LOCAL_PORT, "local-port", "PORT", ROLE_SERVER, KIND_VALUE,
        GROUP_NONE, SEC_TUNNEL, "TCP listen port (required)"),
    OPT(OPT_DESTINATION_HOST, "destination-host", "HOST", ROLE_CLIENT,
        KIND_VALUE, GROUP_NONE, SEC_TUNNEL,
        "TCP destination host (default " DEF_HOST ")"),
    OPT(OPT_DESTINATION_PORT, "destination-port", "PORT", ROLE_CLIENT,
        KIND_VALUE, GROUP_NONE, SEC_TUNNEL, "TCP destination port (required)"),
    OPT(OPT_PROXY_PROTOCOL, "proxy-protocol", "none|v1|v2", ROLE_CLIENT,
        KIND_VALUE, GROUP_NONE, SEC_TUNNEL,
        "send a PROXY header first (default none)"),
    OPT(OPT_PENDING_TIMEOUT, "pending-timeout", "SECONDS", ROLE_SERVER,
        KIND_VALUE, GROUP_NONE, SEC_TUNNEL,
        "hold TCP while no client is up (default " PRD_STR(
            DEF_PENDING_TIMEOUT_S) ")"),
    OPT(OPT_MAX_CONNECTIONS, "max-connections", "N", ROLE_SERVER, KIND_VALUE,
        GROUP_NONE, SEC_TUNNEL,
        "concurrent TCP connections (default " PRD_STR(
            DEF_MAX_CONNECTIONS) ")"),
    OPT(OPT_MAX_CLIENTS, "max-clients", "N", ROLE_SERVER, KIND_VALUE,
        GROUP_NONE, SEC_TUNNEL,
        "authenticated clients (default " PRD_STR(DEF_MAX_CLIENTS) ")"),
    OPT(OPT_MAX_STREAMS, "max-streams", "N", ROLE_CLIENT, KIND_VALUE,
        GROUP_NONE, SEC_TUNNEL,
        "concurrent streams (default " PRD_STR(DEF_MAX_STREAMS) ")"),

    OPT(OPT_QUIC_SERVER_HOST, "quic-server-host", "HOST", ROLE_SERVER,
        KIND_VALUE, GROUP_NONE, SEC_QUIC,
        "UDP listen address (default " DEF_HOST ")"),
    OPT(OPT_QUIC_SERVER_PORT, "quic-server-port", "PORT", ROLE_SERVER,
        KIND_VALUE, GROUP_NONE, SEC_QUIC,
        "UDP listen port (default " PRD_STR(DEF_QUIC_PORT) ")"),
    OPT(OPT_QUIC_CERT_HOSTNAME, "quic-cert-hostname", "NAME", ROLE_SERVER,
        KIND_REPEAT, GROUP_NONE, SEC_QUIC,
        "name in a new certificate (repeatable)"),
    OPT(OPT_QUIC_REMOTE_HOST, "quic-remote-host", "HOST", ROLE_CLIENT,
        KIND_VALUE, GROUP_REMOTE, SEC_QUIC,
        "QUIC server address (default " DEF_HOST ")"),
    OPT(OPT_QUIC_REMOTE_PORT, "quic-remote-port", "PORT", ROLE_CLIENT,
        KIND_VALUE, GROUP_REMOTE, SEC_QUIC,
        "QUIC server port (default " PRD_STR(DEF_QUIC_PORT) ")"),
    OPT(OPT_QUIC_REMOTE, "quic-remote", "HOST:PORT[,OPTS]", ROLE_CLIENT,
        KIND_REPEAT, GROUP_REMOTE, SEC_QUIC,
        "server, repeatable; OPTS cert=F,name=SAN"),
    OPT(OPT_QUIC_LOCAL_HOST, "quic-local-host", "HOST", ROLE_CLIENT, KIND_VALUE,
        GROUP_NONE, SEC_QUIC, "local UDP address (default any)"),
    OPT(OPT_QUIC_LOCAL_PORT, "quic-local-port", "PORT", ROLE_CLIENT, KIND_VALUE,
        GROUP_NONE, SEC_QUIC, "local UDP port (default 0 = any)"),
    OPT(OPT_IDLE_TIMEOUT, "idle-timeout", "SECONDS", ROLE_BOTH, KIND_VALUE,
        GROUP_NONE, SEC_QUIC,
        "close a silent connection (default " PRD_STR(DEF_IDLE_TIMEOUT_S) ")"),
    OPT(OPT_KEEPALIVE, "keepalive", "SECONDS", ROLE_BOTH, KIND_VALUE,
        GROUP_NONE, SEC_QUIC,
        "PING interval, 0 = off (default " PRD_STR(DEF_KEEPALIVE_S) ")"),
    OPT(OPT_MAX_UDP_PAYLOAD, "max-udp-payload", "BYTES", ROLE_BOTH, KIND_VALUE,
        GROUP_NONE, SEC_QUIC, "1200-65527, 0 = automatic (default 0)"),
    OPT(OPT_CONGESTION_CONTROL, "congestion-control", "ALGO", ROLE_BOTH,
        KIND_VALUE, GROUP_NONE, SEC_QUIC,
        "bbr2, cubic, reno or bbr (default bbr2)"),

    OPT(OPT_QUIC_PSK, "quic-psk", "PSK", ROLE_BOTH, KIND_VALUE, GROUP_PSK,
        SEC_SECURITY, "pre-shared key (visible in ps: avoid)"),
    OPT(OPT_QUIC_PSK_FILE, "quic-psk-file", "FILE", ROLE_BOTH, KIND_VALUE,
        GROUP_PSK, SEC_SECURITY, "read the pre-shared key from FILE"),
    OPT(OPT_AUTH_TIMEOUT, "auth-timeout", "SECONDS", ROLE_SERVER, KIND_VALUE,
        GROUP_NONE, SEC_SECURITY,
        "deadline for client auth (default " PRD_STR(DEF_AUTH_TIMEOUT_S) ")"),
    OPT(OPT_AUTH_FAIL_COOLDOWN, "auth-fail-cooldown", "SECONDS", ROLE_SERVER,
        KIND_VALUE, GROUP_NONE, SEC_SECURITY,
        "refusal after 10 failures (default " PRD_STR(
            DEF_AUTH_FAIL_COOLDOWN_S) ", 0=off)"),
    OPT(OPT_AUTH_FAIL_EXEMPT, "auth-fail-exempt", "ADDR[/BITS]", ROLE_SERVER,
        KIND_REPEAT, GROUP_NONE, SEC_SECURITY,
        "never cool this address down (repeatable)"),
    OPT(OPT_QUIC_REMOTE_HOSTNAME_MATCH, "quic-remote-hostname-match", "NAME",
        ROLE_CLIENT, KIND_VALUE, GROUP_NONE, SEC_SECURITY,
        "name in server cert (default: remote host)"),
    OPT(OPT_SERVER_CERT, "server-cert", "FILE", ROLE_CLIENT, KIND_VALUE,
        GROUP_PIN, SEC_SECURITY, "pinned cert (default CONFIG-DIR/cert.der)"),
    OPT(OPT_SERVER_FINGERPRINT, "server-fingerprint", "SHA256:HEX", ROLE_CLIENT,
        KIND_REPEAT, GROUP_PIN, SEC_SECURITY,
        "pin by fingerprint instead (repeatable)"),
    OPT(OPT_TRUST_ON_FIRST_USE, "trust-on-first-use", NULL, ROLE_CLIENT,
        KIND_FLAG, GROUP_PIN, SEC_SECURITY,
        "pin the first certificate seen (opt-in)"),
    OPT(OPT_PRINT_FINGERPRINT, "print-fingerprint", NULL, ROLE_BOTH, KIND_FLAG,
        GROUP_NONE, SEC_SECURITY, "print the certificate fingerprint and exit"),
    OPT(OPT_KEYLOG_FILE, "keylog-file", "FILE", ROLE_BOTH, KIND_VALUE,
        GROUP_NONE, SEC_SECURITY, "log TLS secrets to FILE (debugging only)"),

    OPT(OPT_CONFIG, "config", "FILE", ROLE_BOTH, KIND_VALUE, GROUP_NONE,
        SEC_OPERATIONS, "read key = value options from FILE"),
    OPT(OPT_CONFIG_DIR, "config-dir", "DIR", ROLE_BOTH, KIND_VALUE, GROUP_NONE,
        SEC_OPERATIONS, "CONFIG-DIR (default: see Files)"),
    OPT(OPT_LOG_LEVEL, "log-level", "LEVEL", ROLE_BOTH, KIND_VALUE, GROUP_NONE,
        SEC_OPERATIONS, "log verbosity (default info)"),
    OPT(OPT_METRICS_LISTEN, "metrics-listen", "ADDR:PORT", ROLE_BOTH,
        KIND_VALUE, GROUP_NONE, SEC_OPERATIONS,
        "serve Prometheus /metrics (default off)"),
    OPT(OPT_PROVIDE_METRICS, "provide-metrics", NULL, ROLE_CLIENT, KIND_FLAG,
        GROUP_NONE, SEC_OPERATIONS, "= --metrics-listen " DEF_METRICS_LISTEN),
    OPT(OPT_PRINT_METRICS, "print-metrics", NULL, ROLE_SERVER, KIND_FLAG,
        GROUP_NONE, SEC_OPERATIONS, "print counters to stderr each second"),
    OPT(OPT_SHUTDOWN_GRACE, "shutdown-grace", "SECONDS", ROLE_BOTH, KIND_VALUE,
        GROUP_NONE, SEC_OPERATIONS,
        "drain time on SIGTERM (default " PRD_STR(DEF_SHUTDOWN_GRACE_S) ")"),
    OPT(OPT_HELP, "help", NULL, ROLE_BOTH, KIND_ACTION, GROUP_NONE,
        SEC_OPERATIONS, "print this help and exit"),
    OPT(OPT_VERSION, "version", NULL, ROLE_BOTH, KIND_ACTION, GROUP_NONE,
        SEC_OPERATIONS, "print the version and exit"),
};

static const char *const section_names[SEC_COUNT] = {"Tunnel", "QUIC",
                                                     "Security", "Operations"};

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
  char qbuf[320]; /* quote() output */
} parse_ctx;

/* quote renders |s| for a message: in double quotes, at most 64 bytes, with
 * control and non-ASCII bytes as \xHH so that the message stays one line. The
 * result lives in |c| until the next call. */
static const char *quote(parse_ctx *c, const char *s) {
  static const char hex[] = "0123456789abcdef";
  size_t n = 0;
  size_t i;

  c->qbuf[n++] = '"';
  for (i = 0; i < 64 && s[i] != '\0'; ++i) {
    unsigned char ch = (unsigned char)s[i];
    if (ch == '"' || ch == '\\') {
      c->qbuf[n++] = '\\';
      c->qbuf[n++] = (char)ch;
    } else if (ch < 0x20 || ch >= 0x7f) {
      c->qbuf[n++] = '\\';
      c->qbuf[n++] = 'x';
      c->qbuf[n++] = hex[ch >> 4];
      c->qbuf[n++] = hex[ch & 0xf];
    } else {
      c->qbuf[n++] = (char)ch;
    }
  }
  if (s[i] != '\0') {
    memcpy(c->qbuf + n, "...", 3);
    n += 3;
  }
  c->qbuf[n++] = '"';
  c->qbuf[n] = '\0';
  return c->qbuf;
}

/* report writes one error line: "PROG: [FILE:LINE: ][--]NAME: MESSAGE", and on
 * the command line a second line pointing at --help. */
static void report(parse_ctx *c, const opt_def *d, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void report(parse_ctx *c, const opt_def *d, const char *fmt, ...) {
  va_list ap;

  fprintf(c->err, "%s: ", c->prog);
  if (c->in_file) {
    fprintf(c->err, "%s:%zu: ", c->file_name, c->line);
  }
  if (d != NULL) {
    fprintf(c->err, c->in_file ? "%s: " : "--%s: ", d->name);
  }
  va_start(ap, fmt);
  vfprintf(c->err, fmt, ap);
  va_end(ap);
  fputc('\n', c->err);
  if (!c->in_file) {
    fprintf(c->err, "Try '%s --help'.\n", c->prog);
  }
}

static int is_digit(char ch) { return ch >= '0' && ch <= '9'; }

static int is_alnum(char ch) {
  return is_digit(ch) || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');
}

static int is_space(char ch) { return ch == ' ' || ch == '\t'; }

/* parse_uint parses decimal digits only (no sign, no spaces) into |*pv|.
 * Returns 0, or -1 when |s| is not a number or has more than 10 digits. */
static int parse_uint(uint64_t *pv, const char *s) {
  uint64_t v = 0;
  size_t n;

  for (n = 0; is_digit(s[n]); ++n) {
    if (n == 10) {
      return -1;
    }
    v = v * 10 + (uint64_t)(s[n] - '0');
  }
  if (n == 0 || s[n] != '\0') {
    return -1;
  }
  *pv = v;
  return 0;
}

/* parse_duration_ms parses "5", "0.5", "2s" or "500ms" into milliseconds.
 * Returns 0, or -1 on bad syntax or a fraction finer than 1 ms. */
static int parse_duration_ms(uint64_t *pms, const char *s) {
  uint64_t whole = 0;
  uint64_t frac = 0;
  size_t nd = 0;
  size_t nf = 0;
  int has_dot = 0;

  for (; is_digit(*s); ++s) {
    if (++nd > 9) {
      return -1;
    }
    whole = whole * 10 + (uint64_t)(*s - '0');
  }
  if (nd == 0) {
    return -1;
  }
  if (*s == '.') {
    has_dot = 1;
    for (++s; is_digit(*s); ++s) {
      if (++nf > 3) {
        return -1;
      }
      frac = frac * 10 + (uint64_t)(*s - '0');
    }
    if (nf == 0) {
      return -1;
    }
    for (; nf < 3; ++nf) {
      frac *= 10;
    }
  }
  if (strcmp(s, "ms") == 0) {
    if (has_dot) {
      return -1;
    }
    *pms = whole;
    return 0;
  }
  if (*s == '\0' || strcmp(s, "s") == 0) {
    *pms = whole * 1000 + frac;
    return 0;
  }
  return -1;
}

/* parse_bool accepts true/false, yes/no, on/off and 1/0 in any case. */
static int parse_bool(int *pv, const char *s) {
  static const char *const yes[] = {"true", "yes", "on", "1"};
  static const char *const no[] = {"false", "no", "off", "0"};
  size_t i;

  for (i = 0; i < sizeof(yes) / sizeof(yes[0]); ++i) {
    if (strcasecmp(s, yes[i]) == 0) {
      *pv = 1;
      return 0;
    }
    if (strcasecmp(s, no[i]) == 0) {
      *pv = 0;
      return 0;
    }
  }
  return -1;
}

/* is_ipv4 checks a dotted quad of |n| bytes. */
static int is_ipv4(const char *s, size_t n) {
  char tmp[16];
  struct in_addr a;

  if (n == 0 || n >= sizeof(tmp)) {
    return 0;
  }
  memcpy(tmp, s, n);
  tmp[n] = '\0';
  return inet_pton(AF_INET, tmp, &a) == 1;
}

/* is_ipv6 checks an IPv6 address of |n| bytes without brackets, optionally
 * with a zone ("fe80::1%eth0"). */
static int is_ipv6(const char *s, size_t n) {
  char tmp[64];
  struct in6_addr a;
  const char *pct = memchr(s, '%', n);
  size_t alen = pct != NULL ? (size_t)(pct - s) : n;
  size_t i;

  if (alen == 0 || alen >= sizeof(tmp)) {
    return 0;
  }
  memcpy(tmp, s, alen);
  tmp[alen] = '\0';
  if (inet_pton(AF_INET6, tmp, &a) != 1) {
    return 0;
  }
  if (pct != NULL) {
    size_t zlen = n - alen - 1;
    if (zlen == 0 || zlen > 15) {
      return 0;
    }
    for (i = alen + 1; i < n; ++i) {
      if (!is_alnum(s[i]) && s[i] != '.' && s[i] != '_' && s[i] != '-') {
        return 0;
      }
    }
  }
  return 1;
}

/* is_dns_name checks the syntax of a host name of |n| bytes: labels of 1-63
 * letters, digits and inner hyphens, at most 253 bytes, one optional trailing
 * dot, and a last label that is not all digits (that would be a bad IPv4). */
static int is_dns_name(const char *s, size_t n) {
  size_t label = 0;
  int all_digits = 1;
  size_t i;

  if (n > 0 && s[n - 1] == '.') {
    --n;
  }
  if (n == 0 || n > 253) {
    return 0;
  }
  for (i = 0; i < n; ++i) {
    char ch = s[i];
    if (ch == '.') {
      if (label == 0 || s[i - 1] == '-') {
        return 0;
      }
      label = 0;
      all_digits = 1;
      continue;
    }
    if (!is_alnum(ch) && ch != '-') {
      return 0;
    }
    if (label == 0 && ch == '-') {
      return 0;
    }
    if (++label > 63) {
      return 0;
    }
    if (!is_digit(ch)) {
      all_digits = 0;
    }
  }
  return s[n - 1] != '-' && !all_digits;
}

/* parse_host_n stores the host of |n| bytes in |dst| (256 bytes) without
 * brackets. Brackets are only allowed around an IPv6 address. */
static int parse_host_n(char *dst, const char *s, size_t n) {
  if (n >= 2 && s[0] == '[' && s[n - 1] == ']') {
    ++s;
    n -= 2;
    if (!is_ipv6(s, n)) {
      return -1;
    }
  } else if (!is_ipv4(s, n) && !is_ipv6(s, n) && !is_dns_name(s, n)) {
    return -1;
  }
  memcpy(dst, s, n);
  dst[n] = '\0';
  return 0;
}

static int set_host(parse_ctx *c, const opt_def *d, char *dst, const char *s) {
  if (parse_host_n(dst, s, strlen(s)) != 0) {
    report(c, d,
           "invalid host %s (expected an IPv4 or IPv6 address or a DNS name)",
           quote(c, s));
    return -1;
  }
  return 0;
}

static int set_port(parse_ctx *c, const opt_def *d, uint16_t *dst,
                    const char *s, unsigned min) {
  uint64_t v;

  if (parse_uint(&v, s) != 0 || v < min || v > 65535) {
    report(c, d, "invalid port %s (expected %u-65535)", quote(c, s), min);
    return -1;
  }
  *dst = (uint16_t)v;
  return 0;
}

/* set_hostport parses "HOST:PORT" or "[IPV6]:PORT"; |hp| may be NULL to only
 * validate. */
static int set_path(parse_ctx *c, const opt_def *d, char *dst, size_t dstlen,
                    const char *s);

/* Per-remote attributes after the address: ",cert=FILE" and ",name=SAN". */
static int set_remote_attrs(parse_ctx *c, const opt_def *d, prd_hostport *hp,
                            const char *attrs) {
  while (*attrs == ',') {
    const char *v, *end;
    char buf[4096];
    size_t n;
    ++attrs;
    end = strchr(attrs, ',');
    n = end ? (size_t)(end - attrs) : strlen(attrs);
    if (n >= sizeof(buf)) {
      report(c, d, "attribute too long");
      return -1;
    }
    memcpy(buf, attrs, n);
    buf[n] = 0;
    v = strchr(buf, '=');
    if (v && strncmp(buf, "cert=", 5) == 0) {
      if (set_path(c, d, hp->cert, sizeof(hp->cert), v + 1) != 0) {
        return -1;
      }
    } else if (v && strncmp(buf, "name=", 5) == 0) {
      if (parse_host_n(hp->name, v + 1, strlen(v + 1)) != 0) {
        report(c, d, "invalid name %s", quote(c, v + 1));
        return -1;
      }
    } else {
      report(c, d, "unknown attribute %s (expected cert=FILE or name=NAME)",
             quote(c, buf));
      return -1;
    }
    attrs += n;
  }
  return 0;
}

static int set_hostport(parse_ctx *c, const opt_def *d, prd_hostport *hp,
                        const char *full) {
  prd_hostport tmp;
  const char *colon;
  char s[600];
  const char *comma = strchr(full, ',');
  size_t hlen, alen = comma ? (size_t)(comma - full) : strlen(full);
  uint64_t port;
  int ok;

  memset(&tmp, 0, sizeof(tmp));
  if (alen >= sizeof(s)) {
    report(c, d, "invalid address %s", quote(c, full));
    return -1;
  }
  memcpy(s, full, alen);
  s[alen] = 0;

  if (s[0] == '[') {
    const char *close = strchr(s, ']');
    colon = close != NULL ? close + 1 : NULL;
    ok = close != NULL && *colon == ':' &&
         is_ipv6(s + 1, (size_t)(close - s - 1));
    hlen = ok ? (size_t)(colon - s) : 0;
  } else {
    colon = strrchr(s, ':');
    hlen = colon != NULL ? (size_t)(colon - s) : 0;
    if (colon != NULL && memchr(s, ':', hlen) != NULL) {
      report(c, d,
             "invalid address %s (write an IPv6 address in brackets: "
             "[::1]:4433)",
             quote(c, s));
      return -1;
    }
    ok = colon != NULL && hlen > 0;
  }
  ok = ok && parse_host_n(tmp.host, s, hlen) == 0;
  if (!ok) {
    report(c, d, "invalid address %s (expected HOST:PORT or [IPV6]:PORT)",
           quote(c, s));
    return -1;
  }
  if (parse_uint(&port, colon + 1) != 0 || port < 1 || port > 65535) {
    report(c, d, "invalid port in %s (expected 1-65535)", quote(c, s));
    return -1;
  }
  tmp.port = (uint16_t)port;
  if (comma && set_remote_attrs(c, d, &tmp, comma) != 0) {
    return -1;
  }
  if (hp != NULL) {
    *hp = tmp;
  }
  return 0;
}

static int set_path(parse_ctx *c, const opt_def *d, char *dst, size_t dstlen,
                    const char *s) {
  size_t n = strlen(s);

  if (n == 0) {
    report(c, d, "empty file name");
    return -1;
  }
  if (n >= dstlen) {
    report(c, d, "path too long (max %zu bytes)", dstlen - 1);
    return -1;
  }
  memcpy(dst, s, n + 1);
  return 0;
}

static int set_u32(parse_ctx *c, const opt_def *d, uint32_t *dst, const char *s,
                   uint64_t min, uint64_t max) {
  uint64_t v;

  if (parse_uint(&v, s) != 0 || v < min || v > max) {
    report(c, d, "invalid number %s (expected %llu-%llu)", quote(c, s),
           (unsigned long long)min, (unsigned long long)max);
    return -1;
  }
  *dst = (uint32_t)v;
  return 0;
}

/* set_duration stores milliseconds in [min_ms, max_ms]; |expect| describes
 * the range for the message. */
/* parse_prefix reads "ADDR" or "ADDR/BITS" (IPv4 or IPv6). */
static int parse_prefix(prd_opts_prefix *p, const char *s) {
  char buf[64];
  const char *slash = strchr(s, '/');
  size_t n = slash ? (size_t)(slash - s) : strlen(s);
  unsigned long bits;
  char *end;

  if (n == 0 || n >= sizeof(buf)) {
    return -1;
  }
  memcpy(buf, s, n);
  buf[n] = 0;
  memset(p, 0, sizeof(*p));
  if (inet_pton(AF_INET, buf, p->addr) == 1) {
    p->family = 4;
    p->bits = 32;
  } else if (inet_pton(AF_INET6, buf, p->addr) == 1) {
    p->family = 6;
    p->bits = 128;
  } else {
    return -1;
  }
  if (slash) {
    errno = 0;
    bits = strtoul(slash + 1, &end, 10);
    if (slash[1] == 0 || *end != 0 || errno != 0 || bits > p->bits) {
      return -1;
    }
    p->bits = (uint8_t)bits;
  }
  return 0;
}

static int set_duration(parse_ctx *c, const opt_def *d, uint32_t *dst,
                        const char *s, uint64_t min_ms, uint64_t max_ms,
                        const char *expect) {
  uint64_t ms;

  if (parse_duration_ms(&ms, s) != 0 || ms < min_ms || ms > max_ms) {
    report(c, d, "invalid duration %s (expected %s)", quote(c, s), expect);
    return -1;
  }
  *dst = (uint32_t)ms;
  return 0;
}

static int set_psk_value(parse_ctx *c, const opt_def *d, const char *s) {
  size_t n = strlen(s);

  /* Never quote the value: it is a secret. */
  if (n == 0) {
    report(c, d, "empty PSK refused");
    return -1;
  }
  if (n > MAX_PSK_BYTES) {
    report(c, d, "PSK longer than %d bytes", MAX_PSK_BYTES);
    return -1;
  }
  if (c->psk_value != NULL) {
    explicit_bzero(c->psk_value, c->psk_value_len);
    free(c->psk_value);
  }
  c->psk_value = malloc(n);
  if (c->psk_value == NULL) {
    c->psk_value_len = 0;
    report(c, d, "out of memory");
    return -1;
  }
  memcpy(c->psk_value, s, n);
  c->psk_value_len = n;
  c->psk_value_from_argv = !c->in_file;
  return 0;
}

/* apply_value validates |s| for option |id| and stores it. |s| is NULL for a
 * flag given without a value. Returns 0 or -1 (reported). */
/* hex_val returns the value of a hex digit, or -1. */
static int hex_val(char ch) {
  if (is_digit(ch)) {
    return ch - '0';
  }
  if (ch >= 'a' && ch <= 'f') {
    return ch - 'a' + 10;
  }
  if (ch >= 'A' && ch <= 'F') {
    return ch - 'A' + 10;
  }
  return -1;
}

int prd_parse_fingerprint(uint8_t out[PRD_FINGERPRINT_BYTES], const char *s) {
  size_t i;
  int colons;

  /* What --print-fingerprint prints: "SHA256:" and 32 hex pairs separated
   * by colons. The prefix is optional, the colons too (all or none), and
   * the case of letters does not matter. */
  if (strncasecmp(s, "SHA256:", 7) == 0) {
    s += 7;
  }
  colons = strlen(s) == 3 * PRD_FINGERPRINT_BYTES - 1;
  for (i = 0; i < PRD_FINGERPRINT_BYTES; ++i) {
    int hi = hex_val(s[0]);
    int lo = hi < 0 ? -1 : hex_val(s[1]);
    if (lo < 0) {
      return -1;
    }
    out[i] = (uint8_t)(hi << 4 | lo);
    s += 2;
    if (colons && i + 1 < PRD_FINGERPRINT_BYTES) {
      if (*s != ':') {
        return -1;
      }
      ++s;
    }
  }
  return *s == '\0' ? 0 : -1;
}

static int apply_value(parse_ctx *c, opt_id id, const char *s) {
  const opt_def *d = &opt_defs[id];
  prd_opts *o = c->o;
  int flag = 1;

  if (d->kind == KIND_FLAG) {
    if (s != NULL && parse_bool(&flag, s) != 0) {
      report(c, d, "invalid value %s (expected true or false)", quote(c, s));
      return -1;
    }
  } else if (s == NULL || (c->in_file && s[0] == '\0' &&
                           id != OPT_KEYLOG_FILE && id != OPT_QUIC_PSK)) {
    report(c, d, "missing value (%s)", d->arg);
    return -1;
  }

  switch (id) {
  case OPT_LOCAL_HOST:
    return set_host(c, d, o->local_host, s);
  case OPT_LOCAL_PORT:
    return set_port(c, d, &o->local_port, s, 1);
  case OPT_DESTINATION_HOST:
    return set_host(c, d, o->destination_host, s);
  case OPT_DESTINATION_PORT:
    return set_port(c, d, &o->destination_port, s, 1);
  case OPT_PROXY_PROTOCOL:
    if (strcmp(s, "v1") == 0) {
      o->proxy_protocol = PRD_PROXY_V1;
    } else if (strcmp(s, "v2") == 0) {
      o->proxy_protocol = PRD_PROXY_V2;
    } else if (strcmp(s, "none") == 0) {
      o->proxy_protocol = PRD_PROXY_NONE;
    } else {
      report(c, d, "invalid value %s (expected v1, v2 or none)", quote(c, s));
      return -1;
    }
    return 0;
  case OPT_PENDING_TIMEOUT:
    return set_duration(c, d, &o->pending_timeout_ms, s, 0, 3600000,
                        "0-3600 seconds");
  case OPT_MAX_CONNECTIONS:
    return set_u32(c, d, &o->max_connections, s, 1, 1000000);
  case OPT_MAX_CLIENTS:
    return set_u32(c, d, &o->max_clients, s, 1, 65535);
  case OPT_MAX_STREAMS:
    return set_u32(c, d, &o->max_streams, s, 1, 1000000);
  case OPT_QUIC_SERVER_HOST:
    return set_host(c, d, o->quic_server_host, s);
  case OPT_QUIC_SERVER_PORT:
    return set_port(c, d, &o->quic_server_port, s, 1);
  case OPT_QUIC_CERT_HOSTNAME:
    if (o->n_cert_hostnames == PRD_MAX_CERT_HOSTNAMES) {
      report(c, d, "given more than %d times", PRD_MAX_CERT_HOSTNAMES);
      return -1;
    }
    if (set_host(c, d, o->cert_hostnames[o->n_cert_hostnames], s) != 0) {
      return -1;
    }
    ++o->n_cert_hostnames;
    return 0;
  case OPT_QUIC_REMOTE_HOST:
  case OPT_QUIC_REMOTE_PORT:
  case OPT_QUIC_REMOTE: {
    const unsigned char *seen = c->in_file ? c->file_seen : c->cli_seen;
    if (id == OPT_QUIC_REMOTE
            ? (seen[OPT_QUIC_REMOTE_HOST] || seen[OPT_QUIC_REMOTE_PORT])
            : seen[OPT_QUIC_REMOTE] != 0) {
      report(c, d, "cannot be combined with %s%s", c->in_file ? "" : "--",
             id == OPT_QUIC_REMOTE
                 ? (seen[OPT_QUIC_REMOTE_HOST] ? "quic-remote-host"
                                               : "quic-remote-port")
                 : "quic-remote");
      return -1;
    }
    if (id == OPT_QUIC_REMOTE_HOST) {
      return set_host(c, d, c->remote_host, s);
    }
    if (id == OPT_QUIC_REMOTE_PORT) {
      return set_port(c, d, &c->remote_port, s, 1);
    }
    if (o->n_remotes == PRD_MAX_REMOTES) {
      report(c, d, "given more than %d times", PRD_MAX_REMOTES);
      return -1;
    }
    if (set_hostport(c, d, &o->remotes[o->n_remotes], s) != 0) {
      return -1;
    }
    ++o->n_remotes;
    return 0;
  }
  case OPT_QUIC_LOCAL_HOST:
    return set_host(c, d, o->quic_local_host, s);
  case OPT_QUIC_LOCAL_PORT:
    return set_port(c, d, &o->quic_local_port, s, 0);
  case OPT_IDLE_TIMEOUT:
    return set_duration(c, d, &o->idle_timeout_ms, s, 1000, 600000,
                        "1-600 seconds");
  case OPT_KEEPALIVE:
    if (set_duration(c, d, &o->keepalive_ms, s, 0, 600000,
                     "0 (off) or 0.1-600 seconds") != 0) {
      return -1;
    }
    if (o->keepalive_ms != 0 && o->keepalive_ms < 100) {
      report(c, d, "invalid duration %s (expected 0 (off) or 0.1-600 seconds)",
             quote(c, s));
      return -1;
    }
    c->keepalive_given = 1;
    return 0;
  case OPT_MAX_UDP_PAYLOAD:
    if (set_u32(c, d, &o->max_udp_payload, s, 0, 65527) != 0) {
      return -1;
    }
    if (o->max_udp_payload != 0 && o->max_udp_payload < 1200) {
      report(c, d, "invalid number %s (expected 0 or 1200-65527)", quote(c, s));
      return -1;
    }
    return 0;
  case OPT_CONGESTION_CONTROL:
    if (strcmp(s, "cubic") == 0) {
      o->congestion_control = PRD_CC_CUBIC;
    } else if (strcmp(s, "reno") == 0) {
      o->congestion_control = PRD_CC_RENO;
    } else if (strcmp(s, "bbr") == 0) {
      o->congestion_control = PRD_CC_BBR;
    } else if (strcmp(s, "bbr2") == 0) {
      o->congestion_control = PRD_CC_BBR2;
    } else {
      report(c, d, "invalid value %s (expected cubic, reno, bbr or bbr2)",
             quote(c, s));
      return -1;
    }
    return 0;
  case OPT_QUIC_PSK:
    return set_psk_value(c, d, s);
  case OPT_QUIC_PSK_FILE:
    if (set_path(c, d, c->psk_file, sizeof(c->psk_file), s) != 0) {
      return -1;
    }
    c->psk_file_line = c->in_file ? c->line : 0;
    return 0;
  case OPT_AUTH_TIMEOUT:
    return set_duration(c, d, &o->auth_timeout_ms, s, 100, 600000,
                        "0.1-600 seconds");
  case OPT_AUTH_FAIL_COOLDOWN:
    return set_duration(c, d, &o->auth_fail_cooldown_ms, s, 0, 86400000,
                        "0-86400 seconds");
  case OPT_AUTH_FAIL_EXEMPT:
    if (o->n_auth_exempt == PRD_MAX_AUTH_EXEMPT) {
      report(c, d, "given more than %d times", PRD_MAX_AUTH_EXEMPT);
      return -1;
    }
    if (parse_prefix(&o->auth_exempt[o->n_auth_exempt], s) != 0) {
      report(c, d, "invalid address %s (expected ADDR or ADDR/BITS)",
             quote(c, s));
      return -1;
    }
    ++o->n_auth_exempt;
    return 0;
  case OPT_QUIC_REMOTE_HOSTNAME_MATCH:
    return set_host(c, d, o->remote_hostname_match, s);
  case OPT_SERVER_CERT:
    return set_path(c, d, o->server_cert, sizeof(o->server_cert), s);
  case OPT_SERVER_FINGERPRINT:
    if (o->n_server_fingerprints == PRD_MAX_FINGERPRINTS) {
      report(c, d, "given more than %d times", PRD_MAX_FINGERPRINTS);
      return -1;
    }
    if (prd_parse_fingerprint(o->server_fingerprints[o->n_server_fingerprints],
                              s) != 0) {
      report(c, d,
             "invalid fingerprint %s (expected SHA256: and 32 hex pairs, "
             "as --print-fingerprint prints)",
             quote(c, s));
      return -1;
    }
    ++o->n_server_fingerprints;
    return 0;
  case OPT_TRUST_ON_FIRST_USE:
    o->trust_on_first_use = flag;
    return 0;
  case OPT_PRINT_FINGERPRINT:
    o->print_fingerprint = flag;
    return 0;
  case OPT_KEYLOG_FILE:
    /* An empty name turns key logging off, also against SSLKEYLOGFILE. */
    c->keylog_given = 1;
    if (s[0] == '\0') {
      o->keylog_file[0] = '\0';
      return 0;
    }
    return set_path(c, d, o->keylog_file, sizeof(o->keylog_file), s);
  case OPT_CONFIG:
    return set_path(c, d, o->config_file, sizeof(o->config_file), s);
  case OPT_CONFIG_DIR:
    return set_path(c, d, o->config_dir, sizeof(o->config_dir), s);
  case OPT_LOG_LEVEL:
    if (prd_log_level_parse(&o->log_level, s) != 0) {
      report(c, d,
             "invalid level %s (expected off, error, warn, info, debug or "
             "trace)",
             quote(c, s));
      return -1;
    }
    return 0;
  case OPT_METRICS_LISTEN:
    if (set_hostport(c, d, NULL, s) != 0) {
      return -1;
    }
    if (strlen(s) >= sizeof(o->metrics_listen)) {
      report(c, d, "address too long");
      return -1;
    }
    memcpy(o->metrics_listen, s, strlen(s) + 1);
    c->metrics_given = 1;
    return 0;
  case OPT_PROVIDE_METRICS:
    o->provide_metrics = flag;
    return 0;
  case OPT_PRINT_METRICS:
    o->print_metrics = flag;
    return 0;
  case OPT_SHUTDOWN_GRACE:
    return set_duration(c, d, &o->grace_ms, s, 0, 3600000, "0-3600 seconds");
  case OPT_HELP:
  case OPT_VERSION:
  case OPT_COUNT:
    break;
  }
  return -1;
}

/* find_opt looks up a long name of |n| bytes. */
static const opt_def *find_opt(const char *name, size_t n) {
  size_t i;

  for (i = 0; i < OPT_COUNT; ++i) {
    if (strlen(opt_defs[i].name) == n &&
        memcmp(opt_defs[i].name, name, n) == 0) {
      return &opt_defs[i];
    }
  }
  return NULL;
}

static const char *role_prog(prd_role role) {
  return role == PRD_ROLE_SERVER ? "portredirect_server"
                                 : "portredirect_client";
}

static void report_other_role(parse_ctx *c, const opt_def *d) {
  report(c, NULL, "%s%s is an option of %s, not of %s", c->in_file ? "" : "--",
         d->name,
         role_prog(c->o->role == PRD_ROLE_SERVER ? PRD_ROLE_CLIENT
                                                 : PRD_ROLE_SERVER),
         c->prog);
}

static void print_help(parse_ctx *c) {
  unsigned mask = 1u << c->o->role;
  int width = 0;
  int sec;
  size_t i;
  FILE *f = c->out;

  for (i = 0; i < OPT_COUNT; ++i) {
    const opt_def *d = &opt_defs[i];
    int w = (int)strlen(d->name) + 2 +
            (d->arg != NULL ? (int)strlen(d->arg) + 1 : 0);
    if ((d->roles & mask) != 0 && w > width) {
      width = w;
    }
  }
  if (c->o->role == PRD_ROLE_SERVER) {
    fprintf(f,
            "Usage: %s --local-port PORT [OPTION]...\n"
            "Accept TCP connections on --local-host:--local-port and "
            "forward each one\n"
            "through a QUIC tunnel to an authenticated "
            "portredirect_client.\n",
            c->prog);
  } else {
    fprintf(f,
            "Usage: %s --destination-port PORT [OPTION]...\n"
            "Connect to a portredirect_server over QUIC and forward each "
            "tunneled\n"
            "connection to --destination-host:--destination-port.\n",
            c->prog);
  }
  for (sec = 0; sec < SEC_COUNT; ++sec) {
    fprintf(f, "\n%s:\n", section_names[sec]);
    for (i = 0; i < OPT_COUNT; ++i) {
      const opt_def *d = &opt_defs[i];
      char left[64];
      if ((d->roles & mask) == 0 || (int)d->section != sec) {
        continue;
      }
      if (i == OPT_HELP || i == OPT_VERSION) {
        snprintf(left, sizeof(left), "-%c, --%s", i == OPT_HELP ? 'h' : 'V',
                 d->name);
      } else {
        snprintf(left, sizeof(left), "--%s%s%s", d->name,
                 d->arg != NULL ? " " : "", d->arg != NULL ? d->arg : "");
      }
      fprintf(f, "  %-*s  %s\n", width, left, d->help);
    }
  }
  fprintf(f,
          "\n"
          "SECONDS is a whole or decimal number of seconds (5, 0.5) or "
          "milliseconds\n"
          "with \"ms\" (500ms). LEVEL is off, error, warn, info, debug or "
          "trace.\n"
          "HOST is an IPv4 address, an IPv6 address (brackets optional) or "
          "a DNS name.\n"
          "ALGO bbr is BBR v1 and bbr2 BBRv2 when built against ngtcp2 0.12; "
          "ngtcp2 1.x\n"
          "has one BBR, and both names select it.\n"
          "Options may be given as --name VALUE or --name=VALUE.\n"
          "\n"
          "Environment:\n"
          "  PORTREDIRECT_PSK  pre-shared key if no --quic-psk or "
          "--quic-psk-file\n"
          "  SSLKEYLOGFILE     default for --keylog-file\n"
          "  XDG_CONFIG_HOME   locates CONFIG-DIR (an empty value counts as "
          "unset)\n"
          "\n"
          "Files:\n"
          "  CONFIG-DIR           --config-dir, else "
          "$XDG_CONFIG_HOME/portredirect,\n"
          "                       else ~/.config/portredirect\n"
          "%s"
          "  --config FILE        lines of \"key = value\"; key is an "
          "option name without\n"
          "                       \"--\"; # starts a comment; the command "
          "line wins\n",
          c->o->role == PRD_ROLE_SERVER
              ? "  CONFIG-DIR/cert.der  certificate (X.509, DER), made on "
                "first start\n"
                "  CONFIG-DIR/key.der   private key (PKCS#8, DER, mode "
                "0600)\n"
              : "  CONFIG-DIR/cert.der  the server's certificate (X.509, "
                "DER), pinned\n");
}

/* parse_argv applies the command line. Returns 1 after --help/--version, 0 or
 * -1. */
static int parse_argv(parse_ctx *c, int argc, char **argv) {
  int i;
  int end_of_options = 0;
  unsigned mask = 1u << c->o->role;

  for (i = 1; i < argc && argv[i] != NULL; ++i) {
    const char *a = argv[i];
    const char *name;
    const char *eq;
    const char *val = NULL;
    const opt_def *d;
    size_t n;

    if (!end_of_options && strcmp(a, "-h") == 0) {
      print_help(c);
      return 1;
    }
    if (!end_of_options && strcmp(a, "-V") == 0) {
      fprintf(c->out, "%s %s\n", c->prog, PRD_VERSION);
      return 1;
    }
    if (!end_of_options && strcmp(a, "--") == 0) {
      end_of_options = 1;
      continue;
    }
    if (end_of_options || a[0] != '-') {
      report(c, NULL, "unexpected argument %s", quote(c, a));
      return -1;
    }
    if (a[1] != '-') {
      report(c, NULL, "unknown option %s", quote(c, a));
      return -1;
    }
    name = a + 2;
    eq = strchr(name, '=');
    n = eq != NULL ? (size_t)(eq - name) : strlen(name);
    d = find_opt(name, n);
    if (d == NULL) {
      /* Quote only the name: a mistyped --quic-psk=... carries a secret. */
      char tmp[80];
      snprintf(tmp, sizeof(tmp), "--%.*s", n > 70 ? 70 : (int)n, name);
      report(c, NULL, "unknown option %s", quote(c, tmp));
      return -1;
    }
    if ((d->roles & mask) == 0) {
      report_other_role(c, d);
      return -1;
    }
    if (d->kind == KIND_ACTION) {
      if (eq != NULL) {
        report(c, d, "takes no value");
        return -1;
      }
      if (d == &opt_defs[OPT_HELP]) {
        print_help(c);
      } else {
        fprintf(c->out, "%s %s\n", c->prog, PRD_VERSION);
      }
      return 1;
    }
    if (eq != NULL) {
      val = eq + 1;
    } else if (d->kind != KIND_FLAG) {
      if (i + 1 >= argc || argv[i + 1] == NULL) {
        report(c, d, "missing value (%s)", d->arg);
        return -1;
      }
      val = argv[++i];
    }
    c->cli_seen[d - opt_defs] = 1;
    c->cli_group[d->group] = 1;
    if (apply_value(c, (opt_id)(d - opt_defs), val) != 0) {
      return -1;
    }
  }
  return 0;
}

/* parse_config_line applies one line (NUL-terminated, no line break). */
static int parse_config_line(parse_ctx *c, char *l) {
  unsigned mask = 1u << c->o->role;
  char *key;
  char *val;
  char *p;
  const opt_def *d;
  size_t n;

  for (p = l; is_space(*p); ++p) {
  }
  if (*p == '\0' || *p == '#') {
    return 0;
  }
  key = p;
  while (*p != '\0' && *p != '=' && !is_space(*p)) {
    ++p;
  }
  n = (size_t)(p - key);
  while (is_space(*p)) {
    ++p;
  }
  if (*p == '=') {
    for (++p; is_space(*p); ++p) {
    }
    val = p;
  } else if (*p == '\0' || *p == '#') {
    val = NULL; /* a bare key: only for flags */
  } else {
    key[n] = '\0';
    report(c, NULL, "expected \"key = value\" after %s", quote(c, key));
    return -1;
  }
  key[n] = '\0';
  if (val != NULL && *val == '"') {
    char *close = strchr(val + 1, '"');
    if (close == NULL) {
      report(c, NULL, "missing closing quote");
      return -1;
    }
    for (p = close + 1; is_space(*p); ++p) {
    }
    if (*p != '\0' && *p != '#') {
      report(c, NULL, "unexpected text after the closing quote");
      return -1;
    }
    ++val;
    *close = '\0';
  } else if (val != NULL) {
    /* A '#' after whitespace starts a comment; then trim the value. */
    for (p = val; *p != '\0'; ++p) {
      if (*p == '#' && (p == val || is_space(p[-1]))) {
        break;
      }
    }
    while (p > val && is_space(p[-1])) {
      --p;
    }
    *p = '\0';
    if (*val == '\0') {
      val = NULL;
    }
  }
  d = find_opt(key, n);
  if (d == NULL) {
    report(c, NULL, "unknown option %s", quote(c, key));
    return -1;
  }
  if (d->kind == KIND_ACTION || d == &opt_defs[OPT_CONFIG]) {
    report(c, NULL, "option %s is not allowed in a config file", quote(c, key));
    return -1;
  }
  if ((d->roles & mask) == 0) {
    report_other_role(c, d);
    return -1;
  }
  /* The command line wins, for repeatable keys and groups as a whole. */
  if (c->cli_seen[d - opt_defs] ||
      (d->group != GROUP_NONE && c->cli_group[d->group])) {
    return 0;
  }
  if (val == NULL && d->kind != KIND_FLAG) {
    report(c, d, "missing value (%s)", d->arg);
    return -1;
  }
  c->file_seen[d - opt_defs] = 1;
  return apply_value(c, (opt_id)(d - opt_defs), val);
}

/* parse_config_buf applies a config file's text of |len| bytes. */
static int parse_config_buf(parse_ctx *c, const char *buf, size_t len) {
  char l[MAX_CONFIG_LINE + 2];
  size_t pos = 0;
  int rv = 0;

  c->in_file = 1;
  c->line = 0;
  while (pos < len && rv == 0) {
    const char *nl = memchr(buf + pos, '\n', len - pos);
    size_t n = nl != NULL ? (size_t)(nl - (buf + pos)) : len - pos;
    size_t m = n;

    ++c->line;
    if (m > 0 && buf[pos + m - 1] == '\r') {
      --m;
    }
    if (m > MAX_CONFIG_LINE) {
      report(c, NULL, "line too long (max %d bytes)", MAX_CONFIG_LINE);
      rv = -1;
    } else if (memchr(buf + pos, '\0', m) != NULL) {
      report(c, NULL, "NUL byte in line");
      rv = -1;
    } else {
      memcpy(l, buf + pos, m);
      l[m] = '\0';
      rv = parse_config_line(c, l);
      explicit_bzero(l, m); /* it may have held the PSK */
    }
    pos += n + (nl != NULL ? 1 : 0);
  }
  c->in_file = 0;
  return rv;
}

/* read_small_file reads all of |path| into a malloc'ed buffer. Returns 0, a
 * negative errno, or -EFBIG when the file is longer than |max| bytes. The
 * caller wipes and frees |*pbuf|. */
static int read_small_file(char **pbuf, size_t *plen, const char *path,
                           size_t max, unsigned *pmode) {
  char *buf;
  size_t len = 0;
  struct stat st;
  int fd;
  int rv = 0;

  fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) {
    return -errno;
  }
  if (pmode != NULL) {
    *pmode = fstat(fd, &st) == 0 ? (unsigned)(st.st_mode & 07777) : 0;
  }
  buf = malloc(max + 1);
  if (buf == NULL) {
    close(fd);
    return -ENOMEM;
  }
  for (;;) {
    ssize_t r = read(fd, buf + len, max + 1 - len);
    if (r < 0) {
      if (errno == EINTR) {
        continue;
      }
      rv = -errno;
      break;
    }
    if (r == 0) {
      break;
    }
    len += (size_t)r;
    if (len > max) {
      rv = -EFBIG;
      break;
    }
  }
  close(fd);
  if (rv != 0) {
    explicit_bzero(buf, len);
    free(buf);
    return rv;
  }
  *pbuf = buf;
  *plen = len;
  return 0;
}

static int parse_config_file(parse_ctx *c, const prd_opts_io *io) {
  char *buf = NULL;
  size_t len = 0;
  int rv;

  if (io->config_buf != NULL) {
    c->file_name = io->config_name != NULL ? io->config_name : "<config>";
    return parse_config_buf(c, io->config_buf, io->config_len);
  }
  if (c->o->config_file[0] == '\0') {
    return 0;
  }
  c->file_name = c->o->config_file;
  rv = read_small_file(&buf, &len, c->o->config_file, MAX_CONFIG_BYTES, NULL);
  if (rv != 0) {
    report(c, &opt_defs[OPT_CONFIG], "cannot read %s: %s",
           quote(c, c->o->config_file),
           rv == -EFBIG ? "larger than 1 MiB" : strerror(-rv));
    return -1;
  }
  rv = parse_config_buf(c, buf, len);
  explicit_bzero(buf, len);
  free(buf);
  return rv;
}

static int set_psk(parse_ctx *c, const char *src, const char *data,
                   size_t len) {
  if (len == 0) {
    report(c, NULL, "empty PSK from %s refused", src);
    return -1;
  }
  if (len > MAX_PSK_BYTES) {
    report(c, NULL, "PSK from %s is longer than %d bytes", src, MAX_PSK_BYTES);
    return -1;
  }
  c->o->psk = malloc(len);
  if (c->o->psk == NULL) {
    report(c, NULL, "out of memory");
    return -1;
  }
  memcpy(c->o->psk, data, len);
  c->o->psklen = len;
  return 0;
}

/* resolve_psk applies the precedence --quic-psk, --quic-psk-file,
 * PORTREDIRECT_PSK. */
static int resolve_psk(parse_ctx *c) {
  prd_opts *o = c->o;
  const char *env;
  char *buf = NULL;
  size_t len = 0;
  size_t readlen;
  int rv;

  if (c->psk_value != NULL) {
    o->psk_from_argv = c->psk_value_from_argv;
    return set_psk(c, "--quic-psk", c->psk_value, c->psk_value_len);
  }
  if (c->psk_file[0] != '\0') {
    char src[MAX_PATH_BYTES + 32];
    /* Report errors at the line that named the file, if any. */
    c->in_file = c->psk_file_line != 0;
    c->line = c->psk_file_line;
    rv = read_small_file(&buf, &len, c->psk_file, MAX_PSK_BYTES + 2,
                         &o->psk_file_mode);
    if (rv != 0) {
      report(c, &opt_defs[OPT_QUIC_PSK_FILE], "cannot read %s: %s",
             quote(c, c->psk_file),
             rv == -EFBIG ? "longer than 1024 bytes" : strerror(-rv));
      c->in_file = 0;
      return -1;
    }
    readlen = len;
    /* design.md §5: exactly one trailing "\n" or "\r\n" is not part of it. */
    if (len > 0 && buf[len - 1] == '\n') {
      --len;
      if (len > 0 && buf[len - 1] == '\r') {
        --len;
      }
    }
    /* spec/06-files-and-cli.md §4: warn if group or others can read it. */
    o->psk_file_loose = (o->psk_file_mode & 044) != 0;
    snprintf(o->psk_file, sizeof(o->psk_file), "%s", c->psk_file);
    snprintf(src, sizeof(src), "--quic-psk-file %s", quote(c, c->psk_file));
    rv = set_psk(c, src, buf, len);
    explicit_bzero(buf, readlen);
    free(buf);
    c->in_file = 0;
    return rv;
  }
  env = getenv("PORTREDIRECT_PSK");
  if (env != NULL) {
    return set_psk(c, "PORTREDIRECT_PSK", env, strlen(env));
  }
  if (o->print_fingerprint) {
    return 0;
  }
  report(c, NULL,
         "--quic-psk, --quic-psk-file or PORTREDIRECT_PSK is "
         "required");
  return -1;
}

/* resolve_config_dir applies $XDG_CONFIG_HOME/portredirect, else
 * $HOME/.config/portredirect, else the passwd home. */
static int resolve_config_dir(parse_ctx *c) {
  prd_opts *o = c->o;
  const char *xdg = getenv("XDG_CONFIG_HOME");
  const char *home = getenv("HOME");
  int n;

  if (o->config_dir[0] != '\0') {
    return 0;
  }
  /* XDG: an empty or relative value is ignored. */
  if (xdg != NULL && xdg[0] == '/') {
    n = snprintf(o->config_dir, sizeof(o->config_dir), "%s/portredirect", xdg);
  } else {
    if (home == NULL || home[0] == '\0') {
      struct passwd *pw = getpwuid(getuid());
      home = pw != NULL ? pw->pw_dir : NULL;
    }
    if (home == NULL || home[0] == '\0') {
      report(c, NULL,
             "cannot find the home directory: set HOME, "
             "XDG_CONFIG_HOME or --config-dir");
      return -1;
    }
    n = snprintf(o->config_dir, sizeof(o->config_dir),
                 "%s/.config/portredirect", home);
  }
  if (n < 0 || (size_t)n >= sizeof(o->config_dir)) {
    o->config_dir[0] = '\0';
    report(c, NULL, "config directory path too long; use --config-dir");
    return -1;
  }
  return 0;
}

/* finish checks what needs all sources and fills derived defaults. */
static int finish(parse_ctx *c) {
  prd_opts *o = c->o;
  const char *env;

  if (o->role == PRD_ROLE_SERVER) {
    if (o->local_port == 0 && !o->print_fingerprint) {
      report(c, NULL, "--local-port is required");
      return -1;
    }
  } else {
    if (o->destination_port == 0 && !o->print_fingerprint) {
      report(c, NULL, "--destination-port is required");
      return -1;
    }
    if (o->n_remotes == 0) {
      memcpy(o->remotes[0].host, c->remote_host, sizeof(c->remote_host));
      o->remotes[0].port = c->remote_port;
      o->n_remotes = 1;
    }
    /* spec/06-files-and-cli.md §3: a fingerprint is the whole pin. */
    if (o->n_server_fingerprints > 0 &&
        (o->server_cert[0] || o->trust_on_first_use)) {
      report(c, NULL, "--server-fingerprint cannot be combined with %s",
             o->server_cert[0] ? "--server-cert" : "--trust-on-first-use");
      return -1;
    }
    if (o->provide_metrics && !c->metrics_given) {
      memcpy(o->metrics_listen, DEF_METRICS_LISTEN, sizeof(DEF_METRICS_LISTEN));
    }
  }
  if (o->keepalive_ms >= o->idle_timeout_ms) {
    if (c->keepalive_given) {
      report(c, NULL,
             "--keepalive (%u ms) must be shorter than --idle-timeout (%u ms)",
             (unsigned)o->keepalive_ms, (unsigned)o->idle_timeout_ms);
      return -1;
    }
    o->keepalive_ms = o->idle_timeout_ms / 2;
  }
  if (!c->keylog_given) {
    env = getenv("SSLKEYLOGFILE");
    if (env != NULL && env[0] != '\0') {
      if (strlen(env) >= sizeof(o->keylog_file)) {
        report(c, NULL, "SSLKEYLOGFILE: path too long");
        return -1;
      }
      memcpy(o->keylog_file, env, strlen(env) + 1);
    }
  }
  if (resolve_config_dir(c) != 0) {
    return -1;
  }
  return resolve_psk(c);
}

static void set_defaults(prd_opts *o, prd_role role) {
  memset(o, 0, sizeof(*o));
  o->role = role;
  o->log_level = PRD_LOG_INFO;
  o->congestion_control = PRD_CC_BBR2;
  o->idle_timeout_ms = DEF_IDLE_TIMEOUT_S * 1000;
  o->keepalive_ms = DEF_KEEPALIVE_S * 1000;
  memcpy(o->local_host, DEF_HOST, sizeof(DEF_HOST));
  memcpy(o->quic_server_host, DEF_HOST, sizeof(DEF_HOST));
  o->quic_server_port = DEF_QUIC_PORT;
  o->pending_timeout_ms = DEF_PENDING_TIMEOUT_S * 1000;
  o->auth_timeout_ms = DEF_AUTH_TIMEOUT_S * 1000;
  o->auth_fail_cooldown_ms = DEF_AUTH_FAIL_COOLDOWN_S * 1000;
  o->max_clients = DEF_MAX_CLIENTS;
  o->max_connections = DEF_MAX_CONNECTIONS;
  o->grace_ms = DEF_SHUTDOWN_GRACE_S * 1000;
  memcpy(o->destination_host, DEF_HOST, sizeof(DEF_HOST));
  o->max_streams = DEF_MAX_STREAMS;
}

int prd_opts_parse_io(prd_opts *o, prd_role role, int argc, char **argv,
                      const prd_opts_io *io) {
  parse_ctx *c;
  int rv;

  set_defaults(o, role);
  /* The context holds a 4 KiB path; keep it off small stacks. */
  c = calloc(1, sizeof(*c));
  if (c == NULL) {
    fprintf(io->err, "%s: out of memory\n", role_prog(role));
    return -1;
  }
  c->o = o;
  c->prog = role_prog(role);
  c->out = io->out;
  c->err = io->err;
  memcpy(c->remote_host, DEF_HOST, sizeof(DEF_HOST));
  c->remote_port = DEF_QUIC_PORT;

  rv = argv != NULL ? parse_argv(c, argc, argv) : 0;
  if (rv == 0) {
    rv = parse_config_file(c, io);
  }
  if (rv == 0) {
    rv = finish(c);
  }
  if (c->psk_value != NULL) {
    explicit_bzero(c->psk_value, c->psk_value_len);
    free(c->psk_value);
  }
  free(c);
  if (rv != 0) {
    prd_opts_free(o);
  }
  fflush(io->out);
  fflush(io->err);
  return rv;
}

int prd_opts_parse(prd_opts *o, prd_role role, int argc, char **argv) {
  prd_opts_io io = {.out = stdout, .err = stderr};

  return prd_opts_parse_io(o, role, argc, argv, &io);
}

void prd_opts_free(prd_opts *o) {
  if (o == NULL) {
    return;
  }
  if (o->psk != NULL) {
    explicit_bzero(o->psk, o->psklen);
    free(o->psk);
  }
  o->psk = NULL;
  o->psklen = 0;
}
