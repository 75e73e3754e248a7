"""The sensor's configuration: one TOML file, overridable by environment and flags.

Sections: ``[capture]``, ``[flows]``, ``[model]``, ``[detect]`` (the rule engine's
:class:`flowscope.detect.config.DetectConfig`), ``[outputs]``, ``[web]``. Every key, its
default and its environment variable are in docs/configuration.md and
``flowscope config keys``; the commented default file ships as
``flowscope/data/flowscope.toml`` (``flowscope config default``).

Precedence, highest first, implemented once in :func:`load_config`:

1. flags: ``overrides`` (``{"outputs.directory": "/x"}``; ``--set section.key=value``,
   ``--set detect.syn_flood.min_half_open=300``),
2. environment: ``FLOWSCOPE_<SECTION>_<KEY>`` (``FLOWSCOPE_OUTPUTS_ROTATE_SIZE=1GB``;
   keys of sub-tables joined by ``__``: ``FLOWSCOPE_DETECT_SYN_FLOOD__MIN_HALF_OPEN``),
3. the TOML file (``path``, else ``$FLOWSCOPE_CONFIG`` if set, else none),
4. the defaults below.

Values from the environment and ``--set`` are text and are converted like TOML values
would be (numbers, ``true``/``false``, comma-separated lists). Durations take seconds or a
unit (``90``, ``500ms``, ``10m``, ``2h``, ``7d``); sizes take bytes or a unit (``512k``,
``100MB``, ``1GiB``; k/M/G are powers of 1000, KiB/MiB/GiB of 1024). An unknown section
or key, or a bad value, is a one-line :class:`FlowscopeError` that names where the value
came from (file, variable or flag).
"""

from __future__ import annotations

import json
import math
import os
import re
import tomllib
from collections.abc import Iterable, Mapping
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, get_origin

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator
from pydantic.fields import FieldInfo

from flowscope.detect.config import DetectConfig
from flowscope.errors import FlowscopeError
from flowscope.flows.registry import DIALECTS

if TYPE_CHECKING:
    from flowscope.sinks.rotate import FlushPolicy, Rotation
    from flowscope.sinks.store import Retention

ENV_PREFIX = "FLOWSCOPE_"
CONFIG_ENV = "FLOWSCOPE_CONFIG"

# ------------------------------------------------------------------ value types
_DURATION = re.compile(r"\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*(ms|s|m|h|d|w)?\s*", re.I)
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_SIZE = re.compile(r"\s*([0-9]*\.?[0-9]+)\s*([kmgt]i?b?|b)?\s*", re.I)
_SIZE_UNITS = {"": 1, "b": 1}
for _i, _p in enumerate("kmgt", start=1):
    _SIZE_UNITS.update({_p: 1000**_i, f"{_p}b": 1000**_i, f"{_p}ib": 1024**_i, f"{_p}i": 1024**_i})


def parse_duration(value: Any) -> float:
    """Seconds from a number or a text with a unit: ``90``, ``1.5s``, ``10m``, ``2h``, ``7d``."""
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or a text like '10m'")
    if isinstance(value, int | float):
        out = float(value)
    elif isinstance(value, str) and (m := _DURATION.fullmatch(value)):
        out = float(m.group(1)) * _DURATION_UNITS[(m.group(2) or "s").lower()]
    else:
        raise ValueError(f"invalid duration {value!r}: use seconds or a unit (500ms, 10m, 2h, 7d)")
    if not math.isfinite(out) or out < 0:
        raise ValueError(f"invalid duration {value!r}: must be a finite number ≥ 0")
    return out


def parse_size(value: Any) -> int:
    """Bytes from a number or a text with a unit: ``4096``, ``512k``, ``100MB``, ``1GiB``."""
    if isinstance(value, bool):
        raise ValueError("a size is a number of bytes or a text like '100MB'")
    if isinstance(value, int):
        out = float(value)
    elif isinstance(value, float) and math.isfinite(value):
        out = value
    elif isinstance(value, str) and (m := _SIZE.fullmatch(value)):
        out = float(m.group(1)) * _SIZE_UNITS[(m.group(2) or "").lower()]
    else:
        raise ValueError(f"invalid size {value!r}: use bytes or a unit (512k, 100MB, 1GiB)")
    if out < 0:
        raise ValueError(f"invalid size {value!r}: must be ≥ 0")
    return int(out)


