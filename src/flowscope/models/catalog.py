"""The bundles a user can name: shipped ones and their own, for `flowscope models list/show`.

Listing loads each bundle the way the sensor would (metadata, feature check, ONNX
session, one probe row), so "ok" means the sensor can run it; a bundle that fails is
reported with its one-line reason instead of stopping the listing. Keras files left in
the user directory (the old tools' "place your .h5 here") are listed with the command
that imports them, since flowscope never runs them directly.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flowscope.errors import FlowscopeError
from flowscope.models.bundle import (
    FLOW_FEATURE_SET,
    GRAPH_FILE,
    BundleMeta,
    builtin_dir,
    load_bundle,
    resolve,
    user_models_dir,
)
from flowscope.models.importer import KERAS_SUFFIXES


@dataclass
class Entry:
    """One row of `models list`: a bundle, or why it cannot be used."""

    name: str  # what to pass to --model (the directory name)
    path: Path
    origin: str  # "shipped" or "user"
    meta: BundleMeta | None
    problem: str | None = None  # one line when broken or not imported
    shadowed: bool = False  # a user bundle hidden by a shipped one of the same name
    imported: bool = True  # False: a Keras file waiting for `flowscope models import`

    @property
    def ok(self) -> bool:
        return self.problem is None

    @property
    def status(self) -> str:
        return "ok" if self.ok else "broken" if self.imported else "not imported"

    def as_dict(self) -> dict[str, Any]:
        m = self.meta
        return {
            "name": self.name,
            "origin": self.origin,
            "path": str(self.path),
            "ok": self.ok,
            "status": self.status,
            "problem": self.problem,
            "shadowed": self.shadowed,
            "algorithm": m.algorithm if m else None,
            "feature_set": m.feature_set if m else None,
            "features": len(m.features) if m else None,
            "classes": list(m.classes) if m else None,
            "threshold": m.threshold if m else None,
        }


def _reason(e: BaseException, path: Path) -> str:
    """The error's first line without the bundle path the listing already shows."""
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    for prefix in (f"{path / GRAPH_FILE}: ", f"{path}: "):
        text = text.removeprefix(prefix)
    return text if isinstance(e, FlowscopeError) else f"{type(e).__name__}: {text}"


def inspect(path: Path, origin: str) -> Entry:
    """Load one bundle directory; never raises (a failure becomes ``problem``)."""
    try:
        bundle = load_bundle(path)
    except Exception as e:  # any failure is a fact about this bundle, not about the listing
        return Entry(path.name, path, origin, None, _reason(e, path))
    return Entry(path.name, path, origin, bundle.meta)


def list_bundles() -> list[Entry]:
    """Shipped bundles, then the user's, each sorted by name."""
    entries: list[Entry] = []
    shipped: set[str] = set()
    for origin, base in (("shipped", builtin_dir()), ("user", user_models_dir())):
        if not base.is_dir():
            continue
        for p in sorted(base.iterdir(), key=lambda q: q.name):
            if p.name.startswith((".", "__")):
                continue  # staging directories of an import in progress, caches
            if p.is_file():
                if origin == "user" and p.suffix.lower() in KERAS_SUFFIXES:
                    hint = f"run flowscope models import {p} --features FILE"
                    entries.append(Entry(p.stem, p, origin, None, hint, imported=False))
                continue
            entry = inspect(p, origin)
            if origin == "shipped":
                shipped.add(p.name)
            elif p.name in shipped:
                entry.shadowed = True
            entries.append(entry)
    return entries


def origin_of(path: Path) -> str:
    """'shipped', 'user' or 'path' (a bundle named by its directory)."""
    real = path.resolve()
    for origin, base in (("shipped", builtin_dir()), ("user", user_models_dir())):
        if real.parent == base.resolve():
            return origin
    return "path"


def _flat_scalars(obj: Any, prefix: str = "", depth: int = 3) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            key = f"{prefix}.{k}" if prefix else str(k)
            if isinstance(v, (int, float, str, bool)):
                out.append((key, v))
            elif isinstance(v, dict) and depth > 1:
                out += _flat_scalars(v, key, depth - 1)
    return out


def metrics_summary(metrics: dict[str, Any], limit: int = 24) -> list[tuple[str, Any]]:
    """Scalar metrics down to per_class.dos.recall, for a terminal (--json keeps all)."""
    return _flat_scalars(metrics)[:limit]


def describe(name_or_path: str | os.PathLike[str]) -> dict[str, Any]:
    """Everything `models show` prints, as JSON-ready data; raises if the bundle is unusable."""
    path = resolve(name_or_path)
    bundle = load_bundle(path)
    meta = bundle.meta
    features: list[dict[str, Any]] = []
    if meta.feature_set == FLOW_FEATURE_SET:
        from flowscope.flows.registry import BY_NAME, DIALECTS, column_name

        for f in meta.features:
            row: dict[str, Any] = {"name": f, "unit": BY_NAME[f].unit}
            row.update({d: column_name(f, d) for d in DIALECTS if d != "flowscope"})
            features.append(row)
    else:
        features = [{"name": f, "unit": None} for f in meta.features]
    side = []
    for role, fname in meta.files.items():
        fp = path / fname
        side.append({"role": role, "file": fname, "bytes": fp.stat().st_size})
    inp = bundle.session.get_inputs()[0]
    return {
        "name": meta.name,
        "path": str(path),
        "origin": origin_of(path),
        "meta": meta.model_dump(mode="json"),
        "features": features,
        "metrics_summary": dict(metrics_summary(meta.metrics)),
        "side_files": side,
        "graph": {
            "file": GRAPH_FILE,
            "bytes": (path / GRAPH_FILE).stat().st_size,
            "input": inp.name,
            "input_shape": [d if isinstance(d, int) else str(d) for d in inp.shape],
            "output": bundle.output_name,
        },
    }
