/* SPDX-License-Identifier: GPL-3.0-only */
/* The server's clients file (src/cli/clients.c, spec/06-files-and-cli.md
 * §4.1): the table it makes, its one-line FILE:LINE errors, its
 * permissions, and the client "default" of --quic-psk beside it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/clients.h"

static char g_dir[64];

/* put writes |text| to |name| in the scratch directory with |mode|;
 * returns its path (one of a few static buffers). */
static const char *put(const char *name, const char *text, unsigned mode) {
  static char path[8][128];
  static int next;
  char *p = path[next++ % 8];
  FILE *f;

  snprintf(p, sizeof(path[0]), "%s/%s", g_dir, name);
  f = fopen(p, "wb");
  assert_non_null(f);
  assert_int_equal(fwrite(text, 1, strlen(text), f), strlen(text));
  fclose(f);
  assert_int_equal(chmod(p, mode), 0);
  return p;
}

static int group_setup(void **state) {
  (void)state;
  snprintf(g_dir, sizeof(g_dir), "/tmp/prd-test-clients-XXXXXX");
  if (mkdtemp(g_dir) == NULL) {
    return -1;
  }
  put("a.psk", "alice-key-0123456789\n", 0600);
  put("b.psk", "bob-key-0123456789\r\n", 0600);
  put("short.psk", "short", 0600);
  put("empty.psk", "\n", 0600);
  return 0;
}

static int group_teardown(void **state) {
  char cmd[128];
  (void)state;
  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g_dir);
  return system(cmd) == 0 ? 0 : -1;
}

/* spec/06-files-and-cli.md §4.1: names, keys (one trailing LF or CR LF
 * removed, paths from the file's directory), services, allow=, comments
 * and blank lines. */
static void test_clients_parse(void **state) {
  char abs[200], text[600], err[512];
  prd_relay_client *cl = NULL;
  size_t n = 0;
  const char *path;

  (void)state;
  snprintf(abs, sizeof(abs), "%s/b.psk", g_dir);
  snprintf(text, sizeof(text),
           "# the clients\n"
           "\n"
           "alice psk-file=a.psk services=web,ssh\n"
           "  \t# indented comment\n"
           "bob\tpsk-file=%s   services=* allow=192.0.2.0/24 allow=::1\r\n"
           "c.a_r-1 services=web psk-file=short.psk",
           abs);
  path = put("clients", text, 0600);
  assert_int_equal(prd_clients_parse(&cl, &n, path, err, sizeof(err)), 0);
  assert_int_equal(n, 3);
  assert_string_equal(cl[0].name, "alice");
  assert_int_equal(cl[0].psklen, 20);
  assert_memory_equal(cl[0].psk, "alice-key-0123456789", 20);
  assert_int_equal(cl[0].all_services, 0);
  assert_int_equal(cl[0].nservices, 2);
  assert_string_equal(cl[0].services[0], "web");
  assert_string_equal(cl[0].services[1], "ssh");
  assert_int_equal(cl[0].nallow, 0);
  assert_string_equal(cl[1].name, "bob");
  assert_int_equal(cl[1].psklen, 18);
  assert_memory_equal(cl[1].psk, "bob-key-0123456789", 18);
  assert_int_equal(cl[1].all_services, 1);
  assert_int_equal(cl[1].nallow, 2);
  assert_int_equal(cl[1].allow[0].family, 4);
  assert_int_equal(cl[1].allow[0].bits, 24);
  assert_int_equal(cl[1].allow[1].family, 6);
  assert_int_equal(cl[1].allow[1].bits, 128);
  assert_string_equal(cl[2].name, "c.a_r-1");
  assert_int_equal(cl[2].psklen, 5);
  prd_clients_free(cl, n);
  prd_clients_free(NULL, 0);
}

/* Every error is one line naming FILE:LINE, and nothing is returned. */
static void test_clients_errors(void **state) {
  static const struct {
    const char *text;
    int line;
    const char *what;
  } cases[] = {
      {"-x psk-file=a.psk services=*\n", 1, "invalid client name"},
      {"#\n.x psk-file=a.psk services=*\n", 2, "invalid client name"},
      {"a/b psk-file=a.psk services=*\n", 1, "invalid client name"},
      {"x psk-file=a.psk\n", 1, "services= is required"},
      {"x services=*\n", 1, "psk-file= is required"},
      {"x psk-file=a.psk services=* psk-file=b.psk\n", 1, "given twice"},
      {"x psk-file=a.psk services=* services=web\n", 1, "given twice"},
      {"x psk-file=a.psk services=web,,ssh\n", 1, "invalid service name"},
      {"x psk-file=a.psk services=web,web\n", 1, "listed twice"},
      {"x psk-file=a.psk services=* allow=300.1.1.1\n", 1, "invalid allow"},
      {"x psk-file=a.psk services=* allow=10.0.0.0/33\n", 1, "invalid allow"},
      {"x psk-file=a.psk services=* color=red\n", 1, "unknown field \"color\""},
      {"x psk-file=missing.psk services=*\n", 1, "cannot read psk-file"},
      {"x psk-file=empty.psk services=*\n", 1, "empty PSK refused"},
      {"x psk-file= services=*\n", 1, "needs a path"},
      {"x psk-file=a.psk services=*\n\ny psk-file=b.psk services=*\n"
       "x psk-file=b.psk services=web\n",
       4, "client x defined twice"},
  };
  char want[300], err[512];
  prd_relay_client *cl;
  size_t n, i;
  const char *path;

  (void)state;
  for (i = 0; i < sizeof(cases) / sizeof(cases[0]); ++i) {
    path = put("bad-clients", cases[i].text, 0600);
    cl = (prd_relay_client *)1;
    n = 99;
    err[0] = '\0';
    assert_int_equal(prd_clients_parse(&cl, &n, path, err, sizeof(err)), -1);
    assert_null(cl);
    assert_int_equal(n, 0);
    snprintf(want, sizeof(want), "%s:%d: ", path, cases[i].line);
    if (strncmp(err, want, strlen(want)) != 0 ||
        strstr(err, cases[i].what) == NULL || strchr(err, '\n') != NULL) {
      print_error("case %zu: got \"%s\", want \"%s...%s\"\n", i, err, want,
                  cases[i].what);
      fail();
    }
  }
}

