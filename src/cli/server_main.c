/* SPDX-License-Identifier: GPL-3.0-only */
/* portredirect_server: accepts TCP connections and carries each one as a
 * stream of an authenticated QUIC connection to a client. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../common/log.h"
#include "../quic/identity.h"
#include "../relay/relay.h"
#include "clients.h"
#include "opts.h"
#include "opts_internal.h"
#include "setup.h"

/* is_wildcard: 0.0.0.0 or :: (any address). */
static int is_wildcard(const prd_sockaddr *a) {
  if (a->u.sa.sa_family == AF_INET) {
    return a->u.in.sin_addr.s_addr == htonl(INADDR_ANY);
  }
  return a->u.sa.sa_family == AF_INET6 &&
         IN6_IS_ADDR_UNSPECIFIED(&a->u.in6.sin6_addr);
}

/* How build_make is used: at start-up, on SIGHUP (the identity is the running
 * one's: not read again) or for --check-config (read what exists, create
 * nothing). */
#define BUILD_START 0
#define BUILD_RELOAD 1
#define BUILD_CHECK 2

/* One configuration built from the options: at start-up, on each SIGHUP
 * (README "Reload") and for --check-config. rc points into the rest. */
typedef struct build {
  prd_opts o;
  prd_relay_config rc;
  prd_identity id;
  int have_id; /* --check-config: 0 when there is no certificate yet */
  prd_addr_prefix exempt[PRD_MAX_AUTH_EXEMPT];
  uint8_t secret[32];
  char fp[PRD_FINGERPRINT_LEN], cnames[600];
  /* The clients table this build made: a reload points the running
   * configuration (the start-up build's rc) at a newer table, so what is
   * freed is what was made, not what rc points at. */
  prd_relay_config own;
} build;

/* load_identity loads or makes the certificate, named as the options say,
 * and writes its fingerprint and names. BUILD_CHECK reads an identity that
 * exists and creates none (have_id 0 then). Returns 0, or -1 with a
 * message on |err|. */
static int load_identity(build *b, FILE *err_out, int mode) {
  prd_identity *id = &b->id;
  const prd_opts *o = &b->o;
  char *fp = b->fp, *cnames = b->cnames;
  size_t cnameslen = sizeof(b->cnames);
  const char *names[PRD_MAX_CERT_HOSTNAMES + 4];
  size_t nnames = 0;
  char err[512];

  memset(id, 0, sizeof(*id));
  /* README "Usage": without --quic-cert-hostname the certificate names the
   * QUIC host plus the loopback names the original's tests use. */
  if (o->n_cert_hostnames > 0) {
    for (size_t i = 0; i < o->n_cert_hostnames; ++i) {
      names[nnames++] = o->cert_hostnames[i];
    }
  } else {
    names[nnames++] = o->quic_server_host;
    names[nnames++] = "localhost";
    names[nnames++] = "127.0.0.1";
    names[nnames++] = "::1";
  }
  if (mode == BUILD_CHECK) {
    char path[4200];
    struct stat st;
    snprintf(path, sizeof(path), "%s/%s", o->config_dir, PRD_CERT_FILE);
    if (stat(path, &st) != 0 &&
        (snprintf(path, sizeof(path), "%s/%s", o->config_dir, PRD_KEY_FILE),
         stat(path, &st) != 0)) {
      snprintf(fp, PRD_FINGERPRINT_LEN, "(none yet: made at the first start)");
      snprintf(cnames, cnameslen, "?");
      return 0; /* neither file: start-up would create them */
    }
  }
  if ((mode != BUILD_CHECK &&
       prd_config_dir_ensure(o->config_dir, err, sizeof(err)) != 0) ||
      prd_identity_load_or_create(id, o->config_dir, names, nnames, err,
                                  sizeof(err)) != 0) {
    fprintf(err_out, "portredirect_server: %s\n", err);
    return -1;
  }
  b->have_id = 1;
  if (prd_cert_fingerprint(fp, id->cert_der, id->certlen) != 0) {
    snprintf(fp, PRD_FINGERPRINT_LEN, "?");
  }
  if (prd_cert_names(id->cert_der, id->certlen, cnames, cnameslen) < 0) {
    snprintf(cnames, cnameslen, "?");
  }
  return 0;
}

/* setup_addresses resolves the TCP and UDP listen addresses. Returns 0, or
 * -1 with a message on |errf|. */
