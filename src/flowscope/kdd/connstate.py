"""KDD ``flag``: the Bro/Zeek connection state, derived from a finished flow's columns.

Bro names a TCP connection's fate from each endpoint's final TCP state. flowscope keeps
no state machine per endpoint, but a flow records, per direction, the OR of every TCP
flag bit seen (``fwd_tcp_flags``/``bwd_tcp_flags``), RST counts, packets and payload
bytes, which is enough for the states NSL-KDD uses. The rules, first match wins
(originator = forward = sender of the flow's first packet):

==========  =================================================================
state       rule
==========  =================================================================
REJ         responder sent RST, and the originator sent SYN but the responder
            never sent SYN; or both sent RST and no payload went either way
RSTR        responder sent RST (any other case)
RSTOS0      originator sent RST, responder never sent SYN (no SYN-ACK seen)
RSTO        originator sent RST (any other case)
SF          both sides sent FIN
SH          only the originator sent FIN, responder never sent SYN
S2          only the originator sent FIN
S3          only the responder sent FIN, and the originator sent SYN
OTH         only the responder sent FIN (no SYN from the originator)
S0          originator sent SYN and the responder sent nothing; or the
            responder answered SYN-ACK but the originator never sent ACK
            (half-open: the handshake was never completed)
S1          handshake complete (SYN, SYN-ACK, ACK), no FIN, no RST
OTH         anything else, e.g. no SYN from the originator (capture started
            mid-connection, ACK scans)
==========  =================================================================

UDP and ICMP flows are ``SF``: every UDP and ICMP record in NSL-KDD is.

Where this cannot match Bro exactly:

- Order is lost. Bro's states follow the packet sequence; flag ORs do not say whether
  the RST came before or after the FIN, or whether data preceded the handshake.
- A responder RST without any SYN from the originator is Bro's ``RSTRH``, and a
  responder FIN without one is ``SHR``. Neither occurs in NSL-KDD; they become RSTR
  and OTH.
- Half-open connections (SYN, SYN-ACK, nothing more: a spoofed SYN flood answered by
  the victim) are S0 here. Bro of the DARPA era recorded the SYN-flood connections of
  the data set (neptune) as S0; a modern Zeek would print OTH or S1.
- flowscope ends a flow at RST and at the final ACK after both FINs, and keeps it a
  short grace period for stray packets; Bro's connection can outlive a RST.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from flowscope.kdd.vocab import FLAG

_FIN, _SYN, _ACK = 0x01, 0x02, 0x10


def _col(flows: pa.Table, name: str) -> npt.NDArray[np.int64]:
    return np.asarray(flows.column(name).to_numpy(zero_copy_only=False)).astype(np.int64)


def conn_state_codes(
    protocol: npt.NDArray[np.integer],
    fwd_flags: npt.NDArray[np.integer],
    bwd_flags: npt.NDArray[np.integer],
    fwd_rst: npt.NDArray[np.integer],
    bwd_rst: npt.NDArray[np.integer],
    bwd_packets: npt.NDArray[np.integer],
    payload_bytes: npt.NDArray[np.integer],
) -> npt.NDArray[np.int16]:
    """FLAGS index per flow from per-direction flag ORs, RST counts and packet counts."""
    fwd = np.asarray(fwd_flags, np.int64)
    bwd = np.asarray(bwd_flags, np.int64)
    o_syn = (fwd & _SYN) != 0
    o_ack = (fwd & _ACK) != 0
    o_fin = (fwd & _FIN) != 0
    r_syn = (bwd & _SYN) != 0
    r_synack = r_syn & ((bwd & _ACK) != 0)
    r_fin = (bwd & _FIN) != 0
    o_rst = np.asarray(fwd_rst) > 0
    r_rst = np.asarray(bwd_rst) > 0
    r_silent = np.asarray(bwd_packets) == 0
    no_data = np.asarray(payload_bytes) == 0

    conditions = [
        r_rst & ((o_syn & ~r_syn) | (o_rst & no_data)),
        r_rst,
        o_rst & ~r_syn,
        o_rst,
        o_fin & r_fin,
        o_fin & ~r_syn,
        o_fin,
        r_fin & o_syn,
        r_fin,
        o_syn & (r_silent | (r_synack & ~o_ack)),
        o_syn & r_synack & o_ack,
    ]
    states = ["REJ", "RSTR", "RSTOS0", "RSTO", "SF", "SH", "S2", "S3", "OTH", "S0", "S1"]
    tcp = np.select(conditions, [FLAG[s] for s in states], FLAG["OTH"]).astype(np.int16)
    return np.where(np.asarray(protocol) == 6, tcp, FLAG["SF"]).astype(np.int16)


def flow_conn_states(flows: pa.Table) -> npt.NDArray[np.int16]:
    """:func:`conn_state_codes` for a flowscope flow table."""
    return conn_state_codes(
        _col(flows, "protocol"),
        _col(flows, "fwd_tcp_flags"),
        _col(flows, "bwd_tcp_flags"),
        _col(flows, "fwd_rst_flags"),
        _col(flows, "bwd_rst_flags"),
        _col(flows, "bwd_packets"),
        _col(flows, "fwd_bytes") + _col(flows, "bwd_bytes"),
    )
