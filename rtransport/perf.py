"""``rtransport perf``: perftest-style latency and bandwidth, against TCP.

Two tests, each measured for rtransport *and* for a plain TCP socket over
the same path in the same run:

``pingpong``
    A client sends a small message (64 B by default), the server echoes
    one back; round-trip time p50/p99 over ``--iters`` exchanges.
``bw``
    One-way bandwidth for message sizes 64 KiB .. 256 MiB: rtransport
    posts RDMA writes (or sends) with several messages in flight; TCP
    ``sendall()``s the same sizes over one stream.  The clock runs from the
    first byte handed to the transport to the moment the sender knows that
    the last byte arrived (write/send completion, or a 1-byte TCP ack).

Both sides are Python on both transports (rtransport through its Python
API, TCP through :mod:`socket` with ``TCP_NODELAY`` and blocking
``recv_into``), so the comparison is language-fair.  Every measurement runs
in two processes (server and client).  ``--path netns`` puts them in two
network namespaces joined by a veth pair (MTU 9000) instead of loopback.

Usage::

    rtransport perf pingpong [--iters N] [--progress thread,manual] ...
    rtransport perf bw [--sizes 64K,1M,256M] [--iters N] [--op write|send] ...
    rtransport perf pingpong --path netns --json out.json

The worker processes are this module run as ``python -m rtransport.perf
_worker SPEC``; they talk to the orchestrating process through one JSON
line on stdout (``@@RTPERF {...}``).
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import secrets
import selectors
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import zlib

__all__ = ["main", "parse_size", "parse_sizes"]

MARK = "@@RTPERF "
KiB = 1 << 10
MiB = 1 << 20
GiB = 1 << 30
DEFAULT_SIZES = [64 * KiB, 256 * KiB, 1 * MiB, 4 * MiB, 16 * MiB, 64 * MiB, 256 * MiB]
DEFAULT_PINGPONG_ITERS = 10000
BW_TARGET_BYTES = 512 * MiB  # auto --iters: move about this much per size
BW_MIN_ITERS = 4
BW_MAX_ITERS = 4096
RECV_SLOTS = 16              # receive buffers posted ahead (ping-pong)
SEND_WR = 1 << 40
CTRL_WR = 1 << 41
CTRL_SIZE = 64
NETNS_IPS = ("10.77.0.1", "10.77.0.2")  # client, server (namespaces are isolated)

# targets of issue #2
TARGET_RTT_RATIO = 0.5   # rtransport p50 <= 0.5 x TCP p50
TARGET_BW_RATIO = 1.0    # large-message bandwidth >= one TCP stream
LARGE_MSG = 16 * MiB     # "large message" for the bandwidth target


class PerfError(Exception):
    """A measurement could not be made (message is for the user)."""


# ==========================================================================
# small helpers

_UNITS = {"": 1, "b": 1, "k": KiB, "kb": KiB, "kib": KiB, "m": MiB, "mb": MiB,
          "mib": MiB, "g": GiB, "gb": GiB, "gib": GiB}


def parse_size(text: str) -> int:
    """'65536', '64K', '64KiB', '1M', '256MiB' -> bytes (binary units)."""
    t = text.strip().lower()
    num = t.rstrip("kmgib")
    unit = t[len(num):]
    try:
        value = float(num)
    except ValueError:
        raise ValueError(f"bad size {text!r} (examples: 65536, 64K, 1M, 256MiB)") from None
    if unit not in _UNITS:
        raise ValueError(f"bad size unit in {text!r} (use K, M or G)")
    n = int(value * _UNITS[unit])
    if n < 1:
        raise ValueError(f"size must be >= 1 byte, got {text!r}")
    return n


def parse_sizes(text: str) -> list[int]:
    sizes = [parse_size(s) for s in text.split(",") if s.strip()]
    if not sizes:
        raise ValueError("--sizes is empty")
    return sizes


def fmt_size(n: int) -> str:
    for unit, div in (("GiB", GiB), ("MiB", MiB), ("KiB", KiB)):
        if n >= div and n % div == 0:
            return f"{n // div} {unit}"
    return f"{n} B"


def _percentile(sorted_vals: list, q: float) -> float:
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_vals:
        return float("nan")
    k = max(0, min(len(sorted_vals) - 1, math.ceil(q / 100.0 * len(sorted_vals)) - 1))
    return sorted_vals[k]


def _median(vals):
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None


def _cpu() -> tuple[float, float]:
    """(user, system) CPU seconds of this process, all threads."""
    import resource
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime, r.ru_stime


_ready_cpu = None


def _emit(kind: str, **payload):
    global _ready_cpu
    if kind == "READY":
        _ready_cpu = _cpu()
    elif kind == "RESULT" and _ready_cpu is not None:
        u, s = _cpu()
        payload["cpu_since_ready"] = {"user": u - _ready_cpu[0], "sys": s - _ready_cpu[1]}
    payload["msg"] = kind
    sys.stdout.write(MARK + json.dumps(payload) + "\n")
    sys.stdout.flush()


def _pattern(n: int) -> bytearray:
    """n bytes of a non-trivial, cheap-to-make pattern."""
    buf = bytearray(n)
    if n == 0:
        return buf
    seed = bytes((i * 131 + 7) & 0xFF for i in range(4093))  # prime length
    mv = memoryview(buf)
    mv[:min(n, len(seed))] = seed[:min(n, len(seed))]
    filled = min(n, len(seed))
    while filled < n:  # doubling copy
        k = min(filled, n - filled)
        mv[filled:filled + k] = mv[:k]
        filled += k
    return buf


def _bw_iters(size: int, iters: int | None) -> int:
    if iters:
        return iters
    return max(BW_MIN_ITERS, min(BW_MAX_ITERS, BW_TARGET_BYTES // size))


def _bw_warmup(n: int) -> int:
    return max(1, min(n // 10, 64))


# ==========================================================================
# workers (run in their own process: python -m rtransport.perf _worker SPEC)


class _Deadline:
    def __init__(self, seconds: float, what: str):
        self.end = time.monotonic() + seconds
        self.seconds = seconds
        self.what = what

    def check(self):
        if time.monotonic() > self.end:
            raise PerfError(f"timed out after {self.seconds:g} s: {self.what}")


def _rt_context(spec):
    import rtransport as rt
    kw = dict(bind=spec["bind"], mtu=spec["mtu"], progress=spec["progress"])
    if spec.get("busy_poll_us") is not None:
        kw["busy_poll_us"] = spec["busy_poll_us"]
    if spec.get("cc") is not None:
        kw["cc"] = spec["cc"]
    return rt.Context(**kw)


def _rt_ep_summary(ep) -> dict:
    st = ep.stats()
    keys = ("tx_packets", "rx_packets", "retransmits", "rto_events", "fast_retransmits",
            "tlp_probes", "duplicates", "rnr_naks", "spurious_retransmits",
            "srtt_us", "min_rtt_us", "acks_sent", "acks_received")
    return {k: st[k] for k in keys if k in st}


def _check_comp(c, what):
    if c.status != 0:
        raise PerfError(f"{what}: completion {c!r} failed "
                        f"({getattr(c.status, 'description', c.status)})")


# ---------------------------------------------------------------- rt pingpong


def _rt_pingpong_server(spec):
    import rtransport as rt
    size, total = spec["size"], spec["iters"] + spec["warmup"]
    with _rt_context(spec) as ctx:
        ep = ctx.endpoint()
        cq = ep.cq
        rbuf = bytearray(RECV_SLOTS * size)
        rmr = ctx.register(rbuf, rt.Access.LOCAL_WRITE)
        smr = ctx.register(_pattern(size), rt.Access.LOCAL_WRITE)
        for i in range(RECV_SLOTS):
            ep.post_recv(rmr, i * size, size, wr_id=i)
        _emit("READY", addr=ep.address.hex(), info=ctx.info())
        dl = _Deadline(spec["timeout"], "rtransport ping-pong server")
        peer = None
        replies = sends = 0
        post_send, post_recv, wait = ep.post_send, ep.post_recv, cq.wait
        RECV, SEND = int(rt.Opcode.RECV), int(rt.Opcode.SEND)
        while replies < total or sends < replies:
            comps = wait(0.05)
            if not comps:
                dl.check()
                continue
            for c in comps:
                if c.status:
                    _check_comp(c, "server")
                op = c.opcode
                if op == RECV:
                    if peer is None:
                        peer = c.peer
                    post_send(peer, smr, 0, size, wr_id=SEND_WR)
                    post_recv(rmr, c.wr_id * size, size, wr_id=c.wr_id)
                    replies += 1
                elif op == SEND:
                    sends += 1
        _emit("RESULT", replies=replies, stats=_rt_ep_summary(ep))


def _rt_pingpong_client(spec):
    import rtransport as rt
    size, iters, warmup = spec["size"], spec["iters"], spec["warmup"]
    total = iters + warmup
    lat = []
    with _rt_context(spec) as ctx:
        ep = ctx.endpoint()
        cq = ep.cq
        peer = ep.connect(bytes.fromhex(spec["server"]["addr"]))
        rbuf = bytearray(RECV_SLOTS * size)
        rmr = ctx.register(rbuf, rt.Access.LOCAL_WRITE)
        smr = ctx.register(_pattern(size), rt.Access.LOCAL_WRITE)
        for i in range(RECV_SLOTS):
            ep.post_recv(rmr, i * size, size, wr_id=i)
        dl = _Deadline(spec["timeout"], "rtransport ping-pong client")
        post_send, post_recv, wait = ep.post_send, ep.post_recv, cq.wait
        RECV, SEND = int(rt.Opcode.RECV), int(rt.Opcode.SEND)
        clock = time.perf_counter_ns
        sends = 0
        bad_len = 0
        t_start = time.perf_counter()
        cpu0 = _cpu()
        for i in range(total):
            t0 = clock()
            post_send(peer, smr, 0, size, wr_id=SEND_WR)
            got = False
            while not got:
                comps = wait(0.05)
                if not comps:
                    dl.check()
                    continue
                for c in comps:
                    if c.status:
                        _check_comp(c, "client")
                    op = c.opcode
                    if op == RECV:
                        t1 = clock()  # before re-posting: 16 buffers are posted ahead
                        got = True
                        if c.byte_len != size:
                            bad_len += 1
                        post_recv(rmr, c.wr_id * size, size, wr_id=c.wr_id)
                    elif op == SEND:
                        sends += 1
            if i >= warmup:
                lat.append(t1 - t0)
        elapsed = time.perf_counter() - t_start
        cpu = _cpu_delta(cpu0, iters + warmup)
        while sends < total:
            for c in wait(0.05):
                _check_comp(c, "client")
                if c.opcode == SEND:
                    sends += 1
            dl.check()
        if bad_len:
            raise PerfError(f"{bad_len} replies had the wrong length")
        _linger(ctx, ep)
        _emit("RESULT", lat_ns=_lat_summary(lat), elapsed_s=elapsed, cpu=cpu,
              stats=_rt_ep_summary(ep), info=ctx.info())


def _cpu_delta(cpu0, count: int) -> dict:
    """CPU used since ``cpu0``, in total and per operation (microseconds)."""
    u, s = _cpu()
    du, ds = u - cpu0[0], s - cpu0[1]
    return {"user_s": du, "sys_s": ds, "count": count,
            "us_per_op": (du + ds) / count * 1e6 if count else None}


def _lat_summary(lat_ns: list) -> dict:
    s = sorted(lat_ns)
    return {"n": len(s), "p50": _percentile(s, 50), "p99": _percentile(s, 99),
            "p90": _percentile(s, 90), "min": s[0] if s else None,
            "max": s[-1] if s else None,
            "mean": (sum(s) / len(s)) if s else None}


# ---------------------------------------------------------------- rt pingpong (raw cffi)
# Diagnostic variant (--rt-api cffi): the same loop, but calling the thin
# 1:1 cffi binding (rtransport.lib) directly instead of the Python classes,
# to show how much of the round trip the Python object layer costs.


def _raw(ep, mr):
    # Private attributes of rtransport.core: fine for a diagnostic only.
    return ep._ptr, mr._ptr


def _rt_pingpong_server_cffi(spec):
    import rtransport as rt
    from rtransport import ffi, lib
    size, total = spec["size"], spec["iters"] + spec["warmup"]
    with _rt_context(spec) as ctx:
        ep = ctx.endpoint()
        cq = ep.cq
        rmr = ctx.register(bytearray(RECV_SLOTS * size), rt.Access.LOCAL_WRITE)
        smr = ctx.register(_pattern(size), rt.Access.LOCAL_WRITE)
        ep_p, rmr_p = _raw(ep, rmr)
        smr_p = smr._ptr
        cq_p = cq._ptr
        for i in range(RECV_SLOTS):
            rt.check(lib.rt_post_recv(ep_p, rmr_p, i * size, size, i))
        _emit("READY", addr=ep.address.hex(), info=ctx.info())
        dl = _Deadline(spec["timeout"], "rtransport ping-pong server (cffi)")
        wc = ffi.new("struct rt_wc[]", 16)
        replies = sends = 0
        RECV, SEND = lib.RT_OP_RECV, lib.RT_OP_SEND
        cq_wait, post_send, post_recv = lib.rt_cq_wait, lib.rt_post_send, lib.rt_post_recv
        while replies < total or sends < replies:
            n = cq_wait(cq_p, wc, 16, 50000)
            if n <= 0:
                rt.check(n)
                dl.check()
                continue
            for j in range(n):
                w = wc[j]
                if w.status:
                    raise PerfError(f"server: completion status {w.status}")
                if w.opcode == RECV:
                    slot = w.wr_id
                    rt.check(post_send(ep_p, w.peer, smr_p, 0, size, SEND_WR))
                    rt.check(post_recv(ep_p, rmr_p, slot * size, size, slot))
                    replies += 1
                elif w.opcode == SEND:
                    sends += 1
        _emit("RESULT", replies=replies, stats=_rt_ep_summary(ep))


def _rt_pingpong_client_cffi(spec):
    import rtransport as rt
    from rtransport import ffi, lib
    size, iters, warmup = spec["size"], spec["iters"], spec["warmup"]
    total = iters + warmup
    lat = []
    with _rt_context(spec) as ctx:
        ep = ctx.endpoint()
        cq = ep.cq
        peer = ep.connect(bytes.fromhex(spec["server"]["addr"]))
        rmr = ctx.register(bytearray(RECV_SLOTS * size), rt.Access.LOCAL_WRITE)
        smr = ctx.register(_pattern(size), rt.Access.LOCAL_WRITE)
        ep_p, rmr_p = _raw(ep, rmr)
        smr_p, cq_p, pid = smr._ptr, cq._ptr, peer.id
        for i in range(RECV_SLOTS):
            rt.check(lib.rt_post_recv(ep_p, rmr_p, i * size, size, i))
        dl = _Deadline(spec["timeout"], "rtransport ping-pong client (cffi)")
        wc = ffi.new("struct rt_wc[]", 16)
        RECV, SEND = lib.RT_OP_RECV, lib.RT_OP_SEND
        cq_wait, post_send, post_recv = lib.rt_cq_wait, lib.rt_post_send, lib.rt_post_recv
        clock = time.perf_counter_ns
        sends = 0
        t_start = time.perf_counter()
        cpu0 = _cpu()
        for i in range(total):
            t0 = clock()
            rc = post_send(ep_p, pid, smr_p, 0, size, SEND_WR)
            if rc:
                rt.check(rc)
            got = False
            while not got:
                n = cq_wait(cq_p, wc, 16, 50000)
                if n <= 0:
                    rt.check(n)
                    dl.check()
                    continue
                for j in range(n):
                    w = wc[j]
                    if w.status:
                        raise PerfError(f"client: completion status {w.status}")
                    if w.opcode == RECV:
                        t1 = clock()
                        got = True
                        slot = w.wr_id
                        rt.check(post_recv(ep_p, rmr_p, slot * size, size, slot))
                    elif w.opcode == SEND:
                        sends += 1
            if i >= warmup:
                lat.append(t1 - t0)
        elapsed = time.perf_counter() - t_start
        cpu = _cpu_delta(cpu0, iters + warmup)
        while sends < total:
            n = cq_wait(cq_p, wc, 16, 50000)
            for j in range(max(n, 0)):
                if wc[j].opcode == SEND:
                    sends += 1
            dl.check()
        _linger(ctx, ep)
        _emit("RESULT", lat_ns=_lat_summary(lat), elapsed_s=elapsed, cpu=cpu,
              stats=_rt_ep_summary(ep), info=ctx.info())


# ---------------------------------------------------------------- rt bandwidth


def _bw_plan(spec) -> list[tuple[int, int, int]]:
    """[(size, warmup, iters)] for the client and the server alike."""
    plan = []
    for size in spec["sizes"]:
        n = _bw_iters(size, spec.get("iters"))
        plan.append((size, _bw_warmup(n), n))
    return plan


def _rt_bw_server(spec):
    import rtransport as rt
    plan = _bw_plan(spec)
    max_size = max(s for s, _, _ in plan)
    op = spec["op"]
    with _rt_context(spec) as ctx:
        ep = ctx.endpoint()
        cq = ep.cq
        dst = bytearray(max_size)
        access = rt.Access.LOCAL_WRITE | rt.Access.REMOTE_WRITE
        dmr = ctx.register(dst, access)
        cbuf = bytearray(CTRL_SIZE)
        cmr = ctx.register(cbuf, rt.Access.LOCAL_WRITE)
        # send mode: one receive per data message (all over the same
        # region, like a receiver that reuses one buffer), then the
        # control receive; receives are consumed in posting order.
        data_msgs = sum(w + n for _, w, n in plan) if op == "send" else 0
        posted = 0
        ahead = max(2 * spec["inflight"], 8)
        sizes_seq = iter([s for s, w, n in plan for _ in range(w + n)])

        def post_data():
            nonlocal posted
            size = next(sizes_seq)
            ep.post_recv(dmr, 0, size, wr_id=posted)
            posted += 1

        while op == "send" and posted < min(ahead, data_msgs):
            post_data()
        if posted >= data_msgs:
            ep.post_recv(cmr, 0, CTRL_SIZE, wr_id=CTRL_WR)
        _emit("READY", addr=ep.address.hex(), desc=dmr.descriptor().hex(),
              info=ctx.info())
        dl = _Deadline(spec["timeout"], "rtransport bandwidth server")
        received = 0
        ctrl = None
        peer = None
        while ctrl is None:
            comps = cq.wait(0.05)
            if not comps:
                dl.check()
                continue
            for c in comps:
                _check_comp(c, "server")
                if c.wr_id == CTRL_WR:
                    ctrl = bytes(cbuf[:c.byte_len])
                    peer = c.peer
                elif c.opcode == rt.Opcode.RECV:
                    received += 1
                    if posted < data_msgs:
                        post_data()
                        if posted == data_msgs:
                            ep.post_recv(cmr, 0, CTRL_SIZE, wr_id=CTRL_WR)
        last_size, want_crc = struct.unpack("!QQ", ctrl[:16])
        got_crc = zlib.crc32(memoryview(dst)[:last_size])
        ok = got_crc == want_crc
        bye = ctx.register(bytearray(struct.pack("!Q", int(ok)) + bytes(CTRL_SIZE - 8)))
        ep.post_send(peer, bye, 0, CTRL_SIZE, wr_id=SEND_WR)
        while True:
            comps = cq.wait(0.05)
            if any(c.wr_id == SEND_WR for c in comps):
                break
            dl.check()
        _emit("RESULT", data_ok=ok, received_msgs=received, stats=_rt_ep_summary(ep))


def _rt_bw_client(spec):
    import rtransport as rt
    plan = _bw_plan(spec)
    max_size = max(s for s, _, _ in plan)
    op, inflight = spec["op"], spec["inflight"]
    results = []
    with _rt_context(spec) as ctx:
        ep = ctx.endpoint()
        cq = ep.cq
        peer = ep.connect(bytes.fromhex(spec["server"]["addr"]))
        remote = rt.RemoteRegion(bytes.fromhex(spec["server"]["desc"]))
        src = _pattern(max_size)
        smr = ctx.register(src, rt.Access.LOCAL_WRITE)
        cbuf = bytearray(CTRL_SIZE)
        cmr = ctx.register(cbuf, rt.Access.LOCAL_WRITE)
        ep.post_recv(cmr, 0, CTRL_SIZE, wr_id=CTRL_WR)
        dl = _Deadline(spec["timeout"], "rtransport bandwidth client")
        wait = cq.wait
        if op == "write":
            def post(size, wr):
                ep.post_write(peer, smr, 0, size, remote=remote, wr_id=wr)
        else:
            def post(size, wr):
                ep.post_send(peer, smr, 0, size, wr_id=wr)

        def phase(size, count):
            posted = done = 0
            while posted < min(count, inflight):
                post(size, posted)
                posted += 1
            while done < count:
                comps = wait(0.05)
                if not comps:
                    dl.check()
                    continue
                for c in comps:
                    if c.status:
                        _check_comp(c, f"{op} of {size} B")
                    if c.wr_id == CTRL_WR:
                        raise PerfError("unexpected control message from the server")
                    done += 1
                    if posted < count:
                        post(size, posted)
                        posted += 1

        last_size = None
        for size, warm, n in plan:
            phase(size, warm)
            cpu0 = _cpu()
            t0 = time.perf_counter()
            phase(size, n)
            t1 = time.perf_counter()
            cpu = _cpu_delta(cpu0, n)
            results.append({"size": size, "iters": n, "seconds": t1 - t0,
                            "bytes": size * n, "gbps": size * n * 8 / (t1 - t0) / 1e9,
                            "cpu_s_per_gb": (cpu["user_s"] + cpu["sys_s"]) / (size * n / 1e9),
                            "cpu": cpu})
            last_size = size
        crc = zlib.crc32(memoryview(src)[:last_size])
        smr_ctrl = ctx.register(bytearray(struct.pack("!QQ", last_size, crc)
                                          + bytes(CTRL_SIZE - 16)))
        ep.post_send(peer, smr_ctrl, 0, CTRL_SIZE, wr_id=SEND_WR)
        got_bye = sent = False
        data_ok = None
        while not (got_bye and sent):
            comps = wait(0.05)
            if not comps:
                dl.check()
            for c in comps:
                _check_comp(c, "control")
                if c.wr_id == CTRL_WR:
                    got_bye = True
                    data_ok = bool(struct.unpack("!Q", bytes(cbuf[:8]))[0])
                elif c.wr_id == SEND_WR:
                    sent = True
        _linger(ctx, ep)
        _emit("RESULT", sizes=results, data_ok=data_ok, stats=_rt_ep_summary(ep),
              info=ctx.info())


# ---------------------------------------------------------------- TCP


def _tcp_listen(spec):
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((spec["bind"], 0))
    srv.listen(1)
    _emit("READY", port=srv.getsockname()[1])
    srv.settimeout(spec["timeout"])
    try:
        conn, _ = srv.accept()
    except socket.timeout:
        raise PerfError("TCP server: no client connected") from None
    finally:
        srv.close()
    conn.settimeout(None)  # blocking: no poll() before every recv
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return conn


def _tcp_connect(spec):
    s = socket.create_connection((spec["peer"], spec["server"]["port"]),
                                 timeout=spec["timeout"],
                                 source_address=(spec["bind"], 0))
    s.settimeout(None)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def _recv_exact(sock, mv, n):
    got = 0
    while got < n:
        k = sock.recv_into(mv[got:n], n - got)
        if k == 0:
            return got
        got += k
    return got


def _tcp_pingpong_server(spec):
    size = spec["size"]
    conn = _tcp_listen(spec)
    buf = bytearray(size)
    mv = memoryview(buf)
    msg = bytes(_pattern(size))
    recv_into, sendall = conn.recv_into, conn.sendall
    replies = 0
    with conn:
        while True:
            k = recv_into(buf, size)
            if k == 0:
                break
            while k < size:
                r = recv_into(mv[k:], size - k)
                if r == 0:
                    raise PerfError("TCP server: connection closed mid-message")
                k += r
            sendall(msg)
            replies += 1
    _emit("RESULT", replies=replies)


def _tcp_pingpong_client(spec):
    size, iters, warmup = spec["size"], spec["iters"], spec["warmup"]
    s = _tcp_connect(spec)
    buf = bytearray(size)
    mv = memoryview(buf)
    msg = bytes(_pattern(size))
    recv_into, sendall = s.recv_into, s.sendall
    clock = time.perf_counter_ns
    lat = []
    t_start = time.perf_counter()
    cpu0 = _cpu()
    with s:
        for i in range(iters + warmup):
            t0 = clock()
            sendall(msg)
            k = recv_into(buf, size)
            while k < size:
                r = recv_into(mv[k:], size - k)
                if r == 0:
                    raise PerfError("TCP client: connection closed mid-message")
                k += r
            t1 = clock()
            if i >= warmup:
                lat.append(t1 - t0)
        elapsed = time.perf_counter() - t_start
        cpu = _cpu_delta(cpu0, iters + warmup)
    _emit("RESULT", lat_ns=_lat_summary(lat), elapsed_s=elapsed, cpu=cpu)


def _tcp_bw_server(spec):
    plan = _bw_plan(spec)
    max_size = max(s for s, _, _ in plan)
    conn = _tcp_listen(spec)
    dst = bytearray(max_size)
    # fault the pages in up front, as rtransport's registration does
    # (MADV_POPULATE_WRITE), so the baseline pays no page clears either
    memoryview(dst).cast("B")[::4096] = b"\x01" * len(range(0, max_size, 4096))
    mv = memoryview(dst)
    hdr = bytearray(16)
    hmv = memoryview(hdr)
    ok = None
    received = 0
    with conn:
        while True:
            if _recv_exact(conn, hmv, 16) != 16:
                raise PerfError("TCP server: connection closed")
            size, count = struct.unpack("!QQ", hdr)
            if size == 0:  # done: count is the crc of the last message
                break
            for _ in range(count):
                if _recv_exact(conn, mv, size) != size:
                    raise PerfError("TCP server: connection closed mid-message")
                received += 1
            last_size = size
            conn.sendall(b"A")
        ok = zlib.crc32(mv[:last_size]) == count
        conn.sendall(b"1" if ok else b"0")
    _emit("RESULT", data_ok=ok, received_msgs=received)


def _tcp_bw_client(spec):
    plan = _bw_plan(spec)
    max_size = max(s for s, _, _ in plan)
    s = _tcp_connect(spec)
    src = _pattern(max_size)
    mv = memoryview(src)
    ack = bytearray(1)
    results = []
    with s:
        def phase(size, count):
            s.sendall(struct.pack("!QQ", size, count))
            for _ in range(count):
                s.sendall(mv[:size])
            if s.recv_into(ack, 1) != 1:
                raise PerfError("TCP client: connection closed")

        last_size = None
        for size, warm, n in plan:
            phase(size, warm)
            cpu0 = _cpu()
            t0 = time.perf_counter()
            phase(size, n)
            t1 = time.perf_counter()
            cpu = _cpu_delta(cpu0, n)
            results.append({"size": size, "iters": n, "seconds": t1 - t0,
                            "bytes": size * n, "gbps": size * n * 8 / (t1 - t0) / 1e9,
                            "cpu_s_per_gb": (cpu["user_s"] + cpu["sys_s"]) / (size * n / 1e9),
                            "cpu": cpu})
            last_size = size
        s.sendall(struct.pack("!QQ", 0, zlib.crc32(mv[:last_size])))
        ok = s.recv(1) == b"1"
    _emit("RESULT", sizes=results, data_ok=ok)


# ---------------------------------------------------------------- C loops (--api c)
# rt_perf_pingpong / rt_perf_tcp_pingpong: the same perftest-style loop in
# C for both transports, so neither side pays for the interpreter.


def _need_c_loops():
    from rtransport import lib
    if not hasattr(lib, "rt_perf_pingpong") or not hasattr(lib, "rt_perf_tcp_pingpong"):
        raise PerfError("this rtransport build has no C benchmark loops "
                        "(rt_perf_pingpong); use --api py")
    return lib


def _rt_pingpong_c(spec, initiator: bool):
    import rtransport as rt
    from rtransport import ffi
    lib = _need_c_loops()
    size, total = spec["size"], spec["iters"] + spec["warmup"]
    with _rt_context(spec) as ctx:
        ep = ctx.endpoint()
        buf = ctx.register(bytearray(2 * size), rt.Access.LOCAL_WRITE)
        hello = ctx.register(bytearray(CTRL_SIZE), rt.Access.LOCAL_WRITE)
        dl = _Deadline(spec["timeout"], "rtransport C ping-pong handshake")
        # handshake with the Python API: the passive side learns its peer
        if initiator:
            peer = ep.connect(bytes.fromhex(spec["server"]["addr"]))
            ep.post_recv(hello, 0, CTRL_SIZE, wr_id=CTRL_WR)
            ep.post_send(peer, hello, 0, CTRL_SIZE, wr_id=SEND_WR)
            need = {CTRL_WR, SEND_WR}
        else:
            ep.post_recv(hello, 0, CTRL_SIZE, wr_id=CTRL_WR)
            _emit("READY", addr=ep.address.hex(), info=ctx.info())
            need = {CTRL_WR}
            peer = None
        while need:
            for c in ep.cq.wait(0.05):
                _check_comp(c, "handshake")
                need.discard(c.wr_id)
                if c.wr_id == CTRL_WR and not initiator:
                    peer = c.peer
                    ep.post_send(peer, hello, 0, CTRL_SIZE, wr_id=SEND_WR)
                    need.add(SEND_WR)
            dl.check()
        rtt = ffi.new("uint64_t[]", total) if initiator else ffi.NULL
        cpu0 = _cpu()
        t0 = time.perf_counter()
        rc = lib.rt_perf_pingpong(ep._ptr, peer.id, buf._ptr, size, total, int(initiator),
                                  rtt, int(spec["timeout"] * 1e6))
        elapsed = time.perf_counter() - t0
        cpu = _cpu_delta(cpu0, total)
        rt.check(rc)
        _linger(ctx, ep)
        if initiator:
            lat = [rtt[i] for i in range(spec["warmup"], total)]
            _emit("RESULT", lat_ns=_lat_summary(lat), elapsed_s=elapsed, cpu=cpu,
                  stats=_rt_ep_summary(ep), info=ctx.info())
        else:
            _emit("RESULT", replies=total, stats=_rt_ep_summary(ep))


def _tcp_pingpong_c(spec, initiator: bool):
    from rtransport import ffi
    lib = _need_c_loops()
    size, total = spec["size"], spec["iters"] + spec["warmup"]
    sock = _tcp_connect(spec) if initiator else _tcp_listen(spec)
    buf = ffi.new("uint8_t[]", size)
    rtt = ffi.new("uint64_t[]", total) if initiator else ffi.NULL
    with sock:
        cpu0 = _cpu()
        t0 = time.perf_counter()
        rc = lib.rt_perf_tcp_pingpong(sock.fileno(), buf, size, total, int(initiator), rtt)
        elapsed = time.perf_counter() - t0
        cpu = _cpu_delta(cpu0, total)
    if rc:
        import rtransport as rt
        rt.check(rc)
    if initiator:
        lat = [rtt[i] for i in range(spec["warmup"], total)]
        _emit("RESULT", lat_ns=_lat_summary(lat), elapsed_s=elapsed, cpu=cpu)
    else:
        _emit("RESULT", replies=total)


def _linger(ctx, ep, seconds: float = 0.02):
    """Keep driving progress briefly before closing, so that acknowledgements
    the transport still holds (e.g. for the last message received) go out.
    Works around: closing right after the last RECV completion can leave
    the peer's last SEND unacknowledged (it then fails with TIMEOUT)."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        ctx.progress()


