"""Bad input: remote access errors, too-small receive buffers, silent peers,
RNR, malformed/foreign/replayed packets, and Python API misuse.  Every error
must be reported (error completion or typed exception with a message that
says what to do) and must leave memory untouched and the endpoint working."""

from __future__ import annotations

import socket
import struct
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rtransport as rt
from helpers import (
    ALL, HF_CSUM, WOP_SEND, WOP_WRITE, Pair, ack_packet, assert_quiet, by_wr_id, check_comp,
    collect_exactly, data_packet, make_address, nak_packet, one, parse_address, pattern,
    rand_bytes, set_u64, u64_at, wait_for,
)

S = rt.Status
O = rt.Opcode
LW = rt.Access.LOCAL_WRITE


def _bad_rkey(desc: bytes) -> bytes:
    """The descriptor with its rkey (bytes 8..16) changed."""
    rkey = struct.unpack_from(">Q", desc, 8)[0]
    return desc[:8] + struct.pack(">Q", rkey ^ 0x5A5A_0000_0000_0001) + desc[16:]


def _works(p: Pair, seed: int = 99):
    """The A<->B connection still carries a send and a write, both ways."""
    src = rand_bytes(3000, seed)
    dst = np.zeros(3000, np.uint8)
    ms, md = p.A.register(src), p.B.register(dst, ALL)
    p.eb.post_recv(md, wr_id=4242)
    p.ea.post_send(p.a2b, ms, wr_id=4243)
    check_comp(one(p.eb.cq), wr_id=4242, opcode=O.RECV, byte_len=3000,
               peer_address=p.ea.address)
    check_comp(one(p.ea.cq), wr_id=4243, opcode=O.SEND)
    assert np.array_equal(src, dst)
    back = np.zeros(3000, np.uint8)
    mb = p.A.register(back, ALL)
    p.eb.post_write(p.b2a, md, remote=mb, imm=5, wr_id=4244)
    check_comp(one(p.eb.cq), wr_id=4244, opcode=O.WRITE)
    check_comp(one(p.ea.cq), opcode=O.RECV_WRITE_IMM, imm=5)
    assert np.array_equal(back, src)
    for m in (ms, md, mb):
        m.close()


def _fill_posted(p: Pair, buf: np.ndarray, wr_id: int, seed: int = 12):
    """A real message from A fills the receive buffer B posted earlier."""
    src = rand_bytes(len(buf), seed)
    p.ea.post_send(p.a2b, p.A.register(src), wr_id=wr_id + 1000)
    check_comp(one(p.eb.cq), wr_id=wr_id, opcode=O.RECV, byte_len=len(buf),
               peer_address=p.ea.address)
    check_comp(one(p.ea.cq), wr_id=wr_id + 1000, opcode=O.SEND)
    assert np.array_equal(buf, src)


# ---------------------------------------------------------------- remote errors

# (case id, operation, target access, remote offset, length, descriptor mutation, status)
N = 1000
TLEN = 4096
REMOTE_CASES = [
    ("write-bad-key", "write", ALL, 0, N, _bad_rkey, S.REM_BAD_KEY),
    ("write-oob-end", "write", ALL, TLEN - N + 1, N, None, S.REM_OUT_OF_BOUNDS),
    ("write-oob-offset", "write", ALL, TLEN + 1, 0, None, S.REM_OUT_OF_BOUNDS),
    ("write-oob-wrap", "write", ALL, (1 << 64) - 8, N, None, S.REM_OUT_OF_BOUNDS),
    ("write-no-access", "write", LW | rt.Access.REMOTE_READ | rt.Access.REMOTE_ATOMIC, 0, N,
     None, S.REM_ACCESS),
    ("write-imm-bad-key", "write-imm", ALL, 0, N, _bad_rkey, S.REM_BAD_KEY),
    ("write-imm-oob", "write-imm", ALL, TLEN - 10, N, None, S.REM_OUT_OF_BOUNDS),
    ("write-imm-no-access", "write-imm", LW | rt.Access.REMOTE_READ, 0, N, None, S.REM_ACCESS),
    ("read-bad-key", "read", ALL, 0, N, _bad_rkey, S.REM_BAD_KEY),
    ("read-oob-end", "read", ALL, TLEN - N + 1, N, None, S.REM_OUT_OF_BOUNDS),
    ("read-oob-wrap", "read", ALL, (1 << 64) - 1, 2, None, S.REM_OUT_OF_BOUNDS),
    ("read-no-access", "read", LW | rt.Access.REMOTE_WRITE | rt.Access.REMOTE_ATOMIC, 0, N,
     None, S.REM_ACCESS),
    ("fadd-bad-key", "fadd", ALL, 0, 8, _bad_rkey, S.REM_BAD_KEY),
    ("fadd-oob", "fadd", ALL, TLEN - 4, 8, None, S.REM_OUT_OF_BOUNDS),
    ("fadd-oob-past-end", "fadd", ALL, TLEN, 8, None, S.REM_OUT_OF_BOUNDS),
    ("fadd-no-access", "fadd", LW | rt.Access.REMOTE_READ, 0, 8, None, S.REM_ACCESS),
    ("fadd-misaligned", "fadd", ALL, 4, 8, None, S.REM_MISALIGNED),
    ("cas-bad-key", "cas", ALL, 0, 8, _bad_rkey, S.REM_BAD_KEY),
    ("cas-oob", "cas", ALL, TLEN - 8 + 1, 8, None, S.REM_OUT_OF_BOUNDS),
    ("cas-no-access", "cas", LW | rt.Access.REMOTE_READ, 0, 8, None, S.REM_ACCESS),
    ("cas-misaligned", "cas", ALL, 3, 8, None, S.REM_MISALIGNED),
]


def _post(p, kind, ml, desc, roff, n, wr_id):
    if kind == "write":
        p.ea.post_write(p.a2b, ml, 0, n, remote=desc, remote_offset=roff, wr_id=wr_id)
        return O.WRITE
    if kind == "write-imm":
        p.ea.post_write(p.a2b, ml, 0, n, remote=desc, remote_offset=roff, imm=77, wr_id=wr_id)
        return O.WRITE
    if kind == "read":
        p.ea.post_read(p.a2b, ml, 0, n, remote=desc, remote_offset=roff, wr_id=wr_id)
        return O.READ
    if kind == "fadd":
        p.ea.post_atomic_fetch_add(p.a2b, ml, 0, remote=desc, remote_offset=roff, add=1,
                                   wr_id=wr_id)
        return O.ATOMIC_FETCH_ADD
    p.ea.post_atomic_cmp_swap(p.a2b, ml, 0, remote=desc, remote_offset=roff, compare=0,
                              swap=0xFFFF, wr_id=wr_id)
    return O.ATOMIC_CMP_SWAP


@pytest.mark.parametrize("kind,access,roff,n,mutate,status",
                         [c[1:] for c in REMOTE_CASES], ids=[c[0] for c in REMOTE_CASES])
