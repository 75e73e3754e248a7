"""One batch of classified flows, as every live-sensor sink receives it.

The sensor hands the sinks a flow table (the columns of
:func:`flowscope.flows.features.compute_features`), the :class:`Verdicts` for the same
rows and, optionally, a risk level per flow and the top explanation features of the
flows it explained. :func:`prepare` derives what several sinks need (verdict columns,
risk column, formatted explanations) once per batch, so fanning a batch out to three
sinks does not compute it three times.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

if TYPE_CHECKING:
    from flowscope.models.classify import Contribution, Verdicts

RISK_LEVELS: tuple[str, ...] = ("low", "medium", "high", "critical")

# (feature, value, weight): a Contribution from FlowClassifier.explain or a plain tuple.
ContributionLike: TypeAlias = "Contribution | tuple[str, float, float]"
Explanations: TypeAlias = "Mapping[int, Sequence[ContributionLike]]"
RiskLike: TypeAlias = "Sequence[str | None] | pa.Array | pa.ChunkedArray | npt.NDArray[Any]"


@dataclass
class FlowBatch:
    """What the sensor passes to :meth:`flowscope.sinks.hub.SinkSet.write_batch`.

    ``risk``: one of :data:`RISK_LEVELS` (or None) per row. ``explanations``: row index →
    the top features behind that row's verdict, usually only for flagged flows.
    """

    flows: pa.Table
    verdicts: Verdicts
    risk: RiskLike | None = None
    explanations: Explanations | None = None

    @classmethod
    def explained(
        cls,
        flows: pa.Table,
        verdicts: Verdicts,
        rows: Sequence[int] | npt.NDArray[np.integer[Any]],
        contributions: Sequence[Sequence[ContributionLike]],
        risk: RiskLike | None = None,
    ) -> FlowBatch:
        """A batch from ``Detector.explain(flows, verdicts, rows)``'s arguments and result."""
        idx = [int(r) for r in np.asarray(rows).reshape(-1)]
        if len(idx) != len(contributions):
            raise ValueError(f"{len(idx)} explained rows but {len(contributions)} explanations")
        return cls(flows, verdicts, risk, dict(zip(idx, contributions, strict=True)))


def _triple(c: ContributionLike) -> tuple[str, float, float]:
    if isinstance(c, tuple):
        name, value, weight = c
    else:
        name, value, weight = c.feature, c.value, c.weight
    return str(name), float(value), float(weight)


def json_number(x: float) -> float | None:
    """A JSON-safe float: rounded to 6 significant digits, None for NaN/Infinity."""
    if not math.isfinite(x):
        return None
    return float(f"{x:.6g}")


@dataclass
class PreparedBatch:
    """A :class:`FlowBatch` with the derived columns the sinks share."""

    flows: pa.Table
    verdicts: Verdicts
    verdict_table: pa.Table  # score, verdict, family, p_<class> (+ suppressed, rule)
    risk: pa.Array  # string, null where not given
    top: list[list[tuple[str, float, float]] | None]  # per row; None = not explained
    top_text: pa.Array  # "feature=value (+weight); …", empty string when not explained
    _eve_ids: list[int] | None = None

    @property
    def num_rows(self) -> int:
        return self.flows.num_rows

    @property
    def classes(self) -> tuple[str, ...]:
        return tuple(self.verdicts.classes)

    def rounded_scores(self) -> list[float]:
        """Malicious scores rounded to 6 decimals (NaN → 0), as Python floats."""
        s = np.nan_to_num(np.asarray(self.verdicts.score, np.float64))
        out: list[float] = np.round(s, 6).tolist()
        return out

    def rounded_proba(self) -> list[list[float]]:
        """Class probabilities per row rounded to 6 decimals (NaN → 0)."""
        p = np.nan_to_num(np.asarray(self.verdicts.proba, np.float64))
        out: list[list[float]] = np.round(p, 6).tolist()
        return out

    def eve_flow_ids(self) -> list[int]:
        """The EVE ``flow_id`` of every row (computed once, shared by EVE and SQLite)."""
        if self._eve_ids is None:
            from flowscope.sinks.eve import eve_flow_id

            keys = column_list(self.flows, "flow_id", "")
            first = first_int_column(self.flows, "first_seen").tolist()
            self._eve_ids = [eve_flow_id(k, f) for k, f in zip(keys, first, strict=True)]
        return self._eve_ids

    def top_json(self, row: int) -> list[dict[str, float | str | None]] | None:
        items = self.top[row]
        if items is None:
            return None
        return [
            {"feature": f, "value": json_number(v), "weight": json_number(w)} for f, v, w in items
        ]


