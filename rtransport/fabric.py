"""Virtual leaf-spine fabric built from Linux network namespaces and veth links.

The fabric is a test bed for rtransport: every host, leaf switch and spine
switch is a network namespace, every cable is a veth pair, leaves spread
traffic over all spines with kernel ECMP that hashes the UDP/TCP 5-tuple (like
a switch), and each link has knobs (rate limit, random loss, link down,
one-way blackhole) that can be changed while traffic runs.

Only the standard library is used; the work is done by ``ip``, ``tc``,
``sysctl`` and ``iptables`` (the last one only for loss/blackhole knobs).
Root, or CAP_NET_ADMIN plus CAP_SYS_ADMIN, is required.

Typical use::

    from rtransport.fabric import Fabric

    with Fabric(hosts=4, leaves=2, spines=4) as fab:
        h0, h2 = fab.hosts[0], fab.hosts[2]          # h0 on leaf0, h2 on leaf1
        srv = fab.popen(h2, ["python3", "server.py", h2.ip])
        fab.run(h0, ["python3", "client.py", h2.ip], check=True)
        fab.set_rate("leaf0-spine1", "1gbit")        # both directions
        fab.set_loss("h2", 0.01, direction="down")   # leaf1 -> h2 only

See docs/fabric.md for topology, addressing, knob semantics and the CLI
(``main(argv)``).  This module must stay importable on its own: it imports
nothing else from the rtransport package.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from typing import Any, Iterable, Sequence

__all__ = [
    "Fabric",
    "FabricError",
    "FabricPermissionError",
    "FabricStatus",
    "Host",
    "Node",
    "Link",
    "End",
    "parse_rate",
    "main",
]

DEFAULT_PREFIX = os.environ.get("RTRANSPORT_FABRIC_PREFIX", "rtf")
DEFAULT_STATE_DIR = os.environ.get("RTRANSPORT_FABRIC_STATE_DIR", "/run")
NETNS_DIR = "/run/netns"

# Switch-like ECMP: hash only on the 5-tuple fields.
#   fib_multipath_hash_policy=3  -> custom field set (kernel >= 5.12)
#   fib_multipath_hash_fields=0x0037 -> src IP | dst IP | IP proto | src port | dst port
# Policy 1 (L4) would reuse skb->hash, which over veth is the *sending socket's*
# random hash (sk_txhash), not a function of the 5-tuple.
HASH_POLICY = 3
HASH_FIELDS = "0x0037"

HOST_DEV = "eth0"
DIRECTIONS = ("up", "down")
_TAG = "rtf"  # iptables comment tag prefix: rtf:<kind>:<link>:<direction>
_REROUTE_ALIAS = "rtf:reroute"

_CAP_NET_ADMIN = 12
_CAP_SYS_ADMIN = 21


# --------------------------------------------------------------------------
# errors


class FabricError(RuntimeError):
    """A fabric operation failed; the message names the command and its stderr."""


class FabricPermissionError(PermissionError, FabricError):
    """The process lacks the privileges needed to build or change the fabric."""


# --------------------------------------------------------------------------
# topology description


@dataclasses.dataclass(frozen=True)
class Node:
    """A leaf or spine switch (a forwarding namespace)."""

    name: str  # "leaf0", "spine3"
    ns: str  # "<prefix>-leaf0"
    kind: str  # "leaf" | "spine"
    index: int


@dataclasses.dataclass(frozen=True)
class Host:
    """An end host: one namespace, one interface (eth0), one default route."""

    name: str  # "h0"
    ns: str  # "<prefix>-h0"
    index: int
    leaf: int  # index of the leaf the host hangs off
    ip: str  # "10.<leaf>.<index>.2"
    gateway: str  # "10.<leaf>.<index>.1" (the leaf's address on that link)
    prefixlen: int = 24
    dev: str = HOST_DEV
    kind: str = "host"

    @property
    def leaf_name(self) -> str:
        return f"leaf{self.leaf}"

    @property
    def link(self) -> str:
        """Name of the host's access link, e.g. "h0-leaf0"."""
        return f"{self.name}-leaf{self.leaf}"


@dataclasses.dataclass(frozen=True)
class End:
    """One end of a link: the node, its namespace and the veth device in it."""

    node: str
    ns: str
    dev: str
    ip: str
    prefixlen: int


@dataclasses.dataclass(frozen=True)
class Link:
    """A veth cable.  ``a`` is the lower end (host or leaf), ``b`` the upper
    end (leaf or spine).  Direction "up" is a->b (away from hosts), "down" is
    b->a (toward hosts)."""

    name: str  # "h0-leaf0" or "leaf0-spine2"
    kind: str  # "host" | "fabric"
    a: End
    b: End

    @property
    def ends(self) -> tuple[End, End]:
        return (self.a, self.b)

    def sender(self, direction: str) -> End:
        return self.a if direction == "up" else self.b

    def receiver(self, direction: str) -> End:
        return self.b if direction == "up" else self.a


# --------------------------------------------------------------------------
# helpers


def _fmt_failure(argv: Sequence[str], rc: int, stderr: str, stdout: str = "", input: str | None = None) -> str:
    msg = f"command failed (exit {rc}): {shlex.join(list(argv))}"
    detail = (stderr or "").strip() or (stdout or "").strip()
    if detail:
        msg += "\n  " + detail.replace("\n", "\n  ")
    if input:
        msg += "\n  input was:\n    " + input.strip().replace("\n", "\n    ")
    return msg


def _missing_tool(name: str) -> FabricError:
    pkg = {"ip": "iproute2", "tc": "iproute2", "iptables": "iptables", "sysctl": "procps"}.get(name, name)
    return FabricError(f"required tool {name!r} not found in PATH; install it (e.g. `apt-get install -y {pkg}`)")


