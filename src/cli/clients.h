/* SPDX-License-Identifier: GPL-3.0-only */
/* The server's client identities: the clients file (--clients-file,
 * spec/06-files-and-cli.md §4.1) and the client "default" of --quic-psk,
 * made into the relay's table (prd_relay_config.clients). */
#ifndef PRD_CLI_CLIENTS_H
#define PRD_CLI_CLIENTS_H

#include <stddef.h>

#include "../relay/relay.h"
#include "opts.h"

/* prd_clients_parse parses the clients file |path| into a malloc'ed array
 * of |*pn| clients (|*pclients|, freed with prd_clients_free). Reads only
 * files: the clients file, refused if group or others may read it, and
 * each psk-file (relative paths from the clients file's directory); PSKs
 * shorter than 16 bytes or in a loose file draw one WARN each. Returns 0,
 * or -1 with one line "FILE:LINE: what" (or "FILE: what") in |err|; nothing
 * is allocated then. */
int prd_clients_parse(prd_relay_client **pclients, size_t *pn, const char *path,
                      char *err, size_t errlen);

/* prd_clients_free wipes the PSKs of the |n| clients at |clients| and
 * frees them and the array. NULL does nothing. */
void prd_clients_free(prd_relay_client *clients, size_t n);

/* prd_cli_clients_build fills |rc|'s clients from |o|: the clients file
 * when given, and the client "default" (services=*) from the PSK of
 * --quic-psk, --quic-psk-file or PORTREDIRECT_PSK when there is one
 * (spec/06-files-and-cli.md §4.1; both and a line "default" is an error).
 * Reads files only; no exit, no other side effect. Returns 0, or -1 with a
 * one-line message in |err| and |rc|'s clients untouched. */
int prd_cli_clients_build(prd_relay_config *rc, const prd_opts *o, char *err,
                          size_t errlen);

/* prd_cli_config_release frees what the CLI allocated into |rc| at build
 * time (the clients table) and leaves those fields empty. */
void prd_cli_config_release(prd_relay_config *rc);

#endif
