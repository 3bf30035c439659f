/* SPDX-License-Identifier: GPL-3.0-only */
/* X.509 for the TLS layer: the server's identity (ECDSA P-256 key and
 * self-signed certificate, created once and loaded), fingerprints, and the
 * subject alternative names a client checks (spec/03-auth.md §8). The file
 * primitives are src/common/file.c; pin files are src/cli/pins.c. */
#include "identity.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "../common/err.h"
#include "../common/file.h"
#include "../common/log.h"

#define PRD_CERT_CN "portredirect" /* when there is no name */
#define PRD_CN_MAX 64              /* X.520 ub-common-name */
#define PRD_SERIAL_LEN 16
#define PRD_KEY_ID_MAX 64
#define PRD_SAN_MAX 1024 /* SANs looked at when matching a name */
/* A key.der this recent without its cert.der, next to a certificate temp
 * file, is another server finishing its first start (see identity_create);
 * wait this long for it. */
#define PRD_PAIR_FRESH_S 60
#define PRD_PAIR_WAIT_MS 5000
#define PRD_PAIR_POLL_MS 10

static void sleep_ms(unsigned ms) {
  struct timespec ts;

  ts.tv_sec = (time_t)(ms / 1000);
  ts.tv_nsec = (long)(ms % 1000) * 1000000L;
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

/* san_parse_ip parses |name| ("1.2.3.4", "::1" or "[::1]") into raw bytes.
 * Returns 4 or 16, or 0 when |name| is not an IP address. */
static size_t san_parse_ip(uint8_t *ip, const char *name) {
  char buf[INET6_ADDRSTRLEN + 2];
  size_t len = strlen(name);

  if (len >= 2 && name[0] == '[' && name[len - 1] == ']') {
    if (len - 2 >= sizeof(buf)) {
      return 0;
    }
    memcpy(buf, name + 1, len - 2);
    buf[len - 2] = '\0';
    return inet_pton(AF_INET6, buf, ip) == 1 ? 16 : 0;
  }
  if (inet_pton(AF_INET, name, ip) == 1) {
    return 4;
  }
  if (inet_pton(AF_INET6, name, ip) == 1) {
    return 16;
  }
  return 0;
}

/* A SAN to put in a new certificate, normalised for deduplication. */
typedef struct san_entry {
  unsigned type; /* GNUTLS_SAN_IPADDRESS or GNUTLS_SAN_DNSNAME */
  size_t len;
  uint8_t data[256];
} san_entry;

static int san_equal(const san_entry *x, const san_entry *y) {
  if (x->type != y->type || x->len != y->len) {
    return 0;
  }
  if (x->type == GNUTLS_SAN_DNSNAME) {
    return strncasecmp((const char *)x->data, (const char *)y->data, x->len) ==
           0;
  }
  return memcmp(x->data, y->data, x->len) == 0;
}

/* cert_add_sans adds one SAN per distinct name (spec/06-files-and-cli.md
 * §2.2): addresses become IP SANs with their raw 4 or 16 bytes (RFC 5280
 * §4.2.1.6), anything else a DNS SAN; the unspecified addresses are left out.
 * The first name put in goes to |cn| (left alone when there is none or it is
 * longer than X.520 allows a CN). */
static int cert_add_sans(gnutls_x509_crt_t crt, char *cn, size_t cnlen,
                         const char *const *names, size_t nnames, char *err,
                         size_t errlen) {
  static const uint8_t zero[16];
  san_entry *sans;
  size_t nsans = 0;
  size_t i;
  size_t j;
  int rv = 0;

  if (nnames == 0) {
    return 0;
  }
  sans = calloc(nnames, sizeof(*sans));
  if (sans == NULL) {
    return prd_err_fmt(err, errlen, "out of memory");
  }
  for (i = 0; i < nnames; ++i) {
    san_entry *e = &sans[nsans];
    const char *name = names[i];
    size_t len;

    if (name == NULL || name[0] == '\0') {
      continue;
    }
    e->len = san_parse_ip(e->data, name);
    if (e->len > 0) {
      if (memcmp(e->data, zero, e->len) == 0) {
        continue; /* 0.0.0.0 or ::, which no client can expect */
      }
      e->type = GNUTLS_SAN_IPADDRESS;
    } else {
      len = strlen(name);
      if (len >= sizeof(e->data)) {
        rv = prd_err_fmt(err, errlen, "certificate name too long: %s", name);
        goto out;
      }
      e->type = GNUTLS_SAN_DNSNAME;
      e->len = len;
      memcpy(e->data, name, len);
    }
    for (j = 0; j < nsans; ++j) {
      if (san_equal(&sans[j], e)) {
        break;
      }
    }
    if (j < nsans) {
      continue;
    }
    if (gnutls_x509_crt_set_subject_alt_name(
            crt, (gnutls_x509_subject_alt_name_t)e->type, e->data,
            (unsigned)e->len,
            nsans == 0 ? GNUTLS_FSAN_SET : GNUTLS_FSAN_APPEND) < 0) {
      rv = prd_err_fmt(err, errlen, "cannot put name %s into the certificate",
                       name);
      goto out;
    }
    if (nsans == 0) {
      /* The name as text, without the brackets of "[::1]". */
      len = strlen(name);
      if (e->type == GNUTLS_SAN_IPADDRESS && name[0] == '[') {
        ++name;
        len -= 2;
      }
      if (len < cnlen) {
        memcpy(cn, name, len);
        cn[len] = '\0';
      }
    }
    ++nsans;
  }

out:
  free(sans);
  return rv;
}

/* identity_generate creates an ECDSA P-256 key and a self-signed
 * certificate for |names| (spec/06-files-and-cli.md §2.2). On
 * success |*pcert| and |*pkey| hold DER allocated by GnuTLS. */

/* generate_p256 makes an ECDSA P-256 key whose private scalar has its top
 * bit clear and no leading zero byte. GnuTLS 3.7 writes the scalar of
 * PKCS#8 like a signed INTEGER (33 bytes when the top bit is set, shorter
 * with leading zeros), which RFC 5915 does not allow and ring (rustls,
 * PortRedirect-RS) refuses (spec/06-files-and-cli.md §2.2). Drawing again
 * costs nothing and makes every key.der we write 32 bytes exactly. */
static int generate_p256(gnutls_x509_privkey_t *pkey) {
  for (int tries = 0; tries < 64; ++tries) {
    gnutls_x509_privkey_t key;
    gnutls_ecc_curve_t curve;
    gnutls_datum_t x = {NULL, 0}, y = {NULL, 0}, k = {NULL, 0};
    int good;
    if (gnutls_x509_privkey_init(&key) < 0) {
      return -1;
    }
    if (gnutls_x509_privkey_generate(
            key, GNUTLS_PK_ECDSA,
            GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0) < 0 ||
        gnutls_x509_privkey_export_ecc_raw(key, &curve, &x, &y, &k) < 0) {
      gnutls_x509_privkey_deinit(key);
      return -1;
    }
    good =
        (k.size == 32 && k.data[0] != 0 && k.data[0] < 0x80) ||
        (k.size == 33 && k.data[0] == 0 && k.data[1] != 0 && k.data[1] < 0x80);
    gnutls_free(x.data);
    gnutls_free(y.data);
    if (k.data) {
      gnutls_memset(k.data, 0, k.size);
      gnutls_free(k.data);
    }
    if (good) {
      *pkey = key;
      return 0;
    }
    gnutls_x509_privkey_deinit(key);
  }
  return -1;
}

static int identity_generate(gnutls_datum_t *pcert, gnutls_datum_t *pkey,
                             const char *const *names, size_t nnames, char *err,
                             size_t errlen) {
  gnutls_x509_privkey_t key = NULL;
  gnutls_x509_crt_t crt = NULL;
  uint8_t serial[PRD_SERIAL_LEN];
  uint8_t keyid[PRD_KEY_ID_MAX];
  size_t keyidlen = sizeof(keyid);
  char cn[PRD_CN_MAX + 1] = PRD_CERT_CN;
  time_t now = time(NULL);
  int rv = -1;

  pcert->data = NULL;
  pkey->data = NULL;
  if (generate_p256(&key) != 0) {
    prd_err_fmt(err, errlen, "cannot generate an ECDSA P-256 key");
    goto out;
  }
  if (gnutls_x509_crt_init(&crt) < 0) {
    prd_err_fmt(err, errlen, "out of memory");
    goto out;
  }
  /* RFC 5280 §4.1.2.2: a positive serial of at most 20 bytes. */
  if (gnutls_rnd(GNUTLS_RND_NONCE, serial, sizeof(serial)) < 0) {
    prd_err_fmt(err, errlen, "no random bytes for the certificate serial");
    goto out;
  }
  serial[0] &= 0x7f;
  if (serial[0] == 0) {
    serial[0] = 1; /* keep the DER INTEGER exactly 16 bytes long */
  }
  if (cert_add_sans(crt, cn, sizeof(cn), names, nnames, err, errlen) != 0) {
    goto out;
  }
  if (gnutls_x509_crt_set_version(crt, 3) < 0 ||
      gnutls_x509_crt_set_serial(crt, serial, sizeof(serial)) < 0 ||
      gnutls_x509_crt_set_activation_time(crt, now - 24 * 60 * 60) < 0 ||
      /* (time_t)-1 is 99991231235959Z, RFC 5280 §4.1.2.5 "no well-defined
       * expiration date": a pinned certificate does not expire. */
      gnutls_x509_crt_set_expiration_time(crt, (time_t)-1) < 0 ||
      gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, cn,
                                    (unsigned)strlen(cn)) < 0 ||
      gnutls_x509_crt_set_key(crt, key) < 0 ||
      gnutls_x509_crt_set_basic_constraints(crt, 0, -1) < 0 ||
      gnutls_x509_crt_set_key_usage(crt, GNUTLS_KEY_DIGITAL_SIGNATURE) < 0 ||
      gnutls_x509_crt_set_key_purpose_oid(crt, GNUTLS_KP_TLS_WWW_SERVER, 0) <
          0) {
    prd_err_fmt(err, errlen, "cannot build the certificate");
    goto out;
  }
  if (gnutls_x509_crt_get_key_id(crt, GNUTLS_KEYID_USE_SHA1, keyid,
                                 &keyidlen) >= 0) {
    gnutls_x509_crt_set_subject_key_id(crt, keyid, keyidlen);
  }
  if (gnutls_x509_crt_sign2(crt, crt, key, GNUTLS_DIG_SHA256, 0) < 0) {
    prd_err_fmt(err, errlen, "cannot sign the certificate");
    goto out;
  }
  if (gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_DER, pcert) < 0 ||
      gnutls_x509_privkey_export2_pkcs8(key, GNUTLS_X509_FMT_DER, NULL,
                                        GNUTLS_PKCS_PLAIN, pkey) < 0) {
    prd_err_fmt(err, errlen, "cannot export the new identity");
    goto out;
  }
  rv = 0;

