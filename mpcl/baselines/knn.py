"""AA-kNN: the label distribution of a row is the mean of its k nearest training rows' ones.

Algorithm adaptation of k-nearest neighbours to label-distribution learning (Geng, 2016):
``d_hat(x) = (1 / k) sum_{i in N_k(x)} d_i`` with ``N_k(x)`` the k training rows closest to
``x`` in Euclidean distance on the concatenated standardised features. Fitting stores the
training rows (the "bank"); prediction is batched: distances to the bank in chunks of bank rows
(``torch.cdist``), a running top-k merged across chunks, and one gather of the neighbours'
distributions.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor

from datamodules.metadata import DatasetMetadata
from mpcl.baselines.fitted import ClosedFormModule, check_modalities, concat_features
from mpcl.models.base import Batch


def nearest_neighbours(
    queries: Tensor, bank: Tensor, k: int, chunk_size: int = 65536
) -> tuple[Tensor, Tensor]:
    """The ``k`` bank rows nearest to each query (Euclidean), smallest distance first.

    Memory is ``O(Q * (chunk_size + k))``: the bank is scanned in chunks and each chunk's top-k
    is merged with the running top-k, so the full ``Q x N`` distance matrix never exists.

    Args:
        queries: ``[Q, D]``.
        bank: ``[N, D]`` with ``N >= k``.
        k: Number of neighbours.
        chunk_size: Bank rows per distance block.

    Returns:
        Distances ``[Q, k]`` and bank row indices ``[Q, k]``.
    """
    if not 1 <= k <= len(bank):
        raise ValueError(f"nearest_neighbours: k must be in [1, {len(bank)}], got {k}")
    best_dist = queries.new_empty(len(queries), 0)
    best_idx = torch.empty(len(queries), 0, dtype=torch.long, device=queries.device)
    for start in range(0, len(bank), chunk_size):
        block = torch.cdist(queries, bank[start : start + chunk_size])
        dist, idx = block.topk(min(k, block.shape[1]), dim=1, largest=False)
        best_dist = torch.cat([best_dist, dist], dim=1)
        best_idx = torch.cat([best_idx, idx + start], dim=1)
        best_dist, order = best_dist.topk(min(k, best_dist.shape[1]), dim=1, largest=False)
        best_idx = best_idx.gather(1, order)
    return best_dist, best_idx


class AAKNNModule(ClosedFormModule):
    """AA-kNN: mean of the ``k`` nearest training distributions.

    No training metrics are logged: on training rows they would be resubstitution numbers (each
    row is its own nearest neighbour) at the cost of an ``N x N`` search; validation and test rows
    are not in the bank. The bank (every training row's features and target) is saved in
    checkpoints: for DMER that is the size of the training split.

    Args:
        metadata: Data set description; linked from the datamodule by the CLI.
        k: Number of neighbours (clamped, with a warning, to the number of training rows).
        modalities: Modalities to concatenate (default: all of the metadata's branches).
        chunk_size: Bank rows per distance block (bounds memory).
    """

    data_sized_buffers = ("bank_features", "bank_targets")
    score_training_rows = False

    def __init__(
        self,
        metadata: DatasetMetadata | dict[str, Any],
        k: int = 10,
        modalities: list[str] | None = None,
        chunk_size: int = 65536,
    ) -> None:
        super().__init__(metadata)
        if k < 1:
            raise ValueError(f"AAKNNModule: k must be >= 1, got {k}")
        if chunk_size < 1:
            raise ValueError(f"AAKNNModule: chunk_size must be >= 1, got {chunk_size}")
        self.k = k
        self.chunk_size = chunk_size
        self.modalities = check_modalities(self.metadata, modalities, "AAKNNModule")
        width = sum(self.metadata.feature_dim(m) for m in self.modalities)
        self.register_buffer("bank_features", torch.empty(0, width))
        self.register_buffer("bank_targets", torch.empty(0, self.num_emotions))

    def fit_training_split(self, train: Mapping[str, Tensor], datamodule: Any) -> None:
        """Store every training row's features and target distribution."""
        self.bank_features = concat_features(train, self.modalities).float().to(self.device)
        self.bank_targets = train["target"].float().to(self.device)
        if self.k > len(self.bank_targets):
            rank_zero_warn(
                f"AAKNNModule: k={self.k} exceeds the {len(self.bank_targets)} training rows; "
                "using every training row"
            )

    def forward(self, batch: Batch) -> tuple[Tensor, dict[str, Tensor]]:
        """Mean of the neighbours' distributions; ``aux`` holds their distances and row ids."""
        self.check_fitted()
        queries = concat_features(batch, self.modalities).to(self.bank_features.dtype)
        k = min(self.k, len(self.bank_features))
        dist, idx = nearest_neighbours(queries, self.bank_features, k, self.chunk_size)
        preds = self.bank_targets[idx].mean(dim=1)
        return preds, {"neighbour_distances": dist, "neighbour_rows": idx}
