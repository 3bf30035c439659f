/* SPDX-License-Identifier: GPL-3.0-only */
/* Stateful libFuzzer harness for the transport adapter (src/quic/): the
 * input is a program run on the in-process pair harness
 * (tests/unit/helpers/quic_pair.h: a server and a client connection under
 * a fake clock). The program chooses the network (loss, duplication,
 * reordering, delay, blackholes, a full socket), the passing of time, and
 * what the relay does with streams: open, write N bytes of pattern(), FIN,
 * abort, hold back or return flow-control credit (a slow TCP reader),
 * detach (its TCP side closed), refuse new streams, GOAWAY, close.
 *
 * Invariants (abort on violation):
 * - no crash, no leak (ASan/LSan), every chunk returned
 *   (prd_chunk_bytes_in_use is 0 after the pair is gone);
 * - every byte a stream delivers is the next byte of pattern(), never more
 *   than its peer wrote, FIN only after all of them; a stream whose ends
 *   the program neither aborted nor detached delivers all of them and its
 *   FIN both ways and ends without a reset (a clean detach after FIN still
 *   owes the peer every byte);
 * - a stream's buffers stay within the bounds of README "Performance" and
 *   spec/04-quic-profile.md §2.3: at most 256 KiB unsent and 8 MiB in all
 *   in the send buffer; a reader that never returned credit is sent at
 *   most the initial 1 MiB window, one that did at most 16 MiB;
 * - once the network heals and every stream is finished, every stream
 *   closes and the connection closes on both sides in bounded fake time.
 *
 * Input layout: [0] flags (bit 0: server streams hold credit, bit 1:
 * client streams hold credit, bit 2: the handshake sees the loss of [1],
 * bits 3-5: the client's stream limit if not 0, bit 6: the client's
 * keep-alive at 1 s, bit 7: the server's idle timeout at 3 s),
 * [1] network seed and handshake loss, then operations of one opcode byte
 * (modulo OP_COUNT) and up to four argument bytes each; missing bytes read
 * as zero. FUZZ_PAIR_VERBOSE set: a summary of each run on stderr (also
 * printed when an invariant fails). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/chunkbuf.h"
#include "helpers/quic_pair.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The bounds of README "Performance" (src/quic/conn.c's
 * PRD_STREAM_UNSENT_MAX, PRD_STREAM_SENDBUF_MAX, PRD_STREAM_WINDOW and
 * PRD_STREAM_WINDOW_MAX). */
#define UNSENT_MAX ((uint64_t)256 * 1024)
#define SENDBUF_MAX ((uint64_t)8 * 1024 * 1024)
#define STREAM_WINDOW ((uint64_t)1024 * 1024)
#define STREAM_WINDOW_MAX ((uint64_t)16 * 1024 * 1024)
#define CONN_WINDOW_MAX ((uint64_t)64 * 1024 * 1024)

/* Per run: at most this many bytes written, streams opened. */
#define MAX_BYTES ((uint64_t)6 * 1024 * 1024)
#define MAX_STREAMS 32
#define MAX_OPS 200
/* Fake time for the end: every stream, then the connection, gone. */
#define END_LIMIT (600 * SEC)

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fail(#cond, __LINE__);                                                   \
    }                                                                          \
  } while (0)

static void fail(const char *what, int line) __attribute__((noreturn));

enum {
  OP_LOSS,
  OP_DUP,
  OP_REORDER,
  OP_DELAY,
  OP_DROP_NEXT,
  OP_BLACKHOLE,
  OP_SOCKET_FULL,
  OP_ADVANCE,
  OP_OPEN,
  OP_SEND,
  OP_FIN,
  OP_ABORT,
  OP_HOLD,
  OP_CONSUME,
  OP_CONSUME_SOME,
  OP_DETACH,
  OP_CLOSE,
  OP_GOAWAY,
  OP_PROBE,
  OP_SIDE_HOLD,
  OP_REFUSE,
  OP_INFO,
  OP_COUNT
};

/* What the fuzzer did to each stream end, beside the harness's app_stream:
 * the ends the invariants excuse from delivering everything. */
