"""trials/train.py and memo/training/loop.py: params, losses, the loop, probes, checkpoints, resume."""

import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from memo.datasets import tensordata
from memo.training import fitcheck
from memo.training import loop as training
from memo.nets import make_model, options
from memo.run.point import Point
from memo.run.spec import load_spec
from memo.training.steps import MODEL_OPTIONS
from memo.run.worker import Job, run_point
from memo.store.records import Store
from trials.train import Params, trial

PROJECT = Path(__file__).resolve().parent.parent
# A small MLP on digits (1438 train / 359 held-out examples): an epoch takes milliseconds.
TINY = dict(dataset="digits", hidden="32", epochs=3, batch_size=64, checkpoint_every=0, seed=0)
TIMES = ("train_time", "epoch_time", "interp_time", "align_seconds", "resumed_from")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def run(root, **params):
    return trial({**TINY, **params})


def same_results(a: dict, b: dict) -> list:
    """Keys whose values differ, timings left out."""
    keys = (set(a) | set(b)) - set(TIMES)
    return sorted(k for k in keys if a.get(k) != b.get(k))


def checkpoints(root) -> list:
    return sorted((root / "results" / "checkpoints").rglob("*"))


# ---------------------------------------------------------------------------------------------
# Params


@pytest.mark.parametrize(
    "given, message",
    [
        ({"label_noise": 1.5}, "label_noise is a probability"),
        ({"holdout": 1.0}, "holdout is a share"),
        ({"epochs": 0}, "epochs must be > 0"),
        ({"n_train": 0}, "n_train must be > 0 or null"),
        ({"model": "convnet", "hidden": "256"}, "hidden applies to model mlp, not 'convnet'"),
        ({"model": "mlp", "depth": 16}, "depth applies to model wrn"),
        ({"init": "mehta"}, "init_std"),
        ({"init_std": 0.1}, "init_std"),
        ({"optimizer": "adam", "nesterov": True}, "nesterov needs optimizer 'sgd'"),
        ({"momentum": 0.0, "nesterov": True}, "momentum > 0"),
        ({"lr_schedule": "step"}, "milestones go with lr_schedule 'step'"),
        ({"milestones": "10"}, "milestones go with lr_schedule 'step'"),
        ({"lr_schedule": "step", "milestones": "20,10"}, "increasing epochs"),
        ({"lr_schedule": "step", "milestones": "ten"}, "comma list"),
        ({"lr_factor": 0.5}, "lr_factor goes with"),
        ({"interp_acc": 0.0}, "interp_acc is an accuracy"),
        ({"noise_levels": -1}, "noise_levels must be >= 0"),
        ({"tensorboard": True}, "tensorboard writes the per-epoch curves: set curves true"),
        ({"init_scale": 0.0}, "init_scale must be > 0"),
        ({"preprocess": "div256"}, "preprocess 'div256': unknown step 'div256'; choose from"),
        ({"model": "wrn", "width": 0}, "width must be > 0"),
        ({"model": "wrn", "dropout": 1.0}, "dropout is a probability"),
        ({"augment": "crop", "crop_padding": 0}, "crop_padding > 0"),
        # params that nothing would read: the point would repeat another under a new id
        ({"optimizer": "adam", "momentum": 0.5}, "momentum applies with optimizer 'sgd' only"),
        ({"augment": "flip", "crop_padding": 2}, "crop_padding applies with augment 'crop'"),
        ({"corruption_p": 0.5}, "corruption_p applies with a corruption other than 'none'"),
        ({"forget_epochs": 10}, "forget_epochs applies with forgetting true only"),
        ({"forget_reset_optimizer": True}, "forget_reset_optimizer applies with forgetting"),
        ({"align_every": 10}, "align_every applies with alignment true only"),
        ({"noise_factor": 4.0}, "noise_factor applies with noise_levels > 0 only"),
    ],
)
def test_params_reject_bad_values_and_combinations(given, message):
    with pytest.raises(ValueError, match=message):
        Params(**given)


