// SPDX-License-Identifier: Apache-2.0
/*
 * libFuzzer harness for the receive path (coverage-guided on the C code).
 *
 * Same input format, identity patching and invariants as
 * tests/fuzz_decoder.py (see its docstring and docs/testing.md), so the two
 * share corpora: the seeds from `python3 tests/fuzz_decoder.py
 * --rt-write-seeds=DIR` work here too.
 *
 * Build (clang >= 11; apt-get install clang):
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
 *         -std=gnu11 -D_GNU_SOURCE -Icsrc/include -Icsrc \
 *         tests/c/fuzz_rx.c csrc/[a-z]*.c -lpthread -lm -o build/fuzz_rx
 * Run:
 *   python3 tests/fuzz_decoder.py --rt-write-seeds=build/fuzz/seeds
 *   mkdir -p build/fuzz/c-corpus
 *   build/fuzz_rx -max_total_time=60 build/fuzz/c-corpus build/fuzz/seeds
 *   build/fuzz_rx crash-...              # reproduce
 * Environment: RT_FUZZ_CHECK_EVERY (default 1000), RT_FUZZ_MODE
 * (plain|csum|fault|cycle, default cycle), RT_FUZZ_ALLOW_KNOWN=1 (steer
 * around known, reported issues: see docs/testing.md, "Known findings").
 *
 * Every RT_FUZZ_CHECK_EVERY inputs the harness checks that A -> B and
 * B -> A still deliver the exact payload, then recreates the context.  A
 * violated invariant aborts (libFuzzer saves the current input; the state
 * comes from the whole epoch, so replay the corpus in order to reproduce).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "rtransport/rt.h"
#include "wire.h"

size_t LLVMFuzzerMutate(uint8_t *data, size_t size, size_t max_size);

enum {
	PATCH_DST = 0x01, PATCH_SRC = 0x02, PATCH_LEN = 0x04, PATCH_CSUM = 0x08,
	PATCH_RKEY = 0x10, PRIME = 0x20, DST_A = 0x40, VIA_SOCKET = 0x80,
};
#define MAX_RECORDS 16
#define REGION_LEN 4096
#define GUARD 64
#define NSLOTS 4
static const uint32_t slot_len[NSLOTS] = { 64, 512, 2048, 8192 };

struct gbuf { /* [GUARD][len bytes][GUARD] */
	uint8_t *raw;
	size_t len;
	int fill; /* -1: may change; else must stay this byte */
	rt_mr *mr;
};

static struct {
	rt_ctx *ctx;
	rt_cq *cqa, *cqb;
	rt_ep *a, *b;
	rt_peer_t pab, pba; /* A's handle of B, B's handle of A */
	uint8_t addr_a[RT_ADDR_SIZE], addr_b[RT_ADDR_SIZE];
	struct gbuf all, ro, local, empty, prime, recv_b, recv_a, alive, sendbuf;
	uint64_t rkeys[4];
	uint32_t slot_off[NSLOTS];
	uint32_t slot_i, slot_ia;
	int sink;
	uint16_t sink_port, ctx_port;
	int sink_tos;
	uint64_t n, n_epoch, epoch, check_every;
	const char *mode, *cur_mode;
	int primed_ps[2][2]; /* [target][P, S] primed this epoch */
	uint64_t wr;
	/* summary */
	uint64_t liveness_checks, malformed, foreign, rx_packets, naks_sent, acks_received;
} T;

static void die(const char *fmt, const char *arg)
{
	fprintf(stderr, "fuzz_rx: ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, " (input %llu of epoch %llu, mode %s)\n", (unsigned long long)T.n_epoch,
		(unsigned long long)T.epoch, T.cur_mode);
	abort();
}

static void ck(int r, const char *what)
{
	if (r < 0) {
		fprintf(stderr, "fuzz_rx: %s: %s\n", what, rt_last_error());
		abort();
	}
}

static void gbuf_init(struct gbuf *g, size_t len, uint32_t access, int fill)
{
	g->raw = malloc(len + 2 * GUARD);
	if (!g->raw)
		abort();
	memset(g->raw, 0xa5, len + 2 * GUARD);
	memset(g->raw + GUARD, fill < 0 ? 0 : fill, len);
	g->len = len;
	g->fill = fill;
	ck(rt_mr_reg(T.ctx, g->raw + GUARD, len, access, &g->mr), "rt_mr_reg");
}

