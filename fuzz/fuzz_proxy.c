/* SPDX-License-Identifier: GPL-3.0-only */
/* libFuzzer harness for the PROXY protocol encoder (src/relay/proxy.c): every
 * header it writes is parsed back by an independent parser here and must
 * describe exactly the addresses it was given (HAProxy "The PROXY protocol",
 * versions 1 and 2; spec/02-framing.md §6.6). */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "relay/proxy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Input layout:
 *   [0] bits 0-1: version (0 -> 1, 1 -> 2, 2 -> 0, 3 -> 3)
 *   [1] bit 0: has_src, bit 1: has_dst, bit 2: src is IPv6, bit 3: dst is
 *       IPv6, bit 4: a short destination buffer (length from [2])
 *   [2] the short buffer's length
 *   [3..18] source address, [19..20] source port,
 *   [21..36] destination address, [37..38] destination port
 * Missing bytes read as zero. */
#define IN_LEN 39

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "fuzz_proxy: invariant failed: %s\n", #cond);            \
      abort();                                                                 \
    }                                                                          \
  } while (0)

static const uint8_t v2_sig[12] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d,
                                   0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};

/* parse_port reads a decimal port without leading zeros; returns the number
 * of characters used, or 0. */
static size_t parse_port(const char *s, size_t n, unsigned *port) {
  size_t i = 0;
  unsigned v = 0;
  while (i < n && s[i] >= '0' && s[i] <= '9') {
    v = v * 10 + (unsigned)(s[i] - '0');
    if (v > 65535) {
      return 0;
    }
    ++i;
  }
  if (i == 0 || (i > 1 && s[0] == '0')) {
    return 0;
  }
  *port = v;
  return i;
}

/* parse_ipv4 reads a dotted quad (no leading zeros) into |out|; returns the
 * number of characters used, or 0. */
static size_t parse_ipv4(const char *s, size_t n, uint8_t out[4]) {
  size_t i = 0;
  for (int part = 0; part < 4; ++part) {
    size_t start = i;
    unsigned v = 0;
    if (part > 0) {
      if (i >= n || s[i] != '.') {
        return 0;
      }
      start = ++i;
    }
    while (i < n && s[i] >= '0' && s[i] <= '9' && i - start < 3) {
      v = v * 10 + (unsigned)(s[i] - '0');
      ++i;
    }
    if (i == start || v > 255 || (i - start > 1 && s[start] == '0')) {
      return 0;
    }
    out[part] = (uint8_t)v;
  }
  return i;
}

/* parse_ipv6 reads an IPv6 address up to the next space. */
static size_t parse_ipv6(const char *s, size_t n, uint8_t out[16]) {
  char buf[64];
  size_t i = 0;
  while (i < n && s[i] != ' ' && s[i] != '\r') {
    ++i;
  }
  if (i == 0 || i >= sizeof(buf)) {
    return 0;
  }
  memcpy(buf, s, i);
  buf[i] = '\0';
  if (strspn(buf, "0123456789abcdef:.") != i) {
    return 0; /* lower-case hex only (RFC 5952 form) */
  }
  if (inet_pton(AF_INET6, buf, out) != 1) {
    return 0;
  }
  return i;
}

static int expect(const char **p, const char *end, const char *lit) {
  size_t n = strlen(lit);
  if ((size_t)(end - *p) < n || memcmp(*p, lit, n) != 0) {
    return 0;
  }
  *p += n;
  return 1;
}

static int known(const prd_stream_header *hd) {
  return hd->has_src && hd->has_dst && hd->src.family == hd->dst.family;
}

/* check_v1 parses a version 1 line and compares it with |hd|. */
static void check_v1(const uint8_t *out, size_t len,
                     const prd_stream_header *hd) {
  const char *p = (const char *)out, *end = p + len;
  uint8_t a[16];
  unsigned port;
  size_t n, alen;

  /* HAProxy's limit for a v1 line, CR LF included. */
  CHECK(len >= 15 && len <= 107);
  CHECK(out[len - 2] == '\r' && out[len - 1] == '\n');
  for (size_t i = 0; i + 2 < len; ++i) {
    CHECK(out[i] >= 0x20 && out[i] < 0x7f);
  }
  if (!known(hd)) {
    CHECK(len == 15 && memcmp(out, "PROXY UNKNOWN\r\n", 15) == 0);
    return;
  }
  CHECK(expect(&p, end, "PROXY "));
  alen = hd->src.family == 4 ? 4 : 16;
  CHECK(expect(&p, end, alen == 4 ? "TCP4 " : "TCP6 "));
  n = alen == 4 ? parse_ipv4(p, (size_t)(end - p), a)
                : parse_ipv6(p, (size_t)(end - p), a);
  CHECK(n > 0 && memcmp(a, hd->src.addr, alen) == 0);
  p += n;
  CHECK(expect(&p, end, " "));
  n = alen == 4 ? parse_ipv4(p, (size_t)(end - p), a)
                : parse_ipv6(p, (size_t)(end - p), a);
  CHECK(n > 0 && memcmp(a, hd->dst.addr, alen) == 0);
  p += n;
  CHECK(expect(&p, end, " "));
  n = parse_port(p, (size_t)(end - p), &port);
  CHECK(n > 0 && port == hd->src.port);
  p += n;
  CHECK(expect(&p, end, " "));
  n = parse_port(p, (size_t)(end - p), &port);
  CHECK(n > 0 && port == hd->dst.port);
  p += n;
  CHECK(expect(&p, end, "\r\n") && p == end);
}

