"""Association rules "items → normal" that veto a model's alarm, stored as JSON.

The desktop analyzer kept one Apriori rule in a pickle and matched it against features
that were never discretised the way the rule was mined, so it could not fire. Here the
discretisation travels with the rules: every numeric feature a rule mentions has its bin
edges in the file, every categorical one its vocabulary, and matching uses exactly those.

A rule matches a row when all items of its antecedent hold. Items:

- ``{"feature": "src_bytes", "bin": 2}``: ``edges[1] <= x < edges[2]`` for the feature's
  ascending edges (bin 0 is below ``edges[0]``, bin ``len(edges)`` at or above the last);
- ``{"feature": "flag", "value": "SF"}``: the row holds the code of "SF" in the feature's
  vocabulary (categorical columns of the matrix are vocabulary indices).
"""

from __future__ import annotations

import itertools
import json
import os
from pathlib import Path

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from flowscope.errors import FlowscopeError, first_problem

RULES_FORMAT = 1


class Item(BaseModel):
    model_config = ConfigDict(extra="forbid")

    feature: str
    bin: int | None = None
    value: str | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Item:
        if (self.bin is None) == (self.value is None):
            raise ValueError("an item has exactly one of 'bin' or 'value'")
        return self


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    antecedent: list[Item]
    consequent: str = "normal"
    support: float
    confidence: float
    lift: float | None = None


class RuleSet(BaseModel):
    """Rules plus the discretisation they were mined with."""

    model_config = ConfigDict(extra="forbid")

    format: int = RULES_FORMAT
    description: str = ""
    features: list[str]  # matrix columns, in order
    bins: dict[str, list[float]] = {}
    categories: dict[str, list[str]] = {}
    rules: list[Rule]

    @model_validator(mode="after")
    def _consistent(self) -> RuleSet:
        cols = set(self.features)
        for name, edges in self.bins.items():
            if name not in cols:
                raise ValueError(f"bins for unknown feature {name!r}")
            if any(b <= a for a, b in itertools.pairwise(edges)):
                raise ValueError(f"bin edges of {name!r} are not strictly ascending")
        for name in self.categories:
            if name not in cols:
                raise ValueError(f"categories for unknown feature {name!r}")
        for i, rule in enumerate(self.rules):
            if not rule.antecedent:
                raise ValueError(f"rule {i + 1} has an empty antecedent")
            for it in rule.antecedent:
                if it.bin is not None and it.feature not in self.bins:
                    raise ValueError(f"rule {i + 1}: {it.feature!r} has no bin edges")
                if it.value is not None and it.value not in self.categories.get(it.feature, []):
                    raise ValueError(f"rule {i + 1}: {it.feature}={it.value!r} not in vocabulary")
        return self

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> RuleSet:
        """Parse a rules JSON file; one-line FlowscopeError if unreadable or inconsistent."""
        try:
            raw = json.loads(Path(path).read_text(encoding="utf-8"))
            return cls.model_validate(raw)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise FlowscopeError(f"{path}: unreadable rules file: {e}") from None
        except ValidationError as e:
            raise FlowscopeError(f"{path}: invalid rules: {first_problem(e)}") from None

    def save(self, path: str | os.PathLike[str]) -> None:
        Path(path).write_text(self.model_dump_json(indent=1, exclude_none=True) + "\n", "utf-8")

    def item_codes(self, x: npt.NDArray[np.floating]) -> dict[str, npt.NDArray[np.int64]]:
        """Per referenced feature, each row's bin index or vocabulary code."""
        col = {n: j for j, n in enumerate(self.features)}
        out: dict[str, npt.NDArray[np.int64]] = {}
        for name, edges in self.bins.items():
            out[name] = np.searchsorted(np.asarray(edges), x[:, col[name]], side="right")
        for name in self.categories:
            v = x[:, col[name]]
            out[name] = np.where(np.isfinite(v), v, -1).astype(np.int64)
        return out

    def first_match(self, x: npt.NDArray[np.floating]) -> npt.NDArray[np.int32]:
        """Index of the first rule each row satisfies, or −1 (vectorised over rows)."""
        if x.ndim != 2 or x.shape[1] != len(self.features):
            raise FlowscopeError(
                f"rules expect {len(self.features)} feature columns, got shape {x.shape}"
            )
        codes = self.item_codes(x)
        hit = np.full(x.shape[0], -1, np.int32)
        for i, rule in enumerate(self.rules):
            m = hit < 0
            if not m.any():
                break
            for it in rule.antecedent:
                if it.bin is not None:
                    m &= codes[it.feature] == it.bin
                else:
                    m &= codes[it.feature] == self.categories[it.feature].index(str(it.value))
            hit[m] = i
        return hit
