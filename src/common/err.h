/* SPDX-License-Identifier: GPL-3.0-only */
/* Internal error codes (never on the wire; wire codes live in codec.h). */
#ifndef PRD_ERR_H
#define PRD_ERR_H

#include <errno.h>
#include <stddef.h>

typedef ptrdiff_t prd_ssize;

typedef enum prd_err {
  PRD_OK = 0,
  /* System errors map one to one onto -errno. */
  PRD_ERR_NOMEM = -ENOMEM,
  PRD_ERR_INVAL = -EINVAL,
  /* Protocol and library errors from -1000 down. */
  PRD_ERR_NEED_MORE = -1000,       /* input truncated: feed more bytes */
  PRD_ERR_NOBUF = -1001,           /* output buffer too small */
  PRD_ERR_FRAME_TOO_LARGE = -1002, /* length exceeds a spec limit */
  PRD_ERR_FRAME_UNKNOWN = -1003,   /* unknown control frame type */
  PRD_ERR_FRAME_ENCODING =
      -1004, /* malformed payload (bad length, trailing bytes...) */
  PRD_ERR_VARINT_NONMINIMAL = -1005, /* varint not in its shortest form */
  PRD_ERR_HEADER_ENCODING = -1006,   /* malformed stream header */
  PRD_ERR_VERSION = -1007,           /* unsupported protocol version */
  PRD_ERR_AUTH_FAILED = -1010,
  PRD_ERR_AUTH_TIMEOUT = -1011,
  PRD_ERR_AUTH_STATE = -1012, /* message out of order */
  /* Why a client's AUTH_RESPONSE failed, for the server's log only: on the
   * wire all are AUTH_FAILED (spec/03-auth.md §4.1). */
  PRD_ERR_CLIENT_UNKNOWN = -1013,     /* no client of that name */
  PRD_ERR_CLIENT_NAME = -1014,        /* a name that breaks the rule */
  PRD_ERR_CLIENT_NOT_ALLOWED = -1015, /* outside the client's allow= */
  PRD_ERR_PIN_MISMATCH = -1020,
  PRD_ERR_TLS = -1021,
  PRD_ERR_QUIC = -1022,
  PRD_ERR_CONFIG = -1030,
  PRD_ERR_IO = -1031,
  PRD_ERR_FILE_MODE = -1032 /* a secret file group or others may read */
} prd_err;

/* prd_strerror returns a short constant description of |err|. */
const char *prd_strerror(int err);

/* prd_err_fmt writes a one-line message into |err| (|errlen| bytes; nothing
 * when NULL) and returns -1, for functions that report in a caller's
 * buffer. */
int prd_err_fmt(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
