"""Export a bundle as a Triton Inference Server model repository.

``export_triton_repository(bundle, out)`` writes::

    REPO/
      README.md                      how to start tritonserver on it, and a client example
      <model>/                       the network, in a form Triton's own backends load
        config.pbtxt                 onnxruntime, or tensorrt_plan with cc_model_filenames
        1/model.onnx | 1/model.<smXY>.plan …
      <model>_preprocess/            Python backend: study bytes → the model's input tensors
        config.pbtxt
        1/model.py                   medfuse's preprocessing (needs medfuse in the server's Python)
        1/model_spec.json            the bundle's ModelSpec
      <model>_study/                 ensemble: study bytes → preprocess → model → outputs
        config.pbtxt
        1/                           (empty: ensembles have no files, but need a version)

Inputs, outputs, dtypes and dims come from the manifest's :class:`~medfuse.bundle.ModelSpec`;
the batch axis becomes ``max_batch_size`` with dynamic batching. For TensorRT, one plan per
compute capability is copied from the bundle's engines (the most recently built one when several
share a compute capability) and Triton picks the plan for each GPU through
``cc_model_filenames``; ``max_batch_size`` is capped at the smallest profile maximum.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from medfuse.bundle import Bundle, EngineRecord, ModelSpec, open_bundle
from medfuse.errors import BundleError, UsageError
from medfuse.serving.pbtxt import Enum, format_pbtxt

__all__ = [
    "PRESENCE_OUTPUT",
    "STUDY_INPUT",
    "TritonExportOptions",
    "TritonRepository",
    "engine_max_batch",
    "ensemble_config",
    "export_triton_repository",
    "inference_config",
    "preprocess_config",
    "select_engines",
    "triton_dtype",
]

log = logging.getLogger(__name__)

STUDY_INPUT = "study"
"""Name of the BYTES input carrying a study (see :mod:`medfuse.serving.study`)."""

_DTYPES = {
    "float32": "TYPE_FP32",
    "float16": "TYPE_FP16",
    "int8": "TYPE_INT8",
    "uint8": "TYPE_UINT8",
    "int32": "TYPE_INT32",
    "int64": "TYPE_INT64",
    "bytes": "TYPE_STRING",
}

Backend = Literal["auto", "onnxruntime", "tensorrt"]


def triton_dtype(dtype: str) -> Enum:
    """Triton's ``DataType`` for a manifest dtype (``"float32"`` → ``TYPE_FP32``)."""
    try:
        return Enum(_DTYPES[dtype])
    except KeyError:
        raise UsageError(
            f"dtype {dtype!r} has no Triton data type here; supported: {', '.join(_DTYPES)}"
        ) from None


@dataclass(frozen=True)
class TritonExportOptions:
    """How the repository is written.

    Attributes
    ----------
    variant:
        Precision variant (``"auto"``: the variant of the newest engine for ``tensorrt``,
        else ``fp32`` when present, else the first variant).
    backend:
        ``"auto"`` (TensorRT plans when the variant has engines, else ONNX Runtime),
        ``"onnxruntime"`` or ``"tensorrt"``.
    max_batch:
        Triton ``max_batch_size`` (capped by the engines' profiles for TensorRT).
    instances:
        Model instances (``instance_group.count``) of the network and of the preprocessing.
    preferred_batch:
        Dynamic batcher's preferred batch sizes (empty: Triton's default).
    max_queue_delay_us:
        How long the dynamic batcher may hold a request to form a larger batch.
    tensorrt_version:
        For TensorRT: take only engines built with this TensorRT version.
    execution_env:
        The preprocessing model's ``EXECUTION_ENV_PATH``: a Python environment holding medfuse
        that Triton's Python backend activates for it (a ``conda-pack`` archive, or a
        folder with ``bin/activate``), e.g. ``"$$TRITON_MODEL_DIRECTORY/medfuse-env.tar.gz"``.
        Its Python must be the version the server's Python-backend stub was built for.
        ``None``: the stub's own Python must have medfuse installed.
    """

    variant: str = "auto"
    backend: Backend = "auto"
    max_batch: int = 8
    instances: int = 1
    preferred_batch: tuple[int, ...] = ()
    max_queue_delay_us: int = 100
    tensorrt_version: str | None = None
    execution_env: str | None = None

    def __post_init__(self) -> None:
        if self.execution_env is not None and not self.execution_env.strip():
            raise UsageError(
                "execution env is empty; give the path of a packed Python environment "
                "(e.g. $$TRITON_MODEL_DIRECTORY/medfuse-env.tar.gz) or leave it unset"
            )
        if self.backend not in ("auto", "onnxruntime", "tensorrt"):
            raise UsageError(f"backend {self.backend!r}: use auto, onnxruntime or tensorrt")
        if self.max_batch < 1 or self.instances < 1 or self.max_queue_delay_us < 0:
            raise UsageError(
                f"max batch {self.max_batch} and instances {self.instances} must be >= 1, "
                f"max queue delay {self.max_queue_delay_us} µs >= 0"
            )
        bad = [b for b in self.preferred_batch if not 1 <= b <= self.max_batch]
        if bad:
            raise UsageError(
                f"preferred batch sizes {bad} are outside 1..{self.max_batch} (the max batch)"
            )


