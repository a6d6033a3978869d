"""Jetson power, clocks and memory from ``tegrastats``: a line parser and a background sampler.

``tegrastats`` prints one line per interval. Its format differs by module and JetPack release:

- JetPack 6 (r36) prefixes a timestamp (``MM-DD-YYYY HH:MM:SS``), prints rails as
  ``NAME 2368mW/2368mW`` (instant / running average), lowercase temperatures (``gpu@42.9C``)
  and per-GPC GPU clocks ``GR3D_FREQ 0%@[1300,1300]``;
- JetPack 4/5 on Xavier print rails without units (``VDD_IN 4512/4512``; mW) and, on AGX
  Xavier, short rail names (``GPU 0/0 CPU 616/616 SOC 1386/1386 CV 0/0 VDDRQ 308/308 SYS5V 2233/2233``);
- run without root, ``EMC_FREQ`` / ``GR3D_FREQ`` may lack the ``@MHz`` part.

:func:`parse_tegrastats_line` handles all of these; fields a line lacks are ``None`` / empty.

Total power
-----------
:meth:`TegrastatsSample.total_power_mw` is the module's input rail ``VDD_IN`` when the line has
one (Orin Nano / NX, Xavier NX: it already includes the other rails); otherwise (AGX Orin,
AGX Xavier, whose monitors sit on separate supplies) the sum of all rails. Energy per inference
is mean total power × measured time / inferences (mW × s = mJ): :func:`energy_per_inference_mj`.

Clock-lock heuristic
--------------------
Benchmarks on Jetson are only comparable with clocks pinned (``sudo jetson_clocks``). Under
DVFS the governor moves the GPU and memory clocks with load, so :func:`check_clocks` flags
clocks as *not locked* when, over the samples of a run, the GPU clock (``GR3D_FREQ`` MHz, any
GPC) or the memory clock (``EMC_FREQ`` MHz) takes more than one value. With ``jetson_clocks``
applied both stay at their maximum for the whole run. A run whose lines carry no clock values
(tegrastats without root) is reported as *unknown*. The check cannot tell a clock pinned below
its maximum (e.g. a lower nvpmodel mode) from one at maximum; the power mode is recorded
next to it for that reason.
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from medfuse.errors import UsageError

__all__ = [
    "ClockCheck",
    "Rail",
    "TegrastatsSample",
    "TegrastatsSampler",
    "check_clocks",
    "energy_per_inference_mj",
    "mean_power_mw",
    "parse_tegrastats_line",
    "tegrastats_available",
]

logger = logging.getLogger(__name__)

_TIMESTAMP = re.compile(r"^\d{2}-\d{2}-\d{4} \d{2}:\d{2}:\d{2}\s+")
_RAM = re.compile(r"\bRAM (\d+)/(\d+)MB")
_SWAP = re.compile(r"\bSWAP (\d+)/(\d+)MB")
_CPU = re.compile(r"\bCPU \[([^\]]*)\]")
_LOAD_FREQ = r"(\d+)%(?:@(\[[\d,]+\]|\d+))?"
_EMC = re.compile(r"\bEMC_FREQ " + _LOAD_FREQ)
_GR3D = re.compile(r"\bGR3D_FREQ " + _LOAD_FREQ)
_TEMP = re.compile(r"\b([A-Za-z][\w]*)@(-?\d+(?:\.\d+)?)C\b")
_RAIL = re.compile(r"\b([A-Z][A-Z0-9_]*) (\d+)(?:mW)?/(\d+)(?:mW)?(?=\s|$)")
_NOT_RAILS = {"RAM", "SWAP", "IRAM"}


@dataclass(frozen=True)
class Rail:
    """One power monitor: instantaneous and running-average power in mW."""

    current_mw: float
    average_mw: float


@dataclass(frozen=True)
class TegrastatsSample:
    """One parsed ``tegrastats`` line (``t`` is when the sampler read it, in s)."""

    ram_used_mb: int | None = None
    ram_total_mb: int | None = None
    swap_used_mb: int | None = None
    cpu_load_percent: tuple[int | None, ...] = ()
    cpu_freq_mhz: tuple[int | None, ...] = ()
    emc_percent: int | None = None
    emc_freq_mhz: int | None = None
    gr3d_percent: int | None = None
    gr3d_freq_mhz: tuple[int, ...] = ()
    temps_c: dict[str, float] = field(default_factory=dict)
    rails: dict[str, Rail] = field(default_factory=dict)
    t: float = 0.0

    def total_power_mw(self) -> float | None:
        """``VDD_IN`` when present, else the sum of all rails; ``None`` without rails."""
        if "VDD_IN" in self.rails:
            return self.rails["VDD_IN"].current_mw
        if not self.rails:
            return None
        return sum(r.current_mw for r in self.rails.values())


def _freqs(text: str | None) -> tuple[int, ...]:
    if not text:
        return ()
    return tuple(int(v) for v in text.strip("[]").split(",") if v)


def parse_tegrastats_line(line: str, t: float = 0.0) -> TegrastatsSample:
    """Parse one ``tegrastats`` output line (any JetPack format; see the module docstring)."""
    text = _TIMESTAMP.sub("", line.strip())
    ram = _RAM.search(text)
    swap = _SWAP.search(text)
    loads: list[int | None] = []
    freqs: list[int | None] = []
    cpu = _CPU.search(text)
    if cpu:
        for core in cpu.group(1).split(","):
            m = re.fullmatch(r"(\d+)%(?:@(\d+))?", core.strip())
            loads.append(int(m.group(1)) if m else None)
            freqs.append(int(m.group(2)) if m and m.group(2) else None)
    emc = _EMC.search(text)
    gr3d = _GR3D.search(text)
    emc_freq = _freqs(emc.group(2)) if emc else ()
    rails: dict[str, Rail] = {}
    for m in _RAIL.finditer(text):
        if m.group(1) not in _NOT_RAILS:
            rails[m.group(1)] = Rail(float(m.group(2)), float(m.group(3)))
    return TegrastatsSample(
        ram_used_mb=int(ram.group(1)) if ram else None,
        ram_total_mb=int(ram.group(2)) if ram else None,
        swap_used_mb=int(swap.group(1)) if swap else None,
        cpu_load_percent=tuple(loads),
        cpu_freq_mhz=tuple(freqs),
        emc_percent=int(emc.group(1)) if emc else None,
        emc_freq_mhz=emc_freq[0] if emc_freq else None,
        gr3d_percent=int(gr3d.group(1)) if gr3d else None,
        gr3d_freq_mhz=_freqs(gr3d.group(2)) if gr3d else (),
        temps_c={m.group(1): float(m.group(2)) for m in _TEMP.finditer(text)},
        rails=rails,
        t=t,
    )


def mean_power_mw(samples: Sequence[TegrastatsSample]) -> float | None:
    """Mean total power over ``samples`` (mW); ``None`` when no sample has rails."""
    values = [p for p in (s.total_power_mw() for s in samples) if p is not None]
    return sum(values) / len(values) if values else None


def energy_per_inference_mj(mean_power: float, duration_s: float, inferences: int) -> float:
    """Energy per inference in mJ: ``mean_power`` (mW) × ``duration_s`` / ``inferences``."""
    if inferences < 1 or duration_s <= 0:
        raise UsageError(
            f"energy needs a positive duration and at least one inference, got {duration_s} s "
            f"and {inferences}; measure at least one inference"
        )
    return mean_power * duration_s / inferences


@dataclass(frozen=True)
class ClockCheck:
    """Result of the clock-lock heuristic: ``locked`` is ``None`` when it cannot tell."""

    locked: bool | None
    gr3d_freqs_mhz: tuple[int, ...]
    emc_freqs_mhz: tuple[int, ...]
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "locked": self.locked,
            "gr3d_freqs_mhz": list(self.gr3d_freqs_mhz),
            "emc_freqs_mhz": list(self.emc_freqs_mhz),
            "message": self.message,
        }


def check_clocks(samples: Sequence[TegrastatsSample]) -> ClockCheck:
    """Apply the clock-lock heuristic (module docstring) to a run's samples."""
    gr3d = tuple(sorted({f for s in samples for f in s.gr3d_freq_mhz}))
    emc = tuple(sorted({s.emc_freq_mhz for s in samples if s.emc_freq_mhz is not None}))
    if not gr3d and not emc:
        return ClockCheck(None, gr3d, emc, "tegrastats reported no clock values (run as root)")
    varying = [n for n, v in (("GPU (GR3D_FREQ)", gr3d), ("memory (EMC_FREQ)", emc)) if len(v) > 1]
    if varying:
        return ClockCheck(
            False,
            gr3d,
            emc,
            f"{' and '.join(varying)} clock varied during the run: clocks are not locked; "
            "run `sudo jetson_clocks` for comparable numbers",
        )
    return ClockCheck(True, gr3d, emc, "GPU and memory clocks constant during the run")