typedef struct end_note {
  const app_stream *a;
  int aborted;  /* we called prd_qstream_abort */
  int detached; /* we called prd_qstream_detach */
  int released; /* its credit was returned at least once */
} end_note;

static struct {
  const uint8_t *p;
  size_t left;
  uint64_t bytes; /* written so far */
  int opened;
  prd_tstamp t0;
  end_note notes[2 * MAX_STREAMS + 8];
  size_t nnotes;
} R;

static uint8_t next8(void) {
  if (R.left == 0) {
    return 0;
  }
  --R.left;
  return *R.p++;
}

static end_note *note_of(const app_stream *a) {
  for (size_t i = 0; i < R.nnotes; ++i) {
    if (R.notes[i].a == a) {
      return &R.notes[i];
    }
  }
  CHECK(R.nnotes < sizeof(R.notes) / sizeof(R.notes[0]));
  memset(&R.notes[R.nnotes], 0, sizeof(R.notes[0]));
  R.notes[R.nnotes].a = a;
  return &R.notes[R.nnotes++];
}

/* stream_sendbuf: the bytes |st| buffers, in all (not yet acknowledged)
 * and not yet handed to ngtcp2. */
static void stream_sendbuf(const prd_qstream *st, uint64_t *total,
                           uint64_t *unsent) {
  *total = prd_qstream_written(st) - prd_qstream_acked(st);
  *unsent = prd_qstream_written(st) - prd_qstream_sent(st);
}

/* pick: the |k|th stream end of side |s| (modulo their number), or NULL. */
static app_stream *pick(int s, uint8_t k) {
  size_t n = 0, i = 0;
  app_stream *a;
  for (a = P->s[s].streams; a; a = a->next) {
    ++n;
  }
  if (n == 0) {
    return NULL;
  }
  k = (uint8_t)(k % n);
  for (a = P->s[s].streams; a && i < k; a = a->next) {
    ++i;
  }
  return a;
}

static void heal_socket(int s) {
  if (P->eagain[s]) {
    P->eagain[s] = 0;
    if (P->s[s].ep) {
      prd_quic_endpoint_on_writable(P->s[s].ep);
    }
  }
}

/* check_stream: the invariants that hold at every step for receiving end
 * |b| (its peer |a|, the sender, may be NULL: refused or not yet seen). */
static void check_stream(const app_stream *b) {
  const app_stream *a = peer_of(b);
  end_note *nb = note_of(b);
  CHECK(b->rx_bad == 0);
  if (a) {
    CHECK(b->rx_off <= a->src_off);
    if (b->rx_fin) {
      CHECK(a->src_fin && b->rx_off == a->src_total);
    }
  } else {
    /* A client end exists only with its server end, and a server end
     * hears nothing before its client end exists. */
    CHECK(b->side == SRV && b->rx_off == 0);
  }
  if (!b->hold_credit) {
    nb->released = 1;
  }
  CHECK(b->unconsumed <= STREAM_WINDOW_MAX);
  if (!nb->released) {
    CHECK(b->rx_off <= STREAM_WINDOW);
  }
  if (b->st) {
    uint64_t total, unsent;
    stream_sendbuf(b->st, &total, &unsent);
    CHECK(total <= SENDBUF_MAX);
    CHECK(unsent <= UNSENT_MAX);
  }
}

static void check_all(void) {
  for (int s = SRV; s <= CLI; ++s) {
    uint64_t held = 0;
    for (app_stream *b = P->s[s].streams; b; b = b->next) {
      check_stream(b);
      held += b->unconsumed;
    }
    CHECK(held <= CONN_WINDOW_MAX);
  }
}

static void op_send(app_stream *a, uint64_t n, int fin) {
  if (a == NULL || a->st == NULL || a->src_fin) {
    return;
  }
  if (n > MAX_BYTES - R.bytes) {
    n = MAX_BYTES - R.bytes;
  }
  R.bytes += n;
  app_send(a, n, fin);
}

static void op_consume(app_stream *a, size_t n) {
  if (a == NULL || a->st == NULL || a->unconsumed == 0) {
    return;
  }
  if (n == 0 || n > a->unconsumed) {
    n = a->unconsumed;
  }
  note_of(a)->released = 1;
  prd_qstream_consumed(a->st, n);
  a->unconsumed -= n;
}

