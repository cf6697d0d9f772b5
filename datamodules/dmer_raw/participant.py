"""One participant, raw files to the DMER feature rows: read, preprocess, align, featurise.

Stages (each reported to ``progress`` and timed): ``read``, ``eeg-preprocess``, ``align``,
``eeg-features``, ``peripheral``, ``face`` (reported per clip).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from datamodules.dmer import NUM_CLIPS, NUM_FEATURES
from datamodules.dmer_raw.alignment import align_clip
from datamodules.dmer_raw.eeg_features import differential_entropy
from datamodules.dmer_raw.eeg_preprocessing import preprocess_eeg
from datamodules.dmer_raw.lbp_top import lbp_top
from datamodules.dmer_raw.markers import ClipSpan, clip_spans
from datamodules.dmer_raw.peripheral_features import gsr_features, ppg_features
from datamodules.dmer_raw.readers import (
    read_camera_events,
    read_eeg_edf,
    read_panas,
    read_wristband_csv,
)
from datamodules.dmer_raw.settings import ExtractSettings
from datamodules.dmer_raw.video import gray_frames, probe_video
from datamodules.io import DataFormatError

#: Stage names, in order; ``write`` is done by the pipeline.
STAGES = ("read", "eeg-preprocess", "align", "eeg-features", "peripheral", "face", "write")
#: Microvolts per volt: the features are computed on EEG in microvolts, as EEGLAB stores it.
MICROVOLTS = 1e6

Progress = Callable[[str, int], None]


def _no_progress(stage: str, amount: int) -> None:
    del stage, amount


def participant_files(folder: Path, settings: ExtractSettings) -> dict[str, Path]:
    """The input file of each kind in a participant's folder (``settings.file_patterns``).

    Where several videos match, one named ``*_new.mp4`` is preferred (the authors' re-encoded
    copy).

    Raises:
        DataFormatError: A kind with no file, or with several where one is expected.
    """
    files = {}
    for kind, pattern in settings.file_patterns.items():
        matches = sorted(p for p in folder.glob(pattern) if p.is_file())
        if kind == "video" and len(matches) > 1:
            preferred = [p for p in matches if p.name.endswith("_new.mp4")]
            matches = preferred or matches
        if not matches:
            raise DataFormatError(
                f"{folder}: no {kind} file matching {pattern!r} (--pattern {kind}=GLOB)"
            )
        if len(matches) > 1:
            raise DataFormatError(
                f"{folder}: {len(matches)} {kind} files match {pattern!r} "
                f"({[p.name for p in matches]}); expected one (--pattern {kind}=GLOB)"
            )
        files[kind] = matches[0]
    return files


def file_digest(path: Path) -> str:
    """SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class ParticipantFeatures:
    """The DMER layout of one participant plus what the provenance file records."""

    feas: np.ndarray
    vids: np.ndarray
    dis_label: np.ndarray
    details: dict[str, Any] = field(default_factory=dict)


