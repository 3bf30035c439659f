/* SPDX-License-Identifier: GPL-3.0-only */
/* libFuzzer harness for control frames: one-shot decoding, the incremental
 * reader, and the decode -> encode -> decode property (spec/02-framing.md),
 * each on a connection without features, on one where SERVICES was
 * negotiated (§3.1, §3.7) and on one where the client also offered
 * CLIENT_NAME (§3.3): every input runs each way, and what decodes without
 * features decodes alike with SERVICES. */
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
    return memcmp(a->u.response.mac, b->u.response.mac, PRD_MAC_LEN) == 0 &&
           a->u.response.namelen == b->u.response.namelen &&
           a->u.response.namelen <= PRD_CLIENT_NAME_MAX &&
           memcmp(a->u.response.name, b->u.response.name,
                  a->u.response.namelen) == 0;
  case PRD_FRAME_AUTH_RESULT:
    return a->u.result.status == b->u.result.status &&
           !a->u.result.has_flags == !b->u.result.has_flags &&
           (!a->u.result.has_flags || a->u.result.flags == b->u.result.flags);
  case PRD_FRAME_GOAWAY:
    return a->u.goaway.error_code == b->u.goaway.error_code;
  case PRD_FRAME_SERVICES:
    return a->u.services.count == b->u.services.count &&
           a->u.services.listlen == b->u.services.listlen &&
           a->u.services.listlen <= sizeof(a->u.services.list) &&
           memcmp(a->u.services.list, b->u.services.list,
                  a->u.services.listlen) == 0;
  case PRD_FRAME_SERVICE_REFUSED:
    return a->u.refused.error_code == b->u.refused.error_code &&
           a->u.refused.namelen == b->u.refused.namelen &&
           a->u.refused.namelen <= PRD_SERVICE_NAME_MAX &&
           memcmp(a->u.refused.name, b->u.refused.name,
                  a->u.refused.namelen + 1) == 0;
  default:
    return 0;
  }
}

/* check_frame: |fr| was decoded from the |len| bytes at |data|. Since every
 * varint must be minimal and every payload exact, the encoding is canonical:
 * re-encoding gives the same bytes, which decode to an equal frame. */
static void check_frame(const prd_frame *fr, const uint8_t *data, size_t len,
                        uint64_t features) {
  static prd_frame again;
  uint8_t out[PRD_FRAME_MAX_LEN];
  const char *name;
  size_t namelen;
  size_t off = 0;
  size_t count = 0;
  prd_ssize n;

  if (len > PRD_FRAME_MAX_LEN) {
    abort();
  }
  if (fr->type == PRD_FRAME_AUTH_CHALLENGE &&
      (fr->u.challenge.challengelen < PRD_CHALLENGE_MIN ||
       fr->u.challenge.challengelen > PRD_CHALLENGE_MAX)) {
    abort();
  }
  /* Frames that need SERVICES decode only with it; names are valid. */
  if ((fr->type == PRD_FRAME_SERVICES ||
       fr->type == PRD_FRAME_SERVICE_REFUSED) &&
      !(features & PRD_FLAG_SERVICES)) {
    abort();
  }
  if (fr->type == PRD_FRAME_AUTH_RESULT && fr->u.result.has_flags &&
      (features == 0 || (fr->u.result.flags & ~features) != 0)) {
    abort();
  }
  /* spec/02-framing.md §3.3: a Name exactly where CLIENT_NAME was
   * offered, of 1..64 bytes. */
  if (fr->type == PRD_FRAME_AUTH_RESPONSE &&
      ((features & PRD_FLAG_CLIENT_NAME)
           ? fr->u.response.namelen == 0 ||
                 fr->u.response.namelen > PRD_CLIENT_NAME_MAX
           : fr->u.response.namelen != 0)) {
    abort();
  }
  if (fr->type == PRD_FRAME_SERVICES) {
    while (prd_services_next(fr, &off, &name, &namelen)) {
      if (!prd_service_name_valid(name, namelen)) {
        abort();
      }
      ++count;
    }
    if (count == 0 || count != fr->u.services.count ||
        off != fr->u.services.listlen) {
      abort();
    }
  }
  if (fr->type == PRD_FRAME_SERVICE_REFUSED &&
      (!prd_service_name_valid(fr->u.refused.name, fr->u.refused.namelen) ||
       fr->u.refused.name[fr->u.refused.namelen] != '\0')) {
    abort();
  }
  n = prd_frame_encode(out, sizeof(out), fr);
  if (n < 0 || (size_t)n != len || memcmp(out, data, len) != 0) {
    abort();
  }
  if (prd_frame_encode(out, len - 1, fr) != PRD_ERR_NOBUF) {
    abort();
  }
  if (prd_frame_decode_ex(&again, out, len, features) != n ||
      !frame_equal(fr, &again)) {
    abort();
  }
  /* spec/02-framing.md §3.6: a frame of the first text decodes alike where
   * SERVICES was negotiated. */
  if (features == 0 &&
      (prd_frame_decode_ex(&again, out, len, PRD_FLAG_SERVICES) != n ||
       !frame_equal(fr, &again))) {
    abort();
  }
}

static void run(const uint8_t *data, size_t size, uint64_t features) {
  static prd_frame fr;
  static prd_frame ofr;
  prd_frame_reader r;
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
    n = prd_frame_decode_ex(&fr, data + off, size - off, features);
    if (n < 0) {
      oneshot_err = n;
      break;
    }
    if (n == 0 || (size_t)n > size - off) {
      abort();
    }
    check_frame(&fr, data + off, (size_t)n, features);
    off += (size_t)n;
  }
  if (off == size && oneshot_err != PRD_ERR_NEED_MORE) {
    abort();
  }

  /* The same bytes through the reader in chunks whose sizes depend on the
   * input; it must give the same frames at the same offsets and the same
   * final error (or consume everything if the input just ends). */
  prd_frame_reader_init(&r);
  prd_frame_reader_set_features(&r, features);
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
            prd_frame_decode_ex(&ofr, data + off, end - off, features) != n ||
            prd_frame_decode_ex(&ofr, data + off, roff - off, features) !=
                PRD_ERR_NEED_MORE) {
          abort();
        }
        return;
      }
      if ((size_t)n > end - roff) {
        abort();
      }
      roff += (size_t)n;
      if (ready) {
        n = prd_frame_decode_ex(&ofr, data + off, size - off, features);
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
      prd_frame_decode_ex(&ofr, data + off, size - off, features) !=
          PRD_ERR_NEED_MORE) {
    abort();
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  /* Today's binaries (no feature), then a connection with SERVICES. */
  run(data, size, 0);
  run(data, size, PRD_FLAG_SERVICES);
  run(data, size, PRD_FLAG_SERVICES | PRD_FLAG_CLIENT_NAME);
  return 0;
}
