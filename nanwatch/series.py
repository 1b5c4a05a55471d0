"""A bounded series of records (step records, a layer's history points): a run of any length keeps
a sample of fixed size, with every anomaly at full resolution.

What it keeps, in order (each record once):
- the first `head` records, whole (the dynamics' baselines, the first updates);
- the last `tail` records, whole (the trend into a NaN: the diagnosis reads the steps before it);
- between them, one record in `stride`, the stride doubling whenever that sample reaches
  2 x `middle` records (so it holds between `middle` and 2 x `middle`);
- notable records with their neighbour before and after, at most `notable` of them, the strongest
  first: a non-finite value in any field, or a value `factor` times above its running level (a
  moving average of its logarithm); when more are found, the weakest (and among non-finite ones,
  the latest) make room;
- the neighbourhood of the first non-finite record (`nan_window` records before and after it),
  never dropped, even when the run goes on (--no-stop).

Appending costs O(1) (amortised): no list is scanned, sorted or copied per record; `records()`
builds the list in O(kept). TensorFlow-free (the report and the diagnosis use it).
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections import deque

PINNED = math.inf          # the first non-finite record's neighbourhood: never dropped
NONFINITE = 1e300          # a non-finite record's score: above every spike, below the pinned ones
EMA_ALPHA = 0.05           # weight of a new value in a field's running level (about 20 records)


def _value(value):
    """A number from a record field (floats, or the strings Report.to_dict makes of nan/inf)."""
    if type(value) is float:
        return value
    if isinstance(value, str):
        return float(value) if value in ("nan", "inf", "-inf") else None
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


class BoundedSeries:
    """Records appended one by one (a dict each); iterating gives the kept ones in order."""

    def __init__(self, head: int, tail: int, middle: int, notable: int, nan_window: int,
                 factors: dict, also_finite: tuple = ()):
        if tail < max(2, nan_window):
            raise ValueError("the tail must hold the first non-finite record's window")
        self.head, self.tail, self.middle, self.notable, self.nan_window = head, tail, middle, notable, nan_window
        self.factors = dict(factors)          # field -> spike factor (its value / running level)
        self.also_finite = also_finite        # dict fields whose values must be finite too (metrics)
        self.recorded = 0                     # records appended
        self.stride = 1
        self.dropped = 0                      # notable records that made room for stronger ones
        self._head: list = []                 # records
        self._tail: deque = deque()           # entries [index, record, score]
        self._past: list = []                 # entries evicted from the tail, kept, in index order
        self._sampled = 0                     # entries of _past kept by the stride (score 0)
        self._heap: list = []                 # (score, -index, entry) of the notable entries of _past
        self._dead = 0                        # entries of _past dropped, not yet purged
        self._level: dict = {}                # field -> running mean of log(value)
        self._keep_next = 0                   # records after a notable one still to keep
        self._keep_score = 0.0
        self._nan_seen = False
        self._in_nonfinite = False            # the last record held a non-finite value
        self._log_factors = {name: math.log(f) for name, f in self.factors.items()}

    # --- appending -----------------------------------------------------------------------------
    def append(self, record: dict) -> None:
        index = self.recorded
        self.recorded += 1
        own = self._score(record)
        pending = self._keep_score if self._keep_next > 0 else 0.0
        if self._keep_next > 0:
            self._keep_next -= 1
        if own >= NONFINITE and not self._nan_seen:
            self._nan_seen = True
            own = PINNED
            for entry in itertools.islice(reversed(self._tail), self.nan_window):
                entry[2] = PINNED
            self._keep_next, self._keep_score = self.nan_window, PINNED
        elif own > 0:
            if self._tail and self._tail[-1][2] < own:
                self._tail[-1][2] = own          # the record before a notable one
            if self._keep_next == 0:
                self._keep_next, self._keep_score = 1, own
            elif self._keep_score < own:
                self._keep_score = own
        if index < self.head:
            self._head.append(record)
            return
        self._tail.append([index, record, max(own, pending)])
        if len(self._tail) > self.tail:
            self._evict(self._tail.popleft())

    def _score(self, record: dict) -> float:
        """0 for an ordinary record; NONFINITE for the first non-finite record after finite ones
        (the later ones of a non-finite stretch are ordinary: under --no-stop every step may be NaN);
        else value / running level for a spike (>= its field's factor)."""
        score, nonfinite = 0.0, False
        for name, factor in self.factors.items():
            value = _value(record.get(name))
            if value is None:
                continue
            if value - value != 0.0:           # nan or +-inf
                nonfinite = True
                break
            if value <= 0.0:
                continue
            log = math.log(value)
            level = self._level.get(name)
            if level is None:
                self._level[name] = log
                continue
            if log - level >= self._log_factors[name]:
                score = max(score, math.exp(min(log - level, 700.0)))
                log = level + self._log_factors[name]   # the level learns a lasting shift, not a spike
            self._level[name] = level + EMA_ALPHA * (log - level)
        if not nonfinite:
            for name in self.also_finite:
                values = record.get(name)
                if isinstance(values, dict):
                    for value in values.values():
                        value = _value(value)
                        if value is not None and value - value != 0.0:
                            nonfinite = True
                            break
        was, self._in_nonfinite = self._in_nonfinite, nonfinite
        if nonfinite:
            return 0.0 if was else NONFINITE
        return score

    def _evict(self, entry: list) -> None:
        """An entry leaves the tail: kept if notable (bounded), else sampled by the stride."""
        index, _, score = entry
        if score:
            self._past.append(entry)
            if score < PINNED:
                heapq.heappush(self._heap, (score, -index, entry))
                if len(self._heap) > self.notable:
                    _, _, weakest = heapq.heappop(self._heap)
                    weakest[2] = -1.0           # dropped: purged from _past below
                    self._dead += 1
                    self.dropped += 1
        elif index % self.stride == 0:
            self._past.append(entry)
            self._sampled += 1
        if self._sampled > 2 * self.middle or self._dead > self.notable:
            self._compact()

    def _compact(self) -> None:
        """Drop the dead entries; when the sample is full, every other sampled one (stride x 2)."""
        if self._sampled > 2 * self.middle:
            self.stride *= 2
        past, sampled = [], 0
        for entry in self._past:
            index, _, score = entry
            if score > 0:
                past.append(entry)
            elif score == 0 and index % self.stride == 0:
                past.append(entry)
                sampled += 1
        self._past, self._sampled, self._dead = past, sampled, 0

    # --- reading -------------------------------------------------------------------------------
    def records(self) -> list:
        """The kept records, in the order they were appended."""
        return (list(self._head) + [e[1] for e in self._past if e[2] >= 0] + [e[1] for e in self._tail])

    def __iter__(self):
        return iter(self.records())

    def __len__(self) -> int:
        return len(self._head) + len(self._past) - self._dead + len(self._tail)

    def __getitem__(self, item):
        return self.records()[item]

    def __bool__(self) -> bool:
        return self.recorded > 0

    def sampling(self) -> dict:
        """How the series was sampled (schema 1 `SeriesSampling`)."""
        return {"recorded": self.recorded, "kept": len(self), "head": self.head, "tail": self.tail,
                "stride": self.stride, "notable": len(self._heap), "notable_dropped": self.dropped}


# The report's series (measured sizes: docs/design.md, "Runs of any length"). Steps: at most
# about 100 + 1,000 + 2,000 + 300 x 3 + 201 records, whatever the run's length.
STEP_LIMITS = {"head": 100, "tail": 1000, "middle": 1000, "notable": 300, "nan_window": 100}
# One layer's history (a point per statistics, every 10 steps by default): at most about 400 points.
HISTORY_LIMITS = {"head": 20, "tail": 100, "middle": 100, "notable": 60, "nan_window": 20}


def step_series(**limits) -> BoundedSeries:
    """`Report.steps`: spikes of the loss or gradient norm (10x their running level) and non-finite
    losses, metrics or gradient norms are notable."""
    return BoundedSeries(**dict(STEP_LIMITS, **limits), factors={"loss": 10.0, "grad_norm": 10.0},
                         also_finite=("metrics",))


def history_series(**limits) -> BoundedSeries:
    """A layer's `history`: a gradient norm 10x its running level, or a weight norm 2x its running
    level (the dynamics read weight jumps of 5x between two points), is notable."""
    return BoundedSeries(**dict(HISTORY_LIMITS, **limits),
                         factors={"grad_norm": 10.0, "weight_norm": 2.0, "activation_norm": 10.0})
