/* SPDX-License-Identifier: Apache-2.0 */
/* Endpoints, peers and the work-request API (rt_post_*). */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define RT_MAX_MSG_LEN (1ull << 40)

int rt_ep_create(rt_ctx *ctx, rt_cq *cq, rt_ep **out)
{
	if (!ctx || !out)
		return rt_seterr(RT_ERR_INVAL, "rt_ep_create: context and output pointer are required");
	if (cq && cq->ctx != ctx)
		return rt_seterr(RT_ERR_INVAL, "rt_ep_create: the completion queue belongs to "
				 "another context");
	bool own = false;
	if (!cq) {
		int r = rt_cq_create(ctx, &cq);
		if (r)
			return r;
		own = true;
	}
	struct rt_ep *ep = calloc(1, sizeof(*ep));
	if (!ep) {
		if (own)
			rt_cq_destroy(cq);
		return rt_seterr(RT_ERR_NOMEM, "rt_ep_create: out of memory");
	}
	ep->ctx = ctx;
	do {
		ep->nonce = rt_random64();
	} while (!ep->nonce);
	pthread_mutex_lock(&ctx->lock);
	if (ctx->destroying) {
		pthread_mutex_unlock(&ctx->lock);
		free(ep);
		if (own)
			rt_cq_destroy(cq);
		return rt_seterr(RT_ERR_CLOSED, "rt_ep_create: context is closing");
	}
	uint32_t slot = 0;
	while (slot < ctx->neps_cap && ctx->eps[slot])
		slot++;
	if (slot == ctx->neps_cap) {
		uint32_t ncap = ctx->neps_cap ? ctx->neps_cap * 2 : 8;
		if (ncap > RT_EP_SLOTS_MAX)
			ncap = ctx->neps_cap < RT_EP_SLOTS_MAX ? RT_EP_SLOTS_MAX : ncap;
		struct rt_ep **n = ncap <= RT_EP_SLOTS_MAX ? realloc(ctx->eps, ncap * sizeof(*n)) : NULL;
		uint16_t *g = n ? realloc(ctx->ep_gen, ncap * sizeof(*g)) : NULL;
		if (n)
			ctx->eps = n;
		if (!g) {
			pthread_mutex_unlock(&ctx->lock);
			free(ep);
			if (own)
				rt_cq_destroy(cq);
			if (ncap > RT_EP_SLOTS_MAX)
				return rt_seterr(RT_ERR_NOMEM, "rt_ep_create: %u endpoints are open "
						 "in this context, the most it can hold", ctx->neps_cap);
			return rt_seterr(RT_ERR_NOMEM, "rt_ep_create: out of memory");
		}
		memset(n + ctx->neps_cap, 0, (ncap - ctx->neps_cap) * sizeof(*n));
		memset(g + ctx->neps_cap, 0, (ncap - ctx->neps_cap) * sizeof(*g));
		ctx->ep_gen = g;
		ctx->neps_cap = ncap;
	}
	/* slot + 1 below, the slot's generation above: an id comes back only
	 * after 32768 more endpoints used its slot, so a stale completion of a
	 * destroyed endpoint is never taken for a newer one's */
	ep->id = ((uint32_t)ctx->ep_gen[slot] << 16) | (slot + 1);
	ep->cq = cq;
	cq->users++;
	cq->owned = own;
	ctx->eps[slot] = ep;
	pthread_mutex_unlock(&ctx->lock);
	*out = ep;
	return RT_OK;
}

static void peer_unlink_active(rt_ctx *ctx, struct rt_peer *p)
{
	if (!p->active)
		return;
	for (struct rt_peer **pp = &ctx->active; *pp; pp = &(*pp)->anext)
		if (*pp == p) {
			*pp = p->anext;
			break;
		}
	p->active = false;
}

