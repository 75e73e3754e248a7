"""Per-flow risk level: one word an analyst can sort by, from the model and the rules.

The older dashboard promised a risk level and never defined it. This is the definition
(also in docs/sensor.md, keep the two in step). Levels are indices into
``RISK_LEVELS`` = low < medium < high < critical:

1. **Model level** ``m``: 0 (low) for a benign verdict; 1 (medium) for a malicious
   one; 2 (high) for a malicious one with score ≥ ``HIGH_SCORE`` whose family harms
   its target directly (dos, bruteforce, web). A scan alone stays medium: it is
   reconnaissance.
2. **Alert level** ``a``: the highest severity among the rule engine's *active* alerts
   whose attacker or victim (or a sampled one) is the flow's source or destination
   address; −1 without one. When the model calls the flow benign, ``a`` is capped at
   medium: a host under attack (or attacking) colours all its traffic, but not beyond
   what the model itself supports.
3. **Corroboration**: when the model flags the flow *and* one of those alerts has the
   same family, the level rises one step — two independent detectors agree.

``risk = min(critical, max(m, a) + corroborated)``.

Everything is vectorised over the batch: alert lookups happen once per distinct host,
never per flow.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from flowscope.detect.alerts import SEVERITIES, Alert
from flowscope.models.classify import Verdicts
from flowscope.sinks.batch import RISK_LEVELS

HIGH_SCORE = 0.9
HARMFUL_FAMILIES = frozenset({"dos", "bruteforce", "web"})
ALERT_FAMILIES: tuple[str, ...] = ("scan", "dos", "bruteforce", "web", "other")
_SEV_INDEX = {s: i for i, s in enumerate(SEVERITIES)}
_LEVELS = pa.array(list(RISK_LEVELS), pa.string())


def model_level(verdicts: Verdicts) -> npt.NDArray[np.int8]:
    """Step 1: the model's own level per flow."""
    names = np.asarray(verdicts.classes, dtype=object)
    harmful = np.array([n in HARMFUL_FAMILIES for n in names], dtype=bool)
    fam = verdicts.family.astype(np.int64)
    level = verdicts.malicious.astype(np.int8)
    strong = verdicts.malicious & (verdicts.score >= HIGH_SCORE) & harmful[fam]
    level[strong] = 2
    return level


def _host_table(
    hosts: Sequence[str], alerts: Sequence[Alert]
) -> tuple[npt.NDArray[np.int8], npt.NDArray[np.int8]]:
    """Per host: highest alert severity (any family) and per alert family (−1 = none).

    Row ``len(hosts)`` is the "no host" row that unknown lookups land on.
    """
    n = len(hosts)
    any_sev = np.full(n + 1, -1, np.int8)
    fam_sev = np.full((n + 1, len(ALERT_FAMILIES)), -1, np.int8)
    where = {h: i for i, h in enumerate(hosts)}
    for alert in alerts:
        sev = _SEV_INDEX[alert.severity]
        f = ALERT_FAMILIES.index(alert.family) if alert.family in ALERT_FAMILIES else -1
        involved = {alert.attacker, alert.victim, *alert.attackers, *alert.victims}
        for h in involved:
            i = where.get(h)
            if i is None:
                continue
            any_sev[i] = max(any_sev[i], sev)
            if f >= 0:
                fam_sev[i, f] = max(fam_sev[i, f], sev)
    return any_sev, fam_sev


def risk_levels(
    flows: pa.Table, verdicts: Verdicts, alerts: Sequence[Alert], hosts: pa.Array | None = None
) -> npt.NDArray[np.int8]:
    """Risk level index (0–3) per flow; ``alerts`` are the active alerts on its hosts.

    ``hosts``: the distinct addresses ``alerts`` were looked up for (default: the
    batch's source and destination addresses).
    """
    n = flows.num_rows
    m = model_level(verdicts)
    if n == 0:
        return m
    if hosts is None:
        hosts = distinct_hosts(flows)
    host_list = hosts.to_pylist()
    any_sev, fam_sev = _host_table(host_list, alerts)
    missing = len(host_list)
    src = pc.index_in(flows.column("src_ip"), value_set=hosts).fill_null(missing)
    dst = pc.index_in(flows.column("dst_ip"), value_set=hosts).fill_null(missing)
    si = np.asarray(src.to_numpy(zero_copy_only=False), np.int64)
    di = np.asarray(dst.to_numpy(zero_copy_only=False), np.int64)
    a = np.maximum(any_sev[si], any_sev[di])
    malicious = verdicts.malicious
    a = np.where(malicious, a, np.minimum(a, 1)).astype(np.int8)
    # Corroboration: the alert family column matching the model's family, if any.
    names = list(verdicts.classes)
    col = np.array([ALERT_FAMILIES.index(c) if c in ALERT_FAMILIES else -1 for c in names])
    fcol = col[verdicts.family.astype(np.int64)]
    safe = np.maximum(fcol, 0)
    same = np.maximum(fam_sev[si, safe], fam_sev[di, safe])
    corroborated = malicious & (fcol >= 0) & (same >= 0)
    level = np.maximum(m, a) + corroborated.astype(np.int8)
    return np.minimum(level, len(RISK_LEVELS) - 1).astype(np.int8)


def distinct_hosts(flows: pa.Table) -> pa.Array:
    """The distinct source and destination addresses of a batch."""
    both = pa.chunked_array(
        flows.column("src_ip").chunks + flows.column("dst_ip").chunks, pa.string()
    )
    return pc.unique(both)


def level_names(levels: npt.NDArray[np.int8]) -> pa.Array:
    """Level indices as the strings the sinks take."""
    idx = pa.array(levels.astype(np.int32))
    return pa.DictionaryArray.from_arrays(idx, _LEVELS).dictionary_decode()
