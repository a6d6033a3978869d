"""``trtexec`` as a baseline: find it, build its command line, run it, parse its summary.

``trtexec --loadEngine=PLAN`` times a TensorRT plan with NVIDIA's own C++ harness, so it is the
reference a medfuse session on the same plan is held against (DESIGN.md: medfuse's engine
latency within 5 % of trtexec). This module is plain code: the parser is tested on recorded
trtexec output (``tests/benchmarks/fixtures/trtexec/``); only :func:`run_trtexec` starts the
program, and it has **not yet run against a real trtexec** (no GPU on the machines used so far).

The summary format comes from ``printEpilog`` in ``samples/common/sampleReporting.cpp`` of
NVIDIA/TensorRT, and was checked against real logs (8.6.0, 10.14.1, 10.16.0 and a 2022 8.x run;
see the fixtures' SOURCES.md)::

    [I] === Performance summary ===
    [I] Throughput: 21009.2 qps
    [I] Latency: min = 0.049 ms, max = 0.61 ms, mean = 0.053 ms, median = 0.051 ms, percentile(90%) = 0.053 ms, ...
    [I] End-to-End Host Latency: ...          (older 8.x only)
    [I] Enqueue Time: ...
    [I] H2D Latency: ...
    [I] GPU Compute Time: ...
    [I] D2H Latency: ...
    [I] Total Host Walltime: 3.00012 s
    [I] Total GPU Compute Time: 2.84346 s

Older 8.x releases print one ``percentile(P%)`` per metric, later ones one per ``--percentile``
value (default 90, 95, 99). ``Latency`` is H2D + GPU compute + D2H of one query, timed with CUDA
events; ``Throughput`` is queries / host wall time, with consecutive queries overlapping.
"""

from __future__ import annotations

import logging
import math
import os
import re
import shutil
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medfuse.errors import BackendError, UsageError

__all__ = [
    "TRTEXEC_DIRS",
    "TrtexecRun",
    "TrtexecStat",
    "TrtexecSummary",
    "find_trtexec",
    "parse_trtexec_output",
    "run_trtexec",
    "shapes_spec",
    "trtexec_command",
]

logger = logging.getLogger(__name__)

TRTEXEC_DIRS: tuple[str, ...] = ("/usr/src/tensorrt/bin",)
"""Where trtexec lives when it is not on ``PATH``: JetPack and NVIDIA's TensorRT containers."""

_NUM = r"[-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|inf|nan)"
# A log line's prefixes ("[03/25/2023-07:13:26] [I] ", sometimes "[INFO] " before them).
_PREFIX = r"^(?:\[[^\]]*\]\s*)*"
_STAT_NAMES = {
    "Latency": "latency",
    "End-to-End Host Latency": "end_to_end",
    "Enqueue Time": "enqueue",
    "H2D Latency": "h2d",
    "GPU Compute Time": "gpu_compute",
    "D2H Latency": "d2h",
}
_STAT_LINE = re.compile(
    _PREFIX + r"(?P<name>" + "|".join(re.escape(n) for n in _STAT_NAMES) + r"): "
    r"min = (?P<min>" + _NUM + r") ms, max = (?P<max>" + _NUM + r") ms, "
    r"mean = (?P<mean>" + _NUM + r") ms, median = (?P<median>" + _NUM + r") ms"
    r"(?P<rest>(?:, percentile\(" + _NUM + r"%\) = " + _NUM + r" ms)*)\s*$"
)
_PERCENTILE = re.compile(r"percentile\((?P<p>" + _NUM + r")%\) = (?P<v>" + _NUM + r") ms")
_THROUGHPUT = re.compile(_PREFIX + r"Throughput: (?P<v>" + _NUM + r") qps\s*$")
_TOTALS = re.compile(
    _PREFIX + r"(?P<name>Total Host Walltime|Total GPU Compute Time): (?P<v>" + _NUM + r") s\s*$"
)
_SUMMARY = re.compile(_PREFIX + r"=== Performance summary ===\s*$")
_TRACE = re.compile(_PREFIX + r"Timing trace has (?P<n>\d+) queries over")
_WARMUP = re.compile(_PREFIX + r"Warmup completed (?P<n>\d+) queries over")
_VERSION_LINE = re.compile(_PREFIX + r"TensorRT version: (?P<v>\d+(?:\.\d+)+)\s*$")
_BANNER = re.compile(
    r"^&&&& (?P<state>RUNNING|PASSED|FAILED) TensorRT\.trtexec \[TensorRT v(?P<v>\d+)\]"
)
_WARNING = re.compile(r"^(?:\[[^\]]*\]\s*)*?\[W\] (?P<msg>.*\S)\s*$")


