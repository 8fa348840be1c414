"""Idiomatic Python classes over the rtransport C API.

The thin 1:1 layer is the cffi module ``rtransport._rt`` (``ffi``/``lib``);
this module wraps it in pyverbs-style objects:

    Context ─┬─ CompletionQueue
             ├─ MemoryRegion
             └─ Endpoint ── Peer

Every object is a context manager, ``close()`` is idempotent, closing a
parent closes its children first, and using a closed object raises
:class:`~rtransport.errors.ClosedError`.
"""

from __future__ import annotations

import atexit
import dataclasses
import enum
import itertools
import logging
import operator
import os
import sys
import threading
import time
import weakref
from collections import deque
from typing import Any, Callable

from ._rt import ffi, lib
from .errors import (
    BoundsError,
    BusyError,
    ClosedError,
    CompletionError,
    CompletionPeerError,
    CompletionTimeoutError,
    InvalidArgument,
    InvalidType,
    OutOfMemory,
    RTError,
    RTTimeoutError,
    check,
)

__all__ = [
    "Access",
    "Opcode",
    "Status",
    "FaultConfig",
    "Completion",
    "Peer",
    "RemoteRegion",
    "Context",
    "Endpoint",
    "MemoryRegion",
    "CompletionQueue",
    "probe",
]

log = logging.getLogger("rtransport")

_U32 = (1 << 32) - 1
_U64 = (1 << 64) - 1
#: wr_ids with this bit set are used by the blocking helpers (send/recv)
#: and never reach the user; user wr_ids must be below it.
INTERNAL_WR_ID_BIT = 1 << 63
_internal_counter = itertools.count(1)

#: Default timeout of CompletionQueue.wait(timeout=None), seconds.
DEFAULT_WAIT_TIMEOUT = 60.0
# Long waits are cut into slices so that signals (Ctrl-C) are handled and
# completions taken by other threads are noticed.
_WAIT_SLICE = 0.1

_PEER_NONE = 0xFFFFFFFF  # RT_PEER_NONE: completion without a peer
_DESC_SIZE = lib.RT_MR_DESC_SIZE
_ADDR_SIZE = lib.RT_ADDR_SIZE
_WC_BUF = 64
# Endpoint.recv(): after a message did not fit, the replacement internal
# buffer grows to that message's size, up to this many bytes
_RECV_GROW_MAX = 64 << 20


def _next_internal_wr_id() -> int:
    return INTERNAL_WR_ID_BIT | (next(_internal_counter) & (INTERNAL_WR_ID_BIT - 1))


# --------------------------------------------------------------------------
# enums


class Access(enum.IntFlag):
    """Access flags of a memory region (enum rt_access)."""

    LOCAL_WRITE = lib.RT_ACCESS_LOCAL_WRITE
    REMOTE_WRITE = lib.RT_ACCESS_REMOTE_WRITE
    REMOTE_READ = lib.RT_ACCESS_REMOTE_READ
    REMOTE_ATOMIC = lib.RT_ACCESS_REMOTE_ATOMIC


class Opcode(enum.IntEnum):
    """Opcode of a completion (enum rt_opcode)."""

    SEND = lib.RT_OP_SEND
    RECV = lib.RT_OP_RECV
    WRITE = lib.RT_OP_WRITE
    READ = lib.RT_OP_READ
    ATOMIC_FETCH_ADD = lib.RT_OP_ATOMIC_FETCH_ADD
    ATOMIC_CMP_SWAP = lib.RT_OP_ATOMIC_CMP_SWAP
    RECV_WRITE_IMM = lib.RT_OP_RECV_WRITE_IMM

    def __str__(self) -> str:
        return self.name


class Status(enum.IntEnum):
    """Completion status (enum rt_wc_status)."""

    SUCCESS = lib.RT_WC_SUCCESS
    LOC_LEN_ERR = lib.RT_WC_LOC_LEN_ERR
    REM_BAD_KEY = lib.RT_WC_REM_BAD_KEY
    REM_OUT_OF_BOUNDS = lib.RT_WC_REM_OUT_OF_BOUNDS
    REM_ACCESS = lib.RT_WC_REM_ACCESS
    REM_TOO_SMALL = lib.RT_WC_REM_TOO_SMALL
    REM_MISALIGNED = lib.RT_WC_REM_MISALIGNED
    TIMEOUT = lib.RT_WC_TIMEOUT
    RNR_TIMEOUT = lib.RT_WC_RNR_TIMEOUT
    FLUSHED = lib.RT_WC_FLUSHED
    PEER_FAILED = lib.RT_WC_PEER_FAILED
    REM_INVALID = lib.RT_WC_REM_INVALID
    ABORTED = lib.RT_WC_ABORTED

    @property
    def description(self) -> str:
        """Text of rt_wc_status_str()."""
        return _cstr(lib.rt_wc_status_str(self.value))

    def __str__(self) -> str:
        return self.name


def _cstr(p) -> str:
    if p == ffi.NULL:
        return ""
    return ffi.string(p).decode("utf-8", errors="replace")


def _struct_to_dict(s, fields) -> dict:
    out = {}
    for name, kind in fields:
        v = getattr(s, name)
        if kind == "array":
            v = ffi.string(v).decode("utf-8", errors="replace")
        out[name] = v
    return out


def _fields_of(ctype: str):
    return [(name, f.type.kind) for name, f in ffi.typeof(ctype).fields]


_INFO_FIELDS = _fields_of("struct rt_ctx_info")
_EP_STATS_FIELDS = _fields_of("struct rt_ep_stats")
_PATH_STATS_FIELDS = _fields_of("struct rt_path_stats")


# --------------------------------------------------------------------------
# argument helpers


def _index(value, name: str) -> int:
    try:
        return operator.index(value)
    except TypeError:
        raise InvalidType(f"{name} must be an int, not {type(value).__name__}") from None


def _u64(value, name: str) -> int:
    v = _index(value, name)
    if not 0 <= v <= _U64:
        raise InvalidArgument(f"{name} must be in [0, 2**64), got {v}")
    return v


def _u32(value, name: str) -> int:
    v = _index(value, name)
    if not 0 <= v <= _U32:
        raise InvalidArgument(f"{name} must be in [0, 2**32), got {v}")
    return v


def _operand(value, name: str) -> int:
    """A 64-bit atomic operand: signed or unsigned, stored two's complement."""
    v = _index(value, name)
    if not -(1 << 63) <= v <= _U64:
        raise InvalidArgument(f"{name} must fit in 64 bits, got {v}")
    return v & _U64


def _wr_id(value) -> int:
    v = _index(value, "wr_id")
    if not 0 <= v < INTERNAL_WR_ID_BIT:
        raise InvalidArgument(
            f"wr_id must be in [0, 2**63) (the top bit is reserved for "
            f"rtransport's blocking helpers), got {v}")
    return v


def _timeout(value, default: float) -> float:
    if value is None:
        return default
    try:
        t = float(value)
    except (TypeError, ValueError):
        raise InvalidType(f"timeout must be a number of seconds or None, "
                          f"not {type(value).__name__}") from None
    if t != t:  # NaN
        raise InvalidArgument("timeout must not be NaN")
    return max(0.0, t)


_N_MAX = 1 << 20  # most completions one poll()/wait() asks for


def _count(value, name: str = "n") -> int:
    v = _index(value, name)
    if v < 1:
        raise InvalidArgument(f"{name} must be >= 1, got {v}")
    return min(v, _N_MAX)


def _call_fast(fn, *args) -> bool:
    """Call a post function with arguments not yet range-checked: False if
    cffi rejects one (negative, too large: the caller then takes its
    checking path), else True, raising the mapped error for rc < 0."""
    try:
        rc = fn(*args)
    except OverflowError:
        return False
    if rc < 0:
        check(rc)
    return True


def _bytes_arg(value, name: str) -> bytes:
    if isinstance(value, bytes):
        return value
    try:
        with memoryview(value) as mv:
            return mv.tobytes()
    except TypeError:
        raise InvalidType(f"{name} must be a bytes-like object, not "
                          f"{type(value).__name__}") from None


def _remote_desc(remote) -> bytes:
    if remote is None:
        raise InvalidType("remote= is required: the descriptor of the target "
                          "region (MemoryRegion.descriptor() on the target side)")
    desc = getattr(remote, "descriptor", None)
    if callable(desc):
        remote = desc()
    try:
        return _bytes_arg(remote, "remote")
    except TypeError:
        raise InvalidType("remote must be descriptor bytes or an object with a "
                          f".descriptor() method, not {type(remote).__name__}") from None


