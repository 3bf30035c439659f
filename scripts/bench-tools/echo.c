/* SPDX-License-Identifier: GPL-3.0-only */
/* Benchmark destination: a single-threaded epoll TCP echo server. */

/* Usage: echo [--host ADDR] [--port PORT]
 * Listens on ADDR:PORT (default 127.0.0.1, port 0 = any free port), prints
 * "port N" on stdout once listening, and echoes every byte back until it is
 * killed. Raises its open-file limit to the hard limit. */

#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

typedef struct echo_conn {
  int fd;
  char *pend; /* bytes read but not yet written back */
  size_t pendlen;
  size_t pendoff;
} echo_conn;

static char echo_buf[65536];
static int echo_listener_tag;

/* echo_raise_nofile sets the soft RLIMIT_NOFILE to the hard one. */
static void echo_raise_nofile(void) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    (void)setrlimit(RLIMIT_NOFILE, &rl);
  }
}

/* echo_close drops |c| from |ep| and frees it. */
static void echo_close(int ep, echo_conn *c) {
  (void)epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
  close(c->fd);
  free(c->pend);
  free(c);
}

/* echo_want switches the events |c| waits for: EPOLLOUT while it has
 * pending bytes, EPOLLIN otherwise. */
static int echo_want(int ep, echo_conn *c) {
  struct epoll_event ev;
  memset(&ev, 0, sizeof(ev));
  ev.events = c->pend ? EPOLLOUT : EPOLLIN;
  ev.data.ptr = c;
  return epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

/* echo_accept accepts every pending connection on |lfd|. */
static void echo_accept(int ep, int lfd) {
  for (;;) {
    int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EMFILE || errno == ENFILE) {
        fprintf(stderr, "echo: accept: %s\n", strerror(errno));
        usleep(10000);
      }
      return;
    }
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    echo_conn *c = calloc(1, sizeof(*c));
    if (!c) {
      close(fd);
      continue;
    }
    c->fd = fd;
    struct epoll_event ev;
    memset(&ev, 0, sizeof(ev));
    ev.events = EPOLLIN;
    ev.data.ptr = c;
    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
      close(fd);
      free(c);
    }
  }
}

/* echo_flush writes the pending bytes of |c|; returns -1 to close it. */
static int echo_flush(int ep, echo_conn *c) {
  while (c->pendoff < c->pendlen) {
    ssize_t w = write(c->fd, c->pend + c->pendoff, c->pendlen - c->pendoff);
    if (w < 0) {
      if (errno == EAGAIN || errno == EINTR) {
        return 0;
      }
      return -1;
    }
    c->pendoff += (size_t)w;
  }
  free(c->pend);
  c->pend = NULL;
  c->pendlen = c->pendoff = 0;
  return echo_want(ep, c) == 0 ? 0 : -1;
}

/* echo_readable reads once from |c| and echoes; returns -1 to close it. */
static int echo_readable(int ep, echo_conn *c) {
  ssize_t n = read(c->fd, echo_buf, sizeof(echo_buf));
  if (n == 0) {
    return -1;
  }
  if (n < 0) {
    return (errno == EAGAIN || errno == EINTR) ? 0 : -1;
  }
  size_t len = (size_t)n;
  size_t off = 0;
  while (off < len) {
    ssize_t w = write(c->fd, echo_buf + off, len - off);
    if (w < 0) {
      if (errno == EINTR) {
        continue;
      }
      if (errno != EAGAIN) {
        return -1;
      }
      break;
    }
    off += (size_t)w;
  }
  if (off < len) {
    c->pend = malloc(len - off);
    if (!c->pend) {
      return -1;
    }
    memcpy(c->pend, echo_buf + off, len - off);
    c->pendlen = len - off;
    c->pendoff = 0;
    return echo_want(ep, c) == 0 ? 0 : -1;
  }
  return 0;
}

int main(int argc, char **argv) {
  const char *host = "127.0.0.1";
  int port = 0;
  for (int i = 1; i < argc; ++i) {
    if (strcmp(argv[i], "--host") == 0 && i + 1 < argc) {
      host = argv[++i];
    } else if (strcmp(argv[i], "--port") == 0 && i + 1 < argc) {
      port = atoi(argv[++i]);
    } else {
      fprintf(stderr, "usage: echo [--host ADDR] [--port PORT]\n");
      return 2;
    }
  }
  signal(SIGPIPE, SIG_IGN);
  echo_raise_nofile();

  struct sockaddr_in sa;
  memset(&sa, 0, sizeof(sa));
  sa.sin_family = AF_INET;
  sa.sin_port = htons((uint16_t)port);
  if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
    fprintf(stderr, "echo: bad address %s\n", host);
    return 2;
  }
  int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int one = 1;
  if (lfd < 0 ||
      setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
      bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
      listen(lfd, 4096) != 0) {
    fprintf(stderr, "echo: listen: %s\n", strerror(errno));
    return 1;
  }
  socklen_t salen = sizeof(sa);
  if (getsockname(lfd, (struct sockaddr *)&sa, &salen) != 0) {
    return 1;
  }
  int ep = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event ev;
  memset(&ev, 0, sizeof(ev));
  ev.events = EPOLLIN;
  ev.data.ptr = &echo_listener_tag;
  if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev) != 0) {
    fprintf(stderr, "echo: epoll: %s\n", strerror(errno));
    return 1;
  }
  printf("port %u\n", (unsigned)ntohs(sa.sin_port));
  fflush(stdout);

  struct epoll_event evs[256];
  for (;;) {
    int n = epoll_wait(ep, evs, 256, -1);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      fprintf(stderr, "echo: epoll_wait: %s\n", strerror(errno));
      return 1;
    }
    for (int i = 0; i < n; ++i) {
      if (evs[i].data.ptr == &echo_listener_tag) {
        echo_accept(ep, lfd);
        continue;
      }
      echo_conn *c = evs[i].data.ptr;
      int rc;
      if (c->pend) {
        rc = (evs[i].events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
                 ? echo_flush(ep, c)
                 : 0;
      } else {
        rc = echo_readable(ep, c);
      }
      if (rc != 0) {
        echo_close(ep, c);
      }
    }
  }
}
