"""The accuracy gate: a candidate variant against FP32 on held-out studies and golden vectors.

Figures (per output): max and mean absolute drift; for classification outputs top-1 agreement
with FP32, the number of samples whose top-1 changed and the largest FP32 top-1/top-2 logit gap
among them (were only near-ties flipped?); with labels, macro one-vs-rest AUROC (softmax
probabilities) of FP32 and of the candidate and its drop; for regression outputs the MAE against the labels and its change
(``log1p(mL)`` outputs are compared in mL). AUROC comes from :mod:`medfuse.models.metrics`
(NumPy only).

**FP32 at chance.** When FP32 itself is at chance on the held-out labels (macro AUROC below
``GateConfig.chance_auroc``, default 0.55, or the lower end of its 95 % bootstrap interval —
:data:`BOOTSTRAP` resamples, fixed seed — at or below 0.5), an AUROC drop is noise: the
criterion is skipped and said so (``fp32_at_chance`` with the AUROC and its interval in the
figures), top-1 agreement and drift still gate, and the candidates run no sensitivity search
(a model at chance has no accuracy for it to protect; a 5.5-minute search on a chance-level
model changed nothing).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from medfuse.bundle.spec import ModelSpec
from medfuse.calibration.config import GateConfig
from medfuse.models.metrics import macro_auroc_ovr, severity_mae_ml

__all__ = ["BOOTSTRAP", "GateResult", "at_chance", "chance_check", "evaluate_gate"]

BOOTSTRAP = 200
"""Bootstrap resamples of the FP32 AUROC interval (seeded: the same figures every run)."""


@dataclass(frozen=True)
class GateResult:
    """Whether a candidate passed, why not, and every figure measured."""

    passed: bool
    failures: tuple[str, ...]
    metrics: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"passed": self.passed, "failures": list(self.failures), **dict(self.metrics)}


def _softmax(x: NDArray[Any]) -> NDArray[np.float64]:
    z = np.asarray(x, dtype=np.float64)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    out: NDArray[np.float64] = e / e.sum(axis=1, keepdims=True)
    return out


def _max_margin(logits: NDArray[np.float64]) -> float | None:
    """Largest FP32 top-1 minus top-2 logit gap among ``logits`` (``None`` when empty).

    Of the samples whose top-1 changed: a small value says only near-ties flipped.
    """
    if not len(logits):
        return None
    top2 = np.sort(logits, axis=1)[:, -2:]
    return float((top2[:, 1] - top2[:, 0]).max())


def chance_check(
    diagnosis: NDArray[np.integer[Any]],
    probabilities: NDArray[np.float64],
    labels: tuple[str, ...],
    threshold: float,
) -> dict[str, Any]:
    """FP32's macro AUROC, its 95 % bootstrap interval, and whether that is chance level."""
    y = np.asarray(diagnosis)
    a, _ = macro_auroc_ovr(y, probabilities, labels)
    rng = np.random.default_rng(0)
    boots = []
    for _ in range(BOOTSTRAP):
        idx = rng.integers(0, len(y), len(y))
        b, _ = macro_auroc_ovr(y[idx], probabilities[idx], labels)
        boots.append(b)
    finite = np.asarray([b for b in boots if np.isfinite(b)], dtype=np.float64)
    lo, hi = (
        (float(np.percentile(finite, 2.5)), float(np.percentile(finite, 97.5)))
        if finite.size
        else (float("nan"), float("nan"))
    )
    chance = bool(np.isfinite(a) and (a < threshold or (np.isfinite(lo) and lo <= 0.5)))
    return {"auroc_fp32": a, "ci95": [lo, hi], "threshold": threshold, "at_chance": chance}


def at_chance(gate: GateResult) -> bool:
    """Whether the gate found FP32 at chance on the held-out set (see the module docstring)."""
    return bool(gate.metrics.get("fp32_at_chance"))


