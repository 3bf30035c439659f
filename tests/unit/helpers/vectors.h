/* SPDX-License-Identifier: GPL-3.0-only */
/* Loader for the test vectors in spec/test-vectors/ (format described in
 * spec/test-vectors/README.md), shared by every unit test.
 *
 * Typical use:
 *
 *   prd_tv_file vf;
 *   size_t i;
 *
 *   assert_int_equal(prd_tv_load(&vf, "frames.txt"), 0);
 *   for (i = 0; i < vf.nblocks; ++i) {
 *     const prd_tv_block *b = &vf.blocks[i];
 *     uint8_t enc[2048];
 *     size_t enclen;
 *     uint64_t version;
 *
 *     if (prd_tv_is_kind(b, "frame")) {
 *       assert_int_equal(prd_tv_get_hex(b, "encoded", enc, sizeof(enc),
 *                                       &enclen), 0);
 *       assert_int_equal(prd_tv_get_u64(b, "version", &version), 0);
 *     }
 *   }
 *   prd_tv_free(&vf);
 *
 * Every getter prints a diagnostic naming the file, the block's line and its
 * name to stderr when it fails, so a test only needs to assert the return
 * value. The loader allocates; it is for tests only. */
#ifndef PRD_TEST_VECTORS_H
#define PRD_TEST_VECTORS_H

#include <stddef.h>
#include <stdint.h>

typedef struct prd_tv_field {
  char *key;   /* NUL-terminated, e.g. "encoded" */
  char *value; /* NUL-terminated; continuation lines joined with one space */
} prd_tv_field;

typedef struct prd_tv_block {
  const char *path; /* the file the block came from (borrowed) */
  size_t line;      /* line number of the block's first field */
  size_t nfields;
  prd_tv_field *fields; /* in file order */
} prd_tv_block;

typedef struct prd_tv_file {
  char *path;
  size_t nblocks;
  prd_tv_block *blocks; /* in file order */
} prd_tv_file;

/* prd_tv_path writes into |dest| the path of the vector file |name|:
 * |name| itself if it contains a '/', else $PRD_SPEC_DIR/test-vectors/|name|
 * (the environment variable, else the compile-time PRD_SPEC_DIR, else
 * "spec"). Returns 0, or -1 if |destlen| is too small. */
int prd_tv_path(char *dest, size_t destlen, const char *name);

/* prd_tv_load reads and parses the vector file |name| (see prd_tv_path) into
 * |vf|. Returns 0, or -1 (file unreadable or syntax error, with a message on
 * stderr; |vf| is then empty). Free |vf| with prd_tv_free. */
int prd_tv_load(prd_tv_file *vf, const char *name);

/* prd_tv_free frees everything prd_tv_load allocated. Blocks and strings
 * obtained from |vf| are invalid afterwards. Safe on a zeroed |vf|. */
void prd_tv_free(prd_tv_file *vf);

/* prd_tv_find returns the block whose "name" is |name|, or NULL. */
const prd_tv_block *prd_tv_find(const prd_tv_file *vf, const char *name);

/* prd_tv_get returns the value of field |key| in |b| (borrowed from the
 * file), or NULL when |b| has no such field. Does not print. */
const char *prd_tv_get(const prd_tv_block *b, const char *key);

/* prd_tv_name returns the block's "name" field, or "(unnamed)". */
const char *prd_tv_name(const prd_tv_block *b);

/* prd_tv_is_kind returns 1 if the block's "kind" field equals |kind|. */
int prd_tv_is_kind(const prd_tv_block *b, const char *kind);

/* prd_tv_get_hex decodes field |key| (hex digit pairs, spaces ignored, empty
 * means zero bytes) into |dest| and sets |*plen|. Returns 0, or -1 when the
 * field is absent, not hex, or longer than |destlen|. */
int prd_tv_get_hex(const prd_tv_block *b, const char *key, uint8_t *dest,
                   size_t destlen, size_t *plen);

/* prd_tv_get_u64 parses field |key| as an unsigned integer (decimal, or hex
 * with 0x) into |*pv|. Returns 0, or -1 when absent or not a number. */
int prd_tv_get_u64(const prd_tv_block *b, const char *key, uint64_t *pv);

#endif
