"""Why a traffic-lab test cannot run here (shared by every test module that builds a lab)."""

from __future__ import annotations

import os


def lab_skip_reason() -> str | None:
    """None when the lab can run: root (namespaces, raw sockets) and every tool present."""
    if os.geteuid() != 0:
        return "the traffic lab needs root (network namespaces, raw sockets)"
    from flowscope.lab.runner import missing_tools

    miss = missing_tools()
    if miss:
        return f"lab tools missing: {', '.join(miss)} (scripts/system-deps.sh)"
    return None
