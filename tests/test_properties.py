"""Property tests (hypothesis): random message sizes, random mixes of
send/write/read/atomic operations and random fault schedules (drop, dup,
reorder, delay, corrupt) on both sides.  Whatever the schedule: every
operation completes exactly once with the right completion, every byte
lands bit-exact in the right place and nowhere else, duplicates never make
extra completions, and atomics apply exactly once."""

from __future__ import annotations

import time

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rtransport as rt
from helpers import (
    ALL, U64, Pair, assert_quiet, by_wr_id, collect, rand_bytes, set_u64, u64_at,
)

S = rt.Status
O = rt.Opcode

PROP = dict(deadline=None, derandomize=True, database=None, print_blob=True,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                   HealthCheck.function_scoped_fixture])
# generous: a failure is a protocol stall, not slowness
WAIT_S = 60.0
CTX = dict(timeout_ms=20_000, rnr_timeout_ms=20_000)

probability = st.sampled_from([0.0, 0.01, 0.05, 0.1, 0.2])
faults = st.fixed_dictionaries({
    "seed": st.integers(1, 2**31),
    "drop": probability,
    "dup": probability,
    "reorder": probability,
    "delay": probability,
    "delay_us": st.sampled_from([20, 200, 1000]),
})


def _pair(fa: dict | None, fb: dict | None, **kw) -> Pair:
    return Pair(a=dict(fault=fa) if fa else None, b=dict(fault=fb) if fb else None,
                **CTX, **kw)


def _sizes(max_size=30_000):
    interesting = st.sampled_from([0, 1, 1375, 1376, 1377, 2752, 4095, 4096, 4097])
    return st.one_of(interesting, st.integers(0, max_size))


def _fault_stats_ok(p: Pair):
    for ep in (p.ea, p.eb):
        st_ = ep.stats()
        assert st_["peers_failed"] == 0
        assert st_["inflight_bytes"] == 0


# ---------------------------------------------------------------- sends


@settings(max_examples=30, **PROP)
@given(sizes=st.lists(_sizes(150_000), min_size=1, max_size=12), fa=faults, fb=faults,
       slack=st.integers(0, 100))
def test_post_send__random_sizes_and_faults_exactly_once_in_order(sizes, fa, fb, slack):
    with _pair(fa, fb) as p:
        slot = max(sizes) + slack + 8
        k = len(sizes)
        src = rand_bytes(slot * k, fa["seed"])
        dst = np.full(slot * k, 0xA5, np.uint8)
        ms, md = p.A.register(src), p.B.register(dst)
        for i in range(k):
            p.eb.post_recv(md, i * slot + 3, sizes[i] + slack, wr_id=100 + i)
        for i, n in enumerate(sizes):
            p.ea.post_send(p.a2b, ms, i * slot, n, wr_id=i)
        sends = by_wr_id(collect(p.ea.cq, k, WAIT_S))
        recvs = collect(p.eb.cq, k, WAIT_S)
        assert_quiet(p.ea.cq, 0.1)
        assert_quiet(p.eb.cq, 0.05)
        assert sorted(sends) == list(range(k))
        assert [c.wr_id for c in recvs] == [100 + i for i in range(k)], "send order"
        expect = np.full(slot * k, 0xA5, np.uint8)
        for i, n in enumerate(sizes):
            s, r = sends[i], recvs[i]
            assert (s.opcode, s.status, s.byte_len) == (O.SEND, S.SUCCESS, n), s
            assert (r.opcode, r.status, r.byte_len, r.imm) == (O.RECV, S.SUCCESS, n, None), r
            assert r.peer.address == p.ea.address
            expect[i * slot + 3:i * slot + 3 + n] = src[i * slot:i * slot + n]
        assert np.array_equal(dst, expect)
        assert p.eb.stats()["msgs_received"] == k
        _fault_stats_ok(p)


# ---------------------------------------------------------------- operation mixes

op_strategy = st.one_of(
    st.tuples(st.just("send"), _sizes()),
    st.tuples(st.just("write"), _sizes()),
    st.tuples(st.just("write_imm"), _sizes()),
    st.tuples(st.just("read"), _sizes()),
    st.tuples(st.just("fadd"), st.integers(-(1 << 63), U64)),
    st.tuples(st.just("cas"), st.booleans()),
)


