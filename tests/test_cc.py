# SPDX-License-Identifier: Apache-2.0
"""Congestion-control tests: run the C simulator in tests/c/test_cc.c.

The C program is built once per session (module fixture) straight from the
csrc/ sources, so these tests need gcc but not the built library.  Each
case is a simulation in virtual time; nothing here depends on wall-clock
speed.
"""
import pathlib
import shutil
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
CSRC = ROOT / "csrc"
TEST_SRC = ROOT / "tests" / "c" / "test_cc.c"
SOURCES = [TEST_SRC, CSRC / "cc.c", CSRC / "cc_none.c", CSRC / "cc_swift.c"]

CASES = [
    "swift_converges_two_flows",
    "swift_reacts_to_delay",
    "swift_reacts_to_loss",
    "swift_reacts_to_timeout",
    "swift_ecn",
    "swift_no_throttle_uncongested",
    "swift_incast_fractional",
    "swift_flow_scaling_follows_flow_window",
    "none_fixed_window",
    "find",
]


@pytest.fixture(scope="module")
def cc_test_bin(tmp_path_factory):
    """Compile tests/c/test_cc.c with the CC sources; skip without gcc."""
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("gcc not found: cannot build tests/c/test_cc.c")
    out = tmp_path_factory.mktemp("cc") / "test_cc"
    cmd = [gcc, "-std=gnu11", "-Wall", "-Wextra", "-Werror", "-O1",
           f"-I{CSRC}", *map(str, SOURCES), "-lm", "-o", str(out)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    assert res.returncode == 0, (
        f"building test_cc failed:\n{' '.join(cmd)}\n{res.stdout}{res.stderr}")
    return out


def test_cc_case_list_matches(cc_test_bin):
    """The C program knows exactly the cases this file runs."""
    res = subprocess.run([str(cc_test_bin)], capture_output=True, text=True)
    assert res.returncode == 2
    listed = [l.strip() for l in res.stderr.splitlines()[1:] if l.strip()]
    assert listed == CASES


@pytest.mark.parametrize("case", CASES, ids=[f"test_cc__{c}" for c in CASES])
def test_cc(cc_test_bin, case):
    res = subprocess.run([str(cc_test_bin), case], capture_output=True,
                         text=True, timeout=120)
    output = res.stdout + res.stderr
    print(output)
    assert res.returncode == 0, f"case {case} failed (rc={res.returncode}):\n{output}"
