/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Sender side of a peer: message queue, packetization, ACK/NAK
 * processing, RACK-style time-based loss detection (reordering from
 * spraying is not loss), RTO with exponential back-off, RNR back-off,
 * pacing and the congestion-control hooks.  Time comes in as `now`.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define RNR_DELAY_MIN_US 200

static inline struct rt_txpkt *slot(struct rt_peer *p, uint32_t psn)
{
	return &p->ring[psn & p->ring_mask];
}

static inline uint64_t *acked_word(struct rt_peer *p, uint32_t psn)
{
	uint64_t *bits = (uint64_t *)(p->ring + p->ring_mask + 1);
	return &bits[(psn & p->ring_mask) >> 6];
}

static inline uint64_t acked_bit(uint32_t psn) { return 1ull << (psn & 63); }

#ifdef RT_DEBUG_INVARIANTS
#include <stdio.h>
void rt_tx_check(struct rt_peer *p, const char *where);
void rt_tx_check(struct rt_peer *p, const char *where)
{
	if (!p->ring)
		return;
	uint32_t infl = 0, lost = 0;
	uint64_t bytes = 0;
	for (uint32_t psn = p->snd_una; psn != p->snd_nxt; psn++) {
		struct rt_txpkt *t = slot(p, psn);
		if (t->state == TX_INFLIGHT) {
			infl++;
			bytes += t->len;
		} else if (t->state == TX_LOST) {
			lost++;
		}
		bool bit = *acked_word(p, psn) & acked_bit(psn);
		if (bit != (t->state == TX_ACKED)) {
			fprintf(stderr, "[%s] psn %u state %u bit %d\n", where, psn, t->state, bit);
			abort();
		}
	}
	uint32_t out = 0;
	for (struct rt_msg *m = p->live_head; m; m = m->lnext)
		out += m->pkts_out;
	if (infl != p->inflight_pkts || lost != p->nlost || out != infl + lost ||
	    bytes != p->inflight_bytes) {
		fprintf(stderr, "[%s] infl %u/%u lost %u/%u out %u bytes %lu/%lu una %u nxt %u\n",
			where, infl, p->inflight_pkts, lost, p->nlost, out,
			(unsigned long)bytes, (unsigned long)p->inflight_bytes, p->snd_una, p->snd_nxt);
		abort();
	}
}
#define CHECK(p, w) rt_tx_check(p, w)
#else
#define CHECK(p, w) ((void)0)
#endif


static int ring_alloc(struct rt_peer *p, uint32_t size)
{
	/* one allocation: size tx slots followed by size bits of "acked" map */
	size_t bytes = size * sizeof(struct rt_txpkt) + size / 8;
	struct rt_txpkt *n = calloc(1, bytes);
	if (!n)
		return -1;
	struct rt_txpkt *old = p->ring;
	uint32_t old_mask = p->ring_mask;
	uint64_t *old_bits = old ? (uint64_t *)(old + old_mask + 1) : NULL;
	p->ring = n;
	p->ring_mask = size - 1;
	if (old) {
		for (uint32_t psn = p->snd_una; psn != p->snd_nxt; psn++) {
			*slot(p, psn) = old[psn & old_mask];
			if (old_bits[(psn & old_mask) >> 6] & acked_bit(psn & old_mask))
				*acked_word(p, psn) |= acked_bit(psn);
		}
		free(old);
	}
	return 0;
}

static void path_unsent(struct rt_peer *p, struct rt_txpkt *t);

void rt_hdr_fill(struct rt_peer *p, struct rt_hdr *h, uint8_t type)
{
	struct rt_ep *ep = p->ep;
	h->type = type;
	h->flags = ep->ctx->cfg.checksum ? RT_HF_CSUM : 0;
	h->src_port = ep->ctx->io.ports[0];
	h->dst_ep = p->remote_ep;
	h->src_ep = ep->id;
	h->dst_nonce = p->remote_nonce;
	h->src_nonce = ep->nonce;
	h->path = 0;
	h->len = 0;
	h->csum = 0;
}

void rt_peer_init_tx(struct rt_peer *p, uint64_t now)
{
	rt_ctx *ctx = p->ep->ctx;
	p->min_rtt_us = UINT64_MAX;
	p->rto_us = ctx->cfg.rto_min_us > 4000 ? ctx->cfg.rto_min_us : 4000;
	p->reo_mult = 1;
	p->last_rx_us = now;
	p->cc = ctx->cc; /* per-path state is set up by rt_paths_init() */
}

/* A message is being received from this peer (a buffer is bound to it). */
static bool rx_busy(const struct rt_peer *p)
{
	if (p->rx_send && p->rx_ssn_base != p->rx_ssn_assigned)
		return true;
	return p->rx_wimm_active != 0;
}

/* The peer has work in either direction, so its liveness is watched:
 * outgoing messages, or a half-received message whose sender may die. */
bool rt_peer_has_work(const struct rt_peer *p)
{
	return p->nmsgs || p->inflight_pkts || p->nlost || rx_busy(p);
}

