"""The training loop's speed: epoch time against a DataLoader loop, GFLOP/s against plain matmuls.

    python bench/train.py [--epochs 2] [--threads N] [--skip-convnet] [--skip-alignment]

Everything is measured in this run on this machine, so the ratios hold on a noisy one:
- epoch time of memo.training.loop.Trainer vs the usual ``DataLoader(TensorDataset, shuffle=True)``
  loop, same model, data, batch size (128) and optimizer (SGD, momentum 0.9), for an MLP
  3072->512->10 on 50,000 examples, an MLP 64->256->10 on digits and Mehta's ConvNet on
  10,000 32x32x3 examples (random data where the real set is not needed); on digits also
  the epoch with the training set's loss and accuracy in eval mode (to stop at interpolation)
  against the DataLoader loop with the textbook evaluation, the epoch as trials/train.py runs
  it at its defaults (the training pass, then memo.training.fitcheck, which evaluates a few
  examples in most epochs and the whole set where they cannot decide) against that same
  DataLoader loop, and our training pass against a bare loop (the eager floor);
- the MLP 3072->512->10 epoch in GFLOP/s (its matmuls' FLOPs / epoch time) against the
  same matmuls (forward and backward shapes, the same batches) run bare;
- the alignment probe's overhead at trials/train.py's defaults (align_every, align_samples)
  on an MLP on mnist5k: the whole trial's time with the probe / without - 1, and the
  probe's own time (timed inside the run) as a share of the training time.
Goals (issue): large MLP >= 70% of the matmul rate; small models >= 2x faster than the
DataLoader loop; alignment overhead <= 20%. Each timing is the best of ``--epochs`` epochs
(10x as many on digits, whose epochs take milliseconds) after one warm-up epoch; the
alignment rows train 30 epochs (960 steps) with and without the probe, best of
``--epochs`` + 1 runs each of the whole trial (loading, training, evaluation, every probe
call) after a warm-up run.
"""

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from memo.training import fitcheck  # noqa: E402
from memo.training import loop as training  # noqa: E402
from memo.nets import make_model  # noqa: E402

BATCH = 128
EVAL_BATCH = 2048  # trials/train.py's eval_batch_size


def best_of(fns: dict, repeats: int) -> dict:
    """The best time of each function over ``repeats`` rounds after a warm-up round.

    The functions take turns within each round, so a load spike on a shared machine hits
    them alike rather than one of them.
    """
    for fn in fns.values():
        fn()  # warm-up: allocator, oneDNN primitives, page faults
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: min(t) for name, t in times.items()}


def dataloader_epoch(model, optimizer, X, y):
    """The textbook loop: a DataLoader over a TensorDataset, shuffled, one .item() per step."""
    loader = DataLoader(TensorDataset(X, y), batch_size=BATCH, shuffle=True)
    total = 0.0
    for xb, yb in loader:
        loss = F.cross_entropy(model(xb), yb)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        total += loss.item()
    return total


def dataloader_evaluate(model, X, y):
    """The textbook evaluation: eval mode, no_grad, a DataLoader in batches of EVAL_BATCH."""
    model.eval()
    loss, correct = 0.0, 0
    with torch.no_grad():
        for xb, yb in DataLoader(TensorDataset(X, y), batch_size=EVAL_BATCH):
            out = model(xb)
            loss += F.cross_entropy(out, yb, reduction="sum").item()
            correct += (out.argmax(1) == yb).sum().item()
    model.train()
    return loss / len(y), correct / len(y)


def bare_epoch(model, optimizer, X, y):
    """The least an eager loop can do: slices of a permutation, no DataLoader, no bookkeeping."""
    order = torch.randperm(len(y))
    for start in range(0, len(y), BATCH):
        idx = order[start : start + BATCH]
        loss = F.cross_entropy(model(X[idx]), y[idx])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def compare(name, model_name, shape, X, y, repeats, extra=None, evaluate=False, **options):
    """Epoch seconds of our loop and the DataLoader loop (and a bare loop with ``evaluate``,
    and any ``extra`` functions, timed in the same rounds) for one model on one dataset.

    With ``evaluate`` an epoch is a training pass and the loss and accuracy of the training
    set in eval mode, as trials/train.py runs one at its defaults (stop_at_interpolation).
    """
    conv = model_name != "mlp"
    epochs = {}
    for loop in ("ours", "dataloader", "bare") if evaluate else ("ours", "dataloader"):
        torch.manual_seed(0)
        model = make_model(model_name, shape, 10, **options)
        optimizer = training.make_optimizer(model.parameters(), "sgd", 0.01)
        if loop == "ours":
            inputs = training.Inputs(X, conv, torch.device("cpu"))
            labels = torch.tensor(y)
            gen = torch.Generator().manual_seed(0)
            trainer = training.Trainer(
                model, optimizer, training.cross_entropy, inputs, labels, BATCH, gen
            )
            epochs[loop] = lambda: trainer.epoch(0.01)
            if evaluate:
                fit = lambda m=model: training.evaluate(
                    m, inputs, labels, training.cross_entropy, EVAL_BATCH
                )
                epochs["ours+eval"] = lambda: (trainer.epoch(0.01), fit())
                check = fitcheck.FitCheck(inputs, labels, 1.0)

                def checked(m=model):  # as trial() runs an epoch now: the fit check first
                    trainer.epoch(0.01)
                    if not fitcheck.rule_out([check], fitcheck.mlp_layers(m))[0]:
                        check.saw(fit().pred)

                epochs["ours+check"] = checked
        else:
            Xt = torch.tensor(X)
            Xt = Xt.permute(0, 3, 1, 2).contiguous() if conv else Xt.reshape(len(Xt), -1)
            yt = torch.tensor(y)
            loop_epoch = dataloader_epoch if loop == "dataloader" else bare_epoch
            epochs[loop] = lambda m=model, o=optimizer, f=loop_epoch: f(m, o, Xt, yt)
            if loop == "dataloader" and evaluate:
                epochs["dataloader+eval"] = lambda m=model, o=optimizer: (
                    dataloader_epoch(m, o, Xt, yt),
                    dataloader_evaluate(m, Xt, yt),
                )
    times = best_of({**epochs, **(extra or {})}, repeats)
    rows = [("", "ours", "dataloader")]
    if evaluate:
        rows += [
            (" + train eval", "ours+eval", "dataloader+eval"),
            (" + fit check", "ours+check", "dataloader+eval"),
            (" vs bare loop", "ours", "bare"),
        ]
    for suffix, a, b in rows:
        print(
            f"{name + suffix:<34} ours {times[a]:8.4f} s  {b:<15} {times[b]:8.4f} s  "
            f"speed-up {times[b] / times[a]:5.2f}x",
            flush=True,
        )
    return times


