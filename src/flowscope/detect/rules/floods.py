"""Volumetric DoS: SYN flood, UDP flood, amplification/reflection, ICMP flood.

All four are keyed by the victim address, so a flood from random spoofed sources is
one incident however many sources it forges; the sources are only counted. A scan
must not pass for a flood: a flood concentrates on few ports of its victim (or comes
from many sources), a scan touches each port about once from one source, so the flood
rules also require many packets or flows per distinct port, or many sources.
"""

from __future__ import annotations

import numpy as np

from flowscope.detect.alerts import Alert
from flowscope.detect.config import (
    AmplificationConfig,
    IcmpFloodConfig,
    SynFloodConfig,
    UdpFloodConfig,
)
from flowscope.detect.frame import ICMP_UNSOLICITED_TYPES, FlowFrame, isin_small
from flowscope.detect.rules.base import (
    CRITICAL,
    MEDIUM,
    Rule,
    Selection,
    Verdict,
    build_selection,
    port_code,
    ratio,
)
from flowscope.detect.window import WindowStats

DOS_CATEGORY = "Detection of a Denial of Service Attack"


def _sources_text(a: Alert) -> str:
    if a.source_count <= 1:
        return a.attacker
    return f"{a.source_count:,} sources"


class SynFlood(Rule):
    """Half-open handshakes to one host: many, most of its TCP flows, not a scan."""

    name = "syn_flood"
    family = "dos"
    signature = "FLOWSCOPE DOS TCP SYN flood"
    signature_id = 9_100_001
    category = DOS_CATEGORY
    extra_names = ("tcp",)
    item_names = ("sources", "ports")
    base_severity, max_severity = MEDIUM, CRITICAL
    flood = True
    config: SynFloodConfig

    def select(self, f: FlowFrame) -> Selection | None:
        tcp = f.tcp & ~f.group_dst
        half = f.half_open().astype(np.float64)
        return build_selection(
            f,
            tcp,
            key=f.dst,
            incident=f.dst,
            weight=half,
            packets=f.fwd_pkts + f.bwd_pkts,
            bytes_=f.fwd_ip_bytes + f.bwd_ip_bytes,
            extra=[np.ones(len(f))],
            items=[f.src, port_code(f.proto, f.dport)],
        )

    def check(self, st: WindowStats) -> Verdict:
        c = self.config
        half = st.sums[:, 0]
        sources, ports = st.distinct[:, 0], st.distinct[:, 1]
        ok = (
            (half >= c.min_half_open)
            & (ratio(half, st.sums[:, self.column("tcp")]) >= c.min_ratio)
            & ((ratio(half, ports) >= c.min_per_port) | (sources >= c.min_sources))
        )
        return Verdict(ok, half / c.min_half_open, half)

    @property
    def metric(self) -> str:
        return f"half-open TCP flows to one host in {self.window_text}"

    @property
    def threshold(self) -> float:
        return float(self.config.min_half_open)

    def message(self, a: Alert) -> str:
        port = f" port {a.victim_port}" if a.victim_port is not None else ""
        return (
            f"SYN flood on {a.victim}{port} from {_sources_text(a)}: {a.flows:,} half-open "
            f"connections (peak {a.peak:,.0f} in {self.window_text})"
        )


def _amplification_mask(f: FlowFrame, ports: tuple[int, ...]) -> np.ndarray:
    """UDP from an amplifying service port that the destination never answered."""
    return f.udp & isin_small(f.sport, ports) & (f.bwd_pkts == 0) & ~f.group_dst