void rt_tx_enqueue(struct rt_peer *p, struct rt_msg *m)
{
	if (!rt_peer_has_work(p))
		p->last_rx_us = p->ep->ctx->now_us; /* idle -> busy: restart liveness clock */
	m->peer = p;
	m->msg_id = p->next_msg_id++;
	if (m->op == RT_WOP_SEND)
		m->aux = p->next_ssn++;
	m->state = MSG_QUEUED;
	m->next = NULL;
	if (p->sq_tail)
		p->sq_tail->next = m;
	else
		p->sq_head = m;
	p->sq_tail = m;
	m->lnext = NULL;
	m->lprev = p->live_tail;
	if (p->live_tail)
		p->live_tail->lnext = m;
	else
		p->live_head = m;
	p->live_tail = m;
	p->nmsgs++;
	rt_peer_activate(p);
}

static void sq_remove(struct rt_peer *p, struct rt_msg *m)
{
	struct rt_msg *prev = NULL;
	for (struct rt_msg *x = p->sq_head; x; prev = x, x = x->next) {
		if (x != m)
			continue;
		if (prev)
			prev->next = x->next;
		else
			p->sq_head = x->next;
		if (p->sq_tail == x)
			p->sq_tail = prev;
		x->next = NULL;
		return;
	}
}

void rt_msg_release(struct rt_msg *m)
{
	struct rt_peer *p = m->peer;
	if (m->lprev)
		m->lprev->lnext = m->lnext;
	else
		p->live_head = m->lnext;
	if (m->lnext)
		m->lnext->lprev = m->lprev;
	else
		p->live_tail = m->lprev;
	if (p->resp_wait && p->resp_wait[m->msg_id & (RT_MSG_WIN - 1)] == m)
		p->resp_wait[m->msg_id & (RT_MSG_WIN - 1)] = NULL;
	if (m->mr)
		m->mr->inflight--;
	p->nmsgs--;
	free(m);
}

/* Report the user completion of @m once (no-op for internal responses). */
void rt_msg_complete(struct rt_msg *m, uint32_t status)
{
	if (m->state == MSG_DONE)
		return;
	m->state = MSG_DONE;
	m->status = status;
	if (status != RT_WC_SUCCESS)
		m->failed = 1;
	struct rt_peer *p = m->peer;
	if (!m->internal) {
		rt_ep_complete(p->ep, m->wr_id, m->user_op, status,
			       status == RT_WC_SUCCESS ? m->user_len : 0, p->id, false, 0);
		if (status == RT_WC_SUCCESS)
			p->ep->st.msgs_sent++;
	}
}

/* Free @m once it is complete and no packet of it is outstanding. */
void rt_msg_maybe_release(struct rt_msg *m)
{
	if (m->pkts_out || !m->all_sent)
		return;
	if (m->state == MSG_DONE) {
		rt_msg_release(m);
		return;
	}
	if (m->failed) {
		/* every abort is acknowledged: the receiver has let go of the
		 * message, so a buffer posted now cannot be taken by a straggler */
		rt_msg_complete(m, m->status);
		rt_msg_release(m);
		return;
	}
	if (m->op == RT_WOP_READ_REQ || m->op == RT_WOP_ATOMIC_REQ) {
		m->state = MSG_WAIT_RESP; /* the response completes it */
		return;
	}
	if (m->internal)
		m->state = MSG_DONE;
	else
		rt_msg_complete(m, RT_WC_SUCCESS);
	rt_msg_release(m);
}

/* Abandon @m: report @status, stop packetizing, turn its outstanding
 * packets into aborts (PSN fillers) so the receiver's window advances. */
static void msg_fail(struct rt_peer *p, struct rt_msg *m, uint32_t status, uint64_t now)
{
	if (m->state == MSG_QUEUED)
		sq_remove(p, m);
	bool was_done = m->state == MSG_DONE;
	if (was_done || m->failed)
		return;
	/* the completion waits until the aborts are acknowledged
	 * (rt_msg_maybe_release), see there */
	m->failed = 1;
	m->status = status;
	m->all_sent = 1;
	if (!was_done) {
		for (uint32_t psn = p->snd_una; psn != p->snd_nxt; psn++) {
			struct rt_txpkt *t = slot(p, psn);
			if (t->msg != m || t->state == TX_ACKED)
				continue;
			t->flags |= TXF_ABORT;
			if (t->state == TX_INFLIGHT) {
				t->state = TX_LOST;
				p->inflight_bytes -= t->len;
				p->inflight_pkts--;
				path_unsent(p, t);
				p->nlost++;
			}
			t->resend_at = now;
			if (psn_lt(psn, p->lost_scan))
				p->lost_scan = psn;
		}
	}
	rt_msg_maybe_release(m);
}

/* ------------------------------------------------------------- transmit */

static void emit(struct rt_peer *p, uint32_t psn, uint64_t now)
{
	rt_ctx *ctx = p->ep->ctx;
	struct rt_txpkt *t = slot(p, psn);
	struct rt_msg *m = t->msg;
	struct rt_txq_pkt *q = rt_txq_add(ctx, now);
	bool abort = t->flags & TXF_ABORT;
	uint32_t pay = abort ? 0 : t->len;
	struct rt_hdr h;
	rt_hdr_fill(p, &h, RT_PKT_DATA);
	h.path = t->path;
	h.len = (uint16_t)(RT_DATA_HDR_SIZE + pay);
	struct rt_data_hdr d = {
		.psn = psn,
		.op = m->op,
		.dflags = (uint8_t)((m->has_imm ? RT_DF_IMM : 0) | (abort ? RT_DF_ABORT : 0) |
				    (t->flags & TXF_RETX ? RT_DF_RETX : 0)),
		.msg_id = m->msg_id,
		.aux = m->aux,
		.msg_len = m->len,
		.offset = t->off,
		.rkey = m->rkey,
		.raddr = m->raddr,
		.imm = m->imm,
		.ts_us = (uint32_t)now,
	};
	rt_hdr_encode(q->hdr, &h);
	rt_data_encode(q->hdr + RT_HDR_SIZE, &d);
	q->hdr_len = RT_DATA_OVERHEAD;
	q->payload = pay ? m->src + t->off : NULL;
	q->pay_len = pay;
	q->path = t->path;
	q->dst = p->addr;
	q->peer = p;
	q->psn = psn;
	p->ep->st.tx_packets++;
	p->ep->st.tx_bytes += pay;
	struct rt_path_state *ps = &p->paths[t->path];
	ps->tx_packets++;
	ps->tx_bytes += pay;
}

