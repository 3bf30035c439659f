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
  case PRD_APP_UNKNOWN_SERVICE:
    return "UNKNOWN_SERVICE";
  case PRD_APP_SERVICE_NOT_PERMITTED:
    return "SERVICE_NOT_PERMITTED";
  case PRD_APP_CLIENT_REVOKED:
    return "CLIENT_REVOKED";
  default:
    return "UNKNOWN";
  }
}

/* spec/02-framing.md §3.6: SERVICES and SERVICE_REFUSED exist only where
 * SERVICES was negotiated (§3.7). */
static int frame_type_known(uint64_t type, uint64_t features) {
  if (type >= PRD_FRAME_HELLO && type <= PRD_FRAME_GOAWAY) {
    return 1;
  }
  return (features & PRD_FLAG_SERVICES) &&
         (type == PRD_FRAME_SERVICES || type == PRD_FRAME_SERVICE_REFUSED);
}

/* name_bytes_ok returns 1 if the |namelen| bytes at |name| are all of
 * [A-Za-z0-9._-] (spec/02-framing.md §3.3, §3.7), else 0. */
static int name_bytes_ok(const char *name, size_t namelen) {
  size_t i;

  for (i = 0; i < namelen; ++i) {
    unsigned char c = (unsigned char)name[i];

    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
          (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-')) {
      return 0;
    }
  }
  return 1;
}

int prd_service_name_valid(const char *name, size_t namelen) {
  /* spec/02-framing.md §3.7: 1..63 bytes of [A-Za-z0-9._-]. */
  return namelen > 0 && namelen <= PRD_SERVICE_NAME_MAX &&
         name_bytes_ok(name, namelen);
}

int prd_client_name_valid(const char *name, size_t namelen) {
  /* spec/02-framing.md §3.3: 1..64 of the same bytes, not starting with
   * '.' or '-' (nothing that looks like a hidden file or an option). */
  return name != NULL && namelen > 0 && namelen <= PRD_CLIENT_NAME_MAX &&
         name[0] != '.' && name[0] != '-' && name_bytes_ok(name, namelen);
}

int prd_services_next(const prd_frame *fr, size_t *poff, const char **pname,
                      size_t *pnamelen) {
  size_t off = *poff;
  size_t len;

  if (off >= fr->u.services.listlen ||
      fr->u.services.listlen > sizeof(fr->u.services.list)) {
    return 0;
  }
  len = fr->u.services.list[off];
  if (len > fr->u.services.listlen - off - 1) {
    return 0;
  }
  *pname = (const char *)fr->u.services.list + off + 1;
  *pnamelen = len;
  *poff = off + 1 + len;
  return 1;
}

/* services_has returns 1 if the SERVICES list of |fr| holds |name|. */
static int services_has(const prd_frame *fr, const char *name, size_t namelen) {
  size_t off = 0;
  const char *n;
  size_t nlen;

  while (prd_services_next(fr, &off, &n, &nlen)) {
    if (nlen == namelen && memcmp(n, name, namelen) == 0) {
      return 1;
    }
  }
  return 0;
}

int prd_services_add(prd_frame *fr, const char *name, size_t namelen) {
  size_t used = fr->u.services.listlen;

  if (!prd_service_name_valid(name, namelen) ||
      used > sizeof(fr->u.services.list) || services_has(fr, name, namelen)) {
    return PRD_ERR_INVAL;
  }
  /* Name Length is one byte: namelen <= 63 encodes in a 1-byte varint. */
  if (1 + namelen > sizeof(fr->u.services.list) - used) {
    return PRD_ERR_NOBUF;
  }
  fr->u.services.list[used] = (uint8_t)namelen;
  memcpy(fr->u.services.list + used + 1, name, namelen);
  fr->u.services.listlen = used + 1 + namelen;
  fr->u.services.count++;
  return 0;
}

/* frame_peek decodes the Type and Length of the frame at the start of
 * |data|, sets |*phdrlen| to the length of these two fields and |*ptotal|
 * to the length of the whole frame. Returns 0,
 * PRD_ERR_NEED_MORE, PRD_ERR_VARINT_NONMINIMAL, PRD_ERR_FRAME_UNKNOWN or
 * PRD_ERR_FRAME_TOO_LARGE, in the order the bytes reveal them. */
