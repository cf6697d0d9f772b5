"""HeLoReferenceNet: the HeLo network as the released code computes it, defects included.

This is the network of ``HeLoModule(reference_quirks=True)``. It exists to check published
numbers and to measure what the released code's choices are worth; the default
:class:`~mpcl.baselines.helo.net.HeLoNet` is the corrected model. Every behaviour below follows
the released code, kaio-99/HeLo at commit 08dad27 (file and line given for each); the code is
our own.

1. **Attention blocks** (fusion, transformer self-attention, label-correlation cross-attention):
   query, key and value projections without bias and no output projection
   (``models/transformer_layers.py`` lines 54-56, ``models/model.py`` lines 41-43); logits
   ``(Q K^T + bias) / sqrt(d_h)``, so the label correlation is added *before* the scaling
   (``model.py`` lines 18-22); DropKey by adding ``-1e12`` to each logit with probability 0.5 in
   training *and* evaluation (``transformer_layers.py`` lines 38-40, ``model.py`` lines 25-27:
   ``use_DropKey=True`` whatever the mode); attention dropout 0.5 on the softmax weights
   (``transformer_layers.py`` line 42, ``model.py`` line 29; ``attn_drop=args.dropout`` at
   ``model.py`` lines 93, 102 and 112); residual + LayerNorm.
2. **Transformer layer**: that self-attention, then ``LayerNorm(x + Dropout(W_2 GELU(W_1 x)))``
   (``transformer_layers.py`` lines 17-20), FFN 64, dropout 0.5.
3. **Transport**: the literal plan product ``T H_P`` (``model.py`` line 146), which shrinks the
   tokens by about ``1/N_P``; the cost threshold from the batch-wide minimum and maximum
   (``OT_torch_.py`` lines 163-167), so a prediction depends on the rest of its batch.
4. **Label embeddings**: fresh ``U[0, 1)`` noise ``[B, C, D]``, drawn per sample at every call, in
   training and evaluation (``model.py`` line 131); nothing about them is learned.
5. **Label correlation**: ``F.normalize`` with its default ``dim=1`` on ``[B, C, D]``, i.e. over
   the *class* axis, then ``E E^T`` per sample (``model.py`` lines 164-165).
6. **Parameters**: an ``nn.Linear(C D, C)`` that ``forward`` never calls (``model.py`` line 106);
   with it the DMER count is the reference's 4,052,526.

Not reproduced: the released code's ``softmax(.).log()`` in the KL (we use ``log_softmax``, equal
up to rounding) and the IPOT kernel without the row shift of :func:`~.transport.ipot` (the same
iterates); the unused cosine cost matrix (``model.py`` lines 141-142) is not computed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import Tensor, nn

from datamodules.metadata import DatasetMetadata
from mpcl.baselines.helo.tokenizers import build_tokenizers
from mpcl.baselines.helo.transport import HeterogeneityMining

#: What the released code adds to a dropped logit (``transformer_layers.py`` line 40).
DROPPED_LOGIT = -1e12


def additive_dropkey(logits: Tensor, ratio: float) -> Tensor:
    """``logits`` plus ``-1e12`` at each entry with probability ``ratio``, as the reference does.

    Unlike :func:`~mpcl.baselines.helo.attention.dropkey_mask`, a query row whose keys are all
    dropped is not rescued: in float32 ``-1e12 + x`` rounds to ``-1e12`` for every ordinary
    logit ``x``, so that row's softmax is uniform over all its keys.
    """
    if ratio <= 0.0:
        return logits
    drop = torch.rand_like(logits) < ratio
    return logits + drop.to(logits.dtype) * DROPPED_LOGIT


class ReferenceAttention(nn.Module):
    r"""The released code's attention block: ``LayerNorm(Q + Dropout(softmax(logits)) V)``.

    .. math::
        \mathrm{logits}_h = \Big((Q W^q_h)(K W^k_h)^\top + \mathrm{bias}\Big) / \sqrt{D/H}
            + M, \qquad \mathrm{out} = \mathrm{LayerNorm}\big(Q + [\ldots,
            \mathrm{Dropout}(\mathrm{softmax}(\mathrm{logits}_h)) K W^v_h, \ldots]\big)

    ``W^q, W^k, W^v`` have no bias and there is no output projection (``3 D^2 + 2 D``
    parameters); ``M`` is DropKey's ``-1e12`` (:func:`additive_dropkey`), on in training and
    evaluation.

    Args:
        dim: Model size D.
        num_heads: Number H of heads; must divide D.
        dropkey: DropKey ratio (0.5 in the reference).
        attention_dropout: Dropout of the attention weights, training only (0.5 in the reference).
    """

    def __init__(
        self, dim: int, num_heads: int, dropkey: float = 0.5, attention_dropout: float = 0.5
    ) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"ReferenceAttention: num_heads={num_heads} must divide dim={dim}")
        if not 0.0 <= dropkey < 1.0:
            raise ValueError(f"ReferenceAttention: dropkey must be in [0, 1), got {dropkey}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.dropkey = dropkey
        self.query = nn.Linear(dim, dim, bias=False)
        self.key = nn.Linear(dim, dim, bias=False)
        self.value = nn.Linear(dim, dim, bias=False)
        self.dropout = nn.Dropout(attention_dropout)
        self.norm = nn.LayerNorm(dim)

    def _split(self, x: Tensor) -> Tensor:
        batch, tokens, _ = x.shape
        return x.view(batch, tokens, self.num_heads, self.head_dim).transpose(1, 2)

    def forward(
        self, query: Tensor, key_value: Tensor, bias: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Updated query tokens ``[B, Nq, D]`` and the attention weights ``[B, H, Nq, Nk]``.

        Args:
            query: Query tokens ``[B, Nq, D]``.
            key_value: Key (and value) tokens ``[B, Nk, D]``.
            bias: Per-sample logit bias ``[B, Nq, Nk]`` (the label correlation), added before
                the scaling and shared by the heads (the reference has one head there).
        """
        q = self._split(self.query(query))
        k = self._split(self.key(key_value))
        v = self._split(self.value(key_value))
        logits = q @ k.transpose(-2, -1)
        if bias is not None:
            logits = logits + bias.unsqueeze(1)
        logits = additive_dropkey(logits / math.sqrt(self.head_dim), self.dropkey)
        weights = logits.softmax(dim=-1)
        heads = self.dropout(weights) @ v
        heads = heads.transpose(1, 2).reshape(query.shape)
        return self.norm(query + heads), weights


