/* SPDX-License-Identifier: GPL-3.0-only */
/* Unit tests for the log escaping of network bytes (src/common/log.c). */
/* cmocka needs these first. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "common/log.h"

static void esc(char *out, size_t outlen, const char *in, size_t inlen) {
  prd_log_escape(out, outlen, (const uint8_t *)in, inlen);
}

static void test_escape_printable(void **state) {
  char out[64];
  (void)state;
  esc(out, sizeof(out), "peer said: bye", 14);
  assert_string_equal(out, "peer said: bye");
  esc(out, sizeof(out), NULL, 0);
  assert_string_equal(out, "");
}

static void test_escape_controls(void **state) {
  char out[128];
  static const char in[] = "a\nINFO forged\x1b[2J\\\r\x7f\xff\0z";
  (void)state;
  esc(out, sizeof(out), in, sizeof(in) - 1);
  assert_string_equal(out,
                      "a\\x0aINFO forged\\x1b[2J\\\\\\x0d\\x7f\\xff\\x00z");
  assert_null(strchr(out, '\n'));
  assert_null(strchr(out, 0x1b));
}

static void test_escape_truncates(void **state) {
  char out[12];
  char big[100];
  (void)state;
  memset(big, '\n', sizeof(big));
  esc(out, sizeof(out), big, sizeof(big));
  /* Whole escapes only, then "...". */
  assert_string_equal(out, "\\x0a\\x0a...");
  memset(big, 'x', sizeof(big));
  esc(out, sizeof(out), big, sizeof(big));
  assert_string_equal(out, "xxxxxxxx...");
  esc(out, 1, big, sizeof(big));
  assert_string_equal(out, "");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_escape_printable),
      cmocka_unit_test(test_escape_controls),
      cmocka_unit_test(test_escape_truncates),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