void rt_ep_destroy(rt_ep *ep)
{
	if (!ep)
		return;
	rt_ctx *ctx = ep->ctx;
	pthread_mutex_lock(&ctx->lock);
	/* an ACK held for a reply that will never come goes out now, or the
	 * peer's last send would time out */
	uint64_t now = rt_now_us() > ctx->now_us ? rt_now_us() : ctx->now_us;
	rt_rx_deferred(ctx, now);
	for (uint32_t i = 0; i < ep->npeers; i++)
		if (ep->peers[i]->state == PEER_OK)
			rt_rx_ack_now(ep->peers[i], now, -1);
	rt_io_flush(ctx, now);
	ep->closing = true;
	for (uint32_t i = 0; i < ep->npeers; i++) {
		struct rt_peer *p = ep->peers[i];
		peer_unlink_active(ctx, p);
		rt_peer_tx_free(p); /* flushes messages with RT_WC_FLUSHED */
		rt_peer_rx_free(p);
		free(p->paths);
		free(p);
	}
	free(ep->peers);
	while (ep->rq_head) {
		struct rt_recv_wr *w = ep->rq_head;
		ep->rq_head = w->next;
		rt_ep_complete(ep, w->wr_id, RT_OP_RECV, RT_WC_FLUSHED, 0, RT_PEER_NONE, false, 0);
		w->mr->inflight--;
		free(w);
	}
	uint32_t slot = (ep->id & 0xFFFFu) - 1;
	ctx->eps[slot] = NULL;
	ctx->ep_gen[slot] = (uint16_t)(((ep->id >> 16) + 1) & 0x7FFFu);
	struct rt_cq *cq = ep->cq;
	cq->users--;
	bool own = cq->owned && cq->users == 0;
	pthread_mutex_unlock(&ctx->lock);
	if (own)
		rt_cq_destroy(cq);
	free(ep);
}

rt_cq *rt_ep_cq(rt_ep *ep) { return ep ? ep->cq : NULL; }
uint32_t rt_ep_id(const rt_ep *ep) { return ep ? ep->id : 0; }

int rt_ep_address(const rt_ep *ep, void *buf, size_t buflen)
{
	if (!ep || !buf)
		return rt_seterr(RT_ERR_INVAL, "rt_ep_address: endpoint and buffer are required");
	if (buflen < RT_ADDR_SIZE)
		return rt_seterr(RT_ERR_INVAL, "rt_ep_address: buffer of %zu bytes is too small; "
				 "need %d", buflen, RT_ADDR_SIZE);
	struct rt_wire_addr a = {
		.port = ep->ctx->io.ports[0],
		.ip4 = ntohl(ep->ctx->io.local[0].sin_addr.s_addr),
		.ep_id = ep->id,
		.nonce = ep->nonce,
	};
	rt_addr_encode(buf, &a);
	return RT_OK;
}

static uint32_t peer_bucket(uint32_t remote_ep, uint64_t nonce)
{
	return (uint32_t)((nonce ^ remote_ep) * 0x9E3779B97F4A7C15ull >> 56) & (RT_PEER_HASH - 1);
}

struct rt_peer *rt_ep_find_peer(struct rt_ep *ep, uint32_t remote_ep, uint64_t nonce)
{
	struct rt_peer *p = ep->last_peer;
	if (p && p->remote_nonce == nonce && p->remote_ep == remote_ep)
		return p;
	for (p = ep->phash[peer_bucket(remote_ep, nonce)]; p; p = p->hnext)
		if (p->remote_nonce == nonce && p->remote_ep == remote_ep) {
			ep->last_peer = p;
			return p;
		}
	return NULL;
}

struct rt_peer *rt_ep_add_peer(struct rt_ep *ep, const struct sockaddr_in *addr,
			       uint32_t remote_ep, uint64_t nonce)
{
	if (ep->npeers == ep->peers_cap) {
		uint32_t ncap = ep->peers_cap ? ep->peers_cap * 2 : 8;
		struct rt_peer **n = realloc(ep->peers, ncap * sizeof(*n));
		if (!n)
			return NULL;
		ep->peers = n;
		ep->peers_cap = ncap;
	}
	struct rt_peer *p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->ep = ep;
	p->id = ep->npeers;
	p->addr = *addr;
	p->remote_ep = remote_ep;
	p->remote_nonce = nonce;
	uint64_t now = ep->ctx->now_us ? ep->ctx->now_us : rt_now_us();
	rt_peer_init_tx(p, now);
	if (rt_paths_init(p, now) != 0) {
		free(p);
		return NULL;
	}
	uint32_t b = peer_bucket(remote_ep, nonce);
	p->hnext = ep->phash[b];
	ep->phash[b] = p;
	ep->peers[ep->npeers++] = p;
	ep->st.peers++;
	return p;
}

