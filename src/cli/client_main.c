/* SPDX-License-Identifier: GPL-3.0-only */
/* portredirect_client: dials the server(s), authenticates, and relays every
 * stream the server opens to the local destination. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/log.h"
#include "../relay/relay.h"
#include "opts.h"
#include "opts_internal.h"
#include "pins.h"
#include "setup.h"

/* A TOFU write still under way at exit gets this long to finish. */
#define TOFU_WAIT_MS 5000

/* setup_remote resolves server |hp| into |rr| and gives it its pin (none
 * when |pins| is NULL). Returns 0, or -1 with a message on |errf| (the pin's
 * on stderr). */
static int setup_remote(prd_relay_remote *rr, const prd_opts *o,
                        const prd_hostport *hp, const prd_pins *pins,
                        FILE *errf) {
  char err[512];

  /* Every address: the relay dials them in order and resolves the name
   * again before each round (spec/07-state-machines.md §4). */
  rr->naddrs = prd_resolve(rr->addrs, PRD_RELAY_MAX_ADDRS, hp->host, hp->port,
                           0, err, sizeof(err));
  if (rr->naddrs == 0) {
    fprintf(errf, "portredirect_client: --quic-remote-host: %s\n", err);
    return -1;
  }
  snprintf(rr->host, sizeof(rr->host), "%s", hp->host);
  rr->port = hp->port;
  snprintf(rr->label, sizeof(rr->label), "%s%s%s:%u",
           strchr(hp->host, ':') ? "[" : "", hp->host,
           strchr(hp->host, ':') ? "]" : "", hp->port);
  snprintf(rr->expected_name, sizeof(rr->expected_name), "%s",
           hp->name[0]                   ? hp->name
           : o->remote_hostname_match[0] ? o->remote_hostname_match
                                         : hp->host);
  /* SIGHUP does not read the pins again: they need a restart. */
  return pins ? prd_pins_remote(rr, pins, o, hp) : 0;
}

/* setup_addresses resolves the destination and --quic-local-host. Returns
 * 0, or -1 with a message on |errf|. */
static int setup_addresses(prd_relay_config *rc, const prd_opts *o,
                           FILE *errf) {
  char err[512];

  /* --destination-host/--destination-port are the service default (README
   * "Services"), then each --service in order. */
  if (o->destination_port != 0) {
    prd_relay_service *sv = &rc->services[rc->nservices++];
    rc->ndest = prd_resolve(rc->dest, PRD_RELAY_MAX_ADDRS, o->destination_host,
                            o->destination_port, 0, err, sizeof(err));
    if (rc->ndest == 0) {
      fprintf(errf, "portredirect_client: --destination-host: %s\n", err);
      return -1;
    }
    snprintf(rc->dest_label, sizeof(rc->dest_label), "%s%s%s:%u",
             strchr(o->destination_host, ':') ? "[" : "", o->destination_host,
             strchr(o->destination_host, ':') ? "]" : "", o->destination_port);
    snprintf(sv->name, sizeof(sv->name), "%s", PRD_SERVICE_DEFAULT);
    snprintf(sv->host, sizeof(sv->host), "%s%s%s",
             strchr(o->destination_host, ':') ? "[" : "", o->destination_host,
             strchr(o->destination_host, ':') ? "]" : "");
    sv->port = o->destination_port;
    sv->nports = 1;
    memcpy(sv->dest, rc->dest, sizeof(rc->dest));
    sv->ndest = rc->ndest;
    sv->proxy_protocol = (int)o->proxy_protocol;
  }
  for (size_t i = 0; i < o->n_services; ++i) {
    const prd_opts_service *os = &o->services[i];
    prd_relay_service *sv = &rc->services[rc->nservices++];
    sv->ndest = prd_resolve(sv->dest, PRD_RELAY_MAX_ADDRS, os->host, os->port,
                            0, err, sizeof(err));
    if (sv->ndest == 0) {
      fprintf(errf, "portredirect_client: --service %s: %s\n", os->name, err);
      return -1;
    }
    snprintf(sv->name, sizeof(sv->name), "%s", os->name);
    snprintf(sv->host, sizeof(sv->host), "%s%s%s",
             strchr(os->host, ':') ? "[" : "", os->host,
             strchr(os->host, ':') ? "]" : "");
    sv->port = os->port;
    sv->nports = (uint16_t)(os->last - os->port + 1);
    sv->proxy_protocol =
        os->proxy_protocol >= 0 ? os->proxy_protocol : (int)o->proxy_protocol;
    sv->udp = os->udp;
    sv->udp_timeout_ns = (uint64_t)os->udp_timeout_s * PRD_NS_PER_S;
    sv->udp_stream_timeout_ns =
        (uint64_t)os->udp_stream_timeout_s * PRD_NS_PER_S;
  }
  if (o->quic_local_host[0] || o->quic_local_port) {
    const char *h =
        o->quic_local_host[0]
            ? o->quic_local_host
            : (rc->remotes[0].addrs[0].u.sa.sa_family == AF_INET6 ? "::"
                                                                  : "0.0.0.0");
    if (prd_resolve(&rc->quic_local, 1, h, o->quic_local_port, 1, err,
                    sizeof(err)) == 0) {
      fprintf(errf, "portredirect_client: --quic-local-host: %s\n", err);
      return -1;
    }
    rc->have_quic_local = 1;
    rc->quic_local_any = !o->quic_local_host[0];
  }
  return 0;
}

