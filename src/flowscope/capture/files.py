"""Capture-file readers: pcap and pcapng, plain or gzip-compressed, as PacketBatch streams.

The reader works in chunks: it fills a large buffer from the file (or from a
streaming gzip decompressor), lets a compiled kernel find the packet records in
it, and hands out batches whose ``data`` is a view of that buffer. A record cut
by the end of a chunk is copied to the start of the next one, so a packet is
never split across batches, and memory stays bounded by the chunk size whatever
the file size. Each chunk is a fresh buffer, so batches a consumer keeps stay
valid after the reader moves on. (Reusing buffers would save the page faults of
a fresh one, but telling whether a consumer still holds a view of the old one
is not reliable, and a wrong guess would silently corrupt its packets.)

Bad input never crashes or hangs the reader. Problems found while opening (not a
capture, unreadable header, unsupported version) raise :class:`CaptureError`;
problems found later (a corrupt record, a truncated tail, a broken gzip stream)
end the stream early and are reported in :attr:`CaptureReader.stats`, because by
then the caller may already have used the packets before them.
"""

from __future__ import annotations

import contextlib
import io
import mmap
import os
import stat
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import TracebackType
from typing import Literal, Protocol, TypeVar

import numpy as np
import numpy.typing as npt

from flowscope.capture import _pcap, _pcapng
from flowscope.capture.batch import PacketBatch
from flowscope.errors import CaptureError

DEFAULT_BATCH_PACKETS = 262144
# Bytes read per step. Large enough that per-chunk overhead (kernel calls, a fresh
# buffer) is negligible, small enough that the reader's footprint stays modest:
# about two chunks, the one being parsed and the one the consumer's last batch
# still views. A chunk is grown when a single record is bigger (pcapng blocks of
# up to 16 MiB), never beyond that.
DEFAULT_CHUNK_SIZE = 2 * 1024 * 1024  # fits L2: the record walk and the decoder then hit cache
# Compressed bytes read per step and decompressed bytes produced per zlib call:
# they bound the temporary objects the gzip path creates.
_GZIP_IN_CHUNK = 1024 * 1024
_GZIP_OUT_STEP = 1024 * 1024
MAX_ERRORS = 8
# Smallest record of each format: bounds how many packets a buffer can hold.
_MIN_PCAPNG_PACKET_BLOCK = 16
_INITIAL_IFACES = 16
_EMPTY = np.zeros(0, np.uint8)
_G = TypeVar("_G", bound=np.generic)
_OutArrays = tuple[
    npt.NDArray[np.int64], npt.NDArray[np.int32], npt.NDArray[np.int32], npt.NDArray[np.int64]
]

# Magic numbers (first four bytes as stored) of classic pcap:
# (big-endian, record header length, nanosecond timestamps)
_PCAP_MAGICS: dict[bytes, tuple[bool, int, bool]] = {
    b"\xd4\xc3\xb2\xa1": (False, 16, False),
    b"\xa1\xb2\xc3\xd4": (True, 16, False),
    b"\x4d\x3c\xb2\xa1": (False, 16, True),
    b"\xa1\xb2\x3c\x4d": (True, 16, True),
    # "Modified" pcap (old Red Hat tcpdump): 8 more bytes per record header.
    b"\x34\xcd\xb2\xa1": (False, 24, False),
    b"\xa1\xb2\xcd\x34": (True, 24, False),
}
_PCAPNG_MAGIC = b"\x0a\x0d\x0d\x0a"
_GZIP_MAGIC = b"\x1f\x8b"
# Other formats people hand us by mistake, so the error can say what to do.
_OTHER_MAGICS: tuple[tuple[bytes, str], ...] = (
    (b"\x28\xb5\x2f\xfd", "zstd-compressed: decompress it first"),
    (b"\xfd7zX", "xz-compressed: decompress it first"),
    (b"BZh", "bzip2-compressed: decompress it first"),
    (b"\x04\x22\x4d\x18", "lz4-compressed: decompress it first"),
    (b"PK\x03\x04", "like a zip archive: extract it first"),
    (b"snoo", "like a Solaris snoop capture: convert it to pcap first"),
)
_PCAP_HEADER_LEN = 24
_PCAPNG_HEAD_LEN = 16  # enough of the first section header to validate it

