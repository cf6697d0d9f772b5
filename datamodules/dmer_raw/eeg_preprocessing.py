"""EEG preprocessing with MNE-Python, in the order of the authors' ``PreprocessEEG.m``.

1. drop the ear references, auxiliary inputs and the trigger channel;
2. re-reference (to the DSI common-mode electrode ``CM``, then drop it, as the authors'
   ``pop_reref(EEG, 9)``; or to the average);
3. zero-phase FIR filters (Hamming-windowed sinc; MNE's automatic transition bands, which
   follow EEGLAB's ``pop_eegfiltnew`` rule, for the 1 Hz high-pass and the 50 Hz low-pass;
   the 49-51 Hz band-stop is MNE's notch filter at 50 Hz, 2 Hz wide, 1-Hz transitions);
4. baseline removal: each channel's mean over the whole recording;
5. optionally, extended-infomax ICA; eye and muscle components are removed, found either by
   ICLabel (mne-icalabel; probability >= threshold, as the authors' ``pop_icflag``) or by MNE's
   detectors (correlation with frontal channels as EOG proxies; muscle spectral slope).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from datamodules.dmer_raw.readers import EegRecording
from datamodules.dmer_raw.settings import ExtractSettings
from datamodules.io import DataFormatError


@dataclass
class PreprocessedEeg:
    """Cleaned EEG ``[C, T]`` in volts, its channels, and what ICA removed."""

    data: np.ndarray
    channels: list[str]
    ica: dict[str, Any] = field(default_factory=dict)


def preprocess_eeg(recording: EegRecording, settings: ExtractSettings) -> PreprocessedEeg:
    """Run steps 1-5 on one recording (see the module docstring).

    Raises:
        DataFormatError: A missing reference channel, a channel count other than
            ``settings.eeg_channels`` after dropping, or filter edges above Nyquist.
    """
    import mne

    source = recording.source
    info = mne.create_info(recording.channels, recording.rate, "eeg")
    raw = mne.io.RawArray(recording.data, info, verbose="error")
    raw.drop_channels([c for c in settings.drop_channels if c in raw.ch_names])
    if settings.reference == "average":
        raw.set_eeg_reference("average", projection=False, verbose="error")
    elif settings.reference != "none":
        if settings.reference not in raw.ch_names:
            raise DataFormatError(
                f"{source}: no reference channel {settings.reference!r} among {raw.ch_names} "
                "(--reference: a channel name, 'average' or 'none')"
            )
        raw.set_eeg_reference([settings.reference], projection=False, verbose="error")
        raw.drop_channels([settings.reference])
    if len(raw.ch_names) != settings.eeg_channels:
        raise DataFormatError(
            f"{source}: {len(raw.ch_names)} EEG channels {raw.ch_names} after dropping "
            f"{list(settings.drop_channels)} and re-referencing; expected "
            f"{settings.eeg_channels} (--drop-channels, --reference)"
        )
    nyquist = recording.rate / 2
    edges = [settings.highpass, settings.lowpass, *(settings.notch or ())]
    if max(edges) >= nyquist:
        raise DataFormatError(
            f"{source}: filter edges {edges} Hz reach the Nyquist frequency {nyquist:g} Hz"
        )
    fir = {"method": "fir", "phase": "zero", "fir_window": "hamming", "fir_design": "firwin"}
    raw.filter(settings.highpass, None, verbose="error", **fir)
    raw.filter(None, settings.lowpass, verbose="error", **fir)
    if settings.notch is not None:
        low, high = settings.notch
        # A 2-Hz stop band is narrower than MNE's automatic transition bands for a plain
        # band-stop, so MNE's notch filter (1-Hz transitions) is used instead.
        raw.notch_filter(
            (low + high) / 2,
            notch_widths=high - low,
            trans_bandwidth=1.0,
            verbose="error",
            **fir,
        )
    raw.apply_function(lambda x: x - x.mean(), channel_wise=True)
    report: dict[str, Any] = {"enabled": settings.ica}
    if settings.ica:
        report = _ica_clean(raw, settings)
    return PreprocessedEeg(data=raw.get_data(), channels=list(raw.ch_names), ica=report)


def _ica_clean(raw: Any, settings: ExtractSettings) -> dict[str, Any]:
    import mne

    ica = mne.preprocessing.ICA(
        n_components=None,
        method=settings.ica_method,
        # Picard's extended=True, ortho=False solves the same extended-infomax model, faster.
        fit_params={
            "extended": True,
            **({"ortho": False} if settings.ica_method == "picard" else {}),
        },
        max_iter="auto",
        **_seed_argument(mne.preprocessing.ICA, settings.ica_seed),
    )
    ica.fit(raw, verbose="error")
    if settings.ica_labeler == "iclabel":
        eye, muscle = _iclabel(raw, ica, settings.ica_threshold)
    else:
        proxies = [c for c in settings.ica_eog_channels if c in raw.ch_names]
        eye = sorted(ica.find_bads_eog(raw, ch_name=proxies, verbose="error")[0]) if proxies else []
        _set_montage(raw)
        muscle = sorted(ica.find_bads_muscle(raw, verbose="error")[0])
    exclude = sorted({int(i) for i in [*eye, *muscle]})
    if len(exclude) == ica.n_components_:
        raise DataFormatError(
            f"ICA flagged all {len(exclude)} components as eye or muscle artefacts (eye "
            f"{sorted(eye)}, muscle {sorted(muscle)}); removing them would leave no EEG. "
            "Check the recording, or use --no-ica or another --ica-labeler"
        )
    ica.apply(raw, exclude=exclude, verbose="error")
    return {
        "enabled": True,
        "method": settings.ica_method,
        "labeler": settings.ica_labeler,
        "components": int(ica.n_components_),
        "eye": [int(i) for i in eye],
        "muscle": [int(i) for i in muscle],
        "removed": exclude,
    }


def _iclabel(raw: Any, ica: Any, threshold: float) -> tuple[list[int], list[int]]:
    try:
        from mne_icalabel import label_components
    except ImportError as error:
        raise DataFormatError(
            "--ica-labeler iclabel needs the optional package mne-icalabel "
            "(pip install mne-icalabel), or use --ica-labeler mne"
        ) from error
    _set_montage(raw)
    result = label_components(raw, ica, method="iclabel")
    labels, probability = result["labels"], np.asarray(result["y_pred_proba"])
    eye = [
        i
        for i, (k, p) in enumerate(zip(labels, probability, strict=True))
        if k == "eye blink" and p >= threshold
    ]
    muscle = [
        i
        for i, (k, p) in enumerate(zip(labels, probability, strict=True))
        if k == "muscle artifact" and p >= threshold
    ]
    return eye, muscle


def _set_montage(raw: Any) -> None:
    """10-20 positions (needed by the muscle detector and ICLabel); unknown names are left."""
    import mne

    # MNE 1.13 renamed the template; older versions only know the old name.
    name = (
        "colin27_1020" if "colin27_1020" in mne.channels.get_builtin_montages() else "standard_1020"
    )
    montage = mne.channels.make_standard_montage(name)
    raw.set_montage(montage, match_case=False, on_missing="ignore", verbose="error")


def _seed_argument(ica_class: Any, seed: int) -> dict[str, int]:
    """``rng=seed`` on MNE versions that take it (recent), ``random_state=seed`` before."""
    import inspect

    name = "rng" if "rng" in inspect.signature(ica_class).parameters else "random_state"
    return {name: seed}