def test_params_accept_good_combinations():
    Params(lr_schedule="step", milestones="60, 120", lr_factor=0.2)
    Params(model="convnet", activation="sin", init="mehta", init_std=10.0)
    Params(model="wrn", depth=16, width=2, dropout=0.3, augment="crop+flip")
    Params(lr_schedule="exponential", lr_factor=0.95)


def test_model_options_mirror_memo_nets():
    init = {"init", "init_scale", "init_std"}
    for model, opts in MODEL_OPTIONS.items():
        assert set(opts) == set(options(model)) - init, model


def test_every_experiment_file_of_this_trial_validates():
    names = ("zhang_table1", "zhang_fig1", "mehta", "noise_ramp", "forgetting", "oscillation")
    files = [p for p in (PROJECT / "experiments").glob("*.json") if p.stem.startswith(names)]
    assert len(files) >= 2 * len(names)  # a small and a full variant each
    from memo.plots import validate

    for path in files:
        spec = load_spec(str(path))
        assert spec.trial == "train" and spec.points(), path.name
        assert spec.plots, f"{path.name} has no plots"
        for entry in spec.plots:
            validate(entry)


# ---------------------------------------------------------------------------------------------
# Losses, schedules, augmentation


def test_losses_match_their_definitions():
    torch.manual_seed(0)
    z, y = torch.randn(7, 4), torch.randint(0, 4, (7,))
    hinge = np.mean(
        [sum(max(0.0, 1 + z[i, j] - z[i, y[i]]) for j in range(4) if j != y[i]) for i in range(7)]
    )
    assert training.multiclass_hinge(z, y).item() == pytest.approx(hinge, rel=1e-6)
    onehot = torch.eye(4)[y]
    assert training.squared_loss(z, y).item() == pytest.approx(((z - onehot) ** 2).mean().item())
    log_p = z.log_softmax(1)
    assert training.cross_entropy(z, y).item() == pytest.approx(-log_p[range(7), y].mean().item())


def test_learning_rate_schedules():
    lr = lambda e, s, **kw: training.learning_rate(e, 0.1, s, 10, **kw)
    assert [lr(e, "constant") for e in (0, 9)] == [0.1, 0.1]
    assert lr(5, "step", milestones=(2, 4), factor=0.5) == pytest.approx(0.025)
    assert lr(3, "exponential") == pytest.approx(0.1 * 0.95**3)
    assert lr(0, "cosine") == 0.1 and lr(10, "cosine") == pytest.approx(0.0)


def test_random_crop_and_flip_move_whole_images():
    gen = torch.Generator().manual_seed(0)
    X = np.random.default_rng(0).standard_normal((16, 6, 5, 2)).astype(np.float32)
    conv = tensordata.Inputs(X, conv=True, device=torch.device("cpu"))
    flipped = tensordata.augment(conv.X, conv, 0, True, gen)
    for a, b in zip(flipped, conv.X):
        assert torch.equal(a, b) or torch.equal(a, b.flip(2))
    assert not torch.equal(flipped, conv.X)  # some were flipped
    cropped = tensordata.augment(conv.X, conv, 2, False, gen)
    padded = torch.nn.functional.pad(conv.X, (2, 2, 2, 2))
    for a, p in zip(cropped, padded):  # each crop is a 6x5 window of its padded image
        windows = [p[:, i : i + 6, j : j + 5] for i in range(5) for j in range(5)]
        assert any(torch.equal(a, w) for w in windows)
    flat = tensordata.Inputs(X, conv=False, device=torch.device("cpu"))
    assert torch.equal(tensordata.augment(flat.X, flat, 0, False, gen), flat.X)  # layout round trip
    mirrored = tensordata.augment(flat.X, flat, 0, True, gen).view(16, 6, 5, 2)
    for a, b in zip(mirrored, flat.X.view(16, 6, 5, 2)):
        assert torch.equal(a, b) or torch.equal(a, b.flip(1))


