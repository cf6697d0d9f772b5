"""Every setting of the raw DMER extraction, with the two presets ``corrected`` and ``reference``.

``reference`` reproduces the data set authors' scripts, quirks included; ``corrected`` (the
default) keeps their pipeline and fixes the quirks. ``docs/dmer-raw.md`` lists the differences.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

Mode = Literal["corrected", "reference"]
IcaLabeler = Literal["mne", "iclabel"]
IcaMethod = Literal["infomax", "picard"]

#: The five EEG bands of the DMER features (Hz, lower edge inclusive).
DEFAULT_BANDS: tuple[tuple[float, float], ...] = ((1, 4), (4, 8), (8, 14), (14, 31), (31, 49))
#: Channels the authors drop before re-referencing (ear references, auxiliary inputs).
DEFAULT_DROP: tuple[str, ...] = ("A1", "A2", "X1", "X2", "X3")


@dataclass(frozen=True)
class ExtractSettings:
    """Settings of one extraction run (every field is a command-line option of ``mpcl-extract``).

    Attributes:
        mode: ``corrected`` (default) or ``reference`` (the authors' quirks, see the docs).
        eeg_rate: Expected EEG sampling rate (Hz); the EDF header must agree.
        gsr_rate: Expected GSR sampling rate (Hz); the CSV time column must agree.
        ppg_rate: Expected PPG sampling rate (Hz); the CSV time column must agree.
        video_fps: Expected frame rate of the face video; the container must agree.
        step: Seconds between feature rows; also the EEG window and the face segment length.
        peripheral_window: GSR/PPG window length in seconds (a whole number of steps).
        bands: The five EEG bands ``(low, high)`` in Hz.
        eeg_nfft: FFT length of the EEG windows in ``corrected`` mode (0: the window length);
            ``reference`` mode always uses 256, as the authors.
        trigger_channel: Name of the EDF marker channel (dropped from the EEG).
        drop_channels: EEG channels dropped before re-referencing.
        reference: Re-reference: a channel name (subtracted and then dropped, as the authors'
            re-reference to the DSI common-mode electrode ``CM``), ``average`` or ``none``.
        highpass: High-pass edge (Hz) of the zero-phase FIR filter.
        lowpass: Low-pass edge (Hz).
        notch: Band-stop edges (Hz), or ``None`` for no band-stop.
        ica: Run extended-infomax ICA and remove eye and muscle components.
        ica_method: ``infomax`` (MNE's extended infomax, as the authors' ``runica``) or
            ``picard`` (the same extended-infomax model solved by python-picard, faster).
        ica_labeler: ``mne`` (MNE's EOG-correlation and muscle-slope detectors, always
            available) or ``iclabel`` (mne-icalabel, as the authors' ICLabel; optional extra).
        ica_threshold: ICLabel probability at or above which a component is removed.
        ica_eog_channels: Frontal channels used as EOG proxies by the ``mne`` labeler.
        ica_seed: Random seed of the ICA.
        ppg_band: PPG band-pass edges (Hz), 3rd-order Butterworth, zero phase.
        face_box: Fixed face crop ``(x, y, width, height)`` in pixels, or ``None`` (whole
            frame, as the authors).
        lbp_radius: Spatial LBP radius (pixels).
        lbp_time_radius: Temporal LBP radius (frames).
        lbp_neighbours: Neighbours per plane (256 bins need 8).
        eeg_channels: Number of EEG channels left after dropping and re-referencing.
        file_patterns: Glob patterns of a participant's input files, keyed by ``eeg``, ``gsr``,
            ``ppg``, ``camera``, ``video``, ``panas``.
    """

    mode: Mode = "corrected"
    eeg_rate: float = 300.0
    gsr_rate: float = 4.0
    ppg_rate: float = 100.0
    video_fps: float = 30.0
    step: float = 1.0
    peripheral_window: float = 5.0
    bands: tuple[tuple[float, float], ...] = DEFAULT_BANDS
    eeg_nfft: int = 0
    trigger_channel: str = "Trigger"
    drop_channels: tuple[str, ...] = DEFAULT_DROP
    reference: str = "CM"
    highpass: float = 1.0
    lowpass: float = 50.0
    notch: tuple[float, float] | None = (49.0, 51.0)
    ica: bool = True
    ica_method: IcaMethod = "infomax"
    ica_labeler: IcaLabeler = "mne"
    ica_threshold: float = 0.9
    ica_eog_channels: tuple[str, ...] = ("Fp1", "Fp2")
    ica_seed: int = 97
    ppg_band: tuple[float, float] = (0.5, 8.0)
    face_box: tuple[int, int, int, int] | None = None
    lbp_radius: int = 1
    lbp_time_radius: int = 4
    lbp_neighbours: int = 8
    eeg_channels: int = 18
    file_patterns: dict[str, str] = field(
        default_factory=lambda: {
            "eeg": "*.edf",
            "gsr": "raw_gsr.csv",
            "ppg": "raw_ppg.csv",
            "camera": "camera.csv",
            "video": "*.mp4",
            "panas": "panas.csv",
        }
    )

    def __post_init__(self) -> None:
        if self.mode not in ("corrected", "reference"):
            raise ValueError(f"mode must be 'corrected' or 'reference', got {self.mode!r}")
        if len(self.bands) != 5 or any(not 0 <= lo < hi for lo, hi in self.bands):
            raise ValueError(
                f"bands must be five (low, high) pairs with 0 <= low < high (the DMER layout has "
                f"18 x 5 EEG columns), got {self.bands}"
            )
        if self.step <= 0 or self.peripheral_window < self.step:
            raise ValueError(
                f"step must be > 0 and peripheral_window >= step, got {self.step}, "
                f"{self.peripheral_window}"
            )
        if (
            abs(self.peripheral_window / self.step - round(self.peripheral_window / self.step))
            > 1e-9
        ):
            raise ValueError(
                f"peripheral_window ({self.peripheral_window} s) must be a whole number of steps "
                f"({self.step} s): each row pairs a peripheral window with the step ending it"
            )
        for name in ("eeg_rate", "gsr_rate", "ppg_rate", "video_fps"):
            rate = getattr(self, name)
            per_step = rate * self.step
            if rate <= 0 or abs(per_step - round(per_step)) > 1e-9:
                raise ValueError(
                    f"{name} ({rate}) times step ({self.step} s) must be a positive whole number "
                    "of samples"
                )
        if self.lbp_neighbours != 8:
            raise ValueError("lbp_neighbours must be 8: the DMER layout has 256 bins per plane")
        if self.ica_method not in ("infomax", "picard"):
            raise ValueError(f"ica_method must be 'infomax' or 'picard', got {self.ica_method!r}")
        if self.ica_labeler not in ("mne", "iclabel"):
            raise ValueError(f"ica_labeler must be 'mne' or 'iclabel', got {self.ica_labeler!r}")
        missing = {"eeg", "gsr", "ppg", "camera", "video", "panas"} - set(self.file_patterns)
        if missing:
            raise ValueError(f"file_patterns lacks {sorted(missing)}")

    @property
    def reference_mode(self) -> bool:
        """Whether the authors' quirks are reproduced."""
        return self.mode == "reference"

    @property
    def windows_dropped(self) -> int:
        """Leading EEG/face rows dropped per clip: ``peripheral_window / step - 1`` (4).

        Row ``t`` then pairs the peripheral window ending at step ``t`` with step ``t``.
        """
        return round(self.peripheral_window / self.step) - 1

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready settings (tuples become lists), as recorded in the provenance file."""
        return json_ready(dataclasses.asdict(self))

    def replace(self, **changes: Any) -> ExtractSettings:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)


def json_ready(value: Any) -> Any:
    """Tuples to lists, recursively, so that settings compare equal after a JSON round trip."""
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    return value
