"""Helpers for tests that boot real VMs: a metadata server, a plain QEMU runner, QMP, ssh.

Nothing here uses nubes' compute driver: these boot the images with a QEMU command line of
their own, so the images are tested on their own (and the driver's tests can compare)."""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self

from nubes.guest.images import ImageManifest

METADATA_IP = "100.100.100.200"
TOKEN_TTL_HEADER = "X-aliyun-ecs-metadata-token-ttl-seconds"
TOKEN_HEADER = "X-aliyun-ecs-metadata-token"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def host_mhz() -> int:
    """The host CPU's MHz (for tsc_early_khz=, which keeps microvm under TCG from hanging)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("cpu MHz"):
                return int(float(line.split(":")[1]))
    except (OSError, ValueError):
        pass
    return 2000


# ---- metadata ---------------------------------------------------------------------------------


@dataclass
class MetadataRequest:
    method: str
    path: str
    token: str | None  # the X-aliyun-ecs-metadata-token the request carried


class MetadataServer:
    """An ECS-style metadata service on 127.0.0.1:<port> for one guest.

    `tree` maps paths under /latest/ to values: a str is a leaf, a dict a directory (listed
    one entry a line, sub-directories with a trailing "/"). PUT /latest/api/token hands out a
    token (hardened mode); with `require_token`, GETs without a valid token get 401."""

    def __init__(
        self, tree: dict[str, Any], require_token: bool = False, token_endpoint: bool = True
    ) -> None:
        self.tree = tree
        self.require_token = require_token
        self.token_endpoint = token_endpoint
        self.tokens: set[str] = set()
        self.requests: list[MetadataRequest] = []
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def do_PUT(self) -> None:
                token = self.headers.get(TOKEN_HEADER)
                outer._record("PUT", self.path, token)
                if not outer.token_endpoint or self.path.split("?")[0] != "/latest/api/token":
                    self._send(404, "Not Found")
                    return
                ttl = self.headers.get(TOKEN_TTL_HEADER, "")
                if not ttl.isdigit() or not 1 <= int(ttl) <= 21600:
                    self._send(400, "Bad Request")
                    return
                new = secrets.token_urlsafe(24)
                with outer._lock:
                    outer.tokens.add(new)
                self._send(200, new)

            def do_GET(self) -> None:
                token = self.headers.get(TOKEN_HEADER)
                outer._record("GET", self.path, token)
                if outer.require_token and token not in outer.tokens:
                    self._send(401, "Unauthorized")
                    return
                path = self.path.split("?")[0]
                if not path.startswith("/latest/"):
                    self._send(404, "Not Found")
                    return
                status, body = outer.lookup(path.removeprefix("/latest/"))
                self._send(status, body)

            def _send(self, status: int, body: str) -> None:
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def _record(self, method: str, path: str, token: str | None) -> None:
        with self._lock:
            self.requests.append(MetadataRequest(method, path, token))

    def lookup(self, path: str) -> tuple[int, str]:
        node: Any = self.tree
        for part in [p for p in path.split("/") if p]:
            if not isinstance(node, dict) or part not in node:
                return 404, "Not Found"
            node = node[part]
        if isinstance(node, dict):
            return 200, "\n".join(f"{k}/" if isinstance(v, dict) else k for k, v in node.items())
        return 200, str(node)

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def instance_tree(
    instance_id: str,
    hostname: str,
    public_keys: Sequence[str] = (),
    user_data: str | None = None,
    password_hash: str | None = None,
) -> dict[str, Any]:
    """The metadata tree of one instance, laid out as ECS serves it."""
    meta: dict[str, Any] = {"instance-id": instance_id, "hostname": hostname, "region-id": "cn-nubes-1"}
    if public_keys:
        meta["public-keys"] = {str(i): {"openssh-key": key} for i, key in enumerate(public_keys)}
    tree: dict[str, Any] = {"meta-data": meta}
    if user_data is not None:
        tree["user-data"] = user_data
    if password_hash is not None:
        tree["nubes"] = {"password-hash": password_hash}
    return tree


# ---- QMP --------------------------------------------------------------------------------------


class Qmp:
    """A QMP client on a unix socket: just enough JSON for tests."""

    def __init__(self, path: Path, timeout: float = 10) -> None:
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.settimeout(timeout)
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.sock.connect(str(path))
                break
            except (FileNotFoundError, ConnectionRefusedError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
        self.file = self.sock.makefile("rwb")
        self._read()  # the greeting
        self.execute("qmp_capabilities")

    def _read(self) -> dict[str, Any]:
        while True:
            line = self.file.readline()
            if not line:
                raise ConnectionError("QMP socket closed")
            msg = json.loads(line)
            if "event" not in msg:
                return dict(msg)

    def execute(self, command: str, **arguments: Any) -> Any:
        msg: dict[str, Any] = {"execute": command}
        if arguments:
            msg["arguments"] = arguments
        self.file.write(json.dumps(msg).encode() + b"\n")
        self.file.flush()
        reply = self._read()
        if "error" in reply:
            raise RuntimeError(f"QMP {command}: {reply['error']}")
        return reply.get("return")

    def close(self) -> None:
        try:
            self.file.close()
            self.sock.close()
        except OSError:
            pass


# ---- QEMU -------------------------------------------------------------------------------------


@dataclass
class Vm:
    """A QEMU process booting a nubes image: TCG, serial console to a file, QMP socket,
    user-mode networking with the metadata service forwarded and sshd on a loopback port."""

    manifest: ImageManifest
    images_dir: Path
    workdir: Path
    metadata_port: int
    machine: str = "q35"  # "q35" | "microvm"
    memory_mib: int = 256
    cpu: str = "qemu64"  # QEMU's default; "max" (more features, rdrand) boots ~0.15 s slower
    extra_cmdline: str = ""
    ssh_port: int = field(default_factory=free_port)
    disk: Path | None = None  # an existing overlay to boot (else one is made)
    disk_size_gib: int | None = None  # a system disk larger than the image (the guest grows its fs)
    hotplug_ports: int = 0  # q35: free pcie-root-ports rp1..rpN for device_add
    serial_socket: bool = False  # the console also on a unix socket (`console_socket()`) to type into
    process: subprocess.Popen[bytes] | None = None
    started: float = 0.0

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.serial_log = self.workdir / "serial.log"
        self.qmp_path = self.workdir / "qmp.sock"
        self.serial_path = self.workdir / "serial.sock"
        if self.disk is None:
            self.disk = self.workdir / "disk.qcow2"
            base = self.manifest.path(self.images_dir, "rootfs")
            size = [f"{self.disk_size_gib}G"] if self.disk_size_gib else []
            subprocess.run(
                [
                    "qemu-img",
                    "create",
                    "-q",
                    "-f",
                    "qcow2",
                    "-b",
                    str(base),
                    "-F",
                    "qcow2",
                    str(self.disk),
                    *size,
                ],
                check=True,
                capture_output=True,
            )

    def command(self) -> list[str]:
        m = self.manifest
        cmdline = m.cmdline
        # slirp forwards only addresses inside its network: make it 100.100.100.0/24 so that
        # 100.100.100.200 is in it (the guest gets .15, the gateway is .2)
        netdev = (
            f"user,id=n0,net=100.100.100.0/24,host=100.100.100.2,dhcpstart=100.100.100.15,"
            f"guestfwd=tcp:{METADATA_IP}:80-cmd:socat - TCP:127.0.0.1:{self.metadata_port},"
            f"hostfwd=tcp:127.0.0.1:{self.ssh_port}-:22"
        )
        if self.machine == "microvm":
            cmdline += f" tsc_early_khz={host_mhz() * 1000}"
            machine = ["-machine", "microvm,acpi=on,pcie=off,rtc=on"]
            blk, net = "virtio-blk-device", "virtio-net-device"
        else:
            machine = ["-machine", self.machine]
            blk, net = "virtio-blk-pci", "virtio-net-pci"
        if self.extra_cmdline:
            cmdline += " " + self.extra_cmdline
        ports: list[str] = []
        for i in range(1, self.hotplug_ports + 1):
            ports += ["-device", f"pcie-root-port,id=rp{i},bus=pcie.0,chassis={i}"]
        if self.serial_socket:
            serial = [
                "-chardev",
                f"socket,id=con0,path={self.serial_path},server=on,wait=off,logfile={self.serial_log}",
                "-serial",
                "chardev:con0",
            ]
        else:
            serial = ["-serial", f"file:{self.serial_log}"]
        return [
            "qemu-system-x86_64",
            *machine,
            "-accel",
            "tcg",
            "-cpu",
            self.cpu,
            "-m",
            str(self.memory_mib),
            "-smp",
            "1",
            "-nodefaults",
            "-no-user-config",
            "-display",
            "none",
            *serial,
            "-qmp",
            f"unix:{self.qmp_path},server=on,wait=off",
            "-kernel",
            str(m.path(self.images_dir, "kernel")),
            "-initrd",
            str(m.path(self.images_dir, "initrd")),
            "-append",
            cmdline,
            "-drive",
            f"file={self.disk},if=none,id=sys,format=qcow2,cache=unsafe",
            "-device",
            f"{blk},drive=sys,serial=d-systemdisk0001",
            "-netdev",
            netdev,
            "-device",
            f"{net},netdev=n0,mac=52:54:00:12:34:56",
            *ports,
        ]

    def start(self) -> Self:
        self.serial_log.unlink(missing_ok=True)
        self.qmp_path.unlink(missing_ok=True)
        self.started = time.monotonic()
        with open(self.workdir / "qemu.stderr", "wb") as stderr:
            self.process = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                start_new_session=True,
            )
        return self

    def console(self) -> str:
        try:
            return self.serial_log.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_for(self, pattern: str, timeout: float, after: int = 0) -> re.Match[str]:
        """Wait for `pattern` in the console (from offset `after`); fails with the console's tail."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            text = self.console()
            m = regex.search(text, after)
            if m:
                return m
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(
                    f"QEMU exited ({self.process.returncode}) before {pattern!r}:\n"
                    f"{self._stderr()}\n{text[-3000:]}"
                )
            if time.monotonic() > deadline:
                raise AssertionError(f"no {pattern!r} on the console within {timeout} s:\n{text[-3000:]}")
            time.sleep(0.02)

    def _stderr(self) -> str:
        try:
            return (self.workdir / "qemu.stderr").read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def console_socket(self) -> socket.socket:
        """A connection to the serial console (with `serial_socket`): what is sent is typed."""
        sock = socket.socket(socket.AF_UNIX)
        sock.connect(str(self.serial_path))
        return sock

    @contextmanager
    def qmp(self) -> Iterator[Qmp]:
        client = Qmp(self.qmp_path)
        try:
            yield client
        finally:
            client.close()

    def wait_exit(self, timeout: float) -> int | None:
        assert self.process is not None
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.kill()


# ---- ssh --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SshKey:
    private: Path
    public: str  # the OpenSSH public key line


def make_ssh_key(directory: Path) -> SshKey:
    directory.mkdir(parents=True, exist_ok=True)
    private = directory / "id_ed25519"
    if not private.exists():
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "nubes-test", "-f", str(private)],
            check=True,
            capture_output=True,
        )
    return SshKey(private, (directory / "id_ed25519.pub").read_text().strip())


def ssh(
    port: int, key: SshKey, command: str, timeout: float = 60, user: str = "root"
) -> subprocess.CompletedProcess[str]:
    """Run `command` on the guest through the loopback port forward, with the system ssh."""
    return subprocess.run(
        [
            "ssh",
            "-i",
            str(key.private),
            "-p",
            str(port),
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "ConnectTimeout=10",
            "-o",
            "LogLevel=ERROR",
            f"{user}@127.0.0.1",
            command,
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def wait_ssh(port: int, key: SshKey, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    deadline = time.monotonic() + timeout
    while True:
        result = ssh(port, key, "true", timeout=30)
        if result.returncode == 0 or time.monotonic() > deadline:
            return result
        time.sleep(0.5)


def require_binaries(*names: str) -> list[str]:
    return [n for n in names if shutil.which(n) is None]
