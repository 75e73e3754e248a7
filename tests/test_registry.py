"""The feature registry is consistent and docs/features.md is generated from it."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from flowscope.flows.docs import render
from flowscope.flows.features import compute_features, feature_matrix
from flowscope.flows.meter import FlowRecords
from flowscope.flows.registry import DIALECTS, FEATURES, dialect_columns

ROOT = Path(__file__).resolve().parents[1]


def test_docs_are_generated_from_the_registry() -> None:
    doc = (ROOT / "docs" / "features.md").read_text()
    assert doc == render(), "docs/features.md is stale: run `make docs`"


def test_names_unique_in_every_dialect() -> None:
    for dialect in DIALECTS:
        names = [name for _, name in dialect_columns(dialect)]
        assert len(names) == len(set(names)), dialect


def test_every_feature_has_unit_definition_and_cic_name() -> None:
    for f in FEATURES:
        assert f.unit and f.definition, f.name
        assert f.cic, f"{f.name} has no CICFlowMeter column"


def test_cse_cic_ids2018_dialect_covers_the_dashboard_features() -> None:
    # The older dashboard used 54 CICFlowMeter-style features with 2018 names; every
    # CSE-CIC-IDS2018 feature column has a flowscope counterpart.
    names = {name for canon, name in dialect_columns("cse-cic-ids2018") if canon in
             {f.name for f in FEATURES}}  # fmt: skip
    assert len(names) >= 54


def test_empty_records_give_an_empty_table() -> None:
    empty = FlowRecords.concat([])
    table = compute_features(empty)
    assert table.num_rows == 0
    assert feature_matrix(empty).shape == (0, len(FEATURES))
    assert feature_matrix(empty).dtype == np.float32
