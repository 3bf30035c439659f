/* SPDX-License-Identifier: GPL-3.0-only */
/* Derives the server's static secret (stateless reset and Retry tokens) from
 * its private key, so that a restarted server resets its old connections at
 * once (spec/04-quic-profile.md §3). */
#include <gnutls/crypto.h>
#include <string.h>

#include "../common/log.h"
#include "identity.h"
#include "quic_int.h"

int prd_identity_static_secret(const prd_identity *id, uint8_t *out) {
  static const char label[] = "portredirect static secret v1";
  return gnutls_hmac_fast(GNUTLS_MAC_SHA256, id->key_der, id->keylen, label,
                          sizeof(label) - 1, out) == 0
             ? 0
             : -1;
}

int prd_quic_check_versions(void) {
  const ngtcp2_info *info = ngtcp2_version(0);
  if (ngtcp2_version(NGTCP2_VERSION_NUM) == NULL) {
    PRD_LOG_ERROR("the ngtcp2 library (%s) is older than the one this "
                  "program was built with (%s)",
                  info ? info->version_str : "?", NGTCP2_VERSION);
    return -1;
  }
  PRD_LOG_DEBUG("ngtcp2 %s, GnuTLS %s", info ? info->version_str : "?",
                gnutls_check_version(NULL));
  return 0;
}