out:
  if (rv != 0) {
    gnutls_free(pcert->data);
    pcert->data = NULL;
    if (pkey->data != NULL) {
      gnutls_memset(pkey->data, 0, pkey->size);
      gnutls_free(pkey->data);
      pkey->data = NULL;
    }
  }
  if (crt != NULL) {
    gnutls_x509_crt_deinit(crt);
  }
  if (key != NULL) {
    gnutls_x509_privkey_deinit(key);
  }
  return rv;
}

/* identity_create generates a pair and publishes it in |dir| unless another
 * process gets there first. Returns 0 when the directory now holds (or is
 * about to hold) a pair, whoever made it, or -1 with a message.
 *
 * Concurrency: several servers may start at once on an empty directory,
 * and each must end up using the same pair. Each writes its key and its
 * certificate into private temp files (complete and fsynced), then gives the
 * key its final name with link(2), which fails with EEXIST instead of
 * replacing. Exactly one process wins key.der; only the winner then links
 * cert.der. A loser discards its own pair. Every process then reads the pair
 * back from disk, so all use the winner's. A reader that sees key.der
 * without cert.der while a certificate temp file exists waits briefly for
 * the winner to finish (see prd_identity_load_or_create). A file is never
 * visible half-written, because it gets its name only once complete. If the
 * winner dies between the two links, key.der stays alone (with a stale temp
 * file) and later starts refuse it, naming the missing cert.der. */