/*
 * Spray units: a unit (one GSO batch, or one packet) goes out on one path
 * as a burst; each unit starts on the next path, round-robin, whose own
 * window and pacer allow it.  Returns false when no path is open.
 */
static bool unit_start(struct rt_peer *p, uint32_t pkt_bytes, uint64_t now)
{
	if (p->batch_left)
		return true;
	rt_ctx *ctx = p->ep->ctx;
	if (p->inflight_bytes >= ctx->cfg.max_inflight_bytes)
		return false;
	int path = rt_path_pick_tx(p, now);
	if (path < 0)
		return false;
	uint32_t unit = 1;
	if (ctx->cfg.spray_unit == 0 && ctx->io.gso) {
		uint32_t seg = pkt_bytes + RT_DATA_OVERHEAD;
		unit = RT_GSO_MAX_BYTES / seg;
		if (unit > RT_GSO_MAX_SEGS)
			unit = RT_GSO_MAX_SEGS;
		/* no bigger than what the path's window has room for */
		struct rt_path_state *ps = &p->paths[path];
		uint64_t w = rt_path_cwnd(p, (uint16_t)path);
		uint64_t inflight = rt_cc_per_peer(p) ? p->inflight_bytes : ps->inflight_bytes;
		uint64_t room = w > inflight ? w - inflight : 0;
		uint64_t fit = pkt_bytes ? (room + pkt_bytes - 1) / pkt_bytes : unit;
		if (fit < unit)
			unit = (uint32_t)fit;
		/* one peer window spread over paths: at least four units */
		if (rt_cc_per_peer(p) && pkt_bytes && w / 4 / pkt_bytes < unit)
			unit = (uint32_t)(w / 4 / pkt_bytes);
		if (unit < 1)
			unit = 1;
	}
	p->batch_path = (uint16_t)path;
	p->batch_left = unit;
	return true;
}

static uint16_t unit_next(struct rt_peer *p)
{
	p->batch_left--;
	return p->batch_path;
}

static void pace(struct rt_peer *p, uint16_t path, uint32_t bytes, uint64_t now)
{
	struct rt_path_state *ps = &p->paths[path];
	bool peer = rt_cc_per_peer(p);
	uint64_t srtt = !peer && ps->srtt_us ? ps->srtt_us : p->srtt_us;
	uint64_t rate = p->cc->pacing_rate_bps(rt_cc_state(p, path), srtt);
	if (!rate)
		return;
	uint64_t *next = peer ? &p->pace_next_us : &ps->pace_next_us;
	if (rt_path_pooled(p, path)) {
		/* a path in the pool (paths.c) is clocked by ACKs, not paced:
		 * charging its sends at its sub-MSS rate would push its next
		 * slot seconds ahead, and the path would stall once its window
		 * grew past one MSS and pacing applied again */
		*next = now;
		rt_pool_sent(p, bytes, now);
		return;
	}
	if (*next < now)
		*next = now;
	*next += (uint64_t)bytes * 8u * 1000000u / rate;
}

static void path_sent(struct rt_peer *p, struct rt_txpkt *t)
{
	struct rt_path_state *ps = &p->paths[t->path];
	ps->inflight++;
	ps->inflight_bytes += t->len;
}

static void path_unsent(struct rt_peer *p, struct rt_txpkt *t)
{
	struct rt_path_state *ps = &p->paths[t->path];
	if (ps->inflight)
		ps->inflight--;
	ps->inflight_bytes -= ps->inflight_bytes > t->len ? t->len : ps->inflight_bytes;
}

static int resend_lost(struct rt_peer *p, uint64_t now)
{
	int sent = 0;
	uint32_t psn = psn_lt(p->lost_scan, p->snd_una) ? p->snd_una : p->lost_scan;
	uint32_t first_skipped = p->snd_nxt;
	for (; psn != p->snd_nxt && p->nlost; psn++) {
		struct rt_txpkt *t = slot(p, psn);
		if (t->state != TX_LOST)
			continue;
		if (t->resend_at > now) {
			if (psn_lt(psn, first_skipped))
				first_skipped = psn;
			continue;
		}
		if (!unit_start(p, t->len, now))
			break;
		if (!(t->flags & TXF_UNSENT)) {
			t->flags |= TXF_RETX;
			p->ep->st.retransmits++;
			p->paths[t->path].retransmits++;
		}
		t->flags &= (uint8_t)~TXF_UNSENT;
		t->path = unit_next(p);
		t->state = TX_INFLIGHT;
		t->sent_us = now;
		p->nlost--;
		p->inflight_bytes += t->len;
		p->inflight_pkts++;
		path_sent(p, t);
		emit(p, psn, now);
		pace(p, t->path, t->len + RT_DATA_OVERHEAD, now);
		sent++;
	}
	p->lost_scan = psn_lt(first_skipped, psn) ? first_skipped : psn;
	if (p->nlost == 0)
		p->lost_scan = p->snd_nxt;
	return sent;
}

