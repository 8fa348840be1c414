"""Shared fixtures of the transport tests (test_transport, test_properties,
test_bad_input, test_two_process)."""

from __future__ import annotations

import faulthandler
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from helpers import Pair  # noqa: E402

# Hang guard: no pytest-timeout here, so a test of these modules that runs
# longer than this dumps every thread's stack and ends the run instead of
# hanging it.  Each test has its own (much shorter) timeouts on every wait.
_WATCHDOG_S = float(os.environ.get("RT_TEST_WATCHDOG_S", "240"))
_GUARDED = {"test_transport", "test_properties", "test_bad_input", "test_two_process"}


@pytest.fixture(autouse=True)
def _watchdog(request):
    mod = getattr(request.module, "__name__", "").rsplit(".", 1)[-1]
    if mod not in _GUARDED:
        yield
        return
    faulthandler.dump_traceback_later(_WATCHDOG_S, exit=True)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()


@pytest.fixture
def pair():
    """Two connected endpoints in two Contexts, mtu=1500."""
    with Pair() as p:
        yield p


@pytest.fixture
def pair9000():
    """Two connected endpoints in two Contexts, mtu=9000 (big messages)."""
    with Pair(mtu=9000) as p:
        yield p
