"""Inference backends behind one protocol (:class:`~medfuse.runtime.backends.base.Backend`).

``onnxruntime`` (CPU / CUDA execution providers) is always available; ``tensorrt`` is a slot
filled by ``medfuse.runtime.backends.tensorrt`` when TensorRT is installed. Backend modules
are imported lazily: importing this package loads neither onnxruntime nor TensorRT.
"""

from __future__ import annotations

from medfuse.runtime.backends.base import Backend, TensorSpec

__all__ = ["Backend", "TensorSpec"]
