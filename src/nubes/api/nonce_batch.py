"""The nonces of one turn of the event loop, recorded together.

Every request authenticated while the loop runs its ready callbacks claims its nonce here; the
claims are written by one statement and one commit at the start of the next turn, and each
request goes on once its own answer is known. Under load a commit serves many requests, and
no thread hand-off stands between a request and its answer."""

from __future__ import annotations

import asyncio

from nubes.domain.nonces import NonceClaim, SignatureNonces


class NonceBatch:
    def __init__(self, nonces: SignatureNonces) -> None:
        self._nonces = nonces
        self._pending: list[tuple[NonceClaim, asyncio.Future[bool]]] = []

    def claim(self, claim: NonceClaim) -> asyncio.Future[bool]:
        """The claim's answer (False: a replay), settled on the next turn of the running loop."""
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[bool] = loop.create_future()
        self._pending.append((claim, answer))
        if len(self._pending) == 1:
            loop.call_soon(self._flush)
        return answer

    def _flush(self) -> None:
        pending, self._pending = self._pending, []
        try:
            fresh = self._nonces.record([claim for claim, _ in pending])
        except Exception as failure:  # noqa: BLE001 - each request answers it (InternalError)
            for _, answer in pending:
                answer.set_exception(failure)
            return
        for (_, answer), is_fresh in zip(pending, fresh, strict=True):
            answer.set_result(is_fresh)
