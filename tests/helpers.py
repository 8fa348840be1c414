"""Shared helpers of the transport tests.

* waiting for completions with a timeout (``collect``, ``assert_quiet``),
* a pair of connected endpoints in two Contexts (``Pair``),
* the wire format in Python (addresses, raw packets) for the bad-input tests,
* a child process that owns one side of a connection and obeys commands
  sent over a multiprocessing Pipe (``RemoteSide`` / ``child_main``).

Every wait here has a timeout: a test fails, it never hangs.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import struct
import time
import traceback

import numpy as np

import rtransport as rt

ALL = (rt.Access.LOCAL_WRITE | rt.Access.REMOTE_WRITE | rt.Access.REMOTE_READ
       | rt.Access.REMOTE_ATOMIC)
U64 = (1 << 64) - 1

#: default limit of every wait for completions, seconds
WAIT = 20.0


# --------------------------------------------------------------------------
# data


def rand_bytes(n: int, seed: int) -> np.ndarray:
    """``n`` random bytes (uint8 array), reproducible from ``seed``."""
    return np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8)


def pattern(n: int, byte: int = 0xA5) -> np.ndarray:
    return np.full(n, byte, dtype=np.uint8)


def digest(buf) -> str:
    return hashlib.sha256(memoryview(buf).cast("B")).hexdigest()


def u64_at(arr: np.ndarray, off: int) -> int:
    return int(arr[off:off + 8].view(np.uint64)[0])


def set_u64(arr: np.ndarray, off: int, value: int) -> None:
    arr[off:off + 8].view(np.uint64)[0] = value & U64


# --------------------------------------------------------------------------
# completions


def collect(cq: rt.CompletionQueue, n: int, timeout: float = WAIT) -> list:
    """Wait until ``n`` completions arrived on ``cq`` (fail after ``timeout``
    seconds, listing what did arrive).  Returns exactly what was taken,
    which may be more than ``n`` if the queue had more."""
    got: list = []
    deadline = time.monotonic() + timeout
    while len(got) < n:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(
                f"only {len(got)} of {n} completions within {timeout:g} s: {got}")
        got.extend(cq.wait(timeout=min(remaining, 1.0), n=max(1, n - len(got))))
    return got


def collect_exactly(cq: rt.CompletionQueue, n: int, timeout: float = WAIT,
                    settle: float = 0.1) -> list:
    """``collect`` n completions, then check that no extra one shows up
    within ``settle`` seconds."""
    got = collect(cq, n, timeout)
    assert len(got) == n, f"expected {n} completions, got {len(got)}: {got}"
    assert_quiet(cq, settle)
    return got


def assert_quiet(cq: rt.CompletionQueue, settle: float = 0.1) -> None:
    """No (further) completion arrives on ``cq`` within ``settle`` seconds."""
    extra = cq.wait(timeout=settle)
    extra += cq.poll()
    assert extra == [], f"unexpected extra completions: {extra}"


def one(cq: rt.CompletionQueue, timeout: float = WAIT):
    """Exactly one completion."""
    got = collect(cq, 1, timeout)
    assert len(got) == 1, got
    return got[0]


def by_wr_id(comps) -> dict:
    out = {}
    for c in comps:
        assert c.wr_id not in out, f"duplicate completion for wr_id {c.wr_id}: {comps}"
        out[c.wr_id] = c
    return out


def check_comp(c, *, wr_id=None, opcode=None, status=rt.Status.SUCCESS,
               byte_len=None, imm="any", peer_address=None):
    """Assert the fields of one completion (None/"any" = do not check)."""
    if wr_id is not None:
        assert c.wr_id == wr_id, c
    if opcode is not None:
        assert c.opcode == opcode, c
    if status is not None:
        assert c.status == status, c
    if byte_len is not None:
        assert c.byte_len == byte_len, c
    if imm != "any":
        assert c.imm == imm, c
    if peer_address is not None:
        assert c.peer is not None, c
        assert c.peer.address == peer_address, c


def wait_for(pred, timeout: float = WAIT, interval: float = 0.01, what: str = "condition"):
    """Poll ``pred()`` until true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what} not reached within {timeout:g} s")
        time.sleep(interval)


