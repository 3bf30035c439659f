/* SPDX-License-Identifier: GPL-3.0-only */
/* Bounds-checked read and write cursors shared by the codec's source files. */
#ifndef PRD_CODEC_INT_H
#define PRD_CODEC_INT_H

#include <string.h>

#include "codec.h"

/* A read cursor over [p, end). Readers never move it on failure. */
typedef struct prd_rd {
  const uint8_t *p;
  const uint8_t *end;
} prd_rd;

/* A write cursor over [p, end). Callers check capacity up front. */
typedef struct prd_wr {
  uint8_t *p;
  uint8_t *end;
} prd_wr;

static inline void prd_rd_init(prd_rd *rd, const uint8_t *data,
                               size_t datalen) {
  rd->p = data;
  /* NULL + 0 is undefined behaviour, so an empty input keeps p == end. */
  rd->end = datalen ? data + datalen : data;
}

static inline size_t prd_rd_left(const prd_rd *rd) {
  return (size_t)(rd->end - rd->p);
}

/* prd_rd_varint reads one minimally encoded varint into |*pv|. Returns 0,
 * PRD_ERR_NEED_MORE or PRD_ERR_VARINT_NONMINIMAL. */
static inline int prd_rd_varint(prd_rd *rd, uint64_t *pv) {
  prd_ssize rv = prd_varint_decode(pv, rd->p, prd_rd_left(rd));

  if (rv < 0) {
    return (int)rv;
  }
  rd->p += rv;
  return 0;
}

/* prd_rd_bytes copies |n| bytes into |dest|. Returns 0 or
 * PRD_ERR_NEED_MORE. */
static inline int prd_rd_bytes(prd_rd *rd, uint8_t *dest, size_t n) {
  if (prd_rd_left(rd) < n) {
    return PRD_ERR_NEED_MORE;
  }
  if (n) {
    memcpy(dest, rd->p, n);
    rd->p += n;
  }
  return 0;
}

/* prd_wr_varint writes |v|; the caller has checked capacity and range. */
static inline void prd_wr_varint(prd_wr *wr, uint64_t v) {
  prd_ssize rv = prd_varint_encode(wr->p, (size_t)(wr->end - wr->p), v);

  if (rv > 0) {
    wr->p += rv;
  }
}

/* prd_wr_bytes writes |n| bytes; the caller has checked capacity. */
static inline void prd_wr_bytes(prd_wr *wr, const uint8_t *src, size_t n) {
  if (n) {
    memcpy(wr->p, src, n);
    wr->p += n;
  }
}

static inline void prd_wr_u8(prd_wr *wr, uint8_t v) { *wr->p++ = v; }

#endif