static int identity_create(const char *dir, const char *certpath,
                           const char *keypath, const char *const *names,
                           size_t nnames, char *err, size_t errlen) {
  gnutls_datum_t cert = {NULL, 0};
  gnutls_datum_t key = {NULL, 0};
  char certtmp[PATH_MAX];
  char keytmp[PATH_MAX];
  int rv;
  int ret = -1;

  certtmp[0] = '\0';
  keytmp[0] = '\0';
  if (identity_generate(&cert, &key, names, nnames, err, errlen) != 0) {
    return -1;
  }
  rv = prd_file_write_temp(keytmp, sizeof(keytmp), keypath, key.data, key.size,
                           0600);
  if (rv != 0) {
    keytmp[0] = '\0';
    prd_err_fmt(err, errlen, "cannot write key file %s: %s", keypath,
                strerror(-rv));
    goto out;
  }
  rv = prd_file_write_temp(certtmp, sizeof(certtmp), certpath, cert.data,
                           cert.size, 0644);
  if (rv != 0) {
    certtmp[0] = '\0';
    prd_err_fmt(err, errlen, "cannot write certificate file %s: %s", certpath,
                strerror(-rv));
    goto out;
  }
  rv = prd_file_publish_noreplace(keytmp, keypath);
  keytmp[0] = '\0';
  if (rv == -EEXIST) {
    ret = 0; /* another process won; use its pair */
    goto out;
  }
  if (rv != 0) {
    prd_err_fmt(err, errlen, "cannot create key file %s: %s", keypath,
                strerror(-rv));
    goto out;
  }
  rv = prd_file_publish_noreplace(certtmp, certpath);
  certtmp[0] = '\0';
  if (rv != 0) {
    /* Our key cannot be paired with our certificate (a cert.der appeared
     * from elsewhere, or the write failed): take the key back, since no
     * one else can be using it yet. */
    unlink(keypath);
    prd_err_fmt(err, errlen, "cannot create certificate file %s: %s", certpath,
                rv == -EEXIST ? "it appeared while key.der was being created"
                              : strerror(-rv));
    goto out;
  }
  rv = prd_file_fsync_dir(dir);
  if (rv != 0) {
    prd_err_fmt(err, errlen, "cannot sync config directory %s: %s", dir,
                strerror(-rv));
    goto out;
  }
  ret = 0;

out:
  if (keytmp[0] != '\0') {
    unlink(keytmp);
  }
  if (certtmp[0] != '\0') {
    unlink(certtmp);
  }
  gnutls_free(cert.data);
  if (key.data != NULL) {
    gnutls_memset(key.data, 0, key.size);
    gnutls_free(key.data);
  }
  return ret;
}

