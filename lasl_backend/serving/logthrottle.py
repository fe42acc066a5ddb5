"""Log lines that a flood of requests could repeat thousands of times a second, at most one per interval.

A line of each kind is logged at once; repeats within ``interval_s`` are only counted, and the next line
of that kind says how many were held back. Kinds are a fixed, small set chosen by the caller (never a
project or annotation id), so the bookkeeping stays bounded.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable

__all__ = ["ThrottledLog"]


class ThrottledLog:
    def __init__(self, logger: logging.Logger, interval_s: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._log = logger
        self._interval = interval_s
        self._clock = clock
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def log(self, level: int, kind: str, msg: str, *args: Any) -> bool:
        """Log ``msg % args`` unless a line of ``kind`` was logged in the last interval; True if logged."""
        now = self._clock()
        with self._lock:
            last = self._last.get(kind)
            if last is not None and now - last < self._interval:
                self._held[kind] = self._held.get(kind, 0) + 1
                return False
            held = self._held.pop(kind, 0)
            self._last[kind] = now
        if held:
            msg = f"{msg} ({held} more like this in the last {now - (last or now):.0f} s)"
        self._log.log(level, msg, *args)
        return True

    def warning(self, kind: str, msg: str, *args: Any) -> bool:
        return self.log(logging.WARNING, kind, msg, *args)

    def info(self, kind: str, msg: str, *args: Any) -> bool:
        return self.log(logging.INFO, kind, msg, *args)
