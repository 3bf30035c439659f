/* SPDX-License-Identifier: GPL-3.0-only */
/* prd-conformance: tests an implementation of the portredirect protocol
 * requirement by requirement against spec/ (spec/conformance.md). */
#include <errno.h>
#include <getopt.h>
#include <gnutls/gnutls.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cf.h"

cf_opts cf_opt = {.auth_timeout_s = 5.0, .timeout_s = 5.0};

static const char USAGE[] =
    "Usage: prd-conformance server HOST:PORT --psk-file FILE --server-cert "
    "FILE [OPTION]...\n"
    "Test a portredirect server (HOST:PORT is its QUIC port) against spec/.\n"
    "\n"
    "  --psk-file FILE      the server's pre-shared key (one trailing LF or "
    "CR LF\n"
    "                       is dropped, spec/03-auth.md §7)\n"
    "  --server-cert FILE   the server's certificate (DER), as a client pins "
    "it\n"
    "  --tcp HOST:PORT      the server's user (TCP) port: enables the data "
    "stream\n"
    "                       tests (no other client may be connected)\n"
    "  --service-tcp NAME=HOST:PORT\n"
    "                       the user port of the server's service NAME (not\n"
    "                       default): enables the tests of a second "
    "service\n"
    "  --service-udp NAME=HOST:PORT\n"
    "                       the server has the UDP service NAME, users send "
    "to\n"
    "                       HOST:PORT: enables the DATAGRAMS tests "
    "(spec/10-udp.md)\n"
    "  --tcp-path HOST:PORT the server's TCP path (spec/11-tcp-path.md, "
    "optional):\n"
    "                       enables the TCP path tests\n"
    "  --client NAME:FILE   a client name the server knows and its PSK "
    "file:\n"
    "                       enables the client name tests (spec/03-auth.md "
    "§4.1)\n"
    "  --auth-timeout SECS  the server's authentication deadline (default "
    "5)\n"
    "  --timeout SECS       how long to wait for a handshake or a reply "
    "(default 5)\n"
    "  --bind ADDR          local address of the QUIC connections\n"
    "  --tap                TAP output (for prove) instead of plain lines\n"
    "  --junit FILE         also write JUnit XML to FILE\n"
    "  --known FILE         known deviations: lines \"TEST-ID reason\"; such "
    "a\n"
    "                       failure is reported as TODO and does not fail "
    "the run\n"
    "  --test GLOB          run only the tests whose id matches GLOB\n"
    "  --list               list the tests of both roles (id, spec section, "
    "level,\n"
    "                       title)\n"
    "  -v, --verbose        ngtcp2's log of every connection on stderr\n"
    "  -h, --help           this help\n"
    "\n"
    "The server must not rate-limit the tool's address: many tests fail "
    "authentication\non purpose. Exit status: 0 when no test failed, 1 when "
    "one did, 2 on bad usage.\n"
    "\n"
    "Usage: prd-conformance client --listen HOST:PORT --psk-file FILE "
    "--config-dir DIR\n"
    "                              [OPTION]...\n"
    "Play the server at HOST:PORT (UDP) and test the portredirect client "
    "that\n"
    "connects to it, pinning DIR/cert.der (made on first use, with key.der) "
    "and\n"
    "using the PSK of --psk-file. Start the client after the tool; it must "
    "use\n"
    "the default reconnect backoff (the run takes about 40 s).\n";

static int parse_hostport(const char *s, struct sockaddr_storage *ss,
                          socklen_t *len, int socktype) {
  char host[256];
  const char *port;
  struct addrinfo hints, *res;
  if (s[0] == '[') {
    const char *e = strchr(s, ']');
    if (e == NULL || e[1] != ':' || (size_t)(e - s - 1) >= sizeof(host)) {
      return -1;
    }
    memcpy(host, s + 1, (size_t)(e - s - 1));
    host[e - s - 1] = '\0';
    port = e + 2;
  } else {
    const char *c = strrchr(s, ':');
    if (c == NULL || (size_t)(c - s) >= sizeof(host)) {
      return -1;
    }
    memcpy(host, s, (size_t)(c - s));
    host[c - s] = '\0';
    port = c + 1;
  }
  memset(&hints, 0, sizeof(hints));
  hints.ai_socktype = socktype;
  if (*port == '\0' || getaddrinfo(host, port, &hints, &res) != 0) {
    return -1;
  }
  memcpy(ss, res->ai_addr, res->ai_addrlen);
  *len = res->ai_addrlen;
  freeaddrinfo(res);
  return 0;
}

