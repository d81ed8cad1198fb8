"""The fake compute driver: power states as on a real host, in memory."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from nubes.drivers.compute.base import Boot, ComputeError, DiskAttachment, PowerState, VmNotRunning, VmSpec
from nubes.drivers.compute.fake import FakeComputeDriver, FakeHost, FakeTimings

SYSTEM = DiskAttachment("d-system", Path("/d/system.qcow2"))


def spec(instance_id: str = "i-1", *data: str) -> VmSpec:
    return VmSpec(
        instance_id,
        1,
        512,
        Boot(Path("/k"), Path("/i"), "quiet"),
        (SYSTEM, *(DiskAttachment(d, Path(f"/d/{d}.qcow2")) for d in data)),
    )


class Sleeper:
    def __init__(self) -> None:
        self.slept: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.slept.append(seconds)


def test_capabilities_say_fake() -> None:
    caps = FakeComputeDriver().capabilities
    assert caps.name == "fake" and caps.accel == "none" and caps.disk_hotplug
    assert not (caps.changes_by_itself or caps.opens_taps or caps.reports_ready)


def test_start_shutdown_and_idempotent_start() -> None:
    d = FakeComputeDriver()
    assert d.state("i-1") == PowerState.STOPPED
    h = d.start(spec())
    assert d.state("i-1") == PowerState.RUNNING
    assert d.start(spec()) == h  # running: same handle, not a second VM
    assert d.shutdown("i-1", 10) is True
    assert d.state("i-1") == PowerState.STOPPED
    assert d.shutdown("i-1", 10) is True  # already off
    h2 = d.start(spec())
    assert h2.pid != h.pid


def test_destroy_is_idempotent() -> None:
    d = FakeComputeDriver()
    d.destroy("i-none")
    d.start(spec())
    d.destroy("i-1")
    d.destroy("i-1")
    assert d.state("i-1") == PowerState.STOPPED


def test_crash_and_guest_power_off() -> None:
    host = FakeHost()
    d = FakeComputeDriver(host)
    d.start(spec("i-1"))
    d.start(spec("i-2"))
    host.crash("i-1")
    host.guest_power_off("i-2")
    assert d.state("i-1") == PowerState.CRASHED
    assert d.state("i-2") == PowerState.STOPPED
    d.destroy("i-1")
    assert d.state("i-1") == PowerState.STOPPED
    d.start(spec("i-1"))
    assert d.state("i-1") == PowerState.RUNNING


def test_pause_resume() -> None:
    host = FakeHost()
    d = FakeComputeDriver(host)
    d.start(spec())
    host.pause("i-1")
    assert d.state("i-1") == PowerState.PAUSED
    host.resume("i-1")
    assert d.state("i-1") == PowerState.RUNNING


def test_recover_from_a_new_driver_on_the_same_host() -> None:
    host = FakeHost()
    d1 = FakeComputeDriver(host)
    h = d1.start(spec("i-1"))
    d1.start(spec("i-2"))
    d1.shutdown("i-2", 5)
    d2 = FakeComputeDriver(host)  # the agent restarted
    assert d2.recover() == [h]
    assert d2.start(spec("i-1")) == h


def test_reboot() -> None:
    host = FakeHost()
    d = FakeComputeDriver(host)
    with pytest.raises(VmNotRunning):
        d.reboot("i-1", force=False)
    d.start(spec())
    d.reboot("i-1", force=False)
    d.reboot("i-1", force=True)
    assert host.vms["i-1"].boots == 3
    assert d.state("i-1") == PowerState.RUNNING
    host.set_acpi("i-1", False)
    with pytest.raises(ComputeError):
        d.reboot("i-1", force=False)
    d.reboot("i-1", force=True)


def test_shutdown_of_a_guest_that_ignores_acpi_or_is_slow() -> None:
    sleeper = Sleeper()
    host = FakeHost()
    d = FakeComputeDriver(host, FakeTimings(shutdown=3.0), sleep=sleeper)
    d.start(spec())
    assert d.shutdown("i-1", timeout=1.0) is False  # slower than the timeout
    assert d.state("i-1") == PowerState.RUNNING
    assert d.shutdown("i-1", timeout=5.0) is True
    d.start(spec())
    host.set_acpi("i-1", False)
    assert d.shutdown("i-1", timeout=2.0) is False
    assert sleeper.slept == [1.0, 3.0, 2.0]


def test_timings_go_through_the_sleeper() -> None:
    sleeper = Sleeper()
    d = FakeComputeDriver(
        timings=FakeTimings(start=2.0, reboot=1.5, attach=0.1, detach=0.2, destroy=0.3),
        sleep=sleeper,
        clock=lambda: 1234.0,
    )
    h = d.start(spec())
    assert h.started_at == 1234.0
    d.start(spec())  # running: no time spent
    d.reboot("i-1", force=True)
    d.attach_disk("i-1", DiskAttachment("d-x", Path("/x")))
    d.detach_disk("i-1", "d-x")
    d.destroy("i-1")
    d.destroy("i-1")  # not running: no time spent
    assert sleeper.slept == [2.0, 1.5, 0.1, 0.2, 0.3]


def test_console_says_fake() -> None:
    d = FakeComputeDriver()
    assert d.console_output("i-1") == b""
    d.start(spec())
    out = d.console_output("i-1")
    assert b"fake" in out and b"no virtual machine" in out
    assert b"NUBES-READY" not in out  # a fake guest never claims to be a real one
    assert d.console_output("i-1", max_bytes=10) == out[-10:]


def test_disk_hotplug_rules() -> None:
    d = FakeComputeDriver()
    with pytest.raises(VmNotRunning):
        d.attach_disk("i-1", DiskAttachment("d-x", Path("/x")))
    d.detach_disk("i-1", "d-x")  # nothing runs: nothing attached
    d.start(spec("i-1", "d-cold"))
    assert d.attached_disks("i-1") == ["d-cold"]
    d.attach_disk("i-1", DiskAttachment("d-x", Path("/x")))
    d.attach_disk("i-1", DiskAttachment("d-x", Path("/x")))  # idempotent
    assert d.attached_disks("i-1") == ["d-cold", "d-x"]
    with pytest.raises(ComputeError):
        d.detach_disk("i-1", "d-system")
    d.detach_disk("i-1", "d-cold")
    d.detach_disk("i-1", "d-cold")
    assert d.attached_disks("i-1") == ["d-x"]
    for n in range(8):
        d.attach_disk("i-1", DiskAttachment(f"d-{n}", Path(f"/{n}")))
    with pytest.raises(ComputeError):  # 1 cold-plugged + 8 free ports, all taken
        d.attach_disk("i-1", DiskAttachment("d-too-many", Path("/t")))


def test_injected_failure_fires_once() -> None:
    host = FakeHost()
    d = FakeComputeDriver(host)
    host.inject_failure("start", ComputeError("no memory"), "i-1")
    with pytest.raises(ComputeError):
        d.start(spec("i-1"))
    d.start(spec("i-2"))
    d.start(spec("i-1"))
    assert d.state("i-1") == PowerState.RUNNING
    assert ("start", "i-1") in host.calls


def test_cleanup_forgets_the_vm() -> None:
    d = FakeComputeDriver()
    d.start(spec())
    d.cleanup("i-1")
    assert d.state("i-1") == PowerState.STOPPED
    assert d.console_output("i-1") == b""
    assert d.recover() == []


def test_thousands_of_instances_concurrently() -> None:
    d = FakeComputeDriver()

    def worker(offset: int) -> None:
        for n in range(offset, offset + 500):
            d.start(spec(f"i-{n}"))

    threads = [threading.Thread(target=worker, args=(i * 500,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    handles = d.recover()
    assert len(handles) == 2000
    assert len({h.pid for h in handles}) == 2000


# ---- kept in a state directory (the emulator survives restarts) ---------------------------------


def test_vms_in_a_state_dir_are_found_again_by_a_new_process(tmp_path: Path) -> None:
    """A new driver on the same state dir (a restarted server, even after kill -9: every change
    is written when it is made) finds the VMs as QEMU leaves them running: same handle, disks,
    console; stopped ones stay stopped."""
    state = tmp_path / "vms"
    d = FakeComputeDriver(state_dir=state)
    handle = d.start(spec("i-1"))
    d.attach_disk("i-1", DiskAttachment("d-data", Path("/d/d-data.qcow2"), iops=3000))
    d.start(spec("i-2"))
    d.shutdown("i-2", 10)
    d.start(spec("i-3"))
    d.host.crash("i-3")

    again = FakeComputeDriver(state_dir=state)
    assert again.state("i-1") == PowerState.RUNNING
    assert again.start(spec("i-1")) == handle  # the running VM, not a second one
    assert again.attached_disks("i-1") == ["d-data"]
    assert again.host.vms["i-1"].disks["d-data"].iops == 3000
    assert b"plugged in" in again.console_output("i-1")
    assert again.state("i-2") == PowerState.STOPPED
    assert again.state("i-3") == PowerState.CRASHED
    assert [h.instance_id for h in again.recover()] == ["i-1"]
    assert again.start(spec("i-2")).pid > handle.pid  # pids are not reused

    again.destroy("i-1")
    again.cleanup("i-1")
    assert FakeComputeDriver(state_dir=state).state("i-1") == PowerState.STOPPED
    assert not (state / "i-1.json").exists()


def test_after_a_host_reboot_the_vms_that_ran_are_crashed(tmp_path: Path) -> None:
    state = tmp_path / "vms"
    d = FakeComputeDriver(FakeHost(state, boot_id="boot-1"))
    d.start(spec("i-1", "d-data"))
    d.start(spec("i-2"))
    d.shutdown("i-2", 10)
    rebooted = FakeComputeDriver(FakeHost(state, boot_id="boot-2"))
    assert rebooted.state("i-1") == PowerState.CRASHED  # as qemu reports a VM meant to run with no process
    assert rebooted.state("i-2") == PowerState.STOPPED
    assert rebooted.recover() == []
    same_boot = FakeComputeDriver(FakeHost(state, boot_id="boot-1"))
    assert same_boot.state("i-1") == PowerState.RUNNING


def test_a_write_cut_short_leaves_the_last_whole_state(tmp_path: Path) -> None:
    state = tmp_path / "vms"
    FakeComputeDriver(state_dir=state).start(spec("i-1"))
    (state / ".i-1.json.999.tmp").write_text('{"spec": ')  # a crash in the middle of a write
    (state / "i-2.json").write_text("{not json")
    d = FakeComputeDriver(state_dir=state)
    assert d.state("i-1") == PowerState.RUNNING and d.state("i-2") == PowerState.STOPPED
    assert not (state / ".i-1.json.999.tmp").exists()