def extract_participant(
    subject: int,
    files: dict[str, Path],
    settings: ExtractSettings,
    progress: Progress = _no_progress,
) -> ParticipantFeatures:
    """Raw files of one participant -> ``feas`` (N x 913), ``vids`` (N x 1), ``dis_label``.

    Raises:
        DataFormatError: Any bad input (the message names the file and what was expected).
    """
    seconds: dict[str, float] = {}
    cpu_seconds: dict[str, float] = {}
    clock, cpu_clock = time.perf_counter(), time.process_time()
    reference = settings.reference_mode

    def finish(stage: str, report: bool = True) -> None:
        # Wall time, and the process's CPU time (all its threads): on a shared machine the
        # wall time also counts waiting for a core.
        nonlocal clock, cpu_clock
        now, cpu_now = time.perf_counter(), time.process_time()
        seconds[stage] = now - clock
        cpu_seconds[stage] = cpu_now - cpu_clock
        clock, cpu_clock = now, cpu_now
        if report:
            progress(stage, 1)

    eeg = read_eeg_edf(files["eeg"], settings.eeg_rate, settings.trigger_channel)
    gsr = read_wristband_csv(files["gsr"], settings.gsr_rate, "--gsr-rate")
    ppg = read_wristband_csv(files["ppg"], settings.ppg_rate, "--ppg-rate")
    spans = {
        "eeg": clip_spans(eeg.codes, f"{eeg.source} channel {settings.trigger_channel!r}"),
        "gsr": clip_spans(gsr.codes, f"{gsr.source} column 2 (trigger)"),
        "ppg": clip_spans(ppg.codes, f"{ppg.source} column 2 (trigger)"),
        "video": read_camera_events(files["camera"], settings.video_fps),
    }
    frames = probe_video(files["video"], settings.video_fps)
    ratings = read_panas(files["panas"])
    finish("read")

    clean = preprocess_eeg(eeg, settings)
    finish("eeg-preprocess")

    rates = {
        "eeg": settings.eeg_rate,
        "gsr": settings.gsr_rate,
        "ppg": settings.ppg_rate,
        "video": settings.video_fps,
    }
    window_steps = settings.windows_dropped + 1
    aligned: dict[int, dict[str, ClipSpan]] = {}
    steps: dict[int, int] = {}
    for clip in range(NUM_CLIPS):
        video = spans["video"][clip]
        # The authors cut clips out of the video with OpenCV, which stops at the last frame.
        video = ClipSpan(video.start, min(video.end, frames))
        clip_streams = {k: spans[k][clip] for k in ("eeg", "gsr", "ppg")} | {"video": video}
        steps[clip], aligned[clip] = align_clip(
            clip_streams, rates, settings.step, window_steps, f"subject {subject} clip {clip}"
        )
    finish("align")

    microvolts = clean.data * MICROVOLTS
    eeg_rows = {}
    for clip in range(NUM_CLIPS):
        span = aligned[clip]["eeg"]
        eeg_rows[clip] = differential_entropy(
            microvolts[:, span.start : span.end],
            settings.eeg_rate,
            settings.step,
            settings.bands,
            nfft=settings.eeg_nfft,
            reference=reference,
        )
    finish("eeg-features")

    peripheral = {}
    for clip in range(NUM_CLIPS):
        g, p = aligned[clip]["gsr"], aligned[clip]["ppg"]
        peripheral[clip] = np.column_stack(
            [
                gsr_features(
                    gsr.values[g.start : g.end],
                    settings.gsr_rate,
                    settings.peripheral_window,
                    settings.step,
                    reference,
                ),
                ppg_features(
                    ppg.values[p.start : p.end],
                    settings.ppg_rate,
                    settings.peripheral_window,
                    settings.step,
                    settings.ppg_band,
                    reference,
                ),
            ]
        )
    finish("peripheral")

    face_rows = _face_features(files["video"], aligned, settings, progress)
    finish("face", report=False)  # reported clip by clip

    drop = settings.windows_dropped
    blocks, vids = [], []
    for clip in range(NUM_CLIPS):
        rows = np.column_stack([eeg_rows[clip][drop:], peripheral[clip], face_rows[clip][drop:]])
        if rows.shape[1] != NUM_FEATURES:
            raise DataFormatError(
                f"subject {subject} clip {clip}: {rows.shape[1]} feature columns, expected "
                f"{NUM_FEATURES} (check --eeg-channels and the bands)"
            )
        blocks.append(rows)
        vids.append(np.full(len(rows), clip, dtype=np.int64))
    recording_s = eeg.data.shape[1] / settings.eeg_rate
    return ParticipantFeatures(
        feas=np.concatenate(blocks),
        vids=np.concatenate(vids)[:, None],
        dis_label=ratings,
        details={
            "eeg_channels": clean.channels,
            "ica": clean.ica,
            "clip_seconds": {str(c): steps[c] * settings.step for c in range(NUM_CLIPS)},
            "recording_seconds": recording_s,
            "stage_seconds": seconds,
            "stage_cpu_seconds": cpu_seconds,
        },
    )


def _face_features(
    video: Path,
    aligned: dict[int, dict[str, ClipSpan]],
    settings: ExtractSettings,
    progress: Progress,
) -> dict[int, np.ndarray]:
    """LBP-TOP rows of every clip: one per ``step``-long segment of its aligned frames."""
    per_segment = round(settings.video_fps * settings.step)
    ranges = [(aligned[c]["video"].start, aligned[c]["video"].end) for c in range(NUM_CLIPS)]
    rows: dict[int, list[np.ndarray]] = {c: [] for c in range(NUM_CLIPS)}
    buffer: list[np.ndarray] = []
    for clip, frame in gray_frames(video, ranges, settings.reference_mode, settings.face_box):
        buffer.append(frame)
        if len(buffer) == per_segment:
            rows[clip].append(
                lbp_top(
                    np.stack(buffer),
                    settings.lbp_radius,
                    settings.lbp_time_radius,
                    settings.lbp_neighbours,
                    settings.reference_mode,
                )
            )
            buffer = []
            if len(rows[clip]) * per_segment == ranges[clip][1] - ranges[clip][0]:
                progress("face", 1)
    return {c: np.stack(rows[c]) for c in range(NUM_CLIPS)}