int rt_tx_push(struct rt_peer *p, uint64_t now)
{
	if (p->state != PEER_OK)
		return 0;
	rt_ctx *ctx = p->ep->ctx;
	if (!p->ring && ring_alloc(p, RT_RING_MIN) != 0)
		return 0;
	int sent = 0;
	if (p->nlost)
		sent += resend_lost(p, now);
	while (p->sq_head) {
		struct rt_msg *m = p->sq_head;
		if (m->msg_id - p->live_head->msg_id >= RT_MSG_WIN) {
			break; /* receiver tracks at most RT_MSG_WIN live messages */
		}
		uint64_t left = m->len - m->next_off;
		uint32_t len = m->op == RT_WOP_READ_REQ ? 0 :
			       (uint32_t)(left < ctx->max_payload ? left : ctx->max_payload);
		if (!unit_start(p, len, now))
			break;
		if (p->snd_nxt - p->snd_una > p->ring_mask) {
			if (p->ring_mask + 1 >= RT_RING_MAX || ring_alloc(p, (p->ring_mask + 1) * 2))
				break;
		}
		if ((m->op == RT_WOP_READ_REQ || m->op == RT_WOP_ATOMIC_REQ) && m->next_off == 0) {
			/* register for the response only inside the message window,
			 * where no other live request shares the slot */
			if (!p->resp_wait)
				p->resp_wait = calloc(RT_MSG_WIN, sizeof(*p->resp_wait));
			if (!p->resp_wait)
				break;
			p->resp_wait[m->msg_id & (RT_MSG_WIN - 1)] = m;
		}
		uint32_t psn = p->snd_nxt++;
		struct rt_txpkt *t = slot(p, psn);
		*acked_word(p, psn) &= ~acked_bit(psn);
		t->msg = m;
		t->off = m->next_off;
		t->len = len;
		t->sent_us = now;
		t->resend_at = 0;
		t->state = TX_INFLIGHT;
		t->flags = 0;
		t->path = unit_next(p);
		m->pkts_out++;
		if (!p->inflight_pkts)
			p->last_progress_us = now;
		p->inflight_bytes += len;
		p->inflight_pkts++;
		path_sent(p, t);
		emit(p, psn, now);
		pace(p, t->path, len + RT_DATA_OVERHEAD, now);
		sent++;
		m->next_off += len;
		if (m->op == RT_WOP_READ_REQ || m->next_off >= m->len) {
			m->all_sent = 1;
			m->state = MSG_SENT;
			p->sq_head = m->next;
			if (!p->sq_head)
				p->sq_tail = NULL;
			m->next = NULL;
		}
	}
	p->batch_left = 0; /* a spray unit never outlives one push */
	CHECK(p, "push");
	return sent;
}

/* ------------------------------------------------------------- ACK/NAK */

/* rtt_smooth() - RFC 6298 smoothing of @sample into @srtt and @rttvar. */
static void rtt_smooth(uint64_t *srtt, uint64_t *rttvar, uint64_t sample)
{
	if (!*srtt) {
		*srtt = sample;
		*rttvar = sample / 2;
	} else {
		uint64_t err = sample > *srtt ? sample - *srtt : *srtt - sample;
		*rttvar = (3 * *rttvar + err) / 4;
		*srtt = (7 * *srtt + sample) / 8;
	}
}

/*
 * rtt_update() - take an RTT sample: @sample is the fabric's part (the
 * receiver's ACK hold removed, for congestion control and loss detection),
 * @ack_delay_us the hold itself.  The timers (tail-loss probe, RTO) wait
 * for ACKs as they really come, hold included, as QUIC's PTO adds the
 * peer's max_ack_delay: a receiver whose thread waits for a CPU holds its
 * ACKs for milliseconds, and a probe timed on the fabric RTT alone then
 * fires spuriously.
 */
static void rtt_update(struct rt_peer *p, uint64_t sample, uint64_t ack_delay_us)
{
	rt_ctx *ctx = p->ep->ctx;
	if (sample == 0)
		sample = 1;
	if (sample < p->min_rtt_us)
		p->min_rtt_us = sample;
	rtt_smooth(&p->srtt_us, &p->rttvar_us, sample);
	rtt_smooth(&p->tsrtt_us, &p->trttvar_us, sample + ack_delay_us);
	uint64_t rto = p->tsrtt_us + 4 * p->trttvar_us;
	if (rto < ctx->cfg.rto_min_us)
		rto = ctx->cfg.rto_min_us;
	if (rto > ctx->cfg.rto_max_us)
		rto = ctx->cfg.rto_max_us;
	p->rto_us = rto;
}

struct path_acc {
	uint64_t bytes, sent, rtt;
};

struct ack_acc {
	uint64_t bytes;
	uint64_t newest_sent;   /* send time of the newest acked original */
	uint64_t newest_rtt;
	struct path_acc *pa;    /* per path, ctx->npaths entries */
	uint64_t rx_ts;         /* kernel arrival time of the ACK */
	uint64_t ack_delay;     /* how long the receiver held the ACK */
};