static void run_op(void) {
  uint8_t op = (uint8_t)(next8() % OP_COUNT);
  uint8_t b1 = next8();
  int s = b1 & 1;
  prd_quic_conn *qc = P->s[s].qc;
  app_stream *a;

  switch (op) {
  case OP_LOSS:
    P->loss_pct = b1 % 31u;
    break;
  case OP_DUP:
    P->dup_pct = b1 % 31u;
    break;
  case OP_REORDER:
    P->reorder_pct = b1 % 51u;
    P->reorder_ns = (1 + (uint64_t)next8()) * MS;
    break;
  case OP_DELAY:
    P->delay_ns = (uint64_t)b1 * MS / 2;
    break;
  case OP_DROP_NEXT:
    P->drop_to[s] += (b1 >> 1) % 8u;
    break;
  case OP_BLACKHOLE:
    P->blackhole[s] = (b1 >> 1) & 1;
    break;
  case OP_SOCKET_FULL:
    if ((b1 >> 1) & 1) {
      P->eagain[s] = 1;
    } else {
      heal_socket(s);
    }
    break;
  case OP_ADVANCE: {
    uint8_t b2 = next8();
    pump(NULL, (1 + (uint64_t)b1) * MS << (b2 % 8u));
    break;
  }
  case OP_OPEN:
    if (R.opened < MAX_STREAMS && P->s[SRV].qc &&
        prd_quic_conn_is_authenticated(P->s[SRV].qc)) {
      ++R.opened;
      a = open_stream_try();
      if (a) {
        note_of(a);
      }
    }
    break;
  case OP_SEND: {
    uint8_t k = next8(), n = next8(), shift = next8();
    op_send(pick(s, k), (uint64_t)n << (shift % 13u), (b1 >> 1) & 1);
    break;
  }
  case OP_FIN:
    op_send(pick(s, next8()), 0, 1);
    break;
  case OP_ABORT:
    a = pick(s, next8());
    if (a && a->st) {
      note_of(a)->aborted = 1;
      /* Any code the relay uses, and some it does not. */
      prd_qstream_abort(a->st, (b1 >> 1) % 16u);
    }
    break;
  case OP_HOLD:
    a = pick(s, next8());
    if (a) {
      a->hold_credit = 1;
    }
    break;
  case OP_CONSUME:
    a = pick(s, next8());
    if (a && a->st) {
      a->hold_credit = 0;
      op_consume(a, 0);
    }
    break;
  case OP_CONSUME_SOME: {
    uint8_t k = next8(), n = next8();
    op_consume(pick(s, k), (size_t)n << (b1 >> 1) % 13u);
    break;
  }
  case OP_DETACH:
    /* The relay's TCP side closed: after FIN (a clean end), or not. */
    a = pick(s, next8());
    if (a && a->st) {
      note_of(a)->detached = 1;
      app_consume(a);
      if ((b1 >> 1) & 1) {
        /* A TCP reset: relay.c's tc_close aborts, then detaches. */
        note_of(a)->aborted = 1;
        prd_qstream_abort(a->st, PRD_APP_DESTINATION_RESET);
      }
      prd_qstream_detach(a->st);
      a->st = NULL;
    }
    break;
  case OP_CLOSE:
    /* Rare on purpose: it ends the program's interesting part. Closing
     * from a callback is the relay's way too (quic_pair.h). */
    if (qc && b1 >= 0xf8) {
      prd_quic_conn_refuse(qc, "fuzz");
    } else if (qc && b1 >= 0xf0) {
      prd_quic_conn_close(qc, (b1 >> 1) % 16u, "fuzz");
    } else if (b1 >= 0xe8) {
      P->s[s].close_in_callback = 1; /* on the next stream data */
    }
    break;
  case OP_GOAWAY:
    if (qc) {
      prd_quic_conn_goaway(qc, (b1 >> 1) % 4u);
    }
    break;
  case OP_PROBE:
    if (qc) {
      prd_quic_conn_probe(qc);
    }
    break;
  case OP_SIDE_HOLD:
    P->s[s].hold_credit = (b1 >> 1) & 1;
    break;
  case OP_REFUSE:
    /* The client's relay refuses the next streams (destination down). */
    P->s[CLI].refuse_code = (b1 >> 1) % 16u;
    break;
  case OP_INFO:
    if (qc) {
      prd_quic_conn_info info;
      prd_quic_conn_get_info(qc, &info);
      /* (No RTT check: with OP_DELAY 0 the fake network's RTT is 0.) */
      CHECK(info.cwnd > 0 && info.max_udp_payload >= 1200);
      (void)prd_quic_conn_suspect(qc);
      (void)prd_quic_conn_pto_ns(qc);
    }
    break;
  default:
    break;
  }
  /* Every step lets the pair run a little, as an event loop turn would. */
  pump(NULL, 1 * MS);
  check_all();
}

