/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Deterministic fault injection, applied to every received datagram
 * before the protocol sees it (the kernel here has no netem).  A seeded
 * xoshiro256** generator decides, per datagram (a bundle of packets is
 * one datagram, as on a network) and in order: drop,
 * corrupt (flip one byte), duplicate, delay or reorder.  Delayed and
 * reordered packets are copied and released by the engine later, which
 * reorders them relative to the packets that follow.  The same seed and
 * the same arrival order give the same decisions.  Before that, an ECMP
 * model (fault_routes, fault_dead_routes) drops every datagram whose
 * source address and port hash onto a dead route: a blackholed spine.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t xnext(struct rt_fault *f)
{
	uint64_t *s = f->s;
	uint64_t r = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return r;
}

static double xuniform(struct rt_fault *f) { return (double)(xnext(f) >> 11) * 0x1.0p-53; }

void rt_fault_init(struct rt_fault *f, const struct rt_config *cfg)
{
	memset(f, 0, sizeof(*f));
	f->drop = cfg->fault_drop;
	f->dup = cfg->fault_dup;
	f->reorder = cfg->fault_reorder;
	f->delay = cfg->fault_delay;
	f->corrupt = cfg->fault_corrupt;
	f->delay_us = cfg->fault_delay_us;
	f->routes = cfg->fault_routes;
	f->dead_routes = f->routes ? cfg->fault_dead_routes : 0;
	f->enabled = f->drop > 0 || f->dup > 0 || f->reorder > 0 || f->delay > 0 || f->corrupt > 0 ||
		     f->dead_routes;
	uint64_t z = cfg->fault_seed;
	for (int i = 0; i < 4; i++) { /* splitmix64 seeding */
		z += 0x9E3779B97F4A7C15ull;
		uint64_t x = z;
		x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
		x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
		f->s[i] = x ^ (x >> 31);
	}
}

void rt_fault_free(struct rt_fault *f)
{
	while (f->held) {
		struct rt_fault_pkt *n = f->held->next;
		free(f->held);
		f->held = n;
	}
	f->nheld = 0;
	f->held_bytes = 0;
}

static void hold(struct rt_fault *f, const uint8_t *pkt, uint32_t len,
		 const struct sockaddr_in *from, uint8_t tos, uint64_t release)
{
	if (f->nheld >= 65536 || f->held_bytes + len > (64u << 20))
		return; /* bounded memory (64 MiB): behave like a drop */
	struct rt_fault_pkt *h = malloc(sizeof(*h) + len);
	if (!h)
		return;
	h->release_us = release;
	h->from = *from;
	h->tos = tos;
	h->len = len;
	memcpy(h->data, pkt, len);
	struct rt_fault_pkt **pp = &f->held;
	while (*pp && (*pp)->release_us <= release)
		pp = &(*pp)->next;
	h->next = *pp;
	*pp = h;
	f->nheld++;
	f->held_bytes += len;
}

/*
 * fault_route() - the route an ECMP switch would give a datagram from
 * @from (source address and port; the destination is this context): a
 * fixed 64-bit mix modulo f->routes.  A new source port is a new draw.
 */
static uint32_t fault_route(const struct rt_fault *f, const struct sockaddr_in *from)
{
	uint64_t x = ((uint64_t)ntohl(from->sin_addr.s_addr) << 16) ^ ntohs(from->sin_port);
	x ^= x >> 33;
	x *= 0xFF51AFD7ED558CCDull;
	x ^= x >> 33;
	x *= 0xC4CEB9FE1A85EC53ull;
	x ^= x >> 33;
	return f->routes ? (uint32_t)(x % f->routes) : 0;
}

/* Count an injected fault against the endpoint the packet is addressed to. */
static struct rt_ep_stats *stats_for(rt_ctx *ctx, const uint8_t *pkt, uint32_t len)
{
	if (len < RT_HDR_SIZE)
		return NULL;
	struct rt_ep *ep = rt_ep_by_id(ctx, rt_get32(pkt + 8));
	return ep ? &ep->st : NULL;
}

void rt_fault_input(rt_ctx *ctx, uint8_t *pkt, uint32_t len, const struct sockaddr_in *from,
		    uint8_t tos, uint64_t rx_ts, uint64_t now)
{
	struct rt_fault *f = &ctx->fault;
	struct rt_ep_stats *st = stats_for(ctx, pkt, len);
	if (f->dead_routes && (f->dead_routes >> fault_route(f, from)) & 1) {
		if (st)
			st->fault_drops++; /* a dead route: no random draw */
		return;
	}
	/* draw every decision for every packet so schedules stay aligned */
	double u_drop = xuniform(f), u_cor = xuniform(f), u_dup = xuniform(f);
	double u_del = xuniform(f), u_reo = xuniform(f);
	uint64_t r = xnext(f);
	if (u_drop < f->drop) {
		if (st)
			st->fault_drops++;
		return;
	}
	if (u_cor < f->corrupt && len) {
		pkt[r % len] ^= (uint8_t)(1u << ((r >> 32) & 7));
		if (st)
			st->fault_corrupts++;
	}
	if (u_dup < f->dup) {
		hold(f, pkt, len, from, tos, now + (r >> 40) % (f->delay_us + 1));
		if (st)
			st->fault_dups++;
	}
	if (u_del < f->delay) {
		hold(f, pkt, len, from, tos, now + f->delay_us);
		if (st)
			st->fault_delays++;
		return;
	}
	if (u_reo < f->reorder) {
		/* released after a random part of the delay: later packets overtake it */
		hold(f, pkt, len, from, tos, now + 1 + (r >> 20) % (f->delay_us + 1));
		if (st)
			st->fault_reorders++;
		return;
	}
	rt_rx_datagram(ctx, pkt, len, from, tos, rx_ts, now);
}

int rt_fault_release(rt_ctx *ctx, uint64_t now)
{
	struct rt_fault *f = &ctx->fault;
	int n = 0;
	while (f->held && f->held->release_us <= now) {
		struct rt_fault_pkt *h = f->held;
		f->held = h->next;
		f->nheld--;
		f->held_bytes -= h->len;
		rt_rx_datagram(ctx, h->data, h->len, &h->from, h->tos, now, now);
		free(h);
		n++;
	}
	rt_place_fence(ctx); /* as at the end of a receive batch (rt_io_recv) */
	return n;
}

uint64_t rt_fault_next_us(const struct rt_fault *f)
{
	return f->held ? f->held->release_us : UINT64_MAX;
}
