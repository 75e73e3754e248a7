"""Alerts: one per incident, updated while it lasts, and their Suricata EVE form.

An :class:`Alert` describes an incident — one rule matching one (attacker, victim) — for
its whole life: it opens when a window first crosses the rule's thresholds, its counts
and ``last_seen`` grow while the rule keeps matching, and it ends after a quiet period.
The engine reports each step as an :class:`AlertEvent` (``new``, ``update``, ``end``)
carrying a copy of the alert, so a consumer may store the latest copy by ``id``.

Severity (``low`` < ``medium`` < ``high`` < ``critical``) starts at the rule's base
level and rises one step when the strongest window reaches 4× the rule's threshold and
another at 16× (never above the rule's cap); it never falls during an incident. The
EVE form follows Suricata's ``alert`` event: ``alert.severity`` is its priority
(1 = most severe), ``alert.category`` a classification.config description.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, Field

Family = Literal["scan", "dos", "bruteforce", "web", "other"]
Severity = Literal["low", "medium", "high", "critical"]
State = Literal["active", "ended"]
EventKind = Literal["new", "update", "end"]

SEVERITIES: tuple[Severity, ...] = ("low", "medium", "high", "critical")
# Steps above a rule's base severity: strongest window ≥ 4× and ≥ 16× the threshold.
SEVERITY_STEPS = (4.0, 16.0)
# Suricata priority: 1 is the most severe.
EVE_PRIORITY: dict[str, int] = {"critical": 1, "high": 1, "medium": 2, "low": 3}
PROTO_NAMES = {1: "ICMP", 6: "TCP", 17: "UDP", 58: "IPv6-ICMP", 132: "SCTP"}

SERVICES = {
    7: "echo", 19: "chargen", 20: "ftp-data", 21: "ftp", 22: "ssh", 23: "telnet",
    25: "smtp", 53: "dns", 69: "tftp", 80: "http", 110: "pop3", 111: "portmap",
    123: "ntp", 137: "netbios-ns", 143: "imap", 161: "snmp", 389: "ldap", 443: "https",
    445: "smb", 465: "smtps", 587: "submission", 636: "ldaps", 993: "imaps", 995: "pop3s",
    1433: "mssql", 1900: "ssdp", 3306: "mysql", 3389: "rdp", 5353: "mdns", 5432: "postgresql",
    5900: "vnc", 6379: "redis", 8000: "http-alt", 8008: "http-alt", 8080: "http-proxy",
    8888: "http-alt", 11211: "memcached",
}  # fmt: skip


def severity_for(base: int, cap: int, magnitude: float) -> Severity:
    """Severity from the strongest window's ratio to the rule's threshold."""
    level = base + sum(magnitude >= s for s in SEVERITY_STEPS)
    return SEVERITIES[max(0, min(level, cap))]


def iso_ns(ns: int) -> str:
    """EVE timestamp: '2021-09-21T15:45:24.430031+0000' (UTC, µs)."""
    t = dt.datetime.fromtimestamp(ns // 1_000_000_000, tz=dt.UTC)
    t = t.replace(microsecond=(ns % 1_000_000_000) // 1000)
    return t.strftime("%Y-%m-%dT%H:%M:%S.%f%z")


class Alert(BaseModel):
    """One incident of one rule. Times are ns since the epoch, in capture time."""

    id: str
    rule: str  # syn_flood, udp_flood, amplification, icmp_flood, port_scan, host_sweep,
    # stealth_scan, bruteforce, slow_dos
    family: Family
    severity: Severity
    state: State = "active"
    signature: str  # EVE alert.signature
    signature_id: int
    category: str  # EVE alert.category
    protocol: int  # IP protocol number (the dominant one of the incident's flows)
    attacker: str  # an address, "many", or "spoofed/many" for floods from many sources
    attackers: list[str] = Field(default_factory=list)  # up to 8 sample source addresses
    source_count: int = 0
    victim: str  # an address or "many"
    victims: list[str] = Field(default_factory=list)  # up to 8 sample target addresses
    host_count: int = 0
    victim_port: int | None = None  # the targeted port when there is one
    service: str | None = None
    port_count: int = 0
    first_seen: int  # first flow of the incident
    last_seen: int  # latest flow of the incident
    ended_at: int | None = None  # capture time the incident was declared over
    flows: int = 0
    packets: int = 0
    bytes: int = 0  # IP bytes
    metric: str  # what the threshold counts, e.g. "half-open flows to one host in 10 s"
    threshold: float
    peak: float  # the strongest window's value of that metric
    updates: int = 0  # update events emitted so far
    message: str = ""

    def to_eve(self) -> dict[str, Any]:
        """The alert as a Suricata EVE ``alert`` event (plus a ``flowscope`` object)."""
        src = self.attacker if self.source_count <= 1 or not self.attackers else self.attackers[0]
        dst = self.victim if self.host_count <= 1 or not self.victims else self.victims[0]
        eve: dict[str, Any] = {
            "timestamp": iso_ns(self.last_seen),
            "event_type": "alert",
            "src_ip": src,
            "dest_ip": dst,
            "proto": PROTO_NAMES.get(self.protocol, str(self.protocol)),
        }
        if self.victim_port is not None:
            eve["dest_port"] = self.victim_port
        eve["alert"] = {
            "action": "allowed",
            "gid": 1,
            "signature_id": self.signature_id,
            "rev": 1,
            "signature": self.signature,
            "category": self.category,
            "severity": EVE_PRIORITY[self.severity],
        }
        eve["flowscope"] = {
            "id": self.id,
            "rule": self.rule,
            "family": self.family,
            "severity": self.severity,
            "state": self.state,
            "attacker": self.attacker,
            "attackers": self.attackers,
            "source_count": self.source_count,
            "victim": self.victim,
            "victims": self.victims,
            "host_count": self.host_count,
            "port_count": self.port_count,
            "service": self.service,
            "first_seen": iso_ns(self.first_seen),
            "last_seen": iso_ns(self.last_seen),
            "ended_at": iso_ns(self.ended_at) if self.ended_at is not None else None,
            "flows": self.flows,
            "packets": self.packets,
            "bytes": self.bytes,
            "metric": self.metric,
            "threshold": self.threshold,
            "peak": self.peak,
            "message": self.message,
        }
        return eve

    def involves(self, hosts: set[str]) -> bool:
        """Whether an address of ``hosts`` is this alert's attacker or victim (or one of
        the sampled ones)."""
        return bool(
            hosts.intersection((self.attacker, self.victim))
            or hosts.intersection(self.attackers)
            or hosts.intersection(self.victims)
        )


class AlertEvent(BaseModel):
    """A step of an alert's life: opened, changed, or over."""

    kind: EventKind
    at: int  # capture time (ns) of the batch that produced the event
    alert: Alert
