/* SPDX-License-Identifier: GPL-3.0-only */
/* Unit tests for the identity files and pins (src/quic/cert.c) and the file
 * helpers under them (src/common/file.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "common/err.h"
#include "quic/identity.h"

typedef struct fixture {
  char base[PATH_MAX]; /* mkdtemp'ed, removed in teardown */
  char dir[PATH_MAX];  /* base/conf/portredirect, not created */
  char cert[PATH_MAX];
  char key[PATH_MAX];
  char err[512];
} fixture;

static const char *const default_names[] = {"localhost", "127.0.0.1", "::1"};

/* pjoin formats into |dest| and fails the test if the result is cut. */
static void pjoin(char *dest, size_t destlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void pjoin(char *dest, size_t destlen, const char *fmt, ...) {
  va_list ap;
  int n;

  va_start(ap, fmt);
  n = vsnprintf(dest, destlen, fmt, ap);
  va_end(ap);
  assert_true(n >= 0 && (size_t)n < destlen);
}

static void rm_rf(const char *path) {
  struct stat st;
  DIR *d;
  struct dirent *de;
  char sub[PATH_MAX];

  if (lstat(path, &st) != 0) {
    return;
  }
  if (S_ISDIR(st.st_mode)) {
    chmod(path, 0700);
    d = opendir(path);
    if (d != NULL) {
      while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) {
          continue;
        }
        pjoin(sub, sizeof(sub), "%s/%s", path, de->d_name);
        rm_rf(sub);
      }
      closedir(d);
    }
    rmdir(path);
  } else {
    unlink(path);
  }
}

static int setup(void **state) {
  fixture *f = calloc(1, sizeof(*f));
  const char *tmp = getenv("TMPDIR");

  if (f == NULL) {
    return -1;
  }
  pjoin(f->base, sizeof(f->base), "%s/prd-identity-XXXXXX",
        tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp");
  if (mkdtemp(f->base) == NULL) {
    free(f);
    return -1;
  }
  pjoin(f->dir, sizeof(f->dir), "%s/conf/portredirect", f->base);
  pjoin(f->cert, sizeof(f->cert), "%s/%s", f->dir, PRD_CERT_FILE);
  pjoin(f->key, sizeof(f->key), "%s/%s", f->dir, PRD_KEY_FILE);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture *f = *state;

  rm_rf(f->base);
  free(f);
  return 0;
}

static void create_default(fixture *f, prd_identity *id) {
  int rv = prd_identity_load_or_create(id, f->dir, default_names, 3, f->err,
                                       sizeof(f->err));
  if (rv != 0) {
    print_error("load_or_create: %s\n", f->err);
  }
  assert_int_equal(rv, 0);
}

static void write_file(const char *path, const void *data, size_t len,
                       mode_t mode) {
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);

  assert_true(fd >= 0);
  assert_int_equal(write(fd, data, len), (ssize_t)len);
  assert_int_equal(close(fd), 0);
  assert_int_equal(chmod(path, mode), 0);
}

static void read_whole(uint8_t **pdata, size_t *plen, const char *path) {
  assert_int_equal(prd_file_read(pdata, plen, path, PRD_MAX_DER_FILE), 0);
}

/* count_temp_files counts leftovers of the atomic writes in |dir|. */
static int count_temp_files(const char *dir) {
  DIR *d = opendir(dir);
  struct dirent *de;
  int n = 0;

  assert_non_null(d);
  while ((de = readdir(d)) != NULL) {
    if (strstr(de->d_name, ".tmp.") != NULL) {
      ++n;
    }
  }
  closedir(d);
  return n;
}

static void assert_err_contains(const fixture *f, const char *needle) {
  if (strstr(f->err, needle) == NULL) {
    print_error("message \"%s\" lacks \"%s\"\n", f->err, needle);
    fail();
  }
  assert_null(strchr(f->err, '\n'));
}

/* First start: directory 0700 (parents created), key 0600, both parse. */
static void test_identity_create_modes(void **state) {
  fixture *f = *state;
  prd_identity id;
  struct stat st;

  create_default(f, &id);
  assert_int_equal(stat(f->dir, &st), 0);
  assert_true(S_ISDIR(st.st_mode));
  assert_int_equal(st.st_mode & 07777, 0700);
  assert_int_equal(stat(f->key, &st), 0);
  assert_int_equal(st.st_mode & 07777, 0600);
  assert_int_equal((size_t)st.st_size, id.keylen);
  assert_int_equal(stat(f->cert, &st), 0);
  assert_int_equal((size_t)st.st_size, id.certlen);
  assert_int_equal(st.st_mode & 077, 044); /* public, but not writable */
  assert_int_equal(prd_cert_check_der(id.cert_der, id.certlen), 0);
  assert_int_equal(count_temp_files(f->dir), 0);
  prd_identity_free(&id);
  assert_null(id.key_der);
  assert_null(id.cert_der);
  prd_identity_free(&id); /* freeing twice is harmless */
}

