/* SPDX-License-Identifier: GPL-3.0-only */
/* Unit tests for the client's pins and TOFU store (src/cli/pins.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/pins.h"
#include "common/err.h"
#include "common/file.h"

typedef struct fixture {
  char base[PATH_MAX];   /* mkdtemp'ed */
  char srvdir[PATH_MAX]; /* a server's identity */
  char certpath[PATH_MAX];
  char confdir[PATH_MAX]; /* the client's config dir, not created */
  prd_identity id;
  prd_opts o;
} fixture;

static const char *const names[] = {"localhost", "127.0.0.1"};

static void rm_rf(const char *path) {
  char sub[PATH_MAX];
  struct dirent *de;
  struct stat st;
  DIR *d;

  if (lstat(path, &st) != 0) {
    return;
  }
  if (S_ISDIR(st.st_mode) && (d = opendir(path)) != NULL) {
    while ((de = readdir(d)) != NULL) {
      if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0) {
        snprintf(sub, sizeof(sub), "%.3000s/%.200s", path, de->d_name);
        rm_rf(sub);
      }
    }
    closedir(d);
    rmdir(path);
  } else {
    unlink(path);
  }
}

static int setup(void **state) {
  fixture *f = calloc(1, sizeof(*f));
  const char *tmp = getenv("TMPDIR");
  char err[512];

  if (f == NULL) {
    return -1;
  }
  snprintf(f->base, sizeof(f->base), "%s/prd-pins-XXXXXX",
           tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp");
  if (mkdtemp(f->base) == NULL) {
    free(f);
    return -1;
  }
  snprintf(f->srvdir, sizeof(f->srvdir), "%.3000s/srv", f->base);
  snprintf(f->certpath, sizeof(f->certpath), "%.3000s/cert.der", f->srvdir);
  snprintf(f->confdir, sizeof(f->confdir), "%.3000s/client", f->base);
  if (prd_identity_load_or_create(&f->id, f->srvdir, names, 2, err,
                                  sizeof(err)) != 0) {
    return -1;
  }
  f->o.role = PRD_ROLE_CLIENT;
  snprintf(f->o.config_dir, sizeof(f->o.config_dir), "%s", f->confdir);
  f->o.n_remotes = 1;
  snprintf(f->o.remotes[0].host, sizeof(f->o.remotes[0].host), "127.0.0.1");
  f->o.remotes[0].port = 4433;
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture *f = *state;

  prd_identity_free(&f->id);
  rm_rf(f->base);
  free(f);
  return 0;
}

/* One server keeps client-tofu-cert.der; several get a file each, named
 * after host and port with the characters a file name cannot hold. */
static void test_pins_tofu_path(void **state) {
  fixture *f = *state;
  char path[PATH_MAX], want[PATH_MAX + 64];
  prd_hostport hp = {.host = "fe80::1%eth0", .port = 4433};

  assert_int_equal(prd_pins_tofu_path(path, sizeof(path), &f->o, &hp), 0);
  snprintf(want, sizeof(want), "%s/client-tofu-cert.der", f->confdir);
  assert_string_equal(path, want);
  f->o.n_remotes = 2;
  assert_int_equal(prd_pins_tofu_path(path, sizeof(path), &f->o, &hp), 0);
  snprintf(want, sizeof(want), "%s/client-tofu-fe80__1_eth0-4433.der",
           f->confdir);
  assert_string_equal(path, want);
  snprintf(hp.host, sizeof(hp.host), "a/b");
  assert_int_equal(prd_pins_tofu_path(path, sizeof(path), &f->o, &hp), 0);
  snprintf(want, sizeof(want), "%s/client-tofu-a_b-4433.der", f->confdir);
  assert_string_equal(path, want);
  assert_int_equal(prd_pins_tofu_path(path, 10, &f->o, &hp), -1);
}

/* --server-cert: read and fingerprinted; missing or not DER: exit 2. */
static void test_pins_load_server_cert(void **state) {
  fixture *f = *state;
  char fp[PRD_FINGERPRINT_LEN];
  prd_pins p;

  snprintf(f->o.server_cert, sizeof(f->o.server_cert), "%s", f->certpath);
  assert_int_equal(prd_pins_load(&p, &f->o), 0);
  assert_int_equal(p.len, f->id.certlen);
  assert_memory_equal(p.der, f->id.cert_der, p.len);
  assert_string_equal(p.path, f->certpath);
  assert_int_equal(prd_cert_fingerprint(fp, f->id.cert_der, f->id.certlen), 0);
  assert_string_equal(p.fp, fp);
  assert_false(p.tofu_first || p.all_own || p.by_fp);
  prd_pins_free(&p);
  prd_pins_free(&p); /* twice is harmless */
  /* Not a certificate. */
  snprintf(f->o.server_cert, sizeof(f->o.server_cert), "%s/key.der", f->srvdir);
  assert_int_equal(prd_pins_load(&p, &f->o), 2);
  prd_pins_free(&p);
  /* Missing, even with --trust-on-first-use (it needs no --server-cert). */
  snprintf(f->o.server_cert, sizeof(f->o.server_cert), "%s/none", f->base);
  f->o.trust_on_first_use = 1;
  assert_int_equal(prd_pins_load(&p, &f->o), 2);
  prd_pins_free(&p);
  assert_int_equal(access(f->confdir, F_OK), -1);
}

/* Without a pin file, --trust-on-first-use creates the config directory
 * and waits for the first certificate; a stored one is the pin later. */
static void test_pins_load_tofu(void **state) {
  fixture *f = *state;
  char tofu[PATH_MAX + 32];
  prd_pins p;

  assert_int_equal(prd_pins_load(&p, &f->o), 2); /* no pin, no TOFU */
  prd_pins_free(&p);
  f->o.trust_on_first_use = 1;
  assert_int_equal(prd_pins_load(&p, &f->o), 0);
  assert_true(p.tofu_first);
  assert_null(p.der);
  assert_string_equal(p.fp, "(none)");
  assert_int_equal(access(f->confdir, F_OK), 0);
  assert_int_equal(prd_pins_print_fingerprint(&p, &f->o), 1);
  prd_pins_free(&p);
  snprintf(tofu, sizeof(tofu), "%s/%s", f->confdir, PRD_TOFU_FILE);
  assert_int_equal(
      prd_file_write_atomic(tofu, f->id.cert_der, f->id.certlen, 0600), 0);
  assert_int_equal(prd_pins_load(&p, &f->o), 0);
  assert_false(p.tofu_first);
  assert_string_equal(p.path, tofu);
  assert_int_equal(p.len, f->id.certlen);
  prd_pins_free(&p);
}

/* A server's own cert=FILE wins over the shared pin; fingerprints are
 * passed by reference; several TOFU servers read their own files. */
static void test_pins_remote(void **state) {
  fixture *f = *state;
  prd_relay_remote rr;
  prd_pins p;
  char tofu[PATH_MAX + 64];

  f->o.n_server_fingerprints = 1;
  assert_int_equal(prd_pins_load(&p, &f->o), 0);
  assert_true(p.by_fp);
  memset(&rr, 0, sizeof(rr));
  assert_int_equal(prd_pins_remote(&rr, &p, &f->o, &f->o.remotes[0]), 0);
  assert_ptr_equal(rr.pin_sha256, f->o.server_fingerprints[0]);
  assert_int_equal(rr.npin_sha256, 1);
  assert_string_equal(rr.pin_name, "--server-fingerprint");
  assert_false(rr.pin_owned);
  /* cert=FILE of its own. */
  snprintf(f->o.remotes[0].cert, sizeof(f->o.remotes[0].cert), "%s",
           f->certpath);
  memset(&rr, 0, sizeof(rr));
  assert_int_equal(prd_pins_remote(&rr, &p, &f->o, &f->o.remotes[0]), 0);
  assert_true(rr.pin_owned);
  assert_null(rr.pin_sha256);
  assert_int_equal(rr.pinlen, f->id.certlen);
  assert_string_equal(rr.pin_name, f->certpath);
  free((void *)(uintptr_t)rr.pin_der);
  snprintf(f->o.remotes[0].cert, sizeof(f->o.remotes[0].cert), "%s/none",
           f->base);
  assert_int_equal(prd_pins_remote(&rr, &p, &f->o, &f->o.remotes[0]), -1);
  prd_pins_free(&p);
  /* Two servers by first use: the one with a stored file gets it. */
  f->o.n_server_fingerprints = 0;
  f->o.remotes[0].cert[0] = '\0';
  f->o.n_remotes = 2;
  f->o.remotes[1] = f->o.remotes[0];
  f->o.remotes[1].port = 4434;
  f->o.trust_on_first_use = 1;
  assert_int_equal(prd_pins_load(&p, &f->o), 0);
  assert_true(p.tofu_first);
  snprintf(tofu, sizeof(tofu), "%s/client-tofu-127.0.0.1-4434.der", f->confdir);
  assert_int_equal(
      prd_file_write_atomic(tofu, f->id.cert_der, f->id.certlen, 0600), 0);
  memset(&rr, 0, sizeof(rr));
  assert_int_equal(prd_pins_remote(&rr, &p, &f->o, &f->o.remotes[0]), 0);
  assert_null(rr.pin_der);
  memset(&rr, 0, sizeof(rr));
  assert_int_equal(prd_pins_remote(&rr, &p, &f->o, &f->o.remotes[1]), 0);
  assert_true(rr.pin_owned);
  assert_string_equal(rr.pin_name, tofu);
  assert_string_equal(rr.tofu_path, tofu);
  free((void *)(uintptr_t)rr.pin_der);
  prd_pins_free(&p);
}

/* The TOFU store writes a copy (mode 0600) from its own thread; the caller
 * may reuse its buffer at once. Two remotes at once each get theirs; a
 * failed write only logs. */
static void test_pins_tofu_store(void **state) {
  fixture *f = *state;
  prd_relay_remote a, b, bad;
  uint8_t *der, *data;
  size_t len;
  struct stat st;

  assert_int_equal(mkdir(f->confdir, 0700), 0);
  memset(&a, 0, sizeof(a));
  memset(&b, 0, sizeof(b));
  memset(&bad, 0, sizeof(bad));
  snprintf(a.label, sizeof(a.label), "127.0.0.1:1");
  snprintf(a.tofu_path, sizeof(a.tofu_path), "%s/a.der", f->confdir);
  snprintf(b.label, sizeof(b.label), "127.0.0.1:2");
  snprintf(b.tofu_path, sizeof(b.tofu_path), "%s/b.der", f->confdir);
  snprintf(bad.label, sizeof(bad.label), "127.0.0.1:3");
  snprintf(bad.tofu_path, sizeof(bad.tofu_path), "%s/missing/c.der",
           f->confdir);
  der = malloc(f->id.certlen);
  assert_non_null(der);
  memcpy(der, f->id.cert_der, f->id.certlen);
  prd_pins_tofu_store(&a, der, f->id.certlen, NULL);
  prd_pins_tofu_store(&b, der, f->id.certlen, NULL);
  prd_pins_tofu_store(&bad, der, f->id.certlen, NULL);
  memset(der, 0, f->id.certlen); /* the store kept its own copy */
  free(der);
  assert_int_equal(prd_pins_tofu_wait(10000), 0);
  assert_int_equal(prd_file_read(&data, &len, a.tofu_path, PRD_MAX_DER_FILE),
                   0);
  assert_int_equal(len, f->id.certlen);
  assert_memory_equal(data, f->id.cert_der, len);
  free(data);
  assert_int_equal(stat(b.tofu_path, &st), 0);
  assert_int_equal(st.st_mode & 07777, 0600);
  assert_int_equal(access(bad.tofu_path, F_OK), -1);
  assert_int_equal(prd_pins_tofu_wait(0), 0); /* nothing under way */
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void) {
  const struct CMUnitTest tests[] = {
      T(test_pins_tofu_path),  T(test_pins_load_server_cert),
      T(test_pins_load_tofu),  T(test_pins_remote),
      T(test_pins_tofu_store),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
