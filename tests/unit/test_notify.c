/* SPDX-License-Identifier: GPL-3.0-only */
/* Unit tests of the built-in sd_notify(3) client of src/common/notify.c,
 * the one used when libsystemd is not found: compiled here without
 * PRD_HAVE_LIBSYSTEMD, under other names. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#undef PRD_HAVE_LIBSYSTEMD
#define prd_notify builtin_notify
#define prd_notify_watchdog_usec builtin_watchdog_usec
#include "../../src/common/notify.c"

/* sink binds a datagram socket at |name| (a path, or "@x" abstract). */
static int sink(const char *name) {
  struct sockaddr_un sa;
  size_t n = strlen(name);
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  struct timeval tv = {2, 0};

  assert_true(fd >= 0);
  memset(&sa, 0, sizeof(sa));
  sa.sun_family = AF_UNIX;
  memcpy(sa.sun_path, name, n);
  if (name[0] == '@') {
    sa.sun_path[0] = '\0';
  } else {
    unlink(name);
  }
  assert_int_equal(
      bind(fd, (struct sockaddr *)&sa,
           (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n)),
      0);
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  return fd;
}

static void expect_msg(int fd, const char *want) {
  char buf[600];
  ssize_t n = recv(fd, buf, sizeof(buf) - 1, 0);
  assert_true(n > 0);
  buf[n] = '\0';
  assert_string_equal(buf, want);
}

static void test_notify_path_and_abstract(void **state) {
  char path[64], abstract[64];
  int fd;
  (void)state;

  snprintf(path, sizeof(path), "/tmp/prd-test-notify-%d", (int)getpid());
  fd = sink(path);
  setenv("NOTIFY_SOCKET", path, 1);
  builtin_notify("READY=1\nSTATUS=listening on %s", "127.0.0.1:443");
  expect_msg(fd, "READY=1\nSTATUS=listening on 127.0.0.1:443");
  builtin_notify("STOPPING=1");
  expect_msg(fd, "STOPPING=1");
  close(fd);
  unlink(path);

  snprintf(abstract, sizeof(abstract), "@prd-test-notify-%d", (int)getpid());
  fd = sink(abstract);
  setenv("NOTIFY_SOCKET", abstract, 1);
  builtin_notify("WATCHDOG=1");
  expect_msg(fd, "WATCHDOG=1");
  close(fd);

  /* No socket, or a relative name: nothing happens, nothing breaks. */
  unsetenv("NOTIFY_SOCKET");
  builtin_notify("READY=1");
  setenv("NOTIFY_SOCKET", "relative", 1);
  builtin_notify("READY=1");
  unsetenv("NOTIFY_SOCKET");
}

static void test_notify_watchdog(void **state) {
  char pid[16];
  (void)state;

  unsetenv("WATCHDOG_USEC");
  unsetenv("WATCHDOG_PID");
  assert_int_equal(builtin_watchdog_usec(), 0);
  setenv("WATCHDOG_USEC", "2000000", 1);
  assert_int_equal(builtin_watchdog_usec(), 2000000);
  snprintf(pid, sizeof(pid), "%d", (int)getpid());
  setenv("WATCHDOG_PID", pid, 1);
  assert_int_equal(builtin_watchdog_usec(), 2000000);
  /* Meant for another process (a parent's environment). */
  setenv("WATCHDOG_PID", "1", 1);
  assert_int_equal(builtin_watchdog_usec(), 0);
  unsetenv("WATCHDOG_PID");
  setenv("WATCHDOG_USEC", "12x", 1);
  assert_int_equal(builtin_watchdog_usec(), 0);
  unsetenv("WATCHDOG_USEC");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_notify_path_and_abstract),
      cmocka_unit_test(test_notify_watchdog),
  };

  return cmocka_run_group_tests_name("notify", tests, NULL, NULL);
}