static int frame_peek(size_t *phdrlen, size_t *ptotal, uint64_t *ptype,
                      const uint8_t *data, size_t datalen, uint64_t features) {
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
  if (!frame_type_known(type, features)) {
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

/* payload_name reads a Service Name (spec/02-framing.md §3.7) that must
 * lie inside the payload into |name| (PRD_SERVICE_NAME_MAX + 1 bytes,
 * NUL-terminated). Returns 0, PRD_ERR_FRAME_ENCODING or
 * PRD_ERR_VARINT_NONMINIMAL. */
static int payload_name(prd_rd *rd, char *name, size_t *pnamelen) {
  uint64_t len;
  int rv = payload_varint(rd, &len);

  if (rv != 0) {
    return rv;
  }
  if (len == 0 || len > PRD_SERVICE_NAME_MAX || len > prd_rd_left(rd) ||
      !prd_service_name_valid((const char *)rd->p, (size_t)len)) {
    return PRD_ERR_FRAME_ENCODING;
  }
  memcpy(name, rd->p, (size_t)len);
  name[len] = '\0';
  rd->p += (size_t)len;
  *pnamelen = (size_t)len;
  return 0;
}

/* decode_services parses a SERVICES payload (spec/02-framing.md §3.7): one
 * or more Service Names, no name twice. */
static int decode_services(prd_frame *fr, prd_rd *rd) {
  char name[PRD_SERVICE_NAME_MAX + 1];
  size_t namelen;
  int rv;

  if (prd_rd_left(rd) == 0) {
    return PRD_ERR_FRAME_ENCODING;
  }
  while (prd_rd_left(rd) > 0) {
    rv = payload_name(rd, name, &namelen);
    if (rv != 0) {
      return rv;
    }
    /* Valid names fit: the payload is at most PRD_FRAME_MAX_PAYLOAD. */
    rv = prd_services_add(fr, name, namelen);
    if (rv != 0) {
      return PRD_ERR_FRAME_ENCODING; /* a duplicate */
    }
  }
  return 0;
}

/* decode_payload parses the complete payload |data| of a frame of |type|
 * into |fr|. Returns 0, PRD_ERR_FRAME_ENCODING or
 * PRD_ERR_VARINT_NONMINIMAL. */
static int decode_payload(prd_frame *fr, uint64_t type, const uint8_t *data,
                          size_t datalen, uint64_t features) {
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
    /* spec/02-framing.md §3.3: exactly PRD_MAC_LEN bytes, or with
     * CLIENT_NAME the MAC and a Name of 1..64 bytes (its characters are
     * the server's check, not ours: a bad one must fail like a wrong key). */
    if (features & PRD_FLAG_CLIENT_NAME) {
      if (datalen <= PRD_MAC_LEN ||
          datalen > PRD_MAC_LEN + PRD_CLIENT_NAME_MAX) {
        return PRD_ERR_FRAME_ENCODING;
      }
    } else if (datalen != PRD_MAC_LEN) {
      return PRD_ERR_FRAME_ENCODING;
    }
    rv = prd_rd_bytes(&rd, fr->u.response.mac, PRD_MAC_LEN);
    if (rv != 0) {
      break;
    }
    fr->u.response.namelen = datalen - PRD_MAC_LEN;
    rv = prd_rd_bytes(&rd, (uint8_t *)fr->u.response.name,
                      fr->u.response.namelen);
    fr->u.response.name[fr->u.response.namelen] = '\0';
    break;
  case PRD_FRAME_AUTH_RESULT:
    /* spec/02-framing.md §3.4: Flags only in reply to a HELLO with
     * Flags, and only bits the client sent. */
    rv = payload_varint(&rd, &fr->u.result.status);
    if (rv == 0 && features != 0 && prd_rd_left(&rd) > 0) {
      rv = payload_varint(&rd, &fr->u.result.flags);
      if (rv == 0 && (fr->u.result.flags & ~features) != 0) {
        return PRD_ERR_FRAME_ENCODING;
      }
      fr->u.result.has_flags = 1;
    }
    break;
  case PRD_FRAME_GOAWAY:
    /* spec/02-framing.md §3.5 */
    rv = payload_varint(&rd, &fr->u.goaway.error_code);
    break;
  case PRD_FRAME_SERVICES:
    rv = decode_services(fr, &rd);
    break;
  case PRD_FRAME_SERVICE_REFUSED:
    /* spec/02-framing.md §3.8 */
    rv = payload_varint(&rd, &fr->u.refused.error_code);
    if (rv == 0) {
      rv = payload_name(&rd, fr->u.refused.name, &fr->u.refused.namelen);
    }
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
  return prd_frame_decode_ex(fr, data, datalen, 0);
}

prd_ssize prd_frame_decode_ex(prd_frame *fr, const uint8_t *data,
                              size_t datalen, uint64_t features) {
  prd_frame tmp;
  size_t total;
  size_t hdrlen;
  uint64_t type;
  int rv;

  rv = frame_peek(&hdrlen, &total, &type, data, datalen, features);
  if (rv != 0) {
    return rv;
  }
  if (datalen < total) {
    return PRD_ERR_NEED_MORE;
  }
  memset(&tmp, 0, sizeof(tmp));
  rv = decode_payload(&tmp, type, data + hdrlen, total - hdrlen, features);
  if (rv != 0) {
    return rv;
  }
  *fr = tmp;
  return (prd_ssize)total;
}

/* services_len checks the name list of a SERVICES frame as a receiver
 * would (spec/02-framing.md §3.7) and gives its length. */
static int services_len(size_t *plen, const prd_frame *fr) {
  prd_frame tmp;
  prd_rd rd;

  if (fr->u.services.listlen == 0 ||
      fr->u.services.listlen > sizeof(fr->u.services.list)) {
    return PRD_ERR_INVAL;
  }
  memset(&tmp, 0, sizeof(tmp));
  prd_rd_init(&rd, fr->u.services.list, fr->u.services.listlen);
  if (decode_services(&tmp, &rd) != 0 ||
      tmp.u.services.count != fr->u.services.count) {
    return PRD_ERR_INVAL;
  }
  *plen = fr->u.services.listlen;
  return 0;
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
    if (fr->u.response.namelen > PRD_CLIENT_NAME_MAX) {
      return PRD_ERR_INVAL;
    }
    *plen = PRD_MAC_LEN + fr->u.response.namelen;
    return 0;
  case PRD_FRAME_AUTH_RESULT:
    a = prd_varint_len(fr->u.result.status);
    if (fr->u.result.has_flags) {
      b = prd_varint_len(fr->u.result.flags);
      if (a == 0 || b == 0) {
        return PRD_ERR_INVAL;
      }
      a += b;
    }
    break;
  case PRD_FRAME_GOAWAY:
    a = prd_varint_len(fr->u.goaway.error_code);
    break;
  case PRD_FRAME_SERVICES:
    return services_len(plen, fr);
  case PRD_FRAME_SERVICE_REFUSED:
    a = prd_varint_len(fr->u.refused.error_code);
    b = fr->u.refused.namelen;
    if (a == 0 || !prd_service_name_valid(fr->u.refused.name, b)) {
      return PRD_ERR_INVAL;
    }
    a += 1 + b;
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
    prd_wr_bytes(&wr, (const uint8_t *)fr->u.response.name,
                 fr->u.response.namelen);
    break;
  case PRD_FRAME_AUTH_RESULT:
    prd_wr_varint(&wr, fr->u.result.status);
    if (fr->u.result.has_flags) {
      prd_wr_varint(&wr, fr->u.result.flags);
    }
    break;
  case PRD_FRAME_SERVICES:
    prd_wr_bytes(&wr, fr->u.services.list, fr->u.services.listlen);
    break;
  case PRD_FRAME_SERVICE_REFUSED:
    prd_wr_varint(&wr, fr->u.refused.error_code);
    prd_wr_varint(&wr, fr->u.refused.namelen);
    prd_wr_bytes(&wr, (const uint8_t *)fr->u.refused.name,
                 fr->u.refused.namelen);
    break;
  default:
    prd_wr_varint(&wr, fr->u.goaway.error_code);
    break;
  }
  return (prd_ssize)(wr.p - dest);
}

void prd_frame_reader_init(prd_frame_reader *r) {
  r->len = 0;
  r->features = 0;
}

void prd_frame_reader_set_features(prd_frame_reader *r, uint64_t features) {
  r->features = features;
}

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
    n = prd_frame_decode_ex(fr, data, datalen, r->features);
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
    rv = frame_peek(&hdrlen, &total, &type, r->buf, r->len, r->features);
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
      n = prd_frame_decode_ex(fr, r->buf, r->len, r->features);
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
