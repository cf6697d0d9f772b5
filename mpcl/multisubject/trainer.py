"""Training S subject models at once: the epoch loop, per-subject validation, best-epoch choice.

Per epoch and step, model ``s`` trains on the next batch of *its* subject (the batches and their
order are those of a one-model run, see :meth:`StackedRows.epoch_rows`); models with equally
large batches are served by one vectorised call, models whose epoch has ended sit the step out.
After every epoch each model is validated on its subject's validation rows; a model's best
state (by the monitored metric, strictly better as in Lightning's ``ModelCheckpoint``) is kept,
and the test is run with every model's best state.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from mpcl.metrics import LDL_METRICS
from mpcl.models.base import EmotionDistributionModule
from mpcl.multisubject.data import StackedRows, SubjectSplit, chunks, step_groups
from mpcl.multisubject.optim import LearningRateOracle
from mpcl.multisubject.stacking import StackedModels
from mpcl.multisubject.stopping import EarlyStoppingSettings, PerModelEarlyStopping
from mpcl.multisubject.streams import ModelStreams

METRIC_NAMES = tuple(m.name for m in LDL_METRICS)
#: Precisions of the stacked engine (Lightning's names).
PRECISIONS = ("32-true", "bf16-mixed")


@dataclass
class FitSettings:
    """What a one-model Lightning run would take from the trainer and checkpoint config.

    Attributes:
        max_epochs: Epochs.
        batch_size: Training batch size per model.
        eval_batch_size: Rows per model per evaluation call.
        shuffle_seed: Seed of the training permutations (epoch ``e`` uses ``seed + e``).
        monitor: Metric choosing the best epoch, ``val/<metric>``.
        mode: ``min`` or ``max``.
        gradient_clip_val: Clip each model's gradients (``None``: no clipping).
        gradient_clip_algorithm: ``norm`` (each model's total 2-norm) or ``value``.
        max_group: Most models per vectorised call (bounds memory); ``None``: all.
        device: Where models and data live.
        early_stopping: Lightning's early-stopping rule, applied to every model on its own.
        precision: ``32-true``, or ``bf16-mixed``: forward passes and losses under
            ``torch.autocast(dtype=torch.bfloat16)`` (parameters, gradients and optimizer state
            stay float32), as Lightning's precision plugin of that name.
        compile: Run the vectorised forward and loss through ``torch.compile``.
    """

    max_epochs: int
    batch_size: int
    eval_batch_size: int
    shuffle_seed: int = 0
    monitor: str = "val/kl"
    mode: str = "min"
    gradient_clip_val: float | None = None
    gradient_clip_algorithm: str = "norm"
    max_group: int | None = None
    device: str = "cpu"
    early_stopping: EarlyStoppingSettings | None = None
    precision: str = "32-true"
    compile: bool = False

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(
                f"FitSettings.precision must be one of {list(PRECISIONS)}, got {self.precision!r}"
            )
        if self.max_epochs < 1:
            raise ValueError(f"FitSettings.max_epochs must be >= 1, got {self.max_epochs}")
        monitors = [("monitor", self.monitor)]
        if self.early_stopping is not None:
            monitors.append(("early_stopping.monitor", self.early_stopping.monitor))
        for field_name, monitor in monitors:
            if not monitor.startswith("val/") or monitor.removeprefix("val/") not in METRIC_NAMES:
                raise ValueError(
                    f"FitSettings.{field_name} must be val/<metric> with a metric of "
                    f"{list(METRIC_NAMES)}, got {monitor!r}"
                )
        if self.mode not in ("min", "max"):
            raise ValueError(f"FitSettings.mode must be 'min' or 'max', got {self.mode!r}")
        if self.gradient_clip_algorithm not in ("norm", "value"):
            raise ValueError(
                "FitSettings.gradient_clip_algorithm must be 'norm' or 'value', got "
                f"{self.gradient_clip_algorithm!r}"
            )
        if self.max_group is not None and self.max_group < 1:
            raise ValueError(f"FitSettings.max_group must be >= 1, got {self.max_group}")


@dataclass
class FitResult:
    """What :meth:`ManySubjectsTrainer.fit` produced.

    Attributes:
        history: One row per (model, epoch): fold, subject, epoch, lr, ``train/...`` and
            ``val/...`` values.
        best_epoch: Per model, the epoch of its best state (the last epoch without validation).
        steps: Per model, the optimisation steps taken.
        train_seconds: Wall time of the epoch loop (training and validation).
        epoch_seconds: Wall time of every epoch (the first includes any compilation).
    """

    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: list[int] = field(default_factory=list)
    steps: list[int] = field(default_factory=list)
    train_seconds: float = 0.0
    epoch_seconds: list[float] = field(default_factory=list)


def per_sample_metrics(preds: Tensor, target: Tensor) -> dict[str, Tensor]:
    """The six metrics per sample, ``[G, B]`` each, of predictions and targets ``[G, B, C]``."""
    flat_p, flat_t = preds.reshape(-1, preds.shape[-1]), target.reshape(-1, target.shape[-1])
    return {m.name: m.function(flat_p, flat_t).view(preds.shape[:-1]) for m in LDL_METRICS}


class ManySubjectsTrainer:
    """Fit, validate and test one model per subject, all at once.

    Args:
        module: Template model (initial state of every subject's model).
        subjects: The subjects' splits; model ``s`` belongs to ``subjects[s]``.
        settings: Loop settings.
        log: Progress printer.
    """

    def __init__(
        self,
        module: EmotionDistributionModule,
        subjects: Sequence[SubjectSplit],
        settings: FitSettings,
        log: Callable[[str], None] = print,
    ) -> None:
        if not subjects:
            raise ValueError("ManySubjectsTrainer: no subjects")
        self.settings = settings
        self.subjects = list(subjects)
        self.log = log
        device = torch.device(settings.device)
        self.models = StackedModels(module, len(self.subjects), device, compile=settings.compile)
        self.rows = {
            name: StackedRows(self.subjects, name, device) for name in ("train", "val", "test")
        }
        self.schedule = LearningRateOracle(self.models.module)
        self.optimizer = self.schedule.build(self.models.parameters(), len(self.subjects))
        self.best: dict[str, Tensor] | None = None
        self.streams = ModelStreams(len(self.subjects), device)

    def _autocast(self) -> torch.autocast:
        """bf16 autocast for ``bf16-mixed`` (a disabled context for 32-bit)."""
        return torch.autocast(
            device_type=self.models.device.type,
            dtype=torch.bfloat16,
            enabled=self.settings.precision == "bf16-mixed",
        )

    @property
    def num_models(self) -> int:
        """S."""
        return len(self.subjects)

    # ------------------------------------------------------------------ training
    def _clip_gradients(self) -> None:
        value = self.settings.gradient_clip_val
        if not value:
            return
        grads = [p.grad for p in self.optimizer.params if p.grad is not None]
        if self.settings.gradient_clip_algorithm == "value":
            for g in grads:
                g.clamp_(-value, value)
            return
        # torch.nn.utils.clip_grad_norm_ per model: coef = max_norm / (||g||_2 + 1e-6), <= 1.
        norms = torch.stack([g.reshape(len(g), -1).norm(dim=1) for g in grads]).norm(dim=0)
        coef = (value / (norms + 1e-6)).clamp(max=1.0)
        for g in grads:
            g.mul_(coef.view((-1,) + (1,) * (g.dim() - 1)))

    def _group_step(
        self,
        rows: StackedRows,
        step_rows: Tensor,
        members: Tensor,
        size: int,
        sums: dict[str, Tensor],
        count: Tensor,
    ) -> Tensor:
        """Losses of one vectorised call; adds its terms and metrics to the epoch sums."""
        everyone = len(members) == self.num_models
        batch = rows.gather(step_rows.index_select(0, members)[:, :size])
        with self._autocast():
            terms, preds = self.models.losses(batch, None if everyone else members)
        # Autocast leaves some outputs in bf16: sums and metrics are taken in float32.
        terms = {k: v.float() for k, v in terms.items()}
        preds = preds.float()
        # Lightning's epoch value of a step-logged term: the batch-size weighted mean.
        stats = {f"loss_{k}" if k != "loss" else k: v.detach() * size for k, v in terms.items()}
        metrics = per_sample_metrics(preds, batch["target"])
        stats.update({k: v.sum(dim=1) for k, v in metrics.items()})
        index = members.cpu()
        for name, value in stats.items():
            acc = sums.setdefault(name, torch.zeros(self.num_models, dtype=torch.float64))
            acc.index_add_(0, index, value.detach().to("cpu", torch.float64))
        count.index_add_(0, index, torch.full((len(index),), float(size), dtype=torch.float64))
        return terms["loss"].sum()

    def _train_epoch(self, epoch: int, frozen: Tensor) -> dict[str, Tensor]:
        """One epoch of every model not ``frozen`` (``[S]`` bool); per-model means of the terms."""
        rows = self.rows["train"]
        order = rows.epoch_rows(self.settings.batch_size, self.settings.shuffle_seed, epoch)
        order[frozen] = -1
        sums: dict[str, Tensor] = {}
        count = torch.zeros(self.num_models, dtype=torch.float64)
        steps = torch.zeros(self.num_models, dtype=torch.int64)
        self.models.train(True)
        for step in range(order.shape[1]):
            step_rows = order[:, step]
            active = (step_rows >= 0).any(dim=1)
            self.optimizer.zero_grad()
            total: Tensor | None = None
            for group, size in step_groups(step_rows, self.streams.ids):
                start = self.streams.state_of(int(group[0]))
                for members in chunks(group, self.settings.max_group):
                    # Every piece of a group draws from the group's state: its models' own runs
                    # would all be there now.
                    self.streams.restore(start)
                    loss = self._group_step(rows, step_rows, members, size, sums, count)
                    total = loss if total is None else total + loss
                self.streams.advance(group, self.streams.capture())
            if total is None:
                continue
            total.backward()
            self._clip_gradients()
            self.optimizer.step(
                None if bool(active.all()) else active.to(self.optimizer.steps.device)
            )
            steps += active.to(torch.int64)
        means = {f"train/{k}": v / count.clamp_min(1) for k, v in sums.items()}
        means["steps"] = steps.to(torch.float64)
        return means

    # ------------------------------------------------------------------ evaluation
    @torch.no_grad()
    def evaluate(self, split: str) -> dict[str, Tensor]:
        """The six metrics of every model on its subject's ``split`` rows (``[S]`` float64 each).

        Models are in evaluation mode; each row is scored once, the mean is over the subject's
        rows (NaN for a subject without rows in ``split``).
        """
        rows = self.rows[split]
        ids, mask = rows.padded_rows()
        sums = {name: torch.zeros(self.num_models, dtype=torch.float64) for name in METRIC_NAMES}
        self.models.train(False)
        width = self.settings.eval_batch_size
        group = self.settings.max_group or self.num_models
        everyone = torch.arange(self.num_models)
        for start in range(0, ids.shape[1], width):
            chunk, valid = ids[:, start : start + width], mask[:, start : start + width]
            for first in range(0, self.num_models, group):
                members = everyone[first : first + group]
                batch = rows.gather(chunk.index_select(0, members))
                with self._autocast():
                    preds = self.models.predict(
                        batch, None if group >= self.num_models else members
                    )
                preds = preds.float()
                values = per_sample_metrics(preds, batch["target"])
                keep = valid.index_select(0, members).to(preds.device)
                for name, value in values.items():
                    sums[name].index_add_(0, members, (value * keep).sum(dim=1).cpu().double())
        count = rows.counts.to(torch.float64)
        return {name: total / count for name, total in sums.items()}

    # ------------------------------------------------------------------ the loop
    def fit(self) -> FitResult:
        """Train every model for ``max_epochs`` (or until it stops early), validating each epoch."""
        settings = self.settings
        has_val = bool((self.rows["val"].counts > 0).all())
        best_value = torch.full((self.num_models,), float("nan"), dtype=torch.float64)
        best_epoch = torch.full((self.num_models,), -1, dtype=torch.int64)
        stopping = (
            PerModelEarlyStopping(settings.early_stopping, self.num_models)
            if settings.early_stopping is not None and has_val
            else None
        )
        stopped = torch.zeros(self.num_models, dtype=torch.bool)
        self.best = self.models.snapshot()
        steps = torch.zeros(self.num_models, dtype=torch.int64)
        result = FitResult()
        started = time.perf_counter()
        lr = self.schedule.lr
        for epoch in range(settings.max_epochs):
            if bool(stopped.all()):
                break
            self.optimizer.lr = lr
            tick = time.perf_counter()
            train = self._train_epoch(epoch, stopped)
            steps += train.pop("steps").to(torch.int64)
            val = {f"val/{k}": v for k, v in self.evaluate("val").items()} if has_val else {}
            improved = ~stopped
            if has_val:
                current = val[settings.monitor]
                better = current < best_value if settings.mode == "min" else current > best_value
                improved &= ((best_epoch < 0) | better) & ~torch.isnan(current)
            if improved.any():
                self.models.copy_into(
                    self.best, torch.nonzero(improved).squeeze(1).to(settings.device)
                )
                if has_val:
                    best_value = torch.where(improved, val[settings.monitor], best_value)
                best_epoch = torch.where(improved, torch.full_like(best_epoch, epoch), best_epoch)
            for s in torch.nonzero(~stopped).squeeze(1).tolist():
                subject = self.subjects[s]
                row = {"fold": subject.fold, "subject": subject.subject, "epoch": epoch, "lr": lr}
                row.update({k: float(v[s]) for k, v in {**train, **val}.items()})
                result.history.append(row)
            running = ~stopped
            if stopping is not None:
                stopped |= stopping.update(val[settings.early_stopping.monitor])
            lr = self.schedule.end_epoch()
            mean_val = (
                f", mean {settings.monitor} {float(val[settings.monitor][running].mean()):.4f}"
                if has_val
                else ""
            )
            mean_loss = float(train["train/loss"][running].mean())
            result.epoch_seconds.append(time.perf_counter() - tick)
            self.log(
                f"[many-subjects] epoch {epoch + 1}/{settings.max_epochs}: {int(running.sum())} "
                f"models, mean train/loss {mean_loss:.4f}{mean_val}, {int(improved.sum())} "
                f"improved, {int(stopped.sum())} stopped ({result.epoch_seconds[-1]:.2f} s)"
            )
        result.train_seconds = time.perf_counter() - started
        result.best_epoch = best_epoch.tolist()
        result.steps = steps.tolist()
        return result

    def use_best(self) -> None:
        """Load every model's best state (after :meth:`fit`)."""
        if self.best is None:
            raise RuntimeError("ManySubjectsTrainer.use_best: call fit() first")
        self.models.load_snapshot(self.best)
