/* SPDX-License-Identifier: GPL-3.0-only */
/* GnuTLS policy: credentials, per-connection sessions, certificate pinning
 * (spec/03-auth.md §8), the auth exporter (§2) and the key log. */
#include <gnutls/crypto.h>
#include <gnutls/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../common/log.h"
#include "identity.h"
#include "quic_int.h"

/* spec/04-quic-profile.md §1: TLS 1.3 only, no middlebox compatibility. */
static const char PRIORITY[] =
    "NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+AES-128-GCM:+AES-256-GCM:"
    "+CHACHA20-POLY1305:-GROUP-ALL:+GROUP-X25519:+GROUP-SECP256R1:"
    "+GROUP-SECP384R1:%DISABLE_TLS13_COMPAT_MODE";

int prd_tls_server_cred(prd_quic_endpoint *ep) {
  gnutls_datum_t cert, key;
  int rv;

  rv = gnutls_certificate_allocate_credentials(&ep->cred);
  if (rv != 0) {
    return PRD_ERR_TLS;
  }
  if (ep->is_server) {
    cert.data = (unsigned char *)(uintptr_t)ep->cfg.cert_der;
    cert.size = (unsigned)ep->cfg.certlen;
    key.data = (unsigned char *)(uintptr_t)ep->cfg.key_der;
    key.size = (unsigned)ep->cfg.keylen;
    rv = gnutls_certificate_set_x509_key_mem2(
        ep->cred, &cert, &key, GNUTLS_X509_FMT_DER, NULL, GNUTLS_PKCS_PLAIN);
    if (rv < 0) {
      PRD_LOG_ERROR("cannot use the server certificate/key: %s",
                    gnutls_strerror(rv));
      return PRD_ERR_TLS;
    }
  }
  rv = gnutls_priority_init(&ep->prio, PRIORITY, NULL);
  if (rv != 0) {
    return PRD_ERR_TLS;
  }
  return 0;
}

static int keylog_cb(gnutls_session_t session, const char *label,
                     const gnutls_datum_t *secret) {
  ngtcp2_crypto_conn_ref *ref = gnutls_session_get_ptr(session);
  prd_quic_conn *qc = ref->user_data;
  gnutls_datum_t crandom, srandom;
  char line[512];
  size_t n = 0;
  int w;

  if (qc->ep->keylog_fd < 0) {
    return 0;
  }
  gnutls_session_get_random(session, &crandom, &srandom);
  w = snprintf(line, sizeof(line), "%s ", label);
  if (w < 0) {
    return 0;
  }
  n = (size_t)w;
  for (unsigned i = 0; i < crandom.size && n + 3 < sizeof(line); ++i) {
    n += (size_t)snprintf(line + n, sizeof(line) - n, "%02x", crandom.data[i]);
  }
  line[n++] = ' ';
  for (unsigned i = 0; i < secret->size && n + 3 < sizeof(line); ++i) {
    n += (size_t)snprintf(line + n, sizeof(line) - n, "%02x", secret->data[i]);
  }
  line[n++] = '\n';
  if (write(qc->ep->keylog_fd, line, n) < 0) {
    /* A key log is a debugging aid: never fail the handshake over it. */
  }
  return 0;
}

/* verify_failed records why the certificate was rejected, for the close
 * (prd_quic_close_info). */
static void verify_failed(prd_quic_conn *qc, prd_quic_close_kind kind,
                          int err) {
  qc->verify_kind = kind;
  qc->verify_err = err;
}

/* verify_pin checks the server's certificate |cert| (fingerprint |got|)
 * against the client's pin: --server-fingerprint values, a pinned
 * certificate, or none with trust on first use (then it is kept for the
 * relay to store, spec/03-auth.md §8). Returns 0 or -1. */
