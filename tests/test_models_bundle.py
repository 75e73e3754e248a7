"""Bundles without Keras: loading, checks, explanations, rules, resolve order, `models` CLI.

Toy ONNX graphs (MatMul + Add + Softmax/Sigmoid) are built with onnx.helper, so these
tests need neither torch nor a training run.
"""

from __future__ import annotations

import json
import os
import pickle
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from onnx import TensorProto, helper, numpy_helper

from flowscope.errors import FlowscopeError
from flowscope.flows.registry import FEATURE_NAMES
from flowscope.models import bundle as bundle_mod
from flowscope.models import catalog
from flowscope.models.bundle import (
    BundleError,
    BundleMeta,
    Step,
    load_bundle,
    preprocess,
    read_meta,
    resolve,
    save_bundle,
    user_models_dir,
)
from flowscope.models.classify import FlowClassifier, load_detector
from flowscope.models.rules import RuleSet

FEATS = list(FEATURE_NAMES[:4])


# ------------------------------------------------------------------------------ helpers


def linear_onnx(
    w: np.ndarray, b: np.ndarray, *, sigmoid: bool = False, width: int | None = None
) -> bytes:
    """A float32 graph x·W + b → softmax (or sigmoid), input [n, width or rows of W]."""
    k, c = w.shape
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", width or k])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", c])
    nodes = [
        helper.make_node("MatMul", ["x", "W"], ["z0"]),
        helper.make_node("Add", ["z0", "B"], ["z"]),
        helper.make_node("Sigmoid", ["z"], ["y"])
        if sigmoid
        else helper.make_node("Softmax", ["z"], ["y"], axis=-1),
    ]
    inits = [
        numpy_helper.from_array(w.astype(np.float32), "W"),
        numpy_helper.from_array(b.astype(np.float32), "B"),
    ]
    graph = helper.make_graph(nodes, "toy", [x], [y], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


def toy_meta(name: str = "toy", **kw: Any) -> BundleMeta:
    fields: dict[str, Any] = {
        "name": name,
        "algorithm": "mlp",
        "features": FEATS,
        "classes": ["benign", "malicious"],
    }
    fields.update(kw)
    return BundleMeta(**fields)


def detector_weights() -> tuple[np.ndarray, np.ndarray]:
    """Malicious logit = 4·x2 + 0.1·x0 − 2: feature 2 decides, feature 0 barely matters."""
    w = np.zeros((4, 2), np.float32)
    w[2, 1] = 4.0
    w[0, 1] = 0.1
    return w, np.array([0.0, -2.0], np.float32)


def make_bundle(path: Path, **kw: Any) -> Path:
    w, b = detector_weights()
    return save_bundle(path, toy_meta(**kw), linear_onnx(w, b))


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """The real console entry point in-process: (exit code, stdout, stderr)."""
    from flowscope.cli.app import main

    old = sys.argv
    sys.argv = ["flowscope", *args]
    try:
        main()
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    finally:
        sys.argv = old
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code: int, err: str, *needles: str) -> None:
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("flowscope: error: ")
    for n in needles:
        assert n in lines[0], lines[0]


@pytest.fixture(autouse=True)
def user_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    d = tmp_path / "user-models"
    monkeypatch.setenv("FLOWSCOPE_MODELS", str(d))
    return d


# ------------------------------------------------------------------ loading and checks


def test_round_trip_and_verdicts(tmp_path: Path) -> None:
    p = make_bundle(tmp_path / "b", threshold=0.7)
    det = load_detector(p)
    assert isinstance(det, FlowClassifier)
    x = np.zeros((3, 4), np.float32)
    x[:, 2] = [0.0, 0.6, 2.0]  # scores ≈ 0.12, 0.6, 0.998
    table = pa.table({f: x[:, j] for j, f in enumerate(FEATS)})
    v = det.classify(table)
    z = 4 * x[:, 2] - 2
    np.testing.assert_allclose(v.score, 1 / (1 + np.exp(-z)), atol=1e-6)
    assert v.malicious.tolist() == [False, False, True]
    assert v.family_names() == ["benign", "benign", "malicious"]
    assert v.threshold == 0.7


