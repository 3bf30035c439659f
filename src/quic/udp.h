/* SPDX-License-Identifier: GPL-3.0-only */
/* An endpoint's UDP socket: setup, GSO sends, recvmmsg with GRO, and the
 * queue of senders waiting for the socket to take more. No QUIC state. */
#ifndef PRD_QUIC_UDP_H
#define PRD_QUIC_UDP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "quic.h"

/* Receive: up to PRD_RX_BATCH datagrams (each a GRO train of up to 64 KiB)
 * per recvmmsg call. */
#define PRD_RX_BATCH 8
#define PRD_RXBUF_SIZE (65536 + 512)

/* prd_udp_waiter: a sender's place in the blocked queue, embedded in the
 * sender. */
typedef struct prd_udp_waiter {
  struct prd_udp_waiter *next;
  int queued;
} prd_udp_waiter;

typedef struct prd_udp {
  int fd;
  int connected;         /* client: connect()ed, sends name no address */
  int local_is_wildcard; /* bound to 0.0.0.0 or ::, answers set the source */
  prd_sockaddr local;
  prd_udp_waiter *blocked; /* waiting for the socket to be writable */
  /* Untouched pages of this array cost no RSS: an idle socket uses the first
   * buffer only. */
  uint8_t rxbuf[PRD_RX_BATCH][PRD_RXBUF_SIZE];
} prd_udp;

/* prd_udp_rx_fn takes one datagram: |local| is the address it was sent to,
 * |ecn| its ECN bits (0: not read). */
typedef void (*prd_udp_rx_fn)(void *arg, const prd_sockaddr *local,
                              const prd_sockaddr *remote, const uint8_t *pkt,
                              size_t len, uint8_t ecn);
/* prd_udp_refused_fn: a connected socket got ECONNREFUSED (an ICMP echo of a
 * peer that went away). Returns 1 to stop reading, 0 to go on. */
typedef int (*prd_udp_refused_fn)(void *arg);

/* prd_udp_open_server makes a socket bound to |local| (no SO_REUSEADDR; "::"
 * takes IPv4-mapped peers too). Returns 0 or a negative errno. */
int prd_udp_open_server(prd_udp *u, const prd_sockaddr *local);
/* prd_udp_open_client makes a socket bound to |local| (if not NULL) and
 * connected to |remote|. Returns 0 or a negative errno. */
int prd_udp_open_client(prd_udp *u, const prd_sockaddr *local,
                        const prd_sockaddr *remote);
/* prd_udp_close closes the socket; |u| may be zeroed or closed already. */
void prd_udp_close(prd_udp *u);

/* prd_udp_send sends |len| bytes of datagrams of |segsize| each (the last may
 * be shorter) from |local| (NULL: the socket's address) to |remote|. Returns
 * bytes sent, or -EAGAIN with nothing sent, or another negative errno
 * (datagrams dropped). */
ssize_t prd_udp_send(prd_udp *u, const prd_sockaddr *local,
                     const prd_sockaddr *remote, const uint8_t *data,
                     size_t len, size_t segsize);

/* prd_udp_read reads up to |budget| datagrams or GRO trains and hands each
 * datagram to |rx|; |refused| decides on ECONNREFUSED. */
void prd_udp_read(prd_udp *u, int budget, prd_udp_rx_fn rx,
                  prd_udp_refused_fn refused, void *arg);

/* prd_udp_block queues |w| (once) until the socket is writable. */
void prd_udp_block(prd_udp *u, prd_udp_waiter *w);
/* prd_udp_unblock takes |w| out of the queue if it is in it. */
void prd_udp_unblock(prd_udp *u, prd_udp_waiter *w);
/* prd_udp_take_blocked empties the queue into |*plist|; prd_udp_next_waiter
 * then takes its waiters one by one (NULL at the end). Waiters that block
 * again meanwhile join the socket's new queue. */
void prd_udp_take_blocked(prd_udp *u, prd_udp_waiter **plist);
prd_udp_waiter *prd_udp_next_waiter(prd_udp_waiter **plist);

#endif
