/* SPDX-License-Identifier: GPL-3.0-only */
/* Unit tests for the frame codec (src/codec) against spec/02-framing.md and
 * the vectors in spec/test-vectors/. */
/* cmocka needs these first. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "codec/codec.h"
#include "helpers/vectors.h"

#define BUFLEN 4096

/* Input buffers are large enough for every vector (the longest is 1027). */
typedef struct bytes {
  size_t len;
  uint8_t data[BUFLEN];
} bytes;

static const struct {
  const char *name;
  int err;
} err_names[] = {
    {"NEED_MORE", PRD_ERR_NEED_MORE},
    {"FRAME_TOO_LARGE", PRD_ERR_FRAME_TOO_LARGE},
    {"FRAME_UNKNOWN", PRD_ERR_FRAME_UNKNOWN},
    {"FRAME_ENCODING", PRD_ERR_FRAME_ENCODING},
    {"VARINT_NONMINIMAL", PRD_ERR_VARINT_NONMINIMAL},
    {"HEADER_ENCODING", PRD_ERR_HEADER_ENCODING},
    {"VERSION", PRD_ERR_VERSION},
};

/* err_of returns the prd_err named by the block's "error" field. */
static int err_of(const prd_tv_block *b) {
  const char *name = prd_tv_get(b, "error");
  size_t i;

  assert_non_null(name);
  for (i = 0; i < sizeof(err_names) / sizeof(err_names[0]); ++i) {
    if (strcmp(err_names[i].name, name) == 0) {
      return err_names[i].err;
    }
  }
  fail_msg("%s: unknown error name %s", prd_tv_name(b), name);
  return 0;
}

static void load(prd_tv_file *vf, const char *name) {
  assert_int_equal(prd_tv_load(vf, name), 0);
  assert_true(vf->nblocks > 0);
}

static void get_hex(const prd_tv_block *b, const char *key, bytes *out) {
  assert_int_equal(
      prd_tv_get_hex(b, key, out->data, sizeof(out->data), &out->len), 0);
}

static uint64_t get_u64(const prd_tv_block *b, const char *key) {
  uint64_t v = 0;

  assert_int_equal(prd_tv_get_u64(b, key, &v), 0);
  return v;
}

/* features_of returns the block's "features" (the HELLO Flags of the
 * connection a frame is decoded on), or 0. */
static uint64_t features_of(const prd_tv_block *b) {
  return prd_tv_get(b, "features") != NULL ? get_u64(b, "features") : 0;
}

/* frame_equal compares the meaningful fields of two frames. */
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
           memcmp(a->u.refused.name, b->u.refused.name, a->u.refused.namelen) ==
               0;
  default:
    return 0;
  }
}

/* services_of fills a SERVICES frame from names separated by spaces. */
static void services_of(prd_frame *fr, const char *text) {
  const char *p = text;
  size_t len;

  assert_non_null(text);
  fr->type = PRD_FRAME_SERVICES;
  while (*p != '\0') {
    len = strcspn(p, " ");
    assert_int_equal(prd_services_add(fr, p, len), 0);
    p += len;
    p += strspn(p, " ");
  }
}

/* frame_of builds the frame described by a "frame" vector. */
static void frame_of(prd_frame *fr, const prd_tv_block *b) {
  const char *text;
  bytes v;

  memset(fr, 0, sizeof(*fr));
  fr->type = get_u64(b, "type");
  switch (fr->type) {
  case PRD_FRAME_HELLO:
    fr->u.hello.version = get_u64(b, "version");
    fr->u.hello.flags = get_u64(b, "flags");
    break;
  case PRD_FRAME_AUTH_CHALLENGE:
    fr->u.challenge.version = get_u64(b, "version");
    get_hex(b, "challenge", &v);
    assert_in_range(v.len, PRD_CHALLENGE_MIN, PRD_CHALLENGE_MAX);
    fr->u.challenge.challengelen = v.len;
    memcpy(fr->u.challenge.challenge, v.data, v.len);
    break;
  case PRD_FRAME_AUTH_RESPONSE:
    get_hex(b, "mac", &v);
    assert_int_equal(v.len, PRD_MAC_LEN);
    memcpy(fr->u.response.mac, v.data, v.len);
    /* spec/02-framing.md §3.3: the Name, with CLIENT_NAME. */
    text = prd_tv_get(b, "client-name");
    if (text != NULL) {
      fr->u.response.namelen = strlen(text);
      assert_in_range(fr->u.response.namelen, 1, PRD_CLIENT_NAME_MAX);
      memcpy(fr->u.response.name, text, fr->u.response.namelen + 1);
    }
    break;
  case PRD_FRAME_AUTH_RESULT:
    fr->u.result.status = get_u64(b, "status");
    if (prd_tv_get(b, "flags") != NULL) {
      fr->u.result.has_flags = 1;
      fr->u.result.flags = get_u64(b, "flags");
    }
    break;
  case PRD_FRAME_GOAWAY:
    fr->u.goaway.error_code = get_u64(b, "error-code");
    break;
  case PRD_FRAME_SERVICES:
    services_of(fr, prd_tv_get(b, "services"));
    break;
  case PRD_FRAME_SERVICE_REFUSED:
    text = prd_tv_get(b, "service");
    assert_non_null(text);
    fr->u.refused.error_code = get_u64(b, "error-code");
    fr->u.refused.namelen = strlen(text);
    assert_in_range(fr->u.refused.namelen, 1, PRD_SERVICE_NAME_MAX);
    memcpy(fr->u.refused.name, text, fr->u.refused.namelen + 1);
    break;
  default:
    fail_msg("%s: bad type", prd_tv_name(b));
  }
}

static int addr_equal(const prd_addr *a, const prd_addr *b) {
  size_t n = a->family == 4 ? 4 : 16;

  return a->family == b->family && a->port == b->port &&
         memcmp(a->addr, b->addr, n) == 0;
}

static int header_equal(const prd_stream_header *a,
                        const prd_stream_header *b) {
  if (a->version != b->version || !a->has_src != !b->has_src ||
      !a->has_dst != !b->has_dst || !a->has_service != !b->has_service ||
      !a->has_port_offset != !b->has_port_offset) {
    return 0;
  }
  if (a->has_service &&
      (a->servicelen != b->servicelen || a->servicelen > PRD_SERVICE_NAME_MAX ||
       memcmp(a->service, b->service, a->servicelen) != 0)) {
    return 0;
  }
  if (a->has_port_offset && a->port_offset != b->port_offset) {
    return 0;
  }
  if (a->has_src && !addr_equal(&a->src, &b->src)) {
    return 0;
  }
  if (a->has_dst && !addr_equal(&a->dst, &b->dst)) {
    return 0;
  }
  return 1;
}

/* addr_of reads "<role>-family", "<role>-address", "<role>-port". Returns 0
 * if the block has no such address. */
static int addr_of(prd_addr *a, const prd_tv_block *b, const char *role) {
  char key[64];
  const char *text;
  uint64_t v;

  snprintf(key, sizeof(key), "%s-address", role);
  text = prd_tv_get(b, key);
  if (text == NULL) {
    return 0;
  }
  memset(a, 0, sizeof(*a));
  snprintf(key, sizeof(key), "%s-family", role);
  v = get_u64(b, key);
  assert_true(v == 4 || v == 6);
  a->family = (uint8_t)v;
  assert_int_equal(inet_pton(v == 4 ? AF_INET : AF_INET6, text, a->addr), 1);
  snprintf(key, sizeof(key), "%s-port", role);
  v = get_u64(b, key);
  assert_true(v <= 65535);
  a->port = (uint16_t)v;
  return 1;
}

static void header_of(prd_stream_header *hd, const prd_tv_block *b) {
  const char *text;
  uint64_t v;

  memset(hd, 0, sizeof(*hd));
  hd->version = get_u64(b, "version");
  hd->has_src = addr_of(&hd->src, b, "source");
  hd->has_dst = addr_of(&hd->dst, b, "destination");
  assert_true(hd->has_src);
  text = prd_tv_get(b, "service");
  if (text != NULL) {
    hd->has_service = 1;
    hd->servicelen = strlen(text);
    assert_in_range(hd->servicelen, 1, PRD_SERVICE_NAME_MAX);
    memcpy(hd->service, text, hd->servicelen + 1);
  }
  if (prd_tv_get(b, "port-offset") != NULL) {
    hd->has_port_offset = 1;
    v = get_u64(b, "port-offset");
    assert_true(v <= PRD_PORT_OFFSET_MAX);
    hd->port_offset = (uint16_t)v;
  }
}

/* first_stop returns the length of the shortest prefix of |in| on which
 * |decode| returns something other than PRD_ERR_NEED_MORE, or in->len + 1
 * when there is none. */
static size_t first_stop_frame(const bytes *in, uint64_t features) {
  prd_frame fr;
  size_t n;

  for (n = 0; n <= in->len; ++n) {
    if (prd_frame_decode_ex(&fr, in->data, n, features) != PRD_ERR_NEED_MORE) {
      return n;
    }
  }
  return in->len + 1;
}

/* Varints ----------------------------------------------------------------- */

/* spec/02-framing.md §2: every valid vector encodes and decodes byte for
 * byte, every truncation needs more, every short output buffer is refused;
 * every invalid vector is refused with its error. */
static void test_codec_varint_vectors(void **state) {
  prd_tv_file vf;
  bytes enc;
  uint8_t out[16];
  uint64_t value;
  uint64_t got;
  size_t i;
  size_t n;
  size_t nvalid = 0;
  size_t ninvalid = 0;

  (void)state;
  load(&vf, "varints.txt");
  for (i = 0; i < vf.nblocks; ++i) {
    const prd_tv_block *b = &vf.blocks[i];

    if (prd_tv_is_kind(b, "invalid-varint")) {
      get_hex(b, "encoded", &enc);
      got = 0x1234;
      assert_int_equal(prd_varint_decode(&got, enc.data, enc.len), err_of(b));
      assert_true(got == 0x1234);
      ++ninvalid;
      continue;
    }
    assert_true(prd_tv_is_kind(b, "varint"));
    ++nvalid;
    value = get_u64(b, "value");
    get_hex(b, "encoded", &enc);
    assert_int_equal(prd_varint_len(value), enc.len);
    assert_int_equal(prd_varint_encode(out, sizeof(out), value), enc.len);
    assert_memory_equal(out, enc.data, enc.len);
    got = 0;
    assert_int_equal(prd_varint_decode(&got, enc.data, enc.len), enc.len);
    assert_true(got == value);
    for (n = 0; n < enc.len; ++n) {
      got = 7;
      assert_int_equal(prd_varint_decode(&got, enc.data, n), PRD_ERR_NEED_MORE);
      assert_true(got == 7);
      assert_int_equal(prd_varint_encode(out, n, value), PRD_ERR_NOBUF);
    }
  }
  assert_true(nvalid > 0 && ninvalid > 0);
  prd_tv_free(&vf);
}

/* spec/02-framing.md §2: values at every length boundary round-trip; every
 * longer-than-needed encoding is refused; values above 2^62-1 have none. */
static void test_codec_varint_limits(void **state) {
  static const uint64_t values[] = {0,
                                    1,
                                    63,
                                    64,
                                    16383,
                                    16384,
                                    1073741823,
                                    1073741824,
                                    0x123456789abcdefULL,
                                    PRD_VARINT_MAX};
  static const size_t lens[] = {1, 2, 4, 8};
  uint8_t buf[8];
  uint64_t got;
  size_t i;
  size_t j;
  size_t k;
  size_t len;
  uint64_t v;

  (void)state;
  for (i = 0; i < sizeof(values) / sizeof(values[0]); ++i) {
    len = prd_varint_len(values[i]);
    assert_int_equal(prd_varint_encode(buf, sizeof(buf), values[i]), len);
    assert_int_equal(prd_varint_decode(&got, buf, sizeof(buf)), len);
    assert_true(got == values[i]);
    /* The same value in each longer encoding is non-minimal. */
    for (j = 0; j < 4; ++j) {
      if (lens[j] <= len) {
        continue;
      }
      v = values[i];
      for (k = lens[j]; k > 0; --k) {
        buf[k - 1] = (uint8_t)(v & 0xff);
        v >>= 8;
      }
      buf[0] = (uint8_t)(buf[0] | (j << 6));
      got = 7;
      assert_int_equal(prd_varint_decode(&got, buf, lens[j]),
                       PRD_ERR_VARINT_NONMINIMAL);
      assert_true(got == 7);
    }
  }
  assert_int_equal(prd_varint_len(PRD_VARINT_MAX + 1), 0);
  assert_int_equal(prd_varint_encode(buf, sizeof(buf), PRD_VARINT_MAX + 1),
                   PRD_ERR_INVAL);
  assert_int_equal(prd_varint_encode(buf, sizeof(buf), UINT64_MAX),
                   PRD_ERR_INVAL);
  assert_int_equal(prd_varint_decode(&got, NULL, 0), PRD_ERR_NEED_MORE);
}

