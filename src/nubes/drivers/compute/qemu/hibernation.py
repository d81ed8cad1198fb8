"""Hibernation with QEMU: the VM's memory and device state saved to a file, and a new QEMU
process that continues the guest from it.

Save (`hibernate`): the intent "hibernating" is written first; then QMP `stop` (the guest is
paused: nothing changes while it is saved, and nothing has to be sent twice), the migration
bandwidth unlimited, `migrate` to `exec:cat > memory.img.partial` (QEMU 7.2 has no `file:`
URI), `query-migrate` polled until "completed"; the partial file is fsynced and renamed to
`memory.img` -- the commit point -- then the intent "hibernated" and QMP `quit`. A save that
fails or times out is cancelled (`migrate_cancel`), the partial file removed, the guest
continued (`cont`): the VM runs on as before.

Restore (`restore`): the VM's command line as it had it (`render_command` with the runtime
record's layout: the same root ports, disks and NICs in the same ports, even the hot-plugged
ones -- QEMU loads a migration stream only into the very same devices) plus `-incoming
exec:cat memory.img`, the intent "restoring"; QEMU loads the image by itself once started and
ends "paused" (the state the VM was saved in); `cont`; then the image is removed and the
intent is "running". The guest continues: its processes, tmpfs files and uptime (its clock
jumps by the time it was away).

Crash safety (`_settle`, run under the VM's lock by `hibernated` and `restore`): what a
caller killed half-way left is finished or undone by the files and the process found:
- intent "hibernating", `memory.img` there: the save completed; a QEMU still alive is quit.
  Hibernated.
- intent "hibernating", no `memory.img`, QEMU alive: the save is abandoned (migration
  cancelled, partial file removed, guest continued): the old VM runs on.
- intent "hibernating", no `memory.img`, QEMU dead: partial file removed; stopped (it boots
  cold next).
- intent "restoring", QEMU alive: waited for until the image is loaded, continued, the image
  removed (running); a load that failed: QEMU stopped, the image kept (hibernated).
- intent "restoring", QEMU dead: the image is kept (hibernated; restoring can be tried again).
"""

from __future__ import annotations

import contextlib
import os
import shlex
import time
from abc import abstractmethod
from pathlib import Path

from nubes.drivers.compute.base import ComputeError, VmHandle, VmNotRunning, VmSpec
from nubes.drivers.compute.qemu.blockops import VmAccess
from nubes.drivers.compute.qemu.qmp import QmpClient, QmpError
from nubes.drivers.compute.qemu.vmdir import MEMORY_FILE, PARTIAL_SUFFIX, Runtime, unlink_quietly
from nubes.drivers.statefile import fsync_path

MIGRATE_POLL = 0.005  # seconds between two query-migrate / query-status while saving or loading
UNLIMITED_BANDWIDTH = 1 << 40  # bytes/s: QEMU's default (128 MiB/s) would slow a local save down


