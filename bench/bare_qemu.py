"""launch.py's bare side: QEMU started by hand on the tiny image (an overlay, user-mode networking,
a metadata server of the script's own reached through `guestfwd` and socat), timed from the overlay
to the guest's ready marker on its serial file.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from common import GUEST_RAM_MIB, GUEST_VCPUS, LOCALHOST, cpu_seconds, run
from launch_trials import (
    CpuWindow,
    LaunchBench,
    Watcher,
    got_metadata,
    mem_available_kib,
    memory_sample,
    quiesce,
)

METADATA_IP = "100.100.100.200"
SYSTEM_DISK_GIB = 20  # what nubes gives the tiny image by default (cloud_essd minimum); bare gets the same


# ---- a metadata service for the bare VMs --------------------------------------------------------


class MetadataServer:
    """ECS-style metadata for one bare guest on 127.0.0.1:<port> (QEMU's guestfwd reaches it
    through `socat`): the token endpoint, meta-data/instance-id and hostname; the rest is 404."""

    def __init__(self, instance_id: str) -> None:
        tree = {
            "meta-data/instance-id": instance_id,
            "meta-data/hostname": instance_id,
            "meta-data/": "instance-id\nhostname",
        }

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def do_PUT(self) -> None:
                if self.path.split("?")[0] == "/latest/api/token":
                    self._send(200, secrets.token_urlsafe(24))
                else:
                    self._send(404, "Not Found")

            def do_GET(self) -> None:
                value = tree.get(self.path.split("?")[0].removeprefix("/latest/"))
                self._send(200, value) if value is not None else self._send(404, "Not Found")

            def _send(self, status: int, body: str) -> None:
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer((LOCALHOST, 0), Handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# ---- (a) bare QEMU ---------------------------------------------------------------------------------


@dataclass
class BareTrial:
    count: int
    t0: float
    per_vm: list[dict[str, float]] = field(default_factory=list)  # seconds from t0
    memory: list[dict[str, float]] = field(default_factory=list)
    mem_available_drop_mib: float = float("nan")
    idle_before: float = float("nan")
    no_metadata: int = 0
    cpu: dict[str, float] = field(default_factory=dict)  # CPU-seconds from t0 to the last marker


def bare_command(
    manifest: Any, images_dir: Path, workdir: Path, disk: Path, md_port: int, index: int
) -> list[str]:
    netdev = (
        f"user,id=n0,net=100.100.100.0/24,host=100.100.100.2,dhcpstart=100.100.100.15,"
        f"guestfwd=tcp:{METADATA_IP}:80-cmd:socat - TCP:{LOCALHOST}:{md_port}"
    )
    return [
        "qemu-system-x86_64",
        "-machine",
        "q35",
        "-accel",
        "tcg",
        "-m",
        f"{GUEST_RAM_MIB}M",
        "-smp",
        str(GUEST_VCPUS),
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-kernel",
        str(manifest.path(images_dir, "kernel")),
        "-initrd",
        str(manifest.path(images_dir, "initrd")),
        "-append",
        manifest.cmdline,
        "-serial",
        f"file:{workdir / 'serial.log'}",
        "-drive",
        f"file={disk},if=none,id=sys,format=qcow2",
        "-device",
        "virtio-blk-pci,drive=sys,serial=systemdisk",
        "-netdev",
        netdev,
        "-device",
        f"virtio-net-pci,netdev=n0,mac=52:54:00:12:{index // 256:02x}:{index % 256:02x}",
    ]


def bare_trial(bench: LaunchBench, manifest: Any, images_dir: Path, count: int, label: str) -> BareTrial:
    idle = quiesce()
    watcher = Watcher()
    watcher.start()
    base = manifest.path(images_dir, "rootfs")
    vms: list[tuple[Path, MetadataServer, subprocess.Popen[bytes]]] = []
    mem_before = mem_available_kib()
    window = CpuWindow()
    trial = BareTrial(count, time.time(), idle_before=idle)
    try:
        for k in range(count):
            workdir = bench.tmp / "bare" / f"{label}-{k}"
            workdir.mkdir(parents=True)
            md = MetadataServer(f"i-bare{label}{k}")
            bench.metadata.append(md)
            t_start = time.time()
            disk = workdir / "disk.qcow2"
            run(
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
                    str(disk),
                    f"{SYSTEM_DISK_GIB}G",
                ]
            )
            t_overlay = time.time()
            with open(workdir / "qemu.err", "wb") as err:
                proc = subprocess.Popen(
                    bare_command(manifest, images_dir, workdir, disk, md.port, k),
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=err,
                    start_new_session=True,
                )
            t_popen = time.time()
            bench.bare.append(proc)
            watcher.add_serial(str(k), workdir / "serial.log")
            vms.append((workdir, md, proc))
            trial.per_vm.append(
                {
                    "start": t_start - trial.t0,
                    "overlay": t_overlay - trial.t0,
                    "qemu_exec": t_popen - trial.t0,
                }
            )
        deadline = time.monotonic() + bench.boot_timeout
        while len(watcher.marker) < count and time.monotonic() < deadline:
            for workdir, _, proc in vms:
                if proc.poll() is not None:
                    raise RuntimeError(
                        f"bare QEMU exited ({proc.returncode}): "
                        f"{(workdir / 'qemu.err').read_text(errors='replace')[-1500:]}"
                    )
            time.sleep(0.05)
        busy, own = window.stop()
        qemu_cpu = sum(cpu_seconds(proc.pid) for _, _, proc in vms)
        trial.cpu = {
            "machine": busy,
            "qemu": qemu_cpu,
            "bench": own,
            "server": 0.0,
            "other": busy - qemu_cpu - own,
        }
        watcher.stop()
        for k, entry in enumerate(trial.per_vm):
            entry["marker"] = watcher.marker[str(k)] - trial.t0 if str(k) in watcher.marker else float("nan")
        if len(watcher.marker) < count:
            bench.notes.append(
                f"bare {label}: {count - len(watcher.marker)} VM(s) without a marker "
                f"within {bench.boot_timeout:.0f} s"
            )
        trial.no_metadata = sum(got_metadata(w / "serial.log") is False for w, _, _ in vms)
        time.sleep(1.0)  # let the guests settle after the marker, then sample memory
        trial.memory, trial.mem_available_drop_mib = memory_sample(
            [proc.pid for _, _, proc in vms], mem_before, count
        )
    finally:
        watcher.stop()
        for workdir, md, proc in vms:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
            bench.bare.remove(proc)
            md.close()
            bench.metadata.remove(md)
            shutil.rmtree(workdir, ignore_errors=True)
    return trial