/* ---- the end: heal, finish every stream, close ---------------------------
 */

static int side_quiet(int s) {
  for (app_stream *a = P->s[s].streams; a; a = a->next) {
    if (a->st) {
      return 0;
    }
  }
  return P->s[s].qc == NULL || prd_quic_conn_num_streams(P->s[s].qc) == 0;
}

static int all_streams_gone(void) { return side_quiet(SRV) && side_quiet(CLI); }

static void finish_streams(void) {
  for (int s = SRV; s <= CLI; ++s) {
    P->s[s].hold_credit = 0;
    for (app_stream *a = P->s[s].streams; a; a = a->next) {
      if (a->st == NULL) {
        continue;
      }
      a->hold_credit = 0;
      app_consume(a);
      if (!a->src_fin) {
        app_send(a, 0, 1);
      }
    }
  }
}

/* pair_gone: no connection left on either side (the server may never have
 * had one). */
static int pair_gone(void) {
  for (int s = SRV; s <= CLI; ++s) {
    for (size_t i = 0; i < MAX_CONNS; ++i) {
      if (P->s[s].conns[i].qc) {
        return 0;
      }
    }
  }
  return 1;
}

static int any_closed(void) {
  return P->s[SRV].closed > 0 || P->s[CLI].closed > 0;
}

/* check_final: every direction of every stream delivered all its bytes
 * and FIN unless the program aborted or detached an end of it (or the
 * connection is gone); a stream the program left alone also ends without
 * a reset. */
static void check_final(void) {
  if (any_closed()) {
    return;
  }
  for (int s = SRV; s <= CLI; ++s) {
    for (app_stream *b = P->s[s].streams; b; b = b->next) {
      const app_stream *a = peer_of(b);
      end_note *nb = note_of(b), *na;
      if (a == NULL) {
        continue; /* refused by the client */
      }
      na = note_of(a);
      if (!na->aborted && !na->detached && !nb->aborted && !nb->detached) {
        CHECK(!b->reset && b->close_code == PRD_APP_NO_ERROR);
      }
      if (na->aborted || nb->aborted || nb->detached ||
          (na->detached && !(a->src_fin && a->src_off == a->src_total))) {
        continue; /* aborted, or detached before its FIN: an abort */
      }
      /* Here only a clean detach (after FIN) of the sender may have
       * happened: STOP_SENDING for the other direction, not this one. */
      CHECK(b->closed);
      CHECK(b->rx_fin && b->rx_off == a->src_total);
    }
  }
}

static void run_end(void) {
  for (int s = SRV; s <= CLI; ++s) {
    P->blackhole[s] = 0;
    P->drop_to[s] = 0;
    P->pass_to[s] = 0;
    heal_socket(s);
  }
  P->loss_pct = P->dup_pct = P->reorder_pct = 0;
  if (P->delay_ns > 50 * MS) {
    P->delay_ns = 50 * MS;
  }
  /* With a healed network, every stream ends (or the connection does):
   * the relay finishes each end, also those whose header arrives later.
   * The bound is generous: a socket kept full for seconds (OP_SOCKET_FULL
   * and OP_ADVANCE) makes RTT samples, hence the probe timeout and the idle
   * timeout (at least 3 PTO, RFC 9000 §10.1), that long. */
  for (prd_tstamp end = fake_now + END_LIMIT;;) {
    finish_streams();
    if (pump(all_streams_gone, 100 * MS) || any_closed()) {
      break;
    }
    CHECK(fake_now < end);
  }
  check_all();
  check_final();
  if (P->s[SRV].qc) {
    prd_quic_conn_close(P->s[SRV].qc, PRD_APP_NO_ERROR, "done");
  } else if (P->s[CLI].qc) {
    prd_quic_conn_close(P->s[CLI].qc, PRD_APP_NO_ERROR, "done");
  }
  /* And so does the connection, on both sides (an idle timeout at worst
   * when one side is already gone). */
  CHECK(pump(pair_gone, END_LIMIT));
}

