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
#include "pins.h"
#include "setup.h"

/* A TOFU write still under way at exit gets this long to finish. */
#define TOFU_WAIT_MS 5000

/* setup_remote resolves server |hp| into |rr| and gives it its pin. Returns
 * 0, or -1 with a message on stderr. */
static int setup_remote(prd_relay_remote *rr, const prd_opts *o,
                        const prd_hostport *hp, const prd_pins *pins) {
  char err[512];

  /* Every address: the relay dials them in order and resolves the name
   * again before each round (spec/07-state-machines.md §4). */
  rr->naddrs = prd_resolve(rr->addrs, PRD_RELAY_MAX_ADDRS, hp->host, hp->port,
                           0, err, sizeof(err));
  if (rr->naddrs == 0) {
    fprintf(stderr, "portredirect_client: --quic-remote-host: %s\n", err);
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
  return prd_pins_remote(rr, pins, o, hp);
}

/* setup_addresses resolves the destination and --quic-local-host. Returns
 * 0, or -1 with a message on stderr. */
static int setup_addresses(prd_relay_config *rc, const prd_opts *o) {
  char err[512];

  /* --destination-host/--destination-port are the service default (README
   * "Services"), then each --service in order. */
  if (o->destination_port != 0) {
    prd_relay_service *sv = &rc->services[rc->nservices++];
    rc->ndest = prd_resolve(rc->dest, PRD_RELAY_MAX_ADDRS, o->destination_host,
                            o->destination_port, 0, err, sizeof(err));
    if (rc->ndest == 0) {
      fprintf(stderr, "portredirect_client: --destination-host: %s\n", err);
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
      fprintf(stderr, "portredirect_client: --service %s: %s\n", os->name, err);
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
  }
  if (o->quic_local_host[0] || o->quic_local_port) {
    const char *h =
        o->quic_local_host[0]
            ? o->quic_local_host
            : (rc->remotes[0].addrs[0].u.sa.sa_family == AF_INET6 ? "::"
                                                                  : "0.0.0.0");
    if (prd_resolve(&rc->quic_local, 1, h, o->quic_local_port, 1, err,
                    sizeof(err)) == 0) {
      fprintf(stderr, "portredirect_client: --quic-local-host: %s\n", err);
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
  rc->proxy_protocol = (int)o->proxy_protocol;
  rc->quic_transport = o->quic_transport;
  rc->udp_probe_interval_ns =
      (uint64_t)o->udp_probe_interval_ms * PRD_NS_PER_MS;
  rc->grace_ns = (uint64_t)o->grace_ms * PRD_NS_PER_MS;
  snprintf(rc->metrics_listen, sizeof(rc->metrics_listen), "%s",
           o->metrics_listen);
}

int main(int argc, char **argv) {
  static prd_opts o;
  static prd_relay_config rc;
  prd_pins pins;
  int rv;

  rv = prd_setup_start(&o, PRD_ROLE_CLIENT, argc, argv);
  if (rv >= 0) {
    return rv;
  }
  rv = prd_pins_load(&pins, &o);
  if (rv == 0 && o.print_fingerprint) {
    rv = prd_pins_print_fingerprint(&pins, &o);
    goto out;
  }
  if (rv != 0) {
    goto out;
  }
  prd_setup_psk_warnings(&o);
  if (o.keylog_file[0] && prd_setup_keylog(&o, "portredirect_client") != 0) {
    goto usage_fail;
  }
  prd_pins_log(&pins, &o);
  for (size_t i = 0; i < o.n_remotes && i < 16; ++i) {
    if (setup_remote(&rc.remotes[rc.nremotes], &o, &o.remotes[i], &pins) != 0) {
      goto usage_fail;
    }
    ++rc.nremotes;
  }
  if (setup_addresses(&rc, &o) != 0) {
    goto usage_fail;
  }
  setup_config(&rc, &o);
  rv = prd_relay_client_run(&rc);
  prd_pins_tofu_wait(TOFU_WAIT_MS);
  goto out;
usage_fail:
  rv = 2;
out:
  prd_pins_free(&pins);
  prd_opts_free(&o);
  return rv;
}
