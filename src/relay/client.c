/* SPDX-License-Identifier: GPL-3.0-only */
/* The client: one tunnel per --server, dialed address by address with
 * backoff and the name resolved again each round, and the TCP connections
 * it makes to the destination for each stream the server opens. */
#include <arpa/inet.h>
#include <event2/dns.h>
#include <event2/util.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../common/log.h"
#include "../common/notify.h"
#include "proxy.h"
#include "relay_int.h"

/* Client: how long one address of a remote may take to authenticate before
 * the next address is tried (only while another address remains). */
#define DIAL_TIMEOUT_MS 3000
/* A PSK the server rejects is a configuration error: logged once per this
 * long, retried at the backoff cap. */
#define PSK_ERROR_EVERY_NS ((uint64_t)300 * PRD_NS_PER_S)
#define STABLE_NS (60 * PRD_NS_PER_S)
/* --quic-transport auto: how long a dial over UDP may go unanswered before
 * the client moves to the TCP path (spec/11-tcp-path.md §3.2). */
#define UDP_FALLBACK_MS 3000
/* An established tunnel moves to TCP when nothing it sent over UDP has been
 * acknowledged for this long while a packet waits for its acknowledgement
 * (a PTO fired and no ACK came since): longer than a short blackout,
 * shorter than the idle timeout. Not "nothing received": a firewall that
 * drops only outgoing UDP still lets the server's PINGs in. */
#define UDP_SILENCE_NS (6 * PRD_NS_PER_S)
/* While UDP looks silent, the liveness probe is repeated this often. */
#define PROBE_AGAIN_NS (500 * PRD_NS_PER_MS)
/* On TCP: how long a UDP probe may wait for its answer, how many answers
 * in a row bring the tunnel back, how long the TCP path is still read
 * after that, and how soon a fallback after a move back counts as flapping
 * (the probe interval then doubles, up to PROBE_MAX_NS). */
#define PROBE_WAIT_NS (1 * PRD_NS_PER_S)
#define PROBE_OK_NEEDED 2
#define LEAVE_LINGER_NS (3 * PRD_NS_PER_S)
#define FLAP_NS (60 * PRD_NS_PER_S)
#define PROBE_DEFAULT_NS (30 * PRD_NS_PER_S)
#define PROBE_MAX_NS (600 * PRD_NS_PER_S)
#define PATH_TICK_MS 250
/* On UDP, a PING every --keepalive interval (not with --keepalive 0): when
 * only the server's keep-alives flow, the client sends nothing that must be
 * acknowledged, and a firewall that drops only its outgoing UDP would go
 * unnoticed. */
/* Heavy partial loss (handshakes pass, data stalls; RFC 9312): in
 * LOSS_WINDOWS windows in a row of LOSS_WINDOW_NS, each with at least
 * LOSS_MIN_PKTS packets sent, a share lost of LOSS_PCT % or more moves the
 * tunnel to TCP. Not one window: a download that starts after a pause
 * sends a window's worth at once, and a bottleneck with a short queue can
 * drop a quarter of a window's packets; the congestion controller is done
 * with that within a round trip, a throttled path is not. */
#define LOSS_WINDOW_NS (2 * PRD_NS_PER_S)
#define LOSS_WINDOWS 2
#define LOSS_MIN_PKTS 200
#define LOSS_PCT 25

/* dest_label is |tc|'s destination for logs: HOST:PORT, and the service
 * when it is not default. */
static const char *dest_label(tcpc *tc, char *buf, size_t buflen) {
  relay *r = tc->r;
  const prd_relay_service *sv = &r->cfg->services[tc->svc];
  int n;

  if (sv->port == 0) { /* made from dest_label (relay_services_init) */
    n = snprintf(buf, buflen, "%s", sv->host);
  } else {
    n = snprintf(buf, buflen, "%s:%u", sv->host,
                 (unsigned)(sv->port + tc->port_off));
  }
  if ((int)tc->svc != r->svc_default && n > 0 && (size_t)n < buflen) {
    snprintf(buf + n, buflen - (size_t)n, " service \"%s\"", sv->name);
  }
  return buf;
}

static void client_try_connect(tcpc *tc) {
  relay *r = tc->r;
  const prd_relay_service *sv = &r->cfg->services[tc->svc];
  char label[400];
  while (tc->dest_idx < sv->ndest) {
    prd_sockaddr dd = sv->dest[tc->dest_idx];
    const prd_sockaddr *d = &dd;
    int fd;
    if (tc->port_off != 0) {
      /* spec/02-framing.md §4.4: offset k is the k-th port of the range. */
      if (dd.u.sa.sa_family == AF_INET6) {
        dd.u.in6.sin6_port =
            htons((uint16_t)(ntohs(dd.u.in6.sin6_port) + tc->port_off));
      } else {
        dd.u.in.sin_port =
            htons((uint16_t)(ntohs(dd.u.in.sin_port) + tc->port_off));
      }
    }
    fd = socket(d->u.sa.sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
                0);
    if (fd < 0) {
      tc->dest_err = errno;
      ++tc->dest_idx;
      continue;
    }
    tc->fd = fd;
    tc->rev = event_new(r->base, fd, EV_READ | EV_PERSIST, on_tcp_read, tc);
    tc->wev = event_new(r->base, fd, EV_WRITE | EV_PERSIST, on_tcp_write, tc);
    if (connect(fd, &d->u.sa, d->len) == 0 || errno == EINPROGRESS) {
      tc->connecting = 1;
      tc_enable_write(tc, 1);
      return;
    }
    tc->dest_err = errno;
    PRD_LOG_DEBUG("[t%llu] connect: %s", (unsigned long long)tc->id,
                  strerror(errno));
    event_free(tc->rev);
    event_free(tc->wev);
    tc->rev = tc->wev = NULL;
    close(fd);
    tc->fd = -1;
    ++tc->dest_idx;
  }
  /* Every address failed: spec/05-errors.md DESTINATION_UNREACHABLE. */
  PRD_LOG_WARN("[t%llu] destination %s unreachable: %s",
               (unsigned long long)tc->id, dest_label(tc, label, sizeof(label)),
               tc->dest_err ? strerror(tc->dest_err) : "no address to dial");
  tc->connecting = 0;
  tc_close(tc, 1, PRD_APP_DESTINATION_UNREACHABLE, "destination unreachable");
}

