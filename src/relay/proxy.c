/* SPDX-License-Identifier: GPL-3.0-only */
/* PROXY protocol v1 (text) and v2 (binary) encoder. */
#include "proxy.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

static const uint8_t v2_sig[12] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d,
                                   0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};

static size_t encode_v1(uint8_t *dest, size_t destlen,
                        const prd_stream_header *hd) {
  char src[INET6_ADDRSTRLEN], dst[INET6_ADDRSTRLEN];
  int af, n;
  if (!hd->has_src || !hd->has_dst || hd->src.family != hd->dst.family) {
    n = snprintf((char *)dest, destlen, "PROXY UNKNOWN\r\n");
    return n > 0 && (size_t)n < destlen ? (size_t)n : 0;
  }
  af = hd->src.family == 4 ? AF_INET : AF_INET6;
  inet_ntop(af, hd->src.addr, src, sizeof(src));
  inet_ntop(af, hd->dst.addr, dst, sizeof(dst));
  n = snprintf((char *)dest, destlen, "PROXY %s %s %s %u %u\r\n",
               af == AF_INET ? "TCP4" : "TCP6", src, dst, hd->src.port,
               hd->dst.port);
  return n > 0 && (size_t)n < destlen ? (size_t)n : 0;
}

static size_t encode_v2(uint8_t *dest, size_t destlen,
                        const prd_stream_header *hd) {
  size_t alen, n = 16;
  if (destlen < 16 + 36) {
    return 0;
  }
  memcpy(dest, v2_sig, sizeof(v2_sig));
  if (!hd->has_src || !hd->has_dst || hd->src.family != hd->dst.family) {
    dest[12] = 0x20; /* version 2, LOCAL */
    dest[13] = 0x00; /* UNSPEC */
    dest[14] = 0;
    dest[15] = 0;
    return 16;
  }
  dest[12] = 0x21; /* version 2, PROXY */
  if (hd->src.family == 4) {
    dest[13] = 0x11; /* AF_INET, STREAM */
    alen = 4;
  } else {
    dest[13] = 0x21; /* AF_INET6, STREAM */
    alen = 16;
  }
  memcpy(dest + n, hd->src.addr, alen);
  n += alen;
  memcpy(dest + n, hd->dst.addr, alen);
  n += alen;
  dest[n++] = (uint8_t)(hd->src.port >> 8);
  dest[n++] = (uint8_t)hd->src.port;
  dest[n++] = (uint8_t)(hd->dst.port >> 8);
  dest[n++] = (uint8_t)hd->dst.port;
  dest[14] = (uint8_t)((n - 16) >> 8);
  dest[15] = (uint8_t)(n - 16);
  return n;
}

size_t prd_proxy_encode(uint8_t *dest, size_t destlen, int version,
                        const prd_stream_header *hd) {
  if (version == 1) {
    return encode_v1(dest, destlen, hd);
  }
  if (version == 2) {
    return encode_v2(dest, destlen, hd);
  }
  return 0;
}