# --------------------------------------------------------------------------
# small value types


@dataclasses.dataclass
class FaultConfig:
    """Deterministic receive-side fault injection (struct rt_config fault_*).

    ``None`` keeps the C default (off).  Probabilities are in [0, 1].
    """

    seed: int | None = None
    drop: float | None = None
    dup: float | None = None
    reorder: float | None = None
    delay: float | None = None
    delay_us: int | None = None
    corrupt: float | None = None
    #: ECMP model: a datagram's route is a hash of its source address and
    #: port modulo ``routes``; routes listed in ``dead_routes`` drop
    #: everything (a blackholed spine, without root or namespaces)
    routes: int | None = None
    dead_routes: "list[int] | int | None" = None

    def to_config(self) -> dict:
        """The corresponding ``fault_*`` config fields (None left out)."""
        out = {f"fault_{f.name}": getattr(self, f.name)
               for f in dataclasses.fields(self)
               if getattr(self, f.name) is not None}
        dead = out.get("fault_dead_routes")
        if dead is not None and not isinstance(dead, int):
            mask = 0
            for r in dead:
                if type(r) is not int or not 0 <= r < 64:
                    raise InvalidArgument(f"fault dead_routes: {r!r} is not a route "
                                          "number in [0, 64)")
                mask |= 1 << r
            out["fault_dead_routes"] = mask
        return out

    @classmethod
    def from_dict(cls, d: dict) -> "FaultConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        bad = sorted(set(d) - names)
        if bad:
            raise InvalidType(f"unknown fault option(s) {', '.join(bad)}; "
                              f"valid: {', '.join(sorted(names))}")
        return cls(**d)


class Peer:
    """A remote endpoint as known by one local :class:`Endpoint`.

    Obtained from :meth:`Endpoint.connect` or from ``Completion.peer``.
    Two Peer objects are equal when they name the same peer handle of the
    same local endpoint.
    """

    __slots__ = ("_ep_ref", "_ep_key", "id", "address", "__weakref__")

    def __init__(self, endpoint: "Endpoint", peer_id: int, address: bytes | None):
        self._ep_ref = weakref.ref(endpoint)
        self._ep_key = id(endpoint)
        self.id = peer_id
        self.address = address

    @property
    def endpoint(self) -> "Endpoint | None":
        """The local endpoint this handle belongs to (None once collected)."""
        return self._ep_ref()

    def __eq__(self, other):
        if not isinstance(other, Peer):
            return NotImplemented
        return (self._ep_key == other._ep_key and self.id == other.id
                and self._ep_ref() is other._ep_ref())

    def __hash__(self):
        return hash((self._ep_key, self.id))

    def __repr__(self):
        ep = self._ep_ref()
        epid = "?" if ep is None else ep._id
        return f"Peer(id={self.id}, ep={epid})"


class RemoteRegion:
    """A remote memory region, named by its descriptor bytes.

    Anything with a ``descriptor()`` method (this class, or a local
    :class:`MemoryRegion`) is accepted as ``remote=`` of the one-sided
    operations, as are the raw descriptor bytes.
    """

    __slots__ = ("_desc",)

    def __init__(self, descriptor):
        d = _bytes_arg(descriptor, "descriptor")
        if len(d) != _DESC_SIZE:
            raise InvalidArgument(
                f"a region descriptor is {_DESC_SIZE} bytes, got {len(d)}")
        self._desc = d

    def descriptor(self) -> bytes:
        return self._desc

    def __bytes__(self):
        return self._desc

    def __eq__(self, other):
        if isinstance(other, RemoteRegion):
            return self._desc == other._desc
        return NotImplemented

    def __hash__(self):
        return hash(self._desc)

    def __repr__(self):
        return f"RemoteRegion({self._desc.hex()})"


class Completion(tuple):
    """One work completion (immutable).

    ``peer`` is the :class:`Peer` on the other side (None when unknown,
    e.g. for a flushed receive); ``imm`` is None unless the completion
    carries immediate data.  A completion is a tuple underneath
    (``wr_id, opcode, status, byte_len, imm, peer, ep_id``), so building
    one costs a fraction of a microsecond on the per-message path; it
    unpacks and indexes like one, compares equal only to completions, and
    attributes cannot be assigned (AttributeError).
    """

    __slots__ = ()
    _fields = ("wr_id", "opcode", "status", "byte_len", "imm", "peer", "ep_id")
    __match_args__ = _fields

    # equal only to completions (a plain tuple with the same values is not)
    def __eq__(self, other):
        return isinstance(other, Completion) and tuple.__eq__(self, other)

    def __ne__(self, other):
        return not self.__eq__(other)

    __hash__ = tuple.__hash__

    def __new__(cls, wr_id: int, opcode: "Opcode | int", status: "Status | int",
                byte_len: int, imm: int | None, peer: "Peer | None", ep_id: int):
        return tuple.__new__(cls, (wr_id, opcode, status, byte_len, imm, peer, ep_id))

    def __getnewargs__(self):
        return tuple(self)

    wr_id = property(operator.itemgetter(0), doc="the work request's id")
    opcode = property(operator.itemgetter(1), doc="an :class:`Opcode` (int if unknown)")
    status = property(operator.itemgetter(2), doc="a :class:`Status`; 0 is SUCCESS")
    byte_len = property(operator.itemgetter(3), doc="bytes transferred")
    imm = property(operator.itemgetter(4), doc="immediate data, or None")
    peer = property(operator.itemgetter(5), doc="the :class:`Peer`, or None")
    ep_id = property(operator.itemgetter(6), doc="id of the endpoint it belongs to")

    @property
    def ok(self) -> bool:
        return self[2] == 0  # Status.SUCCESS

    def __repr__(self):
        op = getattr(self.opcode, "name", self.opcode)
        st = getattr(self.status, "name", self.status)
        parts = [f"{op}", f"{st}", f"wr_id={self.wr_id}", f"len={self.byte_len}"]
        if self.imm is not None:
            parts.append(f"imm={self.imm:#x}")
        parts.append(f"peer={None if self.peer is None else self.peer.id}")
        parts.append(f"ep={self.ep_id}")
        return f"Completion({' '.join(parts)})"


_tuple_new = tuple.__new__
# value -> enum member, without Enum.__call__ (about 1 us per lookup)
_OPCODE_OF = {int(m): m for m in Opcode}
_STATUS_OF = {int(m): m for m in Status}
_WC_FLAG_IMM = lib.RT_WC_FLAG_IMM
assert _OPCODE_OF[lib.RT_OP_SEND] is Opcode.SEND and _STATUS_OF[0] is Status.SUCCESS


def _wc_layout():
    """struct.Struct for a row of struct rt_wc, in field order wr_id,
    byte_len, opcode, status, imm, flags, peer, ep_id, or None when the
    compiled layout is not the plain one (then cdata access is used)."""
    import struct
    st = struct.Struct("=QQIIIIII")
    want = [("wr_id", 0), ("byte_len", 8), ("opcode", 16), ("status", 20), ("imm", 24),
            ("flags", 28), ("peer", 32), ("ep_id", 36)]
    size = ffi.sizeof("struct rt_wc")
    if size >= st.size and all(ffi.offsetof("struct rt_wc", f) == o for f, o in want):
        # trailing fields or padding a newer core may add are skipped
        return struct.Struct("=QQIIIIII%dx" % (size - st.size)), size
    return None, size


_WC_ROW, _WC_SIZE = _wc_layout()


def _wc_fields(w) -> tuple:
    """The fields of one struct rt_wc (cdata), in _WC_ROW's order."""
    return (w.wr_id, w.byte_len, w.opcode, w.status, w.imm, w.flags, w.peer, w.ep_id)


def _completion(eps: dict, row: tuple) -> Completion:
    """Build a Completion from struct rt_wc's fields (_WC_ROW order); values
    a newer core reports that the enums do not know stay plain ints.  On
    the per-message path: keep it cheap (the peer dict is read directly)."""
    wr_id, byte_len, op, st, imm, flags, peer_id, ep_id = row
    peer = None
    if peer_id != _PEER_NONE:
        ep = eps.get(ep_id)
        if ep is not None:
            peer = ep._peers.get(peer_id) or ep._peer_for_id(peer_id)
    return _tuple_new(Completion, (
        wr_id, _OPCODE_OF.get(op, op), _STATUS_OF.get(st, st), byte_len,
        imm if flags & _WC_FLAG_IMM else None, peer, ep_id))


