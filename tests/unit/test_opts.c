/* SPDX-License-Identifier: GPL-3.0-only */
/* Unit tests of the command line and config file parser (README "Options"). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/opts.h"
#include "cli/opts_internal.h"

/* Output of the last parse() call. */
static char *g_out;
static char *g_err;
static char g_dir[64]; /* scratch directory of this test run */

#define S PRD_ROLE_SERVER
#define C PRD_ROLE_CLIENT

/* ARGV builds a NULL-terminated argv with a program name in front. */
#define ARGV(...) ((const char *[]){"prog", __VA_ARGS__, NULL})

/* parse_cfg runs the parser on |argv| with |cfg| (if not NULL) as the config
 * text, keeping stdout and stderr in g_out and g_err. */
static int parse_cfg(prd_opts *o, prd_role role, const char **argv,
                     const char *cfg) {
  size_t outlen;
  size_t errlen;
  prd_opts_io io;
  int argc = 0;
  int rv;

  free(g_out);
  free(g_err);
  g_out = NULL;
  g_err = NULL;
  memset(&io, 0, sizeof(io));
  io.out = open_memstream(&g_out, &outlen);
  io.err = open_memstream(&g_err, &errlen);
  assert_non_null(io.out);
  assert_non_null(io.err);
  if (cfg != NULL) {
    io.config_buf = cfg;
    io.config_len = strlen(cfg);
    io.config_name = "test.conf";
  }
  while (argv[argc] != NULL) {
    ++argc;
  }
  rv = prd_opts_parse_io(o, role, argc, (char **)argv, &io);
  fclose(io.out);
  fclose(io.err);
  assert_true(rv == -1 || rv == 0 || rv == 1);
  if (rv != 0) {
    /* On help, version and errors no PSK is left behind. */
    assert_null(o->psk);
    assert_int_equal(o->psklen, 0);
  }
  return rv;
}

static int parse(prd_opts *o, prd_role role, const char **argv) {
  return parse_cfg(o, role, argv, NULL);
}

/* expect_error_ checks that parsing fails with one error line that contains
 * every string given (NULL-terminated; expect_error adds the NULL). */
static void expect_error_(prd_role role, const char **argv, ...) {
  prd_opts o;
  va_list ap;
  const char *want;

  assert_int_equal(parse(&o, role, argv), -1);
  assert_non_null(strstr(g_err, role == S ? "portredirect_server: "
                                          : "portredirect_client: "));
  va_start(ap, argv);
  while ((want = va_arg(ap, const char *)) != NULL) {
    if (strstr(g_err, want) == NULL) {
      print_error("stderr %s lacks %s\n", g_err, want);
      fail();
    }
  }
  va_end(ap);
  assert_string_equal(g_out, "");
  prd_opts_free(&o);
}

#define expect_error(role, argv, ...)                                          \
  expect_error_((role), (argv), __VA_ARGS__, (const char *)NULL)

/* write_file creates |name| in the scratch directory with |len| bytes. */
static const char *write_file(const char *name, const char *data, size_t len) {
  static char path[8][128];
  static int next;
  char *p = path[next++ % 8];
  FILE *f;

  snprintf(p, sizeof(path[0]), "%s/%s", g_dir, name);
  f = fopen(p, "wb");
  assert_non_null(f);
  assert_int_equal(fwrite(data, 1, len, f), len);
  fclose(f);
  return p;
}

static const char *write_text(const char *name, const char *text) {
  return write_file(name, text, strlen(text));
}

static int group_setup(void **state) {
  (void)state;
  snprintf(g_dir, sizeof(g_dir), "/tmp/prd-test-opts-XXXXXX");
  return mkdtemp(g_dir) != NULL ? 0 : -1;
}

static int group_teardown(void **state) {
  char cmd[128];
  (void)state;
  free(g_out);
  free(g_err);
  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g_dir);
  return system(cmd) == 0 ? 0 : -1;
}

/* Every test starts from a known environment. */
static int setup(void **state) {
  (void)state;
  unsetenv("PORTREDIRECT_PSK");
  unsetenv("SSLKEYLOGFILE");
  setenv("XDG_CONFIG_HOME", "/xdg", 1);
  setenv("HOME", "/home/test", 1);
  return 0;
}

static void test_opts_defaults_server(void **state) {
  prd_opts o;
  (void)state;

  assert_int_equal(
      parse(&o, S,
            ARGV("--local-port", "8443", "--quic-psk", "0123456789abcdef")),
      0);
  assert_int_equal(o.role, PRD_ROLE_SERVER);
  assert_string_equal(o.local_host, "127.0.0.1");
  assert_int_equal(o.local_port, 8443);
  assert_string_equal(o.quic_server_host, "127.0.0.1");
  assert_int_equal(o.quic_server_port, 4433);
  assert_int_equal(o.n_cert_hostnames, 0);
  assert_int_equal(o.pending_timeout_ms, 5000);
  assert_int_equal(o.auth_timeout_ms, 5000);
  assert_int_equal(o.max_clients, 16);
  assert_int_equal(o.max_connections, 20000);
  assert_int_equal(o.grace_ms, 10000);
  assert_int_equal(o.print_metrics, 0);
  assert_int_equal(o.print_fingerprint, 0);
  assert_int_equal(o.log_level, PRD_LOG_INFO);
  assert_string_equal(o.config_dir, "/xdg/portredirect");
  assert_string_equal(o.config_file, "");
  assert_string_equal(o.keylog_file, "");
  assert_string_equal(o.metrics_listen, "");
  assert_int_equal(o.max_udp_payload, 0);
  assert_int_equal(o.congestion_control, PRD_CC_BBR2);
  assert_int_equal(o.idle_timeout_ms, 30000);
  assert_int_equal(o.keepalive_ms, 10000);
  assert_int_equal(o.psklen, 16);
  assert_memory_equal(o.psk, "0123456789abcdef", 16);
  assert_int_equal(o.psk_from_argv, 1);
  assert_int_equal(o.n_remotes, 0);
  assert_string_equal(g_out, "");
  assert_string_equal(g_err, "");
  prd_opts_free(&o);
}

static void test_opts_defaults_client(void **state) {
  prd_opts o;
  (void)state;

  setenv("PORTREDIRECT_PSK", "from-env", 1);
  assert_int_equal(parse(&o, C, ARGV("--destination-port", "22")), 0);
  assert_int_equal(o.role, PRD_ROLE_CLIENT);
  assert_string_equal(o.destination_host, "127.0.0.1");
  assert_int_equal(o.destination_port, 22);
  assert_int_equal(o.n_remotes, 1);
  assert_string_equal(o.remotes[0].host, "127.0.0.1");
  assert_int_equal(o.remotes[0].port, 4433);
  assert_string_equal(o.remote_hostname_match, "");
  assert_string_equal(o.quic_local_host, "");
  assert_int_equal(o.quic_local_port, 0);
  assert_string_equal(o.server_cert, "");
  assert_int_equal(o.trust_on_first_use, 0);
  assert_int_equal(o.proxy_protocol, PRD_PROXY_NONE);
  assert_int_equal(o.max_streams, 32768);
  assert_int_equal(o.provide_metrics, 0);
  assert_string_equal(o.metrics_listen, "");
  assert_int_equal(o.idle_timeout_ms, 30000);
  assert_int_equal(o.keepalive_ms, 10000);
  assert_int_equal(o.grace_ms, 10000);
  assert_int_equal(o.psklen, 8);
  assert_memory_equal(o.psk, "from-env", 8);
  assert_int_equal(o.psk_from_argv, 0);
  prd_opts_free(&o);
}

/* README "Usage": the original's own server invocation. */
static void test_opts_original_server(void **state) {
  prd_opts o;
  (void)state;

  assert_int_equal(parse(&o, S,
                         ARGV("--local-host", "127.0.0.1", "--local-port",
                              "10001", "--quic-psk", "ilovespezifisch")),
                   0);
  assert_string_equal(o.local_host, "127.0.0.1");
  assert_int_equal(o.local_port, 10001);
  assert_string_equal(o.quic_server_host, "127.0.0.1");
  assert_int_equal(o.quic_server_port, 4433);
  assert_int_equal(o.psklen, 15);
  assert_memory_equal(o.psk, "ilovespezifisch", 15);
  assert_int_equal(o.psk_from_argv, 1);
  assert_string_equal(g_err, ""); /* warnings are the caller's job */
  prd_opts_free(&o);
}

/* README "Usage": the original's own client invocation. */
static void test_opts_original_client(void **state) {
  prd_opts o;
  (void)state;

  assert_int_equal(
      parse(&o, C,
            ARGV("--destination-host", "127.0.0.1", "--destination-port",
                 "5201", "--quic-remote-host", "127.0.0.1",
                 "--quic-remote-port", "4433", "--quic-remote-hostname-match",
                 "localhost", "--quic-psk", "ilovespezifisch",
                 "--provide-metrics")),
      0);
  assert_string_equal(o.destination_host, "127.0.0.1");
  assert_int_equal(o.destination_port, 5201);
  assert_int_equal(o.n_remotes, 1);
  assert_string_equal(o.remotes[0].host, "127.0.0.1");
  assert_int_equal(o.remotes[0].port, 4433);
  assert_string_equal(o.remote_hostname_match, "localhost");
  assert_int_equal(o.psklen, 15);
  assert_int_equal(o.psk_from_argv, 1);
  assert_int_equal(o.provide_metrics, 1);
  assert_string_equal(o.metrics_listen, "127.0.0.1:9898");
  assert_string_equal(g_err, "");
  prd_opts_free(&o);
}