/* import_key parses a private key: PKCS#8 DER (ours and PortRedirect-RS's),
 * else the legacy DER forms GnuTLS knows (SEC1, PKCS#1). */
static int import_key(gnutls_x509_privkey_t key, const uint8_t *der,
                      size_t derlen) {
  gnutls_datum_t d;

  d.data = (unsigned char *)(uintptr_t)der;
  d.size = (unsigned)derlen;
  if (gnutls_x509_privkey_import_pkcs8(key, &d, GNUTLS_X509_FMT_DER, NULL,
                                       GNUTLS_PKCS_PLAIN) >= 0) {
    return 0;
  }
  if (gnutls_x509_privkey_import(key, &d, GNUTLS_X509_FMT_DER) >= 0) {
    return 0;
  }
  return -1;
}

static int import_crt(gnutls_x509_crt_t *pcrt, const uint8_t *der,
                      size_t derlen) {
  gnutls_datum_t d;

  *pcrt = NULL;
  if (der == NULL || derlen == 0 || derlen > UINT_MAX) {
    return -1;
  }
  if (gnutls_x509_crt_init(pcrt) < 0) {
    return -1;
  }
  d.data = (unsigned char *)(uintptr_t)der;
  d.size = (unsigned)derlen;
  if (gnutls_x509_crt_import(*pcrt, &d, GNUTLS_X509_FMT_DER) < 0) {
    gnutls_x509_crt_deinit(*pcrt);
    *pcrt = NULL;
    return -1;
  }
  return 0;
}

/* identity_check parses both files, checks that the key belongs to the
 * certificate, and converts a non-PKCS#8 key to PKCS#8 DER in |id|. */
