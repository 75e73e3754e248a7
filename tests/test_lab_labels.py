"""Lab scenario files and flow labelling, without root: validation, rules, shared captures."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from flowscope.errors import FlowscopeError
from flowscope.lab.labels import Window, label_inputs, label_table, load_mapping
from flowscope.lab.scenario import FAMILIES, builtin_scenarios, load_scenario

PCAPS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "pcaps"


def test_builtin_scenarios_load() -> None:
    assert {"smoke", "training"} <= set(builtin_scenarios())
    smoke = load_scenario("smoke")
    assert smoke.duration <= 60
    assert {a.family for a in smoke.attacks} >= {"scan", "dos", "bruteforce", "web"}
    train = load_scenario("training")
    assert 30 * 60 <= train.duration <= 60 * 60
    kinds = [a.kind for a in train.attacks]
    assert set(kinds) == set(FAMILIES)
    for k in FAMILIES:  # several times, at different intensities
        assert kinds.count(k) >= 2
        assert len({a.intensity for a in train.attacks if a.kind == k}) >= 2


@pytest.mark.parametrize(
    ("text", "msg"),
    [
        ("name='x'\nduration=10\n[[attack]]\nkind='nope'\nat=1", "unknown attack kind 'nope'"),
        (
            "name='x'\nduration=10\n[[attack]]\nkind='syn_scan'\nat=8\nduration=5",
            "ends after the scenario",
        ),
        (
            "name='x'\nduration=10\n[[attack]]\nkind='syn_scan'\nat=1\nvictim='mars'",
            "victim 'mars'",
        ),
        ("name='x'\nduration=10\ncolour='red'", "colour: Extra inputs are not permitted"),
        ("name='x'\nduration=", "not valid TOML"),
        ("name='x'\nduration=10\n[benign]\nhttp=-1", "benign.http"),
    ],
)
def test_bad_scenarios_are_one_line(tmp_path: Path, text: str, msg: str) -> None:
    f = tmp_path / "bad.toml"
    f.write_text(text)
    with pytest.raises(FlowscopeError) as e:
        load_scenario(str(f))
    assert msg in str(e.value) and "\n" not in str(e.value)


def _flows(rows: list[tuple[str, str, int, int, int, int, int]]) -> pa.Table:
    cols = list(zip(*rows, strict=True))
    return pa.table(
        {
            "src_ip": pa.array(cols[0], pa.string()),
            "dst_ip": pa.array(cols[1], pa.string()),
            "src_port": pa.array(cols[2], pa.int32()),
            "dst_port": pa.array(cols[3], pa.int32()),
            "protocol": pa.array(cols[4], pa.int32()),
            "first_seen": pa.array(cols[5], pa.int64()),
            "last_seen": pa.array(cols[6], pa.int64()),
        }
    )


S = 1_000_000_000


def test_label_rules() -> None:
    a, v, c = "10.77.0.66", "10.77.0.10", "10.77.0.21"
    wins = [
        Window("A001", "syn_scan", "scan", a, v, protocol="tcp", start_ns=100 * S, end_ns=110 * S),
        Window(
            "A002",
            "syn_flood_spoofed",
            "dos",
            a,
            v,
            frozenset({80}),
            "tcp",
            True,
            200 * S,
            210 * S,
            lab_hosts=frozenset({v, c}),
        ),
        Window("A003", "ping_sweep", "scan", a, "10.77.0.0/23", start_ns=300 * S, end_ns=305 * S),
    ]
    t = _flows(
        [
            (a, v, 4000, 22, 6, 101 * S, 101 * S),  # scan
            (v, a, 22, 4000, 6, 110 * S + S // 2, 111 * S),  # reply within slack
            (a, v, 4001, 80, 6, 150 * S, 151 * S),  # attacker outside its windows: benign
            (c, v, 5000, 80, 6, 105 * S, 106 * S),  # a client during the scan: benign
            ("1.2.3.4", v, 999, 80, 6, 201 * S, 201 * S),  # spoofed SYN
            (c, v, 5001, 80, 6, 202 * S, 203 * S),  # real client during the flood: benign
            ("5.6.7.8", v, 999, 443, 6, 201 * S, 201 * S),  # other port: benign
            (a, "10.77.1.9", 0, 0, 1, 301 * S, 301 * S),  # sweep beyond the /24
            (a, "10.77.5.9", 0, 0, 1, 301 * S, 301 * S),  # outside the swept range
        ]
    )
    out = label_table(t, wins, slack_ns=1 * S)
    assert out.column("attack_id").to_pylist() == [
        "A001",
        "A001",
        "",
        "",
        "A002",
        "",
        "",
        "A003",
        "",
    ]
    assert out.column("label").to_pylist()[:3] == ["malicious", "malicious", "benign"]
    assert out.column("family").to_pylist()[4] == "dos"
    assert out.column("attack_kind").to_pylist()[2] == "benign"


def test_mapping_is_valid() -> None:
    m = load_mapping()
    assert "ndpi" in m.benign_folders and "benign" in m.benign_folders
    assert {w.family for w in m.captures.values()} == {"scan", "dos", "bruteforce", "web"}
    if PCAPS.is_dir():
        for key in m.captures:
            assert (PCAPS / key).is_file(), key


@pytest.mark.skipif(not PCAPS.is_dir(), reason=f"shared captures not present at {PCAPS}")
def test_shared_pcaps_labelling(tmp_path: Path) -> None:
    inputs = [
        PCAPS / "scans" / "ef_nmap_TCP_SYN_SCAN.pcap",
        PCAPS / "dos" / "stopddos_synflood_spoofed.pcap",
        PCAPS / "bruteforce" / "zeek_ftp_bruteforce.pcap",
        PCAPS / "web" / "cicids2017_WebattackSQLinj.pcap",
        PCAPS / "ndpi" / "ftp.pcap",
    ]
    out = tmp_path / "flows.parquet"
    counts = label_inputs(inputs, str(out))
    assert counts["scan"] >= 900 and counts["dos"] >= 10_000
    assert counts["bruteforce"] >= 20 and counts["web"] >= 1 and counts["benign"] >= 2
    t = pq.read_table(out)
    by_cap: dict[str, set[str]] = {}
    for cap, fam in zip(
        t.column("capture").to_pylist(), t.column("family").to_pylist(), strict=True
    ):
        by_cap.setdefault(cap, set()).add(fam)
    assert by_cap["ftp.pcap"] == {"benign"}
    assert "scan" in by_cap["ef_nmap_TCP_SYN_SCAN.pcap"]
    with pytest.raises(FlowscopeError, match="not in the capture mapping"):
        label_inputs([PCAPS / "dos" / "stopddos_README.md"], str(tmp_path / "x.parquet"))


def test_lab_run_without_root_is_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from flowscope.lab import netns
    from flowscope.lab.runner import run_scenario

    monkeypatch.setattr(netns.os, "geteuid", lambda: 1000)
    with pytest.raises(FlowscopeError, match="needs root"):
        run_scenario(load_scenario("smoke"), tmp_path / "run")
    assert not (tmp_path / "run").exists()


@pytest.mark.skipif(not PCAPS.is_dir(), reason="../shared/data is not present")
def test_unknown_background_is_labelled_unknown(tmp_path: Path) -> None:
    """The one-way DDoS capture's unsolicited background is neither benign nor attack."""
    out = tmp_path / "amp.parquet"
    counts = label_inputs([PCAPS / "dos" / "stopddos_amp_dns_rrsig.pcap"], str(out))
    assert set(counts) == {"dos", "unknown"} and counts["unknown"] > 250
    t = pq.read_table(out)
    dos = [r for r in t.to_pylist() if r["family"] == "dos"]
    assert all(r["protocol"] == 17 and "10.10.10.10" in (r["src_ip"], r["dst_ip"]) for r in dos)
