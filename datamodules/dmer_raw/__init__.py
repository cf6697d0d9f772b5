"""Raw DMER recordings (EEG, GSR, PPG, face video, PANAS) to the DMER feature files.

Needs the ``raw`` extra (``pip install .[raw]``: MNE-Python, edfio, PyAV). One module per
stage: :mod:`.readers` and :mod:`.markers` (files and trigger codes), :mod:`.video`,
:mod:`.eeg_preprocessing`, :mod:`.eeg_features`, :mod:`.peripheral_features`,
:mod:`.lbp_top`, :mod:`.alignment`, :mod:`.participant` (one participant), :mod:`.pipeline`
(many, resumable, parallel) and :mod:`.cli` (``mpcl-extract dmer``). See ``docs/dmer-raw.md``.
"""

from datamodules.dmer_raw.settings import ExtractSettings

__all__ = ["ExtractSettings"]
