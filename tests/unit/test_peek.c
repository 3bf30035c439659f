/* SPDX-License-Identifier: GPL-3.0-only */
/* relay/peek.c: the server name of a TLS ClientHello (RFC 8446, RFC 6066)
 * and the host of an HTTP/1.x request head (RFC 9112), as sni= and host=
 * routing reads them (README "Services"). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "relay/peek.h"

/* The first flight of `openssl s_client -servername A.Example` (OpenSSL
 * 3.0), as captured on the wire: one record, SNI among 10 extensions. */
static const uint8_t openssl_hello[] = {
    0x16, 0x03, 0x01, 0x01, 0x36, 0x01, 0x00, 0x01, 0x32, 0x03, 0x03, 0x21,
    0x70, 0x56, 0xd2, 0x8c, 0x6d, 0x06, 0x5b, 0xbe, 0xe8, 0x93, 0xe7, 0x11,
    0x04, 0x5b, 0x37, 0x17, 0xec, 0xb2, 0xcc, 0x47, 0x4d, 0xec, 0xb9, 0x32,
    0x98, 0xbd, 0x36, 0x27, 0xb9, 0x6f, 0x87, 0x20, 0x07, 0xe8, 0x0d, 0x96,
    0x00, 0x16, 0x6e, 0x9d, 0x3b, 0xda, 0xf8, 0x3d, 0xea, 0x34, 0x44, 0x02,
    0x2c, 0x5b, 0x35, 0xb9, 0x26, 0x30, 0x9b, 0x0e, 0xd2, 0x2d, 0xbc, 0x43,
    0x99, 0xc7, 0xa5, 0xb3, 0x00, 0x3e, 0x13, 0x02, 0x13, 0x03, 0x13, 0x01,
    0xc0, 0x2c, 0xc0, 0x30, 0x00, 0x9f, 0xcc, 0xa9, 0xcc, 0xa8, 0xcc, 0xaa,
    0xc0, 0x2b, 0xc0, 0x2f, 0x00, 0x9e, 0xc0, 0x24, 0xc0, 0x28, 0x00, 0x6b,
    0xc0, 0x23, 0xc0, 0x27, 0x00, 0x67, 0xc0, 0x0a, 0xc0, 0x14, 0x00, 0x39,
    0xc0, 0x09, 0xc0, 0x13, 0x00, 0x33, 0x00, 0x9d, 0x00, 0x9c, 0x00, 0x3d,
    0x00, 0x3c, 0x00, 0x35, 0x00, 0x2f, 0x00, 0xff, 0x01, 0x00, 0x00, 0xab,
    0x00, 0x00, 0x00, 0x0e, 0x00, 0x0c, 0x00, 0x00, 0x09, 0x41, 0x2e, 0x45,
    0x78, 0x61, 0x6d, 0x70, 0x6c, 0x65, 0x00, 0x0b, 0x00, 0x04, 0x03, 0x00,
    0x01, 0x02, 0x00, 0x0a, 0x00, 0x16, 0x00, 0x14, 0x00, 0x1d, 0x00, 0x17,
    0x00, 0x1e, 0x00, 0x19, 0x00, 0x18, 0x01, 0x00, 0x01, 0x01, 0x01, 0x02,
    0x01, 0x03, 0x01, 0x04, 0x00, 0x23, 0x00, 0x00, 0x00, 0x16, 0x00, 0x00,
    0x00, 0x17, 0x00, 0x00, 0x00, 0x0d, 0x00, 0x2a, 0x00, 0x28, 0x04, 0x03,
    0x05, 0x03, 0x06, 0x03, 0x08, 0x07, 0x08, 0x08, 0x08, 0x09, 0x08, 0x0a,
    0x08, 0x0b, 0x08, 0x04, 0x08, 0x05, 0x08, 0x06, 0x04, 0x01, 0x05, 0x01,
    0x06, 0x01, 0x03, 0x03, 0x03, 0x01, 0x03, 0x02, 0x04, 0x02, 0x05, 0x02,
    0x06, 0x02, 0x00, 0x2b, 0x00, 0x09, 0x08, 0x03, 0x04, 0x03, 0x03, 0x03,
    0x02, 0x03, 0x01, 0x00, 0x2d, 0x00, 0x02, 0x01, 0x01, 0x00, 0x33, 0x00,
    0x26, 0x00, 0x24, 0x00, 0x1d, 0x00, 0x20, 0x57, 0xc3, 0xce, 0x96, 0xda,
    0x19, 0x2d, 0xd3, 0xf8, 0xf5, 0x33, 0x25, 0x69, 0x48, 0xf1, 0xe4, 0x29,
    0x83, 0xef, 0x81, 0x00, 0x2e, 0x38, 0x93, 0xf0, 0xc7, 0x0c, 0x84, 0xfc,
    0x38, 0x13, 0x44,
};

