/* SPDX-License-Identifier: GPL-3.0-only */
/* The UDP side: socket setup, datagram receive and dispatch by connection
 * ID, the server's accept path (Retry, stateless reset, version
 * negotiation), and GSO sends. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <gnutls/crypto.h>
#include <netinet/udp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../common/log.h"
#include "quic_int.h"

#ifndef UDP_SEGMENT
#  define UDP_SEGMENT 103
#endif
#ifndef UDP_GRO
#  define UDP_GRO 104
#endif

#define SOCKBUF_WANT (8 * 1024 * 1024)
#define READ_BUDGET 256
#define RETRY_TOKEN_TIMEOUT (10 * NGTCP2_SECONDS)
#define SR_PER_SECOND 100

/* Per-source-address admission control (spec/03-auth.md §6,
 * spec/08-security.md §3): an address (an IPv6 /64) may start RL_BURST new
 * connections at once and RL_PER_S per second after that; beyond that its
 * Initials get Retry and, once validated, are dropped. RL_FAIL_BUDGET
 * authentication failures within RL_WINDOW put it in a cool-down of
 * RL_COOLDOWN during which its Initials are dropped. */
#define RL_SLOTS 1024
#define RL_PROBE 8
#define RL_BURST 32
#define RL_PER_S 4
#define RL_FAIL_BUDGET 10
#define RL_WINDOW (60 * PRD_NS_PER_S)
#define RL_COOLDOWN (60 * PRD_NS_PER_S)
#define RL_LOG_EVERY (10 * PRD_NS_PER_S)

const char *prd_sockaddr_str(const prd_sockaddr *a, char *buf, size_t buflen) {
  char host[INET6_ADDRSTRLEN];
  if (a->u.sa.sa_family == AF_INET) {
    inet_ntop(AF_INET, &a->u.in.sin_addr, host, sizeof(host));
    snprintf(buf, buflen, "%s:%u", host, ntohs(a->u.in.sin_port));
  } else if (a->u.sa.sa_family == AF_INET6) {
    const struct in6_addr *x = &a->u.in6.sin6_addr;
    if (IN6_IS_ADDR_V4MAPPED(x)) {
      inet_ntop(AF_INET, &x->s6_addr[12], host, sizeof(host));
      snprintf(buf, buflen, "%s:%u", host, ntohs(a->u.in6.sin6_port));
    } else {
      inet_ntop(AF_INET6, x, host, sizeof(host));
      snprintf(buf, buflen, "[%s]:%u", host, ntohs(a->u.in6.sin6_port));
    }
  } else {
    snprintf(buf, buflen, "?");
  }
  return buf;
}

/* ---- CID table -------------------------------------------------------- */

static size_t cid_hash(const ngtcp2_cid *cid) {
  uint32_t h = 2166136261u;
  for (size_t i = 0; i < cid->datalen; ++i) {
    h = (h ^ cid->data[i]) * 16777619u;
  }
  return h % PRD_CID_BUCKETS;
}

int prd_ep_cid_add(prd_quic_endpoint *ep, const ngtcp2_cid *cid,
                   prd_quic_conn *qc) {
  size_t h = cid_hash(cid);
  prd_cid_entry *e;
  for (e = ep->cids[h]; e; e = e->next) {
    if (ngtcp2_cid_eq(&e->cid, cid)) {
      e->qc = qc;
      return 0;
    }
  }
  e = malloc(sizeof(*e));
  if (e == NULL) {
    return PRD_ERR_NOMEM;
  }
  e->cid = *cid;
  e->qc = qc;
  e->next = ep->cids[h];
  ep->cids[h] = e;
  return 0;
}

void prd_ep_cid_remove(prd_quic_endpoint *ep, const ngtcp2_cid *cid) {
  prd_cid_entry **pp = &ep->cids[cid_hash(cid)];
  while (*pp) {
    if (ngtcp2_cid_eq(&(*pp)->cid, cid)) {
      prd_cid_entry *e = *pp;
      *pp = e->next;
      free(e);
      return;
    }
    pp = &(*pp)->next;
  }
}

static prd_quic_conn *cid_find(prd_quic_endpoint *ep, const uint8_t *data,
                               size_t len) {
  ngtcp2_cid cid;
  prd_cid_entry *e;
  if (len > NGTCP2_MAX_CIDLEN) {
    return NULL;
  }
  ngtcp2_cid_init(&cid, data, len);
  for (e = ep->cids[cid_hash(&cid)]; e; e = e->next) {
    if (ngtcp2_cid_eq(&e->cid, &cid)) {
      return e->qc;
    }
  }
  return NULL;
}

/* ---- sockets ---------------------------------------------------------- */

