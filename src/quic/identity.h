/* SPDX-License-Identifier: GPL-3.0-only */
/* The server's identity on disk (cert.der + key.der), certificate
 * fingerprints and name checks (spec/06-files-and-cli.md §2, spec/03-auth.md
 * §8), in src/quic/cert.c. Uses GnuTLS. The file helpers it builds on are
 * src/common/file.h, included here for the callers that used to find them
 * in this header. */
#ifndef PRD_IDENTITY_H
#define PRD_IDENTITY_H

#include <stddef.h>
#include <stdint.h>

#include "../common/file.h"

#define PRD_CERT_FILE "cert.der"
#define PRD_KEY_FILE "key.der"
#define PRD_MAX_DER_FILE (64 * 1024)
#define PRD_FINGERPRINT_LEN 96 /* "AB:CD:..." 32*3-1 + NUL */

typedef struct prd_identity {
  uint8_t *cert_der;
  size_t certlen;
  uint8_t *key_der; /* PKCS#8 DER; wiped on free */
  size_t keylen;
} prd_identity;

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
