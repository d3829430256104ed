#!/usr/bin/env python3
"""Token-id record decoding, the pre-tokenized feed's per-record work, without a broker:
``pyclient.token_records.records_decoder`` (a call's records decoded at once: joined values,
one ``tolist()``, one vectorised vocabulary check) against ``RecordDecoder.decode`` record by
record (what the feed did before), on the same records, alternating, median of ``--repeat``.

Records: ``--tokens`` random ids each (about a 1 KiB document under an 8,000-token BPE:
415), ``--batch`` records per call (the feed's ``tokenize_batch``, 64), for several
vocabulary sizes (uint16 and uint32 records). Prints us/record and the ratio per vocabulary.

  python benchmarks/bench_token_decode.py [--records 64 --tokens 415 --repeat 7]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _common import table  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=64, help="records per decode call")
    ap.add_argument("--tokens", type=int, default=415, help="ids per record")
    ap.add_argument("--calls", type=int, default=300, help="decode calls per timing")
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--vocab", type=int, nargs="+", default=[8000, 32000, 50257, 128256])
    a = ap.parse_args()

    from pyclient.backends import Record
    from pyclient.token_records import RecordDecoder, TokenizerId, encode, records_decoder

    rows = []
    for vocab in a.vocab:
        tid = TokenizerId("bpe", "h" * 64, vocab)
        rnd = random.Random(vocab)
        recs = [Record("t", 0, i, None, encode([rnd.randrange(vocab) for _ in range(a.tokens)],
                                                tid), tid.headers()) for i in range(a.batch)]
        dec = RecordDecoder(tid)

        def by_record(rs: list[Record]) -> list[list[int]]:
            return [dec.decode(r.value, r.headers, "") for r in rs]
        batched = records_decoder(tid)
        assert batched(recs) == by_record(recs)
        times: dict[str, list[float]] = {"by_record": [], "batched": []}
        for _ in range(a.repeat):  # alternate, so both see the same background
            for name, fn in (("by_record", by_record), ("batched", batched)):
                t0 = time.perf_counter()
                for _ in range(a.calls):
                    fn(recs)
                times[name].append((time.perf_counter() - t0) / a.calls / a.batch * 1e6)
        old, new = (statistics.median(times[k]) for k in ("by_record", "batched"))
        pairs = [o / n for o, n in zip(times["by_record"], times["batched"])]
        rows.append({"vocab": vocab, "dtype": tid.dtype, "by_record": old, "batched": new,
                     "ratio": old / new, "min": min(pairs), "max": max(pairs)})
    print(f"{a.batch} records of {a.tokens} ids per call, median of {a.repeat} alternating runs "
          f"of {a.calls} calls")
    print(table(rows, [("vocab", "vocabulary", "d"), ("dtype", "dtype", "s"),
                       ("by_record", "record by record us/rec", ".2f"),
                       ("batched", "batched us/rec", ".2f"),
                       ("ratio", "by record / batched", ".2f"), ("min", "min pair", ".2f"),
                       ("max", "max pair", ".2f")]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
