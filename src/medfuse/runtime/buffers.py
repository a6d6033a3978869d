"""Host buffers a backend binds once and reuses: one :class:`BufferSet` per batch size and slot.

A backend allocates a buffer set the first time a batch size is used, binds it (ONNX Runtime:
an ``IOBinding`` over the arrays' memory; TensorRT: tensor addresses), and from then on every
call with that batch size runs on the same memory. Nothing is allocated per call:

- :meth:`medfuse.runtime.backends.base.Backend.infer` copies each feed once into the bound
  input array (or skips the copy when the feed *is* the bound array);
- the predict path lets preprocessing write each study straight into its row of the bound
  input arrays (:meth:`BufferSet.row`);
- outputs are the bound output arrays themselves.

Two slots per batch size give double buffering: workers fill slot ``1`` while the backend runs
slot ``0``. A partial last batch gets buffer sets of its own size (allocated lazily, cached),
rather than padding a full batch: padding would run the model on rows nobody asked for.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["BufferPool", "BufferSet", "aligned_empty", "zero_arrays"]


@dataclass(eq=False)
class BufferSet:
    """Input and output arrays for one batch size, bound to a backend.

    Attributes
    ----------
    batch:
        The batch size (first axis of every array).
    inputs, outputs:
        Arrays by tensor name. Their memory is bound to the backend: write inputs in place
        (``buffers.inputs[name][...] = x``), never rebind the dict entries.
    handle:
        The backend's binding object (owned by the backend; opaque to everyone else).
    """

    batch: int
    inputs: dict[str, NDArray[Any]]
    outputs: dict[str, NDArray[Any]]
    handle: Any = field(default=None, repr=False)

    def row(self, index: int) -> dict[str, NDArray[Any]]:
        """Views of row ``index`` of every input (what preprocessing writes one study into)."""
        return {name: arr[index] for name, arr in self.inputs.items()}

    def zero_row(self, index: int) -> None:
        """Zero row ``index`` of every input (a failed study must not leave stale data)."""
        for arr in self.inputs.values():
            arr[index] = 0

    @property
    def nbytes(self) -> int:
        """Total bytes held by this set."""
        return sum(a.nbytes for a in self.inputs.values()) + sum(
            a.nbytes for a in self.outputs.values()
        )


class BufferPool:
    """Lazily allocated buffer sets, cached by ``(batch, slot)``.

    Parameters
    ----------
    allocate:
        Makes and binds a new :class:`BufferSet` for a batch size (a backend's ``allocate_impl``).
    release:
        Optional: unbinds a set when the pool is cleared.
    """

    def __init__(
        self,
        allocate: Callable[[int], BufferSet],
        release: Callable[[BufferSet], None] | None = None,
    ) -> None:
        self._allocate = allocate
        self._release = release
        self._sets: dict[tuple[int, int], BufferSet] = {}

    def get(self, batch: int, slot: int = 0) -> BufferSet:
        """The buffer set for ``batch`` in ``slot``, allocated on first use."""
        key = (batch, slot)
        found = self._sets.get(key)
        if found is None:
            found = self._allocate(batch)
            self._sets[key] = found
        return found

    def owns(self, buffers: BufferSet) -> bool:
        """Whether ``buffers`` came from this pool."""
        return any(b is buffers for b in self._sets.values())

    def __iter__(self) -> Iterator[BufferSet]:
        return iter(list(self._sets.values()))

    def __len__(self) -> int:
        return len(self._sets)

    def clear(self) -> None:
        """Release every set (after this, old arrays are no longer bound)."""
        sets = list(self._sets.values())
        self._sets.clear()
        if self._release is not None:
            for s in sets:
                self._release(s)


def zero_arrays(arrays: Mapping[str, NDArray[Any]]) -> None:
    """Fill every array with zeros in place."""
    for arr in arrays.values():
        arr.fill(0)


def aligned_empty(shape: tuple[int, ...], dtype: np.dtype[Any], align: int = 64) -> NDArray[Any]:
    """An uninitialised C-contiguous array whose data pointer is ``align``-byte aligned.

    Vectorised kernels (and TensorRT's host copies) are fastest on cache-line aligned memory;
    numpy only guarantees 16 bytes.
    """
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    raw = np.empty(nbytes + align, dtype=np.uint8)
    offset = (-raw.ctypes.data) % align
    out: NDArray[Any] = raw[offset : offset + nbytes].view(dtype).reshape(shape)
    return out
