/* SPDX-License-Identifier: GPL-3.0-only */
/* Control frames on stream 0: encode, decode, incremental reader
 * (spec/02-framing.md §3, §5). */
#include <string.h>

#include "codec.h"
#include "codec_int.h"

/* A failed reader carries this impossible length until re-initialised. */
#define PRD_READER_FAILED ((size_t)-1)

const char *prd_app_err_name(uint64_t code) {
  /* spec/05-errors.md: the application error code registry. */
  switch (code) {
  case PRD_APP_NO_ERROR:
    return "NO_ERROR";
  case PRD_APP_INTERNAL_ERROR:
    return "INTERNAL_ERROR";
  case PRD_APP_PROTOCOL_ERROR:
    return "PROTOCOL_ERROR";
  case PRD_APP_VERSION_MISMATCH:
    return "VERSION_MISMATCH";
  case PRD_APP_AUTH_FAILED:
    return "AUTH_FAILED";
  case PRD_APP_AUTH_TIMEOUT:
    return "AUTH_TIMEOUT";
  case PRD_APP_SHUTTING_DOWN:
    return "SHUTTING_DOWN";
  case PRD_APP_DESTINATION_UNREACHABLE:
    return "DESTINATION_UNREACHABLE";
  case PRD_APP_DESTINATION_RESET:
    return "DESTINATION_RESET";
  case PRD_APP_USER_RESET:
    return "USER_RESET";
  case PRD_APP_STREAM_REFUSED:
    return "STREAM_REFUSED";
  default:
    return "UNKNOWN";
  }
}

static int frame_type_known(uint64_t type) {
  return type >= PRD_FRAME_HELLO && type <= PRD_FRAME_GOAWAY;
}

/* frame_peek decodes the Type and Length of the frame at the start of
 * |data|, sets |*phdrlen| to the length of these two fields and |*ptotal|
 * to the length of the whole frame. Returns 0,
 * PRD_ERR_NEED_MORE, PRD_ERR_VARINT_NONMINIMAL, PRD_ERR_FRAME_UNKNOWN or
 * PRD_ERR_FRAME_TOO_LARGE, in the order the bytes reveal them. */
static int frame_peek(size_t *phdrlen, size_t *ptotal, uint64_t *ptype,
                      const uint8_t *data, size_t datalen) {
  prd_rd rd;
  uint64_t type;
  uint64_t len;
  int rv;

  prd_rd_init(&rd, data, datalen);
  rv = prd_rd_varint(&rd, &type);
  if (rv != 0) {
    return rv;
  }
  /* spec/02-framing.md §3: an unknown Type is an error once Type is known. */
  if (!frame_type_known(type)) {
    return PRD_ERR_FRAME_UNKNOWN;
  }
  rv = prd_rd_varint(&rd, &len);
  if (rv != 0) {
    return rv;
  }
  /* spec/02-framing.md §5: Length is checked before any payload arrives. */
  if (len > PRD_FRAME_MAX_PAYLOAD) {
    return PRD_ERR_FRAME_TOO_LARGE;
  }
  *phdrlen = (size_t)(rd.p - data);
  *ptotal = *phdrlen + (size_t)len;
  *ptype = type;
  return 0;
}

/* payload_varint reads a varint that must lie inside the payload: running
 * out of payload is a malformed frame, not a truncated one. */
static int payload_varint(prd_rd *rd, uint64_t *pv) {
  int rv = prd_rd_varint(rd, pv);

  if (rv == PRD_ERR_NEED_MORE) {
    return PRD_ERR_FRAME_ENCODING;
  }
  return rv;
}

/* decode_payload parses the complete payload |data| of a frame of |type|
 * into |fr|. Returns 0, PRD_ERR_FRAME_ENCODING or
 * PRD_ERR_VARINT_NONMINIMAL. */
static int decode_payload(prd_frame *fr, uint64_t type, const uint8_t *data,
                          size_t datalen) {
  prd_rd rd;
  size_t left;
  int rv;

  prd_rd_init(&rd, data, datalen);
  fr->type = type;
  switch (type) {
  case PRD_FRAME_HELLO:
    /* spec/02-framing.md §3.1 */
    rv = payload_varint(&rd, &fr->u.hello.version);
    if (rv == 0) {
      rv = payload_varint(&rd, &fr->u.hello.flags);
    }
    break;
  case PRD_FRAME_AUTH_CHALLENGE:
    /* spec/02-framing.md §3.2: the Challenge is the rest of the payload. */
    rv = payload_varint(&rd, &fr->u.challenge.version);
    if (rv != 0) {
      break;
    }
    left = prd_rd_left(&rd);
    if (left < PRD_CHALLENGE_MIN || left > PRD_CHALLENGE_MAX) {
      return PRD_ERR_FRAME_ENCODING;
    }
    fr->u.challenge.challengelen = left;
    rv = prd_rd_bytes(&rd, fr->u.challenge.challenge, left);
    break;
  case PRD_FRAME_AUTH_RESPONSE:
    /* spec/02-framing.md §3.3: exactly PRD_MAC_LEN bytes. */
    if (datalen != PRD_MAC_LEN) {
      return PRD_ERR_FRAME_ENCODING;
    }
    rv = prd_rd_bytes(&rd, fr->u.response.mac, PRD_MAC_LEN);
    break;
  case PRD_FRAME_AUTH_RESULT:
    /* spec/02-framing.md §3.4 */
    rv = payload_varint(&rd, &fr->u.result.status);
    break;
  case PRD_FRAME_GOAWAY:
    /* spec/02-framing.md §3.5 */
    rv = payload_varint(&rd, &fr->u.goaway.error_code);
    break;
  default:
    return PRD_ERR_FRAME_UNKNOWN;
  }
  if (rv != 0) {
    return rv;
  }
  /* spec/02-framing.md §3: trailing bytes are malformed. */
  if (prd_rd_left(&rd) != 0) {
    return PRD_ERR_FRAME_ENCODING;
  }
  return 0;
}

