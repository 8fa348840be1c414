/*
 * cffi declarations of the rtransport C API (hand-written, API mode).
 *
 * This file is read by rtransport/_build.py and fed to ffibuilder.cdef().
 * It mirrors csrc/include/rtransport/rt.h; cffi checks every declaration
 * against the real header when the extension is compiled (struct fields,
 * enum values) and at import (#define values), so a mismatch is a build
 * error rather than silent memory corruption.  Structs end in "...;" so
 * that the C side may add fields without breaking the build; every field
 * Python reads is named explicitly.
 *
 * No preprocessor directives other than "#define NAME ..." are allowed.
 */

#define RT_VERSION_MAJOR ...
#define RT_VERSION_MINOR ...
#define RT_MR_DESC_SIZE ...
#define RT_ADDR_SIZE ...
#define RT_WC_FLAG_IMM ...

enum rt_err {
	RT_OK = 0,
	RT_ERR_INVAL = -1,
	RT_ERR_NOMEM = -2,
	RT_ERR_SYS = -3,
	RT_ERR_CLOSED = -4,
	RT_ERR_TIMEOUT = -5,
	RT_ERR_ACCESS = -6,
	RT_ERR_BOUNDS = -7,
	RT_ERR_ADDR = -8,
	RT_ERR_PEER = -9,
	RT_ERR_BUSY = -10,
	RT_ERR_UNSUPPORTED = -11,
};

enum rt_access {
	RT_ACCESS_LOCAL_WRITE = 1,
	RT_ACCESS_REMOTE_WRITE = 2,
	RT_ACCESS_REMOTE_READ = 4,
	RT_ACCESS_REMOTE_ATOMIC = 8,
};

enum rt_opcode {
	RT_OP_SEND = 0,
	RT_OP_RECV = 1,
	RT_OP_WRITE = 2,
	RT_OP_READ = 3,
	RT_OP_ATOMIC_FETCH_ADD = 4,
	RT_OP_ATOMIC_CMP_SWAP = 5,
	RT_OP_RECV_WRITE_IMM = 6,
};

enum rt_wc_status {
	RT_WC_SUCCESS = 0,
	RT_WC_LOC_LEN_ERR = 1,
	RT_WC_REM_BAD_KEY = 2,
	RT_WC_REM_OUT_OF_BOUNDS = 3,
	RT_WC_REM_ACCESS = 4,
	RT_WC_REM_TOO_SMALL = 5,
	RT_WC_REM_MISALIGNED = 6,
	RT_WC_TIMEOUT = 7,
	RT_WC_RNR_TIMEOUT = 8,
	RT_WC_FLUSHED = 9,
	RT_WC_PEER_FAILED = 10,
	RT_WC_REM_INVALID = 11,
	RT_WC_ABORTED = 12,
};

enum rt_progress {
	RT_PROGRESS_THREAD = 0,
	RT_PROGRESS_MANUAL = 1,
};

enum rt_feature { RT_AUTO = 0, RT_ON = 1, RT_OFF = 2 };

struct rt_wc {
	uint64_t wr_id;
	uint64_t byte_len;
	uint32_t opcode;
	uint32_t status;
	uint32_t imm;
	uint32_t flags;
	uint32_t peer;
	uint32_t ep_id;
	...;
};

typedef struct rt_ctx rt_ctx;
typedef struct rt_mr rt_mr;
typedef struct rt_cq rt_cq;
typedef struct rt_ep rt_ep;
typedef uint32_t rt_peer_t;

struct rt_config {
	uint32_t size;
	const char *bind_addr;
	uint16_t port;
	uint32_t mtu;
	uint32_t num_paths;
	uint32_t progress;
	uint32_t busy_poll_us;
	uint32_t timeout_ms;
	uint32_t rnr_timeout_ms;
	uint32_t rto_min_us;
	uint32_t rto_max_us;
	uint64_t max_inflight_bytes;
	uint32_t gso;
	uint32_t gro;
	uint32_t sndbuf;
	uint32_t rcvbuf;
	uint32_t checksum;
	const char *cc;
	uint32_t cc_target_delay_us;
	uint32_t spray_unit;
	uint32_t cc_scope;
	const char *extra_addrs;
	uint64_t fault_seed;
	double fault_drop;
	double fault_dup;
	double fault_reorder;
	double fault_delay;
	uint32_t fault_delay_us;
	double fault_corrupt;
	uint32_t fault_routes;
	uint64_t fault_dead_routes;
	...;
};

