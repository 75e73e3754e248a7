"""Mining the "items → normal" association rules that veto DNN alarms (training only).

The desktop analyzer's idea, done so it can actually fire: discretise KDDTrain+ with
fixed, readable bin edges, mine frequent itemsets with Apriori (mlxtend), keep the rules
whose consequent is the class "normal" with high confidence, and store them with their
bin edges and vocabularies (:class:`flowscope.models.rules.RuleSet`), so the detector
discretises live rows exactly as the miner did.

Only features flowscope really computes are items: the content features and
wrong_fragment are 0 at run time, and a rule that relied on them would match every
live flow. Items that hold for nearly every row (``land`` = 0 ...) are dropped: they
say nothing and only multiply the itemsets.

Rules are pruned to the most general ones (a rule whose antecedent contains another
kept rule's antecedent matches a subset of its rows, so it adds nothing) and ordered by
confidence, then support.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd
from mlxtend.frequent_patterns import apriori, association_rules

from flowscope.kdd.vocab import KDD_FEATURES, RATE_FEATURES, VOCABULARIES, ZERO_AT_RUNTIME
from flowscope.models.rules import Item, Rule, RuleSet

CLASS_ITEM = "class=normal"

# Bin edges (ascending; bin i holds edges[i-1] <= x < edges[i]). Rates are stored with
# two decimals, so their edges sit between representable values: 0 | (0, 0.25] |
# (0.25, 0.75] | (0.75, 1) | 1.
_RATE_EDGES = [0.005, 0.255, 0.755, 0.995]
_EDGES: dict[str, list[float]] = {
    "duration": [1, 10, 100, 1000],
    "src_bytes": [1, 100, 1000, 10000, 100000],
    "dst_bytes": [1, 100, 1000, 10000, 100000],
    "land": [1],
    "urgent": [1],
    "count": [2, 5, 20, 100, 300],
    "srv_count": [2, 5, 20, 100, 300],
    "dst_host_count": [2, 10, 50, 150, 255],
    "dst_host_srv_count": [2, 10, 50, 150, 255],
}


def bin_edges() -> dict[str, list[float]]:
    """Edges of every numeric feature that may appear in a rule."""
    out: dict[str, list[float]] = {}
    for name in KDD_FEATURES:
        if name in VOCABULARIES or name in ZERO_AT_RUNTIME:
            continue
        out[name] = list(_RATE_EDGES if name in RATE_FEATURES else _EDGES[name])
    return out


@dataclass
class MiningConfig:
    min_support: float = 0.05
    min_confidence: float = 0.995
    max_items: int = 3  # antecedent length
    max_item_support: float = 0.97  # items above this are dropped as uninformative
    max_rules: int = 40
    sample: int = 40_000  # rows Apriori sees; support and confidence are then recounted
    seed: int = 20240521


def item_name(feature: str, value: str | int) -> str:
    return f"{feature}={value}" if feature in VOCABULARIES else f"{feature}#{value}"


def _parse_item(name: str) -> Item:
    if "=" in name:
        feature, value = name.split("=", 1)
        return Item(feature=feature, value=value)
    feature, b = name.split("#", 1)
    return Item(feature=feature, bin=int(b))


def transactions(
    x: npt.NDArray[np.floating], is_normal: npt.NDArray[np.bool_], edges: dict[str, list[float]]
) -> pd.DataFrame:
    """One boolean column per item (value or bin) plus the class item, one row per record."""
    probe = RuleSet(
        features=list(KDD_FEATURES),
        bins=edges,
        categories={k: list(v) for k, v in VOCABULARIES.items()},
        rules=[],
    )
    codes = probe.item_codes(np.asarray(x))
    cols: dict[str, npt.NDArray[np.bool_]] = {}
    for feature, code in codes.items():
        if feature in VOCABULARIES:
            labels: Sequence[str | int] = VOCABULARIES[feature]
        else:
            labels = range(len(edges[feature]) + 1)
        for k, label in enumerate(labels):
            col = code == k
            if col.any():
                cols[item_name(feature, label)] = col
    cols[CLASS_ITEM] = np.asarray(is_normal, bool)
    return pd.DataFrame(cols)


def mine_rules(
    x: npt.NDArray[np.floating],
    is_normal: npt.NDArray[np.bool_],
    cfg: MiningConfig,
    log: Callable[[str], None] = lambda s: None,
) -> RuleSet:
    """Apriori on the discretised rows; rules "items → normal" as a RuleSet."""
    edges = bin_edges()
    full = transactions(x, is_normal, edges)
    support = full.mean(axis=0)
    keep = [c for c in full.columns if c == CLASS_ITEM or support[c] <= cfg.max_item_support]
    full = full[keep]
    rng = np.random.default_rng(cfg.seed)
    rows = rng.choice(len(full), size=min(cfg.sample, len(full)), replace=False)
    df = full.iloc[np.sort(rows)]
    log(f"apriori: {len(df)} of {len(full)} rows, {df.shape[1]} items, support ≥ {cfg.min_support}")
    freq = apriori(
        df,
        min_support=cfg.min_support,
        use_colnames=True,
        max_len=cfg.max_items + 1,
        low_memory=True,
    )
    log(f"apriori: {len(freq)} frequent itemsets")
    # Candidates at a slightly lower confidence on the sample, then exact numbers on all rows.
    rules = association_rules(
        freq, num_itemsets=len(df), metric="confidence", min_threshold=cfg.min_confidence - 0.01
    )
    rules = rules[rules["consequents"] == frozenset({CLASS_ITEM})]
    matrix = full.to_numpy(dtype=bool)
    col = {c: j for j, c in enumerate(full.columns)}
    normal = matrix[:, col[CLASS_ITEM]]
    scored: list[tuple[frozenset[str], float, float, float]] = []
    for ante in rules["antecedents"]:
        m = np.logical_and.reduce([matrix[:, col[i]] for i in ante])
        n_match = int(m.sum())
        if n_match == 0:
            continue
        conf = float(normal[m].mean())
        if conf >= cfg.min_confidence:
            sup = n_match * conf / len(full)
            scored.append((frozenset(ante), sup, conf, conf / float(normal.mean())))
    scored.sort(key=lambda k: (-k[2], -k[1], sorted(k[0])))
    kept: list[tuple[frozenset[str], float, float, float]] = []
    for ante, sup, conf, lift in scored:
        if any(k[0] <= ante for k in kept):
            continue
        kept = [k for k in kept if not ante <= k[0]]  # a more general rule replaces them
        kept.append((frozenset(ante), float(sup), float(conf), float(lift)))
    kept.sort(key=lambda k: (-k[2], -k[1]))
    kept = kept[: cfg.max_rules]
    log(f"rules: {len(scored)} with confidence ≥ {cfg.min_confidence}, {len(kept)} kept")
    out = [
        Rule(
            antecedent=[_parse_item(i) for i in sorted(ante)],
            consequent="normal",
            support=round(sup, 6),
            confidence=round(conf, 6),
            lift=round(lift, 6),
        )
        for ante, sup, conf, lift in kept
    ]
    used_bins = sorted({it.feature for r in out for it in r.antecedent if it.bin is not None})
    used_cats = sorted({it.feature for r in out for it in r.antecedent if it.value is not None})
    return RuleSet(
        description=(
            "Apriori rules 'items -> normal' mined on discretised KDDTrain+ "
            f"(min support {cfg.min_support}, min confidence {cfg.min_confidence}, "
            f"at most {cfg.max_items} items); a match vetoes a DNN alarm"
        ),
        features=list(KDD_FEATURES),
        bins={k: edges[k] for k in used_bins},
        categories={k: list(VOCABULARIES[k]) for k in used_cats},
        rules=out,
    )
