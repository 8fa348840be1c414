/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Paths: one per (local address, UDP source port).  ECMP switches hash
 * the 5-tuple, so each path is a (probably) different route.  Packets are
 * sprayed round-robin over healthy paths; a path that loses several
 * packets in a row (or times out) is quarantined for a while and then
 * probed again, with exponential back-off while it keeps failing.
 */
#include <arpa/inet.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define QUARANTINE_AFTER 3          /* consecutive losses */
#define QUARANTINE_BASE_US 20000    /* first quarantine: 20 ms */
#define QUARANTINE_MAX_SHIFT 5      /* up to 640 ms */
/* Repath only on the second quarantine in a row.  Moving a path at its
 * first quarantine was measured to halve goodput under 1 % random loss
 * on every spine (fabric_bench loss: 3.3 -> 1.1-1.7 Gbit/s): random loss
 * quarantines the paths that send the most, which are the ones on the
 * least loaded spines, so those paths were moved away from the best
 * routes.  A dead route fails again right after probation. */
#define REPATH_AFTER_STREAK 2

/* The initial window of a peer whose paths each have their own (path
 * scope), all paths together.  Measured on the incast of issue 3 (three
 * senders onto a 1 Gbit/s host link): starting each of 16 paths at one
 * jumbo MSS (142 KB a peer) queued 1.9 ms at the bottleneck for about
 * 100 ms, which alone made the transfer's p99 queueing delay 650-720 us;
 * 32 KB a peer gave 360 us, while the 1 Gbit/s-spine spray, the unlimited
 * fabric and loopback bulk bandwidth were unchanged within their noise
 * (the window grows by additive increase from there; docs/benchmarks.md). */
#define RT_PATHS_INIT_BYTES (32u << 10)

/* A path-scope peer's smallest window, all paths together: one MSS over
 * this.  See "The pool" below and docs/benchmarks.md (incast). */
#define RT_POOL_FLOOR_DIV 16u

int rt_paths_init(struct rt_peer *p, uint64_t now)
{
	rt_ctx *ctx = p->ep->ctx;
	uint32_t n = ctx->npaths ? ctx->npaths : 1;
	p->paths = calloc(n, sizeof(*p->paths));
	if (!p->paths)
		return -1;
	/* every path is a flow with its own window, starting with room for
	 * one full spray unit (a GSO batch), so batching works from the start */
	uint64_t mss = ctx->max_payload;
	uint64_t init = RT_GSO_MAX_BYTES;
	if (init > ctx->cfg.max_inflight_bytes)
		init = ctx->cfg.max_inflight_bytes;
	if (init < mss)
		init = mss;
	struct rt_cc_params cp = {
		.mss = (uint32_t)mss,
		.target_delay_us = ctx->cfg.cc_target_delay_us,
		.init_cwnd_bytes = init,
		.min_cwnd_bytes = mss,
		.max_cwnd_bytes = ctx->cfg.max_inflight_bytes,
	};
	if (!rt_cc_per_peer(p) && n > 1) {
		/* sub-MSS windows pool (path_open()); the pool may fall to
		 * 1/RT_POOL_FLOOR_DIV of an MSS, one packet that often per RTT */
		cp.min_cwnd_bytes = mss / n / RT_POOL_FLOOR_DIV;
		if (!cp.min_cwnd_bytes)
			cp.min_cwnd_bytes = 1;
	}
	if (rt_cc_per_peer(p)) {
		/* one window for the peer: room for two spray units to start */
		cp.init_cwnd_bytes = 2 * init < ctx->cfg.max_inflight_bytes ?
					     2 * init : ctx->cfg.max_inflight_bytes;
		p->cc->init(p->cc_state, &cp, now);
	} else {
		/* together the paths start with RT_PATHS_INIT_BYTES, not a
		 * spray unit each: an incast of several peers would otherwise
		 * begin with megabytes queued at the bottleneck.  Each path's
		 * floor is mss/n/RT_POOL_FLOOR_DIV, so the peer's is a
		 * sixteenth of an MSS; paths below one MSS pool their windows
		 * (path_open()). */
		cp.init_cwnd_bytes = RT_PATHS_INIT_BYTES / n > cp.min_cwnd_bytes ?
					     RT_PATHS_INIT_BYTES / n : cp.min_cwnd_bytes;
		for (uint32_t i = 0; i < n; i++)
			p->cc->init(p->paths[i].cc_state, &cp, now);
	}
	return 0;
}

