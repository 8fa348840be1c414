"""Smoke tests of the Python layer: argument validation and object lifetime.

These deliberately avoid protocol behaviour (covered elsewhere); only a
minimal loopback send/recv checks that the blocking helpers work.
"""

import gc
import pickle
import time

import numpy as np
import pytest

import rtransport as rt
from rtransport import errors


@pytest.fixture
def ctx():
    with rt.Context() as c:
        yield c


# ---------------------------------------------------------------- errors


def test_error_classes_map_codes():
    lib = rt.lib
    cases = {
        lib.RT_ERR_INVAL: (rt.InvalidArgument, ValueError),
        lib.RT_ERR_NOMEM: (rt.OutOfMemory, MemoryError),
        lib.RT_ERR_SYS: (rt.RTSystemError, OSError),
        lib.RT_ERR_CLOSED: (rt.ClosedError, rt.RTError),
        lib.RT_ERR_TIMEOUT: (rt.RTTimeoutError, TimeoutError),
        lib.RT_ERR_ACCESS: (rt.AccessError, PermissionError),
        lib.RT_ERR_BOUNDS: (rt.BoundsError, IndexError),
        lib.RT_ERR_ADDR: (rt.AddressError, ValueError),
        lib.RT_ERR_PEER: (rt.PeerError, ConnectionError),
        lib.RT_ERR_BUSY: (rt.BusyError, rt.RTError),
        lib.RT_ERR_UNSUPPORTED: (rt.UnsupportedError, NotImplementedError),
    }
    for code, (cls, builtin) in cases.items():
        with pytest.raises(cls) as ei:
            rt.check(code)
        assert isinstance(ei.value, builtin)
        assert isinstance(ei.value, rt.RTError)
        assert ei.value.code == code
    assert rt.check(0) == 0
    assert rt.check(7) == 7


def test_error_message_and_pickle():
    e = rt.RTTimeoutError("took too long")
    assert str(e) == "took too long"
    assert e.code == rt.lib.RT_ERR_TIMEOUT
    e2 = pickle.loads(pickle.dumps(e))
    assert type(e2) is rt.RTTimeoutError and str(e2) == "took too long"
    s = rt.RTSystemError("socket: errno 98", code=rt.lib.RT_ERR_SYS)
    assert str(s) == "socket: errno 98"


def test_errors_module_exports():
    for name in errors.__all__:
        assert getattr(rt, name) is getattr(errors, name)


# ---------------------------------------------------------------- context config


def test_unknown_kwarg_lists_valid_names():
    with pytest.raises(TypeError) as ei:
        rt.Context(no_such_option=1)
    msg = str(ei.value)
    assert "no_such_option" in msg
    assert "mtu" in msg and "rto_min_us" in msg


def test_bad_progress_and_tristate():
    with pytest.raises(rt.InvalidArgument):
        rt.Context(progress="sometimes")
    with pytest.raises(rt.InvalidArgument):
        rt.Context(gso="maybe")


def test_bad_fault_option():
    with pytest.raises(TypeError, match="valid"):
        rt.Context(fault={"drop": 0.1, "explode": 1.0})


def test_negative_numeric_option():
    with pytest.raises(rt.InvalidArgument, match="mtu"):
        rt.Context(mtu=-1)


def test_c_side_config_validation():
    with pytest.raises(rt.InvalidArgument):
        rt.Context(mtu=100)
    with pytest.raises(rt.InvalidArgument):
        rt.Context(fault=rt.FaultConfig(drop=2.0))


def test_context_properties(ctx):
    assert ctx.port > 0
    assert ctx.bind == "127.0.0.1"
    info = ctx.info()
    assert info["port"] == ctx.port
    assert isinstance(info["cc"], str)


# ---------------------------------------------------------------- memory regions


def test_register_bytes_is_rejected(ctx):
    with pytest.raises(rt.InvalidArgument, match="writable"):
        ctx.register(b"read only")


