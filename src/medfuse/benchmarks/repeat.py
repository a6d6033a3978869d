"""Repeatability: do repeated ``medfuse bench`` runs on one machine agree within their own spread?

A benchmark result carries its own error bar: the stability ``spread`` of its last windows
(every window's median latency within ``±spread`` of their mean, see
:mod:`~medfuse.benchmarks.stats`). Running the same command again on an idle machine should
land inside that error bar. :func:`check_repeatability` checks it for two or more result
documents of the same bundle, on the same machine, with the same settings.

**Repeats.** Results are repeats only when everything that decides the numbers is equal
(:func:`repeat_differences` lists what is not):

- the machine — the fingerprint fields in :data:`MACHINE_FIELDS`: hashed host id, CPU model and
  cores, architecture, OS release, GPU name / compute capability / count / memory / driver, CUDA,
  TensorRT, JetPack / L4T, power mode;
- the software — ``onnxruntime``, ``tensorrt``, ``cuda``, ``medfuse``, ``python``, ``numpy``;
- the model — :func:`~medfuse.benchmarks.compare.bundle_identity`;
- the measurement settings in :data:`SETTING_FIELDS` (window, time bound, stability threshold,
  device, threads, workers). Batch lists may differ: only combinations present in every run
  are compared. (The study folder of end-to-end rows is not recorded, so it cannot be checked.)

Results from different machines are never treated as repeats: :func:`check_repeatability`
raises :class:`~medfuse.errors.UsageError` naming every field that differs, with its values.

**The rule, per combination** (backend × variant × batch × mode present in every run):

- ``difference`` = (largest p50 − smallest p50) / smallest p50 — the largest pairwise relative
  difference of the runs' medians, relative to the faster run;
- ``spread`` = the largest ``stability.spread`` the runs reported for that combination (a ``±``
  figure, relative to the windows' mean);
- verdict ``beyond`` when ``difference > spread``; ``within`` when ``difference <= spread`` and
  every run met its stability rule; ``unknown`` when a run reported no spread (fewer windows
  than the rule needs), or when the difference is inside a spread that comes from a run that did
  not meet the stability rule (a spread that wide confirms nothing). The full difference is held
  against the ± figure on purpose: a reader of "p50 31.5 ms, ±3.5 %" expects another run's median
  within 3.5 % of this one, and this is what is checked. The spread is the one the runs report:
  the larger of the window medians' and the window throughputs' deviation.

Overall: ``beyond`` if any combination is beyond, else ``unknown`` if any is unknown, else
``within``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from medfuse.benchmarks.compare import bundle_identity
from medfuse.benchmarks.report import BenchReport, ComboResult
from medfuse.errors import UsageError

__all__ = [
    "MACHINE_FIELDS",
    "SETTING_FIELDS",
    "RepeatCheck",
    "RepeatRow",
    "check_repeatability",
    "repeat_differences",
    "repeat_markdown",
]

MACHINE_FIELDS = (
    "host_id",
    "machine",
    "cpu_model",
    "cpu_cores",
    "os",
    "device.kind",
    "device.name",
    "device.compute_capability",
    "device.gpu_count",
    "device.memory_mib",
    "device.driver_version",
    "device.cuda_version",
    "device.tensorrt_version",
    "device.l4t",
    "device.jetpack",
    "device.power_mode",
    "onnxruntime",
    "tensorrt",
    "cuda",
    "medfuse",
    "python",
    "numpy",
)
"""Fingerprint fields (dotted paths) that must be equal for results to be repeats."""

SETTING_FIELDS = ("window_ms", "max_seconds", "stability", "device", "threads", "workers")
"""``settings`` fields that must be equal for results to be repeats."""

_BEYOND_HINT = "this machine was not idle or the benchmark is not stable"

Key = tuple[str, str, int, str]


def _get(d: Mapping[str, Any], dotted: str) -> Any:
    value: Any = d
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return value


def _describe(field: str, values: Sequence[Any]) -> str:
    shown = " vs ".join(f"{v!r} (#{i + 1})" for i, v in enumerate(values))
    return f"{field}: {shown}"


def repeat_differences(reports: Sequence[BenchReport]) -> list[str]:
    """What keeps ``reports`` from being repeats of one command on one machine.

    Parameters
    ----------
    reports:
        Results of ``medfuse bench``.

    Returns
    -------
    list of str
        One line per differing field, ``"<field>: <value> (#1) vs <value> (#2) ..."`` (fields
        of the fingerprint, ``bundle``, ``settings.<name>``); empty when they are repeats.
    """
    out: list[str] = []
    for name in MACHINE_FIELDS:
        values = [_get(r.fingerprint, name) for r in reports]
        if any(v != values[0] for v in values):
            out.append(_describe(name, values))
    bundles = [bundle_identity(r) for r in reports]
    if len(set(bundles)) > 1:
        out.append(_describe("bundle", [b[:29] for b in bundles]))
    for name in SETTING_FIELDS:
        values = [r.settings.get(name) for r in reports]
        if any(v != values[0] for v in values):
            out.append(_describe(f"settings.{name}", values))
    return out


def _pct(fraction: float) -> str:
    return f"{fraction * 100:.2f}%"


def _ms(value: float) -> str:
    return f"{value:,.0f}" if value >= 1000 else f"{value:.4g}"


@dataclass(frozen=True)
class RepeatRow:
    """One combination measured in every run: the runs' p50s, their difference, the verdict.

    ``p50_ms``, ``spreads`` and ``stable`` hold one entry per run, in the order given.
    """

    backend: str
    variant: str
    batch: int
    mode: str
    p50_ms: tuple[float, ...]
    spreads: tuple[float | None, ...]
    stable: tuple[bool, ...]
    difference: float
    spread: float | None
    verdict: str

    @property
    def label(self) -> str:
        mode = "end-to-end" if self.mode == "end_to_end" else "tensor"
        return f"{self.backend} / {self.variant} / batch {self.batch} / {mode}"

    def sentence(self) -> str:
        """The verdict in plain words."""
        values = " / ".join(_ms(v) for v in self.p50_ms)
        text = f"p50 differs by {_pct(self.difference)} between runs ({values} ms); "
        unstable = ", ".join(f"#{i + 1}" for i, s in enumerate(self.stable) if not s)
        if self.spread is None:
            missing = ", ".join(f"#{i + 1}" for i, s in enumerate(self.spreads) if s is None)
            return text + f"run {missing} reported no spread (too few windows) → cannot judge"
        text += f"reported spread ±{_pct(self.spread)}"
        if self.verdict == "beyond":
            text += f" → beyond spread; {_BEYOND_HINT}"
            return text + (f" (run {unstable} did not meet the stability rule)" if unstable else "")
        if self.verdict == "unknown":
            return text + (
                f", but run {unstable} did not meet the stability rule, so that spread confirms "
                "nothing → cannot judge; re-run on an idle machine or with a longer --max-seconds"
            )
        return text + " → within spread"

    def to_dict(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "variant": self.variant,
            "batch": self.batch,
            "mode": self.mode,
            "p50_ms": list(self.p50_ms),
            "spreads": list(self.spreads),
            "stable": list(self.stable),
            "difference": self.difference if math.isfinite(self.difference) else None,
            "spread": self.spread,
            "verdict": self.verdict,
            "sentence": self.sentence(),
        }


@dataclass(frozen=True)
class RepeatCheck:
    """The repeatability of ``runs`` results of one bundle on one machine."""

    device: str
    runs: int
    rows: tuple[RepeatRow, ...]
    unmatched: tuple[str, ...] = ()

    @property
    def verdict(self) -> str:
        """``beyond`` if any row is beyond, else ``unknown`` if any is unknown, else ``within``."""
        verdicts = {r.verdict for r in self.rows}
        for v in ("beyond", "unknown"):
            if v in verdicts:
                return v
        return "within"

    def summary(self) -> str:
        """One plain sentence on the whole check."""
        n = len(self.rows)
        beyond = sum(r.verdict == "beyond" for r in self.rows)
        unknown = sum(r.verdict == "unknown" for r in self.rows)
        head = f"{self.runs} runs on {self.device}: "
        if beyond:
            return (
                head + f"{beyond} of {n} combinations differ by more than their reported spread; "
                f"{_BEYOND_HINT} — re-run on an idle machine before quoting these figures"
            )
        if unknown:
            return head + (
                f"{unknown} of {n} combinations cannot be judged (a run reported no spread or "
                "did not meet the stability rule)"
            )
        return head + f"every combination ({n}) repeats within its reported spread"

    def to_dict(self) -> dict[str, Any]:
        return {
            "device": self.device,
            "runs": self.runs,
            "verdict": self.verdict,
            "summary": self.summary(),
            "rule": (
                "difference = (max p50 - min p50) / min p50 over the runs; spread = the largest "
                "stability spread the runs reported; beyond when difference > spread; within "
                "when difference <= spread and every run was stable; else unknown"
            ),
            "rows": [r.to_dict() for r in self.rows],
            "unmatched": list(self.unmatched),
        }


def _key(r: ComboResult) -> Key:
    return (r.backend, r.variant, r.batch, r.mode)


def _spread(r: ComboResult) -> float | None:
    value = r.stability.get("spread")
    if value is None:
        return None
    spread = float(value)
    return spread if math.isfinite(spread) else None


def _row(key: Key, results: Sequence[ComboResult]) -> RepeatRow:
    p50 = tuple(r.latency_ms.p50 for r in results)
    spreads = tuple(_spread(r) for r in results)
    lo, hi = min(p50), max(p50)
    difference = (hi - lo) / lo if lo > 0 else math.inf
    if any(s is None for s in spreads):
        spread, verdict = None, "unknown"
    else:
        spread = max(s for s in spreads if s is not None)
        if difference > spread:
            verdict = "beyond"
        else:
            verdict = "within" if all(r.stable for r in results) else "unknown"
    return RepeatRow(
        backend=key[0],
        variant=key[1],
        batch=key[2],
        mode=key[3],
        p50_ms=p50,
        spreads=spreads,
        stable=tuple(r.stable for r in results),
        difference=difference,
        spread=spread,
        verdict=verdict,
    )


def check_repeatability(reports: Sequence[BenchReport]) -> RepeatCheck:
    """Check that repeated runs agree within the spread they report (rule: module docstring).

    Parameters
    ----------
    reports:
        Two or more results of the same ``medfuse bench`` command on one machine.

    Returns
    -------
    RepeatCheck
        One row per combination present in every run (in the first run's order), the
        combinations missing from some run in ``unmatched``, and the overall verdict.

    Raises
    ------
    UsageError
        Fewer than two reports; reports that are not repeats (different machine, software,
        bundle or settings — the message names each differing field and its values); no
        combination present in every run.
    """
    if len(reports) < 2:
        raise UsageError(
            f"a repeatability check needs at least two results of one command, got {len(reports)}"
        )
    diffs = repeat_differences(reports)
    if diffs:
        raise UsageError(
            "these results are not repeats of one benchmark on one machine, so their "
            "differences say nothing about repeatability (" + "; ".join(diffs) + "). "
            "Compare them across devices with `medfuse bench compare`, or re-run the same "
            "command on the same machine"
        )
    by_run: list[dict[Key, ComboResult]] = [{_key(r): r for r in rep.results} for rep in reports]
    common = [k for k in by_run[0] if all(k in run for run in by_run[1:])]
    everywhere = {k for run in by_run for k in run}
    unmatched = sorted(everywhere.difference(common))
    if not common:
        raise UsageError(
            "the results share no backend × variant × batch × mode combination; re-run with "
            "the same --backend / --variant / --batch"
        )
    rows = tuple(_row(k, [run[k] for run in by_run]) for k in common)
    return RepeatCheck(
        device=reports[0].device_label,
        runs=len(reports),
        rows=rows,
        unmatched=tuple(f"{b} / {v} / batch {n} / {m}" for b, v, n, m in unmatched),
    )


def repeat_markdown(check: RepeatCheck) -> str:
    """The check as a Markdown section: a table of the runs' p50s and verdicts, then a summary."""
    runs = ", ".join(f"run {i + 1}" for i in range(check.runs))
    lines = [
        "### Repeatability",
        "",
        f"| backend | variant | batch | mode | p50 ms ({runs}) | difference | spread | verdict |",
        "|---|---|---:|---|---:|---:|---:|---|",
    ]
    for r in check.rows:
        spread = "–" if r.spread is None else f"±{_pct(r.spread)}"
        mode = "end-to-end" if r.mode == "end_to_end" else "tensor"
        p50 = ", ".join(_ms(v) for v in r.p50_ms)
        lines.append(
            f"| {r.backend} | {r.variant} | {r.batch} | {mode} | {p50} | {_pct(r.difference)} "
            f"| {spread} | {r.verdict} |"
        )
    lines += ["", f"**{check.verdict}** — {check.summary()}."]
    if check.unmatched:
        lines.append(f"Not in every run (not compared): {'; '.join(check.unmatched)}.")
    lines += [
        "",
        "Difference = (largest p50 − smallest p50) / smallest p50; spread = the largest "
        "stability spread the runs reported; beyond when difference > spread, within when "
        "difference ≤ spread and every run was stable, else unknown.",
    ]
    return "\n".join(lines) + "\n"