/* Control frames ---------------------------------------------------------- */

/* spec/02-framing.md §3, §3.1-§3.5, §3.7, §3.8: every frame vector encodes
 * to its bytes and its bytes decode to its fields, with the features the
 * vector names; a frame of the first text decodes alike with SERVICES.
 * §3.3: an AUTH_RESPONSE with a Name needs CLIENT_NAME. */
static void test_codec_frame_vectors(void **state) {
  prd_tv_file vf;
  prd_frame want;
  prd_frame got;
  bytes enc;
  uint8_t out[BUFLEN];
  uint64_t feat;
  prd_ssize n;
  size_t i;

  (void)state;
  load(&vf, "frames.txt");
  for (i = 0; i < vf.nblocks; ++i) {
    const prd_tv_block *b = &vf.blocks[i];

    assert_true(prd_tv_is_kind(b, "frame"));
    frame_of(&want, b);
    get_hex(b, "encoded", &enc);
    assert_int_equal(prd_frame_encode(out, sizeof(out), &want), enc.len);
    assert_memory_equal(out, enc.data, enc.len);
    /* Exactly enough room works; one byte less does not. */
    assert_int_equal(prd_frame_encode(out, enc.len, &want), enc.len);
    assert_int_equal(prd_frame_encode(out, enc.len - 1, &want), PRD_ERR_NOBUF);
    feat = features_of(b);
    memset(&got, 0xa5, sizeof(got));
    assert_int_equal(prd_frame_decode_ex(&got, enc.data, enc.len, feat),
                     enc.len);
    if (!frame_equal(&got, &want)) {
      fail_msg("%s: decoded fields differ", prd_tv_name(b));
    }
    /* Bytes after the frame are not consumed. */
    enc.data[enc.len] = 0x01;
    assert_int_equal(prd_frame_decode_ex(&got, enc.data, enc.len + 1, feat),
                     enc.len);
    /* spec/02-framing.md §3.6: with SERVICES, the frames of the first text
     * are unchanged; without, the new ones are unknown or malformed. */
    n = prd_frame_decode_ex(&got, enc.data, enc.len, PRD_FLAG_SERVICES);
    if (want.type == PRD_FRAME_AUTH_RESPONSE) {
      /* With a Name: malformed unless CLIENT_NAME was offered, and a bare
       * MAC malformed when it was. */
      assert_int_equal(n, want.u.response.namelen > 0 ? PRD_ERR_FRAME_ENCODING
                                                      : (prd_ssize)enc.len);
      n = prd_frame_decode_ex(&got, enc.data, enc.len,
                              PRD_FLAG_SERVICES | PRD_FLAG_CLIENT_NAME);
      assert_int_equal(n, want.u.response.namelen > 0 ? (prd_ssize)enc.len
                                                      : PRD_ERR_FRAME_ENCODING);
      continue;
    }
    if (want.type == PRD_FRAME_AUTH_RESULT && want.u.result.has_flags &&
        (want.u.result.flags & ~PRD_FLAG_SERVICES) != 0) {
      assert_int_equal(n, PRD_ERR_FRAME_ENCODING);
      continue;
    }
    assert_int_equal(n, enc.len);
    assert_true(frame_equal(&got, &want));
    n = prd_frame_decode(&got, enc.data, enc.len);
    if (want.type == PRD_FRAME_SERVICES ||
        want.type == PRD_FRAME_SERVICE_REFUSED) {
      assert_int_equal(n, PRD_ERR_FRAME_UNKNOWN);
    } else if (want.type == PRD_FRAME_AUTH_RESULT && want.u.result.has_flags) {
      assert_int_equal(n, PRD_ERR_FRAME_ENCODING);
    } else {
      assert_int_equal(n, enc.len);
    }
  }
  prd_tv_free(&vf);
}

/* spec/02-framing.md §3: a frame cut at any length needs more bytes, and
 * the output is not written. */
static void test_codec_frame_truncation(void **state) {
  prd_tv_file vf;
  prd_frame fr;
  prd_frame canary;
  bytes enc;
  size_t i;
  size_t n;

  (void)state;
  load(&vf, "frames.txt");
  memset(&canary, 0x5a, sizeof(canary));
  for (i = 0; i < vf.nblocks; ++i) {
    get_hex(&vf.blocks[i], "encoded", &enc);
    for (n = 0; n < enc.len; ++n) {
      fr = canary;
      assert_int_equal(
          prd_frame_decode_ex(&fr, enc.data, n, features_of(&vf.blocks[i])),
          PRD_ERR_NEED_MORE);
      assert_memory_equal(&fr, &canary, sizeof(fr));
    }
  }
  prd_tv_free(&vf);
}

/* spec/02-framing.md §3.1-§3.5: frames with boundary values round-trip. */
static void test_codec_frame_roundtrip(void **state) {
  static const uint64_t values[] = {
      0, 1, 63, 64, 16383, 16384, 1073741823, 1073741824, 6, PRD_VARINT_MAX};
  const size_t nv = sizeof(values) / sizeof(values[0]);
  prd_frame fr;
  prd_frame got;
  uint8_t out[BUFLEN];
  uint8_t again[BUFLEN];
  prd_ssize n;
  size_t count = 0;
  size_t i;
  size_t j;
  size_t len;

  (void)state;
  for (i = 0; i < nv; ++i) {
    for (j = 0; j < nv + PRD_CHALLENGE_MAX + 2; ++j) {
      memset(&fr, 0, sizeof(fr));
      switch (j % 5) {
      case 0:
        fr.type = PRD_FRAME_HELLO;
        fr.u.hello.version = values[i];
        fr.u.hello.flags = values[j % nv];
        break;
      case 1:
        fr.type = PRD_FRAME_AUTH_CHALLENGE;
        fr.u.challenge.version = values[i];
        len =
            PRD_CHALLENGE_MIN + j % (PRD_CHALLENGE_MAX - PRD_CHALLENGE_MIN + 1);
        fr.u.challenge.challengelen = len;
        memset(fr.u.challenge.challenge, (int)(i * 7 + j), len);
        break;
      case 2:
        fr.type = PRD_FRAME_AUTH_RESPONSE;
        memset(fr.u.response.mac, (int)(i + j), PRD_MAC_LEN);
        fr.u.response.mac[0] = (uint8_t)i;
        break;
      case 3:
        fr.type = PRD_FRAME_AUTH_RESULT;
        fr.u.result.status = values[i];
        break;
      default:
        fr.type = PRD_FRAME_GOAWAY;
        fr.u.goaway.error_code = values[i];
        break;
      }
      n = prd_frame_encode(out, sizeof(out), &fr);
      assert_true(n > 0 && n <= PRD_FRAME_MAX_LEN);
      assert_int_equal(prd_frame_decode(&got, out, (size_t)n), n);
      assert_true(frame_equal(&fr, &got));
      assert_int_equal(prd_frame_encode(again, sizeof(again), &got), n);
      assert_memory_equal(out, again, (size_t)n);
      ++count;
    }
  }
  /* Every challenge length from 32 to 64 was covered. */
  assert_true(count > nv * (PRD_CHALLENGE_MAX - PRD_CHALLENGE_MIN));
}

/* spec/02-framing.md §3, §5: Length > 1024 is refused as soon as Length is
 * complete, before any payload; Length 1024 is within the limit. */
static void test_codec_frame_too_large(void **state) {
  static const uint8_t lens[][8] = {
      {0x44, 0x01}, /* 1025 */
      {0x7f, 0xff}, /* 16383 */
      {0x80, 0x00, 0x40, 0x00},
      {0xc0, 0, 0, 0, 0x40, 0, 0, 0},
      {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}};
  static const size_t lenlens[] = {2, 2, 4, 8, 8};
  uint8_t buf[BUFLEN];
  prd_frame fr;
  uint64_t type;
  size_t i;

  (void)state;
  for (type = PRD_FRAME_HELLO; type <= PRD_FRAME_GOAWAY; ++type) {
    for (i = 0; i < sizeof(lenlens) / sizeof(lenlens[0]); ++i) {
      buf[0] = (uint8_t)type;
      memcpy(buf + 1, lens[i], lenlens[i]);
      assert_int_equal(prd_frame_decode(&fr, buf, 1 + lenlens[i]),
                       PRD_ERR_FRAME_TOO_LARGE);
      assert_int_equal(prd_frame_decode(&fr, buf, lenlens[i]),
                       PRD_ERR_NEED_MORE);
    }
    /* Length 1024: within the limit, so the payload is awaited. */
    memset(buf, 0, sizeof(buf));
    buf[0] = (uint8_t)type;
    buf[1] = 0x44;
    buf[2] = 0x00;
    buf[3] = 0x01;
    assert_int_equal(prd_frame_decode(&fr, buf, 3 + 1023), PRD_ERR_NEED_MORE);
    assert_int_equal(prd_frame_decode(&fr, buf, 3 + 1024),
                     PRD_ERR_FRAME_ENCODING);
  }
}

/* spec/02-framing.md §3: an unknown Type is refused as soon as Type is
 * complete. */
static void test_codec_frame_unknown_type(void **state) {
  uint8_t buf[16];
  prd_frame fr;
  prd_frame canary;
  unsigned t;

  (void)state;
  memset(&canary, 0x5a, sizeof(canary));
  for (t = 0; t < 0x40; ++t) {
    buf[0] = (uint8_t)t;
    buf[1] = 0x00;
    fr = canary;
    if (t >= PRD_FRAME_HELLO && t <= PRD_FRAME_GOAWAY) {
      assert_int_equal(prd_frame_decode(&fr, buf, 1), PRD_ERR_NEED_MORE);
    } else {
      assert_int_equal(prd_frame_decode(&fr, buf, 1), PRD_ERR_FRAME_UNKNOWN);
      assert_int_equal(prd_frame_decode(&fr, buf, 2), PRD_ERR_FRAME_UNKNOWN);
    }
    assert_memory_equal(&fr, &canary, sizeof(fr));
  }
  /* Minimal 2-, 4- and 8-byte types. */
  buf[0] = 0x40;
  buf[1] = 0x40;
  assert_int_equal(prd_frame_decode(&fr, buf, 1), PRD_ERR_NEED_MORE);
  assert_int_equal(prd_frame_decode(&fr, buf, 2), PRD_ERR_FRAME_UNKNOWN);
  memcpy(buf, "\x80\x00\x40\x00", 4);
  assert_int_equal(prd_frame_decode(&fr, buf, 3), PRD_ERR_NEED_MORE);
  assert_int_equal(prd_frame_decode(&fr, buf, 4), PRD_ERR_FRAME_UNKNOWN);
  memset(buf, 0xff, 8);
  assert_int_equal(prd_frame_decode(&fr, buf, 8), PRD_ERR_FRAME_UNKNOWN);
}

/* put_varint_n writes |v| in exactly |n| bytes (minimal or not). */
static size_t put_varint_n(uint8_t *p, uint64_t v, size_t n) {
  size_t k;
  uint8_t prefix = n == 1 ? 0x00 : n == 2 ? 0x40 : n == 4 ? 0x80 : 0xc0;

  for (k = n; k > 0; --k) {
    p[k - 1] = (uint8_t)(v & 0xff);
    v >>= 8;
  }
  p[0] = (uint8_t)(p[0] | prefix);
  return n;
}