def evaluate_gate(
    spec: ModelSpec,
    reference: Mapping[str, NDArray[Any]],
    candidate: Mapping[str, NDArray[Any]],
    gate: GateConfig,
    *,
    diagnosis: NDArray[np.integer[Any]] | None = None,
    severity: NDArray[np.floating[Any]] | None = None,
    labelled: int | None = None,
) -> GateResult:
    """Compare ``candidate`` outputs with FP32 ``reference`` outputs and apply ``gate``.

    Parameters
    ----------
    spec:
        Model spec (output kinds, class labels, severity transform).
    reference, candidate:
        Output name → ``(N, …)`` arrays for the same N samples.
    gate:
        Thresholds.
    diagnosis, severity:
        Labels of the first ``labelled`` samples (class index; severity in the labels' unit).
    labelled:
        How many leading samples the labels cover (default: all of them).

    Returns
    -------
    GateResult
        ``passed`` when every gated figure is within its threshold.
    """
    failures: list[str] = []
    metrics: dict[str, Any] = {"outputs": {}}
    n_lab = labelled if labelled is not None else (len(diagnosis) if diagnosis is not None else 0)
    log1p = spec.extra.get("severity_transform") == "log1p_ml"
    for out in spec.outputs:
        ref = np.asarray(reference[out.name], dtype=np.float64)
        cand = np.asarray(candidate[out.name], dtype=np.float64)
        if ref.shape != cand.shape:
            failures.append(f"{out.name}: shape {list(cand.shape)} != FP32 {list(ref.shape)}")
            continue
        diff = np.abs(ref - cand)
        m: dict[str, Any] = {
            "n": int(ref.shape[0]),
            "max_abs_drift": float(diff.max(initial=0.0)),
            "mean_abs_drift": float(diff.mean()) if diff.size else 0.0,
        }
        if not np.all(np.isfinite(cand)):
            failures.append(f"{out.name}: non-finite values")
        if gate.max_logit_drift is not None and m["max_abs_drift"] > gate.max_logit_drift:
            failures.append(
                f"{out.name}: max drift {m['max_abs_drift']:.4g} > {gate.max_logit_drift:g}"
            )
        if out.kind == "classification" and ref.ndim == 2 and ref.shape[1] > 1:
            same = ref.argmax(axis=1) == cand.argmax(axis=1)
            agree = float(np.mean(same)) if len(ref) else 1.0
            m["agreement"] = agree
            m["disagreements"] = int((~same).sum())
            m["max_fp32_margin_flipped"] = _max_margin(ref[~same])
            if agree < gate.min_agreement:
                failures.append(f"{out.name}: top-1 agreement {agree:.4f} < {gate.min_agreement:g}")
            if diagnosis is not None and n_lab and out.labels:
                y = np.asarray(diagnosis)[:n_lab]
                chance = chance_check(y, _softmax(ref[:n_lab]), out.labels, gate.chance_auroc)
                a_ref = chance["auroc_fp32"]
                a_cand, _ = macro_auroc_ovr(y, _softmax(cand[:n_lab]), out.labels)
                drop = a_ref - a_cand
                m.update(auroc_fp32=a_ref, auroc=a_cand, auroc_drop=drop)
                m["auroc_fp32_ci95"] = chance["ci95"]
                if chance["at_chance"]:
                    m["auroc_gated"] = False
                    metrics["fp32_at_chance"] = {"output": out.name, **chance}
                elif np.isfinite(drop) and drop > gate.max_auroc_drop:
                    failures.append(f"{out.name}: AUROC drop {drop:.4f} > {gate.max_auroc_drop:g}")
        elif out.kind == "regression" and severity is not None and n_lab:
            truth = np.asarray(severity, dtype=np.float64)[:n_lab]
            if log1p:
                mae_ref = severity_mae_ml(ref[:n_lab], truth)
                mae_cand = severity_mae_ml(cand[:n_lab], truth)
            else:
                mae_ref = float(np.mean(np.abs(ref[:n_lab].reshape(-1) - truth)))
                mae_cand = float(np.mean(np.abs(cand[:n_lab].reshape(-1) - truth)))
            m.update(mae_fp32=mae_ref, mae=mae_cand, mae_change=mae_cand - mae_ref)
            limit = gate.max_severity_mae_increase
            if limit is not None and mae_cand - mae_ref > limit:
                failures.append(f"{out.name}: MAE +{mae_cand - mae_ref:.4g} > {limit:g}")
        metrics["outputs"][out.name] = m
    return GateResult(not failures, tuple(failures), metrics)
