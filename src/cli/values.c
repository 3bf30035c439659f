/* SPDX-License-Identifier: GPL-3.0-only */
/* One option's value: numbers, durations, hosts, ports, prefixes, the PSK
 * and fingerprints, checked and stored (README "Options"). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../codec/codec.h"
#include "opts_priv.h"

static int is_digit(char ch) { return ch >= '0' && ch <= '9'; }

static int is_alnum(char ch) {
  return is_digit(ch) || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');
}

/* parse_uint parses decimal digits only (no sign, no spaces) into |*pv|.
 * Returns 0, or -1 when |s| is not a number or has more than 10 digits. */
static int parse_uint(uint64_t *pv, const char *s) {
  uint64_t v = 0;
  size_t n;

  for (n = 0; is_digit(s[n]); ++n) {
    if (n == 10) {
      return -1;
    }
    v = v * 10 + (uint64_t)(s[n] - '0');
  }
  if (n == 0 || s[n] != '\0') {
    return -1;
  }
  *pv = v;
  return 0;
}

/* parse_duration_ms parses "5", "0.5", "2s" or "500ms" into milliseconds.
 * Returns 0, or -1 on bad syntax or a fraction finer than 1 ms. */
static int parse_duration_ms(uint64_t *pms, const char *s) {
  uint64_t whole = 0;
  uint64_t frac = 0;
  size_t nd = 0;
  size_t nf = 0;
  int has_dot = 0;

  for (; is_digit(*s); ++s) {
    if (++nd > 9) {
      return -1;
    }
    whole = whole * 10 + (uint64_t)(*s - '0');
  }
  if (nd == 0) {
    return -1;
  }
  if (*s == '.') {
    has_dot = 1;
    for (++s; is_digit(*s); ++s) {
      if (++nf > 3) {
        return -1;
      }
      frac = frac * 10 + (uint64_t)(*s - '0');
    }
    if (nf == 0) {
      return -1;
    }
    for (; nf < 3; ++nf) {
      frac *= 10;
    }
  }
  if (strcmp(s, "ms") == 0) {
    if (has_dot) {
      return -1;
    }
    *pms = whole;
    return 0;
  }
  if (*s == '\0' || strcmp(s, "s") == 0) {
    *pms = whole * 1000 + frac;
    return 0;
  }
  return -1;
}

/* parse_bool accepts true/false, yes/no, on/off and 1/0 in any case. */
static int parse_bool(int *pv, const char *s) {
  static const char *const yes[] = {"true", "yes", "on", "1"};
  static const char *const no[] = {"false", "no", "off", "0"};
  size_t i;

  for (i = 0; i < sizeof(yes) / sizeof(yes[0]); ++i) {
    if (strcasecmp(s, yes[i]) == 0) {
      *pv = 1;
      return 0;
    }
    if (strcasecmp(s, no[i]) == 0) {
      *pv = 0;
      return 0;
    }
  }
  return -1;
}

/* is_ipv4 checks a dotted quad of |n| bytes. */
static int is_ipv4(const char *s, size_t n) {
  char tmp[16];
  struct in_addr a;

  if (n == 0 || n >= sizeof(tmp)) {
    return 0;
  }
  memcpy(tmp, s, n);
  tmp[n] = '\0';
  return inet_pton(AF_INET, tmp, &a) == 1;
}

/* is_ipv6 checks an IPv6 address of |n| bytes without brackets, optionally
 * with a zone ("fe80::1%eth0"). */
static int is_ipv6(const char *s, size_t n) {
  char tmp[64];
  struct in6_addr a;
  const char *pct = memchr(s, '%', n);
  size_t alen = pct != NULL ? (size_t)(pct - s) : n;
  size_t i;

  if (alen == 0 || alen >= sizeof(tmp)) {
    return 0;
  }
  memcpy(tmp, s, alen);
  tmp[alen] = '\0';
  if (inet_pton(AF_INET6, tmp, &a) != 1) {
    return 0;
  }
  if (pct != NULL) {
    size_t zlen = n - alen - 1;
    if (zlen == 0 || zlen > 15) {
      return 0;
    }
    for (i = alen + 1; i < n; ++i) {
      if (!is_alnum(s[i]) && s[i] != '.' && s[i] != '_' && s[i] != '-') {
        return 0;
      }
    }
  }
  return 1;
}

/* is_dns_name checks the syntax of a host name of |n| bytes: labels of 1-63
 * letters, digits and inner hyphens, at most 253 bytes, one optional trailing
 * dot, and a last label that is not all digits (that would be a bad IPv4). */
static int is_dns_name(const char *s, size_t n) {
  size_t label = 0;
  int all_digits = 1;
  size_t i;

  if (n > 0 && s[n - 1] == '.') {
    --n;
  }
  if (n == 0 || n > 253) {
    return 0;
  }
  for (i = 0; i < n; ++i) {
    char ch = s[i];
    if (ch == '.') {
      if (label == 0 || s[i - 1] == '-') {
        return 0;
      }
      label = 0;
      all_digits = 1;
      continue;
    }
    if (!is_alnum(ch) && ch != '-') {
      return 0;
    }
    if (label == 0 && ch == '-') {
      return 0;
    }
    if (++label > 63) {
      return 0;
    }
    if (!is_digit(ch)) {
      all_digits = 0;
    }
  }
  return s[n - 1] != '-' && !all_digits;
}

