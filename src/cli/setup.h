/* SPDX-License-Identifier: GPL-3.0-only */
/* Start-up steps shared by both mains: name resolution, PSK warnings. */
#ifndef PRD_SETUP_H
#define PRD_SETUP_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "../quic/quic.h"
#include "opts.h"

/* prd_resolve resolves |host| (address or name) and |port| into at most |max|
 * addresses. Returns the count (> 0), or 0 with a message in |err|. */
size_t prd_resolve(prd_sockaddr *out, size_t max, const char *host,
                   uint16_t port, int passive, char *err, size_t errlen);

/* prd_setup_psk_warnings logs the start-up warnings about the PSK. */
void prd_setup_psk_warnings(const prd_opts *o);

/* prd_setup_keylog creates the key log file with mode 0600 if it does not
 * exist, refuses one that group or others can access or that is not a
 * regular file (message on stderr, prefixed with |prog|), and logs the
 * WARN of spec/08-security.md §6. Returns 0, or -1 (exit status 2). */
int prd_setup_keylog(const prd_opts *o, const char *prog);

/* prd_setup_raise_nofile raises the soft RLIMIT_NOFILE to the hard one. */
void prd_setup_raise_nofile(void);

/* prd_setup_process does what both mains do once the options |o| are
 * parsed: set the log level, raise RLIMIT_NOFILE and check the library
 * versions. Returns 0, or -1 for a library too old (exit status 1). */
int prd_setup_process(const prd_opts *o);

/* prd_setup_reload_begin opens the stream a SIGHUP's build writes its
 * errors to (README "Reload"); *|pmsg| is malloc'ed when it is closed.
 * NULL after logging an ERROR. */
FILE *prd_setup_reload_begin(char **pmsg, size_t *pmsglen);

/* prd_setup_log_reload_error logs the first line of |msg|, a build's error
 * (without the "|prog|: " it starts with), as the one ERROR line of a
 * refused reload. */
void prd_setup_log_reload_error(const char *msg, const char *prog);

/* The builds SIGHUP makes (README "Reload"): the relay's running
 * configuration points into the last one applied (cur) and, while the
 * next is applied, into the one before (prev); next waits for the relay's
 * verdict. release frees a build the hook made. */
typedef struct prd_reload_builds {
  void *cur, *prev, *next;
  void (*release)(void *build);
} prd_reload_builds;

/* prd_reload_builds_done: the relay applied |rb|->next (|applied| 1): it
 * becomes cur and the build before prev goes; or refused it: it goes. */
void prd_reload_builds_done(prd_reload_builds *rb, int applied);

/* prd_reload_builds_free frees every build of |rb| (at exit). */
void prd_reload_builds_free(prd_reload_builds *rb);

#endif
