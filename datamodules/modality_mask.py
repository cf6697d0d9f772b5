"""Modality presence masks: which modality of which window is there, and how to take it away.

A batch may carry, for a modality ``m``, a boolean column ``batch["present:m"]`` ``[B]``: False
means the modality is missing in that window and its feature values are meaningless (every model
of the project then ignores them, see :mod:`mpcl.nn.masking`). A batch without the column has
the modality in every window, so batches of unmasked runs are unchanged.

:class:`ModalityMasking` is the one place that configures missing and noisy modalities for every
data set (``--data.masking.*``): named modalities dropped at train and/or test time, a per-window
random drop rate, additive Gaussian noise at a given SNR, training-time modality dropout, and
whether an all-NaN modality block in a file means "missing" instead of an error. All random draws
are seeded, so a run is reproducible, and :func:`masking_report` describes what was applied (the
datamodule writes it as ``masking.json`` into the run folder).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import Tensor

#: Prefix of a modality's presence column in a batch dict.
PRESENT_PREFIX = "present:"

Stage = Literal["train", "test", "both"]
#: Which splits a stage affects. Validation follows training: checkpoint selection must see the
#: same conditions as training, never the test condition.
STAGE_SPLITS: dict[str, tuple[str, ...]] = {
    "train": ("train", "val"),
    "test": ("test",),
    "both": ("train", "val", "test"),
}


def present_key(modality: str) -> str:
    """The batch key of ``modality``'s presence column."""
    return PRESENT_PREFIX + modality


def presence(batch: Mapping[str, Tensor], modality: str) -> Tensor | None:
    """``batch["present:<modality>"]`` as a bool tensor ``[B]``, or ``None`` (all present)."""
    value = batch.get(present_key(modality))
    return None if value is None else value.bool()


@dataclass
class ModalityMasking:
    """Missing and noisy modalities, for every data set.

    Attributes:
        drop: Modalities removed entirely (every window) at ``drop_at``.
        drop_at: ``train`` (training and validation), ``test`` or ``both``.
        drop_rate: Probability that a window loses one modality, drawn uniformly among the
            modalities (seeded by ``seed``; at most one modality per window, so a window never
            loses everything), applied at ``drop_rate_at``.
        drop_rate_at: ``train``, ``test`` or ``both``.
        noise_snr_db: Additive white Gaussian noise per modality at this signal-to-noise ratio
            in dB: ``x + n``, ``n ~ N(0, P / 10^(SNR/10))`` with ``P`` the mean squared
            (standardised) value of the modality over the split's rows.
        noise_at: ``train``, ``test`` or ``both``.
        train_dropout: Modality dropout in training: every training batch, each window loses one
            random modality with this probability (fresh draws per epoch, seeded). The same
            option for every model, so comparisons stay fair.
        nan_as_missing: Treat a modality block that is entirely NaN in a window of a data file as
            missing instead of refusing the file (partial NaN stays an error). Off by default.
        seed: Seed of every random draw above.
    """

    drop: list[str] = field(default_factory=list)
    drop_at: Stage = "test"
    drop_rate: float = 0.0
    drop_rate_at: Stage = "test"
    noise_snr_db: dict[str, float] = field(default_factory=dict)
    noise_at: Stage = "test"
    train_dropout: float = 0.0
    nan_as_missing: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("drop_at", "drop_rate_at", "noise_at"):
            value = getattr(self, name)
            if value not in STAGE_SPLITS:
                raise ValueError(
                    f"data.masking.{name} must be one of {sorted(STAGE_SPLITS)}, got {value!r}"
                )
        for name in ("drop_rate", "train_dropout"):
            rate = float(getattr(self, name))
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"data.masking.{name} must be in [0, 1], got {rate}")
        self.drop = list(self.drop)
        self.noise_snr_db = {str(k): float(v) for k, v in dict(self.noise_snr_db).items()}

    def check_modalities(self, modalities: Sequence[str]) -> None:
        """Raise when an option names a modality the data set does not have."""
        for option, names in (("drop", self.drop), ("noise_snr_db", list(self.noise_snr_db))):
            unknown = sorted(set(names) - set(modalities))
            if unknown:
                raise ValueError(
                    f"data.masking.{option} names modalities {unknown} that the data set does not "
                    f"have (available: {list(modalities)})"
                )

    @property
    def changes_splits(self) -> bool:
        """Whether any split table is modified (drops, drop rate or noise)."""
        return bool(self.drop or self.drop_rate > 0 or self.noise_snr_db)

    def to_dict(self) -> dict:
        """The settings as plain JSON values."""
        return dataclasses.asdict(self)


def _generator(seed: int, *salt: int) -> torch.Generator:
    # One independent stream per (seed, split, purpose): changing one option never shifts
    # another option's draws.
    value = int(seed)
    for s in salt:
        value = value * 1_000_003 + int(s)
    return torch.Generator().manual_seed(value % (2**63))


def random_window_drop(
    num_rows: int, num_modalities: int, rate: float, generator: torch.Generator
) -> Tensor:
    """Which modality each window loses: ``[N, M]`` bool, True = dropped.

    Each window independently loses exactly one modality (uniform over the ``M``) with
    probability ``rate``, and nothing otherwise.

    Args:
        num_rows: Windows ``N``.
        num_modalities: ``M``.
        rate: Drop probability per window.
        generator: The random stream.

    Returns:
        The drop indicator ``[N, M]``.
    """
    hit = torch.rand(num_rows, generator=generator) < rate
    which = torch.randint(num_modalities, (num_rows,), generator=generator)
    dropped = torch.zeros(num_rows, num_modalities, dtype=torch.bool)
    dropped[hit, which[hit]] = True
    return dropped