/* parse_host_n stores the host of |n| bytes in |dst| (256 bytes) without
 * brackets. Brackets are only allowed around an IPv6 address. */
static int parse_host_n(char *dst, const char *s, size_t n) {
  if (n >= 2 && s[0] == '[' && s[n - 1] == ']') {
    ++s;
    n -= 2;
    if (!is_ipv6(s, n)) {
      return -1;
    }
  } else if (!is_ipv4(s, n) && !is_ipv6(s, n) && !is_dns_name(s, n)) {
    return -1;
  }
  memcpy(dst, s, n);
  dst[n] = '\0';
  return 0;
}

static int set_host(parse_ctx *c, const opt_def *d, char *dst, const char *s) {
  if (parse_host_n(dst, s, strlen(s)) != 0) {
    prd_opts_report(
        c, d,
        "invalid host %s (expected an IPv4 or IPv6 address or a DNS name)",
        prd_opts_quote(c, s));
    return -1;
  }
  return 0;
}

static int set_port(parse_ctx *c, const opt_def *d, uint16_t *dst,
                    const char *s, unsigned min) {
  uint64_t v;

  if (parse_uint(&v, s) != 0 || v < min || v > 65535) {
    prd_opts_report(c, d, "invalid port %s (expected %u-65535)",
                    prd_opts_quote(c, s), min);
    return -1;
  }
  *dst = (uint16_t)v;
  return 0;
}

/* set_hostport parses "HOST:PORT" or "[IPV6]:PORT"; |hp| may be NULL to only
 * validate. */
static int set_path(parse_ctx *c, const opt_def *d, char *dst, size_t dstlen,
                    const char *s);

/* Per-remote attributes after the address: ",cert=FILE" and ",name=SAN". */
static int set_remote_attrs(parse_ctx *c, const opt_def *d, prd_hostport *hp,
                            const char *attrs) {
  while (*attrs == ',') {
    const char *v, *end;
    char buf[4096];
    size_t n;
    ++attrs;
    end = strchr(attrs, ',');
    n = end ? (size_t)(end - attrs) : strlen(attrs);
    if (n >= sizeof(buf)) {
      prd_opts_report(c, d, "attribute too long");
      return -1;
    }
    memcpy(buf, attrs, n);
    buf[n] = 0;
    v = strchr(buf, '=');
    if (v && strncmp(buf, "cert=", 5) == 0) {
      if (set_path(c, d, hp->cert, sizeof(hp->cert), v + 1) != 0) {
        return -1;
      }
    } else if (v && strncmp(buf, "name=", 5) == 0) {
      if (parse_host_n(hp->name, v + 1, strlen(v + 1)) != 0) {
        prd_opts_report(c, d, "invalid name %s", prd_opts_quote(c, v + 1));
        return -1;
      }
    } else {
      prd_opts_report(c, d,
                      "unknown attribute %s (expected cert=FILE or name=NAME)",
                      prd_opts_quote(c, buf));
      return -1;
    }
    attrs += n;
  }
  return 0;
}

static int set_hostport(parse_ctx *c, const opt_def *d, prd_hostport *hp,
                        const char *full) {
  prd_hostport tmp;
  const char *colon;
  char s[600];
  const char *comma = strchr(full, ',');
  size_t hlen, alen = comma ? (size_t)(comma - full) : strlen(full);
  uint64_t port;
  int ok;

  memset(&tmp, 0, sizeof(tmp));
  if (alen >= sizeof(s)) {
    prd_opts_report(c, d, "invalid address %s", prd_opts_quote(c, full));
    return -1;
  }
  memcpy(s, full, alen);
  s[alen] = 0;

  if (s[0] == '[') {
    const char *close = strchr(s, ']');
    colon = close != NULL ? close + 1 : NULL;
    ok = close != NULL && *colon == ':' &&
         is_ipv6(s + 1, (size_t)(close - s - 1));
    hlen = ok ? (size_t)(colon - s) : 0;
  } else {
    colon = strrchr(s, ':');
    hlen = colon != NULL ? (size_t)(colon - s) : 0;
    if (colon != NULL && memchr(s, ':', hlen) != NULL) {
      prd_opts_report(c, d,
                      "invalid address %s (write an IPv6 address in brackets: "
                      "[::1]:4433)",
                      prd_opts_quote(c, s));
      return -1;
    }
    ok = colon != NULL && hlen > 0;
  }
  ok = ok && parse_host_n(tmp.host, s, hlen) == 0;
  if (!ok) {
    prd_opts_report(c, d,
                    "invalid address %s (expected HOST:PORT or [IPV6]:PORT)",
                    prd_opts_quote(c, s));
    return -1;
  }
  if (parse_uint(&port, colon + 1) != 0 || port < 1 || port > 65535) {
    prd_opts_report(c, d, "invalid port in %s (expected 1-65535)",
                    prd_opts_quote(c, s));
    return -1;
  }
  tmp.port = (uint16_t)port;
  if (comma && set_remote_attrs(c, d, &tmp, comma) != 0) {
    return -1;
  }
  if (hp != NULL) {
    *hp = tmp;
  }
  return 0;
}