void rt_peer_activate(struct rt_peer *p)
{
	if (p->active)
		return;
	rt_ctx *ctx = p->ep->ctx;
	p->active = true;
	p->anext = ctx->active;
	ctx->active = p;
}

int rt_ep_connect(rt_ep *ep, const void *addr, size_t len, rt_peer_t *out)
{
	if (!ep || !addr || !out)
		return rt_seterr(RT_ERR_INVAL, "rt_ep_connect: endpoint, address and output required");
	struct rt_wire_addr a;
	if (rt_addr_decode(addr, len, &a) != 0)
		return rt_seterr(RT_ERR_ADDR, "rt_ep_connect: not an rtransport endpoint address "
				 "(expected the %d bytes of Endpoint.address, got %zu)", RT_ADDR_SIZE, len);
	struct sockaddr_in sa;
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons(a.port);
	sa.sin_addr.s_addr = htonl(a.ip4 ? a.ip4 : INADDR_LOOPBACK);
	pthread_mutex_lock(&ep->ctx->lock);
	if (ep->closing) {
		pthread_mutex_unlock(&ep->ctx->lock);
		return rt_seterr(RT_ERR_CLOSED, "rt_ep_connect: endpoint is closed");
	}
	struct rt_peer *p = rt_ep_find_peer(ep, a.ep_id, a.nonce);
	if (!p)
		p = rt_ep_add_peer(ep, &sa, a.ep_id, a.nonce);
	pthread_mutex_unlock(&ep->ctx->lock);
	if (!p)
		return rt_seterr(RT_ERR_NOMEM, "rt_ep_connect: out of memory");
	*out = p->id;
	return RT_OK;
}

int rt_ep_peer_address(rt_ep *ep, rt_peer_t peer, void *buf, size_t buflen)
{
	if (!ep || !buf || buflen < RT_ADDR_SIZE)
		return rt_seterr(RT_ERR_INVAL, "rt_ep_peer_address: endpoint and a %d-byte buffer "
				 "are required", RT_ADDR_SIZE);
	pthread_mutex_lock(&ep->ctx->lock);
	if (peer >= ep->npeers) {
		pthread_mutex_unlock(&ep->ctx->lock);
		return rt_seterr(RT_ERR_PEER, "rt_ep_peer_address: unknown peer %u", peer);
	}
	struct rt_peer *p = ep->peers[peer];
	struct rt_wire_addr a = {
		.port = ntohs(p->addr.sin_port),
		.ip4 = ntohl(p->addr.sin_addr.s_addr),
		.ep_id = p->remote_ep,
		.nonce = p->remote_nonce,
	};
	pthread_mutex_unlock(&ep->ctx->lock);
	rt_addr_encode(buf, &a);
	return RT_OK;
}

void rt_ep_complete(struct rt_ep *ep, uint64_t wr_id, uint32_t opcode, uint32_t status,
		    uint64_t byte_len, uint32_t peer, bool has_imm, uint32_t imm)
{
	rt_place_fence(ep->ctx); /* the completion must not overtake its data */
	struct rt_wc wc = {
		.wr_id = wr_id,
		.byte_len = byte_len,
		.opcode = opcode,
		.status = status,
		.imm = has_imm ? imm : 0,
		.flags = has_imm ? RT_WC_FLAG_IMM : 0,
		.peer = peer,
		.ep_id = ep->id,
	};
	rt_cq_push(ep->cq, &wc);
}

/* ------------------------------------------------------------- posting */

static int check_local(const char *fn, rt_ep *ep, rt_mr *mr, uint64_t off, uint64_t len,
		       bool need_write)
{
	if (!mr)
		return rt_seterr(RT_ERR_INVAL, "%s: memory region is NULL", fn);
	if (mr->ctx != ep->ctx)
		return rt_seterr(RT_ERR_INVAL, "%s: the memory region was registered with another "
				 "context", fn);
	if (off > mr->len || len > mr->len - off)
		return rt_seterr(RT_ERR_BOUNDS, "%s: offset %llu + length %llu exceeds the region "
				 "(%llu bytes)", fn, (unsigned long long)off,
				 (unsigned long long)len, (unsigned long long)mr->len);
	if (need_write && !(mr->access & RT_ACCESS_LOCAL_WRITE))
		return rt_seterr(RT_ERR_ACCESS, "%s: the region must be registered with "
				 "LOCAL_WRITE access to receive data", fn);
	if (len > RT_MAX_MSG_LEN)
		return rt_seterr(RT_ERR_INVAL, "%s: length %llu exceeds the 1 TiB message limit", fn,
				 (unsigned long long)len);
	return RT_OK;
}

