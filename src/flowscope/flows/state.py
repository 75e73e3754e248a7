"""Column layout of the per-flow accumulators.

A flow is one row in three matrices: ``I`` (int64: identity, counters, timestamps in
ns, TCP state), ``F`` (float64: running statistics) and ``K`` (uint64: addresses).
Every feature in the registry is computed, vectorised, from these columns when the
flow ends, so the compiled per-packet update only keeps O(1) sums — never a list
of packets — and memory depends on how many flows are open, not on their length.

Running statistics are kept with Welford's method (count, mean, M2, min, max) so a
standard deviation over millions of packets does not lose precision.
"""

# ---------------------------------------------------------------- int64 columns (I)
# Laid out for the cache: a shared block the per-packet update always touches, then
# one 32-column block per direction, so a packet touches ~5 of the row's 11 lines.
I_PROTO = 0
I_SPORT = 1  # forward direction = sender of the flow's first packet
I_DPORT = 2
I_HASH = 3  # hash of the direction-independent key, to relocate entries in the index
I_FIRST_TS = 4  # ns
I_LAST_TS = 5
I_ACTIVE_START = 6
I_ACTIVE_END = 7
I_SUBFLOWS = 8  # number of gaps > 1 s (subflows = gaps + 1)
I_TCP_STATE = 9  # bit 0: fwd FIN, bit 1: bwd FIN, bit 2: RST seen
I_ICMP_TYPE = 10  # of the first ICMP packet, -1 otherwise
I_ICMP_CODE = 11
I_FRAGMENTS = 12  # later IP fragments attributed to this flow
I_IPVER = 13
I_VLAN = 14
I_END_REASON = 15
I_CONN_START = 16  # first packet of the connection (survives active-timeout splits)
I_QUEUE_TS = 17  # when the flow was (re)queued in its expiry queue
I_CLOSING = 18  # 1 once ended by RST/FIN, while it absorbs stray packets (grace period)
I_SNAP_PKTS = 19  # packets at the flow's last snapshot (0 = never snapshotted)
I_FWD = 24  # start of the forward block
I_BWD = 64  # start of the backward block
I_NCOLS = 104

# offsets inside a direction block
D_PKTS = 0
D_LAST_TS = 1
D_BYTES = 2  # transport payload bytes
D_IP_BYTES = 3  # IP packet bytes (headers + payload)
D_WIRE_BYTES = 4  # frame bytes on the wire (link layer included)
D_HDR = 5  # transport header bytes
D_HDR_MIN = 6  # smallest transport header seen (CIC "Seg Size Min"), -1 = none
D_ACT_DATA = 7  # packets with ≥ 1 byte of transport payload
D_FLAG0 = 8  # .. 15: TCP flag counters (FIN, SYN, RST, PSH, ACK, URG, ECE, CWR)
D_INIT_WIN = 16  # -1 until the direction's first TCP packet
D_RETX = 17  # TCP retransmissions
D_SEQ_END = 18  # highest seq + payload seen (32-bit serial arithmetic), -1 = unset
D_FLAGS_OR = 19
D_FIRST_FLAGS = 20  # flags of the direction's first TCP packet, -1 = none
D_TTL_MIN = 21
D_TTL_MAX = 22
D_LEN_SUMSQ = 23  # sum of squared payload lengths (exact integer variance)
D_BULK0 = 24  # .. 31: bulk transfer state (BULK_* offsets)
D_LEN_MIN = 32  # smallest payload, 2**62 until the first packet
D_LEN_MAX = 33