static void gbuf_check(const struct gbuf *g, const char *name)
{
	for (size_t i = 0; i < GUARD; i++)
		if (g->raw[i] != 0xa5 || g->raw[GUARD + g->len + i] != 0xa5)
			die("guard bytes around region '%s' were overwritten", name);
	if (g->fill >= 0)
		for (size_t i = 0; i < g->len; i++)
			if (g->raw[GUARD + i] != (uint8_t)g->fill)
				die("region '%s' (no remote write access) was modified", name);
}

static void post_recv_b(void)
{
	uint32_t k = T.slot_i++ % NSLOTS;
	ck(rt_post_recv(T.b, T.recv_b.mr, T.slot_off[k], slot_len[k], 1 + (uint64_t)T.slot_i - 1),
	   "rt_post_recv");
}

static void post_recv_a(void)
{
	uint32_t k = T.slot_ia++ % NSLOTS;
	ck(rt_post_recv(T.a, T.recv_a.mr, T.slot_off[k], slot_len[k], (1ull << 41) | k),
	   "rt_post_recv");
}

static const char *epoch_mode(void)
{
	static const char *cyc[4] = { "plain", "csum", "fault", "plain" };
	return strcmp(T.mode, "cycle") ? T.mode : cyc[T.epoch % 4];
}

static void open_epoch(void)
{
	struct rt_config cfg;
	rt_config_init(&cfg);
	T.cur_mode = epoch_mode();
	cfg.progress = RT_PROGRESS_MANUAL;
	cfg.timeout_ms = 150;
	cfg.rnr_timeout_ms = 150;
	cfg.num_paths = 4;
	cfg.rto_min_us = 30000;
	if (cfg.rto_max_us < cfg.rto_min_us)
		cfg.rto_max_us = cfg.rto_min_us;
	cfg.checksum = strcmp(T.cur_mode, "plain") != 0;
	if (!strcmp(T.cur_mode, "fault")) {
		cfg.fault_seed = T.epoch + 1;
		cfg.fault_drop = cfg.fault_dup = cfg.fault_reorder = 0.02;
		cfg.fault_delay = cfg.fault_corrupt = 0.02;
		cfg.fault_delay_us = 2000;
	}
	ck(rt_ctx_create(&cfg, &T.ctx), "rt_ctx_create");
	struct rt_ctx_info info;
	ck(rt_ctx_info(T.ctx, &info, sizeof(info)), "rt_ctx_info");
	T.ctx_port = info.port;
	ck(rt_cq_create(T.ctx, &T.cqa), "rt_cq_create");
	ck(rt_cq_create(T.ctx, &T.cqb), "rt_cq_create");
	ck(rt_ep_create(T.ctx, T.cqa, &T.a), "rt_ep_create");
	ck(rt_ep_create(T.ctx, T.cqb, &T.b), "rt_ep_create");
	ck(rt_ep_address(T.a, T.addr_a, sizeof(T.addr_a)), "rt_ep_address");
	ck(rt_ep_address(T.b, T.addr_b, sizeof(T.addr_b)), "rt_ep_address");
	ck(rt_ep_connect(T.a, T.addr_b, RT_ADDR_SIZE, &T.pab), "rt_ep_connect");
	ck(rt_ep_connect(T.b, T.addr_a, RT_ADDR_SIZE, &T.pba), "rt_ep_connect");
	uint32_t full = RT_ACCESS_LOCAL_WRITE | RT_ACCESS_REMOTE_WRITE | RT_ACCESS_REMOTE_READ |
			RT_ACCESS_REMOTE_ATOMIC;
	gbuf_init(&T.all, REGION_LEN, full, -1);
	gbuf_init(&T.ro, REGION_LEN, RT_ACCESS_REMOTE_READ, 0x3c);
	gbuf_init(&T.local, REGION_LEN, RT_ACCESS_LOCAL_WRITE, 0x4d);
	gbuf_init(&T.empty, 0, full, -1);
	gbuf_init(&T.prime, 4096, full, -1);
	T.rkeys[0] = rt_mr_rkey(T.all.mr);
	T.rkeys[1] = rt_mr_rkey(T.ro.mr);
	T.rkeys[2] = rt_mr_rkey(T.local.mr);
	T.rkeys[3] = rt_mr_rkey(T.empty.mr);
	/* receive slots, each followed by GUARD bytes (checked like guards) */
	uint32_t off = 0, total = 0;
	for (int i = 0; i < NSLOTS; i++) {
		T.slot_off[i] = off;
		off += slot_len[i] + GUARD;
	}
	total = off - GUARD;
	gbuf_init(&T.recv_b, total, RT_ACCESS_LOCAL_WRITE, -1);
	gbuf_init(&T.recv_a, total, RT_ACCESS_LOCAL_WRITE, -1);
	for (int i = 0; i < NSLOTS; i++) {
		memset(T.recv_b.raw + GUARD + T.slot_off[i] + slot_len[i], 0xa5,
		       i + 1 < NSLOTS ? GUARD : 0);
		memset(T.recv_a.raw + GUARD + T.slot_off[i] + slot_len[i], 0xa5,
		       i + 1 < NSLOTS ? GUARD : 0);
	}
	gbuf_init(&T.alive, 4096, RT_ACCESS_LOCAL_WRITE, -1);
	gbuf_init(&T.sendbuf, 4096, RT_ACCESS_LOCAL_WRITE, -1);
	T.slot_i = T.slot_ia = 0;
	for (int i = 0; i < NSLOTS; i++)
		post_recv_b();
	post_recv_a();
	post_recv_a();
	memset(T.primed_ps, 0, sizeof(T.primed_ps));
}