def _make_completion(ctx: "Context", wc, wr_id: int | None = None) -> Completion:
    row = _wc_fields(wc)
    if wr_id is not None:
        row = (wr_id,) + row[1:]
    return _completion(ctx._eps, row)


_FAILURE_CLASS = {Status.TIMEOUT: CompletionTimeoutError,
                  Status.RNR_TIMEOUT: CompletionTimeoutError,
                  Status.PEER_FAILED: CompletionPeerError}


def _failure(what: str, comp: Completion, hint: str = "") -> CompletionError:
    st = comp.status
    desc = st.description if isinstance(st, Status) else _cstr(lib.rt_wc_status_str(st))
    name = getattr(st, "name", st)
    cls = _FAILURE_CLASS.get(st, CompletionError)
    return cls(f"{what} failed: {name} ({desc}){hint}", completion=comp)


# --------------------------------------------------------------------------
# log sink: C messages go to logging.getLogger("rtransport")

_PY_LEVELS = {0: logging.DEBUG, 1: logging.INFO, 2: logging.WARNING, 3: logging.ERROR}
_log_installed = False
_log_lock = threading.Lock()


@ffi.def_extern()
def _rt_py_log(level, msg, arg):  # called from C, possibly from the progress thread
    try:
        pylevel = _PY_LEVELS.get(level, logging.ERROR)
        if log.isEnabledFor(pylevel):
            log.log(pylevel, "%s", _cstr(msg))
    except Exception:  # never let an exception propagate into C
        pass


def _c_log_level() -> int:
    """The lowest C level the "rtransport" logger would emit now."""
    eff = log.getEffectiveLevel()
    for c, py in sorted(_PY_LEVELS.items()):
        if py >= eff:
            return c
    return 4


def _install_log_sink():
    """Route C messages to logging; called at each Context creation.

    C filters by level first (rt_set_log_level): the sink runs in the
    progress thread with the engine's lock held and must take the GIL, so
    an unwanted debug message would stall the engine for up to a GIL
    switch interval (5 ms).  Lower the "rtransport" logger's level before
    creating a Context to see debug messages."""
    global _log_installed
    if os.environ.get("RT_PY_LOG", "1") == "0":
        return
    lib.rt_set_log_level(_c_log_level())
    if _log_installed:
        return
    with _log_lock:
        if not _log_installed:
            lib.rt_set_log(lib._rt_py_log, ffi.NULL)
            _log_installed = True


@atexit.register
def _uninstall_log_sink():
    # C threads must not call into Python once the interpreter finalizes.
    global _log_installed
    if _log_installed:
        lib.rt_set_log(ffi.NULL, ffi.NULL)
        _log_installed = False


_warned: set = set()


def _warn_once(key, msg, *args):
    if key in _warned:
        return
    _warned.add(key)
    log.warning(msg, *args)


# --------------------------------------------------------------------------
# base class


class _Resource:
    """Common lifetime handling: context manager, idempotent close."""

    _ptr = None
    _what = "object"

    def _check(self):
        p = self._ptr
        if p is None:
            raise ClosedError(f"{self._what} is closed")
        return p

    @property
    def closed(self) -> bool:
        return self._ptr is None

    def __enter__(self):
        self._check()
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
            return
        # the block is already failing: a close error (e.g. a region still
        # in use by a posted receive) must not replace the user's exception
        try:
            self.close()
        except RTError as e:
            log.warning("closing %s while leaving a failed block: %s", self._what, e)

    def close(self):  # pragma: no cover - overridden
        raise NotImplementedError

    def _close_quiet(self):
        try:
            self.close()
        except Exception:
            log.debug("closing %s failed", self._what, exc_info=True)

    def _invalidate(self):
        """The C object was freed by a parent: forget the pointer."""
        self._ptr = None

    def __del__(self, _finalizing=sys.is_finalizing):
        # Never free C objects while the interpreter is shutting down: the
        # order in which modules and objects go away is then arbitrary.
        try:
            if self._ptr is None or _finalizing():
                return
            self._close_quiet()
        except Exception:
            pass


# --------------------------------------------------------------------------
# Context

_TRISTATE = {"auto": lib.RT_AUTO, "on": lib.RT_ON, "off": lib.RT_OFF,
             True: lib.RT_ON, False: lib.RT_OFF}
_PROGRESS = {"thread": lib.RT_PROGRESS_THREAD, "manual": lib.RT_PROGRESS_MANUAL}
_CONFIG_FIELDS = {name: f.type for name, f in ffi.typeof("struct rt_config").fields}
_STRING_FIELDS = {"bind_addr", "cc", "extra_addrs"}
# keyword arguments with their own parameter (and therefore not in **more)
_NAMED = ("bind", "port", "mtu", "num_paths", "progress", "busy_poll_us",
          "timeout_ms", "rnr_timeout_ms", "cc", "checksum", "gso", "gro", "fault")
_MORE = tuple(sorted(n for n in _CONFIG_FIELDS
                     if n not in ("size", "bind_addr") and n not in _NAMED))
_ALL_KWARGS = tuple(sorted(_NAMED + _MORE))

_live_contexts: "weakref.WeakSet[Context]" = weakref.WeakSet()


def _tristate(value, name):
    key = value.lower() if isinstance(value, str) else value
    if isinstance(key, int) and not isinstance(key, bool) and key in (0, 1, 2):
        return key
    try:
        return _TRISTATE[key]
    except (KeyError, TypeError):
        raise InvalidArgument(f"{name} must be 'auto', 'on', 'off' or a bool, "
                              f"got {value!r}") from None


