"""Progress of a run, and how long its points still take.

A tqdm bar on a terminal, a plain log line now and then otherwise; both say the time left,
estimated by :class:`Costs` from what the finished points of the same kind took (the params
that set a point's cost: :data:`COST_PARAMS`), what the running points have taken so far
and, for a trial that reports it (memo.run.point_progress, the train trial per epoch), how far
they are. The estimate says when it is rough: kinds not measured yet, few points measured,
times of one kind far apart, points running longer than any of their kind.
"""

import json
import math
import statistics
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
from tqdm import tqdm

from memo.store import claims
from memo.run.point_progress import reported_left

# The params that set what a point costs, most telling first; points that agree on those
# they have are of one kind. A kind not measured yet is estimated from the points that
# agree on fewer of them (the last dropped first), and the estimate says it is rough.
COST_PARAMS = (
    *("model", "hidden", "dataset", "n_train", "n_iter", "epochs", "forget_epochs"),
    *("batch_size", "kernel", "solver", "precision", "device", "method", "label_noise"),
    *("corruption", "duration"),
)
FEW = 3  # fewer finished points of a kind than this: rough
ROUGH_SHARE = 0.25  # ... when such kinds hold more than this share of the time left
SPREAD = 0.5  # the estimate's standard error over the estimate above this: rough


def duration(seconds: float) -> str:
    """A short human duration.

    >>> duration(0.25), duration(42), duration(3600 * 5.5), duration(86400 * 3)
    ('0.25 s', '42 s', '5.5 h', '3 d')
    """
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= 2 * size or (unit != "min" and seconds >= size):
            return f"{seconds / size:.2g} {unit}"
    return f"{seconds:.2g} s"


def kind_levels(params: dict) -> tuple:
    """The point's kind and the coarser ones it falls back to, finest first, () last.

    >>> kind_levels({"model": "mlp", "epochs": 60, "lr": 0.1})
    ((('model', 'mlp'), ('epochs', 60)), (('model', 'mlp'),), ())
    """
    own = tuple((k, _hashable(params[k])) for k in COST_PARAMS if k in params)
    return tuple(own[:n] for n in range(len(own), -1, -1))


def kind_counter(codes: np.ndarray, levels: dict) -> Counter:
    """{kind levels: points}, as a Counter of kind_levels of each point in turn makes it, of
    points' kinds numbered as by Grid.kind_codes."""
    kinds = Counter()
    for code, n in zip(*_by_first(codes)):
        kinds[levels[code]] += n
    return kinds


def _by_first(codes: np.ndarray) -> tuple:
    """([each code found], [how often]), in the order the codes first come in."""
    found, first, counts = np.unique(codes, return_index=True, return_counts=True)
    order = np.argsort(first)
    return found[order].tolist(), counts[order].tolist()


def _hashable(value):
    if isinstance(value, (str, int, float, bool, type(None))):
        return value
    return json.dumps(value, sort_keys=True)


def _varying(kinds) -> set:
    """The params whose value differs between some of these kinds (the grid's, not the
    trial defaults every point carries)."""
    values = {}
    for kind in kinds:
        for key, value in kind:
            values.setdefault(key, set()).add(value)
    return {key for key, seen in values.items() if len(seen) > 1}


def _kind_text(level: tuple, shown: set) -> str:
    """The params of a kind that vary in the grid, as in --dry-run (``model="inception"``)."""
    return " ".join(f"{k}={json.dumps(v)}" for k, v in level if k in shown) or "any"


@dataclass
class Running:
    """A point running now: its kind, seconds since it started and, if its trial reports
    how far it is, the seconds it needs at most (memo.run.point_progress.reported_left)."""

    levels: tuple
    elapsed: float
    at_most: float | None = None


@dataclass
class Estimate:
    """Time left for ``points`` points: ``compute`` seconds of work, ``wall`` seconds
    with ``at_once`` points running at a time; ``rough`` says why it is rough, if it is."""

    points: int
    compute: float
    wall: float
    at_once: int
    measured: int = 0  # finished points it goes by
    rough: list = field(default_factory=list)

    def note(self) -> str:
        return f" (rough: {'; '.join(self.rough)})" if self.rough else ""


