"""``rtransport demo``: two local processes exchange messages and RDMA operations.

The parent starts two processes with multiprocessing ('spawn'): *bob* owns
a memory region and answers requests, *alice* drives.  They swap endpoint
addresses and region descriptors over a pipe, then over rtransport (UDP on
loopback by default):

1. send/recv          alice -> bob "hello bob", bob -> alice "hello alice"
2. RDMA write + imm   alice writes 256 KiB into bob's region; bob is told by
                      the immediate, checks the bytes and says so
3. RDMA read          alice reads bytes bob put in his region himself
4. atomics            fetch-add and compare-and-swap on bob's counter
5. latency            a few hundred 64-byte ping-pongs (send/recv)
6. bandwidth          a bulk RDMA write, several messages in flight

Everything is verified; the parent prints one line per step and exits 0,
or prints what failed and exits 1.  Every wait has a timeout.
"""

from __future__ import annotations

import argparse
import multiprocessing
import multiprocessing.connection
import os
import statistics
import struct
import sys
import time
import traceback
import zlib
from collections import deque

__all__ = ["main"]

SLOT = 256             # control message slot size
SLOTS = 16             # receive / send slots per side
SEND_BASE = 1 << 20    # wr_id of send slot k = SEND_BASE + k
WRITE_KB = 256         # step 2
READ_KB = 64           # step 3
BOARD = 16 << 20       # bob's region (bulk writes land here)
READ_OFF = 1 << 20     # where bob keeps his own data for step 3
COUNTER_OFF = BOARD    # an 8-byte counter right after the board
PING_SIZE = 64
IMM = 0xC0FFEE


class DemoError(Exception):
    pass


def _pattern(n: int, seed: int) -> bytearray:
    unit = bytes(((i * 131) + seed * 17 + 7) & 0xFF for i in range(4093))
    buf = bytearray(n)
    mv = memoryview(buf)
    k = min(n, len(unit))
    mv[:k] = unit[:k]
    while k < n:
        m = min(k, n - k)
        mv[k:k + m] = mv[:m]
        k += m
    return buf


def _fmt_bytes(n: int) -> str:
    if n >= 1 << 20 and n % (1 << 20) == 0:
        return f"{n >> 20} MiB"
    if n >= 1 << 10 and n % (1 << 10) == 0:
        return f"{n >> 10} KiB"
    return f"{n} B"


# ==========================================================================
# both processes: a small verbs-style helper over one endpoint


