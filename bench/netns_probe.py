"""network.py's processes inside namespaces: a TCP listener on many ports, and the prober that times
when a port opens or closes (one persistent process inside a test host, driven by JSON lines over its
stdin and stdout, every read bounded in time).
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common import run


def in_ns(ns: str, *argv: str) -> list[str]:
    return ["ip", "netns", "exec", ns, *argv]


# ---- processes inside namespaces --------------------------------------------------------------

# A TCP listener on many ports: accepts and closes at once. Prints "ready" once all are bound.
LISTENER = r"""
import selectors, socket, sys
sel = selectors.DefaultSelector()
for port in map(int, sys.argv[1:]):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port)); s.listen(4096); s.setblocking(False)
    sel.register(s, selectors.EVENT_READ)
print("ready", flush=True)
while True:
    for key, _ in sel.select():
        for _ in range(64):
            try:
                conn, _ = key.fileobj.accept()
            except BlockingIOError:
                break
            conn.close()
"""

# The prober: one process inside host A, driven by JSON lines on stdin.
#   {"cmd": "once", "port": P, "timeout": T} -> {"outcome": "open"|"refused"|"dropped"|"error:..."}
#   {"cmd": "until", "port": P, "want": "open"|"closed", "limit": S}
#       -> {"ack": true} at once, then after the loop {"result": "open"|"closed"|"timeout", "t": ..., ...}
# "until" starts a non-blocking connect every INTERVAL; an attempt that has not connected
# (or been refused) after ATTEMPT seconds is closed and counts as dropped. Attempts are judged
# in the order they were started: "open" -> the start time of the first attempt that got
# through; "closed" -> the start time of the first of 3 consecutive dropped attempts.
PROBER = r"""
import errno, json, select, socket, sys, time
HOST, INTERVAL, ATTEMPT = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
CLOSED_RUN = 3
PASSED = (0, errno.ECONNREFUSED)  # connected, or refused by the host: the firewall let it by

def say(obj):
    sys.stdout.write(json.dumps(obj) + "\n"); sys.stdout.flush()

def once(port, timeout):
    s = socket.socket(); s.settimeout(timeout)
    try:
        s.connect((HOST, port)); return "open"
    except ConnectionRefusedError:
        return "refused"
    except (socket.timeout, TimeoutError):
        return "dropped"
    except OSError as exc:
        return "error:" + str(exc)
    finally:
        s.close()

def until(port, want, limit):
    poller = select.poll()
    inflight = {}                 # fd -> (socket, index)
    starts, outcomes = [], []     # per attempt, in start order; outcome None while in flight
    scan, candidate, run_len = 0, None, 0
    end = time.monotonic() + limit
    next_start = time.monotonic()
    result = None
    try:
        while result is None:
            now = time.monotonic()
            if now >= end:
                result = {"result": "timeout"}
                break
            if now >= next_start:
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM); s.setblocking(False)
                start = time.monotonic()
                rc = s.connect_ex((HOST, port))
                starts.append(start); outcomes.append(None)
                index = len(starts) - 1
                if rc in PASSED:
                    outcomes[index] = "ok"; s.close()
                elif rc == errno.EINPROGRESS:
                    inflight[s.fileno()] = (s, index); poller.register(s.fileno(), select.POLLOUT)
                else:
                    outcomes[index] = "error"; s.close()
                next_start = max(start + INTERVAL, time.monotonic() - INTERVAL)
            wake = next_start
            if inflight:
                wake = min(wake, min(starts[i] for _, i in inflight.values()) + ATTEMPT)
            for fd, _ in poller.poll(max(0.0, (wake - time.monotonic()) * 1000)):
                s, index = inflight.pop(fd); poller.unregister(fd)
                err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR); s.close()
                outcomes[index] = "ok" if err in PASSED else "error"
            now = time.monotonic()
            for fd, (s, index) in list(inflight.items()):
                if now - starts[index] >= ATTEMPT:
                    del inflight[fd]; poller.unregister(fd); s.close()
                    outcomes[index] = "drop"
            while scan < len(outcomes) and outcomes[scan] is not None:
                outcome = outcomes[scan]
                if want == "open" and outcome == "ok":
                    result = {"result": "open", "t": starts[scan], "index": scan}
                    break
                if want == "closed":
                    if outcome == "drop":
                        if candidate is None:
                            candidate = scan
                        run_len += 1
                        if run_len >= CLOSED_RUN:
                            result = {"result": "closed", "t": starts[candidate], "index": candidate}
                            break
                    elif outcome == "ok":
                        candidate, run_len = None, 0
                scan += 1
    finally:
        for s, _ in inflight.values():
            s.close()
    result["attempts"] = len(starts)
    result["errors"] = outcomes.count("error")
    result["detected"] = time.monotonic()
    return result

for line in sys.stdin:
    cmd = json.loads(line)
    if cmd["cmd"] == "once":
        say({"outcome": once(cmd["port"], cmd["timeout"])})
    elif cmd["cmd"] == "until":
        say({"ack": True})
        say(until(cmd["port"], cmd["want"], cmd["limit"]))
    else:
        break
"""


class LineChild:
    """A child process spoken to in JSON lines (stdin/stdout), with timeouts on every read."""

    def __init__(self, argv: list[str], name: str, stderr_path: Path) -> None:
        self.name = name
        self.stderr_path = stderr_path
        with open(stderr_path, "wb") as stderr:  # the child keeps its own descriptor
            self.proc = subprocess.Popen(
                argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, start_new_session=True
            )
        self._buf = b""

    def send(self, obj: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(obj) + "\n").encode())
        self.proc.stdin.flush()

    def line(self, timeout: float) -> str:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buf:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RuntimeError(f"{self.name}: no answer within {timeout:.1f} s")
            ready, _, _ = select.select([fd], [], [], remaining)
            if ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    tail = self.stderr_path.read_text(errors="replace")[-1500:]
                    raise RuntimeError(f"{self.name} exited ({self.proc.poll()}): {tail}")
                self._buf += chunk
        text, self._buf = self._buf.split(b"\n", 1)
        return text.decode()

    def recv(self, timeout: float) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.line(timeout))
        return value

    def stop(self) -> None:
        stop_process(self.proc)
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                try:
                    pipe.close()
                except OSError:
                    pass


def stop_process(proc: subprocess.Popen[Any], timeout: float = 3.0) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout)


def prober_once(prober: LineChild, port: int, timeout: float = 0.1) -> str:
    """One connect attempt by a running PROBER: "open", "refused", "dropped" or "error:..."."""
    prober.send({"cmd": "once", "port": port, "timeout": timeout})
    return str(prober.recv(timeout + 10)["outcome"])


def prober_until(
    prober: LineChild, port: int, want: str, action: Callable[[], object], limit: float
) -> tuple[float, float, dict[str, Any]]:
    """Start a running PROBER's loop (`want`: "open" or "closed", for at most `limit` seconds), then
    call `action`; (monotonic time the call started, time it returned, the prober's result)."""
    prober.send({"cmd": "until", "port": port, "want": want, "limit": limit})
    prober.recv(10)  # ack: the loop runs
    start = time.monotonic()
    action()
    end = time.monotonic()
    return start, end, prober.recv(limit + 10)


def probe_once(ns: str, host: str, port: int, timeout: float = 0.3) -> str:
    code = PROBER.split("\ndef until", 1)[0] + f"\nprint(once({port}, {timeout}))\n"
    return run(in_ns(ns, sys.executable, "-c", code, host, "0.001", "0.01"), timeout=30).strip()
