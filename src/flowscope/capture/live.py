"""Live capture from a network interface: AF_PACKET with a TPACKET_V3 memory-mapped ring.

The kernel copies every packet that passes the capture filter into a ring of blocks
shared with this process, stamping it with a nanosecond time; user space never makes
a system call per packet and never creates a Python object per packet. When a block
is full, or its retire timer fires with at least one packet in it, the kernel marks
it ready; :meth:`LiveCapture.read` then copies the packets of all ready blocks into a
:class:`PacketBatch` with one compiled call and hands the blocks back.

The ring is the queue between capture and processing: the kernel keeps filling it
whatever the consumer is doing, so a consumer that is briefly slow (a burst of
finished flows, garbage collection) costs nothing as long as the ring has room. When
it has none, the kernel drops packets and counts them; :attr:`LiveCapture.stats`
reports those drops along with everything else the capture did. See docs/capture.md.

Batch buffers are reused: a batch from :meth:`LiveCapture.read` or
:meth:`LiveCapture.batches` is valid until the next call (pass ``copy=True`` to get
batches that stay valid).
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import errno
import fcntl
import mmap
import os
import select
import socket
import struct
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from types import TracebackType

import numpy as np
import numpy.typing as npt

from flowscope.capture import bpf
from flowscope.capture.batch import (
    LINKTYPE_ETHERNET,
    LINKTYPE_LINUX_SLL2,
    LINKTYPE_RAW,
    PacketBatch,
)
from flowscope.errors import FlowscopeError

DEFAULT_BLOCK_SIZE = 4 * 1024 * 1024
DEFAULT_BLOCK_COUNT = 64
DEFAULT_BLOCK_TIMEOUT_MS = 64
DEFAULT_BATCH_PACKETS = 65536
DEFAULT_POLL_TIMEOUT = 0.1
ANY = "any"


def ring_geometry(ring_size: int, block_size: int = DEFAULT_BLOCK_SIZE) -> tuple[int, int]:
    """Blocks of ``block_size`` bytes that fit ``ring_size`` (at least 2): (size, count).

    The configuration speaks in total bytes because that is what the user budgets; the
    kernel wants whole blocks. A ring smaller than two default blocks gets smaller,
    page-aligned blocks instead of fewer than two.
    """
    page = mmap.PAGESIZE
    if ring_size < 2 * block_size:
        block_size = max(page, (ring_size // 2) // page * page)
    return block_size, max(2, ring_size // block_size)


"""Interface name that captures on every interface of the namespace (cooked headers)."""

# Linux constants (linux/if_ether.h, linux/if_packet.h, linux/sockios.h, linux/if_arp.h).
ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_ADD_MEMBERSHIP = 1
PACKET_RX_RING = 5
PACKET_STATISTICS = 6
PACKET_VERSION = 10
PACKET_IGNORE_OUTGOING = 23
TPACKET_V3 = 2
PACKET_MR_PROMISC = 1
SIOCGIFNAME = 0x8910
SIOCGIFFLAGS = 0x8913
SIOCGIFHWADDR = 0x8927
SIOCGIFINDEX = 0x8933
IFF_UP = 0x1
CLONE_NEWNET = 0x40000000
TPACKET3_HDRLEN = 68  # TPACKET_ALIGN(sizeof(struct tpacket3_hdr)) + sizeof(struct sockaddr_ll)

ARPHRD_ETHER = 1
ARPHRD_LOOPBACK = 772
ARPHRD_NONE = 0xFFFE
ARPHRD_RAWIP = 519
ARPHRD_TUNNEL = 768
ARPHRD_TUNNEL6 = 769
ARPHRD_SIT = 776
ARPHRD_NAMES = {
    1: "ethernet",
    24: "ieee1394",
    32: "infiniband",
    280: "can",
    512: "ppp",
    519: "rawip",
    768: "ipip",
    769: "ip6tnl",
    772: "loopback",
    776: "sit",
    778: "gre",
    801: "ieee80211",
    803: "ieee80211-radiotap",
    823: "ip6gre",
    0xFFFE: "none",
    0xFFFF: "void",
}
# Devices without a link-layer header that only carry IP (tun, wireguard, ipip, sit...).
_RAW_IP_TYPES = frozenset({ARPHRD_NONE, ARPHRD_RAWIP, ARPHRD_TUNNEL, ARPHRD_TUNNEL6, ARPHRD_SIT})


def capture_linktype(hatype: int) -> int:
    """The PacketBatch link type a capture on a device of ARPHRD type ``hatype`` produces.

    Ethernet and loopback give Ethernet frames; devices that carry bare IP give raw IP;
    every other type (PPP, GRE, InfiniBand, Wi-Fi monitor...) and ``any`` is captured
    in cooked mode with a Linux "cooked v2" (SLL2) header in front of each packet.
    """
    if hatype in (ARPHRD_ETHER, ARPHRD_LOOPBACK):
        return LINKTYPE_ETHERNET
    if hatype in _RAW_IP_TYPES:
        return LINKTYPE_RAW
    return LINKTYPE_LINUX_SLL2


def hatype_name(hatype: int) -> str:
    return ARPHRD_NAMES.get(hatype, f"arphrd-{hatype}")


@dataclass(slots=True)
class LiveStats:
    """What a live capture has done; every way a packet can be lost has a counter.

    Kernel counters (``PACKET_STATISTICS``, summed here because reading resets them):
    ``kernel_packets`` passed the capture filter (including the dropped ones),
    ``kernel_drops`` found the ring full and were lost, ``kernel_freezes`` counts the
    times the ring filled up. Ours: ``packets``/``bytes`` delivered in batches (bytes
    as on the wire), ``batches`` (non-empty ones), ``blocks`` returned to the kernel,
    ``vlan_restored`` frames whose 802.1Q tag was put back, ``loopback_duplicates``
    outgoing copies skipped on loopback (each packet is seen leaving and arriving),
    ``truncated`` packets cut by the snap length, ``bad_headers`` malformed ring entries
    (never expected), ``peak_ready_blocks`` the deepest backlog seen (of
    ``ring_blocks``), ``link_down`` times the interface went down under the capture.
    """

    kernel_packets: int = 0
    kernel_drops: int = 0
    kernel_freezes: int = 0
    packets: int = 0
    bytes: int = 0
    batches: int = 0
    blocks: int = 0
    vlan_restored: int = 0
    loopback_duplicates: int = 0
    truncated: int = 0
    bad_headers: int = 0
    peak_ready_blocks: int = 0
    ring_blocks: int = 0
    link_down: int = 0

    @property
    def lost(self) -> int:
        """Packets lost by the capture layer: ring overflow plus unreadable ring entries."""
        return self.kernel_drops + self.bad_headers

    @property
    def pending(self) -> int:
        """Packets accepted by the kernel but not delivered yet (still in the ring)."""
        return max(
            0, self.kernel_packets - self.kernel_drops - self.packets - self.loopback_duplicates
        )


_libc = ctypes.CDLL(None, use_errno=True)


def _os_error(what: str) -> OSError:
    e = ctypes.get_errno()
    return OSError(e, f"{what}: {os.strerror(e)}")


@contextlib.contextmanager
def in_netns(netns: str | None) -> Iterator[None]:
    """Run the body with this thread in network namespace ``netns`` (a name or a path).

    Sockets keep the namespace they were created in, so a capture opened inside stays
    there. Names are looked up in /run/netns (as ``ip netns`` creates them). Needs
    CAP_SYS_ADMIN. ``None`` does nothing.
    """
    if netns is None:
        yield
        return
    path = netns if "/" in netns else f"/run/netns/{netns}"
    try:
        target = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise FlowscopeError(f"no network namespace {netns!r} (see `ip netns list`)") from None
    except OSError as e:
        raise FlowscopeError(f"cannot open network namespace {netns!r}: {e.strerror}") from None
    try:
        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            if _libc.setns(target, CLONE_NEWNET) != 0:
                err = ctypes.get_errno()
                raise FlowscopeError(
                    f"cannot enter network namespace {netns!r}: {os.strerror(err)}"
                    + (" (needs root)" if err == errno.EPERM else "")
                )
            try:
                yield
            finally:
                if _libc.setns(home, CLONE_NEWNET) != 0:  # pragma: no cover - cannot happen
                    raise _os_error("cannot return to the original network namespace")
        finally:
            os.close(home)
    finally:
        os.close(target)


def privilege_hint() -> str:
    """How to get capture rights, with the exact setcap command for this interpreter."""
    try:  # the binary actually running, all symlinks resolved by the kernel
        exe = os.readlink("/proc/self/exe")
    except OSError:
        exe = os.path.realpath(sys.executable)
    return (
        "run as root (e.g. sudo), or give the interpreter the capture capabilities with "
        f"`sudo setcap cap_net_raw,cap_net_admin=eip {exe}` (every script run by that "
        "interpreter then gets them: prefer a dedicated venv made with "
        "`python3 -m venv --copies` and grant its own python)"
    )


def _ifreq(name: str, payload: bytes = b"") -> bytes:
    return struct.pack("16s", name.encode()) + payload.ljust(24, b"\x00")


def _interface_names() -> list[str]:
    try:
        return [n for _, n in sorted(socket.if_nameindex())]
    except OSError:
        return []


@dataclass(frozen=True, slots=True)
class _Iface:
    name: str
    index: int
    hatype: int
    up: bool


def _lookup_interface(name: str) -> _Iface:
    """Index, ARPHRD type and state of an interface in the current namespace (no privilege)."""
    if name == ANY:
        return _Iface(ANY, 0, 0xFFFF, True)
    if not name or len(name.encode()) > 15 or "/" in name or "\x00" in name:
        raise FlowscopeError(f"invalid interface name {name!r}")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        try:
            res = fcntl.ioctl(s.fileno(), SIOCGIFINDEX, _ifreq(name))
        except OSError as e:
            if e.errno in (errno.ENODEV, errno.ENXIO):
                names = ", ".join(_interface_names()) or "none"
                raise FlowscopeError(
                    f"no interface named {name!r}; available: {names} (or {ANY!r})"
                ) from None
            raise FlowscopeError(f"cannot look up interface {name!r}: {e.strerror}") from None
        index = struct.unpack_from("=i", res, 16)[0]
        res = fcntl.ioctl(s.fileno(), SIOCGIFHWADDR, _ifreq(name))
        hatype = struct.unpack_from("=H", res, 16)[0]
        res = fcntl.ioctl(s.fileno(), SIOCGIFFLAGS, _ifreq(name))
        flags = struct.unpack_from("=H", res, 16)[0]
    return _Iface(name, index, hatype, bool(flags & IFF_UP))


def _permission_error(iface: str, what: str) -> FlowscopeError:
    return FlowscopeError(f"no permission to {what} on {iface}: {privilege_hint()}")


class LiveCapture:
    """Packets of one interface (or ``"any"``) as a stream of :class:`PacketBatch`.

    Opening does all the setup and raises a one-line :class:`FlowscopeError` for an
    unknown interface, a bad filter, missing privileges or a ring the kernel cannot
    allocate. Then either call :meth:`read` in your own loop or iterate
    :meth:`batches`; close with :meth:`close` or a ``with`` block.

    Parameters: ``bpf_filter`` a tcpdump-syntax filter (default: everything);
    ``tcp_only`` adds the filter ``tcp``; ``promisc`` asks for promiscuous mode
    (dropped automatically when the capture closes; not used with ``"any"``);
    ``snaplen`` bytes kept per packet; ``block_size``/``block_count`` the ring
    geometry (block size a multiple of the page size; the ring holds
    ``block_size * block_count`` bytes of kernel memory); ``block_timeout_ms`` how long
    a partly filled block waits before it is handed over, which bounds the latency at
    low packet rates; ``batch_packets`` most packets per batch; ``poll_timeout``
    seconds :meth:`batches` waits before yielding an empty batch; ``netns`` the
    network namespace (name under /run/netns, or a path) the interface lives in.
    """

    def __init__(
        self,
        interface: str,
        *,
        bpf_filter: str | None = None,
        tcp_only: bool = False,
        promisc: bool = True,
        snaplen: int = bpf.MAX_SNAPLEN,
        block_size: int = DEFAULT_BLOCK_SIZE,
        block_count: int = DEFAULT_BLOCK_COUNT,
        block_timeout_ms: int = DEFAULT_BLOCK_TIMEOUT_MS,
        batch_packets: int = DEFAULT_BATCH_PACKETS,
        poll_timeout: float = DEFAULT_POLL_TIMEOUT,
        netns: str | None = None,
    ) -> None:
        page = mmap.PAGESIZE
        if block_size < page or block_size % page:
            raise FlowscopeError(f"ring block size must be a multiple of {page} bytes")
        if block_count < 2:
            raise FlowscopeError("the ring needs at least 2 blocks")
        if block_size * block_count >= 1 << 32:
            raise FlowscopeError("the ring must be smaller than 4 GiB")
        if not 1 <= block_timeout_ms <= 60_000:
            raise FlowscopeError("block timeout must be between 1 and 60000 ms")
        if batch_packets < 1:
            raise FlowscopeError("batch_packets must be at least 1")
        self.interface = interface
        self.netns = netns
        self.block_size = block_size
        self.block_count = block_count
        self.poll_timeout = poll_timeout
        self._timeout_ms = block_timeout_ms
        self.promisc = promisc and interface != ANY
        self._closed = True
        self._sock: socket.socket | None = None
        self._mm: mmap.mmap | None = None
        self._lock = threading.Lock()  # kernel statistics are read-and-reset
        self._io_lock = threading.Lock()  # the ring is never unmapped under a read
        self._stats = LiveStats(ring_blocks=block_count)

        from flowscope.capture import _live_kernel as kern

        self._kern = kern
        self._state = np.zeros(kern.S_NCOLS, np.int64)
        self._counters = np.zeros(kern.C_NCOLS, np.int64)

        with in_netns(netns):
            iface = _lookup_interface(interface)
            self.ifindex = iface.index
            self.hatype = iface.hatype
            self.link_up = iface.up
            self.linktype = capture_linktype(iface.hatype)  # "any" (ARPHRD_VOID): cooked
            if self.linktype == LINKTYPE_ETHERNET:
                self._mode, sock_type, dlt = kern.MODE_ETHERNET, socket.SOCK_RAW, bpf.DLT_EN10MB
            elif self.linktype == LINKTYPE_RAW:
                self._mode, sock_type, dlt = kern.MODE_RAW, socket.SOCK_DGRAM, bpf.DLT_RAW
            else:
                # Cooked mode: the kernel hands over (and filters) packets from the
                # network header on; the SLL2 header is rebuilt from sockaddr_ll.
                self._mode, sock_type, dlt = kern.MODE_SLL2, socket.SOCK_DGRAM, bpf.DLT_RAW
            expr = bpf.combine(bpf_filter, tcp_only)
            self.filter = expr
            program = bpf.compile_filter(expr, dlt, snaplen) if expr else None
            if program is None and snaplen < bpf.MAX_SNAPLEN:
                program = bpf.accept_all(snaplen)
            self.snaplen = snaplen
            try:
                lo = socket.if_nametoindex("lo")
            except OSError:
                lo = -1
            self._lo_ifindex = lo if interface == ANY or iface.hatype == ARPHRD_LOOPBACK else -1
            # Compile (or load) the ring kernel before any packet can arrive.
            self._alloc_outputs(batch_packets)
            warm_up()
            try:
                # Protocol 0: nothing is queued until bind() below, after the filter.
                self._sock = socket.socket(socket.AF_PACKET, sock_type, 0)
            except PermissionError:
                raise _permission_error(interface, "capture") from None
            except OSError as e:
                raise FlowscopeError(f"cannot open a packet socket: {e.strerror}") from None
        try:
            self._setup(program)
        except BaseException:
            self._teardown()
            raise
        self._closed = False

    # -- setup ------------------------------------------------------------------------

    def _setup(self, program: bpf.BpfProgram | None) -> None:
        sock = self._sock
        assert sock is not None
        sock.setsockopt(SOL_PACKET, PACKET_VERSION, TPACKET_V3)
        if program is not None:
            bpf.attach_filter(sock, program)
        if self.interface != ANY and self._lo_ifindex >= 0:
            # Loopback shows each packet twice (leaving, arriving): keep one. The ring
            # kernel skips them too, for kernels without this option.
            with contextlib.suppress(OSError):
                sock.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
        frame = 2048
        req = struct.pack(
            "=7I",
            self.block_size,
            self.block_count,
            frame,
            (self.block_size // frame) * self.block_count,
            self._timeout_ms,
            0,
            0,
        )
        size = self.block_size * self.block_count
        try:
            sock.setsockopt(SOL_PACKET, PACKET_RX_RING, req)
        except OSError as e:
            mib = size / 2**20
            if e.errno == errno.ENOMEM:
                raise FlowscopeError(
                    f"the kernel could not allocate a {mib:.0f} MiB capture ring: "
                    "use fewer or smaller blocks"
                ) from None
            raise FlowscopeError(f"the kernel refused the capture ring: {e.strerror}") from None
        try:
            self._mm = mmap.mmap(
                sock.fileno(), size, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ | mmap.PROT_WRITE
            )
        except OSError as e:
            raise FlowscopeError(f"cannot map the capture ring: {e.strerror}") from None
        self._ring8 = np.frombuffer(self._mm, np.uint8)
        self._ring16 = self._ring8.view(np.uint16)
        self._ring32 = self._ring8.view(np.uint32)
        addr = struct.pack("=H", socket.AF_PACKET) + struct.pack("!H", ETH_P_ALL)
        addr += struct.pack("=iHBB8s", self.ifindex, 0, 0, 0, b"")
        if _libc.bind(sock.fileno(), addr, len(addr)) != 0:
            err = ctypes.get_errno()
            raise FlowscopeError(f"cannot bind to interface {self.interface}: {os.strerror(err)}")
        if self.promisc:
            mreq = struct.pack("=iHH8s", self.ifindex, PACKET_MR_PROMISC, 0, b"")
            try:
                sock.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP, mreq)
            except PermissionError:
                raise FlowscopeError(
                    f"no permission for promiscuous mode on {self.interface}: capture "
                    f"without it (promisc=False), or {privilege_hint()}"
                ) from None
            except OSError as e:
                raise FlowscopeError(
                    f"cannot enable promiscuous mode on {self.interface}: {e.strerror}"
                ) from None
        self._poll = select.poll()
        self._poll.register(sock.fileno(), select.POLLIN | select.POLLERR)

    def _alloc_outputs(self, batch_packets: int) -> None:
        # Every packet of a block fits an empty buffer (each carries >= 68 header bytes
        # in the ring, more than the at most 24 bytes of SLL2 header and VLAN tag added).
        data_bytes = max(2 * self.block_size, 1 << 20)
        self._out_data = np.empty(data_bytes, np.uint8)
        self._out_off = np.empty(batch_packets, np.int64)
        self._out_cap = np.empty(batch_packets, np.int32)
        self._out_wire = np.empty(batch_packets, np.int32)
        self._out_ts = np.empty(batch_packets, np.int64)
        self._out_lt = np.full(batch_packets, self.linktype, np.int32)

    def _teardown(self) -> None:
        for name in ("_ring8", "_ring16", "_ring32"):
            if hasattr(self, name):
                delattr(self, name)
        if self._mm is not None:
            with contextlib.suppress(BufferError):
                self._mm.close()
            self._mm = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    # -- reading ----------------------------------------------------------------------

    def fileno(self) -> int:
        """The packet socket (readable when a block is ready), for select/poll loops."""
        if self._sock is None:
            raise ValueError("capture is closed")
        return self._sock.fileno()

    def _drain(self) -> tuple[int, int]:
        k = self._kern
        n, nbytes = k.drain(
            self._ring8, self._ring16, self._ring32, self.block_size, self.block_count,
            self._mode, self._lo_ifindex, self._state, self._counters,
            self._out_data, self._out_off, self._out_cap, self._out_wire, self._out_ts,
        )  # fmt: skip
        return int(n), int(nbytes)

    def _wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s for a ready block; False on timeout."""
        events = self._poll.poll(max(0, int(timeout * 1000)))
        if not events:
            return False
        if events[0][1] & select.POLLERR:
            self._socket_error()
            return False
        return True

    def _socket_error(self) -> None:
        """The socket reported an error: the interface went down, or went away."""
        sock = self._sock
        assert sock is not None
        err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err == errno.ENETDOWN:
            # Capture resumes by itself when the link comes back, unless it is gone.
            try:
                fcntl.ioctl(sock.fileno(), SIOCGIFNAME, struct.pack("=16si20x", b"", self.ifindex))
            except OSError:
                raise FlowscopeError(f"interface {self.interface} disappeared") from None
            self._stats.link_down += 1
        elif err:
            raise FlowscopeError(f"capture on {self.interface} failed: {os.strerror(err)}")

    def _batch(self, n: int, nbytes: int, copy: bool) -> PacketBatch:
        parts = (
            self._out_data[:nbytes],
            self._out_off[:n],
            self._out_cap[:n],
            self._out_wire[:n],
            self._out_ts[:n],
            self._out_lt[:n],
        )
        if copy:
            parts = tuple(p.copy() for p in parts)  # type: ignore[assignment]
        return PacketBatch(*parts)

    def read(self, timeout: float | None = None, *, copy: bool = False) -> PacketBatch:
        """The packets of every block ready now, waiting up to ``timeout`` s for one.

        Returns an empty batch when nothing arrived in time (``timeout`` defaults to
        :attr:`poll_timeout`). At most ``batch_packets`` packets: call again for the
        rest, which is returned at once. Unless ``copy``, the batch's arrays are reused
        by the next call.
        """
        batch = self._read(self.poll_timeout if timeout is None else timeout, copy)
        if batch is None:
            raise ValueError("capture is closed")
        return batch

    def _read(self, timeout: float, copy: bool) -> PacketBatch | None:
        """:meth:`read`, or None once the capture is closed (possibly by another thread)."""
        with self._io_lock:
            if self._closed:
                return None
            n, nbytes = self._drain()
            if n == 0 and self._wait(timeout):
                n, nbytes = self._drain()
            if n:
                self._stats.packets += n
                self._stats.batches += 1
            return self._batch(n, nbytes, copy)

    def batches(
        self,
        stop_event: threading.Event | None = None,
        *,
        copy: bool = False,
        idle: bool = True,
    ) -> Iterator[PacketBatch]:
        """Yield batches until ``stop_event`` is set or the capture is closed.

        A batch comes as soon as a ring block is ready (a full block, or the retire
        timeout after the first packet of a quiet period). When nothing arrives for
        :attr:`poll_timeout` seconds an empty batch is yielded (``idle=False`` skips
        them), so a consumer can run its timers, such as flow expiry. Without
        ``copy`` a batch is valid only until the next iteration step.
        """
        while stop_event is None or not stop_event.is_set():
            batch = self._read(self.poll_timeout, copy)
            if batch is None:
                return
            if len(batch) or idle:
                yield batch

    @property
    def stats(self) -> LiveStats:
        """Counters so far (reads, and accumulates, the kernel's statistics)."""
        self._read_kernel_stats()
        c = self._counters
        k = self._kern
        s = self._stats
        s.blocks = int(c[k.C_BLOCKS])
        s.vlan_restored = int(c[k.C_VLAN])
        s.loopback_duplicates = int(c[k.C_OUT_DUP])
        s.truncated = int(c[k.C_TRUNC])
        s.bad_headers = int(c[k.C_BAD])
        s.peak_ready_blocks = int(c[k.C_PEAK_READY])
        s.bytes = int(c[k.C_BYTES])
        return dataclasses.replace(s)

    def _read_kernel_stats(self) -> None:
        with self._lock:
            if self._sock is None:
                return
            raw = self._sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 12)
            packets, drops, freezes = struct.unpack("=3I", raw)
            self._stats.kernel_packets += packets
            self._stats.kernel_drops += drops
            self._stats.kernel_freezes += freezes

    # -- closing ----------------------------------------------------------------------

    def close(self) -> None:
        """Stop capturing and release the ring (promiscuous mode ends with the socket).

        Safe to call from another thread than the reader's: it waits for a read in
        progress (at most ``poll_timeout``), and :meth:`batches` then ends.
        """
        if self._closed:
            return
        self._closed = True
        with self._io_lock:  # waits for a read() in progress in another thread
            with contextlib.suppress(OSError):
                self._read_kernel_stats()
            with self._lock:
                self._teardown()

    def __enter__(self) -> LiveCapture:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        where = f" in {self.netns}" if self.netns else ""
        return f"LiveCapture({self.interface!r}{where}, linktype={self.linktype})"


def warm_up() -> None:
    """Compile (or load from the cache) the ring kernel, on a fake one-block ring."""
    from flowscope.capture import _live_kernel as kern

    ring = np.zeros(4096, np.uint8)
    out: tuple[npt.NDArray[np.generic], ...] = (
        np.zeros(64, np.uint8),
        np.zeros(1, np.int64),
        np.zeros(1, np.int32),
        np.zeros(1, np.int32),
        np.zeros(1, np.int64),
    )
    kern.drain(
        ring, ring.view(np.uint16), ring.view(np.uint32), 4096, 1, 0, -1,
        np.zeros(kern.S_NCOLS, np.int64), np.zeros(kern.C_NCOLS, np.int64), *out,
    )  # fmt: skip
