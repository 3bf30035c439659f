/* SPDX-License-Identifier: GPL-3.0-only */
/* The TCP side of a stream, for both roles: reads from the socket into the
 * QUIC stream with backpressure, writes the stream's bytes out, half-closes
 * on FIN and closes (spec/02-framing.md §6). What differs between server
 * and client goes through r->role (relay_int.h). */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "../common/log.h"
#include "relay_int.h"

#define READ_BUDGET (1024 * 1024) /* bytes per TCP read event */
#define DIRECT_WRITE_MIN (16 * 1024)
#define RD_PAUSE_TURNS 4 /* see tc_read */

void set_nodelay(int fd) {
  int on = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
}

/* ev_switch registers or unregisters |ev| when |on| differs from what
 * |enabled| says it is; it returns the new state. */
static unsigned ev_switch(struct event *ev, unsigned enabled, int on) {
  if (on && !enabled) {
    event_add(ev, NULL);
  } else if (!on && enabled) {
    event_del(ev);
  }
  return on != 0;
}

void tc_enable_read(tcpc *tc, int on) {
  tc->rd_enabled = ev_switch(tc->rev, tc->rd_enabled, on) & 1u;
}

void tc_enable_write(tcpc *tc, int on) {
  tc->wr_enabled = ev_switch(tc->wev, tc->wr_enabled, on) & 1u;
}

/* Runs the write callback at the end of this event-loop turn instead of
 * registering EPOLLOUT: a socket with room takes the bytes without any
 * epoll_ctl; only a full socket (EAGAIN) registers for EPOLLOUT. */
static void tc_schedule_write(tcpc *tc) {
  if (!tc->wr_enabled) {
    event_active(tc->wev, EV_WRITE, 0);
  }
}

/* tc_close closes the TCP side; |rst| sends a TCP RST (SO_LINGER 0) and
 * aborts the stream with |code| (spec/02-framing.md §6). */
void tc_close(tcpc *tc, int rst, uint64_t code, const char *why) {
  relay *r = tc->r;
  char peer[200];
  double secs = (double)(prd_now() - tc->start) / 1e9;

  if (tc->st) {
    /* Bytes dropped unwritten still hold connection credit: return it. */
    prd_qstream_consumed(tc->st, (size_t)prd_chunkbuf_len(&tc->out));
    prd_qstream_set_user(tc->st, NULL);
    if (rst) {
      prd_qstream_abort(tc->st, code);
    }
    prd_qstream_detach(tc->st);
    tc->st = NULL;
  }
  if (rst && tc->fd >= 0) {
    struct linger lg = {1, 0};
    setsockopt(tc->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
  }
  if (r->role->tcp_unlink) {
    r->role->tcp_unlink(tc);
  }
  if (tc->t && tc->t->active > 0) {
    --tc->t->active;
  }
  /* One tag per TCP connection, [tN], on every line about it; the byte
   * counts named from the user's side so that server and client agree
   * (up/down are TCP->QUIC/QUIC->TCP at this side: the user's TCP on the
   * server, the destination's on the client). */
  PRD_LOG_INFO(
      "[t%llu] closed %s (%s): %s, %llu bytes from user, %llu bytes to user, "
      "%.3f s",
      (unsigned long long)tc->id, r->role->tcp_label(tc, peer, sizeof(peer)),
      tc->t && tc->t->qc ? prd_quic_conn_name(tc->t->qc)
      : tc->qname[0]     ? tc->qname
                         : "no tunnel",
      why, (unsigned long long)(r->role->tcp_is_user ? tc->up : tc->down),
      (unsigned long long)(r->role->tcp_is_user ? tc->down : tc->up), secs);
  relay_ev_free(&tc->rev);
  relay_ev_free(&tc->wev);
  relay_ev_free(&tc->peek_ev);
  if (tc->fd >= 0) {
    close(tc->fd);
  }
  prd_chunkbuf_free(&tc->out);
  --r->nconns;
  r->metrics.active = r->nconns;
  if (tc->svc_counted) {
    --r->metrics.svc_active[tc->svc];
  }
  /* A user's reset is how many clients end a connection (wrk, browsers):
   * not a failure. */
  if (rst && code != PRD_APP_USER_RESET) {
    ++r->metrics.conns_failed;
  }
  free(tc);
  if (r->role->tcp_freed) {
    r->role->tcp_freed(r);
  }
  if (r->stopping) {
    check_drained(r);
  }
}

/* Close cleanly once both directions are finished and written out. */
static void tc_maybe_finish(tcpc *tc) {
  if (tc->connecting || tc->pending) {
    return;
  }
  if (prd_chunkbuf_len(&tc->out) > 0) {
    return;
  }
  if (tc->st == NULL) {
    tc_close(tc, 0, 0, "done");
    return;
  }
  if (tc->rd_eof && tc->wr_shut) {
    tc_close(tc, 0, 0, "done");
  }
}

static void tc_flush_out(tcpc *tc) {
  struct iovec iov[16];
  while (prd_chunkbuf_len(&tc->out) > 0) {
    size_t n = prd_chunkbuf_peek(&tc->out, tc->out.head_off, iov, 16);
    ssize_t w = writev(tc->fd, iov, (int)n);
    if (w < 0) {
      if (errno == EINTR) {
        continue;
      }
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        tc_enable_write(tc, 1);
        return;
      }
      tc_close(tc, 1, tc->r->role->local_reset_code, strerror(errno));
      return;
    }
    prd_chunkbuf_release(&tc->out, tc->out.head_off + (uint64_t)w);
    tc->down += (uint64_t)w;
    tc->r->metrics.bytes_down += (uint64_t)w;
    if (tc->st) {
      prd_qstream_consumed(tc->st, (size_t)w);
    }
  }
  tc_enable_write(tc, 0);
  if (tc->wr_fin && !tc->wr_shut) {
    shutdown(tc->fd, SHUT_WR);
    tc->wr_shut = 1;
  }
  tc_maybe_finish(tc);
}

