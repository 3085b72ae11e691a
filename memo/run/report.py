"""What ``run.py --dry-run``, ``--status`` and the end of a run print."""

import heapq
import json
import os
from collections import Counter

import numpy as np

from memo.run.grid import bulk
from memo.run.progress import Costs, Estimate, duration, kind_counter, kind_levels, running_now
from memo.store.records import RESERVED, STATUSES


def counts(points: list, status: dict) -> dict:
    """Points of the grid by status ({id: status} of the records), 'pending' if none."""
    tally = dict.fromkeys((*STATUSES, "pending"), 0)
    for point in points:
        tally[status.get(point.id, "pending")] += 1
    return tally


def describe(params: dict, keys: list) -> str:
    """The point's varying params and its seed (two points differing only in seed differ)."""
    shown = " ".join(f"{k}={json.dumps(params.get(k))}" for k in keys)
    if "seed" in keys or "seed" not in params:
        return shown
    return f"{shown} seed={params['seed']}".strip()


def summary_line(name: str, tally: dict) -> str:
    """The points of the grid by status (:func:`counts`), on one line."""
    parts = ", ".join(f"{n} {status}" for status, n in tally.items())
    return f"{name}: {sum(tally.values())} points: {parts}"


def estimate(est: Estimate | None, what: str, tasks: str | None = None) -> str | None:
    """A line for the Estimate ``est`` (None: nothing to go by) of ``what``: the compute time
    and, where ``tasks`` (a phrase) runs several points at once, the time that takes.

    >>> estimate(Estimate(10, 30.0, 15.0, 2, 4), "estimate: 10 points", "with 2 tasks")
    'estimate: 10 points: 30 s of compute, ~15 s with 2 tasks, from 4 finished points'
    """
    if est is None or not est.points:
        return None
    line = f"{what}: {duration(est.compute)} of compute"
    if tasks and est.at_once > 1:
        line += f", ~{duration(est.wall)} {tasks}"
    return f"{line}, from {est.measured} finished points{est.note()}"


class DryRun:
    """What ``--dry-run`` prints, from points streamed through :meth:`add` once: counts, the
    params that vary and the first few points to run; a big grid is never held in memory.

    ``status`` is {id: status} of the records, ``rerun`` the statuses that run again,
    ``busy`` the ids of points another process runs now (left to it, listed in ``elsewhere``),
    ``walls`` {id: wall_time} of the records, for the estimate of the time the rest takes.
    """

    def __init__(self, status: dict, rerun=frozenset(), busy=frozenset(), walls=None, show=5):
        self.status, self.rerun, self.busy, self.show = status, set(rerun), busy, show
        self.walls, self.costs, self.kinds = walls or {}, Costs(), Counter()
        self.elsewhere = []
        self.tally = dict.fromkeys((*STATUSES, "running", "pending"), 0)
        self.todo, self.first, self.varied = 0, None, set()
        self.sample = []  # the first `show` points to run
        self.by_dataset = {}  # dataset param -> the first point to run that names it

    def add(self, point) -> None:
        state = self.status.get(point.id, "pending")
        runs = state == "pending" or state in self.rerun
        if runs and point.id in self.busy:
            self.elsewhere.append(point)
            state = "running" if state == "pending" else state
        self.tally[state] += 1
        params = point.params
        if state == "ok":
            self.costs.add(params, self.walls.get(point.id))
        if self.first is None:
            self.first = params
        elif len(self.varied) < len(params):
            self.varied.update(k for k, v in params.items() if self.first.get(k) != v)
        if runs and point.id not in self.busy:
            self.todo += 1
            self.kinds[kind_levels(params)] += 1
            if len(self.sample) < self.show:
                self.sample.append(point)
            if isinstance(params.get("dataset"), str):
                self.by_dataset.setdefault(params["dataset"], point)

    def text(self, name: str, tasks: int = 1) -> str:
        """The lines; ``tasks``: the points that would run at once, for the estimate."""
        total = sum(self.tally.values())
        tally = {s: n for s, n in self.tally.items() if n or s != "running"}
        parts = ", ".join(f"{n} {status}" for status, n in tally.items())
        keys = sorted(k for k in self.varied if k != "seed") or sorted(self.varied)
        lines = [f"{name}: {total} points: {parts}", f"would run {self.todo} points now"]
        lines += [f"  {p.id} #{p.index}: {describe(p.params, keys)}" for p in self.sample]
        if self.todo > len(self.sample):
            lines.append(f"  ... and {self.todo - len(self.sample)} more")
        at_once = tasks if tasks > 0 else os.cpu_count() or 1  # -1: one per core
        est = self.costs.estimate(self.kinds, at_once=at_once)
        line = estimate(est, f"estimate: {self.todo} points", f"with {at_once} tasks")
        if line:
            lines.append(line)
        return "\n".join(lines)


