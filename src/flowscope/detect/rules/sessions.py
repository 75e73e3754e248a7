"""Attacks made of complete TCP sessions: password brute force and slow-connection DoS.

Flows cannot see whether a login failed (the exchange is usually encrypted), so brute
force is recognised by its rhythm: many short sessions from one source to one login
service, each exchanging little. Benign clients log in a few times a minute at most
(the lab's busiest SSH client: 9 sessions in 60 s). Only finished flows count for brute
force: a running session may still turn out long or large.

Slow DoS (Slowloris, slow POST) keeps many connections open while sending a few bytes
every few seconds, so the server never gets a complete request and never answers.
Such a connection is recognised once it is ``min_age_s`` old — from a snapshot of the
running flow in the live sensor — by its low send rate and the server's silence; an
incident needs many of them from few sources (a browser opens at most 6 per server).
"""

from __future__ import annotations

import numpy as np

from flowscope.detect.alerts import Alert, Family
from flowscope.detect.config import BruteforceConfig, SlowDosConfig
from flowscope.detect.frame import FlowFrame, isin_small
from flowscope.detect.hashing import combine
from flowscope.detect.rules.base import (
    CRITICAL,
    HIGH,
    MEDIUM,
    Rule,
    Selection,
    Verdict,
    build_selection,
    port_code,
    ratio,
)
from flowscope.detect.window import WindowStats

_NS = 1_000_000_000


class Bruteforce(Rule):
    """Many short, small, completed sessions from one source to one login service."""

    name = "bruteforce"
    family = "bruteforce"
    signature = "FLOWSCOPE BRUTEFORCE login guessing"
    signature_id = 9_100_201
    category = "Attempted User Privilege Gain"
    extra_names = ("web",)
    base_severity, max_severity = MEDIUM, HIGH
    config: BruteforceConfig

    def select(self, f: FlowFrame) -> Selection | None:
        c = self.config
        web = isin_small(f.dport, c.web_ports)
        service = isin_small(f.dport, c.ports) | web
        limit = np.where(web, c.web_max_duration_s, c.max_duration_s) * _NS
        short = (f.last - f.first) <= limit
        small = (f.fwd_bytes + f.bwd_bytes) <= c.max_bytes
        small_answer = ~web | (f.bwd_bytes <= c.web_max_response_bytes)
        mask = (
            f.handshake_done()
            & f.over()
            & (f.fwd_bytes > 0)
            & service
            & short
            & small
            & small_answer
            & ~f.group_dst
        )
        key = combine(f.src, f.dst, port_code(f.proto, f.dport))
        return build_selection(
            f,
            mask,
            key=key,
            incident=key,
            weight=np.ones(len(f)),
            packets=f.fwd_pkts + f.bwd_pkts,
            bytes_=f.fwd_ip_bytes + f.bwd_ip_bytes,
            extra=[web.astype(np.float64)],
        )

    def _thresholds(self, st: WindowStats) -> np.ndarray:
        c = self.config
        web = st.sums[:, self.column("web")] > 0
        return np.where(web, c.web_min_sessions, c.min_sessions).astype(np.float64)

    def check(self, st: WindowStats) -> Verdict:
        n = st.sums[:, 0]
        thr = self._thresholds(st)
        return Verdict(n >= thr, n / thr, n)

    @property
    def metric(self) -> str:
        return f"short sessions to one login service in {self.window_text}"

    @property
    def threshold(self) -> float:
        return float(self.config.min_sessions)

    def family_of(self, a: Alert) -> Family:
        return "web" if a.victim_port in self.config.web_ports else "bruteforce"

    def message(self, a: Alert) -> str:
        svc = a.service or f"port {a.victim_port}"
        return (
            f"brute force on {svc} of {a.victim} by {a.attacker}: {a.flows:,} short sessions "
            f"(peak {a.peak:,.0f} in {self.window_text})"
        )


class SlowDos(Rule):
    """Many long, barely-sending HTTP connections the server never answered."""

    name = "slow_dos"
    family = "dos"
    signature = "FLOWSCOPE DOS slow HTTP (Slowloris/slow POST)"
    signature_id = 9_100_301
    category = "Detection of a Denial of Service Attack"
    item_names = ("sources",)
    base_severity, max_severity = MEDIUM, CRITICAL
    config: SlowDosConfig

    def select(self, f: FlowFrame) -> Selection | None:
        c = self.config
        age_s = f.age / _NS
        mask = (
            f.handshake_done()
            & isin_small(f.dport, c.ports)
            & (age_s >= c.min_age_s)
            & (f.fwd_bytes <= c.max_fwd_rate * age_s)
            & (f.bwd_bytes <= c.max_bwd_bytes)
            & ~f.group_dst
        )
        key = combine(f.dst, port_code(f.proto, f.dport))
        return build_selection(
            f,
            mask,
            key=key,
            incident=key,
            weight=np.ones(len(f)),
            packets=f.fwd_pkts + f.bwd_pkts,
            bytes_=f.fwd_ip_bytes + f.bwd_ip_bytes,
            items=[f.src],
        )

    def check(self, st: WindowStats) -> Verdict:
        c = self.config
        n = st.sums[:, 0]
        ok = (n >= c.min_connections) & (ratio(n, st.distinct[:, 0]) >= c.min_per_source)
        return Verdict(ok, n / c.min_connections, n)

    @property
    def metric(self) -> str:
        return f"slow connections to one web service opened in {self.window_text}"

    @property
    def threshold(self) -> float:
        return float(self.config.min_connections)

    def message(self, a: Alert) -> str:
        port = a.victim_port if a.victim_port is not None else "?"
        return (
            f"slow HTTP DoS on {a.victim}:{port} from {a.attacker}: {a.flows:,} connections "
            f"held open while sending almost nothing"
        )