uint64_t rt_path_cwnd(const struct rt_peer *p, uint16_t path)
{
	return p->cc->cwnd_bytes(rt_cc_state((struct rt_peer *)p, path));
}

/* A quarantined path whose time is up becomes usable again, on probation:
 * one more loss puts it straight back. */
static bool path_usable(struct rt_path_state *ps, uint64_t now)
{
	if (ps->quarantined && ps->quarantine_until <= now) {
		ps->quarantined = false;
		ps->consec_bad = QUARANTINE_AFTER - 1;
	}
	return !ps->quarantined;
}

/*
 * A path is open when its pacer allows and its window has room.  With GSO
 * spray units, a busy path also waits until the room is worth a batch
 * (a full unit, or half its window if that is smaller), like TCP's TSO
 * deferral: ACK clocking would otherwise cut the flow into tiny bursts
 * and each of them costs a system call and a trip through the stack.
 */
/* window_shut() - the window, not time, keeps a flow with packets in
 * flight from sending: it is full, or its room is not yet worth a batch. */
static bool window_shut(const struct rt_peer *p, uint64_t inflight_bytes, uint64_t w)
{
	if (inflight_bytes >= w)
		return true; /* window full */
	if (p->ep->ctx->cfg.spray_unit == 0 && p->ep->ctx->io.gso) {
		uint64_t want = w / 2 < RT_GSO_MAX_BYTES ? w / 2 : RT_GSO_MAX_BYTES;
		if (w - inflight_bytes < want)
			return true;
	}
	return false;
}

static bool flow_open(const struct rt_peer *p, uint64_t pace_next_us, bool idle,
		      uint64_t inflight_bytes, uint64_t w, uint64_t now)
{
	if (pace_next_us > now)
		return false;
	return idle || !window_shut(p, inflight_bytes, w);
}

/*
 * The pool.  A path's window may shrink below one MSS (to mss/n/16, so the
 * peer's floor is a sixteenth of an MSS, not n MSS): when n path flows
 * share one bottleneck - an incast onto a host link - n one-MSS floors per
 * sender would be a standing queue no controller can drain.  A path's own
 * sub-MSS window cannot clock packets (each path would be paced to one
 * packet per many RTTs, on timers this host keeps late), so the sub-MSS
 * paths of a peer pool their windows: together they may have as many bytes
 * in flight as their windows add up to, one packet per path at a time,
 * sent as ACKs free room.  While the pool's sum is under one MSS it sends
 * one packet at a time, paced to that sum per smoothed RTT
 * (rt_pool_sent()): Swift's fractional window, for the peer as a whole.
 * Each path still grows and shrinks its share from its own RTT samples,
 * so a path behind a longer queue gets less of the pool.
 */
struct pool {
	bool summed;  /* win and inflight are filled in (pool_get()) */
	uint64_t win, inflight, mss;
};

bool rt_path_pooled(const struct rt_peer *p, uint16_t path)
{
	return !rt_cc_per_peer(p) && rt_path_cwnd(p, path) < p->ep->ctx->max_payload;
}

static void pool_sums(const struct rt_peer *p, struct pool *pl)
{
	pl->summed = true;
	pl->win = pl->inflight = 0;
	pl->mss = p->ep->ctx->max_payload;
	for (uint32_t i = 0; i < p->ep->ctx->npaths; i++) {
		const struct rt_path_state *ps = &p->paths[i];
		if (!ps->quarantined && rt_path_pooled(p, (uint16_t)i)) {
			pl->win += rt_path_cwnd(p, (uint16_t)i);
			pl->inflight += ps->inflight_bytes;
		}
	}
}

/* pool_get() - @pl summed on first use: a peer whose paths all have a
 * window of an MSS or more (any fast transfer) never pays for it. */
static const struct pool *pool_get(const struct rt_peer *p, struct pool *pl)
{
	if (!pl->summed)
		pool_sums(p, pl);
	return pl;
}

static bool pool_room(const struct rt_peer *p, const struct pool *pl, uint64_t now)
{
	if (pl->win >= pl->mss)
		return pl->inflight < pl->win;
	/* under one MSS: one packet at a time, paced (rt_pool_sent()) */
	return !pl->inflight && now >= p->pool_next_us;
}

