/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Internal structures of the rtransport core.  Nothing here is exported.
 *
 * Layering (picoquic style):
 *   engine.c   - the only code that reads the clock and owns the loop
 *   io_udp.c   - the only code that touches sockets (batched tx/rx)
 *   fault.c    - deterministic fault injection between io and protocol
 *   receiver.c - protocol input: decode, dedupe, placement, ACK/NAK build
 *   sender.c   - protocol output: packetize, ACK/NAK processing, loss
 *                detection, retransmission, timers
 *   paths.c    - per-path (entropy value) state, selection, quarantine
 *   cc_*.c     - congestion control behind struct rt_cc_ops
 * Protocol functions take `now_us` as an argument and emit packets into
 * a struct rt_txq; they never call clock_gettime() or send().
 */
#ifndef RT_INTERNAL_H
#define RT_INTERNAL_H

#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "cc.h"
#include "rtransport/rt.h"
#include "wire.h"

#define RT_HIDDEN __attribute__((visibility("hidden")))

#define RT_MAX_PATHS 256          /* source ports x local addresses */
#define RT_EP_SLOTS_MAX 65535u    /* endpoints per context (16-bit slot in the id) */
#define RT_MSG_WIN 512            /* live messages per peer and direction */
#define RT_RCV_WIN (1u << 16)     /* receive PSN window (bits) */
#define RT_RING_MIN 1024u         /* initial tx ring (packets) */
#define RT_RING_MAX (1u << 16)    /* largest tx ring (== RT_RCV_WIN) */
#define RT_GSO_MAX_SEGS 64
#define RT_GSO_MAX_BYTES 65000u
#define RT_BUNDLE_MAX 16          /* packets coalesced into one plain datagram */
#define RT_BUNDLE_MAX_BYTES 1472u /* and its size: fits any IPv4 path of MTU >= 1500 */
#define RT_BUNDLE_ID_OFF 8        /* common header bytes 8..31 (dst_ep, src_ep, */
#define RT_BUNDLE_ID_LEN 24       /* dst_nonce, src_nonce): equal in a bundle */
#define RT_RX_BATCH 32
#define RT_ACK_RECENT 16          /* newest received runs an ACK reports first */
#define RT_TXQ_PKTS 2048          /* packets per tx flush */
#define RT_TXQ_MSGS 256           /* sendmmsg entries per flush */
#define RT_MIN_RTT_US 5           /* no kernel round trip is faster: a sample below is bogus */
#define RT_HDRBUF (RT_HDR_SIZE + RT_ACK_HDR_SIZE + 8 * RT_ACK_MAX_RANGES) /* largest header: a full ACK */

/* serial-number comparisons for 32-bit PSNs */
static inline bool psn_lt(uint32_t a, uint32_t b) { return (int32_t)(a - b) < 0; }
static inline bool psn_le(uint32_t a, uint32_t b) { return (int32_t)(a - b) <= 0; }

