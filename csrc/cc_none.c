// SPDX-License-Identifier: Apache-2.0
/*
 * "none": a fixed window that never reacts to congestion.  Meant for tests
 * and for measuring the protocol without congestion control in the way.
 */
#include "cc.h"

struct none_state {
	uint64_t cwnd;
};

_Static_assert(sizeof(struct none_state) <= RT_CC_STATE_MAX,
	       "none_state too large");

/**
 * none_init() - fix the window for the life of the flow.
 * @st: RT_CC_STATE_MAX zeroed bytes, 8-byte aligned.
 * @p: the flow's parameters.  The window is @p->max_cwnd_bytes, or
 *     @p->init_cwnd_bytes when that is 0, or @p->mss when both are 0
 *     (never 0, so a flow can always send).
 * @now_us: unused.
 */
static void none_init(void *st, const struct rt_cc_params *p, uint64_t now_us)
{
	struct none_state *s = st;

	(void)now_us;
	s->cwnd = p->max_cwnd_bytes ? p->max_cwnd_bytes : p->init_cwnd_bytes;
	if (!s->cwnd)
		s->cwnd = p->mss ? p->mss : 1;
}

/* none_on_ack() - ignored: the window never changes. */
static void none_on_ack(void *st, const struct rt_cc_ack *ack)
{
	(void)st;
	(void)ack;
}

/* none_on_loss() - ignored: the window never changes. */
static void none_on_loss(void *st, uint64_t now_us, uint64_t lost_bytes,
			 uint64_t srtt_us)
{
	(void)st;
	(void)now_us;
	(void)lost_bytes;
	(void)srtt_us;
}

/* none_on_timeout() - ignored: the window never changes. */
static void none_on_timeout(void *st, uint64_t now_us)
{
	(void)st;
	(void)now_us;
}

/* none_cwnd_bytes() - Return: the window fixed at init. */
static uint64_t none_cwnd_bytes(const void *st)
{
	const struct none_state *s = st;

	return s->cwnd;
}

/* none_pacing_rate_bps() - Return: 0, i.e. unpaced. */
static uint64_t none_pacing_rate_bps(const void *st, uint64_t srtt_us)
{
	(void)st;
	(void)srtt_us;
	return 0;
}

const struct rt_cc_ops rt_cc_none = {
	.name = "none",
	.init = none_init,
	.on_ack = none_on_ack,
	.on_loss = none_on_loss,
	.on_timeout = none_on_timeout,
	.cwnd_bytes = none_cwnd_bytes,
	.pacing_rate_bps = none_pacing_rate_bps,
};