class Costs:
    """The wall times of the finished ok points, by kind (:func:`kind_levels`)."""

    def __init__(self):
        self.walls: dict = {}  # a kind level -> seconds of its finished points
        self._stats: dict = {}

    @classmethod
    def of(cls, points: list, status: dict, walls: dict) -> "Costs":
        """From the records: ``status`` and ``walls`` are {id: status}, {id: wall_time}."""
        costs = cls()
        for point in points:
            if status.get(point.id) == "ok":
                costs.add(point.params, walls.get(point.id))
        return costs

    @classmethod
    def of_kinds(cls, codes: np.ndarray, levels: dict, walls: np.ndarray) -> "Costs":
        """From the wall times ``walls`` (NaN: none) of finished ok points in grid order and
        their kinds (Grid.kind_codes): as :meth:`add` of each in turn makes them, at once."""
        costs, kept = cls(), np.isfinite(walls) & (walls >= 0)
        codes, walls = codes[kept], walls[kept]
        of_level = {}  # a kind level -> the codes of the kinds under it
        for code in _by_first(codes)[0]:
            for level in levels[code]:
                of_level.setdefault(level, []).append(code)
        for level, under in of_level.items():
            costs.walls[level] = walls[np.isin(codes, under)].tolist()
        return costs

    def add(self, params: dict, wall, levels: tuple | None = None) -> None:
        """Count ``wall`` seconds of a finished point (``levels``: its kind_levels, if known)."""
        if isinstance(wall, (int, float)) and math.isfinite(wall) and wall >= 0:
            for level in levels or kind_levels(params):
                self.walls.setdefault(level, []).append(float(wall))
                self._stats.pop(level, None)

    def __len__(self) -> int:
        return len(self.walls.get((), ()))

    def stats(self, level: tuple) -> tuple:
        """(mean, variance, count) of the seconds the finished points of ``level`` took, each
        cut at Tukey's far fence (Q3 + 3 IQR, from 5 points on): a one-off, such as the
        first point of a worker that compiles or loads data, does not stand for the rest."""
        if level not in self._stats:
            walls = np.asarray(self.walls[level])
            if len(walls) >= 5:
                q1, q3 = np.percentile(walls, [25, 75])
                walls = np.minimum(walls, q3 + 3 * (q3 - q1))
            var = float(walls.var(ddof=1)) if len(walls) > 1 else 0.0
            self._stats[level] = float(walls.mean()), var, len(walls)
        return self._stats[level]

    def estimate(self, pending: Counter, running=(), at_once: int = 1) -> Estimate | None:
        """The time left for ``pending`` ({kind levels: points not started}) and the
        ``running`` points (Running); None when no point has finished or reported.

        A pending point costs the mean of its kind (the mean, not the median: the sum of
        many is what is estimated); one of a kind not measured, that of the coarser kinds
        or as long as a running point of its kind will have taken, whichever is longer.
        """
        if not self.walls and all(run.at_most is None for run in running):
            return None
        unmeasured, lefts = Counter(), []
        floor, past, compute, few, var = {}, 0, 0.0, 0.0, 0.0  # floor: a kind takes at least
        for run in running:
            left, walls = self._left(run)
            past += bool(walls) and max(walls) <= run.elapsed
            if not walls:
                unmeasured[run.levels] += 1
            floor[run.levels[0]] = max(floor.get(run.levels[0], 0.0), run.elapsed + left)
            compute += left
            lefts.append(left)
            few += left * (0 < len(walls) < FEW)
            var += self.stats(run.levels[0])[1] if walls else 0.0
        for levels, n in pending.items():
            if n <= 0:
                continue
            known = self._cost(levels)
            if known is None or known[3] > 0:  # not measured, or from another kind
                unmeasured[levels] += n
                guess = known[0] if known else statistics.fmean(floor.values())
                known = (max(guess, floor.get(levels[0], 0.0)), 0.0, FEW, 1)
            mean, kind_var, count, _ = known
            compute += mean * n
            lefts += [mean] * min(n, at_once)  # the longest few bound the wall time
            few += mean * n * (count < FEW)
            var += kind_var * (n + n * n / count)  # n more draws, and the mean's own error
        total = sum(n for n in pending.values() if n > 0) + len(running)
        wall = max(compute / max(at_once, 1), max(lefts, default=0.0))
        est = Estimate(total, compute, wall, at_once, len(self))
        if not self.walls:
            est.rough.append("no point finished yet; from how far the running ones are")
        elif unmeasured:
            n = sum(unmeasured.values())
            least = max(unmeasured, key=lambda k: (-len(self._unknown(k)), unmeasured[k]))
            shown = _varying([*self.walls, *(levels[0] for levels in (*pending, *unmeasured))])
            example = _kind_text(self._unknown(least), shown)  # the kind least is known of
            est.rough.append(f"{n} of {total} points of a kind not measured yet, e.g. {example}")
        if past:
            est.rough.append(f"{past} running longer than any finished point of their kind")
        if compute > 0 and few > ROUGH_SHARE * compute:
            est.rough.append(f"fewer than {FEW} finished points of their kind")
        if compute > 0 and math.sqrt(var) > SPREAD * compute:
            error = math.sqrt(var) / compute
            est.rough.append(f"times of one kind vary, ±{error:.0%} on the total")
        return est

    def _cost(self, levels: tuple):
        """(mean seconds, variance, count) of the finished points of a point's kind, or of
        the finest coarser kind with any, and how many levels coarser that is; None if
        no point has finished."""
        for depth, level in enumerate(levels):
            if level in self.walls:
                return (*self.stats(level), depth)
        return None

    def _unknown(self, levels: tuple) -> tuple:
        """The coarsest level of a kind that no finished point is of (its most telling
        params, as far as nothing is known of them)."""
        known = [level for level in levels if level in self.walls]
        return levels[len(levels) - len(known) - 1] if len(known) < len(levels) else ()

    def _left(self, run: Running) -> tuple:
        """(seconds a running point still needs, its kind's finished times): the median of
        those longer than it has run so far, less that. Past them all, or of a kind not
        measured, as long again as it has run (at least what coarser kinds took): the
        median guess for a duration known only to exceed that. At most what it reports."""
        walls = self.walls.get(run.levels[0], ())
        longer = [w for w in walls if w > run.elapsed]
        if longer:
            left = statistics.median(longer) - run.elapsed
        else:
            known = self._cost(run.levels[1:]) if not walls else None
            left = max(known[0] - run.elapsed if known else 0.0, run.elapsed)
        return (left if run.at_most is None else min(left, run.at_most)), walls


