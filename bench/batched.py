"""Small MLPs trained as one stacked model (trials/train.py's trial_group) against one point at a
time, through memo (trial() per point) and through the standard PyTorch recipe; and the stacked
step against bare batched matmuls and torch.func.

    python bench/batched.py [--threads 1,2] [--repeats 1] [--skip-mnist]

Grids (SGD lr 0.01 momentum 0.9, batch 128, stop at interpolation, checkpoints off): 20 digits
points, MLP 64-256-10, 5 seeds x label noise 0, 0.25, 0.5, 1 (at most --digits-epochs epochs);
20 mnist5k points, MLP 784-512-10, the same seeds and noise levels (--mnist-epochs). Each grid
runs three ways in this process, taking turns, with each torch thread count: grouped
(trial_group; mnist5k's MLPs too, which group_key trains alone on the CPU: CPU_GROUP_WEIGHTS is
lifted for the measurement), one trial() after another, and one point after another the way a user would
write it without memo (the anchor's "DataLoader loop": nn.Sequential, a DataLoader over a
TensorDataset with shuffle, optim.SGD, and after each epoch the training set's loss and
accuracy in eval mode through a DataLoader, to stop at interpolation; the same data, labels and
epochs). Printed per grid and thread count: seconds of each, wall and this process's CPU
(process_time: on a shared machine the wall clock also counts the time other processes held
the cores), the model-epochs each trained (equal when no point stops early), the ratios of
grouped to the other two and of trial() to the recipe; GFLOP/s of the grouped run (the matmul
FLOPs of its training steps and final evaluations per wall second: the per-epoch fit checks,
mostly a few examples, are left out) and of bare torch.bmm running one training step's products
for the 20 models (the orientations memo.training.stacked uses), and their ratio. Then one
training step of the 20 digits models through memo.training.stacked (baddbmm and bmm) against
torch.func (stack_module_state, functional_call, vmap), and with --conv a step of 4 of Mehta's
ConvNets and of Zhang's small AlexNets through torch.func against one at a time. Goals (issue
19): digits >= 5x, mnist5k >= 1.5x, conv nets batched only from 1.5x. Best of --repeats (the
grids after a short warm-up, the steps after a warm-up round).
"""

import argparse
import math
import os
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from memo.training import stacked  # noqa: E402
from memo.nets import make_model  # noqa: E402
from trials import train as train_module  # noqa: E402
from trials.train import trial, trial_group  # noqa: E402
from bench.train import dataloader_evaluate  # noqa: E402 (the recipe's evaluation)

M, BATCH, K = 20, 128, 10
GRIDS = {  # dataset: (layer widths, training examples, test examples)
    "digits": ((64, 256, K), 1438, 359),
    "mnist5k": ((784, 512, K), 4000, 1000),
}


def points(dataset: str, epochs: int) -> list:
    base = dict(dataset=dataset, hidden=str(GRIDS[dataset][0][1]), epochs=epochs, lr=0.01)
    base.update(momentum=0.9, batch_size=BATCH, checkpoint_every=0)
    return [dict(base, seed=s, label_noise=p) for s in range(5) for p in (0.0, 0.25, 0.5, 1.0)]


def layer_flops(widths) -> tuple:
    """FLOPs per example: (forward, one training step's forward and backward)."""
    pairs = list(zip(widths[:-1], widths[1:]))
    forward = sum(2 * a * b for a, b in pairs)
    grad_inputs = sum(2 * a * b for a, b in pairs[1:])  # the first layer's input needs none
    return forward, 2 * forward + grad_inputs


def grid_flops(dataset: str, results: list) -> float:
    """Matmul FLOPs of the grouped run: per model its epochs' training steps and the final
    evaluation of both splits."""
    widths, n_train, n_test = GRIDS[dataset]
    forward, step = layer_flops(widths)
    epochs = sum(r["epochs_run"] for r in results)
    return epochs * n_train * step + len(results) * (n_train + n_test) * forward


