"""The sensor configuration: shipped defaults, precedence, one-line errors, CLI."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from flowscope.config import (
    SECTIONS,
    Config,
    default_config_text,
    describe,
    dump_toml,
    env_name,
    load_config,
    parse_duration,
    parse_set_options,
    parse_size,
)
from flowscope.errors import FlowscopeError

DOCS = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "flowscope.toml"
    p.write_text(text)
    return p


def test_shipped_file_parses_to_the_defaults() -> None:
    text = default_config_text()
    assert Config.model_validate(tomllib.loads(text)) == Config()
    # Every setting appears in the shipped file (threshold commented out: unset by default).
    for row in describe():
        if row["section"] != "detect":  # [detect] is left to the rule engine's defaults
            assert re.search(rf"^#? ?{row['key']} = ", text, re.M), row["key"]


def test_defaults() -> None:
    c = load_config(env={})
    assert c.web.host == "127.0.0.1" and c.web.port == 5001
    assert c.outputs.sinks == ["logs", "eve", "sqlite"]
    assert c.outputs.dialect == "cse-cic-ids2018"
    assert c.outputs.rotate_size == 100_000_000 and c.outputs.retention_age == 7 * 86400
    assert c.capture.ring_size == 256 * 2**20
    assert c.model.threshold is None and c.detect == Config().detect


def test_precedence_flags_env_file_defaults(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        [web]
        port = 6000
        host = "0.0.0.0"
        [outputs]
        rotate_size = "10MB"
        retention_age = "2h"
        """,
    )
    env = {"FLOWSCOPE_WEB_PORT": "7000", "FLOWSCOPE_OUTPUTS_ROTATE_SIZE": "1GiB"}
    c = load_config(path, env=env, overrides={"web.port": 8000, "web.token": None})
    assert c.web.port == 8000  # flag beats environment
    assert c.outputs.rotate_size == 2**30  # environment beats file
    assert c.web.host == "0.0.0.0" and c.outputs.retention_age == 7200  # file beats defaults
    assert c.web.token == ""  # a flag left unset (None) does not override
    assert load_config(path, env=env).web.port == 7000
    assert load_config(path, env={}).web.port == 6000


def test_config_file_from_the_environment(tmp_path: Path) -> None:
    path = write(tmp_path, "[model]\nbundle = 'mine'\nthreshold = 0.7\n")
    c = load_config(env={"FLOWSCOPE_CONFIG": str(path)})
    assert c.model.bundle == "mine" and c.model.threshold == 0.7
    c = load_config(env={"FLOWSCOPE_CONFIG": str(path), "FLOWSCOPE_MODEL_THRESHOLD": ""})
    assert c.model.threshold is None  # '' clears an optional value