static void gbuf_free(struct gbuf *g)
{
	free(g->raw);
	g->raw = NULL;
}

static void add_stats(void)
{
	struct rt_ep_stats st;
	for (int i = 0; i < 2; i++) {
		ck(rt_ep_stats(i ? T.b : T.a, &st, sizeof(st)), "rt_ep_stats");
		T.malformed += st.malformed;
		T.foreign += st.foreign;
		if (i) {
			T.rx_packets += st.rx_packets;
			T.naks_sent += st.naks_sent;
			T.acks_received += st.acks_received;
		}
	}
}

static void close_epoch(void)
{
	add_stats();
	rt_ctx_destroy(T.ctx); /* closes endpoints, CQs and regions */
	T.ctx = NULL;
	struct gbuf *g[] = { &T.all, &T.ro, &T.local, &T.empty, &T.prime,
			     &T.recv_b, &T.recv_a, &T.alive, &T.sendbuf };
	for (size_t i = 0; i < sizeof(g) / sizeof(g[0]); i++)
		gbuf_free(g[i]);
	T.epoch++;
	T.n_epoch = 0;
}

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void oracle_completion(const struct rt_wc *wc);

/* Handle completions; returns 1 when @want_ep's RECV of @tok completed. */
static int drain(rt_cq *cq, int is_b, const uint8_t *tok, size_t toklen, int want)
{
	struct rt_wc wc[32];
	int found = 0, n;
	while ((n = rt_cq_poll(cq, wc, 32)) > 0) {
		for (int i = 0; i < n; i++) {
			oracle_completion(&wc[i]);
			if (wc[i].opcode != RT_OP_RECV)
				continue;
			const struct gbuf *g = NULL;
			uint32_t off = 0;
			if (is_b && wc[i].wr_id < (1ull << 40)) {
				g = &T.recv_b;
				off = T.slot_off[(wc[i].wr_id - 1) % NSLOTS];
				post_recv_b();
			} else if (!is_b && wc[i].wr_id >> 41) {
				g = &T.recv_a;
				off = T.slot_off[wc[i].wr_id & (NSLOTS - 1)];
				post_recv_a();
			} else if (!is_b && wc[i].wr_id >> 40) {
				g = &T.alive;
			}
			if (want && g && wc[i].status == RT_WC_SUCCESS &&
			    wc[i].peer == (is_b ? T.pba : T.pab) && wc[i].byte_len == toklen) {
				if (memcmp(g->raw + GUARD + off, tok, toklen))
					die("liveness: %s received a corrupted payload", is_b ? "B" : "A");
				found = 1;
			}
		}
	}
	return found;
}