static void ack_one(struct rt_peer *p, uint32_t psn, uint64_t now, struct ack_acc *acc)
{
	struct rt_txpkt *t = slot(p, psn);
	if (t->state != TX_INFLIGHT && t->state != TX_LOST)
		return;
	if (t->state == TX_LOST) {
		p->nlost--; /* the original made it after all */
	} else {
		p->inflight_bytes -= t->len;
		p->inflight_pkts--;
		path_unsent(p, t);
	}
	/* RTT up to when the kernel got the ACK (not when we got to it),
	 * less the time the receiver held the ACK: what is left is fabric */
	uint64_t raw = acc->rx_ts > t->sent_us ? acc->rx_ts - t->sent_us : 1;
	uint64_t rtt = raw > acc->ack_delay + RT_MIN_RTT_US ? raw - acc->ack_delay : raw;
	struct path_acc *pa = &acc->pa[t->path];
	struct rt_path_state *ps = &p->paths[t->path];
	pa->bytes += t->len;
	/* a retransmitted packet's ACK may be for the original, sent earlier
	 * on another path: it says nothing certain about this path's order */
	if (!(t->flags & TXF_RETX) && t->sent_us > ps->rack_sent_us) {
		ps->rack_sent_us = t->sent_us;
		ps->rack_rtt_us = rtt;
	}
	if (!(t->flags & TXF_RETX)) {
		rt_path_on_ack(p, t->path, rtt, now);
		if (t->sent_us >= acc->newest_sent) {
			acc->newest_sent = t->sent_us;
			acc->newest_rtt = rtt;
		}
		if (t->sent_us >= pa->sent) {
			pa->sent = t->sent_us;
			pa->rtt = rtt;
		}
	} else {
		rt_path_on_ack(p, t->path, 0, now);
	}
	if (t->sent_us > p->rack_sent_us) {
		p->rack_sent_us = t->sent_us;
		p->rack_rtt_us = rtt;
	}
	t->state = TX_ACKED;
	*acked_word(p, psn) |= acked_bit(psn);
	acc->bytes += t->len;
	struct rt_msg *m = t->msg;
	t->msg = NULL;
	m->rnr_since_us = 0;
	m->pkts_out--;
	rt_msg_maybe_release(m);
}

static void ack_range(struct rt_peer *p, uint32_t s, uint32_t e, uint64_t now,
		      struct ack_acc *acc)
{
	/* clamp to the outstanding window, in offsets from snd_una so that a
	 * range far outside it (even 2^31 away) cannot wrap into it */
	uint32_t win = p->snd_nxt - p->snd_una;
	uint32_t so = s - p->snd_una, eo = e - p->snd_una;
	if ((int32_t)so < 0)
		so = 0;
	if ((int32_t)eo <= 0 || so >= win)
		return;
	if (eo > win)
		eo = win;
	s = p->snd_una + so;
	e = p->snd_una + eo;
	while (psn_lt(s, e)) {
		/* skip already-acked packets a word at a time */
		uint64_t w = *acked_word(p, s) >> (s & 63);
		if (w == ~0ull >> (s & 63)) {
			uint32_t step = 64 - (s & 63);
			s += step;
			continue;
		}
		if (!(w & 1))
			ack_one(p, s, now, acc);
		s++;
	}
}

static uint64_t reo_wnd(const struct rt_peer *p)
{
	uint64_t base = p->min_rtt_us == UINT64_MAX ? 100 : p->min_rtt_us;
	uint64_t w = p->reo_mult * base / 4;
	if (w < 20)
		w = 20;
	if (p->srtt_us && w > p->srtt_us)
		w = p->srtt_us;
	return w;
}

static void mark_lost(struct rt_peer *p, uint32_t psn, bool timeout, uint64_t now)
{
	struct rt_txpkt *t = slot(p, psn);
	if (psn_lt(psn, p->lost_scan))
		p->lost_scan = psn;
	t->state = TX_LOST;
	t->resend_at = now;
	p->inflight_bytes -= t->len;
	p->inflight_pkts--;
	p->nlost++;
	path_unsent(p, t);
	rt_path_on_loss(p, t->path, timeout, now);
}

/* RACK: a packet is lost once a packet sent later was delivered and
 * rack_rtt + reo_wnd has passed since it was sent. */
