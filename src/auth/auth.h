/* SPDX-License-Identifier: GPL-3.0-only */
/* Authentication state machine (spec/03-auth.md). Pure: events in, frames
 * out; no sockets, no clock, no randomness of its own. */
#ifndef PRD_AUTH_H
#define PRD_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include "../codec/codec.h"
#include "../common/time.h"

#define PRD_AUTH_EXPORTER_LABEL "EXPORTER-portredirect-auth"
#define PRD_AUTH_EXPORTER_LEN 32
#define PRD_AUTH_MAC_LABEL "portredirect-auth-v1"
#define PRD_AUTH_PSK_MAX 1024
#define PRD_AUTH_DEFAULT_TIMEOUT_NS (5 * PRD_NS_PER_S)
/* The output queue holds AUTH_RESULT and the client's SERVICES frame
 * (at most PRD_FRAME_MAX_LEN bytes) together. */
#define PRD_AUTH_OUT_MAX (PRD_FRAME_MAX_LEN + 256)

typedef enum prd_auth_role {
  PRD_AUTH_ROLE_SERVER,
  PRD_AUTH_ROLE_CLIENT
} prd_auth_role;

typedef enum prd_auth_state {
  PRD_AUTH_STATE_IDLE,           /* before the TLS handshake completed */
  PRD_AUTH_STATE_WAIT_HELLO,     /* server */
  PRD_AUTH_STATE_WAIT_RESPONSE,  /* server */
  PRD_AUTH_STATE_WAIT_CHALLENGE, /* client */
  PRD_AUTH_STATE_WAIT_RESULT,    /* client */
  PRD_AUTH_STATE_AUTHENTICATED,
  PRD_AUTH_STATE_FAILED
} prd_auth_state;

/* prd_auth_key_fn: server, the client table (spec/03-auth.md §4.1). Called
 * once per AUTH_RESPONSE with the client's |name| (|namelen| bytes, a valid
 * client name, "default" for a client that sent none): copies that client's
 * PSK into |psk| (room for PRD_AUTH_PSK_MAX bytes), sets |*ppsklen| and
 * returns 0; or returns PRD_ERR_CLIENT_UNKNOWN or
 * PRD_ERR_CLIENT_NOT_ALLOWED (any negative value fails the client alike). */
typedef int (*prd_auth_key_fn)(void *arg, uint8_t *psk, size_t *ppsklen,
                               const char *name, size_t namelen);

typedef struct prd_auth {
  prd_auth_role role;
  prd_auth_state state;
  uint64_t close_code; /* wire error code once FAILED (spec/05-errors.md) */
  int fail_err;        /* negative error every call returns once FAILED */
  prd_tstamp deadline; /* server: auth must complete before this */
  uint64_t timeout_ns;
  size_t psklen;
  uint8_t psk[PRD_AUTH_PSK_MAX];
  uint8_t exporter[PRD_AUTH_EXPORTER_LEN];
  size_t challengelen;
  uint8_t challenge[PRD_CHALLENGE_MAX];
  uint64_t peer_goaway; /* 1 when a GOAWAY was received */
  uint64_t goaway_code;
  /* HELLO Flags (spec/02-framing.md §3.1, §3.4). features: the bits this
   * end implements (PRD_FLAG_SERVICES after init; 0 acts as an
   * implementation of the first text). hello_flags: the client's HELLO
   * Flags (sent by the client, kept by the server). negotiated: the bits
   * both ends accepted, set on the move to AUTHENTICATED. */
  uint64_t features;
  uint64_t hello_flags;
  uint64_t negotiated;
  /* Client names (spec/03-auth.md §4.1). Client: its own name (namelen 0:
   * none, HELLO without CLIENT_NAME). Server: the name the client gave
   * once AUTH_RESPONSE arrived ("default" without one; any bytes, escape
   * them to log), and key_err why it was refused (0: its key was found,
   * so a failure means a wrong key). key_fn: the client table; NULL: the
   * PSK of init is the key of "default" and every other name is unknown. */
  size_t namelen;
  char name[PRD_CLIENT_NAME_MAX + 1];
  int key_err;
  prd_auth_key_fn key_fn;
  void *key_arg;
  /* Client: the SERVICES frame it sends once SERVICES is negotiated
   * (spec/02-framing.md §3.7). Server: the last SERVICES frame received
   * (has_services 0 before the first). */
  int has_services;
  prd_frame services;
  size_t outlen; /* bytes to send on the control stream */
  uint8_t out[PRD_AUTH_OUT_MAX];
} prd_auth;

