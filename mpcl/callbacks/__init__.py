"""Lightning callbacks of the framework."""

from mpcl.callbacks.predictions import PredictionWriter
from mpcl.callbacks.results import TestResultsReport

__all__ = ["PredictionWriter", "TestResultsReport"]
