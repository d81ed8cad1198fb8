"""Block-layer queries and clean-ups over QMP that the driver's disk operations share."""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import re
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from nubes.drivers.compute.base import (
    ComputeError,
    DiskAttachment,
    VmHandle,
)
from nubes.drivers.compute.qemu.cmdline import (
    blockdev,
    disk_device,
    disk_device_id,
    disk_node,
    layer_node,
    qemu_id,
    root_port_id,
    secret_id,
    throttle_group,
    throttle_group_id,
)
from nubes.drivers.compute.qemu.qmp import (
    QmpClient,
    QmpCommandError,
    QmpError,
)
from nubes.drivers.compute.qemu.vmdir import (
    Runtime,
)

log = logging.getLogger(__name__)

# ---- QMP helpers -----------------------------------------------------------------------------


def peripherals(q: QmpClient) -> set[str]:
    """The ids of the devices added with an id (-device / device_add)."""
    return {
        str(item["name"])
        for item in q.execute("qom-list", {"path": "/machine/peripheral"})
        if str(item.get("type", "")).startswith("child<")
    }


def write_back(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        os.fdatasync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def node_names(q: QmpClient) -> set[str]:
    return {str(n.get("node-name")) for n in q.execute("query-named-block-nodes", {"flat": True})}


def node_file(node: dict[str, Any]) -> str | None:
    """The file a block node reads: its file name, or, for a node whose options a file name
    cannot carry (an encrypted one is `json:{..., "file": {"filename": ...}}`), the file in them."""
    name = str(node.get("file", ""))
    if not name.startswith("json:"):
        return name or None
    try:
        child = json.loads(name.removeprefix("json:")).get("file")
    except (ValueError, AttributeError):
        return None
    if isinstance(child, dict) and child.get("filename"):
        return str(child["filename"])
    return None


def format_nodes(q: QmpClient) -> dict[str, str]:
    """The qcow2 nodes of the VM by the real path of their file."""
    nodes: dict[str, str] = {}
    for n in q.execute("query-named-block-nodes", {"flat": True}):
        path = node_file(n) if n.get("drv") == "qcow2" else None
        if path is not None:
            nodes[os.path.realpath(path)] = str(n["node-name"])
    return nodes


def backing_of(q: QmpClient, node: str) -> str | None:
    """The real path of the file under a node now (None: nothing)."""
    for n in q.execute("query-named-block-nodes", {"flat": True}):
        if n.get("node-name") == node:
            backing = n.get("image", {}).get("full-backing-filename") or n.get("backing_file")
            path = node_file({"file": backing}) if backing else None
            return os.path.realpath(path) if path else None
    return None


def job_ids(q: QmpClient) -> set[str]:
    return {str(j.get("device")) for j in q.execute("query-block-jobs")} | {
        str(j.get("id")) for j in q.execute("query-jobs")
    }


def device_port(q: QmpClient, device_id: str, default: int) -> int:
    """The root port a device sits in (`default`: unknown, or not in a root port)."""
    try:
        bus = str(
            q.execute("qom-get", {"path": f"/machine/peripheral/{device_id}", "property": "parent_bus"})
        )
    except QmpError:
        return default
    match = re.search(r"/rp(\d+)/", bus + "/")
    return int(match.group(1)) if match else default


def port_of(q: QmpClient, disk_id: str, default: int) -> int:
    return device_port(q, disk_device_id(disk_id), default)


def free_port(runtime: Runtime, instance_id: str) -> int:
    """The lowest root port no disk and no NIC sits in; ComputeError when all are taken."""
    used = set(runtime.ports.values()) | set(runtime.nics.values())
    free = [i for i in range(runtime.port_count) if i not in used]
    if not free:
        raise ComputeError(f"{instance_id}: no free hot-plug port (of {runtime.port_count})")
    return free[0]


def unplug(q: QmpClient, instance_id: str, dev: str, what: str, timeout: float) -> None:
    """device_del, then wait until the guest has released the device (DEVICE_DELETED, or the
    device is gone); ComputeError when it did not within `timeout` (asking again is safe)."""
    if dev not in peripherals(q):
        return
    try:
        q.execute("device_del", {"id": dev})
    except QmpCommandError as exc:
        if exc.error_class != "DeviceNotFound" and "in the process of unplug" not in exc.desc:
            raise ComputeError(f"{instance_id}: device_del {dev}: {exc}") from exc
    deadline = time.monotonic() + timeout
    while True:
        try:
            q.wait_event(
                "DEVICE_DELETED",
                min(1.0, max(0.01, deadline - time.monotonic())),
                lambda e: e.get("data", {}).get("device") == dev,
            )
            return
        except QmpError:
            if dev not in peripherals(q):
                return
            if time.monotonic() >= deadline:
                raise ComputeError(
                    f"{instance_id}: the guest did not release {what} within {timeout}s"
                ) from None


def remove_block_nodes(q: QmpClient, disk_id: str) -> None:
    """Delete a disk's block tree and throttle group, whatever of them exists."""
    for node in (disk_node(disk_id), qemu_id("q", disk_id)):
        with contextlib.suppress(QmpCommandError):
            q.execute("blockdev-del", {"node-name": node})
    for obj in (throttle_group_id(disk_id), secret_id(disk_id)):
        with contextlib.suppress(QmpCommandError):
            q.execute("object-del", {"id": obj})


def secret_object(disk: DiskAttachment) -> dict[str, Any]:
    """The secret object of an encrypted disk, for QMP object-add: the key travels over the QMP
    socket (the VM directory's, 0700), never on a command line."""
    return {
        "qom-type": "secret",
        "id": secret_id(disk.disk_id),
        "data": base64.b64encode(disk.key.encode()).decode(),
        "format": "base64",
    }


def overlay_node(disk_id: str, overlay: Path) -> dict[str, Any]:
    """An encrypted disk's new top for a live snapshot, opened with the disk's key and with no
    backing (blockdev-snapshot puts it on the current top)."""
    return {
        "driver": "qcow2",
        "node-name": layer_node(overlay),
        "discard": "unmap",
        "file": {"driver": "file", "filename": str(overlay), "aio": "threads"},
        "encrypt": {"format": "luks", "key-secret": secret_id(disk_id)},
        "backing": None,
    }


class VmAccess(ABC):
    """What the driver provides to its operations on running VMs: its per-VM locks, handles, QMP
    and runtime file."""

    unplug_timeout: float

    @abstractmethod
    def _locked(self, instance_id: str) -> AbstractContextManager[Path]: ...

    @abstractmethod
    def _locked_running(self, instance_id: str) -> AbstractContextManager[VmHandle]: ...

    @abstractmethod
    def _qmp(self, handle: VmHandle, timeout: float | None = None) -> QmpClient: ...

    @abstractmethod
    def _load_runtime(self, instance_id: str) -> Runtime: ...

    @abstractmethod
    def _save_runtime(self, instance_id: str, runtime: Runtime) -> None: ...

    @abstractmethod
    def _find(self, instance_id: str) -> VmHandle | None: ...

    @abstractmethod
    def _known(self, instance_id: str) -> bool: ...

    @contextlib.contextmanager
    def _unplugging(self, instance_id: str) -> Iterator[tuple[VmHandle, Runtime] | None]:
        """The VM's handle and runtime record under its lock, to take a device out of it; None
        when no VM runs (then nothing is plugged in: unplugging succeeds)."""
        if not self._known(instance_id):
            yield None
            return
        with self._locked(instance_id):
            handle = self._find(instance_id)
            yield (handle, self._load_runtime(instance_id)) if handle is not None else None


class BlockOperations(VmAccess):
    """The driver's disk operations on running VMs (hot-plug, live snapshots, resize, layer
    streaming)."""

    def attach_disk(self, instance_id: str, disk: DiskAttachment) -> None:
        with self._locked_running(instance_id) as handle:
            runtime = self._load_runtime(instance_id)
            if disk.disk_id == runtime.system or disk.disk_id in runtime.ports:
                return
            port = free_port(runtime, instance_id)
            group = throttle_group(disk)
            with self._qmp(handle) as q:
                existing = peripherals(q)
                if disk_device_id(disk.disk_id) in existing:  # attached, but not recorded (agent died)
                    runtime.ports[disk.disk_id] = port_of(q, disk.disk_id, port)
                    self._save_runtime(instance_id, runtime)
                    return
                remove_block_nodes(q, disk.disk_id)  # leftovers of an attempt that failed half-way
                try:
                    if disk.key:
                        q.execute("object-add", secret_object(disk))
                    if group is not None:
                        q.execute("object-add", group)
                    q.execute("blockdev-add", blockdev(disk))
                    q.execute("device_add", disk_device(disk, root_port_id(port)))
                except QmpError as exc:
                    remove_block_nodes(q, disk.disk_id)
                    raise ComputeError(f"{instance_id}: hot-plug of {disk.disk_id} failed: {exc}") from exc
            runtime.ports[disk.disk_id] = port
            self._save_runtime(instance_id, runtime)

    def detach_disk(self, instance_id: str, disk_id: str) -> None:
        """device_del, then wait for the guest to release the device (DEVICE_DELETED), then delete
        the block nodes. Not running: nothing is attached, so it succeeds."""
        with self._unplugging(instance_id) as found:
            if found is None:
                return
            handle, runtime = found
            if disk_id == runtime.system:
                raise ComputeError(f"{instance_id}: {disk_id} is the system disk")
            with self._qmp(handle) as q:
                unplug(q, instance_id, disk_device_id(disk_id), disk_id, self.unplug_timeout)
                remove_block_nodes(q, disk_id)
            runtime.ports.pop(disk_id, None)
            self._save_runtime(instance_id, runtime)

    def snapshot_disk(
        self, instance_id: str, disk_id: str, current: Path, overlay: Path, encrypted: bool = False
    ) -> None:
        # QEMU drains the disk and flushes the old top inside blockdev-snapshot-sync: write the host's
        # dirty pages of that file back first, while the guest's I/O still flows (measured: a
        # snapshot right after a 512 MiB burst paused the disk ~300 ms instead of ~40 ms)
        write_back(current)
        with self._locked_running(instance_id) as handle, self._qmp(handle) as q:
            nodes = node_names(q)
            if layer_node(overlay) in nodes:
                return  # done before (the agent died before it recorded it)
            # the current top: a layer node, or the device's root when the disk has no
            # throttle filter and was never snapshotted in this process
            target = next((n for n in (layer_node(current), disk_node(disk_id)) if n in nodes), None)
            if target is None:
                raise ComputeError(f"{instance_id}: {disk_id} is not attached (no node for {current.name})")
            try:
                if encrypted:
                    # blockdev-snapshot-sync would open the overlay with no key: add it keyed
                    q.execute("blockdev-add", overlay_node(disk_id, overlay))
                    try:
                        q.execute("blockdev-snapshot", {"node": target, "overlay": layer_node(overlay)})
                    except QmpError:
                        with contextlib.suppress(QmpCommandError):
                            q.execute("blockdev-del", {"node-name": layer_node(overlay)})
                        raise
                else:
                    q.execute(
                        "blockdev-snapshot-sync",
                        {
                            "node-name": target,
                            "snapshot-file": str(overlay),
                            "snapshot-node-name": layer_node(overlay),
                            "format": "qcow2",
                            "mode": "existing",
                        },
                    )
            except QmpError as exc:
                raise ComputeError(f"{instance_id}: snapshot of {disk_id} failed: {exc}") from exc

    def resize_disk(self, instance_id: str, disk_id: str, current: Path, size_bytes: int) -> None:
        with self._locked_running(instance_id) as handle, self._qmp(handle) as q:
            # the device's root node (a throttle filter, or the top layer) tells the device
            target = next(
                (
                    str(b["inserted"]["node-name"])
                    for b in q.execute("query-block")
                    if f"/{disk_device_id(disk_id)}/" in str(b.get("qdev", "")) and b.get("inserted")
                ),
                None,
            )
            if target is None:
                raise ComputeError(f"{instance_id}: {disk_id} is not attached")
            try:
                q.execute("block_resize", {"node-name": target, "size": size_bytes})
            except QmpError as exc:
                raise ComputeError(f"{instance_id}: resize of {disk_id} failed: {exc}") from exc

    def stream_layer(
        self, instance_id: str, layer: Path, base: Path | None, backing_name: str | None, timeout: float
    ) -> None:
        with self._locked_running(instance_id) as handle:
            job = qemu_id("stream", layer.stem)
            with self._qmp(handle) as q:
                nodes = format_nodes(q)
                top = nodes.get(os.path.realpath(layer))
                if top is None:
                    raise ComputeError(f"{instance_id}: no block node for {layer.name}")
                if backing_of(q, top) == (os.path.realpath(base) if base else None):
                    return  # streamed before (the agent died before it recorded it)
                if job not in job_ids(q):
                    args: dict[str, Any] = {"job-id": job, "device": top}
                    if base is not None:
                        base_node = nodes.get(os.path.realpath(base))
                        if base_node is None:
                            raise ComputeError(f"{instance_id}: no block node for {base.name}")
                        args["base-node"] = base_node
                    if backing_name is not None:
                        args["backing-file"] = backing_name
                    try:
                        q.execute("block-stream", args)
                    except QmpError as exc:
                        raise ComputeError(
                            f"{instance_id}: block-stream into {layer.name} failed: {exc}"
                        ) from exc
                deadline = time.monotonic() + timeout
                while job in job_ids(q):
                    if time.monotonic() > deadline:
                        raise ComputeError(
                            f"{instance_id}: streaming into {layer.name} did not end in {timeout}s"
                        )
                    time.sleep(0.05)
                if backing_of(q, top) != (os.path.realpath(base) if base else None):
                    raise ComputeError(f"{instance_id}: streaming into {layer.name} failed")
