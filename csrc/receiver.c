/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Receiver side: decode and validate every datagram, drop what is not
 * ours, suppress duplicates, place payload directly into the target
 * buffer (out of order is fine: every packet says where its bytes go),
 * raise completions, and build ACKs (cumulative + SACK ranges) and NAKs.
 * A packet that fails validation is never acknowledged: the sender gets
 * a NAK and the target memory is untouched.
 */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

enum verdict { V_OK = 0, V_NAK, V_RNR, V_DROP };

static inline uint64_t *rbit_word(struct rt_peer *p, uint32_t psn)
{
	return &p->rcv_bits[(psn & (RT_RCV_WIN - 1)) >> 6];
}
static inline bool rbit_get(struct rt_peer *p, uint32_t psn)
{
	return (*rbit_word(p, psn) >> (psn & 63)) & 1;
}

static void send_nak(struct rt_peer *p, uint32_t psn, uint32_t msg_id, uint8_t kind,
		     uint32_t status, uint64_t now)
{
	rt_ctx *ctx = p->ep->ctx;
	struct rt_txq_pkt *q = rt_txq_add(ctx, now);
	struct rt_hdr h;
	rt_hdr_fill(p, &h, RT_PKT_NAK);
	h.path = rt_path_pick(p, now);
	h.len = RT_NAK_HDR_SIZE;
	struct rt_nak_hdr n = { .psn = psn, .msg_id = msg_id, .kind = kind, .status = (uint8_t)status };
	rt_hdr_encode(q->hdr, &h);
	rt_nak_encode(q->hdr + RT_HDR_SIZE, &n);
	q->hdr_len = RT_HDR_SIZE + RT_NAK_HDR_SIZE;
	q->path = h.path;
	q->dst = p->addr;
	p->paths[h.path].ctl_packets++;
	p->paths[h.path].ctl_bytes += q->hdr_len;
	p->ep->st.naks_sent++;
}

/* ---------------------------------------------------------------- SEND */

static void send_slots_retire(struct rt_peer *p)
{
	struct rt_ep *ep = p->ep;
	while (p->rx_ssn_base != p->rx_ssn_assigned) {
		struct rt_rx_send *s = &p->rx_send[p->rx_ssn_base & (RT_MSG_WIN - 1)];
		if (s->ssn != p->rx_ssn_base || (s->state != RXS_DONE && s->state != RXS_FAILED))
			break;
		if (s->state == RXS_FAILED && !s->mr) {
			/* skipped: no buffer, no completion */
		} else if (s->state == RXS_DONE) {
			rt_ep_complete(ep, s->wr_id, RT_OP_RECV, RT_WC_SUCCESS, s->msg_len, p->id, false, 0);
			p->ack_hold = true; /* the application may answer right away */
			ep->st.msgs_received++;
		} else {
			/* byte_len tells the application how large the message was */
			rt_ep_complete(ep, s->wr_id, RT_OP_RECV, s->status, s->msg_len, p->id, false, 0);
		}
		if (s->mr)
			s->mr->inflight--;
		s->state = RXS_EMPTY;
		p->rx_ssn_base++;
	}
}