/* check_v2 parses a version 2 header and compares it with |hd|. */
static void check_v2(const uint8_t *out, size_t len,
                     const prd_stream_header *hd) {
  size_t alen, n;
  CHECK(len >= 16);
  CHECK(memcmp(out, v2_sig, sizeof(v2_sig)) == 0);
  n = (size_t)out[14] << 8 | out[15];
  CHECK(len == 16 + n);
  if (!known(hd)) {
    CHECK(out[12] == 0x20 && out[13] == 0x00 && n == 0); /* LOCAL, UNSPEC */
    return;
  }
  CHECK(out[12] == 0x21); /* version 2, PROXY */
  alen = hd->src.family == 4 ? 4 : 16;
  CHECK(out[13] == (alen == 4 ? 0x11 : 0x21)); /* INET/INET6, STREAM */
  CHECK(n == 2 * alen + 4);
  CHECK(memcmp(out + 16, hd->src.addr, alen) == 0);
  CHECK(memcmp(out + 16 + alen, hd->dst.addr, alen) == 0);
  CHECK(((unsigned)out[16 + 2 * alen] << 8 | out[17 + 2 * alen]) ==
        hd->src.port);
  CHECK(((unsigned)out[18 + 2 * alen] << 8 | out[19 + 2 * alen]) ==
        hd->dst.port);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const int versions[4] = {1, 2, 0, 3};
  uint8_t in[IN_LEN];
  uint8_t full[PRD_PROXY_MAX];
  prd_stream_header hd;
  size_t n, m, destlen;
  int version;
  uint8_t *small;

  memset(in, 0, sizeof(in));
  memcpy(in, data, size < sizeof(in) ? size : sizeof(in));
  version = versions[in[0] & 3];
  memset(&hd, 0, sizeof(hd));
  hd.version = 1;
  hd.has_src = (in[1] & 0x01) != 0;
  hd.has_dst = (in[1] & 0x02) != 0;
  hd.src.family = (in[1] & 0x04) ? 6 : 4;
  hd.dst.family = (in[1] & 0x08) ? 6 : 4;
  memcpy(hd.src.addr, in + 3, 16);
  hd.src.port = (uint16_t)(in[19] << 8 | in[20]);
  memcpy(hd.dst.addr, in + 21, 16);
  hd.dst.port = (uint16_t)(in[37] << 8 | in[38]);
  if (hd.src.family == 4) {
    memset(hd.src.addr + 4, 0, 12);
  }
  if (hd.dst.family == 4) {
    memset(hd.dst.addr + 4, 0, 12);
  }

  /* A buffer of PRD_PROXY_MAX always suffices for the known versions. */
  memset(full, 0xa5, sizeof(full));
  n = prd_proxy_encode(full, sizeof(full), version, &hd);
  if (version != 1 && version != 2) {
    CHECK(n == 0);
    return 0;
  }
  CHECK(n > 0 && n <= sizeof(full));
  if (version == 1) {
    check_v1(full, n, &hd);
  } else {
    check_v2(full, n, &hd);
  }

  /* A shorter buffer (exactly that long, so that ASan sees any write past
   * it): either the same header or nothing. */
  destlen = (in[1] & 0x10) ? in[2] : n;
  small = malloc(destlen ? destlen : 1);
  CHECK(small != NULL);
  m = prd_proxy_encode(small, destlen, version, &hd);
  CHECK(m == 0 || (m == n && memcmp(small, full, n) == 0));
  if (destlen > n && version == 1) {
    CHECK(m == n); /* room for the line and snprintf's terminator */
  }
  if (destlen >= PRD_PROXY_MAX) {
    CHECK(m == n);
  }
  free(small);
  return 0;
}