def tegrastats_available() -> bool:
    """Whether a ``tegrastats`` executable is on the PATH (Jetson only)."""
    return shutil.which("tegrastats") is not None


class TegrastatsSampler:
    """Run ``tegrastats --interval N`` in the background and collect parsed samples.

    Use as a context manager around the measured work; :attr:`samples` holds the lines read
    while it ran. The process is stopped on exit.

    Parameters
    ----------
    interval_ms:
        Sampling interval passed to ``tegrastats``.
    command:
        The executable (default: ``tegrastats`` from the PATH).
    """

    def __init__(self, interval_ms: int = 100, command: Sequence[str] | None = None) -> None:
        self.interval_ms = interval_ms
        self._command = list(command) if command else ["tegrastats"]
        self.samples: list[TegrastatsSample] = []
        self._proc: subprocess.Popen[str] | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        """Start the process and the reader thread."""
        cmd = [*self._command, "--interval", str(self.interval_ms)]
        self._proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, bufsize=1
        )
        self._thread = threading.Thread(target=self._read, name="medfuse-tegrastats", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            if not line.strip():
                continue
            sample = parse_tegrastats_line(line, t=time.perf_counter())
            with self._lock:
                self.samples.append(sample)

    def stop(self) -> list[TegrastatsSample]:
        """Stop the process; return the samples."""
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._proc is not None and self._proc.stdout is not None:
            self._proc.stdout.close()
        with self._lock:
            return list(self.samples)

    def __enter__(self) -> TegrastatsSampler:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
