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
I_PROTO = 0
I_SPORT = 1  # forward direction = sender of the flow's first packet
I_DPORT = 2
I_IPVER = 3
I_HASH = 4  # hash of the direction-independent key, to relocate entries in the index
I_FIRST_TS = 5  # ns
I_LAST_TS = 6
I_FWD_LAST_TS = 7
I_BWD_LAST_TS = 8
I_CONN_START = 9  # first packet of the connection (survives active-timeout splits)
I_FWD_PKTS = 10
I_BWD_PKTS = 11
I_FWD_BYTES = 12  # transport payload bytes
I_BWD_BYTES = 13
I_FWD_IP_BYTES = 14  # IP packet bytes (headers + payload)
I_BWD_IP_BYTES = 15
I_FWD_WIRE_BYTES = 16  # frame bytes on the wire (link layer included)
I_BWD_WIRE_BYTES = 17
I_FWD_HDR = 18  # transport header bytes
I_BWD_HDR = 19
# per-direction TCP flag counters: base + flag index (FIN, SYN, RST, PSH, ACK, URG, ECE, CWR)
I_FWD_FLAG0 = 20  # .. 27
I_BWD_FLAG0 = 28  # .. 35
I_FWD_INIT_WIN = 36  # -1 until the direction's first TCP packet
I_BWD_INIT_WIN = 37
I_FWD_ACT_DATA = 38  # packets with ≥ 1 byte of transport payload
I_BWD_ACT_DATA = 39
I_FWD_HDR_MIN = 40  # smallest transport header seen (CIC "Seg Size Min"), -1 = none
I_BWD_HDR_MIN = 41
I_ICMP_TYPE = 42  # of the first ICMP packet, -1 otherwise
I_ICMP_CODE = 43
I_FWD_RETX = 44  # TCP retransmissions (data segments ending at or before the highest end seen)
I_BWD_RETX = 45
I_FWD_SEQ_END = 46  # highest seq + payload seen (32-bit serial arithmetic), -1 = unset
I_BWD_SEQ_END = 47
I_TCP_STATE = 48  # bit 0: fwd FIN, bit 1: bwd FIN, bit 2: RST seen
I_END_REASON = 49
I_SUBFLOWS = 50  # number of gaps > 1 s (subflows = gaps + 1)
I_ACTIVE_START = 51
I_ACTIVE_END = 52
I_FWD_FLAGS_OR = 53  # OR of TCP flags per direction
I_BWD_FLAGS_OR = 54
I_FWD_FIRST_FLAGS = 55  # flags of the first packet in each direction (-1 = none)
I_BWD_FIRST_FLAGS = 56
I_VLAN = 57
I_FRAGMENTS = 58  # later IP fragments attributed to this flow
I_FWD_TTL_MIN = 59
I_FWD_TTL_MAX = 60
I_BWD_TTL_MIN = 61
I_BWD_TTL_MAX = 62
# bulk transfer state, per direction: base + offset
I_FWD_BULK0 = 63  # .. 70
I_BWD_BULK0 = 71  # .. 78
I_NCOLS = 79

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

F_FWD_LEN = 0  # transport payload bytes per forward packet
F_BWD_LEN = 5
F_ALL_LEN = 10
F_FLOW_IAT = 15  # µs between consecutive packets of the flow
F_FWD_IAT = 20
F_BWD_IAT = 25
F_ACTIVE = 30  # µs of each active period
F_IDLE = 35  # µs of each idle gap (> activity timeout)
F_NCOLS = 40

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

END_REASONS: dict[int, str] = {
    END_IDLE: "idle",
    END_ACTIVE: "active",
    END_FIN: "fin",
    END_RST: "rst",
    END_EVICTED: "evicted",
    END_EOF: "eof",
}
