"""A site's CPU load over time, sampled while something runs (seed 000 Fig. 5): each site's agent
is asked for its CPU seconds so far (`GET /v1/cpu/site`: its process tree and its containers'
cgroups) every 1/hz seconds, in a thread; between two readings the load is the CPU seconds spent
over the agent's own clock's seconds (so the asking's own latency does not count), in cores
(1.0 = one core busy). A reading that fails is skipped (and counted)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol


class CpuSource(Protocol):
    def site_cpu(self) -> dict[str, float]: ...


@dataclass
class CpuSeries:
    """One site's samples: `t_s` since the sampler started, `cores` over the interval before."""

    t_s: list[float] = field(default_factory=list)
    cores: list[float] = field(default_factory=list)
    failed: int = 0

    @property
    def mean(self) -> float | None:
        return sum(self.cores) / len(self.cores) if self.cores else None

    @property
    def peak(self) -> float | None:
        return max(self.cores) if self.cores else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "t_s": [round(t, 4) for t in self.t_s],
            "cores": [round(c, 4) for c in self.cores],
            "mean": self.mean,
            "peak": self.peak,
            "failed": self.failed,
        }


class CpuSampler:
    """Samples `sites` at `hz` from `start()` to `stop()` (see the module docstring)."""

    def __init__(
        self,
        sites: Mapping[str, CpuSource],
        hz: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0 < hz <= 1000:
            raise ValueError(f"a sampling rate of {hz} Hz (1 mHz to 1 kHz)")
        self.sites = dict(sites)
        self.period = 1.0 / hz
        self.clock = clock
        self.series = {name: CpuSeries() for name in self.sites}
        self._last: dict[str, tuple[float, float]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.t0 = 0.0

    def sample(self) -> None:
        """One reading of every site (the thread calls it; tests call it directly)."""
        for name, site in self.sites.items():
            try:
                r = site.site_cpu()
                now, spent = float(r["monotonic_s"]), float(r["site_s"])
            except Exception:  # noqa: BLE001 - a missed sample is counted, never fatal
                self.series[name].failed += 1
                continue
            last = self._last.get(name)
            self._last[name] = (now, spent)
            if last is not None and now > last[0]:
                s = self.series[name]
                s.t_s.append(self.clock() - self.t0)
                s.cores.append(max(0.0, (spent - last[1]) / (now - last[0])))

    def start(self) -> CpuSampler:
        self.t0 = self.clock()
        self.sample()  # the first reading: the origin of the first interval
        self._thread = threading.Thread(target=self._run, name="cpu-sampler", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        next_at = self.clock() + self.period
        while not self._stop.wait(max(0.0, next_at - self.clock())):
            self.sample()
            next_at += self.period

    def stop(self) -> dict[str, CpuSeries]:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        return self.series