static void raise_sockbuf(int fd, int opt, int force_opt, const char *name) {
  int want = SOCKBUF_WANT, got = 0;
  socklen_t len = sizeof(got);
  static int warned;
  if (setsockopt(fd, SOL_SOCKET, force_opt, &want, sizeof(want)) != 0) {
    setsockopt(fd, SOL_SOCKET, opt, &want, sizeof(want));
  }
  if (getsockopt(fd, SOL_SOCKET, opt, &got, &len) == 0 && got < want &&
      !warned) {
    warned = 1;
    PRD_LOG_WARN("UDP %s buffer capped at %d bytes by the kernel; for full "
                 "speed run: sysctl -w net.core.rmem_max=%d "
                 "net.core.wmem_max=%d",
                 name, got, SOCKBUF_WANT, SOCKBUF_WANT);
  }
}

static int udp_socket(int family) {
  int fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int on = 1;
  if (fd < 0) {
    return -errno;
  }
  raise_sockbuf(fd, SO_RCVBUF, SO_RCVBUFFORCE, "receive");
  raise_sockbuf(fd, SO_SNDBUF, SO_SNDBUFFORCE, "send");
  if (family == AF_INET6) {
    setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &on, sizeof(on));
  }
  setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &on, sizeof(on));
  /* GRO: the kernel hands us a train of datagrams in one read. */
  setsockopt(fd, SOL_UDP, UDP_GRO, &on, sizeof(on));
  /* Never fragment: QUIC sizes its datagrams itself. */
  {
    int pmtu = IP_PMTUDISC_DO;
    setsockopt(fd, IPPROTO_IP, IP_MTU_DISCOVER, &pmtu, sizeof(pmtu));
    if (family == AF_INET6) {
      pmtu = IPV6_PMTUDISC_DO;
      setsockopt(fd, IPPROTO_IPV6, IPV6_MTU_DISCOVER, &pmtu, sizeof(pmtu));
    }
  }
  return fd;
}

static int is_wildcard(const prd_sockaddr *a) {
  if (a->u.sa.sa_family == AF_INET) {
    return a->u.in.sin_addr.s_addr == htonl(INADDR_ANY);
  }
  return IN6_IS_ADDR_UNSPECIFIED(&a->u.in6.sin6_addr);
}