def status(name: str, points, rows, busy=None, records=None, show: int = 5) -> str:
    """Counts, strays, unreadable records, the last failures, the slowest points and an
    estimate of the time the points without a record need; ``busy``: the fresh claims
    ({id: claims.Holder}) of the points running now, in the results folder ``records``."""
    return Standing(points, rows).text(name, busy or {}, records, show)


class Standing:
    """Where each point of a grid stands by the records, for --status: worked out once, with
    arrays, not point by point in Python. ``points``: a list of Points or, quicker for a big
    grid, a Grid (Spec.lazy_points); ``rows``: the records' (Store.rows)."""

    def __init__(self, points, rows):
        self.points, self.rows = bulk(points), rows
        self.at = self.points.positions_of(rows)  # each record's point; -1: none
        self.codes, self.names = rows.states()  # each record's status: names[codes[r]]
        ours = self.at >= 0
        self.tally = dict.fromkeys((*STATUSES, "pending"), 0)
        counts = np.bincount(self.codes[ours], minlength=len(self.names)).tolist()
        self.tally.update((name, n) for name, n in zip(self.names, counts) if n)
        self.tally["pending"] = len(self.points) - int(ours.sum())
        self.left = np.ones(len(self.points), dtype=bool)
        self.left[self.at[ours]] = False  # the points without a record

    def text(self, name: str, busy: dict, records, show: int = 5) -> str:
        """:func:`status`'s lines."""
        points, rows, at, codes = self.points, self.rows, self.at, self.codes
        keys = points.varying()
        lines = [summary_line(name, self.tally)]
        is_ok = codes == (self.names.index("ok") if "ok" in self.names else -1)
        ok = np.flatnonzero((at >= 0) & is_ok)  # records, in the store's order
        failed = np.flatnonzero((at >= 0) & ~is_ok).tolist()
        stray = len(codes) - len(ok) - len(failed)
        if stray:
            lines.append(f"{stray} records are of points no longer in the grid (kept)")
        if rows.corrupt:
            shown = ", ".join(rows.corrupt[:show])
            lines.append(f"{len(rows.corrupt)} unreadable record files (pending): {shown}")
        if rows.misnamed:
            shown = ", ".join(rows.misnamed[:show])
            lines.append(
                f"{len(rows.misnamed)} files hold a record of another id (ignored): {shown}"
            )
        if failed:
            finished, errors = rows.values("finished"), rows.values("error")
            lines.append("last failures:")
            for r in heapq.nlargest(show, failed, key=lambda r: finished[r] or ""):
                point = points[at[r]]
                state = errors[r] or self.names[codes[r]]
                lines.append(f"  {point.id} {describe(point.params, keys)}: {state}")
        seconds, none = rows.floats("wall_time")
        if len(ok):
            lines.append("slowest points:")
            for r in slowest(ok, seconds, none, rows, show):
                point, wall = points[at[r]], rows.value("wall_time", r) or 0.0
                lines.append(f"  {point.id} {wall:.2f} s {describe(point.params, keys)}")
        held = {i: points[p].params for i, p in self.running(busy)}
        running = running_now(records, held, busy)
        kinds = kind_counter(*points.kind_codes(np.flatnonzero(self.left)))
        kinds.subtract(run.levels for run in running)
        walls = np.full(len(points), np.nan)  # of the ok points, by point
        walls[at[ok]] = seconds[ok]
        done = np.flatnonzero(~np.isnan(walls))
        costs = Costs.of_kinds(*points.kind_codes(done), walls[done])
        est = costs.estimate(kinds, running, max(len(running), 1))
        what = f"still to run: {self.tally['pending']} points"
        what += f" ({len(running)} running)" if running else ""
        line = estimate(est, what, f"with {len(running)} running at once")
        if line:
            lines.append(line)
        return "\n".join(lines)

    def running(self, busy: dict) -> list:
        """(id, index) of each point without a record that a claim in ``busy`` holds."""
        held = zip(busy, self.points.positions(list(busy)).tolist())
        return [(i, p) for i, p in held if p >= 0 and self.left[p]]

    def running_line(self, busy: dict) -> str:
        """The points without a record that some process runs now, apart from the rest."""
        now = [i for i, _ in self.running(busy)]
        waiting = self.tally["pending"] - len(now)
        where = sorted({f"{busy[i].host} pid {busy[i].pid}" for i in now})
        shown = f" ({', '.join(where[:5])}{', ...' if len(where) > 5 else ''})" if where else ""
        return f"pending: {len(now)} running now{shown}, {waiting} not started"


