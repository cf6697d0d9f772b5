"""Per-modality tokenizers: the features of one modality become a sequence of D-dim tokens.

Three layouts, chosen from the modality's shape in :class:`~datamodules.metadata.DatasetMetadata`
(or overridden per modality):

* **structured** ``[R, F]`` (e.g. EEG differential entropy, 18 channels x 5 bands): one token per
  row, a Linear ``F -> D`` shared by the rows plus a learned row embedding. Shapes with more axes
  ``[A, R, F]`` are flattened to ``A * R`` rows.
* **flat** ``[F]`` (e.g. 28 GSR statistics): ``n`` tokens from one Linear ``F -> n * D``.
* **grouped** ``[F]`` with ``F = G * P`` (e.g. face LBP-TOP, 3 planes x 256 bins): one token per
  contiguous group, each group with its own Linear ``P -> D``.

Every tokenizer adds a learned modality embedding so that later stages can tell modalities apart
when their tokens are pooled or concatenated.

See docs/model.md, section 'Tokenizers'.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

from datamodules.metadata import DatasetMetadata
from mpcl.nn.fusion import FeedForward

#: Upper bound of the default token count of a flat vector (keeps ``F -> n * D`` small).
MAX_DEFAULT_TOKENS = 8


def default_num_tokens(num_features: int) -> int:
    """Default token count of a flat feature vector: ``round(sqrt(F))`` clipped to ``[1, 8]``.

    The square root gives short vectors (a few dozen statistics) a handful of tokens, so that
    multi-scale pooling has something to pool, while the cap bounds the ``F x n*D`` weight of
    long vectors (use a grouped layout for those).

    Args:
        num_features: The length F of the vector.

    Returns:
        The number of tokens.
    """
    return max(1, min(MAX_DEFAULT_TOKENS, round(math.sqrt(num_features))))


class _Tokenizer(nn.Module):
    """Shared bookkeeping: expected per-sample shape, token count, modality embedding."""

    def __init__(self, name: str, shape: tuple[int, ...], num_tokens: int, dim: int) -> None:
        super().__init__()
        self.name = name
        self.shape = tuple(shape)
        self.num_tokens = num_tokens
        self.modality_embedding = nn.Parameter(torch.randn(dim) * 0.02)

    def _check(self, x: Tensor) -> None:
        if tuple(x.shape[1:]) != self.shape:
            raise ValueError(
                f"batch[{self.name!r}]: expected per-sample shape {list(self.shape)} (from "
                f"DatasetMetadata.modality_shapes), got {list(x.shape[1:])}"
            )


class StructuredTokenizer(_Tokenizer):
    """One token per row of a ``[..., R, F]`` modality.

    ``token_r = x_r W + b + e_r + e_mod`` with ``W`` shared by all rows, ``e_r`` a learned row
    (channel) embedding and ``e_mod`` the modality embedding.

    Args:
        name: The modality key (for error messages).
        shape: Per-sample shape, at least 2-D; leading axes are flattened into rows.
        dim: Token size D.
    """

    def __init__(self, name: str, shape: tuple[int, ...], dim: int) -> None:
        if len(shape) < 2:
            raise ValueError(f"StructuredTokenizer({name!r}): needs a 2-D shape, got {list(shape)}")
        rows = math.prod(shape[:-1])
        super().__init__(name, shape, rows, dim)
        self.proj = nn.Linear(shape[-1], dim)
        self.row_embedding = nn.Parameter(torch.randn(rows, dim) * 0.02)

    def forward(self, x: Tensor) -> Tensor:
        """Tokens ``[B, R, D]`` of ``x`` ``[B, *shape]``."""
        self._check(x)
        rows = x.reshape(x.shape[0], self.num_tokens, self.shape[-1])
        return self.proj(rows) + self.row_embedding + self.modality_embedding


class FlatTokenizer(_Tokenizer):
    """``n`` tokens of a feature vector: ``tokens = reshape(x W + b, [n, D]) + e_mod``.

    Args:
        name: The modality key (for error messages).
        shape: Per-sample shape; flattened to ``F`` features.
        num_tokens: The number ``n`` of tokens.
        dim: Token size D.
    """

    def __init__(self, name: str, shape: tuple[int, ...], num_tokens: int, dim: int) -> None:
        if num_tokens < 1:
            raise ValueError(f"FlatTokenizer({name!r}): num_tokens must be >= 1, got {num_tokens}")
        super().__init__(name, shape, num_tokens, dim)
        self.dim = dim
        self.proj = nn.Linear(math.prod(shape), num_tokens * dim)

    def forward(self, x: Tensor) -> Tensor:
        """Tokens ``[B, n, D]`` of ``x`` ``[B, *shape]``."""
        self._check(x)
        tokens = self.proj(x.reshape(x.shape[0], -1))
        return tokens.view(x.shape[0], self.num_tokens, self.dim) + self.modality_embedding


class GroupedTokenizer(_Tokenizer):
    """One token per contiguous feature group: ``token_g = x_g W_g + b_g + e_mod``.

    Each group has its own weight ``W_g`` (``P x D``): groups are semantically different (e.g. the
    XY, XT and YT planes of LBP-TOP), and the per-group bias doubles as a group embedding. All
    groups are computed in one batched matrix product.

    Args:
        name: The modality key (for error messages).
        shape: Per-sample shape; flattened to ``F = G * P`` features.
        groups: The number ``G`` of groups; must divide ``F``.
        dim: Token size D.
    """

    def __init__(self, name: str, shape: tuple[int, ...], groups: int, dim: int) -> None:
        features = math.prod(shape)
        if groups < 1 or features % groups:
            raise ValueError(
                f"GroupedTokenizer({name!r}): token_groups={groups} must be a positive divisor of "
                f"the {features} features of shape {list(shape)}"
            )
        super().__init__(name, shape, groups, dim)
        self.group_size = features // groups
        bound = 1.0 / math.sqrt(self.group_size)
        self.weight = nn.Parameter(
            torch.empty(groups, self.group_size, dim).uniform_(-bound, bound)
        )
        self.bias = nn.Parameter(torch.empty(groups, dim).uniform_(-bound, bound))

    def forward(self, x: Tensor) -> Tensor:
        """Tokens ``[B, G, D]`` of ``x`` ``[B, *shape]``."""
        self._check(x)
        groups = x.reshape(x.shape[0], self.num_tokens, self.group_size)
        # One batched product over the groups, [G, B, P] @ [G, P, D] (what an einsum would plan,
        # without its dispatch cost at batch 1, the latency path).
        tokens = torch.bmm(groups.transpose(0, 1), self.weight).transpose(0, 1)
        # Dropout draws its mask in memory order, so a contiguous result keeps the mask independent
        # of how the product was computed (the many-subjects mode relies on this to reproduce
        # one-model runs' dropout masks).
        return (tokens + self.bias + self.modality_embedding).contiguous()


class TokenRefiner(nn.Module):
    """Residual position-wise feed-forward block on a modality's tokens: ``LN(t + FFN(t))``.

    Args:
        dim: Token size D.
        dropout: Dropout inside the feed-forward block.
    """

    def __init__(self, dim: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.ffn = FeedForward(dim, dropout)
        self.norm = nn.LayerNorm(dim)

    def forward(self, tokens: Tensor) -> Tensor:
        """``[B, T, D] -> [B, T, D]``."""
        return self.norm(tokens + self.ffn(tokens))


class ModalityTokenizers(nn.Module):
    """One tokenizer per modality of a data set, built from its metadata alone.

    Layout per modality: ``token_groups[m]`` -> grouped; else ``tokens_per_modality[m]`` -> flat
    with that many tokens; else a shape with 2+ axes -> structured; else flat with
    :func:`default_num_tokens`. An explicit entry applies to the flattened features even for a
    structured shape. ``metadata.extra["token_groups"]`` (a data set's known group layout) is
    used where ``token_groups`` is not given.

    Args:
        metadata: The data set description.
        dim: Token size D.
        tokens_per_modality: Token counts of flat layouts, per modality.
        token_groups: Group counts of grouped layouts, per modality.
        dropout: Dropout on the tokens.
        modalities: Build tokenizers for these modalities only (default: all of
            ``metadata.modalities``); layout entries may still name the others.
        token_ffn: Follow every tokenizer by a residual feed-forward block
            ``t <- LN(t + FFN(t))`` (its weights shared by the modality's tokens). The
            projections above are linear, so without it a modality that fusion does not mix
            (a branch's only modality, or a non-anchor one) reaches the prototypes as a linear
            map of its features; the block makes each token a non-linear feature detector.
        input_dropout: Dropout on the raw features, before tokenizing: each input feature is
            zeroed with this probability (and the rest scaled by ``1 / (1 - p)``), so that no
            single feature, e.g. one that identifies a training clip, can carry a prediction.
    """

    def __init__(
        self,
        metadata: DatasetMetadata,
        dim: int,
        tokens_per_modality: Mapping[str, int] | None = None,
        token_groups: Mapping[str, int] | None = None,
        dropout: float = 0.0,
        modalities: Sequence[str] | None = None,
        token_ffn: bool = False,
        input_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        counts = dict(tokens_per_modality or {})
        if token_groups is None:
            token_groups = metadata.extra.get("token_groups")
        groups = dict(token_groups or {})
        for option, entries in (("tokens_per_modality", counts), ("token_groups", groups)):
            unknown = sorted(set(entries) - set(metadata.modality_shapes))
            if unknown:
                raise ValueError(
                    f"ModalityTokenizers: {option} names unknown modalities {unknown} "
                    f"(DatasetMetadata.modality_shapes has {sorted(metadata.modality_shapes)})"
                )
        both = sorted(set(counts) & set(groups))
        if both:
            raise ValueError(
                f"ModalityTokenizers: modalities {both} are in both tokens_per_modality and "
                "token_groups; expected one layout per modality"
            )
        tokenizers: dict[str, nn.Module] = {}
        for name in metadata.modalities if modalities is None else modalities:
            shape = metadata.modality_shapes[name]
            if name in groups:
                tokenizers[name] = GroupedTokenizer(name, shape, int(groups[name]), dim)
            elif name in counts:
                tokenizers[name] = FlatTokenizer(name, shape, int(counts[name]), dim)
            elif len(shape) >= 2:
                tokenizers[name] = StructuredTokenizer(name, shape, dim)
            else:
                tokenizers[name] = FlatTokenizer(
                    name, shape, default_num_tokens(math.prod(shape)), dim
                )
        self.tokenizers = nn.ModuleDict(tokenizers)
        self.refiners = (
            nn.ModuleDict({name: TokenRefiner(dim, dropout) for name in tokenizers})
            if token_ffn
            else None
        )
        self.dropout = nn.Dropout(dropout)
        self.input_dropout = nn.Dropout(input_dropout) if input_dropout > 0 else None

    def num_tokens(self, modality: str) -> int:
        """The number of tokens that ``modality`` becomes."""
        return self.tokenizers[modality].num_tokens

    def forward(self, batch: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Tokens ``[B, T_m, D]`` of every modality in ``batch`` that has a tokenizer."""
        tokens = {}
        for name, tokenizer in self.tokenizers.items():
            if name not in batch:
                raise KeyError(
                    f"batch has no {name!r} tensor (expected shape [B, *{list(tokenizer.shape)}]); "
                    f"batch keys: {sorted(batch)}"
                )
            features = batch[name]
            if self.input_dropout is not None:
                features = self.input_dropout(features)
            modality_tokens = tokenizer(features)
            if self.refiners is not None:
                modality_tokens = self.refiners[name](modality_tokens)
            tokens[name] = self.dropout(modality_tokens)
        return tokens
