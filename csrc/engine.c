/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The progress engine: the only place that reads the clock.
 *
 * One iteration (rt_engine_once) receives a batch, releases fault-held
 * packets, sends ACKs, runs timers and transmits what windows allow.
 * The thread busy-polls while there was activity in the last
 * busy_poll_us, then sleeps in ppoll() on the receive socket and an
 * eventfd until the next protocol timer.  While an application thread
 * spins in rt_cq_wait() it drives the engine itself and the thread backs
 * off, so a waiting process uses one core, not two.
 *
 * Spinning is polite: a pass that found no work ends in sched_yield().
 * On a core of its own that returns at once (well under a microsecond);
 * on a host with more busy threads than cores it hands the core to them -
 * other endpoints' engines, the kernel's softirq threads that forward and
 * deliver packets - now rather than at the end of a scheduler slice
 * (milliseconds), which would otherwise be added to every RTT and leave
 * a bottleneck idle while its senders wait for a CPU.
 */
#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <stdlib.h>

#include "internal.h"

uint64_t rt_now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* Remove peers without work from the active list and run their timers. */
static int run_peers(rt_ctx *ctx, uint64_t now)
{
	int work = 0;
	struct rt_peer **pp = &ctx->active;
	while (*pp) {
		struct rt_peer *p = *pp;
		rt_tx_timers(p, now);
		work += rt_tx_push(p, now);
		if (!rt_peer_has_work(p) && !p->ack_pending) {
			p->active = false;
			*pp = p->anext;
			p->anext = NULL;
			continue;
		}
		pp = &p->anext;
	}
	return work;
}

int rt_engine_once(rt_ctx *ctx, uint64_t now)
{
	/* several threads drive the engine: keep protocol time monotonic */
	if (now < ctx->now_us)
		now = ctx->now_us;
	ctx->now_us = now;
	ctx->io.loops++;
	int work = 0;
	if (ctx->rx_defer_len) {
		rt_rx_deferred(ctx, now);
		work++;
	}
	for (int i = 0; i < 4; i++) {
		int n = rt_io_recv(ctx, now);
		work += n;
		if (n < RT_RX_BATCH)
			break;
	}
	if (ctx->fault.nheld)
		work += rt_fault_release(ctx, now);
	rt_rx_flush_acks(ctx, now);
	work += run_peers(ctx, now);
	rt_io_flush(ctx, now);
	for (int w = 0; w < RT_MAX_PATHS / 64; w++)
		if (ctx->io.repath_req[w]) {
			rt_io_repath(ctx);
			break;
		}
	if (work)
		ctx->last_activity_us = now;
	return work;
}

int rt_ctx_progress(rt_ctx *ctx)
{
	if (!ctx)
		return rt_seterr(RT_ERR_INVAL, "rt_ctx_progress: context is NULL");
	pthread_mutex_lock(&ctx->lock);
	int n = ctx->destroying ? 0 : rt_engine_once(ctx, rt_now_us());
	pthread_mutex_unlock(&ctx->lock);
	return n;
}

int rt_inject_packet(rt_ctx *ctx, const void *pkt, size_t len, const char *from_ip,
		     uint16_t from_port)
{
	if (!ctx || (!pkt && len))
		return rt_seterr(RT_ERR_INVAL, "rt_inject_packet: context and packet are required");
	if (len > 65535)
		return rt_seterr(RT_ERR_INVAL, "rt_inject_packet: %zu bytes exceed a UDP datagram", len);
	struct sockaddr_in from;
	memset(&from, 0, sizeof(from));
	from.sin_family = AF_INET;
	from.sin_port = htons(from_port);
	if (inet_pton(AF_INET, from_ip ? from_ip : "127.0.0.1", &from.sin_addr) != 1)
		return rt_seterr(RT_ERR_INVAL, "rt_inject_packet: bad source address");
	uint8_t *copy = malloc(len ? len : 1); /* the receive path may patch bytes */
	if (!copy)
		return rt_seterr(RT_ERR_NOMEM, "rt_inject_packet: out of memory");
	if (len)
		memcpy(copy, pkt, len);
	pthread_mutex_lock(&ctx->lock);
	if (!ctx->destroying) {
		uint64_t now = rt_now_us();
		if (now < ctx->now_us)
			now = ctx->now_us;
		ctx->now_us = now;
		rt_rx_datagram(ctx, copy, (uint32_t)len, &from, 0, now, now);
		rt_rx_deferred(ctx, now);
		rt_rx_flush_acks(ctx, now);
		rt_io_flush(ctx, now);
		rt_place_fence(ctx);
	}
	pthread_mutex_unlock(&ctx->lock);
	free(copy);
	return RT_OK;
}

static uint64_t next_deadline(rt_ctx *ctx, uint64_t now)
{
	uint64_t t = now + 100000; /* wake at least every 100 ms */
	for (struct rt_peer *p = ctx->active; p; p = p->anext) {
		uint64_t d = rt_tx_next_timer(p, now);
		if (p->ack_pending && p->ack_rx_us + 20 < d)
			d = p->ack_rx_us + 20;
		if (d < t)
			t = d;
	}
	if (ctx->fault.nheld) {
		uint64_t d = rt_fault_next_us(&ctx->fault);
		if (d < t)
			t = d;
	}
	return t;
}

