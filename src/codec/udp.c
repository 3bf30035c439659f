/* SPDX-License-Identifier: GPL-3.0-only */
/* The UDP service header at the start of each DATAGRAM frame's payload
 * (spec/10-udp.md §3): FLOW_OPEN, FLOW_DATA and FLOW_CLOSE. Pure: bytes to
 * struct and back, nothing allocated; the payload points into the input. */
#include <string.h>

#include "codec.h"
#include "codec_int.h"

/* udp_rd_varint reads a varint that the datagram must hold whole. */
static int udp_rd_varint(prd_rd *rd, uint64_t *pv) {
  int rv = prd_rd_varint(rd, pv);
  return rv == PRD_ERR_NEED_MORE ? PRD_ERR_FRAME_ENCODING : rv;
}

/* udp_rd_addr reads an Address (spec/02-framing.md §4.1), whose length its
 * Family gives. */
static int udp_rd_addr(prd_rd *rd, prd_addr *a) {
  size_t alen;
  uint8_t hi, lo;

  if (prd_rd_left(rd) < 1) {
    return PRD_ERR_FRAME_ENCODING;
  }
  memset(a, 0, sizeof(*a));
  a->family = rd->p[0];
  alen = a->family == 4 ? 4 : a->family == 6 ? 16 : 0;
  if (alen == 0 || prd_rd_left(rd) < 1 + alen + 2) {
    return PRD_ERR_FRAME_ENCODING;
  }
  memcpy(a->addr, rd->p + 1, alen);
  hi = rd->p[1 + alen];
  lo = rd->p[2 + alen];
  a->port = (uint16_t)((hi << 8) | lo);
  rd->p += 1 + alen + 2;
  return 0;
}

int prd_udp_dgram_decode(prd_udp_dgram *d, const uint8_t *data,
                         size_t datalen) {
  prd_rd rd;
  uint64_t v;
  int rv;

  prd_rd_init(&rd, data, datalen);
  memset(d, 0, sizeof(*d));
  rv = udp_rd_varint(&rd, &d->type);
  if (rv != 0) {
    return rv;
  }
  if (d->type != PRD_UDP_FLOW_OPEN && d->type != PRD_UDP_FLOW_DATA &&
      d->type != PRD_UDP_FLOW_CLOSE) {
    return PRD_ERR_FRAME_UNKNOWN;
  }
  rv = udp_rd_varint(&rd, &d->flow_id);
  if (rv != 0) {
    return rv;
  }
  if (d->type == PRD_UDP_FLOW_OPEN) {
    /* Service Length (i), Service, Port Offset (i), Source */
    rv = udp_rd_varint(&rd, &v);
    if (rv != 0) {
      return rv;
    }
    if (v > prd_rd_left(&rd) ||
        !prd_service_name_valid((const char *)rd.p, (size_t)v)) {
      return PRD_ERR_FRAME_ENCODING;
    }
    memcpy(d->service, rd.p, (size_t)v);
    d->service[v] = '\0';
    d->servicelen = (size_t)v;
    rd.p += v;
    rv = udp_rd_varint(&rd, &v);
    if (rv != 0) {
      return rv;
    }
    if (v > PRD_PORT_OFFSET_MAX) {
      return PRD_ERR_FRAME_ENCODING;
    }
    d->port_offset = (uint16_t)v;
    rv = udp_rd_addr(&rd, &d->source);
    if (rv != 0) {
      return rv;
    }
  }
  if (d->type == PRD_UDP_FLOW_CLOSE) {
    /* No payload: anything more is malformed. */
    return prd_rd_left(&rd) == 0 ? 0 : PRD_ERR_FRAME_ENCODING;
  }
  d->payload = rd.p;
  d->payloadlen = prd_rd_left(&rd);
  return 0;
}

prd_ssize prd_udp_dgram_encode_hdr(uint8_t *dest, size_t destlen,
                                   const prd_udp_dgram *d) {
  prd_wr wr;
  size_t need, alen = 0;

  if (d->flow_id > PRD_VARINT_MAX) {
    return PRD_ERR_INVAL;
  }
  need = 1 + prd_varint_len(d->flow_id);
  switch (d->type) {
  case PRD_UDP_FLOW_OPEN:
    alen = d->source.family == 4 ? 4 : d->source.family == 6 ? 16 : 0;
    if (alen == 0 || d->port_offset > PRD_PORT_OFFSET_MAX ||
        !prd_service_name_valid(d->service, d->servicelen)) {
      return PRD_ERR_INVAL;
    }
    need += 1 + d->servicelen + prd_varint_len(d->port_offset) + 1 + alen + 2;
    break;
  case PRD_UDP_FLOW_DATA:
  case PRD_UDP_FLOW_CLOSE:
    break;
  default:
    return PRD_ERR_INVAL;
  }
  if (destlen < need) {
    return PRD_ERR_NOBUF;
  }
  wr.p = dest;
  wr.end = dest + destlen;
  prd_wr_varint(&wr, d->type);
  prd_wr_varint(&wr, d->flow_id);
  if (d->type == PRD_UDP_FLOW_OPEN) {
    prd_wr_varint(&wr, d->servicelen);
    prd_wr_bytes(&wr, (const uint8_t *)d->service, d->servicelen);
    prd_wr_varint(&wr, d->port_offset);
    prd_wr_u8(&wr, d->source.family);
    prd_wr_bytes(&wr, d->source.addr, alen);
    prd_wr_u8(&wr, (uint8_t)(d->source.port >> 8));
    prd_wr_u8(&wr, (uint8_t)d->source.port);
  }
  return (prd_ssize)(wr.p - dest);
}