def test_load_data_corrupts_labels_per_split():
    clean = tensordata.load_data("digits", holdout=0.2)
    assert len(clean.y) == 1438 and len(clean.y_test) == 359
    noisy = tensordata.load_data("digits", holdout=0.2, label_noise=1.0, seed=3)
    assert noisy.rates["labels"] == pytest.approx(0.9, abs=0.03)
    assert np.array_equal(noisy.y_test, clean.y_test) and np.array_equal(noisy.X, clean.X)
    both = tensordata.load_data("digits", holdout=0.2, label_noise_test=0.5, seed=3)
    assert np.array_equal(both.y, clean.y) and np.array_equal(both.y_test_true, clean.y_test)
    assert both.rates["test_labels"] == pytest.approx(0.45, abs=0.06)
    images = tensordata.load_data("digits", holdout=0.2, corruption="gaussian", seed=3)
    assert images.rates["images"] == 1.0 and not np.allclose(images.X, clean.X)
    assert np.array_equal(images.y, clean.y)


# ---------------------------------------------------------------------------------------------
# The loop


def test_same_seed_same_curves_other_seed_other_curves(root):
    a = run(root, curves=True, oscillation=True)
    b = run(root, curves=True, oscillation=True)
    assert same_results(a, b) == []
    assert len(a["train_loss_curve"]) == 3 and len(a["osc_test_both_curve"]) == 3
    c = run(root, curves=True, oscillation=True, seed=1)
    assert c["train_loss_curve"] != a["train_loss_curve"]


def test_probes_do_not_change_training(root):
    plain = run(root, curves=True, augment="flip", label_noise=0.2)
    probed = run(root, curves=True, augment="flip", label_noise=0.2, oscillation=True)
    assert probed["train_loss_curve"] == plain["train_loss_curve"]
    assert probed["grad_norm_curve"] == plain["grad_norm_curve"]


def test_alignment_probe_records_without_changing_training(root):
    plain = run(root, curves=True)
    probed = run(root, curves=True, alignment=True, align_every=10, align_samples=64)
    assert probed["train_loss_curve"] == plain["train_loss_curve"]
    steps = probed["align_step"]
    assert steps == [0, 10, 20, 30, 40, 50, 60, 69]  # 23 steps an epoch; the last step too
    layers = [k for k in probed if k.startswith("align_grad_") and not k.endswith("_final")]
    assert set(layers) == {"align_grad_body_0", "align_grad_head", "align_grad_logits"}
    for key in ["align_repr", *layers]:
        assert len(probed[key]) == len(steps) and all(-1 <= v <= 1 for v in probed[key])
        assert probed[f"{key}_final"] == probed[key][-1]


def test_curves_hold_one_value_per_epoch(root):
    r = run(root, curves=True, optimizer="adam", lr=0.003, lr_schedule="step", milestones="2")
    assert r["lr_curve"] == pytest.approx([0.003, 0.003, 0.0003])
    assert r["epochs_run"] == 3 and r["steps"] == 3 * 23
    assert r["train_acc_curve"][-1] == r["train_acc"] and r["test_loss_curve"][-1] == r["test_loss"]
    assert all(n > 0 for n in r["weight_norm_curve"] + r["grad_norm_curve"])
    assert r["train_size"] == 1438 and r["test_size"] == 359 and r["num_classes"] == 10
    assert r["n_params"] == 64 * 32 + 32 + 32 * 10 + 10


def test_oscillation_is_bounded_by_the_accuracies(root):
    r = run(root, oscillation=True, curves=True, epochs=4, lr=0.2)
    for part in ("train", "test"):
        acc = r[f"{part}_acc_curve"]
        both, either = r[f"osc_{part}_both_curve"], r[f"osc_{part}_either_curve"]
        for t in range(1, 4):
            assert both[t] <= min(acc[t - 1], acc[t]) + 1e-6
            assert either[t] >= max(acc[t - 1], acc[t]) - 1e-6
            # |A ∩ B| + |A ∪ B| = |A| + |B|
            assert both[t] + either[t] == pytest.approx(acc[t - 1] + acc[t], abs=1e-5)


