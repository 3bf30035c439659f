/* SPDX-License-Identifier: GPL-3.0-only */
/* An endpoint's UDP socket: setup, GSO sends, recvmmsg with GRO, and the
 * queue of senders waiting for the socket to take more (udp.h). */
#include "udp.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../common/log.h"

#ifndef UDP_SEGMENT
#  define UDP_SEGMENT 103
#endif
#ifndef UDP_GRO
#  define UDP_GRO 104
#endif

#define SOCKBUF_WANT (8 * 1024 * 1024)

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

/* udp_fail closes the socket and returns |rv|. */
static int udp_fail(prd_udp *u, int rv) {
  prd_udp_close(u);
  return rv;
}

int prd_udp_open_server(prd_udp *u, const prd_sockaddr *local) {
  int off = 0;
  u->fd = udp_socket(local->u.sa.sa_family);
  if (u->fd < 0) {
    int rv = u->fd;
    u->fd = -1;
    return rv;
  }
  /* No SO_REUSEADDR: UDP has no TIME_WAIT to wait out after a restart, and
   * with it a second server could bind the same port and take the first
   * one's traffic (spec/08-security.md §3). */
  if (local->u.sa.sa_family == AF_INET6) {
    /* "::" accepts IPv4-mapped peers too. */
    setsockopt(u->fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof(off));
  }
  if (bind(u->fd, &local->u.sa, local->len) != 0) {
    return udp_fail(u, -errno);
  }
  u->local = *local;
  u->local.len = sizeof(u->local.u.ss);
  getsockname(u->fd, &u->local.u.sa, &u->local.len);
  u->local_is_wildcard = is_wildcard(&u->local);
  return 0;
}

int prd_udp_open_client(prd_udp *u, const prd_sockaddr *local,
                        const prd_sockaddr *remote) {
  u->fd = udp_socket(remote->u.sa.sa_family);
  if (u->fd < 0) {
    int rv = u->fd;
    u->fd = -1;
    return rv;
  }
  if (local && bind(u->fd, &local->u.sa, local->len) != 0) {
    return udp_fail(u, -errno);
  }
  if (connect(u->fd, &remote->u.sa, remote->len) != 0) {
    return udp_fail(u, -errno);
  }
  u->connected = 1;
  u->local.len = sizeof(u->local.u.ss);
  getsockname(u->fd, &u->local.u.sa, &u->local.len);
  return 0;
}

void prd_udp_close(prd_udp *u) {
  if (u->fd >= 0) {
    close(u->fd);
  }
  u->fd = -1;
}

/* ---- send ------------------------------------------------------------- */

/* put_cmsg fills |cm| with one control message and returns the space it
 * takes. */
static size_t put_cmsg(struct cmsghdr *cm, int level, int type,
                       const void *data, size_t len) {
  cm->cmsg_level = level;
  cm->cmsg_type = type;
  cm->cmsg_len = CMSG_LEN(len);
  memcpy(CMSG_DATA(cm), data, len);
  return CMSG_SPACE(len);
}

/* put_pktinfo adds to |cm| the source address |local| to answer from, for a
 * socket bound to a wildcard address; returns the space taken, 0 if none. */
static size_t put_pktinfo(struct cmsghdr *cm, const prd_sockaddr *local,
                          const prd_sockaddr *remote) {
  if (local->u.sa.sa_family == AF_INET && remote->u.sa.sa_family == AF_INET) {
    struct in_pktinfo pi;
    memset(&pi, 0, sizeof(pi));
    pi.ipi_spec_dst = local->u.in.sin_addr;
    return put_cmsg(cm, IPPROTO_IP, IP_PKTINFO, &pi, sizeof(pi));
  }
  if (local->u.sa.sa_family == AF_INET6) {
    struct in6_pktinfo pi;
    memset(&pi, 0, sizeof(pi));
    pi.ipi6_addr = local->u.in6.sin6_addr;
    return put_cmsg(cm, IPPROTO_IPV6, IPV6_PKTINFO, &pi, sizeof(pi));
  }
  return 0;
}