# --------------------------------------------------------------------------
# two endpoints in one process


class Pair:
    """Two Contexts A and B (loopback, port 0), one endpoint each, connected
    both ways: ``a2b`` is A's Peer for B, ``b2a`` B's Peer for A."""

    def __init__(self, mtu: int = 1500, a: dict | None = None, b: dict | None = None,
                 **common):
        kw_a = dict(bind="127.0.0.1", port=0, mtu=mtu, **common)
        kw_a.update(a or {})
        kw_b = dict(bind="127.0.0.1", port=0, mtu=mtu, **common)
        kw_b.update(b or {})
        self.A = rt.Context(**kw_a)
        try:
            self.B = rt.Context(**kw_b)
        except BaseException:
            self.A.close()
            raise
        self.ea = self.A.endpoint()
        self.eb = self.B.endpoint()
        self.a2b = self.ea.connect(self.eb.address)
        self.b2a = self.eb.connect(self.ea.address)

    @property
    def max_payload(self) -> int:
        return self.A.info()["max_payload"]

    def close(self):
        self.A.close()
        self.B.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# --------------------------------------------------------------------------
# wire format (csrc/wire.h), for raw-socket tests

ADDR_FMT = ">2sBBHHIIQ8x"  # magic 'RA', version, family, port, reserved, ipv4, ep_id, nonce
HDR_FMT = ">HBBHHIIQQHHI"  # 40 bytes
DATA_FMT = ">IBBHIIQQQQII"  # 56 bytes
ACK_FMT = ">IIIHBBII"       # 24 bytes
NAK_FMT = ">IIBBHI"         # 16 bytes
WIRE_MAGIC = 0x5254
WIRE_VERSION = 1
PKT_DATA, PKT_ACK, PKT_NAK = 1, 2, 3
WOP_SEND, WOP_WRITE, WOP_READ_REQ = 1, 2, 3
HF_CSUM = 1
assert struct.calcsize(ADDR_FMT) == 32
assert struct.calcsize(HDR_FMT) == 40
assert struct.calcsize(DATA_FMT) == 56
assert struct.calcsize(ACK_FMT) == 24
assert struct.calcsize(NAK_FMT) == 16


def parse_address(addr: bytes) -> dict:
    magic, version, family, port, _res, ip4, ep_id, nonce = struct.unpack(ADDR_FMT, addr)
    return dict(magic=magic, version=version, family=family, port=port,
                ip=".".join(str(b) for b in ip4.to_bytes(4, "big")), ep_id=ep_id,
                nonce=nonce)


def make_address(*, port: int, ep_id: int, nonce: int, ip: str = "127.0.0.1",
                 magic: bytes = b"RA", version: int = 1, family: int = 4) -> bytes:
    ip4 = int.from_bytes(bytes(int(x) for x in ip.split(".")), "big")
    return struct.pack(ADDR_FMT, magic, version, family, port, 0, ip4, ep_id, nonce)


def hdr(*, type: int, dst_ep: int, dst_nonce: int, src_ep: int = 7, src_nonce: int = 0x1234,
        src_port: int = 9, flags: int = 0, path: int = 0, length: int = 0,
        csum: int = 0, magic: int = WIRE_MAGIC, version: int = WIRE_VERSION) -> bytes:
    return struct.pack(HDR_FMT, magic, version, type, flags, src_port, dst_ep, src_ep,
                       dst_nonce, src_nonce, path, length, csum)


