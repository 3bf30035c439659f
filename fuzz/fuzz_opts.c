/* SPDX-License-Identifier: GPL-3.0-only */
/* libFuzzer harness for the command line and config file parser (src/cli). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cli/opts.h"
#include "cli/opts_internal.h"
#include "codec/codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_ARGS 64

/* First input byte. */
#define F_CLIENT 0x01u    /* role: client, else server */
#define F_CONFIG 0x02u    /* the last token is the config file's text */
#define F_ENV_PSK 0x04u   /* PORTREDIRECT_PSK set (else unset) */
#define F_ENV_XDG 0x08u   /* XDG_CONFIG_HOME empty (else "/nonexistent") */
#define F_ENV_KEY 0x10u   /* SSLKEYLOGFILE set (else unset) */
#define F_EMPTY_PSK 0x20u /* with F_ENV_PSK: PORTREDIRECT_PSK="" */
#define F_PSK_FILE 0x40u  /* the last (remaining) token is a --quic-psk-file */

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "fuzz_opts: invariant failed: %s\n", #cond);             \
      abort();                                                                 \
    }                                                                          \
  } while (0)

#define TERMINATED(field) CHECK(memchr((field), '\0', sizeof(field)) != NULL)

/* check_parsed asserts what a successful parse promises. */
static void check_parsed(const prd_opts *o, prd_role role) {
  size_t i;

  CHECK(o->role == role);
  TERMINATED(o->config_dir);
  TERMINATED(o->config_file);
  TERMINATED(o->keylog_file);
  TERMINATED(o->metrics_listen);
  TERMINATED(o->local_host);
  TERMINATED(o->quic_server_host);
  TERMINATED(o->destination_host);
  TERMINATED(o->remote_hostname_match);
  TERMINATED(o->quic_local_host);
  TERMINATED(o->server_cert);
  CHECK(o->config_dir[0] != '\0');
  CHECK(o->log_level <= PRD_LOG_TRACE);
  CHECK(o->congestion_control <= PRD_CC_BBR2);
  CHECK(o->idle_timeout_ms >= 1000 && o->idle_timeout_ms <= 600000);
  CHECK(o->keepalive_ms < o->idle_timeout_ms);
  CHECK(o->keepalive_ms == 0 || o->keepalive_ms >= 100);
  CHECK(o->max_udp_payload == 0 ||
        (o->max_udp_payload >= 1200 && o->max_udp_payload <= 65527));
  CHECK(o->n_cert_hostnames <= PRD_MAX_CERT_HOSTNAMES);
  for (i = 0; i < o->n_cert_hostnames; ++i) {
    TERMINATED(o->cert_hostnames[i]);
    CHECK(o->cert_hostnames[i][0] != '\0');
  }
  if (o->psk == NULL) {
    CHECK(o->print_fingerprint);
    CHECK(o->psklen == 0);
  } else {
    CHECK(o->psklen >= 1 && o->psklen <= 1024);
  }
  CHECK(o->n_services <= PRD_MAX_SERVICES);
  for (i = 0; i < o->n_services; ++i) {
    TERMINATED(o->services[i].name);
    CHECK(prd_service_name_valid(o->services[i].name,
                                 strlen(o->services[i].name)));
    CHECK(o->services[i].last >= o->services[i].port);
  }
  if (role == PRD_ROLE_SERVER) {
    CHECK(o->local_port != 0 || o->print_fingerprint || o->n_services > 0);
    CHECK(o->quic_server_port != 0);
    CHECK(o->local_host[0] != '\0' && o->quic_server_host[0] != '\0');
    CHECK(o->n_remotes == 0);
    CHECK(o->auth_timeout_ms >= 100 && o->auth_timeout_ms <= 600000);
    CHECK(o->max_clients >= 1 && o->max_connections >= 1);
  } else {
    CHECK(o->destination_port != 0 || o->print_fingerprint ||
          o->n_services > 0);
    CHECK(o->destination_host[0] != '\0');
    CHECK(o->n_remotes >= 1 && o->n_remotes <= PRD_MAX_REMOTES);
    for (i = 0; i < o->n_remotes; ++i) {
      TERMINATED(o->remotes[i].host);
      CHECK(o->remotes[i].host[0] != '\0');
      CHECK(o->remotes[i].port != 0);
      TERMINATED(o->remotes[i].cert);
      TERMINATED(o->remotes[i].name);
    }
    CHECK(o->max_streams >= 1 && o->max_streams <= 1000000);
    CHECK(o->proxy_protocol <= PRD_PROXY_V2);
    CHECK(!o->provide_metrics || o->metrics_listen[0] != '\0');
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static FILE *devnull;
  char *argv[MAX_ARGS + 1];
  int argc = 0;
  prd_opts_io io;
  prd_opts o;
  prd_role role;
  unsigned flags;
  char *buf;
  char *p;
  char *end;
  char pskpath[64];
  int fd = -1;
  int rv;

  if (size < 1) {
    return 0;
  }
  if (devnull == NULL) {
    devnull = fopen("/dev/null", "w");
    if (devnull == NULL) {
      abort();
    }
  }
  flags = data[0];
  role = (flags & F_CLIENT) != 0 ? PRD_ROLE_CLIENT : PRD_ROLE_SERVER;
  if ((flags & F_ENV_PSK) != 0) {
    setenv("PORTREDIRECT_PSK", (flags & F_EMPTY_PSK) != 0 ? "" : "fuzz-psk", 1);
  } else {
    unsetenv("PORTREDIRECT_PSK");
  }
  setenv("XDG_CONFIG_HOME", (flags & F_ENV_XDG) != 0 ? "" : "/nonexistent", 1);
  if ((flags & F_ENV_KEY) != 0) {
    setenv("SSLKEYLOGFILE", "/nonexistent/keys", 1);
  } else {
    unsetenv("SSLKEYLOGFILE");
  }

  /* The rest, NUL-separated, is argv[1..]; a private NUL-terminated copy. */
  buf = malloc(size);
  if (buf == NULL) {
    return 0;
  }
  memcpy(buf, data + 1, size - 1);
  buf[size - 1] = '\0';
  end = buf + size - 1;
  argv[argc++] = "portredirect";
  for (p = buf; p <= end && argc < MAX_ARGS; p += strlen(p) + 1) {
    argv[argc++] = p;
  }
  argv[argc] = NULL;

  memset(&io, 0, sizeof(io));
  io.out = devnull;
  io.err = devnull;
  if ((flags & F_CONFIG) != 0 && argc > 1) {
    --argc;
    io.config_buf = argv[argc];
    io.config_len = strlen(argv[argc]);
    io.config_name = "fuzz.conf";
    argv[argc] = NULL;
  }

  /* The PSK file lives in a memfd, named through /proc/self/fd. */
  if ((flags & F_PSK_FILE) != 0 && argc > 1 && argc + 2 <= MAX_ARGS) {
    const char *psk = argv[--argc];
    size_t psklen = strlen(psk);
    fd = memfd_create("fuzz-psk", MFD_CLOEXEC);
    if (fd < 0 || write(fd, psk, psklen) != (ssize_t)psklen) {
      abort();
    }
    snprintf(pskpath, sizeof(pskpath), "/proc/self/fd/%d", fd);
    argv[argc++] = "--quic-psk-file";
    argv[argc++] = pskpath;
    argv[argc] = NULL;
  }

  rv = prd_opts_parse_io(&o, role, argc, argv, &io);
  CHECK(rv == -1 || rv == 0 || rv == 1);
  if (rv == 0) {
    check_parsed(&o, role);
  } else {
    CHECK(o.psk == NULL && o.psklen == 0);
  }
  prd_opts_free(&o);
  CHECK(o.psk == NULL);
  if (fd >= 0) {
    close(fd);
  }
  free(buf);
  return 0;
}
