/* SPDX-License-Identifier: GPL-3.0-only */
/* Monotonic timestamps in nanoseconds (the unit of ngtcp2_tstamp). */
#ifndef PRD_TIME_H
#define PRD_TIME_H

#include <stdint.h>
#include <time.h>

typedef uint64_t prd_tstamp;

#define PRD_NS_PER_MS ((uint64_t)1000000)
#define PRD_NS_PER_S ((uint64_t)1000000000)

static inline prd_tstamp prd_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * PRD_NS_PER_S + (uint64_t)ts.tv_nsec;
}

#endif
