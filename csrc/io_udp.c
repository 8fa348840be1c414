/* SPDX-License-Identifier: Apache-2.0 */
/*
 * UDP I/O: the only file that touches sockets.
 *
 * Path i sends from its own UDP socket (its own source port: the entropy
 * value ECMP hashes on); fds[0] is also the receive socket.  Transmit
 * groups consecutive same-size packets for one destination on one path
 * into a UDP GSO super-datagram (UDP_SEGMENT) whose iovecs point at the
 * header buffer and straight into the registered memory (no copy in user
 * space), then sends everything with one sendmmsg() per path run
 * (sendmsg() for a run of one).  Receive uses recvmmsg() with UDP_GRO,
 * splitting coalesced datagrams by the gso_size control message; the
 * first receive after a quiet spell is a single recvmsg() (latency).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/ip.h>
#include <netinet/udp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#define RT_CONN_NEVER 0xffff /* conn[].sin_family: connect() failed */

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
#ifndef UDP_GRO
#define UDP_GRO 104
#endif

static int sock_try_opt(int fd, int level, int opt, int val)
{
	return setsockopt(fd, level, opt, &val, sizeof(val));
}

static uint32_t set_buf(int fd, int opt, int force_opt, uint32_t want)
{
	if (want) {
		int v = (int)want;
		if (setsockopt(fd, SOL_SOCKET, force_opt, &v, sizeof(v)) != 0)
			setsockopt(fd, SOL_SOCKET, opt, &v, sizeof(v));
	}
	int got = 0;
	socklen_t sl = sizeof(got);
	getsockopt(fd, SOL_SOCKET, opt, &got, &sl);
	return (uint32_t)got / 2; /* the kernel reports double the usable size */
}

static uint32_t if_mtu_for(const char *bind)
{
	struct in_addr want;
	if (inet_pton(AF_INET, bind, &want) != 1)
		return 0;
	struct ifaddrs *ifa = NULL;
	if (getifaddrs(&ifa) != 0)
		return 0;
	uint32_t mtu = 0;
	for (struct ifaddrs *i = ifa; i; i = i->ifa_next) {
		if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET)
			continue;
		struct sockaddr_in *sin = (struct sockaddr_in *)i->ifa_addr;
		bool any = want.s_addr == htonl(INADDR_ANY);
		if (!any && sin->sin_addr.s_addr != want.s_addr)
			continue;
		int fd = socket(AF_INET, SOCK_DGRAM, 0);
		if (fd < 0)
			break;
		struct ifreq ifr;
		memset(&ifr, 0, sizeof(ifr));
		snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", i->ifa_name);
		if (ioctl(fd, SIOCGIFMTU, &ifr) == 0)
			mtu = (uint32_t)ifr.ifr_mtu;
		close(fd);
		break;
	}
	freeifaddrs(ifa);
	return mtu;
}

int rt_io_probe(const char *bind, struct rt_ctx_info *info)
{
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	if (fd < 0)
		return rt_seterr(RT_ERR_SYS, "socket(AF_INET, SOCK_DGRAM): %s", strerror(errno));
	info->gso_supported = sock_try_opt(fd, SOL_UDP, UDP_SEGMENT, 1400) == 0;
	info->gro_supported = sock_try_opt(fd, SOL_UDP, UDP_GRO, 1) == 0;
	info->mmsg_supported = 1;
	close(fd);
	info->if_mtu = if_mtu_for(bind);
	return RT_OK;
}