def data_packet(*, dst_ep: int, dst_nonce: int, psn: int = 0, op: int = WOP_SEND,
                dflags: int = 0, msg_id: int = 0, aux: int = 0, msg_len: int | None = None,
                offset: int = 0, rkey: int = 0, raddr: int = 0, imm: int = 0,
                payload: bytes = b"", fix_len: bool = True, **hkw) -> bytes:
    if msg_len is None:
        msg_len = len(payload)
    d = struct.pack(DATA_FMT, psn, op, dflags, 0, msg_id, aux, msg_len, offset, rkey, raddr,
                    imm, 0) + payload
    h = hdr(type=PKT_DATA, dst_ep=dst_ep, dst_nonce=dst_nonce,
            length=len(d) if fix_len else hkw.pop("length", 0), **hkw)
    return h + d


def ack_packet(*, dst_ep: int, dst_nonce: int, cum_psn: int = 0, ranges=(),
               nranges: int | None = None, **hkw) -> bytes:
    body = struct.pack(ACK_FMT, cum_psn, 0, 0, 0,
                       len(ranges) if nranges is None else nranges, 0, 0, 0)
    for s, e in ranges:
        body += struct.pack(">II", s, e)
    return hdr(type=PKT_ACK, dst_ep=dst_ep, dst_nonce=dst_nonce, length=len(body), **hkw) + body


def nak_packet(*, dst_ep: int, dst_nonce: int, psn: int = 0, msg_id: int = 0, kind: int = 1,
               status: int = 2, **hkw) -> bytes:
    body = struct.pack(NAK_FMT, psn, msg_id, kind, status, 0, 0)
    return hdr(type=PKT_NAK, dst_ep=dst_ep, dst_nonce=dst_nonce, length=len(body), **hkw) + body


# --------------------------------------------------------------------------
# the other side in a child process


def _comp_tuple(c) -> dict:
    return dict(wr_id=c.wr_id, opcode=int(c.opcode), status=int(c.status),
                byte_len=c.byte_len, imm=c.imm,
                peer=None if c.peer is None else c.peer.address)


class _ChildState:
    """Runs in the child: one Context, one Endpoint, one registered region."""

    def __init__(self):
        self.ctx = None
        self.ep = None
        self.mem = None
        self.mr = None
        self.peers: dict[bytes, rt.Peer] = {}

    def _peer(self, addr: bytes) -> rt.Peer:
        p = self.peers.get(addr)
        if p is None:
            p = self.peers[addr] = self.ep.connect(addr)
        return p

    def cmd_setup(self, ctx_kw: dict, size: int, access: int):
        self.ctx = rt.Context(**ctx_kw)
        self.ep = self.ctx.endpoint()
        self.mem = np.zeros(size, dtype=np.uint8)
        self.mr = self.ctx.register(self.mem, rt.Access(access))
        return self.ep.address, self.mr.descriptor()

    def cmd_pid(self):
        import os
        return os.getpid()

    def cmd_fill_random(self, offset: int, length: int, seed: int):
        self.mem[offset:offset + length] = rand_bytes(length, seed)

    def cmd_fill(self, offset: int, data: bytes):
        self.mem[offset:offset + len(data)] = np.frombuffer(data, dtype=np.uint8)

    def cmd_get(self, offset: int, length: int) -> bytes:
        return self.mem[offset:offset + length].tobytes()

    def cmd_digest(self, offset: int, length: int) -> str:
        return digest(self.mem[offset:offset + length])

    def cmd_connect(self, addr: bytes) -> int:
        return self._peer(addr).id

    def cmd_post_recv(self, offset: int, length: int, wr_id: int):
        self.ep.post_recv(self.mr, offset, length, wr_id=wr_id)

    def cmd_post_send(self, addr: bytes, offset: int, length: int, wr_id: int):
        self.ep.post_send(self._peer(addr), self.mr, offset, length, wr_id=wr_id)

    def cmd_post_write(self, addr, offset, length, desc, roff, imm, wr_id):
        self.ep.post_write(self._peer(addr), self.mr, offset, length, remote=desc,
                           remote_offset=roff, imm=imm, wr_id=wr_id)

    def cmd_post_read(self, addr, offset, length, desc, roff, wr_id):
        self.ep.post_read(self._peer(addr), self.mr, offset, length, remote=desc,
                          remote_offset=roff, wr_id=wr_id)

    def cmd_fetch_add(self, addr, offset, desc, roff, add, wr_id):
        self.ep.post_atomic_fetch_add(self._peer(addr), self.mr, offset, remote=desc,
                                      remote_offset=roff, add=add, wr_id=wr_id)

    def cmd_collect(self, n: int, timeout: float = WAIT, settle: float = 0.1):
        return [_comp_tuple(c) for c in collect_exactly(self.ep.cq, n, timeout, settle)]

    def cmd_send(self, addr: bytes, data: bytes, timeout: float = WAIT):
        self.ep.send(self._peer(addr), data, timeout=timeout)

    def cmd_recv(self, timeout: float = WAIT, max_size: int = 1 << 20):
        data, peer = self.ep.recv(timeout=timeout, max_size=max_size)
        return data, peer.address

    def cmd_echo(self, count: int, timeout: float = WAIT):
        """Answer ``count`` messages with the reversed payload."""
        for _ in range(count):
            data, peer = self.ep.recv(timeout=timeout)
            self.ep.send(peer, data[::-1], timeout=timeout)

    def cmd_stats(self):
        return self.ep.stats()

    def cmd_close(self):
        if self.ctx is not None:
            self.ctx.close()