/* setup_config fills in the rest of |rc| from |o|. */
static void setup_config(prd_relay_config *rc, const prd_opts *o) {
  rc->tofu_store = prd_pins_tofu_store;
  rc->quic.role = PRD_AUTH_ROLE_CLIENT;
  rc->quic.psk = o->psk;
  rc->quic.psklen = o->psklen;
  /* spec/03-auth.md §4.1: without a name, the client "default". */
  rc->quic.client_name = o->client_name[0] ? o->client_name : NULL;
  rc->quic.tofu = o->trust_on_first_use;
  rc->quic.keylog_file = o->keylog_file[0] ? o->keylog_file : NULL;
  rc->quic.auth_timeout_ns = (uint64_t)5 * PRD_NS_PER_S;
  rc->quic.idle_timeout_ns = (uint64_t)o->idle_timeout_ms * PRD_NS_PER_MS;
  rc->quic.keepalive_ns = (uint64_t)o->keepalive_ms * PRD_NS_PER_MS;
  rc->quic.max_udp_payload = o->max_udp_payload;
  rc->quic.max_streams = o->max_streams;
  rc->quic.cc_algo = o->congestion_control == PRD_CC_RENO   ? PRD_QUIC_CC_RENO
                     : o->congestion_control == PRD_CC_BBR  ? PRD_QUIC_CC_BBR
                     : o->congestion_control == PRD_CC_BBR2 ? PRD_QUIC_CC_BBR2
                                                            : PRD_QUIC_CC_CUBIC;
  rc->quic.no_queue_bound = !o->queue_bound;
  rc->proxy_protocol = (int)o->proxy_protocol;
  rc->quic_transport = o->quic_transport;
  rc->udp_probe_interval_ns =
      (uint64_t)o->udp_probe_interval_ms * PRD_NS_PER_MS;
  rc->grace_ns = (uint64_t)o->grace_ms * PRD_NS_PER_MS;
  snprintf(rc->metrics_listen, sizeof(rc->metrics_listen), "%s",
           o->metrics_listen);
}

/* How build_make is used: at start-up, on SIGHUP (the pins are the running
 * ones': not read again) or for --check-config (nothing created). */
#define BUILD_START 0
#define BUILD_RELOAD 1
#define BUILD_CHECK 2

/* One configuration built from the options: at start-up, on each SIGHUP
 * (README "Reload") and for --check-config. rc points into the rest. */
typedef struct build {
  prd_opts o;
  prd_relay_config rc;
  prd_pins pins;
  int have_pins;
} build;

static void build_release(build *b) {
  if (b->have_pins) {
    prd_pins_free(&b->pins);
  }
  for (size_t i = 0; i < b->rc.nremotes; ++i) {
    if (b->rc.remotes[i].pin_owned) {
      free((void *)b->rc.remotes[i].pin_der);
      b->rc.remotes[i].pin_der = NULL;
    }
  }
  prd_opts_free(&b->o);
}

/* build_make builds |b| (zeroed) from |argv| and the files it names, as
 * start-up, SIGHUP and --check-config all do. Writes errors as one line on
 * |errf|. Returns -1 when the configuration is complete (or, with
 * o.print_fingerprint, its pins), else the exit status: 0 after --help or
 * --version, 1 (a library too old), 2 (a usage or configuration error).
 * Call build_release in every case. */
static int build_make(build *b, int argc, char **argv, int mode, FILE *errf) {
  prd_opts_io io = {.out = stdout, .err = errf};
  int rv = prd_opts_parse_io(&b->o, PRD_ROLE_CLIENT, argc, argv, &io);
  const prd_opts *o = &b->o;

  if (rv != 0) {
    return rv > 0 ? 0 : 2;
  }
  if (mode == BUILD_START && o->check_config) {
    mode = BUILD_CHECK;
  }
  if (mode != BUILD_RELOAD && prd_setup_process(o) != 0) {
    return 1;
  }
  /* --check-config creates nothing: a TOFU pin not stored yet is not
   * looked for (prd_pins_load would prepare the directory). */
  if (mode == BUILD_START ||
      (mode == BUILD_CHECK && !(o->trust_on_first_use && !o->server_cert[0]))) {
    rv = prd_pins_load(&b->pins, o);
    if (rv != 0) {
      return rv;
    }
    b->have_pins = 1;
    if (o->print_fingerprint) {
      return -1;
    }
  }
  for (size_t i = 0; i < o->n_remotes && i < 16; ++i) {
    if (setup_remote(&b->rc.remotes[b->rc.nremotes], o, &o->remotes[i],
                     b->have_pins ? &b->pins : NULL, errf) != 0) {
      return 2;
    }
    ++b->rc.nremotes;
  }
  if (setup_addresses(&b->rc, o, errf) != 0) {
    return 2;
  }
  setup_config(&b->rc, o);
  return -1;
}

