"""Model bundles: an ONNX graph plus JSON metadata, loaded without unpickling.

A bundle is a directory::

    NAME/
      bundle.json      metadata (BundleMeta): features in order, preprocessing,
                       classes, threshold, training summary, metrics, version
      model.onnx       the graph; input float32 [n, len(features)], output
                       class probabilities [n, len(classes)] (or one sigmoid column)
      ...              optional side files named in ``files`` (e.g. lightgbm.txt
                       for exact tree contributions, rules.json for the KDD filter)

Why a directory of plain files: every part is readable with standard tools (``jq``,
Netron), nothing executes code on load, and a side file can be added without a new
container format. Inference runs through onnxruntime only, so neither torch nor
TensorFlow is needed at run time.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from flowscope import __version__
from flowscope.errors import FlowscopeError, first_problem

BUNDLE_FORMAT = 1
META_FILE = "bundle.json"
GRAPH_FILE = "model.onnx"

# The flow-feature set a bundle was trained on. Bump when a feature's definition changes,
# so an old bundle fails loudly instead of scoring features that now mean something else.
FLOW_FEATURE_SET = "flowscope-flow-1"
KDD_FEATURE_SET = "nsl-kdd-1"

Matrix = npt.NDArray[np.float32]


class BundleError(FlowscopeError):
    """A bundle is missing, malformed or does not fit this engine."""


class Step(BaseModel):
    """One preprocessing step applied in numpy before the graph, in order.

    ``nan_to_num``: NaN → 0, ±inf → ±float32 max. ``signed_log1p``: sign(x)·log1p(|x|).
    ``standardize``: (x − mean) / scale. ``minmax``: (x − min) / (max − min), clipped to
    [0, 1] when ``clip`` is set. ``clip``: to [lo, hi]. Vectors have one value per feature.
    """

    model_config = ConfigDict(extra="forbid")

    op: Literal["nan_to_num", "signed_log1p", "standardize", "minmax", "clip"]
    mean: list[float] | None = None
    scale: list[float] | None = None
    min: list[float] | None = None
    max: list[float] | None = None
    lo: float | None = None
    hi: float | None = None
    clip: bool = False


class BundleMeta(BaseModel):
    """Everything needed to use a model correctly, stored as bundle.json."""

    model_config = ConfigDict(extra="forbid")

    format: int = BUNDLE_FORMAT
    name: str
    description: str = ""
    algorithm: str  # lightgbm, rescnn, mlp, kdd-dnn, keras, ...
    feature_set: str = FLOW_FEATURE_SET
    features: list[str]
    preprocessing: list[Step] = Field(default_factory=list)
    classes: list[str]
    output: Literal["probabilities", "sigmoid"] = "probabilities"
    output_name: str | None = None  # ONNX output to read; None: the first
    threshold: float = 0.5
    threshold_rule: str = ""
    training: dict[str, Any] = Field(default_factory=dict)
    metrics: dict[str, Any] = Field(default_factory=dict)
    explain: Literal["lightgbm", "occlusion", "none"] = "occlusion"
    baseline: list[float] | None = None  # per-feature reference values for occlusion
    files: dict[str, str] = Field(default_factory=dict)  # role → side-file name
    flowscope_version: str = __version__
    created: str = Field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    @field_validator("classes")
    @classmethod
    def _benign_first(cls, v: list[str]) -> list[str]:
        if len(v) < 2 or v[0] != "benign":
            raise ValueError('classes must start with "benign" and name at least one more')
        if len(set(v)) != len(v):
            raise ValueError("classes must be unique")
        return v

    @field_validator("threshold")
    @classmethod
    def _unit(cls, v: float) -> float:
        if not 0.0 <= v <= 1.0:
            raise ValueError("threshold must be within [0, 1]")
        return v


def _check_features(meta: BundleMeta, where: str) -> None:
    """A flow bundle must ask only for features this engine computes, under the same set."""
    if meta.feature_set == FLOW_FEATURE_SET:
        from flowscope.flows.registry import FEATURES

        known = {f.name for f in FEATURES}
        missing = [f for f in meta.features if f not in known]
        if missing:
            raise BundleError(
                f"{where}: features not computed by this engine: {', '.join(missing[:8])}"
                + (" …" if len(missing) > 8 else "")
            )
    elif meta.feature_set == KDD_FEATURE_SET:
        from flowscope.kdd.features import KDD_FEATURES

        if list(meta.features) != list(KDD_FEATURES):
            raise BundleError(f"{where}: KDD features differ from this engine's 41 NSL-KDD columns")
    else:
        raise BundleError(
            f"{where}: feature set {meta.feature_set!r} is not this engine's "
            f"({FLOW_FEATURE_SET} or {KDD_FEATURE_SET}); retrain or re-import the model"
        )
    if len(set(meta.features)) != len(meta.features):
        raise BundleError(f"{where}: duplicate feature names")
    n = len(meta.features)
    for i, step in enumerate(meta.preprocessing):
        for vec in (step.mean, step.scale, step.min, step.max):
            if vec is not None and len(vec) != n:
                raise BundleError(
                    f"{where}: preprocessing step {i + 1} has {len(vec)} values, not {n}"
                )
    if meta.baseline is not None and len(meta.baseline) != n:
        raise BundleError(f"{where}: baseline has {len(meta.baseline)} values, not {n}")


def preprocess(steps: Sequence[Step], x: Matrix) -> Matrix:
    """Apply the bundle's numpy preprocessing to a float32 matrix (returns a new array)."""
    out = np.array(x, dtype=np.float32, copy=True)
    big = float(np.finfo(np.float32).max)
    for s in steps:
        if s.op == "nan_to_num":
            np.nan_to_num(out, copy=False, nan=0.0, posinf=big, neginf=-big)
        elif s.op == "signed_log1p":
            out = np.asarray(np.sign(out) * np.log1p(np.abs(out)), dtype=np.float32)
        elif s.op == "standardize":
            mean = np.asarray(s.mean, np.float32)
            scale = np.asarray(s.scale, np.float32)
            out = np.asarray((out - mean) / np.where(scale == 0, 1, scale), dtype=np.float32)
        elif s.op == "minmax":
            lo = np.asarray(s.min, np.float32)
            span = np.asarray(s.max, np.float32) - lo
            out = np.asarray((out - lo) / np.where(span == 0, 1, span), dtype=np.float32)
            if s.clip:
                np.clip(out, 0.0, 1.0, out=out)
        elif s.op == "clip":
            np.clip(out, -big if s.lo is None else s.lo, big if s.hi is None else s.hi, out=out)
    return out


