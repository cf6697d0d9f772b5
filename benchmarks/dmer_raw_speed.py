"""Speed of the raw DMER extraction, per stage, in seconds per participant-hour of recording.

Generates one participant at the real sampling rates (EEG 300 Hz x 25 channels, GSR 4 Hz,
PPG 100 Hz) with a camera-like 640 x 480 H.264 video at 30 fps, extracts it once per ICA setting
and writes a table (Markdown and JSON). Seconds per stage are wall-clock; ``cpu_s`` is the
process CPU time of the whole extraction (on a shared machine wall time includes waiting).

    .venv/bin/python -m benchmarks.dmer_raw_speed --clip-seconds 6 --out runs/dmer-raw-speed
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

from datamodules.dmer_raw.participant import STAGES
from datamodules.dmer_raw.pipeline import run_extraction
from datamodules.dmer_raw.settings import ExtractSettings
from datamodules.dmer_raw.synthetic_raw import RawSession, write_raw_participant

VARIANTS = {
    "no ICA": {"ica": False},
    "ICA picard": {"ica": True, "ica_method": "picard"},
    "ICA infomax": {"ica": True, "ica_method": "infomax"},
}


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    """Generate, extract, and print/write the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clip-seconds", type=int, default=6)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--out", type=Path, default=Path("runs/dmer-raw-speed"))
    args = parser.parse_args()

    raw = args.out / "raw"
    if not (raw / "1" / "panas.csv").is_file():
        start = time.perf_counter()
        session = RawSession(
            clip_seconds=args.clip_seconds,
            size=(args.width, args.height),
            pink=10.0,
            blinks=True,
            lossless=False,
        )
        write_raw_participant(raw / "1", session)
        print(f"generated {raw / '1'} in {time.perf_counter() - start:.0f} s")
    rows = {}
    for name in args.variants:
        settings = ExtractSettings(**VARIANTS[name])
        out = args.out / name.replace(" ", "-")
        cpu = _cpu_seconds()
        start = time.perf_counter()
        summary = run_extraction(raw, out, settings, overwrite=True, progress=False)
        wall = time.perf_counter() - start
        result = summary.results[1]
        hours = result["recording_seconds"] / 3600
        rows[name] = {
            "recording_s": result["recording_seconds"],
            "stage_s": result["stage_seconds"],
            "per_hour_s": {k: v / hours for k, v in result["stage_seconds"].items()},
            "cpu_per_hour_by_stage_s": {
                k: v / hours for k, v in result["stage_cpu_seconds"].items()
            },
            "total_per_hour_s": wall / hours,
            "cpu_per_hour_s": (_cpu_seconds() - cpu) / hours,
        }
    # Each cell: wall-clock seconds / CPU seconds of the process (all threads).
    header = "| variant | " + " | ".join(STAGES) + " | total |"
    lines = [header, "|" + "---|" * (len(STAGES) + 2)]
    for name, row in rows.items():
        wall, cpu = row["per_hour_s"], row["cpu_per_hour_by_stage_s"]
        cells = [f"{wall.get(s, 0.0):.0f} / {cpu.get(s, 0.0):.0f}" for s in STAGES]
        total = f"{row['total_per_hour_s']:.0f} / {row['cpu_per_hour_s']:.0f}"
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {total} |")
    recording = next(iter(rows.values()))["recording_s"]
    table = (
        f"Seconds per participant-hour of recording ({recording:.0f}-s recording, "
        f"{args.width} x {args.height} video), wall / CPU:\n\n" + "\n".join(lines)
    )
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "speed.md").write_text(table + "\n", encoding="utf-8")
    (args.out / "speed.json").write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
