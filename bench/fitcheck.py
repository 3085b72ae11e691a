"""stop_at_interpolation's fit check (memo/training/fitcheck.py) against the full evaluation of the
training set after every epoch, on zhang_fig1_small's points.

    python bench/fitcheck.py [--noise 0,0.5,1] [--repeats 2] [--threads 1]

One point of experiments/zhang_fig1_small.json per label noise (MLP 784-512-10 on mnist5k, SGD
lr 0.1 momentum 0.9, stop at interpolation, seed 0, checkpoints off), trained by trial() with
the check off (fitcheck.ENABLED False: the evaluation as before) and on, taking turns in this
process. Printed per point: the best wall and CPU seconds of each, their ratio, and whether the
two records are identical apart from their times (they must be: the check decides exactly as
the full evaluation would).
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from memo.training import fitcheck  # noqa: E402
from trials.train import trial  # noqa: E402

TIMES = {"interp_time", "train_time", "epoch_time"}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--noise", default="0,0.5,1", help="label noise levels, comma list")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    os.environ.setdefault("MEMO_DATASETS", str(ROOT / "datasets"))
    torch.set_num_threads(args.threads)
    spec = json.loads((ROOT / "experiments" / "zhang_fig1_small.json").read_text())
    base = dict(spec["defaults"], checkpoint_every=0, seed=0)
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    trial(dict(base, epochs=1))  # warm-up: imports, the dataset cache, oneDNN primitives
    for noise in [float(p) for p in args.noise.split(",")]:
        times, records = {False: [], True: []}, {}
        for _ in range(args.repeats):
            for on in (False, True):
                fitcheck.ENABLED = on
                wall, cpu = time.perf_counter(), time.process_time()
                records[on] = trial(dict(base, label_noise=noise))
                times[on].append((time.perf_counter() - wall, time.process_time() - cpu))
        fitcheck.ENABLED = True
        best = {on: [min(t[i] for t in ts) for i in (0, 1)] for on, ts in times.items()}
        same = [{k: v for k, v in records[on].items() if k not in TIMES} for on in (False, True)]
        r = records[True]
        print(
            f"label noise {noise}: interp_epoch {r['interp_epoch']}, interp_test_error "
            f"{r['interp_test_error']:.3f}, records identical: {same[0] == same[1]}\n"
            f"  full evaluation {best[False][0]:6.2f} s wall {best[False][1]:6.2f} s CPU\n"
            f"  fit check       {best[True][0]:6.2f} s wall {best[True][1]:6.2f} s CPU\n"
            f"  ratio {best[False][0] / best[True][0]:.2f}x wall, "
            f"{best[False][1] / best[True][1]:.2f}x CPU",
            flush=True,
        )
    print(f"load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
