"""Compiled flow meter: assigns decoded packets to bidirectional flows and updates them.

Data structures, all plain numpy arrays owned by :class:`flowscope.flows.meter.FlowMeter`:

- ``I``/``F``/``K``: per-slot accumulators (see :mod:`flowscope.flows.state`). Slots are
  handed out in order and recycled before new ones are touched (``M_FRESH``), so the
  memory used follows the peak of open flows; the last STAGE rows stage finished flows
  on their way out (see _finish).
- ``index``: open-addressing hash table (linear probing, power-of-two size; a cell is 0
  when empty, else slot + 1 with a tag of hash bits above it, see _cell). Deletion
  shifts entries back instead of leaving tombstones, so lookups stay short under the
  churn of a scan or a spoofed flood.
- ``prev``/``nxt``: two doubly-linked queues. The open queue holds open flows in the
  order they were (re)queued; packets do not move their flow, the expiry scan re-queues
  a flow that was active since it was queued (see _expire_queue), so expiry and
  eviction cost O(1) per flow. The closing queue holds flows that ended by RST or FIN
  during a short grace period, in which stray packets of the same connection (duplicate
  RSTs, late ACKs) are absorbed instead of becoming one-packet artefact flows. Free
  slots are chained through ``nxt`` as well.
- ``meta``: scalar state (see ``M_*``), ``counters``: totals reported to the user.
- ``out_*``: finished flows are copied here, column by column; when it is full the
  kernel returns early and the caller drains it, so memory never depends on how many
  flows end at once.

The per-packet entry points (meter_pcap, meter_raw) are software pipelines that ask for
the memory a packet will need (its frame, its hash cell, its flow's row) a few packets
ahead, so those cache misses overlap instead of stalling every packet in turn.
"""

from __future__ import annotations

import numpy as np

from flowscope._jit import hot_kernel, inline_kernel, kernel, prefetch, prefetch_l2
from flowscope.capture._pcap import (
    INT32_MAX,
    MAX_CAPLEN,
    NS_PER_S,
    PREFETCH_AHEAD,
    ST_BAD,
    ST_FULL,
    ST_NEED_MORE,
    read_u32,
)
from flowscope.decode._kernel import decode_one
from flowscope.decode.layout import (
    ADDR_DST_HI,
    ADDR_DST_LO,
    ADDR_SRC_HI,
    ADDR_SRC_LO,
    DEC_DPORT,
    DEC_FLAGS,
    DEC_FRAG,
    DEC_ICMP_CODE,
    DEC_ICMP_TYPE,
    DEC_IP_ID,
    DEC_IP_LEN,
    DEC_IPVER,
    DEC_L4_HDR_LEN,
    DEC_PAYLOAD_LEN,
    DEC_PROTO,
    DEC_SEQ,
    DEC_SPORT,
    DEC_STATUS,
    DEC_TS,
    DEC_TTL,
    DEC_VLAN,
    DEC_WINDOW,
    DEC_WIRELEN,
    FRAG_FIRST,
    FRAG_LATER,
    OK,
    SKIP_ORPHAN_FRAGMENT,
)
from flowscope.flows.state import (
    BULK_BYTES,
    BULK_CAND_BYTES,
    BULK_CAND_PKTS,
    BULK_COUNT,
    BULK_DURATION,
    BULK_LAST,
    BULK_PKTS,
    BULK_START,
    D_ACT_DATA,
    D_BULK0,
    D_BYTES,
    D_FIRST_FLAGS,
    D_FLAG0,
    D_FLAGS_OR,
    D_HDR,
    D_HDR_MIN,
    D_INIT_WIN,
    D_IP_BYTES,
    D_LAST_TS,
    D_LEN_MAX,
    D_LEN_MIN,
    D_LEN_SUMSQ,
    D_PKTS,
    D_RETX,
    D_SEQ_END,
    D_TTL_MAX,
    D_TTL_MIN,
    D_WIRE_BYTES,
    END_ACTIVE,
    END_EOF,
    END_EVICTED,
    END_FIN,
    END_IDLE,
    END_RST,
    END_RUNNING,
    F_ACTIVE,
    F_BWD_IAT,
    F_FLOW_IAT,
    F_FWD_IAT,
    F_IDLE,
    F_NCOLS,
    I_ACTIVE_END,
    I_ACTIVE_START,
    I_BWD,
    I_BWD_FIRST_FLAGS,
    I_BWD_HDR_MIN,
    I_BWD_INIT_WIN,
    I_BWD_LEN_MAX,
    I_BWD_LEN_MIN,
    I_BWD_PKTS,
    I_BWD_SEQ_END,
    I_BWD_TTL_MAX,
    I_BWD_TTL_MIN,
    I_CLOSING,
    I_CONN_START,
    I_DPORT,
    I_END_REASON,
    I_FIRST_TS,
    I_FRAGMENTS,
    I_FWD,
    I_FWD_FIRST_FLAGS,
    I_FWD_HDR_MIN,
    I_FWD_INIT_WIN,
    I_FWD_LEN_MAX,
    I_FWD_LEN_MIN,
    I_FWD_PKTS,
    I_FWD_SEQ_END,
    I_FWD_TTL_MAX,
    I_FWD_TTL_MIN,
    I_HASH,
    I_ICMP_CODE,
    I_ICMP_TYPE,
    I_IPVER,
    I_LAST_TS,
    I_NCOLS,
    I_PROTO,
    I_QUEUE_TS,
    I_SNAP_PKTS,
    I_SPORT,
    I_SUBFLOWS,
    I_TCP_STATE,
    I_VLAN,
    K_DST_HI,
    K_DST_LO,
    K_NCOLS,
    K_SRC_HI,
    K_SRC_LO,
    LEN_MIN_UNSET,
    TCP_BWD_FIN,
    TCP_FWD_FIN,
    TCP_RST,
    W_M2,
    W_MAX,
    W_MEAN,
    W_MIN,
    W_N,
)

# ------------------------------------------------------------------ meta slots
M_ACTIVE = 0  # open flows
M_FREE = 1  # head of the free-slot chain, -1 = none
M_HEAD = 2  # least recently active open flow, -1 = none
M_TAIL = 3  # most recently active
M_NOW = 4  # capture clock: the largest timestamp seen (ns)
M_NOUT = 5  # finished flows waiting in out_*
M_STARTED = 6  # 1 once the clock has a value
M_NEXT_EXPIRY = 7  # capture time of the next expiry scan
M_CHEAD = 8  # closing queue (flows ended by RST/FIN, in their grace period)
M_CTAIL = 9
M_PEAK = 10  # most flows open at once
M_FRESH = 11  # first slot never used yet: slots from here on are handed out in order
M_INDEX_CAP = 12  # open flows the hash table is sized for (the caller grows it beyond)
M_NFLUSHED = 13  # rows of out_* written; rows from here to M_NOUT are staged (see _finish)
M_NCOLS = 16

Q_OPEN = M_HEAD  # queues are named by the meta slot of their head; tail = head + 1
Q_CLOSING = M_CHEAD

