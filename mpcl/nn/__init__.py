"""The MPCL network as plain ``torch.nn`` modules, one module per stage.

:class:`MPCLNet` composes them; every stage has an ablation alternative with the same interface.

See docs/model.md, section 'Notation and overview'.
"""

from __future__ import annotations

from mpcl.nn.compression import FlatHead, HierarchicalCompressionHead
from mpcl.nn.distillation import (
    emotion_relations,
    mutual_kl,
    prototype_relation_distillation,
    sample_prototype_relations,
)
from mpcl.nn.fusion import ConcatFusion, FeedForward, MultiScaleAssociativeFusion, TokenNorm
from mpcl.nn.memory import HopfieldRetrieval, pooling_matrix
from mpcl.nn.mpcl_net import MPCLNet
from mpcl.nn.prototypes import NoPrototypes, PrototypeBank, PrototypeOutput
from mpcl.nn.retrieval import (
    BranchGate,
    CooccurrenceRetrieval,
    NoRetrieval,
    RetrievalOutput,
    cooccurrence_loss,
    cooccurrence_target,
    valence_signs,
)
from mpcl.nn.tokenizers import (
    FlatTokenizer,
    GroupedTokenizer,
    ModalityTokenizers,
    StructuredTokenizer,
    default_num_tokens,
)

__all__ = [
    "BranchGate",
    "ConcatFusion",
    "CooccurrenceRetrieval",
    "FeedForward",
    "FlatHead",
    "FlatTokenizer",
    "GroupedTokenizer",
    "HierarchicalCompressionHead",
    "HopfieldRetrieval",
    "MPCLNet",
    "ModalityTokenizers",
    "MultiScaleAssociativeFusion",
    "NoPrototypes",
    "NoRetrieval",
    "PrototypeBank",
    "PrototypeOutput",
    "RetrievalOutput",
    "StructuredTokenizer",
    "TokenNorm",
    "cooccurrence_loss",
    "cooccurrence_target",
    "default_num_tokens",
    "emotion_relations",
    "mutual_kl",
    "pooling_matrix",
    "prototype_relation_distillation",
    "sample_prototype_relations",
    "valence_signs",
]
