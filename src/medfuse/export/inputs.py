"""Example inputs for a :class:`~medfuse.bundle.spec.ModelSpec`: random, but valid for the spec."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from medfuse.bundle.spec import ModelSpec
from medfuse.errors import DicomError, ExportError, PreprocessingError, StudyError, UsageError

__all__ = ["concat_inputs", "random_inputs", "study_inputs", "validate_inputs"]


def random_inputs(spec: ModelSpec, batch: int, *, seed: int = 0) -> dict[str, NDArray[np.generic]]:
    """Random tensors shaped and typed as ``spec``'s inputs, with batch size ``batch``.

    Image inputs are standard normal (the scale of normalised intensities); integer inputs
    are uniform in ``[0, 10)``. With a presence input, row ``i`` marks a varied subset of
    modalities present (row 0 all present, then each modality alone, then random subsets;
    never none) and the absent image tensors are zero, as the runtime writes them.

    Parameters
    ----------
    spec:
        The model's spec.
    batch:
        Batch size (>= 1).
    seed:
        Seed of the NumPy generator; the same seed gives the same tensors.
    """
    rng = np.random.default_rng(seed)
    out: dict[str, NDArray[np.generic]] = {}
    for inp in spec.inputs:
        shape = inp.batch_shape(batch)
        dtype = np.dtype(inp.dtype)
        if inp.role == "presence":
            continue
        if np.issubdtype(dtype, np.floating):
            out[inp.name] = rng.standard_normal(shape).astype(dtype)
        else:
            out[inp.name] = rng.integers(0, 10, size=shape).astype(dtype)
    presence = spec.presence_input
    if presence is not None:
        k = presence.sample_shape()[0]
        mask = np.ones((batch, k), dtype=np.dtype(presence.dtype))
        for row in range(1, batch):
            if row <= k:
                mask[row] = 0
                mask[row, row - 1] = 1
            else:
                bits = rng.integers(0, 2, size=k)
                bits[rng.integers(0, k)] = 1
                mask[row] = bits
        for col, image in enumerate(spec.image_inputs):
            out[image.name] = out[image.name] * mask[:, col].reshape(
                (batch,) + (1,) * (out[image.name].ndim - 1)
            ).astype(out[image.name].dtype)
        out[presence.name] = mask
    return {i.name: out[i.name] for i in spec.inputs}


def validate_inputs(spec: ModelSpec, inputs: Mapping[str, NDArray[np.generic]], what: str) -> int:
    """Check ``inputs`` against ``spec`` (names, per-sample shapes, one batch size); return it."""
    missing = [i.name for i in spec.inputs if i.name not in inputs]
    if missing:
        raise ExportError(
            f"{what}: inputs {missing} are missing; the spec needs {[i.name for i in spec.inputs]}"
        )
    batches = set()
    for inp in spec.inputs:
        arr = inputs[inp.name]
        if tuple(arr.shape[1:]) != inp.sample_shape():
            raise ExportError(
                f"{what}: input {inp.name!r} has shape {list(arr.shape)}; the spec needs "
                f"{[inp.shape[0], *inp.sample_shape()]}"
            )
        batches.add(int(arr.shape[0]))
    if len(batches) != 1:
        raise ExportError(f"{what}: inputs have different batch sizes {sorted(batches)}")
    return batches.pop()


def concat_inputs(
    parts: Sequence[Mapping[str, NDArray[np.generic]]],
) -> dict[str, NDArray[np.generic]]:
    """Concatenate input dicts along the batch axis (same keys in each)."""
    if not parts:
        raise ExportError("no inputs to concatenate")
    return {k: np.concatenate([p[k] for p in parts], axis=0) for k in parts[0]}


def study_inputs(root: Path, spec: ModelSpec, n: int) -> dict[str, NDArray[np.generic]]:
    """The preprocessed tensors of the first ``n`` usable studies under ``root``, stacked.

    Studies are read with the runtime's own discovery and preprocessing (what deployment
    feeds the model); a study that cannot be preprocessed for ``spec`` is skipped.

    Parameters
    ----------
    root:
        Folder of DICOM studies.
    spec:
        The model's spec (input shapes, preprocessing recipes).
    n:
        Most studies taken.

    Returns
    -------
    dict[str, NDArray]
        Input name → array with the batch axis first (float32).

    Raises
    ------
    UsageError
        When no study under ``root`` could be preprocessed for this model.
    """
    from medfuse.runtime.dicom import discover_studies
    from medfuse.runtime.preprocess import preprocess_study

    rows: list[dict[str, NDArray[np.float32]]] = []
    for study in discover_studies(Path(root)).studies:
        if len(rows) >= n:
            break
        sample = {i.name: np.zeros(i.sample_shape(), dtype=np.float32) for i in spec.inputs}
        try:
            preprocess_study(study, spec, sample)
        except (DicomError, PreprocessingError, StudyError):
            continue
        rows.append(sample)
    if not rows:
        raise UsageError(
            f"no study in the folder could be preprocessed for model {spec.name!r}; give a "
            "folder of studies with the modalities the model takes"
        )
    return {name: np.stack([r[name] for r in rows]) for name in rows[0]}
