"""LightningModules: the shared base and every model (select one with ``model.class_path``)."""

from mpcl.models.base import EmotionDistributionModule
from mpcl.models.mlp import MLPModule

__all__ = ["EmotionDistributionModule", "MLPModule"]
