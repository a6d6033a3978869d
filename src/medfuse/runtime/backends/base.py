"""The backend protocol: what every inference backend (ONNX Runtime, TensorRT) implements.

Modelled on Polygraphy's runners: the public methods (:meth:`Backend.activate`,
:meth:`Backend.infer`, :meth:`Backend.execute`, :meth:`Backend.deactivate`) check state and
validate inputs, then call the backend's ``*_impl`` methods, which do only the backend work.

Buffer ownership
----------------
The backend owns every :class:`~medfuse.runtime.buffers.BufferSet` it allocates. The arrays
are allocated once per batch size (and slot) and bound to the backend; they stay valid until
:meth:`Backend.deactivate`. The arrays :meth:`Backend.infer` returns **are** the bound output
buffers: they are overwritten by the next call with the same batch size. Copy them
(``{k: v.copy() for k, v in out.items()}``) to keep results across calls.
"""

from __future__ import annotations

import logging
import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from medfuse.errors import BackendError
from medfuse.runtime.buffers import BufferPool, BufferSet

__all__ = ["DEFAULT_MAX_BATCH", "Backend", "TensorSpec"]

logger = logging.getLogger(__name__)

DEFAULT_MAX_BATCH = 32

_MAX_LAYOUTS = 64
"""Feed layouts remembered as validated per backend (more are validated on every call)."""


@dataclass(frozen=True)
class TensorSpec:
    """A backend tensor: name, numpy dtype, shape with ``None`` for the dynamic batch axis."""

    name: str
    dtype: np.dtype[Any]
    shape: tuple[int | None, ...]

    @cached_property
    def sample_shape(self) -> tuple[int, ...]:
        """Shape without the batch axis (every non-batch dimension is fixed)."""
        if None in self.shape[1:]:
            raise BackendError(
                f"tensor {self.name!r} has a symbolic dimension beyond the batch axis"
            )
        return tuple(int(d) for d in self.shape[1:] if d is not None)

    @property
    def fixed_batch(self) -> int | None:
        """The batch size when the model fixes it, else ``None``."""
        return self.shape[0] if self.shape else None

    def batch_shape(self, batch: int) -> tuple[int, ...]:
        """The full shape for ``batch`` rows."""
        return (batch, *self.sample_shape)

    def describe(self) -> str:
        dims = ", ".join("batch" if d is None else str(d) for d in self.shape)
        return f"{self.name}: {self.dtype.name}[{dims}]"


