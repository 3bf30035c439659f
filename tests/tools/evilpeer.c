/* SPDX-License-Identifier: GPL-3.0-only */
/* A QUIC peer for the attack tests that speaks just enough of portredirect
 * (ngtcp2 + GnuTLS, independent of src/) to misbehave on purpose.
 *
 * Built by the tests (tests/e2e/helpers_rel.bash):
 *   cc -O1 -o evilpeer tests/tools/evilpeer.c $(pkg-config --cflags --libs
 *      libngtcp2 libngtcp2_crypto_gnutls gnutls)
 *
 * Client modes (towards a portredirect_server at --host/--port; the server
 * certificate is NOT checked):
 *   silent     complete the TLS handshake, then send nothing at all
 *   noanswer   send HELLO, receive AUTH_CHALLENGE, never answer it
 *   wrongpsk   answer the challenge with a MAC under --psk-file (a wrong key);
 *              with --spoof-from ADDR every datagram after the challenge
 *              (the AUTH_RESPONSE) leaves from ADDR instead, as a spoofer
 *              would send it with a victim's source address
 *              With --client-name NAME (wrongpsk, auth) the peer names
 *              itself (HELLO Flags bit 1, the Name after the MAC, the MAC
 *              covering it: spec/03-auth.md §3, §4.1).
 *   auth       authenticate with --psk-file, then, if --then ACTION is given,
 *              misbehave on the control stream (see ACTIONS); with
 *              --goaway (default on) a GOAWAY(NO_ERROR) goes first so that the
 *              server assigns no user connection to this peer
 *   initials   send only the first Initial of -n connections (never finish)
 *   withhold   complete the TLS handshake, then fill the control stream's
 *              credit with junk in one burst whose first packet (offset 0) is
 *              never sent, so that the server must buffer the rest; then go
 *              silent (no retransmission of offset 0)
 *   close      complete the TLS handshake, then close the connection with
 *              application error --close-code (default 0) and the reason
 *              phrase --close-reason TEXT (C escapes \n \r \e \xHH \\);
 *              with --close-transport the code is a transport error code
 * With -n N (and -c concurrency) client modes run N connections and print a
 * summary line; with -n 1 they print one "result" line. A connection whose
 * handshake has not completed after --hs-timeout seconds (default 15) counts
 * as "no_handshake" (dropped or refused by the server).
 *
 * ACTIONS (after AUTH_RESULT(0), or with --inline right behind
 * AUTH_RESPONSE in the same STREAM frame):
 *   oversized  a HELLO whose Length is 1025 (over the 1024 limit)
 *   huge       a frame whose Length is 2^62-1
 *   unknown    frame type 0x06 (reserved)
 *   ext        frame type 0x40 (extension, not negotiated)
 *   hello      a second HELLO
 *   response   a second AUTH_RESPONSE
 *   nonminimal GOAWAY with a non-minimal varint (05 02 40 06)
 *   trailing   GOAWAY with a trailing byte (05 02 06 00)
 *   garbage    256 random bytes
 *   fin        FIN on the control stream
 *   reset      RESET_STREAM on the control stream
 *   slowbig    a HELLO header announcing 1000 bytes, then 1 byte per 100 ms
 *
 * Server mode "server" (towards a portredirect_client): listens on
 * --host/--port with --cert/--key (DER, the real server's identity so that
 * the client's pin matches), runs the server side of the authentication
 * (checking the MAC with --psk-file), then opens one data stream per entry of
 * --script (comma separated) and reports how each one ended:
 *   good       a valid header, --bytes of payload, FIN; the destination is an
 *              echo server, so the payload must come back intact, then FIN
 *   unknownfld a valid header with an extra unknown field (must be skipped)
 *   badver     header Version 2
 *   oversized  header Length 600 (over the 512-byte limit), never completed
 *   nonminimal header Length as a non-minimal varint
 *   nosrc      only a DESTINATION field
 *   dupsrc     SOURCE twice
 *   badfamily  SOURCE with Family 5
 *   badlen     SOURCE with Field Length 8 for Family 4
 *   overrun    a field running past the end of Fields
 *   finearly   half a header, then FIN
 * With --flood N it then opens N more streams that carry one byte each (a
 * Stream Header never completed), and with --hold S keeps the connection
 * S seconds after the script before it reports.
 * Each bad stream must be aborted by the client with PROTOCOL_ERROR (0x02)
 * while the connection stays up; the last line is "server summary ...".
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <netdb.h>
#include <netinet/in.h>
#include <ngtcp2/ngtcp2.h>
#include <ngtcp2/ngtcp2_crypto.h>
#include <ngtcp2/ngtcp2_crypto_gnutls.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define ALPN "portredirect/1"
#define EXPORTER_LABEL "EXPORTER-portredirect-auth"
#define MAC_LABEL "portredirect-auth-v1"
#define MAXCIDS 16
#define CTRL_MAX 8192
#define WH_MAX (4 << 20)

static uint8_t wh_junk[WH_MAX];
#define MAXSTREAMS 64

static const char PRIORITY[] =
    "NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+AES-128-GCM:+AES-256-GCM:"
    "+CHACHA20-POLY1305:-GROUP-ALL:+GROUP-X25519:+GROUP-SECP256R1:"
    "+GROUP-SECP384R1:%DISABLE_TLS13_COMPAT_MODE";

/* ---- options ---------------------------------------------------------- */

static struct {
  const char *mode;
  const char *host;
  int port;
  char *locals[64];
  int nlocals;
  uint8_t psk[1024];
  size_t psklen;
  const char *client_name; /* --client-name, NULL: none */
  const char *then;
  int inline_action;
  int goaway;
  long count, conc;
  double timeout, hold, hs_timeout;
  int verbose;
  /* server */
  const char *cert, *key;
  const char *script;
  size_t bytes;
  const char *spoof_from;
  long flood;
  /* close mode */
  uint64_t close_code;
  int close_transport;
  uint8_t close_reason[512];
  size_t close_reasonlen;
} opt = {.host = "127.0.0.1",
         .port = 4433,
         .goaway = 1,
         .count = 1,
         .conc = 1,
         .timeout = 30,
         .hold = -1,
         .hs_timeout = 15,
         .bytes = 65536};

static void die(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "evilpeer: ");
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, "\n");
  va_end(ap);
  exit(2);
}

static void vlog(const char *fmt, ...) {
  va_list ap;
  if (!opt.verbose) {
    return;
  }
  va_start(ap, fmt);
  fprintf(stderr, "evilpeer: ");
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, "\n");
  va_end(ap);
}

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void rnd(void *p, size_t n) {
  if (gnutls_rnd(GNUTLS_RND_RANDOM, p, n) != 0) {
    abort();
  }
}

static size_t put_varint(uint8_t *p, uint64_t v) {
  if (v < 64) {
    p[0] = (uint8_t)v;
    return 1;
  }
  if (v < 16384) {
    p[0] = (uint8_t)(0x40 | (v >> 8));
    p[1] = (uint8_t)v;
    return 2;
  }
  if (v < 1073741824) {
    p[0] = (uint8_t)(0x80 | (v >> 24));
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
    return 4;
  }
  p[0] = (uint8_t)(0xc0 | (v >> 56));
  for (int i = 1; i < 8; ++i) {
    p[i] = (uint8_t)(v >> (8 * (7 - i)));
  }
  return 8;
}

/* get_varint: 0 when incomplete, else the length; *v the value. */
static size_t get_varint(const uint8_t *p, size_t n, uint64_t *v) {
  size_t len;
  if (n == 0) {
    return 0;
  }
  len = (size_t)1 << (p[0] >> 6);
  if (n < len) {
    return 0;
  }
  *v = p[0] & 0x3f;
  for (size_t i = 1; i < len; ++i) {
    *v = (*v << 8) | p[i];
  }
  return len;
}

static void load_file(const char *path, uint8_t *buf, size_t cap, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (f == NULL) {
    die("cannot open %s: %s", path, strerror(errno));
  }
  *len = fread(buf, 1, cap, f);
  fclose(f);
}

static void load_psk(const char *path) {
  load_file(path, opt.psk, sizeof(opt.psk), &opt.psklen);
  /* spec/03-auth.md §7: one trailing CR LF or LF is dropped. */
  if (opt.psklen >= 2 && opt.psk[opt.psklen - 2] == '\r' &&
      opt.psk[opt.psklen - 1] == '\n') {
    opt.psklen -= 2;
  } else if (opt.psklen >= 1 && opt.psk[opt.psklen - 1] == '\n') {
    opt.psklen -= 1;
  }
}

static int resolve(const char *host, int port, struct sockaddr_storage *ss,
                   socklen_t *len) {
  struct addrinfo hints, *res;
  char sport[16];
  memset(&hints, 0, sizeof(hints));
  hints.ai_socktype = SOCK_DGRAM;
  hints.ai_flags = AI_NUMERICHOST;
  snprintf(sport, sizeof(sport), "%d", port);
  if (getaddrinfo(host, sport, &hints, &res) != 0) {
    return -1;
  }
  memcpy(ss, res->ai_addr, res->ai_addrlen);
  *len = res->ai_addrlen;
  freeaddrinfo(res);
  return 0;
}

