"""The bundle: the contract between the build host and the device.

A bundle is a directory ``NAME.medfuse/`` (or a zip of one) holding ``manifest.json`` (typed,
versioned: :class:`Manifest`), the model's precision variants (``model.<precision>.onnx``),
``golden.npz``, ``reports/``, ``engines/`` and ``timing-caches/``. Every artifact's sha256 is in
the manifest and is checked before the file is used (:meth:`Bundle.file`).

Only stdlib (and numpy) here: this package is part of the runtime tier.
"""

from __future__ import annotations

from medfuse.bundle.bundle import Bundle, VerifyProblem, VerifyReport, open_bundle
from medfuse.bundle.integrity import sha256_file
from medfuse.bundle.manifest import (
    MANIFEST_NAME,
    SCHEMA_VERSION,
    EngineRecord,
    Manifest,
    Provenance,
    Variant,
)
from medfuse.bundle.reference import reference_bundle_path
from medfuse.bundle.spec import (
    InputSpec,
    IntensityRecipe,
    ModelSpec,
    OutputSpec,
    PreprocessRecipe,
    SeriesSelection,
    Window,
)
from medfuse.bundle.write import VariantSource, update_bundle, variant_filename, write_bundle

__all__ = [
    "MANIFEST_NAME",
    "SCHEMA_VERSION",
    "Bundle",
    "EngineRecord",
    "InputSpec",
    "IntensityRecipe",
    "Manifest",
    "ModelSpec",
    "OutputSpec",
    "PreprocessRecipe",
    "Provenance",
    "SeriesSelection",
    "Variant",
    "VariantSource",
    "VerifyProblem",
    "VerifyReport",
    "Window",
    "open_bundle",
    "reference_bundle_path",
    "sha256_file",
    "update_bundle",
    "variant_filename",
    "write_bundle",
]
