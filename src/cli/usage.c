/* SPDX-License-Identifier: GPL-3.0-only */
/* --help of both binaries, from the option table. */
#include <stdio.h>
#include <string.h>

#include "opts_priv.h"

static const char *const section_names[SEC_COUNT] = {"Tunnel", "QUIC",
                                                     "Security", "Operations"};

void prd_opts_print_help(parse_ctx *c) {
  unsigned mask = 1u << c->o->role;
  int width = 0;
  int sec;
  size_t i;
  FILE *f = c->out;

  for (i = 0; i < OPT_COUNT; ++i) {
    const opt_def *d = &prd_opt_defs[i];
    int w = (int)strlen(d->name) + 2 +
            (d->arg != NULL ? (int)strlen(d->arg) + 1 : 0);
    if ((d->roles & mask) != 0 && w > width) {
      width = w;
    }
  }
  if (c->o->role == PRD_ROLE_SERVER) {
    fprintf(f,
            "Usage: %s --local-port PORT [OPTION]...\n"
            "Accept TCP connections on --local-host:--local-port and "
            "forward each one\n"
            "through a QUIC tunnel to an authenticated "
            "portredirect_client.\n",
            c->prog);
  } else {
    fprintf(f,
            "Usage: %s --destination-port PORT [OPTION]...\n"
            "Connect to a portredirect_server over QUIC and forward each "
            "tunneled\n"
            "connection to --destination-host:--destination-port.\n",
            c->prog);
  }
  for (sec = 0; sec < SEC_COUNT; ++sec) {
    fprintf(f, "\n%s:\n", section_names[sec]);
    for (i = 0; i < OPT_COUNT; ++i) {
      const opt_def *d = &prd_opt_defs[i];
      char left[64];
      if ((d->roles & mask) == 0 || (int)d->section != sec) {
        continue;
      }
      if (i == OPT_HELP || i == OPT_VERSION) {
        snprintf(left, sizeof(left), "-%c, --%s", i == OPT_HELP ? 'h' : 'V',
                 d->name);
      } else {
        snprintf(left, sizeof(left), "--%s%s%s", d->name,
                 d->arg != NULL ? " " : "", d->arg != NULL ? d->arg : "");
      }
      fprintf(f, "  %-*s  %s\n", width, left, d->help);
    }
  }
  fprintf(
      f,
      "\n"
      "SECONDS is a whole or decimal number of seconds (5, 0.5) or "
      "milliseconds\n"
      "with \"ms\" (500ms). LEVEL is off, error, warn, info, debug or "
      "trace.\n"
      "HOST is an IPv4 address, an IPv6 address (brackets optional) or "
      "a DNS name.\n"
      "ALGO bbr is BBR v1 and bbr2 BBRv2 when built against ngtcp2 0.12; "
      "ngtcp2 1.x\n"
      "has one BBR, and both names select it.\n"
      "Options may be given as --name VALUE or --name=VALUE.\n"
      "%s"
      "\n"
      "Environment:\n"
      "  PORTREDIRECT_PSK  pre-shared key if no --quic-psk or "
      "--quic-psk-file\n"
      "  SSLKEYLOGFILE     default for --keylog-file\n"
      "  XDG_CONFIG_HOME   locates CONFIG-DIR (an empty value counts as "
      "unset)\n"
      "\n"
      "Files:\n"
      "  CONFIG-DIR           --config-dir, else "
      "$XDG_CONFIG_HOME/portredirect,\n"
      "                       else ~/.config/portredirect\n"
      "%s"
      "  --config FILE        lines of \"key = value\"; key is an "
      "option name without\n"
      "                       \"--\"; # starts a comment; the command "
      "line wins\n",
      c->o->role == PRD_ROLE_SERVER
          ? "--service NAME=HOST:PORT[-LAST][,allow=CIDR]...[,sni=H|,host=H]"
            " listens on\n"
            "each port of the range for the service NAME (1-63 of A-Z a-z "
            "0-9 . _ -);\n"
            "allow= (repeatable, IPv4 or IPv6) admits only those sources, "
            "the others are\n"
            "closed at accept; services on one address are told apart by "
            "the TLS server\n"
            "name (sni=) or HTTP host (host=), one without either is the "
            "default;\n"
            "--local-host and --local-port are the service default.\n"
            "--clients-file FILE: one client per line, \"NAME "
            "psk-file=PATH\n"
            "services=A,B|* [allow=CIDR]...\" (# comments; PATH relative "
            "to FILE; mode\n"
            "0600); a client names itself with --client-name; the PSK of "
            "--quic-psk and\n"
            "--quic-psk-file is the client \"default\" (services=*).\n"
            "--service NAME=udp:HOST:PORT[-LAST][,allow=..][,timeout=S]"
            "[,stream-timeout=S]\n"
            "is a UDP service (README \"UDP services\").\n"
          : "--service NAME=HOST:PORT[-LAST][,proxy-protocol=v1|v2] "
            "connects the\n"
            "service NAME's streams there (a range as long as the "
            "server's);\n"
            "--destination-host and --destination-port are the service "
            "default.\n"
            "--client-name NAME (1-64 of A-Z a-z 0-9 . _ -) is our line in "
            "the server's\n"
            "--clients-file; without it we are the client \"default\".\n"
            "--service NAME=udp:HOST:PORT[-LAST][,timeout=S]"
            "[,stream-timeout=S]\n"
            "is a UDP service (README \"UDP services\").\n",
      c->o->role == PRD_ROLE_SERVER
          ? "  CONFIG-DIR/cert.der  certificate (X.509, DER), made on "
            "first start\n"
            "  CONFIG-DIR/key.der   private key (PKCS#8, DER, mode "
            "0600)\n"
          : "  CONFIG-DIR/cert.der  the server's certificate (X.509, "
            "DER), pinned\n");
}