# ------------------------------------------------------------------ parameters
P_IDLE = 0  # ns
P_ACTIVE = 1  # ns
P_ACTIVITY = 2  # ns, active/idle split (CICFlowMeter: 5 s)
P_SUBFLOW_GAP = 3  # ns (CICFlowMeter: 1 s)
P_BULK_GAP = 4  # ns (CICFlowMeter: 1 s)
P_MAX_FLOWS = 5
P_FRAG_TIMEOUT = 6  # ns
P_EXPIRY_INTERVAL = 7  # ns between expiry scans (capture clock)
P_CLOSE_GRACE = 8  # ns a RST/FIN-closed flow keeps absorbing stray packets
P_NCOLS = 16

# ------------------------------------------------------------------ counters
C_PACKETS = 0  # packets metered into flows
C_FLOWS = 1  # flows created
C_EVICTED = 2
C_TS_BACKWARDS = 3  # packets older than their flow's last packet
C_ORPHAN_FRAGS = 4
C_FRAGMENTS = 5  # later fragments attributed to a flow
C_NCOLS = 8

_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_K1 = np.uint64(0xC2B2AE3D27D4EB4F)
_K2 = np.uint64(0x165667B19E3779F9)
_K3 = np.uint64(0xD6E8FEB86659FD93)
_K4 = np.uint64(0xFF51AFD7ED558CCD)
_MASK62 = np.uint64((1 << 62) - 1)
_SEQ_MOD = np.int64(1 << 32)
_SEQ_HALF = np.int64(1 << 31)

FRAG_TABLE_BITS = 16
# src_hi, src_lo, dst_hi, dst_lo, key (IPv4: proto<<32|id, IPv6: id), sport, dport, ts, proto
FRAG_COLS = 9
SECOND_CHANCES = 8  # re-queues of recently active flows before one is evicted anyway


@inline_kernel
def _mix(h: np.uint64, v: np.uint64) -> np.uint64:
    z = h ^ (v + _GOLDEN + (h << np.uint64(6)) + (h >> np.uint64(2)))
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


@inline_kernel
def flow_hash(
    proto: int, a_hi: np.uint64, a_lo: np.uint64, a_port: int,
    b_hi: np.uint64, b_lo: np.uint64, b_port: int,
) -> int:  # fmt: skip
    """Hash of the key with its two endpoints in canonical order (direction-free).

    Each key word is multiplied by its own odd constant (independent multiplications,
    so they run in parallel) and the xor of the products gets a final avalanche
    (MurmurHash3's fmix64). Only used to place flows in the hash table.
    """
    swap = False
    if a_hi > b_hi:
        swap = True
    elif a_hi == b_hi:
        if a_lo > b_lo:
            swap = True
        elif a_lo == b_lo and a_port > b_port:
            swap = True
    if swap:
        a_hi, b_hi = b_hi, a_hi
        a_lo, b_lo = b_lo, a_lo
        a_port, b_port = b_port, a_port
    rest = (np.uint64(a_port) << np.uint64(24)) | (np.uint64(b_port) << np.uint64(8))
    rest |= np.uint64(proto) & np.uint64(0xFF)
    h = (a_hi * _K1) ^ (a_lo * _K2) ^ (b_hi * _K3) ^ (b_lo * _K4) ^ (rest * _GOLDEN)
    h = (h ^ (h >> np.uint64(33))) * _MIX1
    h = (h ^ (h >> np.uint64(29))) * _MIX2
    h ^= h >> np.uint64(32)
    return np.int64(h & _MASK62)


_flow_hash_call = kernel(flow_hash.py_func)


@inline_kernel
def _welford(F: np.ndarray, s: int, base: int, x: float) -> None:
    n = F[s, base + W_N] + 1.0
    d = x - F[s, base + W_MEAN]
    F[s, base + W_N] = n
    F[s, base + W_MEAN] += d / n
    F[s, base + W_M2] += d * (x - F[s, base + W_MEAN])
    if x < F[s, base + W_MIN]:
        F[s, base + W_MIN] = x
    if x > F[s, base + W_MAX]:
        F[s, base + W_MAX] = x


@kernel
def _q_unlink(s: int, q: int, prev: np.ndarray, nxt: np.ndarray, meta: np.ndarray) -> None:
    """Remove ``s`` from queue ``q`` (Q_OPEN or Q_CLOSING)."""
    p = prev[s]
    n = nxt[s]
    if p >= 0:
        nxt[p] = n
    else:
        meta[q] = n
    if n >= 0:
        prev[n] = p
    else:
        meta[q + 1] = p
    prev[s] = -1
    nxt[s] = -1


@kernel
def _q_append(s: int, q: int, prev: np.ndarray, nxt: np.ndarray, meta: np.ndarray) -> None:
    """Append ``s`` at the tail of queue ``q``."""
    t = meta[q + 1]
    prev[s] = t
    nxt[s] = -1
    if t >= 0:
        nxt[t] = s
    else:
        meta[q] = s
    meta[q + 1] = s


# A hash-table cell holds 0 (empty) or the slot + 1 in its low 32 bits and the low 31
# bits of the flow's hash above them. Probes compare that tag before reading the flow's
# row, and deletions find an entry's home cell without reading any row at all.
_TAG_BITS = 31
_TAG_MASK = (1 << _TAG_BITS) - 1
_SLOT_MASK = (1 << 32) - 1


@inline_kernel
def _cell(h: int, s: int) -> int:
    return ((h & _TAG_MASK) << 32) | (s + 1)


@inline_kernel
def _index_find(
    index: np.ndarray, I: np.ndarray, K: np.ndarray, h: int, proto: int,
    s_hi: np.uint64, s_lo: np.uint64, sport: int,
    d_hi: np.uint64, d_lo: np.uint64, dport: int,
) -> tuple:  # fmt: skip
    """Return (slot or -1, index position of the slot or of the empty cell, is_forward)."""
    mask = index.shape[0] - 1
    pos = h & mask
    tag = h & _TAG_MASK
    while True:
        e = index[pos]
        if e == 0:
            return -1, pos, True
        s = (e & _SLOT_MASK) - 1
        if (e >> 32) == tag and I[s, I_HASH] == h and I[s, I_PROTO] == proto:
            if (
                K[s, K_SRC_LO] == s_lo
                and K[s, K_DST_LO] == d_lo
                and K[s, K_SRC_HI] == s_hi
                and K[s, K_DST_HI] == d_hi
                and I[s, I_SPORT] == sport
                and I[s, I_DPORT] == dport
            ):
                return s, pos, True
            if (
                K[s, K_SRC_LO] == d_lo
                and K[s, K_DST_LO] == s_lo
                and K[s, K_SRC_HI] == d_hi
                and K[s, K_DST_HI] == s_hi
                and I[s, I_SPORT] == dport
                and I[s, I_DPORT] == sport
            ):
                return s, pos, False
        pos = (pos + 1) & mask


_index_find_call = kernel(_index_find.py_func)
""":func:`_index_find` as a call, for the rare second lookups (keeps the inlined code small)."""


@kernel
def _index_remove(index: np.ndarray, I: np.ndarray, s: int) -> None:
    """Delete slot ``s`` from the table, shifting later entries of its cluster back."""
    mask = index.shape[0] - 1
    i = I[s, I_HASH] & mask
    while (index[i] & _SLOT_MASK) != s + 1:
        i = (i + 1) & mask
    j = i
    while True:
        j = (j + 1) & mask
        e = index[j]
        if e == 0:
            index[i] = 0
            return
        home = (e >> 32) & mask  # the tag holds the hash's low bits (see _cell)
        # Entry at j may move to the hole at i only if its home is not in (i, j].
        if i <= j:
            stays = i < home and home <= j
        else:
            stays = home > i or home <= j
        if not stays:
            index[i] = e
            i = j


