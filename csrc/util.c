/* SPDX-License-Identifier: Apache-2.0 */
/* Errors, logging, randomness and name tables. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <stdint.h>
#include <sys/random.h>
#if defined(__x86_64__)
#include <emmintrin.h>
#endif

#include "internal.h"

static __thread char last_error[512];
static rt_log_fn log_fn;
static void *log_arg;

int rt_seterr(int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(last_error, sizeof(last_error), fmt, ap);
	va_end(ap);
	return code;
}

const char *rt_last_error(void) { return last_error; }

void rt_set_log(rt_log_fn fn, void *arg)
{
	log_arg = arg;
	__atomic_store_n(&log_fn, fn, __ATOMIC_RELEASE);
}

static int log_min_level; /* rt_set_log_level(); 0 = everything */

void rt_set_log_level(int min_level)
{
	__atomic_store_n(&log_min_level, min_level, __ATOMIC_RELAXED);
}

void rt_log(int level, const char *fmt, ...)
{
	rt_log_fn fn = __atomic_load_n(&log_fn, __ATOMIC_ACQUIRE);
	if (!fn || level < __atomic_load_n(&log_min_level, __ATOMIC_RELAXED))
		return;
	char buf[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	fn(level, buf, log_arg);
}

uint64_t rt_random64(void)
{
	uint64_t v = 0;
	while (getrandom(&v, sizeof(v), 0) != (ssize_t)sizeof(v)) {
		if (errno != EINTR)
			break;
	}
	return v;
}

const char *rt_err_str(int err)
{
	switch (err) {
	case RT_OK: return "ok";
	case RT_ERR_INVAL: return "invalid argument";
	case RT_ERR_NOMEM: return "out of memory";
	case RT_ERR_SYS: return "system call failed";
	case RT_ERR_CLOSED: return "closed";
	case RT_ERR_TIMEOUT: return "timed out";
	case RT_ERR_ACCESS: return "access denied";
	case RT_ERR_BOUNDS: return "out of bounds";
	case RT_ERR_ADDR: return "bad address";
	case RT_ERR_PEER: return "peer error";
	case RT_ERR_BUSY: return "busy";
	case RT_ERR_UNSUPPORTED: return "unsupported";
	}
	return "unknown error";
}

const char *rt_wc_status_str(uint32_t status)
{
	switch (status) {
	case RT_WC_SUCCESS: return "success";
	case RT_WC_LOC_LEN_ERR: return "receive buffer too small for the message";
	case RT_WC_REM_BAD_KEY: return "remote: no memory region with this rkey";
	case RT_WC_REM_OUT_OF_BOUNDS: return "remote: range outside the memory region";
	case RT_WC_REM_ACCESS: return "remote: memory region lacks the access flag";
	case RT_WC_REM_TOO_SMALL: return "remote: posted receive buffer too small";
	case RT_WC_REM_MISALIGNED: return "remote: atomic target not 8-byte aligned";
	case RT_WC_TIMEOUT: return "peer stopped answering (timeout)";
	case RT_WC_RNR_TIMEOUT: return "peer posted no receive buffer in time (RNR timeout)";
	case RT_WC_FLUSHED: return "flushed: endpoint closed";
	case RT_WC_PEER_FAILED: return "peer failed earlier";
	case RT_WC_REM_INVALID: return "remote rejected the request";
	case RT_WC_ABORTED: return "sender abandoned the message";
	}
	return "unknown status";
}

const char *rt_opcode_str(uint32_t op)
{
	switch (op) {
	case RT_OP_SEND: return "SEND";
	case RT_OP_RECV: return "RECV";
	case RT_OP_WRITE: return "WRITE";
	case RT_OP_READ: return "READ";
	case RT_OP_ATOMIC_FETCH_ADD: return "ATOMIC_FETCH_ADD";
	case RT_OP_ATOMIC_CMP_SWAP: return "ATOMIC_CMP_SWAP";
	case RT_OP_RECV_WRITE_IMM: return "RECV_WRITE_IMM";
	}
	return "UNKNOWN";
}

uint32_t rt_version(void)
{
	return ((uint32_t)RT_VERSION_MAJOR << 16) | RT_VERSION_MINOR;
}

int rt_check_size(const char *fn, const char *type, size_t size, size_t min)
{
	if (size >= min)
		return RT_OK;
	return rt_seterr(RT_ERR_INVAL, "%s: size %zu is too small (pass sizeof(struct %s), "
			 "at least %zu)", fn, size, type, min);
}

void rt_copy_out(void *dst, size_t dst_size, const void *src, size_t src_size)
{
	size_t n = dst_size < src_size ? dst_size : src_size;
	memcpy(dst, src, n);
	if (dst_size > n)
		memset((uint8_t *)dst + n, 0, dst_size - n);
}

int rt_config_init_sized(struct rt_config *out, size_t size)
{
	if (!out || size < RT_CONFIG_SIZE_0_2 || size > UINT32_MAX)
		return rt_seterr(RT_ERR_INVAL, "rt_config_init_sized: need a config and its size "
				 "(sizeof(struct rt_config), at least %d)", RT_CONFIG_SIZE_0_2);
	struct rt_config d;
	rt_config_defaults(&d);
	d.size = (uint32_t)size;
	rt_copy_out(out, size, &d, sizeof(d));
	return RT_OK;
}

/*
 * rt_place_nt() - memcpy() with non-temporal stores (x86-64: SSE2, which
 * every x86-64 CPU has; elsewhere plain memcpy()).  The caller fences
 * (rt_place_fence()) before the bytes must be visible elsewhere.
 */
void rt_place_nt(void *dst, const void *src, size_t n)
{
#if defined(__x86_64__)
	uint8_t *d = dst;
	const uint8_t *s = src;
	size_t head = (16 - ((uintptr_t)d & 15)) & 15;
	if (n < 256 || head >= n) {
		memcpy(d, s, n);
		return;
	}
	memcpy(d, s, head);
	d += head;
	s += head;
	n -= head;
	for (; n >= 64; d += 64, s += 64, n -= 64) {
		__m128i a = _mm_loadu_si128((const __m128i *)s);
		__m128i b = _mm_loadu_si128((const __m128i *)(s + 16));
		__m128i c = _mm_loadu_si128((const __m128i *)(s + 32));
		__m128i e = _mm_loadu_si128((const __m128i *)(s + 48));
		_mm_stream_si128((__m128i *)d, a);
		_mm_stream_si128((__m128i *)(d + 16), b);
		_mm_stream_si128((__m128i *)(d + 32), c);
		_mm_stream_si128((__m128i *)(d + 48), e);
	}
	memcpy(d, s, n);
#else
	memcpy(dst, src, n);
#endif
}

void rt_config_defaults(struct rt_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->size = sizeof(*cfg);
	cfg->bind_addr = "127.0.0.1";
	cfg->mtu = 1500;
	cfg->num_paths = 16;
	cfg->progress = RT_PROGRESS_THREAD;
	cfg->busy_poll_us = 200;
	cfg->timeout_ms = 3000;
	cfg->rnr_timeout_ms = 3000;
	cfg->rto_min_us = 10000; /* last resort: RACK and TLP recover first */
	cfg->rto_max_us = 200000;
	cfg->max_inflight_bytes = 8u << 20;
	cfg->gso = RT_AUTO;
	cfg->gro = RT_AUTO;
	cfg->sndbuf = 4u << 20;
	cfg->rcvbuf = 16u << 20;
	cfg->cc = "swift";
	/* 200 us: several 9000-byte frames at 1-10 Gbit/s plus the scheduling
	 * jitter of a busy-polling user-space stack on a small VM */
	cfg->cc_target_delay_us = 200;
	cfg->spray_unit = 0;
	cfg->cc_scope = RT_CC_SCOPE_PATH; /* measured better here: docs/design.md */
	cfg->fault_delay_us = 200;
}
