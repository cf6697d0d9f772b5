"""Overall progress of a protocol run: fold k of n, time elapsed, estimated time left."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field


def _clock(seconds: float) -> str:
    """``1h02m``, ``3m05s`` or ``42s``."""
    hours, rest = divmod(round(seconds), 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


@dataclass
class RunProgress:
    """Counts the (fold, seed) jobs of a run; the estimate is the mean time of the trained ones.

    Jobs finished in an earlier session are counted as done without time, so a resumed run's
    estimate rests on this session's folds only.

    Args:
        total: Number of (fold, seed) jobs.
        clock: Seconds since an arbitrary origin (tests pass a fake one).
    """

    total: int
    clock: Callable[[], float] = time.perf_counter
    done: int = 0
    durations: list[float] = field(default_factory=list)
    _start: float = field(default=0.0, init=False)
    _job_start: float | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self._start = self.clock()

    def skip(self) -> None:
        """A job finished earlier (nothing to train)."""
        self.done += 1

    def begin(self, fold: int, seed: int) -> str:
        """Start a job; returns the progress line to print."""
        self._job_start = self.clock()
        elapsed = self._job_start - self._start
        line = f"[mpcl-protocol] fold {self.done + 1} of {self.total} (fold {fold}, seed {seed})"
        line += f": elapsed {_clock(elapsed)}"
        if self.durations:
            mean = sum(self.durations) / len(self.durations)
            line += f", about {_clock(mean * (self.total - self.done))} left"
        return line

    def end(self) -> None:
        """The job started by :meth:`begin` is done."""
        if self._job_start is not None:
            self.durations.append(self.clock() - self._job_start)
            self._job_start = None
        self.done += 1
