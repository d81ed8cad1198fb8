"""Running commands and entering network namespaces, for the linux network driver."""

from __future__ import annotations

import ctypes
import ctypes.util
import ipaddress
import json
import os
import socket
import subprocess
import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

T = TypeVar("T")

NETNS_RUN_DIR = "/run/netns"
CLONE_NEWNET = 0x40000000


class CommandError(RuntimeError):
    """A command failed; carries the command line and its stderr."""

    def __init__(self, args: Sequence[str], returncode: int, stderr: str, stdin: str | None = None) -> None:
        self.args_list = list(args)
        self.returncode = returncode
        self.stderr = stderr
        self.stdin = stdin
        super().__init__(f"{' '.join(args)} exited {returncode}: {stderr.strip()}")


def run(args: Sequence[str], *, input: str | None = None, check: bool = True, timeout: float = 30) -> str:
    """Run a command, return its stdout; raise CommandError on a non-zero exit when `check`."""
    proc = subprocess.run(
        list(args), input=input, capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and proc.returncode != 0:
        raise CommandError(args, proc.returncode, proc.stderr, input)
    return proc.stdout


def ip(*args: str, netns: str | None = None, check: bool = True) -> str:
    cmd = ["ip"]
    if netns:
        cmd += ["-n", netns]
    return run([*cmd, *args], check=check)


def ip_json(*args: str, netns: str | None = None) -> list[dict[str, Any]]:
    cmd = ["ip", "-j"]
    if netns:
        cmd += ["-n", netns]
    out = run([*cmd, *args]).strip()
    if not out:
        return []
    data = json.loads(out)
    return data if isinstance(data, list) else []


def ip_batch(commands: Sequence[str], *, netns: str | None = None) -> None:
    """Several `ip` commands in one process; stops at the first failure (raises)."""
    if not commands:
        return
    cmd = ["ip"]
    if netns:
        cmd += ["-n", netns]
    run([*cmd, "-batch", "-"], input="\n".join(commands) + "\n")


def netns_exec(netns: str, args: Sequence[str], *, input: str | None = None, check: bool = True) -> str:
    return run(["ip", "netns", "exec", netns, *args], input=input, check=check)


def list_netns() -> list[str]:
    try:
        return sorted(os.listdir(NETNS_RUN_DIR))
    except FileNotFoundError:
        return []


def netns_exists(name: str) -> bool:
    return os.path.exists(os.path.join(NETNS_RUN_DIR, name))


_libc: ctypes.CDLL | None = None


def _setns(fd: int, nstype: int) -> None:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    if _libc.setns(fd, nstype) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


def in_netns(netns: str, fn: Callable[[], T]) -> T:
    """Call `fn` in a short-lived thread that has entered the network namespace `netns`.

    setns(CLONE_NEWNET) changes only the calling thread, so the rest of the process stays in
    its own namespace; the thread ends right after, so no pooled thread is left behind in a
    foreign namespace. Sockets created by `fn` belong to `netns` for their whole life and can
    be used from any thread afterwards. Files under /proc/thread-self/net and /proc/sys/net
    opened by `fn` show that namespace too."""
    result: list[T] = []
    error: list[BaseException] = []

    def body() -> None:
        try:
            fd = os.open(os.path.join(NETNS_RUN_DIR, netns), os.O_RDONLY | os.O_CLOEXEC)
            try:
                _setns(fd, CLONE_NEWNET)
            finally:
                os.close(fd)
            result.append(fn())
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            error.append(exc)

    thread = threading.Thread(target=body, name=f"netns-{netns}", daemon=True)
    thread.start()
    thread.join()
    if error:
        raise error[0]
    return result[0]


ETH_P_ARP = 0x0806


def gratuitous_arp(netns: str, dev: str, mac: str, addresses: Sequence[str]) -> None:
    """Announce that `addresses` are now at `mac` on `dev` (broadcast ARP requests whose sender
    and target are the address), so that neighbours replace a stale entry at once instead of
    after their ARP cache times out (an address that moved from another device)."""
    hw = bytes.fromhex(mac.replace(":", ""))

    def send() -> None:
        with socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ARP)) as sock:
            sock.bind((dev, ETH_P_ARP))
            for address in addresses:
                ip4 = ipaddress.IPv4Address(address).packed
                arp = b"\x00\x01\x08\x00\x06\x04\x00\x01" + hw + ip4 + b"\x00" * 6 + ip4
                sock.send(b"\xff" * 6 + hw + ETH_P_ARP.to_bytes(2, "big") + arp)

    in_netns(netns, send)


def write_sysctls(netns: str, values: dict[str, str]) -> None:
    """Write sysctls (dotted names) inside `netns`; a missing key raises FileNotFoundError."""

    def body() -> None:
        for key, value in values.items():
            with open("/proc/sys/" + key.replace(".", "/"), "w") as f:
                f.write(value)

    in_netns(netns, body)


def read_sysctl(netns: str, key: str) -> str:
    def body() -> str:
        with open("/proc/sys/" + key.replace(".", "/")) as f:
            return f.read().strip()

    return in_netns(netns, body)


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    except (FileNotFoundError, IndexError):
        return False


def process_cmdline(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            raw = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]