void tc_read(tcpc *tc) {
  size_t total = 0;
  prd_qstream *st = tc->st;

  while (total < READ_BUDGET) {
    uint64_t space = prd_qstream_send_space(st);
    uint8_t *p;
    size_t avail;
    ssize_t n;

    if (space == 0) {
      /* Backpressure: resume on ACK/credit (stream_writable). EPOLLIN
       * stays registered for a few turns, since sends and ACKs usually free
       * space soon and removing and re-adding it costs two epoll_ctl; after
       * RD_PAUSE_TURNS turns still without space it is unregistered. */
      if (tc->rd_paused && total == 0) {
        if (++tc->rd_idle >= RD_PAUSE_TURNS) {
          tc_enable_read(tc, 0);
        }
        return;
      }
      tc->rd_paused = 1;
      tc->rd_idle = 0;
      break;
    }
    if (prd_qstream_reserve(st, &p, &avail, 4096) != 0) {
      tc_close(tc, 1, PRD_APP_INTERNAL_ERROR, "out of memory");
      return;
    }
    if (avail > space) {
      avail = (size_t)space;
    }
    n = read(tc->fd, p, avail);
    if (n > 0) {
      prd_qstream_commit(st, (size_t)n);
      tc->up += (uint64_t)n;
      tc->r->metrics.bytes_up += (uint64_t)n;
      total += (size_t)n;
      if ((size_t)n < avail) {
        break; /* drained the socket for now */
      }
      continue;
    }
    prd_qstream_commit(st, 0);
    if (n == 0) {
      tc->rd_eof = 1;
      tc_enable_read(tc, 0);
      prd_qstream_shutdown_write(st);
      break;
    }
    if (errno == EINTR) {
      continue;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      break;
    }
    prd_qstream_mark_ready(st);
    tc_close(tc, 1, tc->r->role->local_reset_code, strerror(errno));
    return;
  }
  prd_qstream_mark_ready(st);
  if (tc->rd_eof) {
    tc_maybe_finish(tc);
  }
}

void on_tcp_read(evutil_socket_t fd, short what, void *arg) {
  tcpc *tc = arg;
  (void)fd;
  (void)what;
  if (tc->st == NULL) {
    tc_enable_read(tc, 0);
    return;
  }
  tc_read(tc);
}

void on_tcp_write(evutil_socket_t fd, short what, void *arg) {
  tcpc *tc = arg;
  (void)what;
  if (tc->connecting) {
    int err = 0;
    socklen_t len = sizeof(err);
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) {
      PRD_LOG_DEBUG("[t%llu] connect to destination failed: %s",
                    (unsigned long long)tc->id, strerror(err));
      tc->dest_err = err;
      close(tc->fd);
      event_free(tc->rev);
      event_free(tc->wev);
      tc->rev = tc->wev = NULL;
      tc->rd_enabled = tc->wr_enabled = 0;
      tc->r->role->tcp_connect_failed(tc);
      return;
    }
    tc->connecting = 0;
    set_nodelay(tc->fd);
    PRD_LOG_DEBUG("[t%llu] connected to destination",
                  (unsigned long long)tc->id);
    if (tc->st) {
      tc_enable_read(tc, 1);
    }
  }
  tc_flush_out(tc);
}

