// SPDX-License-Identifier: Apache-2.0
/*
 * "swift": delay-based AIMD congestion control in the spirit of Google's
 * Swift (Kumar et al., SIGCOMM 2020), plus a DCTCP-style ECN response.
 *
 * The signal is the queueing-delay estimate delay = rtt - base_rtt.  Below
 * the target delay the window grows by ai bytes per RTT; above it, it
 * shrinks in proportion to how far the delay overshoots, at most once per
 * RTT and by at most max_mdf.  Windows below one MSS are allowed: the
 * pacing rate (cwnd / srtt) then spaces single packets more than an RTT
 * apart.  See docs/congestion-control.md for the reasoning and defaults.
 */
#include <string.h>

#include "cc.h"

#define SWIFT_DEF_MSS 1400u
#define SWIFT_DEF_TARGET_US 50u
#define SWIFT_DEF_MAX_CWND (16ull << 20)
#define SWIFT_DEF_INIT_CWND (64ull << 10)
#define SWIFT_DEF_MIN_DIV 64u        /* default floor: mss / 64 */
#define SWIFT_DEF_AI_MAX 1500u       /* default additive increase: min(mss, this) */
#define SWIFT_DEF_BETA_MILLI 800u
#define SWIFT_DEF_MAX_MDF_MILLI 500u
#define SWIFT_ECN_G (1.0 / 16.0)     /* DCTCP EWMA gain per RTT */
#define SWIFT_PACING_GAIN 1.25
#define SWIFT_RTO_RESET 2            /* consecutive RTOs that reset to min */
#define SWIFT_MAX_RATE_BPS 1e18
/* base-RTT probes: every power-of-two period >= max(min, rtts * srtt) */
#define SWIFT_PROBE_MIN_US 8192u
#define SWIFT_PROBE_RTTS 128u
/*
 * Flow scaling (Swift section 3.3): the target grows by up to
 * target * SWIFT_FS_RANGE as the window shrinks from SWIFT_FS_MAX_PKTS to
 * SWIFT_FS_MIN_PKTS packets, following a/sqrt(cwnd) + b.
 */
#define SWIFT_FS_RANGE 1.0
#define SWIFT_FS_MIN_PKTS 0.1
#define SWIFT_FS_MAX_PKTS 100.0

struct swift_state {
	/* parameters with defaults filled in, as doubles for the math */
	double mss, ai, min_cwnd, max_cwnd, beta, max_mdf;
	uint64_t target_us;
	double fs_a, fs_b;        /* flow scaling: extra target = a/sqrt(pkts)+b */
	double cwnd;              /* bytes, may be < mss */
	double alpha;             /* EWMA of the CE-marked fraction, 0..1 */
	uint64_t last_decrease_us;
	uint64_t srtt_us;         /* last smoothed RTT the protocol gave us */
	uint64_t probe_mark_us;   /* latest probe-period boundary seen + 1 */
	uint64_t probe_end_us;    /* current probe ends at the first ACK after */
	double saved_cwnd;        /* window to restore after the probe */
	uint32_t rto_count;       /* RTOs since the last ACK of new data */
	uint8_t decreased;        /* last_decrease_us is valid */
	uint8_t over_target;      /* last RTT sample was at/above target */
	uint8_t queueing;         /* last RTT sample showed >= target/2 of queue */
	uint8_t probing;          /* window held at one MSS to drain the queue */
	uint8_t congested;        /* delay-based decrease since the last probe */
};

_Static_assert(sizeof(struct swift_state) <= RT_CC_STATE_MAX,
	       "swift_state too large");

static double clampd(double v, double lo, double hi)
{
	return v < lo ? lo : v > hi ? hi : v;
}

/*
 * swift_can_decrease() - true when no decrease happened within the last
 * @rtt_us microseconds (or ever).  A clock that went backwards counts as
 * "too soon".
 */
static int swift_can_decrease(const struct swift_state *s, uint64_t now_us,
			      uint64_t rtt_us)
{
	if (!s->decreased)
		return 1;
	return now_us >= s->last_decrease_us &&
	       now_us - s->last_decrease_us >= rtt_us;
}

/* swift_rsqrt() - 1/sqrt(x) for x > 0 without libm (Newton iteration). */
static double swift_rsqrt(double x)
{
	uint64_t i;
	double y;
	int k;

	memcpy(&i, &x, sizeof(i));
	i = 0x5fe6eb50c7b537a9ull - (i >> 1);
	memcpy(&y, &i, sizeof(y));
	for (k = 0; k < 4; k++)
		y *= 1.5 - 0.5 * x * y * y;
	return y;
}

