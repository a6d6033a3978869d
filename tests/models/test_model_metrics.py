"""AUROC and MAE against brute-force definitions computed here."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from medfuse.errors import UsageError
from medfuse.models.metrics import auroc, classification_metrics, macro_auroc_ovr, severity_mae_ml


def _pairwise_auroc(pos: np.ndarray, s: np.ndarray) -> float:
    wins = 0.0
    pairs = 0
    for i, j in itertools.product(np.flatnonzero(pos), np.flatnonzero(~pos)):
        pairs += 1
        wins += 1.0 if s[i] > s[j] else 0.5 if s[i] == s[j] else 0.0
    return wins / pairs


def test_auroc_matches_pairwise_definition_with_ties() -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        pos = rng.random(40) < 0.3
        s = rng.integers(0, 6, size=40).astype(float)  # many ties
        if pos.any() and (~pos).any():
            assert auroc(pos, s) == pytest.approx(_pairwise_auroc(pos, s), abs=1e-12)


def test_auroc_extremes_and_degenerate() -> None:
    pos = np.array([False, False, True, True])
    assert auroc(pos, np.array([0.1, 0.2, 0.8, 0.9])) == 1.0
    assert auroc(pos, np.array([0.9, 0.8, 0.2, 0.1])) == 0.0
    assert auroc(pos, np.ones(4)) == 0.5
    assert np.isnan(auroc(np.ones(3, bool), np.arange(3.0)))
    with pytest.raises(UsageError):
        auroc(pos, np.ones(3))


def test_macro_auroc_skips_absent_classes() -> None:
    y = np.array([0, 0, 1, 1])
    s = np.array([[0.9, 0.1, 0.0], [0.8, 0.2, 0.0], [0.3, 0.7, 0.0], [0.4, 0.6, 0.0]])
    macro, per = macro_auroc_ovr(y, s, ["a", "b", "c"])
    assert per["a"] == 1.0 and per["b"] == 1.0 and np.isnan(per["c"])
    assert macro == 1.0


def test_severity_mae_in_ml() -> None:
    pred = np.log1p(np.array([0.0, 10.0, 5.0]))
    assert severity_mae_ml(pred, np.array([1.0, 10.0, 7.0])) == pytest.approx(1.0)
    assert severity_mae_ml(np.array([-3.0]), np.array([0.0])) == 0.0  # negative volumes clip to 0


def test_classification_metrics_keys() -> None:
    m = classification_metrics(
        np.array([0, 1, 2, 3]), np.eye(4) * 5, np.zeros(4), np.zeros(4), ["n", "c", "t", "k"]
    )
    assert m["auroc_macro"] == 1.0 and m["accuracy"] == 1.0 and m["n"] == 4
    assert m["severity_mae_ml"] == 0.0