_WORKERS = {
    ("rt", "pingpong", "server", "c"): lambda spec: _rt_pingpong_c(spec, False),
    ("rt", "pingpong", "client", "c"): lambda spec: _rt_pingpong_c(spec, True),
    ("tcp", "pingpong", "server", "c"): lambda spec: _tcp_pingpong_c(spec, False),
    ("tcp", "pingpong", "client", "c"): lambda spec: _tcp_pingpong_c(spec, True),
    ("rt", "pingpong", "server", "py"): _rt_pingpong_server,
    ("rt", "pingpong", "client", "py"): _rt_pingpong_client,
    ("rt", "pingpong", "server", "cffi"): _rt_pingpong_server_cffi,
    ("rt", "pingpong", "client", "cffi"): _rt_pingpong_client_cffi,
    ("rt", "bw", "server", "py"): _rt_bw_server,
    ("rt", "bw", "client", "py"): _rt_bw_client,
    ("tcp", "pingpong", "server", "py"): _tcp_pingpong_server,
    ("tcp", "pingpong", "client", "py"): _tcp_pingpong_client,
    ("tcp", "bw", "server", "py"): _tcp_bw_server,
    ("tcp", "bw", "client", "py"): _tcp_bw_client,
}


def _worker_main(spec_json: str) -> int:
    spec = json.loads(spec_json)
    key = (spec["kind"], spec["test"], spec["role"], spec.get("api", "py"))
    fn = _WORKERS.get(key)
    if fn is None:
        _emit("ERROR", error=f"no worker for {key}")
        return 2
    if spec.get("cpu") is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {spec["cpu"]})
    try:
        fn(spec)
    except PerfError as e:
        _emit("ERROR", error=str(e))
        return 1
    except Exception as e:  # report anything to the orchestrator
        import traceback
        traceback.print_exc()
        _emit("ERROR", error=f"{type(e).__name__}: {e}")
        return 1
    return 0