static int open_sock(rt_ctx *ctx, const char *addr, uint16_t port, bool rx, int idx)
{
	struct rt_io *io = &ctx->io;
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return rt_seterr(RT_ERR_SYS, "socket(): %s", strerror(errno));
	struct sockaddr_in sa;
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons(port);
	inet_pton(AF_INET, addr, &sa.sin_addr);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		int e = errno;
		close(fd);
		return rt_seterr(RT_ERR_SYS, "bind(%s:%u): %s%s", addr, port, strerror(e),
				 e == EADDRINUSE ? " (choose another port, or port=0)" :
				 e == EADDRNOTAVAIL ? " (no local interface has this address)" : "");
	}
	socklen_t sl = sizeof(sa);
	getsockname(fd, (struct sockaddr *)&sa, &sl);
	io->fds[idx] = fd;
	io->ports[idx] = ntohs(sa.sin_port);
	io->local[idx] = sa;
	sock_try_opt(fd, IPPROTO_IP, IP_TOS, 0x02); /* ECT(0): let AQMs mark, not drop */
	uint32_t sb = set_buf(fd, SO_SNDBUF, SO_SNDBUFFORCE, ctx->cfg.sndbuf);
	if (idx == 0 || sb < io->sndbuf)
		io->sndbuf = sb;
	if (rx) {
		io->rcvbuf = set_buf(fd, SO_RCVBUF, SO_RCVBUFFORCE, ctx->cfg.rcvbuf);
		sock_try_opt(fd, IPPROTO_IP, IP_RECVTOS, 1);
		/* host vs fabric delay; off while lean (rt_io_recv) */
		io->stamps_ok = sock_try_opt(fd, SOL_SOCKET, SO_TIMESTAMPNS, 1) == 0;
		if (ctx->cfg.gro != RT_OFF) {
			io->gro_supported = sock_try_opt(fd, SOL_UDP, UDP_GRO, 1) == 0;
			io->gro = io->gro_supported;
		}
	}
	if (idx == 0)
		io->gso_supported = sock_try_opt(fd, SOL_UDP, UDP_SEGMENT, 0) == 0;
	return RT_OK;
}

/*
 * rt_io_repath() - give every path the protocol asked to move
 * (rt_path_repath()) a new UDP source port: a new socket on the same
 * local address, so ECMP hashes it onto a (probably) different route.
 * Path 0 is the receive socket and keeps its port.  Packets in flight on
 * the old socket are unaffected: peers know us by the header, not by the
 * datagram's source port.  If the new socket cannot be opened the path
 * keeps its old one.
 */
void rt_io_repath(rt_ctx *ctx)
{
	struct rt_io *io = &ctx->io;
	for (int w = 0; w < RT_MAX_PATHS / 64; w++) {
		while (io->repath_req[w]) {
			int b = __builtin_ctzll(io->repath_req[w]);
			io->repath_req[w] &= io->repath_req[w] - 1;
			bool explore = io->explore_req[w] & (1ull << b);
			io->explore_req[w] &= ~(1ull << b);
			int idx = w * 64 + b;
			if (idx == 0 || idx >= io->npaths)
				continue;
			int old = io->fds[idx];
			uint16_t old_port = io->ports[idx];
			char addr[INET_ADDRSTRLEN];
			inet_ntop(AF_INET, &io->local[idx].sin_addr, addr, sizeof(addr));
			/* this runs inside whichever call drives the engine: keep
			 * that caller's error text if the new socket fails */
			char saved[256];
			snprintf(saved, sizeof(saved), "%s", rt_last_error());
			if (open_sock(ctx, addr, 0, false, idx) != RT_OK) {
				rt_log(2, "path %d: no new source port (%s); keeping %u", idx,
				       rt_last_error(), old_port);
				rt_seterr(RT_OK, "%s", saved);
				continue;
			}
			close(old);
			memset(&io->conn[idx], 0, sizeof(io->conn[idx]));
			io->repaths[idx]++;
			io->explores[idx] += explore;
			rt_log(0, "path %d: source port %u -> %u", idx, old_port, io->ports[idx]);
		}
	}
}

static void rx_reset(struct rt_io *io, int i)
{
	struct msghdr *mh = &io->rx_msgs[i].msg_hdr;
	mh->msg_name = &io->rx_from[i];
	mh->msg_namelen = sizeof(io->rx_from[i]);
	mh->msg_iov = &io->rx_iov[i];
	mh->msg_iovlen = 1;
	mh->msg_control = io->rx_ctrl[i];
	mh->msg_controllen = sizeof(io->rx_ctrl[i]);
	mh->msg_flags = 0;
}