/* prd_auth_init prepares |a| for |role| with the pre-shared key |psk|
 * (copied). |timeout_ns| is the server's deadline (0 = default 5 s).
 * Returns 0, or PRD_ERR_INVAL for an empty or over-long PSK. */
int prd_auth_init(prd_auth *a, prd_auth_role role, const uint8_t *psk,
                  size_t psklen, uint64_t timeout_ns);

/* prd_auth_set_features sets the HELLO Flags bits |a| implements (a subset
 * of PRD_FLAG_SERVICES | PRD_FLAG_CLIENT_NAME | PRD_FLAG_DATAGRAMS, all
 * after init; 0 behaves as a peer of the first text of spec/02: a client
 * sends HELLO Flags 0, a server never sends AUTH_RESULT Flags). A client
 * sets CLIENT_NAME in HELLO only when it also has a name
 * (prd_auth_set_client_name).
 * Only in IDLE. Returns 0, PRD_ERR_INVAL for an unknown bit, or
 * PRD_ERR_AUTH_STATE. */
int prd_auth_set_features(prd_auth *a, uint64_t features);

/* prd_auth_set_key_lookup: server, in IDLE. Authenticates every client
 * with the key |fn| finds for its name (spec/03-auth.md §4.1); the PSK
 * given to prd_auth_init is then only the stand-in key a refused name's MAC
 * is computed under (a random key of the endpoint, never a client's).
 * Returns 0 or PRD_ERR_INVAL (a client, not IDLE). */
int prd_auth_set_key_lookup(prd_auth *a, prd_auth_key_fn fn, void *arg);

/* prd_auth_set_client_name: client, in IDLE. The client names itself
 * |name| (copied): HELLO sets CLIENT_NAME and AUTH_RESPONSE carries the
 * name (spec/02-framing.md §3.1, §3.3). NULL or "" removes the name.
 * Returns 0 or PRD_ERR_INVAL (invalid name, a server, not IDLE). */
int prd_auth_set_client_name(prd_auth *a, const char *name);

/* prd_auth_set_services: client, in IDLE. The |n| names the client declares
 * in SERVICES (spec/02-framing.md §3.7) once SERVICES is negotiated; n == 0
 * (the default after init) declares "default" only. The names are copied.
 * Returns 0, PRD_ERR_INVAL (a name invalid or repeated, a server, not
 * IDLE) or PRD_ERR_NOBUF (the names do not fit one frame). */
int prd_auth_set_services(prd_auth *a, const char *const *names, size_t n);

/* prd_auth_update_services: client, in any state: the names it declares
 * from now on (a reload, README "Reload"). AUTHENTICATED with SERVICES
 * negotiated, a new SERVICES frame is queued (spec/02-framing.md §3.7: it
 * replaces the set); before, the new names go in the first one. n == 0
 * declares "default" only. Returns 0, PRD_ERR_INVAL (a name invalid or
 * repeated, a server), PRD_ERR_NOBUF (the names do not fit one frame or
 * the queue) or the error of a failed exchange. */
int prd_auth_update_services(prd_auth *a, const char *const *names, size_t n);

/* prd_auth_services_negotiated: 1 once AUTHENTICATED with SERVICES
 * negotiated (HELLO and AUTH_RESULT Flags bit 0), else 0. */
static inline int prd_auth_services_negotiated(const prd_auth *a) {
  return (a->negotiated & PRD_FLAG_SERVICES) != 0;
}

/* prd_auth_last_services: server: the last SERVICES frame received (iterate
 * it with prd_services_next), or NULL before the first one. */
const prd_frame *prd_auth_last_services(const prd_auth *a);

/* prd_auth_queue_service_refused: server, AUTHENTICATED with SERVICES
 * negotiated: queues SERVICE_REFUSED(|code|, |name|) (spec/02-framing.md
 * §3.8). Returns 0, PRD_ERR_AUTH_STATE (wrong role or state, not
 * negotiated), PRD_ERR_INVAL (invalid name or code) or PRD_ERR_NOBUF (drain
 * the queue and retry); nothing is queued on error. */
int prd_auth_queue_service_refused(prd_auth *a, uint64_t code, const char *name,
                                   size_t namelen);

/* prd_auth_free wipes the secrets held in |a|. */
void prd_auth_free(prd_auth *a);

