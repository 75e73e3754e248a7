"""The ``[capture]`` ring budget becomes a ring the kernel accepts (no root needed)."""

from __future__ import annotations

import mmap

import pytest

from flowscope.capture.live import DEFAULT_BLOCK_SIZE, ring_geometry
from flowscope.config import Config, load_config


def test_default_ring_is_the_benchmarked_geometry() -> None:
    size, count = ring_geometry(Config().capture.ring_size)
    assert (size, count) == (DEFAULT_BLOCK_SIZE, 64)  # docs/benchmarks.md, Live capture


@pytest.mark.parametrize("ring", ["1MiB", "6MiB", "64MiB", "1GiB", "100MB"])
def test_ring_budget_is_whole_page_aligned_blocks(ring: str) -> None:
    budget = load_config(None, overrides={"capture.ring_size": ring}).capture.ring_size
    size, count = ring_geometry(budget)
    assert count >= 2
    assert size % mmap.PAGESIZE == 0
    assert size * count <= budget
    assert size * count > budget - size  # no more than one block's worth unused