/* spec/06-files-and-cli.md §4.1: like key.der, a clients file group or
 * others may read is refused, with the fix; a missing one is named. */
static void test_clients_permissions(void **state) {
  char err[512];
  prd_relay_client *cl;
  size_t n;
  const char *path;

  (void)state;
  path = put("loose-clients", "x psk-file=a.psk services=*\n", 0640);
  assert_int_equal(prd_clients_parse(&cl, &n, path, err, sizeof(err)), -1);
  assert_non_null(strstr(err, path));
  assert_non_null(strstr(err, "readable by group/others (mode 0640)"));
  assert_non_null(strstr(err, "chmod 600"));
  path = put("loose-clients", "x psk-file=a.psk services=*\n", 0604);
  assert_int_equal(prd_clients_parse(&cl, &n, path, err, sizeof(err)), -1);
  assert_non_null(strstr(err, "mode 0604"));
  assert_int_equal(
      prd_clients_parse(&cl, &n, "/nonexistent/clients", err, sizeof(err)), -1);
  assert_non_null(strstr(err, "/nonexistent/clients: cannot read"));
}

/* spec/06-files-and-cli.md §4.1: --quic-psk makes the client "default"
 * (services=*); with a line named default it is an error; none at all is
 * an error. */
static void test_clients_build(void **state) {
  static prd_opts o;
  prd_relay_config rc;
  char err[512];
  uint8_t psk[] = "the-default-psk-0123";

  (void)state;
  memset(&o, 0, sizeof(o));
  memset(&rc, 0, sizeof(rc));
  o.psk = psk;
  o.psklen = sizeof(psk) - 1;
  assert_int_equal(prd_cli_clients_build(&rc, &o, err, sizeof(err)), 0);
  assert_int_equal(rc.nclients, 1);
  assert_string_equal(rc.clients[0].name, "default");
  assert_int_equal(rc.clients[0].all_services, 1);
  assert_int_equal(rc.clients[0].psklen, sizeof(psk) - 1);
  assert_true(rc.clients[0].psk != psk); /* a copy */
  prd_cli_config_release(&rc);
  assert_null(rc.clients);
  assert_int_equal(rc.nclients, 0);

  snprintf(o.clients_file, sizeof(o.clients_file), "%s",
           put("c1", "alice psk-file=a.psk services=web\n", 0600));
  assert_int_equal(prd_cli_clients_build(&rc, &o, err, sizeof(err)), 0);
  assert_int_equal(rc.nclients, 2);
  assert_string_equal(rc.clients[0].name, "alice");
  assert_string_equal(rc.clients[1].name, "default");
  prd_cli_config_release(&rc);

  snprintf(o.clients_file, sizeof(o.clients_file), "%s",
           put("c2", "default psk-file=a.psk services=web\n", 0600));
  assert_int_equal(prd_cli_clients_build(&rc, &o, err, sizeof(err)), -1);
  assert_non_null(strstr(err, "a client named default and --quic-psk"));
  assert_null(rc.clients);
  /* Without --quic-psk, the line "default" is the nameless client. */
  o.psk = NULL;
  o.psklen = 0;
  assert_int_equal(prd_cli_clients_build(&rc, &o, err, sizeof(err)), 0);
  assert_int_equal(rc.nclients, 1);
  assert_int_equal(rc.clients[0].all_services, 0);
  prd_cli_config_release(&rc);

  snprintf(o.clients_file, sizeof(o.clients_file), "%s",
           put("c3", "# nobody\n", 0600));
  assert_int_equal(prd_cli_clients_build(&rc, &o, err, sizeof(err)), -1);
  assert_non_null(strstr(err, "no client"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_clients_parse),
      cmocka_unit_test(test_clients_errors),
      cmocka_unit_test(test_clients_permissions),
      cmocka_unit_test(test_clients_build),
  };
  return cmocka_run_group_tests_name("clients", tests, group_setup,
                                     group_teardown);
}
