"""The session: a bundle on a backend, with ``infer`` for tensors and ``predict`` for studies.

``Session(bundle, backend="auto", precision="auto", device="auto")`` opens the bundle, picks a
backend / device / precision variant (:mod:`medfuse.runtime.backends.select`, logged with the
reason), and activates it.

- :meth:`Session.infer` runs raw tensors: feeds are validated (once per feed layout), bound in
  place on ONNX Runtime (copied once into bound buffers elsewhere), and the outputs come back as
  the reused output buffers (valid until the next call with the same batch size; copy to keep).
  Nothing is allocated per call in steady state.
- :meth:`Session.predict_many` runs DICOM studies through a bounded pipeline: a thread pool of
  ``workers`` preprocesses studies straight into the rows of one bound buffer set while the
  backend runs the previous set (two sets per batch size: double buffering). Results come in
  input order, one :class:`StudyResult` or :class:`StudyFailure` per study. A partial last
  batch runs at its own size (its buffer sets are allocated once and cached) rather than padded;
  only a model whose batch axis is fixed gets its last batch padded with zero rows.

A session is not thread-safe: use one per thread.
"""

from __future__ import annotations

import logging
import os
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from medfuse.bundle.spec import ModelSpec
from medfuse.bundle.units import output_units
from medfuse.errors import (
    BackendError,
    IncompatibleBundleError,
    MedfuseError,
    NonFiniteOutputError,
    NoUsableInputError,
    PreprocessingError,
    StudyError,
    UsageError,
)
from medfuse.runtime.backends.base import DEFAULT_MAX_BATCH, Backend
from medfuse.runtime.backends.select import choose_backend, create_backend
from medfuse.runtime.buffers import BufferSet
from medfuse.runtime.results import (
    OutputResult,
    SessionInfo,
    StudyFailure,
    StudyNotUsable,
    StudyOutcome,
    StudyResult,
    error_info,
    fault_error,
)
from medfuse.runtime.threads import ThreadPlan, check_threads, plan_threads

if TYPE_CHECKING:  # importing medfuse.runtime.dicom pulls in pydicom; only predict needs it
    from medfuse.runtime.dicom.study import Study
    from medfuse.runtime.preprocess import PreparedStudy

__all__ = ["Session"]

logger = logging.getLogger(__name__)

Preprocessor = Callable[["Study", ModelSpec, Mapping[str, NDArray[np.float32]]], "PreparedStudy"]


class _OnnxFile:
    """A bare ``.onnx`` file used like a bundle: one variant, no model spec (``infer`` only)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.spec: ModelSpec | None = None
        self.precisions = ("onnx",)

    def variant_file(self, precision: str) -> Path:
        return self.path


def _open_bundle(bundle: Any) -> Any:
    if bundle is None:
        from medfuse.bundle.reference import reference_bundle_path

        bundle = reference_bundle_path()
    if isinstance(bundle, str | os.PathLike):
        path = Path(bundle)
        if path.suffix == ".onnx" and path.is_file():
            return _OnnxFile(path)
        from medfuse.bundle import open_bundle

        return open_bundle(path)
    return bundle


@dataclass
class _Row:
    """One study's preprocessing outcome (never raises across threads)."""

    prepared: PreparedStudy | None = None
    error: BaseException | None = None
    preprocess_ms: float = 0.0


@dataclass
class _Batch:
    start: int
    studies: list[Study]
    buffers: BufferSet
    rows: list[Future[_Row]] = field(default_factory=list)