static int setup_addresses(prd_relay_config *rc, const prd_opts *o,
                           const char *cnames, FILE *errf, int mode) {
  char err[512];

  /* --local-host/--local-port are the service default (README
   * "Services"), then each --service in order. */
  if (o->local_port != 0) {
    prd_relay_service *sv = &rc->services[rc->nservices++];
    if (prd_resolve(&rc->listen_addr, 1, o->local_host, o->local_port, 1, err,
                    sizeof(err)) == 0) {
      fprintf(errf, "portredirect_server: --local-host: %s\n", err);
      return -1;
    }
    snprintf(sv->name, sizeof(sv->name), "%s", PRD_SERVICE_DEFAULT);
    sv->listen_addr = rc->listen_addr;
    sv->port = o->local_port;
    sv->nports = 1;
  }
  for (size_t i = 0; i < o->n_services; ++i) {
    const prd_opts_service *os = &o->services[i];
    prd_relay_service *sv = &rc->services[rc->nservices++];
    if (prd_resolve(&sv->listen_addr, 1, os->host, os->port, 1, err,
                    sizeof(err)) == 0) {
      fprintf(errf, "portredirect_server: --service %s: %s\n", os->name, err);
      return -1;
    }
    snprintf(sv->name, sizeof(sv->name), "%s", os->name);
    snprintf(sv->host, sizeof(sv->host), "%s", os->host);
    sv->port = os->port;
    sv->nports = (uint16_t)(os->last - os->port + 1);
    for (size_t k = 0; k < os->n_allow && k < PRD_RELAY_MAX_ALLOW; ++k) {
      sv->allow[k].family = os->allow[k].family;
      sv->allow[k].bits = os->allow[k].bits;
      memcpy(sv->allow[k].addr, os->allow[k].addr, sizeof(sv->allow[k].addr));
      sv->nallow = k + 1;
    }
    sv->route = os->route;
    snprintf(sv->route_name, sizeof(sv->route_name), "%s", os->route_name);
    sv->udp = os->udp;
    sv->udp_timeout_ns = (uint64_t)os->udp_timeout_s * PRD_NS_PER_S;
    sv->udp_stream_timeout_ns =
        (uint64_t)os->udp_stream_timeout_s * PRD_NS_PER_S;
    if (rc->nservices == 1) {
      rc->listen_addr = sv->listen_addr;
    }
  }
  if (prd_resolve(&rc->quic_addr, 1, o->quic_server_host, o->quic_server_port,
                  1, err, sizeof(err)) == 0) {
    fprintf(errf, "portredirect_server: --quic-server-host: %s\n", err);
    return -1;
  }
  /* spec/11-tcp-path.md §3.1: by default the UDP address, over TCP. */
  rc->quic_tcp_off = o->quic_tcp_off;
  rc->quic_tcp_explicit = o->quic_tcp_host[0] != 0;
  rc->quic_tcp_addr = rc->quic_addr;
  if (!o->quic_tcp_off && o->quic_tcp_host[0] &&
      prd_resolve(&rc->quic_tcp_addr, 1, o->quic_tcp_host, o->quic_tcp_port, 1,
                  err, sizeof(err)) == 0) {
    fprintf(errf, "portredirect_server: --quic-tcp-listen: %s\n", err);
    return -1;
  }
  if (mode == BUILD_START && o->n_cert_hostnames == 0 &&
      is_wildcard(&rc->quic_addr)) {
    /* Clients dial a public address or name that a certificate made for a
     * wildcard address does not carry. */
    PRD_LOG_WARN("QUIC listens on the wildcard address %s without "
                 "--quic-cert-hostname: the certificate names %s; clients "
                 "must dial one of these or pass "
                 "--quic-remote-hostname-match with one of them. For a "
                 "certificate naming the public address, move %s/cert.der "
                 "and key.der away and start again with --quic-cert-hostname "
                 "NAME",
                 o->quic_server_host, cnames, o->config_dir);
  }
  return 0;
}

