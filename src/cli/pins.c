/* SPDX-License-Identifier: GPL-3.0-only */
/* The client's certificate pins and its trust-on-first-use store
 * (spec/06-files-and-cli.md §3). */
#include "pins.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../common/err.h"
#include "../common/file.h"
#include "../common/log.h"

#define PROG "portredirect_client"

/* load_tofu reads the single server's stored TOFU pin, or, when there is
 * none yet, prepares the first use. Returns 0 or -errno as prd_file_read. */
static int load_tofu(prd_pins *p, const prd_opts *o) {
  char tofupath[4200];
  char derr[512];
  int rv;

  /* spec/06-files-and-cli.md §3: a TOFU pin of our own, under a name that
   * cannot collide with the server's files. Several servers: one TOFU file
   * per server, read by prd_pins_remote. */
  snprintf(tofupath, sizeof(tofupath), "%s/%s", o->config_dir,
           o->n_remotes == 1 ? PRD_TOFU_FILE : "client-tofu-*.der");
  rv = o->n_remotes == 1
           ? prd_file_read(&p->der, &p->len, tofupath, PRD_MAX_DER_FILE)
           : -ENOENT;
  if (rv == 0) {
    snprintf(p->path, sizeof(p->path), "%s", tofupath);
    return 0;
  }
  if (rv != -ENOENT) {
    return rv;
  }
  if (prd_config_dir_ensure(o->config_dir, derr, sizeof(derr)) != 0) {
    fprintf(stderr, PROG ": %s\n", derr);
    return PRD_ERR_CONFIG;
  }
  PRD_LOG_WARN("no pinned certificate: trusting the first server "
               "certificate seen (--trust-on-first-use); it will be "
               "stored in %s",
               tofupath);
  p->der = NULL;
  p->len = 0;
  p->tofu_first = 1;
  return 0;
}

int prd_pins_load(prd_pins *p, const prd_opts *o) {
  int rv;

  memset(p, 0, sizeof(*p));
  p->by_fp = o->n_server_fingerprints > 0;
  p->all_own = 1;
  for (size_t i = 0; i < o->n_remotes; ++i) {
    p->all_own &= o->remotes[i].cert[0] != 0;
  }
  /* The pin: --server-cert, else cert.der in our config directory. */
  if (o->server_cert[0]) {
    snprintf(p->path, sizeof(p->path), "%s", o->server_cert);
  } else {
    snprintf(p->path, sizeof(p->path), "%s/%s", o->config_dir, PRD_CERT_FILE);
  }
  /* spec/06-files-and-cli.md §3: a server's own cert=FILE, else
   * --server-fingerprint, else the pin file, else trust on first use. */
  rv = p->all_own || p->by_fp
           ? 0
           : prd_file_read(&p->der, &p->len, p->path, PRD_MAX_DER_FILE);
  if (rv == -ENOENT && o->trust_on_first_use && !o->server_cert[0]) {
    rv = load_tofu(p, o);
    if (rv == PRD_ERR_CONFIG) {
      return 2;
    }
  }
  if (rv == -ENOENT) {
    fprintf(stderr,
            PROG ": no pinned server certificate: %s does not exist. Start "
                 "the server once, then copy its "
                 "~/.config/portredirect/cert.der to %s/ (or give "
                 "--server-cert FILE)\n",
            p->path, o->config_dir);
    return 2;
  }
  if (rv != 0) {
    fprintf(stderr, PROG ": cannot read %s: %s\n", p->path, prd_strerror(rv));
    return 2;
  }
  if (p->tofu_first || p->all_own || p->by_fp) {
    snprintf(p->fp, sizeof(p->fp), "(none)");
  } else if (prd_cert_check_der(p->der, p->len) != 0 ||
             prd_cert_fingerprint(p->fp, p->der, p->len) != 0) {
    fprintf(stderr, PROG ": %s is not a DER X.509 certificate\n", p->path);
    return 2;
  }
  return 0;
}

int prd_pins_print_fingerprint(const prd_pins *p, const prd_opts *o) {
  char names[600];

  if (p->by_fp) {
    for (size_t i = 0; i < o->n_server_fingerprints; ++i) {
      printf("SHA256:");
      for (size_t j = 0; j < PRD_FINGERPRINT_BYTES; ++j) {
        printf("%02X%s", o->server_fingerprints[i][j],
               j + 1 < PRD_FINGERPRINT_BYTES ? ":" : "\n");
      }
    }
    return 0;
  }
  /* The pin's fingerprint, to compare with the server's out of band. */
  if (p->tofu_first || p->all_own) {
    fprintf(stderr, PROG ": no certificate pinned yet\n");
    return 1;
  }
  printf("SHA256:%s\n", p->fp);
  fflush(stdout);
  if (prd_cert_names(p->der, p->len, names, sizeof(names)) >= 0) {
    fprintf(stderr, "certificate names: %s\n", names);
  }
  return 0;
}