def test_register_non_buffer(ctx):
    with pytest.raises(TypeError):
        ctx.register([1, 2, 3])


def test_register_non_contiguous_numpy(ctx):
    a = np.zeros((8, 8), dtype=np.uint8)[:, ::2]
    with pytest.raises(rt.InvalidArgument, match="ascontiguousarray"):
        ctx.register(a)


def test_register_numpy_and_bytearray(ctx):
    a = np.arange(16, dtype=np.uint64)
    with ctx.register(a, rt.Access.LOCAL_WRITE | rt.Access.REMOTE_READ) as mr:
        assert mr.length == a.nbytes
        assert mr.addr == a.ctypes.data
        assert mr.access & rt.Access.REMOTE_READ
        d = mr.descriptor()
        assert isinstance(d, bytes) and len(d) == rt.lib.RT_MR_DESC_SIZE
        assert isinstance(mr.rkey, int)
    assert mr.closed
    b = bytearray(100)
    mr = ctx.register(b)
    with pytest.raises(BufferError):
        b.extend(b"x")  # registered memory must not move
    mr.close()
    mr.close()


def test_bad_access_flags(ctx):
    with pytest.raises(rt.InvalidArgument):
        ctx.register(bytearray(8), access=1 << 10)


# ---------------------------------------------------------------- lifetime


def test_close_twice_and_closed_errors():
    ctx = rt.Context()
    cq = ctx.completion_queue()
    ep = ctx.endpoint(cq)
    mr = ctx.register(bytearray(64))
    ctx.close()
    ctx.close()
    for obj in (ctx, cq, ep, mr):
        assert obj.closed
    with pytest.raises(rt.ClosedError, match="Context"):
        ctx.endpoint()
    with pytest.raises(rt.ClosedError, match="Endpoint"):
        ep.address
    with pytest.raises(rt.ClosedError, match="CompletionQueue"):
        cq.poll()
    with pytest.raises(rt.ClosedError, match="MemoryRegion"):
        mr.descriptor()
    ep.close()
    cq.close()
    mr.close()


def test_cq_busy_while_endpoint_open(ctx):
    cq = ctx.completion_queue()
    ep = ctx.endpoint(cq)
    with pytest.raises(rt.BusyError):
        cq.close()
    ep.close()
    cq.close()


def test_private_cq_closes_with_endpoint(ctx):
    ep = ctx.endpoint()
    cq = ep.cq
    ep.close()
    assert cq.closed


def test_garbage_collection_is_safe(ctx):
    for _ in range(3):
        ep = ctx.endpoint()
        mr = ctx.register(bytearray(32))
        ep.post_recv(mr)
        del ep, mr
        gc.collect()
    assert ctx.endpoint().cq.poll() == []


# ---------------------------------------------------------------- posting checks


def test_post_argument_validation(ctx):
    a, b = ctx.endpoint(), ctx.endpoint()
    mr = ctx.register(bytearray(64))
    peer = a.connect(b.address)
    assert a.connect(b.address) is peer
    assert peer == a.connect(b)
    with pytest.raises(TypeError):
        a.post_send("not a peer", mr)
    other = b.connect(a.address)
    with pytest.raises(rt.InvalidArgument, match="another endpoint"):
        a.post_send(other, mr)
    with pytest.raises(TypeError):
        a.post_send(peer, bytearray(8))
    with pytest.raises(rt.InvalidArgument, match="wr_id"):
        a.post_send(peer, mr, wr_id=1 << 63)
    with pytest.raises(rt.InvalidArgument):
        a.post_send(peer, mr, offset=-1)
    with pytest.raises(rt.BoundsError):
        a.post_send(peer, mr, offset=65)
    with pytest.raises(rt.BoundsError):
        a.post_send(peer, mr, offset=8, length=100)
    with pytest.raises(TypeError, match="remote"):
        a.post_write(peer, mr, remote=None)
    with pytest.raises(rt.AddressError):
        a.post_write(peer, mr, remote=b"short")
    with pytest.raises(rt.AddressError):
        a.connect(b"\x00" * 5)
    with ctx.register(bytearray(8)) as closed_mr:
        pass
    with pytest.raises(rt.ClosedError):
        a.post_recv(closed_mr)
    with rt.Context() as ctx2:
        foreign = ctx2.register(bytearray(8))
        with pytest.raises(rt.InvalidArgument, match="another Context"):
            a.post_recv(foreign)


