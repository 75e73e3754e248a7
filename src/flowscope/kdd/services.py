"""KDD ``service`` of a flow: destination port (TCP/UDP) or ICMP message type.

NSL-KDD names 70 services. Their ports are the IANA well-known assignments the names
refer to (e.g. ``finger`` 79, ``Z39_50`` 210, ``http_8001`` 8001). Two names have no
port we can defend (``harvest``, ``pm_dump``: the dataset's documentation does not say
which port Bro gave them), so flowscope never produces them.

Unnamed ports follow what the dataset shows: SNMP (udp/161) attacks are ``private``
and scans of high ports are ``other``, so an unnamed port below 1024 is ``private``
and one at or above 1024 is ``other``. UDP has only three named services in NSL-KDD
(``domain_u``, ``ntp_u``, ``tftp_u``); every other UDP port is ``private``/``other``.

ICMP services are named after the message: echo request ``eco_i``, echo reply
``ecr_i``, port unreachable ``urp_i``, other unreachables ``urh_i``, redirect
``red_i``, and ``tim_i`` for the time-related messages (time exceeded, timestamp
request/reply; the name does not say which, so both map there). ICMPv6 messages map to
the same names. Other ICMP types have no KDD name and become ``other``.

Lookups are two 65,536-entry code tables (one per transport), so mapping a batch is one
numpy gather, whatever its size.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from flowscope.kdd.vocab import SERVICE

_TCP_PORTS: dict[str, tuple[int, ...]] = {
    "rje": (5, 77),  # IANA: 5 rje, 77 any private RJE service
    "echo": (7,),
    "discard": (9,),
    "systat": (11,),
    "daytime": (13,),
    "netstat": (15,),
    "ftp_data": (20,),
    "ftp": (21,),
    "ssh": (22,),
    "telnet": (23,),
    "smtp": (25,),
    "time": (37,),
    "name": (42,),
    "whois": (43,),
    "domain": (53,),
    "mtp": (57,),
    "gopher": (70,),
    "remote_job": (71, 72, 73, 74),
    "finger": (79,),
    "http": (80,),
    "ctf": (84,),
    "supdup": (95,),
    "hostnames": (101,),
    "iso_tsap": (102,),
    "csnet_ns": (105,),
    "pop_2": (109,),
    "pop_3": (110,),
    "sunrpc": (111,),
    "auth": (113,),
    "uucp_path": (117,),
    "nntp": (119,),
    "netbios_ns": (137,),
    "netbios_dgm": (138,),
    "netbios_ssn": (139,),
    "imap4": (143,),
    "sql_net": (150,),
    "vmnet": (175,),
    "bgp": (179,),
    "IRC": (194, 6665, 6666, 6667, 6668, 6669),
    "Z39_50": (210,),
    "link": (245,),
    "ldap": (389,),
    "nnsp": (433,),
    "http_443": (443,),
    "exec": (512,),
    "login": (513,),
    "shell": (514,),
    "printer": (515,),
    "efs": (520,),
    "courier": (530,),
    "uucp": (540,),
    "klogin": (543,),
    "kshell": (544,),
    "http_2784": (2784,),
    "aol": (5190,),
    "X11": tuple(range(6000, 6064)),
    "http_8001": (8001,),
}
_UDP_PORTS: dict[str, tuple[int, ...]] = {
    "domain_u": (53,),
    "tftp_u": (69,),
    "ntp_u": (123,),
}

# ICMP (type, code or -1 for any code) → service; ICMPv6 in the second table.
_ICMP: dict[tuple[int, int], str] = {
    (8, -1): "eco_i",
    (0, -1): "ecr_i",
    (3, 3): "urp_i",
    (3, -1): "urh_i",
    (5, -1): "red_i",
    (11, -1): "tim_i",
    (13, -1): "tim_i",
    (14, -1): "tim_i",
}
_ICMP6: dict[tuple[int, int], str] = {
    (128, -1): "eco_i",
    (129, -1): "ecr_i",
    (1, 4): "urp_i",
    (1, -1): "urh_i",
    (137, -1): "red_i",
    (3, -1): "tim_i",
}


def _port_table(named: dict[str, tuple[int, ...]]) -> npt.NDArray[np.int16]:
    table = np.full(65536, SERVICE["other"], np.int16)
    table[:1024] = SERVICE["private"]
    for name, ports in named.items():
        table[list(ports)] = SERVICE[name]
    return table


def _icmp_table(entries: dict[tuple[int, int], str]) -> npt.NDArray[np.int16]:
    """(type × 256 + code) → service code; "any code" entries first, exact ones win."""
    table = np.full(65536, SERVICE["other"], np.int16)
    for (typ, code), name in sorted(entries.items(), key=lambda kv: kv[0][1]):
        if code < 0:
            table[typ * 256 : typ * 256 + 256] = SERVICE[name]
        else:
            table[typ * 256 + code] = SERVICE[name]
    return table


TCP_SERVICE = _port_table(_TCP_PORTS)
UDP_SERVICE = _port_table(_UDP_PORTS)
ICMP_SERVICE = _icmp_table(_ICMP)
ICMP6_SERVICE = _icmp_table(_ICMP6)


def service_codes(
    protocol: npt.NDArray[np.integer],
    dst_port: npt.NDArray[np.integer],
    icmp_type: npt.NDArray[np.integer],
    icmp_code: npt.NDArray[np.integer],
) -> npt.NDArray[np.int16]:
    """SERVICES index per flow (``other`` for protocols KDD does not know)."""
    proto = np.asarray(protocol, np.int64)
    port = np.clip(np.asarray(dst_port, np.int64), 0, 65535)
    msg = np.clip(np.asarray(icmp_type, np.int64), 0, 255) * 256 + np.clip(
        np.asarray(icmp_code, np.int64), 0, 255
    )
    out = np.full(proto.shape, SERVICE["other"], np.int16)
    for number, table, key in (
        (6, TCP_SERVICE, port),
        (17, UDP_SERVICE, port),
        (1, ICMP_SERVICE, msg),
        (58, ICMP6_SERVICE, msg),
    ):
        m = proto == number
        out[m] = table[key[m]]
    return out