static int set_path(parse_ctx *c, const opt_def *d, char *dst, size_t dstlen,
                    const char *s) {
  size_t n = strlen(s);

  if (n == 0) {
    prd_opts_report(c, d, "empty file name");
    return -1;
  }
  if (n >= dstlen) {
    prd_opts_report(c, d, "path too long (max %zu bytes)", dstlen - 1);
    return -1;
  }
  memcpy(dst, s, n + 1);
  return 0;
}

static int set_u32(parse_ctx *c, const opt_def *d, uint32_t *dst, const char *s,
                   uint64_t min, uint64_t max) {
  uint64_t v;

  if (parse_uint(&v, s) != 0 || v < min || v > max) {
    prd_opts_report(c, d, "invalid number %s (expected %llu-%llu)",
                    prd_opts_quote(c, s), (unsigned long long)min,
                    (unsigned long long)max);
    return -1;
  }
  *dst = (uint32_t)v;
  return 0;
}

/* set_duration stores milliseconds in [min_ms, max_ms]; |expect| describes
 * the range for the message. */
/* parse_prefix reads "ADDR" or "ADDR/BITS" (IPv4 or IPv6). */
static int parse_prefix(prd_opts_prefix *p, const char *s) {
  char buf[64];
  const char *slash = strchr(s, '/');
  size_t n = slash ? (size_t)(slash - s) : strlen(s);
  unsigned long bits;
  char *end;

  if (n == 0 || n >= sizeof(buf)) {
    return -1;
  }
  memcpy(buf, s, n);
  buf[n] = 0;
  memset(p, 0, sizeof(*p));
  if (inet_pton(AF_INET, buf, p->addr) == 1) {
    p->family = 4;
    p->bits = 32;
  } else if (inet_pton(AF_INET6, buf, p->addr) == 1) {
    p->family = 6;
    p->bits = 128;
  } else {
    return -1;
  }
  if (slash) {
    errno = 0;
    bits = strtoul(slash + 1, &end, 10);
    if (slash[1] == 0 || *end != 0 || errno != 0 || bits > p->bits) {
      return -1;
    }
    p->bits = (uint8_t)bits;
  }
  return 0;
}

int prd_opts_parse_prefix(prd_opts_prefix *p, const char *s) {
  return parse_prefix(p, s);
}

/* set_client_name: --client-name, spec/02-framing.md §3.3. */
static int set_client_name(parse_ctx *c, const opt_def *d, const char *s) {
  if (!prd_client_name_valid(s, strlen(s))) {
    prd_opts_report(c, d,
                    "invalid name %s (1-64 of A-Z a-z 0-9 . _ -, not "
                    "starting with . or -)",
                    prd_opts_quote(c, s));
    return -1;
  }
  memcpy(c->o->client_name, s, strlen(s) + 1);
  return 0;
}

static int set_duration(parse_ctx *c, const opt_def *d, uint32_t *dst,
                        const char *s, uint64_t min_ms, uint64_t max_ms,
                        const char *expect) {
  uint64_t ms;

  if (parse_duration_ms(&ms, s) != 0 || ms < min_ms || ms > max_ms) {
    prd_opts_report(c, d, "invalid duration %s (expected %s)",
                    prd_opts_quote(c, s), expect);
    return -1;
  }
  *dst = (uint32_t)ms;
  return 0;
}

static int set_psk_value(parse_ctx *c, const opt_def *d, const char *s) {
  size_t n = strlen(s);

  /* Never quote the value: it is a secret. */
  if (n == 0) {
    prd_opts_report(c, d, "empty PSK refused");
    return -1;
  }
  if (n > MAX_PSK_BYTES) {
    prd_opts_report(c, d, "PSK longer than %d bytes", MAX_PSK_BYTES);
    return -1;
  }
  if (c->psk_value != NULL) {
    explicit_bzero(c->psk_value, c->psk_value_len);
    free(c->psk_value);
  }
  c->psk_value = malloc(n);
  if (c->psk_value == NULL) {
    c->psk_value_len = 0;
    prd_opts_report(c, d, "out of memory");
    return -1;
  }
  memcpy(c->psk_value, s, n);
  c->psk_value_len = n;
  c->psk_value_from_argv = !c->in_file;
  return 0;
}

/* apply_value validates |s| for option |id| and stores it. |s| is NULL for a
 * flag given without a value. Returns 0 or -1 (reported). */
/* hex_val returns the value of a hex digit, or -1. */
static int hex_val(char ch) {
  if (is_digit(ch)) {
    return ch - '0';
  }
  if (ch >= 'a' && ch <= 'f') {
    return ch - 'a' + 10;
  }
  if (ch >= 'A' && ch <= 'F') {
    return ch - 'A' + 10;
  }
  return -1;
}

