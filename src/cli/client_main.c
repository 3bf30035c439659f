/* SPDX-License-Identifier: GPL-3.0-only */
/* portredirect_client: dials the server(s), authenticates, and relays every
 * stream the server opens to the local destination. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/log.h"
#include "../quic/identity.h"
#include "../relay/relay.h"
#include "opts.h"
#include "setup.h"

/* print_fp prints a fingerprint as --print-fingerprint does. */
static void print_fp(const uint8_t *d) {
  printf("SHA256:");
  for (size_t i = 0; i < PRD_FINGERPRINT_BYTES; ++i) {
    printf("%02X%s", d[i], i + 1 < PRD_FINGERPRINT_BYTES ? ":" : "\n");
  }
}

int main(int argc, char **argv) {
  static prd_opts o;
  static prd_relay_config rc;
  char err[512], pinpath[4200], tofupath[4200], fp[PRD_FINGERPRINT_LEN];
  int tofu_first = 0, all_own = 1, by_fp;
  uint8_t *pin = NULL;
  size_t pinlen = 0;
  int rv;

  rv = prd_opts_parse(&o, PRD_ROLE_CLIENT, argc, argv);
  if (rv != 0) {
    return rv > 0 ? 0 : 2;
  }
  prd_log_threshold = o.log_level;
  by_fp = o.n_server_fingerprints > 0;
  prd_setup_raise_nofile();
  if (prd_quic_check_versions() != 0) {
    prd_opts_free(&o);
    return 1;
  }
  /* The pin: --server-cert, else cert.der in our config directory
   * (spec/06-files-and-cli.md §3). */
  if (o.server_cert[0]) {
    snprintf(pinpath, sizeof(pinpath), "%s", o.server_cert);
  } else {
    snprintf(pinpath, sizeof(pinpath), "%s/%s", o.config_dir, PRD_CERT_FILE);
  }
  for (size_t i = 0; i < o.n_remotes; ++i) {
    all_own &= o.remotes[i].cert[0] != 0;
  }
  /* spec/06-files-and-cli.md §3: a server's own cert=FILE, else
   * --server-fingerprint, else the pin file, else trust on first use. */
  rv = all_own || by_fp
           ? 0
           : prd_file_read(&pin, &pinlen, pinpath, PRD_MAX_DER_FILE);
  if (rv == -ENOENT && o.trust_on_first_use && !o.server_cert[0]) {
    /* spec/06-files-and-cli.md §3: a TOFU pin of our own, under a name that
     * cannot collide with the server's files. */
    snprintf(tofupath, sizeof(tofupath), "%s/%s", o.config_dir,
             o.n_remotes == 1 ? PRD_TOFU_FILE : "client-tofu-*.der");
    /* Several servers: one TOFU file per server, read below. */
    rv = o.n_remotes == 1
             ? prd_file_read(&pin, &pinlen, tofupath, PRD_MAX_DER_FILE)
             : -ENOENT;
    if (rv == 0) {
      snprintf(pinpath, sizeof(pinpath), "%s", tofupath);
    } else if (rv == -ENOENT) {
      char derr[512];
      if (prd_config_dir_ensure(o.config_dir, derr, sizeof(derr)) != 0) {
        fprintf(stderr, "portredirect_client: %s\n", derr);
        prd_opts_free(&o);
        return 2;
      }
      PRD_LOG_WARN("no pinned certificate: trusting the first server "
                   "certificate seen (--trust-on-first-use); it will be "
                   "stored in %s",
                   tofupath);
      pin = NULL;
      pinlen = 0;
      rv = 0;
      tofu_first = 1;
    }
  }
  if (rv != 0) {
    if (rv == -ENOENT) {
      fprintf(stderr,
              "portredirect_client: no pinned server certificate: %s does "
              "not exist. Start the server once, then copy its "
              "~/.config/portredirect/cert.der to %s/ (or give "
              "--server-cert FILE)\n",
              pinpath, o.config_dir);
    } else {
      fprintf(stderr, "portredirect_client: cannot read %s: %s\n", pinpath,
              prd_strerror(rv));
    }
    prd_opts_free(&o);
    return 2;
  }
  if (tofu_first || all_own || by_fp) {
    snprintf(fp, sizeof(fp), "(none)");
  } else if (prd_cert_check_der(pin, pinlen) != 0 ||
             prd_cert_fingerprint(fp, pin, pinlen) != 0) {
    fprintf(stderr, "portredirect_client: %s is not a DER X.509 certificate\n",
            pinpath);
    free(pin);
    prd_opts_free(&o);
    return 2;
  }
  if (o.print_fingerprint && by_fp) {
    for (size_t i = 0; i < o.n_server_fingerprints; ++i) {
      print_fp(o.server_fingerprints[i]);
    }
    prd_opts_free(&o);
    return 0;
  }
  if (o.print_fingerprint) {
    /* The pin's fingerprint, to compare with the server's out of band. */
    if (tofu_first || all_own) {
      fprintf(stderr, "portredirect_client: no certificate pinned yet\n");
      prd_opts_free(&o);
      return 1;
    }
    char names[600];
    printf("SHA256:%s\n", fp);
    fflush(stdout);
    if (prd_cert_names(pin, pinlen, names, sizeof(names)) >= 0) {
      fprintf(stderr, "certificate names: %s\n", names);
    }
    free(pin);
    prd_opts_free(&o);
    return 0;
  }
  prd_setup_psk_warnings(&o);
  if (o.keylog_file[0] && prd_setup_keylog(&o, "portredirect_client") != 0) {
    goto usage_fail;
  }
  if (!tofu_first && !all_own && !by_fp) {
    PRD_LOG_INFO("pinned server certificate %s, SHA-256 fingerprint %s",
                 pinpath, fp);
  }
  if (by_fp && !all_own) {
    PRD_LOG_INFO("pinned server certificate by fingerprint "
                 "(--server-fingerprint, %zu value%s)",
                 o.n_server_fingerprints,
                 o.n_server_fingerprints == 1 ? "" : "s");
  }

  for (size_t i = 0; i < o.n_remotes && i < 16; ++i) {
    prd_relay_remote *rr = &rc.remotes[rc.nremotes];
    const prd_hostport *hp = &o.remotes[i];
    /* Every address: the relay dials them in order and resolves the name
     * again before each round (spec/07-state-machines.md §4). */
    rr->naddrs = prd_resolve(rr->addrs, PRD_RELAY_MAX_ADDRS, hp->host, hp->port,
                             0, err, sizeof(err));
    if (rr->naddrs == 0) {
      fprintf(stderr, "portredirect_client: --quic-remote-host: %s\n", err);
      goto usage_fail;
    }
    snprintf(rr->host, sizeof(rr->host), "%s", hp->host);
    rr->port = hp->port;
    snprintf(rr->label, sizeof(rr->label), "%s%s%s:%u",
             strchr(hp->host, ':') ? "[" : "", hp->host,
             strchr(hp->host, ':') ? "]" : "", hp->port);
    snprintf(rr->expected_name, sizeof(rr->expected_name), "%s",
             hp->name[0]                  ? hp->name
             : o.remote_hostname_match[0] ? o.remote_hostname_match
                                          : hp->host);
    rr->pin_der = pin;
    rr->pinlen = pinlen;
    snprintf(rr->pin_name, sizeof(rr->pin_name), "%s", pinpath);
    if (by_fp && !hp->cert[0]) {
      rr->pin_sha256 = o.server_fingerprints[0];
      rr->npin_sha256 = o.n_server_fingerprints;
      snprintf(rr->pin_name, sizeof(rr->pin_name), "--server-fingerprint");
    }
    if (hp->cert[0]) {
      /* This server's own pin (--quic-remote HOST:PORT,cert=FILE). */
      uint8_t *own = NULL;
      size_t ownlen = 0;
      char ofp[PRD_FINGERPRINT_LEN];
      rv = prd_file_read(&own, &ownlen, hp->cert, PRD_MAX_DER_FILE);
      if (rv != 0 || prd_cert_check_der(own, ownlen) != 0 ||
          prd_cert_fingerprint(ofp, own, ownlen) != 0) {
        fprintf(stderr,
                "portredirect_client: --quic-remote %s: cannot use "
                "cert=%s: %s\n",
                rr->label, hp->cert,
                rv != 0 ? prd_strerror(rv) : "not a DER X.509 certificate");
        free(own);
        goto usage_fail;
      }
      PRD_LOG_INFO("pinned certificate for %s: %s, SHA-256 %s", rr->label,
                   hp->cert, ofp);
      rr->pin_der = own;
      rr->pinlen = ownlen;
      rr->pin_owned = 1;
      snprintf(rr->pin_name, sizeof(rr->pin_name), "%s", hp->cert);
    }
    if (o.n_remotes == 1) {
      snprintf(rr->tofu_path, sizeof(rr->tofu_path), "%s/%s", o.config_dir,
               PRD_TOFU_FILE);
    } else {
      /* spec/06-files-and-cli.md §3.4: each server its own TOFU pin. */
      char safe[256];
      size_t k;
      for (k = 0; hp->host[k] && k < sizeof(safe) - 1; ++k) {
        char ch = hp->host[k];
        safe[k] = (ch == ':' || ch == '/' || ch == '%') ? '_' : ch;
      }
      safe[k] = 0;
      snprintf(rr->tofu_path, sizeof(rr->tofu_path), "%s/client-tofu-%s-%u.der",
               o.config_dir, safe, hp->port);
      if (tofu_first && !hp->cert[0]) {
        uint8_t *tp = NULL;
        size_t tplen = 0;
        if (prd_file_read(&tp, &tplen, rr->tofu_path, PRD_MAX_DER_FILE) == 0 &&
            prd_cert_check_der(tp, tplen) == 0) {
          PRD_LOG_INFO("pinned certificate for %s: %s", rr->label,
                       rr->tofu_path);
          rr->pin_der = tp;
          rr->pinlen = tplen;
          rr->pin_owned = 1;
          memcpy(rr->pin_name, rr->tofu_path, sizeof(rr->pin_name));
        } else {
          free(tp);
        }
      }
    }
    ++rc.nremotes;
  }
  rc.ndest = prd_resolve(rc.dest, PRD_RELAY_MAX_ADDRS, o.destination_host,
                         o.destination_port, 0, err, sizeof(err));
  if (rc.ndest == 0) {
    fprintf(stderr, "portredirect_client: --destination-host: %s\n", err);
    goto usage_fail;
  }
  snprintf(rc.dest_label, sizeof(rc.dest_label), "%s%s%s:%u",
           strchr(o.destination_host, ':') ? "[" : "", o.destination_host,
           strchr(o.destination_host, ':') ? "]" : "", o.destination_port);
  if (o.quic_local_host[0] || o.quic_local_port) {
    const char *h =
        o.quic_local_host[0]
            ? o.quic_local_host
            : (rc.remotes[0].addrs[0].u.sa.sa_family == AF_INET6 ? "::"
                                                                 : "0.0.0.0");
    if (prd_resolve(&rc.quic_local, 1, h, o.quic_local_port, 1, err,
                    sizeof(err)) == 0) {
      fprintf(stderr, "portredirect_client: --quic-local-host: %s\n", err);
      goto usage_fail;
    }
    rc.have_quic_local = 1;
    rc.quic_local_any = !o.quic_local_host[0];
  }
  rc.quic.role = PRD_AUTH_ROLE_CLIENT;
  rc.quic.psk = o.psk;
  rc.quic.psklen = o.psklen;
  rc.quic.tofu = o.trust_on_first_use;
  rc.quic.keylog_file = o.keylog_file[0] ? o.keylog_file : NULL;
  rc.quic.auth_timeout_ns = (uint64_t)5 * PRD_NS_PER_S;
  rc.quic.idle_timeout_ns = (uint64_t)o.idle_timeout_ms * PRD_NS_PER_MS;
  rc.quic.keepalive_ns = (uint64_t)o.keepalive_ms * PRD_NS_PER_MS;
  rc.quic.max_udp_payload = o.max_udp_payload;
  rc.quic.max_streams = o.max_streams;
  rc.quic.cc_algo = o.congestion_control == PRD_CC_RENO   ? PRD_QUIC_CC_RENO
                    : o.congestion_control == PRD_CC_BBR  ? PRD_QUIC_CC_BBR
                    : o.congestion_control == PRD_CC_BBR2 ? PRD_QUIC_CC_BBR2
                                                          : PRD_QUIC_CC_CUBIC;
  rc.proxy_protocol = (int)o.proxy_protocol;
  rc.grace_ns = (uint64_t)o.grace_ms * PRD_NS_PER_MS;
  snprintf(rc.metrics_listen, sizeof(rc.metrics_listen), "%s",
           o.metrics_listen);

  rv = prd_relay_client_run(&rc);
  free(pin);
  prd_opts_free(&o);
  return rv;
usage_fail:
  free(pin);
  prd_opts_free(&o);
  return 2;
}