def _sh(argv: Sequence[str], *, input: str | None = None, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run a command, capture output; raise FabricError with the command line and stderr on failure."""
    try:
        cp = subprocess.run(list(argv), input=input, capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError:
        raise _missing_tool(argv[0]) from None
    except subprocess.TimeoutExpired:
        raise FabricError(f"command timed out after {timeout}s: {shlex.join(list(argv))}") from None
    if check and cp.returncode != 0:
        raise FabricError(_fmt_failure(argv, cp.returncode, cp.stderr, cp.stdout, input))
    return cp


def _sh_many(cmds: Sequence[tuple[Sequence[str], str | None]], *, check: bool = True, timeout: float = 60, width: int = 16) -> list[subprocess.CompletedProcess]:
    """Run commands concurrently (``width`` at a time); raise one FabricError listing every failure."""
    results: list[subprocess.CompletedProcess] = []
    errors: list[str] = []
    for start in range(0, len(cmds), width):
        batch = []
        try:
            for argv, inp in cmds[start:start + width]:
                p = subprocess.Popen(
                    list(argv),
                    stdin=subprocess.PIPE if inp is not None else subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
                batch.append((argv, inp, p))
        except FileNotFoundError:
            for _, _, p in batch:
                p.kill()
                p.wait()
            raise _missing_tool(cmds[start + len(batch)][0][0]) from None
        for argv, inp, p in batch:
            try:
                out, err = p.communicate(inp, timeout=timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                out, err = p.communicate()
                errors.append(f"command timed out after {timeout}s: {shlex.join(list(argv))}")
                results.append(subprocess.CompletedProcess(list(argv), -9, out, err))
                continue
            cp = subprocess.CompletedProcess(list(argv), p.returncode, out, err)
            results.append(cp)
            if check and p.returncode != 0:
                errors.append(_fmt_failure(argv, p.returncode, err, out, inp))
    if errors:
        raise FabricError("\n".join(errors))
    return results


_RATE_RE = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([A-Za-z]*)\s*$")
_RATE_UNITS = {
    "": 1, "bit": 1, "k": 1e3, "kbit": 1e3, "m": 1e6, "mbit": 1e6, "g": 1e9, "gbit": 1e9, "t": 1e12, "tbit": 1e12,
    "kibit": 2**10, "mibit": 2**20, "gibit": 2**30, "tibit": 2**40,
    # tc convention: "bps" is BYTES per second
    "bps": 8, "kbps": 8e3, "mbps": 8e6, "gbps": 8e9, "tbps": 8e12,
    "kibps": 8 * 2**10, "mibps": 8 * 2**20, "gibps": 8 * 2**30, "tibps": 8 * 2**40,
}


def parse_rate(rate: int | float | str) -> int:
    """Return a rate in bits per second.

    Numbers are bits/s.  Strings follow tc: "1gbit", "500mbit", "100k" (bits),
    "10mbps" (BYTES/s, as in tc), "2.5gibit" (binary)."""
    if isinstance(rate, bool):
        raise ValueError(f"bad rate {rate!r}")
    if isinstance(rate, (int, float)):
        bits = float(rate)
    else:
        m = _RATE_RE.match(str(rate))
        unit = m.group(2).lower() if m else None
        if not m or unit not in _RATE_UNITS:
            raise ValueError(f"bad rate {rate!r}: use bits/s or a tc-style string like '1gbit', '500mbit'")
        bits = float(m.group(1)) * _RATE_UNITS[unit]
    if not bits >= 1:
        raise ValueError(f"bad rate {rate!r}: must be >= 1 bit/s")
    return int(bits)


def _fmt_rate(bps: int) -> str:
    for unit, scale in (("gbit", 1e9), ("mbit", 1e6), ("kbit", 1e3)):
        if bps >= scale:
            v = bps / scale
            return f"{v:g}{unit}"
    return f"{bps}bit"


def _caps_ok() -> bool:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("CapEff:"):
                    eff = int(line.split()[1], 16)
                    return bool(eff >> _CAP_NET_ADMIN & 1) and bool(eff >> _CAP_SYS_ADMIN & 1)
    except OSError:
        pass
    return os.geteuid() == 0


def _require_privileges(what: str = "build or change the fabric") -> None:
    if not _caps_ok():
        raise FabricPermissionError(
            f"rtransport fabric: need root (or CAP_NET_ADMIN and CAP_SYS_ADMIN) to {what}: "
            "network namespaces, veth links, tc and iptables all require it. "
            "Re-run as root, e.g. `sudo rtransport fabric up` or `sudo python3 your_test.py`."
        )
    if shutil.which("ip") is None:
        raise _missing_tool("ip")


def _check_prefix(prefix: str) -> str:
    if not isinstance(prefix, str) or not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]{0,23}", prefix):
        raise ValueError(
            f"bad prefix {prefix!r}: use 1-24 letters/digits/underscores starting with a letter "
            "(no '-': namespaces are named '<prefix>-<node>')"
        )
    return prefix


def _list_netns(prefix: str) -> list[str]:
    try:
        names = os.listdir(NETNS_DIR)
    except FileNotFoundError:
        return []
    return sorted(n for n in names if n.startswith(prefix + "-"))


def _ns_pids(ns_name: str) -> list[int]:
    """Pids of processes whose network namespace is the named one."""
    try:
        st = os.stat(os.path.join(NETNS_DIR, ns_name))
    except OSError:
        return []
    key = (st.st_dev, st.st_ino)
    me = os.getpid()
    pids = []
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) == me:
            continue
        try:
            s = os.stat(f"/proc/{d}/ns/net")
        except OSError:
            continue
        if (s.st_dev, s.st_ino) == key:
            pids.append(int(d))
    return pids


def _kill_pids(pids: Iterable[int], grace: float = 0.5) -> None:
    pids = list(pids)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        alive = []
        for pid in pids:
            try:
                os.kill(pid, sig)
                alive.append(pid)
            except (ProcessLookupError, PermissionError):
                pass
        if not alive or sig == signal.SIGKILL:
            return
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            alive = [p for p in alive if os.path.exists(f"/proc/{p}") and not _is_zombie(p)]
            if not alive:
                return
            time.sleep(0.02)
        pids = alive


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


class _hybridmethod:
    """Method usable on the class (``Fabric.down("rtf")``) and on an instance (``fab.down()``)."""

    def __init__(self, func):
        self.func = func
        self.__doc__ = func.__doc__
        self.__name__ = func.__name__

    def __get__(self, obj, cls):
        target = obj if obj is not None else cls

        def bound(*args, **kwargs):
            return self.func(target, *args, **kwargs)

        bound.__doc__ = self.func.__doc__
        bound.__name__ = self.func.__name__
        return bound


def _state_path(prefix: str, state_dir: str | None = None) -> str:
    return os.path.join(state_dir or DEFAULT_STATE_DIR, f"rtransport-fabric-{prefix}.json")


# --------------------------------------------------------------------------
# status


@dataclasses.dataclass
class FabricStatus:
    """What exists for a prefix (``Fabric.status(prefix)``); ``str()`` gives a readable report."""

    prefix: str
    namespaces: list[str]
    state_file: str | None
    state: dict | None
    root_links: list[str]
    processes: dict[str, list[int]]
    knobs: list[dict] = dataclasses.field(default_factory=list)

    @property
    def exists(self) -> bool:
        return bool(self.namespaces or self.state_file or self.root_links)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self) | {"exists": self.exists}

    def __str__(self) -> str:
        if not self.exists:
            return f"fabric {self.prefix!r}: nothing exists"
        lines = [f"fabric {self.prefix!r}:"]
        st = self.state or {}
        if st:
            lines.append(
                f"  topology: {st.get('hosts')} hosts, {st.get('leaves')} leaves, {st.get('spines')} spines, "
                f"mtu {st.get('mtu')}, placement {st.get('placement')} (state {self.state_file})"
            )
            for h in st.get("host_list", []):
                lines.append(f"    {h['name']:<6} ns {h['ns']:<16} ip {h['ip']:<15} leaf{h['leaf']}")
        elif self.state_file:
            lines.append(f"  state file {self.state_file} (unreadable)")
        else:
            lines.append("  no state file (left over from a crash? `fabric down` removes it)")
        lines.append(f"  namespaces ({len(self.namespaces)}): {' '.join(self.namespaces) or '-'}")
        if self.root_links:
            lines.append(f"  root-namespace links: {' '.join(self.root_links)}")
        busy = {ns: p for ns, p in self.processes.items() if p}
        for ns, pids in busy.items():
            lines.append(f"  processes in {ns}: {' '.join(map(str, pids))}")
        if self.knobs:
            lines.append("  active knobs:")
            for k in self.knobs:
                lines.append("    " + _fmt_knob(k))
        elif self.state:
            lines.append("  active knobs: none")
        return "\n".join(lines)


def _fmt_knob(k: dict) -> str:
    kind = k["kind"]
    s = f"{k['link']:<14} {k.get('direction', '-'):<5} {kind:<9}"
    if kind == "rate":
        s += f" {_fmt_rate(k['rate_bps'])} burst {k['burst']}B drops {k['dropped']}"
    elif kind == "loss":
        s += f" p={k['probability']:g} dropped {k['dropped']}"
    elif kind == "blackhole":
        s += f" dropped {k['dropped']}"
    elif kind == "down":
        s += " (routes reconverged)" if k.get("reroute") else ""
    return s


# --------------------------------------------------------------------------
# small Python programs run inside host namespaces (by ping / probe_ecmp)

_PY_ECHO = r"""
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", int(sys.argv[1])))
s.settimeout(0.1)
end = time.monotonic() + float(sys.argv[2])
print("ready", flush=True)
while time.monotonic() < end:
    try:
        data, addr = s.recvfrom(65535)
    except socket.timeout:
        continue
    s.sendto(data, addr)
"""

_PY_PING = r"""
import socket, sys, time
dst, port, count, timeout, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
got = 0
for i in range(count):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)   # new socket: new source port, new path
    s.setsockopt(socket.IPPROTO_IP, 10, 2)  # IP_MTU_DISCOVER = IP_PMTUDISC_DO: set DF, never fragment
    s.settimeout(min(0.25, timeout))
    msg = (b"rtf-ping %d " % i).ljust(size, b".")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            s.sendto(msg, (dst, port))
            if s.recv(65535) == msg:
                got += 1
                break
        except (socket.timeout, OSError):
            time.sleep(0.05)
    s.close()
