"""Grid values: expand one param_grid value (a list or a ``{"type_": ...}`` generator).

Also the one-line :class:`SpecError` and the helpers that show values in its messages,
shared by :mod:`memo.run.spec` and :mod:`memo.run.trial_lookup`.
"""

import collections
import decimal
import functools
import json
import math
import sys

import numpy as np

MAX_VALUES = 1_000_000  # per generator
GENERATORS = {
    "range": ("start", "stop", "step"),
    "linspace": ("start", "stop", "num", "endpoint"),
    "logspace": ("start", "stop", "num", "endpoint", "base"),
    "zip": None,  # any param names
}


class SpecError(Exception):
    """A user mistake in a spec; the message is one line."""


def expand_value(where: str, at: str, value) -> list:
    """Expand one grid value: a list, or a ``{"type_": ...}`` generator.

    ``range`` follows numpy's arange (start 0 and step 1 by default, stop exclusive) but
    counts in exact decimal, so ``stop`` is never overshot by rounding error and 0.15
    stays 0.15. ``linspace``/``logspace`` take numpy's arguments. Floats are rounded to
    12 significant digits so values line up across grids; a generator must give distinct
    values, at most MAX_VALUES of them.

    >>> expand_value("f", "k", {"type_": "range", "start": 0.1, "stop": 0.3, "step": 0.05})
    [0.1, 0.15, 0.2, 0.25]
    >>> expand_value("f", "k", {"type_": "range", "stop": 3})
    [0, 1, 2]
    >>> expand_value("f", "k", {"type_": "logspace", "start": -2, "stop": 0, "num": 3})
    [0.01, 0.1, 1.0]
    """
    if isinstance(value, list):
        values = [_clean(v) for v in value]
    elif isinstance(value, dict):
        values = _generate(where, at, value)
    else:
        raise SpecError(
            f'{where}: {at}: {_show(value)} must be a list of values or a {{"type_": ...}} object; '
            f"for one value write [{_show(value)}] or put it in defaults"
        )
    if not values:
        raise SpecError(f"{where}: {at}: expands to no values; the grid would be empty")
    return values


def _generate(where: str, at: str, spec: dict) -> list:
    kind = spec.get("type_")
    if kind not in GENERATORS or kind == "zip":
        valid = ", ".join(k for k in GENERATORS if k != "zip")
        hint = " (zip groups go directly under param_grid)" if kind == "zip" else ""
        raise SpecError(f"{where}: {at}: unknown type_ {_show(kind)}; valid: {valid}{hint}")
    allowed = GENERATORS[kind]
    extra = sorted(set(spec) - set(allowed) - {"type_"})
    if extra:
        raise SpecError(f"{where}: {at}: {kind} takes {', '.join(allowed)}, not {extra[0]!r}")
    required = ("stop",) if kind == "range" else ("start", "stop", "num")
    for key in required:
        if key not in spec:
            raise SpecError(f"{where}: {at}: {kind} needs {key!r}")
    for key, v in spec.items():
        if key == "endpoint" and not isinstance(v, bool):
            raise SpecError(f"{where}: {at}.endpoint: {_show(v)} must be true or false")
        numeric = isinstance(v, (int, float)) and not isinstance(v, bool)
        if key not in ("type_", "endpoint") and not (numeric and _finite(v)):
            raise SpecError(f"{where}: {at}.{key}: {_show(v)} is not a finite number")
    if kind == "range":
        values = _arange(where, at, spec.get("start", 0), spec["stop"], spec.get("step", 1))
    else:
        values = _spaced(where, at, kind, spec)
    if len(set(values)) < len(values):
        repeated = [v for v, n in collections.Counter(values).items() if n > 1]
        raise SpecError(
            f"{where}: {at}: {kind} gives {_show(repeated[0])} more than once (values are rounded "
            "to 12 significant digits); use fewer values or a wider span"
        )
    return values


def _arange(where: str, at: str, start, stop, step) -> list:
    if step == 0:
        raise SpecError(f"{where}: {at}.step: must not be 0")
    d_start, d_stop, d_step = (decimal.Decimal(repr(x)) for x in (start, stop, step))
    count = max(0, math.ceil((d_stop - d_start) / d_step))
    _check_count(where, at, "range", count, "a larger step")
    if all(isinstance(x, int) for x in (start, stop, step)):
        return list(range(start, start + count * step, step))  # exact already
    exact = (d_start + i * d_step for i in range(count))
    values = [_clean(float(v)) for v in exact]
    return [v for v in values if (v < stop if step > 0 else v > stop)]  # rounding may reach stop


def _spaced(where: str, at: str, kind: str, spec: dict) -> list:
    """linspace or logspace values; logspace's are > 0, so 0.0 is an underflow."""
    num, base = spec["num"], spec.get("base", 10.0)
    if not isinstance(num, int) or num < 1:
        raise SpecError(f"{where}: {at}.num: {_show(num)} must be a positive integer")
    if base <= 0:
        raise SpecError(f"{where}: {at}.base: {_show(base)} must be > 0")
    _check_count(where, at, kind, num, "a smaller num")
    space = np.linspace if kind == "linspace" else functools.partial(np.logspace, base=base)
    with np.errstate(all="ignore"):  # overflow gives Infinity, caught below
        array = space(spec["start"], spec["stop"], num, endpoint=spec.get("endpoint", True))
    values = [_clean(v) for v in array.tolist()]
    bad = [v for v in values if not math.isfinite(v) or (kind == "logspace" and v == 0)]
    if bad:
        raise SpecError(
            f"{where}: {at}: {kind} reaches {_show(bad[0])}, beyond the float range; "
            "narrow start and stop"
        )
    return values


def _check_count(where: str, at: str, kind: str, count: int, fix: str) -> None:
    if count > MAX_VALUES:
        raise SpecError(
            f"{where}: {at}: {kind} gives {_count(count)} values, more than {MAX_VALUES:,}; "
            f"use {fix}"
        )


def _clean(value):
    """Plain Python values; floats rounded to 12 significant digits."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isfinite(value):
        return float(f"{value:.12g}")
    return value


def _finite(value) -> bool:
    """Whether no number in VALUE (at any depth) is NaN, infinite or beyond the float range."""
    if isinstance(value, (list, dict)):
        return all(map(_finite, value.values() if isinstance(value, dict) else value))
    return not isinstance(value, (int, float)) or abs(value) <= sys.float_info.max


def _show(value) -> str:
    """A value as the spec file writes it: JSON."""
    return json.dumps(value, ensure_ascii=False)


def _count(n: int) -> str:
    return f"{n:,}" if n < 10**12 else f"{decimal.Decimal(n):.1e}"