def test_remote_access__error_completion_and_memory_untouched(pair, kind, access, roff, n,
                                                             mutate, status):
    target = rand_bytes(TLEN, 1)
    target[:64] = 0  # the atomics' compare value matches: only the check stops them
    before = target.copy()
    local = rand_bytes(max(n, 8), 2)
    local_before = local.copy()
    mt = pair.B.register(target, access)
    ml = pair.A.register(local, ALL)
    desc = mt.descriptor()
    if mutate:
        desc = mutate(desc)
    op = _post(pair, kind, ml, desc, roff, n, wr_id=31)
    c = collect_exactly(pair.ea.cq, 1)[0]
    check_comp(c, wr_id=31, opcode=op, status=status, imm=None)
    assert c.peer == pair.a2b
    assert "REM_" in repr(c)
    assert_quiet(pair.eb.cq, 0.05)  # no RECV_WRITE_IMM, no other target completion
    assert np.array_equal(target, before), "target memory changed"
    assert np.array_equal(local, local_before), "local buffer changed by a failed op"
    assert pair.ea.stats()["naks_received"] >= 1
    _works(pair)


def test_remote_access__deregistered_region_is_bad_key(pair):
    target = np.zeros(100, np.uint8)
    mt = pair.B.register(target, ALL)
    desc = mt.descriptor()
    mt.close()
    ml = pair.A.register(rand_bytes(100, 3), ALL)
    pair.ea.post_write(pair.a2b, ml, remote=desc, wr_id=1)
    pair.ea.post_read(pair.a2b, ml, remote=desc, wr_id=2)
    pair.ea.post_atomic_fetch_add(pair.a2b, ml, 0, remote=desc, add=1, wr_id=3)
    got = by_wr_id(collect_exactly(pair.ea.cq, 3))
    assert all(c.status == S.REM_BAD_KEY for c in got.values()), got
    assert not target.any()


def test_remote_access__atomic_allowed_by_remote_write(pair):
    """docs/protocol.md: an ATOMIC_REQ needs REMOTE_ATOMIC *or* REMOTE_WRITE
    (unlike verbs, where only REMOTE_ATOMIC allows it)."""
    target = np.zeros(64, np.uint8)
    set_u64(target, 0, 41)
    mt = pair.B.register(target, LW | rt.Access.REMOTE_WRITE)
    ml = pair.A.register(np.zeros(8, np.uint8), ALL)
    pair.ea.post_atomic_fetch_add(pair.a2b, ml, 0, remote=mt, add=1, wr_id=1)
    check_comp(one(pair.ea.cq), wr_id=1, opcode=O.ATOMIC_FETCH_ADD, status=S.SUCCESS)
    assert u64_at(target, 0) == 42


def test_remote_access__error_then_success_in_flight_together(pair):
    """Failing and succeeding operations posted back to back each get their
    own completion; the good ones are applied."""
    target = np.zeros(TLEN, np.uint8)
    mt = pair.B.register(target, ALL)
    src = rand_bytes(TLEN, 4)
    ms = pair.A.register(src, ALL)
    bad = _bad_rkey(mt.descriptor())
    for i in range(10):
        desc = bad if i % 2 else mt.descriptor()
        pair.ea.post_write(pair.a2b, ms, i * 100, 100, remote=desc, remote_offset=i * 100,
                           wr_id=i)
    got = by_wr_id(collect_exactly(pair.ea.cq, 10))
    for i in range(10):
        assert got[i].status == (S.REM_BAD_KEY if i % 2 else S.SUCCESS), got[i]
        seg = target[i * 100:(i + 1) * 100]
        if i % 2:
            assert not seg.any()
        else:
            assert np.array_equal(seg, src[i * 100:(i + 1) * 100])


# ---------------------------------------------------------------- receive buffer too small


@pytest.mark.parametrize("msg_len", [101, 5000, 200_000], ids=["1pkt", "multi-pkt", "big"])
def test_post_recv__buffer_too_small(pair, msg_len):
    src = rand_bytes(max(msg_len, 600), 5)
    dst = pattern(1000)
    ms = pair.A.register(src)
    md = pair.B.register(dst)
    pair.eb.post_recv(md, 100, 100, wr_id=1)
    pair.ea.post_send(pair.a2b, ms, 0, msg_len, wr_id=2)
    cr = collect_exactly(pair.eb.cq, 1)[0]
    cs = collect_exactly(pair.ea.cq, 1)[0]
    check_comp(cr, wr_id=1, opcode=O.RECV, status=S.LOC_LEN_ERR, byte_len=msg_len)
    check_comp(cs, wr_id=2, opcode=O.SEND, status=S.REM_TOO_SMALL)
    # nothing outside the posted buffer was written
    assert (dst[:100] == 0xA5).all() and (dst[200:] == 0xA5).all()
    # the next message uses the next buffer and succeeds
    pair.eb.post_recv(md, 300, 700, wr_id=3)
    pair.ea.post_send(pair.a2b, ms, 0, 600, wr_id=4)
    check_comp(collect_exactly(pair.eb.cq, 1)[0], wr_id=3, opcode=O.RECV, byte_len=600)
    check_comp(collect_exactly(pair.ea.cq, 1)[0], wr_id=4, opcode=O.SEND, byte_len=600)
    assert np.array_equal(dst[300:900], src[:600])


def test_post_recv__too_small_among_good_ones(pair):
    """Only the message whose buffer is too small fails; order is kept."""
    src = rand_bytes(10_000, 6)
    dst = pattern(10_000)
    ms, md = pair.A.register(src), pair.B.register(dst)
    sizes = [500, 3000, 500, 500]
    caps = [1000, 1000, 1000, 1000]  # the second is too small
    for i, cap in enumerate(caps):
        pair.eb.post_recv(md, i * 2000, cap, wr_id=i)
    for i, n in enumerate(sizes):
        pair.ea.post_send(pair.a2b, ms, i * 2000, n, wr_id=10 + i)
    recvs = collect_exactly(pair.eb.cq, 4)
    assert [c.wr_id for c in recvs] == [0, 1, 2, 3]
    assert [c.status for c in recvs] == [S.SUCCESS, S.LOC_LEN_ERR, S.SUCCESS, S.SUCCESS]
    assert [c.byte_len for c in recvs] == sizes
    sends = by_wr_id(collect_exactly(pair.ea.cq, 4))
    assert [sends[10 + i].status for i in range(4)] == [
        S.SUCCESS, S.REM_TOO_SMALL, S.SUCCESS, S.SUCCESS]
    for i in (0, 2, 3):
        o = i * 2000
        assert np.array_equal(dst[o:o + sizes[i]], src[o:o + sizes[i]])


# ---------------------------------------------------------------- silent peer: TIMEOUT


