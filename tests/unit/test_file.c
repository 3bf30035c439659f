/* SPDX-License-Identifier: GPL-3.0-only */
/* Unit tests for the file helpers of src/common/file.c: atomic writes,
 * the size cap, the permission check for secrets, publishing without
 * replacing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/err.h"
#include "common/file.h"

typedef struct fixture {
  char dir[PATH_MAX];
} fixture;

static int setup(void **state) {
  fixture *f = calloc(1, sizeof(*f));
  const char *tmp = getenv("TMPDIR");

  if (f == NULL) {
    return -1;
  }
  snprintf(f->dir, sizeof(f->dir), "%s/prd-file-XXXXXX",
           tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp");
  if (mkdtemp(f->dir) == NULL) {
    free(f);
    return -1;
  }
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture *f = *state;
  char sub[PATH_MAX + 256];
  struct dirent *de;
  DIR *d = opendir(f->dir);

  while (d != NULL && (de = readdir(d)) != NULL) {
    if (de->d_name[0] == '.' &&
        (de->d_name[1] == '\0' || strcmp(de->d_name, "..") == 0)) {
      continue;
    }
    snprintf(sub, sizeof(sub), "%s/%s", f->dir, de->d_name);
    unlink(sub);
  }
  if (d != NULL) {
    closedir(d);
  }
  rmdir(f->dir);
  free(f);
  return 0;
}

/* entries counts the names in |dir| other than . and .. */
static int entries(const char *dir) {
  struct dirent *de;
  DIR *d = opendir(dir);
  int n = 0;

  assert_non_null(d);
  while ((de = readdir(d)) != NULL) {
    n += strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0;
  }
  closedir(d);
  return n;
}

static void put(const char *path, const char *s, mode_t mode) {
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, s, strlen(s)), (ssize_t)strlen(s));
  assert_int_equal(fchmod(fd, mode), 0);
  close(fd);
}

/* An atomic write replaces the file whole, with the mode asked for, and
 * leaves no temp file behind, also when it fails. */
static void test_file_write_atomic(void **state) {
  fixture *f = *state;
  char path[PATH_MAX + 16];
  uint8_t *data;
  size_t len;
  struct stat st;

  snprintf(path, sizeof(path), "%s/a.der", f->dir);
  put(path, "old contents, longer", 0644);
  assert_int_equal(prd_file_write_atomic(path, (const uint8_t *)"new", 3, 0600),
                   0);
  assert_int_equal(prd_file_read(&data, &len, path, 100), 0);
  assert_int_equal(len, 3);
  assert_memory_equal(data, "new", 3);
  free(data);
  assert_int_equal(stat(path, &st), 0);
  assert_int_equal(st.st_mode & 07777, 0600);
  assert_int_equal(entries(f->dir), 1);
  /* An empty file is a file too. */
  assert_int_equal(prd_file_write_atomic(path, NULL, 0, 0600), 0);
  assert_int_equal(prd_file_read(&data, &len, path, 100), 0);
  assert_int_equal(len, 0);
  free(data);
  /* The target is a directory: the rename fails, no temp file stays. */
  snprintf(path, sizeof(path), "%s/sub", f->dir);
  assert_int_equal(mkdir(path, 0700), 0);
  assert_true(prd_file_write_atomic(path, (const uint8_t *)"x", 1, 0600) < 0);
  assert_int_equal(entries(f->dir), 2);
  assert_int_equal(rmdir(path), 0);
}

/* The size cap: exactly the cap is read, one byte more is refused. */
static void test_file_read_cap(void **state) {
  fixture *f = *state;
  char path[PATH_MAX + 16];
  uint8_t *data = (uint8_t *)1;
  size_t len = 7;
  unsigned mode = 0;

  snprintf(path, sizeof(path), "%s/c", f->dir);
  put(path, "0123456789", 0640);
  assert_int_equal(prd_file_read_mode(&data, &len, &mode, path, 10), 0);
  assert_int_equal(len, 10);
  assert_int_equal(mode, 0640);
  free(data);
  assert_int_equal(prd_file_read(&data, &len, path, 9),
                   PRD_ERR_FRAME_TOO_LARGE);
  assert_null(data);
  assert_int_equal(len, 0);
}

