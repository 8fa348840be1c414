#!/usr/bin/env python3
"""One bulk transfer, rtransport or TCP, with a goodput time series.

Two processes meet through a rendezvous directory (they may run in
different network namespaces; the filesystem is shared):

    xfer.py serve --proto rt  --bind 10.1.2.2 --dir /tmp/rv
    xfer.py send  --proto rt  --bind 10.0.0.2 --dir /tmp/rv --bytes 1G

The receiver prints one JSON line when done: goodput, a time series of
received/acknowledged bytes in --bin-ms bins, and whether the data arrived
bit-exact.  rtransport moves the data with RDMA writes (several in flight);
completion of the last write means the bytes are placed, and a final SEND
carries the CRC of the source so the target verifies its buffer.  TCP is
one stream with sendall().  Every wait has a timeout.
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import struct
import sys
import time
import zlib

import numpy as np


def parse_size(s: str) -> int:
    s = s.strip().upper()
    mult = 1
    for suf, m in (("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if s.endswith(suf):
            s, mult = s[:-1], m
            break
    return int(float(s) * mult)


def wait_file(path: str, timeout: float) -> bytes:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            with open(path, "rb") as f:
                data = f.read()
            if data:
                return data
        except FileNotFoundError:
            pass
        time.sleep(0.01)
    raise TimeoutError(f"rendezvous file {path} did not appear within {timeout} s")


def put_file(path: str, data: bytes) -> None:
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def barrier_ready(args) -> bool:
    """With --barrier DIR: say this sender is set up (DIR/ready.<bind>), then
    wait for DIR/go, so that the senders of a multi-sender run start
    together and none of them generates its data while another transfers.
    Returns False if go did not appear within --max-seconds."""
    if not args.barrier:
        return True
    put_file(os.path.join(args.barrier, "ready." + args.bind), b"1")
    return wait_path(os.path.join(args.barrier, "go"), args.max_seconds)


def barrier_done(args) -> None:
    if args.barrier:
        put_file(os.path.join(args.barrier, "done." + args.bind), b"1")


def barrier_verify(args, idle=None) -> None:
    """With --barrier DIR: a receiver checks its data (a CRC over the whole
    buffer, CPU-heavy) only once DIR/verify exists, i.e. when every
    transfer of the run has ended; ``idle`` keeps an endpoint serving
    meanwhile."""
    if args.barrier:
        wait_path(os.path.join(args.barrier, "verify"), args.max_seconds, idle)


def wait_path(path: str, timeout: float, idle=None) -> bool:
    end = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > end:
            return False
        if idle:
            idle()
        else:
            time.sleep(0.002)
    return True


def pattern(nbytes: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=nbytes, dtype=np.uint8)


def series(events: list[tuple[float, int]], t0: float, bin_ms: float) -> list[float]:
    """Goodput per bin in Gbit/s from (time, cumulative bytes) events."""
    if not events:
        return []
    nb = int((events[-1][0] - t0) * 1000 / bin_ms) + 1
    out = [0] * nb
    last = 0
    for t, cum in events:
        b = int((t - t0) * 1000 / bin_ms)
        out[b] += cum - last
        last = cum
    return [x * 8 / (bin_ms / 1000) / 1e9 for x in out]


# ------------------------------------------------------------------ rtransport

def rt_context(args):
    import rtransport as rt
    kw = dict(bind=args.bind, mtu=args.mtu, timeout_ms=args.timeout_ms)
    if args.paths:
        kw["num_paths"] = args.paths
    if args.cc:
        kw["cc"] = args.cc
    if args.target_us:
        kw["cc_target_delay_us"] = args.target_us
    if args.spray_unit is not None:
        kw["spray_unit"] = args.spray_unit
    if args.cc_scope is not None:
        kw["cc_scope"] = {"peer": 0, "path": 1}[args.cc_scope]
    if args.busy_poll_us is not None:
        kw["busy_poll_us"] = args.busy_poll_us
    return rt.Context(**kw)


def rt_serve(args) -> dict:
    import rtransport as rt
    n = args.bytes
    with rt_context(args) as ctx:
        ep = ctx.endpoint()
        buf = np.zeros(n, dtype=np.uint8)
        mr = ctx.register(buf, rt.Access.LOCAL_WRITE | rt.Access.REMOTE_WRITE)
        ctl = np.zeros(64, dtype=np.uint8)
        cmr = ctx.register(ctl, rt.Access.LOCAL_WRITE)
        ep.post_recv(cmr, 0, 64, wr_id=1)
        sent_file = os.path.join(args.dir, "sent")
        if os.path.exists(sent_file):
            os.unlink(sent_file)  # left by an earlier run in the same --dir
        put_file(os.path.join(args.dir, "server"), ep.address + mr.descriptor())
        deadline = time.monotonic() + args.max_seconds
        while time.monotonic() < deadline:
            cs = ep.cq.wait(timeout=0.5)
            done = [c for c in cs if c.wr_id == 1]
            if done:
                c = done[0]
                if not c.ok:
                    return {"ok": False, "error": f"final message failed: {c.status}"}
                want_crc, sent = struct.unpack("<IQ", bytes(ctl[:12]))
                barrier_verify(args, lambda: ep.cq.wait(timeout=0.02))
                got_crc = zlib.crc32(memoryview(buf)) & 0xFFFFFFFF
                info = ctx.info()
                io = {k: info[k] for k in ("tx_syscalls", "tx_datagrams", "tx_segments",
                                           "rx_syscalls", "rx_datagrams", "rx_segments",
                                           "engine_loops")}
                res = {"ok": got_crc == want_crc, "bit_exact": got_crc == want_crc,
                       "bytes": sent, "stats": ep.stats(), "io": io}
                linger(ep, sent_file, args.timeout_ms / 1000 + 2)
                return res
        return {"ok": False, "error": "no final message before --max-seconds"}


def linger(ep, sent_file: str, timeout: float) -> None:
    """Keep the receiving endpoint alive until the sender has its last
    completion (it writes ``sent_file``), at most ``timeout`` seconds.

    Our last ACK may be lost (a blackholed spine eats a quarter of them);
    the sender then retransmits, and only a live endpoint can acknowledge
    again.  Leaving at once would turn one lost ACK into the sender's
    peer timeout, as with TCP without TIME_WAIT."""
    end = time.monotonic() + timeout
    while not os.path.exists(sent_file) and time.monotonic() < end:
        ep.cq.wait(timeout=0.02)


def rt_send(args) -> dict:
    import rtransport as rt
    n = args.bytes
    chunk = min(args.chunk, n)
    blob = wait_file(os.path.join(args.dir, "server"), 30)
    addr, desc = blob[:32], blob[32:]
    src = pattern(n, 7)
    crc = zlib.crc32(memoryview(src)) & 0xFFFFFFFF
    with rt_context(args) as ctx:
        ep = ctx.endpoint()
        peer = ep.connect(addr)
        mr = ctx.register(src, rt.Access.LOCAL_WRITE)
        ctl = np.zeros(64, dtype=np.uint8)
        ctl[:12] = np.frombuffer(struct.pack("<IQ", crc, n), dtype=np.uint8)
        cmr = ctx.register(ctl, rt.Access.LOCAL_WRITE)
        nchunks = (n + chunk - 1) // chunk
        posted = done = 0
        events = []
        if not barrier_ready(args):
            return {"ok": False, "error": "no go from the barrier within --max-seconds"}
        t0 = time.monotonic()
        mark = {}
        deadline = t0 + args.max_seconds
        if args.mark_file:
            put_file(args.mark_file, b"%f" % t0)
        win_every = args.window_sample_ms / 1000.0
        win_next, win_min, win_n = t0, None, 0
        while done < nchunks:
            if win_every and time.monotonic() >= win_next:
                w = sum(x["cwnd_bytes"] for x in ep.path_stats())
                win_min = w if win_min is None else min(win_min, w)
                win_n += 1
                win_next = time.monotonic() + win_every
            while posted < nchunks and posted - done < args.depth:
                off = posted * chunk
                ln = min(chunk, n - off)
                ep.post_write(peer, mr, off, ln, remote=desc, remote_offset=off, wr_id=posted)
                posted += 1
            for c in ep.cq.wait(timeout=min(0.2, win_every) if win_every else 0.2):
                if not c.ok:
                    return {"ok": False, "error": f"write {c.wr_id} failed: {c.status}",
                            "stats": ep.stats()}
                done += 1
                events.append((time.monotonic(), min(done * chunk, n)))
            if time.monotonic() > deadline:
                return {"ok": False, "error": "transfer exceeded --max-seconds", "done": done,
                        "stats": ep.stats()}
        t1 = time.monotonic()
        ep.post_send(peer, cmr, 0, 64, wr_id=1 << 40)
        final = None
        end = time.monotonic() + 15
        while final is None and time.monotonic() < end:
            for c in ep.cq.wait(timeout=0.5):
                if c.wr_id == 1 << 40:
                    final = c
        ok = final is not None and final.ok
        put_file(os.path.join(args.dir, "sent"), b"1")  # the receiver may leave now
        barrier_done(args)
        st = ep.stats()
        info = ctx.info()
        io = {k: info[k] for k in ("tx_syscalls", "tx_datagrams", "tx_segments", "tx_eagain",
                                   "rx_syscalls", "rx_datagrams", "rx_segments", "engine_loops")}
        return {"ok": ok, "final": str(final.status) if final else "no completion in 15 s",
                "seconds": t1 - t0, "io": io, "goodput_gbps": n * 8 / (t1 - t0) / 1e9,
                "series_gbps": series(events, t0, args.bin_ms), "bin_ms": args.bin_ms,
                "t0": t0, "t1": t1, "stats": st, "path_stats": ep.path_stats(),
                "min_window_bytes": win_min, "window_samples": win_n,
                "spurious_pct": 100.0 * st["duplicates"] / max(1, st["tx_packets"])}


# ------------------------------------------------------------------ TCP

def tcp_serve(args) -> dict:
    n = args.bytes
    want_crc = zlib.crc32(memoryview(pattern(n, 7)))  # before the sender connects
    buf = bytearray(n)
    # fault the pages in before the clock starts, as rtransport's
    # registration does (MADV_POPULATE_WRITE), so neither side pays page
    # clears inside the timed transfer
    np.frombuffer(buf, dtype=np.uint8).fill(1)
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((args.bind, 0))
    ls.listen(1)
    ls.settimeout(30)
    put_file(os.path.join(args.dir, "server"), f"{args.bind} {ls.getsockname()[1]}".encode())
    c, _ = ls.accept()
    c.settimeout(args.stall_timeout)
    mv = memoryview(buf)
    got = 0
    events = []
    t0 = None
    try:
        while got < n:
            k = c.recv_into(mv[got:], min(1 << 20, n - got))
            if not k:
                break
            if t0 is None:
                t0 = time.monotonic()
            got += k
            events.append((time.monotonic(), got))
    except socket.timeout:
        pass
    t1 = time.monotonic()
    barrier_verify(args)
    ok = got == n and zlib.crc32(mv) == want_crc
    t0 = t0 or t1
    return {"ok": ok, "bytes": got, "seconds": t1 - t0,
            "t0": t0, "t_last": events[-1][0] if events else t1,
            "goodput_gbps": got * 8 / max(1e-9, (events[-1][0] if events else t1) - t0) / 1e9,
            "series_gbps": series(events, t0, args.bin_ms), "bin_ms": args.bin_ms,
            "stalled": got < n}


def tcp_send(args) -> dict:
    host, port = wait_file(os.path.join(args.dir, "server"), 30).decode().split()
    s = socket.create_connection((host, int(port)), timeout=30)
    s.settimeout(args.stall_timeout)
    data = pattern(args.bytes, 7)
    if not barrier_ready(args):
        return {"ok": False, "error": "no go from the barrier within --max-seconds"}
    t0 = time.monotonic()
    if args.mark_file:
        put_file(args.mark_file, b"%f" % t0)
    try:
        s.sendall(memoryview(data))
        s.shutdown(socket.SHUT_WR)
        ok = True
    except (socket.timeout, OSError) as e:
        ok = False
    t1 = time.monotonic()
    s.close()
    barrier_done(args)
    return {"ok": ok, "seconds": t1 - t0, "t0": t0, "t1": t1,
            "goodput_gbps": args.bytes * 8 / (t1 - t0) / 1e9}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("role", choices=["serve", "send"])
    ap.add_argument("--proto", choices=["rt", "tcp"], default="rt")
    ap.add_argument("--bind", required=True)
    ap.add_argument("--dir", required=True)
    ap.add_argument("--bytes", type=parse_size, default=parse_size("256M"))
    ap.add_argument("--chunk", type=parse_size, default=parse_size("1M"))
    ap.add_argument("--depth", type=int, default=16)
    ap.add_argument("--mtu", type=int, default=9000)
    ap.add_argument("--paths", type=int, default=0)
    ap.add_argument("--cc", default=None)
    ap.add_argument("--target-us", type=int, default=0)
    ap.add_argument("--spray-unit", type=int, default=None)
    ap.add_argument("--cc-scope", choices=["peer", "path"], default=None,
                    help="one congestion window per peer or per path (default: the library's)")
    ap.add_argument("--busy-poll-us", type=int, default=None)
    ap.add_argument("--timeout-ms", type=int, default=5000)
    ap.add_argument("--bin-ms", type=float, default=10.0)
    ap.add_argument("--max-seconds", type=float, default=60.0)
    ap.add_argument("--stall-timeout", type=float, default=3.0)
    ap.add_argument("--mark-file", default=None, help="write the start time here (for failure injection)")
    ap.add_argument("--barrier", default=None,
                    help="directory shared by the processes of a multi-sender run: senders start "
                         "together when DIR/go appears, receivers verify when DIR/verify appears")
    ap.add_argument("--out", default=None, help="write the JSON result here too")
    ap.add_argument("--window-sample-ms", type=float, default=0.0,
                    help="sender: every MS ms, sum the paths' congestion windows "
                         "(path_stats cwnd_bytes); report the smallest as min_window_bytes")
    args = ap.parse_args(argv)
    if args.window_sample_ms < 0:
        ap.error(f"--window-sample-ms must be >= 0 (0 = off), not {args.window_sample_ms:g}")
    fn = {("rt", "serve"): rt_serve, ("rt", "send"): rt_send,
          ("tcp", "serve"): tcp_serve, ("tcp", "send"): tcp_send}[(args.proto, args.role)]
    try:
        res = fn(args)
    except Exception as e:  # report, do not hang
        res = {"ok": False, "error": f"{type(e).__name__}: {e}"}
    import resource
    ru = resource.getrusage(resource.RUSAGE_SELF)
    res.update(role=args.role, proto=args.proto, cpu_user_s=round(ru.ru_utime, 3),
               cpu_sys_s=round(ru.ru_stime, 3))
    line = json.dumps(res, default=str)
    if args.out:
        with open(args.out, "w") as f:
            f.write(line)
    print(line, flush=True)
    return 0 if res.get("ok") else 1


if __name__ == "__main__":
    sys.exit(main())