/* Lock the context and resolve the peer; on success the lock stays held. */
static int lock_peer(const char *fn, rt_ep *ep, rt_peer_t peer, struct rt_peer **out)
{
	pthread_mutex_lock(&ep->ctx->lock);
	if (ep->closing || ep->ctx->destroying) {
		pthread_mutex_unlock(&ep->ctx->lock);
		return rt_seterr(RT_ERR_CLOSED, "%s: endpoint is closed", fn);
	}
	if (peer >= ep->npeers) {
		pthread_mutex_unlock(&ep->ctx->lock);
		return rt_seterr(RT_ERR_PEER, "%s: unknown peer handle %u (use rt_ep_connect)", fn,
				 peer);
	}
	*out = ep->peers[peer];
	return RT_OK;
}

static int submit(struct rt_peer *p, struct rt_msg *m)
{
	rt_ctx *ctx = p->ep->ctx;
	if (p->state == PEER_FAILED) {
		rt_ep_complete(p->ep, m->wr_id, m->user_op, RT_WC_PEER_FAILED, 0, p->id, false, 0);
		free(m);
		pthread_mutex_unlock(&ctx->lock);
		return RT_OK;
	}
	if (m->mr)
		m->mr->inflight++;
	uint64_t now = rt_now_us();
	if (now < ctx->now_us)
		now = ctx->now_us;
	ctx->now_us = now;
	rt_tx_enqueue(p, m);
	rt_tx_push(p, now);
	/* a held ACK rides along on the path the data just used */
	rt_rx_ack_now(p, now, p->batch_path);
	rt_io_flush(ctx, now);
	if (ctx->rx_defer_len) {
		rt_rx_deferred(ctx, now);
		rt_tx_push(p, now); /* whatever that ACK let out */
		rt_io_flush(ctx, now);
	}
	pthread_mutex_unlock(&ctx->lock);
	rt_engine_kick(ctx);
	return RT_OK;
}

static struct rt_msg *msg_new(uint64_t wr_id, uint8_t op, uint8_t user_op)
{
	struct rt_msg *m = calloc(1, sizeof(*m));
	if (m) {
		m->wr_id = wr_id;
		m->op = op;
		m->user_op = user_op;
	}
	return m;
}

int rt_post_recv(rt_ep *ep, rt_mr *mr, uint64_t offset, uint64_t len, uint64_t wr_id)
{
	if (!ep)
		return rt_seterr(RT_ERR_INVAL, "rt_post_recv: endpoint is NULL");
	int r = check_local("rt_post_recv", ep, mr, offset, len, true);
	if (r)
		return r;
	struct rt_recv_wr *w = calloc(1, sizeof(*w));
	if (!w)
		return rt_seterr(RT_ERR_NOMEM, "rt_post_recv: out of memory");
	w->mr = mr;
	w->off = offset;
	w->len = len;
	w->wr_id = wr_id;
	pthread_mutex_lock(&ep->ctx->lock);
	if (ep->closing) {
		pthread_mutex_unlock(&ep->ctx->lock);
		free(w);
		return rt_seterr(RT_ERR_CLOSED, "rt_post_recv: endpoint is closed");
	}
	mr->inflight++;
	if (ep->rq_tail)
		ep->rq_tail->next = w;
	else
		ep->rq_head = w;
	ep->rq_tail = w;
	ep->rq_len++;
	pthread_mutex_unlock(&ep->ctx->lock);
	return RT_OK;
}

