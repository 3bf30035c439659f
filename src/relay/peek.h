/* SPDX-License-Identifier: GPL-3.0-only */
/* Routing on one shared port (README "Services", sni= and host=): the name a
 * user asks for, read from the first bytes it sends, which are then relayed
 * unchanged. Pure: bytes in, a name out; no sockets, no allocation. */
#ifndef PRD_RELAY_PEEK_H
#define PRD_RELAY_PEEK_H

#include <stddef.h>
#include <stdint.h>

/* The most a user's first bytes are read for a name; beyond, no name. */
#define PRD_PEEK_MAX 16384
/* The longest name returned (a DNS name: 253), plus the NUL. */
#define PRD_PEEK_NAME_MAX 256

typedef enum prd_peek_result {
  PRD_PEEK_MORE = 0,  /* too few bytes to tell yet */
  PRD_PEEK_FOUND = 1, /* the name is in |name| */
  PRD_PEEK_NONE = 2   /* not this protocol, malformed, or no name */
} prd_peek_result;

/* prd_peek_sni reads a TLS ClientHello (RFC 8446 §4.1.2, in one or more
 * handshake records) from |data| and returns its server_name (RFC 6066 §3,
 * host_name), lower-cased, in |name| (PRD_PEEK_NAME_MAX bytes). */
prd_peek_result prd_peek_sni(const uint8_t *data, size_t len, char *name);

/* prd_peek_http_host reads an HTTP/1.x request head (RFC 9112) from |data|
 * and returns its host, lower-cased and without the port: the authority of
 * an absolute-form target, else the one Host header. */
prd_peek_result prd_peek_http_host(const uint8_t *data, size_t len, char *name);

#endif