# ==========================================================================
# orchestration


def _pkg_root() -> str:
    import rtransport
    return os.path.dirname(os.path.dirname(os.path.abspath(rtransport.__file__)))


class _Worker:
    """One worker process; reads its @@RTPERF lines with deadlines."""

    def __init__(self, spec: dict, netns: str | None, label: str):
        self.label = label
        cmd = [sys.executable, "-m", "rtransport.perf", "_worker", json.dumps(spec)]
        if netns:
            cmd = ["ip", "netns", "exec", netns] + cmd
        env = dict(os.environ)
        root = _pkg_root()
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        env.setdefault("PYTHONUNBUFFERED", "1")
        self.err = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=self.err, env=env, start_new_session=True)
        os.set_blocking(self.proc.stdout.fileno(), False)
        self._buf = b""
        self._lines: list[bytes] = []

    def stderr_tail(self, n=2000) -> str:
        try:
            self.err.seek(0)
            data = self.err.read().decode(errors="replace")
        except (OSError, ValueError):
            return ""
        return data[-n:].strip()

    def _fail(self, what: str):
        tail = self.stderr_tail()
        msg = f"{self.label}: {what}"
        if tail:
            msg += "\n    " + tail.replace("\n", "\n    ")
        raise PerfError(msg)

    def read(self, deadline: float) -> dict:
        """The next @@RTPERF message (READY/RESULT); raises on ERROR,
        early exit or timeout."""
        fd = self.proc.stdout.fileno()
        sel = selectors.DefaultSelector()
        sel.register(fd, selectors.EVENT_READ)
        try:
            while True:
                while self._lines:
                    line = self._lines.pop(0).decode(errors="replace")
                    if line.startswith(MARK):
                        msg = json.loads(line[len(MARK):])
                        if msg.get("msg") == "ERROR":
                            self._fail(msg.get("error", "error"))
                        return msg
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self._fail("timed out waiting for the worker")
                if not sel.select(min(remaining, 0.5)):
                    continue
                try:
                    chunk = os.read(fd, 65536)
                except BlockingIOError:
                    continue
                if not chunk:
                    rc = self.proc.wait(timeout=5)
                    self._fail(f"exited with status {rc} before reporting")
                self._buf += chunk
                *lines, self._buf = self._buf.split(b"\n")
                self._lines.extend(lines)
        finally:
            sel.close()

    def finish(self, deadline: float):
        try:
            rc = self.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self._fail("did not exit")
        if rc != 0:
            self._fail(f"exited with status {rc}")

    def kill(self):
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                self.proc.kill()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        self.proc.stdout.close()
        self.err.close()