def test_stops_at_interpolation_and_records_when(root):
    fast = dict(hidden="256", lr=0.1, n_train=300, epochs=60)
    r = run(root, **fast)
    assert r["interpolated"] and r["train_acc"] == 1.0
    assert r["epochs_run"] == r["interp_epoch"] < 60
    assert r["interp_step"] == r["steps"] and r["interp_time"] > 0
    assert r["interp_test_error"] == pytest.approx(1 - r["interp_test_acc"])
    assert r["interp_test_acc"] == r["test_acc"]  # it stopped right there
    longer = {**fast, "epochs": r["interp_epoch"] + 2, "stop_at_interpolation": False}
    full = run(root, **longer, curves=True)  # without stopping, curves track interpolation
    assert full["epochs_run"] == r["interp_epoch"] + 2 and full["interp_epoch"] == r["interp_epoch"]
    assert run(root, **longer)["interp_epoch"] is None  # nothing evaluated per epoch
    by_loss = run(root, interp_loss=100.0)  # any loss is below: stop after the first epoch
    assert by_loss["epochs_run"] == 1 and by_loss["interp_epoch"] == 1


def test_a_last_batch_of_one_is_left_out_for_batch_norm_only(root):
    params = {**TINY, "model": "wrn", "depth": 10, "n_train": 129, "epochs": 1}
    del params["hidden"]
    r = trial(params)  # batches of 64, 64 and 1: batch norm cannot train on the last
    assert r["steps"] == 2 and math.isfinite(r["train_loss"])
    assert run(root, n_train=129, epochs=1)["steps"] == 3  # an MLP trains on every example


def test_accuracy_is_a_count_not_a_float32_mean():
    model = torch.nn.Linear(10, 10)
    with torch.no_grad():
        model.weight.copy_(torch.eye(10))
        model.bias.zero_()
    inputs = tensordata.Inputs(np.eye(10, dtype=np.float32), False, torch.device("cpu"))
    labels = torch.arange(10)
    labels[9] = 0  # 9 of 10 right
    evaluation = training.evaluate(model, inputs, labels, training.cross_entropy, 4)
    assert evaluation.acc == 0.9  # a float32 mean gives 0.8999999761581421 < 0.9


def test_conv_models_train_with_augmentation(root):
    params = {**TINY, "model": "alexnet", "n_train": 128, "epochs": 1}
    del params["hidden"]
    r = trial({**params, "augment": "crop+flip", "crop_padding": 1})
    assert r["epochs_run"] == 1 and math.isfinite(r["train_loss"]) and r["n_params"] == 278666
    with pytest.raises(ValueError, match="augment needs images"):
        run(root, augment="flip", preprocess="flatten")


def test_label_noise_reaches_the_trained_and_tested_labels(root):
    r = run(root, label_noise_test=0.3, hidden="128", lr=0.1)
    assert r["label_noise_rate"] == 0.0
    assert r["label_noise_test_rate"] == pytest.approx(0.27, abs=0.06)
    assert r["test_true_acc"] > 0.8 > r["test_acc"]  # right on the true labels, not the noisy
    assert "test_true_acc" not in run(root)  # reported only with test label noise
    noisy = run(root, label_noise=1.0)
    assert noisy["label_noise_rate"] == pytest.approx(0.9, abs=0.03)
    assert noisy["test_acc"] < 0.3  # random training labels teach nothing about the test set