/* ------------------------------------------------------------- errors */
RT_HIDDEN int rt_seterr(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
RT_HIDDEN void rt_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
RT_HIDDEN uint64_t rt_random64(void);

/* ------------------------------------------------------------- placement */
/* Messages at least this long are placed with non-temporal stores
 * (rt_place()): their destination is larger than a core's cache and cold. */
#define RT_PLACE_NT_MIN (4u << 20)
RT_HIDDEN void rt_place_nt(void *dst, const void *src, size_t n);
/**
 * rt_place() - copy received payload to its final place in user memory.
 * @ctx: the context (records that a store fence is owed)
 * @dst, @src, @n: as memcpy()
 * @msg_len: length of the whole message the payload belongs to
 *
 * Payload of large messages goes around the cache (non-temporal stores),
 * so writing a cold destination does not first read it; anything that
 * makes the bytes visible to another thread or peer (a completion, a
 * transmitted ACK) calls rt_place_fence() first.
 */
#define rt_place(ctx, dst, src, n, msg_len)                                        \
	do {                                                                       \
		if ((msg_len) >= RT_PLACE_NT_MIN) {                                \
			rt_place_nt((dst), (src), (n));                            \
			(ctx)->place_fence = true;                                 \
		} else {                                                           \
			memcpy((dst), (src), (n));                                 \
		}                                                                  \
	} while (0)
/* rt_place_fence() - order earlier non-temporal placement before what follows */
#if defined(__x86_64__)
#define rt_place_fence(ctx)                                                        \
	do {                                                                       \
		if ((ctx)->place_fence) {                                          \
			__builtin_ia32_sfence();                                   \
			(ctx)->place_fence = false;                                \
		}                                                                  \
	} while (0)
#else
#define rt_place_fence(ctx) ((void)0)
#endif

/* ------------------------------------------------------------- regions */
struct rt_mr {
	rt_ctx *ctx;
	uint8_t *addr;
	uint64_t len;
	uint32_t access;
	uint64_t rkey;
	uint32_t inflight; /* local messages referencing this region */
	struct rt_mr *hnext;
};

RT_HIDDEN struct rt_mr *rt_mr_lookup(rt_ctx *ctx, uint64_t rkey);
RT_HIDDEN void rt_mr_table_free(rt_ctx *ctx);

/* ------------------------------------------------------------- CQ */
struct rt_cq {
	rt_ctx *ctx;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct rt_wc *ring;
	uint32_t cap, head, count;
	uint32_t waiters;
	uint32_t signals; /* rt_cq_signal() calls: waiters return when it moves */
	uint32_t users;   /* endpoints reporting here */
	bool owned;       /* created implicitly by an endpoint */
	struct rt_cq *next;
};
RT_HIDDEN void rt_cq_push(struct rt_cq *cq, const struct rt_wc *wc);
RT_HIDDEN void rt_cq_free(struct rt_cq *cq);

/* ------------------------------------------------------------- messages */
enum msg_state {
	MSG_QUEUED = 0,  /* bytes left to packetize */
	MSG_SENT,        /* all packetized, waiting for ACKs */
	MSG_WAIT_RESP,   /* request acked, waiting for the response */
	MSG_DONE,
};

struct rt_msg {
	struct rt_msg *next;             /* send queue link */
	struct rt_msg *lprev, *lnext;    /* live list (msg_id order) */
	struct rt_peer *peer;
	uint64_t wr_id;
	struct rt_mr *mr;                /* local region (source or destination) */
	const uint8_t *src;              /* bytes to transmit (NULL: none) */
	uint64_t loff;                   /* offset in mr */
	uint64_t len;                    /* msg_len on the wire */
	uint64_t user_len;               /* bytes reported in the completion */
	uint64_t next_off;               /* next byte to packetize */
	uint64_t rkey, raddr;
	uint64_t resp_bytes;             /* response bytes placed */
	uint64_t rnr_since_us;
	uint32_t msg_id, aux, imm;
	uint32_t pkts_out;               /* packets with a PSN, not yet acked */
	uint32_t status;                 /* first error, RT_WC_SUCCESS otherwise */
	uint8_t op;                      /* enum rt_wire_op */
	uint8_t user_op;                 /* enum rt_opcode */
	uint8_t state;                   /* enum msg_state */
	uint8_t has_imm;
	uint8_t internal;                /* response: no user completion */
	uint8_t failed;                  /* completion already reported as error */
	uint8_t all_sent;                /* every byte has a PSN (or was abandoned) */
	uint8_t inline_buf[16];          /* atomic request/response payload */
};

/* ------------------------------------------------------------- tx ring */
enum txpkt_state { TX_FREE = 0, TX_INFLIGHT, TX_LOST, TX_ACKED };
#define TXF_RETX 0x01   /* has been retransmitted (Karn: no RTT sample) */
#define TXF_ABORT 0x02  /* send as an abort (PSN filler, no payload) */
#define TXF_UNSENT 0x04 /* the kernel refused it; resend is not a retransmit */

struct rt_txpkt {
	struct rt_msg *msg;
	uint64_t off;
	uint64_t sent_us;
	uint64_t resend_at;      /* not before (RNR back-off) */
	uint32_t len;
	uint16_t path;
	uint8_t state;
	uint8_t flags;
};

/* ------------------------------------------------------------- paths */
#define RT_RTT_BUCKETS 216 /* 8 per octave up to 2^29 us: paths.c */
struct rt_path_state {           /* per peer, per path: a flow of its own */
	uint64_t cc_state[RT_CC_STATE_MAX / 8]; /* congestion control of this path */
	uint64_t tx_packets, tx_bytes, acked, losses, retransmits, timeouts;
	uint64_t ctl_packets, ctl_bytes; /* ACKs/NAKs we sent on this path */
	uint64_t inflight_bytes;
	uint64_t pace_next_us;           /* pacing: next unit may leave then */
	uint64_t rack_sent_us;           /* newest send time delivered on this path */
	uint64_t rack_rtt_us;            /* RTT of that packet */
	uint32_t inflight;
	uint32_t consec_bad;     /* losses since the last good ACK */
	uint64_t quarantine_until;
	uint64_t quarantine_count;
	uint32_t quarantine_streak;      /* quarantines since it last delivered */
	uint64_t explore_acked;          /* `acked` at the last exploration step */
	uint64_t rtt_last_us, srtt_us, rttvar_us;
	uint32_t hist[RT_RTT_BUCKETS]; /* log-spaced RTT histogram (paths.c) */
	bool quarantined;
};

/* ------------------------------------------------------------- receive */
enum rxs_state {
	RXS_EMPTY = 0,
	RXS_ASSIGNED,   /* has a receive buffer */
	RXS_DONE,       /* all bytes placed */
	RXS_FAILED,     /* completes with `status` (no completion if no buffer) */
	RXS_SKIP,       /* sender abandoned it before any buffer was assigned */
};
struct rt_rx_send {              /* receive side of one SEND, by ssn */
	uint32_t ssn;
	uint8_t state;
	uint8_t len_known;
	uint32_t status;
	struct rt_mr *mr;
	uint64_t off, cap, wr_id;
	uint64_t bytes, msg_len;
};
struct rt_rx_wimm {              /* receive side of a WRITE with imm, by msg_id */
	uint32_t msg_id;
	bool active;
	uint32_t imm;
	uint64_t bytes, msg_len;
};

struct rt_recv_wr {
	struct rt_recv_wr *next;
	struct rt_mr *mr;
	uint64_t off, len, wr_id;
};

/* ------------------------------------------------------------- peers */
enum peer_state { PEER_OK = 0, PEER_FAILED };

struct rt_peer {
	struct rt_ep *ep;
	uint32_t id;                     /* rt_peer_t (index in ep->peers) */
	struct sockaddr_in addr;         /* remote base port */
	uint32_t remote_ep;
	uint64_t remote_nonce;
	uint8_t state;
	uint32_t fail_status;
	struct rt_peer *hnext;           /* ep hash chain */
	struct rt_peer *anext;           /* ctx active list */
	bool active;

	/* ---- sender ---- */
	uint32_t snd_nxt, snd_una;
	struct rt_txpkt *ring;
	uint32_t ring_mask;              /* ring size - 1 (0 = not allocated) */
	uint64_t inflight_bytes;
	uint32_t inflight_pkts;
	uint32_t nlost;                  /* TX_LOST entries waiting for resend */
	uint32_t lost_scan;              /* PSN to start the next lost scan at */
	struct rt_msg *sq_head, *sq_tail;
	struct rt_msg *live_head, *live_tail;
	struct rt_msg **resp_wait;       /* [RT_MSG_WIN] by request msg_id */
	uint32_t next_msg_id, next_ssn;
	uint32_t nmsgs;                  /* live messages */
	uint64_t srtt_us, rttvar_us, min_rtt_us, rto_us;
	/* the same, with the receiver's ACK hold left in: how long an ACK
	 * takes as the loss-probe and retransmission timers see it */
	uint64_t tsrtt_us, trttvar_us;
	uint32_t rto_backoff;
	uint64_t rack_sent_us, rack_rtt_us;
	uint32_t reo_mult;               /* reordering window in min_rtt/4 units */
	uint32_t recoveries;
	uint64_t last_progress_us;       /* last ACK of new data (or first send) */
	uint8_t tlp_sent;                /* a tail-loss probe is outstanding */
	uint64_t last_rx_us;             /* anything heard from the peer */
	const struct rt_cc_ops *cc;
	uint16_t path_rr;                /* round-robin cursor */
	uint16_t batch_path;             /* path of the current spray unit */
	uint32_t batch_left;             /* packets left in the spray unit */
	struct rt_path_state *paths;     /* [ctx->npaths] */
	uint64_t cc_state[RT_CC_STATE_MAX / 8]; /* congestion control (scope peer) */
	uint64_t pace_next_us;           /* pacing (scope peer) */
	uint64_t pool_next_us;           /* pool below one MSS: next send (paths.c) */
	/* exploration (rt_path_explore) */
	uint64_t explore_at_us, explore_last_us;
	uint64_t explore_rate;           /* packets/s delivered in the last step */
	bool explore_moved;              /* the last step moved a path */

	/* ---- receiver ---- */
	uint32_t rcv_cum, rcv_max;
	uint64_t *rcv_bits;              /* RT_RCV_WIN bits, lazily */
	bool ack_pending;
	bool ack_hold;                   /* a request completed: wait briefly for a reply to ride along */
	uint8_t ack_flags;
	uint16_t ack_echo_path;
	uint32_t ack_ts_echo;
	uint32_t ack_recent[RT_ACK_RECENT]; /* PSN runs received since the last ACK */
	uint8_t ack_nrecent;
	uint64_t ack_rx_us;
	uint32_t ce_count;
	struct rt_rx_send *rx_send;      /* [RT_MSG_WIN], lazily */
	uint32_t rx_ssn_base, rx_ssn_assigned;
	struct rt_rx_wimm *rx_wimm;      /* [RT_MSG_WIN], lazily */
	uint32_t rx_wimm_active;         /* active entries in rx_wimm */
};

/* ------------------------------------------------------------- endpoint */
#define RT_PEER_HASH 256
#define RT_MAX_PEERS 65536        /* per endpoint; identities beyond are refused */
struct rt_ep {
	rt_ctx *ctx;
	uint32_t id;
	uint64_t nonce;
	struct rt_cq *cq;
	struct rt_recv_wr *rq_head, *rq_tail;
	uint32_t rq_len;
	struct rt_peer **peers;
	uint32_t npeers, peers_cap;
	struct rt_peer *phash[RT_PEER_HASH];
	struct rt_peer *last_peer;
	struct rt_ep_stats st;
	bool closing;
	bool warned_nocsum;              /* logged: a peer sends without checksums */
};

/* ------------------------------------------------------------- io */
struct rt_txq_pkt {                  /* one datagram queued for transmit */
	uint16_t path;
	uint16_t hdr_len;
	uint32_t pay_len;
	const uint8_t *payload;
	struct sockaddr_in dst;
	struct rt_peer *peer;            /* data packets: for error accounting */
	uint32_t psn;
	uint8_t hdr[RT_HDRBUF];
};

struct rt_txq {
	struct rt_txq_pkt *pkts;
	uint32_t n;
};

struct rt_io {
	int npaths;
	int fds[RT_MAX_PATHS];           /* fds[0] is the receive socket */
	uint16_t ports[RT_MAX_PATHS];
	struct sockaddr_in local[RT_MAX_PATHS];
	int evfd;                        /* wakes the progress thread */
	bool gso, gro, gso_supported, gro_supported;
	uint32_t sndbuf, rcvbuf;
	/* rx */
	uint8_t *rxbuf;
	uint32_t rx_bufsz;
	struct mmsghdr rx_msgs[RT_RX_BATCH];
	struct iovec rx_iov[RT_RX_BATCH];
	struct sockaddr_in rx_from[RT_RX_BATCH];
	uint8_t rx_ctrl[RT_RX_BATCH][128]; /* GRO 24 + stamp 32 + TOS 24 bytes, and room */
	bool rx_batch;                   /* last receive found data: recvmmsg() next */
	/* lean receive (rt_io_recv): kernel stamps off while busy-polling */
	bool stamps_ok;                  /* SO_TIMESTAMPNS accepted on fds[0] */
	bool rx_lean;                    /* stamps are off now */
	uint32_t rx_singles;             /* consecutive lone datagrams found promptly */
	uint64_t rx_poll_us;             /* time of the previous receive attempt */
	uint64_t lean_holdoff_us;        /* stamps stay on until then */
	uint64_t lean_switches;          /* stamps turned off or on again */
	int64_t clock_off_us;             /* CLOCK_REALTIME - CLOCK_MONOTONIC, us */
	uint64_t clock_off_at_us;         /* when clock_off_us was measured (0 = never) */
	uint64_t repath_req[RT_MAX_PATHS / 64]; /* paths to move to a new source port */
	uint64_t repaths[RT_MAX_PATHS];  /* times each path got a new source port */
	uint64_t explore_req[RT_MAX_PATHS / 64]; /* of repath_req, asked for by exploration */
	uint64_t explores[RT_MAX_PATHS]; /* of repaths, those by exploration */
	/* send fast path: path sockets (not fds[0]) are connect()ed to the
	 * first destination they send to, so the kernel reuses the route */
	struct sockaddr_in conn[RT_MAX_PATHS]; /* sin_family 0: not connected */
	/* tx scratch */
	struct iovec *tx_iov;
	struct mmsghdr *tx_msgs;
	uint8_t (*tx_ctrl)[CMSG_SPACE(sizeof(uint16_t))];
	uint32_t *tx_first;              /* first txq index of each mmsghdr */
	uint32_t *tx_count;              /* packets in each mmsghdr */
	uint64_t tx_syscalls, rx_syscalls, tx_eagain;
	uint64_t tx_datagrams, tx_segments, rx_datagrams, rx_segments, loops;
	uint64_t tx_bundles, rx_bundles;
};

/* ------------------------------------------------------------- fault */
struct rt_fault_pkt {
	struct rt_fault_pkt *next;
	uint64_t release_us;
	struct sockaddr_in from;
	uint8_t tos;
	uint32_t len;
	uint8_t data[];
};
struct rt_fault {
	bool enabled;
	uint64_t s[4];                   /* xoshiro256** state */
	double drop, dup, reorder, delay, corrupt;
	uint32_t delay_us;
	uint32_t routes;                 /* ECMP model: routes, and the dead ones */
	uint64_t dead_routes;
	struct rt_fault_pkt *held;       /* sorted by release time */
	uint32_t nheld;
	uint64_t held_bytes;
};

/* ------------------------------------------------------------- context */
struct rt_ctx {
	struct rt_config cfg;
	char bind[64];
	char cc_name[16];
	char extra[256];
	const struct rt_cc_ops *cc;
	pthread_mutex_t lock;            /* the engine lock: all protocol state */
	struct rt_io io;
	struct rt_fault fault;
	struct rt_txq txq;
	uint32_t npaths;
	uint32_t max_payload;            /* payload bytes per packet */
	struct rt_ep **eps;              /* by slot (low 16 bits of the id) - 1 */
	uint16_t *ep_gen;                /* per slot: generation of its next id */
	uint32_t neps_cap;
	struct rt_mr **mr_hash;
	uint32_t mr_hash_size, nmrs;
	struct rt_cq *cqs;
	struct rt_peer *active;          /* peers with work */
	pthread_t thread;
	bool has_thread;
	volatile int stop;
	int sleeping;                    /* atomic: thread is in ppoll */
	int app_driving;                 /* atomic: app threads spinning on CQs */
	int backing_off;                 /* atomic: progress thread in its back-off wait */
	uint64_t app_active_us;          /* atomic: last time an app thread drove progress */
	uint64_t last_activity_us;
	uint64_t now_us;                 /* time of the current iteration */
	uint64_t explore_move_us;        /* last exploration move (any peer) */
	uint64_t explore_ival_us;        /* least time between two moves */
	struct rt_ctx_info info;
	/* the ACK that ended a bundle with data, processed after the reply
	 * has gone out (rt_rx_datagram(), rt_rx_deferred()) */
	uint8_t rx_defer[RT_HDRBUF];
	uint32_t rx_defer_len;           /* 0: none */
	uint8_t rx_defer_tos;
	uint64_t rx_defer_ts;
	struct sockaddr_in rx_defer_from;
	bool place_fence;                /* non-temporal placement not yet fenced */
	bool destroying;
};

/* engine.c */
RT_HIDDEN uint64_t rt_now_us(void);
RT_HIDDEN int rt_engine_start(rt_ctx *ctx);
RT_HIDDEN void rt_engine_stop(rt_ctx *ctx);
RT_HIDDEN int rt_engine_once(rt_ctx *ctx, uint64_t now); /* lock held */
RT_HIDDEN void rt_engine_kick(rt_ctx *ctx);               /* after posting work */
RT_HIDDEN void rt_engine_app_enter(rt_ctx *ctx);
RT_HIDDEN void rt_engine_app_leave(rt_ctx *ctx);
RT_HIDDEN void rt_engine_app_block(rt_ctx *ctx);

/* io_udp.c */
RT_HIDDEN int rt_io_open(rt_ctx *ctx);
RT_HIDDEN void rt_io_close(struct rt_io *io);
RT_HIDDEN void rt_io_repath(rt_ctx *ctx);
RT_HIDDEN int rt_io_recv(rt_ctx *ctx, uint64_t now); /* returns packets handled */
RT_HIDDEN void rt_io_flush(rt_ctx *ctx, uint64_t now);
RT_HIDDEN int rt_io_probe(const char *bind, struct rt_ctx_info *info);
RT_HIDDEN struct rt_txq_pkt *rt_txq_add(rt_ctx *ctx, uint64_t now); /* flushes when full */

/* fault.c */
RT_HIDDEN void rt_fault_init(struct rt_fault *f, const struct rt_config *cfg);
RT_HIDDEN void rt_fault_free(struct rt_fault *f);
RT_HIDDEN void rt_fault_input(rt_ctx *ctx, uint8_t *pkt, uint32_t len,
			      const struct sockaddr_in *from, uint8_t tos, uint64_t rx_ts,
			      uint64_t now);
RT_HIDDEN int rt_fault_release(rt_ctx *ctx, uint64_t now);
RT_HIDDEN uint64_t rt_fault_next_us(const struct rt_fault *f);

/* receiver.c */
/* rx_ts: when the kernel received the datagram (monotonic us); timing
 * uses it so that host scheduling delay is not mistaken for queueing */
RT_HIDDEN void rt_rx_packet(rt_ctx *ctx, uint8_t *pkt, uint32_t len,
			    const struct sockaddr_in *from, uint8_t tos, uint64_t rx_ts,
			    uint64_t now);
RT_HIDDEN void rt_rx_datagram(rt_ctx *ctx, uint8_t *dg, uint32_t len,
			      const struct sockaddr_in *from, uint8_t tos, uint64_t rx_ts,
			      uint64_t now);
RT_HIDDEN void rt_rx_flush_acks(rt_ctx *ctx, uint64_t now);
RT_HIDDEN void rt_rx_deferred(rt_ctx *ctx, uint64_t now); /* lock held */
RT_HIDDEN void rt_rx_ack_now(struct rt_peer *p, uint64_t now, int path);
RT_HIDDEN void rt_peer_rx_free(struct rt_peer *p);

/* sender.c */
RT_HIDDEN void rt_tx_on_ack(struct rt_peer *p, const struct rt_hdr *h,
			    const struct rt_ack_hdr *a, uint64_t rx_ts, uint64_t now);
RT_HIDDEN void rt_tx_on_nak(struct rt_peer *p, const struct rt_nak_hdr *n, uint64_t now);
RT_HIDDEN int rt_tx_push(struct rt_peer *p, uint64_t now);   /* packetize + send */
RT_HIDDEN void rt_tx_timers(struct rt_peer *p, uint64_t now);
RT_HIDDEN uint64_t rt_tx_next_timer(const struct rt_peer *p, uint64_t now);
RT_HIDDEN bool rt_peer_has_work(const struct rt_peer *p);
RT_HIDDEN void rt_tx_enqueue(struct rt_peer *p, struct rt_msg *m);
RT_HIDDEN void rt_peer_fail(struct rt_peer *p, uint32_t status);
RT_HIDDEN void rt_tx_unsent(struct rt_peer *p, uint32_t psn);
RT_HIDDEN void rt_msg_complete(struct rt_msg *m, uint32_t status);
RT_HIDDEN void rt_msg_release(struct rt_msg *m);
RT_HIDDEN void rt_msg_maybe_release(struct rt_msg *m);
RT_HIDDEN void rt_peer_tx_free(struct rt_peer *p);
RT_HIDDEN void rt_peer_init_tx(struct rt_peer *p, uint64_t now);
RT_HIDDEN void rt_hdr_fill(struct rt_peer *p, struct rt_hdr *h, uint8_t type);

/* endpoint.c */
/* the live endpoint with exactly this id (slot and generation), or NULL;
 * inline: every received packet is looked up with it */
static inline struct rt_ep *rt_ep_by_id(rt_ctx *ctx, uint32_t id)
{
	uint32_t slot = id & 0xFFFFu;
	if (slot == 0 || slot > ctx->neps_cap)
		return NULL;
	struct rt_ep *ep = ctx->eps[slot - 1];
	return ep && ep->id == id ? ep : NULL;
}
RT_HIDDEN struct rt_peer *rt_ep_find_peer(struct rt_ep *ep, uint32_t remote_ep,
					  uint64_t remote_nonce);
RT_HIDDEN struct rt_peer *rt_ep_add_peer(struct rt_ep *ep, const struct sockaddr_in *addr,
					 uint32_t remote_ep, uint64_t remote_nonce);
RT_HIDDEN void rt_peer_activate(struct rt_peer *p);
RT_HIDDEN void rt_ep_complete(struct rt_ep *ep, uint64_t wr_id, uint32_t opcode,
			      uint32_t status, uint64_t byte_len, uint32_t peer,
			      bool has_imm, uint32_t imm);

/* paths.c */
RT_HIDDEN int rt_paths_init(struct rt_peer *p, uint64_t now);
RT_HIDDEN int rt_path_pick_tx(struct rt_peer *p, uint64_t now); /* -1: none open */
RT_HIDDEN uint16_t rt_path_pick(struct rt_peer *p, uint64_t now);  /* control packets */
RT_HIDDEN uint64_t rt_path_cwnd(const struct rt_peer *p, uint16_t path);
/* @path's window is below one MSS, so it sends from the peer's pool (paths.c) */
RT_HIDDEN bool rt_path_pooled(const struct rt_peer *p, uint16_t path);
/* the pooled window of a peer's sub-MSS paths, at least one MSS (paths.c) */
RT_HIDDEN uint64_t rt_path_pool_cwnd(const struct rt_peer *p);
/* a pool member sent @bytes: paces the pool while its window is under one MSS */
RT_HIDDEN void rt_pool_sent(struct rt_peer *p, uint32_t bytes, uint64_t now);
/* congestion control state that governs @path: the peer's or the path's */
static inline bool rt_cc_per_peer(const struct rt_peer *p)
{
	return p->ep->ctx->cfg.cc_scope == RT_CC_SCOPE_PEER;
}
static inline void *rt_cc_state(struct rt_peer *p, uint16_t path)
{
	return rt_cc_per_peer(p) ? (void *)p->cc_state : (void *)p->paths[path].cc_state;
}
RT_HIDDEN uint64_t rt_paths_next_send(const struct rt_peer *p, uint64_t now);
RT_HIDDEN void rt_path_on_ack(struct rt_peer *p, uint16_t path, uint64_t rtt_us, uint64_t now);
RT_HIDDEN void rt_path_repath(rt_ctx *ctx, uint16_t path, bool explore);
RT_HIDDEN void rt_path_on_loss(struct rt_peer *p, uint16_t path, bool timeout, uint64_t now);
RT_HIDDEN void rt_path_explore(struct rt_peer *p, uint64_t now);
RT_HIDDEN void rt_path_stats_fill(struct rt_ep *ep, struct rt_path_stats *ps, int n);

/* Structures of the API are sized by the caller (rt.h, "ABI rules"):
 * at least their size in 0.2, the first sized version ... */
#define RT_CONFIG_SIZE_0_2 192
#define RT_CTX_INFO_SIZE_0_2 224
#define RT_EP_STATS_SIZE_0_2 256
#define RT_PATH_STATS_SIZE_0_2 176
_Static_assert(sizeof(struct rt_config) >= RT_CONFIG_SIZE_0_2, "rt_config shrank");
_Static_assert(sizeof(struct rt_ctx_info) >= RT_CTX_INFO_SIZE_0_2, "rt_ctx_info shrank");
_Static_assert(sizeof(struct rt_ep_stats) >= RT_EP_STATS_SIZE_0_2, "rt_ep_stats shrank");
_Static_assert(sizeof(struct rt_path_stats) >= RT_PATH_STATS_SIZE_0_2, "rt_path_stats shrank");
/* rt_config_defaults() - the defaults, in this library's full struct */
RT_HIDDEN void rt_config_defaults(struct rt_config *cfg);
/* ... and rt_copy_out() writes min(dst_size, src_size) bytes of @src to
 * @dst and zeroes the rest of @dst (fields a newer header has and this
 * library does not fill). */
RT_HIDDEN void rt_copy_out(void *dst, size_t dst_size, const void *src, size_t src_size);
/* rt_check_size() - RT_OK if @size >= @min, else RT_ERR_INVAL saying that
 * @fn wants sizeof(struct @type) */
RT_HIDDEN int rt_check_size(const char *fn, const char *type, size_t size, size_t min);

#endif /* RT_INTERNAL_H */
