/* SPDX-License-Identifier: GPL-3.0-only */
/* portredirect_server: accepts TCP connections and carries each one as a
 * stream of an authenticated QUIC connection to a client. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "../common/log.h"
#include "../quic/identity.h"
#include "../relay/relay.h"
#include "opts.h"
#include "setup.h"

/* is_wildcard: 0.0.0.0 or :: (any address). */
static int is_wildcard(const prd_sockaddr *a) {
  if (a->u.sa.sa_family == AF_INET) {
    return a->u.in.sin_addr.s_addr == htonl(INADDR_ANY);
  }
  return a->u.sa.sa_family == AF_INET6 &&
         IN6_IS_ADDR_UNSPECIFIED(&a->u.in6.sin6_addr);
}

/* load_identity loads or makes the certificate, named as the options say,
 * and writes its fingerprint and names. Returns 0, or -1 with a message on
 * stderr. */
static int load_identity(prd_identity *id, const prd_opts *o,
                         char fp[PRD_FINGERPRINT_LEN], char *cnames,
                         size_t cnameslen) {
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
  if (prd_config_dir_ensure(o->config_dir, err, sizeof(err)) != 0 ||
      prd_identity_load_or_create(id, o->config_dir, names, nnames, err,
                                  sizeof(err)) != 0) {
    fprintf(stderr, "portredirect_server: %s\n", err);
    return -1;
  }
  if (prd_cert_fingerprint(fp, id->cert_der, id->certlen) != 0) {
    snprintf(fp, PRD_FINGERPRINT_LEN, "?");
  }
  if (prd_cert_names(id->cert_der, id->certlen, cnames, cnameslen) < 0) {
    snprintf(cnames, cnameslen, "?");
  }
  return 0;
}

/* setup_addresses resolves the TCP and UDP listen addresses. Returns 0, or
 * -1 with a message on stderr. */
static int setup_addresses(prd_relay_config *rc, const prd_opts *o,
                           const char *cnames) {
  char err[512];

  /* --local-host/--local-port are the service default (README
   * "Services"), then each --service in order. */
  if (o->local_port != 0) {
    prd_relay_service *sv = &rc->services[rc->nservices++];
    if (prd_resolve(&rc->listen_addr, 1, o->local_host, o->local_port, 1, err,
                    sizeof(err)) == 0) {
      fprintf(stderr, "portredirect_server: --local-host: %s\n", err);
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
      fprintf(stderr, "portredirect_server: --service %s: %s\n", os->name, err);
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
    if (rc->nservices == 1) {
      rc->listen_addr = sv->listen_addr;
    }
  }
  if (prd_resolve(&rc->quic_addr, 1, o->quic_server_host, o->quic_server_port,
                  1, err, sizeof(err)) == 0) {
    fprintf(stderr, "portredirect_server: --quic-server-host: %s\n", err);
    return -1;
  }
  /* spec/10-tcp-path.md §3.1: by default the UDP address, over TCP. */
  rc->quic_tcp_off = o->quic_tcp_off;
  rc->quic_tcp_explicit = o->quic_tcp_host[0] != 0;
  rc->quic_tcp_addr = rc->quic_addr;
  if (!o->quic_tcp_off && o->quic_tcp_host[0] &&
      prd_resolve(&rc->quic_tcp_addr, 1, o->quic_tcp_host, o->quic_tcp_port, 1,
                  err, sizeof(err)) == 0) {
    fprintf(stderr, "portredirect_server: --quic-tcp-listen: %s\n", err);
    return -1;
  }
  if (o->n_cert_hostnames == 0 && is_wildcard(&rc->quic_addr)) {
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
  rc->quic.max_pending_handshakes = 256;
  rc->pending_timeout_ns = (uint64_t)o->pending_timeout_ms * PRD_NS_PER_MS;
  rc->max_clients = o->max_clients;
  rc->max_connections = o->max_connections;
  rc->grace_ns = (uint64_t)o->grace_ms * PRD_NS_PER_MS;
  rc->print_metrics = o->print_metrics;
  snprintf(rc->metrics_listen, sizeof(rc->metrics_listen), "%s",
           o->metrics_listen);
}

int main(int argc, char **argv) {
  static prd_opts o;
  static prd_relay_config rc;
  static prd_addr_prefix exempt[PRD_MAX_AUTH_EXEMPT];
  prd_identity id;
  char fp[PRD_FINGERPRINT_LEN], cnames[600];
  uint8_t secret[32];
  int rv;

  rv = prd_setup_start(&o, PRD_ROLE_SERVER, argc, argv);
  if (rv >= 0) {
    return rv;
  }
  if (load_identity(&id, &o, fp, cnames, sizeof(cnames)) != 0) {
    prd_opts_free(&o);
    return 2;
  }
  if (o.print_fingerprint) {
    /* The names on stderr: stdout stays the one line that
     * --server-fingerprint takes. */
    printf("SHA256:%s\n", fp);
    fflush(stdout);
    fprintf(stderr, "certificate names: %s\n", cnames);
    prd_identity_free(&id);
    prd_opts_free(&o);
    return 0;
  }
  prd_setup_psk_warnings(&o);
  if (o.keylog_file[0] && prd_setup_keylog(&o, "portredirect_server") != 0) {
    goto usage_fail;
  }
  PRD_LOG_INFO("server certificate %s/%s, SHA-256 fingerprint %s", o.config_dir,
               PRD_CERT_FILE, fp);
  if (setup_addresses(&rc, &o, cnames) != 0) {
    goto usage_fail;
  }
  if (prd_identity_static_secret(&id, secret) != 0) {
    fprintf(stderr, "portredirect_server: cannot derive the static secret\n");
    goto fail;
  }
  rc.static_secret = secret;
  setup_config(&rc, &o, &id, exempt);

  rv = prd_relay_server_run(&rc);
  memset(secret, 0, sizeof(secret));
  prd_identity_free(&id);
  prd_opts_free(&o);
  return rv;
usage_fail:
  prd_identity_free(&id);
  prd_opts_free(&o);
  return 2;
fail:
  prd_identity_free(&id);
  prd_opts_free(&o);
  return 1;
}