prd_ssize prd_frame_decode(prd_frame *fr, const uint8_t *data, size_t datalen) {
  prd_frame tmp;
  size_t total;
  size_t hdrlen;
  uint64_t type;
  int rv;

  rv = frame_peek(&hdrlen, &total, &type, data, datalen);
  if (rv != 0) {
    return rv;
  }
  if (datalen < total) {
    return PRD_ERR_NEED_MORE;
  }
  memset(&tmp, 0, sizeof(tmp));
  rv = decode_payload(&tmp, type, data + hdrlen, total - hdrlen);
  if (rv != 0) {
    return rv;
  }
  *fr = tmp;
  return (prd_ssize)total;
}

/* payload_len computes the payload length of |fr|. Returns 0 or
 * PRD_ERR_INVAL when |fr| cannot be encoded. */
static int payload_len(size_t *plen, const prd_frame *fr) {
  size_t a;
  size_t b;

  switch (fr->type) {
  case PRD_FRAME_HELLO:
    a = prd_varint_len(fr->u.hello.version);
    b = prd_varint_len(fr->u.hello.flags);
    if (a == 0 || b == 0) {
      return PRD_ERR_INVAL;
    }
    *plen = a + b;
    return 0;
  case PRD_FRAME_AUTH_CHALLENGE:
    a = prd_varint_len(fr->u.challenge.version);
    b = fr->u.challenge.challengelen;
    if (a == 0 || b < PRD_CHALLENGE_MIN || b > PRD_CHALLENGE_MAX) {
      return PRD_ERR_INVAL;
    }
    *plen = a + b;
    return 0;
  case PRD_FRAME_AUTH_RESPONSE:
    *plen = PRD_MAC_LEN;
    return 0;
  case PRD_FRAME_AUTH_RESULT:
    a = prd_varint_len(fr->u.result.status);
    break;
  case PRD_FRAME_GOAWAY:
    a = prd_varint_len(fr->u.goaway.error_code);
    break;
  default:
    return PRD_ERR_INVAL;
  }
  if (a == 0) {
    return PRD_ERR_INVAL;
  }
  *plen = a;
  return 0;
}

prd_ssize prd_frame_encode(uint8_t *dest, size_t destlen, const prd_frame *fr) {
  prd_wr wr;
  size_t paylen;
  size_t total;
  int rv;

  rv = payload_len(&paylen, fr);
  if (rv != 0) {
    return rv;
  }
  total = prd_varint_len(fr->type) + prd_varint_len(paylen) + paylen;
  if (destlen < total) {
    return PRD_ERR_NOBUF;
  }
  wr.p = dest;
  wr.end = dest + total;
  prd_wr_varint(&wr, fr->type);
  prd_wr_varint(&wr, paylen);
  switch (fr->type) {
  case PRD_FRAME_HELLO:
    prd_wr_varint(&wr, fr->u.hello.version);
    prd_wr_varint(&wr, fr->u.hello.flags);
    break;
  case PRD_FRAME_AUTH_CHALLENGE:
    prd_wr_varint(&wr, fr->u.challenge.version);
    prd_wr_bytes(&wr, fr->u.challenge.challenge, fr->u.challenge.challengelen);
    break;
  case PRD_FRAME_AUTH_RESPONSE:
    prd_wr_bytes(&wr, fr->u.response.mac, PRD_MAC_LEN);
    break;
  case PRD_FRAME_AUTH_RESULT:
    prd_wr_varint(&wr, fr->u.result.status);
    break;
  default:
    prd_wr_varint(&wr, fr->u.goaway.error_code);
    break;
  }
  return (prd_ssize)(wr.p - dest);
}

void prd_frame_reader_init(prd_frame_reader *r) { r->len = 0; }

prd_ssize prd_frame_reader_feed(prd_frame_reader *r, prd_frame *fr, int *pready,
                                const uint8_t *data, size_t datalen) {
  size_t consumed = 0;
  size_t need;
  size_t take;
  size_t total = 0;
  size_t hdrlen;
  uint64_t type;
  prd_ssize n;
  int rv;

  *pready = 0;
  if (r->len > sizeof(r->buf)) {
    return PRD_ERR_INVAL;
  }
  /* Fast path: a whole frame in |data| is decoded without copying. */
  if (r->len == 0 && datalen > 0) {
    n = prd_frame_decode(fr, data, datalen);
    if (n > 0) {
      *pready = 1;
      return n;
    }
    if (n != PRD_ERR_NEED_MORE) {
      r->len = PRD_READER_FAILED;
      return n;
    }
  }
  for (;;) {
    rv = frame_peek(&hdrlen, &total, &type, r->buf, r->len);
    if (rv == PRD_ERR_NEED_MORE) {
      /* Type or Length incomplete: take one byte at a time, so that no
       * byte past this frame is taken. */
      need = r->len + 1;
    } else if (rv != 0) {
      r->len = PRD_READER_FAILED;
      return rv;
    } else {
      need = total;
    }
    take = need - r->len;
    if (take > datalen - consumed) {
      take = datalen - consumed;
    }
    if (take) {
      memcpy(r->buf + r->len, data + consumed, take);
      r->len += take;
      consumed += take;
    }
    if (r->len < need) {
      return (prd_ssize)consumed;
    }
    if (rv == 0) {
      n = prd_frame_decode(fr, r->buf, r->len);
      if (n < 0) {
        r->len = PRD_READER_FAILED;
        return n;
      }
      r->len = 0;
      *pready = 1;
      return (prd_ssize)consumed;
    }
  }
}
