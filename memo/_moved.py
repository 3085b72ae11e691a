"""Old module names of memo, kept for one release: ``import memo.spec`` (or ``python -m
memo.task`` in a job script written before the move) gets the module at its new place,
with one deprecation note. Nothing in memo itself uses these names."""

import importlib
import importlib.abc
import importlib.util
import sys
import warnings

MOVED = {
    "memo.spec": "memo.run.spec",
    "memo.values": "memo.run.values",
    "memo.trial_lookup": "memo.run.trial_lookup",
    "memo.worker": "memo.run.worker",
    "memo.report": "memo.run.report",
    "memo.progress": "memo.run.progress",
    "memo.describe": "memo.run.describe",
    "memo.measures": "memo.run.measures",
    "memo.files": "memo.store.files",
    "memo.paths": "memo.store.paths",
    "memo.claims": "memo.store.claims",
    "memo.task": "memo.backends.task",
    "memo.train_steps": "memo.training.steps",
    "memo.checkpoints": "memo.training.checkpoints",
    "memo.probes": "memo.training.probes",
    "memo.alignment": "memo.training.alignment",
    "memo.tensordata": "memo.datasets.tensordata",
    "memo.fast": "memo.memorize.fast",
    "memo.bitset": "memo.memorize.bitset",
}


class _Alias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds an old name and loads it as the module at the new one (the same object)."""

    def find_spec(self, name, path=None, target=None):
        if name not in MOVED:
            return None
        return importlib.util.spec_from_loader(name, self)

    def create_module(self, spec):
        new = MOVED[spec.name]
        warnings.warn(f"{spec.name} moved to {new}; import it from there", FutureWarning, 3)
        return importlib.import_module(new)

    def exec_module(self, module):
        pass  # the new module ran when it was imported

    def get_code(self, name):  # python -m OLD runs the new module's code as __main__
        return importlib.util.find_spec(MOVED[name]).loader.get_code(MOVED[name])


def install() -> None:
    if not any(isinstance(finder, _Alias) for finder in sys.meta_path):
        sys.meta_path.append(_Alias())
