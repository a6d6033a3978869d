"""``medfuse.benchmarks.trtexec``: the summary parser on recorded trtexec output, the command line,
finding trtexec, and running it (a stand-in script replays a recording: no trtexec here).

Expected numbers are read off the recorded logs (fixtures/trtexec/, sources in SOURCES.md).
"""

from __future__ import annotations

import json
import stat
import sys
from pathlib import Path

import pytest

from medfuse.benchmarks.trtexec import (
    find_trtexec,
    parse_trtexec_output,
    run_trtexec,
    shapes_spec,
    trtexec_command,
)
from medfuse.errors import BackendError, UsageError

FIXTURES = Path(__file__).parent / "fixtures" / "trtexec"


def _log(name: str) -> str:
    return (FIXTURES / name).read_text()


def _without(text: str, fragment: str) -> str:
    return "\n".join(ln for ln in text.splitlines() if fragment not in ln)


# -- the parser on real output ------------------------------------------------------------------


def test_trt86_loadengine_summary() -> None:
    s = parse_trtexec_output(_log("trtexec-8.6.0-loadengine-shapes.log"))
    assert s.throughput_qps == 21009.2
    assert (s.latency.min_ms, s.latency.max_ms) == (0.0490112, 0.617065)
    assert (s.latency.mean_ms, s.latency.median_ms) == (0.0533242, 0.0517578)
    assert s.latency.percentiles_ms == ((90.0, 0.0532227), (95.0, 0.053772), (99.0, 0.0630798))
    assert s.gpu_compute.median_ms == 0.0439453
    assert s.enqueue is not None and s.enqueue.percentile(95) == 0.0280762
    assert s.h2d is not None and s.h2d.median_ms == 0.00415039
    assert s.d2h is not None and s.d2h.mean_ms == 0.00392396
    assert s.end_to_end is None
    assert (s.total_host_walltime_s, s.total_gpu_compute_s) == (3.00012, 2.84346)
    assert (s.queries, s.warmup_queries) == (63030, 4141)
    assert s.tensorrt_version == "8.6.0"
    assert s.passed is True


def test_verbose_explanations_after_the_summary_are_not_read_as_metrics() -> None:
    # the 8.6.0 log ends with "[V] Latency: the summation of ..." and "[V] Throughput: the ..."
    s = parse_trtexec_output(_log("trtexec-8.6.0-loadengine-shapes.log"))
    assert s.latency.median_ms == 0.0517578 and s.throughput_qps == 21009.2
    assert s.warnings == (
        "* GPU compute time is unstable, with coefficient of variance = 44.3558%.",
        "If not already in use, locking GPU clock frequency or adding --useSpinWait may improve "
        "the stability.",
    )


def test_trt10_loadengine_summary_with_output_dump_after_it() -> None:
    s = parse_trtexec_output(_log("trtexec-10.14.1-loadengine.log"))
    assert s.throughput_qps == 14062.9
    assert s.latency.median_ms == 0.0571289
    assert s.latency.percentile(95) == 0.0749512
    assert s.gpu_compute.percentile(99) == 0.202759
    assert s.d2h is not None and s.d2h.max_ms == 0.0443726
    assert (s.queries, s.warmup_queries) == (42190, 2373)
    assert s.tensorrt_version == "10.14.1" and s.passed is True
    assert len(s.warnings) == 4 and s.warnings[0].startswith("* Throughput may be bound")


def test_trt10_16_summary() -> None:
    s = parse_trtexec_output(_log("trtexec-10.16.0-onnx.log"))
    assert s.throughput_qps == 18392.0
    assert (s.latency.min_ms, s.latency.max_ms, s.latency.median_ms) == (
        0.0334473,
        0.882324,
        0.0386963,
    )
    assert s.gpu_compute.mean_ms == 0.0334352
    assert s.total_gpu_compute_s == 1.84486
    assert s.tensorrt_version == "10.16.0"