/* ---- peers ------------------------------------------------------------ */

typedef struct stream {
  int64_t id;
  const char *kind;
  uint8_t *out;
  size_t outlen, sent;
  int fin;
  int done;
  uint64_t rx;
  size_t expect;
  int rx_fin, rx_mismatch;
  const uint8_t *payload; /* what the echo must equal */
  size_t paylen;
  int reset;
  uint64_t reset_code;
  int stop;
  uint64_t stop_code;
} stream;

typedef struct peer {
  int fd;
  int is_server;
  ngtcp2_conn *conn;
  ngtcp2_crypto_conn_ref ref;
  gnutls_session_t tls;
  struct sockaddr_storage local, remote;
  socklen_t locallen, remotelen;
  ngtcp2_cid cids[MAXCIDS];
  size_t ncids;
  uint64_t t_start, t_hs, t_close, t_action;
  int hs_done, hs_confirmed;
  int spoof_fd; /* --spoof-from: socket bound to the victim's address */
  long flood_opened; /* server --flood: streams opened so far */
  int64_t flood_sid;
  uint64_t t_script_done;
  uint64_t credit0;        /* stream 0 credit the server granted at first */
  uint64_t wh_total, wh_sent; /* withhold mode */
  int wh_silent;
  int retries;
  int64_t ctrl;
  uint8_t ctrl_out[CTRL_MAX];
  size_t ctrl_outlen, ctrl_sent;
  int ctrl_fin;
  int ctrl_reset;
  uint8_t rx[2048];
  size_t rxlen;
  int got_challenge;
  int auth_result; /* -1 none, else status */
  int auth_ok;     /* server side: client proved the PSK */
  uint8_t exporter[32];
  uint8_t challenge[64];
  size_t challengelen;
  int action_pending, action_done;
  int slow_left;
  uint64_t slow_next;
  /* outcome */
  int closed;
  const char *close_kind;
  uint64_t close_code;
  int close_type;
  char reason[128];
  /* server: data streams */
  stream streams[MAXSTREAMS];
  int nstreams;
  int streams_started;
  uint64_t t_last_rx;
} peer;

static gnutls_certificate_credentials_t g_cred;
static gnutls_priority_t g_prio;

static ngtcp2_conn *get_conn(ngtcp2_crypto_conn_ref *ref) {
  peer *p = ref->user_data;
  return p->conn;
}

static void peer_mark_closed(peer *p, const char *kind) {
  if (p->closed) {
    return;
  }
  p->closed = 1;
  p->close_kind = kind;
  p->t_close = now_ns();
}

static void peer_record_ccerr(peer *p) {
  ngtcp2_connection_close_error e;
  ngtcp2_conn_get_connection_close_error(p->conn, &e);
  p->close_code = e.error_code;
  p->close_type = (int)e.type;
  snprintf(p->reason, sizeof(p->reason), "%.*s",
           (int)(e.reasonlen < 100 ? e.reasonlen : 100),
           e.reason ? (const char *)e.reason : "");
  for (char *c = p->reason; *c; ++c) {
    if (*c == '"' || (unsigned char)*c < 0x20 || (unsigned char)*c > 0x7e) {
      *c = '?';
    }
  }
  if (e.type == NGTCP2_CONNECTION_CLOSE_ERROR_CODE_TYPE_APPLICATION) {
    peer_mark_closed(p, "peer-app");
  } else {
    peer_mark_closed(p, "peer-transport");
  }
}

static void ctrl_queue(peer *p, const uint8_t *data, size_t len) {
  if (p->ctrl_outlen + len > sizeof(p->ctrl_out)) {
    len = sizeof(p->ctrl_out) - p->ctrl_outlen;
  }
  memcpy(p->ctrl_out + p->ctrl_outlen, data, len);
  p->ctrl_outlen += len;
}

static void compute_mac(peer *p, const uint8_t *psk, size_t psklen,
                        uint8_t mac[32]) {
  uint8_t msg[20 + 32 + 64 + 1 + 64];
  size_t n = 0;
  memcpy(msg, MAC_LABEL, 20);
  n += 20;
  memcpy(msg + n, p->exporter, 32);
  n += 32;
  memcpy(msg + n, p->challenge, p->challengelen);
  n += p->challengelen;
  if (opt.client_name != NULL) {
    /* spec/03-auth.md §3: NameLen || Name. */
    msg[n++] = (uint8_t)strlen(opt.client_name);
    memcpy(msg + n, opt.client_name, strlen(opt.client_name));
    n += strlen(opt.client_name);
  }
  if (gnutls_hmac_fast(GNUTLS_MAC_SHA256, psk, psklen, msg, n, mac) != 0) {
    die("HMAC failed");
  }
}

/* The bytes of an ACTION (see the top comment); 0 for fin/reset/slowbig. */
static size_t action_bytes(const char *a, uint8_t *buf) {
  size_t n = 0;
  if (strcmp(a, "oversized") == 0) {
    buf[n++] = 0x01;
    n += put_varint(buf + n, 1025);
    buf[n++] = 0x01;
    buf[n++] = 0x00;
  } else if (strcmp(a, "huge") == 0) {
    buf[n++] = 0x05;
    n += put_varint(buf + n, ((uint64_t)1 << 62) - 1);
  } else if (strcmp(a, "unknown") == 0) {
    buf[n++] = 0x06;
    buf[n++] = 0x00;
  } else if (strcmp(a, "ext") == 0) {
    buf[n++] = 0x40;
    buf[n++] = 0x40;
    buf[n++] = 0x00;
  } else if (strcmp(a, "hello") == 0) {
    memcpy(buf, "\x01\x02\x01\x00", 4);
    n = 4;
  } else if (strcmp(a, "response") == 0) {
    buf[n++] = 0x03;
    buf[n++] = 0x20;
    rnd(buf + n, 32);
    n += 32;
  } else if (strcmp(a, "nonminimal") == 0) {
    memcpy(buf, "\x05\x02\x40\x06", 4);
    n = 4;
  } else if (strcmp(a, "trailing") == 0) {
    memcpy(buf, "\x05\x02\x06\x00", 4);
    n = 4;
  } else if (strcmp(a, "garbage") == 0) {
    rnd(buf, 256);
    /* Make sure the first byte is no valid frame type. */
    buf[0] = 0x3f;
    n = 256;
  } else if (strcmp(a, "fin") == 0 || strcmp(a, "reset") == 0 ||
             strcmp(a, "slowbig") == 0) {
    n = 0;
  } else {
    die("unknown action %s", a);
  }
  return n;
}

static void do_action(peer *p) {
  uint8_t buf[512];
  size_t n;
  if (p->action_done || opt.then == NULL) {
    return;
  }
  p->action_done = 1;
  p->t_action = now_ns();
  n = action_bytes(opt.then, buf);
  if (n) {
    ctrl_queue(p, buf, n);
  } else if (strcmp(opt.then, "fin") == 0) {
    p->ctrl_fin = 1;
  } else if (strcmp(opt.then, "reset") == 0) {
    p->ctrl_reset = 1;
  } else if (strcmp(opt.then, "slowbig") == 0) {
    buf[0] = 0x01;
    n = 1 + put_varint(buf + 1, 1000);
    ctrl_queue(p, buf, n);
    p->slow_left = 1000;
    p->slow_next = now_ns() + 100000000u;
  }
  vlog("action %s queued", opt.then);
}

/* Client: parse the server's control frames. */
static int client_ctrl(peer *p) {
  for (;;) {
    uint64_t type, len, v;
    size_t a, b, c;
    a = get_varint(p->rx, p->rxlen, &type);
    if (a == 0) {
      return 0;
    }
    b = get_varint(p->rx + a, p->rxlen - a, &len);
    if (b == 0 || p->rxlen < a + b + len) {
      return 0;
    }
    if (type == 0x02 && !p->got_challenge) {
      c = get_varint(p->rx + a + b, (size_t)len, &v);
      p->got_challenge = 1;
      p->challengelen = (size_t)len - c;
      if (p->challengelen > sizeof(p->challenge)) {
        p->challengelen = sizeof(p->challenge);
      }
      memcpy(p->challenge, p->rx + a + b + c, p->challengelen);
      vlog("AUTH_CHALLENGE (%zu bytes)", p->challengelen);
      if (strcmp(opt.mode, "wrongpsk") == 0 || strcmp(opt.mode, "auth") == 0) {
        uint8_t fr[2 + 32 + 64];
        size_t nl = opt.client_name ? strlen(opt.client_name) : 0;
        fr[0] = 0x03;
        fr[1] = (uint8_t)(0x20 + nl); /* at most 96: a 1-byte varint */
        compute_mac(p, opt.psk, opt.psklen, fr + 2);
        memcpy(fr + 2 + 32, opt.client_name ? opt.client_name : "", nl);
        ctrl_queue(p, fr, 2 + 32 + nl);
        if (strcmp(opt.mode, "auth") == 0 && opt.inline_action) {
          do_action(p);
        }
      }
    } else if (type == 0x04) {
      get_varint(p->rx + a + b, (size_t)len, &v);
      p->auth_result = (int)v;
      vlog("AUTH_RESULT %llu", (unsigned long long)v);
      if (v == 0 && strcmp(opt.mode, "auth") == 0) {
        if (opt.goaway && !opt.inline_action) {
          ctrl_queue(p, (const uint8_t *)"\x05\x01\x00", 3);
        }
        if (!opt.inline_action && opt.then) {
          /* A little later, so that the GOAWAY is processed first. */
          p->action_pending = 1;
          p->t_action = now_ns() + 100000000u;
        }
      }
    }
    memmove(p->rx, p->rx + a + b + len, p->rxlen - (a + b + (size_t)len));
    p->rxlen -= a + b + (size_t)len;
  }
}

