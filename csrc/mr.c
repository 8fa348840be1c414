/* SPDX-License-Identifier: Apache-2.0 */
/* Memory regions: registration, rkey table, descriptors. */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "internal.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23 /* Linux 5.14 */
#endif

/*
 * mr_populate() - fault in the pages of a region that will receive data,
 * as verbs registration pins them: a fresh calloc'ed/np.zeros buffer
 * otherwise costs a page fault plus a page clear per 4 KiB on the
 * receive path, in the middle of a transfer.  Best effort: kernels
 * without MADV_POPULATE_WRITE, or mappings that refuse it, keep lazy
 * faulting.
 */
static void mr_populate(void *addr, uint64_t len)
{
	long pg = sysconf(_SC_PAGESIZE);
	if (pg <= 0 || len == 0)
		return;
	uintptr_t a = (uintptr_t)addr, start = (a + (uintptr_t)pg - 1) & ~((uintptr_t)pg - 1);
	uintptr_t end = (a + len) & ~((uintptr_t)pg - 1);
	if (end > start)
		(void)madvise((void *)start, end - start, MADV_POPULATE_WRITE);
}

static uint32_t mr_bucket(const rt_ctx *ctx, uint64_t rkey)
{
	return (uint32_t)((rkey * 0x9E3779B97F4A7C15ull) >> 32) & (ctx->mr_hash_size - 1);
}

struct rt_mr *rt_mr_lookup(rt_ctx *ctx, uint64_t rkey)
{
	if (!ctx->mr_hash)
		return NULL;
	for (struct rt_mr *m = ctx->mr_hash[mr_bucket(ctx, rkey)]; m; m = m->hnext)
		if (m->rkey == rkey)
			return m;
	return NULL;
}

int rt_mr_reg(rt_ctx *ctx, void *addr, uint64_t len, uint32_t access, rt_mr **out)
{
	if (!ctx || !out)
		return rt_seterr(RT_ERR_INVAL, "rt_mr_reg: context and output pointer are required");
	if (!addr && len)
		return rt_seterr(RT_ERR_INVAL, "rt_mr_reg: NULL address with non-zero length");
	if (access & ~(uint32_t)(RT_ACCESS_LOCAL_WRITE | RT_ACCESS_REMOTE_WRITE |
				 RT_ACCESS_REMOTE_READ | RT_ACCESS_REMOTE_ATOMIC))
		return rt_seterr(RT_ERR_INVAL, "rt_mr_reg: unknown access flag bits 0x%x", access);
	if ((access & (RT_ACCESS_REMOTE_WRITE | RT_ACCESS_REMOTE_ATOMIC)) &&
	    !(access & RT_ACCESS_LOCAL_WRITE))
		return rt_seterr(RT_ERR_INVAL, "rt_mr_reg: remote write/atomic access requires "
				 "LOCAL_WRITE too (as in verbs)");
	struct rt_mr *mr = calloc(1, sizeof(*mr));
	if (!mr)
		return rt_seterr(RT_ERR_NOMEM, "rt_mr_reg: out of memory");
	mr->ctx = ctx;
	mr->addr = addr;
	mr->len = len;
	mr->access = access;
	if (access & (RT_ACCESS_REMOTE_WRITE | RT_ACCESS_LOCAL_WRITE))
		mr_populate(addr, len);
	pthread_mutex_lock(&ctx->lock);
	if (ctx->destroying) {
		pthread_mutex_unlock(&ctx->lock);
		free(mr);
		return rt_seterr(RT_ERR_CLOSED, "rt_mr_reg: context is closing");
	}
	if (!ctx->mr_hash) {
		ctx->mr_hash_size = 1024;
		ctx->mr_hash = calloc(ctx->mr_hash_size, sizeof(*ctx->mr_hash));
		if (!ctx->mr_hash) {
			pthread_mutex_unlock(&ctx->lock);
			free(mr);
			return rt_seterr(RT_ERR_NOMEM, "rt_mr_reg: out of memory");
		}
	}
	do {
		mr->rkey = rt_random64();
	} while (mr->rkey == 0 || rt_mr_lookup(ctx, mr->rkey));
	uint32_t b = mr_bucket(ctx, mr->rkey);
	mr->hnext = ctx->mr_hash[b];
	ctx->mr_hash[b] = mr;
	ctx->nmrs++;
	pthread_mutex_unlock(&ctx->lock);
	*out = mr;
	return RT_OK;
}

int rt_mr_dereg(rt_mr *mr)
{
	if (!mr)
		return RT_OK;
	rt_ctx *ctx = mr->ctx;
	pthread_mutex_lock(&ctx->lock);
	if (mr->inflight) {
		uint32_t n = mr->inflight;
		pthread_mutex_unlock(&ctx->lock);
		return rt_seterr(RT_ERR_BUSY, "rt_mr_dereg: %u operation(s) still use this region; "
				 "wait for their completions (or close the endpoint) first", n);
	}
	struct rt_mr **pp = &ctx->mr_hash[mr_bucket(ctx, mr->rkey)];
	while (*pp && *pp != mr)
		pp = &(*pp)->hnext;
	if (*pp)
		*pp = mr->hnext;
	ctx->nmrs--;
	pthread_mutex_unlock(&ctx->lock);
	free(mr);
	return RT_OK;
}

void rt_mr_table_free(rt_ctx *ctx)
{
	if (!ctx->mr_hash)
		return;
	for (uint32_t i = 0; i < ctx->mr_hash_size; i++) {
		struct rt_mr *m = ctx->mr_hash[i];
		while (m) {
			struct rt_mr *n = m->hnext;
			free(m);
			m = n;
		}
	}
	free(ctx->mr_hash);
	ctx->mr_hash = NULL;
}

uint64_t rt_mr_rkey(const rt_mr *mr) { return mr ? mr->rkey : 0; }
uint64_t rt_mr_len(const rt_mr *mr) { return mr ? mr->len : 0; }
void *rt_mr_addr(const rt_mr *mr) { return mr ? mr->addr : NULL; }

int rt_mr_descriptor(const rt_mr *mr, void *buf, size_t buflen)
{
	if (!mr || !buf)
		return rt_seterr(RT_ERR_INVAL, "rt_mr_descriptor: region and buffer are required");
	if (buflen < RT_MR_DESC_SIZE)
		return rt_seterr(RT_ERR_INVAL, "rt_mr_descriptor: buffer of %zu bytes is too small; "
				 "need %d", buflen, RT_MR_DESC_SIZE);
	struct rt_wire_desc d = { .access = mr->access, .rkey = mr->rkey, .len = mr->len };
	rt_desc_encode(buf, &d);
	return RT_OK;
}
