"""The frozen configuration of a quantization run, in ONNX Runtime's quantization vocabulary.

ONNX Runtime's ``quantize_static`` takes an untyped ``extra_options`` dict; here every option is
a typed field of :class:`QuantizeConfig` (calibration) and :class:`GateConfig` (accuracy gate),
so a typo is an error, not a silently ignored key.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from medfuse.errors import UsageError

__all__ = [
    "DEFAULT_FP16_OP_BLOCK_LIST",
    "CalibrateMethod",
    "CpuCandidate",
    "GateConfig",
    "QuantFormat",
    "QuantType",
    "QuantizeConfig",
    "Target",
    "default_cache_dir",
]

CalibrateMethod = Literal["entropy", "minmax", "percentile"]
Target = Literal["tensorrt", "cpu", "both"]
QuantType = Literal["QInt8", "QUInt8"]
QuantFormat = Literal["QDQ"]

PRECISIONS = ("int8", "fp16")
_METHODS = ("entropy", "minmax", "percentile")
_TARGETS = ("tensorrt", "cpu", "both")

# Ops kept in FP32 inside an FP16 graph: normalisations, softmax, reductions, exp/log, pow.
DEFAULT_FP16_OP_BLOCK_LIST: tuple[str, ...] = (
    "BatchNormalization",
    "InstanceNormalization",
    "LayerNormalization",
    "GroupNormalization",
    "LpNormalization",
    "Softmax",
    "LogSoftmax",
    "ReduceMean",
    "ReduceSum",
    "ReduceSumSquare",
    "ReduceL2",
    "ReduceLogSumExp",
    "ReduceProd",
    "Exp",
    "Log",
    "Pow",
    "Sqrt",
    "Reciprocal",
    "Div",
    "Erf",
    "Range",
    "TopK",
    "NonMaxSuppression",
    "Resize",
)


def default_cache_dir() -> Path:
    """``calibration`` in :func:`medfuse._paths.cache_dir` (``$MEDFUSE_CACHE_DIR``, default
    ``~/.cache/medfuse``)."""
    from medfuse._paths import cache_dir

    return cache_dir("calibration")


@dataclass(frozen=True)
class CpuCandidate:
    """One Q/DQ layout tried for the ``int8-cpu`` variant (timed; the fastest passing one wins).

    Attributes
    ----------
    activation_type, weight_type:
        ONNX Runtime ``QuantType`` names of activations and weights.
    reduce_range:
        7-bit weights (ONNX Runtime's remedy for U8S8 saturation on x86 without VNNI).
    activation_symmetric:
        Symmetric activations (zero point 0).
    op_types:
        Quantize only these of :attr:`QuantizeConfig.op_types_to_quantize` (``None``: all of
        them). ``("Conv", "Add")`` quantizes the convolutions and residual Adds — the bulk of
        a CNN's time — and keeps the fusion attention and the heads' MatMul / Gemm in float.
    quantize_bias:
        Store Conv / Gemm biases as INT32 behind a DequantizeLinear (ONNX Runtime's quantizer
        default). Off on every layout: TensorRT's parser dequantizes only INT8 / FP8 / FP4 /
        INT4, and on ONNX Runtime's CPU provider float biases fuse into the same QLinearConv /
        QGemm kernels with bit-identical outputs and the same latency
        (``benchmarks/int8_bias.py``).
    """

    activation_type: QuantType = "QUInt8"
    weight_type: QuantType = "QInt8"
    reduce_range: bool = False
    activation_symmetric: bool = False
    op_types: tuple[str, ...] | None = None
    quantize_bias: bool = False

    @property
    def label(self) -> str:
        """Short name, e.g. ``"a=QUInt8 w=QInt8 rr=off"`` or ``"... ops=Conv,Add"``."""
        sym = " sym" if self.activation_symmetric else ""
        rr = "on" if self.reduce_range else "off"
        ops = f" ops={','.join(self.op_types)}" if self.op_types is not None else ""
        bias = " bias=int32" if self.quantize_bias else ""
        return f"a={self.activation_type} w={self.weight_type} rr={rr}{sym}{ops}{bias}"

    def quantized_ops(self, configured: Sequence[str]) -> tuple[str, ...]:
        """The op types this layout quantizes out of the ``configured`` ones."""
        if self.op_types is None:
            return tuple(configured)
        return tuple(o for o in configured if o in self.op_types)


DEFAULT_CPU_CANDIDATES: tuple[CpuCandidate, ...] = (
    CpuCandidate("QUInt8", "QInt8", reduce_range=False),
    CpuCandidate("QUInt8", "QInt8", reduce_range=False, op_types=("Conv", "Add")),
    CpuCandidate("QUInt8", "QInt8", reduce_range=True),
    CpuCandidate("QInt8", "QInt8", reduce_range=False, activation_symmetric=True),
)


@dataclass(frozen=True)
class GateConfig:
    """Thresholds a candidate variant must meet against FP32.

    Attributes
    ----------
    min_agreement:
        Least top-1 agreement with FP32 on every classification output (0–1).
    max_auroc_drop:
        Largest drop of macro one-vs-rest AUROC against FP32 on the held-out labels.
    max_severity_mae_increase:
        Largest increase of the regression outputs' MAE (``None``: reported, not gated).
    max_logit_drift:
        Largest absolute difference of any output value (``None``: reported, not gated).
    chance_auroc:
        FP32 counts as at chance on the held-out set when its macro AUROC is below this, or
        when the lower end of its 95 % bootstrap interval is at or below 0.5; then the AUROC
        criterion is skipped (agreement and drift still apply) and no sensitivity search runs.
    """

    min_agreement: float = 0.99
    max_auroc_drop: float = 0.01
    max_severity_mae_increase: float | None = None
    max_logit_drift: float | None = None
    chance_auroc: float = 0.55

    def __post_init__(self) -> None:
        if not 0.0 <= self.min_agreement <= 1.0:
            raise UsageError(f"gate agreement must be in [0, 1], got {self.min_agreement}")
        if self.max_auroc_drop < 0:
            raise UsageError(f"gate AUROC drop must be >= 0, got {self.max_auroc_drop}")
        for name in ("max_severity_mae_increase", "max_logit_drift"):
            v = getattr(self, name)
            if v is not None and v < 0:
                raise UsageError(f"gate {name} must be >= 0, got {v}")


@dataclass(frozen=True)
class QuantizeConfig:
    """Everything a quantization run needs besides the bundle and the studies.

    Attributes
    ----------
    precisions:
        Variants to make: ``"int8"`` and/or ``"fp16"``.
    calibrate_method:
        ``"minmax"`` (default), ``"entropy"`` or ``"percentile"`` (ONNX Runtime's
        ``CalibrationMethod``). Min-max is the default of TensorRT Model Optimizer's INT8 and,
        on the shipped ``reference`` model, the only one that passed the gate: entropy clipped
        the pooled-max features (top-1 agreement 0.73), percentile likewise (0.68).
    target:
        INT8 for ``"tensorrt"`` (variant ``int8``), ``"cpu"`` (``int8-cpu``) or ``"both"``.
    max_calib:
        Most calibration studies read (in study-key order).
    min_calib:
        Fewest usable calibration studies accepted.
    per_channel:
        Per-channel weight scales (axis 0 for Conv; TensorRT's rule).
    op_types_to_quantize:
        Operator types that get Q/DQ on their inputs (residual ``Add`` included).
    nodes_to_exclude:
        Node names kept in floating point from the start.
    quant_format:
        Always ``"QDQ"`` (explicit quantization).
    percentile:
        Percentile of the ``"percentile"`` method.
    num_bins:
        Histogram bins of the ``"entropy"`` / ``"percentile"`` methods.
    keep_io_types:
        FP16 variant keeps FP32 inputs and outputs.
    fp16_op_block_list:
        Op types kept in FP32 inside the FP16 graph.
    gate:
        Accuracy-gate thresholds.
    sensitivity:
        When INT8 fails the gate, exclude the most sensitive nodes step by step.
    max_excluded:
        Most nodes the sensitivity search may exclude.
    sensitivity_samples:
        Samples used to measure per-node errors.
    cpu_candidates:
        Layouts tried for ``int8-cpu``.
    timing_runs:
        Timed runs per CPU candidate (median kept).
    cache_dir:
        Where calibration ranges are cached (``None``: :func:`default_cache_dir`).
    use_cache:
        Read and write the calibration-range cache.
    plots:
        Write PNG plots into the bundle's ``reports/`` (skipped if matplotlib is missing).
    """

    precisions: tuple[str, ...] = PRECISIONS
    calibrate_method: CalibrateMethod = "minmax"
    target: Target = "tensorrt"
    max_calib: int = 64
    min_calib: int = 8
    per_channel: bool = True
    op_types_to_quantize: tuple[str, ...] = ("Conv", "Gemm", "MatMul", "Add")
    nodes_to_exclude: tuple[str, ...] = ()
    quant_format: QuantFormat = "QDQ"
    percentile: float = 99.999
    num_bins: int = 2048
    keep_io_types: bool = True
    fp16_op_block_list: tuple[str, ...] = DEFAULT_FP16_OP_BLOCK_LIST
    gate: GateConfig = field(default_factory=GateConfig)
    sensitivity: bool = True
    max_excluded: int = 8
    sensitivity_samples: int = 4
    cpu_candidates: tuple[CpuCandidate, ...] = DEFAULT_CPU_CANDIDATES
    timing_runs: int = 5
    cache_dir: Path | None = None
    use_cache: bool = True
    plots: bool = True

    def __post_init__(self) -> None:
        bad = [p for p in self.precisions if p not in PRECISIONS]
        if bad or not self.precisions:
            raise UsageError(
                f"precisions {list(self.precisions)}: choose one or more of {', '.join(PRECISIONS)}"
            )
        if self.calibrate_method not in _METHODS:
            raise UsageError(
                f"calibrate_method {self.calibrate_method!r}: use one of {', '.join(_METHODS)}"
            )
        if self.target not in _TARGETS:
            raise UsageError(f"target {self.target!r}: use one of {', '.join(_TARGETS)}")
        if self.min_calib < 1 or self.max_calib < self.min_calib:
            raise UsageError(
                f"max_calib ({self.max_calib}) must be >= min_calib ({self.min_calib}) >= 1"
            )
        if self.quant_format != "QDQ":
            raise UsageError(f"quant_format {self.quant_format!r}: only 'QDQ' is supported")
        if not 0.0 < self.percentile <= 100.0:
            raise UsageError(f"percentile must be in (0, 100], got {self.percentile}")
        if "int8-cpu" in self.int8_precisions and not any(
            c.quantized_ops(self.op_types_to_quantize) for c in self.cpu_candidates
        ):
            raise UsageError(
                f"no CPU layout quantizes any of op_types_to_quantize "
                f"{list(self.op_types_to_quantize)} (layouts: "
                f"{[c.label for c in self.cpu_candidates]}); widen one of them"
            )

    @property
    def int8_precisions(self) -> tuple[str, ...]:
        """The INT8 variants this config makes: ``int8`` and/or ``int8-cpu``."""
        if "int8" not in self.precisions:
            return ()
        return {"tensorrt": ("int8",), "cpu": ("int8-cpu",), "both": ("int8", "int8-cpu")}[
            self.target
        ]

    def resolved_cache_dir(self) -> Path:
        """The calibration-range cache directory."""
        return self.cache_dir if self.cache_dir is not None else default_cache_dir()
