"""What every trainer returns, and the checks that hold for all of them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from flowscope.errors import FlowscopeError
from flowscope.models.bundle import Step

Proba = Callable[[npt.NDArray[np.float32]], npt.NDArray[np.float32]]

# ONNX and the native model must agree this closely on every validation row.
AGREEMENT_ATOL = 1e-4


@dataclass
class Trained:
    """A fitted model ready to become a bundle."""

    algorithm: str
    onnx: bytes
    native_proba: Proba  # raw features → probabilities, with the native library
    preprocessing: list[Step] = field(default_factory=list)
    side_files: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    explain: str = "occlusion"
    output_name: str | None = None
    info: dict[str, Any] = field(default_factory=dict)


def check_agreement(
    trained: Trained, onnx_proba: Proba, x: npt.NDArray[np.float32], limit: int = 20000
) -> float:
    """Largest |P_onnx − P_native| over (up to ``limit``) rows; raise if above tolerance."""
    rows = x[:limit]
    diff = (
        float(np.max(np.abs(onnx_proba(rows) - trained.native_proba(rows)))) if len(rows) else 0.0
    )
    if not diff <= AGREEMENT_ATOL:
        raise FlowscopeError(
            f"{trained.algorithm}: ONNX and native predictions differ by {diff:.2e} "
            f"(tolerance {AGREEMENT_ATOL:.0e}); refusing to write the bundle"
        )
    return diff
