"""Readers of one participant's raw DMER files, each checking what it reads.

* EEG: EDF (DSI-Streamer) through MNE-Python; labels such as ``EEG P3-Pz`` become ``P3``.
* Wristband: headerless CSV ``time, value, trigger`` (GSR at 4 Hz, PPG at 100 Hz), as the
  authors' ``csvread`` reads it; a text header row is tolerated.
* Camera events: headerless CSV ``clip, code, time_ms``; clip ``-1`` with code 0 marks the start
  of the video recording.
* Ratings: ``panas.csv`` with a ``clip`` column and the ten PANAS items by name.

Every error names the file, the field and what was expected.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from datamodules.dmer import DMER_EMOTIONS, NUM_CLIPS
from datamodules.dmer_raw.markers import END_OFFSET, START_OFFSET, ClipSpan
from datamodules.io import DataFormatError

#: Relative tolerance on a sampling rate read from a file against the expected one.
RATE_TOLERANCE = 0.02
#: MNE returns EDF signals in SI units; a trigger stored with a unit is scaled back to codes.
_UNIT_SCALE = {"uV": 1e-6, "µV": 1e-6, "mV": 1e-3, "nV": 1e-9, "V": 1.0}


def channel_name(label: str) -> str:
    """The electrode of a DSI-Streamer EDF label: ``EEG P3-Pz`` -> ``P3``, ``Trigger`` kept."""
    name = label.strip()
    if "-" in name:
        name = name.split("-", 1)[0]
    parts = name.split()
    return parts[-1] if parts else label


@dataclass
class EegRecording:
    """The EEG of one participant: ``data`` ``[C, T]`` in volts, channel names and markers."""

    data: np.ndarray
    channels: list[str]
    rate: float
    codes: np.ndarray
    source: str


def read_eeg_edf(path: Path, rate: float, trigger_channel: str) -> EegRecording:
    """Read an EDF file, check its sampling rate and split off the trigger channel.

    Raises:
        DataFormatError: Unreadable file, a rate other than ``rate``, channels with different
            rates, or no trigger channel.
    """
    import mne

    try:
        raw = mne.io.read_raw_edf(path, preload=True, verbose="error")
    except Exception as error:
        raise DataFormatError(
            f"{path}: not a readable EDF file ({type(error).__name__}: {error})"
        ) from error
    sfreq = float(raw.info["sfreq"])
    if abs(sfreq - rate) > RATE_TOLERANCE * rate:
        raise DataFormatError(
            f"{path}: header sampling rate {sfreq:g} Hz, expected {rate:g} Hz (--eeg-rate)"
        )
    names = [channel_name(label) for label in raw.ch_names]
    if trigger_channel not in names:
        raise DataFormatError(
            f"{path}: no trigger channel {trigger_channel!r} among channels {names} "
            "(--trigger-channel)"
        )
    data = raw.get_data()
    trigger_index = names.index(trigger_channel)
    unit = getattr(raw, "_orig_units", {}).get(raw.ch_names[trigger_index], "")
    codes = np.rint(data[trigger_index] / _UNIT_SCALE.get(unit, 1.0)).astype(np.int64)
    keep = [i for i in range(len(names)) if i != trigger_index]
    return EegRecording(
        data=data[keep],
        channels=[names[i] for i in keep],
        rate=sfreq,
        codes=codes,
        source=str(path),
    )


def _numeric_table(path: Path, columns: int, meaning: str) -> np.ndarray:
    try:
        frame = pd.read_csv(path, header=None, skipinitialspace=True)
    except Exception as error:
        raise DataFormatError(
            f"{path}: not a readable CSV file ({type(error).__name__}: {error})"
        ) from error
    if len(frame) and pd.to_numeric(frame.iloc[0], errors="coerce").isna().any():
        frame = frame.iloc[1:]  # a text header row
    if frame.shape[1] < columns or len(frame) == 0:
        raise DataFormatError(
            f"{path}: {frame.shape[1]} columns and {len(frame)} rows, expected rows of "
            f"{columns} numeric columns ({meaning})"
        )
    values = frame.iloc[:, :columns].apply(pd.to_numeric, errors="coerce").to_numpy(np.float64)
    bad = ~np.isfinite(values)
    if bad.any():
        row, column = np.argwhere(bad)[0]
        raise DataFormatError(
            f"{path}: row {row} column {column} is not a number; expected {meaning}"
        )
    return values


@dataclass
class WristbandSignal:
    """One wristband stream: ``values`` ``[T]`` and ``codes`` ``[T]`` (0 = no marker)."""

    values: np.ndarray
    codes: np.ndarray
    source: str


def read_wristband_csv(path: Path, rate: float, option: str) -> WristbandSignal:
    """Read ``time, value, trigger`` rows and check the rate implied by the time column.

    The unit of the time column is not documented: the rate is accepted when it matches
    ``rate`` with times in seconds or in milliseconds.

    Raises:
        DataFormatError: Unreadable file, non-numeric cells, or a time column whose median step
            implies another sampling rate.
    """
    table = _numeric_table(path, 3, "time, value, trigger")
    steps = np.diff(table[:, 0])
    if len(steps):
        step = float(np.median(steps))
        implied = [1.0 / step, 1000.0 / step] if step > 0 else []
        if not any(abs(r - rate) <= RATE_TOLERANCE * rate for r in implied):
            shown = " or ".join(f"{r:g} Hz" for r in implied) or "non-increasing times"
            raise DataFormatError(
                f"{path}: column 0 (time) steps by {step:g} (median), i.e. {shown} with times "
                f"in s or ms; expected {rate:g} Hz ({option})"
            )
    return WristbandSignal(
        values=table[:, 1], codes=np.rint(table[:, 2]).astype(np.int64), source=str(path)
    )


def read_camera_events(path: Path, fps: float) -> dict[int, ClipSpan]:
    """Frame spans of the clips from ``clip, code, time_ms`` rows.

    A clip's first frame is ``int((t_start - t_rec) / 1000 * fps)`` and it has
    ``int((t_end - t_start) / 1000 * fps)`` frames, with ``t_rec`` the time of the row
    ``-1, 0`` (start of the video recording), as in the authors' scripts.

    Raises:
        DataFormatError: No recording-start row, or a clip without start or end event.
    """
    table = _numeric_table(path, 3, "clip, code, time_ms")
    clips = np.rint(table[:, 0]).astype(np.int64)
    codes = np.rint(table[:, 1]).astype(np.int64)
    times = table[:, 2]
    origin = np.flatnonzero((clips == -1) & (codes == 0))
    if len(origin) == 0:
        raise DataFormatError(f"{path}: no recording-start event (a row with clip -1 and code 0)")
    t0 = times[origin[0]]
    spans: dict[int, ClipSpan] = {}
    for clip in range(NUM_CLIPS):
        start = np.flatnonzero((clips == clip) & (codes == clip + START_OFFSET))
        end = np.flatnonzero((clips == clip) & (codes == clip + END_OFFSET))
        if len(start) == 0 or len(end) == 0:
            which = "start" if len(start) == 0 else "end"
            raise DataFormatError(
                f"{path}: clip {clip} has no {which} event (expected a row '{clip}, "
                f"{clip + (START_OFFSET if which == 'start' else END_OFFSET)}, time_ms')"
            )
        t_start, t_end = times[start[0]], times[end[0]]
        first = int((t_start - t0) / 1000.0 * fps)
        count = int((t_end - t_start) / 1000.0 * fps)
        if first < 0 or count <= 0:
            raise DataFormatError(
                f"{path}: clip {clip} events at {t_start:g} -> {t_end:g} ms (recording start "
                f"{t0:g} ms) give frames {first}..{first + count}; expected start >= recording "
                "start and end > start"
            )
        spans[clip] = ClipSpan(first, first + count)
    return spans


def read_panas(path: Path, items: Sequence[str] = DMER_EMOTIONS) -> np.ndarray:
    """The ``32 x 10`` PANAS ratings (clips x items, in ``DMER_EMOTIONS`` order).

    Raises:
        DataFormatError: Missing columns or clips, duplicate clips, ratings outside 1-5.
    """
    try:
        frame = pd.read_csv(path)
    except Exception as error:
        raise DataFormatError(
            f"{path}: not a readable CSV file ({type(error).__name__}: {error})"
        ) from error
    columns = {str(c).strip().lower(): c for c in frame.columns}
    needed = ["clip", *(item.lower() for item in items)]
    missing = [c for c in needed if c not in columns]
    if missing:
        raise DataFormatError(
            f"{path}: missing column(s) {missing}; expected 'clip' and the PANAS items "
            f"{list(items)}"
        )
    clips = pd.to_numeric(frame[columns["clip"]], errors="coerce").to_numpy()
    values = (
        frame[[columns[item.lower()] for item in items]]
        .apply(pd.to_numeric, errors="coerce")
        .to_numpy(np.float64)
    )
    if np.isnan(clips).any() or sorted(clips.tolist()) != list(range(NUM_CLIPS)):
        raise DataFormatError(
            f"{path}: column 'clip' holds {sorted(clips.tolist())[:40]}; expected each clip "
            f"0-{NUM_CLIPS - 1} exactly once"
        )
    bad = ~np.isfinite(values) | (values < 1) | (values > 5)
    if bad.any():
        row, column = np.argwhere(bad)[0]
        raise DataFormatError(
            f"{path}: column {items[column]!r} row {row} is {values[row, column]}; expected a "
            "rating 1-5"
        )
    ratings = np.empty_like(values)
    ratings[clips.astype(np.int64)] = values
    return ratings
