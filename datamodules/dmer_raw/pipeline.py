"""Extraction over participants: resumable, atomic, in parallel processes, with a report.

``OUT_DIR/<subject>.mat`` is the participant's finished mark. It is written last, through a
temporary file renamed into place, after ``OUT_DIR/<subject>.provenance.json`` (settings,
library versions, input file hashes, channels, ICA, clip lengths, seconds per stage). A rerun
skips a participant whose ``.mat`` and provenance exist with the same settings, refuses one
extracted with other settings unless ``overwrite``, and redoes anything unfinished.
"""

from __future__ import annotations

import json
import multiprocessing
import platform
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

import numpy as np
import scipy.io

from datamodules.dmer import NUM_CLIPS
from datamodules.dmer_raw.participant import (
    STAGES,
    extract_participant,
    file_digest,
    participant_files,
)
from datamodules.dmer_raw.settings import ExtractSettings
from datamodules.io import DataFormatError, atomic_write, atomic_write_text

PROVENANCE_SUFFIX = ".provenance.json"
REPORT = "extract-report.json"
_LIBRARIES = ("mpcl", "numpy", "scipy", "mne", "av", "pandas", "mne-icalabel")


def library_versions() -> dict[str, str | None]:
    """Python and the installed version of each library the extraction uses."""
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in _LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def find_participants(raw_dir: Path, subjects: Sequence[int] | None = None) -> dict[int, Path]:
    """Participant id -> folder: every ``RAW_DIR/<integer id>/`` (or the requested ids).

    Raises:
        DataFormatError: No such folder, no participant folder, or a requested id missing.
    """
    if not raw_dir.is_dir():
        raise DataFormatError(f"{raw_dir}: raw DMER folder not found")
    found = {int(p.name): p for p in raw_dir.iterdir() if p.is_dir() and p.name.isdigit()}
    if subjects is not None:
        missing = sorted(set(subjects) - set(found))
        if missing:
            raise DataFormatError(
                f"{raw_dir}: no participant folder(s) {missing}; expected RAW_DIR/<id>/"
            )
        found = {s: found[s] for s in subjects}
    if not found:
        raise DataFormatError(f"{raw_dir}: no participant folders (RAW_DIR/<integer id>/)")
    return dict(sorted(found.items()))


def output_paths(out_dir: Path, subject: int) -> tuple[Path, Path]:
    """``(<subject>.mat, <subject>.provenance.json)`` in ``out_dir``."""
    return out_dir / f"{subject}.mat", out_dir / f"{subject}{PROVENANCE_SUFFIX}"


def is_finished(out_dir: Path, subject: int, settings: ExtractSettings) -> bool:
    """Whether the subject's output exists with these settings.

    Raises:
        DataFormatError: It exists with other settings (pass ``overwrite`` to redo it).
    """
    mat, provenance = output_paths(out_dir, subject)
    if not (mat.is_file() and provenance.is_file()):
        return False
    try:
        recorded = json.loads(provenance.read_text(encoding="utf-8"))["settings"]
    except (OSError, ValueError, KeyError):
        return False
    if recorded != settings.to_dict():
        changed = sorted(k for k in settings.to_dict() if recorded.get(k) != settings.to_dict()[k])
        raise DataFormatError(
            f"{mat}: already extracted with other settings (differing: {changed}); pass "
            "--overwrite to redo it or choose another OUT_DIR"
        )
    return True


def _queue_progress(queue: Any, subject: int) -> Callable[[str, int], None]:
    def report(stage: str, amount: int) -> None:
        queue.put((subject, stage, amount))

    return report


def process_participant(
    subject: int,
    folder: Path,
    out_dir: Path,
    settings: ExtractSettings,
    queue: Any = None,
) -> dict[str, Any]:
    """Extract one participant and write its files atomically (provenance, then ``.mat``).

    Returns:
        ``{"subject", "status": "done", "rows", "stage_seconds", "recording_seconds"}``.
    """
    progress = _queue_progress(queue, subject) if queue is not None else (lambda s, a: None)
    files = participant_files(folder, settings)
    result = extract_participant(subject, files, settings, progress)
    start, cpu_start = time.perf_counter(), time.process_time()
    mat, provenance = output_paths(out_dir, subject)
    record = {
        "subject": subject,
        "settings": settings.to_dict(),
        "versions": library_versions(),
        "inputs": {
            kind: {"path": str(path), "bytes": path.stat().st_size, "sha256": file_digest(path)}
            for kind, path in files.items()
        },
        "rows": len(result.feas),
        **result.details,
    }
    stage_seconds = record["stage_seconds"]
    atomic_write_text(provenance, json.dumps(record, indent=2) + "\n")

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as handle:
            scipy.io.savemat(
                handle,
                {
                    "feas": result.feas,
                    "vids": result.vids.astype(np.float64),
                    "dis_label": result.dis_label,
                },
                do_compression=True,
            )

    atomic_write(mat, write)
    stage_seconds["write"] = time.perf_counter() - start
    record["stage_cpu_seconds"]["write"] = time.process_time() - cpu_start
    progress("write", 1)
    return {
        "subject": subject,
        "status": "done",
        "rows": len(result.feas),
        "stage_seconds": stage_seconds,
        "stage_cpu_seconds": record["stage_cpu_seconds"],
        "recording_seconds": result.details["recording_seconds"],
    }