def dataloader_point(params: dict) -> dict:
    """One point as the standard PyTorch recipe trains it: the point's data and labels (memo's
    loader, as trial() has them), nn.Sequential, a shuffled DataLoader over a TensorDataset,
    optim.SGD, and after each epoch the training set's loss and accuracy in eval mode through a
    DataLoader, stopping once every example is right; the test accuracy at the end."""
    from memo.datasets.tensordata import load_data

    seed, epochs = params["seed"], params["epochs"]
    data = load_data(params["dataset"], "channel_std", None, 0.2, params["label_noise"], seed=seed)
    train = TensorDataset(torch.from_numpy(data.X).flatten(1), torch.from_numpy(data.y))
    test = TensorDataset(torch.from_numpy(data.X_test).flatten(1), torch.from_numpy(data.y_test))
    widths = GRIDS[params["dataset"]][0]
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(*widths[:2]), nn.ReLU(), nn.Linear(*widths[1:]))
    optimizer = torch.optim.SGD(model.parameters(), params["lr"], momentum=params["momentum"])
    order = torch.Generator().manual_seed(seed)
    loader = DataLoader(train, batch_size=params["batch_size"], shuffle=True, generator=order)

    for epoch in range(1, epochs + 1):
        for xb, yb in loader:
            loss = F.cross_entropy(model(xb), yb)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        if dataloader_evaluate(model, *train.tensors)[1] == 1.0:
            break
    return {"epochs_run": epoch, "test_acc": dataloader_evaluate(model, *test.tensors)[1]}


def bare_bmm_gflops(widths, repeats: int) -> float:
    """GFLOP/s of torch.bmm on one training step's products for M models, alone."""
    pairs = list(zip(widths[:-1], widths[1:]))
    x = {a: torch.randn(M, BATCH, a) for a, _ in pairs}
    g = {b: torch.randn(M, BATCH, b) for _, b in pairs}
    W = {(a, b): torch.randn(M, b, a) for a, b in pairs}
    head = pairs[-1]

    def step():
        for a, b in pairs:
            if (a, b) == head:
                torch.bmm(W[a, b], x[a].transpose(1, 2))
            else:
                torch.bmm(x[a], W[a, b].transpose(1, 2))
            torch.bmm(g[b].transpose(1, 2), x[a])
            if (a, b) != pairs[0]:
                torch.bmm(g[b], W[a, b])

    seconds = best_of({"bmm": lambda: [step() for _ in range(10)]}, repeats)["bmm"][0] / 10
    return M * BATCH * layer_flops(widths)[1] / seconds / 1e9


def best_of(fns: dict, repeats: int, warm_up: bool = True) -> dict:
    """{name: (best wall seconds, best CPU seconds)}, the functions taking turns each round
    (after a warm-up round)."""
    for fn in fns.values() if warm_up else ():
        fn()
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            wall, cpu = time.perf_counter(), time.process_time()
            fn()
            times[name].append((time.perf_counter() - wall, time.process_time() - cpu))
    return {name: tuple(min(t[i] for t in ts) for i in (0, 1)) for name, ts in times.items()}


def compare_grid(dataset: str, epochs: int, repeats: int) -> None:
    grid = points(dataset, epochs)
    trial(dict(grid[0], epochs=1))  # warm-up: imports, the dataset cache, oneDNN primitives
    list(trial_group([dict(p, epochs=1) for p in grid[:2]]))
    dataloader_point(dict(grid[0], epochs=1))
    results = {}

    def grouped():
        # Stacked even where group_key trains them alone (CPU_GROUP_WEIGHTS): measured here.
        limit, train_module.CPU_GROUP_WEIGHTS = train_module.CPU_GROUP_WEIGHTS, math.inf
        try:
            out = dict(trial_group(grid))
        finally:
            train_module.CPU_GROUP_WEIGHTS = limit
        bad = [r for r in out.values() if isinstance(r, BaseException)]
        if bad:
            raise bad[0]
        results["grouped"] = list(out.values())

    def alone():
        results["alone"] = [trial(p) for p in grid]

    def recipe():
        results["recipe"] = [dataloader_point(p) for p in grid]

    runs = {"alone": alone, "grouped": grouped, "recipe": recipe}
    times = best_of(runs, repeats, warm_up=False)
    epochs_run = {k: sum(r["epochs_run"] for r in results[k]) for k in runs}
    widths = GRIDS[dataset][0]
    wall_g, cpu_g = times["grouped"]
    rate = grid_flops(dataset, results["grouped"]) / wall_g / 1e9
    bare = bare_bmm_gflops(widths, max(repeats, 3))
    ratio = lambda a, b, i: times[a][i] / times[b][i]
    names = {"recipe": "DataLoader recipe", "alone": "trial() one by one", "grouped": "grouped"}
    print(
        f"{dataset} {'-'.join(map(str, widths))}, {len(grid)} points, {torch.get_num_threads()} "
        "thread(s), model-epochs "
        + " / ".join(f"{epochs_run[k]} {names[k]}" for k in runs)
        + ":\n"
        + "".join(
            f"  {names[k]:<19}{times[k][0]:7.2f} s wall {times[k][1]:7.2f} s CPU\n" for k in runs
        )
        + f"  grouped vs trial():  {ratio('alone', 'grouped', 0):.2f}x wall, "
        f"{ratio('alone', 'grouped', 1):.2f}x CPU\n"
        f"  grouped vs recipe:   {ratio('recipe', 'grouped', 0):.2f}x wall, "
        f"{ratio('recipe', 'grouped', 1):.2f}x CPU\n"
        f"  trial() vs recipe:   {ratio('recipe', 'alone', 0):.2f}x wall, "
        f"{ratio('recipe', 'alone', 1):.2f}x CPU\n"
        f"  grouped {rate:.1f} GFLOP/s, bare bmm {bare:.1f} GFLOP/s ({rate / bare:.0%})"
    )


