/* SPDX-License-Identifier: GPL-3.0-only */
/* Data-stream header: encode and decode (spec/02-framing.md §4, §5). */
#include <string.h>

#include "codec.h"
#include "codec_int.h"

#define PRD_ADDR4_FIELD_LEN 7  /* Family (8) + 32-bit address + Port (16) */
#define PRD_ADDR6_FIELD_LEN 19 /* Family (8) + 128-bit address + Port (16) */

/* addr_field_len returns the Field Length of an address of |family|, or 0
 * for a family that spec/02-framing.md §4.1 does not define. */
static size_t addr_field_len(uint8_t family) {
  switch (family) {
  case 4:
    return PRD_ADDR4_FIELD_LEN;
  case 6:
    return PRD_ADDR6_FIELD_LEN;
  default:
    return 0;
  }
}

/* decode_addr parses an Address field value. Returns 0 or
 * PRD_ERR_HEADER_ENCODING. spec/02-framing.md §4.1 */
static int decode_addr(prd_addr *addr, const uint8_t *data, size_t datalen) {
  size_t alen;

  if (datalen == 0) {
    return PRD_ERR_HEADER_ENCODING;
  }
  alen = addr_field_len(data[0]);
  if (alen == 0 || alen != datalen) {
    return PRD_ERR_HEADER_ENCODING;
  }
  memset(addr, 0, sizeof(*addr));
  addr->family = data[0];
  alen -= 3; /* family byte and port */
  memcpy(addr->addr, data + 1, alen);
  addr->port = (uint16_t)((data[1 + alen] << 8) | data[2 + alen]);
  return 0;
}

/* field_varint reads a varint inside Fields: running out of Fields is a
 * malformed header, not a truncated one. */
static int field_varint(prd_rd *rd, uint64_t *pv) {
  int rv = prd_rd_varint(rd, pv);

  if (rv == PRD_ERR_NEED_MORE) {
    return PRD_ERR_HEADER_ENCODING;
  }
  return rv;
}

/* decode_service parses a SERVICE value (spec/02-framing.md §4.4): a
 * service name of §3.7, the whole Field Value. */
static int decode_service(prd_stream_header *hd, const uint8_t *data,
                          size_t datalen) {
  if (!prd_service_name_valid((const char *)data, datalen)) {
    return PRD_ERR_HEADER_ENCODING;
  }
  memcpy(hd->service, data, datalen);
  hd->service[datalen] = '\0';
  hd->servicelen = datalen;
  return 0;
}

/* decode_port_offset parses a PORT_OFFSET value (spec/02-framing.md §4.4):
 * exactly one minimal varint, at most PRD_PORT_OFFSET_MAX. */
static int decode_port_offset(prd_stream_header *hd, const uint8_t *data,
                              size_t datalen) {
  prd_rd rd;
  uint64_t v;
  int rv;

  prd_rd_init(&rd, data, datalen);
  rv = field_varint(&rd, &v);
  if (rv != 0) {
    return rv;
  }
  if (prd_rd_left(&rd) != 0 || v > PRD_PORT_OFFSET_MAX) {
    return PRD_ERR_HEADER_ENCODING;
  }
  hd->port_offset = (uint16_t)v;
  return 0;
}

/* decode_fields parses the complete Fields of a header into |hd|. Returns
 * 0, PRD_ERR_HEADER_ENCODING or PRD_ERR_VARINT_NONMINIMAL. */
static int decode_fields(prd_stream_header *hd, const uint8_t *data,
                         size_t datalen) {
  prd_rd rd;
  uint64_t ftype;
  uint64_t flen;
  int rv;

  prd_rd_init(&rd, data, datalen);
  while (prd_rd_left(&rd) > 0) {
    rv = field_varint(&rd, &ftype);
    if (rv != 0) {
      return rv;
    }
    rv = field_varint(&rd, &flen);
    if (rv != 0) {
      return rv;
    }
    if (flen > prd_rd_left(&rd)) {
      return PRD_ERR_HEADER_ENCODING;
    }
    switch (ftype) {
    case PRD_HDR_FIELD_SOURCE:
      /* spec/02-framing.md §4: a known field may appear only once. */
      if (hd->has_src) {
        return PRD_ERR_HEADER_ENCODING;
      }
      rv = decode_addr(&hd->src, rd.p, (size_t)flen);
      hd->has_src = 1;
      break;
    case PRD_HDR_FIELD_DESTINATION:
      if (hd->has_dst) {
        return PRD_ERR_HEADER_ENCODING;
      }
      rv = decode_addr(&hd->dst, rd.p, (size_t)flen);
      hd->has_dst = 1;
      break;
    case PRD_HDR_FIELD_SERVICE:
      if (hd->has_service) {
        return PRD_ERR_HEADER_ENCODING;
      }
      rv = decode_service(hd, rd.p, (size_t)flen);
      hd->has_service = 1;
      break;
    case PRD_HDR_FIELD_PORT_OFFSET:
      if (hd->has_port_offset) {
        return PRD_ERR_HEADER_ENCODING;
      }
      rv = decode_port_offset(hd, rd.p, (size_t)flen);
      hd->has_port_offset = 1;
      break;
    default:
      /* spec/02-framing.md §4: unknown field types are skipped. */
      rv = 0;
      break;
    }
    if (rv != 0) {
      return rv;
    }
    rd.p += (size_t)flen;
  }
  /* spec/02-framing.md §4: SOURCE is required. */
  if (!hd->has_src) {
    return PRD_ERR_HEADER_ENCODING;
  }
  return 0;
}

