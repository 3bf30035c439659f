/* SPDX-License-Identifier: GPL-3.0-only */
/* Chunked byte queue with stable pointers (see chunkbuf.h). */
#include "chunkbuf.h"

#include <stdlib.h>
#include <string.h>

#include "err.h"

size_t prd_chunk_bytes_in_use;

/* A small free list avoids malloc churn on busy streams while keeping idle
 * memory bounded. */
#define FREELIST_MAX 32
static prd_chunk *freelist;
static size_t freelist_len;

static prd_chunk *chunk_new(void) {
  prd_chunk *c;
  if (freelist) {
    c = freelist;
    freelist = c->next;
    --freelist_len;
  } else {
    c = malloc(sizeof(*c));
    if (c == NULL) {
      return NULL;
    }
  }
  c->next = NULL;
  c->len = 0;
  prd_chunk_bytes_in_use += sizeof(*c);
  return c;
}

static void chunk_del(prd_chunk *c) {
  prd_chunk_bytes_in_use -= sizeof(*c);
  if (freelist_len < FREELIST_MAX) {
    c->next = freelist;
    freelist = c;
    ++freelist_len;
    return;
  }
  free(c);
}

void prd_chunkbuf_trim(prd_chunkbuf *b) {
  if (b->head_off == b->tail_off) {
    prd_chunkbuf_free(b);
  }
}

void prd_chunkbuf_free(prd_chunkbuf *b) {
  prd_chunk *c = b->head, *next;
  while (c) {
    next = c->next;
    chunk_del(c);
    c = next;
  }
  b->head = b->tail = NULL;
  b->head_pos = 0;
  b->head_off = b->tail_off;
  b->cur = NULL;
}

int prd_chunkbuf_reserve(prd_chunkbuf *b, uint8_t **pp, size_t *plen,
                         size_t min) {
  prd_chunk *c = b->tail;
  if (min > PRD_CHUNK_SIZE) {
    min = PRD_CHUNK_SIZE;
  }
  if (c == NULL || PRD_CHUNK_SIZE - c->len < min || PRD_CHUNK_SIZE == c->len) {
    c = chunk_new();
    if (c == NULL) {
      return PRD_ERR_NOMEM;
    }
    if (b->tail) {
      b->tail->next = c;
    } else {
      b->head = c;
      b->head_pos = 0;
    }
    b->tail = c;
  }
  *pp = c->data + c->len;
  *plen = PRD_CHUNK_SIZE - c->len;
  return 0;
}

void prd_chunkbuf_commit(prd_chunkbuf *b, size_t n) {
  b->tail->len += n;
  b->tail_off += n;
}

int prd_chunkbuf_append(prd_chunkbuf *b, const uint8_t *data, size_t len) {
  while (len) {
    uint8_t *p;
    size_t avail, n;
    int rv = prd_chunkbuf_reserve(b, &p, &avail, 1);
    if (rv != 0) {
      return rv;
    }
    n = len < avail ? len : avail;
    memcpy(p, data, n);
    prd_chunkbuf_commit(b, n);
    data += n;
    len -= n;
  }
  return 0;
}

size_t prd_chunkbuf_peek(prd_chunkbuf *b, uint64_t off, struct iovec *iov,
                         size_t maxiov) {
  prd_chunk *c = b->head;
  uint64_t base = b->head_off - b->head_pos; /* offset of c->data[0] */
  size_t pos, n = 0;

  if (off < b->head_off || off >= b->tail_off) {
    return 0;
  }
  if (b->cur != NULL && b->cur_base <= off) {
    c = b->cur;
    base = b->cur_base;
  }
  while (c != NULL && base + c->len <= off) {
    base += c->len;
    c = c->next;
  }
  if (c == NULL) {
    return 0;
  }
  b->cur = c;
  b->cur_base = base;
  pos = (size_t)(off - base);
  while (c && n < maxiov) {
    if (c->len > pos) {
      iov[n].iov_base = (void *)(uintptr_t)(c->data + pos);
      iov[n].iov_len = c->len - pos;
      ++n;
    }
    c = c->next;
    pos = 0;
  }
  return n;
}

void prd_chunkbuf_release(prd_chunkbuf *b, uint64_t off) {
  if (off > b->tail_off) {
    off = b->tail_off;
  }
  if (off == b->tail_off) {
    /* Everything goes: free all chunks, including empty reserved ones. */
    prd_chunkbuf_free(b);
    return;
  }
  while (b->head && b->head_off < off) {
    prd_chunk *c = b->head;
    size_t avail = c->len - b->head_pos;
    uint64_t want = off - b->head_off;
    if (want < avail) {
      b->head_pos += (size_t)want;
      b->head_off += want;
      break;
    }
    b->head_off += avail;
    /* Keep the tail chunk only while it can still take bytes. */
    if (c == b->tail && c->len < PRD_CHUNK_SIZE) {
      b->head_pos = c->len;
      if (b->head_off == b->tail_off) {
        /* Fully drained: give the memory back while idle. */
        b->head = b->tail = NULL;
        b->head_pos = 0;
        b->cur = NULL;
        chunk_del(c);
      }
      break;
    }
    b->head = c->next;
    if (b->head == NULL) {
      b->tail = NULL;
    }
    b->head_pos = 0;
    if (b->cur == c) {
      b->cur = NULL;
    }
    chunk_del(c);
  }
}
