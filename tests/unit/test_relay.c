/* SPDX-License-Identifier: GPL-3.0-only */
/* Unit tests of the relay's pure parts: the chunked buffer that owns stream
 * bytes until ACK, and the PROXY protocol encoder. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "common/chunkbuf.h"
#include "relay/proxy.h"

/* Pointers handed out stay valid while later bytes are appended and earlier
 * ones released (docs/ARCHITECTURE.md §3: bytes owned until ACK). */
static void test_relay_chunkbuf_stable_pointers(void **state) {
  prd_chunkbuf b;
  uint8_t data[1000], *p;
  struct iovec iov[8];
  size_t n, avail;
  (void)state;

  for (size_t i = 0; i < sizeof(data); ++i) {
    data[i] = (uint8_t)i;
  }
  prd_chunkbuf_init(&b, 100);
  assert_int_equal(prd_chunkbuf_append(&b, data, sizeof(data)), 0);
  n = prd_chunkbuf_peek(&b, 100, iov, 8);
  assert_int_equal(n, 1);
  p = iov[0].iov_base;
  /* Fill past one chunk: the first bytes must not move. */
  for (int i = 0; i < 200; ++i) {
    assert_int_equal(prd_chunkbuf_append(&b, data, sizeof(data)), 0);
  }
  assert_int_equal(prd_chunkbuf_len(&b), 201 * 1000);
  n = prd_chunkbuf_peek(&b, 100, iov, 8);
  assert_true(n >= 2);
  assert_ptr_equal(iov[0].iov_base, p);
  assert_memory_equal(p, data, sizeof(data));
  /* Peek from the middle. */
  n = prd_chunkbuf_peek(&b, 100 + 1500, iov, 8);
  assert_true(n >= 1);
  assert_int_equal(((uint8_t *)iov[0].iov_base)[0], (uint8_t)500);
  /* Release (ACK) part of it. */
  prd_chunkbuf_release(&b, 100 + 70000);
  assert_int_equal(b.head_off, 100 + 70000);
  assert_int_equal(prd_chunkbuf_len(&b), 201 * 1000 - 70000);
  n = prd_chunkbuf_peek(&b, b.head_off, iov, 8);
  assert_int_equal(((uint8_t *)iov[0].iov_base)[0], (uint8_t)(70000 % 1000));
  /* Out of range peeks give nothing. */
  assert_int_equal(prd_chunkbuf_peek(&b, 99, iov, 8), 0);
  assert_int_equal(prd_chunkbuf_peek(&b, b.tail_off, iov, 8), 0);
  /* Release everything: no memory while idle. */
  prd_chunkbuf_release(&b, b.tail_off + 5);
  assert_null(b.head);
  assert_int_equal(prd_chunkbuf_len(&b), 0);
  /* A reserved chunk that got nothing is trimmed. */
  assert_int_equal(prd_chunkbuf_reserve(&b, &p, &avail, 1), 0);
  assert_true(avail > 0);
  prd_chunkbuf_trim(&b);
  assert_null(b.head);
  prd_chunkbuf_free(&b);
}

/* Fills |b| with |total| bytes whose value is their offset mod 251, in
 * pieces of uneven size, some of them forcing a new chunk before the
 * current one is full. */
static void fill_pattern(prd_chunkbuf *b, uint64_t total) {
  uint64_t off = b->tail_off;
  unsigned step = 0;
  while (off < total) {
    static const size_t mins[] = {1, 40000, 4096, 65536, 7};
    static const size_t lens[] = {1500, 30000, 999, 65536, 12345};
    uint8_t *p;
    size_t avail, n = lens[step % 5];
    assert_int_equal(prd_chunkbuf_reserve(b, &p, &avail, mins[step % 5]), 0);
    if (n > avail) {
      n = avail;
    }
    if (n > total - off) {
      n = (size_t)(total - off);
    }
    for (size_t i = 0; i < n; ++i) {
      p[i] = (uint8_t)((off + i) % 251);
    }
    prd_chunkbuf_commit(b, n);
    off += n;
    ++step;
  }
}

/* Checks that a peek at |off| gives exactly the bytes from |off| on. */
static void check_peek(prd_chunkbuf *b, uint64_t off) {
  struct iovec iov[4];
  size_t n = prd_chunkbuf_peek(b, off, iov, 4);
  uint64_t o = off;
  assert_true(n >= 1);
  for (size_t i = 0; i < n; ++i) {
    const uint8_t *q = iov[i].iov_base;
    assert_true(iov[i].iov_len > 0);
    for (size_t j = 0; j < iov[i].iov_len; j += 97) {
      assert_int_equal(q[j], (uint8_t)((o + j) % 251));
    }
    o += iov[i].iov_len;
  }
  assert_true(o <= b->tail_off);
  if (n < 4) {
    assert_int_equal(o, b->tail_off); /* everything up to the tail */
  }
}

/* The peek cursor (chunkbuf.h): a sender peeks at growing offsets while
 * ACKs release bytes behind it, freeing the chunk the cursor is on; a peek
 * behind the cursor still starts from the head. */