static void detect_losses(struct rt_peer *p, uint64_t now)
{
	if (!p->inflight_pkts || !p->rack_sent_us)
		return;
	uint32_t np = p->ep->ctx->npaths;
	uint64_t lost[np];
	memset(lost, 0, sizeof(lost));
	bool any = false;
	/* same path (FIFO): a later packet got through, so this one is lost
	 * after the reordering window; across paths only after a further
	 * half RTT, because sprayed paths have different queues */
	uint64_t same = p->rack_rtt_us + reo_wnd(p);
	uint64_t cross_extra = p->srtt_us / 2 > reo_wnd(p) ? p->srtt_us / 2 : reo_wnd(p);
	uint64_t cross = p->rack_rtt_us + cross_extra;
	for (uint32_t psn = p->snd_una; psn != p->snd_nxt; psn++) {
		struct rt_txpkt *t = slot(p, psn);
		if (t->state != TX_INFLIGHT)
			continue;
		if (t->sent_us >= p->rack_sent_us) {
			if (!(t->flags & TXF_RETX))
				break; /* originals after this were sent later still */
			continue;
		}
		struct rt_path_state *ps = &p->paths[t->path];
		bool path_passed = t->sent_us < ps->rack_sent_us;
		uint64_t wait;
		if (path_passed) {
			/* a later packet on this (FIFO) path got through; it took
			 * the path's rack RTT, so this one is overdue after that
			 * plus the reordering window */
			wait = ps->rack_rtt_us + reo_wnd(p);
			if (wait < same)
				wait = same;
		} else {
			/* only other paths moved on: this path may just be slower
			 * (a longer queue); wait until it is late by its own RTT
			 * statistics too (twice its srtt, srtt + 4 rttvar) */
			wait = cross;
			uint64_t r = ps->srtt_us ? ps->srtt_us : p->srtt_us;
			uint64_t v = ps->srtt_us ? ps->rttvar_us : p->rttvar_us;
			if (2 * r + reo_wnd(p) > wait)
				wait = 2 * r + reo_wnd(p);
			if (r + 4 * v + reo_wnd(p) > wait)
				wait = r + 4 * v + reo_wnd(p);
			/* and never sooner than a quarter of the minimum RTO:
			 * host scheduling on a busy machine delays single
			 * paths by milliseconds, and a spurious retransmission
			 * costs more than a late one (same-path evidence and
			 * quarantine handle real losses and dead paths) */
			uint64_t floor = p->ep->ctx->cfg.rto_min_us / 4;
			if (wait < floor)
				wait = floor;
		}
		if (now >= t->sent_us + wait) {
			lost[t->path] += t->len;
			any = true;
			mark_lost(p, psn, false, now);
			p->ep->st.fast_retransmits++;
		}
	}
	if (!any)
		return;
	if (rt_cc_per_peer(p)) {
		uint64_t total = 0;
		for (uint32_t i = 0; i < np; i++)
			total += lost[i];
		p->cc->on_loss(p->cc_state, now, total, p->srtt_us);
		return;
	}
	for (uint32_t i = 0; i < np; i++)
		if (lost[i])
			p->cc->on_loss(p->paths[i].cc_state, now, lost[i],
				       p->paths[i].srtt_us ? p->paths[i].srtt_us : p->srtt_us);
}

void rt_tx_on_ack(struct rt_peer *p, const struct rt_hdr *h, const struct rt_ack_hdr *a,
		  uint64_t rx_ts, uint64_t now)
{
	(void)h;
	struct rt_ep *ep = p->ep;
	ep->st.acks_received++;
	p->last_rx_us = now;
	if (!p->ring || psn_lt(p->snd_nxt, a->cum_psn)) {
		ep->st.malformed++; /* acknowledges packets never sent */
		return;
	}
	uint32_t np = ep->ctx->npaths;
	struct path_acc pa[np];
	memset(pa, 0, sizeof(pa));
	struct ack_acc acc = { 0, 0, 0, pa, rx_ts <= now ? rx_ts : now, a->ack_delay_us };
	if (psn_lt(p->snd_una, a->cum_psn))
		ack_range(p, p->snd_una, a->cum_psn, now, &acc);
	for (unsigned i = 0; i < a->nranges; i++)
		ack_range(p, a->r[i].start, a->r[i].end, now, &acc);
	/* slide the window over acknowledged slots */
	while (p->snd_una != p->snd_nxt && slot(p, p->snd_una)->state == TX_ACKED) {
		slot(p, p->snd_una)->state = TX_FREE;
		*acked_word(p, p->snd_una) &= ~acked_bit(p->snd_una);
		p->snd_una++;
	}
	if (a->aflags & RT_ACKF_DUP) {
		/* a retransmission was unnecessary: widen the reordering window */
		ep->st.spurious_retransmits++;
		if (p->reo_mult < 16)
			p->reo_mult++;
		p->recoveries = 0;
	}
	if (a->aflags & RT_ACKF_CE)
		ep->st.ecn_ce += a->ce_count;
	if (acc.newest_sent) {
		rtt_update(p, acc.newest_rtt, acc.ack_delay);
	} else if (acc.bytes && a->ts_echo) {
		/* everything this ACK covers had been sent again, so by Karn's
		 * rule no send time dates it; the echoed timestamp still
		 * dates the transmission that arrived (RFC 7323).  Without
		 * this, a probe timer shorter than the receiver's ACK hold
		 * would resend every packet and never get a sample to grow. */
		uint32_t raw = (uint32_t)acc.rx_ts - a->ts_echo;
		if (raw && raw <= 4 * (uint64_t)ep->ctx->cfg.rto_max_us)
			rtt_update(p, raw > acc.ack_delay + RT_MIN_RTT_US ? raw - acc.ack_delay : raw,
				   acc.ack_delay);
	}
	if (acc.bytes) {
		p->rto_backoff = 0;
		p->last_progress_us = now;
		p->tlp_sent = 0;
		uint64_t ce_bytes = (uint64_t)a->ce_count * p->ep->ctx->max_payload;
		if (rt_cc_per_peer(p)) {
			struct rt_cc_ack ca = {
				.now_us = now,
				.acked_bytes = acc.bytes,
				.rtt_us = acc.newest_sent ? acc.newest_rtt : 0,
				.base_rtt_us = p->min_rtt_us == UINT64_MAX ? 0 : p->min_rtt_us,
				.srtt_us = p->srtt_us,
				.inflight_bytes = p->inflight_bytes,
				.ecn_ce_bytes = ce_bytes < acc.bytes ? ce_bytes : acc.bytes,
			};
			p->cc->on_ack(p->cc_state, &ca);
		}
		uint64_t pool = 0; /* the pooled window, if a path is in the pool */
		for (uint32_t i = 0; i < np && !rt_cc_per_peer(p); i++) {
			if (!pa[i].bytes)
				continue;
			struct rt_path_state *ps = &p->paths[i];
			bool pooled = rt_path_pooled(p, (uint16_t)i);
			if (pooled && !pool)
				pool = rt_path_pool_cwnd(p);
			struct rt_cc_ack ca = {
				.now_us = now,
				.acked_bytes = pa[i].bytes,
				.rtt_us = pa[i].rtt,
				.base_rtt_us = p->min_rtt_us == UINT64_MAX ? 0 : p->min_rtt_us,
				.srtt_us = ps->srtt_us ? ps->srtt_us : p->srtt_us,
				.inflight_bytes = ps->inflight_bytes,
				.ecn_ce_bytes = ce_bytes * pa[i].bytes / acc.bytes,
				.flow_cwnd_bytes = pooled ? pool : 0,
			};
			p->cc->on_ack(ps->cc_state, &ca);
		}
		if (++p->recoveries > 256 && p->reo_mult > 1) {
			p->reo_mult--; /* decay the reordering window slowly */
			p->recoveries = 0;
		}
	}
	CHECK(p, "ack-pre-loss");
	detect_losses(p, now);
	CHECK(p, "ack");
	rt_peer_activate(p);
}