@kernel
def rebuild_index(index: np.ndarray, I: np.ndarray, prev: np.ndarray, nxt: np.ndarray,
                  meta: np.ndarray) -> None:  # fmt: skip
    """Re-insert every flow into a fresh (larger) table, walking both queues."""
    for c in range(index.shape[0]):
        index[c] = 0
    mask = index.shape[0] - 1
    for q in (Q_OPEN, Q_CLOSING):
        s = meta[q]
        while s >= 0:
            pos = I[s, I_HASH] & mask
            while index[pos] != 0:
                pos = (pos + 1) & mask
            index[pos] = _cell(I[s, I_HASH], s)
            s = nxt[s]


# Finished flows go out column by column (see FlowMeter._column_buffer), but writing one
# flow's 133 values to 133 columns touches 133 pages. So a flow's row is first copied to
# one of the last STAGE rows of the flow table (its staging area, never a flow's slot),
# and every STAGE flows those rows are transposed into the output in one go: 133 pages
# per STAGE flows, and the staging rows stay in cache.
STAGE = 64


@kernel
def flush_stage(
    I: np.ndarray, F: np.ndarray, K: np.ndarray, meta: np.ndarray,
    out_I: np.ndarray, out_F: np.ndarray, out_K: np.ndarray,
) -> None:  # fmt: skip
    """Transpose the staged finished flows into the output buffers."""
    o0 = meta[M_NFLUSHED]
    n = meta[M_NOUT] - o0
    base = I.shape[0] - STAGE
    for c in range(I.shape[1]):
        for r in range(n):
            out_I[o0 + r, c] = I[base + r, c]
    for c in range(F.shape[1]):
        for r in range(n):
            out_F[o0 + r, c] = F[base + r, c]
    for c in range(K.shape[1]):
        for r in range(n):
            out_K[o0 + r, c] = K[base + r, c]
    meta[M_NFLUSHED] = o0 + n


@kernel
def _finish(
    s: int, reason: int, I: np.ndarray, F: np.ndarray, K: np.ndarray, index: np.ndarray,
    prev: np.ndarray, nxt: np.ndarray, meta: np.ndarray,
    out_I: np.ndarray, out_F: np.ndarray, out_K: np.ndarray,
) -> None:  # fmt: skip
    """Emit flow ``s``: last active period, copy to the output, free the slot."""
    if I[s, I_ACTIVE_END] - I[s, I_ACTIVE_START] > 0:
        _welford(F, s, F_ACTIVE, (I[s, I_ACTIVE_END] - I[s, I_ACTIVE_START]) / 1000.0)
    I[s, I_END_REASON] = reason
    o = meta[M_NOUT]
    g = I.shape[0] - STAGE + (o - meta[M_NFLUSHED])  # its staging row
    for c in range(I.shape[1]):
        I[g, c] = I[s, c]
    for c in range(F.shape[1]):
        F[g, c] = F[s, c]
    for c in range(K.shape[1]):
        K[g, c] = K[s, c]
    meta[M_NOUT] = o + 1
    if o + 1 - meta[M_NFLUSHED] == STAGE:
        flush_stage(I, F, K, meta, out_I, out_F, out_K)
    _index_remove(index, I, s)
    _q_unlink(s, Q_CLOSING if I[s, I_CLOSING] else Q_OPEN, prev, nxt, meta)
    nxt[s] = meta[M_FREE]
    meta[M_FREE] = s
    meta[M_ACTIVE] -= 1


@kernel
def _new_flow(
    I: np.ndarray, F: np.ndarray, K: np.ndarray, index: np.ndarray, pos: int, h: int,
    proto: int, ipver: int, s_hi: np.uint64, s_lo: np.uint64, sport: int,
    d_hi: np.uint64, d_lo: np.uint64, dport: int, ts: int, conn_start: int, vlan: int,
    prev: np.ndarray, nxt: np.ndarray, meta: np.ndarray,
) -> int:  # fmt: skip
    # Recycle a freed slot (recently used, so likely in cache) before touching a new one:
    # untouched slots cost no memory, so the table's footprint follows the peak of
    # concurrently open flows.
    s = meta[M_FREE]
    if s >= 0:
        meta[M_FREE] = nxt[s]
    else:
        s = meta[M_FRESH]
        meta[M_FRESH] = s + 1
    for c in range(I.shape[1]):
        I[s, c] = 0
    for c in range(F.shape[1]):
        F[s, c] = 0.0
    for base in range(0, F_NCOLS, 5):
        F[s, base + W_MIN] = np.inf
        F[s, base + W_MAX] = -np.inf
    I[s, I_PROTO] = proto
    I[s, I_IPVER] = ipver
    I[s, I_SPORT] = sport
    I[s, I_DPORT] = dport
    I[s, I_HASH] = h
    I[s, I_FIRST_TS] = ts
    I[s, I_LAST_TS] = ts
    I[s, I_CONN_START] = conn_start
    I[s, I_QUEUE_TS] = ts
    I[s, I_ACTIVE_START] = ts
    I[s, I_ACTIVE_END] = ts
    I[s, I_FWD_INIT_WIN] = -1
    I[s, I_BWD_INIT_WIN] = -1
    I[s, I_FWD_HDR_MIN] = -1
    I[s, I_BWD_HDR_MIN] = -1
    I[s, I_ICMP_TYPE] = -1
    I[s, I_ICMP_CODE] = -1
    I[s, I_FWD_SEQ_END] = -1
    I[s, I_BWD_SEQ_END] = -1
    I[s, I_FWD_FIRST_FLAGS] = -1
    I[s, I_BWD_FIRST_FLAGS] = -1
    I[s, I_FWD_TTL_MIN] = 256
    I[s, I_BWD_TTL_MIN] = 256
    I[s, I_FWD_TTL_MAX] = -1
    I[s, I_BWD_TTL_MAX] = -1
    I[s, I_FWD_LEN_MIN] = LEN_MIN_UNSET
    I[s, I_BWD_LEN_MIN] = LEN_MIN_UNSET
    I[s, I_FWD_LEN_MAX] = -1
    I[s, I_BWD_LEN_MAX] = -1
    I[s, I_VLAN] = vlan
    K[s, K_SRC_HI] = s_hi
    K[s, K_SRC_LO] = s_lo
    K[s, K_DST_HI] = d_hi
    K[s, K_DST_LO] = d_lo
    index[pos] = _cell(h, s)
    _q_append(s, Q_OPEN, prev, nxt, meta)
    meta[M_ACTIVE] += 1
    if meta[M_ACTIVE] > meta[M_PEAK]:
        meta[M_PEAK] = meta[M_ACTIVE]
    return s


@kernel
def _close(s: int, reason: int, ts: int, I: np.ndarray, prev: np.ndarray, nxt: np.ndarray,
           meta: np.ndarray) -> None:  # fmt: skip
    """A TCP flow ended (RST, or final ACK after both FINs): hold it for the grace period."""
    I[s, I_END_REASON] = reason
    I[s, I_CLOSING] = 1
    I[s, I_QUEUE_TS] = ts
    _q_unlink(s, Q_OPEN, prev, nxt, meta)
    _q_append(s, Q_CLOSING, prev, nxt, meta)


