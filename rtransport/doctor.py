"""``rtransport doctor``: what this machine offers, what a Context will use.

Prints (or, with ``--json``, emits as one JSON object):

* machine: kernel, CPUs, UDP GSO/GRO and sendmmsg/recvmmsg support, the
  interface (and its MTU) behind the bind address, socket-buffer limits
  (net.core.rmem_max / wmem_max), kernel busy-poll settings, UDP and
  backlog drop counters;
* context: a Context is created with ``--bind`` / ``--mtu`` and its
  ``info()`` shows what it actually uses (GSO/GRO, granted buffers versus
  requested ones, payload per packet, paths, progress mode);
* advice: one line per thing that costs performance, with the command
  that fixes it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys

__all__ = ["main", "collect"]

JUMBO = 9000


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def _read_int(path: str) -> int | None:
    v = _read(path)
    try:
        return int(v.split()[0]) if v else None
    except ValueError:
        return None


def _sysctl(name: str) -> int | None:
    return _read_int("/proc/sys/" + name.replace(".", "/"))


def _fmt_bytes(n) -> str:
    if n is None:
        return "?"
    for unit, div in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= div:
            v = n / div
            return f"{v:.0f} {unit}" if v == int(v) else f"{v:.1f} {unit}"
    return f"{n} B"


def _ip_json(*args) -> list | None:
    if shutil.which("ip") is None:
        return None
    try:
        r = subprocess.run(["ip", "-j", *args], capture_output=True, text=True, timeout=5)
        if r.returncode != 0:
            return None
        return json.loads(r.stdout or "[]")
    except (OSError, ValueError, subprocess.SubprocessError):
        return None


def _interface_for(addr: str) -> dict:
    """The interface that owns ``addr`` (or every interface for 0.0.0.0)."""
    out = {"address": addr, "name": None, "mtu": None}
    links = _ip_json("addr", "show")
    if links is None:
        out["note"] = "the 'ip' tool is unavailable; interface unknown"
        return out
    if addr in ("0.0.0.0", ""):
        mtus = {l["ifname"]: l.get("mtu") for l in links if l.get("operstate") != "DOWN"}
        out["name"] = "(all)"
        out["all"] = mtus
        up = [m for n, m in mtus.items() if n != "lo" and m]
        out["mtu"] = min(up) if up else mtus.get("lo")
        return out
    for link in links:
        for a in link.get("addr_info", []):
            if a.get("family") == "inet" and a.get("local") == addr:
                out["name"] = link.get("ifname")
                out["mtu"] = link.get("mtu")
                out["state"] = link.get("operstate")
                out["loopback"] = "LOOPBACK" in link.get("flags", [])
                return out
    if addr.startswith("127."):
        out.update(name="lo", mtu=_read_int("/sys/class/net/lo/mtu"), loopback=True)
        return out
    out["note"] = f"no interface has the address {addr}"
    return out


def _route_to(peer: str) -> dict | None:
    routes = _ip_json("route", "get", peer)
    if not routes:
        return None
    r = routes[0]
    dev = r.get("dev")
    mtu = None
    for m in r.get("metrics", []) if isinstance(r.get("metrics"), list) else []:
        if isinstance(m, dict) and "mtu" in m:
            mtu = m["mtu"]
    dev_mtu = _read_int(f"/sys/class/net/{dev}/mtu") if dev else None
    return {"peer": peer, "dev": dev, "src": r.get("prefsrc"), "route_mtu": mtu,
            "dev_mtu": dev_mtu, "mtu": mtu or dev_mtu}


def _udp_counters() -> dict:
    txt = _read("/proc/net/snmp") or ""
    lines = [l.split() for l in txt.splitlines() if l.startswith("Udp:")]
    if len(lines) >= 2:
        try:
            return dict(zip(lines[0][1:], (int(x) for x in lines[1][1:])))
        except ValueError:
            pass
    return {}


def _softnet_drops() -> int | None:
    txt = _read("/proc/net/softnet_stat")
    if not txt:
        return None
    try:
        return sum(int(l.split()[1], 16) for l in txt.splitlines() if l.strip())
    except (IndexError, ValueError):
        return None


def _privileged() -> bool:
    if os.geteuid() == 0:
        return True
    caps = _read("/proc/self/status") or ""
    m = re.search(r"^CapEff:\s*([0-9a-f]+)", caps, re.M)
    return bool(m and int(m.group(1), 16) & (1 << 12))  # CAP_NET_ADMIN


def _cpu_model() -> str:
    for line in (_read("/proc/cpuinfo") or "").splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or ""


def _defaults() -> dict:
    from rtransport import ffi, lib
    cfg = ffi.new("struct rt_config *")
    lib.rt_config_init(cfg)
    return {"mtu": cfg.mtu, "num_paths": cfg.num_paths, "busy_poll_us": cfg.busy_poll_us,
            "sndbuf": cfg.sndbuf, "rcvbuf": cfg.rcvbuf,
            "progress": "manual" if cfg.progress == lib.RT_PROGRESS_MANUAL else "thread"}


def collect(bind: str = "127.0.0.1", mtu: int | None = None, peer: str | None = None) -> dict:
    """Everything doctor knows, as a dict (the --json output)."""
    import rtransport as rt

    report: dict = {"rtransport": {"version": rt.__version__,
                                   "c_version": "%d.%d" % rt.c_version}}
    defaults = _defaults()
    req_mtu = mtu if mtu is not None else defaults["mtu"]
    try:
        probe = rt.probe(bind)
    except rt.RTError as e:
        probe = {"error": str(e)}
    try:
        affinity = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        affinity = None
    machine = {
        "kernel": platform.release(), "arch": platform.machine(),
        "cpus": os.cpu_count(), "cpus_usable": affinity, "cpu_model": _cpu_model(),
        "gso_supported": bool(probe.get("gso_supported")),
        "gro_supported": bool(probe.get("gro_supported")),
        "mmsg_supported": bool(probe.get("mmsg_supported")),
        "privileged": _privileged(),
        "sysctl": {
            "net.core.rmem_max": _sysctl("net.core.rmem_max"),
            "net.core.wmem_max": _sysctl("net.core.wmem_max"),
            "net.core.rmem_default": _sysctl("net.core.rmem_default"),
            "net.core.wmem_default": _sysctl("net.core.wmem_default"),
            "net.core.busy_poll": _sysctl("net.core.busy_poll"),
            "net.core.busy_read": _sysctl("net.core.busy_read"),
            "net.core.netdev_max_backlog": _sysctl("net.core.netdev_max_backlog"),
        },
        "udp": {k: v for k, v in _udp_counters().items()
                if k in ("InDatagrams", "OutDatagrams", "RcvbufErrors", "SndbufErrors",
                         "InErrors", "InCsumErrors")},
        "softnet_dropped": _softnet_drops(),
    }
    if "error" in probe:
        machine["probe_error"] = probe["error"]
    report["machine"] = machine
    iface = _interface_for(bind)
    if iface.get("mtu") is None and probe.get("if_mtu"):
        iface["mtu"] = probe["if_mtu"]
    report["interface"] = iface
    if peer:
        report["route"] = _route_to(peer) or {"peer": peer, "error": "no route"}

    ctx_report: dict = {"requested": {"bind": bind, "mtu": req_mtu,
                                      "sndbuf": defaults["sndbuf"],
                                      "rcvbuf": defaults["rcvbuf"]},
                        "defaults": defaults}
    try:
        with rt.Context(bind=bind, mtu=req_mtu) as ctx:
            info = ctx.info()
        info["progress"] = "manual" if info["progress"] == rt.lib.RT_PROGRESS_MANUAL \
            else "thread"
        ctx_report["info"] = info
        ctx_report["ok"] = True
    except rt.RTError as e:
        ctx_report["ok"] = False
        ctx_report["error"] = str(e)
    report["context"] = ctx_report
    report["advice"] = _advice(report)
    return report


def _advice(r: dict) -> list[dict]:
    adv = []

    def add(level, text, command=None):
        adv.append({"level": level, "text": text, "command": command})

    m, c, iface = r["machine"], r["context"], r["interface"]
    sc = m["sysctl"]
    info = c.get("info")
    req = c["requested"]
    if not c.get("ok"):
        add("error", f"a Context could not be created: {c.get('error')}")
    if m.get("probe_error"):
        add("error", f"probing {req['bind']} failed: {m['probe_error']}")

    # socket buffers
    for buf, key, knob in (("rcvbuf", "net.core.rmem_max", "receive"),
                           ("sndbuf", "net.core.wmem_max", "send")):
        want = req[buf]
        limit = sc.get(key)
        got = info.get(buf) if info else None
        if got is not None and got < want:
            add("warn", f"{knob} buffer: rtransport requests {_fmt_bytes(want)}, got "
                        f"{_fmt_bytes(got)} ({key} = {_fmt_bytes(limit)}); bursts will be "
                        "dropped and retransmitted",
                f"sysctl -w {key}={want}")
        elif limit is not None and limit < want:
            add("hint", f"{key} = {_fmt_bytes(limit)} is below the {_fmt_bytes(want)} "
                        f"{knob} buffer rtransport asks for; this process got it anyway "
                        "(privileged: SO_*BUFFORCE), unprivileged processes will not",
                f"sysctl -w {key}={want}")

    # GSO / GRO / mmsg
    if not m["gso_supported"]:
        add("warn", "UDP GSO (UDP_SEGMENT) is not supported by this kernel (Linux >= 4.18 "
                    "has it): one system call per packet, much lower bandwidth")
    elif info and not info.get("gso_used"):
        add("warn", "UDP GSO is supported but this context does not use it (gso='off'?)")
    if not m["gro_supported"]:
        add("warn", "UDP GRO is not supported by this kernel (Linux >= 5.0 has it): "
                    "one datagram per receive, more CPU per byte")
    elif info and not info.get("gro_used"):
        add("warn", "UDP GRO is supported but this context does not use it (gro='off'?)")
    if not m["mmsg_supported"]:
        add("warn", "sendmmsg/recvmmsg are unavailable: more system calls per packet")

    # MTU
    if_mtu = iface.get("mtu")
    mtu = info["mtu"] if info else req["mtu"]
    name = iface.get("name") or "?"
    if name == "(all)":
        small = {n: v for n, v in (iface.get("all") or {}).items() if v and v < mtu}
        if small:
            lst = ", ".join(f"{n} {v}" for n, v in sorted(small.items()))
            add("hint", f"bound to all interfaces; these have an MTU below the context's "
                        f"mtu {mtu}: {lst}; peers reached through them need a smaller mtu",
                "bind to one address, or Context(mtu=<smallest MTU on the path>)")
    elif if_mtu:
        if mtu > if_mtu:
            add("warn", f"mtu {mtu} is above the MTU of {name} ({if_mtu}): packets that big "
                        "are fragmented or dropped",
                f"use Context(mtu={if_mtu}) (or --mtu {if_mtu})")
        elif mtu < JUMBO and if_mtu >= JUMBO:
            add("hint", f"{name} carries {if_mtu}-byte packets but the context uses mtu {mtu} "
                        f"({info['max_payload'] if info else '?'} B payload per packet); "
                        f"mtu {JUMBO} cuts per-packet work about 6x if the whole path "
                        "allows jumbo frames",
                f"Context(mtu={JUMBO})")
        elif if_mtu < JUMBO and not iface.get("loopback"):
            add("hint", f"{name} has MTU {if_mtu}; if every hop of the path carries jumbo "
                        f"frames, raise it to {JUMBO} and use Context(mtu={JUMBO})",
                f"ip link set dev {name} mtu {JUMBO}")
    route = r.get("route")
    if route and route.get("mtu") and mtu > route["mtu"]:
        add("warn", f"the route to {route['peer']} (dev {route['dev']}) has MTU "
                    f"{route['mtu']}, below the context's mtu {mtu}",
            f"Context(mtu={route['mtu']})")

    # CPUs / progress / busy polling
    cpus = m.get("cpus_usable") or m.get("cpus") or 1
    if cpus < 2:
        add("warn", "1 usable CPU: the progress thread and the application take turns; "
                    "use Context(progress='manual') and wait on the completion queue",
            "Context(progress='manual')")
    elif cpus == 2:
        add("hint", "2 CPUs: two communicating processes plus their progress threads "
                    "oversubscribe the cores; for latency, let the waiting thread do the "
                    "work: Context(progress='manual'), or keep the thread and spin longer "
                    "(busy_poll_us=1000) - see docs/benchmarks.md",
            "Context(progress='manual') or Context(busy_poll_us=1000)")
    if not iface.get("loopback") and sc.get("net.core.busy_poll") == 0 \
            and iface.get("name") not in (None, "(all)"):
        add("hint", "kernel busy polling is off (net.core.busy_poll = 0); on a real NIC it "
                    "can cut wake-up latency (rtransport also spins "
                    f"{c['defaults']['busy_poll_us']} us in user space: busy_poll_us)",
            "sysctl -w net.core.busy_poll=50 net.core.busy_read=50")

    # drops
    udp = m.get("udp", {})
    if udp.get("RcvbufErrors"):
        add("warn", f"{udp['RcvbufErrors']} UDP datagrams were dropped for want of receive "
                    "buffer since boot (Udp RcvbufErrors); raise net.core.rmem_max",
            f"sysctl -w net.core.rmem_max={max(req['rcvbuf'], 1 << 25)}")
    if m.get("softnet_dropped"):
        add("hint", f"{m['softnet_dropped']} packets dropped at the per-CPU backlog since boot "
                    f"(netdev_max_backlog = {sc.get('net.core.netdev_max_backlog')})",
            "sysctl -w net.core.netdev_max_backlog=10000")
    return adv


def _print(r: dict, out=sys.stdout):
    p = lambda *a: print(*a, file=out)  # noqa: E731
    m, c, iface = r["machine"], r["context"], r["interface"]
    sc = m["sysctl"]
    yn = lambda v: "yes" if v else "no"  # noqa: E731
    p(f"rtransport doctor (rtransport {r['rtransport']['version']}, "
      f"C core {r['rtransport']['c_version']})")
    p("")
    p("machine")
    usable = f", {m['cpus_usable']} usable" if m.get("cpus_usable") not in (None, m["cpus"]) else ""
    p(f"  kernel           {m['kernel']} ({m['arch']}), {m['cpus']} CPUs{usable}"
      + (f", {m['cpu_model']}" if m["cpu_model"] else ""))
    p(f"  UDP GSO / GRO    supported: {yn(m['gso_supported'])} / {yn(m['gro_supported'])}; "
      f"sendmmsg/recvmmsg: {yn(m['mmsg_supported'])}")
    ifline = f"{iface.get('name') or '?'} for {iface['address']}, mtu {iface.get('mtu') or '?'}"
    if iface.get("note"):
        ifline += f" ({iface['note']})"
    p(f"  interface        {ifline}")
    if r.get("route"):
        rt_ = r["route"]
        if rt_.get("error"):
            p(f"  route            to {rt_['peer']}: {rt_['error']}")
        else:
            p(f"  route            to {rt_['peer']} via {rt_['dev']} (src {rt_.get('src')}), "
              f"mtu {rt_.get('mtu')}")
    p(f"  socket buffers   net.core.wmem_max {_fmt_bytes(sc['net.core.wmem_max'])}, "
      f"rmem_max {_fmt_bytes(sc['net.core.rmem_max'])} (defaults "
      f"{_fmt_bytes(sc['net.core.wmem_default'])} / {_fmt_bytes(sc['net.core.rmem_default'])})")
    p(f"  busy polling     net.core.busy_poll {sc['net.core.busy_poll']}, busy_read "
      f"{sc['net.core.busy_read']} (kernel); rtransport spins busy_poll_us="
      f"{c['defaults']['busy_poll_us']} in user space")
    udp = m.get("udp", {})
    if udp:
        p(f"  UDP counters     RcvbufErrors {udp.get('RcvbufErrors', '?')}, SndbufErrors "
          f"{udp.get('SndbufErrors', '?')}, InErrors {udp.get('InErrors', '?')}; backlog "
          f"drops {m.get('softnet_dropped', '?')} (netdev_max_backlog "
          f"{sc['net.core.netdev_max_backlog']})")
    p(f"  privileges       {'privileged (can force socket buffers past the limits)' if m['privileged'] else 'unprivileged'}")
    p("")
    req = c["requested"]
    p(f"context: Context(bind={req['bind']!r}, mtu={req['mtu']}) "
      + ("created and closed" if c.get("ok") else "could NOT be created"))
    info = c.get("info")
    if info:
        p(f"  bound            {info['bind_addr']}:{info['port']}, {info['num_paths']} paths "
          f"(UDP source ports), cc {info['cc']}, progress {info['progress']}")
        p(f"  packets          mtu {info['mtu']} -> {info['max_payload']} payload bytes per "
          f"packet (interface mtu {info['if_mtu'] or '?'})")
        p(f"  GSO / GRO used   {yn(info['gso_used'])} / {yn(info['gro_used'])}")
        p(f"  send buffer      requested {_fmt_bytes(req['sndbuf'])}, granted "
          f"{_fmt_bytes(info['sndbuf'])}")
        p(f"  receive buffer   requested {_fmt_bytes(req['rcvbuf'])}, granted "
          f"{_fmt_bytes(info['rcvbuf'])}")
        p(f"  CPUs seen        {info['num_cpus']}")
    else:
        p(f"  error            {c.get('error')}")
    p("")
    adv = r["advice"]
    if not adv:
        p("advice: none - this machine is set up well for rtransport")
        return
    p("advice")
    for a in adv:
        p(f"  [{a['level']}] {a['text']}")
        if a.get("command"):
            p(f"         -> {a['command']}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="rtransport doctor",
        description="Show what this machine offers rtransport and what a Context "
                    "will actually use, with advice.")
    ap.add_argument("--bind", default="127.0.0.1",
                    help="IPv4 address to check and bind (default 127.0.0.1)")
    ap.add_argument("--mtu", type=int, default=None,
                    help="mtu for the test context (default: rtransport's default)")
    ap.add_argument("--peer", default=None,
                    help="also check the route (and its MTU) to this IPv4 address")
    ap.add_argument("--json", action="store_true", help="print one JSON object instead")
    args = ap.parse_args(sys.argv[1:] if argv is None else list(argv))
    report = collect(args.bind, args.mtu, args.peer)
    if args.json:
        json.dump(report, sys.stdout, indent=2, sort_keys=False)
        print()
    else:
        _print(report)
    errors = [a for a in report["advice"] if a["level"] == "error"]
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