/* print_check prints what would run (--check-config), on stdout. */
static void print_check(const build *b) {
  const prd_relay_config *rc = &b->rc;

  printf("portredirect_client: configuration OK\n");
  for (size_t i = 0; i < rc->nremotes; ++i) {
    const prd_relay_remote *rr = &rc->remotes[i];
    printf("remote %s: certificate name %s, pin %s\n", rr->label,
           rr->expected_name,
           rr->pin_name[0]           ? rr->pin_name
           : b->o.trust_on_first_use ? "trust on first use (none stored yet)"
                                     : "?");
  }
  for (size_t i = 0; i < rc->nservices; ++i) {
    const prd_relay_service *sv = &rc->services[i];
    printf("service %s: to %s:%u", sv->name, sv->host, (unsigned)sv->port);
    if (sv->nports > 1) {
      printf("-%u", (unsigned)(sv->port + sv->nports - 1));
    }
    if (sv->proxy_protocol) {
      printf(", proxy-protocol v%d", sv->proxy_protocol);
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
 * one: prd_reload_builds_done). The pins stay the start-up ones. */
typedef struct reload_ctx {
  int argc;
  char **argv;
  build *start;
  prd_reload_builds rb;
} reload_ctx;

/* pins_same: the options that choose the pins did not change. */
static int pins_same(const prd_opts *a, const prd_opts *b) {
  if (strcmp(a->server_cert, b->server_cert) != 0 ||
      strcmp(a->config_dir, b->config_dir) != 0 ||
      a->trust_on_first_use != b->trust_on_first_use ||
      a->n_server_fingerprints != b->n_server_fingerprints ||
      memcmp(a->server_fingerprints, b->server_fingerprints,
             sizeof(a->server_fingerprints)) != 0 ||
      a->n_remotes != b->n_remotes) {
    return 0;
  }
  for (size_t i = 0; i < a->n_remotes; ++i) {
    if (strcmp(a->remotes[i].cert, b->remotes[i].cert) != 0) {
      return 0;
    }
  }
  return 1;
}

/* client_reload is the relay's reload hook: the same build as start-up. */
static int client_reload(prd_relay_config *next, void *arg) {
  reload_ctx *x = arg;
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
    prd_setup_log_reload_error(msg, "portredirect_client");
    free(msg);
    build_release(b);
    free(b);
    return -1;
  }
  free(msg);
  if (!pins_same(&x->start->o, &b->o)) {
    PRD_LOG_WARN("reload: the pins (--server-cert, --server-fingerprint, "
                 "--trust-on-first-use, cert=, --config-dir) changed; "
                 "restart to apply");
  }
  prd_log_threshold = b->o.log_level; /* applies at once */
  *next = b->rc;
  x->rb.next = b; /* client_reload_done says what became of it */
  return 0;
}

/* build_free releases and frees a build the SIGHUP hook made. */
static void build_free(void *p) {
  build_release(p);
  free(p);
}

/* client_reload_done is the relay's verdict on the last build. */
static void client_reload_done(int applied, void *arg) {
  reload_ctx *x = arg;
  prd_reload_builds_done(&x->rb, applied);
}

int main(int argc, char **argv) {
  static build b;
  reload_ctx x = {0};
  int rv;

  rv = build_make(&b, argc, argv, BUILD_START, stderr);
  if (rv >= 0) {
    goto out;
  }
  if (b.o.print_fingerprint) {
    rv = prd_pins_print_fingerprint(&b.pins, &b.o);
    goto out;
  }
  if (b.o.check_config) {
    print_check(&b);
    rv = 0;
    goto out;
  }
  prd_setup_psk_warnings(&b.o);
  if (b.o.keylog_file[0] &&
      prd_setup_keylog(&b.o, "portredirect_client") != 0) {
    rv = 2;
    goto out;
  }
  prd_pins_log(&b.pins, &b.o);
  x.argc = argc;
  x.argv = argv;
  x.start = &b;
  b.rc.reload = client_reload;
  b.rc.reload_done = client_reload_done;
  b.rc.reload_arg = &x;
  x.rb.release = build_free;
  rv = prd_relay_client_run(&b.rc);
  prd_pins_tofu_wait(TOFU_WAIT_MS);
  prd_reload_builds_free(&x.rb);
out:
  build_release(&b);
  return rv;
}
