"""Per-citizen cache of current choices and opt-outs, so a closed question rarely touches the database.

Keyed by the BSN hash. Used from the event loop only (loads run in worker threads, but `put`
happens back on the loop), so it needs no lock. A load that raced with a change must not put the
old state back: `token()` is taken before reading the database, and `put` refuses the entry when
the key was invalidated after that token. Writers invalidate after their transaction committed.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass

from ldn.consent.decision import OptOut
from ldn.consent.model import ConsentChoice

__all__ = ["CitizenState", "StateCache"]

# Invalidation marks kept to protect in-flight loads; a load takes milliseconds, so a few
# thousand recent marks are plenty. Older marks are folded into `_floor`.
_MAX_MARKS = 4096


@dataclass(frozen=True, slots=True)
class CitizenState:
    """What the decision core needs about one citizen: current (non-withdrawn) choices and opt-outs."""

    choices: tuple[ConsentChoice, ...]
    optout: OptOut


class StateCache:
    def __init__(self, size: int, ttl: float) -> None:
        self.size = size
        self.ttl = ttl
        self._items: OrderedDict[str, tuple[float, CitizenState]] = OrderedDict()
        self._counter = 0
        self._marks: OrderedDict[str, int] = OrderedDict()
        self._floor = 0
        self.hits = 0
        self.misses = 0

    def get(self, key: str) -> CitizenState | None:
        if self.size == 0:
            return None
        item = self._items.get(key)
        if item is None:
            self.misses += 1
            return None
        expires, state = item
        if self.ttl and expires <= time.monotonic():
            del self._items[key]
            self.misses += 1
            return None
        self._items.move_to_end(key)
        self.hits += 1
        return state

    def token(self) -> int:
        return self._counter

    def put(self, key: str, state: CitizenState, token: int) -> None:
        if self.size == 0 or token < self._floor or self._marks.get(key, -1) > token:
            return  # changed (or possibly changed) since the load began: do not cache old state
        expires = time.monotonic() + self.ttl if self.ttl else float("inf")
        self._items[key] = (expires, state)
        self._items.move_to_end(key)
        while len(self._items) > self.size:
            self._items.popitem(last=False)

    def invalidate(self, key: str) -> None:
        self._counter += 1
        self._items.pop(key, None)
        self._marks[key] = self._counter
        self._marks.move_to_end(key)
        while len(self._marks) > _MAX_MARKS:
            _, mark = self._marks.popitem(last=False)
            self._floor = max(self._floor, mark)

    def clear(self) -> None:
        for key in list(self._items):
            self.invalidate(key)
        self._items.clear()

    def __len__(self) -> int:
        return len(self._items)
