/* SPDX-License-Identifier: Apache-2.0 */
/**
 * rtransport public C API.
 *
 * A user-space, RDMA-style reliable datagram transport over UDP/IP.
 * Objects follow the verbs model:
 *
 *   rt_ctx  - owns UDP sockets, the memory-region table and the progress
 *             engine (a C thread; application threads that wait on a
 *             completion queue lend their cycles to it).
 *   rt_mr   - a registered memory region, addressed remotely by an
 *             unguessable 64-bit rkey.
 *   rt_cq   - a completion queue; one or more endpoints report to it.
 *   rt_ep   - a connectionless reliable-datagram endpoint (SRD-style):
 *             one endpoint talks to many peers; rt_peer_t names a peer.
 *
 * Every function returns 0 (RT_OK) or a negative rt_err code; a
 * human-readable explanation of the last error of the calling thread is
 * available from rt_last_error().  No function blocks longer than the
 * timeout it is given.  All functions are thread-safe.
 *
 * Only symbols starting with rt_ are exported from the library.
 */
#ifndef RTRANSPORT_RT_H
#define RTRANSPORT_RT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define RT_API __attribute__((visibility("default")))
#else
#define RT_API
#endif

#define RT_VERSION_MAJOR 0
#define RT_VERSION_MINOR 2

/*
 * ABI rules.  The shared library's soname carries the version
 * (librtransport.so.0.2 while the major version is 0, where a minor
 * version may break the ABI; librtransport.so.N from 1.0 on).
 * Structures the library fills for the caller (rt_ctx_info,
 * rt_ep_stats, rt_path_stats) may grow at the end in later versions:
 * the functions that fill them take the caller's sizeof(), write at
 * most that many bytes and zero what they do not know, so a program
 * built against an older or newer header stays safe; a size below the
 * struct's size in 0.2 (the first sized version) is refused.  struct
 * rt_config carries the caller's size (rt_config_init() records this
 * header's): rt_ctx_create() reads no more than that, takes defaults for
 * fields the caller's header lacks, and refuses a newer header's fields
 * it does not know unless they are zero.
 * struct rt_wc is frozen: new completion fields would come with a new
 * poll call.
 */

/** Return codes of API calls (negative values are errors). */
enum rt_err {
	RT_OK = 0,
	RT_ERR_INVAL = -1,       /* bad argument (size, offset, flag, format) */
	RT_ERR_NOMEM = -2,       /* out of memory */
	RT_ERR_SYS = -3,         /* a system call failed (errno in message) */
	RT_ERR_CLOSED = -4,      /* object closed / being closed */
	RT_ERR_TIMEOUT = -5,     /* a wait ran out of time */
	RT_ERR_ACCESS = -6,      /* access flags forbid the operation */
	RT_ERR_BOUNDS = -7,      /* offset/length outside the memory region */
	RT_ERR_ADDR = -8,        /* malformed peer address or descriptor */
	RT_ERR_PEER = -9,        /* unknown or failed peer */
	RT_ERR_BUSY = -10,       /* object still in use (e.g. MR with ops in flight) */
	RT_ERR_UNSUPPORTED = -11,/* not supported on this system/build */
};

/** Access flags of a memory region. */
enum rt_access {
	RT_ACCESS_LOCAL_WRITE = 1u << 0,
	RT_ACCESS_REMOTE_WRITE = 1u << 1,
	RT_ACCESS_REMOTE_READ = 1u << 2,
	RT_ACCESS_REMOTE_ATOMIC = 1u << 3,
};

/** Opcodes reported in completions. */
enum rt_opcode {
	RT_OP_SEND = 0,
	RT_OP_RECV = 1,
	RT_OP_WRITE = 2,
	RT_OP_READ = 3,
	RT_OP_ATOMIC_FETCH_ADD = 4,
	RT_OP_ATOMIC_CMP_SWAP = 5,
	RT_OP_RECV_WRITE_IMM = 6, /* target side of a write with immediate */
};