def _run_mix(p: Pair, ops, seed: int):
    """Post every op at once, then check completions and both memories."""
    rng = np.random.default_rng(seed)
    # layout: every op owns its ranges; atomics own 8-byte aligned words
    a_len = sum(8 if k in ("fadd", "cas") else arg for k, arg in ops) + 8 * len(ops) + 64
    b_len = a_len + 64
    amem = rand_bytes(a_len, seed)
    bmem = rand_bytes(b_len, seed + 1)
    aexp, bexp = amem.copy(), bmem.copy()
    ma = p.A.register(amem, ALL)
    mb = p.B.register(bmem, ALL)
    desc = mb.descriptor()
    a_off = b_off = 0
    exp_a, exp_recv, exp_imm = {}, [], {}
    for i, (kind, arg) in enumerate(ops):
        if kind in ("fadd", "cas"):
            a_off = (a_off + 7) & ~7
            b_off = (b_off + 7) & ~7
            old = int(rng.integers(0, 1 << 63)) * 2 + int(rng.integers(0, 2))
            set_u64(bmem, b_off, old)
            set_u64(bexp, b_off, old)
            if kind == "fadd":
                p.ea.post_atomic_fetch_add(p.a2b, ma, a_off, remote=desc, remote_offset=b_off,
                                           add=arg, wr_id=i)
                new = (old + arg) & U64
                exp_a[i] = (O.ATOMIC_FETCH_ADD, 8)
            else:
                compare = old if arg else (old ^ 1)
                swap = int(rng.integers(0, 1 << 63))
                p.ea.post_atomic_cmp_swap(p.a2b, ma, a_off, remote=desc, remote_offset=b_off,
                                          compare=compare, swap=swap, wr_id=i)
                new = swap if arg else old
                exp_a[i] = (O.ATOMIC_CMP_SWAP, 8)
            set_u64(aexp, a_off, old)
            set_u64(bexp, b_off, new)
            a_off += 8
            b_off += 8
            continue
        n = arg
        if kind == "send":
            cap = n + int(rng.integers(0, 3))
            p.eb.post_recv(mb, b_off, cap, wr_id=1000 + i)
            p.ea.post_send(p.a2b, ma, a_off, n, wr_id=i)
            bexp[b_off:b_off + n] = amem[a_off:a_off + n]
            exp_recv.append((1000 + i, n))
            exp_a[i] = (O.SEND, n)
            b_off += cap
        elif kind in ("write", "write_imm"):
            imm = (i * 7919) & 0xFFFFFFFF if kind == "write_imm" else None
            p.ea.post_write(p.a2b, ma, a_off, n, remote=desc, remote_offset=b_off, imm=imm,
                            wr_id=i)
            bexp[b_off:b_off + n] = amem[a_off:a_off + n]
            if imm is not None:
                exp_imm[imm] = n
            exp_a[i] = (O.WRITE, n)
            b_off += n
        else:  # read
            p.ea.post_read(p.a2b, ma, a_off, n, remote=desc, remote_offset=b_off, wr_id=i)
            aexp[a_off:a_off + n] = bmem[b_off:b_off + n]
            exp_a[i] = (O.READ, n)
            b_off += n
        a_off += n
        assert a_off <= a_len and b_off <= b_len
    ca = by_wr_id(collect(p.ea.cq, len(ops), WAIT_S))
    cb = collect(p.eb.cq, len(exp_recv) + len(exp_imm), WAIT_S)
    assert_quiet(p.ea.cq, 0.1)
    assert_quiet(p.eb.cq, 0.05)
    assert sorted(ca) == list(range(len(ops)))
    for i, (opc, n) in exp_a.items():
        c = ca[i]
        assert (c.opcode, c.status, c.byte_len, c.imm) == (opc, S.SUCCESS, n, None), (ops[i], c)
        assert c.peer == p.a2b
    recvs = [c for c in cb if c.opcode == O.RECV]
    imms = [c for c in cb if c.opcode == O.RECV_WRITE_IMM]
    assert len(recvs) + len(imms) == len(cb), cb
    assert [(c.wr_id, c.byte_len) for c in recvs] == exp_recv, "receive order/lengths"
    assert all(c.ok and c.peer.address == p.ea.address for c in cb), cb
    assert sorted((c.imm, c.byte_len) for c in imms) == sorted(exp_imm.items())
    assert np.array_equal(bmem, bexp), "target memory differs"
    assert np.array_equal(amem, aexp), "initiator memory differs"


