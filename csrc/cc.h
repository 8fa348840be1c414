/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Congestion-control interface.
 *
 * Each algorithm lives in its own file (cc_<name>.c) and exports one
 * `const struct rt_cc_ops` table.  The protocol keeps one opaque state
 * blob per flow (per peer, optionally per path) and calls the hooks below
 * on ACK / loss / timeout events.  Algorithms never read the clock or
 * touch sockets: the current time is passed in (now_us), so the same
 * code runs on real UDP and inside a simulator in virtual time.
 */
#ifndef RT_CC_H
#define RT_CC_H

#include <stddef.h>
#include <stdint.h>

#define RT_CC_STATE_MAX 256 /* bytes of per-flow state an algorithm may use */

/** Parameters fixed when a flow is created (from struct rt_config). */
struct rt_cc_params {
	uint32_t mss;               /* payload bytes per packet */
	uint32_t target_delay_us;   /* swift: target queueing delay */
	uint64_t init_cwnd_bytes;   /* initial window */
	uint64_t min_cwnd_bytes;    /* floor (may be < mss: then pacing gates) */
	uint64_t max_cwnd_bytes;    /* ceiling (the per-peer window limit) */
	uint32_t ai_bytes;          /* additive increase per RTT, bytes */
	uint32_t beta_milli;        /* MD gain in 1/1000 (swift beta) */
	uint32_t max_mdf_milli;     /* max multiplicative decrease per RTT, 1/1000 */
};

/** One ACK event (possibly covering several packets). */
struct rt_cc_ack {
	uint64_t now_us;
	uint64_t acked_bytes;       /* newly acknowledged payload bytes */
	uint64_t rtt_us;            /* RTT sample (0 = none in this ACK) */
	uint64_t base_rtt_us;       /* lowest RTT seen on this flow (>0) */
	uint64_t srtt_us;           /* smoothed RTT of the flow */
	uint64_t inflight_bytes;    /* after removing the acked bytes */
	uint64_t ecn_ce_bytes;      /* acked bytes that carried ECN-CE */
	uint64_t flow_cwnd_bytes;   /* window of the flow this one is part of
				     * (a path's share of a pooled peer
				     * window), for flow scaling; 0 = own */
};

struct rt_cc_ops {
	const char *name;
	/** Initialise @st (RT_CC_STATE_MAX bytes, zeroed) at time @now_us. */
	void (*init)(void *st, const struct rt_cc_params *p, uint64_t now_us);
	/** Acknowledgement arrived. */
	void (*on_ack)(void *st, const struct rt_cc_ack *ack);
	/** Packets declared lost by fast retransmit / RACK (not timeout). */
	void (*on_loss)(void *st, uint64_t now_us, uint64_t lost_bytes,
			uint64_t srtt_us);
	/** Retransmission timeout fired. */
	void (*on_timeout)(void *st, uint64_t now_us);
	/** Current congestion window in bytes. */
	uint64_t (*cwnd_bytes)(const void *st);
	/** Pacing rate in bit/s for a flow with smoothed RTT @srtt_us (0 = unpaced). */
	uint64_t (*pacing_rate_bps)(const void *st, uint64_t srtt_us);
};

extern const struct rt_cc_ops rt_cc_none;
extern const struct rt_cc_ops rt_cc_swift;

/** Look an algorithm up by name; NULL if unknown. */
const struct rt_cc_ops *rt_cc_find(const char *name);

#endif /* RT_CC_H */
