"""Many MLPs trained as one stacked model (memo.training.stacked): trials/train.py's ``trial_group``.

Points that differ only in what each model of a stack can have of its own (seed, label noise,
corruption, init, lr, momentum, weight decay, schedule, epochs, stopping, probes: the trial's
``group_key``) train together. Each model starts from the init its seed gives it alone, draws
its data order and augmentation from its own generator seeded by its seed, and trains on its
own labels and images; a step takes every model's next batch and runs one stacked forward,
backward and update. So for a seed the first steps equal trial()'s up to the order of float
sums, and each model follows trial()'s loop: its own per-epoch evaluation, curves, oscillation
and interpolation, checkpoints in trial()'s format (a point resumes from its checkpoint grouped
or alone), and the noise ramp after training. A model that fits its training set (with
``stop_at_interpolation``) or reaches its epochs leaves the stack with its result; one whose
loss is not finite leaves it with trial()'s FloatingPointError naming the epoch.

Times (train_time, epoch_time, interp_time) are each model's share of the group's: an epoch's
seconds divided by the models it trained.
"""

import time
from dataclasses import dataclass, field
from typing import Iterator

import torch

from memo.training import checkpoints, fitcheck
from memo.training import loop as training
from memo.nets import count_params
from memo.training.stacked import LOSSES, StackedMLP, StackedOptimizer, evaluate
from memo.datasets.tensordata import augment
from memo.training.steps import (
    build_model,
    check_finite,
    epoch_row,
    fresh_state,
    new_optimizer,
    noise_ramp,
    summary,
)


@dataclass
class Member:
    """One point of a group: what trial() has after loading its data, then its training."""

    index: int  # position in the group's list of points
    params: dict
    p: object  # trials.train.Params
    seed: int
    data: object  # memo.datasets.tensordata.Data
    sets: dict  # {"train": (Inputs, labels), "test": ...}
    y_true: object  # test labels before test label noise, or None
    state: dict = field(default_factory=fresh_state)

    def start(self) -> None:
        """The model from the seed's init, torch's optimizer (the checkpoints' format), the
        data generator; resumed from the point's checkpoint when a killed run left one."""
        p, device = self.p, self.sets["train"][1].device
        torch.manual_seed(self.seed)
        self.model = build_model(p, self.sets["train"][0], self.data.num_classes, device)
        self.optimizer = new_optimizer(p, self.model)
        self.generator = torch.Generator(device).manual_seed(self.seed)
        self.checkpoint = checkpoints.Checkpoint(self.params)
        saved = self.checkpoint.load() if p.checkpoint_every else None
        if saved:
            self.model.load_state_dict(saved["model"])
            self.optimizer.load_state_dict(saved["optimizer"])
            checkpoints.set_rng_state(self.generator, saved["rng"])
            self.state = saved["state"]
            self.state["previous"] = {
                k: v.to(device) for k, v in saved["state"]["previous"].items()
            }
        self.torch_rng = torch.get_rng_state()  # as alone after its init: for the noise ramp
        self.resumed_from = self.state["epochs_done"]
        self.stop = False
        self.all_sets = p.curves or p.oscillation  # evaluated on every split each epoch
        self.per_epoch = self.all_sets or p.stop_at_interpolation  # the training set each epoch
        train, y = self.sets["train"]
        applies = fitcheck.applies(p, self.model)  # only the fit read from that evaluation
        self.fit_check = fitcheck.FitCheck(train, y, p.interp_acc) if applies else None

    def learning_rate(self) -> float:
        p = self.p
        schedule = (p.lr_schedule, p.epochs, p.milestone_list(), p.lr_factor)
        return training.learning_rate(self.state["epochs_done"], p.lr, *schedule)

    def save(self, group: "Group", k: int) -> None:
        """A checkpoint as trial() writes it, from model k of the stack."""
        group.model.copy_to(k, self.model)
        group.optimizer.export(k, self.optimizer)
        torch.set_rng_state(self.torch_rng)  # training draws nothing from it: as alone
        state = {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict()}
        state.update(rng=checkpoints.rng_state(self.generator), state=self.state)
        self.checkpoint.save(state)


