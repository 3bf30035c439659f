/* SPDX-License-Identifier: GPL-3.0-only */
/* WAN path emulator for scripts/bench --wan: a userspace delay line between
 * two TUN devices, one in each of two network namespaces. */

/* Usage: wanem --ns-a PATH --ns-b PATH [--dev NAME] [--delay MS]
 *              [--jitter MS] [--loss FRACTION] [--rate MBIT] [--queue-ms MS]
 *              [--seed N]
 * Creates a TUN device NAME (default wan0) in each namespace (PATH is a
 * namespace file such as /run/netns/prdwan-a), prints "ready" and then
 * carries every IP packet read from one device to the other, each way
 * alike:
 *   - random loss: each packet is dropped with probability FRACTION;
 *   - rate limit: packets leave a FIFO bottleneck at MBIT Mbit/s (IP bytes;
 *     0 = unlimited); a packet that would wait more than MS (--queue-ms,
 *     default 50) in the bottleneck queue is dropped (tail drop);
 *   - one-way delay: DELAY ms after leaving the bottleneck, plus a uniform
 *     random jitter in [-JITTER, +JITTER] ms; packets are never reordered
 *     (a packet is never released before the one ahead of it).
 * The addresses and the link state of the devices are left to the caller
 * (ip -n NS addr add ...). The devices vanish when wanem exits.
 *
 * Commands on stdin, one per line:
 *   set DELAY_MS JITTER_MS LOSS RATE_MBIT QUEUE_MS   new parameters
 *   blackout MS     drop every packet, both ways, for MS milliseconds
 *   stats           print "stats" and counters per direction
 *   queue           print "queue" and, per direction, the median, 99th
 *                   percentile and maximum of the time packets waited in
 *                   the bottleneck queue (ms) since the last "queue", and
 *                   start counting again
 * End of stdin, SIGTERM or SIGINT: exit. */

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#define WANEM_SLOTS 16384
#define WANEM_MTU 2048
#define WANEM_QBINS 4096 /* queue-wait histogram: 0.25 ms bins, to 1 s */
#define WANEM_QBIN_NS 250000u

typedef struct wanem_pkt {
  uint64_t release_ns;
  uint16_t len;
  unsigned char data[WANEM_MTU];
} wanem_pkt;

typedef struct wanem_dir {
  const char *name;
  int in_fd, out_fd;
  wanem_pkt *ring;
  size_t head, count;
  uint64_t tx_end_ns;       /* when the bottleneck is free again */
  uint64_t last_release_ns; /* keeps packets in order */
  uint64_t n_in, n_out, n_lost, n_qdrop, n_blackout, n_werr;
  uint64_t qn, qmax_ns;
  uint32_t qhist[WANEM_QBINS];
} wanem_dir;

static struct {
  uint64_t delay_ns, jitter_ns, queue_ns;
  double loss, rate_bps;
  uint64_t blackout_until_ns;
  uint64_t rng;
} wanem;

static volatile sig_atomic_t wanem_stop;

static void wanem_on_signal(int sig) {
  (void)sig;
  wanem_stop = 1;
}

static uint64_t wanem_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* wanem_rand returns a uniform double in [0, 1) (xorshift64*). */
static double wanem_rand(void) {
  wanem.rng ^= wanem.rng >> 12;
  wanem.rng ^= wanem.rng << 25;
  wanem.rng ^= wanem.rng >> 27;
  return (double)((wanem.rng * 2685821657736338717ull) >> 11) /
         9007199254740992.0;
}

