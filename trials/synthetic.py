"""A synthetic trial for smoke-testing the runner and a cluster setup.

It sleeps for ``duration`` seconds and returns ``value = x * y`` plus a short curve; it
fails, returns NaN or kills its own process (as the out-of-memory killer would) on demand,
so failure handling can be checked before a big run. Points with ``group`` true run as
one group (memo/run/groups.py) that sleeps once, for the longest ``duration`` of its
points, then returns or fails point by point: a smoke test of ``--group``.
"""

import os
import signal
import time
from dataclasses import dataclass

METRICS = {
    "value": "x * y (NaN with nan)",
    "curve": "list [value, value / 2]",
    "seed_used": "the point's seed, as the trial received it",
}


@dataclass
class Params:
    x: float = 0.0  # first factor of the returned value
    y: float = 1.0  # second factor
    duration: float = 0.0  # seconds to sleep
    fail: bool = False  # raise RuntimeError instead of returning
    nan: bool = False  # return value = NaN
    die: bool = False  # SIGKILL the process running the point
    group: bool = False  # run together with the other grouped points (one shared sleep)

    def __post_init__(self):
        if self.duration < 0:
            raise ValueError(f"duration must be >= 0, got {self.duration}")


GROUP_MAX = 1000


def trial(params: dict) -> dict:
    if params["duration"]:
        time.sleep(params["duration"])
    return result(params)


def group_key(params: dict):
    return "sleepers" if params["group"] else None


def trial_group(points: list):
    time.sleep(max(p["duration"] for p in points))
    for i, params in enumerate(points):
        try:
            yield i, result(params)
        except RuntimeError as e:
            yield i, e


def result(params: dict) -> dict:
    if params["die"]:
        os.kill(os.getpid(), signal.SIGKILL)
    if params["fail"]:
        raise RuntimeError(f"failing on purpose at x={params['x']}")
    value = float("nan") if params["nan"] else params["x"] * params["y"]
    return {"value": value, "curve": [value, value / 2], "seed_used": params["seed"]}
