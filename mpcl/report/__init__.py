"""Reports of runs: figures, data files, a self-contained HTML page and paper tables.

``mpcl report PATH [PATH ...]`` (see :mod:`mpcl.report.cli`); the figures come from
:mod:`mpcl.report.plots`, their numbers from :mod:`mpcl.report.data`.
"""

from mpcl.report.build import build_report

__all__ = ["build_report"]
