/* SPDX-License-Identifier: GPL-3.0-only */
/* Loader for the spec/test-vectors/ files, shared by every unit test. */
#include "vectors.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef PRD_SPEC_DIR
#  define PRD_SPEC_DIR "spec"
#endif

int prd_tv_path(char *dest, size_t destlen, const char *name) {
  const char *dir;
  int n;

  if (strchr(name, '/') != NULL) {
    n = snprintf(dest, destlen, "%s", name);
  } else {
    dir = getenv("PRD_SPEC_DIR");
    if (dir == NULL || dir[0] == '\0') {
      dir = PRD_SPEC_DIR;
    }
    n = snprintf(dest, destlen, "%s/test-vectors/%s", dir, name);
  }
  if (n < 0 || (size_t)n >= destlen) {
    return -1;
  }
  return 0;
}

static char *xstrndup(const char *s, size_t n) {
  char *p = malloc(n + 1);

  if (p == NULL) {
    fprintf(stderr, "vectors: out of memory\n");
    abort();
  }
  memcpy(p, s, n);
  p[n] = '\0';
  return p;
}

static void *xrealloc(void *p, size_t n) {
  void *q = realloc(p, n);

  if (q == NULL) {
    fprintf(stderr, "vectors: out of memory\n");
    abort();
  }
  return q;
}

static char *read_file(const char *path) {
  FILE *f = fopen(path, "rb");
  char *buf = NULL;
  size_t len = 0;
  size_t cap = 0;
  size_t n;

  if (f == NULL) {
    fprintf(stderr, "vectors: cannot open %s: %s\n", path, strerror(errno));
    return NULL;
  }
  for (;;) {
    if (cap - len < 4096) {
      cap = cap ? cap * 2 : 8192;
      buf = xrealloc(buf, cap);
    }
    n = fread(buf + len, 1, cap - len - 1, f);
    len += n;
    if (n == 0) {
      break;
    }
  }
  if (ferror(f)) {
    fprintf(stderr, "vectors: cannot read %s\n", path);
    free(buf);
    fclose(f);
    return NULL;
  }
  fclose(f);
  buf[len] = '\0';
  return buf;
}

static prd_tv_block *new_block(prd_tv_file *vf, size_t line) {
  prd_tv_block *b;

  vf->blocks = xrealloc(vf->blocks, (vf->nblocks + 1) * sizeof(*b));
  b = &vf->blocks[vf->nblocks++];
  b->path = vf->path;
  b->line = line;
  b->nfields = 0;
  b->fields = NULL;
  return b;
}

/* trim returns [s, s + *plen) without leading and trailing blanks. */
static const char *trim(const char *s, size_t *plen) {
  size_t len = *plen;

  while (len > 0 && (*s == ' ' || *s == '\t')) {
    ++s;
    --len;
  }
  while (len > 0 &&
         (s[len - 1] == ' ' || s[len - 1] == '\t' || s[len - 1] == '\r')) {
    --len;
  }
  *plen = len;
  return s;
}

/* parse fills |vf| from |text|. Returns 0 or -1 with a message. */
static int parse(prd_tv_file *vf, const char *text) {
  const char *p = text;
  const char *nl;
  const char *s;
  const char *colon;
  prd_tv_block *b = NULL;
  prd_tv_field *f;
  size_t lineno = 0;
  size_t len;
  size_t klen;
  size_t vlen;
  size_t old;
  size_t i;

  while (*p != '\0') {
    ++lineno;
    nl = strchr(p, '\n');
    len = nl ? (size_t)(nl - p) : strlen(p);
    s = p;
    p = nl ? nl + 1 : p + len;
    if (len > 0 && s[0] == '#') {
      continue;
    }
    if (len > 0 && (s[0] == ' ' || s[0] == '\t')) {
      /* A continuation line, or a blank line made of blanks. */
      s = trim(s, &len);
      if (len == 0) {
        b = NULL;
        continue;
      }
      if (b == NULL || b->nfields == 0) {
        fprintf(stderr, "vectors: %s:%zu: continuation without a field\n",
                vf->path, lineno);
        return -1;
      }
      f = &b->fields[b->nfields - 1];
      old = strlen(f->value);
      f->value = xrealloc(f->value, old + 1 + len + 1);
      if (old > 0) {
        f->value[old++] = ' ';
      }
      memcpy(f->value + old, s, len);
      f->value[old + len] = '\0';
      continue;
    }
    s = trim(s, &len);
    if (len == 0) {
      b = NULL;
      continue;
    }
    colon = memchr(s, ':', len);
    if (colon == NULL || colon == s) {
      fprintf(stderr, "vectors: %s:%zu: expected \"key: value\"\n", vf->path,
              lineno);
      return -1;
    }
    klen = (size_t)(colon - s);
    for (i = 0; i < klen; ++i) {
      if (!islower((unsigned char)s[i]) && !isdigit((unsigned char)s[i]) &&
          s[i] != '-') {
        fprintf(stderr, "vectors: %s:%zu: bad key\n", vf->path, lineno);
        return -1;
      }
    }
    if (b == NULL) {
      b = new_block(vf, lineno);
    }
    for (i = 0; i < b->nfields; ++i) {
      if (strlen(b->fields[i].key) == klen &&
          memcmp(b->fields[i].key, s, klen) == 0) {
        fprintf(stderr, "vectors: %s:%zu: duplicate key\n", vf->path, lineno);
        return -1;
      }
    }
    b->fields = xrealloc(b->fields, (b->nfields + 1) * sizeof(*f));
    f = &b->fields[b->nfields++];
    f->key = xstrndup(s, klen);
    vlen = len - klen - 1;
    s = trim(colon + 1, &vlen);
    f->value = xstrndup(s, vlen);
  }
  return 0;
}