/*
 * swift_target_us() - target queueing delay for the current window:
 * target_delay plus flow scaling, so that small-window flows tolerate a
 * little more delay than large ones and small biases between the flows'
 * base-RTT estimates cannot starve one of them.  @flow_cwnd, if not 0, is
 * the window of the flow this one is a share of (a path of a peer whose
 * paths pool their sub-MSS windows): scaling follows that flow's size,
 * not the share's.
 */
static double swift_target_us(const struct swift_state *s, uint64_t flow_cwnd)
{
	double pkts = (flow_cwnd ? (double)flow_cwnd : s->cwnd) / s->mss;
	double fs = s->fs_a * swift_rsqrt(pkts < SWIFT_FS_MIN_PKTS
						  ? SWIFT_FS_MIN_PKTS : pkts) +
		    s->fs_b;

	return (double)s->target_us + clampd(fs, 0.0,
					     SWIFT_FS_RANGE * (double)s->target_us);
}

/* swift_decrease() - multiply the window by @factor and note the time. */
static void swift_decrease(struct swift_state *s, uint64_t now_us,
			   double factor)
{
	s->cwnd = clampd(s->cwnd * factor, s->min_cwnd, s->max_cwnd);
	s->last_decrease_us = now_us;
	s->decreased = 1;
}

/* swift_end_probe() - leave a base-RTT probe, restoring the window. */
static void swift_end_probe(struct swift_state *s)
{
	if (s->probing) {
		s->cwnd = s->saved_cwnd;
		s->probing = 0;
	}
}

/*
 * swift_probe() - start a base-RTT probe when one is due; called on ACKs.
 *
 * Delay-based control keeps a standing queue of about the target delay,
 * so a flow that starts while others hold that queue measures a base RTT
 * that already includes it; it then sees "no queue" where the others see
 * the target and starves them.  To undo that, a flow that made a
 * delay-based decrease since its last probe holds its window at one MSS
 * for one srtt plus one base RTT: its queued packets drain and the next
 * RTT sample shows the base.  Probes start at the first ACK after a
 * multiple of the probe period (a power of two) in the caller's clock, so
 * flows sharing a clock (one host) drain together and every one of them
 * sees the empty queue.  Flows that never decrease (uncongested paths)
 * never probe.
 */
static void swift_probe(struct swift_state *s, const struct rt_cc_ack *ack)
{
	uint64_t period = SWIFT_PROBE_MIN_US, mark;

	if (!s->srtt_us || s->probing)
		return;
	while (period < SWIFT_PROBE_RTTS * s->srtt_us && period < (1ull << 40))
		period <<= 1;
	/* +1 so that 0 means "none yet"; a shorter period after an srtt
	 * drop can only move the boundary forward */
	mark = ack->now_us / period * period + 1;
	if (mark <= s->probe_mark_us)
		return;
	if (!s->probe_mark_us || !s->congested || s->cwnd <= 2 * s->mss) {
		s->probe_mark_us = mark;
		return;
	}
	s->probe_mark_us = mark;
	s->congested = 0;
	s->saved_cwnd = s->cwnd;
	s->cwnd = s->mss < s->min_cwnd ? s->min_cwnd : s->mss;
	s->probing = 1;
	s->probe_end_us = ack->now_us + s->srtt_us + ack->base_rtt_us;
}

/**
 * swift_init() - set up a flow.
 * @st: RT_CC_STATE_MAX zeroed bytes, 8-byte aligned.
 * @p: parameters; any field that is 0 takes its default (see
 *     docs/congestion-control.md).  max_mdf and beta are capped at 1000,
 *     min_cwnd at max_cwnd, and init_cwnd is clamped into [min, max].
 * @now_us: current time (unused: no decrease is pending at start).
 */
static void swift_init(void *st, const struct rt_cc_params *p, uint64_t now_us)
{
	struct swift_state *s = st;
	uint32_t mss = p->mss ? p->mss : SWIFT_DEF_MSS;
	uint64_t maxc = p->max_cwnd_bytes ? p->max_cwnd_bytes : SWIFT_DEF_MAX_CWND;
	uint64_t minc = p->min_cwnd_bytes ? p->min_cwnd_bytes
					  : mss / SWIFT_DEF_MIN_DIV;
	uint64_t initc = p->init_cwnd_bytes ? p->init_cwnd_bytes
					    : SWIFT_DEF_INIT_CWND;
	uint32_t beta = p->beta_milli ? p->beta_milli : SWIFT_DEF_BETA_MILLI;
	uint32_t mdf = p->max_mdf_milli ? p->max_mdf_milli
					: SWIFT_DEF_MAX_MDF_MILLI;

	(void)now_us;
	if (minc == 0)
		minc = 1;
	if (minc > maxc)
		minc = maxc;
	s->mss = mss;
	/* one standard frame per RTT, not one jumbo frame: growth in time at
	 * a given rate must not be six times faster with MTU 9000 (measured
	 * on the incast of issue 3: ai = 9 KB swung the queue to 2x ai's
	 * worth; docs/benchmarks.md) */
	s->ai = p->ai_bytes ? p->ai_bytes : (mss < SWIFT_DEF_AI_MAX ? mss : SWIFT_DEF_AI_MAX);
	s->min_cwnd = (double)minc;
	s->max_cwnd = (double)maxc;
	s->beta = (beta > 1000 ? 1000 : beta) / 1000.0;
	s->max_mdf = (mdf > 1000 ? 1000 : mdf) / 1000.0;
	s->target_us = p->target_delay_us ? p->target_delay_us
					  : SWIFT_DEF_TARGET_US;
	s->cwnd = clampd((double)initc, s->min_cwnd, s->max_cwnd);
	s->fs_a = SWIFT_FS_RANGE * (double)s->target_us /
		  (swift_rsqrt(SWIFT_FS_MIN_PKTS) -
		   swift_rsqrt(SWIFT_FS_MAX_PKTS));
	s->fs_b = -s->fs_a * swift_rsqrt(SWIFT_FS_MAX_PKTS);
	s->alpha = 1.0; /* as DCTCP: the first CE mark halves the window */
}

