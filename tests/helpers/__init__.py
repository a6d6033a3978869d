"""Shared helpers of the test suite, imported as ``helpers.<module>``.

``tests/`` is on ``sys.path`` through ``pythonpath = ["tests"]`` in pyproject.toml's pytest section,
so a test imports these like any module (``from helpers.onnx_bundles import make_bundle``):

- ``onnx_bundles``: the tiny and the fusion ONNX models, their specs, numpy references and bundles;
  ``save_model``, the one place a test graph becomes a checked ``.onnx`` file.
- ``screening_fixtures``: a bundle with the reference spec, error / PHI-planted studies, and
  independent readers of UIDs, header strings and study keys (screening, CLI and serving tests).
- ``calib_models``: fusion models with the reference spec for the quantization tests.
- ``bench_builders``: benchmark reports built from known numbers.
"""
