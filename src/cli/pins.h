/* SPDX-License-Identifier: GPL-3.0-only */
/* The client's certificate pins (spec/06-files-and-cli.md §3): which pin
 * each server gets (cert=FILE, --server-fingerprint, --server-cert or
 * cert.der, trust on first use), and the TOFU store, written off the event
 * loop. */
#ifndef PRD_PINS_H
#define PRD_PINS_H

#include <stddef.h>
#include <stdint.h>

#include "../quic/identity.h"
#include "../relay/relay.h"
#include "opts.h"

/* The client's TOFU pin with one server; never a name the server uses. */
#define PRD_TOFU_FILE "client-tofu-cert.der"

/* The pin every server shares unless it has its own. */
typedef struct prd_pins {
  uint8_t *der; /* malloc'ed, or NULL (first use, cert=FILE, fingerprints) */
  size_t len;
  char path[4200];              /* its file, for messages */
  char fp[PRD_FINGERPRINT_LEN]; /* its fingerprint, or "(none)" */
  int tofu_first;               /* nothing pinned yet: trust on first use */
  int all_own;                  /* every server has its own cert=FILE */
  int by_fp;                    /* --server-fingerprint */
} prd_pins;

/* prd_pins_load reads the shared pin of |o| into |p|: --server-cert FILE,
 * else <config-dir>/cert.der, else with --trust-on-first-use the stored TOFU
 * pin (one server) or nothing yet (then the config directory is created and
 * a WARN says where the pin will go). Returns 0, or 2 (the exit status)
 * with a one-line message on stderr. prd_pins_free frees |p| either way. */
int prd_pins_load(prd_pins *p, const prd_opts *o);

/* prd_pins_print_fingerprint does --print-fingerprint: the
 * --server-fingerprint values, or the pin's fingerprint on stdout and its
 * names on stderr. Returns the exit status (1 when nothing is pinned). */
int prd_pins_print_fingerprint(const prd_pins *p, const prd_opts *o);

/* prd_pins_log logs which pin the client uses. */
void prd_pins_log(const prd_pins *p, const prd_opts *o);

/* prd_pins_tofu_path writes where the TOFU pin of server |hp| lives: one
 * server keeps client-tofu-cert.der, several get client-tofu-HOST-PORT.der
 * each, with ':', '/' and '%' of HOST as '_' (spec/06-files-and-cli.md
 * §3.4). Returns 0, or -1 when |outlen| is too small. */
int prd_pins_tofu_path(char *out, size_t outlen, const prd_opts *o,
                       const prd_hostport *hp);

/* prd_pins_remote gives remote |rr| (label already set) its pin: cert=FILE
 * of |hp|, else the fingerprints, else the shared pin of |p|, and its TOFU
 * file (read if it exists when several servers learn by first use). A pin
 * read here is owned by |rr| (pin_owned). Returns 0, or -1 with a message
 * on stderr. */
int prd_pins_remote(prd_relay_remote *rr, const prd_pins *p, const prd_opts *o,
                    const prd_hostport *hp);

/* prd_pins_tofu_store is the relay's tofu_store hook: it copies |der| and
 * writes it to |remote|'s tofu_path (mode 0600, atomically) from a worker
 * thread, then logs the WARN that names its fingerprint (after an ERROR if
 * the write failed). |arg| is unused. Never blocks the caller on the disk. */
void prd_pins_tofu_store(const prd_relay_remote *remote, const uint8_t *der,
                         size_t len, void *arg);

/* prd_pins_tofu_wait waits up to |timeout_ms| for the TOFU writes under way
 * to finish (before the process exits). Returns 0, or -1 on a timeout. */
int prd_pins_tofu_wait(unsigned timeout_ms);

/* prd_pins_free frees the shared pin. */
void prd_pins_free(prd_pins *p);

#endif
