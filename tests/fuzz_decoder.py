#!/usr/bin/env python3
"""Structure-aware fuzz target for the rtransport packet decoder / receive path.

Runs under atheris (libFuzzer for Python) through the cffi binding: every
input is turned into one or more datagrams that are handed to the real
receive path with ``lib.rt_inject_packet`` (or, per record, sent through a
real UDP socket to the context's port).  See docs/testing.md.

Usage (all libFuzzer flags are accepted, e.g. -runs=N, -max_total_time=S,
-jobs=N, -seed=N, corpus directories, or crash files to reproduce)::

    python3 tests/fuzz_decoder.py -max_total_time=60          # make fuzz
    python3 tests/fuzz_decoder.py -runs=20000 -seed=1
    python3 tests/fuzz_decoder.py build/fuzz/crash-1234abcd   # reproduce
    python3 tests/fuzz_decoder.py --rt-replay DIR_OR_FILES... # stateful replay

Own options (removed before the rest goes to libFuzzer):

    --rt-check-every=N  inputs per epoch: after N inputs the harness checks
                        that A and B still talk (both directions) and then
                        recreates the context (default 1000)
    --rt-mode=M         context config per epoch: plain | csum | fault |
                        cycle (default: cycle = plain, csum, fault, plain...)
    --rt-stats=PATH     write a JSON summary there (also $RT_FUZZ_STATS)
    --rt-no-seeds       do not add the generated seed corpus
    --rt-write-seeds=D  write the seed corpus to D and exit
    --rt-random=N       no libFuzzer/atheris: run the seeds, then N inputs from
                        the same mutator guided by the feedback proxy
                        (deterministic; used by tests/test_fuzz.py and
                        under sanitizers); --rt-seed=S picks the sequence
    --rt-allow-known    steer around known, reported issues (docs/testing.md,
                        "Known findings"): rewrite inputs that would hit them
                        and count that in the summary (known_issue_avoided);
                        also $RT_FUZZ_ALLOW_KNOWN=1
    --rt-strict-recv    B -> A liveness uses only Endpoint.recv()'s internal
                        buffers (fails today: see docs/testing.md, "Known
                        findings")
    --rt-replay         run the given files (directories: their files, in
                        name order) in one process, in order, without
                        libFuzzer, with the same epoch/liveness checks

With no corpus directory on the command line the harness uses
build/fuzz/corpus (new interesting inputs are saved there) plus the
generated seeds in build/fuzz/seeds, and libFuzzer writes crash files to
build/fuzz/ (-artifact_prefix).

Input format (so that inputs survive new endpoint ids and nonces: the
target patches identities in at run time)::

    input  := record*                      (at most 16 are used)
    record := ctl0:u8 ctl1:u8 len:u16be packet[len]  (len clipped to what is left)

    ctl0 bit 0x01 PATCH_DST   dst_ep/dst_nonce := target endpoint (B, or A)
         bit 0x02 PATCH_SRC   src_ep/src_nonce := identity (ctl1 & 3),
                              src_port := the sink socket's port
         bit 0x04 PATCH_LEN   len := bytes after the 40-byte common header
         bit 0x08 PATCH_CSUM  flags |= RT_HF_CSUM, csum := CRC32C
         bit 0x10 PATCH_RKEY  DATA: rkey := rkey of region (ctl1 >> 4) & 3
         bit 0x20 PRIME       first make the target post SEND, WRITE_IMM,
                              READ, FETCH_ADD, CMP_SWAP and a 3-packet SEND
                              to the identity (PSN 0..7, msg_id 0..5) so
                              that ACK/NAK/responses meet real state
         bit 0x40 DST_A       target endpoint A instead of B
         bit 0x80 VIA_SOCKET  send from the sink socket to the context port
                              (real recvmmsg path, fault layer, ECN) instead
                              of rt_inject_packet
    ctl1 bits 0-1 identity: 0 F / 1 G = fresh for every input, 2 P = one per
                  epoch, 3 S = the target's real peer's ep id with another
                  nonce (a stale incarnation)
         bits 2-3 ECN codepoint (IP_TOS) for VIA_SOCKET
         bits 4-5 region for PATCH_RKEY: 0 all remote access (4 KiB),
                  1 remote read only, 2 local only, 3 zero length

The identities of A and B themselves are never used as a source (the
harness flips a nonce bit if an input produces one): the protocol does not
authenticate peers, so a packet with a peer's exact identity may legitimately
disturb that session.  A non-zero raw src_port is replaced by the sink
port so that replies never go to random local ports.

Invariants checked (a violation raises, which atheris reports as a crash
and saves the input; the last inputs of the epoch go to
build/fuzz/liveness-*/ for --rt-replay):

* the process does not crash (ASan/UBSan: see docs/testing.md);
* guard bytes around every registered region and receive slot stay intact,
  the read-only and local-only regions never change;
* every --rt-check-every inputs, and at exit, A -> B and B -> A
  send/recv still work with the exact payload.

C coverage is not visible to atheris (it instruments Python only), so the
harness feeds libFuzzer a proxy: per input it turns endpoint counter
deltas, completions (opcode, status) and the packets the target sends back
(ACK range count and flags, NAK kind and status, DATA op) into calls of
small instrumented functions, one per distinct observation.
"""

from __future__ import annotations

import ctypes
import json
import os
import random
import socket
import struct
import sys
import time
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
FUZZ_DIR = os.path.join(ROOT, "build", "fuzz")

# ---------------------------------------------------------------- wire format
# (csrc/wire.h; all integers big-endian)

MAGIC = 0x5254
VERSION = 1
T_DATA, T_ACK, T_NAK = 1, 2, 3
HF_CSUM = 0x0001
OP_SEND, OP_WRITE, OP_READ_REQ, OP_READ_RESP, OP_ATOMIC_REQ, OP_ATOMIC_RESP = 1, 2, 3, 4, 5, 6
DF_IMM, DF_ABORT, DF_RETX = 0x01, 0x02, 0x04
NAK_ERROR, NAK_RNR = 1, 2
ACKF_DUP, ACKF_CE = 0x01, 0x02
HDR, DATA_HDR, ACK_HDR, NAK_HDR = 40, 56, 24, 16
ACK_MAX_RANGES = 32
RCV_WIN = 1 << 16
M32 = 0xFFFFFFFF
MSG_WIN = 512
# rt_opcode values used in ATOMIC_REQ aux
RT_OP_ATOMIC_FETCH_ADD, RT_OP_ATOMIC_CMP_SWAP = 4, 5
# rt_wc_status 0..12 (RT_WC_ABORTED)
WC_MAX = 12

_COMMON = struct.Struct(">HBBHHIIQQHHI")
_DATA = struct.Struct(">IBBHIIQQQQII")
_ACK = struct.Struct(">IIIHBBII")
_NAK = struct.Struct(">IIBBHI")
assert _COMMON.size == HDR and _DATA.size == DATA_HDR
assert _ACK.size == ACK_HDR and _NAK.size == NAK_HDR

# common header field offsets
O_FLAGS, O_SRC_PORT, O_DST_EP, O_SRC_EP = 4, 6, 8, 12
O_DST_NONCE, O_SRC_NONCE, O_PATH, O_LEN, O_CSUM = 16, 24, 32, 34, 36
O_RKEY = HDR + 32

# ctl0 / ctl1 bits (see the module docstring)
PATCH_DST, PATCH_SRC, PATCH_LEN, PATCH_CSUM = 0x01, 0x02, 0x04, 0x08
PATCH_RKEY, PRIME, DST_A, VIA_SOCKET = 0x10, 0x20, 0x40, 0x80
STD = PATCH_DST | PATCH_SRC | PATCH_LEN | PATCH_CSUM
ID_F, ID_G, ID_P, ID_S = 0, 1, 2, 3
R_ALL, R_RO, R_LOCAL, R_EMPTY = 0, 1, 2, 3
MAX_RECORDS = 16

REGION_LEN = 4096     # remote-access region of the target context
GUARD = 64            # guard bytes on each side of every registered buffer
RECV_SLOTS = (64, 512, 2048, 8192)   # receive buffer sizes, posted in turn
PRIME_SEND_BIG = 3000  # 3 packets at the default 1376-byte payload


def _crc32c_table():
    t = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        t.append(c)
    return t


_CRC_T = _crc32c_table()


