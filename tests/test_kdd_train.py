"""NSL-KDD reading, the filter's bookkeeping, a seconds-long training run and the CLI."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from capwriter import write_pcap
from flowscope.errors import FlowscopeError
from flowscope.kdd.data import SPLITS, default_data_dir, parse_lines
from flowscope.kdd.metrics import split_report
from flowscope.kdd.vocab import ATTACK_CATEGORY, FAMILIES, FLAG, KDD_FEATURES, PROTO, SERVICE
from pktbuild import ACK, RST, SYN, eth_tcp4

DATA = default_data_dir()
HAVE_DATA = all((DATA / f).is_file() for f in SPLITS.values())
NEEDS_DATA = pytest.mark.skipif(not HAVE_DATA, reason=f"NSL-KDD not present at {DATA}")

LINES = [
    "0,tcp,ftp_data,SF,491,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,2,2,0.00,0.00,0.00,0.00,1.00,"
    "0.00,0.00,150,25,0.17,0.03,0.17,0.00,0.00,0.00,0.05,0.00,normal,20\n",
    "0,tcp,private,S0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,123,6,1.00,1.00,0.00,0.00,0.05,"
    "0.07,0.00,255,26,0.10,0.05,0.00,0.00,1.00,1.00,0.00,0.00,neptune,19\n",
]


def test_parse_lines() -> None:
    s = parse_lines(LINES)
    assert s.x.shape == (2, 41)
    assert (
        s.x[0, 1] == PROTO["tcp"] and s.x[0, 2] == SERVICE["ftp_data"] and s.x[0, 3] == FLAG["SF"]
    )
    assert s.x[1, KDD_FEATURES.index("count")] == 123
    assert s.attack.tolist() == ["normal", "neptune"] and s.difficulty.tolist() == [20, 19]
    assert s.category.tolist() == ["normal", "dos"]
    assert [FAMILIES[f] for f in s.family] == ["benign", "dos"]
    with pytest.raises(FlowscopeError, match="unexpected value"):
        parse_lines([LINES[0].replace("ftp_data", "gopher2")])
    with pytest.raises(FlowscopeError, match="unknown attack type"):
        parse_lines([LINES[0].replace("normal", "novel")])


def test_attack_mapping_covers_every_label() -> None:
    assert {c for c in ATTACK_CATEGORY.values()} == {"normal", "dos", "probe", "r2l", "u2r"}
    if HAVE_DATA:
        attack_types = DATA / "attack_types.csv"
        known = {r[0]: r[1] for r in csv.reader(attack_types.read_text().splitlines()) if r}
        for attack, cat in known.items():
            if cat != "unknown":
                assert ATTACK_CATEGORY[attack] == cat


def test_filter_bookkeeping() -> None:
    attack = np.array([0, 0, 0, 1, 1, 1, 1], bool)
    groups = np.array(["normal", "normal", "normal", "dos", "dos", "probe", "probe"])
    alarm = np.array([1, 1, 0, 1, 1, 1, 0], bool)
    vetoed = np.array([1, 0, 1, 1, 0, 0, 1], bool)  # a veto on a non-alarm changes nothing
    rep = split_report(attack, groups, ["normal", "dos", "probe"], alarm, vetoed)
    assert rep["dnn"]["fp"] == 2 and rep["dnn"]["tp"] == 3
    assert rep["filter"] == {
        "false_positives_removed": 1,
        "attacks_lost": 1,
        "attacks_lost_by_group": {"dos": 1},
    }
    assert rep["filtered"]["fp"] == 1 and rep["filtered"]["tp"] == 2
    assert rep["filtered"]["groups"]["dos"]["alarm_rate"] == 0.5


@NEEDS_DATA
def test_training_smoke(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("mlxtend")
    from flowscope.kdd.detector import KddDetector
    from flowscope.kdd.features import KddRows
    from flowscope.kdd.mining import MiningConfig
    from flowscope.kdd.net import NetConfig
    from flowscope.kdd.train import train_bundle
    from flowscope.models import load_detector

    out = tmp_path / "bundle"
    rep = train_bundle(
        DATA,
        out,
        NetConfig(epochs=1, hidden=32, layers=2),
        MiningConfig(min_support=0.2, max_items=2, sample=1000),
        reference=False,
        limit=1000,
    )
    assert rep["training"]["onnx_check"]["verdict_agreement"] == 1.0
    for split in ("test", "test21"):
        r = rep["runtime_model"][split]
        assert r["rows"] == 1000 and {"dnn", "filtered", "filter"} <= set(r)
    det = load_detector(out)
    assert isinstance(det, KddDetector) and det.rules is not None
    x = parse_lines(LINES).x
    v = det.classify_rows(KddRows(x, np.ones(len(x), bool)))
    assert len(v) == 2 and v.proba.shape == (2, len(FAMILIES))
    assert (out / "report.md").read_text().startswith("# kdd-dnn")


def test_cli_features_and_errors(tmp_path: Path) -> None:
    t0 = 1_700_000_000 * 1_000_000_000
    packets = [
        (t0, eth_tcp4("10.0.0.9", "10.0.0.2", 6000, 23, SYN)),
        (t0 + 1000, eth_tcp4("10.0.0.2", "10.0.0.9", 23, 6000, RST | ACK)),
        (t0 + 2000, eth_tcp4("10.0.0.9", "10.0.0.2", 6000, 25, SYN)),
    ]
    cap = write_pcap(tmp_path / "two.pcap", packets)
    out = tmp_path / "kdd.csv"
    cmd = [sys.executable, "-m", "flowscope", "kdd", "features", str(cap), "-o", str(out)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 2
    assert list(rows[0])[:6] == [
        "capture",
        "src_ip",
        "src_port",
        "dst_ip",
        "dst_port",
        "first_seen",
    ]
    assert list(rows[0])[6:] == list(KDD_FEATURES)
    by_port = {r["dst_port"]: r for r in rows}
    assert (by_port["23"]["service"], by_port["23"]["flag"]) == ("telnet", "REJ")
    assert (by_port["25"]["service"], by_port["25"]["flag"]) == ("smtp", "S0")
    assert by_port["25"]["count"] == "2" and by_port["25"]["rerror_rate"] == "0.5"

    r = subprocess.run(
        [*cmd[:4], "features", str(tmp_path / "nope.pcap"), "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "no such capture" in r.stderr
