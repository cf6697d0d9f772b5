"""Small raw DMER-like recordings with known content, for the tests and the speed benchmark.

One participant folder holds what :func:`~datamodules.dmer_raw.participant.participant_files`
expects: ``eeg.edf`` (DSI-style labels ``EEG Fp1-Pz``, the common-mode ``CM``, ears, auxiliary
inputs and ``Trigger``), ``raw_gsr.csv`` and ``raw_ppg.csv`` (``time_ms, value, trigger``),
``camera.csv`` (``clip, code, time_ms``), ``face.mp4`` (lossless RGB H.264, so decoded frames
equal the written ones) and ``panas.csv``.

The session: a resting block (codes 60/150), a practice clip (50/140), then the 32 clips in a
shuffled order, 1 s apart. Each stream covers a clip a little longer than ``clip_seconds``
(EEG +0.3 s, PPG +0.15 s, video +0.5 s, GSR exactly), so alignment keeps ``clip_seconds``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from datamodules.dmer import DMER_EMOTIONS, NUM_CLIPS

#: The 18 scalp channels of the DMER features, in the order the synthetic EDF stores them.
SCALP = (
    "Fp1", "Fp2", "F7", "F3", "Fz", "F4", "F8", "T3", "C3",
    "Cz", "C4", "T4", "T5", "P3", "P4", "T6", "O1", "O2",
)  # fmt: skip
EXTRA = ("CM", "A1", "A2", "X1", "X2", "X3")
#: Extra seconds each stream records per clip beyond ``clip_seconds``.
STREAM_EXTRA = {"eeg": 0.3, "gsr": 0.0, "ppg": 0.15, "video": 0.5}


@dataclass
class RawSession:
    """What to generate for one participant.

    Attributes:
        clip_seconds: Seconds of every clip (int) or one value per clip.
        eeg_rate: EEG sampling rate written in the EDF header.
        gsr_rate: GSR rate of the CSV time column.
        ppg_rate: PPG rate.
        fps: Video frame rate.
        size: Video ``(width, height)``.
        band_noise: Scalp channel -> ``(low, high, variance in uV^2)`` of band-limited Gaussian
            noise added to it.
        background: Standard deviation (uV) of the white noise on every scalp channel.
        pink: Standard deviation (uV) of 1/f noise sources mixed into the scalp channels
            (EEG-like spectra; 0 for none).
        blinks: Add eye blinks (0.3-s bumps, 150 uV at Fp1/Fp2, weaker further back) every
            3-5 s: a strongly non-Gaussian source for the ICA.
        lossless: Lossless RGB H.264 of noise frames (decoded frames equal
            :func:`video_frame`), or, when false, ordinary H.264 (yuv420p, CRF 23) of smooth
            moving frames, as a camera writes (for speed measurements at full size).
        seed: Random seed.
    """

    clip_seconds: int | list[int] = 7
    eeg_rate: float = 300.0
    gsr_rate: float = 4.0
    ppg_rate: float = 100.0
    fps: float = 30.0
    size: tuple[int, int] = (24, 16)
    band_noise: dict[str, tuple[float, float, float]] = field(
        default_factory=lambda: {"O1": (8.0, 14.0, 25.0)}
    )
    background: float = 0.5
    pink: float = 0.0
    blinks: bool = False
    lossless: bool = True
    seed: int = 0


def band_limited_noise(
    rng: np.random.Generator, n: int, rate: float, low: float, high: float, variance: float
) -> np.ndarray:
    """Gaussian noise whose spectrum is zero outside ``[low, high)`` Hz, of exact variance."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1.0 / rate)
    spectrum[(freqs < low) | (freqs >= high)] = 0
    x = np.fft.irfft(spectrum, n)
    return x * np.sqrt(variance / x.var())