def test_peer_silent__outstanding_ops_time_out():
    with Pair(timeout_ms=500, rnr_timeout_ms=60_000) as p:
        src = rand_bytes(1 << 20, 7)
        ms = p.A.register(src, ALL)
        tgt = p.B.register(np.zeros(1 << 20, np.uint8), ALL)
        desc = tgt.descriptor()
        _works(p)
        # outstanding before the peer goes away: a send with no receive
        # buffer posted (the receiver keeps answering RNR)
        p.ea.post_send(p.a2b, ms, 0, 1000, wr_id=1)
        wait_for(lambda: p.ea.stats()["rnr_naks"] > 0, what="an RNR NAK")
        p.B.close()
        p.ea.post_send(p.a2b, ms, 0, 1 << 20, wr_id=2)
        p.ea.post_write(p.a2b, ms, 0, 1 << 20, remote=desc, wr_id=3)
        p.ea.post_write(p.a2b, ms, 0, 10, remote=desc, imm=1, wr_id=4)
        p.ea.post_read(p.a2b, ms, 0, 4096, remote=desc, wr_id=5)
        p.ea.post_atomic_fetch_add(p.a2b, ms, 0, remote=desc, add=1, wr_id=6)
        p.ea.post_atomic_cmp_swap(p.a2b, ms, 8, remote=desc, compare=0, swap=1, wr_id=7)
        got = by_wr_id(collect_exactly(p.ea.cq, 7, timeout=10))
        assert sorted(got) == list(range(1, 8))
        assert all(c.status == S.TIMEOUT for c in got.values()), got
        assert got[5].opcode == O.READ and got[6].opcode == O.ATOMIC_FETCH_ADD
        assert np.array_equal(src, rand_bytes(1 << 20, 7)), "local source changed"
        # the peer is now known to be dead: new work fails at once
        p.ea.post_send(p.a2b, ms, 0, 10, wr_id=8)
        check_comp(one(p.ea.cq, 10), wr_id=8, opcode=O.SEND, status=S.PEER_FAILED)
        st = p.ea.stats()
        assert st["peers_failed"] == 1
        # the blocking helper reports it as a CompletionError
        with pytest.raises(rt.CompletionError) as ei:
            p.ea.send(p.a2b, b"hello", timeout=10)
        assert ei.value.status == S.PEER_FAILED
        assert "PEER_FAILED" in str(ei.value)


def test_peer_silent__endpoint_still_serves_other_peers():
    with Pair(timeout_ms=500) as p, rt.Context() as C:
        ec = C.endpoint()
        pc = p.ea.connect(ec.address)
        ms = p.A.register(rand_bytes(100, 8))
        p.B.close()
        p.ea.post_send(p.a2b, ms, wr_id=1)
        check_comp(one(p.ea.cq, 10), wr_id=1, status=S.TIMEOUT)
        buf = np.zeros(100, np.uint8)
        ec.post_recv(C.register(buf), wr_id=2)
        p.ea.post_send(pc, ms, wr_id=3)
        check_comp(one(p.ea.cq), wr_id=3, status=S.SUCCESS)
        check_comp(one(ec.cq), wr_id=2, status=S.SUCCESS, byte_len=100)
        assert np.array_equal(buf, rand_bytes(100, 8))


def test_peer_silent__partially_received_message_times_out():
    with Pair(timeout_ms=500) as p:
        n = 64 << 20
        ms = p.A.register(np.ones(n, np.uint8))
        md = p.B.register(np.zeros(n, np.uint8))
        p.eb.post_recv(md, 0, n, wr_id=1)
        p.ea.post_send(p.a2b, ms, 0, n, wr_id=2)
        wait_for(lambda: p.eb.stats()["rx_packets"] >= 50, what="the transfer started")
        p.A.close()
        got = p.eb.cq.wait(timeout=5)  # 10x timeout_ms
        assert got, "the receive stays outstanding after its sender died"
        check_comp(got[0], wr_id=1, opcode=O.RECV, status=S.TIMEOUT)


# ---------------------------------------------------------------- RNR


def test_rnr__receiver_never_posts_a_buffer():
    with Pair(rnr_timeout_ms=200, timeout_ms=10_000) as p:
        ms = p.A.register(rand_bytes(5000, 9))
        p.ea.post_send(p.a2b, ms, 0, 5000, wr_id=1)
        p.ea.post_send(p.a2b, ms, 0, 10, wr_id=2)
        got = by_wr_id(collect_exactly(p.ea.cq, 2, timeout=10))
        assert got[1].status == S.RNR_TIMEOUT and got[1].opcode == O.SEND
        assert got[2].status == S.RNR_TIMEOUT
        assert p.ea.stats()["rnr_naks"] > 0
        assert_quiet(p.eb.cq, 0.05)


def test_rnr__following_message_with_a_buffer_works():
    """After an RNR timeout the receiver's state moves past the abandoned
    message: the next posted buffer gets the next message.  Repeated, since
    the failure depends on timing (it shows in roughly every second round)."""
    with Pair(rnr_timeout_ms=100, timeout_ms=10_000) as p:
        src = rand_bytes(5000, 10)
        ms = p.A.register(src)
        dst = np.zeros(5000, np.uint8)
        md = p.B.register(dst)
        for rnd in range(8):
            p.ea.post_send(p.a2b, ms, 0, 3000, wr_id=1)
            check_comp(one(p.ea.cq, 10), wr_id=1, status=S.RNR_TIMEOUT)
            dst[:] = 0
            p.eb.post_recv(md, 0, 5000, wr_id=7)
            p.ea.post_send(p.a2b, ms, 1000, 4000, wr_id=2)
            c = one(p.ea.cq, 10)
            assert c.status == S.SUCCESS, f"round {rnd}: {c}"
            check_comp(one(p.eb.cq, 10), wr_id=7, opcode=O.RECV, byte_len=4000)
            assert np.array_equal(dst[:4000], src[1000:])
            assert_quiet(p.eb.cq, 0.05)


def test_rnr__buffer_posted_late_succeeds():
    """RNR is not fatal before rnr_timeout_ms: the sender keeps retrying."""
    with Pair(rnr_timeout_ms=20_000) as p:
        src = rand_bytes(10_000, 11)
        ms = p.A.register(src)
        p.ea.post_send(p.a2b, ms, wr_id=1)
        wait_for(lambda: p.ea.stats()["rnr_naks"] > 0, what="an RNR NAK")
        assert p.ea.cq.poll() == []
        dst = np.zeros(10_000, np.uint8)
        p.eb.post_recv(p.B.register(dst), wr_id=2)
        check_comp(one(p.ea.cq), wr_id=1, status=S.SUCCESS, byte_len=10_000)
        check_comp(one(p.eb.cq), wr_id=2, status=S.SUCCESS, byte_len=10_000)
        assert np.array_equal(src, dst)


# ---------------------------------------------------------------- raw packets


class _Target:
    """Where raw packets go: B's receive port, B's endpoint identity, and
    A's identity (to forge packets 'from' the real peer)."""

    def __init__(self, p: Pair):
        b = parse_address(p.eb.address)
        a = parse_address(p.ea.address)
        assert b["magic"] == b"RA" and b["version"] == 1 and b["family"] == 4
        assert b["port"] == p.B.port == p.B.info()["port"] and b["ip"] == "127.0.0.1"
        assert b["ep_id"] == p.eb.id
        self.port, self.ep, self.nonce = b["port"], b["ep_id"], b["nonce"]
        self.a_ep, self.a_nonce, self.a_port = a["ep_id"], a["nonce"], a["port"]
        self.me = dict(src_ep=self.a_ep, src_nonce=self.a_nonce, src_port=self.a_port)

    def to_b(self, **kw):
        return dict(dst_ep=self.ep, dst_nonce=self.nonce, **kw)