/* Server: parse the client's control frames. */

static int server_ctrl(peer *p) {
  for (;;) {
    uint64_t type, len;
    size_t a, b;
    a = get_varint(p->rx, p->rxlen, &type);
    if (a == 0) {
      return 0;
    }
    b = get_varint(p->rx + a, p->rxlen - a, &len);
    if (b == 0 || p->rxlen < a + b + len) {
      return 0;
    }
    if (type == 0x01 && !p->got_challenge) {
      uint8_t fr[3 + 32];
      p->got_challenge = 1;
      p->challengelen = 32;
      rnd(p->challenge, 32);
      fr[0] = 0x02;
      fr[1] = 0x21;
      fr[2] = 0x01;
      memcpy(fr + 3, p->challenge, 32);
      ctrl_queue(p, fr, sizeof(fr));
    } else if (type == 0x03 && len == 32) {
      uint8_t mac[32];
      compute_mac(p, opt.psk, opt.psklen, mac);
      if (memcmp(mac, p->rx + a + b, 32) == 0) {
        p->auth_ok = 1;
        ctrl_queue(p, (const uint8_t *)"\x04\x01\x00", 3);
        printf("server client authenticated\n");
        fflush(stdout);
      } else {
        ctrl_queue(p, (const uint8_t *)"\x04\x01\x04", 3);
        printf("server client sent a wrong MAC\n");
        fflush(stdout);
      }
    } else if (type == 0x05) {
      vlog("client GOAWAY");
    }
    memmove(p->rx, p->rx + a + b + len, p->rxlen - (a + b + (size_t)len));
    p->rxlen -= a + b + (size_t)len;
  }
}

/* ---- ngtcp2 callbacks ------------------------------------------------- */

static void cb_rand(uint8_t *dest, size_t destlen,
                    const ngtcp2_rand_ctx *rand_ctx) {
  (void)rand_ctx;
  rnd(dest, destlen);
}

static int cb_get_new_cid(ngtcp2_conn *conn, ngtcp2_cid *cid, uint8_t *token,
                          size_t cidlen, void *user_data) {
  peer *p = user_data;
  uint8_t buf[NGTCP2_MAX_CIDLEN];
  (void)conn;
  rnd(buf, cidlen);
  ngtcp2_cid_init(cid, buf, cidlen);
  rnd(token, NGTCP2_STATELESS_RESET_TOKENLEN);
  if (p->ncids < MAXCIDS) {
    p->cids[p->ncids++] = *cid;
  }
  return 0;
}

static int cb_handshake_completed(ngtcp2_conn *conn, void *user_data) {
  peer *p = user_data;
  p->hs_done = 1;
  p->t_hs = now_ns();
  if (gnutls_prf_rfc5705(p->tls, sizeof(EXPORTER_LABEL) - 1, EXPORTER_LABEL, 0,
                         NULL, 32, (char *)p->exporter) != 0) {
    die("exporter failed");
  }
  vlog("handshake completed");
  if (p->is_server) {
    return 0;
  }
  if (strcmp(opt.mode, "silent") == 0 || strcmp(opt.mode, "close") == 0 ||
      strcmp(opt.mode, "withhold") == 0) {
    return 0;
  }
  if (ngtcp2_conn_open_bidi_stream(conn, &p->ctrl, NULL) != 0) {
    return NGTCP2_ERR_CALLBACK_FAILURE;
  }
  p->credit0 = ngtcp2_conn_get_max_stream_data_left(conn, p->ctrl);
  /* HELLO; with a client name, Flags bit 1 (spec/02-framing.md §3.1). */
  ctrl_queue(p,
             (const uint8_t *)(opt.client_name ? "\x01\x02\x01\x02"
                                               : "\x01\x02\x01\x00"),
             4);
  return 0;
}

static int cb_recv_retry(ngtcp2_conn *conn, const ngtcp2_pkt_hd *hd,
                         void *user_data) {
  peer *p = user_data;
  ++p->retries;
  return ngtcp2_crypto_recv_retry_cb(conn, hd, user_data);
}

static stream *find_stream(peer *p, int64_t id) {
  for (int i = 0; i < p->nstreams; ++i) {
    if (p->streams[i].id == id) {
      return &p->streams[i];
    }
  }
  return NULL;
}

static int cb_stream_open(ngtcp2_conn *conn, int64_t stream_id,
                          void *user_data) {
  peer *p = user_data;
  (void)conn;
  if (p->is_server && stream_id == 0) {
    p->ctrl = 0;
  }
  return 0;
}

static int cb_recv_stream_data(ngtcp2_conn *conn, uint32_t flags,
                               int64_t stream_id, uint64_t offset,
                               const uint8_t *data, size_t datalen,
                               void *user_data, void *stream_user_data) {
  peer *p = user_data;
  stream *s;
  (void)offset;
  (void)stream_user_data;
  ngtcp2_conn_extend_max_stream_offset(conn, stream_id, datalen);
  ngtcp2_conn_extend_max_offset(conn, datalen);
  p->t_last_rx = now_ns();
  if (stream_id == p->ctrl) {
    size_t n = datalen;
    if (n > sizeof(p->rx) - p->rxlen) {
      n = sizeof(p->rx) - p->rxlen;
    }
    memcpy(p->rx + p->rxlen, data, n);
    p->rxlen += n;
    return p->is_server ? server_ctrl(p) : client_ctrl(p);
  }
  s = find_stream(p, stream_id);
  if (s == NULL) {
    return 0; /* a data stream towards a client-mode peer: ignored */
  }
  if (s->payload) {
    if (s->rx + datalen > s->paylen ||
        memcmp(s->payload + s->rx, data, datalen) != 0) {
      s->rx_mismatch = 1;
    }
  }
  s->rx += datalen;
  if (flags & NGTCP2_STREAM_DATA_FLAG_FIN) {
    s->rx_fin = 1;
  }
  return 0;
}

static int cb_acked(ngtcp2_conn *conn, int64_t stream_id, uint64_t offset,
                    uint64_t datalen, void *user_data, void *stream_user_data) {
  (void)conn;
  (void)stream_id;
  (void)offset;
  (void)datalen;
  (void)user_data;
  (void)stream_user_data;
  return 0; /* every buffer lives as long as the peer */
}

static int cb_stream_reset(ngtcp2_conn *conn, int64_t stream_id,
                           uint64_t final_size, uint64_t app_error_code,
                           void *user_data, void *stream_user_data) {
  peer *p = user_data;
  stream *s = find_stream(p, stream_id);
  (void)conn;
  (void)final_size;
  (void)stream_user_data;
  if (s && !s->reset) {
    s->reset = 1;
    s->reset_code = app_error_code;
  }
  return 0;
}

static int cb_stream_stop_sending(ngtcp2_conn *conn, int64_t stream_id,
                                  uint64_t app_error_code, void *user_data,
                                  void *stream_user_data) {
  peer *p = user_data;
  stream *s = find_stream(p, stream_id);
  (void)conn;
  (void)stream_user_data;
  if (s && !s->stop) {
    s->stop = 1;
    s->stop_code = app_error_code;
  }
  return 0;
}

static int cb_stream_close(ngtcp2_conn *conn, uint32_t flags, int64_t stream_id,
                           uint64_t app_error_code, void *user_data,
                           void *stream_user_data) {
  peer *p = user_data;
  stream *s = find_stream(p, stream_id);
  (void)conn;
  (void)flags;
  (void)app_error_code;
  (void)stream_user_data;
  if (s) {
    s->done = 1;
  }
  return 0;
}

static int cb_recv_stateless_reset(ngtcp2_conn *conn,
                                   const ngtcp2_pkt_stateless_reset *sr,
                                   void *user_data) {
  (void)conn;
  (void)sr;
  peer_mark_closed(user_data, "stateless-reset");
  return 0;
}

static int cb_handshake_confirmed(ngtcp2_conn *conn, void *user_data) {
  peer *p = user_data;
  (void)conn;
  p->hs_confirmed = 1;
  return 0;
}