class UdpFlood(Rule):
    """UDP packets to one host that barely answers, concentrated on few ports."""

    name = "udp_flood"
    family = "dos"
    signature = "FLOWSCOPE DOS UDP flood"
    signature_id = 9_100_002
    category = DOS_CATEGORY
    extra_names = ("all", "answers")
    item_names = ("sources", "ports")
    volume = True
    flood = True
    config: UdpFloodConfig

    def __init__(self, config: UdpFloodConfig, amplification_ports: tuple[int, ...]) -> None:
        super().__init__(config)
        self.amplification_ports = amplification_ports

    def select(self, f: FlowFrame) -> Selection | None:
        # Reflected answers are the amplification rule's; everything else UDP is ours.
        # Evidence: unanswered flows; answered ones only count in the response ratio.
        mask = f.udp & ~f.group_dst & ~_amplification_mask(f, self.amplification_ports)
        unanswered = f.bwd_pkts == 0
        return build_selection(
            f,
            mask,
            key=f.dst,
            incident=f.dst,
            weight=unanswered.astype(np.float64),
            packets=np.where(unanswered, f.fwd_pkts, 0.0),
            bytes_=np.where(unanswered, f.fwd_ip_bytes, 0.0),
            extra=[f.fwd_pkts, f.bwd_pkts],
            items=[f.src, port_code(f.proto, f.dport)],
        )

    def check(self, st: WindowStats) -> Verdict:
        c = self.config
        packets = st.sums[:, 1]
        sources, ports = st.distinct[:, 0], st.distinct[:, 1]
        answers = st.sums[:, self.column("answers")]
        ok = (
            (packets >= c.min_packets)
            & (ratio(answers, st.sums[:, self.column("all")]) <= c.max_response_ratio)
            & ((ratio(packets, ports) >= c.min_per_port) | (sources >= c.min_sources))
        )
        return Verdict(ok, packets / c.min_packets, packets)

    @property
    def metric(self) -> str:
        return f"unanswered UDP packets to one host in {self.window_text}"

    @property
    def threshold(self) -> float:
        return float(self.config.min_packets)

    def message(self, a: Alert) -> str:
        port = f" port {a.victim_port}" if a.victim_port is not None else ""
        return (
            f"UDP flood on {a.victim}{port} from {_sources_text(a)}: {a.packets:,} packets "
            f"(peak {a.peak:,.0f} in {self.window_text})"
        )


class Amplification(Rule):
    """Large unsolicited answers from many amplifying servers to one host."""

    name = "amplification"
    family = "dos"
    signature = "FLOWSCOPE DOS UDP amplification/reflection"
    signature_id = 9_100_003
    category = DOS_CATEGORY
    item_names = ("sources", "ports")
    volume = True
    flood = True
    config: AmplificationConfig

    def select(self, f: FlowFrame) -> Selection | None:
        return build_selection(
            f,
            _amplification_mask(f, self.config.service_ports),
            key=f.dst,
            incident=f.dst,
            weight=np.ones(len(f)),
            packets=f.fwd_pkts,
            bytes_=f.fwd_ip_bytes,
            items=[f.src, port_code(f.proto, f.dport)],
        )

    def check(self, st: WindowStats) -> Verdict:
        c = self.config
        packets, nbytes = st.sums[:, 1], st.sums[:, 2]
        ok = (
            (nbytes >= c.min_bytes)
            & (st.distinct[:, 0] >= c.min_reflectors)
            & (ratio(nbytes, packets) >= c.min_mean_packet)
        )
        return Verdict(ok, nbytes / c.min_bytes, nbytes)

    @property
    def metric(self) -> str:
        return f"IP bytes of unsolicited service answers to one host in {self.window_text}"

    @property
    def threshold(self) -> float:
        return float(self.config.min_bytes)

    def message(self, a: Alert) -> str:
        port = f" port {a.victim_port}" if a.victim_port is not None else ""
        return (
            f"amplification attack on {a.victim}{port}: {a.bytes:,} bytes of unsolicited "
            f"answers from {a.source_count:,} reflectors"
        )


class IcmpFlood(Rule):
    """ICMP requests (or echo replies nobody asked for) to one host."""

    name = "icmp_flood"
    family = "dos"
    signature = "FLOWSCOPE DOS ICMP flood"
    signature_id = 9_100_004
    category = DOS_CATEGORY
    item_names = ("sources",)
    volume = True
    flood = True
    config: IcmpFloodConfig

    def select(self, f: FlowFrame) -> Selection | None:
        mask = f.icmp & isin_small(f.icmp_type, ICMP_UNSOLICITED_TYPES) & ~f.group_dst
        return build_selection(
            f,
            mask,
            key=f.dst,
            incident=f.dst,
            weight=np.ones(len(f)),
            packets=f.fwd_pkts,
            bytes_=f.fwd_ip_bytes,
            items=[f.src],
        )

    def check(self, st: WindowStats) -> Verdict:
        packets = st.sums[:, 1]
        ok = packets >= self.config.min_packets
        return Verdict(ok, packets / self.config.min_packets, packets)

    @property
    def metric(self) -> str:
        return f"ICMP request packets to one host in {self.window_text}"

    @property
    def threshold(self) -> float:
        return float(self.config.min_packets)

    def message(self, a: Alert) -> str:
        return (
            f"ICMP flood on {a.victim} from {_sources_text(a)}: {a.packets:,} packets "
            f"(peak {a.peak:,.0f} in {self.window_text})"
        )