/* A second start reuses the pair byte for byte. */
static void test_identity_reload_identical(void **state) {
  fixture *f = *state;
  prd_identity a;
  prd_identity b;
  const char *other[] = {"other.example"};
  uint8_t *disk;
  size_t disklen;

  create_default(f, &a);
  assert_int_equal(
      prd_identity_load_or_create(&b, f->dir, other, 1, f->err, sizeof(f->err)),
      0);
  assert_int_equal(a.certlen, b.certlen);
  assert_memory_equal(a.cert_der, b.cert_der, a.certlen);
  assert_int_equal(a.keylen, b.keylen);
  assert_memory_equal(a.key_der, b.key_der, a.keylen);
  /* The names of a later start do not change an existing certificate. */
  assert_int_equal(
      prd_cert_matches_name(b.cert_der, b.certlen, "other.example"), 0);
  read_whole(&disk, &disklen, f->key);
  assert_int_equal(disklen, a.keylen);
  assert_memory_equal(disk, a.key_der, disklen);
  free(disk);
  prd_identity_free(&a);
  prd_identity_free(&b);
}

/* spec/06-files-and-cli.md §2.2: the certificate profile (RFC 5280,
 * §10). */
static void test_identity_cert_profile(void **state) {
  fixture *f = *state;
  prd_identity id;
  gnutls_x509_crt_t crt;
  gnutls_datum_t d;
  uint8_t serial[64];
  size_t seriallen = sizeof(serial);
  char cn[64];
  size_t cnlen = sizeof(cn);
  char oid[128];
  size_t oidlen = sizeof(oid);
  unsigned critical = 0;
  unsigned usage = 0;
  unsigned ca = 1;
  int pathlen;
  unsigned bits = 0;
  time_t now = time(NULL);
  time_t t;

  create_default(f, &id);
  assert_int_equal(gnutls_x509_crt_init(&crt), 0);
  d.data = id.cert_der;
  d.size = (unsigned)id.certlen;
  assert_int_equal(gnutls_x509_crt_import(crt, &d, GNUTLS_X509_FMT_DER), 0);
  assert_int_equal(gnutls_x509_crt_get_version(crt), 3);
  assert_int_equal(gnutls_x509_crt_get_serial(crt, serial, &seriallen), 0);
  assert_int_equal(seriallen, 16);
  assert_int_equal(serial[0] & 0x80, 0);
  assert_int_equal(gnutls_x509_crt_get_dn_by_oid(
                       crt, GNUTLS_OID_X520_COMMON_NAME, 0, 0, cn, &cnlen),
                   0);
  assert_string_equal(cn, "localhost"); /* the first name of the list */
  assert_int_equal(gnutls_x509_crt_get_pk_algorithm(crt, &bits),
                   GNUTLS_PK_ECDSA);
  assert_int_equal(gnutls_x509_crt_get_signature_algorithm(crt),
                   GNUTLS_SIGN_ECDSA_SHA256);
  {
    gnutls_ecc_curve_t curve;
    gnutls_datum_t x;
    gnutls_datum_t y;
    assert_int_equal(gnutls_x509_crt_get_pk_ecc_raw(crt, &curve, &x, &y), 0);
    assert_int_equal(curve, GNUTLS_ECC_CURVE_SECP256R1);
    gnutls_free(x.data);
    gnutls_free(y.data);
  }
  assert_true(gnutls_x509_crt_get_basic_constraints(crt, &critical, &ca,
                                                    &pathlen) >= 0);
  assert_int_equal(ca, 0);
  assert_int_equal(gnutls_x509_crt_get_key_usage(crt, &usage, &critical), 0);
  assert_int_equal(usage, GNUTLS_KEY_DIGITAL_SIGNATURE);
  assert_int_equal(
      gnutls_x509_crt_get_key_purpose_oid(crt, 0, oid, &oidlen, &critical), 0);
  assert_string_equal(oid, GNUTLS_KP_TLS_WWW_SERVER);
  t = gnutls_x509_crt_get_activation_time(crt);
  assert_true(t <= now - 24 * 60 * 60 + 5);
  assert_true(t >= now - 24 * 60 * 60 - 60);
  /* 9999-12-31T23:59:59Z: no well-defined expiration (RFC 5280). */
  t = gnutls_x509_crt_get_expiration_time(crt);
  assert_true(t == (time_t)-1 || t == (time_t)253402300799LL);
  /* Self-signed: it verifies against itself. */
  {
    unsigned vst = 1;
    assert_int_equal(gnutls_x509_crt_verify(
                         crt, &crt, 1, GNUTLS_VERIFY_DISABLE_TIME_CHECKS, &vst),
                     0);
    assert_int_equal(vst, 0);
  }
  gnutls_x509_crt_deinit(crt);
  prd_identity_free(&id);
}

/* SANs: IP addresses as raw IP SANs, names as DNS SANs, brackets stripped,
 * duplicates dropped; matching by SAN only (design.md §1). */