Duration = Annotated[float, BeforeValidator(parse_duration)]
Size = Annotated[int, BeforeValidator(parse_size)]


def _split_list(value: Any) -> Any:
    """'logs, eve' (environment, --set) → ['logs', 'eve']."""
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return value


# ------------------------------------------------------------------ sections
class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CaptureConfig(_Section):
    """Live capture (``flowscope sensor``)."""

    interface: str = Field(
        default="",
        description="Network interface to capture on; empty = not set (give it for live use).",
    )
    bpf: str = Field(default="", description="BPF filter expression; empty = every packet.")
    snaplen: int = Field(
        default=256,
        description="Bytes kept per packet (flow features need the headers only); 0 = all.",
    )
    promiscuous: bool = Field(default=True, description="Put the interface in promiscuous mode.")
    batch_size: int = Field(
        default=4096, ge=1, le=1_000_000, description="Packets per batch handed to the flow meter."
    )
    ring_size: Size = Field(
        default=256 * 1024 * 1024,
        description="Kernel capture ring buffer (bytes or 256MiB, 1GiB …): 4 MiB blocks.",
    )

    @field_validator("snaplen")
    @classmethod
    def _snaplen(cls, v: int) -> int:
        if v != 0 and not 64 <= v <= 262144:
            raise ValueError("snaplen must be 0 (whole packets) or 64 … 262144")
        return v

    @field_validator("ring_size")
    @classmethod
    def _ring(cls, v: int) -> int:
        if v < 1 << 20:
            raise ValueError("ring_size must be at least 1MiB")
        return v


class FlowsConfig(_Section):
    """The flow meter (as ``flowscope flows``) and when open flows get a verdict."""

    idle_timeout: Duration = Field(
        default=120.0, gt=0, description="Seconds without packets that end a flow."
    )
    active_timeout: Duration = Field(
        default=3600.0, gt=0, description="A flow longer than this is ended and a new one starts."
    )
    max_flows: int = Field(
        default=1_000_000,
        ge=1,
        description="Open-flow table size; beyond it the oldest is evicted.",
    )
    early_verdict_packets: int = Field(
        default=1,
        ge=0,
        description="Packets an open flow needs before it gets early verdicts (0 or 1 = "
        "every flow, which lets the flood and scan rules see one-packet flows at once).",
    )
    early_verdict_interval: Duration = Field(
        default=1.0,
        ge=0,
        description="Capture time between snapshots of the open flows that changed, which "
        "are then classified (early verdicts); 0 = verdicts at flow end only.",
    )


class ModelConfig(_Section):
    """The model bundle that classifies flows."""

    bundle: str = Field(
        default="default", description="Bundle name (shipped or user model) or directory path."
    )
    threshold: float | None = Field(
        default=None,
        gt=0,
        le=1,
        description="Alarm threshold on the Malicious score; unset = the bundle's own.",
    )
    explain_top_k: int = Field(
        default=5, ge=0, le=50, description="Features shown per flagged flow; 0 = no explanations."
    )


Sink = Literal["logs", "eve", "sqlite"]


