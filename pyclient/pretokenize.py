"""Tokenize at ingest: the producer's documents become token-id records
(:mod:`pyclient.token_records`), tokenized inline or in worker processes.

The producer's items (:mod:`pyclient.inputs`) go through :meth:`Pretokenizer.items` in
chunks (:data:`CHUNK_ITEMS` items or :data:`CHUNK_BYTES` bytes) and come back one by one in
input order, unchanged except that a good document's value is its token-id record (its
``raw`` keeps the document, for the dead-letter file). Malformed items keep their place.
With ``workers > 1`` the chunks are tokenized by that many ``spawn`` processes, at most
``2 * workers`` chunks ahead, and handed back in submission order: the record order is the
one-worker order. The look-ahead is never checkpointed: the producer moves its checkpoint
only over items it produced and saw acknowledged, so the chunks in flight at a stop are
read again by the resume.

The documents are tokenized as the training feed tokenizes a text record
(:func:`pyclient.tokenize.as_value_encoder`: the byte tokenizer takes the UTF-8 bytes as they
are, any other gets them decoded), so a pre-tokenized topic packs into the same batches.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from .inputs import Item
from .token_records import TokenizerId, encode, tokenizer_id
from .tokenize import as_value_encoder, load_tokenizer

#: A chunk closes after this many items (good or malformed) or this many bytes of documents
#: (raw bytes for malformed items), whichever comes first.
CHUNK_ITEMS, CHUNK_BYTES = 256, 1 << 20


class TokenEncoder:
    """Documents (UTF-8 bytes) -> token-id record values (ids without EOS)."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self.tid: TokenizerId = tokenizer_id(tokenizer)
        self._ids = as_value_encoder(tokenizer)

    def __call__(self, values: list[bytes]) -> list[bytes]:
        tid = self.tid
        return [encode(ids, tid) for ids in self._ids(values)]


class Pretokenizer:
    """Token-id records for the producer. ``tokenizer``: a ByteTokenizer, a
    ``tokenizers.Tokenizer``, a ``transformers`` fast tokenizer, or a spec for
    :func:`pyclient.tokenize.load_tokenizer` (``"bytes"`` or a tokenizer.json path).
    ``workers``: tokenizer processes (1: tokenize in the calling process)."""

    def __init__(self, tokenizer: Any, workers: int = 1) -> None:
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ValueError(f"tokenize workers must be an integer >= 1, got {workers!r}")
        if isinstance(tokenizer, str):
            tokenizer = load_tokenizer(tokenizer)
        self.encoder = TokenEncoder(tokenizer)
        self.tid = self.encoder.tid
        self.workers = workers
        self._pool: ProcessPoolExecutor | None = None

    def start(self) -> None:
        """Start the worker processes (``workers > 1``); :meth:`close` stops them."""
        if self.workers == 1 or self._pool is not None:
            return
        try:
            blob = pickle.dumps(self.encoder.tokenizer)
        except Exception as e:
            raise ValueError(f"tokenizer {type(self.encoder.tokenizer).__name__} cannot be sent "
                             f"to worker processes ({e}): use one tokenize worker") from e
        self._pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context(
            "spawn"), initializer=_init_worker, initargs=(blob, os.getpid()))

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def items(self, items: Iterator[Item],
              stopped: Callable[[], bool] = lambda: False) -> Iterator[Item]:
        """``items`` in their order, good documents as token-id records. ``stopped``: the
        producer's stop flag; a worker pool broken after a stop (a signal sent to the whole
        process group) ends the items instead of raising."""
        if self._pool is None:
            for chunk, values in _chunks(items):
                yield from _merge(chunk, self.encoder(values))
            return
        pool, depth = self._pool, 2 * self.workers
        pending: deque[tuple[list[Item], Future[list[bytes]]]] = deque()
        try:
            for chunk, values in _chunks(items):
                try:
                    pending.append((chunk, pool.submit(_encode_chunk, values)))
                except (BrokenProcessPool, RuntimeError) as e:
                    if stopped():
                        return
                    raise _broken(e) from e
                if len(pending) >= depth:
                    done = self._result(pending.popleft(), stopped)
                    if done is None:
                        return
                    yield from done
            while pending:
                done = self._result(pending.popleft(), stopped)
                if done is None:
                    return
                yield from done
        finally:
            for _, f in pending:
                f.cancel()

    @staticmethod
    def _result(entry: tuple[list[Item], Future[list[bytes]]],
                stopped: Callable[[], bool]) -> Iterator[Item] | None:
        chunk, fut = entry
        try:
            encoded = fut.result()
        except BrokenProcessPool as e:
            if stopped():
                return None
            raise _broken(e) from e
        return _merge(chunk, encoded)


def _broken(e: Exception) -> RuntimeError:
    return RuntimeError(f"a tokenizer worker process died ({e}); the ingest stopped. A resume "
                        "with the same checkpoint loses nothing (records after its last "
                        "periodic check may be sent again). Workers are started with 'spawn': "
                        "a script using tokenize_workers > 1 needs the "
                        "`if __name__ == '__main__':` guard")


def _chunks(items: Iterator[Item]) -> Iterator[tuple[list[Item], list[bytes]]]:
    """Items in chunks, with the good documents' values of each chunk."""
    chunk: list[Item] = []
    values: list[bytes] = []
    size = 0
    for it in items:
        chunk.append(it)
        v = it[2]
        if v is not None:
            values.append(v)
            size += len(v)
        else:
            size += len(it[5])
        if len(chunk) >= CHUNK_ITEMS or size >= CHUNK_BYTES:
            yield chunk, values
            chunk, values, size = [], [], 0
    if chunk:
        yield chunk, values


def _merge(chunk: list[Item], encoded: list[bytes]) -> Iterator[Item]:
    nxt = iter(encoded).__next__
    for pos, end, value, key, bad, raw in chunk:
        if value is None:
            yield pos, end, None, key, bad, raw
        else:
            yield pos, end, nxt(), key, None, raw or value


# -- worker processes ------------------------------------------------------------------------
_ENCODER: TokenEncoder | None = None


def _init_worker(blob: bytes, parent: int) -> None:
    # Ctrl-C reaches the whole process group: the parent stops, flushes, checkpoints and shuts
    # the workers down; a worker must not die of it first.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # One thread per worker process (Hugging Face's encode_batch would use every core each).
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    global _ENCODER
    _ENCODER = TokenEncoder(pickle.loads(blob))
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True).start()


def _exit_with_parent(parent: int) -> None:
    """A parent killed with SIGKILL cannot shut its workers down: they leave on their own."""
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(1)


def _encode_chunk(values: list[bytes]) -> list[bytes]:
    assert _ENCODER is not None
    return _ENCODER(values)
