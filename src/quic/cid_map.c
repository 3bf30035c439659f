/* SPDX-License-Identifier: GPL-3.0-only */
/* The CID → connection table (cid_map.h): a chained hash over FNV-1a. */
#include "cid_map.h"

#include <stdlib.h>

struct prd_cid_entry {
  prd_cid_entry *next;
  ngtcp2_cid cid;
  prd_quic_conn *qc;
};

static size_t cid_hash(const ngtcp2_cid *cid) {
  uint32_t h = 2166136261u;
  for (size_t i = 0; i < cid->datalen; ++i) {
    h = (h ^ cid->data[i]) * 16777619u;
  }
  return h % PRD_CID_BUCKETS;
}

int prd_cid_map_add(prd_cid_map *m, const ngtcp2_cid *cid, prd_quic_conn *qc) {
  size_t h = cid_hash(cid);
  prd_cid_entry *e;
  for (e = m->buckets[h]; e; e = e->next) {
    if (ngtcp2_cid_eq(&e->cid, cid)) {
      e->qc = qc;
      return 0;
    }
  }
  e = malloc(sizeof(*e));
  if (e == NULL) {
    return PRD_ERR_NOMEM;
  }
  e->cid = *cid;
  e->qc = qc;
  e->next = m->buckets[h];
  m->buckets[h] = e;
  ++m->count;
  return 0;
}

/* unlink_entry frees the entry at |*pp|. */
static void unlink_entry(prd_cid_map *m, prd_cid_entry **pp) {
  prd_cid_entry *e = *pp;
  *pp = e->next;
  free(e);
  --m->count;
}

void prd_cid_map_remove(prd_cid_map *m, const ngtcp2_cid *cid) {
  prd_cid_entry **pp = &m->buckets[cid_hash(cid)];
  while (*pp) {
    if (ngtcp2_cid_eq(&(*pp)->cid, cid)) {
      unlink_entry(m, pp);
      return;
    }
    pp = &(*pp)->next;
  }
}

prd_quic_conn *prd_cid_map_find(const prd_cid_map *m, const uint8_t *data,
                                size_t len) {
  ngtcp2_cid cid;
  const prd_cid_entry *e;
  if (len > NGTCP2_MAX_CIDLEN) {
    return NULL;
  }
  ngtcp2_cid_init(&cid, data, len);
  for (e = m->buckets[cid_hash(&cid)]; e; e = e->next) {
    if (ngtcp2_cid_eq(&e->cid, &cid)) {
      return e->qc;
    }
  }
  return NULL;
}

size_t prd_cid_map_forget(prd_cid_map *m, const prd_quic_conn *qc) {
  size_t n = 0;
  if (m->count == 0) {
    return 0;
  }
  for (size_t i = 0; i < PRD_CID_BUCKETS; ++i) {
    prd_cid_entry **pp = &m->buckets[i];
    while (*pp) {
      if ((*pp)->qc == qc) {
        unlink_entry(m, pp);
        ++n;
      } else {
        pp = &(*pp)->next;
      }
    }
  }
  return n;
}

void prd_cid_map_clear(prd_cid_map *m) {
  for (size_t i = 0; i < PRD_CID_BUCKETS; ++i) {
    while (m->buckets[i]) {
      unlink_entry(m, &m->buckets[i]);
    }
  }
}

size_t prd_cid_map_size(const prd_cid_map *m) { return m->count; }
