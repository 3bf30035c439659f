/* SPDX-License-Identifier: GPL-3.0-only */
/* The server's identity on disk (cert.der + key.der) and certificate pins
 * (spec/06-files-and-cli.md, PRODUCT §3). Uses GnuTLS. */
#ifndef PRD_IDENTITY_H
#define PRD_IDENTITY_H

#include <stddef.h>
#include <stdint.h>

#define PRD_CERT_FILE "cert.der"
#define PRD_KEY_FILE "key.der"
#define PRD_TOFU_FILE                                                          \
  "client-tofu-cert.der" /* client's TOFU pin, never collides */
#define PRD_MAX_DER_FILE (64 * 1024)
#define PRD_FINGERPRINT_LEN 96 /* "AB:CD:..." 32*3-1 + NUL */

typedef struct prd_identity {
  uint8_t *cert_der;
  size_t certlen;
  uint8_t *key_der; /* PKCS#8 DER; wiped on free */
  size_t keylen;
} prd_identity;

/* prd_config_dir_ensure creates |dir| (and parents) with mode 0700 if it does
 * not exist. Returns 0, or -1 with a one-line message in |err|. */
int prd_config_dir_ensure(const char *dir, char *err, size_t errlen);

/* prd_identity_load_or_create loads <dir>/cert.der and <dir>/key.der, or, if
 * neither exists, creates an ECDSA P-256 key and a self-signed certificate
 * whose SANs are |names| (IP SANs for addresses, DNS SANs otherwise) and
 * writes both atomically (key mode 0600). Refuses a key file readable by group
 * or others (message gives the chmod to run), a cert without key or key
 * without cert, and files that do not parse. Concurrent first starts on one
 * directory must end with one consistent pair (rename + re-read).
 * Returns 0, or -1 with a one-line message in |err|. */
int prd_identity_load_or_create(prd_identity *id, const char *dir,
                                const char *const *names, size_t nnames,
                                char *err, size_t errlen);

void prd_identity_free(prd_identity *id);

/* prd_file_read reads a whole file of at most |maxlen| bytes into a malloc'ed
 * buffer. Returns 0, or -errno / PRD_ERR_FRAME_TOO_LARGE. */
int prd_file_read(uint8_t **pdata, size_t *plen, const char *path,
                  size_t maxlen);

/* prd_file_read_mode is prd_file_read that also stores the permission bits
 * (st_mode & 07777) of the descriptor it read in |*pmode|, so that a check
 * of them applies to the very file read. */
int prd_file_read_mode(uint8_t **pdata, size_t *plen, unsigned *pmode,
                       const char *path, size_t maxlen);

/* prd_file_write_atomic writes |data| to |path| via a temp file, fsync and
 * rename, with |mode|. Returns 0 or -errno. */
int prd_file_write_atomic(const char *path, const uint8_t *data, size_t len,
                          unsigned mode);

/* prd_cert_fingerprint writes the SHA-256 of the DER certificate as
 * upper-case hex pairs separated by colons into |out|
 * (PRD_FINGERPRINT_LEN bytes). Returns 0 or -1. */
int prd_cert_fingerprint(char *out, const uint8_t *der, size_t derlen);

/* prd_cert_check_der returns 0 if |der| parses as an X.509 certificate. */
int prd_cert_check_der(const uint8_t *der, size_t derlen);

/* prd_cert_matches_name returns 1 if a SAN of the certificate matches |name|
 * (DNS name, or IP address given in text), 0 if not, -1 on a parse error. */
int prd_cert_matches_name(const uint8_t *der, size_t derlen, const char *name);

/* prd_cert_names writes the certificate's DNS and IP subject alternative
 * names into |out| as "a, b, c" (escaped: \xHH for control, non-ASCII and
 * backslash bytes; "..." when |out| is full; "(none)" without any). Returns
 * how many it wrote, or -1 when the certificate does not parse. */
int prd_cert_names(const uint8_t *der, size_t derlen, char *out, size_t outlen);

/* prd_identity_static_secret writes 32 bytes derived from the private key
 * (HMAC-SHA256 over a fixed label). Returns 0 or -1. */
int prd_identity_static_secret(const prd_identity *id, uint8_t *out);

#endif
