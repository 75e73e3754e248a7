"""Capture filters: tcpdump expressions compiled by libpcap, attached as classic BPF.

libpcap is used only as a compiler, through ctypes: ``pcap_open_dead`` gives a handle
for a link type without opening any device, ``pcap_compile`` turns the expression into
classic BPF instructions, and the instructions are copied out before ``pcap_freecode``.
The kernel then runs the program on every packet before it is put into the capture
ring (``SO_ATTACH_FILTER``), so filtered-out packets cost neither ring space nor a copy.

The program's accept value is the snap length: the kernel keeps that many bytes of a
matching packet. With no expression, a one-instruction "accept ``snaplen`` bytes"
program is attached only when a snap length below the maximum is asked for.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import socket
import struct
from dataclasses import dataclass
from functools import cache
from typing import Any

from flowscope.errors import FlowscopeError

MAX_SNAPLEN = 262144
TCP_ONLY = "tcp"
"""The filter behind the ``tcp_only`` option: TCP over IPv4 and IPv6, nothing else."""

# Data link types as libpcap's compiler knows them (DLT_*; not always the LINKTYPE_*).
DLT_EN10MB = 1
DLT_RAW = 12  # Linux value of DLT_RAW: packets start with the IP header
_PCAP_NETMASK_UNKNOWN = 0xFFFFFFFF
_SO_ATTACH_FILTER = 26
_BPF_RET_K = 0x06
_BPF_MAXINSNS = 4096
_INSN = struct.Struct("=HBBI")  # struct sock_filter / struct bpf_insn: code, jt, jf, k


class _BpfInsn(ctypes.Structure):
    _fields_ = [
        ("code", ctypes.c_ushort),
        ("jt", ctypes.c_ubyte),
        ("jf", ctypes.c_ubyte),
        ("k", ctypes.c_uint32),
    ]


class _BpfProgram(ctypes.Structure):
    _fields_ = [("bf_len", ctypes.c_uint), ("bf_insns", ctypes.POINTER(_BpfInsn))]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


@dataclass(frozen=True, slots=True)
class BpfProgram:
    """A compiled filter: the expression it came from and its instructions.

    ``instructions``: ``(code, jt, jf, k)`` tuples, the layout of ``struct sock_filter``.
    """

    expression: str
    instructions: tuple[tuple[int, int, int, int], ...]

    def __len__(self) -> int:
        return len(self.instructions)

    def packed(self) -> bytes:
        """The instructions as the kernel reads them (8 bytes each, host byte order)."""
        return b"".join(_INSN.pack(*i) for i in self.instructions)

    def matches_all(self) -> bool:
        """True for the single "accept" program (no filtering, only a snap length)."""
        return len(self.instructions) == 1 and self.instructions[0][0] == _BPF_RET_K


@cache
def _libpcap() -> Any:
    """libpcap loaded once, with the four functions used here typed."""
    name = ctypes.util.find_library("pcap")
    candidates = [name] if name else []
    candidates += ["libpcap.so.1", "libpcap.so.0.8", "libpcap.so"]
    lib = None
    for c in candidates:
        with contextlib.suppress(OSError):
            lib = ctypes.CDLL(c)
            break
    if lib is None:
        raise FlowscopeError(
            "capture filters need libpcap, which was not found: install it "
            "(Debian/Ubuntu: apt install libpcap0.8; Fedora: dnf install libpcap)"
        )
    lib.pcap_open_dead.restype = ctypes.c_void_p
    lib.pcap_open_dead.argtypes = [ctypes.c_int, ctypes.c_int]
    lib.pcap_compile.restype = ctypes.c_int
    lib.pcap_compile.argtypes = [
        ctypes.c_void_p,
        ctypes.POINTER(_BpfProgram),
        ctypes.c_char_p,
        ctypes.c_int,
        ctypes.c_uint32,
    ]
    lib.pcap_geterr.restype = ctypes.c_char_p
    lib.pcap_geterr.argtypes = [ctypes.c_void_p]
    lib.pcap_freecode.restype = None
    lib.pcap_freecode.argtypes = [ctypes.POINTER(_BpfProgram)]
    lib.pcap_close.restype = None
    lib.pcap_close.argtypes = [ctypes.c_void_p]
    return lib


def accept_all(snaplen: int = MAX_SNAPLEN) -> BpfProgram:
    """The program that keeps every packet, cut to ``snaplen`` bytes."""
    return BpfProgram("", ((_BPF_RET_K, 0, 0, _check_snaplen(snaplen)),))


def _check_snaplen(snaplen: int) -> int:
    if not 1 <= snaplen <= MAX_SNAPLEN:
        raise FlowscopeError(f"snap length must be between 1 and {MAX_SNAPLEN}, got {snaplen}")
    return snaplen


def combine(expression: str | None, tcp_only: bool) -> str:
    """The expression to compile for a user's filter and the ``tcp_only`` option."""
    expr = (expression or "").strip()
    if tcp_only:
        return f"{TCP_ONLY} and ({expr})" if expr else TCP_ONLY
    return expr


def compile_filter(
    expression: str, dlt: int = DLT_EN10MB, snaplen: int = MAX_SNAPLEN
) -> BpfProgram:
    """Compile a tcpdump-syntax filter for link type ``dlt`` (a libpcap DLT_* value).

    An empty expression gives :func:`accept_all`. A bad expression raises a one-line
    :class:`FlowscopeError` carrying libpcap's own message.
    """
    expr = expression.strip()
    _check_snaplen(snaplen)
    if not expr:
        return accept_all(snaplen)
    if "\x00" in expr:
        raise FlowscopeError(f"invalid capture filter {expression!r}: contains a NUL character")
    lib = _libpcap()
    handle = lib.pcap_open_dead(dlt, snaplen)
    if not handle:
        raise FlowscopeError("libpcap could not create a compiler handle (out of memory?)")
    prog = _BpfProgram()
    try:
        rc = lib.pcap_compile(handle, ctypes.byref(prog), expr.encode(), 1, _PCAP_NETMASK_UNKNOWN)
        if rc != 0:
            raw = lib.pcap_geterr(handle) or b"unknown error"
            msg = " ".join(raw.decode(errors="replace").split())
            raise FlowscopeError(f"invalid capture filter {expr!r}: {msg}")
        try:
            insns = tuple(
                (int(i.code), int(i.jt), int(i.jf), int(i.k)) for i in prog.bf_insns[: prog.bf_len]
            )
        finally:
            lib.pcap_freecode(ctypes.byref(prog))
    finally:
        lib.pcap_close(handle)
    if len(insns) > _BPF_MAXINSNS:
        raise FlowscopeError(
            f"capture filter {expr!r} compiles to {len(insns)} instructions; "
            f"the kernel accepts at most {_BPF_MAXINSNS}: simplify it"
        )
    return BpfProgram(expr, insns)


def attach_filter(sock: socket.socket, program: BpfProgram) -> None:
    """Attach ``program`` to a socket (``SO_ATTACH_FILTER``); the kernel copies it."""
    n = len(program)
    buf = ctypes.create_string_buffer(program.packed(), n * _INSN.size)
    fprog = _SockFprog(n, ctypes.addressof(buf))
    try:
        sock.setsockopt(socket.SOL_SOCKET, _SO_ATTACH_FILTER, bytes(fprog))
    except OSError as e:
        what = f"capture filter {program.expression!r}" if program.expression else "snap length"
        raise FlowscopeError(f"the kernel refused the {what}: {e.strerror or e}") from None
