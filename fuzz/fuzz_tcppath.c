/* SPDX-License-Identifier: GPL-3.0-only */
/* libFuzzer harness for the TCP path's framing (spec/11-tcp-path.md §2):
 * the input is what a server receives, a preface then records. Checks that
 * the preface verdict matches the bytes, that every record lies inside the
 * input with a Length of 1 to the receiver's maximum, that the bytes
 * consumed add up, and that a receiver fed one byte at a time takes the
 * same records and meets the same error on the same byte. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "codec/codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* What one pass over the records found. */
typedef struct pass {
  size_t n;        /* records taken */
  size_t consumed; /* their bytes */
  int err;         /* NEED_MORE at the end, or a framing error */
  size_t at;       /* byte count after which the pass stopped */
} pass;

static size_t be16(const uint8_t *p) { return (size_t)p[0] << 8 | p[1]; }

static void check_preface(const uint8_t *data, size_t size, int v) {
  size_t n;

  for (n = 0; n < size && n < PRD_TCP_PREFACE_LEN; ++n) {
    if (prd_tcp_preface_check(data, n) != PRD_ERR_NEED_MORE) {
      abort(); /* no verdict before the 8th byte */
    }
  }
  if (size < PRD_TCP_PREFACE_LEN) {
    if (v != PRD_ERR_NEED_MORE) {
      abort();
    }
    return;
  }
  if (memcmp(data, prd_tcp_preface, PRD_TCP_PREFACE_LEN - 1) != 0) {
    if (v != PRD_TCP_PREFACE_NOT_MAGIC) {
      abort();
    }
  } else if (data[PRD_TCP_PREFACE_LEN - 1] != PRD_TCP_PATH_VERSION) {
    if (v != PRD_TCP_PREFACE_OTHER_VERSION) {
      abort();
    }
  } else if (v != PRD_TCP_PREFACE_OURS) {
    abort();
  }
  /* Only the first 8 bytes count. */
  if (prd_tcp_preface_check(data, PRD_TCP_PREFACE_LEN) != v) {
    abort();
  }
}

/* whole takes the records out of all of |data| at once. */
static void whole(const uint8_t *data, size_t size, size_t maxlen, pass *ps) {
  size_t pos = 0;
  prd_tcp_record rec;

  memset(ps, 0, sizeof(*ps));
  for (;;) {
    size_t left = size - pos;
    int rv = prd_tcp_record_next(&rec, data + pos, left, maxlen);
    if (rv == 0) {
      if (rec.off != PRD_TCP_RECORD_HDR_LEN || rec.len < 1 ||
          rec.len > maxlen || rec.size != rec.off + rec.len ||
          rec.size > left || rec.len != be16(data + pos)) {
        abort(); /* inside the input, within the limits */
      }
      pos += rec.size;
      ps->consumed += rec.size;
      ++ps->n;
      continue;
    }
    ps->err = rv;
    if (rv == PRD_ERR_NEED_MORE) {
      if (rec.size <= left ||
          (left >= PRD_TCP_RECORD_HDR_LEN &&
           (rec.len != be16(data + pos) || rec.len < 1 || rec.len > maxlen ||
            rec.size != PRD_TCP_RECORD_HDR_LEN + rec.len)) ||
          (left < PRD_TCP_RECORD_HDR_LEN &&
           rec.size != PRD_TCP_RECORD_HDR_LEN)) {
        abort();
      }
      ps->at = size;
    } else if (rv == PRD_ERR_FRAME_ENCODING || rv == PRD_ERR_FRAME_TOO_LARGE) {
      size_t len;
      if (left < PRD_TCP_RECORD_HDR_LEN || rec.why == NULL) {
        abort();
      }
      len = be16(data + pos);
      if ((rv == PRD_ERR_FRAME_ENCODING) != (len == 0) ||
          (rv == PRD_ERR_FRAME_TOO_LARGE) != (len > maxlen)) {
        abort(); /* the error the Length says, and only then */
      }
      ps->at = pos + PRD_TCP_RECORD_HDR_LEN;
    } else {
      abort();
    }
    break;
  }
  if (ps->consumed != pos || pos > size) {
    abort(); /* consumed bytes add up */
  }
}

/* bytewise feeds |data| one byte at a time to a receiver that takes the
 * records out after each byte, as relay/qtcp.c does after each read. */
static void bytewise(const uint8_t *data, size_t size, size_t maxlen,
                     pass *ps) {
  size_t start = 0, fed = 0;
  prd_tcp_record rec;

  memset(ps, 0, sizeof(*ps));
  ps->err = PRD_ERR_NEED_MORE;
  while (fed < size) {
    ++fed;
    for (;;) {
      int rv = prd_tcp_record_next(&rec, data + start, fed - start, maxlen);
      if (rv == PRD_ERR_NEED_MORE) {
        break;
      }
      if (rv != 0) {
        ps->err = rv;
        ps->at = fed;
        ps->consumed = start;
        return;
      }
      if (rec.size > fed - start) {
        abort();
      }
      start += rec.size;
      ++ps->n;
    }
  }
  ps->at = size;
  ps->consumed = start;
}

static void records(const uint8_t *data, size_t size, size_t maxlen) {
  pass a, b;

  whole(data, size, maxlen, &a);
  bytewise(data, size, maxlen, &b);
  if (a.n != b.n || a.consumed != b.consumed || a.err != b.err ||
      a.at != b.at) {
    abort();
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const uint8_t empty[1];
  int v;
  size_t off;

  if (size == 0) {
    data = empty; /* a replayed empty file may come as NULL */
  }
  v = prd_tcp_preface_check(data, size);

  check_preface(data, size, v);
  /* Records behind our preface, as a receiver reads them; behind anything
   * else, the whole input as records, so that both get explored. */
  off = v == PRD_TCP_PREFACE_OURS ? PRD_TCP_PREFACE_LEN : 0;
  records(data + off, size - off, PRD_TCP_RECORD_MAX);
  records(data + off, size - off, PRD_TCP_RECORD_MIN_ACCEPT);
  return 0;
}