int rt_io_open(rt_ctx *ctx)
{
	struct rt_io *io = &ctx->io;
	io->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (io->evfd < 0)
		return rt_seterr(RT_ERR_SYS, "eventfd(): %s", strerror(errno));
	/* local addresses: bind_addr, then the extra rails */
	char addrs[8][64];
	int naddr = 0;
	snprintf(addrs[naddr++], 64, "%s", ctx->bind);
	if (ctx->extra[0]) {
		char tmp[256];
		snprintf(tmp, sizeof(tmp), "%s", ctx->extra);
		char *save = NULL;
		for (char *t = strtok_r(tmp, ", ", &save); t; t = strtok_r(NULL, ", ", &save)) {
			if (naddr == 8)
				return rt_seterr(RT_ERR_INVAL, "config: at most 7 extra_addrs are supported");
			struct in_addr ia;
			if (inet_pton(AF_INET, t, &ia) != 1)
				return rt_seterr(RT_ERR_INVAL, "config: extra_addrs entry '%s' is not an "
						 "IPv4 address", t);
			snprintf(addrs[naddr++], 64, "%s", t);
		}
	}
	int total = (int)ctx->cfg.num_paths * naddr;
	if (total > RT_MAX_PATHS)
		return rt_seterr(RT_ERR_INVAL, "config: %d paths (num_paths x addresses) exceed %d",
				 total, RT_MAX_PATHS);
	int r = open_sock(ctx, ctx->bind, ctx->cfg.port, true, 0);
	if (r)
		return r;
	io->npaths = 1;
	for (int a = 0; a < naddr; a++) {
		for (uint32_t k = (a == 0); k < ctx->cfg.num_paths; k++) {
			r = open_sock(ctx, addrs[a], 0, false, io->npaths);
			if (r)
				return r;
			io->npaths++;
		}
	}
	if (ctx->cfg.gso == RT_OFF)
		io->gso = false;
	else
		io->gso = io->gso_supported;
	if (ctx->cfg.gso == RT_ON && !io->gso_supported)
		return rt_seterr(RT_ERR_UNSUPPORTED, "config: gso=on but this kernel rejects UDP_SEGMENT");
	if (ctx->cfg.gro == RT_ON && !io->gro_supported)
		return rt_seterr(RT_ERR_UNSUPPORTED, "config: gro=on but this kernel rejects UDP_GRO");
	io->rx_bufsz = io->gro ? 65536 : ctx->cfg.mtu;
	io->rxbuf = malloc((size_t)io->rx_bufsz * RT_RX_BATCH);
	io->tx_iov = calloc(2 * RT_TXQ_PKTS, sizeof(*io->tx_iov));
	io->tx_msgs = calloc(RT_TXQ_PKTS, sizeof(*io->tx_msgs));
	io->tx_ctrl = calloc(RT_TXQ_PKTS, sizeof(*io->tx_ctrl));
	io->tx_first = calloc(RT_TXQ_PKTS, sizeof(uint32_t));
	io->tx_count = calloc(RT_TXQ_PKTS, sizeof(uint32_t));
	if (!io->rxbuf || !io->tx_iov || !io->tx_msgs || !io->tx_ctrl || !io->tx_first ||
	    !io->tx_count)
		return rt_seterr(RT_ERR_NOMEM, "rt_io_open: out of memory");
	for (int i = 0; i < RT_RX_BATCH; i++) {
		io->rx_iov[i].iov_base = io->rxbuf + (size_t)i * io->rx_bufsz;
		io->rx_iov[i].iov_len = io->rx_bufsz;
		rx_reset(io, i);
	}
	return RT_OK;
}

void rt_io_close(struct rt_io *io)
{
	for (int i = 0; i < RT_MAX_PATHS; i++)
		if (io->fds[i] >= 0) {
			close(io->fds[i]);
			io->fds[i] = -1;
		}
	if (io->evfd >= 0)
		close(io->evfd);
	io->evfd = -1;
	free(io->rxbuf);
	free(io->tx_iov);
	free(io->tx_msgs);
	free(io->tx_ctrl);
	free(io->tx_first);
	free(io->tx_count);
	io->rxbuf = NULL;
	io->tx_iov = NULL;
	io->tx_msgs = NULL;
	io->tx_ctrl = NULL;
	io->tx_first = NULL;
	io->tx_count = NULL;
}