print(got)
"""

_PY_FLOWS = r"""
import socket, sys
dst, port, flows, packets = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
socks = []
for i in range(flows):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", 0))
    socks.append(s)
for _ in range(packets):
    for s in socks:
        s.sendto(b"rtf-probe", (dst, port))
print(" ".join(str(s.getsockname()[1]) for s in socks))
"""


# --------------------------------------------------------------------------
# the fabric


class Fabric:
    """A leaf-spine fabric of network namespaces.

    ``Fabric(hosts=4, leaves=2, spines=4, mtu=9000, prefix="rtf")`` only
    describes the topology; ``up()`` (or ``with Fabric(...) as fab:``) builds
    it and ``down()`` removes it.  See the module docstring and docs/fabric.md.

    placement: "block" puts host i on leaf ``i * leaves // hosts`` (h0,h1 on
    leaf0 and h2,h3 on leaf1 for 4/2); "round_robin" puts host i on leaf
    ``i % leaves``.
    """

    def __init__(
        self,
        hosts: int = 4,
        leaves: int = 2,
        spines: int = 4,
        mtu: int = 9000,
        prefix: str = DEFAULT_PREFIX,
        *,
        placement: str = "block",
        state_dir: str | None = None,
        replace: bool = False,
    ):
        for label, v, lo, hi in (("hosts", hosts, 1, 250), ("leaves", leaves, 1, 250), ("spines", spines, 1, 127), ("mtu", mtu, 576, 65535)):
            if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
                raise ValueError(f"{label} must be an integer in [{lo}, {hi}], got {v!r}")
        if placement not in ("block", "round_robin"):
            raise ValueError(f"placement must be 'block' or 'round_robin', got {placement!r}")
        self.prefix = _check_prefix(prefix)
        self.n_hosts, self.n_leaves, self.n_spines, self.mtu = hosts, leaves, spines, mtu
        self.placement = placement
        self.state_dir = state_dir or DEFAULT_STATE_DIR
        self.replace = replace
        self.timings: dict[str, float] = {}
        self._is_up = False

        p = self.prefix
        self.leaves: list[Node] = [Node(f"leaf{j}", f"{p}-leaf{j}", "leaf", j) for j in range(leaves)]
        self.spines: list[Node] = [Node(f"spine{k}", f"{p}-spine{k}", "spine", k) for k in range(spines)]
        self.hosts: list[Host] = []
        for i in range(hosts):
            j = i * leaves // hosts if placement == "block" else i % leaves
            self.hosts.append(Host(f"h{i}", f"{p}-h{i}", i, j, f"10.{j}.{i}.2", f"10.{j}.{i}.1"))
        self.links: list[Link] = []
        for h in self.hosts:
            leaf = self.leaves[h.leaf]
            self.links.append(Link(
                h.link, "host",
                End(h.name, h.ns, HOST_DEV, h.ip, 24),
                End(leaf.name, leaf.ns, h.name, h.gateway, 24),
            ))
        for leaf in self.leaves:
            for sp in self.spines:
                j, k = leaf.index, sp.index
                self.links.append(Link(
                    f"{leaf.name}-{sp.name}", "fabric",
                    End(leaf.name, leaf.ns, sp.name, f"172.16.{j}.{2 * k}", 31),
                    End(sp.name, sp.ns, leaf.name, f"172.16.{j}.{2 * k + 1}", 31),
                ))
        self._nodes: dict[str, Host | Node] = {n.name: n for n in [*self.hosts, *self.leaves, *self.spines]}
        self._links: dict[str, Link] = {l.name: l for l in self.links}

    # ---------------------------------------------------------------- lookup

    @property
    def namespaces(self) -> list[str]:
        return [n.ns for n in [*self.hosts, *self.leaves, *self.spines]]

    @property
    def state_file(self) -> str:
        return _state_path(self.prefix, self.state_dir)

    def node(self, node: Host | Node | str | int) -> Host | Node:
        """Resolve a host/leaf/spine: an object, a name ("h0", "leaf1", "spine2"),
        a namespace name ("rtf-h0"), a host IP, or a host index."""
        if isinstance(node, (Host, Node)):
            node = node.name
        if isinstance(node, int) and not isinstance(node, bool):
            if 0 <= node < len(self.hosts):
                return self.hosts[node]
            raise FabricError(f"no host with index {node} (fabric has {len(self.hosts)} hosts)")
        if isinstance(node, str):
            if node in self._nodes:
                return self._nodes[node]
            if node.startswith(self.prefix + "-") and node[len(self.prefix) + 1:] in self._nodes:
                return self._nodes[node[len(self.prefix) + 1:]]
            for h in self.hosts:
                if h.ip == node:
                    return h
        raise FabricError(f"unknown node {node!r}; hosts: {', '.join(h.name for h in self.hosts)}; "
                          f"leaves: {', '.join(l.name for l in self.leaves)}; spines: {', '.join(s.name for s in self.spines)}")

    def host(self, host: Host | str | int) -> Host:
        n = self.node(host)
        if not isinstance(n, Host):
            raise FabricError(f"{n.name} is a {n.kind}, not a host")
        return n

    def link(self, link: Link | str | Host) -> Link:
        """Resolve a link: a Link, its name ("leaf0-spine2", "h0-leaf0"), the
        reversed name ("spine2-leaf0"), or a host / host name (its access link)."""
        if isinstance(link, Link):
            return self._links[link.name]
        if isinstance(link, Host):
            return self._links[link.link]
        if isinstance(link, str):
            if link in self._links:
                return self._links[link]
            if "-" in link:
                x, y = link.split("-", 1)
                if f"{y}-{x}" in self._links:
                    return self._links[f"{y}-{x}"]
            n = self._nodes.get(link)
            if isinstance(n, Host):
                return self._links[n.link]
        raise FabricError(f"unknown link {link!r}; links are named like "
                          f"{self.links[0].name!r} and {self.links[-1].name!r} (see fab.links)")

    def _targets(self, target: Link | Host | Node | str) -> list[Link]:
        """A link, or every link touching a node (host: its access link; spine:
        all its leaf links; leaf: its host links and spine links)."""
        try:
            return [self.link(target)]
        except FabricError:
            pass
        try:
            n = self.node(target)
        except FabricError:
            raise FabricError(f"unknown link or node {target!r}; links are named like {self.links[0].name!r} and "
                              f"{self.links[-1].name!r}, nodes like 'h0', 'leaf0', 'spine0' (see fab.links)") from None
        return [l for l in self.links if n.name in (l.a.node, l.b.node)]

    @staticmethod
    def _directions(link: Link, direction: str) -> list[str]:
        d = str(direction).strip().lower()
        if d in ("both", "all", "*"):
            return ["up", "down"]
        if d in ("up", "down"):
            return [d]
        # explicit "<from>-><to>" using the link's node names
        if "->" in d:
            x, y = (s.strip() for s in d.split("->", 1))
            if (x, y) == (link.a.node.lower(), link.b.node.lower()):
                return ["up"]
            if (x, y) == (link.b.node.lower(), link.a.node.lower()):
                return ["down"]
        raise FabricError(f"bad direction {direction!r} for {link.name}: use 'both', 'up' "
                          f"({link.a.node}->{link.b.node}) or 'down' ({link.b.node}->{link.a.node})")

    def _is_forwarder(self, node_name: str) -> bool:
        return self._nodes[node_name].kind in ("leaf", "spine")

    # -------------------------------------------------------------- run/popen

    def exec_argv(self, node: Host | Node | str | int, cmd: Sequence[str] | str) -> list[str]:
        """The argv that runs ``cmd`` inside the node's namespace (``ip netns exec NS ...``).
        A string command is run with ``sh -c``."""
        ns = self.node(node).ns
        argv = ["sh", "-c", cmd] if isinstance(cmd, str) else list(cmd)
        if not argv:
            raise ValueError("empty command")
        return ["ip", "netns", "exec", ns, *argv]

    def run(self, host: Host | Node | str | int, cmd: Sequence[str] | str, **kwargs: Any) -> subprocess.CompletedProcess:
        """``subprocess.run`` inside a namespace; keyword arguments go to subprocess.run."""
        return subprocess.run(self.exec_argv(host, cmd), **kwargs)

    def popen(self, host: Host | Node | str | int, cmd: Sequence[str] | str, **kwargs: Any) -> subprocess.Popen:
        """``subprocess.Popen`` inside a namespace (``ip netns exec`` execs, so
        ``.pid`` is the command's pid)."""
        return subprocess.Popen(self.exec_argv(host, cmd), **kwargs)

    # -------------------------------------------------------------- lifecycle

    def __enter__(self) -> "Fabric":
        return self.up()

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            self.down()
        except Exception as e:  # do not hide the body's exception
            if exc is None:
                raise
            if hasattr(exc, "add_note"):
                exc.add_note(f"additionally, fabric teardown failed: {e}")

    def __repr__(self) -> str:
        return (f"Fabric(hosts={self.n_hosts}, leaves={self.n_leaves}, spines={self.n_spines}, "
                f"mtu={self.mtu}, prefix={self.prefix!r}, placement={self.placement!r})")

    def up(self) -> "Fabric":
        """Build the fabric; on any failure everything created is removed again.
        Returns self.  ``self.timings["up"]`` holds the build time in seconds."""
        _require_privileges("build the fabric")
        existing = _list_netns(self.prefix)
        if existing or os.path.exists(self.state_file):
            if not self.replace:
                raise FabricError(
                    f"a fabric with prefix {self.prefix!r} already exists ({len(existing)} namespaces"
                    f"{', state ' + self.state_file if os.path.exists(self.state_file) else ''}); "
                    f"remove it with Fabric.down({self.prefix!r}) / `rtransport fabric down --prefix {self.prefix}`, "
                    "use another prefix, or pass replace=True"
                )
            Fabric.down(self.prefix, state_dir=self.state_dir)
        t0 = time.monotonic()
        try:
            self._build()
            self._write_state()
        except BaseException:
            try:
                Fabric.down(self.prefix, state_dir=self.state_dir)
            except Exception:
                pass
            raise
        self._is_up = True
        self.timings["up"] = time.monotonic() - t0
        return self

    def _build(self) -> None:
        m = self.mtu
        # 1. namespaces and all veth pairs, created directly in their namespaces (nothing in the root ns)
        lines = [f"netns add {ns}" for ns in self.namespaces]
        for l in self.links:
            lines.append(f"link add {l.a.dev} netns {l.a.ns} mtu {m} type veth peer name {l.b.dev} netns {l.b.ns} mtu {m}")
        _sh(["ip", "-batch", "-"], input="\n".join(lines) + "\n")

        # 2. per namespace (in parallel): sysctls, addresses, links up
        ends_by_ns: dict[str, list[End]] = {ns: [] for ns in self.namespaces}
        for l in self.links:
            ends_by_ns[l.a.ns].append(l.a)
            ends_by_ns[l.b.ns].append(l.b)
        cmds = []
        for n in [*self.hosts, *self.leaves, *self.spines]:
            ends = ends_by_ns[n.ns]
            sysctls = [
                "net.ipv6.conf.all.disable_ipv6=1",  # no RS/DAD/MLD noise in the packet counters
                "net.ipv6.conf.default.disable_ipv6=1",
                "net.ipv4.conf.all.rp_filter=0",  # ECMP paths are asymmetric
                "net.ipv4.conf.default.rp_filter=0",
                *[f"net.ipv4.conf.{e.dev}.rp_filter=0" for e in ends],
            ]
            if n.kind != "host":
                sysctls += [
                    "net.ipv4.ip_forward=1",
                    f"net.ipv4.fib_multipath_hash_policy={HASH_POLICY}",
                    f"net.ipv4.fib_multipath_hash_fields={HASH_FIELDS}",
                    "net.ipv4.conf.all.ignore_routes_with_linkdown=1",
                    "net.ipv4.conf.default.ignore_routes_with_linkdown=1",
                ]
            batch = ["link set lo up"]
            for e in ends:
                batch.append(f"addr add {e.ip}/{e.prefixlen} dev {e.dev}")
                batch.append(f"link set {e.dev} up")
            script = f"sysctl -q -w {' '.join(sysctls)} && exec ip -batch -"
            cmds.append((["ip", "netns", "exec", n.ns, "sh", "-c", script], "\n".join(batch) + "\n"))
        _sh_many(cmds)

        # 3. routes (after every interface in every namespace is up)
        live = {l.name: True for l in self.links}
        cmds = []
        for n in [*self.hosts, *self.leaves, *self.spines]:
            batch = [self._route_line("replace", dst, nhs) for dst, nhs in self._routes(n, live, set()) if nhs]
            if batch:
                cmds.append((["ip", "-n", n.ns, "-batch", "-"], "\n".join(batch) + "\n"))
        _sh_many(cmds)

    def _routes(self, n: Host | Node, live: dict[str, bool], rerouted: set[str]) -> list[tuple[str, list[tuple[str, str]]]]:
        """Routes of a node as (destination, [(gateway, dev), ...]) given which
        links are up and which down links have been withdrawn from routing."""
        if isinstance(n, Host):
            return [("default", [(n.gateway, n.dev)] if live[n.link] else [])]
        out = []
        if n.kind == "leaf":
            for other in self.leaves:
                if other.index == n.index:
                    continue
                nhs = []
                for sp in self.spines:
                    l = self._links[f"{n.name}-{sp.name}"]
                    if live[l.name] and f"{other.name}-{sp.name}" not in rerouted:
                        nhs.append((l.b.ip, l.a.dev))
                out.append((f"10.{other.index}.0.0/16", nhs))
        else:  # spine
            for leaf in self.leaves:
                l = self._links[f"{leaf.name}-{n.name}"]
                out.append((f"10.{leaf.index}.0.0/16", [(l.a.ip, l.b.dev)] if live[l.name] else []))
        return out

    @staticmethod
    def _route_line(verb: str, dst: str, nhs: list[tuple[str, str]]) -> str:
        if len(nhs) == 1:
            return f"route {verb} {dst} via {nhs[0][0]} dev {nhs[0][1]}"
        return f"route {verb} {dst} " + " ".join(f"nexthop via {gw} dev {dev}" for gw, dev in nhs)

    def _write_state(self) -> None:
        st = {
            "version": 1,
            "prefix": self.prefix,
            "hosts": self.n_hosts,
            "leaves": self.n_leaves,
            "spines": self.n_spines,
            "mtu": self.mtu,
            "placement": self.placement,
            "created": time.time(),
            "pid": os.getpid(),
            "namespaces": self.namespaces,
            "host_list": [{"name": h.name, "ns": h.ns, "ip": h.ip, "leaf": h.leaf, "gateway": h.gateway, "dev": h.dev} for h in self.hosts],
            "spine_list": [{"name": s.name, "ns": s.ns} for s in self.spines],
            "leaf_list": [{"name": s.name, "ns": s.ns} for s in self.leaves],
            "link_list": [dataclasses.asdict(l) for l in self.links],
        }
        os.makedirs(self.state_dir, exist_ok=True)
        tmp = self.state_file + ".tmp"
        with open(tmp, "w") as f:
            json.dump(st, f, indent=1)
        os.replace(tmp, self.state_file)

    @classmethod
    def load(cls, prefix: str = DEFAULT_PREFIX, state_dir: str | None = None) -> "Fabric":
        """Attach to a fabric built earlier (e.g. by `rtransport fabric up`) from its state file."""
        _check_prefix(prefix)
        path = _state_path(prefix, state_dir)
        try:
            with open(path) as f:
                st = json.load(f)
        except FileNotFoundError:
            nss = _list_netns(prefix)
            if nss:
                raise FabricError(f"namespaces of fabric {prefix!r} exist but its state file {path} is missing "
                                  f"(left over from a crash?); run `rtransport fabric down --prefix {prefix}` and build it again") from None
            raise FabricError(f"no fabric {prefix!r}: {path} not found; build one with `rtransport fabric up --prefix {prefix}`") from None
        except (OSError, ValueError) as e:
            raise FabricError(f"cannot read fabric state {path}: {e}") from None
        fab = cls(st["hosts"], st["leaves"], st["spines"], st["mtu"], st["prefix"], placement=st.get("placement", "block"), state_dir=state_dir)
        fab._is_up = True
        return fab

    @_hybridmethod
    def down(self_or_cls, prefix: str | None = None, *, state_dir: str | None = None) -> list[str]:
        """Remove every namespace named ``<prefix>-*`` (killing processes still
        running in them), root-namespace links named ``<prefix>-*`` and the state
        file.  Works on an instance (``fab.down()``) and on the class
        (``Fabric.down("rtf")``), so it also cleans up after a crash.  Returns the
        namespaces removed; raises FabricError if something could not be removed."""
        if isinstance(self_or_cls, Fabric):
            fab = self_or_cls
            prefix = prefix or fab.prefix
            state_dir = state_dir or fab.state_dir
        else:
            fab = None
            prefix = prefix or DEFAULT_PREFIX
        _check_prefix(prefix)
        t0 = time.monotonic()
        nss = _list_netns(prefix)
        path = _state_path(prefix, state_dir)
        roots = _root_links(prefix)
        if not nss and not roots and not os.path.exists(path):
            if fab is not None:
                fab._is_up = False
                fab.timings["down"] = time.monotonic() - t0
            return []
        _require_privileges("remove the fabric")
        for ns in nss:
            _kill_pids(_ns_pids(ns))
        if nss:
            _sh(["ip", "-force", "-batch", "-"], input="".join(f"netns del {ns}\n" for ns in nss), check=False)
        errors = []
        for ns in _list_netns(prefix):  # retry one by one, then fall back to unlinking a stale file
            cp = _sh(["ip", "netns", "del", ns], check=False)
            if os.path.exists(os.path.join(NETNS_DIR, ns)):
                try:
                    os.unlink(os.path.join(NETNS_DIR, ns))
                except OSError as e:
                    errors.append(_fmt_failure(cp.args, cp.returncode, cp.stderr) + f"; unlink: {e}")
        for dev in roots:
            cp = _sh(["ip", "link", "del", dev], check=False)
            if cp.returncode != 0 and dev in _root_links(prefix):
                errors.append(_fmt_failure(cp.args, cp.returncode, cp.stderr))
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        except OSError as e:
            errors.append(f"cannot remove state file {path}: {e}")
        if fab is not None:
            fab._is_up = False
            fab.timings["down"] = time.monotonic() - t0
        if errors:
            raise FabricError(f"teardown of fabric {prefix!r} incomplete:\n" + "\n".join(errors))
        return nss

    @_hybridmethod
    def status(self_or_cls, prefix: str | None = None, *, state_dir: str | None = None, knobs: bool = True) -> FabricStatus:
        """What exists for a prefix: namespaces, state file, root-ns links, processes
        inside the namespaces and (if the fabric is complete) active knobs.
        ``print(Fabric.status("rtf"))`` gives a readable report."""
        if isinstance(self_or_cls, Fabric):
            prefix = prefix or self_or_cls.prefix
            state_dir = state_dir or self_or_cls.state_dir
        prefix = _check_prefix(prefix or DEFAULT_PREFIX)
        path = _state_path(prefix, state_dir)
        state = None
        if os.path.exists(path):
            try:
                with open(path) as f:
                    state = json.load(f)
            except (OSError, ValueError):
                state = None
        nss = _list_netns(prefix)
        st = FabricStatus(
            prefix=prefix,
            namespaces=nss,
            state_file=path if os.path.exists(path) else None,
            state=state,
            root_links=_root_links(prefix),
            processes={ns: _ns_pids(ns) for ns in nss},
        )
        if knobs and state and nss and _caps_ok():
            try:
                fab = Fabric.load(prefix, state_dir)
                if set(fab.namespaces) <= set(nss):
                    st.knobs = fab.knobs()
            except FabricError:
                pass
        return st

    @staticmethod
    def existing(state_dir: str | None = None) -> list[str]:
        """Prefixes of all fabrics that exist (from state files and namespace names)."""
        found = set()
        try:
            for n in os.listdir(state_dir or DEFAULT_STATE_DIR):
                m = re.fullmatch(r"rtransport-fabric-([A-Za-z][A-Za-z0-9_]*)\.json", n)
                if m:
                    found.add(m.group(1))
        except OSError:
            pass
        try:
            for n in os.listdir(NETNS_DIR):
                m = re.fullmatch(r"([A-Za-z][A-Za-z0-9_]*)-(?:h|leaf|spine)[0-9]+", n)
                if m:
                    found.add(m.group(1))
        except OSError:
            pass
        return sorted(found)

    @property
    def is_up(self) -> bool:
        """True if all namespaces of this fabric exist."""
        return set(self.namespaces) <= set(_list_netns(self.prefix))

    # -------------------------------------------------------------- knobs

    def _rate_target(self, link: Link, d: str) -> tuple[str, str]:
        e = link.sender(d)  # egress qdisc of the transmitting end
        return e.ns, e.dev

    def _filter_target(self, link: Link, d: str) -> tuple[str, str, str]:
        """(namespace, "-o"/"-i", dev) of the FORWARD rule for traffic on link in direction d:
        egress of the sending switch, or ingress of the leaf when the sender is a host."""
        s, r = link.sender(d), link.receiver(d)
        if self._is_forwarder(s.node):
            return s.ns, "-o", s.dev
        return r.ns, "-i", r.dev

    def set_rate(
        self,
        link: Link | Host | Node | str,
        rate: int | float | str | None,
        direction: str = "both",
        *,
        burst: int | str | None = None,
        latency: str | float = "10ms",
    ) -> None:
        """Limit a link (or all links of a node) to ``rate`` (bits/s or "1gbit") with a
        tc tbf qdisc on the egress of the sending end; ``None`` (or 0/"none") removes it.

        direction: "both" (default), "up" (host->leaf / leaf->spine, qdisc on
        the lower end) or "down" (spine->leaf / leaf->host, qdisc on the upper end).
        burst: bytes (default max(1 ms at rate, 64 KiB + 2 MTU)); latency: max
        queueing delay of the tbf queue (default 10ms; number = seconds).
        Can be changed while traffic flows (``tc qdisc replace``)."""
        _require_privileges()
        off = rate is None or (isinstance(rate, str) and rate.strip().lower() in ("none", "off", "0", "")) or rate == 0
        cmds = []
        for l in self._targets(link):
            for d in self._directions(l, direction):
                ns, dev = self._rate_target(l, d)
                if off:
                    cmds.append(["tc", "-n", ns, "qdisc", "del", "dev", dev, "root"])
                    continue
                bps = parse_rate(rate)
                b = burst if burst is not None else max(bps // 8 // 1000, 65536 + 2 * self.mtu)
                lat = f"{int(latency * 1e6)}us" if isinstance(latency, (int, float)) else str(latency)
                cmds.append(["tc", "-n", ns, "qdisc", "replace", "dev", dev, "root", "tbf",
                             "rate", f"{bps}bit", "burst", str(b), "latency", lat])
        results = _sh_many([(c, None) for c in cmds], check=False)
        errs = [_fmt_failure(cp.args, cp.returncode, cp.stderr) for cp in results
                if cp.returncode != 0 and not (off and _no_qdisc_error(cp.stderr))]
        if errs:
            raise FabricError("\n".join(errs))

    def _ipt(self, ns: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        if shutil.which("iptables") is None:
            raise _missing_tool("iptables")
        return _sh(["ip", "netns", "exec", ns, "iptables", "-w", *args], check=check)

    def _ipt_rules(self, ns: str) -> list[tuple[int, str | None, list[str]]]:
        """FORWARD rules of a namespace as (rule number, rtf comment tag or None, args)."""
        out = self._ipt(ns, "-S", "FORWARD").stdout
        rules = []
        for line in out.splitlines():
            if not line.startswith("-A FORWARD"):
                continue
            args = shlex.split(line)[2:]
            tag = None
            if "--comment" in args:
                i = args.index("--comment")
                if i + 1 < len(args) and args[i + 1].startswith(_TAG + ":"):
                    tag = args[i + 1]
            rules.append((len(rules) + 1, tag, args))
        return rules

    def _ipt_upsert(self, ns: str, tag: str, spec: list[str]) -> None:
        for num, t, _ in self._ipt_rules(ns):
            if t == tag:
                self._ipt(ns, "-R", "FORWARD", str(num), *spec)  # atomic change, no gap
                return
        self._ipt(ns, "-A", "FORWARD", *spec)

    def _ipt_remove(self, ns: str, pred) -> int:
        if shutil.which("iptables") is None:
            return 0  # no iptables, so no rules of ours
        nums = [num for num, t, _ in self._ipt_rules(ns) if t and pred(t)]
        for num in sorted(nums, reverse=True):
            self._ipt(ns, "-D", "FORWARD", str(num))
        return len(nums)

    def set_loss(self, link: Link | Host | Node | str, p: float, direction: str = "both") -> None:
        """Drop forwarded packets on a link (or all links of a node) at random with
        probability ``p`` (0..1) using ``iptables -m statistic --mode random`` in the
        FORWARD chain of the switch that transmits onto the link (for "up" on a host
        link: the leaf, matching the ingress interface).  ``p=0`` removes the rule.
        Can be changed while traffic flows (rules are replaced in place)."""
        _require_privileges()
        p = float(p)
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"loss probability must be in [0, 1], got {p}")
        for l in self._targets(link):
            for d in self._directions(l, direction):
                ns, flag, dev = self._filter_target(l, d)
                tag = f"{_TAG}:loss:{l.name}:{d}"
                if p == 0.0:
                    self._ipt_remove(ns, lambda t, tag=tag: t == tag)
                else:
                    self._ipt_upsert(ns, tag, [flag, dev, "-m", "statistic", "--mode", "random", "--probability",
                                               f"{p:.8f}", "-m", "comment", "--comment", tag, "-j", "DROP"])

    def blackhole(self, target: Link | Host | Node | str, direction: str = "up", *, on: bool = True) -> None:
        """Silently drop 100% of forwarded packets on a link (or on every link of a
        node, e.g. a spine) in one direction (default "up"; "down" or "both" also
        accepted).  Routing does not notice (unlike ``link_down``): ECMP keeps
        hashing flows onto the dead path.  ``on=False`` (or ``restore``) removes it."""
        _require_privileges()
        for l in self._targets(target):
            for d in self._directions(l, direction):
                ns, flag, dev = self._filter_target(l, d)
                tag = f"{_TAG}:blackhole:{l.name}:{d}"
                if on:
                    self._ipt_upsert(ns, tag, [flag, dev, "-m", "comment", "--comment", tag, "-j", "DROP"])
                else:
                    self._ipt_remove(ns, lambda t, tag=tag: t == tag)

    def link_down(self, link: Link | Host | Node | str, *, reroute: bool = False) -> None:
        """``ip link set down`` both ends of a link (or of all links of a node: a
        spine name takes the whole spine down).  The kernel then stops using the
        dead next hop locally (the leaf rehashes its flows over the other spines,
        the spine loses its route to that leaf).  With ``reroute=True`` the failure
        is also propagated like a converged routing protocol would: every other
        leaf withdraws that spine as next hop toward the cut-off leaf."""
        _require_privileges()
        links = self._targets(link)
        per_ns: dict[str, list[str]] = {}
        for l in links:
            for e in l.ends:
                line = f"link set dev {e.dev} down"
                if reroute and l.kind == "fabric" and e is l.a:
                    line += f" alias {_REROUTE_ALIAS}"
                per_ns.setdefault(e.ns, []).append(line)
        _sh_many([(["ip", "-n", ns, "-batch", "-"], "\n".join(b) + "\n") for ns, b in per_ns.items()])
        self._sync_routes(hosts=[l.a.node for l in links if l.kind == "host"])

    def link_up(self, link: Link | Host | Node | str) -> None:
        """Bring a link (or all links of a node) back up and reinstall its routes."""
        _require_privileges()
        self._links_up(self._targets(link))

    def _leaf_link_state(self) -> tuple[dict[str, bool], set[str]]:
        """(live per link, set of links withdrawn with reroute) read from the leaf-side devices.
        The leaf end of a veth has LOWER_UP only if both ends are up."""
        res = _sh_many([(["ip", "-n", leaf.ns, "-j", "link", "show"], None) for leaf in self.leaves])
        dev_state: dict[tuple[str, str], dict] = {}
        for leaf, cp in zip(self.leaves, res):
            for d in json.loads(cp.stdout or "[]"):
                dev_state[(leaf.ns, d["ifname"])] = d
        live, rerouted = {}, set()
        for l in self.links:
            e = l.b if l.kind == "host" else l.a  # the leaf end
            d = dev_state.get((e.ns, e.dev), {})
            flags = d.get("flags", [])
            live[l.name] = "UP" in flags and "LOWER_UP" in flags
            if l.kind == "fabric" and d.get("ifalias") == _REROUTE_ALIAS:
                rerouted.add(l.name)
        return live, rerouted

    def _sync_routes(self, hosts: Iterable[str] = ()) -> None:
        """Make the routes of all switches (and the given hosts) match link state."""
        live, rerouted = self._leaf_link_state()
        nodes = [*self.leaves, *self.spines, *(self._nodes[h] for h in dict.fromkeys(hosts))]
        repl, dels = [], []
        for n in nodes:
            r = self._routes(n, live, rerouted)
            add = [self._route_line("replace", dst, nhs) for dst, nhs in r if nhs]
            rm = [f"route del {dst}" for dst, nhs in r if not nhs]
            if add:
                repl.append((["ip", "-n", n.ns, "-batch", "-"], "\n".join(add) + "\n"))
            if rm:
                dels.append((["ip", "-force", "-n", n.ns, "-batch", "-"], "\n".join(rm) + "\n"))
        _sh_many(dels, check=False)  # may already be gone (the kernel flushes single-path routes)
        _sh_many(repl)

    def restore(self, target: Link | Host | Node | str | None = None) -> None:
        """Undo every knob (rate, loss, blackhole, link down) on a link, on all links
        of a node, or (``None``) on the whole fabric."""
        _require_privileges()
        links = self.links if target is None else self._targets(target)
        names = {l.name for l in links}
        # rates: delete non-default root qdiscs on both ends
        ends = [e for l in links for e in l.ends]
        nss = list(dict.fromkeys(e.ns for e in ends))
        shown = _sh_many([(["tc", "-n", ns, "-j", "qdisc", "show"], None) for ns in nss])
        roots = {}
        for ns, cp in zip(nss, shown):
            for q in json.loads(cp.stdout or "[]"):
                if q.get("root"):
                    roots[(ns, q.get("dev"))] = q.get("kind")
        dels = [(["tc", "-n", e.ns, "qdisc", "del", "dev", e.dev, "root"], None) for e in ends
                if roots.get((e.ns, e.dev)) not in (None, "noqueue")]
        for cp in _sh_many(dels, check=False):
            if cp.returncode != 0 and not _no_qdisc_error(cp.stderr):
                raise FabricError(_fmt_failure(cp.args, cp.returncode, cp.stderr))
        # loss / blackhole rules
        fwd_ns = list(dict.fromkeys(self._filter_target(l, d)[0] for l in links for d in DIRECTIONS))
        if shutil.which("iptables") is not None:
            for ns in fwd_ns:
                self._ipt_remove(ns, lambda t: t.split(":")[2] in names if t.count(":") >= 3 else False)
        # links
        live, rerouted = self._leaf_link_state()
        if any(not live[n] for n in names) or rerouted & names:
            self._links_up(links)

    def _links_up(self, links: list[Link]) -> None:
        per_ns: dict[str, list[str]] = {}
        for l in links:
            for e in l.ends:
                line = f"link set dev {e.dev} up" + (' alias ""' if l.kind == "fabric" and e is l.a else "")
                per_ns.setdefault(e.ns, []).append(line)
        _sh_many([(["ip", "-n", ns, "-batch", "-"], "\n".join(b) + "\n") for ns, b in per_ns.items()])
        self._sync_routes(hosts=[l.a.node for l in links if l.kind == "host"])

    # -------------------------------------------------------------- observation

    def knobs(self) -> list[dict]:
        """Active knobs with their counters: dicts with kind "rate" (rate_bps, burst,
        dropped, packets), "loss" (probability, dropped), "blackhole" (dropped),
        "down" (reroute), each with "link" and "direction"."""
        out: list[dict] = []
        egress = {}
        for l in self.links:
            for d in DIRECTIONS:
                egress[self._rate_target(l, d)] = (l.name, d)
        nss = self.namespaces
        for ns, cp in zip(nss, _sh_many([(["tc", "-n", ns, "-s", "-j", "qdisc", "show"], None) for ns in nss])):
            for q in json.loads(cp.stdout or "[]"):
                key = (ns, q.get("dev"))
                if q.get("root") and q.get("kind") == "tbf" and key in egress:
                    name, d = egress[key]
                    o = q.get("options", {})
                    out.append({"kind": "rate", "link": name, "direction": d, "rate_bps": int(o.get("rate", 0)) * 8,
                                "burst": o.get("burst"), "dropped": q.get("drops", 0), "packets": q.get("packets", 0)})
        if shutil.which("iptables") is not None:
            fwd = [n.ns for n in [*self.leaves, *self.spines]]
            res = _sh_many([(["ip", "netns", "exec", ns, "iptables-save", "-c", "-t", "filter"], None) for ns in fwd], check=False)
            for cp in res:
                for line in cp.stdout.splitlines():
                    m = re.match(r"^\[(\d+):(\d+)\] -A FORWARD (.*)$", line)
                    if not m:
                        continue
                    args = shlex.split(m.group(3))
                    if "--comment" not in args:
                        continue
                    tag = args[args.index("--comment") + 1]
                    parts = tag.split(":")
                    if len(parts) != 4 or parts[0] != _TAG:
                        continue
                    k = {"kind": parts[1], "link": parts[2], "direction": parts[3], "dropped": int(m.group(1))}
                    if parts[1] == "loss" and "--probability" in args:
                        k["probability"] = float(args[args.index("--probability") + 1])
                    out.append(k)
        live, rerouted = self._leaf_link_state()
        for l in self.links:
            if not live[l.name]:
                out.append({"kind": "down", "link": l.name, "direction": "both", "reroute": l.name in rerouted})
        order = {l.name: i for i, l in enumerate(self.links)}
        out.sort(key=lambda k: (order.get(k["link"], 1 << 30), k["direction"], k["kind"]))
        return out

    def counters(self) -> dict[str, dict[str, dict[str, int]]]:
        """Packets/bytes delivered over each link per direction, read from the leaf
        end of every link: ``{"leaf0-spine2": {"up": {"packets": n, "bytes": b}, "down": {...}}}``."""
        res = _sh_many([(["ip", "-n", leaf.ns, "-s", "-j", "link", "show"], None) for leaf in self.leaves])
        stats = {}
        for leaf, cp in zip(self.leaves, res):
            for d in json.loads(cp.stdout or "[]"):
                stats[(leaf.ns, d["ifname"])] = d.get("stats64", d.get("stats", {}))
        out = {}
        for l in self.links:
            e = l.b if l.kind == "host" else l.a
            s = stats.get((e.ns, e.dev), {})
            tx, rx = s.get("tx", {}), s.get("rx", {})
            up, down = (rx, tx) if l.kind == "host" else (tx, rx)
            out[l.name] = {"up": {"packets": up.get("packets", 0), "bytes": up.get("bytes", 0)},
                           "down": {"packets": down.get("packets", 0), "bytes": down.get("bytes", 0)}}
        return out

    def spine_counters(self, direction: str = "up", counters: dict | None = None) -> dict[str, int]:
        """Packets per spine: sum over its links of ``direction`` ("up" = received
        from leaves, "down" = sent to leaves)."""
        c = counters if counters is not None else self.counters()
        return {sp.name: sum(c[f"{leaf.name}-{sp.name}"][direction]["packets"] for leaf in self.leaves) for sp in self.spines}

    def probe_ecmp(self, src: Host | str | int, dst: Host | str | int, flows: int = 64, packets: int = 4, port: int = 9) -> dict[str, int]:
        """Send ``packets`` UDP datagrams on each of ``flows`` flows (distinct source
        ports) from src to dst (on another leaf) and return how many packets the
        source leaf sent to each spine.  With 5-tuple hashing the flows spread over
        the spines; a single flow always uses one spine."""
        s, d = self.host(src), self.host(dst)
        if s.leaf == d.leaf:
            raise FabricError(f"{s.name} and {d.name} are both on leaf{s.leaf}: their traffic does not cross a spine")
        links = [f"leaf{s.leaf}-{sp.name}" for sp in self.spines]
        before = self.counters()
        cp = self.run(s, [sys.executable, "-c", _PY_FLOWS, d.ip, str(port), str(flows), str(packets)],
                      capture_output=True, text=True, timeout=60)
        if cp.returncode != 0:
            raise FabricError(_fmt_failure(cp.args, cp.returncode, cp.stderr))
        after = self.counters()
        return {ln.split("-")[1]: after[ln]["up"]["packets"] - before[ln]["up"]["packets"] for ln in links}

    def ping(self, src: Host | str | int, dst: Host | str | int, count: int = 3, timeout: float = 1.0, port: int = 7, size: int = 64) -> int:
        """UDP echo from src to dst (each probe from a new source port, ``size``
        payload bytes, DF set so nothing is fragmented); returns the number of
        replies (0..count).  Runs small Python programs in both hosts."""
        s, d = self.host(src), self.host(dst)
        srv = self.popen(d, [sys.executable, "-c", _PY_ECHO, str(port), str(count * timeout + 5)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            if srv.stdout.readline().strip() != "ready":
                raise FabricError(f"echo server in {d.ns} did not start: {srv.stderr.read()}")
            cp = self.run(s, [sys.executable, "-c", _PY_PING, d.ip, str(port), str(count), str(timeout), str(size)],
                          capture_output=True, text=True, timeout=count * timeout + 30)
            if cp.returncode != 0:
                raise FabricError(_fmt_failure(cp.args, cp.returncode, cp.stderr))
            return int(cp.stdout.strip() or 0)
        finally:
            srv.kill()
            srv.wait()
            srv.stdout.close()
            srv.stderr.close()


def _no_qdisc_error(stderr: str) -> bool:
    s = (stderr or "").lower()
    return "handle of zero" in s or "no such file" in s or "invalid handle" in s or "cannot find specified qdisc" in s


def _root_links(prefix: str) -> list[str]:
    """Links in the root namespace named <prefix>-* (the fabric creates none; a
    different or interrupted tool version might)."""
    try:
        cp = subprocess.run(["ip", "-j", "link", "show"], capture_output=True, text=True, timeout=30)
        links = json.loads(cp.stdout or "[]")
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return []
    return sorted(l["ifname"] for l in links if l.get("ifname", "").startswith(prefix + "-"))


# --------------------------------------------------------------------------
# CLI


def _build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--prefix", default=None, help=f"namespace name prefix (default {DEFAULT_PREFIX!r})")
    common.add_argument("--state-dir", default=None, help=f"where the state file lives (default {DEFAULT_STATE_DIR})")

    p = argparse.ArgumentParser(prog="rtransport fabric", description="Virtual leaf-spine fabric of network namespaces (needs root).")
    sub = p.add_subparsers(dest="cmd", metavar="COMMAND")
    sub.required = True

    s = sub.add_parser("up", parents=[common], help="build a fabric")
    s.add_argument("--hosts", type=int, default=4)
    s.add_argument("--leaves", type=int, default=2)
    s.add_argument("--spines", type=int, default=4)
    s.add_argument("--mtu", type=int, default=9000)
    s.add_argument("--placement", choices=["block", "round_robin"], default="block")
    s.add_argument("--replace", action="store_true", help="remove an existing fabric with this prefix first")
    s.add_argument("--json", action="store_true", help="print the state as JSON")

    s = sub.add_parser("down", parents=[common], help="remove a fabric (also after a crash)")
    s.add_argument("--all", action="store_true", help="remove every fabric found (any prefix)")

    s = sub.add_parser("status", parents=[common], help="show what exists (all fabrics unless --prefix is given)")
    s.add_argument("--json", action="store_true")

    s = sub.add_parser("run", parents=[common], help="run a command in a host namespace: run HOST -- CMD...")
    s.add_argument("host")
    s.add_argument("command", nargs=argparse.REMAINDER)

    dir_help = "both (default), up (toward spines) or down (toward hosts)"
    s = sub.add_parser("rate", parents=[common], help="rate-limit a link: rate LINK RATE|none")
    s.add_argument("link")
    s.add_argument("rate", help="bits/s or tc string like 1gbit, 500mbit; 'none' removes")
    s.add_argument("--direction", "-d", default="both", help=dir_help)
    s.add_argument("--burst", default=None, help="tbf burst in bytes")
    s.add_argument("--latency", default="10ms", help="tbf latency (queue size), default 10ms")

    s = sub.add_parser("loss", parents=[common], help="random loss on a link: loss LINK P (0 removes)")
    s.add_argument("link")
    s.add_argument("p", type=float)
    s.add_argument("--direction", "-d", default="both", help=dir_help)

    s = sub.add_parser("link", parents=[common], help="take a link (or node) down or up: link LINK up|down")
    s.add_argument("link")
    s.add_argument("state", choices=["up", "down"])
    s.add_argument("--reroute", action="store_true", help="also withdraw the path from the other leaves' routes")

    s = sub.add_parser("blackhole", parents=[common], help="drop 100%% on a link or spine in one direction")
    s.add_argument("target")
    s.add_argument("--direction", "-d", default="up", help="up (default), down or both")
    s.add_argument("--off", action="store_true", help="remove the blackhole")

    s = sub.add_parser("restore", parents=[common], help="undo all knobs on a link/node, or everywhere")
    s.add_argument("target", nargs="?")

    s = sub.add_parser("counters", parents=[common], help="packet counters per link and direction")
    s.add_argument("--json", action="store_true")

    s = sub.add_parser("check", parents=[common], help="UDP connectivity between all host pairs and ECMP spread")
    s.add_argument("--flows", type=int, default=64)
    return p


def main(argv: list[str] | None = None) -> int:
    """CLI: ``fabric up|down|status|run|rate|loss|link|blackhole|restore|counters|check``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = _build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else 2
    try:
        return _dispatch(args)
    except FabricPermissionError as e:
        print(f"fabric: {e}", file=sys.stderr)
        return 77
    except (FabricError, ValueError) as e:
        print(f"fabric: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # e.g. `fabric status | head`
        return 0


def _dispatch(a: argparse.Namespace) -> int:
    if a.cmd == "up":
        a.prefix = a.prefix or DEFAULT_PREFIX
        fab = Fabric(a.hosts, a.leaves, a.spines, a.mtu, a.prefix, placement=a.placement, state_dir=a.state_dir, replace=a.replace)
        fab.up()
        if a.json:
            with open(fab.state_file) as f:
                print(f.read())
        else:
            print(f"fabric {fab.prefix!r} up in {fab.timings['up']:.2f}s: {fab.n_hosts} hosts, {fab.n_leaves} leaves, "
                  f"{fab.n_spines} spines, mtu {fab.mtu} (state {fab.state_file})")
            for h in fab.hosts:
                print(f"  {h.name:<5} ns {h.ns:<16} ip {h.ip:<15} on {h.leaf_name}")
            print(f"  links: {' '.join(l.name for l in fab.links)}")
        return 0
    if a.cmd == "down":
        for prefix in (Fabric.existing(a.state_dir) if a.all else [a.prefix or DEFAULT_PREFIX]):
            t0 = time.monotonic()
            removed = Fabric.down(prefix, state_dir=a.state_dir)
            print(f"fabric {prefix!r}: removed {len(removed)} namespaces in {time.monotonic() - t0:.2f}s")
        return 0
    if a.cmd == "status":
        prefixes = [a.prefix] if a.prefix else Fabric.existing(a.state_dir)
        sts = [Fabric.status(p, state_dir=a.state_dir) for p in prefixes]
        if a.json:
            print(json.dumps(sts[0].to_dict() if a.prefix else [st.to_dict() for st in sts], indent=1))
        else:
            print("\n".join(map(str, sts)) if sts else "no fabrics")
        return 0
    a.prefix = a.prefix or DEFAULT_PREFIX
    fab = Fabric.load(a.prefix, a.state_dir)
    if a.cmd == "run":
        cmd = list(a.command)
        if cmd and cmd[0] == "--":
            cmd = cmd[1:]
        if not cmd:
            raise FabricError("usage: fabric run HOST -- CMD [ARGS...]")
        _require_privileges("enter a host namespace")
        if shutil.which(cmd[0]) is None:  # as a shell reports it (ip netns exec gives 1)
            if "/" in cmd[0] and os.path.exists(cmd[0]):
                print(f"rtransport fabric run: {cmd[0]}: permission denied", file=sys.stderr)
                return 126
            print(f"rtransport fabric run: {cmd[0]}: command not found", file=sys.stderr)
            return 127
        rc = subprocess.call(fab.exec_argv(a.host, cmd))
        # as a shell reports it: 128 + N for a command killed by signal N
        # (subprocess gives -N, which sys.exit would turn into 256 - N)
        return 128 - rc if rc < 0 else rc
    if a.cmd == "rate":
        burst = int(a.burst) if a.burst and a.burst.isdigit() else a.burst
        fab.set_rate(a.link, None if a.rate.lower() in ("none", "off", "0") else a.rate, a.direction, burst=burst, latency=a.latency)
        return 0
    if a.cmd == "loss":
        fab.set_loss(a.link, a.p, a.direction)
        return 0
    if a.cmd == "link":
        fab.link_down(a.link, reroute=a.reroute) if a.state == "down" else fab.link_up(a.link)
        return 0
    if a.cmd == "blackhole":
        fab.blackhole(a.target, a.direction, on=not a.off)
        return 0
    if a.cmd == "restore":
        fab.restore(a.target)
        return 0
    if a.cmd == "counters":
        c = fab.counters()
        if a.json:
            print(json.dumps(c, indent=1))
        else:
            print(f"{'link':<16} {'up pkts':>12} {'up bytes':>14} {'down pkts':>12} {'down bytes':>14}")
            for name, v in c.items():
                print(f"{name:<16} {v['up']['packets']:>12} {v['up']['bytes']:>14} {v['down']['packets']:>12} {v['down']['bytes']:>14}")
        return 0
    if a.cmd == "check":
        ok = True
        for s in fab.hosts:
            for d in fab.hosts:
                if s is d:
                    continue
                got = fab.ping(s, d, count=2)
                ok &= got == 2
                print(f"  {s.name} -> {d.name}: {got}/2 replies")
        remote = [(s, d) for s in fab.hosts for d in fab.hosts if s.leaf != d.leaf]
        if remote:
            s, d = remote[0]
            spread = fab.probe_ecmp(s, d, flows=a.flows)
            used = sum(1 for v in spread.values() if v > 0)
            print(f"  ECMP {s.name} -> {d.name}, {a.flows} flows: " + " ".join(f"{k}={v}" for k, v in spread.items())
                  + f" ({used}/{len(spread)} spines used)")
            ok &= used >= min(len(spread), 2) or len(spread) == 1
        print("ok" if ok else "FAILED")
        return 0 if ok else 1
    raise FabricError(f"unknown command {a.cmd!r}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