def _trunc(pkt: bytes, total: int) -> bytes:
    """The first ``total`` bytes of ``pkt``, header length field adjusted
    (a consistently truncated packet)."""
    return pkt[:34] + struct.pack(">H", total - 40) + pkt[36:total]


def _malformed_packets(t: _Target):
    """(name, bytes) of packets the receiver must count as malformed."""
    good = data_packet(**t.to_b(payload=b"x" * 10))
    yield "empty", b""
    yield "short", b"\x52\x54\x01\x01garbage"
    yield "header-only-truncated", good[:39]
    yield "bad-magic", b"XX" + good[2:]
    yield "bad-version", good[:2] + b"\x07" + good[3:]
    yield "bad-type", good[:3] + b"\x09" + good[4:]
    yield "len-too-long", good[:34] + struct.pack(">H", len(good)) + good[36:]
    yield "len-too-short", good[:34] + struct.pack(">H", 10) + good[36:]
    yield "padded", good + b"\0" * 7
    yield "data-hdr-truncated", _trunc(data_packet(**t.to_b()), 60)
    yield "data-bad-op", data_packet(**t.to_b(op=9))
    yield "data-bad-flags", data_packet(**t.to_b(dflags=0x80))
    yield "data-offset-past-len", data_packet(**t.to_b(msg_len=5, offset=6))
    yield "data-payload-past-len", data_packet(**t.to_b(msg_len=4, payload=b"12345678"))
    yield "data-no-src-identity", data_packet(**t.to_b(src_ep=0, src_nonce=0, src_port=0))
    yield "csum-flag-bad-crc", data_packet(**t.to_b(flags=HF_CSUM, csum=0x12345678))
    # forged as coming from the real peer A
    yield "ack-bad-nranges", ack_packet(**t.to_b(nranges=3), **t.me)
    yield "ack-bad-range", ack_packet(**t.to_b(cum_psn=0, ranges=[(5, 3)]), **t.me)
    yield "ack-too-many", ack_packet(**t.to_b(ranges=[(i * 4 + 2, i * 4 + 3)
                                                      for i in range(40)]), **t.me)
    yield "ack-unsent-psn", ack_packet(**t.to_b(cum_psn=1_000_000), **t.me)
    yield "nak-bad-kind", nak_packet(**t.to_b(kind=7), **t.me)
    yield "nak-error-success", nak_packet(**t.to_b(kind=1, status=0), **t.me)
    yield "nak-truncated", _trunc(nak_packet(**t.to_b(), **t.me), 40 + 12)
    yield "ack-truncated", _trunc(ack_packet(**t.to_b(), **t.me), 40 + 20)
    yield "data-psn-beyond-window", data_packet(**t.to_b(psn=0x4000_0000, payload=b"z"), **t.me)


def _foreign_packets(t: _Target, stale_nonce: int):
    """(name, bytes) of packets the receiver must count as foreign."""
    yield "wrong-nonce", data_packet(dst_ep=t.ep, dst_nonce=t.nonce ^ 1, payload=b"abc")
    yield "stale-nonce-replay-from-peer", data_packet(
        dst_ep=t.ep, dst_nonce=stale_nonce, psn=1, msg_id=1, aux=1, payload=b"EVIL", **t.me)
    yield "stale-nonce-write", data_packet(
        dst_ep=t.ep, dst_nonce=stale_nonce, op=WOP_WRITE, payload=b"EVIL", **t.me)
    yield "unknown-endpoint", data_packet(dst_ep=777, dst_nonce=t.nonce, payload=b"abc")
    yield "ack-from-stranger", ack_packet(**t.to_b())
    yield "nak-from-stranger", nak_packet(**t.to_b())


def _sender(p: Pair, how: str):
    if how == "udp":
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        port = parse_address(p.eb.address)["port"]

        def send(pkt):
            s.sendto(pkt, ("127.0.0.1", port))
        return send, s.close
    lib = rt.lib
    if not hasattr(lib, "rt_inject_packet"):
        pytest.skip("the Python binding does not expose rt_inject_packet")

    def inject(pkt):
        rc = lib.rt_inject_packet(p.B._ptr, pkt, len(pkt), b"127.0.0.1", 40000)
        assert rc == 0, rt.error_for(rc)
    return inject, lambda: None


def _stat_delta(ep, before, key):
    return ep.stats()[key] - before[key]


@pytest.mark.parametrize("how", ["udp", "inject"])
@pytest.mark.parametrize("checksum", [False, True], ids=["nocsum", "csum"])
def test_raw_packets__malformed_dropped_and_counted(how, checksum):
    with Pair(checksum=checksum) as p:
        _works(p)  # A and B know each other (A's data PSNs are in use)
        t = _Target(p)
        send, done = _sender(p, how)
        recv_buf = pattern(100)
        p.eb.post_recv(p.B.register(recv_buf), wr_id=55)
        before = p.eb.stats()
        pkts = list(_malformed_packets(t))
        try:
            for name, pkt in pkts:
                send(pkt)
            wait_for(lambda: _stat_delta(p.eb, before, "malformed") >= len(pkts), timeout=10,
                     what=f"{len(pkts)} malformed packets counted")
            time.sleep(0.05)
            after = p.eb.stats()
            assert after["malformed"] - before["malformed"] == len(pkts)
            assert after["peers"] == before["peers"]  # no identity from garbage
            assert after["msgs_received"] == before["msgs_received"]
            assert after["rx_packets"] == before["rx_packets"]
            assert p.eb.cq.poll() == []
            assert (recv_buf == 0xA5).all()
            # the real peer is still served, and its posted buffer is intact
            _fill_posted(p, recv_buf, 55)
            _works(p)
        finally:
            done()


@pytest.mark.parametrize("how", ["udp", "inject"])
def test_raw_packets__foreign_and_replayed_dropped_and_counted(how):
    with Pair() as p:
        # an earlier incarnation of B's endpoint: its nonce is now stale
        old = p.B.endpoint()
        stale_nonce = parse_address(old.address)["nonce"]
        old.close()
        _works(p)
        t = _Target(p)
        assert stale_nonce != t.nonce
        send, done = _sender(p, how)
        target = pattern(100)
        mt = p.B.register(target, ALL)
        recv_buf = pattern(100)
        p.eb.post_recv(p.B.register(recv_buf), wr_id=66)
        before = p.eb.stats()
        pkts = list(_foreign_packets(t, stale_nonce))
        # a write forged with the current nonce but to a region we name by
        # its real rkey -- from a *stale* incarnation: must not land
        pkts.append(("stale-write-real-rkey", data_packet(
            dst_ep=t.ep, dst_nonce=stale_nonce, op=WOP_WRITE, rkey=mt.rkey, raddr=0,
            psn=50, msg_id=50, payload=b"EVIL" * 5, **t.me)))
        try:
            for _, pkt in pkts:
                send(pkt)
            wait_for(lambda: _stat_delta(p.eb, before, "foreign") >= len(pkts), timeout=10,
                     what=f"{len(pkts)} foreign packets counted")
            time.sleep(0.05)
            after = p.eb.stats()
            assert after["foreign"] - before["foreign"] == len(pkts)
            assert after["malformed"] == before["malformed"]
            assert after["rx_packets"] == before["rx_packets"]
            assert p.eb.cq.poll() == []
            assert (target == 0xA5).all() and (recv_buf == 0xA5).all()
            _fill_posted(p, recv_buf, 66)
            _works(p)
        finally:
            done()