/** Completion status (0 = success). */
enum rt_wc_status {
	RT_WC_SUCCESS = 0,
	RT_WC_LOC_LEN_ERR = 1,      /* receive buffer too small for the message */
	RT_WC_REM_BAD_KEY = 2,      /* target: no region with that rkey */
	RT_WC_REM_OUT_OF_BOUNDS = 3,/* target: range outside the region */
	RT_WC_REM_ACCESS = 4,       /* target: region lacks the access flag */
	RT_WC_REM_TOO_SMALL = 5,    /* target: posted receive buffer too small */
	RT_WC_REM_MISALIGNED = 6,   /* target: atomic address not 8-byte aligned */
	RT_WC_TIMEOUT = 7,          /* peer stopped answering */
	RT_WC_RNR_TIMEOUT = 8,      /* target never posted a receive buffer */
	RT_WC_FLUSHED = 9,          /* endpoint closed before completion */
	RT_WC_PEER_FAILED = 10,     /* peer already failed earlier */
	RT_WC_REM_INVALID = 11,     /* target rejected the request (other) */
	RT_WC_ABORTED = 12,         /* receiver: the sender abandoned this message */
};

#define RT_WC_FLAG_IMM (1u << 0) /* imm field is valid */

/** One work completion. */
struct rt_wc {
	uint64_t wr_id;
	uint64_t byte_len;
	uint32_t opcode;  /* enum rt_opcode */
	uint32_t status;  /* enum rt_wc_status */
	uint32_t imm;
	uint32_t flags;   /* RT_WC_FLAG_* */
	uint32_t peer;    /* rt_peer_t of the other side */
	uint32_t ep_id;   /* endpoint id that produced the completion */
};

typedef struct rt_ctx rt_ctx;
typedef struct rt_mr rt_mr;
typedef struct rt_cq rt_cq;
typedef struct rt_ep rt_ep;
typedef uint32_t rt_peer_t;
/** Peer field of completions that have no peer (e.g. flushed receives). */
#define RT_PEER_NONE 0xFFFFFFFFu

/** Progress modes. */
enum rt_progress {
	RT_PROGRESS_THREAD = 0, /* own thread; waiters lend cycles (default) */
	RT_PROGRESS_MANUAL = 1, /* no thread; rt_cq_poll/rt_cq_wait drive it */
};

/** What one congestion-control instance governs (rt_config.cc_scope). */
enum rt_cc_scope {
	RT_CC_SCOPE_PEER = 0, /* one window per peer, sprayed over all paths */
	RT_CC_SCOPE_PATH = 1, /* one window per (peer, path): each path is a flow (default) */
};

/** Tri-state switches for features detected at run time. */
enum rt_feature { RT_AUTO = 0, RT_ON = 1, RT_OFF = 2 };

/**
 * Context configuration.  Initialise with rt_config_init(), then set the
 * fields you care about.  String fields are copied by rt_ctx_create().
 */
