"""A small, typed, blocking QMP client with deadlines: no call waits longer than it is told.

QMP (the QEMU Machine Protocol) is line-delimited JSON over a socket: QEMU greets, the client
sends `qmp_capabilities`, then each command gets one reply (`return` or `error`) carrying the
command's `id`; asynchronous `event`s can arrive between replies. This client keeps every
event it reads in `events`, so a caller that issued `device_del` can then wait for the
`DEVICE_DELETED` that may already have arrived while it waited for the command's reply.

QEMU serves one QMP client per socket at a time; a second client is accepted by the kernel
but greeted only when the first leaves. Connect, do the work, close (the `with` form) -- and
serialize callers per VM (the qemu driver holds a lock per instance).
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Self

DEFAULT_TIMEOUT = 5.0
_MAX_LINE = 16 * 1024 * 1024

QmpMessage = dict[str, Any]


class QmpError(Exception):
    """Base of every QMP failure."""


class QmpConnectError(QmpError):
    """The socket is missing, refuses connections, or QEMU never greeted (another client holds it)."""


class QmpClosed(QmpError):
    """QEMU closed the connection (it exited, e.g. after `quit`)."""


class QmpTimeout(QmpError):
    """No reply (or event) within the deadline."""


class QmpCommandError(QmpError):
    """QEMU answered a command with an error object."""

    def __init__(self, command: str, error_class: str, desc: str) -> None:
        self.command = command
        self.error_class = error_class
        self.desc = desc
        super().__init__(f"{command}: {error_class}: {desc}")


class QmpClient:
    def __init__(self, path: Path | str, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.path = str(path)
        self.timeout = timeout
        self.events: list[QmpMessage] = []
        self.greeting: QmpMessage | None = None
        self._sock: socket.socket | None = None
        self._buf = b""
        self._next_id = 0

    # ---- connection ------------------------------------------------------------------------

    def connect(self) -> Self:
        deadline = time.monotonic() + self.timeout
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.path)
        except OSError as exc:
            sock.close()
            raise QmpConnectError(f"cannot connect to {self.path}: {exc}") from exc
        self._sock = sock
        try:
            greeting = self._read(deadline)
            if "QMP" not in greeting:
                raise QmpConnectError(f"{self.path}: not a QMP greeting: {greeting!r}")
            self.greeting = greeting
            self.execute("qmp_capabilities", timeout=max(0.1, deadline - time.monotonic()))
        except QmpTimeout as exc:
            self.close()
            raise QmpConnectError(f"{self.path}: no QMP greeting within {self.timeout}s (busy?)") from exc
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            finally:
                self._sock = None
                self._buf = b""

    def __enter__(self) -> Self:
        if self._sock is None:
            self.connect()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # ---- commands and events ---------------------------------------------------------------

    def execute(
        self, command: str, arguments: Mapping[str, Any] | None = None, timeout: float | None = None
    ) -> Any:
        """Run one command; return its `return` value. Raises QmpCommandError on an error reply,
        QmpTimeout when no reply came within `timeout`, QmpClosed when QEMU hung up."""
        if self._sock is None:
            raise QmpClosed("not connected")
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        self._next_id += 1
        ident = f"nubes-{self._next_id}"
        message: QmpMessage = {"execute": command, "id": ident}
        if arguments:
            message["arguments"] = dict(arguments)
        data = json.dumps(message).encode() + b"\n"
        try:
            self._sock.settimeout(max(0.001, deadline - time.monotonic()))
            self._sock.sendall(data)
        except TimeoutError as exc:
            raise QmpTimeout(f"{command}: could not send within the deadline") from exc
        except OSError as exc:
            raise QmpClosed(f"{command}: {exc}") from exc
        while True:
            reply = self._read(deadline)
            if "event" in reply:
                self.events.append(reply)
                continue
            if reply.get("id") != ident:
                continue  # a stale reply of an earlier, timed-out command
            if "error" in reply:
                err = reply["error"]
                raise QmpCommandError(
                    command, str(err.get("class", "GenericError")), str(err.get("desc", ""))
                )
            return reply.get("return")

    def wait_event(
        self, name: str, timeout: float, match: Callable[[QmpMessage], bool] | None = None
    ) -> QmpMessage:
        """The first event called `name` (and accepted by `match`), already received or arriving
        within `timeout`; it is removed from `events`. Raises QmpTimeout."""
        deadline = time.monotonic() + timeout
        while True:
            for i, event in enumerate(self.events):
                if event.get("event") == name and (match is None or match(event)):
                    return self.events.pop(i)
            message = self._read(deadline)
            if "event" in message:
                self.events.append(message)

    # ---- wire ------------------------------------------------------------------------------

    def _read(self, deadline: float) -> QmpMessage:
        assert self._sock is not None
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise QmpTimeout(f"{self.path}: no answer within the deadline")
            self._sock.settimeout(left)
            try:
                chunk = self._sock.recv(65536)
            except TimeoutError as exc:
                raise QmpTimeout(f"{self.path}: no answer within the deadline") from exc
            except OSError as exc:
                raise QmpClosed(f"{self.path}: {exc}") from exc
            if not chunk:
                raise QmpClosed(f"{self.path}: QEMU closed the connection")
            self._buf += chunk
            if len(self._buf) > _MAX_LINE:
                raise QmpError(f"{self.path}: QMP message larger than {_MAX_LINE} bytes")
        line, self._buf = self._buf.split(b"\n", 1)
        try:
            message = json.loads(line)
        except ValueError as exc:
            raise QmpError(f"{self.path}: malformed QMP message {line[:200]!r}") from exc
        if not isinstance(message, dict):
            raise QmpError(f"{self.path}: unexpected QMP message {line[:200]!r}")
        return message


def qmp(path: Path | str, timeout: float = DEFAULT_TIMEOUT) -> QmpClient:
    """A connected client, for `with qmp(sock) as q: q.execute(...)`."""
    return QmpClient(path, timeout).connect()