/**
 * rt_pool_sent() - a path in @p's pool sent @bytes at @now.
 *
 * While the pool's windows add up to less than one MSS, the next pool
 * packet may leave only after bytes * srtt / sum (the sum's rate), at most
 * timeout_ms / 8; at one MSS or more the pool is clocked by ACKs alone and
 * this does nothing.
 */
void rt_pool_sent(struct rt_peer *p, uint32_t bytes, uint64_t now)
{
	struct pool pl;
	pool_sums(p, &pl);
	if (pl.win && pl.win < pl.mss && p->srtt_us) {
		uint64_t gap = (uint64_t)bytes * p->srtt_us / pl.win;
		/* a peer with work that hears nothing for timeout_ms fails:
		 * never let the pacer alone come near that (a floor window
		 * after RTOs, with a long srtt, would ask for seconds) */
		uint64_t cap = (uint64_t)p->ep->ctx->cfg.timeout_ms * 1000 / 8;
		p->pool_next_us = now + (gap < cap ? gap : cap);
	}
}

/* The pool's window for flow scaling and additive increase: at least one
 * MSS, so that a pool below one MSS does not raise its own target delay
 * towards 2x (measured: the incast queue is lower this way). */
uint64_t rt_path_pool_cwnd(const struct rt_peer *p)
{
	struct pool pl;
	pool_sums(p, &pl);
	return pl.win > pl.mss ? pl.win : pl.mss;
}

static bool path_open(struct rt_peer *p, uint32_t i, uint64_t now, struct pool *pl)
{
	const struct rt_path_state *ps = &p->paths[i];
	if (rt_cc_per_peer(p))
		return true; /* the peer's window and pacer decide */
	if (rt_path_pooled(p, (uint16_t)i)) {
		if (ps->inflight)
			return false;
		if (!pl->summed) /* release expired quarantines before summing */
			for (uint32_t k = 0; k < p->ep->ctx->npaths; k++)
				path_usable(&p->paths[k], now);
		return pool_room(p, pool_get(p, pl), now);
	}
	return flow_open(p, ps->pace_next_us, !ps->inflight, ps->inflight_bytes,
			 rt_path_cwnd(p, (uint16_t)i), now);
}

static bool peer_open(const struct rt_peer *p, uint64_t now)
{
	if (!rt_cc_per_peer(p))
		return true;
	return flow_open(p, p->pace_next_us, !p->inflight_pkts, p->inflight_bytes,
			 rt_path_cwnd(p, 0), now);
}

/*
 * Path choice.  Scope path: the next path, round-robin, whose own window
 * and pacer allow.  Scope peer: once the peer's window and pacer allow,
 * the healthy path with the fewest bytes in flight (round-robin among
 * equals).  A path behind a longer queue holds its packets longer, so it
 * gets fewer new ones: load follows the paths' spare capacity.
 */
int rt_path_pick_tx(struct rt_peer *p, uint64_t now)
{
	uint32_t n = p->ep->ctx->npaths;
	uint32_t usable = 0, fallback = UINT32_MAX;
	uint64_t fb_until = UINT64_MAX;
	struct pool pl = { .summed = false };
	if (!peer_open(p, now))
		return -1;
	if (rt_cc_per_peer(p)) {
		uint32_t best = UINT32_MAX;
		uint64_t best_bytes = UINT64_MAX;
		for (uint32_t k = 0; k < n; k++) {
			uint32_t i = (p->path_rr + k) % n;
			struct rt_path_state *ps = &p->paths[i];
			if (!path_usable(ps, now)) {
				if (ps->quarantine_until < fb_until) {
					fb_until = ps->quarantine_until;
					fallback = i;
				}
				continue;
			}
			if (ps->inflight_bytes < best_bytes) {
				best_bytes = ps->inflight_bytes;
				best = i;
			}
		}
		if (best == UINT32_MAX)
			best = fallback; /* all quarantined: the one released soonest */
		if (best == UINT32_MAX)
			return -1;
		p->path_rr = (uint16_t)((best + 1) % n);
		return (int)best;
	}
	for (uint32_t k = 0; k < n; k++) {
		uint32_t i = (p->path_rr + k) % n;
		struct rt_path_state *ps = &p->paths[i];
		if (!path_usable(ps, now)) {
			if (ps->quarantine_until < fb_until) {
				fb_until = ps->quarantine_until;
				fallback = i;
			}
			continue;
		}
		usable++;
		if (path_open(p, i, now, &pl)) {
			p->path_rr = (uint16_t)((i + 1) % n);
			return (int)i;
		}
	}
	/* every path quarantined: keep going on the one released soonest */
	if (!usable && fallback != UINT32_MAX && path_open(p, fallback, now, &pl))
		return (int)fallback;
	return -1;
}

