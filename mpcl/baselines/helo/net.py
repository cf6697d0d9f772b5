"""HeLoNet: the HeLo network (ACM MM 2025) as plain ``torch.nn`` modules, sized from metadata.

Data flow (DMER sizes, D = 128, C = 10):

1. Tokenizers: EEG ``[18, 5]`` -> 18 tokens, GSR and PPG -> 18 tokens each, face -> 36 tokens.
2. Physiological fusion: one shared cross-attention block (4 heads, DropKey 0.5, post-LN) with the
   anchor (EEG) as query and each other physiological modality as key/value; outputs concatenated
   (36 tokens) and projected by a Linear ``D -> D``.
3. Heterogeneity mining: Gromov-Wasserstein plan between physiological and behavioral tokens (no
   gradient); the physiological tokens are transported by it.
4. One transformer encoder layer shared by both branches (4 heads, FFN 64, GELU, dropout 0.5,
   post-LN); the branches are concatenated (72 tokens) and a Linear over the token axis maps
   72 -> C tokens.
5. Label-correlation-driven cross-attention: label embeddings query the C tokens with the learned
   label correlation added to the logits; residual + LayerNorm.
6. Head: flatten ``C * D`` -> 128 -> ReLU -> 128 -> ReLU -> C -> softmax.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from datamodules.metadata import DatasetMetadata
from mpcl.baselines.helo.attention import CrossAttentionBlock
from mpcl.baselines.helo.labels import (
    LabelCorrelationAttention,
    LabelEmbedding,
    embedding_correlation,
)
from mpcl.baselines.helo.tokenizers import build_tokenizers
from mpcl.baselines.helo.transport import HeterogeneityMining, TransportKind


class HeLoNet(nn.Module):
    """The HeLo network; every size that depends on the data comes from ``metadata``.

    The anchor is the first physiological modality; the other physiological modalities are its
    keys/values (with a single physiological modality, the anchor tokens go to the projection
    directly). Behavioral modalities are concatenated token-wise.

    Args:
        metadata: Data set description (both branches non-empty).
        hidden_dim: Token size D.
        num_heads: Heads of the fusion cross-attention and of the transformer layer.
        dropkey: DropKey ratio of the fusion cross-attention.
        ffn_dim: Feed-forward width of the transformer layer.
        dropout: Dropout of the transformer layer.
        head_dim: Hidden width of the MLP head.
        tokens_per_modality: Token counts of flat modalities (defaults as published, see
            :func:`~mpcl.baselines.helo.tokenizers.build_tokenizers`).
        cost_threshold: Threshold fraction of the transport costs.
        gw_iterations: Gromov-Wasserstein linearisation steps.
        ipot_iterations: IPOT steps per linearisation.
        ipot_beta: IPOT step size.
        transport: How the plan moves the physiological tokens (``barycentric`` or ``plan``).
    """

    def __init__(
        self,
        metadata: DatasetMetadata,
        hidden_dim: int = 128,
        num_heads: int = 4,
        dropkey: float = 0.5,
        ffn_dim: int = 64,
        dropout: float = 0.5,
        head_dim: int = 128,
        tokens_per_modality: Mapping[str, int] | None = None,
        cost_threshold: float = 0.1,
        gw_iterations: int = 5,
        ipot_iterations: int = 20,
        ipot_beta: float = 0.1,
        transport: TransportKind = "barycentric",
    ) -> None:
        super().__init__()
        self.anchor, *others = metadata.physiological
        self.keys = tuple(others)
        self.behavioral = tuple(metadata.behavioral)
        num_emotions = metadata.num_emotions
        self.tokenizers = build_tokenizers(metadata, hidden_dim, tokens_per_modality)
        self.cross_attention = CrossAttentionBlock(hidden_dim, num_heads, dropkey)
        self.fusion_proj = nn.Linear(hidden_dim, hidden_dim)
        self.mining = HeterogeneityMining(
            cost_threshold, gw_iterations, ipot_iterations, ipot_beta, transport
        )
        self.encoder = nn.TransformerEncoderLayer(
            hidden_dim, num_heads, ffn_dim, dropout, activation="gelu", batch_first=True
        )
        physiological_tokens = self.tokenizers[self.anchor].num_tokens * max(1, len(self.keys))
        behavioral_tokens = sum(self.tokenizers[m].num_tokens for m in self.behavioral)
        if transport == "plan" and physiological_tokens != behavioral_tokens:
            raise ValueError(
                f"HeLoNet: transport='plan' needs equal branch sizes, got {physiological_tokens} "
                f"physiological and {behavioral_tokens} behavioral tokens (set "
                "tokens_per_modality or use transport='barycentric')"
            )
        transported = physiological_tokens if transport == "plan" else behavioral_tokens
        self.token_mix = nn.Linear(transported + behavioral_tokens, num_emotions)
        self.labels = LabelEmbedding(num_emotions, hidden_dim)
        self.label_attention = LabelCorrelationAttention(hidden_dim)
        self.head = nn.Sequential(
            nn.Linear(num_emotions * hidden_dim, head_dim),
            nn.ReLU(),
            nn.Linear(head_dim, head_dim),
            nn.ReLU(),
            nn.Linear(head_dim, num_emotions),
        )

    def _encode(self, physiological: Tensor, behavioral: Tensor) -> tuple[Tensor, Tensor]:
        # One call of the shared layer on both branches when their lengths allow it.
        if physiological.shape[1] == behavioral.shape[1]:
            both = self.encoder(torch.cat([physiological, behavioral], dim=0))
            return both.split(physiological.shape[0], dim=0)  # type: ignore[return-value]
        return self.encoder(physiological), self.encoder(behavioral)

    def forward(self, batch: Mapping[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        """Predicted distributions ``[B, C]`` and ``aux``.

        ``aux`` holds ``logits``, ``log_probs``, ``label_correlation`` (``[C, C]``, the learned
        correlation the alignment loss compares with the targets), ``plan`` (``[B, Np, Nb]``)
        and ``label_attention`` (``[B, C, C]``).
        """
        tokens = {name: tokenizer(batch[name]) for name, tokenizer in self.tokenizers.items()}
        anchor = tokens[self.anchor]
        fused = [self.cross_attention(anchor, tokens[name])[0] for name in self.keys]
        physiological = self.fusion_proj(torch.cat(fused, dim=1) if fused else anchor)
        behavioral = torch.cat([tokens[name] for name in self.behavioral], dim=1)
        physiological, plan = self.mining(physiological, behavioral)
        physiological, behavioral = self._encode(physiological, behavioral)
        joint = torch.cat([physiological, behavioral], dim=1)
        slots = self.token_mix(joint.transpose(1, 2)).transpose(1, 2)
        embeddings = self.labels()
        correlation = embedding_correlation(embeddings)
        labelled, attention = self.label_attention(embeddings, slots, correlation)
        logits = self.head(labelled.flatten(start_dim=1))
        log_probs = torch.log_softmax(logits, dim=-1)
        aux = {
            "logits": logits,
            "log_probs": log_probs,
            "label_correlation": correlation,
            "plan": plan,
            "label_attention": attention,
        }
        return log_probs.exp(), aux
