/* SPDX-License-Identifier: GPL-3.0-only */
/* The one place that knows which ngtcp2 API generation we build against
 * (0.12.x in Debian 12, 1.x later; README: Platforms). */
#ifndef PRD_NGTCP2_COMPAT_H
#define PRD_NGTCP2_COMPAT_H

#include <ngtcp2/ngtcp2.h>
#include <ngtcp2/ngtcp2_crypto.h>
#include <ngtcp2/version.h>

#include "quic.h"

/* PRD_NGTCP2_STREAM_AUTOTUNE: ngtcp2 auto-tunes stream windows itself
 * (max_stream_window). Before 0.19 it could advertise a tuned limit without
 * raising the one it enforces and then reject the peer's data with
 * FLOW_CONTROL_ERROR (ngtcp2 2da36d2f), so 0.12 builds tune them in conn.c
 * instead (stream_window_bonus). -D overrides it, for measurements. */
#ifndef PRD_NGTCP2_STREAM_AUTOTUNE
#  if NGTCP2_VERSION_NUM >= 0x001300
#    define PRD_NGTCP2_STREAM_AUTOTUNE 1
#  else
#    define PRD_NGTCP2_STREAM_AUTOTUNE 0
#  endif
#endif

#if NGTCP2_VERSION_NUM >= 0x010000
#  define PRD_NGTCP2_V1 1
typedef ngtcp2_ccerr prd_ccerr;
#  define prd_ccerr_default ngtcp2_ccerr_default
#  define prd_ccerr_set_liberr ngtcp2_ccerr_set_liberr
#  define prd_ccerr_set_tls_alert ngtcp2_ccerr_set_tls_alert
#  define prd_ccerr_set_app_error ngtcp2_ccerr_set_application_error
#  define prd_ccerr_set_transport_error ngtcp2_ccerr_set_transport_error
#  define prd_conn_in_closing_period ngtcp2_conn_in_closing_period
#  define prd_conn_in_draining_period ngtcp2_conn_in_draining_period
#  define prd_conn_shutdown_stream(c, s, e)                                    \
    ngtcp2_conn_shutdown_stream(c, 0, s, e)
#  define prd_conn_shutdown_stream_read(c, s, e)                               \
    ngtcp2_conn_shutdown_stream_read(c, 0, s, e)
#  define prd_conn_shutdown_stream_write(c, s, e)                              \
    ngtcp2_conn_shutdown_stream_write(c, 0, s, e)
static inline void prd_conn_get_ccerr(ngtcp2_conn *c, ngtcp2_ccerr *e) {
  *e = *ngtcp2_conn_get_ccerr(c);
}
#  define PRD_CCERR_TYPE_APPLICATION NGTCP2_CCERR_TYPE_APPLICATION
#  define PRD_CCERR_TYPE_IDLE_CLOSE NGTCP2_CCERR_TYPE_IDLE_CLOSE
/* ngtcp2_conn_set_keep_alive_timeout's "off": UINT64_MAX in 1.x. */
#  define PRD_KEEP_ALIVE_OFF UINT64_MAX
static inline void prd_params_set_original_dcid(ngtcp2_transport_params *p,
                                                const ngtcp2_cid *cid) {
  p->original_dcid = *cid;
  p->original_dcid_present = 1;
}
static inline void prd_settings_set_token(ngtcp2_settings *s, const uint8_t *p,
                                          size_t len) {
  s->token = p;
  s->tokenlen = len;
}
static inline size_t prd_conn_num_scid(ngtcp2_conn *c) {
  return ngtcp2_conn_get_scid(c, NULL);
}
/* Connection statistics: ngtcp2_conn_info in 1.x. */
typedef ngtcp2_conn_info prd_conn_stat;
#  define prd_conn_get_stat(c, s) ngtcp2_conn_get_conn_info(c, s)
/* prd_conn_pto_fired tells whether a probe timeout has fired with nothing
 * acknowledged since. 1.x keeps its pto_count private, so this reads it off
 * the timeline instead: ack-eliciting bytes are in flight, datagrams went
 * out (first at |tx_since_rx|) after the last one came in (|last_rx|), and
 * nothing came back for a PTO. */
static inline int prd_conn_pto_fired(ngtcp2_conn *c, const prd_conn_stat *s,
                                     ngtcp2_tstamp tx_since_rx,
                                     ngtcp2_tstamp last_rx, ngtcp2_tstamp now) {
  return s->bytes_in_flight > 0 && tx_since_rx > last_rx &&
         now - tx_since_rx > ngtcp2_conn_get_pto(c);
}
/* 1.x holds every write until its pacing time: no queue bound (egress.c). */
#  define PRD_NGTCP2_LAX_PACING 0
static inline uint64_t prd_conn_delivery_rate(const prd_conn_stat *s) {
  (void)s;
  return 0;
}
static inline const uint8_t *prd_hd_token(const ngtcp2_pkt_hd *hd) {
  return hd->token;
}
static inline size_t prd_hd_tokenlen(const ngtcp2_pkt_hd *hd) {
  return hd->tokenlen;
}
/* 1.0 removed BBR v1 and named BBRv2 NGTCP2_CC_ALGO_BBR (later releases move
 * it towards BBRv3): "bbr" and "bbr2" both select it (README: Platforms). */
