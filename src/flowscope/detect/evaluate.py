"""Score the rule detectors on a labelled lab run: detections, delays, false alerts.

``python -m flowscope.detect.evaluate RUN_DIR`` reads ``RUN_DIR/flows.parquet`` (the
output of ``flowscope label``) and ``RUN_DIR/labels.csv`` (the attack windows), replays
the flows as the live sensor would see them (:mod:`.replay`), runs a
:class:`~flowscope.detect.engine.RuleEngine` and reports, per attack: whether an alert
names its attacker (or, for spoofed floods, its victim) while it runs, which rules
fired, how many alerts it raised, and the capture time from the attack's start to the
first alert of the expected rule. Alerts that match no attack are false alerts.

An alert matches an attack when their times overlap (the attack window widened by
``slack_s``) and the attack's attacker address is the alert's attacker or one of its
sampled sources — or, for spoofed-source attacks, the victim is the alert's victim.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import sys
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pyarrow.parquet as pq

from flowscope.detect.alerts import Alert, AlertEvent
from flowscope.detect.config import DetectConfig
from flowscope.detect.engine import RuleEngine
from flowscope.detect.replay import replay

_NS = 1_000_000_000

# The rule that should report each lab attack kind (None: no flow rule is meant to).
EXPECTED_RULE: dict[str, str | None] = {
    "syn_scan": "port_scan",
    "connect_scan": "port_scan",
    "udp_scan": "port_scan",
    "version_scan": "port_scan",
    "os_scan": "port_scan",
    "fin_scan": "stealth_scan",
    "null_scan": "stealth_scan",
    "xmas_scan": "stealth_scan",
    "ack_scan": "stealth_scan",
    "window_scan": "stealth_scan",
    "ping_sweep": "host_sweep",
    "syn_flood": "syn_flood",
    "syn_flood_spoofed": "syn_flood",
    "udp_flood": "udp_flood",
    "udp_flood_spoofed": "udp_flood",
    "icmp_flood": "icmp_flood",
    "icmp_flood_spoofed": "icmp_flood",
    "dns_amplification": "amplification",
    "slowloris": "slow_dos",
    "slow_body": "slow_dos",
    "http_flood": None,
    "ssh_bruteforce": "bruteforce",
    "ssh_bruteforce_hydra": "bruteforce",
    "ftp_bruteforce": "bruteforce",
    "web_bruteforce": "bruteforce",
    "web_injection": None,
}


@dataclass
class Attack:
    attack_id: str
    kind: str
    intensity: str
    attacker: str
    victim: str
    spoofed: bool
    start_ns: int
    end_ns: int
    expected: str | None = None
    rules: list[str] = field(default_factory=list)  # rules of the matching alerts
    alerts: int = 0  # matching alerts of the expected rule (1 = one per incident)
    delay_s: float | None = None  # attack start → first alert of the expected rule

    @property
    def detected(self) -> bool:
        return self.expected is not None and self.expected in self.rules


@dataclass
class Report:
    mode: str
    attacks: list[Attack]
    false_alerts: list[dict[str, object]]
    events: int
    seconds: float

    def summary(self) -> str:
        lines = [f"mode: {self.mode}, {self.events} events, {self.seconds:.1f} s"]
        head = f"{'kind':22s} {'detected':>9s} {'alerts':>7s} {'delay s (median, max)':>22s}"
        lines.append(f"{head}  expected; other rules")
        kinds: dict[str, list[Attack]] = {}
        for a in self.attacks:
            kinds.setdefault(a.kind, []).append(a)
        for kind, group in sorted(kinds.items()):
            det = [a for a in group if a.detected]
            delays = [a.delay_s for a in det if a.delay_s is not None]
            d = f"{statistics.median(delays):6.1f} {max(delays):6.1f}" if delays else "-"
            others = sorted({r for a in group for r in a.rules if r != a.expected})
            exp = group[0].expected or "(none)"
            per = ", ".join(str(a.alerts) for a in group)
            lines.append(
                f"{kind:22s} {len(det):>4d}/{len(group):<4d} {per:>7s} {d:>22s}  "
                f"{exp}; {', '.join(others) if others else '-'}"
            )
        lines.append(f"false alerts: {len(self.false_alerts)}")
        for fa in self.false_alerts:
            lines.append(f"  {fa}")
        return "\n".join(lines)


def load_attacks(labels_csv: str | os.PathLike[str]) -> list[Attack]:
    with open(labels_csv, newline="") as fh:
        return [
            Attack(
                attack_id=r["attack_id"],
                kind=r["kind"],
                intensity=r.get("intensity", ""),
                attacker=r["attacker_addr"],
                victim=r["victim_addr"],
                spoofed=r.get("spoofed", "0") in ("1", "true", "True"),
                start_ns=int(r["start_ns"]),
                end_ns=int(r["end_ns"]),
                expected=EXPECTED_RULE.get(r["kind"]),
            )
            for r in csv.DictReader(fh)
        ]


def _matches(alert: Alert, attack: Attack, slack_ns: int) -> bool:
    if alert.last_seen < attack.start_ns - slack_ns or alert.first_seen > attack.end_ns + slack_ns:
        return False
    if attack.attacker in (alert.attacker, *alert.attackers):
        return True
    return attack.spoofed and attack.victim in (alert.victim, *alert.victims)


def score(
    events: Iterable[AlertEvent], attacks: list[Attack], slack_s: float = 5.0
) -> tuple[list[Attack], list[dict[str, object]]]:
    """Attach alerts to attacks; the rest are false alerts."""
    slack = int(slack_s * _NS)
    final: dict[str, Alert] = {}
    opened: dict[str, int] = {}
    for ev in events:
        final[ev.alert.id] = ev.alert
        if ev.kind == "new":
            opened[ev.alert.id] = ev.at
    false_alerts: list[dict[str, object]] = []
    for alert in final.values():
        hits = [a for a in attacks if _matches(alert, a, slack)]
        for a in hits:
            a.rules = sorted({*a.rules, alert.rule})
            if alert.rule == a.expected:
                a.alerts += 1
                delay = (opened[alert.id] - a.start_ns) / _NS
                a.delay_s = delay if a.delay_s is None else min(a.delay_s, delay)
        if not hits:
            false_alerts.append(
                {
                    "rule": alert.rule,
                    "attacker": alert.attacker,
                    "victim": alert.victim,
                    "port": alert.victim_port,
                    "flows": alert.flows,
                    "peak": alert.peak,
                    "first_seen_ns": alert.first_seen,
                    "message": alert.message,
                }
            )
    return attacks, false_alerts


def run(
    run_dir: str | os.PathLike[str],
    *,
    offline: bool = False,
    config: DetectConfig | None = None,
) -> Report:
    """Replay a labelled run through the engine and score it.

    ``offline``: finished flows only, as ``flowscope flows`` output would give them
    (the lateness is raised to the idle timeout + 10 s so late flows still count).
    """
    run_dir = Path(run_dir)
    table = pq.read_table(run_dir / "flows.parquet")
    attacks = load_attacks(run_dir / "labels.csv")
    cfg = config or DetectConfig()
    if offline and config is None:
        cfg = cfg.for_finished_flows()
    engine = RuleEngine(cfg, run_id="eval")
    events: list[AlertEvent] = []
    t0 = time.perf_counter()
    for _, batch in replay(table, snapshots=not offline):
        events.extend(engine.process(batch))
    events.extend(engine.flush())
    seconds = time.perf_counter() - t0
    attacks, false_alerts = score(events, attacks)
    return Report("offline" if offline else "live", attacks, false_alerts, len(events), seconds)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m flowscope.detect.evaluate", description=__doc__)
    ap.add_argument("run_dir", help="lab run directory with flows.parquet and labels.csv")
    ap.add_argument("--offline", action="store_true", help="finished flows only, no snapshots")
    ap.add_argument("--json", action="store_true", help="print the report as JSON")
    args = ap.parse_args(argv)
    report = run(args.run_dir, offline=args.offline)
    if args.json:
        json.dump(asdict(report), sys.stdout, indent=1, default=str)
        print()
    else:
        print(report.summary())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