def _cpu_times() -> tuple[float, float, float]:
    """(busy, steal, wall) seconds: busy summed over all CPUs (/proc/stat)."""
    tck = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return 0.0, 0.0, time.monotonic()
    v += [0] * (8 - len(v))
    user, nice, system, idle, iowait, irq, softirq, steal = v[:8]
    return (user + nice + system + irq + softirq) / tck, steal / tck, time.monotonic()


def _own_cpu() -> float:
    import resource
    a = resource.getrusage(resource.RUSAGE_SELF)
    b = resource.getrusage(resource.RUSAGE_CHILDREN)
    return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime


def _wait_idle(seconds: float, args) -> float | None:
    """Wait (at most ``seconds``) until other processes leave the CPUs
    mostly idle; returns the last measured busy share (0..1)."""
    if seconds <= 0:
        return None
    ncpu = os.cpu_count() or 1
    end = time.monotonic() + seconds
    while True:
        b0, _, w0 = _cpu_times()
        time.sleep(1.0)
        b1, _, w1 = _cpu_times()
        busy = (b1 - b0) / max(1e-9, (w1 - w0) * ncpu)
        if busy <= 0.10 or time.monotonic() >= end:
            if busy > 0.10:
                _progress_note(args, f"machine still {busy:.0%} busy; measuring anyway",
                               force=True)
            return busy
        _progress_note(args, f"waiting for an idle machine ({busy:.0%} busy)")


def _run_pair(spec: dict, env: "_PathEnv", timeout: float, label: str) -> tuple[dict, dict]:
    """Start the server, then the client with the server's READY; return
    (client RESULT, server RESULT).  The client result gets ``background``:
    the share of all CPUs that *other* processes used meanwhile."""
    b0, st0, w0 = _cpu_times()
    own0 = _own_cpu()
    cres, sres = _run_pair_inner(spec, env, timeout, label)
    b1, st1, w1 = _cpu_times()
    ncpu = os.cpu_count() or 1
    span = max(1e-9, (w1 - w0) * ncpu)
    cres["background"] = max(0.0, ((b1 - b0) - (_own_cpu() - own0)) / span)
    cres["steal"] = (st1 - st0) / span
    return cres, sres


def _run_pair_inner(spec: dict, env: "_PathEnv", timeout: float,
                    label: str) -> tuple[dict, dict]:
    deadline = time.monotonic() + timeout
    sspec = dict(spec, role="server", bind=env.server_ip, peer=env.client_ip,
                 cpu=spec.get("server_cpu"))
    server = _Worker(sspec, env.server_ns, f"{label} server")
    client = None
    try:
        ready = server.read(min(deadline, time.monotonic() + 30))
        cspec = dict(spec, role="client", bind=env.client_ip, peer=env.server_ip,
                     server=ready, cpu=spec.get("client_cpu"))
        client = _Worker(cspec, env.client_ns, f"{label} client")
        cres = client.read(deadline)
        sres = server.read(deadline)
        client.finish(deadline)
        server.finish(deadline)
        cres["server_ready"] = ready
        return cres, sres
    finally:
        if client is not None:
            client.kill()
        server.kill()