struct rt_config {
	uint32_t size;            /* sizeof(struct rt_config), set by init */
	const char *bind_addr;    /* IPv4 address, default "127.0.0.1" */
	uint16_t port;            /* base (receive) port; 0 = any */
	uint32_t mtu;             /* IP MTU of the path, default 1500 */
	uint32_t num_paths;       /* UDP source ports (entropy values) */
	uint32_t progress;        /* enum rt_progress */
	uint32_t busy_poll_us;    /* spin this long after activity before sleeping */
	uint32_t timeout_ms;      /* peer silent this long => ops time out */
	uint32_t rnr_timeout_ms;  /* no receive buffer this long => RNR error */
	uint32_t rto_min_us;      /* retransmission timeout floor */
	uint32_t rto_max_us;      /* retransmission timeout ceiling */
	uint64_t max_inflight_bytes; /* per-peer window ceiling */
	uint32_t gso;             /* enum rt_feature */
	uint32_t gro;             /* enum rt_feature */
	uint32_t sndbuf;          /* SO_SNDBUF request, bytes (0 = default) */
	uint32_t rcvbuf;          /* SO_RCVBUF request, bytes (0 = default) */
	uint32_t checksum;        /* 1 = end-to-end CRC32C on every packet */
	const char *cc;           /* congestion control: "swift" or "none" */
	uint32_t cc_target_delay_us; /* swift: target queueing delay */
	uint32_t spray_unit;      /* 0 = GSO batch, 1 = single packet */
	uint32_t cc_scope;        /* enum rt_cc_scope: one window per peer or per path */
	const char *extra_addrs;  /* comma-separated extra local IPv4s (rails) */
	/* deterministic fault injection (receive side), all off by default */
	uint64_t fault_seed;
	double fault_drop;        /* probability a packet is dropped */
	double fault_dup;         /* probability a packet is duplicated */
	double fault_reorder;     /* probability a packet is held back */
	double fault_delay;       /* probability a packet is delayed */
	uint32_t fault_delay_us;  /* how long delayed/reordered packets wait */
	double fault_corrupt;     /* probability one bit is flipped (enables checksum) */
	/* a model of an ECMP fabric with failed links: a datagram's route is a
	 * hash of its source address and port modulo fault_routes (0 = off,
	 * at most 64); datagrams on a route whose bit is set in
	 * fault_dead_routes are dropped, as by a blackholed spine */
	uint32_t fault_routes;
	uint64_t fault_dead_routes;
};

/**
 * rt_config_init_sized() - fill *cfg with defaults.
 * @size: sizeof(*cfg) as the caller knows it (the header's version of
 *        struct rt_config); recorded in cfg->size, so that rt_ctx_create()
 *        reads no more than the caller has and treats fields the caller's
 *        header does not have as defaults.
 * Return: 0, or RT_ERR_INVAL if @size is below the smallest struct
 * rt_config any version has had.
 */
RT_API int rt_config_init_sized(struct rt_config *cfg, size_t size);
/** Fill *cfg with defaults (rt_config_init_sized() with this header's size). */
static inline void rt_config_init(struct rt_config *cfg)
{
	(void)rt_config_init_sized(cfg, sizeof(*cfg));
}

/** Version of the library actually loaded: (major << 16) | minor.
 * Compare with RT_VERSION_MAJOR/MINOR of the header a program was built
 * with. */
RT_API uint32_t rt_version(void);

/** Thread-local text describing the last error returned to this thread. */
RT_API const char *rt_last_error(void);
/** Static name of an error code / completion status / opcode. */
RT_API const char *rt_err_str(int err);
RT_API const char *rt_wc_status_str(uint32_t status);
RT_API const char *rt_opcode_str(uint32_t opcode);

/** Optional log sink: level 0=debug 1=info 2=warning 3=error. */
typedef void (*rt_log_fn)(int level, const char *msg, void *arg);
RT_API void rt_set_log(rt_log_fn fn, void *arg);
/**
 * rt_set_log_level() - drop messages below @min_level before they are
 * formatted or reach the sink (default 0: all).  The sink may be called
 * from the progress thread with the engine's lock held, so a sink that
 * must first take another lock (a Python callback needs the GIL) should
 * see only the levels its user wants.
 */
RT_API void rt_set_log_level(int min_level);

/* ---------------------------------------------------------------- context */

