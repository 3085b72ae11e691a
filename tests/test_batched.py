"""trials/train.py's group_key and trial_group (memo.training.batched, memo.training.stacked): many MLPs trained as
one stacked model, each as trial() trains it alone."""

import pytest
import torch

from memo.training import batched, fitcheck
from memo.training import stacked
from memo.training import loop as training
from trials.train import group_key, trial, trial_group

# Small MLPs on digits (1438 train / 359 held-out examples): an epoch takes milliseconds.
TINY = dict(dataset="digits", hidden="32", epochs=2, batch_size=64, checkpoint_every=0)
TINY["stop_at_interpolation"] = False
FAST = dict(dataset="digits", hidden="256", lr=0.1, n_train=300, checkpoint_every=0)  # fits fast
TIMES = {"train_time", "epoch_time", "interp_time"}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def grouped(points: list) -> dict:
    """{i: metrics or exception} of trial_group, checking that each point comes once."""
    out = {}
    for i, result in trial_group(points):
        assert i not in out, f"point {i} yielded twice"
        out[i] = result
    assert sorted(out) == list(range(len(points)))
    return out


def assert_same(single: dict, group: dict) -> None:
    """Equal metrics up to the order of float sums: losses and norms to 1e-4 relative,
    accuracies to a few examples of digits (a prediction on a tie may flip)."""
    assert set(single) == set(group)
    for key in sorted(set(single) - TIMES):
        a, b = single[key], group[key]
        if isinstance(a, bool) or a is None or isinstance(a, (int, str)):
            assert a == b, key
        elif "acc" in key or key.startswith(("osc_", "test_error", "interp_test_error")):
            assert b == pytest.approx(a, abs=3e-3), key
        else:
            assert b == pytest.approx(a, rel=1e-4), key


@pytest.mark.parametrize(
    "optimizer, own",
    [
        ("sgd", [dict(momentum=0.5), dict(weight_decay=1e-3, lr=0.05), dict(momentum=0.0)]),
        ("sgd", [dict(nesterov=True, momentum=0.5), dict(nesterov=True, weight_decay=1e-3)] * 2),
        ("adam", [dict(lr=0.003), dict(weight_decay=1e-3, lr=0.01), dict(lr=0.001)]),
    ],
)
def test_first_epochs_equal_the_single_runs(root, optimizer, own):
    """Each model keeps its seed's init, data order and labels, and its own optimizer settings."""
    common = dict(TINY, optimizer=optimizer, curves=True)
    points = [
        dict(common, seed=0, **own[0]),
        dict(common, seed=1, label_noise=0.3, init="he", init_scale=0.5, **own[1]),
        dict(common, seed=2, oscillation=True, lr_schedule="step", milestones="1", **own[2]),
    ]
    points[2].update(noise_levels=2, label_noise_test=0.2)
    assert len({group_key(p) for p in points}) == 1
    group = grouped(points)
    for i, point in enumerate(points):
        assert_same(trial(point), group[i])
    assert group[0]["train_loss_curve"] != group[1]["train_loss_curve"]


@pytest.mark.parametrize(
    "shape",
    [
        dict(hidden="0"),
        dict(hidden="16x16", activation="sin", bias=False),
        dict(hidden="16x8", activation="tanh", loss="hinge", augment="crop+flip", crop_padding=1),
        dict(activation="sigmoid", loss="squared", optimizer="adam", lr=0.01),
    ],
)
def test_every_mlp_shape_loss_and_augmentation(root, shape):
    points = [dict(TINY, epochs=1, curves=True, seed=s, **shape) for s in range(2)]
    group = grouped(points)
    for i, point in enumerate(points):
        assert_same(trial(point), group[i])


def test_each_model_its_own_corrupted_images(root):
    kinds = ("none", "gaussian", "shuffled_pixels")
    points = [dict(TINY, seed=s, corruption=kind) for s, kind in enumerate(kinds)]
    group = grouped(points)
    for i, point in enumerate(points):
        assert_same(trial(point), group[i])
    assert group[1]["corruption_rate"] == 1.0


def test_a_model_that_fits_stops_there_while_the_others_go_on(root):
    points = [dict(FAST, seed=0, epochs=40), dict(FAST, seed=1, label_noise=0.5, epochs=15)]
    order = [i for i, _ in trial_group(points)]
    assert order == [0, 1]  # each as it finishes
    group = grouped(points)
    fit, other = group[0], group[1]
    assert fit["interpolated"] and fit["epochs_run"] == fit["interp_epoch"] < 15
    assert other["epochs_run"] == 15 and not other["interpolated"]
    for i, point in enumerate(points):  # trained on after it fit, its final loss would differ
        assert_same(trial(point), group[i])


def test_the_fit_check_stops_each_model_where_the_full_evaluation_does(root, monkeypatch):
    noisy = dict(FAST, label_noise=0.5, epochs=100)
    points = [dict(noisy, seed=0), dict(noisy, seed=1), dict(FAST, seed=2, epochs=100)]
    points += [dict(noisy, seed=3, curves=True), dict(noisy, seed=4, interp_acc=0.97)]
    monkeypatch.setattr(fitcheck, "ENABLED", False)
    full = grouped(points)
    monkeypatch.setattr(fitcheck, "ENABLED", True)
    evaluated, evaluate = [], batched.evaluate  # model-evaluations of the training set

    def counted(model, inputs, Y, *args):
        evaluated.extend([Y.shape[1]] * len(Y))
        return evaluate(model, inputs, Y, *args)

    monkeypatch.setattr(batched, "evaluate", counted)
    checked = grouped(points)
    for i in range(len(points)):
        assert full[i]["interp_epoch"] is not None
        assert {k: v for k, v in checked[i].items() if k not in TIMES} == {
            k: v for k, v in full[i].items() if k not in TIMES
        }
    epochs = sum(r["epochs_run"] for r in full.values())
    curves = full[3]["epochs_run"]  # evaluated every epoch: the curves read it
    assert curves + len(points) <= evaluated.count(300) < curves + (epochs - curves) / 2