static void test_opts_equals_form(void **state) {
  prd_opts o;
  (void)state;

  assert_int_equal(
      parse(&o, C,
            ARGV("--destination-port=5201", "--quic-remote-host=::1",
                 "--quic-remote-port=4434", "--quic-psk=a=b",
                 "--log-level=debug", "--congestion-control=bbr2",
                 "--proxy-protocol=v2", "--trust-on-first-use=yes",
                 "--max-streams=1000000", "--keylog-file=/tmp/k",
                 "--queue-bound=Yes")),
      0);
  assert_int_equal(o.destination_port, 5201);
  assert_string_equal(o.remotes[0].host, "::1");
  assert_int_equal(o.remotes[0].port, 4434);
  assert_int_equal(o.psklen, 3);
  assert_memory_equal(o.psk, "a=b", 3);
  assert_int_equal(o.log_level, PRD_LOG_DEBUG);
  assert_int_equal(o.congestion_control, PRD_CC_BBR2);
  assert_int_equal(o.proxy_protocol, PRD_PROXY_V2);
  assert_int_equal(o.trust_on_first_use, 1);
  assert_int_equal(o.max_streams, 1000000);
  assert_string_equal(o.keylog_file, "/tmp/k");
  assert_int_equal(o.queue_bound, 1);
  prd_opts_free(&o);

  assert_int_equal(parse(&o, C,
                         ARGV("--destination-port", "1", "--quic-psk", "x",
                              "--trust-on-first-use=false")),
                   0);
  assert_int_equal(o.trust_on_first_use, 0);
  assert_int_equal(o.queue_bound, 1); /* on by default */
  prd_opts_free(&o);

  assert_int_equal(parse(&o, C,
                         ARGV("--destination-port", "1", "--quic-psk", "x",
                              "--queue-bound", "off")),
                   0);
  assert_int_equal(o.queue_bound, 0);
  prd_opts_free(&o);
}

/* Each bad value: -1, one line naming the flag and quoting the value. */
static void test_opts_bad_values(void **state) {
  (void)state;

  expect_error(S, ARGV("--local-port", "70000"),
               "--local-port: ", "invalid port \"70000\" (expected 1-65535)");
  expect_error(S, ARGV("--local-port", "0"), "--local-port: ", "\"0\"");
  expect_error(S, ARGV("--local-port", "-1"), "--local-port: ", "\"-1\"");
  expect_error(S, ARGV("--local-port", " 80"), "--local-port: ");
  expect_error(S, ARGV("--local-port", "80x"), "--local-port: ");
  expect_error(S, ARGV("--local-port", "99999999999999999999"),
               "--local-port: ");
  expect_error(S, ARGV("--quic-server-port", "65536"), "--quic-server-port: ");
  expect_error(C, ARGV("--quic-local-port", "65536"),
               "--quic-local-port: ", "expected 0-65535");
  expect_error(C, ARGV("--quic-remote-port", "0"), "--quic-remote-port: ");
  expect_error(C, ARGV("--destination-port", "http"),
               "--destination-port: ", "\"http\"");
  expect_error(S, ARGV("--local-host", "bad_host"),
               "--local-host: ", "invalid host \"bad_host\"");
  expect_error(S, ARGV("--quic-server-host", "256.1.1.1"),
               "--quic-server-host: ");
  expect_error(C, ARGV("--destination-host", ""), "--destination-host: ");
  expect_error(C, ARGV("--quic-remote-hostname-match", "a b"),
               "--quic-remote-hostname-match: ");
  expect_error(S, ARGV("--quic-cert-hostname", "-x.org"),
               "--quic-cert-hostname: ");
  expect_error(C, ARGV("--max-streams", "0"),
               "--max-streams: ", "expected 1-1000000");
  expect_error(C, ARGV("--max-streams", "1000001"), "--max-streams: ");
  expect_error(S, ARGV("--max-clients", "0"), "--max-clients: ");
  expect_error(S, ARGV("--max-connections", "x"), "--max-connections: ");
  expect_error(S, ARGV("--max-udp-payload", "1199"),
               "--max-udp-payload: ", "expected 0 or 1200-65527");
  expect_error(C, ARGV("--max-udp-payload", "65528"), "--max-udp-payload: ");
  expect_error(S, ARGV("--idle-timeout", "0"), "--idle-timeout: ",
               "invalid duration \"0\" (expected 1-600 seconds)");
  expect_error(S, ARGV("--idle-timeout", "601"), "--idle-timeout: ");
  expect_error(S, ARGV("--idle-timeout", "0.5"), "--idle-timeout: ");
  expect_error(S, ARGV("--keepalive", "-1"), "--keepalive: ");
  expect_error(S, ARGV("--keepalive", "10ms"), "--keepalive: ");
  expect_error(S, ARGV("--pending-timeout", "1e3"), "--pending-timeout: ");
  expect_error(S, ARGV("--pending-timeout", "1.5ms"), "--pending-timeout: ");
  expect_error(S, ARGV("--pending-timeout", "0.0001"), "--pending-timeout: ");
  expect_error(S, ARGV("--pending-timeout", ".5"), "--pending-timeout: ");
  expect_error(S, ARGV("--auth-timeout", "5m"), "--auth-timeout: ");
  expect_error(C, ARGV("--shutdown-grace", "3601"), "--shutdown-grace: ");
  expect_error(S, ARGV("--congestion-control", "vegas"),
               "--congestion-control: ", "\"vegas\"");
  expect_error(S, ARGV("--log-level", "loud"), "--log-level: ", "\"loud\"");
  expect_error(C, ARGV("--queue-bound", "maybe"), "--queue-bound: ",
               "invalid value \"maybe\" (expected on or off)");
  expect_error(C, ARGV("--proxy-protocol", "v3"),
               "--proxy-protocol: ", "\"v3\"");
  expect_error(C, ARGV("--trust-on-first-use=maybe"),
               "--trust-on-first-use: ", "\"maybe\"");
  expect_error(S, ARGV("--metrics-listen", "::1:9898"),
               "--metrics-listen: ", "brackets");
  expect_error(S, ARGV("--metrics-listen", "localhost"),
               "--metrics-listen: ", "\"localhost\"");
  expect_error(S, ARGV("--metrics-listen", "localhost:0"),
               "--metrics-listen: ");
  expect_error(S, ARGV("--metrics-listen", ":9898"), "--metrics-listen: ");
  expect_error(C, ARGV("--quic-remote", "[::1]4433"), "--quic-remote: ");
  expect_error(C, ARGV("--quic-remote", "[1.2.3.4]:4433"), "--quic-remote: ");
  expect_error(C, ARGV("--quic-remote", "host:"), "--quic-remote: ");
  expect_error(S, ARGV("--config-dir", ""), "--config-dir: ");
  expect_error(S, ARGV("--quic-psk-file", ""), "--quic-psk-file: ");
  /* Control bytes are escaped so that the message stays on one line. */
  expect_error(S, ARGV("--local-host", "a\nb"), "\"a\\x0ab\"");
}

static void test_opts_usage_errors(void **state) {
  (void)state;

  expect_error(S, ARGV("--foo"), "unknown option \"--foo\"",
               "Try 'portredirect_server --help'.");
  expect_error(C, ARGV("-x"), "unknown option \"-x\"",
               "Try 'portredirect_client --help'.");
  expect_error(S, ARGV("--local-port", "1", "stray"),
               "unexpected argument \"stray\"");
  expect_error(S, ARGV("--", "--help"), "unexpected argument \"--help\"");
  expect_error(S, ARGV("--local-port"), "--local-port: missing value (PORT)");
  expect_error(S, ARGV("--destination-port", "1"),
               "--destination-port is an option of portredirect_client");
  expect_error(C, ARGV("--local-port", "1"),
               "--local-port is an option of portredirect_server");
  expect_error(C, ARGV("--print-metrics"), "--print-metrics");
  expect_error(S, ARGV("--provide-metrics"), "--provide-metrics");
  expect_error(S, ARGV("--help=1"), "--help: takes no value");
  expect_error(S, ARGV("--loc", "1"), "unknown option \"--loc\"");
  expect_error(S, ARGV("--quic-psk", "x"), "--local-port is required");
  expect_error(C, ARGV("--quic-psk", "x"), "--destination-port is required");
  expect_error(S, ARGV("--local-port", "1"),
               "--quic-psk, --quic-psk-file or PORTREDIRECT_PSK is required");
}

/* A mistyped option may carry the PSK: only its name is quoted. */
static void test_opts_unknown_option_hides_value(void **state) {
  prd_opts o;
  (void)state;

  assert_int_equal(parse(&o, S, ARGV("--quic-pks=topsecret")), -1);
  assert_non_null(strstr(g_err, "unknown option \"--quic-pks\""));
  assert_null(strstr(g_err, "topsecret"));
  assert_int_equal(parse(&o, S, ARGV("--quic-psk", "", "--local-port", "1")),
                   -1);
  assert_non_null(strstr(g_err, "--quic-psk: empty PSK refused"));
}

static void test_opts_ipv6_brackets(void **state) {
  prd_opts o;
  (void)state;

  assert_int_equal(
      parse(&o, S,
            ARGV("--local-host", "[::1]", "--local-port", "1",
                 "--quic-server-host", "fe80::1%eth0", "--quic-psk", "k")),
      0);
  assert_string_equal(o.local_host, "::1");
  assert_string_equal(o.quic_server_host, "fe80::1%eth0");
  prd_opts_free(&o);

  assert_int_equal(
      parse(&o, C,
            ARGV("--destination-host", "[2001:db8::7]", "--destination-port",
                 "1", "--quic-remote-host", "::ffff:1.2.3.4",
                 "--quic-local-host", "[::]", "--metrics-listen", "[::1]:9898",
                 "--quic-psk", "k")),
      0);
  assert_string_equal(o.destination_host, "2001:db8::7");
  assert_string_equal(o.remotes[0].host, "::ffff:1.2.3.4");
  assert_string_equal(o.quic_local_host, "::");
  assert_string_equal(o.metrics_listen, "[::1]:9898");
  prd_opts_free(&o);

  expect_error(S, ARGV("--local-host", "[::1"), "--local-host: ");
  expect_error(S, ARGV("--local-host", "::1]"), "--local-host: ");
  expect_error(S, ARGV("--local-host", "[127.0.0.1]"), "--local-host: ");
  expect_error(S, ARGV("--local-host", "[example.org]"), "--local-host: ");
  expect_error(S, ARGV("--local-host", "fe80::1%"), "--local-host: ");
}

