"""Baselines run through the same datamodules, protocols and metrics as MPCL."""

from mpcl.baselines.cross_attention import CrossAttentionFusionModule
from mpcl.baselines.fitted import ClosedFormModule
from mpcl.baselines.helo import HeLoModule
from mpcl.baselines.knn import AAKNNModule
from mpcl.baselines.late_fusion import LateFusionModule
from mpcl.baselines.sa_bfgs import SABFGSModule
from mpcl.baselines.trivial import SubjectMeanModule, TrainMeanModule, UniformModule

__all__ = [
    "AAKNNModule",
    "ClosedFormModule",
    "CrossAttentionFusionModule",
    "HeLoModule",
    "LateFusionModule",
    "SABFGSModule",
    "SubjectMeanModule",
    "TrainMeanModule",
    "UniformModule",
]