/* A secret that group or others may read is refused, and says its mode. */
static void test_file_read_private(void **state) {
  fixture *f = *state;
  char path[PATH_MAX + 16];
  uint8_t *data;
  size_t len;
  unsigned mode;

  assert_int_equal(prd_file_mode_private(0600), 1);
  assert_int_equal(prd_file_mode_private(0620), 1); /* writable is not read */
  assert_int_equal(prd_file_mode_private(0640), 0);
  assert_int_equal(prd_file_mode_private(0604), 0);
  snprintf(path, sizeof(path), "%s/key", f->dir);
  put(path, "secret", 0600);
  assert_int_equal(prd_file_read_private(&data, &len, &mode, path, 100), 0);
  assert_int_equal(len, 6);
  free(data);
  assert_int_equal(chmod(path, 0644), 0);
  data = (uint8_t *)1;
  assert_int_equal(prd_file_read_private(&data, &len, &mode, path, 100),
                   PRD_ERR_FILE_MODE);
  assert_null(data);
  assert_int_equal(len, 0);
  assert_int_equal(mode, 0644);
  assert_string_equal(prd_strerror(PRD_ERR_FILE_MODE),
                      "readable by group/others");
  /* A missing file is the read's error, not the mode's. */
  snprintf(path, sizeof(path), "%s/none", f->dir);
  assert_int_equal(prd_file_read_private(&data, &len, &mode, path, 100),
                   -ENOENT);
}

/* Publishing never replaces: the second one gets -EEXIST and its temp
 * file is gone either way. */
static void test_file_publish_noreplace(void **state) {
  fixture *f = *state;
  char path[PATH_MAX + 16];
  char tmp[PATH_MAX + 64];
  uint8_t *data;
  size_t len;

  snprintf(path, sizeof(path), "%s/p", f->dir);
  assert_int_equal(prd_file_write_temp(tmp, sizeof(tmp), path,
                                       (const uint8_t *)"first", 5, 0600),
                   0);
  assert_non_null(strstr(tmp, "/.p.tmp."));
  assert_int_equal(prd_file_publish_noreplace(tmp, path), 0);
  assert_int_equal(prd_file_write_temp(tmp, sizeof(tmp), path,
                                       (const uint8_t *)"second", 6, 0600),
                   0);
  assert_int_equal(prd_file_publish_noreplace(tmp, path), -EEXIST);
  assert_int_equal(access(tmp, F_OK), -1);
  assert_int_equal(prd_file_read(&data, &len, path, 100), 0);
  assert_memory_equal(data, "first", 5);
  free(data);
  assert_int_equal(entries(f->dir), 1);
  assert_int_equal(prd_file_fsync_dir(f->dir), 0);
}

static void test_file_dir_of(void **state) {
  char dir[8];

  (void)state;
  assert_int_equal(prd_file_dir_of(dir, sizeof(dir), "a/b/c"), 0);
  assert_string_equal(dir, "a/b");
  assert_int_equal(prd_file_dir_of(dir, sizeof(dir), "/c"), 0);
  assert_string_equal(dir, "/");
  assert_int_equal(prd_file_dir_of(dir, sizeof(dir), "c"), 0);
  assert_string_equal(dir, ".");
  assert_int_equal(prd_file_dir_of(dir, sizeof(dir), "abcdefghij/c"),
                   -ENAMETOOLONG);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void) {
  const struct CMUnitTest tests[] = {
      T(test_file_write_atomic),          T(test_file_read_cap),
      T(test_file_read_private),          T(test_file_publish_noreplace),
      cmocka_unit_test(test_file_dir_of),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
