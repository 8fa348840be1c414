/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Wire format, version 1 (see docs/protocol.md).
 *
 * Every packet is one UDP datagram: a 40-byte common header, a
 * type-specific header, then payload.  All integers are big-endian.
 * The structs below describe the layout; encode/decode go through the
 * explicit byte-order helpers in wire.c (no struct casts on the wire).
 */
#ifndef RT_WIRE_H
#define RT_WIRE_H

#include <stddef.h>
#include <stdint.h>

#define RT_WIRE_MAGIC 0x5254u /* "RT" */
#define RT_WIRE_VERSION 1u

enum rt_pkt_type {
	RT_PKT_DATA = 1,
	RT_PKT_ACK = 2,
	RT_PKT_NAK = 3,
};

/* common header flags */
#define RT_HF_CSUM 0x0001u /* csum field holds CRC32C of the whole packet */

/* DATA opcodes (wire values) */
enum rt_wire_op {
	RT_WOP_SEND = 1,
	RT_WOP_WRITE = 2,
	RT_WOP_READ_REQ = 3,
	RT_WOP_READ_RESP = 4,
	RT_WOP_ATOMIC_REQ = 5,
	RT_WOP_ATOMIC_RESP = 6,
	RT_WOP_MAX = 6,
};

/* DATA flags */
#define RT_DF_IMM 0x01u   /* imm valid (WRITE raises a target completion) */
#define RT_DF_ABORT 0x02u /* sender abandoned the message: fill PSN only */
#define RT_DF_RETX 0x04u  /* retransmission */

/* NAK kinds */
enum rt_nak_kind {
	RT_NAK_ERROR = 1, /* permanent: the message failed with `status` */
	RT_NAK_RNR = 2,   /* receiver not ready: no receive buffer posted */
};

#define RT_ACK_MAX_RANGES 32
#define RT_ACKF_DUP 0x01u /* a duplicate arrived since the last ACK */
#define RT_ACKF_CE 0x02u  /* ECN-CE seen since the last ACK */

struct rt_hdr {                 /* 40 bytes */
	uint16_t magic;         /* RT_WIRE_MAGIC */
	uint8_t version;        /* RT_WIRE_VERSION */
	uint8_t type;           /* enum rt_pkt_type */
	uint16_t flags;         /* RT_HF_* */
	uint16_t src_port;      /* sender's base (receive) port */
	uint32_t dst_ep;        /* receiving endpoint id */
	uint32_t src_ep;        /* sending endpoint id */
	uint64_t dst_nonce;     /* receiving endpoint incarnation */
	uint64_t src_nonce;     /* sending endpoint incarnation */
	uint16_t path;          /* sender path index (entropy value) */
	uint16_t len;           /* bytes after the common header */
	uint32_t csum;          /* CRC32C (with this field zero) or 0 */
};

struct rt_data_hdr {            /* 56 bytes */
	uint32_t psn;           /* packet sequence number */
	uint8_t op;             /* enum rt_wire_op */
	uint8_t dflags;         /* RT_DF_* */
	uint16_t reserved;
	uint32_t msg_id;        /* per-peer message sequence */
	uint32_t aux;           /* SEND: ssn; *_RESP: request msg_id; ATOMIC_REQ: op */
	uint64_t msg_len;       /* total message bytes */
	uint64_t offset;        /* offset of this payload in the message */
	uint64_t rkey;          /* WRITE/READ_REQ/ATOMIC_REQ target region */
	uint64_t raddr;         /* offset of the message start in the region */
	uint32_t imm;           /* immediate data (RT_DF_IMM) */
	uint32_t ts_us;         /* sender timestamp, echoed in ACK */
};

struct rt_ack_range {
	uint32_t start;         /* first PSN received */
	uint32_t end;           /* one past the last */
};

struct rt_ack_hdr {             /* 24 bytes + 8 per range */
	uint32_t cum_psn;       /* every PSN before this was received */
	uint32_t ts_echo;       /* ts_us of the newest packet acknowledged */
	uint32_t ack_delay_us;  /* time between that packet's arrival and this ACK */
	uint16_t echo_path;     /* path of that packet */
	uint8_t nranges;        /* SACK ranges that follow (<= RT_ACK_MAX_RANGES) */
	uint8_t aflags;         /* RT_ACKF_* */
	uint32_t ce_count;      /* packets with ECN-CE since the last ACK */
	uint32_t reserved;
	struct rt_ack_range r[RT_ACK_MAX_RANGES];
};

