/* SPDX-License-Identifier: GPL-3.0-only */
/* A byte queue made of fixed-size chunks that never move: pointers into it
 * stay valid until the bytes are released from the front. Used for stream
 * send buffers (bytes owned until ACK, docs/ARCHITECTURE.md §3) and TCP
 * output buffers. */
#ifndef PRD_CHUNKBUF_H
#define PRD_CHUNKBUF_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#define PRD_CHUNK_SIZE (64 * 1024)

typedef struct prd_chunk {
  struct prd_chunk *next;
  size_t len; /* bytes used from data[0] */
  uint8_t data[PRD_CHUNK_SIZE];
} prd_chunk;

/* Bytes are addressed by a 64-bit offset that only grows. |head_off| is the
 * offset of head->data[head_pos]; |tail_off| the offset one past the last
 * byte. An empty buffer holds no chunks (no memory while idle). */
typedef struct prd_chunkbuf {
  prd_chunk *head, *tail;
  size_t head_pos;
  uint64_t head_off;
  uint64_t tail_off;
  /* The chunk where the last peek began, and the offset of its data[0]:
   * the next peek at or after it starts there instead of walking from the
   * head (a send buffer holds up to 8 MiB unacknowledged before the bytes
   * being sent). NULL once that chunk is freed. */
  prd_chunk *cur;
  uint64_t cur_base;
} prd_chunkbuf;

/* Process-wide accounting of chunk memory (bytes allocated in chunks). */
extern size_t prd_chunk_bytes_in_use;

static inline void prd_chunkbuf_init(prd_chunkbuf *b, uint64_t off) {
  b->head = b->tail = NULL;
  b->head_pos = 0;
  b->head_off = b->tail_off = off;
  b->cur = NULL;
  b->cur_base = 0;
}

static inline uint64_t prd_chunkbuf_len(const prd_chunkbuf *b) {
  return b->tail_off - b->head_off;
}

/* prd_chunkbuf_free releases every chunk (dropping any bytes). */
void prd_chunkbuf_free(prd_chunkbuf *b);

/* prd_chunkbuf_trim frees the chunks of an empty buffer (a reserved chunk
 * that received nothing). */
void prd_chunkbuf_trim(prd_chunkbuf *b);

/* prd_chunkbuf_reserve returns in |*pp|/|*plen| writable space at the tail of
 * at least |min| bytes (a new chunk is added when the tail has less). Returns
 * 0 or PRD_ERR_NOMEM. Commit what was written with prd_chunkbuf_commit. */
int prd_chunkbuf_reserve(prd_chunkbuf *b, uint8_t **pp, size_t *plen,
                         size_t min);
void prd_chunkbuf_commit(prd_chunkbuf *b, size_t n);

/* prd_chunkbuf_append copies |len| bytes to the tail. Returns 0 or
 * PRD_ERR_NOMEM (nothing appended). */
int prd_chunkbuf_append(prd_chunkbuf *b, const uint8_t *data, size_t len);

/* prd_chunkbuf_peek fills up to |maxiov| iovecs with the bytes from offset
 * |off| (head_off <= off <= tail_off) to the tail. Returns the iovec count.
 * It remembers where it began, so peeks at growing offsets cost no walk. */
size_t prd_chunkbuf_peek(prd_chunkbuf *b, uint64_t off, struct iovec *iov,
                         size_t maxiov);

/* prd_chunkbuf_release drops bytes before offset |off| from the front,
 * freeing chunks that become empty. |off| beyond tail_off is clamped. */
void prd_chunkbuf_release(prd_chunkbuf *b, uint64_t off);

#endif
