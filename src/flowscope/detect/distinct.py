"""How many distinct sources, hosts or ports an incident involved, in bounded memory.

An alert reports e.g. "37,841 sources" for a spoofed flood. Keeping every source
would let a flood grow the state without bound, so the counter is exact up to
``exact_limit`` values (a sorted array of at most 8 KiB; brute force and most scans stay
below it) and then turns into a HyperLogLog sketch (Flajolet et al. 2007) of 2^p
one-byte registers (2 KiB for p = 11, standard error 1.04/√2048 ≈ 2.3 %).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from flowscope.detect.hashing import mix64

U64 = npt.NDArray[np.uint64]


class DistinctCounter:
    def __init__(self, exact_limit: int = 1024, p: int = 11) -> None:
        self.exact_limit = exact_limit
        self.p = p
        self._exact: U64 | None = np.zeros(0, dtype=np.uint64)
        self._registers: npt.NDArray[np.uint8] | None = None

    @property
    def exact(self) -> bool:
        return self._exact is not None

    def add(self, items: U64) -> None:
        if len(items) == 0:
            return
        if self._exact is not None:
            merged = np.union1d(self._exact, items.astype(np.uint64))
            if len(merged) <= self.exact_limit:
                self._exact = merged
                return
            self._exact = None
            self._registers = np.zeros(1 << self.p, dtype=np.uint8)
            items = merged
        self._add_hll(items)

    def _add_hll(self, items: U64) -> None:
        assert self._registers is not None
        h = mix64(items)
        p = np.uint64(self.p)
        idx = (h >> (np.uint64(64) - p)).astype(np.int64)
        rest = (h << p) | (np.uint64(1) << (p - np.uint64(1)))
        # leading zeros of the remaining bits + 1 (float log2: off by one only for
        # values within 2^-52 of a power of two, irrelevant for an estimate)
        rank = (64 - np.floor(np.log2(rest.astype(np.float64)))).astype(np.uint8)
        np.maximum.at(self._registers, idx, rank)

    def count(self) -> int:
        if self._exact is not None:
            return len(self._exact)
        assert self._registers is not None
        m = float(len(self._registers))
        alpha = 0.7213 / (1.0 + 1.079 / m)
        est = alpha * m * m / float(np.sum(np.exp2(-self._registers.astype(np.float64))))
        zeros = int(np.count_nonzero(self._registers == 0))
        if est <= 2.5 * m and zeros:
            est = m * math.log(m / zeros)
        return max(round(est), self.exact_limit + 1)

    def values(self) -> U64:
        """The values themselves while exact (empty once it became a sketch)."""
        return self._exact if self._exact is not None else np.zeros(0, dtype=np.uint64)


class TopSources:
    """The heaviest sources of an incident (Space-Saving, Metwally et al. 2005).

    Weighs sources by the rule's evidence (packets for floods, flows otherwise) and keeps
    ``k`` (hash → weight) entries; a newcomer replaces the smallest entry and
    inherits its count, so any source with more than 1/k of the flows is kept and its
    count is over-estimated by at most the smallest kept count. Lets an alert name the
    one attacker of a flood even when benign clients of the victim mix in, and say
    "spoofed/many" when no source stands out.
    """

    def __init__(self, k: int = 16) -> None:
        self.k = k
        self.counts: dict[int, float] = {}
        self.text: dict[int, str] = {}
        self.total = 0.0

    def add(
        self, hashes: U64, weights: npt.NDArray[np.float64], text_at: Callable[[int], str | None]
    ) -> None:
        """Add ``weights[i]`` to ``hashes[i]``; ``text_at(i)`` gives the address of
        ``hashes[i]`` (None when unknown), asked only for the heaviest of the batch."""
        if len(hashes) == 0:
            return
        uniq, first, inv = np.unique(hashes, return_index=True, return_inverse=True)
        counts = np.bincount(inv, weights=weights, minlength=len(uniq))
        self.total += float(counts.sum())
        for i in np.argsort(-counts, kind="stable")[: 2 * self.k].tolist():
            h, c = int(uniq[i]), float(counts[i])
            if h in self.counts:
                self.counts[h] += c
            elif len(self.counts) < self.k:
                self.counts[h] = c
            else:
                low = min(self.counts, key=lambda x: self.counts[x])
                base = self.counts.pop(low)
                self.text.pop(low, None)
                self.counts[h] = base + c
            if h in self.text:
                continue
            t = text_at(int(first[i]))
            if t is not None:
                self.text[h] = t

    def top(self) -> list[tuple[str, float]]:
        """(address, count) of the kept sources whose address is known, heaviest first."""
        ranked = sorted(self.counts.items(), key=lambda kv: -kv[1])
        return [(self.text[h], c) for h, c in ranked if h in self.text]
