"""The steps trials/train.py's trial() takes: build the model and optimizer, record an
epoch's curves, summarize the run, ramp weight noise; and the metrics they return.

``p`` is always the trial's ``trials.train.Params``. Torch is imported inside the functions,
so that ``run.py --describe`` and the spec checks stay fast.
"""

import math

# Which Params each model reads (memo.nets.options(model) minus the init options);
# tests check this against memo.nets, so it can stay free of a torch import.
MODEL_OPTIONS = {
    "mlp": ("hidden", "bias", "activation"),
    "convnet": ("bias", "activation"),
    "alexnet": (),
    "inception": ("batch_norm",),
    "wrn": ("depth", "width", "dropout"),
}


# What trials/train.py's trial() returns ("*_curve": one value per epoch, epoch 1 first; run.py --describe).
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
    "interp_time": "seconds of training and evaluation up to interp_epoch (grouped: its share)",
    "interp_test_acc": "test accuracy at interp_epoch, in [0, 1]",
    "interp_test_error": "1 - interp_test_acc, in [0, 1]",
    "epochs_run": "epochs trained (fewer than epochs when stopped at interpolation)",
    "steps": "optimizer steps taken",
    "train_time": "seconds of training with the per-epoch evaluation (grouped: its share)",
    "epoch_time": "seconds of one training pass, mean over the epochs (grouped: its share)",
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


def build_model(p, train, num_classes: int, device):
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


def new_optimizer(p, model):
    from memo.training.loop import make_optimizer

    return make_optimizer(
        model.parameters(), p.optimizer, p.lr, p.momentum, p.nesterov, p.weight_decay
    )


def epoch_row(p, curves: bool, stats, lr, evals, sets, y_true, model, state) -> dict:
    """One epoch's values of the curves (each becomes ``<key>_curve``)."""
    from memo.training import probes
    from memo.training import loop as training

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


def summary(p, final: dict, state: dict, data, sets: dict, y_true, model) -> dict:
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


def noise_ramp(p, model, loss_fn, sets: dict, final: dict, num_classes: int) -> dict:
    """The ramp's lists per level, and for each split the ln α at which its accuracy first
    falls below halfway between the clean accuracy and chance (None if it never does)."""
    from memo.training import probes

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


def fresh_state() -> dict:
    """The training state of a run that starts from its init (saved in checkpoints)."""
    state = {"phase": 0, "epoch": 0, "epochs_done": 0, "step": 0, "elapsed": 0.0}
    state.update(train_seconds=0.0, history={}, interp=None, previous={}, marks={})
    return state


def concat(a, b):
    import numpy as np

    return np.concatenate([a, b])


def check_finite(loss: float, epoch: int) -> None:
    if not math.isfinite(loss):
        raise FloatingPointError(
            f"training loss is {loss} in epoch {epoch}; lower lr or init_scale"
        )


def _accuracy(pred, labels) -> float:
    return (pred == labels).sum().item() / len(labels)  # a count: 9/10 is not 0.8999999