tcpc *tc_new(relay *r, int fd) {
  tcpc *tc = calloc(1, sizeof(*tc));
  if (tc == NULL) {
    return NULL;
  }
  tc->r = r;
  tc->fd = fd;
  tc->id = ++r->next_id;
  tc->start = prd_now();
  prd_chunkbuf_init(&tc->out, 0);
  if (fd >= 0) {
    tc->rev = event_new(r->base, fd, EV_READ | EV_PERSIST, on_tcp_read, tc);
    tc->wev = event_new(r->base, fd, EV_WRITE | EV_PERSIST, on_tcp_write, tc);
    if (tc->rev == NULL || tc->wev == NULL) {
      event_free(tc->rev);
      event_free(tc->wev);
      free(tc);
      return NULL;
    }
  }
  ++r->nconns;
  ++r->metrics.conns_total;
  r->metrics.active = r->nconns;
  return tc;
}

int cb_stream_data(prd_qstream *st, const uint8_t *data, size_t len, int fin,
                   void *ud) {
  tcpc *tc = prd_qstream_user(st);
  (void)ud;
  if (len > 0) {
    if (len >= DIRECT_WRITE_MIN && prd_chunkbuf_len(&tc->out) == 0 &&
        !tc->connecting) {
      /* Large pieces go straight to the socket, no copy. */
      while (len > 0) {
        ssize_t w = write(tc->fd, data, len);
        if (w < 0) {
          if (errno == EINTR) {
            continue;
          }
          if (errno == EAGAIN || errno == EWOULDBLOCK) {
            break;
          }
          tc_close(tc, 1, tc->r->role->local_reset_code, strerror(errno));
          return 0;
        }
        data += w;
        len -= (size_t)w;
        tc->down += (uint64_t)w;
        tc->r->metrics.bytes_down += (uint64_t)w;
        prd_qstream_consumed(st, (size_t)w);
      }
    }
    if (len > 0) {
      /* Small pieces (one per QUIC packet) are gathered and written with one
       * writev after the packets read in this event-loop turn (see
       * tc_schedule_write). The buffer is bounded by the stream's flow-control
       * window: credit comes back only when these bytes reach the socket. */
      if (prd_chunkbuf_append(&tc->out, data, len) != 0) {
        tc_close(tc, 1, PRD_APP_INTERNAL_ERROR, "out of memory");
        return 0;
      }
      if (!tc->connecting) {
        tc_schedule_write(tc);
      }
    }
  }
  if (fin) {
    tc->wr_fin = 1;
    if (prd_chunkbuf_len(&tc->out) == 0 && !tc->connecting) {
      shutdown(tc->fd, SHUT_WR);
      tc->wr_shut = 1;
      tc_maybe_finish(tc);
    }
  }
  return 0;
}

void cb_stream_reset(prd_qstream *st, uint64_t app_err, void *ud) {
  tcpc *tc = prd_qstream_user(st);
  char why[96];
  (void)ud;
  snprintf(why, sizeof(why), "reset by the %s side (%s)", tc->r->role->peer,
           prd_app_err_name(app_err));
  /* The stream is aborted by the transport already; RST the TCP side. */
  tc_close(tc, 1, app_err, why);
}

void cb_stream_writable(prd_qstream *st, void *ud) {
  tcpc *tc = prd_qstream_user(st);
  (void)ud;
  if (tc->rd_paused && !tc->rd_eof) {
    tc->rd_paused = 0;
    tc_enable_read(tc, 1);
  }
}

void cb_stream_close(prd_qstream *st, uint64_t app_err, void *ud) {
  tcpc *tc = prd_qstream_user(st);
  (void)ud;
  /* The stream is complete but a slow TCP reader may still have bytes
   * queued: their connection-level credit is due now, since nobody will
   * account for them once the stream is gone. */
  prd_qstream_consumed(st, (size_t)prd_chunkbuf_len(&tc->out));
  tc->st = NULL;
  prd_qstream_set_user(st, NULL);
  prd_qstream_detach(st);
  if (tc->t) {
    /* The stream is gone: the TCP side no longer holds its tunnel, which
     * may be freed (server_closed) before the last bytes reach TCP. */
    if (tc->t->qc) {
      snprintf(tc->qname, sizeof(tc->qname), "%s",
               prd_quic_conn_name(tc->t->qc));
    }
    if (tc->t->active > 0) {
      --tc->t->active;
    }
    tc->t = NULL;
  }
  if (app_err != PRD_APP_NO_ERROR) {
    char why[96];
    snprintf(why, sizeof(why), "stream ended: %s", prd_app_err_name(app_err));
    tc_close(tc, 1, app_err, why);
    return;
  }
  tc_enable_read(tc, 0);
  tc_maybe_finish(tc);
}
