/* SPDX-License-Identifier: GPL-3.0-only */
/* QUIC varints with minimal encoding only (spec/02-framing.md §2). */
#include "codec.h"

/* prd_varint_len returns the length of the minimal encoding of |v| (1, 2, 4
 * or 8), or 0 when |v| > PRD_VARINT_MAX and so has no encoding. */
size_t prd_varint_len(uint64_t v) {
  if (v < 0x40) {
    return 1;
  }
  if (v < 0x4000) {
    return 2;
  }
  if (v < 0x40000000) {
    return 4;
  }
  if (v <= PRD_VARINT_MAX) {
    return 8;
  }
  return 0;
}

prd_ssize prd_varint_decode(uint64_t *pv, const uint8_t *data, size_t datalen) {
  size_t n;
  size_t i;
  uint64_t v;

  if (datalen == 0) {
    return PRD_ERR_NEED_MORE;
  }
  /* The two high bits of the first byte give the length, RFC 9000 §16. */
  n = (size_t)1 << (data[0] >> 6);
  if (datalen < n) {
    return PRD_ERR_NEED_MORE;
  }
  v = data[0] & 0x3f;
  for (i = 1; i < n; ++i) {
    v = (v << 8) | data[i];
  }
  /* spec/02-framing.md §2: only the shortest encoding is accepted. */
  if (prd_varint_len(v) != n) {
    return PRD_ERR_VARINT_NONMINIMAL;
  }
  *pv = v;
  return (prd_ssize)n;
}

prd_ssize prd_varint_encode(uint8_t *dest, size_t destlen, uint64_t v) {
  size_t n = prd_varint_len(v);
  size_t i;
  uint8_t prefix;

  if (n == 0) {
    return PRD_ERR_INVAL;
  }
  if (destlen < n) {
    return PRD_ERR_NOBUF;
  }
  switch (n) {
  case 1:
    prefix = 0x00;
    break;
  case 2:
    prefix = 0x40;
    break;
  case 4:
    prefix = 0x80;
    break;
  default:
    prefix = 0xc0;
    break;
  }
  for (i = n; i > 0; --i) {
    dest[i - 1] = (uint8_t)(v & 0xff);
    v >>= 8;
  }
  dest[0] = (uint8_t)(dest[0] | prefix);
  return (prd_ssize)n;
}
