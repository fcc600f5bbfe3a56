"""A trial's R repeats trained as one batched ensemble (horizontal fusion, HFTA-style).

The R repeats of one configuration share one architecture, so their parameters are stacked
along a new leading dimension and every step runs one vmapped forward, one vmapped inverse,
one backward and one Adam step for all R models (`torch.func.functional_call` + `vmap`: a
convolution becomes one grouped convolution, a linear layer one batched matmul). On a GPU
that replaces R small, launch-bound steps by one. On a CPU the repeats run side by side in
lanes instead (`revstudy.training.lanes`, faster there); `Repeats` picks the strategy
(`repeat_strategy`, measured in `benchmarks/train_speed.py`).

Each repeat keeps its own split, seed, generator and metrics: its batch order, `Z_free`
noise and MMD sample are drawn from its own `Trainer.gen` in the sequential order, Adam is
elementwise, and gradient clipping uses each repeat's own norm, so a fused run follows the
sequential one up to floating-point summation order (tests/training/test_fused.py). After every
epoch the stacked weights are copied into each repeat's `Trainer.model`, which validates,
evaluates and checkpoints as before; `states()` also hands each repeat its slice of the
optimiser state, so checkpoints are the sequential format and resume either way.

The members need not be repeats of one configuration: members that share the fields that
shape the step (`STEP_FIELDS`: the network, the batch size, the step's graph) may differ in
everything else, as the trials of a pack do (issue #31): learning rate and weight decay
(`MemberAdam`), loss weights (`MemberWeights`), clipping, renumbering, seeds, splits, atom
order and epochs. `keep` lets members leave: the ensemble goes on with the others.
"""

from __future__ import annotations

import copy
import functools
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any, Literal, TypeVar

import torch
from torch import nn
from torch.func import functional_call, vmap

from revstudy.data.numbering import relabel
from revstudy.training.compiled import training_only
from revstudy.training.config import STEP_FIELDS, TrialConfig, step_shape
from revstudy.training.lanes import run_in_lanes
from revstudy.training.losses import LOSS_TERMS, MemberWeights, objective_terms
from revstudy.training.member_adam import MemberAdam
from revstudy.training.metrics import CHUNK
from revstudy.training.trainer import (
    VALIDATION_CHUNK,
    EpochRecord,
    Trainer,
    ValidationRows,
    make_optimizer,
)

T = TypeVar("T")
# rows of one vmapped validation forward over all of an ensemble's members: bounds its memory
# (a lone model's forward takes `CHUNK` rows at a time)
VALIDATION_ROWS = 8192
# members that validate their rows together only from this many: when only some members
# validate, each chunk's vmapped pass first copies their weights out of the stacked ones,
# and with two of them that costs more operations than their own passes (benchmarks/
# pack_ops.py, paper-sized members, whole validations with the libraries: 2 of them
# together 3,384 top-level ops, apart 2,926); from 4 it pays either way (every member of 4
# validating: together 2,976, apart 4,084; of 16: 4,680 against 11,032)
ROWS_TOGETHER_FROM = 4


class _Inverse(nn.Module):
    """`net.inverse` as a module's forward, so `functional_call` can run it."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, z_free: torch.Tensor, y_latent: torch.Tensor) -> torch.Tensor:
        return self.net.inverse(z_free, y_latent)  # type: ignore[operator]


def steps_per_epoch(t: Trainer) -> int:
    return -(-len(t.data.x_train) // t.config.batch_size)


def fusable(trainers: Sequence[Trainer]) -> str | None:
    """Why these trainers cannot be stepped together (None when they can)."""
    if len(trainers) < 2:
        return "a single repeat"
    first = trainers[0]
    for name in STEP_FIELDS:
        if any(getattr(t.config, name) != getattr(first.config, name) for t in trainers):
            return f"the members differ in {name}, which shapes the step"
    if any(t.device != first.device for t in trainers):
        return "the repeats are on different devices"
    if len({steps_per_epoch(t) for t in trainers}) != 1:
        return "the repeats' epochs differ in their number of steps"
    if len({t.epoch for t in trainers}) != 1:
        return "the repeats are at different epochs"
    if any(True for _ in first.model.buffers()):
        return "the model has buffers"
    return None


class EnsembleStepError(RuntimeError):
    """A step of the vmapped ensemble failed on its device (an operation vmap does not
    support there, out of memory); the repeats' own state is as before the epoch."""

    def __init__(self, cause: BaseException):
        text = (str(cause).strip().splitlines() or [type(cause).__name__])[0][:300]
        super().__init__(f"{type(cause).__name__}: {text}")
        self.cause = cause


