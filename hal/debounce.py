"""Key debouncing as a pure function of successive matrix scans; no time, no threads, no pins."""

from __future__ import annotations

from collections.abc import Iterable


class KeyDebouncer:
    """Turns raw scans (the set of keys seen closed) into debounced key presses.

    A key changes state only after ``scans`` consecutive scans agree on the new state; a press is reported
    once, when the key becomes stably pressed. ``order`` fixes the order of keys that become pressed in the
    same scan.
    """

    def __init__(self, scans: int, order: Iterable[str] = ()) -> None:
        if scans < 1:
            raise ValueError("scans must be >= 1")
        self._scans = scans
        self._rank = {key: i for i, key in enumerate(order)}
        self._stable: set[str] = set()
        self._streak: dict[str, int] = {}

    @property
    def pressed(self) -> frozenset[str]:
        """The keys that are stably pressed now."""
        return frozenset(self._stable)

    @property
    def settled(self) -> bool:
        """No key is pressed and no key is on its way to a change."""
        return not self._stable and not self._streak

    def update(self, closed: Iterable[str]) -> list[str]:
        """Feed one scan; return the keys that have just become stably pressed."""
        raw = set(closed)
        pressed: list[str] = []
        for key in raw | self._stable | set(self._streak):
            if (key in raw) == (key in self._stable):
                self._streak.pop(key, None)
                continue
            streak = self._streak.get(key, 0) + 1
            if streak < self._scans:
                self._streak[key] = streak
                continue
            self._streak.pop(key, None)
            if key in raw:
                self._stable.add(key)
                pressed.append(key)
            else:
                self._stable.discard(key)
        pressed.sort(key=lambda k: (self._rank.get(k, len(self._rank)), k))
        return pressed

    def reset(self) -> None:
        """Forget every key."""
        self._stable.clear()
        self._streak.clear()