def add_noise(values: Tensor, snr_db: float, generator: torch.Generator) -> Tensor:
    """``values + n`` with ``n ~ N(0, sigma^2)``, ``sigma^2 = mean(values^2) / 10^(snr_db / 10)``.

    Args:
        values: ``[N, *shape]`` features.
        snr_db: Signal-to-noise ratio in dB.
        generator: The random stream.

    Returns:
        The noisy copy.
    """
    power = values.to(torch.float64).pow(2).mean()
    sigma = float(torch.sqrt(power / 10.0 ** (snr_db / 10.0)))
    noise = torch.randn(values.shape, generator=generator, dtype=torch.float64) * sigma
    return (values.to(torch.float64) + noise).to(values.dtype)


def apply_masking(
    table: dict[str, Tensor],
    modalities: Sequence[str],
    masking: ModalityMasking,
    split: str,
) -> dict[str, Tensor]:
    """The split's batch table with the configured drops and noise applied.

    Dropped values are zeroed (on standardised features: the training mean) and their presence
    set False; presence already in ``table`` (e.g. from ``nan_as_missing``) is kept. Presence
    columns are added only where some window lacks a modality.

    Args:
        table: A split's batch table (modalities, ``target``, ids, maybe presence columns).
        modalities: The data set's modalities, in order.
        masking: The settings.
        split: ``train``, ``val`` or ``test``.

    Returns:
        A new dict; ``table`` is not modified.
    """
    out = dict(table)
    num_rows = len(out["target"])
    split_index = ("train", "val", "test").index(split)
    dropped = torch.zeros(num_rows, len(modalities), dtype=torch.bool)
    if split in STAGE_SPLITS[masking.drop_at]:
        for j, name in enumerate(modalities):
            if name in masking.drop:
                dropped[:, j] = True
    if masking.drop_rate > 0 and split in STAGE_SPLITS[masking.drop_rate_at]:
        generator = _generator(masking.seed, split_index, 1)
        dropped |= random_window_drop(num_rows, len(modalities), masking.drop_rate, generator)
    if split in STAGE_SPLITS[masking.noise_at]:
        for j, name in enumerate(modalities):
            if name in masking.noise_snr_db:
                generator = _generator(masking.seed, split_index, 2, j)
                out[name] = add_noise(out[name], masking.noise_snr_db[name], generator)
    for j, name in enumerate(modalities):
        present = presence(out, name)
        if dropped[:, j].any():
            keep = ~dropped[:, j] if present is None else present & ~dropped[:, j]
            shape = (num_rows,) + (1,) * (out[name].dim() - 1)
            out[name] = torch.where(
                keep.view(shape), out[name], torch.zeros((), dtype=out[name].dtype)
            )
            out[present_key(name)] = keep
    return out


def drop_random_modality(
    batch: dict[str, Tensor], modalities: Sequence[str], rate: float, generator: torch.Generator
) -> dict[str, Tensor]:
    """Training-time modality dropout on one batch (see :attr:`ModalityMasking.train_dropout`).

    Args:
        batch: A batch dict.
        modalities: The data set's modalities.
        rate: Probability that a window loses one (uniformly chosen) modality.
        generator: The random stream (CPU).

    Returns:
        The batch with presence columns for every modality and dropped values zeroed.
    """
    num_rows = len(batch["target"])
    dropped = random_window_drop(num_rows, len(modalities), rate, generator)
    out = dict(batch)
    for j, name in enumerate(modalities):
        keep = ~dropped[:, j].to(batch[name].device)
        present = presence(batch, name)
        if present is not None:
            keep = keep & present
        shape = (num_rows,) + (1,) * (batch[name].dim() - 1)
        out[name] = torch.where(
            keep.view(shape), batch[name], torch.zeros((), dtype=batch[name].dtype)
        )
        out[present_key(name)] = keep
    return out


class ModalityDropoutMixin:
    """Adds training modality dropout to an :class:`~datamodules.batches.InMemoryBatches`.

    Each epoch ``e`` draws from its own stream ``(seed, e)``, so a resumed run draws the same
    masks as an uninterrupted one (the epoch is set by Lightning at every epoch start).
    """

    dropout_modalities: tuple[str, ...] = ()
    dropout_rate: float = 0.0
    dropout_seed: int = 0

    def __iter__(self) -> Iterator[dict[str, Tensor]]:
        generator = _generator(self.dropout_seed, 3, self.epoch)  # type: ignore[attr-defined]
        for batch in super().__iter__():  # type: ignore[misc]
            yield drop_random_modality(batch, self.dropout_modalities, self.dropout_rate, generator)


def presence_counts(table: Mapping[str, Tensor], modalities: Sequence[str]) -> dict[str, int]:
    """Windows in which each modality is missing."""
    counts = {}
    for name in modalities:
        present = presence(table, name)
        counts[name] = 0 if present is None else int((~present).sum())
    return counts


def masking_report(
    masking: ModalityMasking,
    split_tables: Mapping[str, Mapping[str, Tensor]],
    modalities: Sequence[str],
) -> dict:
    """What was applied: the settings and, per split, the rows and missing windows per modality."""
    return {
        "settings": masking.to_dict(),
        "splits": {
            name: {
                "rows": len(table["target"]),
                "missing_windows": presence_counts(table, modalities),
            }
            for name, table in split_tables.items()
        },
    }
