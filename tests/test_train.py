"""Training pipeline: metrics, leak-free splits, dialect tables, fit → bundle → evaluate."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flowscope.errors import FlowscopeError
from flowscope.lab.labels import label_inputs
from flowscope.models import FlowClassifier, load_bundle
from flowscope.train.data import FEATURE_NAMES, cic_family, read_labelled_table, to_dataset
from flowscope.train.metrics import average_precision, choose_threshold, evaluate_arrays, roc_auc
from flowscope.train.split import (
    cap_per_attack,
    reserved_captures,
    stable_fraction,
    validation_mask,
)

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
PCAPS = SHARED / "pcaps"
needs_shared = pytest.mark.skipif(not PCAPS.is_dir(), reason="../shared/data is not present")


# ---------------------------------------------------------------- metrics


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(0, 20)), min_size=2, max_size=200))
def test_average_precision_and_auc_match_sklearn(rows: list[tuple[bool, int]]) -> None:
    from sklearn.metrics import average_precision_score, roc_auc_score

    y = np.array([r[0] for r in rows])
    s = np.array([r[1] / 20 for r in rows])
    if y.all() or not y.any():
        return
    assert average_precision(y, s) == pytest.approx(average_precision_score(y, s), abs=1e-12)
    assert roc_auc(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-12)


def test_choose_threshold_meets_target_and_floor() -> None:
    rng = np.random.default_rng(1)
    benign = rng.uniform(0, 1, 10_000)
    t = choose_threshold(benign, 0.01)
    assert (benign >= t).mean() <= 0.01
    assert (benign >= t - 1e-3).mean() > 0.009  # smallest such threshold
    assert choose_threshold(np.zeros(100), 0.01) == 0.5  # floor
    assert choose_threshold(np.ones(100), 0.01) == 0.999  # ceiling
    assert choose_threshold([], 0.01) == 0.5


def test_evaluate_arrays_counts() -> None:
    truth = ["benign"] * 4 + ["scan"] * 3 + ["dos"] * 2
    score = [0.1, 0.2, 0.9, 0.3, 0.95, 0.8, 0.2, 0.99, 0.7]
    pred = ["benign", "benign", "scan", "benign", "scan", "dos", "benign", "dos", "dos"]
    m = evaluate_arrays(truth, score, pred, 0.5, kind=["benign"] * 4 + ["x"] * 3 + ["y"] * 2)
    b = m["binary"]
    assert (b["tp"], b["fp"], b["fn"], b["tn"]) == (4, 1, 1, 3)
    assert b["fpr"] == pytest.approx(0.25)
    assert m["families"]["scan"]["recall"] == pytest.approx(1 / 3)
    assert m["families"]["scan"]["detected"] == pytest.approx(2 / 3)
    assert m["families"]["dos"]["recall"] == 1.0
    assert m["kinds"]["x"]["family_correct"] == pytest.approx(1 / 3)
    cm = dict(zip(m["confusion"]["labels"], m["confusion"]["matrix"], strict=True))
    assert cm["scan"] == [1, 1, 1]  # benign, scan, dos


# ---------------------------------------------------------------- splits


def _ds(rows: list[tuple[str, str, str, int]]) -> object:
    """Dataset from (source, attack_id, family, start seconds) rows."""
    t = {name: np.zeros(len(rows)) for name in FEATURE_NAMES}
    table = pa.table(
        {
            **t,
            "source": [r[0] for r in rows],
            "attack_id": [r[1] for r in rows],
            "family": [r[2] for r in rows],
            "attack_kind": [("k" + r[2]) if r[1] else "benign" for r in rows],
            "first_seen": [r[3] * 10**9 for r in rows],
        }
    )
    return to_dataset(table)


def test_validation_holds_out_whole_attack_instances_and_benign_blocks() -> None:
    rows = []
    for i, start in enumerate((100, 1000, 2000)):  # three instances of one kind
        rows += [("run", f"A{i}", "scan", start + j) for j in range(10)]
    rows += [("run", "B0", "dos", 500)]  # single instance: stays in training
    rows += [("run", "", "benign", s) for s in range(0, 3000, 10)]
    ds = _ds(rows)
    val = validation_mask(ds)  # type: ignore[arg-type]
    ids = ds.attack_id  # type: ignore[attr-defined]
    assert set(ids[val & (ids != "")]) == {"A1"}  # the middle instance, whole
    assert not (val & (ids == "A0")).any() and not (val & (ids == "B0")).any()
    starts = ds.first_seen[val & (ids == "")] / 1e9  # type: ignore[attr-defined]
    assert starts.size and set(((starts - 0) // 300 % 5).astype(int)) == {3}


def test_cap_per_attack_and_reserved_captures() -> None:
    rows = [("a.pcap", "S1", "dos", 0)] * 50 + [("a.pcap", "", "benign", 0)] * 7
    ds = _ds(rows)
    idx = cap_per_attack(ds, 10, np.random.default_rng(0))  # type: ignore[arg-type]
    assert len(idx) == 17
    names = np.array([f"cap{i}.pcap" for i in range(200)], dtype=object)
    held = reserved_captures(names, 0.4)
    assert 50 < len(held) < 110
    assert held == reserved_captures(names, 0.4)  # stable, seed-free
    assert all(stable_fraction(h) < 0.4 for h in held)


# ---------------------------------------------------------------- data


def test_cic_family_names() -> None:
    assert cic_family("BENIGN") == "benign"
    assert cic_family("DoS Hulk") == "dos"
    assert cic_family("PortScan") == "scan"
    assert cic_family("Web Attack \x96 XSS") == "web"
    assert cic_family("SSH-Patator") == "bruteforce"
    assert cic_family("Bot") == "other"


@needs_shared
def test_reads_cic_ids2017_csv_dialect() -> None:
    t = read_labelled_table(SHARED / "cicids2017" / "traffic_labelling_rows" / "baseline_ddos.csv")
    assert t.num_rows == 1000
    assert set(t.column("family").to_pylist()) == {"dos"}
    fd = np.asarray(t.column("flow_duration").to_numpy(zero_copy_only=False))
    assert np.isfinite(fd).all() and fd.max() > 0
    assert "fwd_packets" in t.column_names


def test_unreadable_table_is_one_line_error(tmp_path: Path) -> None:
    p = tmp_path / "x.csv"
    p.write_text("a,b\n1,2\n")
    with pytest.raises(FlowscopeError, match="no 'family' or 'Label' column"):
        read_labelled_table(p)


# ---------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def labelled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not PCAPS.is_dir():
        pytest.skip("../shared/data is not present")
    out = tmp_path_factory.mktemp("lab") / "flows.parquet"
    inputs = [PCAPS / d for d in ("ndpi", "benign", "scans", "dos", "bruteforce", "web")]
    label_inputs(inputs, str(out))
    return out


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    exe = [sys.executable, "-m", "flowscope"]
    return subprocess.run([*exe, *args], capture_output=True, text=True, timeout=600)


@needs_shared
def test_fit_bundle_evaluate_end_to_end(labelled: Path, tmp_path: Path) -> None:
    from flowscope.train.pipeline import evaluate, fit

    out = tmp_path / "models"
    written = fit([labelled], out, algorithms=["lightgbm"], test_fraction=0.3, seed=1)
    path = written["lightgbm"]
    meta = json.loads((path / "bundle.json").read_text())
    assert meta["classes"][0] == "benign" and meta["features"] == list(FEATURE_NAMES)
    assert 0.5 <= meta["threshold"] < 1
    assert meta["metrics"]["onnx_native_max_abs_diff"] < 1e-4
    assert meta["training"]["reserved_for_test"]
    clf = FlowClassifier(load_bundle(path))
    # the reserved captures (and nothing the model saw) are what evaluate scores
    report = evaluate(path, [labelled], title="reserved")
    assert report["excluded_seen_sources"]
    reserved = set(meta["training"]["reserved_for_test"])
    assert set(report["metrics"]["sources"]) == reserved
    table = pq.read_table(labelled)
    v = clf.classify(table)
    flagged = np.flatnonzero(v.malicious)[:3]
    expl = clf.explain(table, v, flagged, top=4)
    assert len(expl) == len(flagged) and all(len(e) == 4 for e in expl)
    assert all(c.feature in FEATURE_NAMES for e in expl for c in e)
    # the spoofed SYN flood capture is flagged nearly completely
    src = np.asarray(table.column("source").to_numpy(zero_copy_only=False), dtype=object)
    flood = np.array(["synflood_spoofed" in s for s in src])
    assert v.malicious[flood].mean() > 0.95


@needs_shared
def test_nets_train_and_export_agree(labelled: Path) -> None:
    from flowscope.train.data import load_labelled
    from flowscope.train.nets import train_net

    ds = to_dataset(load_labelled([labelled]))
    rng = np.random.default_rng(0)
    idx = cap_per_attack(ds, 300, rng)
    small = ds.subset(idx)
    val = validation_mask(small)
    for alg in ("mlp", "rescnn"):
        trained = train_net(alg, small.subset(~val), small.subset(val), epochs=2, threads=1)
        import onnxruntime as ort

        from flowscope.models.bundle import preprocess

        sess = ort.InferenceSession(trained.onnx, providers=["CPUExecutionProvider"])
        x = small.x[:500]
        p_onnx = sess.run(None, {"x": preprocess(trained.preprocessing, x)})[0]
        assert np.abs(p_onnx - trained.native_proba(x)).max() < 1e-4
        assert np.allclose(p_onnx.sum(axis=1), 1, atol=1e-5)


def test_cli_errors_are_one_line(tmp_path: Path) -> None:
    r = _cli("evaluate", str(tmp_path), str(tmp_path))
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "not a model bundle" in r.stderr
    bogus = tmp_path / "flows.csv"
    bogus.write_text("x,y\n1,2\n")
    r = _cli("train", str(bogus), "-o", str(tmp_path / "o"), "-a", "lightgbm")
    assert r.returncode == 2 and r.stderr.count("\n") == 1
    r = _cli("train", str(bogus), "-o", str(tmp_path / "o"), "-a", "svm")
    assert r.returncode == 2 and "unknown algorithm" in r.stderr