class ReferenceEncoderLayer(nn.Module):
    """The released code's transformer layer: :class:`ReferenceAttention`, then a post-LN FFN.

    Args:
        dim: Model size D.
        num_heads: Heads of the self-attention.
        ffn_dim: Hidden width of the feed-forward network.
        dropkey: DropKey ratio of the self-attention.
        dropout: Attention-weight dropout and feed-forward output dropout.
    """

    def __init__(
        self, dim: int, num_heads: int, ffn_dim: int, dropkey: float, dropout: float
    ) -> None:
        super().__init__()
        self.attention = ReferenceAttention(dim, num_heads, dropkey, dropout)
        self.feed_forward = nn.Sequential(
            nn.Linear(dim, ffn_dim), nn.GELU(), nn.Linear(ffn_dim, dim), nn.Dropout(dropout)
        )
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: Tensor) -> Tensor:
        """Encoded tokens ``[B, N, D]``."""
        x, _ = self.attention(x, x)
        return self.norm(x + self.feed_forward(x))


def class_axis_correlation(embeddings: Tensor) -> Tensor:
    r"""Per-sample label correlation normalised over the class axis, as the reference computes it.

    .. math:: \tilde E_{cd} = E_{cd} / \lVert E_{:d} \rVert, \qquad A = \tilde E \tilde E^\top

    (the columns, not the rows, are unit vectors, so the diagonal is not 1).

    Args:
        embeddings: Label embeddings ``[B, C, D]``.

    Returns:
        ``[B, C, C]``.
    """
    unit = nn.functional.normalize(embeddings, dim=1)
    return unit @ unit.transpose(1, 2)


