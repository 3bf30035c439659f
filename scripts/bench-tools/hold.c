/* SPDX-License-Identifier: GPL-3.0-only */
/* Benchmark client: opens many TCP connections through an echo path and
 * holds them idle. */

/* Usage: hold --port PORT [--host ADDR] [--count N] [--parallel P]
 *             [--timeout-ms MS] [--max-seconds S]
 * Opens N connections (default 10000), at most P (default 100) being set up
 * at a time. A connection counts as held once one byte written to it has
 * come back, so the whole path to the echo server exists. Then prints
 *   held=K failed=F seconds=S
 * and keeps the connections open and idle until a line or end of file
 * arrives on stdin; then closes them all and prints
 *   closed dropped=D
 * where D is the number of held connections the other side closed in the
 * meantime. A connection not set up within MS (default 20000) fails; after
 * S seconds (default 300) no new one starts. */

#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
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

enum { HD_IDLE = 0, HD_CONNECTING, HD_READING, HD_HELD, HD_DROPPED };

typedef struct hd_conn {
  int fd;
  int state;
  double t0;
} hd_conn;

static int hd_stdin_tag;

/* hd_now returns CLOCK_MONOTONIC in seconds. */
static double hd_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* hd_fail closes |c| as failed, saying why for the first failure only. */
static void hd_fail(hd_conn *c, long *failed, const char *why, int err) {
  if (*failed == 0) {
    fprintf(stderr, "hold: first failure: %s%s%s\n", why, err ? ": " : "",
            err ? strerror(err) : "");
  }
  close(c->fd);
  c->fd = -1;
  c->state = HD_IDLE;
  ++*failed;
}