/** What the machine offers and what a context uses (for `doctor`). */
struct rt_ctx_info {
	uint32_t gso_supported, gso_used;
	uint32_t gro_supported, gro_used;
	uint32_t mmsg_supported;
	uint32_t mtu;             /* configured */
	uint32_t if_mtu;          /* MTU of the bound interface (0 = unknown) */
	uint32_t max_payload;     /* payload bytes per packet */
	uint32_t sndbuf, rcvbuf;  /* granted socket buffers */
	uint32_t sndbuf_max, rcvbuf_max; /* net.core.[ws]mem_max */
	uint32_t num_paths;
	uint32_t num_cpus;
	uint32_t progress;
	uint16_t port;
	char bind_addr[64];
	char cc[16];
	/* I/O counters since creation (where the CPU goes) */
	uint64_t tx_syscalls;     /* sendmmsg/sendmsg calls */
	uint64_t tx_datagrams;    /* msghdrs: one GSO super-datagram counts once */
	uint64_t tx_segments;     /* packets on the wire */
	uint64_t tx_eagain;       /* sends refused by a full socket buffer */
	uint64_t rx_syscalls;     /* recvmmsg/recvmsg calls that returned data */
	uint64_t rx_datagrams;    /* datagrams returned (a GRO batch counts once) */
	uint64_t rx_segments;     /* packets after splitting GRO batches */
	uint64_t engine_loops;    /* progress iterations */
	uint64_t tx_bundles;      /* datagrams that carried more than one packet */
	uint64_t rx_bundles;      /* received datagrams split into several packets */
	/* appended in 0.2.1 (a 0.2.0 caller's size stops before them) */
	uint64_t rx_stamp_switches; /* kernel receive stamps turned off or on (lean receive) */
	uint32_t rx_stamps;       /* 1: receive stamps on now; 0: off (lean) or unsupported */
	uint32_t reserved0;
};

/**
 * rt_ctx_create() - create a context: bind sockets, start progress.
 * @cfg: configuration (NULL = defaults).
 * @out: receives the context.
 * Return: 0 or a negative rt_err; rt_last_error() says why.
 */
RT_API int rt_ctx_create(const struct rt_config *cfg, rt_ctx **out);
/** Close endpoints (flushing their work), regions and the context. Safe with NULL. */
RT_API void rt_ctx_destroy(rt_ctx *ctx);
/**
 * rt_ctx_info() - what the machine offers and what @ctx uses.
 * @size: sizeof(*info) as the caller knows it (see "ABI rules").
 * Return: 0 or a negative rt_err.
 */
RT_API int rt_ctx_info(rt_ctx *ctx, struct rt_ctx_info *info, size_t size);
/** Probe the machine without creating a context (bind_addr may be NULL);
 * @size as for rt_ctx_info(). */
RT_API int rt_probe(const char *bind_addr, struct rt_ctx_info *info, size_t size);
/**
 * rt_inject_packet() - testing hook: hand @len bytes to the receive path
 * of @ctx as if they arrived from @from_ip:@from_port (fuzzing, tests).
 * The packet goes through exactly the code real datagrams take.
 */
RT_API int rt_inject_packet(rt_ctx *ctx, const void *pkt, size_t len, const char *from_ip,
			    uint16_t from_port);
/** Drive progress once from the calling thread. Returns events processed. */
RT_API int rt_ctx_progress(rt_ctx *ctx);

/* ---------------------------------------------------------------- regions */

#define RT_MR_DESC_SIZE 32

/**
 * rt_mr_reg() - register [addr, addr+len) for local and remote access.
 * The memory must stay valid until rt_mr_dereg().  len may be 0.
 */
RT_API int rt_mr_reg(rt_ctx *ctx, void *addr, uint64_t len, uint32_t access,
		     rt_mr **out);
/** Deregister; later remote accesses with its rkey fail with REM_BAD_KEY. */
RT_API int rt_mr_dereg(rt_mr *mr);
RT_API uint64_t rt_mr_rkey(const rt_mr *mr);
RT_API uint64_t rt_mr_len(const rt_mr *mr);
RT_API void *rt_mr_addr(const rt_mr *mr);
/** Write the RT_MR_DESC_SIZE-byte remote descriptor of @mr into @buf. */
RT_API int rt_mr_descriptor(const rt_mr *mr, void *buf, size_t buflen);

/* ---------------------------------------------------------------- queues */

