/* SPDX-License-Identifier: GPL-3.0-only */
/* One-line logging to stderr: "2026-01-02T03:04:05.678Z INFO  message". */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

prd_log_level prd_log_threshold = PRD_LOG_INFO;

static const char *const level_names[] = {"OFF",  "ERROR", "WARN",
                                          "INFO", "DEBUG", "TRACE"};

int prd_log_level_parse(prd_log_level *plevel, const char *s) {
  static const char *const names[] = {"off",  "error", "warn",
                                      "info", "debug", "trace"};
  for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); ++i) {
    if (strcmp(s, names[i]) == 0) {
      *plevel = (prd_log_level)i;
      return 0;
    }
  }
  return -1;
}

char *prd_log_escape(char *dst, size_t dstlen, const uint8_t *src, size_t len) {
  static const char hex[] = "0123456789abcdef";
  size_t o = 0, i;

  for (i = 0; i < len; ++i) {
    uint8_t c = src[i];
    size_t need = c == '\\' ? 2 : (c >= 0x20 && c < 0x7f ? 1 : 4);
    /* Keep room for "..." and the NUL. */
    if (o + need + 4 > dstlen) {
      break;
    }
    if (c == '\\') {
      dst[o++] = '\\';
      dst[o++] = '\\';
    } else if (need == 1) {
      dst[o++] = (char)c;
    } else {
      dst[o++] = '\\';
      dst[o++] = 'x';
      dst[o++] = hex[c >> 4];
      dst[o++] = hex[c & 15];
    }
  }
  if (i < len && dstlen >= 4) {
    memcpy(dst + o, "...", 3);
    o += 3;
  }
  dst[o < dstlen ? o : dstlen - 1] = 0;
  return dst;
}

void prd_log_write(prd_log_level level, const char *fmt, ...) {
  char line[1024];
  struct timeval tv;
  struct tm tm;
  size_t n;
  int rv;
  va_list ap;

  gettimeofday(&tv, NULL);
  gmtime_r(&tv.tv_sec, &tm);
  n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
  rv = snprintf(line + n, sizeof(line) - n, ".%03dZ %-5s ",
                (int)(tv.tv_usec / 1000), level_names[level]);
  if (rv > 0) {
    n += (size_t)rv;
  }
  va_start(ap, fmt);
  rv = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
  va_end(ap);
  if (rv > 0) {
    n += (size_t)rv;
  }
  if (n > sizeof(line) - 2) {
    n = sizeof(line) - 2;
  }
  line[n++] = '\n';
  /* One write per line so that concurrent writers do not interleave. */
  fwrite(line, 1, n, stderr);
}
