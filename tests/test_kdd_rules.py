"""The KDD rule filter: JSON round trip, matching, mining, and the shipped rules.json."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from flowscope.errors import FlowscopeError
from flowscope.kdd.vocab import COLUMN, FLAG, KDD_FEATURES, SERVICE, VOCABULARIES
from flowscope.models.bundle import builtin_dir
from flowscope.models.rules import Item, Rule, RuleSet

SHIPPED_RULES = builtin_dir() / "kdd-dnn" / "rules.json"


def row(**values: float) -> np.ndarray:
    x = np.zeros((1, len(KDD_FEATURES)), np.float32)
    for name, v in values.items():
        x[0, COLUMN[name]] = v
    return x


def hand_rules() -> RuleSet:
    return RuleSet(
        description="hand-made",
        features=list(KDD_FEATURES),
        bins={"count": [2, 5], "same_srv_rate": [0.005, 0.995]},
        categories={"flag": list(VOCABULARIES["flag"]), "service": list(VOCABULARIES["service"])},
        rules=[
            Rule(
                antecedent=[Item(feature="flag", value="SF"), Item(feature="count", bin=0)],
                support=0.3,
                confidence=0.999,
                lift=1.9,
            ),
            Rule(
                antecedent=[
                    Item(feature="service", value="http"),
                    Item(feature="same_srv_rate", bin=2),
                ],
                support=0.2,
                confidence=0.998,
            ),
        ],
    )


def test_round_trip(tmp_path: Path) -> None:
    rs = hand_rules()
    path = tmp_path / "rules.json"
    rs.save(path)
    back = RuleSet.load(path)
    assert back == rs
    assert back.rules[1].lift is None  # None fields are left out of the file and come back


def test_first_match() -> None:
    rs = hand_rules()
    sf, rej, http = FLAG["SF"], FLAG["REJ"], SERVICE["http"]
    x = np.concatenate(
        [
            row(flag=sf, count=1),  # rule 0 (count 1 is bin 0: below 2)
            row(flag=sf, count=2),  # count 2 is bin 1: no rule
            row(flag=rej, count=1),  # wrong flag
            row(flag=sf, count=1, service=http, same_srv_rate=1.0),  # both match: first wins
            row(flag=rej, service=http, same_srv_rate=1.0),  # rule 1 (1.0 ≥ 0.995: bin 2)
            row(flag=rej, service=http, same_srv_rate=0.99),  # bin 1
        ]
    )
    assert rs.first_match(x).tolist() == [0, -1, -1, 0, 1, -1]
    with pytest.raises(FlowscopeError, match="feature columns"):
        rs.first_match(x[:, :10])


def test_inconsistent_rules_are_rejected(tmp_path: Path) -> None:
    bad = hand_rules().model_dump()
    bad["rules"][0]["antecedent"][0]["value"] = "XX"
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(bad))
    with pytest.raises(FlowscopeError, match="not in vocabulary"):
        RuleSet.load(path)


def _satisfying_row(rs: RuleSet, rule: Rule) -> np.ndarray:
    x = row()
    for it in rule.antecedent:
        j = COLUMN[it.feature]
        if it.value is not None:
            x[0, j] = rs.categories[it.feature].index(it.value)
        else:
            assert it.bin is not None
            edges = rs.bins[it.feature]
            if it.bin == 0:
                x[0, j] = edges[0] - 1
            elif it.bin == len(edges):
                x[0, j] = edges[-1] + 1
            else:  # mid-bin: a float32 lower edge may round below the float64 edge
                x[0, j] = (edges[it.bin - 1] + edges[it.bin]) / 2
    return x


@pytest.mark.skipif(not SHIPPED_RULES.is_file(), reason="shipped kdd-dnn bundle not built")
def test_shipped_rules_match_what_they_say() -> None:
    rs = RuleSet.load(SHIPPED_RULES)
    assert rs.rules and rs.features == list(KDD_FEATURES)
    for i, rule in enumerate(rs.rules):
        assert rule.consequent == "normal" and rule.confidence >= 0.99
        assert all(
            it.feature not in ("hot", "logged_in", "wrong_fragment") for it in rule.antecedent
        )
        hit = rs.first_match(_satisfying_row(rs, rule))[0]
        assert 0 <= hit <= i


def test_mining_finds_the_planted_rule() -> None:
    pytest.importorskip("mlxtend")
    from flowscope.kdd.mining import MiningConfig, mine_rules

    rng = np.random.default_rng(1)
    n = 2000
    x = np.zeros((n, len(KDD_FEATURES)), np.float32)
    x[:, COLUMN["service"]] = rng.choice([SERVICE["http"], SERVICE["private"]], n)
    x[:, COLUMN["flag"]] = rng.choice([FLAG["SF"], FLAG["S0"]], n)
    x[:, COLUMN["count"]] = rng.integers(1, 400, n)
    normal = (x[:, COLUMN["service"]] == SERVICE["http"]) & (x[:, COLUMN["flag"]] == FLAG["SF"])
    rs = mine_rules(x, normal, MiningConfig(min_support=0.1, max_items=2, sample=n))
    assert rs.rules
    planted = {("flag", "SF"), ("service", "http")}
    assert any({(i.feature, i.value) for i in r.antecedent} == planted for r in rs.rules)
    assert all(r.confidence >= 0.995 for r in rs.rules)
    hit = rs.first_match(x) >= 0
    assert normal[hit].all() and hit[normal].all()