static void test_opts_host_syntax(void **state) {
  static const char *const good[] = {
      "localhost", "example.org", "example.org.", "a-b.c", "xn--bcher-kva.de",
      "1.2.3.4",   "0.0.0.0",     "::",           "a1",    "3com.net"};
  static const char *const bad[] = {
      "",      ".",     "a..b",      "-a",        "a-",      "a-.b",
      "a_b",   "1.2.3", "123",       "1.2.3.4.5", "a b",     "a/b",
      "é.org", "..",    "999.1.1.1", "a.-b",      "exa mple"};
  char long_label[80];
  char long_name[400];
  prd_opts o;
  size_t i;
  (void)state;

  for (i = 0; i < sizeof(good) / sizeof(good[0]); ++i) {
    assert_int_equal(parse(&o, S,
                           ARGV("--local-host", good[i], "--local-port", "1",
                                "--quic-psk", "k")),
                     0);
    assert_string_equal(o.local_host, good[i]);
    prd_opts_free(&o);
  }
  for (i = 0; i < sizeof(bad) / sizeof(bad[0]); ++i) {
    expect_error(S, ARGV("--local-host", bad[i]),
                 "--local-host: ", "invalid host");
  }
  memset(long_label, 'a', 64);
  long_label[64] = '\0';
  expect_error(S, ARGV("--local-host", long_label), "--local-host: ");
  long_label[63] = '\0';
  assert_int_equal(parse(&o, S,
                         ARGV("--local-host", long_label, "--local-port", "1",
                              "--quic-psk", "k")),
                   0);
  prd_opts_free(&o);
  /* 253 bytes is the longest name: 63 + 1 + 63 + 1 + 63 + 1 + 61. */
  snprintf(long_name, sizeof(long_name), "%s.%s.%s.%.61s", long_label,
           long_label, long_label, long_label);
  assert_int_equal(strlen(long_name), 253);
  assert_int_equal(parse(&o, S,
                         ARGV("--local-host", long_name, "--local-port", "1",
                              "--quic-psk", "k")),
                   0);
  assert_string_equal(o.local_host, long_name);
  prd_opts_free(&o);
  strcat(long_name, "a");
  expect_error(S, ARGV("--local-host", long_name), "--local-host: ");
}

static void test_opts_quic_remote_repeat(void **state) {
  prd_opts o;
  (void)state;

  assert_int_equal(
      parse(&o, C,
            ARGV("--destination-port", "1", "--quic-remote", "[::1]:4433",
                 "--quic-remote", "example.org:443", "--quic-remote",
                 "1.2.3.4:65535", "--quic-psk", "k")),
      0);
  assert_int_equal(o.n_remotes, 3);
  assert_string_equal(o.remotes[0].host, "::1");
  assert_int_equal(o.remotes[0].port, 4433);
  assert_string_equal(o.remotes[1].host, "example.org");
  assert_int_equal(o.remotes[1].port, 443);
  assert_string_equal(o.remotes[2].host, "1.2.3.4");
  assert_int_equal(o.remotes[2].port, 65535);
  assert_string_equal(o.remote_hostname_match, "");
  prd_opts_free(&o);

  /* Either order of the conflicting options is refused. */
  expect_error(C, ARGV("--quic-remote", "a.org:1", "--quic-remote-host", "b"),
               "--quic-remote-host: cannot be combined with --quic-remote");
  expect_error(C, ARGV("--quic-remote-port", "1", "--quic-remote", "a.org:1"),
               "--quic-remote: cannot be combined with --quic-remote-port");
  expect_error(C, ARGV("--quic-remote-host", "b", "--quic-remote", "a.org:1"),
               "--quic-remote: cannot be combined with --quic-remote-host");
}

static void test_opts_repeat_limits(void **state) {
  const char *argv[64];
  char vals[20][32];
  prd_opts o;
  int i;
  int n;
  (void)state;

  /* 16 of each are fine, the 17th is refused. */
  for (n = 16; n <= 17; ++n) {
    int k = 0;
    argv[k++] = "prog";
    argv[k++] = "--destination-port";
    argv[k++] = "1";
    argv[k++] = "--quic-psk";
    argv[k++] = "k";
    for (i = 0; i < n; ++i) {
      snprintf(vals[i], sizeof(vals[i]), "h%d.example:%d", i, i + 1);
      argv[k++] = "--quic-remote";
      argv[k++] = vals[i];
    }
    argv[k] = NULL;
    if (n == 16) {
      assert_int_equal(parse(&o, C, argv), 0);
      assert_int_equal(o.n_remotes, 16);
      assert_string_equal(o.remotes[15].host, "h15.example");
      assert_int_equal(o.remotes[15].port, 16);
      prd_opts_free(&o);
    } else {
      assert_int_equal(parse(&o, C, argv), -1);
      assert_non_null(strstr(g_err, "--quic-remote: given more than 16"));
    }
  }
  for (n = 16; n <= 17; ++n) {
    int k = 0;
    argv[k++] = "prog";
    argv[k++] = "--local-port";
    argv[k++] = "1";
    argv[k++] = "--quic-psk";
    argv[k++] = "k";
    for (i = 0; i < n; ++i) {
      snprintf(vals[i], sizeof(vals[i]), "name%d.example", i);
      argv[k++] = "--quic-cert-hostname";
      argv[k++] = vals[i];
    }
    argv[k] = NULL;
    if (n == 16) {
      assert_int_equal(parse(&o, S, argv), 0);
      assert_int_equal(o.n_cert_hostnames, 16);
      assert_string_equal(o.cert_hostnames[0], "name0.example");
      assert_string_equal(o.cert_hostnames[15], "name15.example");
      prd_opts_free(&o);
    } else {
      assert_int_equal(parse(&o, S, argv), -1);
      assert_non_null(
          strstr(g_err, "--quic-cert-hostname: given more than 16"));
    }
  }
}

static void test_opts_durations(void **state) {
  prd_opts o;
  (void)state;

  assert_int_equal(
      parse(&o, S,
            ARGV("--local-port", "1", "--quic-psk", "k", "--pending-timeout",
                 "0.5", "--auth-timeout", "250ms", "--shutdown-grace", "0",
                 "--idle-timeout", "2.25", "--keepalive", "1s")),
      0);
  assert_int_equal(o.pending_timeout_ms, 500);
  assert_int_equal(o.auth_timeout_ms, 250);
  assert_int_equal(o.grace_ms, 0);
  assert_int_equal(o.idle_timeout_ms, 2250);
  assert_int_equal(o.keepalive_ms, 1000);
  prd_opts_free(&o);

  assert_int_equal(
      parse(&o, C,
            ARGV("--destination-port", "1", "--quic-psk", "k", "--idle-timeout",
                 "600", "--keepalive", "0", "--shutdown-grace", "3600")),
      0);
  assert_int_equal(o.idle_timeout_ms, 600000);
  assert_int_equal(o.keepalive_ms, 0);
  assert_int_equal(o.grace_ms, 3600000);
  prd_opts_free(&o);
}

static void test_opts_keepalive_vs_idle(void **state) {
  prd_opts o;
  (void)state;

  expect_error(
      S, ARGV("--local-port", "1", "--quic-psk", "k", "--keepalive", "30"),
      "--keepalive (30000 ms) must be shorter than --idle-timeout "
      "(30000 ms)");
  /* The default keepalive follows a short idle timeout. */
  assert_int_equal(parse(&o, S,
                         ARGV("--local-port", "1", "--quic-psk", "k",
                              "--idle-timeout", "4")),
                   0);
  assert_int_equal(o.keepalive_ms, 2000);
  prd_opts_free(&o);
}

static void test_opts_metrics(void **state) {
  prd_opts o;
  (void)state;

  assert_int_equal(
      parse(&o, C,
            ARGV("--destination-port", "1", "--quic-psk", "k",
                 "--metrics-listen", "0.0.0.0:9000", "--provide-metrics")),
      0);
  assert_int_equal(o.provide_metrics, 1);
  assert_string_equal(o.metrics_listen, "0.0.0.0:9000");
  prd_opts_free(&o);

  assert_int_equal(
      parse(&o, S,
            ARGV("--local-port", "1", "--quic-psk", "k", "--metrics-listen",
                 "localhost:9100", "--print-metrics")),
      0);
  assert_string_equal(o.metrics_listen, "localhost:9100");
  assert_int_equal(o.print_metrics, 1);
  prd_opts_free(&o);
}

/* --quic-tcp-listen and --quic-transport (spec/11-tcp-path.md §3). */
static void test_opts_tcp_path(void **state) {
  prd_opts o;
  (void)state;

  assert_int_equal(parse(&o, S, ARGV("--local-port", "1", "--quic-psk", "k")),
                   0);
  assert_int_equal(o.quic_tcp_off, 0);
  assert_string_equal(o.quic_tcp_host, "");
  prd_opts_free(&o);
  assert_int_equal(parse(&o, S,
                         ARGV("--local-port", "1", "--quic-psk", "k",
                              "--quic-tcp-listen", "[::1]:443")),
                   0);
  assert_string_equal(o.quic_tcp_host, "::1");
  assert_int_equal(o.quic_tcp_port, 443);
  prd_opts_free(&o);
  assert_int_equal(parse(&o, S,
                         ARGV("--local-port", "1", "--quic-psk", "k",
                              "--quic-tcp-listen", "off")),
                   0);
  assert_int_equal(o.quic_tcp_off, 1);
  prd_opts_free(&o);
  expect_error(S,
               ARGV("--local-port", "1", "--quic-psk", "k", "--quic-tcp-listen",
                    "0.0.0.0"),
               "--quic-tcp-listen: ", "\"0.0.0.0\"");
  expect_error(S,
               ARGV("--local-port", "1", "--quic-psk", "k", "--quic-tcp-listen",
                    "h:1,cert=x"),
               "--quic-tcp-listen: ", "HOST:PORT or off");

  assert_int_equal(
      parse(&o, C, ARGV("--destination-port", "1", "--quic-psk", "k")), 0);
  assert_int_equal(o.quic_transport, 0);
  prd_opts_free(&o);
  assert_int_equal(parse(&o, C,
                         ARGV("--destination-port", "1", "--quic-psk", "k",
                              "--quic-transport", "tcp")),
                   0);
  assert_int_equal(o.quic_transport, 2);
  prd_opts_free(&o);
  assert_int_equal(parse(&o, C,
                         ARGV("--destination-port", "1", "--quic-psk", "k",
                              "--quic-udp-probe-interval", "2.5")),
                   0);
  assert_int_equal(o.udp_probe_interval_ms, 2500);
  prd_opts_free(&o);
  expect_error(C,
               ARGV("--destination-port", "1", "--quic-psk", "k",
                    "--quic-udp-probe-interval", "0"),
               "--quic-udp-probe-interval: ", "1-3600 seconds");
  expect_error(C,
               ARGV("--destination-port", "1", "--quic-psk", "k",
                    "--quic-transport", "quic"),
               "--quic-transport: ", "\"quic\"", "auto, udp or tcp");
  /* Each binary has only its own. */
  expect_error(C,
               ARGV("--destination-port", "1", "--quic-psk", "k",
                    "--quic-tcp-listen", "off"),
               "--quic-tcp-listen");
}