def running_now(records, points: dict, held: dict) -> list:
    """Running for each point of ``points`` ({id: params}) that a fresh claim in ``held``
    ({id: claims.Holder}) says runs now, with what its trial reported."""
    now = time.time()
    found = []
    for point_id, holder in held.items():
        if point_id in points:
            try:
                started = datetime.fromisoformat(holder.started).timestamp()
            except (TypeError, ValueError):
                started = now
            elapsed = min(max(now - started, 0.0), 1e9)
            at_most = reported_left(records, point_id) if records is not None else None
            found.append(Running(kind_levels(points[point_id]), elapsed, at_most))
    return found


# --- the run's own progress ---------------------------------------------------------------


class Progress:
    """Counts finished points by status and shows done/total, failures and the time left.

    ``todo``: the points this run runs; ``costs``: what finished points took before it
    (Costs.of the records); ``records``: the results folder, whose claims say which points
    run now and since when (None: not read).
    """

    BAR = "{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}{postfix}]"  # tqdm's ETA left out

    def __init__(self, todo, costs=None, records=None, stream=None, every_s: float = 30.0):
        todo = list(todo)
        self.total = len(todo)
        self.counts = {"ok": 0, "error": 0, "timeout": 0, "skipped": 0}
        self.stream = stream or sys.stderr
        self.every_s = every_s
        self.costs, self.records = costs or Costs(), records
        self.params = {p.id: p.params for p in todo}
        shared = {}  # one levels tuple per kind
        self.levels = {}
        for p in todo:
            levels = kind_levels(p.params)
            self.levels[p.id] = shared.setdefault(levels, levels)
        self.left = Counter(self.levels.values())
        self.at_once = 1  # the most points seen running at once
        self.start = self.last_line = time.monotonic()
        self.bar = (
            tqdm(
                total=self.total,
                unit="pt",
                file=self.stream,
                dynamic_ncols=True,
                bar_format=self.BAR,
            )
            if self.stream.isatty()
            else None
        )
        self.last_estimate = None  # (time, text), refreshed at most every 2 s for the bar

    @property
    def done(self) -> int:
        return sum(self.counts.values())

    def update(self, outcome) -> None:
        self.counts[outcome.status] += 1
        if outcome.id in self.levels:
            levels = self.levels.pop(outcome.id)
            self.left[levels] -= 1
            if outcome.status == "ok":
                self.costs.add(self.params[outcome.id], outcome.wall_time, levels)
        failed = self.counts["error"] + self.counts["timeout"]
        if outcome.status == "skipped":  # another process runs or ran it
            self.write(f"skipped: point {outcome.id}: {outcome.message}")
        elif outcome.status != "ok":
            self.write(f"{outcome.status}: point {outcome.id}: {outcome.message}")
        if self.bar is not None:
            self.bar.set_postfix_str(f"{failed} failed, {self.time_left(2.0)}", refresh=False)
            self.bar.update(1)
        elif time.monotonic() - self.last_line >= self.every_s or self.done == self.total:
            self.last_line = time.monotonic()
            elapsed = duration(self.last_line - self.start)
            self.write(
                f"{self.done}/{self.total} points, {failed} failed, {elapsed} elapsed,"
                f" {self.time_left()}"
            )

    def time_left(self, fresh_s: float = 0.0) -> str:
        """ "about 3 min left (rough: ...)", from the points finished and running now."""
        now = time.monotonic()
        if self.last_estimate and now - self.last_estimate[0] < fresh_s:
            return self.last_estimate[1]
        if not self.levels:
            return "0 s left"
        running = []
        if self.records is not None:
            held, _ = claims.running(self.records)
            running = running_now(self.records, {i: self.params[i] for i in self.levels}, held)
        self.at_once = max(self.at_once, len(running))
        pending = self.left.copy()
        pending.subtract(run.levels for run in running)
        est = self.costs.estimate(pending, running, self.at_once)
        text = "time left unknown (no point measured yet)"
        if est is not None:
            text = f"about {duration(est.wall)} left{est.note()}"
        self.last_estimate = (now, text)
        return text

    def write(self, line: str) -> None:
        if self.bar is not None:
            self.bar.write(line, file=self.stream)
        else:
            print(line, file=self.stream, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
