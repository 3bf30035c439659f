/* SPDX-License-Identifier: GPL-3.0-only */
/* Test and fuzz entry point of the option parser (streams and config text). */
#ifndef PRD_OPTS_INTERNAL_H
#define PRD_OPTS_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "opts.h"

/* Where prd_opts_parse_io writes, and optionally the config file's text. */
typedef struct prd_opts_io {
  FILE *out;               /* --help and --version text (stdout) */
  FILE *err;               /* diagnostics (stderr) */
  const char *config_buf;  /* when not NULL: used as the config file's text */
  size_t config_len;       /* length of |config_buf| (may hold NUL bytes) */
  const char *config_name; /* file name in messages for |config_buf| */
} prd_opts_io;

/* prd_opts_parse_io is prd_opts_parse with the output streams of |io|. When
 * |io->config_buf| is not NULL it is parsed as the config file (whether or not
 * --config is given) instead of reading --config FILE. |argv| is borrowed for
 * the call only. Returns 1 (help or version printed), 0 (run) or -1 (one error
 * line written to |io->err|); on 1 and -1 |o->psk| is NULL. */
int prd_opts_parse_io(prd_opts *o, prd_role role, int argc, char **argv,
                      const prd_opts_io *io);

/* prd_parse_fingerprint reads a SHA-256 certificate fingerprint as
 * --print-fingerprint prints it ("SHA256:AB:CD:..."; prefix and colons
 * optional, any case) into |out|. Returns 0 or -1. */
int prd_parse_fingerprint(uint8_t out[PRD_FINGERPRINT_BYTES], const char *s);

#endif
