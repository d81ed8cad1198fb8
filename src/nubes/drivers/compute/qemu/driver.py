"""The qemu compute driver: one QEMU process per instance (see the package docstring)."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

from nubes.drivers.compute.base import (
    ComputeCapabilities,
    ComputeDriver,
    ComputeError,
    PowerState,
    VmHandle,
    VmNotRunning,
    VmSpec,
)
from nubes.drivers.compute.qemu import accel as accel_mod
from nubes.drivers.compute.qemu.blockops import (
    BlockOperations,
)
from nubes.drivers.compute.qemu.cmdline import (
    DEFAULT_HOTPLUG_PORTS,
    DEFAULT_TB_SIZE_MIB,
    INSTANCE_ID,
    QEMU_BINARY,
    UNIX_PATH_MAX,
    RenderOptions,
    host_khz,
    initial_nic_ports,
    initial_ports,
    port_count,
    render_command,
    secret_file,
)
from nubes.drivers.compute.qemu.hibernation import HibernationOperations
from nubes.drivers.compute.qemu.monitorops import MonitorOperations
from nubes.drivers.compute.qemu.nicops import NicOperations
from nubes.drivers.compute.qemu.qmp import (
    QmpClient,
    QmpClosed,
    QmpError,
)
from nubes.drivers.compute.qemu.vmdir import (
    CMDLINE_FILE,
    DISKS_FILE,
    ERR_FILE,
    HANDLE_FILE,
    INTENT_FILE,
    LOCK_FILE,
    PID_FILE,
    QMP_FILE,
    SERIAL_FILE,
    VNC_FILE,
    Runtime,
    VmPaths,
    process_cmdline,
    process_start_time,
    unlink_quietly,
    write_atomic,
)

log = logging.getLogger(__name__)

# QEMU run states (query-status) -> power state; "shutdown" is handled apart (reaped: STOPPED).
_PAUSED_STATES = {
    "paused",
    "suspended",
    "prelaunch",
    "inmigrate",
    "postmigrate",
    "finish-migrate",
    "restore-vm",
    "save-vm",
    "debug",
    "watchdog",
    "io-error",
    "colo",
}
_CRASHED_STATES = {"internal-error", "guest-panicked"}


def write_secrets(spec: VmSpec, paths: VmPaths) -> None:
    """The keys of the VM's encrypted disks, each in a 0600 file of a 0700 directory, for the
    `-object secret,file=` of its command line (so no key is on that command line)."""
    for disk in spec.disks:
        if not disk.key:
            continue
        path = secret_file(paths, disk.disk_id)
        path.parent.mkdir(mode=0o700, exist_ok=True)
        unlink_quietly(path)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(disk.key)


def remove_secrets(spec: VmSpec, paths: VmPaths) -> None:
    for disk in spec.disks:
        if disk.key:
            unlink_quietly(secret_file(paths, disk.disk_id))


class QemuDriver(BlockOperations, NicOperations, MonitorOperations, HibernationOperations, ComputeDriver):
    def __init__(
        self,
        state_dir: Path,
        accel: str = "auto",
        qemu_binary: str = QEMU_BINARY,
        *,
        machine: str = "q35",
        tb_size_mib: int = DEFAULT_TB_SIZE_MIB,
        hotplug_ports: int = DEFAULT_HOTPLUG_PORTS,
        cache_dir: Path | None = None,
        probe_kernel: Path | None = None,
        trial_timeout: float = accel_mod.TRIAL_TIMEOUT,
        qmp_timeout: float = 5.0,
        launch_timeout: float = 60.0,
        unplug_timeout: float = 20.0,
        reboot_timeout: float = 60.0,
    ) -> None:
        self.state_dir = Path(state_dir).absolute()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.qemu_binary = qemu_binary
        self.machine = machine
        self.tb_size_mib = tb_size_mib
        self.hotplug_ports = hotplug_ports if machine == "q35" else 0
        self.cache_dir = Path(cache_dir) if cache_dir is not None else self.state_dir
        self.trial_timeout = trial_timeout
        self.qmp_timeout = qmp_timeout
        self.launch_timeout = launch_timeout
        self.unplug_timeout = unplug_timeout
        self.reboot_timeout = reboot_timeout
        self._requested_accel = accel
        self._guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}
        self._accel_lock = threading.Lock()
        self._accel: str | None = (
            accel_mod.resolve_accel(accel, self.cache_dir, qemu_binary, probe_kernel, trial_timeout)
            if probe_kernel is not None
            else self._quick_accel()
        )
        self.capabilities = self._capabilities(self._accel or "auto")

    # ---- accelerator -------------------------------------------------------------------------

    def _quick_accel(self) -> str | None:
        """The accelerator if it is known without a trial boot (forced, no /dev/kvm, cached)."""
        forced = accel_mod.forced_accel(self._requested_accel)
        if forced is not None:
            return forced
        if not accel_mod.kvm_device_opens():
            return "tcg"
        return accel_mod.read_cache(self.cache_dir, self.qemu_binary)

    def resolve_accel(self, kernel: Path | None = None) -> str | None:
        """Decide the accelerator now (trial-booting `kernel` if needed); None if undecidable."""
        with self._accel_lock:
            if self._accel is None:
                self._accel = accel_mod.resolve_accel(
                    self._requested_accel, self.cache_dir, self.qemu_binary, kernel, self.trial_timeout
                )
                if self._accel is not None:
                    self.capabilities = self._capabilities(self._accel)
            return self._accel

    def _capabilities(self, accel: str) -> ComputeCapabilities:
        # QEMU processes can die or be powered off by their guests; QEMU opens the taps itself;
        # nubes' images print the ready line
        return ComputeCapabilities(
            name="qemu",
            accel=accel,
            disk_hotplug=self.machine == "q35",
            changes_by_itself=True,
            opens_taps=True,
            reports_ready=True,
            nic_hotplug=self.machine == "q35",  # (a free pcie-root-port, as disks)
        )

    def render_options(self) -> RenderOptions:
        return RenderOptions(
            qemu_binary=self.qemu_binary,
            machine=self.machine,
            tb_size_mib=self.tb_size_mib,
            hotplug_ports=self.hotplug_ports,
            host_khz=host_khz() if self.machine == "microvm" else 0,
        )

    # ---- files and locks ---------------------------------------------------------------------

    def _dir(self, instance_id: str) -> Path:
        if not INSTANCE_ID.match(instance_id):
            raise ValueError(f"bad instance id {instance_id!r}")
        return self.state_dir / instance_id

    def paths(self, instance_id: str) -> VmPaths:
        d = self._dir(instance_id)
        sock, vnc = d / QMP_FILE, d / VNC_FILE
        if len(str(sock).encode()) > UNIX_PATH_MAX:
            # AF_UNIX paths are limited to 107 bytes: fall back to a short runtime directory.
            base = (
                Path("/run/nubes-qmp")
                if os.access("/run", os.W_OK)
                else Path(tempfile.gettempdir()) / "nubes-qmp"
            )
            name = hashlib.sha256(str(d).encode()).hexdigest()[:20]
            sock, vnc = base / (name + ".sock"), base / (name + ".vnc")
        return VmPaths.under(d, sock, vnc)

    @contextlib.contextmanager
    def _locked(self, instance_id: str) -> Iterator[Path]:
        """Serialize the operations on one VM: within the process (threads) and across processes
        (an flock on the instance's lock file)."""
        d = self._dir(instance_id)
        with self._guard:
            lock = self._locks.setdefault(instance_id, threading.Lock())
        with lock:
            d.mkdir(parents=True, exist_ok=True)
            fd = os.open(d / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                yield d
            finally:
                os.close(fd)

    @contextlib.contextmanager
    def _locked_running(self, instance_id: str) -> Iterator[VmHandle]:
        """The VM's handle, under its lock; VmNotRunning when there is no VM (checked before
        locking, which would make the instance's directory)."""
        if not self._known(instance_id):
            raise VmNotRunning(f"{instance_id} is not running")
        with self._locked(instance_id):
            handle = self._find(instance_id)
            if handle is None:
                raise VmNotRunning(f"{instance_id} is not running")
            yield handle

    def _intent(self, instance_id: str) -> str:
        try:
            return (self._dir(instance_id) / INTENT_FILE).read_text().strip()
        except OSError:
            return ""

    def _set_intent(self, instance_id: str, intent: str) -> None:
        d = self._dir(instance_id)
        d.mkdir(parents=True, exist_ok=True)
        write_atomic(d / INTENT_FILE, intent + "\n")

    def _load_runtime(self, instance_id: str) -> Runtime:
        try:
            data = json.loads((self._dir(instance_id) / DISKS_FILE).read_text())
            return Runtime(
                str(data.get("system", "")),
                {str(k): int(v) for k, v in data.get("ports", {}).items()},
                int(data.get("port_count", 0)),
                {str(k): int(v) for k, v in data.get("nics", {}).items()},
            )
        except (OSError, ValueError, TypeError, AttributeError):
            return Runtime()

    def _save_runtime(self, instance_id: str, runtime: Runtime) -> None:
        write_atomic(self._dir(instance_id) / DISKS_FILE, json.dumps(asdict(runtime), indent=1))

    # ---- finding the process ---------------------------------------------------------------

    def _read_handle(self, instance_id: str) -> VmHandle | None:
        try:
            data = json.loads((self._dir(instance_id) / HANDLE_FILE).read_text())
            return VmHandle(
                instance_id=str(data["instance_id"]),
                pid=int(data["pid"]),
                qmp_socket=Path(data["qmp_socket"]),
                serial_log=Path(data["serial_log"]),
                accel=str(data["accel"]),
                started_at=float(data["started_at"]),
                extra={str(k): str(v) for k, v in dict(data.get("extra", {})).items()},
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _write_handle(self, handle: VmHandle) -> None:
        data = asdict(handle)
        data["qmp_socket"] = str(handle.qmp_socket)
        data["serial_log"] = str(handle.serial_log)
        write_atomic(self._dir(handle.instance_id) / HANDLE_FILE, json.dumps(data, indent=1))

    @staticmethod
    def _alive(handle: VmHandle) -> bool:
        start = process_start_time(handle.pid)
        return start is not None and start == handle.extra.get("proc_start")

    def _find(self, instance_id: str) -> VmHandle | None:
        """The handle of the live QEMU of this instance, or None. Falls back to the pidfile (and
        rewrites handle.json) when the agent died between the launch and writing the handle."""
        handle = self._read_handle(instance_id)
        if handle is not None and self._alive(handle):
            return handle
        paths = self.paths(instance_id)
        try:
            pid = int(paths.pidfile.read_text().strip())
        except (OSError, ValueError):
            return None
        start = process_start_time(pid)
        argv = process_cmdline(pid)
        if start is None or str(paths.pidfile) not in argv:
            return None
        accel = "kvm" if any(a == "kvm" or a.startswith("kvm,") for a in argv) else "tcg"
        handle = VmHandle(
            instance_id,
            pid,
            paths.qmp_socket,
            paths.serial_log,
            accel,
            started_at=time.time(),
            extra={"proc_start": start, "pidfile": str(paths.pidfile)},
        )
        self._write_handle(handle)
        return handle

    def _qmp(self, handle: VmHandle, timeout: float | None = None) -> QmpClient:
        return QmpClient(handle.qmp_socket, self.qmp_timeout if timeout is None else timeout).connect()

    def _status(self, handle: VmHandle) -> str | None:
        """QEMU's run state ("running", "paused", "shutdown", ...), None if QMP did not answer."""
        try:
            with self._qmp(handle) as q:
                return str(q.execute("query-status")["status"])
        except (QmpError, KeyError, TypeError):
            return None

    def _wait_gone(self, handle: VmHandle, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self._alive(handle):
                return True
            time.sleep(0.02)
        return not self._alive(handle)

    def _stop_process(self, handle: VmHandle) -> None:
        """QMP quit (QEMU flushes and exits), else SIGKILL; then remove the runtime files."""
        if self._alive(handle):
            try:
                with self._qmp(handle, timeout=2.0) as q:
                    q.execute("quit", timeout=2.0)
            except QmpClosed:
                pass
            except QmpError as exc:
                log.warning("%s: QMP quit failed (%s); killing pid %d", handle.instance_id, exc, handle.pid)
            if not self._wait_gone(handle, 5.0):
                if self._alive(handle):  # still the same process: kill it
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(handle.pid, signal.SIGKILL)
                if not self._wait_gone(handle, 5.0):
                    raise ComputeError(f"{handle.instance_id}: QEMU pid {handle.pid} survived SIGKILL")
        self._forget(handle.instance_id)

    def _forget(self, instance_id: str) -> None:
        """Remove what only a running VM needs (the intent, console and disks stay)."""
        paths = self.paths(instance_id)
        for path in (paths.dir / HANDLE_FILE, paths.pidfile, paths.qmp_socket, paths.vnc_socket):
            unlink_quietly(path)

    # ---- the contract ------------------------------------------------------------------------

    def start(self, spec: VmSpec) -> VmHandle:
        with self._locked(spec.instance_id):
            handle = self._find(spec.instance_id)
            if handle is not None:
                if self._status(handle) != "shutdown":
                    self._set_intent(spec.instance_id, "running")
                    return handle
                # the guest powered itself off and nobody reaped it yet: boot it afresh
                self._stop_process(handle)
            return self._launch(spec)

    def _launch(self, spec: VmSpec, layout: Runtime | None = None, incoming: str | None = None) -> VmHandle:
        """Run QEMU for `spec`; `layout` and `incoming`: to restore a memory image (render_command)."""
        accel = self.resolve_accel(spec.boot.kernel)
        if accel is None:  # pragma: no cover - resolve_accel decides whenever a kernel is given
            raise ComputeError("cannot decide the accelerator")
        paths = self.paths(spec.instance_id)
        paths.dir.mkdir(parents=True, exist_ok=True)
        paths.qmp_socket.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._forget(spec.instance_id)
        opts = self.render_options()
        argv = render_command(spec, paths, accel, opts, layout, incoming)
        write_atomic(paths.dir / CMDLINE_FILE, json.dumps(argv, indent=1))
        if layout is None:
            nic_ports = (
                initial_nic_ports(spec) if opts.machine == "q35" else {n.port_id: -1 for n in spec.nics}
            )
            self._save_runtime(
                spec.instance_id,
                Runtime(spec.disks[0].disk_id, initial_ports(spec), port_count(spec, opts), nic_ports),
            )
        self._set_intent(spec.instance_id, "running" if incoming is None else "restoring")
        started_at = time.time()
        err_path = paths.dir / ERR_FILE
        try:
            write_secrets(spec, paths)
            code = self._run_qemu(spec.instance_id, argv, err_path)
        finally:
            remove_secrets(spec, paths)  # read: QEMU's parent exits after setup (-daemonize)
        if code != 0:
            self._set_intent(spec.instance_id, "stopped" if incoming is None else "hibernated")
            self._kill_from_pidfile(paths)
            self._forget(spec.instance_id)
            stderr = err_path.read_text(errors="replace").strip()
            raise ComputeError(f"{spec.instance_id}: QEMU failed to start (exit {code}): {stderr[-2000:]}")
        try:
            pid = int(paths.pidfile.read_text().strip())
        except (OSError, ValueError) as exc:
            raise ComputeError(f"{spec.instance_id}: QEMU started but wrote no pidfile") from exc
        start = process_start_time(pid)
        if start is None:
            self._forget(spec.instance_id)
            raise ComputeError(f"{spec.instance_id}: QEMU (pid {pid}) exited right after starting")
        handle = VmHandle(
            spec.instance_id,
            pid,
            paths.qmp_socket,
            paths.serial_log,
            accel,
            started_at,
            extra={
                "proc_start": start,
                "pidfile": str(paths.pidfile),
                "machine": self.machine,
                "netns": spec.netns or "",
            },
        )
        self._write_handle(handle)
        log.info("%s: started QEMU pid %d (%s, %s)", spec.instance_id, pid, self.machine, accel)
        return handle

    def _run_qemu(self, instance_id: str, argv: list[str], err_path: Path) -> int:
        """Run QEMU's first process and wait for it to daemonize; its exit code (-1: it hung)."""
        with open(err_path, "wb") as err:
            try:
                proc = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=err,
                    start_new_session=True,
                    close_fds=True,
                )
            except OSError as exc:
                self._set_intent(instance_id, "stopped")
                raise ComputeError(f"{instance_id}: cannot run {argv[0]}: {exc}") from exc
        # A blocking wait (Popen.wait with a timeout polls, up to 50 ms late), killed by a timer
        # if QEMU hangs: the daemonizing parent's exit is seen at once.
        hung = threading.Event()

        def kill() -> None:
            hung.set()
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)

        timer = threading.Timer(self.launch_timeout, kill)
        timer.start()
        try:
            code = proc.wait()
        finally:
            timer.cancel()
        return -1 if hung.is_set() else code

    def _kill_from_pidfile(self, paths: VmPaths) -> None:
        with contextlib.suppress(OSError, ValueError):
            pid = int(paths.pidfile.read_text().strip())
            if str(paths.pidfile) in process_cmdline(pid):
                os.kill(pid, signal.SIGKILL)

    def _known(self, instance_id: str) -> bool:
        """Whether this driver ever kept files for the instance (read-only calls on an unknown
        one must not create its directory)."""
        return self._dir(instance_id).is_dir()

    def state(self, instance_id: str) -> PowerState:
        if not self._known(instance_id):
            return PowerState.STOPPED
        with self._locked(instance_id):
            handle = self._find(instance_id)
            if handle is None:
                return PowerState.CRASHED if self._intent(instance_id) == "running" else PowerState.STOPPED
            status = self._status(handle)
            if status is None and not self._alive(handle):
                return PowerState.CRASHED if self._intent(instance_id) == "running" else PowerState.STOPPED
            if status == "shutdown":  # the guest powered off: reap the process
                self._set_intent(instance_id, "stopped")
                self._stop_process(handle)
                return PowerState.STOPPED
            if status in _PAUSED_STATES:
                return PowerState.PAUSED
            if status in _CRASHED_STATES:
                return PowerState.CRASHED
            return PowerState.RUNNING  # "running", or alive but QMP busy

    def _powerdown_until_off(self, handle: VmHandle, timeout: float) -> bool:
        """Press the ACPI power button (again every 5 s, in case the guest was not listening yet)
        until QEMU reports "shutdown" or the process is gone; False on timeout."""
        deadline = time.monotonic() + timeout
        next_press = 0.0
        while time.monotonic() < deadline:
            if not self._alive(handle):
                return True
            now = time.monotonic()
            try:
                with self._qmp(handle, timeout=min(self.qmp_timeout, max(0.1, deadline - now))) as q:
                    if now >= next_press:
                        q.execute("system_powerdown")
                        next_press = now + 5.0
                    if str(q.execute("query-status")["status"]) == "shutdown":
                        return True
            except QmpClosed:
                continue
            except QmpError as exc:
                log.debug("%s: powerdown poll: %s", handle.instance_id, exc)
            time.sleep(0.1)
        return False

    def shutdown(self, instance_id: str, timeout: float) -> bool:
        if not self._known(instance_id):
            return True
        with self._locked(instance_id):
            handle = self._find(instance_id)
            if handle is None:
                self._set_intent(instance_id, "stopped")
                self._forget(instance_id)
                return True
            self._set_intent(instance_id, "stopped")
            if not self._powerdown_until_off(handle, timeout):
                self._set_intent(instance_id, "running")
                return False
            self._stop_process(handle)
            return True

    def destroy(self, instance_id: str) -> None:
        if not self._known(instance_id):
            return
        with self._locked(instance_id):
            self._set_intent(instance_id, "stopped")
            handle = self._find(instance_id)
            if handle is not None:
                self._stop_process(handle)
            else:
                self._kill_from_pidfile(self.paths(instance_id))
                self._forget(instance_id)

    def reboot(self, instance_id: str, force: bool) -> None:
        """force: `system_reset` (the reset line, at once). Otherwise the guest is asked to power
        off by ACPI (as shutdown() does); once it has, the VM is reset and resumed in the same QEMU
        process -- a clean OS shutdown then a fresh boot, as ECS's RebootInstance does. Raises
        ComputeError when the guest did not power off within `reboot_timeout` (the VM runs on)."""
        with self._locked_running(instance_id) as handle:
            if not force and not self._powerdown_until_off(handle, self.reboot_timeout):
                raise ComputeError(
                    f"{instance_id}: the guest did not power off within {self.reboot_timeout}s"
                )
            if not self._alive(handle):
                raise ComputeError(f"{instance_id}: QEMU exited during the reboot")
            with self._qmp(handle) as q:
                q.execute("system_reset")
                if str(q.execute("query-status")["status"]) != "running":
                    q.execute("cont")
            self._set_intent(instance_id, "running")

    def recover(self) -> list[VmHandle]:
        live: list[VmHandle] = []
        for entry in sorted(self.state_dir.iterdir()):
            if not entry.is_dir() or not INSTANCE_ID.match(entry.name):
                continue
            if not ((entry / HANDLE_FILE).exists() or (entry / PID_FILE).exists()):
                continue
            with self._locked(entry.name):
                handle = self._find(entry.name)
                if handle is not None:
                    live.append(handle)
                else:
                    self._forget(entry.name)  # stale: the intent stays, so state() can say CRASHED
        return live

    def console_output(self, instance_id: str, max_bytes: int = 64 * 1024) -> bytes:
        path = self._dir(instance_id) / SERIAL_FILE
        try:
            with open(path, "rb") as f:
                size = f.seek(0, os.SEEK_END)
                f.seek(max(0, size - max_bytes))
                return f.read()
        except OSError:
            return b""

    def cleanup(self, instance_id: str) -> None:
        if not self._known(instance_id):
            return
        with self._locked(instance_id):
            handle = self._find(instance_id)
            if handle is not None:
                self._set_intent(instance_id, "stopped")
                self._stop_process(handle)
            paths = self.paths(instance_id)
            unlink_quietly(paths.qmp_socket)
            unlink_quietly(paths.vnc_socket)
            shutil.rmtree(paths.dir, ignore_errors=True)
        with self._guard:
            self._locks.pop(instance_id, None)
