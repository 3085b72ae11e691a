"""Points that share work run as one: the pending points of a grid cut into units of work.

A trial module may define, beside ``trial(params) -> dict``::

    def group_key(params: dict) -> Hashable | None   # equal keys (not None) may run together
    def trial_group(points: list[dict]) -> Iterator[tuple[int, dict | BaseException]]
    GROUP_MAX: int                                   # the most points one group holds

``trial_group`` runs the points together and yields ``(i, metrics)`` or ``(i, exception)``
for each point of the list, once, as each finishes. The runner keeps everything else per
point: its claim, its record (memo.run.worker.run_unit), its seed, its timeout, its error.
A unit is a list of points that one worker runs: a group, or a single point.
"""

import math
import time
import traceback
from collections import defaultdict
from datetime import datetime, timezone

from memo.datasets import DatasetDamaged
from memo.run.trial_lookup import trial_module
from memo.run.worker import (
    Job,
    Outcome,
    PointTimeout,
    check_metrics,
    make_record,
    recorded_since,
    run_claimed,
    run_point,
    store_of,
    store_record,
    time_limit,
)
from memo.store import claims
from memo.store.records import RecordWriteError, Store


def groupable(trial: str) -> bool:
    """Whether the trial can run points together (defines group_key and trial_group)."""
    module = trial_module(trial)
    return hasattr(module, "group_key") and hasattr(module, "trial_group")


def plan(trial: str, points: list, most: int | None = None, workers: int = 1) -> list:
    """Units of work for ``points``: the points of one group key together (in grid order,
    at most ``most`` a unit, else the trial's GROUP_MAX; cut so that ``workers`` workers all
    get one where there are enough points), every other point alone. ``most`` 1: each alone.

    >>> from types import SimpleNamespace as P
    >>> import sys, types
    >>> sys.modules["trials.toy"] = types.SimpleNamespace(
    ...     group_key=lambda p: p["n"], trial_group=None, GROUP_MAX=3)
    >>> ps = [P(id=i, params={"n": i % 2}) for i in range(8)]
    >>> [[p.id for p in u] for u in plan("toy", ps)]
    [[0, 2], [4, 6], [1, 3], [5, 7]]
    >>> [[p.id for p in u] for u in plan("toy", ps, workers=4)]
    [[0, 2], [4, 6], [1, 3], [5, 7]]
    >>> len(plan("toy", ps, most=1))
    8
    >>> del sys.modules["trials.toy"]
    """
    if most == 1 or not points or not groupable(trial):
        return [[point] for point in points]
    module = trial_module(trial)
    members, units = defaultdict(list), []
    for point in points:
        key = module.group_key(dict(point.params))
        if key is None:
            units.append([point])
        else:
            if not members[key]:
                units.append(members[key])  # placed where its first point stands
            members[key].append(point)
    size = unit_size(module, most, len(points), workers)
    cut = []
    for unit in units:  # in even parts of at most ``size``
        parts = math.ceil(len(unit) / size)
        edges = [round(k * len(unit) / parts) for k in range(parts + 1)]
        cut.extend(unit[a:b] for a, b in zip(edges, edges[1:]))
    return cut


def unit_size(module, most: int | None, points: int, workers: int) -> int:
    """The most points in one group: ``most`` (--group), else the trial's GROUP_MAX, and
    no more than keeps each of ``workers`` workers busy with ``points`` points."""
    share = math.ceil(points / max(1, workers))
    return max(1, min(most or getattr(module, "GROUP_MAX", 64), share))