void rt_tx_on_nak(struct rt_peer *p, const struct rt_nak_hdr *n, uint64_t now)
{
	struct rt_ep *ep = p->ep;
	p->last_rx_us = now;
	ep->st.naks_received++;
	if (!p->ring || psn_lt(n->psn, p->snd_una) || !psn_lt(n->psn, p->snd_nxt))
		return; /* stale */
	struct rt_txpkt *t = slot(p, n->psn);
	if ((t->state != TX_INFLIGHT && t->state != TX_LOST) || !t->msg ||
	    t->msg->msg_id != n->msg_id)
		return;
	struct rt_msg *m = t->msg;
	if (n->kind == RT_NAK_RNR) {
		ep->st.rnr_naks++;
		if (!m->rnr_since_us)
			m->rnr_since_us = now;
		if (now - m->rnr_since_us > (uint64_t)ep->ctx->cfg.rnr_timeout_ms * 1000) {
			msg_fail(p, m, RT_WC_RNR_TIMEOUT, now);
			return;
		}
		if (t->state == TX_INFLIGHT) {
			t->state = TX_LOST;
			p->inflight_bytes -= t->len;
			p->inflight_pkts--;
			path_unsent(p, t);
			p->nlost++;
			t->flags |= TXF_UNSENT; /* a re-send after RNR is not a loss retransmit */
		}
		uint64_t d = p->srtt_us > RNR_DELAY_MIN_US ? p->srtt_us : RNR_DELAY_MIN_US;
		t->resend_at = now + d;
		if (psn_lt(n->psn, p->lost_scan))
			p->lost_scan = n->psn;
		return;
	}
	if (m->failed) {
		/* a straggler of an already failed message: make sure it is an abort */
		t->flags |= TXF_ABORT;
		if (t->state == TX_INFLIGHT) {
			t->state = TX_LOST;
			p->inflight_bytes -= t->len;
			p->inflight_pkts--;
			path_unsent(p, t);
			p->nlost++;
		}
		t->resend_at = now;
		if (psn_lt(n->psn, p->lost_scan))
			p->lost_scan = n->psn;
		return;
	}
	msg_fail(p, m, n->status, now);
	p->lost_scan = p->snd_una;
}

/* ------------------------------------------------------------- timers */