static int identity_check(prd_identity *id, const char *certpath,
                          const char *keypath, char *err, size_t errlen) {
  gnutls_x509_privkey_t key = NULL;
  gnutls_x509_crt_t crt = NULL;
  gnutls_datum_t p8 = {NULL, 0};
  uint8_t crtid[PRD_KEY_ID_MAX];
  uint8_t keyid[PRD_KEY_ID_MAX];
  size_t crtidlen = sizeof(crtid);
  size_t keyidlen = sizeof(keyid);
  uint8_t *copy;
  int rv = -1;

  if (import_crt(&crt, id->cert_der, id->certlen) != 0) {
    prd_err_fmt(err, errlen,
                "certificate file %s is not a DER X.509 certificate", certpath);
    goto out;
  }
  if (gnutls_x509_privkey_init(&key) < 0) {
    prd_err_fmt(err, errlen, "out of memory");
    goto out;
  }
  if (id->keylen == 0 || id->keylen > UINT_MAX ||
      import_key(key, id->key_der, id->keylen) != 0) {
    prd_err_fmt(err, errlen,
                "key file %s is not an unencrypted PKCS#8 DER private key",
                keypath);
    goto out;
  }
  if (gnutls_x509_crt_get_key_id(crt, GNUTLS_KEYID_USE_SHA256, crtid,
                                 &crtidlen) < 0 ||
      gnutls_x509_privkey_get_key_id(key, GNUTLS_KEYID_USE_SHA256, keyid,
                                     &keyidlen) < 0 ||
      crtidlen != keyidlen || memcmp(crtid, keyid, crtidlen) != 0) {
    prd_err_fmt(err, errlen, "key file %s does not belong to certificate %s",
                keypath, certpath);
    goto out;
  }
  /* identity.h promises PKCS#8; re-encode other forms (the file on disk
   * stays as it is). Our own files and PortRedirect-RS's are already
   * PKCS#8, and re-encoding could change their bytes, so keep those. */
  {
    gnutls_x509_privkey_t probe = NULL;
    gnutls_datum_t d;
    int is_p8;

    d.data = id->key_der;
    d.size = (unsigned)id->keylen;
    if (gnutls_x509_privkey_init(&probe) < 0) {
      prd_err_fmt(err, errlen, "out of memory");
      goto out;
    }
    is_p8 = gnutls_x509_privkey_import_pkcs8(probe, &d, GNUTLS_X509_FMT_DER,
                                             NULL, GNUTLS_PKCS_PLAIN) >= 0;
    gnutls_x509_privkey_deinit(probe);
    if (!is_p8) {
      if (gnutls_x509_privkey_export2_pkcs8(key, GNUTLS_X509_FMT_DER, NULL,
                                            GNUTLS_PKCS_PLAIN, &p8) < 0 ||
          (copy = malloc(p8.size)) == NULL) {
        prd_err_fmt(err, errlen, "cannot convert key file %s to PKCS#8",
                    keypath);
        goto out;
      }
      memcpy(copy, p8.data, p8.size);
      gnutls_memset(id->key_der, 0, id->keylen);
      free(id->key_der);
      id->key_der = copy;
      id->keylen = p8.size;
    }
  }
  rv = 0;

out:
  if (p8.data != NULL) {
    gnutls_memset(p8.data, 0, p8.size);
    gnutls_free(p8.data);
  }
  if (key != NULL) {
    gnutls_x509_privkey_deinit(key);
  }
  if (crt != NULL) {
    gnutls_x509_crt_deinit(crt);
  }
  return rv;
}

/* identity_load reads both files; the key must not be readable by group or
 * others (spec/06-files-and-cli.md §2.1 rule 4). */
static int identity_load(prd_identity *id, const char *certpath,
                         const char *keypath, char *err, size_t errlen) {
  unsigned mode = 0;
  int rv;

  /* The mode of the descriptor read, not of a stat() before the open: the
   * file cannot be swapped in between. */
  rv = prd_file_read_private(&id->key_der, &id->keylen, &mode, keypath,
                             PRD_MAX_DER_FILE);
  if (rv == PRD_ERR_FILE_MODE) {
    return prd_err_fmt(err, errlen,
                       "key file %s is readable by group/others (mode %04o); "
                       "run: chmod 600 %s",
                       keypath, mode, keypath);
  }
  if (rv != 0) {
    return prd_err_fmt(err, errlen, "cannot read key file %s: %s", keypath,
                       rv == PRD_ERR_FRAME_TOO_LARGE ? "file too large"
                                                     : strerror(-rv));
  }
  rv = prd_file_read(&id->cert_der, &id->certlen, certpath, PRD_MAX_DER_FILE);
  if (rv != 0) {
    return prd_err_fmt(
        err, errlen, "cannot read certificate file %s: %s", certpath,
        rv == PRD_ERR_FRAME_TOO_LARGE ? "file too large" : strerror(-rv));
  }
  return identity_check(id, certpath, keypath, err, errlen);
}