@inline_kernel
def _bulk(I: np.ndarray, s: int, mine: int, other: int, ts: int, size: int, gap: int) -> None:
    """Bulk transfer accounting (CICFlowMeter's definition, without its direction bug).

    A bulk is ≥ 4 consecutive data packets in one direction, each within ``gap`` of the
    previous, with no data packet in the other direction in between.
    """
    I[s, other + BULK_CAND_PKTS] = 0  # data in this direction ends the other's candidate
    if I[s, mine + BULK_CAND_PKTS] == 0 or ts - I[s, mine + BULK_LAST] > gap:
        I[s, mine + BULK_START] = ts
        I[s, mine + BULK_LAST] = ts
        I[s, mine + BULK_CAND_PKTS] = 1
        I[s, mine + BULK_CAND_BYTES] = size
        return
    n = I[s, mine + BULK_CAND_PKTS] + 1
    I[s, mine + BULK_CAND_PKTS] = n
    I[s, mine + BULK_CAND_BYTES] += size
    if n == 4:
        I[s, mine + BULK_COUNT] += 1
        I[s, mine + BULK_PKTS] += 4
        I[s, mine + BULK_BYTES] += I[s, mine + BULK_CAND_BYTES]
        I[s, mine + BULK_DURATION] += ts - I[s, mine + BULK_START]
    elif n > 4:
        I[s, mine + BULK_PKTS] += 1
        I[s, mine + BULK_BYTES] += size
        I[s, mine + BULK_DURATION] += ts - I[s, mine + BULK_LAST]
    I[s, mine + BULK_LAST] = ts


@inline_kernel
def _update(
    I: np.ndarray, F: np.ndarray, s: int, fwd: bool, row: np.ndarray, ts: int,
    params: np.ndarray, counters: np.ndarray,
) -> None:  # fmt: skip
    """Add one packet to flow ``s``."""
    npk = I[s, I_FWD_PKTS] + I[s, I_BWD_PKTS]
    last = I[s, I_LAST_TS]
    if ts < last:
        counters[C_TS_BACKWARDS] += 1
        ts = last  # a packet cannot precede its flow's last one: IAT 0, order kept
    if npk > 0:
        dt = ts - last
        _welford(F, s, F_FLOW_IAT, dt / 1000.0)
        if dt > params[P_SUBFLOW_GAP]:
            I[s, I_SUBFLOWS] += 1
        if ts - I[s, I_ACTIVE_END] > params[P_ACTIVITY]:
            if I[s, I_ACTIVE_END] - I[s, I_ACTIVE_START] > 0:
                _welford(F, s, F_ACTIVE, (I[s, I_ACTIVE_END] - I[s, I_ACTIVE_START]) / 1000.0)
            _welford(F, s, F_IDLE, (ts - I[s, I_ACTIVE_END]) / 1000.0)
            I[s, I_ACTIVE_START] = ts
        I[s, I_ACTIVE_END] = ts
    I[s, I_LAST_TS] = ts

    payload = row[DEC_PAYLOAD_LEN]
    hdr = row[DEC_L4_HDR_LEN]
    flags = row[DEC_FLAGS]
    proto = row[DEC_PROTO]
    ttl = row[DEC_TTL]
    later_frag = row[DEC_FRAG] == FRAG_LATER
    # The two directions have identical column blocks; pick this packet's and the other.
    d = I_FWD if fwd else I_BWD
    o = I_BWD if fwd else I_FWD
    f_iat = F_FWD_IAT if fwd else F_BWD_IAT
    d_pkts, d_last, d_bytes, d_ip = d + D_PKTS, d + D_LAST_TS, d + D_BYTES, d + D_IP_BYTES
    d_wire, d_hdr, d_hdrmin, d_flag0 = d + D_WIRE_BYTES, d + D_HDR, d + D_HDR_MIN, d + D_FLAG0
    d_win, d_act, d_retx, d_seq = d + D_INIT_WIN, d + D_ACT_DATA, d + D_RETX, d + D_SEQ_END
    d_or, d_first, d_tmin, d_tmax = d + D_FLAGS_OR, d + D_FIRST_FLAGS, d + D_TTL_MIN, d + D_TTL_MAX
    d_sq, d_lmin, d_lmax = d + D_LEN_SUMSQ, d + D_LEN_MIN, d + D_LEN_MAX
    d_bulk, o_bulk = d + D_BULK0, o + D_BULK0

    if I[s, d_pkts] > 0:
        _welford(F, s, f_iat, (ts - I[s, d_last]) / 1000.0)
    I[s, d_pkts] += 1
    I[s, d_last] = ts
    I[s, d_bytes] += payload
    I[s, d_ip] += row[DEC_IP_LEN]
    I[s, d_wire] += row[DEC_WIRELEN]
    I[s, d_sq] += payload * payload
    if payload < I[s, d_lmin]:
        I[s, d_lmin] = payload
    if payload > I[s, d_lmax]:
        I[s, d_lmax] = payload
    if payload > 0:
        I[s, d_act] += 1
        _bulk(I, s, d_bulk, o_bulk, ts, payload, params[P_BULK_GAP])
    if ttl < I[s, d_tmin]:
        I[s, d_tmin] = ttl
    if ttl > I[s, d_tmax]:
        I[s, d_tmax] = ttl
    if later_frag:
        I[s, I_FRAGMENTS] += 1
        return
    I[s, d_hdr] += hdr
    if I[s, d_hdrmin] < 0 or hdr < I[s, d_hdrmin]:
        I[s, d_hdrmin] = hdr
    if (proto == 1 or proto == 58) and I[s, I_ICMP_TYPE] < 0:
        I[s, I_ICMP_TYPE] = row[DEC_ICMP_TYPE]
        I[s, I_ICMP_CODE] = row[DEC_ICMP_CODE]
    if proto != 6:
        return
    for k in range(8):
        if flags & (1 << k):
            I[s, d_flag0 + k] += 1
    I[s, d_or] |= flags
    if I[s, d_first] < 0:
        I[s, d_first] = flags
        I[s, d_win] = row[DEC_WINDOW]
    if payload > 0:
        end = (row[DEC_SEQ] + payload) % _SEQ_MOD
        prev_end = I[s, d_seq]
        if prev_end < 0:
            I[s, d_seq] = end
        else:
            diff = (end - prev_end) % _SEQ_MOD
            if diff == 0 or diff >= _SEQ_HALF:
                I[s, d_retx] += 1
            else:
                I[s, d_seq] = end


@kernel
def _expire_queue(
    q: int, now: int, timeout: int, I: np.ndarray, F: np.ndarray, K: np.ndarray,
    index: np.ndarray, prev: np.ndarray, nxt: np.ndarray, meta: np.ndarray,
    out_I: np.ndarray, out_F: np.ndarray, out_K: np.ndarray, room: int,
) -> bool:  # fmt: skip
    """Emit the flows of queue ``q`` silent for more than ``timeout`` ns.

    Returns False if the output filled up first. A queue is ordered by queue time, not
    by last activity: packets do not move their flow (that would cost three random
    memory writes per packet). A flow reaching the head that was active since it was
    queued is re-queued instead, so each flow is looked at about once per timeout.
    Flow boundaries do not depend on this: a packet arriving after its flow's timeout
    always starts a new flow (see _meter_one).
    """
    limit = out_I.shape[0] - room
    while True:
        h = meta[q]
        if h < 0 or now - I[h, I_QUEUE_TS] <= timeout:
            return True
        n1 = nxt[h]
        if n1 >= 0:  # likely the next one out: its row is long out of cache
            _prefetch_row(n1, I, F, K)
        prefetch(index, I[h, I_HASH] & (index.shape[0] - 1))  # for _index_remove
        if now - I[h, I_LAST_TS] <= timeout:
            _q_unlink(h, q, prev, nxt, meta)
            _q_append(h, q, prev, nxt, meta)
            I[h, I_QUEUE_TS] = now
            continue
        if meta[M_NOUT] >= limit:
            return False
        reason = I[h, I_END_REASON] if q == Q_CLOSING else _idle_reason(I, h)
        _finish(h, reason, I, F, K, index, prev, nxt, meta, out_I, out_F, out_K)


