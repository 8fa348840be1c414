#!/usr/bin/env python3
"""Issue-3 benchmarks on the virtual leaf-spine fabric (needs root).

Each scenario runs rtransport and its TCP baseline in the same run on the
same fabric (4 hosts, 2 leaves, 4 spines, MTU 9000, 5-tuple ECMP):

  spray     every spine link limited to 1 Gbit/s; one transfer h0 -> h2
  loss      as spray, plus 1% random loss on every spine link
  failure   as spray; one spine blackholed mid-transfer; 10 ms time series
  flap      as failure, and the spine restored 0.5 s later: is it used again?
            (no TCP baseline; not one of the issue's scenarios)
  incast    h0, h1, h3 -> h2, h2's access link limited to 1 Gbit/s
  unlimited no rate limits; one transfer h0 -> h2

    python3 bench/fabric_bench.py [--scenarios spray,loss,...] [--json out.json] [--png failure.png]

Each scenario prints one line, `== NAME: {json}` (rtransport and TCP side
by side); docs/benchmarks.md records them.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
from rtransport.fabric import Fabric  # the installed package (pip install .)

XFER = os.path.join(HERE, "xfer.py")
PY = sys.executable


RT_EXTRA: list[str] = []  # --rt-args: extra xfer.py options for every rtransport run


def run_pair(fab, src, dst, proto, nbytes, extra=(), on_start=None, timeout=180):
    """Run one transfer src -> dst; return (sender result, receiver result)."""
    d = tempfile.mkdtemp(prefix="rtfb-")
    mark = os.path.join(d, "t0")
    common = ["--proto", proto, "--dir", d, "--bytes", str(nbytes), "--stall-timeout", "8",
              "--max-seconds", "90"] + list(extra) + (RT_EXTRA if proto == "rt" else [])
    srv = fab.popen(dst, [PY, XFER, "serve", "--bind", dst.ip] + common, stdout=subprocess.PIPE)
    cli = fab.popen(src, [PY, XFER, "send", "--bind", src.ip, "--mark-file", mark] + common,
                    stdout=subprocess.PIPE)
    if on_start:
        threading.Thread(target=on_start, args=(mark,), daemon=True).start()
    try:
        co, _ = cli.communicate(timeout=timeout)
        so, _ = srv.communicate(timeout=timeout)
    finally:
        for p in (cli, srv):
            if p.poll() is None:
                p.kill()
        shutil.rmtree(d, ignore_errors=True)
    parse = lambda o: json.loads(o.decode().strip().splitlines()[-1]) if o.strip() else {"ok": False}
    return parse(co), parse(so)


def limit_spines(fab, rate):
    for l in fab.links:
        if l.kind != "host":
            fab.set_rate(l.name, rate)


def summarize_rt(r):
    st = r.get("stats") or {}
    return {"goodput_gbps": round(r.get("goodput_gbps", 0.0), 3), "ok": r.get("ok"),
            "retransmits": st.get("retransmits"), "tx_packets": st.get("tx_packets"),
            "rto_events": st.get("rto_events"), "srtt_us": st.get("srtt_us"),
            "min_rtt_us": st.get("min_rtt_us")}


# ------------------------------------------------------------------ scenarios

def sc_spray(fab, a):
    limit_spines(fab, "1gbit")
    h0, h2 = fab.hosts[0], fab.hosts[2]
    rs, rr = run_pair(fab, h0, h2, "rt", a.bytes)
    ts, tr = run_pair(fab, h0, h2, "tcp", a.bytes // 2)
    spurious = 100.0 * (rr.get("stats") or {}).get("duplicates", 0) / max(1, (rs.get("stats") or {}).get("tx_packets", 1))
    return {"rt": summarize_rt(rs) | {"bit_exact": rr.get("bit_exact"), "spurious_retx_pct": round(spurious, 3),
                                      "paths": [(p["path"], p["tx_packets"], p["rtt_p50_us"], p["losses"]) for p in rs.get("path_stats", [])]},
            "tcp": {"goodput_gbps": round(tr.get("goodput_gbps", 0.0), 3), "ok": tr.get("ok")},
            "target": "rt >= 3.5 Gbit/s; one TCP stream ~1"}


def sc_loss(fab, a):
    limit_spines(fab, "1gbit")
    h0, h2 = fab.hosts[0], fab.hosts[2]
    base, _ = run_pair(fab, h0, h2, "rt", a.bytes)
    for l in fab.links:
        if l.kind != "host":
            fab.set_loss(l.name, 0.01)
    rs, rr = run_pair(fab, h0, h2, "rt", a.bytes)
    ts, tr = run_pair(fab, h0, h2, "tcp", a.bytes // 4)
    ratio = rs.get("goodput_gbps", 0) / max(1e-9, base.get("goodput_gbps", 0))
    return {"rt_lossless": summarize_rt(base), "rt_1pct": summarize_rt(rs) | {"bit_exact": rr.get("bit_exact")},
            "rt_ratio": round(ratio, 3),
            "tcp_1pct": {"goodput_gbps": round(tr.get("goodput_gbps", 0.0), 3), "ok": tr.get("ok")},
            "target": "rt under 1% loss >= 80% of its lossless goodput"}


def recovery_ms(series, bin_ms, t_fail_s, frac=0.7, window_bins=3):
    """Time from the failure until goodput (moving average over window_bins)
    is back to frac of the pre-failure mean; None if never."""
    fb = int(t_fail_s * 1000 / bin_ms)
    pre = series[max(0, fb - 50):fb]
    if not pre:
        return None, 0.0
    pre_mean = statistics.mean(pre)
    for i in range(fb, len(series) - window_bins + 1):
        if statistics.mean(series[i:i + window_bins]) >= frac * pre_mean:
            return (i - fb) * bin_ms, pre_mean
    return None, pre_mean


def sc_failure(fab, a):
    limit_spines(fab, "1gbit")
    h0, h2 = fab.hosts[0], fab.hosts[2]
    delay = a.fail_after
    victim = {"spine": None}

    def fail_rt(mark):
        t0 = float(open_wait(mark))
        time.sleep(max(0.0, t0 + delay - time.monotonic()))
        fab.blackhole(fab.spines[1].name, direction="both")
        victim["spine"] = fab.spines[1].name
        victim["t"] = time.monotonic() - t0

    rs, rr = run_pair(fab, h0, h2, "rt", a.fail_bytes, on_start=fail_rt)
    fab.restore(fab.spines[1].name)
    limit_spines(fab, "1gbit")
    t_fail = victim.get("t", delay)
    rec, pre = recovery_ms(rs.get("series_gbps", []), rs.get("bin_ms", 10), t_fail)

    # TCP: blackhole the spine its stream is hashed onto
    tcp_info = {}

    def fail_tcp(mark):
        t0 = float(open_wait(mark))
        c0 = fab.spine_counters("up")
        time.sleep(max(0.0, t0 + delay - time.monotonic()))
        c1 = fab.spine_counters("up")
        spine = max(c1, key=lambda s: c1[s] - c0.get(s, 0))
        fab.blackhole(spine, direction="both")
        tcp_info["spine"] = spine
        tcp_info["t"] = time.monotonic() - t0

    ts, tr = run_pair(fab, h0, h2, "tcp", a.fail_bytes // 2, on_start=fail_tcp)
    fab.restore()
    tser = tr.get("series_gbps", [])
    tfb = int(tcp_info.get("t", delay) * 1000 / 10)
    after = tser[tfb + 1:]
    res = {"rt": summarize_rt(rs) | {"bit_exact": rr.get("bit_exact"), "failed_spine": victim.get("spine"),
                                     "fail_at_s": round(t_fail, 3), "pre_failure_gbps": round(pre, 3),
                                     "recovery_to_70pct_ms": rec},
           "tcp": {"ok": tr.get("ok"), "bytes": tr.get("bytes"), "stalled": tr.get("stalled"),
                   "failed_spine": tcp_info.get("spine"),
                   "gbps_after_failure_mean": round(statistics.mean(after), 3) if after else 0.0},
           "target": "rt back to >= 70% of pre-failure goodput within 100 ms, bit-exact"}
    res["_series"] = {"rt": rs.get("series_gbps", []), "rt_fail_s": t_fail,
                      "tcp": tser, "tcp_fail_s": tcp_info.get("t", delay), "bin_ms": 10}
    return res


def sc_flap(fab, a):
    """A spine fails and comes back: blackholed at fail_after, restored
    0.5 s later.  Paths move off the dead spine (repath); afterwards the
    spine is healthy but may carry none of them.  Reports the goodput
    from 1 s after the restore to the end against the pre-failure rate."""
    limit_spines(fab, "1gbit")
    h0, h2 = fab.hosts[0], fab.hosts[2]
    delay, down_s = a.fail_after, 0.5
    ev = {}

    def flap(mark):
        t0 = float(open_wait(mark))
        time.sleep(max(0.0, t0 + delay - time.monotonic()))
        fab.blackhole(fab.spines[1].name, direction="both")
        ev["fail"] = time.monotonic() - t0
        time.sleep(down_s)
        fab.restore(fab.spines[1].name)
        limit_spines(fab, "1gbit")
        ev["restore"] = time.monotonic() - t0

    rs, rr = run_pair(fab, h0, h2, "rt", a.flap_bytes, on_start=flap)
    fab.restore()
    limit_spines(fab, "1gbit")
    ser, bin_ms = rs.get("series_gbps", []), rs.get("bin_ms", 10)
    fb = int(ev.get("fail", delay) * 1000 / bin_ms)
    rb = int((ev.get("restore", delay + down_s) + 1.0) * 1000 / bin_ms)
    pre = ser[max(0, fb - 50):fb]
    late = ser[rb:max(rb, len(ser) - 5)]  # the last bins drain the window
    pre_m = statistics.mean(pre) if pre else 0.0
    late_m = statistics.mean(late) if late else 0.0
    return {"rt": summarize_rt(rs) | {"bit_exact": rr.get("bit_exact"),
                                     "fail_at_s": round(ev.get("fail", 0), 3),
                                     "restore_at_s": round(ev.get("restore", 0), 3),
                                     "pre_failure_gbps": round(pre_m, 3),
                                     "after_restore_gbps": round(late_m, 3),
                                     "after_over_pre": round(late_m / pre_m, 3) if pre_m else None,
                                     "repaths": sum(p.get("repaths", 0) for p in rs.get("path_stats", [])),
                                     "explore_moves": sum(p.get("explore_moves", 0) for p in rs.get("path_stats", [])),
                                     "paths": [(p["path"], p["tx_packets"], p.get("repaths", 0))
                                               for p in rs.get("path_stats", [])]},
            "target": "(no target in the issue) after the spine returns, goodput back to the pre-failure rate"}


def open_wait(path, timeout=30):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            with open(path) as f:
                s = f.read()
            if s:
                return s
        except FileNotFoundError:
            pass
        time.sleep(0.005)
    raise TimeoutError(path)


def rtt_probe(fab, src, dst, seconds, interval=0.005, stop_file=None):
    """UDP echo RTT samples from src to dst: a list of (t_send, rtt_us), t_send
    on this machine's CLOCK_MONOTONIC (shared by all namespaces).  Runs for
    `seconds`, or until stop_file exists when one is given (seconds is then
    only the upper bound)."""
    code = r'''
import os,socket,sys,time
mode=sys.argv[1]
if mode=="echo":
    s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.bind((sys.argv[2],47000)); s.settimeout(float(sys.argv[3]))
    try:
        while True:
            d,a=s.recvfrom(64); s.sendto(d,a)
    except socket.timeout: pass
else:
    s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.settimeout(0.5)
    end=time.monotonic()+float(sys.argv[3]); stop=sys.argv[5]; out=[]
    while time.monotonic()<end and not (stop and os.path.exists(stop)):
        t=time.monotonic(); s.sendto(b"x"*64,(sys.argv[2],47000))
        try: s.recvfrom(64); out.append("%.6f:%.1f"%(t,(time.monotonic()-t)*1e6))
        except socket.timeout: pass
        time.sleep(float(sys.argv[4]))
    print(",".join(out))
'''
    echo = fab.popen(dst, RT_PRIO + [PY, "-c", code, "echo", dst.ip, str(seconds + 3)])
    time.sleep(0.2)
    cli = fab.popen(src, RT_PRIO + [PY, "-c", code, "ping", dst.ip, str(seconds), str(interval), stop_file or ""],
                    stdout=subprocess.PIPE)
    out, _ = cli.communicate(timeout=seconds + 10)
    echo.kill()
    return [(float(t), float(r)) for t, r in (x.split(":") for x in out.decode().strip().split(",") if x)]


def pctl(xs, q):
    if not xs:
        return None
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


# Measurement processes run at real-time priority (SCHED_FIFO) when the
# host allows it: on this 2-core machine the transfers' busy-polling
# threads keep both cores runnable, and a normal-priority sampler woke
# every 200 ms instead of every 5 ms.  They sleep between samples, so they
# take almost nothing from the transfers.
RT_PRIO = ["chrt", "-f", "20"] if shutil.which("chrt") and os.geteuid() == 0 else []

SAMPLER = r'''
import os,re,select,subprocess,sys,time
ns,dev,interval,stop=sys.argv[1],sys.argv[2],float(sys.argv[3]),sys.argv[4]
tc=subprocess.Popen(["stdbuf","-oL","tc","-n",ns,"-s","-batch","-"],stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,stderr=subprocess.DEVNULL)
fd,buf,out=tc.stdout.fileno(),b"",[]
try:
    while not os.path.exists(stop):
        t=time.monotonic(); tc.stdin.write(b"qdisc show dev %s\n"%dev.encode()); tc.stdin.flush()
        while True:
            m=re.search(rb"backlog (\d+)([KMG]?)b",buf)  # tc writes 45056 as 44Kb
            if m:
                n=int(m.group(1))*{b"":1,b"K":1024,b"M":1<<20,b"G":1<<30}[m.group(2)]
                out.append("%.6f:%d"%(t,n)); buf=buf[m.end():]; break
            if not select.select([fd],[],[],1.0)[0]: raise SystemExit(0)
            chunk=os.read(fd,65536)
            if not chunk: raise SystemExit(0)
            buf+=chunk
        time.sleep(interval)
finally:
    tc.kill(); print(",".join(out))
'''


def backlog_sampler(fab, link_name, direction, stop_file, interval=0.005):
    """Start sampling the tbf backlog (bytes queued at the bottleneck) until
    stop_file exists; returns the process, whose stdout ends with the
    samples (see backlog_samples()).  Unlike the UDP probe, this is the
    queue itself, free of the probe processes' scheduling delay.  One
    long-lived `tc -batch` answers every sample: starting a tc process 200
    times a second would itself take a good part of a core from the
    transfers it measures (and, measured here, changed their results)."""
    link = fab._targets(link_name)[0]
    ns, dev = fab._rate_target(link, fab._directions(link, direction)[0])
    return subprocess.Popen(RT_PRIO + [PY, "-c", SAMPLER, ns, dev, str(interval), stop_file],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)


def backlog_samples(proc, timeout=30):
    """(t, bytes) pairs from a backlog_sampler() process that was told to stop."""
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        return []
    return [(float(t), int(b)) for t, b in (x.split(":") for x in out.decode().strip().split(",") if x)]


def barrier_coordinator(bar, names, timeout=120):
    """bench/xfer.py --barrier: write go once every sender is ready, and
    verify once every sender is done."""
    for step, then in (("ready", "go"), ("done", "verify")):
        end = time.monotonic() + timeout
        while not all(os.path.exists(os.path.join(bar, f"{step}.{n}")) for n in names):
            if time.monotonic() > end:
                break
            time.sleep(0.002)
        with open(os.path.join(bar, then), "w") as f:
            f.write("1")


def incast_run(fab, proto, nbytes, senders, dst):
    base = [r for _, r in rtt_probe(fab, fab.hosts[3], dst, 0.5)]
    results = {}
    probe = {}
    bar = tempfile.mkdtemp(prefix="rtfb-bar-")
    probe_stop = os.path.join(bar, "probe-stop")
    bl = backlog_sampler(fab, dst.name, "down", probe_stop)
    th = threading.Thread(target=lambda: probe.setdefault(
        "rtt", rtt_probe(fab, fab.hosts[3], dst, 300, stop_file=probe_stop)), daemon=True)
    th.start()
    # the senders start together, once every process has built its data,
    # and the receivers check theirs only when all transfers have ended:
    # otherwise one process's setup or CRC (seconds of CPU) runs beside
    # another's transfer on this small machine and is measured with it
    coord = threading.Thread(target=barrier_coordinator, args=(bar, [s.ip for s in senders]), daemon=True)
    coord.start()
    threads = []
    for s in senders:
        t = threading.Thread(target=lambda s=s: results.__setitem__(
            s.name, run_pair(fab, s, dst, proto, nbytes, extra=["--barrier", bar])), daemon=True)
        t.start()
        threads.append(t)
    for t in threads:
        t.join(200)
    coord.join(5)
    with open(probe_stop, "w"):
        pass
    th.join(30)
    backlog = backlog_samples(bl)
    shutil.rmtree(bar, ignore_errors=True)
    gp = [results[s.name][0].get("goodput_gbps", 0.0) for s in senders]
    secs = [results[s.name][0].get("seconds", 0.0) for s in senders]
    total_bytes = nbytes * len(senders)
    # utilization over the whole incast: first sender's start to the last
    # byte's arrival (all clocks are CLOCK_MONOTONIC of this one machine);
    # the longest single transfer would overstate it when starts are staggered
    starts = [results[s.name][0].get("t0") for s in senders]
    ends = [results[s.name][0].get("t1") if proto == "rt" else results[s.name][1].get("t_last")
            for s in senders]
    if all(x is not None for x in starts + ends) and max(ends) > min(starts):
        span = max(ends) - min(starts)
    else:
        span = max(secs)
    util = total_bytes * 8 / span / 1e9 if span > 0 else 0.0
    jain = sum(gp) ** 2 / (len(gp) * sum(g * g for g in gp)) if any(gp) else 0.0
    # the probe and the queue sampler run from before the senders' setup to
    # after their verification: keep only what was taken while data moved
    if all(x is not None for x in starts + ends):
        lo, hi = min(starts), max(ends)
    else:
        lo, hi = float("-inf"), float("inf")
    rtts = [r for t, r in probe.get("rtt", []) if lo <= t <= hi]
    backlog = [b for t, b in backlog if lo <= t <= hi]
    base_min = min(base) if base else None
    out = {"goodput_gbps": [round(g, 3) for g in gp], "utilization": round(util, 3), "jain": round(jain, 3),
           "span_s": round(span, 3),
           "probe_base_rtt_us": round(base_min, 1) if base_min else None,
           "probe_p99_rtt_us": round(pctl(rtts, 0.99), 1) if rtts else None,
           "probe_p99_inflation_us": round(pctl(rtts, 0.99) - base_min, 1) if rtts and base_min else None,
           "probe_samples": len(rtts),
           "ok": all(results[s.name][0].get("ok") for s in senders)}
    if backlog:
        # queueing delay at the 1 Gbit/s bottleneck = backlog * 8 / rate
        out["queue_p50_us"] = round(pctl(backlog, 0.50) * 8 / 1e3, 1)
        out["queue_p99_us"] = round(pctl(backlog, 0.99) * 8 / 1e3, 1)
        out["queue_samples"] = len(backlog)
    if proto == "rt":
        infl = []
        for s in senders:
            st = results[s.name][0].get("stats") or {}
            ps = results[s.name][0].get("path_stats") or []
            p99 = max((p["rtt_p99_us"] for p in ps if p["tx_packets"]), default=0)
            infl.append(p99 - st.get("min_rtt_us", 0))
        out["rt_own_p99_inflation_us"] = infl
        sts = [results[s.name][0].get("stats") or {} for s in senders]
        for k in ("retransmits", "tlp_probes", "rto_events", "spurious_retransmits", "srtt_us"):
            out["rt_" + k] = [st.get(k) for st in sts]
    return out


def sc_incast(fab, a):
    h2 = fab.hosts[2]
    fab.set_rate(h2.name, "1gbit", direction="down")
    senders = [fab.hosts[0], fab.hosts[1], fab.hosts[3]]
    nbytes = a.incast_bytes
    rt_res = incast_run(fab, "rt", nbytes, senders, h2)
    tcp_res = incast_run(fab, "tcp", nbytes, senders, h2)
    return {"rt": rt_res, "tcp": tcp_res, "target_delay_us": a.target_us,
            "target": "utilization >= 0.9, Jain >= 0.9, p99 RTT inflation <= 2x target delay"}


def sc_unlimited(fab, a):
    h0, h2 = fab.hosts[0], fab.hosts[2]
    rs, rr = run_pair(fab, h0, h2, "rt", a.bytes * 2)
    ts, tr = run_pair(fab, h0, h2, "tcp", a.bytes * 2)
    return {"rt": summarize_rt(rs) | {"bit_exact": rr.get("bit_exact")},
            "tcp": {"goodput_gbps": round(tr.get("goodput_gbps", 0.0), 3), "ok": tr.get("ok")},
            "ratio": round(rs.get("goodput_gbps", 0) / max(1e-9, tr.get("goodput_gbps", 0)), 3),
            "target": "rt >= 2x one TCP stream"}


SCENARIOS = {"spray": sc_spray, "loss": sc_loss, "failure": sc_failure, "flap": sc_flap, "incast": sc_incast,
             "unlimited": sc_unlimited}


def plot(series, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed (pip install 'rtransport[plot]'): no PNG", file=sys.stderr)
        return False
    bin_s = series["bin_ms"] / 1000
    fig, ax = plt.subplots(figsize=(8, 3.5))
    for key, label in (("rt", "rtransport"), ("tcp", "TCP (stream on the failed spine)")):
        ys = series[key]
        xs = [i * bin_s for i in range(len(ys))]
        ax.plot(xs, ys, lw=0.6, alpha=0.35, color="C0" if key == "rt" else "C1")
        k = 5  # 50 ms moving average over the 10 ms bins
        avg = [sum(ys[max(0, i - k + 1):i + 1]) / len(ys[max(0, i - k + 1):i + 1]) for i in range(len(ys))]
        ax.plot(xs, avg, lw=1.4, label=label + " (50 ms average; light: 10 ms bins)",
                color="C0" if key == "rt" else "C1")
        ax.axvline(series[key + "_fail_s"], ls="--", lw=0.8, color="C0" if key == "rt" else "C1")
    ax.set_xlabel("time since start of transfer (s)")
    ax.set_ylabel("goodput (Gbit/s, 10 ms bins)")
    ax.set_title("One of 4 spines blackholed (dashed line), spine links 1 Gbit/s")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return True


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenarios", default=",".join(SCENARIOS))
    ap.add_argument("--bytes", type=int, default=1 << 30)
    ap.add_argument("--fail-bytes", type=int, default=1536 << 20)
    ap.add_argument("--fail-after", type=float, default=1.0)
    ap.add_argument("--flap-bytes", type=int, default=3 << 30)
    ap.add_argument("--incast-bytes", type=int, default=160 << 20)
    ap.add_argument("--target-us", type=int, default=200, help="the CC target delay in use (for the report)")
    ap.add_argument("--json", default=None)
    ap.add_argument("--png", default=None)
    ap.add_argument("--series-out", default=None, help="write the failure time series (10 ms bins) as CSV")
    ap.add_argument("--prefix", default="rtfb")
    ap.add_argument("--rt-args", default="",
                    help="extra bench/xfer.py options for the rtransport runs, e.g. '--cc-scope peer'")
    a = ap.parse_args(argv)
    RT_EXTRA[:] = shlex.split(a.rt_args)
    bad = [n for n in a.scenarios.split(",") if n not in SCENARIOS]
    if bad:
        ap.error(f"unknown scenario(s) {', '.join(bad)}; choose from {', '.join(SCENARIOS)}")
    if os.geteuid() != 0:
        print("fabric benchmarks need root (network namespaces)", file=sys.stderr)
        return 77
    out = {}
    for name in a.scenarios.split(","):
        with Fabric(prefix=a.prefix) as fab:
            t = time.monotonic()
            out[name] = SCENARIOS[name](fab, a)
            out[name]["wall_s"] = round(time.monotonic() - t, 1)
        ser = out[name].pop("_series", None)
        print(f"== {name}: {json.dumps(out[name])}", flush=True)
        if ser:
            if a.png:
                plot(ser, a.png)
            if a.series_out:
                with open(a.series_out, "w") as f:
                    f.write("t_ms,rt_gbps,tcp_gbps\n")
                    n = max(len(ser["rt"]), len(ser["tcp"]))
                    for i in range(n):
                        r = ser["rt"][i] if i < len(ser["rt"]) else ""
                        c = ser["tcp"][i] if i < len(ser["tcp"]) else ""
                        f.write(f"{i * ser['bin_ms']},{r},{c}\n")
            out[name]["series_rt_gbps"] = [round(x, 3) for x in ser["rt"]]
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