/* spec/02-framing.md §2: a non-minimal varint anywhere in a frame (Type,
 * Length, each payload field) is refused. */
static void test_codec_frame_nonminimal(void **state) {
  static const size_t widths[] = {2, 4, 8};
  uint8_t buf[64];
  prd_frame fr;
  size_t w;
  size_t n;
  size_t pos;

  (void)state;
  for (w = 0; w < 3; ++w) {
    /* Type: HELLO 1 1 with Type in a wide form. */
    n = put_varint_n(buf, PRD_FRAME_HELLO, widths[w]);
    memcpy(buf + n, "\x02\x01\x00", 3);
    assert_int_equal(prd_frame_decode(&fr, buf, n + 3),
                     PRD_ERR_VARINT_NONMINIMAL);
    /* Length. */
    buf[0] = PRD_FRAME_HELLO;
    n = 1 + put_varint_n(buf + 1, 2, widths[w]);
    memcpy(buf + n, "\x01\x00", 2);
    assert_int_equal(prd_frame_decode(&fr, buf, n + 2),
                     PRD_ERR_VARINT_NONMINIMAL);
    /* HELLO Version, then Flags (spec/02-framing.md §3.1). */
    for (pos = 0; pos < 2; ++pos) {
      buf[0] = PRD_FRAME_HELLO;
      buf[1] = (uint8_t)(1 + widths[w]);
      n = 2;
      if (pos == 0) {
        n += put_varint_n(buf + n, 1, widths[w]);
        buf[n++] = 0;
      } else {
        buf[n++] = 1;
        n += put_varint_n(buf + n, 0, widths[w]);
      }
      assert_int_equal(prd_frame_decode(&fr, buf, n),
                       PRD_ERR_VARINT_NONMINIMAL);
    }
    /* AUTH_CHALLENGE Version (spec/02-framing.md §3.2). */
    buf[0] = PRD_FRAME_AUTH_CHALLENGE;
    buf[1] = (uint8_t)(widths[w] + PRD_CHALLENGE_MIN);
    n = 2 + put_varint_n(buf + 2, 1, widths[w]);
    memset(buf + n, 0xcc, PRD_CHALLENGE_MIN);
    assert_int_equal(prd_frame_decode(&fr, buf, n + PRD_CHALLENGE_MIN),
                     PRD_ERR_VARINT_NONMINIMAL);
    /* AUTH_RESULT Status and GOAWAY Error Code (§3.4, §3.5). */
    buf[0] = PRD_FRAME_AUTH_RESULT;
    buf[1] = (uint8_t)widths[w];
    n = 2 + put_varint_n(buf + 2, 0, widths[w]);
    assert_int_equal(prd_frame_decode(&fr, buf, n), PRD_ERR_VARINT_NONMINIMAL);
    buf[0] = PRD_FRAME_GOAWAY;
    assert_int_equal(prd_frame_decode(&fr, buf, n), PRD_ERR_VARINT_NONMINIMAL);
  }
}

/* spec/02-framing.md §3-§3.5: payloads of the wrong size for their type are
 * malformed, whatever their content. */
static void test_codec_frame_malformed(void **state) {
  uint8_t buf[256];
  prd_frame fr;
  size_t len;

  (void)state;
  for (len = 0; len <= 100; ++len) {
    /* AUTH_CHALLENGE: Version 1 then len - 1 bytes of challenge. */
    buf[0] = PRD_FRAME_AUTH_CHALLENGE;
    buf[1] = 0x40;
    buf[2] = (uint8_t)len;
    buf[3] = 0x01;
    memset(buf + 4, 0xee, sizeof(buf) - 4);
    if (len >= 1 + PRD_CHALLENGE_MIN && len <= 1 + PRD_CHALLENGE_MAX) {
      continue;
    }
    /* A 2-byte Length below 64 would be non-minimal; use 1 byte there. */
    if (len < 64) {
      buf[1] = (uint8_t)len;
      memmove(buf + 2, buf + 3, sizeof(buf) - 3);
      assert_int_equal(prd_frame_decode(&fr, buf, 2 + len),
                       PRD_ERR_FRAME_ENCODING);
    } else {
      assert_int_equal(prd_frame_decode(&fr, buf, 3 + len),
                       PRD_ERR_FRAME_ENCODING);
    }
  }
  /* AUTH_RESPONSE: only exactly 32 bytes (spec/02-framing.md §3.3). */
  for (len = 0; len < 64; ++len) {
    buf[0] = PRD_FRAME_AUTH_RESPONSE;
    buf[1] = (uint8_t)len;
    memset(buf + 2, 0x33, len);
    assert_int_equal(prd_frame_decode(&fr, buf, 2 + len),
                     len == PRD_MAC_LEN ? (prd_ssize)(2 + len)
                                        : PRD_ERR_FRAME_ENCODING);
  }
  /* HELLO, AUTH_RESULT, GOAWAY: trailing bytes after the last field, and
   * an empty payload (spec/02-framing.md §3.1, §3.4, §3.5). */
  for (len = 0; len < 20; ++len) {
    memset(buf, 0, sizeof(buf));
    buf[0] = PRD_FRAME_HELLO;
    buf[1] = (uint8_t)(2 + len);
    buf[2] = 1;
    assert_int_equal(prd_frame_decode(&fr, buf, 4 + len),
                     len == 0 ? 4 : PRD_ERR_FRAME_ENCODING);
    buf[0] = PRD_FRAME_AUTH_RESULT;
    buf[1] = (uint8_t)(1 + len);
    assert_int_equal(prd_frame_decode(&fr, buf, 3 + len),
                     len == 0 ? 3 : PRD_ERR_FRAME_ENCODING);
    buf[0] = PRD_FRAME_GOAWAY;
    assert_int_equal(prd_frame_decode(&fr, buf, 3 + len),
                     len == 0 ? 3 : PRD_ERR_FRAME_ENCODING);
  }
  for (buf[0] = PRD_FRAME_HELLO; buf[0] <= PRD_FRAME_GOAWAY; ++buf[0]) {
    buf[1] = 0;
    assert_int_equal(prd_frame_decode(&fr, buf, 2), PRD_ERR_FRAME_ENCODING);
  }
}

/* spec/02-framing.md §3: the encoder refuses frames the spec forbids, and
 * output buffers that are too small. */
static void test_codec_frame_encode_errors(void **state) {
  uint8_t out[BUFLEN];
  prd_frame fr;
  prd_ssize n;
  size_t len;

  (void)state;
  memset(&fr, 0, sizeof(fr));
  fr.type = 0;
  assert_int_equal(prd_frame_encode(out, sizeof(out), &fr), PRD_ERR_INVAL);
  fr.type = 6;
  assert_int_equal(prd_frame_encode(out, sizeof(out), &fr), PRD_ERR_INVAL);
  fr.type = PRD_VARINT_MAX + 1;
  assert_int_equal(prd_frame_encode(out, sizeof(out), &fr), PRD_ERR_INVAL);
  /* spec/02-framing.md §3.2: challenge length 32..64. */
  fr.type = PRD_FRAME_AUTH_CHALLENGE;
  fr.u.challenge.version = 1;
  for (len = 0; len <= 80; ++len) {
    fr.u.challenge.challengelen = len;
    n = prd_frame_encode(out, sizeof(out), &fr);
    if (len >= PRD_CHALLENGE_MIN && len <= PRD_CHALLENGE_MAX) {
      assert_true(n > 0);
    } else {
      assert_int_equal(n, PRD_ERR_INVAL);
    }
  }
  fr.u.challenge.challengelen = PRD_CHALLENGE_MIN;
  fr.u.challenge.version = PRD_VARINT_MAX + 1;
  assert_int_equal(prd_frame_encode(out, sizeof(out), &fr), PRD_ERR_INVAL);
  memset(&fr, 0, sizeof(fr));
  fr.type = PRD_FRAME_HELLO;
  fr.u.hello.flags = UINT64_MAX;
  assert_int_equal(prd_frame_encode(out, sizeof(out), &fr), PRD_ERR_INVAL);
  fr.u.hello.flags = 0;
  fr.u.hello.version = PRD_VARINT_MAX + 1;
  assert_int_equal(prd_frame_encode(out, sizeof(out), &fr), PRD_ERR_INVAL);
  fr.type = PRD_FRAME_AUTH_RESULT;
  fr.u.result.status = PRD_VARINT_MAX + 1;
  assert_int_equal(prd_frame_encode(out, sizeof(out), &fr), PRD_ERR_INVAL);
  fr.type = PRD_FRAME_GOAWAY;
  fr.u.goaway.error_code = PRD_VARINT_MAX + 1;
  assert_int_equal(prd_frame_encode(out, sizeof(out), &fr), PRD_ERR_INVAL);
  /* Every too-small buffer, for the longest frame. */
  memset(&fr, 0, sizeof(fr));
  fr.type = PRD_FRAME_AUTH_CHALLENGE;
  fr.u.challenge.version = PRD_VARINT_MAX;
  fr.u.challenge.challengelen = PRD_CHALLENGE_MAX;
  n = prd_frame_encode(out, sizeof(out), &fr);
  assert_int_equal(n, 1 + 2 + 8 + PRD_CHALLENGE_MAX);
  for (len = 0; len < (size_t)n; ++len) {
    assert_int_equal(prd_frame_encode(out, len, &fr), PRD_ERR_NOBUF);
  }
  /* The encoder writes nothing past what it reports. */
  memset(out, 0x77, sizeof(out));
  n = prd_frame_encode(out, sizeof(out), &fr);
  assert_int_equal(out[n], 0x77);
}

/* all_frames concatenates every frames.txt vector into |all| and returns
 * the number of frames. */
static size_t all_frames(bytes *all, prd_frame *frames, size_t max,
                         uint64_t features) {
  prd_tv_file vf;
  bytes enc;
  size_t i;
  size_t n = 0;

  load(&vf, "frames.txt");
  assert_true(vf.nblocks <= max);
  all->len = 0;
  for (i = 0; i < vf.nblocks; ++i) {
    /* Without features, only the frames that need none. */
    if ((features_of(&vf.blocks[i]) & ~features) != 0) {
      continue;
    }
    get_hex(&vf.blocks[i], "encoded", &enc);
    assert_true(all->len + enc.len <= sizeof(all->data));
    memcpy(all->data + all->len, enc.data, enc.len);
    all->len += enc.len;
    frame_of(&frames[n++], &vf.blocks[i]);
  }
  prd_tv_free(&vf);
  return n;
}

/* feed_chunks feeds |in| to a reader in chunks of |chunk| bytes and checks
 * that exactly |want| comes out, in order, with nothing left over. */
static void feed_chunks(const bytes *in, size_t chunk, const prd_frame *want,
                        size_t nwant, uint64_t features) {
  prd_frame_reader r;
  prd_frame fr;
  size_t off = 0;
  size_t end;
  size_t got = 0;
  prd_ssize n;
  int ready;

  prd_frame_reader_init(&r);
  prd_frame_reader_set_features(&r, features);
  while (off < in->len) {
    end = off + chunk < in->len ? off + chunk : in->len;
    while (off < end) {
      n = prd_frame_reader_feed(&r, &fr, &ready, in->data + off, end - off);
      assert_true(n >= 0 && (size_t)n <= end - off);
      off += (size_t)n;
      if (ready) {
        assert_true(got < nwant);
        assert_true(frame_equal(&fr, &want[got]));
        ++got;
      } else {
        /* Not ready only when the chunk is used up. */
        assert_int_equal(off, end);
      }
    }
  }
  assert_int_equal(got, nwant);
  assert_int_equal(r.len, 0);
}

/* spec/02-framing.md §3: frames fed one byte at a time, or in chunks of any
 * size, come out as one-shot decoding gives them, back to back. */
