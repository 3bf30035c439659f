/* SPDX-License-Identifier: GPL-3.0-only */
/* PROXY protocol v1/v2 header written to the destination before any payload
 * (HAProxy "The PROXY protocol" versions 1 and 2). */
#ifndef PRD_PROXY_H
#define PRD_PROXY_H

#include <stddef.h>
#include <stdint.h>

#include "../codec/codec.h"

#define PRD_PROXY_MAX 232

/* prd_proxy_encode writes the header for |version| (1 or 2) describing the
 * user (hd->src) and the address the user connected to (hd->dst) into |dest|.
 * Without a destination, or with mixed families, it writes "PROXY UNKNOWN"
 * (v1) or a LOCAL command (v2). Returns the length, or 0 when |destlen| is too
 * small or |version| is unknown. */
size_t prd_proxy_encode(uint8_t *dest, size_t destlen, int version,
                        const prd_stream_header *hd);

#endif