static int verify_pin(prd_quic_conn *qc, const gnutls_datum_t *cert,
                      const char *got) {
  const prd_quic_config *cfg = &qc->ep->cfg;
  char want[PRD_FINGERPRINT_LEN];

  if (cfg->npin_sha256 > 0) {
    uint8_t digest[32];
    size_t i;
    if (gnutls_hash_fast(GNUTLS_DIG_SHA256, cert->data, cert->size, digest) <
        0) {
      return -1;
    }
    for (i = 0; i < cfg->npin_sha256; ++i) {
      if (gnutls_memcmp(cfg->pin_sha256 + 32 * i, digest, 32) == 0) {
        return 0;
      }
    }
    snprintf(qc->verify_msg, sizeof(qc->verify_msg),
             "server certificate SHA256:%s matches none of the %zu "
             "--server-fingerprint value%s. If the server's identity "
             "changed on purpose, run 'portredirect_server "
             "--print-fingerprint' on the server and give what it prints "
             "as --server-fingerprint",
             got, cfg->npin_sha256, cfg->npin_sha256 == 1 ? "" : "s");
    verify_failed(qc, PRD_QUIC_CLOSE_PIN_MISMATCH, PRD_ERR_PIN_MISMATCH);
    return -1;
  }
  if (cfg->pin_der) {
    if (cfg->pinlen == cert->size &&
        gnutls_memcmp(cfg->pin_der, cert->data, cfg->pinlen) == 0) {
      return 0;
    }
    if (prd_cert_fingerprint(want, cfg->pin_der, cfg->pinlen) != 0) {
      snprintf(want, sizeof(want), "(unparsable)");
    }
    /* Deleting the pin only helps with --trust-on-first-use: without it, no
     * pin is a configuration error (spec/06-files-and-cli.md §3.1). */
    snprintf(qc->verify_msg, sizeof(qc->verify_msg),
             "server certificate does not match the pinned certificate: "
             "pinned SHA-256 %s, presented %s. If the server's identity "
             "changed on purpose (compare with what "
             "'portredirect_server --print-fingerprint' prints on the "
             "server), copy the server's new cert.der over %s and restart "
             "the client%s",
             want, got, cfg->pin_name ? cfg->pin_name : "the pin file",
             cfg->tofu ? ", or delete that file and restart the client to "
                         "trust on first use again"
                       : ", or restart it with --server-fingerprint "
                         "SHA256:<what the server prints>");
    verify_failed(qc, PRD_QUIC_CLOSE_PIN_MISMATCH, PRD_ERR_PIN_MISMATCH);
    return -1;
  }
  if (!cfg->tofu) {
    snprintf(qc->verify_msg, sizeof(qc->verify_msg), "no pinned certificate");
    return -1;
  }
  /* Trust on first use: remember what we saw; the relay stores it once
   * authentication succeeded (spec/03-auth.md §8). */
  free(qc->peer_cert);
  qc->peer_cert = malloc(cert->size);
  if (qc->peer_cert == NULL) {
    return -1;
  }
  memcpy(qc->peer_cert, cert->data, cert->size);
  qc->peer_certlen = cert->size;
  return 0;
}

/* verify_name checks that |cert| names the name the client expects
 * (spec/03-auth.md §8.1). Returns 0 or -1. */
static int verify_name(prd_quic_conn *qc, const gnutls_datum_t *cert) {
  const prd_quic_config *cfg = &qc->ep->cfg;
  char names[300];

  if (prd_cert_matches_name(cert->data, cert->size, cfg->expected_name) == 1) {
    return 0;
  }
  prd_cert_names(cert->data, cert->size, names, sizeof(names));
  snprintf(qc->verify_msg, sizeof(qc->verify_msg),
           "server certificate names do not match \"%s\": it names %s. "
           "Give the client --quic-remote-hostname-match with one of "
           "these, or give the server --quic-cert-hostname \"%s\" (it "
           "only applies when the server makes a new certificate: move "
           "its cert.der and key.der away first, then copy the new "
           "cert.der or fingerprint to the client)",
           cfg->expected_name, names, cfg->expected_name);
  verify_failed(qc, PRD_QUIC_CLOSE_NAME_MISMATCH, PRD_ERR_TLS);
  return -1;
}

/* Called by GnuTLS right after the server's Certificate message: the pin and
 * the name are checked inside the handshake, so that a wrong server never
 * sees the authentication exchange (spec/03-auth.md §8,
 * spec/09-implementation-notes.md §2.4). */