/* hello builds a ClientHello record per RFC 8446 §4.1.2 into |out|: the
 * extensions |ext| (|extlen| bytes, already encoded) after a fixed body;
 * split into records of at most |frag| payload bytes. Returns its length. */
static size_t hello(uint8_t *out, size_t cap, const uint8_t *ext, size_t extlen,
                    size_t frag) {
  uint8_t hs[20000];
  size_t n = 0, o = 0;

  hs[n++] = 1; /* client_hello */
  n += 3;      /* length, below */
  hs[n++] = 3;
  hs[n++] = 3;
  memset(hs + n, 0xab, 32); /* random */
  n += 32;
  hs[n++] = 32; /* legacy_session_id */
  memset(hs + n, 0xcd, 32);
  n += 32;
  hs[n++] = 0;
  hs[n++] = 4; /* cipher_suites */
  hs[n++] = 0x13;
  hs[n++] = 0x01;
  hs[n++] = 0x13;
  hs[n++] = 0x02;
  hs[n++] = 1; /* legacy_compression_methods */
  hs[n++] = 0;
  hs[n++] = (uint8_t)(extlen >> 8);
  hs[n++] = (uint8_t)extlen;
  memcpy(hs + n, ext, extlen);
  n += extlen;
  hs[1] = (uint8_t)((n - 4) >> 16);
  hs[2] = (uint8_t)((n - 4) >> 8);
  hs[3] = (uint8_t)(n - 4);
  for (size_t i = 0; i < n; i += frag) {
    size_t k = n - i < frag ? n - i : frag;
    assert_true(o + 5 + k <= cap);
    out[o++] = 0x16;
    out[o++] = 3;
    out[o++] = 1;
    out[o++] = (uint8_t)(k >> 8);
    out[o++] = (uint8_t)k;
    memcpy(out + o, hs + i, k);
    o += k;
  }
  return o;
}

/* sni_ext encodes a server_name extension of one host_name |host|. */
static size_t sni_ext(uint8_t *e, const char *host) {
  size_t h = strlen(host);
  e[0] = 0;
  e[1] = 0;
  e[2] = (uint8_t)((h + 5) >> 8);
  e[3] = (uint8_t)(h + 5);
  e[4] = (uint8_t)((h + 3) >> 8);
  e[5] = (uint8_t)(h + 3);
  e[6] = 0; /* host_name */
  e[7] = (uint8_t)(h >> 8);
  e[8] = (uint8_t)h;
  memcpy(e + 9, host, h);
  return 9 + h;
}

static void test_peek_sni_openssl(void **state) {
  char name[PRD_PEEK_NAME_MAX];
  (void)state;

  assert_int_equal(prd_peek_sni(openssl_hello, sizeof(openssl_hello), name),
                   PRD_PEEK_FOUND);
  assert_string_equal(name, "a.example");
  /* Every prefix: more wanted, never a wrong answer. */
  for (size_t n = 0; n < sizeof(openssl_hello); ++n) {
    assert_int_equal(prd_peek_sni(openssl_hello, n, name), PRD_PEEK_MORE);
  }
  /* Bytes after the hello (more records) change nothing. */
  {
    uint8_t two[2 * sizeof(openssl_hello)];
    memcpy(two, openssl_hello, sizeof(openssl_hello));
    memcpy(two + sizeof(openssl_hello), openssl_hello, sizeof(openssl_hello));
    assert_int_equal(prd_peek_sni(two, sizeof(two), name), PRD_PEEK_FOUND);
  }
}

