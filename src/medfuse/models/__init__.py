"""The reference multimodal fusion network, its specs, and its training on synthetic studies.

:func:`model_spec` and the names in :mod:`medfuse.models.specs` need no torch; everything else
(:func:`build_model`, :func:`train`, checkpoints) imports torch on first use, so
``import medfuse.models`` stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

from medfuse.models.specs import CLASSES, CONFIGS, SEVERITY_TRANSFORM, model_spec

__all__ = [
    "CLASSES",
    "CONFIGS",
    "SEVERITY_TRANSFORM",
    "Checkpoint",
    "FusionNet",
    "StudySet",
    "TrainConfig",
    "TrainResult",
    "build_model",
    "count_flops",
    "count_parameters",
    "load_checkpoint",
    "macro_auroc_ovr",
    "model_spec",
    "prepare_studies",
    "save_checkpoint",
    "train",
]

_LAZY = {
    "FusionNet": "medfuse.models.nets",
    "build_model": "medfuse.models.nets",
    "count_flops": "medfuse.models.flops",
    "count_parameters": "medfuse.models.flops",
    "Checkpoint": "medfuse.models.checkpoint",
    "load_checkpoint": "medfuse.models.checkpoint",
    "save_checkpoint": "medfuse.models.checkpoint",
    "StudySet": "medfuse.models.data",
    "prepare_studies": "medfuse.models.data",
    "macro_auroc_ovr": "medfuse.models.metrics",
    "TrainConfig": "medfuse.models.training",
    "TrainResult": "medfuse.models.training",
    "train": "medfuse.models.training",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'medfuse.models' has no attribute {name!r}")
    if module in ("medfuse.models.nets", "medfuse.models.flops", "medfuse.models.training"):
        from medfuse._deps import require

        require("torch", purpose="the reference fusion model")
    return getattr(importlib.import_module(module), name)
