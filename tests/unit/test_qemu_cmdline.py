"""The qemu driver's pure parts: the QEMU command line, disk/device names, the accel choice."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from nubes.drivers.compute.base import Boot, DiskAttachment, NicAttachment, VmSpec
from nubes.drivers.compute.qemu import accel
from nubes.drivers.compute.qemu.cmdline import (
    RenderOptions,
    blockdev,
    disk_serial,
    initial_nic_ports,
    nic_device,
    nic_netdev,
    qemu_id,
    render_command,
)
from nubes.drivers.compute.qemu.vmdir import VmPaths

PATHS = VmPaths(
    Path("/var/lib/nubes/vms/i-1"),
    Path("/var/lib/nubes/vms/i-1/qmp.sock"),
    Path("/var/lib/nubes/vms/i-1/serial.log"),
    Path("/var/lib/nubes/vms/i-1/qemu.pid"),
    Path("/var/lib/nubes/vms/i-1/vnc.sock"),
)
BOOT = Boot(Path("/img/tiny/vmlinux"), Path("/img/tiny/initrd.img"), "root=/dev/vda rw quiet")
SYSTEM = DiskAttachment("d-bp1system000000000001", Path("/disks/d-bp1system000000000001.qcow2"))


def spec(**kw: object) -> VmSpec:
    base: dict[str, object] = {
        "instance_id": "i-bp1abcdefghij0123456",
        "vcpus": 2,
        "memory_mib": 1024,
        "boot": BOOT,
        "disks": (SYSTEM,),
    }
    base.update(kw)
    return VmSpec(**base)  # type: ignore[arg-type]


def values(argv: list[str], flag: str) -> list[str]:
    return [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == flag]


def json_values(argv: list[str], flag: str) -> list[dict[str, object]]:
    return [json.loads(v) for v in values(argv, flag) if v.startswith("{")]


def test_base_command_tcg() -> None:
    argv = render_command(spec(), PATHS, "tcg")
    assert argv[0] == "qemu-system-x86_64"
    assert values(argv, "-machine") == ["q35,vmport=off"]
    assert values(argv, "-accel") == ["tcg,tb-size=64"]
    assert "-cpu" not in argv
    assert values(argv, "-smp") == ["2"]
    assert values(argv, "-m") == ["1024M"]
    assert values(argv, "-kernel") == ["/img/tiny/vmlinux"]
    assert values(argv, "-initrd") == ["/img/tiny/initrd.img"]
    assert values(argv, "-append") == ["root=/dev/vda rw quiet console=ttyS0 no_timer_check"]
    for flag in ("-nodefaults", "-no-user-config", "-daemonize"):
        assert flag in argv
    assert values(argv, "-display") == ["none"]
    assert "-no-reboot" not in argv and "-no-shutdown" not in argv
    assert values(argv, "-action") == ["shutdown=pause"]
    # VNC only with the password QMP's set_password gives it (nubes.domain.vnc)
    assert values(argv, "-vnc") == ["unix:/var/lib/nubes/vms/i-1/vnc.sock,password=on"]
    assert values(argv, "-pidfile") == [str(PATHS.pidfile)]
    assert "file,id=serial0,path=/var/lib/nubes/vms/i-1/serial.log,append=on" in values(argv, "-chardev")
    assert values(argv, "-serial") == ["chardev:serial0"]
    assert "socket,id=qmp,path=/var/lib/nubes/vms/i-1/qmp.sock,server=on,wait=off" in values(argv, "-chardev")
    assert values(argv, "-mon") == ["chardev=qmp,mode=control"]
    assert values(argv, "-name") == ["guest=i-bp1abcdefghij0123456,debug-threads=on"]
    assert "serial=i-bp1abcdefghij0123456" in values(argv, "-smbios")[0]


def test_render_is_pure() -> None:
    s = spec(disks=(SYSTEM, DiskAttachment("d-x", Path("/d/x.qcow2"), iops=5)))
    assert render_command(s, PATHS, "tcg") == render_command(s, PATHS, "tcg")


def test_kvm_uses_host_cpu_and_no_tb_size() -> None:
    argv = render_command(spec(), PATHS, "kvm")
    assert values(argv, "-accel") == ["kvm"]
    assert values(argv, "-cpu") == ["host"]
    assert not any("tb-size" in a for a in argv)


def test_tb_size_option_and_default() -> None:
    assert values(render_command(spec(), PATHS, "tcg", RenderOptions(tb_size_mib=128)), "-accel") == [
        "tcg,tb-size=128"
    ]
    assert values(render_command(spec(), PATHS, "tcg", RenderOptions(tb_size_mib=0)), "-accel") == ["tcg"]


def test_bad_accel_and_specs_are_refused() -> None:
    with pytest.raises(ValueError):
        render_command(spec(), PATHS, "auto")
    with pytest.raises(ValueError):
        render_command(spec(disks=()), PATHS, "tcg")
    with pytest.raises(ValueError):
        render_command(spec(vcpus=0), PATHS, "tcg")
    with pytest.raises(ValueError):
        render_command(spec(), PATHS, "tcg", RenderOptions(machine="pc"))


def test_console_kept_when_given() -> None:
    s = spec(boot=Boot(BOOT.kernel, BOOT.initrd, "console=ttyS0,115200 root=/dev/vda"))
    assert values(render_command(s, PATHS, "tcg"), "-append") == [
        "console=ttyS0,115200 root=/dev/vda no_timer_check"
    ]


def test_no_timer_check_once() -> None:
    s = spec(boot=Boot(BOOT.kernel, BOOT.initrd, "root=/dev/vda no_timer_check console=ttyS0"))
    assert values(render_command(s, PATHS, "tcg"), "-append") == [
        "root=/dev/vda no_timer_check console=ttyS0"
    ]


def test_system_disk_without_throttling() -> None:
    argv = render_command(spec(), PATHS, "tcg")
    assert not values(argv, "-object")
    [node] = json_values(argv, "-blockdev")
    assert node["driver"] == "qcow2"
    assert node["node-name"] == "disk-d-bp1system000000000001"
    assert node["read-only"] is False
    assert node["file"] == {
        "driver": "file",
        "node-name": "f-d-bp1system000000000001",
        "filename": "/disks/d-bp1system000000000001.qcow2",
        "read-only": False,
        "aio": "threads",
    }
    devices = [d for d in json_values(argv, "-device") if d["driver"] == "virtio-blk-pci"]
    assert devices == [
        {
            "driver": "virtio-blk-pci",
            "id": "vd-d-bp1system000000000001",
            "drive": "disk-d-bp1system000000000001",
            "serial": "bp1system00000000000",
        }
    ]


def test_data_disk_with_throttling_in_its_own_root_port() -> None:
    data = DiskAttachment(
        "d-bp1data00000000000001",
        Path("/disks/data, with comma.qcow2"),
        read_only=True,
        iops=500,
        bps=10_000_000,
    )
    argv = render_command(spec(disks=(SYSTEM, data)), PATHS, "tcg")
    [group] = json_values(argv, "-object")
    assert group == {
        "qom-type": "throttle-group",
        "id": "tg-d-bp1data00000000000001",
        "limits": {"iops-total": 500, "bps-total": 10_000_000},
    }
    nodes = json_values(argv, "-blockdev")
    top = nodes[1]
    assert top["driver"] == "throttle" and top["throttle-group"] == "tg-d-bp1data00000000000001"
    assert top["node-name"] == "disk-d-bp1data00000000000001"
    inner = top["file"]
    assert isinstance(inner, dict) and inner["driver"] == "qcow2" and inner["read-only"] is True
    assert inner["file"]["filename"] == "/disks/data, with comma.qcow2"  # JSON: no escaping needed
    devices = [d for d in json_values(argv, "-device") if d["driver"] == "virtio-blk-pci"]
    assert devices[1] == {
        "driver": "virtio-blk-pci",
        "id": "vd-d-bp1data00000000000001",
        "drive": "disk-d-bp1data00000000000001",
        "serial": "bp1data0000000000000",
        "bus": "rp0",
    }
    # the object comes before the blockdev that names it
    assert argv.index("-object") < [i for i, a in enumerate(argv) if a == "-blockdev"][1]


def test_only_iops_or_only_bps() -> None:
    only_iops = blockdev(DiskAttachment("d-a", Path("/a"), iops=100))
    assert only_iops["driver"] == "throttle"
    argv = render_command(spec(disks=(SYSTEM, DiskAttachment("d-b", Path("/b"), bps=1 << 20))), PATHS, "tcg")
    assert json_values(argv, "-object")[0]["limits"] == {"bps-total": 1 << 20}


def test_root_ports_one_per_data_disk_plus_free_ones() -> None:
    disks = (SYSTEM, DiskAttachment("d-1", Path("/1")), DiskAttachment("d-2", Path("/2")))
    argv = render_command(spec(disks=disks), PATHS, "tcg", RenderOptions(hotplug_ports=3))
    ports = [d for d in values(argv, "-device") if d.startswith("pcie-root-port")]
    assert ports == [f"pcie-root-port,id=rp{i},bus=pcie.0,chassis={i + 1},io-reserve=0" for i in range(5)]
    buses = [d.get("bus") for d in json_values(argv, "-device") if d["driver"] == "virtio-blk-pci"]
    assert buses == [None, "rp0", "rp1"]
    # the ports exist before the devices plugged into them
    assert argv.index(next(a for a in argv if a.startswith("pcie-root-port,id=rp1"))) < argv.index(
        next(a for a in argv if '"bus":"rp1"' in a)
    )


def test_nics_in_order_with_macs_and_taps() -> None:
    nics = (
        NicAttachment("eni-1", "00:16:3e:00:00:01", "ntpaaaa"),
        NicAttachment("eni-2", "00:16:3e:00:00:02", "ntpbbbb"),
    )
    argv = render_command(spec(nics=nics, netns="nubes-vpc-1"), PATHS, "tcg", RenderOptions(hotplug_ports=2))
    assert values(argv, "-netdev") == [
        "tap,id=net-eni-1,ifname=ntpaaaa,script=no,downscript=no",
        "tap,id=net-eni-2,ifname=ntpbbbb,script=no,downscript=no",
    ]
    net_devices = [d for d in values(argv, "-device") if d.startswith("virtio-net-pci")]
    # the primary on the root bus; the other in a root port of its own (hot-unpluggable), before
    # the free ones
    assert net_devices == [
        "virtio-net-pci,netdev=net-eni-1,mac=00:16:3e:00:00:01,id=nic-eni-1,romfile=",
        "virtio-net-pci,netdev=net-eni-2,mac=00:16:3e:00:00:02,id=nic-eni-2,romfile=,bus=rp0",
    ]
    ports = [d for d in values(argv, "-device") if d.startswith("pcie-root-port")]
    assert len(ports) == 3
    assert initial_nic_ports(spec(nics=nics)) == {"eni-1": -1, "eni-2": 0}


def test_hot_plugged_nic_matches_the_command_line() -> None:
    nic = NicAttachment("eni-2", "00:16:3e:00:00:02", "ntpbbbb")
    assert nic_netdev(nic) == {
        "type": "tap",
        "id": "net-eni-2",
        "ifname": "ntpbbbb",
        "script": "no",
        "downscript": "no",
    }
    assert nic_device(nic, "rp3") == {
        "driver": "virtio-net-pci",
        "netdev": "net-eni-2",
        "mac": "00:16:3e:00:00:02",
        "id": "nic-eni-2",
        "romfile": "",
        "bus": "rp3",
    }


def test_netns_wrapper() -> None:
    argv = render_command(spec(netns="nubes-vpc-1"), PATHS, "tcg")
    assert argv[:5] == ["ip", "netns", "exec", "nubes-vpc-1", "qemu-system-x86_64"]
    assert render_command(spec(), PATHS, "tcg")[0] == "qemu-system-x86_64"


def test_qemu_binary_and_extra_args() -> None:
    argv = render_command(
        spec(), PATHS, "tcg", RenderOptions(qemu_binary="/opt/q", extra_args=("-S",), daemonize=False)
    )
    assert argv[0] == "/opt/q" and argv[-1] == "-S" and "-daemonize" not in argv


def test_memory_and_cpus_from_spec() -> None:
    argv = render_command(spec(vcpus=8, memory_mib=16384), PATHS, "tcg")
    assert values(argv, "-smp") == ["8"] and values(argv, "-m") == ["16384M"]


def test_microvm_has_no_ports_and_gets_tsc_khz() -> None:
    disks = (SYSTEM, DiskAttachment("d-1", Path("/1")))
    argv = render_command(spec(disks=disks), PATHS, "tcg", RenderOptions(machine="microvm", host_khz=2600000))
    assert values(argv, "-machine")[0].startswith("microvm,")
    assert not any(a.startswith("pcie-root-port") for a in argv)
    assert values(argv, "-append") == [
        "root=/dev/vda rw quiet console=ttyS0 no_timer_check tsc_early_khz=2600000"
    ]
    assert all("bus" not in d for d in json_values(argv, "-device"))


def test_commas_in_option_paths_are_doubled() -> None:
    paths = VmPaths.under(Path("/x,y"))
    argv = render_command(spec(), paths, "tcg")
    assert "file,id=serial0,path=/x,,y/serial.log,append=on" in values(argv, "-chardev")
    assert values(argv, "-vnc") == ["unix:/x,,y/vnc.sock,password=on"]
    assert "socket,id=qmp,path=/x,,y/qmp.sock,server=on,wait=off" in values(argv, "-chardev")


def test_disk_serial_is_the_id_without_prefix_cut_to_20() -> None:
    assert disk_serial("d-bp1abcdefghij012345678") == "bp1abcdefghij0123456"
    assert disk_serial("d-short") == "short"
    assert disk_serial("vol-1") == "vol-1"


def test_qemu_ids_are_valid_and_short() -> None:
    assert qemu_id("vd", "d-abc") == "vd-d-abc"
    long_id = qemu_id("disk", "d-" + "x" * 40)
    assert len(long_id) <= 31 and long_id.startswith("disk-")
    odd = qemu_id("q", "d-a/b")
    assert odd.startswith("q-") and "/" not in odd
    assert qemu_id("q", "d-a/b") != qemu_id("q", "d-a_b")


# ---- accel ------------------------------------------------------------------------------------


def test_forced_accel_precedence() -> None:
    assert accel.forced_accel("kvm", {"NUBES_ACCEL": "tcg"}) == "kvm"  # the explicit argument wins
    assert accel.forced_accel("auto", {"NUBES_ACCEL": "tcg"}) == "tcg"
    assert accel.forced_accel("auto", {"NUBES_ACCEL": "KVM"}) == "kvm"
    assert accel.forced_accel("auto", {}) is None
    assert accel.forced_accel("", {"NUBES_ACCEL": "auto"}) is None
    with pytest.raises(ValueError):
        accel.forced_accel("xen", {})
    with pytest.raises(ValueError):
        accel.forced_accel("auto", {"NUBES_ACCEL": "hvf"})


def test_resolve_without_kvm_device_is_tcg(tmp_path: Path) -> None:
    assert (
        accel.resolve_accel("auto", tmp_path, "qemu-system-x86_64", kvm_device=str(tmp_path / "no-kvm"))
        == "tcg"
    )


def test_resolve_uses_cache_and_cache_is_keyed_by_host(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NUBES_ACCEL", raising=False)
    device = tmp_path / "kvm"
    device.write_text("")
    assert (
        accel.resolve_accel("auto", tmp_path, "/bin/true", kvm_device=str(device)) is None
    )  # nothing to try
    accel.write_cache(tmp_path, "/bin/true", None, "kvm", "test")
    assert accel.read_cache(tmp_path, "/bin/true") == "kvm"
    assert accel.resolve_accel("auto", tmp_path, "/bin/true", kvm_device=str(device)) == "kvm"
    assert accel.read_cache(tmp_path, "/bin/sh") is None  # another QEMU binary: decide again
    data = json.loads((tmp_path / accel.CACHE_FILE).read_text())
    data["key"]["host_kernel"] = "0.0.0-other"
    (tmp_path / accel.CACHE_FILE).write_text(json.dumps(data))
    assert accel.read_cache(tmp_path, "/bin/true") is None


def test_trial_boot_failure_is_tcg_and_cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NUBES_ACCEL", raising=False)
    device = tmp_path / "kvm"
    device.write_text("")
    kernel = tmp_path / "vmlinux"
    kernel.write_bytes(b"not a kernel")
    # /bin/false as "QEMU": exits at once without a marker
    verdict = accel.resolve_accel(
        "auto", tmp_path, "/bin/false", kernel=kernel, timeout=5, kvm_device=str(device)
    )
    assert verdict == "tcg"
    assert accel.read_cache(tmp_path, "/bin/false") == "tcg"


def test_probe_init_is_a_static_elf() -> None:
    elf = accel.probe_init_elf()
    assert elf[:4] == b"\x7fELF" and elf[4] == 2  # 64-bit
    (entry,) = struct.unpack_from("<Q", elf, 24)
    assert entry == 0x400000 + 120
    assert accel.PROBE_MARKER in elf
    archive = accel.probe_initramfs()
    assert archive.startswith(b"070701") and b"TRAILER!!!" in archive and len(archive) % 512 == 0
    assert b"dev/console" in archive and b"init\0" in archive


# ---- the driver without QEMU ------------------------------------------------------------------


def test_driver_accel_from_argument_and_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from nubes.drivers.compute.qemu import QemuDriver

    monkeypatch.setenv("NUBES_ACCEL", "tcg")
    assert QemuDriver(tmp_path / "a", accel="auto").capabilities.accel == "tcg"
    assert QemuDriver(tmp_path / "b", accel="kvm").capabilities.accel == "kvm"
    caps = QemuDriver(tmp_path / "c", accel="tcg", machine="microvm").capabilities
    assert caps.name == "qemu" and caps.changes_by_itself and caps.opens_taps and caps.reports_ready
    assert not caps.disk_hotplug
    with pytest.raises(ValueError):
        QemuDriver(tmp_path / "d", accel="fast")


def test_driver_short_qmp_path_for_long_state_dirs(tmp_path: Path) -> None:
    from nubes.drivers.compute.qemu import UNIX_PATH_MAX, QemuDriver

    d = QemuDriver(tmp_path / ("x" * 120), accel="tcg")
    paths = d.paths("i-bp1abcdefghij0123456")
    assert len(str(paths.qmp_socket)) <= UNIX_PATH_MAX
    assert (
        paths.serial_log.parent == paths.pidfile.parent == tmp_path / ("x" * 120) / "i-bp1abcdefghij0123456"
    )
    assert d.paths("i-other").qmp_socket != paths.qmp_socket
    short = QemuDriver(tmp_path / "s", accel="tcg").paths("i-1")
    assert short.qmp_socket == tmp_path / "s" / "i-1" / "qmp.sock"


def test_driver_calls_on_unknown_instances(tmp_path: Path) -> None:
    from nubes.drivers.compute.base import PowerState, VmNotRunning
    from nubes.drivers.compute.qemu import QemuDriver

    d = QemuDriver(tmp_path, accel="tcg")
    assert d.state("i-none") == PowerState.STOPPED
    assert d.shutdown("i-none", 1) is True
    d.destroy("i-none")
    d.detach_disk("i-none", "d-x")
    d.cleanup("i-none")
    assert d.console_output("i-none") == b""
    assert d.recover() == []
    with pytest.raises(VmNotRunning):
        d.reboot("i-none", force=True)
    with pytest.raises(VmNotRunning):
        d.attach_disk("i-none", SYSTEM)
    assert list(tmp_path.iterdir()) == []  # read-only calls leave no files behind
    with pytest.raises(ValueError):
        d.state("../etc")


# ---- the QMP client against a scripted server --------------------------------------------------


def _qmp_server(path: Path, script: dict[str, list[dict[str, object]]]) -> None:
    """Serve one client: greet, then answer each command with script[command] (messages sent in
    order; "$id" is replaced by the command's id); a command not in the script gets no answer."""
    import socket as socketlib
    import threading

    server = socketlib.socket(socketlib.AF_UNIX, socketlib.SOCK_STREAM)
    server.bind(str(path))
    server.listen(1)

    def serve() -> None:
        conn, _ = server.accept()
        with conn, conn.makefile("rwb") as f:
            f.write(b'{"QMP": {"version": {}, "capabilities": []}}\n')
            f.flush()
            for line in f:
                msg = json.loads(line)
                for reply in script.get(msg["execute"], []):
                    text = json.dumps(reply).replace('"$id"', json.dumps(msg.get("id")))
                    f.write(text.encode() + b"\n")
                    f.flush()
        server.close()

    threading.Thread(target=serve, daemon=True).start()


def test_qmp_client_replies_events_errors_and_timeouts(tmp_path: Path) -> None:
    import time

    from nubes.drivers.compute.qemu.qmp import QmpClient, QmpCommandError, QmpConnectError, QmpTimeout

    sock = tmp_path / "qmp.sock"
    _qmp_server(
        sock,
        {
            "qmp_capabilities": [{"return": {}, "id": "$id"}],
            "query-status": [{"event": "RESUME", "data": {}}, {"return": {"status": "running"}, "id": "$id"}],
            "device_del": [
                {"return": {}, "id": "$id"},
                {"event": "DEVICE_DELETED", "data": {"device": "vd-1"}},
            ],
            "bad": [{"error": {"class": "DeviceNotFound", "desc": "no such device"}, "id": "$id"}],
        },
    )
    with QmpClient(sock, timeout=2) as q:
        assert q.execute("query-status") == {"status": "running"}
        assert [e["event"] for e in q.events] == ["RESUME"]
        q.execute("device_del", {"id": "vd-1"})
        event = q.wait_event("DEVICE_DELETED", 2, lambda e: e["data"]["device"] == "vd-1")
        assert event["data"] == {"device": "vd-1"}
        with pytest.raises(QmpCommandError) as err:
            q.execute("bad")
        assert err.value.error_class == "DeviceNotFound"
        t0 = time.monotonic()
        with pytest.raises(QmpTimeout):
            q.execute("never-answered", timeout=0.3)
        with pytest.raises(QmpTimeout):
            q.wait_event("SHUTDOWN", 0.2)
        assert time.monotonic() - t0 < 2
    with pytest.raises(QmpConnectError):
        QmpClient(tmp_path / "missing.sock", timeout=0.5).connect()


def test_qmp_connect_times_out_without_greeting(tmp_path: Path) -> None:
    import socket as socketlib
    import time

    from nubes.drivers.compute.qemu.qmp import QmpClient, QmpConnectError

    server = socketlib.socket(socketlib.AF_UNIX, socketlib.SOCK_STREAM)
    server.bind(str(tmp_path / "busy.sock"))
    server.listen(1)  # accepted by the kernel, never greeted: like a QEMU serving another client
    try:
        t0 = time.monotonic()
        with pytest.raises(QmpConnectError):
            QmpClient(tmp_path / "busy.sock", timeout=0.3).connect()
        assert time.monotonic() - t0 < 2
    finally:
        server.close()


def test_an_encrypted_disk_gets_its_key_through_a_secret_file_never_the_command_line() -> None:
    key = "ab" * 32
    top, under = Path("/disks/d-enc.s-1.qcow2"), Path("/disks/d-enc.qcow2")
    disk = DiskAttachment("d-enc", top, iops=100, key=key, encrypted_layers=(top, under))
    argv = render_command(spec(disks=(SYSTEM, disk)), PATHS, "tcg")
    assert key not in " ".join(argv) and key not in repr(disk)
    secrets = [o for o in values(argv, "-object") if o.startswith("secret,")]
    assert secrets == ["secret,id=sec-d-enc,file=/var/lib/nubes/vms/i-1/keys/sec-d-enc,format=raw"]
    tree = blockdev(disk)["file"]  # under the throttle filter
    assert tree["encrypt"] == {"format": "luks", "key-secret": "sec-d-enc"}
    # the encrypted layer under the top is named with the key too (QEMU would open it keyless)
    backing = tree["backing"]
    assert backing["file"]["filename"] == str(under) and backing["encrypt"]["key-secret"] == "sec-d-enc"
    assert "backing" not in backing and "node-name" not in backing
    # an unencrypted disk has neither
    assert "encrypt" not in blockdev(SYSTEM) and "backing" not in blockdev(SYSTEM)