@pytest.mark.parametrize("how", ["udp", "inject"])
def test_raw_packets__replayed_old_psn_is_a_duplicate(how):
    """A well-formed copy of a packet the peer already delivered (same PSN,
    current nonce) is recognised as a duplicate: no second completion, no
    write into the buffer posted for the next message."""
    with Pair() as p:
        t = _Target(p)
        src = rand_bytes(100, 13)
        dst = np.zeros(100, np.uint8)
        p.eb.post_recv(p.B.register(dst), wr_id=1)
        p.ea.post_send(p.a2b, p.A.register(src), wr_id=2)
        one(p.eb.cq), one(p.ea.cq)
        nxt = pattern(100)
        p.eb.post_recv(p.B.register(nxt), wr_id=3)
        send, done = _sender(p, how)
        before = p.eb.stats()
        try:
            replay = data_packet(**t.to_b(psn=0, op=WOP_SEND, msg_id=0, aux=0,
                                          payload=b"R" * 100), **t.me)
            send(replay)
            wait_for(lambda: _stat_delta(p.eb, before, "duplicates") >= 1, timeout=10,
                     what="the replay counted as duplicate")
            assert p.eb.cq.wait(timeout=0.1) == []
            assert (nxt == 0xA5).all() and np.array_equal(dst, src)
        finally:
            done()
        _fill_posted(p, nxt, 3)
        _works(p)


def test_peer_restart__old_incarnation_is_foreign_new_one_works():
    """B's process restarts on the same port (new nonce): A's traffic for the
    old incarnation is dropped as foreign and times out; connecting to the
    new address works."""
    with rt.Context(timeout_ms=500) as A:
        ea = A.endpoint()
        B = rt.Context()
        eb = B.endpoint()
        old_peer = ea.connect(eb.address)
        port = B.port
        B.close()
        with rt.Context(port=port) as B2:
            eb2 = B2.endpoint()
            assert parse_address(eb2.address)["ep_id"] == parse_address(old_peer.address)["ep_id"]
            assert eb2.address != old_peer.address
            ms = A.register(rand_bytes(100, 15))
            dst = pattern(100)
            eb2.post_recv(B2.register(dst), wr_id=2)
            ea.post_send(old_peer, ms, wr_id=1)
            check_comp(one(ea.cq, 10), wr_id=1, status=S.TIMEOUT)
            assert eb2.stats()["foreign"] > 0
            assert eb2.cq.poll() == [] and (dst == 0xA5).all()
            new_peer = ea.connect(eb2.address)
            assert new_peer != old_peer
            ea.post_send(new_peer, ms, wr_id=3)
            check_comp(one(ea.cq), wr_id=3, status=S.SUCCESS)
            check_comp(one(eb2.cq), wr_id=2, byte_len=100, peer_address=ea.address)
            assert np.array_equal(dst, rand_bytes(100, 15))


@pytest.mark.parametrize("how", ["udp", "inject"])
def test_raw_packets__bundled_datagram_delivers_every_packet(how):
    """A datagram may carry several packets back to back (protocol.md
    section 1): each is received as if it had come alone, in order."""
    with Pair() as p:
        t = _Target(p)
        ident = dict(src_ep=4242, src_nonce=0xB0B, src_port=9)  # a new sender
        bufs = [np.zeros(n, np.uint8) for n in (10, 20, 30)]
        mr = [p.B.register(b) for b in bufs]
        for i, m in enumerate(mr):
            p.eb.post_recv(m, wr_id=100 + i)
        pays = [rand_bytes(n, 20 + n).tobytes() for n in (10, 20, 30)]
        dg = b"".join(data_packet(**t.to_b(psn=i, msg_id=i, aux=i, payload=pays[i]), **ident)
                      for i in range(3))
        send, done = _sender(p, how)
        try:
            send(dg)
            got = []
            end = time.monotonic() + 10
            while len(got) < 3 and time.monotonic() < end:
                got += p.eb.cq.wait(timeout=0.5)
        finally:
            done()
        assert [(c.wr_id, c.byte_len, c.ok) for c in got] == [(100, 10, True), (101, 20, True),
                                                             (102, 30, True)]
        assert [bytes(b) for b in bufs] == pays


def _bad_bundle(t: _Target, kind: str) -> bytes:
    def pkt(i, src_ep=4244, pay=b"k", length=None):
        b = data_packet(**t.to_b(psn=i, msg_id=i, aux=i, payload=pay),
                        src_ep=src_ep, src_nonce=0xB0D, src_port=9)
        return b if length is None else b[:34] + struct.pack(">H", length) + b[36:]
    good = pkt(0, pay=b"G" * 16)
    return {
        "17-packets": b"".join(pkt(i) for i in range(17)),           # 17 x 97 bytes
        "over-1472-bytes": pkt(0, pay=b"a" * 700) + pkt(1, pay=b"b" * 700),
        "two-senders": pkt(0) + pkt(1, src_ep=4245),
        "short-tail": good + pkt(1, pay=b"H" * 16)[:30],
        "tail-len-too-long": good + pkt(1, pay=b"H" * 16, length=500),
        "tail-len-too-short": good + pkt(1, pay=b"H" * 16, length=10),
    }[kind]


@pytest.mark.parametrize("how", ["udp", "inject"])
@pytest.mark.parametrize("kind", ["17-packets", "over-1472-bytes", "two-senders", "short-tail",
                                  "tail-len-too-long", "tail-len-too-short"])
def test_raw_packets__bad_bundle_delivers_nothing(how, kind):
    """A bundle must tile its datagram exactly (the packets' len fields) and
    hold at most 16 packets in at most 1472 bytes, all between the same two
    endpoints: one datagram then creates at most one peer and provokes at
    most 16 small replies (no reflection).  Anything else is one malformed
    datagram: not even its good first packet lands."""
    with Pair() as p:
        t = _Target(p)
        buf = pattern(64)
        p.eb.post_recv(p.B.register(buf), wr_id=7)
        dg = _bad_bundle(t, kind)
        send, done = _sender(p, how)
        before = p.eb.stats()
        try:
            send(dg)
            wait_for(lambda: _stat_delta(p.eb, before, "malformed") >= 1, timeout=10,
                     what="the datagram counted as malformed")
            time.sleep(0.05)
            after = p.eb.stats()
            assert after["malformed"] - before["malformed"] == 1
            assert after["rx_packets"] == before["rx_packets"]
            assert p.eb.cq.poll() == []
            assert (buf == 0xA5).all()
        finally:
            done()


