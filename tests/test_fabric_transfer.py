"""rtransport transfers across the namespace fabric under loss, link flaps and
a blackholed spine: bit-exact, nothing lost, no hang (needs root).

Each test runs bench/xfer.py (receiver in h2, sender in h0, different
leaves) with RDMA writes sprayed over 16 paths; the receiver checks a CRC of
its whole buffer against the sender's.  Every wait is bounded.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
XFER = os.path.join(os.path.dirname(HERE), "bench", "xfer.py")

if os.geteuid() != 0:
    pytest.skip("fabric transfers need root (network namespaces)", allow_module_level=True)
if shutil.which("ip") is None:
    pytest.skip("iproute2 (ip) is not installed", allow_module_level=True)

from rtransport.fabric import Fabric  # noqa: E402

NBYTES = 48 << 20


def _transfer(fab, during=None, nbytes=NBYTES, extra=()):
    """Run one transfer h0 -> h2; `during(fab)` runs once it has started."""
    h0, h2 = fab.hosts[0], fab.hosts[2]
    d = tempfile.mkdtemp(prefix="rtft-")
    mark = os.path.join(d, "t0")
    common = ["--dir", d, "--bytes", str(nbytes), "--max-seconds", "60",
              "--timeout-ms", "5000"] + list(extra)
    env = dict(os.environ, PYTHONSAFEPATH="1")
    srv = fab.popen(h2, [sys.executable, XFER, "serve", "--bind", h2.ip] + common,
                    stdout=subprocess.PIPE, env=env)
    cli = fab.popen(h0, [sys.executable, XFER, "send", "--bind", h0.ip, "--mark-file", mark]
                    + common, stdout=subprocess.PIPE, env=env)
    th = None
    if during:
        def run():
            end = time.monotonic() + 30
            while not os.path.exists(mark) and time.monotonic() < end:
                time.sleep(0.01)
            time.sleep(0.15)
            during(fab)
        th = threading.Thread(target=run, daemon=True)
        th.start()
    try:
        co, _ = cli.communicate(timeout=120)
        so, _ = srv.communicate(timeout=60)
    finally:
        for p in (cli, srv):
            if p.poll() is None:
                p.kill()
        if th:
            th.join(10)
        shutil.rmtree(d, ignore_errors=True)
    send = json.loads(co.decode().strip().splitlines()[-1])
    recv = json.loads(so.decode().strip().splitlines()[-1])
    return send, recv


@pytest.fixture(scope="module")
def fab():
    with Fabric(prefix=f"rtft{os.getpid() % 10000}") as f:
        yield f


def _check(send, recv):
    assert send.get("ok"), send
    assert recv.get("ok") and recv.get("bit_exact"), recv
    assert recv["bytes"] == NBYTES


def test_fabric_transfer__lossless_sprays_over_spines(fab):
    before = fab.spine_counters("up")
    send, recv = _transfer(fab)
    _check(send, recv)
    after = fab.spine_counters("up")
    used = [s for s in after if after[s] - before[s] > 50]
    assert len(used) >= 3, (before, after)  # one transfer, several spines
    assert len([p for p in send["path_stats"] if p["tx_packets"]]) == 16


def test_fabric_transfer__random_loss_on_spines(fab):
    for l in fab.links:
        if l.kind != "host":
            fab.set_loss(l.name, 0.02)
    try:
        send, recv = _transfer(fab)
    finally:
        fab.restore()
    _check(send, recv)
    assert send["stats"]["retransmits"] > 0  # loss really happened and was repaired


def test_fabric_transfer__link_flap(fab):
    def flap(f):
        f.link_down("leaf0-spine1")
        time.sleep(0.3)
        f.link_up("leaf0-spine1")
    try:
        send, recv = _transfer(fab, during=flap)
    finally:
        fab.restore()
    _check(send, recv)


def test_fabric_transfer__blackholed_spine(fab):
    for l in fab.links:
        if l.kind != "host":
            fab.set_rate(l.name, "300mbit")  # ~0.35 s: long enough to fail mid-transfer

    failed = []

    def fail(f):
        # the busiest spine right now: with 16 random source ports a given
        # spine carries none of them in a few percent of runs
        a = f.spine_counters("up")
        time.sleep(0.02)
        b = f.spine_counters("up")
        spine = max(b, key=lambda s: b[s] - a[s])
        failed.append(spine)
        f.blackhole(spine, direction="both")
    try:
        send, recv = _transfer(fab, during=fail)
    finally:
        fab.restore()
    _check(send, recv)
    paths = send["path_stats"]
    # the spine really ate packets mid-transfer, and they were repaired over
    # the other spines (path quarantine itself is shown by bench/fabric_bench.py)
    assert failed and sum(p["losses"] for p in paths) > 0, (failed, paths)
    # paths through the dead spine were quarantined and moved to new ports
    assert sum(p["repaths"] for p in paths) > 0, paths


def test_fabric_transfer__returned_spine_is_used_again(fab):
    """A spine is blackholed, its paths move away (repath), then it comes
    back: exploration (rt_path_explore) must find it again, so that all
    four spines carry data before the transfer ends.  Without
    exploration the returned spine stays empty unless path 0 (the
    receive socket, which never moves) happens to hash onto it."""
    for l in fab.links:
        if l.kind != "host":
            fab.set_rate(l.name, "200mbit")  # 0.8 Gbit/s in all: ~8 s
    # Exploration moves one path at most every 200 ms, each to a random one
    # of the 4 spines: the 6 s watched after the restore give it about 30
    # tries, of which it needs one in the first 4.5 s for the found spine to
    # reach the share asserted below; P(miss) is about (3/4)^22 = 0.2 %.
    # (With 3 s watched, a clean-clone CI run failed once: the returned
    # spine carried 472 packets after the restore, the others about 7,800.)
    nbytes = 768 << 20
    leaf = fab.leaves[fab.hosts[0].leaf].name
    state = {}

    def data_up():  # packets from the sender's leaf into each spine (data, not ACKs)
        c = fab.counters()
        return {sp.name: c[f"{leaf}-{sp.name}"]["up"]["packets"] for sp in fab.spines}

    def flap(f):
        a = data_up()
        time.sleep(0.02)
        b = data_up()
        spine = max(b, key=lambda s: b[s] - a[s])
        state["spine"] = spine
        f.blackhole(spine, direction="both")
        time.sleep(0.4)  # long enough for its paths to be moved
        f.blackhole(spine, direction="both", on=False)
        state["restored"] = data_up()
        time.sleep(6.0)
        state["later"] = data_up()
    try:
        send, recv = _transfer(fab, during=flap, nbytes=nbytes)
    finally:
        fab.restore()
    assert send.get("ok"), send
    assert recv.get("ok") and recv.get("bit_exact") and recv["bytes"] == nbytes, recv
    paths = send["path_stats"]
    assert sum(p["repaths"] - p["explore_moves"] for p in paths) > 0, paths  # moved off
    assert sum(p["explore_moves"] for p in paths) > 0, paths
    r, l = state["restored"], state["later"]
    carried = {s: l[s] - r[s] for s in l}
    print("returned spine", state["spine"], "data packets per spine after the restore", carried,
          "path 0 quarantined", paths[0]["quarantine_count"])
    # every spine, the returned one included, carried a real share again
    # (per-path windows fill each 200 Mbit/s spine link once one path is
    # there, so a found spine soon carries as much as the others; path 0,
    # which never moves, may have been on it - then this proves less)
    assert min(carried.values()) > 0.25 * sum(carried.values()) / len(carried), (state["spine"], carried)


def test_fabric_transfer__acks_blackholed_on_one_spine(fab):
    """Only the return direction of one spine dies (spine -> the sender's
    leaf): every data packet gets through, but ACKs sprayed onto that
    spine are lost for the whole transfer.  Cumulative and selective ACKs
    on the other spines must carry the transfer: bit-exact, no peer
    timeout, and lost ACKs must not turn into mass retransmission."""
    leaf = fab.leaves[fab.hosts[0].leaf].name
    spine = fab.spines[1].name
    fab.blackhole(f"{leaf}-{spine}", direction="down")
    try:
        send, recv = _transfer(fab)
    finally:
        fab.restore()
    _check(send, recv)
    st = send["stats"]
    assert st["peers_failed"] == 0, st
    # when the ACKs of a window's tail all die, the retransmission timer
    # fires and resends that window: measured 1-379 retransmissions of
    # about 5,800 packets (0.02-6.2 %) in seven runs; mass retransmission
    # would be most of them
    assert st["retransmits"] <= 0.2 * st["tx_packets"], st


def test_fabric_transfer__incast_pools_sub_mss_windows(fab):
    """Three senders (h0, h1, h3) write 8 MiB each into h2, whose link is
    limited to 100 Mbit/s: a fair share's bandwidth-delay product is a
    fraction of one 9000-byte frame, so each sender's 16 path windows must
    add up to less than one MSS (the pool, csrc/paths.c) to keep the queue
    near the target.  Every transfer must end bit-exact with no peer
    failure - with the pool's packets sent one at a time and paced - and
    at least one sender must have been seen below one MSS in all.  (A
    pool member once charged its sends to its own sub-MSS pacer, which
    pushed its next slot seconds ahead; max-seconds bounds such a stall.)"""
    h2 = fab.hosts[2]
    senders = [fab.hosts[0], fab.hosts[1], fab.hosts[3]]
    nbytes = 8 << 20
    fab.set_rate(h2.name, "100mbit", direction="down")
    bar = tempfile.mkdtemp(prefix="rtft-bar-")
    dirs, procs = [], []
    env = dict(os.environ, PYTHONSAFEPATH="1")
    try:
        for s in senders:
            d = tempfile.mkdtemp(prefix="rtft-")
            dirs.append(d)
            common = ["--dir", d, "--bytes", str(nbytes), "--max-seconds", "60",
                      "--timeout-ms", "5000", "--barrier", bar]
            srv = fab.popen(h2, [sys.executable, XFER, "serve", "--bind", h2.ip] + common,
                            stdout=subprocess.PIPE, env=env)
            cli = fab.popen(s, [sys.executable, XFER, "send", "--bind", s.ip,
                                "--window-sample-ms", "10"] + common,
                            stdout=subprocess.PIPE, env=env)
            procs.append((cli, srv))
        # the barrier (bench/xfer.py --barrier): go once all senders are
        # set up, verify once all have finished
        for step, then in (("ready", "go"), ("done", "verify")):
            end = time.monotonic() + 90
            while not all(os.path.exists(os.path.join(bar, f"{step}.{s.ip}")) for s in senders):
                assert time.monotonic() < end, f"senders not {step} within 90 s"
                assert all(c.poll() is None or c.returncode == 0 for c, _ in procs), "a sender died"
                time.sleep(0.01)
            with open(os.path.join(bar, then), "w") as f:
                f.write("1")
        results = []
        for cli, srv in procs:
            co, _ = cli.communicate(timeout=60)
            so, _ = srv.communicate(timeout=60)
            results.append((json.loads(co.decode().strip().splitlines()[-1]),
                            json.loads(so.decode().strip().splitlines()[-1])))
    finally:
        for cli, srv in procs:
            for p in (cli, srv):
                if p.poll() is None:
                    p.kill()
        for d in dirs + [bar]:
            shutil.rmtree(d, ignore_errors=True)
        fab.restore()
    for send, recv in results:
        assert send.get("ok"), send
        assert recv.get("ok") and recv.get("bit_exact") and recv["bytes"] == nbytes, recv
        assert send["stats"]["peers_failed"] == 0, send["stats"]
        assert send["window_samples"] > 0, send
    mins = [send["min_window_bytes"] for send, _ in results]
    print("smallest window sum per sender (bytes):", mins)
    assert min(mins) < 8000, mins  # below one jumbo MSS (~8.9 KB)
