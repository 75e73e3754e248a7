"""`flowscope models import`: real Keras models (.keras and legacy .h5) become bundles.

The models are small Dense networks with random weights, built once per module; what
matters is that the imported bundle reproduces Keras's own outputs, through the same
loader the sensor uses, and that every bad input ends in one line with exit status 2.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from flowscope.flows.registry import DIALECTS, FEATURES, column_name
from flowscope.models import importer, load_detector, read_meta
from flowscope.models.bundle import BundleMeta, load_bundle
from flowscope.models.importer import ModelImportError, map_feature_names
from flowscope.models.rules import RuleSet
from test_models_bundle import assert_one_line_error, run_cli

FEATS = FEATURES[:12]  # all have CIC-IDS2017 and CSE-CIC-IDS2018 names
CANON = [f.name for f in FEATS]
N2017 = [f.ids2017 for f in FEATS]
N2018 = [f.ids2018 for f in FEATS]
CLASSES = "benign,dos,portscan,bruteforce"
# Raw feature scale for the scaler tests: values around 10..10⁴ like flow counters.
MEAN = np.linspace(10.0, 1e4, 12)
SCALE = np.linspace(2.0, 3e3, 12)


@pytest.fixture(autouse=True)
def user_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    d = tmp_path / "user-models"
    monkeypatch.setenv("FLOWSCOPE_MODELS", str(d))
    return d


@pytest.fixture(scope="module")
def keras() -> Any:
    os.environ.setdefault("KERAS_BACKEND", "torch")
    import keras as k

    k.utils.set_random_seed(7)
    return k


@pytest.fixture(scope="module")
def files(keras: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Models and side files, written once: {key: path}."""
    d = tmp_path_factory.mktemp("keras")
    L = keras.layers
    models = {
        "multi": keras.Sequential(
            [keras.Input((12,)), L.Dense(16, activation="relu"), L.Dense(4, activation="softmax")]
        ),
        "binary": keras.Sequential(
            [keras.Input((12,)), L.Dense(8, activation="tanh"), L.Dense(1, activation="sigmoid")]
        ),
        "conv": keras.Sequential(
            [
                keras.Input((13, 1)),
                L.Conv1D(4, 3, activation="relu"),
                L.Flatten(),
                L.Dense(3, activation="softmax"),
            ]
        ),
        "logits": keras.Sequential([keras.Input((12,)), L.Dense(3)]),
        "lambda": keras.Sequential(
            [keras.Input((12,)), L.Lambda(lambda x: x * 2.0), L.Dense(2, activation="softmax")]
        ),
    }
    out: dict[str, Path] = {}
    for key, m in models.items():
        for suffix in (".keras", ".h5"):
            out[key + suffix] = d / f"{key}{suffix}"
            with warnings.catch_warnings():  # Keras's own legacy-HDF5 and numpy notices
                warnings.simplefilter("ignore")
                m.save(out[key + suffix])
    out["f2018"] = d / "features-2018.txt"
    out["f2018"].write_text("# the old dashboard's names\n" + "\n".join(N2018) + "\n")
    out["f2017"] = d / "features-2017.json"  # as read from the CSV header: leading spaces
    out["f2017"].write_text(json.dumps([" " + n for n in N2017]))
    dup = [*N2017[1:], "Fwd Header Length", "Fwd Header Length.1"]  # 13 columns, 12 features
    out["fdup"] = d / "features-dup.txt"
    out["fdup"].write_text("\n".join(dup) + "\n")
    out["scaler"] = d / "scaler.json"
    out["scaler"].write_text(json.dumps({"mean": MEAN.tolist(), "scale": SCALE.tolist()}))
    return out


def predict(model_path: Path, x: np.ndarray) -> np.ndarray:
    """Keras's own output for model-space rows (the reference)."""
    import keras
    import torch

    model = keras.models.load_model(model_path, compile=False)
    shape = (x.shape[0], *tuple(model.inputs[0].shape)[1:])
    with torch.no_grad():
        return model(x.reshape(shape), training=False).cpu().numpy()


