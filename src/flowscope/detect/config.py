"""Detector thresholds: a pydantic model, meant to be the ``[detect]`` section of a TOML file.

Every threshold is counted over a sliding window of *capture time* (the flows' own
timestamps), so replaying a capture gives the same alerts as watching it live. Defaults
were tuned on the shared benign captures (no alert on any of them) and on the lab
training run (docs/detection.md has the numbers); each field says why it has its value.

>>> DetectConfig.model_validate(tomllib.loads(text)["detect"])
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

# UDP services that answer a small spoofed request with a large response (DNS, NTP
# monlist, SNMP, SSDP, CLDAP, memcached, chargen, …): the source ports of reflected floods.
AMPLIFICATION_PORTS = (
    17, 19, 53, 69, 111, 123, 137, 161, 389, 427, 520, 623, 1434, 1900, 3283, 3702,
    5351, 5353, 5683, 10001, 11211, 27015, 33848, 37810,
)  # fmt: skip

# TCP services with a login, where repeated short sessions mean password guessing:
# FTP, SSH, Telnet, SMTP submission, POP3, IMAP, LDAP, SMB, MSSQL, MySQL, RDP,
# PostgreSQL, VNC, Redis, and their TLS variants.
AUTH_PORTS = (
    21, 22, 23, 25, 110, 143, 389, 445, 465, 587, 636, 993, 995, 1433, 3306, 3389,
    5432, 5900, 6379,
)  # fmt: skip

# Plain-HTTP ports: web brute force and slow-connection DoS are judged on them.
HTTP_PORTS = (80, 8000, 8008, 8080, 8888)


class RuleConfig(BaseModel):
    # Frozen: a config is shared by the engine's parts and never changes under them.
    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    window_s: float = Field(default=10.0, gt=0, description="length of the sliding window (s)")


class SynFloodConfig(RuleConfig):
    """Half-open handshakes to one host (SYN without the initiator's ACK)."""

    window_s: float = Field(default=10.0, gt=0, description="sliding window (s)")
    min_half_open: int = Field(
        default=200, ge=1, description="half-open flows to one host in the window (20/s sustained)"
    )
    min_ratio: float = Field(
        default=0.5, ge=0, le=1, description="half-open ÷ all TCP flows to that host in the window"
    )
    min_per_port: float = Field(
        default=25.0,
        ge=0,
        description="half-open flows per distinct port: a flood hammers few ports, a scan "
        "touches each port once or twice (nmap decoys: ~1 per decoy)",
    )
    min_sources: int = Field(
        default=64,
        ge=1,
        description="…or this many distinct sources (spoofed floods on random ports)",
    )


class UdpFloodConfig(RuleConfig):
    """UDP packets to one host that (almost) never answers."""

    window_s: float = Field(default=10.0, gt=0, description="sliding window (s)")
    min_packets: int = Field(
        default=1500, ge=1, description="UDP packets to one host in the window"
    )
    max_response_ratio: float = Field(
        default=0.2, ge=0, description="packets back ÷ packets in; media calls and DNS answer ≈ 1"
    )
    min_per_port: float = Field(
        default=25.0, ge=0, description="packets per distinct port (not a scan)"
    )
    min_sources: int = Field(default=64, ge=1, description="…or this many distinct sources")


class AmplificationConfig(RuleConfig):
    """Unsolicited large UDP responses from amplifying services to one host."""

    window_s: float = Field(default=10.0, gt=0, description="sliding window (s)")
    min_bytes: int = Field(
        default=200_000, ge=1, description="IP bytes from amplifying service ports, unanswered"
    )
    min_reflectors: int = Field(default=5, ge=1, description="distinct reflecting servers")
    min_mean_packet: float = Field(
        default=300.0, ge=0, description="mean IP packet size: amplified answers are large"
    )
    service_ports: tuple[int, ...] = AMPLIFICATION_PORTS


class IcmpFloodConfig(RuleConfig):
    """ICMP requests (or unsolicited echo replies) to one host."""

    window_s: float = Field(default=10.0, gt=0, description="sliding window (s)")
    min_packets: int = Field(
        default=1000, ge=1, description="ICMP packets to one host in the window"
    )


class PortScanConfig(RuleConfig):
    """Vertical scan: one source probing many ports of one host."""

    window_s: float = Field(default=60.0, gt=0, description="sliding window (s)")
    min_ports: int = Field(
        default=20,
        ge=1,
        description="distinct (protocol, port) probed without success: unanswered or "
        "refused SYNs, SYN-ACKs never acknowledged, connect-and-reset, unanswered UDP",
    )
    min_failed_ratio: float = Field(
        default=0.5,
        ge=0,
        le=1,
        description="failed probes ÷ all its flows there (a scanner mostly fails)",
    )


class HostSweepConfig(RuleConfig):
    """Horizontal scan / address sweep: one source, one port, many hosts."""

    window_s: float = Field(default=60.0, gt=0, description="sliding window (s)")
    min_hosts: int = Field(
        default=32, ge=1, description="distinct hosts probed on one port (ICMP: any request)"
    )
    min_failed_ratio: float = Field(
        default=0.5,
        ge=0,
        le=1,
        description="failed probes ÷ all its flows there (a scanner mostly fails)",
    )


class StealthScanConfig(RuleConfig):
    """FIN, NULL, Xmas, ACK, window and Maimon probes of one host."""

    window_s: float = Field(default=60.0, gt=0, description="sliding window (s)")
    min_ports: int = Field(
        default=10, ge=1, description="distinct ports probed with SYN-less, payload-less packets"
    )


class BruteforceConfig(RuleConfig):
    """Many short sessions from one source to one login service."""

    window_s: float = Field(default=60.0, gt=0, description="sliding window (s)")
    min_sessions: int = Field(
        default=10, ge=1, description="short completed sessions to one login service in the window"
    )
    max_duration_s: float = Field(
        default=30.0, gt=0, description="a guess is over within this time"
    )
    max_bytes: int = Field(
        default=16384,
        ge=0,
        description="payload both ways: a guess exchanges little, a transfer a lot",
    )
    ports: tuple[int, ...] = AUTH_PORTS
    web_ports: tuple[int, ...] = HTTP_PORTS
    web_min_sessions: int = Field(
        default=40, ge=1, description="short sessions with small answers to one web server"
    )
    web_max_response_bytes: int = Field(
        default=1500, ge=0, description="an authentication failure (401/403) answer is small"
    )
    web_max_duration_s: float = Field(
        default=5.0, gt=0, description="a web guess is one quick request (slow HTTP DoS is not)"
    )


class SlowDosConfig(RuleConfig):
    """Slowloris / slow POST: many long HTTP connections that barely send."""

    window_s: float = Field(default=120.0, gt=0, description="sliding window (s)")
    min_connections: int = Field(
        default=50, ge=1, description="slow connections to one web service"
    )
    min_per_source: float = Field(
        default=10.0, ge=0, description="slow connections per distinct source (browsers open ≤ 6)"
    )
    min_age_s: float = Field(default=10.0, gt=0, description="a connection is slow once this old")
    max_fwd_rate: float = Field(
        default=100.0, ge=0, description="client payload bytes per second of connection age"
    )
    max_bwd_bytes: int = Field(
        default=1024, ge=0, description="server payload: the request never completes, so no answer"
    )
    ports: tuple[int, ...] = HTTP_PORTS


class DetectConfig(BaseModel):
    """All rule detectors, their windows, the alert lifecycle and the state bounds."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    lateness_s: float = Field(
        default=10.0,
        ge=0,
        description="how late (capture time) a flow record may arrive and still count. "
        "The live meter's snapshots keep it to a few seconds; for finished flows only "
        "(offline) use the meter's idle timeout + 10 s",
    )
    quiet_s: float = Field(
        default=30.0, gt=0, description="an incident ends after this long without a matching window"
    )
    update_interval_s: float = Field(
        default=5.0,
        ge=0,
        description="at most one update event per alert per this much capture time",
    )
    probe_grace_s: float = Field(
        default=0.5,
        ge=0,
        description="a running flow younger than this is not yet 'unanswered' (its answer "
        "may still be on the way)",
    )
    buckets_per_window: int = Field(default=10, ge=1, le=1000, description="window resolution")
    max_keys: int = Field(default=65_536, ge=16, description="keys per rule (LRU in capture time)")
    max_rows: int = Field(
        default=262_144, ge=16, description="window rows per rule (oldest dropped)"
    )
    max_tracked_flows: int = Field(
        default=262_144, ge=16, description="running flows remembered to count snapshots once"
    )
    max_active_alerts: int = Field(
        default=1024, ge=1, description="open incidents (the least recently seen ends first)"
    )

    syn_flood: SynFloodConfig = SynFloodConfig()
    udp_flood: UdpFloodConfig = UdpFloodConfig()
    amplification: AmplificationConfig = AmplificationConfig()
    icmp_flood: IcmpFloodConfig = IcmpFloodConfig()
    port_scan: PortScanConfig = PortScanConfig()
    host_sweep: HostSweepConfig = HostSweepConfig()
    stealth_scan: StealthScanConfig = StealthScanConfig()
    bruteforce: BruteforceConfig = BruteforceConfig()
    slow_dos: SlowDosConfig = SlowDosConfig()

    def for_finished_flows(self, idle_timeout_s: float = 120.0) -> DetectConfig:
        """This config for input of finished flows only (``flowscope flows`` output,
        ``extract_capture`` tables): a flow that ended idle is reported only after the
        meter's idle timeout, so it may arrive that much later than its packets."""
        return self.model_copy(update={"lateness_s": max(self.lateness_s, idle_timeout_s + 10)})