static void test_codec_frame_reader_chunks(void **state) {
  static bytes all;
  static prd_frame want[64];
  static prd_frame oneshot[64];
  static const uint64_t feats[] = {0, PRD_FLAG_SERVICES};
  size_t nwant;
  size_t off;
  size_t k;
  size_t f;
  size_t chunk;
  prd_ssize n;

  (void)state;
  for (f = 0; f < 2; ++f) {
    nwant = all_frames(&all, want, 64, feats[f]);
    /* One-shot decoding of the concatenation gives the vectors. */
    off = 0;
    k = 0;
    while (off < all.len) {
      n = prd_frame_decode_ex(&oneshot[k], all.data + off, all.len - off,
                              feats[f]);
      assert_true(n > 0);
      assert_true(frame_equal(&oneshot[k], &want[k]));
      off += (size_t)n;
      ++k;
    }
    assert_int_equal(k, nwant);
    for (chunk = 1; chunk <= 80; ++chunk) {
      feed_chunks(&all, chunk, oneshot, nwant, feats[f]);
    }
    feed_chunks(&all, 1000, oneshot, nwant, feats[f]);
    feed_chunks(&all, all.len, oneshot, nwant, feats[f]);
  }
}

/* spec/02-framing.md §3: byte-at-a-time feeding consumes exactly one byte a
 * call and signals each frame on its last byte. */
static void test_codec_frame_reader_byte_at_a_time(void **state) {
  static bytes all;
  static prd_frame want[64];
  prd_frame_reader r;
  prd_frame fr;
  prd_frame probe;
  size_t nwant;
  size_t got = 0;
  size_t start = 0;
  size_t i;
  int ready;

  (void)state;
  nwant = all_frames(&all, want, 64, PRD_FLAG_SERVICES);
  prd_frame_reader_init(&r);
  prd_frame_reader_set_features(&r, PRD_FLAG_SERVICES);
  for (i = 0; i < all.len; ++i) {
    assert_int_equal(prd_frame_reader_feed(&r, &fr, &ready, all.data + i, 1),
                     1);
    /* Ready exactly when one-shot decoding of the bytes since the last
     * frame succeeds. */
    if (prd_frame_decode_ex(&probe, all.data + start, i + 1 - start,
                            PRD_FLAG_SERVICES) > 0) {
      assert_true(ready);
      assert_true(frame_equal(&fr, &want[got]));
      ++got;
      start = i + 1;
    } else {
      assert_false(ready);
    }
  }
  assert_int_equal(got, nwant);
  /* Feeding nothing is harmless. */
  assert_int_equal(prd_frame_reader_feed(&r, &fr, &ready, NULL, 0), 0);
  assert_false(ready);
}

/* spec/02-framing.md §3, §5: the reader reports an invalid frame as soon as
 * the bytes fed so far show it, with the error one-shot decoding gives;
 * valid frames before it come out first. */
static void test_codec_frame_reader_errors(void **state) {
  static const uint8_t stream[] = {0x01, 0x02, 0x01, 0x00, /* HELLO */
                                   0x05, 0x01, 0x06,       /* GOAWAY */
                                   0x01, 0x44, 0x01,       /* Length 1025 */
                                   0x00, 0x00};
  prd_frame_reader r;
  prd_frame fr;
  prd_ssize n;
  size_t off = 0;
  size_t frames = 0;
  int ready;

  (void)state;
  /* One call per byte; the error comes on the byte that completes Length. */
  prd_frame_reader_init(&r);
  for (off = 0; off < 9; ++off) {
    n = prd_frame_reader_feed(&r, &fr, &ready, stream + off, 1);
    assert_int_equal(n, 1);
    frames += (size_t)ready;
  }
  assert_int_equal(frames, 2);
  n = prd_frame_reader_feed(&r, &fr, &ready, stream + 9, 1);
  assert_int_equal(n, PRD_ERR_FRAME_TOO_LARGE);
  assert_false(ready);
  /* A failed reader stays failed until re-initialised. */
  n = prd_frame_reader_feed(&r, &fr, &ready, stream, 4);
  assert_true(n < 0 && n != PRD_ERR_NEED_MORE);
  prd_frame_reader_init(&r);
  assert_int_equal(prd_frame_reader_feed(&r, &fr, &ready, stream, 4), 4);
  assert_true(ready);
  /* The whole stream at once: two frames, then the error. */
  prd_frame_reader_init(&r);
  off = 0;
  frames = 0;
  for (;;) {
    n = prd_frame_reader_feed(&r, &fr, &ready, stream + off,
                              sizeof(stream) - off);
    if (n < 0) {
      break;
    }
    assert_true(ready);
    off += (size_t)n;
    ++frames;
  }
  assert_int_equal(frames, 2);
  assert_int_equal(n, PRD_ERR_FRAME_TOO_LARGE);
  /* An unknown Type is reported on its own byte, also after a frame. */
  prd_frame_reader_init(&r);
  assert_int_equal(prd_frame_reader_feed(&r, &fr, &ready, stream + 10, 1),
                   PRD_ERR_FRAME_UNKNOWN);
  prd_frame_reader_init(&r);
  assert_int_equal(prd_frame_reader_feed(&r, &fr, &ready, stream, 4), 4);
  assert_true(ready);
  assert_int_equal(prd_frame_reader_feed(&r, &fr, &ready, stream + 10, 2),
                   PRD_ERR_FRAME_UNKNOWN);
  assert_false(ready);
}

/* Invalid vectors ---------------------------------------------------------- */

/* check_invalid_frame: one-shot decoding gives |err|; each prefix gives
 * NEED_MORE or |err|; a byte-at-a-time reader fails on the first byte where
 * one-shot decoding stops needing more, with |err|. */
static void check_invalid_frame(const prd_tv_block *b, const bytes *in,
                                int err) {
  static prd_frame fr;
  static prd_frame canary;
  prd_frame_reader r;
  uint64_t feat = features_of(b);
  prd_ssize n;
  size_t stop;
  size_t i;
  int ready;

  memset(&canary, 0x5a, sizeof(canary));
  fr = canary;
  n = prd_frame_decode_ex(&fr, in->data, in->len, feat);
  if (n != err) {
    fail_msg("%s: decode gave %d (%s), want %d", prd_tv_name(b), (int)n,
             prd_strerror((int)n), err);
  }
  assert_memory_equal(&fr, &canary, sizeof(fr));
  for (i = 0; i < in->len; ++i) {
    n = prd_frame_decode_ex(&fr, in->data, i, feat);
    assert_true(n == PRD_ERR_NEED_MORE || n == err);
  }
  stop = first_stop_frame(in, feat);
  prd_frame_reader_init(&r);
  prd_frame_reader_set_features(&r, feat);
  for (i = 0; i < in->len; ++i) {
    n = prd_frame_reader_feed(&r, &fr, &ready, in->data + i, 1);
    assert_false(ready);
    if (i + 1 == stop) {
      assert_int_equal(n, err);
      break;
    }
    assert_int_equal(n, 1);
  }
  if (err == PRD_ERR_NEED_MORE) {
    assert_int_equal(i, in->len);
    assert_int_equal(r.len, in->len);
  } else {
    assert_true(i < in->len);
  }
}

/* check_invalid_header: one-shot decoding gives |err|, and accumulating one
 * byte at a time until the result is not NEED_MORE gives |err| too. */
static void check_invalid_header(const prd_tv_block *b, const bytes *in,
                                 int err) {
  prd_stream_header hd;
  prd_stream_header canary;
  prd_ssize n = PRD_ERR_NEED_MORE;
  size_t i;

  memset(&canary, 0x5a, sizeof(canary));
  hd = canary;
  n = prd_stream_header_decode(&hd, in->data, in->len);
  if (n != err) {
    fail_msg("%s: decode gave %d (%s), want %d", prd_tv_name(b), (int)n,
             prd_strerror((int)n), err);
  }
  assert_memory_equal(&hd, &canary, sizeof(hd));
  n = PRD_ERR_NEED_MORE;
  for (i = 0; i <= in->len && n == PRD_ERR_NEED_MORE; ++i) {
    n = prd_stream_header_decode(&hd, in->data, i);
  }
  assert_int_equal(n, err);
}

/* spec/02-framing.md §2, §3, §4, §5: every invalid vector is refused with
 * the error it names, and cleanly truncated ones need more. */
static void test_codec_invalid_vectors(void **state) {
  prd_tv_file vf;
  bytes in;
  size_t i;
  size_t nframe = 0;
  size_t nhdr = 0;
  int err;

  (void)state;
  load(&vf, "invalid.txt");
  for (i = 0; i < vf.nblocks; ++i) {
    const prd_tv_block *b = &vf.blocks[i];

    get_hex(b, "encoded", &in);
    err = err_of(b);
    if (prd_tv_is_kind(b, "invalid-frame")) {
      check_invalid_frame(b, &in, err);
      ++nframe;
    } else if (prd_tv_is_kind(b, "invalid-stream-header")) {
      check_invalid_header(b, &in, err);
      ++nhdr;
    } else {
      fail_msg("%s: unexpected kind", prd_tv_name(b));
    }
  }
  assert_true(nframe > 0 && nhdr > 0);
  assert_int_equal(nframe + nhdr, vf.nblocks);
  prd_tv_free(&vf);
}

/* Stream header ----------------------------------------------------------- */

/* spec/02-framing.md §4, §4.1: every header vector decodes to its fields and
 * its fields encode to its canonical bytes ("reencoded" when the vector is
 * not in canonical form). */
static void test_codec_stream_header_vectors(void **state) {
  prd_tv_file vf;
  prd_stream_header want;
  prd_stream_header got;
  bytes enc;
  bytes canon;
  uint8_t out[BUFLEN];
  size_t i;

  (void)state;
  load(&vf, "stream-headers.txt");
  for (i = 0; i < vf.nblocks; ++i) {
    const prd_tv_block *b = &vf.blocks[i];

    assert_true(prd_tv_is_kind(b, "stream-header"));
    header_of(&want, b);
    get_hex(b, "encoded", &enc);
    if (prd_tv_get(b, "reencoded") != NULL) {
      get_hex(b, "reencoded", &canon);
    } else {
      canon = enc;
    }
    memset(&got, 0xa5, sizeof(got));
    assert_int_equal(prd_stream_header_decode(&got, enc.data, enc.len),
                     enc.len);
    if (!header_equal(&got, &want)) {
      fail_msg("%s: decoded fields differ", prd_tv_name(b));
    }
    assert_int_equal(prd_stream_header_encode(out, sizeof(out), &want),
                     canon.len);
    assert_memory_equal(out, canon.data, canon.len);
    assert_int_equal(prd_stream_header_encode(out, canon.len - 1, &want),
                     PRD_ERR_NOBUF);
    /* User bytes after the header are not consumed. */
    memcpy(enc.data + enc.len, "GET /", 5);
    assert_int_equal(prd_stream_header_decode(&got, enc.data, enc.len + 5),
                     enc.len);
  }
  prd_tv_free(&vf);
}

/* spec/02-framing.md §4: a header cut at any length needs more bytes, and
 * appending one byte at a time until the decoder stops asking for more
 * gives the one-shot result. */
static void test_codec_stream_header_byte_at_a_time(void **state) {
  prd_tv_file vf;
  prd_stream_header one;
  prd_stream_header acc;
  prd_stream_header canary;
  bytes enc;
  prd_ssize n;
  size_t i;
  size_t len;

  (void)state;
  memset(&canary, 0x5a, sizeof(canary));
  load(&vf, "stream-headers.txt");
  for (i = 0; i < vf.nblocks; ++i) {
    get_hex(&vf.blocks[i], "encoded", &enc);
    assert_int_equal(prd_stream_header_decode(&one, enc.data, enc.len),
                     enc.len);
    /* Data follows the header on the stream. */
    memset(enc.data + enc.len, 0x42, 64);
    acc = canary;
    n = PRD_ERR_NEED_MORE;
    for (len = 0; n == PRD_ERR_NEED_MORE; ++len) {
      assert_true(len <= enc.len);
      n = prd_stream_header_decode(&acc, enc.data, len);
      if (n == PRD_ERR_NEED_MORE) {
        assert_memory_equal(&acc, &canary, sizeof(acc));
      }
    }
    assert_int_equal(n, enc.len);
    assert_int_equal(len, enc.len + 1);
    assert_true(header_equal(&acc, &one));
  }
  prd_tv_free(&vf);
}

/* spec/02-framing.md §4, §4.1: headers built from every combination of
 * families, ports and DESTINATION presence round-trip. */
