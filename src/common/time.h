/* SPDX-License-Identifier: GPL-3.0-only */
/* Monotonic timestamps in nanoseconds (the unit of ngtcp2_tstamp). */
#ifndef PRD_TIME_H
#define PRD_TIME_H

#include <stdint.h>
#include <time.h>

typedef uint64_t prd_tstamp;

#define PRD_NS_PER_MS ((uint64_t)1000000)
#define PRD_NS_PER_S ((uint64_t)1000000000)

/* prd_now_hook, when set, is the clock prd_now reads instead of
 * CLOCK_MONOTONIC: the seam through which in-process tests
 * (tests/unit/test_quic.c) run connections under a fake clock. NULL, and
 * never set, in the programs. */
extern prd_tstamp (*prd_now_hook)(void);

static inline prd_tstamp prd_now(void) {
  struct timespec ts;
  if (prd_now_hook) {
    return prd_now_hook();
  }
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * PRD_NS_PER_S + (uint64_t)ts.tv_nsec;
}

#endif
