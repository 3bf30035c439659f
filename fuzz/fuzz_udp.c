/* SPDX-License-Identifier: GPL-3.0-only */
/* libFuzzer harness for the UDP service messages carried in DATAGRAM frames
 * (spec/10-udp.md §3): decode, and for a valid message the encode -> decode
 * round trip of its header, the payload left in place. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "codec/codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  prd_udp_dgram d, again;
  uint8_t out[256];
  prd_ssize n;
  size_t hdrlen;

  if (prd_udp_dgram_decode(&d, data, size) != 0) {
    return 0;
  }
  if (d.payloadlen > size ||
      (d.payloadlen && d.payload + d.payloadlen != data + size)) {
    abort(); /* the payload is the rest of the input */
  }
  hdrlen = size - d.payloadlen;
  n = prd_udp_dgram_encode_hdr(out, sizeof(out), &d);
  if (n < 0 || (size_t)n > hdrlen) {
    abort(); /* what decodes encodes, minimally: never longer */
  }
  if (prd_udp_dgram_decode(&again, out, (size_t)n) != 0 ||
      again.type != d.type || again.flow_id != d.flow_id ||
      again.port_offset != d.port_offset || again.servicelen != d.servicelen ||
      memcmp(again.service, d.service, sizeof(d.service)) != 0 ||
      memcmp(&again.source, &d.source, sizeof(d.source)) != 0 ||
      again.payloadlen != 0) {
    abort();
  }
  /* Minimal varints only are accepted, so the header is byte for byte the
   * same. */
  if ((size_t)n != hdrlen || memcmp(out, data, hdrlen) != 0) {
    abort();
  }
  return 0;
}
