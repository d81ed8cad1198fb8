"""Which accelerator QEMU uses on this host: KVM when it really works, TCG otherwise.

Opening /dev/kvm proves nothing: some hosts offer a KVM device (e.g. PVM's `kvm_pvm`) that
runs only specially built guest kernels, and a Debian kernel then aborts (`-cpu host`: MSR
0x10a) or never reaches user space. So "auto" decides by a short trial boot of the guest
kernel nubes really uses, with a probe initramfs whose /init is a 200-byte static program
that prints a marker and powers off: the marker on the serial console means the guest ran
user space under KVM. The verdict is cached (`accel.json` in the driver's state dir) and
keyed by the host kernel, the QEMU binary and the guest kernel file, so it is made once.

Order of precedence: an explicit "kvm"/"tcg" (constructor argument, i.e. the operator's
`--accel`), then the environment variable NUBES_ACCEL=kvm|tcg, then the cached verdict,
then a trial boot. Without a usable /dev/kvm the answer is "tcg" at once.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import struct
import subprocess
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

ACCELS = ("kvm", "tcg")
ACCEL_ENV = "NUBES_ACCEL"
CACHE_FILE = "accel.json"
PROBE_MARKER = b"NUBES-ACCEL-OK"
TRIAL_TIMEOUT = 10.0


def forced_accel(requested: str, environ: Mapping[str, str] | None = None) -> str | None:
    """The accelerator the operator forced ("kvm"/"tcg"), or None for "decide yourself"."""
    value = requested.strip().lower()
    if value in ACCELS:
        return value
    if value not in ("", "auto"):
        raise ValueError(f"accel must be auto, kvm or tcg, not {requested!r}")
    env = (os.environ if environ is None else environ).get(ACCEL_ENV, "").strip().lower()
    if env in ACCELS:
        return env
    if env not in ("", "auto"):
        raise ValueError(f"{ACCEL_ENV} must be auto, kvm or tcg, not {env!r}")
    return None


def kvm_device_opens(path: str = "/dev/kvm") -> bool:
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return False
    os.close(fd)
    return True


# ---- the probe initramfs ---------------------------------------------------------------------


def probe_init_elf(marker: bytes = PROBE_MARKER) -> bytes:
    """A static x86-64 ELF: write(1, marker + "\\n"); reboot(POWER_OFF); loop."""
    msg = marker + b"\n"
    code = b"".join(
        [
            b"\xb8\x01\x00\x00\x00",  # mov eax, 1 (write)
            b"\xbf\x01\x00\x00\x00",  # mov edi, 1
            b"\x48\x8d\x35" + struct.pack("<i", 31),  # lea rsi, [rip+31] -> msg
            b"\xba" + struct.pack("<I", len(msg)),  # mov edx, len
            b"\x0f\x05",  # syscall
            b"\xb8\xa9\x00\x00\x00",  # mov eax, 169 (reboot)
            b"\xbf\xad\xde\xe1\xfe",  # mov edi, LINUX_REBOOT_MAGIC1
            b"\xbe\x69\x19\x12\x28",  # mov esi, LINUX_REBOOT_MAGIC2
            b"\xba\xdc\xfe\x21\x43",  # mov edx, LINUX_REBOOT_CMD_POWER_OFF
            b"\x0f\x05",  # syscall
            b"\xeb\xfe",  # jmp .
        ]
    )
    assert len(code) == 48
    base, header_size = 0x400000, 64 + 56
    total = header_size + len(code) + len(msg)
    ehdr = struct.pack(
        "<4sBBBBB7sHHIQQQIHHHHHH",
        b"\x7fELF",
        2,
        1,
        1,
        0,
        0,
        b"\0" * 7,  # 64-bit, little endian, SysV
        2,
        0x3E,
        1,  # ET_EXEC, x86-64, version
        base + header_size,
        64,
        0,  # entry, phoff, shoff
        0,
        64,
        56,
        1,
        64,
        0,
        0,  # flags, ehsize, phentsize, phnum, shentsize, shnum, shstrndx
    )
    phdr = struct.pack("<IIQQQQQQ", 1, 5, 0, base, base, total, total, 0x1000)  # PT_LOAD, R+X
    return ehdr + phdr + code + msg


def newc_archive(entries: list[tuple[str, int, bytes, tuple[int, int]]]) -> bytes:
    """A cpio archive in the kernel's "newc" format: (name, mode, data, (rdev major, minor))."""
    out = bytearray()

    def member(ino: int, name: str, mode: int, data: bytes, rdev: tuple[int, int]) -> None:
        raw = name.encode() + b"\0"
        fields = (ino, mode, 0, 0, 1, 0, len(data), 0, 0, rdev[0], rdev[1], len(raw), 0)
        out.extend(b"070701" + b"".join(b"%08X" % v for v in fields) + raw)
        out.extend(b"\0" * (-len(out) % 4))
        out.extend(data)
        out.extend(b"\0" * (-len(out) % 4))

    for ino, (name, mode, data, rdev) in enumerate(entries, start=1):
        member(ino, name, mode, data, rdev)
    member(len(entries) + 1, "TRAILER!!!", 0, b"", (0, 0))
    out.extend(b"\0" * (-len(out) % 512))
    return bytes(out)


