"""Trial lookup: the modules in trials/, their Params classes, fields and type hints."""

import dataclasses
import difflib
import functools
import importlib
import pkgutil
import types
import typing

import trials
from memo.run.values import SpecError, _show

# patrickfinke/memo's name for the same trial; its points get memo's data (memo_compat).
TRIAL_ALIASES = {"algorithm": "memorize"}


def trial_module(trial: str) -> types.ModuleType:
    return importlib.import_module(f"trials.{trial}")


def trial_params_class(trial: str) -> type:
    return trial_module(trial).Params


@functools.cache
def trial_fields(trial: str) -> dict:
    """The params a trial declares, with their defaults."""
    return {f.name: f.default for f in dataclasses.fields(trial_params_class(trial))}


@functools.cache
def trial_hints(trial: str) -> dict:
    """The declared type of each param of a trial."""
    return typing.get_type_hints(trial_params_class(trial))


def known_trials() -> list:
    """The modules in trials/ that define both ``trial`` and ``Params``, and the aliases."""
    return sorted({n for n in _trial_modules() if _is_trial(n)} | set(TRIAL_ALIASES))


def _trial_modules() -> set:
    return {m.name for m in pkgutil.iter_modules(trials.__path__)}


@functools.cache
def _is_trial(name: str) -> bool:
    module = trial_module(name)
    return hasattr(module, "trial") and hasattr(module, "Params")


def _resolve_trial(where: str, trial) -> str:
    name = TRIAL_ALIASES.get(trial, trial) if isinstance(trial, str) else None
    if name not in _trial_modules() or not _is_trial(name):
        known = known_trials()
        close = difflib.get_close_matches(trial, known, n=1) if isinstance(trial, str) else []
        hint = f" (did you mean {_show(close[0])}?)" if close else ""
        raise SpecError(
            f"{where}: trial {_show(trial)} is unknown{hint}; known trials: {', '.join(known)}"
        )
    return name