def test_forgetting_runs_two_phases(root):
    common = dict(forgetting=True, epochs=3, forget_epochs=2, stop_at_interpolation=False)
    kept = run(root, **common, label_noise_test=1.0)
    assert kept["forget_start"] == 3 and len(kept["test_acc_curve"]) == 5
    assert kept["forget_test_acc_before"] == kept["test_acc_curve"][2]
    assert kept["train_size"] == 1438  # phase 2's training set
    reset = run(root, **common, label_noise_test=1.0, forget_reset_optimizer=True)
    assert reset["train_loss_curve"][:3] == kept["train_loss_curve"][:3]
    assert reset["train_loss_curve"][3:] != kept["train_loss_curve"][3:]
    decaying = run(root, **common, curves=True, lr_schedule="exponential", lr_factor=0.5)
    assert decaying["lr_curve"] == [0.01 * 0.5**e for e in range(5)]  # on across the phases


def test_noise_ramp_goes_from_clean_to_chance(root):
    r = run(
        root,
        hidden="128",
        lr=0.1,
        epochs=5,
        noise_levels=4,
        noise_log_alpha=-8.0,
        noise_factor=math.exp(4),
        noise_epochs=2,
    )
    assert r["noise_level_log_alpha"] == pytest.approx([-8.0, -4.0, 0.0, 4.0])
    assert r["noise_level_info"] == pytest.approx([4.0, 2.0, 0.0, -2.0])
    assert r["noise_level_train_acc"][0] == pytest.approx(r["train_acc"], abs=0.02)
    assert r["noise_level_test_acc"][-1] < 0.5 * r["test_acc"]
    assert r["noise_half_log_alpha_train"] in r["noise_level_log_alpha"]


# ---------------------------------------------------------------------------------------------
# Failures, checkpoints, resume


def test_a_network_that_diverges_in_its_last_step_is_an_error(root):
    # One step per epoch: the loss it sees is finite, the weights it leaves are not.
    params = dict(n_train=64, epochs=1, lr=1e30, momentum=0.0, stop_at_interpolation=False)
    with pytest.raises(FloatingPointError, match="training loss is nan in epoch 1"):
        run(root, **params)
    with pytest.raises(FloatingPointError, match="in epoch 1"):
        run(root, **{**params, "stop_at_interpolation": True})  # by the per-epoch evaluation


def test_nan_loss_is_an_error_record_with_the_epoch(root):
    params = {**TINY, "loss": "squared", "lr": 1e8, "checkpoint_every": 1, "epochs": 20}
    job = Job("nan", "train", str(root / "results"), None, 1, {})

    outcome = run_point(job, Point("p", 0, params, 0))
    record = Store("nan", root / "results").read("p")
    assert outcome.status == record["status"] == "error"
    assert "FloatingPointError: training loss is" in record["error"]
    assert "in epoch" in outcome.message
    assert not [p for p in checkpoints(root) if p.is_file()]  # no checkpoint to resume into NaN


def interrupt_after(monkeypatch, epochs: int):
    """Make the (epochs + 1)-th call of Trainer.epoch raise KeyboardInterrupt, as a Ctrl-C."""
    calls = {"n": 0}
    original = training.Trainer.epoch

    def epoch(self, lr):
        calls["n"] += 1
        if calls["n"] > epochs:
            raise KeyboardInterrupt
        return original(self, lr)

    monkeypatch.setattr(training.Trainer, "epoch", epoch)


def test_resumes_from_the_last_checkpoint_with_the_same_result(root, monkeypatch):
    params = dict(epochs=9, checkpoint_every=3, curves=True, oscillation=True, label_noise=0.3)
    params.update(augment="flip", stop_at_interpolation=False)
    uninterrupted = run(root, **params)
    assert uninterrupted["resumed_from"] == 0 and not checkpoints(root)[1:]  # deleted when done
    with monkeypatch.context() as m:
        interrupt_after(m, 7)  # checkpoints after epochs 3 and 6; killed in epoch 8
        with pytest.raises(KeyboardInterrupt):
            run(root, **params)
    (saved,) = [p for p in checkpoints(root) if p.is_file()]
    assert saved.suffix == ".pt" and saved.parent.name == "train"
    resumed = run(root, **params)
    assert resumed["resumed_from"] == 6
    assert same_results(resumed, uninterrupted) == []
    assert not saved.exists()
    other_seed = run(root, **params, seed=1)  # a checkpoint is only used by its own params
    assert other_seed["resumed_from"] == 0


