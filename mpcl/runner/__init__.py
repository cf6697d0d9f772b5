"""The protocol runner: a configuration over every fold, resumable, aggregated into tables."""

from mpcl.runner.aggregate import comparison_table, per_fold_means, read_folds, summarize
from mpcl.runner.run import ProtocolRun

__all__ = ["ProtocolRun", "comparison_table", "per_fold_means", "read_folds", "summarize"]