def matmul_rate(n: int, d: int, h: int, k: int):
    """(FLOPs of one MLP d->h->k epoch on n examples, a function running those matmuls bare)."""
    x, W1, W2 = torch.randn(BATCH, d), torch.randn(h, d), torch.randn(k, h)
    hid, out = torch.empty(BATCH, h), torch.empty(BATCH, k)
    g_out, g_hid = torch.randn(BATCH, k), torch.empty(BATCH, h)
    gW1, gW2 = torch.empty(h, d), torch.empty(k, h)
    steps = n // BATCH

    def epoch():
        for _ in range(steps):
            torch.mm(x, W1.T, out=hid)  # forward
            torch.mm(hid, W2.T, out=out)
            torch.mm(g_out.T, hid, out=gW2)  # backward: weight grads, and the hidden grad
            torch.mm(g_out, W2, out=g_hid)
            torch.mm(g_hid.T, x, out=gW1)  # no grad for the input: it needs none

    flops = 2 * BATCH * steps * (2 * d * h + 3 * h * k)
    return flops, epoch


def alignment_overhead(repeats: int):
    """Seconds of a whole trial at its default probe settings, without and with alignment,
    and the probe's own seconds (timed inside the run) as a share of the training time."""
    from trials.train import Params, trial

    defaults = Params()
    params = {
        "dataset": "mnist5k",
        "preprocess": "div255",
        "epochs": 30,
        "stop_at_interpolation": False,
        "checkpoint_every": 0,
        "seed": 0,
    }
    trial({**params, "alignment": True})  # warm-up: the dataset cache, torch.func, allocator
    seconds, shares = {False: [], True: []}, []
    for _ in range(repeats):  # interleaved, as in best_of
        for on in (False, True):
            start = time.perf_counter()
            result = trial({**params, "alignment": on})
            seconds[on].append(time.perf_counter() - start)  # the whole trial, every probe call
            if on:
                shares.append(result["align_seconds"] / result["train_time"])
    seconds = {on: min(times) for on, times in seconds.items()}
    print(
        f"{'alignment probe (mnist5k)':<34} off {seconds[False]:8.3f} s  on {seconds[True]:8.3f} s"
        f"  wall {100 * (seconds[True] / seconds[False] - 1):+5.1f}%, probe's own time "
        f"{100 * min(shares):.1f}% of training (every {defaults.align_every} steps, "
        f"{defaults.align_samples} samples)",
        flush=True,
    )
    return min(shares)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs per loop (best of)")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    parser.add_argument("--skip-convnet", action="store_true", help="skip the slow ConvNet row")
    parser.add_argument("--skip-alignment", action="store_true", help="skip the probe's overhead")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )
    rng = np.random.default_rng(0)
    labels = lambda n: rng.integers(0, 10, n)

    X = rng.standard_normal((50_000, 3072), dtype=np.float32)
    flops, bare = matmul_rate(50_000, 3072, 512, 10)
    big = compare(
        "MLP 3072-512-10, 50k", "mlp", (3072,), X, labels(50_000), args.epochs, {"matmuls": bare}
    )
    ours, bare_rate = flops / big["ours"] / 1e9, flops / big["matmuls"] / 1e9
    print(
        f"{'MLP 3072-512-10 GFLOP/s':<34} ours {ours:8.1f}    matmuls         {bare_rate:8.1f}    "
        f"ratio {ours / bare_rate:5.2f}",
        flush=True,
    )
    del X

    from memo.datasets import load_dataset

    digits = load_dataset("digits")
    compare(
        "MLP 64-256-10, digits",
        "mlp",
        (64,),
        np.asarray(digits.X),
        np.asarray(digits.y),
        10 * args.epochs,
        evaluate=True,
        hidden="256",
    )
    if not args.skip_convnet:
        X = rng.standard_normal((10_000, 32, 32, 3), dtype=np.float32)
        compare("ConvNet, 10k 32x32x3", "convnet", (3, 32, 32), X, labels(10_000), args.epochs)
    if not args.skip_alignment:
        alignment_overhead(args.epochs + 1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