void prd_pins_log(const prd_pins *p, const prd_opts *o) {
  if (!p->tofu_first && !p->all_own && !p->by_fp) {
    PRD_LOG_INFO("pinned server certificate %s, SHA-256 fingerprint %s",
                 p->path, p->fp);
  }
  if (p->by_fp && !p->all_own) {
    PRD_LOG_INFO("pinned server certificate by fingerprint "
                 "(--server-fingerprint, %zu value%s)",
                 o->n_server_fingerprints,
                 o->n_server_fingerprints == 1 ? "" : "s");
  }
}

int prd_pins_tofu_path(char *out, size_t outlen, const prd_opts *o,
                       const prd_hostport *hp) {
  char safe[256];
  size_t k;
  int n;

  if (o->n_remotes == 1) {
    n = snprintf(out, outlen, "%s/%s", o->config_dir, PRD_TOFU_FILE);
    return n >= 0 && (size_t)n < outlen ? 0 : -1;
  }
  /* spec/06-files-and-cli.md §3.4: each server its own TOFU pin. */
  for (k = 0; hp->host[k] && k < sizeof(safe) - 1; ++k) {
    char ch = hp->host[k];
    safe[k] = (ch == ':' || ch == '/' || ch == '%') ? '_' : ch;
  }
  safe[k] = 0;
  n = snprintf(out, outlen, "%s/client-tofu-%s-%u.der", o->config_dir, safe,
               hp->port);
  return n >= 0 && (size_t)n < outlen ? 0 : -1;
}

/* remote_own_pin reads this server's own pin (--quic-remote
 * HOST:PORT,cert=FILE). */
static int remote_own_pin(prd_relay_remote *rr, const prd_hostport *hp) {
  uint8_t *own = NULL;
  size_t ownlen = 0;
  char ofp[PRD_FINGERPRINT_LEN];
  int rv;

  rv = prd_file_read(&own, &ownlen, hp->cert, PRD_MAX_DER_FILE);
  if (rv != 0 || prd_cert_check_der(own, ownlen) != 0 ||
      prd_cert_fingerprint(ofp, own, ownlen) != 0) {
    fprintf(stderr, PROG ": --quic-remote %s: cannot use cert=%s: %s\n",
            rr->label, hp->cert,
            rv != 0 ? prd_strerror(rv) : "not a DER X.509 certificate");
    free(own);
    return -1;
  }
  PRD_LOG_INFO("pinned certificate for %s: %s, SHA-256 %s", rr->label, hp->cert,
               ofp);
  rr->pin_der = own;
  rr->pinlen = ownlen;
  rr->pin_owned = 1;
  snprintf(rr->pin_name, sizeof(rr->pin_name), "%s", hp->cert);
  return 0;
}

/* remote_tofu_pin uses the TOFU pin stored for this one of several
 * servers, if there is a valid one. */
static void remote_tofu_pin(prd_relay_remote *rr) {
  uint8_t *tp = NULL;
  size_t tplen = 0;

  if (prd_file_read(&tp, &tplen, rr->tofu_path, PRD_MAX_DER_FILE) == 0 &&
      prd_cert_check_der(tp, tplen) == 0) {
    PRD_LOG_INFO("pinned certificate for %s: %s", rr->label, rr->tofu_path);
    rr->pin_der = tp;
    rr->pinlen = tplen;
    rr->pin_owned = 1;
    memcpy(rr->pin_name, rr->tofu_path, sizeof(rr->pin_name));
  } else {
    free(tp);
  }
}