int rt_post_send(rt_ep *ep, rt_peer_t peer, rt_mr *mr, uint64_t offset, uint64_t len,
		 uint64_t wr_id)
{
	if (!ep)
		return rt_seterr(RT_ERR_INVAL, "rt_post_send: endpoint is NULL");
	int r = check_local("rt_post_send", ep, mr, offset, len, false);
	if (r)
		return r;
	struct rt_msg *m = msg_new(wr_id, RT_WOP_SEND, RT_OP_SEND);
	if (!m)
		return rt_seterr(RT_ERR_NOMEM, "rt_post_send: out of memory");
	m->mr = mr;
	m->src = mr->addr + offset;
	m->loff = offset;
	m->len = m->user_len = len;
	struct rt_peer *p;
	if ((r = lock_peer("rt_post_send", ep, peer, &p))) {
		free(m);
		return r;
	}
	return submit(p, m);
}

static int decode_remote(const char *fn, const void *rdesc, size_t rlen, struct rt_wire_desc *d)
{
	if (!rdesc || rt_desc_decode(rdesc, rlen, d) != 0)
		return rt_seterr(RT_ERR_ADDR, "%s: remote is not a memory-region descriptor (expected "
				 "the %d bytes of MemoryRegion.descriptor(), got %zu)", fn,
				 RT_MR_DESC_SIZE, rdesc ? rlen : 0);
	return RT_OK;
}

int rt_post_write(rt_ep *ep, rt_peer_t peer, rt_mr *mr, uint64_t offset, uint64_t len,
		  const void *rdesc, size_t rdesc_len, uint64_t roffset, int has_imm, uint32_t imm,
		  uint64_t wr_id)
{
	if (!ep)
		return rt_seterr(RT_ERR_INVAL, "rt_post_write: endpoint is NULL");
	int r = check_local("rt_post_write", ep, mr, offset, len, false);
	if (r)
		return r;
	struct rt_wire_desc d;
	if ((r = decode_remote("rt_post_write", rdesc, rdesc_len, &d)))
		return r;
	struct rt_msg *m = msg_new(wr_id, RT_WOP_WRITE, RT_OP_WRITE);
	if (!m)
		return rt_seterr(RT_ERR_NOMEM, "rt_post_write: out of memory");
	m->mr = mr;
	m->src = mr->addr + offset;
	m->loff = offset;
	m->len = m->user_len = len;
	m->rkey = d.rkey;
	m->raddr = roffset;
	m->has_imm = has_imm != 0;
	m->imm = imm;
	struct rt_peer *p;
	if ((r = lock_peer("rt_post_write", ep, peer, &p))) {
		free(m);
		return r;
	}
	return submit(p, m);
}

int rt_post_read(rt_ep *ep, rt_peer_t peer, rt_mr *mr, uint64_t offset, uint64_t len,
		 const void *rdesc, size_t rdesc_len, uint64_t roffset, uint64_t wr_id)
{
	if (!ep)
		return rt_seterr(RT_ERR_INVAL, "rt_post_read: endpoint is NULL");
	int r = check_local("rt_post_read", ep, mr, offset, len, true);
	if (r)
		return r;
	struct rt_wire_desc d;
	if ((r = decode_remote("rt_post_read", rdesc, rdesc_len, &d)))
		return r;
	struct rt_msg *m = msg_new(wr_id, RT_WOP_READ_REQ, RT_OP_READ);
	if (!m)
		return rt_seterr(RT_ERR_NOMEM, "rt_post_read: out of memory");
	m->mr = mr;
	m->loff = offset;
	m->len = m->user_len = len; /* msg_len of a READ_REQ is the requested length */
	m->rkey = d.rkey;
	m->raddr = roffset;
	struct rt_peer *p;
	if ((r = lock_peer("rt_post_read", ep, peer, &p))) {
		free(m);
		return r;
	}
	return submit(p, m);
}

