"""LightningModules: the shared base and every model (select one with ``model.class_path``)."""

from mpcl.models.base import EmotionDistributionModule
from mpcl.models.mlp import MLPModule
from mpcl.models.mpcl import MPCLModule

__all__ = ["EmotionDistributionModule", "MLPModule", "MPCLModule"]
