"""Load WESAD's ``SX.pkl`` files without letting them run code, then check their structure.

A pickle is a program: ``pickle.load`` calls whatever global the file names, so a tampered
download could run arbitrary code. :class:`WESADUnpickler` resolves only the globals that
pickles of numpy arrays reference. Dicts, lists, strings and numbers are pickle opcodes and need
no global. Checked with ``pickletools`` on pickles of the same structure:

* Python 2 / numpy 1 (the released files): ``numpy.core.multiarray._reconstruct``,
  ``numpy.ndarray``, ``numpy.dtype`` (raw array bytes are ``BINSTRING`` opcodes, which
  ``encoding="latin1"`` turns into ``str`` and numpy turns back into bytes);
* the same structure re-saved from Python 3: ``numpy._core.multiarray._reconstruct`` (numpy 2)
  and ``_codecs.encode`` (how protocols 0-2 store ``bytes``), or with protocols 4-5
  ``numpy._core.numeric._frombuffer``;
* numpy scalars: ``numpy.core.multiarray.scalar``.

Any other global raises :class:`UnsafePickleError` before it is looked up.
"""

from __future__ import annotations

import codecs
import pickle
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from datamodules.io import DataFormatError
from datamodules.wesad.layout import (
    CHEST_CHANNELS,
    LABEL_RATE,
    WRIST_CHANNELS,
    WRIST_RATES,
)

_multiarray = np._core.multiarray if hasattr(np, "_core") else np.core.multiarray
_numeric = np._core.numeric if hasattr(np, "_core") else np.core.numeric

_ALLOWED: dict[tuple[str, str], Any] = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): codecs.encode,
}
for _package in ("numpy.core", "numpy._core"):
    _ALLOWED[(f"{_package}.multiarray", "_reconstruct")] = _multiarray._reconstruct
    _ALLOWED[(f"{_package}.multiarray", "scalar")] = _multiarray.scalar
    _ALLOWED[(f"{_package}.numeric", "_frombuffer")] = _numeric._frombuffer

SYNC_TOLERANCE_SECONDS = 2.0
"""Largest accepted difference between a wrist signal's duration and the chest duration,
beyond one percent of the recording (the E4 and RespiBAN streams are cut to the same span)."""

_NUMERIC_KINDS = "biuf"


class WESADFormatError(DataFormatError):
    """A WESAD file is missing or does not have the documented structure."""


class UnsafePickleError(WESADFormatError, pickle.UnpicklingError):
    """A pickle named a global that WESAD files never contain."""


class WESADUnpickler(pickle.Unpickler):
    """An unpickler that resolves only the numpy globals of WESAD's pickles.

    Args:
        file: The open binary file.
        path: The file's path, named in errors.
    """

    def __init__(self, file: Any, path: str | Path) -> None:
        super().__init__(file, encoding="latin1")
        self.path = str(path)

    def find_class(self, module: str, name: str) -> Any:
        """Return an allowed global; refuse every other one.

        Raises:
            UnsafePickleError: For any global outside the numpy array reconstruction set.
        """
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"{self.path}: refused to load global '{module}.{name}'; WESAD pickles contain "
                "only numpy arrays in dicts (the file may have been tampered with)"
            ) from None


def safe_load(path: str | Path) -> Any:
    """Unpickle ``path`` with :class:`WESADUnpickler`.

    Raises:
        UnsafePickleError: If the file names a global outside the allowed set.
        WESADFormatError: If the file does not exist or is not a readable pickle.
    """
    path = Path(path)
    if not path.is_file():
        raise WESADFormatError(f"{path}: file not found")
    with path.open("rb") as file:
        try:
            return WESADUnpickler(file, path).load()
        except UnsafePickleError:
            raise
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as error:
            raise WESADFormatError(f"{path}: not a readable WESAD pickle ({error})") from error


@dataclass(frozen=True)
class WESADRecording:
    """One subject's signals, as stored in ``SX.pkl``, checked and in float64.

    Attributes:
        subject: The subject name stored in the file (``"S2"``).
        chest: Chest signals keyed as in the file (``ACC`` ``[N, 3]``, others ``[N, 1]``), 700 Hz.
        wrist: Wrist signals keyed as in the file, at the rates of :data:`WRIST_RATES`.
        label: Int64 ``[N]`` condition code per 700 Hz sample.
    """

    subject: str
    chest: Mapping[str, np.ndarray]
    wrist: Mapping[str, np.ndarray]
    label: np.ndarray

    @property
    def duration(self) -> float:
        """Length of the chest recording in seconds."""
        return len(self.label) / LABEL_RATE


def _field(container: Any, key: str, parent: str, path: Path) -> Any:
    """``container[key]``; ``parent`` names the container in errors ("" for the top level)."""
    if not isinstance(container, Mapping):
        raise WESADFormatError(
            f"{path}: field {parent or 'top level'} is {type(container).__name__}, expected dict"
        )
    if key not in container:
        found = sorted(map(str, container))
        field = f"{parent}[{key!r}]" if parent else repr(key)
        raise WESADFormatError(f"{path}: missing field {field} (found keys {found})")
    return container[key]


