"""Constants shared by the raw DMER extraction tests (imported by their conftest)."""

from datamodules.dmer_raw.settings import ExtractSettings

#: Two participants, 7-s clips (3 rows each after the 5-s window), ICA off for speed.
SUBJECTS = (1, 2)
CLIP_SECONDS = 7
FAST = ExtractSettings(ica=False)