RT_API int rt_cq_create(rt_ctx *ctx, rt_cq **out);
/** Destroy a CQ; fails with RT_ERR_BUSY while endpoints still use it. */
RT_API int rt_cq_destroy(rt_cq *cq);
/** Take up to @n completions without blocking; returns how many. */
RT_API int rt_cq_poll(rt_cq *cq, struct rt_wc *wc, int n);
/**
 * rt_cq_wait() - wait until at least one completion is available,
 * @timeout_us passes (negative = 0), or rt_cq_signal() is called.
 * Returns the count taken (0 on timeout or signal; never blocks longer
 * than the timeout).
 */
RT_API int rt_cq_wait(rt_cq *cq, struct rt_wc *wc, int n, int64_t timeout_us);
/**
 * rt_cq_signal() - make every rt_cq_wait() on @cq that is blocked or
 * spinning now return at once (with what the queue holds, possibly 0),
 * like libfabric's fi_cq_signal().  Waits that start later are not
 * affected.  For shutdown from another thread.
 */
RT_API int rt_cq_signal(rt_cq *cq);
/** Completions waiting in the queue. */
RT_API uint64_t rt_cq_depth(rt_cq *cq);

/* ---------------------------------------------------------------- endpoints */

#define RT_ADDR_SIZE 32

/** Create an endpoint reporting to @cq (NULL: the endpoint gets its own). */
RT_API int rt_ep_create(rt_ctx *ctx, rt_cq *cq, rt_ep **out);
/** Flush outstanding work (RT_WC_FLUSHED) and free the endpoint. */
RT_API void rt_ep_destroy(rt_ep *ep);
RT_API rt_cq *rt_ep_cq(rt_ep *ep);
RT_API uint32_t rt_ep_id(const rt_ep *ep);
/** Write the RT_ADDR_SIZE-byte address of @ep into @buf. */
RT_API int rt_ep_address(const rt_ep *ep, void *buf, size_t buflen);
/** Resolve a peer address into a handle (idempotent for the same address). */
RT_API int rt_ep_connect(rt_ep *ep, const void *addr, size_t len, rt_peer_t *out);
/** Address of a known peer (e.g. one that contacted us first). */
RT_API int rt_ep_peer_address(rt_ep *ep, rt_peer_t peer, void *buf, size_t buflen);

RT_API int rt_post_recv(rt_ep *ep, rt_mr *mr, uint64_t offset, uint64_t len,
			uint64_t wr_id);
RT_API int rt_post_send(rt_ep *ep, rt_peer_t peer, rt_mr *mr, uint64_t offset,
			uint64_t len, uint64_t wr_id);
/** One-sided write; with @has_imm the target gets RT_OP_RECV_WRITE_IMM. */
RT_API int rt_post_write(rt_ep *ep, rt_peer_t peer, rt_mr *mr, uint64_t offset,
			 uint64_t len, const void *rdesc, size_t rdesc_len,
			 uint64_t roffset, int has_imm, uint32_t imm,
			 uint64_t wr_id);
RT_API int rt_post_read(rt_ep *ep, rt_peer_t peer, rt_mr *mr, uint64_t offset,
			uint64_t len, const void *rdesc, size_t rdesc_len,
			uint64_t roffset, uint64_t wr_id);
/**
 * rt_post_atomic() - 64-bit atomic on the target; the old value lands in
 * @mr at @offset (8 bytes).  @op is RT_OP_ATOMIC_FETCH_ADD (adds
 * @operand1) or RT_OP_ATOMIC_CMP_SWAP (if *target == @operand1 then
 * *target = @operand2).  Target address must be 8-byte aligned.  The
 * target region needs RT_ACCESS_REMOTE_ATOMIC or RT_ACCESS_REMOTE_WRITE.
 * Atomics act on the target's native-endian uint64_t, exactly once.
 */
