"""Per-model measurements on DMER-shaped tensors: training and evaluation throughput, latency.

A training step is the model's whole objective: ``forward``, :meth:`compute_losses` (KL plus the
model's auxiliary terms), ``backward`` and the configured optimizer's ``step``. Evaluation is the
forward pass in eval mode without gradients and without a target (the work of ``predict``).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from benchmarks.timing import Elapsed, repeat, summary
from datamodules.metadata import DatasetMetadata

Batch = dict[str, Tensor]


def random_batches(
    metadata: DatasetMetadata, batch_size: int, count: int, device: torch.device, seed: int = 0
) -> list[Batch]:
    """``count`` batches of standard-normal features in the metadata's shapes.

    Targets are softmax distributions of normal logits; ``subject``, ``trial`` and ``index`` are
    filled so that every key of a real batch is present.
    """
    generator = torch.Generator().manual_seed(seed)
    batches = []
    for i in range(count):
        batch = {
            name: torch.randn(batch_size, *shape, generator=generator)
            for name, shape in metadata.modality_shapes.items()
        }
        logits = torch.randn(batch_size, metadata.num_emotions, generator=generator)
        batch["target"] = logits.softmax(dim=-1)
        batch["subject"] = torch.zeros(batch_size, dtype=torch.long)
        batch["trial"] = torch.zeros(batch_size, dtype=torch.long)
        batch["index"] = torch.arange(i * batch_size, (i + 1) * batch_size)
        batches.append({k: v.to(device) for k, v in batch.items()})
    return batches


def without_target(batch: Mapping[str, Tensor]) -> Batch:
    """The inputs of a prediction: the batch without ``target``."""
    return {k: v for k, v in batch.items() if k != "target"}


def parameter_count(model: torch.nn.Module) -> int:
    """Number of trainable scalars (parameters with ``requires_grad``)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def optimizer_and_scheduler(model: Any) -> tuple[torch.optim.Optimizer | None, Any]:
    """The optimizer and epoch scheduler the model configures (``(None, None)`` for none).

    Raises:
        TypeError: For an optimizer configuration this benchmark does not read.
    """
    config = model.configure_optimizers()
    if config is None:
        return None, None
    if isinstance(config, torch.optim.Optimizer):
        return config, None
    if isinstance(config, dict) and isinstance(config.get("optimizer"), torch.optim.Optimizer):
        scheduler = config.get("lr_scheduler")
        if isinstance(scheduler, dict):
            scheduler = scheduler.get("scheduler")
        return config["optimizer"], scheduler
    raise TypeError(
        f"{type(model).__name__}.configure_optimizers() returned {type(config).__name__}; the "
        "benchmark reads an Optimizer or a dict with 'optimizer' (and 'lr_scheduler')"
    )


