/* SPDX-License-Identifier: GPL-3.0-only */
/* Frame codec: control frames and the data-stream header (spec/02-framing.md),
 * UDP service messages (spec/10-udp.md), the TCP path (spec/11-tcp-path.md).
 * Pure: no I/O, no allocation. All functions are bounds-checked. */
#ifndef PRD_CODEC_H
#define PRD_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "../common/err.h"

/* ALPN token, spec/01-overview.md §3. */
#define PRD_ALPN "portredirect/1"
#define PRD_ALPN_LEN 14
#define PRD_PROTOCOL_VERSION 1

/* spec/02-framing.md §5 limits. */
#define PRD_FRAME_MAX_PAYLOAD 1024
#define PRD_FRAME_MAX_LEN (PRD_FRAME_MAX_PAYLOAD + 16)
#define PRD_STREAM_HEADER_MAX 512
#define PRD_CHALLENGE_MIN 32
#define PRD_CHALLENGE_MAX 64
#define PRD_MAC_LEN 32
#define PRD_VARINT_MAX ((uint64_t)0x3fffffffffffffff)

/* HELLO and AUTH_RESULT Flags bits, spec/02-framing.md §3.1, §3.4. */
#define PRD_FLAG_SERVICES ((uint64_t)0x01)
#define PRD_FLAG_CLIENT_NAME ((uint64_t)0x02)
/* Bit 2: UDP services over QUIC DATAGRAM frames (spec/10-udp.md §2). */
#define PRD_FLAG_DATAGRAMS ((uint64_t)0x04)

/* Client names, spec/02-framing.md §3.3: 1..64 bytes of [A-Za-z0-9._-],
 * not starting with '.' or '-'; a client that sends none is "default". */
#define PRD_CLIENT_NAME_MAX 64
#define PRD_CLIENT_DEFAULT "default"

/* Service names, spec/02-framing.md §3.7: 1..63 bytes of [A-Za-z0-9._-]. */
#define PRD_SERVICE_NAME_MAX 63
#define PRD_SERVICE_DEFAULT "default"
/* PORT_OFFSET, spec/02-framing.md §4.4: a range holds at most 65535 ports. */
#define PRD_PORT_OFFSET_MAX 65534

/* Control frame types, spec/02-framing.md §3. */
typedef enum prd_frame_type {
  PRD_FRAME_HELLO = 0x01,
  PRD_FRAME_AUTH_CHALLENGE = 0x02,
  PRD_FRAME_AUTH_RESPONSE = 0x03,
  PRD_FRAME_AUTH_RESULT = 0x04,
  PRD_FRAME_GOAWAY = 0x05,
  /* Only where SERVICES was negotiated (PRD_FLAG_SERVICES). */
  PRD_FRAME_SERVICES = 0x06,
  PRD_FRAME_SERVICE_REFUSED = 0x07
} prd_frame_type;

/* Application error codes on the wire, spec/05-errors.md. */
typedef enum prd_app_err {
  PRD_APP_NO_ERROR = 0x00,
  PRD_APP_INTERNAL_ERROR = 0x01,
  PRD_APP_PROTOCOL_ERROR = 0x02,
  PRD_APP_VERSION_MISMATCH = 0x03,
  PRD_APP_AUTH_FAILED = 0x04,
  PRD_APP_AUTH_TIMEOUT = 0x05,
  PRD_APP_SHUTTING_DOWN = 0x06,
  PRD_APP_DESTINATION_UNREACHABLE = 0x07,
  PRD_APP_DESTINATION_RESET = 0x08,
  PRD_APP_USER_RESET = 0x09,
  PRD_APP_STREAM_REFUSED = 0x0a,
  PRD_APP_UNKNOWN_SERVICE = 0x0b,
  PRD_APP_SERVICE_NOT_PERMITTED = 0x0c,
  PRD_APP_CLIENT_REVOKED = 0x0d
} prd_app_err;

/* prd_app_err_name returns the spec name of a wire error code
 * ("AUTH_FAILED"), or "UNKNOWN" for a code not in the registry. */
const char *prd_app_err_name(uint64_t code);