@dataclass(frozen=True)
class TritonRepository:
    """What :func:`export_triton_repository` wrote."""

    path: Path
    model: str
    preprocess: str
    ensemble: str
    backend: str
    variant: str
    max_batch: int
    plans: Mapping[str, str] = field(default_factory=dict)
    execution_env: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "models": {
                "inference": self.model,
                "preprocess": self.preprocess,
                "study": self.ensemble,
            },
            "backend": self.backend,
            "variant": self.variant,
            "max_batch_size": self.max_batch,
            "cc_model_filenames": dict(self.plans),
            "execution_env": self.execution_env,
        }


def _tensor(name: str, dtype: str, dims: Sequence[int]) -> dict[str, Any]:
    return {"name": name, "data_type": triton_dtype(dtype), "dims": [int(d) for d in dims]}


def _io(spec: ModelSpec) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    inputs = [_tensor(i.name, i.dtype, i.sample_shape()) for i in spec.inputs]
    outputs = [_tensor(o.name, "float32", [int(d) for d in o.shape[1:]]) for o in spec.outputs]
    return inputs, outputs


def _batching(options: TritonExportOptions) -> dict[str, Any]:
    batching: dict[str, Any] = {}
    if options.preferred_batch:
        batching["preferred_batch_size"] = sorted(set(options.preferred_batch))
    batching["max_queue_delay_microseconds"] = options.max_queue_delay_us
    return batching


def inference_config(
    spec: ModelSpec,
    options: TritonExportOptions,
    *,
    backend: Literal["onnxruntime", "tensorrt"],
    plans: Mapping[str, str] | None = None,
    max_batch: int | None = None,
) -> dict[str, Any]:
    """The network's configuration (as values for :func:`~medfuse.serving.pbtxt.format_pbtxt`).

    ``plans`` maps compute capability → plan file name (TensorRT only).
    """
    inputs, outputs = _io(spec)
    config: dict[str, Any] = {"name": spec.name}
    if backend == "tensorrt":
        if not plans:
            raise UsageError("a tensorrt_plan model needs at least one plan")
        config["platform"] = "tensorrt_plan"
    else:
        config["backend"] = "onnxruntime"
    config["max_batch_size"] = max_batch if max_batch is not None else options.max_batch
    config["input"] = inputs
    config["output"] = outputs
    config["dynamic_batching"] = _batching(options)
    group: dict[str, Any] = {"count": options.instances}
    if backend == "tensorrt":
        group["kind"] = Enum("KIND_GPU")
    config["instance_group"] = [group]
    if backend == "tensorrt" and plans:
        config["cc_model_filenames"] = [{"key": cc, "value": f} for cc, f in sorted(plans.items())]
    else:
        config["default_model_filename"] = "model.onnx"
    return config