/* setup_config fills in the rest of |rc| from |o| and the identity. */
static void setup_config(prd_relay_config *rc, const prd_opts *o,
                         const prd_identity *id, prd_addr_prefix *exempt) {
  rc->quic.role = PRD_AUTH_ROLE_SERVER;
  rc->quic.psk = o->psk;
  rc->quic.psklen = o->psklen;
  rc->quic.cert_der = id->cert_der;
  rc->quic.certlen = id->certlen;
  rc->quic.key_der = id->key_der;
  rc->quic.keylen = id->keylen;
  rc->quic.keylog_file = o->keylog_file[0] ? o->keylog_file : NULL;
  rc->quic.auth_timeout_ns = (uint64_t)o->auth_timeout_ms * PRD_NS_PER_MS;
  rc->quic.auth_fail_cooldown_ns =
      (uint64_t)o->auth_fail_cooldown_ms * PRD_NS_PER_MS;
  for (size_t i = 0; i < o->n_auth_exempt; ++i) {
    exempt[i].family = o->auth_exempt[i].family;
    exempt[i].bits = o->auth_exempt[i].bits;
    memcpy(exempt[i].addr, o->auth_exempt[i].addr, sizeof(exempt[i].addr));
  }
  rc->quic.auth_exempt = exempt;
  rc->quic.nauth_exempt = o->n_auth_exempt;
  rc->quic.idle_timeout_ns = (uint64_t)o->idle_timeout_ms * PRD_NS_PER_MS;
  rc->quic.keepalive_ns = (uint64_t)o->keepalive_ms * PRD_NS_PER_MS;
  rc->quic.max_udp_payload = o->max_udp_payload;
  rc->quic.cc_algo = o->congestion_control == PRD_CC_RENO   ? PRD_QUIC_CC_RENO
                     : o->congestion_control == PRD_CC_BBR  ? PRD_QUIC_CC_BBR
                     : o->congestion_control == PRD_CC_BBR2 ? PRD_QUIC_CC_BBR2
                                                            : PRD_QUIC_CC_CUBIC;
  rc->quic.no_queue_bound = !o->queue_bound;
  rc->quic.max_pending_handshakes = 256;
  rc->pending_timeout_ns = (uint64_t)o->pending_timeout_ms * PRD_NS_PER_MS;
  rc->max_clients = o->max_clients;
  rc->max_connections = o->max_connections;
  rc->grace_ns = (uint64_t)o->grace_ms * PRD_NS_PER_MS;
  rc->print_metrics = o->print_metrics;
  snprintf(rc->metrics_listen, sizeof(rc->metrics_listen), "%s",
           o->metrics_listen);
}

/* build_release frees what build_make made; |b| may be half made. */
static void build_release(build *b) {
  prd_cli_config_release(&b->own);
  explicit_bzero(b->secret, sizeof(b->secret));
  prd_identity_free(&b->id);
  prd_opts_free(&b->o);
}

/* build_make builds |b| (zeroed) from |argv| and the files it names, as
 * start-up, SIGHUP and --check-config all do. Writes errors as one line on
 * |errf|. Returns -1 when the configuration is complete (with
 * o.print_fingerprint: the identity alone), else the exit status: 0 after
 * --help or --version, 1 (a library too old or no static secret), 2 (a
 * usage or configuration error). Call build_release in every case. */
static int build_make(build *b, int argc, char **argv, int mode, FILE *errf) {
  prd_opts_io io = {.out = stdout, .err = errf};
  char err[1024];
  int rv = prd_opts_parse_io(&b->o, PRD_ROLE_SERVER, argc, argv, &io);

  if (rv != 0) {
    return rv > 0 ? 0 : 2;
  }
  if (mode == BUILD_START && b->o.check_config) {
    mode = BUILD_CHECK;
  }
  if (mode != BUILD_RELOAD && prd_setup_process(&b->o) != 0) {
    return 1;
  }
  if (mode != BUILD_RELOAD && load_identity(b, errf, mode) != 0) {
    return 2;
  }
  if (b->o.print_fingerprint) {
    return -1;
  }
  if (setup_addresses(&b->rc, &b->o, b->cnames, errf, mode) != 0) {
    return 2;
  }
  if (b->have_id && prd_identity_static_secret(&b->id, b->secret) != 0) {
    fprintf(errf, "portredirect_server: cannot derive the static secret\n");
    return 1;
  }
  b->rc.static_secret = b->secret;
  setup_config(&b->rc, &b->o, &b->id, b->exempt);
  /* The clients table (--clients-file, --quic-psk: spec/06-files-and-cli.md
   * §4.1). */
  if (prd_cli_clients_build(&b->rc, &b->o, err, sizeof(err)) != 0) {
    fprintf(errf, "portredirect_server: %s\n", err);
    return 2;
  }
  b->own.clients = b->rc.clients;
  b->own.nclients = b->rc.nclients;
  return -1;
}

