"""Prediction heads: hierarchical semantic compression, and the ``flat`` ablation.

Both map the emotion representations ``E'`` ``[B, C, D]`` to logits ``[B, C]`` (the distribution
is their softmax) and return attention weights for analysis where they have any.

See docs/model.md, section 'Hierarchical compression'.
"""

from __future__ import annotations

from torch import Tensor, nn


class HierarchicalCompressionHead(nn.Module):
    r"""Emotion level -> global level -> distribution.

    (The prototype -> emotion level step is the prototype readout, which averages the K
    prototypes of each emotion.)

    .. math::
        s_c = \mathrm{MLP}(e_c), \quad
        a = \mathrm{softmax}_c\big(w^\top \tanh(e_c V)\big), \quad
        g = \textstyle\sum_c a_c e_c, \quad
        \hat d = \mathrm{softmax}(s + g W)

    The score MLP is shared by the emotions (each emotion is scored from its own vector), the
    attention pooling compresses all emotions into a global context ``g`` that sets the logits
    jointly.

    Args:
        num_emotions: C.
        dim: D.
        hidden_dim: Hidden size of the score MLP and the pooling attention.
        dropout: Dropout in the score MLP and on ``g``.
    """

    def __init__(self, num_emotions: int, dim: int, hidden_dim: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.score = nn.Sequential(
            nn.Linear(dim, hidden_dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden_dim, 1)
        )
        self.pool_attention = nn.Sequential(
            nn.Linear(dim, hidden_dim), nn.Tanh(), nn.Linear(hidden_dim, 1, bias=False)
        )
        self.dropout = nn.Dropout(dropout)
        self.global_logits = nn.Linear(dim, num_emotions)

    def forward(self, emotions: Tensor) -> tuple[Tensor, Tensor]:
        """Logits ``[B, C]`` and the pooling attention ``[B, C]`` of ``emotions`` ``[B, C, D]``."""
        scores = self.score(emotions).squeeze(-1)
        attention = self.pool_attention(emotions).squeeze(-1).softmax(dim=-1)
        context = (attention.unsqueeze(-1) * emotions).sum(dim=1)
        return scores + self.global_logits(self.dropout(context)), attention


class FlatHead(nn.Module):
    """The ``flat`` ablation: ``softmax(MLP(flatten(E')))`` with one hidden ReLU layer.

    Args:
        num_emotions: C.
        dim: D.
        hidden_dim: Hidden size.
        dropout: Dropout after the hidden layer.
    """

    def __init__(self, num_emotions: int, dim: int, hidden_dim: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(num_emotions * dim, hidden_dim),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden_dim, num_emotions),
        )

    def forward(self, emotions: Tensor) -> tuple[Tensor, None]:
        """Logits ``[B, C]`` and no attention."""
        return self.net(emotions.flatten(1)), None