@kernel
def _expire_idle(
    now: int, params: np.ndarray, I: np.ndarray, F: np.ndarray, K: np.ndarray,
    index: np.ndarray, prev: np.ndarray, nxt: np.ndarray, meta: np.ndarray,
    out_I: np.ndarray, out_F: np.ndarray, out_K: np.ndarray, room: int,
) -> bool:  # fmt: skip
    """Emit closed flows past their grace period and open flows past the idle timeout."""
    if not _expire_queue(Q_CLOSING, now, params[P_CLOSE_GRACE], I, F, K, index, prev, nxt,
                         meta, out_I, out_F, out_K, room):  # fmt: skip
        return False
    return _expire_queue(Q_OPEN, now, params[P_IDLE], I, F, K, index, prev, nxt, meta,
                         out_I, out_F, out_K, room)  # fmt: skip


@inline_kernel
def _idle_reason(I: np.ndarray, s: int) -> int:
    """'fin' for a TCP flow both sides had closed (only the final ACK never came)."""
    both = TCP_FWD_FIN | TCP_BWD_FIN
    if I[s, I_PROTO] == 6 and (I[s, I_TCP_STATE] & both) == both:
        return END_FIN
    return END_IDLE


@kernel
def expire_idle(
    now: int, I: np.ndarray, F: np.ndarray, K: np.ndarray, index: np.ndarray,
    prev: np.ndarray, nxt: np.ndarray, meta: np.ndarray, params: np.ndarray,
    out_I: np.ndarray, out_F: np.ndarray, out_K: np.ndarray,
) -> bool:  # fmt: skip
    """Advance the clock to ``now`` (live capture: wall time) and close idle flows."""
    if now > meta[M_NOW]:
        meta[M_NOW] = now
    return _expire_idle(
        meta[M_NOW], params, I, F, K, index, prev, nxt, meta, out_I, out_F, out_K, 0
    )


@kernel
def flush_all(
    I: np.ndarray, F: np.ndarray, K: np.ndarray, index: np.ndarray,
    prev: np.ndarray, nxt: np.ndarray, meta: np.ndarray,
    out_I: np.ndarray, out_F: np.ndarray, out_K: np.ndarray,
) -> bool:  # fmt: skip
    """Emit every flow (end of capture); False if the output filled up first.

    Flows in their close grace period keep their reason (rst/fin); open ones end `eof`.
    """
    for q in (Q_CLOSING, Q_OPEN):
        while meta[q] >= 0:
            if meta[M_NOUT] >= out_I.shape[0]:
                return False
            h = meta[q]
            reason = I[h, I_END_REASON] if q == Q_CLOSING else END_EOF
            _finish(h, reason, I, F, K, index, prev, nxt, meta, out_I, out_F, out_K)
    return True


# ------------------------------------------------------------------ snapshots
# An early verdict needs the features of a flow that is still open. A snapshot copies
# the rows of the open flows that got packets since their previous snapshot (their
# packet count at that snapshot is kept in I_SNAP_PKTS, which a new flow starts at 0),
# without touching anything else of the table: the per-packet path pays nothing for it.


@kernel
def snapshot_select(
    min_pkts: int, I: np.ndarray, nxt: np.ndarray, meta: np.ndarray, sel: np.ndarray
) -> int:
    """Write to ``sel`` the slots of the open flows due for a snapshot; returns how many.

    Due: at least ``min_pkts`` packets, and more than at the flow's previous snapshot.
    Flows in their close grace period are left out: they have ended (RST/FIN) and their
    final record follows within the grace period. The open queue is walked in queue
    order, which for flows created in a burst is slot order, with the next flow's lines
    requested one step ahead so its cache misses overlap with this one's.
    """
    n = 0
    s = meta[Q_OPEN]
    while s >= 0:
        n1 = nxt[s]
        if n1 >= 0:  # the three cache lines read below, not the whole row
            prefetch(I, n1 * I_NCOLS + I_SNAP_PKTS)
            prefetch(I, n1 * I_NCOLS + I_FWD_PKTS)
            prefetch(I, n1 * I_NCOLS + I_BWD_PKTS)
        npk = I[s, I_FWD_PKTS] + I[s, I_BWD_PKTS]
        if npk >= min_pkts and npk > I[s, I_SNAP_PKTS]:
            sel[n] = s
            n += 1
        s = n1
    return n


@kernel
def snapshot_copy(
    sel: np.ndarray, I: np.ndarray, F: np.ndarray, K: np.ndarray,
    out_I: np.ndarray, out_F: np.ndarray, out_K: np.ndarray,
) -> None:  # fmt: skip
    """Copy the flows ``sel`` as if they ended now, and remember their packet counts.

    The copy gets what _finish adds to a finished flow (its last active period) and the
    end reason END_RUNNING; the flow itself is unchanged apart from I_SNAP_PKTS, so
    its final record is exactly what it would have been without snapshots.
    """
    for r in range(sel.shape[0]):
        s = sel[r]
        for c in range(I.shape[1]):
            out_I[r, c] = I[s, c]
        for c in range(F.shape[1]):
            out_F[r, c] = F[s, c]
        for c in range(K.shape[1]):
            out_K[r, c] = K[s, c]
        span = out_I[r, I_ACTIVE_END] - out_I[r, I_ACTIVE_START]
        if span > 0:
            _welford(out_F, r, F_ACTIVE, span / 1000.0)
        out_I[r, I_END_REASON] = END_RUNNING
        I[s, I_SNAP_PKTS] = I[s, I_FWD_PKTS] + I[s, I_BWD_PKTS]