def raw_rows(n: int = 64, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (MEAN + SCALE * rng.standard_normal((n, 12))).astype(np.float32)


def import_ok(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    code, out, err = run_cli(capsys, "models", "import", *args)
    assert code == 0, err
    return out


# -------------------------------------------------------------------- feature names


@pytest.mark.parametrize("dialect", DIALECTS)
def test_every_feature_maps_from_every_dialect(dialect: str) -> None:
    pairs = [(f.name, column_name(f.name, dialect)) for f in FEATURES]
    pairs = [(c, n) for c, n in pairs if n is not None]
    m = map_feature_names([n for _, n in pairs])
    assert m.columns == [c for c, _ in pairs]
    assert m.features == m.columns and not m.duplicated
    assert m.dialect == dialect


def test_feature_name_details() -> None:
    m = map_feature_names(["  flow   duration ", "TOT FWD PKTS", "Fwd Header Length.1"])
    assert m.columns == ["flow_duration", "fwd_packets", "fwd_header_bytes"]
    assert m.dialect == "mixed"
    m = map_feature_names(["Fwd Header Length", "Flow Duration", "Fwd Header Length.1"])
    assert m.features == ["fwd_header_bytes", "flow_duration"] and m.index == [0, 1, 0]
    with pytest.raises(ModelImportError) as ei:
        map_feature_names(["Dst Port", "Protocol", "Flow Duraton", "Label", "fwd_ttl_min"], "f")
    msg = str(ei.value)
    assert "\n" not in msg
    assert "'Dst Port' (dst_port)" in msg and "'Protocol' (protocol)" in msg
    assert "identifiers are not model inputs" in msg
    assert "'Flow Duraton' (did you mean 'Flow Duration'?)" in msg and "'Label'" in msg
    assert "counters are not model inputs: 'fwd_ttl_min'" in msg
    with pytest.raises(ModelImportError, match="empty"):
        map_feature_names([])


def test_feature_list_formats(tmp_path: Path) -> None:
    csv = tmp_path / "h.csv"
    csv.write_text('"Flow Duration","Tot Fwd Pkts", Tot Bwd Pkts\n')
    assert importer.read_feature_list(csv) == ["Flow Duration", "Tot Fwd Pkts", "Tot Bwd Pkts"]
    js = tmp_path / "f.json"
    js.write_text(json.dumps({"features": ["flow_duration"]}))
    assert importer.read_feature_list(js) == ["flow_duration"]
    js.write_text(json.dumps({"features": [1, 2]}))
    with pytest.raises(ModelImportError, match="list of names"):
        importer.read_feature_list(js)


# ----------------------------------------------------------------------- import: ok


@pytest.mark.parametrize(("suffix", "flist"), [(".keras", "f2018"), (".h5", "f2017")])
def test_softmax_model_with_json_scaler(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str], suffix: str, flist: str
) -> None:
    import keras

    model = files["multi" + suffix]
    out = import_ok(
        capsys, str(model), "-f", str(files[flist]), "--scaler", str(files["scaler"]),
        "--classes", CLASSES, "--name", "ids-multi",
    )  # fmt: skip
    assert "imported 'ids-multi'" in out and "ONNX matches Keras" in out
    det = load_detector("ids-multi")  # a bare name finds the user directory
    meta = det.bundle.meta
    assert meta.features == CANON and meta.algorithm == "keras"
    assert meta.classes == CLASSES.split(",") and meta.output == "probabilities"
    assert meta.threshold == 0.5
    t = meta.training
    assert t["source_file"] == model.name
    assert t["source_sha256"] == hashlib.sha256(model.read_bytes()).hexdigest()
    assert t["keras_version"] == keras.__version__
    assert t["feature_dialect"] == ("cse-cic-ids2018" if flist == "f2018" else "cic-ids2017")
    assert t["onnx_check"]["max_abs_diff"] <= importer.TOLERANCE
    assert meta.baseline == pytest.approx(MEAN.tolist())  # occlusion around the training mean
    raw = raw_rows()
    expected = predict(model, ((raw - MEAN) / SCALE).astype(np.float32))
    np.testing.assert_allclose(det.bundle.predict_proba(raw), expected, atol=1e-5)
    v = det.classify(pa.table({c: raw[:, j] for j, c in enumerate(CANON)}))
    np.testing.assert_allclose(v.proba, expected, atol=1e-5)
    expl = det.explain(pa.table({c: raw[:, j] for j, c in enumerate(CANON)}), v, [0, 1], top=3)
    assert all(len(e) == 3 and e[0].feature in CANON for e in expl)


@pytest.mark.parametrize("suffix", [".h5", ".keras"])
def test_sigmoid_model(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str], user_dir: Path, suffix: str
) -> None:
    model = files["binary" + suffix]
    import_ok(capsys, str(model), "-f", str(files["f2018"]), "--threshold", "0.65")
    meta = read_meta(user_dir / "binary")
    assert meta.output == "sigmoid" and meta.classes == ["benign", "malicious"]
    assert meta.threshold == 0.65 and "user" in meta.threshold_rule
    det = load_detector(user_dir / "binary")
    x = np.random.default_rng(3).standard_normal((40, 12)).astype(np.float32)
    p = predict(model, x)[:, 0]
    v = det.classify_matrix(x)
    np.testing.assert_allclose(v.proba[:, 1], p, atol=1e-5)
    assert v.malicious.tolist() == (p >= 0.65).tolist()
    code, out, _ = run_cli(capsys, "models", "list")
    assert code == 0 and "binary" in out and "benign, malicious" in out


