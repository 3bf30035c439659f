/* SPDX-License-Identifier: GPL-3.0-only */
/* prd-conformance client role: plays the server towards a client under test
 * (which pins CONFIG-DIR/cert.der) and checks how the client authenticates,
 * handles Stream Headers and reacts to a misbehaving server. Each client
 * connection is used for as many tests as the spec allows, since the client
 * reconnects with a growing backoff (spec/07-state-machines.md §4). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <gnutls/crypto.h>
#include <gnutls/x509.h>
#include <ngtcp2/ngtcp2_crypto.h>
#include <ngtcp2/ngtcp2_crypto_gnutls.h>
#include <ngtcp2/version.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "auth/auth.h"
#include "cf.h"

#define REACT_S 2.0
/* The longest wait for the client's next connection: its backoff after a
 * few failures (spec/07-state-machines.md §4) plus its handshake. */
#define RECONNECT_S 20.0

static const char PRIORITY[] =
    "NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+AES-128-GCM:+AES-256-GCM:"
    "+CHACHA20-POLY1305:-GROUP-ALL:+GROUP-X25519:+GROUP-SECP256R1:"
    "+GROUP-SECP384R1:%DISABLE_TLS13_COMPAT_MODE";

static int g_listen = -1;
static gnutls_certificate_credentials_t g_cred, g_other_cred;
static cf_peer *g_cur; /* the client connection the current tests use */
static int g_use_other_cert;

/* ---- identity --------------------------------------------------------- */

static int make_identity(gnutls_datum_t *cert, gnutls_datum_t *key) {
  gnutls_x509_privkey_t k = NULL;
  gnutls_x509_crt_t c = NULL;
  uint8_t serial[16];
  struct in_addr v4;
  struct in6_addr v6;
  time_t now = time(NULL);
  int rv = -1;

  cf_rnd(serial, sizeof(serial));
  serial[0] &= 0x7f;
  if (gnutls_x509_privkey_init(&k) != 0 ||
      gnutls_x509_privkey_generate(
          k, GNUTLS_PK_ECDSA, GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1),
          0) != 0 ||
      gnutls_x509_crt_init(&c) != 0 || gnutls_x509_crt_set_version(c, 3) ||
      gnutls_x509_crt_set_serial(c, serial, sizeof(serial)) ||
      gnutls_x509_crt_set_activation_time(c, now - 3600) ||
      gnutls_x509_crt_set_expiration_time(c, now + 3650L * 86400) ||
      gnutls_x509_crt_set_dn(c, "CN=prd-conformance", NULL) ||
      gnutls_x509_crt_set_key(c, k) ||
      gnutls_x509_crt_set_basic_constraints(c, 0, -1) ||
      gnutls_x509_crt_set_subject_alt_name(c, GNUTLS_SAN_DNSNAME, "localhost",
                                           9, GNUTLS_FSAN_APPEND)) {
    goto out;
  }
  /* The listen address and loopback, so that a client that expects the
   * IP address it dials finds it (spec/03-auth.md §8.1 check 3). */
  inet_pton(AF_INET, "127.0.0.1", &v4);
  inet_pton(AF_INET6, "::1", &v6);
  gnutls_x509_crt_set_subject_alt_name(c, GNUTLS_SAN_IPADDRESS, &v4, 4,
                                       GNUTLS_FSAN_APPEND);
  gnutls_x509_crt_set_subject_alt_name(c, GNUTLS_SAN_IPADDRESS, &v6, 16,
                                       GNUTLS_FSAN_APPEND);
  if (cf_opt.target.ss_family == AF_INET) {
    gnutls_x509_crt_set_subject_alt_name(
        c, GNUTLS_SAN_IPADDRESS,
        &((struct sockaddr_in *)&cf_opt.target)->sin_addr, 4,
        GNUTLS_FSAN_APPEND);
  } else {
    gnutls_x509_crt_set_subject_alt_name(
        c, GNUTLS_SAN_IPADDRESS,
        &((struct sockaddr_in6 *)&cf_opt.target)->sin6_addr, 16,
        GNUTLS_FSAN_APPEND);
  }
  if (gnutls_x509_crt_sign2(c, c, k, GNUTLS_DIG_SHA256, 0) != 0 ||
      gnutls_x509_crt_export2(c, GNUTLS_X509_FMT_DER, cert) != 0 ||
      gnutls_x509_privkey_export2_pkcs8(k, GNUTLS_X509_FMT_DER, NULL,
                                        GNUTLS_PKCS_PLAIN, key) != 0) {
    goto out;
  }
  rv = 0;
out:
  gnutls_x509_crt_deinit(c);
  gnutls_x509_privkey_deinit(k);
  return rv;
}

static int read_all(const char *path, gnutls_datum_t *d) {
  return gnutls_load_file(path, d) == 0 ? 0 : -1;
}

