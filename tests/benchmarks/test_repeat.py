"""Repeatability check on real results: two runs of the runner on a tiny ONNX bundle here.

The expected differences and verdicts are computed in the tests from the JSON numbers (and,
for the constructed pairs, from the numbers the test sets), not by the module under test.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from helpers.onnx_bundles import make_bundle
from medfuse.benchmarks.repeat import (
    check_repeatability,
    repeat_differences,
    repeat_markdown,
)
from medfuse.benchmarks.report import BenchReport, write_report
from medfuse.benchmarks.runner import BenchConfig, run_benchmark
from medfuse.errors import UsageError

Doc = dict[str, Any]


@pytest.fixture(scope="module", name="runs")
def _runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Doc, Doc]:
    """Two runs of the same benchmark, back to back, as the JSON documents they write."""
    root = tmp_path_factory.mktemp("repeat")
    bundle = make_bundle(root)
    config = BenchConfig(
        bundle=bundle.path,
        backends=("onnxruntime",),
        variants=("fp32",),
        batches=(1, 2),
        window_ms=40.0,
        max_seconds=0.5,
        device="cpu",
        threads=1,
        power=False,
    )
    docs = []
    for i in range(2):
        path = write_report(run_benchmark(config), root / f"run{i}.json")
        docs.append(json.loads(path.read_text()))
    return docs[0], docs[1]


def _report(doc: Doc) -> BenchReport:
    return BenchReport.from_dict(copy.deepcopy(doc))


def _expected(docs: list[Doc], batch: int) -> tuple[float, float | None, str]:
    """(max p50 - min p50) / min p50, the largest reported spread and the verdict, from JSON."""
    rows = [next(r for r in d["results"] if r["batch"] == batch) for d in docs]
    p50 = [r["latency_ms"]["p50"] for r in rows]
    spreads = [r["stability"]["spread"] for r in rows]
    difference = (max(p50) - min(p50)) / min(p50)
    if None in spreads:
        return difference, None, "unknown"
    if difference > max(spreads):
        return difference, max(spreads), "beyond"
    stable = all(r["stability"]["stable"] for r in rows)
    return difference, max(spreads), "within" if stable else "unknown"


def _set(
    doc: Doc,
    batch: int,
    *,
    p50: float | None = None,
    spread: float | None = 0.0,
    stable: bool = True,
) -> None:
    row = next(r for r in doc["results"] if r["batch"] == batch)
    if p50 is not None:
        row["latency_ms"]["p50"] = p50
    row["stability"].update(spread=spread, stable=stable)


def test_two_runs_here_are_repeats(runs: tuple[Doc, Doc]) -> None:
    a, b = runs
    assert repeat_differences([_report(a), _report(b)]) == []
    check = check_repeatability([_report(a), _report(b)])
    assert check.runs == 2 and check.unmatched == ()
    assert [(r.backend, r.variant, r.batch, r.mode) for r in check.rows] == [
        ("onnxruntime", "fp32", 1, "tensor"),
        ("onnxruntime", "fp32", 2, "tensor"),
    ]
    for row in check.rows:
        difference, spread, verdict = _expected([a, b], row.batch)
        assert row.difference == pytest.approx(difference, rel=1e-12)
        assert row.spread == (None if spread is None else pytest.approx(spread))
        assert row.verdict == verdict
        assert f"{difference * 100:.2f}%" in row.sentence()
    assert check.verdict in {"within", "beyond", "unknown"}
    assert json.loads(json.dumps(check.to_dict()))["rows"][0]["verdict"] == check.rows[0].verdict


def test_other_gpu_is_refused_as_a_repeat(runs: tuple[Doc, Doc]) -> None:
    a, b = runs
    other = copy.deepcopy(b)
    other["fingerprint"]["device"].update(
        {"kind": "gpu", "name": "NVIDIA H100 80GB HBM3", "compute_capability": "9.0"}
    )
    diffs = repeat_differences([_report(a), _report(other)])
    assert any(d.startswith("device.name:") and "NVIDIA H100 80GB HBM3" in d for d in diffs)
    assert any(d.startswith("device.kind:") for d in diffs)
    with pytest.raises(UsageError, match=r"not repeats.*device\.name: .*NVIDIA H100 80GB HBM3"):
        check_repeatability([_report(a), _report(other)])


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        (("fingerprint", "host_id"), "0000000000000000", "host_id"),
        (("fingerprint", "cpu_model"), "Intel Xeon Platinum 8480+", "cpu_model"),
        (("fingerprint", "onnxruntime"), "1.0.0", "onnxruntime"),
        (("settings", "threads"), 7, "settings.threads"),
        (("fingerprint", "bundle", "variants", "fp32"), "ef" * 32, "bundle"),
    ],
)
def test_any_machine_software_setting_or_bundle_change_is_not_a_repeat(
    runs: tuple[Doc, Doc], path: tuple[str, ...], value: Any, field: str
) -> None:
    a, b = runs
    other = copy.deepcopy(b)
    target = other
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    diffs = repeat_differences([_report(a), _report(other)])
    assert [d.split(":")[0] for d in diffs] == [field]
    with pytest.raises(UsageError, match=field):
        check_repeatability([_report(a), _report(other)])


def test_p50s_apart_by_more_than_the_spread_are_beyond(runs: tuple[Doc, Doc]) -> None:
    a, b = copy.deepcopy(runs[0]), copy.deepcopy(runs[0])
    # batch 1: 10 % apart, spreads ±2 % and ±3 % -> beyond; batch 2: 1 % apart -> within
    _set(a, 1, p50=20.0, spread=0.02)
    _set(b, 1, p50=22.0, spread=0.03)
    _set(a, 2, p50=40.0, spread=0.02)
    _set(b, 2, p50=40.4, spread=0.03)
    check = check_repeatability([_report(a), _report(b)])
    one, two = check.rows
    assert one.p50_ms == (20.0, 22.0)
    assert one.difference == pytest.approx(2.0 / 20.0)
    assert one.spread == pytest.approx(0.03)
    assert one.verdict == "beyond"
    assert (
        "differs by 10.00% between runs (20 / 22 ms); reported spread ±3.00% → beyond spread"
        in (one.sentence())
    )
    assert "not idle" in one.sentence()
    assert two.difference == pytest.approx(0.4 / 40.0) and two.verdict == "within"
    assert check.verdict == "beyond"
    assert "1 of 2 combinations" in check.summary()
    md = repeat_markdown(check)
    assert "| onnxruntime | fp32 | 1 | tensor | 20, 22 | 10.00% | ±3.00% | beyond |" in md


def test_difference_equal_to_the_spread_is_within(runs: tuple[Doc, Doc]) -> None:
    a, b = copy.deepcopy(runs[0]), copy.deepcopy(runs[0])
    for doc, p50 in ((a, 10.0), (b, 10.5)):
        _set(doc, 1, p50=p50, spread=0.05)
        _set(doc, 2, p50=p50, spread=0.05)
    assert {r.verdict for r in check_repeatability([_report(a), _report(b)]).rows} == {"within"}


def test_three_runs_use_the_widest_pair_and_the_largest_spread(runs: tuple[Doc, Doc]) -> None:
    docs = [copy.deepcopy(runs[0]) for _ in range(3)]
    for doc, p50, spread in zip(docs, (10.0, 10.3, 10.1), (0.01, 0.02, 0.025), strict=True):
        _set(doc, 1, p50=p50, spread=spread)
    row = check_repeatability([_report(d) for d in docs]).rows[0]
    assert row.difference == pytest.approx(0.3 / 10.0)
    assert row.spread == pytest.approx(0.025) and row.verdict == "beyond"


def test_missing_spread_cannot_be_judged(runs: tuple[Doc, Doc]) -> None:
    a, b = copy.deepcopy(runs[0]), copy.deepcopy(runs[0])
    _set(a, 1, spread=0.02)
    _set(b, 1, spread=None)
    _set(a, 2, spread=0.5)
    _set(b, 2, spread=0.5)
    check = check_repeatability([_report(a), _report(b)])
    assert check.rows[0].verdict == "unknown" and "run #2 reported no spread" in (
        check.rows[0].sentence()
    )
    assert check.verdict == "unknown"


def test_a_run_that_did_not_settle_confirms_nothing(runs: tuple[Doc, Doc]) -> None:
    a, b = copy.deepcopy(runs[0]), copy.deepcopy(runs[0])
    # batch 1: 2 % apart inside an unstable run's ±20 % -> unknown; batch 2: 30 % apart -> beyond
    _set(a, 1, p50=10.0, spread=0.02)
    _set(b, 1, p50=10.2, spread=0.20, stable=False)
    _set(a, 2, p50=10.0, spread=0.02)
    _set(b, 2, p50=13.0, spread=0.20, stable=False)
    one, two = check_repeatability([_report(a), _report(b)]).rows
    assert one.verdict == "unknown" and "run #2 did not meet the stability rule" in one.sentence()
    assert two.verdict == "beyond" and two.difference == pytest.approx(0.3)


def test_only_common_combinations_are_compared(runs: tuple[Doc, Doc]) -> None:
    a, b = copy.deepcopy(runs[0]), copy.deepcopy(runs[1])
    b["results"] = [r for r in b["results"] if r["batch"] == 1]
    check = check_repeatability([_report(a), _report(b)])
    assert [r.batch for r in check.rows] == [1]
    assert check.unmatched == ("onnxruntime / fp32 / batch 2 / tensor",)
    b["results"] = []
    a["results"] = [r for r in a["results"] if r["batch"] == 2]
    with pytest.raises(UsageError, match="share no"):
        check_repeatability([_report(a), _report(b)])


def test_needs_two_results(runs: tuple[Doc, Doc]) -> None:
    with pytest.raises(UsageError, match="at least two"):
        check_repeatability([_report(runs[0])])


def test_same_label_on_different_hosts_is_told_apart(runs: tuple[Doc, Doc]) -> None:
    from medfuse.benchmarks.compare import compare_reports

    a, b = runs
    other = copy.deepcopy(b)
    other["fingerprint"]["host_id"] = "0123456789abcdef"
    devices = {r.device for r in compare_reports([_report(a), _report(other)])}
    label = _report(a).device_label
    assert devices == {
        f"{label} [host {a['fingerprint']['host_id'][:8]}]",
        f"{label} [host 01234567]",
    }
    same = {r.device for r in compare_reports([_report(a), _report(b)])}
    assert same == {label, f"{label} #2"}