struct rt_nak_hdr {             /* 16 bytes */
	uint32_t psn;           /* refused packet */
	uint32_t msg_id;
	uint8_t kind;           /* enum rt_nak_kind */
	uint8_t status;         /* enum rt_wc_status */
	uint16_t reserved;
	uint32_t reserved2;
};

#define RT_HDR_SIZE 40u
#define RT_HDR_LEN_OFF 34 /* common header: offset of `len` (bytes after it) */
#define RT_HDR_TYPE_OFF 3 /* common header: offset of `type` */
#define RT_DATA_HDR_SIZE 56u
#define RT_ACK_HDR_SIZE 24u
#define RT_NAK_HDR_SIZE 16u
#define RT_DATA_OVERHEAD (RT_HDR_SIZE + RT_DATA_HDR_SIZE) /* 96 */
#define RT_IPUDP_OVERHEAD 28u /* IPv4 + UDP headers */
#define RT_ATOMIC_REQ_PAYLOAD 16u
#define RT_ATOMIC_RESP_PAYLOAD 8u

/* Endpoint address (RT_ADDR_SIZE = 32 bytes, big-endian). */
#define RT_ADDR_MAGIC 0x5241u /* "RA" */
struct rt_wire_addr {
	uint16_t port;
	uint32_t ip4;           /* host order after decode */
	uint32_t ep_id;
	uint64_t nonce;
};

/* Memory-region descriptor (RT_MR_DESC_SIZE = 32 bytes, big-endian). */
#define RT_DESC_MAGIC 0x524Du /* "RM" */
struct rt_wire_desc {
	uint32_t access;
	uint64_t rkey;
	uint64_t len;
};

/*
 * Encoders write exactly the header size and return it.
 * Decoders return 0 on success or -1 if the buffer is too short or a
 * field is out of range; they never read past @len.
 */
size_t rt_hdr_encode(uint8_t *p, const struct rt_hdr *h);
int rt_hdr_decode(const uint8_t *p, size_t len, struct rt_hdr *h);
size_t rt_data_encode(uint8_t *p, const struct rt_data_hdr *d);
int rt_data_decode(const uint8_t *p, size_t len, struct rt_data_hdr *d);
size_t rt_ack_encode(uint8_t *p, const struct rt_ack_hdr *a);
int rt_ack_decode(const uint8_t *p, size_t len, struct rt_ack_hdr *a);
size_t rt_nak_encode(uint8_t *p, const struct rt_nak_hdr *n);
int rt_nak_decode(const uint8_t *p, size_t len, struct rt_nak_hdr *n);
void rt_addr_encode(uint8_t *p, const struct rt_wire_addr *a);
int rt_addr_decode(const uint8_t *p, size_t len, struct rt_wire_addr *a);
void rt_desc_encode(uint8_t *p, const struct rt_wire_desc *d);
int rt_desc_decode(const uint8_t *p, size_t len, struct rt_wire_desc *d);

/* Patch the csum field of an encoded common header. */
void rt_hdr_set_csum(uint8_t *p, uint32_t csum);

uint32_t rt_crc32c(uint32_t crc, const void *buf, size_t len);

static inline void rt_put16(uint8_t *p, uint16_t v) { p[0] = v >> 8; p[1] = v; }
static inline void rt_put32(uint8_t *p, uint32_t v)
{
	p[0] = v >> 24; p[1] = v >> 16; p[2] = v >> 8; p[3] = v;
}
static inline void rt_put64(uint8_t *p, uint64_t v)
{
	rt_put32(p, (uint32_t)(v >> 32));
	rt_put32(p + 4, (uint32_t)v);
}
static inline uint16_t rt_get16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static inline uint32_t rt_get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static inline uint64_t rt_get64(const uint8_t *p)
{
	return (uint64_t)rt_get32(p) << 32 | rt_get32(p + 4);
}

#endif /* RT_WIRE_H */