class Context(_Resource):
    """A transport context: UDP sockets, memory regions, progress engine.

    Keyword arguments map to ``struct rt_config`` fields; ``None`` keeps
    the C default.  ``progress`` is ``"thread"`` (a C progress thread) or
    ``"manual"`` (waits on a completion queue drive progress);
    ``gso``/``gro`` are ``"auto"``, ``"on"`` or ``"off"``; ``fault`` is a
    :class:`FaultConfig` or a dict with its field names.  Other
    ``rt_config`` fields (``rto_min_us``, ``sndbuf``, ``extra_addrs``, ...)
    are accepted by name.
    """

    _what = "Context"

    def __init__(self, bind: str | None = "127.0.0.1", port: int | None = 0,
                 mtu: int | None = 1500, num_paths: int | None = None,
                 progress: str | int | None = "thread",
                 busy_poll_us: int | None = None, timeout_ms: int | None = None,
                 rnr_timeout_ms: int | None = None, cc: str | None = None,
                 checksum: bool | None = False, gso: str | bool | None = "auto",
                 gro: str | bool | None = "auto",
                 fault: "FaultConfig | dict | None" = None, **more):
        self._ptr = None
        bad = sorted(set(more) - set(_MORE))
        if bad:
            raise InvalidType(
                f"Context() got unexpected keyword argument(s) {', '.join(bad)}; "
                f"valid names: {', '.join(_ALL_KWARGS)}")

        values: dict[str, Any] = {
            "bind_addr": bind, "port": port, "mtu": mtu, "num_paths": num_paths,
            "busy_poll_us": busy_poll_us, "timeout_ms": timeout_ms,
            "rnr_timeout_ms": rnr_timeout_ms, "cc": cc,
        }
        if progress is not None:
            if isinstance(progress, str):
                try:
                    values["progress"] = _PROGRESS[progress.lower()]
                except KeyError:
                    raise InvalidArgument("progress must be 'thread' or 'manual', "
                                          f"got {progress!r}") from None
            else:
                values["progress"] = _index(progress, "progress")
        if checksum is not None:
            values["checksum"] = 1 if checksum else 0
        if gso is not None:
            values["gso"] = _tristate(gso, "gso")
        if gro is not None:
            values["gro"] = _tristate(gro, "gro")
        if fault is not None:
            if isinstance(fault, dict):
                fault = FaultConfig.from_dict(fault)
            if not isinstance(fault, FaultConfig):
                raise InvalidType("fault must be a FaultConfig or a dict, not "
                                  f"{type(fault).__name__}")
            values.update(fault.to_config())
        values.update(more)

        cfg = ffi.new("struct rt_config *")
        lib.rt_config_init(cfg)
        keep = []  # C strings must outlive rt_ctx_create
        requested = {}
        for name, value in values.items():
            if value is None:
                continue
            if name in _STRING_FIELDS:
                if name == "extra_addrs" and not isinstance(value, (str, bytes)):
                    value = ",".join(str(v) for v in value)
                if isinstance(value, str):
                    value = value.encode()
                if not isinstance(value, bytes):
                    raise InvalidType(f"{name} must be a str, not {type(value).__name__}")
                s = ffi.new("char[]", value)
                keep.append(s)
                setattr(cfg, name, s)
                continue
            try:
                setattr(cfg, name, value)
            except OverflowError as e:
                raise InvalidArgument(f"{_pyname(name)}={value!r}: {e}") from None
            except TypeError as e:
                raise InvalidType(f"{_pyname(name)}={value!r}: {e}") from None
            requested[name] = value

        _install_log_sink()
        out = ffi.new("rt_ctx **")
        check(lib.rt_ctx_create(cfg, out))
        del keep
        self._ptr = out[0]
        self._lock = threading.RLock()
        self._eps: "weakref.WeakValueDictionary[int, Endpoint]" = weakref.WeakValueDictionary()
        self._cqs: "weakref.WeakSet[CompletionQueue]" = weakref.WeakSet()
        self._mrs: "weakref.WeakSet[MemoryRegion]" = weakref.WeakSet()
        self._zombies: list = []  # (rt_mr*, obj, cdata) of busy dropped MRs
        _live_contexts.add(self)
        info = self.info()
        self._port = info["port"]
        self._bind = info["bind_addr"]
        self._log_info(info, values, requested)

    # -- properties

    @property
    def port(self) -> int:
        """The base (receive) UDP port actually bound."""
        return self._port

    @property
    def bind(self) -> str:
        """The bound IPv4 address."""
        return self._bind

    def __repr__(self):
        state = "closed" if self._ptr is None else f"{self._bind}:{self._port}"
        return f"<rtransport.Context {state}>"

    # -- factories

    def endpoint(self, cq: "CompletionQueue | None" = None) -> "Endpoint":
        """Create an endpoint reporting to ``cq`` (None: a private CQ)."""
        return Endpoint(self, cq)

    def register(self, buffer, access: "Access | int" = Access.LOCAL_WRITE) -> "MemoryRegion":
        """Register a writable buffer (bytearray, numpy array, mmap, ...)."""
        return MemoryRegion(self, buffer, access)

    def completion_queue(self) -> "CompletionQueue":
        return CompletionQueue(self)

    # -- queries

    def info(self) -> dict:
        """What the machine offers and what this context uses (rt_ctx_info)."""
        p = self._check()
        info = ffi.new("struct rt_ctx_info *")
        check(lib.rt_ctx_info(p, info, ffi.sizeof("struct rt_ctx_info")))
        return _struct_to_dict(info, _INFO_FIELDS)

    def progress(self) -> int:
        """Drive progress once from this thread; returns events processed."""
        return check(lib.rt_ctx_progress(self._check()))

    # -- lifetime

    def close(self):
        """Close endpoints, then completion queues, then regions, then the
        context itself.  Safe to call twice."""
        if self._ptr is None:
            return
        with self._lock:
            ptr = self._ptr
            if ptr is None:
                return
            eps = list(self._eps.values())
            for ep in eps:
                ep._close_quiet()
            cqs = list(self._cqs)
            for cq in cqs:
                cq._close_quiet()
            mrs = list(self._mrs)
            for mr in mrs:
                mr._close_quiet()
            self._ptr = None
            lib.rt_ctx_destroy(ptr)
            # whatever could not be closed above was freed by rt_ctx_destroy
            for obj in itertools.chain(eps, cqs, mrs):
                obj._invalidate()
            self._zombies.clear()
        _live_contexts.discard(self)

    def _reap_zombies(self):
        if not self._zombies:
            return
        keep = []
        for z in self._zombies:
            if lib.rt_mr_dereg(z[0]) == lib.RT_ERR_BUSY:
                keep.append(z)
        self._zombies = keep

    # -- logging

    def _log_info(self, info, values, requested):
        log.info(
            "context %s:%d mtu=%d (if_mtu=%d) max_payload=%d paths=%d "
            "progress=%s cc=%s gso=%s gro=%s mmsg=%s sndbuf=%d rcvbuf=%d cpus=%d",
            info["bind_addr"], info["port"], info["mtu"], info["if_mtu"],
            info["max_payload"], info["num_paths"],
            "manual" if info["progress"] == lib.RT_PROGRESS_MANUAL else "thread",
            info["cc"], _onoff(info["gso_used"]), _onoff(info["gro_used"]),
            _onoff(info["mmsg_supported"]), info["sndbuf"], info["rcvbuf"],
            info["num_cpus"])
        for feat in ("gso", "gro"):
            if values.get(feat) == lib.RT_OFF:
                continue
            up = feat.upper()
            if not info[f"{feat}_supported"]:
                _warn_once((feat, "unsupported"),
                           "UDP %s is not supported on this system; falling back "
                           "to one packet per system call", up)
            elif not info[f"{feat}_used"]:
                _warn_once((feat, "unused"),
                           "UDP %s is supported but not used by this context", up)
        for buf in ("sndbuf", "rcvbuf"):
            want = requested.get(buf) or 0
            if want and info[buf] < want:
                sysctl = "wmem_max" if buf == "sndbuf" else "rmem_max"
                _warn_once((buf, want, info[buf]),
                           "%s: requested %d bytes, granted %d (raise "
                           "net.core.%s, now %d)", "SO_" + buf.upper(),
                           want, info[buf], sysctl, info[f"{buf}_max"])


def _pyname(field: str) -> str:
    return "bind" if field == "bind_addr" else field


def _onoff(v) -> str:
    return "on" if v else "off"


def probe(bind: str | None = None) -> dict:
    """Probe the machine without creating a context (rt_probe)."""
    info = ffi.new("struct rt_ctx_info *")
    keep = ffi.new("char[]", bind.encode()) if bind is not None else ffi.NULL
    check(lib.rt_probe(keep, info, ffi.sizeof("struct rt_ctx_info")))
    return _struct_to_dict(info, _INFO_FIELDS)


# --------------------------------------------------------------------------
# MemoryRegion