static void test_opts_psk_precedence(void **state) {
  const char *f = write_text("psk-a", "from-file\n");
  prd_opts o;
  (void)state;

  setenv("PORTREDIRECT_PSK", "from-env", 1);
  assert_int_equal(parse(&o, S,
                         ARGV("--local-port", "1", "--quic-psk-file", f,
                              "--quic-psk", "from-argv")),
                   0);
  assert_int_equal(o.psklen, 9);
  assert_memory_equal(o.psk, "from-argv", 9);
  assert_int_equal(o.psk_from_argv, 1);
  prd_opts_free(&o);

  assert_int_equal(
      parse(&o, S, ARGV("--local-port", "1", "--quic-psk-file", f)), 0);
  assert_int_equal(o.psklen, 9);
  assert_memory_equal(o.psk, "from-file", 9);
  assert_int_equal(o.psk_from_argv, 0);
  prd_opts_free(&o);

  assert_int_equal(parse(&o, S, ARGV("--local-port", "1")), 0);
  assert_int_equal(o.psklen, 8);
  assert_memory_equal(o.psk, "from-env", 8);
  assert_int_equal(o.psk_from_argv, 0);
  prd_opts_free(&o);
}

/* design.md §5: one trailing "\n" or "\r\n" is stripped, nothing else. */
static void test_opts_psk_file_stripping(void **state) {
  static const struct {
    const char *data;
    size_t len;
    const char *want;
    size_t wantlen;
  } cases[] = {
      {"abc\n", 4, "abc", 3},
      {"abc\r\n", 5, "abc", 3},
      {"abc", 3, "abc", 3},
      {"abc\n\n", 5, "abc\n", 4},
      {"abc\r\n\r\n", 7, "abc\r\n", 5},
      {"abc\r", 4, "abc\r", 4},
      {" abc \n", 6, " abc ", 5},
      {"a\0b\n", 4, "a\0b", 3},
      {"\n\n", 2, "\n", 1},
  };
  prd_opts o;
  size_t i;
  (void)state;

  for (i = 0; i < sizeof(cases) / sizeof(cases[0]); ++i) {
    const char *f = write_file("psk-strip", cases[i].data, cases[i].len);
    assert_int_equal(
        parse(&o, C, ARGV("--destination-port", "1", "--quic-psk-file", f)), 0);
    assert_int_equal(o.psklen, cases[i].wantlen);
    assert_memory_equal(o.psk, cases[i].want, cases[i].wantlen);
    prd_opts_free(&o);
  }
}

static void test_opts_psk_file_errors(void **state) {
  char big[1100];
  char path[128];
  const char *f;
  prd_opts o;
  (void)state;

  snprintf(path, sizeof(path), "%s/no-such-file", g_dir);
  expect_error(S, ARGV("--local-port", "1", "--quic-psk-file", path),
               "--quic-psk-file: cannot read \"", "no-such-file\"",
               "No such file or directory");
  expect_error(S, ARGV("--local-port", "1", "--quic-psk-file", g_dir),
               "--quic-psk-file: cannot read");

  memset(big, 'k', sizeof(big));
  f = write_file("psk-1024", big, 1024);
  assert_int_equal(
      parse(&o, S, ARGV("--local-port", "1", "--quic-psk-file", f)), 0);
  assert_int_equal(o.psklen, 1024);
  prd_opts_free(&o);
  memcpy(big + 1024, "\r\n", 2);
  f = write_file("psk-1024crlf", big, 1026);
  assert_int_equal(
      parse(&o, S, ARGV("--local-port", "1", "--quic-psk-file", f)), 0);
  assert_int_equal(o.psklen, 1024);
  prd_opts_free(&o);
  memset(big, 'k', sizeof(big));
  f = write_file("psk-1025", big, 1025);
  expect_error(S, ARGV("--local-port", "1", "--quic-psk-file", f),
               "longer than 1024 bytes");
  f = write_file("psk-big", big, sizeof(big));
  expect_error(S, ARGV("--local-port", "1", "--quic-psk-file", f),
               "--quic-psk-file: cannot read", "longer than 1024 bytes");
  big[sizeof(big) - 1] = '\0';
  expect_error(S, ARGV("--local-port", "1", "--quic-psk", big),
               "--quic-psk: PSK longer than 1024 bytes");
}

static void test_opts_psk_empty_refused(void **state) {
  const char *f;
  (void)state;

  expect_error(S, ARGV("--local-port", "1", "--quic-psk", ""),
               "--quic-psk: empty PSK refused");
  f = write_text("psk-empty", "");
  expect_error(S, ARGV("--local-port", "1", "--quic-psk-file", f),
               "empty PSK from --quic-psk-file \"", "psk-empty\"");
  f = write_text("psk-newline", "\r\n");
  expect_error(C, ARGV("--destination-port", "1", "--quic-psk-file", f),
               "empty PSK from --quic-psk-file");
  setenv("PORTREDIRECT_PSK", "", 1);
  expect_error(S, ARGV("--local-port", "1"),
               "empty PSK from PORTREDIRECT_PSK refused");
}

static void test_opts_print_fingerprint(void **state) {
  prd_opts o;
  (void)state;

  /* Needs neither a PSK nor a port. */
  assert_int_equal(parse(&o, S, ARGV("--print-fingerprint")), 0);
  assert_int_equal(o.print_fingerprint, 1);
  assert_null(o.psk);
  assert_string_equal(o.config_dir, "/xdg/portredirect");
  prd_opts_free(&o);
  /* The client prints the fingerprint of its pin: no destination needed. */
  assert_int_equal(parse(&o, C, ARGV("--print-fingerprint")), 0);
  assert_int_equal(o.print_fingerprint, 1);
  assert_null(o.psk);
  prd_opts_free(&o);
}

/* --quic-remote HOST:PORT,cert=FILE,name=SAN gives each server its own pin
 * and expected name. */
static void test_opts_remote_attrs(void **state) {
  prd_opts o;
  (void)state;
  assert_int_equal(
      parse(&o, C,
            ARGV("--destination-port", "1", "--quic-psk", "k", "--quic-remote",
                 "a.example:1,cert=/x/a.der,name=a.example", "--quic-remote",
                 "[::1]:2,cert=/x/b.der", "--quic-remote", "127.0.0.1:3")),
      0);
  assert_int_equal(o.n_remotes, 3);
  assert_string_equal(o.remotes[0].host, "a.example");
  assert_int_equal(o.remotes[0].port, 1);
  assert_string_equal(o.remotes[0].cert, "/x/a.der");
  assert_string_equal(o.remotes[0].name, "a.example");
  assert_string_equal(o.remotes[1].host, "::1");
  assert_string_equal(o.remotes[1].cert, "/x/b.der");
  assert_string_equal(o.remotes[1].name, "");
  assert_string_equal(o.remotes[2].cert, "");
  prd_opts_free(&o);
  expect_error(C,
               ARGV("--destination-port", "1", "--quic-psk", "k",
                    "--quic-remote", "h:1,pin=/x"),
               "unknown attribute");
}

static void test_opts_config_dir(void **state) {
  char want[4200];
  struct passwd *pw;
  prd_opts o;
  (void)state;

  assert_int_equal(parse(&o, S, ARGV("--local-port", "1", "--quic-psk", "k")),
                   0);
  assert_string_equal(o.config_dir, "/xdg/portredirect");
  prd_opts_free(&o);

  /* An empty XDG_CONFIG_HOME counts as unset (XDG rule), so does a relative
   * one. */
  setenv("XDG_CONFIG_HOME", "", 1);
  assert_int_equal(parse(&o, S, ARGV("--local-port", "1", "--quic-psk", "k")),
                   0);
  assert_string_equal(o.config_dir, "/home/test/.config/portredirect");
  prd_opts_free(&o);
  setenv("XDG_CONFIG_HOME", "relative/dir", 1);
  assert_int_equal(parse(&o, S, ARGV("--local-port", "1", "--quic-psk", "k")),
                   0);
  assert_string_equal(o.config_dir, "/home/test/.config/portredirect");
  prd_opts_free(&o);
  unsetenv("XDG_CONFIG_HOME");
  assert_int_equal(parse(&o, S, ARGV("--local-port", "1", "--quic-psk", "k")),
                   0);
  assert_string_equal(o.config_dir, "/home/test/.config/portredirect");
  prd_opts_free(&o);

  /* Without HOME, the passwd entry's home. */
  unsetenv("HOME");
  pw = getpwuid(getuid());
  assert_non_null(pw);
  snprintf(want, sizeof(want), "%s/.config/portredirect", pw->pw_dir);
  assert_int_equal(parse(&o, S, ARGV("--local-port", "1", "--quic-psk", "k")),
                   0);
  assert_string_equal(o.config_dir, want);
  prd_opts_free(&o);
  setenv("HOME", "", 1);
  assert_int_equal(parse(&o, S, ARGV("--local-port", "1", "--quic-psk", "k")),
                   0);
  assert_string_equal(o.config_dir, want);
  prd_opts_free(&o);

  /* --config-dir wins over everything. */
  setenv("XDG_CONFIG_HOME", "/xdg", 1);
  assert_int_equal(parse(&o, C,
                         ARGV("--destination-port", "1", "--quic-psk", "k",
                              "--config-dir", "/etc/prd")),
                   0);
  assert_string_equal(o.config_dir, "/etc/prd");
  prd_opts_free(&o);
}

