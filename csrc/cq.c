/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Completion queues.  The queue grows instead of overflowing, so no
 * completion is lost (unless memory runs out, which is logged).  Waiters first spin while driving the progress
 * engine themselves (their cycles replace the progress thread's, which
 * backs off meanwhile), then sleep on a condition variable.
 */
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

int rt_cq_create(rt_ctx *ctx, rt_cq **out)
{
	if (!ctx || !out)
		return rt_seterr(RT_ERR_INVAL, "rt_cq_create: context and output pointer are required");
	struct rt_cq *cq = calloc(1, sizeof(*cq));
	if (!cq)
		return rt_seterr(RT_ERR_NOMEM, "rt_cq_create: out of memory");
	cq->cap = 256;
	cq->ring = calloc(cq->cap, sizeof(*cq->ring));
	if (!cq->ring) {
		free(cq);
		return rt_seterr(RT_ERR_NOMEM, "rt_cq_create: out of memory");
	}
	pthread_mutex_init(&cq->lock, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&cq->cond, &ca);
	pthread_condattr_destroy(&ca);
	cq->ctx = ctx;
	pthread_mutex_lock(&ctx->lock);
	if (ctx->destroying) {
		pthread_mutex_unlock(&ctx->lock);
		rt_cq_free(cq);
		return rt_seterr(RT_ERR_CLOSED, "rt_cq_create: context is closing");
	}
	cq->next = ctx->cqs;
	ctx->cqs = cq;
	pthread_mutex_unlock(&ctx->lock);
	*out = cq;
	return RT_OK;
}

void rt_cq_free(struct rt_cq *cq)
{
	pthread_mutex_destroy(&cq->lock);
	pthread_cond_destroy(&cq->cond);
	free(cq->ring);
	free(cq);
}

int rt_cq_destroy(rt_cq *cq)
{
	if (!cq)
		return RT_OK;
	rt_ctx *ctx = cq->ctx;
	pthread_mutex_lock(&ctx->lock);
	if (cq->users) {
		uint32_t u = cq->users;
		pthread_mutex_unlock(&ctx->lock);
		return rt_seterr(RT_ERR_BUSY, "rt_cq_destroy: %u endpoint(s) still report to this "
				 "queue; close them first", u);
	}
	struct rt_cq **pp = &ctx->cqs;
	while (*pp && *pp != cq)
		pp = &(*pp)->next;
	if (*pp)
		*pp = cq->next;
	pthread_mutex_unlock(&ctx->lock);
	rt_cq_free(cq);
	return RT_OK;
}

/* Called with the engine lock held (lock order: engine, then cq). */
void rt_cq_push(struct rt_cq *cq, const struct rt_wc *wc)
{
	pthread_mutex_lock(&cq->lock);
	if (cq->count == cq->cap) {
		uint32_t ncap = cq->cap * 2;
		struct rt_wc *n = malloc(ncap * sizeof(*n));
		if (!n) {
			/* out of memory: the one case where a completion is lost */
			pthread_mutex_unlock(&cq->lock);
			rt_log(3, "completion queue cannot grow: out of memory, completion dropped");
			return;
		}
		for (uint32_t i = 0; i < cq->count; i++)
			n[i] = cq->ring[(cq->head + i) % cq->cap];
		free(cq->ring);
		cq->ring = n;
		cq->head = 0;
		cq->cap = ncap;
	}
	cq->ring[(cq->head + cq->count) % cq->cap] = *wc;
	cq->count++;
	if (cq->waiters)
		pthread_cond_signal(&cq->cond);
	pthread_mutex_unlock(&cq->lock);
}

static int cq_take(struct rt_cq *cq, struct rt_wc *wc, int n)
{
	int k = 0;
	while (k < n && cq->count) {
		wc[k++] = cq->ring[cq->head];
		cq->head = (cq->head + 1) % cq->cap;
		cq->count--;
	}
	return k;
}

static int cq_try(struct rt_cq *cq, struct rt_wc *wc, int n)
{
	if (!__atomic_load_n(&cq->count, __ATOMIC_ACQUIRE))
		return 0;
	pthread_mutex_lock(&cq->lock);
	int k = cq_take(cq, wc, n);
	pthread_mutex_unlock(&cq->lock);
	return k;
}

