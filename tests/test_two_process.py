"""Two endpoints in two processes (multiprocessing 'spawn'): the child owns
one Context/Endpoint/region and obeys commands over a Pipe (helpers.py);
the parent exchanges ep.address and mr.descriptor() bytes with it and runs
every operation in both directions.  Data is checked bit-exact (digests of
the same seeded random bytes on both sides), completions field by field."""

from __future__ import annotations

import numpy as np
import pytest

import rtransport as rt
from helpers import (
    ALL, RemoteSide, assert_quiet, by_wr_id, check_comp, collect_exactly, digest, one,
    rand_bytes, set_u64, u64_at, wait_for,
)

S = rt.Status
O = rt.Opcode
REGION = 4 << 20


class Local:
    def __init__(self, remote: RemoteSide, mtu: int = 1500, size: int = REGION, **kw):
        self.ctx = rt.Context(bind="127.0.0.1", port=0, mtu=mtu, **kw)
        self.ep = self.ctx.endpoint()
        self.mem = np.zeros(size, np.uint8)
        self.mr = self.ctx.register(self.mem, ALL)
        self.peer = self.ep.connect(remote.address)
        self.remote = remote

    def close(self):
        self.ctx.close()


@pytest.fixture(scope="module")
def remote():
    with RemoteSide(size=REGION) as r:
        yield r


@pytest.fixture
def local(remote):
    loc = Local(remote)
    yield loc
    loc.close()


def _remote_comps(remote, n, settle=0.1):
    return remote.call("collect", n, 20.0, settle)


def _check_remote_comp(d, *, wr_id=None, opcode, status=S.SUCCESS, byte_len=None, imm=None,
                       peer=None):
    if wr_id is not None:
        assert d["wr_id"] == wr_id, d
    assert d["opcode"] == opcode and d["status"] == status, d
    if byte_len is not None:
        assert d["byte_len"] == byte_len, d
    assert d["imm"] == imm, d
    if peer is not None:
        assert d["peer"] == peer, d


SIZES = [0, 1, 1375, 1377, 2753, 4095, 4096, 1 << 20]


# ---------------------------------------------------------------- send / recv


def test_descriptor_and_address__exchanged_over_the_pipe(remote, local):
    assert isinstance(remote.address, bytes) and len(remote.address) == 32
    assert isinstance(remote.descriptor, bytes) and len(remote.descriptor) == 32
    assert remote.address[:2] == b"RA" and remote.descriptor[:2] == b"RM"
    assert rt.RemoteRegion(remote.descriptor).descriptor() == remote.descriptor
    assert remote.call("pid") != __import__("os").getpid()


@pytest.mark.parametrize("n", SIZES)
def test_post_send__parent_to_child(remote, local, n):
    seed = 1000 + n
    local.mem[:n] = rand_bytes(n, seed)
    remote.call("fill", 0, b"\xa5" * 64 + b"\xa5" * (n + 64))
    remote.call("post_recv", 64, n + 10, 7)
    local.ep.post_send(local.peer, local.mr, 0, n, wr_id=8)
    check_comp(one(local.ep.cq), wr_id=8, opcode=O.SEND, byte_len=n)
    (c,) = _remote_comps(remote, 1)
    _check_remote_comp(c, wr_id=7, opcode=O.RECV, byte_len=n, peer=local.ep.address)
    assert remote.call("digest", 64, n) == digest(rand_bytes(n, seed))
    assert remote.call("get", 0, 64) == b"\xa5" * 64
    assert remote.call("get", 64 + n, 64) == b"\xa5" * 64


@pytest.mark.parametrize("n", SIZES)
def test_post_send__child_to_parent(remote, local, n):
    seed = 2000 + n
    remote.call("fill_random", 128, n, seed)
    local.mem[:n + 256] = 0xA5
    local.ep.post_recv(local.mr, 100, n + 1, wr_id=3)
    remote.call("post_send", local.ep.address, 128, n, 4)
    c = one(local.ep.cq)
    check_comp(c, wr_id=3, opcode=O.RECV, byte_len=n, imm=None, peer_address=remote.address)
    (s,) = _remote_comps(remote, 1)
    _check_remote_comp(s, wr_id=4, opcode=O.SEND, byte_len=n, peer=local.ep.address)
    assert np.array_equal(local.mem[100:100 + n], rand_bytes(n, seed))
    assert (local.mem[:100] == 0xA5).all() and (local.mem[100 + n:n + 256] == 0xA5).all()


