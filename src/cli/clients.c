/* SPDX-License-Identifier: GPL-3.0-only */
/* The clients file (spec/06-files-and-cli.md §4.1): one client per line,
 * NAME psk-file=PATH services=A,B|* [allow=CIDR ...]. */
#include "clients.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/err.h"
#include "../common/file.h"
#include "../common/log.h"
#include "opts_priv.h"

#define CLIENTS_FILE_MAX (1024 * 1024)
#define CLIENTS_MAX 4096
#define PSK_SHORT 16

typedef struct clients_ctx {
  const char *path;
  char dir[MAX_PATH_BYTES];
  size_t line;
  char *err;
  size_t errlen;
} clients_ctx;

/* fail formats "FILE:LINE: what" into the context's buffer; returns -1. */
static int fail(clients_ctx *x, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int fail(clients_ctx *x, const char *fmt, ...) {
  char what[1024];
  va_list ap;

  va_start(ap, fmt);
  vsnprintf(what, sizeof(what), fmt, ap);
  va_end(ap);
  if (x->line > 0) {
    return prd_err_fmt(x->err, x->errlen, "%s:%zu: %s", x->path, x->line, what);
  }
  return prd_err_fmt(x->err, x->errlen, "%s: %s", x->path, what);
}

/* quote copies |s| (|n| bytes) into |buf| for a message, escaped. */
static const char *quote(char *buf, size_t buflen, const char *s, size_t n) {
  return prd_log_escape(buf, buflen, (const uint8_t *)s, n);
}

/* read_psk reads the client's PSK file by the rules of spec/03-auth.md §7.
 * Returns 0 or -1 (reported). */
static int read_psk(clients_ctx *x, prd_relay_client *cl, const char *value) {
  char path[MAX_PATH_BYTES];
  uint8_t *data = NULL;
  size_t len = 0, readlen;
  unsigned mode = 0;
  int n, rv;

  if (value[0] == '\0') {
    return fail(x, "psk-file= needs a path");
  }
  n = value[0] == '/' ? snprintf(path, sizeof(path), "%s", value)
                      : snprintf(path, sizeof(path), "%s/%s", x->dir, value);
  if (n < 0 || (size_t)n >= sizeof(path)) {
    return fail(x, "psk-file path too long");
  }
  rv = prd_file_read_mode(&data, &len, &mode, path, PRD_AUTH_PSK_MAX + 2);
  if (rv != 0) {
    return fail(x, "client %s: cannot read psk-file %s: %s", cl->name, path,
                rv == PRD_ERR_FRAME_TOO_LARGE ? "longer than 1024 bytes"
                                              : strerror(-rv));
  }
  readlen = len;
  /* spec/03-auth.md §7: one trailing LF or CR LF is not part of it. */
  if (len > 0 && data[len - 1] == '\n') {
    --len;
    if (len > 0 && data[len - 1] == '\r') {
      --len;
    }
  }
  if (len == 0 || len > PRD_AUTH_PSK_MAX) {
    explicit_bzero(data, readlen);
    free(data);
    return fail(x, "client %s: psk-file %s: %s", cl->name, path,
                len == 0 ? "empty PSK refused" : "longer than 1024 bytes");
  }
  cl->psk = data;
  cl->psklen = len;
  if (readlen > len) {
    explicit_bzero(data + len, readlen - len);
  }
  if (len < PSK_SHORT) {
    PRD_LOG_WARN("%s:%zu: client %s: its PSK is only %zu bytes: whoever "
                 "impersonates the server could guess it offline; make one "
                 "with: openssl rand -base64 32 > %s",
                 x->path, x->line, cl->name, len, path);
  }
  if (!prd_file_mode_private(mode)) {
    PRD_LOG_WARN("%s:%zu: client %s: psk-file %s is readable by "
                 "group/others (mode %04o); run: chmod 600 %s",
                 x->path, x->line, cl->name, path, mode, path);
  }
  return 0;
}

/* parse_services reads services=* or a comma-separated list. Returns 0 or
 * -1 (reported). */
static int parse_services(clients_ctx *x, prd_relay_client *cl,
                          const char *value) {
  const char *p = value;
  char q[300];

  if (strcmp(value, "*") == 0) {
    cl->all_services = 1;
    return 0;
  }
  for (;;) {
    size_t n = strcspn(p, ",");
    if (!prd_service_name_valid(p, n)) {
      return fail(x,
                  "client %s: invalid service name \"%s\" in services= "
                  "(1-63 of A-Z a-z 0-9 . _ -, or services=*)",
                  cl->name, quote(q, sizeof(q), p, n));
    }
    for (size_t i = 0; i < cl->nservices; ++i) {
      if (strlen(cl->services[i]) == n && memcmp(cl->services[i], p, n) == 0) {
        return fail(x, "client %s: service %s listed twice", cl->name,
                    cl->services[i]);
      }
    }
    if (cl->nservices >= PRD_RELAY_MAX_SERVICES) {
      return fail(x, "client %s: more than %d services", cl->name,
                  PRD_RELAY_MAX_SERVICES);
    }
    memcpy(cl->services[cl->nservices], p, n);
    cl->services[cl->nservices][n] = '\0';
    ++cl->nservices;
    if (p[n] == '\0') {
      return 0;
    }
    p += n + 1;
  }
}

/* parse_line parses one client line (|s| is NUL-terminated and may be
 * changed) into |cl|. Returns 0 or -1 (reported; cl->psk freed). */
static int parse_line(clients_ctx *x, prd_relay_client *cl, char *s) {
  static const char ws[] = " \t";
  char q[300];
  char *tok, *save = NULL;
  int have_services = 0;

  memset(cl, 0, sizeof(*cl));
  tok = strtok_r(s, ws, &save);
  if (!prd_client_name_valid(tok, strlen(tok))) {
    return fail(x,
                "invalid client name \"%s\" (1-64 of A-Z a-z 0-9 . _ -, "
                "not starting with . or -)",
                quote(q, sizeof(q), tok, strlen(tok)));
  }
  memcpy(cl->name, tok, strlen(tok) + 1);
  while ((tok = strtok_r(NULL, ws, &save)) != NULL) {
    if (strncmp(tok, "psk-file=", 9) == 0) {
      if (cl->psk != NULL) {
        goto twice;
      }
      if (read_psk(x, cl, tok + 9) != 0) {
        return -1;
      }
    } else if (strncmp(tok, "services=", 9) == 0) {
      if (have_services) {
        goto twice;
      }
      have_services = 1;
      if (parse_services(x, cl, tok + 9) != 0) {
        goto out;
      }
    } else if (strncmp(tok, "allow=", 6) == 0) {
      prd_opts_prefix p;
      if (cl->nallow >= PRD_RELAY_MAX_ALLOW) {
        fail(x, "client %s: more than %d allow=", cl->name,
             PRD_RELAY_MAX_ALLOW);
        goto out;
      }
      if (prd_opts_parse_prefix(&p, tok + 6) != 0) {
        fail(x,
             "client %s: invalid allow \"%s\" (expected ADDR/BITS or ADDR, "
             "IPv4 or IPv6)",
             cl->name, quote(q, sizeof(q), tok + 6, strlen(tok + 6)));
        goto out;
      }
      cl->allow[cl->nallow].family = p.family;
      cl->allow[cl->nallow].bits = p.bits;
      memcpy(cl->allow[cl->nallow].addr, p.addr, sizeof(p.addr));
      ++cl->nallow;
    } else {
      fail(x,
           "client %s: unknown field \"%s\" (expected psk-file=, services= "
           "or allow=)",
           cl->name, quote(q, sizeof(q), tok, strcspn(tok, "=")));
      goto out;
    }
  }
  if (cl->psk == NULL) {
    fail(x, "client %s: psk-file= is required", cl->name);
    goto out;
  }
  if (!have_services) {
    fail(x, "client %s: services= is required (a list, or * for all)",
         cl->name);
    goto out;
  }
  return 0;
twice:
  fail(x, "client %s: %.*s given twice", cl->name, (int)strcspn(tok, "="), tok);
out:
  if (cl->psk != NULL) {
    explicit_bzero(cl->psk, cl->psklen);
    free(cl->psk);
    cl->psk = NULL;
  }
  return -1;
}

void prd_clients_free(prd_relay_client *clients, size_t n) {
  if (clients == NULL) {
    return;
  }
  for (size_t i = 0; i < n; ++i) {
    if (clients[i].psk != NULL) {
      explicit_bzero(clients[i].psk, clients[i].psklen);
      free(clients[i].psk);
    }
  }
  explicit_bzero(clients, n * sizeof(*clients));
  free(clients);
}

int prd_clients_parse(prd_relay_client **pclients, size_t *pn, const char *path,
                      char *err, size_t errlen) {
  clients_ctx x = {.path = path, .err = err, .errlen = errlen};
  prd_relay_client *cl = NULL;
  size_t n = 0, cap = 0;
  uint8_t *data = NULL;
  size_t len = 0, off = 0;
  unsigned mode = 0;
  int rv;

  *pclients = NULL;
  *pn = 0;
  if (prd_file_dir_of(x.dir, sizeof(x.dir), path) != 0) {
    return fail(&x, "path too long");
  }
  /* spec/06-files-and-cli.md §4.1: like key.der, private to its owner. The
   * mode of the descriptor read, not of a stat() before the open. */
  rv = prd_file_read_private(&data, &len, &mode, path, CLIENTS_FILE_MAX);
  if (rv == PRD_ERR_FILE_MODE) {
    return fail(&x, "readable by group/others (mode %04o); run: chmod 600 %s",
                mode, path);
  }
  if (rv != 0) {
    return fail(&x, "cannot read: %s",
                rv == PRD_ERR_FRAME_TOO_LARGE ? "file too large (1 MiB at most)"
                                              : strerror(-rv));
  }
  while (off < len) {
    char line[8192];
    size_t ll = 0, start;
    char *s;

    ++x.line;
    start = off;
    while (off < len && data[off] != '\n') {
      ++off;
    }
    ll = off - start;
    if (off < len) {
      ++off;
    }
    if (ll >= sizeof(line)) {
      fail(&x, "line too long");
      goto fail;
    }
    memcpy(line, data + start, ll);
    line[ll] = '\0';
    if (ll > 0 && line[ll - 1] == '\r') {
      line[--ll] = '\0';
    }
    if (memchr(line, '\0', ll) != NULL) {
      fail(&x, "NUL byte in line");
      goto fail;
    }
    s = line + strspn(line, " \t");
    if (*s == '\0' || *s == '#') {
      continue;
    }
    if (n == cap) {
      size_t ncap = cap ? cap * 2 : 8;
      prd_relay_client *ncl;
      if (ncap > CLIENTS_MAX) {
        fail(&x, "more than %d clients", CLIENTS_MAX);
        goto fail;
      }
      ncl = calloc(ncap, sizeof(*ncl));
      if (ncl == NULL) {
        fail(&x, "out of memory");
        goto fail;
      }
      if (n > 0) {
        memcpy(ncl, cl, n * sizeof(*cl));
        explicit_bzero(cl, n * sizeof(*cl));
      }
      free(cl);
      cl = ncl;
      cap = ncap;
    }
    if (parse_line(&x, &cl[n], s) != 0) {
      goto fail;
    }
    for (size_t i = 0; i < n; ++i) {
      if (strcmp(cl[i].name, cl[n].name) == 0) {
        ++n; /* freed below */
        fail(&x, "client %s defined twice", cl[n - 1].name);
        goto fail;
      }
    }
    ++n;
  }
  explicit_bzero(data, len);
  free(data);
  *pclients = cl;
  *pn = n;
  return 0;
fail:
  explicit_bzero(data, len);
  free(data);
  prd_clients_free(cl, n);
  return -1;
}

int prd_cli_clients_build(prd_relay_config *rc, const prd_opts *o, char *err,
                          size_t errlen) {
  prd_relay_client *cl = NULL, *all;
  size_t n = 0;

  if (o->clients_file[0] != '\0' &&
      prd_clients_parse(&cl, &n, o->clients_file, err, errlen) != 0) {
    return -1;
  }
  if (o->psk != NULL) {
    /* --quic-psk and friends: the client "default" that may serve every
     * service from anywhere (spec/06-files-and-cli.md §4.1). */
    for (size_t i = 0; i < n; ++i) {
      if (strcmp(cl[i].name, PRD_CLIENT_DEFAULT) == 0) {
        prd_clients_free(cl, n);
        return prd_err_fmt(err, errlen,
                           "%s: a client named default and --quic-psk, "
                           "--quic-psk-file or PORTREDIRECT_PSK: give one of "
                           "them",
                           o->clients_file);
      }
    }
    all = calloc(n + 1, sizeof(*all));
    if (all == NULL || (all[n].psk = malloc(o->psklen)) == NULL) {
      free(all);
      prd_clients_free(cl, n);
      return prd_err_fmt(err, errlen, "out of memory");
    }
    if (n > 0) {
      memcpy(all, cl, n * sizeof(*cl));
      explicit_bzero(cl, n * sizeof(*cl));
    }
    free(cl);
    cl = all;
    memcpy(cl[n].name, PRD_CLIENT_DEFAULT, sizeof(PRD_CLIENT_DEFAULT));
    memcpy(cl[n].psk, o->psk, o->psklen);
    cl[n].psklen = o->psklen;
    cl[n].all_services = 1;
    ++n;
  }
  if (n == 0) {
    prd_clients_free(cl, n);
    return prd_err_fmt(err, errlen,
                       "%s: no client: add a line, or give --quic-psk-file",
                       o->clients_file[0] ? o->clients_file : "--clients-file");
  }
  rc->clients = cl;
  rc->nclients = n;
  return 0;
}

void prd_cli_config_release(prd_relay_config *rc) {
  prd_clients_free(rc->clients, rc->nclients);
  rc->clients = NULL;
  rc->nclients = 0;
}