static int ep_common(prd_quic_endpoint **pep, const prd_quic_config *cfg,
                     int is_server) {
  prd_quic_endpoint *ep = calloc(1, sizeof(*ep));
  if (ep == NULL) {
    return PRD_ERR_NOMEM;
  }
  ep->cfg = *cfg;
  ep->is_server = is_server;
  ep->fd = -1;
  ep->keylog_fd = -1;
  if (cfg->keylog_file && cfg->keylog_file[0]) {
    ep->keylog_fd =
        open(cfg->keylog_file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (ep->keylog_fd < 0) {
      PRD_LOG_WARN("cannot open key log file %s: %s", cfg->keylog_file,
                   strerror(errno));
    }
  }
  if (prd_tls_server_cred(ep) != 0) {
    prd_quic_endpoint_del(ep);
    return PRD_ERR_TLS;
  }
  *pep = ep;
  return 0;
}

int prd_quic_endpoint_new_server(prd_quic_endpoint **pep,
                                 const prd_quic_config *cfg,
                                 const prd_sockaddr *local,
                                 const uint8_t *static_secret) {
  prd_quic_endpoint *ep;
  int rv = ep_common(&ep, cfg, 1), off = 0;
  if (rv != 0) {
    return rv;
  }
  memcpy(ep->static_secret, static_secret, sizeof(ep->static_secret));
  ep->fd = udp_socket(local->u.sa.sa_family);
  if (ep->fd < 0) {
    rv = ep->fd;
    ep->fd = -1;
    goto fail;
  }
  /* No SO_REUSEADDR: UDP has no TIME_WAIT to wait out after a restart, and
   * with it a second server could bind the same port and take the first
   * one's traffic (spec/08-security.md §3). */
  if (local->u.sa.sa_family == AF_INET6) {
    /* "::" accepts IPv4-mapped peers too. */
    setsockopt(ep->fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof(off));
  }
  if (bind(ep->fd, &local->u.sa, local->len) != 0) {
    rv = -errno;
    goto fail;
  }
  ep->local = *local;
  ep->local.len = sizeof(ep->local.u.ss);
  getsockname(ep->fd, &ep->local.u.sa, &ep->local.len);
  ep->local_is_wildcard = is_wildcard(&ep->local);
  *pep = ep;
  return 0;
fail:
  prd_quic_endpoint_del(ep);
  return rv;
}

int prd_quic_endpoint_new_client(prd_quic_endpoint **pep, prd_quic_conn **pqc,
                                 const prd_quic_config *cfg,
                                 const prd_sockaddr *local,
                                 const prd_sockaddr *remote) {
  prd_quic_endpoint *ep;
  prd_quic_conn *qc;
  int rv = ep_common(&ep, cfg, 0);
  if (rv != 0) {
    return rv;
  }
  /* A random static secret: the client never sends stateless resets. */
  gnutls_rnd(GNUTLS_RND_RANDOM, ep->static_secret, sizeof(ep->static_secret));
  ep->fd = udp_socket(remote->u.sa.sa_family);
  if (ep->fd < 0) {
    rv = ep->fd;
    ep->fd = -1;
    goto fail;
  }
  if (local && bind(ep->fd, &local->u.sa, local->len) != 0) {
    rv = -errno;
    goto fail;
  }
  if (connect(ep->fd, &remote->u.sa, remote->len) != 0) {
    rv = -errno;
    goto fail;
  }
  ep->local.len = sizeof(ep->local.u.ss);
  getsockname(ep->fd, &ep->local.u.sa, &ep->local.len);
  rv = prd_conn_client_new(&qc, ep, &ep->local, remote);
  if (rv != 0) {
    goto fail;
  }
  *pep = ep;
  *pqc = qc;
  return 0;
fail:
  prd_quic_endpoint_del(ep);
  return rv;
}

void prd_quic_endpoint_del(prd_quic_endpoint *ep) {
  if (ep == NULL) {
    return;
  }
  while (ep->conns) {
    prd_conn_free(ep->conns);
  }
  for (size_t i = 0; i < PRD_CID_BUCKETS; ++i) {
    while (ep->cids[i]) {
      prd_cid_entry *e = ep->cids[i];
      ep->cids[i] = e->next;
      free(e);
    }
  }
  if (ep->fd >= 0) {
    close(ep->fd);
  }
  if (ep->keylog_fd >= 0) {
    close(ep->keylog_fd);
  }
  if (ep->cred) {
    gnutls_certificate_free_credentials(ep->cred);
  }
  if (ep->prio) {
    gnutls_priority_deinit(ep->prio);
  }
  free(ep);
}

int prd_quic_endpoint_fd(const prd_quic_endpoint *ep) { return ep->fd; }

size_t prd_quic_endpoint_num_conns(const prd_quic_endpoint *ep) {
  return ep->nconns;
}

/* ---- send ------------------------------------------------------------- */

ssize_t prd_ep_send(prd_quic_endpoint *ep, const prd_sockaddr *local,
                    const prd_sockaddr *remote, const uint8_t *data, size_t len,
                    size_t segsize) {
  struct iovec iov = {(void *)(uintptr_t)data, len};
  struct msghdr msg;
  union {
    char buf[CMSG_SPACE(sizeof(uint16_t)) +
             CMSG_SPACE(sizeof(struct in6_pktinfo))];
    struct cmsghdr align;
  } cmsg;
  struct cmsghdr *cm;
  size_t controllen = 0;
  ssize_t n;

  if (ep->transmit) {
    return ep->transmit(ep, local, remote, data, len, segsize,
                        ep->transmit_arg);
  }
  memset(&msg, 0, sizeof(msg));
  memset(&cmsg, 0, sizeof(cmsg));
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  if (ep->is_server) {
    msg.msg_name = (void *)(uintptr_t)&remote->u.sa;
    msg.msg_namelen = remote->len;
  }
  msg.msg_control = cmsg.buf;
  msg.msg_controllen = sizeof(cmsg.buf);
  cm = CMSG_FIRSTHDR(&msg);
  if (len > segsize) {
    uint16_t seg = (uint16_t)segsize;
    cm->cmsg_level = SOL_UDP;
    cm->cmsg_type = UDP_SEGMENT;
    cm->cmsg_len = CMSG_LEN(sizeof(seg));
    memcpy(CMSG_DATA(cm), &seg, sizeof(seg));
    controllen += CMSG_SPACE(sizeof(seg));
    cm = CMSG_NXTHDR(&msg, cm);
  }
  if (ep->is_server && ep->local_is_wildcard && local) {
    /* Answer from the address the peer talked to. */
    if (local->u.sa.sa_family == AF_INET && remote->u.sa.sa_family == AF_INET) {
      struct in_pktinfo pi;
      memset(&pi, 0, sizeof(pi));
      pi.ipi_spec_dst = local->u.in.sin_addr;
      cm->cmsg_level = IPPROTO_IP;
      cm->cmsg_type = IP_PKTINFO;
      cm->cmsg_len = CMSG_LEN(sizeof(pi));
      memcpy(CMSG_DATA(cm), &pi, sizeof(pi));
      controllen += CMSG_SPACE(sizeof(pi));
    } else if (local->u.sa.sa_family == AF_INET6) {
      struct in6_pktinfo pi;
      memset(&pi, 0, sizeof(pi));
      pi.ipi6_addr = local->u.in6.sin6_addr;
      cm->cmsg_level = IPPROTO_IPV6;
      cm->cmsg_type = IPV6_PKTINFO;
      cm->cmsg_len = CMSG_LEN(sizeof(pi));
      memcpy(CMSG_DATA(cm), &pi, sizeof(pi));
      controllen += CMSG_SPACE(sizeof(pi));
    }
  }
  msg.msg_controllen = controllen;
  if (controllen == 0) {
    msg.msg_control = NULL;
  }
  do {
    n = sendmsg(ep->fd, &msg, 0);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) {
      return -EAGAIN;
    }
    if (errno == EIO && len > segsize) {
      /* GSO unsupported by the device: fall back to single datagrams. */
      size_t off = 0;
      while (off < len) {
        size_t m = len - off < segsize ? len - off : segsize;
        ssize_t r = prd_ep_send(ep, local, remote, data + off, m, m);
        if (r < 0) {
          return off ? (ssize_t)off : r;
        }
        off += m;
      }
      return (ssize_t)len;
    }
    PRD_LOG_DEBUG("sendmsg of %zu bytes (segments of %zu): %s", len, segsize,
                  strerror(errno));
    return -errno;
  }
  return (ssize_t)len;
}

