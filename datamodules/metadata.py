"""Dataset metadata that models are configured from.

Every datamodule exposes a :class:`DatasetMetadata`. Models never hard-code a data set's shapes:
LightningCLI links ``data.metadata`` into ``model.init_args.metadata`` at instantiation, so one
model YAML runs on DMER, WESAD or the synthetic data set unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class DatasetMetadata:
    """What a model needs to know about the data it is trained on.

    Attributes:
        emotion_names: The C emotion categories, in the column order of ``batch["target"]``.
        valence_groups: For each emotion, an integer valence group (0 positive, 1 negative by
            convention). Same-group emotions are expected to co-occur.
        modality_shapes: Per modality key of the batch dict, the per-sample feature shape
            (without the batch axis), e.g. ``{"eeg": (18, 5), "gsr": (28,)}``.
        physiological: Modalities of the physiological branch, in order; the first is the anchor
            that queries the others in associative-memory fusion.
        behavioral: Modalities of the behavioral branch.
        name: A short data set name, used in run names and result tables.
    """

    emotion_names: tuple[str, ...]
    valence_groups: tuple[int, ...]
    modality_shapes: Mapping[str, tuple[int, ...]]
    physiological: tuple[str, ...]
    behavioral: tuple[str, ...]
    name: str = "dataset"
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Normalise containers so that metadata read back from a checkpoint (lists) compares
        # equal to metadata built in code (tuples).
        object.__setattr__(self, "emotion_names", tuple(self.emotion_names))
        object.__setattr__(self, "valence_groups", tuple(int(g) for g in self.valence_groups))
        object.__setattr__(
            self,
            "modality_shapes",
            {str(k): tuple(int(s) for s in v) for k, v in self.modality_shapes.items()},
        )
        object.__setattr__(self, "physiological", tuple(self.physiological))
        object.__setattr__(self, "behavioral", tuple(self.behavioral))
        object.__setattr__(self, "extra", dict(self.extra))
        if len(self.emotion_names) != len(self.valence_groups):
            raise ValueError(
                f"DatasetMetadata: {len(self.emotion_names)} emotion_names but "
                f"{len(self.valence_groups)} valence_groups; expected one group per emotion"
            )
        unknown = [
            m for m in (*self.physiological, *self.behavioral) if m not in self.modality_shapes
        ]
        if unknown:
            raise ValueError(
                f"DatasetMetadata: branch modalities {unknown} have no entry in modality_shapes "
                f"(known: {sorted(self.modality_shapes)})"
            )
        overlap = set(self.physiological) & set(self.behavioral)
        if overlap:
            raise ValueError(f"DatasetMetadata: modalities {sorted(overlap)} are in both branches")

    @property
    def num_emotions(self) -> int:
        """The number C of emotion categories."""
        return len(self.emotion_names)

    @property
    def modalities(self) -> tuple[str, ...]:
        """All modalities used by the model: physiological first, then behavioral."""
        return (*self.physiological, *self.behavioral)

    def feature_dim(self, modality: str) -> int:
        """Number of scalar features of one sample of ``modality`` (product of its shape)."""
        size = 1
        for s in self.modality_shapes[modality]:
            size *= s
        return size

    def restricted_to(self, modalities: Sequence[str]) -> DatasetMetadata:
        """A copy that keeps only ``modalities`` (e.g. for a physiological-only ablation)."""
        keep = set(modalities)
        return DatasetMetadata(
            emotion_names=self.emotion_names,
            valence_groups=self.valence_groups,
            modality_shapes={k: v for k, v in self.modality_shapes.items() if k in keep},
            physiological=tuple(m for m in self.physiological if m in keep),
            behavioral=tuple(m for m in self.behavioral if m in keep),
            name=self.name,
            extra=self.extra,
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python form (lists, dicts, str, int) for hyper-parameters and checkpoints.

        Checkpoints hold only this form so that they load with ``torch.load(weights_only=True)``.
        """
        return {
            "name": self.name,
            "emotion_names": list(self.emotion_names),
            "valence_groups": list(self.valence_groups),
            "modality_shapes": {k: list(v) for k, v in self.modality_shapes.items()},
            "physiological": list(self.physiological),
            "behavioral": list(self.behavioral),
            "extra": dict(self.extra),
        }

    @classmethod
    def coerce(cls, value: DatasetMetadata | Mapping[str, Any]) -> DatasetMetadata:
        """Accept either a :class:`DatasetMetadata` or its :meth:`to_dict` form."""
        if isinstance(value, DatasetMetadata):
            return value
        if isinstance(value, Mapping):
            return cls(**dict(value))
        raise TypeError(f"expected DatasetMetadata or a mapping, got {type(value).__name__}")