class FusedRepeats:
    """Steps R `Trainer`s of one config as one ensemble; see the module docstring."""

    def __init__(self, trainers: Sequence[Trainer]):
        reason = fusable(trainers)
        if reason is not None:
            raise ValueError(f"cannot fuse these repeats: {reason}")
        self.trainers = list(trainers)
        configs = [t.config for t in trainers]
        self.config = configs[0]  # the STEP_FIELDS every member shares
        self.device = trainers[0].device
        self.weights = MemberWeights.of(configs, self.device)  # each member's loss settings
        self.relabel = [c.relabel for c in configs]
        self.mmd = [c.latent_loss == "mmd" and c.latent_weight != 0 for c in configs]
        dtype = torch.get_default_dtype()
        self.clip = torch.tensor([c.grad_clip for c in configs], device=self.device, dtype=dtype)
        self.clips = any(c.grad_clip > 0 for c in configs)
        self.names = [name for name, _ in trainers[0].model.named_parameters()]
        own = [dict(t.model.named_parameters()) for t in trainers]
        with torch.no_grad():
            self.params = {
                name: torch.stack([p[name] for p in own]).detach().requires_grad_()
                for name in self.names
            }
        self.net = copy.deepcopy(trainers[0].model).to("meta")  # the architecture, no weights
        for name in ("forward", "inverse"):  # a compiled step's callables (compile_model) call
            self.net.__dict__.pop(name, None)  # their own model's weights: the class's methods
        self.inverse_net = _Inverse(self.net)
        self._step_forward, self._step_inverse = _step_functions(
            vmap(self._forward), vmap(self._inverse), self.config.compile_step
        )
        self.optimizer = self._make_optimizer(configs)
        self._import_optimizer_states()
        # the training data of every repeat, stacked once: [R, n_max, ...] (splits grouped by
        # structure differ by a few rows; the padding rows are never drawn)
        self.n = [len(t.data.x_train) for t in trainers]
        self.x_train = _stack_padded([t.data.x_train for t in trainers])
        self.y_train = _stack_padded([t.data.y_train for t in trainers])
        # rows of each repeat's batch at every step, on the device once (no per-step copy)
        bs = self.config.batch_size
        steps = range(0, max(self.n), bs)
        self.batch_rows = torch.tensor(
            [[max(0, min(bs, n - i)) for n in self.n] for i in steps], dtype=torch.float32
        ).to(self.device)
        self.repeat_rows = torch.arange(len(trainers), device=self.device)[:, None]  # gathers

    def _make_optimizer(self, configs: Sequence[TrialConfig]) -> torch.optim.Adam | MemberAdam:
        """Adam as a lone run uses it when the members share their learning settings, else
        `MemberAdam` (the same update with each member's learning rate and weight decay)."""
        params = list(self.params.values())
        if len({(c.lr, c.weight_decay) for c in configs}) == 1:
            return make_optimizer(params, configs[0], self.device)
        dtype = torch.get_default_dtype()
        lr = torch.tensor([c.lr for c in configs], device=self.device, dtype=dtype)
        decay = torch.tensor([c.weight_decay for c in configs], device=self.device, dtype=dtype)
        return MemberAdam(params, lr, decay)

    # -- one epoch ----------------------------------------------------------------------------
    def _forward(self, params: dict[str, torch.Tensor], x: torch.Tensor) -> Any:
        return functional_call(self.net, params, (x,))

    def _inverse(self, params: dict[str, torch.Tensor], z: torch.Tensor, y: torch.Tensor) -> Any:
        return functional_call(self.inverse_net, {f"net.{k}": v for k, v in params.items()}, (z, y))

    def _losses(self, idx: list[torch.Tensor], epoch: int) -> torch.Tensor:
        """[R, 4] loss terms (LOSS_TERMS order) of one step; idx[r]: repeat r's batch rows.

        A last batch may be a few rows shorter in some repeats: all batches are then padded
        to the longest and each repeat's loss is taken over its own rows only (no layer mixes
        samples, so the padding changes neither values nor gradients)."""
        c = self.config
        gens = [t.gen for t in self.trainers]
        sizes = [len(i) for i in idx]
        b = max(sizes)
        cols = torch.stack([_pad(i, b) for i in idx])
        rows = self.repeat_rows
        xb, yb = self.x_train[rows, cols], self.y_train[rows, cols]
        if any(self.relabel):  # each member's renumbering from its own generator, before its noise
            xb = torch.stack(
                [
                    _pad(relabel(xb[r, :k], g), b) if self.relabel[r] else xb[r]
                    for r, (k, g) in enumerate(zip(sizes, gens, strict=True))
                ]
            )
        noise = self._noise(sizes, gens)
        z_free, y_latent = self._step_forward(self.params, xb)
        y_in = y_latent.detach() if c.detach_y_in_inverse else y_latent
        x_gen = self._step_inverse(self.params, noise, y_in)
        # each member draws its own MMD sample; the others none (their latent term is off)
        draws = [g if on else None for g, on in zip(gens, self.mmd, strict=True)]
        if len(set(sizes)) > 1:
            members = list(range(len(sizes)))
            return self._own_terms((z_free, y_latent, x_gen, xb, yb), epoch, members, sizes, draws)
        return self._terms(z_free, y_latent, x_gen, xb, yb, epoch, draws, self.weights)

    def _noise(self, sizes: list[int], gens: list[torch.Generator]) -> torch.Tensor:
        """[M, max(sizes), z_dim] Z_free noise: member m's `sizes[m]` rows from its own
        generator `gens[m]` (as its lone run draws them), zero-padded to the longest."""
        b, z_dim = max(sizes), self.net.z_dim
        return torch.stack(
            [
                _pad(torch.randn((k, z_dim), generator=g, device=self.device), b)
                for k, g in zip(sizes, gens, strict=True)
            ]
        )

    def _terms(
        self,
        z_free: torch.Tensor,
        y_latent: torch.Tensor,
        x_gen: torch.Tensor,
        xb: torch.Tensor,
        yb: torch.Tensor,
        epoch: int,
        gens: list[torch.Generator | None],
        weights: MemberWeights,
    ) -> torch.Tensor:
        """`objective_terms` for [R, b, ...] or one member's [b, ...] (with that member's
        `weights`), each member's MMD sample from its own generator (None: it draws none,
        its latent term being off)."""
        ref = None
        if weights.latent_loss == "mmd":  # the MMD's N(0, I) sample (zeros: weighted 0)
            shape = z_free.shape[-2:]
            ref = torch.stack(
                [
                    torch.randn(shape, generator=g, device=self.device)
                    if g is not None
                    else z_free.new_zeros(shape)
                    for g in gens
                ]
            )
            ref = ref.reshape(z_free.shape)
        return objective_terms(z_free, y_latent, x_gen, xb, yb, weights, epoch, ref=ref)

    def _own_terms(
        self,
        batch: tuple[torch.Tensor, ...],
        epoch: int,
        members: list[int],
        sizes: list[int],
        draws: list[torch.Generator | None],
    ) -> torch.Tensor:
        """[M, 4] loss terms of padded [M, b, ...] tensors (`batch`: z_free, y_latent,
        x_gen, x, y), row m over its own `sizes[m]` rows with member `members[m]`'s settings
        and MMD draw `draws[m]`: each member's mean over its own rows, as alone."""
        rows = []
        for a, (r, k) in enumerate(zip(members, sizes, strict=True)):
            z, y_latent, x_gen, x, y = (t[a, :k] for t in batch)
            weights = self.weights.member(r)
            rows.append(self._terms(z, y_latent, x_gen, x, y, epoch, [draws[a]], weights))
        return torch.stack(rows)

    def _clip(self) -> None:
        """`clip_grad_norm_` per repeat, the same arithmetic (the norm of the per-tensor norms,
        scaled by max / (norm + 1e-6) clamped at 1), in a constant number of launches: one
        foreach norm over every repeat's slice of every gradient, one multiply per repeat;
        no per-tensor kernels, no host sync."""
        grads = [p.grad for p in self.params.values() if p.grad is not None]
        r, n = len(self.trainers), len(grads)
        rows = [g[i] for i in range(r) for g in grads]  # repeat-major views, no copy
        norms = torch.stack(torch._foreach_norm(rows)).view(r, n)
        total = torch.linalg.vector_norm(norms, dim=1)
        coef = (self.clip / (total + 1e-6)).clamp(max=1.0)
        coef = torch.where(self.clip > 0, coef, torch.ones_like(coef))  # members not clipping
        for i in range(r):
            torch._foreach_mul_(rows[i * n : (i + 1) * n], coef[i])

    def train_epoch(self, collect: bool = False) -> list[EpochRecord]:
        """One epoch of every repeat; each repeat's record as `Trainer.train_epoch` gives it.
        The training time is shared equally, and the validation done together equally among
        the members it served, so the repeats' seconds add up to the wall time.
        A repeat whose epoch fails its checks (a non-finite loss) raises; with `collect`,
        its exception takes its place in the list instead and the others' records stand
        (a pack's members fail one by one)."""
        c = self.config
        epoch = self.trainers[0].epoch + 1
        start = time.perf_counter()
        perms = [
            torch.randperm(n, generator=t.gen, device=self.device)
            for n, t in zip(self.n, self.trainers, strict=True)
        ]
        acc = torch.zeros(len(self.trainers), len(LOSS_TERMS), device=self.device)
        try:
            for i in range(0, max(self.n), c.batch_size):
                idx = [p[i : i + c.batch_size] for p in perms]
                losses = self._losses(idx, epoch)
                self.optimizer.zero_grad(set_to_none=True)
                losses[:, 0].sum().backward()  # repeat r's parameters see only repeat r's loss
                if self.clips:
                    self._clip()
                self.optimizer.step()
                acc += losses.detach() * self.batch_rows[i // c.batch_size, :, None]
            sums = (acc / self.batch_rows.sum(dim=0)[:, None]).tolist()  # the epoch's one sync
        except (RuntimeError, NotImplementedError) as e:  # torch.OutOfMemoryError included
            # the repeats' own models, optimisers and results are untouched so far
            raise EnsembleStepError(e) from e
        self._copy_weights()
        share = (time.perf_counter() - start) / len(self.trainers)
        start = time.perf_counter()
        given, rows = self._validation_logits(epoch), self.validation_rows(epoch)
        served = set(given) | set(rows)  # the members whose validation was done together
        shared = (time.perf_counter() - start) / max(1, len(served))
        records: list[Any] = []
        for r, t in enumerate(self.trainers):
            t.given_logits, t.given_rows = given.get(r, {}), rows.get(r)
            # its share of the training and of the validation done together; its own
            # validation's time is added by finish_epoch
            seconds = share + (shared if r in served else 0.0)
            try:
                records.append(
                    t.finish_epoch(epoch, dict(zip(LOSS_TERMS, sums[r], strict=True)), seconds)
                )
            except Exception as e:
                e.add_note(f"repeat {r} (seed {t.seed}) of a fused run")
                if not collect:
                    raise
                records.append(e)
            finally:
                t.given_logits, t.given_rows = {}, None
        return records

    @torch.no_grad()
    def _validation_logits(self, epoch: int) -> dict[int, dict[tuple[str, str], torch.Tensor]]:
        """Y_latent of the validation libraries of every member that validates at `epoch`
        (`Trainer.library`, `Trainer.renumbered_library`: two thirds of a validation's
        arithmetic), each kind in one vmapped forward for all of them instead of one
        forward per member, so a pack's validation issues about the launches of one
        member's (issue #31; benchmarks/pack_ops.py counts them). Equal to each member's
        own forward up to float summation order, as the ensemble's step is. Empty (each
        member runs its own forwards, as before) for fewer than two members or when the
        device cannot run the vmapped forward."""
        who = self._validating(epoch)
        if len(who) < 2:
            return {}
        out: dict[int, dict[tuple[str, str], torch.Tensor]] = {r: {} for r in who}
        kinds: dict[str, list[torch.Tensor | None]] = {
            "library": [self.trainers[r].library("val")[0] for r in who],
            "renumbered": [self.trainers[r].renumbered_library("val") for r in who],
        }
        try:
            for kind, libraries in kinds.items():
                members = [(r, x) for r, x in zip(who, libraries, strict=True) if x is not None]
                if len(members) < 2:
                    continue  # one member: its own forward
                logits = self._forward_members([r for r, _ in members], [x for _, x in members])
                for (r, _), y in zip(members, logits, strict=True):
                    out[r][(kind, "val")] = y
        except (RuntimeError, NotImplementedError):  # the members' own forwards still run
            return {}
        return out

    def _validating(self, epoch: int) -> list[int]:
        """The members that validate at `epoch` (`Trainer.validates`)."""
        return [r for r, t in enumerate(self.trainers) if t.validates(epoch)]

    @torch.no_grad()
    def validation_rows(self, epoch: int) -> dict[int, ValidationRows]:
        """`Trainer.validation_rows` of every member that validates at `epoch`, their
        forwards and inverses in one vmapped pass a chunk instead of one per member: each
        member's own rows, `VALIDATION_CHUNK` at a time, its Z_free and MMD draws from its
        own validation generator in its own order, its loss terms with its own settings.
        Equal to each member's own up to float summation order. Empty (each member runs its
        own) for fewer than `ROWS_TOGETHER_FROM` members or when the device cannot run the
        vmapped pass."""
        who = self._validating(epoch)
        if len(who) < ROWS_TOGETHER_FROM:
            return {}
        trainers = [self.trainers[r] for r in who]
        xs = [t.data.x_val for t in trainers]
        ys = [t.data.y_val for t in trainers]
        gens = [t.validation_generator(epoch) for t in trainers]
        n = [len(x) for x in xs]
        sums = [[0.0, 0.0] for _ in who]  # each member's total and total_y
        preds: list[list[torch.Tensor]] = [[] for _ in who]
        try:
            for i in range(0, max(n), VALIDATION_CHUNK):
                on = [j for j, m in enumerate(n) if m > i]  # members with rows left
                sizes = [min(VALIDATION_CHUNK, n[j] - i) for j in on]
                terms, y_latent = self._validation_chunk(
                    epoch,
                    [who[j] for j in on],
                    [xs[j][i : i + VALIDATION_CHUNK] for j in on],
                    [ys[j][i : i + VALIDATION_CHUNK] for j in on],
                    [gens[j] for j in on],
                )
                values = terms[:, :2].tolist()  # the chunk's one sync for all members
                for a, (j, k) in enumerate(zip(on, sizes, strict=True)):
                    sums[j][0] += values[a][0] * k
                    sums[j][1] += values[a][1] * k
                    preds[j].append((y_latent[a, :k] > 0).cpu())
        except (RuntimeError, NotImplementedError):  # the members' own passes still run
            return {}
        return {
            r: ValidationRows(total, total_y, torch.cat(p))
            for r, (total, total_y), p in zip(who, sums, preds, strict=True)
        }

    def _validation_chunk(
        self,
        epoch: int,
        members: list[int],
        xs: list[torch.Tensor],
        ys: list[torch.Tensor],
        gens: list[torch.Generator],
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """[M, 4] loss terms and [M, b, y_dim] Y_latent of one chunk of each of `members`'
        validation rows (`xs[m]`, `ys[m]`, padded to the longest: no layer mixes rows)."""
        sizes = [len(x) for x in xs]
        b = max(sizes)
        params = self._member_params(members)
        xb = torch.stack([_pad(x, b) for x in xs])
        yb = torch.stack([_pad(y, b) for y in ys])
        noise = self._noise(sizes, gens)
        z_free, y_latent = vmap(self._forward)(params, xb)
        x_gen = vmap(self._inverse)(params, noise, y_latent)
        draws = [g if self.mmd[r] else None for r, g in zip(members, gens, strict=True)]
        batch = (z_free, y_latent, x_gen, xb, yb)
        return self._own_terms(batch, epoch, members, sizes, draws), y_latent

    def _member_params(self, members: list[int]) -> dict[str, torch.Tensor]:
        """The stacked weights of `members` (positions), detached; every member's without
        an index copy of each tensor."""
        if members == list(range(len(self.trainers))):
            return {k: v.detach() for k, v in self.params.items()}
        return {k: v.detach()[members] for k, v in self.params.items()}

    def _forward_members(
        self, members: list[int], inputs: list[torch.Tensor]
    ) -> list[torch.Tensor]:
        """Y_latent of `inputs[i]` under member `members[i]`'s weights: all members in one
        vmapped forward per chunk, an input they share passed once, at most
        `VALIDATION_ROWS` rows a chunk over all members (a lone member's chunk when K is
        small)."""
        params = self._member_params(members)
        first = inputs[0]
        shared = all(x.shape == first.shape and torch.equal(x, first) for x in inputs[1:])
        x_all = first if shared else _stack_padded(inputs)
        step = max(1, min(CHUNK, VALIDATION_ROWS // len(members)))
        forward = vmap(lambda p, x: self._forward(p, x)[1], in_dims=(0, None if shared else 0))
        n = max(len(x) for x in inputs)
        parts = [
            forward(params, x_all[i : i + step] if shared else x_all[:, i : i + step])
            for i in range(0, n, step)
        ]
        y = torch.cat(parts, dim=1)
        return [y[m, : len(x)] for m, x in enumerate(inputs)]

    def keep(self, members: Sequence[int]) -> FusedRepeats:
        """The ensemble of `members` only (positions in `trainers`), to go on with when the
        others leave (their epochs done, stopped early, failed): each kept member's weights
        and optimiser moments carry over, so its training goes on as if nobody had left.
        Take the leaving members' checkpoints (`states()`) first."""
        states = self.states()
        kept = [self.trainers[m] for m in members]
        for m in members:
            self.trainers[m].optimizer.load_state_dict(states[m]["optimizer"])
        return FusedRepeats(kept)

    # -- the repeats' own state ---------------------------------------------------------------
    @torch.no_grad()
    def _copy_weights(self) -> None:
        for r, t in enumerate(self.trainers):
            for name, p in t.model.named_parameters():
                p.copy_(self.params[name][r])

    def _import_optimizer_states(self) -> None:
        """Stack the repeats' optimiser states (all empty for a fresh run; a resumed run's
        checkpoints restored them into each repeat's own optimiser)."""
        states = [t.optimizer.state_dict()["state"] for t in self.trainers]
        if not any(states):
            return
        if not all(states) or any(s.keys() != states[0].keys() for s in states):
            raise ValueError("cannot fuse these repeats: their optimiser states differ in shape")
        stacked: dict[int, dict[str, Any]] = {}
        for i, first in states[0].items():
            stacked[i] = {
                key: torch.stack([s[i][key] for s in states]) if _per_param(key, value) else value
                for key, value in first.items()
            }
        doc = self.optimizer.state_dict()
        self.optimizer.load_state_dict({"state": stacked, "param_groups": doc["param_groups"]})

    def states(self) -> list[dict[str, Any]]:
        """Every repeat's `Trainer.state()`, each with its slice of the ensemble's optimiser
        state. The moments are views of the live ones (no copy on the device, and the
        repeats' own optimisers stay empty): save them (`save_checkpoint` copies them to the
        host) or load them before the ensemble trains on. `step` counters are copied: each
        repeat's optimiser counts its own."""
        stacked = self.optimizer.state_dict()["state"]
        states = []
        for r, t in enumerate(self.trainers):
            own = {
                i: {k: v[r] if _per_param(k, v) else _copy(v) for k, v in s.items()}
                for i, s in stacked.items()
            }
            groups = t.optimizer.state_dict()["param_groups"]
            states.append({**t.state(), "optimizer": {"state": own, "param_groups": groups}})
        return states


Strategy = Literal["vmap", "lanes", "sequential"]
STRATEGIES: tuple[Strategy, ...] = ("vmap", "lanes", "sequential")


def repeat_strategy(device: torch.device, repeats: int, threads: int | None = None) -> Strategy:
    """How `repeats` repeats on `device` train fastest together, measured in
    `benchmarks/train_speed.py`: on a GPU as one vmapped ensemble (one launch-bound step
    instead of R). On a CPU with at least as many repeats as threads, side by side in lanes
    of one thread each (`revstudy.training.lanes`), which keeps every core busy where one
    model's kernels do not; with fewer repeats than threads lanes would leave cores idle,
    so the vmapped ensemble uses them all; with one thread, in turn."""
    if repeats < 2:
        return "sequential"
    if device.type != "cpu":
        return "vmap"
    threads = torch.get_num_threads() if threads is None else threads
    if threads < 2:
        return "sequential"
    return "lanes" if repeats >= threads else "vmap"


class Repeats:
    """R trainers of one config advanced epoch by epoch, by a `Strategy` (default: the
    fastest for their device, `repeat_strategy`; `fuse=False`: one after another).

    "vmap": repeats whose epochs have the same number of steps (nearly always all of them)
    train as one `FusedRepeats`, a repeat left on its own trains by itself; "lanes": each
    repeat trains on its own worker thread; "sequential": in turn."""

    def __init__(
        self,
        trainers: Sequence[Trainer],
        fuse: bool = True,
        indices: Sequence[int] | None = None,
        strategy: Strategy | None = None,
    ):
        self.trainers = list(trainers)
        # the repeats' numbers (`train_epoch` returns their records in this order)
        self.indices = list(indices) if indices is not None else list(range(len(trainers)))
        if not fuse:
            strategy = "sequential"
        elif strategy is None:
            strategy = repeat_strategy(self.trainers[0].device, len(self.trainers))
        if strategy not in STRATEGIES:
            raise ValueError(f"unknown repeat strategy {strategy!r}; use one of {STRATEGIES}")
        self.strategy: Strategy = strategy
        # vmap: one group per steps-per-epoch count, epoch and shape (a pack resumed from
        # members at different epochs steps each epoch's members together)
        by_steps: dict[Any, list[int]] = {}
        for r, t in enumerate(self.trainers):
            key = (steps_per_epoch(t), t.epoch, step_shape(t.config)) if strategy == "vmap" else r
            by_steps.setdefault(key, []).append(r)
        self.groups: list[tuple[list[int], FusedRepeats | None]] = []
        for members in by_steps.values():
            group = [self.trainers[r] for r in members]
            fused = FusedRepeats(group) if fusable(group) is None else None
            self.groups.append((members, fused))
        # why the vmapped ensemble was given up for one repeat after another (None: it was
        # not); a trial records it in result.json, the report shows it
        self.fallback: str | None = None
        self._proven: set[int] = set()  # groups whose ensemble has finished an epoch

    @property
    def fused(self) -> bool:
        """Whether any repeats train as one vmapped ensemble."""
        return any(f is not None for _, f in self.groups)

    def _describe(self, i: int) -> str:
        return f"repeat {self.indices[i]} (seed {self.trainers[i].seed})"

    def map(self, fn: Callable[[Trainer], T], trainers: Sequence[Trainer] | None = None) -> list[T]:
        """`fn(trainer)` for every repeat (or every one of `trainers`, e.g. one pack
        member's), in order; side by side with "lanes" (e.g. the final evaluations), else
        in turn."""
        chosen = self.trainers if trainers is None else list(trainers)
        jobs = [functools.partial(fn, t) for t in chosen]
        if self.strategy == "lanes":
            return run_in_lanes(jobs, describe=self._describe if trainers is None else None)
        return [job() for job in jobs]

    def train_epoch(self, collect: bool = False) -> list[Any]:
        """Every repeat's `EpochRecord` of its next epoch, in repeat order. A repeat whose
        epoch fails raises; with `collect` its exception takes its place in the list and
        the others train on (`FusedRepeats.train_epoch`): a failure of the ensemble's step
        itself is everyone's and is raised."""
        if self.strategy == "lanes":
            start = time.perf_counter()
            epochs = [functools.partial(_outcome, t.train_epoch, collect) for t in self.trainers]
            outs = run_in_lanes(epochs, describe=self._describe)
            share = (time.perf_counter() - start) / len(self.trainers)
            return [
                o if isinstance(o, Exception) else t.restate_seconds(share)
                for t, o in zip(self.trainers, outs, strict=True)
            ]
        records: dict[int, Any] = {}
        for g, (members, fused) in enumerate(self.groups):
            if fused is not None and g not in self._proven:
                recs = self._first_fused_epoch(g, collect)
            elif fused is not None:
                recs = fused.train_epoch(collect)
            else:
                recs = [_outcome(self.trainers[r].train_epoch, collect) for r in members]
            records.update(zip(members, recs, strict=True))
        return [records[r] for r in range(len(self.trainers))]

    def keep(self, positions: Sequence[int]) -> Repeats:
        """The trainers at `positions` only, to go on with when the others leave (a pack's
        members that finished, were stopped or failed): each kept trainer's weights,
        optimiser moments and generator carry over, so its training goes on exactly as a
        run resumed from its checkpoint would. Save the leaving ones' `states()` first."""
        states = self.states()
        for p in positions:  # a fused group holds its members' moments: hand them back
            self.trainers[p].optimizer.load_state_dict(states[p]["optimizer"])
        kept = Repeats(
            [self.trainers[p] for p in positions],
            indices=[self.indices[p] for p in positions],
            strategy=self.strategy,
        )
        kept.fallback = self.fallback  # the members' record of how they trained
        return kept

    def _first_fused_epoch(self, g: int, collect: bool = False) -> list[EpochRecord]:
        """Group `g`'s first epoch as an ensemble; if the device cannot run it (an operation
        vmap does not support there, out of memory), the group falls back to one repeat
        after another from the same state: weights, optimisers and generators are as before
        the epoch, so the run is the sequential one. Anything else (a non-finite loss, a
        failing validation) is the configuration's failure, not the ensemble's, and is
        raised."""
        members, fused = self.groups[g]
        assert fused is not None
        gens = [self.trainers[r].gen.get_state() for r in members]
        try:
            recs = fused.train_epoch(collect)
        except EnsembleStepError as e:
            self.fallback = (
                f"the vmapped ensemble failed on {fused.device} ({e}); "
                "the repeats trained one after another"
            )
            warnings.warn(self.fallback, RuntimeWarning, stacklevel=2)
            self.groups[g] = (members, None)
            del fused
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            for r, state in zip(members, gens, strict=True):
                self.trainers[r].gen.set_state(state)
            return [_outcome(self.trainers[r].train_epoch, collect) for r in members]
        self._proven.add(g)
        for r in members:  # the ensemble holds the moments now: no second copy on the device
            self.trainers[r].optimizer.state.clear()
        return recs

    def states(self) -> list[dict[str, Any]]:
        """Every repeat's `Trainer.state()` (a checkpoint), in repeat order."""
        states: dict[int, dict[str, Any]] = {}
        for members, fused in self.groups:
            got = fused.states() if fused else [self.trainers[r].state() for r in members]
            states.update(zip(members, got, strict=True))
        return [states[r] for r in range(len(self.trainers))]


def _outcome(epoch: Callable[[], EpochRecord], collect: bool) -> Any:
    """`epoch()`'s record, or with `collect` the exception it raised (a repeat's own
    failure; abandoning the trial is never collected)."""
    if not collect:
        return epoch()
    try:
        return epoch()
    except Exception as e:
        return e


def _step_functions(
    forward: Callable[..., Any], inverse: Callable[..., Any], mode: str
) -> tuple[Callable[..., Any], Callable[..., Any]]:
    """The ensemble's vmapped forward and inverse for its training step, compiled as a lone
    trial's are (`compiled.training_only`: `mode` is the members' shared `compile_step`;
    evaluation runs them eagerly): one compiled graph for all members, so CUDA graphs
    replay a pack's whole step. The graph is specialised to the number of members, so a
    pack compiles again when members leave."""
    if mode == "off":
        return forward, inverse
    return (
        training_only(forward, mode, step_begins=True),
        training_only(inverse, mode, step_begins=False),
    )


def _stack_padded(tensors: list[torch.Tensor]) -> torch.Tensor:
    """[R, n_max, ...]: each tensor padded with zero rows to the longest."""
    return torch.stack([_pad(t, max(len(u) for u in tensors)) for t in tensors])


def _pad(t: torch.Tensor, n: int) -> torch.Tensor:
    if len(t) == n:
        return t
    return torch.cat([t, t.new_zeros((n - len(t), *t.shape[1:]))])


def _per_param(key: str, value: Any) -> bool:
    """Optimiser state entries shaped like the parameter (Adam's moments), not `step`."""
    return key != "step" and isinstance(value, torch.Tensor) and value.dim() > 0


def _copy(value: Any) -> Any:
    return value.clone() if isinstance(value, torch.Tensor) else value
