"""The gate's arithmetic on constructed outputs (expected numbers computed here by hand)."""

from __future__ import annotations

import numpy as np

from medfuse.calibration import GateConfig, evaluate_gate
from medfuse.models import model_spec

SPEC = model_spec("reference")


def _outputs(diag: list[list[float]], sev: list[float]) -> dict[str, np.ndarray]:
    return {"diagnosis": np.array(diag, np.float32), "severity": np.array(sev, np.float32)[:, None]}


REF = _outputs([[3, 0, 0, 0], [0, 3, 0, 0], [0, 0, 3, 0], [0, 0, 0, 3]], [0.0, 1.0, 2.0, 3.0])


def test_identical_outputs_pass() -> None:
    res = evaluate_gate(SPEC, REF, REF, GateConfig())
    assert res.passed and res.metrics["outputs"]["diagnosis"]["agreement"] == 1.0


def test_one_flip_in_four_fails_agreement() -> None:
    cand = _outputs([[3, 0, 0, 0], [0, 3, 0, 0], [0, 0, 3, 0], [4, 0, 0, 3]], [0.0, 1.0, 2.0, 3.0])
    res = evaluate_gate(SPEC, REF, cand, GateConfig(min_agreement=0.99))
    assert not res.passed
    assert res.metrics["outputs"]["diagnosis"]["agreement"] == 0.75
    assert res.metrics["outputs"]["diagnosis"]["max_abs_drift"] == 4.0
    # the flipped sample's FP32 logits were [0, 0, 0, 3]: top-1 minus top-2 = 3
    assert res.metrics["outputs"]["diagnosis"]["disagreements"] == 1
    assert res.metrics["outputs"]["diagnosis"]["max_fp32_margin_flipped"] == 3.0
    assert evaluate_gate(SPEC, REF, cand, GateConfig(min_agreement=0.75, max_auroc_drop=1.0)).passed


def test_no_flip_has_no_margin() -> None:
    m = evaluate_gate(SPEC, REF, REF, GateConfig()).metrics["outputs"]["diagnosis"]
    assert m["disagreements"] == 0 and m["max_fp32_margin_flipped"] is None


def test_auroc_drop_and_mae_change() -> None:
    labels = np.array([0, 1, 2, 3])
    truth_ml = np.expm1(np.array([0.0, 1.0, 2.0, 3.0]))
    # softmax P(class 3): sample 3 (positive) 0.096 < sample 2 (negative) 0.110: AUROC 1 → 2/3
    cand = _outputs([[3, 0, 0, 0], [0, 3, 0, 0], [0, 0, 3, 1], [2, 0, 0, 0]], [0.0, 1.0, 2.0, 3.5])
    res = evaluate_gate(
        SPEC,
        REF,
        cand,
        GateConfig(min_agreement=0.0, max_auroc_drop=0.01),
        diagnosis=labels,
        severity=truth_ml,
    )
    d = res.metrics["outputs"]["diagnosis"]
    assert d["auroc_fp32"] == 1.0
    assert np.isclose(d["auroc_drop"], 1.0 - (3 * 1.0 + 2 / 3) / 4)
    s = res.metrics["outputs"]["severity"]
    assert np.isclose(s["mae_change"], (np.expm1(3.5) - np.expm1(3.0)) / 4)
    assert not res.passed and any("AUROC" in f for f in res.failures)


def _chance_case(
    informative: bool,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], np.ndarray]:
    """200 samples; FP32 logits informative about the labels (AUROC ≈ 0.9) or pure noise; the
    candidate's logits are noise either way (a big AUROC drop when FP32 was informative)."""
    rng = np.random.default_rng(7)
    y = rng.integers(0, 4, 200)
    noise = rng.standard_normal((200, 4))
    ref = noise + (np.eye(4)[y] * 2.5 if informative else 0.0)
    cand = rng.standard_normal((200, 4))
    sev = np.zeros((200, 1), np.float32)
    return (
        {"diagnosis": ref.astype(np.float32), "severity": sev},
        {"diagnosis": cand.astype(np.float32), "severity": sev},
        y,
    )


def test_fp32_at_chance_skips_the_auroc_criterion_only() -> None:
    from medfuse.calibration.gate import at_chance

    gate = GateConfig(min_agreement=0.0, max_auroc_drop=0.01)
    ref, cand, y = _chance_case(informative=True)
    res = evaluate_gate(SPEC, ref, cand, gate, diagnosis=y)
    assert not res.passed and "AUROC drop" in res.failures[0] and not at_chance(res)

    ref, cand, y = _chance_case(informative=False)
    res = evaluate_gate(SPEC, ref, cand, gate, diagnosis=y)
    m = res.metrics["outputs"]["diagnosis"]
    chance = res.metrics["fp32_at_chance"]
    assert res.passed and at_chance(res) and m["auroc_gated"] is False
    assert chance["ci95"][0] <= 0.5 <= chance["ci95"][1] or chance["auroc_fp32"] < 0.55
    assert m["auroc_fp32_ci95"] == chance["ci95"]
    # agreement still applies at chance
    strict = evaluate_gate(SPEC, ref, cand, GateConfig(min_agreement=0.99), diagnosis=y)
    assert not strict.passed and "agreement" in strict.failures[0] and at_chance(strict)
