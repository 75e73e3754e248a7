"""Append-only output files: buffering, the flush policy, size and time rotation.

**Flush policy.** Sinks buffer what they are given in memory and hand it to the
operating system (``write(2)``) at the latest :attr:`FlushPolicy.interval` seconds after
the oldest unflushed byte arrived (1 s by default), and then ``fdatasync(2)`` the file
when :attr:`FlushPolicy.fsync` is on. Data handed to the kernel survives the death of the
process (``kill -9``); the sync also makes it survive a power cut or kernel crash. The
deadline is checked on every write and, when the sinks run under
:class:`flowscope.sinks.hub.SinkSet`, by its background ticker, so an idle sensor flushes
too.

**Rotation.** A :class:`RotatingFiles` holds one or more files that rotate together (the
dashboard logs rotate their input and output CSVs as a pair). A file set rotates before a
write that would take a file past ``max_bytes`` or once it has been open ``max_seconds``
(only files that already hold data rotate, so a file exceeds ``max_bytes`` only when a
single batch is larger than the limit). Two naming schemes:

- ``numbered`` (``eve.json``): the current file keeps its name; on rotation
  ``eve.json.1`` becomes ``eve.json.2`` …, ``eve.json`` becomes ``eve.json.1`` (the
  scheme of logrotate), and a new ``eve.json`` starts. A restarted sensor appends to
  ``eve.json``.
- ``timestamped`` (``logs/input_logs_<timestamp>.csv``): every file is new, named after
  the UTC time it was started (``20250101T120000Z``), with ``_1``, ``_2`` … appended if
  that name is taken (files are created exclusively, never overwritten).

``keep`` bounds how many rotated files remain beside the current one (0 keeps all); the
oldest go first and every deletion is counted in :attr:`RotatingFiles.deleted`.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from flowscope.errors import FlowscopeError

Naming = Literal["numbered", "timestamped"]

_MAX_PENDING = 8 << 20  # bytes buffered before a write flushes regardless of the deadline


@dataclass(frozen=True, slots=True)
class Rotation:
    """When files rotate. Zero turns a limit off."""

    max_bytes: int = 0
    max_seconds: float = 0.0
    keep: int = 0  # rotated files kept beside the current one; 0 = all

    def __post_init__(self) -> None:
        if self.max_bytes < 0 or self.max_seconds < 0 or self.keep < 0:
            raise ValueError("rotation limits must not be negative")


@dataclass(frozen=True, slots=True)
class FlushPolicy:
    """How long data may wait in memory, and whether flushed data is synced to disk."""

    interval: float = 1.0  # seconds; 0 = write through on every call
    fsync: bool = True

    def __post_init__(self) -> None:
        if not 0 <= self.interval <= 60:
            raise ValueError("flush interval must be between 0 and 60 seconds")


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _sync(fd: int) -> None:
    if hasattr(os, "fdatasync"):
        os.fdatasync(fd)
    else:  # pragma: no cover (macOS)
        os.fsync(fd)


class _OpenFile:
    """One open file: a raw descriptor plus the bytes not yet written to it."""

    def __init__(self, path: Path, fd: int, size: int, opened_at: float) -> None:
        self.path = path
        self.fd = fd
        self.size = size  # bytes in the file, pending ones included
        self.opened_at = opened_at
        self.pending: list[bytes] = []
        self.pending_bytes = 0

    def add(self, data: bytes) -> None:
        if data:
            self.pending.append(data)
            self.pending_bytes += len(data)
            self.size += len(data)

    def flush(self, fsync: bool) -> None:
        if self.pending:
            data = b"".join(self.pending)
            self.pending.clear()
            self.pending_bytes = 0
            _write_all(self.fd, data)
            if fsync:
                _sync(self.fd)

    def close(self, fsync: bool) -> None:
        try:
            self.flush(fsync)
        finally:
            os.close(self.fd)


def stamp(t: float) -> str:
    """A wall-clock time as used in timestamped file names: ``20250101T120000Z`` (UTC)."""
    return datetime.fromtimestamp(t, UTC).strftime("%Y%m%dT%H%M%SZ")


class RotatingFiles:
    """Files written, flushed and rotated together.

    ``paths`` are the base names: for ``numbered`` naming the files themselves
    (``dir/eve.json``); for ``timestamped`` naming a template whose stem gets the time
    appended (``dir/input_logs.csv`` → ``dir/input_logs_20250101T120000Z.csv``). Files are
    created on the first write, so a sink that never receives data leaves no empty files.
    """

    def __init__(
        self,
        paths: Sequence[str | os.PathLike[str]],
        *,
        naming: Naming = "numbered",
        rotation: Rotation | None = None,
        flush: FlushPolicy | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if not paths:
            raise ValueError("no paths")
        self.bases = [Path(p) for p in paths]
        self.naming = naming
        self.rotation = rotation or Rotation()
        self.policy = flush or FlushPolicy()
        self._clock = clock
        self._monotonic = monotonic
        self._files: list[_OpenFile] | None = None
        self._pending_since: float | None = None
        self.rotations = 0
        self.deleted = 0
        self.closed = False

    # ------------------------------------------------------------------ state
    @property
    def current(self) -> list[Path] | None:
        """Paths of the files being written, None before the first write."""
        return None if self._files is None else [f.path for f in self._files]

    def oldest_pending(self) -> float | None:
        """Monotonic time of the oldest byte not yet handed to the kernel, None if none."""
        return self._pending_since

    # ------------------------------------------------------------------ writing
    def write(self, parts: Sequence[bytes], headers: Sequence[bytes] | None = None) -> None:
        """Append ``parts[i]`` to file i; ``headers[i]`` first when file i is new and empty."""
        if self.closed:
            raise ValueError("write to closed files")
        if len(parts) != len(self.bases):
            raise ValueError(f"{len(parts)} parts for {len(self.bases)} files")
        try:
            if self._files is None:
                self._open()
            elif self._due_for_rotation(parts):
                self.rotate()
            assert self._files is not None
            for i, (f, data) in enumerate(zip(self._files, parts, strict=True)):
                if not data:
                    continue
                if f.size == 0 and headers is not None and headers[i]:
                    f.add(headers[i])
                f.add(data)
            if self._pending_since is None and any(f.pending for f in self._files):
                self._pending_since = self._monotonic()
            if self.policy.interval == 0 or any(
                f.pending_bytes >= _MAX_PENDING for f in self._files
            ):
                self.flush()
            else:
                self.flush_if_due()
        except OSError as e:
            raise FlowscopeError(f"cannot write {self._name()}: {e.strerror or e}") from None

    def flush_if_due(self, now: float | None = None, slack: float = 0.0) -> bool:
        """Flush when the oldest pending byte is ``interval − slack`` seconds old."""
        since = self._pending_since
        if since is None:
            return False
        now = self._monotonic() if now is None else now
        if now - since + slack >= self.policy.interval:
            self.flush()
            return True
        return False

    def flush(self) -> None:
        """Hand everything pending to the kernel (and sync it, per the policy)."""
        if self._files is None:
            return
        try:
            for f in self._files:
                f.flush(self.policy.fsync)
        except OSError as e:
            raise FlowscopeError(f"cannot write {self._name()}: {e.strerror or e}") from None
        self._pending_since = None

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        files, self._files = self._files, None
        self._pending_since = None
        errors: list[OSError] = []
        for f in files or []:
            try:
                f.close(self.policy.fsync)
            except OSError as e:
                errors.append(e)
        if errors:
            raise FlowscopeError(f"cannot write {self._name()}: {errors[0].strerror or errors[0]}")

    # ------------------------------------------------------------------ rotation
    def _due_for_rotation(self, parts: Sequence[bytes]) -> bool:
        assert self._files is not None
        r = self.rotation
        if not any(f.size for f in self._files):
            return False
        if r.max_seconds and self._clock() - self._files[0].opened_at >= r.max_seconds:
            return True
        if r.max_bytes:
            return any(
                f.size and f.size + len(p) > r.max_bytes
                for f, p in zip(self._files, parts, strict=True)
            )
        return False

    def rotate(self) -> None:
        """Close the current files and start new ones (no-op before the first write)."""
        if self._files is None:
            return
        files, self._files = self._files, None
        self._pending_since = None
        for f in files:
            f.close(self.policy.fsync)
        if self.naming == "numbered":
            for base in self.bases:
                self._shift(base)
        self.rotations += 1
        self._open()

    def _shift(self, base: Path) -> None:
        """eve.json.N → .N+1 …, eve.json → eve.json.1; drop what exceeds ``keep``."""
        keep = self.rotation.keep
        n = 0
        while base.with_name(f"{base.name}.{n + 1}").exists():
            n += 1
        for i in range(n, 0, -1):
            src = base.with_name(f"{base.name}.{i}")
            if keep and i + 1 > keep:
                src.unlink()
                self.deleted += 1
            else:
                src.rename(base.with_name(f"{base.name}.{i + 1}"))
        if base.exists():
            base.rename(base.with_name(f"{base.name}.1"))

    def _pattern(self, base: Path) -> re.Pattern[str]:
        return re.compile(
            re.escape(base.stem) + r"_(\d{8}T\d{6}Z)(?:_(\d+))?" + re.escape(base.suffix) + "$"
        )

    def _prune_timestamped(self) -> None:
        keep = self.rotation.keep
        if not keep or self._files is None:
            return
        for base, cur in zip(self.bases, self._files, strict=True):
            pat = self._pattern(base)
            found: list[tuple[str, int, Path]] = []
            for p in base.parent.iterdir():
                m = pat.match(p.name)
                if m and p != cur.path:
                    found.append((m.group(1), int(m.group(2) or 0), p))
            found.sort()
            for _, _, p in found[: max(len(found) - keep, 0)]:
                p.unlink(missing_ok=True)
                self.deleted += 1

    # ------------------------------------------------------------------ opening
    def _open(self) -> None:
        now = self._clock()
        for base in self.bases:
            base.parent.mkdir(parents=True, exist_ok=True)
        if self.naming == "numbered":
            files = []
            for base in self.bases:
                fd = os.open(base, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
                files.append(_OpenFile(base, fd, os.fstat(fd).st_size, now))
            self._files = files
            return
        stem = stamp(now)
        for attempt in range(10_000):
            suffix = f"_{attempt}" if attempt else ""
            names = [b.with_name(f"{b.stem}_{stem}{suffix}{b.suffix}") for b in self.bases]
            if any(p.exists() for p in names):
                continue
            opened: list[_OpenFile] = []
            try:
                for p in names:
                    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
                    opened.append(_OpenFile(p, fd, 0, now))
            except FileExistsError:  # lost a race with another writer: try the next suffix
                for f in opened:
                    os.close(f.fd)
                    f.path.unlink(missing_ok=True)
                continue
            self._files = opened
            self._prune_timestamped()
            return
        raise FlowscopeError(f"cannot find a free file name for {self.bases[0]}")

    def _name(self) -> str:
        cur = self.current
        return str(cur[0] if cur else self.bases[0])
