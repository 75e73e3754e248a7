"""Each benchmark owns one marked section of docs/benchmarks.md and rewrites only that.

Sections sit between ``<!-- NAME:start -->`` and ``<!-- NAME:end -->``; everything
outside them (the file's introduction, other benchmarks' sections) is kept, so the
benchmarks can be re-run one at a time.
"""

from __future__ import annotations

from pathlib import Path

DOCS = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"


def write_section(section: str, start: str, end: str, path: Path = DOCS) -> None:
    """Replace the text from ``start`` to ``end`` in ``path`` by ``section`` (which
    carries both markers), or append it when the file has no such section yet."""
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    if start in text and end in text:
        head, rest = text.split(start, 1)
        text = head + section + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.write_text(text)
