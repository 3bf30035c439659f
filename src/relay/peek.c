/* SPDX-License-Identifier: GPL-3.0-only */
/* The name a user asks for, from its first bytes (peek.h). */
#include "peek.h"

#include <string.h>

/* name_out checks a host name (letters, digits, '-', '_', '.'; one trailing
 * dot dropped; for IPv6 literals also ':') and stores it lower-cased. */
static prd_peek_result name_out(const uint8_t *s, size_t n, char *name,
                                int colons) {
  if (n > 0 && s[n - 1] == '.') {
    --n;
  }
  if (n == 0 || n >= PRD_PEEK_NAME_MAX) {
    return PRD_PEEK_NONE;
  }
  for (size_t i = 0; i < n; ++i) {
    uint8_t ch = s[i];
    if (ch >= 'A' && ch <= 'Z') {
      ch = (uint8_t)(ch - 'A' + 'a');
    } else if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
                 ch == '-' || ch == '_' || ch == '.' ||
                 (colons && ch == ':'))) {
      return PRD_PEEK_NONE;
    }
    name[i] = (char)ch;
  }
  name[n] = '\0';
  return PRD_PEEK_FOUND;
}

static unsigned be16(const uint8_t *p) { return (unsigned)p[0] << 8 | p[1]; }

/* sni_hello parses a ClientHello body (after the handshake header). */
static prd_peek_result sni_hello(const uint8_t *p, size_t n, char *name) {
  size_t i = 34; /* legacy_version, random */
  size_t ext_end;

  if (n < i + 1) {
    return PRD_PEEK_NONE;
  }
  i += 1 + p[i]; /* legacy_session_id */
  if (n < i + 2) {
    return PRD_PEEK_NONE;
  }
  i += 2 + be16(p + i); /* cipher_suites */
  if (n < i + 1) {
    return PRD_PEEK_NONE;
  }
  i += 1 + p[i]; /* legacy_compression_methods */
  if (n < i + 2) {
    return PRD_PEEK_NONE; /* no extensions: no name */
  }
  ext_end = i + 2 + be16(p + i);
  i += 2;
  if (ext_end > n) {
    return PRD_PEEK_NONE;
  }
  while (i + 4 <= ext_end) {
    unsigned type = be16(p + i);
    size_t elen = be16(p + i + 2);
    const uint8_t *e = p + i + 4;
    i += 4;
    if (i + elen > ext_end) {
      return PRD_PEEK_NONE;
    }
    i += elen;
    if (type != 0) {
      continue;
    }
    /* server_name: ServerNameList, the first host_name in it. */
    if (elen < 2 || (size_t)be16(e) + 2 != elen) {
      return PRD_PEEK_NONE;
    }
    for (size_t k = 2; k + 3 <= elen;) {
      size_t nlen = be16(e + k + 1);
      if (k + 3 + nlen > elen) {
        return PRD_PEEK_NONE;
      }
      if (e[k] == 0) {
        return name_out(e + k + 3, nlen, name, 0);
      }
      k += 3 + nlen;
    }
    return PRD_PEEK_NONE;
  }
  return PRD_PEEK_NONE;
}

prd_peek_result prd_peek_sni(const uint8_t *data, size_t len, char *name) {
  /* The handshake message may span records (RFC 8446 §5.1): gather the
   * fragments, at most PRD_PEEK_MAX bytes. */
  uint8_t hs[PRD_PEEK_MAX];
  size_t hlen = 0, off = 0;

  while (1) {
    size_t rlen;
    if (len - off < 5) {
      /* A record header not complete: the first byte already tells. */
      if (off == 0 && len > 0 && data[0] != 0x16) {
        return PRD_PEEK_NONE;
      }
      return len >= PRD_PEEK_MAX ? PRD_PEEK_NONE : PRD_PEEK_MORE;
    }
    /* handshake(22), TLS 1.x, at most 2^14 bytes of payload */
    rlen = be16(data + off + 3);
    if (data[off] != 0x16 || data[off + 1] != 3 || rlen == 0 || rlen > 16384) {
      return PRD_PEEK_NONE;
    }
    if (len - off - 5 < rlen) {
      /* Use what has come so far: the name may be in it already. */
      rlen = len - off - 5;
    }
    if (hlen + rlen > sizeof(hs)) {
      return PRD_PEEK_NONE;
    }
    memcpy(hs + hlen, data + off + 5, rlen);
    hlen += rlen;
    off += 5 + rlen;
    if (hlen >= 4) {
      size_t mlen = (size_t)hs[1] << 16 | (size_t)hs[2] << 8 | hs[3];
      if (hs[0] != 1 || mlen > PRD_PEEK_MAX - 4) {
        return PRD_PEEK_NONE; /* not a ClientHello, or too large */
      }
      if (hlen >= 4 + mlen) {
        return sni_hello(hs + 4, mlen, name);
      }
    }
    if (off >= len) {
      return len >= PRD_PEEK_MAX ? PRD_PEEK_NONE : PRD_PEEK_MORE;
    }
  }
}