class _Node:
    """One endpoint with posted receive slots and a send-slot ring."""

    def __init__(self, ctx, timeout: float):
        import rtransport as rt
        self.rt = rt
        self.ctx = ctx
        self.timeout = timeout
        self.ep = ctx.endpoint()
        self.cq = self.ep.cq
        self.rbuf = bytearray(SLOTS * SLOT)
        self.rmr = ctx.register(self.rbuf, rt.Access.LOCAL_WRITE)
        self.sbuf = bytearray(SLOTS * SLOT)
        self.smr = ctx.register(self.sbuf, rt.Access.LOCAL_WRITE)
        for i in range(SLOTS):
            self.ep.post_recv(self.rmr, i * SLOT, SLOT, wr_id=i)
        self.inbox: deque = deque()   # ("msg", bytes, peer) / ("imm", completion)
        self.done: dict = {}          # wr_id -> completion of our own operations
        self.send_busy: set = set()
        self.next_slot = 0

    def _pump(self, deadline: float, what: str):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise DemoError(f"timed out after {self.timeout:g} s waiting for {what}")
        rt = self.rt
        for c in self.cq.wait(min(remaining, 0.1)):
            if not c.ok:
                raise DemoError(f"{c.opcode} failed: {c.status} ({c.status.description})")
            wr = c.wr_id
            if c.opcode == rt.Opcode.RECV:
                off = wr * SLOT
                data = bytes(self.rbuf[off:off + c.byte_len])
                self.ep.post_recv(self.rmr, off, SLOT, wr_id=wr)
                self.inbox.append(("msg", data, c.peer))
            elif c.opcode == rt.Opcode.RECV_WRITE_IMM:
                self.ep.post_recv(self.rmr, wr * SLOT, SLOT, wr_id=wr)
                self.inbox.append(("imm", c, c.peer))
            elif SEND_BASE <= wr < SEND_BASE + SLOTS:
                self.send_busy.discard(wr - SEND_BASE)
            else:
                self.done[wr] = c

    def send(self, peer, data: bytes):
        if len(data) > SLOT:
            raise ValueError("control message too long")
        deadline = time.monotonic() + self.timeout
        slot = self.next_slot
        while slot in self.send_busy:
            self._pump(deadline, "a free send slot")
        self.next_slot = (slot + 1) % SLOTS
        off = slot * SLOT
        self.sbuf[off:off + len(data)] = data
        self.send_busy.add(slot)
        self.ep.post_send(peer, self.smr, off, len(data), wr_id=SEND_BASE + slot)

    def next_event(self, what: str):
        deadline = time.monotonic() + self.timeout
        while not self.inbox:
            self._pump(deadline, what)
        return self.inbox.popleft()

    def next_msg(self, what: str) -> tuple[bytes, object]:
        kind, data, peer = self.next_event(what)
        if kind != "msg":
            raise DemoError(f"expected a message ({what}), got {data!r}")
        return data, peer

    def wait_op(self, wr_id: int, what: str):
        deadline = time.monotonic() + self.timeout
        while wr_id not in self.done:
            self._pump(deadline, what)
        return self.done.pop(wr_id)

    def drain_sends(self, what: str = "the last sends to be acknowledged"):
        deadline = time.monotonic() + self.timeout
        while self.send_busy:
            self._pump(deadline, what)

    def linger(self, seconds: float = 0.02):
        """Drive progress a little longer before closing, so that the
        acknowledgement of the last message received leaves too (the
        transport may hold it briefly to piggyback it on a reply)."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.ctx.progress()


def _context(opts):
    import rtransport as rt
    return rt.Context(bind=opts["bind"], mtu=opts["mtu"], progress=opts["progress"])


# ==========================================================================
# bob: owns the region, answers


def _bob(peer_conn, report, opts):
    step = "setup"
    try:
        import rtransport as rt
        with _context(opts) as ctx:
            node = _Node(ctx, opts["step_timeout"])
            region = bytearray(BOARD + 8)
            mr = ctx.register(region, rt.Access.LOCAL_WRITE | rt.Access.REMOTE_WRITE |
                              rt.Access.REMOTE_READ | rt.Access.REMOTE_ATOMIC)
            mine = _pattern(READ_KB << 10, seed=2)          # bob's own data (step 3)
            region[READ_OFF:READ_OFF + len(mine)] = mine
            struct.pack_into("<Q", region, COUNTER_OFF, 100)  # the counter (step 4)
            step = "addresses"
            peer_conn.send({"addr": node.ep.address, "desc": mr.descriptor(),
                            "where": f"{ctx.bind}:{ctx.port}", "pid": os.getpid()})
            if not peer_conn.poll(opts["step_timeout"]):
                raise DemoError("alice's address did not arrive over the pipe")
            peer_conn.recv()  # alice's card (bob only answers, but it is an exchange)
            pings = 0
            while True:
                step = "serving"
                kind, data, peer = node.next_event("alice's next request")
                if kind == "imm":  # step 2 / 6: a write landed, check it
                    c = data
                    step = "write+imm" if c.imm == IMM else "bandwidth"
                    n = c.byte_len
                    crc = zlib.crc32(memoryview(region)[:n])
                    want = zlib.crc32(_pattern(n, seed=1))
                    verdict = b"write-ok" if crc == want else b"write-bad"
                    node.send(peer, verdict + struct.pack("<IIQ", c.imm, crc, n))
                    continue
                if data == b"hello bob":
                    node.send(peer, b"hello alice")
                elif data.startswith(b"ping"):
                    pings += 1
                    node.send(peer, b"pong" + data[4:])
                elif data == b"bye":
                    value = struct.unpack_from("<Q", region, COUNTER_OFF)[0]
                    node.send(peer, b"bye" + struct.pack("<Q", value))
                    node.drain_sends()
                    node.linger()
                    report.send(("info", "bob", f"answered {pings} pings; counter is {value}"))
                    break
                else:
                    raise DemoError(f"unexpected message {data[:32]!r}")
        report.send(("done", "bob", ""))
    except BaseException as e:  # tell the parent, whatever it was
        _report_failure(report, "bob", step, e)
        sys.exit(1)


# ==========================================================================
# alice: drives


def _alice(peer_conn, report, opts):
    step = "setup"
    ev = lambda key, text: report.send(("ok", key, text))  # noqa: E731
    try:
        import rtransport as rt
        with _context(opts) as ctx:
            node = _Node(ctx, opts["step_timeout"])
            ep = node.ep
            info = ctx.info()

            # -- 1. addresses over the pipe
            step = "addresses"
            peer_conn.send({"addr": ep.address, "where": f"{ctx.bind}:{ctx.port}",
                            "pid": os.getpid()})
            if not peer_conn.poll(opts["step_timeout"]):
                raise DemoError("bob's address did not arrive over the pipe")
            card = peer_conn.recv()
            bob = ep.connect(card["addr"])
            remote = rt.RemoteRegion(card["desc"])
            ev("addresses", f"exchanged over a pipe: alice {ctx.bind}:{ctx.port} "
                            f"(pid {os.getpid()}), bob {card['where']} (pid {card['pid']})")

            # -- 2. send / recv
            step = "send/recv"
            t0 = time.perf_counter()
            node.send(bob, b"hello bob")
            reply, _ = node.next_msg("bob's reply")
            dt = time.perf_counter() - t0
            if reply != b"hello alice":
                raise DemoError(f"bob answered {reply!r}")
            ev("send/recv", f'alice -> bob "hello bob", bob -> alice "{reply.decode()}" '
                            f"({dt * 1e3:.1f} ms, first contact)")

            # -- 3. write with immediate
            step = "write+imm"
            n = WRITE_KB << 10
            src = _pattern(BOARD, seed=1)
            smr = ctx.register(src, rt.Access.LOCAL_WRITE)
            ep.post_write(bob, smr, 0, n, remote=remote, remote_offset=0, imm=IMM, wr_id=1)
            node.wait_op(1, "the write completion")
            verdict, _ = node.next_msg("bob's check of the written data")
            imm, crc, got_n = struct.unpack("<IIQ", verdict[-16:])
            if not verdict.startswith(b"write-ok") or imm != IMM or got_n != n:
                raise DemoError(f"bob found the data wrong: {verdict!r}")
            if crc != zlib.crc32(memoryview(src)[:n]):
                raise DemoError("bob's checksum differs from what alice wrote")
            ev("write+imm", f"{_fmt_bytes(n)} into bob's region with imm {IMM:#x}; "
                            f"bob was notified and checked it (crc32 {crc:08x})")

            # -- 4. read
            step = "read"
            m = READ_KB << 10
            dst = bytearray(m)
            dmr = ctx.register(dst, rt.Access.LOCAL_WRITE)
            ep.post_read(bob, dmr, 0, m, remote=remote, remote_offset=READ_OFF, wr_id=2)
            node.wait_op(2, "the read completion")
            if dst != _pattern(m, seed=2):
                raise DemoError("the bytes read from bob's region are not bob's data")
            ep.post_read(bob, dmr, 0, n if n <= m else m, remote=remote, remote_offset=0,
                         wr_id=3)
            node.wait_op(3, "the read-back completion")
            if dst[:m] != src[:m]:
                raise DemoError("reading back alice's write gave different bytes")
            ev("read", f"{_fmt_bytes(m)} of bob's own data and {_fmt_bytes(m)} of "
                       "alice's write read back; both match")

            # -- 5. atomics
            step = "atomics"
            old = bytearray(16)
            omr = ctx.register(old, rt.Access.LOCAL_WRITE)
            ep.post_atomic_fetch_add(bob, omr, 0, remote=remote, remote_offset=COUNTER_OFF,
                                     add=5, wr_id=4)
            node.wait_op(4, "the fetch-add completion")
            ep.post_atomic_cmp_swap(bob, omr, 8, remote=remote, remote_offset=COUNTER_OFF,
                                    compare=105, swap=7, wr_id=5)
            node.wait_op(5, "the compare-and-swap completion")
            a, b = struct.unpack("<QQ", old)
            if (a, b) != (100, 105):
                raise DemoError(f"atomics returned old values {a}, {b}; expected 100, 105")
            ev("atomics", "fetch_add(+5) on bob's counter: 100 -> 105; "
                          "cmp_swap(105 -> 7): swapped")

            # -- 6. latency
            step = "latency"
            rtts = []
            ping = b"ping" + bytes(PING_SIZE - 4)
            for i in range(opts["pings"] + 20):
                t0 = time.perf_counter_ns()
                node.send(bob, ping)
                pong, _ = node.next_msg("a pong")
                t1 = time.perf_counter_ns()
                if pong[:4] != b"pong" or len(pong) != PING_SIZE:
                    raise DemoError(f"bad pong {pong[:16]!r}")
                if i >= 20:
                    rtts.append((t1 - t0) / 1e3)
            rtts.sort()
            p50 = statistics.median(rtts)
            p99 = rtts[min(len(rtts) - 1, int(len(rtts) * 0.99))]
            ev("latency", f"{len(rtts)} ping-pongs of {PING_SIZE} B (send/recv): "
                          f"p50 {p50:.0f} us, p99 {p99:.0f} us round trip")

            # -- 7. bandwidth
            step = "bandwidth"
            size, count, inflight = opts["bulk_size"], opts["bulk_count"], 4
            posted = done = 0
            t0 = time.perf_counter()
            while done < count:
                while posted < count and posted - done < inflight:
                    last = posted == count - 1
                    ep.post_write(bob, smr, 0, size, remote=remote,
                                  imm=(1 if last else None), wr_id=100 + posted)
                    posted += 1
                node.wait_op(100 + done, "a bulk write completion")
                done += 1
            dt = time.perf_counter() - t0
            verdict, _ = node.next_msg("bob's check of the bulk data")
            if not verdict.startswith(b"write-ok"):
                raise DemoError("bob found the bulk data wrong")
            total = size * count
            ev("bandwidth", f"RDMA write {count} x {_fmt_bytes(size)}, {inflight} in flight: "
                            f"{total / dt / 1e9:.2f} GB/s ({total * 8 / dt / 1e9:.1f} Gb/s), "
                            "bob checked the data")

            # -- bye
            step = "bye"
            node.send(bob, b"bye")
            reply, _ = node.next_msg("bob's goodbye")
            value = struct.unpack("<Q", reply[3:11])[0] if reply.startswith(b"bye") else None
            if value != 7:
                raise DemoError(f"bob's counter ends at {value}, expected 7")
            node.drain_sends()
            node.linger()
            st = ep.stats()
            report.send(("info", "alice",
                         f"{st['tx_packets']} packets sent, {st['retransmits']} retransmitted; "
                         f"mtu {info['mtu']} ({info['max_payload']} B payload), "
                         f"GSO {'on' if info['gso_used'] else 'off'}, "
                         f"GRO {'on' if info['gro_used'] else 'off'}"))
        report.send(("done", "alice", ""))
    except BaseException as e:
        _report_failure(report, "alice", step, e)
        sys.exit(1)


def _report_failure(report, who, step, e):
    if isinstance(e, DemoError):
        msg = str(e)
    else:
        msg = f"{type(e).__name__}: {e}"
        if not isinstance(e, (KeyboardInterrupt, SystemExit)):
            msg += "\n" + "".join(traceback.format_exception(e)).rstrip()
    try:
        report.send(("fail", step, f"{who}: {msg}"))
    except Exception:
        pass


# ==========================================================================
# parent


def _parse(argv):
    ap = argparse.ArgumentParser(
        prog="rtransport demo",
        description="Start two local processes that exchange messages, RDMA writes "
                    "(with immediate), a read and atomics over rtransport, verify "
                    "everything and report latency and bandwidth.")
    ap.add_argument("--bind", default="127.0.0.1", help="IPv4 address (default 127.0.0.1)")
    ap.add_argument("--mtu", type=int, default=None,
                    help="rtransport mtu (default: 9000, or the interface MTU if smaller)")
    ap.add_argument("--progress", choices=("thread", "manual"), default="thread",
                    help="progress mode of both contexts (default thread)")
    ap.add_argument("--pings", type=int, default=200, help="ping-pongs timed (default 200)")
    ap.add_argument("--bulk-mib", type=int, default=128,
                    help="MiB moved by the bulk write (default 128)")
    ap.add_argument("--timeout", type=float, default=30.0,
                    help="overall time limit, seconds (default 30)")
    args = ap.parse_args(argv)
    if args.pings < 1 or args.bulk_mib < 1 or args.timeout <= 0:
        ap.error("--pings, --bulk-mib and --timeout must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = _parse(sys.argv[1:] if argv is None else list(argv))
    t_start = time.monotonic()
    deadline = t_start + args.timeout
    if args.mtu is None:
        args.mtu = 9000
        try:
            import rtransport as rt
            if_mtu = rt.probe(args.bind).get("if_mtu") or 0
            if 576 <= if_mtu < args.mtu:
                args.mtu = if_mtu
        except Exception:  # the contexts will report a bad address clearly
            pass
    bulk_size = min(16 << 20, args.bulk_mib << 20)
    opts = {"bind": args.bind, "mtu": args.mtu, "progress": args.progress,
            "step_timeout": min(10.0, args.timeout), "pings": args.pings,
            "bulk_size": bulk_size, "bulk_count": max(1, (args.bulk_mib << 20) // bulk_size)}
    mp = multiprocessing.get_context("spawn")
    a_pipe, b_pipe = mp.Pipe()             # alice <-> bob: addresses
    a_rep_r, a_rep_w = mp.Pipe(duplex=False)
    b_rep_r, b_rep_w = mp.Pipe(duplex=False)
    procs = {
        "alice": mp.Process(target=_alice, args=(a_pipe, a_rep_w, opts), name="rt-demo-alice"),
        "bob": mp.Process(target=_bob, args=(b_pipe, b_rep_w, opts), name="rt-demo-bob"),
    }
    print(f"rtransport demo: 2 processes (alice, bob) over UDP {args.bind}, "
          f"mtu {args.mtu}, progress={args.progress}", flush=True)
    readers = {a_rep_r: "alice", b_rep_r: "bob"}
    finished = set()
    failure = None
    infos = []
    try:
        for p in procs.values():
            p.daemon = True
            p.start()
        a_rep_w.close()
        b_rep_w.close()
        sentinels = {p.sentinel: name for name, p in procs.items()}
        while len(finished) < 2 and failure is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                failure = (f"timed out after {args.timeout:g} s "
                           f"(still running: {', '.join(sorted(set(procs) - finished))})")
                break
            ready = multiprocessing.connection.wait(list(readers) + list(sentinels),
                                                    timeout=min(remaining, 1.0))
            for r in ready:
                if r in readers:
                    try:
                        kind, key, text = r.recv()
                    except EOFError:
                        del readers[r]
                        continue
                    if kind == "ok":
                        print(f"  ok  {key:<10} {text}", flush=True)
                    elif kind == "info":
                        infos.append(f"{key}: {text}")
                    elif kind == "done":
                        finished.add(key)
                    elif kind == "fail":
                        failure = f"step '{key}' failed: {text}"
                        break
                elif r in sentinels:
                    name = sentinels.pop(r)
                    code = procs[name].exitcode
                    if name not in finished and code != 0:
                        # let a pending failure report win over the bare exit
                        for rr, who in list(readers.items()):
                            if who == name and rr.poll(0.5):
                                try:
                                    kind, key, text = rr.recv()
                                    if kind == "fail":
                                        failure = f"step '{key}' failed: {text}"
                                except EOFError:
                                    pass
                        if failure is None:
                            failure = f"{name} exited unexpectedly (exit code {code})"
                        break
    except KeyboardInterrupt:
        failure = "interrupted"
    finally:
        for p in procs.values():
            if failure is None:
                p.join(timeout=max(0.1, deadline - time.monotonic()))
            if p.is_alive():
                p.terminate()
                p.join(timeout=2)
                if p.is_alive():
                    p.kill()
                    p.join(timeout=2)
    elapsed = time.monotonic() - t_start
    if failure is None:
        bad = [n for n, p in procs.items() if p.exitcode != 0]
        if bad:
            failure = f"{', '.join(bad)} exited with a non-zero status"
    for line in infos:
        print(f"      {line}")
    if failure:
        print(f"demo FAILED after {elapsed:.1f} s: {failure}", file=sys.stderr, flush=True)
        return 1
    print(f"demo passed: all data verified, {elapsed:.1f} s "
          "(for careful measurements: rtransport perf pingpong|bw)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