static void test_identity_sans_match(void **state) {
  fixture *f = *state;
  const char *names[] = {"tunnel.example", "192.0.2.7", "[2001:db8::5]",
                         "localhost",      "LOCALHOST", "192.0.2.7",
                         "2001:db8:0::5",  "::1",       ""};
  prd_identity id;
  gnutls_x509_crt_t crt;
  gnutls_datum_t d;
  uint8_t san[256];
  size_t sanlen;
  unsigned seq;
  unsigned critical;
  int type;
  int ndns = 0;
  int nip4 = 0;
  int nip6 = 0;
  uint8_t v4[4];
  uint8_t v6[16];

  assert_int_equal(prd_identity_load_or_create(&id, f->dir, names, 9, f->err,
                                               sizeof(f->err)),
                   0);
  assert_int_equal(gnutls_x509_crt_init(&crt), 0);
  d.data = id.cert_der;
  d.size = (unsigned)id.certlen;
  assert_int_equal(gnutls_x509_crt_import(crt, &d, GNUTLS_X509_FMT_DER), 0);
  inet_pton(AF_INET, "192.0.2.7", v4);
  inet_pton(AF_INET6, "2001:db8::5", v6);
  for (seq = 0;; ++seq) {
    sanlen = sizeof(san);
    type =
        gnutls_x509_crt_get_subject_alt_name(crt, seq, san, &sanlen, &critical);
    if (type < 0) {
      assert_int_equal(type, GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE);
      break;
    }
    if (type == GNUTLS_SAN_DNSNAME) {
      ++ndns;
    } else {
      assert_int_equal(type, GNUTLS_SAN_IPADDRESS);
      if (sanlen == 4) {
        assert_memory_equal(san, v4, 4);
        ++nip4;
      } else {
        assert_int_equal(sanlen, 16);
        ++nip6;
      }
    }
  }
  gnutls_x509_crt_deinit(crt);
  assert_int_equal(ndns, 2); /* tunnel.example, localhost */
  assert_int_equal(nip4, 1);
  assert_int_equal(nip6, 2); /* 2001:db8::5, ::1 */

  assert_int_equal(
      prd_cert_matches_name(id.cert_der, id.certlen, "tunnel.example"), 1);
  assert_int_equal(
      prd_cert_matches_name(id.cert_der, id.certlen, "Tunnel.Example"), 1);
  assert_int_equal(prd_cert_matches_name(id.cert_der, id.certlen, "localhost"),
                   1);
  assert_int_equal(prd_cert_matches_name(id.cert_der, id.certlen, "192.0.2.7"),
                   1);
  assert_int_equal(
      prd_cert_matches_name(id.cert_der, id.certlen, "2001:db8::5"), 1);
  assert_int_equal(
      prd_cert_matches_name(id.cert_der, id.certlen, "[2001:db8::5]"), 1);
  assert_int_equal(
      prd_cert_matches_name(id.cert_der, id.certlen, "2001:0db8:0:0::5"), 1);
  assert_int_equal(prd_cert_matches_name(id.cert_der, id.certlen, "::1"), 1);
  assert_int_equal(prd_cert_matches_name(id.cert_der, id.certlen, "[::1]"), 1);
  /* Mismatches. */
  assert_int_equal(prd_cert_matches_name(id.cert_der, id.certlen, "192.0.2.8"),
                   0);
  assert_int_equal(prd_cert_matches_name(id.cert_der, id.certlen, "127.0.0.1"),
                   0);
  assert_int_equal(
      prd_cert_matches_name(id.cert_der, id.certlen, "2001:db8::6"), 0);
  assert_int_equal(
      prd_cert_matches_name(id.cert_der, id.certlen, "::ffff:192.0.2.7"), 0);
  assert_int_equal(
      prd_cert_matches_name(id.cert_der, id.certlen, "other.example"), 0);
  assert_int_equal(
      prd_cert_matches_name(id.cert_der, id.certlen, "x.tunnel.example"), 0);
  assert_int_equal(prd_cert_matches_name(id.cert_der, id.certlen, ""), 0);
  /* Not a certificate. */
  assert_int_equal(
      prd_cert_matches_name((const uint8_t *)"junk", 4, "localhost"), -1);
  prd_identity_free(&id);
}

/* spec/03-auth.md §8.1: dNSName matching. A SAN whose whole leftmost label is
 * `*` stands for exactly one non-empty label, and only with two labels after
 * it; a partial-label `*` is literal; no IDNA; ASCII case only. */
static void test_identity_wildcard_rules(void **state) {
  fixture *f = *state;
  const char *names[] = {"*.example.org", "*x.wild.test", "*.org",
                         "exact.test",    "*.dot.test.",  "*.com."};
  prd_identity id;

  assert_int_equal(prd_identity_load_or_create(&id, f->dir, names, 6, f->err,
                                               sizeof(f->err)),
                   0);
  assert_int_equal(
      prd_cert_matches_name(id.cert_der, id.certlen, "a.example.org"), 1);
  assert_int_equal(
      prd_cert_matches_name(id.cert_der, id.certlen, "A.EXAMPLE.org"), 1);
  assert_int_equal(
      prd_cert_matches_name(id.cert_der, id.certlen, "example.org"), 0);
  assert_int_equal(
      prd_cert_matches_name(id.cert_der, id.certlen, ".example.org"), 0);
  assert_int_equal(
      prd_cert_matches_name(id.cert_der, id.certlen, "a.b.example.org"), 0);
  /* `*.org` matches nothing; `*x.wild.test` only itself. */
  assert_int_equal(prd_cert_matches_name(id.cert_der, id.certlen, "a.org"), 0);
  assert_int_equal(
      prd_cert_matches_name(id.cert_der, id.certlen, "ax.wild.test"), 0);
  assert_int_equal(
      prd_cert_matches_name(id.cert_der, id.certlen, "x.wild.test"), 0);
  assert_int_equal(
      prd_cert_matches_name(id.cert_der, id.certlen, "*x.wild.test"), 1);
  /* No trailing-dot folding, no IDNA, ASCII case only. */
  assert_int_equal(
      prd_cert_matches_name(id.cert_der, id.certlen, "exact.test."), 0);
  assert_int_equal(prd_cert_matches_name(id.cert_der, id.certlen, "EXACT.test"),
                   1);
  assert_int_equal(
      prd_cert_matches_name(id.cert_der, id.certlen, "\xc3\xa9.example.org"),
      0);
  /* A wildcard SAN with a trailing dot matches names with one, and the
   * root's empty label is not one of the two labels after the `*`. */
  assert_int_equal(
      prd_cert_matches_name(id.cert_der, id.certlen, "a.dot.test."), 1);
  assert_int_equal(prd_cert_matches_name(id.cert_der, id.certlen, "a.dot.test"),
                   0);
  assert_int_equal(prd_cert_matches_name(id.cert_der, id.certlen, "a.com."), 0);
  assert_int_equal(prd_cert_matches_name(id.cert_der, id.certlen, "*.com."), 1);
  prd_identity_free(&id);
}