def preprocess_config(
    spec: ModelSpec, options: TritonExportOptions, max_batch: int
) -> dict[str, Any]:
    """The Python-backend preprocessing model: ``study`` (BYTES) → the network's inputs."""
    inputs, _ = _io(spec)
    config: dict[str, Any] = {
        "name": f"{spec.name}_preprocess",
        "backend": "python",
        "max_batch_size": max_batch,
        "input": [_tensor(STUDY_INPUT, "bytes", [1])],
        "output": inputs,
        "dynamic_batching": _batching(options),
        "instance_group": [{"count": options.instances, "kind": Enum("KIND_CPU")}],
    }
    if options.execution_env is not None:
        config["parameters"] = [
            {"key": "EXECUTION_ENV_PATH", "value": {"string_value": options.execution_env}}
        ]
    return config


PRESENCE_OUTPUT = "inputs_present"
"""The ensemble's extra output: the preprocessing's presence mask, so a client's record can say
which image inputs a result rests on (:func:`medfuse.serving.client.outputs_to_record`)."""


def ensemble_config(spec: ModelSpec, max_batch: int) -> dict[str, Any]:
    """The ensemble ``<model>_study``: study bytes → preprocess → network → outputs.

    Besides the network's outputs it returns the preprocessing's presence mask as
    :data:`PRESENCE_OUTPUT` (when the model has one).
    """
    _, outputs = _io(spec)
    names_in = [i.name for i in spec.inputs]
    names_out = [o.name for o in spec.outputs]
    presence = spec.presence_input
    wire = {
        n: (PRESENCE_OUTPUT if presence is not None and n == presence.name else f"pre_{n}")
        for n in names_in
    }
    if presence is not None:
        outputs = [*outputs, _tensor(PRESENCE_OUTPUT, presence.dtype, presence.sample_shape())]
    return {
        "name": f"{spec.name}_study",
        "platform": "ensemble",
        "max_batch_size": max_batch,
        "input": [_tensor(STUDY_INPUT, "bytes", [1])],
        "output": outputs,
        "ensemble_scheduling": {
            "step": [
                {
                    "model_name": f"{spec.name}_preprocess",
                    "model_version": -1,
                    "input_map": [{"key": STUDY_INPUT, "value": STUDY_INPUT}],
                    "output_map": [{"key": n, "value": wire[n]} for n in names_in],
                },
                {
                    "model_name": spec.name,
                    "model_version": -1,
                    "input_map": [{"key": n, "value": wire[n]} for n in names_in],
                    "output_map": [{"key": n, "value": n} for n in names_out],
                },
            ]
        },
    }


def engine_max_batch(record: EngineRecord) -> int | None:
    """The largest batch every optimisation profile of an engine accepts (``None``: unknown)."""
    profiles = record.profile.get("profiles") if isinstance(record.profile, Mapping) else None
    if not profiles:
        sizes = record.profile.get("batch_sizes") if isinstance(record.profile, Mapping) else None
        return max(int(b) for b in sizes) if sizes else None
    best: int | None = None
    for prof in profiles:
        tops = [int(t["max"][0]) for t in prof.values() if isinstance(t, Mapping) and t.get("max")]
        if tops:
            best = max(best or 0, min(tops))
    return best


def select_engines(
    bundle: Bundle, variant: str, tensorrt_version: str | None = None
) -> dict[str, EngineRecord]:
    """One GPU engine per compute capability for ``variant`` (newest build wins; DLA excluded)."""
    chosen: dict[str, EngineRecord] = {}
    for record in bundle.manifest.engines.values():
        if record.variant != variant or record.dla_core is not None:
            continue
        if tensorrt_version is not None and record.tensorrt_version != tensorrt_version:
            continue
        cc = record.compute_capability
        if cc not in chosen or record.built_at > chosen[cc].built_at:
            chosen[cc] = record
    return chosen


def _choose_variant(bundle: Bundle, options: TritonExportOptions) -> str:
    variants = bundle.precisions
    if options.variant != "auto":
        if options.variant not in variants:
            raise BundleError(
                f"bundle {bundle.label} has no {options.variant!r} variant; it has: "
                f"{', '.join(variants) or 'none'}"
            )
        return options.variant
    engines = sorted(bundle.manifest.engines.values(), key=lambda r: r.built_at)
    gpu = [r for r in engines if r.dla_core is None]
    if options.backend != "onnxruntime" and gpu:
        return gpu[-1].variant
    return "fp32" if "fp32" in variants else variants[0]