def test_ordering__child_buffers_filled_in_send_order(remote, local):
    k, slot = 20, 6000
    sizes = [int(x) for x in np.random.default_rng(5).integers(0, slot, k)]
    local.mem[:k * slot] = rand_bytes(k * slot, 77)
    remote.call("fill", 0, bytes(k * slot))
    for i in range(k):
        remote.call("post_recv", i * slot, slot, 500 + i)
    for i, n in enumerate(sizes):
        local.ep.post_send(local.peer, local.mr, i * slot, n, wr_id=i)
    sends = by_wr_id(collect_exactly(local.ep.cq, k))
    assert all(sends[i].ok and sends[i].byte_len == sizes[i] for i in range(k))
    recvs = _remote_comps(remote, k)
    assert [d["wr_id"] for d in recvs] == [500 + i for i in range(k)]
    assert [d["byte_len"] for d in recvs] == sizes
    for i, n in enumerate(sizes):
        assert remote.call("digest", i * slot, n) == digest(local.mem[i * slot:i * slot + n])
        assert remote.call("get", i * slot + n, slot - n) == bytes(slot - n)


# ---------------------------------------------------------------- one-sided


@pytest.mark.parametrize("imm", [None, 0xABCD0123], ids=["no-imm", "imm"])
@pytest.mark.parametrize("n", [0, 1, 4096, 10_000, 1 << 20])
def test_post_write__into_child(remote, local, n, imm):
    seed = 3000 + n
    local.mem[5:5 + n] = rand_bytes(n, seed)
    roff = 1000
    remote.call("fill", 0, b"\x5a" * (n + 2 * roff))
    local.ep.post_write(local.peer, local.mr, 5, n, remote=remote.descriptor,
                        remote_offset=roff, imm=imm, wr_id=21)
    check_comp(one(local.ep.cq), wr_id=21, opcode=O.WRITE, byte_len=n)
    if imm is None:
        assert _remote_comps(remote, 0) == []
    else:
        (c,) = _remote_comps(remote, 1)
        _check_remote_comp(c, opcode=O.RECV_WRITE_IMM, byte_len=n, imm=imm,
                           peer=local.ep.address)
    assert remote.call("digest", roff, n) == digest(rand_bytes(n, seed))
    assert remote.call("get", 0, roff) == b"\x5a" * roff
    assert remote.call("get", roff + n, roff) == b"\x5a" * roff


def test_post_write__child_writes_into_parent_with_imm(remote, local):
    n = 50_000
    remote.call("fill_random", 0, n, 31)
    local.mem[:n + 200] = 0
    remote.call("post_write", local.ep.address, 0, n, local.mr.descriptor(), 100, 99, 5)
    c = one(local.ep.cq)
    check_comp(c, opcode=O.RECV_WRITE_IMM, byte_len=n, imm=99, peer_address=remote.address)
    (s,) = _remote_comps(remote, 1)
    _check_remote_comp(s, wr_id=5, opcode=O.WRITE, byte_len=n)
    assert np.array_equal(local.mem[100:100 + n], rand_bytes(n, 31))
    assert not local.mem[:100].any() and not local.mem[100 + n:n + 200].any()


@pytest.mark.parametrize("n", [0, 1, 4097, 1 << 20])
def test_post_read__from_child(remote, local, n):
    seed = 4000 + n
    remote.call("fill_random", 333, n, seed)
    before = remote.call("digest", 0, REGION)
    local.mem[:n + 20] = 0xEE
    local.ep.post_read(local.peer, local.mr, 10, n, remote=remote.descriptor,
                       remote_offset=333, wr_id=41)
    check_comp(one(local.ep.cq), wr_id=41, opcode=O.READ, byte_len=n)
    assert np.array_equal(local.mem[10:10 + n], rand_bytes(n, seed))
    assert (local.mem[:10] == 0xEE).all() and (local.mem[10 + n:n + 20] == 0xEE).all()
    assert _remote_comps(remote, 0, settle=0.05) == []
    assert remote.call("digest", 0, REGION) == before


def test_post_read__child_reads_from_parent(remote, local):
    n = 300_000
    local.mem[:n] = rand_bytes(n, 42)
    remote.call("fill", 0, bytes(n))
    remote.call("post_read", local.ep.address, 0, n, local.mr.descriptor(), 0, 6)
    (c,) = _remote_comps(remote, 1)
    _check_remote_comp(c, wr_id=6, opcode=O.READ, byte_len=n, peer=local.ep.address)
    assert remote.call("digest", 0, n) == digest(local.mem[:n])
    assert_quiet(local.ep.cq, 0.05)


