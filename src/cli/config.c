/* SPDX-License-Identifier: GPL-3.0-only */
/* The --config file: lines of "key = value" (README "Config file"). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../common/err.h"
#include "../common/file.h"
#include "opts_priv.h"

static int is_space(char ch) { return ch == ' ' || ch == '\t'; }

/* parse_config_line applies one line (NUL-terminated, no line break). */
static int parse_config_line(parse_ctx *c, char *l) {
  unsigned mask = 1u << c->o->role;
  char *key;
  char *val;
  char *p;
  const opt_def *d;
  size_t n;

  for (p = l; is_space(*p); ++p) {
  }
  if (*p == '\0' || *p == '#') {
    return 0;
  }
  key = p;
  while (*p != '\0' && *p != '=' && !is_space(*p)) {
    ++p;
  }
  n = (size_t)(p - key);
  while (is_space(*p)) {
    ++p;
  }
  if (*p == '=') {
    for (++p; is_space(*p); ++p) {
    }
    val = p;
  } else if (*p == '\0' || *p == '#') {
    val = NULL; /* a bare key: only for flags */
  } else {
    key[n] = '\0';
    prd_opts_report(c, NULL, "expected \"key = value\" after %s",
                    prd_opts_quote(c, key));
    return -1;
  }
  key[n] = '\0';
  if (val != NULL && *val == '"') {
    char *close = strchr(val + 1, '"');
    if (close == NULL) {
      prd_opts_report(c, NULL, "missing closing quote");
      return -1;
    }
    for (p = close + 1; is_space(*p); ++p) {
    }
    if (*p != '\0' && *p != '#') {
      prd_opts_report(c, NULL, "unexpected text after the closing quote");
      return -1;
    }
    ++val;
    *close = '\0';
  } else if (val != NULL) {
    /* A '#' after whitespace starts a comment; then trim the value. */
    for (p = val; *p != '\0'; ++p) {
      if (*p == '#' && (p == val || is_space(p[-1]))) {
        break;
      }
    }
    while (p > val && is_space(p[-1])) {
      --p;
    }
    *p = '\0';
    if (*val == '\0') {
      val = NULL;
    }
  }
  d = prd_opts_find(key, n);
  if (d == NULL) {
    prd_opts_report(c, NULL, "unknown option %s", prd_opts_quote(c, key));
    return -1;
  }
  if (d->kind == KIND_ACTION || d == &prd_opt_defs[OPT_CONFIG]) {
    prd_opts_report(c, NULL, "option %s is not allowed in a config file",
                    prd_opts_quote(c, key));
    return -1;
  }
  if ((d->roles & mask) == 0) {
    prd_opts_report_other_role(c, d);
    return -1;
  }
  /* The command line wins, for repeatable keys and groups as a whole. */
  if (c->cli_seen[d - prd_opt_defs] ||
      (d->group != GROUP_NONE && c->cli_group[d->group])) {
    return 0;
  }
  if (val == NULL && d->kind != KIND_FLAG) {
    prd_opts_report(c, d, "missing value (%s)", d->arg);
    return -1;
  }
  c->file_seen[d - prd_opt_defs] = 1;
  return prd_opts_apply_value(c, (opt_id)(d - prd_opt_defs), val);
}

/* parse_config_buf applies a config file's text of |len| bytes. */
static int parse_config_buf(parse_ctx *c, const char *buf, size_t len) {
  char l[MAX_CONFIG_LINE + 2];
  size_t pos = 0;
  int rv = 0;

  c->in_file = 1;
  c->line = 0;
  while (pos < len && rv == 0) {
    const char *nl = memchr(buf + pos, '\n', len - pos);
    size_t n = nl != NULL ? (size_t)(nl - (buf + pos)) : len - pos;
    size_t m = n;

    ++c->line;
    if (m > 0 && buf[pos + m - 1] == '\r') {
      --m;
    }
    if (m > MAX_CONFIG_LINE) {
      prd_opts_report(c, NULL, "line too long (max %d bytes)", MAX_CONFIG_LINE);
      rv = -1;
    } else if (memchr(buf + pos, '\0', m) != NULL) {
      prd_opts_report(c, NULL, "NUL byte in line");
      rv = -1;
    } else {
      memcpy(l, buf + pos, m);
      l[m] = '\0';
      rv = parse_config_line(c, l);
      explicit_bzero(l, m); /* it may have held the PSK */
    }
    pos += n + (nl != NULL ? 1 : 0);
  }
  c->in_file = 0;
  return rv;
}

/* read_small_file reads all of |path| into a malloc'ed buffer. Returns 0, a
 * negative errno, or -EFBIG when the file is longer than |max| bytes. The
 * caller wipes and frees |*pbuf|. */
int prd_opts_read_file(char **pbuf, size_t *plen, const char *path, size_t max,
                       unsigned *pmode) {
  uint8_t *buf = NULL;
  unsigned mode = 0;
  int rv = prd_file_read_mode(&buf, plen, &mode, path, max);

  if (rv == PRD_ERR_FRAME_TOO_LARGE) {
    return -EFBIG;
  }
  if (rv != 0) {
    return rv;
  }
  if (pmode != NULL) {
    *pmode = mode;
  }
  *pbuf = (char *)buf;
  return 0;
}

int prd_opts_parse_config_file(parse_ctx *c, const prd_opts_io *io) {
  char *buf = NULL;
  size_t len = 0;
  int rv;

  if (io->config_buf != NULL) {
    c->file_name = io->config_name != NULL ? io->config_name : "<config>";
    return parse_config_buf(c, io->config_buf, io->config_len);
  }
  if (c->o->config_file[0] == '\0') {
    return 0;
  }
  c->file_name = c->o->config_file;
  rv =
      prd_opts_read_file(&buf, &len, c->o->config_file, MAX_CONFIG_BYTES, NULL);
  if (rv != 0) {
    prd_opts_report(c, &prd_opt_defs[OPT_CONFIG], "cannot read %s: %s",
                    prd_opts_quote(c, c->o->config_file),
                    rv == -EFBIG ? "larger than 1 MiB" : strerror(-rv));
    return -1;
  }
  rv = parse_config_buf(c, buf, len);
  explicit_bzero(buf, len);
  free(buf);
  return rv;
}
