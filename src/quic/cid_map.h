/* SPDX-License-Identifier: GPL-3.0-only */
/* The server's table from connection ID to connection: every CID a
 * connection answers to (its SCIDs and the client's original DCID) finds
 * it, so that dispatch routes each datagram by its DCID. */
#ifndef PRD_QUIC_CID_MAP_H
#define PRD_QUIC_CID_MAP_H

#include <ngtcp2/ngtcp2.h>
#include <stddef.h>
#include <stdint.h>

#include "quic.h"

#define PRD_CID_BUCKETS 1024

typedef struct prd_cid_entry prd_cid_entry;

/* A zeroed prd_cid_map is an empty one. */
typedef struct prd_cid_map {
  prd_cid_entry *buckets[PRD_CID_BUCKETS];
  size_t count;
} prd_cid_map;

/* prd_cid_map_add maps |cid| to |qc|, replacing what it mapped to. Returns 0
 * or PRD_ERR_NOMEM. */
int prd_cid_map_add(prd_cid_map *m, const ngtcp2_cid *cid, prd_quic_conn *qc);
/* prd_cid_map_remove unmaps |cid|, whichever connection it maps to. */
void prd_cid_map_remove(prd_cid_map *m, const ngtcp2_cid *cid);
/* prd_cid_map_find returns the connection of the CID |data|/|len|, or NULL
 * (also for a length over NGTCP2_MAX_CIDLEN). */
prd_quic_conn *prd_cid_map_find(const prd_cid_map *m, const uint8_t *data,
                                size_t len);
/* prd_cid_map_forget unmaps every CID of |qc| and returns how many. */
size_t prd_cid_map_forget(prd_cid_map *m, const prd_quic_conn *qc);
/* prd_cid_map_clear unmaps everything. */
void prd_cid_map_clear(prd_cid_map *m);
size_t prd_cid_map_size(const prd_cid_map *m);

#endif
