/* SPDX-License-Identifier: GPL-3.0-only */
/* sd_notify(3) for Type=notify systemd units; see notify.h. */
#include "notify.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#ifdef PRD_HAVE_LIBSYSTEMD
#  include <systemd/sd-daemon.h>
#endif

#ifndef PRD_HAVE_LIBSYSTEMD
/* The protocol of sd_notify(3): one datagram of newline-separated
 * assignments to the AF_UNIX socket named by $NOTIFY_SOCKET (a leading
 * '@' names an abstract socket). */
static void notify_send(const char *msg) {
  const char *path = getenv("NOTIFY_SOCKET");
  struct sockaddr_un sa;
  size_t n;
  int fd;

  if (path == NULL || (path[0] != '/' && path[0] != '@')) {
    return;
  }
  n = strlen(path);
  if (n >= sizeof(sa.sun_path)) {
    return;
  }
  memset(&sa, 0, sizeof(sa));
  sa.sun_family = AF_UNIX;
  memcpy(sa.sun_path, path, n);
  if (path[0] == '@') {
    sa.sun_path[0] = '\0';
  }
  fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return;
  }
  if (sendto(fd, msg, strlen(msg), MSG_NOSIGNAL, (struct sockaddr *)&sa,
             (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n)) < 0) {
    /* Nothing to do: the service manager went away or refuses. */
  }
  close(fd);
}
#endif

void prd_notify(const char *fmt, ...) {
  char msg[512];
  va_list ap;
  int saved = errno;

  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
#ifdef PRD_HAVE_LIBSYSTEMD
  sd_notify(0, msg);
#else
  notify_send(msg);
#endif
  errno = saved;
}

uint64_t prd_notify_watchdog_usec(void) {
#ifdef PRD_HAVE_LIBSYSTEMD
  uint64_t usec = 0;
  return sd_watchdog_enabled(0, &usec) > 0 ? usec : 0;
#else
  const char *pid = getenv("WATCHDOG_PID");
  const char *usec = getenv("WATCHDOG_USEC");
  char *end;
  unsigned long long v;

  if (usec == NULL || (pid != NULL && strtol(pid, NULL, 10) != getpid())) {
    return 0;
  }
  v = strtoull(usec, &end, 10);
  return *end == '\0' ? (uint64_t)v : 0;
#endif
}
