"""Scenario files: TOML validated by pydantic, with one-line errors.

A scenario names the hosts (how many clients and attackers; the servers are fixed
roles), how busy each benign generator is, and a timeline of attacks. Everything random
in a run derives from its seed, which `scenario.json` records.
"""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from flowscope.errors import FlowscopeError

Intensity = Literal["low", "medium", "high"]

# Attack kind → family. Families: benign, scan, dos, bruteforce, web, other.
# dos = anything whose aim is to exhaust the victim: packet floods, slow-connection DoS
# (slowloris, slow body) and HTTP request floods (as CIC-IDS2017 files Slowloris,
# SlowHTTPTest and Hulk under DoS). web = attacks on the web application's logic that are
# not volumetric: injection probes and web-login brute force. bruteforce = password
# guessing against SSH/FTP. "other" is reserved for kinds that fit none of these.
FAMILIES: dict[str, str] = {
    "syn_scan": "scan",
    "connect_scan": "scan",
    "udp_scan": "scan",
    "fin_scan": "scan",
    "null_scan": "scan",
    "xmas_scan": "scan",
    "ack_scan": "scan",
    "window_scan": "scan",
    "version_scan": "scan",
    "os_scan": "scan",
    "ping_sweep": "scan",
    "syn_flood": "dos",
    "syn_flood_spoofed": "dos",
    "udp_flood": "dos",
    "udp_flood_spoofed": "dos",
    "icmp_flood": "dos",
    "icmp_flood_spoofed": "dos",
    "slowloris": "dos",
    "slow_body": "dos",
    "http_flood": "dos",
    "ssh_bruteforce": "bruteforce",
    "ssh_bruteforce_hydra": "bruteforce",
    "ftp_bruteforce": "bruteforce",
    "web_bruteforce": "web",
    "web_injection": "web",
}
ALL_FAMILIES = ("benign", "scan", "dos", "bruteforce", "web", "other")

# Fixed server roles (name → last octet). Clients are c1.., attackers a1.., gateway gw.
SERVERS: dict[str, int] = {"web": 10, "dns": 11, "ssh": 12, "ftp": 13, "misc": 14}
GATEWAY_OCTET = 1
CLIENT_BASE = 20
ATTACKER_BASE = 65


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Hosts(_Model):
    clients: int = Field(default=3, ge=1, le=20)
    attackers: int = Field(default=1, ge=1, le=5)


class Benign(_Model):
    """Mean seconds between sessions per generator (0 = off); sessions start at random.

    Exponential gaps make the timing random; sizes, names and counts are random per
    session too (see traffic.py).
    """

    http: float = Field(default=1.5, ge=0)
    https: float = Field(default=2.0, ge=0)
    dns: float = Field(default=1.0, ge=0)
    ssh: float = Field(default=10.0, ge=0)
    scp: float = Field(default=20.0, ge=0)
    ftp: float = Field(default=10.0, ge=0)
    iperf: float = Field(default=30.0, ge=0)
    ping: float = Field(default=8.0, ge=0)
    udp: float = Field(default=4.0, ge=0)
    idle_connections: int = Field(default=2, ge=0, le=20)


class Attack(_Model):
    kind: str
    at: float = Field(ge=0, description="seconds after the start of traffic")
    duration: float = Field(default=10.0, gt=0, le=600, description="longest the tool may run")
    intensity: Intensity = "medium"
    attacker: str = "a1"
    victim: str = "web"
    valid_password: bool = True  # brute force: is the lab user's password in the wordlist?

    @model_validator(mode="after")
    def _known_kind(self) -> Attack:
        if self.kind not in FAMILIES:
            raise ValueError(f"unknown attack kind {self.kind!r} (known: {', '.join(FAMILIES)})")
        return self

    @property
    def family(self) -> str:
        return FAMILIES[self.kind]


class Scenario(_Model):
    name: str
    description: str = ""
    duration: float = Field(gt=0, le=4 * 3600, description="seconds of traffic")
    seed: int = 1
    snaplen: int = Field(
        256,
        ge=0,
        le=262144,
        description="bytes kept per packet (0 = whole); flows need headers only",
    )
    subnet: str = Field(default="10.77.0", pattern=r"^10\.77\.\d{1,3}$")
    hosts: Hosts = Field(default_factory=Hosts)
    benign: Benign = Field(default_factory=Benign)
    attacks: list[Attack] = Field(default_factory=list, alias="attack")

    @model_validator(mode="after")
    def _check(self) -> Scenario:
        names = self.host_names()
        for i, a in enumerate(self.attacks):
            where = f"attack #{i + 1} ({a.kind})"
            if a.attacker not in names or not a.attacker.startswith("a"):
                raise ValueError(f"{where}: attacker {a.attacker!r} is not an attacker host")
            if a.kind != "ping_sweep" and a.victim not in names:
                raise ValueError(f"{where}: victim {a.victim!r} is not a host")
            if a.at + a.duration > self.duration:
                raise ValueError(f"{where}: ends after the scenario ({a.at}+{a.duration} s)")
        return self

    def host_names(self) -> list[str]:
        return [
            "gw",
            *SERVERS,
            *(f"c{i + 1}" for i in range(self.hosts.clients)),
            *(f"a{i + 1}" for i in range(self.hosts.attackers)),
        ]

    def host_table(self) -> list[tuple[str, str, str]]:
        """(name, last octet, role) for every host, in creation order."""
        rows = [("gw", str(GATEWAY_OCTET), "gateway")]
        rows += [(n, str(o), "server") for n, o in SERVERS.items()]
        rows += [
            (f"c{i + 1}", str(CLIENT_BASE + i + 1), "client") for i in range(self.hosts.clients)
        ]
        rows += [
            (f"a{i + 1}", str(ATTACKER_BASE + i + 1), "attacker")
            for i in range(self.hosts.attackers)
        ]
        return rows


def _one_line(e: ValidationError) -> str:
    err = e.errors()[0]
    loc = ".".join(str(x) for x in err["loc"]) or "scenario"
    msg = str(err["msg"]).removeprefix("Value error, ")
    more = f" (+{len(e.errors()) - 1} more)" if len(e.errors()) > 1 else ""
    return f"{loc}: {msg}{more}"


def builtin_scenarios() -> list[str]:
    """Names of the scenarios shipped in the package."""
    d = resources.files("flowscope.lab") / "scenarios"
    return sorted(p.name.removesuffix(".toml") for p in d.iterdir() if p.name.endswith(".toml"))


def load_scenario(spec: str) -> Scenario:
    """Load a scenario by file path or by built-in name ("smoke", "training", "holdout")."""
    path = Path(spec)
    if path.is_file():
        text, origin = path.read_text(), str(path)
    elif spec in builtin_scenarios():
        res = resources.files("flowscope.lab") / "scenarios" / f"{spec}.toml"
        text, origin = res.read_text(), f"built-in {spec}"
    else:
        raise FlowscopeError(
            f"no scenario {spec!r}: give a TOML file or one of {', '.join(builtin_scenarios())}"
        )
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise FlowscopeError(f"{origin}: not valid TOML: {e}") from None
    try:
        return Scenario.model_validate(data)
    except ValidationError as e:
        raise FlowscopeError(f"{origin}: {_one_line(e)}") from None