_PCAPNG_REASONS = {
    _pcapng.R_BLOCK_LEN: "block with impossible length; stopped reading",
    _pcapng.R_TRAILER: "block whose trailing length differs from its header; stopped reading",
    _pcapng.R_BOM: "section header with invalid byte-order magic; stopped reading",
    _pcapng.R_VERSION: "section header with unsupported version; stopped reading",
    _pcapng.R_SHORT: "block too short for its type; skipped",
    _pcapng.R_IFACE: "packet for an undefined interface; skipped",
    _pcapng.R_CAPLEN: "packet with impossible captured length; skipped",
    _pcapng.R_TOO_MANY_IFACES: f"more than {_pcapng.MAX_IFACES} interfaces in a section; skipped",
}


@dataclass(slots=True)
class ReaderStats:
    """What a reader has done so far; enough for a progress bar and an end-of-run report.

    ``records``: packets delivered in batches. ``bytes_read``: capture bytes
    consumed (decompressed bytes for gzip input). ``file_size``: size of the file
    on disk (compressed size for gzip; 0 when unknown, e.g. a pipe).
    ``truncated_records``: a last record cut short by the end of the file.
    ``bad_records``: records or blocks with impossible content. ``skipped_blocks``:
    pcapng blocks without packets that were ignored (name resolution, statistics,
    decryption secrets, custom, unknown). ``spb_no_timestamp``: packets from pcapng
    Simple Packet Blocks, which have no timestamp and got the previous packet's.
    ``errors``: a few deduplicated messages describing the problems met (without
    the file name, which the caller knows).
    """

    records: int = 0
    bytes_read: int = 0
    file_size: int = 0
    truncated_records: int = 0
    bad_records: int = 0
    skipped_blocks: int = 0
    spb_no_timestamp: int = 0
    errors: list[str] = field(default_factory=list)


@dataclass(slots=True)
class PcapRecords:
    """An uncompressed classic pcap mapped whole, for a compiled loop that walks its records.

    See :meth:`CaptureReader.pcap_records`. ``pos`` is the first record not consumed yet
    and ``records`` how many were; whoever walks the records advances both, and sets
    ``stopped`` to (ST_NEED_MORE or ST_BAD, bytes needed) when the walk reaches the end
    of the data or a corrupt record.
    """

    data: npt.NDArray[np.uint8]  # the whole file, read-only
    pos: int
    end: int
    big: bool  # byte order of the record headers
    hdr_len: int  # bytes per record header (16, or 24 for the "modified" format)
    frac_mult: int  # sub-second field → ns
    linktype: int
    records: int = 0
    stopped: tuple[int, int] | None = None


class _Source(Protocol):
    """A byte stream the reader pulls chunks from."""

    error: str | None

    def readinto(self, out: memoryview) -> int:
        """Fill ``out`` as far as possible; fewer bytes than asked means end of stream."""
        ...

    @property
    def position(self) -> int:
        """Bytes of the underlying file consumed so far."""
        ...

    def close(self) -> None: ...


class _RawSource:
    """An uncompressed file read with large ``readinto`` calls straight into our buffers."""

    def __init__(self, f: io.FileIO) -> None:
        self._f = f
        self._pos = 0
        self.error: str | None = None

    def readinto(self, out: memoryview) -> int:
        filled = 0
        size = len(out)
        while filled < size:
            try:
                got = self._f.readinto(out[filled:])
            except OSError as e:
                self.error = f"read error: {e.strerror or e}"
                break
            if not got:
                break
            filled += got
        self._pos += filled
        return filled

    @property
    def position(self) -> int:
        return self._pos

    def fileno(self) -> int:
        return self._f.fileno()

    def close(self) -> None:
        self._f.close()