class MemoryRegion(_Resource):
    """A registered memory region over a writable buffer-protocol object.

    The object (and the memory behind it) is kept alive until the region
    is closed; a bytearray cannot be resized while registered.
    """

    _what = "MemoryRegion"

    def __init__(self, ctx: Context, buffer, access: "Access | int" = Access.LOCAL_WRITE):
        self._ptr = None
        if not isinstance(ctx, Context):
            raise InvalidType(f"ctx must be a Context, not {type(ctx).__name__}")
        ctxp = ctx._check()
        acc = _index(access, "access")
        if acc & ~int(Access.LOCAL_WRITE | Access.REMOTE_WRITE |
                      Access.REMOTE_READ | Access.REMOTE_ATOMIC):
            raise InvalidArgument(f"unknown access flags {acc:#x}")
        try:
            mv = memoryview(buffer)
        except TypeError:
            raise InvalidType(
                f"cannot register a {type(buffer).__name__}: it does not support "
                "the buffer protocol (use a bytearray, numpy array, memoryview "
                "or mmap)") from None
        with mv:
            if mv.readonly:
                kind = "bytes objects are" if isinstance(buffer, bytes) else \
                    f"this {type(buffer).__name__} is"
                raise InvalidArgument(
                    f"register a writable buffer (bytearray/numpy array); {kind} "
                    "read-only")
            if not mv.c_contiguous:
                raise InvalidArgument(
                    "cannot register a non-contiguous buffer; use "
                    "np.ascontiguousarray(...) (or copy it into a bytearray)")
            nbytes = mv.nbytes
        try:
            cdata = ffi.from_buffer(buffer, require_writable=True)
        except (TypeError, ValueError, BufferError) as e:
            raise InvalidArgument(
                f"cannot register this {type(buffer).__name__}: {e}; use "
                "np.ascontiguousarray(...) or a bytearray") from None
        ctx._reap_zombies()
        out = ffi.new("rt_mr **")
        check(lib.rt_mr_reg(ctxp, ffi.cast("void *", cdata), nbytes, acc, out))
        self._ptr = out[0]
        self._ctx = ctx
        self._obj = buffer
        self._cdata = cdata
        self._access = Access(acc)
        self._length = lib.rt_mr_len(self._ptr)
        self._rkey = lib.rt_mr_rkey(self._ptr)
        self._addr = int(ffi.cast("uintptr_t", lib.rt_mr_addr(self._ptr)))
        self._desc = None
        ctx._mrs.add(self)

    @property
    def context(self) -> Context:
        return self._ctx

    @property
    def buffer(self):
        """The registered object."""
        self._check()
        return self._obj

    @property
    def rkey(self) -> int:
        self._check()
        return self._rkey

    @property
    def length(self) -> int:
        self._check()
        return self._length

    def __len__(self):
        return self.length

    @property
    def addr(self) -> int:
        self._check()
        return self._addr

    @property
    def access(self) -> Access:
        self._check()
        return self._access

    def descriptor(self) -> bytes:
        """The RT_MR_DESC_SIZE-byte remote descriptor; send it to peers so
        they can name this region in one-sided operations."""
        p = self._check()
        if self._desc is None:
            buf = ffi.new("unsigned char[]", _DESC_SIZE)
            check(lib.rt_mr_descriptor(p, buf, _DESC_SIZE))
            self._desc = bytes(ffi.buffer(buf, _DESC_SIZE))
        return self._desc

    def close(self):
        """Deregister (idempotent).  Raises BusyError while operations on
        the region are in flight."""
        p = self._ptr
        if p is None:
            return
        rc = lib.rt_mr_dereg(p)
        if rc < 0 and rc != lib.RT_ERR_CLOSED:
            check(rc)
        self._ptr = None
        self._ctx._mrs.discard(self)

    def __del__(self, _finalizing=sys.is_finalizing):
        try:
            p = self._ptr
            if p is None or _finalizing():
                return
            rc = lib.rt_mr_dereg(p)
            self._ptr = None
            if rc == lib.RT_ERR_BUSY:
                # Operations still use the memory: keep it alive until the
                # context goes away.
                self._ctx._zombies.append((p, self._obj, self._cdata))
        except Exception:
            pass

    def __repr__(self):
        if self._ptr is None:
            return "<rtransport.MemoryRegion closed>"
        return (f"<rtransport.MemoryRegion len={self._length} rkey={self._rkey:#x} "
                f"access={self._access!s}>")


# --------------------------------------------------------------------------
# CompletionQueue


class _InternalOp:
    """A send/recv posted by Endpoint.send()/recv()."""

    __slots__ = ("kind", "ep", "mr", "result")

    def __init__(self, kind: str, ep: "Endpoint", mr: MemoryRegion):
        self.kind = kind
        self.ep = ep
        self.mr = mr
        self.result: Completion | None = None

    def complete(self, wc) -> Completion | None:
        """Handle the C completion; return a Completion that belongs to
        the user (if any)."""
        ep = self.ep
        comp = _make_completion(ep._ctx, wc, wr_id=0)
        if self.kind == "send":
            self.result = comp
            ep._release_send_buffer(self.mr)
            return None
        ep._recv_pending.discard(wc.wr_id)
        if comp.opcode == Opcode.RECV_WRITE_IMM:
            # A write-with-immediate consumed our internal receive: the
            # notification belongs to the user (with wr_id 0).
            size = self.mr._length
            ep._release_recv_buffer(self.mr)
            ep._refill_recv(size)
            return comp
        if comp.status == Status.FLUSHED:
            ep._release_recv_buffer(self.mr)
            return None
        data = b""
        if comp.ok:
            n = min(comp.byte_len, self.mr._length)
            data = bytes(ffi.buffer(self.mr._cdata, n))
        size = self.mr._length
        if comp.status == Status.LOC_LEN_ERR:
            # the message did not fit: its replacement is big enough for
            # that message (byte_len tells its size), so a resend lands
            size = max(size, min(comp.byte_len, _RECV_GROW_MAX))
        ep._release_recv_buffer(self.mr)
        ep._recv_ready.append((data, comp))
        ep._refill_recv(size)
        return None


