"""Many subjects at once: every subject's model of a subject-dependent protocol in one process.

Subject-dependent protocols train one model per subject (73 on DMER). This package trains all of
them together: parameters stacked along a model axis and run with ``torch.func.vmap``
(:mod:`~mpcl.multisubject.stacking`), per-subject batches identical to a one-model run's
(:mod:`~mpcl.multisubject.data`), per-model Adam steps (:mod:`~mpcl.multisubject.optim`),
per-subject validation and best-epoch choice (:mod:`~mpcl.multisubject.trainer`) and per-subject
checkpoints and results in the protocol runner's layout (:mod:`~mpcl.multisubject.outputs`).
See ``docs/many-subjects.md``.
"""

from mpcl.multisubject.data import StackedRows, SubjectSplit, build_subject_splits
from mpcl.multisubject.optim import LearningRateOracle, StackedAdam
from mpcl.multisubject.run import ManySubjectsRun
from mpcl.multisubject.stacking import StackedModels
from mpcl.multisubject.trainer import FitSettings, ManySubjectsTrainer

__all__ = [
    "FitSettings",
    "LearningRateOracle",
    "ManySubjectsRun",
    "ManySubjectsTrainer",
    "StackedAdam",
    "StackedModels",
    "StackedRows",
    "SubjectSplit",
    "build_subject_splits",
]
