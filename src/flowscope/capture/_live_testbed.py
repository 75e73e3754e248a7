"""A private veth test bed and a fast raw-frame sender, for live-capture tests and benchmarks.

:class:`VethNamespace` creates a network namespace ``fsc-<random>`` holding both ends of
a veth pair (no addresses outside it, nothing routed anywhere) and deletes it, with
everything in it, on exit. :class:`RawSender` writes prepared Ethernet frames to one
end through an AF_PACKET socket with ``sendmmsg`` (hundreds of frames per system
call, no Python work per frame), optionally paced to a packet rate; the other end is
where a :class:`~flowscope.capture.live.LiveCapture` listens.

Run as a module to send from a separate process (benchmarks pin it to its own core)::

    python -m flowscope.capture._live_testbed --netns fsc-1a2b3c4d --iface snd \\
        --packets 1000000 --rate 250000 --flows 1000

It prints one JSON line: frames sent, frames the kernel refused (``ENOBUFS``), seconds.
Needs root (CAP_NET_RAW, CAP_SYS_ADMIN for the namespace).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import errno
import json
import os
import secrets
import socket
import struct
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType

from flowscope.capture.live import in_netns

MAC_SND = bytes.fromhex("02fc00000001")
MAC_RCV = bytes.fromhex("02fc00000002")
# Frames are addressed to a MAC nobody has: the receiving stack drops them at once
# (PACKET_OTHERHOST), so the only work they cause is the capture's.
MAC_NOBODY = bytes.fromhex("02fc000000ee")
IP_SND = "10.213.0.1"
IP_RCV = "10.213.0.2"
_SENDMMSG_CHUNK = 256


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\x00"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def udp_frame(
    sport: int,
    dport: int = 9,
    *,
    payload: int | bytes = 18,
    src: str = IP_SND,
    dst: str = IP_RCV,
    dst_mac: bytes = MAC_NOBODY,
    vlans: Sequence[tuple[int, int]] = (),
) -> bytes:
    """An Ethernet/IPv4/UDP frame; ``vlans``: (TPID, VLAN id) tags, outermost first.

    The default 18-byte payload makes a 60-byte frame, the Ethernet minimum.
    """
    body = payload if isinstance(payload, bytes) else bytes(payload)
    udp = struct.pack("!HHHH", sport, dport, 8 + len(body), 0) + body
    ip = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        0,
        20 + len(udp),
        sport & 0xFFFF,
        0x4000,
        64,
        17,
        0,
        socket.inet_aton(src),
        socket.inet_aton(dst),
    )
    ip = ip[:10] + struct.pack("!H", _checksum(ip)) + ip[12:]
    tags = b"".join(struct.pack("!HH", tpid, vid & 0x0FFF) for tpid, vid in vlans)
    return dst_mac + MAC_SND + tags + b"\x08\x00" + ip + udp


def udp_flows(flows: int, *, payload: int = 18, first_port: int = 20000) -> list[bytes]:
    """One frame per flow: flow ``i`` has source port ``first_port + i``."""
    if not 1 <= flows <= 65535 - first_port:
        raise ValueError(f"flows must be between 1 and {65535 - first_port}")
    return [udp_frame(first_port + i, payload=payload) for i in range(flows)]


def _run(*args: str) -> None:
    p = subprocess.run(list(args), capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: {p.stderr.strip() or p.returncode}")


class VethNamespace:
    """Namespace ``fsc-<8 hex>`` with veth ``snd`` ↔ ``rcv`` inside; deleted on exit.

    IPv6 is disabled in it (no neighbour discovery or MLD chatter), ``snd`` has
    10.213.0.1/24 and ``rcv`` 10.213.0.2/24, both up. Needs root and ``ip``.
    """

    def __init__(self) -> None:
        self.name = f"fsc-{secrets.token_hex(4)}"
        self.snd = "snd"
        self.rcv = "rcv"
        self._made = False

    def __enter__(self) -> VethNamespace:
        try:
            _run("ip", "netns", "add", self.name)
            self._made = True
            ns = ("ip", "-n", self.name)
            _run(*ns, "link", "set", "lo", "up")
            _run(
                "ip",
                "netns",
                "exec",
                self.name,
                "sysctl",
                "-qw",
                "net.ipv6.conf.all.disable_ipv6=1",
            )
            _run(
                "ip",
                "netns",
                "exec",
                self.name,
                "sysctl",
                "-qw",
                "net.ipv6.conf.default.disable_ipv6=1",
            )
            _run(*ns, "link", "add", self.snd, "address", MAC_SND.hex(":"), "type", "veth",
                 "peer", "name", self.rcv, "address", MAC_RCV.hex(":"))  # fmt: skip
            _run(*ns, "addr", "add", f"{IP_SND}/24", "dev", self.snd)
            _run(*ns, "addr", "add", f"{IP_RCV}/24", "dev", self.rcv)
            _run(*ns, "link", "set", self.snd, "up")
            _run(*ns, "link", "set", self.rcv, "up")
        except BaseException:
            self.delete()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.delete()

    def delete(self) -> None:
        """Delete the namespace (and its veth pair); kill anything still running in it."""
        if not self._made:
            return
        p = subprocess.run(["ip", "netns", "pids", self.name], capture_output=True, text=True)
        for pid in p.stdout.split():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), 9)
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)
        self._made = False

    def rx_dropped(self, iface: str) -> int:
        """The interface's rx_dropped counter (veth: frames its peer could not deliver)."""
        p = subprocess.run(
            ["ip", "-n", self.name, "-j", "-s", "link", "show", iface],
            capture_output=True,
            text=True,
        )
        try:
            return int(json.loads(p.stdout)[0]["stats64"]["rx"]["dropped"])
        except (ValueError, KeyError, IndexError):
            return 0