@settings(max_examples=40, **PROP)
@given(ops=st.lists(op_strategy, min_size=1, max_size=14), fa=faults, fb=faults)
def test_operations__random_mix_and_faults_exactly_once(ops, fa, fb):
    with _pair(fa, fb) as p:
        _run_mix(p, ops, fa["seed"] & 0xFFFF)
        _fault_stats_ok(p)


@settings(max_examples=8, **PROP)
@given(ops=st.lists(op_strategy, min_size=1, max_size=10))
def test_operations__random_mix_without_faults(ops):
    with _pair(None, None) as p:
        _run_mix(p, ops, len(ops))
        a, b = p.ea.stats(), p.eb.stats()
        # (duplicates may be non-zero: a spurious retransmission is legal)
        assert a["malformed"] == b["malformed"] == 0
        assert a["foreign"] == b["foreign"] == 0
        assert a["fault_drops"] == b["fault_drops"] == 0


# ---------------------------------------------------------------- atomics exactly once


@settings(max_examples=15, **PROP)
@given(n=st.integers(1, 80), seed=st.integers(1, 2**31),
       dup=st.sampled_from([0.1, 0.2, 0.5]), drop=st.sampled_from([0.0, 0.05, 0.2]),
       reorder=st.sampled_from([0.0, 0.2]))
def test_atomic_fetch_add__duplicated_packets_apply_exactly_once(n, seed, dup, drop, reorder):
    f = dict(seed=seed, dup=dup, drop=drop, reorder=reorder, delay_us=300)
    with _pair(f, dict(f, seed=seed + 1)) as p:
        word = np.zeros(8, np.uint8)
        mw = p.B.register(word, ALL)
        olds = np.zeros(8 * n, np.uint8)
        mo = p.A.register(olds, ALL)
        for i in range(n):
            p.ea.post_atomic_fetch_add(p.a2b, mo, 8 * i, remote=mw, add=1, wr_id=i)
        comps = by_wr_id(collect(p.ea.cq, n, WAIT_S))
        assert_quiet(p.ea.cq, 0.1)
        assert sorted(comps) == list(range(n))
        assert all(c.ok and c.opcode == O.ATOMIC_FETCH_ADD for c in comps.values())
        assert u64_at(word, 0) == n, "fetch-add applied more or less than once"
        assert sorted(olds.view(np.uint64).tolist()) == list(range(n))
        assert_quiet(p.eb.cq, 0.01)


def test_atomic_fetch_add__heavy_duplication_counted():
    """Not hypothesis: a fixed schedule where duplicates certainly happen,
    so the counters prove the duplicate path was exercised."""
    n = 200
    f = dict(seed=5, dup=0.5)
    with _pair(f, dict(f, seed=6)) as p:
        word = np.zeros(8, np.uint8)
        mw = p.B.register(word, ALL)
        olds = np.zeros(8 * n, np.uint8)
        mo = p.A.register(olds, ALL)
        for i in range(n):
            p.ea.post_atomic_fetch_add(p.a2b, mo, 8 * i, remote=mw, add=1, wr_id=i)
        assert len(by_wr_id(collect(p.ea.cq, n, WAIT_S))) == n
        assert_quiet(p.ea.cq, 0.1)
        assert u64_at(word, 0) == n
        assert sorted(olds.view(np.uint64).tolist()) == list(range(n))
        assert p.eb.stats()["duplicates"] > 0 and p.eb.stats()["fault_dups"] > 0
        assert p.ea.stats()["duplicates"] > 0  # duplicated responses


# ---------------------------------------------------------------- corruption


@settings(max_examples=15, **PROP)
@given(ops=st.lists(op_strategy, min_size=1, max_size=10), seed=st.integers(1, 2**31),
       corrupt=st.sampled_from([0.01, 0.05, 0.2]), drop=st.sampled_from([0.0, 0.05]))
def test_corruption__data_stays_bit_exact(ops, seed, corrupt, drop):
    f = dict(seed=seed, corrupt=corrupt, drop=drop)
    with _pair(f, dict(f, seed=seed + 1)) as p:
        _run_mix(p, ops, seed & 0xFFFF)
        _fault_stats_ok(p)