class Backend(ABC):
    """An inference backend over buffers allocated once per batch size.

    Use as a context manager, or call :meth:`activate` / :meth:`deactivate`. See the module
    docstring for who owns the buffers and how long returned arrays stay valid.

    Parameters
    ----------
    max_batch:
        Largest batch a dynamic-batch model accepts (a model with a fixed batch axis accepts
        exactly that size).
    check_finite:
        Reject feeds containing NaN or infinity (one extra pass over each input, no allocation).
    """

    name: ClassVar[str] = "backend"

    def __init__(self, *, max_batch: int = DEFAULT_MAX_BATCH, check_finite: bool = True) -> None:
        if max_batch < 1:
            raise BackendError(f"max_batch must be at least 1, got {max_batch}")
        self._max_batch = max_batch
        self._check_finite = check_finite
        self._active = False
        self._pool = BufferPool(self._allocate_checked, self.release_impl)
        self._inputs: tuple[TensorSpec, ...] = ()
        self._outputs: tuple[TensorSpec, ...] = ()
        # feed layouts (name, type, dtype, shape per feed) already validated → their batch
        self._layouts: dict[tuple[tuple[Any, ...], ...], int] = {}
        self._float_inputs: tuple[str, ...] = ()

    # -- implementation hooks ------------------------------------------------------------------

    @abstractmethod
    def activate_impl(self) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
        """Load the model; return its input and output specs."""

    @abstractmethod
    def allocate_impl(self, batch: int) -> BufferSet:
        """Allocate and bind the input and output arrays for ``batch`` rows."""

    @abstractmethod
    def execute_impl(self, buffers: BufferSet) -> None:
        """Run the model on ``buffers.inputs``, writing ``buffers.outputs`` in place."""

    @abstractmethod
    def deactivate_impl(self) -> None:
        """Release the model (buffers are released before this is called)."""

    def release_impl(self, buffers: BufferSet) -> None:  # noqa: B027 - optional hook
        """Unbind one buffer set (default: nothing to do)."""

    @property
    def providers(self) -> tuple[str, ...]:
        """What actually executes the model (e.g. ONNX Runtime execution providers)."""
        return (self.name,)

    # -- public API -----------------------------------------------------------------------------

    @property
    def is_active(self) -> bool:
        return self._active

    def activate(self) -> None:
        """Load the model and read its tensor specs."""
        if self._active:
            raise BackendError(f"{self.name} backend is already active")
        self._inputs, self._outputs = self.activate_impl()
        self._layouts.clear()
        self._float_inputs = tuple(t.name for t in self._inputs if t.dtype.kind == "f")
        self._active = True
        logger.info(
            "%s backend active: inputs %s; outputs %s",
            self.name,
            "; ".join(t.describe() for t in self._inputs),
            "; ".join(t.describe() for t in self._outputs),
        )

    def deactivate(self) -> None:
        """Release buffers and the model. Arrays returned earlier must no longer be used."""
        if not self._active:
            return
        self._pool.clear()
        self.deactivate_impl()
        self._layouts.clear()
        self._active = False

    def __enter__(self) -> Backend:
        self.activate()
        return self

    def __exit__(self, *exc: object) -> None:
        self.deactivate()

    @property
    def input_specs(self) -> tuple[TensorSpec, ...]:
        self._require_active()
        return self._inputs

    @property
    def output_specs(self) -> tuple[TensorSpec, ...]:
        self._require_active()
        return self._outputs

    @property
    def max_batch(self) -> int:
        """The largest batch :meth:`infer` accepts."""
        self._require_active()
        fixed = {t.fixed_batch for t in self._inputs if t.fixed_batch is not None}
        return min(fixed) if fixed else self._max_batch

    @property
    def min_batch(self) -> int:
        """The smallest batch :meth:`infer` accepts (the fixed batch, or 1)."""
        self._require_active()
        fixed = {t.fixed_batch for t in self._inputs if t.fixed_batch is not None}
        return max(fixed) if fixed else 1

    def buffers(self, batch: int, slot: int = 0) -> BufferSet:
        """The bound buffer set for ``batch`` rows in ``slot`` (allocated on first use)."""
        self._require_active()
        self._check_batch(batch)
        return self._pool.get(batch, slot)

    def execute(self, buffers: BufferSet) -> dict[str, NDArray[Any]]:
        """Run the model on a buffer set from :meth:`buffers`, already filled in place.

        Returns the set's output arrays (no copy; valid until the set is run again).
        """
        self._require_active()
        if not self._pool.owns(buffers):
            raise BackendError(
                "execute() needs a buffer set allocated by this backend's buffers(); "
                "use infer() for arbitrary arrays"
            )
        self.execute_impl(buffers)
        return dict(buffers.outputs)

    def infer(self, feeds: Mapping[str, NDArray[Any]]) -> dict[str, NDArray[Any]]:
        """Validate ``feeds``, copy them into the bound buffers, run, return the outputs.

        Parameters
        ----------
        feeds:
            One array per model input, keyed by input name, all with the same batch size.
            A feed that *is* the bound buffer (from :meth:`buffers`) is not copied.

        Returns
        -------
        dict
            Output arrays by name. These are the reused output buffers: valid until the next
            call with the same batch size. Copy to keep.

        Raises
        ------
        BackendError
            Missing or unexpected names, wrong dtype or shape, a batch outside
            ``[min_batch, max_batch]``, or non-finite values.
        """
        self._require_active()
        batch = self._layout_batch(feeds)
        if self._check_finite:
            for name in self._float_inputs:
                _check_finite(name, feeds[name])
        buffers = self._pool.get(batch, 0)
        self.infer_impl(buffers, feeds)
        return dict(buffers.outputs)

    def infer_impl(self, buffers: BufferSet, feeds: Mapping[str, NDArray[Any]]) -> None:
        """Run validated ``feeds`` writing ``buffers.outputs`` (default: copy in, execute).

        A backend that can read the caller's arrays in place (ONNX Runtime binds them) overrides
        this to skip the copy.
        """
        for name, dst in buffers.inputs.items():
            src = feeds[name]
            if src is not dst:
                np.copyto(dst, src)
        self.execute_impl(buffers)

    # -- checks ---------------------------------------------------------------------------------

    def _require_active(self) -> None:
        if not self._active:
            raise BackendError(
                f"{self.name} backend is not active; call activate() or use it in a with-block"
            )

    def _allocate_checked(self, batch: int) -> BufferSet:
        buffers = self.allocate_impl(batch)
        logger.debug("%s: bound buffers for batch %d (%d bytes)", self.name, batch, buffers.nbytes)
        return buffers

    def _check_batch(self, batch: int) -> None:
        lo, hi = self.min_batch, self.max_batch
        if not lo <= batch <= hi:
            allowed = str(lo) if lo == hi else f"{lo}..{hi}"
            raise BackendError(f"batch size {batch} is not allowed; this model accepts {allowed}")

    def _layout_batch(self, feeds: Mapping[str, NDArray[Any]]) -> int:
        """The batch size of ``feeds``, validated once per feed layout.

        A layout is the names, array types, dtypes and shapes of the feeds; the first call with
        a layout runs :meth:`_validate_feeds` (names, types, shapes, batch bounds), later calls
        with the same layout cost one dictionary look-up. Values (finiteness) are checked on
        every call by :meth:`infer`.
        """
        try:
            key = tuple([(n, type(a), a.dtype, a.shape) for n, a in feeds.items()])
        except (AttributeError, TypeError):  # not a mapping of arrays: the full check says why
            return self._validate_feeds(feeds)
        batch = self._layouts.get(key)
        if batch is None:
            batch = self._validate_feeds(feeds)
            if len(self._layouts) < _MAX_LAYOUTS:
                self._layouts[key] = batch
        return batch

    def _validate_feeds(self, feeds: Mapping[str, NDArray[Any]]) -> int:
        """Check names, types, shapes and batch; return the batch size."""
        if not isinstance(feeds, Mapping):
            raise BackendError(
                f"feeds must be a mapping of input name to array, got {type(feeds).__name__}"
            )
        expected = [t.name for t in self._inputs]
        if len(feeds) != len(expected) or any(n not in feeds for n in expected):
            missing = [n for n in expected if n not in feeds]
            extra = sorted(str(n) for n in feeds if n not in expected)
            parts = []
            if missing:
                parts.append(f"missing {missing}")
            if extra:
                parts.append(f"unexpected {extra}")
            raise BackendError(f"feeds: {', '.join(parts)}; the model's inputs are {expected}")
        batch = -1
        for spec in self._inputs:
            arr = feeds[spec.name]
            if not isinstance(arr, np.ndarray):
                raise BackendError(
                    f"input {spec.name!r}: expected a numpy array, got {type(arr).__name__}"
                )
            if arr.dtype != spec.dtype:
                raise BackendError(
                    f"input {spec.name!r}: dtype {arr.dtype.name}, expected {spec.dtype.name} "
                    f"(convert with arr.astype(np.{spec.dtype.name}))"
                )
            if arr.shape[1:] != spec.sample_shape:
                want = ["batch", *spec.sample_shape]
                raise BackendError(f"input {spec.name!r}: shape {list(arr.shape)}, expected {want}")
            if batch == -1:
                batch = arr.shape[0]
            elif arr.shape[0] != batch:
                raise BackendError(
                    f"input {spec.name!r}: batch {arr.shape[0]} differs from the other "
                    f"inputs' batch {batch}; all inputs need the same batch size"
                )
        self._check_batch(batch)
        return batch


_add_reduce = np.add.reduce


def _check_finite(name: str, arr: NDArray[Any]) -> None:
    """Raise BackendError when ``arr`` holds NaN or infinity; allocation-free when it does not."""
    # A sum is NaN/inf whenever an element is; it allocates nothing (unlike np.isfinite(arr)).
    if math.isfinite(_add_reduce(arr, axis=None)):
        return
    bad = int(arr.size - np.count_nonzero(np.isfinite(arr)))
    if bad == 0:  # the float sum overflowed on large but finite values
        return
    nans = int(np.count_nonzero(np.isnan(arr)))
    raise BackendError(
        f"input {name!r}: {bad} non-finite value(s) ({nans} NaN, {bad - nans} infinite); "
        "inputs must be finite"
    )