int rt_post_atomic(rt_ep *ep, rt_peer_t peer, rt_mr *mr, uint64_t offset, const void *rdesc,
		   size_t rdesc_len, uint64_t roffset, uint32_t op, uint64_t operand1,
		   uint64_t operand2, uint64_t wr_id)
{
	if (!ep)
		return rt_seterr(RT_ERR_INVAL, "rt_post_atomic: endpoint is NULL");
	if (op != RT_OP_ATOMIC_FETCH_ADD && op != RT_OP_ATOMIC_CMP_SWAP)
		return rt_seterr(RT_ERR_INVAL, "rt_post_atomic: op must be RT_OP_ATOMIC_FETCH_ADD or "
				 "RT_OP_ATOMIC_CMP_SWAP, got %u", op);
	int r = check_local("rt_post_atomic", ep, mr, offset, 8, true);
	if (r)
		return r;
	struct rt_wire_desc d;
	if ((r = decode_remote("rt_post_atomic", rdesc, rdesc_len, &d)))
		return r;
	struct rt_msg *m = msg_new(wr_id, RT_WOP_ATOMIC_REQ, (uint8_t)op);
	if (!m)
		return rt_seterr(RT_ERR_NOMEM, "rt_post_atomic: out of memory");
	m->mr = mr;
	m->loff = offset;
	m->user_len = 8;
	m->len = RT_ATOMIC_REQ_PAYLOAD;
	m->aux = op;
	m->rkey = d.rkey;
	m->raddr = roffset;
	rt_put64(m->inline_buf, operand1);
	rt_put64(m->inline_buf + 8, operand2);
	m->src = m->inline_buf;
	struct rt_peer *p;
	if ((r = lock_peer("rt_post_atomic", ep, peer, &p))) {
		free(m);
		return r;
	}
	return submit(p, m);
}

int rt_ep_stats(rt_ep *ep, struct rt_ep_stats *out, size_t size)
{
	if (!ep || !out)
		return rt_seterr(RT_ERR_INVAL, "rt_ep_stats: endpoint and output are required");
	if (rt_check_size("rt_ep_stats", "rt_ep_stats", size, RT_EP_STATS_SIZE_0_2))
		return RT_ERR_INVAL;
	struct rt_ep_stats tmp, *st = &tmp;
	pthread_mutex_lock(&ep->ctx->lock);
	*st = ep->st;
	st->min_rtt_us = 0;
	for (uint32_t i = 0; i < ep->npeers; i++) {
		struct rt_peer *p = ep->peers[i];
		if (p->srtt_us > st->srtt_us) {
			st->srtt_us = p->srtt_us;
			st->rttvar_us = p->rttvar_us;
		}
		if (p->min_rtt_us && p->min_rtt_us != UINT64_MAX &&
		    (!st->min_rtt_us || p->min_rtt_us < st->min_rtt_us))
			st->min_rtt_us = p->min_rtt_us;
		for (uint32_t k = 0; k < ep->ctx->npaths; k++) {
			st->cwnd_bytes += rt_path_cwnd(p, (uint16_t)k);
			if (rt_cc_per_peer(p))
				break; /* one window for all paths */
		}
		st->inflight_bytes += p->inflight_bytes;
		st->peers_failed += p->state == PEER_FAILED;
	}
	pthread_mutex_unlock(&ep->ctx->lock);
	rt_copy_out(out, size, st, sizeof(*st));
	return RT_OK;
}

int rt_ep_path_stats(rt_ep *ep, struct rt_path_stats *ps, int n, size_t entry_size)
{
	if (!ep || (n > 0 && !ps) || n < 0)
		return rt_seterr(RT_ERR_INVAL, "rt_ep_path_stats: endpoint and output are required");
	if (n > 0 && rt_check_size("rt_ep_path_stats", "rt_path_stats", entry_size,
				   RT_PATH_STATS_SIZE_0_2))
		return RT_ERR_INVAL;
	int k = n < RT_MAX_PATHS ? n : RT_MAX_PATHS;
	struct rt_path_stats *tmp = k ? calloc((size_t)k, sizeof(*tmp)) : NULL;
	if (k && !tmp)
		return rt_seterr(RT_ERR_NOMEM, "rt_ep_path_stats: out of memory");
	pthread_mutex_lock(&ep->ctx->lock);
	int np = (int)ep->ctx->npaths;
	if (k > np)
		k = np;
	rt_path_stats_fill(ep, tmp, k);
	pthread_mutex_unlock(&ep->ctx->lock);
	for (int i = 0; i < k; i++)
		rt_copy_out((uint8_t *)ps + (size_t)i * entry_size, entry_size, &tmp[i], sizeof(tmp[i]));
	free(tmp);
	return np;
}
