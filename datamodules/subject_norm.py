"""Per-subject feature standardisation: remove each subject's own offset and scale.

Physiological and behavioural features carry large subject-specific offsets and gains (skin
conductance level, resting heart rate, electrode impedance, face identity), which is what makes
subject-independent evaluation hard. The common remedy in EEG / physiological emotion
recognition is to z-score every subject's rows with that subject's own statistics. It uses the
features of a subject only, never a label, so it is available at test time for an unseen subject
as soon as a recording of them is (it is transductive over that subject's unlabelled rows; the
protocol documentation says so wherever it is switched on).
"""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor

from datamodules.table import FeatureTable


def standardize_per_subject(table: FeatureTable, min_std: float = 1e-6) -> FeatureTable:
    """A copy of ``table`` with every feature z-scored within each subject.

    For subject ``s`` with rows ``R_s`` and feature ``x``:
    ``x' = (x - mean_{R_s}(x)) / std_{R_s}(x)``, with the population standard deviation
    ``std = sqrt(sum((x - mean)^2) / |R_s|)``, accumulated in float64 for all subjects at once
    (``index_add_`` over the subject index, no Python loop over subjects). Features whose
    within-subject standard deviation is below ``min_std`` (constant for that subject) are only
    centred.

    Args:
        table: The rows to standardise; its ``subject`` column groups them.
        min_std: Threshold below which a feature is centred but not scaled.

    Returns:
        A table with the same columns and float32 contiguous features.
    """
    subjects, group = torch.unique(table.subject, return_inverse=True)
    counts = torch.bincount(group, minlength=len(subjects)).to(torch.float64)
    features = {}
    for name, values in table.features.items():
        flat = values.reshape(len(values), -1).to(torch.float64)
        mean = _group_sum(flat, group, len(subjects)) / counts[:, None]
        centred = flat - mean[group]
        var = _group_sum(centred.square(), group, len(subjects)) / counts[:, None]
        std = var.sqrt()
        std = torch.where(std < min_std, torch.ones_like(std), std)
        features[name] = (centred / std[group]).reshape(values.shape).float().contiguous()
    return dataclasses.replace(table, features=features)


def _group_sum(values: Tensor, group: Tensor, num_groups: int) -> Tensor:
    """Row sums per group: ``out[g] = sum_{i: group[i] = g} values[i]``."""
    out = values.new_zeros((num_groups, values.shape[1]))
    return out.index_add_(0, group, values)
