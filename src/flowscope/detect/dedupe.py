"""Count every flow once although the live meter reports it many times.

The live meter sends snapshots of running flows about once a second and finally the
finished record. Each record is the flow's state so far, so summing records would count
a flow once per snapshot. The tracker remembers the last record of every running flow
(keyed by 5-tuple + first_seen) and, when the flow shows up again, hands the detectors a
*retraction* of that earlier record (the same row with sign −1) next to the new one.
Every detector sums signed contributions, so the net effect is exactly "the latest
record, once": counts stay at one flow, packet and byte totals follow the newest
counters, and a flow that looked half-open in a snapshot and completed its handshake
later moves from one class to the other.

A snapshot younger than the probe grace (0.5 s) is held back instead of counted: its
SYN-ACK or UDP answer may still be on the way, and "no answer yet" must not read as
"unanswered". It is released as soon as capture time makes it old enough — from the
next batch, whether or not the meter reports the flow again — or replaced by a newer
record of the flow.

Bounded: at most ``max_flows`` running flows are remembered; beyond that the one
updated longest ago (in capture time) is forgotten and counted in ``evicted``. A
forgotten flow that reappears is counted a second time, which can only make an attack
look bigger, never hide one. Entries also expire ``ttl_ns`` after their last update
(a running flow ends at the meter's idle timeout at the latest).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from flowscope.detect.frame import FlowFrame

U64 = npt.NDArray[np.uint64]
B = npt.NDArray[np.bool_]


class FlowTracker:
    def __init__(self, max_flows: int, ttl_ns: int, grace_ns: int = 0) -> None:
        self.max_flows = max_flows
        self.ttl_ns = ttl_ns
        self.grace_ns = grace_ns
        self._ids: U64 = np.zeros(0, dtype=np.uint64)  # sorted flow hashes
        self._rows = FlowFrame.empty()  # the last record of each, same order
        self._counted: B = np.zeros(0, dtype=bool)  # handed to the detectors yet?
        self.evicted = 0
        self.expired = 0
        self.retractions = 0

    def __len__(self) -> int:
        return int(self._ids.shape[0])

    def dedupe(self, frame: FlowFrame, now: int) -> FlowFrame:
        """Signed rows for the detectors: retractions of earlier snapshots, held-back
        snapshots now old enough, and the batch's records that are ready.

        Within one batch a flow keeps only its most complete record (a finished one
        over snapshots, then the latest).
        """
        if len(frame):
            ids = frame.flow_hash()
            order = np.lexsort((-frame.last, frame.active, ids))
            ids_sorted = ids[order]
            first_of_flow = np.r_[True, ids_sorted[1:] != ids_sorted[:-1]]
            if not first_of_flow.all():
                best = np.sort(order[first_of_flow])
                frame, ids = frame.take(best), ids[best]
        else:
            ids = np.zeros(0, dtype=np.uint64)
        if len(self._ids) == 0 and not frame.active.any():
            return frame  # finished flows only and nothing running: nothing to retract

        parts: list[FlowFrame] = []
        keep = np.ones(len(self._ids), dtype=bool)
        partner_of: np.ndarray = np.zeros(0, dtype=np.int64)  # frame row of each retraction
        if len(self._ids) and len(ids):
            pos = np.minimum(np.searchsorted(self._ids, ids), len(self._ids) - 1)
            is_hit = self._ids[pos] == ids
            hit = pos[is_hit]
            if len(hit):
                was_counted = self._counted[hit]
                counted = hit[was_counted]
                if len(counted):
                    old = self._rows.take(counted)
                    old.sign = -old.sign
                    old.row = np.full(len(old), -1, dtype=np.int64)
                    parts.append(old)
                    partner_of = np.flatnonzero(is_hit)[was_counted]
                    self.retractions += len(old)
                keep[hit] = False

        # Held-back snapshots that are old enough now (and not superseded above).
        ripe = keep & ~self._counted & (now - self._rows.first >= self.grace_ns)
        if ripe.any():
            idx = np.flatnonzero(ripe)
            rel = self._rows.take(idx).compact()
            rel.age = np.maximum(rel.age, now - rel.first)
            parts.append(rel)
            self._counted[idx] = True
            self._rows.age[idx] = rel.age
            self._rows.row[idx] = -1  # counted rows keep no text

        young = frame.active & (frame.age < self.grace_ns)
        running = np.flatnonzero(frame.active)
        if len(running) or not keep.all():
            added = frame.take(running)
            counted_new = ~young[running]
            added.row = np.where(counted_new, -1, added.row)
            added.pair = np.full(len(added), -1, dtype=np.int64)
            self._rebuild(keep, ids[running], added, counted_new)
        ready = np.flatnonzero(~young)
        out = frame if len(ready) == len(frame) else frame.take(ready)
        for p in reversed(parts):
            out = FlowFrame.concat(p, out)
        if len(partner_of):
            # Retractions come first; link each to its newer record, which the volume
            # rules turn into one delta over the time between the two records.
            offset = sum(len(p) for p in parts)
            at = np.searchsorted(ready, partner_of)
            ok = (at < len(ready)) & (ready[np.minimum(at, len(ready) - 1)] == partner_of)
            r = np.flatnonzero(ok)
            out.pair[r] = offset + at[ok]
            out.pair[offset + at[ok]] = r
        return out

    def expire(self, now_ns: int) -> None:
        """Forget running flows not reported for ``ttl_ns`` of capture time."""
        if len(self._ids) == 0:
            return
        stale = self._rows.last < now_ns - self.ttl_ns
        if stale.any():
            self.expired += int(stale.sum())
            self._keep(~stale)

    # ------------------------------------------------------------------ storage
    def _keep(self, mask: B) -> None:
        keep = np.flatnonzero(mask)
        self._ids = self._ids[keep]
        self._rows = self._rows.take(keep).compact()
        self._counted = self._counted[keep]

    def _rebuild(self, keep: B, ids: U64, rows: FlowFrame, counted: B) -> None:
        """One pass per batch: drop superseded entries, add the batch's running flows,
        evict beyond the cap, re-sort. Only held-back rows keep their text."""
        kept = np.flatnonzero(keep)
        all_ids = np.concatenate([self._ids[kept], ids])
        all_rows = FlowFrame.concat(self._rows.take(kept), rows)
        all_counted = np.concatenate([self._counted[kept], counted])
        order = np.argsort(all_ids, kind="stable")
        if len(all_ids) > self.max_flows:
            # Forget the flows updated longest ago (ties: the smallest hash).
            recent = np.lexsort((all_ids, -all_rows.last))[: self.max_flows]
            self.evicted += len(all_ids) - self.max_flows
            order = np.sort(recent)[np.argsort(all_ids[np.sort(recent)], kind="stable")]
        self._ids = all_ids[order]
        self._rows = all_rows.take(order).compact()
        self._counted = all_counted[order]
