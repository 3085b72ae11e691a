"""Train one network with SGD or Adam and measure it (Zhang et al. 2017, Mehta et al. 2021).

Reads top to bottom: data (memo.datasets: corruption, label noise, preprocessing; as tensors
on the device by memo.datasets.tensordata), model (memo.nets), the epoch loop (memo.training.loop) with its
probes (memo.training.probes) and checkpoints (memo.training.checkpoints: a killed point resumes from its last
one), the result (the steps it calls, and METRICS, are in memo.training.steps). A NaN or infinite training loss (of a batch, or of the training set after an
epoch or at the end) raises FloatingPointError naming the epoch. Points that group_key puts
together train as one stacked model in trial_group (memo.training.batched), each as trial() trains it.
Training stops after ``epochs`` epochs or, with ``stop_at_interpolation``, once the network
fits its training set: train accuracy (eval mode) >= ``interp_acc`` or train loss <
``interp_loss`` (memo.training.fitcheck decides most epochs' fit from a few examples, exactly as
the full evaluation would). With ``forgetting`` a second phase follows (see Params); the lr schedule
runs on over both phases (``epochs`` + ``forget_epochs`` long).

Returned scalars: train_loss, train_acc, test_loss, test_acc, test_error (test_true_acc
against the labels before test label noise), interpolated (the final network fits its
training set), interp_epoch, interp_step, interp_time (s), interp_test_acc, interp_test_error
(the first epoch at which phase 1's set was fit: the training set, or train + test with
forgetting; None when it never was, or was not evaluated per epoch), epochs_run, steps,
train_time (s, with per-epoch evaluation), epoch_time (s, mean training pass), n_params,
train_size, test_size, num_classes, the realised corruption rates, resumed_from (0: no
checkpoint used).

Per-epoch lists ("*_curve"; epoch 1 first): with ``curves``: batch_loss/batch_acc (running,
train mode), train_loss/train_acc and test_loss/test_acc (eval mode), test_true_acc, lr,
weight_norm, grad_norm (mean over the epoch's steps). With ``oscillation``:
osc_{train,test}_{both,either}. Alignment lists per measurement: align_step, align_repr,
align_grad_<layer>, plus *_final scalars. Noise ramp lists per level: noise_level_log_alpha,
noise_level_info, noise_level_{train,test}_acc, and noise_half_log_alpha_{train,test}.
"""

import dataclasses
import importlib.util
import json
import time
from dataclasses import dataclass
from typing import Iterator, Literal

from memo.training import steps as train_steps
from memo.datasets import preprocess_steps
from memo.training.steps import (
    MODEL_OPTIONS,
    build_model,
    check_finite,
    concat,
    epoch_row,
    fresh_state,
    new_optimizer,
    noise_ramp,
    summary,
)

# What trial() returns, declared beside the steps that compute it (run.py --describe).
METRICS = train_steps.METRICS