RT_API int rt_post_atomic(rt_ep *ep, rt_peer_t peer, rt_mr *mr, uint64_t offset,
			  const void *rdesc, size_t rdesc_len, uint64_t roffset,
			  uint32_t op, uint64_t operand1, uint64_t operand2,
			  uint64_t wr_id);

/** Counters of one endpoint. */
struct rt_ep_stats {
	uint64_t tx_packets, tx_bytes, rx_packets, rx_bytes;
	uint64_t retransmits, rto_events, fast_retransmits, tlp_probes;
	uint64_t duplicates;        /* data packets received twice */
	uint64_t malformed;         /* packets failing decode/validation */
	uint64_t foreign;           /* packets for another endpoint/incarnation */
	uint64_t naks_sent, naks_received, rnr_naks;
	uint64_t acks_sent, acks_received;
	uint64_t fault_drops, fault_dups, fault_reorders, fault_delays, fault_corrupts;
	uint64_t msgs_sent, msgs_received;
	uint64_t srtt_us, rttvar_us, min_rtt_us;
	uint64_t cwnd_bytes, inflight_bytes;
	uint64_t peers, peers_failed;
	uint64_t spurious_retransmits; /* retransmits later found unnecessary */
	uint64_t ecn_ce;            /* packets that carried ECN-CE */
};
/** Fill @st (@size = sizeof(*st) as the caller knows it). */
RT_API int rt_ep_stats(rt_ep *ep, struct rt_ep_stats *st, size_t size);

/** Per-path (per entropy value / source port) state. */
struct rt_path_stats {
	uint32_t path;          /* index */
	uint16_t src_port;
	uint16_t quarantined;   /* 1 while excluded from spraying */
	uint64_t tx_packets, tx_bytes, retransmits, losses, timeouts;
	uint64_t acked_packets;
	uint64_t rtt_p50_us, rtt_p99_us, rtt_last_us;
	uint64_t inflight_packets;
	uint64_t quarantine_count;
	char local_addr[64];
	uint64_t repaths;       /* times this path got a new source port */
	uint64_t explore_moves; /* of those, moves by exploration (rt_path_explore) */
	uint64_t ctl_packets;   /* ACKs and NAKs sent on this path (since 0.2.2) */
	uint64_t ctl_bytes;     /* their bytes (headers only: they carry no payload) */
	/* since 0.2.3 (window and bytes in flight summed over the peers) */
	uint64_t cwnd_bytes;    /* congestion window (cc_scope path; 0 with peer) */
	uint64_t srtt_us;       /* smoothed RTT, of the last peer with a sample */
	uint64_t inflight_bytes;
};
/**
 * rt_ep_path_stats() - per-path state of @ep.
 * @ps: array of @n entries, each @entry_size bytes (sizeof(struct
 *      rt_path_stats) as the caller knows it: the array's stride).
 * Return: the number of paths (entries beyond @n are not written), or a
 * negative rt_err.
 */
RT_API int rt_ep_path_stats(rt_ep *ep, struct rt_path_stats *ps, int n, size_t entry_size);

/* ---------------------------------------------------------------- benchmarks */

/**
 * rt_perf_pingpong() - perftest-style ping-pong loop in C (no interpreter
 * in the measured path).  Both sides call it; the initiator sends first
 * and stores @iters round-trip times (ns) in @rtt_ns.  @mr holds at least
 * 2*@size bytes (send from offset 0, receive at @size).  The calling
 * thread spins on the endpoint's CQ, driving progress itself.
 */
RT_API int rt_perf_pingpong(rt_ep *ep, rt_peer_t peer, rt_mr *mr, uint64_t size,
			    uint32_t iters, int initiator, uint64_t *rtt_ns, int64_t timeout_us);
/** The same loop over a connected TCP socket (blocking send/recv), as the baseline. */
RT_API int rt_perf_tcp_pingpong(int fd, void *buf, uint64_t size, uint32_t iters, int initiator,
				uint64_t *rtt_ns);

#ifdef __cplusplus
}
#endif
#endif /* RTRANSPORT_RT_H */