def has_column(table: pa.Table, name: str) -> bool:
    """Whether the table has a column ``name``.

    ``name in table.column_names`` builds a list of every name (~60 µs for a 107-column
    flow table); the sinks ask ~40 times per batch, so that alone capped them.
    """
    return table.schema.get_field_index(name) >= 0


def column_numpy(col: pa.ChunkedArray | pa.Array) -> npt.NDArray[Any]:
    """A column as a numpy array, converting chunk by chunk.

    ``ChunkedArray.to_numpy()`` took ~1.6 ms for a 4-row int64 column here, 800× the
    per-chunk conversion; flow tables have one chunk, so this is usually zero-copy.
    """
    if isinstance(col, pa.Array):
        return col.to_numpy(zero_copy_only=False)
    if col.num_chunks == 1:
        return col.chunk(0).to_numpy(zero_copy_only=False)
    if col.num_chunks == 0:
        return np.empty(0, col.type.to_pandas_dtype())
    return col.combine_chunks().to_numpy(zero_copy_only=False)


def column_list(table: pa.Table, name: str, default: Any = None) -> list[Any]:
    """A column as Python values, or ``default`` for every row if the table lacks it."""
    if has_column(table, name):
        values: list[Any] = table.column(name).to_pylist()
        return values
    return [default] * table.num_rows


def int_column(table: pa.Table, name: str) -> npt.NDArray[np.int64] | None:
    """A numeric column as int64 (nulls and NaN → 0), None if the table lacks it.

    Integer columns never pass through float64, so ns timestamps stay exact.
    """
    if not has_column(table, name):
        return None
    col = table.column(name)
    if pa.types.is_integer(col.type):
        filled = col.fill_null(0) if col.null_count else col
        return np.asarray(column_numpy(filled), dtype=np.int64)
    values = np.asarray(column_numpy(col), dtype=np.float64)
    return np.nan_to_num(values, posinf=0.0, neginf=0.0).astype(np.int64)


def first_int_column(table: pa.Table, *names: str, default: int = 0) -> npt.NDArray[np.int64]:
    """The first of ``names`` the table has, as int64; ``default`` everywhere if none."""
    for n in names:
        got = int_column(table, n)
        if got is not None:
            return got
    return np.full(table.num_rows, default, np.int64)


def _risk_array(risk: RiskLike | None, n: int) -> pa.Array:
    if risk is None:
        return pa.nulls(n, pa.string())
    if isinstance(risk, pa.ChunkedArray):
        arr = risk.combine_chunks()
    elif isinstance(risk, pa.Array):
        arr = risk
    else:
        arr = pa.array(np.asarray(risk, dtype=object) if isinstance(risk, np.ndarray) else risk)
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    if arr.type != pa.string():
        arr = arr.cast(pa.string())
    if len(arr) != n:
        raise ValueError(f"risk has {len(arr)} values for {n} flows")
    bad = pc.and_(pc.is_valid(arr), pc.invert(pc.is_in(arr, pa.array(RISK_LEVELS))))
    if pc.any(bad).as_py():
        first = arr.filter(bad)[0].as_py()
        raise ValueError(f"unknown risk level {first!r}; use one of {', '.join(RISK_LEVELS)}")
    return arr


def format_top(items: Sequence[tuple[str, float, float]]) -> str:
    """Explanation features as one CSV-friendly cell: ``syn_flag_count=1 (+0.42); …``."""
    return "; ".join(f"{f}={v:.6g} ({w:+.3g})" for f, v, w in items)


def prepare(batch: FlowBatch) -> PreparedBatch:
    """Validate a batch and compute the columns shared by all sinks."""
    n = batch.flows.num_rows
    if len(batch.verdicts) != n:
        raise ValueError(f"{len(batch.verdicts)} verdicts for {n} flows")
    top: list[list[tuple[str, float, float]] | None] = [None] * n
    texts: list[str] = [""] * n
    for row, items in (batch.explanations or {}).items():
        r = int(row)
        if not 0 <= r < n:
            raise ValueError(f"explanation for row {r}, but the batch has {n} flows")
        triples = [_triple(c) for c in items]
        top[r] = triples
        texts[r] = format_top(triples)
    return PreparedBatch(
        flows=batch.flows,
        verdicts=batch.verdicts,
        verdict_table=batch.verdicts.to_table(),
        risk=_risk_array(batch.risk, n),
        top=top,
        top_text=pa.array(texts, pa.string()),
    )