def test_sigmoid_output_becomes_two_columns(tmp_path: Path) -> None:
    w = np.array([[1.0], [0.0], [0.0], [0.0]], np.float32)
    p = save_bundle(
        tmp_path / "s", toy_meta(output="sigmoid"), linear_onnx(w, np.zeros(1), sigmoid=True)
    )
    proba = load_bundle(p).predict_proba(np.array([[0.0, 0, 0, 0], [3.0, 0, 0, 0]], np.float32))
    np.testing.assert_allclose(proba[:, 1], [0.5, 1 / (1 + np.exp(-3))], atol=1e-6)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)


def test_preprocessing_steps() -> None:
    x = np.array([[np.nan, np.inf, -3.0, 10.0]], np.float32)
    steps = [
        Step(op="nan_to_num"),
        Step(op="clip", lo=-1e6, hi=1e6),
        Step(op="standardize", mean=[0, 0, 1, 0], scale=[1, 1, 2, 0]),
        Step(op="minmax", min=[0, 0, -1, 0], max=[1, 2e6, 1, 5], clip=True),
    ]
    out = preprocess(steps, x)
    # nan→0; inf→1e6 after clip → /2e6 = .5; (−3−1)/2 = −2 → clipped to 0; scale 0 → 1.
    np.testing.assert_allclose(out, [[0.0, 0.5, 0.0, 1.0]], atol=1e-6)
    assert x[0, 2] == -3.0  # input untouched


def test_occlusion_explanation_finds_the_deciding_feature(tmp_path: Path) -> None:
    det = FlowClassifier(load_bundle(make_bundle(tmp_path / "b")))
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 0.2, (6, 4)).astype(np.float32)
    x[:3, 2] = 2.0  # malicious rows
    v = det.classify_matrix(x)
    assert v.malicious.tolist() == [True] * 3 + [False] * 3
    expl = det.explain_matrix(x, v, np.arange(6), top=2)
    for r in range(3):
        assert expl[r][0].feature == FEATS[2]
        assert expl[r][0].weight > 0.5 and expl[r][0].value == pytest.approx(2.0)
    assert all(len(e) == 2 for e in expl)
    assert det.explain_matrix(x, v, [], top=2) == []


def test_occlusion_uses_the_baseline(tmp_path: Path) -> None:
    # With feature 2's baseline at 2.0 (its "normal" value), occluding it changes nothing.
    det = FlowClassifier(load_bundle(make_bundle(tmp_path / "b", baseline=[0, 0, 2.0, 0])))
    x = np.array([[0.0, 0.0, 2.0, 0.0]], np.float32)
    v = det.classify_matrix(x)
    (expl,) = det.explain_matrix(x, v, [0], top=4)
    assert {c.feature: c.weight for c in expl}[FEATS[2]] == pytest.approx(0.0, abs=1e-6)