void prd_ep_block(prd_quic_endpoint *ep, prd_quic_conn *qc) {
  if (!qc->in_blocked) {
    qc->in_blocked = 1;
    qc->blocked_next = ep->blocked;
    ep->blocked = qc;
  }
  if (ep->cfg.cb->want_writable) {
    ep->cfg.cb->want_writable(ep, ep->cfg.ud);
  }
}

void prd_quic_endpoint_on_writable(prd_quic_endpoint *ep) {
  prd_quic_conn *list = ep->blocked;
  ep->blocked = NULL;
  while (list) {
    prd_quic_conn *qc = list;
    list = qc->blocked_next;
    qc->in_blocked = 0;
    qc->blocked_next = NULL;
    prd_quic_conn_flush(qc);
  }
}

/* ---- per-address rate limit ------------------------------------------- */

typedef struct rl_entry {
  uint8_t key[9]; /* family, then 4 (IPv4) or 8 (IPv6 /64) address bytes */
  uint8_t used;
  uint32_t mtokens; /* thousandths of a new-connection token */
  uint32_t fails;
  uint32_t dropped;
  uint32_t fail_quiet; /* failure lines left out since fail_logged */
  prd_tstamp seen, refill, fail_start, cooldown_until, logged, fail_logged;
} rl_entry;

/* One table per process: a server has one endpoint. */
static rl_entry rl_table[RL_SLOTS];

static void rl_key(const prd_sockaddr *a, uint8_t key[9]) {
  memset(key, 0, 9);
  if (a->u.sa.sa_family == AF_INET) {
    key[0] = 4;
    memcpy(key + 1, &a->u.in.sin_addr, 4);
  } else if (IN6_IS_ADDR_V4MAPPED(&a->u.in6.sin6_addr)) {
    key[0] = 4;
    memcpy(key + 1, &a->u.in6.sin6_addr.s6_addr[12], 4);
  } else {
    key[0] = 6;
    memcpy(key + 1, &a->u.in6.sin6_addr, 8);
  }
}

static void rl_refill(rl_entry *e, prd_tstamp now);

/* rl_clean: the entry says nothing a new one would not (full bucket, no
 * failures in the window, no cool-down), so it may be given up. */
static int rl_clean(rl_entry *e, prd_tstamp now) {
  rl_refill(e, now);
  return e->cooldown_until <= now &&
         (e->fails == 0 || now - e->fail_start > RL_WINDOW) &&
         e->mtokens >= RL_BURST * 1000;
}

/* rl_get finds or makes the entry of |a|'s address. The slot comes from a
 * hash keyed by the endpoint's secret; a full neighbourhood gives up its
 * least recently seen clean entry. For an address not |validated| (an
 * Initial without a Retry token, possibly spoofed) no other entry is given
 * up: NULL then, and the caller asks for Retry. A validated address takes
 * the least recently seen entry if none is clean. */
static rl_entry *rl_get(prd_quic_endpoint *ep, const prd_sockaddr *a,
                        prd_tstamp now, int validated) {
  uint8_t key[9];
  uint32_t h;
  rl_entry *victim = NULL;
  size_t i;

  rl_key(a, key);
  memcpy(&h, ep->static_secret, sizeof(h));
  h ^= 2166136261u;
  for (i = 0; i < sizeof(key); ++i) {
    h = (h ^ key[i]) * 16777619u;
  }
  for (i = 0; i < RL_PROBE; ++i) {
    rl_entry *e = &rl_table[(h + i) % RL_SLOTS];
    if (e->used && memcmp(e->key, key, sizeof(key)) == 0) {
      e->seen = now;
      return e;
    }
  }
  for (i = 0; i < RL_PROBE; ++i) {
    rl_entry *e = &rl_table[(h + i) % RL_SLOTS];
    if (!e->used) {
      victim = e;
      break;
    }
    if (rl_clean(e, now) && (victim == NULL || e->seen < victim->seen)) {
      victim = e;
    }
  }
  if (victim == NULL) {
    if (!validated) {
      return NULL;
    }
    for (i = 0; i < RL_PROBE; ++i) {
      rl_entry *e = &rl_table[(h + i) % RL_SLOTS];
      if (victim == NULL || e->seen < victim->seen) {
        victim = e;
      }
    }
  }
  memset(victim, 0, sizeof(*victim));
  memcpy(victim->key, key, sizeof(key));
  victim->used = 1;
  victim->mtokens = RL_BURST * 1000;
  victim->seen = victim->refill = now;
  return victim;
}

