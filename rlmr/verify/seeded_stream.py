"""The 32-bit outputs of Python's `random.Random(seed)`, generated in bulk (for
`rlmr.verify.langid`, which replays langdetect's random draws)."""

from __future__ import annotations

import math
import random

import numpy as np


class SeededStream:
    """The 32-bit outputs of `random.Random(seed)`, generated in bulk by numpy's MT19937.

    Both are the same Mersenne Twister; numpy is started from the exact state
    `random.seed(seed)` produces, so `words(i, n)` are the outputs i..i+n-1 that
    `getrandbits(32)` would return. `gauss_pair` is `random.gauss` (both values
    of one Box-Muller step, from four words, as CPython computes them).
    """

    def __init__(self, seed: int):
        state = random.Random(seed).getstate()[1]
        self._gen = np.random.MT19937()
        self._gen.state = {
            "bit_generator": "MT19937",
            "state": {"key": np.array(state[:624], dtype=np.uint32), "pos": state[624]},
        }
        self._words = self._gen.random_raw(1 << 14).astype(np.uint32)
        self._check(seed)

    def words(self, start: int, count: int) -> np.ndarray:
        end = start + count
        while end > len(self._words):
            self._words = np.concatenate(
                [self._words, self._gen.random_raw(len(self._words)).astype(np.uint32)]
            )
        return self._words[start:end]

    def _random(self, a: int, b: int) -> float:
        return ((a >> 5) * 67108864.0 + (b >> 6)) * (1.0 / 9007199254740992.0)

    def gauss_pair(self, start: int) -> tuple[float, float]:
        a, b, c, d = (int(w) for w in self.words(start, 4))
        x2pi = self._random(a, b) * (2.0 * math.pi)
        g2rad = math.sqrt(-2.0 * math.log(1.0 - self._random(c, d)))
        return math.cos(x2pi) * g2rad, math.sin(x2pi) * g2rad

    def _check(self, seed: int) -> None:
        """Raise RuntimeError if this Python's `random` draws differently from the port (the
        identifier then falls back to running langdetect itself)."""
        rng = random.Random(seed)
        expected = [rng.gauss(0.0, 1.0), rng.gauss(0.0, 1.0)]
        expected += [
            rng.choice(range(n)) for n in (1, 2, 3, 5, 1000, 70001, 131071) for _ in range(20)
        ]
        got = list(self.gauss_pair(0))
        pos = 4
        for n in (1, 2, 3, 5, 1000, 70001, 131071):
            shift = 32 - n.bit_length()
            for _ in range(20):
                while (int(self.words(pos, 1)[0]) >> shift) >= n:
                    pos += 1
                got.append(int(self.words(pos, 1)[0]) >> shift)
                pos += 1
        if got != expected:
            raise RuntimeError(
                "this Python's random module draws differently from rlmr.verify.langid's port; "
                "language detection would not match langdetect"
            )