@pytest.mark.parametrize("how", ["udp", "inject"])
def test_raw_packets__forged_strangers_do_not_fill_the_peer_table(how):
    """Malformed DATA packets, each from a new made-up identity, are counted
    and create no peer: garbage must not use up the peer table (a full
    table refuses new, real peers)."""
    with Pair() as p:
        _works(p)
        t = _Target(p)
        send, done = _sender(p, how)
        before = p.eb.stats()
        n = 0
        try:
            for i in range(1, 101):
                ident = dict(src_ep=1000 + i, src_nonce=0x5EED0000 + i, src_port=40000 + i)
                for kw in (dict(op=9), dict(dflags=0x80), dict(msg_len=5, offset=6),
                           dict(psn=0x4000_0000)):
                    send(data_packet(**t.to_b(payload=b"x", **kw), **ident))
                    n += 1
            send(_trunc(data_packet(**t.to_b(), src_ep=7, src_nonce=77, src_port=7777), 60))
            n += 1
            wait_for(lambda: _stat_delta(p.eb, before, "malformed") >= n, timeout=10,
                     what=f"{n} malformed packets counted")
            assert p.eb.stats()["peers"] == before["peers"]
            _works(p)
        finally:
            done()


def test_raw_packets__unknown_sender_first_contact_is_served():
    """Connectionless: a well-formed first packet from an unknown endpoint
    creates a peer (the real protocol works without connect() on the
    receiving side)."""
    with rt.Context() as A, rt.Context() as B:
        ea, eb = A.endpoint(), B.endpoint()
        dst = np.zeros(50, np.uint8)
        eb.post_recv(B.register(dst), wr_id=1)
        src = rand_bytes(50, 14)
        ea.post_send(ea.connect(eb.address), A.register(src), wr_id=2)
        c = one(eb.cq)
        check_comp(c, wr_id=1, byte_len=50, peer_address=ea.address)
        assert eb.connect(ea.address) == c.peer
        one(ea.cq)
        assert np.array_equal(src, dst)


_fuzz_base = st.sampled_from(["random", "data", "ack", "nak"])