int prd_parse_fingerprint(uint8_t out[PRD_FINGERPRINT_BYTES], const char *s) {
  size_t i;
  int colons;

  /* What --print-fingerprint prints: "SHA256:" and 32 hex pairs separated
   * by colons. The prefix is optional, the colons too (all or none), and
   * the case of letters does not matter. */
  if (strncasecmp(s, "SHA256:", 7) == 0) {
    s += 7;
  }
  colons = strlen(s) == 3 * PRD_FINGERPRINT_BYTES - 1;
  for (i = 0; i < PRD_FINGERPRINT_BYTES; ++i) {
    int hi = hex_val(s[0]);
    int lo = hi < 0 ? -1 : hex_val(s[1]);
    if (lo < 0) {
      return -1;
    }
    out[i] = (uint8_t)(hi << 4 | lo);
    s += 2;
    if (colons && i + 1 < PRD_FINGERPRINT_BYTES) {
      if (*s != ':') {
        return -1;
      }
      ++s;
    }
  }
  return *s == '\0' ? 0 : -1;
}

/* keyword returns the index of |s| in |names|, or -1. */
static int keyword(const char *s, const char *const *names, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    if (strcmp(s, names[i]) == 0) {
      return (int)i;
    }
  }
  return -1;
}

static int set_proxy_protocol(parse_ctx *c, const opt_def *d, const char *s) {
  /* In the order of prd_proxy_proto. */
  static const char *const names[] = {"none", "v1", "v2"};
  int i = keyword(s, names, sizeof(names) / sizeof(names[0]));

  if (i < 0) {
    prd_opts_report(c, d, "invalid value %s (expected v1, v2 or none)",
                    prd_opts_quote(c, s));
    return -1;
  }
  c->o->proxy_protocol = (prd_proxy_proto)i;
  return 0;
}

/* full reports a repeatable option given more than |max| times. */
static int full(parse_ctx *c, const opt_def *d, size_t n, int max) {
  if (n < (size_t)max) {
    return 0;
  }
  prd_opts_report(c, d, "given more than %d times", max);
  return 1;
}

static int add_cert_hostname(parse_ctx *c, const opt_def *d, const char *s) {
  prd_opts *o = c->o;

  if (full(c, d, o->n_cert_hostnames, PRD_MAX_CERT_HOSTNAMES)) {
    return -1;
  }
  if (set_host(c, d, o->cert_hostnames[o->n_cert_hostnames], s) != 0) {
    return -1;
  }
  ++o->n_cert_hostnames;
  return 0;
}

/* route_name stores a sni=/host= host name (letters, digits, '.', '-',
 * '_'; 1-253), lower-cased like the names peek.c reads. */