class _Evil:
    """Unpickling this creates a directory: proof that something was unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.mkdir, (str(self.marker),))


def test_loading_never_unpickles(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    marker = tmp_path / "PWNED"
    evil = pickle.dumps(_Evil(marker))
    p = make_bundle(tmp_path / "models" / "evil")
    for name in ("model.pkl", "scaler.joblib", "rules.pkl", "model.h5"):
        (p / name).write_bytes(evil)
    meta = json.loads((p / "bundle.json").read_text())
    meta["files"] = {"rules": "rules.pkl", "scaler": "scaler.joblib"}
    (p / "bundle.json").write_text(json.dumps(meta))

    def refuse(*a: Any, **k: Any) -> Any:
        raise AssertionError("a bundle load tried to unpickle")

    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "Unpickler", refuse)
    import joblib

    monkeypatch.setattr(joblib, "load", refuse)

    with pytest.raises(FlowscopeError, match="unreadable rules file"):
        load_detector(p)  # a pickle where rules JSON belongs is refused, not loaded
    assert not marker.exists()
    meta["files"] = {"scaler": "scaler.joblib"}
    (p / "bundle.json").write_text(json.dumps(meta))
    det = load_detector(p)
    x = np.zeros((2, 4), np.float32)
    v = det.classify(pa.table({f: x[:, j] for j, f in enumerate(FEATS)}))
    det.explain(pa.table({f: x[:, j] for j, f in enumerate(FEATS)}), v, [0, 1])
    catalog.describe(p)
    monkeypatch.setenv("FLOWSCOPE_MODELS", str(p.parent))
    assert [e.name for e in catalog.list_bundles() if e.origin == "user"] == ["evil"]
    code, out, _ = run_cli(capsys, "models", "show", str(p))
    assert code == 0 and "scaler.joblib" in out
    # A pickle where the graph should be is parsed by onnxruntime, and rejected, not run.
    (p / "model.onnx").write_bytes(evil)
    with pytest.raises(BundleError, match="onnxruntime cannot load"):
        load_bundle(p)
    assert not marker.exists()


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("{", "unreadable bundle.json"),
        ("[]", "invalid bundle.json"),
        ('{"name": "x"}', "invalid bundle.json: algorithm"),
        ("BADMETA_FORMAT", "bundle format 2"),
        ("BADMETA_CLASSES", 'classes must start with "benign"'),
        ("BADMETA_THRESHOLD", "threshold must be within [0, 1]"),
        ("BADMETA_FEATURES", "features not computed by this engine: bogus_feature"),
        ("BADMETA_SET", "feature set 'someone-else-7'"),
        ("BADMETA_STEP", "preprocessing step 1 has 3 values, not 4"),
    ],
)
def test_bad_bundle_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, needle: str
) -> None:
    p = make_bundle(tmp_path / "b")
    good = json.loads((p / "bundle.json").read_text())
    edits: dict[str, dict[str, Any]] = {
        "BADMETA_FORMAT": {"format": 2},
        "BADMETA_CLASSES": {"classes": ["malicious", "benign"]},
        "BADMETA_THRESHOLD": {"threshold": 1.5},
        "BADMETA_FEATURES": {"features": [*FEATS[:3], "bogus_feature"]},
        "BADMETA_SET": {"feature_set": "someone-else-7"},
        "BADMETA_STEP": {"preprocessing": [{"op": "standardize", "mean": [0, 0, 0]}]},
    }
    text = json.dumps({**good, **edits[content]}) if content in edits else content
    (p / "bundle.json").write_text(text)
    with pytest.raises(BundleError) as ei:
        load_bundle(p)
    assert needle in str(ei.value) and "\n" not in str(ei.value)
    code, _, err = run_cli(capsys, "models", "show", str(p))
    assert_one_line_error(code, err, needle)


def test_graph_problems(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    w, b = detector_weights()
    wide = np.vstack([w, np.zeros((1, 2), np.float32)])
    p = save_bundle(tmp_path / "wide", toy_meta(), linear_onnx(wide, b))  # takes 5 columns
    with pytest.raises(BundleError, match=r"input shape \['n', 5\] does not take 4 features"):
        load_bundle(p)
    code, _, err = run_cli(capsys, "models", "show", str(p))
    assert_one_line_error(code, err, "does not take 4 features")

    three = save_bundle(tmp_path / "three", toy_meta(), linear_onnx(np.zeros((4, 3)), np.zeros(3)))
    with pytest.raises(BundleError, match="output has 3 columns for 2 classes"):
        load_bundle(three)

    (p / "model.onnx").unlink()
    with pytest.raises(BundleError, match=r"no model\.onnx"):
        load_bundle(p)

    side = make_bundle(tmp_path / "side")
    meta = json.loads((side / "bundle.json").read_text())
    meta["files"] = {"rules": "../../etc/passwd"}
    (side / "bundle.json").write_text(json.dumps(meta))
    with pytest.raises(BundleError, match="side file rules="):
        load_bundle(side)


# ---------------------------------------------------------------- resolve and user dir


def test_user_models_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FLOWSCOPE_MODELS", str(tmp_path / "m"))
    assert user_models_dir() == tmp_path / "m"
    monkeypatch.delenv("FLOWSCOPE_MODELS")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert user_models_dir() == tmp_path / "xdg" / "flowscope" / "models"
    monkeypatch.setenv("XDG_DATA_HOME", "relative/ignored")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert user_models_dir() == tmp_path / "home" / ".local/share/flowscope/models"


def test_resolve_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, user_dir: Path) -> None:
    shipped = tmp_path / "shipped"
    monkeypatch.setattr(bundle_mod, "builtin_dir", lambda: shipped)
    monkeypatch.setattr(catalog, "builtin_dir", lambda: shipped)
    make_bundle(user_dir / "mine", name="mine")
    make_bundle(user_dir / "default", name="user-default")
    make_bundle(shipped / "default", name="shipped-default")
    monkeypatch.chdir(tmp_path)
    assert resolve("mine") == user_dir / "mine"
    assert read_meta(resolve("default")).name == "shipped-default"  # shipped first
    assert resolve(user_dir / "default") == user_dir / "default"  # a path is a path
    with pytest.raises(BundleError, match="no such bundle directory") as ei:
        resolve("nope")
    assert str(user_dir) in str(ei.value)
    listed = {(e.origin, e.name): e for e in catalog.list_bundles()}
    assert listed[("user", "default")].shadowed
    assert not listed[("user", "mine")].shadowed


def test_list_shows_broken_bundles(
    user_dir: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    make_bundle(user_dir / "good", name="good")
    (user_dir / "broken").mkdir()
    (user_dir / "broken" / "bundle.json").write_text("{not json")
    bad_feats = make_bundle(user_dir / "alien")
    meta = json.loads((bad_feats / "bundle.json").read_text())
    meta["features"][0] = "tcp_window_entropy"
    (bad_feats / "bundle.json").write_text(json.dumps(meta))
    (user_dir / "empty").mkdir()
    (user_dir / "old-dashboard.h5").write_bytes(b"\x89HDF\r\n\x1a\n")
    (user_dir / ".good.import-1234").mkdir()  # staging dir of an import: not listed
    code, out, err = run_cli(capsys, "models", "list")
    assert code == 0, err
    rows = {line.split()[0]: line for line in out.splitlines()[1:] if line.strip()}
    assert set(rows) >= {"good", "broken", "alien", "empty", "old-dashboard"}
    assert ".good.import-1234" not in out
    assert "ok" in rows["good"] and "mlp" in rows["good"]
    assert "broken: unreadable bundle.json" in rows["broken"]
    assert "tcp_window_entropy" in rows["alien"]
    assert "no bundle.json" in rows["empty"]
    assert "not imported: run flowscope models import" in rows["old-dashboard"]
    code, out, _ = run_cli(capsys, "models", "list", "--json")
    data = {d["name"]: d for d in json.loads(out)}
    assert data["good"]["ok"] and data["good"]["classes"] == ["benign", "malicious"]
    assert data["broken"]["status"] == "broken" and not data["broken"]["ok"]
    assert data["old-dashboard"]["status"] == "not imported"


def test_show(user_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_bundle(
        user_dir / "toy",
        description="a toy",
        preprocessing=[Step(op="standardize", mean=[0.0] * 4, scale=[1.0] * 4)],
        metrics={"f1_macro": 0.91234, "per_class": {"malicious": {"recall": 0.8}}, "cm": [[1]]},
    )
    code, out, err = run_cli(capsys, "models", "show", "toy")
    assert code == 0, err
    assert "a toy" in out and "f1_macro" in out and "per_class.malicious.recall" in out
    assert "standardize" in out and "Flow Duration" in out and "µs" in out
    code, out, _ = run_cli(capsys, "models", "show", "toy", "--json")
    info = json.loads(out)
    assert info["origin"] == "user"
    assert info["features"][0] == {
        "name": "flow_duration",
        "unit": "µs",
        "cic": "Flow Duration",
        "cic-ids2017": "Flow Duration",
        "cse-cic-ids2018": "Flow Duration",
    }
    assert info["meta"]["metrics"]["cm"] == [[1]]
    assert info["graph"]["input_shape"] == ["n", 4]
    code, _, err = run_cli(capsys, "models", "show", "missing-model")
    assert_one_line_error(code, err, "missing-model: no such bundle directory")


# ---------------------------------------------------------------------------- rules


def _rule(antecedent: list[dict[str, Any]]) -> dict[str, Any]:
    return {"antecedent": antecedent, "support": 0.1, "confidence": 1.0}


def _rules_json(**changes: Any) -> dict[str, Any]:
    rs: dict[str, Any] = {
        "features": ["a", "b"],
        "bins": {"a": [1.0, 5.0]},
        "categories": {"b": ["tcp", "udp"]},
        "rules": [
            {
                "antecedent": [{"feature": "a", "bin": 1}, {"feature": "b", "value": "udp"}],
                "support": 0.1,
                "confidence": 0.99,
            },
            {"antecedent": [{"feature": "a", "bin": 2}], "support": 0.2, "confidence": 0.9},
        ],
    }
    rs.update(changes)
    return rs


def test_ruleset_matching(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    path.write_text(json.dumps(_rules_json()))
    rs = RuleSet.load(path)
    x = np.array([[2.0, 1], [2.0, 0], [7.0, 0], [0.5, 1], [1.0, 1], [5.0, 1]], np.float32)
    assert rs.first_match(x).tolist() == [0, -1, 1, -1, 0, 1]
    rs.save(tmp_path / "again.json")
    assert RuleSet.load(tmp_path / "again.json") == rs
    with pytest.raises(FlowscopeError, match="rules expect 2 feature columns"):
        rs.first_match(np.zeros((1, 3)))


@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        ({"bins": {"a": [5.0, 1.0]}}, "bin edges of 'a' are not strictly ascending"),
        ({"bins": {"zz": [1.0]}}, "bins for unknown feature 'zz'"),
        ({"categories": {"zz": ["x"]}}, "categories for unknown feature 'zz'"),
        ({"rules": [_rule([])]}, "rule 1 has an empty antecedent"),
        ({"rules": [_rule([{"feature": "b", "value": "icmp"}])]}, "b='icmp' not in vocabulary"),
        ({"rules": [_rule([{"feature": "b", "bin": 1}])]}, "rule 1: 'b' has no bin edges"),
        (
            {"rules": [_rule([{"feature": "a", "bin": 1, "value": "x"}])]},
            "exactly one of 'bin' or 'value'",
        ),
        ({"rules": [{"antecedent": [{"feature": "a", "bin": 1}]}]}, "rules.0.support"),
        ({"extra": 1}, "extra"),
    ],
)
def test_ruleset_validation_errors(tmp_path: Path, changes: dict[str, Any], needle: str) -> None:
    path = tmp_path / "r.json"
    path.write_text(json.dumps(_rules_json(**changes)))
    with pytest.raises(FlowscopeError) as ei:
        RuleSet.load(path)
    msg = str(ei.value)
    assert needle in msg and str(path) in msg and "\n" not in msg


def test_ruleset_unreadable(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    path.write_bytes(pickle.dumps([1, 2]))
    with pytest.raises(FlowscopeError, match="unreadable rules file"):
        RuleSet.load(path)
    with pytest.raises(FlowscopeError, match="unreadable rules file"):
        RuleSet.load(tmp_path / "missing.json")


def test_flow_rules_veto_alarms(tmp_path: Path) -> None:
    """A flow bundle's rules.json suppresses the alarms it matches, visibly."""
    from flowscope.models.rules import Item, Rule

    plain = load_detector(make_bundle(tmp_path / "plain"))
    src = make_bundle(tmp_path / "ruled")
    rules = RuleSet(
        features=[FEATS[0]],
        bins={FEATS[0]: [10.0]},
        rules=[Rule(antecedent=[Item(feature=FEATS[0], bin=1)], support=0.1, confidence=1.0)],
    )
    rules.save(src / "rules.json")
    meta = json.loads((src / "bundle.json").read_text())
    meta["files"]["rules"] = "rules.json"
    (src / "bundle.json").write_text(json.dumps(meta))
    ruled = load_detector(src)
    x = np.zeros((4, 4), np.float32)
    x[:, 2] = 2.0  # all flagged by the model
    x[:, 0] = [0, 5, 20, 30]  # the rule covers feature 0 >= 10
    table = pa.table({f: x[:, j] for j, f in enumerate(FEATS)})
    before, after = plain.classify(table), ruled.classify(table)
    assert before.malicious.all()
    assert after.suppressed is not None and after.rule is not None
    assert after.suppressed.tolist() == [False, False, True, True]
    assert after.malicious.tolist() == [True, True, False, False]
    assert after.rule.tolist() == [-1, -1, 0, 0]
    assert after.to_table().column("suppressed").to_pylist() == [False, False, True, True]