typedef struct prd_frame {
  uint64_t type; /* prd_frame_type */
  union {
    struct {
      uint64_t version;
      uint64_t flags;
    } hello;
    struct {
      uint64_t version;
      size_t challengelen; /* PRD_CHALLENGE_MIN..PRD_CHALLENGE_MAX */
      uint8_t challenge[PRD_CHALLENGE_MAX];
    } challenge;
    struct {
      uint8_t mac[PRD_MAC_LEN];
      /* The Name (spec/02-framing.md §3.3), present when namelen > 0: on
       * decode only with PRD_FLAG_CLIENT_NAME, any bytes (the server
       * checks them, prd_client_name_valid); NUL-terminated. */
      size_t namelen;
      char name[PRD_CLIENT_NAME_MAX + 1];
    } response;
    struct {
      uint64_t status;
      int has_flags; /* the optional Flags field is present */
      uint64_t flags;
    } result;
    struct {
      uint64_t error_code;
    } goaway;
    struct {
      size_t count;   /* number of names, >= 1 in a valid frame */
      size_t listlen; /* bytes used in list */
      /* The Service Names as on the wire: Name Length (1 byte), Name. Built
       * with prd_services_add, read with prd_services_next. */
      uint8_t list[PRD_FRAME_MAX_PAYLOAD];
    } services;
    struct {
      uint64_t error_code;
      size_t namelen;
      char name[PRD_SERVICE_NAME_MAX + 1]; /* NUL-terminated */
    } refused;
  } u;
} prd_frame;

/* prd_service_name_valid returns 1 if |name| (|namelen| bytes) is a valid
 * service name (spec/02-framing.md §3.7), else 0. */
int prd_service_name_valid(const char *name, size_t namelen);

/* prd_client_name_valid returns 1 if |name| (|namelen| bytes) is a valid
 * client name (spec/02-framing.md §3.3), else 0. */
int prd_client_name_valid(const char *name, size_t namelen);

/* prd_services_add appends |name| to the SERVICES frame |fr| (whose type
 * and count the caller set up: type PRD_FRAME_SERVICES, count 0, listlen
 * 0). Returns 0, PRD_ERR_INVAL for an invalid or duplicate name, or
 * PRD_ERR_NOBUF when the payload would exceed PRD_FRAME_MAX_PAYLOAD. */
int prd_services_add(prd_frame *fr, const char *name, size_t namelen);

/* prd_services_next iterates over the names of a SERVICES frame: start with
 * |*poff| = 0; returns 1 and sets |*pname| (pointing into |fr|, not
 * NUL-terminated) and |*pnamelen|, or 0 at the end. */
int prd_services_next(const prd_frame *fr, size_t *poff, const char **pname,
                      size_t *pnamelen);

/* Varints, RFC 9000 §16, minimal encoding required (spec/02-framing.md §2).
 * prd_varint_decode returns bytes consumed (1,2,4,8), PRD_ERR_NEED_MORE,
 * or PRD_ERR_VARINT_NONMINIMAL. */
prd_ssize prd_varint_decode(uint64_t *pv, const uint8_t *data, size_t datalen);
/* prd_varint_encode returns bytes written, PRD_ERR_NOBUF, or PRD_ERR_INVAL
 * when |v| > PRD_VARINT_MAX. */
prd_ssize prd_varint_encode(uint8_t *dest, size_t destlen, uint64_t v);
size_t prd_varint_len(uint64_t v);

/* prd_frame_encode writes |fr| to |dest|. Returns bytes written,
 * PRD_ERR_NOBUF, or PRD_ERR_INVAL for a frame that violates the spec
 * (unknown type, challenge length out of range, value > PRD_VARINT_MAX). */
prd_ssize prd_frame_encode(uint8_t *dest, size_t destlen, const prd_frame *fr);

/* prd_frame_decode decodes one frame from the start of |data|. Returns the
 * number of bytes consumed (> 0), or:
 *   PRD_ERR_NEED_MORE          input ends before the frame does
 *   PRD_ERR_FRAME_TOO_LARGE    Length > PRD_FRAME_MAX_PAYLOAD (detected as soon
 *                              as the Length field is complete)
 *   PRD_ERR_FRAME_UNKNOWN      unknown Type (detected once Type is complete)
 *   PRD_ERR_FRAME_ENCODING     payload does not match the frame's layout
 *   PRD_ERR_VARINT_NONMINIMAL  a varint is not minimally encoded
 * |*fr| is written only on success. */
prd_ssize prd_frame_decode(prd_frame *fr, const uint8_t *data, size_t datalen);

/* prd_frame_decode_ex is prd_frame_decode for a connection with optional
 * features |features| (HELLO Flags bits, spec/02-framing.md §3.1): the
 * client passes the Flags it sent in HELLO until AUTH_RESULT, then the
 * negotiated ones; the server passes the negotiated ones once it has
 * chosen them. prd_frame_decode is prd_frame_decode_ex with 0.
 *   - with PRD_FLAG_SERVICES, SERVICES and SERVICE_REFUSED are known
 *     types; without, they are PRD_ERR_FRAME_UNKNOWN (rule 1, §3);
 *   - with PRD_FLAG_CLIENT_NAME, AUTH_RESPONSE is the MAC and a Name of
 *     1..PRD_CLIENT_NAME_MAX bytes (response.namelen > 0); without, exactly
 *     the MAC; any other length is PRD_ERR_FRAME_ENCODING (§3.3);
 *   - with any bit, AUTH_RESULT may carry Flags (result.has_flags says
 *     whether it did), which must be a subset of |features|
 *     (PRD_ERR_FRAME_ENCODING otherwise); with 0, a second varint is
 *     PRD_ERR_FRAME_ENCODING as before (§3.4). */