static void test_opts_keylog(void **state) {
  prd_opts o;
  (void)state;

  setenv("SSLKEYLOGFILE", "/tmp/env-keys", 1);
  assert_int_equal(parse(&o, S, ARGV("--local-port", "1", "--quic-psk", "k")),
                   0);
  assert_string_equal(o.keylog_file, "/tmp/env-keys");
  prd_opts_free(&o);
  assert_int_equal(parse(&o, S,
                         ARGV("--local-port", "1", "--quic-psk", "k",
                              "--keylog-file", "/tmp/flag-keys")),
                   0);
  assert_string_equal(o.keylog_file, "/tmp/flag-keys");
  prd_opts_free(&o);
  /* An explicit empty name turns it off. */
  assert_int_equal(
      parse(&o, S,
            ARGV("--local-port", "1", "--quic-psk", "k", "--keylog-file", "")),
      0);
  assert_string_equal(o.keylog_file, "");
  prd_opts_free(&o);
  setenv("SSLKEYLOGFILE", "", 1);
  assert_int_equal(parse(&o, S, ARGV("--local-port", "1", "--quic-psk", "k")),
                   0);
  assert_string_equal(o.keylog_file, "");
  prd_opts_free(&o);
}

static void test_opts_config_values(void **state) {
  const char *psk = write_text("cfg-psk", "file-secret\n");
  char text[1024];
  const char *f;
  prd_opts o;
  (void)state;

  snprintf(text, sizeof(text),
           "# portredirect client\n"
           "\n"
           "destination-host = ::1\n"
           "destination-port=5201\n"
           "  quic-remote = [::1]:4433   # primary\n"
           "quic-remote = \"backup.example:4433\"\n"
           "quic-remote-hostname-match = localhost\n"
           "quic-psk-file = %s\n"
           "trust-on-first-use = yes\n"
           "provide-metrics\n"
           "log-level = \"warn\"\n"
           "idle-timeout = 45\r\n"
           "keepalive = 500ms\n"
           "proxy-protocol = v1\n"
           "\t# indented comment\n"
           "max-streams = 100",
           psk);
  f = write_text("client.conf", text);
  assert_int_equal(parse(&o, C, ARGV("--config", f)), 0);
  assert_string_equal(o.config_file, f);
  assert_string_equal(o.destination_host, "::1");
  assert_int_equal(o.destination_port, 5201);
  assert_int_equal(o.n_remotes, 2);
  assert_string_equal(o.remotes[0].host, "::1");
  assert_int_equal(o.remotes[0].port, 4433);
  assert_string_equal(o.remotes[1].host, "backup.example");
  assert_string_equal(o.remote_hostname_match, "localhost");
  assert_int_equal(o.psklen, 11);
  assert_memory_equal(o.psk, "file-secret", 11);
  assert_int_equal(o.psk_from_argv, 0);
  assert_int_equal(o.trust_on_first_use, 1);
  assert_int_equal(o.provide_metrics, 1);
  assert_string_equal(o.metrics_listen, "127.0.0.1:9898");
  assert_int_equal(o.log_level, PRD_LOG_WARN);
  assert_int_equal(o.idle_timeout_ms, 45000);
  assert_int_equal(o.keepalive_ms, 500);
  assert_int_equal(o.proxy_protocol, PRD_PROXY_V1);
  assert_int_equal(o.max_streams, 100);
  prd_opts_free(&o);
}

/* --service ...,allow=CIDR (README "Services"): the server's source
 * allowlist, IPv4 and IPv6, repeatable, in config lines too; a bad prefix is
 * a one-line error quoting it; the client has no allow=. */
static void test_opts_service_allow(void **state) {
  prd_opts o;
  static const uint8_t v6[16] = {0x20, 0x01, 0x0d, 0xb8};
  (void)state;

  assert_int_equal(parse(&o, S,
                         ARGV("--quic-psk", "k", "--service",
                              "web=127.0.0.1:8080,allow=10.1.0.0/16,"
                              "allow=2001:db8::/32,allow=127.0.0.2",
                              "--service", "open=127.0.0.1:8081")),
                   0);
  assert_int_equal(o.n_services, 2);
  assert_int_equal(o.services[0].port, 8080);
  assert_int_equal(o.services[0].n_allow, 3);
  assert_int_equal(o.services[0].allow[0].family, 4);
  assert_int_equal(o.services[0].allow[0].bits, 16);
  assert_int_equal(o.services[0].allow[0].addr[0], 10);
  assert_int_equal(o.services[0].allow[0].addr[1], 1);
  assert_int_equal(o.services[0].allow[1].family, 6);
  assert_int_equal(o.services[0].allow[1].bits, 32);
  assert_memory_equal(o.services[0].allow[1].addr, v6, 16);
  assert_int_equal(o.services[0].allow[2].family, 4);
  assert_int_equal(o.services[0].allow[2].bits, 32);
  assert_int_equal(o.services[1].n_allow, 0);
  prd_opts_free(&o);

  assert_int_equal(
      parse_cfg(&o, S, ARGV("--quic-psk", "k"),
                "service = a=127.0.0.1:1-3,allow=::1/128,allow=0.0.0.0/0\n"),
      0);
  assert_int_equal(o.services[0].n_allow, 2);
  assert_int_equal(o.services[0].allow[0].family, 6);
  assert_int_equal(o.services[0].allow[1].bits, 0);
  assert_int_equal(o.services[0].last, 3);
  prd_opts_free(&o);

  expect_error(
      S,
      ARGV("--quic-psk", "k", "--service", "a=127.0.0.1:1,allow=10.0.0.0/33"),
      "--service: invalid allow \"10.0.0.0/33\"");
  /* one line, then the usual "Try ... --help" */
  assert_non_null(strstr(g_err, "IPv6)\nTry '"));
  expect_error(
      S, ARGV("--quic-psk", "k", "--service", "a=127.0.0.1:1,allow=::1/129"),
      "--service: invalid allow \"::1/129\"");
  expect_error(
      S,
      ARGV("--quic-psk", "k", "--service", "a=127.0.0.1:1,allow=example.org/8"),
      "--service: invalid allow \"example.org/8\"");
  expect_error(S, ARGV("--quic-psk", "k", "--service", "a=127.0.0.1:1,allow="),
               "--service: invalid allow \"\"");
  expect_error(
      S, ARGV("--quic-psk", "k", "--service", "a=127.0.0.1:1,allow=10.0.0.0/"),
      "--service: invalid allow \"10.0.0.0/\"");
  expect_error(
      C, ARGV("--quic-psk", "k", "--service", "a=127.0.0.1:1,allow=10.0.0.0/8"),
      "--service: unknown attribute \"allow=10.0.0.0/8\"");
  expect_error(S, ARGV("--quic-psk", "k", "--service", "a=127.0.0.1:1,x=1"),
               "--service: unknown attribute \"x=1\" (expected "
               "allow=CIDR, sni=NAME or host=NAME)");
}

/* --service NAME=udp:HOST:PORT[-LAST] (README "UDP services",
 * spec/10-udp.md): both roles, allow= on the server, timeout= and
 * stream-timeout= on either; attributes of TCP services are refused, bad
 * values are one-line errors quoting them. */
static void test_opts_service_udp(void **state) {
  prd_opts o;
  (void)state;

  assert_int_equal(
      parse(&o, S,
            ARGV("--quic-psk", "k", "--service",
                 "dns=udp:127.0.0.1:5353,allow=10.0.0.0/8,timeout=5,"
                 "stream-timeout=60",
                 "--service", "web=127.0.0.1:5353", "--service",
                 "game=udp:[::1]:27015-27017")),
      0);
  assert_int_equal(o.n_services, 3);
  assert_true(o.services[0].udp);
  assert_string_equal(o.services[0].host, "127.0.0.1");
  assert_int_equal(o.services[0].port, 5353);
  assert_int_equal(o.services[0].n_allow, 1);
  assert_int_equal(o.services[0].udp_timeout_s, 5);
  assert_int_equal(o.services[0].udp_stream_timeout_s, 60);
  assert_false(o.services[1].udp);
  assert_true(o.services[2].udp);
  assert_string_equal(o.services[2].host, "::1");
  assert_int_equal(o.services[2].last, 27017);
  assert_int_equal(o.services[2].udp_timeout_s, 0);
  prd_opts_free(&o);

  assert_int_equal(parse_cfg(&o, C, ARGV("--quic-psk", "k"),
                             "service = dns=udp:127.0.0.1:53,timeout=2\n"),
                   0);
  assert_true(o.services[0].udp);
  assert_int_equal(o.services[0].udp_timeout_s, 2);
  prd_opts_free(&o);

  expect_error(S,
               ARGV("--quic-psk", "k", "--service",
                    "dns=udp:127.0.0.1:53,sni=a.example"),
               "--service: unknown attribute \"sni=a.example\" for a UDP "
               "service");
  expect_error(C,
               ARGV("--quic-psk", "k", "--service",
                    "dns=udp:127.0.0.1:53,proxy-protocol=v2"),
               "--service: unknown attribute \"proxy-protocol=v2\" for a "
               "UDP service");
  expect_error(
      C, ARGV("--quic-psk", "k", "--service", "dns=udp:127.0.0.1:53,timeout=0"),
      "--service: invalid timeout \"0\"");
  expect_error(S,
               ARGV("--quic-psk", "k", "--service",
                    "dns=udp:127.0.0.1:53,stream-timeout=x"),
               "--service: invalid stream-timeout \"x\"");
  expect_error(S, ARGV("--quic-psk", "k", "--service", "dns=udp:127.0.0.1"),
               "--service: invalid address");
  expect_error(
      S, ARGV("--quic-psk", "k", "--service", "web=127.0.0.1:80,timeout=5"),
      "--service: unknown attribute \"timeout=5\"");
}

/* --service ...,sni=NAME / host=NAME (README "Services"): routing on a
 * shared address, one port only, one of the two, host names only. */
