"""Traffic lab end to end (root): the smoke scenario, its capture, labels and teardown.

The smoke scenario runs once per session (module fixture, ~1 minute); every test then
checks one promise against its outputs. Needs root and the tools of
scripts/system-deps.sh; skips with the reason otherwise (CI runs as root with them).
"""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from flowscope.lab.netns import STATE_DIR, existing_lab_namespaces, ns_pids
from labskip import lab_skip_reason

pytestmark = pytest.mark.root


_reason = lab_skip_reason()
if _reason:
    pytestmark = [pytest.mark.root, pytest.mark.skip(reason=_reason)]

CLI = [sys.executable, "-m", "flowscope"]


def _lab_processes(runid: str) -> list[str]:
    """Command lines of processes of one lab run: in its namespaces or using its work dir."""
    found = [f"pid {pid}" for ns in _namespaces_of(runid) for pid in ns_pids(ns)]
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if str(STATE_DIR / runid) in cmd or f"fsl-{runid}" in cmd:
                found.append(cmd)
    return found


def _namespaces_of(runid: str) -> list[str]:
    return [n for n in existing_lab_namespaces() if n.startswith(f"fsl-{runid}-")]


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    out = tmp_path_factory.mktemp("lab") / "smoke"
    t0 = time.monotonic()
    p = subprocess.run(
        [*CLI, "lab", "run", "smoke", "-o", str(out)], capture_output=True, text=True, timeout=240
    )
    seconds = time.monotonic() - t0
    assert p.returncode == 0, p.stderr[-3000:]
    with open(out / "labels.csv", newline="") as f:
        labels = {r["kind"]: r for r in csv.DictReader(f)}
    lab = subprocess.run(
        [*CLI, "label", str(out), "-o", str(out / "flows.parquet")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert lab.returncode == 0, lab.stderr[-3000:]
    info = json.loads((out / "scenario.json").read_text())
    print(f"smoke run {seconds:.1f} s; label: {lab.stderr.strip()}")
    return {
        "dir": out,
        "labels": labels,
        "info": info,
        "flows": pq.read_table(out / "flows.parquet"),
    }


def _packets(pcap: Path, bpf: str, start_ns: int, end_ns: int, slack_s: float = 0.5) -> list[str]:
    """tcpdump lines matching ``bpf`` whose time lies in the window (± slack)."""
    p = subprocess.run(
        ["tcpdump", "-r", str(pcap), "-n", "-tt", bpf], capture_output=True, text=True
    )
    lo, hi = start_ns / 1e9 - slack_s, end_ns / 1e9 + slack_s
    return [ln for ln in p.stdout.splitlines() if ln and lo <= float(ln.split()[0]) <= hi]


def _window(r: dict[str, str]) -> tuple[int, int]:
    return int(r["start_ns"]), int(r["end_ns"])


def test_outputs(smoke: dict[str, object]) -> None:
    d = smoke["dir"]
    assert isinstance(d, Path)
    assert (d / "capture.pcap").stat().st_size > 1_000_000
    info = smoke["info"]
    assert isinstance(info, dict)
    assert info["seed"] == 7 and info["tool_versions"]["nmap"] != "missing"
    assert info["capture"]["dropped_by_kernel"] == 0
    labels = smoke["labels"]
    assert isinstance(labels, dict)
    assert {r["family"] for r in labels.values()} >= {"scan", "dos", "bruteforce", "web"}
    for r in labels.values():
        s, e = _window(r)
        assert e > s and r["command"] and r["start_iso"].startswith("20")


def test_syn_scan_reaches_many_ports(smoke: dict[str, object]) -> None:
    r = smoke["labels"]["syn_scan"]  # type: ignore[index]
    lines = _packets(
        smoke["dir"] / "capture.pcap",  # type: ignore[operator]
        f"src host {r['attacker_addr']} and dst host {r['victim_addr']} and tcp[13] == 2",
        *_window(r),
    )
    ports = {ln.split()[4].rsplit(".", 1)[1].rstrip(":") for ln in lines}
    assert len(ports) >= 500


def test_floods_are_floods(smoke: dict[str, object]) -> None:
    labels = smoke["labels"]
    pcap = smoke["dir"] / "capture.pcap"  # type: ignore[operator]
    r = labels["syn_flood"]  # type: ignore[index]
    syn = _packets(
        pcap,
        f"src host {r['attacker_addr']} and dst host {r['victim_addr']} and tcp[13] == 2",
        *_window(r),
    )
    assert len(syn) >= 2000
    r = labels["udp_flood_spoofed"]  # type: ignore[index]
    udp = _packets(
        pcap,
        f"udp and dst host {r['victim_addr']} and dst port 53 and not src net 10.77.0.0/24",
        *_window(r),
    )
    assert len(udp) >= 500
    assert len({ln.split()[2].rsplit(".", 1)[0] for ln in udp}) >= 400  # random sources


def test_bruteforce_and_web_connections(smoke: dict[str, object]) -> None:
    labels = smoke["labels"]
    pcap = smoke["dir"] / "capture.pcap"  # type: ignore[operator]
    r = labels["ssh_bruteforce"]  # type: ignore[index]
    ssh = _packets(
        pcap, f"src host {r['attacker_addr']} and dst port 22 and tcp[13] == 2", *_window(r)
    )
    assert len(ssh) >= 15
    r = labels["web_injection"]  # type: ignore[index]
    web = _packets(
        pcap, f"src host {r['attacker_addr']} and dst port 80 and tcp[13] == 2", *_window(r)
    )
    assert len(web) >= 20


def test_benign_clients_succeeded(smoke: dict[str, object]) -> None:
    recs = [json.loads(x) for x in (smoke["dir"] / "benign.jsonl").read_text().splitlines()]  # type: ignore[operator]
    by = Counter(r["generator"] for r in recs)
    assert by["http"] >= 10 and by["https"] >= 5 and by["dns"] >= 10 and by["ssh"] >= 2
    codes = Counter(c for r in recs if r["generator"] in ("http", "https") for c in r["status"])
    assert codes["200"] >= 20 and sum(codes.values()) == codes["200"], codes
    ftp = [c for r in recs if r["generator"] == "ftp" for c in r["status"]]
    assert ftp and set(ftp) == {"226"}
    ok = Counter(
        r["rc"] == 0 for r in recs if r["generator"] in ("dns", "ssh", "scp", "udp", "ping")
    )
    assert ok[True] >= 0.9 * sum(ok.values())


def test_labels_agree_with_packets(smoke: dict[str, object]) -> None:
    t = smoke["flows"]
    fam = Counter(t.column("family").to_pylist())  # type: ignore[attr-defined]
    ids = Counter(t.column("attack_id").to_pylist())  # type: ignore[attr-defined]
    labels = smoke["labels"]
    assert isinstance(labels, dict)
    for r in labels.values():
        assert ids[r["attack_id"]] >= 1, r["attack_id"]
    assert fam["benign"] >= 100 and fam["scan"] >= 500 and fam["dos"] >= 1000
    rows = t.select(["src_ip", "dst_ip", "label", "attack_kind"]).to_pylist()  # type: ignore[attr-defined]
    info = smoke["info"]
    assert isinstance(info, dict)
    clients = {h["addr"] for h in info["hosts"].values() if h["role"] == "client"}
    for row in rows:
        if row["src_ip"] in clients or row["dst_ip"] in clients:
            assert row["label"] == "benign", row
        if row["attack_kind"] == "syn_scan":
            assert {row["src_ip"], row["dst_ip"]} == {
                labels["syn_scan"]["attacker_addr"],
                labels["syn_scan"]["victim_addr"],
            }


def test_nothing_left_behind(smoke: dict[str, object]) -> None:
    runid = smoke["info"]["runid"]  # type: ignore[index]
    assert isinstance(runid, str)
    assert not _namespaces_of(runid)
    assert not (STATE_DIR / f"{runid}.json").exists() and not (STATE_DIR / runid).exists()
    assert not Path(f"/etc/netns/fsl-{runid}-ssh").exists()
    assert not _lab_processes(runid)


def test_sigkill_then_cleanup(tmp_path: Path) -> None:
    before = set(existing_lab_namespaces())
    p = subprocess.Popen(
        [*CLI, "lab", "run", "smoke", "-o", str(tmp_path / "killed")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert p.stderr is not None
    deadline = time.monotonic() + 60
    line = ""
    while time.monotonic() < deadline and "traffic for" not in line:
        line = p.stderr.readline()
        if not line and p.poll() is not None:
            break
    assert "traffic for" in line, "lab run did not start"
    time.sleep(6)  # servers, clients and the first attack are running
    made = set(existing_lab_namespaces()) - before
    assert len(made) >= 5
    runid = next(iter(made)).split("-")[1]
    assert ns_pids(f"fsl-{runid}-web")  # nginx is running
    p.send_signal(signal.SIGKILL)
    p.wait(timeout=10)
    c = subprocess.run([*CLI, "lab", "cleanup"], capture_output=True, text=True, timeout=60)
    assert c.returncode == 0, c.stderr
    assert not set(existing_lab_namespaces()) & made
    assert not _lab_processes(runid)
    assert not list(STATE_DIR.glob(f"{runid}*"))
    assert not list(Path("/etc/netns").glob(f"fsl-{runid}-*"))
