/* SPDX-License-Identifier: GPL-3.0-only */
/* The TCP path's framing (spec/11-tcp-path.md §2): the preface and the
 * records that carry one datagram each. Pure: it classifies bytes and says
 * where a record lies; the socket I/O is relay/qtcp.c's. */
#include <string.h>

#include "codec.h"

/* §2.1: Magic "PRD-QOT" (0x5052442d514f54), Version 1. */
const uint8_t prd_tcp_preface[PRD_TCP_PREFACE_LEN] = {
    0x50, 0x52, 0x44, 0x2d, 0x51, 0x4f, 0x54, PRD_TCP_PATH_VERSION};

int prd_tcp_preface_check(const uint8_t *data, size_t datalen) {
  if (datalen < PRD_TCP_PREFACE_LEN) {
    return PRD_ERR_NEED_MORE;
  }
  if (memcmp(data, prd_tcp_preface, PRD_TCP_PREFACE_LEN - 1) != 0) {
    return PRD_TCP_PREFACE_NOT_MAGIC;
  }
  if (data[PRD_TCP_PREFACE_LEN - 1] != PRD_TCP_PATH_VERSION) {
    return PRD_TCP_PREFACE_OTHER_VERSION;
  }
  return PRD_TCP_PREFACE_OURS;
}

int prd_tcp_record_next(prd_tcp_record *rec, const uint8_t *data,
                        size_t datalen, size_t maxlen) {
  size_t len;

  memset(rec, 0, sizeof(*rec));
  rec->off = PRD_TCP_RECORD_HDR_LEN;
  rec->size = PRD_TCP_RECORD_HDR_LEN;
  if (datalen < PRD_TCP_RECORD_HDR_LEN) {
    return PRD_ERR_NEED_MORE;
  }
  if (maxlen < PRD_TCP_RECORD_MIN_ACCEPT) {
    maxlen = PRD_TCP_RECORD_MIN_ACCEPT;
  } else if (maxlen > PRD_TCP_RECORD_MAX) {
    maxlen = PRD_TCP_RECORD_MAX;
  }
  len = (size_t)data[0] << 8 | data[1];
  if (len == 0) {
    /* §2.2: a Length of 0 is a protocol error. */
    rec->why = "a record of length 0 (a framing error)";
    return PRD_ERR_FRAME_ENCODING;
  }
  if (len > maxlen) {
    /* §2.2: so is a Length above what the receiver accepts. */
    rec->why = "a record longer than this side accepts (a framing error)";
    return PRD_ERR_FRAME_TOO_LARGE;
  }
  rec->len = len;
  rec->size = PRD_TCP_RECORD_HDR_LEN + len;
  return datalen < rec->size ? PRD_ERR_NEED_MORE : 0;
}