/* prd_auth_start is called when the TLS handshake completes, with this
 * session's exporter value (label PRD_AUTH_EXPORTER_LABEL, empty context,
 * 32 bytes). Server: |challenge| is PRD_CHALLENGE_MIN fresh random bytes from
 * the caller's CSPRNG; arms the deadline at |now| + timeout. Client: queues
 * HELLO; |challenge| is ignored (may be NULL). Returns 0 or
 * PRD_ERR_AUTH_STATE if not IDLE. */
int prd_auth_start(prd_auth *a, const uint8_t *exporter,
                   const uint8_t *challenge, prd_tstamp now);

/* prd_auth_on_frame feeds one decoded control frame received from the peer.
 * Returns 0 when accepted (output may be queued), or a negative error after
 * which the state is FAILED and |a->close_code| holds the code to close the
 * connection with: PRD_ERR_AUTH_FAILED (AUTH_FAILED; server queued
 * AUTH_RESULT), PRD_ERR_VERSION (VERSION_MISMATCH), PRD_ERR_AUTH_STATE
 * (PROTOCOL_ERROR, frame out of order), PRD_ERR_AUTH_TIMEOUT (server: frame
 * arrived after the deadline). A client receiving a non-zero AUTH_RESULT
 * returns PRD_ERR_AUTH_FAILED with close_code = that status. SERVICES
 * (server) and SERVICE_REFUSED (client) are accepted only in AUTHENTICATED
 * with SERVICES negotiated (spec/07-state-machines.md §1, §2), else
 * PRD_ERR_AUTH_STATE; a SERVICES frame replaces prd_auth_last_services.
 * AUTH_RESULT Flags when the client sent HELLO Flags 0, or with a bit the
 * client did not send: PRD_ERR_AUTH_STATE (PROTOCOL_ERROR). Once FAILED,
 * every call returns |a->fail_err| again and queues nothing more. */
int prd_auth_on_frame(prd_auth *a, const prd_frame *fr, prd_tstamp now);

/* prd_auth_fail: the caller found the control stream broken (a malformed
 * frame, an early FIN): FAILED with the wire code |code|, and |err| is what
 * every later call returns. Returns |err|, or |a->fail_err| when |a| had
 * already failed (the first failure stands). */
int prd_auth_fail(prd_auth *a, int err, uint64_t code);

/* prd_auth_on_timer: server only. Returns PRD_ERR_AUTH_TIMEOUT (state FAILED,
 * close_code AUTH_TIMEOUT) when |now| >= deadline and not yet authenticated,
 * else 0. */
int prd_auth_on_timer(prd_auth *a, prd_tstamp now);

/* prd_auth_queue_goaway queues a GOAWAY frame (only when AUTHENTICATED).
 * Returns 0 or PRD_ERR_AUTH_STATE / PRD_ERR_NOBUF. */
int prd_auth_queue_goaway(prd_auth *a, uint64_t error_code);

/* Output queue: bytes to write to the control stream, in order. The caller
 * copies them out and calls prd_auth_out_consume. */
static inline int prd_auth_is_authenticated(const prd_auth *a) {
  return a->state == PRD_AUTH_STATE_AUTHENTICATED;
}
void prd_auth_out_consume(prd_auth *a, size_t n);

/* prd_auth_compute_mac computes MAC = HMAC-SHA256(psk, PRD_AUTH_MAC_LABEL ||
 * exporter || challenge) (spec/03-auth.md §3). Returns 0 or PRD_ERR_INVAL. */
int prd_auth_compute_mac(uint8_t *mac, const uint8_t *psk, size_t psklen,
                         const uint8_t *exporter, const uint8_t *challenge,
                         size_t challengelen);

/* prd_auth_compute_mac_named is prd_auth_compute_mac with a client name:
 * the message ends with NameLen (1 byte) || name (spec/03-auth.md §3).
 * |namelen| 0 gives the unnamed MAC; 1..PRD_CLIENT_NAME_MAX bytes of any
 * value are accepted (the server computes it for refused names too).
 * Returns 0 or PRD_ERR_INVAL. */
int prd_auth_compute_mac_named(uint8_t *mac, const uint8_t *psk, size_t psklen,
                               const uint8_t *exporter,
                               const uint8_t *challenge, size_t challengelen,
                               const char *name, size_t namelen);

const char *prd_auth_state_name(prd_auth_state s);

#endif