static ngtcp2_callbacks client_cbs = {
    .handshake_confirmed = cb_handshake_confirmed,
    .client_initial = ngtcp2_crypto_client_initial_cb,
    .recv_crypto_data = ngtcp2_crypto_recv_crypto_data_cb,
    .handshake_completed = cb_handshake_completed,
    .encrypt = ngtcp2_crypto_encrypt_cb,
    .decrypt = ngtcp2_crypto_decrypt_cb,
    .hp_mask = ngtcp2_crypto_hp_mask_cb,
    .recv_stream_data = cb_recv_stream_data,
    .acked_stream_data_offset = cb_acked,
    .stream_open = cb_stream_open,
    .stream_close = cb_stream_close,
    .recv_stateless_reset = cb_recv_stateless_reset,
    .recv_retry = cb_recv_retry,
    .rand = cb_rand,
    .get_new_connection_id = cb_get_new_cid,
    .update_key = ngtcp2_crypto_update_key_cb,
    .stream_reset = cb_stream_reset,
    .stream_stop_sending = cb_stream_stop_sending,
    .delete_crypto_aead_ctx = ngtcp2_crypto_delete_crypto_aead_ctx_cb,
    .delete_crypto_cipher_ctx = ngtcp2_crypto_delete_crypto_cipher_ctx_cb,
    .get_path_challenge_data = ngtcp2_crypto_get_path_challenge_data_cb,
    .version_negotiation = ngtcp2_crypto_version_negotiation_cb,
};

static ngtcp2_callbacks server_cbs = {
    .recv_client_initial = ngtcp2_crypto_recv_client_initial_cb,
    .recv_crypto_data = ngtcp2_crypto_recv_crypto_data_cb,
    .handshake_completed = cb_handshake_completed,
    .encrypt = ngtcp2_crypto_encrypt_cb,
    .decrypt = ngtcp2_crypto_decrypt_cb,
    .hp_mask = ngtcp2_crypto_hp_mask_cb,
    .recv_stream_data = cb_recv_stream_data,
    .acked_stream_data_offset = cb_acked,
    .stream_open = cb_stream_open,
    .stream_close = cb_stream_close,
    .rand = cb_rand,
    .get_new_connection_id = cb_get_new_cid,
    .update_key = ngtcp2_crypto_update_key_cb,
    .stream_reset = cb_stream_reset,
    .stream_stop_sending = cb_stream_stop_sending,
    .delete_crypto_aead_ctx = ngtcp2_crypto_delete_crypto_aead_ctx_cb,
    .delete_crypto_cipher_ctx = ngtcp2_crypto_delete_crypto_cipher_ctx_cb,
    .get_path_challenge_data = ngtcp2_crypto_get_path_challenge_data_cb,
    .version_negotiation = ngtcp2_crypto_version_negotiation_cb,
};

/* ---- TLS -------------------------------------------------------------- */

static int tls_new(peer *p) {
  gnutls_datum_t alpn = {(unsigned char *)ALPN, sizeof(ALPN) - 1};
  unsigned flags =
      p->is_server ? GNUTLS_SERVER | GNUTLS_NO_AUTO_SEND_TICKET : GNUTLS_CLIENT;
  if (gnutls_init(&p->tls, flags | GNUTLS_NO_END_OF_EARLY_DATA) != 0) {
    return -1;
  }
  if ((p->is_server
           ? ngtcp2_crypto_gnutls_configure_server_session(p->tls)
           : ngtcp2_crypto_gnutls_configure_client_session(p->tls)) != 0 ||
      gnutls_priority_set(p->tls, g_prio) != 0 ||
      gnutls_credentials_set(p->tls, GNUTLS_CRD_CERTIFICATE, g_cred) != 0 ||
      gnutls_alpn_set_protocols(
          p->tls, &alpn, 1,
          GNUTLS_ALPN_MANDATORY |
              (p->is_server ? GNUTLS_ALPN_SERVER_PRECEDENCE : 0)) != 0) {
    return -1;
  }
  p->ref.get_conn = get_conn;
  p->ref.user_data = p;
  gnutls_session_set_ptr(p->tls, &p->ref);
  ngtcp2_conn_set_tls_native_handle(p->conn, p->tls);
  return 0;
}

static void settings_params(ngtcp2_settings *s, ngtcp2_transport_params *tp,
                            int is_server) {
  ngtcp2_settings_default(s);
  s->initial_ts = now_ns();
  s->max_tx_udp_payload_size = 1452;
  if (!is_server && strcmp(opt.mode, "withhold") == 0) {
    /* Loopback datagrams: the initial congestion window is ten of them, so
     * that one burst fills most of the credit before any ACK can reveal
     * the missing offset 0 (and its retransmission). */
    s->max_tx_udp_payload_size = 65000;
    s->no_tx_udp_payload_size_shaping = 1;
    s->no_pmtud = 1;
  }
  ngtcp2_transport_params_default(tp);
  tp->initial_max_stream_data_bidi_local = 1 << 20;
  tp->initial_max_stream_data_bidi_remote = 1 << 20;
  tp->initial_max_data = 16 << 20;
  tp->initial_max_streams_bidi = is_server ? 1 : 0;
  tp->initial_max_streams_uni = 0;
  tp->max_idle_timeout = 60 * NGTCP2_SECONDS;
  tp->active_connection_id_limit = 4;
}

static ngtcp2_path peer_path(peer *p) {
  ngtcp2_path path;
  path.local.addr = (ngtcp2_sockaddr *)&p->local;
  path.local.addrlen = p->locallen;
  path.remote.addr = (ngtcp2_sockaddr *)&p->remote;
  path.remote.addrlen = p->remotelen;
  path.user_data = NULL;
  return path;
}

