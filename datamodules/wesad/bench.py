"""Time WESAD feature extraction per subject-hour of signal; print a Markdown table.

``python -m datamodules.wesad.bench`` writes one fake subject of about ``--hours`` of recording
(true sampling rates, the fixture generator's signals) to a temporary folder, then times reading
the pickle with the safe unpickler, placing the windows and extracting every modality's features.
Each stage is run ``--repeats`` times and the fastest run is reported (the minimum is the least
disturbed by other processes on a shared machine). Per subject-hour figures divide by the
recording's length: the filters and event detectors run over the whole recording, the window
statistics over the windows of the study conditions.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from datamodules.wesad.fake_signals import (
    DURATION_FACTOR,
    GAP_SECONDS,
    LEAD_SECONDS,
    ORDER,
    READING_SECONDS,
)
from datamodules.wesad.features import FEATURE_NAMES, extract_modality, impute_missing
from datamodules.wesad.features import signal_lengths as feature_signal_lengths
from datamodules.wesad.fixtures import write_fake_subject
from datamodules.wesad.layout import pickle_path
from datamodules.wesad.safe_pickle import load_recording
from datamodules.wesad.windows import find_segments, place_windows


def _best_of(repeats: int, run: Callable[[], Any]) -> tuple[float, Any]:
    """The shortest wall-clock time of ``repeats`` calls of ``run``, and the last result."""
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = run()
        best = min(best, time.perf_counter() - start)
    return best, result


def seconds_per_condition(hours: float) -> float:
    """Seconds per study condition that make a fake subject about ``hours`` long."""
    fixed = LEAD_SECONDS + 2 * READING_SECONDS + len(ORDER) * GAP_SECONDS
    return max(10.0, (hours * 3600 - fixed) / sum(DURATION_FACTOR.values()))


def benchmark(
    hours: float = 1.0, window_seconds: float = 5.0, hop_seconds: float = 1.0, repeats: int = 3
) -> dict[str, Any]:
    """Generate a subject of about ``hours`` and time each stage of the pipeline.

    Args:
        hours: Length of the generated recording.
        window_seconds: Window length.
        hop_seconds: Step between windows.
        repeats: Runs per stage; the fastest is kept.

    Returns:
        ``hours`` (recorded), ``windows`` (count), ``stages`` (stage -> best seconds: ``load``,
        ``windows``, ``features``, the sum of the modalities plus imputation) and ``modalities``
        (modality -> best seconds).
    """
    with tempfile.TemporaryDirectory() as root:
        write_fake_subject(root, "S2", seconds_per_condition(hours), seed=0)
        load, recording = _best_of(repeats, lambda: load_recording(pickle_path(root, "S2")))
    place, windows = _best_of(
        repeats,
        lambda: place_windows(
            find_segments(recording.label),
            window_seconds,
            hop_seconds,
            feature_signal_lengths(recording),
        ),
    )
    _, segment = np.unique(windows.segment_start, return_inverse=True)

    def modality(name: str) -> np.ndarray:
        return impute_missing(extract_modality(recording, windows, name), segment)

    modalities = {
        name: _best_of(repeats, lambda name=name: modality(name))[0] for name in FEATURE_NAMES
    }
    return {
        "hours": recording.duration / 3600,
        "windows": len(windows),
        "stages": {"load": load, "windows": place, "features": sum(modalities.values())},
        "modalities": modalities,
    }


def markdown(result: dict[str, Any], command: str) -> str:
    """Two Markdown tables of a :func:`benchmark` result: stages, then modalities."""
    hours = result["hours"]
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs"
    lines = [
        f"`{command}`: one generated subject, {hours:.2f} h recorded, {result['windows']} "
        f"windows; best of the repeats, one process ({machine}).",
        "",
        "| stage | seconds | seconds per subject-hour |",
        "|---|---|---|",
    ]
    labels = {
        "load": "read the pickle (safe unpickler, page cache)",
        "windows": "place the windows",
        "features": "extract all features",
    }
    for stage, seconds in result["stages"].items():
        lines.append(f"| {labels[stage]} | {seconds:.3f} | {seconds / hours:.3f} |")
    lines += ["", "| modality | seconds per subject-hour |", "|---|---|"]
    for name, seconds in sorted(result["modalities"].items(), key=lambda item: -item[1]):
        lines.append(f"| `{name}` | {seconds / hours:.3f} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    """Run :func:`benchmark` and print its Markdown tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=1.0, help="recording length (default 1)")
    parser.add_argument("--window-seconds", type=float, default=5.0)
    parser.add_argument("--hop-seconds", type=float, default=1.0)
    parser.add_argument("--repeats", type=int, default=3, help="runs per stage; fastest kept")
    args = parser.parse_args(argv)
    if args.hours <= 0 or args.repeats < 1:
        parser.error("--hours must be positive and --repeats at least 1")
    result = benchmark(args.hours, args.window_seconds, args.hop_seconds, args.repeats)
    command = "python -m datamodules.wesad.bench " + " ".join(
        f"--{k.replace('_', '-')} {v:g}" for k, v in vars(args).items()
    )
    print(markdown(result, command))


if __name__ == "__main__":
    main()
