"""Train one network with SGD or Adam and measure it (Zhang et al. 2017, Mehta et al. 2021).

Reads top to bottom: data (memo.datasets: corruption, label noise, preprocessing; as tensors
on the device by memo.tensordata), model (memo.nets), the epoch loop (memo.training) with its
probes (memo.probes) and checkpoints (memo.checkpoints: a killed point resumes from its last
one), the result. A NaN or infinite training loss (of a batch, or of the training set after an
epoch or at the end) raises FloatingPointError naming the epoch.
Training stops after ``epochs`` epochs or, with ``stop_at_interpolation``, once the network
fits its training set: train accuracy (eval mode) >= ``interp_acc`` or train loss <
``interp_loss``. With ``forgetting`` a second phase follows (see Params); the lr schedule
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
import math
import time
from dataclasses import dataclass
from typing import Literal

from memo.datasets import preprocess_steps

# Which Params each model reads (memo.nets.options(model) minus the init options);
# tests check this against memo.nets, so it can stay free of a torch import.
MODEL_OPTIONS = {
    "mlp": ("hidden", "bias", "activation"),
    "convnet": ("bias", "activation"),
    "alexnet": (),
    "inception": ("batch_norm",),
    "wrn": ("depth", "width", "dropout"),
}


# What trial() returns ("*_curve": one value per epoch, epoch 1 first; run.py --describe).
METRICS = {
    "train_loss": "final training loss (eval mode, the loss param's), >= 0",
    "train_acc": "final training accuracy (eval mode), in [0, 1]",
    "test_loss": "final test loss, >= 0; null without a test split",
    "test_acc": "final test accuracy (against the noisy test labels), in [0, 1]; null without test",
    "test_error": "1 - test_acc, in [0, 1]",
    "test_true_acc": "test accuracy against the labels before label_noise_test, in [0, 1]",
    "interpolated": "the final network fits its training set (interp_acc / interp_loss)",
    "interp_epoch": "first epoch at which phase 1's set was fit; null if never (or not evaluated)",
    "interp_step": "optimizer steps up to interp_epoch",
    "interp_time": "seconds of training and evaluation up to interp_epoch",
    "interp_test_acc": "test accuracy at interp_epoch, in [0, 1]",
    "interp_test_error": "1 - interp_test_acc, in [0, 1]",
    "epochs_run": "epochs trained (fewer than epochs when stopped at interpolation)",
    "steps": "optimizer steps taken",
    "train_time": "seconds of training with the per-epoch evaluation",
    "epoch_time": "seconds of one training pass, mean over the epochs",
    "n_params": "trainable parameters of the model",
    "train_size": "training examples",
    "test_size": "test examples (0 without a test split)",
    "num_classes": "classes of the dataset",
    "label_noise_rate": "share of training labels changed by label_noise, in [0, 1]",
    "label_noise_test_rate": "share of test labels changed by label_noise_test, in [0, 1]",
    "corruption_rate": "share of images corrupted, in [0, 1]",
    "resumed_from": "epoch of the checkpoint the run resumed from (0: none)",
    "forget_start": "forgetting: the epoch phase 2 starts after",
    "forget_train_acc_before": "forgetting: train accuracy at the end of phase 1, in [0, 1]",
    "forget_test_acc_before": "forgetting: test accuracy at the end of phase 1, in [0, 1]",
    "batch_loss_curve": "curves: running training loss over the epoch's batches (train mode)",
    "batch_acc_curve": "curves: running training accuracy over the batches, in [0, 1]",
    "train_loss_curve": "curves: training loss after each epoch (eval mode)",
    "train_acc_curve": "curves: training accuracy after each epoch (eval mode), in [0, 1]",
    "test_loss_curve": "curves: test loss after each epoch",
    "test_acc_curve": "curves: test accuracy after each epoch, in [0, 1]",
    "test_true_acc_curve": "curves: test accuracy against the true labels, in [0, 1]",
    "lr_curve": "curves: the epoch's learning rate",
    "weight_norm_curve": "curves: L2 norm of all weights after the epoch",
    "grad_norm_curve": "curves: gradient L2 norm, mean over the epoch's steps",
    "osc_train_both_curve": "oscillation: share of training points right in this and the last epoch",
    "osc_train_either_curve": "oscillation: share right in this or the last epoch, in [0, 1]",
    "osc_test_both_curve": "oscillation: the same on the test split, both epochs, in [0, 1]",
    "osc_test_either_curve": "oscillation: the same on the test split, either epoch, in [0, 1]",
    "align_step": "alignment: list, the optimizer step of each measurement",
    "align_repr": "alignment: list, in-class alignment of the penultimate representations",
    "align_grad_<layer>": "alignment: list, in-class alignment of a layer's per-example gradients",
    "align_repr_final": "alignment: align_repr at the last step",
    "align_grad_<layer>_final": "alignment: align_grad_<layer> at the last step",
    "align_seconds": "alignment: seconds this run spent measuring",
    "noise_level_log_alpha": "noise ramp: list, ln α of each level",
    "noise_level_info": "noise ramp: list, information bound -½ mean ln α per level",
    "noise_level_train_acc": "noise ramp: list, train accuracy per level, in [0, 1]",
    "noise_level_test_acc": "noise ramp: list, test accuracy per level, in [0, 1]",
    "noise_half_log_alpha_train": "noise ramp: ln α where train accuracy falls halfway to chance",
    "noise_half_log_alpha_test": "noise ramp: the same for test accuracy; null if it never does",
}


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
    alignment: bool = False  # Mehta et al.'s in-class alignment (memo.alignment)
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


def trial(params: dict) -> dict:
    import torch

    from memo import checkpoints, probes, tensordata, training

    p = Params(**{k: params[k] for k in FIELDS if k in params})
    seed = params.get("seed", 0)
    device = tensordata.pick_device(p.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fastest conv kernels; determinism is CPU-only

    # Data: arrays (memo.datasets) -> tensors on the device, in the model's layout.
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
    labels = lambda a: torch.as_tensor(a, device=device)
    sets = {"train": (tensordata.Inputs(data.X, conv, device), labels(data.y))}
    if data.X_test is not None:
        sets["test"] = (tensordata.Inputs(data.X_test, conv, device), labels(data.y_test))
    y_true = labels(data.y_test_true) if p.label_noise_test > 0 else None
    train, y = sets["train"]
    if p.forgetting and "test" not in sets:
        raise ValueError(
            f"forgetting trains on train + test; {p.dataset!r} has no test split (set holdout)"
        )
    if p.augment != "none" and train.image is None:
        raise ValueError(f"augment needs images; {p.dataset!r} with {p.preprocess!r} gives vectors")

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
        both = tensordata.Inputs(_concat(data.X, data.X_test), conv, device)
        both = both, torch.cat([y, y_test])
        phases = [(*both, p.epochs, p.stop_at_interpolation), (train, y, p.forget_epochs, False)]

    # Resume from a checkpoint of the same params if a killed run left one.
    checkpoint = checkpoints.Checkpoint(params)
    saved = checkpoint.load() if p.checkpoint_every else None
    state = {"phase": 0, "epoch": 0, "epochs_done": 0, "step": 0, "elapsed": 0.0}
    state.update(train_seconds=0.0, history={}, interp=None, previous={}, marks={})
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
                _check_finite(stats["loss"], epoch)
                state.update(epoch=state["epoch"] + 1, epochs_done=epoch, step=trainer.step)
                state["train_seconds"] += stats["seconds"]
                evals = {k: evaluate(k) for k in sets} if curves or p.oscillation else {}
                if per_epoch and "train" not in evals:
                    evals["train"] = evaluate("train")
                if "train" in evals:
                    _check_finite(evals["train"].loss, epoch)  # the epoch's last steps too
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
        _check_finite(final["train"].loss, state["epochs_done"])
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


def build_model(p: Params, train, num_classes: int, device):
    """The model of ``p`` for the training inputs' shape, on ``device``."""
    import torch

    from memo.nets import make_model

    if train.conv:
        H, W, C = train.image
        shape = (C, H, W)
    else:
        shape = tuple(train.X.shape[1:])
    options = {k: getattr(p, k) for k in MODEL_OPTIONS[p.model]}
    options.update(init=p.init, init_scale=p.init_scale)
    if p.init_std is not None:
        options["init_std"] = p.init_std
    model = make_model(p.model, shape, num_classes, **options).to(device)
    if train.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


