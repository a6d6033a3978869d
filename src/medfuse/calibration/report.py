"""The quantization report: JSON, Markdown, and PNG plots (matplotlib, when installed)."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from medfuse._deps import is_available

__all__ = ["plot_scatter", "plot_sensitivity", "render_markdown", "write_json"]

logger = logging.getLogger(__name__)


def write_json(path: Path, report: Mapping[str, Any]) -> Path:
    """Write ``report`` as indented JSON."""
    path.write_text(
        json.dumps(report, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8"
    )
    return path


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _flipped(m: Mapping[str, Any]) -> str:
    n = m.get("disagreements")
    if n is None:
        return "–"
    margin = m.get("max_fp32_margin_flipped")
    return f"{n} ({_fmt(margin)})" if margin is not None else str(n)


def _chance_lines(variants: Mapping[str, Any]) -> list[str]:
    chance = next(
        (
            v["gate"]["fp32_at_chance"]
            for v in variants.values()
            if v.get("gate", {}).get("fp32_at_chance")
        ),
        None,
    )
    if not chance:
        return []
    lo, hi = chance.get("ci95", [None, None])
    return [
        "",
        f"**FP32 is at chance on the held-out set** ({chance.get('output')}: AUROC "
        f"{_fmt(chance.get('auroc_fp32'))}, 95 % CI [{_fmt(lo)}, {_fmt(hi)}], threshold "
        f"{_fmt(chance.get('threshold'))}): the AUROC criterion was skipped and no sensitivity "
        "search ran; agreement and drift still gated.",
    ]


def _golden_line(golden: Mapping[str, Any] | None) -> str:
    if not golden:
        return "Golden vectors: not recorded"
    rows = ", ".join(f"{n} {src}" for src, n in golden.get("rows", {}).items()) or "none"
    how = "refreshed by this run" if golden.get("refreshed") else "unchanged"
    return f"Golden vectors: {rows} ({how}; FP32 outputs from {golden.get('reference')})"


def render_markdown(report: Mapping[str, Any]) -> str:
    """A human-readable summary of ``report``."""
    lines = [
        f"# Quantization report — {report.get('model', '')}",
        "",
        f"Calibration: {_fmt(report.get('calibration', {}).get('method'))}, "
        f"{_fmt(report.get('calibration', {}).get('studies'))} studies, set sha256 "
        f"`{str(report.get('calibration', {}).get('set_sha256', ''))[:16]}…`",
        f"Gate: {report.get('gate', {})}",
        _golden_line(report.get("golden")),
        *_chance_lines(report.get("variants", {})),
        "",
        "| variant | passed | output | agreement | flipped (max FP32 margin) | AUROC drop "
        "| MAE change | max drift | mean drift |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for prec, v in report.get("variants", {}).items():
        for name, m in v.get("gate", {}).get("outputs", {}).items():
            lines.append(
                f"| {prec} | {v.get('passed')} | {name} | {_fmt(m.get('agreement', '–'))} | "
                f"{_flipped(m)} | {_fmt(m.get('auroc_drop', '–'))} | "
                f"{_fmt(m.get('mae_change', '–'))} | {_fmt(m.get('max_abs_drift'))} | "
                f"{_fmt(m.get('mean_abs_drift'))} |"
            )
    tols = {
        p: v["validate_tolerance"]
        for p, v in report.get("variants", {}).items()
        if v.get("validate_tolerance")
    }
    if tols:
        lines += [
            "",
            "## Validation tolerances (max(floor, margin × measured drift / scale))",
            "",
            "| variant | measured | margin | floor | allowed | min top-1 |",
            "|---|---|---|---|---|---|",
        ]
        for prec, t in tols.items():
            b = t.get("basis", {})
            lines.append(
                f"| {prec} | {_fmt(b.get('measured_max_abs_rel'))} | {_fmt(b.get('margin'))} | "
                f"{_fmt(b.get('floor'))} | {_fmt(t.get('max_abs_rel'))} | {_fmt(t.get('min_top1'))} |"
            )
    for prec, v in report.get("variants", {}).items():
        if v.get("failures"):
            lines += ["", f"**{prec} failed:** " + "; ".join(v["failures"])]
        steps = v.get("sensitivity", {}).get("steps", [])
        if steps:
            lines += [
                "",
                f"## {prec}: nodes kept in float",
                "",
                "| node | op | local error | agreement after | max drift after |",
                "|---|---|---|---|---|",
            ]
            for s in steps:
                lines.append(
                    f"| {s['node']} | {s['op_type']} | {_fmt(s['local_error'])} | "
                    f"{_fmt(s.get('agreement'))} | {_fmt(s.get('max_abs_drift'))} |"
                )
        timings = v.get("cpu_candidates")
        if timings:
            lines += [
                "",
                f"## {prec}: CPU layouts timed",
                "",
                "| layout | ms (batch 1) | passed |",
                "|---|---|---|",
            ]
            for t in timings:
                lines.append(f"| {t['layout']} | {_fmt(t['ms'])} | {t['passed']} |")
    return "\n".join(lines) + "\n"


def _pyplot() -> Any:
    if not is_available("matplotlib"):
        logger.warning("matplotlib is not installed; quantization plots skipped")
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_sensitivity(path: Path, errors: Sequence[Mapping[str, Any]], top: int = 20) -> Path | None:
    """Bar chart of per-node local and accumulated error; ``None`` if matplotlib is missing."""
    plt = _pyplot()
    if plt is None or not errors:
        return None
    rows = list(errors)[:top]
    fig, ax = plt.subplots(figsize=(8, 0.3 * len(rows) + 1.5))
    y = np.arange(len(rows))
    ax.barh(y, [r["rel_error"] for r in rows], color="#c8c8e8", label="relative error")
    ax.barh(y, [r["local_error"] for r in rows], color="#4040a0", label="added by the node")
    ax.set_yticks(y, [f"{r['node']} ({r['op_type']})" for r in rows], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("relative error vs FP32")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_scatter(
    path: Path, reference: NDArray[Any], candidate: NDArray[Any], label: str
) -> Path | None:
    """FP32-vs-candidate scatter of one output's values; ``None`` if matplotlib is missing."""
    plt = _pyplot()
    if plt is None:
        return None
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    r, c = np.ravel(reference), np.ravel(candidate)
    ax.scatter(r, c, s=6, alpha=0.6)
    lo, hi = float(min(r.min(), c.min())), float(max(r.max(), c.max()))
    ax.plot([lo, hi], [lo, hi], color="grey", lw=0.8)
    ax.set_xlabel("FP32")
    ax.set_ylabel(label)
    ax.set_title(f"FP32 vs {label}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