class Session:
    """A model bundle running on one backend.

    Parameters
    ----------
    bundle:
        Path of a bundle (directory or zip), an opened bundle, a bare ``.onnx`` file (``infer``
        only), or ``None`` for the shipped reference bundle.
    backend:
        ``"auto"``, ``"onnxruntime"`` or ``"tensorrt"``.
    precision:
        ``"auto"`` or a variant of the bundle (``"fp32"``, ``"fp16"``, ``"int8"``, ``"int8-cpu"``).
    device:
        ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
    threads:
        Intra-op threads of the backend (``None``: sized by the thread policy,
        :func:`medfuse.runtime.threads.plan_threads`, to the cores the workers leave).
    workers:
        Read / preprocessing workers of :meth:`predict_many` (``None``: the thread policy's).
    pipeline:
        Whether a read pipeline will feed this session (``predict_many``; the default). With
        ``False`` (tensors only, ``infer``) the backend gets every core and may spin.
    cores:
        Cores this session may use (``None``: all this process may run on).
    graph_optimization:
        ONNX Runtime graph optimisation level: ``"all"``, ``"extended"``, ``"basic"``, ``"disabled"``.
    max_batch:
        Largest batch for a dynamic-batch model.
    check_finite:
        ``infer`` rejects NaN / infinite feeds.
    key_secret:
        Deployment secret for pseudonymous study keys in results (``None``: no keys).
    preprocess:
        Replaces :func:`medfuse.runtime.preprocess.preprocess_study` (same signature).

    Raises
    ------
    BundleError, BackendError, MissingDependencyError
        The bundle cannot be opened or verified, or no backend can run it here.
    """

    def __init__(
        self,
        bundle: Any = None,
        backend: str = "auto",
        precision: str = "auto",
        device: str = "auto",
        *,
        threads: int | None = None,
        workers: int | None = None,
        pipeline: bool = True,
        cores: int | None = None,
        graph_optimization: str = "all",
        max_batch: int = DEFAULT_MAX_BATCH,
        check_finite: bool = True,
        key_secret: bytes | None = None,
        preprocess: Preprocessor | None = None,
    ) -> None:
        self.thread_plan: ThreadPlan = plan_threads(
            cores, workers=workers, intra_op=threads, pipeline=pipeline
        )
        self._bundle = _open_bundle(bundle)
        self._spec: ModelSpec | None = self._bundle.spec
        self._secret = key_secret
        self._preprocess = preprocess
        self.choice = choose_backend(self._bundle, backend, precision, device)
        shapes = {i.name: i.sample_shape() for i in self._spec.inputs} if self._spec else None
        self._backend: Backend = create_backend(
            self.choice,
            threads=self.thread_plan.intra_op,
            allow_spinning=self.thread_plan.allow_spinning,
            graph_optimization=graph_optimization,
            sample_shapes=shapes,
            max_batch=max_batch,
            check_finite=check_finite,
        )
        self._backend.activate()
        try:
            self._check_spec()
        except BaseException:
            self._backend.deactivate()
            raise
        name = self._spec.name if self._spec else self.choice.model_path.stem
        version = self._spec.version if self._spec else ""
        self.info = SessionInfo(
            model_name=name,
            model_version=version,
            backend=self.choice.backend,
            device=self.choice.device,
            precision=self.choice.precision,
            model_file=self.choice.model_path.name,
            model_sha256=self._variant_sha256(),
            providers=self._backend.providers,
            reason=self.choice.reason,
            threads=self.thread_plan.intra_op,
            graph_optimization=graph_optimization,
            max_batch=self._backend.max_batch,
        )

    # -- lifecycle ------------------------------------------------------------------------------

    def close(self) -> None:
        """Release the backend and its buffers (arrays returned earlier become invalid)."""
        self._backend.deactivate()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def backend(self) -> Backend:
        return self._backend

    @property
    def spec(self) -> ModelSpec | None:
        """The bundle's model spec (``None`` for a bare ONNX file)."""
        return self._spec

    @property
    def bundle(self) -> Any:
        return self._bundle

    # -- tensors --------------------------------------------------------------------------------

    def infer(self, feeds: Mapping[str, NDArray[Any]]) -> dict[str, NDArray[Any]]:
        """Run raw tensors.

        Parameters
        ----------
        feeds:
            One array per model input (name → array), same batch size, the model's dtypes.

        Returns
        -------
        dict
            Output arrays by name. They are the session's reused output buffers: valid until
            the next call with the same batch size. Copy (``v.copy()``) to keep them.

        Raises
        ------
        BackendError
            Missing / unexpected names, wrong dtype or shape, batch too large, NaN.
        """
        return self._backend.infer(feeds)

    def buffers(self, batch: int, slot: int = 0) -> BufferSet:
        """The bound buffers for ``batch`` rows: fill ``.inputs`` in place, then :meth:`execute`."""
        return self._backend.buffers(batch, slot)

    def execute(self, buffers: BufferSet) -> dict[str, NDArray[Any]]:
        """Run on buffers from :meth:`buffers` filled in place (no copy, no validation)."""
        return self._backend.execute(buffers)

    def warmup(self, batch: int = 1, runs: int = 2) -> None:
        """Run zeros ``runs`` times at ``batch`` (allocates and binds that batch's buffers)."""
        buffers = self._backend.buffers(batch)
        for arr in buffers.inputs.values():
            arr.fill(0)
        for _ in range(runs):
            self._backend.execute(buffers)

    # -- studies --------------------------------------------------------------------------------

    def predict(self, study: Study | str | os.PathLike[str]) -> StudyResult:
        """Run one DICOM study (a discovered :class:`Study` or a folder holding one study).

        Raises
        ------
        NoUsableInputError
            The study does not meet the model's presence rule (its ``provenance`` says why).
        PreprocessingError, BackendError
            The study could not be run (unlike :meth:`predict_many`, which reports these as
            outcomes and goes on).
        """
        if isinstance(study, str | os.PathLike):
            from medfuse.runtime.dicom import discover_studies

            found = discover_studies(Path(study)).studies
            if len(found) != 1:
                raise StudyError(
                    f"predict() needs a folder holding exactly one study; it holds {len(found)} "
                    "(use predict_many over medfuse.runtime.dicom.discover_studies(...).studies)"
                )
            study = found[0]
        outcome = next(iter(self.predict_many([study], batch_size=1, workers=0)))
        if isinstance(outcome, StudyNotUsable):
            if isinstance(outcome.exception, NoUsableInputError):
                raise outcome.exception  # with its provenance and the read fault behind it
            raise NoUsableInputError(
                "the study does not meet the model's presence rule "
                f"({outcome.provenance.rule.describe()}): "
                + "; ".join(
                    f"{name}: {use.reason}"
                    for name, use in outcome.provenance.inputs.items()
                    if not use.present
                ),
                outcome.provenance,
            )
        if isinstance(outcome, StudyFailure):
            if outcome.exception is not None:
                raise outcome.exception
            raise BackendError(outcome.message)
        return outcome

    def predict_many(
        self, studies: Iterable[Study], batch_size: int = 8, workers: int | None = None
    ) -> Iterator[StudyOutcome]:
        """Run studies in batches; yield one outcome per study, in input order.

        Parameters
        ----------
        studies:
            Discovered studies (any iterable; consumed lazily, one batch ahead).
        batch_size:
            Studies per inference call (the last batch may be smaller).
        workers:
            Preprocessing threads (``None``: the session's thread plan; ``0``: preprocess
            inline, no overlap). Bounded by :func:`medfuse.runtime.threads.check_threads`.

        Yields
        ------
        StudyResult | StudyNotUsable | StudyFailure
            ``StudyResult`` when the presence rule is met (with the provenance of its inputs);
            ``StudyNotUsable`` when it is not (no outputs; the reasons per input, and the read
            failure that caused it if any); ``StudyFailure`` for any other error, with its
            PHI-free message. The run goes on after each.
        """
        spec = self._require_spec()
        lo, hi = self._backend.min_batch, self._backend.max_batch
        if lo == hi and batch_size != lo:
            logger.info("model has a fixed batch of %d; batch_size %d → %d", lo, batch_size, lo)
            batch_size = lo
        if not 1 <= batch_size <= hi:
            raise UsageError(f"batch_size {batch_size} is outside 1..{hi} for this session")
        if workers is None:
            workers = self.thread_plan.workers
        else:
            check_threads(workers, "workers", minimum=0)
        return self._pipeline(spec, iter(studies), batch_size, workers)

    # -- pipeline -------------------------------------------------------------------------------

    def _pipeline(
        self, spec: ModelSpec, studies: Iterator[Study], batch_size: int, workers: int
    ) -> Iterator[StudyOutcome]:
        pool = (
            ThreadPoolExecutor(max_workers=workers, thread_name_prefix="medfuse-prep")
            if workers > 0
            else None
        )
        pending: deque[_Batch] = deque()
        fixed = self._backend.min_batch == self._backend.max_batch
        slot = 0
        start = 0
        try:
            while True:
                chunk = _take(studies, batch_size)
                if not chunk:
                    break
                size = batch_size if fixed else len(chunk)
                buffers = self._backend.buffers(size, slot)
                slot ^= 1
                batch = _Batch(start=start, studies=chunk, buffers=buffers)
                for r in range(len(chunk), size):  # padding rows of a fixed-batch model
                    buffers.zero_row(r)
                for r, study in enumerate(chunk):
                    if pool is None:
                        done: Future[_Row] = Future()
                        done.set_result(self._prepare(spec, study, buffers, r))
                        batch.rows.append(done)
                    else:
                        batch.rows.append(pool.submit(self._prepare, spec, study, buffers, r))
                pending.append(batch)
                start += len(chunk)
                # Run the older batch while the workers fill the newer one.
                if len(pending) >= 2:
                    yield from self._finish(spec, pending.popleft())
            while pending:
                yield from self._finish(spec, pending.popleft())
        finally:
            for b in pending:
                for f in b.rows:
                    f.cancel()
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)

    def _prepare(self, spec: ModelSpec, study: Study, buffers: BufferSet, row: int) -> _Row:
        """Preprocess one study into its row of the bound buffers (runs in a worker thread)."""
        t0 = time.perf_counter()
        views = buffers.row(row)
        try:
            prepared = self._preprocessor()(study, spec, views)
            for name, view in views.items():
                if view.dtype.kind == "f" and not np.isfinite(view.sum()):
                    raise PreprocessingError(
                        f"input {name!r}: preprocessing produced non-finite values"
                    )
        except Exception as exc:  # reported per study; the run goes on
            buffers.zero_row(row)
            return _Row(error=exc, preprocess_ms=(time.perf_counter() - t0) * 1e3)
        return _Row(prepared=prepared, preprocess_ms=(time.perf_counter() - t0) * 1e3)

    def _finish(self, spec: ModelSpec, batch: _Batch) -> Iterator[StudyOutcome]:
        rows = [f.result() for f in batch.rows]
        infer_ms = 0.0
        outputs: dict[str, NDArray[Any]] = {}
        run_error: BaseException | None = None
        if any(r.error is None for r in rows):
            t0 = time.perf_counter()
            try:
                outputs = self._backend.execute(batch.buffers)
            except MedfuseError as exc:
                run_error = exc
            infer_ms = (time.perf_counter() - t0) * 1e3
        n = len(batch.studies)
        units = output_units(spec.extra)
        for r, (study, row) in enumerate(zip(batch.studies, rows, strict=True)):
            index = batch.start + r
            key = study.key(self._secret) if self._secret else None
            if row.error is not None:
                yield _unusable_or_failure(index, key, row.error, study, row.preprocess_ms)
                continue
            prepared = row.prepared
            assert prepared is not None
            failure = run_error or _non_finite(outputs, r)
            if failure is not None:
                yield StudyFailure(
                    index=index,
                    key=key,
                    error=error_info(failure, stage="inference", study=study),
                    provenance=prepared.provenance,
                    exception=failure,
                )
                continue
            yield StudyResult(
                index=index,
                key=key,
                outputs={
                    o.name: OutputResult.from_row(
                        o,
                        outputs[o.name][r],
                        units.get(o.name),
                        voxel_ml=prepared.voxel_ml(tuple(int(d) for d in o.shape[2:]), spec)
                        if o.kind == "segmentation"
                        else None,
                    )
                    for o in spec.outputs
                },
                provenance=prepared.provenance,
                timing_ms={
                    **{k: float(v) for k, v in prepared.timing_ms.items()},
                    "prepare": row.preprocess_ms,
                    "inference": infer_ms / n,
                    "inference_batch": infer_ms,
                },
                batch_size=n,
            )

    # -- helpers --------------------------------------------------------------------------------

    def _preprocessor(self) -> Preprocessor:
        if self._preprocess is None:
            from medfuse.runtime.preprocess import preprocess_study

            self._preprocess = preprocess_study
        return self._preprocess

    def _require_spec(self) -> ModelSpec:
        if self._spec is None:
            raise UsageError(
                "predict needs a bundle with a model spec; this session runs a bare ONNX file "
                "(use infer() with tensors, or export a bundle)"
            )
        return self._spec

    def _check_spec(self) -> None:
        """The manifest's inputs/outputs must be the graph's (names, shapes)."""
        if self._spec is None:
            return
        graph_in = {t.name: t for t in self._backend.input_specs}
        graph_out = {t.name for t in self._backend.output_specs}
        want_in = [i.name for i in self._spec.inputs]
        want_out = {o.name for o in self._spec.outputs}
        if set(want_in) != set(graph_in) or not want_out <= graph_out:
            raise IncompatibleBundleError(
                f"the manifest's tensors (inputs {sorted(want_in)}, outputs {sorted(want_out)}) "
                f"do not match the model file {self.choice.model_path.name} (inputs "
                f"{sorted(graph_in)}, outputs {sorted(graph_out)}); re-export the bundle"
            )
        for i in self._spec.inputs:
            g = graph_in[i.name]
            if g.sample_shape != i.sample_shape() or g.dtype.name != i.dtype:
                raise IncompatibleBundleError(
                    f"input {i.name!r}: manifest says {i.dtype}{[*i.shape]}, the model file "
                    f"{self.choice.model_path.name} has {g.describe()}; re-export the bundle"
                )

    def _variant_sha256(self) -> str | None:
        manifest = getattr(self._bundle, "manifest", None)
        variants = getattr(manifest, "variants", None) or {}
        variant = variants.get(self.choice.precision) if isinstance(variants, Mapping) else None
        sha = getattr(variant, "sha256", None)
        return str(sha) if sha else None