def slowest(ok: np.ndarray, seconds: np.ndarray, none: np.ndarray, rows, show: int) -> list:
    """The ``show`` of the records ``ok`` longest in wall time (none: 0 s), as heapq.nlargest
    picks them (equal ones in order); ``seconds``, ``none``: the wall times (Rows.floats)."""
    taken = np.where(none[ok], 0.0, seconds[ok])
    if np.isnan(taken).any():  # a NaN wall time: heapq's order, as ever
        walls = rows.values("wall_time")
        return heapq.nlargest(show, ok.tolist(), key=lambda r: walls[r] or 0.0)
    if len(ok) > show:
        least = np.partition(taken, len(ok) - show)[len(ok) - show]
        ok, taken = ok[taken >= least], taken[taken >= least]
    return ok[np.argsort(-taken, kind="stable")[:show]].tolist()


LAST = ("_time", "wall", "seconds", "resumed_from")  # bookkeeping columns: shown after the rest


def table_summary(frame, points: list, limit: int = 16) -> str:
    """Mean, min and max of each numeric metric over the ok rows of the results table.
    Metrics equal in every row are listed on one line; past ``limit`` varying ones (times
    and bookkeeping go last) the rest are named, never dropped silently."""
    if frame.empty or "status" not in frame:
        return "no results yet"
    ok = frame[frame["status"] == "ok"]
    params = {k for p in points for k in p.params}
    skip = params | RESERVED
    metrics = [c for c in ok.select_dtypes("number").columns if c not in skip]
    if ok.empty or not metrics:
        return f"{len(ok)} ok rows; no numeric metrics"
    metrics.sort(key=lambda c: any(c.endswith(t) or c.startswith(t) for t in LAST))
    same = [c for c in metrics if ok[c].nunique(dropna=False) == 1]
    varying = [c for c in metrics if c not in same]
    shown, left = varying[:limit], varying[limit:]
    lines = [f"metrics over {len(ok)} ok points:"]
    if shown:
        stats = ok[shown].agg(["mean", "min", "max"]).T
        lines.append(stats.to_string(float_format=lambda v: f"{v:.4g}"))
    if left:
        lines.append(f"({len(left)} more columns not shown: {', '.join(left)})")
    if same:
        values = ", ".join(f"{c} {ok[c].iloc[0]:.6g}" for c in same)
        lines.append(f"the same in every ok point: {values}")
    return "\n".join(lines)