def child_main(conn):
    """Command loop of the child process: ``(cmd, args, kwargs)`` in,
    ``("ok", result)`` or ``("err", text)`` out; ``None`` ends it."""
    state = _ChildState()
    try:
        while True:
            try:
                msg = conn.recv()
            except EOFError:
                break
            if msg is None:
                break
            cmd, args, kw = msg
            try:
                res = getattr(state, "cmd_" + cmd)(*args, **kw)
                conn.send(("ok", res))
            except BaseException as e:  # report everything to the parent
                conn.send(("err", f"{type(e).__name__}: {e}\n{traceback.format_exc()}"))
    finally:
        state.cmd_close()


class RemoteSide:
    """The parent's handle on a child process that runs ``child_main``."""

    def __init__(self, ctx_kw: dict | None = None, size: int = 1 << 20, access=ALL):
        mp = multiprocessing.get_context("spawn")
        self.conn, child_conn = mp.Pipe()
        self.proc = mp.Process(target=child_main, args=(child_conn,), daemon=True)
        self.proc.start()
        child_conn.close()
        self._pending = False
        kw = dict(bind="127.0.0.1", port=0, mtu=1500)
        kw.update(ctx_kw or {})
        self.address, self.descriptor = self.call("setup", kw, size, int(access), timeout=60)
        self.size = size

    def start(self, cmd: str, *args, **kw):
        """Send a command without waiting for its answer (see ``result``)."""
        assert not self._pending, "previous command still running"
        self.conn.send((cmd, args, kw))
        self._pending = True

    def result(self, timeout: float = WAIT + 10):
        if not self.conn.poll(timeout):
            raise AssertionError(f"child did not answer within {timeout:g} s")
        self._pending = False
        status, value = self.conn.recv()
        if status != "ok":
            raise AssertionError(f"child failed: {value}")
        return value

    def call(self, cmd: str, *args, timeout: float = WAIT + 10, **kw):
        self.start(cmd, *args, **kw)
        return self.result(timeout)

    def kill(self):
        self.proc.kill()
        self.proc.join(10)

    def close(self):
        if self.proc.is_alive():
            try:
                if not self._pending:
                    self.conn.send(None)
            except (BrokenPipeError, OSError):
                pass
            self.proc.join(10)
            if self.proc.is_alive():
                self.proc.kill()
                self.proc.join(10)
        self.conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
