/* SPDX-License-Identifier: GPL-3.0-only */
/* Command line, config file and environment of both binaries (README
 * "Options"): the option table, the command line, and the checks once all is
 * read. One option's value is values.c, the config file config.c, --help
 * usage.c. */
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

#include "opts_priv.h"

#define OPT(id, nm, ar, ro, ki, gr, se, he)                                    \
  [id] = {.name = (nm),                                                        \
          .arg = (ar),                                                         \
          .roles = (ro),                                                       \
          .kind = (ki),                                                        \
          .group = (gr),                                                       \
          .section = (se),                                                     \
          .help = (he)}

const opt_def prd_opt_defs[OPT_COUNT] = {
    OPT(OPT_LOCAL_HOST, "local-host", "HOST", ROLE_SERVER, KIND_VALUE,
        GROUP_NONE, SEC_TUNNEL, "TCP listen address (default " DEF_HOST ")"),
    OPT(OPT_LOCAL_PORT, "local-port", "PORT", ROLE_SERVER, KIND_VALUE,
        GROUP_NONE, SEC_TUNNEL, "TCP listen port (the service default)"),
    OPT(OPT_DESTINATION_HOST, "destination-host", "HOST", ROLE_CLIENT,
        KIND_VALUE, GROUP_NONE, SEC_TUNNEL,
        "TCP destination host (default " DEF_HOST ")"),
    OPT(OPT_DESTINATION_PORT, "destination-port", "PORT", ROLE_CLIENT,
        KIND_VALUE, GROUP_NONE, SEC_TUNNEL,
        "TCP destination port (service default)"),
    OPT(OPT_PROXY_PROTOCOL, "proxy-protocol", "none|v1|v2", ROLE_CLIENT,
        KIND_VALUE, GROUP_NONE, SEC_TUNNEL,
        "send a PROXY header first (default none)"),
    OPT(OPT_SERVICE, "service", "NAME=HOST:PORT[-LAST]", ROLE_BOTH, KIND_REPEAT,
        GROUP_NONE, SEC_TUNNEL, "a named service (repeatable; see below)"),
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
    OPT(OPT_QUEUE_BOUND, "queue-bound", "on|off", ROLE_BOTH, KIND_VALUE,
        GROUP_NONE, SEC_QUIC, "short bottleneck queue (default on)"),
    OPT(OPT_QUIC_TCP_LISTEN, "quic-tcp-listen", "HOST:PORT|off", ROLE_SERVER,
        KIND_VALUE, GROUP_NONE, SEC_QUIC,
        "QUIC over TCP (default: the UDP address)"),
    OPT(OPT_QUIC_TRANSPORT, "quic-transport", "auto|udp|tcp", ROLE_CLIENT,
        KIND_VALUE, GROUP_NONE, SEC_QUIC,
        "TCP when UDP is blocked (default auto)"),
    OPT(OPT_QUIC_UDP_PROBE_INTERVAL, "quic-udp-probe-interval", "SECONDS",
        ROLE_CLIENT, KIND_VALUE, GROUP_NONE, SEC_QUIC,
        "on TCP, probe UDP this often (default 30)"),

    OPT(OPT_QUIC_PSK, "quic-psk", "PSK", ROLE_BOTH, KIND_VALUE, GROUP_PSK,
        SEC_SECURITY, "pre-shared key (visible in ps: avoid)"),
    OPT(OPT_QUIC_PSK_FILE, "quic-psk-file", "FILE", ROLE_BOTH, KIND_VALUE,
        GROUP_PSK, SEC_SECURITY, "read the pre-shared key from FILE"),
    OPT(OPT_CLIENTS_FILE, "clients-file", "FILE", ROLE_SERVER, KIND_VALUE,
        GROUP_NONE, SEC_SECURITY, "client names, keys, services (see below)"),
    OPT(OPT_CLIENT_NAME, "client-name", "NAME", ROLE_CLIENT, KIND_VALUE,
        GROUP_NONE, SEC_SECURITY, "our name in the server's clients file"),
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
    OPT(OPT_CHECK_CONFIG, "check-config", NULL, ROLE_BOTH, KIND_FLAG,
        GROUP_NONE, SEC_OPERATIONS, "check the configuration, print it, exit"),
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

const char *prd_opts_quote(parse_ctx *c, const char *s) {
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

void prd_opts_report(parse_ctx *c, const opt_def *d, const char *fmt, ...) {
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

const opt_def *prd_opts_find(const char *name, size_t n) {
  size_t i;

  for (i = 0; i < OPT_COUNT; ++i) {
    if (strlen(prd_opt_defs[i].name) == n &&
        memcmp(prd_opt_defs[i].name, name, n) == 0) {
      return &prd_opt_defs[i];
    }
  }
  return NULL;
}

static const char *role_prog(prd_role role) {
  return role == PRD_ROLE_SERVER ? "portredirect_server"
                                 : "portredirect_client";
}

void prd_opts_report_other_role(parse_ctx *c, const opt_def *d) {
  prd_opts_report(c, NULL, "%s%s is an option of %s, not of %s",
                  c->in_file ? "" : "--", d->name,
                  role_prog(c->o->role == PRD_ROLE_SERVER ? PRD_ROLE_CLIENT
                                                          : PRD_ROLE_SERVER),
                  c->prog);
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
      prd_opts_print_help(c);
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
      prd_opts_report(c, NULL, "unexpected argument %s", prd_opts_quote(c, a));
      return -1;
    }
    if (a[1] != '-') {
      prd_opts_report(c, NULL, "unknown option %s", prd_opts_quote(c, a));
      return -1;
    }
    name = a + 2;
    eq = strchr(name, '=');
    n = eq != NULL ? (size_t)(eq - name) : strlen(name);
    d = prd_opts_find(name, n);
    if (d == NULL) {
      /* Quote only the name: a mistyped --quic-psk=... carries a secret. */
      char tmp[80];
      snprintf(tmp, sizeof(tmp), "--%.*s", n > 70 ? 70 : (int)n, name);
      prd_opts_report(c, NULL, "unknown option %s", prd_opts_quote(c, tmp));
      return -1;
    }
    if ((d->roles & mask) == 0) {
      prd_opts_report_other_role(c, d);
      return -1;
    }
    if (d->kind == KIND_ACTION) {
      if (eq != NULL) {
        prd_opts_report(c, d, "takes no value");
        return -1;
      }
      if (d == &prd_opt_defs[OPT_HELP]) {
        prd_opts_print_help(c);
      } else {
        fprintf(c->out, "%s %s\n", c->prog, PRD_VERSION);
      }
      return 1;
    }
    if (eq != NULL) {
      val = eq + 1;
    } else if (d->kind != KIND_FLAG) {
      if (i + 1 >= argc || argv[i + 1] == NULL) {
        prd_opts_report(c, d, "missing value (%s)", d->arg);
        return -1;
      }
      val = argv[++i];
    }
    c->cli_seen[d - prd_opt_defs] = 1;
    c->cli_group[d->group] = 1;
    if (prd_opts_apply_value(c, (opt_id)(d - prd_opt_defs), val) != 0) {
      return -1;
    }
  }
  return 0;
}

static int set_psk(parse_ctx *c, const char *src, const char *data,
                   size_t len) {
  if (len == 0) {
    prd_opts_report(c, NULL, "empty PSK from %s refused", src);
    return -1;
  }
  if (len > MAX_PSK_BYTES) {
    prd_opts_report(c, NULL, "PSK from %s is longer than %d bytes", src,
                    MAX_PSK_BYTES);
    return -1;
  }
  c->o->psk = malloc(len);
  if (c->o->psk == NULL) {
    prd_opts_report(c, NULL, "out of memory");
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
    rv = prd_opts_read_file(&buf, &len, c->psk_file, MAX_PSK_BYTES + 2,
                            &o->psk_file_mode);
    if (rv != 0) {
      prd_opts_report(c, &prd_opt_defs[OPT_QUIC_PSK_FILE], "cannot read %s: %s",
                      prd_opts_quote(c, c->psk_file),
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
    snprintf(src, sizeof(src), "--quic-psk-file %s",
             prd_opts_quote(c, c->psk_file));
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
  if (o->role == PRD_ROLE_SERVER && o->clients_file[0] != '\0') {
    return 0; /* the clients have their keys (spec/06 §4.1) */
  }
  prd_opts_report(c, NULL,
                  "--quic-psk, --quic-psk-file or PORTREDIRECT_PSK is "
                  "required%s",
                  o->role == PRD_ROLE_SERVER ? " (or --clients-file)" : "");
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
      prd_opts_report(c, NULL,
                      "cannot find the home directory: set HOME, "
                      "XDG_CONFIG_HOME or --config-dir");
      return -1;
    }
    n = snprintf(o->config_dir, sizeof(o->config_dir),
                 "%s/.config/portredirect", home);
  }
  if (n < 0 || (size_t)n >= sizeof(o->config_dir)) {
    o->config_dir[0] = '\0';
    prd_opts_report(c, NULL,
                    "config directory path too long; use --config-dir");
    return -1;
  }
  return 0;
}

/* check_default_service: --local-host/--local-port (server) and
 * --destination-host/--destination-port (client) are the service "default",
 * so a --service default=... may not come with them. */
static int check_default_service(parse_ctx *c) {
  prd_opts *o = c->o;
  opt_id h = o->role == PRD_ROLE_SERVER ? OPT_LOCAL_HOST : OPT_DESTINATION_HOST;
  opt_id p = o->role == PRD_ROLE_SERVER ? OPT_LOCAL_PORT : OPT_DESTINATION_PORT;
  opt_id which;

  for (size_t i = 0; i < o->n_services; ++i) {
    if (strcmp(o->services[i].name, "default") != 0) {
      continue;
    }
    if (!(c->cli_seen[h] || c->file_seen[h] || c->cli_seen[p] ||
          c->file_seen[p])) {
      return 0;
    }
    which = c->cli_seen[p] || c->file_seen[p] ? p : h;
    prd_opts_report(c, NULL,
                    "--service default=... cannot be combined with --%s "
                    "(which is the service default)",
                    prd_opt_defs[which].name);
    return -1;
  }
  return 0;
}

/* finish checks what needs all sources and fills derived defaults. */
static int finish(parse_ctx *c) {
  prd_opts *o = c->o;
  const char *env;

  if (check_default_service(c) != 0) {
    return -1;
  }
  if (o->role == PRD_ROLE_SERVER) {
    if (o->local_port == 0 && o->n_services == 0 && !o->print_fingerprint) {
      prd_opts_report(c, NULL, "--local-port is required (or --service)");
      return -1;
    }
  } else {
    if (o->destination_port == 0 && o->n_services == 0 &&
        !o->print_fingerprint) {
      prd_opts_report(c, NULL, "--destination-port is required (or --service)");
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
      prd_opts_report(
          c, NULL, "--server-fingerprint cannot be combined with %s",
          o->server_cert[0] ? "--server-cert" : "--trust-on-first-use");
      return -1;
    }
    if (o->provide_metrics && !c->metrics_given) {
      memcpy(o->metrics_listen, DEF_METRICS_LISTEN, sizeof(DEF_METRICS_LISTEN));
    }
  }
  if (o->keepalive_ms >= o->idle_timeout_ms) {
    if (c->keepalive_given) {
      prd_opts_report(
          c, NULL,
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
        prd_opts_report(c, NULL, "SSLKEYLOGFILE: path too long");
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
  o->queue_bound = 1;
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
    rv = prd_opts_parse_config_file(c, io);
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
