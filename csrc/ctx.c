/* SPDX-License-Identifier: Apache-2.0 */
/* Context lifetime, configuration checks and machine information. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

static void ctx_info_fill(rt_ctx *ctx, struct rt_ctx_info *info);

static int check_prob(const char *name, double p)
{
	if (!(p >= 0.0 && p <= 1.0))
		return rt_seterr(RT_ERR_INVAL, "config: %s=%g must be a probability in [0, 1]",
				 name, p);
	return RT_OK;
}

/* The caller's config as this library's full struct (ABI rules in rt.h):
 * defaults for fields an older header lacks; a newer header's fields
 * must be zero (their defaults) since this library cannot honour them. */
static int normalize_config(const struct rt_config *in, struct rt_config *c)
{
	if (in->size < RT_CONFIG_SIZE_0_2)
		return rt_seterr(RT_ERR_INVAL, "config: size %u is not a struct rt_config size; "
				 "initialise it with rt_config_init()", in->size);
	rt_config_defaults(c);
	size_t n = in->size < sizeof(*c) ? in->size : sizeof(*c);
	memcpy(c, in, n);
	for (size_t i = sizeof(*c); i < in->size; i++)
		if (((const uint8_t *)in)[i])
			return rt_seterr(RT_ERR_UNSUPPORTED, "config: set fields this library "
					 "(%d.%d) does not know (byte %zu of %u); use a newer "
					 "librtransport or leave them at their defaults",
					 RT_VERSION_MAJOR, RT_VERSION_MINOR, i, in->size);
	c->size = sizeof(*c);
	return RT_OK;
}

static int check_config(const struct rt_config *c)
{
	if (c->mtu < 576 || c->mtu > 65535)
		return rt_seterr(RT_ERR_INVAL, "config: mtu=%u out of range [576, 65535]", c->mtu);
	if (c->num_paths < 1 || c->num_paths > 128)
		return rt_seterr(RT_ERR_INVAL, "config: num_paths=%u out of range [1, 128]",
				 c->num_paths);
	if (c->progress > RT_PROGRESS_MANUAL)
		return rt_seterr(RT_ERR_INVAL, "config: progress=%u unknown (0=thread, 1=manual)",
				 c->progress);
	if (c->timeout_ms < 1 || c->timeout_ms > 3600000)
		return rt_seterr(RT_ERR_INVAL, "config: timeout_ms=%u out of range [1, 3600000]",
				 c->timeout_ms);
	if (c->rnr_timeout_ms < 1 || c->rnr_timeout_ms > 3600000)
		return rt_seterr(RT_ERR_INVAL, "config: rnr_timeout_ms=%u out of range [1, 3600000]",
				 c->rnr_timeout_ms);
	if (c->rto_min_us < 50 || c->rto_max_us < c->rto_min_us)
		return rt_seterr(RT_ERR_INVAL, "config: need 50 <= rto_min_us (%u) <= rto_max_us (%u)",
				 c->rto_min_us, c->rto_max_us);
	if (c->busy_poll_us > 10000000)
		return rt_seterr(RT_ERR_INVAL, "config: busy_poll_us=%u is over 10 s", c->busy_poll_us);
	if (c->max_inflight_bytes < 4096 || c->max_inflight_bytes > (1ull << 32))
		return rt_seterr(RT_ERR_INVAL, "config: max_inflight_bytes=%llu out of range "
				 "[4096, 4 GiB]", (unsigned long long)c->max_inflight_bytes);
	if (c->gso > RT_OFF || c->gro > RT_OFF)
		return rt_seterr(RT_ERR_INVAL, "config: gso/gro must be 0=auto, 1=on or 2=off");
	if (c->cc_scope > RT_CC_SCOPE_PATH)
		return rt_seterr(RT_ERR_INVAL, "config: cc_scope must be 0 (one window per peer) "
				 "or 1 (one window per path)");
	if (c->spray_unit > 1)
		return rt_seterr(RT_ERR_INVAL, "config: spray_unit must be 0 (GSO batch) or 1 (packet)");
	if (c->fault_routes > 64)
		return rt_seterr(RT_ERR_INVAL, "config: fault_routes=%u is over 64", c->fault_routes);
	if (c->fault_routes && c->fault_routes < 64 && (c->fault_dead_routes >> c->fault_routes))
		return rt_seterr(RT_ERR_INVAL, "config: fault_dead_routes names a route >= "
				 "fault_routes (%u)", c->fault_routes);
	if (c->fault_delay_us > 10000000)
		return rt_seterr(RT_ERR_INVAL, "config: fault_delay_us=%u is over 10 s",
				 c->fault_delay_us);
	int r;
	if ((r = check_prob("fault_drop", c->fault_drop)) || (r = check_prob("fault_dup", c->fault_dup)) ||
	    (r = check_prob("fault_reorder", c->fault_reorder)) ||
	    (r = check_prob("fault_delay", c->fault_delay)) ||
	    (r = check_prob("fault_corrupt", c->fault_corrupt)))
		return r;
	return RT_OK;
}