static uint64_t client_stream_open(prd_quic_conn *qc, prd_qstream *st,
                                   const prd_stream_header *hd, void *ud) {
  tunnel *t = ud;
  relay *r = t->r;
  tcpc *tc;
  const char *nm = hd->has_service ? hd->service : PRD_SERVICE_DEFAULT;
  unsigned off = hd->has_port_offset ? hd->port_offset : 0;
  size_t svc = 0;

  if (r->stopping) {
    return PRD_APP_STREAM_REFUSED;
  }
  /* spec/02-framing.md §4.4: the destination is the service's, at the port
   * offset; a service not declared here, or an offset outside its range, is
   * refused without connecting anywhere. */
  if (hd->has_service || r->cfg->nservices > 1 ||
      strcmp(r->cfg->services[0].name, PRD_SERVICE_DEFAULT) != 0) {
    for (svc = 0; svc < r->cfg->nservices; ++svc) {
      if (!((r->svc_gone >> svc) & 1u) &&
          strcmp(r->cfg->services[svc].name, nm) == 0) {
        break;
      }
    }
  }
  if (svc >= r->cfg->nservices || ((r->svc_gone >> svc) & 1u) ||
      off >= r->cfg->services[svc].nports || r->cfg->services[svc].udp) {
    /* The codec let through only [A-Za-z0-9._-] (spec/02 §3.7). */
    if (!r->svc_unknown_logged) {
      r->svc_unknown_logged = 1;
      PRD_LOG_WARN("[%s] the server opened a stream for service \"%s\" port "
                   "offset %u, which this client does not serve: refused "
                   "(UNKNOWN_SERVICE)",
                   prd_quic_conn_name(qc), nm, off);
    } else {
      PRD_LOG_DEBUG("[%s] stream for service \"%s\" port offset %u refused",
                    prd_quic_conn_name(qc), nm, off);
    }
    return PRD_APP_UNKNOWN_SERVICE;
  }
  tc = tc_new(r, -1);
  if (tc == NULL) {
    return PRD_APP_INTERNAL_ERROR;
  }
  tc->fd = -1;
  tc->t = t;
  tc->svc = (uint16_t)svc;
  tc->port_off = (uint16_t)off;
  svc_count(tc);
  ++t->active;
  tc->st = st;
  prd_qstream_set_user(st, tc);
  if (hd->has_src) {
    if (hd->src.family == 4) {
      tc->peer.u.in.sin_family = AF_INET;
      memcpy(&tc->peer.u.in.sin_addr, hd->src.addr, 4);
      tc->peer.u.in.sin_port = htons(hd->src.port);
      tc->peer.len = sizeof(tc->peer.u.in);
    } else {
      tc->peer.u.in6.sin6_family = AF_INET6;
      memcpy(&tc->peer.u.in6.sin6_addr, hd->src.addr, 16);
      tc->peer.u.in6.sin6_port = htons(hd->src.port);
      tc->peer.len = sizeof(tc->peer.u.in6);
    }
  }
  if (r->cfg->services[svc].proxy_protocol) {
    uint8_t pp[PRD_PROXY_MAX];
    size_t n = prd_proxy_encode(pp, sizeof(pp),
                                r->cfg->services[svc].proxy_protocol, hd);
    if (n == 0 || prd_chunkbuf_append(&tc->out, pp, n) != 0) {
      tc->st = NULL;
      prd_qstream_set_user(st, NULL);
      --t->active;
      --r->nconns;
      --r->metrics.svc_active[svc];
      prd_chunkbuf_free(&tc->out);
      free(tc);
      return PRD_APP_INTERNAL_ERROR;
    }
  }
  (void)qc;
  PRD_LOG_DEBUG("[t%llu] %s stream %lld opened", (unsigned long long)tc->id,
                prd_quic_conn_name(qc), (long long)prd_qstream_id(st));
  client_try_connect(tc);
  /* On failure client_try_connect closed |tc| and aborted the stream. */
  return 0;
}

static void client_connect(tunnel *t);

void on_client_retry(evutil_socket_t fd, short what, void *arg) {
  tunnel *t = arg;
  (void)fd;
  (void)what;
  client_connect(t);
}

/* The address being dialed did not give an authenticated tunnel within
 * DIAL_TIMEOUT_MS while another address remains: give it up; client_closed
 * moves on to the next one. */
static void on_client_dial_timeout(evutil_socket_t fd, short what, void *arg) {
  tunnel *t = arg;
  char why[200], a[80];
  (void)fd;
  (void)what;
  if (t->qc && !t->authenticated) {
    if (prd_quic_conn_last_rx(t->qc) == 0) {
      snprintf(why, sizeof(why),
               "nothing answered over UDP within %d ms; check that UDP "
               "reaches %s",
               DIAL_TIMEOUT_MS,
               prd_sockaddr_str(prd_quic_conn_remote(t->qc), a, sizeof(a)));
    } else {
      snprintf(why, sizeof(why), "no tunnel within %d ms", DIAL_TIMEOUT_MS);
    }
    prd_quic_conn_close(t->qc, PRD_APP_AUTH_TIMEOUT, why);
  }
}

/* on_client_udp_timeout (--quic-transport auto): the dial over UDP heard
 * nothing from the server: UDP is probably blocked; dial again at once over
 * TCP (spec/11-tcp-path.md §3.2). */
static void on_client_udp_timeout(evutil_socket_t fd, short what, void *arg) {
  tunnel *t = arg;
  char a[80], why[200];
  (void)fd;
  (void)what;
  if (t->qc == NULL || t->authenticated || t->qt ||
      prd_quic_conn_last_rx(t->qc) != 0 ||
      (t->no_tcp_until && prd_now() < t->no_tcp_until)) {
    return;
  }
  prd_sockaddr_str(prd_quic_conn_remote(t->qc), a, sizeof(a));
  PRD_LOG_WARN("no answer over UDP from %s in %d s; UDP may be blocked; "
               "using TCP",
               a, UDP_FALLBACK_MS / 1000);
  t->use_tcp = 1;
  t->switch_now = 1;
  ++t->r->metrics.path_switches;
  snprintf(why, sizeof(why), "no answer over UDP within %d ms; moving to TCP",
           UDP_FALLBACK_MS);
  prd_quic_conn_close(t->qc, PRD_APP_AUTH_TIMEOUT, why);
}

/* ---- the path policy of an established tunnel (spec/11-tcp-path.md §3.2)
 */

static uint64_t probe_base_ns(const relay *r) {
  return r->cfg->udp_probe_interval_ns ? r->cfg->udp_probe_interval_ns
                                       : PROBE_DEFAULT_NS;
}

/* path_to_tcp: UDP went silent under an established tunnel: its packets
 * go over TCP from now on, and the server follows (a new path, RFC 9000
 * §9.3); its streams stay. */
static void path_to_tcp(tunnel *t, prd_tstamp now) {
  relay *r = t->r;
  const prd_sockaddr *to = prd_quic_conn_remote(t->qc);
  int rv;

  t->loss_at = 0;
  rv = qtcp_client_open(t, to);
  if (rv != 0) {
    PRD_LOG_WARN("[%s] the server offers no TCP path: TCP connect: %s; "
                 "staying on UDP",
                 prd_quic_conn_name(t->qc), strerror(-rv));
    t->no_tcp_until = now + NO_TCP_RETRY_NS;
    return;
  }
  if (t->back_at && now - t->back_at < FLAP_NS) {
    /* UDP did not last: probe it less often (hysteresis). */
    t->probe_interval_ns *= 2;
    if (t->probe_interval_ns > PROBE_MAX_NS) {
      t->probe_interval_ns = PROBE_MAX_NS;
    }
    PRD_LOG_INFO("[%s] UDP did not last a minute: probing it every %llu s",
                 prd_quic_conn_name(t->qc),
                 (unsigned long long)(t->probe_interval_ns / PRD_NS_PER_S));
  } else {
    t->probe_interval_ns = probe_base_ns(r);
  }
  t->use_tcp = 1;
  t->probe_ok = 0;
  t->probe_sent = 0;
  t->probe_next = now + t->probe_interval_ns;
  r->metrics.path_tcp = 1;
  ++r->metrics.path_switches;
  prd_quic_conn_probe(t->qc);
}