@hot_kernel
def _meter_one(
    row: np.ndarray, a: np.ndarray, h: int,
    I: np.ndarray, F: np.ndarray, K: np.ndarray, index: np.ndarray,
    prev: np.ndarray, nxt: np.ndarray, meta: np.ndarray, params: np.ndarray,
    counters: np.ndarray, frag: np.ndarray,
    out_I: np.ndarray, out_F: np.ndarray, out_K: np.ndarray,
) -> bool:  # fmt: skip
    """Add one decoded packet; False if idle expiry filled the output first (retry later).

    ``h`` is the packet's flow hash if the caller computed it already (see meter_raw),
    else -1.
    """
    idle = params[P_IDLE]
    active = params[P_ACTIVE]
    max_flows = params[P_MAX_FLOWS]
    fmask = frag.shape[0] - 1
    ts = row[DEC_TS]
    if meta[M_STARTED] == 0 or ts > meta[M_NOW]:
        meta[M_NOW] = ts
        meta[M_STARTED] = 1
    if meta[M_NOW] >= meta[M_NEXT_EXPIRY]:
        # The expiry scan runs once per capture-clock second, not per packet: flow
        # boundaries are exact regardless (see the idle check below), and calling it
        # for every packet cost more than metering the packet.
        if not _expire_idle(
            meta[M_NOW], params, I, F, K, index, prev, nxt, meta, out_I, out_F, out_K, 2
        ):
            return False
        meta[M_NEXT_EXPIRY] = meta[M_NOW] + params[P_EXPIRY_INTERVAL]
    s_hi = a[ADDR_SRC_HI]
    s_lo = a[ADDR_SRC_LO]
    d_hi = a[ADDR_DST_HI]
    d_lo = a[ADDR_DST_LO]
    proto = row[DEC_PROTO]
    sport = row[DEC_SPORT]
    dport = row[DEC_DPORT]

    fstate = row[DEC_FRAG]
    if fstate != 0:
        # IPv4 fragments are keyed with their protocol; IPv6 ones only by identification,
        # since an extension header after the fragment header hides it in later fragments.
        fk = np.uint64(row[DEC_IP_ID])
        if row[DEC_IPVER] == 4:
            fk |= np.uint64(proto) << np.uint64(32)
        fh = _mix(_mix(_mix(fk, s_lo), d_lo), s_hi ^ d_hi) & np.uint64(fmask)
        fr = frag[fh]
        if fstate == FRAG_FIRST:
            fr[0] = s_hi
            fr[1] = s_lo
            fr[2] = d_hi
            fr[3] = d_lo
            fr[4] = fk
            fr[5] = np.uint64(sport)
            fr[6] = np.uint64(dport)
            fr[7] = np.uint64(ts)
            fr[8] = np.uint64(proto)
        elif (
            fr[4] == fk
            and fr[1] == s_lo
            and fr[3] == d_lo
            and fr[0] == s_hi
            and fr[2] == d_hi
            and np.int64(fr[7]) <= ts
            and ts - np.int64(fr[7]) <= params[P_FRAG_TIMEOUT]
        ):
            sport = np.int64(fr[5])
            dport = np.int64(fr[6])
            proto = np.int64(fr[8])
            counters[C_FRAGMENTS] += 1
            h = -1  # the key changed: hash it again
        else:
            row[DEC_STATUS] = SKIP_ORPHAN_FRAGMENT
            counters[C_ORPHAN_FRAGS] += 1
            return True

    if h < 0:
        h = _flow_hash_call(proto, s_hi, s_lo, sport, d_hi, d_lo, dport)
    s, pos, fwd = _index_find(index, I, K, h, proto, s_hi, s_lo, sport, d_hi, d_lo, dport)
    flags = row[DEC_FLAGS] if proto == 6 and fstate != FRAG_LATER else 0
    conn_start = ts
    pkt_fwd = True  # direction of this packet in the flow it ends up in
    if s >= 0:
        tstate = I[s, I_TCP_STATE]
        if I[s, I_CLOSING]:
            # Ended by RST/FIN and in its grace period: stray packets of the same
            # connection join it; a new SYN or a longer silence means a new flow.
            if (flags & 0x12) == 0x02 or ts - I[s, I_LAST_TS] > params[P_CLOSE_GRACE]:
                _finish(s, I[s, I_END_REASON], I, F, K, index, prev, nxt, meta,
                        out_I, out_F, out_K)  # fmt: skip
                s = -1
        elif ts - I[s, I_LAST_TS] > idle:
            # Idle timeout, decided here so boundaries do not depend on expiry timing.
            _finish(s, _idle_reason(I, s), I, F, K, index, prev, nxt, meta, out_I, out_F, out_K)
            s = -1
        elif ts - I[s, I_FIRST_TS] > active:
            # Active timeout: close and continue the connection in a new flow that
            # keeps the original orientation.
            conn_start = I[s, I_CONN_START]
            if not fwd:
                s_hi, d_hi = d_hi, s_hi
                s_lo, d_lo = d_lo, s_lo
                sport, dport = dport, sport
                pkt_fwd = False
            _finish(s, END_ACTIVE, I, F, K, index, prev, nxt, meta, out_I, out_F, out_K)
            s = -1
        elif proto == 6 and (flags & 0x12) == 0x02 and (tstate & (TCP_FWD_FIN | TCP_BWD_FIN)):
            # A fresh SYN on a connection that was closing: the port pair is reused.
            _finish(s, END_FIN, I, F, K, index, prev, nxt, meta, out_I, out_F, out_K)
            s = -1
        if s < 0:
            s, pos, fwd = _index_find_call(
                index, I, K, h, proto, s_hi, s_lo, sport, d_hi, d_lo, dport
            )
    if s < 0:
        if meta[M_ACTIVE] >= max_flows or not _has_slot(meta, I):
            _make_room(ts, I, F, K, index, prev, nxt, meta, counters, out_I, out_F, out_K)
            s, pos, fwd = _index_find_call(
                index, I, K, h, proto, s_hi, s_lo, sport, d_hi, d_lo, dport
            )
        s = _new_flow(
            I, F, K, index, pos, h, proto, row[DEC_IPVER], s_hi, s_lo, sport,
            d_hi, d_lo, dport, ts, conn_start, row[DEC_VLAN], prev, nxt, meta,
        )  # fmt: skip
        fwd = pkt_fwd
        counters[C_FLOWS] += 1

    _update(I, F, s, fwd, row, ts, params, counters)
    counters[C_PACKETS] += 1

    if proto == 6 and fstate != FRAG_LATER and not I[s, I_CLOSING]:
        tstate = I[s, I_TCP_STATE]
        both = TCP_FWD_FIN | TCP_BWD_FIN
        if flags & 0x04:
            I[s, I_TCP_STATE] = tstate | TCP_RST
            _close(s, END_RST, ts, I, prev, nxt, meta)
        elif flags & 0x01:
            I[s, I_TCP_STATE] = tstate | (TCP_FWD_FIN if fwd else TCP_BWD_FIN)
        elif (tstate & both) == both and (flags & 0x10) and row[DEC_PAYLOAD_LEN] == 0:
            _close(s, END_FIN, ts, I, prev, nxt, meta)
    return True


@kernel
def _make_room(
    now: int, I: np.ndarray, F: np.ndarray, K: np.ndarray, index: np.ndarray,
    prev: np.ndarray, nxt: np.ndarray, meta: np.ndarray, counters: np.ndarray,
    out_I: np.ndarray, out_F: np.ndarray, out_K: np.ndarray,
) -> None:  # fmt: skip
    """Free one slot of a full table.

    A flow already closed (in its grace period) goes first: it is complete. Otherwise
    the open flow at the head of the queue is evicted, but one that saw packets since
    it was queued gets a second chance (re-queued) a few times, so a busy connection is
    not the first victim of a spoofed flood.
    """
    h = meta[Q_CLOSING]
    if h >= 0:
        _finish(h, I[h, I_END_REASON], I, F, K, index, prev, nxt, meta, out_I, out_F, out_K)
        return
    for _ in range(SECOND_CHANCES):
        h = meta[Q_OPEN]
        if I[h, I_LAST_TS] <= I[h, I_QUEUE_TS] or nxt[h] < 0:
            break
        _q_unlink(h, Q_OPEN, prev, nxt, meta)
        _q_append(h, Q_OPEN, prev, nxt, meta)
        I[h, I_QUEUE_TS] = now
    _finish(meta[Q_OPEN], END_EVICTED, I, F, K, index, prev, nxt, meta, out_I, out_F, out_K)
    counters[C_EVICTED] += 1


