/* SPDX-License-Identifier: GPL-3.0-only */
/* libFuzzer harness for the data-stream header: decode, and for a valid
 * header the encode -> decode round trip (spec/02-framing.md §4, with
 * SERVICE and PORT_OFFSET of §4.4). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "codec/codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int addr_equal(const prd_addr *a, const prd_addr *b) {
  size_t n = a->family == 4 ? 4 : 16;

  return a->family == b->family && a->port == b->port &&
         memcmp(a->addr, b->addr, n) == 0;
}

static int header_equal(const prd_stream_header *a,
                        const prd_stream_header *b) {
  return a->version == b->version && !a->has_src == !b->has_src &&
         !a->has_dst == !b->has_dst &&
         (!a->has_src || addr_equal(&a->src, &b->src)) &&
         (!a->has_dst || addr_equal(&a->dst, &b->dst)) &&
         !a->has_service == !b->has_service &&
         (!a->has_service ||
          (a->servicelen == b->servicelen &&
           a->servicelen <= PRD_SERVICE_NAME_MAX &&
           memcmp(a->service, b->service, a->servicelen + 1) == 0)) &&
         !a->has_port_offset == !b->has_port_offset &&
         (!a->has_port_offset || a->port_offset == b->port_offset);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  prd_stream_header hd;
  prd_stream_header again;
  uint8_t out[PRD_STREAM_HEADER_MAX];
  prd_ssize n;
  prd_ssize m;
  prd_ssize k;
  size_t len;

  n = prd_stream_header_decode(&hd, data, size);
  if (n == 0 || n > (prd_ssize)size || n > PRD_STREAM_HEADER_MAX) {
    abort();
  }
  /* Decoding is a function of the prefix: the shortest prefix that does not
   * need more bytes gives the same answer as the whole input. */
  k = PRD_ERR_NEED_MORE;
  for (len = 0; len <= size && k == PRD_ERR_NEED_MORE; ++len) {
    k = prd_stream_header_decode(&again, data, len);
  }
  if (k != n || (n > 0 && (size_t)n != len - 1)) {
    abort();
  }
  if (n < 0) {
    return 0;
  }
  if (hd.version != PRD_PROTOCOL_VERSION || !hd.has_src ||
      (hd.src.family != 4 && hd.src.family != 6) ||
      (hd.has_dst && hd.dst.family != 4 && hd.dst.family != 6)) {
    abort();
  }
  /* spec/02-framing.md §4.4: SERVICE is a valid name, PORT_OFFSET in
   * range. */
  if ((hd.has_service && (!prd_service_name_valid(hd.service, hd.servicelen) ||
                          hd.service[hd.servicelen] != '\0')) ||
      (hd.has_port_offset && hd.port_offset > PRD_PORT_OFFSET_MAX)) {
    abort();
  }
  /* Valid: the canonical encoding is no longer than the input and decodes
   * to the same header; re-encoding that is a fixed point. */
  m = prd_stream_header_encode(out, sizeof(out), &hd);
  if (m <= 0 || m > n) {
    abort();
  }
  if (prd_stream_header_decode(&again, out, (size_t)m) != m ||
      !header_equal(&hd, &again)) {
    abort();
  }
  if (prd_stream_header_encode(out, (size_t)m - 1, &hd) != PRD_ERR_NOBUF) {
    abort();
  }
  return 0;
}
