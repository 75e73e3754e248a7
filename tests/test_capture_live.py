"""Live capture (AF_PACKET, TPACKET_V3 ring): ring walk, BPF, privileges, real capture.

Three parts:

- the ring kernel on hand-built TPACKET_V3 blocks (no privileges needed): resuming
  inside a block, VLAN tag re-insertion, cooked (SLL2) headers, loopback duplicates,
  corrupt headers;
- filter compilation through libpcap and ``flowscope interfaces`` (no privileges);
- real captures (root): a private namespace ``fsc-<random>`` with a veth pair, frames
  sent on one end and captured on the other, then fed to FlowMeter. Only 10.213.0.x
  addresses inside that namespace; nothing leaves it. Includes a throughput smoke
  that prints captured/sent/dropped (informational, not a timing assertion).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest

from flowscope.capture import _live_kernel as K
from flowscope.capture import bpf
from flowscope.capture._live_testbed import (
    RawSender,
    VethNamespace,
    udp_flows,
    udp_frame,
)
from flowscope.capture.batch import LINKTYPE_ETHERNET, LINKTYPE_LINUX_SLL2, PacketBatch
from flowscope.capture.live import LiveCapture, in_netns
from flowscope.errors import FlowscopeError
from flowscope.flows.features import compute_features
from flowscope.flows.meter import FlowMeter, FlowRecords

# -- the ring kernel on synthetic blocks --------------------------------------------------

BLOCK = 4096
MAC_OFF = 80  # where the kernel would put an Ethernet header: data at 96, 16-aligned


def _block(
    ring: np.ndarray,
    index: int,
    packets: list[dict[str, object]],
    *,
    status: int = K.TP_STATUS_USER,
    block_size: int = BLOCK,
) -> None:
    """Write one TPACKET_V3 block: descriptor, then tpacket3_hdr + sockaddr_ll + data each."""
    buf = bytearray(block_size)
    pos = first = K.BD_SIZE
    for i, p in enumerate(packets):
        data = bytes(p["data"])
        mac = int(p.get("mac", MAC_OFF))
        nxt = (mac + len(data) + 15) & ~15
        last = i == len(packets) - 1
        struct.pack_into(
            "=IIIIIIHH",
            buf,
            pos,
            0 if last else nxt,
            int(p.get("sec", 1_700_000_000)),
            int(p.get("nsec", i)),
            len(data),
            int(p.get("wire", len(data))),
            int(p.get("status", 0)),
            mac,
            mac,
        )
        struct.pack_into("=IIH", buf, pos + 28, 0, int(p.get("tci", 0)), int(p.get("tpid", 0)))
        struct.pack_into(
            "=H2siHBB8s",
            buf,
            pos + K.SLL,
            socket.AF_PACKET,
            struct.pack("!H", int(p.get("proto", 0x0800))),
            int(p.get("ifindex", 2)),
            int(p.get("hatype", 1)),
            int(p.get("pkttype", 0)),
            6,
            bytes.fromhex("02fc00000001"),
        )
        buf[pos + mac : pos + mac + len(data)] = data
        pos += nxt
    struct.pack_into("=IIIIII", buf, 0, 3, 0, status, len(packets), first, pos)
    ring[index * block_size : (index + 1) * block_size] = np.frombuffer(bytes(buf), np.uint8)


class _Ring:
    """A fake ring plus the arrays drain() writes, with a helper that runs it."""

    def __init__(self, blocks: int, *, packets: int = 64, data: int = 2 * BLOCK) -> None:
        self.ring = np.zeros(blocks * BLOCK, np.uint8)
        self.blocks = blocks
        self.state = np.zeros(K.S_NCOLS, np.int64)
        self.counters = np.zeros(K.C_NCOLS, np.int64)
        self.out = (
            np.zeros(data, np.uint8),
            np.zeros(packets, np.int64),
            np.zeros(packets, np.int32),
            np.zeros(packets, np.int32),
            np.zeros(packets, np.int64),
        )

    def drain(self, mode: int = K.MODE_ETHERNET, lo: int = -1) -> list[tuple[bytes, int, int]]:
        """(bytes, caplen, wirelen) of the packets one drain() call returns."""
        r = self.ring
        n, _ = K.drain(
            r, r.view(np.uint16), r.view(np.uint32), BLOCK, self.blocks, mode, lo,
            self.state, self.counters, *self.out,
        )  # fmt: skip
        data, off, cap, wire, _ts = self.out
        return [
            (data[off[i] : off[i] + cap[i]].tobytes(), int(cap[i]), int(wire[i])) for i in range(n)
        ]

    def status(self, block: int) -> int:
        return int(self.ring.view(np.uint32)[block * BLOCK // 4 + K.BD_STATUS // 4])


def _frame(tag: int, size: int = 60) -> bytes:
    head = bytes.fromhex("02fc000000ee02fc00000001") + b"\x08\x00"
    return (head + bytes([tag]) * (size - 14))[:size]


def test_ring_walk_resumes_inside_a_block_and_releases_blocks() -> None:
    r = _Ring(3, packets=4)
    frames = [_frame(i, 60 + i) for i in range(10)]
    _block(r.ring, 0, [{"data": f} for f in frames[:6]])
    _block(r.ring, 1, [{"data": f} for f in frames[6:]])
    _block(r.ring, 2, [{"data": _frame(99)}], status=K.TP_STATUS_KERNEL)
    got: list[bytes] = []
    for _ in range(5):
        got += [b for b, _, _ in r.drain()]
    assert got == frames  # in order, none twice, none lost across the resume points
    assert r.status(0) == r.status(1) == K.TP_STATUS_KERNEL  # handed back
    assert r.counters[K.C_BLOCKS] == 2
    assert r.state[K.S_BLOCK] == 2  # waiting on the block the kernel still owns
    assert r.counters[K.C_PEAK_READY] == 2
    assert r.drain() == []
    # The kernel fills block 2: the walk continues there, then wraps around to 0.
    _block(r.ring, 2, [{"data": _frame(7)}])
    _block(r.ring, 0, [{"data": _frame(8)}])
    assert [b for b, _, _ in r.drain()] == [_frame(7), _frame(8)]
    assert r.state[K.S_BLOCK] == 1


def test_vlan_tag_is_put_back() -> None:
    r = _Ring(1)
    f = _frame(1, 64)
    vlan = K.TP_STATUS_VLAN_VALID
    both = vlan | K.TP_STATUS_VLAN_TPID_VALID
    _block(
        r.ring,
        0,
        [
            {"data": f, "status": vlan, "tci": 0x2064},  # no TPID given: 802.1Q assumed
            {"data": f, "status": both, "tci": 0x00C8, "tpid": 0x88A8},  # QinQ outer tag
            {"data": f, "wire": 1500, "status": both, "tci": 5, "tpid": 0x8100},  # snapped
        ],
    )
    (a, ca, wa), (b, cb, wb), (c, cc, wc) = r.drain()
    assert a == f[:12] + bytes.fromhex("81002064") + f[12:] and ca == wa == 68
    assert b == f[:12] + bytes.fromhex("88a800c8") + f[12:] and cb == wb == 68
    assert c[12:16] == bytes.fromhex("81000005") and (cc, wc) == (68, 1504)
    assert r.counters[K.C_VLAN] == 3
    assert r.counters[K.C_TRUNC] == 1
    assert r.counters[K.C_BYTES] == 68 + 68 + 1504


def test_cooked_mode_builds_sll2_headers() -> None:
    r = _Ring(1)
    ip = bytes.fromhex("45000014") + bytes(16)
    _block(
        r.ring,
        0,
        [
            {"data": ip, "mac": 96, "ifindex": 7, "hatype": 512, "pkttype": 4},
            {"data": ip, "mac": 96, "status": K.TP_STATUS_VLAN_VALID, "tci": 42},
        ],
    )
    (a, ca, _), (b, cb, _) = r.drain(K.MODE_SLL2)
    mac = bytes.fromhex("02fc00000001") + b"\x00\x00"
    assert a == b"\x08\x00\x00\x00" + struct.pack("!iHBB", 7, 512, 4, 6) + mac + ip
    assert ca == 20 + len(ip)
    # VLAN: the header's protocol becomes the TPID, then TCI and the real protocol.
    assert b[:2] == b"\x81\x00" and b[20:24] == b"\x00\x2a\x08\x00" and b[24:] == ip
    assert cb == 24 + len(ip)


def test_loopback_outgoing_copies_are_skipped() -> None:
    r = _Ring(1)
    f = _frame(3)
    _block(
        r.ring,
        0,
        [
            {"data": f, "pkttype": 4, "ifindex": 1},  # leaving lo: the duplicate
            {"data": f, "pkttype": 0, "ifindex": 1},  # arriving on lo: kept
            {"data": f, "pkttype": 4, "ifindex": 2},  # leaving another interface: kept
        ],
    )
    assert len(r.drain(lo=1)) == 2
    assert r.counters[K.C_OUT_DUP] == 1


def test_corrupt_header_ends_the_block_without_reading_out_of_bounds() -> None:
    r = _Ring(2)
    _block(r.ring, 0, [{"data": _frame(1)}, {"data": _frame(2)}])
    # Second packet's snap length runs past the end of the block.
    words = r.ring.view(np.uint32)
    first = K.BD_SIZE
    second = first + int(words[first // 4])
    words[(second + K.H_SNAPLEN) // 4] = 1 << 20
    _block(r.ring, 1, [{"data": _frame(3)}])
    got = [b for b, _, _ in r.drain()]
    assert got == [_frame(1), _frame(3)]
    assert r.counters[K.C_BAD] == 1
    assert r.status(0) == K.TP_STATUS_KERNEL


# -- filters and the interfaces command (no privileges) -----------------------------------


def _libpcap_missing() -> bool:
    try:
        bpf._libpcap()
    except FlowscopeError:
        return True
    return False


needs_libpcap = pytest.mark.skipif(_libpcap_missing(), reason="libpcap not installed")


@needs_libpcap
def test_filter_compiles_and_bad_filter_is_one_line() -> None:
    prog = bpf.compile_filter("tcp", bpf.DLT_EN10MB, snaplen=128)
    assert len(prog) > 3 and not prog.matches_all()
    assert (0x06, 0, 0, 128) in prog.instructions  # accepts 128 bytes
    assert bpf.compile_filter("").matches_all()
    assert bpf.combine("port 53", tcp_only=True) == "tcp and (port 53)"
    with pytest.raises(FlowscopeError) as e:
        bpf.compile_filter("tcp and and port 80")
    msg = str(e.value)
    assert "\n" not in msg and "invalid capture filter" in msg and "syntax error" in msg
    with pytest.raises(FlowscopeError, match="port"):
        bpf.compile_filter("port 99999")


def test_interfaces_command_lists_loopback() -> None:
    p = subprocess.run(
        [sys.executable, "-m", "flowscope", "interfaces", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 0, p.stderr
    rows = json.loads(p.stdout)
    lo = next(r for r in rows if r["name"] == "lo")
    assert lo["kind"] == "loopback" and lo["capture_linktype"] == "ethernet"
    assert any(a.startswith("127.") for a in lo["ipv4"])
    assert rows[-1]["name"] == "any"


# -- real captures in a private namespace (root) ------------------------------------------


def _root_skip() -> str | None:
    if os.geteuid() != 0:
        return "live capture tests need root (namespaces, raw sockets)"
    if shutil.which("ip") is None:
        return "live capture tests need iproute2 (`ip`)"
    return None


_why = _root_skip()
root = pytest.mark.root
needs_root = pytest.mark.skipif(_why is not None, reason=_why or "")

SMALL_RING = {"block_size": 1 << 20, "block_count": 8, "block_timeout_ms": 10}


@pytest.fixture(scope="module")
def bed() -> Iterator[VethNamespace]:
    with VethNamespace() as ns:
        yield ns


def _collect(cap: LiveCapture, want: int, timeout: float = 5.0) -> list[PacketBatch]:
    """Copies of the batches read until ``want`` packets came or ``timeout`` passed."""

    got: list[PacketBatch] = []
    n = 0
    deadline = time.monotonic() + timeout
    while n < want and time.monotonic() < deadline:
        b = cap.read(0.05, copy=True)
        if len(b):
            got.append(b)
            n += len(b)
    # Anything beyond what was expected arrives within a block timeout: catch it too.
    for _ in range(3):
        b = cap.read(0.03, copy=True)
        if len(b):
            got.append(b)
    return got


def _frames_of(batches: list[PacketBatch]) -> list[bytes]:
    return [
        b.data[b.offset[i] : b.offset[i] + b.caplen[i]].tobytes()
        for b in batches
        for i in range(len(b))
    ]


def _send(bed: VethNamespace, frames: list[bytes], count: int) -> int:
    with RawSender("snd", frames, bed.name) as s:
        return s.send(count).sent


@root
@needs_root
def test_every_packet_arrives_intact_and_in_order(bed: VethNamespace) -> None:
    frames = [udp_frame(30000 + i, payload=18 + 37 * i) for i in range(12)]  # 60..467 bytes
    n = 1200
    with LiveCapture("rcv", netns=bed.name, **SMALL_RING) as cap:
        assert cap.linktype == LINKTYPE_ETHERNET
        t0 = time.time_ns()
        assert _send(bed, frames, n) == n
        t1 = time.time_ns()
        batches = _collect(cap, n)
        stats = cap.stats
    got = _frames_of(batches)
    assert got == [frames[i % len(frames)] for i in range(n)]
    caplen = np.concatenate([b.caplen for b in batches])
    wirelen = np.concatenate([b.wirelen for b in batches])
    ts = np.concatenate([b.ts_ns for b in batches])
    assert (caplen == wirelen).all()
    assert (caplen == [len(frames[i % len(frames)]) for i in range(n)]).all()
    assert (np.diff(ts) >= 0).all() and t0 - 10**9 <= ts[0] and ts[-1] <= t1 + 10**9
    assert all((b.linktype == LINKTYPE_ETHERNET).all() for b in batches)
    assert stats.kernel_packets == n and stats.kernel_drops == 0 and stats.lost == 0
    assert stats.packets == n and stats.bytes == sum(len(f) for f in got)
    assert stats.pending == 0 and stats.blocks >= 1


@root
@needs_root
def test_flowmeter_sees_the_expected_flows(bed: VethNamespace) -> None:
    flows, per_flow = 25, 40
    with LiveCapture("rcv", netns=bed.name, **SMALL_RING) as cap:
        sent = _send(bed, udp_flows(flows, payload=100), flows * per_flow)
        meter = FlowMeter()
        parts: list[FlowRecords] = []
        seen = 0
        deadline = time.monotonic() + 5
        for batch in cap.batches():
            parts += list(meter.update_raw(batch))
            seen += len(batch)
            if seen >= sent or time.monotonic() > deadline:
                break
        parts += list(meter.flush())
    records = FlowRecords.concat(parts)
    assert seen == sent == flows * per_flow
    assert len(records) == flows
    assert meter.stats.packets == sent
    assert int(meter.status_counts[0]) == sent  # every packet decoded as IP

    feats = compute_features(records)
    assert sorted(feats.column("src_port").to_pylist()) == list(range(20000, 20000 + flows))
    assert set(feats.column("fwd_packets").to_pylist()) == {per_flow}
    assert set(feats.column("bwd_packets").to_pylist()) == {0}


@root
@needs_root
def test_bpf_filter_keeps_only_matching_packets(bed: VethNamespace) -> None:
    frames = udp_flows(10)
    with LiveCapture("rcv", netns=bed.name, bpf_filter="udp src port 20003", **SMALL_RING) as cap:
        _send(bed, frames, 500)
        got = _frames_of(_collect(cap, 50))
        stats = cap.stats
    assert got == [frames[3]] * 50
    assert stats.kernel_packets == 50  # the filter ran in the kernel, before the ring
    # tcp_only: UDP frames never reach the ring.
    with LiveCapture("rcv", netns=bed.name, tcp_only=True, **SMALL_RING) as cap:
        assert cap.filter == "tcp"
        _send(bed, frames, 200)
        assert _frames_of(_collect(cap, 1, timeout=0.3)) == []
        assert cap.stats.kernel_packets == 0


@root
@needs_root
def test_bad_filter_and_unknown_interface_are_one_line_errors(bed: VethNamespace) -> None:
    with pytest.raises(FlowscopeError) as e:
        LiveCapture("rcv", netns=bed.name, bpf_filter="udp and and", **SMALL_RING)
    assert "\n" not in str(e.value) and "syntax error" in str(e.value)
    with pytest.raises(FlowscopeError) as e:
        LiveCapture("nosuch0", netns=bed.name)
    msg = str(e.value)
    assert "\n" not in msg and "no interface named 'nosuch0'" in msg
    assert "rcv" in msg and "snd" in msg and "lo" in msg  # the namespace's interfaces
    with pytest.raises(FlowscopeError, match="no network namespace"):
        LiveCapture("lo", netns="fsc-does-not-exist")


@root
@needs_root
def test_vlan_tagged_frames_keep_their_tags(bed: VethNamespace) -> None:
    frames = [
        udp_frame(40000, vlans=[(0x8100, 100)]),
        udp_frame(40001, vlans=[(0x88A8, 200), (0x8100, 300)]),
        udp_frame(40002),
    ]
    with LiveCapture("rcv", netns=bed.name, **SMALL_RING) as cap:
        _send(bed, frames, 30)
        batches = _collect(cap, 30)
        stats = cap.stats
    assert _frames_of(batches) == frames * 10
    assert stats.vlan_restored == 20
    meter = FlowMeter()
    for b in batches:
        list(meter.update_raw(b))
    assert int(meter.status_counts[0]) == 30  # all decoded through their tags
    feats = compute_features(FlowRecords.concat(list(meter.flush())))
    assert sorted(feats.column("vlan_id").to_pylist()) == [0, 100, 200]


@root
@needs_root
def test_full_ring_drops_are_counted(bed: VethNamespace) -> None:
    # Two one-page blocks hold a few dozen packets; nobody reads while 3000 arrive.
    with LiveCapture("rcv", netns=bed.name, block_size=4096, block_count=2) as cap:
        sent = _send(bed, udp_flows(5), 3000)
        batches = _collect(cap, 3000, timeout=0.5)
        stats = cap.stats
    captured = sum(len(b) for b in batches)
    assert stats.kernel_drops > 0 and stats.kernel_freezes > 0
    assert stats.kernel_packets == sent
    assert captured + stats.kernel_drops == sent  # every packet is delivered or counted lost
    assert stats.peak_ready_blocks == 2


@root
@needs_root
def test_snaplen_cuts_packets_and_keeps_wire_length(bed: VethNamespace) -> None:
    frame = udp_frame(40010, payload=200)
    with LiveCapture("rcv", netns=bed.name, snaplen=64, **SMALL_RING) as cap:
        _send(bed, [frame], 5)
        batches = _collect(cap, 5)
        stats = cap.stats
    assert _frames_of(batches) == [frame[:64]] * 5
    assert all((b.wirelen == len(frame)).all() for b in batches)
    assert stats.truncated == 5


@root
@needs_root
def test_loopback_packets_are_seen_once(bed: VethNamespace) -> None:
    with LiveCapture("lo", netns=bed.name, **SMALL_RING) as cap:
        with in_netns(bed.name), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for i in range(20):
                s.sendto(b"x" * i, ("127.0.0.1", 9))  # ICMP port unreachable comes back
        batches = _collect(cap, 40)
        stats = cap.stats
    udp = [f for f in _frames_of(batches) if f[23] == 17]
    assert len(udp) == 20
    assert stats.loopback_duplicates == 0  # the kernel already left them out


@root
@needs_root
def test_any_interface_is_cooked(bed: VethNamespace) -> None:
    frame = udp_frame(40020)
    with LiveCapture("any", netns=bed.name, bpf_filter="udp port 40020", **SMALL_RING) as cap:
        assert cap.linktype == LINKTYPE_LINUX_SLL2
        _send(bed, [frame], 3)
        got = _frames_of(_collect(cap, 6))
    # Arriving on rcv as PACKET_OTHERHOST (3). The sender bypasses the qdisc layer, so
    # the outgoing copies on snd never reach packet sockets.
    assert [g[10] for g in got] == [3, 3, 3]
    with in_netns(bed.name):
        rcv = socket.if_nametoindex("rcv")
    assert all(g[4:8] == struct.pack("!i", rcv) for g in got)
    assert all(g[:2] == b"\x08\x00" and g[20:] == frame[14:] for g in got)


@root
@needs_root
def test_interface_down_and_gone(bed: VethNamespace) -> None:
    ns = bed.name
    subprocess.run(
        ["ip", "-n", ns, "link", "add", "tmpa", "type", "veth", "peer", "name", "tmpb"], check=True
    )
    try:
        subprocess.run(["ip", "-n", ns, "link", "set", "tmpa", "up"], check=True)
        subprocess.run(["ip", "-n", ns, "link", "set", "tmpb", "up"], check=True)
        with LiveCapture("tmpb", netns=ns, **SMALL_RING) as cap:
            subprocess.run(["ip", "-n", ns, "link", "set", "tmpb", "down"], check=True)
            assert len(cap.read(0.2)) == 0  # an error event, not an exception
            assert cap.stats.link_down == 1
            subprocess.run(["ip", "-n", ns, "link", "set", "tmpb", "up"], check=True)

            time.sleep(0.1)
            with RawSender("tmpa", [udp_frame(40030)], ns) as s:
                s.send(3)
            assert len(_frames_of(_collect(cap, 3))) == 3  # capture resumed by itself
            subprocess.run(["ip", "-n", ns, "link", "del", "tmpa"], check=True)
            with pytest.raises(FlowscopeError, match="disappeared"):
                for _ in range(20):
                    cap.read(0.05)
    finally:
        subprocess.run(["ip", "-n", ns, "link", "del", "tmpa"], capture_output=True)


@root
@needs_root
def test_idle_batches_and_close_from_another_thread(bed: VethNamespace) -> None:
    cap = LiveCapture("rcv", netns=bed.name, poll_timeout=0.05, **SMALL_RING)
    timer = threading.Timer(0.4, cap.close)
    timer.start()
    sizes = [len(b) for b in cap.batches()]  # ends when the other thread closes it
    timer.join()
    assert sizes and set(sizes) == {0}  # nothing sent: empty batches, one per poll timeout
    with pytest.raises(ValueError, match="closed"):
        cap.read()
    assert cap.stats.kernel_packets == 0


@root
@needs_root
def test_without_privileges_the_message_says_how_to_grant_them() -> None:
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) not installed")
    code = (
        "import sys\n"
        "from flowscope.capture.live import LiveCapture\n"
        "from flowscope.errors import FlowscopeError\n"
        "try:\n"
        "    LiveCapture('lo')\n"
        "except FlowscopeError as e:\n"
        "    print(e); sys.exit(2)\n"
    )
    cache = tempfile.mkdtemp(prefix="fsc-numba-")
    try:
        os.chmod(cache, 0o777)  # numba's cache for the unprivileged interpreter
        env = {**os.environ, "NUMBA_CACHE_DIR": cache, "HOME": cache}
        probe = subprocess.run(
            ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
             sys.executable, "-c", "import flowscope"],
            capture_output=True, text=True, timeout=60, env=env, cwd="/",
        )  # fmt: skip
        if probe.returncode != 0:
            pytest.skip(
                "user nobody cannot import this checkout (a parent directory is not "
                "world-readable, e.g. a 0700 temporary directory)"
            )
        p = subprocess.run(
            ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
             sys.executable, "-c", code],
            capture_output=True, text=True, timeout=60, env=env, cwd="/",
        )  # fmt: skip
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    assert p.returncode == 2, p.stderr[-2000:]
    msg = p.stdout.strip()
    assert "\n" not in msg
    assert msg.startswith("no permission to capture on lo: run as root")
    assert "setcap cap_net_raw,cap_net_admin=eip /" in msg and "venv" in msg


_CAPTURE_AS_USER = """
import socket, sys, threading, time
from flowscope.capture.live import LiveCapture
with LiveCapture("lo", bpf_filter="udp and dst port 9999") as cap:
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    def send() -> None:
        for _ in range(400):
            tx.sendto(b"x" * 20, ("127.0.0.1", 9999))
            time.sleep(0.005)
    threading.Thread(target=send, daemon=True).start()
    got, t0 = 0, time.monotonic()
    for batch in cap.batches():
        got += len(batch)
        if got >= 100 or time.monotonic() - t0 > 60:
            break