@inline_kernel
def _has_slot(meta: np.ndarray, I: np.ndarray) -> bool:
    return meta[M_FREE] >= 0 or meta[M_FRESH] < I.shape[0] - STAGE


@inline_kernel
def _must_pause(meta: np.ndarray, params: np.ndarray, I: np.ndarray, out_cap: int) -> bool:
    """Output nearly full (one packet can end two flows), or the hash table or the flow
    table needs to grow (the caller does that, then calls again)."""
    if meta[M_NOUT] + 2 > out_cap or meta[M_ACTIVE] >= meta[M_INDEX_CAP]:
        return True
    return not _has_slot(meta, I) and meta[M_ACTIVE] < params[P_MAX_FLOWS]


@kernel
def meter_decoded(
    dec: np.ndarray, addr: np.ndarray, start: int,
    I: np.ndarray, F: np.ndarray, K: np.ndarray, index: np.ndarray,
    prev: np.ndarray, nxt: np.ndarray, meta: np.ndarray, params: np.ndarray,
    counters: np.ndarray, frag: np.ndarray,
    out_I: np.ndarray, out_F: np.ndarray, out_K: np.ndarray,
) -> int:  # fmt: skip
    """Meter rows ``start..`` of a decoded batch; returns where it stopped.

    It stops early when the output buffer has room for fewer than two more finished
    flows, or when the table has no free slot but may still grow; the caller drains
    or grows, then calls again from the returned index.
    """
    n = dec.shape[0]
    out_cap = out_I.shape[0]
    i = start
    while i < n:
        row = dec[i]
        if row[DEC_STATUS] != OK:
            i += 1
            continue
        if _must_pause(meta, params, I, out_cap):
            return i
        if not _meter_one(
            row, addr[i], -1, I, F, K, index, prev, nxt, meta, params, counters, frag,
            out_I, out_F, out_K,
        ):  # fmt: skip
            return i
        i += 1
    return n


# The fast path is a software pipeline over the packets of a batch. While packet i is
# metered, the frame of packet i + AHEAD_DATA is requested from memory, packet
# i + AHEAD_DECODE is decoded and hashed and its hash-table cell requested, and the
# flow slot that cell names for packet i + AHEAD_SLOT is requested. Frames, hash cells
# and flow slots are all random accesses into memory far larger than the caches; with
# the hints they arrive while earlier packets are being worked on instead of stalling
# each packet in turn. The hints never change results: packet i is looked up afresh.
AHEAD_DATA = 8
AHEAD_DECODE = 4
AHEAD_SLOT = 2
RING = 8  # decoded packets in flight (a power of two > AHEAD_DECODE)


@inline_kernel
def _decode_ahead(
    j: int, data: np.ndarray, offset: np.ndarray, caplen: np.ndarray, wirelen: np.ndarray,
    ts_ns: np.ndarray, linktype: np.ndarray, ring: np.ndarray, ring_a: np.ndarray,
    ring_h: np.ndarray, index: np.ndarray,
) -> None:  # fmt: skip
    """Decode packet ``j`` into its ring slot, hash its key, request its hash cell."""
    r = j & (ring.shape[0] - 1)
    row = ring[r]
    a = ring_a[r]
    st = decode_one(data, offset[j], caplen[j], wirelen[j], ts_ns[j], linktype[j], row, a)
    h = -1
    if st == OK and row[DEC_FRAG] != FRAG_LATER:
        h = flow_hash(
            row[DEC_PROTO], a[ADDR_SRC_HI], a[ADDR_SRC_LO], row[DEC_SPORT],
            a[ADDR_DST_HI], a[ADDR_DST_LO], row[DEC_DPORT],
        )  # fmt: skip
        prefetch(index, h & (index.shape[0] - 1))
    ring_h[r] = h


@inline_kernel
def _prefetch_row(s: int, I: np.ndarray, F: np.ndarray, K: np.ndarray) -> None:
    """Request every cache line of flow slot ``s`` (before copying it out)."""
    for c in range(0, I_NCOLS, 8):
        prefetch(I, s * I_NCOLS + c)
    for c in range(0, F_NCOLS, 8):
        prefetch(F, s * F_NCOLS + c)
    prefetch(K, s * K_NCOLS)


@inline_kernel
def _slot_ahead(
    j: int, ring_h: np.ndarray, index: np.ndarray, I: np.ndarray, F: np.ndarray, K: np.ndarray
) -> None:  # fmt: skip
    """Request the flow slot named by packet ``j``'s hash cell (if it names one)."""
    h = ring_h[j & (ring_h.shape[0] - 1)]
    if h < 0:
        return
    e = index[h & (index.shape[0] - 1)]
    if (e >> 32) != (h & _TAG_MASK):  # empty, or another flow's cell
        return
    s = (e & _SLOT_MASK) - 1
    prefetch(I, s * I_NCOLS)
    prefetch(I, s * I_NCOLS + 8)
    prefetch(I, s * I_NCOLS + 16)
    prefetch(I, s * I_NCOLS + I_FWD)
    prefetch(I, s * I_NCOLS + I_BWD)
    prefetch(K, s * K_NCOLS)
    prefetch(F, s * F_NCOLS)
    prefetch(F, s * F_NCOLS + 8)


@kernel
def meter_raw(
    data: np.ndarray, offset: np.ndarray, caplen: np.ndarray, wirelen: np.ndarray,
    ts_ns: np.ndarray, linktype: np.ndarray, start: int, status_counts: np.ndarray,
    ring: np.ndarray, ring_a: np.ndarray, ring_h: np.ndarray,
    I: np.ndarray, F: np.ndarray, K: np.ndarray, index: np.ndarray,
    prev: np.ndarray, nxt: np.ndarray, meta: np.ndarray, params: np.ndarray,
    counters: np.ndarray, frag: np.ndarray,
    out_I: np.ndarray, out_F: np.ndarray, out_K: np.ndarray,
) -> int:  # fmt: skip
    """Decode and meter packets ``start..`` of a raw batch in one pass (the fast path).

    Fusing the two steps keeps each packet's header fields in a small ring of scratch
    rows in cache instead of writing and re-reading a decoded matrix; see AHEAD_DATA
    for the pipeline. Every packet is counted once in ``status_counts`` by status (OK
    or a SKIP_* reason). Stops early like :func:`meter_decoded`; the caller calls
    again from the returned index, which decodes the packets in flight once more.
    """
    n = offset.shape[0]
    out_cap = out_I.shape[0]
    rmask = ring.shape[0] - 1
    for j in range(start, min(start + AHEAD_DATA - AHEAD_DECODE, n)):
        prefetch(data, offset[j])
    # k is the packet being decoded; the packet being metered trails it by AHEAD_DECODE.
    # (Each stage has one call site: the inlined code is large and compiles slowly.)
    for k in range(start, n + AHEAD_DECODE):
        if k + AHEAD_DATA - AHEAD_DECODE < n:
            p = offset[k + AHEAD_DATA - AHEAD_DECODE]
            prefetch(data, p)
            prefetch(data, p + 64)
        if k < n:
            _decode_ahead(k, data, offset, caplen, wirelen, ts_ns, linktype, ring, ring_a,
                          ring_h, index)  # fmt: skip
        j = k - (AHEAD_DECODE - AHEAD_SLOT)
        if start <= j < n:
            _slot_ahead(j, ring_h, index, I, F, K)
        i = k - AHEAD_DECODE
        if i < start:
            continue
        if _must_pause(meta, params, I, out_cap):
            return i
        r = i & rmask
        row = ring[r]
        if row[DEC_STATUS] == OK and not _meter_one(
            row, ring_a[r], ring_h[r], I, F, K, index, prev, nxt, meta, params, counters,
            frag, out_I, out_F, out_K,
        ):  # fmt: skip
            return i
        status_counts[row[DEC_STATUS]] += 1  # the meter may have set SKIP_ORPHAN_FRAGMENT
    return n