static void deliver(rt_ctx *ctx, uint8_t *pkt, uint32_t len, const struct sockaddr_in *from,
		    uint8_t tos, uint64_t rx_ts, uint64_t now)
{
	if (ctx->fault.enabled)
		rt_fault_input(ctx, pkt, len, from, tos, rx_ts, now);
	else
		rt_rx_datagram(ctx, pkt, len, from, tos, rx_ts, now);
}

/*
 * Lean receive.  A kernel receive stamp (SO_TIMESTAMPNS) tells how long a
 * datagram waited in the socket before we read it, so that our own
 * scheduling delay is not taken for network delay (RTT samples, the ACK
 * delay we report).  While the engine busy-polls and every poll finds at
 * most one datagram, that wait is already known: it is shorter than the
 * gap since the previous poll.  The stamp then costs about 0.25 us per
 * datagram in the kernel for nothing, on the path of every small
 * request and reply, so after RT_LEAN_AFTER such datagrams in a row found
 * within RT_LEAN_GAP_US of the previous poll, stamps go off (arrival time
 * = the poll's time, at most RT_LEAN_GAP_US late).  They come back on at
 * the first batch or GRO batch, and before the first read after a longer
 * gap; then they stay on for RT_LEAN_HOLDOFF_US at least, so a workload
 * that alternates cannot make us toggle the option (a system call) more
 * often than that.
 * IP_RECVTOS stays on: ECN-CE marks are not recoverable otherwise.
 */
#define RT_LEAN_GAP_US 20
#define RT_LEAN_AFTER 16
#define RT_LEAN_HOLDOFF_US 1000

static void set_lean(struct rt_io *io, bool lean, uint64_t now)
{
	if (sock_try_opt(io->fds[0], SOL_SOCKET, SO_TIMESTAMPNS, !lean) != 0) {
		/* cannot switch: stay as we are, and stop trying (a system
		 * call per poll would cost more than the stamps) */
		io->stamps_ok = false;
		return;
	}
	io->rx_lean = lean;
	io->rx_singles = 0;
	io->lean_switches++;
	if (!lean)
		io->lean_holdoff_us = now + RT_LEAN_HOLDOFF_US;
}

/*
 * Receive what is queued on the receive socket and hand it to the
 * protocol.  After a call that found nothing the next one uses a single
 * recvmsg(): the first datagram after a quiet spell is usually alone (a
 * request, a reply), and recvmsg() is about 1 us cheaper per round trip
 * than recvmmsg(), which also tries for a second datagram before it
 * returns.  While data keeps arriving, recvmmsg() takes up to
 * RT_RX_BATCH datagrams per call.
 */