class OutputsConfig(_Section):
    """Where results go (docs/outputs.md)."""

    directory: Path = Field(
        default=Path("flowscope-output"),
        description="Output directory (relative to the working directory): logs/, "
        "eve.json, flowscope.db.",
    )
    sinks: Annotated[list[Sink], BeforeValidator(_split_list)] = Field(
        default=["logs", "eve", "sqlite"],
        description="Outputs to write: logs (CSV pair), eve (EVE JSON), sqlite (dashboard).",
    )
    dialect: str = Field(
        default="cse-cic-ids2018", description=f"CSV log column names: {', '.join(DIALECTS)}."
    )
    eve_flows: Literal["all", "malicious", "none"] = Field(
        default="all", description="Which flows get an EVE flow event (alerts always do)."
    )
    rotate_size: Size = Field(
        default=100_000_000, description="Rotate a log file before it passes this size; 0 = never."
    )
    rotate_interval: Duration = Field(
        default=86400.0, description="Rotate log files this long after they start; 0 = never."
    )
    rotate_keep: int = Field(
        default=10, ge=0, description="Rotated files kept per log (oldest deleted first); 0 = all."
    )
    retention_flows: int = Field(
        default=500_000, ge=0, description="Flows kept in the SQLite store; 0 = no limit."
    )
    retention_alerts: int = Field(
        default=100_000, ge=0, description="Alerts kept in the SQLite store; 0 = no limit."
    )
    retention_age: Duration = Field(
        default=7 * 86400.0, description="Store rows older than this are pruned; 0 = no limit."
    )
    flush_interval: Duration = Field(
        default=1.0, le=60, description="Longest time results wait in memory before being written."
    )
    fsync: bool = Field(
        default=True, description="Sync written data to disk (survives power loss)."
    )

    @field_validator("dialect")
    @classmethod
    def _dialect(cls, v: str) -> str:
        if v not in DIALECTS:
            raise ValueError(f"unknown dialect {v!r}; choose from {', '.join(DIALECTS)}")
        return v

    @field_validator("sinks")
    @classmethod
    def _sinks(cls, v: list[str]) -> list[str]:
        return list(dict.fromkeys(v))

    def rotation(self) -> Rotation:
        from flowscope.sinks.rotate import Rotation

        return Rotation(self.rotate_size, self.rotate_interval, self.rotate_keep)

    def retention(self) -> Retention:
        from flowscope.sinks.store import Retention

        return Retention(self.retention_flows, self.retention_alerts, self.retention_age)

    def flush_policy(self) -> FlushPolicy:
        from flowscope.sinks.rotate import FlushPolicy

        return FlushPolicy(self.flush_interval, self.fsync)


class WebConfig(_Section):
    """The dashboard's web server."""

    host: str = Field(
        default="127.0.0.1", description="Address to listen on (loopback by default)."
    )
    port: int = Field(default=5001, ge=1, le=65535, description="TCP port.")
    token: str = Field(
        default="", description="Access token for the dashboard and its API; empty = none."
    )


class Config(BaseModel):
    """The whole configuration (every section has its defaults)."""

    model_config = ConfigDict(extra="forbid")

    capture: CaptureConfig = CaptureConfig()
    flows: FlowsConfig = FlowsConfig()
    model: ModelConfig = ModelConfig()
    # The rule engine's own model (flowscope.detect.config, documented in docs/detection.md).
    detect: DetectConfig = DetectConfig.model_validate({})
    outputs: OutputsConfig = OutputsConfig()
    web: WebConfig = WebConfig()


SECTIONS: dict[str, type[BaseModel]] = {
    "capture": CaptureConfig,
    "flows": FlowsConfig,
    "model": ModelConfig,
    "detect": DetectConfig,
    "outputs": OutputsConfig,
    "web": WebConfig,
}

Path_ = tuple[str, ...]  # (section, key, sub-key, …)


def env_name(section: str, *keys: str) -> str:
    """The environment variable of a setting: ``FLOWSCOPE_OUTPUTS_ROTATE_SIZE``; nested
    keys are joined by a double underscore (``FLOWSCOPE_DETECT_SYN_FLOOD__MIN_HALF_OPEN``)."""
    return f"{ENV_PREFIX}{section.upper()}_{'__'.join(k.upper() for k in keys)}"


def _submodel(annotation: Any) -> type[BaseModel] | None:
    return (
        annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None
    )


