/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Benchmark loops in C (perftest style), so that `rtransport perf`
 * measures the transport and not the Python interpreter.  The TCP loop
 * is here too so the baseline runs the same way (same language, same
 * process layout, blocking receives as an application would use them).
 */
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "internal.h"

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Spin on the CQ (which drives progress) until a completion with @want
 * opcode arrives; other completions are counted in *others. */
static int wait_op(rt_cq *cq, uint32_t want, uint64_t deadline_ns, uint32_t *others)
{
	struct rt_wc wc[8];
	for (uint32_t spins = 1;; spins++) {
		int n = rt_cq_poll(cq, wc, 8);
		if (n < 0)
			return n;
		int hit = 0;
		for (int i = 0; i < n; i++) {
			if (wc[i].status != RT_WC_SUCCESS)
				return rt_seterr(RT_ERR_PEER, "rt_perf_pingpong: %s completion failed: %s",
						 rt_opcode_str(wc[i].opcode), rt_wc_status_str(wc[i].status));
			if (wc[i].opcode == want)
				hit = 1;
			else
				(*others)++;
		}
		if (hit)
			return RT_OK;
		/* the clock only every 64 polls: a read costs as much as a
		 * tenth of a poll, and a poll is the loop's reaction time */
		if (!(spins & 63) && now_ns() > deadline_ns)
			return rt_seterr(RT_ERR_TIMEOUT, "rt_perf_pingpong: no completion in time");
	}
}

int rt_perf_pingpong(rt_ep *ep, rt_peer_t peer, rt_mr *mr, uint64_t size, uint32_t iters,
		     int initiator, uint64_t *rtt_ns, int64_t timeout_us)
{
	if (!ep || !mr || !iters || (initiator && !rtt_ns) || mr->len < 2 * size)
		return rt_seterr(RT_ERR_INVAL, "rt_perf_pingpong: need an endpoint, a region of at "
				 "least 2*size bytes, iters > 0 and a sample array on the initiator");
	rt_cq *cq = ep->cq;
	uint32_t others = 0;
	uint64_t tmo = (uint64_t)(timeout_us > 0 ? timeout_us : 10000000) * 1000;
	int r;
	/* two receives always posted ahead (both land in the same bytes:
	 * only one message is in flight at a time) */
	for (int k = 0; k < 2; k++)
		if ((r = rt_post_recv(ep, mr, size, size, 1)))
			return r;
	for (uint32_t i = 0; i < iters; i++) {
		uint64_t t0 = now_ns();
		if (initiator) {
			if ((r = rt_post_send(ep, peer, mr, 0, size, 2)))
				return r;
			if ((r = wait_op(cq, RT_OP_RECV, t0 + tmo, &others)))
				return r;
			rtt_ns[i] = now_ns() - t0;
			if ((r = rt_post_recv(ep, mr, size, size, 1)))
				return r;
		} else {
			if ((r = wait_op(cq, RT_OP_RECV, t0 + tmo, &others)))
				return r;
			/* reply first: the next request cannot come before the
			 * reply arrives, and a second receive is posted anyway */
			if ((r = rt_post_send(ep, peer, mr, 0, size, 2)))
				return r;
			if ((r = rt_post_recv(ep, mr, size, size, 1)))
				return r;
		}
	}
	/* collect the remaining send completions */
	uint64_t end = now_ns() + tmo;
	struct rt_wc wc[16];
	while (others < iters && now_ns() < end) {
		int n = rt_cq_poll(cq, wc, 16);
		for (int k = 0; k < n; k++)
			if (wc[k].opcode == RT_OP_SEND)
				others++;
	}
	return RT_OK;
}

static int full_io(int fd, uint8_t *buf, size_t len, int sending)
{
	size_t done = 0;
	while (done < len) {
		ssize_t n = sending ? send(fd, buf + done, len - done, MSG_NOSIGNAL)
				    : recv(fd, buf + done, len - done, 0);
		if (n > 0) {
			done += (size_t)n;
			continue;
		}
		if (n == 0)
			return rt_seterr(RT_ERR_PEER, "rt_perf_tcp_pingpong: connection closed");
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return rt_seterr(RT_ERR_TIMEOUT, "rt_perf_tcp_pingpong: socket timed out");
		return rt_seterr(RT_ERR_SYS, "rt_perf_tcp_pingpong: %s", strerror(errno));
	}
	return RT_OK;
}

int rt_perf_tcp_pingpong(int fd, void *buf, uint64_t size, uint32_t iters, int initiator,
			 uint64_t *rtt_ns)
{
	if (fd < 0 || !buf || !iters || (initiator && !rtt_ns))
		return rt_seterr(RT_ERR_INVAL, "rt_perf_tcp_pingpong: bad arguments");
	int r;
	for (uint32_t i = 0; i < iters; i++) {
		uint64_t t0 = now_ns();
		if (initiator) {
			if ((r = full_io(fd, buf, size, 1)) || (r = full_io(fd, buf, size, 0)))
				return r;
			rtt_ns[i] = now_ns() - t0;
		} else {
			if ((r = full_io(fd, buf, size, 0)) || (r = full_io(fd, buf, size, 1)))
				return r;
		}
	}
	return RT_OK;
}