static int wanem_tun(const char *ns, const char *dev) {
  int nsfd = open(ns, O_RDONLY | O_CLOEXEC);
  if (nsfd < 0) {
    fprintf(stderr, "wanem: %s: %s\n", ns, strerror(errno));
    return -1;
  }
  if (setns(nsfd, CLONE_NEWNET) != 0) {
    fprintf(stderr, "wanem: setns %s: %s\n", ns, strerror(errno));
    close(nsfd);
    return -1;
  }
  close(nsfd);
  int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    fprintf(stderr, "wanem: /dev/net/tun: %s\n", strerror(errno));
    return -1;
  }
  struct ifreq ifr;
  memset(&ifr, 0, sizeof(ifr));
  ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
  snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", dev);
  if (ioctl(fd, TUNSETIFF, &ifr) != 0) {
    fprintf(stderr, "wanem: TUNSETIFF %s in %s: %s\n", dev, ns,
            strerror(errno));
    close(fd);
    return -1;
  }
  return fd;
}

static void wanem_enqueue(wanem_dir *d, const unsigned char *buf, size_t len,
                          uint64_t now) {
  d->n_in++;
  if (now < wanem.blackout_until_ns) {
    d->n_blackout++;
    return;
  }
  if (wanem.loss > 0 && wanem_rand() < wanem.loss) {
    d->n_lost++;
    return;
  }
  uint64_t depart = now;
  if (wanem.rate_bps > 0) {
    uint64_t start = d->tx_end_ns > now ? d->tx_end_ns : now;
    if (start - now > wanem.queue_ns) {
      d->n_qdrop++;
      return;
    }
    uint64_t w = start - now, bin = w / WANEM_QBIN_NS;
    d->qhist[bin < WANEM_QBINS ? bin : WANEM_QBINS - 1]++;
    d->qn++;
    if (w > d->qmax_ns) {
      d->qmax_ns = w;
    }
    d->tx_end_ns = start + (uint64_t)((double)len * 8e9 / wanem.rate_bps);
    depart = d->tx_end_ns;
  }
  if (d->count == WANEM_SLOTS) {
    d->n_qdrop++;
    return;
  }
  uint64_t rel = depart + wanem.delay_ns;
  if (wanem.jitter_ns > 0) {
    double j = (wanem_rand() * 2.0 - 1.0) * (double)wanem.jitter_ns;
    rel = (j < 0 && (uint64_t)-j > rel) ? 0 : (uint64_t)((double)rel + j);
  }
  if (rel < d->last_release_ns) {
    rel = d->last_release_ns;
  }
  d->last_release_ns = rel;
  wanem_pkt *p = &d->ring[(d->head + d->count) % WANEM_SLOTS];
  p->release_ns = rel;
  p->len = (uint16_t)len;
  memcpy(p->data, buf, len);
  d->count++;
}

static void wanem_read(wanem_dir *d) {
  unsigned char buf[WANEM_MTU];
  for (int i = 0; i < 256; i++) {
    ssize_t n = read(d->in_fd, buf, sizeof(buf));
    if (n <= 0) {
      return;
    }
    wanem_enqueue(d, buf, (size_t)n, wanem_now());
  }
}

static void wanem_flush(wanem_dir *d, uint64_t now) {
  while (d->count > 0) {
    wanem_pkt *p = &d->ring[d->head];
    if (p->release_ns > now) {
      return;
    }
    if (write(d->out_fd, p->data, p->len) != (ssize_t)p->len) {
      d->n_werr++;
    } else {
      d->n_out++;
    }
    d->head = (d->head + 1) % WANEM_SLOTS;
    d->count--;
  }
}

/* wanem_queue_pct: the |pct| percentile of the queue waits, ms. */
static double wanem_queue_pct(const wanem_dir *d, double pct) {
  uint64_t want = (uint64_t)((double)d->qn * pct / 100.0), seen = 0;
  for (size_t i = 0; i < WANEM_QBINS; i++) {
    seen += d->qhist[i];
    if (seen > want) {
      return (double)(i * WANEM_QBIN_NS + WANEM_QBIN_NS / 2) / 1e6;
    }
  }
  return 0;
}

