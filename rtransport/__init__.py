"""rtransport: a user-space RDMA-style reliable datagram transport over UDP.

Quick start::

    import rtransport as rt

    with rt.Context() as ctx:
        a, b = ctx.endpoint(), ctx.endpoint()
        peer = a.connect(b.address)
        a.send(peer, b"hello")
        data, sender = b.recv()

The thin 1:1 C binding is available as ``rtransport.ffi`` / ``rtransport.lib``
(the cffi module ``rtransport._rt``).
"""

__version__ = "0.2.3"

from ._rt import ffi, lib  # noqa: E402  (the compiled C core)
from .errors import (  # noqa: E402
    AccessError,
    AddressError,
    BoundsError,
    BusyError,
    ClosedError,
    CompletionError,
    CompletionPeerError,
    CompletionTimeoutError,
    InvalidArgument,
    InvalidType,
    OutOfMemory,
    PeerError,
    RTError,
    RTSystemError,
    RTTimeoutError,
    UnsupportedError,
    check,
    error_for,
)
from .core import (  # noqa: E402
    Access,
    Completion,
    CompletionQueue,
    Context,
    Endpoint,
    FaultConfig,
    MemoryRegion,
    Opcode,
    Peer,
    RemoteRegion,
    Status,
    probe,
)

#: Version of the C core (major, minor), as the loaded library reports it
#: (rt_version()); the binding is built from the same sources.
c_version = divmod(lib.rt_version(), 1 << 16)

__all__ = [
    "__version__",
    "c_version",
    "ffi",
    "lib",
    # classes
    "Context",
    "Endpoint",
    "MemoryRegion",
    "CompletionQueue",
    "Completion",
    "Peer",
    "RemoteRegion",
    "FaultConfig",
    "Access",
    "Opcode",
    "Status",
    "probe",
    # errors
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