static enum verdict place_send(struct rt_peer *p, const struct rt_data_hdr *d,
			       const uint8_t *pay, uint32_t plen, uint32_t *status)
{
	struct rt_ep *ep = p->ep;
	uint32_t ssn = d->aux;
	if (!p->rx_send) {
		p->rx_send = calloc(RT_MSG_WIN, sizeof(*p->rx_send));
		if (!p->rx_send)
			return V_DROP;
	}
	if (psn_lt(ssn, p->rx_ssn_base)) {
		*status = RT_WC_REM_INVALID; /* straggler of a message that already failed */
		return V_NAK;
	}
	if (ssn - p->rx_ssn_base >= RT_MSG_WIN)
		return V_DROP;
	/* receive buffers are matched in send order, even when a later
	 * message's packets arrive first */
	while (psn_le(p->rx_ssn_assigned, ssn)) {
		struct rt_rx_send *k = &p->rx_send[p->rx_ssn_assigned & (RT_MSG_WIN - 1)];
		if (k->ssn == p->rx_ssn_assigned && k->state == RXS_SKIP) {
			k->state = RXS_FAILED; /* abandoned before it had a buffer */
			k->mr = NULL;
			p->rx_ssn_assigned++;
			continue;
		}
		if (!ep->rq_head)
			break;
		struct rt_recv_wr *w = ep->rq_head;
		ep->rq_head = w->next;
		if (!ep->rq_head)
			ep->rq_tail = NULL;
		ep->rq_len--;
		struct rt_rx_send *s = &p->rx_send[p->rx_ssn_assigned & (RT_MSG_WIN - 1)];
		memset(s, 0, sizeof(*s));
		s->ssn = p->rx_ssn_assigned++;
		s->state = RXS_ASSIGNED;
		s->mr = w->mr;
		s->off = w->off;
		s->cap = w->len;
		s->wr_id = w->wr_id;
		free(w);
	}
	if (!psn_lt(ssn, p->rx_ssn_assigned))
		return V_RNR;
	struct rt_rx_send *s = &p->rx_send[ssn & (RT_MSG_WIN - 1)];
	if (s->state == RXS_FAILED) {
		*status = RT_WC_REM_TOO_SMALL;
		return V_NAK;
	}
	if (s->state != RXS_ASSIGNED)
		return V_DROP;
	if (!s->len_known) {
		s->len_known = 1;
		s->msg_len = d->msg_len;
		if (d->msg_len > s->cap) {
			s->state = RXS_FAILED;
			s->status = RT_WC_LOC_LEN_ERR;
			send_slots_retire(p);
			*status = RT_WC_REM_TOO_SMALL;
			return V_NAK;
		}
	} else if (s->msg_len != d->msg_len) {
		return V_DROP; /* inconsistent with earlier packets of this message */
	}
	if (plen)
		rt_place(p->ep->ctx, s->mr->addr + s->off + d->offset, pay, plen, d->msg_len);
	s->bytes += plen;
	if (s->bytes >= s->msg_len) {
		s->state = RXS_DONE;
		send_slots_retire(p);
	}
	return V_OK;
}

/*
 * The sender abandoned a message (RNR timeout, a NAK, ...): release what
 * the receiver holds for it so later messages are not stuck behind it.
 */
static void rx_abort(struct rt_peer *p, const struct rt_data_hdr *d)
{
	if (d->op == RT_WOP_SEND && p->rx_send) {
		uint32_t ssn = d->aux;
		if (psn_lt(ssn, p->rx_ssn_base) || ssn - p->rx_ssn_base >= RT_MSG_WIN)
			return;
		struct rt_rx_send *s = &p->rx_send[ssn & (RT_MSG_WIN - 1)];
		if (psn_lt(ssn, p->rx_ssn_assigned)) {
			if (s->ssn == ssn && s->state == RXS_ASSIGNED) {
				s->state = RXS_FAILED;
				s->status = RT_WC_ABORTED;
			}
		} else if (s->ssn != ssn || s->state != RXS_SKIP) {
			memset(s, 0, sizeof(*s));
			s->ssn = ssn;
			s->state = RXS_SKIP;
			/* skip it (and skips after it) now if it is next in line */
			while (s->ssn == p->rx_ssn_assigned && s->state == RXS_SKIP) {
				s->state = RXS_FAILED;
				s->mr = NULL;
				p->rx_ssn_assigned++;
				s = &p->rx_send[p->rx_ssn_assigned & (RT_MSG_WIN - 1)];
			}
		}
		send_slots_retire(p);
	} else if (d->op == RT_WOP_WRITE && (d->dflags & RT_DF_IMM) && p->rx_wimm) {
		struct rt_rx_wimm *w = &p->rx_wimm[d->msg_id & (RT_MSG_WIN - 1)];
		if (w->active && w->msg_id == d->msg_id) {
			w->active = false;
			p->rx_wimm_active--;
		}
	}
}

/* ---------------------------------------------------------------- one-sided */