static int write_file(const char *path, const gnutls_datum_t *d, int mode) {
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  ssize_t n;
  if (fd < 0) {
    return -1;
  }
  n = write(fd, d->data, d->size);
  return close(fd) == 0 && n == (ssize_t)d->size ? 0 : -1;
}

/* The identity in |dir|: cert.der and key.der, made on first use. */
static int load_identity(const char *dir) {
  char cpath[4096], kpath[4096];
  gnutls_datum_t cert = {NULL, 0}, key = {NULL, 0};
  gnutls_datum_t ocert = {NULL, 0}, okey = {NULL, 0};
  int rv = -1;

  snprintf(cpath, sizeof(cpath), "%s/cert.der", dir);
  snprintf(kpath, sizeof(kpath), "%s/key.der", dir);
  mkdir(dir, 0700);
  if (read_all(cpath, &cert) != 0 || read_all(kpath, &key) != 0) {
    gnutls_free(cert.data);
    gnutls_free(key.data);
    cert.data = key.data = NULL;
    if (make_identity(&cert, &key) != 0 || write_file(kpath, &key, 0600) ||
        write_file(cpath, &cert, 0644)) {
      fprintf(stderr, "prd-conformance: cannot write %s and %s\n", cpath,
              kpath);
      goto out;
    }
  }
  /* A second identity, for the pin test. */
  if (make_identity(&ocert, &okey) != 0 ||
      gnutls_certificate_allocate_credentials(&g_cred) != 0 ||
      gnutls_certificate_allocate_credentials(&g_other_cred) != 0 ||
      gnutls_certificate_set_x509_key_mem2(g_cred, &cert, &key,
                                           GNUTLS_X509_FMT_DER, NULL,
                                           GNUTLS_PKCS_PLAIN) < 0 ||
      gnutls_certificate_set_x509_key_mem2(g_other_cred, &ocert, &okey,
                                           GNUTLS_X509_FMT_DER, NULL,
                                           GNUTLS_PKCS_PLAIN) < 0) {
    fprintf(stderr, "prd-conformance: cannot load the identity in '%s'\n", dir);
    goto out;
  }
  rv = 0;
out:
  gnutls_free(cert.data);
  gnutls_free(key.data);
  gnutls_free(ocert.data);
  gnutls_free(okey.data);
  return rv;
}

/* ---- accepting a client connection ------------------------------------ */

static const ngtcp2_callbacks *server_cbs(void) {
  static ngtcp2_callbacks cbs;
  cbs = cf_client_cbs;
  cbs.client_initial = NULL;
  cbs.recv_retry = NULL;
  cbs.recv_stateless_reset = NULL;
  cbs.recv_client_initial = ngtcp2_crypto_recv_client_initial_cb;
  return &cbs;
}