def _field(path: Path_, source: str) -> FieldInfo:
    """The pydantic field a setting path names; a one-line error if there is none."""
    model: type[BaseModel] | None = SECTIONS.get(path[0])
    if model is None:
        raise FlowscopeError(
            f"{source}: unknown section [{path[0]}] (known: {', '.join(SECTIONS)})"
        )
    if len(path) < 2:
        raise FlowscopeError(f"{source}: [{path[0]}] is a section, not a setting")
    for i, key in enumerate(path[1:], start=1):
        if model is None:
            raise FlowscopeError(f"{source}: {'.'.join(path[:i])} is not a table")
        fields = model.model_fields
        if key not in fields:
            where = f"[{path[0]}]" + "".join(f".{k}" for k in path[1:i])
            raise FlowscopeError(
                f"{source}: unknown setting {where} {key!r} (known: {', '.join(fields)})"
            )
        field = fields[key]
        if i == len(path) - 1:
            return field
        model = _submodel(field.annotation)
    raise AssertionError("unreachable")


# ------------------------------------------------------------------ loading
class _Layers:
    """Merged raw values (nested dicts) with where each came from (for error messages)."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}
        self.source: dict[Path_, str] = {}

    def set(self, path: Path_, value: Any, source: str) -> None:
        _field(path, source)
        node = self.data
        for key in path[:-1]:
            child = node.get(key)
            if not isinstance(child, dict):
                child = node[key] = {}
            node = child
        node[path[-1]] = value
        self.source[path] = source

    def set_table(self, path: Path_, table: Mapping[str, Any], source: str) -> None:
        """Set every leaf of a TOML table, descending into sub-tables of nested models."""
        for key, value in table.items():
            sub = (*path, key)
            field = _field(sub, source)
            if isinstance(value, dict) and _submodel(field.annotation) is not None:
                self.set_table(sub, value, source)
            else:
                self.set(sub, value, source)

    def where(self, loc: Path_) -> str:
        for n in range(len(loc), 1, -1):
            if loc[:n] in self.source:
                return self.source[loc[:n]]
        return "defaults"


def _text_value(path: Path_, text: str) -> Any:
    """A setting given as text (environment, --set): '' clears an optional value, lists
    are comma-separated; pydantic converts the rest ("5", "true", "1.5", "10m")."""
    field = _field(path, "")
    if text == "" and not field.is_required() and field.default is None:
        return None
    if get_origin(field.annotation) in (list, tuple, frozenset, set):
        return [v.strip() for v in text.split(",") if v.strip()]
    return text


def _read_file(path: Path, layers: _Layers) -> None:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise FlowscopeError(f"cannot read config {path}: {e.strerror or e}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise FlowscopeError(f"{path}: not valid TOML: {e}") from None
    for section, table in data.items():
        if section in SECTIONS and not isinstance(table, dict):
            raise FlowscopeError(f"{path}: {section} must be a [{section}] table")
        if not isinstance(table, dict):
            raise FlowscopeError(
                f"{path}: {section!r} is outside any section; settings go under "
                f"{', '.join(f'[{s}]' for s in SECTIONS)}"
            )
        if section not in SECTIONS:
            raise FlowscopeError(
                f"{path}: unknown section [{section}] (known: {', '.join(SECTIONS)})"
            )
        layers.set_table((section,), table, str(path))


def _read_env(env: Mapping[str, str], layers: _Layers) -> None:
    for name in sorted(env):
        if not name.startswith(ENV_PREFIX):
            continue
        rest = name[len(ENV_PREFIX) :]
        for section in SECTIONS:
            head = section.upper() + "_"
            if rest.startswith(head) and len(rest) > len(head):
                path = (section, *(k.lower() for k in rest[len(head) :].split("__")))
                source = f"environment variable {name}"
                _field(path, source)
                layers.set(path, _text_value(path, env[name]), source)
                break


def _apply_overrides(overrides: Mapping[str, Any], layers: _Layers) -> None:
    for dotted, value in overrides.items():
        if value is None:
            continue
        path = tuple(dotted.split("."))
        if path[0] not in SECTIONS or len(path) < 2 or not all(path):
            raise FlowscopeError(
                f"unknown setting {dotted!r}: use section.key with a section of "
                f"{', '.join(SECTIONS)}"
            )
        source = f"option {dotted}"
        _field(path, source)
        layers.set(path, _text_value(path, value) if isinstance(value, str) else value, source)


def _one_line(e: ValidationError, layers: _Layers) -> str:
    err = e.errors()[0]
    loc = tuple(str(x) for x in err["loc"])
    name = f"[{loc[0]}] {'.'.join(loc[1:])}" if len(loc) > 1 else ".".join(loc) or "config"
    msg = str(err["msg"]).removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        msg = "unknown setting"
    more = f" (+{len(e.errors()) - 1} more)" if len(e.errors()) > 1 else ""
    return f"{layers.where(loc)}: {name}: {msg}{more}"


def load_config(
    path: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Config:
    """The effective configuration: defaults < file < environment < flags.

    ``path``: a TOML file (None: ``$FLOWSCOPE_CONFIG`` if set, else no file). ``env``:
    the environment to read (None: ``os.environ``; pass ``{}`` to ignore it).
    ``overrides``: ``{"section.key": value}`` from command-line flags; None values (flags
    not given) are skipped.
    """
    env = os.environ if env is None else env
    layers = _Layers()
    if path is None and env.get(CONFIG_ENV):
        path = env[CONFIG_ENV]
    if path is not None:
        _read_file(Path(path), layers)
    _read_env(env, layers)
    _apply_overrides(overrides or {}, layers)
    try:
        return Config.model_validate(layers.data)
    except ValidationError as e:
        raise FlowscopeError(_one_line(e, layers)) from None


def parse_set_options(items: Iterable[str]) -> dict[str, str]:
    """``--set section.key=value`` options → overrides for :func:`load_config`."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or "." not in key:
            raise FlowscopeError(f"--set {item!r}: use section.key=value")
        out[key.strip()] = value.strip()
    return out


