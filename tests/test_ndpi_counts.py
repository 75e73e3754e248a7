"""Per-flow packet and byte counts against nDPI (ndpiReader) and Suricata's netflow records.

``pcaps/ndpi/*.out`` are ndpiReader's results for the 254 captures beside them. Each flow
line gives packets and bytes per direction, where nDPI's bytes are the captured frame
length (pcap caplen; link header included) — what flowscope keeps as fwd/bwd_wire_bytes
(the original length, wirelen, which is the same unless the capture cut the frame).

nDPI prints no start time and keeps one flow per 5-tuple for a whole capture (no FIN/RST
end, and these offline runs never hit its idle purge), so flows are compared per 5-tuple:
the totals of all flowscope flows sharing it. Outcome per nDPI flow (reference.compare_ndpi):

- exact: one flow on each side, equal packets and bytes in both directions;
- split: equal totals, but flowscope cut the 5-tuple into several flows because one ended
  at the 120 s idle / 3600 s active timeout, or at RST / the last ACK after both FINs —
  its flow-boundary rules. Stragglers after a RST/FIN close (a second RST, a late ACK)
  join the closed flow during its 1 s close grace, so a RST/FIN split needs a new SYN
  on the port pair or a packet more than 1 s after the flow's last one (checked by
  test_rst_fin_splits_are_past_the_close_grace);
- missing: flowscope has no flow with nDPI's 5-tuple: nDPI reports the inner flow of a
  tunnel it decapsulates (GTP-U, VXLAN, CAPWAP, GRE), flowscope the outer one; or the
  capture's link type is one flowscope does not decode (Cisco HDLC, PPP);
- differs: totals differ: IP fragments (nDPI ignores non-first fragments, flowscope adds
  them to their flow), or a per-file cause in FILE_NOTES.

The test asserts the measured agreement (see THRESHOLDS) and that every flow that is not
exact has one of these causes. ``python tests/test_ndpi_counts.py`` prints the details.
"""

from __future__ import annotations

import itertools
import re
from collections import Counter
from functools import cache
from pathlib import Path

import pytest

from flowscope.flows.meter import MeterConfig
from reference import (
    DATA_ROOT,
    NS,
    NdpiOutcome,
    compare_ndpi,
    data_file,
    flowscope_flows,
    flowscope_summary,
    load_ndpi_out,
    our_totals,
    parse_ndpi_line,
    tunnel_of,
)

NDPI = ("pcaps", "ndpi")

# Measured on the 254 captures (2109 nDPI flows): exact 2022 (95.9 %), split 57 (2.7 %:
# 54 idle timeout, 2 RST, 1 FIN), missing 20 (18 tunnel, 2 link type), differs 10 (7 IP
# fragments, 2 FCS-less frames, 1 snaplen cut); exact or split 2079 (98.6 %). Before
# the close grace (engine cf2646e): exact 1867 (88.5 %), split 211; with close_grace=0
# the splits are 157 at RST/FIN (stragglers: a second RST, a late ACK) and 54 at the idle
# timeout; the 1 s grace leaves 3 RST/FIN splits. Asserted with a margin of a few flows.
THRESHOLDS = {"exact": 0.955, "exact_or_split": 0.985}

# Causes the test accepts for a flow that is not exact (see the module docstring).
ACCEPTED_SPLIT_ENDS = {"rst", "fin", "idle", "active"}
ACCEPTED_MISSING = re.compile(r"tunnel: (GTP-U|VXLAN|CAPWAP|GRE|TZSP)|unsupported link type")
ACCEPTED_DIFFERS = {"IP fragments"}

# file → (status, cause, number of nDPI flows, why). Causes no rule above can see.
FILE_NOTES: dict[str, tuple[str, str, int, str]] = {
    "fins.pcap": (
        "differs", "bytes", 2,
        "12 frames were captured without their 4-byte FCS (wirelen = caplen + 4): nDPI "
        "counts captured bytes, flowscope's wire_bytes the original length (+4 per frame)",
    ),
    "rsh-syslog-false-positive.pcap": (
        "differs", "packets", 1,
        "2 frames are snaplen-cut (caplen 1010 of 1084 and 1400 bytes): nDPI drops a "
        "packet whose IP datagram was not captured in full, flowscope counts it from its "
        "headers",
    ),
}  # fmt: skip