class CompletionQueue(_Resource):
    """A completion queue; one or more endpoints report to it."""

    _what = "CompletionQueue"

    def __init__(self, ctx: Context):
        self._ptr = None
        if not isinstance(ctx, Context):
            raise InvalidType(f"ctx must be a Context, not {type(ctx).__name__}")
        out = ffi.new("rt_cq **")
        check(lib.rt_cq_create(ctx._check(), out))
        self._ptr = out[0]
        self._ctx = ctx
        # Completions consumed by blocking helpers that belong to the user;
        # poll()/wait() return them first.
        self._backlog: deque[Completion] = deque()
        # Internal (helper) operations in flight: wr_id -> _InternalOp.
        self._ops: dict[int, _InternalOp] = {}
        self._endpoints: "weakref.WeakSet[Endpoint]" = weakref.WeakSet()
        self._owner: "weakref.ref | None" = None  # endpoint of a private CQ
        self._wc = ffi.new("struct rt_wc[]", _WC_BUF)
        self._wc_mv = memoryview(ffi.buffer(self._wc))  # made once: ~0.4 us a poll
        self._wc_lock = threading.Lock()
        self._cond = threading.Condition(threading.Lock())
        self._pumping = False  # a thread is inside rt_cq_wait (see _drive)
        self._followers = 0    # threads waiting in _drive for the one inside
        self._active = 0       # threads inside rt_cq_poll/rt_cq_wait
        self._signals = 0      # signal() calls: wait() returns when this moves
        ctx._cqs.add(self)

    @property
    def context(self) -> Context:
        return self._ctx

    def __len__(self):
        """Completions waiting: the Python-side backlog plus rt_cq_depth()."""
        return len(self._backlog) + lib.rt_cq_depth(self._check())

    def __repr__(self):
        if self._ptr is None:
            return "<rtransport.CompletionQueue closed>"
        return f"<rtransport.CompletionQueue depth={len(self)}>"

    # -- internals

    def _take_backlog(self, n: int) -> list:
        out = []
        bl = self._backlog
        while bl and len(out) < n:
            try:
                out.append(bl.popleft())
            except IndexError:
                break
        return out

    def _call(self, fn, n: int, *args):
        """Run rt_cq_poll/rt_cq_wait into a wc array and dispatch.

        Returns (user completions, number taken from C).  Calls are
        counted so that close() never frees the queue under a caller.
        """
        cond = self._cond
        with cond:
            p = self._check()
            self._active += 1
        try:
            locked = n <= _WC_BUF and self._wc_lock.acquire(blocking=False)
            try:
                buf = self._wc if locked else ffi.new("struct rt_wc[]", n)
                got = check(fn(p, buf, n, *args))
                return self._dispatch(buf, got), got
            finally:
                if locked:
                    self._wc_lock.release()
        finally:
            with cond:
                self._active -= 1
                if self._ptr is None:
                    cond.notify_all()

    def _dispatch(self, buf, got: int) -> list:
        if not got:
            return []
        out = []
        ctx = self._ctx
        internal = False
        if _WC_ROW is not None:
            rows = _WC_ROW.iter_unpack(self._wc_mv[:got * _WC_SIZE] if buf is self._wc
                                       else ffi.buffer(buf, got * _WC_SIZE))
        else:
            rows = (_wc_fields(buf[i]) for i in range(got))
        eps = ctx._eps
        for i, row in enumerate(rows):
            wr = row[0]
            if wr & INTERNAL_WR_ID_BIT:
                op_ = self._ops.pop(wr, None)
                if op_ is None:
                    continue  # e.g. flushed work of a closed endpoint
                internal = True
                try:
                    c = op_.complete(buf[i])
                except Exception:
                    log.exception("internal completion handling failed")
                    c = None
                if c is not None:
                    out.append(c)
                continue
            out.append(_completion(eps, row))
        if internal:
            self._wake()  # a helper in another thread may wait for this one
        return out

    def _wake(self):
        with self._cond:
            self._cond.notify_all()

    def _drive(self, done: Callable[[], bool], deadline: float, n: int = 16,
               collect: bool = False) -> list:
        """Wait for completions until ``done()`` or ``deadline``.

        Leader/follower: one thread at a time waits inside rt_cq_wait();
        the others sleep on a condition variable and are woken whenever
        the leader has dispatched something, so a completion taken by one
        thread on behalf of another is noticed at once.  The leader's user
        completions are returned when ``collect`` is true, else they go to
        the backlog.
        """
        cond = self._cond
        while True:
            with cond:
                while True:
                    self._check()
                    if done():
                        return []
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return []
                    if not self._pumping:
                        self._pumping = True
                        break
                    self._followers += 1
                    try:
                        cond.wait(min(remaining, _WAIT_SLICE))
                    finally:
                        self._followers -= 1
            user = []
            try:
                us = max(1, int(min(remaining, _WAIT_SLICE) * 1e6))
                user, _ = self._call(lib.rt_cq_wait, n, us)
                if user and not collect:
                    self._backlog.extend(user)
            finally:
                with cond:
                    self._pumping = False
                    cond.notify_all()
            if user and collect:
                return user

    # -- public

    def _fast(self, n: int, us: int):
        """One rt_cq_poll (us < 0) or rt_cq_wait into the shared buffer,
        if no other thread is using it.  Holding the buffer's lock is what
        keeps close() from destroying the queue under this call.  Returns
        (the user's completions, rows taken from C), or None when the
        buffer is busy (the caller then takes the general path)."""
        lock = self._wc_lock
        if not lock.acquire(False):
            return None
        try:
            p = self._ptr
            if p is None:
                raise ClosedError(f"{self._what} is closed")
            buf = self._wc
            if n > _WC_BUF:
                n = _WC_BUF
            got = lib.rt_cq_poll(p, buf, n) if us < 0 else lib.rt_cq_wait(p, buf, n, us)
            if got < 0:
                check(got)
            return self._dispatch(buf, got), got
        finally:
            lock.release()

    def poll(self, n: int = 16) -> list[Completion]:
        """Take up to ``n`` completions without blocking."""
        if type(n) is not int or not 1 <= n <= _N_MAX:
            n = _count(n)
        out = None
        if not self._backlog and n <= _WC_BUF:
            r = self._fast(n, -1)
            if r is not None:
                out, got = r
                if got < n or len(out) >= n:
                    return out
                # the buffer filled with rows that were not the user's
                # (helpers' completions, closed endpoints'): keep taking
        if out is None:
            self._check()
            out = self._take_backlog(n)
        while len(out) < n:
            k = n - len(out)
            user, got = self._call(lib.rt_cq_poll, k)
            out.extend(user)
            if got < k:
                break
        return out

    def wait(self, timeout: float | None = None, n: int = 16) -> list[Completion]:
        """Wait until at least one completion is available, at most
        ``timeout`` seconds (None: 60 s).  Returns [] on timeout."""
        if type(n) is not int or not 1 <= n <= _N_MAX:
            n = _count(n)
        timeout = _timeout(timeout, DEFAULT_WAIT_TIMEOUT)
        if self._ptr is None:
            raise ClosedError(f"{self._what} is closed")
        backlog = self._backlog
        if timeout <= 0:
            return self.poll(n)
        deadline = time.monotonic() + timeout
        sig = self._signals
        while True:
            if backlog:  # queued for us by another thread's helper meanwhile
                return self._take_backlog(n)
            # fast path: no other thread is waiting here, so this one
            # becomes the leader and waits inside rt_cq_wait() directly
            # (slices of _WAIT_SLICE); threads arriving meanwhile follow
            # in _drive() and are woken when it returns
            out = None
            if not self._pumping:
                cond = self._cond
                with cond:
                    lead = not self._pumping
                    if lead:
                        self._pumping = True
                if lead:
                    try:
                        us = int(min(timeout, _WAIT_SLICE) * 1e6) or 1
                        r = self._fast(n, us)
                        out = None if r is None else r[0]
                    finally:
                        with cond:
                            self._pumping = False
                            if self._followers:
                                cond.notify_all()
                if out is not None:
                    if out:
                        return out
                    timeout = deadline - time.monotonic()
                    if timeout <= 0 or self._signals != sig:
                        return self._take_backlog(n)
                    continue
            self._check()
            out = self._take_backlog(n)
            if out:
                return out
            user = self._drive(lambda: bool(backlog) or self._signals != sig, deadline, n,
                               collect=True)
            if user:
                return user
            if time.monotonic() >= deadline or self._signals != sig:
                return self._take_backlog(n)
            timeout = deadline - time.monotonic()

    def signal(self) -> None:
        """Make every thread now blocked in :meth:`wait` on this queue
        return at once, with what is available (possibly ``[]``), like
        libfabric's ``fi_cq_signal``.  Waits that start later are not
        affected.  Meant for shutting a waiting thread down from another
        one; :meth:`close` does it too."""
        with self._cond:
            self._signal_locked(self._check())

    def _signal_locked(self, p) -> None:
        """signal() with self._cond held and p the queue's C pointer."""
        self._signals += 1
        check(lib.rt_cq_signal(p))
        self._cond.notify_all()

    def __iter__(self):
        """Iterate over completions available now (non-blocking)."""
        while True:
            batch = self.poll()
            if not batch:
                return
            yield from batch

    def close(self):
        """Destroy the queue (idempotent).  Raises BusyError while
        endpoints still report to it."""
        p = self._ptr
        if p is None:
            return
        users = [ep for ep in list(self._endpoints) if not ep.closed]
        if users:
            raise BusyError(f"CompletionQueue is still used by {len(users)} "
                            "open endpoint(s); close them first",
                            code=lib.RT_ERR_BUSY)
        cond = self._cond
        with cond:
            p = self._ptr
            if p is None:
                return
            self._ptr = None  # no new callers from here on
            self._signal_locked(p)  # threads inside rt_cq_wait return now
            # (and at worst within one wait slice)
            limit = time.monotonic() + 10 * _WAIT_SLICE + 1.0
            while self._active and time.monotonic() < limit:
                cond.wait(_WAIT_SLICE)
        # a fast-path poll/wait holds the buffer's lock while inside C
        locked = self._wc_lock.acquire(timeout=max(0.0, limit - time.monotonic()))
        if locked:
            self._wc_lock.release()
        rc = lib.rt_cq_destroy(p)
        if rc < 0 and rc != lib.RT_ERR_CLOSED:
            self._ptr = p
            check(rc)
        self._ops.clear()
        self._ctx._cqs.discard(self)


# --------------------------------------------------------------------------
# Endpoint

_SEND_POOL_MAX = 4


def _round_buffer(n: int) -> int:
    size = 4096
    while size < n:
        size <<= 1
    return size