def test_environment_values_are_converted() -> None:
    env = {
        "FLOWSCOPE_OUTPUTS_SINKS": "eve, sqlite",
        "FLOWSCOPE_OUTPUTS_FSYNC": "false",
        "FLOWSCOPE_CAPTURE_PROMISCUOUS": "no",
        "FLOWSCOPE_FLOWS_IDLE_TIMEOUT": "90s",
        "FLOWSCOPE_FLOWS_EARLY_VERDICT_INTERVAL": "500ms",
        "FLOWSCOPE_CAPTURE_INTERFACE": "eth0",
        "FLOWSCOPE_CAPTURE_BPF": "tcp port 80",
        "FLOWSCOPE_DETECT_LATENESS_S": "5",
        "FLOWSCOPE_DETECT_SYN_FLOOD__MIN_HALF_OPEN": "300",
        "FLOWSCOPE_DETECT_BRUTEFORCE__PORTS": "22, 2222",
        "FLOWSCOPE_MODELS": "/not/a/setting",  # other flowscope variables are left alone
        "FLOWSCOPE_SHARED_DATA": "/x",
        "HOME": "/root",
    }
    c = load_config(env=env)
    assert c.outputs.sinks == ["eve", "sqlite"] and c.outputs.fsync is False
    assert c.capture.promiscuous is False and c.capture.interface == "eth0"
    assert c.capture.bpf == "tcp port 80"
    assert c.flows.idle_timeout == 90 and c.flows.early_verdict_interval == 0.5
    assert c.detect.lateness_s == 5 and c.detect.syn_flood.min_half_open == 300
    assert list(c.detect.bruteforce.ports) == [22, 2222]
    assert c.detect.syn_flood.window_s == Config().detect.syn_flood.window_s  # rest: defaults


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"env": {"FLOWSCOPE_WEB_PORT": "http"}},
         "environment variable FLOWSCOPE_WEB_PORT: [web] port: Input should be a valid integer"),
        ({"env": {"FLOWSCOPE_OUTPUTS_ROTATE_SIZ": "1"}},
         "FLOWSCOPE_OUTPUTS_ROTATE_SIZ: unknown setting [outputs] 'rotate_siz'"),
        ({"overrides": {"web.port": 0}}, "option web.port: [web] port: Input should be greater"),
        ({"overrides": {"nosuch.key": 1}}, "unknown setting 'nosuch.key'"),
        ({"overrides": {"outputs.sinks": "eve,kafka"}}, "option outputs.sinks: [outputs] sinks.1"),
        ({"overrides": {"outputs.dialect": "cic2019"}}, "unknown dialect 'cic2019'"),
        ({"overrides": {"outputs.rotate_size": "ten"}}, "invalid size 'ten'"),
        ({"overrides": {"outputs.retention_age": "-1d"}}, "invalid duration '-1d'"),
        ({"overrides": {"capture.snaplen": 10}}, "snaplen must be 0 (whole packets) or 64"),
        ({"overrides": {"model.threshold": "1.5"}}, "[model] threshold"),
        ({"overrides": {"outputs.flush_interval": "2m"}}, "[outputs] flush_interval"),
        ({"env": {"FLOWSCOPE_DETECT_SYN_FLOOD__MIN_HALF": "1"}},
         "unknown setting [detect].syn_flood 'min_half'"),
        ({"overrides": {"detect.syn_flood.min_half_open": "0"}},
         "option detect.syn_flood.min_half_open: [detect] syn_flood.min_half_open: Input should"),
        ({"overrides": {"detect.lateness_s.x": 1}}, "detect.lateness_s is not a table"),
    ],
)  # fmt: skip
def test_bad_values_are_one_line(kwargs: dict, message: str) -> None:
    kwargs.setdefault("env", {})
    with pytest.raises(FlowscopeError) as e:
        load_config(**kwargs)
    text = str(e.value)
    assert message in text and "\n" not in text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[outputs]\ndirectry = 'x'\n", "unknown setting [outputs] 'directry'"),
        ("[sensor]\nx = 1\n", "unknown section [sensor]"),
        ("port = 5\n", "'port' is outside any section; settings go under [capture]"),
        ("web = 5\n", "web must be a [web] table"),
        ("[web]\nport = 'x'\n", "flowscope.toml: [web] port: Input should be a valid integer"),
        ("[detect.syn_flood]\nmin_half_open = 'x'\n", "[detect] syn_flood.min_half_open: "),
        ("[detect]\nsyn_flod = {}\n", "unknown setting [detect] 'syn_flod'"),
        ("[web\n", "not valid TOML"),
    ],
)
def test_bad_files_are_one_line(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(FlowscopeError) as e:
        load_config(path, env={})
    assert message in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(FlowscopeError, match="cannot read config"):
        load_config(tmp_path / "missing.toml", env={})


def test_dump_reads_back(tmp_path: Path) -> None:
    c = load_config(
        env={"FLOWSCOPE_DETECT_SYN_FLOOD__ENABLED": "false"},
        overrides={"model.threshold": 0.8, "web.token": 'a"b\\c', "outputs.sinks": "eve"},
    )
    text = dump_toml(c)
    assert load_config(write(tmp_path, text), env={}) == c
    assert "[detect.syn_flood]" in text and c.detect.syn_flood.enabled is False
    assert "# threshold" in dump_toml(Config())


def test_set_options() -> None:
    assert parse_set_options(["web.port=6000", "outputs.directory = /x=y"]) == {
        "web.port": "6000",
        "outputs.directory": "/x=y",
    }
    with pytest.raises(FlowscopeError, match=r"section\.key=value"):
        parse_set_options(["port=1"])
    c = load_config(env={}, overrides={"detect.port_scan.min_ports": "5"})
    assert c.detect.port_scan.min_ports == 5


def test_units() -> None:
    assert parse_duration("10m") == 600 and parse_duration(3) == 3.0
    assert parse_duration("1.5h") == 5400 and parse_duration("2W") == 2 * 604800
    assert parse_size("512k") == 512_000 and parse_size("1MiB") == 2**20
    assert parse_size("100MB") == 10**8 and parse_size(4096) == 4096 and parse_size("2g") == 2e9
    for bad in ("", "ten", "5 parsecs", True):
        with pytest.raises(ValueError):
            parse_duration(bad)
        with pytest.raises(ValueError):
            parse_size(bad)


def test_docs_list_every_setting() -> None:
    if not DOCS.exists():
        pytest.skip("docs/configuration.md not written yet")
    text = DOCS.read_text()
    for row in describe():
        if row["section"] == "detect":  # the rule engine's keys: docs/detection.md
            continue
        assert f"`{row['key']}`" in text, row["key"]
        assert row["env"] in text, row["env"]
    for section in SECTIONS:
        assert f"[{section}]" in text
    assert env_name("outputs", "rotate_size") == "FLOWSCOPE_OUTPUTS_ROTATE_SIZE"


def test_cli_show_and_default(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from flowscope.cli.app import app

    runner = CliRunner()
    r = runner.invoke(app, ["config", "default"])
    assert r.exit_code == 0 and r.stdout == default_config_text()
    path = write(tmp_path, "[web]\nport = 6001\n")
    r = runner.invoke(
        app,
        ["config", "show", "--config", str(path), "--set", "outputs.rotate_keep=3"],
        env={"FLOWSCOPE_OUTPUTS_FSYNC": "false"},
    )
    assert r.exit_code == 0, r.output
    shown = tomllib.loads(r.stdout)
    assert shown["web"]["port"] == 6001 and shown["outputs"]["rotate_keep"] == 3
    assert shown["outputs"]["fsync"] is False
    r = runner.invoke(app, ["config", "show", "--json"])
    assert r.exit_code == 0 and '"port": 5001' in r.stdout
    out = tmp_path / "new.toml"
    r = runner.invoke(app, ["config", "default", "-o", str(out)])
    assert r.exit_code == 0 and out.read_text() == default_config_text()
    r = runner.invoke(app, ["config", "default", "-o", str(out)])
    assert isinstance(r.exception, FlowscopeError) and "not overwriting" in str(r.exception)
    r = runner.invoke(app, ["config", "keys"])
    assert r.exit_code == 0 and "FLOWSCOPE_OUTPUTS_ROTATE_SIZE" in r.stdout
    # The console script turns a bad value into one line and exit status 2.
    r2 = subprocess.run(
        [sys.executable, "-m", "flowscope", "config", "show", "--set", "web.port=x"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r2.returncode == 2
    assert r2.stderr.startswith("flowscope: error: option web.port: [web] port:")
    assert r2.stderr.count("\n") == 1