static void test_codec_stream_header_roundtrip(void **state) {
  static const uint16_t ports[] = {0, 1, 443, 10001, 65535};
  prd_stream_header hd;
  prd_stream_header got;
  uint8_t out[PRD_STREAM_HEADER_MAX];
  uint8_t again[PRD_STREAM_HEADER_MAX];
  prd_ssize n;
  size_t i;
  unsigned combo;

  (void)state;
  for (combo = 0; combo < 8; ++combo) {
    for (i = 0; i < sizeof(ports) / sizeof(ports[0]); ++i) {
      memset(&hd, 0, sizeof(hd));
      hd.version = PRD_PROTOCOL_VERSION;
      hd.has_src = 1;
      hd.src.family = combo & 1 ? 6 : 4;
      memset(hd.src.addr, (int)(0x10 + i), hd.src.family == 4 ? 4 : 16);
      hd.src.port = ports[i];
      hd.has_dst = (combo & 4) != 0;
      if (hd.has_dst) {
        hd.dst.family = combo & 2 ? 6 : 4;
        memset(hd.dst.addr, (int)(0x80 + i), hd.dst.family == 4 ? 4 : 16);
        hd.dst.port = ports[(i + 1) % 5];
      }
      n = prd_stream_header_encode(out, sizeof(out), &hd);
      assert_true(n > 0);
      assert_int_equal(n, 2 + (hd.src.family == 4 ? 9 : 21) +
                              (!hd.has_dst          ? 0
                               : hd.dst.family == 4 ? 9
                                                    : 21));
      memset(&got, 0xa5, sizeof(got));
      assert_int_equal(prd_stream_header_decode(&got, out, (size_t)n), n);
      assert_true(header_equal(&got, &hd));
      assert_int_equal(prd_stream_header_encode(again, sizeof(again), &got), n);
      assert_memory_equal(out, again, (size_t)n);
    }
  }
}

/* spec/02-framing.md §5: a header longer than 512 bytes is refused as soon
 * as Length is complete; exactly 512 is accepted. */
static void test_codec_stream_header_too_large(void **state) {
  static uint8_t buf[1024];
  prd_stream_header hd;
  size_t fields;
  size_t n;

  (void)state;
  /* Version (1) + 2-byte Length + Fields. */
  for (fields = 64; fields <= 600; ++fields) {
    buf[0] = 0x01;
    buf[1] = (uint8_t)(0x40 | (fields >> 8));
    buf[2] = (uint8_t)(fields & 0xff);
    if (3 + fields > PRD_STREAM_HEADER_MAX) {
      assert_int_equal(prd_stream_header_decode(&hd, buf, 3),
                       PRD_ERR_FRAME_TOO_LARGE);
      assert_int_equal(prd_stream_header_decode(&hd, buf, 2),
                       PRD_ERR_NEED_MORE);
    } else {
      assert_int_equal(prd_stream_header_decode(&hd, buf, 3),
                       PRD_ERR_NEED_MORE);
    }
  }
  /* 512 bytes exactly: SOURCE then one unknown field filling the rest. */
  memset(buf, 0, sizeof(buf));
  fields = PRD_STREAM_HEADER_MAX - 3;
  buf[0] = 0x01;
  buf[1] = (uint8_t)(0x40 | (fields >> 8));
  buf[2] = (uint8_t)(fields & 0xff);
  memcpy(buf + 3, "\x01\x07\x04\x7f\x00\x00\x01\x00\x50", 9);
  n = fields - 9 - 3;
  buf[12] = 0x30;
  buf[13] = (uint8_t)(0x40 | (n >> 8));
  buf[14] = (uint8_t)(n & 0xff);
  assert_int_equal(prd_stream_header_decode(&hd, buf, PRD_STREAM_HEADER_MAX),
                   PRD_STREAM_HEADER_MAX);
  assert_int_equal(hd.src.port, 80);
  assert_int_equal(
      prd_stream_header_decode(&hd, buf, PRD_STREAM_HEADER_MAX - 1),
      PRD_ERR_NEED_MORE);
  /* 4- and 8-byte Lengths. */
  memcpy(buf, "\x01\x80\x01\x00\x00", 5);
  assert_int_equal(prd_stream_header_decode(&hd, buf, 5),
                   PRD_ERR_FRAME_TOO_LARGE);
  memcpy(buf, "\x01\xff\xff\xff\xff\xff\xff\xff\xff", 9);
  assert_int_equal(prd_stream_header_decode(&hd, buf, 9),
                   PRD_ERR_FRAME_TOO_LARGE);
}

/* put_field writes a field of |ftype| whose value is |family|, |alen|
 * address bytes and a port, with Field Length |flen|. */
static size_t put_addr_field(uint8_t *p, uint8_t ftype, uint8_t family,
                             size_t alen) {
  p[0] = ftype;
  p[1] = (uint8_t)(alen + 3);
  p[2] = family;
  memset(p + 3, 0x0a, alen);
  p[3 + alen] = 0x01;
  p[4 + alen] = 0xbb;
  return 5 + alen;
}

/* spec/02-framing.md §4, §4.1: only family 4 with 4 address bytes and family
 * 6 with 16 are valid, in SOURCE and DESTINATION alike; unknown field
 * types of any length are skipped. */
static void test_codec_stream_header_fields(void **state) {
  uint8_t buf[128];
  prd_stream_header hd;
  size_t n;
  size_t alen;
  unsigned family;
  unsigned ftype;
  prd_ssize want;

  (void)state;
  for (family = 0; family < 256; ++family) {
    for (alen = 0; alen <= 20; ++alen) {
      want = (family == 4 && alen == 4) || (family == 6 && alen == 16)
                 ? 0
                 : PRD_ERR_HEADER_ENCODING;
      /* As SOURCE. */
      buf[0] = 0x01;
      n = 2 +
          put_addr_field(buf + 2, PRD_HDR_FIELD_SOURCE, (uint8_t)family, alen);
      buf[1] = (uint8_t)(n - 2);
      assert_int_equal(prd_stream_header_decode(&hd, buf, n),
                       want == 0 ? (prd_ssize)n : want);
      if (want == 0) {
        assert_int_equal(hd.src.family, family);
        assert_int_equal(hd.src.port, 443);
        assert_false(hd.has_dst);
      }
      /* As DESTINATION after a valid SOURCE. */
      n = 2 + put_addr_field(buf + 2, PRD_HDR_FIELD_SOURCE, 4, 4);
      n += put_addr_field(buf + n, PRD_HDR_FIELD_DESTINATION, (uint8_t)family,
                          alen);
      buf[1] = (uint8_t)(n - 2);
      assert_int_equal(prd_stream_header_decode(&hd, buf, n),
                       want == 0 ? (prd_ssize)n : want);
      if (want == 0) {
        assert_true(hd.has_dst);
        assert_int_equal(hd.dst.family, family);
      }
    }
  }
  /* Unknown 1-byte field types with values of 0..40 bytes (0x03 SERVICE
   * and 0x04 PORT_OFFSET are known since spec/02-framing.md §4.4). */
  for (ftype = 5; ftype < 64; ++ftype) {
    for (alen = 0; alen <= 40; alen += 8) {
      buf[0] = 0x01;
      n = 2;
      buf[n++] = (uint8_t)ftype;
      buf[n++] = (uint8_t)alen;
      memset(buf + n, 0xff, alen);
      n += alen;
      n += put_addr_field(buf + n, PRD_HDR_FIELD_SOURCE, 6, 16);
      buf[1] = (uint8_t)(n - 2);
      assert_int_equal(prd_stream_header_decode(&hd, buf, n), n);
      assert_int_equal(hd.src.family, 6);
    }
  }
}

/* spec/02-framing.md §4: the encoder refuses headers the spec forbids and
 * output buffers that are too small. */
static void test_codec_stream_header_encode_errors(void **state) {
  uint8_t out[PRD_STREAM_HEADER_MAX];
  prd_stream_header hd;
  prd_ssize n;
  size_t len;

  (void)state;
  memset(&hd, 0, sizeof(hd));
  hd.version = PRD_PROTOCOL_VERSION;
  assert_int_equal(prd_stream_header_encode(out, sizeof(out), &hd),
                   PRD_ERR_INVAL);
  hd.has_src = 1;
  hd.src.family = 5;
  assert_int_equal(prd_stream_header_encode(out, sizeof(out), &hd),
                   PRD_ERR_INVAL);
  hd.src.family = 4;
  hd.has_dst = 1;
  hd.dst.family = 0;
  assert_int_equal(prd_stream_header_encode(out, sizeof(out), &hd),
                   PRD_ERR_INVAL);
  hd.dst.family = 6;
  hd.version = 2;
  assert_int_equal(prd_stream_header_encode(out, sizeof(out), &hd),
                   PRD_ERR_INVAL);
  hd.version = PRD_PROTOCOL_VERSION;
  n = prd_stream_header_encode(out, sizeof(out), &hd);
  assert_int_equal(n, 2 + 9 + 21);
  for (len = 0; len < (size_t)n; ++len) {
    assert_int_equal(prd_stream_header_encode(out, len, &hd), PRD_ERR_NOBUF);
  }
}

/* Named services ---------------------------------------------------------- */

/* wrap writes varint |t|, varint |len| and |body| to |dst| (a frame's Type
 * and Length, or a header's Version and Length) and returns the length. */
static size_t wrap(uint8_t *dst, uint64_t t, const uint8_t *body, size_t len) {
  uint8_t tmp[BUFLEN];
  size_t n;

  assert_true(len <= sizeof(tmp));
  memcpy(tmp, body, len); /* |body| may lie in |dst| */
  n = (size_t)prd_varint_encode(dst, 8, t);
  n += (size_t)prd_varint_encode(dst + n, 8, len);
  memcpy(dst + n, tmp, len);
  return n + len;
}

/* spec/02-framing.md §3.7: a service name is 1..63 bytes of [A-Za-z0-9._-],
 * nothing else, and compares byte for byte. */
static void test_codec_service_name_valid(void **state) {
  char name[PRD_SERVICE_NAME_MAX + 2];
  unsigned c;
  int want;

  (void)state;
  for (c = 0; c < 256; ++c) {
    name[0] = (char)c;
    want = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
    assert_int_equal(prd_service_name_valid(name, 1), want);
  }
  memset(name, 'x', sizeof(name));
  assert_false(prd_service_name_valid(name, 0));
  assert_true(prd_service_name_valid(name, PRD_SERVICE_NAME_MAX));
  assert_false(prd_service_name_valid(name, PRD_SERVICE_NAME_MAX + 1));
  assert_true(prd_service_name_valid(PRD_SERVICE_DEFAULT, 7));
}

/* spec/02-framing.md §3.7: building a SERVICES frame refuses invalid and
 * repeated names and stops at 1024 bytes; the names come back in order. */