/* send_split sends a GSO batch as single datagrams (a device without GSO). */
static ssize_t send_split(prd_udp *u, const prd_sockaddr *local,
                          const prd_sockaddr *remote, const uint8_t *data,
                          size_t len, size_t segsize) {
  size_t off = 0;
  while (off < len) {
    size_t m = len - off < segsize ? len - off : segsize;
    ssize_t r = prd_udp_send(u, local, remote, data + off, m, m);
    if (r < 0) {
      return off ? (ssize_t)off : r;
    }
    off += m;
  }
  return (ssize_t)len;
}

ssize_t prd_udp_send(prd_udp *u, const prd_sockaddr *local,
                     const prd_sockaddr *remote, const uint8_t *data,
                     size_t len, size_t segsize) {
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

  memset(&msg, 0, sizeof(msg));
  memset(&cmsg, 0, sizeof(cmsg));
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  if (!u->connected) {
    msg.msg_name = (void *)(uintptr_t)&remote->u.sa;
    msg.msg_namelen = remote->len;
  }
  msg.msg_control = cmsg.buf;
  msg.msg_controllen = sizeof(cmsg.buf);
  cm = CMSG_FIRSTHDR(&msg);
  if (len > segsize) {
    uint16_t seg = (uint16_t)segsize;
    controllen += put_cmsg(cm, SOL_UDP, UDP_SEGMENT, &seg, sizeof(seg));
    cm = CMSG_NXTHDR(&msg, cm);
  }
  if (u->local_is_wildcard && local) {
    /* Answer from the address the peer talked to. */
    controllen += put_pktinfo(cm, local, remote);
  }
  msg.msg_controllen = controllen;
  if (controllen == 0) {
    msg.msg_control = NULL;
  }
  do {
    n = sendmsg(u->fd, &msg, 0);
  } while (n < 0 && errno == EINTR);
  if (n >= 0) {
    return (ssize_t)len;
  }
  if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) {
    return -EAGAIN;
  }
  if (errno == EIO && len > segsize) {
    /* GSO unsupported by the device: fall back to single datagrams. */
    return send_split(u, local, remote, data, len, segsize);
  }
  PRD_LOG_DEBUG("sendmsg of %zu bytes (segments of %zu): %s", len, segsize,
                strerror(errno));
  return -errno;
}

/* ---- blocked queue ---------------------------------------------------- */

void prd_udp_block(prd_udp *u, prd_udp_waiter *w) {
  if (!w->queued) {
    w->queued = 1;
    w->next = u->blocked;
    u->blocked = w;
  }
}

void prd_udp_unblock(prd_udp *u, prd_udp_waiter *w) {
  prd_udp_waiter **pp = &u->blocked;
  if (!w->queued) {
    return;
  }
  while (*pp && *pp != w) {
    pp = &(*pp)->next;
  }
  if (*pp) {
    *pp = w->next;
  }
  w->queued = 0;
  w->next = NULL;
}

void prd_udp_take_blocked(prd_udp *u, prd_udp_waiter **plist) {
  *plist = u->blocked;
  u->blocked = NULL;
}

prd_udp_waiter *prd_udp_next_waiter(prd_udp_waiter **plist) {
  prd_udp_waiter *w = *plist;
  if (w) {
    *plist = w->next;
    w->queued = 0;
    w->next = NULL;
  }
  return w;
}

/* ---- receive ---------------------------------------------------------- */

/* rx_cmsg holds one datagram's ancillary data: its destination address
 * (IP_PKTINFO / IPV6_PKTINFO) and its GRO segment size. */
typedef struct {
  _Alignas(struct cmsghdr) char buf[CMSG_SPACE(sizeof(struct in6_pktinfo)) +
                                    CMSG_SPACE(sizeof(int)) +
                                    CMSG_SPACE(sizeof(int))];
} rx_cmsg;

/* rx_meta reads |msg|'s destination address into |local| (which holds the
 * socket's) and returns its GRO segment size, 0 if none. */