# Captures whose flows agree only because the decoder skips frames shorter on the wire
# than their IP header claims (SKIP_IP_LENGTH, 'IP length beyond frame'), as nDPI does:
# telnet.pcap's client frames #18, 32, 52, 70, 78 are 66 bytes long with IPv4 total
# lengths up to 137.
IP_LENGTH_SKIPS = {"telnet.pcap": 5}

# Link types behind the 'unsupported link type' outcomes: a decoder gap, not an nDPI quirk.
UNSUPPORTED_LINKTYPE_FILES = {"BGP_Cisco_hdlc_slarp.pcap", "dlt_ppp.pcap"}


def _captures() -> list[tuple[Path, Path]]:
    root = data_file(*NDPI)
    pairs = []
    for out in sorted(root.glob("*.out")):
        cap = out.with_name(out.name[: -len(".out")])
        if cap.exists():
            pairs.append((out, cap))
    if not pairs:
        pytest.skip(f"no nDPI .out files under {root}")
    return pairs


@cache
def _all() -> tuple[list[NdpiOutcome], dict[str, int]]:
    """Every nDPI flow's outcome, over all captures; also flowscope-only flow counts."""
    outcomes: list[NdpiOutcome] = []
    extra: dict[str, int] = {}
    for out, cap in _captures():
        res, ours_only = compare_ndpi(out, cap)
        outcomes += res
        extra[cap.name] = len(ours_only)
    return outcomes, extra


def _capture_of(o: NdpiOutcome) -> str:
    return o.ndpi.source[: -len(".out")]


def _accepted(o: NdpiOutcome) -> bool:
    if o.status == "exact":
        return True
    if o.status == "split":
        ends = set(o.cause.removeprefix("flowscope ended at ").split("+"))
        return ends <= ACCEPTED_SPLIT_ENDS
    if o.status == "missing":
        return bool(ACCEPTED_MISSING.fullmatch(o.cause))
    return o.cause in ACCEPTED_DIFFERS