def test_epochs_to_interpolation_match_over_seeds(root):
    points = [dict(FAST, seed=seed, epochs=40, hidden="64") for seed in range(4)]
    group = grouped(points)
    single = [trial(point)["interp_epoch"] for point in points]
    assert None not in single and len(set(single)) > 1  # the seeds differ
    # Equal here; the float sums' order, which differs between CPUs, may move one by an epoch.
    assert all(abs(group[i]["interp_epoch"] - e) <= 1 for i, e in enumerate(single))


def test_a_diverging_model_is_an_error_naming_its_epoch_and_the_group_finishes(root):
    points = [dict(TINY, seed=s, loss="squared") for s in range(3)]
    points[1]["lr"] = 1e8
    order = [i for i, _ in trial_group(points)]
    assert order[0] == 1  # yielded after its first epoch; the others go on
    group = grouped(points)
    with pytest.raises(FloatingPointError, match="in epoch 1"):
        trial(points[1])
    assert isinstance(group[1], FloatingPointError) and "in epoch 1" in str(group[1])
    for i in (0, 2):
        assert_same(trial(points[i]), group[i])


def test_a_bad_point_is_its_own_error(root):
    points = [dict(TINY, seed=0), dict(TINY, seed=1, n_train=10**6), dict(TINY, seed=2)]
    group = grouped(points)
    assert isinstance(group[1], ValueError) and "n_train" in str(group[1])
    assert_same(trial(points[2]), group[2])


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_checkpoints_resume_per_model_grouped_or_alone(root, monkeypatch, optimizer):
    common = dict(TINY, epochs=5, checkpoint_every=2, curves=True, optimizer=optimizer)
    points = [dict(common, seed=0, lr=0.003), dict(common, seed=1, oscillation=True, lr=0.01)]
    uninterrupted = [trial(point) for point in points]
    epoch = batched.Group.train_pass
    calls = []

    def killed_in_epoch_4(self, lrs):
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return epoch(self, lrs)

    with monkeypatch.context() as m:
        m.setattr(batched.Group, "train_pass", killed_in_epoch_4)
        with pytest.raises(KeyboardInterrupt):
            grouped(points)
    saved = sorted((root / "results" / "checkpoints" / "train").glob("*.pt"))
    assert len(saved) == 2  # one per point, as trial() names and writes them
    alone = trial(points[0])  # a group's checkpoint resumed alone
    assert alone["resumed_from"] == 2
    assert_same(uninterrupted[0], {**alone, "resumed_from": 0})
    again = grouped(points)  # point 1's resumed in a group; point 0 starts afresh
    assert again[0]["resumed_from"] == 0 and again[1]["resumed_from"] == 2
    for i in range(2):
        assert_same(uninterrupted[i], {**again[i], "resumed_from": 0})
    assert not list((root / "results" / "checkpoints" / "train").glob("*.pt"))


def test_group_key_groups_what_a_stack_can_train(root):
    key = group_key(TINY)
    assert key is not None and key == group_key({**TINY, "hidden": "32"})
    varied = dict(seed=3, label_noise=0.5, lr=0.5, momentum=0.0, init_scale=2.0, epochs=9)
    assert group_key({**TINY, **varied, "curves": True, "corruption": "gaussian"}) == key
    for other in (dict(hidden="64"), dict(batch_size=32), dict(loss="hinge"), dict(bias=False)):
        assert group_key({**TINY, **other}) not in (key, None)
    alone = [dict(model="convnet"), dict(alignment=True), dict(forgetting=True)]
    alone.append(dict(tensorboard=True, curves=True))
    for other in alone:
        assert group_key({**TINY, **other}) is None


def test_mlps_too_big_to_gain_from_a_stack_on_the_cpu_train_alone():
    """784-512-10 on mnist5k gained < 1.5x stacked on the CPU (bench/README.md): alone."""
    big = {**TINY, "dataset": "mnist5k", "hidden": "512", "device": "cpu"}
    assert group_key(big) is None
    assert group_key({**big, "hidden": "64"}) is not None  # 784-64-10: 51k weights
    assert group_key({**TINY, "dataset": "digits", "hidden": "256", "device": "cpu"}) is not None


def test_stacked_losses_are_each_models_own():
    z, y = torch.randn(3, 5, 4), torch.randint(0, 4, (3, 5))
    for name, loss in stacked.LOSSES.items():
        each = torch.stack([training.LOSSES[name](z[m], y[m]) for m in range(3)])
        assert torch.allclose(loss(z, y), each, rtol=1e-6), name


def test_stacks_on_the_cpu_hold_what_fits_the_cache(root, monkeypatch):
    points = [dict(TINY, seed=s, label_noise=0.2 * s) for s in range(3)]
    weights = 4 * (64 * 32 + 32 + 32 * 10 + 10)
    monkeypatch.setattr(batched, "CPU_STACK_BYTES", 2 * weights)  # stacks of 2 and 1
    sizes, init = [], batched.Group.__init__
    monkeypatch.setattr(batched.Group, "__init__", lambda g, m: sizes.append(len(m)) or init(g, m))
    group = grouped(points)
    assert sizes == [2, 1]
    for i, point in enumerate(points):
        assert_same(trial(point), group[i])