def test_atomics__on_child_memory(remote, local):
    init = np.zeros(32, np.uint8)
    set_u64(init, 0, 100)
    set_u64(init, 8, (1 << 64) - 2)
    set_u64(init, 16, 7)
    set_u64(init, 24, 7)
    remote.call("fill", 4096, init.tobytes())
    d = remote.descriptor
    local.mem[:64] = 0xCC
    local.ep.post_atomic_fetch_add(local.peer, local.mr, 0, remote=d, remote_offset=4096,
                                   add=23, wr_id=1)
    local.ep.post_atomic_fetch_add(local.peer, local.mr, 8, remote=d, remote_offset=4104,
                                   add=5, wr_id=2)
    local.ep.post_atomic_cmp_swap(local.peer, local.mr, 16, remote=d, remote_offset=4112,
                                  compare=7, swap=8, wr_id=3)
    local.ep.post_atomic_cmp_swap(local.peer, local.mr, 24, remote=d, remote_offset=4120,
                                  compare=6, swap=8, wr_id=4)
    got = by_wr_id(collect_exactly(local.ep.cq, 4))
    assert [got[i].opcode for i in (1, 2, 3, 4)] == [O.ATOMIC_FETCH_ADD] * 2 + \
        [O.ATOMIC_CMP_SWAP] * 2
    assert all(c.ok and c.byte_len == 8 for c in got.values())
    assert [u64_at(local.mem, o) for o in (0, 8, 16, 24)] == [100, (1 << 64) - 2, 7, 7]
    assert (local.mem[32:64] == 0xCC).all()
    final = np.frombuffer(remote.call("get", 4096, 32), np.uint8)
    assert [u64_at(final, o) for o in (0, 8, 16, 24)] == [123, 3, 8, 7]


def test_atomics__child_and_parent_increment_each_other(remote, local):
    local.mem[:8] = 0
    remote.call("fill", 0, bytes(8))
    for i in range(10):
        remote.call("fetch_add", local.ep.address, 8 * (i + 1), local.mr.descriptor(), 0, 1,
                    i)
        local.ep.post_atomic_fetch_add(local.peer, local.mr, 64 + 8 * i,
                                       remote=remote.descriptor, add=2, wr_id=i)
    assert all(c.ok for c in collect_exactly(local.ep.cq, 10))
    assert all(d["status"] == S.SUCCESS for d in _remote_comps(remote, 10))
    assert u64_at(local.mem, 0) == 10
    assert u64_at(np.frombuffer(remote.call("get", 0, 8), np.uint8), 0) == 20
    olds = sorted(u64_at(local.mem, 64 + 8 * i) for i in range(10))
    assert olds == [2 * i for i in range(10)]


# ---------------------------------------------------------------- blocking helpers


@pytest.fixture
def fresh():
    """A child of its own (the blocking helpers leave an internal receive
    buffer posted, which would catch messages meant for later tests)."""
    with RemoteSide() as r:
        loc = Local(r)
        yield r, loc
        loc.close()


def test_send_recv__helpers_echo_across_processes(fresh):
    remote, local = fresh
    msgs = [b"", b"x", rand_bytes(70_000, 9).tobytes()]
    local.ep.prepare_recv(1)
    remote.start("echo", len(msgs))
    for m in msgs:
        local.ep.send(local.peer, m, timeout=20)
        data, peer = local.ep.recv(timeout=20)
        assert data == m[::-1]
        assert peer == local.peer and peer.address == remote.address
    remote.result()


def test_send_recv__child_recv_helper(fresh):
    remote, local = fresh
    remote.start("recv", 20.0)
    data = rand_bytes(5000, 10).tobytes()
    # the child's recv() posts its buffer when it starts: retry-free since
    # RNR makes the sender wait until then
    local.ep.send(local.peer, data, timeout=20)
    got, peer_addr = remote.result()
    assert got == data and peer_addr == local.ep.address


# ---------------------------------------------------------------- big messages