def _signal(value: Any, channels: int, where: str, path: Path) -> np.ndarray:
    if not isinstance(value, np.ndarray) or value.dtype.kind not in _NUMERIC_KINDS:
        kind = value.dtype if isinstance(value, np.ndarray) else type(value).__name__
        raise WESADFormatError(f"{path}: field '{where}' is {kind}, expected a numeric array")
    array = value.reshape(-1, 1) if value.ndim == 1 else value
    if array.ndim != 2 or array.shape[1] != channels:
        raise WESADFormatError(
            f"{path}: field '{where}' has shape {value.shape}, expected (N, {channels})"
        )
    array = np.asarray(array, dtype=np.float64)
    if not np.isfinite(array).all():
        raise WESADFormatError(f"{path}: field '{where}' contains NaN or infinite samples")
    return array


#: Condition codes of WESAD's ``label`` array (readme: 0 transient, 1-4 study conditions,
#: 5-7 ignored).
LABEL_CODES = range(0, 8)


def _label_codes(label: np.ndarray, path: Path) -> np.ndarray:
    """``label`` as int64 codes; NaN, fractional or unknown codes are refused, not truncated."""
    if label.dtype.kind == "f":
        bad = ~np.isfinite(label) | (label != np.round(label))
        if bad.any():
            index = int(np.flatnonzero(bad)[0])
            raise WESADFormatError(
                f"{path}: field 'label' holds {int(bad.sum())} non-integer codes (first "
                f"{label[index].item()!r} at sample {index}); expected integer condition codes 0-7"
            )
    outside = (label < LABEL_CODES.start) | (label >= LABEL_CODES.stop)
    if outside.any():
        index = int(np.flatnonzero(outside)[0])
        raise WESADFormatError(
            f"{path}: field 'label' holds {int(outside.sum())} codes outside 0-7 (first "
            f"{label[index].item()!r} at sample {index}); expected WESAD condition codes"
        )
    return np.asarray(label, dtype=np.int64)


def validate_recording(data: Any, path: str | Path) -> WESADRecording:
    """Check an unpickled ``SX.pkl`` against the documented layout.

    Checks the keys ``subject``, ``signal``, ``label``; the chest signals
    (:data:`CHEST_CHANNELS`) all as long as ``label``; the wrist signals
    (:data:`WRIST_CHANNELS`) as long as the chest recording at their own rate, within
    ``max(SYNC_TOLERANCE_SECONDS, 1 %)`` of its duration.

    Raises:
        WESADFormatError: Naming the file and the field that is missing or malformed.
    """
    path = Path(path)
    subject = _field(data, "subject", "", path)
    signal = _field(data, "signal", "", path)
    label = _field(data, "label", "", path)
    if not isinstance(label, np.ndarray) or label.dtype.kind not in _NUMERIC_KINDS:
        raise WESADFormatError(f"{path}: field 'label' is not a numeric array")
    label = label.reshape(-1) if label.ndim == 2 and 1 in label.shape else label
    if label.ndim != 1:
        raise WESADFormatError(f"{path}: field 'label' has shape {label.shape}, expected (N,)")
    label = _label_codes(label, path)
    n = len(label)
    chest_raw = _field(signal, "chest", "signal", path)
    wrist_raw = _field(signal, "wrist", "signal", path)
    chest = {}
    for key, channels in CHEST_CHANNELS.items():
        where = f"signal['chest'][{key!r}]"
        chest[key] = _signal(_field(chest_raw, key, "signal['chest']", path), channels, where, path)
        if len(chest[key]) != n:
            raise WESADFormatError(
                f"{path}: field {where} has {len(chest[key])} samples, expected {n} (the length "
                f"of 'label'; both are sampled at {LABEL_RATE} Hz)"
            )
    duration = n / LABEL_RATE
    tolerance = max(SYNC_TOLERANCE_SECONDS, 0.01 * duration)
    wrist = {}
    for key, channels in WRIST_CHANNELS.items():
        where = f"signal['wrist'][{key!r}]"
        wrist[key] = _signal(_field(wrist_raw, key, "signal['wrist']", path), channels, where, path)
        seconds = len(wrist[key]) / WRIST_RATES[key]
        if abs(seconds - duration) > tolerance:
            raise WESADFormatError(
                f"{path}: field {where} has {len(wrist[key])} samples = {seconds:.1f} s at "
                f"{WRIST_RATES[key]} Hz, expected about {duration:.1f} s like the chest signals"
            )
    return WESADRecording(
        subject=str(subject),
        chest=chest,
        wrist=wrist,
        label=np.asarray(label, dtype=np.int64),
    )


def load_recording(path: str | Path) -> WESADRecording:
    """Safely unpickle and validate one ``SX.pkl``."""
    return validate_recording(safe_load(path), path)