@dataclass
class Params:
    # data
    dataset: str = "digits"  # a name memo.datasets knows (python data.py --list)
    preprocess: str = "channel_std"  # memo.datasets.preprocess steps joined by "+"; "" for none
    holdout: float = 0.2  # share held out as test split when the dataset has none (fixed split)
    n_train: int | None = None  # keep the first n training examples (None: all)
    label_noise: float = 0.0  # p: each training label redrawn uniformly with prob. p (1: random)
    label_noise_test: float = 0.0  # the same for the test labels, drawn independently
    corruption: Literal["none", "shuffled_pixels", "random_pixels", "gaussian"] = "none"  # images
    corruption_p: float = 1.0  # share of the images (train and test) corrupted
    augment: Literal["none", "crop", "flip", "crop+flip"] = "none"  # random crop and/or h-flip
    crop_padding: int = 4  # zero padding per side of the random crop, in pixels
    # model
    model: Literal["mlp", "convnet", "alexnet", "inception", "wrn"] = "mlp"  # see memo.nets
    hidden: str = "512"  # mlp: hidden widths joined by "x", e.g. "512x512"; "0": linear model
    activation: Literal["relu", "sin", "sigmoid", "tanh"] = "relu"  # mlp, convnet
    bias: bool = True  # mlp, convnet: layers with biases
    batch_norm: bool = True  # inception: with batch norm
    depth: int = 28  # wrn: 6n + 4
    width: int = 1  # wrn: widening factor
    dropout: float = 0.0  # wrn: dropout between the convs of each block
    init: Literal["default", "glorot", "he", "mehta"] = "default"  # mehta: 1st layer N(0, σ²)
    init_scale: float = 1.0  # multiplies every weight and bias after the init
    init_std: float | None = None  # σ of the first layer; with init "mehta" only
    # training
    loss: Literal["ce", "hinge", "squared"] = "ce"  # cross-entropy, multiclass hinge, squared
    optimizer: Literal["sgd", "adam"] = "sgd"  # torch's SGD (with momentum) or Adam
    lr: float = 0.01  # initial learning rate
    momentum: float = 0.9  # sgd
    nesterov: bool = False  # sgd, needs momentum > 0
    weight_decay: float = 0.0  # L2 penalty coefficient (coupled, as torch's optimizers)
    lr_schedule: Literal["constant", "step", "exponential", "cosine"] = "constant"  # per epoch
    milestones: str = ""  # step: epochs after which lr *= lr_factor, comma list, e.g. "60,120"
    lr_factor: float | None = None  # step: per milestone (None: 0.1); exponential: per epoch (0.95)
    batch_size: int = 128  # training examples per optimizer step
    epochs: int = 100  # at most this many epochs (phase 1 with forgetting)
    stop_at_interpolation: bool = True  # stop once the training set is fit (interp_acc/_loss)
    interp_acc: float = 1.0  # interpolated: train accuracy (eval mode) >= this ...
    interp_loss: float | None = None  # ... or train loss (eval mode) < this (None: accuracy only)
    eval_batch_size: int = 2048  # examples per forward pass when evaluating
    device: Literal["auto", "cpu", "cuda"] = "auto"  # auto: CUDA when available
    checkpoint_every: int = 10  # epochs between checkpoints, to resume after a kill; 0: never
    # probes (all off by default)
    curves: bool = False  # per-epoch curves (see the module docstring)
    oscillation: bool = False  # per epoch: share correct in both / either of consecutive epochs
    alignment: bool = False  # Mehta et al.'s in-class alignment (memo.training.alignment)
    align_every: int = 500  # steps between alignment measurements (and at the start and end)
    align_samples: int = 128  # size of the fixed training subsample measured
    noise_levels: int = 0  # after training: weight-noise ramp over this many α levels; 0: off
    noise_log_alpha: float = -8.0  # ln α of the first level of the ramp
    noise_factor: float = 2.0  # α is multiplied by this from one level to the next
    noise_epochs: int = 1  # noisy passes over each split per level; accuracies averaged
    forgetting: bool = False  # phase 1 on train + test, phase 2 (forget_epochs) on train only
    forget_epochs: int = 50  # epochs of phase 2
    forget_reset_optimizer: bool = False  # phase 2 starts with fresh optimizer state
    tensorboard: bool = False  # the curves also as TensorBoard events (results/tensorboard)

    def __post_init__(self):
        for name in ("label_noise", "label_noise_test", "corruption_p"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} is a probability, in [0, 1]; got {getattr(self, name)}")
        if not 0 <= self.holdout < 1:
            raise ValueError(f"holdout is a share of the examples, in [0, 1); got {self.holdout}")
        positive = ("lr", "batch_size", "epochs", "eval_batch_size", "align_every", "width")
        positive += ("align_samples", "noise_factor", "noise_epochs", "forget_epochs", "init_scale")
        for name in positive:
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        for name in ("n_train", "init_std", "interp_loss", "lr_factor"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be > 0 or null, got {value}")
        for name in ("crop_padding", "momentum", "weight_decay", "checkpoint_every"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.noise_levels < 0:
            raise ValueError(f"noise_levels must be >= 0 (0: no ramp), got {self.noise_levels}")
        if not 0 < self.interp_acc <= 1:
            raise ValueError(f"interp_acc is an accuracy in (0, 1], got {self.interp_acc}")
        preprocess_steps(self.preprocess)
        check_hidden(self.hidden)
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout is a probability, in [0, 1); got {self.dropout}")
        if "crop" in self.augment and self.crop_padding == 0:
            raise ValueError("augment 'crop' needs crop_padding > 0 (0 crops nothing)")
        self.check_applies()
        self.check_model()
        self.check_optimizer()
        if self.tensorboard and not (self.curves or self.oscillation):
            raise ValueError("tensorboard writes the per-epoch curves: set curves true too")
        if self.tensorboard and importlib.util.find_spec("tensorboard") is None:
            raise ValueError("tensorboard: the package is not installed; pip install tensorboard")

    def check_applies(self):
        """Reject a param set away from its default where nothing reads it."""
        readers = {
            "momentum": ("optimizer 'sgd'", self.optimizer == "sgd"),
            "crop_padding": ("augment 'crop' or 'crop+flip'", "crop" in self.augment),
            "corruption_p": ("a corruption other than 'none'", self.corruption != "none"),
            "forget_epochs": ("forgetting true", self.forgetting),
            "forget_reset_optimizer": ("forgetting true", self.forgetting),
            "align_every": ("alignment true", self.alignment),
            "align_samples": ("alignment true", self.alignment),
            "noise_log_alpha": ("noise_levels > 0", self.noise_levels > 0),
            "noise_factor": ("noise_levels > 0", self.noise_levels > 0),
            "noise_epochs": ("noise_levels > 0", self.noise_levels > 0),
        }
        for name, (reader, read) in readers.items():
            if not read and getattr(self, name) != DEFAULTS[name]:
                raise ValueError(f"{name} applies with {reader} only; drop it")

    def check_model(self):
        for option in ("hidden", "bias", "activation", "batch_norm", "depth", "width", "dropout"):
            if (
                getattr(self, option) != DEFAULTS[option]
                and option not in MODEL_OPTIONS[self.model]
            ):
                users = [m for m, opts in MODEL_OPTIONS.items() if option in opts]
                raise ValueError(
                    f"{option} applies to model {' or '.join(users)}, not {self.model!r}; drop it"
                )
        if (self.init == "mehta") != (self.init_std is not None):
            raise ValueError(
                "init_std (the first layer's σ) goes with init 'mehta', and only there"
            )

    def check_optimizer(self):
        if self.nesterov and (self.optimizer != "sgd" or self.momentum == 0):
            raise ValueError("nesterov needs optimizer 'sgd' with momentum > 0")
        milestones = self.milestone_list()
        if (self.lr_schedule == "step") != bool(milestones):
            raise ValueError("milestones go with lr_schedule 'step', which needs them: '60,120'")
        if milestones and (milestones != sorted(set(milestones)) or milestones[0] < 1):
            raise ValueError(f"milestones must be increasing epochs >= 1, got {self.milestones!r}")
        if self.lr_factor is not None and self.lr_schedule not in ("step", "exponential"):
            raise ValueError("lr_factor goes with lr_schedule 'step' or 'exponential'")

    def milestone_list(self) -> list:
        try:
            return [int(m) for m in self.milestones.replace(" ", "").split(",") if m]
        except ValueError:
            raise ValueError(
                f"milestones: write epochs as a comma list, e.g. '60,120'; got {self.milestones!r}"
            ) from None


def check_hidden(spec: str) -> None:
    """The grammar memo.nets.parse_hidden reads ("512x512", "" or "0"), checked without
    torch so that a spec's mistake fails before the run (tests keep the two in step)."""
    try:
        widths = [int(p) for p in spec.lower().replace(" ", "").split("x") if p]
    except ValueError:
        raise ValueError(
            f"hidden: write widths joined by x, e.g. '512x512'; got {spec!r}"
        ) from None
    if widths != [0] and any(w <= 0 for w in widths):
        raise ValueError(f"hidden: widths must be positive ('0' alone: linear); got {spec!r}")


DEFAULTS = {f.name: f.default for f in dataclasses.fields(Params)}  # read by the checks above
FIELDS = list(DEFAULTS)


def load_sets(p: Params, seed: int, device, like: tuple | None = None) -> tuple:
    """The point's data (memo.datasets.tensordata.load_data), its splits as tensors on ``device`` in the
    model's layout, {"train": (inputs, labels), "test": ...}, and the test labels before test
    label noise (None without it). ``like``: another point's (data, sets), whose inputs are
    reused where this point's are equal (one copy of the images for a group of points)."""
    import numpy as np
    import torch

    from memo.datasets import tensordata

    data = tensordata.load_data(
        p.dataset,
        p.preprocess,
        p.n_train,
        p.holdout,
        p.label_noise,
        p.label_noise_test,
        p.corruption,
        p.corruption_p,
        seed,
    )
    conv = p.model != "mlp"

    def inputs(X, part):
        if like is not None and part in like[1]:
            other = like[0].X if part == "train" else like[0].X_test
            if np.array_equal(X, other):
                return like[1][part][0]
        return tensordata.Inputs(X, conv, device)

    labels = lambda a: torch.as_tensor(a, device=device)
    sets = {"train": (inputs(data.X, "train"), labels(data.y))}
    if data.X_test is not None:
        sets["test"] = (inputs(data.X_test, "test"), labels(data.y_test))
    y_true = labels(data.y_test_true) if p.label_noise_test > 0 else None
    if p.forgetting and "test" not in sets:
        raise ValueError(
            f"forgetting trains on train + test; {p.dataset!r} has no test split (set holdout)"
        )
    if p.augment != "none" and sets["train"][0].image is None:
        raise ValueError(f"augment needs images; {p.dataset!r} with {p.preprocess!r} gives vectors")
    return data, sets, y_true


def trial(params: dict) -> dict:
    import torch

    from memo.run import point_progress
    from memo.training import checkpoints, fitcheck, probes
    from memo.training.fitcheck import mlp_layers
    from memo.datasets import tensordata
    from memo.training import loop as training

    p = Params(**{k: params[k] for k in FIELDS if k in params})
    seed = params.get("seed", 0)
    device = tensordata.pick_device(p.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fastest conv kernels; determinism is CPU-only

    data, sets, y_true = load_sets(p, seed, device)
    train, y = sets["train"]

    # Model, loss, optimizer. The seed fixes the init; the generator the data order.
    torch.manual_seed(seed)
    model = build_model(p, train, data.num_classes, device)
    loss_fn = training.LOSSES[p.loss]
    optimizer = new_optimizer(p, model)
    generator = torch.Generator(device).manual_seed(seed)

    # Phases: (training inputs, labels, max epochs, may stop at interpolation).
    phases = [(train, y, p.epochs, p.stop_at_interpolation)]
    total = p.epochs + (p.forget_epochs if p.forgetting else 0)  # the lr schedule's length
    if p.forgetting:
        y_test = sets["test"][1]
        both = tensordata.Inputs(concat(data.X, data.X_test), train.conv, device)
        both = both, torch.cat([y, y_test])
        phases = [(*both, p.epochs, p.stop_at_interpolation), (train, y, p.forget_epochs, False)]

    # Resume from a checkpoint of the same params if a killed run left one.
    checkpoint = checkpoints.Checkpoint(params)
    saved = checkpoint.load() if p.checkpoint_every else None
    state = fresh_state()
    if saved:
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        checkpoints.set_rng_state(generator, saved["rng"])
        state = saved["state"]
        state["previous"] = {k: v.to(device) for k, v in state["previous"].items()}
    resumed_from = state["epochs_done"]
    history = state["history"]

    def evaluate(part):
        return training.evaluate(model, *sets[part], loss_fn, p.eval_batch_size)

    curves = p.curves or p.forgetting
    per_epoch = curves or p.oscillation or p.stop_at_interpolation  # evaluate train each epoch
    # Only the fit read from that evaluation: most epochs decide it from a few examples.
    fit_check = fitcheck.FitCheck(train, y, p.interp_acc) if fitcheck.applies(p, model) else None
    probe = None
    if p.alignment:
        probe = probes.AlignmentProbe(model, loss_fn, train, y, p.align_samples, seed, history)
        if state["step"] == 0:
            probe(0)
    if p.oscillation and not state["previous"]:  # epoch 1 is compared with the init
        state["previous"] = {k: evaluate(k).pred == sets[k][1] for k in sets}
    log = checkpoints.CurveLog(params, state["epochs_done"]) if p.tensorboard else None

    try:
        for index in range(state["phase"], len(phases)):
            inputs, targets, max_epochs, may_stop = phases[index]
            if index == 1 and state["epoch"] == 0 and p.forget_reset_optimizer:
                optimizer = new_optimizer(p, model)
            trainer = training.Trainer(
                model,
                optimizer,
                loss_fn,
                inputs,
                targets,
                p.batch_size,
                generator,
                padding=p.crop_padding if "crop" in p.augment else 0,
                flip="flip" in p.augment,
                grad_norm=p.curves,
                accuracy=curves,
                on_step=probe,
                every=p.align_every,
                step=state["step"],
            )
            stop = False
            while state["epoch"] < max_epochs and not stop:
                start = time.perf_counter()
                lr = training.learning_rate(  # counted over both phases of forgetting
                    state["epochs_done"],
                    p.lr,
                    p.lr_schedule,
                    total,
                    p.milestone_list(),
                    p.lr_factor,
                )
                stats = trainer.epoch(lr)
                epoch = state["epochs_done"] + 1
                check_finite(stats["loss"], epoch)
                state.update(epoch=state["epoch"] + 1, epochs_done=epoch, step=trainer.step)
                point_progress.report(epoch, total, resumed_from)  # for run.py's time estimates
                state["train_seconds"] += stats["seconds"]
                evals = {k: evaluate(k) for k in sets} if curves or p.oscillation else {}
                ruled_out = fit_check and fitcheck.rule_out([fit_check], mlp_layers(model))[0]
                if per_epoch and "train" not in evals and not ruled_out:
                    evals["train"] = evaluate("train")
                    if fit_check:
                        fit_check.saw(evals["train"].pred)
                if "train" in evals:
                    check_finite(evals["train"].loss, epoch)  # the epoch's last steps too
                row = epoch_row(p, curves, stats, lr, evals, sets, y_true, model, state)
                for key, value in row.items():
                    history.setdefault(f"{key}_curve", []).append(value)
                state["elapsed"] += time.perf_counter() - start
                if "train" in evals and index == 0:
                    # Fit: the phase's training set (phase 1 of forgetting: train + test).
                    fit = [evals[k] for k in (sets if p.forgetting else ["train"])]
                    sizes = [len(sets[k][1]) for k in (sets if p.forgetting else ["train"])]
                    acc = sum(e.acc * n for e, n in zip(fit, sizes)) / sum(sizes)
                    loss = sum(e.loss * n for e, n in zip(fit, sizes)) / sum(sizes)
                    fits = acc >= p.interp_acc or (
                        p.interp_loss is not None and loss < p.interp_loss
                    )
                    if fits and state["interp"] is None:
                        at = evals.get("test") or (evaluate("test") if "test" in sets else None)
                        state["interp"] = {
                            "epoch": epoch,
                            "step": trainer.step,
                            "time": state["elapsed"],
                            "test_acc": at.acc if at else None,
                        }
                    stop = fits and may_stop
                if log:
                    log.write(epoch, row)
                if p.checkpoint_every and epoch % p.checkpoint_every == 0 and not stop:
                    checkpoint.save(
                        {
                            "model": model.state_dict(),
                            "optimizer": optimizer.state_dict(),
                            "rng": checkpoints.rng_state(generator),
                            "state": state,
                        }
                    )
            state.update(phase=index + 1, epoch=0)
            state["marks"][f"phase{index + 1}_end"] = state["epochs_done"]
        final = {k: evaluate(k) for k in sets}  # the final measurements
        check_finite(final["train"].loss, state["epochs_done"])
    except FloatingPointError:
        checkpoint.delete()  # a NaN comes back on every rerun: start afresh if retried
        raise
    finally:
        if log:
            log.close()  # flushes the events, also of a run that is interrupted

    result = summary(p, final, state, data, sets, y_true, model)
    result["resumed_from"] = resumed_from
    if probe is not None:
        if history["align_step"][-1] != state["step"]:
            probe(state["step"])
        finals = {f"{k}_final": v[-1] for k, v in history.items() if k.startswith("align_")}
        result.update(finals, align_seconds=probe.seconds)  # this run's, not a killed one's
        del result["align_step_final"]
    result.update(history)
    if p.noise_levels:
        result.update(noise_ramp(p, model, loss_fn, sets, final, data.num_classes))
    checkpoint.delete()
    return result


# Params that may differ between points trained together as one stacked model (memo.training.batched):
# each model has its own seed, data, init, optimizer settings, length and probes.
GROUP_VARYING = {"seed", "restart", "label_noise", "label_noise_test", "corruption"}
GROUP_VARYING |= {"corruption_p", "init", "init_scale", "init_std", "lr", "momentum"}
GROUP_VARYING |= {"weight_decay", "lr_schedule", "milestones", "lr_factor", "epochs"}
GROUP_VARYING |= {"stop_at_interpolation", "interp_acc", "interp_loss", "checkpoint_every"}
GROUP_VARYING |= {"curves", "oscillation", "noise_levels", "noise_log_alpha", "noise_factor"}
GROUP_VARYING |= {"noise_epochs"}
# On the CPU an MLP past this many weights already runs its products at the CPU's matrix
# speed: stacked, a 784-512-10 grid ran 0.8-1.2x (bench/README.md, "batched"), under the
# 1.5x that grouping must gain, so such MLPs train alone there (on a GPU they group).
CPU_GROUP_WEIGHTS = 100_000


def group_key(params: dict) -> str | None:
    """Points with equal keys train together in trial_group: MLPs whose params differ only in
    GROUP_VARYING. None (trained alone): other models, the alignment probe (it measures
    during training), forgetting, tensorboard."""
    full = {**DEFAULTS, **params}
    if full["model"] != "mlp" or full["alignment"] or full["forgetting"] or full["tensorboard"]:
        return None
    if mlp_weights(full) > CPU_GROUP_WEIGHTS and not on_cuda(full["device"]):
        return None
    shared = {k: v for k, v in full.items() if k not in GROUP_VARYING}
    return json.dumps(shared, sort_keys=True, default=str)


def mlp_weights(params: dict) -> int:
    """About how many weights the point's MLP has (its dataset's declared input size, 10
    classes), to decide without loading anything whether grouping pays."""
    from math import prod

    from memo.datasets import DatasetError, entry

    try:
        inputs = prod(entry(params["dataset"]).shape[0][1:])
    except (DatasetError, TypeError):
        return 0
    widths = [int(w) for w in str(params["hidden"]).lower().split("x") if w and w != "0"]
    sizes = [inputs, *widths, 10]
    return sum(a * b for a, b in zip(sizes, sizes[1:]))


def on_cuda(device: str) -> bool:
    """Whether the point trains on a GPU (torch imported only for "auto")."""
    if device in ("cpu", "cuda"):
        return device == "cuda"
    from memo.datasets import tensordata

    return tensordata.pick_device(device).type == "cuda"


def trial_group(points: list) -> Iterator[tuple[int, dict | BaseException]]:
    """Train the points with one group_key as one stacked model (memo.training.batched); yield (i,
    metrics as trial() returns them) or (i, exception) for each point i once, as it finishes.
    Points of other keys train in their own stacks, and those of key None alone."""
    from memo.training import batched
    from memo.datasets import tensordata

    keys = {}
    for i, params in enumerate(points):
        keys.setdefault(group_key(params), []).append(i)
    for i in keys.pop(None, []):
        try:
            yield i, trial(points[i])
        except Exception as error:
            yield i, error
    for indices in keys.values():
        members = []
        for i in indices:
            params = points[i]
            try:
                p = Params(**{k: params[k] for k in FIELDS if k in params})
                like = (members[0].data, members[0].sets) if members else None
                device = tensordata.pick_device(p.device)
                data, sets, y_true = load_sets(p, params.get("seed", 0), device, like)
                member = batched.Member(i, params, p, params.get("seed", 0), data, sets, y_true)
                members.append(member)
            except Exception as error:  # this point's own (its params, its data)
                yield i, error
        yield from batched.train(members)