class _Iovec(ctypes.Structure):
    _fields_ = [("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t)]


class _Msghdr(ctypes.Structure):
    _fields_ = [
        ("msg_name", ctypes.c_void_p),
        ("msg_namelen", ctypes.c_uint32),
        ("msg_iov", ctypes.POINTER(_Iovec)),
        ("msg_iovlen", ctypes.c_size_t),
        ("msg_control", ctypes.c_void_p),
        ("msg_controllen", ctypes.c_size_t),
        ("msg_flags", ctypes.c_int),
    ]


class _Mmsghdr(ctypes.Structure):
    _fields_ = [("msg_hdr", _Msghdr), ("msg_len", ctypes.c_uint)]


_libc = ctypes.CDLL(None, use_errno=True)
_libc.sendmmsg.restype = ctypes.c_int
_libc.sendmmsg.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int]


@dataclass(slots=True)
class SendResult:
    sent: int
    refused: int  # frames the kernel would not take (ENOBUFS); retried, not counted as sent
    seconds: float


class RawSender:
    """Sends prepared frames on ``iface`` (in ``netns``) with sendmmsg, cycling through them."""

    def __init__(self, iface: str, frames: Sequence[bytes], netns: str | None = None) -> None:
        if not frames:
            raise ValueError("no frames to send")
        with in_netns(netns):
            # Protocol 0: the socket receives nothing, it only sends.
            self._sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        self._sock.bind((iface, 0))
        with contextlib.suppress(OSError):  # PACKET_QDISC_BYPASS: straight to the driver
            self._sock.setsockopt(263, 20, 1)
        n = len(frames)
        # Repeat the frame list so that any chunk of up to _SENDMMSG_CHUNK is contiguous.
        reps = -(-_SENDMMSG_CHUNK // n) + 1
        self._bufs = [ctypes.create_string_buffer(f, len(f)) for f in frames]
        self._n = n
        total = n * reps
        self._iov = (_Iovec * total)()
        self._msgs = (_Mmsghdr * total)()
        for i in range(total):
            b = self._bufs[i % n]
            self._iov[i].iov_base = ctypes.addressof(b)
            self._iov[i].iov_len = len(b)
            self._msgs[i].msg_hdr.msg_iov = ctypes.pointer(self._iov[i])
            self._msgs[i].msg_hdr.msg_iovlen = 1
        self._pos = 0

    def _send_chunk(self, count: int) -> tuple[int, bool]:
        """Send up to ``count`` frames; returns (sent, refused-by-kernel)."""
        count = min(count, _SENDMMSG_CHUNK)
        addr = ctypes.addressof(self._msgs) + self._pos * ctypes.sizeof(_Mmsghdr)
        r = _libc.sendmmsg(self._sock.fileno(), addr, count, 0)
        if r < 0:
            e = ctypes.get_errno()
            if e in (errno.ENOBUFS, errno.EAGAIN):
                return 0, True
            raise OSError(e, os.strerror(e))
        self._pos = (self._pos + r) % self._n
        return r, r < count

    def send(self, packets: int, rate: float | None = None) -> SendResult:
        """Send ``packets`` frames, at ``rate`` packets/s if given (paced in small bursts)."""
        sent = refused = 0
        t0 = time.perf_counter()
        burst = _SENDMMSG_CHUNK if rate is None else max(1, min(_SENDMMSG_CHUNK, int(rate / 2000)))
        while sent < packets:
            if rate is not None:
                due = t0 + sent / rate
                wait = due - time.perf_counter()
                if wait > 0:
                    time.sleep(wait)
            got, short = self._send_chunk(min(burst, packets - sent))
            sent += got
            if short:
                refused += 1
                time.sleep(0.0001)
        return SendResult(sent, refused, time.perf_counter() - t0)

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> RawSender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--netns", required=True)
    ap.add_argument("--iface", default="snd")
    ap.add_argument("--packets", type=int, required=True)
    ap.add_argument("--rate", type=float, default=None, help="packets/s (default: flat out)")
    ap.add_argument("--flows", type=int, default=1000)
    ap.add_argument("--payload", type=int, default=18)
    ap.add_argument("--cpu", type=int, default=None, help="pin to this CPU")
    a = ap.parse_args(argv)
    if a.cpu is not None:
        os.sched_setaffinity(0, {a.cpu})
    with RawSender(a.iface, udp_flows(a.flows, payload=a.payload), a.netns) as s:
        r = s.send(a.packets, a.rate)
    print(json.dumps({"sent": r.sent, "refused": r.refused, "seconds": r.seconds}), flush=True)


if __name__ == "__main__":
    _main()