static enum verdict check_remote(rt_ctx *ctx, const struct rt_data_hdr *d, uint32_t need,
				 uint64_t len, struct rt_mr **out, uint32_t *status)
{
	struct rt_mr *mr = rt_mr_lookup(ctx, d->rkey);
	if (!mr) {
		*status = RT_WC_REM_BAD_KEY;
		return V_NAK;
	}
	if (!(mr->access & need)) {
		*status = RT_WC_REM_ACCESS;
		return V_NAK;
	}
	if (d->raddr > mr->len || len > mr->len - d->raddr) {
		*status = RT_WC_REM_OUT_OF_BOUNDS;
		return V_NAK;
	}
	*out = mr;
	return V_OK;
}

static enum verdict place_write(struct rt_peer *p, const struct rt_data_hdr *d,
				const uint8_t *pay, uint32_t plen, uint32_t *status)
{
	struct rt_mr *mr;
	enum verdict v = check_remote(p->ep->ctx, d, RT_ACCESS_REMOTE_WRITE, d->msg_len, &mr, status);
	if (v != V_OK)
		return v;
	struct rt_rx_wimm *w = NULL;
	if (d->dflags & RT_DF_IMM) {
		if (!p->rx_wimm) {
			p->rx_wimm = calloc(RT_MSG_WIN, sizeof(*p->rx_wimm));
			if (!p->rx_wimm)
				return V_DROP;
		}
		w = &p->rx_wimm[d->msg_id & (RT_MSG_WIN - 1)];
		if (w->active && w->msg_id != d->msg_id)
			return V_DROP; /* sender overran the message window */
		if (!w->active) {
			w->active = true;
			p->rx_wimm_active++;
			w->msg_id = d->msg_id;
			w->bytes = 0;
			w->msg_len = d->msg_len;
			w->imm = d->imm;
		}
	}
	if (plen)
		rt_place(p->ep->ctx, mr->addr + d->raddr + d->offset, pay, plen, d->msg_len);
	if (w) {
		w->bytes += plen;
		if (w->bytes >= w->msg_len) {
			w->active = false;
			p->rx_wimm_active--;
			rt_ep_complete(p->ep, 0, RT_OP_RECV_WRITE_IMM, RT_WC_SUCCESS, w->msg_len, p->id,
				       true, w->imm);
			p->ep->st.msgs_received++;
		}
	}
	return V_OK;
}

static struct rt_msg *resp_msg(struct rt_peer *p, const struct rt_data_hdr *d, uint8_t op)
{
	struct rt_msg *m = calloc(1, sizeof(*m));
	if (!m)
		return NULL;
	m->op = op;
	m->internal = 1;
	m->aux = d->msg_id;
	(void)p;
	return m;
}

static enum verdict place_read_req(struct rt_peer *p, const struct rt_data_hdr *d, uint32_t plen,
				   uint32_t *status)
{
	if (plen)
		return V_DROP;
	struct rt_mr *mr;
	enum verdict v = check_remote(p->ep->ctx, d, RT_ACCESS_REMOTE_READ, d->msg_len, &mr, status);
	if (v != V_OK)
		return v;
	struct rt_msg *m = resp_msg(p, d, RT_WOP_READ_RESP);
	if (!m)
		return V_DROP;
	m->mr = mr;
	mr->inflight++;
	m->src = mr->addr + d->raddr;
	m->len = d->msg_len;
	rt_tx_enqueue(p, m);
	return V_OK;
}

