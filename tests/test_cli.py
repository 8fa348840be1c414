"""Command-line tools: ``rtransport demo``, ``doctor`` and ``perf``.

Every test runs the real command in a subprocess (``python -m rtransport
...``) with a hard timeout, so a hang fails the test instead of the run.
There are no timing assertions: only that the tools ran, verified their
data and reported positive numbers.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

import rtransport
from rtransport import perf

# Run the same rtransport the test process imported (not whatever the
# current directory would shadow it with).
_PKG_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(rtransport.__file__)))


def run_cli(args, tmp_path, timeout=90):
    env = dict(os.environ)
    env["PYTHONPATH"] = _PKG_ROOT + (os.pathsep + env["PYTHONPATH"]
                                     if env.get("PYTHONPATH") else "")
    env.pop("RTRANSPORT_FABRIC_PREFIX", None)
    try:
        return subprocess.run([sys.executable, "-m", "rtransport", *args], cwd=tmp_path,
                              env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"'rtransport {' '.join(args)}' did not finish in {timeout} s; "
                    f"output so far:\n{e.stdout}\n{e.stderr}")


def _explain(r) -> str:
    return f"exit {r.returncode}\nstdout:\n{r.stdout}\nstderr:\n{r.stderr}"


# ---------------------------------------------------------------- demo


def test_demo_exits_0_and_reports_every_step(tmp_path):
    r = run_cli(["demo"], tmp_path)
    assert r.returncode == 0, _explain(r)
    out = r.stdout
    for step in ("addresses", "send/recv", "write+imm", "read", "atomics",
                 "latency", "bandwidth"):
        assert f"ok  {step}" in out, f"step {step} missing\n{out}"
    assert "demo passed" in out
    assert "FAIL" not in out + r.stderr
    # the numbers are there and positive
    lat = [l for l in out.splitlines() if "ok  latency" in l][0]
    p50 = float(lat.split("p50 ")[1].split()[0])
    assert p50 > 0
    bw = [l for l in out.splitlines() if "ok  bandwidth" in l][0]
    assert float(bw.split(": ")[1].split()[0]) > 0


def test_demo_manual_progress(tmp_path):
    r = run_cli(["demo", "--progress", "manual", "--pings", "50", "--bulk-mib", "16"],
                tmp_path)
    assert r.returncode == 0, _explain(r)
    assert "progress=manual" in r.stdout and "demo passed" in r.stdout


def test_demo_fails_clearly(tmp_path):
    # an address no interface has: the contexts cannot bind
    r = run_cli(["demo", "--bind", "192.0.2.123", "--timeout", "20"], tmp_path)
    assert r.returncode != 0
    assert "demo FAILED" in r.stderr, _explain(r)
    assert "192.0.2.123" in r.stderr


# ---------------------------------------------------------------- doctor


def test_doctor_json_has_expected_keys(tmp_path):
    r = run_cli(["doctor", "--json"], tmp_path)
    assert r.returncode == 0, _explain(r)
    d = json.loads(r.stdout)
    for key in ("rtransport", "machine", "interface", "context", "advice"):
        assert key in d
    m = d["machine"]
    for key in ("gso_supported", "gro_supported", "cpus", "sysctl"):
        assert key in m
    assert m["cpus"] >= 1
    assert "net.core.rmem_max" in m["sysctl"] and "net.core.wmem_max" in m["sysctl"]
    assert "net.core.busy_poll" in m["sysctl"]
    c = d["context"]
    assert c["ok"] is True
    info = c["info"]
    for key in ("gso_used", "gro_used", "mtu", "if_mtu", "max_payload", "sndbuf", "rcvbuf",
                "num_paths", "progress", "port"):
        assert key in info
    assert info["sndbuf"] > 0 and info["rcvbuf"] > 0 and info["port"] > 0
    assert c["requested"]["rcvbuf"] > 0
    assert d["interface"]["mtu"]
    assert isinstance(d["advice"], list)
    for a in d["advice"]:
        assert a["level"] in ("error", "warn", "hint") and a["text"]


def test_doctor_text_and_options(tmp_path):
    r = run_cli(["doctor", "--bind", "127.0.0.1", "--mtu", "9000"], tmp_path)
    assert r.returncode == 0, _explain(r)
    assert "machine" in r.stdout and "context" in r.stdout
    assert "mtu 9000" in r.stdout
    assert "advice" in r.stdout


def test_doctor_reports_unusable_bind_address(tmp_path):
    r = run_cli(["doctor", "--json", "--bind", "192.0.2.123"], tmp_path)
    assert r.returncode == 1
    d = json.loads(r.stdout)
    assert d["context"]["ok"] is False
    assert any(a["level"] == "error" for a in d["advice"])


# ---------------------------------------------------------------- perf


def test_perf_pingpong_loopback(tmp_path):
    out = tmp_path / "pp.json"
    r = run_cli(["perf", "pingpong", "--repeat", "1", "--iters", "200", "--json", str(out)], tmp_path)
    assert r.returncode == 0, _explain(r)
    assert "p50 us" in r.stdout and "tcp" in r.stdout and "rtransport" in r.stdout
    d = json.loads(out.read_text())
    rows = d["result"]["rows"]
    kinds = {(row["transport"], row["config"].get("progress")) for row in rows}
    assert ("tcp", None) in kinds
    assert ("rtransport", "thread") in kinds and ("rtransport", "manual") in kinds
    for row in rows:
        assert row["p50_us"] > 0 and row["p99_us"] >= row["p50_us"]
        assert row["ratio_p50"] > 0
    assert "target" in d["result"] and d["machine"]["cpus"] >= 1
    # saved results render again, as text and as Markdown
    r = run_cli(["perf", "report", "--markdown", str(out)], tmp_path)
    assert r.returncode == 0, _explain(r)
    assert "| tcp |" in r.stdout and "| rtransport |" in r.stdout
    r = run_cli(["perf", "report", str(out)], tmp_path)
    assert r.returncode == 0 and "p50 us" in r.stdout


@pytest.mark.skipif(not hasattr(rtransport.lib, "rt_perf_pingpong"),
                    reason="this build has no C benchmark loops")
def test_perf_pingpong_c_loops_and_cffi(tmp_path):
    out = tmp_path / "ppc.json"
    r = run_cli(["perf", "pingpong", "--repeat", "1", "--iters", "200", "--api", "c,cffi",
                 "--progress", "manual", "--json", str(out)], tmp_path)
    assert r.returncode == 0, _explain(r)
    rows = json.loads(out.read_text())["result"]["rows"]
    got = {(row["transport"], row["config"].get("api")) for row in rows}
    assert got == {("tcp", "py"), ("tcp", "c"), ("rtransport", "c"), ("rtransport", "cffi")}
    for row in rows:
        assert row["p50_us"] > 0 and row["ratio_p50"] > 0
        if row["config"].get("api") == "c":
            assert row["baseline"] == "1 stream, TCP_NODELAY api=c"


def test_perf_bw_loopback(tmp_path):
    out = tmp_path / "bw.json"
    r = run_cli(["perf", "bw", "--repeat", "1", "--sizes", "65536", "--iters", "5", "--json", str(out)],
                tmp_path)
    assert r.returncode == 0, _explain(r)
    assert "64 KiB" in r.stdout
    d = json.loads(out.read_text())
    cols = d["result"]["columns"]
    assert {c["transport"] for c in cols} == {"tcp", "rtransport"}
    for c in cols:
        (s,) = c["sizes"]
        assert s["size"] == 65536 and s["iters"] == 5 and s["gbps"] > 0


def test_perf_bw_send_op(tmp_path):
    r = run_cli(["perf", "bw", "--repeat", "1", "--sizes", "64K,1M", "--iters", "5", "--op", "send",
                 "--transports", "rt", "--progress", "manual"], tmp_path)
    assert r.returncode == 0, _explain(r)
    assert "op=send" in r.stdout and "1 MiB" in r.stdout


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("ip") is None,
                    reason="needs root and iproute2")
def test_perf_netns_cleans_up(tmp_path):
    before = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    r = run_cli(["perf", "pingpong", "--repeat", "1", "--path", "netns", "--iters", "100",
                 "--progress", "manual"], tmp_path)
    assert r.returncode == 0, _explain(r)
    assert "netns" in r.stdout and "10.77.0.2" in r.stdout
    after = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    leaked = [l for l in after.splitlines() if "rtperf-" in l and l not in before]
    assert not leaked


def test_perf_overhead(tmp_path):
    out = tmp_path / "ovh.json"
    r = run_cli(["perf", "overhead", "-n", "400", "--json", str(out)], tmp_path)
    assert r.returncode == 0, _explain(r)
    d = json.loads(out.read_text())["result"]
    assert d["post_send"]["python_us"] > 0 and d["post_send"]["cffi_us"] > 0
    assert d["one-way message + ack, in process"]["python_us"] > 0


def test_perf_bad_arguments(tmp_path):
    r = run_cli(["perf", "bw", "--sizes", "lots"], tmp_path)
    assert r.returncode == 2
    assert "size" in r.stderr
    r = run_cli(["perf", "pingpong", "--progress", "sometimes"], tmp_path)
    assert r.returncode == 2 and "--progress" in r.stderr


def test_parse_size():
    assert perf.parse_size("65536") == 65536
    assert perf.parse_size("64K") == 64 * 1024
    assert perf.parse_size("64KiB") == 64 * 1024
    assert perf.parse_size("256M") == 256 << 20
    assert perf.parse_size("1g") == 1 << 30
    assert perf.parse_sizes("64K, 1M") == [65536, 1 << 20]
    for bad in ("", "x", "12Q", "0"):
        with pytest.raises(ValueError):
            perf.parse_size(bad)
