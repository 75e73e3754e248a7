"""The periodic status line and the closing summary, from :meth:`Pipeline.status`.

Kept apart from the pipeline so that what an operator reads can change without
touching what is counted. The line always shows the loss figures, zero or not: a
sensor that is silent about loss cannot be trusted to have none.
"""

from __future__ import annotations

from typing import Any

from flowscope.detect import Alert


def _n(x: float) -> str:
    if x >= 10_000_000:
        return f"{x / 1e6:.0f}M"
    if x >= 10_000:
        return f"{x / 1e3:.0f}k"
    return f"{x:,.0f}"


def status_line(s: dict[str, Any]) -> str:
    """One line: packets, flows, verdicts, alerts, model cost, loss."""
    loss = s["loss"]
    fams = ", ".join(f"{k} {_n(v)}" for k, v in sorted(s["malicious_by_family"].items()))
    skipped = sum(s["skipped"].values())
    parts = [
        f"{s['seconds']:.0f}s",
        f"packets {_n(s['packets'])}",
        f"flows {_n(s['flows'])} (+{_n(s['open_flows'])} open)",
        f"malicious {_n(s['malicious'])}" + (f" [{fams}]" if fams else ""),
        f"alerts {s['alerts']} ({s['active_alerts']} active)",
        f"model {s['model_ms_per_kflow']:.1f} ms/krow",
    ]
    if s.get("snapshots"):  # early verdicts: snapshots of the open flows, rows classified
        parts.append(f"snapshots {s['snapshots']:,} ({_n(s['snapshot_rows'])} running flows)")
    parts += [
        f"lost {_n(loss['packets_lost'])} (kernel {_n(loss['kernel_drops'])}, "
        f"queue {_n(loss['queue_dropped_packets'])})",
        f"skipped {_n(skipped)}",
    ]
    return "flowscope: " + " | ".join(parts)


def alert_line(a: Alert) -> str:
    """attacker → victim, rule, family, severity, size."""
    port = f":{a.victim_port}" if a.victim_port is not None else ""
    return (
        f"{a.attacker} → {a.victim}{port}  {a.rule} ({a.family}, {a.severity})  "
        f"{a.flows:,} flows, {a.packets:,} packets"
    )


def summary_lines(s: dict[str, Any], alerts: list[Alert]) -> list[str]:
    """The closing summary of a run."""
    loss = s["loss"]
    lines = [
        f"packets   {s['packets']:,}"
        + (f" (captured {s['captured']:,})" if s.get("captured") is not None else ""),
        f"flows     {s['flows']:,}",
        f"malicious {s['malicious']:,}",
    ]
    for fam, k in sorted(s["malicious_by_family"].items(), key=lambda kv: -kv[1]):
        lines.append(f"  {fam:<10} {k:,}")
    if s["suppressed"]:
        lines.append(f"vetoed by bundle rules {s['suppressed']:,}")
    risk = ", ".join(
        f"{lvl} {s['risk'].get(lvl, 0):,}" for lvl in ("low", "medium", "high", "critical")
    )
    lines.append(f"risk      {risk}")
    lines.append(f"alerts    {len(alerts):,}")
    for a in alerts[:20]:
        lines.append(f"  {alert_line(a)}")
    if len(alerts) > 20:
        lines.append(f"  … and {len(alerts) - 20} more (see eve.json / flowscope.db)")
    lines.append(
        # Per classified row: finished flows and early-verdict snapshots alike.
        f"model     {s['model_seconds']:.2f} s ({s['model_ms_per_kflow']:.1f} ms per 1000 "
        f"rows classified, slowest batch {s['model_max_ms']:.0f} ms)"
    )
    lines.append(
        f"lost      {loss['packets_lost']:,} packets (kernel {loss['kernel_drops']:,}, "
        f"queue {loss['queue_dropped_packets']:,} in {loss['queue_dropped_batches']:,} "
        f"batches); evicted flows {loss['evicted_flows']:,}"
    )
    if s["skipped"]:
        why = ", ".join(f"{r} {k:,}" for r, k in s["skipped"].items())
        lines.append(f"skipped   {sum(s['skipped'].values()):,} packets ({why})")
    return lines