static void test_codec_services_build(void **state) {
  static prd_frame fr;
  static prd_frame got;
  char name[PRD_SERVICE_NAME_MAX + 1];
  uint8_t out[BUFLEN];
  const char *n;
  size_t nlen;
  size_t off;
  size_t i;
  prd_ssize len;

  (void)state;
  memset(&fr, 0, sizeof(fr));
  fr.type = PRD_FRAME_SERVICES;
  /* No name: not a valid frame. */
  assert_int_equal(prd_frame_encode(out, sizeof(out), &fr), PRD_ERR_INVAL);
  assert_int_equal(prd_services_add(&fr, "", 0), PRD_ERR_INVAL);
  assert_int_equal(prd_services_add(&fr, "a b", 3), PRD_ERR_INVAL);
  assert_int_equal(prd_services_add(&fr, "web", 3), 0);
  assert_int_equal(prd_services_add(&fr, "web", 3), PRD_ERR_INVAL);
  assert_int_equal(prd_services_add(&fr, "Web", 3), 0); /* case-sensitive */
  assert_int_equal(fr.u.services.count, 2);
  off = 0;
  assert_true(prd_services_next(&fr, &off, &n, &nlen));
  assert_true(nlen == 3 && memcmp(n, "web", 3) == 0);
  assert_true(prd_services_next(&fr, &off, &n, &nlen));
  assert_true(nlen == 3 && memcmp(n, "Web", 3) == 0);
  assert_false(prd_services_next(&fr, &off, &n, &nlen));
  /* 16 names of 63 bytes fill the payload exactly. */
  memset(&fr, 0, sizeof(fr));
  fr.type = PRD_FRAME_SERVICES;
  memset(name, 'n', sizeof(name));
  for (i = 0; i < 16; ++i) {
    name[0] = (char)('a' + i);
    assert_int_equal(prd_services_add(&fr, name, PRD_SERVICE_NAME_MAX), 0);
  }
  assert_int_equal(fr.u.services.listlen, PRD_FRAME_MAX_PAYLOAD);
  assert_int_equal(prd_services_add(&fr, "z", 1), PRD_ERR_NOBUF);
  len = prd_frame_encode(out, sizeof(out), &fr);
  assert_int_equal(len, 3 + PRD_FRAME_MAX_PAYLOAD);
  assert_int_equal(
      prd_frame_decode_ex(&got, out, (size_t)len, PRD_FLAG_SERVICES), len);
  assert_true(frame_equal(&fr, &got));
  /* The encoder checks a hand-made list like a receiver. */
  fr.u.services.count = 15;
  assert_int_equal(prd_frame_encode(out, sizeof(out), &fr), PRD_ERR_INVAL);
  memset(&fr, 0, sizeof(fr));
  fr.type = PRD_FRAME_SERVICES;
  memcpy(fr.u.services.list, "\x03web\x03web", 8);
  fr.u.services.listlen = 8;
  fr.u.services.count = 2;
  assert_int_equal(prd_frame_encode(out, sizeof(out), &fr), PRD_ERR_INVAL);
  fr.u.services.list[1] = '/';
  fr.u.services.count = 2;
  assert_int_equal(prd_frame_encode(out, sizeof(out), &fr), PRD_ERR_INVAL);
  fr.u.services.listlen = sizeof(fr.u.services.list) + 1;
  assert_int_equal(prd_frame_encode(out, sizeof(out), &fr), PRD_ERR_INVAL);
}

/* spec/02-framing.md §3.7: every malformed SERVICES payload, built here
 * byte by byte: empty, length 0, 64 bytes, each bad byte, a repeat, a name
 * past the end, a non-minimal Name Length. */
static void test_codec_services_malformed(void **state) {
  static prd_frame fr;
  uint8_t buf[BUFLEN];
  unsigned c;
  size_t n;

  (void)state;
  /* A bad byte anywhere in a 3-byte name. */
  for (c = 0; c < 256; ++c) {
    size_t pos;

    if (prd_service_name_valid((const char *)&(char){(char)c}, 1)) {
      continue;
    }
    for (pos = 0; pos < 3; ++pos) {
      memcpy(buf,
             "\x06\x04\x03"
             "abc",
             6);
      buf[3 + pos] = (uint8_t)c;
      assert_int_equal(prd_frame_decode_ex(&fr, buf, 6, PRD_FLAG_SERVICES),
                       PRD_ERR_FRAME_ENCODING);
      assert_int_equal(prd_frame_decode(&fr, buf, 6), PRD_ERR_FRAME_UNKNOWN);
    }
  }
  /* Name lengths 0..70 in a 1- or 2-byte varint. */
  for (n = 0; n <= 70; ++n) {
    uint8_t body[80];
    size_t hl = (size_t)prd_varint_encode(body, 8, n);
    size_t total;

    memset(body + hl, 'q', n);
    total = wrap(buf, PRD_FRAME_SERVICES, body, hl + n);
    assert_int_equal(prd_frame_decode_ex(&fr, buf, total, PRD_FLAG_SERVICES),
                     n >= 1 && n <= PRD_SERVICE_NAME_MAX
                         ? (prd_ssize)total
                         : PRD_ERR_FRAME_ENCODING);
  }
  /* The same length in two bytes is non-minimal. */
  memcpy(buf, "\x06\x05\x40\x03web", 7);
  assert_int_equal(prd_frame_decode_ex(&fr, buf, 7, PRD_FLAG_SERVICES),
                   PRD_ERR_VARINT_NONMINIMAL);
  /* Empty; a repeat; a name past the end; a trailing byte. */
  assert_int_equal(prd_frame_decode_ex(&fr, (const uint8_t *)"\x06\x00", 2,
                                       PRD_FLAG_SERVICES),
                   PRD_ERR_FRAME_ENCODING);
  assert_int_equal(
      prd_frame_decode_ex(&fr, (const uint8_t *)"\x06\x08\x03web\x03web", 10,
                          PRD_FLAG_SERVICES),
      PRD_ERR_FRAME_ENCODING);
  assert_int_equal(
      prd_frame_decode_ex(&fr, (const uint8_t *)"\x06\x08\x03web\x03Web", 10,
                          PRD_FLAG_SERVICES),
      10);
  assert_int_equal(prd_frame_decode_ex(&fr, (const uint8_t *)"\x06\x04\x04web",
                                       6, PRD_FLAG_SERVICES),
                   PRD_ERR_FRAME_ENCODING);
  assert_int_equal(prd_frame_decode_ex(&fr,
                                       (const uint8_t *)"\x06\x05\x03web\x00",
                                       7, PRD_FLAG_SERVICES),
                   PRD_ERR_FRAME_ENCODING);
}

/* spec/02-framing.md §3.8: SERVICE_REFUSED round-trips for every code
 * length; a bad name is refused by the encoder and the decoder; one name
 * only, no trailing byte, minimal Error Code. */
static void test_codec_service_refused(void **state) {
  static const uint64_t codes[] = {PRD_APP_UNKNOWN_SERVICE, 0, 63, 64, 16384,
                                   PRD_VARINT_MAX};
  static prd_frame fr;
  static prd_frame got;
  uint8_t out[BUFLEN];
  prd_ssize n;
  size_t i;

  (void)state;
  for (i = 0; i < sizeof(codes) / sizeof(codes[0]); ++i) {
    memset(&fr, 0, sizeof(fr));
    fr.type = PRD_FRAME_SERVICE_REFUSED;
    fr.u.refused.error_code = codes[i];
    fr.u.refused.namelen = 7;
    memcpy(fr.u.refused.name, "a.b_c-9", 8);
    n = prd_frame_encode(out, sizeof(out), &fr);
    assert_int_equal(n, 2 + prd_varint_len(codes[i]) + 1 + 7);
    assert_int_equal(
        prd_frame_decode_ex(&got, out, (size_t)n, PRD_FLAG_SERVICES), n);
    assert_true(frame_equal(&fr, &got));
    assert_string_equal(got.u.refused.name, "a.b_c-9");
    assert_int_equal(prd_frame_decode(&got, out, (size_t)n),
                     PRD_ERR_FRAME_UNKNOWN);
  }
  fr.u.refused.namelen = 0;
  assert_int_equal(prd_frame_encode(out, sizeof(out), &fr), PRD_ERR_INVAL);
  fr.u.refused.namelen = PRD_SERVICE_NAME_MAX + 1;
  assert_int_equal(prd_frame_encode(out, sizeof(out), &fr), PRD_ERR_INVAL);
  fr.u.refused.namelen = 3;
  memcpy(fr.u.refused.name, "a b", 4);
  assert_int_equal(prd_frame_encode(out, sizeof(out), &fr), PRD_ERR_INVAL);
  fr.u.refused.namelen = 1;
  fr.u.refused.error_code = PRD_VARINT_MAX + 1;
  memcpy(fr.u.refused.name, "a", 2);
  assert_int_equal(prd_frame_encode(out, sizeof(out), &fr), PRD_ERR_INVAL);
}

/* spec/02-framing.md §3.4: AUTH_RESULT with and without Flags. A client
 * that sent Flags 0 refuses the second varint; one that sent Flags accepts
 * both forms and refuses bits it did not send. */
static void test_codec_auth_result_flags(void **state) {
  static prd_frame fr;
  uint8_t out[16];
  prd_ssize n;

  (void)state;
  /* Old form: the same with any features. */
  assert_int_equal(prd_frame_decode(&fr, (const uint8_t *)"\x04\x01\x00", 3),
                   3);
  assert_false(fr.u.result.has_flags);
  assert_int_equal(prd_frame_decode_ex(&fr, (const uint8_t *)"\x04\x01\x00", 3,
                                       PRD_FLAG_SERVICES),
                   3);
  assert_false(fr.u.result.has_flags);
  /* New form. */
  assert_int_equal(
      prd_frame_decode(&fr, (const uint8_t *)"\x04\x02\x00\x01", 4),
      PRD_ERR_FRAME_ENCODING);
  assert_int_equal(prd_frame_decode_ex(&fr, (const uint8_t *)"\x04\x02\x00\x01",
                                       4, PRD_FLAG_SERVICES),
                   4);
  assert_true(fr.u.result.has_flags);
  assert_true(fr.u.result.status == 0 && fr.u.result.flags == 1);
  assert_int_equal(prd_frame_decode_ex(&fr, (const uint8_t *)"\x04\x02\x04\x00",
                                       4, PRD_FLAG_SERVICES),
                   4);
  assert_true(fr.u.result.status == 4 && fr.u.result.flags == 0);
  /* A bit the client did not send; with it sent, accepted. */
  assert_int_equal(prd_frame_decode_ex(&fr, (const uint8_t *)"\x04\x02\x00\x02",
                                       4, PRD_FLAG_SERVICES),
                   PRD_ERR_FRAME_ENCODING);
  assert_int_equal(
      prd_frame_decode_ex(&fr, (const uint8_t *)"\x04\x02\x00\x02", 4, 3), 4);
  /* Three varints; a non-minimal Flags. */
  assert_int_equal(prd_frame_decode_ex(&fr,
                                       (const uint8_t *)"\x04\x03\x00\x01\x00",
                                       5, PRD_FLAG_SERVICES),
                   PRD_ERR_FRAME_ENCODING);
  assert_int_equal(prd_frame_decode_ex(&fr,
                                       (const uint8_t *)"\x04\x03\x00\x40\x01",
                                       5, PRD_FLAG_SERVICES),
                   PRD_ERR_VARINT_NONMINIMAL);
  /* The encoder writes Flags only when asked. */
  memset(&fr, 0, sizeof(fr));
  fr.type = PRD_FRAME_AUTH_RESULT;
  assert_int_equal(prd_frame_encode(out, sizeof(out), &fr), 3);
  assert_memory_equal(out, "\x04\x01\x00", 3);
  fr.u.result.has_flags = 1;
  fr.u.result.flags = PRD_FLAG_SERVICES;
  assert_int_equal(prd_frame_encode(out, sizeof(out), &fr), 4);
  assert_memory_equal(out, "\x04\x02\x00\x01", 4);
  fr.u.result.flags = PRD_VARINT_MAX + 1;
  assert_int_equal(prd_frame_encode(out, sizeof(out), &fr), PRD_ERR_INVAL);
  n = prd_frame_encode(out, 3, &fr);
  assert_int_equal(n, PRD_ERR_INVAL);
}

/* spec/02-framing.md §3, rule 1, §3.6: a fresh reader rejects 0x06 and
 * 0x07 on their first byte, as today's binaries must; once the caller sets
 * SERVICES, between two frames, they are decoded. */