class _PathEnv:
    """Where the two processes run: loopback, or two namespaces + veth."""

    def __init__(self, path: str, link_mtu: int):
        self.path = path
        self.link_mtu = link_mtu
        self.client_ns = self.server_ns = None
        self.client_ip = self.server_ip = "127.0.0.1"
        self._created: list[str] = []
        self._veth = None

    def describe(self) -> str:
        if self.path == "loopback":
            return "loopback (127.0.0.1 <-> 127.0.0.1)"
        return (f"netns {self.client_ns} ({self.client_ip}) <-veth mtu {self.link_mtu}-> "
                f"{self.server_ns} ({self.server_ip})")

    def __enter__(self):
        if self.path == "loopback":
            return self
        if os.geteuid() != 0:
            raise PerfError("--path netns needs root (it creates network namespaces and a "
                            "veth pair); run it as root or use --path loopback")
        if shutil.which("ip") is None:
            raise PerfError("--path netns needs the 'ip' tool (iproute2)")
        tag = f"{os.getpid() % 100000:05d}{secrets.token_hex(1)}"
        prefix = f"rtperf-{tag}"
        self.client_ns, self.server_ns = f"{prefix}-c", f"{prefix}-s"
        self.client_ip, self.server_ip = NETNS_IPS
        vc, vs = f"rtp{tag}c", f"rtp{tag}s"  # <= 15 characters
        self._veth = vc
        try:
            for ns in (self.client_ns, self.server_ns):
                self._ip("netns", "add", ns)
                self._created.append(ns)
            self._ip("link", "add", vc, "type", "veth", "peer", "name", vs)
            self._ip("link", "set", vc, "netns", self.client_ns)
            self._ip("link", "set", vs, "netns", self.server_ns)
            for ns, dev, ip in ((self.client_ns, vc, self.client_ip),
                                (self.server_ns, vs, self.server_ip)):
                self._ip("-n", ns, "link", "set", "lo", "up")
                self._ip("-n", ns, "link", "set", dev, "mtu", str(self.link_mtu))
                self._ip("-n", ns, "addr", "add", f"{ip}/24", "dev", dev)
                self._ip("-n", ns, "link", "set", dev, "up")
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    @staticmethod
    def _ip(*args):
        r = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
        if r.returncode != 0:
            raise PerfError(f"'ip {' '.join(args)}' failed: {r.stderr.strip()}")

    def __exit__(self, *exc):
        for ns in reversed(self._created):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)
        self._created.clear()
        if self._veth:  # normally gone with its namespace
            subprocess.run(["ip", "link", "del", self._veth], capture_output=True, timeout=30)
            self._veth = None
        return False


# ---------------------------------------------------------------- configs


def _rt_configs(args) -> list[dict]:
    out = []
    for api in args.api:
        for prog in args.progress:
            for bp in args.busy_poll_us:
                for cc in args.cc:
                    cfg = {"progress": prog, "busy_poll_us": bp, "api": api}
                    if cc is not None:
                        cfg["cc"] = cc
                    out.append(cfg)
    return out


def _cfg_label(cfg: dict) -> str:
    s = f"progress={cfg['progress']}"
    if cfg.get("busy_poll_us") is not None:
        s += f" busy_poll_us={cfg['busy_poll_us']}"
    if cfg.get("cc") is not None:
        s += f" cc={cfg['cc']}"
    if cfg.get("api", "py") != "py":
        s += f" api={cfg['api']}"
    return s


def _machine() -> dict:
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        import rtransport
        ver = rtransport.__version__
    except Exception:  # pragma: no cover
        ver = "?"
    try:
        mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        mem = None
    return {"hostname": platform.node(), "kernel": platform.release(),
            "cpus": os.cpu_count(), "cpu_model": cpu, "memory_bytes": mem,
            "python": platform.python_version(), "rtransport": ver,
            "package": _pkg_root()}


def _measure(args, env, base: dict) -> tuple[dict, dict]:
    """Run every (transport, settings) pair ``--repeat`` times, interleaved
    (TCP, rt configs, TCP, rt configs, ...) so that slow drifts of the
    machine hit all of them alike.  Returns ({key: [run, ...]}, {key: (kind, cfg)})."""
    order = []
    if "tcp" in args.transports:
        # the TCP baseline in each language used (cffi rows compare with py)
        order += [("tcp", {"api": api}) for api in ("py", "c")
                  if api in args.api or (api == "py" and "cffi" in args.api)]
    if "rt" in args.transports:
        order += [("rt", cfg) for cfg in _rt_configs(args)]
    runs: dict[str, list] = {}
    labels: dict[str, tuple] = {}
    for rep in range(args.repeat):
        for kind, cfg in order:
            key = _key(kind, cfg)
            labels[key] = (kind, cfg)
            spec = dict(base, kind=kind, api=cfg.get("api", "py"),
                        progress=cfg.get("progress"), busy_poll_us=cfg.get("busy_poll_us"),
                        cc=cfg.get("cc"),
                        client_cpu=args.client_cpu, server_cpu=args.server_cpu)
            idle = _wait_idle(args.wait_idle, args)
            _progress_note(args, f"{base['test']} {key} (run {rep + 1}/{args.repeat})")
            cres, sres = _run_pair(spec, env, args.timeout, key)
            cres["busy_before"] = idle
            runs.setdefault(key, []).append({"client": cres, "server": sres})
    return runs, labels


def _key(kind: str, cfg: dict) -> str:
    if kind == "tcp":
        return "tcp" if cfg.get("api", "py") == "py" else f"tcp api={cfg['api']}"
    return "rt " + _cfg_label(cfg)


def _server_cpu_per(sres: dict, count_key: str | None = None, count: int | None = None):
    c = sres.get("cpu_since_ready")
    n = sres.get(count_key) if count_key else count
    if not c or not n:
        return None
    return (c["user"] + c["sys"]) / n * (1e6 if count_key else 1.0)


def _background(rs) -> dict:
    bg = [r["client"].get("background", 0.0) for r in rs]
    st = [r["client"].get("steal", 0.0) for r in rs]
    return {"background_max": max(bg), "background_median": _median(bg),
            "runs_background": bg, "steal_max": max(st)}


# ---------------------------------------------------------------- pingpong


def _do_pingpong(args, env) -> dict:
    base = {"test": "pingpong", "size": args.size, "iters": args.iters,
            "warmup": args.warmup, "mtu": args.mtu, "timeout": args.timeout}
    runs, labels = _measure(args, env, base)
    rows = []
    for key, rs in runs.items():
        kind, cfg = labels[key]
        lats = [r["client"]["lat_ns"] for r in rs]
        api = cfg.get("api", "py")
        tcp_settings = "1 stream, TCP_NODELAY" + ("" if api == "py" else f" api={api}")
        row = {"transport": "tcp" if kind == "tcp" else "rtransport",
               "settings": tcp_settings if kind == "tcp" else _cfg_label(cfg),
               "config": cfg if kind == "rt" else {"nodelay": True, "api": api},
               "p50_us": _median([l["p50"] for l in lats]) / 1e3,
               "p99_us": _median([l["p99"] for l in lats]) / 1e3,
               "mean_us": _median([l["mean"] for l in lats]) / 1e3,
               "min_us": min(l["min"] for l in lats) / 1e3,
               "runs_p50_us": [l["p50"] / 1e3 for l in lats],
               "runs_p99_us": [l["p99"] / 1e3 for l in lats],
               "client_cpu_us_per_rtt": _median(
                   [r["client"].get("cpu", {}).get("us_per_op") for r in rs]),
               "server_cpu_us_per_rtt": _median([_server_cpu_per(r["server"], "replies")
                                                 for r in rs])}
        row.update(_background(rs))
        if kind == "rt":
            row["stats"] = rs[-1]["client"].get("stats")
            row["server_stats"] = rs[-1]["server"].get("stats")
            row["context"] = rs[-1]["client"].get("info")
        rows.append(row)
    # each row against the TCP baseline run in the same language
    # (Python for py and cffi rows, C for api=c rows)
    tcp_by_api = {r["config"]["api"]: r for r in rows if r["transport"] == "tcp"}
    for r in rows:
        api = r["config"].get("api", "py")
        t = tcp_by_api.get("c" if api == "c" else "py")
        r["baseline"] = t["settings"] if t else None
        r["ratio_p50"] = r["p50_us"] / t["p50_us"] if t else None
        r["ratio_p99"] = r["p99_us"] / t["p99_us"] if t else None
    result = {"rows": rows}
    targets = []
    for api, what in (("c", "C loops on both sides"), ("py", "Python on both sides")):
        rts = [r for r in rows if r["transport"] == "rtransport"
               and r["config"].get("api", "py") == api and r["ratio_p50"] is not None]
        if rts:
            best = min(rts, key=lambda r: r["p50_us"])
            targets.append({"metric": f"rtransport p50 / TCP p50 ({what})",
                            "max": TARGET_RTT_RATIO, "best_settings": best["settings"],
                            "value": best["ratio_p50"],
                            "met": best["ratio_p50"] <= TARGET_RTT_RATIO})
    if targets:
        result["target"] = targets[0]
        result["targets"] = targets
    return result


