"""The shipped kdd-dnn bundle as a flowscope detector, on hand-made and real captures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from flowscope.flows.extract import ExtractSummary, extract_capture
from flowscope.flows.meter import MeterConfig
from flowscope.kdd.detector import KddDetector
from flowscope.kdd.vocab import FAMILIES, KDD_FEATURES
from flowscope.models import load_detector, read_meta
from flowscope.models.bundle import KDD_FEATURE_SET, builtin_dir

BUNDLE = builtin_dir() / "kdd-dnn"
PCAPS = Path(__file__).resolve().parents[2] / "shared" / "data" / "pcaps"
SYN_SCAN = PCAPS / "scans" / "ef_nmap_TCP_SYN_SCAN.pcap"
SCANNER, TARGET = "192.168.1.10", "192.168.1.25"  # from lab/shared_pcaps.toml

pytestmark = pytest.mark.skipif(not BUNDLE.is_dir(), reason="shipped kdd-dnn bundle not built")


def capture_flows(path: Path) -> pa.Table:
    return pa.concat_tables(list(extract_capture(path, MeterConfig(), ExtractSummary())))


@pytest.fixture(scope="module")
def detector() -> KddDetector:
    det = load_detector("kdd-dnn")
    assert isinstance(det, KddDetector)
    return det


def test_bundle_metadata() -> None:
    meta = read_meta(BUNDLE)
    assert meta.feature_set == KDD_FEATURE_SET
    assert meta.features == list(KDD_FEATURES)
    assert meta.classes == list(FAMILIES)
    assert set(meta.files) >= {"rules"}
    assert meta.training["net"]["seed"] and meta.training["onnx_check"]["verdict_agreement"] == 1.0
    for split in ("KDDTest+", "KDDTest-21"):
        m = meta.metrics[split]
        assert {"dnn", "filtered", "filter"} <= set(m)
        assert m["filter"]["false_positives_removed"] >= 0 and m["filter"]["attacks_lost"] >= 0
    assert (BUNDLE / "model.onnx").stat().st_size < 2_000_000


@pytest.mark.skipif(not SYN_SCAN.is_file(), reason=f"shared captures not present at {PCAPS}")
def test_flags_the_scanner_of_a_real_capture(detector: KddDetector) -> None:
    detector.reset()
    flows = capture_flows(SYN_SCAN)
    v = detector.classify(flows)
    assert len(v) == flows.num_rows
    src = np.asarray(flows.column("src_ip").to_pylist())
    dst = np.asarray(flows.column("dst_ip").to_pylist())
    attack = ((src == SCANNER) & (dst == TARGET)) | ((src == TARGET) & (dst == SCANNER))
    assert attack.sum() > 900
    assert v.malicious[attack].mean() > 0.9
    fams, counts = np.unique(np.asarray(v.family_names())[attack & v.malicious], return_counts=True)
    assert fams[np.argmax(counts)] == "scan"
    assert v.suppressed is not None and v.rule is not None
    assert ((v.rule >= 0) == v.suppressed).all() and not (v.malicious & v.suppressed).any()
    table = v.to_table()
    assert {"score", "verdict", "family", "suppressed", "rule"} <= set(table.column_names)

    first = int(np.flatnonzero(v.malicious)[0])
    (why,) = detector.explain(flows, v, [first], top=5)
    assert 1 <= len(why) <= 5 and all(c.feature in KDD_FEATURES for c in why)


@pytest.mark.skipif(not SYN_SCAN.is_file(), reason=f"shared captures not present at {PCAPS}")
def test_windows_continue_across_batches(detector: KddDetector) -> None:
    """Half the flows, then the other half (in start order): the second batch still sees
    the first in its windows, as one batch would."""
    flows = capture_flows(SYN_SCAN).sort_by("first_seen")
    detector.reset()
    whole = detector.features(flows).matrix
    detector.reset()
    half = flows.num_rows // 2
    a = detector.features(flows.slice(0, half)).matrix
    b = detector.features(flows.slice(half)).matrix
    np.testing.assert_array_equal(np.concatenate([a, b]), whole)
    detector.reset()
    alone = detector.features(flows.slice(half)).matrix
    assert not np.array_equal(alone, b)  # without the first half the windows differ


def test_rules_can_be_switched_off() -> None:
    det = load_detector(BUNDLE)
    assert isinstance(det, KddDetector) and det.use_rules
    plain = KddDetector(det.bundle, use_rules=False)
    assert plain.rules is not None and not plain.use_rules
    x = np.zeros((3, len(KDD_FEATURES)), np.float32)
    from flowscope.kdd.features import KddRows

    v = plain.classify_rows(KddRows(x, np.array([True, True, False])))
    assert v.suppressed is None and v.rule is None
    assert v.score[2] == 0.0 and not v.malicious[2]  # not a KDD connection: benign