int rt_ctx_create(const struct rt_config *cfg_in, rt_ctx **out)
{
	struct rt_config defcfg;
	int r;
	if (!out)
		return rt_seterr(RT_ERR_INVAL, "rt_ctx_create: output pointer is NULL");
	*out = NULL;
	if (!cfg_in)
		rt_config_defaults(&defcfg);
	else if ((r = normalize_config(cfg_in, &defcfg)))
		return r;
	cfg_in = &defcfg;
	if ((r = check_config(cfg_in)))
		return r;
	const char *bind = cfg_in->bind_addr ? cfg_in->bind_addr : "127.0.0.1";
	struct in_addr ia;
	if (inet_pton(AF_INET, bind, &ia) != 1)
		return rt_seterr(RT_ERR_INVAL, "config: bind_addr '%s' is not an IPv4 address "
				 "(IPv6 is not supported yet)", bind);
	const char *ccname = cfg_in->cc ? cfg_in->cc : "swift";
	const struct rt_cc_ops *cc = rt_cc_find(ccname);
	if (!cc)
		return rt_seterr(RT_ERR_INVAL, "config: unknown congestion control '%s' "
				 "(choose 'swift' or 'none')", ccname);
	if (cfg_in->extra_addrs && strlen(cfg_in->extra_addrs) >= 256)
		return rt_seterr(RT_ERR_INVAL, "config: extra_addrs is too long");

	rt_ctx *ctx = calloc(1, sizeof(*ctx));
	if (!ctx)
		return rt_seterr(RT_ERR_NOMEM, "rt_ctx_create: out of memory");
	ctx->cfg = *cfg_in;
	snprintf(ctx->bind, sizeof(ctx->bind), "%s", bind);
	snprintf(ctx->cc_name, sizeof(ctx->cc_name), "%s", cc->name);
	if (cfg_in->extra_addrs)
		snprintf(ctx->extra, sizeof(ctx->extra), "%s", cfg_in->extra_addrs);
	ctx->cfg.bind_addr = ctx->bind;
	ctx->cfg.cc = ctx->cc_name;
	ctx->cfg.extra_addrs = ctx->extra;
	ctx->cc = cc;
	ctx->io.evfd = -1;
	for (int i = 0; i < RT_MAX_PATHS; i++)
		ctx->io.fds[i] = -1;
	pthread_mutex_init(&ctx->lock, NULL);
	ctx->max_payload = ctx->cfg.mtu - RT_IPUDP_OVERHEAD - RT_DATA_OVERHEAD;
	if (ctx->cfg.fault_corrupt > 0)
		ctx->cfg.checksum = 1; /* corruption tests need end-to-end integrity */
	rt_fault_init(&ctx->fault, &ctx->cfg);
	ctx->txq.pkts = calloc(RT_TXQ_PKTS, sizeof(*ctx->txq.pkts));
	if (!ctx->txq.pkts) {
		rt_ctx_destroy(ctx);
		return rt_seterr(RT_ERR_NOMEM, "rt_ctx_create: out of memory");
	}
	r = rt_io_open(ctx);
	if (r) {
		char msg[512];
		snprintf(msg, sizeof(msg), "%s", rt_last_error());
		rt_ctx_destroy(ctx);
		return rt_seterr(r, "%s", msg);
	}
	ctx->npaths = (uint32_t)ctx->io.npaths;
	ctx->last_activity_us = rt_now_us();
	r = rt_engine_start(ctx);
	if (r) {
		char msg[512];
		snprintf(msg, sizeof(msg), "%s", rt_last_error());
		rt_ctx_destroy(ctx);
		return rt_seterr(r, "%s", msg);
	}
	ctx_info_fill(ctx, &ctx->info);
	rt_log(0, "context %s:%u mtu=%u payload=%u paths=%u gso=%s gro=%s cc=%s progress=%s "
	       "sndbuf=%u rcvbuf=%u", ctx->bind, ctx->io.ports[0], ctx->cfg.mtu, ctx->max_payload,
	       ctx->npaths, ctx->io.gso ? "on" : "off", ctx->io.gro ? "on" : "off", ctx->cc_name,
	       ctx->cfg.progress == RT_PROGRESS_MANUAL ? "manual" : "thread", ctx->io.sndbuf,
	       ctx->io.rcvbuf);
	*out = ctx;
	return RT_OK;
}