static void test_codec_reader_features(void **state) {
  static const uint8_t services[] = {0x06, 0x04, 0x03, 'w', 'e', 'b'};
  static const uint8_t refused[] = {0x07, 0x05, 0x0b, 0x03, 'w', 'e', 'b'};
  static const uint8_t result[] = {0x04, 0x02, 0x00, 0x01};
  static prd_frame fr;
  prd_frame_reader r;
  int ready;

  (void)state;
  prd_frame_reader_init(&r);
  assert_true(r.features == 0);
  assert_int_equal(prd_frame_reader_feed(&r, &fr, &ready, services, 1),
                   PRD_ERR_FRAME_UNKNOWN);
  prd_frame_reader_init(&r);
  assert_int_equal(
      prd_frame_reader_feed(&r, &fr, &ready, refused, sizeof(refused)),
      PRD_ERR_FRAME_UNKNOWN);
  prd_frame_reader_init(&r);
  assert_int_equal(
      prd_frame_reader_feed(&r, &fr, &ready, result, sizeof(result)),
      PRD_ERR_FRAME_ENCODING);
  /* The client after HELLO with Flags 1: AUTH_RESULT with Flags. */
  prd_frame_reader_init(&r);
  prd_frame_reader_set_features(&r, PRD_FLAG_SERVICES);
  assert_int_equal(prd_frame_reader_feed(&r, &fr, &ready, result, 2), 2);
  assert_false(ready);
  assert_int_equal(prd_frame_reader_feed(&r, &fr, &ready, result + 2, 2), 2);
  assert_true(ready);
  assert_true(fr.u.result.has_flags && fr.u.result.flags == 1);
  assert_int_equal(
      prd_frame_reader_feed(&r, &fr, &ready, refused, sizeof(refused)),
      sizeof(refused));
  assert_true(ready && fr.type == PRD_FRAME_SERVICE_REFUSED);
  /* Features off again (not negotiated): the next 0x06 is unknown. */
  prd_frame_reader_set_features(&r, 0);
  assert_int_equal(prd_frame_reader_feed(&r, &fr, &ready, services, 1),
                   PRD_ERR_FRAME_UNKNOWN);
}

/* spec/02-framing.md §4.4: SERVICE and PORT_OFFSET round-trip, in every
 * combination, after SOURCE and DESTINATION; invalid values are refused by
 * both the encoder and the decoder. */
static void test_codec_stream_header_service(void **state) {
  static const uint64_t offsets[] = {
      0, 1, 63, 64, 16383, 16384, PRD_PORT_OFFSET_MAX};
  prd_stream_header hd;
  prd_stream_header got;
  uint8_t out[PRD_STREAM_HEADER_MAX];
  uint8_t buf[128];
  char name[PRD_SERVICE_NAME_MAX + 2];
  prd_ssize n;
  size_t i;
  size_t len;
  unsigned c;

  (void)state;
  memset(&hd, 0, sizeof(hd));
  hd.version = PRD_PROTOCOL_VERSION;
  hd.has_src = 1;
  hd.src.family = 6;
  hd.has_dst = 1;
  hd.dst.family = 6;
  for (i = 0; i < sizeof(offsets) / sizeof(offsets[0]); ++i) {
    for (len = 1; len <= PRD_SERVICE_NAME_MAX; len += 31) {
      hd.has_service = (int)(i & 1);
      hd.servicelen = len;
      memset(hd.service, 'S', len);
      hd.service[len] = '\0';
      hd.has_port_offset = i != 0;
      hd.port_offset = (uint16_t)offsets[i];
      n = prd_stream_header_encode(out, sizeof(out), &hd);
      assert_true(n > 0);
      memset(&got, 0xa5, sizeof(got));
      assert_int_equal(prd_stream_header_decode(&got, out, (size_t)n), n);
      assert_true(header_equal(&hd, &got));
      if (hd.has_service) {
        assert_string_equal(got.service, hd.service);
      }
    }
  }
  /* Encoder refusals. */
  hd.has_service = 1;
  hd.servicelen = 0;
  assert_int_equal(prd_stream_header_encode(out, sizeof(out), &hd),
                   PRD_ERR_INVAL);
  hd.servicelen = PRD_SERVICE_NAME_MAX + 1;
  assert_int_equal(prd_stream_header_encode(out, sizeof(out), &hd),
                   PRD_ERR_INVAL);
  hd.servicelen = 2;
  memcpy(hd.service, "a:", 3);
  assert_int_equal(prd_stream_header_encode(out, sizeof(out), &hd),
                   PRD_ERR_INVAL);
  hd.has_service = 0;
  hd.has_port_offset = 1;
  hd.port_offset = PRD_PORT_OFFSET_MAX + 1;
  assert_int_equal(prd_stream_header_encode(out, sizeof(out), &hd),
                   PRD_ERR_INVAL);
  /* Decoder: every 1-byte SERVICE value, and lengths 0..64. */
  memset(name, 'x', sizeof(name));
  for (c = 0; c < 256; ++c) {
    name[0] = (char)c;
    len = 2 + put_addr_field(buf + 2, PRD_HDR_FIELD_SOURCE, 4, 4);
    buf[len++] = PRD_HDR_FIELD_SERVICE;
    buf[len++] = 1;
    buf[len++] = (uint8_t)c;
    buf[0] = 1;
    buf[1] = (uint8_t)(len - 2);
    assert_int_equal(prd_stream_header_decode(&got, buf, len),
                     prd_service_name_valid(name, 1) ? (prd_ssize)len
                                                     : PRD_ERR_HEADER_ENCODING);
  }
  for (i = 0; i <= PRD_SERVICE_NAME_MAX + 1; ++i) {
    len = 2 + put_addr_field(buf + 2, PRD_HDR_FIELD_SOURCE, 4, 4);
    buf[len++] = PRD_HDR_FIELD_SERVICE;
    buf[len++] = (uint8_t)i;
    memset(buf + len, 'x', i);
    len += i;
    len = wrap(buf, 1, buf + 2, len - 2);
    assert_int_equal(prd_stream_header_decode(&got, buf, len),
                     i >= 1 && i <= PRD_SERVICE_NAME_MAX
                         ? (prd_ssize)len
                         : PRD_ERR_HEADER_ENCODING);
  }
  /* PORT_OFFSET 65535 in its 4-byte varint; 3 in 2 bytes. */
  len = 2 + put_addr_field(buf + 2, PRD_HDR_FIELD_SOURCE, 4, 4);
  memcpy(buf + len, "\x04\x04\x80\x00\xff\xff", 6);
  buf[0] = 1;
  buf[1] = (uint8_t)(len + 6 - 2);
  assert_int_equal(prd_stream_header_decode(&got, buf, len + 6),
                   PRD_ERR_HEADER_ENCODING);
  buf[len + 5] = 0xfe; /* 65534 */
  assert_int_equal(prd_stream_header_decode(&got, buf, len + 6),
                   (prd_ssize)(len + 6));
  assert_int_equal(got.port_offset, PRD_PORT_OFFSET_MAX);
  memcpy(buf + len, "\x04\x02\x40\x03", 4);
  buf[1] = (uint8_t)(len + 4 - 2);
  assert_int_equal(prd_stream_header_decode(&got, buf, len + 4),
                   PRD_ERR_VARINT_NONMINIMAL);
}

/* Error codes ------------------------------------------------------------- */

/* spec/05-errors.md: every registered code has its name; others are
 * UNKNOWN. */
static void test_codec_app_err_name(void **state) {
  static const char *const names[] = {"NO_ERROR",
                                      "INTERNAL_ERROR",
                                      "PROTOCOL_ERROR",
                                      "VERSION_MISMATCH",
                                      "AUTH_FAILED",
                                      "AUTH_TIMEOUT",
                                      "SHUTTING_DOWN",
                                      "DESTINATION_UNREACHABLE",
                                      "DESTINATION_RESET",
                                      "USER_RESET",
                                      "STREAM_REFUSED",
                                      "UNKNOWN_SERVICE",
                                      "SERVICE_NOT_PERMITTED"};
  uint64_t code;

  (void)state;
  for (code = 0; code < sizeof(names) / sizeof(names[0]); ++code) {
    assert_string_equal(prd_app_err_name(code), names[code]);
  }
  assert_int_equal(PRD_APP_STREAM_REFUSED, 0x0a);
  assert_int_equal(PRD_APP_UNKNOWN_SERVICE, 0x0b);
  assert_string_equal(prd_app_err_name(PRD_APP_AUTH_FAILED), "AUTH_FAILED");
  assert_int_equal(PRD_APP_SERVICE_NOT_PERMITTED, 0x0c);
  assert_string_equal(prd_app_err_name(0x3f), "UNKNOWN");
  assert_string_equal(prd_app_err_name(0x100000004ULL), "UNKNOWN");
  assert_string_equal(prd_app_err_name(UINT64_MAX), "UNKNOWN");
}

/* spec/10-udp.md §3, §3.1-§3.4: every valid vector decodes to its fields,
 * encodes back to the same bytes, and is malformed when cut short (FLOW_DATA
 * and FLOW_OPEN keep a shorter payload, so only the header is cut). */
static void test_codec_udp_vectors(void **state) {
  prd_tv_file vf;
  bytes enc, payload;
  prd_udp_dgram d, want;
  uint8_t out[600];
  prd_ssize n;
  size_t i, hdrlen;
  const char *svc;

  (void)state;
  load(&vf, "udp.txt");
  for (i = 0; i < vf.nblocks; ++i) {
    const prd_tv_block *b = &vf.blocks[i];
    get_hex(b, "encoded", &enc);
    if (prd_tv_is_kind(b, "invalid-udp-message")) {
      assert_int_equal(prd_udp_dgram_decode(&d, enc.data, enc.len), err_of(b));
      continue;
    }
    assert_true(prd_tv_is_kind(b, "udp-message"));
    assert_int_equal(prd_udp_dgram_decode(&d, enc.data, enc.len), 0);
    memset(&want, 0, sizeof(want));
    want.type = get_u64(b, "type");
    want.flow_id = get_u64(b, "flow-id");
    assert_int_equal(d.type, want.type);
    assert_int_equal(d.flow_id, want.flow_id);
    svc = prd_tv_get(b, "service");
    if (svc) {
      assert_string_equal(d.service, svc);
      assert_int_equal(d.servicelen, strlen(svc));
      assert_int_equal(d.port_offset, get_u64(b, "port-offset"));
      assert_int_equal(addr_of(&want.source, b, "source"), 1);
      assert_memory_equal(&d.source, &want.source, sizeof(want.source));
    }
    if (want.type != PRD_UDP_FLOW_CLOSE) {
      get_hex(b, "payload", &payload);
      assert_int_equal(d.payloadlen, payload.len);
      assert_memory_equal(d.payload, payload.data, payload.len);
    }
    hdrlen = enc.len - d.payloadlen;
    n = prd_udp_dgram_encode_hdr(out, sizeof(out), &d);
    assert_int_equal(n, hdrlen);
    assert_memory_equal(out, enc.data, hdrlen);
    assert_int_equal(prd_udp_dgram_encode_hdr(out, hdrlen - 1, &d),
                     PRD_ERR_NOBUF);
    for (size_t len = 0; len < hdrlen; ++len) {
      assert_true(prd_udp_dgram_decode(&d, enc.data, len) < 0);
    }
  }
  prd_tv_free(&vf);
}

/* The TCP path (spec/11-tcp-path.md §2.1): the verdict of an 8-byte preface,
 * NEED_MORE before its 8th byte, and nothing read after it. */
static int tcp_verdict_of(const prd_tv_block *b) {
  const char *v = prd_tv_get(b, "verdict");

  assert_non_null(v);
  if (strcmp(v, "ours") == 0) {
    return PRD_TCP_PREFACE_OURS;
  }
  if (strcmp(v, "other-version") == 0) {
    return PRD_TCP_PREFACE_OTHER_VERSION;
  }
  if (strcmp(v, "not-magic") == 0) {
    return PRD_TCP_PREFACE_NOT_MAGIC;
  }
  fail_msg("%s: unknown verdict %s", prd_tv_name(b), v);
  return -1;
}

/* spec/11-tcp-path.md §2.1: every tcp-path-preface vector, whole, one byte
 * at a time, and with a record behind it (the client MAY send records right
 * behind its preface). */
static void test_codec_tcp_preface_vectors(void **state) {
  prd_tv_file vf;
  bytes enc;
  uint8_t more[PRD_TCP_PREFACE_LEN + 3];
  size_t i, n, seen = 0;
  int want;

  (void)state;
  load(&vf, "tcp-path.txt");
  for (i = 0; i < vf.nblocks; ++i) {
    const prd_tv_block *b = &vf.blocks[i];
    if (!prd_tv_is_kind(b, "tcp-path-preface")) {
      continue;
    }
    ++seen;
    get_hex(b, "encoded", &enc);
    assert_int_equal(enc.len, PRD_TCP_PREFACE_LEN);
    want = tcp_verdict_of(b);
    /* Whole. */
    assert_int_equal(prd_tcp_preface_check(enc.data, enc.len), want);
    /* One byte at a time: the verdict on the 8th, not before. */
    for (n = 0; n < enc.len; ++n) {
      assert_int_equal(prd_tcp_preface_check(enc.data, n), PRD_ERR_NEED_MORE);
    }
    /* A record behind it changes nothing. */
    memcpy(more, enc.data, enc.len);
    memcpy(more + enc.len, "\x00\x01\xff", 3);
    assert_int_equal(prd_tcp_preface_check(more, sizeof(more)), want);
    if (want == PRD_TCP_PREFACE_OURS) {
      assert_memory_equal(enc.data, prd_tcp_preface, PRD_TCP_PREFACE_LEN);
    }
  }
  assert_true(seen >= 3);
  prd_tv_free(&vf);
}

