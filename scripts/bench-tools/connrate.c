/* SPDX-License-Identifier: GPL-3.0-only */
/* Benchmark client: connection rate and latency through an echo path. */

/* Usage: connrate --port PORT [--host ADDR] [--count N] [--concurrency C]
 *                 [--size BYTES] [--timeout-ms MS] [--max-seconds S]
 * Runs N round trips, at most C at a time (C = 1: strictly sequential). Each
 * round trip is: connect, write BYTES (default 64), read them back, check
 * them, close. Its latency runs from socket() to the last byte read. Prints
 * one line:
 *   count=N ok=K failed=F seconds=S rate=R p50_ms=X p99_ms=Y max_ms=Z
 * where rate is K / S. A round trip that takes longer than MS (default
 * 5000) fails; after S seconds (default 120) no new one starts. Exits 0 when
 * at least one round trip succeeded. */

#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { CR_IDLE = 0, CR_CONNECTING, CR_WRITING, CR_READING };

typedef struct cr_slot {
  int fd;
  int state;
  double t0;
  size_t done; /* bytes written (CR_WRITING) or read (CR_READING) */
} cr_slot;

typedef struct cr_run {
  struct sockaddr_in sa;
  int ep;
  long count;
  long started;
  long ok;
  long failed;
  size_t size;
  double timeout_s;
  double stop_at;
  unsigned char *out;
  unsigned char *in;
  double *lat_ms;
  int reported;
} cr_run;

/* cr_now returns CLOCK_MONOTONIC in seconds. */
static double cr_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* cr_cmp orders doubles for qsort. */
static int cr_cmp(const void *a, const void *b) {
  double x = *(const double *)a;
  double y = *(const double *)b;
  return (x > y) - (x < y);
}

/* cr_fail closes the round trip in |s| as failed, saying why once. */
static void cr_fail(cr_run *r, cr_slot *s, const char *why, int err) {
  if (!r->reported) {
    fprintf(stderr, "connrate: first failure: %s%s%s\n", why, err ? ": " : "",
            err ? strerror(err) : "");
    r->reported = 1;
  }
  close(s->fd);
  s->fd = -1;
  s->state = CR_IDLE;
  ++r->failed;
}

/* cr_arm makes |ep| wait for |events| on the slot's socket. */
static int cr_arm(cr_run *r, cr_slot *s, uint32_t events, int op) {
  struct epoll_event ev;
  memset(&ev, 0, sizeof(ev));
  ev.events = events;
  ev.data.ptr = s;
  return epoll_ctl(r->ep, op, s->fd, &ev);
}

/* cr_write sends what is left of the request; moves on to reading. */
static void cr_write(cr_run *r, cr_slot *s) {
  while (s->done < r->size) {
    ssize_t w = write(s->fd, r->out + s->done, r->size - s->done);
    if (w < 0) {
      if (errno == EAGAIN) {
        s->state = CR_WRITING;
        (void)cr_arm(r, s, EPOLLOUT, EPOLL_CTL_MOD);
        return;
      }
      if (errno == EINTR) {
        continue;
      }
      cr_fail(r, s, "write", errno);
      return;
    }
    s->done += (size_t)w;
  }
  s->done = 0;
  s->state = CR_READING;
  if (cr_arm(r, s, EPOLLIN, EPOLL_CTL_MOD) != 0) {
    cr_fail(r, s, "epoll_ctl", errno);
  }
}

/* cr_start1 begins the next round trip in |s|, if any is left. */
static void cr_start1(cr_run *r, cr_slot *s) {
  s->state = CR_IDLE;
  s->fd = -1;
  if (r->started >= r->count || cr_now() >= r->stop_at) {
    return;
  }
  ++r->started;
  s->t0 = cr_now();
  s->done = 0;
  s->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (s->fd < 0) {
    ++r->failed;
    fprintf(stderr, "connrate: socket: %s\n", strerror(errno));
    return;
  }
  int one = 1;
  (void)setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  s->state = CR_CONNECTING;
  if (cr_arm(r, s, EPOLLOUT, EPOLL_CTL_ADD) != 0) {
    cr_fail(r, s, "epoll_ctl", errno);
    return;
  }
  if (connect(s->fd, (struct sockaddr *)&r->sa, sizeof(r->sa)) == 0) {
    cr_write(r, s);
  } else if (errno != EINPROGRESS) {
    cr_fail(r, s, "connect", errno);
  }
}

/* cr_start begins round trips in |s| until one is in progress or none is
 * left (a connect can fail at once). */
static void cr_start(cr_run *r, cr_slot *s) {
  do {
    cr_start1(r, s);
  } while (s->state == CR_IDLE && r->started < r->count &&
           cr_now() < r->stop_at);
}