/* cert_temp_exists returns 1 if |dir| holds a certificate temp file of
 * prd_file_write_temp, i.e. some process is creating an identity:
 * identity_create writes it before it links key.der and removes it after
 * cert.der. */
static int cert_temp_exists(const char *dir) {
  static const char prefix[] = "." PRD_CERT_FILE ".tmp.";
  struct dirent *de;
  DIR *d = opendir(dir);
  int found = 0;

  if (d == NULL) {
    return 0;
  }
  while ((de = readdir(d)) != NULL) {
    if (strncmp(de->d_name, prefix, sizeof(prefix) - 1) == 0) {
      found = 1;
      break;
    }
  }
  closedir(d);
  return found;
}

/* file_state returns 1 if |path| exists, 0 if not, -1 on another error. */
static int file_state(const char *path, struct stat *st) {
  if (stat(path, st) == 0) {
    return 1;
  }
  return errno == ENOENT ? 0 : -1;
}

int prd_identity_load_or_create(prd_identity *id, const char *dir,
                                const char *const *names, size_t nnames,
                                char *err, size_t errlen) {
  char certpath[PATH_MAX];
  char keypath[PATH_MAX];
  struct stat kst;
  struct stat cst;
  unsigned waited_ms = 0;
  int created = 0;
  int rechecked = 0;
  int have_key;
  int have_cert;
  int n;

  memset(id, 0, sizeof(*id));
  if (prd_config_dir_ensure(dir, err, errlen) != 0) {
    return -1;
  }
  n = snprintf(certpath, sizeof(certpath), "%s/%s", dir, PRD_CERT_FILE);
  if (n < 0 || (size_t)n >= sizeof(certpath)) {
    return prd_err_fmt(err, errlen, "config directory %s: path too long", dir);
  }
  n = snprintf(keypath, sizeof(keypath), "%s/%s", dir, PRD_KEY_FILE);
  if (n < 0 || (size_t)n >= sizeof(keypath)) {
    return prd_err_fmt(err, errlen, "config directory %s: path too long", dir);
  }

  for (;;) {
    /* The certificate first: identity_create links key.der before
     * cert.der, so a cert.der seen here means key.der was already in place.
     * In the other order, a racing creator could link both between the two
     * calls, and the cert would be seen without its key. */
    have_cert = file_state(certpath, &cst);
    if (have_cert < 0) {
      return prd_err_fmt(err, errlen, "cannot access certificate file %s: %s",
                         certpath, strerror(errno));
    }
    have_key = file_state(keypath, &kst);
    if (have_key < 0) {
      return prd_err_fmt(err, errlen, "cannot access key file %s: %s", keypath,
                         strerror(errno));
    }
    if (have_key && have_cert) {
      break;
    }
    if (!have_key && !have_cert && !created) {
      if (identity_create(dir, certpath, keypath, names, nnames, err, errlen) !=
          0) {
        return -1;
      }
      created = 1;
      continue; /* always re-read what is on disk now */
    }
    if (have_key && !have_cert && waited_ms < PRD_PAIR_WAIT_MS &&
        time(NULL) - kst.st_ctime < PRD_PAIR_FRESH_S && cert_temp_exists(dir)) {
      /* Another server is probably between its two links. */
      sleep_ms(PRD_PAIR_POLL_MS);
      waited_ms += PRD_PAIR_POLL_MS;
      continue;
    }
    if (!rechecked) {
      /* A creator may have linked cert.der and removed its temp file just
       * after the two stat calls: look once more before refusing. */
      rechecked = 1;
      sleep_ms(PRD_PAIR_POLL_MS);
      continue;
    }
    if (have_key) {
      return prd_err_fmt(
          err, errlen,
          "key file %s exists but certificate file %s is missing; "
          "restore it or remove both to create a new identity",
          keypath, certpath);
    }
    if (have_cert) {
      return prd_err_fmt(
          err, errlen,
          "certificate file %s exists but key file %s is missing; "
          "restore it or remove both to create a new identity",
          certpath, keypath);
    }
    return prd_err_fmt(err, errlen,
                       "identity files in %s vanished while loading", dir);
  }

  if (identity_load(id, certpath, keypath, err, errlen) != 0) {
    prd_identity_free(id);
    return -1;
  }
  return 0;
}