/* cert_cn returns the subject CN of |der| in |cn|. */
static void cert_cn(char *cn, size_t cnlen, const uint8_t *der, size_t len) {
  gnutls_x509_crt_t crt;
  gnutls_datum_t d;

  assert_int_equal(gnutls_x509_crt_init(&crt), 0);
  d.data = (unsigned char *)(uintptr_t)der;
  d.size = (unsigned)len;
  assert_int_equal(gnutls_x509_crt_import(crt, &d, GNUTLS_X509_FMT_DER), 0);
  assert_int_equal(gnutls_x509_crt_get_dn_by_oid(
                       crt, GNUTLS_OID_X520_COMMON_NAME, 0, 0, cn, &cnlen),
                   0);
  gnutls_x509_crt_deinit(crt);
}

/* spec/06-files-and-cli.md §2.2: CN = the first name (an IPv6 literal
 * without brackets); 0.0.0.0 and :: are left out; no name at all gives a
 * certificate without SANs that matches nothing. */
static void test_identity_cn_and_unspecified(void **state) {
  fixture *f = *state;
  const char *names1[] = {"[::1]", "localhost"};
  const char *names2[] = {"0.0.0.0", "::", "host.example", "[::]"};
  prd_identity id;
  char dir[PATH_MAX];
  char cn[128];

  pjoin(dir, sizeof(dir), "%s/one", f->base);
  assert_int_equal(
      prd_identity_load_or_create(&id, dir, names1, 2, f->err, sizeof(f->err)),
      0);
  cert_cn(cn, sizeof(cn), id.cert_der, id.certlen);
  assert_string_equal(cn, "::1");
  prd_identity_free(&id);

  pjoin(dir, sizeof(dir), "%s/two", f->base);
  assert_int_equal(
      prd_identity_load_or_create(&id, dir, names2, 4, f->err, sizeof(f->err)),
      0);
  cert_cn(cn, sizeof(cn), id.cert_der, id.certlen);
  assert_string_equal(cn, "host.example");
  assert_int_equal(
      prd_cert_matches_name(id.cert_der, id.certlen, "host.example"), 1);
  assert_int_equal(prd_cert_matches_name(id.cert_der, id.certlen, "0.0.0.0"),
                   0);
  assert_int_equal(prd_cert_matches_name(id.cert_der, id.certlen, "::"), 0);
  prd_identity_free(&id);

  pjoin(dir, sizeof(dir), "%s/three", f->base);
  assert_int_equal(
      prd_identity_load_or_create(&id, dir, NULL, 0, f->err, sizeof(f->err)),
      0);
  cert_cn(cn, sizeof(cn), id.cert_der, id.certlen);
  assert_string_equal(cn, "portredirect");
  /* Only SANs count, never the CN (design.md §1). */
  assert_int_equal(
      prd_cert_matches_name(id.cert_der, id.certlen, "portredirect"), 0);
  prd_identity_free(&id);
}

/* The default names (README "Usage") match, including IPv4 and IPv6. */
static void test_identity_default_names_match(void **state) {
  fixture *f = *state;
  prd_identity id;

  create_default(f, &id);
  assert_int_equal(prd_cert_matches_name(id.cert_der, id.certlen, "127.0.0.1"),
                   1);
  assert_int_equal(prd_cert_matches_name(id.cert_der, id.certlen, "::1"), 1);
  assert_int_equal(prd_cert_matches_name(id.cert_der, id.certlen, "localhost"),
                   1);
  assert_int_equal(prd_cert_matches_name(id.cert_der, id.certlen, "127.0.0.2"),
                   0);
  assert_int_equal(
      prd_cert_matches_name(id.cert_der, id.certlen, "localhost.localdomain"),
      0);
  prd_identity_free(&id);
}

/* prd_cert_names lists the DNS and IP SANs for messages; a short buffer
 * ends in "...", garbage is -1. */
static void test_identity_cert_names(void **state) {
  fixture *f = *state;
  const char *names[] = {"tunnel.example", "192.0.2.7", "2001:db8::5"};
  prd_identity id;
  char out[128];
  uint8_t junk[8] = {0x30, 0x03, 0x02, 0x01, 0x00};

  assert_int_equal(prd_identity_load_or_create(&id, f->dir, names, 3, f->err,
                                               sizeof(f->err)),
                   0);
  assert_int_equal(prd_cert_names(id.cert_der, id.certlen, out, sizeof(out)),
                   3);
  assert_string_equal(out, "tunnel.example, 192.0.2.7, 2001:db8::5");
  assert_true(prd_cert_names(id.cert_der, id.certlen, out, 28) >= 1);
  assert_string_equal(out, "tunnel.example, ...");
  assert_int_equal(prd_cert_names(junk, sizeof(junk), out, sizeof(out)), -1);
  prd_identity_free(&id);
}