@dataclass
class Bundle:
    """A loaded bundle: metadata, its directory and a ready onnxruntime session."""

    meta: BundleMeta
    path: Path
    session: Any  # onnxruntime.InferenceSession
    input_name: str
    output_name: str

    @property
    def name(self) -> str:
        return self.meta.name

    def side_file(self, role: str) -> Path | None:
        """Path of an optional side file (e.g. "lightgbm", "rules"), if the bundle has it."""
        name = self.meta.files.get(role)
        return None if name is None else self.path / name

    def run(self, x: Matrix) -> Matrix:
        """Class probabilities for an already preprocessed float32 matrix."""
        if x.shape[0] == 0:
            return np.zeros((0, len(self.meta.classes)), np.float32)
        out = self.session.run([self.output_name], {self.input_name: x})[0]
        p = np.asarray(out, dtype=np.float32)
        if self.meta.output == "sigmoid":
            p = p.reshape(-1)
            p = np.stack([1.0 - p, p], axis=1)
        return p.reshape(x.shape[0], -1)

    def predict_proba(self, x: Matrix) -> Matrix:
        """Class probabilities for raw feature rows (preprocessing applied here)."""
        return self.run(preprocess(self.meta.preprocessing, x))


def _session(graph: Path, threads: int) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    # One core by default: the sensor's other stages need the rest, and batched tree and
    # small-MLP inference gains little from more threads.
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(
        os.fspath(graph), sess_options=opts, providers=["CPUExecutionProvider"]
    )