static cf_peer *server_peer_new(const uint8_t *pkt, size_t len,
                                const struct sockaddr_storage *from,
                                socklen_t fromlen) {
  ngtcp2_pkt_hd hd;
  cf_peer *p;
  ngtcp2_settings s;
  ngtcp2_transport_params tp;
  ngtcp2_cid scid;
  ngtcp2_path path;
  ngtcp2_pkt_info pi = {0};
  gnutls_datum_t alpn = {(unsigned char *)PRD_ALPN, PRD_ALPN_LEN};
  uint8_t buf[16];
  int one = 1, rv;

  if (ngtcp2_accept(&hd, pkt, len) != 0) {
    return NULL;
  }
  p = calloc(1, sizeof(*p));
  if (p == NULL) {
    return NULL;
  }
  p->is_server = 1;
  p->no_ctrl = 1;
  p->ctrl = -1;
  p->t_start = cf_now();
  p->remote = *from;
  p->remotelen = fromlen;
  /* A socket of its own, connected to the client, on the listen address:
   * the kernel gives it this client's datagrams (SO_REUSEPORT). */
  p->fd = socket(cf_opt.target.ss_family,
                 SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (p->fd < 0 ||
      setsockopt(p->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
      setsockopt(p->fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) ||
      bind(p->fd, (struct sockaddr *)&cf_opt.target, cf_opt.targetlen) ||
      connect(p->fd, (const struct sockaddr *)from, fromlen)) {
    fprintf(stderr, "prd-conformance: cannot open a socket for a client: %s\n",
            strerror(errno));
    if (p->fd >= 0) {
      close(p->fd);
    }
    free(p);
    return NULL;
  }
  p->locallen = sizeof(p->local);
  getsockname(p->fd, (struct sockaddr *)&p->local, &p->locallen);
  ngtcp2_settings_default(&s);
  s.initial_ts = cf_now();
  s.max_tx_udp_payload_size = 1452;
  if (cf_opt.verbose) {
    s.log_printf = cf_log_printf;
  }
  ngtcp2_transport_params_default(&tp);
  /* spec/04-quic-profile.md §2, server column. */
  tp.initial_max_streams_bidi = 1;
  tp.initial_max_streams_uni = 0;
  tp.initial_max_stream_data_bidi_remote = 4096;
  tp.initial_max_stream_data_bidi_local = 1 << 20;
  tp.initial_max_data = 16 << 20;
  tp.max_idle_timeout = 30 * NGTCP2_SECONDS;
  tp.active_connection_id_limit = 4;
  tp.original_dcid = hd.dcid;
#if NGTCP2_VERSION_NUM >= 0x010000
  tp.original_dcid_present = 1;
#endif
  tp.stateless_reset_token_present = 1;
  cf_rnd(tp.stateless_reset_token, sizeof(tp.stateless_reset_token));
  cf_rnd(buf, sizeof(buf));
  ngtcp2_cid_init(&scid, buf, 16);
  path.local.addr = (ngtcp2_sockaddr *)&p->local;
  path.local.addrlen = p->locallen;
  path.remote.addr = (ngtcp2_sockaddr *)&p->remote;
  path.remote.addrlen = p->remotelen;
  path.user_data = NULL;
  if (ngtcp2_conn_server_new(&p->conn, &hd.scid, &scid, &path, hd.version,
                             server_cbs(), &s, &tp, NULL, p) != 0 ||
      gnutls_init(&p->tls, GNUTLS_SERVER | GNUTLS_NO_AUTO_SEND_TICKET |
                               GNUTLS_NO_END_OF_EARLY_DATA) != 0 ||
      ngtcp2_crypto_gnutls_configure_server_session(p->tls) != 0 ||
      gnutls_priority_set_direct(p->tls, PRIORITY, NULL) != 0 ||
      gnutls_credentials_set(p->tls, GNUTLS_CRD_CERTIFICATE,
                             g_use_other_cert ? g_other_cred : g_cred) != 0 ||
      gnutls_alpn_set_protocols(p->tls, &alpn, 1,
                                GNUTLS_ALPN_MANDATORY |
                                    GNUTLS_ALPN_SERVER_PRECEDENCE) != 0) {
    cf_peer_del(p);
    return NULL;
  }
  p->ref.get_conn = cf_get_conn;
  p->ref.user_data = p;
  gnutls_session_set_ptr(p->tls, &p->ref);
  ngtcp2_conn_set_tls_native_handle(p->conn, p->tls);
  p->next = g_peers;
  g_peers = p;
  rv = ngtcp2_conn_read_pkt(p->conn, &path, &pi, pkt, len, cf_now());
  if (rv != 0) {
    cf_on_error(p, rv);
  }
  cf_flush(p);
  return p;
}

static int until_accept(void *arg) {
  cf_peer **pp = arg;
  uint8_t pkt[65536];
  struct sockaddr_storage from;
  socklen_t fromlen = sizeof(from);
  ssize_t n = recvfrom(g_listen, pkt, sizeof(pkt), 0, (struct sockaddr *)&from,
                       &fromlen);
  if (n > 0) {
    *pp = server_peer_new(pkt, (size_t)n, &from, fromlen);
  }
  return *pp != NULL;
}

/* accept_client: the client's next connection, its handshake complete. */
static cf_peer *accept_client(cf_result *r, double secs) {
  cf_peer *p = NULL;
  char what[256];
  cf_run(secs, until_accept, &p);
  if (p == NULL) {
    cf_fail(r, "no connection from the client within %.0f s", secs);
    return NULL;
  }
  if (g_use_other_cert) {
    return p; /* the pin test looks at the handshake itself */
  }
  if (!cf_wait_hs(p)) {
    cf_describe(p, what, sizeof(what));
    cf_fail(r, "handshake with the client failed: %s", what);
    cf_peer_del(p);
    return NULL;
  }
  return p;
}

static void drop(cf_peer *p) {
  if (p) {
    cf_peer_close(p);
    cf_peer_del(p);
  }
}

static int expect_app_close(cf_result *r, cf_peer *p, uint64_t code,
                            double secs, const char *after) {
  char what[256];
  cf_wait_closed(p, secs);
  if (p->closed == CF_CLOSED_APP && p->close_code == code) {
    return 1;
  }
  cf_describe(p, what, sizeof(what));
  cf_fail(r,
          "after %s: expected CONNECTION_CLOSE with %s (0x%llx) within "
          "%.1f s; got: %s",
          after, prd_app_err_name(code), (unsigned long long)code, secs, what);
  return 0;
}

/* ---- connection 1: an authenticated client ---------------------------- */

static void send_challenge(cf_peer *p, uint64_t version, size_t len) {
  uint8_t buf[128];
  size_t n = 0;
  buf[n++] = PRD_FRAME_AUTH_CHALLENGE;
  n += (size_t)prd_varint_encode(buf + n, sizeof(buf) - n,
                                 prd_varint_len(version) + len);
  n += (size_t)prd_varint_encode(buf + n, sizeof(buf) - n, version);
  cf_rnd(buf + n, len);
  n += len;
  cf_ctrl_send(p, buf, n);
}

static void t_hello(cf_result *r, const void *arg) {
  const prd_frame *h;
  (void)arg;
  g_cur = accept_client(r, RECONNECT_S);
  if (g_cur == NULL) {
    return;
  }
  if (!cf_wait_frame(g_cur, PRD_FRAME_HELLO, REACT_S)) {
    char what[256];
    cf_describe(g_cur, what, sizeof(what));
    cf_fail(r, "no HELLO on stream 0 within %.0f s of the handshake%s: %s",
            REACT_S, g_cur->ctrl_bad ? " (malformed bytes)" : "", what);
    return;
  }
  h = &g_cur->frames[0];
  if (g_cur->ctrl != 0 || h->type != PRD_FRAME_HELLO) {
    cf_fail(r, "the first frame on stream 0 is type 0x%llx, not HELLO",
            (unsigned long long)h->type);
  } else if (h->u.hello.version < 1) {
    cf_fail(r, "HELLO Version %llu", (unsigned long long)h->u.hello.version);
  }
}

static void t_hello_flags(cf_result *r, const void *arg) {
  const prd_frame *h;
  (void)arg;
  if (g_cur == NULL || (h = cf_find_frame(g_cur, PRD_FRAME_HELLO)) == NULL) {
    cf_skip(r, "no HELLO");
    return;
  }
  /* spec/02-framing.md §3.1: bit 0 (SERVICES) from a client that does
   * named services, bit 1 (CLIENT_NAME) from one with a client name, no
   * other bit. */
  if ((h->u.hello.flags & ~(PRD_FLAG_SERVICES | PRD_FLAG_CLIENT_NAME)) != 0) {
    cf_fail(r,
            "HELLO Flags 0x%llx: a bit other than SERVICES (bit 0) and "
            "CLIENT_NAME (bit 1)",
            (unsigned long long)h->u.hello.flags);
  }
}

static void t_nothing_before_challenge(cf_result *r, const void *arg) {
  (void)arg;
  if (g_cur == NULL || g_cur->nframes == 0) {
    cf_skip(r, "no HELLO");
    return;
  }
  cf_run(0.3, NULL, NULL);
  if (g_cur->nframes != 1 || g_cur->ctrl_rxpos != g_cur->ctrl_rxlen) {
    cf_fail(r, "the client sent more than HELLO before AUTH_CHALLENGE");
  }
}

static void t_response(cf_result *r, const void *arg) {
  const prd_frame *resp;
  uint8_t mac[32];
  prd_frame ch;
  (void)arg;
  if (g_cur == NULL || g_cur->nframes == 0) {
    cf_skip(r, "no HELLO");
    return;
  }
  memset(&ch, 0, sizeof(ch));
  ch.type = PRD_FRAME_AUTH_CHALLENGE;
  ch.u.challenge.version = 1;
  ch.u.challenge.challengelen = 32;
  cf_rnd(ch.u.challenge.challenge, 32);
  cf_ctrl_frame(g_cur, &ch);
  if (!cf_wait_frame(g_cur, PRD_FRAME_AUTH_RESPONSE, REACT_S)) {
    cf_fail(r, "no AUTH_RESPONSE to AUTH_CHALLENGE");
    return;
  }
  resp = cf_find_frame(g_cur, PRD_FRAME_AUTH_RESPONSE);
  prd_auth_compute_mac(mac, cf_opt.psk, cf_opt.psklen, g_cur->exporter,
                       ch.u.challenge.challenge, 32);
  if (memcmp(mac, resp->u.response.mac, 32) != 0) {
    cf_fail(r, "the MAC is not HMAC-SHA256(PSK, label || exporter || "
               "challenge) for --psk-file");
    return;
  }
  if (cf_find_frame(g_cur, PRD_FRAME_HELLO)->u.hello.flags &
      PRD_FLAG_SERVICES) {
    /* AUTH_RESULT(0) with Flags 1: SERVICES negotiated (spec/02-framing.md
     * §3.4); the client's frames are decoded accordingly. */
    g_cur->hello_flags = PRD_FLAG_SERVICES;
    cf_ctrl_send(g_cur, "\x04\x02\x00\x01", 4);
  } else {
    cf_ctrl_send(g_cur, "\x04\x01\x00", 3); /* AUTH_RESULT(0) */
  }
  cf_run(0.3, NULL, NULL);
  if (g_cur->closed) {
    char what[256];
    cf_describe(g_cur, what, sizeof(what));
    cf_fail(r, "the client closed after AUTH_RESULT(0): %s", what);
  }
}

static void t_params(cf_result *r, const void *arg) {
  const ngtcp2_transport_params *tp;
  (void)arg;
  if (g_cur == NULL || (tp = cf_remote_params(g_cur)) == NULL) {
    cf_skip(r, "no connection");
    return;
  }
  if (tp->initial_max_streams_uni != 0) {
    cf_fail(r, "initial_max_streams_uni %llu, expected 0",
            (unsigned long long)tp->initial_max_streams_uni);
  } else if (tp->initial_max_streams_bidi < 1) {
    cf_fail(r, "initial_max_streams_bidi 0: the server can open no stream");
  } else if (tp->initial_max_stream_data_bidi_remote < 512) {
    cf_fail(r, "initial_max_stream_data_bidi_remote %llu < 512",
            (unsigned long long)tp->initial_max_stream_data_bidi_remote);
  } else if (tp->initial_max_stream_data_bidi_local < 1040) {
    cf_fail(r, "initial_max_stream_data_bidi_local %llu < 1040",
            (unsigned long long)tp->initial_max_stream_data_bidi_local);
  }
}

static cf_stream *open_stream(cf_peer *p, const char *hex) {
  cf_stream *s;
  int64_t id;
  uint8_t buf[1024];
  size_t n = 0;
  if (p->nstreams >= CF_MAX_STREAMS ||
      ngtcp2_conn_open_bidi_stream(p->conn, &id, NULL) != 0) {
    return NULL;
  }
  s = calloc(1, sizeof(*s));
  if (s == NULL) {
    return NULL;
  }
  s->id = id;
  p->streams[p->nstreams++] = s;
  while (*hex && n < sizeof(buf)) {
    unsigned v;
    if (*hex == ' ') {
      ++hex;
      continue;
    }
    if (sscanf(hex, "%2x", &v) != 1) {
      break;
    }
    buf[n++] = (uint8_t)v;
    hex += 2;
  }
  cf_stream_send(p, s, buf, n, 0);
  return s;
}

struct hdr_case {
  const char *hex;
  int fin;
  int valid; /* 1: must not be aborted with PROTOCOL_ERROR */
};

static int until_aborted(void *arg) {
  cf_stream *s = arg;
  return s->reset && (s->stop || s->we_shut_wr);
}

static void t_header(cf_result *r, const void *arg) {
  const struct hdr_case *c = arg;
  cf_stream *s;
  char what[256];
  if (g_cur == NULL || g_cur->closed || !cf_find_frame(g_cur, 3)) {
    cf_skip(r, "no authenticated connection");
    return;
  }
  s = open_stream(g_cur, c->hex);
  if (s == NULL) {
    cf_fail(r, "cannot open a data stream (no credit from the client?)");
    return;
  }
  if (c->fin) {
    s->tx_fin = 1;
    s->we_shut_wr = 1;
  }
  cf_run(c->valid ? 1.0 : REACT_S, until_aborted, s);
  if (g_cur->closed) {
    cf_describe(g_cur, what, sizeof(what));
    cf_fail(r, "the connection ended: %s", what);
  } else if (c->valid) {
    if ((s->reset && s->reset_code == PRD_APP_PROTOCOL_ERROR) ||
        (s->stop && s->stop_code == PRD_APP_PROTOCOL_ERROR)) {
      cf_fail(r, "a valid header (%s) was aborted with PROTOCOL_ERROR", c->hex);
    }
  } else if (!s->reset || s->reset_code != PRD_APP_PROTOCOL_ERROR) {
    cf_fail(r,
            "header %s: expected RESET_STREAM(PROTOCOL_ERROR), got %s "
            "0x%llx",
            c->hex, s->reset ? "RESET_STREAM" : "nothing",
            (unsigned long long)s->reset_code);
  } else if (!c->fin && (!s->stop || s->stop_code != PRD_APP_PROTOCOL_ERROR)) {
    /* After our FIN the client has all data: no STOP_SENDING is due
     * (spec/02-framing.md §6.3 step 2). */
    cf_fail(r,
            "header %s: expected STOP_SENDING(PROTOCOL_ERROR) too, got "
            "%s 0x%llx",
            c->hex, s->stop ? "STOP_SENDING" : "nothing",
            (unsigned long long)s->stop_code);
  }
  if (s->reset || s->stop) {
    return;
  }
  cf_stream_reset(g_cur, s, PRD_APP_NO_ERROR);
}

/* Version 1, Length 9, SOURCE 192.0.2.1:1234 (RFC 5737). */
#define SRC "01 07 04 c0 00 02 01 04 d2"
/* An unknown field type 0x40 (two-byte varint 40 40), 7 bytes long. */
static const struct hdr_case h_unknown = {
    "01 13 " SRC " 40 40 07 00 01 02 03 04 05 06", 0, 1};
static const struct hdr_case h_badver = {"02 09 " SRC, 0, 0};
static const struct hdr_case h_oversized = {"01 42 58", 0, 0};
static const struct hdr_case h_nonmin = {"01 40 09 " SRC, 0, 0};
static const struct hdr_case h_nosrc = {"01 09 02 07 04 c0 00 02 01 04 d2", 0,
                                        0};
static const struct hdr_case h_dupsrc = {"01 12 " SRC " " SRC, 0, 0};
static const struct hdr_case h_family = {"01 09 01 07 05 c0 00 02 01 04 d2", 0,
                                         0};
static const struct hdr_case h_overrun = {"01 09 01 08 04 c0 00 02 01 04 d2", 0,
                                          0};
static const struct hdr_case h_finearly = {"01 09 01 07 04", 1, 0};

static void t_goaway_then_close(cf_result *r, const void *arg) {
  cf_peer *next;
  (void)arg;
  if (g_cur == NULL || g_cur->closed) {
    cf_skip(r, "no authenticated connection");
    return;
  }
  cf_ctrl_send(g_cur, "\x05\x01\x06", 3); /* GOAWAY(SHUTTING_DOWN) */
  cf_run(0.5, NULL, NULL);
  if (g_cur->closed) {
    char what[256];
    cf_describe(g_cur, what, sizeof(what));
    cf_fail(r, "GOAWAY closed the connection: %s", what);
    drop(g_cur);
    g_cur = NULL;
    return;
  }
  drop(g_cur);
  g_cur = NULL;
  /* The client reconnects (spec/07-state-machines.md §4). */
  next = accept_client(r, RECONNECT_S);
  g_cur = next;
}

/* ---- connections 2..: a misbehaving server ---------------------------- */

static cf_peer *after_hello(cf_result *r) {
  cf_peer *p = g_cur ? g_cur : accept_client(r, RECONNECT_S);
  g_cur = NULL;
  if (p && !cf_wait_frame(p, PRD_FRAME_HELLO, REACT_S)) {
    cf_fail(r, "no HELLO");
    drop(p);
    return NULL;
  }
  return p;
}

static void t_challenge_version(cf_result *r, const void *arg) {
  cf_peer *p = after_hello(r);
  (void)arg;
  if (p == NULL) {
    return;
  }
  send_challenge(p, 2, 32);
  expect_app_close(r, p, PRD_APP_VERSION_MISMATCH, REACT_S,
                   "AUTH_CHALLENGE Version 2");
  drop(p);
}

static void t_challenge_short(cf_result *r, const void *arg) {
  cf_peer *p = after_hello(r);
  (void)arg;
  if (p == NULL) {
    return;
  }
  send_challenge(p, 1, 31);
  expect_app_close(r, p, PRD_APP_PROTOCOL_ERROR, REACT_S,
                   "a 31-byte Challenge");
  drop(p);
}

static void t_unknown_frame(cf_result *r, const void *arg) {
  cf_peer *p = after_hello(r);
  (void)arg;
  if (p == NULL) {
    return;
  }
  cf_ctrl_send(p, "\x06\x00", 2);
  expect_app_close(r, p, PRD_APP_PROTOCOL_ERROR, REACT_S,
                   "frame type 0x06 instead of AUTH_CHALLENGE");
  drop(p);
}

static void t_result_status(cf_result *r, const void *arg) {
  cf_peer *p = after_hello(r);
  const prd_frame *resp;
  (void)arg;
  if (p == NULL) {
    return;
  }
  send_challenge(p, 1, 32);
  if (!cf_wait_frame(p, PRD_FRAME_AUTH_RESPONSE, REACT_S)) {
    cf_fail(r, "no AUTH_RESPONSE");
    drop(p);
    return;
  }
  resp = cf_find_frame(p, PRD_FRAME_AUTH_RESPONSE);
  (void)resp;
  /* A non-zero Status the registry does not know, and no close of ours. */
  cf_ctrl_send(p, "\x04\x01\x3f", 3);
  expect_app_close(r, p, 0x3f, REACT_S, "AUTH_RESULT with Status 0x3f");
  drop(p);
}

static void t_pin(cf_result *r, const void *arg) {
  cf_peer *p;
  char what[256];
  (void)arg;
  drop(g_cur);
  g_cur = NULL;
  g_use_other_cert = 1;
  p = accept_client(r, RECONNECT_S);
  g_use_other_cert = 0;
  if (p == NULL) {
    return;
  }
  cf_wait_closed(p, REACT_S);
  if (p->closed != CF_CLOSED_TRANSPORT ||
      (p->close_code != 0x12a && p->close_code != 0x0c)) {
    cf_describe(p, what, sizeof(what));
    cf_fail(r,
            "with a certificate other than the pinned one: expected "
            "transport error 0x12a (bad_certificate); got: %s",
            what);
  }
  drop(p);
}

static void t_no_other_stream(cf_result *r, const void *arg) {
  (void)arg;
  if (g_cur == NULL) {
    cf_skip(r, "no connection");
    return;
  }
  if (g_cur->client_streams) {
    cf_fail(r, "the client opened %d stream(s) besides stream 0",
            g_cur->client_streams);
  }
}

/* ---- named services (spec/02-framing.md §3.4, §3.7, §3.8, §4.4) ------ */

/* Connection 1 got AUTH_RESULT(0) with Flags 1 (t_response): the
 * client's next frame, at once, is SERVICES naming `default` (it serves
 * --destination only). */
static void t_svc_sent(cf_result *r, const void *arg) {
  cf_peer *p = g_cur;
  const prd_frame *h, *sv;
  size_t off = 0, namelen;
  const char *name;
  int has_default = 0;
  char what[256];
  (void)arg;
  if (p == NULL || p->closed || !cf_find_frame(p, PRD_FRAME_AUTH_RESPONSE)) {
    cf_skip(r, "no authenticated connection");
    return;
  }
  h = cf_find_frame(p, PRD_FRAME_HELLO);
  if (!(h->u.hello.flags & PRD_FLAG_SERVICES)) {
    cf_skip(r, "the client does not offer SERVICES (HELLO Flags 0x%llx)",
            (unsigned long long)h->u.hello.flags);
    return;
  }
  if (!cf_wait_frame(p, PRD_FRAME_SERVICES, REACT_S)) {
    cf_describe(p, what, sizeof(what));
    cf_fail(r, "no SERVICES within %.0f s of AUTH_RESULT(0) with Flags 1%s: %s",
            REACT_S, p->ctrl_bad ? " (malformed bytes)" : "", what);
    return;
  }
  sv = cf_find_frame(p, PRD_FRAME_SERVICES);
  if (p->nframes < 3 || p->frames[2].type != PRD_FRAME_SERVICES) {
    cf_fail(r, "SERVICES is not the first frame after AUTH_RESPONSE");
    return;
  }
  while (prd_services_next(sv, &off, &name, &namelen)) {
    has_default |= namelen == strlen(PRD_SERVICE_DEFAULT) &&
                   memcmp(name, PRD_SERVICE_DEFAULT, namelen) == 0;
  }
  if (sv->u.services.count == 0 || !has_default) {
    cf_fail(r, "SERVICES does not name `default` (%zu names)",
            sv->u.services.count);
  }
}

/* SERVICE_REFUSED(UNKNOWN_SERVICE, "web"): the client keeps the connection
 * (spec/02-framing.md §3.8). */
static void t_svc_refused_kept(cf_result *r, const void *arg) {
  char what[256];
  (void)arg;
  if (g_cur == NULL || g_cur->closed ||
      !cf_find_frame(g_cur, PRD_FRAME_SERVICES)) {
    cf_skip(r, "no connection with SERVICES negotiated");
    return;
  }
  cf_ctrl_send(g_cur, "\x07\x05\x0b\x03web", 7);
  cf_run(1.0, NULL, NULL);
  if (g_cur->closed) {
    cf_describe(g_cur, what, sizeof(what));
    cf_fail(r, "the client closed after SERVICE_REFUSED: %s", what);
  }
}

/* A data stream whose SERVICE ("web") the client did not declare:
 * RESET_STREAM and STOP_SENDING with UNKNOWN_SERVICE (spec/02-framing.md
 * §4.4); the connection stays up. */
static void t_svc_undeclared_stream(cf_result *r, const void *arg) {
  cf_stream *s;
  char what[256];
  (void)arg;
  if (g_cur == NULL || g_cur->closed ||
      !cf_find_frame(g_cur, PRD_FRAME_SERVICES)) {
    cf_skip(r, "no connection with SERVICES negotiated");
    return;
  }
  s = open_stream(g_cur, "01 0e " SRC " 03 03 77 65 62");
  if (s == NULL) {
    cf_fail(r, "cannot open a data stream (no credit from the client?)");
  } else {
    cf_run(REACT_S, until_aborted, s);
    if (g_cur->closed) {
      cf_describe(g_cur, what, sizeof(what));
      cf_fail(r, "the connection ended: %s", what);
    } else if (!s->reset || s->reset_code != PRD_APP_UNKNOWN_SERVICE ||
               !s->stop || s->stop_code != PRD_APP_UNKNOWN_SERVICE) {
      cf_fail(r,
              "SERVICE \"web\" not declared: expected RESET_STREAM and "
              "STOP_SENDING(UNKNOWN_SERVICE), got %s 0x%llx, %s 0x%llx",
              s->reset ? "RESET_STREAM" : "no RESET_STREAM",
              (unsigned long long)s->reset_code,
              s->stop ? "STOP_SENDING" : "no STOP_SENDING",
              (unsigned long long)s->stop_code);
    }
  }
  if (s != NULL && !s->reset && !s->stop) {
    cf_stream_reset(g_cur, s, PRD_APP_NO_ERROR);
  }
}

#define F02 "spec/02-framing.md"
#define F03 "spec/03-auth.md"
#define F04 "spec/04-quic-profile.md"

const cf_test cf_client_tests[] = {
    {"cli-hello-first", F02, "§1.1", "MUST",
     "the client opens stream 0 and sends HELLO as its first bytes", 0, t_hello,
     NULL},
    {"cli-hello-flags", F02, "§3.1", "MUST NOT",
     "HELLO Flags holds no bit but SERVICES and CLIENT_NAME", 0, t_hello_flags,
     NULL},
    {"cli-nothing-before-challenge", F03, "§4", "MUST",
     "nothing after HELLO until AUTH_CHALLENGE", 0, t_nothing_before_challenge,
     NULL},
    {"cli-response-mac", F03, "§3", "MUST",
     "AUTH_RESPONSE carries HMAC-SHA256(PSK, label || exporter || "
     "challenge)",
     0, t_response, NULL},
    {"cli-svc-sent", F02, "§3.7", "MUST",
     "AUTH_RESULT(0) with Flags 1: SERVICES naming `default` is the "
     "client's next frame",
     0, t_svc_sent, NULL},
    {"cli-svc-refused-kept", F02, "§3.8", "MUST NOT",
     "SERVICE_REFUSED does not close the connection", 0, t_svc_refused_kept,
     NULL},
    {"cli-svc-undeclared-stream", F02, "§4.4", "MUST",
     "a data stream for an undeclared service: RESET_STREAM and "
     "STOP_SENDING(UNKNOWN_SERVICE)",
     0, t_svc_undeclared_stream, NULL},
    {"cli-transport-params", F02, "§6.5", "MUST",
     "initial_max_streams_uni 0, stream credit ≥ 512 for server streams and "
     "≥ 1040 on stream 0",
     0, t_params, NULL},
    {"cli-hdr-unknown-field", F02, "§4", "MUST",
     "a Stream Header with an unknown field is not aborted with "
     "PROTOCOL_ERROR",
     0, t_header, &h_unknown},
    {"cli-hdr-version", F02, "§4", "MUST",
     "Stream Header Version 2: stream aborted with PROTOCOL_ERROR", 0, t_header,
     &h_badver},
    {"cli-hdr-oversized", F02, "§4", "MUST NOT",
     "Stream Header Length 600: aborted without waiting for the rest", 0,
     t_header, &h_oversized},
    {"cli-hdr-nonminimal", F02, "§2", "MUST",
     "non-minimal varint in the Stream Header: PROTOCOL_ERROR", 0, t_header,
     &h_nonmin},
    {"cli-hdr-no-source", F02, "§4", "MUST",
     "Stream Header without SOURCE: PROTOCOL_ERROR", 0, t_header, &h_nosrc},
    {"cli-hdr-duplicate", F02, "§4", "MUST", "SOURCE twice: PROTOCOL_ERROR", 0,
     t_header, &h_dupsrc},
    {"cli-hdr-family", F02, "§4.1", "MUST", "Address Family 5: PROTOCOL_ERROR",
     0, t_header, &h_family},
    {"cli-hdr-overrun", F02, "§4", "MUST",
     "a field running past the end of Fields: PROTOCOL_ERROR", 0, t_header,
     &h_overrun},
    {"cli-hdr-fin-early", F02, "§4", "MUST",
     "FIN before the Stream Header is complete: PROTOCOL_ERROR", 0, t_header,
     &h_finearly},
    {"cli-no-other-stream", F02, "§1.1", "MUST NOT",
     "the client opens no stream besides stream 0", 0, t_no_other_stream, NULL},
    {"cli-goaway-reconnect", F02, "§3.5", "MUST",
     "GOAWAY closes nothing; after our close the client reconnects", 0,
     t_goaway_then_close, NULL},
    {"cli-challenge-version", F03, "§4", "MUST",
     "AUTH_CHALLENGE Version 2: CONNECTION_CLOSE(VERSION_MISMATCH)", 0,
     t_challenge_version, NULL},
    {"cli-challenge-short", F02, "§3.2", "MUST",
     "a 31-byte Challenge: PROTOCOL_ERROR", 0, t_challenge_short, NULL},
    {"cli-unknown-frame", F02, "§3", "MUST",
     "an unknown frame type from the server: PROTOCOL_ERROR", 0,
     t_unknown_frame, NULL},
    {"cli-pin", F03, "§8.1", "MUST",
     "a certificate other than the pinned one: bad_certificate (0x12a)", 0,
     t_pin, NULL},
    {"cli-result-status", F02, "§3.4", "MUST",
     "AUTH_RESULT with an unknown non-zero Status: the client closes with it",
     0, t_result_status, NULL},
};

const size_t cf_client_ntests =
    sizeof(cf_client_tests) / sizeof(cf_client_tests[0]);

int cf_client_setup(const char *listen, const char *config_dir) {
  int one = 1;
  (void)listen;
  if (load_identity(config_dir) != 0) {
    return -1;
  }
  g_listen = socket(cf_opt.target.ss_family,
                    SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (g_listen < 0 ||
      setsockopt(g_listen, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
      setsockopt(g_listen, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) ||
      bind(g_listen, (struct sockaddr *)&cf_opt.target, cf_opt.targetlen)) {
    fprintf(stderr, "prd-conformance: cannot listen on '%s': %s\n", listen,
            strerror(errno));
    return -1;
  }
  return 0;
}