static void test_peek_sni_built(void **state) {
  uint8_t ext[2000], rec[20000];
  size_t e = 0, n;
  char name[PRD_PEEK_NAME_MAX];
  static const uint8_t other[] = {0x00, 0x0a, 0x00, 0x04, 0x00,
                                  0x02, 0x00, 0x1d}; /* supported_groups */
  (void)state;

  /* Several extensions, the name in the middle, fragmented in 7-byte
   * records. */
  memcpy(ext + e, other, sizeof(other));
  e += sizeof(other);
  e += sni_ext(ext + e, "B.example.");
  memcpy(ext + e, other, sizeof(other));
  e += sizeof(other);
  n = hello(rec, sizeof(rec), ext, e, 7);
  assert_int_equal(prd_peek_sni(rec, n, name), PRD_PEEK_FOUND);
  assert_string_equal(name, "b.example");
  assert_int_equal(prd_peek_sni(rec, n - 1, name), PRD_PEEK_MORE);

  /* No server_name. */
  n = hello(rec, sizeof(rec), other, sizeof(other), 16384);
  assert_int_equal(prd_peek_sni(rec, n, name), PRD_PEEK_NONE);
  /* An empty extension list. */
  n = hello(rec, sizeof(rec), other, 0, 16384);
  assert_int_equal(prd_peek_sni(rec, n, name), PRD_PEEK_NONE);
  /* A record cut short wants more. */
  assert_int_equal(prd_peek_sni(rec, n - 2, name), PRD_PEEK_MORE);

  /* A name with a byte no host name has. */
  e = sni_ext(ext, "a\x1b[31m.example");
  n = hello(rec, sizeof(rec), ext, e, 16384);
  assert_int_equal(prd_peek_sni(rec, n, name), PRD_PEEK_NONE);

  /* An extension longer than the extensions: malformed. */
  e = sni_ext(ext, "a.example");
  ext[3] = 0xff;
  n = hello(rec, sizeof(rec), ext, e, 16384);
  assert_int_equal(prd_peek_sni(rec, n, name), PRD_PEEK_NONE);

  /* Oversized: padding beyond PRD_PEEK_MAX before the name. */
  {
    static uint8_t big[PRD_PEEK_MAX + 100];
    size_t pad = PRD_PEEK_MAX;
    big[0] = 0x00;
    big[1] = 0x15; /* padding */
    big[2] = (uint8_t)(pad >> 8);
    big[3] = (uint8_t)pad;
    memset(big + 4, 0, pad);
    e = 4 + pad;
    n = hello(rec, sizeof(rec), big, e, 16384);
    assert_int_equal(prd_peek_sni(rec, n, name), PRD_PEEK_NONE);
    assert_int_equal(prd_peek_sni(rec, 100, name), PRD_PEEK_NONE);
  }
}

static void test_peek_sni_not_tls(void **state) {
  char name[PRD_PEEK_NAME_MAX];
  static const uint8_t alert[] = {0x15, 3, 3, 0, 2, 2, 40};
  static const uint8_t server_hello[] = {0x16, 3, 3, 0, 4, 2, 0, 0, 0};
  (void)state;

  assert_int_equal(
      prd_peek_sni((const uint8_t *)"GET / HTTP/1.1\r\n", 16, name),
      PRD_PEEK_NONE);
  assert_int_equal(prd_peek_sni((const uint8_t *)"G", 1, name), PRD_PEEK_NONE);
  assert_int_equal(prd_peek_sni(alert, sizeof(alert), name), PRD_PEEK_NONE);
  assert_int_equal(prd_peek_sni(server_hello, sizeof(server_hello), name),
                   PRD_PEEK_NONE);
  assert_int_equal(prd_peek_sni(alert, 0, name), PRD_PEEK_MORE);
}