@dataclass(frozen=True)
class TrtexecStat:
    """One metric line of the summary, in milliseconds; ``percentiles_ms`` as printed."""

    min_ms: float
    max_ms: float
    mean_ms: float
    median_ms: float
    percentiles_ms: tuple[tuple[float, float], ...]

    def percentile(self, p: float) -> float | None:
        """The value printed for ``percentile(p%)``, or ``None`` when trtexec did not print it."""
        for q, v in self.percentiles_ms:
            if math.isclose(q, p):
                return v
        return None

    def to_dict(self) -> dict[str, float]:
        """``{"min_ms", "max_ms", "mean_ms", "median_ms", "p90_ms", ...}`` (JSON-ready)."""
        out = {
            "min_ms": self.min_ms,
            "max_ms": self.max_ms,
            "mean_ms": self.mean_ms,
            "median_ms": self.median_ms,
        }
        for q, v in self.percentiles_ms:
            out[f"p{q:g}_ms"] = v
        return out


@dataclass(frozen=True)
class TrtexecSummary:
    """trtexec's performance summary.

    ``latency`` (H2D + compute + D2H per query, CUDA events) and ``gpu_compute`` are always
    there; the other metrics are ``None`` when that trtexec did not print them
    (``end_to_end`` only exists in older 8.x). ``queries`` / ``warmup_queries`` come from the
    "Timing trace has N queries" / "Warmup completed N queries" lines, ``tensorrt_version`` from
    "TensorRT version: X" or the ``&&&&`` banner, ``passed`` from the closing banner
    (``None`` when the output has none), ``warnings`` are the ``[W]`` lines after the summary.
    """

    throughput_qps: float
    latency: TrtexecStat
    gpu_compute: TrtexecStat
    enqueue: TrtexecStat | None = None
    h2d: TrtexecStat | None = None
    d2h: TrtexecStat | None = None
    end_to_end: TrtexecStat | None = None
    total_host_walltime_s: float | None = None
    total_gpu_compute_s: float | None = None
    queries: int | None = None
    warmup_queries: int | None = None
    tensorrt_version: str | None = None
    passed: bool | None = None
    warnings: tuple[str, ...] = ()

    @property
    def wall_ms_per_query(self) -> float | None:
        """Host wall time per query (1000 / throughput; consecutive queries overlap)."""
        return 1000.0 / self.throughput_qps if self.throughput_qps > 0 else None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view (metrics as :meth:`TrtexecStat.to_dict`)."""
        stats = {
            name: getattr(self, name)
            for name in ("latency", "end_to_end", "enqueue", "h2d", "gpu_compute", "d2h")
        }
        return {
            "throughput_qps": self.throughput_qps,
            "wall_ms_per_query": self.wall_ms_per_query,
            **{k: (None if v is None else v.to_dict()) for k, v in stats.items()},
            "total_host_walltime_s": self.total_host_walltime_s,
            "total_gpu_compute_s": self.total_gpu_compute_s,
            "queries": self.queries,
            "warmup_queries": self.warmup_queries,
            "tensorrt_version": self.tensorrt_version,
            "passed": self.passed,
            "warnings": list(self.warnings),
        }


def _banner_version(code: str) -> str:
    """``101600`` → ``10.16.0``, ``8601`` → ``8.6.1`` (NV_TENSORRT_VERSION's two encodings)."""
    v = int(code)
    if v >= 10000:
        return f"{v // 10000}.{(v // 100) % 100}.{v % 100}"
    return f"{v // 1000}.{(v // 100) % 10}.{v % 100}"


def _stat(match: re.Match[str]) -> TrtexecStat:
    pct = tuple((float(m["p"]), float(m["v"])) for m in _PERCENTILE.finditer(match["rest"]))
    return TrtexecStat(
        float(match["min"]), float(match["max"]), float(match["mean"]), float(match["median"]), pct
    )


def _tail(lines: Sequence[str], n: int = 8) -> str:
    kept = [ln.rstrip() for ln in lines if ln.strip()][-n:]
    return "\n".join(f"    {ln}" for ln in kept) or "    (no output)"


def parse_trtexec_output(text: str) -> TrtexecSummary:
    """Read trtexec's console output (stdout + stderr) into a :class:`TrtexecSummary`.

    Parameters
    ----------
    text:
        The whole output, or any part holding ``=== Performance summary ===`` and the metric
        lines after it. With several summaries, the last one is read. Unknown lines are ignored.

    Raises
    ------
    BackendError
        No summary (trtexec failed, or ``--dumpProfile`` without ``--separateProfileRun``
        suppressed it), or the summary lacks ``Throughput``, ``Latency`` or ``GPU Compute Time``.
        The message quotes the last lines of the output.
    """
    lines = text.splitlines()
    starts = [i for i, ln in enumerate(lines) if _SUMMARY.match(ln)]
    if not starts:
        raise BackendError(
            "trtexec printed no '=== Performance summary ===' (it failed, or --dumpProfile "
            "without --separateProfileRun suppressed the timing report); its last lines:\n"
            + _tail(lines)
        )
    head, body = lines[: starts[-1]], lines[starts[-1] + 1 :]
    stats: dict[str, TrtexecStat] = {}
    totals: dict[str, float] = {}
    throughput: float | None = None
    warnings: list[str] = []
    for ln in body:
        if m := _STAT_LINE.match(ln):
            stats[_STAT_NAMES[m["name"]]] = _stat(m)
        elif m := _THROUGHPUT.match(ln):
            throughput = float(m["v"])
        elif m := _TOTALS.match(ln):
            totals[m["name"]] = float(m["v"])
        elif m := _WARNING.match(ln):
            warnings.append(m["msg"].strip())
    missing = [
        name
        for name, key in (
            ("Throughput", throughput),
            ("Latency", stats.get("latency")),
            ("GPU Compute Time", stats.get("gpu_compute")),
        )
        if key is None
    ]
    if missing or throughput is None:
        raise BackendError(
            f"trtexec's performance summary lacks {', '.join(missing)} (an unknown trtexec "
            "output format?); the summary read:\n" + _tail(body, 12)
        )
    printed: str | None = None
    banner: str | None = None
    passed: bool | None = None
    for ln in lines:
        if (m := _VERSION_LINE.match(ln)) and printed is None:
            printed = m["v"]
        elif m := _BANNER.match(ln):
            banner = banner or _banner_version(m["v"])
            if m["state"] != "RUNNING":
                passed = m["state"] == "PASSED"
    queries: int | None = None
    warmups: int | None = None
    for ln in head:
        if m := _TRACE.match(ln):
            queries = int(m["n"])
        elif m := _WARMUP.match(ln):
            warmups = int(m["n"])
    return TrtexecSummary(
        throughput_qps=throughput,
        latency=stats["latency"],
        gpu_compute=stats["gpu_compute"],
        enqueue=stats.get("enqueue"),
        h2d=stats.get("h2d"),
        d2h=stats.get("d2h"),
        end_to_end=stats.get("end_to_end"),
        total_host_walltime_s=totals.get("Total Host Walltime"),
        total_gpu_compute_s=totals.get("Total GPU Compute Time"),
        queries=queries,
        warmup_queries=warmups,
        tensorrt_version=printed or banner,
        passed=passed,
        warnings=tuple(warnings),
    )


def find_trtexec(
    path: str | None = None, extra_dirs: Sequence[str | Path] = TRTEXEC_DIRS
) -> Path | None:
    """Where ``trtexec`` is: on ``PATH`` (or ``path``), else in ``extra_dirs``; ``None`` if nowhere.

    Parameters
    ----------
    path:
        A ``PATH``-style search list; ``None`` uses the environment's ``PATH``.
    extra_dirs:
        Folders tried after the search list (default: ``/usr/src/tensorrt/bin``, where JetPack
        and NVIDIA's containers put it without adding it to ``PATH``).
    """
    found = shutil.which("trtexec", path=path)
    if found:
        return Path(found)
    for folder in extra_dirs:
        candidate = Path(folder) / "trtexec"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def shapes_spec(shapes: Mapping[str, Sequence[int]]) -> str:
    """The ``--shapes`` value: ``name:1x3x224x224,other:1x1`` (trtexec's grammar).

    Names holding ``:`` or ``,`` are wrapped in single quotes, as trtexec's help says
    (``'Input:0'``).

    Raises
    ------
    UsageError
        An empty name, a name holding a single quote, or a dimension below 0.
    """
    parts = []
    for name, dims in shapes.items():
        if not name or "'" in name:
            raise UsageError(
                f"input name {name!r} cannot be passed to trtexec --shapes "
                "(empty, or holds a single quote)"
            )
        if any(int(d) < 0 for d in dims):
            raise UsageError(
                f"shape {list(dims)} of input {name!r} has a negative dimension; "
                "give concrete sizes (batch included)"
            )
        label = f"'{name}'" if (":" in name or "," in name) else name
        parts.append(f"{label}:{'x'.join(str(int(d)) for d in dims)}")
    return ",".join(parts)


def trtexec_command(
    trtexec: str | Path,
    plan: str | Path,
    *,
    shapes: Mapping[str, Sequence[int]] | None = None,
    iterations: int = 300,
    warmup_ms: int = 200,
    cuda_graph: bool = False,
) -> list[str]:
    """The argv that times ``plan`` for exactly ``iterations`` queries after a warm-up.

    ``--duration=0`` drops trtexec's default 3-second minimum, so ``--iterations`` decides the
    sample count (trtexec runs *at least* that many). ``shapes`` (batch included) is needed
    for inputs with dynamic dimensions. ``cuda_graph`` adds ``--useCudaGraph``. Data transfers
    stay on, so ``Latency`` includes H2D and D2H like a medfuse session's call.

    Raises
    ------
    UsageError
        ``iterations`` below 1 or ``warmup_ms`` below 0.
    """
    if iterations < 1:
        raise UsageError(f"iterations must be at least 1, got {iterations}")
    if warmup_ms < 0:
        raise UsageError(f"warmup_ms must be 0 or more, got {warmup_ms}")
    argv = [str(trtexec), f"--loadEngine={plan}"]
    if shapes:
        argv.append(f"--shapes={shapes_spec(shapes)}")
    argv += [f"--iterations={iterations}", f"--warmUp={warmup_ms}", "--duration=0"]
    if cuda_graph:
        argv.append("--useCudaGraph")
    return argv


@dataclass(frozen=True)
class TrtexecRun:
    """One trtexec run: its summary, how long the process took, and its exit code."""

    summary: TrtexecSummary
    seconds: float
    returncode: int


def run_trtexec(argv: Sequence[str], *, timeout_s: float = 600.0) -> TrtexecRun:
    """Run trtexec (``argv`` from :func:`trtexec_command`) and parse its summary.

    Raises
    ------
    BackendError
        trtexec could not start, ran past ``timeout_s``, exited non-zero, or printed no
        readable summary; the message quotes its last lines.
    """
    started = time.perf_counter()
    try:
        proc = subprocess.run(
            list(argv), capture_output=True, text=True, timeout=timeout_s, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise BackendError(
            f"trtexec ran past {timeout_s:g} s and was stopped; use fewer "
            "--iterations or a longer timeout"
        ) from exc
    except OSError as exc:
        raise BackendError(
            f"trtexec could not be started ({exc.strerror or exc}); check that "
            f"{Path(argv[0]).name} is an executable trtexec"
        ) from exc
    seconds = time.perf_counter() - started
    output = proc.stdout + ("\n" + proc.stderr if proc.stderr else "")
    if proc.returncode != 0:
        raise BackendError(
            f"trtexec exited with code {proc.returncode}; its last lines:\n"
            + _tail(output.splitlines())
        )
    summary = parse_trtexec_output(output)
    logger.info(
        "trtexec: %.1f qps, latency median %.4f ms (%d queries, %.1f s)",
        summary.throughput_qps,
        summary.latency.median_ms,
        summary.queries or -1,
        seconds,
    )
    return TrtexecRun(summary=summary, seconds=seconds, returncode=proc.returncode)
