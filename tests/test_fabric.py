"""Tests of the virtual leaf-spine fabric (rtransport/fabric.py) on real network namespaces.

Needs root (or CAP_NET_ADMIN + CAP_SYS_ADMIN) and a kernel with network
namespaces and veth; skipped otherwise.  Loss/blackhole tests also need the
iptables command.  Every fabric uses a prefix unique to this test run and
everything is removed at the end (also if a test fails).
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FABRIC_PY = os.path.join(ROOT, "rtransport", "fabric.py")


def _load_fabric_module():
    """Import rtransport.fabric; fall back to loading the file alone (the package
    __init__ may need the compiled C core, which fabric.py does not use)."""
    try:
        from rtransport import fabric as mod  # noqa: PLC0415

        return mod
    except Exception:
        spec = importlib.util.spec_from_file_location("_rtransport_fabric_standalone", FABRIC_PY)
        mod = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = mod
        spec.loader.exec_module(mod)
        return mod


fabric = _load_fabric_module()
Fabric = fabric.Fabric

RUN_ID = uuid.uuid4().hex[:6]
_USED_PREFIXES: list[str] = []


def _prefix(tag: str) -> str:
    p = f"rtft{RUN_ID}{tag}"
    _USED_PREFIXES.append(p)
    return p


def _netns_usable() -> str | None:
    """None if namespaces work here, else the reason to skip."""
    if not fabric._caps_ok():
        return "needs root (or CAP_NET_ADMIN + CAP_SYS_ADMIN)"
    if subprocess.run(["which", "ip"], capture_output=True).returncode != 0:
        return "iproute2 'ip' not installed"
    probe = f"rtft{RUN_ID}probe"
    cp = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if cp.returncode != 0:
        return f"`ip netns add` does not work here: {cp.stderr.strip()}"
    try:
        cp = subprocess.run(
            ["ip", "-n", probe, "link", "add", "name", "pa", "type", "veth", "peer", "name", "pb"], capture_output=True, text=True
        )
        if cp.returncode != 0:
            return f"veth links unavailable: {cp.stderr.strip()}"
    finally:
        subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


_SKIP = _netns_usable()
pytestmark = pytest.mark.skipif(_SKIP is not None, reason=str(_SKIP))
HAVE_IPTABLES = subprocess.run(["which", "iptables"], capture_output=True).returncode == 0
needs_iptables = pytest.mark.skipif(not HAVE_IPTABLES, reason="iptables not installed (apt-get install -y iptables)")


@pytest.fixture(scope="module", autouse=True)
def _cleanup_everything():
    yield
    leftovers = []
    for p in _USED_PREFIXES:
        if _SKIP is None:
            leftovers += Fabric.down(p)
    assert not leftovers, f"tests left namespaces behind: {leftovers}"


@pytest.fixture(scope="module")
def fab():
    """One shared 4-host / 2-leaf / 4-spine fabric for the knob tests."""
    with Fabric(hosts=4, leaves=2, spines=4, prefix=_prefix("m")) as f:
        yield f


@pytest.fixture
def clean(fab):
    """Every knob test starts and ends with a knob-free fabric."""
    fab.restore()
    yield fab
    fab.restore()


# ---------------------------------------------------------------- helpers

_RECV = r"""
import select, socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
s.bind(("0.0.0.0", int(sys.argv[1])))
s.setblocking(False)
idle = float(sys.argv[2])
print("ready", flush=True)
n, last, stopping = 0, time.monotonic(), False
# count until stdin is closed (the sender is done) and then `idle` seconds pass without a packet
while not (stopping and time.monotonic() - last >= idle):
    r, _, _ = select.select([s] + ([] if stopping else [sys.stdin]), [], [], 0.05)
    if s in r:
        while True:
            try:
                s.recv(65535)
            except BlockingIOError:
                break
            n += 1
            last = time.monotonic()
    if sys.stdin in r and not sys.stdin.readline():
        stopping, last = True, max(last, time.monotonic())
print(n)
"""

_SEND = r"""
import socket, sys, time
dst, port, flows, packets = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(flows)]
for s in socks:
    s.bind(("0.0.0.0", 0))
for i in range(packets):
    for s in socks:
        s.sendto(b"x" * 200, (dst, port))
    if i % 50 == 49:
        time.sleep(0.005)