#define S(x) (const uint8_t *)(x), strlen(x)

static void test_peek_http(void **state) {
  char name[PRD_PEEK_NAME_MAX];
  const char *req = "GET /x HTTP/1.1\r\nUser-Agent: t\r\nHOST: "
                    "Www.Example.org:8080 \r\nAccept: */*\r\n\r\nbody";
  (void)state;

  assert_int_equal(prd_peek_http_host(S(req), name), PRD_PEEK_FOUND);
  assert_string_equal(name, "www.example.org");
  for (size_t n = 0; n < strlen(req) - 4; ++n) {
    assert_int_equal(prd_peek_http_host((const uint8_t *)req, n, name),
                     PRD_PEEK_MORE);
  }
  assert_int_equal(
      prd_peek_http_host(S("GET / HTTP/1.0\nhost:a.example\n\n"), name),
      PRD_PEEK_FOUND);
  assert_string_equal(name, "a.example");
  /* absolute-form: the target's authority wins. */
  assert_int_equal(
      prd_peek_http_host(
          S("GET http://user@B.example:81/p?q HTTP/1.1\r\nHost: c\r\n\r\n"),
          name),
      PRD_PEEK_FOUND);
  assert_string_equal(name, "b.example");
  assert_int_equal(
      prd_peek_http_host(S("OPTIONS https://d.example HTTP/1.1\r\n\r\n"), name),
      PRD_PEEK_FOUND);
  assert_string_equal(name, "d.example");
  /* IPv6 literal. */
  assert_int_equal(
      prd_peek_http_host(S("GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n"), name),
      PRD_PEEK_FOUND);
  assert_string_equal(name, "::1");
  /* No Host, two Hosts, a bad port, a bad name, not HTTP. */
  assert_int_equal(
      prd_peek_http_host(S("GET / HTTP/1.1\r\nAccept: x\r\n\r\n"), name),
      PRD_PEEK_NONE);
  assert_int_equal(prd_peek_http_host(
                       S("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"), name),
                   PRD_PEEK_NONE);
  assert_int_equal(
      prd_peek_http_host(S("GET / HTTP/1.1\r\nHost: a:8x\r\n\r\n"), name),
      PRD_PEEK_NONE);
  assert_int_equal(
      prd_peek_http_host(S("GET / HTTP/1.1\r\nHost: a b\r\n\r\n"), name),
      PRD_PEEK_NONE);
  assert_int_equal(prd_peek_http_host(S("SSH-2.0-OpenSSH_9.2\r\n"), name),
                   PRD_PEEK_NONE);
  assert_int_equal(prd_peek_http_host(S("ssh"), name), PRD_PEEK_NONE);
  assert_int_equal(prd_peek_http_host(S("GET / SPDY/3\r\n\r\n"), name),
                   PRD_PEEK_NONE);
  assert_int_equal(
      prd_peek_http_host(openssl_hello, sizeof(openssl_hello), name),
      PRD_PEEK_NONE);
  /* Oversized: no end of the head within PRD_PEEK_MAX. */
  {
    static uint8_t big[PRD_PEEK_MAX];
    memset(big, 'a', sizeof(big));
    memcpy(big, "GET / HTTP/1.1\r\nX: ", 19);
    assert_int_equal(prd_peek_http_host(big, sizeof(big), name), PRD_PEEK_NONE);
    assert_int_equal(prd_peek_http_host(big, sizeof(big) - 1, name),
                     PRD_PEEK_MORE);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_peek_sni_openssl),
      cmocka_unit_test(test_peek_sni_built),
      cmocka_unit_test(test_peek_sni_not_tls),
      cmocka_unit_test(test_peek_http),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