def _header_lines(doc) -> list[str]:
    pr = doc["params"]
    rep = f", median of {pr['repeat']} runs" if pr.get("repeat", 1) > 1 else ""
    if doc["test"] == "pingpong":
        first = (f"rtransport perf pingpong: {pr['size']} B messages, {pr['iters']} round "
                 f"trips (+{pr['warmup']} warm-up), rtransport mtu {pr['mtu']}{rep}")
        apis = pr.get("api") or pr.get("rt_api") or ["py"]
        parts = []
        if "py" in apis or "cffi" in apis:
            parts.append("Python on both sides: rtransport through its Python API "
                         "(post_send/post_recv/cq.wait), TCP through the socket module "
                         "(TCP_NODELAY, blocking recv_into)")
        if "cffi" in apis:
            parts.append("api=cffi rows run the same rtransport loop on the thin 1:1 "
                         "binding (rtransport.lib) instead of the Python classes - a "
                         "diagnostic, compared with the Python TCP loop")
        if "c" in apis:
            parts.append("api=c rows run both transports' loops in C (rt_perf_pingpong, "
                         "rt_perf_tcp_pingpong: blocking send/recv for TCP, the rtransport "
                         "side spins on its CQ) and are compared with each other")
        how = "; ".join(parts)
    else:
        iters = pr["iters"] if pr.get("iters") else f"auto (~{fmt_size(BW_TARGET_BYTES)} per size)"
        first = (f"rtransport perf bw: one-way bandwidth, messages per size {iters}, "
                 f"rtransport mtu {pr['mtu']}, op={pr['op']}, {pr['inflight']} messages "
                 f"in flight{rep}")
        how = ("both sides are Python: rtransport through its Python API, TCP through the "
               "socket module (sendall / recv_into of whole messages, one stream); the "
               "clock stops when the sender knows the last byte arrived")
    procs = "2 processes (server, client) per transport and setting"
    if pr.get("client_cpu") is not None or pr.get("server_cpu") is not None:
        procs += f", pinned: client CPU {pr.get('client_cpu')}, server CPU {pr.get('server_cpu')}"
    return [first, f"path: {doc['path_desc']}; {procs}", how]


def _bg_note(items) -> str | None:
    worst = max((x.get("background_max", 0.0) for x in items), default=0.0)
    steal = max((x.get("steal_max", 0.0) for x in items), default=0.0)
    if worst < 0.05 and steal < 0.02:
        return None
    return (f"note: other processes used up to {worst:.0%} of the CPUs during a "
            f"measurement (hypervisor steal up to {steal:.0%}); numbers are noisy")


def _print_pingpong(doc, out=sys.stdout):
    p = lambda *a: print(*a, file=out)  # noqa: E731
    res = doc["result"]
    for line in _header_lines(doc):
        p(line)
    p("")
    hdr = (f"{'transport':<11}{'settings':<40}{'p50 us':>9}{'p99 us':>9}{'mean us':>9}"
           f"{'x TCP p50':>11}{'CPU us/RTT cli+srv':>20}")
    p(hdr)
    p("-" * len(hdr))
    for r in res["rows"]:
        ratio = f"{r['ratio_p50']:.2f}" if r.get("ratio_p50") is not None else "-"
        p(f"{r['transport']:<11}{r['settings']:<40}{r['p50_us']:>9.1f}{r['p99_us']:>9.1f}"
          f"{r['mean_us']:>9.1f}{ratio:>11}{_fmt_cpu_pair(r):>20}")
    ts = res.get("targets") or ([res["target"]] if res.get("target") else [])
    if ts:
        p("")
    for t in ts:
        p(f"target (issue #2): {t['metric']} <= {t['max']:.2f} -> best "
          f"{t['value']:.2f} ({t['best_settings']}): {'MET' if t['met'] else 'MISSED'}")
    note = _bg_note(res["rows"])
    if note:
        p(note)


# ---------------------------------------------------------------- bandwidth


def _do_bw(args, env) -> dict:
    base = {"test": "bw", "sizes": args.sizes, "iters": args.iters, "mtu": args.mtu,
            "timeout": args.timeout, "op": args.op, "inflight": args.inflight}
    runs, labels = _measure(args, env, base)
    for key, rs in runs.items():
        for r in rs:
            if not r["client"].get("data_ok") or not r["server"].get("data_ok"):
                raise PerfError(f"{key}: the data that arrived does not match what was sent")
    columns = []
    total_gb = sum(size * (w + n) for size, w, n in _bw_plan(base)) / 1e9
    for key, rs in runs.items():
        kind, cfg = labels[key]
        per_size = []
        for i, size in enumerate(args.sizes):
            vals = [r["client"]["sizes"][i]["gbps"] for r in rs]
            cpu = [r["client"]["sizes"][i].get("cpu_s_per_gb") for r in rs]
            per_size.append({"size": size, "gbps": _median(vals), "runs_gbps": vals,
                             "iters": rs[0]["client"]["sizes"][i]["iters"],
                             "client_cpu_s_per_gb": _median(cpu)})
        col = {"transport": "tcp" if kind == "tcp" else "rtransport",
               "settings": "1 stream" if kind == "tcp" else
               _cfg_label(cfg) + f" op={args.op} inflight={args.inflight}",
               "config": cfg if kind == "rt" else {},
               "sizes": per_size,
               "server_cpu_s_per_gb": _median([_server_cpu_per(r["server"], count=total_gb)
                                               for r in rs])}
        col.update(_background(rs))
        if kind == "rt":
            col["stats"] = rs[-1]["client"].get("stats")
            col["server_stats"] = rs[-1]["server"].get("stats")
            col["context"] = rs[-1]["client"].get("info")
        columns.append(col)
    tcp = next((c for c in columns if c["transport"] == "tcp"), None)
    for c in columns:
        for i, s in enumerate(c["sizes"]):
            t = tcp["sizes"][i]["gbps"] if tcp else None
            s["ratio"] = s["gbps"] / t if t else None
    result = {"columns": columns}
    rts = [c for c in columns if c["transport"] == "rtransport"]
    large = [i for i, s in enumerate(args.sizes) if s >= LARGE_MSG]
    if tcp and rts and large:
        best = max(rts, key=lambda c: min(c["sizes"][i]["ratio"] for i in large))
        worst_ratio = min(best["sizes"][i]["ratio"] for i in large)
        result["target"] = {"metric": f"rtransport / TCP bandwidth, every size >= "
                                      f"{fmt_size(LARGE_MSG)}",
                            "min": TARGET_BW_RATIO, "best_settings": best["settings"],
                            "value": worst_ratio, "met": worst_ratio >= TARGET_BW_RATIO}
    return result


def _print_bw(doc, out=sys.stdout):
    p = lambda *a: print(*a, file=out)  # noqa: E731
    res = doc["result"]
    for line in _header_lines(doc):
        p(line)
    cols = res["columns"]
    has_tcp = any(c["transport"] == "tcp" for c in cols)
    p("")
    for i, c in enumerate(cols):
        p(f"  [{i}] {c['transport']}: {c['settings']}")
    p("")
    hdr = f"{'size':>10}" + "".join(
        f"{'[%d] Gb/s' % i:>12}" + ("" if c["transport"] == "tcp" or not has_tcp
                                    else f"{'x TCP':>7}")
        for i, c in enumerate(cols))
    p(hdr)
    p("-" * len(hdr))
    sizes = [s["size"] for s in cols[0]["sizes"]]
    for j, size in enumerate(sizes):
        line = f"{fmt_size(size):>10}"
        for c in cols:
            s = c["sizes"][j]
            line += f"{s['gbps']:>12.2f}"
            if c["transport"] != "tcp" and has_tcp:
                line += f"{s['ratio']:>7.2f}"
        p(line)
    p("")
    p("CPU seconds per GB moved (user+sys, all threads; spinning counts): client at "
      "each size / server overall")
    for i, c in enumerate(cols):
        per = " ".join("-" if s.get("client_cpu_s_per_gb") is None
                       else f"{s['client_cpu_s_per_gb']:.2f}" for s in c["sizes"])
        srv = c.get("server_cpu_s_per_gb")
        p(f"  [{i}] client {per} / server {'-' if srv is None else f'{srv:.2f}'}")
    t = res.get("target")
    if t:
        p("")
        p(f"target (issue #2): {t['metric']} >= {t['min']:.2f} -> best "
          f"{t['value']:.2f} x ({t['best_settings']}): {'MET' if t['met'] else 'MISSED'}")
    note = _bg_note(cols)
    if note:
        p(note)


# ---------------------------------------------------------------- Markdown


