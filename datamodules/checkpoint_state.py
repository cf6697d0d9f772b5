"""What a datamodule saves in a checkpoint, and the checks before a checkpoint's model is used.

A model is only right on rows prepared the way its training rows were: standardised or not,
z-scored per subject or not, with the same modalities in the same layout, and with sane
statistics. A checkpoint records these settings; :func:`check_checkpoint_state` compares them
with the datamodule that is about to feed the model (``mpcl predict``, ``test``, a resume) and
refuses any difference instead of producing plausible but wrong numbers.

Statistics are valid when every mean and standard deviation is finite and every standard
deviation is at least ``min_std`` (:data:`datamodules.base.MIN_STD`, 1e-6): fitting replaces a
smaller one by 1 (the feature is centred only), so a smaller or zero value cannot come from
training and would turn every prediction into NaN or inf.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor


def layout_of(modality_shapes: Mapping[str, Sequence[int]]) -> list[list[Any]]:
    """``[[name, [shape...]], ...]`` in modality order: plain Python for the checkpoint."""
    return [[name, [int(d) for d in shape]] for name, shape in modality_shapes.items()]


def check_statistics(
    owner: str, means: Mapping[str, Tensor], stds: Mapping[str, Tensor], min_std: float
) -> None:
    """Refuse non-finite means or standard deviations, and standard deviations below ``min_std``.

    Raises:
        ValueError: Naming the modality, the feature index and the value.
    """
    if set(means) != set(stds):
        raise ValueError(
            f"{owner}: the checkpoint's statistics name modalities {sorted(means)} (mean) and "
            f"{sorted(stds)} (std); expected the same"
        )
    for name in means:
        mean = torch.as_tensor(means[name]).reshape(-1).double()
        std = torch.as_tensor(stds[name]).reshape(-1).double()
        for label, values, bad in (
            ("mean", mean, ~torch.isfinite(mean)),
            ("std", std, ~torch.isfinite(std) | (std < min_std)),
        ):
            if bool(bad.any()):
                index = int(torch.nonzero(bad)[0])
                raise ValueError(
                    f"{owner}: the checkpoint's standardisation {label} of modality {name!r} "
                    f"is {float(values[index])} at feature {index} ({int(bad.sum())} bad); "
                    f"expected finite values{' >= ' + str(min_std) if label == 'std' else ''}. "
                    "The checkpoint is damaged or was not written by mpcl fit"
                )


def check_checkpoint_state(
    owner: str,
    state: Mapping[str, Any],
    standardize: bool,
    subject_standardize: bool,
    modality_shapes: Mapping[str, Sequence[int]],
) -> None:
    """Refuse a checkpoint whose preprocessing or layout differs from this datamodule's.

    Checkpoints written before these keys existed lack ``standardize`` / ``modalities``; their
    statistics' presence then stands for ``standardize``.

    Raises:
        ValueError: Naming the setting, the checkpoint's value and this datamodule's.
    """
    trained_standardize = bool(state.get("standardize", "feature_mean" in state))
    if trained_standardize != standardize:
        raise ValueError(
            f"{owner}: the checkpoint's model was trained with standardize="
            f"{trained_standardize}, but this datamodule has standardize={standardize}; set "
            f"--data.standardize {str(trained_standardize).lower()} to use it"
        )
    trained_subject = bool(state.get("subject_standardize", False))
    if trained_subject != subject_standardize:
        raise ValueError(
            f"{owner}: the checkpoint's model was trained with "
            f"subject_standardize={trained_subject}, but this datamodule has "
            f"subject_standardize={subject_standardize}; set --data.subject_standardize "
            f"{str(trained_subject).lower()} to predict with it"
        )
    if "modalities" in state:
        trained = [[str(n), [int(d) for d in s]] for n, s in state["modalities"]]
        here = layout_of(modality_shapes)
        if trained != here:
            raise ValueError(
                f"{owner}: the checkpoint's model was trained on modalities {trained} "
                f"(name, shape, in order), but this datamodule provides {here}"
            )