int rt_io_recv(rt_ctx *ctx, uint64_t now)
{
	struct rt_io *io = &ctx->io;
	int n;
	uint64_t gap = now - io->rx_poll_us;
	io->rx_poll_us = now;
	/* after a pause (a sleeping progress thread, an application that
	 * stopped polling) what waits may have waited long: the kernel
	 * stamped it on arrival all the same (switching the option off only
	 * drops the control message), so ask for the stamp before reading */
	if (io->rx_lean && gap > RT_LEAN_GAP_US)
		set_lean(io, false, now);
	if (io->rx_batch) {
		n = recvmmsg(io->fds[0], io->rx_msgs, RT_RX_BATCH, MSG_DONTWAIT, NULL);
	} else {
		ssize_t l = recvmsg(io->fds[0], &io->rx_msgs[0].msg_hdr, MSG_DONTWAIT);
		n = l < 0 ? -1 : 1;
		if (l >= 0)
			io->rx_msgs[0].msg_len = (unsigned int)l;
	}
	io->rx_batch = n > 0;
	if (n <= 0)
		return 0;
	io->rx_syscalls++;
	io->rx_datagrams += (uint64_t)n;
	int pkts = 0;
	/* kernel receive timestamps are CLOCK_REALTIME: map them to our clock
	 * with an offset measured every 100 ms instead of two clock reads per
	 * batch, and again at once when a stamp fails the check below (the
	 * arrival time then falls back to @now).  A backward step of the real
	 * clock by less than a second passes the check: for up to 100 ms the
	 * stamps then read early and RTT samples low */
	if (!io->clock_off_at_us || now - io->clock_off_at_us > 100000) {
		struct timespec tr, tm;
		clock_gettime(CLOCK_REALTIME, &tr);
		clock_gettime(CLOCK_MONOTONIC, &tm);
		io->clock_off_us = ((int64_t)tr.tv_sec - tm.tv_sec) * 1000000 +
				   (tr.tv_nsec - tm.tv_nsec) / 1000;
		io->clock_off_at_us = now;
	}
	int64_t clock_off = io->clock_off_us;
	bool lone = n == 1;
	for (int i = 0; i < n; i++) {
		struct msghdr *mh = &io->rx_msgs[i].msg_hdr;
		uint32_t len = io->rx_msgs[i].msg_len;
		uint8_t *buf = io->rx_iov[i].iov_base;
		if (mh->msg_flags & MSG_TRUNC) {
			/* larger than our buffer: cannot be ours */
			rt_rx_packet(ctx, buf, 0, &io->rx_from[i], 0, now, now);
			pkts++;
			continue;
		}
		uint32_t seg = len;
		uint8_t tos = 0;
		uint64_t rx_ts = now;
		for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
			if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO) {
				int v;
				memcpy(&v, CMSG_DATA(c), sizeof(v));
				if (v > 0)
					seg = (uint32_t)v;
			} else if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_TOS) {
				tos = *(uint8_t *)CMSG_DATA(c);
			} else if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS) {
				struct timespec ts;
				memcpy(&ts, CMSG_DATA(c), sizeof(ts));
				int64_t real = (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
				int64_t mono = real - clock_off;
				if (mono > 0 && (uint64_t)mono <= now && now - (uint64_t)mono < 1000000)
					rx_ts = (uint64_t)mono;
				else
					io->clock_off_at_us = 0; /* re-measure: the clock stepped? */
			}
		}
		if (seg == 0 || seg > len)
			seg = len;
		if (seg < len)
			lone = false; /* a GRO batch: data is streaming */
		for (uint32_t off = 0; off < len || (len == 0 && off == 0); off += seg) {
			uint32_t l = len - off < seg ? len - off : seg;
			/* a GRO batch carries the first segment's arrival time; later
			 * segments arrived later, so give them the current time */
			deliver(ctx, buf + off, l, &io->rx_from[i], tos, off ? now : rx_ts, now);
			pkts++;
			if (len == 0)
				break;
		}
	}
	rt_place_fence(ctx);
	for (int i = 0; i < n; i++)
		rx_reset(io, i); /* the kernel rewrote lengths and flags */
	if (io->stamps_ok) {
		if (!lone || gap > RT_LEAN_GAP_US) {
			io->rx_singles = 0;
			if (io->rx_lean)
				set_lean(io, false, now);
		} else if (!io->rx_lean && ++io->rx_singles >= RT_LEAN_AFTER &&
			   now >= io->lean_holdoff_us) {
			set_lean(io, true, now);
		}
	}
	io->rx_segments += (uint64_t)pkts;
	return pkts;
}

struct rt_txq_pkt *rt_txq_add(rt_ctx *ctx, uint64_t now)
{
	if (ctx->txq.n == RT_TXQ_PKTS)
		rt_io_flush(ctx, now);
	struct rt_txq_pkt *p = &ctx->txq.pkts[ctx->txq.n++];
	p->peer = NULL;
	p->payload = NULL;
	p->pay_len = 0;
	return p;
}

static bool same_flow(const struct rt_txq_pkt *a, const struct rt_txq_pkt *b)
{
	return a->path == b->path && a->dst.sin_addr.s_addr == b->dst.sin_addr.s_addr &&
	       a->dst.sin_port == b->dst.sin_port;
}

