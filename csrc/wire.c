/* SPDX-License-Identifier: Apache-2.0 */
/* Wire encode/decode with explicit byte order and bounds checks. */
#include "wire.h"

#include <stddef.h>
#include <string.h>

#include "rtransport/rt.h"

/* The in-memory structs mirror the wire layout field for field; these
 * checks keep the documented sizes and the structs from drifting apart. */
_Static_assert(sizeof(struct rt_hdr) == RT_HDR_SIZE, "common header is 40 bytes");
_Static_assert(sizeof(struct rt_data_hdr) == RT_DATA_HDR_SIZE, "data header is 56 bytes");
_Static_assert(offsetof(struct rt_ack_hdr, r) == RT_ACK_HDR_SIZE, "ack header is 24 bytes");
_Static_assert(sizeof(struct rt_ack_range) == 8, "ack range is 8 bytes");
_Static_assert(sizeof(struct rt_nak_hdr) == RT_NAK_HDR_SIZE, "nak header is 16 bytes");
_Static_assert(RT_ADDR_SIZE == 32 && RT_MR_DESC_SIZE == 32, "address/descriptor sizes");
_Static_assert(RT_HDR_SIZE + RT_ACK_HDR_SIZE + 8 * RT_ACK_MAX_RANGES <= 1500 - RT_IPUDP_OVERHEAD,
	       "a full ACK fits a 1500-byte MTU");

size_t rt_hdr_encode(uint8_t *p, const struct rt_hdr *h)
{
	rt_put16(p + 0, RT_WIRE_MAGIC);
	p[2] = RT_WIRE_VERSION;
	p[3] = h->type;
	rt_put16(p + 4, h->flags);
	rt_put16(p + 6, h->src_port);
	rt_put32(p + 8, h->dst_ep);
	rt_put32(p + 12, h->src_ep);
	rt_put64(p + 16, h->dst_nonce);
	rt_put64(p + 24, h->src_nonce);
	rt_put16(p + 32, h->path);
	rt_put16(p + RT_HDR_LEN_OFF, h->len);
	rt_put32(p + 36, h->csum);
	return RT_HDR_SIZE;
}

int rt_hdr_decode(const uint8_t *p, size_t len, struct rt_hdr *h)
{
	if (len < RT_HDR_SIZE)
		return -1;
	h->magic = rt_get16(p);
	h->version = p[2];
	h->type = p[3];
	h->flags = rt_get16(p + 4);
	h->src_port = rt_get16(p + 6);
	h->dst_ep = rt_get32(p + 8);
	h->src_ep = rt_get32(p + 12);
	h->dst_nonce = rt_get64(p + 16);
	h->src_nonce = rt_get64(p + 24);
	h->path = rt_get16(p + 32);
	h->len = rt_get16(p + RT_HDR_LEN_OFF);
	h->csum = rt_get32(p + 36);
	if (h->magic != RT_WIRE_MAGIC || h->version != RT_WIRE_VERSION)
		return -1;
	if (h->type < RT_PKT_DATA || h->type > RT_PKT_NAK)
		return -1;
	if ((size_t)h->len != len - RT_HDR_SIZE)
		return -1; /* truncated or padded */
	return 0;
}

void rt_hdr_set_csum(uint8_t *p, uint32_t csum) { rt_put32(p + 36, csum); }

size_t rt_data_encode(uint8_t *p, const struct rt_data_hdr *d)
{
	rt_put32(p + 0, d->psn);
	p[4] = d->op;
	p[5] = d->dflags;
	rt_put16(p + 6, 0);
	rt_put32(p + 8, d->msg_id);
	rt_put32(p + 12, d->aux);
	rt_put64(p + 16, d->msg_len);
	rt_put64(p + 24, d->offset);
	rt_put64(p + 32, d->rkey);
	rt_put64(p + 40, d->raddr);
	rt_put32(p + 48, d->imm);
	rt_put32(p + 52, d->ts_us);
	return RT_DATA_HDR_SIZE;
}