class HeLoReferenceNet(nn.Module):
    """The HeLo network with the released code's behaviour (see the module docstring).

    Args:
        metadata: Data set description (both branches non-empty; the fused physiological and
            the behavioral token counts must be equal, as the plan product needs).
        hidden_dim: Token size D.
        num_heads: Heads of the fusion cross-attention and of the transformer layer.
        dropkey: DropKey ratio of all three attention blocks.
        ffn_dim: Feed-forward width of the transformer layer.
        dropout: Attention-weight dropout of all three blocks and the feed-forward dropout.
        head_dim: Hidden width of the MLP head.
        tokens_per_modality: Token counts of flat modalities (see
            :func:`~mpcl.baselines.helo.tokenizers.build_tokenizers`).
        cost_threshold: Threshold fraction of the transport costs (batch-wide range).
        gw_iterations: Gromov-Wasserstein linearisation steps.
        ipot_iterations: IPOT steps per linearisation.
        ipot_beta: IPOT step size.
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
    ) -> None:
        super().__init__()
        self.anchor, *others = metadata.physiological
        self.keys = tuple(others)
        self.behavioral = tuple(metadata.behavioral)
        self.num_emotions = num_emotions = metadata.num_emotions
        self.hidden_dim = hidden_dim
        self.tokenizers = build_tokenizers(metadata, hidden_dim, tokens_per_modality)
        physiological_tokens = self.tokenizers[self.anchor].num_tokens * max(1, len(self.keys))
        behavioral_tokens = sum(self.tokenizers[m].num_tokens for m in self.behavioral)
        if physiological_tokens != behavioral_tokens:
            raise ValueError(
                f"HeLoReferenceNet: the plan product T @ H_P needs equal branch sizes, got "
                f"{physiological_tokens} physiological and {behavioral_tokens} behavioral tokens "
                "(set tokens_per_modality)"
            )
        self.cross_attention = ReferenceAttention(hidden_dim, num_heads, dropkey, dropout)
        self.fusion_proj = nn.Linear(hidden_dim, hidden_dim)
        self.mining = HeterogeneityMining(
            cost_threshold,
            gw_iterations,
            ipot_iterations,
            ipot_beta,
            transport="plan",
            threshold_scope="batch",
        )
        self.encoder = ReferenceEncoderLayer(hidden_dim, num_heads, ffn_dim, dropkey, dropout)
        # Registered and never called, as in the reference: it only adds C D * C + C parameters.
        self.unused_linear = nn.Linear(num_emotions * hidden_dim, num_emotions)
        self.token_mix = nn.Linear(physiological_tokens + behavioral_tokens, num_emotions)
        self.label_attention = ReferenceAttention(hidden_dim, 1, dropkey, dropout)
        self.head = nn.Sequential(
            nn.Linear(num_emotions * hidden_dim, head_dim),
            nn.ReLU(),
            nn.Linear(head_dim, head_dim),
            nn.ReLU(),
            nn.Linear(head_dim, num_emotions),
        )

    def label_embeddings(self, batch_size: int, like: Tensor) -> Tensor:
        """Fresh ``U[0, 1)`` label embeddings ``[B, C, D]``, one draw per sample and call."""
        shape = (batch_size, self.num_emotions, self.hidden_dim)
        return torch.rand(shape, dtype=like.dtype, device=like.device)

    def forward(self, batch: Mapping[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        """Predicted distributions ``[B, C]`` and ``aux``.

        ``aux`` holds ``logits``, ``log_probs``, ``label_correlation`` (``[B, C, C]``, per
        sample), ``plan`` (``[B, Np, Nb]``) and ``label_attention`` (``[B, C, C]``).
        """
        tokens = {name: tokenizer(batch[name]) for name, tokenizer in self.tokenizers.items()}
        anchor = tokens[self.anchor]
        fused = [self.cross_attention(anchor, tokens[name])[0] for name in self.keys]
        physiological = self.fusion_proj(torch.cat(fused, dim=1) if fused else anchor)
        behavioral = torch.cat([tokens[name] for name in self.behavioral], dim=1)
        physiological, plan = self.mining(physiological, behavioral)
        # One call on both branches: the layer treats samples independently (fresh DropKey and
        # dropout draws per element), so this equals the reference's two calls in distribution.
        both = self.encoder(torch.cat([physiological, behavioral], dim=0))
        physiological, behavioral = both.split(anchor.shape[0], dim=0)
        joint = torch.cat([physiological, behavioral], dim=1)
        slots = self.token_mix(joint.transpose(1, 2)).transpose(1, 2)
        embeddings = self.label_embeddings(anchor.shape[0], slots)
        correlation = class_axis_correlation(embeddings)
        labelled, attention = self.label_attention(embeddings, slots, correlation)
        logits = self.head(labelled.flatten(start_dim=1))
        log_probs = torch.log_softmax(logits, dim=-1)
        aux = {
            "logits": logits,
            "log_probs": log_probs,
            "label_correlation": correlation,
            "plan": plan,
            "label_attention": attention.squeeze(1),
        }
        return log_probs.exp(), aux