static void liveness(void)
{
	T.liveness_checks++;
	for (int dir = 0; dir < 2; dir++) {
		rt_ep *src = dir ? T.b : T.a;
		rt_peer_t peer = dir ? T.pba : T.pab;
		uint8_t tok[24];
		snprintf((char *)tok, sizeof(tok), "%s%016llx", dir ? "B->A" : "A->B",
			 (unsigned long long)T.n);
		if (dir)
			ck(rt_post_recv(T.a, T.alive.mr, 0, T.alive.len, 1ull << 40), "rt_post_recv");
		else
			post_recv_b();
		memcpy(T.sendbuf.raw + GUARD, tok, sizeof(tok));
		uint64_t swr = (1ull << 42) | T.n;
		ck(rt_post_send(src, peer, T.sendbuf.mr, 0, sizeof(tok), swr), "rt_post_send");
		int sent = 0, got = 0;
		uint64_t t0 = now_ms();
		while (!(sent && got)) {
			if (now_ms() - t0 > 5000)
				die("liveness: %s did not complete within 5 s", dir ? "B -> A" : "A -> B");
			rt_ctx_progress(T.ctx);
			struct rt_wc wc[16];
			rt_cq *scq = dir ? T.cqb : T.cqa;
			/* the sender's CQ: look for the send completion */
			int n = rt_cq_poll(scq, wc, 16);
			for (int i = 0; i < n; i++) {
				if (wc[i].wr_id == swr) {
					if (wc[i].status != RT_WC_SUCCESS)
						die("liveness: the send failed with %s",
						    rt_wc_status_str(wc[i].status));
					sent = 1;
				} else if (wc[i].opcode == RT_OP_RECV) {
					/* a fuzzed receive on the sender side: repost */
					if (dir ? wc[i].wr_id < (1ull << 40) : (wc[i].wr_id >> 41) != 0)
						dir ? post_recv_b() : post_recv_a();
				}
			}
			got |= drain(dir ? T.cqa : T.cqb, !dir, tok, sizeof(tok), 1);
		}
	}
}

static void check_guards(void)
{
	gbuf_check(&T.all, "all");
	gbuf_check(&T.ro, "read-only");
	gbuf_check(&T.local, "local-only");
	gbuf_check(&T.empty, "empty");
	gbuf_check(&T.prime, "prime");
	gbuf_check(&T.recv_b, "B receive slots");
	gbuf_check(&T.recv_a, "A receive slots");
	for (int i = 0; i + 1 < NSLOTS; i++)
		for (int k = 0; k < GUARD; k++)
			if (T.recv_b.raw[GUARD + T.slot_off[i] + slot_len[i] + k] != 0xa5 ||
			    T.recv_a.raw[GUARD + T.slot_off[i] + slot_len[i] + k] != 0xa5)
				die("guard bytes between receive slots were overwritten%s", "");
}

static void identity(int sel, int target_a, uint32_t *ep, uint64_t *nonce)
{
	switch (sel) {
	case 0: *ep = 0x0F000001; *nonce = (0xF1ull << 56) | T.n; return;
	case 1: *ep = 0x0F000002; *nonce = (0xF2ull << 56) | T.n; return;
	case 2: *ep = 0x0F000003; *nonce = (0xF3ull << 56) | (T.epoch + 1); return;
	default: {
		const uint8_t *a = target_a ? T.addr_b : T.addr_a; /* the real peer */
		*ep = rt_get32(a + 12);
		*nonce = rt_get64(a + 16) ^ (1ull << 62);
		if (!*nonce)
			*nonce = 1;
	}
	}
}

static int prime_fg_done[2][2]; /* [target][F, G] this input */

/*
 * ACK oracle (as in tests/fuzz_decoder.py): for the fresh identities F/G of
 * this input that were primed, a SEND or WRITE that completes with SUCCESS
 * must have had every PSN acknowledged by some ACK that identity sent.
 */
struct oracle {
	int used, target_a, wrap;
	uint32_t ep, snd_next;
	uint64_t nonce, wr_base;
	int nacks;
	struct { uint32_t cum; int n; uint32_t s[RT_ACK_MAX_RANGES], e[RT_ACK_MAX_RANGES]; } acks[16];
	uint32_t need[3][3];
	int nneed[3];
};
static struct oracle orc[2][2]; /* [target][F, G], reset every input */
static uint64_t known_issue_avoided, oracle_checked;

static struct oracle *oracle_for(int target_a, uint32_t ep, uint64_t nonce)
{
	for (int s = 0; s < 2; s++) {
		struct oracle *o = &orc[target_a][s];
		if (o->used && o->ep == ep && o->nonce == nonce)
			return o;
	}
	return NULL;
}

