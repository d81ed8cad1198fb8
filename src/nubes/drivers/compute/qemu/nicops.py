"""NIC hot-plug over QMP: a tap backend (netdev_add) and a virtio-net-pci device in a free root
port (device_add), and the reverse. The VM's runtime file records the NICs it has, so that an
agent restarted meanwhile still knows them (`nics`)."""

from __future__ import annotations

import contextlib

from nubes.drivers.compute.base import ComputeError, NicAttachment
from nubes.drivers.compute.qemu.blockops import VmAccess, device_port, free_port, peripherals, unplug
from nubes.drivers.compute.qemu.cmdline import netdev_id, nic_device, nic_device_id, nic_netdev, root_port_id
from nubes.drivers.compute.qemu.qmp import QmpClient, QmpCommandError, QmpError


class NicOperations(VmAccess):
    """The driver's NIC operations on running VMs."""

    def attach_nic(self, instance_id: str, nic: NicAttachment) -> None:
        with self._locked_running(instance_id) as handle:
            runtime = self._load_runtime(instance_id)
            if nic.port_id in runtime.nics:
                return
            port = free_port(runtime, instance_id)
            with self._qmp(handle) as q:
                if nic_device_id(nic.port_id) in peripherals(q):  # plugged, but not recorded (agent died)
                    runtime.nics[nic.port_id] = device_port(q, nic_device_id(nic.port_id), -1)
                    self._save_runtime(instance_id, runtime)
                    return
                _remove_netdev(q, nic.port_id)  # the leftover of an attempt that failed half-way
                try:
                    q.execute("netdev_add", nic_netdev(nic))
                    q.execute("device_add", nic_device(nic, root_port_id(port)))
                except QmpError as exc:
                    _remove_netdev(q, nic.port_id)
                    raise ComputeError(f"{instance_id}: hot-plug of NIC {nic.port_id} failed: {exc}") from exc
            runtime.nics[nic.port_id] = port
            self._save_runtime(instance_id, runtime)

    def detach_nic(self, instance_id: str, port_id: str) -> None:
        """device_del, wait for the guest to release the NIC (DEVICE_DELETED), then netdev_del
        (which closes the tap). Not running: nothing is plugged in, so it succeeds."""
        with self._unplugging(instance_id) as found:
            if found is None:
                return
            handle, runtime = found
            with self._qmp(handle) as q:
                unplug(q, instance_id, nic_device_id(port_id), f"NIC {port_id}", self.unplug_timeout)
                _remove_netdev(q, port_id)
            runtime.nics.pop(port_id, None)
            self._save_runtime(instance_id, runtime)

    def nics(self, instance_id: str) -> list[str]:
        """The recorded NICs whose device QEMU still has (all recorded ones when QMP does not
        answer: the record is what was last done)."""
        if not self._known(instance_id):
            return []
        with self._locked(instance_id):
            handle = self._find(instance_id)
            if handle is None:
                return []
            recorded = list(self._load_runtime(instance_id).nics)
            try:
                with self._qmp(handle) as q:
                    present = peripherals(q)
            except QmpError:
                return recorded
            return [port_id for port_id in recorded if nic_device_id(port_id) in present]


def _remove_netdev(q: QmpClient, port_id: str) -> None:
    with contextlib.suppress(QmpCommandError):
        q.execute("netdev_del", {"id": netdev_id(port_id)})