prd_ssize prd_stream_header_decode(prd_stream_header *hd, const uint8_t *data,
                                   size_t datalen) {
  prd_stream_header tmp;
  prd_rd rd;
  uint64_t version;
  uint64_t len;
  size_t hdrlen;
  int rv;

  prd_rd_init(&rd, data, datalen);
  rv = prd_rd_varint(&rd, &version);
  if (rv != 0) {
    return rv;
  }
  /* spec/02-framing.md §4: Version is checked as soon as it is complete. */
  if (version != PRD_PROTOCOL_VERSION) {
    return PRD_ERR_VERSION;
  }
  rv = prd_rd_varint(&rd, &len);
  if (rv != 0) {
    return rv;
  }
  hdrlen = (size_t)(rd.p - data);
  /* spec/02-framing.md §5: the whole header is at most 512 bytes, known as
   * soon as Length is; hdrlen <= 16 < PRD_STREAM_HEADER_MAX. */
  if (len > PRD_STREAM_HEADER_MAX - hdrlen) {
    return PRD_ERR_FRAME_TOO_LARGE;
  }
  if (prd_rd_left(&rd) < len) {
    return PRD_ERR_NEED_MORE;
  }
  memset(&tmp, 0, sizeof(tmp));
  tmp.version = version;
  rv = decode_fields(&tmp, rd.p, (size_t)len);
  if (rv != 0) {
    return rv;
  }
  *hd = tmp;
  return (prd_ssize)(hdrlen + (size_t)len);
}

static void encode_addr(prd_wr *wr, uint64_t ftype, const prd_addr *addr) {
  size_t flen = addr_field_len(addr->family);

  prd_wr_varint(wr, ftype);
  prd_wr_varint(wr, flen);
  prd_wr_u8(wr, addr->family);
  prd_wr_bytes(wr, addr->addr, flen - 3);
  prd_wr_u8(wr, (uint8_t)(addr->port >> 8));
  prd_wr_u8(wr, (uint8_t)(addr->port & 0xff));
}

prd_ssize prd_stream_header_encode(uint8_t *dest, size_t destlen,
                                   const prd_stream_header *hd) {
  prd_wr wr;
  size_t fieldslen = 0;
  size_t total;
  size_t flen;

  /* spec/02-framing.md §4: only version 1 with a SOURCE is valid. */
  if (hd->version != PRD_PROTOCOL_VERSION || !hd->has_src) {
    return PRD_ERR_INVAL;
  }
  flen = addr_field_len(hd->src.family);
  if (flen == 0) {
    return PRD_ERR_INVAL;
  }
  fieldslen +=
      prd_varint_len(PRD_HDR_FIELD_SOURCE) + prd_varint_len(flen) + flen;
  if (hd->has_dst) {
    flen = addr_field_len(hd->dst.family);
    if (flen == 0) {
      return PRD_ERR_INVAL;
    }
    fieldslen +=
        prd_varint_len(PRD_HDR_FIELD_DESTINATION) + prd_varint_len(flen) + flen;
  }
  /* spec/02-framing.md §4.4 */
  if (hd->has_service) {
    if (hd->servicelen > PRD_SERVICE_NAME_MAX ||
        !prd_service_name_valid(hd->service, hd->servicelen)) {
      return PRD_ERR_INVAL;
    }
    fieldslen += prd_varint_len(PRD_HDR_FIELD_SERVICE) +
                 prd_varint_len(hd->servicelen) + hd->servicelen;
  }
  if (hd->has_port_offset) {
    if (hd->port_offset > PRD_PORT_OFFSET_MAX) {
      return PRD_ERR_INVAL;
    }
    flen = prd_varint_len(hd->port_offset);
    fieldslen +=
        prd_varint_len(PRD_HDR_FIELD_PORT_OFFSET) + prd_varint_len(flen) + flen;
  }
  total = prd_varint_len(hd->version) + prd_varint_len(fieldslen) + fieldslen;
  if (destlen < total) {
    return PRD_ERR_NOBUF;
  }
  wr.p = dest;
  wr.end = dest + total;
  prd_wr_varint(&wr, hd->version);
  prd_wr_varint(&wr, fieldslen);
  encode_addr(&wr, PRD_HDR_FIELD_SOURCE, &hd->src);
  if (hd->has_dst) {
    encode_addr(&wr, PRD_HDR_FIELD_DESTINATION, &hd->dst);
  }
  if (hd->has_service) {
    prd_wr_varint(&wr, PRD_HDR_FIELD_SERVICE);
    prd_wr_varint(&wr, hd->servicelen);
    prd_wr_bytes(&wr, (const uint8_t *)hd->service, hd->servicelen);
  }
  if (hd->has_port_offset) {
    prd_wr_varint(&wr, PRD_HDR_FIELD_PORT_OFFSET);
    prd_wr_varint(&wr, prd_varint_len(hd->port_offset));
    prd_wr_varint(&wr, hd->port_offset);
  }
  return (prd_ssize)(wr.p - dest);
}