# ------------------------------------------------------------------ classic pcap, fused
# For an uncompressed classic pcap the loop below also walks the file's records, so no
# pass of its own and no per-batch arrays are needed: record headers form a chain (each
# gives the next one's position), and walking it AHEAD_WALK records ahead of the packet
# being metered lets each header's memory latency overlap with metering the packets
# before it. Results are those of reading batches with CaptureReader then meter_raw.
AHEAD_WALK = 8
WALK_RING = 16  # walked records in flight (a power of two > AHEAD_WALK)
# walk ring columns
W_POS = 0  # file position of the record header
W_OFF = 1  # of the frame
W_CAPLEN = 2
W_WIRELEN = 3
W_TS = 4
W_NCOLS = 5
# why meter_pcap returned (besides the _pcap.ST_* record-walk outcomes)
PCAP_PAUSED = 10  # output full or tables must grow: drain/grow, then call again


@inline_kernel
def _walk_one(
    data: np.ndarray, pos: int, end: int, big: bool, hdr_len: int, frac_mult: int,
    walk: np.ndarray, w: int,
) -> tuple:  # fmt: skip
    """Parse the record header at ``pos`` into walk-ring row ``w``.

    Returns (status, bytes the record occupies or needs): ST_FULL when the record is
    complete (it is then in the ring), else ST_NEED_MORE or ST_BAD as scan_pcap reports.
    """
    avail = end - pos
    if avail < hdr_len:
        return ST_NEED_MORE, hdr_len
    incl = read_u32(data, pos + 8, big)
    if incl > MAX_CAPLEN:
        return ST_BAD, 0
    rec = hdr_len + incl
    if avail < rec:
        return ST_NEED_MORE, rec
    sec = read_u32(data, pos, big)
    frac = read_u32(data, pos + 4, big)
    orig = read_u32(data, pos + 12, big)
    r = walk[w & (walk.shape[0] - 1)]
    r[W_POS] = pos
    r[W_OFF] = pos + hdr_len
    r[W_CAPLEN] = incl
    r[W_WIRELEN] = min(orig, INT32_MAX)
    r[W_TS] = sec * NS_PER_S + frac * frac_mult
    return ST_FULL, rec


@inline_kernel
def _decode_walked(
    k: int, data: np.ndarray, linktype: int, walk: np.ndarray, ring: np.ndarray,
    ring_a: np.ndarray, ring_h: np.ndarray, index: np.ndarray,
) -> None:  # fmt: skip
    """Decode walked record ``k`` into its ring slot, hash it, request its hash cell."""
    wr = walk[k & (walk.shape[0] - 1)]
    r = k & (ring.shape[0] - 1)
    row = ring[r]
    a = ring_a[r]
    st = decode_one(data, wr[W_OFF], wr[W_CAPLEN], wr[W_WIRELEN], wr[W_TS], linktype, row, a)
    h = -1
    if st == OK and row[DEC_FRAG] != FRAG_LATER:
        h = flow_hash(
            row[DEC_PROTO], a[ADDR_SRC_HI], a[ADDR_SRC_LO], row[DEC_SPORT],
            a[ADDR_DST_HI], a[ADDR_DST_LO], row[DEC_DPORT],
        )  # fmt: skip
        prefetch(index, h & (index.shape[0] - 1))
    ring_h[r] = h


@kernel
def meter_pcap(
    data: np.ndarray, pos: int, end: int, limit: int, big: bool, hdr_len: int,
    frac_mult: int, linktype: int, status_counts: np.ndarray, walk: np.ndarray,
    ring: np.ndarray, ring_a: np.ndarray, ring_h: np.ndarray,
    I: np.ndarray, F: np.ndarray, K: np.ndarray, index: np.ndarray,
    prev: np.ndarray, nxt: np.ndarray, meta: np.ndarray, params: np.ndarray,
    counters: np.ndarray, frag: np.ndarray,
    out_I: np.ndarray, out_F: np.ndarray, out_K: np.ndarray,
) -> tuple:  # fmt: skip
    """Walk, decode and meter the classic-pcap records of ``data[pos:end]`` (the fast path).

    ``data`` is the whole file (mapped), ``pos`` a record boundary. Records starting
    before ``limit`` are metered, so the caller gets control back every so often.
    Returns (position of the first record not metered, records metered, outcome,
    bytes needed): outcome ST_FULL when ``limit`` was reached, PCAP_PAUSED when the
    output or the tables need the caller (call again from the returned position),
    ST_NEED_MORE when the record there is incomplete (the end of the data: a truncated
    record unless the position is ``end``; the last element says how many bytes it
    claims), ST_BAD when its captured length is impossible.
    """
    out_cap = out_I.shape[0]
    rmask = ring.shape[0] - 1
    wmask = walk.shape[0] - 1
    walked = 0  # records walked so far
    wpos = pos  # position of the next record to walk
    ahead = pos  # every cache line of the file below this one has been requested
    walking = wpos < limit
    status = ST_FULL
    need = 0
    t = -AHEAD_WALK  # the record being metered
    while True:
        if walking:
            # Each header read waits on the one before; with the lines requested a few
            # KiB ahead (see capture._pcap.PREFETCH_AHEAD) it finds them in cache.
            while ahead < wpos + PREFETCH_AHEAD:
                prefetch_l2(data, ahead)
                ahead += 64
            st, size = _walk_one(data, wpos, end, big, hdr_len, frac_mult, walk, walked)
            if st == ST_FULL:
                walked += 1
                wpos += size
                walking = wpos < limit
            else:
                walking = False
                status = st
                need = size
        k = t + AHEAD_DECODE
        if 0 <= k < walked:
            _decode_walked(k, data, linktype, walk, ring, ring_a, ring_h, index)
        k = t + AHEAD_SLOT
        if 0 <= k < walked:
            _slot_ahead(k, ring_h, index, I, F, K)
        if t >= 0:
            if t >= walked:
                return wpos, walked, status, need
            if _must_pause(meta, params, I, out_cap):
                return walk[t & wmask][W_POS], t, PCAP_PAUSED, 0
            r = t & rmask
            row = ring[r]
            if row[DEC_STATUS] == OK and not _meter_one(
                row, ring_a[r], ring_h[r], I, F, K, index, prev, nxt, meta, params, counters,
                frag, out_I, out_F, out_K,
            ):  # fmt: skip
                return walk[t & wmask][W_POS], t, PCAP_PAUSED, 0
            status_counts[row[DEC_STATUS]] += 1
        t += 1