static int lower(int ch) {
  return ch >= 'A' && ch <= 'Z' ? ch - 'A' + 'a' : ch;
}

/* starts_ci: |s| (|n| bytes) starts with the lower-case |prefix|. */
static int starts_ci(const uint8_t *s, size_t n, const char *prefix) {
  size_t k = strlen(prefix);
  if (n < k) {
    return 0;
  }
  for (size_t i = 0; i < k; ++i) {
    if (lower(s[i]) != prefix[i]) {
      return 0;
    }
  }
  return 1;
}

/* host_port drops the port of an authority ("h:80", "[::1]:80") and any
 * userinfo, then checks and stores the host. */
static prd_peek_result host_port(const uint8_t *s, size_t n, char *name) {
  const uint8_t *at;
  size_t i;

  while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t')) {
    --n;
  }
  while (n > 0 && (s[0] == ' ' || s[0] == '\t')) {
    ++s;
    --n;
  }
  at = n ? memchr(s, '@', n) : NULL;
  if (at) {
    n -= (size_t)(at + 1 - s);
    s = at + 1;
  }
  if (n > 0 && s[0] == '[') {
    const uint8_t *close = memchr(s, ']', n);
    if (close == NULL || (close + 1 < s + n && close[1] != ':')) {
      return PRD_PEEK_NONE;
    }
    return name_out(s + 1, (size_t)(close - s - 1), name, 1);
  }
  for (i = 0; i < n && s[i] != ':'; ++i) {
  }
  for (size_t k = i + (i < n); k < n; ++k) {
    if (s[k] < '0' || s[k] > '9') {
      return PRD_PEEK_NONE;
    }
  }
  return name_out(s, i, name, 0);
}

prd_peek_result prd_peek_http_host(const uint8_t *data, size_t len,
                                   char *name) {
  const uint8_t *end = data + len, *line, *eol, *sp1, *sp2;
  const uint8_t *host = NULL;
  size_t hostlen = 0;
  int nhost = 0;

  /* The method: a token of letters, then a space. */
  for (sp1 = data; sp1 < end && *sp1 != ' '; ++sp1) {
    if (!((*sp1 >= 'A' && *sp1 <= 'Z') || *sp1 == '-' || *sp1 == '_') ||
        sp1 - data > 32) {
      return PRD_PEEK_NONE;
    }
  }
  eol = memchr(data, '\n', len);
  if (eol == NULL) {
    return len >= PRD_PEEK_MAX ? PRD_PEEK_NONE : PRD_PEEK_MORE;
  }
  if (sp1 == data || sp1 >= eol) {
    return PRD_PEEK_NONE;
  }
  sp2 = memchr(sp1 + 1, ' ', (size_t)(eol - sp1 - 1));
  if (sp2 == NULL || !starts_ci(sp2 + 1, (size_t)(eol - sp2 - 1), "http/1.")) {
    return PRD_PEEK_NONE;
  }
  /* absolute-form (RFC 9112 §3.2.2): its authority wins over Host. */
  line = sp1 + 1;
  {
    size_t tl = (size_t)(sp2 - line), skip = 0;
    if (starts_ci(line, tl, "http://")) {
      skip = 7;
    } else if (starts_ci(line, tl, "https://")) {
      skip = 8;
    }
    if (skip) {
      const uint8_t *a = line + skip, *ae = a;
      while (ae < sp2 && *ae != '/' && *ae != '?' && *ae != '#') {
        ++ae;
      }
      return host_port(a, (size_t)(ae - a), name);
    }
  }
  /* The header fields, up to the empty line. */
  for (line = eol + 1;; line = eol + 1) {
    size_t n;
    eol = memchr(line, '\n', (size_t)(end - line));
    if (eol == NULL) {
      return len >= PRD_PEEK_MAX ? PRD_PEEK_NONE : PRD_PEEK_MORE;
    }
    n = (size_t)(eol - line);
    if (n > 0 && line[n - 1] == '\r') {
      --n;
    }
    if (n == 0) {
      break;
    }
    if (starts_ci(line, n, "host:")) {
      host = line + 5;
      hostlen = n - 5;
      ++nhost;
    }
  }
  if (nhost != 1) {
    return PRD_PEEK_NONE; /* none, or several (RFC 9112 §3.2: a 400) */
  }
  return host_port(host, hostlen, name);
}
