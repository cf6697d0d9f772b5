"""Clocks, repeat statistics and peak-memory probes that are right for CPU and CUDA work.

GPU kernels run asynchronously: every clock read on CUDA is preceded by a synchronisation, so a
time covers the work and not just its launch. CPU time (``time.process_time``) is kept next to
wall time because on a shared machine it is much less sensitive to other processes.
"""

from __future__ import annotations

import resource
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

MIB = 2**20


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (a no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass(frozen=True)
class Elapsed:
    """Wall-clock and process CPU seconds of one timed interval."""

    wall: float
    cpu: float


class Stopwatch:
    """Times an interval on ``device``: ``start()`` ... ``stop()`` -> :class:`Elapsed`."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self._wall = self._cpu = 0.0

    def start(self) -> None:
        """Begin the interval once the device is idle."""
        synchronize(self.device)
        self._wall, self._cpu = time.perf_counter(), time.process_time()

    def stop(self) -> Elapsed:
        """End the interval once the device has finished its work."""
        synchronize(self.device)
        return Elapsed(time.perf_counter() - self._wall, time.process_time() - self._cpu)


def repeat(
    fn: Callable[[], None], device: torch.device, warmup: int, repeats: int
) -> list[Elapsed]:
    """Wall and CPU seconds of ``repeats`` calls of ``fn`` after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    watch, times = Stopwatch(device), []
    for _ in range(repeats):
        watch.start()
        fn()
        times.append(watch.stop())
    return times


def summary(values: list[float]) -> dict[str, float | list[float]]:
    """Median, minimum, maximum and the raw values (the median is what tables report)."""
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "values": list(values),
    }


def _proc_status_kib(field: str) -> int | None:
    status = Path("/proc/self/status")
    if not status.is_file():
        return None
    for line in status.read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return None


class PeakMemory:
    """Peak memory that a block of work adds, in MiB.

    * CUDA: ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats``, minus the
      memory allocated at the start (tensors of the caching allocator; what the work needs).
    * CPU (Linux): the resident-set high-water mark ``VmHWM`` after resetting it through
      ``/proc/self/clear_refs``, minus the resident set at the start. Torch allocates outside
      Python's allocator, so ``tracemalloc`` would not see it. Where the mark cannot be reset,
      ``ru_maxrss`` is used, which is exact only when the block sets a new process-wide peak:
      the benchmark measures each model in a fresh process for that reason.

    Attributes:
        method: Which probe was used (reported with the results).
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.method = ""
        self._base_kib = 0
        self._base_bytes = 0

    def start(self) -> None:
        """Reset the peak and remember the current usage."""
        if self.device.type == "cuda":
            synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._base_bytes = torch.cuda.memory_allocated(self.device)
            self.method = "torch.cuda.max_memory_allocated"
            return
        try:
            Path("/proc/self/clear_refs").write_text("5")
            self.method = "VmHWM after clear_refs"
        except OSError:
            self.method = "ru_maxrss"
        current = _proc_status_kib("VmRSS")
        self._base_kib = current or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    def stop(self) -> float:
        """MiB added at the peak since :meth:`start`."""
        if self.device.type == "cuda":
            synchronize(self.device)
            return (torch.cuda.max_memory_allocated(self.device) - self._base_bytes) / MIB
        if self.method == "VmHWM after clear_refs":
            peak = _proc_status_kib("VmHWM") or 0
        else:
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return max(0, peak - self._base_kib) * 1024 / MIB