/* parse_service parses --service-tcp/--service-udp's NAME=HOST:PORT into
 * |name| (64 bytes) and |ss|; |no_default|: the name may not be default.
 * Returns 0, or 2 after the usage error. */
static int parse_service(const char *opt, const char *arg, int no_default,
                         int socktype, char *name, struct sockaddr_storage *ss,
                         socklen_t *len) {
  const char *eq = strchr(arg, '=');
  size_t n = eq ? (size_t)(eq - arg) : 0;
  if (eq == NULL || !prd_service_name_valid(arg, n) ||
      (no_default && n == 7 && memcmp(arg, "default", 7) == 0) ||
      parse_hostport(eq + 1, ss, len, socktype)) {
    fprintf(stderr,
            "prd-conformance: %s: '%s' is not NAME=HOST:PORT (NAME a service "
            "name%s)\n",
            opt, arg, no_default ? " other than default" : "");
    return 2;
  }
  memcpy(name, arg, n);
  name[n] = '\0';
  return 0;
}

static uint8_t *read_file(const char *path, size_t max, size_t *plen) {
  FILE *f = fopen(path, "rb");
  uint8_t *buf;
  if (f == NULL) {
    fprintf(stderr, "prd-conformance: cannot open '%s': %s\n", path,
            strerror(errno));
    return NULL;
  }
  buf = malloc(max + 1);
  *plen = buf ? fread(buf, 1, max + 1, f) : 0;
  fclose(f);
  if (buf && *plen > max) {
    fprintf(stderr, "prd-conformance: '%s' is larger than %zu bytes\n", path,
            max);
    free(buf);
    return NULL;
  }
  return buf;
}

static int parse_secs(const char *name, const char *v, double *out) {
  char *end;
  double d = strtod(v, &end);
  if (*v == '\0' || *end != '\0' || !(d > 0 && d < 3600)) {
    fprintf(stderr, "prd-conformance: %s: '%s' is not a number of seconds\n",
            name, v);
    return -1;
  }
  *out = d;
  return 0;
}

/* load_psk reads a PSK file into |out| (1024 bytes); -1 after printing
 * why not. */
static int load_psk(const char *path, uint8_t *out, size_t *poutlen) {
  size_t len;
  uint8_t *psk = read_file(path, 1024 + 2, &len);
  if (psk == NULL) {
    return -1;
  }
  /* spec/03-auth.md §7: one trailing CR LF, or else LF, is dropped. */
  if (len >= 2 && psk[len - 2] == '\r' && psk[len - 1] == '\n') {
    len -= 2;
  } else if (len >= 1 && psk[len - 1] == '\n') {
    len -= 1;
  }
  if (len == 0 || len > 1024) {
    fprintf(stderr, "prd-conformance: '%s': the PSK must be 1 to 1024 bytes\n",
            path);
    gnutls_memset(psk, 0, len);
    free(psk);
    return -1;
  }
  memcpy(out, psk, len);
  *poutlen = len;
  gnutls_memset(psk, 0, len);
  free(psk);
  return 0;
}

static char *g_known_text; /* what the cf_known entries point into */

static cf_known *load_known(const char *path, size_t *pn) {
  size_t len, n = 0;
  char *text = (char *)read_file(path, 1 << 20, &len);
  cf_known *k;
  if (text == NULL) {
    return NULL;
  }
  text[len] = '\0';
  k = calloc(len / 2 + 1, sizeof(*k));
  for (char *line = strtok(text, "\n"); k && line; line = strtok(NULL, "\n")) {
    char *sp;
    while (*line == ' ') {
      ++line;
    }
    if (*line == '#' || *line == '\0') {
      continue;
    }
    sp = strchr(line, ' ');
    if (sp) {
      *sp++ = '\0';
    }
    k[n].id = line;
    k[n].why = sp ? sp : "known deviation";
    ++n;
  }
  *pn = n;
  g_known_text = text;
  return k;
}