/**
 * swift_on_ack() - react to an acknowledgement.
 * @st: flow state.
 * @ack: the event.  An RTT sample (@ack->rtt_us != 0) gives the queueing
 *       delay rtt_us - base_rtt_us; an ACK without a sample grows the
 *       window only if the previous sample was below target, and never
 *       shrinks it.
 *
 * The target is target_delay plus flow scaling (up to 2x for windows
 * near 0.1 MSS, nothing from 100 MSS up).  Below target and without CE
 * marks: additive increase of ai bytes per RTT (per ACK ai*acked/cwnd;
 * below one MSS ai*acked/mss, at most doubling the window; as a share of a
 * pooled flow, ack->flow_cwnd_bytes, ai*acked/flow_cwnd, at most doubling
 * the flow).  At or above
 * target: multiplicative decrease by max(1 - beta*(delay-target)/delay,
 * 1 - max_mdf).  CE-marked bytes update alpha and ask for a decrease by
 * alpha/2; when both signals ask, the larger decrease wins.  At most one
 * decrease per srtt (rtt_us if srtt_us is 0), shared with on_loss().
 * May start or end a base-RTT probe (see swift_probe()); during a probe
 * the window is one MSS and ACKs change nothing but alpha.  ACKing new
 * data clears the consecutive-RTO count.
 */
static void swift_on_ack(void *st, const struct rt_cc_ack *ack)
{
	struct swift_state *s = st;
	double acked = (double)ack->acked_bytes;
	double factor = 1.0;
	int congested = 0;
	uint64_t rtt_ref;

	if (ack->srtt_us)
		s->srtt_us = ack->srtt_us;
	rtt_ref = ack->srtt_us ? ack->srtt_us : ack->rtt_us;
	if (ack->acked_bytes)
		s->rto_count = 0;

	if (ack->acked_bytes) {
		/* DCTCP alpha, weighted so one window of ACKs = one step of g */
		double ce = ack->ecn_ce_bytes < ack->acked_bytes
				    ? (double)ack->ecn_ce_bytes : acked;
		double w = s->cwnd > s->mss ? s->cwnd : s->mss;
		double g = SWIFT_ECN_G * acked / w;

		if (g > 1.0)
			g = 1.0;
		s->alpha += g * (ce / acked - s->alpha);
	}
	if (s->probing) {
		if (ack->now_us < s->probe_end_us)
			return; /* hold one MSS while the queue drains */
		swift_end_probe(s);
	}

	if (ack->rtt_us) {
		double delay = ack->rtt_us > ack->base_rtt_us
				       ? (double)(ack->rtt_us - ack->base_rtt_us)
				       : 0.0;
		double target = swift_target_us(s, ack->flow_cwnd_bytes);

		s->over_target = delay >= target;
		s->queueing = 2.0 * delay >= target;
		if (s->over_target) {
			congested = 1;
			factor = 1.0 - s->beta * (delay - target) / delay;
		}
	} else if (s->over_target) {
		congested = 1; /* stale "too slow" verdict: hold, don't grow */
	}
	if (ack->ecn_ce_bytes) {
		double f = 1.0 - s->alpha / 2.0;

		congested = 1;
		if (f < factor)
			factor = f;
	}

	if (!congested) {
		double inc;

		if (ack->flow_cwnd_bytes) {
			/* a share of a pooled flow: the flow as a whole
			 * grows by ai per RTT, as one flow would, not ai
			 * per share (each share sees about one ACK per RTT,
			 * so the fractional rule would grow the pool by ai
			 * per path and RTT, n times too fast) */
			inc = s->ai * acked / (double)ack->flow_cwnd_bytes;
			/* at most doubling the flow, not the share: a share at
			 * its floor (a few bytes) must be able to take ai, or a
			 * pool reset by RTOs would need hundreds of RTTs to
			 * get back to one MSS */
			if (inc > (double)ack->flow_cwnd_bytes)
				inc = (double)ack->flow_cwnd_bytes;
		} else if (s->cwnd >= s->mss) {
			inc = s->ai * acked / s->cwnd;
		} else {
			/* Swift's fractional rule: ai per packet ACKed */
			inc = s->ai * acked / s->mss;
			if (inc > s->cwnd)
				inc = s->cwnd;
		}
		s->cwnd = clampd(s->cwnd + inc, s->min_cwnd, s->max_cwnd);
	} else if (factor < 1.0 &&
		   swift_can_decrease(s, ack->now_us, rtt_ref)) {
		if (factor < 1.0 - s->max_mdf)
			factor = 1.0 - s->max_mdf;
		swift_decrease(s, ack->now_us, factor);
		s->congested |= s->over_target;
	}
	swift_probe(s, ack);
}