uint64_t rt_paths_next_send(const struct rt_peer *p, uint64_t now)
{
	uint64_t t = UINT64_MAX;
	if (rt_cc_per_peer(p)) {
		if (p->inflight_pkts && window_shut(p, p->inflight_bytes, rt_path_cwnd(p, 0)))
			return t; /* waits for an ACK, not for time */
		return p->pace_next_us > now ? p->pace_next_us : now;
	}
	struct pool pool = { .summed = false };
	for (uint32_t i = 0; i < p->ep->ctx->npaths; i++) {
		const struct rt_path_state *ps = &p->paths[i];
		uint64_t d = ps->quarantined ? ps->quarantine_until : ps->pace_next_us;
		if (!ps->quarantined && rt_path_pooled(p, (uint16_t)i)) {
			const struct pool *pl = pool_get(p, &pool);
			if (ps->inflight || (pl->win >= pl->mss ? pl->inflight >= pl->win : pl->inflight != 0))
				continue; /* in the pool: waits for an ACK */
			d = pl->win < pl->mss && p->pool_next_us > now ? p->pool_next_us : now;
		} else if (ps->inflight && window_shut(p, ps->inflight_bytes, rt_path_cwnd(p, (uint16_t)i)))
			continue; /* waits for an ACK, not for time */
		if (d < now)
			d = now;
		if (d < t)
			t = d;
	}
	return t;
}

uint16_t rt_path_pick(struct rt_peer *p, uint64_t now)
{
	uint32_t n = p->ep->ctx->npaths;
	for (uint32_t k = 0; k < n; k++) {
		uint32_t i = (p->path_rr + k) % n;
		if (path_usable(&p->paths[i], now)) {
			p->path_rr = (uint16_t)((i + 1) % n);
			return (uint16_t)i;
		}
	}
	return (uint16_t)(p->path_rr % n);
}

/*
 * The RTT histogram: exact below 8 us, then 8 buckets per octave (each
 * 12.5 % of its octave wide), up to 2^29 us; the last bucket takes the
 * rest.  A quantile is reported as its bucket's midpoint, within 6.25 %
 * of any value the bucket holds.  (It had 4 per octave, reported as the
 * lower edge: a p99 of 630 us read 512.)
 */
static uint32_t rtt_bucket(uint64_t rtt)
{
	if (rtt < 8)
		return (uint32_t)rtt;
	uint32_t msb = 63u - (uint32_t)__builtin_clzll(rtt);
	uint32_t sub = (uint32_t)(rtt >> (msb - 3)) & 7u;
	uint32_t b = (msb - 2) * 8 + sub;
	return b < RT_RTT_BUCKETS ? b : RT_RTT_BUCKETS - 1;
}

static uint64_t bucket_value(uint32_t b)
{
	if (b < 8)
		return b;
	uint32_t msb = b / 8 + 2, sub = b % 8;
	uint64_t lo = (uint64_t)(8 + sub) << (msb - 3), width = 1ull << (msb - 3);
	return lo + width / 2;
}

void rt_path_on_ack(struct rt_peer *p, uint16_t path, uint64_t rtt_us, uint64_t now)
{
	(void)now;
	struct rt_path_state *ps = &p->paths[path];
	ps->acked++;
	ps->consec_bad = 0;
	ps->quarantine_streak = 0;
	if (rtt_us) {
		ps->rtt_last_us = rtt_us;
		if (!ps->srtt_us) {
			ps->srtt_us = rtt_us;
			ps->rttvar_us = rtt_us / 2;
		} else {
			uint64_t d = rtt_us > ps->srtt_us ? rtt_us - ps->srtt_us : ps->srtt_us - rtt_us;
			ps->rttvar_us = (3 * ps->rttvar_us + d) / 4;
			ps->srtt_us = (7 * ps->srtt_us + rtt_us) / 8;
		}
		ps->hist[rtt_bucket(rtt_us)]++;
	}
}

