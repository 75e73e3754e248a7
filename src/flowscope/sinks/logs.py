"""The older dashboard's CSV logs: ``logs/input_logs_<timestamp>.csv`` and
``logs/output_logs_<timestamp>.csv``.

- **input logs**: one row per classified flow, its identifiers and features under the
  column names of a header dialect (``cse-cic-ids2018`` by default, the names the older
  dashboard's features used; a feature the dialect has no name for is left out, use the
  ``flowscope`` dialect for every column).
- **output logs**: the same flows' verdicts: flow id, 5-tuple and timestamp (dialect
  names), then ``score`` (Malicious score, 1 − P(benign)), ``verdict`` (Normal /
  Malicious), ``family``, ``risk`` (low/medium/high/critical, empty when not given) and
  ``top_features`` (``feature=value (+weight); …`` for explained flows, else empty).

Row i of an input log and row i of the output log of the same timestamp are the same
flow. Both files are written a batch at a time by pyarrow's CSV writer, start together
(same timestamp), rotate together and get their header again after each rotation.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv

from flowscope.errors import FlowscopeError
from flowscope.flows.registry import DIALECTS, column_name, dialect_columns
from flowscope.sinks.batch import PreparedBatch
from flowscope.sinks.rotate import FlushPolicy, RotatingFiles, Rotation

DEFAULT_DIALECT = "cse-cic-ids2018"
OUTPUT_IDENTIFIERS = (
    "flow_id", "src_ip", "src_port", "dst_ip", "dst_port", "protocol", "timestamp",
)  # fmt: skip
OUTPUT_VERDICT_COLUMNS = ("score", "verdict", "family", "risk", "top_features")


def _csv(table: pa.Table, header: bool) -> bytes:
    buf = pa.BufferOutputStream()
    pacsv.write_csv(table, buf, pacsv.WriteOptions(include_header=header))
    return bytes(buf.getvalue().to_pybytes())


class DashboardLogs:
    """Writes the input/output CSV log pair into ``directory/logs``."""

    name = "logs"

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        dialect: str = DEFAULT_DIALECT,
        rotation: Rotation | None = None,
        flush: FlushPolicy | None = None,
        subdir: str = "logs",
        clock: Callable[[], float] = time.time,
    ) -> None:
        if dialect not in DIALECTS:
            raise FlowscopeError(f"unknown dialect {dialect!r}; choose from {', '.join(DIALECTS)}")
        self.dialect = dialect
        self.directory = Path(directory) / subdir
        self.files = RotatingFiles(
            [self.directory / "input_logs.csv", self.directory / "output_logs.csv"],
            naming="timestamped",
            rotation=rotation,
            flush=flush,
            clock=clock,
        )
        self.rows = 0
        self._in_cols: list[tuple[str, str]] | None = None
        self._in_schema: pa.Schema | None = None
        self._out_schema: pa.Schema | None = None
        self._headers: tuple[bytes, bytes] | None = None

    @property
    def paths(self) -> list[Path] | None:
        """[input log, output log] being written, None before the first flows."""
        return self.files.current

    def _name(self, canonical: str) -> str:
        return column_name(canonical, self.dialect) or canonical

    def _tables(self, batch: PreparedBatch) -> tuple[pa.Table, pa.Table]:
        flows = batch.flows
        have = set(flows.column_names)  # once: each .column_names builds a new list
        if self._in_cols is None:
            self._in_cols = [(c, n) for c, n in dialect_columns(self.dialect) if c in have]
        missing = [c for c, _ in self._in_cols if c not in have]
        if missing:
            raise ValueError(f"flow table lacks columns {', '.join(missing[:5])}")
        inp = pa.table(
            [flows.column(c) for c, _ in self._in_cols], names=[n for _, n in self._in_cols]
        )
        vt = batch.verdict_table
        ids = [c for c in OUTPUT_IDENTIFIERS if c in have]
        cols = [flows.column(c) for c in ids] + [
            vt.column("score"),
            vt.column("verdict"),
            vt.column("family"),
            batch.risk,
            batch.top_text,
        ]
        out = pa.table(cols, names=[self._name(c) for c in ids] + list(OUTPUT_VERDICT_COLUMNS))
        if self._in_schema is None or self._out_schema is None:
            self._in_schema, self._out_schema = inp.schema, out.schema
            self._headers = (
                _csv(inp.schema.empty_table(), True),
                _csv(out.schema.empty_table(), True),
            )
        else:
            inp, out = inp.cast(self._in_schema), out.cast(self._out_schema)
        return inp, out

    def write_flows(self, batch: PreparedBatch) -> None:
        if batch.num_rows == 0:
            return
        inp, out = self._tables(batch)
        assert self._headers is not None
        self.files.write([_csv(inp, False), _csv(out, False)], self._headers)
        self.rows += batch.num_rows

    def write_alert(self, event: Any, incident_id: str | None = None) -> None:
        """Alerts are not part of the older dashboard's logs (see the EVE and SQLite sinks)."""

    def oldest_pending(self) -> float | None:
        return self.files.oldest_pending()

    def flush(self) -> None:
        self.files.flush()

    def close(self) -> None:
        self.files.close()
