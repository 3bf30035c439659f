/* SPDX-License-Identifier: GPL-3.0-only */
/* What the server's and the client's tunnels share: walks over r->tunnels
 * for the drain, the metrics of each connection, the UDP socket events. */
#include <stdio.h>
#include <string.h>

#include "relay_int.h"

void relay_services_init(relay *r) {
  prd_relay_config *cfg = r->cfg;

  if (cfg->nservices == 0) {
    prd_relay_service *sv = &cfg->services[0];
    memset(sv, 0, sizeof(*sv));
    memcpy(sv->name, PRD_SERVICE_DEFAULT, sizeof(PRD_SERVICE_DEFAULT));
    sv->nports = 1;
    sv->listen_addr = cfg->listen_addr;
    memcpy(sv->dest, cfg->dest, sizeof(cfg->dest));
    sv->ndest = cfg->ndest;
    sv->proxy_protocol = cfg->proxy_protocol;
    snprintf(sv->host, sizeof(sv->host), "%s", cfg->dest_label);
    cfg->nservices = 1;
  }
  r->svc_default = -1;
  r->metrics.nsvc = cfg->nservices;
  for (size_t i = 0; i < cfg->nservices; ++i) {
    r->metrics.svc_names[i] = cfg->services[i].name;
    if (strcmp(cfg->services[i].name, PRD_SERVICE_DEFAULT) == 0) {
      r->svc_default = (int)i;
    }
  }
}

const char *svc_name(const relay *r, unsigned svc) {
  if (svc >= r->cfg->nservices || r->cfg->services[svc].name[0] == '\0') {
    return PRD_SERVICE_DEFAULT;
  }
  return r->cfg->services[svc].name;
}

void on_udp_read(evutil_socket_t fd, short what, void *arg) {
  prd_quic_endpoint *ep = arg;
  (void)fd;
  (void)what;
  prd_quic_endpoint_on_readable(ep);
}

void on_udp_write(evutil_socket_t fd, short what, void *arg) {
  prd_quic_endpoint *ep = arg;
  (void)fd;
  (void)what;
  prd_quic_endpoint_on_writable(ep);
}

/* live_conns counts the QUIC connections not yet closed (server_closed
 * unlinks a server's tunnel before its connection is freed; a client's
 * tunnel stays, with qc NULL). */
size_t live_conns(relay *r) {
  size_t n = 0;
  for (tunnel *t = r->tunnels; t; t = t->next) {
    n += t->qc != NULL;
  }
  return n;
}

void close_all_conns(relay *r, uint64_t code) {
  tunnel *t = r->tunnels, *next;
  for (; t; t = next) {
    next = t->next; /* a server's tunnel may be freed in the call */
    if (t->qc) {
      prd_quic_conn_close(t->qc, code, "shutting down");
    }
  }
}

/* streams_left counts the data streams the QUIC connections still hold: a
 * stream is forgotten only when its bytes and FIN went out and were
 * acknowledged both ways, or it was reset (spec/04-quic-profile.md §6.2). */
size_t streams_left(relay *r) {
  size_t n = 0;
  for (tunnel *t = r->tunnels; t; t = t->next) {
    n += t->qc ? prd_quic_conn_num_streams(t->qc) : 0;
  }
  return n;
}

/* linger_ns: max(100 ms, 3 PTO) over the connections still open. */
uint64_t linger_ns(relay *r) {
  uint64_t linger = 100 * PRD_NS_PER_MS, pto;
  for (tunnel *t = r->tunnels; t; t = t->next) {
    pto = t->qc ? 3 * prd_quic_conn_pto_ns(t->qc) : 0;
    linger = pto > linger ? pto : linger;
  }
  return linger;
}

/* One series per authenticated tunnel; the lost-packets counter over every
 * connection, live or gone. */
static void fill_tunnel(prd_metrics *m, prd_quic_conn *qc, int up,
                        const char *label) {
  prd_quic_conn_info info;
  prd_metrics_tunnel *mt;
  prd_quic_conn_get_info(qc, &info);
  m->lost_packets += info.lost_packets;
  if (!up || (mt = prd_metrics_add_tunnel(m)) == NULL) {
    return;
  }
  mt->rtt_ns = info.rtt_ns;
  mt->cwnd = info.cwnd;
  mt->max_udp_payload = info.max_udp_payload;
  if (label) {
    snprintf(mt->label, sizeof(mt->label), "%s", label);
  } else {
    const char *name = prd_quic_conn_client_name(qc);
    snprintf(mt->label, sizeof(mt->label), "%s",
             name ? name : PRD_CLIENT_DEFAULT);
    prd_sockaddr_str(prd_quic_conn_remote(qc), mt->peer, sizeof(mt->peer));
    snprintf(mt->conn, sizeof(mt->conn), "%s", prd_quic_conn_name(qc));
  }
}

/* A client's tunnel is labelled by its remote, a server's by its peer. */
void relay_fill_info(void *arg, prd_metrics *m) {
  relay *r = arg;
  m->lost_packets = m->lost_closed;
  for (tunnel *t = r->tunnels; t; t = t->next) {
    if (t->qc) {
      fill_tunnel(m, t->qc, t->authenticated,
                  t->remote ? t->remote->label : NULL);
    }
  }
}