"""

_TCP_SINK = r"""
import socket, sys, time
n_conns, nbytes = int(sys.argv[2]), int(sys.argv[3])
ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("0.0.0.0", int(sys.argv[1])))
ls.listen(16)
print("ready", flush=True)
import selectors
sel = selectors.DefaultSelector()
sel.register(ls, selectors.EVENT_READ)
got, done, t0 = 0, 0, None
while done < n_conns:
    for key, _ in sel.select(timeout=30):
        if key.fileobj is ls:
            c, _ = ls.accept()
            c.setblocking(False)
            sel.register(c, selectors.EVENT_READ)
            t0 = t0 or time.monotonic()
            continue
        data = key.fileobj.recv(1 << 20)
        if not data:
            sel.unregister(key.fileobj)
            key.fileobj.close()
            done += 1
        got += len(data)
print(got, time.monotonic() - t0)
"""

_TCP_SEND = r"""
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])))
buf = b"\0" * (1 << 16)
left = int(sys.argv[3])
while left > 0:
    left -= s.send(buf[: min(left, len(buf))])
s.close()
"""


def _start(fab, host, code, *args):
    p = fab.popen(host, [sys.executable, "-c", code, *map(str, args)], stdin=subprocess.PIPE,
                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = p.stdout.readline().strip()
    if line != "ready":
        p.kill()
        raise AssertionError(f"helper in {host} did not start: {line!r} {p.stderr.read()}")
    return p


def _finish(p, timeout=30) -> str:
    out, err = p.communicate(timeout=timeout)
    assert p.returncode == 0, err
    return out.strip()


def udp_oneway(fab, src, dst, flows=1, packets=100, port=5001) -> int:
    """Send flows*packets datagrams src->dst; return how many arrived."""
    dst_h = fab.host(dst)
    r = _start(fab, dst_h, _RECV, port, 0.2)
    cp = fab.run(src, [sys.executable, "-c", _SEND, dst_h.ip, str(port), str(flows), str(packets)],
                 capture_output=True, text=True, timeout=30)
    assert cp.returncode == 0, cp.stderr
    return int(_finish(r))


def tcp_transfer(fab, srcs, dst, nbytes, port=5201) -> tuple[int, float]:
    """nbytes over TCP from each src to dst at once; returns (bytes received, seconds)."""
    dst_h = fab.host(dst)
    r = _start(fab, dst_h, _TCP_SINK, port, len(srcs), nbytes)
    senders = [fab.popen(s, [sys.executable, "-c", _TCP_SEND, dst_h.ip, str(port), str(nbytes)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for s in srcs]
    for s in senders:
        _finish(s, timeout=60)
    got, secs = _finish(r, timeout=60).split()
    return int(got), float(secs)


def _ns_list(prefix):
    return fabric._list_netns(prefix)


# ---------------------------------------------------------------- lifecycle


def test_fabric__describe_without_root_needed():
    f = Fabric(hosts=4, leaves=2, spines=4, prefix="rtfx")
    assert [h.leaf for h in f.hosts] == [0, 0, 1, 1]
    assert [h.leaf for h in Fabric(4, 2, 4, prefix="rtfx", placement="round_robin").hosts] == [0, 1, 0, 1]
    assert f.hosts[2].ip == "10.1.2.2" and f.hosts[2].ns == "rtfx-h2" and f.hosts[2].name == "h2"
    assert [s.name for s in f.spines] == ["spine0", "spine1", "spine2", "spine3"]
    names = [l.name for l in f.links]
    assert "leaf0-spine2" in names and "h3-leaf1" in names and len(names) == 4 + 2 * 4
    l = f.link("spine2-leaf0")  # reversed name resolves to the canonical link
    assert (l.name, l.a.ns, l.a.dev, l.b.ns, l.b.dev) == ("leaf0-spine2", "rtfx-leaf0", "spine2", "rtfx-spine2", "leaf0")
    assert f.link("h1").name == "h1-leaf0"
    assert fabric.parse_rate("1gbit") == 10**9 and fabric.parse_rate("250Mbit") == 250 * 10**6
    assert fabric.parse_rate("1mbps") == 8 * 10**6 and fabric.parse_rate(5e8) == 5 * 10**8
    with pytest.raises(ValueError):
        fabric.parse_rate("fast")
    with pytest.raises(ValueError):
        Fabric(prefix="bad-prefix")
    with pytest.raises(fabric.FabricError):
        f.link("leaf0-spine9")


def test_fabric__lifecycle_up_status_down():
    p = _prefix("l")
    fab = Fabric(hosts=2, leaves=2, spines=2, prefix=p)
    assert not Fabric.status(p).exists
    fab.up()
    try:
        st = Fabric.status(p)
        assert st.exists and set(st.namespaces) == set(fab.namespaces) and len(st.namespaces) == 6
        assert st.state and st.state["hosts"] == 2 and st.state["host_list"][1]["ip"] == fab.hosts[1].ip
        assert p in str(st) and "h1" in str(st)
        with open(fab.state_file) as f:
            assert json.load(f)["prefix"] == p
        assert fab.is_up
        with pytest.raises(fabric.FabricError, match="already exists"):
            Fabric(hosts=2, leaves=2, spines=2, prefix=p).up()
        # MTU 9000 on every veth of every namespace
        for ns in fab.namespaces:
            devs = json.loads(subprocess.run(["ip", "-n", ns, "-j", "link", "show"], capture_output=True, text=True, check=True).stdout)
            assert {d["mtu"] for d in devs if d["ifname"] != "lo"} == {9000}, ns
        # a load()ed fabric describes the same topology
        again = Fabric.load(p)
        assert [(h.name, h.ip, h.leaf) for h in again.hosts] == [(h.name, h.ip, h.leaf) for h in fab.hosts]
    finally:
        removed = fab.down()
    assert set(removed) == set(fab.namespaces)
    assert _ns_list(p) == [] and not os.path.exists(fab.state_file)
    st = Fabric.status(p)
    assert not st.exists and "nothing exists" in str(st)
    assert "down" in fab.timings and "up" in fab.timings


def test_fabric__connectivity_across_leaves(fab):
    h = fab.hosts
    assert h[0].leaf != h[2].leaf and h[0].leaf == h[1].leaf
    assert fab.ping(h[0], h[2]) == 3  # across spines
    assert fab.ping("h3", "h1") == 3
    assert fab.ping(h[0], h[1]) == 3  # same leaf
    # jumbo datagrams with DF set cross the whole fabric unfragmented
    assert fab.ping(h[1], h[3], count=2, size=8900) == 2
    cp = fab.run("h0", ["ip", "route"], capture_output=True, text=True, check=True)
    assert cp.stdout.count("default via") == 1


def test_fabric__forwarding_sysctls(fab):
    for n in [*fab.leaves, *fab.spines]:
        cp = fab.run(n, ["sysctl", "-n", "net.ipv4.fib_multipath_hash_policy", "net.ipv4.fib_multipath_hash_fields",
                         "net.ipv4.ip_forward"], capture_output=True, text=True, check=True)
        assert cp.stdout.split() == ["3", str(0x37), "1"], n.name
    route = fab.run("leaf0", ["ip", "route", "show", "10.1.0.0/16"], capture_output=True, text=True, check=True).stdout
    assert route.count("nexthop via") == 4


def test_fabric__ecmp_spreads_flows_over_spines(fab):
    spread = fab.probe_ecmp("h0", "h2", flows=64, packets=4)
    assert sum(spread.values()) >= 64 * 4
    assert sum(1 for v in spread.values() if v > 0) >= 3, spread
    # the other direction, hashed by the other leaf
    back = fab.probe_ecmp("h3", "h1", flows=64, packets=2)
    assert sum(1 for v in back.values() if v > 0) >= 3, back
    # a single flow (one source port) stays on one spine
    one = fab.probe_ecmp("h0", "h2", flows=1, packets=200)
    assert max(one.values()) >= 200 and sorted(one.values())[-2] <= 10, one


# ---------------------------------------------------------------- knobs


def test_fabric__rate_limit_spine_link_both_directions(clean):
    fab = clean
    fab.set_rate("leaf0-spine2", "1gbit")
    for ns, dev in (("leaf0", "spine2"), ("spine2", "leaf0")):
        out = fab.run(ns, ["tc", "qdisc", "show", "dev", dev], capture_output=True, text=True, check=True).stdout
        assert "tbf" in out and "1Gbit" in out, out
    kn = [k for k in fab.knobs() if k["kind"] == "rate"]
    assert {(k["link"], k["direction"], k["rate_bps"]) for k in kn} == {("leaf0-spine2", "up", 10**9), ("leaf0-spine2", "down", 10**9)}
    fab.set_rate("leaf0-spine2", "200mbit", direction="down")  # change while in place
    kn = {k["direction"]: k["rate_bps"] for k in fab.knobs() if k["kind"] == "rate"}
    assert kn == {"up": 10**9, "down": 2 * 10**8}
    fab.set_rate("leaf0-spine2", None)
    assert not [k for k in fab.knobs() if k["kind"] == "rate"]
    fab.set_rate("leaf0-spine2", None)  # removing twice is fine


def test_fabric__rate_limit_slows_transfer(clean):
    fab = clean
    nbytes = 2 * 1000 * 1000
    got, fast = tcp_transfer(fab, ["h0"], "h2", nbytes)
    assert got == nbytes
    fab.set_rate("h2", "20mbit", direction="down")  # leaf1 -> h2, i.e. the receiver's access link
    out = fab.run("leaf1", ["tc", "qdisc", "show", "dev", "h2"], capture_output=True, text=True, check=True).stdout
    assert "tbf" in out and "20Mbit" in out
    got, slow = tcp_transfer(fab, ["h0"], "h2", nbytes)
    assert got == nbytes
    ideal = nbytes * 8 / 20e6  # 0.8 s
    assert slow > 0.5 * ideal, (slow, ideal)  # cannot beat the limit by much (burst only)
    assert slow > 3 * fast, (slow, fast)


def test_fabric__incast_three_senders_one_limited_receiver(clean):
    fab = clean
    fab.set_rate("h2", "1gbit", direction="down")
    nbytes = 8 * 1000 * 1000
    got, secs = tcp_transfer(fab, ["h0", "h1", "h3"], "h2", nbytes)
    assert got == 3 * nbytes
    gbps = got * 8 / secs / 1e9
    assert gbps < 1.3, f"{gbps:.2f} Gbit/s through a 1 Gbit/s receiver link"
    assert [k for k in fab.knobs() if k["kind"] == "rate"][0]["packets"] > 0


@needs_iptables
def test_fabric__loss_drops_packets(clean):
    fab = clean
    fab.set_loss("h2", 0.2, direction="down")
    fab.set_loss("h2", 0.5, direction="down")  # change in place: still one rule
    rules = fab.run("leaf1", ["iptables", "-S", "FORWARD"], capture_output=True, text=True, check=True).stdout
    assert rules.count("statistic") == 1 and "0.5" in rules and "-o h2" in rules, rules
    sent = 400
    got = udp_oneway(fab, "h0", "h2", flows=4, packets=sent // 4)
    loss = [k for k in fab.knobs() if k["kind"] == "loss"]
    assert len(loss) == 1 and loss[0]["probability"] == 0.5 and loss[0]["link"] == "h2-leaf1"
    dropped = loss[0]["dropped"]
    assert 0.3 * sent < dropped < 0.7 * sent, dropped
    assert got <= sent - dropped and got > 0
    # the other direction is untouched
    assert udp_oneway(fab, "h2", "h0", packets=100) == 100
    fab.set_loss("h2", 0, direction="down")
    assert "statistic" not in fab.run("leaf1", ["iptables", "-S", "FORWARD"], capture_output=True, text=True, check=True).stdout
    assert udp_oneway(fab, "h0", "h2", packets=100) == 100


@needs_iptables
def test_fabric__loss_on_spine_link_direction_up(clean):
    fab = clean
    fab.set_loss("leaf0-spine1", 1.0, direction="up")  # at leaf0, out of its spine1 port
    rules = fab.run("leaf0", ["iptables", "-S", "FORWARD"], capture_output=True, text=True, check=True).stdout
    assert "-o spine1" in rules
    spread = fab.probe_ecmp("h0", "h2", flows=64, packets=2)
    assert spread["spine1"] == 0 and sum(spread.values()) > 0, spread
    assert [k["dropped"] for k in fab.knobs() if k["kind"] == "loss"][0] > 0


def test_fabric__link_down_breaks_host_path(clean):
    fab = clean
    fab.link_down("h2")
    assert fab.ping("h0", "h2", count=1, timeout=0.5) == 0
    assert {(k["link"], k["kind"]) for k in fab.knobs()} == {("h2-leaf1", "down")}
    fab.link_up("h2")
    assert fab.ping("h0", "h2", count=2) == 2
    assert fab.run("h2", ["ip", "route"], capture_output=True, text=True).stdout.count("default via") == 1


def test_fabric__spine_link_down_and_reroute(clean):
    fab = clean
    flows = 64
    fab.link_down("leaf1-spine0")
    # leaf1 stops using spine0 itself: h2 -> h0 is unaffected
    assert udp_oneway(fab, "h2", "h0", flows=flows, packets=1) == flows
    # leaf0 does not know (no routing protocol): flows it hashes to spine0 are lost
    assert udp_oneway(fab, "h0", "h2", flows=flows, packets=1) < flows
    before = fab.counters()["leaf1-spine0"]
    # with reroute, leaf0 withdraws spine0 toward leaf1, as a converged fabric would
    fab.link_down("leaf1-spine0", reroute=True)
    route = fab.run("leaf0", ["ip", "route", "show", "10.1.0.0/16"], capture_output=True, text=True, check=True).stdout
    assert route.count("nexthop") == 3 and "spine0" not in route, route
    assert udp_oneway(fab, "h0", "h2", flows=flows, packets=1) == flows
    assert fab.counters()["leaf1-spine0"] == before
    fab.link_up("leaf1-spine0")
    route = fab.run("leaf0", ["ip", "route", "show", "10.1.0.0/16"], capture_output=True, text=True, check=True).stdout
    assert route.count("nexthop") == 4, route
    assert udp_oneway(fab, "h0", "h2", flows=flows, packets=1) == flows
    assert fab.probe_ecmp("h2", "h0", flows=64)["spine0"] > 0


@needs_iptables
def test_fabric__blackhole_one_direction(clean):
    fab = clean
    fab.blackhole("h2", direction="down")  # leaf1 -> h2 dropped, h2 -> leaf1 fine
    assert udp_oneway(fab, "h0", "h2", packets=50) == 0
    assert udp_oneway(fab, "h2", "h0", packets=50) == 50
    bh = [k for k in fab.knobs() if k["kind"] == "blackhole"]
    assert len(bh) == 1 and bh[0]["dropped"] >= 50
    fab.restore("h2")
    assert udp_oneway(fab, "h0", "h2", packets=50) == 50


@needs_iptables
def test_fabric__blackhole_spine_is_invisible_to_routing(clean):
    fab = clean
    fab.blackhole("spine3")  # every leaf -> spine3 port drops; routes still use spine3
    route = fab.run("leaf0", ["ip", "route", "show", "10.1.0.0/16"], capture_output=True, text=True, check=True).stdout
    assert route.count("nexthop") == 4
    flows = 64
    got = udp_oneway(fab, "h0", "h2", flows=flows, packets=1)
    assert 0 < got < flows
    fab.restore()
    assert fab.knobs() == []
    assert udp_oneway(fab, "h0", "h2", flows=flows, packets=1) == flows


def test_fabric__cli(clean):
    fab = clean
    p = fab.prefix
    assert fabric.main(["rate", "--prefix", p, "leaf1-spine1", "300mbit", "--direction", "up"]) == 0
    assert fabric.main(["link", "--prefix", p, "leaf0-spine3", "down"]) == 0
    kn = {(k["link"], k["direction"], k["kind"]) for k in fab.knobs()}
    assert kn == {("leaf1-spine1", "up", "rate"), ("leaf0-spine3", "both", "down")}
    assert fabric.main(["restore", "--prefix", p]) == 0
    assert fab.knobs() == []
    assert fabric.main(["rate", "--prefix", p, "nolink", "1gbit"]) == 1
    assert fabric.main(["bogus"]) == 2
    assert fabric.main(["run", "--prefix", p, "h1", "--", "sh", "-c", "exit 7"]) == 7
    # exit statuses as a shell gives them
    assert fabric.main(["run", "--prefix", p, "h1", "--", "sh", "-c", "kill -9 $$"]) == 137
    assert fabric.main(["run", "--prefix", p, "h1", "--", "no-such-command-rt"]) == 127
    # `run` in a subprocess, output checked
    cp = subprocess.run([sys.executable, FABRIC_PY, "run", "--prefix", p, "h3", "--", "ip", "-br", "addr", "show", "eth0"],
                        capture_output=True, text=True, timeout=30)
    assert cp.returncode == 0 and fab.hosts[3].ip in cp.stdout, cp.stderr
    cp = subprocess.run([sys.executable, FABRIC_PY, "status", "--prefix", p, "--json"], capture_output=True, text=True, timeout=30)
    st = json.loads(cp.stdout)
    assert st["exists"] and len(st["namespaces"]) == 10


def test_fabric__cli_up_down():
    p = _prefix("c")
    cp = subprocess.run([sys.executable, FABRIC_PY, "up", "--prefix", p, "--hosts", "3", "--leaves", "3", "--spines", "2"],
                        capture_output=True, text=True, timeout=60)
    assert cp.returncode == 0, cp.stderr
    assert len(_ns_list(p)) == 3 + 3 + 2
    fab = Fabric.load(p)
    assert fab.ping("h0", "h2", count=1) == 1
    cp = subprocess.run([sys.executable, FABRIC_PY, "down", "--prefix", p], capture_output=True, text=True, timeout=60)
    assert cp.returncode == 0, cp.stderr
    assert _ns_list(p) == [] and not os.path.exists(fab.state_file)


# ---------------------------------------------------------------- cleanup guarantees


def test_fabric__teardown_on_exception():
    p = _prefix("e")
    with pytest.raises(ZeroDivisionError):
        with Fabric(hosts=2, leaves=1, spines=1, prefix=p) as f:
            assert len(_ns_list(p)) == 4
            assert f.ping("h0", "h1", count=1) == 1
            1 / 0
    assert _ns_list(p) == []
    assert not Fabric.status(p).exists


def test_fabric__down_cleans_up_after_killed_process():
    p = _prefix("k")
    script = textwrap.dedent(f"""
        import importlib.util, os, signal, subprocess, sys
        spec = importlib.util.spec_from_file_location("fab_child", {FABRIC_PY!r})
        m = importlib.util.module_from_spec(spec); sys.modules["fab_child"] = m; spec.loader.exec_module(m)
        fab = m.Fabric(hosts=2, leaves=2, spines=2, prefix={p!r}).up()
        fab.set_rate("leaf0-spine1", "1gbit")
        sleeper = fab.popen("h1", ["sleep", "300"], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        print(sleeper.pid, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)   # die without any teardown
    """)
    cp = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert cp.returncode == -signal.SIGKILL, cp.stderr
    sleeper = int(cp.stdout.split()[0])
    st = Fabric.status(p)
    assert len(st.namespaces) == 6 and st.state_file and st.processes[f"{p}-h1"] == [sleeper]
    removed = Fabric.down(p)  # class-level: no Fabric object of the dead process needed
    assert len(removed) == 6
    assert _ns_list(p) == [] and not Fabric.status(p).exists
    time.sleep(0.05)
    assert not os.path.exists(f"/proc/{sleeper}") or fabric._is_zombie(sleeper)


def test_fabric__permission_error_without_privileges(monkeypatch):
    script = textwrap.dedent(f"""
        import importlib.util, sys
        spec = importlib.util.spec_from_file_location("fab_child", {FABRIC_PY!r})
        m = importlib.util.module_from_spec(spec); sys.modules["fab_child"] = m; spec.loader.exec_module(m)
        try:
            m.Fabric(prefix="rtfnopriv").up()
        except PermissionError as e:
            assert isinstance(e, m.FabricError), type(e)
            print("PERM", e)
        sys.exit(m.main(["up", "--prefix", "rtfnopriv"]))
    """)
    setpriv = subprocess.run(["which", "setpriv"], capture_output=True, text=True).stdout.strip()
    if setpriv:
        # root, but with CAP_NET_ADMIN and CAP_SYS_ADMIN removed from the bounding set
        cp = subprocess.run([setpriv, "--bounding-set", "-net_admin,-sys_admin", sys.executable, "-c", script],
                            capture_output=True, text=True, timeout=60)
        assert "PERM" in cp.stdout and "root" in cp.stdout and "CAP_NET_ADMIN" in cp.stdout, cp.stdout + cp.stderr
        assert cp.returncode == 77 and "sudo" in cp.stderr
    monkeypatch.setattr(fabric, "_caps_ok", lambda: False)
    with pytest.raises(PermissionError, match="CAP_NET_ADMIN"):
        Fabric(prefix="rtfnopriv").up()
    assert _ns_list("rtfnopriv") == []