/**
 * swift_on_loss() - packets were declared lost (not by timeout).
 * @st: flow state.
 * @now_us: current time.
 * @lost_bytes: unused (one decrease per loss episode, not per packet).
 * @srtt_us: smoothed RTT; no decrease if one happened less than @srtt_us
 *           ago (shared with on_ack's decreases).
 *
 * Ends a base-RTT probe.  If the last RTT sample showed a queue of at
 * least half the target, multiplies the window by (1 - max_mdf), clamped
 * to min_cwnd (half, so that a buffer shallower than the target still
 * counts as congestion).  Loss without queueing is not treated as congestion: with
 * packet spraying it is random loss or a failing path, which the path
 * quarantine (paths.c) handles; cutting the window for it is what makes
 * loss-based control collapse at 1% random loss.
 */
static void swift_on_loss(void *st, uint64_t now_us, uint64_t lost_bytes,
			  uint64_t srtt_us)
{
	struct swift_state *s = st;

	(void)lost_bytes;
	if (srtt_us)
		s->srtt_us = srtt_us;
	swift_end_probe(s);
	if (s->queueing && swift_can_decrease(s, now_us, srtt_us))
		swift_decrease(s, now_us, 1.0 - s->max_mdf);
}

/**
 * swift_on_timeout() - the retransmission timer fired.
 * @st: flow state.
 * @now_us: current time.
 *
 * Ends a base-RTT probe.  The first RTO since new data was last ACKed
 * multiplies the window by (1 - max_mdf); the second and later
 * consecutive ones set it to min_cwnd (Swift's retransmit-reset).  Not
 * rate limited: RTOs are already at least rto_min apart and back off.
 */
static void swift_on_timeout(void *st, uint64_t now_us)
{
	struct swift_state *s = st;

	swift_end_probe(s);
	if (s->rto_count < UINT32_MAX)
		s->rto_count++;
	swift_decrease(s, now_us, s->rto_count >= SWIFT_RTO_RESET
					  ? 0.0 : 1.0 - s->max_mdf);
}

/* swift_cwnd_bytes() - Return: the window in bytes, rounded, >= 1. */
static uint64_t swift_cwnd_bytes(const void *st)
{
	const struct swift_state *s = st;
	uint64_t c = (uint64_t)(s->cwnd + 0.5);

	return c ? c : 1;
}

/**
 * swift_pacing_rate_bps() - pacing rate for the current window.
 * @st: flow state.
 * @srtt_us: the flow's smoothed RTT; 0 = use the last one seen by
 *           on_ack/on_loss.
 *
 * Return: 1.25 * cwnd / srtt in bit/s (so the window, not the pacer, is
 * the limit when the window fits the path; below one MSS the pacer sets
 * the rate), or 0 (unpaced) while no RTT is known.
 */
static uint64_t swift_pacing_rate_bps(const void *st, uint64_t srtt_us)
{
	const struct swift_state *s = st;
	double r;

	if (!srtt_us)
		srtt_us = s->srtt_us;
	if (!srtt_us)
		return 0;
	r = s->cwnd * 8.0 * 1e6 / (double)srtt_us * SWIFT_PACING_GAIN;
	if (r > SWIFT_MAX_RATE_BPS)
		r = SWIFT_MAX_RATE_BPS;
	return r < 1.0 ? 1 : (uint64_t)r;
}

const struct rt_cc_ops rt_cc_swift = {
	.name = "swift",
	.init = swift_init,
	.on_ack = swift_on_ack,
	.on_loss = swift_on_loss,
	.on_timeout = swift_on_timeout,
	.cwnd_bytes = swift_cwnd_bytes,
	.pacing_rate_bps = swift_pacing_rate_bps,
};
