"""The benchmark's settings: one JSON-serialisable record shared by the driver and the workers."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from datamodules.protocols import DEFAULT_SEED
from datamodules.synthetic import SyntheticDMERDataModule


@dataclass(frozen=True)
class BenchSettings:
    """What is measured, how often, and on which data.

    Attributes:
        device: ``cpu`` or ``cuda``.
        batch_size: Training (and Lightning-epoch) batch size.
        eval_batch_size: Batch size of the evaluation throughput.
        steps: Batches per timed repeat of the throughput loops.
        warmup: Untimed repeats (or calls) before timing.
        repeats: Timed repeats of the throughput loops; tables report the median.
        latency_calls: Timed single-window calls; tables report the median.
        epoch_repeats: Timed Lightning / bare epoch pairs (0 skips the comparison).
        threads: Torch intra-op threads for everything but latency (0: torch's default).
        num_subjects: Subjects of the synthetic DMER-format data set of the epoch comparison.
        rows_per_clip: Its 1-s rows per clip (32 clips per subject).
        data_root: Its cache folder (default: ``$MPCL_DATA_DIR/synthetic`` or ``data/synthetic``).
        seed: Seed of every model's initialisation.
        fast_latency: 1: also time the fast single-window paths of :mod:`mpcl.fastpath`
            (AOTInductor; CUDA graphs on CUDA); 0: skip them (each compiles for seconds).
    """

    device: str = "cpu"
    batch_size: int = 128
    eval_batch_size: int = 128
    steps: int = 20
    warmup: int = 3
    repeats: int = 7
    latency_calls: int = 300
    epoch_repeats: int = 5
    threads: int = 0
    num_subjects: int = 12
    rows_per_clip: int = 24
    data_root: str | None = None
    seed: int = DEFAULT_SEED
    fast_latency: int = 1

    def __post_init__(self) -> None:
        if self.device not in ("cpu", "cuda"):
            raise ValueError(f"BenchSettings.device must be 'cpu' or 'cuda', got {self.device!r}")
        positive = ("batch_size", "eval_batch_size", "steps", "repeats", "latency_calls")
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"BenchSettings.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("warmup", "epoch_repeats", "threads", "fast_latency"):
            if getattr(self, name) < 0:
                raise ValueError(f"BenchSettings.{name} must be >= 0, got {getattr(self, name)}")

    def to_dict(self) -> dict[str, Any]:
        """The settings as plain JSON values."""
        return asdict(self)

    def datamodule(self) -> SyntheticDMERDataModule:
        """The synthetic DMER-format datamodule (kfold fold 0, as the run configs); not set up."""
        return SyntheticDMERDataModule(
            num_subjects=self.num_subjects,
            rows_per_clip=self.rows_per_clip,
            root=self.data_root,
            batch_size=self.batch_size,
            eval_batch_size=self.eval_batch_size,
        )


#: Tiny sizes for a smoke run (``--quick``): seconds per model, numbers meaningless.
QUICK = {
    "steps": 2,
    "warmup": 1,
    "repeats": 2,
    "latency_calls": 5,
    "epoch_repeats": 1,
    "num_subjects": 5,
    "rows_per_clip": 2,
}