/* a DATA packet a target sent (read back from the sink) */
static void oracle_sent(const uint8_t *pkt, size_t len)
{
	if (len < RT_DATA_OVERHEAD || pkt[3] != RT_PKT_DATA)
		return;
	int target_a = !memcmp(pkt + 12, T.addr_a + 12, 4);
	struct oracle *o = oracle_for(target_a, rt_get32(pkt + 8), rt_get64(pkt + 16));
	if (!o)
		return;
	const uint8_t *d = pkt + RT_HDR_SIZE;
	uint32_t psn = rt_get32(d);
	uint8_t op = d[4], fl = d[5];
	uint64_t msg_len = rt_get64(d + 16);
	if ((int32_t)(psn + 1 - o->snd_next) > 0)
		o->snd_next = psn + 1;
	if (fl & RT_DF_RETX)
		return;
	int i = op == RT_WOP_SEND && msg_len == 64 ? 0 : op == RT_WOP_WRITE && msg_len == 128 ? 1 :
		op == RT_WOP_SEND && msg_len == 3000 ? 2 : -1;
	if (i >= 0 && o->nneed[i] < (i == 2 ? 3 : 1))
		o->need[i][o->nneed[i]++] = psn;
}

static void drain_sink(void)
{
	static uint8_t buf[65536];
	for (int k = 0; k < 256; k++) {
		ssize_t n = recv(T.sink, buf, sizeof(buf), MSG_DONTWAIT);
		if (n < 0)
			break;
		oracle_sent(buf, (size_t)n);
	}
}

static void oracle_ack(struct oracle *o, const uint8_t *pkt, size_t len)
{
	if (len < RT_HDR_SIZE + RT_ACK_HDR_SIZE || pkt[3] != RT_PKT_ACK || o->nacks >= 16)
		return;
	const uint8_t *a = pkt + RT_HDR_SIZE;
	int n = (int)((len - RT_HDR_SIZE - RT_ACK_HDR_SIZE) / 8);
	if (n > RT_ACK_MAX_RANGES)
		n = RT_ACK_MAX_RANGES;
	o->acks[o->nacks].cum = rt_get32(a);
	o->acks[o->nacks].n = n;
	for (int i = 0; i < n; i++) {
		uint32_t s = rt_get32(a + RT_ACK_HDR_SIZE + 8 * i), e = rt_get32(a + RT_ACK_HDR_SIZE + 8 * i + 4);
		o->acks[o->nacks].s[i] = s;
		o->acks[o->nacks].e[i] = e;
		if ((int32_t)(s - o->snd_next) >= 0 && (int32_t)(o->snd_next - e) >= 0 &&
		    (int32_t)(e - s) > 0)
			o->wrap = 1; /* the known ack_range() clamping issue */
	}
	o->nacks++;
}

static int oracle_acked(const struct oracle *o, uint32_t psn)
{
	for (int k = 0; k < o->nacks; k++) {
		if ((int32_t)(o->acks[k].cum - psn) > 0)
			return 1;
		for (int i = 0; i < o->acks[k].n; i++)
			if (psn - o->acks[k].s[i] < o->acks[k].e[i] - o->acks[k].s[i])
				return 1;
	}
	return 0;
}

static void oracle_completion(const struct rt_wc *wc)
{
	if (wc->status != RT_WC_SUCCESS || !(wc->wr_id >> 43))
		return;
	for (int t = 0; t < 2; t++)
		for (int s = 0; s < 2; s++) {
			struct oracle *o = &orc[t][s];
			if (!o->used || wc->wr_id < o->wr_base || wc->wr_id >= o->wr_base + 6)
				continue;
			uint64_t k = wc->wr_id - o->wr_base;
			int i = k == 0 ? 0 : k == 1 ? 1 : k == 5 ? 2 : -1;
			if (i < 0 || o->nneed[i] != (i == 2 ? 3 : 1))
				return;
			oracle_checked++;
			for (int j = 0; j < o->nneed[i]; j++) {
				if (oracle_acked(o, o->need[i][j]))
					continue;
				if (o->wrap) {
					die("ACK oracle: a primed %s completed with SUCCESS but one of its "
					    "PSNs was never acknowledged (known issue "
					    "'sack-range-past-snd-nxt', csrc/sender.c ack_range())",
					    i == 1 ? "WRITE" : "SEND");
				}
				die("ACK oracle: a primed %s completed with SUCCESS but one of its PSNs "
				    "was never acknowledged by the peer", i == 1 ? "WRITE" : "SEND");
			}
			return;
		}
}

