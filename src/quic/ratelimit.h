/* SPDX-License-Identifier: GPL-3.0-only */
/* The server endpoint's rate limits, one set per endpoint: stateless resets
 * per second, and per-source-address admission (spec/03-auth.md §6,
 * spec/08-security.md §3): an address (an IPv6 /64) may start
 * PRD_RL_BURST new connections at once and PRD_RL_PER_S per second after
 * that; beyond that its Initials get Retry and, once validated, are dropped.
 * PRD_RL_FAIL_BUDGET authentication failures within PRD_RL_WINDOW put it in
 * a cool-down during which its Initials are dropped. Pure: every function
 * takes the time. */
#ifndef PRD_QUIC_RATELIMIT_H
#define PRD_QUIC_RATELIMIT_H

#include <stddef.h>
#include <stdint.h>

#include "quic.h"

#define PRD_RL_SLOTS 1024
#define PRD_RL_BURST 32
#define PRD_RL_PER_S 4
#define PRD_RL_FAIL_BUDGET 10
#define PRD_RL_WINDOW (60 * PRD_NS_PER_S)
/* At most this many stateless resets a second: garbage floods must not turn
 * the server into a reflector. */
#define PRD_RL_RESETS_PER_S 100

/* One address's entry; its fields are ratelimit.c's. */
typedef struct prd_rl_entry {
  uint8_t key[9]; /* family, then 4 (IPv4) or 8 (IPv6 /64) address bytes */
  uint8_t used;
  uint32_t mtokens; /* thousandths of a new-connection token */
  uint32_t fails;
  uint32_t dropped;
  uint32_t fail_quiet; /* failure lines left out since fail_logged */
  prd_tstamp seen, refill, fail_start, cooldown_until, logged, fail_logged;
} prd_rl_entry;

typedef struct prd_ratelimit {
  uint32_t seed; /* keys the address hash */
  prd_tstamp sr_window;
  unsigned sr_count;
  prd_rl_entry table[PRD_RL_SLOTS];
} prd_ratelimit;

/* prd_rl_init keys the address hash of a zeroed |rl| (an empty one) by
 * |secret| (at least 4 bytes), so that a peer cannot aim its addresses at
 * one neighbourhood. Left zeroed, the table's pages cost no memory until
 * used. */
void prd_rl_init(prd_ratelimit *rl, const uint8_t *secret);

/* prd_rl_reset_ok: whether one more stateless reset may be sent now (it is
 * counted). */
int prd_rl_reset_ok(prd_ratelimit *rl, prd_tstamp now);

/* prd_rl_get finds or makes the entry of |a|'s address. A full
 * neighbourhood gives up its least recently seen clean entry. For an
 * address not |validated| (an Initial without a Retry token, possibly
 * spoofed) no other entry is given up: NULL then, and the caller asks for
 * Retry. A validated address takes the least recently seen entry if none is
 * clean. */
prd_rl_entry *prd_rl_get(prd_ratelimit *rl, const prd_sockaddr *a,
                         prd_tstamp now, int validated);
/* prd_rl_cooling: the address is in its cool-down. */
int prd_rl_cooling(const prd_rl_entry *e, prd_tstamp now);
/* prd_rl_has_token: the address may start a new connection now;
 * prd_rl_take_token spends that token. */
int prd_rl_has_token(prd_rl_entry *e, prd_tstamp now);
void prd_rl_take_token(prd_rl_entry *e);
/* prd_rl_note_drop counts a dropped Initial from |a| and logs it (at most a
 * line every 10 s an address) with |why|. */
void prd_rl_note_drop(prd_rl_entry *e, const prd_sockaddr *a, prd_tstamp now,
                      const char *why);

/* prd_rl_fail counts an authentication failure of |a|; when that uses up the
 * address's budget (and it is not cooling down already) the count starts
 * again and its entry is returned, for prd_rl_cool_down; else NULL. */
prd_rl_entry *prd_rl_fail(prd_ratelimit *rl, const prd_sockaddr *a,
                          prd_tstamp now);
/* prd_rl_cool_down drops the address's Initials until |until|; the first
 * drop is logged at once. */
void prd_rl_cool_down(prd_rl_entry *e, prd_tstamp until);

/* prd_rl_log_ok: whether a failure line about |a| may be logged now (at most
 * one per address every 10 s); |*psuppressed| gets the number of lines left
 * out since the last one. */
int prd_rl_log_ok(prd_ratelimit *rl, const prd_sockaddr *a, prd_tstamp now,
                  uint32_t *psuppressed);

/* prd_rl_exempt: |a| is in one of the |n| |prefixes|. */
int prd_rl_exempt(const prd_sockaddr *a, const prd_addr_prefix *prefixes,
                  size_t n);
/* prd_rl_same_key: |a| and |b| share an entry (address, or /64). */
int prd_rl_same_key(const prd_sockaddr *a, const prd_sockaddr *b);

#endif
