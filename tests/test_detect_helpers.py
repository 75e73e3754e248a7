"""Builders of hand-made flow tables for the rule-detector tests (test_detect_*.py).

A table has the columns the flow engine writes and the detectors read: identifiers,
packet and byte counters, the OR of TCP flags per direction, ICMP type, IP bytes and,
for snapshots of running flows, ``active``. Every argument broadcasts, so one call
makes thousands of flows.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from flowscope.detect.frame import ACK, FIN, PSH, RST, SYN

NS = 1_000_000_000
T0 = 1_700_000_000 * NS  # an arbitrary capture-time origin
Addr = str | Sequence[str] | npt.NDArray[np.str_]
Num = float | int | npt.ArrayLike

ESTABLISHED = SYN | ACK | PSH | FIN


def flows(
    src: Addr,
    dst: Addr,
    dport: Num,
    *,
    t: Num = T0,
    duration: Num = 0,
    sport: Num | None = None,
    proto: Num = 6,
    fwd_packets: Num = 1,
    bwd_packets: Num = 0,
    fwd_bytes: Num = 0,
    bwd_bytes: Num = 0,
    fwd_flags: Num = SYN,
    bwd_flags: Num = 0,
    icmp_type: Num = -1,
    active: bool | npt.ArrayLike | None = None,
    n: int | None = None,
) -> pa.Table:
    """``n`` flows (default: the length of the longest array argument)."""
    args: dict[str, object] = {
        "src": src, "dst": dst, "dport": dport, "t": t, "duration": duration,
        "proto": proto, "fwd_packets": fwd_packets, "bwd_packets": bwd_packets,
        "fwd_bytes": fwd_bytes, "bwd_bytes": bwd_bytes, "fwd_flags": fwd_flags,
        "bwd_flags": bwd_flags, "icmp_type": icmp_type,
    }  # fmt: skip
    if n is None:
        sized = [v for v in args.values() if isinstance(v, list | tuple | np.ndarray)]
        n = max((len(v) for v in sized), default=1)
    if isinstance(src, str):
        src = [src] * n
    if isinstance(dst, str):
        dst = [dst] * n

    def arr(v: object, dtype: type) -> np.ndarray:
        return np.broadcast_to(np.asarray(v, dtype=dtype), (n,)).copy()

    first = arr(t, np.int64)
    last = first + arr(duration, np.int64)
    if sport is None:
        sport = 38_000 + np.arange(n) % 27_000  # ephemeral, clear of service ports
    fp, bp = arr(fwd_packets, np.float64), arr(bwd_packets, np.float64)
    fb, bb = arr(fwd_bytes, np.float64), arr(bwd_bytes, np.float64)
    cols: dict[str, pa.Array] = {
        "src_ip": pa.array(list(src), pa.string()),
        "src_port": pa.array(arr(sport, np.int32)),
        "dst_ip": pa.array(list(dst), pa.string()),
        "dst_port": pa.array(arr(dport, np.int32)),
        "protocol": pa.array(arr(proto, np.int16)),
        "first_seen": pa.array(first),
        "last_seen": pa.array(last),
        "end_reason": pa.array(["fin"] * n),
        "flow_duration": pa.array((last - first) / 1000.0),
        "fwd_packets": pa.array(fp),
        "bwd_packets": pa.array(bp),
        "fwd_bytes": pa.array(fb),
        "bwd_bytes": pa.array(bb),
        "fwd_ip_bytes": pa.array((fb + 40 * fp).astype(np.int64)),
        "bwd_ip_bytes": pa.array((bb + 40 * bp).astype(np.int64)),
        "fwd_tcp_flags": pa.array(arr(fwd_flags, np.int64)),
        "bwd_tcp_flags": pa.array(arr(bwd_flags, np.int64)),
        "icmp_type": pa.array(arr(icmp_type, np.float64)),
    }
    if active is not None:
        cols["active"] = pa.array(arr(active, np.bool_))
    return pa.table(cols)


def addresses(n: int, prefix: str = "10.0") -> list[str]:
    """n distinct IPv4 addresses under a /16."""
    return [f"{prefix}.{i // 250}.{i % 250 + 1}" for i in range(n)]


def random_addresses(n: int, seed: int = 0) -> list[str]:
    """n random (spoofed-looking) IPv4 addresses."""
    rng = np.random.default_rng(seed)
    a = rng.integers(1, 224, n)
    b, c, d = (rng.integers(0, 256, n) for _ in range(3))
    return [f"{w}.{x}.{y}.{z}" for w, x, y, z in zip(a, b, c, d, strict=True)]


def half_open(src: Addr, dst: Addr, dport: Num, **kw: object) -> pa.Table:
    """SYNs nobody answered."""
    return flows(src, dst, dport, fwd_flags=SYN, bwd_packets=0, **kw)  # type: ignore[arg-type]


def refused(src: Addr, dst: Addr, dport: Num, **kw: object) -> pa.Table:
    """SYN answered by RST/ACK (closed port)."""
    return flows(
        src,
        dst,
        dport,
        fwd_flags=SYN,
        bwd_packets=1,
        bwd_flags=RST | ACK,
        **kw,  # type: ignore[arg-type]
    )


def session(src: Addr, dst: Addr, dport: Num, **kw: object) -> pa.Table:
    """A complete TCP connection with data both ways (defaults: 10 KB down, 1 s)."""
    base: dict[str, object] = {
        "fwd_flags": ESTABLISHED, "bwd_flags": ESTABLISHED, "fwd_packets": 8,
        "bwd_packets": 10, "fwd_bytes": 400, "bwd_bytes": 10_000, "duration": NS,
    }  # fmt: skip
    base.update(kw)
    return flows(src, dst, dport, **base)  # type: ignore[arg-type]


def concat(*tables: pa.Table) -> pa.Table:
    """Tables with the same columns, in order (sorted by first_seen if asked)."""
    return pa.concat_tables(tables)


def test_builders_make_the_engine_columns() -> None:
    from flowscope.detect.frame import REQUIRED_COLUMNS

    t = flows(addresses(3), "10.9.9.9", [1, 2, 3], t=T0 + np.arange(3) * NS, active=True)
    assert t.num_rows == 3
    assert set(REQUIRED_COLUMNS) <= set(t.column_names)
    assert t.column("active").to_pylist() == [True, True, True]
    assert len(set(random_addresses(1000))) > 990
