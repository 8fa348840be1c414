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
	/* a size below the 0.2 struct (the first sized version) is refused
	 * and nothing is written; when the struct grows, 0.2-sized callers get
	 * exactly their bytes (the same rt_copy_out() as below) */
	unsigned char buf[sizeof(info) + 64];
	memset(buf, 0xAB, sizeof(buf));
	EXPECT(rt_ctx_info(a, (struct rt_ctx_info *)buf, offsetof(struct rt_ctx_info, tx_syscalls)) ==
	       RT_ERR_INVAL, "a truncated rt_ctx_info size was accepted");
	EXPECT(buf[0] == 0xAB, "a refused call wrote");
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
	OK(rt_ep_stats(ea, (struct rt_ep_stats *)buf, sizeof(st) + 16));
	EXPECT(memcmp(buf, &st, offsetof(struct rt_ep_stats, srtt_us)) == 0, "rt_ep_stats content");
	EXPECT(buf[sizeof(st)] == 0 && buf[sizeof(st) + 15] == 0 && buf[sizeof(st) + 16] == 0xAB,
	       "rt_ep_stats tail not zeroed or written past the caller's size");

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
	/* an older caller's smaller entries (struct as of 0.2, without what a
	 * later version appends; here: the same size minus nothing to drop,
	 * so use the exact size as the stride and check the neighbours) */
	enum { EXACT = sizeof(struct rt_path_stats) };
	unsigned char *pe = malloc((size_t)5 * EXACT);
	memset(pe, 0xAB, (size_t)5 * EXACT);
	EXPECT(rt_ep_path_stats(ea, (struct rt_path_stats *)pe, 4, EXACT) == 4, "exact stride");
	for (int i = 0; i < 4; i++) {
		struct rt_path_stats e;
		memcpy(&e, pe + (size_t)i * EXACT, sizeof(e));
		EXPECT(e.path == (uint32_t)i, "exact stride: entry %d holds path %u", i, e.path);
	}
	EXPECT(pe[(size_t)4 * EXACT] == 0xAB, "exact stride: wrote past 4 entries");
	free(pe);
	/* sizes below any version's struct are refused, not truncated (e.g.
	 * sizeof(pointer) passed by mistake) */
	EXPECT(rt_ep_path_stats(ea, (struct rt_path_stats *)buf, 1, sizeof(void *)) == RT_ERR_INVAL,
	       "pointer-sized entry accepted");
	EXPECT(rt_ep_stats(ea, &st, sizeof(void *)) == RT_ERR_INVAL, "pointer-sized stats accepted");

	/* rt_config: the caller's size is recorded; a newer header's unknown
	 * fields are refused unless zero; an impossible size is refused */
	struct { struct rt_config c; uint64_t newer_field; } big;
	memset(&big, 0xCD, sizeof(big));
	OK(rt_config_init_sized(&big.c, sizeof(big)));
	EXPECT(big.c.size == sizeof(big) && big.newer_field == 0 && big.c.mtu == 1500,
	       "rt_config_init_sized with a larger struct");
	big.c.progress = RT_PROGRESS_MANUAL;
	rt_ctx *c2 = NULL;
	EXPECT(rt_ctx_create(&big.c, &c2) == 0, "zero unknown fields refused: %s", rt_last_error());
	rt_ctx_destroy(c2);
	big.newer_field = 1;
	c2 = NULL;
	EXPECT(rt_ctx_create(&big.c, &c2) == RT_ERR_UNSUPPORTED && !c2,
	       "a set unknown field was accepted");
	struct rt_config small;
	rt_config_init(&small);
	small.size = 8;
	EXPECT(rt_ctx_create(&small, &c2) == RT_ERR_INVAL, "config size 8 accepted");
	EXPECT(rt_config_init_sized(&small, 8) == RT_ERR_INVAL, "rt_config_init_sized(8) accepted");

	rt_ctx_destroy(a);
	rt_ctx_destroy(b);
	if (fails)
		return 1;
	printf("ok\n");
	return 0;
}