static void prime(int target_a, int sel)
{
	if (sel >= 2) {
		if (T.primed_ps[target_a][sel - 2])
			return;
		T.primed_ps[target_a][sel - 2] = 1;
	} else {
		if (prime_fg_done[target_a][sel])
			return;
		prime_fg_done[target_a][sel] = 1;
	}
	uint32_t ep_id;
	uint64_t nonce;
	identity(sel, target_a, &ep_id, &nonce);
	uint8_t addr[RT_ADDR_SIZE];
	struct rt_wire_addr wa = { .port = T.sink_port, .ip4 = 0x7f000001, .ep_id = ep_id,
				   .nonce = nonce };
	rt_addr_encode(addr, &wa);
	rt_ep *ep = target_a ? T.a : T.b;
	rt_peer_t peer;
	if (rt_ep_connect(ep, addr, sizeof(addr), &peer) < 0)
		return;
	uint8_t desc[RT_MR_DESC_SIZE];
	struct rt_wire_desc wd = { .access = 0x0f, .rkey = 0xC0FFEE, .len = 1u << 20 };
	rt_desc_encode(desc, &wd);
	rt_mr *mr = T.prime.mr;
	uint64_t w = (1ull << 43) | (T.wr += 8);
	rt_post_send(ep, peer, mr, 0, 64, w);
	rt_post_write(ep, peer, mr, 64, 128, desc, sizeof(desc), 0, 1, 0x1234, w + 1);
	rt_post_read(ep, peer, mr, 256, 256, desc, sizeof(desc), 64, w + 2);
	rt_post_atomic(ep, peer, mr, 512, desc, sizeof(desc), 8, RT_OP_ATOMIC_FETCH_ADD, 1, 0,
		       w + 3);
	rt_post_atomic(ep, peer, mr, 520, desc, sizeof(desc), 16, RT_OP_ATOMIC_CMP_SWAP, 0, 1,
		       w + 4);
	rt_post_send(ep, peer, mr, 1024, 3000, w + 5);
	if (sel < 2) {
		struct oracle *o = &orc[target_a][sel];
		memset(o, 0, sizeof(*o));
		o->used = 1;
		o->target_a = target_a;
		o->ep = ep_id;
		o->nonce = nonce;
		o->wr_base = w;
	}
	rt_ctx_progress(T.ctx);
	drain_sink();
}

static void deliver(uint8_t ctl0, uint8_t ctl1, const uint8_t *raw, size_t len)
{
	static uint8_t pkt[65536];
	int target_a = !!(ctl0 & DST_A);
	memcpy(pkt, raw, len);
	int sel = ctl1 & 3;
	if (len >= RT_HDR_SIZE) {
		const uint8_t *me = target_a ? T.addr_a : T.addr_b;
		if (ctl0 & PATCH_DST) {
			memcpy(pkt + 8, me + 12, 4);  /* ep id */
			memcpy(pkt + 16, me + 16, 8); /* nonce */
		}
		if (ctl0 & PATCH_SRC) {
			uint32_t ep;
			uint64_t nonce;
			identity(sel, target_a, &ep, &nonce);
			rt_put16(pkt + 6, T.sink_port);
			rt_put32(pkt + 12, ep);
			rt_put64(pkt + 24, nonce);
		} else if (rt_get16(pkt + 6)) {
			rt_put16(pkt + 6, T.sink_port);
		}
		/* never the real peers' identities */
		if ((!memcmp(pkt + 12, T.addr_a + 12, 4) && !memcmp(pkt + 24, T.addr_a + 16, 8)) ||
		    (!memcmp(pkt + 12, T.addr_b + 12, 4) && !memcmp(pkt + 24, T.addr_b + 16, 8)))
			pkt[31] ^= 1;
		if (getenv("RT_FUZZ_ALLOW_KNOWN") && len >= RT_HDR_SIZE + RT_ACK_HDR_SIZE &&
		    pkt[3] == RT_PKT_ACK) {
			/* steer around known issue 'sack-range-past-snd-nxt' */
			for (size_t o = RT_HDR_SIZE + RT_ACK_HDR_SIZE; o + 8 <= len; o += 8) {
				uint32_t s = rt_get32(pkt + o), e = rt_get32(pkt + o + 4);
				if (s < 0x80000000u && e >= 0x80000000u) {
					rt_put32(pkt + o + 4, s + 1);
					known_issue_avoided++;
				}
			}
		}
		if ((ctl0 & PATCH_RKEY) && len >= RT_DATA_OVERHEAD && pkt[3] == RT_PKT_DATA)
			rt_put64(pkt + RT_HDR_SIZE + 32, T.rkeys[(ctl1 >> 4) & 3]);
		if (ctl0 & PATCH_LEN)
			rt_put16(pkt + 34, (uint16_t)(len - RT_HDR_SIZE));
		if (ctl0 & PATCH_CSUM) {
			rt_put16(pkt + 4, rt_get16(pkt + 4) | RT_HF_CSUM);
			rt_put32(pkt + 36, 0);
			uint32_t c = rt_crc32c(0, pkt, len);
			rt_put32(pkt + 36, c ? c : 1);
		}
	}
	if (ctl0 & PRIME)
		prime(target_a, sel);
	if ((ctl0 & PATCH_SRC) && sel < 2 && orc[target_a][sel].used)
		oracle_ack(&orc[target_a][sel], pkt, len);
	if (ctl0 & VIA_SOCKET) {
		int tos = (ctl1 >> 2) & 3;
		if (tos != T.sink_tos) {
			setsockopt(T.sink, IPPROTO_IP, IP_TOS, &tos, sizeof(tos));
			T.sink_tos = tos;
		}
		struct sockaddr_in to = { .sin_family = AF_INET, .sin_port = htons(T.ctx_port),
					  .sin_addr.s_addr = htonl(0x7f000001) };
		(void)!sendto(T.sink, pkt, len, 0, (struct sockaddr *)&to, sizeof(to));
		rt_ctx_progress(T.ctx);
	} else {
		char ip[] = "127.0.0.1";
		if (rt_inject_packet(T.ctx, pkt, len, ip, T.sink_port) != 0)
			die("rt_inject_packet failed: %s", rt_last_error());
	}
}