def markdown(doc: dict) -> str:
    """One Markdown section for a saved ``--json`` document."""
    m = doc["machine"]
    res = doc["result"]
    lines = []
    if doc["test"] == "overhead":
        lines += ["### Python layer overhead (one process)", "",
                  f"* command: `{doc['command']}`",
                  f"* date: {doc['date']}; machine: {m['cpus']}-core VM ({m['cpu_model']}), "
                  f"Linux {m['kernel']}, Python {m['python']}, rtransport {m['rtransport']}",
                  "* CPU microseconds per call (process_time), progress='manual', two "
                  "endpoints in one process; Python API = Endpoint/CompletionQueue, "
                  "cffi = rtransport.lib directly", "",
                  "| operation | Python API us | cffi us | difference us |",
                  "|---|---:|---:|---:|"]
        for name, v in res.items():
            lines.append(f"| {name.strip()} | {v['python_us']:.2f} | {v['cffi_us']:.2f} | "
                         f"{v['python_us'] - v['cffi_us']:.2f} |")
        lines.append("")
        return "\n".join(lines)
    pr = doc.get("params", {})
    title = "Ping-pong RTT" if doc["test"] == "pingpong" else "One-way bandwidth"
    what = []
    apis = pr.get("api") or pr.get("rt_api") or ["py"]
    if apis != ["py"]:
        what.append("loops: " + ", ".join({"py": "Python", "cffi": "cffi binding",
                                           "c": "C"}.get(a, a) for a in apis))
    bps = [b for b in pr.get("busy_poll_us") or [] if b is not None]
    if bps:
        what.append("busy_poll_us " + ", ".join(str(b) for b in bps))
    ccs = [c for c in pr.get("cc") or [] if c is not None]
    if ccs:
        what.append("cc " + ", ".join(ccs))
    if doc["test"] == "bw":
        what.append(f"{pr.get('inflight')} in flight")
        sizes = pr.get("sizes") or []
        if sizes and sizes != DEFAULT_SIZES:
            what.append("sizes " + ", ".join(fmt_size(x) for x in sizes))
    if pr.get("repeat", 1) > 1:
        what.append(f"{pr['repeat']} runs")
    lines.append(f"### {title}, {doc['path']}" + (f" ({'; '.join(what)})" if what else ""))
    lines.append("")
    lines.append(f"* command: `{doc['command']}`")
    lines.append(f"* date: {doc['date']}; machine: {m['cpus']}-core VM ({m['cpu_model']}), "
                 f"Linux {m['kernel']}, Python {m['python']}, rtransport {m['rtransport']}")
    for h in _header_lines(doc):
        lines.append(f"* {h}")
    lines.append("")
    if doc["test"] == "pingpong":
        lines.append("| transport | settings | p50 us | p99 us | mean us | p50 x TCP | "
                     "p99 x TCP | CPU us/RTT client + server | p50 of each run, us | "
                     "others' CPU (max) |")
        lines.append("|---|---|---:|---:|---:|---:|---:|---:|---|---:|")
        for r in res["rows"]:
            runs = ", ".join(f"{v:.1f}" for v in r["runs_p50_us"])
            lines.append(f"| {r['transport']} | {r['settings']} | {r['p50_us']:.1f} | "
                         f"{r['p99_us']:.1f} | {r['mean_us']:.1f} | "
                         f"{_fmt_ratio(r.get('ratio_p50'))} | {_fmt_ratio(r.get('ratio_p99'))} | "
                         f"{_fmt_cpu_pair(r)} | {runs} | {r.get('background_max', 0):.0%} |")
    else:
        cols = res["columns"]
        has_tcp = any(c["transport"] == "tcp" for c in cols)
        head = "| size |"
        sep = "|---:|"
        for i, c in enumerate(cols):
            name = "TCP" if c["transport"] == "tcp" else f"rt [{i}]"
            head += f" {name} Gb/s |"
            sep += "---:|"
            if c["transport"] != "tcp" and has_tcp:
                head += f" [{i}] x TCP |"
                sep += "---:|"
        lines.append(head)
        lines.append(sep)
        for j, s0 in enumerate(cols[0]["sizes"]):
            row = f"| {fmt_size(s0['size'])} |"
            for c in cols:
                s = c["sizes"][j]
                row += f" {s['gbps']:.2f} |"
                if c["transport"] != "tcp" and has_tcp:
                    row += f" {_fmt_ratio(s.get('ratio'))} |"
            lines.append(row)
        lines.append("")
        for i, c in enumerate(cols):
            runs = "; ".join(
                f"{fmt_size(s['size'])}: " + "/".join(f"{v:.2f}" for v in s["runs_gbps"])
                for s in c["sizes"])
            cpu = " / ".join("-" if s.get("client_cpu_s_per_gb") is None
                             else f"{s['client_cpu_s_per_gb']:.2f}" for s in c["sizes"])
            srv = c.get("server_cpu_s_per_gb")
            lines.append(f"* [{i}] {c['transport']} {c['settings']} (others' CPU up to "
                         f"{c.get('background_max', 0):.0%}); each run, Gb/s: {runs}; "
                         f"CPU s/GB client per size {cpu}, server overall "
                         f"{'-' if srv is None else f'{srv:.2f}'}")
    ts = res.get("targets") or ([res["target"]] if res.get("target") else [])
    if ts:
        lines.append("")
    for t in ts:
        lims = (f"<= {t['max']:.2f}" if "max" in t else f">= {t['min']:.2f}")
        lines.append(f"**Target** ({t['metric']} {lims}): best {t['value']:.2f} "
                     f"({t['best_settings']}) - **{'met' if t['met'] else 'missed'}**  ")
    note = _bg_note(res.get("rows") or res.get("columns"))
    if note:
        lines.append("")
        lines.append(f"_{note}_")
    lines.append("")
    return "\n".join(lines)


def _fmt_cpu_pair(r) -> str:
    c, v = r.get("client_cpu_us_per_rtt"), r.get("server_cpu_us_per_rtt")
    if c is None or v is None:
        return "-"
    return f"{c:.0f} + {v:.0f}"


def _fmt_ratio(v) -> str:
    return "-" if v is None else f"{v:.2f}"


def _print_doc(doc, out=sys.stdout):
    if doc["test"] == "pingpong":
        _print_pingpong(doc, out)
    else:
        _print_bw(doc, out)


# ---------------------------------------------------------------- overhead


def _overhead_main(argv) -> int:
    """Per-call CPU cost of the Python layer versus the thin cffi binding,
    in one process (manual progress, two endpoints on loopback)."""
    ap = argparse.ArgumentParser(
        prog="rtransport perf overhead",
        description="CPU time per call of the Python API versus the thin cffi binding "
                    "(one process, progress='manual', no scheduler in the way).")
    ap.add_argument("-n", type=int, default=4000, help="calls per measurement (default 4000)")
    ap.add_argument("--json", metavar="OUT", default=None)
    args = ap.parse_args(argv)
    import rtransport as rt
    from rtransport import ffi, lib
    n = max(100, args.n)
    res: dict = {}
    with rt.Context(progress="manual", mtu=9000) as ctx:
        a, b = ctx.endpoint(), ctx.endpoint()
        pa = a.connect(b.address)
        rmr = ctx.register(bytearray(64 * n * 2), rt.Access.LOCAL_WRITE)
        smr = ctx.register(bytearray(64), rt.Access.LOCAL_WRITE)
        ep_a, ep_b, rp, sp = a._ptr, b._ptr, rmr._ptr, smr._ptr  # diagnostic only
        wc = ffi.new("struct rt_wc[]", 16)
        cqa, cqb = a.cq._ptr, b.cq._ptr

        def cpu_us(fn, count):
            c0 = time.process_time()
            fn(count)
            return (time.process_time() - c0) / count * 1e6

        def drain(count_a, count_b, python):
            got_a = got_b = 0
            c0 = time.process_time()
            deadline = time.monotonic() + 30
            while (got_a < count_a or got_b < count_b) and time.monotonic() < deadline:
                if python:
                    got_a += len(a.cq.poll(16))
                    got_b += len(b.cq.poll(16))
                else:
                    got_a += max(0, lib.rt_cq_poll(cqa, wc, 16))
                    got_b += max(0, lib.rt_cq_poll(cqb, wc, 16))
            return (time.process_time() - c0) / max(1, got_a + got_b) * 1e6

        def py_recv(k):
            for i in range(k):
                b.post_recv(rmr, i * 64, 64, wr_id=i)

        def raw_recv(k):
            for i in range(k):
                lib.rt_post_recv(ep_b, rp, (n + i) * 64, 64, i)

        def py_send(k):
            for i in range(k):
                a.post_send(pa, smr, 0, 64, wr_id=i)

        def raw_send(k):
            pid = pa.id
            for i in range(k):
                lib.rt_post_send(ep_a, pid, sp, 0, 64, i)

        half = n // 2
        res["post_recv"] = (cpu_us(py_recv, n), cpu_us(raw_recv, n))
        s_py = cpu_us(py_send, half)
        for _ in range(20000):  # deliver (progress runs inside the polls)
            if lib.rt_ctx_progress(ctx._ptr) == 0 and len(b.cq) >= half and len(a.cq) >= half:
                break
        c_py = drain(half, half, True)
        s_raw = cpu_us(raw_send, half)
        for _ in range(20000):
            if lib.rt_ctx_progress(ctx._ptr) == 0 and len(b.cq) >= half and len(a.cq) >= half:
                break
        c_raw = drain(half, half, False)
        res["post_send"] = (s_py, s_raw)
        res["completion (poll of 16)"] = (c_py, c_raw)
        res["poll, empty queue"] = (cpu_us(lambda k: [a.cq.poll() for _ in range(k)], n),
                                    cpu_us(lambda k: [lib.rt_cq_poll(cqa, wc, 16)
                                                      for _ in range(k)], n))
        res["wait(0), empty queue"] = (
            cpu_us(lambda k: [a.cq.wait(0) for _ in range(k)], n),
            cpu_us(lambda k: [lib.rt_cq_wait(cqa, wc, 16, 0) for _ in range(k)], n))

        # in-process ping-pong: a sends, b receives (and re-posts), both
        # completions collected; no second process, no scheduler hand-off
        for i in range(16):
            b.post_recv(rmr, i * 64, 64, wr_id=1000 + i)
        while len(a.cq) or len(b.cq):
            a.cq.poll(16)
            b.cq.poll(16)
        R = lib.RT_OP_RECV

        def pp_py(k):
            for _ in range(k):
                a.post_send(pa, smr, 0, 64, wr_id=7)
                need = 2
                while need:
                    for c in b.cq.poll(16):
                        need -= 1
                        if c.opcode == R:
                            b.post_recv(rmr, 0, 64, wr_id=c.wr_id)
                    need -= len(a.cq.poll(16))

        def pp_raw(k):
            pid = pa.id
            for _ in range(k):
                lib.rt_post_send(ep_a, pid, sp, 0, 64, 7)
                need = 2
                while need:
                    m = lib.rt_cq_poll(cqb, wc, 16)
                    for j in range(max(0, m)):
                        need -= 1
                        if wc[j].opcode == R:
                            lib.rt_post_recv(ep_b, rp, 0, 64, wc[j].wr_id)
                    need -= max(0, lib.rt_cq_poll(cqa, wc, 16))

        k = max(100, n // 4)
        w0 = time.perf_counter()
        py_c = cpu_us(pp_py, k)
        py_w = (time.perf_counter() - w0) / k * 1e6
        w0 = time.perf_counter()
        raw_c = cpu_us(pp_raw, k)
        raw_w = (time.perf_counter() - w0) / k * 1e6
        res["one-way message + ack, in process"] = (py_c, raw_c)
        res["  (wall time of the same)"] = (py_w, raw_w)

    print("rtransport perf overhead: CPU microseconds per call, one process, "
          "progress='manual', mtu 9000")
    print("(Python API = rtransport.Endpoint/CompletionQueue; cffi = rtransport.lib "
          "directly; the difference is the Python object layer)")
    print()
    print(f"{'operation':<38}{'Python API':>12}{'cffi':>10}{'difference':>12}")
    print("-" * 72)
    for name, (py, raw) in res.items():
        print(f"{name:<38}{py:>12.2f}{raw:>10.2f}{py - raw:>12.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"test": "overhead", "machine": _machine(),
                       "date": datetime.datetime.now(datetime.timezone.utc)
                       .isoformat(timespec="seconds"),
                       "command": "rtransport perf overhead " + " ".join(argv),
                       "result": {k: {"python_us": v[0], "cffi_us": v[1]}
                                  for k, v in res.items()}}, f, indent=2)
    return 0


