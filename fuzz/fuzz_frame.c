/* SPDX-License-Identifier: GPL-3.0-only */
/* libFuzzer harness for control frames: one-shot decoding, the incremental
 * reader, and the decode -> encode -> decode property (spec/02-framing.md). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "codec/codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int frame_equal(const prd_frame *a, const prd_frame *b) {
  if (a->type != b->type) {
    return 0;
  }
  switch (a->type) {
  case PRD_FRAME_HELLO:
    return a->u.hello.version == b->u.hello.version &&
           a->u.hello.flags == b->u.hello.flags;
  case PRD_FRAME_AUTH_CHALLENGE:
    return a->u.challenge.version == b->u.challenge.version &&
           a->u.challenge.challengelen == b->u.challenge.challengelen &&
           memcmp(a->u.challenge.challenge, b->u.challenge.challenge,
                  a->u.challenge.challengelen) == 0;
  case PRD_FRAME_AUTH_RESPONSE:
    return memcmp(a->u.response.mac, b->u.response.mac, PRD_MAC_LEN) == 0;
  case PRD_FRAME_AUTH_RESULT:
    return a->u.result.status == b->u.result.status;
  case PRD_FRAME_GOAWAY:
    return a->u.goaway.error_code == b->u.goaway.error_code;
  default:
    return 0;
  }
}

/* check_frame: |fr| was decoded from the |len| bytes at |data|. Since every
 * varint must be minimal and every payload exact, the encoding is canonical:
 * re-encoding gives the same bytes, which decode to an equal frame. */
static void check_frame(const prd_frame *fr, const uint8_t *data, size_t len) {
  uint8_t out[PRD_FRAME_MAX_LEN];
  prd_frame again;
  prd_ssize n;

  if (len > PRD_FRAME_MAX_LEN) {
    abort();
  }
  if (fr->type == PRD_FRAME_AUTH_CHALLENGE &&
      (fr->u.challenge.challengelen < PRD_CHALLENGE_MIN ||
       fr->u.challenge.challengelen > PRD_CHALLENGE_MAX)) {
    abort();
  }
  n = prd_frame_encode(out, sizeof(out), fr);
  if (n < 0 || (size_t)n != len || memcmp(out, data, len) != 0) {
    abort();
  }
  if (prd_frame_encode(out, len - 1, fr) != PRD_ERR_NOBUF) {
    abort();
  }
  if (prd_frame_decode(&again, out, len) != n || !frame_equal(fr, &again)) {
    abort();
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  prd_frame_reader r;
  prd_frame fr;
  prd_frame ofr;
  size_t off = 0;  /* one-shot cursor */
  size_t roff = 0; /* reader cursor */
  size_t chunk;
  size_t end;
  prd_ssize n;
  prd_ssize oneshot_err;
  uint32_t seed;
  int ready;

  /* One-shot decoding loop, as a receiver with the whole input would. */
  for (;;) {
    n = prd_frame_decode(&fr, data + off, size - off);
    if (n < 0) {
      oneshot_err = n;
      break;
    }
    if (n == 0 || (size_t)n > size - off) {
      abort();
    }
    check_frame(&fr, data + off, (size_t)n);
    off += (size_t)n;
  }
  if (off == size && oneshot_err != PRD_ERR_NEED_MORE) {
    abort();
  }

  /* The same bytes through the reader in chunks whose sizes depend on the
   * input; it must give the same frames at the same offsets and the same
   * final error (or consume everything if the input just ends). */
  prd_frame_reader_init(&r);
  off = 0;
  seed = (uint32_t)size * 2654435761u + (size ? data[0] : 0);
  while (roff < size) {
    /* Mostly 1..12 bytes, sometimes everything that is left. */
    seed = seed * 1103515245u + 12345u;
    chunk = (seed >> 28) == 0 ? size : 1 + (seed >> 16) % 12;
    end = chunk < size - roff ? roff + chunk : size;
    while (roff < end) {
      n = prd_frame_reader_feed(&r, &fr, &ready, data + roff, end - roff);
      if (n < 0) {
        /* The error is the one-shot one, and shows in the first call
         * that gives the reader the bytes that reveal it. */
        if (n != oneshot_err ||
            prd_frame_decode(&ofr, data + off, end - off) != n ||
            prd_frame_decode(&ofr, data + off, roff - off) !=
                PRD_ERR_NEED_MORE) {
          abort();
        }
        return 0;
      }
      if ((size_t)n > end - roff) {
        abort();
      }
      roff += (size_t)n;
      if (ready) {
        n = prd_frame_decode(&ofr, data + off, size - off);
        if (n <= 0 || off + (size_t)n != roff || !frame_equal(&fr, &ofr)) {
          abort();
        }
        off = roff;
      } else if (roff != end) {
        abort();
      }
    }
  }
  /* Input used up without an error: what the reader holds is the
   * incomplete rest, which one-shot decoding also finds incomplete. */
  if (oneshot_err != PRD_ERR_NEED_MORE || r.len != size - off ||
      prd_frame_decode(&ofr, data + off, size - off) != PRD_ERR_NEED_MORE) {
    abort();
  }
  return 0;
}