def export_triton_repository(
    bundle: str | Path | Bundle, out: str | Path, options: TritonExportOptions | None = None
) -> TritonRepository:
    """Write a Triton model repository for ``bundle`` into ``out`` (a new or empty folder).

    Parameters
    ----------
    bundle:
        Bundle directory, zip, or an opened :class:`~medfuse.bundle.Bundle`.
    out:
        The repository folder; must not exist or be empty.
    options:
        See :class:`TritonExportOptions`.

    Raises
    ------
    UsageError
        ``out`` is not empty, or the options do not fit (``tensorrt`` without engines).
    BundleError
        The bundle lacks the variant, or an artifact fails its sha256 check.
    """
    from medfuse.serving.readme import repository_readme

    options = options or TritonExportOptions()
    b = bundle if isinstance(bundle, Bundle) else open_bundle(bundle)
    spec = b.spec
    root = Path(out)
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise UsageError("the output folder exists and is not empty; give a new or empty folder")
    variant = _choose_variant(b, options)
    engines = select_engines(b, variant, options.tensorrt_version)
    backend: Literal["onnxruntime", "tensorrt"]
    if options.backend == "tensorrt" or (options.backend == "auto" and engines):
        if not engines:
            raise UsageError(
                f"bundle {b.label} has no TensorRT engine for variant {variant!r}"
                + (f" and TensorRT {options.tensorrt_version}" if options.tensorrt_version else "")
                + "; build one with `medfuse build`, or use --backend onnxruntime"
            )
        backend = "tensorrt"
    else:
        backend = "onnxruntime"
    max_batch = options.max_batch
    if backend == "tensorrt":
        caps = [m for m in (engine_max_batch(r) for r in engines.values()) if m is not None]
        if caps and min(caps) < max_batch:
            log.warning("max batch %d capped at %d by the engines' profiles", max_batch, min(caps))
            max_batch = min(caps)

    model_dir = root / spec.name / "1"
    model_dir.mkdir(parents=True)
    plans: dict[str, str] = {}
    if backend == "tensorrt":
        for cc, record in sorted(engines.items()):
            name = f"model.sm{cc.replace('.', '')}.plan"
            shutil.copyfile(b.engine_file(record.key), model_dir / name)
            plans[cc] = name
    else:
        shutil.copyfile(b.variant_file(variant), model_dir / "model.onnx")
    opts = TritonExportOptions(
        variant=variant,
        backend=backend,
        max_batch=max_batch,
        instances=options.instances,
        preferred_batch=tuple(p for p in options.preferred_batch if p <= max_batch),
        max_queue_delay_us=options.max_queue_delay_us,
        execution_env=options.execution_env,
    )
    configs = {
        spec.name: inference_config(spec, opts, backend=backend, plans=plans, max_batch=max_batch),
        f"{spec.name}_preprocess": preprocess_config(spec, opts, max_batch),
        f"{spec.name}_study": ensemble_config(spec, max_batch),
    }
    for name, config in configs.items():
        (root / name / "1").mkdir(parents=True, exist_ok=True)
        (root / name / "config.pbtxt").write_text(format_pbtxt(config), encoding="utf-8")
    pre = root / f"{spec.name}_preprocess" / "1"
    template = Path(__file__).with_name("python_backend_model.py")
    shutil.copyfile(template, pre / "model.py")
    (pre / "model_spec.json").write_text(json.dumps(spec.to_dict(), indent=2) + "\n", "utf-8")
    repo = TritonRepository(
        path=root,
        model=spec.name,
        preprocess=f"{spec.name}_preprocess",
        ensemble=f"{spec.name}_study",
        backend=backend,
        variant=variant,
        max_batch=max_batch,
        plans=plans,
        execution_env=options.execution_env,
    )
    (root / "README.md").write_text(repository_readme(repo, spec), encoding="utf-8")
    log.info(
        "wrote Triton repository: backend %s, variant %s, max batch %d, %d plan(s)",
        backend,
        variant,
        max_batch,
        len(plans),
    )
    return repo