static peer *client_new(const struct sockaddr_storage *remote,
                        socklen_t remotelen, const char *local) {
  peer *p = calloc(1, sizeof(*p));
  ngtcp2_settings s;
  ngtcp2_transport_params tp;
  ngtcp2_cid scid, dcid;
  uint8_t buf[16];
  ngtcp2_path path;

  p->ctrl = -1;
  p->auth_result = -1;
  p->t_start = now_ns();
  p->remote = *remote;
  p->remotelen = remotelen;
  p->fd =
      socket(remote->ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (p->fd < 0) {
    die("socket: %s", strerror(errno));
  }
  if (local) {
    struct sockaddr_storage la;
    socklen_t lalen;
    if (resolve(local, 0, &la, &lalen) != 0 ||
        bind(p->fd, (struct sockaddr *)&la, lalen) != 0) {
      die("cannot bind to %s: %s", local, strerror(errno));
    }
  }
  if (connect(p->fd, (const struct sockaddr *)remote, remotelen) != 0) {
    die("connect: %s", strerror(errno));
  }
  p->spoof_fd = -1;
  if (opt.spoof_from) {
    struct sockaddr_storage la;
    socklen_t lalen;
    p->spoof_fd = socket(remote->ss_family,
                         SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (p->spoof_fd < 0 || resolve(opt.spoof_from, 0, &la, &lalen) != 0 ||
        bind(p->spoof_fd, (struct sockaddr *)&la, lalen) != 0 ||
        connect(p->spoof_fd, (const struct sockaddr *)remote, remotelen) != 0) {
      die("cannot use --spoof-from %s: %s", opt.spoof_from, strerror(errno));
    }
  }
  p->locallen = sizeof(p->local);
  getsockname(p->fd, (struct sockaddr *)&p->local, &p->locallen);
  settings_params(&s, &tp, 0);
  rnd(buf, sizeof(buf));
  ngtcp2_cid_init(&scid, buf, 16);
  rnd(buf, sizeof(buf));
  ngtcp2_cid_init(&dcid, buf, 16);
  path = peer_path(p);
  if (ngtcp2_conn_client_new(&p->conn, &dcid, &scid, &path, NGTCP2_PROTO_VER_V1,
                             &client_cbs, &s, &tp, NULL, p) != 0) {
    die("ngtcp2_conn_client_new failed");
  }
  if (tls_new(p) != 0) {
    die("TLS setup failed");
  }
  return p;
}

static void peer_free(peer *p) {
  if (p->conn) {
    ngtcp2_conn_del(p->conn);
  }
  if (p->tls) {
    gnutls_deinit(p->tls);
  }
  if (!p->is_server && p->fd >= 0) {
    close(p->fd);
  }
  if (!p->is_server && p->spoof_fd >= 0) {
    close(p->spoof_fd);
  }
  for (int i = 0; i < p->nstreams; ++i) {
    free(p->streams[i].out);
  }
  free(p);
}

/* ---- I/O -------------------------------------------------------------- */

static void peer_send(peer *p, const uint8_t *buf, size_t n,
                      const ngtcp2_path *path) {
  ssize_t r;
  if (p->is_server) {
    r = sendto(p->fd, buf, n, 0, (const struct sockaddr *)path->remote.addr,
               path->remote.addrlen);
  } else if (p->spoof_fd >= 0 && p->got_challenge) {
    r = send(p->spoof_fd, buf, n, 0);
  } else {
    r = send(p->fd, buf, n, 0);
  }
  (void)r; /* loss is QUIC's business */
}

static void peer_error(peer *p, int rv) {
  switch (rv) {
  case NGTCP2_ERR_DRAINING:
  case NGTCP2_ERR_CLOSING:
    peer_record_ccerr(p);
    break;
  case NGTCP2_ERR_IDLE_CLOSE:
    peer_mark_closed(p, "idle");
    break;
  case NGTCP2_ERR_HANDSHAKE_TIMEOUT:
    peer_mark_closed(p, "handshake-timeout");
    break;
  case NGTCP2_ERR_DROP_CONN:
    peer_mark_closed(p, "dropped");
    break;
  default:
    snprintf(p->reason, sizeof(p->reason), "%s", ngtcp2_strerror(rv));
    peer_mark_closed(p, "local-error");
    break;
  }
}

/* close mode: CONNECTION_CLOSE with the chosen code and reason. */
static void peer_close_now(peer *p) {
  uint8_t buf[1500];
  ngtcp2_path_storage ps;
  ngtcp2_pkt_info pi;
  ngtcp2_connection_close_error e;
  ngtcp2_ssize n;

  if (opt.close_transport) {
    ngtcp2_connection_close_error_set_transport_error(
        &e, opt.close_code, opt.close_reason, opt.close_reasonlen);
  } else {
    ngtcp2_connection_close_error_set_application_error(
        &e, opt.close_code, opt.close_reason, opt.close_reasonlen);
  }
  ngtcp2_path_storage_zero(&ps);
  n = ngtcp2_conn_write_connection_close(p->conn, &ps.path, &pi, buf,
                                         sizeof(buf), &e, now_ns());
  if (n > 0) {
    peer_send(p, buf, (size_t)n, &ps.path);
  }
  peer_mark_closed(p, "local-close");
}

static void peer_flush(peer *p) {
  uint8_t buf[1500];
  ngtcp2_path_storage ps;
  ngtcp2_pkt_info pi;
  uint64_t ts = now_ns();
  int guard = 0;

  if (p->closed) {
    return;
  }
  /* After confirmation: before it an application close travels as the
   * transport error APPLICATION_ERROR without its reason (RFC 9000
   * §10.2.3). */
  if (!p->is_server && p->hs_confirmed && strcmp(opt.mode, "close") == 0) {
    peer_close_now(p);
    return;
  }
  /* withhold: after confirmation too, or the dropped first packet could
   * carry our Handshake Finished. */
  if (!p->is_server && p->hs_confirmed && p->ctrl < 0 &&
      strcmp(opt.mode, "withhold") == 0) {
    if (ngtcp2_conn_open_bidi_stream(p->conn, &p->ctrl, NULL) != 0) {
      peer_mark_closed(p, "local-error");
      return;
    }
    p->credit0 = ngtcp2_conn_get_max_stream_data_left(p->conn, p->ctrl);
    p->wh_total = p->credit0 < WH_MAX ? p->credit0 : WH_MAX;
  }
  if (p->ctrl_reset && p->ctrl >= 0) {
    p->ctrl_reset = 0;
    ngtcp2_conn_shutdown_stream(p->conn, p->ctrl, 0x0);
  }
  ngtcp2_path_storage_zero(&ps);
  for (;;) {
    ngtcp2_vec vec;
    ngtcp2_ssize nd = -1, nw;
    int64_t sid = -1;
    uint32_t flags = 0;
    stream *s = NULL;

    if (++guard > 4096) {
      break;
    }
    vec.base = NULL;
    vec.len = 0;
    if (p->wh_total && p->wh_sent < p->wh_total) {
      sid = p->ctrl;
      vec.base = wh_junk + p->wh_sent;
      vec.len = p->wh_total - p->wh_sent;
    } else if (p->ctrl >= 0 &&
               (p->ctrl_sent < p->ctrl_outlen || p->ctrl_fin == 1)) {
      sid = p->ctrl;
      vec.base = p->ctrl_out + p->ctrl_sent;
      vec.len = p->ctrl_outlen - p->ctrl_sent;
      if (p->ctrl_fin == 1) {
        flags |= NGTCP2_WRITE_STREAM_FLAG_FIN;
      }
    } else {
      for (int i = 0; i < p->nstreams; ++i) {
        stream *t = &p->streams[i];
        if (!t->done && t->id >= 0 && !t->reset && !t->stop &&
            (t->sent < t->outlen || t->fin == 1)) {
          s = t;
          sid = t->id;
          vec.base = t->out + t->sent;
          vec.len = t->outlen - t->sent;
          if (t->fin == 1) {
            flags |= NGTCP2_WRITE_STREAM_FLAG_FIN;
          }
          break;
        }
      }
    }
    nw = ngtcp2_conn_writev_stream(p->conn, &ps.path, &pi, buf, sizeof(buf),
                                   &nd, flags, sid, vec.len ? &vec : NULL,
                                   vec.len ? 1 : 0, ts);
    if (nw < 0) {
      if (nw == NGTCP2_ERR_STREAM_DATA_BLOCKED ||
          nw == NGTCP2_ERR_STREAM_SHUT_WR ||
          nw == NGTCP2_ERR_STREAM_NOT_FOUND) {
        if (s) {
          s->done = 1; /* blocked or gone: good enough for a test peer */
          continue;
        }
        if (sid == p->ctrl) {
          p->ctrl_sent = p->ctrl_outlen;
          p->ctrl_fin = 2;
          continue;
        }
      }
      peer_error(p, (int)nw);
      return;
    }
    if (p->wh_total) {
      /* withhold: the packet with offset 0 and, once everything was sent,
       * every packet (retransmissions of offset 0 included) are dropped. */
      int drop = p->wh_silent || (nd > 0 && p->wh_sent == 0);
      if (nd > 0) {
        p->wh_sent += (uint64_t)nd;
      }
      if (nw == 0) {
        break;
      }
      if (!drop) {
        peer_send(p, buf, (size_t)nw, &ps.path);
      }
      continue;
    }
    if (nd >= 0 && sid >= 0) {
      if (sid == p->ctrl) {
        p->ctrl_sent += (size_t)nd;
        if ((flags & NGTCP2_WRITE_STREAM_FLAG_FIN) &&
            p->ctrl_sent == p->ctrl_outlen) {
          p->ctrl_fin = 2;
        }
      } else if (s) {
        s->sent += (size_t)nd;
        if ((flags & NGTCP2_WRITE_STREAM_FLAG_FIN) && s->sent == s->outlen) {
          s->fin = 2;
        }
      }
    }
    if (nw == 0) {
      break;
    }
    peer_send(p, buf, (size_t)nw, &ps.path);
  }
  if (p->wh_sent > 0) {
    p->wh_silent = 1; /* one burst only */
  }
  ngtcp2_conn_update_pkt_tx_time(p->conn, ts);
}

static void peer_read(peer *p, const uint8_t *pkt, size_t len,
                      const struct sockaddr_storage *from, socklen_t fromlen) {
  ngtcp2_path path = peer_path(p);
  ngtcp2_pkt_info pi;
  int rv;
  if (p->closed) {
    return;
  }
  if (p->is_server) {
    path.remote.addr = (ngtcp2_sockaddr *)from;
    path.remote.addrlen = fromlen;
  }
  memset(&pi, 0, sizeof(pi));
  rv = ngtcp2_conn_read_pkt(p->conn, &path, &pi, pkt, len, now_ns());
  if (rv != 0 && rv != NGTCP2_ERR_DISCARD_PKT) {
    peer_error(p, rv);
    return;
  }
  if (p->is_server) {
    p->remote = *from;
    p->remotelen = fromlen;
  }
}

static void peer_timer(peer *p) {
  uint64_t now = now_ns();
  if (p->closed) {
    return;
  }
  if (p->action_pending && now >= p->t_action) {
    p->action_pending = 0;
    do_action(p);
  }
  if (p->slow_left > 0 && now >= p->slow_next) {
    uint8_t b = 0;
    ctrl_queue(p, &b, 1);
    --p->slow_left;
    p->slow_next = now + 100000000u;
  }
  if (ngtcp2_conn_get_expiry(p->conn) <= now) {
    int rv = ngtcp2_conn_handle_expiry(p->conn, now);
    if (rv != 0) {
      peer_error(p, rv);
      return;
    }
  }
  peer_flush(p);
}

static uint64_t peer_next(peer *p) {
  uint64_t t = ngtcp2_conn_get_expiry(p->conn);
  if (p->action_pending && p->t_action < t) {
    t = p->t_action;
  }
  if (p->slow_left > 0 && p->slow_next < t) {
    t = p->slow_next;
  }
  return t;
}

/* ---- client driver ---------------------------------------------------- */

static const char *close_desc(peer *p, char *buf, size_t len) {
  if (!p->closed) {
    snprintf(buf, len, "close=open");
  } else if (strcmp(p->close_kind, "peer-app") == 0 ||
             strcmp(p->close_kind, "peer-transport") == 0) {
    snprintf(buf, len, "close=%s code=0x%llx reason=\"%s\"", p->close_kind,
             (unsigned long long)p->close_code, p->reason);
  } else {
    snprintf(buf, len, "close=%s reason=\"%s\"", p->close_kind, p->reason);
  }
  return buf;
}

static void print_result(peer *p) {
  char cd[256];
  double ths = p->hs_done ? (double)(p->t_hs - p->t_start) / 1e9 : -1;
  double tcl = -1;
  if (p->closed) {
    tcl = (double)(p->t_close - (p->hs_done ? p->t_hs : p->t_start)) / 1e9;
  }
  printf("result mode=%s handshake=%s retries=%d auth=%d %s "
         "t_handshake=%.3f t_close_after_handshake=%.3f stream0_credit=%llu "
         "withheld=%llu",
         opt.mode, p->hs_done ? "yes" : "no", p->retries, p->auth_result,
         close_desc(p, cd, sizeof(cd)), ths, tcl,
         (unsigned long long)p->credit0, (unsigned long long)p->wh_sent);
  if (p->action_done && p->closed) {
    printf(" t_close_after_action=%.3f",
           (double)(p->t_close - p->t_action) / 1e9);
  }
  printf("\n");
  fflush(stdout);
}

/* Initials only: the first flight of |n| connections, never continued. */
static int run_initials(const struct sockaddr_storage *remote,
                        socklen_t remotelen) {
  long sent = 0;
  int fds[64];
  int nfds = opt.nlocals > 0 ? opt.nlocals : 1;
  uint8_t buf[1500], rbuf[2048];
  long answers = 0;
  uint64_t end;

  for (int i = 0; i < nfds; ++i) {
    peer *tmp =
        client_new(remote, remotelen, opt.nlocals ? opt.locals[i] : NULL);
    fds[i] = dup(tmp->fd);
    peer_free(tmp);
  }
  for (long i = 0; i < opt.count; ++i) {
    peer *p = client_new(remote, remotelen,
                         opt.nlocals ? opt.locals[i % nfds] : NULL);
    ngtcp2_path_storage ps;
    ngtcp2_pkt_info pi;
    ngtcp2_ssize nd, nw;
    ngtcp2_path_storage_zero(&ps);
    nw = ngtcp2_conn_writev_stream(p->conn, &ps.path, &pi, buf, sizeof(buf),
                                   &nd, 0, -1, NULL, 0, now_ns());
    if (nw > 0) {
      /* From the shared socket of that address, so that the answers (and
       * Retry packets) come back to a socket we drain. */
      if (send(fds[i % nfds], buf, (size_t)nw, 0) == nw) {
        ++sent;
      }
    }
    peer_free(p);
    for (int k = 0; k < nfds; ++k) {
      while (recv(fds[k], rbuf, sizeof(rbuf), MSG_DONTWAIT) > 0) {
        ++answers;
      }
    }
  }
  end = now_ns() + 500000000u;
  while (now_ns() < end) {
    for (int k = 0; k < nfds; ++k) {
      while (recv(fds[k], rbuf, sizeof(rbuf), MSG_DONTWAIT) > 0) {
        ++answers;
      }
    }
    usleep(10000);
  }
  printf("initials sent=%ld answers=%ld\n", sent, answers);
  return 0;
}

static int run_clients(void) {
  struct sockaddr_storage remote;
  socklen_t remotelen;
  peer **peers;
  struct pollfd *pfds;
  long created = 0, finished = 0;
  long hs = 0, retries = 0, refused = 0, app[16] = {0}, app_other = 0;
  long idle = 0, nohs = 0, held = 0, other = 0, auth_ok = 0;
  long open_established = 0, max_open_established = 0;
  uint64_t deadline, withheld = 0;
  long conc = opt.conc < 1 ? 1 : opt.conc;

  if (resolve(opt.host, opt.port, &remote, &remotelen) != 0) {
    die("bad --host %s", opt.host);
  }
  if (strcmp(opt.mode, "initials") == 0) {
    return run_initials(&remote, remotelen);
  }
  if (conc > opt.count) {
    conc = opt.count;
  }
  peers = calloc((size_t)conc, sizeof(*peers));
  pfds = calloc((size_t)conc, sizeof(*pfds));
  deadline = now_ns() + (uint64_t)(opt.timeout * 1e9);

  while (finished < opt.count && now_ns() < deadline) {
    uint64_t next = deadline, now;
    int timeout_ms;
    /* Start new connections. */
    for (long i = 0; i < conc && created < opt.count; ++i) {
      if (peers[i] == NULL) {
        peers[i] =
            client_new(&remote, remotelen,
                       opt.nlocals ? opt.locals[created % opt.nlocals] : NULL);
        ++created;
        peer_flush(peers[i]);
      }
    }
    for (long i = 0; i < conc; ++i) {
      peer *p = peers[i];
      pfds[i].fd = p ? p->fd : -1;
      pfds[i].events = POLLIN;
      pfds[i].revents = 0;
      if (p) {
        uint64_t t = peer_next(p);
        if (t < next) {
          next = t;
        }
      }
    }
    now = now_ns();
    timeout_ms = next > now ? (int)((next - now) / 1000000u) + 1 : 0;
    if (timeout_ms > 100) {
      timeout_ms = 100;
    }
    poll(pfds, (nfds_t)conc, timeout_ms);
    open_established = 0;
    for (long i = 0; i < conc; ++i) {
      peer *p = peers[i];
      if (p == NULL) {
        continue;
      }
      if (pfds[i].revents & POLLIN) {
        uint8_t buf[65536];
        ssize_t n;
        while ((n = recv(p->fd, buf, sizeof(buf), MSG_DONTWAIT)) > 0) {
          peer_read(p, buf, (size_t)n, &p->remote, p->remotelen);
        }
      }
      if (p->spoof_fd >= 0) {
        /* The server answers the "spoofed" path (a test can receive
         * there: it is loopback); polled at least every 100 ms. */
        uint8_t buf[65536];
        ssize_t n;
        while ((n = recv(p->spoof_fd, buf, sizeof(buf), MSG_DONTWAIT)) > 0) {
          peer_read(p, buf, (size_t)n, &p->remote, p->remotelen);
        }
      }
      peer_timer(p);
      now = now_ns();
      if (!p->closed && opt.hold >= 0 && p->hs_done &&
          now - p->t_hs > (uint64_t)(opt.hold * 1e9)) {
        peer_mark_closed(p, "held"); /* dropped silently, no CLOSE */
      }
      if (!p->closed && !p->hs_done &&
          now - p->t_start > (uint64_t)(opt.hs_timeout * 1e9)) {
        peer_mark_closed(p, "no-handshake");
      }
      if (!p->closed && opt.count == 1 && opt.then && p->action_done &&
          now - p->t_action > (uint64_t)(opt.timeout * 1e9)) {
        peer_mark_closed(p, "timeout");
      }
      if (p->hs_done && !p->closed) {
        ++open_established;
      }
      if (p->closed) {
        if (opt.count == 1) {
          print_result(p);
        }
        hs += p->hs_done;
        withheld += p->wh_sent;
        retries += p->retries;
        auth_ok += p->auth_result == 0;
        if (strcmp(p->close_kind, "peer-transport") == 0 &&
            p->close_code == NGTCP2_CONNECTION_REFUSED) {
          ++refused;
        } else if (strcmp(p->close_kind, "peer-app") == 0) {
          if (p->close_code < 16) {
            ++app[p->close_code];
          } else {
            ++app_other;
          }
        } else if (strcmp(p->close_kind, "idle") == 0) {
          ++idle;
        } else if (strcmp(p->close_kind, "no-handshake") == 0 ||
                   strcmp(p->close_kind, "handshake-timeout") == 0) {
          ++nohs;
        } else if (strcmp(p->close_kind, "held") == 0) {
          ++held;
        } else {
          ++other;
          vlog("closed: %s %s", p->close_kind, p->reason);
        }
        peer_free(p);
        peers[i] = NULL;
        ++finished;
      }
    }
    if (open_established > max_open_established) {
      max_open_established = open_established;
    }
  }
  for (long i = 0; i < conc; ++i) {
    if (peers[i]) {
      if (opt.count == 1) {
        print_result(peers[i]);
      }
      hs += peers[i]->hs_done;
      withheld += peers[i]->wh_sent;
      ++other;
      peer_free(peers[i]);
    }
  }
  if (opt.count > 1) {
    printf("flood mode=%s created=%ld handshakes=%ld retries=%ld "
           "auth_ok=%ld refused=%ld auth_failed=%ld auth_timeout=%ld "
           "protocol_error=%ld app_other=%ld idle=%ld no_handshake=%ld "
           "held=%ld other=%ld max_open_established=%ld withheld=%llu\n",
           opt.mode, created, hs, retries, auth_ok, refused, app[4], app[5],
           app[2], app_other + app[0] + app[1] + app[3] + app[6], idle, nohs,
           held, other, max_open_established, (unsigned long long)withheld);
  }
  free(peers);
  free(pfds);
  return 0;
}

/* ---- server driver ---------------------------------------------------- */

static size_t put_addr_field(uint8_t *p, uint8_t type, int port) {
  p[0] = type;
  p[1] = 7;
  p[2] = 4;
  p[3] = 127;
  p[4] = 0;
  p[5] = 0;
  p[6] = 1;
  p[7] = (uint8_t)(port >> 8);
  p[8] = (uint8_t)port;
  return 9;
}

static uint8_t *g_payload;

/* Builds the stream for script entry |kind|. */
static void build_stream(stream *s, const char *kind, int idx) {
  uint8_t hdr[1024], fields[700];
  size_t n = 0, f = 0;
  int good = 0;
  s->kind = kind;
  s->id = -1;
  if (strcmp(kind, "good") == 0 || strcmp(kind, "unknownfld") == 0) {
    good = 1;
    f += put_addr_field(fields + f, 1, 40000 + idx);
    if (strcmp(kind, "unknownfld") == 0) {
      fields[f++] = 0x30;
      fields[f++] = 3;
      fields[f++] = 'x';
      fields[f++] = 'y';
      fields[f++] = 'z';
    }
    f += put_addr_field(fields + f, 2, 443);
    hdr[n++] = 1;
    n += put_varint(hdr + n, f);
  } else if (strcmp(kind, "badver") == 0) {
    f += put_addr_field(fields + f, 1, 40000 + idx);
    hdr[n++] = 2;
    n += put_varint(hdr + n, f);
  } else if (strcmp(kind, "oversized") == 0) {
    hdr[n++] = 1;
    n += put_varint(hdr + n, 600);
    /* Some of the announced bytes, never all. */
    memset(fields, 0x30, 100);
    f = 100;
  } else if (strcmp(kind, "nonminimal") == 0) {
    f += put_addr_field(fields + f, 1, 40000 + idx);
    hdr[n++] = 1;
    hdr[n++] = 0x40;
    hdr[n++] = (uint8_t)f;
  } else if (strcmp(kind, "nosrc") == 0) {
    f += put_addr_field(fields + f, 2, 443);
    hdr[n++] = 1;
    n += put_varint(hdr + n, f);
  } else if (strcmp(kind, "dupsrc") == 0) {
    f += put_addr_field(fields + f, 1, 40000 + idx);
    f += put_addr_field(fields + f, 1, 40001 + idx);
    hdr[n++] = 1;
    n += put_varint(hdr + n, f);
  } else if (strcmp(kind, "badfamily") == 0) {
    f += put_addr_field(fields + f, 1, 40000 + idx);
    fields[2] = 5;
    hdr[n++] = 1;
    n += put_varint(hdr + n, f);
  } else if (strcmp(kind, "badlen") == 0) {
    f += put_addr_field(fields + f, 1, 40000 + idx);
    fields[1] = 8;
    fields[f++] = 0;
    hdr[n++] = 1;
    n += put_varint(hdr + n, f);
  } else if (strcmp(kind, "overrun") == 0) {
    f += put_addr_field(fields + f, 1, 40000 + idx);
    fields[f++] = 0x30;
    fields[f++] = 20; /* runs past the end */
    fields[f++] = 'x';
    hdr[n++] = 1;
    n += put_varint(hdr + n, f);
  } else if (strcmp(kind, "finearly") == 0) {
    hdr[n++] = 1;
    n += put_varint(hdr + n, 18);
    f += put_addr_field(fields + f, 1, 40000 + idx) - 4;
  } else {
    die("unknown script entry %s", kind);
  }
  memcpy(hdr + n, fields, f);
  n += f;
  s->outlen = n + (good ? opt.bytes : 0);
  s->out = malloc(s->outlen ? s->outlen : 1);
  memcpy(s->out, hdr, n);
  if (good) {
    memcpy(s->out + n, g_payload, opt.bytes);
    s->payload = g_payload;
    s->paylen = opt.bytes;
  }
  /* Bad streams other than "finearly" stay open on our side: the client
   * must abort them by itself. */
  s->fin = (good || strcmp(kind, "finearly") == 0) ? 1 : 0;
}

static void server_send_streams(peer *p) {
  const char *sc = opt.script;
  char item[32];
  int idx = 0;
  while (sc && *sc && p->nstreams < MAXSTREAMS) {
    size_t k = strcspn(sc, ",");
    stream *s = &p->streams[p->nstreams];
    snprintf(item, sizeof(item), "%.*s", (int)k, sc);
    build_stream(s, strdup(item), idx++);
    if (ngtcp2_conn_open_bidi_stream(p->conn, &s->id, NULL) != 0) {
      die("cannot open stream %d", idx);
    }
    ++p->nstreams;
    sc += k;
    if (*sc == ',') {
      ++sc;
    }
  }
  p->streams_started = 1;
}

/* server --flood: one byte on each of opt.flood new streams, as fast as
 * stream credit and congestion control allow. */
static void server_flood(peer *p) {
  static const uint8_t one = 1;
  uint8_t buf[1500];
  ngtcp2_path_storage ps;
  ngtcp2_pkt_info pi;
  ngtcp2_ssize nw;
  uint64_t ts = now_ns();
  int pending = 0;

  ngtcp2_path_storage_zero(&ps);
  while (p->flood_opened < opt.flood) {
    ngtcp2_vec v;
    ngtcp2_ssize nd = -1;
    if (p->flood_sid < 0 &&
        ngtcp2_conn_open_bidi_stream(p->conn, &p->flood_sid, NULL) != 0) {
      p->flood_sid = -1;
      break; /* no stream credit now */
    }
    v.base = (uint8_t *)&one;
    v.len = 1;
    nw = ngtcp2_conn_writev_stream(p->conn, &ps.path, &pi, buf, sizeof(buf),
                                   &nd, NGTCP2_WRITE_STREAM_FLAG_MORE,
                                   p->flood_sid, &v, 1, ts);
    if (nd == 1) {
      p->flood_sid = -1;
      ++p->flood_opened;
    }
    if (nw == NGTCP2_ERR_WRITE_MORE) {
      pending = 1;
      continue;
    }
    pending = 0;
    if (nw <= 0) {
      break; /* congestion window, or an error the loop will see */
    }
    peer_send(p, buf, (size_t)nw, &ps.path);
  }
  if (pending) {
    nw = ngtcp2_conn_writev_stream(p->conn, &ps.path, &pi, buf, sizeof(buf),
                                   NULL, 0, -1, NULL, 0, ts);
    if (nw > 0) {
      peer_send(p, buf, (size_t)nw, &ps.path);
    }
  }
}

static int stream_finished(stream *s) {
  if (s->payload) {
    return s->reset || s->stop || s->rx_fin;
  }
  return s->reset || s->stop;
}

static int run_server(void) {
  struct sockaddr_storage la;
  socklen_t lalen;
  int fd;
  peer *p = NULL;
  uint8_t buf[65536];
  uint64_t deadline = now_ns() + (uint64_t)(opt.timeout * 1e9);
  uint8_t certbuf[16384], keybuf[16384];
  size_t certlen, keylen;
  gnutls_datum_t cd, kd;

  load_file(opt.cert, certbuf, sizeof(certbuf), &certlen);
  load_file(opt.key, keybuf, sizeof(keybuf), &keylen);
  cd.data = certbuf;
  cd.size = (unsigned)certlen;
  kd.data = keybuf;
  kd.size = (unsigned)keylen;
  if (gnutls_certificate_set_x509_key_mem2(
          g_cred, &cd, &kd, GNUTLS_X509_FMT_DER, NULL, GNUTLS_PKCS_PLAIN) < 0) {
    die("cannot load --cert/--key");
  }
  g_payload = malloc(opt.bytes ? opt.bytes : 1);
  for (size_t i = 0; i < opt.bytes; ++i) {
    g_payload[i] = (uint8_t)(i * 7 + (i >> 8));
  }
  if (resolve(opt.host, opt.port, &la, &lalen) != 0) {
    die("bad --host");
  }
  fd = socket(la.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0 || bind(fd, (struct sockaddr *)&la, lalen) != 0) {
    die("cannot bind UDP %s:%d: %s", opt.host, opt.port, strerror(errno));
  }
  printf("server listening %s %d\n", opt.host, opt.port);
  fflush(stdout);

  while (now_ns() < deadline) {
    struct pollfd pfd = {fd, POLLIN, 0};
    uint64_t next = deadline, now = now_ns();
    int tmo;
    if (p) {
      next = peer_next(p);
    }
    tmo = next > now ? (int)((next - now) / 1000000u) + 1 : 0;
    if (tmo > 100) {
      tmo = 100;
    }
    poll(&pfd, 1, tmo);
    for (;;) {
      struct sockaddr_storage from;
      socklen_t fromlen = sizeof(from);
      ssize_t n = recvfrom(fd, buf, sizeof(buf), MSG_DONTWAIT,
                           (struct sockaddr *)&from, &fromlen);
      ngtcp2_pkt_hd hd;
      if (n <= 0) {
        break;
      }
      if (p && !p->closed) {
        peer_read(p, buf, (size_t)n, &from, fromlen);
        continue;
      }
      if (ngtcp2_accept(&hd, buf, (size_t)n) != 0) {
        continue;
      }
      if (p) {
        peer_free(p);
      }
      {
        ngtcp2_settings s;
        ngtcp2_transport_params tp;
        ngtcp2_cid scid;
        uint8_t cb[16];
        ngtcp2_path path;
        p = calloc(1, sizeof(*p));
        p->is_server = 1;
        p->fd = fd;
        p->ctrl = -1;
        p->auth_result = -1;
        p->t_start = now_ns();
        p->local = la;
        p->locallen = lalen;
        p->remote = from;
        p->remotelen = fromlen;
        settings_params(&s, &tp, 1);
        tp.original_dcid = hd.dcid;
        tp.stateless_reset_token_present = 1;
        rnd(tp.stateless_reset_token, sizeof(tp.stateless_reset_token));
        rnd(cb, sizeof(cb));
        ngtcp2_cid_init(&scid, cb, sizeof(cb));
        path = peer_path(p);
        if (ngtcp2_conn_server_new(&p->conn, &hd.scid, &scid, &path, hd.version,
                                   &server_cbs, &s, &tp, NULL, p) != 0 ||
            tls_new(p) != 0) {
          die("cannot create the server connection");
        }
        peer_read(p, buf, (size_t)n, &from, fromlen);
      }
    }
    if (p == NULL) {
      continue;
    }
    peer_timer(p);
    if (p->auth_ok && !p->streams_started && p->ctrl_sent == p->ctrl_outlen) {
      server_send_streams(p);
      peer_flush(p);
      p->flood_sid = -1;
    }
    if (p->streams_started && p->flood_opened < opt.flood && !p->closed) {
      server_flood(p);
    }
    if (p->closed) {
      char cdesc[256];
      printf("server connection closed: %s\n",
             close_desc(p, cdesc, sizeof(cdesc)));
      fflush(stdout);
      if (p->streams_started) {
        break;
      }
      peer_free(p);
      p = NULL;
      continue;
    }
    if (p->streams_started) {
      int all = 1;
      for (int i = 0; i < p->nstreams; ++i) {
        if (!stream_finished(&p->streams[i])) {
          all = 0;
        }
      }
      if (all && p->flood_opened >= opt.flood) {
        if (p->t_script_done == 0) {
          p->t_script_done = now_ns();
          printf("server script done, %ld flood streams opened\n",
                 p->flood_opened);
          fflush(stdout);
        }
        if (opt.hold <= 0 ||
            now_ns() - p->t_script_done >= (uint64_t)(opt.hold * 1e9)) {
          break;
        }
      }
    }
  }
  if (p == NULL || !p->streams_started) {
    printf("server summary no authenticated client\n");
    return 1;
  }
  {
    int ok = 0, bad = 0;
    for (int i = 0; i < p->nstreams; ++i) {
      stream *s = &p->streams[i];
      const char *verdict;
      if (s->payload) {
        verdict = (!s->reset && !s->stop && s->rx_fin && !s->rx_mismatch &&
                   s->rx == s->paylen)
                      ? "echo-ok"
                      : "echo-FAILED";
      } else {
        verdict =
            ((s->reset && s->reset_code == 2) || (s->stop && s->stop_code == 2))
                ? "aborted-protocol-error"
                : "NOT-ABORTED-AS-EXPECTED";
      }
      if (strstr(verdict, "FAIL") || strstr(verdict, "NOT")) {
        ++bad;
      } else {
        ++ok;
      }
      printf("stream %lld %s %s rx=%llu reset=%s stop=%s fin=%d\n",
             (long long)s->id, s->kind, verdict, (unsigned long long)s->rx,
             s->reset ? (s->reset_code == 2 ? "0x2" : "other") : "no",
             s->stop ? (s->stop_code == 2 ? "0x2" : "other") : "no", s->rx_fin);
      if (s->reset && s->reset_code != 2) {
        printf("stream %lld reset code 0x%llx\n", (long long)s->id,
               (unsigned long long)s->reset_code);
      }
    }
    printf("server summary ok=%d bad=%d connection=%s\n", ok, bad,
           p->closed ? "closed" : "up");
    fflush(stdout);
    peer_free(p);
    return bad ? 1 : 0;
  }
}

/* ---- main ------------------------------------------------------------- */

/* unescape decodes \n \r \e \xHH \\ in |s| into |out|; returns the length. */
static size_t unescape(uint8_t *out, size_t cap, const char *s) {
  size_t n = 0;
  while (*s && n < cap) {
    if (*s != '\\' || s[1] == 0) {
      out[n++] = (uint8_t)*s++;
      continue;
    }
    ++s;
    switch (*s) {
    case 'n':
      out[n++] = '\n';
      ++s;
      break;
    case 'r':
      out[n++] = '\r';
      ++s;
      break;
    case 'e':
      out[n++] = 0x1b;
      ++s;
      break;
    case 'x': {
      char h[3] = {0, 0, 0};
      if (s[1] && s[2]) {
        h[0] = s[1];
        h[1] = s[2];
        s += 3;
      } else {
        ++s;
      }
      out[n++] = (uint8_t)strtoul(h, NULL, 16);
      break;
    }
    default:
      out[n++] = (uint8_t)*s++;
      break;
    }
  }
  return n;
}

static void usage(void) {
  fprintf(stderr,
          "usage: evilpeer MODE [--host H] [--port P] [--local-host A,B,..]\n"
          "  [--psk-file F] [--client-name NAME] [--then ACTION] [--inline]\n"
          "  [--no-goaway]\n"
          "  [-n COUNT] [-c CONCURRENCY] [--hold S] [--timeout S]\n"
          "  [--hs-timeout S] [-v]\n"
          "  server: --cert DER --key DER --script a,b,c [--bytes N]\n"
          "  close: [--close-code N] [--close-reason TEXT] "
          "[--close-transport]\n"
          "modes: silent noanswer wrongpsk auth initials close withhold "
          "server\n");
  exit(2);
}

int main(int argc, char **argv) {
  static const struct option longopts[] = {
      {"host", required_argument, NULL, 'H'},
      {"port", required_argument, NULL, 'p'},
      {"local-host", required_argument, NULL, 'l'},
      {"psk-file", required_argument, NULL, 'k'},
      {"client-name", required_argument, NULL, 'N'},
      {"then", required_argument, NULL, 't'},
      {"inline", no_argument, NULL, 'i'},
      {"no-goaway", no_argument, NULL, 'g'},
      {"hold", required_argument, NULL, 'o'},
      {"timeout", required_argument, NULL, 'T'},
      {"hs-timeout", required_argument, NULL, 'h'},
      {"cert", required_argument, NULL, 'C'},
      {"key", required_argument, NULL, 'K'},
      {"script", required_argument, NULL, 's'},
      {"bytes", required_argument, NULL, 'b'},
      {"close-code", required_argument, NULL, 'X'},
      {"spoof-from", required_argument, NULL, 'S'},
      {"flood", required_argument, NULL, 'F'},
      {"close-reason", required_argument, NULL, 'R'},
      {"close-transport", no_argument, NULL, 'Y'},
      {NULL, 0, NULL, 0}};
  int c;
  if (argc < 2 || argv[1][0] == '-') {
    usage();
  }
  opt.mode = argv[1];
  optind = 2;
  while ((c = getopt_long(argc, argv, "n:c:v", longopts, NULL)) != -1) {
    switch (c) {
    case 'H':
      opt.host = optarg;
      break;
    case 'p':
      opt.port = atoi(optarg);
      break;
    case 'l': {
      char *s = strdup(optarg), *tok, *save = NULL;
      for (tok = strtok_r(s, ",", &save); tok && opt.nlocals < 64;
           tok = strtok_r(NULL, ",", &save)) {
        opt.locals[opt.nlocals++] = tok;
      }
      break;
    }
    case 'k':
      load_psk(optarg);
      break;
    case 'N':
      if (strlen(optarg) == 0 || strlen(optarg) > 64) {
        die("--client-name: 1 to 64 bytes");
      }
      opt.client_name = optarg;
      break;
    case 't':
      opt.then = optarg;
      break;
    case 'i':
      opt.inline_action = 1;
      break;
    case 'g':
      opt.goaway = 0;
      break;
    case 'o':
      opt.hold = atof(optarg);
      break;
    case 'T':
      opt.timeout = atof(optarg);
      break;
    case 'h':
      opt.hs_timeout = atof(optarg);
      break;
    case 'C':
      opt.cert = optarg;
      break;
    case 'K':
      opt.key = optarg;
      break;
    case 's':
      opt.script = optarg;
      break;
    case 'b':
      opt.bytes = (size_t)atol(optarg);
      break;
    case 'X':
      opt.close_code = strtoull(optarg, NULL, 0);
      break;
    case 'Y':
      opt.close_transport = 1;
      break;
    case 'S':
      opt.spoof_from = optarg;
      break;
    case 'F':
      opt.flood = atol(optarg);
      break;
    case 'R':
      opt.close_reasonlen = unescape(opt.close_reason, sizeof(opt.close_reason),
                                     optarg);
      break;
    case 'n':
      opt.count = atol(optarg);
      break;
    case 'c':
      opt.conc = atol(optarg);
      break;
    case 'v':
      opt.verbose = 1;
      break;
    default:
      usage();
    }
  }
  memset(wh_junk, 0xff, sizeof(wh_junk));
  if (gnutls_certificate_allocate_credentials(&g_cred) != 0 ||
      gnutls_priority_init(&g_prio, PRIORITY, NULL) != 0) {
    die("GnuTLS init failed");
  }
  if (opt.then) {
    uint8_t tmp[512];
    (void)action_bytes(opt.then, tmp); /* validates the name */
  }
  if (strcmp(opt.mode, "server") == 0) {
    if (!opt.cert || !opt.key || !opt.script || opt.psklen == 0) {
      usage();
    }
    return run_server();
  }
  if (strcmp(opt.mode, "silent") && strcmp(opt.mode, "noanswer") &&
      strcmp(opt.mode, "wrongpsk") && strcmp(opt.mode, "auth") &&
      strcmp(opt.mode, "initials") && strcmp(opt.mode, "close") &&
      strcmp(opt.mode, "withhold")) {
    usage();
  }
  if ((strcmp(opt.mode, "wrongpsk") == 0 || strcmp(opt.mode, "auth") == 0) &&
      opt.psklen == 0) {
    die("--psk-file is required for %s", opt.mode);
  }
  return run_clients();
}