static void fail_range(rt_ctx *ctx, uint32_t first_msg, uint32_t nmsgs)
{
	struct rt_io *io = &ctx->io;
	for (uint32_t m = first_msg; m < first_msg + nmsgs; m++)
		for (uint32_t k = 0; k < io->tx_count[m]; k++) {
			struct rt_txq_pkt *p = &ctx->txq.pkts[io->tx_first[m] + k];
			if (p->peer)
				rt_tx_unsent(p->peer, p->psn);
		}
}

/*
 * tx_connected() - may a datagram on @path to @dst go without an address?
 *
 * A send-only path socket is connect()ed to the first destination it
 * sends to: the kernel then keeps that route instead of looking it up on
 * every sendmsg() (about half a microsecond per send here).  Datagrams to
 * other destinations still name theirs; a connected UDP socket takes an
 * explicit address too.  fds[0] is the receive socket and is never
 * connected (that would filter what it receives).  Nor is a socket bound
 * to the wildcard address: connect() would fix its source address to the
 * route of that first destination, and datagrams to other peers would
 * then leave with it (or fail with EINVAL).
 */
static bool tx_connected(struct rt_io *io, uint16_t path, const struct sockaddr_in *dst)
{
	if (path == 0 || io->local[path].sin_addr.s_addr == htonl(INADDR_ANY))
		return false;
	struct sockaddr_in *c = &io->conn[path];
	if (c->sin_family == 0) {
		if (connect(io->fds[path], (const struct sockaddr *)dst, sizeof(*dst)) != 0) {
			c->sin_family = RT_CONN_NEVER; /* never again on this socket */
			return false;
		}
		*c = *dst;
		return true;
	}
	return c->sin_family == AF_INET && c->sin_addr.s_addr == dst->sin_addr.s_addr &&
	       c->sin_port == dst->sin_port;
}