print(got)
"""


@root
@needs_root
def test_capture_rights_granted_with_setcap_as_documented() -> None:
    """docs/capture.md's recipe: a venv made with --copies, its own python given
    cap_net_raw,cap_net_admin with setcap; an unprivileged user then captures. Proves
    those two capabilities are enough (nothing else is asked for)."""
    if shutil.which("setpriv") is None or shutil.which("setcap") is None:
        pytest.skip("setpriv (util-linux) or setcap (libcap2-bin) not installed")
    # Not under /tmp: a nosuid mount ignores file capabilities.
    base = tempfile.mkdtemp(prefix="fsc-setcap-", dir="/var/tmp")
    try:
        if os.statvfs(base).f_flag & os.ST_NOSUID:
            pytest.skip("/var/tmp is mounted nosuid here: file capabilities are ignored")
        os.chmod(base, 0o755)
        venv = os.path.join(base, "venv")
        subprocess.run(
            [sys.executable, "-m", "venv", "--copies", "--without-pip", venv],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
        py = os.path.join(venv, "bin", "python3")
        # The copied interpreter sees this checkout's environment (flowscope, numba…).
        site = subprocess.run(
            [py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True, capture_output=True, text=True, timeout=60,
        ).stdout.strip()  # fmt: skip
        here = sysconfig.get_paths()["purelib"]
        with open(os.path.join(site, "flowscope-dev.pth"), "w") as f:
            f.write(f"import site; site.addsitedir({here!r})\n")
        cache = os.path.join(base, "numba")
        os.mkdir(cache)
        os.chmod(cache, 0o777)
        env = {**os.environ, "NUMBA_CACHE_DIR": cache, "HOME": cache}
        as_nobody = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", py]
        probe = subprocess.run(
            [*as_nobody, "-c", "import flowscope"],
            capture_output=True, text=True, timeout=60, env=env, cwd="/",
        )  # fmt: skip
        if probe.returncode != 0:
            pytest.skip("user nobody cannot import this checkout (a parent directory is not "
                        "world-readable)")  # fmt: skip
        denied = subprocess.run(
            [*as_nobody, "-c", _CAPTURE_AS_USER],
            capture_output=True, text=True, timeout=300, env=env, cwd="/",
        )  # fmt: skip
        # The refusal names this very interpreter in its setcap command.
        assert denied.returncode != 0
        assert f"setcap cap_net_raw,cap_net_admin=eip {py}`" in denied.stderr
        grant = subprocess.run(
            ["setcap", "cap_net_raw,cap_net_admin=eip", py],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        if grant.returncode != 0:  # e.g. a container without CAP_SETFCAP
            pytest.skip(f"cannot set file capabilities here: {grant.stderr.strip()[:200]}")
        caps = subprocess.run(["getcap", py], capture_output=True, text=True, timeout=30)
        assert "cap_net_admin,cap_net_raw=eip" in caps.stdout, caps.stdout
        granted = subprocess.run(
            [*as_nobody, "-c", _CAPTURE_AS_USER],
            capture_output=True, text=True, timeout=300, env=env, cwd="/",
        )  # fmt: skip
    finally:
        shutil.rmtree(base, ignore_errors=True)
    assert granted.returncode == 0, granted.stderr[-2000:]
    assert int(granted.stdout.strip()) >= 100


@root
@needs_root
def test_throughput_smoke(bed: VethNamespace) -> None:
    """200k minimum-size frames flat out; prints what arrived (not a pass/fail timing)."""

    n = 200_000
    meter = FlowMeter()
    list(meter.update_raw(PacketBatch.from_packets([(1, bytes(60))])))  # load the kernel
    with LiveCapture("rcv", netns=bed.name) as cap:
        cmd = [sys.executable, "-m", "flowscope.capture._live_testbed", "--netns",
               bed.name, "--packets", str(n), "--flows", "1000"]  # fmt: skip
        sender = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        got = 0
        stop = threading.Event()
        t0 = time.perf_counter()
        for batch in cap.batches(stop):
            got += len(batch)
            for _ in meter.update_raw(batch):
                pass
            if sender.poll() is not None and (got >= n or len(batch) == 0):
                stop.set()
            if time.perf_counter() - t0 > 30:
                stop.set()
        out = json.loads(sender.stdout.read() if sender.stdout else "{}")
        stats = cap.stats
    rate = out["sent"] / out["seconds"]
    print(
        f"\nthroughput smoke: sent {out['sent']:,} in {out['seconds']:.2f} s ({rate:,.0f} pkt/s), "
        f"captured {got:,}, kernel drops {stats.kernel_drops:,}, "
        f"peak ring backlog {stats.peak_ready_blocks}/{stats.ring_blocks} blocks, "
        f"metered {meter.stats.packets:,}"
    )
    assert out["sent"] == n
    assert got + stats.kernel_drops == stats.kernel_packets == n