static void rl_refill(rl_entry *e, prd_tstamp now) {
  uint64_t add = (now - e->refill) * RL_PER_S / PRD_NS_PER_MS;
  if (add > 0) {
    add += e->mtokens;
    e->mtokens = add > RL_BURST * 1000 ? RL_BURST * 1000 : (uint32_t)add;
    e->refill = now;
  }
}

static int rl_has_token(rl_entry *e, prd_tstamp now) {
  rl_refill(e, now);
  return e->mtokens >= 1000;
}

static void rl_note_drop(rl_entry *e, const prd_sockaddr *a, prd_tstamp now,
                         const char *why) {
  char peer[80];
  ++e->dropped;
  if (e->logged == 0 || now - e->logged >= RL_LOG_EVERY) {
    PRD_LOG_WARN("dropping new connections from %s: %s (%u dropped)",
                 prd_sockaddr_str(a, peer, sizeof(peer)), why, e->dropped);
    e->logged = now;
    e->dropped = 0;
  }
}

/* ep_exempt: |a| is in --auth-fail-exempt. */
static int ep_exempt(const prd_quic_endpoint *ep, const prd_sockaddr *a) {
  uint8_t key[9];
  const uint8_t *addr;
  rl_key(a, key);
  addr = a->u.sa.sa_family == AF_INET ? (const uint8_t *)&a->u.in.sin_addr
         : key[0] == 4                ? &a->u.in6.sin6_addr.s6_addr[12]
                                      : a->u.in6.sin6_addr.s6_addr;
  for (size_t i = 0; i < ep->cfg.nauth_exempt; ++i) {
    const prd_addr_prefix *p = &ep->cfg.auth_exempt[i];
    unsigned full = p->bits / 8, rest = p->bits % 8;
    if (p->family != key[0] || memcmp(p->addr, addr, full) != 0) {
      continue;
    }
    if (rest == 0 ||
        ((p->addr[full] ^ addr[full]) & (uint8_t)(0xff << (8 - rest))) == 0) {
      return 1;
    }
  }
  return 0;
}

/* ep_same_key: |a| and |b| share a rate-limit entry (address, or /64). */
static int ep_same_key(const prd_sockaddr *a, const prd_sockaddr *b) {
  uint8_t ka[9], kb[9];
  rl_key(a, ka);
  rl_key(b, kb);
  return memcmp(ka, kb, sizeof(ka)) == 0;
}

int prd_ep_auth_log_ok(prd_quic_endpoint *ep, const prd_sockaddr *a,
                       uint32_t *psuppressed) {
  prd_tstamp now = prd_now();
  rl_entry *e = rl_get(ep, a, now, 1);
  if (e->fail_logged != 0 && now - e->fail_logged < RL_LOG_EVERY) {
    ++e->fail_quiet;
    return 0;
  }
  *psuppressed = e->fail_quiet;
  e->fail_quiet = 0;
  e->fail_logged = now;
  return 1;
}

void prd_ep_auth_failure(prd_quic_endpoint *ep, prd_quic_conn *qc) {
  prd_tstamp now = prd_now();
  const prd_sockaddr *a = &qc->hs_remote;
  rl_entry *e = rl_get(ep, a, now, 1);
  prd_quic_conn *c, *next;
  char peer[80];

  if (e->fails == 0 || now - e->fail_start > RL_WINDOW) {
    e->fails = 0;
    e->fail_start = now;
  }
  if (++e->fails < RL_FAIL_BUDGET || e->cooldown_until > now) {
    return;
  }
  e->fails = 0;
  prd_sockaddr_str(a, peer, sizeof(peer));
  if (ep->cfg.auth_fail_cooldown_ns == 0 || ep_exempt(ep, a)) {
    return;
  }
  /* spec/08-security.md §3: others' failures do not lock out a client that
   * proved the PSK from the same address (CGNAT, an office NAT). */
  for (c = ep->conns; c; c = c->next) {
    if (c->state == PRD_QC_OPEN && ep_same_key(&c->hs_remote, a)) {
      PRD_LOG_WARN("%u authentication failures from %s within %llu s: not "
                   "cooling it down, a client that authenticated from there "
                   "is connected",
                   RL_FAIL_BUDGET, peer,
                   (unsigned long long)(RL_WINDOW / PRD_NS_PER_S));
      return;
    }
  }
  e->cooldown_until = now + ep->cfg.auth_fail_cooldown_ns;
  PRD_LOG_WARN(
      "%u authentication failures from %s within %llu s: "
      "refusing its new connections for %llu s",
      RL_FAIL_BUDGET, peer, (unsigned long long)(RL_WINDOW / PRD_NS_PER_S),
      (unsigned long long)(ep->cfg.auth_fail_cooldown_ns / PRD_NS_PER_S));
  e->logged = 0; /* the first drop is logged at once */
  /* Its connections still authenticating would each get one more guess. */
  for (c = ep->conns; c; c = next) {
    next = c->next;
    if (c != qc && c->state < PRD_QC_OPEN && ep_same_key(&c->hs_remote, a)) {
      prd_quic_conn_refuse(c, "address cooling down");
    }
  }
}