def _take(it: Iterator[Study], n: int) -> list[Study]:
    out: list[Study] = []
    for item in it:
        out.append(item)
        if len(out) == n:
            break
    return out


def _unusable_or_failure(
    index: int, key: str | None, exc: BaseException, study: Study, prepare_ms: float
) -> StudyNotUsable | StudyFailure:
    """The outcome of a study whose preprocessing raised ``exc`` (PHI-free, redacted)."""
    if isinstance(exc, NoUsableInputError):
        return StudyNotUsable(
            index=index,
            key=key,
            provenance=exc.provenance,
            error=fault_error(exc.provenance),
            timing_ms={"prepare": prepare_ms},
            exception=exc,
        )
    return StudyFailure(
        index=index,
        key=key,
        error=error_info(exc, stage="preprocess", study=study),
        exception=exc,
    )


def _non_finite(outputs: Mapping[str, NDArray[Any]], row: int) -> NonFiniteOutputError | None:
    """The error for row ``row`` of a batch whose outputs hold NaN or inf, else None."""
    bad = [
        name
        for name, value in outputs.items()
        if value.dtype.kind == "f" and not np.isfinite(value[row]).all()
    ]
    if not bad:
        return None
    return NonFiniteOutputError(
        f"the model's output(s) {bad} hold NaN or infinite values for this study; no result is "
        "given (check the bundle with `medfuse validate`)"
    )