int rt_data_decode(const uint8_t *p, size_t len, struct rt_data_hdr *d)
{
	if (len < RT_DATA_HDR_SIZE)
		return -1;
	d->psn = rt_get32(p);
	d->op = p[4];
	d->dflags = p[5];
	d->reserved = rt_get16(p + 6);
	d->msg_id = rt_get32(p + 8);
	d->aux = rt_get32(p + 12);
	d->msg_len = rt_get64(p + 16);
	d->offset = rt_get64(p + 24);
	d->rkey = rt_get64(p + 32);
	d->raddr = rt_get64(p + 40);
	d->imm = rt_get32(p + 48);
	d->ts_us = rt_get32(p + 52);
	if (d->op < RT_WOP_SEND || d->op > RT_WOP_MAX)
		return -1;
	if (d->dflags & ~(RT_DF_IMM | RT_DF_ABORT | RT_DF_RETX))
		return -1;
	/* payload must lie inside the message; written so it cannot overflow */
	size_t pay = len - RT_DATA_HDR_SIZE;
	if (d->offset > d->msg_len || pay > d->msg_len - d->offset)
		return -1;
	return 0;
}

size_t rt_ack_encode(uint8_t *p, const struct rt_ack_hdr *a)
{
	rt_put32(p + 0, a->cum_psn);
	rt_put32(p + 4, a->ts_echo);
	rt_put32(p + 8, a->ack_delay_us);
	rt_put16(p + 12, a->echo_path);
	p[14] = a->nranges;
	p[15] = a->aflags;
	rt_put32(p + 16, a->ce_count);
	rt_put32(p + 20, 0);
	uint8_t *q = p + RT_ACK_HDR_SIZE;
	for (unsigned i = 0; i < a->nranges; i++, q += 8) {
		rt_put32(q, a->r[i].start);
		rt_put32(q + 4, a->r[i].end);
	}
	return RT_ACK_HDR_SIZE + 8u * a->nranges;
}

int rt_ack_decode(const uint8_t *p, size_t len, struct rt_ack_hdr *a)
{
	if (len < RT_ACK_HDR_SIZE)
		return -1;
	a->cum_psn = rt_get32(p);
	a->ts_echo = rt_get32(p + 4);
	a->ack_delay_us = rt_get32(p + 8);
	a->echo_path = rt_get16(p + 12);
	a->nranges = p[14];
	a->aflags = p[15];
	a->ce_count = rt_get32(p + 16);
	a->reserved = rt_get32(p + 20);
	if (a->nranges > RT_ACK_MAX_RANGES || len != RT_ACK_HDR_SIZE + 8u * a->nranges)
		return -1;
	const uint8_t *q = p + RT_ACK_HDR_SIZE;
	for (unsigned i = 0; i < a->nranges; i++, q += 8) {
		a->r[i].start = rt_get32(q);
		a->r[i].end = rt_get32(q + 4);
		/* ranges are non-empty, above cum, no wider than 2^30 */
		if ((int32_t)(a->r[i].end - a->r[i].start) <= 0 ||
		    (int32_t)(a->r[i].start - a->cum_psn) <= 0 ||
		    a->r[i].end - a->r[i].start > (1u << 30))
			return -1;
	}
	return 0;
}

size_t rt_nak_encode(uint8_t *p, const struct rt_nak_hdr *n)
{
	rt_put32(p + 0, n->psn);
	rt_put32(p + 4, n->msg_id);
	p[8] = n->kind;
	p[9] = n->status;
	rt_put16(p + 10, 0);
	rt_put32(p + 12, 0);
	return RT_NAK_HDR_SIZE;
}