def _crc32c_py(data) -> int:
    c = 0xFFFFFFFF
    t = _CRC_T
    for b in data:
        c = t[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def _crc32c_native():
    """rt_crc32c from csrc/wire.c built as a small shared library (cached in
    build/fuzz/); the pure-Python CRC costs ~100 us per packet.  None when
    no C compiler is available."""
    src = os.path.join(ROOT, "csrc", "wire.c")
    if not os.path.exists(src) or os.environ.get("RT_FUZZ_PY_CRC") == "1":
        return None
    so = os.path.join(FUZZ_DIR, "libwire-crc.so")
    try:
        if not os.path.exists(so) or os.path.getmtime(so) < os.path.getmtime(src):
            import subprocess
            os.makedirs(FUZZ_DIR, exist_ok=True)
            tmp = f"{so}.{os.getpid()}"
            subprocess.run([os.environ.get("CC", "cc"), "-O2", "-shared", "-fPIC", "-std=gnu11",
                            "-I" + os.path.join(ROOT, "csrc", "include"),
                            "-I" + os.path.join(ROOT, "csrc"), "-o", tmp, src],
                           check=True, capture_output=True, timeout=60)
            os.replace(tmp, so)
        f = ctypes.CDLL(so).rt_crc32c
        f.restype = ctypes.c_uint32
        f.argtypes = (ctypes.c_uint32, ctypes.c_char_p, ctypes.c_size_t)
        if f(0, b"123456789", 9) != 0xE3069283:
            return None
        return lambda data: f(0, bytes(data), len(data))
    except Exception:  # noqa: BLE001 - fall back to Python
        return None


crc32c = _crc32c_py


assert _crc32c_py(b"123456789") == 0xE3069283


def common(ptype, body=b"", flags=0, path=0, dst_ep=0, src_ep=0, dst_nonce=0,
           src_nonce=0, src_port=0, length=None, magic=MAGIC, version=VERSION) -> bytes:
    """A packet: common header + body.  Identity fields default to 0 (the
    target patches them in when PATCH_DST / PATCH_SRC are set)."""
    n = len(body) if length is None else length
    return _COMMON.pack(magic, version, ptype, flags, src_port, dst_ep, src_ep,
                        dst_nonce, src_nonce, path, n & 0xFFFF, 0) + bytes(body)


def data_pkt(psn=0, op=OP_SEND, dflags=0, msg_id=0, aux=0, msg_len=None, offset=0,
             rkey=0, raddr=0, imm=0, ts=0, payload=b"", path=0, reserved=0) -> bytes:
    if msg_len is None:
        msg_len = offset + len(payload)
    d = _DATA.pack(psn & 0xFFFFFFFF, op & 0xFF, dflags & 0xFF, reserved, msg_id & 0xFFFFFFFF,
                   aux & 0xFFFFFFFF, msg_len & (2**64 - 1), offset & (2**64 - 1),
                   rkey & (2**64 - 1), raddr & (2**64 - 1), imm & 0xFFFFFFFF, ts & 0xFFFFFFFF)
    return common(T_DATA, d + bytes(payload), path=path)


def ack_pkt(cum=0, ranges=(), ts_echo=0, delay=0, echo_path=0, aflags=0, ce=0,
            nranges=None, path=0) -> bytes:
    n = len(ranges) if nranges is None else nranges
    a = _ACK.pack(cum & 0xFFFFFFFF, ts_echo & 0xFFFFFFFF, delay & 0xFFFFFFFF,
                  echo_path & 0xFFFF, n & 0xFF, aflags & 0xFF, ce & 0xFFFFFFFF, 0)
    a += b"".join(struct.pack(">II", s & 0xFFFFFFFF, e & 0xFFFFFFFF) for s, e in ranges)
    return common(T_ACK, a, path=path)


def nak_pkt(psn=0, msg_id=0, kind=NAK_ERROR, status=1, path=0) -> bytes:
    return common(T_NAK, _NAK.pack(psn & 0xFFFFFFFF, msg_id & 0xFFFFFFFF, kind & 0xFF,
                                   status & 0xFF, 0, 0), path=path)


def record(pkt, ctl0=STD, ctl1=0) -> bytes:
    pkt = bytes(pkt)[:0xFFFF]
    return bytes((ctl0 & 0xFF, ctl1 & 0xFF)) + struct.pack(">H", len(pkt)) + pkt


def parse_records(data: bytes):
    out = []
    i, n = 0, len(data)
    while i + 4 <= n and len(out) < MAX_RECORDS:
        ctl0, ctl1, ln = data[i], data[i + 1], (data[i + 2] << 8) | data[i + 3]
        i += 4
        out.append((ctl0, ctl1, data[i:i + ln]))
        i += ln
    return out


def join_records(recs) -> bytes:
    return b"".join(record(p, c0, c1) for c0, c1, p in recs)


# ---------------------------------------------------------------- seed corpus


def _payload(rng, n):
    return bytes(rng.getrandbits(8) for _ in range(n)) if n <= 64 else \
        (bytes(range(256)) * (n // 256 + 1))[:n]


def seed_inputs():
    """(name, bytes) pairs: valid and nearly valid DATA/ACK/NAK sequences."""
    rng = random.Random(20240601)
    S = []

    def add(name, *recs):
        S.append((name, join_records(recs)))

    rk = PATCH_RKEY

    # ---- SEND (two-sided)
    for n in (0, 1, 16, 63, 64, 65, 512, 1376):
        add(f"send-{n}", (STD, 0, data_pkt(payload=_payload(rng, n))))
    msg = _payload(rng, 2000)
    parts = [(0, msg[:1000]), (1000, msg[1000:])]
    add("send-2pkt", *[(STD, 0, data_pkt(psn=i, offset=o, msg_len=2000, payload=p))
                       for i, (o, p) in enumerate(parts)])
    add("send-2pkt-reversed", *[(STD, 0, data_pkt(psn=i, offset=o, msg_len=2000, payload=p))
                                for i, (o, p) in reversed(list(enumerate(parts)))])
    add("send-2msgs-second-first",
        (STD, 0, data_pkt(psn=1, msg_id=1, aux=1, payload=b"second")),
        (STD, 0, data_pkt(psn=0, msg_id=0, aux=0, payload=b"first")))
    add("send-too-big", (STD, 0, data_pkt(msg_len=10000, payload=b"x" * 100)),
        (STD, 0, data_pkt(psn=1, msg_len=10000, offset=100, payload=b"y" * 100)))
    add("send-abort", (STD, 0, data_pkt(dflags=DF_ABORT, msg_len=100)))
    add("send-abort-payload", (STD, 0, data_pkt(dflags=DF_ABORT, payload=b"z" * 10)))
    # DF_ABORT: the sender abandoned a message; the receiver releases what it holds
    add("send-partial-then-abort",
        (STD, 0, data_pkt(msg_len=2000, payload=b"a" * 1000)),
        (STD, 0, data_pkt(psn=1, dflags=DF_ABORT, msg_len=2000)))
    add("send-abort-ahead",
        (STD, 0, data_pkt(msg_len=2000, payload=b"a" * 1000)),
        (STD, 0, data_pkt(psn=1, msg_id=1, aux=1, dflags=DF_ABORT, msg_len=10)),
        (STD, 0, data_pkt(psn=2, msg_id=3, aux=3, dflags=DF_ABORT, msg_len=10)),
        (STD, 0, data_pkt(psn=3, msg_id=2, aux=2, payload=b"two")),
        (STD, 0, data_pkt(psn=4, msg_id=4, aux=4, payload=b"four")))
    add("send-abort-assigned",
        (STD, 0, data_pkt(msg_id=1, aux=1, msg_len=2000, payload=b"b" * 1000)),
        (STD, 0, data_pkt(psn=1, msg_id=0, aux=0, dflags=DF_ABORT, msg_len=5)),
        (STD, 0, data_pkt(psn=2, msg_id=1, aux=1, msg_len=2000, offset=1000,
                               payload=b"c" * 1000)))
    add("send-abort-twice", (STD, 0, data_pkt(payload=b"x")),
        (STD, 0, data_pkt(psn=1, msg_id=2, aux=2, dflags=DF_ABORT, msg_len=1)),
        (STD, 0, data_pkt(psn=2, msg_id=2, aux=2, dflags=DF_ABORT | DF_RETX, msg_len=1)),
        (STD, 0, data_pkt(psn=3, msg_id=1, aux=1, payload=b"y")))
    add("send-abort-window-edge", (STD, 0, data_pkt(payload=b"x")),
        (STD, 0, data_pkt(psn=1, aux=MSG_WIN, dflags=DF_ABORT, msg_len=1)),
        (STD, 0, data_pkt(psn=2, aux=MSG_WIN - 1, dflags=DF_ABORT, msg_len=1)),
        (STD, 0, data_pkt(psn=3, aux=0xFFFFFFFF, dflags=DF_ABORT, msg_len=1)))
    add("write-imm-abort",
        (STD | PATCH_RKEY, 0, data_pkt(op=OP_WRITE, dflags=DF_IMM, imm=5, msg_len=2000,
                                       payload=b"w" * 1000)),
        (STD | PATCH_RKEY, 0, data_pkt(psn=1, op=OP_WRITE, dflags=DF_IMM | DF_ABORT, imm=5,
                                       msg_len=2000)),
        (STD | PATCH_RKEY, 0, data_pkt(psn=2, op=OP_WRITE, dflags=DF_IMM, imm=5, msg_len=2000,
                                       offset=1000, payload=b"v" * 1000)))
    add("send-inconsistent-len", (STD, 0, data_pkt(msg_len=100, payload=b"a" * 50)),
        (STD, 0, data_pkt(psn=1, msg_len=200, offset=50, payload=b"b" * 50)))
    add("send-retx-dup", (STD, 0, data_pkt(msg_len=20, payload=b"c" * 10)),
        (STD, 0, data_pkt(msg_len=20, payload=b"c" * 10, dflags=DF_RETX)),
        (STD, 0, data_pkt(psn=1, msg_len=20, offset=10, payload=b"d" * 10)))
    add("send-ssn-old", (STD, 0, data_pkt(aux=0xFFFFFFFF, payload=b"old")))
    add("send-ssn-far", (STD, 0, data_pkt(aux=MSG_WIN, payload=b"far")))
    add("send-psn-gap", (STD, 0, data_pkt(psn=5, msg_id=5, aux=5, payload=b"5")),
        *[(STD, 0, data_pkt(psn=i, msg_id=i, aux=i, payload=bytes([i]))) for i in range(5)])
    add("send-psn-window-edge", (STD, 0, data_pkt(psn=RCV_WIN - 1, payload=b"e")),
        (STD, 0, data_pkt(psn=RCV_WIN, payload=b"f")))
    add("send-psn-max", (STD, 0, data_pkt(psn=0xFFFFFFFF, payload=b"m")))
    add("send-many-psns", *[(STD, 0, data_pkt(psn=i * 64, msg_id=i, aux=i, payload=b"p"))
                            for i in range(12)])
    add("send-to-A", (STD | DST_A, 0, data_pkt(payload=b"hello A")))
    add("send-persistent-P", (STD, ID_P, data_pkt(payload=b"P")))
    add("send-stale-incarnation", (STD, ID_S, data_pkt(payload=b"S")))
    add("send-two-identities", (STD, ID_F, data_pkt(payload=b"F")),
        (STD, ID_G, data_pkt(payload=b"G")))
    # ---- WRITE
    for raddr, n in ((0, 8), (100, 300), (0, REGION_LEN), (REGION_LEN - 1, 1), (REGION_LEN, 0),
                     (REGION_LEN - 10, 11), (REGION_LEN + 1, 0), (2**64 - 1, 2)):
        add(f"write-{raddr}-{n}", (STD | rk, 0, data_pkt(op=OP_WRITE, raddr=raddr, msg_len=n,
                                                         payload=b"w" * min(n, 1376))))
    for region in (R_RO, R_LOCAL, R_EMPTY):
        add(f"write-region{region}", (STD | rk, region << 4,
                                      data_pkt(op=OP_WRITE, payload=b"w" * 16)))
    add("write-bad-rkey", (STD, 0, data_pkt(op=OP_WRITE, rkey=0x1234, payload=b"w")))
    add("write-imm-2pkt",
        (STD | rk, 0, data_pkt(op=OP_WRITE, dflags=DF_IMM, imm=0xABCD, msg_len=2000,
                               payload=b"i" * 1000)),
        (STD | rk, 0, data_pkt(psn=1, op=OP_WRITE, dflags=DF_IMM, imm=0xABCD, msg_len=2000,
                               offset=1000, payload=b"j" * 1000)))
    add("write-imm-zero", (STD | rk, 0, data_pkt(op=OP_WRITE, dflags=DF_IMM, imm=7, msg_len=0)))
    add("write-imm-window-clash",
        (STD | rk, 0, data_pkt(op=OP_WRITE, dflags=DF_IMM, msg_len=20, payload=b"k" * 10)),
        (STD | rk, 0, data_pkt(psn=1, msg_id=MSG_WIN, op=OP_WRITE, dflags=DF_IMM, msg_len=20,
                               payload=b"l" * 10)))
    # ---- READ request
    for raddr, n in ((0, 64), (0, REGION_LEN), (64, 5000), (REGION_LEN, 1), (0, 0)):
        add(f"read-{raddr}-{n}", (STD | rk, 0, data_pkt(op=OP_READ_REQ, raddr=raddr, msg_len=n)))
    add("read-readonly-region", (STD | rk, R_RO << 4, data_pkt(op=OP_READ_REQ, msg_len=32)))
    add("read-local-region", (STD | rk, R_LOCAL << 4, data_pkt(op=OP_READ_REQ, msg_len=32)))
    add("read-with-payload", (STD | rk, 0, data_pkt(op=OP_READ_REQ, msg_len=4, payload=b"rrrr")))
    # ---- ATOMIC request
    ops16 = struct.pack(">QQ", 5, 9)
    for aux in (RT_OP_ATOMIC_FETCH_ADD, RT_OP_ATOMIC_CMP_SWAP, 0):
        for raddr in (0, 8, 4, REGION_LEN - 8, REGION_LEN - 4, REGION_LEN):
            add(f"atomic-{aux}-{raddr}", (STD | rk, 0, data_pkt(op=OP_ATOMIC_REQ, aux=aux,
                                                                raddr=raddr, payload=ops16)))
    add("atomic-short", (STD | rk, 0, data_pkt(op=OP_ATOMIC_REQ, aux=4, payload=b"\0" * 8)))
    add("atomic-readonly", (STD | rk, R_RO << 4, data_pkt(op=OP_ATOMIC_REQ, aux=4,
                                                          payload=ops16)))
    # ---- responses / ACK / NAK against primed state (msg 0 SEND 64 B, 1 WRITE_IMM
    #      128 B, 2 READ 256 B, 3 FETCH_ADD, 4 CMP_SWAP, 5 SEND 3000 B; PSN 0..7)
    P = STD | PRIME
    rd = _payload(rng, 256)
    add("prime-only", (P, 0, ack_pkt(cum=0)))
    add("read-resp", (P, 0, data_pkt(op=OP_READ_RESP, aux=2, msg_len=256, payload=rd)))
    add("read-resp-2pkt", (P, 0, data_pkt(op=OP_READ_RESP, aux=2, msg_len=256, offset=128,
                                          payload=rd[128:])),
        (STD, 0, data_pkt(psn=1, op=OP_READ_RESP, aux=2, msg_len=256, payload=rd[:128])))
    add("read-resp-wrong-len", (P, 0, data_pkt(op=OP_READ_RESP, aux=2, msg_len=100,
                                               payload=rd[:100])))
    add("read-resp-unknown", (P, 0, data_pkt(op=OP_READ_RESP, aux=77, msg_len=4, payload=b"u" * 4)))
    add("atomic-resp", (P, 0, data_pkt(op=OP_ATOMIC_RESP, aux=3, payload=struct.pack(">Q", 41))),
        (STD, 0, data_pkt(psn=1, op=OP_ATOMIC_RESP, aux=4, payload=struct.pack(">Q", 0))))
    add("atomic-resp-short", (P, 0, data_pkt(op=OP_ATOMIC_RESP, aux=3, payload=b"\1" * 4)))
    add("resp-wrong-op", (P, 0, data_pkt(op=OP_ATOMIC_RESP, aux=2, payload=b"\0" * 8)))
    for cum in (0, 1, 3, 5, 8, 9, 100, 0xFFFFFFFF):
        add(f"ack-cum-{cum}", (P, 0, ack_pkt(cum=cum)))
    add("ack-sack", (P, 0, ack_pkt(cum=0, ranges=[(2, 4), (6, 8)])))
    add("ack-sack-then-cum", (P, 0, ack_pkt(cum=1, ranges=[(3, 5)])),
        (STD, 0, ack_pkt(cum=3, ranges=[(4, 8)])), (STD, 0, ack_pkt(cum=8)))
    add("ack-32-ranges", (P, 0, ack_pkt(cum=0, ranges=[(2 * i + 1, 2 * i + 2)
                                                       for i in range(ACK_MAX_RANGES)])))
    add("ack-33-ranges", (P, 0, ack_pkt(cum=0, nranges=33, ranges=[(2 * i + 1, 2 * i + 2)
                                                                   for i in range(33)])))
    add("ack-bad-ranges", (P, 0, ack_pkt(cum=4, ranges=[(2, 3)])),
        (STD, 0, ack_pkt(cum=0, ranges=[(5, 5)])),
        (STD, 0, ack_pkt(cum=0, ranges=[(1, (1 << 30) + 2)])))
    # SACK ranges outside what was sent (PSN 0..7): must acknowledge nothing
    add("ack-range-past-snd-nxt", (P, 0, ack_pkt(cum=0, ranges=[(100, 200)])))
    add("ack-range-wraps-past-snd-nxt",
        (P, 0, ack_pkt(cum=0, ranges=[(0x7FFFFF00, 0x80000100)])))
    add("ack-flags", (P, 0, ack_pkt(cum=2, aflags=ACKF_DUP | ACKF_CE, ce=3, ts_echo=1,
                                    delay=10**6, echo_path=3)))
    add("ack-garbage-echo", (P, 0, ack_pkt(cum=8, ts_echo=0xFFFFFFFF, delay=0xFFFFFFFF,
                                           echo_path=0xFFFF, aflags=0xFF)))
    add("ack-nranges-mismatch", (P, 0, ack_pkt(cum=0, nranges=2, ranges=[(2, 3)])))
    add("ack-unprimed", (STD, 0, ack_pkt(cum=3)))
    add("ack-to-A", (STD | DST_A | PRIME, 0, ack_pkt(cum=4, ranges=[(5, 6)])))
    add("ack-persistent", (P, ID_P, ack_pkt(cum=2)))
    for st in range(0, WC_MAX + 2):
        add(f"nak-error-{st}", (P, 0, nak_pkt(psn=st % 8, msg_id=st % 6, kind=NAK_ERROR,
                                               status=st)))
    for psn, mid in ((0, 0), (2, 2), (5, 5), (7, 5), (9, 9)):
        add(f"nak-rnr-{psn}-{mid}", (P, 0, nak_pkt(psn=psn, msg_id=mid, kind=NAK_RNR, status=0)))
    add("nak-bad-kind", (P, 0, nak_pkt(kind=0)), (STD, 0, nak_pkt(kind=3)))
    add("nak-then-ack", (P, 0, nak_pkt(psn=1, msg_id=1, kind=NAK_RNR, status=0)),
        (STD, 0, ack_pkt(cum=1)), (STD, 0, ack_pkt(cum=8)))
    add("prime-twice-ack", (P, 0, ack_pkt(cum=4)), (P, 0, ack_pkt(cum=16)))
    # ---- checksums, ECN, real socket path
    add("csum-bad", (STD & ~PATCH_CSUM, 0, common(T_DATA, flags=HF_CSUM) + b""))
    bad = bytearray(data_pkt(payload=b"q" * 8))
    struct.pack_into(">HI", bad, O_FLAGS, HF_CSUM, 0)
    struct.pack_into(">I", bad, O_CSUM, 0xDEADBEEF)
    add("csum-wrong", (STD & ~PATCH_CSUM, 0, bytes(bad)))
    add("via-socket-send", (STD | VIA_SOCKET, 0, data_pkt(payload=b"sock")))
    add("via-socket-ecn-ce", (STD | VIA_SOCKET, 3 << 2, data_pkt(payload=b"ce")),
        (STD | VIA_SOCKET, 3 << 2, data_pkt(psn=1, msg_id=1, aux=1, payload=b"ce2")))
    add("via-socket-ack", (STD | PRIME | VIA_SOCKET, 0, ack_pkt(cum=8)))
    add("via-socket-garbage", (VIA_SOCKET, 0, b"\x52\x54\x01\x01" + b"\0" * 36))
    # ---- malformed common header
    add("empty-record", (STD, 0, b""))
    add("one-byte", (STD, 0, b"R"))
    add("short-39", (STD, 0, data_pkt()[:39]))
    for t in (T_DATA, T_ACK, T_NAK):
        add(f"header-only-{t}", (STD, 0, common(t)))
    add("bad-magic", (STD, 0, common(T_DATA, data_pkt()[HDR:], magic=0x5255)))
    add("bad-version", (STD, 0, common(T_DATA, data_pkt()[HDR:], version=2)))
    for t in (0, 4, 255):
        add(f"bad-type-{t}", (STD, 0, common(t, b"\0" * 56)))
    add("len-short", (STD & ~PATCH_LEN, 0, common(T_DATA, data_pkt()[HDR:], length=10)))
    add("len-long", (STD & ~PATCH_LEN, 0, common(T_DATA, data_pkt()[HDR:], length=1000)))
    add("padded", (STD & ~PATCH_LEN, 0, data_pkt(payload=b"x") + b"\0" * 7))
    for dst in (0, 1, 2, 3, 0xFFFFFFFF):
        add(f"raw-dst-{dst}", (STD & ~PATCH_DST, 0, common(T_DATA, data_pkt()[HDR:],
                                                            dst_ep=dst, dst_nonce=1)))
    add("src-ep-zero", (STD & ~PATCH_SRC, 0, common(T_DATA, data_pkt(payload=b"0")[HDR:],
                                                     src_ep=0, src_nonce=5, src_port=1)))
    add("src-nonce-zero", (STD & ~PATCH_SRC, 0, common(T_DATA, data_pkt(payload=b"0")[HDR:],
                                                        src_ep=9, src_nonce=0, src_port=1)))
    add("src-port-zero", (STD & ~PATCH_SRC, 0, common(T_DATA, data_pkt(payload=b"0")[HDR:],
                                                       src_ep=9, src_nonce=5, src_port=0)))
    add("data-bad-op", (STD, 0, data_pkt(op=0)), (STD, 0, data_pkt(op=7)))
    add("data-bad-dflags", (STD, 0, data_pkt(dflags=0x08, payload=b"f")))
    add("data-offset-past-len", (STD, 0, data_pkt(msg_len=10, offset=11)))
    add("data-payload-past-len", (STD, 0, data_pkt(msg_len=10, offset=5, payload=b"x" * 6)))
    add("data-huge-len", (STD, 0, data_pkt(msg_len=2**64 - 1, offset=2**64 - 2, payload=b"x")))
    add("nak-wrong-size", (P, 0, nak_pkt() + b"\0"))
    add("ack-unknown-peer-raw", (STD & ~PATCH_SRC, 0, ack_pkt(cum=1)))
    add("jumbo", (STD, 0, data_pkt(msg_len=9000, payload=b"J" * 9000)))
    return S


def write_seeds(directory: str) -> int:
    os.makedirs(directory, exist_ok=True)
    seeds = seed_inputs()
    for i, (name, blob) in enumerate(seeds):
        path = os.path.join(directory, f"seed-{i:03d}-{name}")
        try:
            with open(path, "rb") as f:
                if f.read() == blob:
                    continue
        except OSError:
            pass
        with open(path, "wb") as f:
            f.write(blob)
    return len(seeds)


# ---------------------------------------------------------------- mutator

# (offset, width) of the interesting fields, per packet type
_F_COMMON = [(0, 2), (2, 1), (3, 1), (4, 2), (6, 2), (8, 4), (12, 4), (16, 8), (24, 8),
             (32, 2), (34, 2), (36, 4)]
_F_DATA = [(HDR + o, w) for o, w in ((0, 4), (4, 1), (5, 1), (6, 2), (8, 4), (12, 4), (16, 8),
                                     (24, 8), (32, 8), (40, 8), (48, 4), (52, 4))]
_F_ACK = [(HDR + o, w) for o, w in ((0, 4), (4, 4), (8, 4), (12, 2), (14, 1), (15, 1), (16, 4),
                                    (20, 4))]
_F_NAK = [(HDR + o, w) for o, w in ((0, 4), (4, 4), (8, 1), (9, 1), (10, 2), (12, 4))]
_SPECIAL = (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 15, 16, 31, 32, 33, 63, 64, 65, 127, 128,
            255, 256, 511, 512, 513, 1023, 1024, 1375, 1376, 1377, 4095, 4096, 4097, 8192,
            65535, 65536, 65537, 2**30, 2**30 + 1, 2**31 - 1, 2**31, 2**32 - 1, 2**32,
            2**63, 2**64 - 1, 2**64 - 8)


def _mutate_field(rng, pkt: bytearray):
    fields = list(_F_COMMON)
    if len(pkt) > HDR:
        t = pkt[3]
        fields += _F_DATA if t == T_DATA else _F_ACK if t == T_ACK else _F_NAK
        if t == T_ACK:
            for i in range(min(ACK_MAX_RANGES + 1, (len(pkt) - HDR - ACK_HDR) // 8)):
                fields += [(HDR + ACK_HDR + 8 * i, 4), (HDR + ACK_HDR + 8 * i + 4, 4)]
    fields = [(o, w) for o, w in fields if o + w <= len(pkt)]
    if not fields:
        return
    off, w = rng.choice(fields)
    mask = (1 << (8 * w)) - 1
    cur = int.from_bytes(pkt[off:off + w], "big")
    r = rng.random()
    if r < 0.5:
        v = rng.choice(_SPECIAL)
    elif r < 0.8:
        v = cur + rng.choice((-1, 1)) * rng.randint(1, 16)
    elif r < 0.9:
        v = cur ^ (1 << rng.randrange(8 * w))
    else:
        v = rng.getrandbits(8 * w)
    pkt[off:off + w] = (v & mask).to_bytes(w, "big")


def _fix_data_lengths(rng, pkt: bytearray):
    """Make msg_len/offset/payload of a DATA packet consistent again."""
    if len(pkt) < HDR + DATA_HDR or pkt[3] != T_DATA:
        return
    plen = len(pkt) - HDR - DATA_HDR
    offset = rng.choice((0, 0, rng.randint(0, 4096)))
    msg_len = offset + plen + rng.choice((0, 0, rng.randint(0, 4096)))
    struct.pack_into(">QQ", pkt, HDR + 16, msg_len, offset)


def _random_record(rng):
    """A fresh, mostly valid record."""
    k = rng.randrange(6)
    ctl0 = STD | (PATCH_RKEY if rng.random() < 0.8 else 0)
    ctl1 = rng.randrange(4) if rng.random() < 0.3 else 0
    ctl1 |= (rng.randrange(4) << 4) if rng.random() < 0.2 else 0
    if k <= 1:
        op = rng.randint(1, 6)
        n = rng.choice((0, 1, 8, 16, 64, 100, 1000, 1376, 3000))
        off = rng.choice((0, 0, 8, 1000))
        aux = rng.choice((0, 1, 2, 3, 4, 5, RT_OP_ATOMIC_FETCH_ADD, RT_OP_ATOMIC_CMP_SWAP))
        if op == OP_ATOMIC_REQ:
            n, off = 16, 0
        if op in (OP_READ_RESP, OP_ATOMIC_RESP):
            ctl0 |= PRIME
            n = 8 if op == OP_ATOMIC_RESP else 256
        pay = b"\x5a" * (0 if op == OP_READ_REQ else n)
        pkt = data_pkt(psn=rng.choice((0, 1, 2, 7, 64, 65535)), op=op,
                       dflags=rng.choice((0, 0, DF_IMM, DF_RETX, DF_ABORT)),
                       msg_id=rng.choice((0, 1, 2, 5, 512)), aux=aux,
                       msg_len=off + n + rng.choice((0, 0, 100)), offset=off,
                       raddr=rng.choice((0, 8, 100, 4088, 4096)), imm=rng.getrandbits(32),
                       payload=pay)
    elif k <= 3:
        ctl0 |= PRIME
        cum = rng.choice((0, 1, 2, 4, 8))
        ranges, s = [], cum + 1
        for _ in range(rng.choice((0, 0, 1, 2, 3, 32))):
            e = s + rng.randint(1, 3)
            ranges.append((s, e))
            s = e + rng.randint(1, 3)
        pkt = ack_pkt(cum=cum, ranges=ranges[:ACK_MAX_RANGES], aflags=rng.randrange(4),
                      ce=rng.choice((0, 1, 1000)), echo_path=rng.choice((0, 1, 3, 200)),
                      ts_echo=rng.getrandbits(32) if rng.random() < 0.3 else 0)
    elif k == 4:
        ctl0 |= PRIME
        pkt = nak_pkt(psn=rng.randrange(10), msg_id=rng.randrange(7),
                      kind=rng.choice((NAK_ERROR, NAK_RNR)), status=rng.randint(0, WC_MAX))
    else:
        pkt = common(rng.randint(0, 4), bytes(rng.getrandbits(8)
                                              for _ in range(rng.choice((0, 16, 24, 56)))))
    if rng.random() < 0.1:
        ctl0 |= VIA_SOCKET
        ctl1 |= rng.randrange(4) << 2
    if rng.random() < 0.05:
        ctl0 |= DST_A
    return [ctl0, ctl1, bytearray(pkt)]


def _py_byte_mutate(rng, data: bytes, max_size: int) -> bytes:
    """A small stand-in for libFuzzer's byte mutator (--rt-random)."""
    b = bytearray(data)
    for _ in range(rng.choice((1, 1, 2, 4))):
        op = rng.randrange(6)
        if op == 0 and b:
            b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
        elif op == 1 and b:
            b[rng.randrange(len(b))] = rng.choice((0, 1, 0x7F, 0x80, 0xFF, rng.randrange(256)))
        elif op == 2:
            i = rng.randrange(len(b) + 1)
            b[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        elif op == 3 and b:
            i = rng.randrange(len(b))
            del b[i:i + rng.randint(1, 8)]
        elif op == 4 and len(b) > 4:
            i, j = rng.randrange(len(b)), rng.randrange(len(b))
            n = rng.randint(1, 8)
            b[i:i + n] = b[j:j + n]
        elif op == 5 and len(b) >= 2:
            i = rng.randrange(len(b) - 1)
            v = (int.from_bytes(b[i:i + 2], "big") + rng.choice((-1, 1))) & 0xFFFF
            b[i:i + 2] = v.to_bytes(2, "big")
    return bytes(b[:max_size])


def custom_mutator(data: bytes, max_size: int, seed: int, byte_mutate=None) -> bytes:
    rng = random.Random(seed)
    if byte_mutate is None:
        import atheris
        byte_mutate = atheris.Mutate
    recs = [[c0, c1, bytearray(p)] for c0, c1, p in parse_records(data)]
    r = rng.random()
    if r < 0.25 or not recs:
        if not recs or rng.random() < 0.3:
            # plain libFuzzer mutation of the whole input
            return byte_mutate(data, max_size)
        recs.append(_random_record(rng))
    elif r < 0.45:
        rec = rng.choice(recs)  # byte-level mutation of one packet, framing kept
        rec[2] = bytearray(byte_mutate(bytes(rec[2]), max(len(rec[2]) + 64, 64)))
    elif r < 0.80:
        rec = rng.choice(recs)
        for _ in range(rng.choice((1, 1, 1, 2, 3))):
            _mutate_field(rng, rec[2])
        if rng.random() < 0.2:
            _fix_data_lengths(rng, rec[2])
    elif r < 0.88:
        rec = rng.choice(recs)
        if rng.random() < 0.5:
            rec[0] ^= 1 << rng.randrange(8)
        else:
            rec[1] ^= 1 << rng.randrange(8)
    elif r < 0.94:
        op = rng.randrange(4)
        i = rng.randrange(len(recs))
        if op == 0 and len(recs) < MAX_RECORDS:
            recs.insert(i, [recs[i][0], recs[i][1], bytearray(recs[i][2])])  # duplicate
        elif op == 1 and len(recs) > 1:
            del recs[i]
        elif op == 2 and len(recs) > 1:
            j = rng.randrange(len(recs))
            recs[i], recs[j] = recs[j], recs[i]
        else:
            recs[i] = _random_record(rng)
    else:
        rec = rng.choice(recs)  # change the payload size, keep DATA consistent
        p = rec[2]
        if len(p) >= HDR + DATA_HDR:
            n = rng.choice((0, 1, 7, 8, 16, 100, 1376, 1377, 3000))
            del p[HDR + DATA_HDR:]
            p += b"\xa5" * n
            _fix_data_lengths(rng, p)
    out = join_records((c0, c1, bytes(p)) for c0, c1, p in recs[:MAX_RECORDS])
    if len(out) > max_size:
        out = out[:max_size]
    return out


def custom_crossover(data1: bytes, data2: bytes, max_out_size: int, seed: int) -> bytes:
    rng = random.Random(seed)
    a, b = parse_records(data1), parse_records(data2)
    if not a or not b:
        return (data1 + data2)[:max_out_size]
    out = a[:rng.randint(0, len(a))] + b[rng.randint(0, len(b) - 1):]
    return join_records(out[:MAX_RECORDS])[:max_out_size]


# ---------------------------------------------------------------- feedback proxy


class Features:
    """Turns observations into calls of instrumented functions: each new
    observation key is a new coverage feature for libFuzzer."""

    N = 1024

    def __init__(self, instrument):
        src = "\n".join(f"def f{i}():\n    return {i}" for i in range(self.N))
        ns: dict = {}
        exec(compile(src, "<rtransport-fuzz-features>", "exec"), ns)
        self.fns = [instrument(ns[f"f{i}"]) for i in range(self.N)]
        self.index: dict = {}

    def hit(self, key):
        i = self.index.get(key)
        if i is None:
            if len(self.index) < self.N:
                i = len(self.index)
            else:
                i = zlib.crc32(repr(key).encode()) % self.N
            self.index[key] = i
        self.fns[i]()


def _bucket(n: int) -> int:
    return 1 if n == 1 else 2 if n == 2 else 3 if n <= 4 else 4 if n <= 16 else 5


# ---------------------------------------------------------------- the target


class HarnessError(AssertionError):
    """An invariant of the harness failed (reported as a crash)."""


class Target:
    """One context with endpoints A and B, A connected to B, a remote-access
    region, posted receive buffers; recreated every ``check_every`` inputs."""

    def __init__(self, check_every=1000, mode="cycle", features=None, stats_path=None,
                 verbose=True, strict_recv=False, allow_known=False):
        import logging
        logging.getLogger("rtransport").setLevel(logging.CRITICAL)  # peers time out by design
        import rtransport as rt
        from rtransport import ffi, lib
        self.rt, self.ffi, self.lib = rt, ffi, lib
        if not hasattr(lib, "rt_inject_packet"):
            raise SystemExit("rtransport._rt has no rt_inject_packet: rebuild the binding "
                             "(python3 -m pip install .) from a tree whose "
                             "rtransport/_cdef.h declares it")
        self.check_every = max(1, int(check_every))
        self.mode = mode
        self.features = features
        self.stats_path = stats_path
        self.verbose = verbose
        self.strict_recv = strict_recv
        self.allow_known = allow_known
        self.epoch = 0
        self.n = 0            # inputs run in total
        self.n_epoch = 0      # inputs in this epoch
        self.recent: list = []  # inputs of this epoch (for the liveness dump)
        self.totals: dict = {}
        self.summary = {"inputs": 0, "records": 0, "injected": 0, "via_socket": 0,
                        "inject_errors": 0, "primes": 0, "epochs": 0, "liveness_checks": 0,
                        "liveness_failures": 0, "completions": 0, "sink_packets": 0,
                        "modes": {}}
        self.t0 = time.monotonic()
        self.sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sink.bind(("127.0.0.1", 0))
        self.sink.setblocking(False)
        self.sink_port = self.sink.getsockname()[1]
        self.sink_tos = -1
        self.sink_buf = bytearray(65536)
        self._st = ffi.new("struct rt_ep_stats *")
        self._wc = ffi.new("struct rt_wc[]", 64)
        self._st_fields = [name for name, _ in ffi.typeof("struct rt_ep_stats").fields]
        gauges = {"srtt_us", "rttvar_us", "min_rtt_us", "cwnd_bytes", "inflight_bytes"}
        # every field is a uint64_t; the cdef may not name all of them
        self._st_counters = [ffi.offsetof("struct rt_ep_stats", f) // 8
                             for f in self._st_fields if f not in gauges]
        self._st_fmt = struct.Struct(f"={ffi.sizeof('struct rt_ep_stats') // 8}Q")
        self._open()

    # -- epoch setup / teardown

    def _epoch_mode(self):
        if self.mode != "cycle":
            return self.mode
        return ("plain", "csum", "fault", "plain")[self.epoch % 4]

    def _open(self):
        rt = self.rt
        mode = self._epoch_mode()
        self.cur_mode = mode
        self.summary["modes"][mode] = self.summary["modes"].get(mode, 0) + 1
        # short timeouts: primed fake peers (which never answer unless an
        # input does) fail quickly instead of retransmitting for long
        kw = dict(progress="manual", timeout_ms=150, rnr_timeout_ms=150, num_paths=4,
                  rto_min_us=30000, checksum=mode in ("csum", "fault"))
        if mode == "fault":
            kw["fault"] = rt.FaultConfig(seed=self.epoch + 1, drop=0.02, dup=0.02,
                                         reorder=0.02, delay=0.02, delay_us=2000,
                                         corrupt=0.02)
        self.ctx = rt.Context(**kw)
        self.ctxp = self.ctx._ptr
        self.ctx_port = self.ctx.port
        self.A = self.ctx.endpoint()
        self.B = self.ctx.endpoint()
        self.pab = self.A.connect(self.B)   # A's handle of B
        self.pba = self.B.connect(self.A)   # B's handle of A
        self.ids = {}
        for name, ep in (("A", self.A), ("B", self.B)):
            a = ep.address
            self.ids[name] = (a[12:16], a[16:24])
        A_ = rt.Access
        full = A_.LOCAL_WRITE | A_.REMOTE_WRITE | A_.REMOTE_READ | A_.REMOTE_ATOMIC
        # guarded buffers: [GUARD][registered bytes][GUARD]
        self.bufs = []

        def guarded(n, access, fill=0):
            raw = bytearray(b"\xa5" * GUARD + bytes([fill]) * n + b"\xa5" * GUARD)
            mr = self.ctx.register(memoryview(raw)[GUARD:GUARD + n], access)
            self.bufs.append((raw, n, fill if access in (A_.REMOTE_READ, A_.LOCAL_WRITE)
                              else None))
            return mr, raw

        self.mr_all, self.buf_all = guarded(REGION_LEN, full)
        self.mr_ro, _ = guarded(REGION_LEN, A_.REMOTE_READ, 0x3C)
        self.mr_local, _ = guarded(REGION_LEN, A_.LOCAL_WRITE, 0x4D)
        self.mr_empty, _ = guarded(0, full)
        self.rkeys = [struct.pack(">Q", m.rkey) for m in
                      (self.mr_all, self.mr_ro, self.mr_local, self.mr_empty)]
        # receive slots of B and A (each slot guarded by GUARD bytes)
        self.slot_off = []
        off = GUARD
        for n in RECV_SLOTS:
            self.slot_off.append((off, n))
            off += n + GUARD
        self.recv_raw = bytearray(b"\xa5" * off)
        self.mr_recv = self.ctx.register(self.recv_raw, A_.LOCAL_WRITE)
        self.slot_i = 0
        for _ in RECV_SLOTS:
            self._post_recv(self.B)
        # A gets the binding's internal receive buffers (Endpoint.recv() keeps
        # them posted); liveness uses A.recv(), which skips fuzzed messages
        self.A.prepare_recv(2, 8192)
        self.alive_raw = bytearray(4096)
        self.mr_alive = self.ctx.register(self.alive_raw, A_.LOCAL_WRITE)
        # source / destination of the operations PRIME posts
        self.mr_prime, _ = guarded(4096, full, 0x11)
        self.fake_desc = struct.pack(">HBBIQQ8x", 0x524D, 1, 0x0F, 0, 0xC0FFEE, 1 << 20)
        self.primed = set()
        # ACK oracle (see _oracle_check): per primed fake peer key = (target, ident)
        self.oracle_acks = {}     # key -> [(cum, [(start, end), ...]), ...] it sent
        self.oracle_wrap = set()  # keys that sent a SACK range of the known issue
        self.oracle_next = {}     # key -> 1 + highest PSN the target sent it (seen at the sink)
        self.oracle_pend = {}     # key -> {(op, msg_len): wr_id} primed, PSNs not seen yet
        self.prime_wr = {}        # wr_id -> [key, PSNs it needs acknowledged, what]
        self.wr = 1 << 44  # primed work requests (receive slots use small wr_ids)
        self.pnonce = (0xF3 << 56) | (self.epoch + 1)
        self.prev_stats = {ep: None for ep in ("A", "B")}
        self._feedback(True)

    def _post_recv(self, ep):
        off, n = self.slot_off[self.slot_i % len(self.slot_off)]
        self.slot_i += 1
        ep.post_recv(self.mr_recv, off, n, wr_id=self.slot_i)

    def _close(self):
        for name, st in self._final_stats().items():
            tot = self.totals.setdefault(name, {})
            for k, v in st.items():
                tot[k] = tot.get(k, 0) + v
        self.ctx.close()
        self.summary["epochs"] += 1
        self.epoch += 1

    def _final_stats(self):
        return {"A": self.A.stats(), "B": self.B.stats()}

    # -- identities

    def _identity(self, sel, target):
        if sel == ID_F:
            return struct.pack(">I", 0x0F000001), struct.pack(">Q", (0xF1 << 56) | self.n)
        if sel == ID_G:
            return struct.pack(">I", 0x0F000002), struct.pack(">Q", (0xF2 << 56) | self.n)
        if sel == ID_P:
            return struct.pack(">I", 0x0F000003), struct.pack(">Q", self.pnonce)
        ep, nonce = self.ids["B" if target == "A" else "A"]
        n = int.from_bytes(nonce, "big") ^ (1 << 62)
        return ep, struct.pack(">Q", n or 1)

    def _address_of(self, ep_id: bytes, nonce: bytes) -> bytes:
        return struct.pack(">HBBHH", 0x5241, 1, 4, self.sink_port, 0) + \
            socket.inet_aton("127.0.0.1") + ep_id + nonce + b"\0" * 8

    def _prime(self, target, ident):
        key = (target, ident)
        if key in self.primed:
            return
        self.primed.add(key)
        self.summary["primes"] += 1
        ep = self.A if target == "A" else self.B
        peer = ep.connect(self._address_of(*ident))
        mr, d = self.mr_prime, self.fake_desc
        w = self.wr
        self.wr += 6
        ep.post_send(peer, mr, 0, 64, wr_id=w)
        ep.post_write(peer, mr, 64, 128, remote=d, remote_offset=0, imm=0x1234, wr_id=w + 1)
        ep.post_read(peer, mr, 256, 256, remote=d, remote_offset=64, wr_id=w + 2)
        ep.post_atomic_fetch_add(peer, mr, 512, remote=d, remote_offset=8, add=1, wr_id=w + 3)
        ep.post_atomic_cmp_swap(peer, mr, 520, remote=d, remote_offset=16, compare=0, swap=1,
                                wr_id=w + 4)
        ep.post_send(peer, mr, 1024, PRIME_SEND_BIG, wr_id=w + 5)
        # a fresh peer gets PSN 0..7 (SEND, WRITE, READ, FETCH_ADD, CMP_SWAP, 3 x SEND)
        # but responses to its own requests may come first: learn the real PSNs
        # of the SENDs and the WRITE from the packets the target sends (sink)
        self.oracle_acks.setdefault(key, [])
        self.oracle_pend[key] = {(OP_SEND, 64): w, (OP_WRITE, 128): w + 1,
                                 (OP_SEND, PRIME_SEND_BIG): w + 5}
        for k, what, npk in ((0, "SEND", 1), (1, "WRITE_IMM", 1), (5, "SEND", 3)):
            self.prime_wr[w + k] = [key, set(), what, npk]
        self.lib.rt_ctx_progress(self.ctxp)
        self._drain_sink()

    # -- one input

    def _build(self, ctl0, ctl1, raw):
        target = "A" if ctl0 & DST_A else "B"
        pkt = bytearray(raw)
        if len(pkt) < HDR:
            return target, None, bytes(pkt)
        ident = None
        if ctl0 & PATCH_DST:
            ep, nonce = self.ids[target]
            pkt[O_DST_EP:O_DST_EP + 4] = ep
            pkt[O_DST_NONCE:O_DST_NONCE + 8] = nonce
        if ctl0 & PATCH_SRC:
            ident = self._identity(ctl1 & 3, target)
            pkt[O_SRC_PORT:O_SRC_PORT + 2] = struct.pack(">H", self.sink_port)
            pkt[O_SRC_EP:O_SRC_EP + 4] = ident[0]
            pkt[O_SRC_NONCE:O_SRC_NONCE + 8] = ident[1]
        elif pkt[O_SRC_PORT] or pkt[O_SRC_PORT + 1]:
            pkt[O_SRC_PORT:O_SRC_PORT + 2] = struct.pack(">H", self.sink_port)
        src = (bytes(pkt[O_SRC_EP:O_SRC_EP + 4]), bytes(pkt[O_SRC_NONCE:O_SRC_NONCE + 8]))
        if src == self.ids["A"] or src == self.ids["B"]:
            pkt[O_SRC_NONCE + 7] ^= 1  # never spoof the real peers (see docstring)
        if self.allow_known and len(pkt) >= HDR + ACK_HDR and pkt[3] == T_ACK:
            self._avoid_known(pkt)
        if ctl0 & PATCH_RKEY and len(pkt) >= HDR + DATA_HDR and pkt[3] == T_DATA:
            pkt[O_RKEY:O_RKEY + 8] = self.rkeys[(ctl1 >> 4) & 3]
        if ctl0 & PATCH_LEN:
            pkt[O_LEN:O_LEN + 2] = struct.pack(">H", (len(pkt) - HDR) & 0xFFFF)
        if ctl0 & PATCH_CSUM:
            pkt[O_FLAGS + 1] |= HF_CSUM
            pkt[O_CSUM:O_CSUM + 4] = b"\0\0\0\0"
            pkt[O_CSUM:O_CSUM + 4] = struct.pack(">I", crc32c(pkt) or 1)
        return target, ident, bytes(pkt)

    def run(self, data: bytes):
        self.n += 1
        self.n_epoch += 1
        self.summary["inputs"] += 1
        self.recent.append(data)
        lib = self.lib
        recs = parse_records(data)
        self.summary["records"] += len(recs)
        feat = self.features
        touched_a = False
        for ctl0, ctl1, raw in recs:
            touched_a |= bool(ctl0 & DST_A)
            target, ident, pkt = self._build(ctl0, ctl1, raw)
            if ctl0 & PRIME and self.n_epoch < self.check_every:
                self._prime(target, ident or self._identity(ctl1 & 3, target))
            if ident is not None and len(pkt) >= HDR + ACK_HDR and pkt[3] == T_ACK:
                self._oracle_ack((target, ident), pkt)
            if ctl0 & VIA_SOCKET:
                tos = (ctl1 >> 2) & 3
                if tos != self.sink_tos:
                    self.sink.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, tos)
                    self.sink_tos = tos
                try:
                    self.sink.sendto(pkt, ("127.0.0.1", self.ctx_port))
                    self.summary["via_socket"] += 1
                except OSError:
                    pass
                lib.rt_ctx_progress(self.ctxp)
            else:
                rc = lib.rt_inject_packet(self.ctxp, pkt, len(pkt), b"127.0.0.1",
                                          self.sink_port)
                self.summary["injected"] += 1
                if rc != 0:
                    self.summary["inject_errors"] += 1
                    if feat:
                        feat.hit(("inject-rc", rc))
        lib.rt_ctx_progress(self.ctxp)
        self._feedback(touched_a or self.n_epoch % 64 == 0)
        self._check_guards()
        self._post_recv(self.B)
        if self.n_epoch >= self.check_every:
            self.checkpoint()

    # -- observation

    def _avoid_known(self, pkt):
        """--rt-allow-known: steer around known issue 'sack-range-past-snd-nxt'
        (a SACK range starting below 2^31 and ending at/above it, i.e. past
        any snd_nxt these short-lived peers reach, wrapped): shrink it to one
        PSN.  Such a range costs up to seconds of CPU per range today."""
        for i in range((len(pkt) - HDR - ACK_HDR) // 8):
            o = HDR + ACK_HDR + 8 * i
            st, en = struct.unpack_from(">II", pkt, o)
            if st < 1 << 31 <= en:
                struct.pack_into(">I", pkt, o + 4, st + 1)
                self.summary["known_issue_avoided"] = \
                    self.summary.get("known_issue_avoided", 0) + 1

    def _oracle_ack(self, key, pkt):
        """Remember an ACK a primed fake peer sent (validity is not checked,
        so what the oracle counts as acknowledged is a superset)."""
        acks = self.oracle_acks.get(key)
        if acks is None:
            return
        cum = struct.unpack_from(">I", pkt, HDR)[0]
        ranges = [struct.unpack_from(">II", pkt, HDR + ACK_HDR + 8 * i)
                  for i in range(min(64, (len(pkt) - HDR - ACK_HDR) // 8))]
        if len(acks) < 256:
            acks.append((cum, ranges))
        nxt = self.oracle_next.get(key, 0)
        for st, en in ranges:
            # start at/after snd_nxt, end "before" it (wrapped), start before end
            if ((st - nxt) & M32) < 1 << 31 and ((nxt - en) & M32) < 1 << 31 \
                    and 0 < ((en - st) & M32) < 1 << 31:
                self.oracle_wrap.add(key)

    def _oracle_acked(self, key, psn):
        for cum, ranges in self.oracle_acks.get(key, ()):
            if 0 < ((cum - psn) & M32) < 1 << 31:  # psn before cum
                return True
            for st, en in ranges:
                if ((psn - st) & M32) < ((en - st) & M32):
                    return True
        return False

    def _oracle_sent(self, dst_ep, dst_nonce, src_ep, d):
        """A DATA packet the target sent to a fake peer (seen at the sink)."""
        target = "A" if src_ep == self.ids["A"][0] else "B"
        key = (target, (dst_ep, dst_nonce))
        if key not in self.oracle_acks:
            return
        psn, op, dflags, _, _, _, msg_len = _DATA.unpack_from(d, 0)[:7]
        if ((psn + 1 - self.oracle_next.get(key, 0)) & M32) < 1 << 31:
            self.oracle_next[key] = (psn + 1) & M32
        if dflags & DF_RETX:
            return
        wr = self.oracle_pend.get(key, {}).get((op, msg_len))
        ent = self.prime_wr.get(wr)
        if ent is not None and len(ent[1]) < ent[3]:
            ent[1].add(psn)

    def _oracle_check(self, wr_id, status):
        """A primed SEND or WRITE completed: SUCCESS needs every one of its
        PSNs acknowledged by some ACK the fake peer sent (the harness is
        that peer, and it only acknowledges what an input says)."""
        ent = self.prime_wr.pop(wr_id, None)
        if ent is None or status != 0:
            return
        key, need, what, npk = ent
        if len(need) != npk:
            return  # did not see all its packets: cannot judge
        self.summary["oracle_checked"] = self.summary.get("oracle_checked", 0) + 1
        missing = sorted(q for q in need if not self._oracle_acked(key, q))
        if not missing:
            return
        msg = (f"ACK oracle: a primed {what} to a fake peer completed with SUCCESS, but "
               f"PSN {missing} was never acknowledged by any ACK that peer sent")
        if key in self.oracle_wrap:
            msg += (" (known issue 'sack-range-past-snd-nxt': a SACK range that starts "
                    "at/after snd_nxt and ends 2^31 or more after it is not clamped by "
                    "csrc/sender.c ack_range(); --rt-allow-known steers around it)")
        raise HarnessError(msg)

    def _feedback(self, touched_a=True):
        feat = self.features
        for name, ep in (("A", self.A), ("B", self.B)):
            if name == "A" and not touched_a:
                continue
            self.lib.rt_ep_stats(ep._ptr, self._st, self.ffi.sizeof(self._st[0]))
            raw = bytes(self.ffi.buffer(self._st))
            prev = self.prev_stats[name]
            if feat and prev is not None and raw != prev:
                a, b = self._st_fmt.unpack(prev), self._st_fmt.unpack(raw)
                for i in self._st_counters:
                    if b[i] != a[i]:
                        feat.hit((name, i, _bucket(b[i] - a[i])))
            self.prev_stats[name] = raw
        # A: through the binding (its internal receive buffers need the
        # dispatch); B has only the harness's own work requests
        if touched_a:
            for c in self.A.cq.poll(64):
                self.summary["completions"] += 1
                if c.wr_id >> 44:
                    self._oracle_check(c.wr_id, int(c.status))
                if feat:
                    feat.hit(("wc", "A", int(c.opcode), int(c.status), c.imm is not None))
        wc = self._wc
        while True:
            got = self.lib.rt_cq_poll(self.B.cq._ptr, wc, 64)
            for i in range(got):
                w = wc[i]
                self.summary["completions"] += 1
                if w.wr_id >> 44:
                    self._oracle_check(w.wr_id, w.status)
                if feat:
                    feat.hit(("wc", "B", w.opcode, w.status, w.flags))
                if w.opcode == 1:  # RECV consumed a slot: repost
                    self._post_recv(self.B)
            if got < 64:
                break
        self._drain_sink()

    def _drain_sink(self):
        feat = self.features
        buf = self.sink_buf
        for _ in range(256):
            try:
                n = self.sink.recv_into(buf)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                break
            self.summary["sink_packets"] += 1
            if n < HDR:
                continue
            t = buf[3]
            if t == T_DATA and n >= HDR + DATA_HDR:
                self._oracle_sent(bytes(buf[O_DST_EP:O_DST_EP + 4]),
                                  bytes(buf[O_DST_NONCE:O_DST_NONCE + 8]),
                                  bytes(buf[O_SRC_EP:O_SRC_EP + 4]), buf[HDR:HDR + DATA_HDR])
                if feat:
                    feat.hit(("out-data", buf[HDR + 4], buf[HDR + 5]))
            elif not feat:
                continue
            elif t == T_ACK and n >= HDR + ACK_HDR:
                feat.hit(("out-ack", min(buf[HDR + 14], 4), buf[HDR + 15]))
            elif t == T_NAK and n >= HDR + NAK_HDR:
                feat.hit(("out-nak", buf[HDR + 8], buf[HDR + 9]))

    def _check_guards(self):
        g = b"\xa5" * GUARD
        for raw, n, fill in self.bufs:
            if raw[:GUARD] != g or raw[GUARD + n:] != g:
                raise HarnessError(f"guard bytes around a registered region of {n} bytes "
                                   "were overwritten (write outside the region)")
            if fill is not None and raw[GUARD:GUARD + n].count(fill) != n:
                raise HarnessError(f"a region without REMOTE_WRITE ({n} bytes, fill "
                                   f"{fill:#x}) was modified by a remote packet")
        r = self.recv_raw
        end = 0
        for off, n in self.slot_off:
            if r[end:off].count(0xA5) != off - end:
                raise HarnessError("guard bytes between receive buffers were overwritten")
            end = off + n
        if r[end:].count(0xA5) != len(r) - end:
            raise HarnessError("guard bytes after the last receive buffer were overwritten")

    # -- liveness and epochs

    def _liveness(self):
        """A -> B and B -> A still work, with the exact payloads.

        Each direction first posts a fresh receive buffer on the receiver
        (an application that keeps posting buffers must keep being served);
        with --rt-strict-recv the B -> A direction instead relies on the
        binding's Endpoint.recv() buffer accounting (prepare_recv), which
        also catches buffers pinned by fuzzed peers (see docs/testing.md).
        """
        rt = self.rt
        self.summary["liveness_checks"] += 1
        tok1 = b"A->B:" + os.urandom(8) + struct.pack(">Q", self.n)
        self._post_recv(self.B)
        try:
            self.A.send(self.pab, tok1, timeout=5)
        except rt.RTError as e:
            raise HarnessError(f"liveness: A could not send to B after {self.n_epoch} "
                               f"fuzz inputs: {e!r}") from None
        deadline = time.monotonic() + 5
        got = False
        while not got and time.monotonic() < deadline:
            for c in self.B.cq.wait(timeout=0.05):
                if int(c.opcode) == 1:
                    self._post_recv(self.B)
                if (int(c.opcode) == 1 and c.ok and c.peer is not None
                        and c.peer.address == self.A.address and c.byte_len == len(tok1)):
                    off, _ = self.slot_off[(c.wr_id - 1) % len(self.slot_off)]
                    data = bytes(self.recv_raw[off:off + len(tok1)])
                    if data != tok1:
                        raise HarnessError(f"liveness: B received {data!r}, expected {tok1!r}")
                    got = True
        if not got:
            raise HarnessError("liveness: B never completed the receive of A's message")
        tok2 = b"B->A:" + os.urandom(8) + struct.pack(">Q", self.n)
        live_wr = (1 << 40) | self.n
        if self.strict_recv:
            self.A.prepare_recv(1, 4096)
        else:
            self.A.post_recv(self.mr_alive, 0, len(self.alive_raw), wr_id=live_wr)
        try:
            self.B.send(self.pba, tok2, timeout=5)
        except rt.RTError as e:
            raise HarnessError(f"liveness: B could not send to A: {e!r}") from None
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            for c in self.A.cq.wait(timeout=0.02):
                if c.wr_id == live_wr and c.ok and c.byte_len == len(tok2):
                    data = bytes(self.alive_raw[:len(tok2)])
                    if data != tok2:
                        raise HarnessError(f"liveness: A received {data!r}, expected {tok2!r}")
                    return
            try:  # or it landed in one of the binding's internal buffers
                data, peer = self.A.recv(timeout=0, max_size=8192)
            except (rt.RTTimeoutError, rt.CompletionError):
                continue
            if data == tok2 and peer is not None and peer.address == self.B.address:
                return
        raise HarnessError("liveness: A never received B's message")

    def checkpoint(self, final=False):
        try:
            self._liveness()
        except HarnessError as e:
            self.summary["liveness_failures"] += 1
            self._dump_recent(str(e))
            self.write_stats()
            raise
        if not final:
            self._close()
            self.n_epoch = 0
            self.recent = []
            self._open()
        self.write_stats()
        if self.verbose and (self.summary["epochs"] % 20 == 0 or final):
            s, b = self.summary, self._merged_totals().get("B", {})
            sys.stderr.write(
                f"[rt-fuzz] inputs={s['inputs']} epochs={s['epochs']} liveness_ok="
                f"{s['liveness_checks'] - s['liveness_failures']} B: malformed="
                f"{b.get('malformed', 0)} foreign={b.get('foreign', 0)} rx_packets="
                f"{b.get('rx_packets', 0)} naks_sent={b.get('naks_sent', 0)} acks_received="
                f"{b.get('acks_received', 0)} ({time.monotonic() - self.t0:.0f} s)\n")

    def _dump_recent(self, why):
        d = os.path.join(FUZZ_DIR, f"liveness-{int(time.time())}-{os.getpid()}")
        try:
            os.makedirs(d, exist_ok=True)
            for i, blob in enumerate(self.recent):
                with open(os.path.join(d, f"{i:06d}"), "wb") as f:
                    f.write(blob)
            with open(os.path.join(d, "README"), "w") as f:
                f.write(f"{why}\nmode={self.cur_mode} epoch={self.epoch}\n"
                        f"replay: python3 tests/fuzz_decoder.py --rt-replay "
                        f"--rt-mode={self.cur_mode} --rt-check-every={len(self.recent)} {d}\n")
            sys.stderr.write(f"[rt-fuzz] {why}\n[rt-fuzz] the {len(self.recent)} inputs of "
                             f"this epoch are in {d}\n")
        except OSError:
            pass

    def _merged_totals(self):
        out = {k: dict(v) for k, v in self.totals.items()}
        try:
            cur = self._final_stats()
        except Exception:
            return out
        for name, st in cur.items():
            tot = out.setdefault(name, {})
            for k, v in st.items():
                tot[k] = tot.get(k, 0) + v
        return out

    def write_stats(self):
        if not self.stats_path:
            return
        doc = dict(self.summary)
        doc["seconds"] = round(time.monotonic() - self.t0, 3)
        doc["stats"] = self._merged_totals()
        doc["features"] = len(self.features.index) if self.features else 0
        tmp = self.stats_path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(doc, f, indent=1, sort_keys=True)
        os.replace(tmp, self.stats_path)


# ---------------------------------------------------------------- main


def _parse_own(argv):
    opts = {"check_every": 1000, "mode": "cycle", "stats": os.environ.get("RT_FUZZ_STATS"),
            "seeds": True, "write_seeds": None, "replay": False, "strict_recv": False,
            "random": None, "seed": 1,
            "allow_known": os.environ.get("RT_FUZZ_ALLOW_KNOWN", "") not in ("", "0")}
    rest = []
    for a in argv:
        if a.startswith("--rt-check-every="):
            opts["check_every"] = int(a.split("=", 1)[1])
        elif a.startswith("--rt-mode="):
            opts["mode"] = a.split("=", 1)[1]
            if opts["mode"] not in ("plain", "csum", "fault", "cycle"):
                raise SystemExit(f"--rt-mode must be plain, csum, fault or cycle: {a}")
        elif a.startswith("--rt-stats="):
            opts["stats"] = a.split("=", 1)[1]
        elif a == "--rt-no-seeds":
            opts["seeds"] = False
        elif a.startswith("--rt-write-seeds="):
            opts["write_seeds"] = a.split("=", 1)[1]
        elif a == "--rt-replay":
            opts["replay"] = True
        elif a.startswith("--rt-random="):
            opts["random"] = int(a.split("=", 1)[1])
        elif a.startswith("--rt-seed="):
            opts["seed"] = int(a.split("=", 1)[1])
        elif a == "--rt-allow-known":
            opts["allow_known"] = True
        elif a == "--rt-strict-recv":
            opts["strict_recv"] = True
        elif a.startswith("--rt-"):
            raise SystemExit(f"unknown option {a} (see the docstring of {__file__})")
        else:
            rest.append(a)
    return opts, rest


def _replay(target, paths):
    files = []
    for p in paths:
        if os.path.isdir(p):
            files += sorted(os.path.join(p, f) for f in os.listdir(p)
                            if os.path.isfile(os.path.join(p, f)) and f != "README")
        else:
            files.append(p)
    for f in files:
        with open(f, "rb") as fh:
            target.run(fh.read())
    target.checkpoint(final=True)
    print(f"replayed {len(files)} inputs, liveness ok", file=sys.stderr)


def _random_run(target, runs, seed, extra_paths):
    """Fuzz without libFuzzer: seeds (and the given corpus files), then
    ``runs`` inputs made by the same structure-aware mutator, parents
    picked from the inputs that produced new observations (the feedback
    proxy above).  Deterministic for a given seed; needs no atheris."""
    rng = random.Random(seed)
    pool = [blob for _, blob in seed_inputs()]
    for p in extra_paths:
        names = sorted(os.listdir(p)) if os.path.isdir(p) else [p]
        for f in names:
            f = os.path.join(p, f) if os.path.isdir(p) else f
            if os.path.isfile(f):
                with open(f, "rb") as fh:
                    pool.append(fh.read())
    feats = target.features
    for blob in list(pool):
        target.run(blob)
    byte_mutate = lambda d, m: _py_byte_mutate(rng, d, m)  # noqa: E731
    for _ in range(runs):
        if rng.random() < 0.1 and len(pool) > 1:
            child = custom_crossover(rng.choice(pool), rng.choice(pool), 12000,
                                     rng.getrandbits(32))
        else:
            child = custom_mutator(rng.choice(pool), 12000, rng.getrandbits(32), byte_mutate)
        before = len(feats.index)
        target.run(child)
        if len(feats.index) > before:
            pool.append(child)
    target.checkpoint(final=True)
    sys.stderr.write(f"[rt-fuzz] random mode: {runs} mutated inputs after "
                     f"{len(seed_inputs())} seeds, pool {len(pool)}, "
                     f"{len(feats.index)} distinct observations\n")


def main(argv=None):
    global crc32c
    argv = list(sys.argv if argv is None else argv)
    opts, rest = _parse_own(argv[1:])
    crc32c = _crc32c_native() or _crc32c_py
    if opts["write_seeds"]:
        n = write_seeds(opts["write_seeds"])
        print(f"wrote {n} seed inputs to {opts['write_seeds']}")
        return 0
    if opts["random"] is not None:
        target = Target(opts["check_every"], opts["mode"], Features(lambda f: f),
                        opts["stats"], strict_recv=opts["strict_recv"],
                        allow_known=opts["allow_known"])
        _random_run(target, opts["random"], opts["seed"], rest)
        target.write_stats()
        return 0
    if opts["replay"]:
        target = Target(opts["check_every"], opts["mode"], None, opts["stats"],
                        strict_recv=opts["strict_recv"],
                        allow_known=opts["allow_known"])
        _replay(target, rest)
        target.write_stats()
        return 0

    import atheris

    positional = [a for a in rest if not a.startswith("-")]
    flags = [a for a in rest if a.startswith("-")]
    if not any(f.startswith("-artifact_prefix=") for f in flags):
        os.makedirs(FUZZ_DIR, exist_ok=True)
        flags.append(f"-artifact_prefix={FUZZ_DIR}{os.sep}")
    if not positional:
        corpus = os.path.join(FUZZ_DIR, "corpus")
        os.makedirs(corpus, exist_ok=True)
        positional = [corpus]
    if opts["seeds"] and all(os.path.isdir(p) for p in positional):
        seeds = os.path.join(FUZZ_DIR, "seeds")
        write_seeds(seeds)
        positional.append(seeds)
    if not any(f.startswith("-max_len=") for f in flags):
        flags.append("-max_len=12000")

    features = Features(atheris.instrument_func)
    target = Target(opts["check_every"], opts["mode"], features, opts["stats"],
                    strict_recv=opts["strict_recv"], allow_known=opts["allow_known"])

    def test_one_input(data: bytes):
        target.run(data)

    # libFuzzer ends with exit(): Python's atexit does not run, a C one does.
    def _at_exit(status, _arg):
        try:
            if status == 0 and target.n_epoch:
                target.checkpoint(final=True)
            target.write_stats()
        except BaseException as e:  # noqa: BLE001 - report and fail the run
            sys.stderr.write(f"[rt-fuzz] final check failed: {e}\n")
            sys.stderr.flush()
            os._exit(1)
        sys.stderr.flush()

    global _EXIT_CB
    _EXIT_CB = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_void_p)(_at_exit)
    ctypes.CDLL("libc.so.6").on_exit(_EXIT_CB, None)

    atheris.Setup([argv[0]] + flags + positional, test_one_input,
                  custom_mutator=custom_mutator, custom_crossover=custom_crossover)
    atheris.Fuzz()
    return 0


_EXIT_CB = None

if __name__ == "__main__":
    sys.exit(main())