/* path_to_udp: the probes answered: back to UDP. */
static void path_to_udp(tunnel *t, prd_tstamp now) {
  relay *r = t->r;
  char a[80];
  PRD_LOG_INFO("[%s] UDP to %s answers again; back on UDP",
               prd_quic_conn_name(t->qc),
               prd_sockaddr_str(prd_quic_conn_remote(t->qc), a, sizeof(a)));
  qtcp_client_leave(t, LEAVE_LINGER_NS);
  qtcp_probe_close(t);
  if (t->udp_rev) {
    event_add(t->udp_rev, NULL);
  }
  t->use_tcp = 0;
  t->back_at = now;
  t->loss_at = 0;
  r->metrics.path_tcp = 0;
  ++r->metrics.path_switches;
  /* A packet over UDP now: the server moves to the new path. */
  prd_quic_conn_probe(t->qc);
  prd_quic_conn_flush(t->qc);
}

/* path_probe: on TCP, UDP is probed every probe interval; PROBE_OK_NEEDED
 * answers in a row (one second apart) bring the tunnel back. */
static void path_probe(tunnel *t, prd_tstamp now) {
  if (t->probe_sent) {
    if (t->probe_answered) {
      t->probe_sent = 0;
      if (++t->probe_ok >= PROBE_OK_NEEDED) {
        path_to_udp(t, now);
        return;
      }
      t->probe_next = now + PROBE_WAIT_NS;
    } else if (now - t->probe_sent > PROBE_WAIT_NS) {
      t->probe_sent = 0;
      t->probe_ok = 0;
      t->probe_next = now + t->probe_interval_ns;
    }
    return;
  }
  if (now >= t->probe_next) {
    if (qtcp_probe_send(t, prd_quic_conn_remote(t->qc)) == 0) {
      t->probe_sent = now;
    } else {
      t->probe_ok = 0;
      t->probe_next = now + t->probe_interval_ns;
    }
  }
}

int client_loss_window(tunnel *t, uint64_t sent, uint64_t lost) {
  if (sent >= LOSS_MIN_PKTS && lost * 100 >= sent * LOSS_PCT) {
    ++t->loss_heavy;
  } else {
    t->loss_heavy = 0;
  }
  return t->loss_heavy >= LOSS_WINDOWS;
}

static void on_client_path_tick(evutil_socket_t fd, short what, void *arg) {
  tunnel *t = arg;
  prd_tstamp now = prd_now();
  (void)fd;
  (void)what;
  if (t->qt_old && now > t->qt_old_until) {
    qtcp_free_old(t);
  }
  if (t->r->cfg->quic_transport != PRD_RELAY_TRANSPORT_AUTO || !t->qc ||
      !t->authenticated || t->r->stopping) {
    return;
  }
  if (t->qt == NULL && t->no_tcp_until && now < t->no_tcp_until) {
    return; /* the server offers no TCP path: nowhere to go */
  }
  if (t->qt == NULL) {
    char a[80];
    prd_sockaddr_str(prd_quic_conn_remote(t->qc), a, sizeof(a));
    if ((t->r->cfg->quic.keepalive_ns &&
         now - t->ack_probe_at >= t->r->cfg->quic.keepalive_ns) ||
        (t->udp_suspect_since && now - t->ack_probe_at >= PROBE_AGAIN_NS)) {
      /* Again while suspect: a lost PING is not resent, and one lost
       * probe (or its ACK) on an idle tunnel would otherwise be 6 s of
       * silence at a few % of loss. */
      t->ack_probe_at = now;
      prd_quic_conn_probe(t->qc);
    }
    if (!prd_quic_conn_suspect(t->qc)) {
      t->udp_suspect_since = 0;
    } else if (t->udp_suspect_since == 0) {
      t->udp_suspect_since = now;
    }
    if (t->udp_suspect_since && now - t->udp_suspect_since > UDP_SILENCE_NS) {
      PRD_LOG_WARN(
          "no answer over UDP from %s in %llu s; UDP may be "
          "blocked; using TCP",
          a, (unsigned long long)((now - t->udp_suspect_since) / PRD_NS_PER_S));
      t->udp_suspect_since = 0;
      path_to_tcp(t, now);
    } else if (now - t->loss_at >= LOSS_WINDOW_NS) {
      prd_quic_conn_info info;
      uint64_t ds, dl;
      prd_quic_conn_get_info(t->qc, &info);
      ds = info.sent_packets - t->loss_sent;
      dl = info.lost_packets - t->loss_lost;
      if (t->loss_at) {
        PRD_LOG_TRACE("UDP to %s: %llu of %llu packets lost in %.1f s", a,
                      (unsigned long long)dl, (unsigned long long)ds,
                      (double)(now - t->loss_at) / 1e9);
      }
      if (!t->loss_at) {
        t->loss_heavy = 0;
      } else if (client_loss_window(t, ds, dl)) {
        PRD_LOG_WARN("UDP to %s loses %llu %% of packets; UDP may be "
                     "throttled; using TCP",
                     a, (unsigned long long)(dl * 100 / ds));
        path_to_tcp(t, now);
        return;
      }
      t->loss_at = now;
      t->loss_sent = info.sent_packets;
      t->loss_lost = info.lost_packets;
    }
  } else if (qtcp_client_ready(t)) {
    if (t->probe_interval_ns == 0) {
      t->probe_interval_ns = probe_base_ns(t->r);
      t->probe_next = now + t->probe_interval_ns;
    }
    path_probe(t, now);
  }
}

void client_schedule_retry(tunnel *t) {
  struct timeval tv;
  uint64_t d = t->backoff_ms, ms;
  uint32_t rnd = (uint32_t)random();
  /* spec/07-state-machines.md §4: uniformly from [d/2, d], so that many
   * clients do not reconnect in lockstep. */
  ms = d - d / 2 + rnd % (d / 2 + 1);
  tv_from_ns(&tv, ms * PRD_NS_PER_MS);
  evtimer_add(t->retry_ev, &tv);
  t->backoff_ms *= 2;
  if (t->backoff_ms > BACKOFF_MAX_MS) {
    t->backoff_ms = BACKOFF_MAX_MS;
  }
}

/* The attempt at the current address failed before the tunnel was up: the
 * next address at once; after the last one, back off, then a new round with
 * the host name resolved again. */
void client_next_address(tunnel *t) {
  struct timeval tv = {0, 0};
  if (t->addr_idx + 1 < t->remote->naddrs) {
    ++t->addr_idx;
    evtimer_add(t->retry_ev, &tv);
    return;
  }
  t->addr_idx = 0;
  t->resolve_next = 1;
  client_schedule_retry(t);
}

/* ---- resolving the remote's host again, off the loop ------------------ */

static void client_dial(tunnel *t);

/* gai_words: what getaddrinfo's gai_strerror says for |err| (evdns has its
 * own words for the same errors; the log keeps the system's). */
static const char *gai_words(int err) {
  static const struct {
    int ev, sys;
  } map[] = {{EVUTIL_EAI_NONAME, EAI_NONAME}, {EVUTIL_EAI_AGAIN, EAI_AGAIN},
             {EVUTIL_EAI_FAIL, EAI_FAIL},     {EVUTIL_EAI_NODATA, EAI_NODATA},
             {EVUTIL_EAI_MEMORY, EAI_MEMORY}, {EVUTIL_EAI_FAMILY, EAI_FAMILY}};
  for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); ++i) {
    if (map[i].ev == err) {
      return gai_strerror(map[i].sys);
    }
  }
  return evutil_gai_strerror(err);
}