class Tally:
    """--dry-run's count of the groups that the points to run would form, streamed: one
    counter per group key, so a grid of any size fits."""

    def __init__(self, trial: str, most: int | None, workers: int):
        self.module = trial_module(trial) if most != 1 and groupable(trial) else None
        self.most, self.workers = most, workers
        self.keys, self.alone = defaultdict(int), 0

    def add(self, params: dict) -> None:
        key = None if self.module is None else self.module.group_key(dict(params))
        if key is None:
            self.alone += 1
        else:
            self.keys[key] += 1

    def line(self) -> str | None:
        """What grouping would do, or None if no point would run in a group."""
        grouped = sum(self.keys.values())
        if not grouped:
            return None
        size = unit_size(self.module, self.most, grouped + self.alone, self.workers)
        units = sum(math.ceil(count / size) for count in self.keys.values())
        alone = f"; {self.alone} run alone" if self.alone else ""
        return (
            f"groups: {grouped} points that share work run as {units}"
            f" group{'s' if units > 1 else ''} of at most {size} (--group 1: each alone){alone}"
        )


def run_unit(job: Job, unit: list) -> list:
    """Run a unit of work (memo.run.groups.plan) and store a record per point: a single
    point by run_point, a group by its trial's trial_group. Returns their Outcomes."""
    if len(unit) == 1:
        return [run_point(job, unit[0])]
    store = store_of(job)
    outcomes, claimed = [], []
    try:
        for point in unit:
            try:
                other = claims.take(store.dir, point.id, job.run)
            except OSError as e:
                error = RecordWriteError.of(f"the claim of point {point.id} ({e.filename})", e)
                raise error from None
            if other is not None:
                outcomes.append(Outcome(point.id, "skipped", 0.0, f"running elsewhere ({other})"))
            elif recorded_since(store, point.id, job.since):
                claims.release(store.dir, point.id)
                outcomes.append(Outcome(point.id, "skipped", 0.0, "recorded by another run"))
            else:
                claimed.append(point)
        if len(claimed) == 1:  # the others are done: no group left to share work with
            return outcomes + [run_claimed(job, claimed[0], store)]
        return outcomes + run_group(job, claimed, store)
    finally:
        for point in claimed:
            claims.release(store.dir, point.id)


def run_group(job: Job, points: list, store: Store) -> list:
    """The trial's trial_group on the claimed points: each point's record is stored, and its
    claim released, as it finishes; returns their Outcomes. A point's exception or bad
    metrics is its own error record; an exception of the group as a whole, or its time limit
    (the points' limits added up: they share the time), is every unfinished point's."""
    trial_group = trial_module(job.trial).trial_group
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    wall0, cpu0 = time.perf_counter(), time.process_time()
    left, outcomes = dict(enumerate(points)), []

    def record(i: int, status: str, metrics: dict, error: str | None) -> None:
        point = left.pop(i)
        # A point's share of the group's time, so that times add up as the work did.
        wall = (time.perf_counter() - wall0) / len(points)
        cpu = (time.process_time() - cpu0) / len(points)
        if status == "ok":
            error = check_metrics(metrics, point.params)
            status = "error" if error else "ok"
        made = make_record(job, point, status, metrics, error, wall, cpu, started)
        outcomes.append(store_record(store, {**made, "group": len(points)}))
        claims.release(store.dir, point.id)

    limit = job.timeout * len(points) if job.timeout else None
    try:
        with time_limit(limit):
            for i, result in trial_group([dict(p.params) for p in points]):
                if i not in left:
                    raise RuntimeError(f"trial_group yielded point {i} twice or out of range")
                if isinstance(result, BaseException):
                    record(i, "error", {}, "".join(traceback.format_exception(result)))
                else:
                    record(i, "ok", result, None)
    except PointTimeout:
        error = f"PointTimeout: no result within {limit:g} s (its group of {len(points)})"
        for i in list(left):
            record(i, "timeout", {}, error)
    except DatasetDamaged:  # the user's data, not these points' results: the run stops
        raise
    except Exception:
        error = traceback.format_exc()
        for i in list(left):
            record(i, "error", {}, error)
    for i in list(left):  # trial_group ended without them
        record(i, "error", {}, "TrialError: trial_group returned no result for it")
    return outcomes