void prd_identity_free(prd_identity *id) {
  if (id == NULL) {
    return;
  }
  if (id->key_der != NULL) {
    gnutls_memset(id->key_der, 0, id->keylen);
    free(id->key_der);
  }
  free(id->cert_der);
  memset(id, 0, sizeof(*id));
}

int prd_cert_fingerprint(char *out, const uint8_t *der, size_t derlen) {
  static const char hex[] = "0123456789ABCDEF";
  uint8_t digest[32];
  size_t i;

  if (out == NULL || der == NULL) {
    return -1;
  }
  if (gnutls_hash_fast(GNUTLS_DIG_SHA256, der, derlen, digest) < 0) {
    return -1;
  }
  for (i = 0; i < sizeof(digest); ++i) {
    out[3 * i] = hex[digest[i] >> 4];
    out[3 * i + 1] = hex[digest[i] & 0x0f];
    out[3 * i + 2] = i + 1 < sizeof(digest) ? ':' : '\0';
  }
  return 0;
}

int prd_cert_check_der(const uint8_t *der, size_t derlen) {
  gnutls_x509_crt_t crt;

  if (import_crt(&crt, der, derlen) != 0) {
    return -1;
  }
  gnutls_x509_crt_deinit(crt);
  return 0;
}

/* ascii_lower folds A-Z only (spec/03-auth.md §8.1: ASCII case). */
static int ascii_lower(int c) {
  return c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c;
}

/* ascii_ieq compares |n| bytes ignoring ASCII case. */
static int ascii_ieq(const char *a, const char *b, size_t n) {
  size_t i;
  for (i = 0; i < n; ++i) {
    if (ascii_lower((unsigned char)a[i]) != ascii_lower((unsigned char)b[i])) {
      return 0;
    }
  }
  return 1;
}

/* dns_san_matches tells whether the dNSName SAN |san| matches the DNS name
 * |name| (spec/03-auth.md §8.1): equal ignoring ASCII case, or a SAN whose
 * whole leftmost label is `*` followed by at least two labels, standing for
 * exactly one non-empty label. No IDNA, no trailing-dot folding; a name with
 * a non-ASCII byte matches nothing. */
static int dns_san_matches(const uint8_t *san, size_t sanlen,
                           const char *name) {
  size_t namelen = strlen(name);
  size_t i;
  const char *dot;
  const char *rest;
  size_t restlen;

  for (i = 0; i < namelen; ++i) {
    if ((unsigned char)name[i] >= 0x80) {
      return 0;
    }
  }
  if (memchr(san, '\0', sanlen) != NULL) {
    return 0; /* an embedded NUL: never a name */
  }
  if (sanlen == namelen && ascii_ieq((const char *)san, name, namelen)) {
    return 1;
  }
  if (sanlen < 2 || san[0] != '*' || san[1] != '.') {
    return 0;
  }
  rest = (const char *)san + 2;
  restlen = sanlen - 2;
  /* `*`, `*.org` or `*.org.`: fewer than two labels follow (a trailing dot
   * ends the name; the root's empty label is not one of them). */
  if (restlen == 0 ||
      memchr(rest, '.', restlen - (rest[restlen - 1] == '.')) == NULL) {
    return 0;
  }
  dot = strchr(name, '.');
  if (dot == NULL || dot == name) {
    return 0; /* the wildcard stands for one non-empty label */
  }
  return (size_t)(name + namelen - (dot + 1)) == restlen &&
         ascii_ieq(dot + 1, rest, restlen);
}