class _GzipSource:
    """A gzip file decompressed on the fly, in bounded steps.

    Concatenated gzip members are read one after the other (like ``gzip -d``);
    zero padding after the last member is ignored. A corrupt or truncated stream
    ends the data and leaves a message in ``error`` instead of raising, so the
    packets before the damage are still delivered.
    """

    def __init__(self, f: io.FileIO, head: bytes) -> None:
        """``head``: bytes already read from ``f`` (so pipes work without seeking back)."""
        self._f = f
        self._d = zlib.decompressobj(wbits=31)
        self._pending = head  # compressed bytes not yet given to the decompressor
        self._pos = len(head)
        self._done = False
        self.error: str | None = None

    def _read_file(self) -> bytes:
        try:
            data = self._f.read(_GZIP_IN_CHUNK)
        except OSError as e:
            self.error = f"read error: {e.strerror or e}"
            return b""
        self._pos += len(data)
        return data

    def _next_member(self) -> bool:
        """After a member ends: start the next one if there is one. False at the end."""
        rest = self._d.unused_data
        if len(rest) < 2:
            rest += self._read_file()
        if not rest:
            return False
        if rest[:2] != _GZIP_MAGIC:
            if rest.strip(b"\x00"):
                self.error = "ignored trailing data after the gzip stream"
            return False
        self._d = zlib.decompressobj(wbits=31)
        self._pending = rest
        return True

    def readinto(self, out: memoryview) -> int:
        filled = 0
        size = len(out)
        while filled < size and not self._done:
            if self._d.eof:
                if not self._next_member():
                    self._done = True
                    break
                continue
            data = self._d.unconsumed_tail or self._pending
            self._pending = b""
            at_end = False
            if not data:
                data = self._read_file()
                at_end = not data
            try:
                chunk = self._d.decompress(data, min(size - filled, _GZIP_OUT_STEP))
            except zlib.error as e:
                self.error = f"gzip data corrupt ({e})"
                self._done = True
                break
            if chunk:
                out[filled : filled + len(chunk)] = chunk
                filled += len(chunk)
            elif at_end and not self._d.eof:
                if self.error is None:
                    self.error = "gzip stream ends early (file truncated?)"
                self._done = True
            elif not self._d.eof and len(self._d.unconsumed_tail) == len(data) and data:
                # No progress at all on non-empty input: never spin.
                self.error = "gzip data corrupt (decompressor stalled)"
                self._done = True
        return filled

    @property
    def position(self) -> int:
        return self._pos

    def close(self) -> None:
        self._f.close()


def _open_error(path: str, e: OSError) -> CaptureError:
    """A one-line message for why a capture file could not be opened."""
    if isinstance(e, FileNotFoundError):
        why = "no such file"
    elif isinstance(e, PermissionError):
        why = "permission denied"
    elif isinstance(e, IsADirectoryError):
        why = "is a directory"
    else:
        why = e.strerror or str(e)
    return CaptureError(f"cannot open capture {path}: {why}")


def _read_head(src: _Source, n: int) -> bytes:
    buf = bytearray(n)
    got = src.readinto(memoryview(buf))
    return bytes(buf[:got])