def read_meta(path: str | os.PathLike[str]) -> BundleMeta:
    """Read and validate bundle.json only (no graph): cheap, for `models list/show`."""
    p = Path(path)
    meta_path = p / META_FILE if p.is_dir() else p
    where = str(p)
    try:
        raw = json.loads(meta_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BundleError(f"{where}: not a model bundle (no {META_FILE})") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BundleError(f"{where}: unreadable {META_FILE}: {e}") from None
    if isinstance(raw, dict) and raw.get("format", BUNDLE_FORMAT) != BUNDLE_FORMAT:
        raise BundleError(
            f"{where}: bundle format {raw.get('format')} (this flowscope reads {BUNDLE_FORMAT})"
        )
    try:
        meta = BundleMeta.model_validate(raw)
    except ValidationError as e:
        raise BundleError(f"{where}: invalid {META_FILE}: {first_problem(e)}") from None
    _check_features(meta, where)
    return meta


def load_bundle(path: str | os.PathLike[str], threads: int = 1) -> Bundle:
    """Load and check a bundle directory; raise BundleError with one line if it is unusable."""
    p = Path(resolve(path))
    meta = read_meta(p)
    graph = p / GRAPH_FILE
    if not graph.is_file():
        raise BundleError(f"{p}: no {GRAPH_FILE}")
    for role, name in meta.files.items():
        if "/" in name or "\\" in name or name.startswith(".") or not (p / name).is_file():
            raise BundleError(f"{p}: side file {role}={name!r} missing or not a plain name")
    try:
        sess = _session(graph, threads)
    except Exception as e:  # onnxruntime raises its own exception types
        raise BundleError(
            f"{graph}: onnxruntime cannot load the graph: {str(e).splitlines()[0]}"
        ) from None
    inputs = sess.get_inputs()
    if len(inputs) != 1:
        raise BundleError(f"{graph}: expected one input, graph has {len(inputs)}")
    shape = inputs[0].shape
    if len(shape) != 2 or (isinstance(shape[1], int) and shape[1] != len(meta.features)):
        raise BundleError(
            f"{graph}: input shape {shape} does not take {len(meta.features)} features"
        )
    names = [o.name for o in sess.get_outputs()]
    out = meta.output_name or names[0]
    if out not in names:
        raise BundleError(f"{graph}: no output {out!r} (outputs: {', '.join(names)})")
    bundle = Bundle(meta, p, sess, inputs[0].name, out)
    probe = bundle.run(np.zeros((1, len(meta.features)), np.float32))
    if probe.shape != (1, len(meta.classes)):
        raise BundleError(
            f"{graph}: output has {probe.shape[1]} columns for {len(meta.classes)} classes"
        )
    return bundle


def save_bundle(
    out_dir: str | os.PathLike[str],
    meta: BundleMeta,
    onnx_bytes: bytes,
    side_files: dict[str, tuple[str, bytes]] | None = None,
) -> Path:
    """Write a bundle directory (replacing files of the same names); return its path."""
    p = Path(out_dir)
    p.mkdir(parents=True, exist_ok=True)
    files = dict(meta.files)
    for role, (name, data) in (side_files or {}).items():
        (p / name).write_bytes(data)
        files[role] = name
    meta = meta.model_copy(update={"files": files})
    (p / GRAPH_FILE).write_bytes(onnx_bytes)
    (p / META_FILE).write_text(meta.model_dump_json(indent=2) + "\n", encoding="utf-8")
    _check_features(meta, str(p))
    return p


def builtin_dir() -> Path:
    """Directory of the bundles shipped inside the package."""
    return Path(str(resources.files("flowscope") / "data" / "models"))


def user_models_dir() -> Path:
    """Directory of the user's own bundles (`flowscope models import` writes there).

    ``$FLOWSCOPE_MODELS`` if set, else ``$XDG_DATA_HOME/flowscope/models`` with the XDG
    default ``~/.local/share``: models are data the user created, not configuration, and
    the override lets a service account or a test point at another directory.
    """
    env = os.environ.get("FLOWSCOPE_MODELS")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME")
    # The XDG spec says to ignore a relative XDG_DATA_HOME.
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".local" / "share"
    return base / "flowscope" / "models"


def resolve(name_or_path: str | os.PathLike[str]) -> Path:
    """A bundle path, or a bare name: a shipped bundle first, then one in user_models_dir().

    Shipped names win so that "default" always means the model this release was tested
    with: a directory dropped into the user's data directory cannot silently replace the
    detector a sensor runs. A user bundle with a shipped name stays usable by its path.
    """
    p = Path(name_or_path)
    if p.exists():
        return p
    name = str(name_or_path)
    if name and "/" not in name and os.sep not in name and name not in (".", ".."):
        for base in (builtin_dir(), user_models_dir()):
            if (base / name).is_dir():
                return base / name
    raise BundleError(
        f"{name}: no such bundle directory, shipped model or model in {user_models_dir()}"
    )
