"""The C core as a plain C library (no Python): ``make`` builds it with
warnings on and clean, only ``rt_*`` symbols are exported, the soname
carries the version, and a C program built against
``csrc/include/rtransport/rt.h`` links it, moves a message and checks the
sized out-structures of the ABI rules (tests/c/abi_check.c)."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

import rtransport as rt

ROOT = Path(__file__).resolve().parent.parent
HEADER = ROOT / "csrc" / "include" / "rtransport" / "rt.h"

pytestmark = pytest.mark.skipif(
    not (ROOT / "Makefile").exists() or not HEADER.exists()
    or shutil.which("make") is None or shutil.which("gcc") is None,
    reason="needs the source tree (Makefile, csrc/), make and gcc")


def _header_version() -> tuple[int, int]:
    text = HEADER.read_text()
    major = int(re.search(r"^#define RT_VERSION_MAJOR (\d+)", text, re.M).group(1))
    minor = int(re.search(r"^#define RT_VERSION_MINOR (\d+)", text, re.M).group(1))
    return major, minor


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """A fresh build of the plain library in a private directory."""
    out = tmp_path_factory.mktemp("clib")
    r = subprocess.run(["make", "-C", str(ROOT), f"BUILD={out}", "CC=gcc"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    # -Wall -Wextra -Wshadow: the build must be clean
    assert "warning" not in (r.stdout + r.stderr).lower(), r.stdout + r.stderr
    return out


def test_make__builds_clean_shared_and_static_library_with_versioned_soname(built):
    major, minor = _header_version()
    soname = f"librtransport.so.{major}.{minor}" if major == 0 else f"librtransport.so.{major}"
    assert (built / "librtransport.a").is_file()
    assert (built / soname).is_file()
    assert os.readlink(built / "librtransport.so") == soname
    if shutil.which("readelf"):
        dyn = subprocess.run(["readelf", "-d", str(built / soname)], capture_output=True,
                             text=True, check=True).stdout
        assert f"[{soname}]" in dyn, dyn


def test_make__exports_only_rt_symbols(built):
    if shutil.which("nm") is None:
        pytest.skip("nm not installed")
    out = subprocess.run(["nm", "-D", "--defined-only", str(built / "librtransport.so")],
                         capture_output=True, text=True, check=True).stdout
    names = [line.split()[-1] for line in out.splitlines() if line.strip()]
    assert "rt_ctx_create" in names and "rt_version" in names
    assert [n for n in names if not n.startswith("rt_")] == []


def test_rt_version__binding_matches_header():
    assert rt.c_version == _header_version()


def test_c_program__links_library_moves_a_message_and_checks_abi_sizes(built, tmp_path):
    exe = tmp_path / "abi_check"
    r = subprocess.run(["gcc", "-Wall", "-Wextra", "-Werror", "-O2", f"-I{ROOT}/csrc/include",
                        "-o", str(exe), str(ROOT / "tests" / "c" / "abi_check.c"),
                        f"-L{built}", "-lrtransport", f"-Wl,-rpath,{built}"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    run = subprocess.run([str(exe)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0 and run.stdout.strip() == "ok", run.stdout + run.stderr