/* SHA-256 of the DER as "AB:CD:..." upper-case. */
static void test_identity_fingerprint(void **state) {
  fixture *f = *state;
  prd_identity id;
  char fp[PRD_FINGERPRINT_LEN];
  char expect[PRD_FINGERPRINT_LEN];
  uint8_t digest[32];
  size_t i;

  create_default(f, &id);
  memset(fp, 'x', sizeof(fp));
  assert_int_equal(prd_cert_fingerprint(fp, id.cert_der, id.certlen), 0);
  assert_int_equal(strlen(fp), 95);
  for (i = 0; i < 95; ++i) {
    if (i % 3 == 2) {
      assert_int_equal(fp[i], ':');
    } else {
      assert_non_null(strchr("0123456789ABCDEF", fp[i]));
    }
  }
  assert_int_equal(
      gnutls_hash_fast(GNUTLS_DIG_SHA256, id.cert_der, id.certlen, digest), 0);
  for (i = 0; i < 32; ++i) {
    pjoin(expect + 3 * i, 4, i < 31 ? "%02X:" : "%02X", digest[i]);
  }
  assert_string_equal(fp, expect);
  /* A known value: SHA-256("abc"). */
  assert_int_equal(prd_cert_fingerprint(fp, (const uint8_t *)"abc", 3), 0);
  assert_string_equal(fp, "BA:78:16:BF:8F:01:CF:EA:41:41:40:DE:5D:AE:22:23:"
                          "B0:03:61:A3:96:17:7A:9C:B4:10:FF:61:F2:00:15:AD");
  prd_identity_free(&id);
}

/* spec/06-files-and-cli.md §2.1: refuse a key readable by group or others, with
 * the fix. */
static void test_identity_key_group_readable(void **state) {
  fixture *f = *state;
  prd_identity id;
  char hint[PATH_MAX + 32];

  create_default(f, &id);
  prd_identity_free(&id);
  assert_int_equal(chmod(f->key, 0644), 0);
  assert_int_equal(prd_identity_load_or_create(&id, f->dir, default_names, 3,
                                               f->err, sizeof(f->err)),
                   -1);
  assert_null(id.key_der);
  assert_err_contains(f, "readable by group/others (mode 0644)");
  pjoin(hint, sizeof(hint), "run: chmod 600 %s", f->key);
  assert_err_contains(f, hint);

  assert_int_equal(chmod(f->key, 0640), 0);
  assert_int_equal(prd_identity_load_or_create(&id, f->dir, default_names, 3,
                                               f->err, sizeof(f->err)),
                   -1);
  assert_err_contains(f, "(mode 0640)");
  /* Readable by others only. */
  assert_int_equal(chmod(f->key, 0604), 0);
  assert_int_equal(prd_identity_load_or_create(&id, f->dir, default_names, 3,
                                               f->err, sizeof(f->err)),
                   -1);
  assert_err_contains(f, "(mode 0604); run: chmod 600");
  /* Fixed as told: loads again. */
  assert_int_equal(chmod(f->key, 0600), 0);
  create_default(f, &id);
  prd_identity_free(&id);
  /* 0400 is fine too. */
  assert_int_equal(chmod(f->key, 0400), 0);
  create_default(f, &id);
  prd_identity_free(&id);
}

/* A lone cert.der or a lone key.der is an error naming the missing file,
 * and nothing is created over it. */
static void test_identity_half_pair_refused(void **state) {
  fixture *f = *state;
  prd_identity id;
  uint8_t *cert;
  size_t certlen;
  struct stat st;
  char msg[PATH_MAX + 64];
  time_t t0;

  create_default(f, &id);
  prd_identity_free(&id);
  read_whole(&cert, &certlen, f->cert);

  assert_int_equal(unlink(f->key), 0);
  assert_int_equal(prd_identity_load_or_create(&id, f->dir, default_names, 3,
                                               f->err, sizeof(f->err)),
                   -1);
  pjoin(msg, sizeof(msg), "key file %s is missing", f->key);
  assert_err_contains(f, msg);
  assert_int_equal(stat(f->key, &st), -1); /* not re-created */

  /* Key without cert: put a key back, drop the cert. No creation is in
   * progress (no temp file), so the error comes at once. */
  assert_int_equal(unlink(f->cert), 0);
  create_default(f, &id);
  prd_identity_free(&id);
  assert_int_equal(unlink(f->cert), 0);
  t0 = time(NULL);
  assert_int_equal(prd_identity_load_or_create(&id, f->dir, default_names, 3,
                                               f->err, sizeof(f->err)),
                   -1);
  assert_true(time(NULL) - t0 < 3);
  pjoin(msg, sizeof(msg), "certificate file %s is missing", f->cert);
  assert_err_contains(f, msg);
  assert_int_equal(stat(f->cert, &st), -1);
  free(cert);
}

