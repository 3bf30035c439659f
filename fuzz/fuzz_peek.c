/* SPDX-License-Identifier: GPL-3.0-only */
/* libFuzzer harness for the sni= and host= readers (src/relay/peek.c): any
 * bytes, at any length, give a valid answer; a name found is a non-empty,
 * lower-case host name; and a prefix of an input never finds a different
 * name (the server peeks as bytes arrive). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "relay/peek.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "fuzz_peek: invariant failed: %s\n", #cond);             \
      abort();                                                                 \
    }                                                                          \
  } while (0)

static void check_name(const char *name) {
  size_t n = strlen(name);
  CHECK(n > 0 && n < PRD_PEEK_NAME_MAX);
  for (size_t i = 0; i < n; ++i) {
    char ch = name[i];
    CHECK((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-' ||
          ch == '_' || ch == '.' || ch == ':');
  }
}

static void one(prd_peek_result (*f)(const uint8_t *, size_t, char *),
                const uint8_t *data, size_t size) {
  char name[PRD_PEEK_NAME_MAX], part[PRD_PEEK_NAME_MAX];
  prd_peek_result r = f(data, size, name), rp;
  size_t cut;

  CHECK(r == PRD_PEEK_MORE || r == PRD_PEEK_FOUND || r == PRD_PEEK_NONE);
  if (r == PRD_PEEK_FOUND) {
    check_name(name);
  }
  if (size >= PRD_PEEK_MAX) {
    CHECK(r != PRD_PEEK_MORE); /* bounded */
  }
  if (size == 0) {
    return;
  }
  /* A prefix either wants more or says the same. */
  cut = data[0] % size;
  rp = f(data, cut, part);
  if (rp == PRD_PEEK_FOUND) {
    CHECK(r == PRD_PEEK_FOUND && strcmp(name, part) == 0);
  } else if (rp == PRD_PEEK_NONE) {
    CHECK(r == PRD_PEEK_NONE);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  one(prd_peek_sni, data, size);
  one(prd_peek_http_host, data, size);
  return 0;
}
