"""Throttling per account and action: token buckets, generous by default."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _Bucket:
    tokens: float
    updated: float


class Throttle:
    """`rate` requests per second with bursts of `burst`; rate <= 0 switches it off."""

    def __init__(self, rate: float, burst: float, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = max(burst, 1.0)
        self._monotonic = monotonic
        self._buckets: dict[tuple[int, str], _Bucket] = {}
        self._lock = threading.Lock()

    def admit(self, account_id: int, action: str) -> int:
        """0 if the request may go on, else the whole seconds to wait before retrying."""
        if self.rate <= 0:
            return 0
        now = self._monotonic()
        with self._lock:
            bucket = self._buckets.get((account_id, action))
            if bucket is None:
                bucket = self._buckets[(account_id, action)] = _Bucket(self.burst, now)
            bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * self.rate)
            bucket.updated = now
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return 0
            return max(1, math.ceil((1.0 - bucket.tokens) / self.rate))