/* ---- receive ---------------------------------------------------------- */

static void send_stateless_reset(prd_quic_endpoint *ep,
                                 const prd_sockaddr *local,
                                 const prd_sockaddr *remote,
                                 const uint8_t *dcid, size_t dcidlen,
                                 size_t pktlen) {
  uint8_t token[NGTCP2_STATELESS_RESET_TOKENLEN];
  uint8_t rand[64], buf[128];
  ngtcp2_cid cid;
  ngtcp2_ssize n;
  size_t randlen;
  prd_tstamp now = prd_now();

  /* Rate limit: garbage floods must not turn us into a reflector. */
  if (now - ep->sr_window > PRD_NS_PER_S) {
    ep->sr_window = now;
    ep->sr_count = 0;
  }
  /* RFC 9000 §10.3: one byte shorter than the packet that triggered it, and
   * at least 22 bytes (1 + NGTCP2_MIN_STATELESS_RESET_RANDLEN + the token:
   * ngtcp2 writes and recognises no shorter reset), so for any trigger of 23
   * bytes or more. A client's keepalive PING is about 40 bytes: it must get
   * a reset after our restart, or the client waits for its idle timeout. */
  if (pktlen < 1 + NGTCP2_MIN_STATELESS_RESET_RANDLEN +
                   NGTCP2_STATELESS_RESET_TOKENLEN + 1 ||
      ++ep->sr_count > SR_PER_SECOND) {
    return;
  }
  randlen = pktlen - 1 - NGTCP2_STATELESS_RESET_TOKENLEN - 1;
  if (randlen > sizeof(rand)) {
    randlen = sizeof(rand);
  }
  if (randlen < NGTCP2_MIN_STATELESS_RESET_RANDLEN) {
    return;
  }
  ngtcp2_cid_init(&cid, dcid, dcidlen);
  if (ngtcp2_crypto_generate_stateless_reset_token(
          token, ep->static_secret, sizeof(ep->static_secret), &cid) != 0) {
    return;
  }
  gnutls_rnd(GNUTLS_RND_NONCE, rand, randlen);
  n = ngtcp2_pkt_write_stateless_reset(buf, sizeof(buf), token, rand, randlen);
  if (n > 0) {
    prd_ep_send(ep, local, remote, buf, (size_t)n, (size_t)n);
  }
}

static void send_retry(prd_quic_endpoint *ep, const ngtcp2_pkt_hd *hd,
                       const prd_sockaddr *local, const prd_sockaddr *remote) {
  uint8_t token[NGTCP2_CRYPTO_MAX_RETRY_TOKENLEN];
  uint8_t buf[1280], scidbuf[PRD_SCID_LEN];
  ngtcp2_cid scid;
  ngtcp2_ssize tokenlen, n;

  gnutls_rnd(GNUTLS_RND_RANDOM, scidbuf, sizeof(scidbuf));
  ngtcp2_cid_init(&scid, scidbuf, sizeof(scidbuf));
  tokenlen = ngtcp2_crypto_generate_retry_token(
      token, ep->static_secret, sizeof(ep->static_secret), hd->version,
      &remote->u.sa, remote->len, &scid, &hd->dcid, prd_now());
  if (tokenlen < 0) {
    return;
  }
  n = ngtcp2_crypto_write_retry(buf, sizeof(buf), hd->version, &hd->scid, &scid,
                                &hd->dcid, token, (size_t)tokenlen);
  if (n > 0) {
    prd_ep_send(ep, local, remote, buf, (size_t)n, (size_t)n);
  }
}

