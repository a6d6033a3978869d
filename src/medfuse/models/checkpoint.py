"""``model.pt``: a trained network's weights with everything needed to rebuild and export it.

The file is a ``torch.save`` dict of plain values and tensors (loadable with
``weights_only=True``): format tag and version, configuration name, the ModelSpec as a dict,
the state dict, metrics, the training config and its hash, medfuse and torch versions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import medfuse
from medfuse._deps import require
from medfuse.bundle.spec import ModelSpec
from medfuse.errors import ManifestError, UsageError

__all__ = ["CHECKPOINT_FORMAT", "Checkpoint", "load_checkpoint", "save_checkpoint"]

CHECKPOINT_FORMAT = "medfuse.checkpoint"
_VERSION = 1


@dataclass(frozen=True)
class Checkpoint:
    """The metadata of a ``model.pt`` (the weights are loaded into the returned module)."""

    config: str
    spec: ModelSpec
    metrics: Mapping[str, Any] = field(default_factory=dict)
    training_config: Mapping[str, Any] = field(default_factory=dict)
    training_config_hash: str | None = None
    medfuse_version: str = ""
    torch_version: str = ""


def save_checkpoint(
    path: Path,
    module: Any,
    spec: ModelSpec,
    *,
    config: str,
    metrics: Mapping[str, Any] | None = None,
    training_config: Mapping[str, Any] | None = None,
    training_config_hash: str | None = None,
) -> Path:
    """Write ``module``'s weights and metadata to ``path`` (``model.pt``).

    Parameters
    ----------
    path:
        Destination file; its folder is created.
    module:
        The trained network (a :func:`~medfuse.models.build_model` configuration).
    spec:
        Its ModelSpec.
    config:
        The configuration name, so :func:`load_checkpoint` can rebuild the network.
    metrics, training_config, training_config_hash:
        Stored as given (JSON-able values).
    """
    torch = require("torch", purpose="saving a model")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": CHECKPOINT_FORMAT,
        "format_version": _VERSION,
        "config": config,
        "spec": spec.to_dict(),
        "state_dict": {k: v.detach().cpu() for k, v in module.state_dict().items()},
        "metrics": dict(metrics or {}),
        "training_config": dict(training_config or {}),
        "training_config_hash": training_config_hash,
        "medfuse_version": medfuse.__version__,
        "torch_version": str(torch.__version__),
    }
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)
    return path


def load_checkpoint(path: Path) -> tuple[Any, Checkpoint]:
    """Rebuild the network saved in ``path`` and load its weights.

    Returns
    -------
    tuple[nn.Module, Checkpoint]
        The network in eval mode and the checkpoint's metadata (spec as stored).

    Raises
    ------
    UsageError
        The file is missing, not a medfuse checkpoint, or its weights do not fit the
        configuration.
    """
    torch = require("torch", purpose="loading a model")
    from medfuse.models.nets import build_model

    path = Path(path)
    if not path.is_file():
        raise UsageError(f"model file {path.name!r} does not exist")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise UsageError(
            f"{path.name!r} is not a readable PyTorch file ({type(exc).__name__}); give a model.pt "
            "written by `medfuse train`"
        ) from exc
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise UsageError(
            f"{path.name!r} is not a medfuse checkpoint; give a model.pt written by `medfuse train`"
        )
    if payload.get("format_version") != _VERSION:
        raise UsageError(
            f"{path.name!r} has checkpoint format version {payload.get('format_version')!r}; this "
            f"medfuse reads version {_VERSION}"
        )
    try:
        spec = ModelSpec.from_dict(payload["spec"])
    except ManifestError as exc:
        raise UsageError(f"{path.name!r}: the stored model spec is invalid: {exc}") from exc
    module, _ = build_model(str(payload["config"]))
    try:
        module.load_state_dict(payload["state_dict"])
    except RuntimeError as exc:
        raise UsageError(
            f"{path.name!r}: weights do not fit configuration {payload['config']!r}: {str(exc)[:300]}"
        ) from exc
    module.eval()
    meta = Checkpoint(
        config=str(payload["config"]),
        spec=spec,
        metrics=payload.get("metrics") or {},
        training_config=payload.get("training_config") or {},
        training_config_hash=payload.get("training_config_hash"),
        medfuse_version=str(payload.get("medfuse_version", "")),
        torch_version=str(payload.get("torch_version", "")),
    )
    return module, meta