static int addr_in(const prd_sockaddr *a, const prd_sockaddr *set, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    if (memcmp(a, &set[i], sizeof(*a)) == 0) {
      return 1;
    }
  }
  return 0;
}

/* resolved_order puts the |n| addresses at |tmp| in the order the round
 * dials them. evdns lists IPv4 before IPv6 where getaddrinfo sorts by
 * RFC 6724, so: the same set as before keeps the order it had (the rounds
 * dial as they did); a new one puts the family of the previous first
 * address first, keeping evdns's order within a family. Returns 1 when the
 * set changed. */
static int resolved_order(prd_relay_remote *rm, prd_sockaddr *tmp, size_t n) {
  prd_sockaddr out[PRD_RELAY_MAX_ADDRS];
  size_t k = 0;
  int first;

  if (n == rm->naddrs) {
    size_t same = 0;
    for (size_t i = 0; i < n; ++i) {
      same += (size_t)addr_in(&tmp[i], rm->addrs, rm->naddrs);
    }
    if (same == n) {
      memcpy(tmp, rm->addrs, n * sizeof(tmp[0]));
      return 0;
    }
  }
  first = rm->naddrs ? rm->addrs[0].u.sa.sa_family : AF_INET;
  for (int pass = 0; pass < 2; ++pass) {
    for (size_t i = 0; i < n; ++i) {
      if ((tmp[i].u.sa.sa_family == first) == (pass == 0)) {
        out[k++] = tmp[i];
      }
    }
  }
  memcpy(tmp, out, n * sizeof(tmp[0]));
  return 1;
}

/* client_resolve_apply takes the answer of one resolution: the previous
 * addresses stay on failure. */
static void client_resolve_apply(tunnel *t, int err,
                                 const struct evutil_addrinfo *res) {
  prd_relay_remote *rm = t->remote;
  prd_sockaddr tmp[PRD_RELAY_MAX_ADDRS];
  char list[400], a[80];
  size_t n = 0, off = 0;

  for (; err == 0 && res && n < PRD_RELAY_MAX_ADDRS; res = res->ai_next) {
    if (res->ai_addrlen > sizeof(tmp[n].u)) {
      continue;
    }
    memset(&tmp[n], 0, sizeof(tmp[n]));
    memcpy(&tmp[n].u, res->ai_addr, res->ai_addrlen);
    tmp[n].len = (socklen_t)res->ai_addrlen;
    ++n;
  }
  if (n == 0) {
    char why[400];
    if (err != 0) {
      snprintf(why, sizeof(why), "cannot resolve \"%s\": %s", rm->host,
               gai_words(err));
    } else {
      snprintf(why, sizeof(why), "no usable address for \"%s\"", rm->host);
    }
    PRD_LOG_WARN("%s: %s; dialing the %zu address(es) resolved before",
                 rm->label, why, rm->naddrs);
    return;
  }
  if (!resolved_order(rm, tmp, n)) {
    return;
  }
  list[0] = 0;
  for (size_t i = 0; i < n && off < sizeof(list); ++i) {
    int w = snprintf(list + off, sizeof(list) - off, "%s%s", i ? ", " : "",
                     prd_sockaddr_str(&tmp[i], a, sizeof(a)));
    off += w > 0 ? (size_t)w : 0;
  }
  PRD_LOG_INFO("%s now resolves to %s", rm->label, list);
  memcpy(rm->addrs, tmp, n * sizeof(tmp[0]));
  rm->naddrs = n;
}

/* client_resolved is evdns_getaddrinfo's callback. A cancelled request
 * (shutdown) answers EVUTIL_EAI_CANCEL only, and then |arg| is not touched:
 * the tunnel may be gone. */
static void client_resolved(int err, struct evutil_addrinfo *res, void *arg) {
  tunnel *t = arg;
  if (err == EVUTIL_EAI_CANCEL) {
    if (res) {
      evutil_freeaddrinfo(res);
    }
    return;
  }
  t->dns_req = NULL;
  client_resolve_apply(t, err, res);
  if (res) {
    evutil_freeaddrinfo(res);
  }
  if (!t->dns_now && !t->r->stopping) {
    client_dial(t);
  }
}

static void dns_log(int is_warn, const char *msg) {
  char esc[400];
  prd_log_escape(esc, sizeof(esc), (const uint8_t *)msg, strlen(msg));
  PRD_LOG_DEBUG("DNS resolver%s: %s", is_warn ? " warning" : "", esc);
}

/* client_dns_new makes the resolver of client_resolve: the system's
 * resolv.conf, and no hold on the loop while no request is under way.
 * Without it (logged), the names are resolved only at start. */
static void client_dns_new(relay *r) {
  evdns_set_log_fn(dns_log);
  r->hosts_file = "/etc/hosts";
  r->dns = evdns_base_new(r->base, EVDNS_BASE_INITIALIZE_NAMESERVERS |
                                       EVDNS_BASE_DISABLE_WHEN_INACTIVE);
  if (r->dns == NULL) {
    PRD_LOG_WARN("cannot set up the DNS resolver from /etc/resolv.conf: the "
                 "--quic-remote-host names are not resolved again");
  }
}

/* client_resolve resolves the remote's host again (once per round: DNS
 * changes are followed) with evdns_getaddrinfo, so that a slow DNS server
 * stalls no other tunnel. Returns 1 when the answer is still to come
 * (client_resolved dials then), 0 when it came at once (an address, a name
 * in /etc/hosts) or there is nothing to resolve. */
int client_resolve(tunnel *t) {
  relay *r = t->r;
  prd_relay_remote *rm = t->remote;
  struct evutil_addrinfo hints;
  struct evdns_getaddrinfo_request *req;
  char port[8];

  if (r->dns == NULL || rm->host[0] == 0) {
    return 0;
  }
  /* getaddrinfo reads /etc/hosts on each call; evdns keeps what it loaded:
   * load it again (a local file, read at once). */
  evdns_base_clear_host_addresses(r->dns);
  evdns_base_load_hosts(r->dns, r->hosts_file);
  memset(&hints, 0, sizeof(hints));
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = EVUTIL_AI_NUMERICSERV;
  snprintf(port, sizeof(port), "%u", rm->port);
  t->dns_now = 1;
  req = evdns_getaddrinfo(r->dns, rm->host, port, &hints, client_resolved, t);
  t->dns_now = 0;
  t->dns_req = req;
  return req != NULL;
}

/* client_resolve_cancel cancels |t|'s resolution, if one is under way. */
void client_resolve_cancel(tunnel *t) {
  if (t->dns_req) {
    evdns_getaddrinfo_cancel(t->dns_req);
    t->dns_req = NULL;
  }
}

/* The local address to bind for a dial to |to|: --quic-local-port without
 * --quic-local-host binds the wildcard address of |to|'s family. */