int rt_nak_decode(const uint8_t *p, size_t len, struct rt_nak_hdr *n)
{
	if (len != RT_NAK_HDR_SIZE)
		return -1;
	n->psn = rt_get32(p);
	n->msg_id = rt_get32(p + 4);
	n->kind = p[8];
	n->status = p[9];
	n->reserved = rt_get16(p + 10);
	n->reserved2 = rt_get32(p + 12);
	if (n->kind != RT_NAK_ERROR && n->kind != RT_NAK_RNR)
		return -1;
	if (n->kind == RT_NAK_ERROR &&
	    (n->status == RT_WC_SUCCESS || n->status > RT_WC_ABORTED))
		return -1;
	return 0;
}

void rt_addr_encode(uint8_t *p, const struct rt_wire_addr *a)
{
	memset(p, 0, RT_ADDR_SIZE);
	rt_put16(p + 0, RT_ADDR_MAGIC);
	p[2] = RT_WIRE_VERSION;
	p[3] = 4; /* IPv4 */
	rt_put16(p + 4, a->port);
	rt_put32(p + 8, a->ip4);
	rt_put32(p + 12, a->ep_id);
	rt_put64(p + 16, a->nonce);
}

int rt_addr_decode(const uint8_t *p, size_t len, struct rt_wire_addr *a)
{
	if (len != RT_ADDR_SIZE || rt_get16(p) != RT_ADDR_MAGIC || p[2] != RT_WIRE_VERSION ||
	    p[3] != 4)
		return -1;
	a->port = rt_get16(p + 4);
	a->ip4 = rt_get32(p + 8);
	a->ep_id = rt_get32(p + 12);
	a->nonce = rt_get64(p + 16);
	if (a->port == 0 || a->ep_id == 0 || a->nonce == 0)
		return -1;
	return 0;
}

void rt_desc_encode(uint8_t *p, const struct rt_wire_desc *d)
{
	memset(p, 0, RT_MR_DESC_SIZE);
	rt_put16(p + 0, RT_DESC_MAGIC);
	p[2] = RT_WIRE_VERSION;
	p[3] = (uint8_t)d->access;
	rt_put64(p + 8, d->rkey);
	rt_put64(p + 16, d->len);
}

int rt_desc_decode(const uint8_t *p, size_t len, struct rt_wire_desc *d)
{
	if (len != RT_MR_DESC_SIZE || rt_get16(p) != RT_DESC_MAGIC || p[2] != RT_WIRE_VERSION)
		return -1;
	d->access = p[3];
	d->rkey = rt_get64(p + 8);
	d->len = rt_get64(p + 16);
	return 0;
}

/* CRC32C (Castagnoli), slicing-by-1 table; hardware crc32 when SSE4.2. */
#if defined(__x86_64__)
#include <nmmintrin.h>
__attribute__((target("sse4.2"))) static uint32_t crc32c_hw(uint32_t crc, const uint8_t *p,
							    size_t len)
{
	uint64_t c = crc;
	while (len >= 8) {
		uint64_t v;
		memcpy(&v, p, 8);
		c = _mm_crc32_u64(c, v);
		p += 8;
		len -= 8;
	}
	uint32_t c32 = (uint32_t)c;
	while (len--)
		c32 = _mm_crc32_u8(c32, *p++);
	return c32;
}
#endif

static uint32_t crc32c_sw(uint32_t crc, const uint8_t *p, size_t len)
{
	static uint32_t table[256];
	static int ready;
	if (!__atomic_load_n(&ready, __ATOMIC_ACQUIRE)) {
		for (uint32_t i = 0; i < 256; i++) {
			uint32_t c = i;
			for (int k = 0; k < 8; k++)
				c = c & 1 ? (c >> 1) ^ 0x82F63B78u : c >> 1;
			table[i] = c;
		}
		__atomic_store_n(&ready, 1, __ATOMIC_RELEASE);
	}
	while (len--)
		crc = table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
	return crc;
}

uint32_t rt_crc32c(uint32_t crc, const void *buf, size_t len)
{
	crc = ~crc;
#if defined(__x86_64__)
	if (__builtin_cpu_supports("sse4.2"))
		return ~crc32c_hw(crc, buf, len);
#endif
	return ~crc32c_sw(crc, buf, len);
}