class TrainStep:
    """One optimisation step of the model's full objective on a batch.

    Args:
        model: An :class:`~mpcl.models.base.EmotionDistributionModule` on its device.
        optimizer: The optimizer over its parameters.
    """

    def __init__(self, model: Any, optimizer: torch.optim.Optimizer) -> None:
        self.model = model
        self.optimizer = optimizer

    def __call__(self, batch: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Forward, loss, backward, step; returns the (graph-attached) loss terms and preds."""
        preds, aux = self.model(batch)
        losses = self.model.compute_losses(batch, preds, aux)
        self.optimizer.zero_grad(set_to_none=True)
        losses["loss"].backward()
        self.optimizer.step()
        return {**losses, "preds": preds}


def _cycle(batches: list[Batch], steps: int) -> list[Batch]:
    return [batches[i % len(batches)] for i in range(steps)]


def train_throughput(
    step: TrainStep,
    batches: list[Batch],
    device: torch.device,
    steps: int,
    warmup: int,
    repeats: int,
) -> dict[str, Any]:
    """Windows per second of training (median over repeats of ``steps`` steps each)."""
    step.model.train()
    plan = _cycle(batches, steps)

    def run() -> None:
        for batch in plan:
            step(batch)

    return _rates(repeat(run, device, warmup, repeats), steps, len(batches[0]["target"]))


def eval_throughput(
    model: Any,
    batches: list[Batch],
    device: torch.device,
    steps: int,
    warmup: int,
    repeats: int,
) -> dict[str, Any]:
    """Windows per second of the eval-mode forward pass without gradients or target."""
    model.eval()
    plan = [without_target(b) for b in _cycle(batches, steps)]

    def run() -> None:
        with torch.inference_mode():
            for batch in plan:
                model(batch)

    return _rates(repeat(run, device, warmup, repeats), steps, len(batches[0]["target"]))


def _rates(times: list[Elapsed], steps: int, batch_size: int) -> dict[str, Any]:
    return {
        "windows_per_s": summary([steps * batch_size / t.wall for t in times]),
        "ms_per_step": summary([1e3 * t.wall / steps for t in times]),
        "cpu_ms_per_step": summary([1e3 * t.cpu / steps for t in times]),
        "batch_size": batch_size,
        "steps": steps,
    }


def latency(
    model: Any, batch: Mapping[str, Tensor], device: torch.device, calls: int, warmup: int
) -> dict[str, Any]:
    """Milliseconds per single-window prediction on one CPU thread (median over ``calls``).

    The thread count is restored afterwards. On CUDA the host thread that launches the kernels is
    the one thread; every call is synchronised.
    """
    if len(batch["target"]) != 1:
        raise ValueError(f"latency: expected a batch of one window, got {len(batch['target'])}")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model.eval()
        inputs = without_target(batch)

        def call() -> None:
            with torch.inference_mode():
                model(inputs)

        times = repeat(call, device, warmup, calls)
    finally:
        torch.set_num_threads(threads)
    ms = sorted(1e3 * t.wall for t in times)
    result: dict[str, Any] = {"ms": summary(ms), "calls": calls, "threads": 1}
    result["ms"]["p90"] = ms[min(len(ms) - 1, int(0.9 * len(ms)))]
    return result


def exported_latency(
    model: Any, batch: Mapping[str, Tensor], calls: int, warmup: int, workdir: str
) -> dict[str, Any]:
    """Milliseconds per single-window prediction of the model as ``mpcl.export`` writes it (CPU).

    The model goes through the deployment path: :class:`~mpcl.export.InferenceModel` (without
    standardisation statistics, so that it sees the same inputs as :func:`latency`), exported
    to a frozen TorchScript file in ``workdir``, loaded back and timed on one thread like
    :func:`latency`. ``max_abs_diff`` compares its prediction with the eager model's.
    """
    from mpcl.export import InferenceModel, export_model, load_exported

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        wrapper = InferenceModel(model.eval())
        inputs = tuple(batch[m] for m in wrapper.modalities)
        path = export_model(wrapper, f"{workdir}/model.pt")
        exported = load_exported(path)
        with torch.inference_mode():
            reference = wrapper(*inputs)

            def call() -> None:
                exported(*inputs)

            times = repeat(call, torch.device("cpu"), warmup, calls)
            difference = (exported(*inputs) - reference).abs().max().item()
    finally:
        torch.set_num_threads(threads)
    ms = sorted(1e3 * t.wall for t in times)
    result: dict[str, Any] = {"ms": summary(ms), "calls": calls, "threads": 1, "format": "pt"}
    result["ms"]["p90"] = ms[min(len(ms) - 1, int(0.9 * len(ms)))]
    result["max_abs_diff"] = difference
    return result


def _single_window_times(
    fn: Any, inputs: tuple[Tensor, ...], device: torch.device, calls: int, warmup: int
) -> dict[str, Any]:
    """Median (and p90) milliseconds of ``fn(*inputs)`` on one thread, synchronised per call."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.inference_mode():
            times = repeat(lambda: fn(*inputs), device, warmup, calls)
    finally:
        torch.set_num_threads(threads)
    ms = sorted(1e3 * t.wall for t in times)
    result: dict[str, Any] = {"ms": summary(ms), "calls": calls, "threads": 1}
    result["ms"]["p90"] = ms[min(len(ms) - 1, int(0.9 * len(ms)))]
    return result


#: Fast paths the benchmark times per device (plain ``aoti`` on CUDA is ``aoti-graph`` without
#: the graph: slower and compiled a second time, so not timed by default).
BENCH_FAST_MODES = {"cpu": ("aoti",), "cuda": ("eager-graph", "aoti-graph", "compile")}


def fast_latency(
    model: Any,
    batch: Mapping[str, Tensor],
    device: torch.device,
    calls: int,
    warmup: int,
    workdir: str,
    modes: tuple[str, ...] | None = None,
) -> dict[str, Any]:
    """Single-window latency of every fast path of :mod:`mpcl.fastpath` on ``device``.

    The model goes behind :class:`~mpcl.export.InferenceModel` (no standardisation, the inputs of
    :func:`latency`); each mode is built (compiled, captured), checked against the eager
    prediction (``max_abs_diff``) and timed like :func:`latency`. A mode that fails to build is
    kept with its error. ``best`` names the fastest mode and ``ms`` repeats its times.
    """
    from mpcl.export import InferenceModel
    from mpcl.fastpath import fast_predictor

    wrapper = InferenceModel(model.eval())
    inputs = tuple(batch[m] for m in wrapper.modalities)
    with torch.inference_mode():
        reference = wrapper(*inputs)
    result: dict[str, Any] = {"modes": {}}
    for mode in modes or BENCH_FAST_MODES[device.type]:
        started = time.perf_counter()
        try:
            fast = fast_predictor(wrapper, inputs, mode, workdir=f"{workdir}/{mode}")
        except Exception as error:  # a mode the model cannot take keeps the others
            result["modes"][mode] = {"skipped": f"{type(error).__name__}: {str(error)[:300]}"}
            continue
        build_s = time.perf_counter() - started
        timed = _single_window_times(fast, inputs, device, calls, warmup)
        with torch.inference_mode():
            timed["max_abs_diff"] = (fast(*inputs) - reference).abs().max().item()
        timed["build_s"] = build_s
        result["modes"][mode] = timed
    measured = {m: r for m, r in result["modes"].items() if "ms" in r}
    if measured:
        best = min(measured, key=lambda m: measured[m]["ms"]["median"])
        result.update(best=best, ms=measured[best]["ms"])
    return result


def flop_counts(
    step: Any, train_batch: Mapping[str, Tensor], model: Any, single: Mapping[str, Tensor]
) -> dict[str, int]:
    """FLOPs of one training step (forward, backward, optimizer) and of one window's prediction.

    Counted by :class:`torch.utils.flop_counter.FlopCounterMode`: matrix products, convolutions
    and attention (element-wise operations are not counted, as is usual for FLOP accounting).
    The counted training step is a real step (it updates the model) and is run before timing.
    """
    from torch.utils.flop_counter import FlopCounterMode

    counts: dict[str, int] = {}
    if step is not None:
        model.train()
        counter = FlopCounterMode(display=False)
        with counter:
            step(train_batch)
        counts["train_step"] = int(counter.get_total_flops())
    model.eval()
    counter = FlopCounterMode(display=False)
    with counter, torch.inference_mode():
        model(without_target(single))
    counts["window"] = int(counter.get_total_flops())
    return counts
