"""The rule detectors, one module per family: floods, scans, sessions (brute force, slow DoS)."""

from __future__ import annotations

from flowscope.detect.config import DetectConfig
from flowscope.detect.rules.base import Rule
from flowscope.detect.rules.floods import Amplification, IcmpFlood, SynFlood, UdpFlood
from flowscope.detect.rules.scans import HostSweep, PortScan, StealthScan
from flowscope.detect.rules.sessions import Bruteforce, SlowDos

__all__ = ["Rule", "build_rules"]


def build_rules(config: DetectConfig) -> list[Rule]:
    """The enabled rules, in a fixed order (alerts of one batch come out in it)."""
    c = config
    rules: list[Rule] = [
        SynFlood(c.syn_flood),
        UdpFlood(c.udp_flood, c.amplification.service_ports),
        Amplification(c.amplification),
        IcmpFlood(c.icmp_flood),
        PortScan(c.port_scan),
        HostSweep(c.host_sweep),
        StealthScan(c.stealth_scan),
        Bruteforce(c.bruteforce),
        SlowDos(c.slow_dos),
    ]
    return [r for r in rules if r.config.enabled]