static enum verdict place_atomic_req(struct rt_peer *p, const struct rt_data_hdr *d,
				     const uint8_t *pay, uint32_t plen, uint32_t *status)
{
	if (plen != RT_ATOMIC_REQ_PAYLOAD || d->msg_len != RT_ATOMIC_REQ_PAYLOAD ||
	    (d->aux != RT_OP_ATOMIC_FETCH_ADD && d->aux != RT_OP_ATOMIC_CMP_SWAP))
		return V_DROP;
	struct rt_mr *mr = rt_mr_lookup(p->ep->ctx, d->rkey);
	if (!mr) {
		*status = RT_WC_REM_BAD_KEY;
		return V_NAK;
	}
	if (!(mr->access & (RT_ACCESS_REMOTE_ATOMIC | RT_ACCESS_REMOTE_WRITE))) {
		*status = RT_WC_REM_ACCESS;
		return V_NAK;
	}
	if (d->raddr > mr->len || mr->len - d->raddr < 8) {
		*status = RT_WC_REM_OUT_OF_BOUNDS;
		return V_NAK;
	}
	uint8_t *addr = mr->addr + d->raddr;
	if ((uintptr_t)addr & 7) {
		*status = RT_WC_REM_MISALIGNED;
		return V_NAK;
	}
	struct rt_msg *m = resp_msg(p, d, RT_WOP_ATOMIC_RESP);
	if (!m)
		return V_DROP;
	uint64_t a = rt_get64(pay), b = rt_get64(pay + 8), old;
	uint64_t *tgt = (uint64_t *)(void *)addr;
	if (d->aux == RT_OP_ATOMIC_FETCH_ADD) {
		old = __atomic_fetch_add(tgt, a, __ATOMIC_SEQ_CST);
	} else {
		old = a;
		__atomic_compare_exchange_n(tgt, &old, b, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
	}
	rt_put64(m->inline_buf, old);
	m->src = m->inline_buf;
	m->len = RT_ATOMIC_RESP_PAYLOAD;
	rt_tx_enqueue(p, m);
	return V_OK;
}

static struct rt_msg *find_request(struct rt_peer *p, uint32_t req_id, uint8_t op)
{
	if (!p->resp_wait)
		return NULL;
	struct rt_msg *m = p->resp_wait[req_id & (RT_MSG_WIN - 1)];
	if (!m || m->msg_id != req_id || m->op != op || m->state == MSG_DONE)
		return NULL;
	return m;
}

static enum verdict place_response(struct rt_peer *p, const struct rt_data_hdr *d,
				   const uint8_t *pay, uint32_t plen)
{
	bool rd = d->op == RT_WOP_READ_RESP;
	struct rt_msg *req = find_request(p, d->aux, rd ? RT_WOP_READ_REQ : RT_WOP_ATOMIC_REQ);
	if (!req)
		return V_OK; /* request already failed: acknowledge and discard */
	if (rd) {
		if (d->msg_len != req->len)
			return V_DROP;
		if (plen)
			rt_place(p->ep->ctx, req->mr->addr + req->loff + d->offset, pay, plen,
				 d->msg_len);
		req->resp_bytes += plen;
		if (req->resp_bytes < req->len)
			return V_OK;
	} else {
		if (plen != RT_ATOMIC_RESP_PAYLOAD || d->msg_len != RT_ATOMIC_RESP_PAYLOAD)
			return V_DROP;
		uint64_t old = rt_get64(pay);
		memcpy(req->mr->addr + req->loff, &old, 8);
	}
	rt_msg_complete(req, RT_WC_SUCCESS);
	rt_msg_maybe_release(req);
	return V_OK;
}

/* ---------------------------------------------------------------- DATA */

static void rx_data(struct rt_peer *p, const struct rt_hdr *h, const uint8_t *pkt, uint32_t len,
		    uint8_t tos, uint64_t rx_ts, uint64_t now)
{
	struct rt_ep *ep = p->ep;
	struct rt_data_hdr d;
	if (rt_data_decode(pkt + RT_HDR_SIZE, len - RT_HDR_SIZE, &d) != 0) {
		ep->st.malformed++;
		return;
	}
	if (!p->rcv_bits) {
		p->rcv_bits = calloc(RT_RCV_WIN / 64, sizeof(uint64_t));
		if (!p->rcv_bits)
			return;
	}
	const uint8_t *pay = pkt + RT_DATA_OVERHEAD;
	uint32_t plen = len - RT_DATA_OVERHEAD;
	if ((tos & 3) == 3) {
		p->ce_count++;
		p->ack_flags |= RT_ACKF_CE;
	}
	if (psn_lt(d.psn, p->rcv_cum) || (d.psn - p->rcv_cum < RT_RCV_WIN && rbit_get(p, d.psn))) {
		ep->st.duplicates++;
		p->ack_flags |= RT_ACKF_DUP;
		p->ack_pending = true; /* re-acknowledge: our ACK may have been lost */
		rt_peer_activate(p);
		return;
	}
	if (d.psn - p->rcv_cum >= RT_RCV_WIN) {
		ep->st.malformed++; /* beyond any window the sender may use */
		return;
	}
	enum verdict v = V_OK;
	uint32_t status = 0;
	if (!(d.dflags & RT_DF_ABORT)) {
		switch (d.op) {
		case RT_WOP_SEND: v = place_send(p, &d, pay, plen, &status); break;
		case RT_WOP_WRITE: v = place_write(p, &d, pay, plen, &status); break;
		case RT_WOP_READ_REQ: v = place_read_req(p, &d, plen, &status); break;
		case RT_WOP_ATOMIC_REQ: v = place_atomic_req(p, &d, pay, plen, &status); break;
		default: v = place_response(p, &d, pay, plen); break;
		}
	} else if (plen) {
		v = V_DROP;
	} else {
		rx_abort(p, &d);
	}
	if (v == V_DROP) {
		ep->st.malformed++;
		return;
	}
	if (v == V_NAK || v == V_RNR) {
		send_nak(p, d.psn, d.msg_id, v == V_NAK ? RT_NAK_ERROR : RT_NAK_RNR, status, now);
		return;
	}
	*rbit_word(p, d.psn) |= 1ull << (d.psn & 63);
	while (rbit_get(p, p->rcv_cum)) {
		*rbit_word(p, p->rcv_cum) &= ~(1ull << (p->rcv_cum & 63));
		p->rcv_cum++;
	}
	/* remember where this packet landed: the next ACK reports the ranges
	 * holding the newest arrivals first (the TCP SACK rule, RFC 2018),
	 * so no arrival goes unreported however many holes spraying makes */
	if (p->ack_nrecent && p->ack_recent[p->ack_nrecent - 1] + 1 == d.psn)
		p->ack_recent[p->ack_nrecent - 1] = d.psn;
	else if (p->ack_nrecent < RT_ACK_RECENT)
		p->ack_recent[p->ack_nrecent++] = d.psn;
	else
		p->ack_recent[RT_ACK_RECENT - 1] = d.psn;
	if (psn_lt(p->rcv_max, d.psn + 1))
		p->rcv_max = d.psn + 1;
	if (psn_lt(p->rcv_max, p->rcv_cum))
		p->rcv_max = p->rcv_cum;
	ep->st.rx_packets++;
	ep->st.rx_bytes += plen;
	p->ack_pending = true;
	p->ack_ts_echo = d.ts_us;
	p->ack_echo_path = h->path;
	p->ack_rx_us = rx_ts; /* ack_delay then includes our own scheduling delay */
	rt_peer_activate(p);
}

/* ---------------------------------------------------------------- dispatch */

static bool csum_ok(uint8_t *pkt, uint32_t len, uint32_t want)
{
	rt_hdr_set_csum(pkt, 0);
	uint32_t c = rt_crc32c(0, pkt, len);
	rt_hdr_set_csum(pkt, want);
	return (c ? c : 1) == want;
}

void rt_rx_packet(rt_ctx *ctx, uint8_t *pkt, uint32_t len, const struct sockaddr_in *from,
		  uint8_t tos, uint64_t rx_ts, uint64_t now)
{
	struct rt_hdr h;
	struct rt_ep *ep = NULL;
	if (len >= RT_HDR_SIZE) {
		ep = rt_ep_by_id(ctx, rt_get32(pkt + 8));
	}
	if (!ep) {
		/* not addressed to a live endpoint: count against the first one */
		for (uint32_t i = 0; i < ctx->neps_cap && !ep; i++)
			ep = ctx->eps[i];
		if (ep) {
			if (len >= RT_HDR_SIZE && rt_hdr_decode(pkt, len, &h) == 0)
				ep->st.foreign++;
			else
				ep->st.malformed++;
		}
		return;
	}
	if (ep->closing)
		return;
	if (rt_hdr_decode(pkt, len, &h) != 0) {
		ep->st.malformed++;
		return;
	}
	if (h.dst_nonce != ep->nonce) {
		ep->st.foreign++; /* another incarnation, or a guess */
		return;
	}
	if (ctx->cfg.checksum || (h.flags & RT_HF_CSUM)) {
		if (!(h.flags & RT_HF_CSUM) || !csum_ok(pkt, len, h.csum)) {
			ep->st.malformed++;
			if (!(h.flags & RT_HF_CSUM) && !ep->warned_nocsum) {
				/* a likely misconfiguration, not an attack: say so once */
				ep->warned_nocsum = true;
				char a[INET_ADDRSTRLEN];
				inet_ntop(AF_INET, &from->sin_addr, a, sizeof(a));
				rt_log(2, "endpoint %u: dropping packets without a checksum from %s:%u: "
				       "this context requires checksums (checksum=1, or fault corruption "
				       "enabled); enable checksum on the peer's context too",
				       ep->id, a, ntohs(from->sin_port));
			}
			return;
		}
	}
	struct rt_peer *p = rt_ep_find_peer(ep, h.src_ep, h.src_nonce);
	if (h.type == RT_PKT_DATA) {
		if (!p) {
			struct sockaddr_in a = *from;
			a.sin_port = htons(h.src_port);
			/* a new identity only for a packet that could be a peer's
			 * first: valid data header, PSN inside the window that
			 * starts at 0 (forged garbage must not fill the table) */
			struct rt_data_hdr d;
			if (h.src_port == 0 || h.src_ep == 0 || h.src_nonce == 0 ||
			    rt_data_decode(pkt + RT_HDR_SIZE, len - RT_HDR_SIZE, &d) != 0 ||
			    d.psn >= RT_RCV_WIN) {
				ep->st.malformed++;
				return;
			}
			if (ep->npeers >= RT_MAX_PEERS) {
				ep->st.foreign++; /* peer table full: refuse new identities */
				return;
			}
			p = rt_ep_add_peer(ep, &a, h.src_ep, h.src_nonce);
			if (!p)
				return;
		}
		if (p->state != PEER_OK) {
			ep->st.foreign++;
			return;
		}
		p->last_rx_us = now;
		rx_data(p, &h, pkt, len, tos, rx_ts, now);
		return;
	}
	if (!p || p->state != PEER_OK) {
		ep->st.foreign++;
		return;
	}
	if (h.type == RT_PKT_ACK) {
		struct rt_ack_hdr a;
		if (rt_ack_decode(pkt + RT_HDR_SIZE, len - RT_HDR_SIZE, &a) != 0) {
			ep->st.malformed++;
			return;
		}
		rt_tx_on_ack(p, &h, &a, rx_ts, now);
	} else {
		struct rt_nak_hdr n;
		if (rt_nak_decode(pkt + RT_HDR_SIZE, len - RT_HDR_SIZE, &n) != 0) {
			ep->st.malformed++;
			return;
		}
		rt_tx_on_nak(p, &n, now);
	}
}

/* ---------------------------------------------------------------- ACKs */

/* First PSN in [from, end) whose bit equals @set, or end. */
static uint32_t scan_bits(struct rt_peer *p, uint32_t from, uint32_t end, bool set)
{
	while (psn_lt(from, end)) {
		uint64_t w = *rbit_word(p, from);
		if (!set)
			w = ~w;
		w >>= (from & 63);
		if (w) {
			uint32_t n = from + (uint32_t)__builtin_ctzll(w);
			return psn_lt(n, end) ? n : end;
		}
		from += 64 - (from & 63);
	}
	return end;
}

/* Start of the run of set bits that ends at @x (set), not below @floor. */
static uint32_t scan_back(struct rt_peer *p, uint32_t x, uint32_t floor)
{
	uint32_t s = x;
	while (psn_lt(floor, s)) {
		uint32_t q = s - 1, pos = q & 63;
		uint64_t mask = pos == 63 ? ~0ull : ((1ull << (pos + 1)) - 1);
		uint64_t clear = ~*rbit_word(p, q) & mask;
		if (clear) {
			uint32_t hb = 63u - (uint32_t)__builtin_clzll(clear);
			s = q - (pos - hb) + 1;
			break;
		}
		s = q - pos;
	}
	return psn_lt(s, floor) ? floor : s;
}

static bool range_covered(const struct rt_ack_hdr *a, uint32_t psn)
{
	for (unsigned j = 0; j < a->nranges; j++)
		if (psn_le(a->r[j].start, psn) && psn_lt(psn, a->r[j].end))
			return true;
	return false;
}

/*
 * ack_ranges() - fill @a with SACK ranges above the cumulative PSN: first
 * the ranges holding the runs received since the last ACK (newest
 * first), then the lowest ranges.  Ranges are disjoint but not sorted.
 */
static void ack_ranges(struct rt_peer *p, struct rt_ack_hdr *a)
{
	for (int k = (int)p->ack_nrecent - 1; k >= 0 && a->nranges < RT_ACK_MAX_RANGES; k--) {
		uint32_t x = p->ack_recent[k];
		if (psn_lt(x, p->rcv_cum) || !psn_lt(x, p->rcv_max) || !rbit_get(p, x) ||
		    range_covered(a, x))
			continue;
		a->r[a->nranges].start = scan_back(p, x, p->rcv_cum);
		a->r[a->nranges].end = scan_bits(p, x, p->rcv_max, false);
		a->nranges++;
	}
	p->ack_nrecent = 0;
	uint32_t psn = p->rcv_cum;
	while (a->nranges < RT_ACK_MAX_RANGES && psn_lt(psn, p->rcv_max)) {
		uint32_t s = scan_bits(p, psn, p->rcv_max, true);
		if (s == p->rcv_max)
			break;
		uint32_t e = scan_bits(p, s, p->rcv_max, false);
		if (!range_covered(a, s)) {
			a->r[a->nranges].start = s;
			a->r[a->nranges].end = e;
			a->nranges++;
		}
		psn = e;
	}
}

static void send_ack(struct rt_peer *p, uint64_t now, int path)
{
	rt_ctx *ctx = p->ep->ctx;
	struct rt_ack_hdr a;
	memset(&a, 0, sizeof(a));
	a.cum_psn = p->rcv_cum;
	a.ts_echo = p->ack_ts_echo;
	a.ack_delay_us = now > p->ack_rx_us ? (uint32_t)(now - p->ack_rx_us) : 0;
	a.echo_path = p->ack_echo_path;
	a.aflags = p->ack_flags;
	a.ce_count = p->ce_count;
	if (p->rcv_bits)
		ack_ranges(p, &a);
	struct rt_txq_pkt *q = rt_txq_add(ctx, now);
	struct rt_hdr h;
	rt_hdr_fill(p, &h, RT_PKT_ACK);
	h.path = path >= 0 ? (uint16_t)path : rt_path_pick(p, now);
	size_t n = rt_ack_encode(q->hdr + RT_HDR_SIZE, &a);
	h.len = (uint16_t)n;
	rt_hdr_encode(q->hdr, &h);
	q->hdr_len = (uint16_t)(RT_HDR_SIZE + n);
	q->payload = NULL;
	q->pay_len = 0;
	q->path = h.path;
	q->dst = p->addr;
	p->ack_pending = false;
	p->ack_hold = false;
	p->ack_flags = 0;
	p->ce_count = 0;
	p->paths[h.path].ctl_packets++;
	p->paths[h.path].ctl_bytes += q->hdr_len;
	p->ep->st.acks_sent++;
}

/*
 * rt_rx_datagram() - receive one UDP datagram: one packet, or several
 * packets back to back (protocol.md section 1: a sender bundles a small
 * packet, typically an ACK, with the packet before it on the same path).
 * A bundle must tile the datagram exactly (the common headers' len
 * fields), hold at most RT_BUNDLE_MAX packets in at most
 * RT_BUNDLE_MAX_BYTES, and every packet must name the same two endpoints
 * (header bytes 8..31), so one datagram can create at most one peer and
 * provoke at most RT_BUNDLE_MAX small replies.  Otherwise the datagram
 * goes to rt_rx_packet() whole and is counted as one malformed packet:
 * a padded, cut or oversized datagram delivers nothing.
 */
void rt_rx_datagram(rt_ctx *ctx, uint8_t *dg, uint32_t len, const struct sockaddr_in *from,
		    uint8_t tos, uint64_t rx_ts, uint64_t now)
{
	uint32_t off = 0, n = 0;
	bool ok = true;
	if (ctx->rx_defer_len)
		rt_rx_deferred(ctx, now); /* ACKs are handled in arrival order */
	while (len - off >= RT_HDR_SIZE) {
		if (n && memcmp(dg + off + RT_BUNDLE_ID_OFF, dg + RT_BUNDLE_ID_OFF,
				RT_BUNDLE_ID_LEN) != 0)
			ok = false;
		off += RT_HDR_SIZE + rt_get16(dg + off + RT_HDR_LEN_OFF);
		n++;
		if (off >= len || n > RT_BUNDLE_MAX)
			break;
	}
	if (n < 2 || off != len || !ok || n > RT_BUNDLE_MAX || len > RT_BUNDLE_MAX_BYTES) {
		rt_rx_packet(ctx, dg, len, from, tos, rx_ts, now);
		return;
	}
	ctx->io.rx_bundles++;
	for (off = 0; off < len;) {
		uint32_t l = RT_HDR_SIZE + rt_get16(dg + off + RT_HDR_LEN_OFF);
		if (off + l == len && off && l <= sizeof(ctx->rx_defer) &&
		    dg[RT_HDR_TYPE_OFF] == RT_PKT_DATA && dg[off + RT_HDR_TYPE_OFF] == RT_PKT_ACK) {
			/* a request or reply with the ACK of our last message:
			 * the application answers the data first, the ACK only
			 * frees what we sent, so handle it after that answer
			 * has gone out (or at the next engine pass, or before
			 * the next datagram); its timing uses @rx_ts */
			memcpy(ctx->rx_defer, dg + off, l);
			ctx->rx_defer_len = l;
			ctx->rx_defer_from = *from;
			ctx->rx_defer_tos = tos;
			ctx->rx_defer_ts = rx_ts;
			break;
		}
		rt_rx_packet(ctx, dg + off, l, from, tos, rx_ts, now);
		off += l;
	}
}

/*
 * rt_rx_deferred() - handle the ACK that rt_rx_datagram() set aside, if
 * any.  Called with the engine lock held at the start of each engine
 * pass, after a post has flushed its packets, before the next datagram
 * and before an endpoint closes, so an ACK waits at most until the
 * application's next call into the library or the next poll.
 */
void rt_rx_deferred(rt_ctx *ctx, uint64_t now)
{
	uint32_t l = ctx->rx_defer_len;
	if (!l)
		return;
	ctx->rx_defer_len = 0;
	uint64_t ts = ctx->rx_defer_ts <= now ? ctx->rx_defer_ts : now;
	rt_rx_packet(ctx, ctx->rx_defer, l, &ctx->rx_defer_from, ctx->rx_defer_tos, ts, now);
}

/*
 * ACKs go out once per receive batch.  When a batch completed a SEND, the
 * application will often answer at once: then the ACK waits up to
 * RT_ACK_HOLD_US so that it leaves with the reply, in the same sendmmsg()
 * on the same path socket (rt_rx_ack_now() from the post path), which
 * takes a system call off every request/response round trip.
 */
#define RT_ACK_HOLD_US 20
void rt_rx_flush_acks(rt_ctx *ctx, uint64_t now)
{
	for (struct rt_peer *p = ctx->active; p; p = p->anext)
		if (p->ack_pending && (!p->ack_hold || now >= p->ack_rx_us + RT_ACK_HOLD_US ||
				       now < p->ack_rx_us))
			send_ack(p, now, -1);
}

void rt_rx_ack_now(struct rt_peer *p, uint64_t now, int path)
{
	if (p->ack_pending)
		send_ack(p, now, path);
}

void rt_peer_rx_free(struct rt_peer *p)
{
	uint32_t status = p->state == PEER_FAILED ? p->fail_status : RT_WC_FLUSHED;
	if (p->rx_send) {
		for (uint32_t ssn = p->rx_ssn_base; ssn != p->rx_ssn_assigned; ssn++) {
			struct rt_rx_send *s = &p->rx_send[ssn & (RT_MSG_WIN - 1)];
			if (s->state == RXS_EMPTY || !s->mr)
				continue;
			rt_ep_complete(p->ep, s->wr_id, RT_OP_RECV, status, 0, p->id, false, 0);
			s->mr->inflight--;
			s->state = RXS_EMPTY;
		}
		p->rx_ssn_base = p->rx_ssn_assigned;
	}
	free(p->rx_send);
	p->rx_send = NULL;
	free(p->rx_wimm);
	p->rx_wimm = NULL;
	p->rx_wimm_active = 0;
	free(p->rcv_bits);
	p->rcv_bits = NULL;
}