def test_repeated_column_and_conv_input(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """CIC-IDS2017's doubled "Fwd Header Length" and a (k, 1) Conv1D input."""
    out_dir = tmp_path / "conv-bundle"
    mean = np.arange(13.0)
    mean[12] = mean[11]  # the repeated column was scaled like its original
    scaler = tmp_path / "s.json"
    scaler.write_text(json.dumps({"min": mean.tolist(), "max": (mean + 5).tolist()}))
    args = [str(files["conv.keras"]), "-f", str(files["fdup"]), "--scaler", str(scaler)]
    out = import_ok(capsys, *args, "--classes", "benign,a,b", "-o", str(out_dir))
    assert "1 repeated column(s)" in out
    b = load_bundle(out_dir)
    assert b.meta.name == "conv-bundle" and len(b.meta.features) == 12
    assert b.meta.features[-1] == "fwd_header_bytes" and b.meta.baseline is None
    x = np.random.default_rng(4).uniform(0, 20, (30, 12)).astype(np.float32)
    cols = np.concatenate([x, x[:, -1:]], axis=1)
    expected = predict(files["conv.keras"], ((cols - mean) / 5).astype(np.float32))
    np.testing.assert_allclose(b.predict_proba(x), expected, atol=1e-5)
    mean[12] += 1  # now the two copies disagree
    scaler.write_text(json.dumps({"min": mean.tolist(), "max": (mean + 5).tolist()}))
    code, _, err = run_cli(capsys, "models", "import", *args, "--classes", "benign,a,b")
    assert_one_line_error(code, err, "differs between the repeated columns of fwd_header_bytes")


def test_torch_fallback_when_keras_export_fails(
    files: dict[str, Path], keras: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def broken(*a: Any, **k: Any) -> None:
        raise RuntimeError("exporter unavailable")

    monkeypatch.setattr(keras.Model, "export", broken)
    res = importer.import_keras_model(
        files["binary.keras"], files["f2018"], out_dir=tmp_path / "fb"
    )
    assert res.max_abs_diff <= importer.TOLERANCE
    x = np.random.default_rng(5).standard_normal((8, 12)).astype(np.float32)
    got = load_bundle(tmp_path / "fb").predict_proba(x)[:, 1]
    np.testing.assert_allclose(got, predict(files["binary.keras"], x)[:, 0], atol=1e-5)


# --------------------------------------------------------------------- pickled scaler


def _df(x: np.ndarray, names: list[str]) -> Any:
    import pandas as pd

    return pd.DataFrame(x.astype(np.float64), columns=names)


def test_joblib_scaler_needs_trust(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    import joblib
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import MinMaxScaler, StandardScaler

    train = raw_rows(200, seed=9)
    pipe = Pipeline([("std", StandardScaler()), ("mm", MinMaxScaler(feature_range=(-1, 1)))])
    pipe.fit(_df(train, N2017))  # fitted on CIC-IDS2017 column names
    path = tmp_path / "scaler.joblib"
    joblib.dump(pipe, path)
    args = [str(files["multi.keras"]), "-f", str(files["f2018"]), "--scaler", str(path)]
    args += ["--classes", CLASSES]
    code, _, err = run_cli(capsys, "models", "import", *args)
    assert_one_line_error(code, err, "pickle", "--trust-pickle", "runs any code")
    assert not (Path(os.environ["FLOWSCOPE_MODELS"]) / "multi").exists()

    import_ok(capsys, *args, "--trust-pickle")
    det = load_detector("multi")
    meta = det.bundle.meta
    assert meta.training["scaler"]["kind"] == "StandardScaler+MinMaxScaler"
    assert meta.training["scaler"]["from_pickle"] is True
    assert [s.op for s in meta.preprocessing] == ["nan_to_num", "standardize", "standardize"]
    raw = raw_rows(50, seed=10)
    ref = predict(files["multi.keras"], pipe.transform(_df(raw, N2017)).astype(np.float32))
    np.testing.assert_allclose(det.bundle.predict_proba(raw), ref, atol=1e-4)
    # The bundle holds JSON only: it loads with pickle disabled.
    assert not any(p.suffix in (".joblib", ".pkl") for p in det.bundle.path.iterdir())


@pytest.mark.parametrize(
    "kind", ["standard", "standard-nomean", "robust", "minmax-clip", "shuffled", "unsupported"]
)
def test_pickled_scaler_kinds(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str], tmp_path: Path, kind: str
) -> None:
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import MinMaxScaler, RobustScaler, StandardScaler

    train = raw_rows(100, seed=11)
    names = list(N2018)
    est: Any = {
        "standard-nomean": StandardScaler(with_mean=False),
        "robust": RobustScaler(),
        "minmax-clip": MinMaxScaler(clip=True),
    }.get(kind, StandardScaler())
    if kind == "shuffled":
        names[0], names[1] = names[1], names[0]
    if kind == "unsupported":
        est = PCA(n_components=12)
    est.fit(_df(train, names))
    path = tmp_path / "s.pkl"
    with path.open("wb") as fh:
        pickle.dump(est, fh)
    args = [str(files["binary.keras"]), "-f", str(files["f2018"]), "--scaler", str(path)]
    out_dir = str(tmp_path / "x")
    code, _, err = run_cli(capsys, "models", "import", *args, "--trust-pickle", "-o", out_dir)
    if kind == "shuffled":
        assert_one_line_error(code, err, "fitted on other columns", "column 1")
        return
    if kind == "unsupported":
        assert_one_line_error(code, err, "unsupported preprocessor PCA")
        return
    assert code == 0, err
    b = load_bundle(out_dir)
    step = b.meta.preprocessing[1]
    assert step.op == ("minmax" if kind == "minmax-clip" else "standardize")
    assert step.clip == (kind == "minmax-clip")
    assert (b.meta.baseline is not None) == (kind == "standard")
    raw = raw_rows(20, seed=12)
    ref = predict(files["binary.keras"], est.transform(_df(raw, names)).astype(np.float32))
    np.testing.assert_allclose(b.predict_proba(raw)[:, 1], ref[:, 0], atol=1e-4)


# ------------------------------------------------------------------------------ rules


def _check_rules(bundle_dir: Path) -> RuleSet:
    """The veto rule: 1 forward packet and a flow of at most 1000 µs is benign."""
    meta = read_meta(bundle_dir)
    rs = RuleSet.load(bundle_dir / meta.files["rules"])
    assert rs.features == meta.features
    x = np.zeros((5, 12), np.float32)
    x[:, 0] = [500, 1000, 1000.5, 10, 10]  # flow_duration
    x[:, 1] = [1, 1, 1, 2, 1]  # fwd_packets
    assert (rs.first_match(x) >= 0).tolist() == [True, True, False, False, True]
    return rs


def test_pickled_rule_list_needs_trust(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # The desktop analyzer's shape: one (antecedent, consequent, support, confidence) rule.
    rule = (frozenset({"Tot Fwd Pkts=1", "Flow Duration<=1000"}), frozenset({"normal"}), 0.3, 0.97)
    path = tmp_path / "rule.pkl"
    path.write_bytes(pickle.dumps(rule))
    args = [str(files["binary.keras"]), "-f", str(files["f2018"]), "--rules", str(path)]
    code, _, err = run_cli(capsys, "models", "import", *args, "-o", str(tmp_path / "r"))
    assert_one_line_error(code, err, "--trust-pickle")
    import_ok(capsys, *args, "-o", str(tmp_path / "r"), "--trust-pickle")
    rs = _check_rules(tmp_path / "r")
    assert rs.rules[0].confidence == 0.97
    assert read_meta(tmp_path / "r").training["rules"]["from_pickle"] is True


def test_mlxtend_rules(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    import pandas as pd
    from mlxtend.frequent_patterns import apriori, association_rules

    # Only both items together imply BENIGN (each alone also occurs in DoS rows).
    onehot = pd.DataFrame(
        {
            "Tot Fwd Pkts=1": [1, 1, 1, 0, 1, 0],
            "Flow Duration<=1000": [1, 1, 1, 1, 0, 1],
            "Label=BENIGN": [1, 1, 1, 0, 0, 0],
            "Label=DoS": [0, 0, 0, 1, 1, 1],
        }
    ).astype(bool)
    items = apriori(onehot, min_support=0.4, use_colnames=True)
    rules = association_rules(items, num_itemsets=len(onehot), min_threshold=0.9)
    path = tmp_path / "rules.pkl"
    rules.to_pickle(path)
    out = import_ok(
        capsys, str(files["binary.keras"]), "-f", str(files["f2018"]), "--rules", str(path),
        "--trust-pickle", "-o", str(tmp_path / "r"),
    )  # fmt: skip
    assert "without a benign/normal consequent skipped" in out  # e.g. {Label=BENIGN} → {...}
    _check_rules(tmp_path / "r")


def test_rules_json_forms(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    base = [str(files["binary.keras"]), "-f", str(files["f2018"])]
    # A JSON list of simple rules needs no trust; intervals span several bins.
    simple = tmp_path / "simple.json"
    simple.write_text(
        json.dumps(
            [
                {"antecedent": ["Bwd Pkt Len Mean=(0.5, 10]"], "consequent": "BENIGN",
                 "support": 0.1, "confidence": 0.9},
                {"antecedent": ["Bwd Pkt Len Mean=[5, 20)"], "consequent": ["Label=BENIGN"]},
                {"antecedent": ["Bwd Pkt Len Mean>=1000"], "consequent": "DoS"},
            ]
        )
    )  # fmt: skip
    out = import_ok(capsys, *base, "--rules", str(simple), "-o", str(tmp_path / "s"))
    assert "1 rule(s) without a benign/normal consequent skipped" in out
    rs = RuleSet.load(tmp_path / "s" / "rules.json")
    x = np.zeros((6, 12), np.float32)
    col = CANON.index("bwd_pkt_len_mean")
    x[:, col] = [0.5, 0.6, 10.0, 15.0, 20.0, 2000.0]
    assert (rs.first_match(x) >= 0).tolist() == [False, True, True, True, False, False]
    # A RuleSet in CSE-CIC-IDS2018 names is mapped to the bundle's features.
    ruleset = {
        "features": ["Tot Fwd Pkts", "Flow Duration"],
        "bins": {"Tot Fwd Pkts": [1.0, 2.0], "Flow Duration": [1000.0]},
        "rules": [
            {
                "antecedent": [
                    {"feature": "Tot Fwd Pkts", "bin": 1},
                    {"feature": "Flow Duration", "bin": 0},
                ],
                "support": 0.3,
                "confidence": 0.97,
            }
        ],
    }
    path = tmp_path / "rs.json"
    path.write_text(json.dumps(ruleset))
    import_ok(capsys, *base, "--rules", str(path), "-o", str(tmp_path / "j"))
    rs = RuleSet.load(tmp_path / "j" / "rules.json")
    assert rs.bins == {"flow_duration": [1000.0], "fwd_packets": [1.0, 2.0]}
    x = np.zeros((3, 12), np.float32)
    x[:, 0], x[:, 1] = [999, 999, 1000], [1, 2, 1]
    assert rs.first_match(x).tolist() == [0, -1, -1]


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ('[{"antecedent": ["Flow Duration=short"], "consequent": "normal"}]', "label without bin"),
        ('[{"antecedent": ["Dst Port=80"], "consequent": "normal"}]', "identifiers"),
        ('[{"antecedent": ["Idle Max=1"], "consequent": "normal"}]', "not one of the model's"),
        ('[{"antecedent": ["Flow Duration=1"], "consequent": "DoS"}]', "no rule concludes"),
        ('{"features": ["a"], "rules": [], "bins": {"b": [1]}}', "bins for unknown feature"),
        ("[1, 2]", "not a rule list"),
        ("[{", "not valid JSON"),
    ],
)
def test_bad_rules(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str], tmp_path: Path, content: str,
    needle: str,
) -> None:  # fmt: skip
    path = tmp_path / "rules.json"
    path.write_text(content)
    code, _, err = run_cli(
        capsys, "models", "import", str(files["binary.keras"]), "-f", str(files["f2018"]),
        "--rules", str(path),
    )  # fmt: skip
    assert_one_line_error(code, err, needle)


# ---------------------------------------------------------------------- bad inputs


def _corrupt_h5(tmp_path: Path) -> Path:
    p = tmp_path / "corrupt.h5"
    p.write_bytes(b"\x89HDF\r\n\x1a\n" + os.urandom(256))
    return p


@pytest.mark.parametrize(
    ("case", "needle"),
    [
        ("unknown-feature", "unknown feature name(s): 'Flow Duraton'"),
        ("identifier", "'Dst Port' (dst_port)"),
        ("width", "the model takes 12 inputs (shape (12,)) but the feature list names 11"),
        ("corrupt-h5", "Keras cannot load the model"),
        ("not-keras", "not a Keras model"),
        ("missing-model", "model file not found"),
        ("missing-features", "feature list file not found"),
        ("missing-scaler", "scaler file not found"),
        ("scaler-length", "mean has 11 values for 12 features"),
        ("scaler-keys", "a scaler is"),
        ("lambda", "Lambda layer"),
        ("logits", "not probabilities"),
        ("no-classes", "name them with --classes"),
        ("classes-count", "the model has 4 outputs; --classes names 3"),
        ("classes-order", "--classes must start with benign"),
        ("threshold", "--threshold 1.5 is not within [0, 1]"),
        ("name", "bundle name 'a b'"),
    ],
)
def test_bad_inputs(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str], tmp_path: Path, case: str,
    needle: str,
) -> None:  # fmt: skip
    model, feats = files["multi.keras"], files["f2018"]
    extra = ["--classes", CLASSES]
    if case == "unknown-feature":
        feats = tmp_path / "f.txt"
        feats.write_text("\n".join([*N2018[:-1], "Flow Duraton"]))
    elif case == "identifier":
        feats = tmp_path / "f.txt"
        feats.write_text("\n".join(["Dst Port", *N2018[1:]]))
    elif case == "width":
        feats = tmp_path / "f.txt"
        feats.write_text("\n".join(N2018[:11]))
    elif case == "corrupt-h5":
        model = _corrupt_h5(tmp_path)
    elif case == "not-keras":
        model = tmp_path / "model.h5"
        model.write_text("this is not a model")
    elif case == "missing-model":
        model = tmp_path / "nope.h5"
    elif case == "missing-features":
        feats = tmp_path / "nope.txt"
    elif case == "missing-scaler":
        extra += ["--scaler", str(tmp_path / "nope.json")]
    elif case == "scaler-length":
        (tmp_path / "s.json").write_text(json.dumps({"mean": [0] * 11, "scale": [1] * 11}))
        extra += ["--scaler", str(tmp_path / "s.json")]
    elif case == "scaler-keys":
        (tmp_path / "s.json").write_text(json.dumps({"center": [0] * 12}))
        extra += ["--scaler", str(tmp_path / "s.json")]
    elif case in ("lambda", "logits"):
        model = files[f"{case}.h5"]
        extra = ["--classes", "benign,a,b"] if case == "logits" else []
    elif case == "no-classes":
        extra = []
    elif case == "classes-count":
        extra = ["--classes", "benign,dos,scan"]
    elif case == "classes-order":
        extra = ["--classes", "dos,benign,scan,x"]
    elif case == "threshold":
        extra += ["--threshold", "1.5"]
    elif case == "name":
        extra += ["--name", "a b"]
    code, _, err = run_cli(capsys, "models", "import", str(model), "-f", str(feats), *extra)
    assert_one_line_error(code, err, needle)
    user = Path(os.environ["FLOWSCOPE_MODELS"])
    assert not user.exists() or not any(user.iterdir())  # nothing half-written


def test_existing_bundle_needs_force(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    args = [str(files["binary.keras"]), "-f", str(files["f2018"]), "-o", str(tmp_path / "b")]
    import_ok(capsys, *args)
    code, _, err = run_cli(capsys, "models", "import", *args)
    assert_one_line_error(code, err, "pass --force")
    import_ok(capsys, *args, "--force", "--threshold", "0.9")
    assert read_meta(tmp_path / "b").threshold == 0.9
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
    (tmp_path / "notabundle").mkdir()
    (tmp_path / "notabundle" / "precious.txt").write_text("keep me")
    code, _, err = run_cli(capsys, "models", "import", *args[:-1], str(tmp_path / "notabundle"),
                           "--force")  # fmt: skip
    assert_one_line_error(code, err, "is not a model bundle")
    assert (tmp_path / "notabundle" / "precious.txt").exists()


def test_failed_check_leaves_nothing(
    files: dict[str, Path], monkeypatch: pytest.MonkeyPatch, user_dir: Path
) -> None:
    monkeypatch.setattr(importer, "TOLERANCE", -1.0)  # no export can pass this
    with pytest.raises(ModelImportError, match="disagrees with Keras"):
        importer.import_keras_model(files["binary.keras"], files["f2018"])
    assert list(user_dir.iterdir()) == []


def test_shipped_names_are_reserved(
    files: dict[str, Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "shipped" / "default").mkdir(parents=True)
    monkeypatch.setattr(importer, "builtin_dir", lambda: tmp_path / "shipped")
    with pytest.raises(ModelImportError, match="name of a shipped model"):
        importer.import_keras_model(files["binary.keras"], files["f2018"], name="default")


def test_missing_keras_says_how_to_install(
    files: dict[str, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "keras", None)  # `import keras` now fails
    code, _, err = run_cli(
        capsys, "models", "import", str(files["binary.h5"]), "-f", str(files["f2018"])
    )
    assert_one_line_error(code, err, "pip install 'flowscope[keras]'")


def test_installed_entry_point_exit_code(tmp_path: Path) -> None:
    feats = tmp_path / "f.txt"
    feats.write_text("Flow Duration\n")
    r = subprocess.run(
        [sys.executable, "-m", "flowscope", "models", "import", str(tmp_path / "m.h5"),
         "-f", str(feats)],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "FLOWSCOPE_MODELS": str(tmp_path / "u")},
    )  # fmt: skip
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        f"flowscope: error: {tmp_path / 'm.h5'}: model file not found"
    ]


def test_imported_meta_validates(files: dict[str, Path], tmp_path: Path) -> None:
    res = importer.import_keras_model(
        files["multi.h5"], files["f2017"], classes=CLASSES, out_dir=tmp_path / "m"
    )
    on_disk = json.loads((tmp_path / "m" / "bundle.json").read_text())
    assert BundleMeta.model_validate(on_disk) == res.meta
    assert res.meta.preprocessing[0].op == "nan_to_num"
    assert res.meta.training["source_features"] == N2017  # stripped of CSV padding