class HibernationOperations(VmAccess):
    """The driver's hibernation: save a running VM's memory image, continue a VM from it."""

    launch_timeout: float

    @abstractmethod
    def _dir(self, instance_id: str) -> Path: ...

    @abstractmethod
    def _intent(self, instance_id: str) -> str: ...

    @abstractmethod
    def _set_intent(self, instance_id: str, intent: str) -> None: ...

    @abstractmethod
    def _status(self, handle: VmHandle) -> str | None: ...

    @abstractmethod
    def _stop_process(self, handle: VmHandle) -> None: ...

    @abstractmethod
    def _launch(
        self, spec: VmSpec, layout: Runtime | None = None, incoming: str | None = None
    ) -> VmHandle: ...

    # ---- files -------------------------------------------------------------------------------

    def memory_image(self, instance_id: str) -> Path:
        """Where the VM's memory image is kept while it is hibernated."""
        return self._dir(instance_id) / MEMORY_FILE

    def _partial(self, instance_id: str) -> Path:
        image = self.memory_image(instance_id)
        return image.with_name(image.name + PARTIAL_SUFFIX)

    # ---- the contract ------------------------------------------------------------------------

    def hibernate(self, instance_id: str, timeout: float) -> None:
        with self._locked_running(instance_id) as handle:
            if self._status(handle) == "shutdown":  # the guest powered off: nothing to save
                self._set_intent(instance_id, "stopped")
                self._stop_process(handle)
                raise VmNotRunning(f"{instance_id} powered off")
            image, partial = self.memory_image(instance_id), self._partial(instance_id)
            unlink_quietly(partial)
            unlink_quietly(image)
            self._set_intent(instance_id, "hibernating")
            try:
                self._save(handle, partial, timeout)
            except (QmpError, ComputeError) as exc:
                self._abandon_save(handle)
                raise ComputeError(f"{instance_id}: the memory image could not be saved: {exc}") from exc
            fsync_path(partial)
            os.replace(partial, image)  # the commit point: from now on the VM is hibernated
            fsync_path(image.parent)
            self._set_intent(instance_id, "hibernated")
            self._stop_process(handle)

    def _save(self, handle: VmHandle, partial: Path, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with self._qmp(handle) as q:
            q.execute("stop")
            q.execute("migrate-set-parameters", {"max-bandwidth": UNLIMITED_BANDWIDTH})
            q.execute("migrate", {"uri": f"exec:cat > {shlex.quote(str(partial))}"})
            while True:
                status = str(q.execute("query-migrate").get("status", ""))
                if status == "completed":
                    return
                if status in ("failed", "cancelled", "cancelling"):
                    raise ComputeError(f"migration {status}")
                if time.monotonic() > deadline:
                    raise ComputeError(f"not saved within {timeout:.0f} s")
                time.sleep(MIGRATE_POLL)

    def _abandon_save(self, handle: VmHandle) -> None:
        """Cancel a save, remove its partial image and let the guest go on (the old VM runs on)."""
        instance_id = handle.instance_id
        with contextlib.suppress(QmpError), self._qmp(handle) as q:
            with contextlib.suppress(QmpError):
                q.execute("migrate_cancel")
            _wait_migration_idle(q, self.launch_timeout)
            if str(q.execute("query-status").get("status")) != "running":
                q.execute("cont")
        unlink_quietly(self._partial(instance_id))
        self._set_intent(instance_id, "running")

    def hibernated(self, instance_id: str) -> bool:
        if not self._known(instance_id):
            return False
        with self._locked(instance_id):
            self._settle(instance_id)
            return self.memory_image(instance_id).exists() and self._find(instance_id) is None

    def restore(self, spec: VmSpec) -> VmHandle:
        instance_id = spec.instance_id
        if not self._known(instance_id):
            raise ComputeError(f"{instance_id}: no memory image to restore")
        with self._locked(instance_id):
            self._settle(instance_id)
            handle = self._find(instance_id)
            if handle is not None:
                return handle  # restored already (or never hibernated: it runs)
            image = self.memory_image(instance_id)
            if not image.exists():
                raise ComputeError(f"{instance_id}: no memory image to restore")
            layout = self._load_runtime(instance_id)
            try:
                handle = self._launch(spec, layout, f"exec:cat {shlex.quote(str(image))}")
                self._resume_loaded(handle)
            except (ComputeError, QmpError) as exc:
                found = self._find(instance_id)
                if found is not None:
                    with contextlib.suppress(ComputeError):
                        self._stop_process(found)
                self._set_intent(instance_id, "hibernated")
                raise ComputeError(f"{instance_id}: the memory image could not be restored: {exc}") from exc
            unlink_quietly(image)
            self._set_intent(instance_id, "running")
            return handle

    def _resume_loaded(self, handle: VmHandle) -> None:
        """Wait until QEMU has loaded the image (its state leaves "inmigrate"), then continue
        the guest. ComputeError when the load failed or took longer than launch_timeout."""
        deadline = time.monotonic() + self.launch_timeout
        with self._qmp(handle) as q:
            while True:
                status = str(q.execute("query-status").get("status"))
                if status == "running":
                    return
                if status in ("paused", "postmigrate"):
                    q.execute("cont")
                    return
                if status != "inmigrate":
                    raise ComputeError(f"QEMU is {status} after loading the memory image")
                if time.monotonic() > deadline:
                    raise ComputeError(f"the memory image was not loaded within {self.launch_timeout:.0f} s")
                time.sleep(MIGRATE_POLL)

    def discard_image(self, instance_id: str) -> None:
        if not self._known(instance_id):
            return
        with self._locked(instance_id):
            unlink_quietly(self._partial(instance_id))
            unlink_quietly(self.memory_image(instance_id))
            if self._intent(instance_id) == "hibernated":
                self._set_intent(instance_id, "stopped")

    # ---- what a crash left -------------------------------------------------------------------

    def _settle(self, instance_id: str) -> None:
        """Finish or undo a save or a restore its caller did not see through (see the module
        docstring). Called with the VM's lock held."""
        intent = self._intent(instance_id)
        if intent not in ("hibernating", "restoring"):
            return
        handle = self._find(instance_id)
        image = self.memory_image(instance_id)
        if intent == "hibernating":
            if image.exists():
                self._set_intent(instance_id, "hibernated")
                if handle is not None:
                    self._stop_process(handle)
            elif handle is not None:
                self._abandon_save(handle)
            else:
                self._set_intent(instance_id, "stopped")
            unlink_quietly(self._partial(instance_id))
            return
        if handle is None:
            self._set_intent(instance_id, "hibernated" if image.exists() else "stopped")
            return
        try:
            self._resume_loaded(handle)
        except (ComputeError, QmpError):
            self._stop_process(handle)
            self._set_intent(instance_id, "hibernated")
            return
        unlink_quietly(image)
        self._set_intent(instance_id, "running")


def _wait_migration_idle(q: QmpClient, timeout: float) -> None:
    """Wait until no migration is active (after a migrate_cancel)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = str(q.execute("query-migrate").get("status", "none"))
        if status not in ("active", "setup", "cancelling", "device", "pre-switchover"):
            return
        time.sleep(MIGRATE_POLL)