static int route_name(char *dst, const char *s) {
  size_t n = strlen(s);
  if (n == 0 || n > 253) {
    return -1;
  }
  for (size_t i = 0; i <= n; ++i) {
    char ch = s[i];
    if (ch >= 'A' && ch <= 'Z') {
      ch = (char)(ch - 'A' + 'a');
    } else if (i < n &&
               !((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
                 ch == '.' || ch == '-' || ch == '_')) {
      return -1;
    }
    dst[i] = ch;
  }
  return 0;
}

/* service_attrs applies a --service value's attributes after the address:
 * the client's ",proxy-protocol=none|v1|v2", the server's ",allow=CIDR"
 * (repeatable: the source allowlist) and ",sni=NAME" or ",host=NAME"
 * (routing on a shared address). */
static int service_attrs(parse_ctx *c, const opt_def *d, prd_opts_service *sv,
                         const char *attrs) {
  static const char *const names[] = {"none", "v1", "v2"};

  while (*attrs == ',') {
    const char *end = strchr(++attrs, ',');
    size_t n = end ? (size_t)(end - attrs) : strlen(attrs);
    char buf[300];
    int i;

    if (n >= sizeof(buf)) {
      n = sizeof(buf) - 1;
    }
    memcpy(buf, attrs, n);
    buf[n] = '\0';
    if (sv->udp && (strncmp(buf, "timeout=", 8) == 0 ||
                    strncmp(buf, "stream-timeout=", 15) == 0)) {
      /* spec/10-udp.md §4: how long an idle flow lives, without and with
       * replies seen. */
      int stream = buf[0] == 's';
      uint64_t secs;
      if (parse_uint(&secs, buf + (stream ? 15 : 8)) != 0 || secs < 1 ||
          secs > 86400) {
        prd_opts_report(c, d, "invalid %s %s (expected SECONDS, 1-86400)",
                        stream ? "stream-timeout" : "timeout",
                        prd_opts_quote(c, buf + (stream ? 15 : 8)));
        return -1;
      }
      if (stream) {
        sv->udp_stream_timeout_s = (uint32_t)secs;
      } else {
        sv->udp_timeout_s = (uint32_t)secs;
      }
    } else if (sv->udp && strncmp(buf, "allow=", 6) != 0) {
      prd_opts_report(c, d, "unknown attribute %s for a UDP service%s",
                      prd_opts_quote(c, buf),
                      c->o->role == PRD_ROLE_CLIENT
                          ? " (expected timeout=SECONDS or "
                            "stream-timeout=SECONDS)"
                          : " (expected allow=CIDR, timeout=SECONDS or "
                            "stream-timeout=SECONDS)");
      return -1;
    } else if (c->o->role == PRD_ROLE_CLIENT &&
               strncmp(buf, "proxy-protocol=", 15) == 0) {
      i = keyword(buf + 15, names, sizeof(names) / sizeof(names[0]));
      if (i < 0) {
        prd_opts_report(c, d,
                        "invalid proxy-protocol %s (expected v1, v2 or "
                        "none)",
                        prd_opts_quote(c, buf + 15));
        return -1;
      }
      sv->proxy_protocol = i;
    } else if (c->o->role == PRD_ROLE_SERVER &&
               strncmp(buf, "allow=", 6) == 0) {
      if (sv->n_allow >= PRD_MAX_ALLOW) {
        prd_opts_report(c, d, "too many allow= (at most %d)", PRD_MAX_ALLOW);
        return -1;
      }
      if (parse_prefix(&sv->allow[sv->n_allow], buf + 6) != 0) {
        prd_opts_report(c, d,
                        "invalid allow %s (expected ADDR/BITS or ADDR, IPv4 "
                        "or IPv6)",
                        prd_opts_quote(c, buf + 6));
        return -1;
      }
      ++sv->n_allow;
    } else if (c->o->role == PRD_ROLE_SERVER &&
               (strncmp(buf, "sni=", 4) == 0 ||
                strncmp(buf, "host=", 5) == 0)) {
      int sni = buf[0] == 's';
      const char *v = buf + (sni ? 4 : 5);
      if (sv->route) {
        prd_opts_report(c, d, "give one of sni= and host= per service");
        return -1;
      }
      if (route_name(sv->route_name, v) != 0) {
        prd_opts_report(c, d,
                        "invalid %s name %s (expected a host name: letters, "
                        "digits, '.', '-', '_')",
                        sni ? "sni=" : "host=", prd_opts_quote(c, v));
        return -1;
      }
      sv->route = sni ? 1 : 2;
    } else {
      prd_opts_report(c, d, "unknown attribute %s%s", prd_opts_quote(c, buf),
                      c->o->role == PRD_ROLE_CLIENT
                          ? " (expected proxy-protocol=v1|v2|none)"
                          : " (expected allow=CIDR, sni=NAME or host=NAME)");
      return -1;
    }
    attrs = end ? end : attrs + strlen(attrs);
  }
  return 0;
}

/* add_service parses --service NAME=[udp:]HOST:PORT[-LAST][,ATTR...]
 * (README "Services", "UDP services"). */
static int add_service(parse_ctx *c, const opt_def *d, const char *s) {
  prd_opts *o = c->o;
  prd_opts_service sv;
  const char *eq = strchr(s, '=');
  const char *addr, *comma, *portp;
  char a[600];
  size_t alen, hlen;
  uint64_t port, last;
  char *dash;

  memset(&sv, 0, sizeof(sv));
  sv.proxy_protocol = -1;
  if (eq == NULL || !prd_service_name_valid(s, (size_t)(eq - s))) {
    char nm[80];
    size_t n = eq ? (size_t)(eq - s) : strlen(s);
    snprintf(nm, sizeof(nm), "%.*s", n > 70 ? 70 : (int)n, s);
    prd_opts_report(c, d,
                    eq == NULL ? "invalid value %s (expected NAME=HOST:PORT)"
                               : "invalid service name %s (1-63 of A-Z, a-z, "
                                 "0-9, '.', '_', '-')",
                    prd_opts_quote(c, eq == NULL ? s : nm));
    return -1;
  }
  memcpy(sv.name, s, (size_t)(eq - s));
  sv.name[eq - s] = '\0';
  addr = eq + 1;
  if (strncmp(addr, "udp:", 4) == 0) {
    /* A UDP service (spec/10-udp.md). */
    sv.udp = 1;
    addr += 4;
  }
  comma = strchr(addr, ',');
  alen = comma ? (size_t)(comma - addr) : strlen(addr);
  if (alen >= sizeof(a)) {
    prd_opts_report(c, d, "invalid address %s", prd_opts_quote(c, addr));
    return -1;
  }
  memcpy(a, addr, alen);
  a[alen] = '\0';
  if (a[0] == '[') {
    const char *close = strchr(a, ']');
    portp = close && close[1] == ':' ? close + 1 : NULL;
  } else {
    portp = strrchr(a, ':');
    if (portp && memchr(a, ':', (size_t)(portp - a)) != NULL) {
      prd_opts_report(c, d,
                      "invalid address %s (write an IPv6 address in "
                      "brackets: [::1]:80)",
                      prd_opts_quote(c, a));
      return -1;
    }
  }
  hlen = portp ? (size_t)(portp - a) : 0;
  if (portp == NULL || hlen == 0 || parse_host_n(sv.host, a, hlen) != 0) {
    prd_opts_report(c, d,
                    "invalid address %s (expected HOST:PORT[-LAST] or "
                    "[IPV6]:PORT[-LAST])",
                    prd_opts_quote(c, a));
    return -1;
  }
  ++portp;
  dash = strchr(portp, '-');
  if (dash) {
    *dash = '\0';
  }
  if (parse_uint(&port, portp) != 0 || port < 1 || port > 65535 ||
      (dash &&
       (parse_uint(&last, dash + 1) != 0 || last < port || last > 65535))) {
    if (dash) {
      *dash = '-';
    }
    prd_opts_report(c, d,
                    "invalid port or range in %s (expected PORT or "
                    "PORT-LAST, 1-65535, LAST >= PORT)",
                    prd_opts_quote(c, addr));
    return -1;
  }
  sv.port = (uint16_t)port;
  sv.last = dash ? (uint16_t)last : (uint16_t)port;
  if (comma && service_attrs(c, d, &sv, comma) != 0) {
    return -1;
  }
  if (sv.route && sv.last != sv.port) {
    prd_opts_report(c, d, "%s routes one port, not a range (%s)",
                    sv.route == 1 ? "sni=" : "host=", prd_opts_quote(c, addr));
    return -1;
  }
  for (size_t i = 0; i < o->n_services; ++i) {
    if (strcmp(o->services[i].name, sv.name) == 0) {
      prd_opts_report(c, d, "service %s given twice",
                      prd_opts_quote(c, sv.name));
      return -1;
    }
  }
  if (full(c, d, o->n_services, PRD_MAX_SERVICES)) {
    return -1;
  }
  o->services[o->n_services++] = sv;
  return 0;
}

/* set_remote applies --quic-remote-host, --quic-remote-port and
 * --quic-remote, which one source may not mix. */
static int set_remote(parse_ctx *c, const opt_def *d, opt_id id,
                      const char *s) {
  prd_opts *o = c->o;
  const unsigned char *seen = c->in_file ? c->file_seen : c->cli_seen;

  if (id == OPT_QUIC_REMOTE
          ? (seen[OPT_QUIC_REMOTE_HOST] || seen[OPT_QUIC_REMOTE_PORT])
          : seen[OPT_QUIC_REMOTE] != 0) {
    prd_opts_report(c, d, "cannot be combined with %s%s",
                    c->in_file ? "" : "--",
                    id == OPT_QUIC_REMOTE
                        ? (seen[OPT_QUIC_REMOTE_HOST] ? "quic-remote-host"
                                                      : "quic-remote-port")
                        : "quic-remote");
    return -1;
  }
  if (id == OPT_QUIC_REMOTE_HOST) {
    return set_host(c, d, c->remote_host, s);
  }
  if (id == OPT_QUIC_REMOTE_PORT) {
    return set_port(c, d, &c->remote_port, s, 1);
  }
  if (full(c, d, o->n_remotes, PRD_MAX_REMOTES)) {
    return -1;
  }
  if (set_hostport(c, d, &o->remotes[o->n_remotes], s) != 0) {
    return -1;
  }
  ++o->n_remotes;
  return 0;
}

static int set_keepalive(parse_ctx *c, const opt_def *d, const char *s) {
  prd_opts *o = c->o;

  if (set_duration(c, d, &o->keepalive_ms, s, 0, 600000,
                   "0 (off) or 0.1-600 seconds") != 0) {
    return -1;
  }
  if (o->keepalive_ms != 0 && o->keepalive_ms < 100) {
    prd_opts_report(c, d,
                    "invalid duration %s (expected 0 (off) or 0.1-600 "
                    "seconds)",
                    prd_opts_quote(c, s));
    return -1;
  }
  c->keepalive_given = 1;
  return 0;
}

static int set_udp_payload(parse_ctx *c, const opt_def *d, const char *s) {
  prd_opts *o = c->o;

  if (set_u32(c, d, &o->max_udp_payload, s, 0, 65527) != 0) {
    return -1;
  }
  if (o->max_udp_payload != 0 && o->max_udp_payload < 1200) {
    prd_opts_report(c, d, "invalid number %s (expected 0 or 1200-65527)",
                    prd_opts_quote(c, s));
    return -1;
  }
  return 0;
}

/* --quic-tcp-listen HOST:PORT|off (spec/11-tcp-path.md §3.1) */
static int set_quic_tcp_listen(parse_ctx *c, const opt_def *d, const char *s) {
  prd_opts *o = c->o;
  prd_hostport hp;
  if (strcmp(s, "off") == 0) {
    o->quic_tcp_off = 1;
    o->quic_tcp_host[0] = 0;
    return 0;
  }
  if (strchr(s, ',') != NULL) {
    prd_opts_report(c, d, "invalid address %s (expected HOST:PORT or off)",
                    prd_opts_quote(c, s));
    return -1;
  }
  if (set_hostport(c, d, &hp, s) != 0) {
    return -1;
  }
  o->quic_tcp_off = 0;
  memcpy(o->quic_tcp_host, hp.host, sizeof(o->quic_tcp_host));
  o->quic_tcp_port = hp.port;
  return 0;
}

/* --quic-transport auto|udp|tcp (spec/11-tcp-path.md §3.2) */
static int set_quic_transport(parse_ctx *c, const opt_def *d, const char *s) {
  static const char *const names[] = {"auto", "udp", "tcp"};
  for (int i = 0; i < 3; ++i) {
    if (strcmp(s, names[i]) == 0) {
      c->o->quic_transport = i;
      return 0;
    }
  }
  prd_opts_report(c, d, "invalid value %s (expected auto, udp or tcp)",
                  prd_opts_quote(c, s));
  return -1;
}

static int set_cc(parse_ctx *c, const opt_def *d, const char *s) {
  /* In the order of prd_cc. */
  static const char *const names[] = {"cubic", "reno", "bbr", "bbr2"};
  int i = keyword(s, names, sizeof(names) / sizeof(names[0]));

  if (i < 0) {
    prd_opts_report(c, d,
                    "invalid value %s (expected cubic, reno, bbr or bbr2)",
                    prd_opts_quote(c, s));
    return -1;
  }
  c->o->congestion_control = (prd_cc)i;
  return 0;
}

static int set_queue_bound(parse_ctx *c, const opt_def *d, const char *s) {
  int on;

  if (parse_bool(&on, s) != 0) {
    prd_opts_report(c, d, "invalid value %s (expected on or off)",
                    prd_opts_quote(c, s));
    return -1;
  }
  c->o->queue_bound = on;
  return 0;
}

static int set_psk_file(parse_ctx *c, const opt_def *d, const char *s) {
  if (set_path(c, d, c->psk_file, sizeof(c->psk_file), s) != 0) {
    return -1;
  }
  c->psk_file_line = c->in_file ? c->line : 0;
  return 0;
}

static int add_auth_exempt(parse_ctx *c, const opt_def *d, const char *s) {
  prd_opts *o = c->o;

  if (full(c, d, o->n_auth_exempt, PRD_MAX_AUTH_EXEMPT)) {
    return -1;
  }
  if (parse_prefix(&o->auth_exempt[o->n_auth_exempt], s) != 0) {
    prd_opts_report(c, d, "invalid address %s (expected ADDR or ADDR/BITS)",
                    prd_opts_quote(c, s));
    return -1;
  }
  ++o->n_auth_exempt;
  return 0;
}

static int add_fingerprint(parse_ctx *c, const opt_def *d, const char *s) {
  prd_opts *o = c->o;

  if (full(c, d, o->n_server_fingerprints, PRD_MAX_FINGERPRINTS)) {
    return -1;
  }
  if (prd_parse_fingerprint(o->server_fingerprints[o->n_server_fingerprints],
                            s) != 0) {
    prd_opts_report(c, d,
                    "invalid fingerprint %s (expected SHA256: and 32 hex "
                    "pairs, as --print-fingerprint prints)",
                    prd_opts_quote(c, s));
    return -1;
  }
  ++o->n_server_fingerprints;
  return 0;
}

static int set_keylog(parse_ctx *c, const opt_def *d, const char *s) {
  prd_opts *o = c->o;

  /* An empty name turns key logging off, also against SSLKEYLOGFILE. */
  c->keylog_given = 1;
  if (s[0] == '\0') {
    o->keylog_file[0] = '\0';
    return 0;
  }
  return set_path(c, d, o->keylog_file, sizeof(o->keylog_file), s);
}

static int set_log_level(parse_ctx *c, const opt_def *d, const char *s) {
  if (prd_log_level_parse(&c->o->log_level, s) != 0) {
    prd_opts_report(c, d,
                    "invalid level %s (expected off, error, warn, info, "
                    "debug or trace)",
                    prd_opts_quote(c, s));
    return -1;
  }
  return 0;
}

static int set_metrics_listen(parse_ctx *c, const opt_def *d, const char *s) {
  prd_opts *o = c->o;

  if (set_hostport(c, d, NULL, s) != 0) {
    return -1;
  }
  if (strlen(s) >= sizeof(o->metrics_listen)) {
    prd_opts_report(c, d, "address too long");
    return -1;
  }
  memcpy(o->metrics_listen, s, strlen(s) + 1);
  c->metrics_given = 1;
  return 0;
}

/* apply_flag stores a flag's value |flag|; returns -1 for another kind. */
static int apply_flag(prd_opts *o, opt_id id, int flag) {
  switch (id) {
  case OPT_TRUST_ON_FIRST_USE:
    o->trust_on_first_use = flag;
    return 0;
  case OPT_CHECK_CONFIG:
    o->check_config = flag;
    return 0;
  case OPT_PRINT_FINGERPRINT:
    o->print_fingerprint = flag;
    return 0;
  case OPT_PROVIDE_METRICS:
    o->provide_metrics = flag;
    return 0;
  case OPT_PRINT_METRICS:
    o->print_metrics = flag;
    return 0;
  default:
    return -1;
  }
}

int prd_opts_apply_value(parse_ctx *c, opt_id id, const char *s) {
  const opt_def *d = &prd_opt_defs[id];
  prd_opts *o = c->o;
  int flag = 1;

  if (d->kind == KIND_FLAG) {
    if (s != NULL && parse_bool(&flag, s) != 0) {
      prd_opts_report(c, d, "invalid value %s (expected true or false)",
                      prd_opts_quote(c, s));
      return -1;
    }
    return apply_flag(o, id, flag);
  }
  if (s == NULL || (c->in_file && s[0] == '\0' && id != OPT_KEYLOG_FILE &&
                    id != OPT_QUIC_PSK)) {
    prd_opts_report(c, d, "missing value (%s)", d->arg);
    return -1;
  }

  switch (id) {
  case OPT_LOCAL_HOST:
    return set_host(c, d, o->local_host, s);
  case OPT_LOCAL_PORT:
    return set_port(c, d, &o->local_port, s, 1);
  case OPT_DESTINATION_HOST:
    return set_host(c, d, o->destination_host, s);
  case OPT_DESTINATION_PORT:
    return set_port(c, d, &o->destination_port, s, 1);
  case OPT_PROXY_PROTOCOL:
    return set_proxy_protocol(c, d, s);
  case OPT_SERVICE:
    return add_service(c, d, s);
  case OPT_PENDING_TIMEOUT:
    return set_duration(c, d, &o->pending_timeout_ms, s, 0, 3600000,
                        "0-3600 seconds");
  case OPT_MAX_CONNECTIONS:
    return set_u32(c, d, &o->max_connections, s, 1, 1000000);
  case OPT_MAX_CLIENTS:
    return set_u32(c, d, &o->max_clients, s, 1, 65535);
  case OPT_MAX_STREAMS:
    return set_u32(c, d, &o->max_streams, s, 1, 1000000);
  case OPT_QUIC_SERVER_HOST:
    return set_host(c, d, o->quic_server_host, s);
  case OPT_QUIC_SERVER_PORT:
    return set_port(c, d, &o->quic_server_port, s, 1);
  case OPT_QUIC_CERT_HOSTNAME:
    return add_cert_hostname(c, d, s);
  case OPT_QUIC_REMOTE_HOST:
  case OPT_QUIC_REMOTE_PORT:
  case OPT_QUIC_REMOTE:
    return set_remote(c, d, id, s);
  case OPT_QUIC_LOCAL_HOST:
    return set_host(c, d, o->quic_local_host, s);
  case OPT_QUIC_LOCAL_PORT:
    return set_port(c, d, &o->quic_local_port, s, 0);
  case OPT_IDLE_TIMEOUT:
    return set_duration(c, d, &o->idle_timeout_ms, s, 1000, 600000,
                        "1-600 seconds");
  case OPT_KEEPALIVE:
    return set_keepalive(c, d, s);
  case OPT_MAX_UDP_PAYLOAD:
    return set_udp_payload(c, d, s);
  case OPT_CONGESTION_CONTROL:
    return set_cc(c, d, s);
  case OPT_QUEUE_BOUND:
    return set_queue_bound(c, d, s);
  case OPT_QUIC_TCP_LISTEN:
    return set_quic_tcp_listen(c, d, s);
  case OPT_QUIC_TRANSPORT:
    return set_quic_transport(c, d, s);
  case OPT_QUIC_UDP_PROBE_INTERVAL:
    return set_duration(c, d, &o->udp_probe_interval_ms, s, 1000, 3600000,
                        "1-3600 seconds");
  case OPT_QUIC_PSK:
    return set_psk_value(c, d, s);
  case OPT_QUIC_PSK_FILE:
    return set_psk_file(c, d, s);
  case OPT_CLIENTS_FILE:
    return set_path(c, d, o->clients_file, sizeof(o->clients_file), s);
  case OPT_CLIENT_NAME:
    return set_client_name(c, d, s);
  case OPT_AUTH_TIMEOUT:
    return set_duration(c, d, &o->auth_timeout_ms, s, 100, 600000,
                        "0.1-600 seconds");
  case OPT_AUTH_FAIL_COOLDOWN:
    return set_duration(c, d, &o->auth_fail_cooldown_ms, s, 0, 86400000,
                        "0-86400 seconds");
  case OPT_AUTH_FAIL_EXEMPT:
    return add_auth_exempt(c, d, s);
  case OPT_QUIC_REMOTE_HOSTNAME_MATCH:
    return set_host(c, d, o->remote_hostname_match, s);
  case OPT_SERVER_CERT:
    return set_path(c, d, o->server_cert, sizeof(o->server_cert), s);
  case OPT_SERVER_FINGERPRINT:
    return add_fingerprint(c, d, s);
  case OPT_KEYLOG_FILE:
    return set_keylog(c, d, s);
  case OPT_CONFIG:
    return set_path(c, d, o->config_file, sizeof(o->config_file), s);
  case OPT_CONFIG_DIR:
    return set_path(c, d, o->config_dir, sizeof(o->config_dir), s);
  case OPT_LOG_LEVEL:
    return set_log_level(c, d, s);
  case OPT_METRICS_LISTEN:
    return set_metrics_listen(c, d, s);
  case OPT_SHUTDOWN_GRACE:
    return set_duration(c, d, &o->grace_ms, s, 0, 3600000, "0-3600 seconds");
  default:
    break;
  }
  return -1;
}