class CaptureReader:
    """Reads one pcap or pcapng file (optionally gzip-compressed) as PacketBatch objects.

    Opening validates the file header, so a wrong file fails at once with a
    :class:`CaptureError`; iterating :meth:`batches` then never raises for bad
    content. Use as a context manager, or let :meth:`batches` run to the end, to
    close the file.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        batch_packets: int = DEFAULT_BATCH_PACKETS,
        *,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
    ) -> None:
        if batch_packets < 1:
            raise ValueError(f"batch_packets must be at least 1, got {batch_packets}")
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be at least 1, got {chunk_size}")
        self.path: str = os.fspath(path)
        self.batch_packets = batch_packets
        self._chunk_size = chunk_size
        self.format: Literal["pcap", "pcapng"] = "pcap"
        self.compressed = False
        self.linktypes: set[int] = set()
        self.stats = ReaderStats()
        self._started = False
        self._closed = False
        self._consumed = 0  # capture-stream bytes parsed so far
        self.snaplen = 0  # pcap global header's snapshot length (0 for pcapng)
        self._tail = _EMPTY  # bytes read while opening that the first chunk must start with
        self._scratch: _OutArrays | None = None
        self._mm: mmap.mmap | None = None  # the file mapping of uncompressed input
        self._released = 0  # bytes of the mapping already given back
        # pcap parameters, set from the global header.
        self._big = False
        self._hdr_len = 16
        self._frac_mult = 1000
        self._linktype = 0
        try:
            f = open(self.path, "rb", buffering=0)  # noqa: SIM115 (owned by the source)
        except OSError as e:
            raise _open_error(self.path, e) from None
        self._src: _Source = _RawSource(f)
        try:
            self._init_format(f)
        except BaseException:
            self._src.close()
            self._closed = True
            raise

    def _init_format(self, f: io.FileIO) -> None:
        """Detect the format and validate its header; leaves the stream just after it."""
        try:
            self.stats.file_size = os.fstat(f.fileno()).st_size
        except OSError:
            self.stats.file_size = 0
        head = _read_head(self._src, 4)
        if self._src.error:
            raise CaptureError(f"cannot read capture {self.path}: {self._src.error}")
        if not head:
            raise CaptureError(f"capture file {self.path} is empty")
        if head[:2] == _GZIP_MAGIC:
            self.compressed = True
            self._src = _GzipSource(f, head)
            head = _read_head(self._src, 4)
            if not head:
                why = self._src.error or "it decompresses to nothing"
                raise CaptureError(f"gzip capture file {self.path} is empty or unreadable: {why}")
        what = "gzip-compressed file" if self.compressed else "file"
        magic = head[:4]
        if magic in _PCAP_MAGICS:
            self._init_pcap(magic)
        elif magic == _PCAPNG_MAGIC:
            self._init_pcapng(magic)
        else:
            hint = ""
            for prefix, desc in _OTHER_MAGICS:
                if head.startswith(prefix):
                    hint = f"; it looks {desc}"
                    break
            raise CaptureError(
                f"{what} {self.path} is not a pcap or pcapng capture "
                f"(starts with 0x{magic.hex()}){hint}"
            )

    def _truncated_header(self, kind: str, got: int, want: int) -> CaptureError:
        extra = f" ({self._src.error})" if self._src.error else ""
        return CaptureError(
            f"{kind} header of {self.path} is truncated: {got} of {want} bytes{extra}"
        )

    def _init_pcap(self, magic: bytes) -> None:
        self.format = "pcap"
        big, hdr_len, nanos = _PCAP_MAGICS[magic]
        head = magic + _read_head(self._src, _PCAP_HEADER_LEN - 4)
        if len(head) < _PCAP_HEADER_LEN:
            raise self._truncated_header("pcap", len(head), _PCAP_HEADER_LEN)
        order: Literal["big", "little"] = "big" if big else "little"
        major = int.from_bytes(head[4:6], order)
        minor = int.from_bytes(head[6:8], order)
        if major != 2:
            raise CaptureError(
                f"pcap file {self.path} has unsupported version {major}.{minor} (expected 2.x)"
            )
        self.snaplen = int.from_bytes(head[16:20], order)
        # The top bits of the link-type field may carry FCS information.
        self._linktype = int.from_bytes(head[20:24], order) & 0xFFFF
        self._big = big
        self._hdr_len = hdr_len
        self._frac_mult = 1 if nanos else 1000
        self._consumed = _PCAP_HEADER_LEN

    def _init_pcapng(self, magic: bytes) -> None:
        self.format = "pcapng"
        head = magic + _read_head(self._src, _PCAPNG_HEAD_LEN - 4)
        if len(head) < _PCAPNG_HEAD_LEN:
            raise self._truncated_header("pcapng section", len(head), _PCAPNG_HEAD_LEN)
        bom = head[8:12]
        if bom == b"\x1a\x2b\x3c\x4d":
            order: Literal["big", "little"] = "big"
        elif bom == b"\x4d\x3c\x2b\x1a":
            order = "little"
        else:
            raise CaptureError(
                f"pcapng file {self.path} has an invalid byte-order magic 0x{bom.hex()}"
            )
        blen = int.from_bytes(head[4:8], order)
        if blen < 28 or blen % 4 or blen > _pcapng.MAX_BLOCK:
            raise CaptureError(
                f"pcapng file {self.path} has an unreadable section header (length {blen})"
            )
        major = int.from_bytes(head[12:14], order)
        minor = int.from_bytes(head[14:16], order)
        if major != 1:
            raise CaptureError(
                f"pcapng file {self.path} has unsupported version {major}.{minor} (expected 1.x)"
            )
        self.snaplen = 0
        # The kernel re-reads the section header, so the head goes back in front.
        self._tail = np.frombuffer(head, np.uint8).copy()
        self._consumed = 0
        self._state = np.zeros(_pcapng.S_SLOTS, np.int64)
        self._ifaces = np.zeros((_INITIAL_IFACES, _pcapng.IF_COLUMNS), np.int64)
        self._counters = np.zeros(_pcapng.C_SLOTS, np.int64)
        self._err_count = np.zeros(_pcapng.N_REASONS, np.int64)
        self._err_off = np.zeros(_pcapng.N_REASONS, np.int64)
        self._reported = np.zeros(_pcapng.N_REASONS, np.bool_)

    # -- public API -------------------------------------------------------------

    @property
    def position(self) -> int:
        """Bytes of the file consumed so far (compressed bytes for gzip), for progress bars."""
        if self.compressed:
            return self._src.position
        return self._consumed

    def close(self) -> None:
        """Close the file; batches already handed out stay valid."""
        if not self._closed:
            self._closed = True
            self._src.close()

    def __enter__(self) -> CaptureReader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        gz = "+gzip" if self.compressed else ""
        return f"CaptureReader({self.path!r}, format={self.format}{gz})"

    def batches(self) -> Iterator[PacketBatch]:
        """Yield the file's packets in batches of at most ``batch_packets``.

        Single use: a reader reads its file once. Ends early (without raising) at
        corrupt or truncated data; see :attr:`stats` for what happened.
        """
        if self._started:
            raise RuntimeError(f"batches() of {self!r} was already iterated")
        if self._closed:
            raise RuntimeError(f"{self!r} is closed")
        self._started = True
        try:
            yield from self._read_all()
        finally:
            self.close()

    def pcap_records(self) -> PcapRecords | None:
        """The file for a compiled loop that walks records itself, or None.

        The fast path of :func:`flowscope.flows.extract.extract_capture`: only for an
        uncompressed classic pcap that can be mapped (None for pcapng, gzip, pipes).
        Like :meth:`batches` it is single use, and either one or the other reads the
        file. The walker reports progress with :meth:`advance` and the end with
        :meth:`finish`, which keep :attr:`stats` as :meth:`batches` would.
        """
        if self._started:
            raise RuntimeError(f"{self!r} was already read")
        if self._closed:
            raise RuntimeError(f"{self!r} is closed")
        if self.format != "pcap":
            return None
        mapped = self._map()
        if mapped is None:
            return None
        self._started = True
        return PcapRecords(
            mapped, self._consumed, int(mapped.shape[0]), self._big, self._hdr_len,
            self._frac_mult, self._linktype,
        )  # fmt: skip

    def advance(self, recs: PcapRecords) -> None:
        """Account for the records walked up to ``recs.pos``; release parsed pages."""
        if recs.records > self.stats.records:
            self.linktypes.add(self._linktype)
        self.stats.records = recs.records
        self._consumed = recs.pos
        self.stats.bytes_read = recs.pos
        self._release_mapped(recs.pos)

    def finish(self, recs: PcapRecords) -> None:
        """The walk ended (``recs.stopped``): report a truncated or corrupt record, close."""
        self.advance(recs)
        if recs.stopped is not None:
            status, need = recs.stopped
            if status == _pcap.ST_BAD:
                self._report_bad(recs.data, recs.pos, recs.end, 0)
            elif recs.pos < recs.end:
                self.stats.truncated_records += 1
                self._note(
                    f"last record at {self._where(recs.pos)} is truncated "
                    f"({recs.end - recs.pos} of {need} bytes); file cut short?"
                )
        self.close()

    # -- reading ----------------------------------------------------------------

    def _note(self, msg: str) -> None:
        """Record a problem once; keep only the first few so a bad file cannot flood memory."""
        errors = self.stats.errors
        if msg not in errors and len(errors) < MAX_ERRORS:
            errors.append(msg)

    def _where(self, stream_off: int) -> str:
        return f"byte {stream_off}" + (" of the decompressed data" if self.compressed else "")

    def _read_all(self) -> Iterator[PacketBatch]:
        """The chunk loop: fill a buffer, let the kernel cut it into batches, carry the tail."""
        tail = self._tail
        self._tail = _EMPTY
        base = self._consumed  # stream offset of buf[0]
        need = 0
        mapped = self._map()
        while True:
            cap = max(self._chunk_size, need, len(tail) + 1)
            if mapped is not None:
                # A window of the mapped file: no copy, and the kernel's page cache is
                # the only buffer. The tail of a chunk is simply the next window's start.
                stop = min(mapped.shape[0], base + cap)
                buf = mapped[base:stop]
                fill = stop - base
                eof = stop >= mapped.shape[0]
            else:
                t = len(tail)
                buf = np.empty(cap, np.uint8)
                buf[:t] = tail
                tail = _EMPTY  # drop the reference to the previous chunk
                got = self._src.readinto(buf.data[t:])
                fill = t + got
                eof = fill < cap
                # Read-only like the mapped path, so the kernels compile for one type.
                buf.flags.writeable = False
            pos = 0
            while True:
                if self.format == "pcap":
                    batch, pos, status, need = self._scan_pcap(buf, pos, fill)
                else:
                    batch, pos, status, need = self._scan_pcapng(buf, pos, fill, base)
                self._consumed = base + pos
                self.stats.bytes_read = self._consumed
                if batch is not None:
                    self.stats.records += len(batch)
                    yield batch
                if status == _pcap.ST_FULL:
                    continue
                if status == _pcap.ST_IFACES_FULL:
                    self._grow_ifaces()
                    continue
                break
            if status == _pcap.ST_BAD:
                self._report_bad(buf, pos, fill, base)
                return
            # ST_NEED_MORE: the record at pos continues beyond what we have.
            if eof:
                if self._src.error:
                    self._note(self._src.error)
                if pos < fill:
                    self.stats.truncated_records += 1
                    why = "" if self._src.error else "; file cut short?"
                    self._note(
                        f"last record at {self._where(base + pos)} is truncated "
                        f"({fill - pos} of {need} bytes){why}"
                    )
                return
            if mapped is None:
                tail = buf[pos:fill]
            base += pos
            if mapped is not None:
                self._release_mapped(base)

    def _map(self) -> npt.NDArray[np.uint8] | None:
        """The whole uncompressed file as a read-only array, or None (gzip, pipes, errors).

        Batches are then views of the mapping; it stays alive as long as one of them
        does, and is unmapped by the garbage collector after the last one goes.
        """
        if self.compressed or not isinstance(self._src, _RawSource):
            return None
        try:
            fd = self._src.fileno()
            if not stat.S_ISREG(os.fstat(fd).st_mode) or os.fstat(fd).st_size == 0:
                return None
            mm = mmap.mmap(fd, 0, access=mmap.ACCESS_READ)
        except (OSError, ValueError):
            return None
        with contextlib.suppress(AttributeError, OSError):
            mm.madvise(mmap.MADV_SEQUENTIAL)
        self._mm = mm
        self._released = 0
        return np.frombuffer(mm, dtype=np.uint8)

    def _release_mapped(self, upto: int) -> None:
        """Unmap pages already parsed, so resident memory does not grow with file size.

        The mapping is read-only and file-backed: a batch still holding a view of a
        released range faults the same bytes back in from the page cache.
        """
        step = 32 * 1024 * 1024
        start = self._released
        end = (upto // mmap.PAGESIZE) * mmap.PAGESIZE
        if self._mm is None or end - start < step:
            return
        with contextlib.suppress(AttributeError, OSError, ValueError):
            self._mm.madvise(mmap.MADV_DONTNEED, start, end - start)
        self._released = end

    def _out_arrays(self, avail: int, min_record: int) -> _OutArrays:
        """Scratch output arrays for one kernel call, reused from call to call.

        Sized for the most records the buffer could hold; allocating them afresh for
        every chunk cost more page faults than the record walk itself.
        """
        size = min(self.batch_packets, avail // min_record + 1)
        if self._scratch is None or self._scratch[0].shape[0] < size:
            self._scratch = (
                np.empty(size, np.int64),
                np.empty(size, np.int32),
                np.empty(size, np.int32),
                np.empty(size, np.int64),
            )
        return self._scratch

    @staticmethod
    def _trim(a: npt.NDArray[_G], n: int) -> npt.NDArray[_G]:
        """First ``n`` entries, copied: the scratch arrays are overwritten by the next call."""
        return a[:n].copy()

    def _make_batch(
        self,
        buf: npt.NDArray[np.uint8],
        start: int,
        stop: int,
        n: int,
        off: npt.NDArray[np.int64],
        cap: npt.NDArray[np.int32],
        wire: npt.NDArray[np.int32],
        ts: npt.NDArray[np.int64],
        lt: npt.NDArray[np.int32],
    ) -> PacketBatch:
        return PacketBatch(
            data=buf[start:stop],
            offset=self._trim(off, n),
            caplen=self._trim(cap, n),
            wirelen=self._trim(wire, n),
            ts_ns=self._trim(ts, n),
            linktype=self._trim(lt, n),
        )

    def _scan_pcap(
        self, buf: npt.NDArray[np.uint8], pos: int, fill: int
    ) -> tuple[PacketBatch | None, int, int, int]:
        off, cap, wire, ts = self._out_arrays(fill - pos, self._hdr_len)
        n, new_pos, status, need = _pcap.scan_pcap(
            buf, pos, fill, self._big, self._hdr_len, self._frac_mult, off, cap, wire, ts
        )
        batch = None
        if n:
            lt = np.full(n, self._linktype, np.int32)
            batch = self._make_batch(buf, pos, new_pos, n, off, cap, wire, ts, lt)
            self.linktypes.add(self._linktype)
        return batch, int(new_pos), int(status), int(need)

    def _scan_pcapng(
        self, buf: npt.NDArray[np.uint8], pos: int, fill: int, base: int
    ) -> tuple[PacketBatch | None, int, int, int]:
        off, cap, wire, ts = self._out_arrays(fill - pos, _MIN_PCAPNG_PACKET_BLOCK)
        lt = np.empty(off.shape[0], np.int32)
        n, new_pos, status, need = _pcapng.scan_pcapng(
            buf,
            pos,
            fill,
            self._state,
            self._ifaces,
            self._counters,
            self._err_count,
            self._err_off,
            off,
            cap,
            wire,
            ts,
            lt,
        )
        self.stats.skipped_blocks = int(self._counters[_pcapng.C_SKIPPED])
        self.stats.spb_no_timestamp = int(self._counters[_pcapng.C_SPB_NO_TS])
        self.stats.bad_records = int(self._err_count.sum())
        new = (self._err_count > 0) & ~self._reported
        if new.any():
            for reason in np.flatnonzero(new):
                where = self._where(base + int(self._err_off[reason]))
                self._note(f"{_PCAPNG_REASONS[int(reason)]} (first at {where})")
            self._reported |= new
        batch = None
        if n:
            batch = self._make_batch(buf, pos, new_pos, n, off, cap, wire, ts, lt)
            first = int(lt[0])
            if (batch.linktype == first).all():
                self.linktypes.add(first)
            else:
                self.linktypes.update(int(x) for x in np.unique(batch.linktype))
        return batch, int(new_pos), int(status), int(need)

    def _grow_ifaces(self) -> None:
        """Double the interface table; the kernel caps it at MAX_IFACES rows."""
        old = self._ifaces
        new = np.zeros((old.shape[0] * 2, old.shape[1]), np.int64)
        new[: old.shape[0]] = old
        self._ifaces = new

    def _report_bad(self, buf: npt.NDArray[np.uint8], pos: int, fill: int, base: int) -> None:
        """Describe the corruption that stopped the walk (pcapng already counted it)."""
        if self.format == "pcap":
            self.stats.bad_records += 1
            caplen = int.from_bytes(
                buf[pos + 8 : pos + 12].tobytes(), "big" if self._big else "little"
            )
            self._note(
                f"record at {self._where(base + pos)} has impossible captured "
                f"length {caplen} (max {_pcap.MAX_CAPLEN}); stopped reading"
            )


def is_plain_pcap(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a regular file starting like an uncompressed classic pcap."""
    try:
        with open(path, "rb") as f:
            return stat.S_ISREG(os.fstat(f.fileno()).st_mode) and f.read(4) in _PCAP_MAGICS
    except OSError:
        return False