def test_wait_timeout_returns_empty(ctx):
    ep = ctx.endpoint()
    assert ep.cq.wait(timeout=0.05) == []
    assert len(ep.cq) == 0


def test_recv_timeout_raises(ctx):
    ep = ctx.endpoint()
    with pytest.raises(rt.RTTimeoutError):
        ep.recv(timeout=0.1)


# ---------------------------------------------------------------- helpers


@pytest.mark.parametrize("progress", ["thread", "manual"])
def test_loopback_send_recv(progress):
    with rt.Context(progress=progress) as ctx:
        a, b = ctx.endpoint(), ctx.endpoint()
        peer = a.connect(b.address)
        for msg in (b"hello", b"", bytes(range(256)) * 40):
            # b must have a buffer posted before a's send can complete
            b_mr = ctx.register(bytearray(max(1, len(msg))))
            b.post_recv(b_mr, wr_id=7)
            a.send(peer, msg, timeout=5)
            (c,) = b.cq.wait(timeout=5)
            assert c.ok and c.wr_id == 7 and c.opcode == rt.Opcode.RECV
            assert c.byte_len == len(msg)
            assert bytes(b_mr.buffer[: c.byte_len]) == msg
            assert c.peer is not None and c.peer.address == a.address
            b_mr.close()
        # recv() helper, reply in the other direction using the peer handle
        a_peer_on_b = b.connect(a.address)
        a.post_recv(ctx.register(bytearray(16)), wr_id=1)
        b.send(a_peer_on_b, b"pong", timeout=5)
        (c,) = a.cq.wait(timeout=5)
        assert c.wr_id == 1 and c.byte_len == 4
        b.prepare_recv()  # a blocking send needs a posted buffer to land in
        a.send(peer, np.arange(4, dtype=np.uint32), timeout=5)
        data, sender = b.recv(timeout=5)
        assert data == np.arange(4, dtype=np.uint32).tobytes()
        assert sender == a_peer_on_b


# ---------------------------------------------------------------- completions


def test_completion__fields_immutable_repr(ctx):
    a, b = ctx.endpoint(), ctx.endpoint()
    peer = a.connect(b.address)
    rmr = ctx.register(bytearray(64), rt.Access.LOCAL_WRITE | rt.Access.REMOTE_WRITE)
    smr = ctx.register(bytearray(b"x" * 64))
    a.post_write(peer, smr, 0, 8, remote=rmr.descriptor(), remote_offset=0, imm=0xBEEF, wr_id=12)
    (c,) = b.cq.wait(timeout=5)
    assert c.opcode == rt.Opcode.RECV_WRITE_IMM
    assert isinstance(c, rt.Completion)
    assert isinstance(c.opcode, rt.Opcode) and isinstance(c.status, rt.Status)
    assert (c.wr_id, c.status, c.byte_len, c.imm, c.ep_id) == (0, rt.Status.SUCCESS, 8, 0xBEEF, b.id)  # no receive consumed: wr_id 0
    assert c.ok and c.peer is not None and c.peer.address == a.address
    with pytest.raises(AttributeError):
        c.status = rt.Status.SUCCESS
    assert "RECV_WRITE_IMM" in repr(c) and "imm=0xbeef" in repr(c)
    (w,) = a.cq.wait(timeout=5)
    assert w.opcode == rt.Opcode.WRITE and w.wr_id == 12 and w.imm is None