@dataclass
class ExtractionSummary:
    """Per-participant outcome of a run: ``done``, ``skipped`` (finished before) or ``failed``."""

    results: dict[int, dict[str, Any]]

    @property
    def failed(self) -> list[int]:
        """Ids of the participants that failed."""
        return [s for s, r in self.results.items() if r["status"] == "failed"]


class _Bars:
    """One tqdm bar per stage (participants; clips for ``face``), or nothing."""

    def __init__(self, count: int, enabled: bool) -> None:
        self.bars: dict[str, Any] = {}
        if not enabled or count == 0:
            return
        from tqdm import tqdm

        for position, stage in enumerate(STAGES):
            total = count * NUM_CLIPS if stage == "face" else count
            unit = "clip" if stage == "face" else "participant"
            self.bars[stage] = tqdm(
                total=total, desc=f"{stage:>14}", unit=unit, position=position, leave=True
            )

    def update(self, stage: str, amount: int) -> None:
        if stage in self.bars:
            self.bars[stage].update(amount)

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()


def run_extraction(
    raw_dir: Path,
    out_dir: Path,
    settings: ExtractSettings,
    subjects: Sequence[int] | None = None,
    workers: int = 1,
    on_error: Literal["stop", "skip"] = "stop",
    overwrite: bool = False,
    progress: bool = True,
    log: Callable[[str], None] = lambda message: print(message, file=sys.stderr),
) -> ExtractionSummary:
    """Extract every participant of ``raw_dir`` into ``out_dir``.

    Args:
        raw_dir: ``RAW_DIR/<subject id>/`` folders (see ``docs/dmer-raw.md``).
        out_dir: Where ``<subject>.mat``, the provenance files and ``extract-report.json`` go.
        settings: Extraction settings.
        subjects: Participant ids (default: every folder).
        workers: Participants extracted at once, in separate processes.
        on_error: ``stop``: the first failing participant stops the run (the error is
            raised after the report is written); ``skip``: it is reported and the run goes on.
        overwrite: Redo participants already extracted (with any settings).
        progress: Show a progress bar per stage.
        log: Where one line per participant goes.

    Raises:
        DataFormatError: On the first failure with ``on_error="stop"``.
    """
    folders = find_participants(raw_dir, subjects)
    out_dir.mkdir(parents=True, exist_ok=True)
    results: dict[int, dict[str, Any]] = {}
    todo = []
    for subject, folder in folders.items():
        if not overwrite and is_finished(out_dir, subject, settings):
            results[subject] = {"subject": subject, "status": "skipped"}
            log(f"subject {subject}: already extracted, skipped")
        else:
            todo.append((subject, folder))
    bars = _Bars(len(todo), progress)
    first_error: BaseException | None = None

    def record(subject: int, outcome: dict[str, Any] | BaseException) -> None:
        nonlocal first_error
        if isinstance(outcome, BaseException):
            results[subject] = {
                "subject": subject,
                "status": "failed",
                "error": f"{type(outcome).__name__}: {outcome}",
            }
            log(f"subject {subject}: FAILED: {type(outcome).__name__}: {outcome}")
            if not isinstance(outcome, DataFormatError):
                log("".join(traceback.format_exception(outcome)))
            first_error = first_error or outcome
        else:
            results[subject] = outcome
            log(f"subject {subject}: {outcome['rows']} rows")

    try:
        if workers <= 1:
            for subject, folder in todo:
                if first_error is not None and on_error == "stop":
                    break
                try:
                    outcome: dict[str, Any] | BaseException = process_participant(
                        subject, folder, out_dir, settings, _LocalQueue(bars)
                    )
                except Exception as error:
                    outcome = error
                record(subject, outcome)
        else:
            _run_parallel(todo, out_dir, settings, workers, on_error, bars, record)
    finally:
        bars.close()
    summary = ExtractionSummary(dict(sorted(results.items())))
    atomic_write_text(out_dir / REPORT, json.dumps(summary.results, indent=2) + "\n")
    if first_error is not None and on_error == "stop":
        if isinstance(first_error, DataFormatError):
            raise first_error
        raise DataFormatError(f"extraction stopped: {first_error}") from first_error
    return summary


class _LocalQueue:
    """A queue stand-in that updates the bars directly (one process)."""

    def __init__(self, bars: _Bars) -> None:
        self.bars = bars

    def put(self, item: tuple[int, str, int]) -> None:
        self.bars.update(item[1], item[2])


def _run_parallel(
    todo: list[tuple[int, Path]],
    out_dir: Path,
    settings: ExtractSettings,
    workers: int,
    on_error: str,
    bars: _Bars,
    record: Callable[[int, Any], None],
) -> None:
    # spawn, not fork: the parent may hold threads (BLAS, tqdm) that a fork would copy locked.
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager:
        queue = manager.Queue()
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            pending: dict[Future[Any], int] = {
                pool.submit(process_participant, s, f, out_dir, settings, queue): s for s, f in todo
            }
            stop = False
            while pending:
                done, _ = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
                while not queue.empty():
                    _, stage, amount = queue.get()
                    bars.update(stage, amount)
                for future in done:
                    subject = pending.pop(future)
                    error = future.exception()
                    record(subject, error if error is not None else future.result())
                    if error is not None and on_error == "stop" and not stop:
                        stop = True
                        for other in pending:
                            other.cancel()
                pending = {f: s for f, s in pending.items() if not f.cancelled()}
            while not queue.empty():
                _, stage, amount = queue.get()
                bars.update(stage, amount)