void rt_ctx_destroy(rt_ctx *ctx)
{
	if (!ctx)
		return;
	pthread_mutex_lock(&ctx->lock);
	ctx->destroying = true;
	pthread_mutex_unlock(&ctx->lock);
	rt_engine_stop(ctx);
	for (uint32_t i = 0; i < ctx->neps_cap; i++)
		if (ctx->eps && ctx->eps[i])
			rt_ep_destroy(ctx->eps[i]);
	free(ctx->eps);
	free(ctx->ep_gen);
	while (ctx->cqs) {
		struct rt_cq *cq = ctx->cqs;
		ctx->cqs = cq->next;
		rt_cq_free(cq);
	}
	rt_mr_table_free(ctx);
	rt_io_close(&ctx->io);
	rt_fault_free(&ctx->fault);
	free(ctx->txq.pkts);
	pthread_mutex_destroy(&ctx->lock);
	free(ctx);
}

static uint32_t read_sysctl_u32(const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return 0;
	unsigned long v = 0;
	if (fscanf(f, "%lu", &v) != 1)
		v = 0;
	fclose(f);
	return (uint32_t)v;
}

static void fill_machine(struct rt_ctx_info *info)
{
	info->sndbuf_max = read_sysctl_u32("/proc/sys/net/core/wmem_max");
	info->rcvbuf_max = read_sysctl_u32("/proc/sys/net/core/rmem_max");
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	info->num_cpus = n > 0 ? (uint32_t)n : 0;
}

static void ctx_info_fill(rt_ctx *ctx, struct rt_ctx_info *info)
{
	memset(info, 0, sizeof(*info));
	fill_machine(info);
	info->gso_supported = ctx->io.gso_supported;
	info->gso_used = ctx->io.gso;
	info->gro_supported = ctx->io.gro_supported;
	info->gro_used = ctx->io.gro;
	info->mmsg_supported = 1;
	info->mtu = ctx->cfg.mtu;
	info->max_payload = ctx->max_payload;
	info->sndbuf = ctx->io.sndbuf;
	info->rcvbuf = ctx->io.rcvbuf;
	info->num_paths = ctx->npaths;
	info->progress = ctx->cfg.progress;
	info->port = ctx->io.ports[0];
	snprintf(info->bind_addr, sizeof(info->bind_addr), "%s", ctx->bind);
	snprintf(info->cc, sizeof(info->cc), "%s", ctx->cc_name);
	info->if_mtu = ctx->info.if_mtu;
	info->tx_syscalls = ctx->io.tx_syscalls;
	info->tx_datagrams = ctx->io.tx_datagrams;
	info->tx_segments = ctx->io.tx_segments;
	info->tx_eagain = ctx->io.tx_eagain;
	info->rx_syscalls = ctx->io.rx_syscalls;
	info->rx_datagrams = ctx->io.rx_datagrams;
	info->rx_segments = ctx->io.rx_segments;
	info->tx_bundles = ctx->io.tx_bundles;
	info->rx_bundles = ctx->io.rx_bundles;
	info->rx_stamp_switches = ctx->io.lean_switches;
	info->rx_stamps = ctx->io.stamps_ok && !ctx->io.rx_lean;
	info->engine_loops = ctx->io.loops;
	if (!info->if_mtu) {
		struct rt_ctx_info tmp;
		memset(&tmp, 0, sizeof(tmp));
		if (rt_io_probe(ctx->bind, &tmp) == 0)
			info->if_mtu = tmp.if_mtu;
	}
}

int rt_ctx_info(rt_ctx *ctx, struct rt_ctx_info *info, size_t size)
{
	if (!ctx || !info)
		return rt_seterr(RT_ERR_INVAL, "rt_ctx_info: context and output are required");
	if (rt_check_size("rt_ctx_info", "rt_ctx_info", size, RT_CTX_INFO_SIZE_0_2))
		return RT_ERR_INVAL;
	struct rt_ctx_info tmp;
	ctx_info_fill(ctx, &tmp);
	rt_copy_out(info, size, &tmp, sizeof(tmp));
	return RT_OK;
}

int rt_probe(const char *bind, struct rt_ctx_info *info, size_t size)
{
	if (!info)
		return rt_seterr(RT_ERR_INVAL, "rt_probe: output is NULL");
	if (rt_check_size("rt_probe", "rt_ctx_info", size, RT_CTX_INFO_SIZE_0_2))
		return RT_ERR_INVAL;
	struct rt_ctx_info tmp;
	memset(&tmp, 0, sizeof(tmp));
	fill_machine(&tmp);
	snprintf(tmp.bind_addr, sizeof(tmp.bind_addr), "%s", bind ? bind : "127.0.0.1");
	int r = rt_io_probe(tmp.bind_addr, &tmp);
	rt_copy_out(info, size, &tmp, sizeof(tmp));
	return r;
}