def test_cq_poll__more_than_one_buffer(ctx):
    # poll(n) above the shared 64-entry buffer takes the general path
    a, b = ctx.endpoint(), ctx.endpoint()
    peer = a.connect(b.address)
    rmr = ctx.register(bytearray(100 * 8))
    smr = ctx.register(bytearray(8))
    for i in range(100):
        b.post_recv(rmr, 8 * i, 8, wr_id=i)
    for i in range(100):
        a.post_send(peer, smr, 0, 8, wr_id=1000 + i)
    seen = []
    deadline = time.monotonic() + 10
    while len(seen) < 100 and time.monotonic() < deadline:
        seen += b.cq.poll(200)
        time.sleep(0.01)  # the progress thread delivers meanwhile
    assert sorted(c.wr_id for c in seen) == list(range(100))
    assert all(c.ok and c.byte_len == 8 for c in seen)


def test_cq_wait__closed_raises(ctx):
    cq = ctx.completion_queue()
    cq.close()
    with pytest.raises(rt.ClosedError, match="CompletionQueue"):
        cq.wait(timeout=0.01)
    with pytest.raises(rt.ClosedError, match="CompletionQueue"):
        cq.poll(1)


def test_cq_wait__one_queue_two_threads_with_blocking_helper():
    # one thread waits on the queue for its own completions while another
    # uses the blocking send()/recv() helpers on the same queue: the helper
    # must not be starved by the waiter, and no completion may be lost
    import threading
    with rt.Context() as ctx:
        cq = ctx.completion_queue()
        a = ctx.endpoint(cq)
        b = ctx.endpoint()
        peer = a.connect(b.address)
        rmr = ctx.register(bytearray(64 * 8), rt.Access.LOCAL_WRITE | rt.Access.REMOTE_WRITE)
        smr = ctx.register(bytearray(8))
        stop = threading.Event()
        mine = []

        def waiter():
            while not stop.is_set():
                mine.extend(cq.wait(timeout=0.05))

        th = threading.Thread(target=waiter, daemon=True)
        th.start()
        try:
            for i in range(20):
                a.post_write(peer, smr, 0, 8, remote=rmr.descriptor(), remote_offset=8 * i, wr_id=i)
                b.prepare_recv()
                a.send(peer, b"msg%d" % i, timeout=5)  # its completion is internal
                data, _ = b.recv(timeout=5)
                assert data == b"msg%d" % i
        finally:
            deadline = time.monotonic() + 5
            while len(mine) < 20 and time.monotonic() < deadline:
                time.sleep(0.01)
            stop.set()
            th.join(5)
        assert not th.is_alive()
        assert sorted(c.wr_id for c in mine) == list(range(20))
        assert all(c.ok and c.opcode == rt.Opcode.WRITE for c in mine)


def test_cq_dispatch__cdata_fallback_matches(ctx, monkeypatch):
    # completions decoded field by field (used when struct rt_wc's layout
    # is not the plain one) equal the struct-unpacked ones
    from rtransport import core
    a, b = ctx.endpoint(), ctx.endpoint()
    peer = a.connect(b.address)
    rmr = ctx.register(bytearray(64), rt.Access.LOCAL_WRITE | rt.Access.REMOTE_WRITE)
    smr = ctx.register(bytearray(b"x" * 64))
    got = {}
    for row in (core._WC_ROW, None):
        monkeypatch.setattr(core, "_WC_ROW", row)
        a.post_write(peer, smr, 0, 8, remote=rmr.descriptor(), imm=5, wr_id=3)
        (c,) = b.cq.wait(timeout=5)
        (w,) = a.cq.wait(timeout=5)
        got[row is None] = (tuple(c), tuple(w))
    assert got[True] == got[False]
    (c, w) = got[True]
    assert c[1] == rt.Opcode.RECV_WRITE_IMM and c[4] == 5 and w[0] == 3