def new_optimizer(p: Params, model):
    from memo.training import make_optimizer

    return make_optimizer(
        model.parameters(), p.optimizer, p.lr, p.momentum, p.nesterov, p.weight_decay
    )


def epoch_row(p: Params, curves: bool, stats, lr, evals, sets, y_true, model, state) -> dict:
    """One epoch's values of the curves (each becomes ``<key>_curve``)."""
    from memo import probes, training

    row = {}
    if curves:
        row.update(batch_loss=stats["loss"], batch_acc=stats["acc"])
        for k, e in evals.items():
            row.update({f"{k}_loss": e.loss, f"{k}_acc": e.acc})
        if y_true is not None:
            row["test_true_acc"] = _accuracy(evals["test"].pred, y_true)
    if p.curves:
        row.update(lr=lr, weight_norm=training.weight_norm(model), grad_norm=stats["grad_norm"])
    if p.oscillation:
        for k in sets:
            correct = evals[k].pred == sets[k][1]
            both, either = probes.oscillation(state["previous"][k], correct)
            row.update({f"osc_{k}_both": both, f"osc_{k}_either": either})
            state["previous"][k] = correct
    return row


def summary(p: Params, final: dict, state: dict, data, sets: dict, y_true, model) -> dict:
    """The scalar results: final losses and accuracies, interpolation, sizes, times."""
    from memo.nets import count_params

    tr, te = final["train"], final.get("test")
    interp = state["interp"] or {}
    test_acc = interp.get("test_acc")
    result = {
        "train_loss": tr.loss,
        "train_acc": tr.acc,
        "test_loss": te.loss if te else None,
        "test_acc": te.acc if te else None,
        "test_error": 1 - te.acc if te else None,
        "interpolated": tr.acc >= p.interp_acc
        or (p.interp_loss is not None and tr.loss < p.interp_loss),
        "interp_epoch": interp.get("epoch"),
        "interp_step": interp.get("step"),
        "interp_time": interp.get("time"),
        "interp_test_acc": test_acc,
        "interp_test_error": None if test_acc is None else 1 - test_acc,
        "epochs_run": state["epochs_done"],
        "steps": state["step"],
        "train_time": state["elapsed"],
        "epoch_time": state["train_seconds"] / max(1, state["epochs_done"]),
        "n_params": count_params(model),
        "train_size": len(sets["train"][1]),
        "test_size": len(sets["test"][1]) if te else 0,
        "num_classes": data.num_classes,
        "label_noise_rate": data.rates.get("labels", 0.0),
        "label_noise_test_rate": data.rates.get("test_labels", 0.0),
        "corruption_rate": data.rates.get("images", 0.0),
    }
    if y_true is not None:
        result["test_true_acc"] = _accuracy(te.pred, y_true)
    if p.forgetting:
        end = state["marks"]["phase1_end"]
        result["forget_start"] = end
        result["forget_train_acc_before"] = state["history"]["train_acc_curve"][end - 1]
        result["forget_test_acc_before"] = state["history"]["test_acc_curve"][end - 1]
    return result