/* summary: what a run did, on stderr (FUZZ_PAIR_VERBOSE set). */
static void summary(void) {
  fprintf(stderr,
          "fuzz_pair: authenticated %u/%u, closed %u/%u (reason %d/%d), "
          "%u datagrams sent, %u dropped, %u duplicated, %u reordered, "
          "fake time %llu ms, PTO %llu/%llu ms\n",
          P->s[SRV].authenticated, P->s[CLI].authenticated, P->s[SRV].closed,
          P->s[CLI].closed, (int)P->s[SRV].close_reason,
          (int)P->s[CLI].close_reason, P->sent[SRV] + P->sent[CLI], P->dropped,
          P->duplicated, P->reordered,
          (unsigned long long)((fake_now - R.t0) / MS),
          (unsigned long long)(P->s[SRV].qc
                                   ? prd_quic_conn_pto_ns(P->s[SRV].qc) / MS
                                   : 0),
          (unsigned long long)(P->s[CLI].qc
                                   ? prd_quic_conn_pto_ns(P->s[CLI].qc) / MS
                                   : 0));
  for (int s = SRV; s <= CLI; ++s) {
    for (app_stream *a = P->s[s].streams; a; a = a->next) {
      fprintf(stderr,
              "  %s stream %lld: sent %llu/%llu%s, received %llu%s%s, "
              "closed %d code %llu\n",
              s == SRV ? "server" : "client", (long long)a->id,
              (unsigned long long)a->src_off, (unsigned long long)a->src_total,
              a->src_fin ? "+FIN" : "", (unsigned long long)a->rx_off,
              a->rx_fin ? "+FIN" : "", a->reset ? " reset" : "", a->closed,
              (unsigned long long)a->close_code);
    }
  }
}

static void fail(const char *what, int line) {
  fprintf(stderr, "fuzz_pair: invariant failed: %s (line %d)\n", what, line);
  summary();
  abort();
}

/* ---- libFuzzer ---------------------------------------------------------- */

static void group_teardown(void) { qp_group_teardown(NULL); }

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  if (qp_group_setup(NULL) != 0) {
    fprintf(stderr, "fuzz_pair: cannot make the test identities\n");
    abort();
  }
  atexit(group_teardown);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  uint8_t flags, seed;

  memset(&R, 0, sizeof(R));
  R.p = data;
  R.left = size;
  flags = next8();
  seed = next8();
  /* An hour later: the server's per-address rate limit (process-wide, keyed
   * by time) has forgotten the previous run, so each run replays alone. */
  fake_now += 3600 * SEC;
  qp_setup(NULL);
  R.t0 = fake_now;
  P->rng ^= seed;
  P->s[SRV].hold_credit = flags & 1;
  P->s[CLI].hold_credit = (flags >> 1) & 1;
  if (flags & 4) {
    P->loss_pct = seed % 21u;
  }
  if ((flags >> 3) & 7) {
    /* A small stream limit: opens fail until streams_available. */
    P->s[CLI].cfg.max_streams = (flags >> 3) & 7;
  }
  if (flags & 0x40) {
    P->s[CLI].cfg.keepalive_ns = 1 * SEC;
  }
  if (flags & 0x80) {
    P->s[SRV].cfg.idle_timeout_ns = 3 * SEC;
  }
  start_pair();
  pump(both_authenticated, 5 * SEC);
  for (int n = 0; R.left > 0 && n < MAX_OPS; ++n) {
    run_op();
  }
  run_end();
  if (getenv("FUZZ_PAIR_VERBOSE")) {
    summary();
  }
  qp_teardown(NULL);
  return 0;
}