static const prd_sockaddr *client_local(relay *r, const prd_sockaddr *to,
                                        prd_sockaddr *buf) {
  const prd_sockaddr *l = &r->cfg->quic_local;
  uint16_t port;
  if (!r->cfg->have_quic_local) {
    return NULL;
  }
  if (!r->cfg->quic_local_any || l->u.sa.sa_family == to->u.sa.sa_family) {
    return l;
  }
  port = l->u.sa.sa_family == AF_INET6 ? l->u.in6.sin6_port : l->u.in.sin_port;
  memset(buf, 0, sizeof(*buf));
  if (to->u.sa.sa_family == AF_INET6) {
    buf->u.in6.sin6_family = AF_INET6;
    buf->u.in6.sin6_addr = in6addr_any;
    buf->u.in6.sin6_port = port;
    buf->len = sizeof(buf->u.in6);
  } else {
    buf->u.in.sin_family = AF_INET;
    buf->u.in.sin_addr.s_addr = htonl(INADDR_ANY);
    buf->u.in.sin_port = port;
    buf->len = sizeof(buf->u.in);
  }
  return buf;
}

/* Trust on first use: pin the certificate of the first server we
 * authenticated with, for the next reconnects; the CLI's hook stores it on
 * disk off the loop and logs it. */
static void client_tofu_store(tunnel *t, prd_quic_conn *qc) {
  const prd_relay_config *cfg = t->r->cfg;
  const uint8_t *der;
  size_t len;
  uint8_t *copy;
  if (t->remote->pin_der || prd_quic_conn_tofu_cert(qc, &der, &len) != 0) {
    return;
  }
  copy = malloc(len);
  if (copy == NULL) {
    return;
  }
  memcpy(copy, der, len);
  if (cfg->tofu_store != NULL) {
    cfg->tofu_store(t->remote, der, len, cfg->tofu_arg);
  }
  t->remote->pin_der = copy;
  t->remote->pinlen = len;
  t->remote->pin_owned = 1;
  memcpy(t->remote->pin_name, t->remote->tofu_path,
         sizeof(t->remote->pin_name));
}

static void client_authenticated(prd_quic_conn *qc, void *ud) {
  tunnel *t = ud;
  relay *r = t->r;
  char a[80];
  t->authenticated = 1;
  t->up_since = prd_now();
  t->psk_err_at = 0;
  if (!r->ready_sent) {
    r->ready_sent = 1;
    prd_notify("READY=1\nSTATUS=tunnel up to %s", t->remote->label);
  }
  if (t->dial_ev) {
    evtimer_del(t->dial_ev);
  }
  if (t->udp_timer) {
    evtimer_del(t->udp_timer);
  }
  r->metrics.path_tcp = t->qt != NULL;
  ++r->metrics.clients;
  r->metrics.tunnel_up = 1;
  if (t->remote->naddrs > 1) {
    PRD_LOG_INFO("[%s] tunnel up: authenticated to %s (%s)",
                 prd_quic_conn_name(qc), t->remote->label,
                 prd_sockaddr_str(prd_quic_conn_remote(qc), a, sizeof(a)));
  } else {
    PRD_LOG_INFO("[%s] tunnel up: authenticated to %s", prd_quic_conn_name(qc),
                 t->remote->label);
  }
  client_tofu_store(t, qc);
  /* spec/07 §2: without named services negotiated the client serves
   * default only; it says so once if it has other services. */
  if (r->cfg->quic.nservices > 0 && !prd_quic_conn_services_negotiated(qc) &&
      !t->svc_warned) {
    t->svc_warned = 1;
    PRD_LOG_WARN("[%s] the server at %s does not support named services (an "
                 "older portredirect_server): serving only default",
                 prd_quic_conn_name(qc), t->remote->label);
  }
  if (r->stopping) {
    prd_quic_conn_goaway(qc, PRD_APP_SHUTTING_DOWN);
  }
}

/* client_service_refused: the server does not have a service we declared
 * (SERVICE_REFUSED, spec/02-framing.md §3.8): logged once per name. */
static void client_service_refused(prd_quic_conn *qc, const char *name,
                                   uint64_t code, void *ud) {
  tunnel *t = ud;
  relay *r = t->r;
  size_t i;

  for (i = 0; i < r->cfg->nservices; ++i) {
    if (strcmp(r->cfg->services[i].name, name) == 0) {
      break;
    }
  }
  if (i < 32 && i < r->cfg->nservices) {
    if (r->svc_refused_logged & (1u << i)) {
      return;
    }
    r->svc_refused_logged |= 1u << i;
  }
  /* The codec let through only [A-Za-z0-9._-] (spec/02 §3.7). */
  if (code == PRD_APP_SERVICE_NOT_PERMITTED) {
    /* spec/03-auth.md §4.1: the server has it, our identity may not serve
     * it: a configuration error (spec/05-errors.md §2.1). */
    PRD_LOG_ERROR("[%s] the server at %s refused service \"%s\" "
                  "(SERVICE_NOT_PERMITTED): this client may not serve it; "
                  "add it to services= of our line in the server's clients "
                  "file, or remove it here",
                  prd_quic_conn_name(qc), t->remote->label, name);
    return;
  }
  PRD_LOG_WARN("[%s] the server at %s refused service \"%s\" (%s): its "
               "users will not come through this server",
               prd_quic_conn_name(qc), t->remote->label, name,
               code == PRD_APP_UNKNOWN_SERVICE ? "it has no such service"
                                               : "refused");
}