class Endpoint(_Resource):
    """A connectionless reliable-datagram endpoint (talks to many peers)."""

    _what = "Endpoint"

    def __init__(self, ctx: Context, cq: CompletionQueue | None = None):
        self._ptr = None
        if not isinstance(ctx, Context):
            raise InvalidType(f"ctx must be a Context, not {type(ctx).__name__}")
        ctxp = ctx._check()
        owns = cq is None
        if owns:
            cq = CompletionQueue(ctx)
        else:
            if not isinstance(cq, CompletionQueue):
                raise InvalidType(f"cq must be a CompletionQueue, not {type(cq).__name__}")
            if cq._ctx is not ctx:
                raise InvalidArgument("cq belongs to another Context")
        try:
            out = ffi.new("rt_ep **")
            check(lib.rt_ep_create(ctxp, cq._check(), out))
        except BaseException:
            if owns:
                cq._close_quiet()
            raise
        self._ptr = out[0]
        self._ctx = ctx
        self._cq = cq
        self._owns_cq = owns
        self._id = lib.rt_ep_id(self._ptr)
        buf = ffi.new("unsigned char[]", _ADDR_SIZE)
        check(lib.rt_ep_address(self._ptr, buf, _ADDR_SIZE))
        self._address = bytes(ffi.buffer(buf, _ADDR_SIZE))
        self._peers: dict[int, Peer] = {}
        self._send_free: list[MemoryRegion] = []
        self._recv_free: list[MemoryRegion] = []
        self._internal_mrs: "weakref.WeakSet[MemoryRegion]" = weakref.WeakSet()
        self._recv_pending: set[int] = set()
        self._recv_depth = 1  # internal receive buffers recv() keeps posted
        self._recv_ready: deque = deque()
        if owns:
            cq._owner = weakref.ref(self)
        cq._endpoints.add(self)
        ctx._eps[self._id] = self

    # -- properties

    @property
    def context(self) -> Context:
        return self._ctx

    @property
    def address(self) -> bytes:
        """The RT_ADDR_SIZE-byte address; give it to peers' connect()."""
        self._check()
        return self._address

    @property
    def id(self) -> int:
        return self._id

    @property
    def cq(self) -> CompletionQueue:
        return self._cq

    def __repr__(self):
        state = "closed" if self._ptr is None else f"peers={len(self._peers)}"
        return f"<rtransport.Endpoint id={self._id} {state}>"

    # -- peers

    def connect(self, address) -> Peer:
        """Resolve a peer address (bytes, or an Endpoint/Peer having
        .address) into a :class:`Peer`.  Idempotent."""
        p = self._check()
        if isinstance(address, (Endpoint, Peer)):
            address = address.address
        addr = _bytes_arg(address, "address")
        out = ffi.new("rt_peer_t *")
        check(lib.rt_ep_connect(p, ffi.from_buffer(addr), len(addr), out))
        pid = out[0]
        peer = self._peers.get(pid)
        if peer is None:
            peer = self._peers.setdefault(pid, Peer(self, pid, addr))
        return peer

    def _peer_for_id(self, pid: int) -> Peer | None:
        peer = self._peers.get(pid)
        if peer is not None:
            return peer
        p = self._ptr
        if p is None:
            return None
        buf = ffi.new("unsigned char[]", _ADDR_SIZE)
        if lib.rt_ep_peer_address(p, pid, buf, _ADDR_SIZE) < 0:
            return None
        return self._peers.setdefault(pid, Peer(self, pid, bytes(ffi.buffer(buf, _ADDR_SIZE))))

    # -- argument checks

    def _peer_arg(self, peer) -> int:
        if not isinstance(peer, Peer):
            raise InvalidType("peer must be a Peer (from Endpoint.connect() or "
                              f"Completion.peer), not {type(peer).__name__}")
        if peer._ep_ref() is not self:
            raise InvalidArgument(
                f"{peer!r} belongs to another endpoint; call "
                "connect(peer.address) on this endpoint first")
        return peer.id

    def _mr_arg(self, mr):
        if not isinstance(mr, MemoryRegion):
            raise InvalidType(f"mr must be a MemoryRegion, not {type(mr).__name__}")
        if mr._ptr is None:
            raise ClosedError("MemoryRegion is closed")
        if mr._ctx is not self._ctx:
            raise InvalidArgument("the MemoryRegion was registered with another Context")
        return mr._ptr

    def _fast_mr(self, mr, offset, length, wr_id):
        """The region's C pointer when a post can go straight to C: plain
        ints, a user wr_id, an open region of this context; else None (the
        checking path then explains what is wrong)."""
        if (type(mr) is MemoryRegion and type(offset) is int and type(length) is int
                and type(wr_id) is int and 0 <= wr_id < INTERNAL_WR_ID_BIT
                and mr._ctx is self._ctx):
            return mr._ptr
        return None

    @staticmethod
    def _range(mr: MemoryRegion, offset, length) -> tuple[int, int]:
        off = _u64(offset, "offset")
        if length is None:
            if off > mr._length:
                raise BoundsError(f"offset {off} is beyond the end of the region "
                                  f"({mr._length} bytes)", code=lib.RT_ERR_BOUNDS)
            return off, mr._length - off
        return off, _u64(length, "length")

    # -- two-sided

    def post_recv(self, mr: MemoryRegion, offset: int = 0, length: int | None = None,
                  wr_id: int = 0) -> None:
        """Post a receive buffer: ``length`` bytes of ``mr`` at ``offset``
        (None: the rest of the region)."""
        p = self._ptr
        mrp = self._fast_mr(mr, offset, length, wr_id)
        if p is not None and mrp is not None and _call_fast(
                lib.rt_post_recv, p, mrp, offset, length, wr_id):
            return
        p = self._check()
        mrp = self._mr_arg(mr)
        off, n = self._range(mr, offset, length)
        check(lib.rt_post_recv(p, mrp, off, n, _wr_id(wr_id)))

    def post_send(self, peer: Peer, mr: MemoryRegion, offset: int = 0,
                  length: int | None = None, wr_id: int = 0) -> None:
        """Send ``length`` bytes of ``mr`` at ``offset`` to ``peer``."""
        p = self._ptr
        mrp = self._fast_mr(mr, offset, length, wr_id)
        if (p is not None and mrp is not None and type(peer) is Peer
                and peer._ep_ref() is self
                and _call_fast(lib.rt_post_send, p, peer.id, mrp, offset, length, wr_id)):
            return
        p = self._check()
        pid = self._peer_arg(peer)
        mrp = self._mr_arg(mr)
        off, n = self._range(mr, offset, length)
        check(lib.rt_post_send(p, pid, mrp, off, n, _wr_id(wr_id)))

    # -- one-sided

    def post_write(self, peer: Peer, mr: MemoryRegion, offset: int = 0,
                   length: int | None = None, *, remote, remote_offset: int = 0,
                   imm: int | None = None, wr_id: int = 0) -> None:
        """Write local bytes into the remote region ``remote`` at
        ``remote_offset``; with ``imm`` the target gets a RECV_WRITE_IMM
        completion."""
        p = self._check()
        pid = self._peer_arg(peer)
        mrp = self._mr_arg(mr)
        off, n = self._range(mr, offset, length)
        desc = _remote_desc(remote)
        roff = _u64(remote_offset, "remote_offset")
        has_imm = 0 if imm is None else 1
        immv = 0 if imm is None else _u32(imm, "imm")
        check(lib.rt_post_write(p, pid, mrp, off, n, ffi.from_buffer(desc), len(desc), roff,
                                has_imm, immv, _wr_id(wr_id)))

    def post_read(self, peer: Peer, mr: MemoryRegion, offset: int = 0,
                  length: int | None = None, *, remote, remote_offset: int = 0,
                  wr_id: int = 0) -> None:
        """Read remote bytes into ``mr`` at ``offset``."""
        p = self._check()
        pid = self._peer_arg(peer)
        mrp = self._mr_arg(mr)
        off, n = self._range(mr, offset, length)
        desc = _remote_desc(remote)
        roff = _u64(remote_offset, "remote_offset")
        check(lib.rt_post_read(p, pid, mrp, off, n, ffi.from_buffer(desc), len(desc), roff,
                               _wr_id(wr_id)))

    def _atomic(self, op, peer, mr, offset, remote, remote_offset, a, b, wr_id):
        p = self._check()
        pid = self._peer_arg(peer)
        mrp = self._mr_arg(mr)
        off = _u64(offset, "offset")
        desc = _remote_desc(remote)
        roff = _u64(remote_offset, "remote_offset")
        check(lib.rt_post_atomic(p, pid, mrp, off, ffi.from_buffer(desc), len(desc), roff, op,
                                 a, b, _wr_id(wr_id)))

    def post_atomic_fetch_add(self, peer: Peer, mr: MemoryRegion, offset: int, *,
                              remote, remote_offset: int = 0, add: int,
                              wr_id: int = 0) -> None:
        """Atomically add ``add`` to the 64-bit word at ``remote_offset``;
        the old value lands in ``mr`` at ``offset`` (8 bytes)."""
        self._atomic(lib.RT_OP_ATOMIC_FETCH_ADD, peer, mr, offset, remote,
                     remote_offset, _operand(add, "add"), 0, wr_id)

    def post_atomic_cmp_swap(self, peer: Peer, mr: MemoryRegion, offset: int, *,
                             remote, remote_offset: int = 0, compare: int,
                             swap: int, wr_id: int = 0) -> None:
        """If the remote word equals ``compare`` replace it by ``swap``; the
        old value lands in ``mr`` at ``offset`` (8 bytes)."""
        self._atomic(lib.RT_OP_ATOMIC_CMP_SWAP, peer, mr, offset, remote,
                     remote_offset, _operand(compare, "compare"),
                     _operand(swap, "swap"), wr_id)

    # -- blocking helpers

    def _new_internal_mr(self, size: int) -> MemoryRegion:
        try:
            buf = bytearray(size)
        except (MemoryError, OverflowError):
            raise OutOfMemory(f"cannot allocate an internal buffer of {size} bytes (for "
                              "send() data or recv()'s max_size); use a smaller size, or "
                              "post_send()/post_recv() with a region of your own") from None
        mr = MemoryRegion(self._ctx, buf, Access.LOCAL_WRITE)
        self._internal_mrs.add(mr)
        return mr

    def _take_buffer(self, pool: list, n: int) -> MemoryRegion:
        best = None
        for mr in pool:
            if mr._ptr is not None and mr._length >= n and (
                    best is None or mr._length < best._length):
                best = mr
        if best is not None:
            pool.remove(best)
            return best
        return self._new_internal_mr(_round_buffer(n))

    def _give_buffer(self, pool: list, mr: MemoryRegion):
        if self._ptr is None or mr._ptr is None:
            mr._close_quiet()
            return
        pool.append(mr)
        if len(pool) > _SEND_POOL_MAX:
            pool.sort(key=lambda m: m._length)
            pool.pop(0)._close_quiet()

    def _release_send_buffer(self, mr):
        self._give_buffer(self._send_free, mr)

    def _release_recv_buffer(self, mr):
        self._give_buffer(self._recv_free, mr)

    def _drive(self, done: Callable[[], bool], deadline: float):
        try:
            self._cq._drive(lambda: done() or self._ptr is None, deadline)
        except ClosedError:
            self._check()  # report the endpoint rather than its private CQ
            raise

    def _wait_until(self, pred: Callable[[], bool], deadline: float) -> bool:
        self._drive(pred, deadline)
        if pred():
            return True
        self._check()
        return False

    def send(self, peer: Peer, data, timeout: float = 10.0) -> None:
        """Send ``data`` (bytes-like) to ``peer`` and wait for its completion.

        Raises CompletionError if the send failed, RTTimeoutError if it did
        not complete within ``timeout`` seconds.  Other completions seen
        meanwhile stay available to cq.poll()/cq.wait().
        """
        p = self._check()
        pid = self._peer_arg(peer)
        timeout = _timeout(timeout, 10.0)
        try:
            src = memoryview(data)
        except TypeError:
            raise InvalidType(f"data must be bytes-like, not {type(data).__name__}") from None
        with src:
            if not src.c_contiguous:
                src = memoryview(src.tobytes())
            n = src.nbytes
            mr = self._take_buffer(self._send_free, n)
            if n:
                ffi.memmove(mr._cdata, src, n)
        wr = _next_internal_wr_id()
        op = _InternalOp("send", self, mr)
        cq = self._cq
        cq._ops[wr] = op
        rc = lib.rt_post_send(p, pid, mr._ptr, 0, n, wr)
        if rc < 0:
            cq._ops.pop(wr, None)
            self._release_send_buffer(mr)
            check(rc)
        deadline = time.monotonic() + timeout
        if not self._wait_until(lambda: op.result is not None, deadline):
            raise RTTimeoutError(f"send of {n} bytes to {peer!r} did not complete "
                                 f"within {timeout:g} s")
        if not op.result.ok:
            hint = (": send() returns once the message is acknowledged, so the receiving "
                    "endpoint needs a buffer posted first - post_recv(), or prepare_recv() "
                    "before a send() from the same thread (recv() posts one only while it "
                    "runs)") if op.result.status == Status.RNR_TIMEOUT else ""
            raise _failure("send", op.result, hint)

    def _post_internal_recv(self, size: int):
        p = self._check()
        mr = self._take_buffer(self._recv_free, size)
        wr = _next_internal_wr_id()
        op = _InternalOp("recv", self, mr)
        self._cq._ops[wr] = op
        self._recv_pending.add(wr)
        rc = lib.rt_post_recv(p, mr._ptr, 0, mr._length, wr)
        if rc < 0:
            self._cq._ops.pop(wr, None)
            self._recv_pending.discard(wr)
            self._release_recv_buffer(mr)
            check(rc)

    def prepare_recv(self, count: int = 1, max_size: int = 1 << 20) -> None:
        """Keep at least ``count`` internal receive buffers of ``max_size``
        bytes posted for :meth:`recv` from now on.

        Messages sent before recv() is called (e.g. by a blocking send()
        from this same thread) then have somewhere to land, and a fast
        sender does not run into receiver-not-ready back-off.
        """
        self._check()
        count = _index(count, "count")
        max_size = _index(max_size, "max_size")
        if count < 0 or max_size < 1:
            raise InvalidArgument("count must be >= 0 and max_size >= 1")
        self._recv_depth = max(1, count)
        self._top_up_recv(max_size)

    def _refill_recv(self, size: int):
        """Replace a consumed internal receive buffer (any thread)."""
        if self._ptr is None:
            return
        try:
            self._top_up_recv(size)
        except RTError:
            log.debug("re-posting an internal receive buffer failed", exc_info=True)

    def _top_up_recv(self, max_size: int):
        while len(self._recv_pending) < self._recv_depth:
            self._post_internal_recv(max_size)

    def recv(self, timeout: float = 10.0, max_size: int = 1 << 20) -> tuple[bytes, Peer]:
        """Wait for one message; returns ``(data, peer)``.

        Posts an internal receive buffer of at least ``max_size`` bytes if
        none is pending, and leaves one (or the number set with
        :meth:`prepare_recv`) posted when it returns.  Raises RTTimeoutError after ``timeout`` seconds,
        CompletionError if the receive failed.  Note that an internal
        receive buffer competes with buffers posted by post_recv().
        """
        self._check()
        timeout = _timeout(timeout, 10.0)
        max_size = _index(max_size, "max_size")
        if max_size < 1:
            raise InvalidArgument(f"max_size must be >= 1, got {max_size}")
        deadline = time.monotonic() + timeout
        ready = self._recv_ready
        while not ready:
            if not self._recv_pending:
                self._top_up_recv(max_size)
            self._drive(lambda: bool(ready) or not self._recv_pending, deadline)
            self._check()
            if time.monotonic() >= deadline:
                break
        try:
            data, comp = ready.popleft()
        except IndexError:
            raise RTTimeoutError(f"no message received within {timeout:g} s") from None
        # Keep one buffer posted, so that the next message (e.g. the answer
        # to a blocking send() from this same thread) has somewhere to land.
        if self._ptr is not None:
            try:
                self._top_up_recv(max_size)
            except RTError:
                log.debug("re-posting the internal receive buffer failed", exc_info=True)
        if not comp.ok:
            raise _failure("receive", comp)
        return data, comp.peer

    # -- statistics

    def stats(self) -> dict:
        """Counters of this endpoint (struct rt_ep_stats) as a dict."""
        p = self._check()
        st = ffi.new("struct rt_ep_stats *")
        check(lib.rt_ep_stats(p, st, ffi.sizeof("struct rt_ep_stats")))
        return _struct_to_dict(st, _EP_STATS_FIELDS)

    def path_stats(self) -> list[dict]:
        """Per-path state (struct rt_path_stats) as a list of dicts."""
        p = self._check()
        n = 64
        while True:
            arr = ffi.new("struct rt_path_stats[]", n)
            got = check(lib.rt_ep_path_stats(p, arr, n, ffi.sizeof("struct rt_path_stats")))
            if got <= n:
                return [_struct_to_dict(arr[i], _PATH_STATS_FIELDS) for i in range(got)]
            n = got

    # -- lifetime

    def close(self):
        """Flush outstanding work (user completions get FLUSHED) and free
        the endpoint; a private CQ is closed with it.  Idempotent."""
        p = self._ptr
        if p is None:
            return
        self._ptr = None
        lib.rt_ep_destroy(p)
        self._after_close()
        self._cq._wake()  # helpers blocked on this endpoint notice at once
        if self._owns_cq:
            self._cq._close_quiet()

    def _after_close(self):
        cq = self._cq
        for wr, op in list(cq._ops.items()):
            if op.ep is self:
                cq._ops.pop(wr, None)
        cq._endpoints.discard(self)
        self._recv_pending.clear()
        self._send_free.clear()
        self._recv_free.clear()
        for mr in list(self._internal_mrs):
            mr._close_quiet()
        eps = self._ctx._eps
        if eps.get(self._id) is self:
            try:
                del eps[self._id]
            except KeyError:
                pass

    def _invalidate(self):
        # The context freed the C endpoint (and its regions): forget it
        # without calling into C.
        self._ptr = None
        self._cq._ops.clear()
        self._recv_pending.clear()
        self._send_free.clear()
        self._recv_free.clear()
