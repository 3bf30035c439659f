/* SPDX-License-Identifier: GPL-3.0-only */
/* The server endpoint's rate limits (ratelimit.h). */
#include "ratelimit.h"

#include <string.h>

#include "../common/log.h"

#define RL_PROBE 8
#define RL_LOG_EVERY (10 * PRD_NS_PER_S)

void prd_rl_init(prd_ratelimit *rl, const uint8_t *secret) {
  memcpy(&rl->seed, secret, sizeof(rl->seed));
}

int prd_rl_reset_ok(prd_ratelimit *rl, prd_tstamp now) {
  if (now - rl->sr_window > PRD_NS_PER_S) {
    rl->sr_window = now;
    rl->sr_count = 0;
  }
  return ++rl->sr_count <= PRD_RL_RESETS_PER_S;
}

static void rl_key(const prd_sockaddr *a, uint8_t key[9]) {
  memset(key, 0, 9);
  if (a->u.sa.sa_family == AF_INET) {
    key[0] = 4;
    memcpy(key + 1, &a->u.in.sin_addr, 4);
  } else if (IN6_IS_ADDR_V4MAPPED(&a->u.in6.sin6_addr)) {
    key[0] = 4;
    memcpy(key + 1, &a->u.in6.sin6_addr.s6_addr[12], 4);
  } else {
    key[0] = 6;
    memcpy(key + 1, &a->u.in6.sin6_addr, 8);
  }
}

static void rl_refill(prd_rl_entry *e, prd_tstamp now) {
  uint64_t add = (now - e->refill) * PRD_RL_PER_S / PRD_NS_PER_MS;
  if (add > 0) {
    add += e->mtokens;
    e->mtokens =
        add > PRD_RL_BURST * 1000 ? PRD_RL_BURST * 1000 : (uint32_t)add;
    e->refill = now;
  }
}

/* rl_clean: the entry says nothing a new one would not (full bucket, no
 * failures in the window, no cool-down), so it may be given up. */
static int rl_clean(prd_rl_entry *e, prd_tstamp now) {
  rl_refill(e, now);
  return e->cooldown_until <= now &&
         (e->fails == 0 || now - e->fail_start > PRD_RL_WINDOW) &&
         e->mtokens >= PRD_RL_BURST * 1000;
}

/* rl_victim picks the slot for a new entry among the RL_PROBE from |h|: a
 * free one, else the least recently seen clean one, else (|validated| only)
 * the least recently seen one; NULL if none. */
static prd_rl_entry *rl_victim(prd_ratelimit *rl, uint32_t h, prd_tstamp now,
                               int validated) {
  prd_rl_entry *victim = NULL;
  size_t i;
  for (i = 0; i < RL_PROBE; ++i) {
    prd_rl_entry *e = &rl->table[(h + i) % PRD_RL_SLOTS];
    if (!e->used) {
      return e;
    }
    if (rl_clean(e, now) && (victim == NULL || e->seen < victim->seen)) {
      victim = e;
    }
  }
  if (victim == NULL && validated) {
    for (i = 0; i < RL_PROBE; ++i) {
      prd_rl_entry *e = &rl->table[(h + i) % PRD_RL_SLOTS];
      if (victim == NULL || e->seen < victim->seen) {
        victim = e;
      }
    }
  }
  return victim;
}

prd_rl_entry *prd_rl_get(prd_ratelimit *rl, const prd_sockaddr *a,
                         prd_tstamp now, int validated) {
  uint8_t key[9];
  uint32_t h = rl->seed ^ 2166136261u;
  prd_rl_entry *victim;
  size_t i;

  rl_key(a, key);
  for (i = 0; i < sizeof(key); ++i) {
    h = (h ^ key[i]) * 16777619u;
  }
  for (i = 0; i < RL_PROBE; ++i) {
    prd_rl_entry *e = &rl->table[(h + i) % PRD_RL_SLOTS];
    if (e->used && memcmp(e->key, key, sizeof(key)) == 0) {
      e->seen = now;
      return e;
    }
  }
  victim = rl_victim(rl, h, now, validated);
  if (victim == NULL) {
    return NULL;
  }
  memset(victim, 0, sizeof(*victim));
  memcpy(victim->key, key, sizeof(key));
  victim->used = 1;
  victim->mtokens = PRD_RL_BURST * 1000;
  victim->seen = victim->refill = now;
  return victim;
}

int prd_rl_cooling(const prd_rl_entry *e, prd_tstamp now) {
  return e->cooldown_until > now;
}

int prd_rl_has_token(prd_rl_entry *e, prd_tstamp now) {
  rl_refill(e, now);
  return e->mtokens >= 1000;
}

void prd_rl_take_token(prd_rl_entry *e) { e->mtokens -= 1000; }

void prd_rl_note_drop(prd_rl_entry *e, const prd_sockaddr *a, prd_tstamp now,
                      const char *why) {
  char peer[80];
  ++e->dropped;
  if (e->logged == 0 || now - e->logged >= RL_LOG_EVERY) {
    PRD_LOG_WARN("dropping new connections from %s: %s (%u dropped)",
                 prd_sockaddr_str(a, peer, sizeof(peer)), why, e->dropped);
    e->logged = now;
    e->dropped = 0;
  }
}

prd_rl_entry *prd_rl_fail(prd_ratelimit *rl, const prd_sockaddr *a,
                          prd_tstamp now) {
  prd_rl_entry *e = prd_rl_get(rl, a, now, 1);
  if (e->fails == 0 || now - e->fail_start > PRD_RL_WINDOW) {
    e->fails = 0;
    e->fail_start = now;
  }
  if (++e->fails < PRD_RL_FAIL_BUDGET || e->cooldown_until > now) {
    return NULL;
  }
  e->fails = 0;
  return e;
}

void prd_rl_cool_down(prd_rl_entry *e, prd_tstamp until) {
  e->cooldown_until = until;
  e->logged = 0; /* the first drop is logged at once */
}

int prd_rl_log_ok(prd_ratelimit *rl, const prd_sockaddr *a, prd_tstamp now,
                  uint32_t *psuppressed) {
  prd_rl_entry *e = prd_rl_get(rl, a, now, 1);
  if (e->fail_logged != 0 && now - e->fail_logged < RL_LOG_EVERY) {
    ++e->fail_quiet;
    return 0;
  }
  *psuppressed = e->fail_quiet;
  e->fail_quiet = 0;
  e->fail_logged = now;
  return 1;
}

int prd_rl_exempt(const prd_sockaddr *a, const prd_addr_prefix *prefixes,
                  size_t n) {
  uint8_t key[9];
  const uint8_t *addr;
  rl_key(a, key);
  addr = a->u.sa.sa_family == AF_INET ? (const uint8_t *)&a->u.in.sin_addr
         : key[0] == 4                ? &a->u.in6.sin6_addr.s6_addr[12]
                                      : a->u.in6.sin6_addr.s6_addr;
  for (size_t i = 0; i < n; ++i) {
    const prd_addr_prefix *p = &prefixes[i];
    unsigned full = p->bits / 8, rest = p->bits % 8;
    if (p->family != key[0] || memcmp(p->addr, addr, full) != 0) {
      continue;
    }
    if (rest == 0 ||
        ((p->addr[full] ^ addr[full]) & (uint8_t)(0xff << (8 - rest))) == 0) {
      return 1;
    }
  }
  return 0;
}

int prd_rl_same_key(const prd_sockaddr *a, const prd_sockaddr *b) {
  uint8_t ka[9], kb[9];
  rl_key(a, ka);
  rl_key(b, kb);
  return memcmp(ka, kb, sizeof(ka)) == 0;
}