/*
 * A loss counts against a path's health only when it is evidence about
 * that path: packets sent later (on any path) were delivered.  A
 * retransmission timeout means nothing got through at all; that says
 * nothing about which path is bad, so it never quarantines a path.
 */
void rt_path_on_loss(struct rt_peer *p, uint16_t path, bool timeout, uint64_t now)
{
	struct rt_path_state *ps = &p->paths[path];
	ps->losses++;
	if (timeout)
		return;
	ps->consec_bad++;
	if (p->ep->ctx->npaths <= 1 || ps->quarantined)
		return;
	if (ps->consec_bad >= QUARANTINE_AFTER) {
		uint32_t shift = ps->quarantine_streak < QUARANTINE_MAX_SHIFT ?
					 ps->quarantine_streak : QUARANTINE_MAX_SHIFT;
		ps->quarantined = true;
		ps->quarantine_count++;
		ps->quarantine_streak++;
		ps->quarantine_until = now + ((uint64_t)QUARANTINE_BASE_US << shift);
		/* quarantined again without delivering anything since the last
		 * time: the route is dead, not just lossy - move the path */
		if (ps->quarantine_streak >= REPATH_AFTER_STREAK)
			rt_path_repath(p->ep->ctx, path, false);
	}
}

/*
 * rt_path_repath() - ask for @path to get a new entropy value (UDP source
 * port), as Google's PRR does after an outage: the route the old value
 * hashed to is evidently bad, and a new value is a new draw among all
 * routes.  rt_path_on_loss() asks for it when a path is quarantined
 * twice in a row without delivering anything in between; with @explore,
 * rt_path_explore() does.  The engine
 * carries the request out after this pass
 * (rt_io_repath()), so protocol code never touches a socket; path 0 (the
 * receive socket) keeps its port.  The path's state is kept: it is still
 * quarantined, and comes back on probation on its new route.
 */
void rt_path_repath(rt_ctx *ctx, uint16_t path, bool explore)
{
	if (path == 0 || path >= ctx->npaths)
		return;
	ctx->io.repath_req[path / 64] |= 1ull << (path % 64);
	if (explore) /* counted apart (path_stats explore_moves) */
		ctx->io.explore_req[path / 64] |= 1ull << (path % 64);
}

/*
 * rt_path_explore() - move the path that delivers least, now and then,
 * while the network limits a transfer (after Google's PLB).
 *
 * Repath only leaves dead routes, and paths that left one never come
 * back: when a failed spine returns, or when the random ports of a
 * context happen to hash no path onto some spine (about 4 % of contexts
 * with 16 paths over 4 spines), that capacity stays unused.  Nothing
 * signals an unused route (no path there, so no samples), so it can only
 * be found by trying.  Every EXPLORE_STEP_US each busy peer compares its
 * paths: busy means messages wait for window and enough was delivered to
 * compare paths.  When the context's explore interval has passed since
 * its last move, the path (not path 0, which is the receive socket, and
 * not a quarantined one or one on probation) that delivered the fewest
 * packets to this peer in the step gets a new source port.  That path
 * usually shares its route with the most other paths, so the move does
 * not empty a route, and it lands on a random one.  The next step of the
 * peer that moved judges the move: if its delivery rate rose by more
 * than a tenth, the context's interval returns to EXPLORE_STEP_US (there
 * may be more to gain); otherwise it doubles, up to EXPLORE_MAX_US, so a
 * balanced context moves one path every EXPLORE_MAX_US whatever its
 * number of peers.  A peer that was idle, or not busy, starts over
 * without judging.  Called from the timer pass with @now passed in;
 * sockets move in the engine (rt_io_repath()).
 */
#define EXPLORE_STEP_US 25000
#define EXPLORE_MAX_US 200000
#define EXPLORE_MIN_PKTS 8  /* delivered per path and step, on average */

