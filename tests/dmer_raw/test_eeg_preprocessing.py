"""EEG preprocessing: channel drops, re-reference, filters, baseline, ICA blink removal."""

from __future__ import annotations

import numpy as np
import pytest

from datamodules.dmer_raw.eeg_preprocessing import preprocess_eeg
from datamodules.dmer_raw.readers import EegRecording
from datamodules.dmer_raw.settings import ExtractSettings
from datamodules.dmer_raw.synthetic_raw import EXTRA, SCALP, blink_train, pink_noise
from datamodules.io import DataFormatError

RATE = 300.0


def _recording(scalp, common=None, seconds=None):
    n = scalp.shape[1]
    rng = np.random.default_rng(5)
    cm = np.zeros(n) if common is None else common
    extra = np.concatenate([cm[None], rng.standard_normal((5, n))])
    # every scalp channel is recorded against the common-mode electrode's potential
    data = np.concatenate([scalp + cm, extra]) * 1e-6
    return EegRecording(data, [*SCALP, *EXTRA], RATE, np.zeros(n, np.int64), "rec.edf")


def _amplitude(x, frequency):
    t = np.arange(x.shape[-1]) / RATE
    return 2 * np.abs(np.mean(x * np.exp(-2j * np.pi * frequency * t), axis=-1))


def test_reference_filters_and_baseline():
    t = np.arange(int(RATE * 60)) / RATE
    rng = np.random.default_rng(0)
    # per channel: 10 Hz (kept), 50 Hz line noise and 0.2 Hz drift (removed), a DC offset
    scalp = (
        20 * np.sin(2 * np.pi * 10 * t)
        + 30 * np.sin(2 * np.pi * 50 * t)
        + 40 * np.sin(2 * np.pi * 0.2 * t)
        + 100
        + rng.standard_normal((18, t.size))
    )
    common = 500 * np.sin(2 * np.pi * 7 * t)  # in every channel through the reference
    out = preprocess_eeg(_recording(scalp, common), ExtractSettings(ica=False))
    assert out.channels == list(SCALP)
    x = out.data[:, 600:-600] * 1e6  # away from the filter edges
    assert _amplitude(x, 10.0).min() > 19.0
    assert _amplitude(x, 7.0).max() < 0.5  # the re-reference removed the common signal
    assert _amplitude(x, 50.0).max() < 0.5
    # 0.2 Hz lies in the 0-1 Hz transition band of the 1 Hz high-pass: attenuated > 10x
    assert _amplitude(x, 0.2).max() < 4.0
    assert np.abs(out.data.mean(axis=1)).max() * 1e6 < 0.5


def test_channel_errors():
    scalp = np.random.default_rng(0).standard_normal((18, 3000))
    with pytest.raises(DataFormatError, match=r"rec\.edf: no reference channel 'REF'"):
        preprocess_eeg(_recording(scalp), ExtractSettings(ica=False, reference="REF"))
    with pytest.raises(DataFormatError, match=r"19 EEG channels .* expected 18"):
        preprocess_eeg(_recording(scalp), ExtractSettings(ica=False, reference="average"))


def _blinky(seconds):
    rng = np.random.default_rng(0)
    n = int(RATE * seconds)
    sources = np.stack([pink_noise(rng, n) for _ in SCALP])
    scalp = 10 * (rng.normal(size=(18, 18)) / np.sqrt(18)) @ sources
    gain = np.array(
        [1.0 if c.startswith("Fp") else 0.3 if c.startswith("F") else 0.05 for c in SCALP]
    )
    blinks = 150 * gain[:, None] * blink_train(rng, n, RATE)
    return scalp, blinks


def _blink_removal(method):
    scalp, blinks = _blinky(90)
    out = preprocess_eeg(_recording(scalp + blinks), ExtractSettings(ica_method=method))
    assert out.ica["enabled"] and out.ica["eye"]
    assert set(out.ica["eye"]) <= set(out.ica["removed"])
    fp1 = SCALP.index("Fp1")
    cleaned = out.data[fp1] * 1e6
    # correlation with the blink train drops from ~1 to near 0 at Fp1
    before = np.corrcoef(scalp[fp1] + blinks[fp1], blinks[fp1])[0, 1]
    after = np.corrcoef(cleaned, blinks[fp1])[0, 1]
    assert before > 0.9 and abs(after) < 0.3


def test_ica_picard_removes_the_blink_component():
    _blink_removal("picard")


@pytest.mark.slow  # extended infomax in MNE: ~20-60 s for 90 s of 18-channel EEG on 2 cores
def test_ica_infomax_removes_the_blink_component():
    _blink_removal("infomax")


def test_ica_removing_everything_is_an_error():
    # white noise: MNE's muscle detector flags every flat-spectrum component
    scalp = np.random.default_rng(1).standard_normal((18, int(RATE * 30)))
    with pytest.raises(DataFormatError, match="ICA flagged all 18 components"):
        preprocess_eeg(_recording(scalp), ExtractSettings(ica_method="picard"))


def test_iclabel_labeler_removes_the_blink_component():
    pytest.importorskip("mne_icalabel", reason="optional: pip install mne-icalabel")
    scalp, blinks = _blinky(90)
    settings = ExtractSettings(ica_method="picard", ica_labeler="iclabel")
    out = preprocess_eeg(_recording(scalp + blinks), settings)
    assert out.ica["labeler"] == "iclabel" and out.ica["eye"]
    fp1 = SCALP.index("Fp1")
    assert abs(np.corrcoef(out.data[fp1], blinks[fp1])[0, 1]) < 0.3
