"""Reaching test hosts for real: listeners and probes run inside their network namespaces."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

LISTENER = r"""
import socket, sys, threading
proto, port = sys.argv[1], int(sys.argv[2])
if proto == "tcp":
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port)); s.listen(64)
    print("ready", flush=True)
    while True:
        c, _ = s.accept(); c.sendall(b"pong"); c.close()
elif proto == "whoami":  # HTTP: the body is the address the client came from
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port)); s.listen(64)
    print("ready", flush=True)
    while True:
        c, peer = s.accept(); c.settimeout(5)
        try:
            c.recv(4096); c.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n" + peer[0].encode())
        except OSError:
            pass
        c.close()
else:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("0.0.0.0", port))
    print("ready", flush=True)
    while True:
        data, peer = s.recvfrom(100); s.sendto(b"pong", peer)
"""

PROBE = r"""
import socket, sys
proto, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
try:
    if proto == "tcp":
        s = socket.create_connection((host, port), timeout=float(sys.argv[4]))
        ok = s.recv(4) == b"pong"
    else:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(float(sys.argv[4]))
        s.sendto(b"ping", (host, port)); ok = s.recvfrom(4)[0] == b"pong"
except OSError:
    ok = False
print("open" if ok else "closed")
"""

HTTP_GET = r"""
import sys, urllib.request
try:
    print(urllib.request.urlopen(sys.argv[1], timeout=3).read().decode())
except Exception as e:
    print("ERROR", e)
"""


def in_netns(netns: str, *argv: str, timeout: float = 30) -> str:
    result = subprocess.run(
        ["ip", "netns", "exec", netns, *argv], check=False, capture_output=True, text=True, timeout=timeout
    )
    return result.stdout.strip()


@contextmanager
def listening(netns: str, proto: str, port: int) -> Iterator[None]:
    process = subprocess.Popen(
        ["ip", "netns", "exec", netns, sys.executable, "-c", LISTENER, proto, str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None and process.stdout.readline().strip() == "ready"
        yield
    finally:
        process.kill()
        process.wait()
        if process.stdout is not None:
            process.stdout.close()


def reachable(netns: str, proto: str, host: str, port: int, timeout: float = 1.0) -> bool:
    return in_netns(netns, sys.executable, "-c", PROBE, proto, host, str(port), str(timeout)) == "open"


def http_get(netns: str, url: str) -> str:
    return in_netns(netns, sys.executable, "-c", HTTP_GET, url)


def eventually(check: Callable[[], bool], timeout: float = 20.0, interval: float = 0.2) -> bool:
    """Poll until `check` holds (the agent applies changes asynchronously, as ECS does)."""
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)


@contextmanager
def internet(netns: str, uplink: str, address: str) -> Iterator[str]:
    """A namespace that stands for the internet: `address` (with its prefix) on its eth0, the
    other end of a veth whose host end `uplink` is what nubes is given as its uplink (up, with
    no address and no IPv6, so the host namespace gains no route)."""

    def ip(*args: str) -> None:
        subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)

    ip("netns", "add", netns)
    try:
        ip("link", "add", uplink, "type", "veth", "peer", "name", "eth0", "netns", netns)
        with open(f"/proc/sys/net/ipv6/conf/{uplink}/disable_ipv6", "w") as f:
            f.write("1")
        ip("link", "set", uplink, "up")
        ip("-n", netns, "link", "set", "lo", "up")
        ip("-n", netns, "link", "set", "eth0", "up")
        ip("-n", netns, "addr", "add", address, "dev", "eth0")
        yield netns
    finally:
        subprocess.run(["ip", "link", "del", uplink], check=False, capture_output=True)
        subprocess.run(["ip", "netns", "delete", netns], check=False, capture_output=True)