/* print_check prints what would run (--check-config), on stdout. */
static void print_check(const build *b) {
  const prd_relay_config *rc = &b->rc;
  char buf[80], pfx[INET6_ADDRSTRLEN];

  printf("portredirect_server: configuration OK\n");
  printf("QUIC (UDP) %s\n", prd_sockaddr_str(&rc->quic_addr, buf, sizeof(buf)));
  if (!rc->quic_tcp_off) {
    printf("QUIC (TCP path) %s\n",
           prd_sockaddr_str(&rc->quic_tcp_addr, buf, sizeof(buf)));
  }
  printf("certificate %s/%s, SHA-256 %s\n", b->o.config_dir, PRD_CERT_FILE,
         b->fp);
  for (size_t i = 0; i < rc->nservices; ++i) {
    const prd_relay_service *sv = &rc->services[i];
    printf("service %s: TCP %s", sv->name,
           prd_sockaddr_str(&sv->listen_addr, buf, sizeof(buf)));
    if (sv->nports > 1) {
      printf("-%u", (unsigned)(sv->port + sv->nports - 1));
    }
    for (size_t k = 0; k < sv->nallow; ++k) {
      inet_ntop(sv->allow[k].family == 6 ? AF_INET6 : AF_INET,
                sv->allow[k].addr, pfx, sizeof(pfx));
      printf("%s%s/%u", k ? "," : ", allow ", pfx, (unsigned)sv->allow[k].bits);
    }
    if (sv->route != PRD_ROUTE_NONE) {
      printf(", %s %s", sv->route == PRD_ROUTE_SNI ? "sni" : "host",
             sv->route_name);
    }
    printf("\n");
  }
  if (rc->nclients == 0) {
    printf("client default: every service (--quic-psk)\n");
  }
  for (size_t i = 0; i < rc->nclients; ++i) {
    const prd_relay_client *c = &rc->clients[i];
    printf("client %s: ", c->name);
    if (c->all_services) {
      printf("every service");
    }
    for (size_t k = 0; !c->all_services && k < c->nservices; ++k) {
      printf("%s%s", k ? "," : "services ", c->services[k]);
    }
    printf("\n");
  }
  if (rc->metrics_listen[0]) {
    printf("metrics %s\n", rc->metrics_listen);
  }
  fflush(stdout);
}

/* The SIGHUP hook's state (README "Reload"): the relay holds pointers into
 * the builds it applied (rb, kept until the relay's verdict on the next
 * one: prd_reload_builds_done). The identity stays the start-up one's. */
typedef struct reload_ctx {
  int argc;
  char **argv;
  build *start;
  prd_reload_builds rb;
} reload_ctx;

static void warn_restart(int changed, const char *what) {
  if (changed) {
    PRD_LOG_WARN("reload: %s changed; restart to apply", what);
  }
}

/* server_reload is the relay's reload hook: the same build as start-up. */
static int server_reload(prd_relay_config *next, void *arg) {
  reload_ctx *x = arg;
  const prd_opts *so = &x->start->o;
  build *b = calloc(1, sizeof(*b));
  char *msg;
  size_t msglen;
  FILE *errf = b ? prd_setup_reload_begin(&msg, &msglen) : NULL;
  int rv;

  if (errf == NULL) {
    free(b);
    return -1;
  }
  rv = build_make(b, x->argc, x->argv, BUILD_RELOAD, errf);
  fclose(errf);
  if (rv >= 0) {
    prd_setup_log_reload_error(msg, "portredirect_server");
    free(msg);
    build_release(b);
    free(b);
    return -1;
  }
  free(msg);
  warn_restart(strcmp(so->config_dir, b->o.config_dir) != 0 ||
                   so->n_cert_hostnames != b->o.n_cert_hostnames ||
                   memcmp(so->cert_hostnames, b->o.cert_hostnames,
                          sizeof(so->cert_hostnames)) != 0,
               "the certificate (--config-dir, --quic-cert-hostname)");
  prd_log_threshold = b->o.log_level; /* applies at once */
  b->rc.static_secret = x->start->rc.static_secret;
  *next = b->rc;
  x->rb.next = b; /* server_reload_done says what became of it */
  return 0;
}

/* build_free releases and frees a build the SIGHUP hook made. */
static void build_free(void *p) {
  build_release(p);
  free(p);
}

/* server_reload_done is the relay's verdict on the last build. */
static void server_reload_done(int applied, void *arg) {
  reload_ctx *x = arg;
  prd_reload_builds_done(&x->rb, applied);
}

int main(int argc, char **argv) {
  static build b;
  reload_ctx x = {0};
  int rv;

  rv = build_make(&b, argc, argv, BUILD_START, stderr);
  if (rv >= 0) {
    build_release(&b);
    return rv;
  }
  if (b.o.print_fingerprint) {
    /* The names on stderr: stdout stays the one line that
     * --server-fingerprint takes. */
    printf("SHA256:%s\n", b.fp);
    fflush(stdout);
    fprintf(stderr, "certificate names: %s\n", b.cnames);
    build_release(&b);
    return 0;
  }
  if (b.o.check_config) {
    print_check(&b);
    build_release(&b);
    return 0;
  }
  prd_setup_psk_warnings(&b.o);
  if (b.o.keylog_file[0] &&
      prd_setup_keylog(&b.o, "portredirect_server") != 0) {
    build_release(&b);
    return 2;
  }
  PRD_LOG_INFO("server certificate %s/%s, SHA-256 fingerprint %s",
               b.o.config_dir, PRD_CERT_FILE, b.fp);
  x.argc = argc;
  x.argv = argv;
  x.start = &b;
  b.rc.reload = server_reload;
  b.rc.reload_done = server_reload_done;
  b.rc.reload_arg = &x;
  x.rb.release = build_free;
  rv = prd_relay_server_run(&b.rc);
  prd_reload_builds_free(&x.rb);
  build_release(&b);
  return rv;
}