void rt_config_init(struct rt_config *cfg);
int rt_config_init_sized(struct rt_config *cfg, size_t size);
uint32_t rt_version(void);

const char *rt_last_error(void);
const char *rt_err_str(int err);
const char *rt_wc_status_str(uint32_t status);
const char *rt_opcode_str(uint32_t opcode);

typedef void (*rt_log_fn)(int level, const char *msg, void *arg);
void rt_set_log(rt_log_fn fn, void *arg);
void rt_set_log_level(int min_level);

/* Python-side log sink, implemented in rtransport/core.py. */
extern "Python" void _rt_py_log(int level, const char *msg, void *arg);

struct rt_ctx_info {
	uint32_t gso_supported;
	uint32_t gso_used;
	uint32_t gro_supported;
	uint32_t gro_used;
	uint32_t mmsg_supported;
	uint32_t mtu;
	uint32_t if_mtu;
	uint32_t max_payload;
	uint32_t sndbuf;
	uint32_t rcvbuf;
	uint32_t sndbuf_max;
	uint32_t rcvbuf_max;
	uint32_t num_paths;
	uint32_t num_cpus;
	uint32_t progress;
	uint16_t port;
	char bind_addr[64];
	char cc[16];
	uint64_t tx_syscalls;
	uint64_t tx_datagrams;
	uint64_t tx_segments;
	uint64_t tx_eagain;
	uint64_t rx_syscalls;
	uint64_t rx_datagrams;
	uint64_t rx_segments;
	uint64_t engine_loops;
	uint64_t tx_bundles;
	uint64_t rx_bundles;
	uint64_t rx_stamp_switches;
	uint32_t rx_stamps;
	...;
};

int rt_ctx_create(const struct rt_config *cfg, rt_ctx **out);
void rt_ctx_destroy(rt_ctx *ctx);
int rt_ctx_info(rt_ctx *ctx, struct rt_ctx_info *info, size_t size);
int rt_probe(const char *bind_addr, struct rt_ctx_info *info, size_t size);
int rt_inject_packet(rt_ctx *ctx, const void *pkt, size_t len, const char *from_ip, uint16_t from_port);
int rt_ctx_progress(rt_ctx *ctx);

int rt_mr_reg(rt_ctx *ctx, void *addr, uint64_t len, uint32_t access,
	      rt_mr **out);
int rt_mr_dereg(rt_mr *mr);
uint64_t rt_mr_rkey(const rt_mr *mr);
uint64_t rt_mr_len(const rt_mr *mr);
void *rt_mr_addr(const rt_mr *mr);
int rt_mr_descriptor(const rt_mr *mr, void *buf, size_t buflen);

int rt_cq_create(rt_ctx *ctx, rt_cq **out);
int rt_cq_destroy(rt_cq *cq);
int rt_cq_poll(rt_cq *cq, struct rt_wc *wc, int n);
int rt_cq_wait(rt_cq *cq, struct rt_wc *wc, int n, int64_t timeout_us);
int rt_cq_signal(rt_cq *cq);
uint64_t rt_cq_depth(rt_cq *cq);

int rt_ep_create(rt_ctx *ctx, rt_cq *cq, rt_ep **out);
void rt_ep_destroy(rt_ep *ep);
rt_cq *rt_ep_cq(rt_ep *ep);
uint32_t rt_ep_id(const rt_ep *ep);
int rt_ep_address(const rt_ep *ep, void *buf, size_t buflen);
int rt_ep_connect(rt_ep *ep, const void *addr, size_t len, rt_peer_t *out);
int rt_ep_peer_address(rt_ep *ep, rt_peer_t peer, void *buf, size_t buflen);

