"""Lightning callbacks of the framework."""

from mpcl.callbacks.results import TestResultsReport

__all__ = ["TestResultsReport"]
