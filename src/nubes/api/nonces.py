"""SignatureNonce memory: a nonce may be used once within the timestamp window.

Buckets by minute keep the cost O(1) per request and drop whole minutes as they age out.
The memory is per API process; several API processes share it through no store yet."""

from __future__ import annotations

import threading
from datetime import datetime


class NonceCache:
    def __init__(self, window_seconds: int = 1800) -> None:
        # Timestamps are accepted 15 minutes either side of the server clock, so a request
        # stays replayable for up to 30 minutes: remember its nonce that long.
        self._minutes = window_seconds // 60 + 2
        self._buckets: dict[int, set[str]] = {}
        self._lock = threading.Lock()

    def use(self, access_key_id: str, nonce: str, now: datetime) -> bool:
        """Record the nonce; False if it was seen within the window."""
        key = f"{access_key_id}\x00{nonce}"
        minute = int(now.timestamp()) // 60
        with self._lock:
            for bucket_minute in list(self._buckets):
                if bucket_minute < minute - self._minutes:
                    del self._buckets[bucket_minute]
            if any(key in bucket for bucket in self._buckets.values()):
                return False
            self._buckets.setdefault(minute, set()).add(key)
            return True
