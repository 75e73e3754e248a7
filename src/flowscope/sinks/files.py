"""Flow table writers: CSV (any header dialect), Parquet and JSON lines.

Writers stream: each chunk of finished flows is written as it comes, so a capture
of any size is converted in bounded memory.
"""

from __future__ import annotations

import io
import json
import math
import os
import sys
from pathlib import Path
from typing import IO, TYPE_CHECKING, Literal

import pyarrow as pa

if TYPE_CHECKING:  # imported when a writer needs them: each costs start-up time
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

from flowscope.errors import FlowscopeError
from flowscope.flows.registry import DIALECTS, column_name

Format = Literal["csv", "parquet", "jsonl"]
FORMATS: tuple[str, ...] = ("csv", "parquet", "jsonl")
_EXT = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".jsonl": "jsonl",
        ".ndjson": "jsonl", ".json": "jsonl"}  # fmt: skip


def guess_format(path: str) -> str:
    """Output format from the file name (CSV for '-', stdout)."""
    if path == "-":
        return "csv"
    fmt = _EXT.get(Path(path).suffix.lower())
    if fmt is None:
        raise FlowscopeError(
            f"cannot tell the output format of {path!r}: use .csv, .parquet or .jsonl, or --format"
        )
    return fmt


def _select(table: pa.Table, dialect: str) -> pa.Table:
    """Keep and rename the columns the dialect has, in registry order."""
    if dialect == "flowscope":
        return table
    names, cols = [], []
    for name in table.column_names:
        out = column_name(name, dialect)
        if out is not None:
            names.append(out)
            cols.append(table.column(name))
    return pa.table(cols, names=names)


class FlowWriter:
    """Streams flow tables to one file in one format and header dialect."""

    def __init__(self, path: str, fmt: str | None = None, dialect: str = "flowscope") -> None:
        if dialect not in DIALECTS:
            raise FlowscopeError(f"unknown dialect {dialect!r}; choose from {', '.join(DIALECTS)}")
        self.path = path
        self.format = fmt or guess_format(path)
        if self.format not in FORMATS:
            raise FlowscopeError(
                f"unknown format {self.format!r}; choose from {', '.join(FORMATS)}"
            )
        if self.format == "parquet" and path == "-":
            raise FlowscopeError("Parquet cannot be written to stdout; give a file name")
        if self.format == "parquet":
            import pyarrow.parquet  # noqa: F401  (load it now rather than at the first write)
        self.dialect = dialect
        self.rows = 0
        self._pq: pq.ParquetWriter | None = None
        self._csv: pacsv.CSVWriter | None = None
        self._schema: pa.Schema | None = None
        self._fh: IO[bytes] | None = None
        try:
            if path == "-":
                self._fh = sys.stdout.buffer
            elif self.format != "parquet":
                parent = os.path.dirname(os.path.abspath(path))
                os.makedirs(parent, exist_ok=True)
                self._fh = open(path, "wb")  # noqa: SIM115 (closed in close())
        except OSError as e:
            raise FlowscopeError(f"cannot write {path}: {e.strerror}") from None

    def write(self, table: pa.Table) -> None:
        table = _select(table, self.dialect)
        if self._schema is None:
            self._schema = table.schema
        else:
            table = table.cast(self._schema)
        try:
            if self.format == "parquet":
                if self._pq is None:
                    import pyarrow.parquet as pq

                    parent = os.path.dirname(os.path.abspath(self.path))
                    os.makedirs(parent, exist_ok=True)
                    # Dictionary-encode only the low-cardinality text columns: trying it on
                    # every float column doubles the write time for a few % of size.
                    text = [f.name for f in table.schema if pa.types.is_string(f.type)]
                    self._pq = pq.ParquetWriter(
                        self.path, table.schema, compression="snappy", use_dictionary=text
                    )
                self._pq.write_table(table)
            elif self.format == "csv":
                assert self._fh is not None
                if self._csv is None:
                    import pyarrow.csv as pacsv

                    self._csv = pacsv.CSVWriter(self._fh, table.schema)
                self._csv.write_table(table)
            else:
                assert self._fh is not None
                self._write_jsonl(table)
        except OSError as e:
            raise FlowscopeError(f"cannot write {self.path}: {e.strerror or e}") from None
        self.rows += table.num_rows

    def _write_jsonl(self, table: pa.Table) -> None:
        assert self._fh is not None
        buf = io.StringIO()
        for row in table.to_pylist():
            for k, v in row.items():
                if isinstance(v, float) and not math.isfinite(v):
                    row[k] = None
            buf.write(json.dumps(row, separators=(",", ":")))
            buf.write("\n")
        self._fh.write(buf.getvalue().encode())

    def close(self) -> None:
        if self._pq is not None:
            self._pq.close()
        if self._csv is not None:
            self._csv.close()
        if self._fh is not None and self._fh is not sys.stdout.buffer:
            self._fh.close()
        elif self._fh is not None:
            self._fh.flush()

    def __enter__(self) -> FlowWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