/* Files that do not parse are errors that name the file. */
static void test_identity_garbage_refused(void **state) {
  fixture *f = *state;
  prd_identity id;
  prd_identity other;
  char otherdir[PATH_MAX];
  uint8_t *key;
  size_t keylen;
  uint8_t *cert;
  size_t certlen;
  char msg[PATH_MAX + 64];
  static const char junk[] = "this is not DER\n";

  create_default(f, &id);
  prd_identity_free(&id);
  read_whole(&key, &keylen, f->key);
  read_whole(&cert, &certlen, f->cert);

  write_file(f->cert, junk, sizeof(junk) - 1, 0644);
  assert_int_equal(prd_identity_load_or_create(&id, f->dir, default_names, 3,
                                               f->err, sizeof(f->err)),
                   -1);
  pjoin(msg, sizeof(msg), "certificate file %s", f->cert);
  assert_err_contains(f, msg);
  assert_err_contains(f, "not a DER X.509 certificate");

  /* A truncated certificate is garbage too. */
  write_file(f->cert, cert, certlen - 1, 0644);
  assert_int_equal(prd_identity_load_or_create(&id, f->dir, default_names, 3,
                                               f->err, sizeof(f->err)),
                   -1);
  assert_err_contains(f, msg);

  /* Good cert, garbage key. */
  write_file(f->cert, cert, certlen, 0644);
  write_file(f->key, junk, sizeof(junk) - 1, 0600);
  assert_int_equal(prd_identity_load_or_create(&id, f->dir, default_names, 3,
                                               f->err, sizeof(f->err)),
                   -1);
  pjoin(msg, sizeof(msg), "key file %s", f->key);
  assert_err_contains(f, msg);

  /* Empty key file. */
  write_file(f->key, "", 0, 0600);
  assert_int_equal(prd_identity_load_or_create(&id, f->dir, default_names, 3,
                                               f->err, sizeof(f->err)),
                   -1);
  assert_err_contains(f, msg);

  /* A key that belongs to another certificate. */
  pjoin(otherdir, sizeof(otherdir), "%s/other", f->base);
  assert_int_equal(prd_identity_load_or_create(&other, otherdir, default_names,
                                               3, f->err, sizeof(f->err)),
                   0);
  write_file(f->key, other.key_der, other.keylen, 0600);
  prd_identity_free(&other);
  assert_int_equal(prd_identity_load_or_create(&id, f->dir, default_names, 3,
                                               f->err, sizeof(f->err)),
                   -1);
  assert_err_contains(f, "does not belong");

  /* Restored: loads. */
  write_file(f->key, key, keylen, 0600);
  create_default(f, &id);
  assert_memory_equal(id.cert_der, cert, certlen);
  prd_identity_free(&id);
  assert_int_equal(prd_cert_check_der((const uint8_t *)junk, sizeof(junk)), -1);
  assert_int_equal(prd_cert_check_der(cert, certlen), 0);
  assert_int_equal(prd_cert_check_der(cert, 0), -1);
  free(key);
  free(cert);
}

static int have_openssl(void) { return access("/usr/bin/openssl", X_OK) == 0; }

/* A PortRedirect-RS directory: ECDSA P-256 PKCS#8 DER key and X.509 DER
 * cert made by another tool (openssl here) load unchanged. */
static void test_identity_foreign_pkcs8_loads(void **state) {
  fixture *f = *state;
  prd_identity id;
  char cmd[4 * PATH_MAX];
  uint8_t *key;
  size_t keylen;
  uint8_t *cert;
  size_t certlen;

  if (!have_openssl()) {
    skip();
  }
  assert_int_equal(prd_config_dir_ensure(f->dir, f->err, sizeof(f->err)), 0);
  pjoin(cmd, sizeof(cmd),
        "cd '%s' && umask 077 && "
        "openssl ecparam -genkey -name prime256v1 -outform PEM 2>/dev/null"
        " | openssl pkcs8 -topk8 -nocrypt -outform DER -out key.der && "
        "openssl req -x509 -new -key key.der -keyform DER -outform DER "
        "-out cert.der -days 30 -subj /CN=x "
        "-addext subjectAltName=DNS:localhost,IP:127.0.0.1 2>/dev/null",
        f->dir);
  assert_int_equal(system(cmd), 0);
  read_whole(&key, &keylen, f->key);
  read_whole(&cert, &certlen, f->cert);

  create_default(f, &id);
  assert_int_equal(id.keylen, keylen);
  assert_memory_equal(id.key_der, key, keylen); /* kept as it is */
  assert_int_equal(id.certlen, certlen);
  assert_memory_equal(id.cert_der, cert, certlen);
  assert_int_equal(prd_cert_matches_name(id.cert_der, id.certlen, "localhost"),
                   1);
  assert_int_equal(prd_cert_matches_name(id.cert_der, id.certlen, "127.0.0.1"),
                   1);
  assert_int_equal(prd_cert_matches_name(id.cert_der, id.certlen, "x"), 0);
  prd_identity_free(&id);
  free(key);
  free(cert);
}

