"""Preprocessing: from a discovered study into the model's input buffers, per the ModelSpec.

The same functions prepare training data and run on the device, so a model sees identical
tensors in both places:

- :func:`plan_study` judges every series of a study from its headers and ranks each input's
  candidates (the one selection step of ``medfuse scan`` and ``medfuse run``);
- :func:`select_series` is the selection rule alone (:class:`SeriesSelection`);
- :func:`preprocess_series` reads it and writes one input tensor into a caller-owned view;
- :func:`preprocess_study` does that for every image input and fills the presence mask;
- :func:`resample_volume_into`, :func:`resize_image_into` and :func:`apply_intensity_into`
  are the array-level steps (geometry rule documented in :mod:`.resample`, intensity in
  :mod:`.intensity`), all writing into ``out`` without allocating it.
"""

from __future__ import annotations

from medfuse.runtime.preprocess.intensity import apply_intensity_into, apply_window_into
from medfuse.runtime.preprocess.plan import StudyPlan, plan_study
from medfuse.runtime.preprocess.resample import (
    axis_weights,
    resample_volume_into,
    resize_image_into,
)
from medfuse.runtime.preprocess.select import rank_series, select_series, stable_series_order
from medfuse.runtime.preprocess.study import PreparedStudy, preprocess_series, preprocess_study

__all__ = [
    "PreparedStudy",
    "StudyPlan",
    "apply_intensity_into",
    "apply_window_into",
    "axis_weights",
    "plan_study",
    "preprocess_series",
    "preprocess_study",
    "rank_series",
    "resample_volume_into",
    "resize_image_into",
    "select_series",
    "stable_series_order",
]