static void client_closed(prd_quic_conn *qc, const prd_quic_close_info *ci,
                          void *ud) {
  tunnel *t = ud;
  relay *r = t->r;
  int stable, psk_rejected, revoked, names_unknown, was_up = t->authenticated;
  prd_quic_conn_info info;
  char a[80], at[100];
  const char *msg = ci->msg;

  if (t->dial_ev) {
    evtimer_del(t->dial_ev);
  }
  if (t->udp_timer) {
    evtimer_del(t->udp_timer);
  }
  qtcp_client_stop(t);
  qtcp_probe_close(t);
  t->probe_sent = 0;
  t->probe_ok = 0;
  t->loss_at = 0;
  t->udp_suspect_since = 0;
  /* The connection's loss count, kept for the lost-packets counter. */
  prd_quic_conn_get_info(qc, &info);
  r->metrics.lost_closed += info.lost_packets;
  udp_tunnel_gone(r, t);
  at[0] = 0;
  if (t->remote->naddrs > 1) {
    snprintf(at, sizeof(at), " (%s, address %zu of %zu)",
             prd_sockaddr_str(prd_quic_conn_remote(qc), a, sizeof(a)),
             t->addr_idx + 1, t->remote->naddrs);
  }
  stable = t->authenticated && prd_now() - t->up_since >= STABLE_NS;
  psk_rejected = !t->authenticated &&
                 (ci->kind == PRD_QUIC_CLOSE_LOCAL ||
                  ci->kind == PRD_QUIC_CLOSE_PEER_APP) &&
                 ci->code == PRD_APP_AUTH_FAILED;
  /* spec/03-auth.md §4.1: a server that does not know client names
   * answers our named AUTH_RESPONSE with PROTOCOL_ERROR. */
  names_unknown = !t->authenticated && ci->kind == PRD_QUIC_CLOSE_PEER_APP &&
                  ci->code == PRD_APP_PROTOCOL_ERROR &&
                  prd_quic_conn_client_name(qc) != NULL;
  /* spec/05-errors.md §2: the server's configuration dropped our identity;
   * like AUTH_FAILED, only a change there helps. */
  revoked =
      ci->kind == PRD_QUIC_CLOSE_PEER_APP && ci->code == PRD_APP_CLIENT_REVOKED;
  if (revoked) {
    if (t->authenticated) {
      --r->metrics.clients;
    }
    PRD_LOG_ERROR("[%s] %s%s revoked this client (CLIENT_REVOKED): its "
                  "configuration no longer has our name or key. Retrying "
                  "every %d s",
                  prd_quic_conn_name(qc), t->remote->label, at,
                  BACKOFF_MAX_MS / 1000);
  } else if (psk_rejected || names_unknown) {
    prd_tstamp now = prd_now();
    const char *name = prd_quic_conn_client_name(qc);
    if (t->psk_err_at == 0 || now - t->psk_err_at >= PSK_ERROR_EVERY_NS) {
      t->psk_err_at = now;
      if (names_unknown) {
        PRD_LOG_ERROR("[%s] authentication failed: %s%s closed with "
                      "PROTOCOL_ERROR after our AUTH_RESPONSE with client "
                      "name \"%s\": the server may not know client names "
                      "(upgrade it, or drop --client-name). Retrying every "
                      "%d s; this message repeats every %d minutes",
                      prd_quic_conn_name(qc), t->remote->label, at, name,
                      BACKOFF_MAX_MS / 1000,
                      (int)(PSK_ERROR_EVERY_NS / PRD_NS_PER_S / 60));
      } else if (name != NULL) {
        PRD_LOG_ERROR("[%s] authentication failed: %s%s rejected client "
                      "\"%s\" with our PSK (AUTH_FAILED), a configuration "
                      "error; check --client-name and --quic-psk-file here "
                      "and the server's clients file (that name, its key, "
                      "its allow=). Retrying every %d s; this message "
                      "repeats every %d minutes",
                      prd_quic_conn_name(qc), t->remote->label, at, name,
                      BACKOFF_MAX_MS / 1000,
                      (int)(PSK_ERROR_EVERY_NS / PRD_NS_PER_S / 60));
      } else {
        PRD_LOG_ERROR("[%s] authentication failed: %s%s rejected our PSK "
                      "(AUTH_FAILED), a configuration error; check "
                      "--quic-psk/--quic-psk-file on both sides. Retrying "
                      "every %d s; this message repeats every %d minutes",
                      prd_quic_conn_name(qc), t->remote->label, at,
                      BACKOFF_MAX_MS / 1000,
                      (int)(PSK_ERROR_EVERY_NS / PRD_NS_PER_S / 60));
      }
    } else {
      PRD_LOG_DEBUG("[%s] %s%s rejected our PSK again", prd_quic_conn_name(qc),
                    t->remote->label, at);
    }
  } else if (t->authenticated) {
    --r->metrics.clients;
    PRD_LOG_INFO("[%s] tunnel to %s%s down: %s", prd_quic_conn_name(qc),
                 t->remote->label, at, msg && msg[0] ? msg : "closed");
  } else if ((t->tcp_no_path && t->tcp_no_path_logged) || t->switch_now) {
    PRD_LOG_DEBUG("[%s] %s%s: %s", prd_quic_conn_name(qc), t->remote->label, at,
                  msg && msg[0] ? msg : "failed");
  } else if (ci->kind == PRD_QUIC_CLOSE_PIN_MISMATCH ||
             ci->kind == PRD_QUIC_CLOSE_NAME_MISMATCH ||
             ci->kind == PRD_QUIC_CLOSE_CERT_REJECTED) {
    PRD_LOG_ERROR("[%s] %s%s: %s", prd_quic_conn_name(qc), t->remote->label, at,
                  msg);
  } else {
    PRD_LOG_WARN("[%s] cannot connect to %s%s: %s", prd_quic_conn_name(qc),
                 t->remote->label, at, msg && msg[0] ? msg : "failed");
  }
  r->metrics.tunnel_up = 0;
  for (size_t i = 0; i < r->cfg->nremotes; ++i) {
    if (r->remotes[i].qc && r->remotes[i].authenticated &&
        &r->remotes[i] != t) {
      r->metrics.tunnel_up = 1;
    }
  }
  t->qc = NULL;
  t->authenticated = 0;
  tunnel_events_free(t);
  /* The endpoint is still on the call stack: free it on the retry. */
  t->dead_ep = t->ep;
  t->ep = NULL;
  if (t->udp_rev) {
    event_del(t->udp_rev);
  }
  if (t->udp_wev) {
    event_del(t->udp_wev);
  }
  if (r->stopping) {
    check_drained(r);
    return;
  }
  if (stable) {
    t->backoff_ms = BACKOFF_MIN_MS;
  }
  ++r->metrics.reconnects;
  if (psk_rejected || revoked || names_unknown) {
    /* Retrying sooner cannot help: straight to the cap. */
    t->backoff_ms = BACKOFF_MAX_MS;
  }
  if (r->cfg->quic_transport == PRD_RELAY_TRANSPORT_AUTO && !was_up &&
      t->udp_refused && t->tcp_refused) {
    /* Refused over both: UDP first again next time, after the backoff. */
    t->use_tcp = 0;
    ++r->metrics.path_switches;
  }
  t->tcp_refused = 0;
  if (r->cfg->quic_transport == PRD_RELAY_TRANSPORT_AUTO && !was_up &&
      !t->use_tcp && !t->udp_refused && ci->kind == PRD_QUIC_CLOSE_HANDSHAKE &&
      ci->err == -ECONNREFUSED &&
      !(t->no_tcp_until && prd_now() < t->no_tcp_until)) {
    /* An ICMP error refused UDP: a firewall that rejects rather than
     * drops (spec/11-tcp-path.md §3.2), or a server that is down; TCP
     * tells which. */
    prd_sockaddr_str(prd_quic_conn_remote(qc), a, sizeof(a));
    if (!t->refused_warned) {
      t->refused_warned = 1;
      PRD_LOG_WARN("UDP to %s refused (ICMP); UDP may be blocked; using TCP",
                   a);
    }
    t->udp_refused = 1;
    t->use_tcp = 1;
    t->switch_now = 1;
    ++r->metrics.path_switches;
  } else {
    t->udp_refused = 0;
  }
  if (t->tcp_no_path) {
    /* spec/11-tcp-path.md §3.2: said once; auto goes back to UDP. */
    t->tcp_no_path = 0;
    t->tcp_no_path_logged = 1;
    t->no_tcp_until = prd_now() + NO_TCP_RETRY_NS;
    if (r->cfg->quic_transport == PRD_RELAY_TRANSPORT_AUTO && t->use_tcp) {
      t->use_tcp = 0;
      ++r->metrics.path_switches;
    }
  }
  if (t->switch_now) {
    /* The same address at once, over the other path. */
    struct timeval tv = {0, 0};
    t->switch_now = 0;
    evtimer_add(t->retry_ev, &tv);
    return;
  }
  if (!was_up) {
    client_next_address(t);
    return;
  }
  /* A tunnel that was up: a new round, from the first address. */
  t->addr_idx = 0;
  t->resolve_next = 1;
  client_schedule_retry(t);
}

/* client_connect starts a dial (on_client_retry): the endpoint of the
 * last one is freed, and a new round resolves the host again first. */
static void client_connect(tunnel *t) {
  relay *r = t->r;

  if (t->dead_ep) {
    relay_ev_free(&t->udp_rev);
    relay_ev_free(&t->udp_wev);
    qtcp_client_free(t);
    prd_quic_endpoint_del(t->dead_ep);
    t->dead_ep = NULL;
  }
  if (r->stopping) {
    return;
  }
  if (t->resolve_next) {
    t->resolve_next = 0;
    if (client_resolve(t)) {
      return; /* client_resolved dials */
    }
  }
  client_dial(t);
}