prd_ssize prd_frame_decode_ex(prd_frame *fr, const uint8_t *data,
                              size_t datalen, uint64_t features);

/* Incremental reader for a byte stream of frames that may arrive one byte at a
 * time. Holds at most one partial frame (PRD_FRAME_MAX_LEN bytes). */
typedef struct prd_frame_reader {
  size_t len;
  uint64_t features; /* as for prd_frame_decode_ex; 0 after init */
  uint8_t buf[PRD_FRAME_MAX_LEN];
} prd_frame_reader;

/* prd_frame_reader_init empties |r| and sets its features to 0. */
void prd_frame_reader_init(prd_frame_reader *r);

/* prd_frame_reader_set_features sets the features frames are decoded with
 * (prd_frame_decode_ex). The reader returns after each frame, so a caller
 * can change them between frames (after HELLO, after AUTH_RESULT). */
void prd_frame_reader_set_features(prd_frame_reader *r, uint64_t features);

/* prd_frame_reader_feed consumes bytes from |data| until one frame is complete
 * or |data| is exhausted. Returns the number of bytes consumed (>= 0) and sets
 * |*pready| to 1 when |*fr| holds a complete frame (call again with the rest
 * of the input), or 0 when more input is needed. Returns a negative error from
 * prd_frame_decode (never PRD_ERR_NEED_MORE) as soon as the buffered prefix is
 * known to be invalid; the reader is then unusable until re-initialised. */
prd_ssize prd_frame_reader_feed(prd_frame_reader *r, prd_frame *fr, int *pready,
                                const uint8_t *data, size_t datalen);

/* Stream header, spec/02-framing.md §4. */
#define PRD_HDR_FIELD_SOURCE 0x01
#define PRD_HDR_FIELD_DESTINATION 0x02
#define PRD_HDR_FIELD_SERVICE 0x03
#define PRD_HDR_FIELD_PORT_OFFSET 0x04

typedef struct prd_addr {
  uint8_t family;   /* 4 or 6 */
  uint8_t addr[16]; /* 4 or 16 bytes used, network order */
  uint16_t port;    /* host order */
} prd_addr;

typedef struct prd_stream_header {
  uint64_t version; /* PRD_PROTOCOL_VERSION */
  int has_src;      /* SOURCE is required on decode */
  prd_addr src;
  int has_dst;
  prd_addr dst;
  int has_service; /* absent means PRD_SERVICE_DEFAULT, spec/02 §4.4 */
  size_t servicelen;
  char service[PRD_SERVICE_NAME_MAX + 1]; /* NUL-terminated */
  int has_port_offset;                    /* absent means 0 */
  uint16_t port_offset;                   /* <= PRD_PORT_OFFSET_MAX */
} prd_stream_header;

/* prd_stream_header_encode writes SOURCE, DESTINATION, SERVICE and
 * PORT_OFFSET, each when present, in this order. Returns bytes written,
 * PRD_ERR_NOBUF, or PRD_ERR_INVAL (no source, bad family, invalid service
 * name, port offset > PRD_PORT_OFFSET_MAX). */
prd_ssize prd_stream_header_encode(uint8_t *dest, size_t destlen,
                                   const prd_stream_header *hd);

/* prd_stream_header_decode decodes the header at the start of |data|. Returns
 * bytes consumed, or PRD_ERR_NEED_MORE, PRD_ERR_FRAME_TOO_LARGE (header would
 * exceed PRD_STREAM_HEADER_MAX), PRD_ERR_VERSION (Version != 1),
 * PRD_ERR_HEADER_ENCODING (bad field, duplicate, missing SOURCE, invalid
 * SERVICE name, PORT_OFFSET not one varint or above PRD_PORT_OFFSET_MAX),
 * PRD_ERR_VARINT_NONMINIMAL. Unknown field types are skipped. */
prd_ssize prd_stream_header_decode(prd_stream_header *hd, const uint8_t *data,
                                   size_t datalen);

/* UDP services, spec/10-udp.md §3: the header at the start of every
 * DATAGRAM frame's payload. */
typedef enum prd_udp_type {
  PRD_UDP_FLOW_OPEN = 0x01,  /* server -> client, until the flow is confirmed */
  PRD_UDP_FLOW_DATA = 0x02,  /* both ways */
  PRD_UDP_FLOW_CLOSE = 0x03, /* client -> server: flow unknown */
} prd_udp_type;