def warm_up_readers() -> list[object]:
    """Compile (or load from cache) the record walkers of both formats; returns them.

    They are called here on an empty buffer with the argument types the reader uses, so
    a later read finds them ready instead of loading them while it is being timed.
    """
    buf = np.zeros(16, np.uint8)
    buf.flags.writeable = False
    off, cap, wire, ts = (np.zeros(1, t) for t in (np.int64, np.int32, np.int32, np.int64))
    _pcap.scan_pcap(buf, 0, 0, False, 16, 1000, off, cap, wire, ts)
    state = np.zeros(_pcapng.S_SLOTS, np.int64)
    ifaces = np.zeros((1, _pcapng.IF_COLUMNS), np.int64)
    counters = np.zeros(_pcapng.C_SLOTS, np.int64)
    errs = np.zeros(_pcapng.N_REASONS, np.int64)
    lt = np.zeros(1, np.int32)
    _pcapng.scan_pcapng(
        buf, 0, 0, state, ifaces, counters, errs, errs.copy(), off, cap, wire, ts, lt
    )
    return [_pcap.scan_pcap, _pcapng.scan_pcapng]


def open_capture(
    path: str | os.PathLike[str],
    batch_packets: int = DEFAULT_BATCH_PACKETS,
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> CaptureReader:
    """Open a pcap or pcapng file (plain or gzip-compressed) for reading in batches.

    Raises :class:`CaptureError` with a one-line message naming the file when it
    is missing, unreadable, empty, not a capture, or has an unsupported header.
    ``chunk_size`` (bytes read per step) exists for tests; the default suits files
    of any size.
    """
    return CaptureReader(path, batch_packets, chunk_size=chunk_size)