# ------------------------------------------------------------------ printing
def default_config_text() -> str:
    """The commented default file shipped with the package."""
    return (resources.files("flowscope") / "data" / "flowscope.toml").read_text(encoding="utf-8")


def toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, Path):
        v = str(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, list | tuple):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{_toml_key(k)} = {toml_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(f"cannot write {type(v).__name__} as TOML")


def _toml_key(k: str) -> str:
    return k if re.fullmatch(r"[A-Za-z0-9_-]+", k) else json.dumps(k, ensure_ascii=False)


def _toml_table(lines: list[str], name: str, items: Mapping[str, Any]) -> None:
    if lines:
        lines.append("")
    lines.append(f"[{name}]")
    tables = []
    for key, v in items.items():
        if isinstance(v, dict):
            tables.append((key, v))
        elif v is None:
            lines.append(f"# {_toml_key(key)} =  (unset)")
        else:
            lines.append(f"{_toml_key(key)} = {toml_value(v)}")
    for key, v in tables:
        _toml_table(lines, f"{name}.{_toml_key(key)}", v)


def dump_toml(config: Config) -> str:
    """The configuration as TOML that :func:`load_config` reads back to the same values
    (unset optional values are written as comments)."""
    lines: list[str] = []
    for section in SECTIONS:
        _toml_table(lines, section, getattr(config, section).model_dump(mode="json"))
    return "\n".join(lines) + "\n"


def describe() -> list[dict[str, Any]]:
    """Every setting: section, key (dotted below the section), default, environment
    variable, description."""
    rows: list[dict[str, Any]] = []

    def walk(section: str, model: type[BaseModel], value: BaseModel, keys: Path_) -> None:
        for key, field in model.model_fields.items():
            sub = _submodel(field.annotation)
            current = getattr(value, key)
            if sub is not None:
                walk(section, sub, current, (*keys, key))
                continue
            rows.append(
                {
                    "section": section,
                    "key": ".".join((*keys, key)),
                    "default": current,
                    "env": env_name(section, *keys, key),
                    "description": field.description or "",
                }
            )

    defaults = Config()
    for section, model in SECTIONS.items():
        walk(section, model, getattr(defaults, section), ())
    return rows