static void drain_evfd(int fd)
{
	uint64_t v;
	while (read(fd, &v, sizeof(v)) == (ssize_t)sizeof(v))
		;
}

static void *engine_main(void *arg)
{
	rt_ctx *ctx = arg;
	struct pollfd pfd[2];
	pfd[0].fd = ctx->io.fds[0];
	pfd[0].events = POLLIN;
	pfd[1].fd = ctx->io.evfd;
	pfd[1].events = POLLIN;
	while (!__atomic_load_n(&ctx->stop, __ATOMIC_ACQUIRE)) {
		uint64_t app_us = __atomic_load_n(&ctx->app_active_us, __ATOMIC_RELAXED);
		if (__atomic_load_n(&ctx->app_driving, __ATOMIC_ACQUIRE) > 0 ||
		    rt_now_us() - app_us < 100) {
			/* an application thread is driving: stay out of its way */
			struct timespec ts = { 0, 200000 };
			__atomic_store_n(&ctx->backing_off, 1, __ATOMIC_RELEASE);
			ppoll(&pfd[1], 1, &ts, NULL);
			__atomic_store_n(&ctx->backing_off, 0, __ATOMIC_RELEASE);
			drain_evfd(ctx->io.evfd);
			continue;
		}
		pthread_mutex_lock(&ctx->lock);
		uint64_t now = rt_now_us(); /* read under the lock: see rt_engine_once */
		int work = rt_engine_once(ctx, now);
		now = ctx->now_us;
		bool spin = now - ctx->last_activity_us < ctx->cfg.busy_poll_us ||
			    ctx->rx_defer_len; /* an ACK set aside: next pass */
		uint64_t deadline = spin ? now : next_deadline(ctx, now);
		if (!spin)
			__atomic_store_n(&ctx->sleeping, 1, __ATOMIC_RELEASE);
		pthread_mutex_unlock(&ctx->lock);
		if (spin) {
			if (!work)
				sched_yield(); /* polite spinning: see the top of this file */
			continue;
		}
		now = rt_now_us();
		if (deadline > now) {
			uint64_t us = deadline - now;
			struct timespec ts = { (time_t)(us / 1000000), (long)(us % 1000000) * 1000 };
			int r = ppoll(pfd, 2, &ts, NULL);
			if (r > 0 && (pfd[1].revents & POLLIN))
				drain_evfd(ctx->io.evfd);
		}
		__atomic_store_n(&ctx->sleeping, 0, __ATOMIC_RELEASE);
		pthread_mutex_lock(&ctx->lock);
		ctx->last_activity_us = rt_now_us(); /* woke up: spin for a while */
		pthread_mutex_unlock(&ctx->lock);
	}
	return NULL;
}

int rt_engine_start(rt_ctx *ctx)
{
	if (ctx->cfg.progress == RT_PROGRESS_MANUAL)
		return RT_OK;
	int r = pthread_create(&ctx->thread, NULL, engine_main, ctx);
	if (r)
		return rt_seterr(RT_ERR_SYS, "cannot start the progress thread: %s", strerror(r));
	ctx->has_thread = true;
	return RT_OK;
}

/* wake_thread() - make the progress thread's ppoll() return. */
static void wake_thread(rt_ctx *ctx)
{
	uint64_t one = 1;
	if (write(ctx->io.evfd, &one, sizeof(one)) < 0) {
		/* eventfd counter saturated: the thread is awake anyway */
	}
}

void rt_engine_stop(rt_ctx *ctx)
{
	if (!ctx->has_thread)
		return;
	__atomic_store_n(&ctx->stop, 1, __ATOMIC_RELEASE);
	wake_thread(ctx); /* if that fails, it re-checks stop within 100 ms */
	pthread_join(ctx->thread, NULL);
	ctx->has_thread = false;
}

void rt_engine_kick(rt_ctx *ctx)
{
	if (__atomic_load_n(&ctx->sleeping, __ATOMIC_ACQUIRE))
		wake_thread(ctx);
}

void rt_engine_app_enter(rt_ctx *ctx)
{
	__atomic_add_fetch(&ctx->app_driving, 1, __ATOMIC_ACQ_REL);
}

void rt_engine_app_leave(rt_ctx *ctx)
{
	/* no wake-up here (it would cost a system call on every return with
	 * a completion): the backing-off thread re-checks every 200 us, and
	 * a thread that goes on to sleep calls rt_engine_app_block() */
	__atomic_sub_fetch(&ctx->app_driving, 1, __ATOMIC_ACQ_REL);
}

void rt_engine_app_block(rt_ctx *ctx)
{
	/* the last driving thread is about to sleep on its queue: end the
	 * progress thread's back-off now instead of up to 200 us later */
	__atomic_store_n(&ctx->app_active_us, 0, __ATOMIC_RELAXED);
	if (__atomic_load_n(&ctx->app_driving, __ATOMIC_ACQUIRE) == 0 &&
	    __atomic_load_n(&ctx->backing_off, __ATOMIC_ACQUIRE))
		wake_thread(ctx);
}
