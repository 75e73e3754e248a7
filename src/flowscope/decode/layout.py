"""Column layout of a decoded batch and the reasons a packet can be skipped.

The decoder writes one int64 row per packet (``DEC_*`` columns) and one uint64 row of
addresses (``ADDR_*``). Numba treats these module-level integers as compile-time
constants, so kernels index columns by name at no cost.
"""

# --- int64 columns of the decoded matrix ---------------------------------------------
DEC_STATUS = 0  # 0 = decoded IP packet, otherwise a SKIP_* reason
DEC_IPVER = 1
DEC_PROTO = 2  # IP protocol number (after IPv6 extension headers)
DEC_SPORT = 3  # TCP/UDP/SCTP ports; 0 for protocols without ports
DEC_DPORT = 4
DEC_IP_LEN = 5  # bytes of the IP packet per its own header (header + payload)
DEC_IP_HDR_LEN = 6  # IPv4 header incl. options / IPv6 header incl. extension headers
DEC_L4_HDR_LEN = 7  # TCP header incl. options, UDP 8, ICMP 8, SCTP 12, others 0
DEC_PAYLOAD_LEN = 8  # transport payload bytes (IP length minus all headers)
DEC_FLAGS = 9  # TCP flags byte (FIN=1 SYN=2 RST=4 PSH=8 ACK=16 URG=32 ECE=64 CWR=128)
DEC_WINDOW = 10  # TCP window field (unscaled)
DEC_SEQ = 11  # TCP sequence number
DEC_TTL = 12  # IPv4 TTL / IPv6 hop limit
DEC_FRAG = 13  # FRAG_NONE, FRAG_FIRST or FRAG_LATER
DEC_IP_ID = 14  # IPv4 identification / IPv6 fragment identification
DEC_ICMP_TYPE = 15  # -1 when not ICMP/ICMPv6
DEC_ICMP_CODE = 16
DEC_VLAN = 17  # outermost 802.1Q VLAN id, 0 when untagged
DEC_WIRELEN = 18  # original frame length on the wire
DEC_TS = 19  # capture time, ns since the epoch
DEC_NCOLS = 20

# --- uint64 address columns (IPv4 stored IPv4-mapped: ::ffff:a.b.c.d) ------------------
ADDR_SRC_HI = 0
ADDR_SRC_LO = 1
ADDR_DST_HI = 2
ADDR_DST_LO = 3
ADDR_NCOLS = 4

FRAG_NONE = 0
FRAG_FIRST = 1  # offset 0 with more-fragments set: carries the transport header
FRAG_LATER = 2  # offset > 0: no transport header, attributed via the fragment table

# --- TCP flag bits ---------------------------------------------------------------------
TCP_FIN = 0x01
TCP_SYN = 0x02
TCP_RST = 0x04
TCP_PSH = 0x08
TCP_ACK = 0x10
TCP_URG = 0x20
TCP_ECE = 0x40
TCP_CWR = 0x80

# --- why a packet did not become part of a flow ----------------------------------------
OK = 0
SKIP_NON_IP = 1  # a valid frame that carries no IP (ARP, LLDP, STP, ...): not malformed
SKIP_LINKTYPE = 2  # link-layer type the decoder does not know
SKIP_TRUNC_LINK = 3  # frame shorter than its link-layer header
SKIP_TRUNC_IP = 4  # captured bytes end inside the IP header
SKIP_BAD_IP = 5  # impossible IP header (version, header length, total length)
SKIP_TRUNC_L4 = 6  # captured bytes end inside the TCP/UDP/ICMP header (snaplen cut)
SKIP_BAD_L4 = 7  # impossible transport header (TCP data offset)
SKIP_ORPHAN_FRAGMENT = 8  # later IP fragment whose first fragment was never seen
SKIP_IP_LENGTH = 9  # IP header claims more bytes than the frame had on the wire
SKIP_NCODES = 10

SKIP_REASONS: dict[int, str] = {
    SKIP_NON_IP: "not IP",
    SKIP_LINKTYPE: "unsupported link type",
    SKIP_TRUNC_LINK: "truncated link header",
    SKIP_TRUNC_IP: "truncated IP header",
    SKIP_BAD_IP: "invalid IP header",
    SKIP_TRUNC_L4: "truncated transport header",
    SKIP_BAD_L4: "invalid transport header",
    SKIP_ORPHAN_FRAGMENT: "fragment without first fragment",
    SKIP_IP_LENGTH: "IP length beyond frame",
}
# Reasons that mean the packet itself is damaged, as opposed to simply not being IP.
MALFORMED_REASONS = frozenset(
    {SKIP_TRUNC_LINK, SKIP_TRUNC_IP, SKIP_BAD_IP, SKIP_TRUNC_L4, SKIP_BAD_L4, SKIP_IP_LENGTH}
)