static void test_opts_service_route(void **state) {
  prd_opts o;
  (void)state;

  assert_int_equal(parse(&o, S,
                         ARGV("--quic-psk", "k", "--service",
                              "a=127.0.0.1:443,sni=A.Example,allow=::1",
                              "--service", "b=127.0.0.1:443,host=b.example",
                              "--service", "c=127.0.0.1:443")),
                   0);
  assert_int_equal(o.services[0].route, 1);
  assert_string_equal(o.services[0].route_name, "a.example");
  assert_int_equal(o.services[0].n_allow, 1);
  assert_int_equal(o.services[1].route, 2);
  assert_string_equal(o.services[1].route_name, "b.example");
  assert_int_equal(o.services[2].route, 0);
  prd_opts_free(&o);

  assert_int_equal(parse_cfg(&o, S, ARGV("--quic-psk", "k"),
                             "service = a=127.0.0.1:443,sni=x.example\n"),
                   0);
  assert_int_equal(o.services[0].route, 1);
  prd_opts_free(&o);

  expect_error(
      S,
      ARGV("--quic-psk", "k", "--service", "a=127.0.0.1:443-444,sni=a.example"),
      "--service: sni= routes one port, not a range");
  expect_error(S,
               ARGV("--quic-psk", "k", "--service",
                    "a=127.0.0.1:443,sni=a.example,host=a.example"),
               "--service: give one of sni= and host= per service");
  expect_error(S,
               ARGV("--quic-psk", "k", "--service", "a=127.0.0.1:443,sni=a/b"),
               "--service: invalid sni= name \"a/b\"");
  expect_error(S, ARGV("--quic-psk", "k", "--service", "a=127.0.0.1:443,host="),
               "--service: invalid host= name \"\"");
}

/* --service (README "Services"): names, ranges, attributes, the default
 * service's flags, duplicates, config lines. */
static void test_opts_services(void **state) {
  prd_opts o;
  (void)state;

  assert_int_equal(
      parse(&o, S,
            ARGV("--quic-psk", "k", "--service", "web=127.0.0.1:8080",
                 "--service", "game.udp_1=[::1]:27015-27020")),
      0);
  assert_int_equal(o.n_services, 2);
  assert_string_equal(o.services[0].name, "web");
  assert_string_equal(o.services[0].host, "127.0.0.1");
  assert_int_equal(o.services[0].port, 8080);
  assert_int_equal(o.services[0].last, 8080);
  assert_string_equal(o.services[1].name, "game.udp_1");
  assert_string_equal(o.services[1].host, "::1");
  assert_int_equal(o.services[1].port, 27015);
  assert_int_equal(o.services[1].last, 27020);
  assert_int_equal(o.local_port, 0);
  prd_opts_free(&o);

  assert_int_equal(parse(&o, C,
                         ARGV("--quic-psk", "k", "--destination-port", "22",
                              "--service", "web=localhost:80,proxy-protocol=v2",
                              "--service", "db=10.0.0.1:5432")),
                   0);
  assert_int_equal(o.n_services, 2);
  assert_int_equal(o.services[0].proxy_protocol, PRD_PROXY_V2);
  assert_int_equal(o.services[1].proxy_protocol, -1);
  assert_int_equal(o.destination_port, 22);
  prd_opts_free(&o);

  assert_int_equal(parse_cfg(&o, S, ARGV("--quic-psk", "k"),
                             "service = a=127.0.0.1:1\n"
                             "service = \"b=127.0.0.1:2-3\"\n"),
                   0);
  assert_int_equal(o.n_services, 2);
  assert_int_equal(o.services[1].last, 3);
  prd_opts_free(&o);

  expect_error(S, ARGV("--quic-psk", "k", "--service", "web"),
               "--service: invalid value \"web\"");
  expect_error(S, ARGV("--quic-psk", "k", "--service", "w b=127.0.0.1:1"),
               "--service: invalid service name \"w b\"");
  expect_error(S, ARGV("--quic-psk", "k", "--service", "=127.0.0.1:1"),
               "--service: invalid service name");
  expect_error(S, ARGV("--quic-psk", "k", "--service", "a=127.0.0.1:9-8"),
               "--service: invalid port or range in \"127.0.0.1:9-8\"");
  expect_error(S, ARGV("--quic-psk", "k", "--service", "a=127.0.0.1:1-65536"),
               "--service: invalid port or range");
  expect_error(S, ARGV("--quic-psk", "k", "--service", "a=127.0.0.1:0"),
               "--service: invalid port or range");
  expect_error(S, ARGV("--quic-psk", "k", "--service", "a=::1:80"),
               "--service: invalid address \"::1:80\"");
  expect_error(S, ARGV("--quic-psk", "k", "--service", "a=:80"),
               "--service: invalid address");
  expect_error(
      S,
      ARGV("--quic-psk", "k", "--service", "a=127.0.0.1:1,proxy-protocol=v1"),
      "--service: unknown attribute \"proxy-protocol=v1\"");
  expect_error(
      C,
      ARGV("--quic-psk", "k", "--service", "a=127.0.0.1:1,proxy-protocol=v3"),
      "--service: invalid proxy-protocol \"v3\"");
  expect_error(C, ARGV("--quic-psk", "k", "--service", "a=127.0.0.1:1,sni=x"),
               "--service: unknown attribute \"sni=x\"");
  expect_error(S,
               ARGV("--quic-psk", "k", "--service", "a=127.0.0.1:1",
                    "--service", "a=127.0.0.1:2"),
               "--service: service \"a\" given twice");
  expect_error(S,
               ARGV("--quic-psk", "k", "--service", "default=127.0.0.1:1",
                    "--local-port", "2"),
               "--service default=... cannot be combined with --local-port");
  expect_error(C,
               ARGV("--quic-psk", "k", "--destination-host", "::1", "--service",
                    "default=127.0.0.1:1"),
               "--service default=... cannot be combined with "
               "--destination-host");
  assert_int_equal(
      parse(&o, S,
            ARGV("--quic-psk", "k", "--service", "default=127.0.0.1:1",
                 "--service", "x=127.0.0.1:2")),
      0);
  prd_opts_free(&o);
}

static void test_opts_config_comments_quotes(void **state) {
  prd_opts o;
  (void)state;

  /* '#' inside quotes or not after whitespace belongs to the value. */
  assert_int_equal(parse_cfg(&o, S, ARGV("--local-port", "1"),
                             "quic-psk = \"a # b\"  # comment\n"),
                   0);
  assert_int_equal(o.psklen, 5);
  assert_memory_equal(o.psk, "a # b", 5);
  prd_opts_free(&o);
  assert_int_equal(
      parse_cfg(&o, S, ARGV("--local-port", "1"), "quic-psk = ab#cd \t\n"), 0);
  assert_int_equal(o.psklen, 5);
  assert_memory_equal(o.psk, "ab#cd", 5);
  assert_int_equal(o.psk_from_argv, 0);
  prd_opts_free(&o);
  assert_int_equal(parse_cfg(&o, S, ARGV("--quic-psk", "k"),
                             "local-port = 7 # trailing\n"
                             "print-metrics = off\n"
                             "print-metrics = TRUE\n"
                             "quic-cert-hostname = a.example\n"
                             "quic-cert-hostname = 192.0.2.1\n"
                             "keylog-file = \"\"\n"),
                   0);
  assert_int_equal(o.local_port, 7);
  assert_int_equal(o.print_metrics, 1);
  assert_int_equal(o.n_cert_hostnames, 2);
  assert_string_equal(o.cert_hostnames[1], "192.0.2.1");
  prd_opts_free(&o);
}

static void test_opts_config_errors(void **state) {
  char line[5000];
  char path[128];
  const char *f;
  prd_opts o;
  (void)state;

  f = write_text("bad.conf", "# ok\nlocal-port = 1\nfoo = bar\n");
  expect_error(S, ARGV("--config", f), "bad.conf:3: unknown option \"foo\"");
  expect_error(S, ARGV("--config", write_text("b2.conf", "local-port = 70000")),
               "b2.conf:1: local-port: invalid port \"70000\"");
  expect_error(S, ARGV("--config", write_text("b3.conf", "\n\nhelp = 1\n")),
               "b3.conf:3: option \"help\" is not allowed in a config file");
  expect_error(S, ARGV("--config", write_text("b4.conf", "version\n")),
               "b4.conf:1: option \"version\" is not allowed");
  expect_error(S, ARGV("--config", write_text("b5.conf", "config = x\n")),
               "b5.conf:1: option \"config\" is not allowed");
  expect_error(S, ARGV("--config", write_text("b6.conf", "local-port\n")),
               "b6.conf:1: local-port: missing value (PORT)");
  expect_error(S, ARGV("--config", write_text("b7.conf", "local-port =  \n")),
               "b7.conf:1: local-port: missing value");
  expect_error(S, ARGV("--config", write_text("b8.conf", "local-port = \"1\n")),
               "b8.conf:1: missing closing quote");
  expect_error(S,
               ARGV("--config", write_text("b9.conf", "local-port = \"1\"x\n")),
               "b9.conf:1: unexpected text after the closing quote");
  expect_error(S, ARGV("--config", write_text("b10.conf", "local port = 1\n")),
               "b10.conf:1: expected \"key = value\" after \"local\"");
  expect_error(
      S, ARGV("--config", write_text("b11.conf", "destination-port = 1\n")),
      "b11.conf:1: destination-port is an option of "
      "portredirect_client");
  expect_error(
      C,
      ARGV("--config", write_text("b12.conf", "trust-on-first-use = maybe\n")),
      "b12.conf:1: trust-on-first-use: invalid value \"maybe\"");
  expect_error(
      C, ARGV("--config", write_text("b13.conf", "--destination-port = 1\n")),
      "b13.conf:1: unknown option \"--destination-port\"");
  expect_error(S, ARGV("--config", write_file("b14.conf", "a\0b\n", 4)),
               "b14.conf:1: NUL byte");
  expect_error(C,
               ARGV("--config",
                    write_text("b15.conf", "quic-remote = a.example:1\n"
                                           "quic-remote-host = b.example\n")),
               "b15.conf:2: quic-remote-host: cannot be combined with "
               "quic-remote");

  /* A line of 4096 bytes is fine, 4097 is too long. */
  memset(line, ' ', sizeof(line));
  memcpy(line, "# x", 3);
  line[4096] = '\n';
  memcpy(line + 4097, "local-port = 1\n", 16);
  assert_int_equal(parse(&o, S,
                         ARGV("--quic-psk", "k", "--config",
                              write_text("long1.conf", line))),
                   0);
  assert_int_equal(o.local_port, 1);
  prd_opts_free(&o);
  memset(line, ' ', sizeof(line));
  memcpy(line, "# x", 3);
  line[4097] = '\n';
  memcpy(line + 4098, "local-port = 1\n", 16);
  expect_error(S, ARGV("--config", write_text("long2.conf", line)),
               "long2.conf:1: line too long (max 4096 bytes)");

  /* A PSK file named in a config file is blamed on its line. */
  snprintf(path, sizeof(path), "%s/missing-psk", g_dir);
  snprintf(line, sizeof(line), "local-port = 1\nquic-psk-file = %s\n", path);
  expect_error(S, ARGV("--config", write_text("b16.conf", line)),
               "b16.conf:2: quic-psk-file: cannot read");

  snprintf(path, sizeof(path), "%s/missing.conf", g_dir);
  expect_error(S, ARGV("--config", path), "--config: cannot read \"",
               "missing.conf\": No such file or directory");
}