def summary() -> str:
    outcomes, extra = _all()
    n = len(outcomes)
    status = Counter(o.status for o in outcomes)
    lines = [f"{n} nDPI flows in {len(extra)} captures: " + ", ".join(
        f"{k} {v} ({v / n:.1%})" for k, v in status.most_common()
    )]  # fmt: skip
    lines.append(f"flowscope-only flows (5-tuple not listed by nDPI): {sum(extra.values())}")
    causes = Counter((o.status, o.cause) for o in outcomes if o.status != "exact")
    for (s, c), v in causes.most_common():
        lines.append(f"  {v:5d}  {s:8s} {c}")
    per_file: dict[str, Counter[str]] = {}
    for o in outcomes:
        if o.status != "exact":
            per_file.setdefault(_capture_of(o), Counter())[f"{o.status}: {o.cause}"] += 1
    lines.append("captures with flows that are not exact:")
    for f, c in sorted(per_file.items()):
        lines.append(f"  {f}: " + "; ".join(f"{k} ×{v}" for k, v in c.items()))
    for o in outcomes:
        if o.status in ("differs", "missing"):
            lines.append(f"  {o.status} {o.cause}: {o.ndpi.label()} flowscope {list(o.our_counts)}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------- tests


def test_parser_reads_every_flow_line() -> None:
    """No flow line of any .out file is skipped by the parser."""
    loose = re.compile(r"^\t\d+\t\S+ .* pkts/\d+ bytes")
    total = 0
    for out, _ in _captures():
        text = out.read_text(encoding="utf-8", errors="replace").splitlines()
        lines = [x for x in text if loose.match(x)]
        flows = load_ndpi_out(out)
        assert len(flows) == len(lines), out.name
        assert all(f.protocol > 0 for f in flows), out.name
        total += len(flows)
    assert total > 2000


def test_ndpi_line_parser() -> None:
    """IPv4, bracketed IPv6, one-way flows and nDPI's '::'-twice IPv6 printing."""
    f = parse_ndpi_line(
        "\t1\tTCP 192.168.1.212:50694 <-> 90.130.70.73:21 [proto: 1/FTP_CONTROL]"
        "[41 pkts/2892 bytes <-> 27 pkts/2679 bytes][Goodput ratio: 1/2]"
    )
    assert f is not None and f.protocol == 6 and f.bidirectional
    assert (f.a_ip, f.a_port, f.b_ip, f.b_port) == ("192.168.1.212", 50694, "90.130.70.73", 21)
    assert (f.a_packets, f.a_bytes, f.b_packets, f.b_bytes) == (41, 2892, 27, 2679)
    g = parse_ndpi_line(
        "\t11\tTCP [2a01:cb01::f629]:47032 <-> [2600:1901::7a0b::]:443 [proto: 91/TLS]"
        "[20 pkts/3545 bytes <-> 21 pkts/7861 bytes]"
    )
    assert g is not None and g.b_ip == "2600:1901:0:7a0b::" and g.b_port == 443
    h = parse_ndpi_line(
        "\t3\tICMPV6 [fe80::1]:0 -> [ff02::2]:0 [proto: 102/ICMPV6][2 pkts/140 bytes -> "
        "0 pkts/0 bytes]"
    )
    assert h is not None and h.protocol == 58 and not h.bidirectional and h.b_packets == 0
    assert parse_ndpi_line("\t1\t 192.168.1.13             \t 1      ") is None


def test_bytes_are_captured_frame_bytes() -> None:
    """nDPI's bytes are frame bytes (flowscope wire_bytes), not IP bytes: among flows
    with equal packet counts, wire bytes agree for all but the FCS-less frames of
    fins.pcap, IP bytes almost never."""
    outcomes, _ = _all()
    same_packets = [o for o in outcomes if o.ours and o.ndpi_counts[:2] == o.our_counts[:2]]
    wire_ok = sum(o.ndpi_counts[2:] == o.our_counts[2:] for o in same_packets)
    assert wire_ok >= len(same_packets) - FILE_NOTES["fins.pcap"][2]
    ip_ok = sum(
        tuple(our_totals(o.ours, (o.ndpi.a_ip, o.ndpi.a_port), "ip")[2:]) == o.ndpi_counts[2:]
        for o in same_packets
    )
    assert ip_ok < 0.05 * len(same_packets)


def test_orientation_agrees() -> None:
    """nDPI's client side is flowscope's forward side (the first packet's sender)."""
    outcomes, _ = _all()
    swapped = [o.ndpi.label() for o in outcomes if o.swapped]
    assert len(swapped) <= 0.005 * len(outcomes), swapped[:10]


def test_agreement_rate() -> None:
    """Measured agreement over all flows of all captures (numbers in THRESHOLDS)."""
    outcomes, _ = _all()
    n = len(outcomes)
    exact = sum(o.status == "exact" for o in outcomes)
    split = sum(o.status == "split" for o in outcomes)
    assert exact / n >= THRESHOLDS["exact"], summary()
    assert (exact + split) / n >= THRESHOLDS["exact_or_split"], summary()


def test_every_difference_has_a_known_cause() -> None:
    """Flows that are not exact are explained by a rule or by FILE_NOTES, exactly."""
    outcomes, _ = _all()
    unexplained: Counter[str] = Counter()
    for o in outcomes:
        if not _accepted(o):
            unexplained[f"{_capture_of(o)}|{o.status}|{o.cause}"] += 1
    expected = Counter({f"{f}|{s}|{c}": n for f, (s, c, n, _) in FILE_NOTES.items()})
    assert unexplained == expected, (
        f"unexplained: {dict(unexplained - expected)}; "
        f"FILE_NOTES no longer observed: {dict(expected - unexplained)}"
    )
    link = {_capture_of(o) for o in outcomes if o.cause == "unsupported link type"}
    assert link <= UNSUPPORTED_LINKTYPE_FILES


def test_frames_shorter_than_their_ip_length_are_skipped() -> None:
    """Frames whose IP header claims more bytes than were on the wire are skipped (and
    counted), so their flows match nDPI, which drops them too."""
    outcomes, _ = _all()
    for name, n in IP_LENGTH_SKIPS.items():
        summary = flowscope_summary(data_file(*NDPI, name))
        assert summary["skipped"].get("IP length beyond frame") == n, summary
        assert {o.status for o in outcomes if _capture_of(o) == name} == {"exact"}


def test_rst_fin_splits_are_past_the_close_grace() -> None:
    """Where flowscope split an nDPI flow at RST/FIN, the next flow of the 5-tuple is a
    new connection (its first sender sent a SYN) or came more than close_grace (1 s)
    after the closed flow's last packet: no straggler escaped the grace. Measured: 3
    such splits — rtsp.pcap (a new SYN 0.5 s after the RST: port reuse), webex.pcap (a
    RST 1.08 s after the flow's last packet), edonkey.pcap (an ACK exchange 11.5 s
    after the FIN close)."""
    grace = round(MeterConfig().close_grace * NS)
    seen = []
    for o in _all()[0]:
        if o.status != "split":
            continue
        flows = sorted(o.ours, key=lambda f: f.first_seen)
        for prev, nxt in itertools.pairwise(flows):
            if str(prev["end_reason"]) not in ("rst", "fin"):
                continue
            gap = nxt.first_seen - int(prev["last_seen"])
            syn = bool(int(nxt["fwd_tcp_flags"]) & 0x02)
            assert syn or gap > grace, f"{o.ndpi.label()}: {nxt.label()} {gap} ns after"
            seen.append(_capture_of(o))
    assert sorted(seen) == ["edonkey.pcap", "rtsp.pcap", "webex.pcap"]


def test_tunnel_packets_add_up() -> None:
    """Per capture, the inner flows nDPI reports for a tunnel hold exactly the packets of
    flowscope's outer tunnel flows, and flowscope has no other flow nDPI lacks."""
    bad = []
    for out, cap in _captures():
        res, ours_only = compare_ndpi(out, cap)
        inner = sum(
            o.ndpi.a_packets + o.ndpi.b_packets
            for o in res
            if o.status == "missing" and o.cause.startswith("tunnel")
        )
        outer = sum(int(f["fwd_packets"] + f["bwd_packets"]) for f in ours_only if tunnel_of(f))
        if inner != outer or any(tunnel_of(f) is None for f in ours_only):
            bad.append(f"{cap.name}: inner {inner} outer {outer}, flowscope-only: "
                       + ", ".join(f.label() for f in ours_only))  # fmt: skip
    assert not bad, "\n".join(bad)


# --------------------------------------------------------------------------- Suricata


def _suricata_expectations(path: Path) -> list[dict[str, str]]:
    """The 'match:' blocks of a suricata-verify test.yaml (flat 'key: value' lines)."""
    blocks: list[dict[str, str]] = []
    cur: dict[str, str] | None = None
    for line in path.read_text().splitlines():
        s = line.strip()
        if s == "match:":
            cur = {}
            blocks.append(cur)
        elif cur is not None and ":" in s and not s.startswith("-"):
            k, _, v = s.partition(":")
            cur[k.strip()] = v.strip()
        elif s.startswith("-"):
            cur = None
    return blocks


def _iso_ns(text: str) -> int:
    import datetime as dt

    t = dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%f%z")
    return int(t.timestamp()) * NS + t.microsecond * 1000


def test_suricata_netflow_counts() -> None:
    """Suricata's netflow records (one per direction) of testmyids.pcap: packets and
    bytes (frame bytes, like nDPI: wire_bytes), start/end, TTL and TCP flags."""
    root = ("pcaps", "suricata_verify_netflow")
    expect = _suricata_expectations(data_file(*root, "netflow-eve.test.yaml"))
    (flow,) = flowscope_flows(data_file(*root, "testmyids.pcap"))
    assert len(expect) == 2
    for e in expect:
        fwd = (e["src_ip"], int(e["src_port"])) == (flow["src_ip"], flow["src_port"])
        d = "fwd" if fwd else "bwd"
        assert (flow["dst_ip"] if fwd else flow["src_ip"]) == e["dest_ip"]
        assert flow[f"{d}_packets"] == int(e["netflow.pkts"])
        assert flow[f"{d}_wire_bytes"] == int(e["netflow.bytes"])
        assert flow["first_seen"] == _iso_ns(e["netflow.start"])
        assert flow["last_seen"] == _iso_ns(e["netflow.end"])
        assert flow[f"{d}_ttl_min"] == int(e["netflow.min_ttl"])
        assert flow[f"{d}_tcp_flags"] == int(e["tcp.tcp_flags"], 16)
    assert flow["end_reason"] == "fin"


if __name__ == "__main__":
    if not DATA_ROOT.joinpath(*NDPI).exists():
        print(f"reference data not found under {DATA_ROOT}")
    else:
        print(summary())