def _report_main(argv) -> int:
    ap = argparse.ArgumentParser(
        prog="rtransport perf report",
        description="Print results saved with --json again, as text or Markdown.")
    ap.add_argument("files", nargs="+", metavar="JSON")
    ap.add_argument("--markdown", action="store_true", help="Markdown sections")
    args = ap.parse_args(argv)
    try:
        return _report_files(args)
    except BrokenPipeError:  # e.g. piped into head
        sys.stdout = open(os.devnull, "w")
        return 0


def _report_files(args) -> int:
    for i, path in enumerate(args.files):
        try:
            with open(path) as f:
                doc = json.load(f)
        except (OSError, ValueError) as e:
            print(f"rtransport perf report: cannot read {path}: {e}", file=sys.stderr)
            return 1
        if args.markdown:
            print(markdown(doc))
        elif doc.get("test") == "overhead":
            print(json.dumps(doc["result"], indent=2))
        else:
            if i:
                print()
            _print_doc(doc)
    return 0


# ---------------------------------------------------------------- main


def _progress_note(args, text, force=False):
    if getattr(args, "verbose", False) or force:
        print(f"... {text}", file=sys.stderr, flush=True)


def _csv(conv):
    def parse(text):
        try:
            return [conv(x.strip()) for x in text.split(",") if x.strip()]
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
    return parse


def _busy(x: str):
    return None if x in ("default", "") else int(x)


def _optstr(x: str):
    return None if x in ("default", "") else x


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="rtransport perf",
        description="perftest-style latency/bandwidth of rtransport against a TCP "
                    "baseline measured in the same run (both in Python, two processes). "
                    "'rtransport perf report FILE.json [--markdown]' prints saved results.")
    sub = ap.add_subparsers(dest="test", metavar="TEST", required=True)

    def common(p):
        p.add_argument("--path", choices=("loopback", "netns"), default="loopback",
                       help="loopback, or two network namespaces joined by a veth "
                            "pair (needs root); default loopback")
        p.add_argument("--mtu", type=int, default=9000,
                       help="rtransport Context(mtu=...) (default 9000)")
        p.add_argument("--link-mtu", type=int, default=9000,
                       help="veth MTU with --path netns (default 9000)")
        p.add_argument("--progress", type=_csv(str), default=["thread", "manual"],
                       help="rtransport progress modes to measure, comma-separated "
                            "(default thread,manual)")
        p.add_argument("--busy-poll-us", type=_csv(_busy), default=[None],
                       help="rtransport busy_poll_us values, comma-separated "
                            "('default' = the C default)")
        p.add_argument("--cc", type=_csv(_optstr), default=[None],
                       help="rtransport congestion control(s), comma-separated, e.g. "
                            "swift,none ('default' = the library default)")
        p.add_argument("--transports", type=_csv(str), default=["tcp", "rt"],
                       help="which of tcp,rt to run (default both)")
        p.add_argument("--repeat", type=int, default=3,
                       help="run everything N times (interleaved: TCP, rtransport, TCP, "
                            "...) and report medians; this VM-class machine moves single "
                            "runs by 20-50 %% (default 3)")
        p.add_argument("--wait-idle", type=float, default=0.0, metavar="S",
                       help="before each measurement wait up to S seconds for other "
                            "processes to leave the CPUs idle (default 0: don't wait)")
        p.add_argument("--timeout", type=float, default=180.0,
                       help="seconds allowed per server/client pair (default 180)")
        p.add_argument("--client-cpu", type=int, default=None,
                       help="pin the client process to this CPU")
        p.add_argument("--server-cpu", type=int, default=None,
                       help="pin the server process to this CPU")
        p.add_argument("--json", metavar="OUT", default=None,
                       help="also write all results as JSON to OUT ('-' = stdout)")
        p.add_argument("-v", "--verbose", action="store_true",
                       help="say which measurement is running (stderr)")

    pp = sub.add_parser("pingpong", help="round-trip time of small messages")
    common(pp)
    pp.add_argument("--size", type=parse_size, default=64, help="message size (default 64)")
    pp.add_argument("--iters", type=int, default=DEFAULT_PINGPONG_ITERS,
                    help=f"timed round trips (default {DEFAULT_PINGPONG_ITERS})")
    pp.add_argument("--warmup", type=int, default=None,
                    help="untimed round trips first (default iters/10, at most 1000)")
    pp.add_argument("--api", "--rt-api", dest="api", type=_csv(str), default=["c", "py"],
                    help="benchmark loops to run, comma-separated (default c,py): c (both "
                         "transports' loops in C, as perftest does: rt_perf_pingpong / "
                         "rt_perf_tcp_pingpong), py (Python on both sides, rtransport "
                         "through its classes, TCP through the socket module), cffi "
                         "(rtransport loop on the thin binding rtransport.lib - a "
                         "diagnostic of the Python layer)")

    bw = sub.add_parser("bw", help="one-way bandwidth for large messages")
    common(bw)
    bw.add_argument("--sizes", type=_csv(parse_size), default=DEFAULT_SIZES,
                    help="message sizes, comma-separated (default 64K,256K,1M,4M,16M,64M,256M)")
    bw.add_argument("--iters", type=int, default=None,
                    help=f"messages per size (default: about {fmt_size(BW_TARGET_BYTES)} "
                         f"per size, {BW_MIN_ITERS}..{BW_MAX_ITERS})")
    bw.add_argument("--op", choices=("write", "send"), default="write",
                    help="rtransport operation (default write)")
    bw.add_argument("--inflight", type=int, default=8,
                    help="rtransport messages in flight (default 8)")
    bw.set_defaults(api=["py"])

    sub.add_parser("report", help="print saved --json results (text or --markdown)",
                   add_help=False)
    sub.add_parser("overhead", help="CPU cost per call: Python API versus the cffi "
                                    "binding (one process)", add_help=False)
    return ap


def _validate(args):
    bad = [t for t in args.transports if t not in ("tcp", "rt")]
    if bad or not args.transports:
        raise PerfError("--transports takes tcp and/or rt")
    bad = [p for p in args.progress if p not in ("thread", "manual")]
    if bad or not args.progress:
        raise PerfError("--progress takes thread and/or manual")
    bad = [a for a in args.api if a not in ("py", "cffi", "c")]
    if bad or not args.api:
        raise PerfError("--api takes py, cffi and/or c")
    if args.repeat < 1 or args.timeout <= 0 or args.wait_idle < 0:
        raise PerfError("--repeat must be >= 1, --timeout > 0, --wait-idle >= 0")
    if args.mtu < 576 or args.link_mtu < 576:
        raise PerfError("--mtu and --link-mtu must be >= 576")
    if args.test == "pingpong":
        if args.iters < 1:
            raise PerfError("--iters must be >= 1")
        if args.warmup is None:
            args.warmup = min(1000, args.iters // 10)
        if args.warmup < 0:
            raise PerfError("--warmup must be >= 0")
    else:
        if args.iters is not None and args.iters < 1:
            raise PerfError("--iters must be >= 1")
        if args.inflight < 1:
            raise PerfError("--inflight must be >= 1")
        if args.op == "send" and max(args.sizes) > 1 << 31:
            raise PerfError("--op send supports messages up to 2 GiB")


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    argv = list(argv)
    if argv[:1] == ["_worker"]:
        if len(argv) != 2:
            print("usage: python -m rtransport.perf _worker SPEC_JSON", file=sys.stderr)
            return 2
        return _worker_main(argv[1])
    if argv[:1] == ["report"]:
        return _report_main(argv[1:])
    if argv[:1] == ["overhead"]:
        return _overhead_main(argv[1:])
    args = build_parser().parse_args(argv)
    try:
        _validate(args)
    except PerfError as e:
        print(f"rtransport perf: {e}", file=sys.stderr)
        return 2

    # make SIGTERM unwind through the finally blocks (namespace teardown)
    def _term(signum, frame):
        raise SystemExit(128 + signum)
    old = signal.signal(signal.SIGTERM, _term)
    started = datetime.datetime.now(datetime.timezone.utc)
    try:
        with _PathEnv(args.path, args.link_mtu) as env:
            if args.test == "pingpong":
                res = _do_pingpong(args, env)
            else:
                res = _do_bw(args, env)
    except PerfError as e:
        print(f"rtransport perf {args.test}: FAILED: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("rtransport perf: interrupted", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, old)
    doc = {"test": args.test, "date": started.isoformat(timespec="seconds"),
           "command": "rtransport perf " + " ".join(argv),
           "machine": _machine(), "path": args.path, "path_desc": env.describe(),
           "params": {k: v for k, v in vars(args).items() if k not in ("json", "verbose")},
           "result": res}
    if args.json != "-":
        _print_doc(doc)
    if args.json:
        text = json.dumps(doc, indent=2, default=str)
        if args.json == "-":
            print(text)
        else:
            with open(args.json, "w") as f:
                f.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