/* The command line wins, repeatable keys and groups as a whole. */
static void test_opts_config_cli_wins(void **state) {
  const char *f;
  prd_opts o;
  (void)state;

  f = write_text("wins.conf", "destination-port = 1\n"
                              "destination-host = file.example\n"
                              "quic-remote = a.example:1\n"
                              "quic-remote = b.example:2\n"
                              "quic-psk = file-psk\n"
                              "log-level = trace\n"
                              "max-streams = 5\n");
  assert_int_equal(
      parse(&o, C,
            ARGV("--destination-port", "2", "--config", f, "--quic-remote",
                 "c.example:3", "--quic-psk", "cli-psk")),
      0);
  assert_int_equal(o.destination_port, 2);
  assert_string_equal(o.destination_host, "file.example");
  assert_int_equal(o.n_remotes, 1);
  assert_string_equal(o.remotes[0].host, "c.example");
  assert_int_equal(o.psklen, 7);
  assert_memory_equal(o.psk, "cli-psk", 7);
  assert_int_equal(o.log_level, PRD_LOG_TRACE);
  assert_int_equal(o.max_streams, 5);
  prd_opts_free(&o);

  /* --quic-remote-host on the command line replaces the file's remotes
   * rather than conflicting with them. */
  assert_int_equal(
      parse(&o, C, ARGV("--config", f, "--quic-remote-host", "d.example")), 0);
  assert_int_equal(o.n_remotes, 1);
  assert_string_equal(o.remotes[0].host, "d.example");
  assert_int_equal(o.remotes[0].port, 4433);
  prd_opts_free(&o);

  /* --quic-psk-file on the command line beats the file's quic-psk. */
  assert_int_equal(parse(&o, C,
                         ARGV("--config", f, "--quic-psk-file",
                              write_text("wins-psk", "cli-file\n"))),
                   0);
  assert_int_equal(o.psklen, 8);
  assert_memory_equal(o.psk, "cli-file", 8);
  prd_opts_free(&o);

  /* Without command-line overrides the file's values apply. */
  assert_int_equal(parse(&o, C, ARGV("--config", f)), 0);
  assert_int_equal(o.n_remotes, 2);
  assert_string_equal(o.remotes[1].host, "b.example");
  assert_int_equal(o.remotes[1].port, 2);
  assert_int_equal(o.psklen, 8);
  assert_memory_equal(o.psk, "file-psk", 8);
  assert_int_equal(o.psk_from_argv, 0);
  prd_opts_free(&o);
}

static void check_help(prd_role role, const char *const *mine,
                       const char *const *theirs) {
  prd_opts o;
  char *line;
  char *save = NULL;
  char *copy;
  size_t i;

  assert_int_equal(parse(&o, role, ARGV("--help")), 1);
  assert_string_equal(g_err, "");
  for (i = 0; mine[i] != NULL; ++i) {
    char want[64];
    snprintf(want, sizeof(want), "  %s ", mine[i]);
    if (strstr(g_out, want) == NULL) {
      print_error("help lacks %s\n", mine[i]);
      fail();
    }
  }
  for (i = 0; theirs[i] != NULL; ++i) {
    char bad[64];
    snprintf(bad, sizeof(bad), "  %s ", theirs[i]);
    assert_null(strstr(g_out, bad));
  }
  assert_non_null(strstr(g_out, "Usage: portredirect_"));
  assert_non_null(strstr(g_out, "\nTunnel:\n"));
  assert_non_null(strstr(g_out, "\nQUIC:\n"));
  assert_non_null(strstr(g_out, "\nSecurity:\n"));
  assert_non_null(strstr(g_out, "\nOperations:\n"));
  assert_non_null(strstr(g_out, "\nEnvironment:\n"));
  assert_non_null(strstr(g_out, "PORTREDIRECT_PSK"));
  assert_non_null(strstr(g_out, "SSLKEYLOGFILE"));
  assert_non_null(strstr(g_out, "XDG_CONFIG_HOME"));
  assert_non_null(strstr(g_out, "\nFiles:\n"));
  assert_non_null(strstr(g_out, "cert.der"));
  /* Quotable in an 80-column README. */
  copy = strdup(g_out);
  assert_non_null(copy);
  for (line = strtok_r(copy, "\n", &save); line != NULL;
       line = strtok_r(NULL, "\n", &save)) {
    if (strlen(line) > 80) {
      print_error("help line too long: %s\n", line);
      fail();
    }
  }
  free(copy);
  /* -h is the same text. */
  copy = strdup(g_out);
  assert_non_null(copy);
  assert_int_equal(parse(&o, role, ARGV("--local-port", "x1", "-h")), -1);
  assert_int_equal(parse(&o, role, ARGV("-h", "--local-port", "x1")), 1);
  assert_string_equal(g_out, copy);
  free(copy);
}

static void test_opts_help(void **state) {
  static const char *const common[] = {"--log-level LEVEL",
                                       "--config-dir DIR",
                                       "--config FILE",
                                       "--quic-psk PSK",
                                       "--quic-psk-file FILE",
                                       "--keylog-file FILE",
                                       "--metrics-listen ADDR:PORT",
                                       "--max-udp-payload BYTES",
                                       "--congestion-control ALGO",
                                       "--idle-timeout SECONDS",
                                       "--keepalive SECONDS",
                                       "--shutdown-grace SECONDS",
                                       "--print-fingerprint",
                                       "-h, --help",
                                       "-V, --version",
                                       NULL};
  static const char *const server[] = {"--local-host HOST",
                                       "--local-port PORT",
                                       "--quic-server-host HOST",
                                       "--quic-server-port PORT",
                                       "--quic-cert-hostname NAME",
                                       "--pending-timeout SECONDS",
                                       "--auth-timeout SECONDS",
                                       "--max-clients N",
                                       "--max-connections N",
                                       "--print-metrics",
                                       NULL};
  static const char *const client[] = {"--destination-host HOST",
                                       "--destination-port PORT",
                                       "--quic-remote-host HOST",
                                       "--quic-remote-port PORT",
                                       "--quic-remote HOST:PORT[,OPTS]",
                                       "--quic-remote-hostname-match NAME",
                                       "--quic-local-host HOST",
                                       "--quic-local-port PORT",
                                       "--server-cert FILE",
                                       "--server-fingerprint SHA256:HEX",
                                       "--trust-on-first-use",
                                       "--proxy-protocol none|v1|v2",
                                       "--max-streams N",
                                       "--provide-metrics",
                                       NULL};
  (void)state;

  check_help(S, common, client);
  check_help(S, server, client);
  assert_non_null(strstr(g_out, "(default 127.0.0.1)"));
  assert_non_null(strstr(g_out, "(default 4433)"));
  assert_non_null(strstr(g_out, "key.der"));
  check_help(C, common, server);
  check_help(C, client, server);
  assert_non_null(strstr(g_out, "(default 32768)"));
  assert_non_null(strstr(g_out, "127.0.0.1:9898"));
}

static void test_opts_version(void **state) {
  prd_opts o;
  (void)state;

  assert_int_equal(parse(&o, S, ARGV("--version")), 1);
  assert_string_equal(g_out, "portredirect_server " PRD_VERSION "\n");
  assert_int_equal(parse(&o, C, ARGV("-V")), 1);
  assert_string_equal(g_out, "portredirect_client " PRD_VERSION "\n");
  assert_string_equal(g_err, "");
  assert_int_equal(parse(&o, C, ARGV("--version=2")), -1);
}

/* prd_opts_parse itself writes to the process's stderr. */
static void test_opts_public_parse_stderr(void **state) {
  char path[128];
  char buf[512];
  const char *argv[] = {"portredirect_server", "--local-port", "70000", NULL};
  prd_opts o;
  ssize_t n;
  int saved;
  int fd;
  (void)state;

  snprintf(path, sizeof(path), "%s/stderr.txt", g_dir);
  fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
  assert_true(fd >= 0);
  fflush(stderr);
  saved = dup(2);
  assert_true(saved >= 0);
  assert_int_equal(dup2(fd, 2), 2);
  assert_int_equal(prd_opts_parse(&o, PRD_ROLE_SERVER, 3, (char **)argv), -1);
  fflush(stderr);
  assert_int_equal(dup2(saved, 2), 2);
  close(saved);
  n = pread(fd, buf, sizeof(buf) - 1, 0);
  close(fd);
  assert_true(n > 0);
  buf[n] = '\0';
  assert_string_equal(buf, "portredirect_server: --local-port: invalid port "
                           "\"70000\" (expected 1-65535)\n"
                           "Try 'portredirect_server --help'.\n");
  prd_opts_free(&o);
}

static void test_opts_free(void **state) {
  prd_opts o;
  (void)state;

  memset(&o, 0, sizeof(o));
  prd_opts_free(&o); /* a zeroed struct */
  prd_opts_free(NULL);
  assert_int_equal(parse(&o, S, ARGV("--local-port", "1", "--quic-psk", "k")),
                   0);
  assert_non_null(o.psk);
  prd_opts_free(&o);
  assert_null(o.psk);
  assert_int_equal(o.psklen, 0);
  prd_opts_free(&o); /* twice is harmless */
}