/* A legacy SEC1 "EC PRIVATE KEY" DER loads and is handed out as PKCS#8. */
static void test_identity_sec1_key_converted(void **state) {
  fixture *f = *state;
  prd_identity id;
  char cmd[4 * PATH_MAX];
  uint8_t *key;
  size_t keylen;
  gnutls_x509_privkey_t pk;
  gnutls_datum_t d;

  if (!have_openssl()) {
    skip();
  }
  assert_int_equal(prd_config_dir_ensure(f->dir, f->err, sizeof(f->err)), 0);
  pjoin(cmd, sizeof(cmd),
        "cd '%s' && umask 077 && "
        "openssl ecparam -genkey -noout -name prime256v1 -outform DER "
        "-out key.der 2>/dev/null && "
        "openssl req -x509 -new -key key.der -keyform DER -outform DER "
        "-out cert.der -days 30 -subj /CN=x "
        "-addext subjectAltName=DNS:localhost 2>/dev/null",
        f->dir);
  assert_int_equal(system(cmd), 0);
  read_whole(&key, &keylen, f->key);
  create_default(f, &id);
  assert_true(id.keylen != keylen || memcmp(id.key_der, key, keylen) != 0);
  assert_int_equal(gnutls_x509_privkey_init(&pk), 0);
  d.data = id.key_der;
  d.size = (unsigned)id.keylen;
  assert_int_equal(gnutls_x509_privkey_import_pkcs8(pk, &d, GNUTLS_X509_FMT_DER,
                                                    NULL, GNUTLS_PKCS_PLAIN),
                   0);
  gnutls_x509_privkey_deinit(pk);
  prd_identity_free(&id);
  free(key);
}

/* Two (here: four) servers starting at once on an empty directory all end
 * up with the one pair that is on disk. */
typedef struct race_report {
  char certfp[PRD_FINGERPRINT_LEN];
  char keyfp[PRD_FINGERPRINT_LEN];
} race_report;

static void test_identity_race_one_pair(void **state) {
  fixture *f = *state;
  enum { NPROC = 4, ROUNDS = 5 };
  int round;

  for (round = 0; round < ROUNDS; ++round) {
    char dir[PATH_MAX];
    char path[PATH_MAX];
    race_report rep[NPROC];
    race_report disk;
    int fds[NPROC][2];
    pid_t pids[NPROC];
    uint8_t *data;
    size_t len;
    int i;

    pjoin(dir, sizeof(dir), "%s/race%d/portredirect", f->base, round);
    for (i = 0; i < NPROC; ++i) {
      assert_int_equal(pipe(fds[i]), 0);
      pids[i] = fork();
      assert_true(pids[i] >= 0);
      if (pids[i] == 0) {
        prd_identity id;
        race_report out;
        char err[512];

        close(fds[i][0]);
        if (prd_identity_load_or_create(&id, dir, default_names, 3, err,
                                        sizeof(err)) != 0) {
          dprintf(2, "child: %s\n", err);
          _exit(1);
        }
        prd_cert_fingerprint(out.certfp, id.cert_der, id.certlen);
        prd_cert_fingerprint(out.keyfp, id.key_der, id.keylen);
        prd_identity_free(&id);
        _exit(write(fds[i][1], &out, sizeof(out)) == (ssize_t)sizeof(out) ? 0
                                                                          : 2);
      }
      close(fds[i][1]);
    }
    for (i = 0; i < NPROC; ++i) {
      int status = 0;
      assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
      assert_true(WIFEXITED(status));
      assert_int_equal(WEXITSTATUS(status), 0);
      assert_int_equal(read(fds[i][0], &rep[i], sizeof(rep[i])),
                       (ssize_t)sizeof(rep[i]));
      close(fds[i][0]);
    }
    pjoin(path, sizeof(path), "%s/%s", dir, PRD_CERT_FILE);
    read_whole(&data, &len, path);
    assert_int_equal(prd_cert_fingerprint(disk.certfp, data, len), 0);
    free(data);
    pjoin(path, sizeof(path), "%s/%s", dir, PRD_KEY_FILE);
    read_whole(&data, &len, path);
    assert_int_equal(prd_cert_fingerprint(disk.keyfp, data, len), 0);
    free(data);
    for (i = 0; i < NPROC; ++i) {
      assert_string_equal(rep[i].certfp, disk.certfp);
      assert_string_equal(rep[i].keyfp, disk.keyfp);
    }
    assert_int_equal(count_temp_files(dir), 0);
  }
}

/* A start that finds key.der alone while another process is still
 * publishing its pair (its certificate temp file exists) waits for
 * cert.der instead of failing, then uses that pair. */
static void test_identity_waits_for_inflight_cert(void **state) {
  fixture *f = *state;
  prd_identity src;
  prd_identity id;
  char srcdir[PATH_MAX];
  char tmp[PATH_MAX];
  pid_t pid;
  int status = 0;

  pjoin(srcdir, sizeof(srcdir), "%s/src", f->base);
  assert_int_equal(prd_identity_load_or_create(&src, srcdir, default_names, 3,
                                               f->err, sizeof(f->err)),
                   0);
  assert_int_equal(prd_config_dir_ensure(f->dir, f->err, sizeof(f->err)), 0);
  /* The state between the two links of identity_create. */
  write_file(f->key, src.key_der, src.keylen, 0600);
  pjoin(tmp, sizeof(tmp), "%s/.%s.tmp.1.0000abcd", f->dir, PRD_CERT_FILE);
  write_file(tmp, src.cert_der, src.certlen, 0644);
  pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    usleep(300 * 1000);
    _exit(link(tmp, f->cert) == 0 && unlink(tmp) == 0 ? 0 : 1);
  }
  assert_int_equal(prd_identity_load_or_create(&id, f->dir, default_names, 3,
                                               f->err, sizeof(f->err)),
                   0);
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_int_equal(status, 0);
  assert_int_equal(id.certlen, src.certlen);
  assert_memory_equal(id.cert_der, src.cert_der, src.certlen);
  assert_memory_equal(id.key_der, src.key_der, src.keylen);
  prd_identity_free(&id);
  prd_identity_free(&src);
}