/* drive() - one engine pass if nobody else is making one; returns the
 * pass's work count (0 when the engine was busy elsewhere). */
static int drive(rt_ctx *ctx)
{
	int work = 0;
	/* tell the progress thread an application thread is polling, so it
	 * backs off instead of competing for the lock and a core */
	uint64_t now = rt_now_us();
	__atomic_store_n(&ctx->app_active_us, now, __ATOMIC_RELAXED);
	if (pthread_mutex_trylock(&ctx->lock) == 0) {
		if (!ctx->destroying)
			work = rt_engine_once(ctx, now);
		bool deferred = ctx->rx_defer_len != 0;
		pthread_mutex_unlock(&ctx->lock);
		/* an ACK set aside for our next call: if we make none, the
		 * progress thread (if asleep) must handle it */
		if (deferred)
			rt_engine_kick(ctx);
	}
	return work;
}

int rt_cq_poll(rt_cq *cq, struct rt_wc *wc, int n)
{
	if (!cq || (!wc && n > 0) || n < 0)
		return rt_seterr(RT_ERR_INVAL, "rt_cq_poll: queue and a completion array are required");
	int k = cq_try(cq, wc, n);
	if (k || n == 0)
		return k;
	drive(cq->ctx);
	return cq_try(cq, wc, n);
}

int rt_cq_wait(rt_cq *cq, struct rt_wc *wc, int n, int64_t timeout_us)
{
	if (!cq || !wc || n <= 0)
		return rt_seterr(RT_ERR_INVAL, "rt_cq_wait: queue, completion array and n > 0 required");
	rt_ctx *ctx = cq->ctx;
	if (timeout_us < 0)
		timeout_us = 0;
	uint64_t start = rt_now_us();
	uint64_t deadline = start + (uint64_t)timeout_us;
	uint32_t sig = __atomic_load_n(&cq->signals, __ATOMIC_ACQUIRE);
	int k = cq_try(cq, wc, n);
	if (k)
		return k;
	/* phase 1: spin, driving progress ourselves */
	uint64_t spin_until = start + ctx->cfg.busy_poll_us;
	if (ctx->cfg.progress == RT_PROGRESS_MANUAL)
		spin_until = deadline; /* nobody else will drive it */
	if (spin_until > deadline)
		spin_until = deadline;
	rt_engine_app_enter(ctx);
	for (;;) {
		int work = drive(ctx);
		k = cq_try(cq, wc, n);
		if (k)
			break;
		if (!work)
			sched_yield(); /* polite spinning, as in engine.c */
		uint64_t now = rt_now_us();
		if (now >= spin_until || __atomic_load_n(&cq->signals, __ATOMIC_ACQUIRE) != sig)
			break;
	}
	rt_engine_app_leave(ctx);
	if (k || ctx->cfg.progress == RT_PROGRESS_MANUAL ||
	    __atomic_load_n(&cq->signals, __ATOMIC_ACQUIRE) != sig)
		return k;
	/* phase 2: sleep; the progress thread runs the protocol */
	rt_engine_app_block(ctx);
	pthread_mutex_lock(&cq->lock);
	cq->waiters++;
	while (!cq->count && cq->signals == sig) {
		uint64_t now = rt_now_us();
		if (now >= deadline)
			break;
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		uint64_t wait_us = deadline - now;
		if (wait_us > 100000)
			wait_us = 100000; /* re-check periodically */
		ts.tv_sec += (time_t)(wait_us / 1000000);
		ts.tv_nsec += (long)(wait_us % 1000000) * 1000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&cq->cond, &cq->lock, &ts);
	}
	cq->waiters--;
	k = cq_take(cq, wc, n);
	pthread_mutex_unlock(&cq->lock);
	return k;
}

int rt_cq_signal(rt_cq *cq)
{
	if (!cq)
		return rt_seterr(RT_ERR_INVAL, "rt_cq_signal: queue is NULL");
	pthread_mutex_lock(&cq->lock);
	__atomic_add_fetch(&cq->signals, 1, __ATOMIC_RELEASE);
	pthread_cond_broadcast(&cq->cond);
	pthread_mutex_unlock(&cq->lock);
	return RT_OK;
}

uint64_t rt_cq_depth(rt_cq *cq)
{
	if (!cq)
		return 0;
	return __atomic_load_n(&cq->count, __ATOMIC_ACQUIRE);
}
