"""Hypothesis profiles: the test gate is reproducible, bug hunting is a separate run.

`make test` (CI) loads ``gate``: every property test draws the same examples on every
run, so a red build means the change broke something, not that a new random example
turned up an old bug. ``make fuzz`` loads ``explore``: fresh random examples on each
of several runs, to hunt for those bugs; a failure prints the blob that replays it.
Both keep each test's own ``max_examples`` (chosen for its cost).
"""

from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("gate", derandomize=True, database=None, print_blob=True)
settings.register_profile("explore", derandomize=False, print_blob=True)
settings.load_profile(os.environ.get("FLOWSCOPE_HYPOTHESIS", "gate"))