/* cr_event handles readiness of the socket in |s|. */
static void cr_event(cr_run *r, cr_slot *s) {
  if (s->state == CR_CONNECTING) {
    int err = 0;
    socklen_t len = sizeof(err);
    if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) {
      err = errno;
    }
    if (err != 0) {
      cr_fail(r, s, "connect", err);
      return;
    }
    cr_write(r, s);
    return;
  }
  if (s->state == CR_WRITING) {
    cr_write(r, s);
    return;
  }
  if (s->state != CR_READING) {
    return;
  }
  for (;;) {
    ssize_t n = read(s->fd, r->in + s->done, r->size - s->done);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      if (errno != EAGAIN) {
        cr_fail(r, s, "read", errno);
      }
      return;
    }
    if (n == 0) {
      cr_fail(r, s, "read: connection closed early", 0);
      return;
    }
    s->done += (size_t)n;
    if (s->done == r->size) {
      break;
    }
  }
  if (memcmp(r->in, r->out, r->size) != 0) {
    cr_fail(r, s, "echo mismatch", 0);
    return;
  }
  r->lat_ms[r->ok++] = (cr_now() - s->t0) * 1e3;
  close(s->fd);
  s->fd = -1;
  s->state = CR_IDLE;
}

int main(int argc, char **argv) {
  const char *host = "127.0.0.1";
  int port = 0;
  long conc = 1;
  double max_s = 120;
  cr_run r;
  memset(&r, 0, sizeof(r));
  r.count = 1000;
  r.size = 64;
  r.timeout_s = 5.0;
  for (int i = 1; i < argc; ++i) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!v) {
      goto usage;
    }
    ++i;
    if (strcmp(a, "--host") == 0) {
      host = v;
    } else if (strcmp(a, "--port") == 0) {
      port = atoi(v);
    } else if (strcmp(a, "--count") == 0) {
      r.count = atol(v);
    } else if (strcmp(a, "--concurrency") == 0) {
      conc = atol(v);
    } else if (strcmp(a, "--size") == 0) {
      r.size = (size_t)atol(v);
    } else if (strcmp(a, "--timeout-ms") == 0) {
      r.timeout_s = atof(v) / 1e3;
    } else if (strcmp(a, "--max-seconds") == 0) {
      max_s = atof(v);
    } else {
      goto usage;
    }
  }
  if (port <= 0 || port > 65535 || r.count < 1 || conc < 1 || r.size < 1 ||
      r.size > 1048576) {
    goto usage;
  }
  signal(SIGPIPE, SIG_IGN);
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    (void)setrlimit(RLIMIT_NOFILE, &rl);
  }
  r.sa.sin_family = AF_INET;
  r.sa.sin_port = htons((uint16_t)port);
  if (inet_pton(AF_INET, host, &r.sa.sin_addr) != 1) {
    fprintf(stderr, "connrate: bad address %s\n", host);
    return 2;
  }
  if (conc > r.count) {
    conc = r.count;
  }
  r.out = malloc(r.size);
  r.in = malloc(r.size);
  r.lat_ms = calloc((size_t)r.count, sizeof(double));
  cr_slot *slots = calloc((size_t)conc, sizeof(cr_slot));
  r.ep = epoll_create1(EPOLL_CLOEXEC);
  if (!r.out || !r.in || !r.lat_ms || !slots || r.ep < 0) {
    fprintf(stderr, "connrate: out of memory\n");
    return 1;
  }
  for (size_t i = 0; i < r.size; ++i) {
    r.out[i] = (unsigned char)('a' + i % 26);
  }

  double t_start = cr_now();
  r.stop_at = t_start + max_s;
  for (long i = 0; i < conc; ++i) {
    cr_start(&r, &slots[i]);
  }
  struct epoll_event evs[256];
  for (;;) {
    long busy = 0;
    for (long i = 0; i < conc; ++i) {
      busy += slots[i].state != CR_IDLE;
    }
    if (busy == 0) {
      break;
    }
    int n = epoll_wait(r.ep, evs, 256, 50);
    if (n < 0 && errno != EINTR) {
      fprintf(stderr, "connrate: epoll_wait: %s\n", strerror(errno));
      return 1;
    }
    for (int i = 0; i < n; ++i) {
      cr_slot *s = evs[i].data.ptr;
      cr_event(&r, s);
      if (s->state == CR_IDLE) {
        cr_start(&r, s);
      }
    }
    double now = cr_now();
    for (long i = 0; i < conc; ++i) {
      cr_slot *s = &slots[i];
      if (s->state != CR_IDLE && now - s->t0 > r.timeout_s) {
        cr_fail(&r, s, "timeout", 0);
        cr_start(&r, s);
      }
    }
  }
  double secs = cr_now() - t_start;

  qsort(r.lat_ms, (size_t)r.ok, sizeof(double), cr_cmp);
  double p50 = 0, p99 = 0, mx = 0;
  if (r.ok > 0) {
    long i50 = (r.ok * 50 + 99) / 100 - 1;
    long i99 = (r.ok * 99 + 99) / 100 - 1;
    p50 = r.lat_ms[i50 < 0 ? 0 : i50];
    p99 = r.lat_ms[i99 < 0 ? 0 : i99];
    mx = r.lat_ms[r.ok - 1];
  }
  printf("count=%ld ok=%ld failed=%ld seconds=%.3f rate=%.1f p50_ms=%.3f "
         "p99_ms=%.3f max_ms=%.3f\n",
         r.count, r.ok, r.failed, secs, secs > 0 ? (double)r.ok / secs : 0.0,
         p50, p99, mx);
  return r.ok > 0 ? 0 : 1;

usage:
  fprintf(stderr, "usage: connrate --port PORT [--host ADDR] [--count N] "
                  "[--concurrency C] [--size BYTES] [--timeout-ms MS] "
                  "[--max-seconds S]\n");
  return 2;
}