def test_older_summary_with_end_to_end_line_and_one_percentile() -> None:
    s = parse_trtexec_output(_log("trtexec-2022-end-to-end-summary.log"))
    assert s.throughput_qps == 37418.4
    assert s.end_to_end is not None and s.end_to_end.median_ms == 0.0224609
    assert s.latency.percentiles_ms == ((99.0, 0.0307159),)
    assert s.latency.percentile(90) is None
    assert s.h2d is not None and s.h2d.to_dict() == {
        "min_ms": 0.0,
        "max_ms": 0.0,
        "mean_ms": 0.0,
        "median_ms": 0.0,
        "p99_ms": 0.0,
    }
    # only the summary block was recorded: no banner, no version, no query counts
    assert (s.tensorrt_version, s.passed, s.queries) == (None, None, None)


def test_no_summary_is_an_error_that_names_the_cause() -> None:
    with pytest.raises(
        BackendError, match=r"no '=== Performance summary ===' .*--separateProfileRun"
    ):
        parse_trtexec_output(_log("trtexec-10.16.0-dumpprofile-no-summary.log"))


def test_summary_without_gpu_compute_time_is_an_error() -> None:
    text = _without(_log("trtexec-10.14.1-loadengine.log"), "] GPU Compute Time:")
    with pytest.raises(BackendError, match="lacks GPU Compute Time"):
        parse_trtexec_output(text)


@pytest.mark.parametrize(
    ("name", "version"),
    [
        ("trtexec-8.6.0-loadengine-shapes.log", "8.6.0"),
        ("trtexec-10.14.1-loadengine.log", "10.14.1"),
    ],
)
def test_version_from_the_banner_when_no_version_line(name: str, version: str) -> None:
    # [TensorRT v8600] / [TensorRT v101401]: NV_TENSORRT_VERSION's two encodings
    text = _without(_log(name), "TensorRT version:")
    assert parse_trtexec_output(text).tensorrt_version == version


def test_the_last_summary_wins() -> None:
    text = _log("trtexec-2022-end-to-end-summary.log") + _log("trtexec-10.16.0-onnx.log")
    s = parse_trtexec_output(text)
    assert s.throughput_qps == 18392.0 and s.end_to_end is None


def test_windows_line_endings() -> None:
    text = _log("trtexec-10.14.1-loadengine.log").replace("\n", "\r\n")
    assert parse_trtexec_output(text).latency.median_ms == 0.0571289


def test_failed_banner() -> None:
    text = _log("trtexec-10.16.0-onnx.log").replace("&&&& PASSED", "&&&& FAILED")
    assert parse_trtexec_output(text).passed is False


def test_to_dict_is_json_ready() -> None:
    d = parse_trtexec_output(_log("trtexec-10.16.0-onnx.log")).to_dict()
    back = json.loads(json.dumps(d, allow_nan=False))
    assert back["latency"]["p99_ms"] == 0.144043
    assert back["end_to_end"] is None
    assert back["wall_ms_per_query"] == pytest.approx(1000.0 / 18392.0)
    assert back["tensorrt_version"] == "10.16.0"


# -- the command line -----------------------------------------------------------------------------


def test_shapes_spec() -> None:
    assert shapes_spec({"ct": (1, 2, 32, 64, 64), "presence": [1, 1]}) == (
        "ct:1x2x32x64x64,presence:1x1"
    )


def test_shapes_spec_quotes_names_with_colons_or_commas() -> None:
    assert shapes_spec({"input:0": (1, 3)}) == "'input:0':1x3"
    assert shapes_spec({"a,b": (4,)}) == "'a,b':4"


@pytest.mark.parametrize("shapes", [{"it's": (1,)}, {"": (1,)}, {"x": (-1, 3)}])
def test_shapes_spec_refuses_what_trtexec_cannot_take(shapes: dict[str, tuple[int, ...]]) -> None:
    with pytest.raises(UsageError):
        shapes_spec(shapes)


def test_trtexec_command() -> None:
    argv = trtexec_command(
        "/usr/src/tensorrt/bin/trtexec",
        Path("/b/engines/k.plan"),
        shapes={"ct": (1, 2, 4, 8, 8)},
        iterations=300,
        warmup_ms=500,
    )
    assert argv == [
        "/usr/src/tensorrt/bin/trtexec",
        "--loadEngine=/b/engines/k.plan",
        "--shapes=ct:1x2x4x8x8",
        "--iterations=300",
        "--warmUp=500",
        "--duration=0",
    ]