static void server_accept(prd_quic_endpoint *ep, const prd_sockaddr *local,
                          const prd_sockaddr *remote, const uint8_t *pkt,
                          size_t len, uint8_t ecn) {
  ngtcp2_pkt_hd hd;
  ngtcp2_cid odcid, *podcid = NULL;
  prd_quic_conn *qc;
  prd_tstamp now;
  rl_entry *rl;
  int rv = ngtcp2_accept(&hd, pkt, len);

  if (rv != 0) {
    return; /* not an Initial we can accept: drop silently */
  }
  now = prd_now();
  /* spec/08-security.md §3: an unvalidated Initial (possibly spoofed) finds
   * its address's entry but never evicts one that holds a failure count, a
   * cool-down or a spent bucket; without a free or clean slot it gets Retry. */
  rl = rl_get(ep, remote, now, 0);
  if (rl && rl->cooldown_until > now) {
    rl_note_drop(rl, remote, now, "cooling down after authentication failures");
    return;
  }
  if (prd_hd_tokenlen(&hd) > 0 &&
      prd_hd_token(&hd)[0] == NGTCP2_CRYPTO_TOKEN_MAGIC_RETRY) {
    if (ngtcp2_crypto_verify_retry_token(
            &odcid, prd_hd_token(&hd), prd_hd_tokenlen(&hd), ep->static_secret,
            sizeof(ep->static_secret), hd.version, &remote->u.sa, remote->len,
            &hd.dcid, RETRY_TOKEN_TIMEOUT, prd_now()) != 0) {
      return; /* forged or stale token */
    }
    podcid = &odcid;
    if (rl == NULL) {
      rl = rl_get(ep, remote, now, 1);
    }
  } else if (rl == NULL || ep->npending >= ep->cfg.max_pending_handshakes / 2 ||
             !rl_has_token(rl, now)) {
    /* Under pressure, or the address is over its rate: make the peer prove
     * its address first (spec/04-quic-profile.md §3), so that spoofed
     * Initials cost no state and cannot use up a real address's budget. */
    send_retry(ep, &hd, local, remote);
    return;
  }
  if (ep->npending >= ep->cfg.max_pending_handshakes) {
    return;
  }
  if (!rl_has_token(rl, now)) {
    rl_note_drop(rl, remote, now, "too many new connections");
    return;
  }
  rl->mtokens -= 1000;
  rv = prd_conn_server_new(&qc, ep, &hd, local, remote, podcid,
                           podcid ? &hd.dcid : NULL);
  if (rv != 0) {
    return;
  }
  if (prd_conn_read(qc, local, remote, pkt, len, ecn) == 0) {
    prd_quic_conn_flush(qc);
  }
}

static void dispatch(prd_quic_endpoint *ep, const prd_sockaddr *local,
                     const prd_sockaddr *remote, const uint8_t *pkt, size_t len,
                     uint8_t ecn) {
  ngtcp2_version_cid vc;
  prd_quic_conn *qc;
  int rv;

  if (!ep->is_server) {
    if (ep->conns) {
      prd_conn_read(ep->conns, local, remote, pkt, len, ecn);
    }
    return;
  }
  rv = ngtcp2_pkt_decode_version_cid(&vc, pkt, len, PRD_SCID_LEN);
  if (rv == NGTCP2_ERR_VERSION_NEGOTIATION) {
    uint8_t buf[256];
    uint32_t sv[] = {NGTCP2_PROTO_VER_V1};
    uint8_t r;
    ngtcp2_ssize n;
    gnutls_rnd(GNUTLS_RND_NONCE, &r, 1);
    n = ngtcp2_pkt_write_version_negotiation(
        buf, sizeof(buf), r, vc.scid, vc.scidlen, vc.dcid, vc.dcidlen, sv, 1);
    if (n > 0 && len >= 1200) {
      prd_ep_send(ep, local, remote, buf, (size_t)n, (size_t)n);
    }
    return;
  }
  if (rv != 0) {
    return;
  }
  qc = cid_find(ep, vc.dcid, vc.dcidlen);
  if (qc) {
    /* An authentication failure (not a later protocol error of an
     * authenticated peer) counts against the address. */
    int counted =
        (qc->flags & (PRD_QC_F_AUTH_FAILED | PRD_QC_F_AUTHENTICATED)) != 0;
    if (prd_conn_read(qc, local, remote, pkt, len, ecn) == 0 && !counted &&
        (qc->flags & PRD_QC_F_AUTH_FAILED)) {
      /* Charged to the address the handshake came from, not to this
       * datagram's source: ngtcp2 takes frames from a new, unvalidated
       * path, so the source could be a victim's, spoofed. */
      prd_ep_auth_failure(ep, qc);
    }
    return;
  }
  if (pkt[0] & 0x80) {
    server_accept(ep, local, remote, pkt, len, ecn);
  } else {
    send_stateless_reset(ep, local, remote, vc.dcid, vc.dcidlen, len);
  }
}

/* rx_cmsg holds one datagram's ancillary data: its destination address
 * (IP_PKTINFO / IPV6_PKTINFO) and its GRO segment size. */
