"""The one error type the API answers with."""

from __future__ import annotations


class ApiError(Exception):
    """An error the API answers with: ECS code, HTTP status, human message."""

    def __init__(self, code: str, message: str, http_status: int = 400) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.http_status = http_status
        # Seconds a throttled client should wait; rendered as x-acs-retry-after.
        self.retry_after: int | None = None
