"""Running the external tools an image build needs, with errors that say what went wrong."""

from __future__ import annotations

import collections
import os
import shutil
import subprocess
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

STDERR_TAIL = 2000  # characters of a failed command's output kept in the error


class ImageBuildError(RuntimeError):
    """An image build failed. `command`/`returncode`/`stderr` are set when a command failed."""

    def __init__(
        self,
        message: str,
        *,
        command: Sequence[str] | None = None,
        returncode: int | None = None,
        stderr: str = "",
    ) -> None:
        self.command = list(command) if command is not None else None
        self.returncode = returncode
        self.stderr = stderr[-STDERR_TAIL:]
        text = message
        if self.command is not None:
            text += f"\n  command: {' '.join(self.command)}"
        if returncode is not None:
            text += f"\n  exit status: {returncode}"
        if self.stderr.strip():
            text += "\n  output (tail):\n    " + "\n    ".join(self.stderr.strip().splitlines()[-25:])
        super().__init__(text)


def require_tool(name: str, package: str) -> str:
    """The path of a host tool, or an ImageBuildError naming the Debian package that has it."""
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin:/usr/bin:/bin")
    if path is None:
        raise ImageBuildError(f"`{name}` is not installed on this host (Debian package: {package})")
    return path


def run(
    args: Sequence[str | Path],
    *,
    what: str,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 1800,
) -> str:
    """Run a command to completion; its stdout, or ImageBuildError("<what> failed") with its output's tail."""
    argv = [str(a) for a in args]
    full_env = {**os.environ, "LC_ALL": "C", **(env or {})}
    try:
        proc = subprocess.run(
            argv,
            cwd=cwd,
            env=full_env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError as exc:
        raise ImageBuildError(f"{what} failed: {argv[0]} not found", command=argv) from exc
    except subprocess.TimeoutExpired as exc:
        out = exc.stderr if isinstance(exc.stderr, str) else (exc.stderr or b"").decode(errors="replace")
        raise ImageBuildError(f"{what} timed out after {timeout:.0f} s", command=argv, stderr=out) from exc
    if proc.returncode != 0:
        output = (proc.stdout[-STDERR_TAIL:] + "\n" + proc.stderr).strip()
        raise ImageBuildError(f"{what} failed", command=argv, returncode=proc.returncode, stderr=output)
    return proc.stdout


def run_streaming(
    args: Sequence[str | Path],
    *,
    what: str,
    on_line: Callable[[str], None],
    timeout: float = 3600,
) -> None:
    """Run a command, handing each line of its output (stdout and stderr) to `on_line` as it
    comes (for progress); ImageBuildError with the output's tail if it fails."""
    argv = [str(a) for a in args]
    tail: collections.deque[str] = collections.deque(maxlen=60)
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            env={**os.environ, "LC_ALL": "C"},
        )
    except FileNotFoundError as exc:
        raise ImageBuildError(f"{what} failed: {argv[0]} not found", command=argv) from exc
    timer = threading.Timer(timeout, proc.kill)
    timer.start()
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            tail.append(line)
            on_line(line.rstrip("\n"))
        code = proc.wait()
    finally:
        timer.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
    if code != 0:
        message = f"{what} failed" if code > 0 else f"{what} was stopped (timeout {timeout:.0f} s?)"
        raise ImageBuildError(message, command=argv, returncode=code, stderr="".join(tail))