def compare_step(repeats: int) -> None:
    """One training step of M digits-sized models: memo.training.stacked against torch.func."""
    widths = GRIDS["digits"][0]
    models = [make_model("mlp", (widths[0],), K, hidden=str(widths[1])) for _ in range(M)]
    x, y = torch.randn(M, BATCH, widths[0]), torch.randint(0, K, (M, BATCH))
    net = stacked.StackedMLP(models)
    optimizer = stacked.StackedOptimizer(net, "sgd", [0.9] * M, [0.0] * M)
    lr = torch.full((M, 1, 1), 0.01)

    def ours():
        loss = stacked.cross_entropy(net(x), y).sum()
        for p in net.params:
            p.grad = None
        loss.backward()
        optimizer.step(lr)

    steps = {"memo.training.stacked": ours, "torch.func vmap": func_step(models, x, y)}
    times = best_of({k: lambda f=f: [f() for _ in range(20)] for k, f in steps.items()}, repeats)
    (s_wall, s_cpu), (f_wall, f_cpu) = times.values()
    print(
        f"one step of {M} MLPs {'-'.join(map(str, widths))}, {torch.get_num_threads()} "
        f"thread(s): memo.training.stacked {s_cpu / 20 * 1e3:.2f} ms CPU, torch.func vmap "
        f"{f_cpu / 20 * 1e3:.2f} ms CPU ({f_cpu / s_cpu:.2f}x)"
    )


def func_step(models: list, x, y):
    """A training step of the models through torch.func: vmap over functional_call with the
    stacked parameters, then plain SGD on them (an update cheaper than momentum's)."""
    from torch.func import functional_call, stack_module_state, vmap

    params, buffers = stack_module_state(models)
    base = models[0]
    call = lambda p, b, xb, yb: F.cross_entropy(functional_call(base, (p, b), (xb,)), yb)
    losses = vmap(call, randomness="different")

    def step():
        loss = losses(params, buffers, x, y).sum()
        for p in params.values():
            p.grad = None
        loss.backward()
        with torch.no_grad():
            for p in params.values():
                p.sub_(p.grad, alpha=0.01)

    return step


def compare_conv(repeats: int, m: int = 4) -> None:
    """A training step of m conv nets through torch.func against m steps one model at a time."""
    for name, shape in (("convnet", (3, 32, 32)), ("alexnet", (3, 28, 28))):
        models = [make_model(name, shape, K) for _ in range(m)]
        x, y = torch.randn(m, BATCH, *shape), torch.randint(0, K, (m, BATCH))
        optimizers = [torch.optim.SGD(model.parameters(), 0.01) for model in models]

        def alone():
            for model, optimizer, xb, yb in zip(models, optimizers, x, y):
                loss = F.cross_entropy(model(xb), yb)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()

        times = best_of({"alone": alone, "vmap": func_step(models, x, y)}, repeats)
        (_, cpu_1), (_, cpu_v) = times.values()
        print(
            f"one step of {m} {name}s: one at a time {cpu_1 * 1e3:.0f} ms CPU, torch.func vmap "
            f"{cpu_v * 1e3:.0f} ms CPU ({cpu_1 / cpu_v:.2f}x)"
        )


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", default="1,2", help="torch thread counts, comma list")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--digits-epochs", type=int, default=20)
    parser.add_argument("--mnist-epochs", type=int, default=5)
    parser.add_argument("--skip-mnist", action="store_true")
    parser.add_argument("--conv", action="store_true", help="also conv nets through torch.func")
    args = parser.parse_args()
    os.environ.setdefault("MEMO_DATASETS", str(ROOT / "datasets"))
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    for threads in [int(t) for t in args.threads.split(",")]:
        torch.set_num_threads(threads)
        compare_step(args.repeats)
        compare_grid("digits", args.digits_epochs, args.repeats)
        if not args.skip_mnist:
            compare_grid("mnist5k", args.mnist_epochs, args.repeats)
        if args.conv:
            compare_conv(args.repeats)
    print(f"load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