int prd_pins_remote(prd_relay_remote *rr, const prd_pins *p, const prd_opts *o,
                    const prd_hostport *hp) {
  rr->pin_der = p->der;
  rr->pinlen = p->len;
  snprintf(rr->pin_name, sizeof(rr->pin_name), "%s", p->path);
  if (p->by_fp && !hp->cert[0]) {
    rr->pin_sha256 = o->server_fingerprints[0];
    rr->npin_sha256 = o->n_server_fingerprints;
    snprintf(rr->pin_name, sizeof(rr->pin_name), "--server-fingerprint");
  }
  if (hp->cert[0] && remote_own_pin(rr, hp) != 0) {
    return -1;
  }
  if (prd_pins_tofu_path(rr->tofu_path, sizeof(rr->tofu_path), o, hp) != 0) {
    fprintf(stderr, PROG ": --config-dir %s: path too long\n", o->config_dir);
    return -1;
  }
  if (o->n_remotes > 1 && p->tofu_first && !hp->cert[0]) {
    remote_tofu_pin(rr);
  }
  return 0;
}

/* The TOFU store. Writing a file means an fsync of it and of its directory,
 * which can take long on a busy disk, so it happens in a thread of its own
 * and the event loop carries on with every other tunnel. The WARN comes
 * after the write, so that whoever reads it finds the file in place. */
typedef struct tofu_job {
  char path[sizeof(((prd_relay_remote *)0)->tofu_path)];
  char label[sizeof(((prd_relay_remote *)0)->label)];
  size_t len;
  uint8_t der[];
} tofu_job;

static pthread_mutex_t tofu_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t tofu_idle = PTHREAD_COND_INITIALIZER;
static unsigned tofu_running; /* jobs not finished, under tofu_mu */
/* Serialises the writes, so that two stores of one file end in order and
 * each ERROR/WARN pair stays together in the log. */
static pthread_mutex_t tofu_write_mu = PTHREAD_MUTEX_INITIALIZER;

static void tofu_write(const tofu_job *job) {
  char fp[PRD_FINGERPRINT_LEN];

  pthread_mutex_lock(&tofu_write_mu);
  if (prd_file_write_atomic(job->path, job->der, job->len, 0600) != 0) {
    PRD_LOG_ERROR("cannot store the server certificate in %s", job->path);
  }
  if (prd_cert_fingerprint(fp, job->der, job->len) != 0) {
    snprintf(fp, sizeof(fp), "?");
  }
  PRD_LOG_WARN("trust on first use: pinned the certificate of %s "
               "(SHA-256 %s) in %s; compare it with "
               "'portredirect_server --print-fingerprint' on the server",
               job->label, fp, job->path);
  pthread_mutex_unlock(&tofu_write_mu);
}

static void *tofu_worker(void *arg) {
  tofu_job *job = arg;

  tofu_write(job);
  free(job);
  pthread_mutex_lock(&tofu_mu);
  --tofu_running;
  pthread_cond_broadcast(&tofu_idle);
  pthread_mutex_unlock(&tofu_mu);
  return NULL;
}

void prd_pins_tofu_store(const prd_relay_remote *remote, const uint8_t *der,
                         size_t len, void *arg) {
  pthread_attr_t attr;
  pthread_t th;
  sigset_t all, old;
  tofu_job *job;
  int rv;

  (void)arg;
  job = malloc(sizeof(*job) + len);
  if (job == NULL) {
    PRD_LOG_ERROR("cannot store the server certificate in %s",
                  remote->tofu_path);
    return;
  }
  memcpy(job->path, remote->tofu_path, sizeof(job->path));
  memcpy(job->label, remote->label, sizeof(job->label));
  job->len = len;
  memcpy(job->der, der, len);
  pthread_mutex_lock(&tofu_mu);
  ++tofu_running;
  pthread_mutex_unlock(&tofu_mu);
  /* Signals stay with the loop's thread (libevent's evsignal). */
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  rv = pthread_attr_init(&attr);
  if (rv == 0) {
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    rv = pthread_create(&th, &attr, tofu_worker, job);
    pthread_attr_destroy(&attr);
  }
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (rv != 0) {
    /* No thread: write here, as before there were threads. */
    tofu_worker(job);
  }
}

int prd_pins_tofu_wait(unsigned timeout_ms) {
  struct timespec until;
  int rv = 0;

  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += (time_t)(timeout_ms / 1000);
  until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
  if (until.tv_nsec >= 1000000000L) {
    until.tv_sec += 1;
    until.tv_nsec -= 1000000000L;
  }
  pthread_mutex_lock(&tofu_mu);
  while (tofu_running > 0 && rv == 0) {
    rv = pthread_cond_timedwait(&tofu_idle, &tofu_mu, &until);
  }
  rv = tofu_running > 0 ? -1 : 0;
  pthread_mutex_unlock(&tofu_mu);
  return rv;
}

void prd_pins_free(prd_pins *p) {
  free(p->der);
  p->der = NULL;
  p->len = 0;
}