static void report(void)
{
	if (!T.ctx)
		return;
	if (T.n_epoch)
		liveness();
	add_stats();
	fprintf(stderr,
		"[fuzz_rx] inputs=%llu epochs=%llu liveness_ok=%llu malformed=%llu foreign=%llu "
		"B: rx_packets=%llu naks_sent=%llu acks_received=%llu oracle_checked=%llu "
		"known_issue_avoided=%llu\n",
		(unsigned long long)T.n, (unsigned long long)T.epoch,
		(unsigned long long)T.liveness_checks, (unsigned long long)T.malformed,
		(unsigned long long)T.foreign, (unsigned long long)T.rx_packets,
		(unsigned long long)T.naks_sent, (unsigned long long)T.acks_received,
		(unsigned long long)oracle_checked, (unsigned long long)known_issue_avoided);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	const char *e = getenv("RT_FUZZ_CHECK_EVERY");
	T.check_every = e ? strtoull(e, NULL, 0) : 1000;
	if (!T.check_every)
		T.check_every = 1;
	T.mode = getenv("RT_FUZZ_MODE") ? getenv("RT_FUZZ_MODE") : "cycle";
	T.sink = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001) };
	socklen_t sl = sizeof(sa);
	if (T.sink < 0 || bind(T.sink, (struct sockaddr *)&sa, sizeof(sa)) ||
	    getsockname(T.sink, (struct sockaddr *)&sa, &sl)) {
		perror("fuzz_rx: sink socket");
		abort();
	}
	T.sink_port = ntohs(sa.sin_port);
	T.sink_tos = -1;
	open_epoch();
	atexit(report);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	T.n++;
	T.n_epoch++;
	memset(prime_fg_done, 0, sizeof(prime_fg_done));
	memset(orc, 0, sizeof(orc));
	size_t i = 0;
	for (int r = 0; r < MAX_RECORDS && i + 4 <= size; r++) {
		uint8_t c0 = data[i], c1 = data[i + 1];
		size_t len = (size_t)data[i + 2] << 8 | data[i + 3];
		i += 4;
		if (len > size - i)
			len = size - i;
		deliver(c0, c1, data + i, len);
		i += len;
	}
	rt_ctx_progress(T.ctx);
	drain_sink();
	drain(T.cqb, 1, NULL, 0, 0);
	drain(T.cqa, 0, NULL, 0, 0);
	check_guards();
	post_recv_b();
	if (T.n_epoch >= T.check_every) {
		liveness();
		close_epoch();
		open_epoch();
	}
	return 0;
}

/* ------------------------------------------------------------ mutator */

static uint64_t rnd(unsigned *seed)
{
	uint64_t x = *seed = *seed * 1103515245u + 12345u;
	return x >> 8;
}