/* prd_file_write_atomic: exact mode, replaces, leaves no temp file. */
static void test_identity_file_write_atomic(void **state) {
  fixture *f = *state;
  char path[PATH_MAX];
  uint8_t *data;
  size_t len;
  struct stat st;
  mode_t old = umask(077);

  pjoin(path, sizeof(path), "%s/pin.der", f->base);
  assert_int_equal(prd_file_write_atomic(path, (const uint8_t *)"one", 3, 0644),
                   0);
  assert_int_equal(stat(path, &st), 0);
  assert_int_equal(st.st_mode & 07777, 0644); /* despite the umask */
  assert_int_equal(
      prd_file_write_atomic(path, (const uint8_t *)"second", 6, 0600), 0);
  umask(old);
  read_whole(&data, &len, path);
  assert_int_equal(len, 6);
  assert_memory_equal(data, "second", 6);
  free(data);
  assert_int_equal(stat(path, &st), 0);
  assert_int_equal(st.st_mode & 07777, 0600);
  assert_int_equal(count_temp_files(f->base), 0);
  /* Into a missing directory: -ENOENT, nothing created. */
  pjoin(path, sizeof(path), "%s/missing/pin.der", f->base);
  assert_int_equal(prd_file_write_atomic(path, (const uint8_t *)"x", 1, 0600),
                   -ENOENT);
}

/* prd_file_read: size limit and errors. */
static void test_identity_file_read_limits(void **state) {
  fixture *f = *state;
  char path[PATH_MAX];
  uint8_t *data = (uint8_t *)1;
  size_t len = 1;
  uint8_t big[100];

  memset(big, 'a', sizeof(big));
  pjoin(path, sizeof(path), "%s/big", f->base);
  write_file(path, big, sizeof(big), 0600);
  assert_int_equal(prd_file_read(&data, &len, path, 99),
                   PRD_ERR_FRAME_TOO_LARGE);
  assert_null(data);
  assert_int_equal(prd_file_read(&data, &len, path, 100), 0);
  assert_int_equal(len, 100);
  free(data);
  pjoin(path, sizeof(path), "%s/none", f->base);
  assert_int_equal(prd_file_read(&data, &len, path, 100), -ENOENT);
  assert_int_equal(prd_file_read(&data, &len, f->base, 100), -EISDIR);
}

/* prd_config_dir_ensure: mkdir -p with 0700; a file in the way is an error
 * naming the path. */
static void test_identity_config_dir(void **state) {
  fixture *f = *state;
  char path[PATH_MAX];
  struct stat st;

  pjoin(path, sizeof(path), "%s/x/y/z/", f->base);
  assert_int_equal(prd_config_dir_ensure(path, f->err, sizeof(f->err)), 0);
  assert_int_equal(stat(path, &st), 0);
  assert_int_equal(st.st_mode & 07777, 0700);
  pjoin(path, sizeof(path), "%s/x/y", f->base);
  assert_int_equal(stat(path, &st), 0);
  assert_int_equal(st.st_mode & 07777, 0700);
  /* Existing: fine, mode untouched. */
  assert_int_equal(chmod(path, 0755), 0);
  assert_int_equal(prd_config_dir_ensure(path, f->err, sizeof(f->err)), 0);
  assert_int_equal(stat(path, &st), 0);
  assert_int_equal(st.st_mode & 07777, 0755);

  pjoin(path, sizeof(path), "%s/file", f->base);
  write_file(path, "x", 1, 0600);
  assert_int_equal(prd_config_dir_ensure(path, f->err, sizeof(f->err)), -1);
  assert_err_contains(f, path);
  pjoin(path, sizeof(path), "%s/file/sub", f->base);
  assert_int_equal(prd_config_dir_ensure(path, f->err, sizeof(f->err)), -1);
  assert_err_contains(f, "file");
  assert_int_equal(prd_config_dir_ensure("", f->err, sizeof(f->err)), -1);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void) {
  const struct CMUnitTest tests[] = {
      T(test_identity_create_modes),
      T(test_identity_reload_identical),
      T(test_identity_cert_profile),
      T(test_identity_sans_match),
      T(test_identity_wildcard_rules),
      T(test_identity_cn_and_unspecified),
      T(test_identity_default_names_match),
      T(test_identity_fingerprint),
      T(test_identity_cert_names),
      T(test_identity_key_group_readable),
      T(test_identity_half_pair_refused),
      T(test_identity_garbage_refused),
      T(test_identity_foreign_pkcs8_loads),
      T(test_identity_sec1_key_converted),
      T(test_identity_race_one_pair),
      T(test_identity_waits_for_inflight_cert),
      T(test_identity_file_write_atomic),
      T(test_identity_file_read_limits),
      T(test_identity_config_dir),
  };

  return cmocka_run_group_tests_name("identity", tests, NULL, NULL);
}