static int verify_cb(gnutls_session_t session) {
  ngtcp2_crypto_conn_ref *ref = gnutls_session_get_ptr(session);
  prd_quic_conn *qc = ref->user_data;
  const gnutls_datum_t *certs;
  unsigned int n = 0;
  char got[PRD_FINGERPRINT_LEN];

  if (gnutls_certificate_type_get(session) != GNUTLS_CRT_X509) {
    snprintf(qc->verify_msg, sizeof(qc->verify_msg),
             "server presented no X.509 certificate");
    return GNUTLS_E_CERTIFICATE_ERROR;
  }
  certs = gnutls_certificate_get_peers(session, &n);
  if (certs == NULL || n < 1) {
    snprintf(qc->verify_msg, sizeof(qc->verify_msg),
             "server presented no certificate");
    return GNUTLS_E_CERTIFICATE_ERROR;
  }
  if (prd_cert_fingerprint(got, certs[0].data, certs[0].size) != 0) {
    snprintf(qc->verify_msg, sizeof(qc->verify_msg),
             "server certificate does not parse");
    return GNUTLS_E_CERTIFICATE_ERROR;
  }
  if (verify_pin(qc, &certs[0], got) != 0 || verify_name(qc, &certs[0]) != 0) {
    return GNUTLS_E_CERTIFICATE_ERROR;
  }
  return 0;
}

int prd_tls_session_new(prd_quic_conn *qc) {
  prd_quic_endpoint *ep = qc->ep;
  gnutls_session_t s;
  gnutls_datum_t alpn = {(unsigned char *)(uintptr_t)PRD_ALPN, PRD_ALPN_LEN};
  unsigned flags;
  int rv;

  flags = ep->is_server ? GNUTLS_SERVER | GNUTLS_NO_AUTO_SEND_TICKET
                        : GNUTLS_CLIENT;
  rv = gnutls_init(&s, flags | GNUTLS_NO_END_OF_EARLY_DATA);
  if (rv != 0) {
    return PRD_ERR_TLS;
  }
  rv = ep->is_server ? ngtcp2_crypto_gnutls_configure_server_session(s)
                     : ngtcp2_crypto_gnutls_configure_client_session(s);
  if (rv != 0) {
    goto fail;
  }
  if (gnutls_priority_set(s, ep->prio) != 0) {
    goto fail;
  }
  if (gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, ep->cred) != 0) {
    goto fail;
  }
  /* spec/01-overview.md §3: ALPN is mandatory. */
  if (gnutls_alpn_set_protocols(
          s, &alpn, 1,
          GNUTLS_ALPN_MANDATORY |
              (ep->is_server ? GNUTLS_ALPN_SERVER_PRECEDENCE : 0)) != 0) {
    goto fail;
  }
  if (!ep->is_server) {
    const char *sni = ep->cfg.expected_name;
    gnutls_session_set_verify_function(s, verify_cb);
    /* SNI only for names; RFC 6066 forbids IP literals. */
    if (sni && sni[0] && strspn(sni, "0123456789.") != strlen(sni) &&
        strchr(sni, ':') == NULL) {
      gnutls_server_name_set(s, GNUTLS_NAME_DNS, sni, strlen(sni));
    }
  }
  if (ep->keylog_fd >= 0) {
    gnutls_session_set_keylog_function(s, keylog_cb);
  }
  qc->conn_ref.get_conn = NULL; /* set by the caller */
  gnutls_session_set_ptr(s, &qc->conn_ref);
  qc->tls = s;
  return 0;
fail:
  gnutls_deinit(s);
  return PRD_ERR_TLS;
}

int prd_tls_exporter(prd_quic_conn *qc, uint8_t *out, size_t outlen) {
  /* spec/03-auth.md §2: empty context. */
  int rv =
      gnutls_prf_rfc5705(qc->tls, sizeof(PRD_AUTH_EXPORTER_LABEL) - 1,
                         PRD_AUTH_EXPORTER_LABEL, 0, NULL, outlen, (char *)out);
  return rv == 0 ? 0 : PRD_ERR_TLS;
}