KILLED = """
import sys, time, torch
torch.set_num_threads(1)
from memo.training import fitcheck
from memo.training import loop as training
epoch = training.Trainer.epoch
def slow(self, lr):  # slower epochs, so the parent sees a checkpoint before the end
    time.sleep(0.05)
    return epoch(self, lr)
training.Trainer.epoch = slow
from trials.train import trial
trial(PARAMS)
print("finished")
"""


def test_a_killed_process_resumes_from_its_checkpoint(root):
    params = {**TINY, "epochs": 40, "checkpoint_every": 5, "curves": True}
    params["stop_at_interpolation"] = False
    script = KILLED.replace("PARAMS", repr(params))
    env = {**os.environ, "PYTHONPATH": str(PROJECT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", script], env=env, cwd=PROJECT)
    deadline = time.monotonic() + 60
    while not [p for p in checkpoints(root) if p.suffix == ".pt"] and proc.poll() is None:
        assert time.monotonic() < deadline, "no checkpoint within 60 s"
        time.sleep(0.01)
    proc.kill()
    assert proc.wait() != 0, "the trial finished before it could be killed"
    resumed = run(root, **params)
    assert resumed["resumed_from"] >= 5
    assert same_results(resumed, run(root, **params)) == []  # the second run starts afresh


def tensorboard_scalars(root, tag: str) -> list:
    """(epoch, value) of one curve as TensorBoard reads the run's event files."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    (run_dir,) = (root / "results" / "tensorboard").iterdir()
    events = EventAccumulator(str(run_dir))
    events.Reload()
    return [(e.step, e.value) for e in events.Scalars(tag)]


def test_tensorboard_events_of_the_curves_resume_without_repeats(root, monkeypatch):
    params = dict(epochs=9, checkpoint_every=3, curves=True, stop_at_interpolation=False)
    with monkeypatch.context() as m:
        interrupt_after(m, 7)  # events for epochs 1-7; the checkpoint after epoch 6
        with pytest.raises(KeyboardInterrupt):
            run(root, **params, tensorboard=True)
    assert [step for step, _ in tensorboard_scalars(root, "train_acc")] == list(range(1, 8))
    resumed = run(root, **params, tensorboard=True)
    assert resumed["resumed_from"] == 6
    for tag in ("train_acc", "test_loss", "lr", "weight_norm"):
        curve = tensorboard_scalars(root, tag)  # epoch 7 once, from the resumed run
        assert [step for step, _ in curve] == list(range(1, 10))
        assert [value for _, value in curve] == pytest.approx(resumed[f"{tag}_curve"], rel=1e-6)


def test_run_py_stores_curves_in_the_records(write_spec, cli, root, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    spec = {
        "trial": "train",
        "param_grid": {"restart": [0, 1]},
        "defaults": {**{k: v for k, v in TINY.items() if k != "seed"}, "curves": True},
    }
    write_spec("tiny", spec)
    done = cli("--name", "tiny")
    assert done.returncode == 0, done.stderr
    from memo.store.records import load_results

    df = load_results("tiny")
    assert len(df) == 2 and all(len(c) == 3 for c in df["train_acc_curve"])
    assert df["train_acc_curve"].iloc[0] != df["train_acc_curve"].iloc[1]  # seeds differ


# ---------------------------------------------------------------------------------------------
# The fit check (memo.training.fitcheck): most epochs decide the fit from a few examples


def training_set_evaluations(monkeypatch) -> list:
    """The sizes of the splits training.evaluate sees, as it is called."""
    calls, original = [], training.evaluate

    def counted(model, inputs, y, *args):
        calls.append(len(y))
        return original(model, inputs, y, *args)

    monkeypatch.setattr(training, "evaluate", counted)
    return calls


@pytest.mark.parametrize("interp_acc", [1.0, 0.97])
def test_the_fit_check_stops_where_the_full_evaluation_does(root, monkeypatch, interp_acc):
    params = dict(hidden="256", lr=0.1, n_train=300, label_noise=0.5, epochs=100)
    params.update(interp_acc=interp_acc)
    monkeypatch.setattr(fitcheck, "ENABLED", False)
    full = run(root, **params)
    monkeypatch.setattr(fitcheck, "ENABLED", True)
    calls = training_set_evaluations(monkeypatch)
    checked = run(root, **params)
    assert same_results(checked, full) == [] and full["interp_epoch"] > 10
    assert calls.count(300) < full["epochs_run"] / 2  # most epochs skipped the evaluation


def test_an_example_counts_as_wrong_only_beyond_any_rounding():
    # Class 1's logit is class 0's with its terms summed in another order: equal in exact
    # arithmetic, while a float evaluation may put either above. Class 2's exceeds class 0's
    # by 1e-7 of the terms' magnitude in exact arithmetic, within float32's rounding of a sum
    # of 1000 terms; class 3's by 1e-2 of it, beyond.
    w = torch.randn(1000, generator=torch.Generator().manual_seed(0))
    x = torch.ones(1, 1, 1000)
    size = w.double().abs().sum()
    shifts = [0.0, 1e-7, 1e-2]
    rows = [w, w.flip(0)] + [(w.double() + s * size / 1000).float() for s in shifts[1:]]
    assert (rows[2].double() - w.double()).sum() > 0  # class 2 above class 0 in exact arithmetic
    W = torch.stack(rows)[None]
    wrong = lambda classes: fitcheck.surely_wrong([(W[:, classes], None)], x, torch.tensor([[0]]))
    assert not wrong([0, 1]).item() and not wrong([0, 2]).item()
    assert wrong([0, 3]).item() and wrong([0, 1, 2, 3]).item()


def test_the_fit_check_leaves_to_the_full_evaluation_a_loss_that_may_overflow():
    X = np.random.default_rng(0).normal(size=(200, 20)).astype(np.float32)
    inputs, y = tensordata.Inputs(X, False, torch.device("cpu")), torch.arange(200) % 10
    torch.manual_seed(0)
    model = make_model("mlp", (20,), 10, hidden="8")
    check = fitcheck.FitCheck(inputs, y, 1.0)
    check.saw(training.evaluate(model, inputs, y, training.squared_loss, 64).pred)
    assert fitcheck.rule_out([check], fitcheck.mlp_layers(model)) == [True]
    with torch.no_grad():
        model.head.weight.mul_(1e25)  # logits near 1e25: their squares overflow float32
    assert math.isinf(training.evaluate(model, inputs, y, training.squared_loss, 64).loss)
    assert fitcheck.rule_out([check], fitcheck.mlp_layers(model)) == [False]


def test_a_nan_after_the_fit_check_took_over_is_an_error_record_naming_its_epoch(root, monkeypatch):
    # One step per epoch; the lr jumps to 1e30 in epoch 4, whose one step sees a finite loss
    # and leaves weights that are not finite: only the evaluation after it can see that.
    params = dict(TINY, n_train=64, lr=0.01, epochs=10, lr_schedule="step", milestones="3")
    params.update(lr_factor=1e32)
    calls = training_set_evaluations(monkeypatch)
    job = Job("nan", "train", str(root / "results"), None, 1, {})

    run_point(job, Point("p", 0, params, 0))
    record = Store("nan", root / "results").read("p")
    assert record["status"] == "error" and "training loss is nan in epoch 4" in record["error"]
    assert calls.count(64) == 2  # epochs 1 and 4: the check decided epochs 2 and 3
