"""Exceptions of rtransport.

Every C return code (enum rt_err) maps to one class.  Each class also
derives from the closest built-in exception, so ``except ValueError`` or
``except TimeoutError`` work as one would expect.
"""

from __future__ import annotations

from ._rt import ffi, lib

__all__ = [
    "RTError",
    "InvalidArgument",
    "InvalidType",
    "OutOfMemory",
    "RTSystemError",
    "ClosedError",
    "RTTimeoutError",
    "AccessError",
    "BoundsError",
    "AddressError",
    "PeerError",
    "BusyError",
    "UnsupportedError",
    "CompletionError",
    "CompletionTimeoutError",
    "CompletionPeerError",
    "check",
    "error_for",
]


class RTError(Exception):
    """Base class of all rtransport errors.

    ``code`` is the (negative) rt_err code, or None for errors raised on
    the Python side without a C equivalent.
    """

    default_code: int | None = None

    def __init__(self, message: str = "", *, code: int | None = None):
        super().__init__(message)
        self.message = message
        self.code = self.default_code if code is None else code

    def __str__(self) -> str:
        return self.message

    def __reduce__(self):
        return (_rebuild, (type(self), self.message, self.code))


def _rebuild(cls, message, code):
    return cls(message, code=code)


class InvalidArgument(RTError, ValueError):
    """RT_ERR_INVAL: bad argument (size, offset, flag, format)."""
    default_code = lib.RT_ERR_INVAL


class InvalidType(RTError, TypeError):
    """An argument of the wrong Python type (e.g. a numpy array where a
    registered MemoryRegion is needed, a float where an int is)."""
    default_code = lib.RT_ERR_INVAL


class OutOfMemory(RTError, MemoryError):
    """RT_ERR_NOMEM."""
    default_code = lib.RT_ERR_NOMEM


class RTSystemError(RTError, OSError):
    """RT_ERR_SYS: a system call failed (the message names errno)."""
    default_code = lib.RT_ERR_SYS


class ClosedError(RTError, ValueError):
    """RT_ERR_CLOSED, or use of a closed Python object (a ValueError, as
    for an operation on a closed file)."""
    default_code = lib.RT_ERR_CLOSED


class RTTimeoutError(RTError, TimeoutError):
    """RT_ERR_TIMEOUT, or a blocking helper ran out of time."""
    default_code = lib.RT_ERR_TIMEOUT


class AccessError(RTError, PermissionError):
    """RT_ERR_ACCESS: access flags forbid the operation."""
    default_code = lib.RT_ERR_ACCESS


class BoundsError(RTError, IndexError):
    """RT_ERR_BOUNDS: offset/length outside the memory region."""
    default_code = lib.RT_ERR_BOUNDS


class AddressError(RTError, ValueError):
    """RT_ERR_ADDR: malformed peer address or descriptor."""
    default_code = lib.RT_ERR_ADDR


class PeerError(RTError, ConnectionError):
    """RT_ERR_PEER: unknown or failed peer."""
    default_code = lib.RT_ERR_PEER


class BusyError(RTError):
    """RT_ERR_BUSY: object still in use."""
    default_code = lib.RT_ERR_BUSY


class UnsupportedError(RTError, NotImplementedError):
    """RT_ERR_UNSUPPORTED: not supported on this system/build."""
    default_code = lib.RT_ERR_UNSUPPORTED


class CompletionError(RTError):
    """A blocking helper saw a completion with a non-success status.

    ``completion`` is the failed :class:`rtransport.Completion`; ``status``
    its :class:`rtransport.Status`.
    """

    def __init__(self, message: str = "", *, completion=None,
                 code: int | None = None):
        super().__init__(message, code=code)
        self.completion = completion

    @property
    def status(self):
        return None if self.completion is None else self.completion.status

    def __reduce__(self):
        # a Peer belongs to a live endpoint and does not cross processes:
        # the pickled completion keeps everything else
        comp = self.completion
        if comp is not None and comp.peer is not None:
            comp = type(comp)(*comp[:5], None, comp[6])
        return (_rebuild_completion, (type(self), self.message, comp, self.code))


class CompletionTimeoutError(CompletionError, TimeoutError):
    """A blocking helper's operation completed with TIMEOUT (the peer went
    silent) or RNR_TIMEOUT (it never posted a receive buffer)."""


class CompletionPeerError(CompletionError, ConnectionError):
    """A blocking helper's operation completed with PEER_FAILED (posted to a
    peer that had already failed)."""


def _rebuild_completion(cls, message, completion, code):
    return cls(message, completion=completion, code=code)


_BY_CODE: dict[int, type[RTError]] = {
    cls.default_code: cls
    for cls in (InvalidArgument, OutOfMemory, RTSystemError, ClosedError,
                RTTimeoutError, AccessError, BoundsError, AddressError,
                PeerError, BusyError, UnsupportedError)
}


def _decode(p) -> str:
    if p == ffi.NULL:
        return ""
    return ffi.string(p).decode("utf-8", errors="replace")


def error_for(rc: int, message: str | None = None) -> RTError:
    """Build (do not raise) the exception for C return code ``rc``.

    Without ``message`` the calling thread's rt_last_error() text is used.
    """
    if message is None:
        message = _decode(lib.rt_last_error())
    name = _decode(lib.rt_err_str(rc))
    if not message:
        message = name or f"rtransport error {rc}"
    cls = _BY_CODE.get(rc, RTError)
    exc = cls(message, code=rc)
    if cls is RTSystemError:
        errno = _parse_errno(message)
        if errno is not None:
            exc.errno = errno
    return exc


def _parse_errno(message: str):
    import re

    m = re.search(r"errno[ =:]*(\d+)", message)
    return int(m.group(1)) if m else None


def check(rc: int) -> int:
    """Return ``rc`` if it is >= 0, else raise the mapped :class:`RTError`."""
    if rc >= 0:
        return rc
    raise error_for(rc)
