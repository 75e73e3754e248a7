"""Reconnaissance: vertical port scans, horizontal sweeps and stealth (SYN-less) scans.

Only *failed* probes count: a SYN that was refused, never answered, or whose SYN-ACK
the sender never acknowledged; a connection reset before a byte was sent; a UDP
datagram without an answer; a SYN-less packet answered by nothing or a RST. A busy
client whose connections succeed, or a server answering many clients, produces none
of these, which is what kept the older tools' scan rule firing on ordinary servers.
Port scans and sweeps also need most of the source's flows there to fail
(``min_failed_ratio``): a resolver or crawler whose occasional peer does not answer
talks to far more that do. Those other flows are tracked only for keys that already
have a failed probe, so they cannot crowd the bounded window store.
Multicast and broadcast destinations never count (nobody in particular answers them).
FTP active-mode data connections (source port 20 to an ephemeral port) are not probes
either: a client firewall dropping them would otherwise make the FTP server look like a
scanner.
"""

from __future__ import annotations

import numpy as np

from flowscope.detect.alerts import Alert
from flowscope.detect.config import HostSweepConfig, PortScanConfig, StealthScanConfig
from flowscope.detect.frame import FlowFrame
from flowscope.detect.hashing import combine
from flowscope.detect.rules.base import (
    HIGH,
    LOW,
    MEDIUM,
    Rule,
    Selection,
    Verdict,
    build_selection,
    port_code,
    ratio,
)
from flowscope.detect.window import WindowStats

SCAN_CATEGORY = "Detection of a Network Scan"


def _failed_probe(f: FlowFrame) -> np.ndarray:
    tcp = f.failed_tcp_probe() & ~((f.sport == 20) & (f.dport >= 1024))
    return tcp | f.udp_probe()


def _count_rule_verdict(
    st: WindowStats, threshold: int, min_ratio: float = 0.0, all_col: int = -1
) -> Verdict:
    """Distinct items ≥ threshold (and failed ÷ all flows ≥ min_ratio when given)."""
    n = st.distinct[:, 0]
    ok = n >= threshold
    if min_ratio > 0:
        ok &= ratio(st.sums[:, 0], st.sums[:, all_col]) >= min_ratio
    return Verdict(ok, n / threshold, n)


class PortScan(Rule):
    """One source, one host, many ports probed without success."""

    name = "port_scan"
    family = "scan"
    signature = "FLOWSCOPE SCAN port scan"
    signature_id = 9_100_101
    category = SCAN_CATEGORY
    extra_names = ("all",)
    item_names = ("ports",)
    base_severity, max_severity = LOW, HIGH
    context_on_evidence = True
    config: PortScanConfig

    def select(self, f: FlowFrame) -> Selection | None:
        key = combine(f.src, f.dst)
        return build_selection(
            f,
            (f.tcp | f.udp) & ~f.group_dst,
            key=key,
            incident=key,
            weight=_failed_probe(f).astype(np.float64),
            packets=f.fwd_pkts + f.bwd_pkts,
            bytes_=f.fwd_ip_bytes + f.bwd_ip_bytes,
            extra=[np.ones(len(f))],
            items=[port_code(f.proto, f.dport)],
        )

    def check(self, st: WindowStats) -> Verdict:
        c = self.config
        return _count_rule_verdict(st, c.min_ports, c.min_failed_ratio, self.column("all"))

    @property
    def metric(self) -> str:
        return f"distinct ports of one host probed without success in {self.window_text}"

    @property
    def threshold(self) -> float:
        return float(self.config.min_ports)

    def message(self, a: Alert) -> str:
        return (
            f"port scan of {a.victim} by {a.attacker}: {a.port_count:,} ports probed, "
            f"{a.flows:,} failed probes"
        )


class HostSweep(Rule):
    """One source probing the same port (or pinging) across many hosts.

    Detection is per (source, protocol, port); the incident is per source, so an nmap
    host discovery (ICMP echo + SYN to 443 + ACK to 80 per address) is one alert.
    """

    name = "host_sweep"
    family = "scan"
    signature = "FLOWSCOPE SCAN host sweep"
    signature_id = 9_100_102
    category = SCAN_CATEGORY
    extra_names = ("all",)
    item_names = ("hosts",)
    base_severity, max_severity = LOW, HIGH
    context_on_evidence = True
    config: HostSweepConfig

    def select(self, f: FlowFrame) -> Selection | None:
        probe = _failed_probe(f) | f.stealth_probe() | f.icmp_request()
        port = np.where(f.icmp, 0, f.dport)
        return build_selection(
            f,
            probe | ((f.tcp | f.udp) & ~f.group_dst),
            key=combine(f.src, f.proto, port),
            incident=f.src,
            weight=probe.astype(np.float64),
            packets=f.fwd_pkts + f.bwd_pkts,
            bytes_=f.fwd_ip_bytes + f.bwd_ip_bytes,
            extra=[np.ones(len(f))],
            items=[f.dst],
        )

    def check(self, st: WindowStats) -> Verdict:
        c = self.config
        return _count_rule_verdict(st, c.min_hosts, c.min_failed_ratio, self.column("all"))

    @property
    def metric(self) -> str:
        return f"distinct hosts probed on one port in {self.window_text}"

    @property
    def threshold(self) -> float:
        return float(self.config.min_hosts)

    def message(self, a: Alert) -> str:
        what = f"port {a.victim_port}" if a.victim_port is not None else f"{a.port_count} ports"
        return f"host sweep by {a.attacker}: {a.host_count:,} hosts probed on {what}"


class StealthScan(Rule):
    """FIN, NULL, Xmas, ACK/window and Maimon probes of many ports of one host."""

    name = "stealth_scan"
    family = "scan"
    signature = "FLOWSCOPE SCAN stealth scan (FIN/NULL/Xmas/ACK)"
    signature_id = 9_100_103
    category = SCAN_CATEGORY
    item_names = ("ports",)
    base_severity, max_severity = MEDIUM, HIGH
    config: StealthScanConfig

    def select(self, f: FlowFrame) -> Selection | None:
        key = combine(f.src, f.dst)
        return build_selection(
            f,
            f.stealth_probe(),
            key=key,
            incident=key,
            weight=np.ones(len(f)),
            packets=f.fwd_pkts + f.bwd_pkts,
            bytes_=f.fwd_ip_bytes + f.bwd_ip_bytes,
            items=[port_code(f.proto, f.dport)],
        )

    def check(self, st: WindowStats) -> Verdict:
        return _count_rule_verdict(st, self.config.min_ports)

    @property
    def metric(self) -> str:
        return f"distinct ports of one host probed without SYN in {self.window_text}"

    @property
    def threshold(self) -> float:
        return float(self.config.min_ports)

    def message(self, a: Alert) -> str:
        return (
            f"stealth scan of {a.victim} by {a.attacker}: {a.port_count:,} ports probed "
            f"with SYN-less packets"
        )