def probe_initramfs() -> bytes:
    return newc_archive(
        [
            ("dev", 0o040755, b"", (0, 0)),
            ("dev/console", 0o020600, b"", (5, 1)),
            ("init", 0o100755, probe_init_elf(), (0, 0)),
        ]
    )


# ---- the trial boot --------------------------------------------------------------------------


@dataclass(frozen=True)
class TrialResult:
    accel: str
    ok: bool
    seconds: float
    detail: str


def trial_command(qemu_binary: str, accel: str, kernel: Path, initrd: Path, serial_log: Path) -> list[str]:
    accel_args = ["-accel", "kvm", "-cpu", "host"] if accel == "kvm" else ["-accel", "tcg"]
    return [
        qemu_binary,
        "-machine",
        "q35",
        *accel_args,
        "-m",
        "256",
        "-smp",
        "1",
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-no-reboot",
        "-serial",
        f"file:{serial_log}",
        "-kernel",
        str(kernel),
        "-initrd",
        str(initrd),
        "-append",
        "console=ttyS0 panic=-1 quiet rdinit=/init",
    ]


def trial_boot(
    qemu_binary: str,
    kernel: Path,
    accel: str = "kvm",
    timeout: float = TRIAL_TIMEOUT,
    workdir: Path | None = None,
) -> TrialResult:
    """Boot `kernel` with the probe initramfs; ok when the probe's marker reached the console."""
    tmp = Path(tempfile.mkdtemp(prefix="nubes-accel-", dir=workdir))
    try:
        initrd = tmp / "probe.cpio"
        initrd.write_bytes(probe_initramfs())
        serial = tmp / "serial.log"
        errors = tmp / "qemu.err"
        argv = trial_command(qemu_binary, accel, kernel, initrd, serial)
        t0 = time.monotonic()
        with open(errors, "wb") as err:
            proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err, start_new_session=True
            )
        ok = False
        try:
            while time.monotonic() - t0 < timeout:
                if serial.exists() and PROBE_MARKER in serial.read_bytes():
                    ok = True
                    break
                if proc.poll() is not None:
                    ok = serial.exists() and PROBE_MARKER in serial.read_bytes()
                    break
                time.sleep(0.05)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
        seconds = time.monotonic() - t0
        stderr = errors.read_text(errors="replace").strip()
        if ok:
            detail = f"{accel}: guest user space reached in {seconds:.2f}s"
        elif proc.returncode not in (None, 0, -9):
            detail = f"{accel}: QEMU exited {proc.returncode}: {stderr[-500:]}"
        else:
            detail = f"{accel}: no probe marker within {timeout:.0f}s {stderr[-300:]}".strip()
        return TrialResult(accel, ok, seconds, detail)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ---- the cached verdict ----------------------------------------------------------------------


def _file_id(path: str | Path) -> str:
    try:
        st = os.stat(path)
    except OSError:
        return f"{path}:missing"
    return f"{os.path.realpath(path)}:{st.st_size}:{int(st.st_mtime)}"


def host_key(qemu_binary: str, kernel: Path | None) -> dict[str, str]:
    binary = shutil.which(qemu_binary) or qemu_binary
    return {
        "host_kernel": os.uname().release,
        "qemu": _file_id(binary),
        "guest_kernel": _file_id(kernel) if kernel is not None else "",
    }


def read_cache(cache_dir: Path, qemu_binary: str) -> str | None:
    """The cached verdict if it was made on this host kernel with this QEMU binary."""
    try:
        data = json.loads((cache_dir / CACHE_FILE).read_text())
    except (OSError, ValueError):
        return None
    key = data.get("key", {})
    current = host_key(qemu_binary, None)
    if key.get("host_kernel") != current["host_kernel"] or key.get("qemu") != current["qemu"]:
        return None
    verdict = data.get("accel")
    return verdict if verdict in ACCELS else None


def write_cache(cache_dir: Path, qemu_binary: str, kernel: Path | None, accel: str, detail: str) -> None:
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = cache_dir / (CACHE_FILE + ".tmp")
    tmp.write_text(
        json.dumps(
            {
                "accel": accel,
                "key": host_key(qemu_binary, kernel),
                "detail": detail,
                "decided_at": time.time(),
            },
            indent=1,
        )
    )
    os.replace(tmp, cache_dir / CACHE_FILE)


def resolve_accel(
    requested: str,
    cache_dir: Path,
    qemu_binary: str,
    kernel: Path | None = None,
    timeout: float = TRIAL_TIMEOUT,
    kvm_device: str = "/dev/kvm",
) -> str | None:
    """ "kvm" or "tcg"; None when it cannot be decided yet (no cached verdict and no guest kernel
    to try). May take a trial boot of up to `timeout` seconds, once per host."""
    forced = forced_accel(requested)
    if forced is not None:
        return forced
    if not kvm_device_opens(kvm_device):
        return "tcg"
    cached = read_cache(cache_dir, qemu_binary)
    if cached is not None:
        return cached
    if kernel is None:
        return None
    result = trial_boot(
        qemu_binary, kernel, "kvm", timeout, workdir=cache_dir if cache_dir.is_dir() else None
    )
    verdict = "kvm" if result.ok else "tcg"
    log.info("accelerator trial: %s -> %s", result.detail, verdict)
    write_cache(cache_dir, qemu_binary, kernel, verdict, result.detail)
    return verdict