def pink_noise(rng: np.random.Generator, n: int) -> np.ndarray:
    """Unit-variance Gaussian noise with a 1/f^1.6 power spectrum (EEG-like)."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    spectrum[1:] /= np.arange(1, len(spectrum)) ** 0.8
    spectrum[0] = 0
    x = np.fft.irfft(spectrum, n)
    return x / x.std()


def blink_train(rng: np.random.Generator, n: int, rate: float) -> np.ndarray:
    """Unit-height blinks (Hann bumps of 0.3 s) every 3-5 s."""
    x = np.zeros(n)
    bump = np.hanning(round(0.3 * rate))
    t = rng.uniform(1.0, 3.0)
    while (start := round(t * rate)) + len(bump) < n:
        x[start : start + len(bump)] += bump
        t += rng.uniform(3.0, 5.0)
    return x


def session_timeline(session: RawSession) -> list[tuple[int, float, dict[str, float]]]:
    """``(code, start second, per-stream duration)`` of every marked block, in order."""
    rng = np.random.default_rng(session.seed)
    lengths = (
        [session.clip_seconds] * NUM_CLIPS
        if isinstance(session.clip_seconds, int)
        else list(session.clip_seconds)
    )
    blocks = [(60, 3.0), (50, 3.0)]
    blocks += [(c + 10, float(lengths[c])) for c in rng.permutation(NUM_CLIPS).tolist()]
    out, t = [], 2.0
    for code, seconds in blocks:
        durations = {
            k: seconds + (extra if code < 50 else 0.0) for k, extra in STREAM_EXTRA.items()
        }
        out.append((code, t, durations))
        t += seconds + 1.0 + max(STREAM_EXTRA.values())
    return out


def write_raw_participant(folder: Path, session: RawSession | None = None) -> RawSession:
    """Write one participant's raw files into ``folder`` (created); returns the session."""
    import av
    import edfio

    session = session or RawSession()
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(session.seed + 1)
    timeline = session_timeline(session)
    total = float(np.ceil(timeline[-1][1] + timeline[-1][2]["eeg"] + 3.0))

    # EEG: background noise, band-limited components, CM at zero so re-referencing keeps them.
    n = round(total * session.eeg_rate)
    mixed = np.zeros((len(SCALP), n))
    if session.pink > 0:
        sources = np.stack([pink_noise(rng, n) for _ in SCALP])
        mixing = rng.normal(size=(len(SCALP), len(SCALP))) / np.sqrt(len(SCALP))
        mixed += session.pink * (mixing @ sources)
    if session.blinks:
        # Blink amplitude falls off from the frontal poles towards the back of the head.
        gain = np.array([1.0 if c.startswith("Fp") else 0.3 if c.startswith("F") else 0.05
                         for c in SCALP])  # fmt: skip
        mixed += 150.0 * gain[:, None] * blink_train(rng, n, session.eeg_rate)
    signals = []
    for index, name in enumerate(SCALP):
        x = session.background * rng.standard_normal(n) + mixed[index]
        if name in session.band_noise:
            low, high, variance = session.band_noise[name]
            x += band_limited_noise(rng, n, session.eeg_rate, low, high, variance)
        signals.append((f"EEG {name}-Pz", x))
    signals += [(f"EEG {name}-Pz", np.zeros(n) if name == "CM" else rng.standard_normal(n))
                for name in EXTRA]  # fmt: skip
    trigger = np.zeros(n)
    for code, start, durations in timeline:
        trigger[round(start * session.eeg_rate)] = code
        trigger[round((start + durations["eeg"]) * session.eeg_rate)] = code + 90
    edf_signals = [
        edfio.EdfSignal(x, session.eeg_rate, label=label, physical_dimension="uV",
                        physical_range=(-500.0, 500.0))
        for label, x in signals
    ]  # fmt: skip
    edf_signals.append(
        edfio.EdfSignal(trigger, session.eeg_rate, label="Trigger",
                        physical_range=(-32768.0, 32767.0))
    )  # fmt: skip
    edfio.Edf(edf_signals, data_record_duration=1.0).write(folder / "eeg.edf")

    # Wristband: the band starts 0.5 s before the EEG; markers at its own samples.
    for kind, rate in (("gsr", session.gsr_rate), ("ppg", session.ppg_rate)):
        count = round((total + 0.5) * rate)
        t = np.arange(count) / rate
        if kind == "gsr":
            values = 5.0 + 0.5 * np.sin(2 * np.pi * 0.05 * t) + 0.05 * rng.standard_normal(count)
        else:
            values = np.sin(2 * np.pi * 1.2 * t) + 0.1 * rng.standard_normal(count)
        codes = np.zeros(count)
        for code, start, durations in timeline:
            codes[round((start + 0.5) * rate)] = code
            codes[round((start + 0.5 + durations[kind]) * rate)] = code + 90
        table = np.column_stack([1000.0 * t + 1.7e12, values, codes])
        np.savetxt(folder / f"raw_{kind}.csv", table, delimiter=",", fmt=["%.3f", "%.6f", "%d"])

    # Camera: the video starts 1 s after the EEG; event times in ms on another clock.
    origin_ms = 1.7e12 + 12345.0
    video_start = 1.0
    rows = [(-1, 0, origin_ms)]
    for code, start, durations in timeline:
        if 10 <= code < 10 + NUM_CLIPS:
            clip = code - 10
            begin = origin_ms + (start - video_start) * 1000.0
            rows += [(clip, code, begin), (clip, code + 90, begin + durations["video"] * 1000.0)]
    with open(folder / "camera.csv", "w", encoding="utf-8") as handle:
        handle.writelines(f"{c},{k},{t:.1f}\n" for c, k, t in rows)

    width, height = session.size
    frames = round((total - video_start) * session.fps)
    with av.open(str(folder / "face.mp4"), "w") as container:
        codec = "libx264rgb" if session.lossless else "libx264"
        stream = container.add_stream(codec, rate=round(session.fps))
        stream.width, stream.height = width, height
        stream.pix_fmt = "rgb24" if session.lossless else "yuv420p"
        stream.options = {"qp": "0", "preset": "ultrafast"} if session.lossless else {"crf": "23"}
        for index in range(frames):
            image = (video_frame if session.lossless else smooth_frame)(
                session.seed, index, width, height
            )
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)

    ratings = rng.integers(1, 6, size=(NUM_CLIPS, len(DMER_EMOTIONS)))
    header = "clip," + ",".join(DMER_EMOTIONS)
    lines = [f"{c}," + ",".join(str(v) for v in ratings[c]) for c in range(NUM_CLIPS)]
    (folder / "panas.csv").write_text("\n".join([header, *lines]) + "\n", encoding="utf-8")
    return session


def video_frame(seed: int, index: int, width: int, height: int) -> np.ndarray:
    """The RGB frame ``index`` of the synthetic video: noise, reproducible per frame."""
    levels = np.random.default_rng([seed, index]).integers(0, 8, (height, width, 3), np.uint8)
    return levels * np.uint8(36)


def smooth_frame(seed: int, index: int, width: int, height: int) -> np.ndarray:
    """A camera-like RGB frame: a drifting shaded blob on a gradient, with mild noise."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    cx = width * (0.5 + 0.1 * np.sin(index / 40.0))
    cy = height * (0.5 + 0.05 * np.cos(index / 55.0))
    blob = np.exp(-(((x - cx) / (0.2 * width)) ** 2 + ((y - cy) / (0.3 * height)) ** 2))
    gray = 60 + 40 * x / width + 120 * blob
    noise = np.random.default_rng([seed, index]).normal(0, 2, (height, width))
    value = np.clip(gray + noise, 0, 255).astype(np.uint8)
    return np.stack([value, (value * 0.9).astype(np.uint8), (value * 0.8).astype(np.uint8)], -1)