I_FWD_PKTS = I_FWD + D_PKTS
I_BWD_PKTS = I_BWD + D_PKTS
I_FWD_LAST_TS = I_FWD + D_LAST_TS
I_BWD_LAST_TS = I_BWD + D_LAST_TS
I_FWD_BYTES = I_FWD + D_BYTES
I_BWD_BYTES = I_BWD + D_BYTES
I_FWD_IP_BYTES = I_FWD + D_IP_BYTES
I_BWD_IP_BYTES = I_BWD + D_IP_BYTES
I_FWD_WIRE_BYTES = I_FWD + D_WIRE_BYTES
I_BWD_WIRE_BYTES = I_BWD + D_WIRE_BYTES
I_FWD_HDR = I_FWD + D_HDR
I_BWD_HDR = I_BWD + D_HDR
I_FWD_HDR_MIN = I_FWD + D_HDR_MIN
I_BWD_HDR_MIN = I_BWD + D_HDR_MIN
I_FWD_ACT_DATA = I_FWD + D_ACT_DATA
I_BWD_ACT_DATA = I_BWD + D_ACT_DATA
I_FWD_FLAG0 = I_FWD + D_FLAG0
I_BWD_FLAG0 = I_BWD + D_FLAG0
I_FWD_INIT_WIN = I_FWD + D_INIT_WIN
I_BWD_INIT_WIN = I_BWD + D_INIT_WIN
I_FWD_RETX = I_FWD + D_RETX
I_BWD_RETX = I_BWD + D_RETX
I_FWD_SEQ_END = I_FWD + D_SEQ_END
I_BWD_SEQ_END = I_BWD + D_SEQ_END
I_FWD_FLAGS_OR = I_FWD + D_FLAGS_OR
I_BWD_FLAGS_OR = I_BWD + D_FLAGS_OR
I_FWD_FIRST_FLAGS = I_FWD + D_FIRST_FLAGS
I_BWD_FIRST_FLAGS = I_BWD + D_FIRST_FLAGS
I_FWD_TTL_MIN = I_FWD + D_TTL_MIN
I_BWD_TTL_MIN = I_BWD + D_TTL_MIN
I_FWD_TTL_MAX = I_FWD + D_TTL_MAX
I_BWD_TTL_MAX = I_BWD + D_TTL_MAX
I_FWD_BULK0 = I_FWD + D_BULK0
I_BWD_BULK0 = I_BWD + D_BULK0
I_FWD_LEN_SUMSQ = I_FWD + D_LEN_SUMSQ
I_BWD_LEN_SUMSQ = I_BWD + D_LEN_SUMSQ
I_FWD_LEN_MIN = I_FWD + D_LEN_MIN
I_BWD_LEN_MIN = I_BWD + D_LEN_MIN
I_FWD_LEN_MAX = I_FWD + D_LEN_MAX
I_BWD_LEN_MAX = I_BWD + D_LEN_MAX
LEN_MIN_UNSET = 1 << 62

# offsets inside a bulk block
BULK_START = 0  # ts of the candidate bulk's first packet, 0 = none
BULK_LAST = 1  # ts of its last packet
BULK_CAND_PKTS = 2
BULK_CAND_BYTES = 3
BULK_COUNT = 4  # completed bulks (≥ 4 data packets)
BULK_PKTS = 5
BULK_BYTES = 6
BULK_DURATION = 7  # ns

# flag indices (for I_FWD_FLAG0 + k)
FLAG_FIN = 0
FLAG_SYN = 1
FLAG_RST = 2
FLAG_PSH = 3
FLAG_ACK = 4
FLAG_URG = 5
FLAG_ECE = 6
FLAG_CWR = 7

# TCP state bits
TCP_FWD_FIN = 1
TCP_BWD_FIN = 2
TCP_RST = 4

# ------------------------------------------------------------- float64 columns (F)
# Welford blocks: base + (N, MEAN, M2, MIN, MAX)
W_N = 0
W_MEAN = 1
W_M2 = 2
W_MIN = 3
W_MAX = 4
W_SIZE = 5

# Payload-length statistics are exact integer sums in I (count, sum, sum of squares,
# min, max per direction), from which both directions' statistics follow too; only the
# time statistics need floating point.
F_FLOW_IAT = 0  # µs between consecutive packets of the flow
F_FWD_IAT = 5
F_BWD_IAT = 10
F_ACTIVE = 15  # µs of each active period
F_IDLE = 20  # µs of each idle gap (> activity timeout)
F_NCOLS = 25

# -------------------------------------------------------------- uint64 columns (K)
K_SRC_HI = 0
K_SRC_LO = 1
K_DST_HI = 2
K_DST_LO = 3
K_NCOLS = 4

# ------------------------------------------------------------------ end reasons
END_IDLE = 1
END_ACTIVE = 2
END_FIN = 3
END_RST = 4
END_EVICTED = 5
END_EOF = 6  # still open when the capture ended (or the meter was flushed)
END_RUNNING = 7  # not ended: a snapshot of an open flow (FlowMeter.snapshot)

END_REASONS: dict[int, str] = {
    END_IDLE: "idle",
    END_ACTIVE: "active",
    END_FIN: "fin",
    END_RST: "rst",
    END_EVICTED: "evicted",
    END_EOF: "eof",
    END_RUNNING: "running",
}
