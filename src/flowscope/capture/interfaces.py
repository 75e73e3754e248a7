"""The network interfaces a live capture can use, with what a user needs to pick one.

Names and indexes come from ``socket.if_nameindex()``, the rest from
``/sys/class/net/<name>/``; addresses from ``ip -j addr`` when iproute2 is installed,
otherwise from ``/proc/net/if_inet6`` (IPv6) and the ``SIOCGIFADDR`` ioctl (the primary
IPv4 address). Nothing here needs privileges. Everything describes the network
namespace of the calling process.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import shutil
import socket
import struct
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from flowscope.capture.batch import LINKTYPE_ETHERNET, LINKTYPE_RAW
from flowscope.capture.live import ANY, capture_linktype, hatype_name

_SYS = Path("/sys/class/net")
_SIOCGIFADDR = 0x8915
_IFF_UP = 0x1
_LINKTYPE_NAMES = {LINKTYPE_ETHERNET: "ethernet", LINKTYPE_RAW: "raw-ip"}


@dataclass(slots=True)
class Interface:
    """One interface. ``kind``: device type (ARPHRD name); ``capture_linktype``: what
    packets captured on it look like (``ethernet``, ``raw-ip`` or ``linux-sll2``);
    ``up``: administratively up; ``operstate``: the kernel's operational state
    (``up``, ``down``, ``unknown`` for devices without carrier detection, ...)."""

    name: str
    index: int
    kind: str
    capture_linktype: str
    up: bool
    operstate: str
    mtu: int
    mac: str
    ipv4: list[str] = field(default_factory=list)
    ipv6: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def _int(text: str, default: int = 0) -> int:
    try:
        return int(text, 0)
    except ValueError:
        return default


def _addresses_ip() -> dict[str, tuple[list[str], list[str]]] | None:
    """name → (IPv4, IPv6) addresses with prefix length from ``ip -j addr`` (None: no ip)."""
    ip = shutil.which("ip")
    if ip is None:
        return None
    try:
        p = subprocess.run([ip, "-j", "addr", "show"], capture_output=True, text=True, timeout=5)
        data = json.loads(p.stdout) if p.returncode == 0 else None
    except (OSError, subprocess.TimeoutExpired, ValueError):
        return None
    if not isinstance(data, list):
        return None
    out: dict[str, tuple[list[str], list[str]]] = {}
    for link in data:
        if not isinstance(link, dict) or "ifname" not in link:
            continue
        v4: list[str] = []
        v6: list[str] = []
        for a in link.get("addr_info", []):
            if "local" not in a:
                continue
            text = f"{a['local']}/{a.get('prefixlen', '')}".rstrip("/")
            (v4 if a.get("family") == "inet" else v6).append(text)
        out[str(link["ifname"])] = (v4, v6)
    return out


def _ipv4_ioctl(name: str) -> list[str]:
    """The primary IPv4 address of ``name`` (no prefix length), or nothing."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            res = fcntl.ioctl(s.fileno(), _SIOCGIFADDR, struct.pack("16s24x", name.encode()))
        except OSError:
            return []
    return [socket.inet_ntoa(res[20:24])]


def _ipv6_proc() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/net/if_inet6").read_text().splitlines():
            parts = line.split()
            if len(parts) == 6:
                addr = socket.inet_ntop(socket.AF_INET6, bytes.fromhex(parts[0]))
                out.setdefault(parts[5], []).append(f"{addr}/{int(parts[2], 16)}")
    return out


def list_interfaces() -> list[Interface]:
    """Every interface of this network namespace, by index."""
    try:
        names = sorted(socket.if_nameindex())
    except OSError:
        names = [(_int(_read(d / "ifindex")), d.name) for d in sorted(_SYS.glob("*"))]
    from_ip = _addresses_ip()
    v6_proc = _ipv6_proc() if from_ip is None else {}
    result: list[Interface] = []
    for index, name in names:
        d = _SYS / name
        hatype = _int(_read(d / "type"), -1)
        lt = capture_linktype(hatype)
        if from_ip is not None:
            v4, v6 = from_ip.get(name, ([], []))
        else:
            v4, v6 = _ipv4_ioctl(name), v6_proc.get(name, [])
        result.append(
            Interface(
                name=name,
                index=index,
                kind=hatype_name(hatype) if hatype >= 0 else "unknown",
                capture_linktype=_LINKTYPE_NAMES.get(lt, "linux-sll2"),
                up=bool(_int(_read(d / "flags")) & _IFF_UP),
                operstate=_read(d / "operstate") or "unknown",
                mtu=_int(_read(d / "mtu")),
                mac=_read(d / "address"),
                ipv4=list(v4),
                ipv6=list(v6),
            )
        )
    return result


def any_interface() -> Interface:
    """The pseudo-interface ``any``: every interface at once, with cooked headers."""
    return Interface(ANY, 0, "any", "linux-sll2", True, "unknown", 0, "")
