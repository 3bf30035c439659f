/* SPDX-License-Identifier: GPL-3.0-only */
/* Text for internal error codes. */
#include "err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *prd_strerror(int err) {
  switch (err) {
  case PRD_OK:
    return "success";
  case PRD_ERR_NEED_MORE:
    return "input truncated";
  case PRD_ERR_NOBUF:
    return "output buffer too small";
  case PRD_ERR_FRAME_TOO_LARGE:
    return "length exceeds limit";
  case PRD_ERR_FRAME_UNKNOWN:
    return "unknown frame type";
  case PRD_ERR_FRAME_ENCODING:
    return "malformed frame";
  case PRD_ERR_VARINT_NONMINIMAL:
    return "non-minimal varint";
  case PRD_ERR_HEADER_ENCODING:
    return "malformed stream header";
  case PRD_ERR_VERSION:
    return "unsupported protocol version";
  case PRD_ERR_AUTH_FAILED:
    return "authentication failed";
  case PRD_ERR_AUTH_TIMEOUT:
    return "authentication timed out";
  case PRD_ERR_AUTH_STATE:
    return "message out of order";
  case PRD_ERR_PIN_MISMATCH:
    return "certificate does not match pin";
  case PRD_ERR_TLS:
    return "TLS error";
  case PRD_ERR_QUIC:
    return "QUIC error";
  case PRD_ERR_CONFIG:
    return "configuration error";
  case PRD_ERR_IO:
    return "I/O error";
  case PRD_ERR_CLIENT_UNKNOWN:
    return "unknown client";
  case PRD_ERR_CLIENT_NAME:
    return "invalid client name";
  case PRD_ERR_CLIENT_NOT_ALLOWED:
    return "client not allowed from this address";
  case PRD_ERR_FILE_MODE:
    return "readable by group/others";
  default:
    if (err < 0 && err > -4096) {
      return strerror(-err);
    }
    return "unknown error";
  }
}

int prd_err_fmt(char *err, size_t errlen, const char *fmt, ...) {
  va_list ap;

  if (err != NULL && errlen > 0) {
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
  }
  return -1;
}