int main(int argc, char **argv) {
  enum {
    O_PSK = 256,
    O_CERT,
    O_TCP,
    O_AUTH_TIMEOUT,
    O_TIMEOUT,
    O_BIND,
    O_TAP,
    O_JUNIT,
    O_KNOWN,
    O_TEST,
    O_LIST,
    O_LISTEN,
    O_CONFIG_DIR,
    O_SERVICE_TCP,
    O_CLIENT,
    O_SERVICE_UDP,
    O_TCP_PATH
  };
  static const struct option longopts[] = {
      {"psk-file", required_argument, NULL, O_PSK},
      {"server-cert", required_argument, NULL, O_CERT},
      {"tcp", required_argument, NULL, O_TCP},
      {"service-tcp", required_argument, NULL, O_SERVICE_TCP},
      {"client", required_argument, NULL, O_CLIENT},
      {"service-udp", required_argument, NULL, O_SERVICE_UDP},
      {"tcp-path", required_argument, NULL, O_TCP_PATH},
      {"auth-timeout", required_argument, NULL, O_AUTH_TIMEOUT},
      {"timeout", required_argument, NULL, O_TIMEOUT},
      {"bind", required_argument, NULL, O_BIND},
      {"tap", no_argument, NULL, O_TAP},
      {"junit", required_argument, NULL, O_JUNIT},
      {"known", required_argument, NULL, O_KNOWN},
      {"test", required_argument, NULL, O_TEST},
      {"list", no_argument, NULL, O_LIST},
      {"listen", required_argument, NULL, O_LISTEN},
      {"config-dir", required_argument, NULL, O_CONFIG_DIR},
      {"verbose", no_argument, NULL, 'v'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0}};
  const char *psk_file = NULL, *cert_file = NULL, *junit = NULL;
  const char *known_file = NULL, *filter = NULL;
  const char *listen = NULL, *config_dir = NULL, *client_arg = NULL;
  int client;
  int tap = 0, list = 0, c, rc;
  cf_known *known = NULL;
  size_t nknown = 0;

  /* GNU getopt permutes: options may come before or after the role and
   * address. */
  while ((c = getopt_long(argc, argv, "vh", longopts, NULL)) != -1) {
    switch (c) {
    case O_PSK:
      psk_file = optarg;
      break;
    case O_CERT:
      cert_file = optarg;
      break;
    case O_TCP:
      if (parse_hostport(optarg, &cf_opt.tcp, &cf_opt.tcplen, SOCK_STREAM)) {
        fprintf(stderr, "prd-conformance: --tcp: '%s' is not HOST:PORT\n",
                optarg);
        return 2;
      }
      cf_opt.have_tcp = 1;
      break;
    case O_SERVICE_TCP:
      if (parse_service("--service-tcp", optarg, 1, SOCK_STREAM,
                        cf_opt.svc_name, &cf_opt.svc_tcp, &cf_opt.svc_tcplen)) {
        return 2;
      }
      cf_opt.have_svc_tcp = 1;
      break;
    case O_TCP_PATH:
      if (parse_hostport(optarg, &cf_opt.tcp_path, &cf_opt.tcp_pathlen,
                         SOCK_STREAM)) {
        fprintf(stderr, "prd-conformance: --tcp-path: '%s' is not HOST:PORT\n",
                optarg);
        return 2;
      }
      cf_opt.have_tcp_path = 1;
      break;
    case O_SERVICE_UDP:
      if (parse_service("--service-udp", optarg, 0, SOCK_DGRAM,
                        cf_opt.svc_udp_name, &cf_opt.svc_udp,
                        &cf_opt.svc_udplen)) {
        return 2;
      }
      cf_opt.have_svc_udp = 1;
      break;
    case O_CLIENT:
      client_arg = optarg;
      break;
    case O_AUTH_TIMEOUT:
      if (parse_secs("--auth-timeout", optarg, &cf_opt.auth_timeout_s)) {
        return 2;
      }
      break;
    case O_TIMEOUT:
      if (parse_secs("--timeout", optarg, &cf_opt.timeout_s)) {
        return 2;
      }
      break;
    case O_BIND:
      cf_opt.bind = optarg;
      break;
    case O_TAP:
      tap = 1;
      break;
    case O_JUNIT:
      junit = optarg;
      break;
    case O_KNOWN:
      known_file = optarg;
      break;
    case O_TEST:
      filter = optarg;
      break;
    case O_LIST:
      list = 1;
      break;
    case O_LISTEN:
      listen = optarg;
      break;
    case O_CONFIG_DIR:
      config_dir = optarg;
      break;
    case 'v':
      ++cf_opt.verbose;
      break;
    case 'h':
      fputs(USAGE, stdout);
      return 0;
    default:
      fputs("prd-conformance: try --help\n", stderr);
      return 2;
    }
  }
  if (list) {
    for (int role = 0; role < 2; ++role) {
      const cf_test *tests = role ? cf_client_tests : cf_server_tests;
      size_t n = role ? cf_client_ntests : cf_server_ntests;
      for (size_t i = 0; i < n; ++i) {
        const cf_test *t = &tests[i];
        printf("%s\t%s %s\t%s\t%s%s\n", t->id, t->file, t->sec, t->level,
               t->title, t->needs_tcp ? " (needs --tcp)" : "");
      }
    }
    return 0;
  }
  if (optind >= argc) {
    fputs(USAGE, stderr);
    return 2;
  }
  client = strcmp(argv[optind], "client") == 0;
  if (!client && strcmp(argv[optind], "server") != 0) {
    fprintf(stderr, "prd-conformance: unknown role '%s' (server, client)\n",
            argv[optind]);
    return 2;
  }
  if (client) {
    if (listen == NULL || config_dir == NULL) {
      fprintf(stderr, "prd-conformance: client: --listen and --config-dir "
                      "are required\n");
      return 2;
    }
    if (parse_hostport(listen, &cf_opt.target, &cf_opt.targetlen, SOCK_DGRAM) !=
        0) {
      fprintf(stderr, "prd-conformance: --listen: '%s' is not HOST:PORT\n",
              listen);
      return 2;
    }
    optind += 1;
  } else {
    if (optind + 1 >= argc) {
      fprintf(stderr, "prd-conformance: server: HOST:PORT missing\n");
      return 2;
    }
    if (parse_hostport(argv[optind + 1], &cf_opt.target, &cf_opt.targetlen,
                       SOCK_DGRAM) != 0) {
      fprintf(stderr, "prd-conformance: '%s' is not HOST:PORT\n",
              argv[optind + 1]);
      return 2;
    }
    optind += 2;
  }
  if (optind < argc) {
    fprintf(stderr, "prd-conformance: unexpected argument '%s'\n",
            argv[optind]);
    return 2;
  }
  if (psk_file == NULL || (!client && cert_file == NULL)) {
    fprintf(stderr, "prd-conformance: --psk-file%s required\n",
            client ? " is" : " and --server-cert are");
    return 2;
  }
  if (load_psk(psk_file, cf_opt.psk, &cf_opt.psklen) != 0) {
    return 2;
  }
  if (client_arg) {
    const char *colon = strchr(client_arg, ':');
    size_t n = colon ? (size_t)(colon - client_arg) : 0;
    if (colon == NULL || !prd_client_name_valid(client_arg, n) ||
        colon[1] == '\0') {
      fprintf(stderr,
              "prd-conformance: --client: '%s' is not NAME:FILE (NAME a "
              "client name, spec/02-framing.md §3.3)\n",
              client_arg);
      return 2;
    }
    memcpy(cf_opt.client_name, client_arg, n);
    cf_opt.client_name[n] = '\0';
    if (load_psk(colon + 1, cf_opt.client_psk, &cf_opt.client_psklen) != 0) {
      return 2;
    }
    cf_opt.have_client = 1;
  }
  if (!client &&
      (cf_opt.cert = read_file(cert_file, 65536, &cf_opt.certlen)) == NULL) {
    return 2;
  }
  if (known_file && (known = load_known(known_file, &nknown)) == NULL) {
    return 2;
  }
  if (client) {
    if (cf_client_setup(listen, config_dir) != 0) {
      return 2;
    }
    rc = cf_report_run(cf_client_tests, cf_client_ntests, filter, tap, junit,
                       known, nknown, "client");
  } else {
    rc = cf_report_run(cf_server_tests, cf_server_ntests, filter, tap, junit,
                       known, nknown, "server");
  }
  free(cf_opt.cert);
  free(known);
  free(g_known_text);
  gnutls_memset(cf_opt.psk, 0, sizeof(cf_opt.psk));
  gnutls_memset(cf_opt.client_psk, 0, sizeof(cf_opt.client_psk));
  return rc;
}
