"""Benchmark results: the JSON schema (versioned), a Markdown table and a rich table.

JSON layout (``schema_version`` 1)::

    {
      "schema_version": 1,
      "kind": "medfuse-bench",
      "created": "2026-11-24T10:00:00+00:00",
      "fingerprint": {... device_fingerprint(), with "bundle" ...},
      "settings": {"window_ms": ..., "max_seconds": ..., "stability": ..., ...},
      "results": [
        {"backend", "variant", "batch", "mode" ("tensor" | "end_to_end"), "device",
         "unit" ("inference" | "study"),
         "latency_ms": {"p50", "p90", "p95", "p99", "mean", "std", "min", "max", "count"},
         "throughput_per_s", "breakdown_ms": {stage: ms per step},
         "stability": {"stable", "windows_used", "spread", "threshold", "windows_required",
                       "rule", "reason"},
         "memory": {"rss_mib", "peak_rss_mib", "device"}, "power": {...} | null,
         "variant_sha256", "samples_ms": [...], "notes": [...]}
      ],
      "skipped": [{"backend", "variant", "batch", "reason"}]
    }

Latency is per step: one inference call of ``batch`` items (mode ``tensor``) or, end to end,
the time per study of a pass over the study set. A result that did not meet the stability
rule is marked in every table (``NO``), never hidden.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from medfuse.benchmarks.stats import LatencyStats
from medfuse.errors import UsageError

__all__ = [
    "SCHEMA_VERSION",
    "BenchReport",
    "ComboResult",
    "json_safe",
    "markdown_table",
    "read_report",
    "result_rows",
    "rich_table",
    "write_report",
]

SCHEMA_VERSION = 1
_KIND = "medfuse-bench"
_RESULT_KEYS = (
    "backend",
    "variant",
    "batch",
    "latency_ms",
    "throughput_per_s",
    "breakdown_ms",
    "stability",
    "memory",
)


@dataclass(frozen=True)
class ComboResult:
    """The measurement of one backend × variant × batch (× mode) combination."""

    backend: str
    variant: str
    batch: int
    latency_ms: LatencyStats
    throughput_per_s: float
    breakdown_ms: dict[str, float]
    stability: dict[str, Any]
    memory: dict[str, Any]
    mode: str = "tensor"
    device: str = "cpu"
    unit: str = "inference"
    power: dict[str, Any] | None = None
    variant_sha256: str | None = None
    samples_ms: tuple[float, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def stable(self) -> bool:
        return bool(self.stability.get("stable"))

    @property
    def energy_mj(self) -> float | None:
        """Energy per item (mJ) when power was measured."""
        value = (self.power or {}).get("energy_per_item_mj")
        return None if value is None else float(value)

    def to_dict(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "variant": self.variant,
            "batch": self.batch,
            "mode": self.mode,
            "device": self.device,
            "unit": self.unit,
            "latency_ms": self.latency_ms.to_dict(),
            "throughput_per_s": self.throughput_per_s,
            "breakdown_ms": dict(self.breakdown_ms),
            "stability": dict(self.stability),
            "memory": dict(self.memory),
            "power": None if self.power is None else dict(self.power),
            "variant_sha256": self.variant_sha256,
            "samples_ms": list(self.samples_ms),
            "notes": list(self.notes),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "result") -> ComboResult:
        missing = [k for k in _RESULT_KEYS if k not in d]
        if missing:
            raise UsageError(f"{where}: missing {missing}; not a medfuse bench result")
        try:
            return cls(
                backend=str(d["backend"]),
                variant=str(d["variant"]),
                batch=int(d["batch"]),
                latency_ms=LatencyStats.from_dict(d["latency_ms"]),
                throughput_per_s=float(d["throughput_per_s"]),
                breakdown_ms={str(k): float(v) for k, v in d["breakdown_ms"].items()},
                stability=dict(d["stability"]),
                memory=dict(d["memory"]),
                mode=str(d.get("mode", "tensor")),
                device=str(d.get("device", "cpu")),
                unit=str(d.get("unit", "inference")),
                power=None if d.get("power") is None else dict(d["power"]),
                variant_sha256=d.get("variant_sha256"),
                samples_ms=tuple(float(v) for v in d.get("samples_ms", ())),
                notes=tuple(str(n) for n in d.get("notes", ())),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise UsageError(
                f"{where}: malformed value ({exc}); not a medfuse bench result"
            ) from exc


@dataclass(frozen=True)
class BenchReport:
    """A benchmark run: fingerprint, settings, one result per combination, what was skipped."""

    fingerprint: dict[str, Any]
    results: tuple[ComboResult, ...]
    settings: dict[str, Any] = field(default_factory=dict)
    skipped: tuple[dict[str, Any], ...] = ()
    created: str = field(
        default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds")
    )
    schema_version: int = SCHEMA_VERSION

    @property
    def device_label(self) -> str:
        """A short human label for the machine (device name, power mode where present)."""
        dev = self.fingerprint.get("device") or {}
        label = str(dev.get("name") or self.fingerprint.get("cpu_model") or "unknown")
        mode = dev.get("power_mode")
        if isinstance(mode, Mapping) and mode.get("name"):
            label += f" ({mode['name']})"
        return label

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": self.schema_version,
            "kind": _KIND,
            "created": self.created,
            "fingerprint": self.fingerprint,
            "settings": self.settings,
            "results": [r.to_dict() for r in self.results],
            "skipped": [dict(s) for s in self.skipped],
        }

    @classmethod
    def from_dict(cls, d: Any, where: str = "report") -> BenchReport:
        """Validate and load a report dict (raises UsageError naming what is wrong)."""
        if not isinstance(d, Mapping) or d.get("kind") != _KIND:
            raise UsageError(f'{where} is not a medfuse bench result (no "kind": "{_KIND}")')
        version = d.get("schema_version")
        if version != SCHEMA_VERSION:
            raise UsageError(
                f"{where}: schema_version {version!r} is not supported; this medfuse reads "
                f"version {SCHEMA_VERSION} (re-run `medfuse bench` with this version)"
            )
        if not isinstance(d.get("results"), list) or not isinstance(d.get("fingerprint"), Mapping):
            raise UsageError(f'{where}: "results" must be a list and "fingerprint" an object')
        return cls(
            fingerprint=dict(d["fingerprint"]),
            results=tuple(
                ComboResult.from_dict(r, f"{where} result #{i}") for i, r in enumerate(d["results"])
            ),
            settings=dict(d.get("settings") or {}),
            skipped=tuple(dict(s) for s in d.get("skipped") or ()),
            created=str(d.get("created", "")),
            schema_version=int(version),
        )


def json_safe(value: Any) -> Any:
    """Replace non-finite floats with ``None`` (JSON has no NaN / Infinity)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def write_report(report: BenchReport, path: str | Path) -> Path:
    """Write ``report`` as indented JSON (creating parent folders); return the path."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(json_safe(report.to_dict()), indent=2, allow_nan=False) + "\n")
    return out


def read_report(path: str | Path) -> BenchReport:
    """Read and validate a JSON report written by :func:`write_report`.

    Raises
    ------
    UsageError
        The file cannot be read, is not JSON, or is not a medfuse bench result of this schema.
    """
    p = Path(path)
    name = p.name
    try:
        data = json.loads(p.read_text())
    except OSError as exc:
        raise UsageError(f"cannot read bench result {name}: {exc.strerror}") from exc
    except json.JSONDecodeError as exc:
        raise UsageError(f"{name} is not JSON (line {exc.lineno}): not a bench result") from exc
    return BenchReport.from_dict(data, where=name)


# -- tables ------------------------------------------------------------------------------------


def _fmt(value: float | None, digits: int = 3) -> str:
    if value is None or not math.isfinite(value):
        return "–"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 100:
        return f"{value:.1f}"
    return f"{value:.{digits}f}"


def _stable_cell(r: ComboResult) -> str:
    s = r.stability
    spread = s.get("spread")
    spread_txt = "" if spread is None else f", ±{float(spread) * 100:.1f}%"
    if r.stable:
        return f"yes ({s.get('windows_used')} w{spread_txt})"
    return f"NO ({s.get('windows_used')} w{spread_txt})"


HEADERS = (
    "backend",
    "variant",
    "batch",
    "mode",
    "p50 ms",
    "p90 ms",
    "p99 ms",
    "mean ms",
    "throughput/s",
    "stable",
    "mJ/item",
)


def result_rows(results: Sequence[ComboResult]) -> list[list[str]]:
    rows = []
    for r in results:
        lat = r.latency_ms
        rows.append(
            [
                r.backend,
                r.variant,
                str(r.batch),
                "end-to-end" if r.mode == "end_to_end" else "tensor",
                _fmt(lat.p50),
                _fmt(lat.p90),
                _fmt(lat.p99),
                _fmt(lat.mean),
                _fmt(r.throughput_per_s, 1),
                _stable_cell(r),
                _fmt(r.energy_mj, 2),
            ]
        )
    return rows


def markdown_table(report: BenchReport) -> str:
    """The report as Markdown: a heading line, the results table, notes on stability."""
    lines = [
        f"**{report.device_label}** — medfuse {report.fingerprint.get('medfuse', '?')}, "
        f"onnxruntime {report.fingerprint.get('onnxruntime') or '–'}, "
        f"TensorRT {report.fingerprint.get('tensorrt') or '–'}, {report.created}",
        "",
        "| " + " | ".join(HEADERS) + " |",
        "|"
        + "|".join(
            "---:" if h.endswith(("ms", "/s", "item")) or h == "batch" else "---" for h in HEADERS
        )
        + "|",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in result_rows(report.results)]
    rule = report.settings.get("stability_rule")
    if rule:
        lines += [
            "",
            f"Stability rule: {rule}. Latency is per call (batch items) or, end to end, "
            "per study. `NO` = not stable within the time bound: treat with care.",
        ]
    for s in report.skipped:
        lines.append(
            f"- skipped {s.get('backend')} / {s.get('variant')}"
            + ("" if s.get("batch") is None else f" / batch {s.get('batch')}")
            + f": {s.get('reason')}"
        )
    return "\n".join(lines) + "\n"


def rich_table(report: BenchReport) -> Any:
    """The report as a :class:`rich.table.Table` (unstable rows in red)."""
    from rich.table import Table

    table = Table(title=f"medfuse bench — {report.device_label}", show_header=True)
    for h in HEADERS:
        table.add_column(h, justify="right" if h.endswith(("ms", "/s", "item")) else "left")
    for r, row in zip(report.results, result_rows(report.results), strict=True):
        table.add_row(*row, style=None if r.stable else "red")
    return table
