"""A `random.Random` whose `random()` returns scripted values, for exact assertions."""

from __future__ import annotations

import random


class StubRandom(random.Random):
    """Returns the given values from `random()`, in order; fails the test if it runs out."""

    def __init__(self, *values: float) -> None:
        super().__init__(0)
        self.values = list(values)

    def random(self) -> float:
        assert self.values, "the code under test drew more random numbers than the test expected"
        return self.values.pop(0)
