/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A plain C program against the plain C library (no Python): version,
 * one message between two endpoints, and the sized out-structures of the
 * ABI rules in rt.h (a caller built against an older header gets no
 * more bytes than it asked for; one built against a newer header gets
 * zeroes beyond what this library knows).  Prints "ok" and exits 0, or
 * names what failed and exits 1.  Built and run by tests/test_c_library.py.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <rtransport/rt.h>

static int fails;
#define EXPECT(c, ...) do { if (!(c)) { fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
	fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); fails++; } } while (0)
#define OK(call) do { int r_ = (call); if (r_ < 0) { fprintf(stderr, "FAIL %s: %s\n", #call, \
	rt_last_error()); exit(1); } } while (0)

/* manual progress: drive the other context too (it owes us an ACK) */
static rt_ctx *other;

static int wait_one(rt_cq *cq, struct rt_wc *wc)
{
	struct timespec t0, t;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		int n = rt_cq_poll(cq, wc, 1);
		if (n)
			return n;
		rt_ctx_progress(other);
		clock_gettime(CLOCK_MONOTONIC, &t);
		if (t.tv_sec - t0.tv_sec > 10)
			return 0;
	}
}

int main(void)
{
	uint32_t v = rt_version();
	EXPECT(v == (((uint32_t)RT_VERSION_MAJOR << 16) | RT_VERSION_MINOR),
	       "rt_version() %#x does not match the header", v);

	struct rt_config cfg;
	rt_config_init(&cfg);
	cfg.progress = RT_PROGRESS_MANUAL;
	cfg.num_paths = 4;
	rt_ctx *a, *b;
	OK(rt_ctx_create(&cfg, &a));
	OK(rt_ctx_create(&cfg, &b));
	rt_cq *qa, *qb;
	OK(rt_cq_create(a, &qa));
	OK(rt_cq_create(b, &qb));
	rt_ep *ea, *eb;
	OK(rt_ep_create(a, qa, &ea));
	OK(rt_ep_create(b, qb, &eb));
	uint8_t addr[64];
	rt_peer_t to_b;
	OK(rt_ep_address(eb, addr, sizeof(addr)));
	OK(rt_ep_connect(ea, addr, RT_ADDR_SIZE, &to_b));
	static char src[4096], dst[4096];
	for (int i = 0; i < 4096; i++)
		src[i] = (char)(i * 7 + 1);
	rt_mr *ms, *md;
	OK(rt_mr_reg(a, src, sizeof(src), RT_ACCESS_LOCAL_WRITE, &ms));
	OK(rt_mr_reg(b, dst, sizeof(dst), RT_ACCESS_LOCAL_WRITE, &md));
	OK(rt_post_recv(eb, md, 0, sizeof(dst), 1));
	OK(rt_post_send(ea, to_b, ms, 0, sizeof(src), 2));
	struct rt_wc wc;
	other = a;
	EXPECT(wait_one(qb, &wc) == 1 && wc.status == RT_WC_SUCCESS && wc.opcode == RT_OP_RECV &&
	       wc.byte_len == sizeof(src), "receive completion");
	EXPECT(memcmp(src, dst, sizeof(src)) == 0, "received bytes differ");
	other = b;
	EXPECT(wait_one(qa, &wc) == 1 && wc.status == RT_WC_SUCCESS && wc.opcode == RT_OP_SEND,
	       "send completion");

	/* rt_ctx_info: exact size, an older (shorter) and a newer (longer) caller */
	struct rt_ctx_info info;
	OK(rt_ctx_info(a, &info, sizeof(info)));
	EXPECT(info.num_paths == 4 && info.port != 0, "rt_ctx_info fields");
	size_t old = offsetof(struct rt_ctx_info, tx_syscalls);
	unsigned char buf[sizeof(info) + 64];
	memset(buf, 0xAB, sizeof(buf));
	OK(rt_ctx_info(a, (struct rt_ctx_info *)buf, old));
	EXPECT(memcmp(buf, &info, offsetof(struct rt_ctx_info, port)) == 0, "short copy content");
	for (size_t i = old; i < sizeof(buf); i++)
		if (buf[i] != 0xAB) {
			EXPECT(0, "rt_ctx_info wrote byte %zu beyond the caller's %zu", i, old);
			break;
		}
	memset(buf, 0xAB, sizeof(buf));
	OK(rt_ctx_info(a, (struct rt_ctx_info *)buf, sizeof(buf)));
	for (size_t i = sizeof(info); i < sizeof(buf); i++)
		if (buf[i] != 0) {
			EXPECT(0, "byte %zu past this library's struct is not zeroed", i);
			break;
		}
	EXPECT(rt_ctx_info(a, &info, 0) == RT_ERR_INVAL, "size 0 accepted");

	/* rt_ep_stats */
	struct rt_ep_stats st;
	OK(rt_ep_stats(ea, &st, sizeof(st)));
	EXPECT(st.msgs_sent == 1 && st.peers == 1, "rt_ep_stats fields");
	memset(buf, 0xAB, sizeof(buf));
	OK(rt_ep_stats(ea, (struct rt_ep_stats *)buf, 16));
	EXPECT(buf[16] == 0xAB, "rt_ep_stats wrote past 16 bytes");

	/* rt_ep_path_stats: the caller's entry size is the stride */
	enum { NP = 8, STRIDE = sizeof(struct rt_path_stats) + 24 };
	unsigned char *ps = malloc((size_t)NP * STRIDE);
	memset(ps, 0xAB, (size_t)NP * STRIDE);
	int np = rt_ep_path_stats(ea, (struct rt_path_stats *)ps, NP, STRIDE);
	EXPECT(np == 4, "rt_ep_path_stats returned %d paths", np);
	uint64_t tx = 0;
	for (int i = 0; i < 4 && i < np; i++) {
		struct rt_path_stats e;
		memcpy(&e, ps + (size_t)i * STRIDE, sizeof(e));
		EXPECT(e.path == (uint32_t)i && e.src_port != 0, "path entry %d: path %u port %u",
		       i, e.path, e.src_port);
		tx += e.tx_packets;
		for (size_t k = sizeof(e); k < STRIDE; k++)
			if (ps[(size_t)i * STRIDE + k] != 0) {
				EXPECT(0, "entry %d: tail byte %zu not zeroed", i, k);
				break;
			}
	}
	EXPECT(tx >= 1, "no packet counted on any path");
	EXPECT(ps[(size_t)4 * STRIDE] == 0xAB, "entry beyond the paths was written");
	free(ps);

	rt_ctx_destroy(a);
	rt_ctx_destroy(b);
	if (fails)
		return 1;
	printf("ok\n");
	return 0;
}
