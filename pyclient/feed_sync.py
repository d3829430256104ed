"""Equal batch counts across data-parallel ranks: a collective must never wait on a rank that
ran out of data.

Partitions hold different amounts of text, so ranks end an epoch after different numbers of
batches. :func:`even_batches` wraps the training loop's iterable and, before each step,
agrees with all ranks (one ``all_reduce`` of one integer) on whether to go on:

- ``policy="pad"``: go on while any rank has a batch; a rank without one gets a padding
  batch shaped like its last one (``input_ids`` = ``pad_id``, ``attention_mask`` all 0,
  ``kafka_state`` None, ``padding`` True; after packed batches also ``doc_ids`` -1,
  ``position_ids`` 0, ``labels`` -100, ``cu_seqlens`` ``[0]`` per row). Nothing is dropped.
- ``policy="drop"``: stop as soon as any rank has none; the other ranks' remaining batches
  of the epoch are not trained on (their records stay unread in the state: a resume of this
  epoch would deliver them; the next epoch reads everything again).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, Literal


def even_batches(batches: Iterable[dict[str, Any]], policy: Literal["pad", "drop"] = "pad",
                 pad_id: int = 0, group: Any = None,
                 shape: tuple[int, int] | None = None) -> Iterator[dict[str, Any]]:
    """Yield the same number of batches on every rank of ``group`` (default: the world).
    ``shape`` ``(batch_size, seq_len)`` shapes padding batches on a rank that has none yet."""
    import torch
    import torch.distributed as dist

    if policy not in ("pad", "drop"):
        raise ValueError(f"policy must be 'pad' or 'drop', got {policy!r}")
    if not dist.is_initialized():
        yield from batches
        return
    op = dist.ReduceOp.MAX if policy == "pad" else dist.ReduceOp.MIN
    it = iter(batches)
    last: dict[str, Any] | None = None
    while True:
        b = next(it, None)
        flag = torch.tensor([0 if b is None else 1], dtype=torch.int64)
        dist.all_reduce(flag, op=op, group=group)
        if not flag.item():
            return
        if b is not None:
            last = b
            yield b
            continue
        if last is None and shape is None:
            raise RuntimeError("even_batches(policy='pad'): this rank has no batch yet to shape "
                               "a padding batch on; pass shape=(batch_size, seq_len)")
        x = last["input_ids"] if last is not None else torch.zeros(shape, dtype=torch.int64)
        pad = {"input_ids": torch.full_like(x, pad_id), "attention_mask": torch.zeros_like(x),
               "kafka_state": None, "padding": True}
        if last is not None:  # packed batches (packing=): the segment fields, all padding
            for k, fill in (("doc_ids", -1), ("position_ids", 0), ("labels", -100)):
                if k in last:
                    pad[k] = torch.full_like(x, fill)
            if "cu_seqlens" in last:
                pad["cu_seqlens"] = [[0] for _ in range(x.shape[0])]
        yield pad
