"""The qemu compute driver: one QEMU process per instance, found again after an agent restart.

Decisions (measured on the 2-core TCG-only dev/CI host, tiny busybox image, see the issue
report for the numbers):

* Machine `q35`, not `microvm`: disk hot-plug needs PCIe root ports, and q35 boots the tiny
  image only ~0.1 s (about 5 %) slower than microvm under TCG. Every data disk sits in a
  `pcie-root-port` of its own, so cold-plugged data disks can be hot-unplugged too, and
  `hotplug_ports` more ports stay free for hot-plug (`io-reserve=0`: PCIe devices need no I/O
  ports, and I/O space would run out after ~10 ports).
* TCG translation cache `tb-size=64` MiB (QEMU's default is 1 GiB of address space, of which
  a booted tiny guest touches ~46 MiB; 32 MiB boots as fast but flushes more once a full OS
  runs). KVM, when the trial boot proves it works (see accel.py), uses `-cpu host`.
* `-daemonize`: QEMU forks, calls setsid(), and its parent exits only once the VM is set up
  (sockets bound, disks opened, pidfile written) -- so start() gets QEMU's startup errors
  synchronously from the parent's exit status and stderr, and the VM is reparented to init:
  it survives the agent. Its stdio goes to /dev/null afterwards (no pipe to stall on).
* `-action shutdown=pause` (not `-no-reboot`: a guest reboot resets the VM in place): when the
  guest powers off, QEMU stays, with run state "shutdown", until the driver reaps it. That
  tells a guest power-off (STOPPED) from a crash (the process vanished while the driver's
  recorded intent is "running": CRASHED), and it lets a graceful reboot happen inside the
  same process: ACPI power button, wait for "shutdown", `system_reset`, `cont`.
* The serial console goes to `serial.log` in append mode: it survives reboots and restarts
  of the instance (the agent looks for the ready marker after the length it saw before).
* Disks are `-blockdev` trees (file -> qcow2 [-> throttle]) in JSON syntax (no escaping of
  paths) and `virtio-blk-pci` devices whose serial is the disk id without its "d-" prefix,
  cut to the 20 bytes virtio allows -- what ECS guests see in /dev/disk/by-id/virtio-<serial>.
* NICs: `-netdev tap,ifname=<tap>` opened inside the VPC namespace: the whole QEMU process
  runs under `ip netns exec <netns>`.
* Display: `-display none` (no window) and, on q35, a standard `VGA` device for QMP
  `screendump` (GetInstanceScreenshot): it shows SeaBIOS and the kernel's VGA console (720x400
  text mode). Measured under TCG, tiny image, 6 boots each to the root mount: median 2.15 s
  with it against 2.02 s without (within the noise of a shared host); its 16 MiB of video RAM
  are only touched where drawn. See monitorops.py for the screenshot and the monitoring counters.

Files per instance (`state_dir/<instance_id>/`): handle.json (what recover() reads; written
atomically after the launch), intent ("running" or "stopped": what the driver was last asked
for), qemu.pid (written and locked by QEMU), qmp.sock, serial.log, qemu.err (startup
errors), cmdline (the argv, for people), disks.json (which disk sits in which root port),
memory.img (a hibernated VM's memory image; memory.img.partial while it is written: see
hibernation.py).
"""

from nubes.drivers.compute.qemu.cmdline import UNIX_PATH_MAX, disk_serial, render_command
from nubes.drivers.compute.qemu.driver import QemuDriver
from nubes.drivers.compute.qemu.vmdir import process_cmdline, process_start_time

__all__ = [
    "UNIX_PATH_MAX",
    "QemuDriver",
    "disk_serial",
    "process_cmdline",
    "process_start_time",
    "render_command",
]
