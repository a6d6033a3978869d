"""Evaluation metrics in plain NumPy: one-vs-rest AUROC, accuracy, severity MAE.

AUROC is the Mann–Whitney statistic: the probability that a random positive scores higher
than a random negative, ties counting one half, computed from average ranks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from medfuse.errors import UsageError

__all__ = ["auroc", "classification_metrics", "macro_auroc_ovr", "severity_mae_ml"]


def _average_ranks(x: NDArray[np.float64]) -> NDArray[np.float64]:
    """1-based ranks of ``x``, ties sharing their average rank."""
    order = np.argsort(x, kind="mergesort")
    sorted_x = x[order]
    ranks = np.empty(len(x), dtype=np.float64)
    i = 0
    while i < len(x):
        j = i
        while j + 1 < len(x) and sorted_x[j + 1] == sorted_x[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return ranks


def auroc(positive: NDArray[np.bool_], scores: NDArray[np.floating[Any]]) -> float:
    """Area under the ROC curve of ``scores`` for the binary labels ``positive``.

    Returns NaN when there is no positive or no negative.
    """
    pos = np.asarray(positive, dtype=bool)
    s = np.asarray(scores, dtype=np.float64)
    if pos.shape != s.shape or pos.ndim != 1:
        raise UsageError(f"auroc: labels {pos.shape} and scores {s.shape} must be equal 1-D shapes")
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = _average_ranks(s)
    u = ranks[pos].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def macro_auroc_ovr(
    labels: NDArray[np.integer[Any]], scores: NDArray[np.floating[Any]], class_names: Sequence[str]
) -> tuple[float, dict[str, float]]:
    """Macro one-vs-rest AUROC over the classes that have positives and negatives.

    Parameters
    ----------
    labels:
        Class index per sample, ``(N,)``.
    scores:
        Score per sample and class, ``(N, C)`` (probabilities or logits).
    class_names:
        Names of the ``C`` classes.

    Returns
    -------
    tuple[float, dict[str, float]]
        The macro mean (NaN if no class qualifies) and the per-class AUROCs (NaN where a class
        has no positive or no negative).
    """
    y = np.asarray(labels)
    s = np.asarray(scores)
    if s.ndim != 2 or s.shape != (len(y), len(class_names)):
        raise UsageError(
            f"macro_auroc_ovr: scores {s.shape} must be ({len(y)}, {len(class_names)})"
        )
    per = {name: auroc(y == c, s[:, c]) for c, name in enumerate(class_names)}
    valid = [v for v in per.values() if not np.isnan(v)]
    return (float(np.mean(valid)) if valid else float("nan")), per


def severity_mae_ml(
    predicted_log1p: NDArray[np.floating[Any]], true_ml: NDArray[np.floating[Any]]
) -> float:
    """Mean absolute error in mL of ``expm1(predicted_log1p)`` (clipped at 0) against ``true_ml``."""
    from medfuse.bundle.units import OutputUnit  # the one log1p(mL) -> mL conversion

    pred = OutputUnit("mL", "log1p").convert_array(np.asarray(predicted_log1p).reshape(-1))
    true = np.asarray(true_ml, dtype=np.float64).reshape(-1)
    if pred.shape != true.shape:
        raise UsageError(f"severity_mae_ml: {pred.shape} predictions for {true.shape} targets")
    return float(np.mean(np.abs(pred - true))) if len(true) else float("nan")


def classification_metrics(
    labels: NDArray[np.integer[Any]],
    logits: NDArray[np.floating[Any]],
    severity_log1p: NDArray[np.floating[Any]],
    severity_ml: NDArray[np.floating[Any]],
    class_names: Sequence[str],
) -> dict[str, Any]:
    """AUROC (macro and per class), accuracy and severity MAE of one evaluation set."""
    logits64 = np.asarray(logits, dtype=np.float64)
    z = logits64 - logits64.max(axis=1, keepdims=True)
    prob = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    macro, per = macro_auroc_ovr(labels, prob, class_names)
    return {
        "n": len(labels),
        "auroc_macro": macro,
        "auroc_per_class": per,
        "accuracy": float(np.mean(prob.argmax(axis=1) == np.asarray(labels)))
        if len(labels)
        else float("nan"),
        "severity_mae_ml": severity_mae_ml(severity_log1p, severity_ml),
    }
