"""Time WESAD feature extraction per hour of recording on a generated subject.

``python -m datamodules.wesad.bench --hours 1`` writes a fake subject of about that length
(true sampling rates, default 5-s windows with a 1-s hop) to a temporary folder and reports the
seconds spent reading the pickle, placing windows and extracting the features.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Sequence

from datamodules.wesad.fake_signals import (
    DURATION_FACTOR,
    GAP_SECONDS,
    LEAD_SECONDS,
    ORDER,
    READING_SECONDS,
)
from datamodules.wesad.features import extract_features, signal_lengths
from datamodules.wesad.fixtures import write_fake_subject
from datamodules.wesad.layout import pickle_path
from datamodules.wesad.safe_pickle import load_recording
from datamodules.wesad.windows import find_segments, place_windows


def benchmark(
    hours: float = 1.0, window_seconds: float = 5.0, hop_seconds: float = 1.0
) -> dict[str, float]:
    """Generate a subject of about ``hours`` and time each stage of the pipeline.

    Returns:
        Seconds per stage (``load``, ``windows``, ``features``), the recording length in hours,
        the number of windows and ``features_per_hour`` (extraction seconds per recorded hour).
    """
    fixed = LEAD_SECONDS + 2 * READING_SECONDS + len(ORDER) * GAP_SECONDS
    per_condition = max(10.0, (hours * 3600 - fixed) / sum(DURATION_FACTOR.values()))
    with tempfile.TemporaryDirectory() as root:
        write_fake_subject(root, "S2", seconds_per_condition=per_condition, seed=0)
        t0 = time.perf_counter()
        recording = load_recording(pickle_path(root, "S2"))
        t1 = time.perf_counter()
        windows = place_windows(
            find_segments(recording.label), window_seconds, hop_seconds, signal_lengths(recording)
        )
        t2 = time.perf_counter()
        extract_features(recording, windows)
        t3 = time.perf_counter()
    recorded = recording.duration / 3600
    return {
        "hours": recorded,
        "windows": float(len(windows)),
        "load": t1 - t0,
        "windows_s": t2 - t1,
        "features": t3 - t2,
        "features_per_hour": (t3 - t2) / recorded,
    }


def main(argv: Sequence[str] | None = None) -> None:
    """Print the timings of :func:`benchmark`."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--hours", type=float, default=1.0)
    parser.add_argument("--window-seconds", type=float, default=5.0)
    parser.add_argument("--hop-seconds", type=float, default=1.0)
    args = parser.parse_args(argv)
    result = benchmark(args.hours, args.window_seconds, args.hop_seconds)
    print(
        f"{result['hours']:.2f} h recorded, {result['windows']:.0f} windows: load "
        f"{result['load']:.2f} s, windows {result['windows_s']:.3f} s, features "
        f"{result['features']:.2f} s ({result['features_per_hour']:.2f} s per recorded hour)"
    )


if __name__ == "__main__":
    main()
