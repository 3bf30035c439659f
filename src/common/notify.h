/* SPDX-License-Identifier: GPL-3.0-only */
/* The systemd service notification protocol (sd_notify(3)): READY=1,
 * STOPPING=1, STATUS=..., WATCHDOG=1 for Type=notify units. Through
 * libsystemd when built with it, else a datagram to $NOTIFY_SOCKET written
 * here (the protocol is the same). Without $NOTIFY_SOCKET nothing is sent. */
#ifndef PRD_NOTIFY_H
#define PRD_NOTIFY_H

#include <stdint.h>

/* prd_notify sends one notification, e.g. "READY=1\nSTATUS=listening".
 * Failures are ignored: a notification is a courtesy to the service
 * manager. */
void prd_notify(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* prd_notify_watchdog_usec returns the watchdog interval systemd asks for
 * (WatchdogSec=, via $WATCHDOG_USEC for this process), or 0 when there is
 * none; WATCHDOG=1 should then be sent at about half of it. */
uint64_t prd_notify_watchdog_usec(void);

#endif