int main(int argc, char **argv) {
  const char *host = "127.0.0.1";
  int port = 0;
  long count = 10000;
  long parallel = 100;
  double timeout_s = 20.0;
  double max_s = 300.0;
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
      count = atol(v);
    } else if (strcmp(a, "--parallel") == 0) {
      parallel = atol(v);
    } else if (strcmp(a, "--timeout-ms") == 0) {
      timeout_s = atof(v) / 1e3;
    } else if (strcmp(a, "--max-seconds") == 0) {
      max_s = atof(v);
    } else {
      goto usage;
    }
  }
  if (port <= 0 || port > 65535 || count < 1 || parallel < 1) {
    goto usage;
  }
  signal(SIGPIPE, SIG_IGN);
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    (void)setrlimit(RLIMIT_NOFILE, &rl);
  }
  if ((rlim_t)count + 16 > rl.rlim_cur) {
    fprintf(stderr,
            "hold: %ld connections need more than the open-file "
            "limit %lu\n",
            count, (unsigned long)rl.rlim_cur);
    return 2;
  }
  struct sockaddr_in sa;
  memset(&sa, 0, sizeof(sa));
  sa.sin_family = AF_INET;
  sa.sin_port = htons((uint16_t)port);
  if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
    fprintf(stderr, "hold: bad address %s\n", host);
    return 2;
  }
  hd_conn *conns = calloc((size_t)count, sizeof(hd_conn));
  int ep = epoll_create1(EPOLL_CLOEXEC);
  if (!conns || ep < 0) {
    fprintf(stderr, "hold: out of memory\n");
    return 1;
  }

  long next = 0;     /* next connection to start */
  long inflight = 0; /* connecting or waiting for the echo */
  long held = 0;
  long failed = 0;
  long lo = 0; /* connections below lo are no longer being set up */
  double t_start = hd_now();
  struct epoll_event evs[256];
  for (;;) {
    while (inflight < parallel && next < count && hd_now() < t_start + max_s) {
      hd_conn *c = &conns[next++];
      c->t0 = hd_now();
      c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      if (c->fd < 0) {
        hd_fail(c, &failed, "socket", errno);
        continue;
      }
      struct epoll_event ev;
      memset(&ev, 0, sizeof(ev));
      ev.events = EPOLLOUT;
      ev.data.ptr = c;
      if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) != 0) {
        hd_fail(c, &failed, "epoll_ctl", errno);
        continue;
      }
      if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 &&
          errno != EINPROGRESS) {
        hd_fail(c, &failed, "connect", errno);
        continue;
      }
      c->state = HD_CONNECTING;
      ++inflight;
    }
    if (inflight == 0) {
      break;
    }
    int n = epoll_wait(ep, evs, 256, 50);
    if (n < 0 && errno != EINTR) {
      fprintf(stderr, "hold: epoll_wait: %s\n", strerror(errno));
      return 1;
    }
    for (int i = 0; i < n; ++i) {
      hd_conn *c = evs[i].data.ptr;
      if (c->state == HD_CONNECTING) {
        int err = 0;
        socklen_t len = sizeof(err);
        if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) {
          err = errno;
        }
        char x = 'x';
        if (err == 0 && write(c->fd, &x, 1) != 1) {
          err = errno;
        }
        struct epoll_event ev;
        memset(&ev, 0, sizeof(ev));
        ev.events = EPOLLIN;
        ev.data.ptr = c;
        if (err == 0 && epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) != 0) {
          err = errno;
        }
        if (err != 0) {
          hd_fail(c, &failed, "connect", err);
          --inflight;
        } else {
          c->state = HD_READING;
        }
      } else if (c->state == HD_READING) {
        char x;
        ssize_t r = read(c->fd, &x, 1);
        if (r < 0 && (errno == EAGAIN || errno == EINTR)) {
          continue;
        }
        --inflight;
        if (r != 1 || x != 'x') {
          hd_fail(c, &failed, r == 0 ? "closed before the echo" : "read",
                  r < 0 ? errno : 0);
          continue;
        }
        /* Held: from now on only a close by the other side matters. */
        struct epoll_event ev;
        memset(&ev, 0, sizeof(ev));
        ev.events = EPOLLRDHUP;
        ev.data.ptr = c;
        (void)epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
        c->state = HD_HELD;
        ++held;
      }
    }
    double now = hd_now();
    while (lo < next && conns[lo].state != HD_CONNECTING &&
           conns[lo].state != HD_READING) {
      ++lo;
    }
    for (long i = lo; i < next; ++i) {
      hd_conn *c = &conns[i];
      if ((c->state == HD_CONNECTING || c->state == HD_READING) &&
          now - c->t0 > timeout_s) {
        hd_fail(c, &failed, "timeout", 0);
        --inflight;
      }
    }
  }
  printf("held=%ld failed=%ld seconds=%.3f\n", held, failed,
         hd_now() - t_start);
  fflush(stdout);

  /* Hold until stdin has a line or ends; count drops meanwhile. */
  struct epoll_event sev;
  memset(&sev, 0, sizeof(sev));
  sev.events = EPOLLIN;
  sev.data.ptr = &hd_stdin_tag;
  int have_stdin = epoll_ctl(ep, EPOLL_CTL_ADD, 0, &sev) == 0;
  long dropped = 0;
  for (int done = 0; !done;) {
    int n = epoll_wait(ep, evs, 256, have_stdin ? -1 : 1000);
    if (n < 0 && errno != EINTR) {
      break;
    }
    for (int i = 0; i < n; ++i) {
      if (evs[i].data.ptr == &hd_stdin_tag) {
        done = 1;
        continue;
      }
      hd_conn *c = evs[i].data.ptr;
      if (c->state == HD_HELD) {
        c->state = HD_DROPPED;
        ++dropped;
        (void)epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
      }
    }
    if (!have_stdin) {
      char b;
      done = read(0, &b, 1) <= 0 || b == '\n';
    }
  }
  for (long i = 0; i < next; ++i) {
    if (conns[i].fd >= 0) {
      close(conns[i].fd);
    }
  }
  printf("closed dropped=%ld\n", dropped);
  fflush(stdout);
  return 0;

usage:
  fprintf(stderr, "usage: hold --port PORT [--host ADDR] [--count N] "
                  "[--parallel P] [--timeout-ms MS] [--max-seconds S]\n");
  return 2;
}