def test_endpoint_id__not_reused_while_stale_completions_remain(ctx):
    # a flushed completion of a closed endpoint, still in a shared queue,
    # must not be attributed to a newer endpoint that took its slot
    cq = ctx.completion_queue()
    old = ctx.endpoint(cq)
    old_id = old.id
    old.post_recv(ctx.register(bytearray(16)), wr_id=77)
    old.close()  # the posted receive completes FLUSHED into cq
    new = ctx.endpoint(cq)
    assert new.id != old_id
    (c,) = cq.wait(timeout=5)
    assert c.wr_id == 77 and c.status == rt.Status.FLUSHED
    assert c.ep_id == old_id and c.ep_id != new.id and c.peer is None
    new.close()
    cq.close()


def test_cq_poll__skips_rows_that_are_not_the_users(ctx):
    # a shared queue whose first rows are helper (internal) completions:
    # poll(n) must go on taking rows until it has the user's or the queue
    # is empty, not return [] after one full buffer of internal rows
    cq = ctx.completion_queue()
    e1 = ctx.endpoint(cq)
    e2 = ctx.endpoint(cq)
    e1.prepare_recv(count=20, max_size=64)  # internal receives
    mr = ctx.register(bytearray(64))
    for i in range(5):
        e2.post_recv(mr, 0, 8, wr_id=100 + i)
    e1.close()  # 20 internal FLUSHED rows first
    e2.close()  # then the user's 5
    got = cq.poll(16)
    assert sorted(c.wr_id for c in got) == [100, 101, 102, 103, 104]
    assert all(c.status == rt.Status.FLUSHED for c in got)
    cq.close()


def test_completion__equality_and_match(ctx):
    a, b = ctx.endpoint(), ctx.endpoint()
    peer = a.connect(b.address)
    rmr = ctx.register(bytearray(16), rt.Access.LOCAL_WRITE | rt.Access.REMOTE_WRITE)
    a.post_write(peer, ctx.register(bytearray(16)), 0, 4, remote=rmr.descriptor(), wr_id=9)
    (c,) = a.cq.wait(timeout=5)
    assert c == rt.Completion(*c) and hash(c) == hash(rt.Completion(*c))
    assert c != tuple(c)  # equal only to completions
    match c:
        case rt.Completion(9, rt.Opcode.WRITE, rt.Status.SUCCESS, 4):
            matched = True
        case _:
            matched = False
    assert matched
    assert pickle.loads(pickle.dumps(rt.Completion(1, rt.Opcode.SEND, rt.Status.SUCCESS, 8, None, None, 1))) \
        == rt.Completion(1, rt.Opcode.SEND, rt.Status.SUCCESS, 8, None, None, 1)


def test_log__c_messages_filtered_by_the_logger_level(caplog):
    """C messages reach logging.getLogger("rtransport") at the level the
    logger is set to when a Context is created, and are dropped in C below
    it (the sink runs with the engine's lock held and needs the GIL)."""
    import logging
    from rtransport import core
    lg = logging.getLogger("rtransport")
    old = lg.level
    try:
        lg.setLevel(logging.WARNING)
        assert core._c_log_level() == 2
        with caplog.at_level(logging.WARNING, logger="rtransport"):
            with rt.Context():
                pass
        assert not [r for r in caplog.records if r.getMessage().startswith("context ")]
        caplog.clear()
        lg.setLevel(logging.DEBUG)
        assert core._c_log_level() == 0
        with caplog.at_level(logging.DEBUG, logger="rtransport"):
            with rt.Context():
                pass
        c_msgs = [r for r in caplog.records if r.getMessage().startswith("context ")]
        assert c_msgs and c_msgs[0].levelno == logging.DEBUG
        lg.setLevel(logging.CRITICAL)
        assert core._c_log_level() == 4
    finally:
        lg.setLevel(old)
        with rt.Context():
            pass  # leave the C filter as the logger says