@settings(max_examples=60, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(pkts=st.lists(st.tuples(_fuzz_base, st.binary(min_size=0, max_size=120),
                               st.lists(st.tuples(st.integers(0, 200), st.integers(1, 255)),
                                        max_size=6),
                               st.integers(1, 2**32 - 1)),
                     min_size=1, max_size=25))
def test_rt_inject_packet__fuzzed_packets_never_hurt(pkts):
    """Random datagrams and randomly mutated well-formed ones (from strangers)
    through the real receive path: no crash, no completion, no memory touched,
    and the real peer is still served."""
    if not hasattr(rt.lib, "rt_inject_packet"):
        pytest.skip("rt_inject_packet is not exposed")
    with Pair() as p:
        t = _Target(p)
        guard = pattern(4096)
        mg = p.B.register(guard, ALL)  # a region the fuzzed packets must not reach
        for base, blob, flips, ident in pkts:
            if base == "random":
                pkt = bytearray(blob)
            elif base == "data":
                pkt = bytearray(data_packet(**t.to_b(op=1 + ident % 6, rkey=ident, payload=blob,
                                                     msg_len=len(blob) + ident % 3),
                                            src_ep=ident, src_nonce=ident * 7 + 1,
                                            src_port=ident % 65535 + 1))
            elif base == "ack":
                pkt = bytearray(ack_packet(**t.to_b(cum_psn=ident), src_ep=ident,
                                           src_nonce=ident + 1))
            else:
                pkt = bytearray(nak_packet(**t.to_b(psn=ident), src_ep=ident,
                                           src_nonce=ident + 1))
            for pos, x in flips:
                if pos < len(pkt) and not 8 <= pos < 24:  # keep dst_ep/dst_nonce
                    pkt[pos] ^= x
            rc = rt.lib.rt_inject_packet(p.B._ptr, bytes(pkt), len(pkt), b"127.0.0.1", 40001)
            assert rc == 0
        assert p.eb.cq.wait(timeout=0.02) == []
        assert (guard == 0xA5).all() and not mg.closed
        _works(p)
        assert p.eb.stats()["peers_failed"] == 0


def test_rt_inject_packet__bad_arguments(pair):
    lib = rt.lib
    if not hasattr(lib, "rt_inject_packet"):
        pytest.skip("rt_inject_packet is not exposed")
    assert lib.rt_inject_packet(pair.B._ptr, b"x" * 10, 70_000, b"127.0.0.1", 1) < 0
    assert lib.rt_inject_packet(pair.B._ptr, b"x" * 10, 10, b"not-an-ip", 1) < 0
    assert lib.rt_inject_packet(pair.B._ptr, rt.ffi.NULL, 0, b"127.0.0.1", 1) == 0
    _works(pair)


# ---------------------------------------------------------------- Python misuse


@pytest.fixture
def ctx():
    with rt.Context() as c:
        yield c


@pytest.mark.parametrize("obj", [[1, 2, 3], "text", 123, None, object()],
                         ids=["list", "str", "int", "None", "object"])
def test_register__foreign_buffer_types(ctx, obj):
    with pytest.raises(TypeError) as ei:
        ctx.register(obj)
    assert "bytearray" in str(ei.value)  # says what to use instead


@pytest.mark.parametrize("buf", [b"read only", memoryview(b"abc"),
                                 np.frombuffer(b"12345678", np.uint8)],
                         ids=["bytes", "ro-memoryview", "ro-numpy"])
def test_register__read_only_buffer(ctx, buf):
    with pytest.raises(rt.InvalidArgument) as ei:
        ctx.register(buf)
    assert "writable" in str(ei.value)


def test_register__non_contiguous(ctx):
    with pytest.raises(rt.InvalidArgument, match="ascontiguousarray"):
        ctx.register(np.zeros((4, 4), np.uint8)[:, 1])


def test_register__bad_access_flags(ctx):
    with pytest.raises(rt.InvalidArgument, match="access"):
        ctx.register(bytearray(8), 1 << 9)
    with pytest.raises(rt.InvalidArgument, match="LOCAL_WRITE"):
        ctx.register(bytearray(8), rt.Access.REMOTE_WRITE)


def test_register__other_buffer_types_work(ctx):
    import array
    import mmap
    for buf in (bytearray(16), np.zeros(4, np.uint32), array.array("q", [0, 0]),
                mmap.mmap(-1, 4096), memoryview(bytearray(8))):
        with ctx.register(buf, ALL) as mr:
            assert mr.length == memoryview(buf).nbytes
    with ctx.register(bytearray(0)) as mr:
        assert mr.length == 0


def _local_bounds_calls(ep, peer, mr):
    # mr is 100 bytes
    yield "send-len", lambda: ep.post_send(peer, mr, 0, 101)
    yield "send-offset", lambda: ep.post_send(peer, mr, 101)
    yield "send-sum", lambda: ep.post_send(peer, mr, 50, 51)
    yield "send-huge", lambda: ep.post_send(peer, mr, 1, (1 << 64) - 1)
    yield "recv-sum", lambda: ep.post_recv(mr, 90, 20)
    yield "recv-offset", lambda: ep.post_recv(mr, 200)
    yield "write", lambda: ep.post_write(peer, mr, 90, 20, remote=mr)
    yield "read", lambda: ep.post_read(peer, mr, 90, 20, remote=mr)
    yield "atomic", lambda: ep.post_atomic_fetch_add(peer, mr, 96, remote=mr, add=1)
    yield "atomic-past-end", lambda: ep.post_atomic_cmp_swap(peer, mr, 100, remote=mr,
                                                             compare=0, swap=1)


def test_post__local_range_out_of_bounds(pair):
    mr = pair.A.register(np.zeros(100, np.uint8), ALL)
    for name, call in _local_bounds_calls(pair.ea, pair.a2b, mr):
        with pytest.raises(rt.BoundsError) as ei:
            call()
        msg = str(ei.value)
        assert "region" in msg and ("exceeds" in msg or "beyond" in msg), (name, msg)
        assert isinstance(ei.value, IndexError)
    assert pair.ea.cq.wait(timeout=0.05) == []
    _works(pair)


def test_post__receive_side_needs_local_write(pair):
    mr = pair.A.register(np.zeros(100, np.uint8), rt.Access.REMOTE_READ)
    remote = pair.B.register(np.zeros(100, np.uint8), ALL)
    for call in (lambda: pair.ea.post_recv(mr),
                 lambda: pair.ea.post_read(pair.a2b, mr, 0, 10, remote=remote),
                 lambda: pair.ea.post_atomic_fetch_add(pair.a2b, mr, 0, remote=remote, add=1)):
        with pytest.raises(rt.AccessError, match="LOCAL_WRITE"):
            call()


@pytest.mark.parametrize("desc", [bytes(32), b"x" * 32, b"RM", b"short", b"x" * 33],
                         ids=["zeros", "garbage", "2-bytes", "5-bytes", "33-bytes"])
def test_post__bad_descriptor_bytes(pair, desc):
    mr = pair.A.register(np.zeros(100, np.uint8), ALL)
    for call in (lambda: pair.ea.post_write(pair.a2b, mr, 0, 10, remote=desc),
                 lambda: pair.ea.post_read(pair.a2b, mr, 0, 10, remote=desc),
                 lambda: pair.ea.post_atomic_fetch_add(pair.a2b, mr, 0, remote=desc, add=1)):
        with pytest.raises(rt.AddressError) as ei:
            call()
        assert "descriptor()" in str(ei.value)


def test_post__descriptor_with_bad_version(pair):
    mr = pair.A.register(np.zeros(100, np.uint8), ALL)
    good = pair.B.register(np.zeros(100, np.uint8), ALL).descriptor()
    assert good[:2] == b"RM"
    with pytest.raises(rt.AddressError):
        pair.ea.post_write(pair.a2b, mr, 0, 10, remote=good[:2] + b"\x09" + good[3:])


def test_remote_region__validation():
    with pytest.raises(rt.InvalidArgument, match="32 bytes"):
        rt.RemoteRegion(b"abc")
    with pytest.raises(TypeError):
        rt.RemoteRegion(12)


def test_post__missing_or_wrong_remote(pair):
    mr = pair.A.register(np.zeros(100, np.uint8), ALL)
    with pytest.raises(TypeError, match="descriptor"):
        pair.ea.post_write(pair.a2b, mr, 0, 10, remote=None)
    with pytest.raises(TypeError, match="descriptor"):
        pair.ea.post_read(pair.a2b, mr, 0, 10, remote=1234)


@pytest.mark.parametrize("addr", [bytes(32), b"short", b"x" * 32, b"RA" + bytes(30)],
                         ids=["zeros", "short", "garbage", "magic-only"])
def test_connect__bad_address_bytes(pair, addr):
    with pytest.raises(rt.AddressError) as ei:
        pair.ea.connect(addr)
    assert "Endpoint.address" in str(ei.value)


def test_connect__address_field_validation(pair):
    a = parse_address(pair.eb.address)
    ok = make_address(port=a["port"], ep_id=a["ep_id"], nonce=a["nonce"])
    assert ok == pair.eb.address
    assert pair.ea.connect(ok) == pair.a2b
    for bad in (make_address(port=0, ep_id=1, nonce=5),
                make_address(port=a["port"], ep_id=0, nonce=5),
                make_address(port=a["port"], ep_id=1, nonce=0),
                make_address(port=a["port"], ep_id=1, nonce=5, version=2),
                make_address(port=a["port"], ep_id=1, nonce=5, family=6),
                make_address(port=a["port"], ep_id=1, nonce=5, magic=b"XX")):
        with pytest.raises(rt.AddressError):
            pair.ea.connect(bad)
    with pytest.raises(TypeError, match="bytes-like"):
        pair.ea.connect(12345)


def test_post__wrong_object_types(pair):
    mr = pair.A.register(np.zeros(100, np.uint8), ALL)
    other_mr = pair.B.register(np.zeros(100, np.uint8), ALL)
    with pytest.raises(TypeError, match="MemoryRegion"):
        pair.ea.post_send(pair.a2b, bytearray(10))
    with pytest.raises(TypeError, match="connect"):
        pair.ea.post_send(pair.eb.address, mr)
    with pytest.raises(rt.InvalidArgument, match="another Context"):
        pair.ea.post_send(pair.a2b, other_mr)
    with pytest.raises(rt.InvalidArgument, match="connect"):
        pair.ea.post_send(pair.b2a, mr)  # B's handle used on A's endpoint
    with pytest.raises(TypeError, match="int"):
        pair.ea.post_send(pair.a2b, mr, "0")
    with pytest.raises(rt.InvalidArgument, match="another Context"):
        pair.A.endpoint(pair.B.completion_queue())


@pytest.mark.parametrize("kw,word", [
    (dict(wr_id=-1), "wr_id"), (dict(wr_id=1 << 63), "reserved"),
    (dict(offset=-1), "offset"), (dict(length=-5), "length"),
])
def test_post__bad_integer_arguments(pair, kw, word):
    mr = pair.A.register(np.zeros(100, np.uint8), ALL)
    with pytest.raises(rt.InvalidArgument) as ei:
        pair.ea.post_send(pair.a2b, mr, **kw)
    assert word in str(ei.value)


def test_post__bad_imm_and_operands(pair):
    mr = pair.A.register(np.zeros(100, np.uint8), ALL)
    with pytest.raises(rt.InvalidArgument, match="imm"):
        pair.ea.post_write(pair.a2b, mr, 0, 1, remote=mr, imm=1 << 32)
    with pytest.raises(rt.InvalidArgument, match="imm"):
        pair.ea.post_write(pair.a2b, mr, 0, 1, remote=mr, imm=-1)
    with pytest.raises(rt.InvalidArgument, match="add"):
        pair.ea.post_atomic_fetch_add(pair.a2b, mr, 0, remote=mr, add=1 << 64)
    with pytest.raises(rt.InvalidArgument, match="swap"):
        pair.ea.post_atomic_cmp_swap(pair.a2b, mr, 0, remote=mr, compare=0, swap=-(1 << 64))


def test_context__unknown_keyword():
    with pytest.raises(TypeError) as ei:
        rt.Context(no_such_option=1)
    assert "no_such_option" in str(ei.value) and "valid" in str(ei.value)
    with pytest.raises(TypeError) as ei:
        rt.Context(fault=dict(drop=0.1, explode=1))
    assert "explode" in str(ei.value) and "valid" in str(ei.value)
    with pytest.raises(TypeError):
        rt.Context(fault=[0.1])


@pytest.mark.parametrize("kw,word", [
    (dict(mtu=100), "mtu"), (dict(mtu=70_000), "mtu"), (dict(mtu=-1), "mtu"),
    (dict(timeout_ms=0), "timeout_ms"), (dict(rnr_timeout_ms=0), "rnr_timeout_ms"),
    (dict(num_paths=0), "num_paths"), (dict(num_paths=100_000), "num_paths"),
    (dict(port=-1), "port"), (dict(port=70_000), "port"),
    (dict(progress="sometimes"), "progress"), (dict(gso="maybe"), "gso"),
    (dict(cc="nope"), "swift"), (dict(bind="not-an-ip"), "IPv4"),
    (dict(rto_min_us=10), "rto_min_us"), (dict(busy_poll_us=100_000_000), "busy_poll_us"),
    (dict(fault=dict(drop=1.5)), "probability"), (dict(fault=dict(dup=-0.1)), "probability"),
    (dict(fault=dict(delay_us=100_000_000)), "delay_us"),
    (dict(max_inflight_bytes=10), "max_inflight_bytes"),
    (dict(cc_scope=2), "cc_scope"), (dict(spray_unit=5), "spray_unit"),
])
def test_context__bad_config_values(kw, word):
    with pytest.raises(rt.InvalidArgument) as ei:
        rt.Context(**kw)
    assert word in str(ei.value)


def test_context__bad_config_types():
    with pytest.raises(TypeError, match="mtu"):
        rt.Context(mtu="big")
    with pytest.raises(TypeError, match="bind"):
        rt.Context(bind=12)


def test_wait__bad_arguments(pair):
    with pytest.raises(TypeError, match="timeout"):
        pair.ea.cq.wait(timeout="soon")
    with pytest.raises(rt.InvalidArgument, match="NaN"):
        pair.ea.cq.wait(timeout=float("nan"))
    with pytest.raises(rt.InvalidArgument, match="n must be"):
        pair.ea.cq.wait(timeout=0, n=0)
    assert pair.ea.cq.wait(timeout=-1) == []  # negative = do not wait


def test_recv__timeout_raises_timeout_error(pair):
    with pytest.raises(rt.RTTimeoutError) as ei:
        pair.eb.recv(timeout=0.05)
    assert isinstance(ei.value, TimeoutError) and "0.05" in str(ei.value)
    with pytest.raises(rt.InvalidArgument, match="max_size"):
        pair.eb.recv(timeout=0.01, max_size=0)


def test_recv__message_larger_than_max_size(pair):
    pair.eb.prepare_recv(1, max_size=100)
    with pytest.raises(rt.CompletionError) as ei:
        pair.ea.send(pair.a2b, b"x" * 5000, timeout=10)
    assert ei.value.status == S.REM_TOO_SMALL and "REM_TOO_SMALL" in str(ei.value)
    with pytest.raises(rt.CompletionError) as ei:
        pair.eb.recv(timeout=10, max_size=100)
    assert ei.value.status == S.LOC_LEN_ERR
    assert ei.value.completion.byte_len == 5000  # tells how big a buffer is needed
    # the buffer that replaced the failed one is big enough for the message
    # that did not fit: sending it again goes through
    pair.ea.send(pair.a2b, b"z" * 5000, timeout=10)
    assert pair.eb.recv(timeout=10, max_size=100)[0] == b"z" * 5000
    # and smaller messages still do
    pair.ea.send(pair.a2b, b"y" * 1000, timeout=10)
    assert pair.eb.recv(timeout=10, max_size=100)[0] == b"y" * 1000


def test_send__helper_times_out_without_a_receive_buffer():
    with Pair(rnr_timeout_ms=60_000) as p:
        with pytest.raises(rt.RTTimeoutError) as ei:
            p.ea.send(p.a2b, b"nobody listens", timeout=0.3)
        assert isinstance(ei.value, TimeoutError) and "0.3" in str(ei.value)
        # the abandoned helper operation never shows up as a user completion
        assert p.ea.cq.wait(timeout=0.2) == []


def test_send__helper_rnr_timeout_says_what_to_do():
    """A blocking send() to an endpoint with no buffer posted fails with the
    RNR status and says how to fix it (the common single-thread mistake:
    send() first, recv() after)."""
    with Pair(rnr_timeout_ms=300) as p:
        with pytest.raises(rt.CompletionError) as ei:
            p.ea.send(p.a2b, b"nobody posted", timeout=10)
        assert ei.value.status == rt.Status.RNR_TIMEOUT
        assert isinstance(ei.value, rt.CompletionTimeoutError)
        assert isinstance(ei.value, TimeoutError)  # `except TimeoutError` catches it
        assert "prepare_recv()" in str(ei.value)
        p.eb.prepare_recv()
        p.ea.send(p.a2b, b"now it lands", timeout=10)
        data, _ = p.eb.recv(timeout=10)
        assert data == b"now it lands"


def test_send__helper_to_a_silent_peer_is_a_timeout_error():
    """The peer's endpoint is gone: the helper's send completes with TIMEOUT
    within timeout_ms, raised as CompletionTimeoutError (a TimeoutError); a
    second send to the failed peer is a CompletionPeerError (a
    ConnectionError).  Both pickle with their class."""
    import pickle
    with Pair(timeout_ms=300) as p:
        p.eb.close()
        with pytest.raises(TimeoutError) as ei:
            p.ea.send(p.a2b, b"anyone?", timeout=10)
        assert type(ei.value) is rt.CompletionTimeoutError
        assert ei.value.status == rt.Status.TIMEOUT
        with pytest.raises(ConnectionError) as ei2:
            p.ea.send(p.a2b, b"still?", timeout=10)
        assert isinstance(ei2.value, rt.CompletionPeerError)
        assert ei2.value.status == rt.Status.PEER_FAILED
        for e in (ei.value, ei2.value):
            back = pickle.loads(pickle.dumps(e))
            assert type(back) is type(e) and back.status == e.status and str(back) == str(e)


def test_send__data_not_bytes_like(pair):
    with pytest.raises(TypeError, match="bytes-like"):
        pair.ea.send(pair.a2b, 12345)
    with pytest.raises(TypeError, match="Peer"):
        pair.ea.send(b"x", b"data")


def test_checksum__required_on_one_side_only_is_logged(caplog):
    """A context that requires checksums (checksum=True, or fault corruption)
    drops a peer's packets that carry none: counted as malformed, and said
    once in the log with what to change - not only a counter."""
    import logging
    with caplog.at_level(logging.WARNING, logger="rtransport"):
        with Pair(b=dict(checksum=True)) as p:
            src = rand_bytes(100, 3)
            p.eb.post_recv(p.B.register(np.zeros(100, np.uint8)), wr_id=1)
            p.ea.post_send(p.a2b, p.A.register(src), wr_id=2)
            wait_for(lambda: p.eb.stats()["malformed"] >= 2, timeout=10,
                     what="packets without a checksum dropped")
            assert p.eb.stats()["msgs_received"] == 0
    msgs = [r.getMessage() for r in caplog.records if "without a checksum" in r.getMessage()]
    assert len(msgs) == 1, msgs
    assert "enable checksum on the peer" in msgs[0]