/* What a receiver took from one direction's bytes (spec/11-tcp-path.md
 * §2.2): the datagrams (offsets into the whole input), the error and the
 * bytes fed up to it, the bytes left over. */
typedef struct tcp_rx {
  size_t ndgrams;
  size_t dgoff[16], dglen[16];
  int err;    /* 0 or the framing error */
  size_t fed; /* bytes given to the receiver, up to the error */
  size_t pending;
} tcp_rx;

/* tcp_receive feeds |in| to a receiver |chunk| bytes at a time, taking the
 * records out after each chunk as relay/qtcp.c does, and stops at the first
 * framing error. */
static void tcp_receive(const uint8_t *in, size_t inlen, size_t chunk,
                        tcp_rx *rx) {
  static uint8_t buf[BUFLEN];
  size_t have = 0, consumed = 0;
  prd_tcp_record rec;
  int rv;

  memset(rx, 0, sizeof(*rx));
  while (rx->fed < inlen && rx->err == 0) {
    size_t n = inlen - rx->fed < chunk ? inlen - rx->fed : chunk;
    assert_true(have + n <= sizeof(buf));
    memcpy(buf + have, in + rx->fed, n);
    have += n;
    rx->fed += n;
    for (;;) {
      rv = prd_tcp_record_next(&rec, buf, have, PRD_TCP_RECORD_MAX);
      if (rv == PRD_ERR_NEED_MORE) {
        assert_true(rec.size > have);
        break;
      }
      if (rv != 0) {
        assert_non_null(rec.why);
        rx->err = rv;
        break;
      }
      assert_int_equal(rec.off, PRD_TCP_RECORD_HDR_LEN);
      assert_in_range(rec.len, 1, PRD_TCP_RECORD_MAX);
      assert_int_equal(rec.size, rec.off + rec.len);
      assert_true(rec.size <= have);
      assert_true(rx->ndgrams < 16);
      rx->dgoff[rx->ndgrams] = consumed + rec.off;
      rx->dglen[rx->ndgrams] = rec.len;
      ++rx->ndgrams;
      consumed += rec.size;
      have -= rec.size;
      memmove(buf, buf + rec.size, have);
    }
  }
  /* The bytes add up: records taken, then what waits. */
  assert_int_equal(consumed + have, rx->fed);
  rx->pending = rx->err ? 0 : have;
}

/* spec/11-tcp-path.md §2.2: every tcp-path-records vector, whole and one
 * byte at a time, gives its datagrams, its error and its pending bytes; a
 * Length of 0 is met as soon as it is complete and nothing after it is
 * read. */
static void test_codec_tcp_records_vectors(void **state) {
  static const size_t chunks[] = {BUFLEN, 1, 2, 3};
  prd_tv_file vf;
  bytes enc, dg;
  char key[32];
  tcp_rx rx;
  size_t i, c, k, seen = 0, want_n, want_pending, end;
  const char *err;
  int want_err;

  (void)state;
  load(&vf, "tcp-path.txt");
  for (i = 0; i < vf.nblocks; ++i) {
    const prd_tv_block *b = &vf.blocks[i];
    if (!prd_tv_is_kind(b, "tcp-path-records")) {
      continue;
    }
    ++seen;
    get_hex(b, "encoded", &enc);
    want_n = get_u64(b, "datagrams");
    want_pending = get_u64(b, "pending");
    err = prd_tv_get(b, "error");
    assert_non_null(err);
    if (strcmp(err, "none") == 0) {
      want_err = 0;
    } else if (strcmp(err, "zero-length") == 0) {
      want_err = PRD_ERR_FRAME_ENCODING;
    } else {
      fail_msg("%s: unknown error %s", prd_tv_name(b), err);
      return;
    }
    for (c = 0; c < sizeof(chunks) / sizeof(chunks[0]); ++c) {
      tcp_receive(enc.data, enc.len, chunks[c], &rx);
      assert_int_equal(rx.ndgrams, want_n);
      assert_int_equal(rx.err, want_err);
      assert_int_equal(rx.pending, want_pending);
      end = 0;
      for (k = 0; k < want_n; ++k) {
        snprintf(key, sizeof(key), "datagram-%zu", k + 1);
        get_hex(b, key, &dg);
        assert_int_equal(rx.dglen[k], dg.len);
        assert_memory_equal(enc.data + rx.dgoff[k], dg.data, dg.len);
        end = rx.dgoff[k] + dg.len;
      }
      if (want_err != 0 && chunks[c] == 1) {
        /* Fed one byte at a time, the error comes with the Length's
         * second byte: the bytes behind it are never read. */
        assert_int_equal(rx.fed, end + PRD_TCP_RECORD_HDR_LEN);
      }
    }
  }
  assert_true(seen >= 3);
  prd_tv_free(&vf);
}

/* spec/11-tcp-path.md §2.2: Lengths 1 to 65535; 0 and above what the
 * receiver accepts (at least 65527) are framing errors, known from the
 * Length alone. */
static void test_codec_tcp_record_limits(void **state) {
  static uint8_t big[PRD_TCP_RECORD_HDR_LEN + PRD_TCP_RECORD_MAX];
  prd_tcp_record rec;

  (void)state;
  /* Before the Length is complete: NEED_MORE, the header's size. */
  assert_int_equal(prd_tcp_record_next(&rec, big, 0, PRD_TCP_RECORD_MAX),
                   PRD_ERR_NEED_MORE);
  assert_int_equal(rec.size, PRD_TCP_RECORD_HDR_LEN);
  assert_int_equal(prd_tcp_record_next(&rec, big, 1, PRD_TCP_RECORD_MAX),
                   PRD_ERR_NEED_MORE);
  assert_int_equal(rec.size, PRD_TCP_RECORD_HDR_LEN);
  /* Length 0. */
  big[0] = 0x00;
  big[1] = 0x00;
  assert_int_equal(prd_tcp_record_next(&rec, big, 2, PRD_TCP_RECORD_MAX),
                   PRD_ERR_FRAME_ENCODING);
  assert_string_equal(rec.why, "a record of length 0 (a framing error)");
  /* Length 1, then 65535, the largest: accepted by this receiver. */
  big[1] = 0x01;
  assert_int_equal(prd_tcp_record_next(&rec, big, 2, PRD_TCP_RECORD_MAX),
                   PRD_ERR_NEED_MORE);
  assert_int_equal(rec.size, 3);
  assert_int_equal(prd_tcp_record_next(&rec, big, 3, PRD_TCP_RECORD_MAX), 0);
  assert_int_equal(rec.len, 1);
  big[0] = 0xff;
  big[1] = 0xff;
  assert_int_equal(
      prd_tcp_record_next(&rec, big, sizeof(big) - 1, PRD_TCP_RECORD_MAX),
      PRD_ERR_NEED_MORE);
  assert_int_equal(rec.size, sizeof(big));
  assert_int_equal(
      prd_tcp_record_next(&rec, big, sizeof(big), PRD_TCP_RECORD_MAX), 0);
  assert_int_equal(rec.off, 2);
  assert_int_equal(rec.len, 65535);
  assert_int_equal(rec.size, sizeof(big));
  /* A receiver that accepts only 65527 (what every one must): 65528 is an
   * error from the Length alone, 65527 is not. */
  big[0] = 0xff;
  big[1] = 0xf8;
  assert_int_equal(prd_tcp_record_next(&rec, big, 2, 65527),
                   PRD_ERR_FRAME_TOO_LARGE);
  assert_non_null(rec.why);
  big[1] = 0xf7;
  assert_int_equal(prd_tcp_record_next(&rec, big, 2, 65527), PRD_ERR_NEED_MORE);
  assert_int_equal(rec.size, 2 + 65527);
  /* maxlen is clamped to 65527..65535. */
  big[1] = 0xf8;
  assert_int_equal(prd_tcp_record_next(&rec, big, 2, 0),
                   PRD_ERR_FRAME_TOO_LARGE);
  big[1] = 0xff;
  assert_int_equal(prd_tcp_record_next(&rec, big, 2, 1000000),
                   PRD_ERR_NEED_MORE);
  assert_int_equal(rec.size, sizeof(big));
}

/* spec/11-tcp-path.md §2.2, the worked example: a client's preface and one
 * datagram of 5 bytes, "c3 00 00 00 01", as one byte stream. */
static void test_codec_tcp_stream_spec_example(void **state) {
  static const uint8_t wire[] = {0x50, 0x52, 0x44, 0x2d, 0x51, 0x4f, 0x54, 0x01,
                                 0x00, 0x05, 0xc3, 0x00, 0x00, 0x00, 0x01};
  prd_tcp_record rec;

  (void)state;
  assert_int_equal(prd_tcp_preface_check(wire, sizeof(wire)),
                   PRD_TCP_PREFACE_OURS);
  assert_int_equal(prd_tcp_record_next(&rec, wire + PRD_TCP_PREFACE_LEN,
                                       sizeof(wire) - PRD_TCP_PREFACE_LEN,
                                       PRD_TCP_RECORD_MAX),
                   0);
  assert_int_equal(rec.len, 5);
  assert_int_equal(PRD_TCP_PREFACE_LEN + rec.size, sizeof(wire));
  assert_memory_equal(wire + PRD_TCP_PREFACE_LEN + rec.off,
                      "\xc3\x00\x00\x00\x01", 5);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_codec_varint_vectors),
      cmocka_unit_test(test_codec_varint_limits),
      cmocka_unit_test(test_codec_frame_vectors),
      cmocka_unit_test(test_codec_frame_truncation),
      cmocka_unit_test(test_codec_frame_roundtrip),
      cmocka_unit_test(test_codec_frame_too_large),
      cmocka_unit_test(test_codec_frame_unknown_type),
      cmocka_unit_test(test_codec_frame_nonminimal),
      cmocka_unit_test(test_codec_frame_malformed),
      cmocka_unit_test(test_codec_frame_encode_errors),
      cmocka_unit_test(test_codec_frame_reader_chunks),
      cmocka_unit_test(test_codec_frame_reader_byte_at_a_time),
      cmocka_unit_test(test_codec_frame_reader_errors),
      cmocka_unit_test(test_codec_invalid_vectors),
      cmocka_unit_test(test_codec_stream_header_vectors),
      cmocka_unit_test(test_codec_stream_header_byte_at_a_time),
      cmocka_unit_test(test_codec_stream_header_roundtrip),
      cmocka_unit_test(test_codec_stream_header_too_large),
      cmocka_unit_test(test_codec_stream_header_fields),
      cmocka_unit_test(test_codec_stream_header_encode_errors),
      cmocka_unit_test(test_codec_app_err_name),
      cmocka_unit_test(test_codec_service_name_valid),
      cmocka_unit_test(test_codec_services_build),
      cmocka_unit_test(test_codec_services_malformed),
      cmocka_unit_test(test_codec_service_refused),
      cmocka_unit_test(test_codec_auth_result_flags),
      cmocka_unit_test(test_codec_reader_features),
      cmocka_unit_test(test_codec_stream_header_service),
      cmocka_unit_test(test_codec_udp_vectors),
      cmocka_unit_test(test_codec_tcp_preface_vectors),
      cmocka_unit_test(test_codec_tcp_records_vectors),
      cmocka_unit_test(test_codec_tcp_record_limits),
      cmocka_unit_test(test_codec_tcp_stream_spec_example),
  };

  return cmocka_run_group_tests_name("codec", tests, NULL, NULL);
}
