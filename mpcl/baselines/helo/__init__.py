"""HeLo (Zheng et al., ACM MM 2025), the main baseline, reimplemented from its description.

See ``docs/baselines.md`` (section HeLo) for what it is, where we deviate from the released code
and the ``reference_quirks`` flag (:class:`HeLoReferenceNet`, the released code's network).
"""

from mpcl.baselines.helo.attention import CrossAttentionBlock, DropKeyAttention, dropkey_mask
from mpcl.baselines.helo.labels import (
    LabelCorrelationAttention,
    LabelEmbedding,
    correlation_alignment_loss,
    embedding_correlation,
    target_correlation,
)
from mpcl.baselines.helo.module import HeLoModule
from mpcl.baselines.helo.net import HeLoNet
from mpcl.baselines.helo.reference import (
    HeLoReferenceNet,
    ReferenceAttention,
    ReferenceEncoderLayer,
    additive_dropkey,
    class_axis_correlation,
)
from mpcl.baselines.helo.tokenizers import LinearTokenizer, build_tokenizers
from mpcl.baselines.helo.transport import (
    HeterogeneityMining,
    gromov_wasserstein_plan,
    ipot,
    thresholded_cosine_cost,
)

__all__ = [
    "CrossAttentionBlock",
    "DropKeyAttention",
    "HeLoModule",
    "HeLoNet",
    "HeLoReferenceNet",
    "HeterogeneityMining",
    "LabelCorrelationAttention",
    "LabelEmbedding",
    "LinearTokenizer",
    "ReferenceAttention",
    "ReferenceEncoderLayer",
    "additive_dropkey",
    "build_tokenizers",
    "class_axis_correlation",
    "correlation_alignment_loss",
    "dropkey_mask",
    "embedding_correlation",
    "gromov_wasserstein_plan",
    "ipot",
    "target_correlation",
    "thresholded_cosine_cost",
]
