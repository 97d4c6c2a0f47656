"""Seeded random columns that are fast to draw and stable under a change of row count.

Every random column is drawn from ``random.Random`` instances seeded with a string derived from
``(seed, purpose, block)``. Columns are produced block-wise (``BLOCK`` rows per generator) with
:meth:`random.Random.randbytes` and vectorised with polars, so they are *prefix stable*: row ``i`` only
depends on the seed, the purpose and ``i // BLOCK``. ``set_customer_count(400)`` therefore yields exactly
the first 400 rows of ``set_customer_count(650)``, and a larger ``scale`` extends a smaller one.
"""

from __future__ import annotations

import random
import sys
from collections.abc import Sequence

import polars as pl
import pyarrow as pa

# Every seed string starts with this. It is the generator's original module path and must stay as it is:
# changing it would change every generated row, and with them the data the tests and benchmarks pin.
SEED_NAMESPACE = "platform_assets.sample"
BLOCK = 4096  # rows per seeded generator: the granularity of prefix stability


def seeded(seed: int, purpose: str) -> random.Random:
    """A ``random.Random`` for one purpose of one seed (e.g. the changes of one simulated day)."""
    return random.Random(f"{SEED_NAMESPACE}/{seed}/{purpose}")


class BlockRandom:
    """Column-wise deterministic random numbers for ``n`` rows.

    Each block of ``BLOCK`` rows has its own generator seeded from ``(seed, key, block)``; every column draw
    consumes a full block of bytes from each block generator, so row ``i`` is independent of ``n``.
    """

    def __init__(self, seed: int, key: str, n: int) -> None:
        self.n = n
        blocks = -(-n // BLOCK)
        self._rngs = [seeded(seed, f"{key}/{b}") for b in range(blocks)]

    def u32(self) -> pl.Series:
        if self.n == 0:
            return pl.Series(values=[], dtype=pl.UInt32)
        buf = b"".join(r.randbytes(4 * BLOCK) for r in self._rngs)
        if sys.byteorder != "little":  # keep results identical on big-endian machines
            buf = b"".join(buf[i : i + 4][::-1] for i in range(0, len(buf), 4))
        arr = pa.Array.from_buffers(pa.uint32(), self.n, [None, pa.py_buffer(buf)])
        return pl.Series(values=arr)

    def ints(self, low: int, high: int) -> pl.Series:
        """Uniform integers in ``[low, high)`` as Int64."""
        span = max(int(high) - int(low), 1)
        return ((self.u32().cast(pl.UInt64) * span) // (1 << 32)).cast(pl.Int64) + int(low)

    def unif(self) -> pl.Series:
        """Uniform floats in ``[0, 1)``."""
        return self.u32().cast(pl.Float64) / float(1 << 32)

    def pick(self, values: Sequence, weights: Sequence[float] | None = None) -> pl.Series:
        """Random choice from ``values`` (optionally weighted)."""
        if weights is None:
            idx = self.ints(0, len(values))
        else:
            total = float(sum(weights))
            acc, bounds = 0.0, []
            for w in weights[:-1]:
                acc += w
                bounds.append(int(acc / total * (1 << 32)))
            idx = pl.Series(values=bounds, dtype=pl.UInt64).search_sorted(
                self.u32().cast(pl.UInt64), side="right"
            )
        return pl.Series(values=list(values)).gather(idx)