static const uint64_t special[] = {
	0, 1, 2, 3, 4, 5, 7, 8, 15, 16, 31, 32, 33, 63, 64, 255, 256, 511, 512, 513, 1375, 1376,
	1377, 4095, 4096, 4097, 65535, 65536, 1u << 30, (1u << 30) + 1, 0x7fffffff, 0x80000000,
	0xffffffff, 1ull << 32, 1ull << 63, ~0ull, ~0ull - 7,
};

size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size, unsigned seed)
{
	/* locate the records */
	size_t off[MAX_RECORDS], len[MAX_RECORDS];
	int n = 0;
	for (size_t i = 0; n < MAX_RECORDS && i + 4 <= size;) {
		size_t l = (size_t)data[i + 2] << 8 | data[i + 3];
		if (l > size - i - 4)
			l = size - i - 4;
		off[n] = i;
		len[n++] = l;
		i += 4 + l;
	}
	unsigned s = seed;
	uint64_t r = rnd(&s) % 100;
	if (!n || r < 30)
		return LLVMFuzzerMutate(data, size, max_size);
	int k = (int)(rnd(&s) % n);
	uint8_t *p = data + off[k] + 4;
	size_t pl = len[k];
	if (r < 45) { /* toggle a control bit */
		data[off[k] + (rnd(&s) & 1)] ^= (uint8_t)(1u << (rnd(&s) % 8));
		return size;
	}
	if (r < 60 || pl < RT_HDR_SIZE) { /* mutate one packet, keep the framing */
		size_t room = max_size - size;
		size_t tail = size - (off[k] + 4 + pl);
		size_t cap = pl + (room > 256 ? 256 : room);
		uint8_t tmp[65536 + 256];
		if (cap > sizeof(tmp))
			cap = sizeof(tmp);
		memcpy(tmp, p, pl);
		size_t nl = LLVMFuzzerMutate(tmp, pl, cap);
		if (nl > 0xffff)
			nl = 0xffff;
		memmove(p + nl, p + pl, tail);
		memcpy(p, tmp, nl);
		data[off[k] + 2] = (uint8_t)(nl >> 8);
		data[off[k] + 3] = (uint8_t)nl;
		return size - pl + nl;
	}
	/* set one header field to an interesting value */
	static const uint8_t common[][2] = { { 0, 2 }, { 2, 1 }, { 3, 1 }, { 4, 2 }, { 6, 2 },
					     { 8, 4 }, { 12, 4 }, { 32, 2 }, { 34, 2 } };
	static const uint8_t dat[][2] = { { 0, 4 }, { 4, 1 }, { 5, 1 }, { 8, 4 }, { 12, 4 },
					  { 16, 8 }, { 24, 8 }, { 32, 8 }, { 40, 8 }, { 48, 4 },
					  { 52, 4 } };
	static const uint8_t ack[][2] = { { 0, 4 }, { 4, 4 }, { 8, 4 }, { 12, 2 }, { 14, 1 },
					  { 15, 1 }, { 16, 4 }, { 24, 4 }, { 28, 4 }, { 32, 4 },
					  { 36, 4 } };
	static const uint8_t nak[][2] = { { 0, 4 }, { 4, 4 }, { 8, 1 }, { 9, 1 } };
	const uint8_t(*f)[2] = common;
	size_t nf = sizeof(common) / 2, base = 0;
	if (rnd(&s) % 4 && pl > RT_HDR_SIZE) {
		base = RT_HDR_SIZE;
		switch (p[3]) {
		case RT_PKT_DATA: f = dat; nf = sizeof(dat) / 2; break;
		case RT_PKT_ACK: f = ack; nf = sizeof(ack) / 2; break;
		default: f = nak; nf = sizeof(nak) / 2; break;
		}
	}
	size_t j = rnd(&s) % nf;
	size_t o = base + f[j][0], w = f[j][1];
	if (o + w > pl)
		return LLVMFuzzerMutate(data, size, max_size);
	uint64_t v = 0;
	for (size_t b = 0; b < w; b++)
		v = v << 8 | p[o + b];
	switch (rnd(&s) % 4) {
	case 0:
	case 1: v = special[rnd(&s) % (sizeof(special) / sizeof(special[0]))]; break;
	case 2: v += (rnd(&s) & 1 ? 1 : -1) * (int64_t)(1 + rnd(&s) % 16); break;
	default: v ^= 1ull << (rnd(&s) % (8 * w)); break;
	}
	for (size_t b = w; b-- > 0; v >>= 8)
		p[o + b] = (uint8_t)v;
	return size;
}