def test_post_send__64mib_both_directions():
    n = 64 << 20
    with RemoteSide(ctx_kw=dict(mtu=9000), size=n) as r:
        loc = Local(r, mtu=9000, size=n)
        try:
            loc.mem[:] = rand_bytes(n, 64)
            r.call("post_recv", 0, n, 1)
            loc.ep.post_send(loc.peer, loc.mr, 0, n, wr_id=2)
            check_comp(one(loc.ep.cq, 60), wr_id=2, opcode=O.SEND, byte_len=n)
            (c,) = r.call("collect", 1, 60.0, 0.1)
            _check_remote_comp(c, wr_id=1, opcode=O.RECV, byte_len=n, peer=loc.ep.address)
            assert r.call("digest", 0, n) == digest(loc.mem)
            # and back, as a write with imm
            r.call("fill_random", 0, n, 65)
            loc.mem[:] = 0
            r.call("post_write", loc.ep.address, 0, n, loc.mr.descriptor(), 0, 7, 3)
            check_comp(one(loc.ep.cq, 60), opcode=O.RECV_WRITE_IMM, imm=7, byte_len=n)
            assert np.array_equal(loc.mem, rand_bytes(n, 65))
        finally:
            loc.close()


# ---------------------------------------------------------------- peer killed


def test_peer_killed__outstanding_ops_time_out():
    with RemoteSide(ctx_kw=dict(rnr_timeout_ms=60_000)) as r:
        loc = Local(r, timeout_ms=500, rnr_timeout_ms=60_000)
        try:
            # a first exchange proves the connection works
            r.call("post_recv", 0, 100, 1)
            loc.ep.post_send(loc.peer, loc.mr, 0, 100, wr_id=1)
            assert one(loc.ep.cq).ok
            _remote_comps(r, 1)
            # outstanding when the process dies: a send the child has no
            # buffer for (it answers RNR), and a 64 MiB send over mtu 1500
            loc.ep.post_send(loc.peer, loc.mr, 0, 1000, wr_id=2)
            wait_for(lambda: loc.ep.stats()["rnr_naks"] > 0, what="an RNR NAK")
            r.kill()
            assert not r.proc.is_alive() and r.proc.exitcode == -9
            d = r.descriptor
            loc.ep.post_write(loc.peer, loc.mr, 0, 1 << 20, remote=d, wr_id=3)
            loc.ep.post_read(loc.peer, loc.mr, 0, 1 << 20, remote=d, wr_id=4)
            loc.ep.post_atomic_fetch_add(loc.peer, loc.mr, 0, remote=d, add=1, wr_id=5)
            loc.ep.post_atomic_cmp_swap(loc.peer, loc.mr, 8, remote=d, compare=1, swap=2,
                                        wr_id=6)
            loc.ep.post_send(loc.peer, loc.mr, 0, 4096, wr_id=7)
            got = by_wr_id(collect_exactly(loc.ep.cq, 6, timeout=10))
            assert sorted(got) == [2, 3, 4, 5, 6, 7]
            assert all(c.status == S.TIMEOUT for c in got.values()), got
            loc.ep.post_send(loc.peer, loc.mr, 0, 1, wr_id=8)
            check_comp(one(loc.ep.cq, 10), wr_id=8, status=S.PEER_FAILED)
        finally:
            loc.close()


def test_peer_killed__during_a_large_transfer():
    n = 64 << 20
    with RemoteSide(size=n) as r:
        loc = Local(r, timeout_ms=500, size=n)
        try:
            r.call("post_recv", 0, n, 1)
            loc.ep.post_send(loc.peer, loc.mr, 0, n, wr_id=9)
            wait_for(lambda: loc.ep.stats()["acks_received"] > 0, what="transfer started")
            r.kill()
            c = one(loc.ep.cq, 10)
            check_comp(c, wr_id=9, opcode=O.SEND, status=S.TIMEOUT)
            assert_quiet(loc.ep.cq, 0.1)
        finally:
            loc.close()


def test_parent_context_closed__child_ops_time_out():
    """The other way round: the child's operations towards a parent that
    went away complete with TIMEOUT in the child."""
    with RemoteSide(ctx_kw=dict(timeout_ms=500)) as r:
        loc = Local(r)
        addr, desc = loc.ep.address, loc.mr.descriptor()
        r.call("post_recv", 0, 10, 1)
        loc.ep.post_send(loc.peer, loc.mr, 0, 10, wr_id=1)
        assert one(loc.ep.cq).ok
        _remote_comps(r, 1)
        loc.close()
        r.call("post_send", addr, 0, 1000, 11)
        r.call("post_write", addr, 0, 1000, desc, 0, None, 12)
        r.call("post_read", addr, 0, 1000, desc, 0, 13)
        got = r.call("collect", 3, 10.0, 0.1)
        assert sorted(d["wr_id"] for d in got) == [11, 12, 13]
        assert all(d["status"] == S.TIMEOUT for d in got), got
