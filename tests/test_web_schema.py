"""Schemathesis against the dashboard's /openapi.json: every documented operation,
generated inputs, responses checked against the declared models and status codes.

Runs in-process (ASGI) on the real app and a store filled by replaying the shipped
sample; examples per operation are bounded so the whole file stays well under a minute.
"""

from __future__ import annotations

from collections.abc import Iterator
from importlib import resources

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from flowscope.config import load_config
from flowscope.web import DashboardState, SecurityPolicy, SensorController, create_app

SAMPLE = str(resources.files("flowscope") / "data" / "sample.pcap")
_STATE: list[DashboardState] = []


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory: pytest.TempPathFactory) -> Iterator[schemathesis.BaseSchema]:
    cfg = load_config(None, overrides={"outputs.directory": str(tmp_path_factory.mktemp("st"))})
    c = SensorController(cfg)
    c.start_replay([SAMPLE])
    assert c.wait(120) and c.state == "idle", c.error
    # schemathesis' ASGI client sends its own Host name; allow it as a loopback alias
    state = DashboardState(c, SecurityPolicy(extra_hosts=("testserver", "localhost")))
    _STATE[:] = [state]
    yield schemathesis.openapi.from_asgi("/openapi.json", create_app(state))
    c.close()


MAX_EXAMPLES = 30


def test_openapi_conformance(api_schema: schemathesis.BaseSchema) -> None:
    """Every operation: generated cases, each response validated by schemathesis' checks.

    (Driven with plain hypothesis rather than schemathesis' pytest plugin, which does
    not load under this pytest.)"""
    headers = {"X-CSRF-Token": _STATE[0].policy.csrf_token}
    ops = [r.ok() for r in api_schema.get_all_operations()]
    assert len(ops) >= 15, [o.label for o in ops]
    for op in ops:

        @given(case=op.as_strategy())
        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        def check(case: schemathesis.Case) -> None:
            case.call_and_validate(headers=headers)

        check()