/* client_dial dials remote address t->addr_idx. */
static void client_dial(tunnel *t) {
  relay *r = t->r;
  prd_relay_remote *rm = t->remote;
  prd_quic_config qcfg = r->cfg->quic;
  prd_sockaddr lbuf;
  const prd_sockaddr *to;
  char a[80];
  int rv;

  if (t->addr_idx >= rm->naddrs) {
    t->addr_idx = 0;
  }
  to = &rm->addrs[t->addr_idx];
  prd_sockaddr_str(to, a, sizeof(a));
  qcfg.pin_der = t->remote->pin_der;
  qcfg.pinlen = t->remote->pinlen;
  qcfg.expected_name = t->remote->expected_name;
  qcfg.pin_name = t->remote->pin_name;
  qcfg.pin_sha256 = t->remote->pin_sha256;
  qcfg.npin_sha256 = t->remote->npin_sha256;
  qcfg.ud = t;
  if (tunnel_events(r, t) != 0) {
    tunnel_events_free(t);
    client_schedule_retry(t);
    return;
  }
  rv = prd_quic_endpoint_new_client(&t->ep, &t->qc, &qcfg,
                                    client_local(r, to, &lbuf), to);
  if (rv != 0) {
    PRD_LOG_WARN("cannot start a connection to %s (%s): %s", rm->label, a,
                 prd_strerror(rv));
    tunnel_events_free(t);
    t->ep = NULL;
    t->qc = NULL;
    client_next_address(t);
    return;
  }
  t->udp_rev = event_new(r->base, prd_quic_endpoint_fd(t->ep),
                         EV_READ | EV_PERSIST, on_udp_read, t->ep);
  t->udp_wev = event_new(r->base, prd_quic_endpoint_fd(t->ep), EV_WRITE,
                         on_udp_write, t->ep);
  r->metrics.path_tcp = t->use_tcp ? 1 : 0;
  if (t->use_tcp) {
    /* spec/11-tcp-path.md: the same QUIC packets, over TCP. */
    rv = qtcp_client_open(t, to);
    if (rv != 0) {
      char why[200];
      snprintf(why, sizeof(why), "TCP connect: %s", strerror(-rv));
      t->tcp_no_path = 1;
      PRD_LOG_DEBUG("[%s] TCP path to %s: %s", prd_quic_conn_name(t->qc), a,
                    why);
      prd_quic_conn_close(t->qc, PRD_APP_NO_ERROR, why);
      return;
    }
  } else {
    event_add(t->udp_rev, NULL);
    if (r->cfg->quic_transport == PRD_RELAY_TRANSPORT_AUTO && t->udp_timer) {
      struct timeval tv;
      tv_from_ns(&tv, (uint64_t)UDP_FALLBACK_MS * PRD_NS_PER_MS);
      evtimer_add(t->udp_timer, &tv);
    }
  }
  PRD_LOG_DEBUG("[%s] connecting to %s (%s over %s, address %zu of %zu)",
                prd_quic_conn_name(t->qc), rm->label, a,
                t->use_tcp ? "TCP" : "UDP", t->addr_idx + 1, rm->naddrs);
  if (t->addr_idx + 1 < rm->naddrs && t->dial_ev &&
      (t->use_tcp || r->cfg->quic_transport != PRD_RELAY_TRANSPORT_AUTO)) {
    /* Another address remains: do not wait for the handshake timeout. */
    struct timeval tv;
    tv_from_ns(&tv, (uint64_t)DIAL_TIMEOUT_MS * PRD_NS_PER_MS);
    evtimer_add(t->dial_ev, &tv);
  }
  prd_quic_conn_flush(t->qc);
}

static void client_want_writable(prd_quic_endpoint *ep, void *ud) {
  relay *r = ud;
  for (size_t i = 0; i < r->cfg->nremotes; ++i) {
    if (r->remotes[i].ep == ep && r->remotes[i].udp_wev) {
      event_add(r->remotes[i].udp_wev, NULL);
    }
  }
}

/* ---- the client's part of the shared code (relay_role) ----------------- */

static const char *client_tcp_label(tcpc *tc, char *buf, size_t buflen) {
  return dest_label(tc, buf, buflen);
}

/* The destination's next address, or DESTINATION_UNREACHABLE. */
static void client_tcp_connect_failed(tcpc *tc) {
  ++tc->dest_idx;
  client_try_connect(tc);
}

static void client_stop(relay *r) {
  for (tunnel *t = r->tunnels; t; t = t->next) {
    client_resolve_cancel(t);
    if (t->retry_ev) {
      evtimer_del(t->retry_ev);
    }
    if (t->dial_ev) {
      evtimer_del(t->dial_ev);
    }
    if (t->udp_timer) {
      evtimer_del(t->udp_timer);
    }
    if (t->path_ev) {
      event_del(t->path_ev);
    }
  }
}

/* client_declare sets the names the client declares (spec/02-framing.md
 * §3.7): every service not removed, or none when default is the only one
 * (a client that declares nothing serves default). Returns the count. */
static size_t client_declare(relay *r) {
  prd_relay_config *cfg = r->cfg;
  size_t n = 0;
  for (size_t i = 0; i < cfg->nservices; ++i) {
    if (!((r->svc_gone >> i) & 1u)) {
      r->svc_names[n++] = cfg->services[i].name;
    }
  }
  if (n == 1 && strcmp(r->svc_names[0], PRD_SERVICE_DEFAULT) == 0) {
    n = 0;
  }
  cfg->quic.services = n ? r->svc_names : NULL;
  cfg->quic.nservices = n;
  return n;
}

static int remote_same(const prd_relay_remote *a, const prd_relay_remote *b) {
  return strcmp(a->label, b->label) == 0 &&
         strcmp(a->expected_name, b->expected_name) == 0;
}

/* client_reload applies |next| (relay_role.reload, README "Reload"): the
 * services and destinations, for the streams from now on; when the names
 * change, each tunnel declares them again. */
