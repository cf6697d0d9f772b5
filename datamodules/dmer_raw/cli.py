"""``mpcl-extract dmer RAW_DIR OUT_DIR [options]``: raw DMER recordings to feature files.

Every option maps to a field of :class:`~datamodules.dmer_raw.settings.ExtractSettings`;
``docs/dmer-raw.md`` explains each. Exit status: 0 when every participant is done or skipped,
1 when one failed (its error is printed; with ``--on-error skip`` the others are finished).
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from collections.abc import Sequence
from pathlib import Path

from datamodules.dmer_raw.settings import DEFAULT_BANDS, ExtractSettings
from datamodules.io import DataFormatError


def _pair(text: str) -> tuple[float, float]:
    low, _, high = text.partition("-") if "," not in text else text.partition(",")
    try:
        return float(low), float(high)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"expected LOW-HIGH or LOW,HIGH, got {text!r}") from error


def _bands(text: str) -> tuple[tuple[float, float], ...]:
    return tuple(_pair(part) for part in text.split(","))


def _notch(text: str) -> tuple[float, float] | None:
    return None if text.lower() == "none" else _pair(text)


def _box(text: str) -> tuple[int, int, int, int] | None:
    if text.lower() == "none":
        return None
    parts = text.split(",")
    if len(parts) != 4:
        raise argparse.ArgumentTypeError(f"expected X,Y,WIDTH,HEIGHT or none, got {text!r}")
    x, y, w, h = (int(p) for p in parts)
    return x, y, w, h


def _pattern(text: str) -> tuple[str, str]:
    kind, sep, glob = text.partition("=")
    if not sep or not glob:
        raise argparse.ArgumentTypeError(f"expected KIND=GLOB, got {text!r}")
    return kind, glob


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (defaults from :class:`ExtractSettings`)."""
    d = ExtractSettings()
    parser = argparse.ArgumentParser(prog="mpcl-extract", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="dataset", required=True)
    p = commands.add_parser(
        "dmer",
        help="raw DMER recordings -> OUT_DIR/<subject>.mat (feas, vids, dis_label)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("raw_dir", type=Path, help="folder of RAW_DIR/<subject id>/ participant folders")
    p.add_argument("out_dir", type=Path, help="output folder of <subject>.mat feature files")
    run = p.add_argument_group("run")
    run.add_argument("--subjects", type=int, nargs="+", help="participant ids (None: every folder)")
    run.add_argument("--workers", type=int, default=1, help="participants at once (processes)")
    run.add_argument(
        "--on-error",
        choices=("stop", "skip"),
        default="stop",
        help="a failing participant stops the run, or is reported and skipped",
    )
    run.add_argument("--overwrite", action="store_true", help="redo participants already extracted")
    run.add_argument("--no-progress", action="store_true", help="no progress bars")
    run.add_argument(
        "--mode",
        choices=("corrected", "reference"),
        default=d.mode,
        help="reference: reproduce the authors' quirks (see docs/dmer-raw.md)",
    )
    rates = p.add_argument_group("sampling rates (checked against the files)")
    rates.add_argument("--eeg-rate", type=float, default=d.eeg_rate, help="EEG Hz")
    rates.add_argument("--gsr-rate", type=float, default=d.gsr_rate, help="GSR Hz")
    rates.add_argument("--ppg-rate", type=float, default=d.ppg_rate, help="PPG Hz")
    rates.add_argument("--video-fps", type=float, default=d.video_fps, help="video frames/s")
    windows = p.add_argument_group("windows")
    windows.add_argument(
        "--step", type=float, default=d.step, help="seconds per row = EEG window = face segment"
    )
    windows.add_argument(
        "--peripheral-window",
        type=float,
        default=d.peripheral_window,
        help="GSR/PPG window (s), a whole number of steps",
    )
    eeg = p.add_argument_group("EEG")
    eeg.add_argument(
        "--bands",
        type=_bands,
        default=d.bands,
        help="five bands LOW-HIGH,... in Hz, e.g. "
        + ",".join(f"{lo:g}-{hi:g}" for lo, hi in DEFAULT_BANDS),
    )
    eeg.add_argument(
        "--eeg-nfft",
        type=int,
        default=d.eeg_nfft,
        help="FFT length in corrected mode (0: the window length)",
    )
    eeg.add_argument("--trigger-channel", default=d.trigger_channel, help="EDF marker channel")
    eeg.add_argument(
        "--drop-channels", nargs="*", default=list(d.drop_channels), help="EEG channels dropped"
    )
    eeg.add_argument(
        "--reference",
        default=d.reference,
        help="a channel name (subtracted, then dropped), average or none",
    )
    eeg.add_argument(
        "--eeg-channels",
        type=int,
        default=d.eeg_channels,
        help="channels expected after dropping and re-referencing",
    )
    eeg.add_argument("--highpass", type=float, default=d.highpass, help="Hz")
    eeg.add_argument("--lowpass", type=float, default=d.lowpass, help="Hz")
    eeg.add_argument("--notch", type=_notch, default=d.notch, help="LOW-HIGH band-stop, or none")
    eeg.add_argument("--no-ica", dest="ica", action="store_false", help="skip ICA cleaning")
    eeg.add_argument(
        "--ica-method",
        choices=("infomax", "picard"),
        default=d.ica_method,
        help="extended-infomax solver",
    )
    eeg.add_argument(
        "--ica-labeler",
        choices=("mne", "iclabel"),
        default=d.ica_labeler,
        help="eye/muscle component finder",
    )
    eeg.add_argument(
        "--ica-threshold", type=float, default=d.ica_threshold, help="ICLabel probability"
    )
    eeg.add_argument(
        "--ica-eog-channels", nargs="+", default=list(d.ica_eog_channels), help="EOG proxies (mne)"
    )
    eeg.add_argument("--ica-seed", type=int, default=d.ica_seed, help="ICA random seed")
    other = p.add_argument_group("peripheral and face")
    other.add_argument("--ppg-band", type=_pair, default=d.ppg_band, help="LOW-HIGH in Hz")
    other.add_argument(
        "--face-box",
        type=_box,
        default=d.face_box,
        help="fixed face crop X,Y,WIDTH,HEIGHT (pixels), or none",
    )
    other.add_argument("--lbp-radius", type=int, default=d.lbp_radius, help="pixels")
    other.add_argument("--lbp-time-radius", type=int, default=d.lbp_time_radius, help="frames")
    other.add_argument(
        "--pattern",
        type=_pattern,
        action="append",
        default=[],
        help="input file glob KIND=GLOB (kinds: eeg, gsr, ppg, camera, video, panas); repeatable",
    )
    return parser


def settings_from_args(args: argparse.Namespace) -> ExtractSettings:
    """The settings an argument namespace describes."""
    patterns = dict(ExtractSettings().file_patterns)
    for kind, glob in args.pattern:
        if kind not in patterns:
            raise ValueError(
                f"--pattern {kind}=...: unknown kind, expected one of {list(patterns)}"
            )
        patterns[kind] = glob
    return ExtractSettings(
        mode=args.mode,
        eeg_rate=args.eeg_rate,
        gsr_rate=args.gsr_rate,
        ppg_rate=args.ppg_rate,
        video_fps=args.video_fps,
        step=args.step,
        peripheral_window=args.peripheral_window,
        bands=tuple(args.bands),
        eeg_nfft=args.eeg_nfft,
        trigger_channel=args.trigger_channel,
        drop_channels=tuple(args.drop_channels),
        reference=args.reference,
        highpass=args.highpass,
        lowpass=args.lowpass,
        notch=args.notch,
        ica=args.ica,
        ica_method=args.ica_method,
        ica_labeler=args.ica_labeler,
        ica_threshold=args.ica_threshold,
        ica_eog_channels=tuple(args.ica_eog_channels),
        ica_seed=args.ica_seed,
        ppg_band=args.ppg_band,
        face_box=args.face_box,
        lbp_radius=args.lbp_radius,
        lbp_time_radius=args.lbp_time_radius,
        eeg_channels=args.eeg_channels,
        file_patterns=patterns,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    from datamodules.dmer_raw.pipeline import run_extraction

    args = build_parser().parse_args(argv)
    missing = [m for m in ("mne", "av", "tqdm") if importlib.util.find_spec(m) is None]
    if missing:
        print(
            f"mpcl-extract: error: missing {missing}; install the raw extra: "
            "pip install -e '.[raw]' (make install does)",
            file=sys.stderr,
        )
        return 1
    try:
        settings = settings_from_args(args)
        summary = run_extraction(
            args.raw_dir,
            args.out_dir,
            settings,
            subjects=args.subjects,
            workers=args.workers,
            on_error=args.on_error,
            overwrite=args.overwrite,
            progress=not args.no_progress,
        )
    except (DataFormatError, ValueError) as error:
        print(f"mpcl-extract: error: {error}", file=sys.stderr)
        return 1
    if summary.failed:
        print(
            f"mpcl-extract: failed participants {summary.failed} (see the report)", file=sys.stderr
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
