"""The bundle: the contract between the build host and the device.

A bundle is a directory ``NAME.medfuse/`` (or a zip of one) holding ``manifest.json`` (typed,
versioned: :class:`Manifest`), the model's precision variants (``model.<precision>.onnx``),
``golden.npz``, ``reports/``, ``engines/`` and ``timing-caches/``. Every artifact's sha256 is in
the manifest and is checked before the file is used (:meth:`Bundle.file`), external-data files
of a model included. A bundle may carry an Ed25519 signature of its manifest
(``manifest.json.sig``, :func:`sign_bundle`); a :class:`TrustPolicy` refuses bundles that are
not signed by a trusted key, or that differ from a pinned digest, before anything but the
manifest's bytes is read (:func:`open_bundle`).

Only stdlib (and numpy) here: this package is part of the runtime tier.
"""

from __future__ import annotations

from medfuse.bundle.bundle import Bundle, VerifyProblem, VerifyReport, open_bundle
from medfuse.bundle.integrity import sha256_file
from medfuse.bundle.manifest import (
    MANIFEST_NAME,
    SCHEMA_VERSION,
    EngineRecord,
    GoldenRecord,
    Manifest,
    Provenance,
    Variant,
)
from medfuse.bundle.publish import sign_bundle
from medfuse.bundle.reference import reference_bundle_path
from medfuse.bundle.signing import generate_key, load_public_key, load_signing_key
from medfuse.bundle.spec import (
    InputSpec,
    IntensityRecipe,
    ModelSpec,
    OutputSpec,
    PreprocessRecipe,
    SeriesSelection,
    Window,
)
from medfuse.bundle.trust import (
    NO_POLICY,
    SignatureState,
    TrustedKey,
    TrustPolicy,
    load_trust_config,
    resolve_policy,
    use_trust_policy,
)
from medfuse.bundle.write import VariantSource, update_bundle, variant_filename, write_bundle

__all__ = [
    "MANIFEST_NAME",
    "NO_POLICY",
    "SCHEMA_VERSION",
    "Bundle",
    "EngineRecord",
    "GoldenRecord",
    "InputSpec",
    "IntensityRecipe",
    "Manifest",
    "ModelSpec",
    "OutputSpec",
    "PreprocessRecipe",
    "Provenance",
    "SeriesSelection",
    "SignatureState",
    "TrustPolicy",
    "TrustedKey",
    "Variant",
    "VariantSource",
    "VerifyProblem",
    "VerifyReport",
    "Window",
    "generate_key",
    "load_public_key",
    "load_signing_key",
    "load_trust_config",
    "open_bundle",
    "reference_bundle_path",
    "resolve_policy",
    "sha256_file",
    "sign_bundle",
    "update_bundle",
    "use_trust_policy",
    "variant_filename",
    "write_bundle",
]
