"""The one-table answer to "which variant should this machine run?" (``medfuse bench --all``).

:func:`run_overview` joins, per variant × backend available here:

- the variant's file size and its gate figures from the manifest
  (:func:`~medfuse.bundle.gate_figures.gate_figures`: agreement with fp32, AUROC drop, drift);
- whether the bundle's golden vectors pass on this machine
  (:func:`~medfuse.runtime.validate.validate_bundle`);
- p50 / p99 latency and throughput at one batch size (:func:`run_benchmark`, tensor mode);
- which variant ``Session(precision="auto")`` picks here, and why
  (:func:`~medfuse.runtime.backends.select.choose_backend`).

``quick=True`` measures with short windows and a 3 s bound per combination (few repetitions;
the stability verdict is still reported, never hidden): the whole overview of the shipped
bundle takes well under a minute on 2 CPU cores. Without it: 1 s windows, 20 s bound.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any

from medfuse.benchmarks.report import BenchReport, ComboResult
from medfuse.benchmarks.runner import BenchConfig, run_benchmark
from medfuse.bundle.gate_figures import GateFigures, gate_figures
from medfuse.errors import MedfuseError, UsageError

__all__ = [
    "OVERVIEW_HEADERS",
    "OVERVIEW_KIND",
    "TEXT_COLUMNS",
    "Overview",
    "OverviewConfig",
    "OverviewRow",
    "auto_sentence",
    "overview_cells",
    "overview_markdown",
    "run_overview",
    "size_text",
]

OVERVIEW_KIND = "medfuse-bench-overview"
Progress = Callable[[int, int, str], None]
"""``progress(done, total, what)``: ``done`` steps of ``total`` finished, ``what`` starts now."""


@dataclass(frozen=True)
class OverviewConfig:
    """What the overview covers and how long it measures.

    ``backends`` / ``variants`` empty: every backend available here / every variant.
    ``quick``: short windows (``window_ms`` 200, ``max_seconds`` 3, spread ±10 %).
    """

    bundle: Any = None
    backends: tuple[str, ...] = ()
    variants: tuple[str, ...] = ()
    batch: int = 1
    device: str = "auto"
    threads: int | None = None
    quick: bool = False

    def bench(self, backend: str, variant: str) -> BenchConfig:
        window, bound, spread = (200.0, 3.0, 0.10) if self.quick else (1000.0, 20.0, 0.05)
        return BenchConfig(
            bundle=self.bundle,
            backends=(backend,),
            variants=(variant,),
            batches=(self.batch,),
            window_ms=window,
            max_seconds=bound,
            stability=spread,
            device=self.device,
            threads=self.threads,
            power=False,
        )


@dataclass(frozen=True)
class OverviewRow:
    """One variant on one backend: size, gate figures, validation here, speed, auto pick."""

    backend: str
    variant: str
    device: str
    size_bytes: int | None
    figures: GateFigures
    validated: bool | None
    validate_note: str
    p50_ms: float | None
    p99_ms: float | None
    throughput_per_s: float | None
    stable: bool | None
    auto: bool
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "variant": self.variant,
            "device": self.device,
            "size_bytes": self.size_bytes,
            "gate": self.figures.to_dict(),
            "validated": self.validated,
            "validate_note": self.validate_note,
            "p50_ms": self.p50_ms,
            "p99_ms": self.p99_ms,
            "throughput_per_s": self.throughput_per_s,
            "stable": self.stable,
            "auto": self.auto,
            "note": self.note,
        }


@dataclass(frozen=True)
class Overview:
    """The overview: bundle, machine, one row per variant × backend, the auto pick."""

    bundle: dict[str, Any]
    rows: tuple[OverviewRow, ...]
    auto: dict[str, Any]
    bench: BenchReport
    skipped: tuple[dict[str, Any], ...] = ()
    settings: dict[str, Any] = field(default_factory=dict)
    created: str = field(
        default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds")
    )

    @property
    def device_label(self) -> str:
        return self.bench.device_label

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": OVERVIEW_KIND,
            "schema_version": 1,
            "created": self.created,
            "bundle": dict(self.bundle),
            "device": self.device_label,
            "auto": dict(self.auto),
            "rows": [r.to_dict() for r in self.rows],
            "skipped": [dict(s) for s in self.skipped],
            "settings": dict(self.settings),
            "bench": self.bench.to_dict(),
        }


def _open(bundle: Any) -> Any:
    from medfuse.bundle import open_bundle
    from medfuse.bundle.reference import reference_bundle_path

    if bundle is None:
        return open_bundle(reference_bundle_path())
    if isinstance(bundle, str) or hasattr(bundle, "__fspath__"):
        return open_bundle(bundle)
    return bundle


def _auto_pick(bundle: Any, device: str) -> dict[str, Any]:
    from medfuse.runtime.backends.select import choose_backend

    try:
        choice = choose_backend(bundle, "auto", "auto", device)
    except MedfuseError as exc:
        return {"backend": None, "precision": None, "device": None, "reason": str(exc)}
    return {
        "backend": choice.backend,
        "precision": choice.precision,
        "device": choice.device,
        "reason": choice.reason,
    }


def _size(bundle: Any, rel: str) -> int | None:
    path = bundle.path / rel
    return path.stat().st_size if path.is_file() else None


def run_overview(config: OverviewConfig, progress: Progress | None = None) -> Overview:
    """Validate and measure every variant × available backend of a bundle; see the module doc.

    Raises
    ------
    BundleError
        The bundle cannot be opened.
    UsageError
        An unknown backend or variant, or a batch below 1.
    """
    from medfuse.runtime.backends.select import BACKENDS, available_backends
    from medfuse.runtime.validate import validate_bundle

    if config.batch < 1:
        raise UsageError(f"batch size must be at least 1, got {config.batch}")
    bundle = _open(config.bundle)
    variants = list(config.variants) or list(bundle.precisions)
    unknown_v = [v for v in variants if v not in bundle.precisions]
    unknown_b = [b for b in config.backends if b not in BACKENDS]
    if unknown_v or unknown_b:
        raise UsageError(
            f"unknown {'variant(s) ' + str(unknown_v) if unknown_v else ''}"
            f"{' and ' if unknown_v and unknown_b else ''}"
            f"{'backend(s) ' + str(unknown_b) if unknown_b else ''}; the bundle has "
            f"{', '.join(bundle.precisions)} and the backends are {', '.join(BACKENDS)}"
        )
    status = available_backends(config.device)
    wanted = list(config.backends) or list(BACKENDS)
    backends = [b for b in wanted if status.get(b) is None]
    skipped: list[dict[str, Any]] = [
        {"backend": b, "variant": "*", "reason": status[b]}
        for b in wanted
        if status.get(b) is not None
    ]
    combos = [(b, v) for b in backends for v in variants]
    total = 1 + len(combos)
    if progress:
        progress(0, total, "validating golden vectors")
    checks = {
        (c.backend, c.precision): c
        for c in (
            validate_bundle(
                bundle, backends, variants, device=config.device, threads=config.threads
            ).checks
            if backends
            else ()
        )
    }
    results: list[ComboResult] = []
    fingerprint: dict[str, Any] = {}
    for k, (backend, variant) in enumerate(combos, start=1):
        if progress:
            progress(k, total, f"measuring {backend} / {variant} / batch {config.batch}")
        report = run_benchmark(replace(config.bench(backend, variant), bundle=bundle))
        fingerprint = report.fingerprint
        results += report.results
        skipped += [{k2: s[k2] for k2 in ("backend", "variant", "reason")} for s in report.skipped]
    if progress:
        progress(total, total, "done")
    auto = _auto_pick(bundle, config.device)
    by_combo = {(r.backend, r.variant): r for r in results}
    rows = []
    for backend, variant in combos:
        check = checks.get((backend, variant))
        r = by_combo.get((backend, variant))
        rows.append(
            OverviewRow(
                backend=backend,
                variant=variant,
                device=(r.device if r else check.device if check else "") or "",
                size_bytes=_size(bundle, bundle.manifest.variants[variant].file),
                figures=gate_figures(variant, bundle.manifest.variants[variant].accuracy),
                validated=None if check is None else check.passed,
                validate_note="" if check is None else check.failure(),
                p50_ms=r.latency_ms.p50 if r else None,
                p99_ms=r.latency_ms.p99 if r else None,
                throughput_per_s=r.throughput_per_s if r else None,
                stable=r.stable if r else None,
                auto=(auto.get("backend"), auto.get("precision")) == (backend, variant),
                note="" if r else "not measured (see skipped)",
            )
        )
    if not fingerprint:
        from medfuse.devices.fingerprint import bundle_facts, device_fingerprint

        fingerprint = device_fingerprint(bundle_facts(bundle))
    bench = BenchReport(
        fingerprint=fingerprint,
        results=tuple(results),
        settings=config.bench("-", "-").settings(),
        skipped=tuple(skipped),
    )
    m = bundle.manifest
    return Overview(
        bundle={
            "label": bundle.label,
            "name": m.model.name,
            "version": m.model.version,
            "sha256": bundle.digest,
        },
        rows=tuple(rows),
        auto=auto,
        bench=bench,
        skipped=tuple(skipped),
        settings={**bench.settings, "quick": config.quick, "batch": config.batch},
    )


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _rate(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.0f}" if value >= 100 else f"{value:.1f}"


def size_text(n: int | None) -> str:
    """Bytes as ``809 kB`` / ``1.2 MB`` (decimal units)."""
    if n is None:
        return "-"
    if n < 1000:
        return f"{n} B"
    if n < 1_000_000:
        return f"{n / 1000:.0f} kB"
    return f"{n / 1e6:.1f} MB"


def overview_cells(row: OverviewRow) -> list[str]:
    """A row as the cells of the overview table, in :data:`OVERVIEW_HEADERS` order."""
    f = row.figures
    valid = {True: "pass", False: "FAIL", None: "-"}[row.validated]
    stable = "" if row.stable in (True, None) else "~"  # one mark, on p50
    return [
        row.variant,
        row.backend,
        row.device or "-",
        size_text(row.size_bytes),
        "ref" if f.gate == "reference" else _fmt(f.agreement, ".3f"),
        _fmt(f.auroc_drop, "+.4f"),
        _fmt(f.drift, ".3f"),
        valid,
        stable + _fmt(row.p50_ms, ".2f"),
        _fmt(row.p99_ms, ".2f"),
        _rate(row.throughput_per_s),
        "yes" if row.auto else "",
    ]


OVERVIEW_HEADERS: tuple[tuple[str, str], ...] = (
    ("variant", "variant"),
    ("backend", "backend"),
    ("device", "device the backend ran on"),
    ("size", "file size"),
    ("agree", "top-1 agreement with fp32 (manifest gate)"),
    ("AUROC drop", "fp32 AUROC - variant AUROC (manifest gate; negative = better)"),
    ("drift", "largest max |output - fp32| (manifest gate)"),
    ("valid", "golden vectors on this machine"),
    ("p50 ms", "median latency per call"),
    ("p99 ms", "99th percentile latency per call"),
    ("items/s", "throughput"),
    ("auto", 'what precision="auto" picks here'),
)


TEXT_COLUMNS = ("variant", "backend", "device", "valid", "auto")
"""Overview columns holding text (left-aligned); the others hold numbers."""


def auto_sentence(ov: Overview) -> str:
    """``precision="auto" picks ...`` in one sentence."""
    a = ov.auto
    if a.get("precision") is None:
        return f'precision="auto" cannot pick here: {a.get("reason")}'
    return (
        f'precision="auto" picks {a["precision"]} on {a["backend"]} ({a["device"]}) '
        f"because: {a['reason']}"
    )


def overview_markdown(ov: Overview) -> str:
    """The overview as Markdown: heading, table, auto pick, unstable note, skipped."""
    heads = [h for h, _ in OVERVIEW_HEADERS]
    lines = [
        f"**{ov.bundle.get('name')} {ov.bundle.get('version')}** on **{ov.device_label}** "
        f"({'quick' if ov.settings.get('quick') else 'full'} measurement, batch "
        f"{ov.settings.get('batch')}, {ov.created})",
        "",
        "| " + " | ".join(heads) + " |",
        "|" + "|".join("---" if h in TEXT_COLUMNS else "---:" for h in heads) + "|",
    ]
    lines += ["| " + " | ".join(overview_cells(r)) + " |" for r in ov.rows]
    lines += ["", auto_sentence(ov), ""]
    lines += [f"- `{h}`: {m}" for h, m in OVERVIEW_HEADERS[3:]]
    if any(r.stable is False for r in ov.rows):
        lines.append("- `~` before p50: the latency did not stabilise within the time bound")
    for s in ov.skipped:
        lines.append(f"- skipped {s.get('backend')} / {s.get('variant')}: {s.get('reason')}")
    return "\n".join(lines) + "\n"
