"""Take the next batches off a DataLoader in a background thread, with an exact state.

Measured (docs/pyclient.md, "The training loop's data wait"): a training loop's ``next()``
on a ``DataLoader`` with workers costs about 1.5 ms per batch on this project's machines
even when the batch is long ready -- unpickling it, and for a tensor one authenticated
connection to the worker to receive its shared-memory file descriptor. At a 20 ms step that
is 6-7% of the loop. :class:`Prefetcher` moves that hand-over into a thread that runs while
the step computes (a CUDA step, or torch's CPU kernels, release the GIL); the loop's
``next()`` is then a queue pop. Tensors that arrive in shared memory (from the workers) are
copied into the process's own memory in that thread too (``own_memory=True``): freeing a
shared-memory tensor (an ``munmap`` and a file descriptor closed) happens where the loop drops
its previous batch, and measured there it was half of the wait that was left.

``state_dict()`` is the wrapped loader's state **as of the last batch the loop took**, not of
the batches the thread fetched ahead: the thread calls ``loader.state_dict()`` right after
each ``next()`` and the state travels with its batch. So ``Prefetcher(StatefulDataLoader(ds,
num_workers=2))`` checkpoints and resumes exactly like the loader alone (tested on the real
broker, with fork and spawn workers, at random stop points). A loader with no
``state_dict`` (a plain ``DataLoader``) works for iteration; its batches still carry their
``kafka_state`` for ``ds.update()``. The thread ends, and the batches it holds are dropped,
when the loop breaks or is closed; an exception of the loader is raised in the loop after
the batches that came before it.
"""

from __future__ import annotations

import copy
import queue
import threading
from collections.abc import Iterator
from typing import Any

_BATCH, _END, _ERROR = 0, 1, 2


class PrefetchError(RuntimeError):
    """A Prefetcher used in a way that would lose its exactness."""


class Prefetcher:
    """``for batch in Prefetcher(loader, depth=2)``: up to ``depth`` batches fetched ahead.

    Iterate it once per epoch, like the loader. ``state_dict()`` / ``load_state_dict()`` are
    the loader's (``load_state_dict`` before iterating)."""

    def __init__(self, loader: Any, depth: int = 2, own_memory: bool = True) -> None:
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
            raise PrefetchError(f"depth must be an int >= 1, got {depth!r}")
        self.loader, self.depth, self.own_memory = loader, depth, own_memory
        self._stateful = callable(getattr(loader, "state_dict", None))
        self._state: Any = None
        self._have_state = False
        self._running = False

    def __len__(self) -> int:
        return len(self.loader)

    def state_dict(self) -> Any:
        """The loader's state after the last batch this Prefetcher handed out (before the
        first one: the loader's own state)."""
        if not self._stateful:
            raise PrefetchError(f"{type(self.loader).__name__} has no state_dict(): wrap a "
                                "torchdata StatefulDataLoader (or the dataset itself), or keep "
                                "the state from the batches' kafka_state with ds.update()")
        if self._have_state:
            return copy.deepcopy(self._state)
        if self._running:  # another thread asks while this one waits for the first batch
            raise PrefetchError("state_dict() before the first batch of a running iteration")
        return self.loader.state_dict()

    def load_state_dict(self, state: Any) -> None:
        if self._running:
            raise PrefetchError("load_state_dict() while iterating: load it before the loop "
                                "(break out of the running one first)")
        self.loader.load_state_dict(state)
        self._have_state = False

    def __iter__(self) -> Iterator[Any]:
        if self._running:
            raise PrefetchError("this Prefetcher is already being iterated; iterate it once "
                                "at a time (one epoch after the other)")
        self._running = True
        q: queue.Queue[tuple[int, Any, Any]] = queue.Queue(self.depth)
        stop = threading.Event()
        stateful, loader, own = self._stateful, self.loader, self.own_memory

        def snap() -> Any:
            return copy.deepcopy(loader.state_dict()) if stateful else None

        def put(item: tuple[int, Any, Any]) -> bool:
            while not stop.is_set():
                try:
                    q.put(item, timeout=0.1)
                    return True
                except queue.Full:
                    continue
            return False

        def run() -> None:
            try:
                for b in loader:
                    if own:
                        b = _own(b)
                    if not put((_BATCH, b, snap())):
                        return
                put((_END, None, snap()))
            except BaseException as e:  # noqa: BLE001 - handed to the loop, raised there
                put((_ERROR, e, None))

        t = threading.Thread(target=run, name="pyclient-prefetch", daemon=True)
        t.start()
        try:
            while True:
                kind, item, st = q.get()
                if kind == _ERROR:
                    raise item
                self._state, self._have_state = st, stateful
                if kind == _END:
                    return
                yield item
        finally:
            stop.set()
            while t.is_alive():  # unblock a put, then wait for the loader's next() to end
                try:
                    q.get(timeout=0.1)
                except queue.Empty:
                    pass
            t.join()
            self._running = False


def _own(x: Any) -> Any:
    """``x`` with every tensor in shared memory replaced by a copy in this process's own
    memory (dicts, lists and tuples walked; anything else as it is)."""
    if isinstance(x, dict):
        return {k: _own(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)) and not hasattr(x, "_fields"):
        return type(x)(_own(v) for v in x)
    is_shared = getattr(x, "is_shared", None)
    if callable(is_shared) and hasattr(x, "clone") and is_shared():
        return x.clone()
    return x