int rt_post_recv(rt_ep *ep, rt_mr *mr, uint64_t offset, uint64_t len,
		 uint64_t wr_id);
int rt_post_send(rt_ep *ep, rt_peer_t peer, rt_mr *mr, uint64_t offset,
		 uint64_t len, uint64_t wr_id);
int rt_post_write(rt_ep *ep, rt_peer_t peer, rt_mr *mr, uint64_t offset,
		  uint64_t len, const void *rdesc, size_t rdesc_len,
		  uint64_t roffset, int has_imm, uint32_t imm,
		  uint64_t wr_id);
int rt_post_read(rt_ep *ep, rt_peer_t peer, rt_mr *mr, uint64_t offset,
		 uint64_t len, const void *rdesc, size_t rdesc_len,
		 uint64_t roffset, uint64_t wr_id);
int rt_post_atomic(rt_ep *ep, rt_peer_t peer, rt_mr *mr, uint64_t offset,
		   const void *rdesc, size_t rdesc_len, uint64_t roffset,
		   uint32_t op, uint64_t operand1, uint64_t operand2,
		   uint64_t wr_id);

struct rt_ep_stats {
	uint64_t tx_packets;
	uint64_t tx_bytes;
	uint64_t rx_packets;
	uint64_t rx_bytes;
	uint64_t retransmits;
	uint64_t rto_events;
	uint64_t fast_retransmits;
	uint64_t tlp_probes;
	uint64_t duplicates;
	uint64_t malformed;
	uint64_t foreign;
	uint64_t naks_sent;
	uint64_t naks_received;
	uint64_t rnr_naks;
	uint64_t acks_sent;
	uint64_t acks_received;
	uint64_t fault_drops;
	uint64_t fault_dups;
	uint64_t fault_reorders;
	uint64_t fault_delays;
	uint64_t fault_corrupts;
	uint64_t msgs_sent;
	uint64_t msgs_received;
	uint64_t srtt_us;
	uint64_t rttvar_us;
	uint64_t min_rtt_us;
	uint64_t cwnd_bytes;
	uint64_t inflight_bytes;
	uint64_t peers;
	uint64_t peers_failed;
	uint64_t spurious_retransmits;
	uint64_t ecn_ce;
	...;
};
int rt_ep_stats(rt_ep *ep, struct rt_ep_stats *st, size_t size);

struct rt_path_stats {
	uint32_t path;
	uint16_t src_port;
	uint16_t quarantined;
	uint64_t tx_packets;
	uint64_t tx_bytes;
	uint64_t retransmits;
	uint64_t losses;
	uint64_t timeouts;
	uint64_t acked_packets;
	uint64_t rtt_p50_us;
	uint64_t rtt_p99_us;
	uint64_t rtt_last_us;
	uint64_t inflight_packets;
	uint64_t quarantine_count;
	char local_addr[64];
	uint64_t repaths;       /* times this path got a new source port */
	uint64_t explore_moves; /* of those, moves by exploration (rt_path_explore) */
	uint64_t ctl_packets;   /* ACKs and NAKs sent on this path (since 0.2.2) */
	uint64_t ctl_bytes;
	uint64_t cwnd_bytes;    /* since 0.2.3 */
	uint64_t srtt_us;
	uint64_t inflight_bytes;
	...;
};
int rt_ep_path_stats(rt_ep *ep, struct rt_path_stats *ps, int n, size_t entry_size);

/* benchmarks (csrc/perf.c) */
int rt_perf_pingpong(rt_ep *ep, rt_peer_t peer, rt_mr *mr, uint64_t size, uint32_t iters,
		     int initiator, uint64_t *rtt_ns, int64_t timeout_us);
int rt_perf_tcp_pingpong(int fd, void *buf, uint64_t size, uint32_t iters, int initiator,
			 uint64_t *rtt_ns);