int prd_cert_matches_name(const uint8_t *der, size_t derlen, const char *name) {
  gnutls_x509_crt_t crt;
  uint8_t ip[16];
  uint8_t san[256];
  size_t iplen;
  size_t sanlen;
  unsigned seq;
  unsigned critical;
  int match = 0;
  int type;

  if (name == NULL || name[0] == '\0') {
    return 0;
  }
  if (import_crt(&crt, der, derlen) != 0) {
    return -1;
  }
  iplen = san_parse_ip(ip, name);
  /* spec/03-auth.md §8.1: only SANs count, never the CN. IP addresses are
   * compared as raw bytes with the IP SANs, names with the dNSName SANs by
   * dns_san_matches. Deliberately not GnuTLS's
   * gnutls_x509_crt_check_hostname2: it also accepts partial-label
   * wildcards, lets `*` match an empty label and applies IDNA, which
   * spec/03-auth.md §8.1 rules out (spec/09-implementation-notes.md §2.3).
   * The IP case stays here too, so one loop over the SANs decides. */
  for (seq = 0; seq < PRD_SAN_MAX; ++seq) {
    sanlen = sizeof(san);
    type =
        gnutls_x509_crt_get_subject_alt_name(crt, seq, san, &sanlen, &critical);
    if (type == GNUTLS_E_SHORT_MEMORY_BUFFER) {
      continue; /* longer than any name we could match */
    }
    if (type < 0) {
      break; /* GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE: no more SANs */
    }
    if (type == GNUTLS_SAN_DNSNAME) {
      if (iplen == 0 && dns_san_matches(san, sanlen, name)) {
        match = 1;
        break;
      }
    } else if (type == GNUTLS_SAN_IPADDRESS && iplen > 0 && sanlen == iplen &&
               memcmp(san, ip, iplen) == 0) {
      match = 1;
      break;
    }
  }
  gnutls_x509_crt_deinit(crt);
  return match;
}

/* names_put appends |n| bytes of |s| to |out| with control and non-ASCII
 * bytes as \xHH (a peer's certificate is network input). */
static void names_put(char *out, size_t outlen, size_t *pos, const char *s,
                      size_t n) {
  static const char hex[] = "0123456789abcdef";
  size_t i;
  for (i = 0; i < n && *pos + 5 < outlen; ++i) {
    unsigned char ch = (unsigned char)s[i];
    if (ch < 0x20 || ch >= 0x7f || ch == '\\') {
      out[(*pos)++] = '\\';
      out[(*pos)++] = 'x';
      out[(*pos)++] = hex[ch >> 4];
      out[(*pos)++] = hex[ch & 0xf];
    } else {
      out[(*pos)++] = (char)ch;
    }
  }
  out[*pos] = '\0';
}

int prd_cert_names(const uint8_t *der, size_t derlen, char *out,
                   size_t outlen) {
  gnutls_x509_crt_t crt;
  uint8_t san[256];
  char ipbuf[INET6_ADDRSTRLEN];
  size_t sanlen, pos = 0;
  unsigned seq, critical;
  int type, count = 0;

  if (outlen < 8) {
    return -1;
  }
  out[0] = '\0';
  if (import_crt(&crt, der, derlen) != 0) {
    return -1;
  }
  for (seq = 0; seq < PRD_SAN_MAX; ++seq) {
    const char *name = (const char *)san;
    sanlen = sizeof(san) - 1;
    type =
        gnutls_x509_crt_get_subject_alt_name(crt, seq, san, &sanlen, &critical);
    if (type == GNUTLS_E_SHORT_MEMORY_BUFFER) {
      continue;
    }
    if (type < 0) {
      break;
    }
    if (type == GNUTLS_SAN_IPADDRESS && (sanlen == 4 || sanlen == 16)) {
      name = inet_ntop(sanlen == 4 ? AF_INET : AF_INET6, san, ipbuf,
                       sizeof(ipbuf));
      if (name == NULL) {
        continue;
      }
      sanlen = strlen(name);
    } else if (type != GNUTLS_SAN_DNSNAME) {
      continue;
    }
    if (pos + sanlen + 8 >= outlen) {
      names_put(out, outlen, &pos, count ? ", ..." : "...", count ? 5 : 3);
      ++count;
      break;
    }
    if (count > 0) {
      names_put(out, outlen, &pos, ", ", 2);
    }
    names_put(out, outlen, &pos, name, sanlen);
    ++count;
  }
  gnutls_x509_crt_deinit(crt);
  if (count == 0) {
    snprintf(out, outlen, "(none)");
  }
  return count;
}