static size_t rx_meta(struct msghdr *msg, prd_sockaddr *local) {
  struct cmsghdr *cm;
  size_t gso = 0;
  for (cm = CMSG_FIRSTHDR(msg); cm; cm = CMSG_NXTHDR(msg, cm)) {
    if (cm->cmsg_level == IPPROTO_IP && cm->cmsg_type == IP_PKTINFO &&
        local->u.sa.sa_family == AF_INET) {
      struct in_pktinfo pi;
      memcpy(&pi, CMSG_DATA(cm), sizeof(pi));
      local->u.in.sin_addr = pi.ipi_addr;
    } else if (cm->cmsg_level == IPPROTO_IPV6 &&
               cm->cmsg_type == IPV6_PKTINFO &&
               local->u.sa.sa_family == AF_INET6) {
      struct in6_pktinfo pi;
      memcpy(&pi, CMSG_DATA(cm), sizeof(pi));
      local->u.in6.sin6_addr = pi.ipi6_addr;
    } else if (cm->cmsg_level == SOL_UDP && cm->cmsg_type == UDP_GRO) {
      int seg;
      memcpy(&seg, CMSG_DATA(cm), sizeof(seg));
      gso = seg > 0 ? (size_t)seg : 0;
    }
  }
  return gso;
}

/* rx_one hands on the |n| bytes received with |msg|: one datagram, or a GRO
 * train of equal-sized datagrams (the last may be shorter). */
static void rx_one(prd_udp *u, struct msghdr *msg, const uint8_t *buf, size_t n,
                   prd_sockaddr *remote, prd_udp_rx_fn rx, void *arg) {
  prd_sockaddr local = u->local;
  size_t gso, off;

  if (msg->msg_flags & MSG_TRUNC) {
    return;
  }
  remote->len = msg->msg_namelen;
  gso = rx_meta(msg, &local);
  if (gso == 0) {
    gso = n;
  }
  for (off = 0; off < n; off += gso) {
    size_t len = n - off < gso ? n - off : gso;
    rx(arg, &local, remote, buf + off, len, 0);
  }
}

/* A short batch means the queue is empty: no extra call just to see
 * EAGAIN. */
void prd_udp_read(prd_udp *u, int budget, prd_udp_rx_fn rx,
                  prd_udp_refused_fn refused, void *arg) {
  struct mmsghdr mm[PRD_RX_BATCH];
  struct iovec iov[PRD_RX_BATCH];
  prd_sockaddr remote[PRD_RX_BATCH];
  rx_cmsg cmsg[PRD_RX_BATCH];

  while (budget > 0) {
    unsigned want = budget < PRD_RX_BATCH ? (unsigned)budget : PRD_RX_BATCH;
    int n;

    for (unsigned i = 0; i < want; ++i) {
      struct msghdr *msg = &mm[i].msg_hdr;
      iov[i].iov_base = u->rxbuf[i];
      iov[i].iov_len = sizeof(u->rxbuf[i]);
      memset(msg, 0, sizeof(*msg));
      msg->msg_name = &remote[i].u.ss;
      msg->msg_namelen = sizeof(remote[i].u.ss);
      msg->msg_iov = &iov[i];
      msg->msg_iovlen = 1;
      msg->msg_control = cmsg[i].buf;
      msg->msg_controllen = sizeof(cmsg[i].buf);
      mm[i].msg_len = 0;
    }
    n = recvmmsg(u->fd, mm, want, 0, NULL);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      /* EAGAIN: done. ECONNREFUSED on a connected socket is an ICMP echo of
       * a peer that went away: not fatal. */
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        break;
      }
      if (errno == ECONNREFUSED && u->connected && refused(arg)) {
        break;
      }
      --budget; /* another error: skip that datagram */
      continue;
    }
    for (int i = 0; i < n; ++i) {
      rx_one(u, &mm[i].msg_hdr, u->rxbuf[i], mm[i].msg_len, &remote[i], rx,
             arg);
    }
    budget -= n;
    if ((unsigned)n < want) {
      break;
    }
  }
}