def noise_ramp(p: Params, model, loss_fn, sets: dict, final: dict, num_classes: int) -> dict:
    """The ramp's lists per level, and for each split the ln α at which its accuracy first
    falls below halfway between the clean accuracy and chance (None if it never does)."""
    from memo import probes

    ramp = probes.noise_ramp(
        model,
        sets,
        loss_fn,
        p.noise_levels,
        p.noise_log_alpha,
        p.noise_factor,
        p.noise_epochs,
        p.eval_batch_size,
    )
    result = {key.replace("noise_", "noise_level_", 1): values for key, values in ramp.items()}
    for k in sets:
        halfway = (final[k].acc + 1 / num_classes) / 2
        below = [i for i, a in enumerate(ramp[f"noise_{k}_acc"]) if a < halfway]
        result[f"noise_half_log_alpha_{k}"] = ramp["noise_log_alpha"][below[0]] if below else None
    return result


def _concat(a, b):
    import numpy as np

    return np.concatenate([a, b])


def _check_finite(loss: float, epoch: int) -> None:
    if not math.isfinite(loss):
        raise FloatingPointError(
            f"training loss is {loss} in epoch {epoch}; lower lr or init_scale"
        )


def _accuracy(pred, labels) -> float:
    return (pred == labels).sum().item() / len(labels)  # a count: 9/10 is not 0.8999999