static inline ngtcp2_cc_algo prd_cc_algo(int cc) {
  switch (cc) {
  case PRD_QUIC_CC_RENO:
    return NGTCP2_CC_ALGO_RENO;
  case PRD_QUIC_CC_BBR:
  case PRD_QUIC_CC_BBR2:
    return NGTCP2_CC_ALGO_BBR;
  default:
    return NGTCP2_CC_ALGO_CUBIC;
  }
}
/* 1.x's path_validation callback also gets the fallback path. */
#  define PRD_PATH_VALIDATION_FALLBACK_PARAM                                   \
    const ngtcp2_path *fallback_path __attribute__((unused)),
#else
/* ngtcp2_conn_set_keep_alive_timeout's "off" is 0 in 0.12: UINT64_MAX
 * there overflows its expiry and sends PINGs without pause. */
#  define PRD_KEEP_ALIVE_OFF 0
typedef ngtcp2_connection_close_error prd_ccerr;
#  define prd_ccerr_default ngtcp2_connection_close_error_default
#  define prd_ccerr_set_liberr                                                 \
    ngtcp2_connection_close_error_set_transport_error_liberr
#  define prd_ccerr_set_tls_alert                                              \
    ngtcp2_connection_close_error_set_transport_error_tls_alert
#  define prd_ccerr_set_app_error                                              \
    ngtcp2_connection_close_error_set_application_error
#  define prd_ccerr_set_transport_error                                        \
    ngtcp2_connection_close_error_set_transport_error
#  define prd_conn_in_closing_period ngtcp2_conn_is_in_closing_period
#  define prd_conn_in_draining_period ngtcp2_conn_is_in_draining_period
#  define prd_conn_shutdown_stream ngtcp2_conn_shutdown_stream
#  define prd_conn_shutdown_stream_read ngtcp2_conn_shutdown_stream_read
#  define prd_conn_shutdown_stream_write ngtcp2_conn_shutdown_stream_write
#  define prd_conn_get_ccerr ngtcp2_conn_get_connection_close_error
#  define PRD_CCERR_TYPE_APPLICATION                                           \
    NGTCP2_CONNECTION_CLOSE_ERROR_CODE_TYPE_APPLICATION
#  define PRD_CCERR_TYPE_IDLE_CLOSE                                            \
    NGTCP2_CONNECTION_CLOSE_ERROR_CODE_TYPE_TRANSPORT_IDLE_CLOSE
static inline void prd_params_set_original_dcid(ngtcp2_transport_params *p,
                                                const ngtcp2_cid *cid) {
  p->original_dcid = *cid;
}
static inline void prd_settings_set_token(ngtcp2_settings *s, const uint8_t *p,
                                          size_t len) {
  s->token.base = (uint8_t *)(uintptr_t)p;
  s->token.len = len;
}
static inline size_t prd_conn_num_scid(ngtcp2_conn *c) {
  return ngtcp2_conn_get_num_scid(c);
}
typedef ngtcp2_conn_stat prd_conn_stat;
#  define prd_conn_get_stat(c, s) ngtcp2_conn_get_conn_stat(c, s)
static inline int prd_conn_pto_fired(ngtcp2_conn *c, const prd_conn_stat *s,
                                     ngtcp2_tstamp tx_since_rx,
                                     ngtcp2_tstamp last_rx, ngtcp2_tstamp now) {
  (void)c;
  (void)tx_since_rx;
  (void)last_rx;
  (void)now;
  return s->pto_count > 0;
}
/* 0.12 lets a write through up to 1 ms before its pacing time and counts
 * the next one from it (NGTCP2_PKT_PACING_OVERHEAD): the queue bound
 * (egress.c) keeps the bottleneck's queue short. */
#  define PRD_NGTCP2_LAX_PACING 1
/* ngtcp2 0.12's delivery rate, bytes/s: the largest sample of the last
 * rounds, smaller application-limited ones left out (ngtcp2_rst.c). */
static inline uint64_t prd_conn_delivery_rate(const prd_conn_stat *s) {
  return s->delivery_rate_sec;
}
static inline const uint8_t *prd_hd_token(const ngtcp2_pkt_hd *hd) {
  return hd->token.base;
}
static inline size_t prd_hd_tokenlen(const ngtcp2_pkt_hd *hd) {
  return hd->token.len;
}
static inline ngtcp2_cc_algo prd_cc_algo(int cc) {
  switch (cc) {
  case PRD_QUIC_CC_RENO:
    return NGTCP2_CC_ALGO_RENO;
  case PRD_QUIC_CC_BBR:
    return NGTCP2_CC_ALGO_BBR;
  case PRD_QUIC_CC_BBR2:
    return NGTCP2_CC_ALGO_BBR2;
  default:
    return NGTCP2_CC_ALGO_CUBIC;
  }
}
#  define PRD_PATH_VALIDATION_FALLBACK_PARAM
#endif

#endif