int prd_tv_load(prd_tv_file *vf, const char *name) {
  char path[4096];
  char *text;
  int rv;

  memset(vf, 0, sizeof(*vf));
  if (prd_tv_path(path, sizeof(path), name) != 0) {
    fprintf(stderr, "vectors: path too long: %s\n", name);
    return -1;
  }
  text = read_file(path);
  if (text == NULL) {
    return -1;
  }
  vf->path = xstrndup(path, strlen(path));
  rv = parse(vf, text);
  free(text);
  if (rv != 0) {
    prd_tv_free(vf);
    return -1;
  }
  return 0;
}

void prd_tv_free(prd_tv_file *vf) {
  size_t i;
  size_t j;

  for (i = 0; i < vf->nblocks; ++i) {
    for (j = 0; j < vf->blocks[i].nfields; ++j) {
      free(vf->blocks[i].fields[j].key);
      free(vf->blocks[i].fields[j].value);
    }
    free(vf->blocks[i].fields);
  }
  free(vf->blocks);
  free(vf->path);
  memset(vf, 0, sizeof(*vf));
}

const char *prd_tv_get(const prd_tv_block *b, const char *key) {
  size_t i;

  for (i = 0; i < b->nfields; ++i) {
    if (strcmp(b->fields[i].key, key) == 0) {
      return b->fields[i].value;
    }
  }
  return NULL;
}

const char *prd_tv_name(const prd_tv_block *b) {
  const char *name = prd_tv_get(b, "name");

  return name ? name : "(unnamed)";
}

int prd_tv_is_kind(const prd_tv_block *b, const char *kind) {
  const char *v = prd_tv_get(b, "kind");

  return v != NULL && strcmp(v, kind) == 0;
}

const prd_tv_block *prd_tv_find(const prd_tv_file *vf, const char *name) {
  size_t i;
  const char *v;

  for (i = 0; i < vf->nblocks; ++i) {
    v = prd_tv_get(&vf->blocks[i], "name");
    if (v != NULL && strcmp(v, name) == 0) {
      return &vf->blocks[i];
    }
  }
  return NULL;
}

static const char *get_or_complain(const prd_tv_block *b, const char *key) {
  const char *v = prd_tv_get(b, key);

  if (v == NULL) {
    fprintf(stderr, "vectors: %s:%zu: %s: no field \"%s\"\n", b->path, b->line,
            prd_tv_name(b), key);
  }
  return v;
}

static int hexval(int c) {
  if (c >= '0' && c <= '9') {
    return c - '0';
  }
  if (c >= 'a' && c <= 'f') {
    return c - 'a' + 10;
  }
  if (c >= 'A' && c <= 'F') {
    return c - 'A' + 10;
  }
  return -1;
}

int prd_tv_get_hex(const prd_tv_block *b, const char *key, uint8_t *dest,
                   size_t destlen, size_t *plen) {
  const char *v = get_or_complain(b, key);
  size_t n = 0;
  int hi;
  int lo;

  if (v == NULL) {
    return -1;
  }
  while (*v != '\0') {
    if (*v == ' ' || *v == '\t') {
      ++v;
      continue;
    }
    hi = hexval((unsigned char)v[0]);
    lo = hi < 0 ? -1 : hexval((unsigned char)v[1]);
    if (lo < 0) {
      fprintf(stderr, "vectors: %s:%zu: %s: field \"%s\" is not hex\n", b->path,
              b->line, prd_tv_name(b), key);
      return -1;
    }
    if (n == destlen) {
      fprintf(stderr, "vectors: %s:%zu: %s: field \"%s\" longer than %zu\n",
              b->path, b->line, prd_tv_name(b), key, destlen);
      return -1;
    }
    dest[n++] = (uint8_t)(hi << 4 | lo);
    v += 2;
  }
  *plen = n;
  return 0;
}

int prd_tv_get_u64(const prd_tv_block *b, const char *key, uint64_t *pv) {
  const char *v = get_or_complain(b, key);
  char *end;
  unsigned long long n;

  if (v == NULL) {
    return -1;
  }
  if (!isdigit((unsigned char)v[0])) {
    goto bad;
  }
  errno = 0;
  n = strtoull(v, &end, 0);
  if (errno != 0 || *end != '\0') {
    goto bad;
  }
  *pv = (uint64_t)n;
  return 0;
bad:
  fprintf(stderr, "vectors: %s:%zu: %s: field \"%s\" is not a number\n",
          b->path, b->line, prd_tv_name(b), key);
  return -1;
}