static void test_relay_chunkbuf_peek_cursor(void **state) {
  const uint64_t total = 6 * 1000 * 1000;
  prd_chunkbuf b;
  uint64_t sent = 0, acked = 0;
  unsigned round = 0;
  (void)state;

  prd_chunkbuf_init(&b, 0);
  while (acked < total) {
    /* Reads arrive as ACKs free room, reusing the chunks just freed. */
    uint64_t fill_to = acked + 1200000 < total ? acked + 1200000 : total;
    if (b.tail_off < fill_to) {
      fill_pattern(&b, fill_to);
    }
    while (sent < b.tail_off && sent - acked < 700000) {
      check_peek(&b, sent);
      sent += 1452 * 7;
      if (sent > b.tail_off) {
        sent = b.tail_off;
      }
    }
    /* An ACK catches up with the sender (all of it every third round):
     * the cursor's chunk is freed. */
    acked = sent - (++round % 3 == 0 ? 0 : 1000);
    prd_chunkbuf_release(&b, acked);
    if (acked < sent) {
      check_peek(&b, acked); /* behind the cursor */
    }
  }
  assert_int_equal(prd_chunkbuf_len(&b), 0);
  assert_null(b.head);
  assert_null(b.cur);
  /* A peek behind the cursor starts from the head. */
  fill_pattern(&b, b.tail_off + 200000);
  check_peek(&b, b.head_off + 150000);
  check_peek(&b, b.head_off + 10);
  prd_chunkbuf_free(&b);
  assert_null(b.cur);
}

static void test_relay_chunkbuf_accounting(void **state) {
  prd_chunkbuf b;
  size_t before = prd_chunk_bytes_in_use;
  uint8_t x[10] = {0};
  (void)state;
  prd_chunkbuf_init(&b, 0);
  assert_int_equal(prd_chunkbuf_append(&b, x, sizeof(x)), 0);
  assert_true(prd_chunk_bytes_in_use > before);
  prd_chunkbuf_release(&b, 10);
  assert_int_equal(prd_chunk_bytes_in_use, before);
}

static void fill_hdr(prd_stream_header *hd, int v6) {
  memset(hd, 0, sizeof(*hd));
  hd->version = 1;
  hd->has_src = hd->has_dst = 1;
  if (v6) {
    hd->src.family = hd->dst.family = 6;
    hd->src.addr[0] = 0x20;
    hd->src.addr[1] = 0x01;
    hd->src.addr[2] = 0x0d;
    hd->src.addr[3] = 0xb8;
    hd->src.addr[15] = 1;
    hd->dst.addr[15] = 1; /* ::1 */
  } else {
    const uint8_t s[4] = {203, 0, 113, 7}, d[4] = {192, 0, 2, 1};
    hd->src.family = hd->dst.family = 4;
    memcpy(hd->src.addr, s, 4);
    memcpy(hd->dst.addr, d, 4);
  }
  hd->src.port = 51234;
  hd->dst.port = 443;
}

/* HAProxy PROXY protocol spec, section 2.1 (v1 text). */
static void test_relay_proxy_v1(void **state) {
  prd_stream_header hd;
  uint8_t out[PRD_PROXY_MAX];
  size_t n;
  (void)state;
  fill_hdr(&hd, 0);
  n = prd_proxy_encode(out, sizeof(out), 1, &hd);
  assert_int_equal(n, strlen("PROXY TCP4 203.0.113.7 192.0.2.1 51234 443\r\n"));
  assert_memory_equal(out, "PROXY TCP4 203.0.113.7 192.0.2.1 51234 443\r\n", n);
  fill_hdr(&hd, 1);
  n = prd_proxy_encode(out, sizeof(out), 1, &hd);
  assert_memory_equal(out, "PROXY TCP6 2001:db8::1 ::1 51234 443\r\n", n);
  hd.has_dst = 0;
  n = prd_proxy_encode(out, sizeof(out), 1, &hd);
  assert_memory_equal(out, "PROXY UNKNOWN\r\n", n);
  assert_int_equal(prd_proxy_encode(out, 5, 1, &hd), 0);
  assert_int_equal(prd_proxy_encode(out, sizeof(out), 3, &hd), 0);
}

/* HAProxy PROXY protocol spec, section 2.2 (v2 binary). */
static void test_relay_proxy_v2(void **state) {
  static const uint8_t want4[] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a,
                                  0x51, 0x55, 0x49, 0x54, 0x0a, 0x21, 0x11,
                                  0x00, 0x0c, 203,  0,    113,  7,    192,
                                  0,    2,    1,    0xc8, 0x22, 0x01, 0xbb};
  prd_stream_header hd;
  uint8_t out[PRD_PROXY_MAX];
  size_t n;
  (void)state;
  fill_hdr(&hd, 0);
  n = prd_proxy_encode(out, sizeof(out), 2, &hd);
  assert_int_equal(n, sizeof(want4));
  assert_memory_equal(out, want4, n);
  fill_hdr(&hd, 1);
  n = prd_proxy_encode(out, sizeof(out), 2, &hd);
  assert_int_equal(n, 16 + 36);
  assert_int_equal(out[12], 0x21);
  assert_int_equal(out[13], 0x21);
  assert_int_equal(out[15], 36);
  hd.has_dst = 0;
  n = prd_proxy_encode(out, sizeof(out), 2, &hd);
  assert_int_equal(n, 16);
  assert_int_equal(out[12], 0x20); /* LOCAL */
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_relay_chunkbuf_stable_pointers),
      cmocka_unit_test(test_relay_chunkbuf_accounting),
      cmocka_unit_test(test_relay_chunkbuf_peek_cursor),
      cmocka_unit_test(test_relay_proxy_v1),
      cmocka_unit_test(test_relay_proxy_v2),
  };
  return cmocka_run_group_tests_name("relay", tests, NULL, NULL);
}
