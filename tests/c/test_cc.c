// SPDX-License-Identifier: Apache-2.0
/*
 * Congestion-control tests: unit checks of the hooks plus a tiny
 * discrete-event simulator in virtual time (nothing reads a clock).
 *
 * Build: gcc -std=gnu11 -Wall -Wextra -O1 -Icsrc tests/c/test_cc.c \
 *            csrc/cc.c csrc/cc_none.c csrc/cc_swift.c -lm
 * Run:   ./a.out <case>      (no argument lists the cases)
 * Exit:  0 pass, 1 fail (with a "FAIL:" line saying why), 2 usage.
 *
 * Simulated network: N always-backlogged flows share one bottleneck link
 * of rate R with a FIFO queue (optional byte limit => drops, optional ECN
 * threshold K => CE marks on packets that find more than K bytes queued).
 * A packet's ACK returns base_rtt (+ optional jitter) after it leaves the
 * link, carrying an RTT sample; one ACK per packet.  A dropped packet is
 * reported to on_loss() one base RTT after it was sent.  A flow may send
 * while inflight < cwnd and its pacer allows.
 */
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cc.h"

#define MAXF 128
#define US 1000ull          /* ns per us */
#define MS 1000000ull       /* ns per ms */

static int failed;

static void check(int ok, const char *fmt, ...)
{
	va_list ap;

	if (ok)
		return;
	va_start(ap, fmt);
	printf("FAIL: ");
	vprintf(fmt, ap);
	printf("\n");
	va_end(ap);
	failed = 1;
}

/* ------------------------------------------------------------ simulator */

struct ev {
	uint64_t t;         /* ns */
	uint64_t sent;      /* ns */
	int flow;
	int lost;
	int ce;
};

struct heap {
	struct ev *v;
	size_t n, cap;
};

static void heap_push(struct heap *h, struct ev e)
{
	size_t i;

	if (h->n == h->cap) {
		h->cap = h->cap ? 2 * h->cap : 1024;
		h->v = realloc(h->v, h->cap * sizeof(*h->v));
		if (!h->v)
			abort();
	}
	i = h->n++;
	while (i && h->v[(i - 1) / 2].t > e.t) {
		h->v[i] = h->v[(i - 1) / 2];
		i = (i - 1) / 2;
	}
	h->v[i] = e;
}

static struct ev heap_pop(struct heap *h)
{
	struct ev top = h->v[0], last = h->v[--h->n];
	size_t i = 0;

	for (;;) {
		size_t c = 2 * i + 1;

		if (c >= h->n)
			break;
		if (c + 1 < h->n && h->v[c + 1].t < h->v[c].t)
			c++;
		if (h->v[c].t >= last.t)
			break;
		h->v[i] = h->v[c];
		i = c;
	}
	if (h->n)
		h->v[i] = last;
	return top;
}

struct u64v {
	uint64_t *v;
	size_t n, cap;
};

