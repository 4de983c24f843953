"""Interleaved timing: every job warmed up, then measured round after round in turn."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Timer:
    """Interleaved timing of several callables: warm-up, then rounds over all of them.

    Timing a configuration and its loop reference in turn, in one process, keeps their
    ratio from being skewed by other load on the machine.
    """

    min_repeats: int = 3
    max_repeats: int = 7
    budget_s: float = 20.0
    slow_s: float = 1.0  # callables slower than this are measured slow_samples times (warm-up included)
    slow_samples: int = 2
    times: dict[str, list[float]] = field(default_factory=dict)

    def run(self, jobs: dict[str, Callable[[], None]]) -> dict[str, float]:
        """Median seconds per job.  A job slower than ``slow_s`` keeps its warm-up call as a
        sample (a loop over experts has nothing to warm up): ``slow_samples`` calls in all."""
        warm: dict[str, float] = {}
        self.times = {}
        for name, job in jobs.items():
            start = time.perf_counter()
            job()
            warm[name] = time.perf_counter() - start
            self.times[name] = [warm[name]] if warm[name] > self.slow_s else []
        began = time.perf_counter()
        for round_ in range(self.max_repeats):
            if round_ >= self.min_repeats and time.perf_counter() - began > self.budget_s:
                break
            for name, job in jobs.items():
                if warm[name] > self.slow_s and len(self.times[name]) >= self.slow_samples:
                    continue
                start = time.perf_counter()
                job()
                self.times[name].append(time.perf_counter() - start)
        return {name: statistics.median(values) for name, values in self.times.items()}