void rt_tx_timers(struct rt_peer *p, uint64_t now)
{
	if (p->state != PEER_OK)
		return;
	rt_ctx *ctx = p->ep->ctx;
	if (!rt_peer_has_work(p)) {
		p->last_rx_us = now;
		return;
	}
	if (now > p->last_rx_us && now - p->last_rx_us > (uint64_t)ctx->cfg.timeout_ms * 1000) {
		rt_log(2, "peer %u of endpoint %u silent for %u ms: failing its operations", p->id,
		       p->ep->id, ctx->cfg.timeout_ms);
		rt_peer_fail(p, RT_WC_TIMEOUT);
		return;
	}
	/* RNR: give up on messages the receiver never made room for */
	if (p->nlost) {
		for (struct rt_msg *m = p->live_head; m; m = m->lnext) {
			if (m->rnr_since_us && !m->failed && now > m->rnr_since_us &&
			    now - m->rnr_since_us > (uint64_t)ctx->cfg.rnr_timeout_ms * 1000) {
				msg_fail(p, m, RT_WC_RNR_TIMEOUT, now);
				break; /* list changed */
			}
		}
	}
	if (ctx->npaths > 2)
		rt_path_explore(p, now);
	if (p->inflight_pkts) {
		detect_losses(p, now);
		/* tail loss probe: nothing acknowledged for a while (a lost last
		 * packet cannot trigger RACK): resend the newest packet early */
		uint64_t pto = 2 * (p->tsrtt_us ? p->tsrtt_us : 500);
		if (p->tsrtt_us && p->tsrtt_us + 4 * p->trttvar_us > pto)
			pto = p->tsrtt_us + 4 * p->trttvar_us;
		pto += 200;
		if (pto > p->rto_us)
			pto = p->rto_us; /* a probe never waits longer than the RTO */
		if (!p->tlp_sent && p->inflight_pkts && now >= p->last_progress_us + pto) {
			for (uint32_t psn = p->snd_nxt - 1; psn_le(p->snd_una, psn); psn--) {
				if (slot(p, psn)->state == TX_INFLIGHT) {
					mark_lost(p, psn, false, now);
					p->ep->st.tlp_probes++;
					break;
				}
			}
			p->tlp_sent = 1;
		}
		/* RTO: the oldest outstanding transmission waited too long */
		uint64_t rto = p->rto_us << (p->rto_backoff < 6 ? p->rto_backoff : 6);
		if (rto > ctx->cfg.rto_max_us)
			rto = ctx->cfg.rto_max_us;
		uint64_t oldest = UINT64_MAX;
		for (uint32_t psn = p->snd_una; psn != p->snd_nxt; psn++) {
			struct rt_txpkt *t = slot(p, psn);
			if (t->state == TX_INFLIGHT && t->sent_us < oldest) {
				oldest = t->sent_us;
				if (!(t->flags & TXF_RETX))
					break;
			}
		}
		/* like TCP, the timer restarts whenever an ACK makes progress */
		if (oldest != UINT64_MAX && oldest < p->last_progress_us)
			oldest = p->last_progress_us;
		if (oldest != UINT64_MAX && now >= oldest + rto) {
			p->ep->st.rto_events++;
			uint32_t np = ctx->npaths;
			bool hit[np];
			memset(hit, 0, sizeof(hit));
			for (uint32_t psn = p->snd_una; psn != p->snd_nxt; psn++) {
				struct rt_txpkt *t = slot(p, psn);
				if (t->state == TX_INFLIGHT && now >= t->sent_us + rto / 2) {
					mark_lost(p, psn, true, now);
					p->paths[t->path].timeouts++;
					hit[t->path] = true;
				}
			}
			p->rto_backoff++;
			p->lost_scan = p->snd_una;
			if (rt_cc_per_peer(p))
				p->cc->on_timeout(p->cc_state, now);
			for (uint32_t i = 0; i < np && !rt_cc_per_peer(p); i++)
				if (hit[i])
					p->cc->on_timeout(p->paths[i].cc_state, now);
		}
	}
}

uint64_t rt_tx_next_timer(const struct rt_peer *p, uint64_t now)
{
	rt_ctx *ctx = p->ep->ctx;
	if (p->state != PEER_OK || !rt_peer_has_work(p))
		return now + 100000;
	uint64_t t = p->last_rx_us + (uint64_t)ctx->cfg.timeout_ms * 1000;
	if (p->nlost || p->sq_head) {
		uint64_t d = rt_paths_next_send(p, now);
		if (p->nlost && d > now + RNR_DELAY_MIN_US / 4)
			d = now + RNR_DELAY_MIN_US / 4;
		if (d < t)
			t = d;
	}
	if (p->inflight_pkts) {
		uint64_t d = now + (p->srtt_us ? p->srtt_us / 2 + 20 : 200);
		uint64_t r = now + p->rto_us;
		if (r < d)
			d = r;
		if (d < t)
			t = d;
	}
	return t;
}

/* ------------------------------------------------------------- teardown */

static void fail_all(struct rt_peer *p, uint32_t status)
{
	/* report every live message once, then free everything */
	for (struct rt_msg *m = p->live_head; m; m = m->lnext)
		if (m->state != MSG_DONE)
			rt_msg_complete(m, status);
	while (p->live_head)
		rt_msg_release(p->live_head);
	p->sq_head = p->sq_tail = NULL;
	if (p->ring)
		memset(p->ring, 0, (p->ring_mask + 1) * sizeof(struct rt_txpkt) +
					   (p->ring_mask + 1) / 8);
	p->snd_una = p->snd_nxt;
	p->inflight_bytes = 0;
	p->inflight_pkts = 0;
	p->nlost = 0;
}

void rt_peer_fail(struct rt_peer *p, uint32_t status)
{
	if (p->state == PEER_FAILED)
		return;
	p->state = PEER_FAILED;
	p->fail_status = status;
	fail_all(p, status);
	rt_peer_rx_free(p);
}

void rt_peer_tx_free(struct rt_peer *p)
{
	fail_all(p, RT_WC_FLUSHED);
	free(p->ring);
	p->ring = NULL;
	free(p->resp_wait);
	p->resp_wait = NULL;
}

void rt_tx_unsent(struct rt_peer *p, uint32_t psn)
{
	if (!p->ring || psn_lt(psn, p->snd_una) || !psn_lt(psn, p->snd_nxt))
		return;
	struct rt_txpkt *t = slot(p, psn);
	if (t->state != TX_INFLIGHT)
		return;
	t->state = TX_LOST;
	t->flags |= TXF_UNSENT;
	t->resend_at = 0;
	p->inflight_bytes -= t->len;
	p->inflight_pkts--;
	p->nlost++;
	path_unsent(p, t);
	if (psn_lt(psn, p->lost_scan))
		p->lost_scan = psn;
	p->ep->st.tx_packets--;
	p->ep->st.tx_bytes -= t->flags & TXF_ABORT ? 0 : t->len;
	p->paths[t->path].tx_packets--;
	p->paths[t->path].tx_bytes -= t->flags & TXF_ABORT ? 0 : t->len;
}