static void wanem_queue_report(wanem_dir *dirs) {
  printf("queue");
  for (int i = 0; i < 2; i++) {
    wanem_dir *x = &dirs[i];
    printf(" %s_n=%llu %s_p50=%.2f %s_p99=%.2f %s_max=%.2f", x->name,
           (unsigned long long)x->qn, x->name,
           x->qn ? wanem_queue_pct(x, 50) : 0.0, x->name,
           x->qn ? wanem_queue_pct(x, 99) : 0.0, x->name,
           (double)x->qmax_ns / 1e6);
    memset(x->qhist, 0, sizeof(x->qhist));
    x->qn = 0;
    x->qmax_ns = 0;
  }
  printf("\n");
}

static void wanem_set(double delay_ms, double jitter_ms, double loss,
                      double rate_mbit, double queue_ms) {
  wanem.delay_ns = (uint64_t)(delay_ms * 1e6);
  wanem.jitter_ns = (uint64_t)(jitter_ms * 1e6);
  wanem.loss = loss;
  wanem.rate_bps = rate_mbit * 1e6;
  wanem.queue_ns = (uint64_t)(queue_ms * 1e6);
}

static int wanem_valid(double delay_ms, double jitter_ms, double loss,
                       double rate_mbit, double queue_ms) {
  return delay_ms >= 0 && delay_ms <= 10000 && jitter_ms >= 0 &&
         jitter_ms <= delay_ms && loss >= 0 && loss <= 1 && rate_mbit >= 0 &&
         rate_mbit <= 100000 && queue_ms >= 0 && queue_ms <= 10000;
}

static void wanem_command(char *line, wanem_dir *dirs) {
  double a, b, c, d, e;
  line[strcspn(line, "\r\n")] = '\0';
  if (sscanf(line, "set %lf %lf %lf %lf %lf", &a, &b, &c, &d, &e) == 5) {
    if (!wanem_valid(a, b, c, d, e)) {
      printf("error: bad set values\n");
    } else {
      wanem_set(a, b, c, d, e);
      printf("ok\n");
    }
  } else if (sscanf(line, "blackout %lf", &a) == 1 && a >= 0 && a <= 600000) {
    wanem.blackout_until_ns = wanem_now() + (uint64_t)(a * 1e6);
    printf("ok\n");
  } else if (strcmp(line, "stats") == 0) {
    printf("stats");
    for (int i = 0; i < 2; i++) {
      wanem_dir *x = &dirs[i];
      printf(" %s_in=%llu %s_out=%llu %s_lost=%llu %s_qdrop=%llu "
             "%s_blackout=%llu %s_werr=%llu",
             x->name, (unsigned long long)x->n_in, x->name,
             (unsigned long long)x->n_out, x->name,
             (unsigned long long)x->n_lost, x->name,
             (unsigned long long)x->n_qdrop, x->name,
             (unsigned long long)x->n_blackout, x->name,
             (unsigned long long)x->n_werr);
    }
    printf("\n");
  } else if (strcmp(line, "queue") == 0) {
    wanem_queue_report(dirs);
  } else {
    printf("error: unknown command\n");
  }
  fflush(stdout);
}

static int wanem_usage(void) {
  fprintf(stderr,
          "usage: wanem --ns-a PATH --ns-b PATH [--dev NAME] [--delay MS] "
          "[--jitter MS] [--loss FRACTION] [--rate MBIT] [--queue-ms MS] "
          "[--seed N]\n");
  return 2;
}