def train(members: list) -> Iterator[tuple[int, dict | BaseException]]:
    """Train the members as stacked models (see :func:`stacks`); yield (index, metrics or
    exception) for each member once, as it finishes. A failure of a whole stack (out of
    memory, say) is each of its remaining members'."""
    started = []
    for member in members:
        try:
            member.start()
            started.append(member)
        except Exception as error:  # this point's (its checkpoint, its model): not the others'
            yield member.index, error
    for stack in stacks(started):
        group = None
        try:
            group = Group(stack)
            yield from group.run()
        except Exception as error:
            for member in group.members if group else stack:
                yield member.index, error


# On the CPU a stack holds at most this many bytes of weights. One thread, CPU seconds: 20 MLPs
# 784-512-10 (1.6 MB each) on mnist5k trained about 15% slower as one stack than as 4 stacks of 5
# one after another (a stack's weights, gradients and momentum then stay in the cache through a
# step), which were about 8% faster than one model at a time; 20 MLPs 64-256-10 (76 kB each)
# trained as fast in stacks of 10 as of 20, and 20% slower in stacks of 5.
CPU_STACK_BYTES = 8 * 2**20


def stacks(members: list) -> list:
    """The members in stacks trained one after another: one stack, except on the CPU."""
    if not members or members[0].sets["train"][1].device.type != "cpu":
        return [members] if members else []
    size = max(1, CPU_STACK_BYTES // (4 * count_params(members[0].model)))
    return [members[i : i + size] for i in range(0, len(members), size)]


class Group:
    """The members' stacked model, optimizer, labels and inputs; one epoch at a time."""

    def __init__(self, members: list):
        self.members = members
        p = members[0].p  # the params every member shares (group_key)
        self.loss_fn, self.single_loss = LOSSES[p.loss], training.LOSSES[p.loss]
        self.batch_size, self.eval_batch_size = p.batch_size, p.eval_batch_size
        self.padding = p.crop_padding if "crop" in p.augment else 0
        self.flip = "flip" in p.augment
        self.model = StackedMLP([m.model for m in members])
        momentum = [m.p.momentum if p.optimizer == "sgd" else 0.0 for m in members]
        decay = [m.p.weight_decay for m in members]
        self.optimizer = StackedOptimizer(self.model, p.optimizer, momentum, decay, p.nesterov)
        for k, member in enumerate(members):
            if member.resumed_from:
                self.optimizer.load(k, member.optimizer)
        self.parts = list(members[0].sets)

    def inputs(self, part: str) -> list:
        return [m.sets[part][0] for m in self.members]

    def labels(self, part: str) -> torch.Tensor:
        return torch.stack([m.sets[part][1] for m in self.members])

    def evaluate(self, part: str, ks: list | None = None) -> list:
        """The evaluations of members ``ks`` (positions; all by default) on a split."""
        if ks is None or len(ks) == len(self.members):
            ks, model = range(len(self.members)), self.model
        else:
            index = torch.tensor(ks, device=self.model.params[0].device)
            model = self.model.subset(index)
        inputs, labels = self.inputs(part), self.labels(part)
        return evaluate(
            model, [inputs[k] for k in ks], labels[list(ks)], self.loss_fn, self.eval_batch_size
        )

    def run(self) -> Iterator[tuple[int, dict | BaseException]]:
        first = [
            k for k, m in enumerate(self.members) if m.p.oscillation and not m.state["previous"]
        ]
        if first:  # epoch 1 is compared with the init
            evals = {part: self.evaluate(part, first) for part in self.parts}
            for j, k in enumerate(first):
                member = self.members[k]
                member.state["previous"] = {
                    part: evals[part][j].pred == member.sets[part][1] for part in self.parts
                }
        while self.members:
            ending = [
                k for k, m in enumerate(self.members) if m.stop or m.state["epoch"] >= m.p.epochs
            ]
            if ending:
                final = {part: self.evaluate(part, ending) for part in self.parts}
                done = [
                    (k, self.finish(k, {s: final[s][j] for s in final}))
                    for j, k in enumerate(ending)
                ]
            else:
                done = list(self.epoch().items())
            results = [(self.members[k].index, out) for k, out in done]
            self.keep(sorted(set(range(len(self.members))) - {k for k, _ in done}))
            yield from results

    def keep(self, ks: list) -> None:
        if len(ks) == len(self.members):
            return
        self.members = [self.members[k] for k in ks]
        if ks:
            index = torch.tensor(ks, device=self.model.params[0].device)
            self.model.keep(index)
            self.optimizer.keep(index)

    def epoch(self) -> list:
        """Train every member one epoch; evaluate, record, checkpoint as trial() does. Returns
        {position: exception} of the members whose loss turned out not finite."""
        start = time.perf_counter()
        members, M = self.members, len(self.members)
        lrs = [m.learning_rate() for m in members]
        stats = self.train_pass(lrs)
        seconds = time.perf_counter() - start
        failed = {}
        for k, m in enumerate(members):
            try:
                check_finite(stats[k]["loss"], m.state["epochs_done"] + 1)
            except FloatingPointError as error:
                failed[k] = error
            m.state.update(epoch=m.state["epoch"] + 1, epochs_done=m.state["epochs_done"] + 1)
            m.state.update(step=m.state["step"] + stats[k]["steps"])
            m.state["train_seconds"] += seconds / M
        ruled_out = self.rule_out([k for k in range(M) if k not in failed])
        wanted = {}  # per member, the splits it reads this epoch
        for k, m in enumerate(members):
            wanted[k] = self.parts if m.all_sets else ["train"] if m.per_epoch else []
            wanted[k] = [] if k in ruled_out else wanted[k]
        evals = {}
        for part in self.parts:
            ks = [k for k in range(M) if part in wanted[k]]
            evals[part] = dict(zip(ks, self.evaluate(part, ks))) if ks else {}
        for k, m in enumerate(members):
            m.evals = {part: evals[part][k] for part in wanted[k]}
            if m.fit_check and "train" in m.evals:
                m.fit_check.saw(m.evals["train"].pred)
            if "train" in m.evals and k not in failed:
                try:
                    check_finite(m.evals["train"].loss, m.state["epochs_done"])
                except FloatingPointError as error:
                    failed[k] = error
        share = (time.perf_counter() - start) / M
        for k, m in enumerate(members):
            if k in failed:
                continue
            if m.p.curves:
                self.model.copy_to(k, m.model)  # for the weight norm
            row = epoch_row(
                m.p, m.p.curves, stats[k], lrs[k], m.evals, m.sets, m.y_true, m.model, m.state
            )
            for key, value in row.items():
                m.state["history"].setdefault(f"{key}_curve", []).append(value)
            m.state["elapsed"] += share
        self.interpolation([k for k in range(M) if k not in failed])
        for k, m in enumerate(members):
            every = m.p.checkpoint_every
            if k in failed:
                m.checkpoint.delete()  # a NaN comes back on every rerun: start afresh if retried
            elif every and m.state["epochs_done"] % every == 0 and not m.stop:
                m.save(self, k)
        return failed

    def rule_out(self, ks: list) -> set:
        """The members among ``ks`` that surely do not fit their training set yet (and whose
        loss is finite): memo.training.fitcheck, which needs none of their full evaluations."""
        ks = [k for k in ks if self.members[k].fit_check]
        if not ks:
            return set()
        layers = fitcheck.select(self.model.layers(), ks)
        out = fitcheck.rule_out([self.members[k].fit_check for k in ks], layers)
        return {k for k, ruled in zip(ks, out) if ruled}

    def interpolation(self, ks: list) -> None:
        """Record when each member first fits its training set; flag those to stop there."""
        fits = {}
        for k in ks:
            m = self.members[k]
            if "train" in m.evals:
                train = m.evals["train"]
                fits[k] = train.acc >= m.p.interp_acc or (
                    m.p.interp_loss is not None and train.loss < m.p.interp_loss
                )
        new = [k for k, fit in fits.items() if fit and self.members[k].state["interp"] is None]
        missing = [k for k in new if "test" not in self.members[k].evals and "test" in self.parts]
        tests = dict(zip(missing, self.evaluate("test", missing))) if missing else {}
        for k in new:
            m = self.members[k]
            at = m.evals.get("test") or tests.get(k)
            m.state["interp"] = {
                "epoch": m.state["epochs_done"],
                "step": m.state["step"],
                "time": m.state["elapsed"],
                "test_acc": at.acc if at else None,
            }
        for k, fit in fits.items():
            self.members[k].stop = fit and self.members[k].p.stop_at_interpolation

    def train_pass(self, lrs: list) -> list:
        """One epoch of every member, each in its own data order: per member the means over
        its batches of the loss and (with curves) the accuracy and gradient norm."""
        members, M = self.members, len(self.members)
        dev = self.model.params[0].device
        inputs, Y = self.inputs("train"), self.labels("train")
        n = Y.shape[1]
        lr = torch.tensor(lrs, device=dev).view(M, 1, 1)
        orders = torch.stack(
            [torch.randperm(n, generator=m.generator, device=dev) for m in members]
        )
        shared = all(x is inputs[0] for x in inputs)
        curves = any(m.p.curves for m in members)
        losses, correct, norms = [], [], []
        for start in range(0, n, self.batch_size):
            idx = orders[:, start : start + self.batch_size]  # (M, B)
            if shared:
                xb = inputs[0].take(idx.reshape(-1)).view(M, idx.shape[1], -1)
            else:
                xb = torch.stack([x.take(i) for x, i in zip(inputs, idx)])
            if self.padding or self.flip:
                args = self.padding, self.flip
                xb = torch.stack(
                    [augment(xb[k], inputs[k], *args, m.generator) for k, m in enumerate(members)]
                )
            yb = Y.gather(1, idx)
            out = self.model(xb)
            loss = self.loss_fn(out, yb)  # (M,)
            for p in self.model.params:
                p.grad = None
            loss.sum().backward()  # each model's gradient is its own loss's
            if curves:
                norms.append(self.model.grad_norms())
            self.optimizer.step(lr)
            losses.append(loss.detach())
            if curves:
                with torch.no_grad():
                    correct.append((out.argmax(-1) == yb).sum(1))
        sizes = torch.full((len(losses),), float(self.batch_size), device=dev)
        sizes[-1] = n - self.batch_size * (len(losses) - 1)  # the last batch may be smaller
        loss = (sizes @ torch.stack(losses)).tolist()  # the one sync of the epoch
        acc = torch.stack(correct).sum(0).tolist() if curves else [None] * M
        grad_norm = torch.stack(norms).mean(0).tolist() if curves else [None] * M
        return [
            {
                "loss": loss[k] / n,
                "acc": acc[k] / n if curves else None,
                "grad_norm": grad_norm[k],
                "steps": len(losses),
            }
            for k in range(M)
        ]

    def finish(self, k: int, final: dict) -> dict | BaseException:
        """Member k's result as trial() returns it from its final evaluations, or its error."""
        m = self.members[k]
        m.state.update(phase=1, epoch=0)
        m.state["marks"]["phase1_end"] = m.state["epochs_done"]
        try:
            check_finite(final["train"].loss, m.state["epochs_done"])
            self.model.copy_to(k, m.model)
            result = summary(m.p, final, m.state, m.data, m.sets, m.y_true, m.model)
            result["resumed_from"] = m.resumed_from
            result.update(m.state["history"])
            if m.p.noise_levels:
                torch.set_rng_state(m.torch_rng)  # the noise draws, as alone
                ramp = noise_ramp(m.p, m.model, self.single_loss, m.sets, final, m.data.num_classes)
                result.update(ramp)
        except FloatingPointError as error:
            m.checkpoint.delete()  # a NaN comes back on every rerun: start afresh if retried
            return error
        except Exception as error:  # this member's alone
            return error
        m.checkpoint.delete()
        return result
