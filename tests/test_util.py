# SPDX-License-Identifier: Apache-2.0
"""csrc/util.c: the placement copy (tests/c/test_place.c, built from source).

Like tests/test_cc.py, the C program is compiled straight from csrc/, so this
needs gcc but not the built library.
"""
import pathlib
import shutil
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
CSRC = ROOT / "csrc"


def test_rt_place_nt__matches_memcpy_at_every_alignment(tmp_path):
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("gcc not found: cannot build tests/c/test_place.c")
    out = tmp_path / "test_place"
    cmd = [gcc, "-std=gnu11", "-D_GNU_SOURCE", "-Wall", "-Wextra", "-Werror", "-O1",
           f"-I{CSRC}/include", f"-I{CSRC}", str(ROOT / "tests" / "c" / "test_place.c"),
           str(CSRC / "util.c"), "-o", str(out)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    assert res.returncode == 0, f"build failed:\n{' '.join(cmd)}\n{res.stdout}{res.stderr}"
    res = subprocess.run([str(out)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.startswith("ok ")