def test_corruption__detected_and_repaired_bulk():
    n = 2 << 20
    f = dict(seed=11, corrupt=0.1)
    with _pair(f, dict(f, seed=12)) as p:
        src = rand_bytes(n, 13)
        dst = np.zeros(n, np.uint8)
        ms, md = p.A.register(src), p.B.register(dst, ALL)
        p.eb.post_recv(md, wr_id=1)
        p.ea.post_send(p.a2b, ms, wr_id=2)
        c = collect(p.eb.cq, 1, WAIT_S)[0]
        assert c.ok and c.byte_len == n
        assert collect(p.ea.cq, 1, WAIT_S)[0].ok
        assert np.array_equal(src, dst)
        b = p.eb.stats()
        assert b["fault_corrupts"] > 0
        assert b["malformed"] > 0  # corrupted packets were caught by the checksum
        assert p.ea.stats()["retransmits"] > 0


# ---------------------------------------------------------------- request/reply


@settings(max_examples=25, **PROP)
@given(sizes=st.lists(st.integers(0, 3000), min_size=5, max_size=40), fa=faults, fb=faults,
       progress=st.sampled_from(["manual", "thread"]))
def test_request_reply__faults_exactly_once(sizes, fa, fb, progress):
    """A answers each of B's messages at once (so each reply carries the
    ACK of the request, which the receiver sets aside until it has
    answered), under random faults on both sides: every request and reply
    arrives exactly once, bit-exact, and every send completes once."""
    kw = dict(progress=progress)
    with Pair(a=dict(fault=fa, **kw), b=dict(fault=fb, **kw), **CTX) as p:
        n = len(sizes)
        req, rep = rand_bytes(3000 * n, fa["seed"] % 1000), rand_bytes(3000 * n, fb["seed"] % 1000)
        got_req, got_rep = np.zeros_like(req), np.zeros_like(rep)
        m_req, m_rep = p.B.register(req), p.A.register(rep)
        m_greq, m_grep = p.A.register(got_req), p.B.register(got_rep)
        for i, s in enumerate(sizes):
            p.ea.post_recv(m_greq, 3000 * i, 3000, wr_id=i)
            p.eb.post_recv(m_grep, 3000 * i, 3000, wr_id=i)
        comps_a, comps_b = [], []
        end = time.monotonic() + WAIT_S
        for i, s in enumerate(sizes):
            p.eb.post_send(p.b2a, m_req, 3000 * i, s, wr_id=1000 + i)
            while not any(c.opcode == O.RECV and c.wr_id == i for c in comps_a):
                assert time.monotonic() < end, (i, comps_a)
                comps_a += p.ea.cq.poll()
                comps_b += p.eb.cq.poll()
            p.ea.post_send(p.a2b, m_rep, 3000 * i, s, wr_id=1000 + i)
        while (sum(c.opcode == O.SEND for c in comps_a) < n or
               len([c for c in comps_b if c.opcode == O.RECV]) < n or
               sum(c.opcode == O.SEND for c in comps_b) < n):
            assert time.monotonic() < end, (comps_a, comps_b)
            comps_a += p.ea.cq.poll()
            comps_b += p.eb.cq.poll()
        for comps in (comps_a, comps_b):
            assert all(c.status == S.SUCCESS for c in comps), comps
            recvs = by_wr_id([c for c in comps if c.opcode == O.RECV])
            sends = by_wr_id([c for c in comps if c.opcode == O.SEND])
            assert sorted(recvs) == list(range(n)) and sorted(sends) == [1000 + i for i in range(n)]
            assert all(recvs[i].byte_len == s for i, s in enumerate(sizes))
        for i, s in enumerate(sizes):
            lo = 3000 * i
            assert np.array_equal(got_req[lo:lo + s], req[lo:lo + s])
            assert np.array_equal(got_rep[lo:lo + s], rep[lo:lo + s])
            assert not got_req[lo + s:lo + 3000].any() and not got_rep[lo + s:lo + 3000].any()
        assert_quiet(p.ea.cq, 0.05)
        assert_quiet(p.eb.cq, 0.05)
        _fault_stats_ok(p)