def test_trtexec_command_cuda_graph_and_static_shapes() -> None:
    argv = trtexec_command("trtexec", "e.plan", iterations=5, cuda_graph=True)
    assert argv == [
        "trtexec",
        "--loadEngine=e.plan",
        "--iterations=5",
        "--warmUp=200",
        "--duration=0",
        "--useCudaGraph",
    ]


@pytest.mark.parametrize(("iterations", "warmup_ms"), [(0, 200), (10, -1)])
def test_trtexec_command_refuses_bad_counts(iterations: int, warmup_ms: int) -> None:
    with pytest.raises(UsageError):
        trtexec_command("trtexec", "e.plan", iterations=iterations, warmup_ms=warmup_ms)


# -- finding and running trtexec ----------------------------------------------------------------


def _executable(path: Path, body: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_find_trtexec_on_path_first(tmp_path: Path) -> None:
    on_path = _executable(tmp_path / "bin" / "trtexec", "#!/bin/sh\n")
    fallback = _executable(tmp_path / "tensorrt" / "bin" / "trtexec", "#!/bin/sh\n")
    found = find_trtexec(str(on_path.parent), extra_dirs=[fallback.parent])
    assert found == on_path


def test_find_trtexec_in_the_jetpack_folder(tmp_path: Path) -> None:
    fallback = _executable(tmp_path / "tensorrt" / "bin" / "trtexec", "#!/bin/sh\n")
    assert find_trtexec(str(tmp_path / "empty"), extra_dirs=[fallback.parent]) == fallback


def test_find_trtexec_none_and_not_executable(tmp_path: Path) -> None:
    plain = tmp_path / "bin" / "trtexec"
    plain.parent.mkdir()
    plain.write_text("not executable")
    assert find_trtexec(str(tmp_path / "empty"), extra_dirs=[plain.parent]) is None


def _stand_in(tmp_path: Path, fixture: str, code: int = 0) -> Path:
    """A script that prints a recorded trtexec log and exits with ``code``."""
    log = FIXTURES / fixture
    return _executable(
        tmp_path / "trtexec",
        f"#!{sys.executable}\nimport sys\nsys.stdout.write(open({str(log)!r}).read())\n"
        f"sys.exit({code})\n",
    )


def test_run_trtexec_parses_what_it_prints(tmp_path: Path) -> None:
    exe = _stand_in(tmp_path, "trtexec-10.14.1-loadengine.log")
    run = run_trtexec(trtexec_command(exe, tmp_path / "e.plan", iterations=10))
    assert run.returncode == 0 and run.seconds >= 0
    assert run.summary.latency.median_ms == 0.0571289


def test_run_trtexec_failure_quotes_the_last_lines(tmp_path: Path) -> None:
    exe = _stand_in(tmp_path, "trtexec-10.16.0-dumpprofile-no-summary.log", code=1)
    with pytest.raises(BackendError, match=r"exited with code 1(.|\n)*&&&& PASSED"):
        run_trtexec([str(exe)])


def test_run_trtexec_without_summary(tmp_path: Path) -> None:
    exe = _stand_in(tmp_path, "trtexec-10.16.0-dumpprofile-no-summary.log")
    with pytest.raises(BackendError, match="no '=== Performance summary ==='"):
        run_trtexec([str(exe)])


def test_run_trtexec_that_cannot_start(tmp_path: Path) -> None:
    with pytest.raises(BackendError, match="could not be started"):
        run_trtexec([str(tmp_path / "missing" / "trtexec")])


def test_run_trtexec_timeout(tmp_path: Path) -> None:
    exe = _executable(tmp_path / "trtexec", f"#!{sys.executable}\nimport time\ntime.sleep(30)\n")
    with pytest.raises(BackendError, match=r"ran past 0\.5 s"):
        run_trtexec([str(exe)], timeout_s=0.5)