static void u64v_push(struct u64v *a, uint64_t x)
{
	if (a->n == a->cap) {
		a->cap = a->cap ? 2 * a->cap : 4096;
		a->v = realloc(a->v, a->cap * sizeof(*a->v));
		if (!a->v)
			abort();
	}
	a->v[a->n++] = x;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Percentile @q (0..1) of @a (sorted in place); 0 when empty. */
static uint64_t pct(struct u64v *a, double q)
{
	size_t i;

	if (!a->n)
		return 0;
	qsort(a->v, a->n, sizeof(*a->v), cmp_u64);
	i = (size_t)(q * (double)(a->n - 1));
	return a->v[i];
}

struct sim_cfg {
	const struct rt_cc_ops *ops;
	struct rt_cc_params p;
	int nflows;
	uint64_t start_ns[MAXF];
	double rate_bps;          /* bottleneck rate */
	double rate2_bps;         /* rate from rate_change_ns on (0 = none) */
	uint64_t rate_change_ns;
	uint64_t base_rtt_ns;     /* propagation + fixed processing */
	uint64_t jitter_ns;       /* uniform extra ACK delay in [0, jitter) */
	uint64_t queue_limit;     /* bytes, 0 = unlimited */
	uint64_t ecn_k;           /* bytes, 0 = no marking */
	uint64_t duration_ns;
	uint64_t meas_ns;         /* statistics cover [meas_ns, duration_ns) */
	uint64_t trace_ns;        /* cwnd trace period (0 = none) */
};

#define TRACE_MAX 100000

struct sim_flow {
	union {
		unsigned char b[RT_CC_STATE_MAX];
		uint64_t align_u64;
		double align_d;
	} st;
	uint64_t inflight;
	uint64_t next_send_ns;
	uint64_t srtt_ns, base_rtt_ns, first_rtt_ns;
	uint64_t bytes_meas;      /* bytes leaving the link in the window */
	uint64_t sent, lost, marked;
};

struct sim {
	const struct sim_cfg *c;
	struct sim_flow f[MAXF];
	struct heap h;
	uint64_t link_free_ns;    /* when the link finishes the queued bytes */
	uint64_t rng;
	struct u64v qdelay_ns;    /* per packet queueing delay, in window */
	uint64_t qbytes_max_meas;
	/* trace[k][i]: cwnd of flow i at time k * trace_ns */
	uint64_t (*trace)[MAXF];
	size_t ntrace;
	uint64_t losses;
};

static uint64_t rng_next(struct sim *s)
{
	/* xorshift64*: deterministic, seeded per run */
	s->rng ^= s->rng >> 12;
	s->rng ^= s->rng << 25;
	s->rng ^= s->rng >> 27;
	return s->rng * 2685821657736338717ull;
}

static double sim_rate(const struct sim *s, uint64_t t)
{
	const struct sim_cfg *c = s->c;

	if (c->rate2_bps > 0 && t >= c->rate_change_ns)
		return c->rate2_bps;
	return c->rate_bps;
}

static uint64_t ns_to_us(uint64_t ns)
{
	return (ns + 500) / 1000;
}

static void sim_send(struct sim *s, int i, uint64_t now)
{
	const struct sim_cfg *c = s->c;
	struct sim_flow *f = &s->f[i];
	uint64_t mss = c->p.mss, rate_pace;
	double rate = sim_rate(s, now);
	uint64_t backlog_ns = s->link_free_ns > now ? s->link_free_ns - now : 0;
	uint64_t backlog = (uint64_t)((double)backlog_ns * rate / 8e9);
	struct ev e = { .sent = now, .flow = i };

	f->sent++;
	f->inflight += mss;
	rate_pace = c->ops->pacing_rate_bps(f->st.b, ns_to_us(f->srtt_ns));
	f->next_send_ns = rate_pace ? now + (uint64_t)((double)mss * 8e9 /
						      (double)rate_pace)
				    : now;
	if (now >= c->meas_ns && backlog > s->qbytes_max_meas)
		s->qbytes_max_meas = backlog;
	if (c->queue_limit && backlog + mss > c->queue_limit) {
		f->lost++;
		s->losses++;
		e.lost = 1;
		e.t = now + c->base_rtt_ns;
		heap_push(&s->h, e);
		return;
	}
	if (c->ecn_k && backlog > c->ecn_k) {
		e.ce = 1;
		f->marked++;
	}
	s->link_free_ns = (s->link_free_ns > now ? s->link_free_ns : now) +
			  (uint64_t)((double)mss * 8e9 / rate);
	if (now >= c->meas_ns && now < c->duration_ns) {
		u64v_push(&s->qdelay_ns, backlog_ns);
		if (s->link_free_ns < c->duration_ns)
			f->bytes_meas += mss;
	}
	e.t = s->link_free_ns + c->base_rtt_ns;
	if (c->jitter_ns)
		e.t += rng_next(s) % c->jitter_ns;
	heap_push(&s->h, e);
}

static void sim_event(struct sim *s, struct ev e)
{
	const struct sim_cfg *c = s->c;
	struct sim_flow *f = &s->f[e.flow];
	uint64_t mss = c->p.mss;
	struct rt_cc_ack a;
	uint64_t rtt;

	f->inflight -= mss;
	if (e.lost) {
		c->ops->on_loss(f->st.b, ns_to_us(e.t), mss, ns_to_us(f->srtt_ns));
		return;
	}
	rtt = e.t - e.sent;
	if (!f->base_rtt_ns || rtt < f->base_rtt_ns)
		f->base_rtt_ns = rtt;
	if (!f->first_rtt_ns)
		f->first_rtt_ns = rtt;
	f->srtt_ns = f->srtt_ns ? (7 * f->srtt_ns + rtt) / 8 : rtt;
	memset(&a, 0, sizeof(a));
	a.now_us = ns_to_us(e.t);
	a.acked_bytes = mss;
	a.rtt_us = ns_to_us(rtt);
	a.base_rtt_us = ns_to_us(f->base_rtt_ns);
	a.srtt_us = ns_to_us(f->srtt_ns);
	a.inflight_bytes = f->inflight;
	a.ecn_ce_bytes = e.ce ? mss : 0;
	c->ops->on_ack(f->st.b, &a);
}

/* sim_run() - run @c to completion; results stay in @s (sim_free it). */
static void sim_run(struct sim *s, const struct sim_cfg *c)
{
	uint64_t now = 0, next_trace = 0;
	int i;

	memset(s, 0, sizeof(*s));
	s->c = c;
	s->rng = 0x9e3779b97f4a7c15ull;
	if (c->trace_ns) {
		s->trace = calloc(c->duration_ns / c->trace_ns + 2,
				  sizeof(*s->trace));
		if (!s->trace)
			abort();
	}
	for (i = 0; i < c->nflows; i++) {
		c->ops->init(s->f[i].st.b, &c->p, ns_to_us(c->start_ns[i]));
		s->f[i].next_send_ns = c->start_ns[i];
	}
	for (;;) {
		uint64_t tsend = UINT64_MAX, tev;
		int fs = -1;

		for (i = 0; i < c->nflows; i++) {
			struct sim_flow *f = &s->f[i];
			uint64_t t;

			if (f->inflight >= c->ops->cwnd_bytes(f->st.b))
				continue;
			t = f->next_send_ns > now ? f->next_send_ns : now;
			if (t < tsend) {
				tsend = t;
				fs = i;
			}
		}
		tev = s->h.n ? s->h.v[0].t : UINT64_MAX;
		now = tev <= tsend ? tev : tsend;
		if (now >= c->duration_ns)
			break;
		while (c->trace_ns && next_trace <= now) {
			for (i = 0; i < c->nflows; i++)
				s->trace[s->ntrace][i] =
					c->ops->cwnd_bytes(s->f[i].st.b);
			s->ntrace++;
			next_trace += c->trace_ns;
		}
		if (tev <= tsend)
			sim_event(s, heap_pop(&s->h));
		else
			sim_send(s, fs, now);
	}
}

static void sim_free(struct sim *s)
{
	free(s->h.v);
	free(s->qdelay_ns.v);
	free(s->trace);
}

static double sim_util(const struct sim *s)
{
	const struct sim_cfg *c = s->c;
	double bytes = 0;
	int i;

	for (i = 0; i < c->nflows; i++)
		bytes += (double)s->f[i].bytes_meas;
	return bytes * 8.0 /
	       (c->rate_bps * (double)(c->duration_ns - c->meas_ns) / 1e9);
}

static double sim_jain(const struct sim *s)
{
	double sum = 0, sq = 0;
	int i, n = s->c->nflows;

	for (i = 0; i < n; i++) {
		double x = (double)s->f[i].bytes_meas;

		sum += x;
		sq += x * x;
	}
	return sq > 0 ? sum * sum / (n * sq) : 0;
}

/* A 10 Gbit/s link, 20 us base RTT, 1500-byte packets, swift defaults. */
static void base_cfg(struct sim_cfg *c)
{
	memset(c, 0, sizeof(*c));
	c->ops = &rt_cc_swift;
	c->p.mss = 1500;
	c->p.target_delay_us = 50;
	c->p.init_cwnd_bytes = 10 * 1500;
	c->p.min_cwnd_bytes = 1500 / 64;
	c->p.max_cwnd_bytes = 4u << 20;
	c->nflows = 1;
	c->rate_bps = 10e9;
	c->base_rtt_ns = 20 * US;
}

static uint64_t cwnd_of(const struct rt_cc_ops *ops, const void *st)
{
	return ops->cwnd_bytes(st);
}

/* ---------------------------------------------------------------- cases */

static void case_swift_converges_two_flows(void)
{
	struct sim_cfg c;
	struct sim s;
	uint64_t p99, p50, target_ns;
	double util, jain;

	base_cfg(&c);
	c.nflows = 2;
	c.start_ns[1] = 20 * MS;
	c.duration_ns = 300 * MS;
	c.meas_ns = 150 * MS;
	sim_run(&s, &c);
	target_ns = c.p.target_delay_us * US;
	util = sim_util(&s);
	jain = sim_jain(&s);
	p50 = pct(&s.qdelay_ns, 0.50);
	p99 = pct(&s.qdelay_ns, 0.99);
	printf("two flows, 10 Gbit/s, base RTT 20 us, target 50 us, "
	       "flow 2 starts at 20 ms; window %.0f-%.0f ms:\n",
	       c.meas_ns / 1e6, c.duration_ns / 1e6);
	printf("  throughput flow1 %.2f Gbit/s flow2 %.2f Gbit/s, "
	       "utilisation %.1f%%, Jain %.4f\n",
	       s.f[0].bytes_meas * 8.0 / ((c.duration_ns - c.meas_ns) / 1e9) / 1e9,
	       s.f[1].bytes_meas * 8.0 / ((c.duration_ns - c.meas_ns) / 1e9) / 1e9,
	       util * 100, jain);
	printf("  queue delay p50 %.1f us p99 %.1f us (target %.0f us), "
	       "cwnd %lu / %lu bytes, losses %lu\n",
	       p50 / 1e3, p99 / 1e3, target_ns / 1e3,
	       (unsigned long)cwnd_of(c.ops, s.f[0].st.b),
	       (unsigned long)cwnd_of(c.ops, s.f[1].st.b),
	       (unsigned long)s.losses);
	printf("  base RTT seen: flow1 %.1f us, flow2 %.1f us (first sample "
	       "%.1f us: it started behind flow 1's standing queue)\n",
	       s.f[0].base_rtt_ns / 1e3, s.f[1].base_rtt_ns / 1e3,
	       s.f[1].first_rtt_ns / 1e3);
	check(jain >= 0.9, "Jain index %.4f < 0.9", jain);
	check(util >= 0.9, "utilisation %.1f%% < 90%%", util * 100);
	check(p99 <= 2 * target_ns, "p99 queue delay %.1f us > 2 x target",
	      p99 / 1e3);
	sim_free(&s);
}

static void case_swift_reacts_to_delay(void)
{
	struct sim_cfg c;
	struct sim s;
	uint64_t before = 0, after_min, srtt_us;
	size_t k, k0, reacted = 0;

	base_cfg(&c);
	c.rate2_bps = 5e9;
	c.rate_change_ns = 50 * MS;
	c.duration_ns = 80 * MS;
	c.meas_ns = 60 * MS;
	c.trace_ns = 1 * US;
	sim_run(&s, &c);
	k0 = c.rate_change_ns / c.trace_ns;
	/* steady-state window: mean over the 5 ms before the change */
	for (k = k0 - 5000; k < k0; k++)
		before += s.trace[k][0];
	before /= 5000;
	srtt_us = 20 + c.p.target_delay_us; /* upper bound at equilibrium */
	after_min = before;
	for (k = k0; k < s.ntrace && k < k0 + 50 * srtt_us; k++) {
		if (s.trace[k][0] < after_min)
			after_min = s.trace[k][0];
		if (!reacted && s.trace[k][0] <= before * 9 / 10)
			reacted = k - k0;
	}
	printf("rate 10 -> 5 Gbit/s at 50 ms: cwnd before %lu bytes, "
	       "first <= 90%% after %zu us (%.1f RTTs of ~%lu us), "
	       "min within 50 RTTs %lu, final %lu\n",
	       (unsigned long)before, reacted, (double)reacted / srtt_us,
	       (unsigned long)srtt_us, (unsigned long)after_min,
	       (unsigned long)cwnd_of(c.ops, s.f[0].st.b));
	printf("  after: queue delay p99 %.1f us, utilisation of 5 Gbit/s "
	       "%.1f%%\n", pct(&s.qdelay_ns, 0.99) / 1e3,
	       sim_util(&s) * 200);
	check(reacted > 0 && reacted <= 5 * srtt_us,
	      "cwnd did not drop 10%% within 5 RTTs (after %zu us)", reacted);
	check(after_min <= before * 7 / 10,
	      "cwnd only fell to %lu from %lu", (unsigned long)after_min,
	      (unsigned long)before);
	check(pct(&s.qdelay_ns, 0.99) <= 2 * c.p.target_delay_us * US,
	      "queue not back near target after the step");
	sim_free(&s);
}

union cc_blob {
	unsigned char b[RT_CC_STATE_MAX];
	uint64_t align;
};

/* Feed @n uncongested ACKs of one mss each, 1 us apart from @t. */
static uint64_t feed_acks(const struct rt_cc_ops *ops, void *st, uint64_t t,
			  int n, uint64_t rtt, uint64_t base, uint64_t ce)
{
	struct rt_cc_ack a;
	int i;

	for (i = 0; i < n; i++) {
		memset(&a, 0, sizeof(a));
		a.now_us = t++;
		a.acked_bytes = 1500;
		a.rtt_us = rtt;
		a.base_rtt_us = base;
		a.srtt_us = rtt;
		a.ecn_ce_bytes = ce;
		ops->on_ack(st, &a);
	}
	return t;
}

static void case_swift_reacts_to_loss(void)
{
	const struct rt_cc_ops *ops = &rt_cc_swift;
	struct rt_cc_params p = { .mss = 1500, .target_delay_us = 50,
				  .init_cwnd_bytes = 150000,
				  .max_cwnd_bytes = 1 << 20,
				  .max_mdf_milli = 500 };
	union cc_blob st;
	uint64_t c0, c1, c2, c3, t;
	struct sim_cfg c;
	struct sim s;
	double util;

	/* random loss on an uncongested path (queueing 10 us < target/2):
	 * not congestion, the window stays */
	memset(&st, 0, sizeof(st));
	ops->init(st.b, &p, 0);
	t = feed_acks(ops, st.b, 1000, 10, 30, 20, 0);
	c0 = ops->cwnd_bytes(st.b);
	ops->on_loss(st.b, t, 1500, 30);
	c1 = ops->cwnd_bytes(st.b);
	printf("unit: no queue: cwnd %lu -> loss %lu\n", (unsigned long)c0, (unsigned long)c1);
	check(c1 >= c0, "loss without queueing shrank cwnd %lu -> %lu", (unsigned long)c0,
	      (unsigned long)c1);
	/* loss with a queue of 40 us (>= target/2): multiplicative decrease */
	memset(&st, 0, sizeof(st));
	ops->init(st.b, &p, 0);
	t = feed_acks(ops, st.b, 1000, 10, 60, 20, 0);
	t += 100; /* past the once-per-RTT limit of any delay-based decrease */
	c0 = ops->cwnd_bytes(st.b);
	ops->on_loss(st.b, t, 1500, 60);
	c1 = ops->cwnd_bytes(st.b);
	ops->on_loss(st.b, t + 10, 1500, 60);  /* same RTT: no effect */
	ops->on_loss(st.b, t + 59, 3000, 60);
	c2 = ops->cwnd_bytes(st.b);
	ops->on_loss(st.b, t + 60, 1500, 60);  /* next RTT: decrease again */
	c3 = ops->cwnd_bytes(st.b);
	printf("unit: queue: cwnd %lu -> loss %lu (x%.3f) -> 2 more losses within "
	       "one srtt %lu -> loss one srtt later %lu\n",
	       (unsigned long)c0, (unsigned long)c1, (double)c1 / c0,
	       (unsigned long)c2, (unsigned long)c3);
	check(fabs((double)c1 / c0 - 0.5) < 0.01,
	      "loss changed cwnd by x%.3f, expected x0.5", (double)c1 / c0);
	check(c2 == c1, "second loss within one RTT changed cwnd");
	check(fabs((double)c3 / c1 - 0.5) < 0.01,
	      "loss one RTT later changed cwnd by x%.3f", (double)c3 / c1);

	/* loss-driven equilibrium: a tail-drop buffer (32 packets, about
	 * 38 us at 10 Gbit/s) shallower than the 50 us target */
	base_cfg(&c);
	c.p.target_delay_us = 50;
	c.queue_limit = 32 * 1500;
	c.duration_ns = 100 * MS;
	c.meas_ns = 50 * MS;
	c.trace_ns = 0;
	sim_run(&s, &c);
	util = sim_util(&s);
	printf("sim: tail-drop queue of 32 packets, shallower than the target: "
	       "%lu losses of %lu packets, cwnd %lu, utilisation %.1f%%\n",
	       (unsigned long)s.losses, (unsigned long)s.f[0].sent,
	       (unsigned long)cwnd_of(c.ops, s.f[0].st.b), util * 100);
	check(s.losses > 0, "no losses in the tail-drop simulation");
	check(s.losses * 100 < s.f[0].sent, "loss rate above 1%%");
	check(cwnd_of(c.ops, s.f[0].st.b) < c.p.max_cwnd_bytes / 8,
	      "losses did not bound the window");
	check(util >= 0.8, "utilisation %.1f%% < 80%% under loss", util * 100);
	sim_free(&s);
}

static void case_swift_reacts_to_timeout(void)
{
	const struct rt_cc_ops *ops = &rt_cc_swift;
	struct rt_cc_params p = { .mss = 1500, .init_cwnd_bytes = 150000,
				  .min_cwnd_bytes = 100,
				  .max_cwnd_bytes = 1 << 20 };
	union cc_blob st;
	uint64_t c0, c1, c2, c3, c4, r;

	memset(&st, 0, sizeof(st));
	ops->init(st.b, &p, 0);
	c0 = ops->cwnd_bytes(st.b);
	ops->on_timeout(st.b, 1000);
	c1 = ops->cwnd_bytes(st.b);
	ops->on_timeout(st.b, 3000);
	c2 = ops->cwnd_bytes(st.b);
	r = ops->pacing_rate_bps(st.b, 30);
	/* recovery: ACKs of new data below target grow it again */
	feed_acks(ops, st.b, 5000, 20, 30, 20, 0);
	c3 = ops->cwnd_bytes(st.b);
	ops->on_timeout(st.b, 9000);  /* first RTO after progress: halve */
	c4 = ops->cwnd_bytes(st.b);
	printf("cwnd %lu -> RTO %lu -> 2nd RTO %lu (min %lu, pacing %lu "
	       "bit/s at srtt 30 us) -> ACK %lu -> RTO %lu\n",
	       (unsigned long)c0, (unsigned long)c1, (unsigned long)c2,
	       (unsigned long)p.min_cwnd_bytes, (unsigned long)r,
	       (unsigned long)c3, (unsigned long)c4);
	check(c1 < c0 && c1 >= c0 / 2 - 1, "first RTO: %lu -> %lu",
	      (unsigned long)c0, (unsigned long)c1);
	check(c2 == p.min_cwnd_bytes, "second RTO did not reset to min");
	check(r > 0, "no pacing rate at a sub-MSS window");
	check(c3 > c2, "window did not grow after the RTOs");
	check(c4 < c3 && c4 > p.min_cwnd_bytes,
	      "RTO after progress should decrease, not reset (%lu -> %lu)",
	      (unsigned long)c3, (unsigned long)c4);
}

static void case_swift_ecn(void)
{
	const struct rt_cc_ops *ops = &rt_cc_swift;
	struct rt_cc_params p = { .mss = 1500, .target_delay_us = 50,
				  .init_cwnd_bytes = 150000,
				  .max_cwnd_bytes = 1 << 20 };
	union cc_blob st;
	uint64_t c0, c1, c2, t, kq;
	struct sim_cfg c;
	struct sim s;
	double util;

	memset(&st, 0, sizeof(st));
	ops->init(st.b, &p, 0);
	/* 300 unmarked ACKs at low delay: alpha decays, cwnd grows */
	t = feed_acks(ops, st.b, 1000, 300, 25, 20, 0);
	c0 = ops->cwnd_bytes(st.b);
	t = feed_acks(ops, st.b, t, 1, 25, 20, 1500);
	c1 = ops->cwnd_bytes(st.b);
	t = feed_acks(ops, st.b, t + 100, 200, 25, 20, 1500);
	c2 = ops->cwnd_bytes(st.b);
	printf("unit: cwnd %lu -> one CE ACK %lu -> 200 CE ACKs over "
	       "several RTTs %lu\n", (unsigned long)c0, (unsigned long)c1,
	       (unsigned long)c2);
	check(c1 < c0, "a CE mark did not reduce cwnd");
	check(c2 < c1 / 2, "persistent CE marks did not keep reducing cwnd");

	/* sim: target so high delay never triggers; ECN must hold the queue */
	base_cfg(&c);
	c.p.target_delay_us = 100000;
	c.ecn_k = 40 * 1500;
	c.duration_ns = 100 * MS;
	c.meas_ns = 50 * MS;
	sim_run(&s, &c);
	util = sim_util(&s);
	kq = (uint64_t)(c.ecn_k * 8e9 / c.rate_bps);
	printf("sim: K = 40 packets (%.0f us), delay signal off: %lu of %lu "
	       "marked, queue delay p99 %.1f us, max queue %lu bytes, "
	       "utilisation %.1f%%, cwnd %lu\n", kq / 1e3,
	       (unsigned long)s.f[0].marked, (unsigned long)s.f[0].sent,
	       pct(&s.qdelay_ns, 0.99) / 1e3, (unsigned long)s.qbytes_max_meas,
	       util * 100, (unsigned long)cwnd_of(c.ops, s.f[0].st.b));
	check(s.f[0].marked > 0, "nothing marked");
	check(s.qbytes_max_meas <= 2 * c.ecn_k,
	      "queue reached %lu bytes, more than 2 x K",
	      (unsigned long)s.qbytes_max_meas);
	check(util >= 0.9, "utilisation %.1f%% < 90%% with ECN", util * 100);
	sim_free(&s);
}

static void case_swift_no_throttle_uncongested(void)
{
	struct sim_cfg c;
	struct sim s;
	uint64_t maxc, lo = UINT64_MAX;
	double gbps, ideal;
	size_t k;

	base_cfg(&c);
	c.rate_bps = 100e9;             /* BDP 250 KB > max window */
	c.p.max_cwnd_bytes = 64 * 1500; /* per-peer window limit */
	c.jitter_ns = 20 * US;          /* host noise, under the target */
	c.duration_ns = 100 * MS;
	c.meas_ns = 50 * MS;
	c.trace_ns = 10 * US;
	sim_run(&s, &c);
	maxc = c.p.max_cwnd_bytes;
	for (k = c.meas_ns / c.trace_ns; k < s.ntrace; k++)
		if (s.trace[k][0] < lo)
			lo = s.trace[k][0];
	gbps = s.f[0].bytes_meas * 8.0 / ((c.duration_ns - c.meas_ns) / 1e9) /
	       1e9;
	/* window-limited ideal: max window per mean RTT (base + jitter/2) */
	ideal = maxc * 8.0 / ((c.base_rtt_ns + c.jitter_ns / 2) / 1e9) / 1e9;
	printf("100 Gbit/s path, base RTT 20 us + 0-20 us jitter, max window "
	       "%lu: cwnd min over last 50 ms %lu, throughput %.1f Gbit/s "
	       "(window-limited ideal ~%.1f), queue p99 %.1f us\n",
	       (unsigned long)maxc, (unsigned long)lo, gbps, ideal,
	       pct(&s.qdelay_ns, 0.99) / 1e3);
	check(lo == maxc, "cwnd fell to %lu below the max %lu on an idle path",
	      (unsigned long)lo, (unsigned long)maxc);
	check(gbps >= 0.9 * ideal, "throughput %.1f < 90%% of %.1f Gbit/s",
	      gbps, ideal);
	sim_free(&s);
}

static void case_swift_incast_fractional(void)
{
	struct sim_cfg c;
	struct sim s;
	uint64_t lo = UINT64_MAX, hi = 0, p99, w;
	double util, jain;
	int i, below = 0;

	base_cfg(&c);
	c.nflows = 64;  /* fair share ~1.4 KB < 1 MSS: fractional windows */
	for (i = 0; i < c.nflows; i++)
		c.start_ns[i] = i * 100 * US;
	c.duration_ns = 300 * MS;
	c.meas_ns = 150 * MS;
	sim_run(&s, &c);
	for (i = 0; i < c.nflows; i++) {
		w = cwnd_of(c.ops, s.f[i].st.b);
		lo = w < lo ? w : lo;
		hi = w > hi ? w : hi;
		below += w < c.p.mss;
	}
	util = sim_util(&s);
	jain = sim_jain(&s);
	p99 = pct(&s.qdelay_ns, 0.99);
	printf("64 flows, 10 Gbit/s, base RTT 20 us, target 50 us: "
	       "utilisation %.1f%%, Jain %.4f, queue delay p50 %.1f us "
	       "p99 %.1f us, cwnd %lu..%lu bytes (%d flows below 1 MSS)\n",
	       util * 100, jain, pct(&s.qdelay_ns, 0.5) / 1e3, p99 / 1e3,
	       (unsigned long)lo, (unsigned long)hi, below);
	check(below > 0, "no flow ran with a fractional window");
	check(util >= 0.9, "utilisation %.1f%% < 90%%", util * 100);
	check(jain >= 0.9, "Jain index %.4f < 0.9", jain);
	/* flow scaling lets tiny windows aim at up to 2 x target */
	check(p99 <= 5 * c.p.target_delay_us * US,
	      "p99 queue delay %.1f us > 5 x target", p99 / 1e3);
	sim_free(&s);
}

/*
 * A path of a peer whose sub-MSS path windows pool (paths.c) passes the
 * pooled window as flow_cwnd_bytes: flow scaling must then follow the
 * flow's size, not the share's.  At 65 us of queueing (target 50 us), a
 * quarter-MSS window on its own aims at ~81 us and grows; the same window
 * as a share of a 64-MSS flow aims at ~50 us and shrinks.
 */
static void case_swift_flow_scaling_follows_flow_window(void)
{
	const struct rt_cc_ops *ops = &rt_cc_swift;
	struct rt_cc_params p = { .mss = 1500, .target_delay_us = 50,
				  .init_cwnd_bytes = 375,
				  .min_cwnd_bytes = 1500 / 64,
				  .max_cwnd_bytes = 1 << 20 };
	union cc_blob own, share;
	struct rt_cc_ack a;
	uint64_t c0, c_own, c_share, t = 1000;
	int i;

	memset(&own, 0, sizeof(own));
	memset(&share, 0, sizeof(share));
	ops->init(own.b, &p, 0);
	ops->init(share.b, &p, 0);
	c0 = ops->cwnd_bytes(own.b);
	for (i = 0; i < 20; i++, t += 200) { /* one ACK per RTT-ish */
		memset(&a, 0, sizeof(a));
		a.now_us = t;
		a.acked_bytes = 375;
		a.rtt_us = 85;
		a.base_rtt_us = 20;
		a.srtt_us = 85;
		ops->on_ack(own.b, &a);
		a.flow_cwnd_bytes = 64 * 1500;
		ops->on_ack(share.b, &a);
	}
	c_own = ops->cwnd_bytes(own.b);
	c_share = ops->cwnd_bytes(share.b);
	printf("65 us queueing, target 50 us, window %lu: on its own -> %lu, "
	       "as a share of a 64-MSS flow -> %lu\n", (unsigned long)c0,
	       (unsigned long)c_own, (unsigned long)c_share);
	check(c_own > c0, "a quarter-MSS flow under its scaled target did not grow");
	check(c_share < c0, "a share of a 64-MSS flow over its target did not shrink");
}

static void case_none_fixed_window(void)
{
	const struct rt_cc_ops *ops = &rt_cc_none;
	struct rt_cc_params p = { .mss = 1500, .init_cwnd_bytes = 15000,
				  .max_cwnd_bytes = 300000 };
	union cc_blob st;
	uint64_t c0, c1;

	memset(&st, 0, sizeof(st));
	ops->init(st.b, &p, 0);
	c0 = ops->cwnd_bytes(st.b);
	feed_acks(ops, st.b, 10, 100, 5000, 20, 1500);
	ops->on_loss(st.b, 200, 1500, 30);
	ops->on_loss(st.b, 300, 1500, 30);
	ops->on_timeout(st.b, 400);
	ops->on_timeout(st.b, 800);
	c1 = ops->cwnd_bytes(st.b);
	printf("none: cwnd %lu -> after marks, losses, RTOs %lu, pacing %lu\n",
	       (unsigned long)c0, (unsigned long)c1,
	       (unsigned long)ops->pacing_rate_bps(st.b, 30));
	check(c0 == p.max_cwnd_bytes, "window %lu is not max_cwnd",
	      (unsigned long)c0);
	check(c1 == c0, "window changed");
	check(ops->pacing_rate_bps(st.b, 30) == 0, "none is paced");
	p.max_cwnd_bytes = 0;
	memset(&st, 0, sizeof(st));
	ops->init(st.b, &p, 0);
	printf("none with max 0: cwnd %lu (init %lu)\n",
	       (unsigned long)ops->cwnd_bytes(st.b),
	       (unsigned long)p.init_cwnd_bytes);
	check(ops->cwnd_bytes(st.b) == p.init_cwnd_bytes,
	      "max 0 should fall back to init_cwnd");
}

static void case_find(void)
{
	const struct rt_cc_ops *sw = rt_cc_find("swift"),
			       *no = rt_cc_find("none");

	printf("find: swift=%p (%s) none=%p (%s) bogus=%p NULL=%p\n",
	       (const void *)sw, sw ? sw->name : "-", (const void *)no,
	       no ? no->name : "-", (const void *)rt_cc_find("bogus"),
	       (const void *)rt_cc_find(NULL));
	check(sw == &rt_cc_swift, "swift not found");
	check(no == &rt_cc_none, "none not found");
	check(!rt_cc_find("bogus") && !rt_cc_find("") && !rt_cc_find(NULL) &&
	      !rt_cc_find("Swift"), "unknown names must give NULL");
	check(sw && sw->init && sw->on_ack && sw->on_loss && sw->on_timeout &&
	      sw->cwnd_bytes && sw->pacing_rate_bps, "swift ops incomplete");
	check(no && no->init && no->on_ack && no->on_loss && no->on_timeout &&
	      no->cwnd_bytes && no->pacing_rate_bps, "none ops incomplete");
}

static const struct {
	const char *name;
	void (*fn)(void);
} cases[] = {
	{ "swift_converges_two_flows", case_swift_converges_two_flows },
	{ "swift_reacts_to_delay", case_swift_reacts_to_delay },
	{ "swift_reacts_to_loss", case_swift_reacts_to_loss },
	{ "swift_reacts_to_timeout", case_swift_reacts_to_timeout },
	{ "swift_ecn", case_swift_ecn },
	{ "swift_no_throttle_uncongested", case_swift_no_throttle_uncongested },
	{ "swift_incast_fractional", case_swift_incast_fractional },
	{ "swift_flow_scaling_follows_flow_window", case_swift_flow_scaling_follows_flow_window },
	{ "none_fixed_window", case_none_fixed_window },
	{ "find", case_find },
};

int main(int argc, char **argv)
{
	size_t i;

	for (i = 0; argc == 2 && i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (strcmp(argv[1], cases[i].name))
			continue;
		cases[i].fn();
		printf("%s: %s\n", cases[i].name, failed ? "FAIL" : "ok");
		return failed;
	}
	fprintf(stderr, "usage: %s <case>; cases:\n", argv[0]);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		fprintf(stderr, "  %s\n", cases[i].name);
	return 2;
}