static int client_reload(relay *r, prd_relay_config *next) {
  prd_relay_config *cfg = r->cfg;
  const prd_quic_config *oq = &cfg->quic, *nq = &next->quic;
  int remotes_same = cfg->nremotes == next->nremotes;
  uint32_t added = 0;
  svc_plan p;
  size_t n, nlive = 0;

  if (next->nservices == 0) {
    PRD_LOG_ERROR("reload refused: no service; the running configuration "
                  "stays");
    return -1;
  }
  if (reload_keep_udp(r, next) != 0) {
    return -1;
  }
  for (size_t i = 0; remotes_same && i < cfg->nremotes; ++i) {
    remotes_same = remote_same(&cfg->remotes[i], &next->remotes[i]);
  }
  WARN_RESTART(!remotes_same, "the server list (--quic-remote, "
                              "--quic-remote-host/-port, "
                              "--quic-remote-hostname-match)");
  WARN_RESTART(cfg->have_quic_local != next->have_quic_local ||
                   cfg->quic_local_any != next->quic_local_any ||
                   memcmp(&cfg->quic_local, &next->quic_local,
                          sizeof(cfg->quic_local)) != 0,
               "--quic-local-host/--quic-local-port");
  WARN_RESTART(strcmp(cfg->metrics_listen, next->metrics_listen) != 0,
               "--metrics-listen");
  WARN_RESTART(cfg->quic_transport != next->quic_transport ||
                   cfg->udp_probe_interval_ns != next->udp_probe_interval_ns,
               "--quic-transport/--quic-udp-probe-interval");
  /* The QUIC settings of new connections (qcfg, client_connect). */
  cfg->quic.idle_timeout_ns = nq->idle_timeout_ns;
  cfg->quic.keepalive_ns = nq->keepalive_ns;
  cfg->quic.max_udp_payload = nq->max_udp_payload;
  cfg->quic.max_streams = nq->max_streams;
  cfg->quic.cc_algo = nq->cc_algo;
  cfg->quic.no_queue_bound = nq->no_queue_bound;
  WARN_RESTART(strcmp(oq->keylog_file ? oq->keylog_file : "",
                      nq->keylog_file ? nq->keylog_file : "") != 0,
               "--keylog-file");
  if (oq->psklen != nq->psklen ||
      (nq->psklen && memcmp(oq->psk, nq->psk, nq->psklen) != 0)) {
    PRD_LOG_INFO("reload: the PSK changed: used from the next connection; "
                 "the tunnels up stay");
  }
  cfg->quic.psk = nq->psk;
  cfg->quic.psklen = nq->psklen;
  cfg->grace_ns = next->grace_ns;
  cfg->proxy_protocol = next->proxy_protocol;

  svc_plan_make(&p, cfg->services, cfg->nservices, r->svc_gone,
                r->metrics.svc_active, next->services, next->nservices);
  r->svc_gone |= p.removed;
  for (size_t i = 0; i < next->nservices; ++i) {
    int s = p.slot[i];
    if (s < 0) {
      PRD_LOG_ERROR("reload: no room for service \"%s\" (at most %d, "
                    "counting removed ones still in use): left out",
                    next->services[i].name, PRD_RELAY_MAX_SERVICES);
      continue;
    }
    if (p.change[i] == SVC_ADDED) {
      r->metrics.svc_total[s] = 0;
      r->metrics.svc_active[s] = 0;
      r->svc_gone &= ~(1u << s);
      added |= 1u << s;
    }
    cfg->services[s] = next->services[i];
  }
  cfg->nservices = p.nslots;
  r->svc_refused_logged &= ~added;
  r->svc_default = -1;
  r->metrics.nsvc = cfg->nservices;
  for (size_t s = 0; s < cfg->nservices; ++s) {
    r->metrics.svc_names[s] = cfg->services[s].name;
    if (!((r->svc_gone >> s) & 1u)) {
      ++nlive;
      if (strcmp(cfg->services[s].name, PRD_SERVICE_DEFAULT) == 0) {
        r->svc_default = (int)s;
      }
    }
  }
  n = client_declare(r);
  if (p.nadded || p.nremoved) {
    for (tunnel *t = r->tunnels; t; t = t->next) {
      int rv;
      if (t->qc == NULL) {
        continue;
      }
      rv = prd_quic_conn_set_services(t->qc, r->svc_names, n);
      if (rv != 0) {
        PRD_LOG_WARN("[%s] cannot declare the new services: %s; they "
                     "apply from the next connection",
                     prd_quic_conn_name(t->qc), prd_strerror(rv));
      }
    }
  }
  PRD_LOG_INFO("reload: %zu services (+%u -%u ~%u)", nlive, p.nadded,
               p.nremoved, p.nchanged);
  return 0;
}

const relay_role prd_relay_client_role = {
    .peer = "server",
    .local_reset_code = PRD_APP_DESTINATION_RESET,
    .tcp_label = client_tcp_label,
    .tcp_is_user = 0,
    .tcp_connect_failed = client_tcp_connect_failed,
    .stop = client_stop,
    .reload = client_reload,
};

int prd_relay_client_run(prd_relay_config *cfg) {
  relay r;

  if (relay_common_init(&r, cfg, &prd_relay_client_role, 0) != 0) {
    return 1;
  }
  r.cb.authenticated = client_authenticated;
  r.cb.stream_open = client_stream_open;
  r.cb.closed = client_closed;
  r.cb.want_writable = client_want_writable;
  r.cb.service_refused = client_service_refused;
  r.cb.datagram = udp_on_datagram;
  relay_services_init(&r);
  cfg->quic.datagrams = udp_any(cfg); /* spec/10-udp.md §2 */
  if (udp_start(&r) != 0) {
    udp_free(&r);
    relay_common_free(&r);
    return 1;
  }
  /* Declare the services (spec/02-framing.md §3.7) unless there is only
   * default: a client that declares nothing serves default. */
  client_declare(&r);
  client_dns_new(&r);
  srandom((unsigned)prd_now());
  for (size_t i = 0; i < cfg->nremotes; ++i) {
    /* r.tunnels: every remote's tunnel, in --server order, for good. */
    r.remotes[i].next = i + 1 < cfg->nremotes ? &r.remotes[i + 1] : NULL;
  }
  r.tunnels = cfg->nremotes ? &r.remotes[0] : NULL;
  for (size_t i = 0; i < cfg->nremotes; ++i) {
    tunnel *t = &r.remotes[i];
    t->r = &r;
    t->timer_fd = -1;
    t->remote = &cfg->remotes[i];
    t->backoff_ms = BACKOFF_MIN_MS;
    t->retry_ev = evtimer_new(r.base, on_client_retry, t);
    t->dial_ev = evtimer_new(r.base, on_client_dial_timeout, t);
    t->udp_timer = evtimer_new(r.base, on_client_udp_timeout, t);
    t->probe_fd = -1;
    t->path_ev = event_new(r.base, -1, EV_PERSIST, on_client_path_tick, t);
    if (t->path_ev) {
      struct timeval tv = {0, PATH_TICK_MS * 1000};
      event_add(t->path_ev, &tv);
    }
    t->use_tcp = cfg->quic_transport == PRD_RELAY_TRANSPORT_TCP;
    client_connect(t);
  }

  event_base_dispatch(r.base);

  for (size_t i = 0; i < cfg->nremotes; ++i) {
    client_resolve_cancel(&r.remotes[i]);
  }
  if (r.dns) {
    evdns_base_free(r.dns, 1); /* answers what is left with a cancel */
  }
  for (size_t i = 0; i < cfg->nremotes; ++i) {
    tunnel *t = &r.remotes[i];
    if (t->ep) {
      t->dead_ep = t->ep;
      t->ep = NULL;
    }
    if (t->ep == NULL && t->dead_ep) {
      prd_quic_endpoint_del(t->dead_ep);
      t->dead_ep = NULL;
    }
    tunnel_events_free(t);
    qtcp_client_free(t);
    relay_ev_free(&t->udp_rev);
    relay_ev_free(&t->udp_wev);
    relay_ev_free(&t->retry_ev);
    relay_ev_free(&t->dial_ev);
    relay_ev_free(&t->udp_timer);
    relay_ev_free(&t->qtcp_timer);
    relay_ev_free(&t->path_ev);
    qtcp_probe_close(t);
    if (t->remote->pin_owned) {
      free((void *)(uintptr_t)t->remote->pin_der);
      t->remote->pin_der = NULL;
    }
  }
  udp_free(&r);
  relay_common_free(&r);
  PRD_LOG_INFO("client stopped");
  return 0;
}