typedef struct {
  _Alignas(struct cmsghdr) char buf[CMSG_SPACE(sizeof(struct in6_pktinfo)) +
                                    CMSG_SPACE(sizeof(int)) +
                                    CMSG_SPACE(sizeof(int))];
} rx_cmsg;

/* rx_one dispatches the |n| bytes received with |msg|: one datagram, or a
 * GRO train of equal-sized datagrams (the last may be shorter). */
static void rx_one(prd_quic_endpoint *ep, struct msghdr *msg, uint8_t *buf,
                   size_t n, prd_sockaddr *remote) {
  prd_sockaddr local;
  struct cmsghdr *cm;
  size_t gso = 0, off;

  if (msg->msg_flags & MSG_TRUNC) {
    return;
  }
  remote->len = msg->msg_namelen;
  if (!ep->is_server && ep->conns) {
    *remote = ep->conns->remote;
  }
  local = ep->local;
  for (cm = CMSG_FIRSTHDR(msg); cm; cm = CMSG_NXTHDR(msg, cm)) {
    if (cm->cmsg_level == IPPROTO_IP && cm->cmsg_type == IP_PKTINFO &&
        local.u.sa.sa_family == AF_INET) {
      struct in_pktinfo pi;
      memcpy(&pi, CMSG_DATA(cm), sizeof(pi));
      local.u.in.sin_addr = pi.ipi_addr;
    } else if (cm->cmsg_level == IPPROTO_IPV6 &&
               cm->cmsg_type == IPV6_PKTINFO &&
               local.u.sa.sa_family == AF_INET6) {
      struct in6_pktinfo pi;
      memcpy(&pi, CMSG_DATA(cm), sizeof(pi));
      local.u.in6.sin6_addr = pi.ipi6_addr;
    } else if (cm->cmsg_level == SOL_UDP && cm->cmsg_type == UDP_GRO) {
      int seg;
      memcpy(&seg, CMSG_DATA(cm), sizeof(seg));
      gso = seg > 0 ? (size_t)seg : 0;
    }
  }
  if (gso == 0) {
    gso = n;
  }
  for (off = 0; off < n; off += gso) {
    size_t len = n - off < gso ? n - off : gso;
    dispatch(ep, &local, remote, buf + off, len, 0);
  }
}

/* Reads up to READ_BUDGET datagrams (or GRO trains), PRD_RX_BATCH per
 * recvmmsg call. A short batch means the queue is empty: no extra call just
 * to see EAGAIN. */
void prd_quic_endpoint_on_readable(prd_quic_endpoint *ep) {
  struct mmsghdr mm[PRD_RX_BATCH];
  struct iovec iov[PRD_RX_BATCH];
  prd_sockaddr remote[PRD_RX_BATCH];
  rx_cmsg cmsg[PRD_RX_BATCH];
  int budget = READ_BUDGET;

  while (budget > 0) {
    unsigned want = budget < PRD_RX_BATCH ? (unsigned)budget : PRD_RX_BATCH;
    int n;

    for (unsigned i = 0; i < want; ++i) {
      struct msghdr *msg = &mm[i].msg_hdr;
      iov[i].iov_base = ep->rxbuf[i];
      iov[i].iov_len = sizeof(ep->rxbuf[i]);
      memset(msg, 0, sizeof(*msg));
      msg->msg_name = &remote[i].u.ss;
      msg->msg_namelen = sizeof(remote[i].u.ss);
      msg->msg_iov = &iov[i];
      msg->msg_iovlen = 1;
      msg->msg_control = cmsg[i].buf;
      msg->msg_controllen = sizeof(cmsg[i].buf);
      mm[i].msg_len = 0;
    }
    n = recvmmsg(ep->fd, mm, want, 0, NULL);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      /* EAGAIN: done. ECONNREFUSED on a connected socket is an ICMP echo of
       * a peer that went away: not fatal (STYLE §10). */
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        break;
      }
      if (errno == ECONNREFUSED && !ep->is_server && ep->conns) {
        prd_conn_refused(ep->conns);
        break;
      }
      --budget; /* another error: skip that datagram */
      continue;
    }
    for (int i = 0; i < n; ++i) {
      rx_one(ep, &mm[i].msg_hdr, ep->rxbuf[i], mm[i].msg_len, &remote[i]);
    }
    budget -= n;
    if ((unsigned)n < want) {
      break;
    }
  }
}

/* ---- test seam -------------------------------------------------------- */

void prd_quic_endpoint_set_transmit(prd_quic_endpoint *ep,
                                    prd_quic_transmit_fn fn, void *arg) {
  ep->transmit = fn;
  ep->transmit_arg = arg;
}

void prd_quic_endpoint_deliver(prd_quic_endpoint *ep, const prd_sockaddr *local,
                               const prd_sockaddr *remote, const uint8_t *pkt,
                               size_t len) {
  dispatch(ep, local, remote, pkt, len, 0);
}