void rt_path_explore(struct rt_peer *p, uint64_t now)
{
	if (now < p->explore_at_us)
		return;
	rt_ctx *ctx = p->ep->ctx;
	uint32_t n = ctx->npaths;
	uint64_t total = 0, least = UINT64_MAX;
	int pick = -1;
	for (uint32_t i = 0; i < n; i++) {
		struct rt_path_state *ps = &p->paths[i];
		uint64_t d = ps->acked - ps->explore_acked;
		ps->explore_acked = ps->acked;
		total += d;
		if (i && !ps->quarantined && !ps->quarantine_streak && d < least) {
			least = d;
			pick = (int)i;
		}
	}
	uint64_t span = now - p->explore_last_us;
	/* a step spanning an idle spell (the timer pass skips idle peers)
	 * compares nothing */
	bool busy = p->explore_last_us && span && span <= 4 * EXPLORE_STEP_US &&
		    p->sq_head && total >= (uint64_t)EXPLORE_MIN_PKTS * n;
	p->explore_last_us = now;
	p->explore_at_us = now + EXPLORE_STEP_US;
	if (!ctx->explore_ival_us)
		ctx->explore_ival_us = EXPLORE_STEP_US;
	if (!busy) {
		p->explore_moved = false;
		p->explore_rate = 0;
		return;
	}
	uint64_t rate = total * 1000000 / span;
	if (p->explore_moved) {
		if (rate * 10 > p->explore_rate * 11)
			ctx->explore_ival_us = EXPLORE_STEP_US;
		else if (ctx->explore_ival_us < EXPLORE_MAX_US)
			ctx->explore_ival_us *= 2;
		p->explore_moved = false;
	}
	p->explore_rate = rate;
	if (pick > 0 && (!ctx->explore_move_us ||
			 now - ctx->explore_move_us >= ctx->explore_ival_us)) {
		rt_path_repath(ctx, (uint16_t)pick, true);
		ctx->explore_move_us = now;
		p->explore_moved = true;
	}
}

static uint64_t hist_quantile(const uint32_t *h, double q)
{
	uint64_t total = 0;
	for (int i = 0; i < RT_RTT_BUCKETS; i++)
		total += h[i];
	if (!total)
		return 0;
	uint64_t want = (uint64_t)(q * (double)total);
	if (want >= total)
		want = total - 1;
	uint64_t acc = 0;
	for (int i = 0; i < RT_RTT_BUCKETS; i++) {
		acc += h[i];
		if (acc > want)
			return bucket_value((uint32_t)i);
	}
	return bucket_value(RT_RTT_BUCKETS - 1);
}

void rt_path_stats_fill(struct rt_ep *ep, struct rt_path_stats *out, int n)
{
	rt_ctx *ctx = ep->ctx;
	for (uint32_t i = 0; i < ctx->npaths && (int)i < n; i++) {
		struct rt_path_stats *o = &out[i];
		memset(o, 0, sizeof(*o));
		uint32_t hist[RT_RTT_BUCKETS];
		memset(hist, 0, sizeof(hist));
		o->path = i;
		o->src_port = ctx->io.ports[i];
		o->repaths = ctx->io.repaths[i];
		o->explore_moves = ctx->io.explores[i];
		inet_ntop(AF_INET, &ctx->io.local[i].sin_addr, o->local_addr, sizeof(o->local_addr));
		for (uint32_t k = 0; k < ep->npeers; k++) {
			struct rt_path_state *ps = &ep->peers[k]->paths[i];
			o->tx_packets += ps->tx_packets;
			o->tx_bytes += ps->tx_bytes;
			o->ctl_packets += ps->ctl_packets;
			o->ctl_bytes += ps->ctl_bytes;
			o->retransmits += ps->retransmits;
			o->losses += ps->losses;
			o->timeouts += ps->timeouts;
			o->acked_packets += ps->acked;
			o->inflight_packets += ps->inflight;
			o->quarantine_count += ps->quarantine_count;
			o->quarantined |= ps->quarantined && ps->quarantine_until > ctx->now_us;
			if (ps->rtt_last_us)
				o->rtt_last_us = ps->rtt_last_us;
			if (!rt_cc_per_peer(ep->peers[k]))
				o->cwnd_bytes += rt_path_cwnd(ep->peers[k], (uint16_t)i);
			/* the RTT of the highest-numbered peer with a sample */
			if (ps->srtt_us)
				o->srtt_us = ps->srtt_us;
			o->inflight_bytes += ps->inflight_bytes;
			for (int b = 0; b < RT_RTT_BUCKETS; b++)
				hist[b] += ps->hist[b];
		}
		o->rtt_p50_us = hist_quantile(hist, 0.50);
		o->rtt_p99_us = hist_quantile(hist, 0.99);
	}
}
