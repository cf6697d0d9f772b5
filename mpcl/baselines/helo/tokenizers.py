"""HeLo's per-modality tokenizers: plain linear maps, no positional or modality embeddings.

* **structured** ``[R, F]`` (DMER EEG, 18 channels x 5 bands): one token per row through a Linear
  ``F -> D`` shared by the rows (leading axes of ``[A, R, F]`` are flattened into rows).
* **flat** ``[F]`` (DMER GSR 28, PPG 27, face 768): ``n`` tokens from one Linear ``F -> n * D``.

Token counts of flat modalities follow the published model unless overridden: the physiological
modalities other than the anchor get as many tokens as the anchor (they are the anchor's
keys/values), and every behavioral modality gets as many tokens as the fused physiological branch
(so the two branches of the transport problem have the same size).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from torch import Tensor, nn

from datamodules.metadata import DatasetMetadata

#: Token count of a flat anchor modality (the published EEG anchor is structured, 18 rows).
DEFAULT_ANCHOR_TOKENS = 18


class LinearTokenizer(nn.Module):
    """Tokens ``[B, n, D]`` of one modality by a single Linear map.

    Structured: ``token_r = x_r W + b`` (``W``: ``F x D``, shared by the ``R`` rows). Flat:
    ``[token_1, ..., token_n] = reshape(x W + b, [n, D])`` (``W``: ``F x nD``).

    Args:
        name: The modality key (for error messages).
        shape: Per-sample shape of the modality.
        dim: Token size D.
        num_tokens: Token count of a flat layout; ``None`` for the structured layout (needs a
            shape with at least two axes).
    """

    def __init__(
        self, name: str, shape: tuple[int, ...], dim: int, num_tokens: int | None = None
    ) -> None:
        super().__init__()
        self.name = name
        self.shape = tuple(shape)
        self.dim = dim
        self.structured = num_tokens is None
        if self.structured:
            if len(shape) < 2:
                raise ValueError(
                    f"LinearTokenizer({name!r}): the structured layout needs a 2-D shape, got "
                    f"{list(shape)}; give a token count for flat vectors"
                )
            self.num_tokens = math.prod(shape[:-1])
            self.proj = nn.Linear(shape[-1], dim)
        else:
            if num_tokens < 1:
                raise ValueError(
                    f"LinearTokenizer({name!r}): num_tokens must be >= 1, got {num_tokens}"
                )
            self.num_tokens = num_tokens
            self.proj = nn.Linear(math.prod(shape), num_tokens * dim)

    def forward(self, x: Tensor) -> Tensor:
        """Tokens ``[B, n, D]`` of ``x`` ``[B, *shape]``."""
        if tuple(x.shape[1:]) != self.shape:
            raise ValueError(
                f"batch[{self.name!r}]: expected per-sample shape {list(self.shape)} (from "
                f"DatasetMetadata.modality_shapes), got {list(x.shape[1:])}"
            )
        if self.structured:
            return self.proj(x.reshape(x.shape[0], self.num_tokens, self.shape[-1]))
        return self.proj(x.reshape(x.shape[0], -1)).view(x.shape[0], self.num_tokens, self.dim)


def build_tokenizers(
    metadata: DatasetMetadata, dim: int, tokens_per_modality: Mapping[str, int] | None = None
) -> nn.ModuleDict:
    """One :class:`LinearTokenizer` per modality of ``metadata``, with HeLo's token counts.

    A modality listed in ``tokens_per_modality`` is flat with that many tokens; otherwise a shape
    with 2+ axes is structured and a vector is flat with the default count: the anchor (first
    physiological modality) :data:`DEFAULT_ANCHOR_TOKENS`, the other physiological modalities the
    anchor's count, behavioral modalities the fused physiological count ``n_anchor * max(1, P-1)``.
    With DMER shapes this gives 18 EEG, 18 GSR, 18 PPG and 36 face tokens, as published.

    Args:
        metadata: The data set description (needs at least one modality per branch).
        dim: Token size D.
        tokens_per_modality: Explicit token counts of flat layouts.

    Returns:
        The tokenizers keyed by modality, physiological first.
    """
    if not metadata.physiological or not metadata.behavioral:
        raise ValueError(
            "HeLo: DatasetMetadata.physiological and .behavioral must both be non-empty (HeLo "
            f"aligns the two branches), got {list(metadata.physiological)} and "
            f"{list(metadata.behavioral)}"
        )
    counts = dict(tokens_per_modality or {})
    unknown = sorted(set(counts) - set(metadata.modalities))
    if unknown:
        raise ValueError(
            f"HeLo: tokens_per_modality names unknown modalities {unknown} (the branches of "
            f"DatasetMetadata have {list(metadata.modalities)})"
        )

    def count(name: str, default: int) -> int | None:
        if name in counts:
            return counts[name]
        return None if len(metadata.modality_shapes[name]) >= 2 else default

    anchor, *others = metadata.physiological
    anchor_shape = metadata.modality_shapes[anchor]
    tokenizers = {
        anchor: LinearTokenizer(anchor, anchor_shape, dim, count(anchor, DEFAULT_ANCHOR_TOKENS))
    }
    anchor_tokens = tokenizers[anchor].num_tokens
    for name in others:
        shape = metadata.modality_shapes[name]
        tokenizers[name] = LinearTokenizer(name, shape, dim, count(name, anchor_tokens))
    fused_tokens = anchor_tokens * max(1, len(others))
    for name in metadata.behavioral:
        shape = metadata.modality_shapes[name]
        tokenizers[name] = LinearTokenizer(name, shape, dim, count(name, fused_tokens))
    return nn.ModuleDict(tokenizers)