/* argc of 0 and a NULL-terminated argv shorter than argc do not crash. */
static void test_opts_odd_argv(void **state) {
  char *empty[] = {NULL};
  char *shortv[] = {"prog", "--local-port", NULL};
  prd_opts_io io;
  prd_opts o;
  (void)state;

  memset(&io, 0, sizeof(io));
  io.out = fopen("/dev/null", "w");
  io.err = io.out;
  assert_non_null(io.out);
  assert_int_equal(prd_opts_parse_io(&o, S, 0, empty, &io), -1);
  assert_int_equal(prd_opts_parse_io(&o, S, 5, shortv, &io), -1);
  setenv("PORTREDIRECT_PSK", "k", 1);
  io.config_buf = "local-port = 9\n";
  io.config_len = strlen(io.config_buf);
  assert_int_equal(prd_opts_parse_io(&o, S, 0, NULL, &io), 0);
  assert_int_equal(o.local_port, 9);
  prd_opts_free(&o);
  fclose(io.out);
}

/* --server-fingerprint: what --print-fingerprint prints, repeatable, also a
 * config key; a whole pin that does not mix with --server-cert or TOFU
 * (spec/06-files-and-cli.md §3). */
static void test_opts_server_fingerprint(void **state) {
  static const char fp_a[] =
      "SHA256:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:"
      "00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF";
  static const char fp_b[] =
      "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100";
  uint8_t want_a[32], want_b[32];
  char text[512];
  prd_opts o;
  (void)state;

  for (int i = 0; i < 32; ++i) {
    want_a[i] = (uint8_t)((i % 16) * 0x11);
    want_b[i] = (uint8_t)(0xff - (i % 16) * 0x11);
  }
  assert_int_equal(parse(&o, C,
                         ARGV("--destination-port", "1", "--quic-psk", "x",
                              "--server-fingerprint", fp_a,
                              "--server-fingerprint="
                              "sha256:"
                              "ffeeddccbbaa99887766554433221100ffeeddccbbaa9988"
                              "7766554433221100")),
                   0);
  assert_int_equal(o.n_server_fingerprints, 2);
  assert_memory_equal(o.server_fingerprints[0], want_a, 32);
  assert_memory_equal(o.server_fingerprints[1], want_b, 32);
  prd_opts_free(&o);

  /* A config key, and the command line replaces the file's pin as a
   * whole (a --server-cert there does not clash). */
  snprintf(text, sizeof(text),
           "server-fingerprint = %s\nserver-fingerprint = \"%s\"\n", fp_a,
           fp_b);
  assert_int_equal(parse_cfg(&o, C,
                             ARGV("--destination-port", "1", "--quic-psk", "x"),
                             text),
                   0);
  assert_int_equal(o.n_server_fingerprints, 2);
  assert_memory_equal(o.server_fingerprints[1], want_b, 32);
  prd_opts_free(&o);
  assert_int_equal(parse_cfg(&o, C,
                             ARGV("--destination-port", "1", "--quic-psk", "x",
                                  "--server-cert", "/x/cert.der"),
                             text),
                   0);
  assert_int_equal(o.n_server_fingerprints, 0);
  assert_string_equal(o.server_cert, "/x/cert.der");
  prd_opts_free(&o);

  /* Bad values: one line quoting the value. */
  expect_error(C, ARGV("--server-fingerprint", "SHA256:00:11"),
               "--server-fingerprint: ", "invalid fingerprint \"SHA256:00:11\"",
               "as --print-fingerprint prints");
  expect_error(C, ARGV("--server-fingerprint", "MD5:00"),
               "--server-fingerprint: ", "\"MD5:00\"");
  /* 32 pairs, but colons in some places only. */
  expect_error(C,
               ARGV("--server-fingerprint",
                    "0011:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:"
                    "33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:0"),
               "--server-fingerprint: ");
  expect_error(C, ARGV("--server-fingerprint", "SHA256:zz"),
               "--server-fingerprint: ");
  /* Trailing bytes. */
  snprintf(text, sizeof(text), "%sFF", fp_b);
  expect_error(C, ARGV("--server-fingerprint", text), "--server-fingerprint: ");
  /* Not with another way to trust the server. */
  expect_error(C,
               ARGV("--destination-port", "1", "--quic-psk", "x",
                    "--server-fingerprint", fp_a, "--server-cert", "/c.der"),
               "--server-fingerprint cannot be combined with --server-cert");
  expect_error(C,
               ARGV("--destination-port", "1", "--quic-psk", "x",
                    "--server-fingerprint", fp_a, "--trust-on-first-use"),
               "--server-fingerprint cannot be combined with "
               "--trust-on-first-use");
  expect_error(S, ARGV("--local-port", "1", "--server-fingerprint", fp_a),
               "--server-fingerprint is an option of portredirect_client");
}

/* spec/06-files-and-cli.md §4.1: --clients-file (server; the PSK options
 * become optional) and --client-name (client; a valid name), also as
 * config keys; each in its own role only. */
static void test_opts_client_identities(void **state) {
  prd_opts o;

  (void)state;
  assert_int_equal(
      parse(&o, S,
            ARGV("--local-port", "1", "--clients-file", "/etc/prd/clients")),
      0);
  assert_string_equal(o.clients_file, "/etc/prd/clients");
  assert_null(o.psk);
  prd_opts_free(&o);
  assert_int_equal(parse_cfg(&o, S, ARGV("--local-port", "1"),
                             "clients-file = /etc/prd/c2\nquic-psk = k\n"),
                   0);
  assert_string_equal(o.clients_file, "/etc/prd/c2");
  assert_non_null(o.psk);
  prd_opts_free(&o);
  assert_int_equal(parse(&o, C,
                         ARGV("--destination-port", "1", "--quic-psk", "k",
                              "--client-name", "web1.example_A-9")),
                   0);
  assert_string_equal(o.client_name, "web1.example_A-9");
  prd_opts_free(&o);
  assert_int_equal(parse_cfg(&o, C,
                             ARGV("--destination-port", "1", "--quic-psk", "k"),
                             "client-name = alice\n"),
                   0);
  assert_string_equal(o.client_name, "alice");
  prd_opts_free(&o);
  expect_error(
      C,
      ARGV("--quic-psk", "k", "--destination-port", "1", "--client-name", "-x"),
      "--client-name: invalid name \"-x\"");
  expect_error(
      C,
      ARGV("--quic-psk", "k", "--destination-port", "1", "--client-name", ".x"),
      "--client-name: invalid name");
  expect_error(C,
               ARGV("--quic-psk", "k", "--destination-port", "1",
                    "--client-name", "a b"),
               "--client-name: invalid name");
  expect_error(C,
               ARGV("--quic-psk", "k", "--destination-port", "1",
                    "--client-name",
                    "a1234567890123456789012345678901234567890123456789012345"
                    "678901234"),
               "--client-name: invalid name");
  expect_error(C, ARGV("--quic-psk", "k", "--clients-file", "f"),
               "is an option of portredirect_server");
  expect_error(S, ARGV("--quic-psk", "k", "--client-name", "a"),
               "is an option of portredirect_client");
  expect_error(S, ARGV("--local-port", "1"), "(or --clients-file)");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup(test_opts_defaults_server, setup),
      cmocka_unit_test_setup(test_opts_defaults_client, setup),
      cmocka_unit_test_setup(test_opts_original_server, setup),
      cmocka_unit_test_setup(test_opts_original_client, setup),
      cmocka_unit_test_setup(test_opts_equals_form, setup),
      cmocka_unit_test_setup(test_opts_bad_values, setup),
      cmocka_unit_test_setup(test_opts_usage_errors, setup),
      cmocka_unit_test_setup(test_opts_unknown_option_hides_value, setup),
      cmocka_unit_test_setup(test_opts_ipv6_brackets, setup),
      cmocka_unit_test_setup(test_opts_host_syntax, setup),
      cmocka_unit_test_setup(test_opts_quic_remote_repeat, setup),
      cmocka_unit_test_setup(test_opts_repeat_limits, setup),
      cmocka_unit_test_setup(test_opts_durations, setup),
      cmocka_unit_test_setup(test_opts_keepalive_vs_idle, setup),
      cmocka_unit_test_setup(test_opts_metrics, setup),
      cmocka_unit_test_setup(test_opts_tcp_path, setup),
      cmocka_unit_test_setup(test_opts_psk_precedence, setup),
      cmocka_unit_test_setup(test_opts_psk_file_stripping, setup),
      cmocka_unit_test_setup(test_opts_psk_file_errors, setup),
      cmocka_unit_test_setup(test_opts_psk_empty_refused, setup),
      cmocka_unit_test_setup(test_opts_print_fingerprint, setup),
      cmocka_unit_test_setup(test_opts_server_fingerprint, setup),
      cmocka_unit_test_setup(test_opts_remote_attrs, setup),
      cmocka_unit_test_setup(test_opts_config_dir, setup),
      cmocka_unit_test_setup(test_opts_keylog, setup),
      cmocka_unit_test_setup(test_opts_config_values, setup),
      cmocka_unit_test_setup(test_opts_config_comments_quotes, setup),
      cmocka_unit_test_setup(test_opts_config_errors, setup),
      cmocka_unit_test_setup(test_opts_config_cli_wins, setup),
      cmocka_unit_test_setup(test_opts_help, setup),
      cmocka_unit_test_setup(test_opts_version, setup),
      cmocka_unit_test_setup(test_opts_public_parse_stderr, setup),
      cmocka_unit_test_setup(test_opts_free, setup),
      cmocka_unit_test_setup(test_opts_services, setup),
      cmocka_unit_test_setup(test_opts_service_allow, setup),
      cmocka_unit_test_setup(test_opts_service_udp, setup),
      cmocka_unit_test_setup(test_opts_service_route, setup),
      cmocka_unit_test_setup(test_opts_odd_argv, setup),
      cmocka_unit_test_setup(test_opts_client_identities, setup),
  };

  return cmocka_run_group_tests_name("opts", tests, group_setup,
                                     group_teardown);
}