int main(int argc, char **argv) {
  const char *ns_a = NULL, *ns_b = NULL, *dev = "wan0";
  double delay = 0, jitter = 0, loss = 0, rate = 0, queue = 50;
  unsigned long long seed = 0x9e3779b97f4a7c15ull;
  for (int i = 1; i < argc; i++) {
    const char *o = argv[i];
    if (i + 1 >= argc) {
      return wanem_usage();
    }
    const char *v = argv[++i];
    char *end = NULL;
    if (strcmp(o, "--ns-a") == 0) {
      ns_a = v;
    } else if (strcmp(o, "--ns-b") == 0) {
      ns_b = v;
    } else if (strcmp(o, "--dev") == 0) {
      dev = v;
    } else if (strcmp(o, "--seed") == 0) {
      seed = strtoull(v, &end, 0);
    } else {
      double x = strtod(v, &end);
      if (strcmp(o, "--delay") == 0) {
        delay = x;
      } else if (strcmp(o, "--jitter") == 0) {
        jitter = x;
      } else if (strcmp(o, "--loss") == 0) {
        loss = x;
      } else if (strcmp(o, "--rate") == 0) {
        rate = x;
      } else if (strcmp(o, "--queue-ms") == 0) {
        queue = x;
      } else {
        return wanem_usage();
      }
    }
    if (end != NULL && (end == v || *end != '\0')) {
      fprintf(stderr, "wanem: bad value for %s\n", o);
      return 2;
    }
  }
  if (ns_a == NULL || ns_b == NULL || strlen(dev) >= IFNAMSIZ) {
    return wanem_usage();
  }
  if (!wanem_valid(delay, jitter, loss, rate, queue)) {
    fprintf(stderr, "wanem: values out of range\n");
    return 2;
  }
  wanem_set(delay, jitter, loss, rate, queue);
  wanem.rng = seed ? seed : 1;

  int fa = wanem_tun(ns_a, dev);
  int fb = fa < 0 ? -1 : wanem_tun(ns_b, dev);
  if (fb < 0) {
    return 1;
  }
  wanem_dir dirs[2] = {{.name = "a2b", .in_fd = fa, .out_fd = fb},
                       {.name = "b2a", .in_fd = fb, .out_fd = fa}};
  for (int i = 0; i < 2; i++) {
    dirs[i].ring = calloc(WANEM_SLOTS, sizeof(wanem_pkt));
    if (dirs[i].ring == NULL) {
      fprintf(stderr, "wanem: out of memory\n");
      return 1;
    }
  }
  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = wanem_on_signal;
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);
  printf("ready\n");
  fflush(stdout);

  char line[256];
  size_t linelen = 0;
  int stdin_open = 1;
  while (!wanem_stop && stdin_open) {
    uint64_t now = wanem_now();
    uint64_t next = UINT64_MAX;
    for (int i = 0; i < 2; i++) {
      if (dirs[i].count > 0 && dirs[i].ring[dirs[i].head].release_ns < next) {
        next = dirs[i].ring[dirs[i].head].release_ns;
      }
    }
    struct timespec ts, *tsp = NULL;
    if (next != UINT64_MAX) {
      uint64_t wait = next > now ? next - now : 0;
      ts.tv_sec = (time_t)(wait / 1000000000u);
      ts.tv_nsec = (long)(wait % 1000000000u);
      tsp = &ts;
    }
    struct pollfd pfd[3] = {{.fd = fa, .events = POLLIN},
                            {.fd = fb, .events = POLLIN},
                            {.fd = 0, .events = POLLIN}};
    int n = ppoll(pfd, 3, tsp, NULL);
    if (n < 0 && errno != EINTR) {
      perror("wanem: ppoll");
      return 1;
    }
    if (n > 0) {
      if (pfd[0].revents & POLLIN) {
        wanem_read(&dirs[0]);
      }
      if (pfd[1].revents & POLLIN) {
        wanem_read(&dirs[1]);
      }
      if (pfd[2].revents & (POLLIN | POLLHUP)) {
        ssize_t r = read(0, line + linelen, sizeof(line) - 1 - linelen);
        if (r <= 0) {
          stdin_open = 0;
        } else {
          linelen += (size_t)r;
          line[linelen] = '\0';
          char *nl;
          while ((nl = strchr(line, '\n')) != NULL) {
            *nl = '\0';
            wanem_command(line, dirs);
            size_t rest = linelen - (size_t)(nl + 1 - line);
            memmove(line, nl + 1, rest + 1);
            linelen = rest;
          }
          if (linelen == sizeof(line) - 1) {
            linelen = 0; /* an overlong line is discarded */
          }
        }
      }
    }
    now = wanem_now();
    wanem_flush(&dirs[0], now);
    wanem_flush(&dirs[1], now);
  }
  return 0;
}
