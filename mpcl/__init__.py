"""MPCL: Memory-guided Prototypical Co-occurrence Learning for mixed emotion recognition.

A PyTorch Lightning framework for emotion distribution learning from multimodal physiological
and behavioral signals: datamodules for DMER and WESAD (in the sibling package ``datamodules``),
the MPCL model and baselines, the six label-distribution metrics, and a LightningCLI.
"""

__version__ = "0.1.0"
