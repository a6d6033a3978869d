"""From a model source on disk to a bundle and its reports: what ``medfuse export`` runs.

:func:`export_from_source` loads the model (a ``medfuse train`` checkpoint, ``module:factory``,
a ``torch.export`` archive or a TorchScript file), takes its spec (the checkpoint's own, or a
spec file), the golden inputs (from studies when given), and calls
:func:`~medfuse.export.export_bundle`; it returns the bundle with its lint and parity reports.
The CLI only parses arguments and prints.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medfuse.errors import UsageError

if TYPE_CHECKING:
    from medfuse.bundle import Bundle

__all__ = ["ExportRun", "export_from_source"]


@dataclass(frozen=True)
class ExportRun:
    """A bundle written by :func:`export_from_source` and its export reports (JSON-ready)."""

    bundle: Bundle
    lint: Mapping[str, Any] = field(default_factory=dict)
    parity: Mapping[str, Any] = field(default_factory=dict)

    @property
    def size_bytes(self) -> int:
        """Bytes of every file of the bundle."""
        return sum(p.stat().st_size for p in Path(self.bundle.path).rglob("*") if p.is_file())

    def to_dict(self) -> dict[str, Any]:
        """What ``medfuse export --json`` prints."""
        return {
            "bundle": str(self.bundle.path),
            "lint": dict(self.lint),
            "parity": dict(self.parity),
        }


def checkpoint_accuracy(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """The accuracy a checkpoint's metrics give its fp32 variant (held-out when present)."""
    source = "heldout" if metrics.get("heldout") else "validation"
    m = metrics.get(source) or {}
    keep = ("n", "auroc_macro", "auroc_per_class", "accuracy", "severity_mae_ml")
    return {"evaluated_on": source, **{k: m[k] for k in keep if k in m}} if m else {}


def export_from_source(
    model: str,
    out: str | Path,
    *,
    spec_file: str | Path | None = None,
    factory_args: Mapping[str, Any] | None = None,
    golden_studies: str | Path | None = None,
    golden: int = 4,
    opset: int = 18,
    overwrite: bool = False,
    progress: Callable[[int, int, str], None] | None = None,
) -> ExportRun:
    """Export the model at ``model`` to the bundle ``out``.

    Parameters
    ----------
    model:
        A ``medfuse train`` checkpoint, ``module:factory``, a ``.pt2`` archive or a TorchScript
        file (:func:`medfuse.export.load_model`).
    out:
        The bundle folder to write.
    spec_file:
        The spec (YAML or JSON); required for every source but a checkpoint, refused with one.
    factory_args:
        Keyword arguments for a ``module:factory``.
    golden_studies, golden:
        A folder of studies whose preprocessed tensors become ``golden`` golden vectors and a
        parity case (random tensors otherwise, marked so in the manifest).
    opset, overwrite, progress:
        Passed to :func:`medfuse.export.export_bundle`.

    Raises
    ------
    UsageError
        A spec file is missing or given where the checkpoint has its own.
    SpecError, ExportError
        From loading the spec and exporting.
    """
    from medfuse.export.inputs import study_inputs
    from medfuse.export.pipeline import export_bundle
    from medfuse.export.sources import load_model
    from medfuse.export.spec_file import load_spec

    spec = load_spec(spec_file) if spec_file is not None else None  # a bad spec fails first
    loaded = load_model(model, dict(factory_args or {}))
    ckpt = loaded.checkpoint
    reports: dict[str, Any] = {
        "source": {"kind": loaded.kind, "source": loaded.source, **dict(loaded.extra)}
    }
    accuracy: dict[str, Any] = {}
    if ckpt is not None:
        if spec is not None:
            raise UsageError(
                f"{model}: a `medfuse train` checkpoint carries its own spec; drop --spec"
            )
        spec = ckpt.spec
        reports["training"] = {
            "config": ckpt.config,
            "training_config": dict(ckpt.training_config),
            "training_config_hash": ckpt.training_config_hash,
            "metrics": {k: v for k, v in ckpt.metrics.items() if k != "history"},
        }
        accuracy = checkpoint_accuracy(ckpt.metrics)
    elif spec is None:
        raise UsageError(
            f"{model}: a {loaded.kind} model needs a spec file: --spec SPEC.yaml "
            "(see docs/guide-byom.md)"
        )
    inputs = study_inputs(Path(golden_studies), spec, golden) if golden_studies else None
    bundle = export_bundle(
        loaded.module,
        spec,
        out,
        reports=reports,
        golden_inputs=inputs,
        accuracy=accuracy,
        training_config_hash=None if ckpt is None else ckpt.training_config_hash,
        opset=opset,
        overwrite=overwrite,
        progress=progress,
    )
    folder = Path(bundle.path) / "reports"
    return ExportRun(
        bundle=bundle,
        lint=json.loads((folder / "export_lint.json").read_text(encoding="utf-8")),
        parity=json.loads((folder / "export_parity.json").read_text(encoding="utf-8")),
    )
