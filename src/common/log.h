/* SPDX-License-Identifier: GPL-3.0-only */
/* One-line logging to stderr with the level in capitals. */
#ifndef PRD_LOG_H
#define PRD_LOG_H

#include <stddef.h>
#include <stdint.h>

typedef enum prd_log_level {
  PRD_LOG_OFF = 0,
  PRD_LOG_ERROR = 1,
  PRD_LOG_WARN = 2,
  PRD_LOG_INFO = 3,
  PRD_LOG_DEBUG = 4,
  PRD_LOG_TRACE = 5
} prd_log_level;

extern prd_log_level prd_log_threshold;

/* prd_log_level_parse parses "off|error|warn|info|debug|trace" into |*plevel|.
 * Returns 0, or -1 when |s| is not a level name. */
int prd_log_level_parse(prd_log_level *plevel, const char *s);

/* prd_log_escape writes the |len| bytes at |src| (which came from the
 * network) into |dst| as printable ASCII for a log line: 0x20..0x7e as they
 * are except a backslash, which is doubled, and every other byte as \xHH.
 * What does not fit in |dstlen| is cut and marked with "..."; |dst| is always
 * NUL-terminated (|dstlen| > 0). Returns |dst|. */
char *prd_log_escape(char *dst, size_t dstlen, const uint8_t *src, size_t len);

void prd_log_write(prd_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define prd_log(level, ...)                                                    \
  do {                                                                         \
    if ((level) <= prd_log_threshold) {                                        \
      prd_log_write((level), __VA_ARGS__);                                     \
    }                                                                          \
  } while (0)

#define PRD_LOG_ERROR(...) prd_log(PRD_LOG_ERROR, __VA_ARGS__)
#define PRD_LOG_WARN(...) prd_log(PRD_LOG_WARN, __VA_ARGS__)
#define PRD_LOG_INFO(...) prd_log(PRD_LOG_INFO, __VA_ARGS__)
#define PRD_LOG_DEBUG(...) prd_log(PRD_LOG_DEBUG, __VA_ARGS__)
#define PRD_LOG_TRACE(...) prd_log(PRD_LOG_TRACE, __VA_ARGS__)

#endif
