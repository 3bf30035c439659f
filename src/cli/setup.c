/* SPDX-License-Identifier: GPL-3.0-only */
/* Start-up steps shared by both mains. */
#include "setup.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <sys/stat.h>
#include <unistd.h>
#include <sys/resource.h>
#include <stdio.h>
#include <string.h>

#include "../common/log.h"

size_t prd_resolve(prd_sockaddr *out, size_t max, const char *host,
                   uint16_t port, int passive, char *err, size_t errlen) {
  struct addrinfo hints, *res = NULL, *ai;
  char portstr[8];
  size_t n = 0;
  int rv;

  memset(&hints, 0, sizeof(hints));
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0);
  snprintf(portstr, sizeof(portstr), "%u", port);
  rv = getaddrinfo(host, portstr, &hints, &res);
  if (rv != 0) {
    snprintf(err, errlen, "cannot resolve \"%s\": %s", host, gai_strerror(rv));
    return 0;
  }
  for (ai = res; ai && n < max; ai = ai->ai_next) {
    if (ai->ai_addrlen > sizeof(out[n].u)) {
      continue;
    }
    memset(&out[n], 0, sizeof(out[n]));
    memcpy(&out[n].u, ai->ai_addr, ai->ai_addrlen);
    out[n].len = ai->ai_addrlen;
    ++n;
  }
  freeaddrinfo(res);
  if (n == 0) {
    snprintf(err, errlen, "no usable address for \"%s\"", host);
  }
  return n;
}

void prd_setup_psk_warnings(const prd_opts *o) {
  if (o->psk_from_argv) {
    PRD_LOG_WARN("--quic-psk puts the key on the command line, where every "
                 "local user can read it (ps); prefer --quic-psk-file or "
                 "PORTREDIRECT_PSK");
  }
  if (o->psk_file_loose) {
    PRD_LOG_WARN("the PSK file %s is readable by group/others (mode %04o); "
                 "run: chmod 600 %s",
                 o->psk_file, o->psk_file_mode, o->psk_file);
  }
  if (o->psk != NULL && o->psklen < 16) {
    PRD_LOG_WARN("the PSK is only %zu bytes long: short keys are easy to "
                 "guess. Use at least 16 random bytes, e.g. "
                 "'openssl rand -base64 32 > psk' with --quic-psk-file psk",
                 o->psklen);
  }
}

int prd_setup_keylog(const prd_opts *o, const char *prog) {
  struct stat st;
  int fd = open(o->keylog_file,
                O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) {
    fprintf(stderr, "%s: cannot open the key log file %s: %s\n", prog,
            o->keylog_file, strerror(errno));
    return -1;
  }
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || (st.st_mode & 077) != 0) {
    fprintf(stderr,
            "%s: the key log file %s is not a regular file that only its "
            "owner can access (mode %04o); run: chmod 600 %s, or name a "
            "new file\n",
            prog, o->keylog_file, (unsigned)(st.st_mode & 07777),
            o->keylog_file);
    close(fd);
    return -1;
  }
  close(fd);
  PRD_LOG_WARN("writing TLS secrets to %s (--keylog-file/SSLKEYLOGFILE): "
               "anyone who reads it can decrypt the tunnel, and test PSK "
               "guesses offline against the captured authentication",
               o->keylog_file);
  return 0;
}

void prd_setup_raise_nofile(void) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= rl.rlim_max) {
    return;
  }
  /* Every tunneled connection holds a socket: take what we may. */
  rl.rlim_cur = rl.rlim_max;
  if (setrlimit(RLIMIT_NOFILE, &rl) == 0) {
    PRD_LOG_DEBUG("file descriptor limit raised to %llu",
                  (unsigned long long)rl.rlim_cur);
  }
}

int prd_setup_process(const prd_opts *o) {
  prd_log_threshold = o->log_level;
  prd_setup_raise_nofile();
  return prd_quic_check_versions() != 0 ? -1 : 0;
}

void prd_setup_log_reload_error(const char *msg, const char *prog) {
  size_t plen = strlen(prog), n;

  if (msg == NULL || msg[0] == '\0') {
    msg = "the configuration does not build";
  }
  if (strncmp(msg, prog, plen) == 0 && strncmp(msg + plen, ": ", 2) == 0) {
    msg += plen + 2;
  }
  n = strcspn(msg, "\n");
  PRD_LOG_ERROR("reload refused: %.*s; the running configuration stays", (int)n,
                msg);
}

FILE *prd_setup_reload_begin(char **pmsg, size_t *pmsglen) {
  FILE *f;
  *pmsg = NULL;
  *pmsglen = 0;
  f = open_memstream(pmsg, pmsglen);
  if (f == NULL) {
    PRD_LOG_ERROR("reload refused: out of memory; the running configuration "
                  "stays");
  }
  return f;
}

void prd_reload_builds_done(prd_reload_builds *rb, int applied) {
  if (!applied) {
    rb->release(rb->next);
  } else {
    if (rb->prev) {
      rb->release(rb->prev);
    }
    rb->prev = rb->cur;
    rb->cur = rb->next;
  }
  rb->next = NULL;
}

void prd_reload_builds_free(prd_reload_builds *rb) {
  void *all[] = {rb->cur, rb->prev, rb->next};
  for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); ++i) {
    if (all[i]) {
      rb->release(all[i]);
    }
  }
  memset(rb, 0, sizeof(*rb));
}