typedef struct prd_udp_dgram {
  uint64_t type; /* prd_udp_type */
  uint64_t flow_id;
  /* FLOW_OPEN only: */
  size_t servicelen;
  char service[PRD_SERVICE_NAME_MAX + 1]; /* NUL-terminated */
  uint16_t port_offset;                   /* <= PRD_PORT_OFFSET_MAX */
  prd_addr source;                        /* the user's address and port */
  /* FLOW_OPEN and FLOW_DATA: the user's datagram, pointing into the input
   * (decode); the encoder writes the header only. */
  const uint8_t *payload;
  size_t payloadlen;
} prd_udp_dgram;

/* prd_udp_dgram_decode parses one DATAGRAM frame payload. Returns 0,
 * PRD_ERR_FRAME_UNKNOWN (unknown Type), PRD_ERR_FRAME_ENCODING (cut short,
 * invalid service name, port offset or family, bytes after FLOW_CLOSE) or
 * PRD_ERR_VARINT_NONMINIMAL. */
int prd_udp_dgram_decode(prd_udp_dgram *d, const uint8_t *data, size_t datalen);

/* prd_udp_dgram_encode_hdr writes |d|'s header (the payload follows it).
 * Returns bytes written, PRD_ERR_NOBUF, or PRD_ERR_INVAL (unknown type,
 * invalid name, family or offset). */
prd_ssize prd_udp_dgram_encode_hdr(uint8_t *dest, size_t destlen,
                                   const prd_udp_dgram *d);

/* The TCP path, spec/11-tcp-path.md §2: the 8-byte preface, then records of
 * a 2-byte big-endian Length and one datagram. */
#define PRD_TCP_PREFACE_LEN 8
#define PRD_TCP_PATH_VERSION 1
/* §2.2: every receiver accepts Lengths up to PRD_TCP_RECORD_MIN_ACCEPT;
 * this one accepts PRD_TCP_RECORD_MAX, the largest a Length can say. */
#define PRD_TCP_RECORD_MIN_ACCEPT 65527
#define PRD_TCP_RECORD_MAX 65535
#define PRD_TCP_RECORD_HDR_LEN 2

/* Our preface: "PRD-QOT" and PRD_TCP_PATH_VERSION (§2.1). */
extern const uint8_t prd_tcp_preface[PRD_TCP_PREFACE_LEN];

/* What a receiver does with the peer's preface (§2.1). */
typedef enum prd_tcp_preface_verdict {
  PRD_TCP_PREFACE_OURS = 0,          /* the Magic and our Version */
  PRD_TCP_PREFACE_OTHER_VERSION = 1, /* the Magic, another Version */
  PRD_TCP_PREFACE_NOT_MAGIC = 2      /* not the Magic: another protocol */
} prd_tcp_preface_verdict;

/* prd_tcp_preface_check classifies the preface at the start of |data|.
 * Returns a prd_tcp_preface_verdict (the Version is data[7]), or
 * PRD_ERR_NEED_MORE when |datalen| < PRD_TCP_PREFACE_LEN. Reads at most
 * PRD_TCP_PREFACE_LEN bytes. */
int prd_tcp_preface_check(const uint8_t *data, size_t datalen);

/* One record taken from the start of a buffer (§2.2). */
typedef struct prd_tcp_record {
  size_t off;  /* the datagram's first byte: PRD_TCP_RECORD_HDR_LEN */
  size_t len;  /* the datagram's bytes: 1..maxlen */
  size_t size; /* off + len: what to consume */
  /* After PRD_ERR_NEED_MORE, len and size are known once the Length is
   * (size is PRD_TCP_RECORD_HDR_LEN before). */
  const char *why; /* after a framing error: a constant one-line reason */
} prd_tcp_record;

/* prd_tcp_record_next takes the record at the start of |data|, whose
 * receiver accepts Lengths up to |maxlen| (PRD_TCP_RECORD_MIN_ACCEPT to
 * PRD_TCP_RECORD_MAX; other values are clamped into that range). Returns 0
 * (a whole record: |rec|'s off, len and size), PRD_ERR_NEED_MORE (|rec|'s
 * size: the bytes the record needs in all), or a framing error after which
 * nothing more is read: PRD_ERR_FRAME_ENCODING (a Length of 0) or
 * PRD_ERR_FRAME_TOO_LARGE (a Length above |maxlen|), with |rec|'s why.
 * Errors are reported as soon as the Length is complete. */
int prd_tcp_record_next(prd_tcp_record *rec, const uint8_t *data,
                        size_t datalen, size_t maxlen);

#endif