void rt_io_flush(rt_ctx *ctx, uint64_t now)
{
	(void)now;
	struct rt_io *io = &ctx->io;
	struct rt_txq *q = &ctx->txq;
	if (!q->n)
		return;
	rt_place_fence(ctx); /* an ACK must not overtake the data it acknowledges */
	uint32_t nmsg = 0, niov = 0;
	for (uint32_t i = 0; i < q->n;) {
		struct rt_txq_pkt *p0 = &q->pkts[i];
		uint32_t seg = p0->hdr_len + p0->pay_len;
		uint32_t cnt = 1, total = seg;
		if (io->gso) {
			while (i + cnt < q->n && cnt < RT_GSO_MAX_SEGS) {
				struct rt_txq_pkt *pn = &q->pkts[i + cnt];
				uint32_t l = pn->hdr_len + pn->pay_len;
				/* all segments full size except possibly the last,
				 * which may be shorter after two full ones (a lone
				 * packet and a short one are a bundle instead) */
				if (!same_flow(p0, pn) || l > seg || total + l > RT_GSO_MAX_BYTES ||
				    (l < seg && cnt < 2))
					break;
				total += l;
				cnt++;
				if (l < seg)
					break;
			}
		}
		bool gso = cnt > 1;
		if (!gso) {
			/* bundle: the packets that follow on the same flow, between
			 * the same two endpoints, ride in this datagram while it
			 * stays small (a reply's held ACK); the receiver enforces
			 * the same limits (rt_rx_datagram) */
			uint32_t lim = ctx->cfg.mtu - RT_IPUDP_OVERHEAD;
			if (lim > RT_BUNDLE_MAX_BYTES)
				lim = RT_BUNDLE_MAX_BYTES;
			while (i + cnt < q->n && cnt < RT_BUNDLE_MAX) {
				struct rt_txq_pkt *pn = &q->pkts[i + cnt];
				uint32_t l = pn->hdr_len + pn->pay_len;
				if (!same_flow(p0, pn) || total + l > lim ||
				    memcmp(p0->hdr + RT_BUNDLE_ID_OFF, pn->hdr + RT_BUNDLE_ID_OFF,
					   RT_BUNDLE_ID_LEN) != 0)
					break;
				total += l;
				cnt++;
			}
			if (cnt > 1)
				io->tx_bundles++;
		}
		struct msghdr *mh = &io->tx_msgs[nmsg].msg_hdr;
		memset(mh, 0, sizeof(*mh));
		if (!tx_connected(io, p0->path, &p0->dst)) {
			mh->msg_name = &p0->dst;
			mh->msg_namelen = sizeof(p0->dst);
		}
		mh->msg_iov = &io->tx_iov[niov];
		for (uint32_t k = 0; k < cnt; k++) {
			struct rt_txq_pkt *p = &q->pkts[i + k];
			if (ctx->cfg.checksum) {
				rt_hdr_set_csum(p->hdr, 0);
				uint32_t c = rt_crc32c(0, p->hdr, p->hdr_len);
				if (p->pay_len)
					c = rt_crc32c(c ^ 0, p->payload, p->pay_len);
				rt_hdr_set_csum(p->hdr, c ? c : 1);
			}
			io->tx_iov[niov].iov_base = p->hdr;
			io->tx_iov[niov++].iov_len = p->hdr_len;
			if (p->pay_len) {
				io->tx_iov[niov].iov_base = (void *)p->payload;
				io->tx_iov[niov++].iov_len = p->pay_len;
			}
		}
		mh->msg_iovlen = (size_t)(&io->tx_iov[niov] - mh->msg_iov);
		if (gso) {
			mh->msg_control = io->tx_ctrl[nmsg];
			mh->msg_controllen = CMSG_SPACE(sizeof(uint16_t));
			struct cmsghdr *c = CMSG_FIRSTHDR(mh);
			c->cmsg_level = SOL_UDP;
			c->cmsg_type = UDP_SEGMENT;
			c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
			uint16_t gs = (uint16_t)seg;
			memcpy(CMSG_DATA(c), &gs, sizeof(gs));
		}
		io->tx_first[nmsg] = i;
		io->tx_count[nmsg] = cnt;
		nmsg++;
		i += cnt;
	}
	/* one sendmmsg per run of messages on the same path socket */
	for (uint32_t m = 0; m < nmsg;) {
		uint16_t path = q->pkts[io->tx_first[m]].path;
		uint32_t run = 1;
		while (m + run < nmsg && q->pkts[io->tx_first[m + run]].path == path)
			run++;
		int fd = io->fds[path];
		uint32_t done = 0;
		int retries = 0;
		while (done < run) {
			int r;
			if (run - done == 1) { /* sendmsg() costs less than a batch of one */
				ssize_t l = sendmsg(fd, &io->tx_msgs[m + done].msg_hdr, MSG_DONTWAIT);
				r = l < 0 ? -1 : 1;
			} else {
				r = sendmmsg(fd, &io->tx_msgs[m + done], run - done, MSG_DONTWAIT);
			}
			io->tx_syscalls++;
			if (r > 0) {
				for (int k = 0; k < r; k++)
					io->tx_segments += io->tx_count[m + done + (uint32_t)k];
				io->tx_datagrams += (uint32_t)r;
				done += (uint32_t)r;
				continue;
			}
			int e = errno;
			/* an ICMP error from an earlier datagram, reported once on a
			 * connected socket for whatever is sent next: retry */
			bool icmp = e == ECONNREFUSED ||
				    (io->conn[path].sin_family == AF_INET &&
				     (e == EHOSTUNREACH || e == ENETUNREACH || e == EHOSTDOWN));
			if (r < 0 && (e == EINTR || icmp) && retries++ < 4)
				continue;
			if (r < 0 && (e == EAGAIN || e == ENOBUFS)) {
				io->tx_eagain++;
				fail_range(ctx, m + done, run - done);
				break;
			}
			/* a permanent error for this datagram: report and skip it */
			rt_log(2, "send on path %u: %s", path, strerror(e));
			fail_range(ctx, m + done, 1);
			done++;
		}
		m += run;
	}
	q->n = 0;
}
