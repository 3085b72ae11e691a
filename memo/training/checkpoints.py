"""Files a training run keeps beside its record: checkpoints to resume from, TensorBoard events.

Both are named by a hash of the point's params (seed included), since a trial sees only its
params: ``results/checkpoints/<kind>/<hash>.pt`` and ``results/tensorboard/<hash>/``.
"""

import hashlib
import json

import torch

from memo.store import paths
from memo.store.records import atomic_file


def params_key(params: dict) -> str:
    """A short stable hash of a point's params (seed included), naming its files.

    >>> params_key({"b": 1, "a": 2}) == params_key({"a": 2, "b": 1}), len(params_key({}))
    (True, 16)
    """
    text = json.dumps(params, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class Checkpoint:
    """A point's training state in ``results/checkpoints/<kind>/<params hash>.pt``.

    Written to a temp file in the same folder and renamed into place, so a kill during
    the write leaves the previous checkpoint whole. ``load`` returns None when there is
    none, or when it belongs to other params (a hash collision or a changed trial).
    """

    def __init__(self, params: dict, kind: str = "train"):
        self.params = params
        self.path = paths.results_dir() / "checkpoints" / kind / f"{params_key(params)}.pt"

    def load(self) -> dict | None:
        if not self.path.is_file():
            return None
        state = torch.load(self.path, map_location="cpu", weights_only=True)
        return state if state.get("params") == json.loads(json.dumps(self.params)) else None

    def save(self, state: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_file(self.path) as f:
            torch.save({**state, "params": self.params}, f)

    def delete(self) -> None:
        self.path.unlink(missing_ok=True)


def rng_state(generator: torch.Generator) -> dict:
    """Every random state training draws from: the data generator and torch's global ones."""
    state = {"data": generator.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(generator: torch.Generator, state: dict) -> None:
    generator.set_state(state["data"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class CurveLog:
    """Each epoch's curve values as TensorBoard scalars in ``results/tensorboard/<params hash>``.

    ``start`` drops events after that epoch left by a killed run, so a resumed run does
    not draw its epochs twice.
    """

    def __init__(self, params: dict, start: int = 0):
        from torch.utils.tensorboard import SummaryWriter  # needs the tensorboard package

        self.dir = paths.results_dir() / "tensorboard" / params_key(params)
        self.writer = SummaryWriter(str(self.dir), purge_step=start + 1 if start else None)
        if not start:
            self.writer.add_text("params", json.dumps(params, sort_keys=True))

    def write(self, epoch: int, values: dict) -> None:
        for name, value in values.items():
            if value is not None:
                self.writer.add_scalar(name, value, epoch)

    def close(self) -> None:
        self.writer.close()
