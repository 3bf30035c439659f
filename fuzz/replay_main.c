/* SPDX-License-Identifier: GPL-3.0-only */
/* Replays fuzz inputs through a harness's LLVMFuzzerTestOneInput without
 * libFuzzer, so that each corpus runs as a regression test under any
 * compiler. Usage: replay_fuzz_X PATH... where each PATH is a file or a
 * directory (searched recursively). A missing or empty corpus passes with a
 * note, so that a harness can land before its seeds. */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

static size_t nreplayed;

/* replay_file runs the harness once on the contents of |path|. Returns 0, or
 * -1 if the file cannot be read. */
static int replay_file(const char *path) {
  FILE *f = fopen(path, "rb");
  uint8_t *buf = NULL;
  size_t len = 0;
  size_t cap = 0;
  size_t n;
  uint8_t *copy;

  if (f == NULL) {
    fprintf(stderr, "replay: cannot open %s: %s\n", path, strerror(errno));
    return -1;
  }
  for (;;) {
    if (cap == len) {
      cap = cap ? cap * 2 : 4096;
      buf = realloc(buf, cap);
      if (buf == NULL) {
        fprintf(stderr, "replay: out of memory\n");
        fclose(f);
        return -1;
      }
    }
    n = fread(buf + len, 1, cap - len, f);
    if (n == 0) {
      break;
    }
    len += n;
  }
  if (ferror(f)) {
    fprintf(stderr, "replay: cannot read %s\n", path);
    fclose(f);
    free(buf);
    return -1;
  }
  fclose(f);
  /* An exact-size copy, so that ASan sees any read past the input. */
  copy = malloc(len ? len : 1);
  if (copy == NULL) {
    free(buf);
    return -1;
  }
  if (len) {
    memcpy(copy, buf, len);
  }
  free(buf);
  fprintf(stderr, "replay: %s (%zu bytes)\n", path, len);
  LLVMFuzzerTestOneInput(copy, len);
  free(copy);
  ++nreplayed;
  return 0;
}

static int cmp_names(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* replay_path replays a file, or every file under a directory in name
 * order. Returns 0, or -1 on an I/O error. */
static int replay_path(const char *path) {
  struct stat st;
  DIR *dir;
  struct dirent *de;
  char **names = NULL;
  size_t nnames = 0;
  size_t i;
  char *child;
  size_t childlen;
  int rv = 0;

  if (stat(path, &st) != 0) {
    fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
    return -1;
  }
  if (!S_ISDIR(st.st_mode)) {
    return replay_file(path);
  }
  dir = opendir(path);
  if (dir == NULL) {
    fprintf(stderr, "replay: cannot open %s: %s\n", path, strerror(errno));
    return -1;
  }
  while ((de = readdir(dir)) != NULL) {
    if (de->d_name[0] == '.') {
      continue;
    }
    childlen = strlen(path) + 1 + strlen(de->d_name) + 1;
    child = malloc(childlen);
    names = realloc(names, (nnames + 1) * sizeof(*names));
    if (child == NULL || names == NULL) {
      fprintf(stderr, "replay: out of memory\n");
      abort();
    }
    snprintf(child, childlen, "%s/%s", path, de->d_name);
    names[nnames++] = child;
  }
  closedir(dir);
  if (nnames > 1) {
    qsort(names, nnames, sizeof(*names), cmp_names);
  }
  for (i = 0; i < nnames; ++i) {
    if (replay_path(names[i]) != 0) {
      rv = -1;
    }
    free(names[i]);
  }
  free(names);
  return rv;
}

int main(int argc, char **argv) {
  struct stat st;
  int i;
  int rv = 0;

  if (LLVMFuzzerInitialize != NULL) {
    LLVMFuzzerInitialize(&argc, &argv);
  }
  if (argc < 2) {
    fprintf(stderr, "usage: %s FILE_OR_DIR...\n", argv[0]);
    return 2;
  }
  for (i = 1; i < argc; ++i) {
    if (stat(argv[i], &st) != 0 && errno == ENOENT) {
      printf("replay: note: %s does not exist; nothing to replay there\n",
             argv[i]);
      continue;
    }
    if (replay_path(argv[i]) != 0) {
      rv = 1;
    }
  }
  if (nreplayed == 0) {
    printf("replay: note: no inputs found; passing\n");
  }
  printf("replay: %zu inputs replayed without a crash\n", nreplayed);
  return rv;
}
